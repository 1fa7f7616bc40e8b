/*
 * broker/share_serve.h — share groups as the broker serves them: the worker's
 * share registry (broker/share_state.h, no I/O) with its durable state log, and
 * the I/O the registry asks for. Internal to the broker: server.h declares
 * the entry points (share_serve_open, the handlers, the hooks); this header is
 * what broker/share_serve.c (ShareFetch, ShareAck, the state log, lock expiry)
 * and broker/dlq.c (dead-letter copies, DlqRedrive) share.
 *
 * Invariants:
 * - Every change of the registry is flushed and appended to the state log
 *   (DATA_DIR/groups/share-state; in a cluster the replicated partition
 *   __share_state/0 while this broker leads it, docs/cluster.md section 5)
 *   in the same turn of the loop that made it; a request whose answer
 *   depends on a change (ShareAck, ShareFetch) is answered from the done
 *   callback of the durable append carrying it (in a cluster: once the
 *   high watermark passes it). Appends complete in order, so every earlier
 *   change is durable then too.
 * - A failed state-log append fails the registry (share_reg_fail): memory
 *   is ahead of the log, so share groups refuse everything until a restart
 *   (in a cluster: the next term) replays the log.
 * - Dead-letter copies are appended durably to the dead-letter topic (in a
 *   cluster: only as its partition's leader, past the high watermark)
 *   before share_part_dead_done() archives their records.
 * Threads: the worker's only, like everything in struct server.
 */
#ifndef NAGARE_BROKER_SHARE_SERVE_H
#define NAGARE_BROKER_SHARE_SERVE_H

#include <stdbool.h>
#include <stdint.h>

#include "broker/compaction.h"
#include "broker/server.h"
#include "broker/share_state.h"
#include "net/proto.h"

/* One ShareFetch acquires at most PROTO_SHARE_FETCH_RECORDS_MAX records
 * (larger records_max values are cut to it): one full window of the
 * largest inflight_max, so the per-attempt scratch below (grants, ranges,
 * runs) is sized once. */
static_assert(PROTO_SHARE_FETCH_RECORDS_MAX == SHARE_INFLIGHT_LIMIT,
              "one fetch takes a partition's whole window at the largest inflight_max");

/* Batches of the state log: a flush buffer holds at least one part's
 * largest record (SHARE_FLUSH_BYTES_MIN, ~150 KB at the inflight limit)
 * and is at most this; the worker's scratch is sized for the offsets log,
 * whose batches are larger (checked in share_serve.c). */
#define QUEUE_STATE_BATCH_MAX (2u << 20)
#define QUEUE_FLUSH_BYTES (256u << 10)
/* State appends in flight: one request flushes at most one batch per part
 * it touched (at most PROTO_REQUEST_PARTITIONS_MAX) plus what others left
 * dirty; a request that could pass this is refused NG_EBUSY before it
 * changes anything (share_serve_room), so part_append never says -NG_EBUSY. */
#define QUEUE_STATE_APPENDS_MAX 16384u
#define QUEUE_ROOM_SLACK 64u

/* The internal group whose committed offsets (broker/offsets.h) mark how
 * far each dead-letter partition has been redriven. */
#define QUEUE_REDRIVE_GROUP "__redrive"

/* One span of contiguous whole batches an answer carries. */
struct queue_run {
    int64_t offset; /* base offset of its first batch */
    uint64_t bytes;
};

struct redrive;

struct queue {
    struct share_reg reg;
    bool reg_ready;
    struct part log; /* a single broker's state log */
    bool log_open;
    /* The log the registry is kept in: &log on a single broker; in a
     * cluster the partition __share_state/0's while this broker leads it
     * (attached, one term per leadership), else NULL (the registry is
     * failed with NG_ENOT_COORDINATOR). */
    struct part *served;
    struct bpart *attached; /* a cluster: the partition led, during a term */
    int32_t epoch;          /* its leader epoch when the term began */
    uint64_t term;          /* bumped by each attach and detach */
    int64_t create_ms;      /* a cluster: when __share_state was last asked for */
    bool closing;           /* share_serve_close() began: start nothing */
    int64_t lock_ms;
    uint64_t member_seq;          /* the last member id handed out */
    uint8_t *flush_buf;           /* QUEUE_FLUSH_BYTES */
    uint32_t state_appends;       /* state-log appends in flight */
    struct compaction compaction; /* of the state log, by checkpoints */
    /* one ShareFetch attempt's scratch, PROTO_SHARE_FETCH_RECORDS_MAX each */
    struct share_grant *grants;
    struct proto_share_acquired *acquired;
    struct queue_run *runs;
    /* dead letters and redrives (dlq.c); buffers made at first use */
    uint32_t dlq_jobs;     /* copies in flight */
    int64_t dlq_create_ms; /* a cluster: when a dead-letter topic was last asked for */
    int dlq_wait_logged;   /* a cluster: why copies last had to wait (logged once) */
    int64_t dlq_lead_ms;   /* a cluster: when leading a dead-letter partition was last asked */
    int64_t dlq_retry_ms;  /* after a failed copy: none before (loop clock) */
    uint8_t *dlq_src;      /* a source batch (or a chunk of them) */
    size_t dlq_src_cap;
    uint8_t *dlq_recs; /* its records, decompressed */
    size_t dlq_recs_cap;
    uint8_t *dlq_out; /* a batch being built */
    size_t dlq_out_cap;
    struct batch_kv *kv; /* one record's headers */
    uint32_t kv_cap;
    struct redrive *redrives; /* in flight */
};

/* Done callback of a persisted change: rc 0 once durable (or written, for
 * a non-durable append), else the append's error. */
typedef void (*share_serve_done_fn)(void *ctx, int rc);

/* The loop clock in ms (share locks run on it). */
int64_t share_serve_now_ms(const struct server *s);

/* True when the state log can take `batches` more appends (with slack for
 * what others left dirty). Check before changing the registry. */
bool share_serve_room(const struct queue *q, uint32_t batches);

/* Flushes every dirty part and appends the batches to the state log
 * (durable: fdatasync'd before done). Returns 1 when nothing was dirty
 * (done is not called), 0 when done(ctx, rc) will run from the last
 * append's completion, or the error that failed the registry (done is not
 * called). done may be NULL. */
MUST_USE int share_serve_persist(struct server *s, bool durable, share_serve_done_fn done,
                                 void *ctx);

/* The running partition a share part reads, or NULL when its topic or
 * partition is gone. Not while the worker is stopping (topics may be
 * freed then). */
struct bpart *share_serve_source(struct server *s, const struct share_part *sp);

/* ---- dlq.c ---- */

/* Starts dead-letter copies for parts with dead letters not yet taken (at
 * most a few copies in flight; none while stopping, or for a second after
 * a failed copy). From housekeeping and after each state-log append. */
void dlq_drive(struct server *s);

/* Frees the dead-letter buffers. Copies and redrives must be done. */
void dlq_fini(struct queue *q);

/* "<topic>.dlq" for topic[0..len): the dead-letter topic's name, with the
 * topic cut so that the name stays within PROTO_TOPIC_NAME_BYTES_MAX (and
 * differs from topic). Returns its length. */
size_t dlq_name(const char *topic, size_t len, char out[PROTO_TOPIC_NAME_BYTES_MAX + 1]);

#endif
