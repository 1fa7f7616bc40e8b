/* Integration tests of libnagare's consumer groups (nagare_consumer_subscribe
 * and friends), share consumers (nagare_share_*) and the group admin calls,
 * all against the real nagared on an ephemeral port
 * (tests/broker_support.h). Members of one group live in one thread and are
 * polled in turn, so "no partition held by two members" is checked at
 * every step; a killed member is a forked child. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client/nagare.h"
#include "tests/broker_support.h"
#include "tests/client_support.h"

#define WAIT_MS 30000
#define SESSION_MS 3000
#define PARTS_MAX 8
#define MEMBERS_MAX 4

static struct bk B;

static void setup(void) { bk_init(&B); }
static void teardown(void) { bk_fini(&B); }

TestSuite(client_groups, .init = setup, .fini = teardown, .timeout = 240);

/* Produces `per` records to each of `parts` partitions; record i of
 * partition p has value "p:i" and key "k<i>". */
static void produce(const char *topic, int32_t parts, uint32_t per, uint32_t first)
{
    struct nagare_producer_config pc;
    nagare_producer_config_default(&pc);
    pc.bootstrap = B.bootstrap;
    nagare_producer *p;
    int rc = nagare_producer_new(&pc, &p);
    cr_assert_eq(rc, 0, "producer: %s", nagare_strerror(rc));
    for (int32_t part = 0; part < parts; part++) {
        for (uint32_t i = first; i < first + per; i++) {
            char v[32];
            char k[16];
            int vn = snprintf(v, sizeof(v), "%d:%u", part, i);
            int kn = snprintf(k, sizeof(k), "k%u", i);
            struct nagare_record r = {.topic = topic,
                                      .partition = part,
                                      .key = k,
                                      .key_len = kn,
                                      .value = v,
                                      .value_len = vn};
            for (;;) {
                rc = nagare_send(p, &r);
                if (rc != -NAGARE_EBUSY) {
                    break;
                }
                int prc = nagare_producer_poll(p, 10);
                cr_assert_geq(prc, 0);
            }
            cr_assert_eq(rc, 0, "send: %s", nagare_strerror(rc));
        }
    }
    rc = nagare_producer_flush(p, WAIT_MS);
    cr_assert_eq(rc, 0, "flush: %s", nagare_strerror(rc));
    nagare_producer_destroy(p);
}

/* ---- members: one consumer each, with what its callbacks saw ---- */

/* Records seen, per partition and offset, by the members of one group. */
struct tally {
    int32_t parts;
    uint32_t cap;   /* offsets per partition tracked */
    uint32_t *seen; /* [parts][cap] */
    uint64_t total; /* distinct records seen */
};

struct member {
    nagare_consumer *c;
    struct tally *t;
    const char *topic;
    bool holds[PARTS_MAX];
    int64_t started_at[PARTS_MAX]; /* offset of the last assignment, -1 */
    int64_t first_seen[PARTS_MAX]; /* first offset polled since that, -1 */
    uint32_t rebalances;
    uint32_t revoked_total;
    uint32_t commits_reported;
    int commit_err;
    uint64_t records;
};

static void tally_init(struct tally *t, int32_t parts, uint32_t cap)
{
    *t = (struct tally){.parts = parts, .cap = cap};
    t->seen = calloc((size_t)parts * cap, sizeof(*t->seen));
    cr_assert_not_null(t->seen);
}

static void tally_fini(struct tally *t) { free(t->seen); }

static uint32_t tally_at(const struct tally *t, int32_t p, int64_t off)
{
    return t->seen[(size_t)p * t->cap + (size_t)off];
}

/* Every offset of [from, to) of every partition was seen. */
static void tally_assert_all(const struct tally *t, int64_t from, int64_t to)
{
    for (int32_t p = 0; p < t->parts; p++) {
        for (int64_t o = from; o < to; o++) {
            cr_assert_gt(tally_at(t, p, o), 0, "partition %d offset %ld never consumed", p,
                         (long)o);
        }
    }
}

static void on_rebalance(nagare_consumer *c, const struct nagare_topic_partition *revoked,
                         size_t revoked_count, const struct nagare_topic_partition *assigned,
                         size_t assigned_count, void *opaque)
{
    struct member *m = opaque;
    cr_assert_eq(m->c, c);
    m->rebalances++;
    for (size_t i = 0; i < revoked_count; i++) {
        cr_assert_str_eq(revoked[i].topic, m->topic);
        cr_assert(m->holds[revoked[i].partition], "revoked %d, not held", revoked[i].partition);
        m->holds[revoked[i].partition] = false;
        m->revoked_total++;
    }
    for (size_t i = 0; i < assigned_count; i++) {
        int32_t p = assigned[i].partition;
        cr_assert_str_eq(assigned[i].topic, m->topic);
        cr_assert(p >= 0 && p < PARTS_MAX && !m->holds[p], "assigned %d twice", p);
        cr_assert_geq(assigned[i].offset, 0);
        m->holds[p] = true;
        m->started_at[p] = assigned[i].offset;
        m->first_seen[p] = -1;
    }
    /* from a callback the group calls refuse */
    cr_assert_eq(nagare_consumer_commit(c, false), -NAGARE_EBADARG);
    const struct nagare_message *msg;
    cr_assert_eq(nagare_consumer_poll(c, 0, &msg), -NAGARE_EBADARG);
}

static void on_commit(nagare_consumer *c, int err, const struct nagare_topic_partition *offsets,
                      size_t count, void *opaque)
{
    struct member *m = opaque;
    cr_assert_eq(m->c, c);
    m->commits_reported++;
    m->commit_err = err;
    for (size_t i = 0; i < count; i++) {
        cr_assert_geq(offsets[i].offset, 0);
    }
}

static void member_open(struct member *m, struct tally *t, const char *topic, const char *group,
                        bool auto_commit)
{
    *m = (struct member){.t = t, .topic = topic};
    for (int i = 0; i < PARTS_MAX; i++) {
        m->started_at[i] = -1;
        m->first_seen[i] = -1;
    }
    struct nagare_consumer_config cc;
    nagare_consumer_config_default(&cc);
    cc.bootstrap = B.bootstrap;
    cc.session_timeout_ms = SESSION_MS;
    cc.fetch_wait_max_ms = 100;
    cc.request_timeout_ms = 10000;
    cc.auto_commit = auto_commit;
    cc.auto_commit_interval_ms = 200;
    cc.on_rebalance = on_rebalance;
    cc.on_commit = on_commit;
    cc.opaque = m;
    int rc = nagare_consumer_new(&cc, &m->c);
    cr_assert_eq(rc, 0, "consumer: %s", nagare_strerror(rc));
    const char *topics[] = {topic};
    rc = nagare_consumer_subscribe(m->c, group, topics, 1);
    cr_assert_eq(rc, 0, "subscribe: %s", nagare_strerror(rc));
}

/* One record polled: it belongs to a partition the member holds, comes in
 * order, and is counted. */
