/*
 * broker/producers.h — idempotent produce: per partition, the recent batches
 * of each producer id, so a retried batch is answered with its first offset
 * instead of being written twice, and a gap in sequence numbers is refused.
 *
 * As in Kafka, a producer may have up to PRODUCER_BATCHES_KEPT batches in
 * flight, so that many of its latest batches are remembered. The table holds
 * at most `cap` producers; past that the least recently used is forgotten
 * (its next batch is then accepted with any sequence, as for a new id).
 * It starts small and doubles as producers arrive, so a partition no
 * idempotent producer writes to costs PRODUCERS_SLOTS_MIN slots, not cap's
 * worth; when growing fails for want of memory, the least recently used
 * producer is forgotten instead, as when the table is full.
 * The state is derived from the log: after a restart the broker rebuilds it
 * by feeding every batch header to producers_record(). One thread (the
 * partition's owner) uses a table.
 */
#ifndef NAGARE_BROKER_PRODUCERS_H
#define NAGARE_BROKER_PRODUCERS_H

#include <stdbool.h>
#include <stdint.h>

#include "base/assert.h"
#include "storage/batch.h"

#define PRODUCER_BATCHES_KEPT 5
#define PRODUCERS_SLOTS_MIN 8

struct producer_batch {
    int32_t sequence_first;
    int32_t sequence_last;
    int64_t offset_base;
};

struct producer_state {
    int64_t id; /* -1: empty slot */
    int16_t epoch;
    /* Every sequence of the epoch before the oldest batch remembered is in
     * the log: the state was learnt from the log (a rebuild, a follower's
     * copy), or began at sequence 0. False for a producer first seen in
     * mid-sequence (one forgotten, then back): what came before is not
     * known to be anywhere. */
    bool whole;
    uint8_t count;  /* batches in recent[] */
    uint8_t newest; /* index of the newest */
    uint64_t used;  /* table clock at last use, for eviction */
    struct producer_batch recent[PRODUCER_BATCHES_KEPT];
};

struct producers {
    struct producer_state *slots; /* open addressing, linear probing */
    uint32_t slot_count;          /* power of two, <= slot_max; count <= half */
    uint32_t slot_max;            /* power of two, >= 2 * cap */
    uint32_t count;
    uint32_t cap;
    uint64_t clock;
};

/* Allocates a table for up to cap producers (its first PRODUCERS_SLOTS_MIN
 * slots). Returns 0 or -ENOMEM. */
MUST_USE int producers_init(struct producers *ps, uint32_t cap);
void producers_fini(struct producers *ps);

/* producers_check()'s verdicts, besides errors. */
enum {
    PRODUCERS_APPEND = 0,    /* a new batch: append it */
    PRODUCERS_DUPLICATE = 1, /* a recent batch again: *offset_out is where it is */
    /* A batch older than every batch remembered, of a producer whose state
     * is whole: it was appended before them (sequences are accepted only
     * in order), so it is in the log, where is not known; *offset_out is
     * one past the newest batch remembered, which the caller may wait for
     * (acks=all). A producer retrying while more than
     * PRODUCER_BATCHES_KEPT of its later batches went in meets this (a
     * request it gave up on that the broker still carried out, say); Kafka
     * answers it DUPLICATE_SEQUENCE_NUMBER, which its clients take as
     * success with no offset. */
    PRODUCERS_WRITTEN = 2,
};

/* Judges a batch before it is appended (h as decoded; producer_id >= 0):
 * returns a verdict above, -NG_EPRODUCER_FENCED for an epoch older than the
 * producer's, or -NG_EOUT_OF_ORDER for a sequence that neither follows nor
 * is known to be written. */
MUST_USE int producers_check(struct producers *ps, const struct batch_header *h,
                             int64_t *offset_out);

/* Remembers an appended batch (h->offset_base is its base offset). Batches
 * with producer_id < 0 are ignored. from_log: the batch comes from the log
 * (a rebuild, a follower's copy of its leader's), not from a producer's
 * request judged by producers_check(). */
void producers_record(struct producers *ps, const struct batch_header *h, bool from_log);

/* Forgets an appended batch whose append then failed (a full disk cut the
 * log back): a retry of it is then judged afresh, never answered as a
 * duplicate of bytes that are not in the log. No-op when not remembered. */
void producers_forget(struct producers *ps, const struct batch_header *h);

/* Forgets every producer, keeping the table's memory: before a rebuild
 * from the log (a follower's log was cut back, and the last sequences
 * before the cut may be older than the recent batches kept). */
void producers_clear(struct producers *ps);

#endif
