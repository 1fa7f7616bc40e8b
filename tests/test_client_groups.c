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

#define WAIT_MS 30000
#define SESSION_MS 3000
#define PARTS_MAX 8
#define MEMBERS_MAX 4

static struct bk B;
static char bootstrap[64];

static void setup(void) { bk_init(&B); }
static void teardown(void) { bk_fini(&B); }

TestSuite(client_groups, .init = setup, .fini = teardown, .timeout = 240);

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void start(void)
{
    bk_start(&B);
    snprintf(bootstrap, sizeof(bootstrap), "127.0.0.1:%u", B.port);
}

static char listen_same[64];

/* Kills the broker (SIGKILL) and starts it again on the same port. */
static void broker_kill_restart(void)
{
    cr_assert_gt(B.pid, 0);
    cr_assert_eq(kill(B.pid, SIGKILL), 0);
    int status;
    cr_assert_eq(waitpid(B.pid, &status, 0), B.pid);
    B.pid = 0;
    usleep(300 * 1000); /* the dead broker's sockets let go of the port */
    snprintf(listen_same, sizeof(listen_same), "listen=127.0.0.1:%u", B.port);
    bk_set(&B, listen_same);
    bk_start(&B);
}

static nagare_admin *admin(void)
{
    nagare_admin *a;
    int rc = nagare_admin_new(bootstrap, 10000, &a);
    cr_assert_eq(rc, 0, "admin: %s", nagare_strerror(rc));
    return a;
}

static void create_topic(const char *name, int32_t partitions)
{
    nagare_admin *a = admin();
    struct nagare_topic_config c;
    nagare_topic_config_default(&c);
    c.partitions = partitions;
    int rc = nagare_topic_create(a, name, &c);
    cr_assert_eq(rc, 0, "create %s: %s", name, nagare_strerror(rc));
    nagare_admin_destroy(a);
}

/* Produces `per` records to each of `parts` partitions; record i of
 * partition p has value "p:i" and key "k<i>". */
