/* Integration tests of consumer groups against the real nagared: join,
 * heartbeat, leave and session expiry with server-side assignment, offset
 * commit and fetch (durable across a restart), and the admin apis (list,
 * describe with lag, delete, reset). Raw frames through the codec, over
 * the harness in tests/broker_support.h. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/broker_support.h"
#include "tests/sys_support.h"

#define CID proto_str_make("groups-it")
/* Records' timestamps in the lag and reset tests: a fixed epoch. */
#define T0 1700000000000LL
#define MEMBERS_MAX 8
#define PARTS_MAX 64

static struct bk B;
static uint8_t batch[BT_BYTES_MAX];

static void setup(void) { bk_init(&B); }
static void teardown(void) { bk_fini(&B); }

TestSuite(groups, .init = setup, .fini = teardown, .timeout = 120);

/* Sends what c->w holds and returns the answer's body. */
static struct rd roundtrip(struct cl *c, uint32_t corr)
{
    cr_assert_eq(cl_send_wr(c), 0);
    struct rd body;
    cl_expect(c, corr, &body);
    return body;
}

static void str_out(struct proto_str s, char *out, size_t cap)
{
    cr_assert_eq(proto_str_copy(s, out, cap), 0);
}

/* ---- the group apis as a test drives them ---- */

/* A member of a group on one topic: its id, the generation it saw last,
 * and its grant of that topic's partitions. */
struct member {
    char id[64];
    int32_t generation;
    bool rebalancing;
    int32_t parts[PARTS_MAX];
    uint32_t part_count;
};

/* JoinGroup for topic; member->id empty: a new member. Returns the error. */
static int join(struct cl *c, const char *group, const char *topic, int32_t session_ms,
                struct member *m)
{
    uint32_t corr = cl_next_corr(c);
    struct proto_enc e;
    struct proto_join_group_req req = {proto_str_make(group), proto_str_make(m->id), session_ms};
    proto_join_group_req_begin(&e, cl_wr(c), 0, corr, CID, &req);
    proto_enc_topic(&e, proto_str_make(topic));
    cr_assert_eq(proto_enc_end(&e), 0);
    struct rd body = roundtrip(c, corr);
    struct proto_join_group_resp out;
    cr_assert_eq(proto_join_group_resp_decode(&body, 0, &out), 0);
    if (out.err == 0) {
        str_out(out.member_id, m->id, sizeof(m->id));
        m->generation = out.generation;
        m->rebalancing = true;
    } else {
        cr_assert_eq(out.member_id.len, 0);
        cr_assert_eq(out.generation, -1);
    }
    return out.err;
}

/* Heartbeat at the member's last generation; updates it. Returns the error. */
static int heartbeat(struct cl *c, const char *group, struct member *m)
{
    uint32_t corr = cl_next_corr(c);
    struct proto_heartbeat_req req = {proto_str_make(group), proto_str_make(m->id), m->generation};
    cr_assert_eq(proto_heartbeat_req_encode(cl_wr(c), 0, corr, CID, &req), 0);
    struct rd body = roundtrip(c, corr);
    struct proto_heartbeat_resp out;
    struct proto_dec d;
    cr_assert_eq(proto_heartbeat_resp_decode(&body, 0, &out, &d), 0);
    if (out.err != 0) {
        return out.err;
    }
    m->generation = out.generation;
    m->rebalancing = out.rebalancing;
    m->part_count = 0;
    struct proto_topic t;
    while (proto_next_topic(&d, &t)) {
        int32_t p;
        while (proto_next_partition_index(&d, &p)) {
            cr_assert_lt(m->part_count, PARTS_MAX);
            m->parts[m->part_count++] = p;
        }
    }
    return 0;
}

static int leave(struct cl *c, const char *group, const char *member)
{
    uint32_t corr = cl_next_corr(c);
    struct proto_leave_group_req req = {proto_str_make(group), proto_str_make(member)};
    cr_assert_eq(proto_leave_group_req_encode(cl_wr(c), 0, corr, CID, &req), 0);
    struct rd body = roundtrip(c, corr);
    int err = 0;
    cr_assert_eq(proto_leave_group_resp_decode(&body, 0, &err), 0);
    return err;
}

/* Heartbeats every member, round after round, until one round has them
 * all at one generation and none rebalancing. */
static void settle(struct cl *c, const char *group, struct member *ms, uint32_t n)
{
    for (int round = 0; round < 50; round++) {
        bool done = true;
        for (uint32_t i = 0; i < n; i++) {
            int rc = heartbeat(c, group, &ms[i]);
            cr_assert_eq(rc, 0, "heartbeat of %s: %s", ms[i].id, err_str(rc));
            done &= !ms[i].rebalancing && ms[i].generation == ms[0].generation;
        }
        if (done) {
            return;
        }
    }
    cr_assert_fail("group %s did not settle in 50 rounds", group);
}

