/* Contract tests for broker/offsets.h: committed offsets, durable. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "broker/offsets.h"
#include "tests/storage_support.h"

#define SEGMENT_BYTES (64u << 20)

static struct fx f;
static struct offsets o;
static char dir[300];

static void setup(void)
{
    fx_setup(&f);
    f.scratch = realloc(f.scratch, OFFSETS_SCRATCH_BYTES); /* freed by fx_teardown */
    cr_assert_not_null(f.scratch);
    f.env.scratch = f.scratch;
    f.env.scratch_bytes = OFFSETS_SCRATCH_BYTES;
    snprintf(dir, sizeof(dir), "%s/offsets", f.dir);
    cr_assert_eq(offsets_open(&o, dir, &f.env, SEGMENT_BYTES), 0);
}

static void teardown(void)
{
    bool failed = o.open && part_failed(&o.log) != 0;
    int rc = offsets_close(&o);
    cr_assert(rc == 0 || failed, "close: %s", err_str(rc));
    ring_fault_clear();
    fx_teardown(&f);
}

TestSuite(offsets, .init = setup, .fini = teardown);

static int done_rc;
static bool done_seen;

static void on_done(struct offsets_commit *c, int rc)
{
    (void)c;
    done_rc = rc;
    done_seen = true;
}

/* Commits and waits; returns the completion's rc. */
static int commit(const char *group, const struct offsets_item *items, uint32_t n)
{
    static struct offsets_commit c;
    done_seen = false;
    int rc = offsets_commit(&o, &c, group, items, n, on_done, NULL);
    if (rc != 0) {
        return rc;
    }
    while (!done_seen) {
        cr_assert_geq(ring_run(&f.ring, -1), 0);
    }
    return done_rc;
}

static int64_t get(const char *group, const char *topic, int32_t p)
{
    int64_t off = -99;
    int rc = offsets_get(&o, group, topic, p, &off);
    return rc == 0 ? off : rc;
}

Test(offsets, a_commit_is_visible_once_it_completes)
{
    struct offsets_item items[] = {{"orders", 0, 10}, {"orders", 1, 20}};
    static struct offsets_commit c;
    done_seen = false;
    cr_assert_eq(offsets_commit(&o, &c, "g1", items, 2, on_done, NULL), 0);
    cr_assert_eq(get("g1", "orders", 0), -NG_ENOTFOUND, "not before it is durable");
    while (!done_seen) {
        cr_assert_geq(ring_run(&f.ring, -1), 0);
    }
    cr_assert_eq(done_rc, 0);
    cr_assert_eq(get("g1", "orders", 0), 10);
    cr_assert_eq(get("g1", "orders", 1), 20);
    cr_assert_eq(get("g2", "orders", 0), -NG_ENOTFOUND);
}

Test(offsets, the_last_commit_wins_and_survives_reopen)
{
    for (int64_t i = 0; i < 50; i++) {
        struct offsets_item items[] = {{"t", (int32_t)(i % 3), i}, {"u", 0, 1000 + i}};
        cr_assert_eq(commit(i % 2 ? "odd" : "even", items, 2), 0);
    }
    cr_assert_eq(offsets_close(&o), 0);
    cr_assert_eq(offsets_open(&o, dir, &f.env, SEGMENT_BYTES), 0);
    cr_assert_eq(get("odd", "t", 1), 49);
    cr_assert_eq(get("even", "t", 0), 48);
    cr_assert_eq(get("even", "u", 0), 1048);
    cr_assert_not_null(offsets_group_find(&o, "odd"));
}

Test(offsets, offset_minus_one_forgets_a_partition)
{
    struct offsets_item set[] = {{"t", 0, 5}};
    struct offsets_item forget[] = {{"t", 0, -1}};
    cr_assert_eq(commit("g", set, 1), 0);
    cr_assert_eq(commit("g", forget, 1), 0);
    cr_assert_eq(get("g", "t", 0), -NG_ENOTFOUND);
    cr_assert_eq(offsets_close(&o), 0);
    cr_assert_eq(offsets_open(&o, dir, &f.env, SEGMENT_BYTES), 0);
    cr_assert_eq(get("g", "t", 0), -NG_ENOTFOUND);
}

/* ListGroups and DescribeGroups (both protocols) go by the table: a group
 * whose last offset is forgotten (a deleted group) must not be left in it
 * with none, nor one made by forgetting what it never had. */
