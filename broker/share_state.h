/*
 * broker/share_state.h — share groups (queue semantics, after Kafka's KIP-932):
 * per (share group, topic, partition) the window of records handed out to
 * competing consumers, with per-record locks, acknowledgement, redelivery
 * and dead-lettering, and the durable form of that state. No networking:
 * the broker's handlers drive it and do the I/O it asks for.
 *
 * Invariants:
 * - Each share_part has a window [start, end) of in-flight records. Every
 *   offset below start is finished (accepted, or archived after its copy
 *   to the dead-letter topic); end is the next offset never handed out;
 *   end - start <= inflight_max. The record at start, if any, is not
 *   finished, so start only moves forward and only over finished records.
 * - A record in the window is AVAILABLE (handed out before, free again),
 *   ACQUIRED (locked by one member until a deadline), ACCEPTED, DEADLETTER
 *   (to be copied to the dead-letter topic) or ARCHIVED (copied). A record
 *   is only ever acquired from AVAILABLE or as a new offset at end, so two
 *   members never hold one record at once (asserted).
 * - Every acquisition raises the record's delivery count. A lock that
 *   ends without an accept (release, expiry, the member leaving) makes the
 *   record AVAILABLE again, or DEADLETTER ("max deliveries") once its count
 *   has reached delivery_max. A reject makes it DEADLETTER ("rejected").
 * - Every change that must survive a restart (acks, lock ends, dead-letter
 *   decisions and confirmations, start and end moving, a part's creation)
 *   marks the part dirty; share_reg_flush() encodes the dirty state as one
 *   batch for the caller to append to the share state log. Nothing here
 *   writes to disk.
 * Threads: a registry and its parts belong to one thread (the worker that
 *   owns the share state log); only that thread may call share_* on them.
 *
 * ---- How the broker uses it ----
 * Start-up: share_reg_init(), open the state log (a struct part with
 *   retention off: retention_ms = -1, retention_bytes = -1, because replay
 *   reads it from its first offset; only a checkpoint makes older segments
 *   deletable), share_reg_replay(), then serve.
 * Share fetch: share_reg_open() the part (start offset for a new one, e.g.
 *   the partition's log end for "latest"), share_part_acquire(), read the
 *   granted offsets from the topic's log and send them with their delivery
 *   counts.
 * Share acknowledge: share_part_ack() per range (each range succeeds or
 *   fails whole; the per-range rc goes in the answer).
 * After either, in the same turn of the loop: if share_reg_dirty(),
 *   share_reg_flush() (repeat while dirty) and part_append() each batch
 *   with durable = true; answer the request only from the done callback of
 *   its last append. Appends complete in order, so a change flushed by an
 *   earlier append is durable by then too. This is what makes
 *   "acknowledgements are persisted before they are answered" true. When
 *   nothing was dirty (every range refused), answer at once. If
 *   part_append() fails or its done callback gets rc != 0, call
 *   share_reg_fail(): memory is then ahead of the log, so the registry
 *   refuses everything until a restart replays the log (at-least-once:
 *   the unpersisted acks are redelivered). Check that the state log has
 *   room for an append (appends_inflight_max) before mutating, so -NG_EBUSY
 *   does not fail the registry.
 * Timer: share_reg_expire() (its next-deadline output says when to run it
 *   again), then flush and append; a non-durable append is enough here, as
 *   a lost lock-end only loses a delivery count increment.
 * Member gone (leave, session timeout): share_reg_member_leave(), flush.
 * Dead letters: for each part with share_part_dead_pending() > 0 (ideally
 *   once the append carrying the decision has completed),
 *   share_part_dead_take(), read each record from the source log, produce
 *   it durably to "<topic>.dlq" with headers naming topic, partition,
 *   offset, delivery count and share_reason_str(reason), then
 *   share_part_dead_done() with the produce's rc; flush. Until confirmed a
 *   DEADLETTER record holds start (nothing is lost, and the window bound
 *   pushes back if the dead-letter topic cannot be written); after a crash
 *   between the copy and the persisted confirmation the record is reported
 *   again, so dead-letter copies are at-least-once (the headers identify a
 *   duplicate). A failed copy (rc != 0) is reported again by the next take.
 * Retention on a source partition: share_part_trim() with its log start.
 * A deleted topic: share_reg_drop_topic() (and at start-up for every topic
 *   the replay knows that no longer exists), then flush durably. A part
 *   with dead-letter copies in flight lives on, out of the registry, until
 *   the last share_part_dead_done() on it.
 *
 * ---- At the in-flight limit ----
 * When end - start == inflight_max, share_part_acquire() hands out only
 * AVAILABLE records of the window (redeliveries) and no new offsets, until
 * acks (or dead-letter confirmations) finish the record at start and start
 * advances. A stuck record at start (a slow consumer, a dead-letter topic
 * that cannot be written) therefore stops new deliveries on that part:
 * back-pressure, never unbounded memory.
 *
 * ---- Durable format: the share state log ----
 * Each batch share_reg_flush() builds is an ordinary uncompressed record
 * batch (storage/batch.h); each record describes one part.
 *   key:   be16 group_len, group bytes, be16 topic_len, topic bytes,
 *          be32 partition
 *   value: u8 version (1), u8 flags (bit 0: snapshot; others 0),
 *          be64 start, be64 end, be32 range_count, then range_count ranges:
 *            uvarint gap (first - cursor), uvarint length - 1,
 *            u8 state, u8 reason, uvarint delivery_count
 *          where cursor starts at start and becomes last + 1 after each
 *          range, and every range lies in [start, end).
 * A range gives records their persisted image: AVAILABLE (count = deliveries
 * completed), ACCEPTED (count 0), DEADLETTER (count, reason 1 rejected or 2
 * max deliveries), ARCHIVED (count 0); reason is 0 unless DEADLETTER.
 * ACQUIRED is never written: an acquired record's image is AVAILABLE with
 * the deliveries before the current one (acquisitions are not persisted,
 * to keep a write off the fetch path). A delta record (flags 0) lists only
 * records changed since the part's previous record; start and end never go
 * back; records newly inside [start, end) and not listed are AVAILABLE with
 * count 0. A snapshot record (flag 1; a part's first record, and every
 * part's next record after share_reg_checkpoint()) replaces the whole
 * window: records not listed are AVAILABLE with count 0.
 * Replay therefore gives: finished records (below start, or ACCEPTED /
 * ARCHIVED) are never delivered again; every other record comes back
 * AVAILABLE (ACQUIRED ones lose their lock) with the count of its last
 * persisted change, so a restart can undercount a record's deliveries by
 * one: the delivery in flight at the crash. DEADLETTER records come back
 * to be copied again.
A record with a null value (a tombstone) says the part
 * is gone (its topic was deleted): replay forgets it, and a later record
 * with the same key starts a new part.
 */
