/*
 * Power-loss simulation (base/ring_sim.h): cycles of recover, check, work
 * until a crash at a random file completion, then a power cut that drops or
 * tears whatever no fsync made durable (writes, and directory entries
 * created, renamed or removed), in the spirit of SQLite's crash tests. One
 * cycle in five also crashes during the recovery itself. The work is
 * tests/reliability_support.h's: durable appends with segment rolls,
 * offset commits, topic creates and deletes.
 *
 * After every cut, recovery must hold every acknowledgement: no
 * acknowledged (or once recovered) record lost or changed, the log a
 * checksum-valid dense prefix, no committed offset behind, topics as
 * acknowledged. And with fsync turned off (the simulation's switch: a
 * successful fsync makes nothing durable) the same harness must see loss:
 * proof that it can fail.
 *
 * NAGARE_POWER_CYCLES sets the cycles (default 200); NAGARE_POWER_SEED
 * replays a run (the seed is logged).
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "base/ring_sim.h"
#include "tests/reliability_support.h"

#define CYCLES_DEFAULT 200
#define ROUNDS_MAX 8            /* a cycle's work when the crash comes later */
#define RECOVERY_CRASH_ONE_IN 5 /* cycles that crash during recovery */
#define RECOVERY_CRASH_RANGE 12 /* a recovery makes a handful of completions */
#define EPOCH_CYCLES \
    200 /* a fresh data directory every this many
                                    cycles: each check reads the whole log, so
                                    longer runs stay linear */

struct pl_run {
    struct rel_world w;
    uint64_t rng;
    uint64_t seed;
    uint64_t crash_range; /* completions of a whole cycle's work */
    int cycles;
    uint32_t nosync; /* ring_sim_set_nosync() for every world */
    /* figures, summed over the worlds (epochs) */
    struct rel_counts counts;
    struct ring_sim_stats sim;
    uint64_t records_held;
    int epochs;
    uint64_t cuts_drop;
    uint64_t cuts_tear;
    uint64_t crashes_in_recovery;
    uint64_t crashes_in_work; /* the crash came before the work ended */
    uint64_t checks;
};

static uint64_t pl_rand(struct pl_run *r)
{
    r->rng ^= r->rng << 13;
    r->rng ^= r->rng >> 7;
    r->rng ^= r->rng << 17;
    return r->rng;
}

static int cycles_wanted(void)
{
    const char *env = getenv("NAGARE_POWER_CYCLES");
    int n = env != NULL ? atoi(env) : CYCLES_DEFAULT;
    return n > 0 ? n : CYCLES_DEFAULT;
}

static void pl_world_begin(struct pl_run *r)
{
    rel_setup(&r->w);
    int rc = ring_sim_enable(r->w.stash);
    cr_assert_eq(rc, 0, "ring_sim_enable: %s", err_str(rc));
    ring_sim_set_nosync(r->nosync);
    r->epochs++;
}

static void pl_world_end(struct pl_run *r)
{
    const struct rel_counts *c = &r->w.counts;
    r->counts.appends_acked += c->appends_acked;
    r->counts.appends_failed += c->appends_failed;
    r->counts.commits_acked += c->commits_acked;
    r->counts.topic_ops_acked += c->topic_ops_acked;
    r->records_held += rel_records_acked(&r->w);
    struct ring_sim_stats st;
    ring_sim_stats(&st);
    r->sim.writes_dropped += st.writes_dropped;
    r->sim.writes_torn += st.writes_torn;
    r->sim.writes_kept += st.writes_kept;
    r->sim.bytes_lost += st.bytes_lost;
    r->sim.dirents_undone += st.dirents_undone;
    ring_sim_disable();
    rel_teardown(&r->w);
}

static void pl_start(struct pl_run *r, uint32_t nosync)
{
    const char *env = getenv("NAGARE_POWER_SEED");
    r->seed = env != NULL ? strtoull(env, NULL, 10) : (uint64_t)time(NULL);
    r->rng = r->seed * 2654435761u + 1;
    r->cycles = cycles_wanted();
    r->nosync = nosync;
    pl_world_begin(r);
}

/* The machine went down: let everything fail and close, then cut. */
static void pl_cut(struct pl_run *r)
{
    (void)rel_close(&r->w);
    bool tear = (pl_rand(r) & 1) != 0;
    int rc = ring_sim_power_cut(tear ? RING_SIM_TEAR : RING_SIM_DROP, pl_rand(r));
    cr_assert_eq(rc, 0, "the simulated power cut: %s (seed %" PRIu64 ")", err_str(rc), r->seed);
    r->cuts_tear += tear;
    r->cuts_drop += !tear;
}

/* Opens the world after a cut; one time in RECOVERY_CRASH_ONE_IN a crash
 * interrupts the recovery first (then it is cut and recovered again).
 * Returns the open's result. */
static int pl_recover(struct pl_run *r)
{
    if (pl_rand(r) % RECOVERY_CRASH_ONE_IN == 0) {
        ring_sim_crash_at(1 + pl_rand(r) % RECOVERY_CRASH_RANGE);
        (void)rel_open(&r->w);
        bool crashed = ring_sim_crashed();
        ring_sim_crash_at(0);
        if (crashed) {
            ring_sim_crash_now(); /* until the cut */
            r->crashes_in_recovery++;
            pl_cut(r);
        }
    }
    return rel_open(&r->w);
}

/* Works until the crash (armed at a random completion of the cycle's work,
 * or at its end), then cuts. */
