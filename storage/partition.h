/*
 * storage/partition.h — a partition's log: an ordered list of segments in
 * one directory, with appends and syncs through the owning thread's ring.
 *
 * Invariants:
 * - Offsets are dense: each batch starts where the previous one ended, from
 *   the log start offset up to part_offset_next(). Three marks follow the
 *   writes: part_offset_written() (every write below it has completed),
 *   part_offset_durable() (every batch below it is fdatasync'd; acknowledged
 *   durable appends are below it) and part_offset_latest(), what readers
 *   see: the written mark, held below a commit cap when the log's owner
 *   sets one (part_set_commit_cap(): a replica's high watermark).
 *   earliest <= latest <= written <= next, and durable <= written.
 * - Appends complete in the order they were made. Appends placed between
 *   two submits of the ring go to the file as one write (writev) where
 *   they are contiguous, bounded by PART_WRITE_IOVS_MAX and
 *   PART_WRITE_BYTES_MAX; a short write completes the appends it covered
 *   and writes the rest. A durable append completes
 *   only after an fdatasync begun after its write completed has succeeded;
 *   durable appends that arrive while an fdatasync is in flight share the
 *   next one (group commit).
 * - A segment that has a successor was fsync'd whole (log and indexes)
 *   before the successor was created. So on open only the last segment can
 *   hold a torn tail (bad bytes with no good batch after them), and it is
 *   cut. Any other bad batch is damage: its bytes and offsets become a
 *   damaged range (struct seg_damage) that is logged, never cut, never
 *   served (reads of it fail with -NG_ECORRUPT, part_corrupt_range() says
 *   where it ends), and everything around it is served as before.
 * - Watermarks only grow: written, durable and latest never go down but
 *   through part_truncate() and part_reset() (a full disk's cut-back moves
 *   offset_next back, never below written); seq_synced <= seq_written <=
 *   seq_next.
 * - Every batch carries a leader epoch (batch format 2): the one set with
 *   part_set_leader_epoch(), or, for a replica's append, the leader's. The
 *   leader epoch cache (storage/epochs.h, file `leader-epoch`) holds the
 *   first offset of each epoch that wrote a batch; it is made durable before
 *   a batch that adds to it is written, cut with the log, and rebuilt from
 *   the batches at open when missing or damaged.
 * - A write or fsync error fails the log: every append not yet completed
 *   fails, and every later append gets -NG_EFAILED. An fsync is never
 *   retried. Except a full disk (ENOSPC, EDQUOT on a log write): the
 *   failed append and every later one fail with that error, new appends are
 *   refused with it until those are done, then the active segment is cut
 *   back to where the failed batch began and appends continue from its
 *   offset, with no gap, once there is space again.
 * Threads: a partition belongs to the thread that owns env.ring; only that
 * thread may call part_* on it, and completions run from that ring.
 */
#ifndef NAGARE_STORAGE_PARTITION_H
#define NAGARE_STORAGE_PARTITION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "base/progress.h"
#include "base/ring.h"
#include "storage/batch.h"
#include "storage/epochs.h"
#include "storage/segment.h"

struct part_config {
    uint64_t segment_bytes;        /* roll before a batch would pass this (default 1 GiB) */
    int64_t segment_ms;            /* roll a segment whose first batch is this old (7 days) */
    uint32_t index_interval_bytes; /* log bytes per index entry (4 KiB) */
    uint32_t batch_bytes_max;      /* largest batch accepted (8 MiB) */
    int64_t retention_ms;          /* delete segments older than this; -1: keep (7 days) */
    int64_t retention_bytes;       /* keep the log under this; -1: no limit (-1) */
    uint32_t appends_inflight_max; /* appends not yet completed (1024) */
    bool group_commit;             /* false: one fdatasync per durable append,
                                      the benchmark's baseline (true) */
    int32_t leader_epoch;          /* stamped into every batch appended, in
                                      place like the base offset (0: one broker);
                                      part_set_leader_epoch() changes it */
};

