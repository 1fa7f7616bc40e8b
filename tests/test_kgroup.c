/*
 * tests/test_kgroup.c — broker/kgroup.h: Kafka's classic group membership,
 * driven with explicit times (no clock, no I/O).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "broker/kgroup.h"

#define SESSION_MS 10000u
#define REBALANCE_MS 30000u

/* What a held request was answered with. */
struct rec {
    int calls;
    int err;
    int32_t generation;
    char member_id[KGROUP_MEMBER_ID_BYTES_MAX + 1];
    char leader_id[KGROUP_MEMBER_ID_BYTES_MAX + 1];
    char protocol[KGROUP_NAME_BYTES_MAX + 1];
    uint32_t member_count; /* the leader's list */
    char first_metadata[32];
    uint8_t assignment[64];
    uint32_t assignment_len;
};

static void join_done(void *arg, void *waiter, int err, const struct kgroup_join_answer *a)
{
    (void)arg;
    struct rec *r = waiter;
    r->calls++;
    r->err = err;
    if (err != 0) {
        cr_assert_null(a);
        return;
    }
    r->generation = a->generation;
    strcpy(r->member_id, a->member_id);
    strcpy(r->leader_id, a->leader_id);
    strcpy(r->protocol, a->protocol_name);
    r->member_count = a->member_count;
    cr_assert_eq(a->members == NULL, strcmp(a->leader_id, a->member_id) != 0,
                 "the member list goes to the leader only");
    if (a->member_count > 0) {
        uint32_t len;
        const uint8_t *md = kgroup_member_metadata(&a->members[0], a->protocol_name, &len);
        cr_assert_not_null(md);
        cr_assert_lt(len, sizeof(r->first_metadata));
        memcpy(r->first_metadata, md, len);
        r->first_metadata[len] = '\0';
    }
}

static void sync_done(void *arg, void *waiter, int err, const uint8_t *assignment, uint32_t len)
{
    (void)arg;
    struct rec *r = waiter;
    r->calls++;
    r->err = err;
    cr_assert_leq(len, sizeof(r->assignment));
    if (len > 0) {
        memcpy(r->assignment, assignment, len);
    }
    r->assignment_len = len;
}

static const struct kgroup_ops OPS = {.join_done = join_done, .sync_done = sync_done};

static struct kgroup_str S(const char *s) {
    return (struct kgroup_str){s, (uint32_t)strlen(s)};
}

static const struct kgroup_str NONE = {"", 0};

static struct kgroup g;

static void group_new(uint32_t initial_delay_ms)
{
    kgroup_init(&g, "g", 1, initial_delay_ms, 1, &OPS, NULL);
}

static void teardown(void) { kgroup_fini(&g); }

TestSuite(kgroup, .fini = teardown);

/* A join offering "range" then "sticky" (or the list given), each with
 * metadata naming the member. */
struct joiner {
    char id[KGROUP_MEMBER_ID_BYTES_MAX + 1];
    const char *instance;
    const char *type;
    const char *assignors[3];
    const char *metadata;
    bool required;
};

static int join_as(struct joiner *j, int64_t now_ms, struct rec *w)
{
    struct kgroup_protocol_in ps[3];
    uint32_t n = 0;
    for (; n < 3 && j->assignors[n] != NULL; n++) {
        ps[n] = (struct kgroup_protocol_in){.name = S(j->assignors[n]),
                                            .metadata = (const uint8_t *)j->metadata,
                                            .metadata_len = (uint32_t)strlen(j->metadata)};
    }
    struct kgroup_join_req r = {.member_id = S(j->id),
                                .instance_id = S(j->instance != NULL ? j->instance : ""),
                                .client_id = S("client"),
                                .client_host = S("/127.0.0.1"),
                                .protocol_type = S(j->type != NULL ? j->type : "consumer"),
                                .protocols = ps,
                                .protocol_count = n,
                                .session_ms = SESSION_MS,
                                .rebalance_ms = REBALANCE_MS,
                                .member_id_required = j->required};
    memset(w, 0, sizeof(*w));
    char id[KGROUP_MEMBER_ID_BYTES_MAX + 1] = "";
    int rc = kgroup_join(&g, now_ms, &r, w, id);
    if (j->id[0] == '\0' && id[0] != '\0' && (rc == 0 || rc == -NG_EMEMBER_ID_REQUIRED)) {
        strcpy(j->id, id);
    }
    return rc;
}

