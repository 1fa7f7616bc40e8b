/*
 * base/ring.h — one io_uring per thread, with completions dispatched to ops.
 *
 * Every submission carries a struct ring_op (embedded in its owner) as its
 * user_data; when the completion arrives, ring_run() calls op->done with the
 * result. The op and any buffers it names must stay valid until done has run
 * (for a multishot op, until a completion without IORING_CQE_F_MORE). A ring
 * is owned by exactly one thread: the one that called ring_init(), which is
 * the only thread that may call any other ring_* function on it.
 *
 * Test builds (NAGARE_FAULTS defined) can make the Nth completion of a kind
 * fail; other builds have no hook and pay nothing.
 *
 * Test builds also carry a power-loss simulation (base/ring_sim.h). It sits
 * here, where every storage and metadata write and fsync passes, rather
 * than in the callers: ring_sqe() notes each slot it hands out, the submit
 * paths (ring_submit, ring_run, a full queue in ring_sqe) read the filled
 * slots just before the kernel sees them (fd, offset, length; a file's
 * durable contents when it is first written), and completion dispatch
 * records what each write left and what each fsync made durable. So no
 * caller changes; the only hooks outside are ring_note_dirent() and
 * ring_note_rename() below, for directory entries changed by plain system
 * calls.
 */
#ifndef NAGARE_BASE_RING_H
#define NAGARE_BASE_RING_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/assert.h"
#include "base/histo.h"

/* What an op does, for fault injection and accounting. */
enum ring_kind {
    RING_OTHER = 0,
    RING_LOG_WRITE,   /* segment .log data */
    RING_LOG_SYNC,    /* fdatasync of a .log */
    RING_INDEX_WRITE, /* .index / .timeindex data */
    RING_INDEX_SYNC,
    RING_DIR_SYNC,   /* fsync of a directory after create/rename/unlink */
    RING_META_WRITE, /* topic registry, offsets and other metadata files */
    RING_META_SYNC,
    RING_NET,           /* sockets */
    RING_LOG_WRITEBACK, /* sync_file_range starting a .log's write-back early */
    RING_KIND_COUNT
};

struct ring_op;
/* res is the CQE result (bytes, or -errno); flags the CQE flags. */
typedef void (*ring_done_fn)(struct ring_op *op, int res, uint32_t flags);

struct ring_op {
    ring_done_fn done;
    enum ring_kind kind;
    /* the ring's: when an op of a timed kind (ring_kind_timed) was queued, in
     * microseconds modulo 2^32 (an op takes far less than 71 minutes), so
     * that it fits beside kind and a ring_op stays two words */
    uint32_t submitted_us;
};

_Static_assert(sizeof(struct ring_op) == 2 * sizeof(void *),
               "ring ops are embedded by the thousand");

/* Kinds whose ops the ring times, submission to completion: the syncs,
 * whose latency is what an acks=all producer waits for. */
static inline bool ring_kind_timed(enum ring_kind kind)
{
    return kind == RING_LOG_SYNC || kind == RING_INDEX_SYNC || kind == RING_DIR_SYNC ||
           kind == RING_META_SYNC;
}

/* What a ring counts per kind of op (ring->stats[kind]): completions, those
 * with a negative result, and for timed kinds their latency. */
struct ring_kind_stats {
    uint64_t completions;
    uint64_t errors;
    struct histo latency; /* timed kinds only */
};

/* Work deferred to just before the ring next submits (ring_defer()). */
struct ring_deferred {
    void (*fn)(struct ring_deferred *d);
    struct ring_deferred *next;
    bool queued;
};

struct ring {
    struct io_uring uring;
    uint32_t inflight; /* ops submitted whose last completion has not run */
    struct ring_kind_stats stats[RING_KIND_COUNT]; /* the ring thread's; copy to read elsewhere */
    struct ring_deferred *deferred_head;           /* run before the next submit, in order */
    struct ring_deferred *deferred_tail;
};

/* Sets up r with room for `entries` submissions (a power of two, 1..32768).
 * Returns 0 or -errno (e.g. -ENOMEM, -ENOSYS without io_uring). */
MUST_USE int ring_init(struct ring *r, unsigned entries);

/* Tears r down. Precondition: no op in flight (r->inflight == 0), or the
 * caller accepts that their done callbacks will never run. */
void ring_fini(struct ring *r);

/* Returns a submission slot bound to op, submitting queued slots first when
 * the queue is full. Never NULL. The caller fills it with io_uring_prep_*()
 * and must not change its user_data. */
struct io_uring_sqe *ring_sqe(struct ring *r, struct ring_op *op);