/* Every partition of a topic of `partitions` is held by exactly one of
 * the members, and the shares differ by at most one. */
static void assert_spread(const struct member *ms, uint32_t n, int32_t partitions)
{
    int holders[PARTS_MAX] = {0};
    uint32_t least = UINT32_MAX;
    uint32_t most = 0;
    for (uint32_t i = 0; i < n; i++) {
        for (uint32_t k = 0; k < ms[i].part_count; k++) {
            int32_t p = ms[i].parts[k];
            cr_assert(p >= 0 && p < partitions, "partition %d", p);
            holders[p]++;
        }
        least = ms[i].part_count < least ? ms[i].part_count : least;
        most = ms[i].part_count > most ? ms[i].part_count : most;
    }
    for (int32_t p = 0; p < partitions; p++) {
        cr_assert_eq(holders[p], 1, "partition %d held by %d members", p, holders[p]);
    }
    cr_assert_leq(most - least, 1, "unbalanced: %u to %u partitions", least, most);
}

static bool holds(const struct member *m, int32_t partition)
{
    for (uint32_t k = 0; k < m->part_count; k++) {
        if (m->parts[k] == partition) {
            return true;
        }
    }
    return false;
}

/* OffsetCommit of n partitions of one topic. member NULL: from outside
 * the group. errs[i] gets partition i's error. */
static void commit(struct cl *c, const char *group, const char *member, int32_t generation,
                   const char *topic, const int32_t *parts, const int64_t *offsets, uint32_t n,
                   int *errs)
{
    uint32_t corr = cl_next_corr(c);
    struct proto_enc e;
    struct proto_offset_commit_req req = {proto_str_make(group), proto_str_make(member),
                                          generation};
    proto_offset_commit_req_begin(&e, cl_wr(c), 0, corr, CID, &req);
    proto_enc_topic(&e, proto_str_make(topic));
    for (uint32_t i = 0; i < n; i++) {
        proto_offset_commit_req_partition(
            &e, &(struct proto_offset_commit_req_partition){parts[i], offsets[i]});
    }
    cr_assert_eq(proto_enc_end(&e), 0);
    struct rd body = roundtrip(c, corr);
    struct proto_dec d;
    cr_assert_eq(proto_offset_commit_resp_decode(&body, 0, &d), 0);
    struct proto_topic t;
    cr_assert(proto_next_topic(&d, &t));
    cr_assert(proto_str_eq(t.name, topic));
    struct proto_partition_result r;
    for (uint32_t i = 0; i < n; i++) {
        cr_assert(proto_next_partition_result(&d, &r));
        cr_assert_eq(r.partition, parts[i]);
        errs[i] = r.err;
    }
    cr_assert_not(proto_next_partition_result(&d, &r));
}

/* Commits and expects every partition accepted. */
static void commit_ok(struct cl *c, const char *group, const char *member, int32_t generation,
                      const char *topic, const int32_t *parts, const int64_t *offsets, uint32_t n)
{
    int errs[PARTS_MAX];
    commit(c, group, member, generation, topic, parts, offsets, n, errs);
    for (uint32_t i = 0; i < n; i++) {
        cr_assert_eq(errs[i], 0, "commit %s/%d: %s", topic, parts[i], err_str(errs[i]));
    }
}

/* OffsetFetch of n partitions of one topic into out (-1: none). */
static void fetch_offsets(struct cl *c, const char *group, const char *topic, const int32_t *parts,
                          uint32_t n, int64_t *out)
{
    uint32_t corr = cl_next_corr(c);
    struct proto_enc e;
    proto_offset_fetch_req_begin(&e, cl_wr(c), 0, corr, CID, proto_str_make(group), false);
    proto_enc_topic(&e, proto_str_make(topic));
    for (uint32_t i = 0; i < n; i++) {
        proto_enc_partition_index(&e, parts[i]);
    }
    cr_assert_eq(proto_enc_end(&e), 0);
    struct rd body = roundtrip(c, corr);
    struct proto_dec d;
    cr_assert_eq(proto_offset_fetch_resp_decode(&body, 0, &d), 0);
    struct proto_topic t;
    cr_assert(proto_next_topic(&d, &t));
    struct proto_partition_offset po;
    for (uint32_t i = 0; i < n; i++) {
        cr_assert(proto_next_partition_offset(&d, &po));
        cr_assert_eq(po.partition, parts[i]);
        cr_assert_eq(po.err, 0, "fetch %s/%d: %s", topic, parts[i], err_str(po.err));
        out[i] = po.offset;
    }
}

/* OffsetFetch of every committed partition: out[p] for topic's partition
 * p (others -1); returns how many were listed, of any topic. */