/* Limits on the configuration, each with its reason. */
#define PART_SEGMENT_BYTES_MIN 4096u      /* room for a few batches */
#define PART_SEGMENT_BYTES_MAX (2u << 30) /* u32 file positions, with room for one batch over */
#define PART_INDEX_INTERVAL_MIN 64u       /* keeps an index below 1/5 of its log */
#define PART_APPENDS_INFLIGHT_MAX 65536u
/* One write of coalesced appends covers at most this many appends (the
 * kernel's UIO_MAXIOV) and, past its first append, this many bytes: each
 * append waits for the copy of the whole write, so a run stays a
 * fraction of a millisecond of page-cache copying. */
#define PART_WRITE_IOVS_MAX 1024u
#define PART_WRITE_BYTES_MAX (1u << 20)
static_assert(PART_SEGMENT_BYTES_MAX + (uint64_t)BATCH_BYTES_LIMIT <= UINT32_MAX,
              "a segment's positions must fit an index entry's u32");

/* Fills c with the defaults above. */
void part_config_default(struct part_config *c);

/* Returns 0, or -NG_EBADARG when a field is outside its limits. */
MUST_USE int part_config_check(const struct part_config *c);

/* Per-thread resources shared by every partition its thread owns. The
 * partition keeps the pointers; they must outlive it. */
struct part_env {
    struct ring *ring; /* writes and syncs are submitted here */
    uint8_t *scratch;  /* >= PART_SCRATCH_BYTES(batch_bytes_max) */
    size_t scratch_bytes;
    struct batch_zctx *zctx; /* decompresses batches for timestamp lookups */
    int64_t (*now_ms)(void); /* wall clock in ms; tests pass their own */
    /* Where part_open reports the upgrade of format-1 segments
     * (storage/format1.h), when not NULL: the opening thread's. */
    struct progress *upgrade_progress;
};

/* Scratch needed: a batch, its decompressed records, and a read window. */
#define PART_SCRATCH_BYTES(batch_bytes_max) (2 * (size_t)(batch_bytes_max) + 65536)

struct part_append;
typedef void (*part_append_fn)(struct part_append *a, int rc);

/* One append, owned by the caller from part_append() until its done
 * callback has returned. */
struct part_append {
    /* in */
    uint8_t *batch; /* a whole batch; its base offset is written in place */
    size_t bytes;
    bool durable;        /* complete only once fdatasync'd */
    bool validated;      /* the caller vouches for the batch: see part_append() */
    bool replica;        /* a leader's batch: keeps its base offset and leader
                            epoch (see part_append()) */
    part_append_fn done; /* runs once, from ring_run(); rc 0 or -errno/-NG_E* */
    void *ctx;           /* the caller's */
    /* in when validated; out, valid once part_append() returned 0 */
    struct batch_header hdr; /* hdr.offset_base is the assigned base offset */
    /* private */
    struct ring_op op; /* the write of the run this append leads */
    struct part *part;
    struct seg *seg;
    uint64_t pos;
    size_t bytes_written;
    uint64_t seq;
    uint32_t run_count; /* appends in the write it leads (itself first) */
    uint8_t state;
    struct part_append *next;
};

/* What a read found, filled in on success and on -NG_EOFFSET_RANGE. */
struct part_read_result {
    size_t bytes;            /* whole batches copied into buf */
    int64_t offset_earliest; /* the log start offset */
    int64_t offset_latest;   /* where reads stop: part_offset_latest(), or the
                                end of part_read_to() */
    int64_t offset_next;     /* one past the last batch read (the read's
                                offset when none): where the next read goes on */
};

