/* Contract tests for broker/group_state.h: membership, sticky balanced
 * assignment, cooperative hand-over, expiry and the commit check. */
#include <criterion/criterion.h>
#include <string.h>

#include "base/err.h"
#include "broker/group_state.h"

static struct group g;
static int32_t topic_partitions = 6;

static int32_t partitions_of(void *arg, const char *topic)
{
    (void)arg;
    return strcmp(topic, "t") == 0 ? topic_partitions : -1;
}

static const char *const just_t[] = {"t"};

static void setup(void)
{
    topic_partitions = 6;
    group_init(&g, "g", 1);
}

static void teardown(void) { group_fini(&g); }

TestSuite(group, .init = setup, .fini = teardown);

struct view {
    char id[PROTO_GROUP_MEMBER_ID_BYTES];
    uint32_t gen;
    struct group_tp grant[GROUP_PARTITIONS_MAX];
    uint32_t count;
};

static void join(struct view *v, int64_t now)
{
    memset(v, 0, sizeof(*v));
    cr_assert_eq(group_join(&g, NULL, just_t, 1, 10000, now, partitions_of, NULL, v->id), 0);
}

/* One heartbeat: the member confirms what it saw last and takes its grant. */
static void beat(struct view *v, int64_t now)
{
    const struct group_tp *grant;
    uint32_t n;
    cr_assert_eq(group_heartbeat(&g, v->id, v->gen, now, &grant, &n, &v->gen), 0);
    memcpy(v->grant, grant, n * sizeof(*grant));
    v->count = n;
}

/* Heartbeats everyone until nothing changes. */
static void settle(struct view *v, int n, int64_t now)
{
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < n; i++) {
            beat(&v[i], now);
        }
    }
}

/* No partition granted twice; returns how many are granted. */
static uint32_t check_exclusive(struct view *v, int n)
{
    bool seen[64] = {false};
    uint32_t total = 0;
    for (int i = 0; i < n; i++) {
        for (uint32_t k = 0; k < v[i].count; k++) {
            int32_t p = v[i].grant[k].partition;
            cr_assert_not(seen[p], "partition %d granted twice", p);
            seen[p] = true;
            total++;
        }
    }
    return total;
}

Test(group, three_members_share_six_partitions_two_each)
{
    struct view v[3];
    for (int i = 0; i < 3; i++) {
        join(&v[i], 0);
    }
    settle(v, 3, 0);
    cr_assert_eq(check_exclusive(v, 3), 6);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(v[i].count, 2);
    }
}

Test(group, a_partition_moves_only_after_its_holder_lets_go)
{
    struct view v[2];
    join(&v[0], 0);
    settle(v, 1, 0);
    cr_assert_eq(v[0].count, 6);
    join(&v[1], 0);
    beat(&v[1], 0); /* the newcomer asks first: everything is still held */
    cr_assert_eq(v[1].count, 0);
    beat(&v[0], 0); /* the holder is told to keep three */
    cr_assert_eq(v[0].count, 3);
    beat(&v[1], 0); /* it has not confirmed yet */
    cr_assert_eq(v[1].count, 0);
    cr_assert_eq(check_exclusive(v, 2), 3);
    beat(&v[0], 0); /* confirms */
    beat(&v[1], 0);
    cr_assert_eq(v[1].count, 3);
    cr_assert_eq(check_exclusive(v, 2), 6);
}

Test(group, assignment_is_sticky_when_a_member_joins)
{
    struct view v[3];
    join(&v[0], 0);
    join(&v[1], 0);
    settle(v, 2, 0);
    struct view before[2];
    memcpy(before, v, sizeof(before));
    join(&v[2], 0);
    settle(v, 3, 0);
    cr_assert_eq(check_exclusive(v, 3), 6);
    for (int i = 0; i < 2; i++) { /* each old member kept two of its three */
        uint32_t kept = 0;
        for (uint32_t k = 0; k < v[i].count; k++) {
            for (uint32_t j = 0; j < before[i].count; j++) {
                kept += v[i].grant[k].partition == before[i].grant[j].partition;
            }
        }
        cr_assert_eq(kept, 2);
    }
}

Test(group, a_leaving_member_frees_its_partitions_at_once)
{
    struct view v[3];
    for (int i = 0; i < 3; i++) {
        join(&v[i], 0);
    }
    settle(v, 3, 0);
    cr_assert_eq(group_leave(&g, v[1].id, partitions_of, NULL), 0);
    struct view rest[2] = {v[0], v[2]};
    settle(rest, 2, 0);
    cr_assert_eq(check_exclusive(rest, 2), 6);
    cr_assert_eq(group_leave(&g, v[1].id, partitions_of, NULL), -NG_EUNKNOWN_MEMBER);
}

