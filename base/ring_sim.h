/*
 * base/ring_sim.h — power-loss simulation for tests (NAGARE_FAULTS builds
 * only), in the spirit of SQLite's crash tests.
 *
 * While enabled, every file write and fsync that goes through a ring (any
 * ring of the process) and every directory entry that storage or the
 * catalog announce with ring_note_dirent()/ring_note_rename() is recorded
 * until an fsync makes it durable. ring_sim_power_cut() then rewrites the
 * disk into a state a power cut could have left: unsynced writes undone
 * (or torn: a random subset or prefix of their 512-byte sectors kept), and
 * unsynced directory changes undone (or a random chronological prefix of
 * them kept, as a metadata journal would). Everything synced stays.
 *
 * The durability model, strict where the kernel promises little:
 * - An fsync (or fdatasync) of a file makes durable the writes of that file
 *   that completed (were dispatched) before the fsync was submitted. A
 *   directory's fsync does the same for entries created, removed or renamed
 *   into it. Nothing else makes anything durable: not a file's fsync for its
 *   own name, not a sync of another file. Writes are IORING_OP_WRITE or
 *   IORING_OP_WRITEV (one file range: the iovecs' total).
 * - A failed fsync (or a failed write) poisons what it covered: that data
 *   never becomes durable, even after a later fsync succeeds (Linux marks
 *   the pages clean after reporting a write-back error: "fsyncgate").
 * - A rename is durable once its target directory is synced.
 * - ftruncate() and opens with O_TRUNC are not system calls the simulation
 *   sees; it notices a file grown shorter at its next write or fsync. The
 *   cut counts as durable at once for data that was durable (recovery's cut
 *   of a torn tail is fsync'd right after anyway); bytes not yet durable
 *   that it removed may still come back at a power cut, until an fsync
 *   after the truncation succeeds.
 * How: each file written is read whole when its first write is submitted
 * (its durable image); each completed write's bytes are read back at
 * completion and kept until an fsync covering it succeeds, which applies
 * them to the image (and trims them out of older poisoned writes they
 * overwrite). A cut writes the image back, then what survives of the
 * pending writes, oldest first. So writes of one file in flight at the same
 * time must not overlap (storage never does so).
 *
 * A crash is a point after which the machine is gone: every later file
 * completion fails with -EIO and nothing more becomes durable. The test
 * then lets its objects fail and close (no acknowledgement can happen after
 * the crash), calls ring_sim_power_cut(), and reopens them: that is the
 * recovery under test.
 *
 * Process-wide state; tests use it from one thread. NAGARE_SIM_DEBUG in the
 * environment makes it tell stderr what each cut undoes and what fails.
 */
#ifndef NAGARE_BASE_RING_SIM_H
#define NAGARE_BASE_RING_SIM_H

#ifndef NAGARE_FAULTS
#error "base/ring_sim.h is for test builds (NAGARE_FAULTS) only"
#endif

#include <stdbool.h>
#include <stdint.h>

#include "base/ring.h"

/* What a power cut does to data and directory changes not yet durable. */
enum ring_sim_cut {
    RING_SIM_DROP, /* every unsynced write and directory change undone */
    RING_SIM_TEAR, /* per write: dropped, kept, a sector prefix or a random
                      sector subset kept; a random prefix of the directory
                      changes kept */
};

struct ring_sim_stats {
    uint64_t writes;         /* file writes recorded */
    uint64_t syncs;          /* fsyncs that made something durable */
    uint64_t syncs_failed;   /* fsyncs that failed (poisoned their data) */
    uint64_t dirents;        /* directory changes recorded */
    uint64_t cuts;           /* power cuts applied */
    uint64_t writes_dropped; /* at cuts: unsynced writes wholly undone */
    uint64_t writes_torn;    /* partly kept */
    uint64_t writes_kept;    /* wholly kept */
    uint64_t bytes_lost;     /* unsynced bytes undone */
    uint64_t dirents_undone; /* unsynced directory changes undone */
    uint64_t dirents_kept;
};

/* Starts recording. stash_dir (created if missing) must be on the same file
 * system as the files under test, and outside any directory they list: an
 * unlinked file is kept there as a hard link, so a cut can bring it back.
 * Returns 0 or -errno. */
MUST_USE int ring_sim_enable(const char *stash_dir);

/* Stops recording and forgets everything (nothing is undone). */
void ring_sim_disable(void);

/* Harness self-test: a successful fsync of an op of a kind whose bit
 * (1u << kind) is set makes nothing durable, as if fsync were off. 0 (the
 * default after enable) restores honest fsyncs. */
void ring_sim_set_nosync(uint32_t kinds_mask);

/* Crashes at the nth (1-based) file completion counted from now: it and
 * every later one fail with -EIO. 0 disarms. */
void ring_sim_crash_at(uint64_t nth);

/* Crashes now. */
void ring_sim_crash_now(void);

/* True once the crash happened (until the next ring_sim_power_cut()). */
bool ring_sim_crashed(void);

/* File completions since enable or the last cut (to pick crash points). */
uint64_t ring_sim_completions(void);

/* Applies the cut to the disk (see the top of this file), then starts
 * afresh: the machine is up, nothing is pending, tracking continues.
 * Precondition: no tracked op is in flight (drain and close first). seed
 * drives RING_SIM_TEAR's choices. Returns 0, or the first -errno met while
 * recording or undoing (the disk may then hold an impossible state). */
MUST_USE int ring_sim_power_cut(enum ring_sim_cut how, uint64_t seed);

/* Totals since enable. */
void ring_sim_stats(struct ring_sim_stats *out);

/* ---- for base/ring.c only ---- */

/* ring_sqe() handed out sqe for op (not yet filled). */
void ring_sim_sqe(struct ring *r, struct ring_op *op, struct io_uring_sqe *sqe);
/* r is about to submit: reads the filled slots, captures pre-images. */
void ring_sim_submit(struct ring *r);
/* A completion of op: records its effect; returns the result the caller
 * sees (res, or -EIO once crashed). real_res is what the kernel did. */
int ring_sim_complete(struct ring *r, struct ring_op *op, int real_res, int res);
/* r is going away: forgets slots it never submitted. */
void ring_sim_forget(struct ring *r);

#endif
