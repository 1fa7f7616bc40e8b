/*
 * cluster/controller.h — the controller's decisions (docs/cluster.md,
 * section 3) as pure functions of a cluster view, and the one transaction
 * that carries any of them out.
 *
 * Contract:
 * - The decision functions read a view (cluster/state.h) and write the next
 *   state of one partition into *out; they touch nothing else, keep no
 *   state and call no etcd, so they are tested without one. Each returns
 *   whether the partition must change. Any thread.
 * - A next state always keeps the view's invariants (cluster_view_check()):
 *   replicas distinct, ISR a subset of them, the leader -1 or in the ISR.
 *   Every change of leader bumps leader_epoch by one, so requests of the
 *   deposed leader are fenced (NG_EFENCED_LEADER_EPOCH).
 * - controller_commit() is the only way the controller writes a partition:
 *   one etcd transaction comparing the controller key (value and
 *   mod_revision: a controller whose lease ended, or which was replaced,
 *   changes nothing) and the partition key's mod_revision. Cluster thread.
 */
#ifndef NAGARE_CLUSTER_CONTROLLER_H
#define NAGARE_CLUSTER_CONTROLLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/assert.h"
#include "cluster/etcd.h"
#include "cluster/state.h"

/* Replicas for partition `index` of a new topic: replication_factor live
 * brokers, round-robin over the view's brokers (by id) starting at
 * index % broker_count (Kafka's assignment without racks), so leaders
 * spread too. Returns 0 with replicas[0..replication_factor) filled, or
 * -NG_ENOT_ENOUGH_REPLICAS when fewer brokers live than that.
 * Precondition: 1 <= replication_factor <= CLUSTER_REPLICAS_MAX. */
MUST_USE int controller_place(const struct cluster_view *v, int32_t index,
                              int16_t replication_factor, int32_t replicas[CLUSTER_REPLICAS_MAX]);

/* The state of a new partition: placed replicas, the first leading at
 * epoch 0, all in sync, written by controller_epoch. */
void controller_new_partition(int32_t index, const int32_t *replicas, uint8_t count,
                              int64_t controller_epoch, struct cluster_partition *out);

/* Leader election when p's leader is not a live broker of v (or p has
 * none), or registered again since p last changed
 * (cluster_partition_leader_holds()): the first live replica in replica
 * order that is in the ISR leads (the re-registered leader too: at the new
 * epoch its followers truncate to what it has),
 * and the ISR loses its members that are not live. With no live in-sync
 * replica: if the topic allows unclean election, the first live replica
 * leads with an ISR of itself alone (*unclean set: records may be lost,
 * the caller logs it at WARN); else the partition is leaderless (leader
 * -1), its ISR kept as it was, so that the in-sync replica that returns
 * first leads. false when p's leader holds, or p is leaderless and stays
 * so. */
bool controller_elect(const struct cluster_view *v, const struct cluster_topic *t,
                      const struct cluster_partition *p, struct cluster_partition *out,
                      bool *unclean);

/* Preferred leader: true when p's first replica is live, in the ISR and
 * not the leader; *out then has it as leader. */
bool controller_prefer(const struct cluster_view *v, const struct cluster_partition *p,
                       struct cluster_partition *out);

/* A reassignment of p onto target[count) (reassign/<topic>/<i>). */
enum controller_reassign_step {
    CONTROLLER_REASSIGN_EXPAND,  /* *out: replicas = target, then the old ones not in it */
    CONTROLLER_REASSIGN_WAIT,    /* a target replica is not in the ISR yet */
    CONTROLLER_REASSIGN_FINISH,  /* *out: replicas = target, ISR within it, leader in it */
    CONTROLLER_REASSIGN_DONE,    /* replicas are target: drop the request */
    CONTROLLER_REASSIGN_INVALID, /* target and replicas together exceed CLUSTER_REPLICAS_MAX */
};
/* FINISH keeps the leader if target holds it, else gives leadership to the
 * first target replica that is live and in the ISR (-1 when none is), and
 * bumps leader_epoch either way, fencing the replicas that leave.
 * Precondition: target distinct, 1..CLUSTER_REPLICAS_MAX. */
enum controller_reassign_step controller_reassign(const struct cluster_view *v,
                                                  const struct cluster_partition *p,
                                                  const int32_t *target, uint8_t count,
                                                  struct cluster_partition *out);

/* Whether isr[count) may be p's ISR with leader as its leader: 1 or more
 * distinct replicas of p, the leader among them. 0 or -NG_EBADARG. */
MUST_USE int controller_isr_check(const struct cluster_partition *p, int32_t leader,
                                  const int32_t *isr, uint8_t count);

/* Who the controller is, as its transactions compare it. */
struct controller_ident {
    const char *key;   /* "/<cluster>/controller" */
    const char *value; /* its record, as written */
    size_t value_len;
    int64_t mod_revision; /* of that write */
};

/* Writes `next` (with its controller_epoch set by the caller) to the
 * partition key `key` if the controller is still `me` and the key is still
 * at next->mod_revision. extra[extra_count) are more ops of the same
 * transaction (deleting a finished reassignment). Returns 0 (*revision_out
 * gets the store's revision after it), -NG_ENOT_CONTROLLER when the
 * controller key changed, -NG_ECONFLICT when the partition key did, or the
 * etcd call's error. */
MUST_USE int controller_commit(struct etcd *e, const struct controller_ident *me, const char *key,
                               const struct cluster_partition *next, const struct etcd_op *extra,
                               size_t extra_count, int64_t *revision_out);

#endif