static uint32_t fetch_all_offsets(struct cl *c, const char *group, const char *topic,
                                  int64_t out[PARTS_MAX])
{
    uint32_t corr = cl_next_corr(c);
    struct proto_enc e;
    proto_offset_fetch_req_begin(&e, cl_wr(c), 0, corr, CID, proto_str_make(group), true);
    cr_assert_eq(proto_enc_end(&e), 0);
    struct rd body = roundtrip(c, corr);
    struct proto_dec d;
    cr_assert_eq(proto_offset_fetch_resp_decode(&body, 0, &d), 0);
    for (int i = 0; i < PARTS_MAX; i++) {
        out[i] = -1;
    }
    uint32_t n = 0;
    struct proto_topic t;
    while (proto_next_topic(&d, &t)) {
        struct proto_partition_offset po;
        while (proto_next_partition_offset(&d, &po)) {
            n++;
            if (proto_str_eq(t.name, topic) && po.partition >= 0 && po.partition < PARTS_MAX) {
                out[po.partition] = po.offset;
            }
        }
    }
    return n;
}

/* ListGroups: the member count of group, or -1 when it is not listed. */
static int32_t listed_members(struct cl *c, const char *group)
{
    uint32_t corr = cl_next_corr(c);
    cr_assert_eq(proto_list_groups_req_encode(cl_wr(c), 0, corr, CID), 0);
    struct rd body = roundtrip(c, corr);
    struct proto_dec d;
    cr_assert_eq(proto_list_groups_resp_decode(&body, 0, &d), 0);
    struct proto_group_listing g;
    int32_t found = -1;
    char prev[PROTO_STRING_BYTES_MAX + 1] = "";
    while (proto_list_groups_resp_next(&d, &g)) {
        char id[PROTO_STRING_BYTES_MAX + 1];
        str_out(g.group, id, sizeof(id));
        cr_assert_gt(strcmp(id, prev), 0, "listed in order, once each");
        strcpy(prev, id);
        cr_assert_eq(g.kind, PROTO_GROUP_KIND_CONSUMER);
        if (strcmp(id, group) == 0) {
            found = g.member_count;
        }
    }
    return found;
}

struct desc {
    int err;
    int32_t generation;
    uint32_t member_count;
    uint32_t member_parts[MEMBERS_MAX]; /* partitions in each member's assignment */
    uint32_t offset_count;
    struct proto_group_offset_desc offsets[PARTS_MAX]; /* of the one topic listed */
};

static void describe(struct cl *c, const char *group, struct desc *out)
{
    uint32_t corr = cl_next_corr(c);
    cr_assert_eq(proto_describe_group_req_encode(cl_wr(c), 0, corr, CID, proto_str_make(group)), 0);
    struct rd body = roundtrip(c, corr);
    struct proto_describe_group_resp r;
    struct proto_dec d;
    cr_assert_eq(proto_describe_group_resp_decode(&body, 0, &r, &d), 0);
    *out = (struct desc){.err = r.err, .generation = r.generation};
    cr_assert_eq(r.kind, PROTO_GROUP_KIND_CONSUMER);
    struct proto_group_member_desc m;
    struct proto_topic t;
    int32_t p;
    while (proto_describe_group_resp_next_member(&d, &m)) {
        cr_assert_lt(out->member_count, MEMBERS_MAX);
        uint32_t *count = &out->member_parts[out->member_count++];
        while (proto_next_topic(&d, &t)) {
            while (proto_next_partition_index(&d, &p)) {
                (*count)++;
            }
        }
    }
    proto_describe_group_resp_seek_offsets(&d);
    while (proto_next_topic(&d, &t)) {
        while (proto_describe_group_resp_next_offset(&d, &out->offsets[out->offset_count])) {
            cr_assert_lt(++out->offset_count, PARTS_MAX);
        }
    }
}

static int delete_group(struct cl *c, const char *group)
{
    uint32_t corr = cl_next_corr(c);
    cr_assert_eq(proto_delete_group_req_encode(cl_wr(c), 0, corr, CID, proto_str_make(group)), 0);
    struct rd body = roundtrip(c, corr);
    int err = 0;
    cr_assert_eq(proto_delete_group_resp_decode(&body, 0, &err), 0);
    return err;
}

/* ResetOffsets of topic's partitions (n 0: all of them). Returns the
 * answer's error; out[i] and errs[i] the i-th partition answered, *count
 * how many. */
static int reset(struct cl *c, const char *group, int8_t to, int64_t value, const char *topic,
                 const int32_t *parts, uint32_t n, struct proto_partition_offset *out,
                 uint32_t *count)
{
    uint32_t corr = cl_next_corr(c);
    struct proto_enc e;
    struct proto_reset_offsets_req req = {proto_str_make(group), to, value};
    proto_reset_offsets_req_begin(&e, cl_wr(c), 0, corr, CID, &req);
    proto_enc_topic(&e, proto_str_make(topic));
    for (uint32_t i = 0; i < n; i++) {
        proto_enc_partition_index(&e, parts[i]);
    }
    cr_assert_eq(proto_enc_end(&e), 0);
    struct rd body = roundtrip(c, corr);
    struct proto_dec d;
    int err = 0;
    cr_assert_eq(proto_reset_offsets_resp_decode(&body, 0, &err, &d), 0);
    *count = 0;
    struct proto_topic t;
    while (proto_next_topic(&d, &t)) {
        while (*count < PARTS_MAX && proto_next_partition_offset(&d, &out[*count])) {
            (*count)++;
        }
    }
    return err;
}

