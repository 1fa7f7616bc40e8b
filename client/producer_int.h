/*
 * client/producer_int.h — the producer's insides, shared by producer.c (life
 * cycle, poll, flush, metadata), accum.c (send: partitioning, open batches,
 * the buffer pool) and sender.c (produce requests, answers, retries).
 *
 * Invariants.
 * - Every record accepted by nagare_send() is in exactly one place until its
 *   delivery report has run: a topic's hold (metadata not known yet), a
 *   partition's open batch, a partition's queue of closed batches (waiting,
 *   or in flight in exactly one request), the done list, or the failed-record
 *   list. p->outstanding counts them.
 * - A partition's queue is in sequence order. With idempotence each closed
 *   batch carries (producer id, epoch, sequence base) and keeps them on every
 *   retry, so a batch the broker already has is answered with its first
 *   offset; at most PART_INFLIGHT_MAX batches of a partition are in flight,
 *   the number the broker remembers per producer (broker/producers.h). A
 *   batch coming back for a retry stops the partition until its other
 *   batches in flight have come back, then the queue is resent in order.
 * - Memory: batch buffers come from a pool of batch_bytes buffers, reused;
 *   a batch that grows (BATCH_GROWTH_MAX) moves to one of a second pool, of
 *   grown_buf_bytes buffers; a record larger than a batch gets a buffer of
 *   its own, freed after its report. bytes_used (every buffer not in a free
 *   pool, plus holds) stays within buffer_bytes_max: past it, send returns
 *   -NG_EBUSY; the grown buffers of open batches (open_grown_bytes) stay
 *   within half of it.
 * - The poll does work in proportion to what is pending, not to the
 *   partitions: open batches are listed in the order they opened
 *   (p->open_head), so the linger check stops at the first not yet due,
 *   and a batch past its linger whose partition cannot send leaves the list
 *   (overdue: the sender closes it when the partition can send);
 *   p->timers_due_ms is never later than the earliest delivery timeout of a
 *   waiting or overdue batch or end of a partition's backoff, so the walk over the
 *   queues runs only once something may be due (every place that queues a
 *   batch or starts a backoff lowers it: sender_timer_at()).
 * One thread: the producer's.
 */
#ifndef NAGARE_CLIENT_PRODUCER_INT_H
#define NAGARE_CLIENT_PRODUCER_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "client/brokers.h"
#include "client/conn.h"
#include "client/nagare.h"
#include "storage/batch.h"

/* Batches of one partition in flight: the broker remembers the last 5
 * batches of each producer per partition (PRODUCER_BATCHES_KEPT), so a
 * retried batch is always recognised as a duplicate. */
#define PART_INFLIGHT_MAX 5
/* A partition whose next batch could not go out at once (sender_part_ready()
 * false: its batches in flight at PART_INFLIGHT_MAX, others waiting before
 * it, the connection's requests at inflight_max) lets its full open batch
 * grow by batch_bytes at a time, up to this many times batch_bytes, rather
 * than close it to wait in the queue; the sender closes it as soon as the
 * partition can send. So the bytes in flight follow the round trip by
 * themselves: while the pipeline is full, each batch carries what came
 * during its wait (librdkafka builds its batches at send time for the same
 * reason), and at a low rate nothing changes. Its linger does not close it
 * while it waits either (accum_linger()), and keyless records stay with it
 * (accum.c, grown_limit()). 16 times the default 64 KiB
 * is 1 MiB, Kafka's largest batch by default (and never past the broker's
 * default, TOPIC_BATCH_BYTES_DEFAULT, or the topic's limit). */
#define BATCH_GROWTH_MAX 16u
/* Backoff doubles up to this. */
#define RETRY_BACKOFF_MAX_MS 1000
/* A topic the broker does not know is not asked about again for this long;
 * meanwhile sends to it fail at once. */