Test(offsets, a_group_with_no_offsets_left_is_not_in_the_table)
{
    struct offsets_item set[] = {{"t", 0, 5}, {"t", 1, 6}};
    struct offsets_item forget[] = {{"t", 0, -1}, {"t", 1, -1}};
    cr_assert_eq(commit("g", set, 2), 0);
    cr_assert_eq(commit("g", forget, 1), 0);
    cr_assert_not_null(offsets_group_find(&o, "g"), "one offset left");
    cr_assert_eq(commit("g", forget + 1, 1), 0);
    cr_assert_null(offsets_group_find(&o, "g"));
    cr_assert_eq(commit("never", forget, 2), 0);
    cr_assert_null(offsets_group_find(&o, "never"));
    cr_assert_eq(o.count, 0);
    cr_assert_eq(offsets_close(&o), 0);
    cr_assert_eq(offsets_open(&o, dir, &f.env, SEGMENT_BYTES), 0);
    cr_assert_eq(o.count, 0, "nor after the replay");
}

Test(offsets, bad_commits_are_refused_before_anything_is_written)
{
    struct offsets_item empty_topic[] = {{"", 0, 5}};
    static struct offsets_commit c;
    cr_assert_eq(offsets_commit(&o, &c, "g", empty_topic, 1, on_done, NULL), -NG_EBADNAME);
    struct offsets_item ok[] = {{"t", 0, 5}};
    cr_assert_eq(offsets_commit(&o, &c, "", ok, 1, on_done, NULL), -NG_EBADNAME);
    cr_assert_eq(offsets_commit(&o, &c, "g", ok, 0, on_done, NULL), -NG_EBADARG);
    cr_assert_eq(part_offset_latest(&o.log), 0);
}

Test(offsets, a_failed_fdatasync_fails_the_commit_and_changes_nothing)
{
    struct offsets_item first[] = {{"t", 0, 5}};
    cr_assert_eq(commit("g", first, 1), 0);
    ring_fault_clear();
    ring_fault_arm(RING_LOG_SYNC, 1, -EIO, true);
    struct offsets_item second[] = {{"t", 0, 6}};
    cr_assert_eq(commit("g", second, 1), -EIO);
    cr_assert_eq(get("g", "t", 0), 5);
}

/* ---- compaction ---- */

#define SMALL_SEGMENT_BYTES 8192

static void reopen_small(void)
{
    cr_assert_eq(offsets_close(&o), 0);
    cr_assert_eq(offsets_open(&o, dir, &f.env, SMALL_SEGMENT_BYTES), 0);
}

/* Commits round r of 4 groups x 8 partitions, one commit per group. */
static void commit_round(int64_t r)
{
    static const char *const groups[] = {"a", "b", "c", "d"};
    for (uint32_t g = 0; g < 4; g++) {
        struct offsets_item items[8];
        for (int32_t p = 0; p < 8; p++) {
            items[p] = (struct offsets_item){"topic", p, r * 100 + g * 10 + p};
        }
        cr_assert_eq(commit(groups[g], items, 8), 0);
    }
}

static void expect_round(int64_t r)
{
    static const char *const groups[] = {"a", "b", "c", "d"};
    for (uint32_t g = 0; g < 4; g++) {
        for (int32_t p = 0; p < 8; p++) {
            cr_assert_eq(get(groups[g], "topic", p), r * 100 + g * 10 + p, "%s/%d", groups[g], p);
        }
    }
}

Test(offsets, compaction_keeps_the_log_bounded_and_the_table_intact)
{
    reopen_small();
    struct offsets_item gone[] = {{"topic", 0, 7}};
    cr_assert_eq(commit("forgotten", gone, 1), 0);
    gone[0].offset = -1;
    cr_assert_eq(commit("forgotten", gone, 1), 0);
    for (int64_t r = 0; r < 400; r++) {
        commit_round(r);
        /* two segments and twice a snapshot's worth, plus the segment being
         * filled when the last snapshot began */
        cr_assert_leq(part_bytes(&o.log), 3 * SMALL_SEGMENT_BYTES + 2 * o.compaction.bytes + 2048,
                      "round %ld: %lu bytes", (long)r, (unsigned long)part_bytes(&o.log));
    }
    cr_assert_gt(o.compaction.completed, 5, "compacted several times");
    expect_round(399);
    reopen_small();
    expect_round(399);
    cr_assert_eq(get("forgotten", "topic", 0), -NG_ENOTFOUND, "a forgotten partition stays so");
    cr_assert_gt(part_offset_earliest(&o.log), 0, "old segments are gone");
}