/* Produces `records` records to topic/partition, the first stamped ts_ms,
 * each next 1 ms later. Returns the base offset. */
static int64_t produce(struct cl *c, const char *topic, int32_t partition, uint32_t records,
                       int64_t ts_ms)
{
    size_t len = bt_make(batch, sizeof(batch), records, (uint32_t)partition, ts_ms, -1, 0, -1);
    int64_t offset = -1;
    int rc = rq_produce(c, topic, partition, batch, len, PROTO_ACKS_ALL, &offset);
    cr_assert_eq(rc, 0, "produce %s/%d: %s", topic, partition, err_str(rc));
    return offset;
}

static const int32_t all6[] = {0, 1, 2, 3, 4, 5};

/* ---- membership and assignment ---- */

Test(groups, three_members_share_six_partitions_and_a_leaver_is_replaced)
{
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, "six", 6), 0);
    struct member ms[3] = {0};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(join(&c, "g", "six", 10000, &ms[i]), 0);
        cr_assert_eq(ms[i].generation, i + 1, "every join is a new generation");
    }
    cr_assert_str_neq(ms[0].id, ms[1].id);
    cr_assert_str_neq(ms[1].id, ms[2].id);
    settle(&c, "g", ms, 3);
    assert_spread(ms, 3, 6);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(ms[i].part_count, 2);
    }
    cr_assert_eq(listed_members(&c, "g"), 3);

    /* A member leaves: the other two take its partitions over. */
    struct member gone = ms[1];
    cr_assert_eq(leave(&c, "g", gone.id), 0);
    cr_assert_eq(leave(&c, "g", gone.id), -NG_EUNKNOWN_MEMBER);
    cr_assert_eq(heartbeat(&c, "g", &gone), -NG_EUNKNOWN_MEMBER);
    ms[1] = ms[2];
    settle(&c, "g", ms, 2);
    assert_spread(ms, 2, 6);
    cr_assert_eq(ms[0].part_count, 3);
    cr_assert_eq(listed_members(&c, "g"), 2);

    /* Rejoining as a known member keeps its id. */
    struct member again = ms[0];
    cr_assert_eq(join(&c, "g", "six", 10000, &again), 0);
    cr_assert_str_eq(again.id, ms[0].id);
    /* The last two leave: the group has neither members nor offsets. */
    cr_assert_eq(leave(&c, "g", ms[0].id), 0);
    cr_assert_eq(leave(&c, "g", ms[1].id), 0);
    cr_assert_eq(listed_members(&c, "g"), -1);
    struct desc dd;
    describe(&c, "g", &dd);
    cr_assert_eq(dd.err, -NG_ENOTFOUND);
    cl_close(&c);
    bk_stop(&B);
}

Test(groups, a_silent_member_is_removed_after_its_session_and_replaced)
{
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, "six", 6), 0);
    struct member ms[3] = {0};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(join(&c, "g", "six", 1500, &ms[i]), 0);
    }
    settle(&c, "g", ms, 3);
    assert_spread(ms, 3, 6);
    /* ms[2] goes silent; the others keep heartbeating well within 1.5 s. */
    struct member silent = ms[2];
    int64_t start = clock_mono_ms();
    struct desc dd = {0};
    do {
        sleep_ms(200);
        for (int i = 0; i < 2; i++) {
            cr_assert_eq(heartbeat(&c, "g", &ms[i]), 0);
        }
        describe(&c, "g", &dd);
        cr_assert_lt(clock_mono_ms() - start, 6000, "the silent member was not removed");
    } while (dd.member_count == 3);
    int64_t took = clock_mono_ms() - start;
    cr_assert_geq(took, 1300, "removed after %lld ms, before its session ran out", (long long)took);
    cr_assert_eq(dd.member_count, 2);
    settle(&c, "g", ms, 2);
    assert_spread(ms, 2, 6);
    cr_assert_eq(heartbeat(&c, "g", &silent), -NG_EUNKNOWN_MEMBER);
    char *log = bk_read_file(B.log_path, NULL);
    cr_assert_not_null(strstr(log, "timed out"), "the expiry is logged");
    free(log);
    cl_close(&c);
    bk_stop(&B);
}