#define TOPIC_MISSING_MS 1000
/* Produce request frame overhead besides the batches: header with client id,
 * acks, timeout, counts, and per partition its index and length (topic names
 * are counted as they are added). */
#define PRODUCE_FRAME_OVERHEAD_BYTES 64
#define PRODUCE_PART_OVERHEAD_BYTES 8
/* Largest batch when the broker does not say (Metadata v0): its default. */
#define TOPIC_BATCH_BYTES_DEFAULT (8u << 20)

enum pbatch_state {
    PB_OPEN = 0, /* being filled */
    PB_QUEUED,   /* closed, waiting to be sent (or resent) */
    PB_INFLIGHT, /* in a request */
    PB_DONE,     /* outcome known, report pending */
};

struct ptopic;

struct pbatch {
    struct pbatch *next;      /* partition queue, done list or free pool */
    struct pbatch *open_prev; /* while open: p->open_head's list */
    struct pbatch *open_next;
    struct ptopic *topic;
    int32_t partition;
    enum pbatch_state state;
    uint8_t *buf;
    size_t cap;
    bool pooled;              /* buf is a pool buffer (cap == pool_buf_bytes) */
    bool grown;               /* buf is a grown one (cap == grown_buf_bytes) */
    bool overdue;             /* open past its linger while its partition could not send:
                     off p->open_head's list, closed once it can */
    struct batch_builder bld; /* while open */
    size_t bytes;             /* finished size */
    int32_t record_count;
    size_t added_bytes;    /* while open: what the last record took */
    int32_t sequence_base; /* -1: not idempotent */
    void **opaques;        /* one per record; grown, kept across reuse */
    uint32_t opaque_cap;
    int64_t created_ms; /* first record added (monotonic) */
    uint32_t attempts;  /* sends so far */
    int err;            /* PB_DONE: outcome */
    int64_t offset_base;
};

struct ppart {
    struct cbroker *leader; /* where its batches go; NULL: not known (metadata
                               is asked); set with cbroker_lead() */
    struct pbatch *open;
    struct pbatch *head; /* closed batches, in sequence order */
    struct pbatch *tail;
    uint32_t queued; /* closed batches in the queue */
    uint32_t inflight;
    /* The broker the batches in flight went to: while any is out, no batch
     * goes to another (a leader moved), so that a retry of one of them
     * reaches the new leader before anything newer and is known there as
     * a copy of what it replicated, not taken as out of order. */
    struct cbroker *inflight_to;
    int32_t leader_epoch;  /* of leader, as the last Metadata naming it said */
    int32_t sequence_next; /* for the next closed batch */
    int16_t epoch;         /* bumped when its sequence had to restart */
    bool retrying;         /* resend the queue in order once inflight is 0 */
    bool resequence;       /* bump the epoch and renumber once inflight is 0 */
    int64_t backoff_until_ms;
    uint32_t backoff_ms;
    int err_last; /* the broker's last (retried) error for a batch
                                 of this partition; 0 after a success */
};

enum ptopic_state {
    PT_UNKNOWN = 0, /* metadata asked for (or to ask) */
    PT_KNOWN,
    PT_MISSING, /* the broker does not know it; until missing_until_ms */
};

/* Records sent before the topic's metadata came, in one uncompressed batch
 * (so they are copied once, with their headers), replayed into partitions
 * when the partition count is known. */
struct phold {
    uint8_t *buf;
    size_t cap;
    struct batch_builder bld;
    void **opaques;
    int32_t *partitions;
    uint32_t count;
    uint32_t slots;
    int64_t first_ms; /* when the first held record came (monotonic) */
};

struct ptopic {
    char name[PROTO_TOPIC_NAME_BYTES_MAX + 1];
    size_t name_len;
    uint64_t hash;
    enum ptopic_state state;
    int32_t partition_count;
    uint32_t batch_bytes_max;
    struct ppart *parts; /* parts_len >= partition_count of them */
    int32_t parts_len;
    int32_t sticky;      /* keyless records' partition; -1: pick one */
    size_t sticky_bytes; /* what they took there since it was picked */
    struct phold hold;
    bool meta_wanted; /* to be asked in the next Metadata */
    bool meta_inflight;
    bool probing; /* a probe is in flight (see producer.c) */
    bool probed;  /* a produce already gave the broker a chance to create it */
    int64_t missing_until_ms;
};