static void member_record(struct member *m, const struct nagare_message *msg)
{
    int32_t p = msg->partition;
    cr_assert(p >= 0 && p < m->t->parts && m->holds[p],
              "record of partition %d, which the member does not hold", p);
    cr_assert_lt((uint64_t)msg->offset, m->t->cap);
    if (m->first_seen[p] < 0) {
        m->first_seen[p] = msg->offset;
        cr_assert_eq(msg->offset, m->started_at[p], "partition %d started at %ld, not %ld", p,
                     (long)msg->offset, (long)m->started_at[p]);
    }
    char want[32];
    int n = snprintf(want, sizeof(want), "%d:%ld", p, (long)msg->offset);
    cr_assert_eq(msg->value_len, n);
    cr_assert_eq(memcmp(msg->value, want, (size_t)n), 0);
    uint32_t *s = &m->t->seen[(size_t)p * m->t->cap + (size_t)msg->offset];
    m->t->total += *s == 0 ? 1 : 0;
    (*s)++;
    m->records++;
}

/* Polls m for up to max records or ms milliseconds. */
static void member_poll(struct member *m, uint32_t max, int ms)
{
    int64_t until = clock_mono_ms() + ms;
    for (uint32_t i = 0; i < max; i++) {
        const struct nagare_message *msg;
        int64_t left = until - clock_mono_ms();
        int rc = nagare_consumer_poll(m->c, left > 0 ? (int)left : 0, &msg);
        cr_assert_geq(rc, 0, "poll: %s", nagare_strerror(rc));
        if (rc == 0) {
            return;
        }
        member_record(m, msg);
    }
}

/* No partition is read by two members; returns how many are read. */
static uint32_t assert_no_overlap(struct member *ms, uint32_t n)
{
    int holders[PARTS_MAX] = {0};
    uint32_t held = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (ms[i].c == NULL) {
            continue;
        }
        const struct nagare_topic_partition *v;
        size_t count;
        cr_assert_eq(nagare_consumer_assignment(ms[i].c, &v, &count), 0);
        for (size_t k = 0; k < count; k++) {
            cr_assert(ms[i].holds[v[k].partition], "member %u reads %d unannounced", i,
                      v[k].partition);
            holders[v[k].partition]++;
            cr_assert_eq(holders[v[k].partition], 1, "partition %d read by two members",
                         v[k].partition);
            held++;
        }
    }
    return held;
}

static uint32_t held_by(const struct member *m, int32_t parts)
{
    uint32_t n = 0;
    for (int32_t p = 0; p < parts; p++) {
        n += m->holds[p] ? 1 : 0;
    }
    return n;
}

/* Polls every member in turn until each holds its fair share of `parts`
 * partitions (all held) and `total` distinct records were seen. */
static void run_until(struct member *ms, uint32_t n, int32_t parts, uint64_t total)
{
    int64_t deadline = clock_mono_ms() + WAIT_MS;
    uint32_t live = 0;
    for (uint32_t i = 0; i < n; i++) {
        live += ms[i].c != NULL ? 1 : 0;
    }
    for (;;) {
        for (uint32_t i = 0; i < n; i++) {
            if (ms[i].c != NULL) {
                member_poll(&ms[i], 50, 20);
            }
        }
        uint32_t held = assert_no_overlap(ms, n);
        bool fair = held == (uint32_t)parts;
        for (uint32_t i = 0; i < n && fair; i++) {
            uint32_t h = ms[i].c != NULL ? held_by(&ms[i], parts) : 0;
            fair = ms[i].c == NULL ||
                   (h >= (uint32_t)parts / live && h <= ((uint32_t)parts + live - 1) / live);
        }
        if (fair && ms[0].t->total >= total) {
            return;
        }
        cr_assert_lt(clock_mono_ms(), deadline,
                     "no fair share and %lu records within %d ms (%lu seen)", (unsigned long)total,
                     WAIT_MS, (unsigned long)ms[0].t->total);
    }
}

static void member_close(struct member *m)
{
    nagare_consumer_destroy(m->c);
    m->c = NULL;
}

static const struct nagare_group_info *describe(nagare_admin *a, const char *group)
{
    const struct nagare_group_info *info = NULL;
    int rc = nagare_group_describe(a, group, &info);
    cr_assert_eq(rc, 0, "describe %s: %s", group, nagare_strerror(rc));
    return info;
}

/* The group's committed offset of (topic, p), or -1. */
static int64_t committed_of(const struct nagare_group_info *info, const char *topic, int32_t p)
{
    for (size_t i = 0; i < info->offset_count; i++) {
        if (info->offsets[i].partition == p && strcmp(info->offsets[i].topic, topic) == 0) {
            return info->offsets[i].committed;
        }
    }
    return -1;
}

/* ---- pub/sub groups ---- */

Test(client_groups, three_members_split_six_partitions_each_held_once)
{
    bk_start(&B);
    cs_create_topic(&B, "six", 6);
    produce("six", 6, 50, 0);
    struct tally t;
    tally_init(&t, 6, 1000);
    struct member ms[3];
    member_open(&ms[0], &t, "six", "g3", false);
    run_until(ms, 1, 6, 300); /* alone, it reads all six */
    cr_assert_eq(held_by(&ms[0], 6), 6);
    member_open(&ms[1], &t, "six", "g3", false);
    member_open(&ms[2], &t, "six", "g3", false);
    produce("six", 6, 50, 50);
    run_until(ms, 3, 6, 600);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(held_by(&ms[i], 6), 2, "member %d holds %u", i, held_by(&ms[i], 6));
    }
    tally_assert_all(&t, 0, 100);
    cr_assert_geq(ms[0].revoked_total, 4, "the first member gave up four partitions");

    nagare_admin *a = cs_admin(&B);
    const struct nagare_group_info *info = describe(a, "g3");
    cr_assert_eq(info->member_count, 3);
    size_t assigned = 0;
    for (size_t i = 0; i < info->member_count; i++) {
        assigned += info->members[i].assignment_count;
    }
    cr_assert_eq(assigned, 6);
    nagare_group_info_free(a, info);
    for (int i = 0; i < 3; i++) {
        member_close(&ms[i]);
    }
    /* Every member left and nothing was committed: the group is gone. */
    cr_assert_eq(nagare_group_describe(a, "g3", &info), -NAGARE_ENOTFOUND);
    nagare_admin_destroy(a);
    tally_fini(&t);
    bk_stop(&B);
}

/* Positions of the partitions m reads now, by partition (-1: not read). */
static void positions_of(struct member *m, int64_t *pos)
{
    for (int i = 0; i < PARTS_MAX; i++) {
        pos[i] = -1;
    }
    const struct nagare_topic_partition *v;
    size_t count;
    cr_assert_eq(nagare_consumer_assignment(m->c, &v, &count), 0);
    for (size_t k = 0; k < count; k++) {
        pos[v[k].partition] = v[k].offset;
    }
}