Test(groups, join_refuses_bad_arguments)
{
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    struct member m = {0};
    cr_assert_eq(join(&c, "g", "t", 999, &m), -NG_EBADARG, "session below 1 s");
    cr_assert_eq(join(&c, "g", "t", 300001, &m), -NG_EBADARG, "session above 5 min");
    cr_assert_eq(join(&c, "", "t", 5000, &m), -NG_EBADNAME);
    cr_assert_eq(join(&c, "g\n", "t", 5000, &m), -NG_EBADNAME);
    cr_assert_eq(join(&c, "g", "bad/topic", 5000, &m), -NG_EBADNAME);
    strcpy(m.id, "member-0000000000000042");
    cr_assert_eq(join(&c, "g", "t", 5000, &m), -NG_EUNKNOWN_MEMBER, "no such member");
    /* A topic that does not exist yet is fine: nothing to assign. */
    m = (struct member){0};
    cr_assert_eq(join(&c, "g", "later", 5000, &m), 0);
    cr_assert_eq(heartbeat(&c, "g", &m), 0);
    cr_assert_eq(m.part_count, 0);
    /* Once it exists the assignment follows (checked every 100 ms). */
    cr_assert_eq(rq_create(&c, "later", 2), 0);
    int64_t start = clock_mono_ms();
    while (m.part_count < 2) {
        cr_assert_lt(clock_mono_ms() - start, 5000, "the new topic was not assigned");
        sleep_ms(50);
        cr_assert_eq(heartbeat(&c, "g", &m), 0);
    }
    cl_close(&c);
    bk_stop(&B);
}

/* ---- offsets ---- */

Test(groups, commit_and_fetch_offsets)
{
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, "six", 6), 0);
    struct member m = {0};
    cr_assert_eq(join(&c, "g", "six", 10000, &m), 0);
    settle(&c, "g", &m, 1);
    cr_assert_eq(m.part_count, 6);
    int64_t offsets[6] = {0, 5, 10, 15, 20, 25};
    commit_ok(&c, "g", m.id, m.generation, "six", all6, offsets, 6);
    int64_t got[PARTS_MAX];
    fetch_offsets(&c, "g", "six", all6, 6, got);
    for (int p = 0; p < 6; p++) {
        cr_assert_eq(got[p], offsets[p], "partition %d", p);
    }
    /* A later commit wins. */
    int64_t later = 99;
    commit_ok(&c, "g", m.id, m.generation, "six", &all6[3], &later, 1);
    cr_assert_eq(fetch_all_offsets(&c, "g", "six", got), 6);
    cr_assert_eq(got[3], 99);
    cr_assert_eq(got[4], 20);
    /* Nothing committed: -1, no error. */
    fetch_offsets(&c, "g", "nope", all6, 2, got);
    cr_assert_eq(got[0], -1);
    cr_assert_eq(got[1], -1);
    fetch_offsets(&c, "other", "six", all6, 1, got);
    cr_assert_eq(got[0], -1);
    cr_assert_eq(fetch_all_offsets(&c, "other", "six", got), 0);
    cl_close(&c);
    bk_stop(&B);
}

Test(groups, commits_are_fenced_by_member_generation_and_assignment)
{
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, "six", 6), 0);
    struct member a = {0};
    cr_assert_eq(join(&c, "g", "six", 10000, &a), 0);
    settle(&c, "g", &a, 1);
    int32_t old_gen = a.generation;
    int64_t one = 1;
    commit_ok(&c, "g", a.id, old_gen, "six", all6, &one, 1);

    /* B joins: a new generation. A has not heard of it and still holds
     * every partition (none can move before it lets go), so its commit at
     * the generation of its last answer is taken. */
    struct member b = {0};
    cr_assert_eq(join(&c, "g", "six", 10000, &b), 0);
    int errs[6];
    int64_t two[6] = {2, 2, 2, 2, 2, 2};
    commit(&c, "g", a.id, old_gen, "six", all6, two, 6, errs);
    for (int p = 0; p < 6; p++) {
        cr_assert_eq(errs[p], 0, "partition %d: %s", p, err_str(errs[p]));
    }

    /* Settled at the new generation, a commit at the old one is stale, and
     * each member commits only what it holds. */
    struct member both[2] = {a, b};
    settle(&c, "g", both, 2);
    a = both[0];
    int64_t seven[6] = {7, 7, 7, 7, 7, 7};
    commit(&c, "g", a.id, old_gen, "six", all6, seven, 6, errs);
    for (int p = 0; p < 6; p++) {
        cr_assert_eq(errs[p], -NG_EILLEGAL_GENERATION, "partition %d: %s", p, err_str(errs[p]));
    }
    int64_t got[PARTS_MAX];
    fetch_offsets(&c, "g", "six", all6, 2, got);
    cr_assert_eq(got[0], 2, "a refused commit is not written");
    cr_assert_eq(got[1], 2);
    commit(&c, "g", a.id, a.generation, "six", all6, seven, 6, errs);
    for (int32_t p = 0; p < 6; p++) {
        cr_assert_eq(errs[p], holds(&a, p) ? 0 : -NG_EREBALANCE, "partition %d: %s", p,
                     err_str(errs[p]));
    }
    /* Unknown members, outsiders while members exist, bad offsets. */
    commit(&c, "g", "member-0000000000000abc", a.generation, "six", all6, seven, 1, errs);
    cr_assert_eq(errs[0], -NG_EUNKNOWN_MEMBER);
    commit(&c, "g", NULL, -1, "six", all6, seven, 1, errs);
    cr_assert_eq(errs[0], -NG_EGROUP_NOT_EMPTY);
    int64_t negative = -3;
    int32_t held = a.parts[0];
    commit(&c, "g", a.id, a.generation, "six", &held, &negative, 1, errs);
    cr_assert_eq(errs[0], -NG_EBADARG);
    int32_t missing = 6;
    commit(&c, "g", a.id, a.generation, "six", &missing, seven, 1, errs);
    cr_assert_eq(errs[0], -NG_EUNKNOWN_TOPIC);
    commit(&c, "g", a.id, a.generation, "nope", all6, seven, 1, errs);
    cr_assert_eq(errs[0], -NG_EUNKNOWN_TOPIC);
    cl_close(&c);
    bk_stop(&B);
}