/* A record that failed on its own (not as part of a batch). */
struct pfailed {
    struct ptopic *topic;
    int32_t partition;
    int err;
    void *opaque;
};

/* A broker error to announce through on_error (sender_broker_err()). */
struct perror {
    struct ptopic *topic;
    int32_t partition;
    int err;
};

/* One produce request in flight: its batches, in the request's order, and
 * those of them it sends from their own buffers (conn_frame_commit_refs():
 * each buffer stays as it is until the request completes, since a batch
 * in flight is in this one request only and is neither released nor
 * changed before its answer or its failure). */
struct preq {
    struct nagare_producer *p;
    struct cbroker *broker; /* the leader it went to */
    uint32_t count;
    uint32_t cap; /* of batches and of refs */
    struct pbatch **batches;
    struct conn_ref *refs;
    uint32_t ref_count;
    size_t ref_bytes;
    struct preq *next_free;
};

struct nagare_producer {
    struct nagare_producer_config cfg;
    char bootstrap[CONN_BOOTSTRAP_BYTES_MAX];
    struct brokers brokers; /* the bootstrap connection and each leader's */
    struct batch_zctx zctx;
    int fatal; /* 0, or the error that stopped the producer */
    /* identity */
    int64_t producer_id; /* -1: not idempotent */
    int16_t producer_epoch;
    /* topics: open addressing over topics[], power-of-two slots */
    struct ptopic **topics;
    uint32_t topic_count;
    uint32_t topic_slots;
    struct ptopic *last_topic;
    /* buffers */
    size_t pool_buf_bytes;
    size_t grown_buf_bytes; /* pool_buf_bytes * BATCH_GROWTH_MAX, within a batch's limit */
    size_t bytes_used;
    size_t open_grown_bytes;   /* grown buffers of open batches */
    struct pbatch *pool;       /* free batches with pool buffers */
    struct pbatch *pool_grown; /* free batches with grown buffers */
    /* outcomes waiting for their reports */
    struct pbatch *done_head;
    struct pbatch *done_tail;
    struct pfailed *failed;
    uint32_t failed_count;
    uint32_t failed_cap;
    struct perror *errors; /* for on_error, in the order they came */
    uint32_t error_count;
    uint32_t error_cap;
    /* requests */
    struct preq *preq_free;
    bool meta_inflight;
    struct cbroker *meta_on; /* the broker asked (brokers_meta()) */
    int64_t meta_next_ms;    /* a refresh may go then (one per retry_backoff_ms) */
    /* stalls (producer.c, stall_check()): a broker keeping a produce
     * unanswered for cfg.stall_ms has another broker asked who leads
     * (each cbroker's stall_next_ms rates the asks about it) */
    uint32_t stall_asks; /* stall Metadata sent: spreads them over the brokers */
    bool flushing;
    bool in_callback;
    size_t outstanding; /* records accepted, not yet reported */
    uint64_t rng;
    struct batch_kv *kv; /* headers of the record being added */
    uint32_t kv_cap;
    bool closing;            /* destroy: nothing is retried */
    uint64_t batches_closed; /* counts accum_close() calls */
    /* open batches whose linger runs, oldest first (created_ms
     * nondecreasing); overdue ones are off it */
    struct pbatch *open_head;
    struct pbatch *open_tail;
    uint32_t topics_holding; /* topics with held records */
    int64_t timers_due_ms;   /* sender_timers() has nothing to do before */
};

/* ---- accum.c ---- */