#ifndef NAGARE_BROKER_SHARE_STATE_H
#define NAGARE_BROKER_SHARE_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/assert.h"
#include "storage/batch.h"
#include "storage/partition.h"

/* ---- limits and configuration ---- */

/* Group and topic names: the broker validates them (PROTO_TOPIC_NAME_BYTES_MAX
 * for topics); this bounds the copies a part keeps. */
#define SHARE_NAME_BYTES_MAX 249
/* Kafka's group.share.partition.max.record.locks tops out at 10000; the
 * bound also keeps a snapshot record under 160 KB. */
#define SHARE_INFLIGHT_LIMIT 10000u
/* Delivery counts are u16 on the wire; Kafka allows 2..10, we allow
 * 1 (no redelivery) .. 100. */
#define SHARE_DELIVERY_LIMIT 100u
/* Locks from 1 ms (tests) to one hour (Kafka's record.lock.duration.ms max). */
#define SHARE_LOCK_MS_LIMIT 3600000
/* Parts in one registry: each costs ~24 bytes per inflight_max slot. */
#define SHARE_PARTS_LIMIT (1u << 20)

struct share_config {
    uint32_t inflight_max; /* window size bound per part (1000) */
    uint32_t delivery_max; /* deliveries before dead-lettering (5) */
    int64_t lock_ms;       /* acquisition lock the broker asks for (30000) */
    uint32_t parts_max;    /* (group, topic, partition) parts held (4096) */
};