/* A stream of commits, INFLIGHT at a time: each completion starts the
 * next, so commits arrive while a snapshot waits for the others. */
enum { INFLIGHT = 16, STREAM = 4000 };
static struct offsets_commit stream_c[INFLIGHT];
static int64_t stream_next;
static uint32_t stream_done;
static bool stream_saw_held;

static void stream_start(struct offsets_commit *c);

static void on_stream(struct offsets_commit *c, int rc)
{
    cr_assert_eq(rc, 0);
    stream_done++;
    if (stream_next < STREAM) {
        stream_start(c);
    }
}

static void stream_start(struct offsets_commit *c)
{
    int64_t v = stream_next++;
    struct offsets_item items[] = {{"topic", 0, v}, {"topic", 1, v}};
    cr_assert_eq(offsets_commit(&o, c, "g", items, 2, on_stream, NULL), 0);
    stream_saw_held = stream_saw_held || o.held_first != NULL;
}

Test(offsets, commits_arriving_during_compaction_wait_and_keep_their_order)
{
    reopen_small();
    for (uint32_t k = 0; k < INFLIGHT; k++) {
        stream_start(&stream_c[k]);
    }
    while (stream_done < STREAM) {
        cr_assert_geq(ring_run(&f.ring, -1), 0);
    }
    cr_assert_gt(o.compaction.completed, 2, "compacted while commits streamed");
    cr_assert(stream_saw_held, "some commits waited for a snapshot");
    cr_assert_eq(get("g", "topic", 0), STREAM - 1, "the last commit wins");
    reopen_small();
    cr_assert_eq(get("g", "topic", 1), STREAM - 1);
}

/* ---- attached to a replicated partition's log (a cluster) ---- */

/* The replication of an attached store, as the test drives it: waits are
 * held until released (hold), or complete at once. */
static struct fake_repl {
    int check_rc;
    bool hold;
    bool hold_snapshots; /* only while a snapshot runs */
    struct replica_wait *held[64];
    uint32_t count;
} repl;

static int fake_check(void *arg) { return ((struct fake_repl *)arg)->check_rc; }

static void fake_wait(void *arg, struct replica_wait *w, int64_t end)
{
    struct fake_repl *r = arg;
    cr_assert_gt(end, 0);
    if (!r->hold || (r->hold_snapshots && !o.compaction.running)) {
        w->done(w, 0);
        return;
    }
    cr_assert_lt(r->count, 64);
    r->held[r->count++] = w;
}

/* The high watermark passes everything held (rc 0), or the leadership
 * ends (rc -NG_ENOT_LEADER). */
static void fake_release(int rc)
{
    uint32_t n = repl.count;
    repl.count = 0;
    for (uint32_t i = 0; i < n; i++) {
        repl.held[i]->done(repl.held[i], rc);
    }
}

static const struct offsets_repl fake = {.arg = &repl, .check = fake_check, .wait = fake_wait};

/* A partition log as the broker makes __offsets/0's (never retained). */
static void log_open(struct part *p, const char *name, uint64_t segment_bytes)
{
    char path[400];
    snprintf(path, sizeof(path), "%s/%s", f.dir, name);
    struct part_config cfg;
    part_config_default(&cfg);
    cfg.segment_bytes = segment_bytes;
    cfg.retention_ms = -1;
    cfg.retention_bytes = -1;
    cfg.batch_bytes_max = OFFSETS_BATCH_MAX;
    cr_assert_eq(part_open(p, path, &cfg, &f.env), 0);
}

/* The global store o leaves its own log for an attached term on p. */
static void attach(struct part *p, uint64_t segment_bytes)
{
    repl = (struct fake_repl){0};
    cr_assert_eq(offsets_close(&o), 0);
    cr_assert_eq(offsets_attach(&o, p, segment_bytes, &fake, &f.env), 0);
}

static void on_copied(struct part_append *a, int rc)
{
    (void)a;
    cr_assert_eq(rc, 0);
    done_seen = true;
}

/* What a follower does: appends src's batches from dst's end as they are
 * (offsets and leader epochs kept); behind src's log start, starts over
 * there (part_reset()). */
