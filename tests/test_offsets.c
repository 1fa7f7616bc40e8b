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
