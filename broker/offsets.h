/*
 * broker/offsets.h — committed offsets of consumer groups, durable.
 *
 * Every commit is one record batch appended durably (fdatasync'd, group
 * committed with other commits) to an internal partition log kept apart
 * from the topics (DATA_DIR/groups/offsets); the in-memory table changes,
 * and the commit completes, only once that append has completed, so a
 * committed offset read back is always one that survives a crash. At open
 * the log is replayed in order, so the last commit of each partition wins.
 * Record format: key = u16 group length, group, u16 topic length, topic,
 * i32 partition; value = i64 offset, or null to forget the partition (a
 * deleted group). Threads: the owning worker's only.
 *
 * Compaction keeps the log bounded by what is live: once the log holds at
 * least two segments and twice the last snapshot's bytes more than it, the
 * table is appended whole (a snapshot: one record per live partition, with
 * its commit time) at a moment no commit is in flight, so the log up to
 * there replays to exactly the table; commits that arrive while one is in
 * flight wait for it. Once the snapshot is fdatasync'd the segments wholly
 * before it are deleted. A crash at any point replays to the same table:
 * the snapshot repeats what is already there, and segments go oldest first.
 *
 * In a cluster (docs/cluster.md, section 5) the log is not the store's own:
 * it is the replicated partition __offsets/0, and the store serves only
 * while this broker leads it (offsets_attach() .. offsets_detach()). Each
 * attachment is a term: it replays the partition's whole written log (what
 * any replica holds replays to the same table, snapshots included), and a
 * commit of the term changes the table and completes only once the high
 * watermark passes its batch (acks=all, broker/replica.h). A snapshot's
 * segments before it are deleted only once the high watermark passes the
 * snapshot too, so no replica that can lead next, nor this one cut back
 * as a follower, ever misses what the deleted segments held. What is in
 * flight when the term ends completes with NG_ENOT_COORDINATOR and
 * changes nothing.
 */
#ifndef NAGARE_BROKER_OFFSETS_H
#define NAGARE_BROKER_OFFSETS_H

#include <stdbool.h>
#include <stdint.h>

#include "base/assert.h"
#include "broker/compaction.h"
#include "broker/group_state.h"
#include "broker/replica.h"
#include "storage/partition.h"

/* A commit names at most this many partitions: a group's assignment. */
#define OFFSETS_COMMIT_ITEMS_MAX GROUP_PARTITIONS_MAX

/* The largest commit batch (every item at its longest names), and the part
 * scratch the log needs for it. */
#define OFFSETS_ITEM_BYTES_MAX (2 + 2 * GROUP_ID_BYTES_MAX + 2 + 4 + 8 + 32)
#define OFFSETS_BATCH_MAX (61 + OFFSETS_COMMIT_ITEMS_MAX * OFFSETS_ITEM_BYTES_MAX)
#define OFFSETS_SCRATCH_BYTES PART_SCRATCH_BYTES(OFFSETS_BATCH_MAX)

/* What a reader of the table remembers with an entry (broker/metrics.c:
 * the first timestamp of the batch holding `offset`, read from the log at
 * read_ms, monotonic). offsets.c only clears it (offset -1) when it makes
 * the entry. Loop thread. */
struct offsets_lag_memo {
    int64_t offset;
    int64_t ts_ms; /* -1: the read found none */
    int64_t read_ms;
};

struct offsets_entry {
    char topic[GROUP_ID_BYTES_MAX + 1];
    int32_t partition;
    int64_t offset;
    int64_t commit_ms;
    struct offsets_lag_memo lag;
};

struct offsets_group {
    char id[GROUP_ID_BYTES_MAX + 1];
    struct offsets_entry *entries;
    uint32_t count;
    uint32_t cap;
};

struct offsets_commit;

/* How an attached store's appends are replicated: the partition's
 * (broker/replica.h, group_serve.c), or a test's. */
struct offsets_repl {
    void *arg;
    /* 0 when an acks=all append may go now, or its error */
    int (*check)(void *arg);
    /* completes w (w->done) once the high watermark passes end */
    void (*wait)(void *arg, struct replica_wait *w, int64_t end);
};