struct part {
    int dirfd;
    char *dir; /* owned copy of the directory path */
    struct part_config cfg;
    struct seg_limits lim;
    struct part_env env;
    struct seg **segs; /* ascending base offsets; last is active */
    uint32_t seg_count;
    uint32_t seg_cap;
    int64_t offset_next;     /* next offset to assign */
    int64_t offset_written;  /* one past the last fully written batch */
    int64_t offset_durable;  /* one past the last fdatasync'd batch */
    int64_t offset_latest;   /* what readers see: see part_set_commit_cap() */
    int64_t commit_cap;      /* INT64_MAX: none */
    int64_t notified_latest; /* the marks the watches were last told of */
    int64_t notified_durable;
    struct epochs epochs;  /* the leader epoch cache */
    bool epochs_stale;     /* the file holds entries memory dropped */
    uint32_t damage_count; /* damaged ranges known, over every segment */
    int failed;            /* 0, or the error that failed the log */
    /* appends in flight, in order */
    struct part_append *head;
    struct part_append *tail;
    struct part_append *unwritten;   /* first append whose write may not be done */
    struct part_append *unsubmitted; /* first append placed but not yet submitted */
    struct part_append *held;        /* first append not yet placed (roll in progress) */
    struct iovec *iovs;              /* one per append in flight, at seq % iovs_count */
    uint32_t iovs_count;             /* cfg.appends_inflight_max */
    struct ring_deferred write_hook; /* submits the placed appends' writes */
    uint32_t appends_count;
    uint64_t seq_next;
    uint64_t seq_written; /* every append up to here is written */
    uint64_t seq_synced;  /* every append up to here is durable */
    /* disk full: appends from rollback_seq on fail; then the log is cut at
     * rollback_pos and continues at rollback_offset (0: no rollback) */
    uint64_t rollback_seq;
    int rollback_err;
    uint64_t rollback_pos;
    int64_t rollback_offset;
    /* group commit */
    uint32_t syncs_inflight;
    uint64_t sync_target;
    int64_t sync_target_offset; /* one past the last batch of sync_target */
    uint64_t sync_gate;         /* a round waits until this append is written */
    bool sync_gate_due;         /* a round ended: set the gate at the next try */
    uint64_t dir_gen;           /* bumped by every create/unlink in the directory */
    uint64_t dir_gen_synced;
    uint64_t dir_gen_syncing;
    struct ring_op dir_sync_op;
    int64_t scrub_offset; /* where part_scrub() goes on */
    /* called when offset_latest, offset_durable advance */
    void (*watch_fn)(void *arg);
    void *watch_arg;
    void (*durable_fn)(void *arg);
    void *durable_arg;
    /* roll: drain the active segment, flush its indexes, sync, then create
     * the successor and place the held appends */
    uint8_t roll_stage;
    uint64_t roll_seq; /* last append placed in the segment being sealed */
};

/* Opens (creating if needed) the partition log in dir, recovering it: the
 * last segment is checked batch by batch and its torn tail cut; missing,
 * short or wrong indexes are rebuilt; bad batches that good ones follow,
 * in any segment, and bad bytes at the end of a sealed segment become
 * damaged ranges, each logged with its segment, offsets and file
 * positions. Blocking; does its I/O through a private ring. Returns 0 or
 * -errno / -NG_EBADARG. */
MUST_USE int part_open(struct part *p, const char *dir, const struct part_config *cfg,
                       const struct part_env *env);

/* Starts an append of a->batch[0..a->bytes). The batch is validated (sizes,
 * checksum: batch_validate) and given the next offsets. Its write goes to
 * the kernel when env.ring next submits (ring_run(), ring_submit()),
 * together with the other appends placed until then. On 0, a->done runs
 * later, exactly once, after every earlier append's; a and the batch bytes
 * must stay valid until then. On error nothing was written and done never
 * runs: -NG_EFAILED (log failed), -NG_EBUSY (appends_inflight_max reached),
 * -ENOSPC / -EDQUOT (the disk filled up; retry later), -NG_ECLOSED, or
 * batch_validate()'s errors.
 *
 * The batch gets the leader epoch of part_set_leader_epoch(), in place. But
 * a->replica: the batch is a leader's, appended as it is: its base offset
 * must be part_offset_next() (else -NG_EDISCONTINUITY) and its leader epoch
 * is kept; an epoch older than the newest in the log is refused with
 * -NG_EFENCED_LEADER_EPOCH (the leader's log never goes back). An append
 * whose epoch is newer than every one in the log adds (epoch, base offset)
 * to the leader epoch cache, whose file is rewritten durably before the
 * batch is placed (blocking, once per epoch): that write's -errno fails the
 * append.
 *
 * a->validated: the caller has already checked these exact bytes whole,
 * checksum included (batch_validate(), or batch_verify_records() which
 * does more), has not changed them since (but for the base offset), and
 * put the decoded header in a->hdr. The append then skips the checksum
 * pass (one CRC-32C over the batch: the broker's produce path pays it once).
 * It still decodes the header against this partition's batch_bytes_max
 * and returns batch_header_decode()'s errors, and -NG_EBADLEN for bytes
 * after the batch; a->hdr disagreeing with the bytes (length, checksum,
 * counts, any field but the base offset) is a programmer error and
 * asserted. */