Test(client_groups, a_member_that_leaves_hands_over_at_its_committed_offsets)
{
    bk_start(&B);
    cs_create_topic(&B, "leave", 6);
    struct tally t;
    tally_init(&t, 6, 1000);
    struct member ms[3];
    for (int i = 0; i < 3; i++) {
        member_open(&ms[i], &t, "leave", "gl", false);
    }
    run_until(ms, 3, 6, 0);
    produce("leave", 6, 100, 0);
    /* Members 0 and 1 read all of theirs; member 2 only some of its own. */
    int64_t deadline = clock_mono_ms() + WAIT_MS;
    while (ms[2].records < 60 || ms[0].records + ms[1].records < 400) {
        member_poll(&ms[0], 100, 10);
        member_poll(&ms[1], 100, 10);
        if (ms[2].records < 60) {
            member_poll(&ms[2], 3, 10);
        }
        assert_no_overlap(ms, 3);
        cr_assert_lt(clock_mono_ms(), deadline);
    }
    cr_assert_eq(nagare_consumer_commit(ms[2].c, false), 0);
    int64_t pos[PARTS_MAX];
    positions_of(&ms[2], pos);
    nagare_admin *a = cs_admin(&B);
    const struct nagare_group_info *info = describe(a, "gl");
    for (int32_t p = 0; p < 6; p++) {
        if (pos[p] >= 0) {
            cr_assert_eq(committed_of(info, "leave", p), pos[p], "partition %d", p);
            cr_assert_lt(pos[p], 100, "member 2 should not have finished partition %d", p);
        }
    }
    nagare_group_info_free(a, info);
    cr_assert_eq(nagare_consumer_unsubscribe(ms[2].c), 0);
    cr_assert_eq(held_by(&ms[2], 6), 0, "unsubscribe reports every partition revoked");
    member_close(&ms[2]);

    run_until(ms, 3, 6, 600);
    for (int32_t p = 0; p < 6; p++) {
        if (pos[p] < 0) {
            continue;
        }
        struct member *heir = ms[0].holds[p] ? &ms[0] : &ms[1];
        cr_assert(heir->holds[p]);
        cr_assert_eq(heir->started_at[p], pos[p], "partition %d resumed at %ld, committed %ld", p,
                     (long)heir->started_at[p], (long)pos[p]);
    }
    /* Nothing skipped, and nothing read twice: the hand-over was exact. */
    for (int32_t p = 0; p < 6; p++) {
        for (int64_t o = 0; o < 100; o++) {
            cr_assert_eq(tally_at(&t, p, o), 1, "partition %d offset %ld read %u times", p, (long)o,
                         tally_at(&t, p, o));
        }
    }
    member_close(&ms[0]);
    member_close(&ms[1]);
    nagare_admin_destroy(a);
    tally_fini(&t);
    bk_stop(&B);
}

/* The killed member: reads slowly and commits every 5 records, until the
 * parent kills it. Never returns. */
static void child_member(const char *topic, const char *group)
{
    struct nagare_consumer_config cc;
    nagare_consumer_config_default(&cc);
    cc.bootstrap = B.bootstrap;
    cc.session_timeout_ms = SESSION_MS;
    cc.fetch_wait_max_ms = 100;
    cc.auto_commit = false;
    nagare_consumer *c;
    const char *topics[] = {topic};
    if (nagare_consumer_new(&cc, &c) != 0 || nagare_consumer_subscribe(c, group, topics, 1) != 0) {
        _exit(2);
    }
    for (uint32_t since = 0;;) {
        const struct nagare_message *m;
        int rc = nagare_consumer_poll(c, 100, &m);
        if (rc < 0) {
            _exit(3);
        }
        if (rc == 1) {
            usleep(20000);
            if (++since == 5) {
                since = 0;
                if (nagare_consumer_commit(c, false) < 0) {
                    _exit(4);
                }
            }
        }
    }
}

/* Polls the two survivors until the child holds the two partitions they
 * do not and has committed in both; *theirs gets those two. */
static void wait_child_settled(struct member *ms, nagare_admin *a, int32_t theirs[2])
{
    int64_t deadline = clock_mono_ms() + WAIT_MS;
    for (bool ready = false; !ready;) {
        member_poll(&ms[0], 200, 50);
        member_poll(&ms[1], 200, 50);
        cr_assert_lt(clock_mono_ms(), deadline, "the child never settled");
        if (assert_no_overlap(ms, 2) != 4) {
            continue;
        }
        const struct nagare_group_info *info = describe(a, "gk");
        ready = info->member_count == 3;
        for (int32_t p = 0, k = 0; p < 6 && ready; p++) {
            if (!ms[0].holds[p] && !ms[1].holds[p]) {
                theirs[k++] = p;
                ready = committed_of(info, "kill", p) >= 10;
            }
        }
        nagare_group_info_free(a, info);
    }
}

/* The survivor that holds partition p. */
static struct member *heir_of(struct member *ms, int32_t p)
{
    return ms[0].holds[p] ? &ms[0] : &ms[1];
}

/* Polls the survivors until they hold all six partitions and have read
 * the child's two from where each heir started to the end. */
static void wait_taken_over(struct member *ms, const int32_t theirs[2])
{
    int64_t deadline = clock_mono_ms() + WAIT_MS;
    for (bool done = false; !done;) {
        member_poll(&ms[0], 200, 50);
        member_poll(&ms[1], 200, 50);
        done = assert_no_overlap(ms, 2) == 6;
        for (int k = 0; k < 2 && done; k++) {
            int64_t from = heir_of(ms, theirs[k])->started_at[theirs[k]];
            for (int64_t o = from; o < 200 && done; o++) {
                done = tally_at(ms[0].t, theirs[k], o) > 0;
            }
        }
        cr_assert(done || clock_mono_ms() < deadline,
                  "the killed member's partitions were not taken over");
    }
}

Test(client_groups, a_killed_member_hands_over_at_its_committed_offsets_after_its_session)
{
    bk_start(&B);
    cs_create_topic(&B, "kill", 6);
    produce("kill", 6, 200, 0);
    pid_t child = fork();
    cr_assert_geq(child, 0);
    if (child == 0) {
        child_member("kill", "gk");
    }
    struct tally t;
    tally_init(&t, 6, 1000);
    struct member ms[2];
    member_open(&ms[0], &t, "kill", "gk", false);
    member_open(&ms[1], &t, "kill", "gk", false);
    nagare_admin *a = cs_admin(&B);
    int32_t theirs[2] = {-1, -1};
    wait_child_settled(ms, a, theirs);
    cr_assert_eq(kill(child, SIGKILL), 0);
    int status;
    cr_assert_eq(waitpid(child, &status, 0), child);
    cr_assert(WIFSIGNALED(status), "the child exited by itself: %#x", status);
    const struct nagare_group_info *info = describe(a, "gk");
    int64_t committed[2] = {committed_of(info, "kill", theirs[0]),
                            committed_of(info, "kill", theirs[1])};
    nagare_group_info_free(a, info);
    cr_assert(committed[0] > 0 && committed[1] > 0);
    /* A survivor may have read some of these partitions before the child
     * got them: what matters is what is read from now on. */
    uint32_t before[2][200];
    for (int k = 0; k < 2; k++) {
        for (int64_t o = 0; o < 200; o++) {
            before[k][o] = tally_at(&t, theirs[k], o);
        }
    }
    /* After its session the two survivors take its partitions over at the
     * offsets it committed and read on to the end; nothing below again. A
     * commit the child sent just before the kill may still land after the
     * describe above, so an heir may start past what it showed, never
     * before, and always at what the group then holds. */
    wait_taken_over(ms, theirs);
    info = describe(a, "gk");
    for (int k = 0; k < 2; k++) {
        struct member *heir = heir_of(ms, theirs[k]);
        int64_t started = heir->started_at[theirs[k]];
        cr_assert_geq(started, committed[k], "partition %d started below its commit", theirs[k]);
        cr_assert_leq(started, committed_of(info, "kill", theirs[k]));
        for (int64_t o = 0; o < committed[k]; o++) {
            cr_assert_eq(tally_at(&t, theirs[k], o), before[k][o],
                         "partition %d offset %ld read again below the commit", theirs[k], (long)o);
        }
    }
    nagare_group_info_free(a, info);
    member_close(&ms[0]);
    member_close(&ms[1]);
    nagare_admin_destroy(a);
    tally_fini(&t);
    bk_stop(&B);
}