static struct joiner member(const char *metadata)
{
    return (struct joiner){.assignors = {"range", "sticky"}, .metadata = metadata};
}

static int sync_as(const struct joiner *j, int32_t gen, const struct kgroup_assignment_in *as,
                   uint32_t n, struct rec *w)
{
    memset(w, 0, sizeof(*w));
    return kgroup_sync(&g, 0, S(j->id), S(j->instance != NULL ? j->instance : ""), gen,
                       S("consumer"), NONE, as, n, w);
}

static int beat(const struct joiner *j, int64_t now_ms, int32_t gen)
{
    return kgroup_heartbeat(&g, now_ms, S(j->id), S(j->instance != NULL ? j->instance : ""), gen);
}

/* A and B joined and synced: generation 2, STABLE, A leads. */
static void stable_pair(struct joiner *a, struct joiner *b)
{
    struct rec ja, jb, sa, sb;
    cr_assert_eq(join_as(a, 0, &ja), 0);
    cr_assert_eq(ja.calls, 1, "alone and no initial delay: in at once");
    cr_assert_eq(join_as(b, 0, &jb), 0);
    cr_assert_eq(jb.calls, 0, "waits for A to join again");
    cr_assert_eq(beat(a, 0, 1), -NG_EREBALANCE);
    cr_assert_eq(join_as(a, 0, &ja), 0);
    cr_assert_eq(ja.calls, 1);
    cr_assert_eq(jb.calls, 1);
    cr_assert_eq(ja.generation, 2);
    cr_assert_str_eq(ja.leader_id, a->id);
    cr_assert_eq(ja.member_count, 2);
    cr_assert_eq(jb.member_count, 0);
    cr_assert_eq(sync_as(b, 2, NULL, 0, &sb), 0);
    cr_assert_eq(sb.calls, 0, "a follower's sync waits for the leader's");
    struct kgroup_assignment_in as[] = {
        {S(a->id), (const uint8_t *)"for-a", 5},
        {S(b->id), (const uint8_t *)"for-b", 5},
    };
    cr_assert_eq(sync_as(a, 2, as, 2, &sa), 0);
    cr_assert_eq(sa.calls, 1);
    cr_assert_eq(sb.calls, 1);
    cr_assert_eq(sa.assignment_len, 5);
    cr_assert_eq(memcmp(sa.assignment, "for-a", 5), 0);
    cr_assert_eq(memcmp(sb.assignment, "for-b", 5), 0);
    cr_assert_eq(g.state, KGROUP_STABLE);
}

Test(kgroup, the_first_rebalance_waits_the_initial_delay_and_its_member_leads)
{
    group_new(3000);
    struct joiner a = member("meta-a");
    struct rec ja;
    cr_assert_eq(join_as(&a, 0, &ja), 0);
    cr_assert_eq(g.state, KGROUP_PREPARING);
    cr_assert_eq(kgroup_tick(&g, 0), 3000);
    cr_assert_eq(kgroup_tick(&g, 2999), 3000);
    cr_assert_eq(ja.calls, 0);
    (void)kgroup_tick(&g, 3000);
    cr_assert_eq(ja.calls, 1);
    cr_assert_eq(ja.err, 0);
    cr_assert_eq(ja.generation, 1);
    cr_assert_str_eq(ja.member_id, a.id);
    cr_assert_str_eq(ja.leader_id, a.id);
    cr_assert_str_eq(ja.protocol, "range");
    cr_assert_eq(ja.member_count, 1);
    cr_assert_str_eq(ja.first_metadata, "meta-a");
    cr_assert_eq(g.state, KGROUP_COMPLETING);
    cr_assert_str_eq(kgroup_state_name(g.state), "CompletingRebalance");
}