Test(groups, two_groups_on_one_topic_have_their_own_offsets)
{
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, "six", 6), 0);
    struct member m1 = {0};
    struct member m2 = {0};
    cr_assert_eq(join(&c, "first", "six", 10000, &m1), 0);
    cr_assert_eq(join(&c, "second", "six", 10000, &m2), 0);
    settle(&c, "first", &m1, 1);
    settle(&c, "second", &m2, 1);
    cr_assert_eq(m1.part_count, 6, "each group gets every partition");
    cr_assert_eq(m2.part_count, 6);
    int64_t o1[6] = {1, 2, 3, 4, 5, 6};
    int64_t o2[6] = {60, 50, 40, 30, 20, 10};
    commit_ok(&c, "first", m1.id, m1.generation, "six", all6, o1, 6);
    commit_ok(&c, "second", m2.id, m2.generation, "six", all6, o2, 6);
    int64_t got[PARTS_MAX];
    fetch_offsets(&c, "first", "six", all6, 6, got);
    cr_assert_eq(memcmp(got, o1, sizeof(o1)), 0);
    fetch_offsets(&c, "second", "six", all6, 6, got);
    cr_assert_eq(memcmp(got, o2, sizeof(o2)), 0);
    cr_assert_eq(listed_members(&c, "first"), 1);
    cr_assert_eq(listed_members(&c, "second"), 1);
    cl_close(&c);
    bk_stop(&B);
}

Test(groups, committed_offsets_survive_a_restart)
{
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, "six", 6), 0);
    struct member m = {0};
    cr_assert_eq(join(&c, "g", "six", 10000, &m), 0);
    settle(&c, "g", &m, 1);
    int64_t offsets[6] = {3, 1, 4, 1, 5, 9};
    commit_ok(&c, "g", m.id, m.generation, "six", all6, offsets, 6);
    int64_t two = 2;
    commit_ok(&c, "outside", NULL, -1, "six", all6, &two, 1);
    cl_close(&c);
    bk_stop(&B);

    bk_start(&B);
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    int64_t got[PARTS_MAX];
    fetch_offsets(&c, "g", "six", all6, 6, got);
    cr_assert_eq(memcmp(got, offsets, sizeof(offsets)), 0);
    fetch_offsets(&c, "outside", "six", all6, 1, got);
    cr_assert_eq(got[0], 2);
    /* Its members are gone with the old broker; its offsets are not. */
    cr_assert_eq(listed_members(&c, "g"), 0);
    cr_assert_eq(heartbeat(&c, "g", &m), -NG_EUNKNOWN_MEMBER);
    struct member fresh = {0};
    cr_assert_eq(join(&c, "g", "six", 10000, &fresh), 0);
    cr_assert_str_neq(fresh.id, m.id, "member ids are not reused across runs");
    cl_close(&c);
    bk_stop(&B);
}

/* ---- admin ---- */

