/*
 * I/O fault sweep: the reliability workload (tests/reliability_support.h:
 * durable appends with segment rolls, offset commits, topic creates and
 * deletes) under every injected fault: each file I/O kind, each point N the
 * workload reaches, -EIO, -ENOSPC or a short write, once or from then on
 * (base/ring.h, ring_fault_arm). Each run then checks:
 * (a) every append, commit and topic change completed, with an error or
 *     acknowledged; and after recovery (a restart, or a simulated power cut
 *     that drops or tears whatever no fsync made durable: base/ring_sim.h)
 *     every acknowledgement holds — the log is a checksum-valid dense prefix
 *     holding every acknowledged batch, committed offsets are not behind,
 *     topics are as acknowledged. A failed fsync reported as success would
 *     show here, since the power cut drops what it did not sync.
 * (b) an object that failed refuses new work (-NG_EFAILED), and one that
 *     did not takes work again once the fault is gone (the error was
 *     transient); a short write is completed, never an error.
 * Every N the workload reaches is swept; NAGARE_SWEEP_N_MAX bounds N for a
 * quicker run, NAGARE_SWEEP_ONLY="N,error index,sticky" runs one point (with
 * NAGARE_RELIABILITY_LOG=1 for the logs and what the check found).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/ring_sim.h"
#include "tests/reliability_support.h"

#define SWEEP_ROUNDS 14  /* ~56 log writes, ~4 rolls, 7 topic changes */
#define SWEEP_N_MAX 1000 /* every point the workload reaches */

enum ending { END_RESTART = 0, END_CUT_DROP, END_CUT_TEAR, END_COUNT };
static const char *const ending_names[] = {"restart", "power cut (drop)", "power cut (tear)"};

static const int sweep_errors[] = {-EIO, -ENOSPC, RING_FAULT_SHORT};
static const char *const error_names[] = {"EIO", "ENOSPC", "short write"};

static const char *const kind_names[RING_KIND_COUNT] = {
    [RING_LOG_WRITE] = "log write",      [RING_LOG_SYNC] = "log fdatasync",
    [RING_INDEX_WRITE] = "index write",  [RING_INDEX_SYNC] = "index fsync",
    [RING_DIR_SYNC] = "directory fsync", [RING_META_WRITE] = "meta write",
    [RING_META_SYNC] = "meta fsync",
};

struct sweep_totals {
    uint64_t runs;
    uint64_t faults;
    uint64_t runs_by_end[END_COUNT];
    uint64_t appends_acked;
    uint64_t appends_failed;
    uint64_t commits_acked;
    uint64_t commits_failed;
    uint64_t topic_ops_failed;
    uint64_t records_checked;
    uint64_t objects_failed; /* runs that left the log, offsets or catalog failed */
};

struct sweep_point {
    enum ring_kind kind;
    uint64_t nth;
    int err_index;
    bool sticky;
    enum ending end;
};

static bool is_write(enum ring_kind kind)
{
    return kind == RING_LOG_WRITE || kind == RING_INDEX_WRITE || kind == RING_META_WRITE;
}

/* How many completions of kind the whole workload makes without faults. */
static uint64_t reach(enum ring_kind kind)
{
    static struct rel_world w; /* static: rel_cleanup() may see it after a failure */
    rel_setup(&w);
    cr_assert_eq(ring_sim_enable(w.stash), 0);
    ring_fault_clear();
    cr_assert_eq(rel_open(&w), 0);
    for (int r = 0; r < SWEEP_ROUNDS; r++) {
        rel_round(&w);
    }
    uint64_t seen = ring_fault_seen(kind);
    cr_assert_eq(w.counts.appends_failed + w.counts.commits_failed + w.counts.topic_ops_failed, 0);
    ring_sim_disable();
    rel_teardown(&w);
    return seen;
}

/* (b): with the fault gone, a failed object refuses work and any other
 * takes it again. */
