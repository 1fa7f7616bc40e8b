#include "tests/client_support.h"

#include <criterion/criterion.h>

/* An admin call's bound: only turns a hang into a failure. Creating a
 * topic of 50 partitions (50 directories and their fsyncs) took over 10 s
 * on this machine beside the fault runs. */
#define CS_ADMIN_TIMEOUT_MS 60000

nagare_admin *cs_admin(const struct bk *b)
{
    nagare_admin *a;
    int rc = nagare_admin_new(b->bootstrap, CS_ADMIN_TIMEOUT_MS, &a);
    cr_assert_eq(rc, 0, "admin: %s", nagare_strerror(rc));
    return a;
}

void cs_create_topic(const struct bk *b, const char *name, int32_t partitions)
{
    nagare_admin *a = cs_admin(b);
    struct nagare_topic_config c;
    nagare_topic_config_default(&c);
    c.partitions = partitions;
    int rc = nagare_topic_create(a, name, &c);
    cr_assert_eq(rc, 0, "create %s: %s", name, nagare_strerror(rc));
    nagare_admin_destroy(a);
}

int cs_topic_create_rf(nagare_admin *a, const char *name, int16_t replication_factor)
{
    struct nagare_topic_config c;
    nagare_topic_config_default(&c);
    c.partitions = 1;
    c.replication_factor = replication_factor;
    return nagare_topic_create(a, name, &c);
}