Test(kgroup, a_member_joining_during_the_initial_delay_extends_it)
{
    group_new(3000);
    struct joiner a = member("a"), b = member("b");
    struct rec ja, jb;
    cr_assert_eq(join_as(&a, 0, &ja), 0);
    cr_assert_eq(join_as(&b, 2000, &jb), 0);
    (void)kgroup_tick(&g, 3000);
    cr_assert_eq(ja.calls + jb.calls, 0, "the delay now ends at 5000");
    (void)kgroup_tick(&g, 5000);
    cr_assert_eq(ja.calls, 1);
    cr_assert_eq(jb.calls, 1);
    cr_assert_eq(ja.generation, 1);
    cr_assert_eq(ja.member_count, 2, "both in the first generation");
}

Test(kgroup, members_join_sync_and_each_gets_its_part_of_the_leaders_assignment)
{
    group_new(0);
    struct joiner a = member("a"), b = member("b");
    stable_pair(&a, &b);
    cr_assert_eq(beat(&a, 1000, 2), 0);
    cr_assert_eq(beat(&b, 1000, 2), 0);
    struct rec again;
    cr_assert_eq(sync_as(&b, 2, NULL, 0, &again), 0);
    cr_assert_eq(again.calls, 1, "stable: answered at once with its assignment");
    cr_assert_eq(memcmp(again.assignment, "for-b", 5), 0);
}

Test(kgroup, a_new_member_is_given_its_id_first_when_the_client_asks_for_it)
{
    group_new(0);
    struct joiner a = member("a");
    a.required = true;
    struct rec ja;
    cr_assert_eq(join_as(&a, 0, &ja), -NG_EMEMBER_ID_REQUIRED);
    cr_assert_neq(a.id[0], '\0');
    cr_assert_eq(g.member_count, 0, "not a member until it joins with the id");
    cr_assert_eq(join_as(&a, 100, &ja), 0);
    cr_assert_eq(ja.calls, 1);
    cr_assert_str_eq(ja.member_id, a.id);

    struct joiner late = member("late");
    late.required = true;
    cr_assert_eq(join_as(&late, 0, &ja), -NG_EMEMBER_ID_REQUIRED);
    (void)kgroup_tick(&g, SESSION_MS);
    cr_assert_eq(join_as(&late, SESSION_MS, &ja), -NG_EUNKNOWN_MEMBER,
                 "an id not joined with in its session lapses");
    struct joiner stranger = member("x");
    strcpy(stranger.id, "never-given");
    cr_assert_eq(join_as(&stranger, 0, &ja), -NG_EUNKNOWN_MEMBER);
}

Test(kgroup, members_that_do_not_join_again_are_dropped_at_the_rebalance_timeout)
{
    group_new(0);
    struct joiner a = member("a"), b = member("b"), c = member("c");
    stable_pair(&a, &b);
    struct rec ja, jc;
    cr_assert_eq(join_as(&c, 1000, &jc), 0);
    cr_assert_eq(beat(&a, 1000, 2), -NG_EREBALANCE);
    cr_assert_eq(join_as(&a, 1000, &ja), 0);
    /* B keeps its session with heartbeats (each told of the rebalance)
     * but never joins again. */
    for (int64_t t = 9000; t < 1000 + REBALANCE_MS; t += 9000) {
        cr_assert_eq(beat(&b, t, 2), -NG_EREBALANCE);
        (void)kgroup_tick(&g, t);
    }
    cr_assert_eq(kgroup_tick(&g, 1000 + REBALANCE_MS - 1), 1000 + REBALANCE_MS);
    cr_assert_eq(ja.calls + jc.calls, 0, "B still has time");
    (void)kgroup_tick(&g, 1000 + REBALANCE_MS);
    cr_assert_eq(ja.calls, 1);
    cr_assert_eq(jc.calls, 1);
    cr_assert_eq(ja.generation, 3);
    cr_assert_eq(ja.member_count, 2, "A and C");
    cr_assert_eq(beat(&b, 1000 + REBALANCE_MS, 2), -NG_EUNKNOWN_MEMBER);
}