MUST_USE int part_append(struct part *p, struct part_append *a);

/* Copies whole batches starting with the one holding offset into
 * buf[0..cap), stopping before bytes_max would be passed (the first batch is
 * copied even when larger than bytes_max, if it fits cap), before a batch
 * that reaches end, or at a damaged range; continues into the next segment.
 * Each batch's checksum is verified; a bad one makes a damaged range
 * (logged, see part_corrupt_range()). Precondition: end <=
 * part_offset_written(p). Returns 0 (offset == end gives 0 bytes),
 * -NG_EOFFSET_RANGE (offset below the start or past end; *out carries
 * both), -NG_ETOOBIG (the first batch exceeds cap; out->bytes is its size),
 * -NG_ECORRUPT (offset is in a damaged range), -errno. A leader serves its
 * followers past the commit cap with end = part_offset_written(). */
MUST_USE int part_read_to(struct part *p, int64_t offset, int64_t end, uint8_t *buf, size_t cap,
                          size_t bytes_max, struct part_read_result *out);

/* part_read_to() up to part_offset_latest(p): what consumers may see. */
MUST_USE int part_read(struct part *p, int64_t offset, uint8_t *buf, size_t cap, size_t bytes_max,
                       struct part_read_result *out);

/* One file range of whole batches: bytes [pos, pos + bytes) of fd. */
struct part_range {
    int fd; /* the segment's log: p's, closed when the segment goes */
    uint64_t pos;
    uint64_t bytes;
};

/* Where part_read_to() would copy, without copying: the same batches, as
 * file ranges, one per segment touched (at most ranges_cap of them: a read
 * that needs more stops at a batch boundary after ranges_cap). Every byte
 * in a range was checksum-checked by this process before (see struct seg,
 * verified_pos), so the batches are not read here: only the headers of at
 * most one index interval per range (and one to find end, when it is not
 * the written end), to end on a batch boundary. The ranges stop where
 * checked bytes end. *count_out gets the ranges and out->bytes their
 * total. The fds are valid until the next call that may delete or close a
 * segment (part_retain, part_delete_before, part_truncate, part_reset,
 * part_close): a caller holding a range longer dups its fd. Returns what
 * part_read_to() would (0, also with 0 ranges at end; -NG_EOFFSET_RANGE;
 * -NG_ETOOBIG), or -NG_ECORRUPT (offset is in a damaged range), or -EAGAIN
 * when the first batch is not checked yet or the partition has found
 * damage: serve that read with part_read_to(), which checks the bytes
 * (moving the mark on), or reports the damage. Or -errno. */
MUST_USE int part_read_ranges_to(struct part *p, int64_t offset, int64_t end, size_t cap,
                                 size_t bytes_max, struct part_range *ranges, uint32_t ranges_cap,
                                 uint32_t *count_out, struct part_read_result *out);

/* part_read_ranges_to() up to part_offset_latest(p). */
MUST_USE int part_read_ranges(struct part *p, int64_t offset, size_t cap, size_t bytes_max,
                              struct part_range *ranges, uint32_t ranges_cap, uint32_t *count_out,
                              struct part_read_result *out);

/* Background scrubbing: reads on from where the last call stopped, about
 * budget bytes of whole batches into buf[0..cap) (cap >= batch_bytes_max),
 * verifying every checksum exactly as a read for a consumer does, stepping
 * over damaged ranges, and wraps to the log start at the written end (the
 * commit cap does not hold it back). A
 * bad batch becomes a damaged range, logged once with its segment, offsets
 * and positions, and is not served from then on. *scrubbed_out gets the
 * bytes checked. Returns 0, -NG_ECORRUPT when the partition holds damage
 * (found now or before), or -errno. Blocking reads; p's thread. */
MUST_USE int part_scrub(struct part *p, uint8_t *buf, size_t cap, size_t budget,
                        size_t *scrubbed_out);

/* Calls fn(arg) each time part_offset_latest() advances (new batches
 * became readable): from the ring, after the completions that moved it, or
 * from within part_set_commit_cap() when the cap moved it. fn may read the
 * partition, not append to, truncate or close it. NULL stops the calls. */