static void check_after_fault(struct rel_world *w, const struct sweep_point *pt)
{
    /* A full disk is refused until the appends it failed are done and the
     * log is cut back ("retry later"): let that finish first. */
    cr_assert_eq(w->part_open ? part_drain(&w->part) : 0, 0);
    cr_assert_eq(w->offsets_open ? part_drain(&w->offsets.log) : 0, 0);
    bool part_failed_ = w->part_open && part_failed(&w->part) != 0;
    bool offsets_failed = w->offsets_open && part_failed(&w->offsets.log) != 0;
    struct rel_counts before = w->counts;
    rel_round(w);
    const char *what = kind_names[pt->kind];
    cr_assert_eq(w->counts.refusals_missing, 0, "%s #%" PRIu64 ": a failed object took work", what,
                 pt->nth);
    cr_assert_eq(w->counts.acked_offsets_reused, 0,
                 "%s #%" PRIu64 ": an acknowledged offset "
                 "was given again",
                 what, pt->nth);
    if (w->part_open && !part_failed_) {
        cr_assert_eq(w->counts.appends_acked - before.appends_acked, REL_APPENDS_PER_ROUND,
                     "%s #%" PRIu64 ": the log did not fail, yet takes no appends", what, pt->nth);
    }
    if (w->offsets_open && !offsets_failed) {
        cr_assert_eq(w->counts.commits_acked - before.commits_acked, 1,
                     "%s #%" PRIu64 ": the offsets log did not fail, yet takes no commits", what,
                     pt->nth);
    }
    if (sweep_errors[pt->err_index] == RING_FAULT_SHORT) {
        bool any_failed =
            part_failed_ || offsets_failed || (w->cat_open && catalog_failed(&w->cat) != 0) ||
            w->counts.appends_failed + w->counts.commits_failed + w->counts.topic_ops_failed > 0;
        cr_assert(!any_failed,
                  "%s #%" PRIu64 ": a short write was an error (appends failed %" PRIu64
                  ", commits failed %" PRIu64 ", topic changes failed %" PRIu64
                  "); it must be completed",
                  what, pt->nth, w->counts.appends_failed, w->counts.commits_failed,
                  w->counts.topic_ops_failed);
    }
}

static void report_loss(const struct sweep_point *pt, const struct rel_loss *l)
{
    cr_assert(rel_loss_none(l),
              "%s #%" PRIu64 " %s %s, then %s: records lost %" PRIu64 ", bad batches %" PRIu64
              ", read errors %" PRIu64 ", commits behind %" PRIu64 ", commits invented %" PRIu64
              ", topics lost %" PRIu64 ", deleted topics back %" PRIu64,
              kind_names[pt->kind], pt->nth, error_names[pt->err_index],
              pt->sticky ? "sticky" : "once", ending_names[pt->end], l->records_lost,
              l->batches_bad, l->read_errors, l->commits_back, l->commits_invented, l->topics_lost,
              l->topics_back);
}

static void sweep_run(const struct sweep_point *pt, struct sweep_totals *t)
{
    static struct rel_world w; /* static: rel_cleanup() may see it after a failure */
    rel_setup(&w);
    cr_assert_eq(ring_sim_enable(w.stash), 0);
    ring_fault_clear();
    ring_fault_arm(pt->kind, pt->nth, sweep_errors[pt->err_index], pt->sticky);
    (void)rel_open(&w); /* may fail under the fault: recovery below must not */
    for (int r = 0; r < SWEEP_ROUNDS; r++) {
        rel_round(&w);
    }
    t->faults += ring_fault_injected();
    ring_fault_clear();
    check_after_fault(&w, pt);
    t->objects_failed += (w.part_open && part_failed(&w.part) != 0) ||
                         (w.offsets_open && part_failed(&w.offsets.log) != 0) ||
                         (w.cat_open && catalog_failed(&w.cat) != 0);
    if (pt->end != END_RESTART) {
        ring_sim_crash_now();
    }
    (void)rel_close(&w); /* a failed log's close reports its failure */
    if (pt->end != END_RESTART) {
        uint64_t seed =
            (uint64_t)pt->kind * 1000003u + pt->nth * 131u + (uint64_t)pt->err_index * 7u;
        int rc = ring_sim_power_cut(pt->end == END_CUT_DROP ? RING_SIM_DROP : RING_SIM_TEAR, seed);
        cr_assert_eq(rc, 0, "power cut: %s", err_str(rc));
    }
    int rc = rel_open(&w);
    cr_assert_eq(rc, 0, "%s #%" PRIu64 " %s %s, then %s: recovery failed: %s", kind_names[pt->kind],
                 pt->nth, error_names[pt->err_index], pt->sticky ? "sticky" : "once",
                 ending_names[pt->end], err_str(rc));
    struct rel_loss loss = {0};
    rel_check(&w, &loss);
    report_loss(pt, &loss);
    t->runs++;
    t->runs_by_end[pt->end]++;
    t->appends_acked += w.counts.appends_acked;
    t->appends_failed += w.counts.appends_failed;
    t->commits_acked += w.counts.commits_acked;
    t->commits_failed += w.counts.commits_failed;
    t->topic_ops_failed += w.counts.topic_ops_failed;
    t->records_checked += rel_records_acked(&w);
    ring_sim_disable();
    rel_teardown(&w);
}