Test(kgroup, a_silent_member_is_dropped_after_its_session_and_the_others_rebalance)
{
    group_new(0);
    struct joiner a = member("a"), b = member("b");
    stable_pair(&a, &b);
    cr_assert_eq(beat(&a, SESSION_MS - 1, 2), 0);
    (void)kgroup_tick(&g, SESSION_MS - 1);
    cr_assert_eq(g.member_count, 2);
    (void)kgroup_tick(&g, SESSION_MS);
    cr_assert_eq(g.member_count, 1, "B's session ran out");
    cr_assert_eq(beat(&a, SESSION_MS, 2), -NG_EREBALANCE);
    struct rec ja;
    cr_assert_eq(join_as(&a, SESSION_MS, &ja), 0);
    cr_assert_eq(ja.calls, 1);
    cr_assert_eq(ja.generation, 3);
}

Test(kgroup, a_member_waiting_on_the_coordinator_does_not_expire_but_a_leader_that_never_syncs_does)
{
    group_new(0);
    struct joiner a = member("a"), b = member("b");
    struct rec ja, jb, sb;
    cr_assert_eq(join_as(&a, 0, &ja), 0);
    cr_assert_eq(join_as(&b, 0, &jb), 0);
    cr_assert_eq(join_as(&a, 0, &ja), 0);
    cr_assert_eq(jb.calls, 1);
    cr_assert_eq(sync_as(&b, 2, NULL, 0, &sb), 0);
    (void)kgroup_tick(&g, 10 * SESSION_MS);
    cr_assert_eq(sb.calls, 1, "the leader expired: B's sync learns of the rebalance");
    cr_assert_eq(sb.err, -NG_EREBALANCE);
    cr_assert_eq(g.member_count, 1);
    cr_assert_str_eq(g.members[0].id, b.id);
}

Test(kgroup, the_assignor_is_one_every_member_offers_and_most_prefer)
{
    group_new(0);
    struct joiner a = {.assignors = {"range", "sticky"}, .metadata = "a"};
    struct joiner b = {.assignors = {"sticky", "range"}, .metadata = "b"};
    struct joiner c = {.assignors = {"sticky", "range"}, .metadata = "c"};
    struct rec ja, jb, jc;
    cr_assert_eq(join_as(&a, 0, &ja), 0);
    cr_assert_eq(join_as(&b, 0, &jb), 0);
    cr_assert_eq(join_as(&c, 0, &jc), 0);
    cr_assert_eq(join_as(&a, 0, &ja), 0);
    cr_assert_eq(jc.calls, 1);
    cr_assert_str_eq(jc.protocol, "sticky", "two votes to the first member's one");

    struct joiner d = {.assignors = {"sticky"}, .metadata = "d"};
    struct rec jd;
    cr_assert_eq(join_as(&d, 0, &jd), 0);
    cr_assert_eq(join_as(&a, 0, &ja), 0);
    cr_assert_eq(join_as(&b, 0, &jb), 0);
    cr_assert_eq(join_as(&c, 0, &jc), 0);
    cr_assert_eq(jd.calls, 1);
    cr_assert_str_eq(jd.protocol, "sticky", "the only one D offers");
}