void part_set_watch(struct part *p, void (*fn)(void *arg), void *arg);

/* Calls fn(arg) from the ring each time part_offset_durable() advances,
 * after the completions that moved it (a follower reports its durable
 * offset to its leader). fn may read the partition, not append to,
 * truncate or close it. NULL stops the calls. */
void part_set_durable_watch(struct part *p, void (*fn)(void *arg), void *arg);

/* Calls fn(arg, h) with the header of every readable batch from the one
 * holding offset `from` (the log start when below it) to
 * part_offset_latest(), in order, stepping over damaged ranges (a bad header met on
 * the way becomes one). Stops early when fn returns non-zero and returns
 * that. Returns 0, -NG_ECORRUPT (damage it could not mark), or -errno.
 * Blocking reads. */
MUST_USE int part_for_each_batch(struct part *p, int64_t from,
                                 int (*fn)(void *arg, const struct batch_header *h), void *arg);
/* part_for_each_batch() up to end instead (<= part_offset_written()): past
 * the commit cap, for what must know every batch held (a producer state). */
MUST_USE int part_for_each_batch_to(struct part *p, int64_t from, int64_t end,
                                    int (*fn)(void *arg, const struct batch_header *h), void *arg);

/* How many log bytes a read from offset could return at most: from the
 * batch holding offset to the written end (0 outside the readable
 * range, or when the position cannot be found); *first_batch_bytes gets
 * the size of that first batch (0 with 0). A bound for sizing an answer
 * buffer before reading. Blocking reads of at most one index interval of
 * headers. */
uint64_t part_bytes_from(struct part *p, int64_t offset, uint32_t *first_batch_bytes);

/* Whether offset lies in a damaged range: true with *segment_base_out (the
 * segment's base offset, naming its file) and *out filled; false when not
 * (or not known yet: damage is found when read, scrubbed or opened). */
bool part_corrupt_range(const struct part *p, int64_t offset, int64_t *segment_base_out,
                        struct seg_damage *out);

/* The damaged ranges known, over every segment. */
uint32_t part_damage_count(const struct part *p);

/* The first offset of the lowest damaged range known: true with
 * *offset_out, false when none is known. */
bool part_damage_first(const struct part *p, int64_t *offset_out);

/* One segment, as part_segment() describes it. */
struct part_segment {
    int64_t offset_base;    /* its first offset (its files' name) */
    int64_t offset_end;     /* one past its last offset placed */
    uint64_t bytes;         /* log bytes placed */
    uint64_t bytes_checked; /* prefix checksum-checked by this process
                                (UINT64_MAX: every batch, now and later) */
    uint32_t damage_count;  /* damaged ranges known in it */
};

/* The segments, oldest first: part_segment_count() of them. */
uint32_t part_segment_count(const struct part *p);
/* Describes segment i < part_segment_count(p) in *out (a copy). */
void part_segment(const struct part *p, uint32_t i, struct part_segment *out);

/* Appends part_append() can still take before -NG_EBUSY. */
uint32_t part_appends_room(const struct part *p);

/* Earliest offset held (the log start). */
int64_t part_offset_earliest(const struct part *p);
/* One past the last offset readers see: the written end, held at the
 * commit cap when one is set (see part_set_commit_cap()). */
int64_t part_offset_latest(const struct part *p);
/* One past the last batch whose write completed. */
int64_t part_offset_written(const struct part *p);
/* One past the last batch made durable by an fdatasync (after open: the
 * recovered end). */
int64_t part_offset_durable(const struct part *p);
/* The base offset the next append will get (>= the written end). */
int64_t part_offset_next(const struct part *p);

/* Holds what readers see (part_read, part_read_ranges, part_for_each_batch,
 * part_offset_for_time, part_bytes_from, part_offset_latest) at
 * min(written, offset): a replica's high watermark. offset should be a
 * batch boundary (a high watermark is one); inside a batch, readers stop
 * before that batch. INT64_MAX (the default) is no cap: a single broker's
 * readers see every written batch. The first cap set on an uncapped log
 * (after open, or after INT64_MAX) takes effect at once, even below what
 * readers saw (never below the log start): the log's owner sets it before
 * serving reads. From then on latest never goes down but through
 * part_truncate() and part_reset(): a cap below it holds it where it is
 * until written and cap pass it. When the cap moves latest on, the watch
 * (part_set_watch()) is called before this returns. */