Test(client_groups, two_groups_on_one_topic_each_see_every_record)
{
    bk_start(&B);
    cs_create_topic(&B, "both", 3);
    produce("both", 3, 100, 0);
    struct tally ta;
    struct tally tb;
    tally_init(&ta, 3, 1000);
    tally_init(&tb, 3, 1000);
    struct member ga[2];
    struct member gb[1];
    member_open(&ga[0], &ta, "both", "ga", true);
    member_open(&ga[1], &ta, "both", "ga", true);
    member_open(&gb[0], &tb, "both", "gb", true);
    run_until(ga, 2, 3, 300);
    run_until(gb, 1, 3, 300);
    tally_assert_all(&ta, 0, 100);
    tally_assert_all(&tb, 0, 100);
    member_close(&ga[0]);
    member_close(&ga[1]);
    member_close(&gb[0]);
    /* Each group committed its own offsets on close. */
    nagare_admin *a = cs_admin(&B);
    for (int g = 0; g < 2; g++) {
        const struct nagare_group_info *info = describe(a, g == 0 ? "ga" : "gb");
        cr_assert_eq(info->member_count, 0);
        cr_assert_eq(info->offset_count, 3);
        for (size_t i = 0; i < info->offset_count; i++) {
            cr_assert_eq(info->offsets[i].committed, 100);
            cr_assert_eq(info->offsets[i].lag_records, 0);
        }
        nagare_group_info_free(a, info);
    }
    nagare_admin_destroy(a);
    tally_fini(&ta);
    tally_fini(&tb);
    bk_stop(&B);
}

Test(client_groups, committed_offsets_survive_a_broker_restart_and_the_member_rejoins)
{
    bk_start(&B);
    cs_create_topic(&B, "restart", 2);
    produce("restart", 2, 100, 0);
    struct tally t;
    tally_init(&t, 2, 1000);
    struct member m;
    member_open(&m, &t, "restart", "gr", false);
    run_until(&m, 1, 2, 200);
    cr_assert_eq(nagare_consumer_commit(m.c, false), 0);
    bk_kill_restart(&B, 300);
    /* The member finds itself forgotten (its partitions reported revoked),
     * joins again, and gets them back at the committed offsets. */
    int64_t deadline = clock_mono_ms() + WAIT_MS;
    while (m.revoked_total < 2 || held_by(&m, 2) < 2) {
        member_poll(&m, 10, 50);
        cr_assert_lt(clock_mono_ms(), deadline, "the member did not join again");
    }
    produce("restart", 2, 100, 100);
    run_until(&m, 1, 2, 400);
    for (int32_t p = 0; p < 2; p++) {
        cr_assert_eq(m.started_at[p], 100);
        for (int64_t o = 0; o < 200; o++) {
            cr_assert_eq(tally_at(&t, p, o), 1, "partition %d offset %ld", p, (long)o);
        }
    }
    member_close(&m);
    nagare_admin *a = cs_admin(&B);
    const struct nagare_group_info *info = describe(a, "gr");
    cr_assert_eq(committed_of(info, "restart", 0), 100, "not committed: auto-commit is off");
    nagare_group_info_free(a, info);
    nagare_admin_destroy(a);
    tally_fini(&t);
    bk_stop(&B);
}

Test(client_groups, auto_commit_commits_on_its_interval_and_on_close)
{
    bk_start(&B);
    cs_create_topic(&B, "auto", 1);
    produce("auto", 1, 100, 0);
    struct tally t;
    tally_init(&t, 1, 1000);
    struct member m;
    member_open(&m, &t, "auto", "gauto", true);
    run_until(&m, 1, 1, 100);
    member_poll(&m, 10, 600); /* idle: the interval (200 ms) passes */
    cr_assert_geq(m.commits_reported, 1);
    cr_assert_eq(m.commit_err, 0, "%s", nagare_strerror(m.commit_err));
    nagare_admin *a = cs_admin(&B);
    const struct nagare_group_info *info = describe(a, "gauto");
    cr_assert_eq(committed_of(info, "auto", 0), 100);
    cr_assert_eq(info->member_count, 1);
    nagare_group_info_free(a, info);
    produce("auto", 1, 50, 100);
    run_until(&m, 1, 1, 150);
    member_close(&m);
    info = describe(a, "gauto");
    cr_assert_eq(committed_of(info, "auto", 0), 150, "destroy commits");
    cr_assert_eq(info->member_count, 0, "destroy leaves");
    nagare_group_info_free(a, info);

    /* An explicit async commit reports through on_commit. */
    struct tally t2;
    tally_init(&t2, 1, 1000);
    member_open(&m, &t2, "auto", "gasync", false);
    run_until(&m, 1, 1, 150);
    cr_assert_eq(nagare_consumer_commit(m.c, true), 0);
    int64_t deadline = clock_mono_ms() + WAIT_MS;
    while (m.commits_reported == 0) {
        member_poll(&m, 10, 50);
        cr_assert_lt(clock_mono_ms(), deadline);
    }
    cr_assert_eq(m.commit_err, 0);
    info = describe(a, "gasync");
    cr_assert_eq(committed_of(info, "auto", 0), 150);
    nagare_group_info_free(a, info);
    cr_assert_eq(nagare_consumer_commit(m.c, false), 0, "nothing moved: nothing to do");
    member_close(&m);
    nagare_admin_destroy(a);
    tally_fini(&t);
    tally_fini(&t2);
    bk_stop(&B);
}

Test(client_groups, subscribe_and_commit_refuse_bad_arguments)
{
    bk_start(&B);
    cs_create_topic(&B, "args", 1);
    struct nagare_consumer_config cc;
    nagare_consumer_config_default(&cc);
    cc.bootstrap = B.bootstrap;
    nagare_consumer *c;
    cc.session_timeout_ms = 500;
    cr_assert_eq(nagare_consumer_new(&cc, &c), -NAGARE_EBADARG);
    cc.session_timeout_ms = SESSION_MS;
    cr_assert_eq(nagare_consumer_new(&cc, &c), 0);
    const char *one[] = {"args"};
    const char *bad[] = {"a/b"};
    const char *many[65];
    for (int i = 0; i < 65; i++) {
        many[i] = "args";
    }
    cr_assert_eq(nagare_consumer_subscribe(c, "", one, 1), -NAGARE_EBADNAME);
    cr_assert_eq(nagare_consumer_subscribe(c, "g\n", one, 1), -NAGARE_EBADNAME);
    cr_assert_eq(nagare_consumer_subscribe(c, "g", one, 0), -NAGARE_EBADARG);
    cr_assert_eq(nagare_consumer_subscribe(c, "g", many, 65), -NAGARE_EBADARG);
    cr_assert_eq(nagare_consumer_subscribe(c, "g", bad, 1), -NAGARE_EBADNAME);
    cr_assert_eq(nagare_consumer_commit(c, false), -NAGARE_EBADARG, "not subscribed");
    cr_assert_eq(nagare_consumer_unsubscribe(c), 0, "not subscribed: nothing to do");
    cr_assert_eq(nagare_consumer_assign(c, "args", 0, 0), 0);
    cr_assert_eq(nagare_consumer_subscribe(c, "g", many, 64), 0, "duplicates are one topic");
    const struct nagare_topic_partition *v;
    size_t n;
    cr_assert_eq(nagare_consumer_assignment(c, &v, &n), 0);
    cr_assert_eq(n, 0, "subscribing drops the assigned partitions");
    cr_assert_eq(nagare_consumer_assign(c, "args", 0, 0), -NAGARE_EBADARG);
    cr_assert_eq(nagare_consumer_unsubscribe(c), 0);
    cr_assert_eq(nagare_consumer_assign(c, "args", 0, 0), 0, "after unsubscribe: assign again");
    nagare_consumer_destroy(c);
    bk_stop(&B);
}