/* Fills c with the defaults above. */
void share_config_default(struct share_config *c);

/* Returns 0, or -NG_EBADARG when a field is outside 1..its limit above. */
MUST_USE int share_config_check(const struct share_config *c);

/* Bytes of the durable encoding, bounded so a flush buffer can be sized. */
#define SHARE_KEY_BYTES_MAX (2 + SHARE_NAME_BYTES_MAX + 2 + SHARE_NAME_BYTES_MAX + 4)
#define SHARE_VALUE_HEADER_BYTES 22 /* version, flags, start, end, range_count */
#define SHARE_RANGE_BYTES_MAX 15    /* gap 5, length 5, state, reason, count 3 */
#define SHARE_VALUE_BYTES_MAX(inflight_max) \
    (SHARE_VALUE_HEADER_BYTES + (size_t)(inflight_max)*SHARE_RANGE_BYTES_MAX)
/* A batch record's own framing: length, attributes, timestamp and offset
 * deltas, key and value lengths, header count: at most 36 bytes. */
#define SHARE_RECORD_FRAMING_BYTES 64
/* The smallest flush buffer: one batch holding one part's largest record. */
#define SHARE_FLUSH_BYTES_MIN(inflight_max)                                  \
    (BATCH_HEADER_BYTES + SHARE_RECORD_FRAMING_BYTES + SHARE_KEY_BYTES_MAX + \
     SHARE_VALUE_BYTES_MAX(inflight_max))

/* ---- records, grants, dead letters ---- */

enum share_state {
    SHARE_AVAILABLE = 1,
    SHARE_ACQUIRED = 2,
    SHARE_ACCEPTED = 3,
    SHARE_DEADLETTER = 4, /* decided; waiting for its dead-letter copy */
    SHARE_ARCHIVED = 5,   /* copied to the dead-letter topic; finished */
};
#define SHARE_STATE_COUNT 6

/* Kafka's AcknowledgeType values. */
enum share_ack_type {
    SHARE_ACK_ACCEPT = 1,  /* processed: finished */
    SHARE_ACK_RELEASE = 2, /* give back: AVAILABLE (or dead-lettered at max) */
    SHARE_ACK_REJECT = 3,  /* unprocessable: dead-lettered */
};

enum share_reason {
    SHARE_REASON_NONE = 0,
    SHARE_REASON_REJECTED = 1,
    SHARE_REASON_MAX_DELIVERIES = 2,
};

/* "rejected", "max deliveries" (for the dead-letter copy's header), or "". */
const char *share_reason_str(enum share_reason reason);

/* Member ids are the broker's: nonzero, unique within a group. */
#define SHARE_MEMBER_NONE 0u

/* Offsets [first, last] handed out, each now delivered delivery_count times. */
struct share_grant {
    int64_t first;
    int64_t last;
    uint16_t delivery_count;
};

/* A record to copy to the dead-letter topic. */
struct share_dead {
    int64_t offset;
    uint16_t delivery_count;
    enum share_reason reason;
};

/* One record of the window, as share_part_record() reports it. */
struct share_record_info {
    enum share_state state;
    uint16_t delivery_count;
    enum share_reason reason; /* DEADLETTER / ARCHIVED in this run */
    uint64_t member;          /* ACQUIRED: the holder */
    int64_t deadline_ms;      /* ACQUIRED: the lock's end */
};

/* ---- the registry and its parts ---- */

/* private: one slot of a part's ring, offset % inflight_max. */
struct share_rec {
    uint64_t member;
    int64_t deadline_ms;
    uint16_t delivery_count;
    uint8_t state; /* enum share_state */
    uint8_t flags; /* dirty, taken, reason */
};

struct share_reg;

/* One (group, topic, partition). Allocated and owned by its registry;
 * pointers stay valid until share_reg_fini(). Fields are private: use the
 * accessors below. */