void part_set_commit_cap(struct part *p, int64_t offset);

/* The leader epoch stamped into every batch appended from now on (not into
 * replica appends). epoch >= 0. */
void part_set_leader_epoch(struct part *p, int32_t epoch);

/* KIP-279's answer to a follower whose last leader epoch is epoch: in
 * *epoch_out the largest epoch <= epoch that wrote batches to this log, in
 * *end_out the first offset of the next higher epoch, or the written end
 * when it is the newest. An epoch below every epoch in the log (or
 * negative) gets -1 for both (Kafka's UNDEFINED); a log with no epoch at
 * all (empty) answers epoch itself and the written end. Returns 0: the
 * cache is in memory. */
MUST_USE int part_epoch_end_offset(const struct part *p, int32_t epoch, int32_t *epoch_out,
                                   int64_t *end_out);

/* Cuts the log back so that it ends at offset, or, when offset is inside a
 * batch (or a damaged range), at that batch's (range's) start: segments
 * past it are deleted, the one holding it is cut (and becomes the active
 * one), its indexes and the leader epoch cache with it. Written, durable,
 * latest and a commit cap come down to the new end (the owner raises the
 * cap again; an uncapped log stays uncapped). Nothing happens when offset >= the written end. Durable
 * before it returns: the directory, the cut segment and the cache's file
 * are fsync'd, so a crash never brings the cut batches back. Precondition:
 * part_idle(p). Blocking; invalidates the ranges of part_read_ranges().
 * Returns 0 (part_offset_next() is the new end), -NG_EOFFSET_RANGE (offset
 * below the log start: that is part_reset()'s), -NG_EFAILED (the log had
 * failed), or -errno: the log is then failed, and a reopen finds it cut to
 * somewhere between offset and its old end. */
MUST_USE int part_truncate(struct part *p, int64_t offset);

/* Deletes every segment and starts an empty log at offset (a follower
 * behind its leader's log start), with an empty leader epoch cache; every
 * mark is offset, a commit cap at most offset. Durable before it
 * returns. Precondition: part_idle(p), offset >= 0. Blocking; invalidates
 * the ranges of part_read_ranges(). Returns 0, -NG_EFAILED, or -errno (the
 * log is then failed; a reopen finds either the old log or a prefix of it,
 * or the new empty one). */
MUST_USE int part_reset(struct part *p, int64_t offset);

/* Finds the first record whose timestamp is >= ts_ms: its offset and its
 * timestamp (ts_out may be NULL), below part_offset_latest(). Returns 0,
 * -NG_ENOTFOUND when no readable record is that late, -NG_ECORRUPT, or
 * -errno. */
MUST_USE int part_offset_for_time(struct part *p, int64_t ts_ms, int64_t *offset_out,
                                  int64_t *ts_out);

/* Deletes whole segments from the start while the log is over
 * retention_bytes (by at least that segment) or the segment's newest
 * timestamp is older than retention_ms; never the active segment, nor one
 * with I/O in flight. *deleted_out counts them. Returns 0 or -errno. */
MUST_USE int part_retain(struct part *p, uint32_t *deleted_out);

/* Deletes whole segments from the start while every offset of the segment
 * is below offset (the log's owner no longer needs them, e.g. a compacted
 * internal log); never the active segment, nor one with I/O in flight.
 * *deleted_out counts them. Returns 0 or -errno. */
MUST_USE int part_delete_before(struct part *p, int64_t offset, uint32_t *deleted_out);

/* Total bytes in the log's segments. */
uint64_t part_bytes(const struct part *p);

/* 0, or the error that failed the log. */
int part_failed(const struct part *p);

/* True when no append or I/O is in flight. */
bool part_idle(const struct part *p);

/* Runs env.ring until p is idle (other callbacks on the ring run too).
 * Returns 0 or the ring's -errno. */
MUST_USE int part_drain(struct part *p);

/* Flushes indexes, fsyncs the active segment, its indexes and the directory,
 * then frees everything. Precondition: part_idle(p). Returns 0 or the first
 * -errno of those steps (the partition is closed either way). */
MUST_USE int part_close(struct part *p);

#endif