static void follow(struct part *src, struct part *dst)
{
    static uint8_t buf[OFFSETS_BATCH_MAX];
    while (part_offset_next(dst) < part_offset_written(src)) {
        struct part_read_result r;
        int64_t from = part_offset_next(dst);
        int rc =
            part_read_to(src, from, part_offset_written(src), buf, sizeof(buf), sizeof(buf), &r);
        if (rc == -NG_EOFFSET_RANGE && from < part_offset_earliest(src)) {
            cr_assert_eq(part_reset(dst, part_offset_earliest(src)), 0);
            continue;
        }
        cr_assert_eq(rc, 0, "%s", err_str(rc));
        for (size_t at = 0; at < r.bytes;) {
            struct batch_header h;
            cr_assert_eq(batch_header_decode(buf + at, r.bytes - at, OFFSETS_BATCH_MAX, &h), 0);
            struct part_append a = {.batch = buf + at,
                                    .bytes = batch_bytes(&h),
                                    .durable = true,
                                    .replica = true,
                                    .done = on_copied};
            done_seen = false;
            cr_assert_eq(part_append(dst, &a), 0);
            while (!done_seen) {
                cr_assert_geq(ring_run(&f.ring, -1), 0);
            }
            at += batch_bytes(&h);
        }
    }
}

/* y holds every committed offset x holds (a group whose offsets were all
 * forgotten holds none: ListGroups does not show it). */
static void table_in(const struct offsets *x, const struct offsets *y)
{
    for (uint32_t i = 0; i < x->count; i++) {
        const struct offsets_group *g = &x->groups[i];
        const struct offsets_group *h = offsets_group_find(y, g->id);
        cr_assert(g->count == 0 || h != NULL, "group %s", g->id);
        cr_assert_eq(g->count, h != NULL ? h->count : 0, "group %s", g->id);
        for (uint32_t k = 0; k < g->count; k++) {
            int64_t off = -99;
            cr_assert_eq(offsets_get(y, g->id, g->entries[k].topic, g->entries[k].partition, &off),
                         0);
            cr_assert_eq(off, g->entries[k].offset, "%s %s/%d", g->id, g->entries[k].topic,
                         g->entries[k].partition);
        }
    }
}

static void close_logs(struct part *const *logs, size_t n)
{
    offsets_detach(&o);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(part_drain(logs[i]), 0);
        cr_assert_eq(part_close(logs[i]), 0);
    }
}

/* Opens and attaches l, the fake holding the high watermark, and commits
 * items through c: runs until the commit waits for the high watermark (or,
 * wrongly, has completed). */
static void commit_held(struct part *l, struct offsets_commit *c, const struct offsets_item *items)
{
    log_open(l, "attached", SEGMENT_BYTES);
    attach(l, SEGMENT_BYTES);
    repl.hold = true;
    done_seen = false;
    cr_assert_eq(offsets_commit(&o, c, "g", items, 1, on_done, NULL), 0);
    while (repl.count == 0 && !done_seen) {
        cr_assert_geq(ring_run(&f.ring, -1), 0);
    }
}

Test(offsets, an_attached_commit_completes_once_the_high_watermark_passes_it)
{
    static struct part l;
    struct offsets_item items[] = {{"orders", 0, 10}};
    static struct offsets_commit c;
    commit_held(&l, &c, items);
    cr_assert_not(done_seen, "not answered before the high watermark passes it");
    cr_assert_eq(get("g", "orders", 0), -NG_ENOTFOUND);
    fake_release(0);
    cr_assert(done_seen);
    cr_assert_eq(done_rc, 0);
    cr_assert_eq(get("g", "orders", 0), 10);

    /* too few in sync: refused, nothing appended */
    int64_t end = part_offset_next(&l);
    repl.check_rc = -NG_ENOT_ENOUGH_REPLICAS;
    cr_assert_eq(offsets_commit(&o, &c, "g", items, 1, on_done, NULL), -NG_ENOT_ENOUGH_REPLICAS);
    cr_assert_eq(part_offset_next(&l), end);
    struct part *logs[] = {&l};
    close_logs(logs, 1);
}