static void produce(const char *topic, int32_t parts, uint32_t per, uint32_t first)
{
    struct nagare_producer_config pc;
    nagare_producer_config_default(&pc);
    pc.bootstrap = bootstrap;
    nagare_producer *p;
    int rc = nagare_producer_new(&pc, &p);
    cr_assert_eq(rc, 0, "producer: %s", nagare_strerror(rc));
    for (int32_t part = 0; part < parts; part++) {
        for (uint32_t i = first; i < first + per; i++) {
            char v[32];
            char k[16];
            int vn = snprintf(v, sizeof(v), "%d:%u", part, i);
            int kn = snprintf(k, sizeof(k), "k%u", i);
            struct nagare_record r = {.topic = topic, .partition = part, .key = k,
                                      .key_len = kn, .value = v, .value_len = vn};
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
    uint32_t cap;                 /* offsets per partition tracked */
    uint32_t *seen;               /* [parts][cap] */
    uint64_t total;               /* distinct records seen */
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

static void tally_fini(struct tally *t)
{
    free(t->seen);
}

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
    cc.bootstrap = bootstrap;
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
    int64_t until = mono_ms() + ms;
    for (uint32_t i = 0; i < max; i++) {
        const struct nagare_message *msg;
        int64_t left = until - mono_ms();
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
    int64_t deadline = mono_ms() + WAIT_MS;
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
            fair = ms[i].c == NULL || (h >= (uint32_t)parts / live &&
                                       h <= ((uint32_t)parts + live - 1) / live);
        }
        if (fair && ms[0].t->total >= total) {
            return;
        }
        cr_assert_lt(mono_ms(), deadline, "no fair share and %lu records within %d ms (%lu seen)",
                     (unsigned long)total, WAIT_MS, (unsigned long)ms[0].t->total);
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
    start();
    create_topic("six", 6);
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

    nagare_admin *a = admin();
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
    start();
    create_topic("leave", 6);
    struct tally t;
    tally_init(&t, 6, 1000);
    struct member ms[3];
    for (int i = 0; i < 3; i++) {
        member_open(&ms[i], &t, "leave", "gl", false);
    }
    run_until(ms, 3, 6, 0);
    produce("leave", 6, 100, 0);
    /* Members 0 and 1 read all of theirs; member 2 only some of its own. */
    int64_t deadline = mono_ms() + WAIT_MS;
    while (ms[2].records < 60 || ms[0].records + ms[1].records < 400) {
        member_poll(&ms[0], 100, 10);
        member_poll(&ms[1], 100, 10);
        if (ms[2].records < 60) {
            member_poll(&ms[2], 3, 10);
        }
        assert_no_overlap(ms, 3);
        cr_assert_lt(mono_ms(), deadline);
    }
    cr_assert_eq(nagare_consumer_commit(ms[2].c, false), 0);
    int64_t pos[PARTS_MAX];
    positions_of(&ms[2], pos);
    nagare_admin *a = admin();
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
        cr_assert_eq(heir->started_at[p], pos[p], "partition %d resumed at %ld, committed %ld",
                     p, (long)heir->started_at[p], (long)pos[p]);
    }
    /* Nothing skipped, and nothing read twice: the hand-over was exact. */
    for (int32_t p = 0; p < 6; p++) {
        for (int64_t o = 0; o < 100; o++) {
            cr_assert_eq(tally_at(&t, p, o), 1, "partition %d offset %ld read %u times", p,
                         (long)o, tally_at(&t, p, o));
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
    cc.bootstrap = bootstrap;
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

Test(client_groups, a_killed_member_hands_over_at_its_committed_offsets_after_its_session)
{
    start();
    create_topic("kill", 6);
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
    /* Until the child holds two partitions and has committed in both. */
    nagare_admin *a = admin();
    int32_t theirs[2] = {-1, -1};
    int64_t deadline = mono_ms() + WAIT_MS;
    for (bool ready = false; !ready;) {
        member_poll(&ms[0], 200, 50);
        member_poll(&ms[1], 200, 50);
        cr_assert_lt(mono_ms(), deadline, "the child never settled");
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
    uint32_t *before = calloc(2 * 200, sizeof(*before));
    cr_assert_not_null(before);
    for (int k = 0; k < 2; k++) {
        for (int64_t o = 0; o < 200; o++) {
            before[k * 200 + o] = tally_at(&t, theirs[k], o);
        }
    }

    /* After its session the two survivors take its partitions over at the
     * offsets it committed and read on to the end. */
    deadline = mono_ms() + WAIT_MS;
    for (;;) {
        member_poll(&ms[0], 200, 50);
        member_poll(&ms[1], 200, 50);
        bool done = assert_no_overlap(ms, 2) == 6;
        for (int k = 0; k < 2 && done; k++) {
            for (int64_t o = committed[k]; o < 200 && done; o++) {
                done = tally_at(&t, theirs[k], o) > 0;
            }
        }
        if (done) {
            break;
        }
        cr_assert_lt(mono_ms(), deadline, "the killed member's partitions were not taken over");
    }
    for (int k = 0; k < 2; k++) {
        struct member *heir = ms[0].holds[theirs[k]] ? &ms[0] : &ms[1];
        cr_assert_eq(heir->started_at[theirs[k]], committed[k]);
        for (int64_t o = 0; o < committed[k]; o++) {
            cr_assert_eq(tally_at(&t, theirs[k], o), before[k * 200 + o],
                         "partition %d offset %ld read again below the commit", theirs[k],
                         (long)o);
        }
    }
    free(before);
    member_close(&ms[0]);
    member_close(&ms[1]);
    nagare_admin_destroy(a);
    tally_fini(&t);
    bk_stop(&B);
}

Test(client_groups, two_groups_on_one_topic_each_see_every_record)
{
    start();
    create_topic("both", 3);
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
    nagare_admin *a = admin();
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
    start();
    create_topic("restart", 2);
    produce("restart", 2, 100, 0);
    struct tally t;
    tally_init(&t, 2, 1000);
    struct member m;
    member_open(&m, &t, "restart", "gr", false);
    run_until(&m, 1, 2, 200);
    cr_assert_eq(nagare_consumer_commit(m.c, false), 0);
    broker_kill_restart();
    /* The member finds itself forgotten (its partitions reported revoked),
     * joins again, and gets them back at the committed offsets. */
    int64_t deadline = mono_ms() + WAIT_MS;
    while (m.revoked_total < 2 || held_by(&m, 2) < 2) {
        member_poll(&m, 10, 50);
        cr_assert_lt(mono_ms(), deadline, "the member did not join again");
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
    nagare_admin *a = admin();
    const struct nagare_group_info *info = describe(a, "gr");
    cr_assert_eq(committed_of(info, "restart", 0), 100, "not committed: auto-commit is off");
    nagare_group_info_free(a, info);
    nagare_admin_destroy(a);
    tally_fini(&t);
    bk_stop(&B);
}

Test(client_groups, auto_commit_commits_on_its_interval_and_on_close)
{
    start();
    create_topic("auto", 1);
    produce("auto", 1, 100, 0);
    struct tally t;
    tally_init(&t, 1, 1000);
    struct member m;
    member_open(&m, &t, "auto", "gauto", true);
    run_until(&m, 1, 1, 100);
    member_poll(&m, 10, 600); /* idle: the interval (200 ms) passes */
    cr_assert_geq(m.commits_reported, 1);
    cr_assert_eq(m.commit_err, 0, "%s", nagare_strerror(m.commit_err));
    nagare_admin *a = admin();
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
    int64_t deadline = mono_ms() + WAIT_MS;
    while (m.commits_reported == 0) {
        member_poll(&m, 10, 50);
        cr_assert_lt(mono_ms(), deadline);
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
    start();
    create_topic("args", 1);
    struct nagare_consumer_config cc;
    nagare_consumer_config_default(&cc);
    cc.bootstrap = bootstrap;
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