Test(kgroup, a_member_of_another_protocol_or_with_no_assignor_in_common_is_refused)
{
    group_new(0);
    struct joiner a = member("a");
    struct rec w;
    cr_assert_eq(join_as(&a, 0, &w), 0);
    struct joiner other = member("o");
    other.type = "connect";
    cr_assert_eq(join_as(&other, 0, &w), -NG_EINCONSISTENT_PROTOCOL);
    struct joiner odd = {.assignors = {"roundrobin"}, .metadata = "x"};
    cr_assert_eq(join_as(&odd, 0, &w), -NG_EINCONSISTENT_PROTOCOL);
    struct joiner untyped = member("u");
    untyped.type = "";
    kgroup_fini(&g);
    group_new(0);
    cr_assert_eq(join_as(&untyped, 0, &w), -NG_EINCONSISTENT_PROTOCOL);
    cr_assert_eq(g.member_count, 0);
}

Test(kgroup, requests_at_another_generation_or_assignor_are_refused)
{
    group_new(0);
    struct joiner a = member("a"), b = member("b");
    stable_pair(&a, &b);
    struct rec w;
    cr_assert_eq(beat(&a, 0, 1), -NG_EILLEGAL_GENERATION);
    cr_assert_eq(sync_as(&b, 3, NULL, 0, &w), -NG_EILLEGAL_GENERATION);
    memset(&w, 0, sizeof(w));
    cr_assert_eq(kgroup_sync(&g, 0, S(b.id), NONE, 2, S("consumer"), S("sticky"), NULL, 0, &w),
                 -NG_EINCONSISTENT_PROTOCOL);
    cr_assert_eq(w.calls, 0);
}

Test(kgroup,
     a_follower_checking_in_unchanged_keeps_the_generation_and_a_leader_rejoining_rebalances)
{
    group_new(0);
    struct joiner a = member("a"), b = member("b");
    stable_pair(&a, &b);
    struct rec jb, ja;
    cr_assert_eq(join_as(&b, 0, &jb), 0);
    cr_assert_eq(jb.calls, 1);
    cr_assert_eq(jb.generation, 2);
    cr_assert_eq(g.state, KGROUP_STABLE);
    cr_assert_eq(join_as(&a, 0, &ja), 0);
    cr_assert_eq(g.state, KGROUP_PREPARING, "the leader's join starts a rebalance");
    cr_assert_eq(ja.calls, 0);
    struct joiner b2 = b;
    b2.metadata = "b, now subscribed to more";
    cr_assert_eq(join_as(&b2, 0, &jb), 0);
    cr_assert_eq(ja.calls, 1);
    cr_assert_eq(ja.generation, 3);
    cr_assert_str_eq(ja.first_metadata, "a");
    cr_assert_eq(g.members[1].protocols[0].metadata_len, strlen(b2.metadata),
                 "the new metadata is kept");
}

Test(kgroup, a_leaving_leader_hands_the_lead_on_and_the_last_member_leaving_empties_the_group)
{
    group_new(0);
    struct joiner a = member("a"), b = member("b");
    stable_pair(&a, &b);
    cr_assert_eq(kgroup_leave(&g, 0, S(a.id), NONE), 0);
    cr_assert_eq(kgroup_leave(&g, 0, S(a.id), NONE), -NG_EUNKNOWN_MEMBER);
    struct rec jb;
    cr_assert_eq(join_as(&b, 0, &jb), 0);
    cr_assert_eq(jb.calls, 1);
    cr_assert_str_eq(jb.leader_id, b.id);
    cr_assert_eq(jb.generation, 3);
    cr_assert_eq(kgroup_leave(&g, 0, S(b.id), NONE), 0);
    cr_assert_eq(g.state, KGROUP_EMPTY);
    cr_assert_eq(g.generation, 4, "an empty generation, as Kafka counts it");
    cr_assert_str_eq(g.protocol_type, "");
}

