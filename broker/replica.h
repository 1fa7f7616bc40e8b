/*
 * broker/replica.h — a partition's replication state on this broker
 * (docs/cluster.md, section 4): its role, leader epoch and in-sync set as
 * the newest cluster view says, and on the leader each follower's durable
 * offset, the high watermark, and the acks=all appends waiting for it.
 *
 * Invariants:
 * - On a single broker (no cluster view) every partition is
 *   REPLICA_SINGLE: nothing here changes what it does.
 * - Only a REPLICA_LEADER takes produce and serves consumers; the others
 *   answer NG_ENOT_LEADER. A fenced view (the broker's registration not
 *   known to hold) leads nothing.
 * - The high watermark only grows while one leader epoch lasts: it is the
 *   lowest durable offset over the in-sync set (the leader's own
 *   included), never above what the leader has written, and is what
 *   readers see (part_set_commit_cap()). The in-sync set it is computed
 *   over is the view's, or one etcd has accepted since.
 * - Waiting acks=all appends are kept in offset order (appends complete
 *   in order) and each is completed exactly once: when the high watermark
 *   passes its end (0, or NG_ENOT_ENOUGH_REPLICAS when the ISR has shrunk
 *   below min_insync meanwhile), when leadership ends (NG_ENOT_LEADER), or
 *   when its request gives up (replica_wait_cancel()).
 * Threads: the worker's that owns the partition, like struct bpart.
 */
#ifndef NAGARE_BROKER_REPLICA_H
#define NAGARE_BROKER_REPLICA_H

#include <stdbool.h>
#include <stdint.h>

#include "base/assert.h"
#include "cluster/state.h"

struct bpart;
struct server;
struct fetcher;

/* What this broker is for a partition. Zero is a single broker's. */
enum replica_role {
    REPLICA_SINGLE = 0, /* no cluster: leader of everything, as always */
    REPLICA_LEADER,     /* leads it at rep.leader_epoch */
    REPLICA_FOLLOWER,   /* a replica, not the leader (rep.leader may be -1) */
    REPLICA_NONE,       /* not a replica, or fenced: serves nothing */
};

/* The leader's view of one replica (itself included). */
struct replica_peer {
    int32_t id;
    int64_t durable;      /* durable offset it last reported; -1: none yet */
    int64_t caught_up_ms; /* loop clock: it last asked from the leader's end */
};

/* An acks=all append waiting for the high watermark. Owned by the
 * producer's request; linked while waiting. */
struct replica;
struct replica_wait {
    struct replica_wait *prev;
    struct replica_wait *next;
    struct replica *owner; /* the list it is on; NULL when not waiting */
    int64_t end;           /* one past the batch's last offset */
    void (*done)(struct replica_wait *w, int rc);
};

struct replica {
    enum replica_role role;
    int32_t leader; /* broker id, or CLUSTER_LEADER_NONE */
    int32_t leader_epoch;
    int32_t min_insync;   /* acks=all needs this many in the ISR */
    int64_t mod_revision; /* the partition key's, for the ISR's CAS */
    uint8_t replica_count;
    struct replica_peer peers[CLUSTER_REPLICAS_MAX]; /* in replica order */
    uint8_t isr_count;
    int32_t isr[CLUSTER_REPLICAS_MAX];
    bool isr_changing; /* an ISR change is with etcd */
    int64_t hw;        /* the high watermark (leader); the leader's (follower) */
    struct replica_wait *waits_head;
    struct replica_wait *waits_tail;
    /* follower */
    struct fetcher *fetcher; /* the fetcher of rep.leader, or NULL */
    bool need_truncate;      /* ask OffsetForLeaderEpoch before fetching */
    bool need_verify;        /* then compare its last batch with the leader's */
};

/* Producer ids in a cluster: each broker hands out its own (InitProducerId),
 * and a producer's batches may reach any broker that leads later, so an
 * id carries its broker's id in its low bits and the broker's own count
 * above them: no two brokers ever give the same id. */
#define REPLICA_PRODUCER_ID_BROKER_BITS 20
static_assert(CLUSTER_BROKER_ID_MAX < (1 << REPLICA_PRODUCER_ID_BROKER_BITS),
              "every broker id fits a producer id's low bits");

static inline int64_t replica_producer_id(int64_t local, int32_t broker_id)
{
    ASSERT(local >= 0 && local < (INT64_C(1) << (63 - REPLICA_PRODUCER_ID_BROKER_BITS)));
    return local << REPLICA_PRODUCER_ID_BROKER_BITS | broker_id;
}