/* Like ring_sqe(), for a multishot op: counts inflight once for the whole
 * series of completions ending with one that lacks IORING_CQE_F_MORE. */
#define ring_sqe_multishot ring_sqe

/* Queues d->fn to run once just before r next hands its queue to the
 * kernel (ring_run(), ring_submit()): a module gathering several requests
 * into one submission (storage coalesces the appends made between two
 * submits into one write) fills its slots there. Hooks run in the order
 * queued; a hook may take slots and defer again (it then runs before the
 * submit after). Deferring a queued hook does nothing. d stays valid until
 * it ran or was taken back with ring_undefer(). Nothing is deferred when a
 * full queue submits from ring_sqe(). */
void ring_defer(struct ring *r, struct ring_deferred *d);

/* Takes d back if it is queued (its owner is going away). */
void ring_undefer(struct ring *r, struct ring_deferred *d);

/* Submits queued slots without waiting. Returns the number submitted or
 * -errno. */
MUST_USE int ring_submit(struct ring *r);

/* Submits queued slots, waits up to timeout_ms (-1: no limit, 0: do not wait)
 * for at least one completion, and dispatches every completion ready.
 * Returns the number dispatched (0 on timeout) or -errno (-EINTR when a
 * signal interrupted the wait). Callbacks may queue new submissions. */
MUST_USE int ring_run(struct ring *r, int timeout_ms);

/* Blocking steps, for open, recovery and close. Each submits through r and
 * runs r until its own op is done, so any other op's callback may run
 * meanwhile: use them on a ring with nothing else in flight (a private ring).
 *
 * ring_write_all() writes len bytes of buf at off, resubmitting after short
 * writes; a write that moves nothing is -EIO. ring_fsync() is fdatasync when
 * datasync, else fsync. Both return 0 or -errno. */
MUST_USE int ring_write_all(struct ring *r, enum ring_kind kind, int fd, const void *buf,
                            size_t len, uint64_t off);
MUST_USE int ring_fsync(struct ring *r, enum ring_kind kind, int fd, bool datasync);

/* Replaces dirfd/name durably with buf[0..len): written to dirfd/tmp,
 * fdatasync'd, renamed over name, the directory fsync'd (each step told to
 * the power-loss simulation), so that name holds either its old bytes or
 * all of the new ones after any crash. Blocking, as the steps above.
 * Returns 0 or -errno; a failure may leave tmp behind. */
MUST_USE int ring_replace_file(struct ring *r, int dirfd, const char *tmp, const char *name,
                               const void *buf, size_t len);

/* Directory entries changed outside the ring: storage and the catalog
 * create, rename and remove files and directories with openat, mkdirat,
 * renameat and unlinkat. They call these hooks just before such a call (a
 * call that then fails is harmless: the simulation checks the entry's state
 * when it records and when it undoes). Test builds record the change, so
 * that a simulated power cut can undo it until the directory is fsync'd;
 * other builds compile them to empty functions: one call per file created
 * or removed, never on the append path. Names as the call's; any thread in
 * other builds, the simulating thread in test builds. */
enum ring_dirent {
    RING_DIRENT_CREATE, /* openat(O_CREAT): noted only when the name is new */
    RING_DIRENT_MKDIR,  /* mkdir / mkdirat: noted only when the name is new */
    RING_DIRENT_UNLINK, /* unlinkat(dirfd, name, 0) of a file */
    RING_DIRENT_RMDIR,  /* unlinkat(dirfd, name, AT_REMOVEDIR) */
};
void ring_note_dirent(int dirfd, const char *name, enum ring_dirent op);
/* renameat / renameat2 without replacing a directory. */
void ring_note_rename(int from_dirfd, const char *from, int to_dirfd, const char *to);

#ifdef NAGARE_FAULTS
/* A result that stands for "short write": the completion reports half the
 * bytes it really moved (at least one byte short). */
#define RING_FAULT_SHORT 1

/* From the nth completion of kind on (1-based, counted from the last
 * ring_fault_clear()), replace the result with res (-EIO, -ENOSPC, ... or
 * RING_FAULT_SHORT); once, or for every later completion when sticky.
 * Process-wide; tests call it from the thread that runs the ring. */
void ring_fault_arm(enum ring_kind kind, uint64_t nth, int res, bool sticky);

/* Disarms every fault and zeroes the counters. */
void ring_fault_clear(void);

/* Completions of kind seen since the last ring_fault_clear(). */
uint64_t ring_fault_seen(enum ring_kind kind);

/* Faults injected since the last ring_fault_clear(). */
uint64_t ring_fault_injected(void);
#endif

#endif