Test(kgroup, a_static_member_back_under_a_new_id_fences_the_old_one_and_keeps_its_place)
{
    group_new(0);
    struct joiner a = member("a"), b = member("b");
    b.instance = "instance-b";
    stable_pair(&a, &b);
    char old_id[sizeof(b.id)];
    strcpy(old_id, b.id);
    struct joiner restarted = member("b");
    restarted.instance = "instance-b";
    struct rec jr;
    cr_assert_eq(join_as(&restarted, 0, &jr), 0);
    cr_assert_eq(jr.calls, 1, "same assignors: its place, no rebalance");
    cr_assert_str_neq(restarted.id, old_id);
    cr_assert_eq(g.state, KGROUP_STABLE);
    cr_assert_eq(g.generation, 2);
    cr_assert_eq(kgroup_heartbeat(&g, 0, S(old_id), S("instance-b"), 2), -NG_EFENCED_INSTANCE);
    cr_assert_eq(beat(&restarted, 0, 2), 0);
    cr_assert_eq(kgroup_leave(&g, 0, NONE, S("instance-b")), 0, "static members leave by instance");
    cr_assert_eq(g.member_count, 1);
}

Test(kgroup, a_repeated_request_answers_the_older_one)
{
    group_new(0);
    struct joiner a = member("a"), b = member("b");
    struct rec ja, jb1, jb2;
    cr_assert_eq(join_as(&a, 0, &ja), 0);
    cr_assert_eq(join_as(&b, 0, &jb1), 0);
    cr_assert_eq(join_as(&b, 0, &jb2), 0);
    cr_assert_eq(jb1.calls, 1);
    cr_assert_eq(jb1.err, -NG_EREBALANCE);
    cr_assert_eq(jb2.calls, 0);
    cr_assert_eq(join_as(&a, 0, &ja), 0);
    cr_assert_eq(jb2.calls, 1);
    cr_assert_eq(jb2.err, 0);
}

Test(kgroup, dropping_the_group_answers_what_it_holds)
{
    group_new(0);
    struct joiner a = member("a"), b = member("b");
    struct rec ja, jb;
    cr_assert_eq(join_as(&a, 0, &ja), 0);
    cr_assert_eq(join_as(&b, 0, &jb), 0);
    kgroup_fini(&g);
    cr_assert_eq(jb.calls, 1);
    cr_assert_eq(jb.err, -NG_ECLOSED);
    group_new(0); /* for the suite's fini */
}

Test(kgroup, members_and_their_bytes_are_bounded)
{
    group_new(0);
    static char big[KGROUP_MEMBER_BYTES_MAX + 1];
    memset(big, 'm', sizeof(big) - 1);
    struct joiner fat = {.assignors = {"range"}, .metadata = big};
    struct rec w;
    cr_assert_eq(join_as(&fat, 0, &w), -NG_EGROUP_FULL);
    struct rec *ws = calloc(KGROUP_MEMBERS_MAX, sizeof(*ws));
    cr_assert_not_null(ws);
    for (uint32_t i = 0; i < KGROUP_MEMBERS_MAX; i++) {
        struct joiner j = member("m");
        j.required = true;
        cr_assert_eq(join_as(&j, 0, &ws[i]), -NG_EMEMBER_ID_REQUIRED);
    }
    struct joiner one_more = member("m");
    cr_assert_eq(join_as(&one_more, 0, &w), -NG_EGROUP_FULL);
    kgroup_fini(&g);
    free(ws);
    group_new(0);
}