struct share_part {
    char group[SHARE_NAME_BYTES_MAX + 1];
    char topic[SHARE_NAME_BYTES_MAX + 1];
    uint16_t group_len;
    uint16_t topic_len;
    int32_t partition;
    int64_t start;          /* SPSO */
    int64_t end;            /* SPEO */
    struct share_rec *recs; /* inflight_max slots */
    uint32_t cap;
    uint32_t counts[SHARE_STATE_COUNT]; /* records of the window per state */
    uint32_t dead_taken;                /* DEADLETTER records handed to the caller */
    int64_t deadline_min;               /* <= every ACQUIRED deadline */
    int64_t dirty_lo;                   /* changed records lie in [dirty_lo, dirty_hi] */
    int64_t dirty_hi;
    bool dirty;        /* on the registry's dirty list */
    bool snapshot_due; /* next record is a snapshot */
    bool gone;         /* dropped: out of parts[], its tombstone due */
    struct share_part *dirty_next;
    struct share_part *gone_next; /* the registry's list of gone parts */
    struct share_reg *reg;
};

/* What a registry counts while it serves (not replayed decisions): for the
 * metrics (broker/metrics.h). */
struct share_reg_stats {
    uint64_t deliveries;    /* records handed to a member (lock taken) */
    uint64_t redeliveries;  /* of them, records delivered before */
    uint64_t dead_lettered; /* records decided dead (rejected, or at max deliveries) */
};

struct share_reg {
    struct share_config cfg;
    struct share_reg_stats stats;
    struct share_part **parts; /* sorted by (group, topic, partition) */
    uint32_t count;
    struct share_part *dirty_head; /* FIFO of dirty parts */
    struct share_part *dirty_tail;
    struct share_part *gone; /* dropped parts not yet freed: their tombstone
                                 * not flushed or dead letters in flight */
    uint8_t *scratch;        /* one encoded key and value */
    size_t scratch_bytes;
    int failed; /* 0, or why every call is refused */
};

/* Sets up an empty registry for cfg (which must pass share_config_check).
 * Allocates the part table (parts_max pointers) and the encoding scratch.
 * Returns 0 or -ENOMEM (nothing left allocated). */
MUST_USE int share_reg_init(struct share_reg *r, const struct share_config *cfg);

/* Frees every part and the registry's memory. */
void share_reg_fini(struct share_reg *r);

/* Drops every part of topic (every group): each leaves the registry now
 * (a share fetch of a new topic of that name starts afresh) and its
 * tombstone goes with the next flush. *dropped_out counts them. */
void share_reg_drop_topic(struct share_reg *r, const char *topic, size_t topic_len,
                          uint32_t *dropped_out);

/* The part for (group, topic, partition), or NULL. Names are bytes with
 * lengths (not NUL-terminated); the registry keeps copies. */
struct share_part *share_reg_find(struct share_reg *r, const char *group, size_t group_len,
                                  const char *topic, size_t topic_len, int32_t partition);

/* Finds the part, or creates it with window [start_offset, start_offset)
 * (allocating its ring: once per part, never per record) and marks it
 * dirty so its creation is persisted with the next flush. start_offset is
 * ignored for an existing part. Returns 0 with *out, -NG_EBADNAME (a name
 * empty or over SHARE_NAME_BYTES_MAX), -NG_EBADARG (partition or
 * start_offset < 0), -NG_ETOOBIG (parts_max parts exist), -ENOMEM, or the
 * registry's failure. */
MUST_USE int share_reg_open(struct share_reg *r, const char *group, size_t group_len,
                            const char *topic, size_t topic_len, int32_t partition,
                            int64_t start_offset, struct share_part **out);

/* Parts in the registry, and the i-th (i < share_reg_count) in key order;
 * for sweeps (dead letters, describe). An index holds until the next
 * share_reg_open() or replay (which may insert); a part pointer until
 * share_reg_fini(). */
uint32_t share_reg_count(const struct share_reg *r);
struct share_part *share_reg_part(struct share_reg *r, uint32_t i);