Test(groups, describe_shows_members_and_lag)
{
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, "lag", 2), 0);
    /* Ten records on partition 0 written a minute ago, two on 1. */
    int64_t minute_ago = clock_wall_ms() - 60000;
    cr_assert_eq(produce(&c, "lag", 0, 10, minute_ago), 0);
    cr_assert_eq(produce(&c, "lag", 1, 2, clock_wall_ms()), 0);
    struct member m = {0};
    cr_assert_eq(join(&c, "g", "lag", 10000, &m), 0);
    settle(&c, "g", &m, 1);
    int64_t offsets[2] = {3, 2};
    commit_ok(&c, "g", m.id, m.generation, "lag", all6, offsets, 2);
    struct desc dd;
    describe(&c, "g", &dd);
    cr_assert_eq(dd.err, 0);
    cr_assert_eq(dd.generation, m.generation);
    cr_assert_eq(dd.member_count, 1);
    cr_assert_eq(dd.member_parts[0], 2);
    cr_assert_eq(dd.offset_count, 2);
    const struct proto_group_offset_desc *o = &dd.offsets[0];
    cr_assert_eq(o->partition, 0);
    cr_assert_eq(o->committed, 3);
    cr_assert_eq(o->end, 10);
    cr_assert_eq(o->lag_records, 7);
    /* The next record (offset 3) was stamped minute_ago + 3. */
    int64_t expect = clock_wall_ms() - (minute_ago + 3);
    cr_assert(o->lag_ms <= expect && o->lag_ms >= expect - 5000, "lag_ms %lld, about %lld",
              (long long)o->lag_ms, (long long)expect);
    o = &dd.offsets[1];
    cr_assert_eq(o->partition, 1);
    cr_assert_eq(o->end, 2);
    cr_assert_eq(o->lag_records, 0);
    cr_assert_eq(o->lag_ms, 0, "caught up");

    /* Without members the offsets are still described. */
    cr_assert_eq(leave(&c, "g", m.id), 0);
    describe(&c, "g", &dd);
    cr_assert_eq(dd.err, 0);
    cr_assert_eq(dd.member_count, 0);
    cr_assert_eq(dd.offset_count, 2);
    cr_assert_eq(listed_members(&c, "g"), 0);
    describe(&c, "nobody", &dd);
    cr_assert_eq(dd.err, -NG_ENOTFOUND);
    describe(&c, "", &dd);
    cr_assert_eq(dd.err, -NG_EBADNAME);
    cl_close(&c);
    bk_stop(&B);
}

Test(groups, delete_group_is_refused_while_it_has_members)
{
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, "six", 6), 0);
    struct member m = {0};
    cr_assert_eq(join(&c, "g", "six", 10000, &m), 0);
    settle(&c, "g", &m, 1);
    int64_t offsets[6] = {1, 1, 1, 1, 1, 1};
    commit_ok(&c, "g", m.id, m.generation, "six", all6, offsets, 6);
    cr_assert_eq(delete_group(&c, "g"), -NG_EGROUP_NOT_EMPTY);
    int64_t got[PARTS_MAX];
    cr_assert_eq(fetch_all_offsets(&c, "g", "six", got), 6);
    cr_assert_eq(leave(&c, "g", m.id), 0);
    cr_assert_eq(delete_group(&c, "g"), 0);
    cr_assert_eq(fetch_all_offsets(&c, "g", "six", got), 0);
    cr_assert_eq(listed_members(&c, "g"), -1);
    cr_assert_eq(delete_group(&c, "g"), -NG_ENOTFOUND);
    cr_assert_eq(delete_group(&c, ""), -NG_EBADNAME);
    cl_close(&c);
    /* Forgotten durably. */
    bk_stop(&B);
    bk_start(&B);
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(fetch_all_offsets(&c, "g", "six", got), 0);
    cr_assert_eq(listed_members(&c, "g"), -1);
    cl_close(&c);
    bk_stop(&B);
}

/* Resets partitions 0 and 1 of "r" and returns the offsets answered. */
static void reset_two(struct cl *c, int8_t to, int64_t value, int64_t out[2])
{
    struct proto_partition_offset po[PARTS_MAX];
    uint32_t n = 0;
    int err = reset(c, "g", to, value, "r", all6, 2, po, &n);
    cr_assert_eq(err, 0, "reset %d: %s", to, err_str(err));
    cr_assert_eq(n, 2);
    for (uint32_t i = 0; i < 2; i++) {
        cr_assert_eq(po[i].partition, (int32_t)i);
        cr_assert_eq(po[i].err, 0, "partition %u: %s", i, err_str(po[i].err));
        out[i] = po[i].offset;
    }
    int64_t got[2];
    fetch_offsets(c, "g", "r", all6, 2, got);
    cr_assert_eq(got[0], out[0], "committed as answered");
    cr_assert_eq(got[1], out[1]);
}