Test(group, a_silent_member_expires_and_its_partitions_move)
{
    struct view v[2];
    join(&v[0], 0);
    join(&v[1], 0);
    settle(v, 2, 0);
    beat(&v[0], 9000); /* only the first keeps beating */
    cr_assert_eq(group_expire(&g, 10500, partitions_of, NULL), 1);
    cr_assert_eq(g.member_count, 1);
    settle(v, 1, 10500);
    cr_assert_eq(v[0].count, 6);
    const struct group_tp *grant;
    uint32_t n, gen;
    cr_assert_eq(group_heartbeat(&g, v[1].id, v[1].gen, 10500, &grant, &n, &gen),
                 -NG_EUNKNOWN_MEMBER);
}

Test(group, commits_need_the_latest_generation_and_a_held_partition)
{
    struct view v[2];
    join(&v[0], 0);
    join(&v[1], 0);
    settle(v, 2, 0);
    int32_t mine = v[0].grant[0].partition;
    int32_t theirs = v[1].grant[0].partition;
    cr_assert_eq(group_check_commit(&g, v[0].id, v[0].gen, "t", mine), 0);
    cr_assert_eq(group_check_commit(&g, v[0].id, v[0].gen, "t", theirs), -NG_EREBALANCE);
    cr_assert_eq(group_check_commit(&g, v[0].id, v[0].gen - 1, "t", mine), -NG_EILLEGAL_GENERATION);
    cr_assert_eq(group_check_commit(&g, "nobody", v[0].gen, "t", mine), -NG_EUNKNOWN_MEMBER);
    uint32_t before = v[0].gen;
    struct view third;
    join(&third, 0); /* a rebalance; the first member has not heard yet */
    cr_assert_eq(group_check_commit(&g, v[0].id, before, "t", mine), 0,
                 "it still holds its partition: nobody else can have it");
    beat(&v[0], 0); /* it hears of the new generation */
    cr_assert_eq(group_check_commit(&g, v[0].id, before, "t", mine), -NG_EILLEGAL_GENERATION,
                 "a commit from before its latest answer is stale");
}

Test(group, a_revoked_partition_can_be_committed_until_its_holder_lets_go)
{
    struct view v[2];
    join(&v[0], 0);
    settle(v, 1, 0);
    join(&v[1], 0);
    beat(&v[0], 0); /* told to keep three of six */
    cr_assert_eq(v[0].count, 3);
    int32_t revoked = -1;
    for (int32_t p = 0; p < 6 && revoked < 0; p++) {
        bool kept = false;
        for (uint32_t k = 0; k < v[0].count; k++) {
            kept |= v[0].grant[k].partition == p;
        }
        revoked = kept ? -1 : p;
    }
    cr_assert_eq(group_check_commit(&g, v[0].id, v[0].gen, "t", revoked), 0,
                 "its last progress on a revoked partition is saved");
    beat(&v[0], 0); /* confirms it let go */
    cr_assert_eq(group_check_commit(&g, v[0].id, v[0].gen, "t", revoked), -NG_EREBALANCE);
}

Test(group, new_partitions_are_assigned_on_expire)
{
    struct view v[2];
    join(&v[0], 0);
    join(&v[1], 0);
    settle(v, 2, 0);
    topic_partitions = 8;
    cr_assert_eq(group_expire(&g, 1, partitions_of, NULL), 0);
    settle(v, 2, 1);
    cr_assert_eq(check_exclusive(v, 2), 8);
}

Test(group, bad_joins_are_refused_without_a_trace)
{
    char id[PROTO_GROUP_MEMBER_ID_BYTES];
    const char *const empty[] = {""};
    cr_assert_eq(group_join(&g, NULL, empty, 1, 10000, 0, partitions_of, NULL, id), -NG_EBADNAME);
    cr_assert_eq(group_join(&g, NULL, just_t, 1, 10, 0, partitions_of, NULL, id), -NG_EBADARG);
    cr_assert_eq(group_join(&g, "member-x", just_t, 1, 10000, 0, partitions_of, NULL, id),
                 -NG_EUNKNOWN_MEMBER);
    cr_assert_eq(g.member_count, 0);
}