/* Hands records to member under a lock until now_ms + lock_ms: first the
 * window's AVAILABLE records, lowest offset first, then new offsets from end
 * up to log_end (exclusive) and start + inflight_max. Stops after
 * max_records records or when a new grant would not fit grants[grants_cap]
 * (consecutive offsets with one delivery count share a grant). Each record
 * handed out has its delivery count raised. Preconditions: member nonzero,
 * max_records and grants_cap >= 1, now_ms >= 0, 1 <= lock_ms <=
 * SHARE_LOCK_MS_LIMIT, log_end >= 0. Expired locks are not reclaimed here:
 * call share_reg_expire() first to hand them out again. Changes nothing
 * persisted. Returns 0 with *count_out grants (0: nothing to hand out), or
 * the registry's failure (nothing handed out). */
MUST_USE int share_part_acquire(struct share_part *sp, uint64_t member, int64_t log_end,
                                uint32_t max_records, int64_t now_ms, int64_t lock_ms,
                                struct share_grant *grants, uint32_t grants_cap,
                                uint32_t *count_out);

/* Acknowledges offsets [first, last] for member: ACCEPT finishes them,
 * RELEASE makes them AVAILABLE (DEADLETTER "max deliveries" for those whose
 * count reached delivery_max), REJECT makes them DEADLETTER "rejected";
 * then start advances over finished records. All or nothing: every record
 * in the range must be ACQUIRED by member with a lock not yet ended
 * (now_ms < deadline). Returns 0, -NG_EBADARG (first < 0, first > last, or
 * an unknown type), -NG_ENOT_ACQUIRED (some record is outside [start, end),
 * finished, available, another member's, or its lock ended; nothing
 * changed), or the registry's failure. Marks the part dirty on 0. */
MUST_USE int share_part_ack(struct share_part *sp, uint64_t member, int64_t first, int64_t last,
                            enum share_ack_type type, int64_t now_ms);

/* Ends every lock with deadline <= now_ms as a release would (AVAILABLE,
 * count kept, or DEADLETTER at delivery_max). *expired_out counts them;
 * *next_deadline_ms_out is no later than the earliest lock still held
 * (INT64_MAX: none), i.e. when to call again.
 * Returns 0 or the registry's failure. share_reg_expire does every part
 * (parts with no lock due are skipped in O(1)). */
MUST_USE int share_part_expire(struct share_part *sp, int64_t now_ms, uint32_t *expired_out,
                               int64_t *next_deadline_ms_out);
MUST_USE int share_reg_expire(struct share_reg *r, int64_t now_ms, uint32_t *expired_out,
                              int64_t *next_deadline_ms_out);

/* Ends every lock member holds as a release would (a member that left or
 * whose session timed out). share_reg_member_leave does it on every part
 * of group. *released_out counts the records. Returns 0 or the registry's
 * failure. */
MUST_USE int share_part_release_member(struct share_part *sp, uint64_t member,
                                       uint32_t *released_out);
MUST_USE int share_reg_member_leave(struct share_reg *r, const char *group, size_t group_len,
                                    uint64_t member, uint32_t *released_out);

/* DEADLETTER records not yet taken (or whose copy failed). */
uint32_t share_part_dead_pending(const struct share_part *sp);

/* Copies up to cap DEADLETTER records not yet taken, lowest offset first,
 * into out and marks them taken. Returns 0 with *count_out, or the
 * registry's failure. */
MUST_USE int share_part_dead_take(struct share_part *sp, struct share_dead *out, uint32_t cap,
                                  uint32_t *count_out);

/* Confirms a taken record's dead-letter copy: copy_rc 0 makes it ARCHIVED
 * (finished; start may advance; dirty), copy_rc < 0 gives it back to be
 * taken again. Returns 0, -NG_ENOTFOUND (offset no longer in the window,
 * e.g. trimmed meanwhile, or the part was dropped: the last such call
 * frees it, so sp must not be used after), or the registry's failure.
 * Precondition: a record still in the window at offset is a taken
 * DEADLETTER one. */
MUST_USE int share_part_dead_done(struct share_part *sp, int64_t offset, int copy_rc);