Test(offsets, a_term_that_ends_answers_not_coordinator_and_the_log_stays_the_truth)
{
    static struct part l;
    struct offsets_item items[] = {{"orders", 0, 10}};
    static struct offsets_commit c;
    commit_held(&l, &c, items);
    cr_assert_not(done_seen);
    fake_release(-NG_ENOT_LEADER); /* the leadership ends */
    cr_assert(done_seen);
    cr_assert_eq(done_rc, -NG_ENOT_COORDINATOR);
    cr_assert_eq(get("g", "orders", 0), -NG_ENOTFOUND, "the table does not take it");
    cr_assert_eq(offsets_commit(&o, &c, "g", items, 1, on_done, NULL), -NG_ENOT_COORDINATOR,
                 "nothing more is appended once the leadership ended");
    offsets_detach(&o);
    cr_assert_eq(offsets_commit(&o, &c, "g", items, 1, on_done, NULL), -NG_ENOT_COORDINATOR);
    /* Leading again: the batch is in the log, so the replay has it (a new
     * leader's log is what every replica converges to). */
    cr_assert_eq(offsets_attach(&o, &l, SEGMENT_BYTES, &fake, &f.env), 0);
    cr_assert_eq(get("g", "orders", 0), 10);
    struct part *logs[] = {&l};
    close_logs(logs, 1);
}

Test(offsets, a_snapshot_deletes_old_segments_only_once_replicated)
{
    static struct part l;
    log_open(&l, "attached", SMALL_SEGMENT_BYTES);
    attach(&l, SMALL_SEGMENT_BYTES);
    repl.hold = repl.hold_snapshots = true;
    struct offsets_item items[8];
    for (int64_t r = 0; r < 4000 && o.compaction.completed == 0; r++) {
        for (int32_t p = 0; p < 8; p++) {
            items[p] = (struct offsets_item){"topic", p, r * 10 + p};
        }
        /* one at a time: a commit appended during the snapshot would wait */
        cr_assert_eq(commit(r % 2 ? "a" : "b", items, 8), 0);
        if (!o.compaction.running) {
            continue;
        }
        while (repl.count < o.snapshot_batches) { /* its appends complete */
            cr_assert_geq(ring_run(&f.ring, -1), 0);
        }
        int64_t start = part_offset_earliest(&l);
        cr_assert_eq(o.compaction.completed, 0, "not ended before it is replicated");
        fake_release(0);
        cr_assert_eq(o.compaction.completed, 1);
        cr_assert_gt(part_offset_earliest(&l), start, "deleted once replicated");
    }
    cr_assert_eq(o.compaction.completed, 1, "no snapshot");
    struct part *logs[] = {&l};
    close_logs(logs, 1);
}

Test(offsets, a_followers_copy_replays_to_the_same_table)
{
    static struct part leader;
    static struct part full; /* followed every commit: the whole history */
    static struct part late; /* followed at the end: from the leader's log start */
    static struct offsets copy;
    log_open(&leader, "leader", SMALL_SEGMENT_BYTES);
    log_open(&full, "full", SMALL_SEGMENT_BYTES);
    log_open(&late, "late", SMALL_SEGMENT_BYTES);
    attach(&leader, SMALL_SEGMENT_BYTES);
    struct offsets_item gone[] = {{"topic", 0, 7}};
    cr_assert_eq(commit("forgotten", gone, 1), 0);
    gone[0].offset = -1;
    cr_assert_eq(commit("forgotten", gone, 1), 0);
    for (int64_t r = 0; r < 300; r++) {
        commit_round(r);
        follow(&leader, &full);
    }
    follow(&leader, &late);
    cr_assert_gt(o.compaction.completed, 2, "compacted several times");
    cr_assert_gt(part_offset_earliest(&leader), 0, "the leader deleted old segments");
    cr_assert_eq(part_offset_earliest(&full), 0, "a follower keeps them");
    cr_assert_gt(part_offset_earliest(&late), 0, "a late follower starts at the leader's start");
    struct part *copies[] = {&full, &late};
    for (size_t i = 0; i < 2; i++) {
        /* A new leader does not know the high watermark yet: readers see
         * nothing, but the replay reads everything written. */
        part_set_commit_cap(copies[i], part_offset_earliest(copies[i]));
        cr_assert_eq(offsets_attach(&copy, copies[i], SMALL_SEGMENT_BYTES, &fake, &f.env), 0);
        table_in(&o, &copy);
        table_in(&copy, &o);
        cr_assert_eq(offsets_get(&copy, "forgotten", "topic", 0, &(int64_t){0}), -NG_ENOTFOUND);
        offsets_detach(&copy);
    }
    struct part *logs[] = {&leader, &full, &late};
    close_logs(logs, 3);
    cr_assert_eq(offsets_close(&copy), 0);
}