/* ---- share consumers ---- */

#define SHARE_RECORDS_MAX 2000

/* What the share consumers of a test saw. */
struct qtally {
    uint32_t delivered[SHARE_RECORDS_MAX];
    int holder[SHARE_RECORDS_MAX]; /* consumer holding it now, or -1 */
    uint32_t accepted_ok[SHARE_RECORDS_MAX];
    uint32_t ack_failed;
    int ack_err_last;
    uint32_t accepted_total;
};

struct sharer {
    nagare_share_consumer *sc;
    struct qtally *q;
    int idx;
    uint32_t records;
};

static void qtally_init(struct qtally *q)
{
    memset(q, 0, sizeof(*q));
    for (int i = 0; i < SHARE_RECORDS_MAX; i++) {
        q->holder[i] = -1;
    }
}

static void on_ack(nagare_share_consumer *sc, const struct nagare_ack_report *r, void *opaque)
{
    struct sharer *s = opaque;
    cr_assert_eq(s->sc, sc);
    const struct nagare_message *m;
    cr_assert_eq(nagare_share_poll(sc, 0, &m), -NAGARE_EBADARG, "poll from on_ack");
    if (r->err != 0) {
        s->q->ack_failed++;
        s->q->ack_err_last = r->err;
        return;
    }
    if (r->type == NAGARE_ACK_ACCEPT && r->offset >= 0 && r->offset < SHARE_RECORDS_MAX) {
        s->q->accepted_ok[r->offset]++;
        s->q->accepted_total++;
    }
}

static void sharer_open(struct sharer *s, struct qtally *q, int idx, const char *topic,
                        const char *group, uint32_t records_max, int close_ack)
{
    *s = (struct sharer){.q = q, .idx = idx};
    struct nagare_share_consumer_config c;
    nagare_share_consumer_config_default(&c);
    c.bootstrap = B.bootstrap;
    c.records_max = records_max;
    c.fetch_wait_max_ms = 100;
    c.request_timeout_ms = 10000;
    c.close_ack = close_ack;
    c.on_ack = on_ack;
    c.opaque = s;
    int rc = nagare_share_consumer_new(&c, &s->sc);
    cr_assert_eq(rc, 0, "share consumer: %s", nagare_strerror(rc));
    const char *topics[] = {topic};
    rc = nagare_share_subscribe(s->sc, group, topics, 1);
    cr_assert_eq(rc, 0, "share subscribe: %s", nagare_strerror(rc));
}

/* Polls up to max records into offs (the consumer then holds them). */
static uint32_t sharer_poll(struct sharer *s, int64_t *offs, uint32_t max, int ms,
                            int32_t want_count)
{
    uint32_t n = 0;
    int64_t until = clock_mono_ms() + ms;
    while (n < max) {
        const struct nagare_message *m;
        int64_t left = until - clock_mono_ms();
        int rc = nagare_share_poll(s->sc, left > 0 ? (int)left : 0, &m);
        cr_assert_geq(rc, 0, "share poll: %s", nagare_strerror(rc));
        if (rc == 0) {
            break;
        }
        cr_assert(m->offset >= 0 && m->offset < SHARE_RECORDS_MAX);
        if (want_count > 0) {
            cr_assert_eq(m->delivery_count, want_count, "offset %ld delivered %d times",
                         (long)m->offset, m->delivery_count);
        }
        cr_assert_eq(s->q->holder[m->offset], -1, "offset %ld held by %d and %d at once",
                     (long)m->offset, s->q->holder[m->offset], s->idx);
        s->q->holder[m->offset] = s->idx;
        s->q->delivered[m->offset]++;
        s->records++;
        offs[n++] = m->offset;
    }
    return n;
}

static void sharer_ack(struct sharer *s, const char *topic, const int64_t *offs, uint32_t n,
                       enum nagare_ack_type type)
{
    for (uint32_t i = 0; i < n; i++) {
        s->q->holder[offs[i]] = -1;
        int rc = nagare_share_ack_offset(s->sc, topic, 0, offs[i], type);
        cr_assert_eq(rc, 0, "ack %ld: %s", (long)offs[i], nagare_strerror(rc));
    }
}

Test(client_groups, four_share_consumers_on_one_partition_accept_each_record_once)
{
    bk_start(&B);
    cs_create_topic(&B, "queue", 1);
    produce("queue", 1, SHARE_RECORDS_MAX, 0);
    struct qtally *q = malloc(sizeof(*q));
    cr_assert_not_null(q);
    qtally_init(q);
    struct sharer s[4];
    for (int i = 0; i < 4; i++) {
        sharer_open(&s[i], q, i, "queue", "workers", 50, NAGARE_ACK_ACCEPT);
    }
    int64_t offs[50];
    int64_t deadline = clock_mono_ms() + WAIT_MS;
    while (q->accepted_total < SHARE_RECORDS_MAX) {
        for (int i = 0; i < 4; i++) {
            /* Hold a batch while the others fetch, then accept it. */
            uint32_t n = sharer_poll(&s[i], offs, 50, 20, 1);
            sharer_ack(&s[i], "queue", offs, n, NAGARE_ACK_ACCEPT);
        }
        cr_assert_lt(clock_mono_ms(), deadline, "%u accepted", q->accepted_total);
    }
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(nagare_share_commit(s[i].sc), 0);
        cr_assert_gt(s[i].records, 0, "consumer %d got nothing", i);
    }
    cr_assert_eq(q->ack_failed, 0, "%s", nagare_strerror(q->ack_err_last));
    for (int o = 0; o < SHARE_RECORDS_MAX; o++) {
        cr_assert_eq(q->delivered[o], 1, "offset %d delivered %u times", o, q->delivered[o]);
        cr_assert_eq(q->accepted_ok[o], 1, "offset %d accepted %u times", o, q->accepted_ok[o]);
    }
    /* Nothing more comes. */
    uint32_t n = sharer_poll(&s[0], offs, 50, 300, 0);
    cr_assert_eq(n, 0);
    for (int i = 0; i < 4; i++) {
        nagare_share_consumer_destroy(s[i].sc);
    }
    free(q);
    bk_stop(&B);
}

/* The killed share consumer: acquires records_max records, says so on
 * the pipe, and waits to be killed. */
static void child_sharer(int fd)
{
    struct nagare_share_consumer_config c;
    nagare_share_consumer_config_default(&c);
    c.bootstrap = B.bootstrap;
    c.records_max = 30;
    nagare_share_consumer *sc;
    const char *topics[] = {"lease"};
    if (nagare_share_consumer_new(&c, &sc) != 0 ||
        nagare_share_subscribe(sc, "lg", topics, 1) != 0) {
        _exit(2);
    }
    for (uint32_t n = 0; n < 30;) {
        const struct nagare_message *m;
        int rc = nagare_share_poll(sc, 1000, &m);
        if (rc < 0) {
            _exit(3);
        }
        n += (uint32_t)rc;
    }
    if (write(fd, "x", 1) != 1) {
        _exit(4);
    }
    for (;;) {
        pause();
    }
}