/* NAGARE_SWEEP_ONLY="nth,error index,sticky": one point, for debugging. */
static bool sweep_only(enum ring_kind kind, struct sweep_totals *t)
{
    const char *only = getenv("NAGARE_SWEEP_ONLY");
    unsigned long long nth;
    int e;
    int sticky;
    if (only == NULL || sscanf(only, "%llu,%d,%d", &nth, &e, &sticky) != 3) {
        return false;
    }
    struct sweep_point pt = {.kind = kind,
                             .nth = nth,
                             .err_index = e,
                             .sticky = sticky != 0,
                             .end =
                                 (enum ending)((nth + (uint64_t)e + (uint64_t)sticky) % END_COUNT)};
    sweep_run(&pt, t);
    return true;
}

static void sweep_kind(enum ring_kind kind)
{
    struct sweep_totals only = {0};
    if (sweep_only(kind, &only)) {
        return;
    }
    const char *env = getenv("NAGARE_SWEEP_N_MAX");
    uint64_t n_max = env != NULL ? strtoull(env, NULL, 10) : SWEEP_N_MAX;
    uint64_t reached = reach(kind);
    cr_assert_gt(reached, 0, "the workload must reach %s", kind_names[kind]);
    uint64_t bound = reached < n_max ? reached : n_max;
    struct sweep_totals t = {0};
    int errors = is_write(kind) ? 3 : 2; /* a short fsync means nothing */
    for (uint64_t nth = 1; nth <= bound; nth++) {
        for (int e = 0; e < errors; e++) {
            for (int sticky = 0; sticky < 2; sticky++) {
                struct sweep_point pt = {
                    .kind = kind,
                    .nth = nth,
                    .err_index = e,
                    .sticky = sticky != 0,
                    .end = (enum ending)((nth + (uint64_t)e + (uint64_t)sticky) % END_COUNT)};
                sweep_run(&pt, &t);
            }
        }
    }
    cr_assert_eq(t.faults > 0, true);
    cr_log_info("fault sweep, %s: N 1..%" PRIu64 " (the workload reaches %" PRIu64 "), %" PRIu64
                " runs (%" PRIu64 " restarts, %" PRIu64 " drop cuts, %" PRIu64
                " tear cuts), %" PRIu64 " faults injected, %" PRIu64
                " runs left an object failed; appends %" PRIu64 " acked / %" PRIu64
                " failed, commits %" PRIu64 " acked / %" PRIu64
                " failed, topic changes failed %" PRIu64 "; %" PRIu64
                " acknowledged records checked, 0 lost",
                kind_names[kind], bound, reached, t.runs, t.runs_by_end[END_RESTART],
                t.runs_by_end[END_CUT_DROP], t.runs_by_end[END_CUT_TEAR], t.faults,
                t.objects_failed, t.appends_acked, t.appends_failed, t.commits_acked,
                t.commits_failed, t.topic_ops_failed, t.records_checked);
}

TestSuite(fault_sweep, .fini = rel_cleanup);

Test(fault_sweep, log_write, .timeout = 600) { sweep_kind(RING_LOG_WRITE); }
Test(fault_sweep, log_sync, .timeout = 600) { sweep_kind(RING_LOG_SYNC); }
Test(fault_sweep, index_write, .timeout = 600) { sweep_kind(RING_INDEX_WRITE); }
Test(fault_sweep, index_sync, .timeout = 600) { sweep_kind(RING_INDEX_SYNC); }
Test(fault_sweep, dir_sync, .timeout = 600) { sweep_kind(RING_DIR_SYNC); }
Test(fault_sweep, meta_write, .timeout = 600) { sweep_kind(RING_META_WRITE); }
Test(fault_sweep, meta_sync, .timeout = 600) { sweep_kind(RING_META_SYNC); }