/* The source partition's log now starts at log_start (retention): records
 * below it leave the window unfinished (their locks vanish, acks for them
 * get -NG_ENOT_ACQUIRED, a pending dead letter is dropped) and start (and
 * end, if below) move to log_start. No-op when log_start <= start. Marks
 * the part dirty when it moves. Returns 0 or the registry's failure. */
MUST_USE int share_part_trim(struct share_part *sp, int64_t log_start);

/* Accessors. */
int64_t share_part_start(const struct share_part *sp);
int64_t share_part_end(const struct share_part *sp);
uint32_t share_part_count(const struct share_part *sp, enum share_state state);

/* The state of offset. Returns 0, or -NG_EOFFSET_RANGE outside [start, end). */
MUST_USE int share_part_record(const struct share_part *sp, int64_t offset,
                               struct share_record_info *out);

/* Checks every invariant of the part (recounting its window), asserting.
 * O(inflight_max): for tests and debugging. */
void share_part_verify(const struct share_part *sp);

/* ---- durability ---- */

/* True when some change awaits share_reg_flush(). */
bool share_reg_dirty(const struct share_reg *r);

/* Encodes dirty parts, in the order they became dirty, as records of one
 * uncompressed batch built in buf[0..cap) (base offset 0; timestamps
 * now_ms), stopping when the next record does not fit; the parts encoded
 * are clean again. Call again while share_reg_dirty(). Precondition: cap >=
 * SHARE_FLUSH_BYTES_MIN(inflight_max) (so each call makes progress) and no
 * more than the state log's batch_bytes_max. Returns 0 with *bytes_out
 * (0: nothing was dirty), or the registry's failure. buf is the caller's;
 * the batch is ready for part_append(). */
MUST_USE int share_reg_flush(struct share_reg *r, int64_t now_ms, uint8_t *buf, size_t cap,
                             size_t *bytes_out);

/* Makes every part's next record a snapshot of its whole window, and marks
 * every part dirty. Once the flushes that follow have been appended, the
 * state log from the first of them onwards rebuilds the whole registry on
 * its own: the broker's compaction then deletes the segments before it
 * (broker/share_serve.c). */
void share_reg_checkpoint(struct share_reg *r);

/* Marks the registry failed with rc (< 0; the first failure stays): the
 * state log lost a write, so memory is ahead of it, or (in a cluster) this
 * broker no longer keeps the log. Logs nothing: the caller says why.
 * Every later call that could hand out, change or
 * flush state returns rc. */
void share_reg_fail(struct share_reg *r, int rc);

/* Applies one batch of the state log, as flushed. For a registry being
 * rebuilt: call on a fresh one, in log order, before any other use. Parts
 * are created as met (their creation is not marked dirty). Returns 0, the
 * batch's decoding errors (batch_reader_open/next; a compressed batch gets
 * -NG_EBADCODEC), -NG_EBADVERSION, -NG_ECORRUPT (a record that does not
 * describe a valid change, or start/end going back), -NG_ETOOBIG (a window
 * wider than inflight_max, i.e. inflight_max was lowered: raise it back to
 * replay; or more than parts_max parts), -NG_EBADNAME, -ENOMEM. On error
 * the registry is partly rebuilt and must not be served. */
MUST_USE int share_reg_replay_batch(struct share_reg *r, const uint8_t *batch, size_t len);

/* Rebuilds the registry from the whole state log, first offset to
 * part_offset_written() (a replicated log's past its high watermark too:
 * what a new leader will serve), reading it with part_read_to() into
 * buf[0..cap) (cap at least the log's largest batch, e.g. its
 * batch_bytes_max). Blocking; at start-up (or a cluster term's start),
 * from the log's owning thread, with no append in flight. Afterwards no record is ACQUIRED and
 * nothing is dirty. Returns 0, share_reg_replay_batch()'s errors,
 * part_read()'s (-NG_ECORRUPT, -NG_ETOOBIG, -errno), or -NG_EDISCONTINUITY
 * when batch offsets do not follow each other. */
MUST_USE int share_reg_replay(struct share_reg *r, struct part *log, uint8_t *buf, size_t cap);

#endif