Test(client_groups, a_share_consumer_killed_mid_lease_leaves_its_records_to_others)
{
    bk_set(&B, "share_lock_ms=1500");
    bk_start(&B);
    cs_create_topic(&B, "lease", 1);
    produce("lease", 1, 100, 0);
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t child = fork();
    cr_assert_geq(child, 0);
    if (child == 0) {
        child_sharer(fds[1]);
    }
    char x;
    cr_assert_eq(read(fds[0], &x, 1), 1, "the child acquired nothing");
    cr_assert_eq(kill(child, SIGKILL), 0);
    int status;
    cr_assert_eq(waitpid(child, &status, 0), child);
    int64_t killed_at = clock_mono_ms();
    struct qtally *q = malloc(sizeof(*q));
    cr_assert_not_null(q);
    qtally_init(q);
    struct sharer s;
    sharer_open(&s, q, 0, "lease", "lg", 100, NAGARE_ACK_ACCEPT);
    int64_t offs[100];
    int64_t deadline = clock_mono_ms() + WAIT_MS;
    int64_t first_redelivery_ms = -1;
    while (q->accepted_total < 100) {
        const struct nagare_message *m;
        int rc = nagare_share_poll(s.sc, 100, &m);
        cr_assert_geq(rc, 0);
        if (rc == 1) {
            /* the child's 30 come back with their count raised */
            cr_assert_eq(m->delivery_count, m->offset < 30 ? 2 : 1, "offset %ld count %d",
                         (long)m->offset, m->delivery_count);
            if (m->offset < 30 && first_redelivery_ms < 0) {
                first_redelivery_ms = clock_mono_ms();
            }
            q->delivered[m->offset]++;
            cr_assert_eq(nagare_share_ack(s.sc, m, NAGARE_ACK_ACCEPT), 0);
            cr_assert_eq(nagare_share_ack(s.sc, m, NAGARE_ACK_ACCEPT), -NAGARE_ENOT_ACQUIRED,
                         "acknowledged twice");
        }
        cr_assert_lt(clock_mono_ms(), deadline);
    }
    (void)offs;
    cr_assert_geq(first_redelivery_ms - killed_at, 1000, "before the lock could expire");
    for (int o = 0; o < 100; o++) {
        cr_assert_eq(q->delivered[o], 1);
        cr_assert_eq(q->accepted_ok[o], 1);
    }
    nagare_share_consumer_destroy(s.sc);
    free(q);
    close(fds[0]);
    close(fds[1]);
    bk_stop(&B);
}

/* Produces one record with header h=v. */
static void produce_one(const char *topic, const char *key, const char *value)
{
    struct nagare_producer_config pc;
    nagare_producer_config_default(&pc);
    pc.bootstrap = B.bootstrap;
    nagare_producer *p;
    cr_assert_eq(nagare_producer_new(&pc, &p), 0);
    struct nagare_header h = {.key = "h", .key_len = 1, .value = "v", .value_len = 1};
    struct nagare_record r = {.topic = topic,
                              .partition = 0,
                              .key = key,
                              .key_len = (ssize_t)strlen(key),
                              .value = value,
                              .value_len = (ssize_t)strlen(value),
                              .headers = &h,
                              .header_count = 1};
    cr_assert_eq(nagare_send(p, &r), 0);
    cr_assert_eq(nagare_producer_flush(p, WAIT_MS), 0);
    nagare_producer_destroy(p);
}

static bool msg_is(const struct nagare_message *m, const char *value)
{
    return m->value_len == (ssize_t)strlen(value) && memcmp(m->value, value, strlen(value)) == 0;
}

/* The value of header `key` of m as a string (in buf), or NULL. */
static const char *header_of(const struct nagare_message *m, const char *key, char *buf, size_t cap)
{
    for (size_t i = 0; i < m->header_count; i++) {
        struct nagare_header h;
        nagare_message_header(m, i, &h);
        if (h.key_len == strlen(key) && memcmp(h.key, key, h.key_len) == 0) {
            size_t n = h.value_len < 0 ? 0 : (size_t)h.value_len;
            cr_assert_lt(n, cap);
            memcpy(buf, h.value, n);
            buf[n] = '\0';
            return buf;
        }
    }
    return NULL;
}

/* Reads dead letter `offset` of topic.dlq and checks what it carries. */
static void assert_dead_letter(int64_t offset, const char *value, int64_t src_offset,
                               const char *count, const char *reason)
{
    struct nagare_consumer_config cc;
    nagare_consumer_config_default(&cc);
    cc.bootstrap = B.bootstrap;
    nagare_consumer *c;
    cr_assert_eq(nagare_consumer_new(&cc, &c), 0);
    int64_t deadline = clock_mono_ms() + WAIT_MS;
    while (nagare_consumer_assign(c, "orders.dlq", 0, offset) != 0) { /* created on demand */
        cr_assert_lt(clock_mono_ms(), deadline, "no dead-letter topic");
        usleep(50 * 1000);
    }
    const struct nagare_message *m = NULL;
    int rc = nagare_consumer_poll(c, WAIT_MS, &m);
    cr_assert_eq(rc, 1, "no dead letter at %ld: %s", (long)offset, nagare_strerror(rc));
    cr_assert(msg_is(m, value));
    char buf[64];
    char want[32];
    snprintf(want, sizeof(want), "%ld", (long)src_offset);
    cr_assert_str_eq(header_of(m, "h", buf, sizeof(buf)), "v", "the record's own header");
    cr_assert_str_eq(header_of(m, "nagare.dlq.topic", buf, sizeof(buf)), "orders");
    cr_assert_str_eq(header_of(m, "nagare.dlq.partition", buf, sizeof(buf)), "0");
    cr_assert_str_eq(header_of(m, "nagare.dlq.offset", buf, sizeof(buf)), want);
    cr_assert_str_eq(header_of(m, "nagare.dlq.delivery-count", buf, sizeof(buf)), count);
    cr_assert_str_eq(header_of(m, "nagare.dlq.reason", buf, sizeof(buf)), reason);
    nagare_consumer_destroy(c);
}

/* Polls one record of the share consumer, within WAIT_MS. */
static const struct nagare_message *share_next(nagare_share_consumer *sc)
{
    const struct nagare_message *m = NULL;
    int rc = nagare_share_poll(sc, WAIT_MS, &m);
    cr_assert_eq(rc, 1, "share poll: %s", nagare_strerror(rc));
    return m;
}