struct offsets {
    struct part log;     /* a single broker's own (offsets_open()) */
    struct part *served; /* the log of the table: &log, or the partition's */
    bool attached;       /* served is a replicated partition's (repl) */
    struct offsets_repl repl;
    uint64_t term;                /* bumped by each attach and detach */
    int64_t (*now_ms)(void);      /* the log's clock (part_env) */
    bool open;                    /* the table serves (own log open, or attached) */
    struct offsets_group *groups; /* sorted by id */
    uint32_t count;
    uint32_t cap;
    /* compaction */
    struct compaction compaction;
    uint32_t inflight;                 /* commits appended, not completed */
    bool snapshot_due;                 /* waiting for inflight to reach 0 */
    struct offsets_commit *held_first; /* commits waiting for the snapshot */
    struct offsets_commit *held_last;
    uint32_t snapshot_batches; /* snapshot appends not completed */
    int snapshot_err;          /* the first of their errors */
    bool closing;              /* no new snapshot */
};

/* One partition's offset in a commit. offset -1 forgets it. */
struct offsets_item {
    const char *topic; /* NUL-terminated; copied */
    int32_t partition;
    int64_t offset;
};

typedef void (*offsets_done_fn)(struct offsets_commit *c, int rc);

/* One commit in flight, owned by the caller until done has run. */
struct offsets_commit {
    struct part_append a;
    struct replica_wait wait; /* attached: for the high watermark */
    struct offsets *o;
    uint64_t term;  /* o's when started */
    uint8_t *batch; /* owned while in flight */
    char group[GROUP_ID_BYTES_MAX + 1];
    struct offsets_item *items; /* copies, owned while in flight */
    char *names;
    uint32_t count;
    offsets_done_fn done;
    void *ctx;
    struct offsets_commit *held_next; /* the table's, while held */
};

/* Opens (creating) the offsets log in dir, with segments of segment_bytes,
 * and replays it. Precondition: env->scratch_bytes >=
 * OFFSETS_SCRATCH_BYTES. Returns 0 or -errno / -NG_ECORRUPT. */
MUST_USE int offsets_open(struct offsets *o, const char *dir, const struct part_env *env,
                          uint64_t segment_bytes);

/* Waits for commits in flight, then closes the log (attached: detaches,
 * the log stays its partition's). Returns 0 or -errno. */
MUST_USE int offsets_close(struct offsets *o);

/* A clustered broker's store starts a term on log (the partition
 * __offsets/0, which this broker now leads; segments of segment_bytes),
 * its appends replicated through repl (copied): the table is rebuilt from
 * the whole written log. Preconditions: not open; no append in flight on
 * log (part_offset_written() == part_offset_next(): the follower's last
 * appends are all in the table); env->scratch_bytes >=
 * OFFSETS_SCRATCH_BYTES. The log must outlive the term. Blocking reads.
 * Returns 0, or a read's error with the store left closed. */
MUST_USE int offsets_attach(struct offsets *o, struct part *log, uint64_t segment_bytes,
                            const struct offsets_repl *repl, const struct part_env *env);

/* Ends the term: the table is dropped; commits in flight and held ones
 * complete with -NG_ENOT_COORDINATOR, changing nothing. Harmless when not
 * attached. */
void offsets_detach(struct offsets *o);

/* Starts a commit of items for group: done(c, rc) runs once, from the
 * ring, after the batch is fdatasync'd (rc 0: the table shows the new
 * offsets) or failed. Attached, done runs once the high watermark passes
 * the batch: rc 0, or -NG_ENOT_ENOUGH_REPLICAS when the in-sync set
 * shrank below min_insync meanwhile (the table shows the offsets: they
 * are committed, on fewer replicas), or -NG_ENOT_COORDINATOR when the term
 * ended first. Returns 0, or an error with nothing started (-NG_ETOOBIG,
 * -NG_EBADNAME, -ENOMEM, -NG_ENOT_COORDINATOR (not open),
 * -NG_ENOT_ENOUGH_REPLICAS (attached, the in-sync set below min_insync),
 * part_append's errors). */
MUST_USE int offsets_commit(struct offsets *o, struct offsets_commit *c, const char *group,
                            const struct offsets_item *items, uint32_t count, offsets_done_fn done,
                            void *ctx);

/* The committed offset of a partition. Returns 0, or -NG_ENOTFOUND. */
MUST_USE int offsets_get(const struct offsets *o, const char *group, const char *topic,
                         int32_t partition, int64_t *offset_out);

/* Applies one batch of the offsets log to the table, as the replay at open
 * does (exposed for the fuzz target): records that do not parse are logged
 * and skipped. out/out_cap decompress as for batch_reader_open(). Returns 0
 * or the batch's decoding error. o need not have a log open. */
MUST_USE int offsets_replay_batch(struct offsets *o, const uint8_t *batch, size_t len,
                                  struct batch_zctx *z, uint8_t *out, size_t out_cap);

/* The group with committed offsets named id, or NULL. */
const struct offsets_group *offsets_group_find(const struct offsets *o, const char *id);

#endif
