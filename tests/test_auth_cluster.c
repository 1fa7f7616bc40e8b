/*
 * Users in a cluster (broker/sasl_serve.h, cluster/session.h): a user
 * added through one broker lives in etcd (users/<name>/<mechanism>) and
 * logs in at every broker; a delete through another reaches them all.
 * Waits poll a condition with a generous bound: they never depend on how
 * fast the machine is.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client/nagare.h"
#include "tests/cluster_support.h"

/* Far above what a view takes to reach every broker on a busy machine. */
#define SETTLE_MS 60000

static struct cluster C;

static void teardown(void) { cs_fini(&C); }

TestSuite(auth_cluster, .fini = teardown, .timeout = 300);

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A login at bootstrap as user: 0, or the connect's error. */
static int login_at(const char *bootstrap, const char *user, const char *password,
                    const char *mechanism)
{
    struct nagare_login l = {.user = user, .password = password, .mechanism = mechanism};
    nagare_admin *a = NULL;
    int rc = nagare_admin_new_login(bootstrap, 10000, &l, &a);
    nagare_admin_destroy(a);
    return rc;
}

/* Waits until a login at bootstrap gives want. */
static void wait_login(const char *bootstrap, const char *user, const char *password,
                       const char *mechanism, int want)
{
    int64_t deadline = now_ms() + SETTLE_MS;
    int rc;
    while ((rc = login_at(bootstrap, user, password, mechanism)) != want) {
        if (now_ms() > deadline) {
            cs_print_logs(&C, "the users did not settle");
            cr_assert_fail("login at %s as %s: %s, wanted %s", bootstrap, user, nagare_strerror(rc),
                           nagare_strerror(want));
        }
        usleep(50000);
    }
}

Test(auth_cluster, a_user_added_through_one_broker_logs_in_at_every_broker)
{
    cs_need_cluster();
    cs_init(&C, 2);
    cs_set(&C, "login_failures_max=1000"); /* the waits below may fail many logins */
    cs_start(&C);
    nagare_admin *a = NULL;
    cr_assert_eq(nagare_admin_new(C.b[0].bootstrap, 10000, &a), 0);
    int rc = nagare_user_set(a, "carol", "c4rol", NULL, 0);
    cr_assert_eq(rc, 0, "%s", nagare_strerror(rc));
    rc = nagare_user_set(a, "dave", "d4ve", "SCRAM-SHA-512", 0);
    cr_assert_eq(rc, 0, "%s", nagare_strerror(rc));
    nagare_admin_destroy(a);

    wait_login(C.b[1].bootstrap, "carol", "c4rol", "SCRAM-SHA-512", 0);
    wait_login(C.b[0].bootstrap, "dave", "d4ve", "SCRAM-SHA-512", 0);
    cr_assert_eq(login_at(C.b[1].bootstrap, "carol", "wrong", NULL), -NAGARE_EAUTH);

    struct nagare_login l = {.user = "carol", .password = "c4rol"};
    cr_assert_eq(nagare_admin_new_login(C.b[1].bootstrap, 10000, &l, &a), 0);
    wait_login(C.b[1].bootstrap, "dave", "d4ve", "SCRAM-SHA-512", 0);
    const struct nagare_user_info *u = NULL;
    size_t n = 0;
    cr_assert_eq(nagare_users_list(a, &u, &n), 0);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(u[0].user, "carol");
    cr_assert(u[0].scram_sha_256 && u[0].scram_sha_512);
    cr_assert_str_eq(u[1].user, "dave");
    cr_assert(!u[1].scram_sha_256 && u[1].scram_sha_512);
    nagare_users_free(u);
    /* Deleted through the other broker: gone from both. */
    cr_assert_eq(nagare_user_delete(a, "dave", NULL), 0);
    cr_assert_eq(nagare_user_delete(a, "nobody", NULL), -NAGARE_ENOTFOUND);
    nagare_admin_destroy(a);
    wait_login(C.b[0].bootstrap, "dave", "d4ve", "SCRAM-SHA-512", -NAGARE_EAUTH);
    wait_login(C.b[1].bootstrap, "dave", "d4ve", "SCRAM-SHA-512", -NAGARE_EAUTH);
    cr_assert_eq(login_at(C.b[0].bootstrap, "carol", "c4rol", NULL), 0);
}
