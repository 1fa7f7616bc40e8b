/* tests/etcd_support.h itself: members start, answer, elect a leader, die
 * and come back, since every cluster test stands on it. */
#include <criterion/criterion.h>
#include <signal.h>

#include "tests/etcd_support.h"

static struct ets c;

static void teardown(void) { ets_fini(&c); }

TestSuite(etcd_support, .fini = teardown, .timeout = 240);

Test(etcd_support, one_member_is_its_own_leader)
{
    ets_start(&c, 1);
    cr_assert_eq(ets_leader(&c), 0);
    struct etcd_config cfg;
    ets_config(&c, 1000, &cfg);
    cr_assert_eq(cfg.endpoint_count, 1);
    cr_assert_str_eq(cfg.endpoints[0], c.m[0].client_url);
}

Test(etcd_support, three_members_elect_again_when_the_leader_dies_and_take_it_back)
{
    ets_start(&c, 3);
    for (size_t i = 0; i < 3; i++) {
        for (size_t k = i + 1; k < 3; k++) {
            cr_assert_neq(c.m[i].client_port, c.m[k].client_port);
            cr_assert_str_neq(c.m[i].member_id, c.m[k].member_id);
        }
    }
    size_t leader = ets_leader(&c);
    ets_stop(&c, leader, SIGKILL);
    cr_assert_eq(c.m[leader].pid, 0);
    size_t next = ets_leader(&c);
    cr_assert_neq(next, leader);
    ets_restart(&c, leader);
    ets_wait_healthy(&c, leader);
    cr_assert_gt(c.m[leader].pid, 0);
    ets_stop(&c, next, SIGTERM);
    cr_assert_neq(ets_leader(&c), next);
}