Test(kgroup, commits_come_from_members_at_the_generation_or_from_outside_an_empty_group)
{
    group_new(0);
    cr_assert_eq(kgroup_commit_check(&g, 0, NONE, NONE, -1), 0, "an empty group: anyone");
    struct joiner a = member("a"), b = member("b");
    struct rec ja, jb;
    cr_assert_eq(join_as(&a, 0, &ja), 0);
    cr_assert_eq(g.state, KGROUP_COMPLETING);
    cr_assert_eq(kgroup_commit_check(&g, 0, S(a.id), NONE, 1), -NG_EREBALANCE,
                 "not while the leader assigns");
    kgroup_fini(&g);
    group_new(0);
    memset(a.id, 0, sizeof(a.id));
    memset(b.id, 0, sizeof(b.id));
    stable_pair(&a, &b);
    cr_assert_eq(kgroup_commit_check(&g, 0, S(a.id), NONE, 2), 0);
    cr_assert_eq(kgroup_commit_check(&g, 0, S(a.id), NONE, 1), -NG_EILLEGAL_GENERATION);
    cr_assert_eq(kgroup_commit_check(&g, 0, NONE, NONE, -1), -NG_EUNKNOWN_MEMBER,
                 "not from outside a group with members");
    cr_assert_eq(kgroup_commit_check(&g, 0, S("stranger"), NONE, 2), -NG_EUNKNOWN_MEMBER);
    (void)jb;
}

/* ---- the consumer protocol's assignment ---- */

struct assigned {
    char seen[256];
    size_t len;
};

static void on_assigned(void *arg, const char *topic, size_t len, int32_t partition)
{
    struct assigned *a = arg;
    a->len += (size_t)snprintf(a->seen + a->len, sizeof(a->seen) - a->len, "%.*s/%d ", (int)len,
                               topic, partition);
}

/* ConsumerProtocolAssignment v1: orders [0, 2], audit [7], user data "u". */
static const uint8_t assignment[] = {
    0, 1,                                           /* version */
    0, 0, 0,   2,                                   /* topics */
    0, 6, 'o', 'r', 'd', 'e', 'r', 's',             /* topic */
    0, 0, 0,   2,   0,   0,   0,   0,   0, 0, 0, 2, /* partitions 0, 2 */
    0, 5, 'a', 'u', 'd', 'i', 't',                  /* topic */
    0, 0, 0,   1,   0,   0,   0,   7,               /* partition 7 */
    0, 0, 0,   1,   'u',                            /* user data */
};

Test(kgroup, a_consumer_assignment_gives_its_partitions_in_order)
{
    struct assigned a = {0};
    cr_assert_eq(kgroup_assignment_each(assignment, sizeof(assignment), on_assigned, &a), 0);
    cr_assert_str_eq(a.seen, "orders/0 orders/2 audit/7 ");
}

Test(kgroup, a_consumer_assignment_cut_anywhere_or_with_bad_counts_is_refused)
{
    /* Cut at every byte before the user data: refused, after what came
     * before the cut (never past the bytes). */
    size_t user_data = sizeof(assignment) - 5;
    for (size_t n = 0; n < user_data; n++) {
        struct assigned a = {0};
        int rc = kgroup_assignment_each(assignment, (uint32_t)n, on_assigned, &a);
        cr_assert_eq(rc, -NG_ETRUNCATED, "cut at %zu: %d", n, rc);
    }
    uint8_t bad[sizeof(assignment)];
    memcpy(bad, assignment, sizeof(bad));
    bad[2] = 0xff; /* topics -1 (a null array) */
    struct assigned a = {0};
    cr_assert_eq(kgroup_assignment_each(bad, sizeof(bad), on_assigned, &a), -NG_EBADCOUNT);
    memcpy(bad, assignment, sizeof(bad));
    bad[6] = 0xff; /* a negative name length */
    cr_assert_eq(kgroup_assignment_each(bad, sizeof(bad), on_assigned, &a), -NG_EBADLEN);
    memcpy(bad, assignment, sizeof(bad));
    bad[17] = 0x7f; /* more partitions than bytes */
    a = (struct assigned){0};
    cr_assert_eq(kgroup_assignment_each(bad, sizeof(bad), on_assigned, &a), -NG_ETRUNCATED);
    cr_assert_str_eq(a.seen, "", "nothing read past the bytes");
}