/* The topic entry for name, len bytes (created PT_UNKNOWN when new).
 * Precondition: the name is valid (proto_topic_name_valid()): entries
 * are only ever made for valid names, which lets a send skip the check
 * for a name it finds. Returns NULL only when out of memory. */
struct ptopic *accum_topic(struct nagare_producer *p, const char *name, size_t len);

/* Appends a record to its partition (chosen here for NAGARE_PARTITION_ANY).
 * Precondition: t is PT_KNOWN. force: may go past buffer_bytes_max (replay
 * of held records, already counted). Returns 0, -NG_EBUSY, -NG_ETOOBIG,
 * -NG_EUNKNOWN_TOPIC (partition out of range), -NG_EBADARG, -ENOMEM. */
int accum_append(struct nagare_producer *p, struct ptopic *t, int32_t partition, int64_t ts_ms,
                 const void *key, int32_t key_len, const void *value, int32_t value_len,
                 const struct batch_kv *hdrs, uint32_t hdr_count, void *opaque, bool force);

/* Holds a record of a topic whose metadata is not known yet. */
int accum_hold(struct nagare_producer *p, struct ptopic *t, int32_t partition, int64_t ts_ms,
               const void *key, int32_t key_len, const void *value, int32_t value_len,
               const struct batch_kv *hdrs, uint32_t hdr_count, void *opaque);

/* Metadata came for t: sizes its partitions and replays its hold. */
int accum_topic_known(struct nagare_producer *p, struct ptopic *t, int32_t partition_count,
                      uint32_t batch_bytes_max);

/* Fails every record of t that is held or not yet sent (t is missing). */
void accum_topic_fail(struct nagare_producer *p, struct ptopic *t, int err);

/* Closes a partition's open batch: finishes it (sequence, compression,
 * checksum) and queues it. */
void accum_close(struct nagare_producer *p, struct ptopic *t, int32_t partition);

/* Closes open batches whose linger ran out (all of them when flushing), and
 * fails held records past the delivery timeout (their topic's metadata
 * never came). Returns the earliest time either will happen next, or
 * INT64_MAX. Costs the batches it closes plus one, and the topic table
 * only while some topic holds records. */
int64_t accum_linger(struct nagare_producer *p, int64_t now_ms);

/* Records a single failed record for a report. */
void accum_fail_record(struct nagare_producer *p, struct ptopic *t, int32_t partition, int err,
                       void *opaque);

/* Returns a batch's buffer to the pool (or frees an oversized one). */
void accum_release(struct nagare_producer *p, struct pbatch *b);

/* Frees every topic, batch and buffer (reports must have run). */
void accum_free_all(struct nagare_producer *p);

/* ---- sender.c ---- */

/* Sends produce requests for every partition with a batch ready, while the
 * connection takes more. */
void sender_drain(struct nagare_producer *p, int64_t now_ms);

/* A batch's outcome is final: moves it to the done list. */
void sender_complete(struct nagare_producer *p, struct pbatch *b, int err, int64_t offset_base);

/* Fails queued batches past the delivery timeout. Returns the next time
 * something is due: a delivery timeout or the end of a backoff, when a
 * drain may send again. Walks the partitions only once p->timers_due_ms
 * has come. */
int64_t sender_timers(struct nagare_producer *p, int64_t now_ms);

/* Something of the sender's may be due at at_ms (a batch queued, a backoff
 * started): sender_timers() will look then. */
void sender_timer_at(struct nagare_producer *p, int64_t at_ms);

/* Whether a batch of pp closed now would go out in the next request: the
 * connection takes requests, nothing of pp waits before it, pp has a slot
 * in flight and no backoff or resend pending. */
bool sender_part_ready(const struct nagare_producer *p, const struct ppart *pp, int64_t now_ms);

/* Frees the request pool. */
void sender_free(struct nagare_producer *p);

/* ---- producer.c ---- */

/* Asks for metadata of t on the next maintenance pass. */
void producer_want_metadata(struct nagare_producer *p, struct ptopic *t);

#endif