Test(groups, reset_offsets_while_empty)
{
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, "r", 3), 0);
    produce(&c, "r", 0, 10, T0);      /* offsets 0..9 at T0..T0+9 */
    produce(&c, "r", 1, 5, T0 + 100); /* offsets 0..4 at T0+100.. */
    int64_t got[2];
    reset_two(&c, PROTO_RESET_LATEST, 0, got);
    cr_assert_eq(got[0], 10);
    cr_assert_eq(got[1], 5);
    reset_two(&c, PROTO_RESET_EARLIEST, 0, got);
    cr_assert_eq(got[0], 0);
    cr_assert_eq(got[1], 0);
    reset_two(&c, PROTO_RESET_OFFSET, 7, got);
    cr_assert_eq(got[0], 7);
    cr_assert_eq(got[1], 5, "kept within the log");
    reset_two(&c, PROTO_RESET_TIMESTAMP, T0 + 5, got);
    cr_assert_eq(got[0], 5);
    cr_assert_eq(got[1], 0);
    reset_two(&c, PROTO_RESET_TIMESTAMP, T0 + 103, got);
    cr_assert_eq(got[0], 10, "no record that recent: the end");
    cr_assert_eq(got[1], 3);

    /* No partitions listed: every partition of the topic. */
    struct proto_partition_offset po[PARTS_MAX];
    uint32_t n = 0;
    cr_assert_eq(reset(&c, "g", PROTO_RESET_LATEST, 0, "r", NULL, 0, po, &n), 0);
    cr_assert_eq(n, 3);
    cr_assert_eq(po[2].partition, 2);
    cr_assert_eq(po[2].offset, 0);
    cr_assert_eq(reset(&c, "g", PROTO_RESET_LATEST, 0, "nope", NULL, 0, po, &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(po[0].err, -NG_EUNKNOWN_TOPIC);
    int32_t bad = 3;
    cr_assert_eq(reset(&c, "g", PROTO_RESET_LATEST, 0, "r", &bad, 1, po, &n), 0);
    cr_assert_eq(po[0].err, -NG_EUNKNOWN_TOPIC);
    cr_assert_eq(po[0].offset, -1);

    /* More than one durable write holds: refused whole. */
    uint32_t corr = cl_next_corr(&c);
    struct proto_enc e;
    struct proto_reset_offsets_req big = {proto_str_make("g"), PROTO_RESET_EARLIEST, 0};
    proto_reset_offsets_req_begin(&e, cl_wr(&c), 0, corr, CID, &big);
    for (int i = 0; i < 4096 / 3 + 1; i++) {
        proto_enc_topic(&e, proto_str_make("r")); /* every partition, again */
    }
    cr_assert_eq(proto_enc_end(&e), 0);
    struct rd body = roundtrip(&c, corr);
    struct proto_dec d;
    int err = 0;
    cr_assert_eq(proto_reset_offsets_resp_decode(&body, 0, &err, &d), 0);
    cr_assert_eq(err, -NG_ETOOBIG);
    cr_assert_eq(d.topic_count, 0);
    fetch_offsets(&c, "g", "r", all6, 1, got);
    cr_assert_eq(got[0], 10, "unchanged");

    /* Not while the group has members. */
    struct member m = {0};
    cr_assert_eq(join(&c, "g", "r", 10000, &m), 0);
    cr_assert_eq(reset(&c, "g", PROTO_RESET_EARLIEST, 0, "r", all6, 2, po, &n),
                 -NG_EGROUP_NOT_EMPTY);
    cr_assert_eq(n, 0);
    fetch_offsets(&c, "g", "r", all6, 1, got);
    cr_assert_eq(got[0], 10, "unchanged");
    cl_close(&c);
    bk_stop(&B);
}

/* ---- apis ---- */

Test(groups, api_versions_lists_group_and_share_apis)
{
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    uint32_t corr = rq_api_versions_send(&c);
    struct rd body;
    cl_expect(&c, corr, &body);
    struct proto_api_versions_resp v;
    cr_assert_eq(proto_api_versions_resp_decode(&body, 0, &v), 0);
    bool listed[PROTO_API_COUNT] = {false};
    for (uint32_t i = 0; i < v.api_count; i++) {
        cr_assert_lt(v.apis[i].api_key, PROTO_API_COUNT);
        listed[v.apis[i].api_key] = true;
    }
    for (uint16_t k = PROTO_API_JOIN_GROUP; k <= PROTO_API_RESET_OFFSETS; k++) {
        cr_assert(listed[k], "api %u listed", k);
    }
    const uint16_t share[] = {PROTO_API_SHARE_FETCH, PROTO_API_SHARE_ACK, PROTO_API_DLQ_REDRIVE};
    for (int i = 0; i < 3; i++) {
        cr_assert(listed[share[i]], "api %u listed", share[i]);
        /* A version no one speaks is refused as such. */
        corr = cl_next_corr(&c);
        struct wr *w = cl_wr(&c);
        struct proto_dlq_redrive_req rq = {proto_str_make("t.dlq"), PROTO_REDRIVE_RECORDS_ALL};
        cr_assert_eq(proto_dlq_redrive_req_encode(w, 0, corr, CID, &rq), 0);
        uint16_t past = (uint16_t)(proto_api_version_max(share[i]) + 1);
        put_be16(w->ptr + 4, share[i]);
        put_be16(w->ptr + 6, past);
        cr_assert_eq(cl_send_wr(&c), 0);
        struct proto_resp_header h;
        cr_assert_eq(cl_recv(&c, &h, &body), 0);
        cr_assert_eq(h.correlation_id, corr);
        cr_assert_eq(h.err, -NG_EBADVERSION, "api %u v%u: %s", share[i], past, err_str(h.err));
    }
    /* Still serving. */
    struct member m = {0};
    cr_assert_eq(join(&c, "g", "t", 5000, &m), 0);
    cl_close(&c);
    bk_stop(&B);
}