Test(client_groups, poison_records_go_to_the_dead_letter_topic_and_redrive_brings_them_back)
{
    bk_start(&B);
    cs_create_topic(&B, "orders", 1);
    produce_one("orders", "key-0", "good-0");
    produce_one("orders", "key-1", "poison");
    produce_one("orders", "key-2", "good-2");
    struct qtally *q = malloc(sizeof(*q));
    cr_assert_not_null(q);
    qtally_init(q);
    struct sharer s;
    sharer_open(&s, q, 0, "orders", "og", 10, NAGARE_ACK_ACCEPT);
    /* Accept the good ones; release the poison each time it comes: its
     * fifth release sends it to orders.dlq. */
    int32_t poison_seen = 0;
    while (q->accepted_total < 2 || poison_seen < 5) {
        const struct nagare_message *m = share_next(s.sc);
        if (msg_is(m, "poison")) {
            cr_assert_eq(m->delivery_count, ++poison_seen);
            cr_assert_eq(nagare_share_ack(s.sc, m, NAGARE_ACK_RELEASE), 0);
        } else {
            cr_assert_eq(nagare_share_ack(s.sc, m, NAGARE_ACK_ACCEPT), 0);
        }
        cr_assert_eq(nagare_share_commit(s.sc), 0);
    }
    assert_dead_letter(0, "poison", 1, "5", "max deliveries");
    /* A reject sends a record there at once. */
    produce_one("orders", "key-3", "rejected");
    const struct nagare_message *m = share_next(s.sc);
    cr_assert(msg_is(m, "rejected"), "a dead letter is not delivered again");
    cr_assert_eq(m->delivery_count, 1);
    cr_assert_eq(nagare_share_ack(s.sc, m, NAGARE_ACK_REJECT), 0);
    cr_assert_eq(nagare_share_commit(s.sc), 0);
    assert_dead_letter(1, "rejected", 3, "1", "rejected");
    /* Redrive republishes both to orders: new records, delivered again. */
    nagare_admin *a = cs_admin(&B);
    int64_t n = -1;
    cr_assert_eq(nagare_dlq_redrive(a, "orders.dlq", &n), 0);
    cr_assert_eq(n, 2);
    cr_assert_eq(nagare_dlq_redrive(a, "orders.dlq", &n), 0);
    cr_assert_eq(n, 0, "a second redrive adds nothing");
    cr_assert_eq(nagare_dlq_redrive(a, "orders", &n), -NAGARE_EBADARG);
    cr_assert_eq(nagare_dlq_redrive(a, "nope.dlq", &n), -NAGARE_EUNKNOWN_TOPIC);
    nagare_admin_destroy(a);
    const char *back[] = {"poison", "rejected"};
    for (int i = 0; i < 2; i++) {
        m = share_next(s.sc);
        cr_assert(msg_is(m, back[i]), "redriven record %d", i);
        cr_assert_eq(m->delivery_count, 1);
        cr_assert_eq(m->offset, 4 + i);
        char buf[64];
        cr_assert_str_eq(header_of(m, "h", buf, sizeof(buf)), "v");
        cr_assert_null(header_of(m, "nagare.dlq.reason", buf, sizeof(buf)));
        cr_assert_eq(nagare_share_ack(s.sc, m, NAGARE_ACK_ACCEPT), 0);
    }
    cr_assert_eq(nagare_share_commit(s.sc), 0);
    nagare_share_consumer_destroy(s.sc);
    free(q);
    bk_stop(&B);
}

Test(client_groups, share_state_survives_a_broker_restart)
{
    bk_start(&B);
    cs_create_topic(&B, "durable", 1);
    produce("durable", 1, 100, 0);
    struct qtally *q = malloc(sizeof(*q));
    cr_assert_not_null(q);
    qtally_init(q);
    struct sharer s;
    sharer_open(&s, q, 0, "durable", "dg", 60, NAGARE_ACK_NONE);
    int64_t offs[60];
    uint32_t n = 0;
    int64_t deadline = clock_mono_ms() + WAIT_MS;
    while (n < 60) {
        n += sharer_poll(&s, offs + n, 60 - n, 100, 1);
        cr_assert_lt(clock_mono_ms(), deadline);
    }
    sharer_ack(&s, "durable", offs, 40, NAGARE_ACK_ACCEPT); /* 40..59 stay held */
    cr_assert_eq(nagare_share_commit(s.sc), 0);
    cr_assert_eq(q->accepted_total, 40);
    bk_kill_restart(&B, 300);
    nagare_share_consumer_destroy(s.sc);
    /* A new member gets everything not accepted, and nothing accepted. */
    qtally_init(q);
    sharer_open(&s, q, 0, "durable", "dg", 100, NAGARE_ACK_ACCEPT);
    int64_t got[100];
    n = 0;
    deadline = clock_mono_ms() + WAIT_MS;
    while (n < 60) {
        n += sharer_poll(&s, got + n, 100 - n, 100, 1);
        cr_assert_lt(clock_mono_ms(), deadline, "%u of 60 redelivered", n);
    }
    for (uint32_t i = 0; i < n; i++) {
        cr_assert_geq(got[i], 40, "accepted offset %ld came back", (long)got[i]);
    }
    sharer_ack(&s, "durable", got, n, NAGARE_ACK_ACCEPT);
    cr_assert_eq(nagare_share_commit(s.sc), 0);
    nagare_share_consumer_destroy(s.sc);
    bk_stop(&B);
    bk_start(&B);
    qtally_init(q);
    sharer_open(&s, q, 0, "durable", "dg", 100, NAGARE_ACK_ACCEPT);
    cr_assert_eq(sharer_poll(&s, got, 100, 500, 0), 0, "everything was accepted");
    nagare_share_consumer_destroy(s.sc);
    free(q);
    bk_stop(&B);
}

Test(client_groups, share_consumer_refuses_bad_arguments_and_unknown_records)
{
    bk_start(&B);
    cs_create_topic(&B, "sargs", 1);
    produce("sargs", 1, 3, 0);
    struct nagare_share_consumer_config c;
    nagare_share_consumer_config_default(&c);
    c.bootstrap = B.bootstrap;
    nagare_share_consumer *sc;
    c.records_max = 0;
    cr_assert_eq(nagare_share_consumer_new(&c, &sc), -NAGARE_EBADARG);
    c.records_max = 10;
    c.close_ack = 7;
    cr_assert_eq(nagare_share_consumer_new(&c, &sc), -NAGARE_EBADARG);
    c.close_ack = NAGARE_ACK_RELEASE;
    cr_assert_eq(nagare_share_consumer_new(&c, &sc), 0);
    const struct nagare_message *m;
    cr_assert_eq(nagare_share_poll(sc, 0, &m), -NAGARE_EBADARG, "not subscribed");
    const char *one[] = {"sargs"};
    const char *bad[] = {"a b"};
    cr_assert_eq(nagare_share_subscribe(sc, "", one, 1), -NAGARE_EBADNAME);
    cr_assert_eq(nagare_share_subscribe(sc, "g", bad, 1), -NAGARE_EBADNAME);
    cr_assert_eq(nagare_share_subscribe(sc, "g", one, 0), -NAGARE_EBADARG);
    cr_assert_eq(nagare_share_subscribe(sc, "g", one, 1), 0);
    cr_assert_eq(nagare_share_subscribe(sc, "g", one, 1), -NAGARE_EBADARG, "once only");
    cr_assert_eq(nagare_share_ack_offset(sc, "sargs", 0, 0, NAGARE_ACK_ACCEPT),
                 -NAGARE_ENOT_ACQUIRED, "not polled yet");
    cr_assert_eq(nagare_share_poll(sc, WAIT_MS, &m), 1);
    cr_assert_eq(nagare_share_ack(sc, m, (enum nagare_ack_type)9), -NAGARE_EBADARG);
    cr_assert_eq(nagare_share_ack_offset(sc, "other", 0, m->offset, NAGARE_ACK_ACCEPT),
                 -NAGARE_ENOT_ACQUIRED);
    cr_assert_eq(nagare_share_ack(sc, m, NAGARE_ACK_ACCEPT), 0);
    cr_assert_eq(nagare_share_commit(sc), 0);
    /* Destroy releases the two polled-and-unacknowledged (close_ack) and
     * anything acquired and not polled: another member gets them at once. */
    cr_assert_eq(nagare_share_poll(sc, WAIT_MS, &m), 1);
    nagare_share_consumer_destroy(sc);
    c.close_ack = NAGARE_ACK_ACCEPT;
    cr_assert_eq(nagare_share_consumer_new(&c, &sc), 0);
    cr_assert_eq(nagare_share_subscribe(sc, "g", one, 1), 0);
    int64_t t0 = clock_mono_ms();
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(nagare_share_poll(sc, WAIT_MS, &m), 1);
        cr_assert_eq(m->delivery_count, 2, "released, not expired");
    }
    cr_assert_lt(clock_mono_ms() - t0, 5000, "not after a 30 s lock");
    nagare_share_consumer_destroy(sc); /* accepts them */
    cr_assert_eq(nagare_share_consumer_new(&c, &sc), 0);
    cr_assert_eq(nagare_share_subscribe(sc, "g", one, 1), 0);
    cr_assert_eq(nagare_share_poll(sc, 500, &m), 0, "close_ack accepted them");
    nagare_share_consumer_destroy(sc);
    bk_stop(&B);
}