static void pl_work(struct pl_run *r)
{
    uint64_t before = ring_sim_completions();
    if (r->crash_range > 0) {
        ring_sim_crash_at(1 + pl_rand(r) % r->crash_range);
    }
    for (int i = 0; i < ROUNDS_MAX && !ring_sim_crashed(); i++) {
        rel_round(&r->w);
    }
    if (r->crash_range == 0) { /* the first cycle measures a whole cycle's work */
        r->crash_range = ring_sim_completions() - before;
        cr_assert_gt(r->crash_range, 0);
    }
    r->crashes_in_work += ring_sim_crashed();
    ring_sim_crash_now();
    pl_cut(r);
}

/* Recovers and checks; false when that found loss (details in *loss). */
static bool pl_recover_and_check(struct pl_run *r, struct rel_loss *loss)
{
    int rc = pl_recover(r);
    if (rc != 0) {
        loss->recover_failed++;
        loss->recover_rc = rc;
        return false;
    }
    rel_check(&r->w, loss);
    r->checks++;
    return rel_loss_none(loss);
}

static void assert_no_loss(const struct pl_run *r, int cycle, const struct rel_loss *l)
{
    cr_assert(rel_loss_none(l),
              "cycle %d (seed %" PRIu64 "): recovery %s; records lost %" PRIu64
              ", bad batches %" PRIu64 ", read errors %" PRIu64 ", commits behind %" PRIu64
              ", commits invented %" PRIu64 ", topics lost %" PRIu64
              ", deleted topics back %" PRIu64,
              cycle, r->seed, l->recover_failed ? err_str(l->recover_rc) : "ok", l->records_lost,
              l->batches_bad, l->read_errors, l->commits_back, l->commits_invented, l->topics_lost,
              l->topics_back);
}

TestSuite(power_loss, .fini = rel_cleanup);

Test(power_loss, nothing_acknowledged_is_lost_across_power_cuts, .timeout = 900)
{
    static struct pl_run r;
    pl_start(&r, 0);
    for (int cycle = 1; cycle <= r.cycles + 1; cycle++) {
        struct rel_loss loss = {0};
        pl_recover_and_check(&r, &loss); /* of the last cycle's cut */
        assert_no_loss(&r, cycle, &loss);
        if (cycle > r.cycles) {
            break;
        }
        if (cycle > 1 && (cycle - 1) % EPOCH_CYCLES == 0) {
            pl_world_end(&r);
            pl_world_begin(&r);
            cr_assert_eq(pl_recover(&r), 0);
        }
        pl_work(&r);
    }
    pl_world_end(&r);
    const struct rel_counts *c = &r.counts;
    const struct ring_sim_stats *st = &r.sim;
    cr_assert_gt(c->appends_acked, (uint64_t)r.cycles, "the work must get done");
    cr_assert_gt(r.crashes_in_work, (uint64_t)r.cycles / 2, "crashes must land inside the work");
    cr_log_info("power loss: %d cycles in %d data directories (seed %" PRIu64 "), %" PRIu64
                " drop and %" PRIu64 " tear cuts, %" PRIu64 " crashes inside the work and %" PRIu64
                " during recovery, %" PRIu64 " checks; appends %" PRIu64 " acked / %" PRIu64
                " failed, commits %" PRIu64 " acked, topic changes %" PRIu64 " acked; %" PRIu64
                " acknowledged records held, 0 lost, no commit behind; the cuts dropped %" PRIu64
                ", tore %" PRIu64 " and kept %" PRIu64 " unsynced writes (%" PRIu64
                " bytes lost) and undid %" PRIu64 " unsynced directory changes",
                r.cycles, r.epochs, r.seed, r.cuts_drop, r.cuts_tear, r.crashes_in_work,
                r.crashes_in_recovery, r.checks, c->appends_acked, c->appends_failed,
                c->commits_acked, c->topic_ops_acked, r.records_held, st->writes_dropped,
                st->writes_torn, st->writes_kept, st->bytes_lost, st->dirents_undone);
}

/* The harness with some fsyncs made worthless: it must see loss. */
static void detects_loss_without(uint32_t nosync_kinds, const char *what)
{
    static struct pl_run r;
    pl_start(&r, nosync_kinds);
    int detected = 0;
    struct rel_loss loss = {0};
    for (int cycle = 1; cycle <= r.cycles && detected == 0; cycle++) {
        if (!pl_recover_and_check(&r, &loss)) {
            detected = cycle;
            break;
        }
        pl_work(&r);
    }
    if (detected == 0 && !pl_recover_and_check(&r, &loss)) {
        detected = r.cycles + 1;
    }
    cr_assert_neq(detected, 0,
                  "with %s off, %d cycles lost nothing: the harness cannot fail "
                  "(seed %" PRIu64 ")",
                  what, r.cycles, r.seed);
    cr_log_info("power loss with %s off: loss detected at cycle %d (seed %" PRIu64
                "): recovery %s, records lost %" PRIu64 ", bad batches %" PRIu64
                ", read errors %" PRIu64 ", commits behind %" PRIu64 ", topics lost %" PRIu64,
                what, detected, r.seed, loss.recover_failed ? err_str(loss.recover_rc) : "ok",
                loss.records_lost, loss.batches_bad, loss.read_errors, loss.commits_back,
                loss.topics_lost);
    pl_world_end(&r);
}

Test(power_loss, without_fdatasync_the_harness_detects_loss, .timeout = 900)
{
    detects_loss_without(1u << RING_LOG_SYNC, "log fdatasync");
}

Test(power_loss, without_directory_fsync_the_harness_detects_loss, .timeout = 900)
{
    detects_loss_without(1u << RING_DIR_SYNC, "directory fsync");
}