/* The state of a partition just opened: a single broker's leads it
 * (REPLICA_SINGLE); a clustered broker's serves nothing until a view says
 * what it is (REPLICA_NONE), and its high watermark is unknown: readers see
 * nothing until a leader's says more. A restarted broker must not take
 * produce as a leader of its past life's before etcd says it leads. */
void replica_init(struct bpart *bp, bool clustered);

/* Applies the view's state of bp's partition (cp NULL: the topic or
 * partition is not in the view) for broker `self`: role, epoch, replicas,
 * ISR; a leadership that ends answers the waiting appends NG_ENOT_LEADER
 * and the parked fetches; a new follower is handed to its leader's
 * fetcher. fenced: the view says this broker may lead nothing; nor does
 * a leadership granted before this broker's registration in the view
 * (cluster_partition_leader_holds(): a restart within the lease, or a
 * lease lost and made again) until the controller elects anew.
 * Precondition: a clustered broker's partition (not REPLICA_SINGLE), and
 * s->view the view applied. */
void replica_apply(struct server *s, struct bpart *bp, const struct cluster_topic *ct,
                   const struct cluster_partition *cp, int32_t self, bool fenced);

/* Leaves the cluster state: waiting appends answered NG_ECLOSED, detached
 * from its fetcher. Before the partition closes. */
void replica_fini(struct bpart *bp);

/* 0 when bp may take produce and serve consumers now; else
 * -NG_ENOT_LEADER. */
int replica_serving(const struct bpart *bp);

/* For an acks=all produce on a leader: 0, or -NG_ENOT_ENOUGH_REPLICAS
 * when the ISR is below min_insync (nothing may be appended then). */
int replica_check_acks_all(const struct bpart *bp);

/* True when appends to bp must be durable whatever the acks (a cluster:
 * the high watermark follows durable offsets). */
bool replica_durable_appends(const struct bpart *bp);

/* Completes w at once (done(w, 0)) when the high watermark is at or past
 * end, else links it to wait (in order of end: a retried duplicate may wait
 * for a batch before the newest). bp must lead. */
void replica_wait_add(struct bpart *bp, struct replica_wait *w, int64_t end);
/* Unlinks a waiting w without completing it; harmless when not linked. */
void replica_wait_cancel(struct replica_wait *w);

/* The leader's checks of a follower's request on bp at leader_epoch:
 * 0, -NG_ENOT_LEADER, -NG_EFENCED_LEADER_EPOCH (older than the broker's),
 * -NG_EUNKNOWN_LEADER_EPOCH (newer), -NG_EBADARG (replica_id is not a
 * replica; -1: any asker). */
int replica_check_epoch(const struct bpart *bp, int32_t replica_id, int32_t leader_epoch);

/* A reader's check of bp (a Kafka client's current leader epoch, KIP-320):
 * 0 when this broker serves bp (replica_serving()) and leader_epoch is
 * -1 (not checked) or bp's; else -NG_ENOT_LEADER, -NG_EFENCED_LEADER_EPOCH
 * (older) or -NG_EUNKNOWN_LEADER_EPOCH (newer). A single broker is at
 * epoch 0. */
int replica_check_reader_epoch(const struct bpart *bp, int32_t leader_epoch);

/* The leader heard from follower replica_id: it is at fetch_offset with
 * everything below durable_offset synced. Moves the high watermark
 * (answering waiting appends and waking readers) and notes when the
 * follower caught up. Precondition: replica_check_epoch() gave 0. */
void replica_follower_fetched(struct bpart *bp, int32_t replica_id, int64_t fetch_offset,
                              int64_t durable_offset, int64_t now_ms);

/* The leader's own durable offset or ISR moved: recomputes the high
 * watermark. */
void replica_leader_update(struct bpart *bp);

/* A follower adopts the leader's high watermark, capped at its own end. */
void replica_follower_hw(struct bpart *bp, int64_t leader_hw);

/* The leader's periodic check (from housekeeping): followers that have not
 * caught up for lag_ms (past the long poll of their fetches,
 * FETCHER_WAIT_MS), or whose registration s->view does not hold, leave the
 * ISR; caught-up registered ones join it; through the cluster session's
 * compare-and-swap. No-op without a session. */
void replica_check_isr(struct server *s, struct bpart *bp, int64_t now_ms, int64_t lag_ms);

#endif