/* ---- group admin ---- */

static const struct nagare_group_listing *listing_find(const struct nagare_group_listing *v,
                                                       size_t n, const char *group)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i].group, group) == 0) {
            return &v[i];
        }
    }
    return NULL;
}

/* Resets group on "adm" and checks both partitions now hold `want`. */
static void reset_ok(nagare_admin *a, const char *topic, enum nagare_reset_to to, int64_t value,
                     int64_t want)
{
    const struct nagare_topic_partition *r;
    size_t n = 0;
    int rc = nagare_group_reset_offsets(a, "gadm", topic, to, value, &r, &n);
    cr_assert_eq(rc, 0, "reset %d: %s", to, nagare_strerror(rc));
    cr_assert_eq(n, 2);
    for (size_t i = 0; i < n; i++) {
        cr_assert_str_eq(r[i].topic, "adm");
        cr_assert_eq(r[i].partition, (int32_t)i);
        cr_assert_eq(r[i].err, 0);
        cr_assert_eq(r[i].offset, want, "reset %d partition %zu: %ld", to, i, (long)r[i].offset);
    }
    nagare_reset_free(a, r);
}

/* Every kind of reset on group gadm (without members, committed at 20 on
 * both partitions of "adm"; records from mid_ms on start at offset 10). */
static void resets_check(nagare_admin *a, int64_t mid_ms)
{
    reset_ok(a, NULL, NAGARE_RESET_TO_EARLIEST, 0, 0);
    const struct nagare_group_info *info = describe(a, "gadm");
    cr_assert_eq(info->offsets[0].lag_records, 20);
    cr_assert_gt(info->offsets[0].lag_ms, 0);
    nagare_group_info_free(a, info);
    reset_ok(a, "adm", NAGARE_RESET_TO_LATEST, 0, 20);
    reset_ok(a, "adm", NAGARE_RESET_TO_OFFSET, 5, 5);
    reset_ok(a, NULL, NAGARE_RESET_TO_OFFSET, 1000, 20);
    reset_ok(a, NULL, NAGARE_RESET_TO_TIMESTAMP, mid_ms, 10);
    cr_assert_eq(
        nagare_group_reset_offsets(a, "gadm", "nosuch", NAGARE_RESET_TO_EARLIEST, 0, NULL, NULL),
        -NAGARE_EUNKNOWN_TOPIC);
    cr_assert_eq(
        nagare_group_reset_offsets(a, "gadm", NULL, NAGARE_RESET_TO_OFFSET, -1, NULL, NULL),
        -NAGARE_EBADARG);
}

Test(client_groups, admin_lists_describes_resets_and_deletes_groups)
{
    bk_start(&B);
    cs_create_topic(&B, "adm", 2);
    produce("adm", 2, 10, 0);
    usleep(20 * 1000);
    int64_t mid_ms = clock_wall_ms();
    usleep(20 * 1000);
    produce("adm", 2, 10, 10);
    struct tally t;
    tally_init(&t, 2, 100);
    struct member m;
    member_open(&m, &t, "adm", "gadm", true);
    run_until(&m, 1, 2, 40);
    cr_assert_eq(nagare_consumer_commit(m.c, false), 0);

    nagare_admin *a = cs_admin(&B);
    const struct nagare_group_listing *groups;
    size_t count;
    cr_assert_eq(nagare_groups_list(a, &groups, &count), 0);
    const struct nagare_group_listing *g = listing_find(groups, count, "gadm");
    cr_assert_not_null(g);
    cr_assert_eq(g->kind, NAGARE_GROUP_CONSUMER);
    cr_assert_eq(g->member_count, 1);
    nagare_groups_free(a, groups);
    const struct nagare_group_info *info = describe(a, "gadm");
    cr_assert_str_eq(info->group, "gadm");
    cr_assert_gt(info->generation, 0);
    cr_assert_eq(info->member_count, 1);
    cr_assert_eq(info->members[0].assignment_count, 2);
    cr_assert_str_eq(info->members[0].assignment[0].topic, "adm");
    cr_assert_eq(info->offset_count, 2);
    for (size_t i = 0; i < 2; i++) {
        const struct nagare_group_offset *o = &info->offsets[i];
        cr_assert(o->committed == 20 && o->end == 20 && o->lag_records == 0 && o->lag_ms == 0);
    }
    nagare_group_info_free(a, info);
    /* With a member, offsets are the member's. */
    cr_assert_eq(
        nagare_group_reset_offsets(a, "gadm", NULL, NAGARE_RESET_TO_EARLIEST, 0, NULL, NULL),
        -NAGARE_EGROUP_NOT_EMPTY);
    cr_assert_eq(nagare_group_delete(a, "gadm"), -NAGARE_EGROUP_NOT_EMPTY);
    member_close(&m);

    resets_check(a, mid_ms);
    /* A member joining now starts where the reset put the group. */
    tally_fini(&t);
    tally_init(&t, 2, 100);
    member_open(&m, &t, "adm", "gadm", false);
    run_until(&m, 1, 2, 20);
    cr_assert(m.started_at[0] == 10 && m.started_at[1] == 10);
    member_close(&m);

    cr_assert_eq(nagare_group_delete(a, "gadm"), 0);
    cr_assert_eq(nagare_group_describe(a, "gadm", &info), -NAGARE_ENOTFOUND);
    cr_assert_eq(nagare_group_delete(a, "gadm"), -NAGARE_ENOTFOUND);
    cr_assert_eq(
        nagare_group_reset_offsets(a, "gadm", NULL, NAGARE_RESET_TO_EARLIEST, 0, NULL, NULL),
        -NAGARE_ENOTFOUND, "no committed topics to reset");
    cr_assert_eq(nagare_group_describe(a, "bad\x01id", &info), -NAGARE_EBADNAME);
    nagare_admin_destroy(a);
    tally_fini(&t);
    bk_stop(&B);
}
