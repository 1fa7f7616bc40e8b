/* cluster/controller.c — the controller's decisions over a view, and its
 * one fenced transaction. */
#include "cluster/controller.h"

#include <string.h>

#include "base/err.h"

static bool ids_has(const int32_t *ids, uint8_t count, int32_t id)
{
    for (uint8_t i = 0; i < count; i++) {
        if (ids[i] == id) {
            return true;
        }
    }
    return false;
}

static bool live(const struct cluster_view *v, int32_t id)
{
    return id != CLUSTER_LEADER_NONE && cluster_view_broker(v, id) != NULL;
}

int controller_place(const struct cluster_view *v, int32_t index, int16_t replication_factor,
                     int32_t replicas[CLUSTER_REPLICAS_MAX])
{
    ASSERT(replication_factor >= 1 && replication_factor <= CLUSTER_REPLICAS_MAX);
    ASSERT(index >= 0);
    if (v->broker_count < (uint32_t)replication_factor) {
        return -NG_ENOT_ENOUGH_REPLICAS;
    }
    uint32_t start = (uint32_t)index % v->broker_count;
    for (int16_t j = 0; j < replication_factor; j++) {
        replicas[j] = v->brokers[(start + (uint32_t)j) % v->broker_count].id;
    }
    return 0;
}

void controller_new_partition(int32_t index, const int32_t *replicas, uint8_t count,
                              int64_t controller_epoch, struct cluster_partition *out)
{
    ASSERT(count >= 1 && count <= CLUSTER_REPLICAS_MAX);
    *out = (struct cluster_partition){
        .index = index,
        .leader = replicas[0],
        .leader_epoch = 0,
        .replica_count = count,
        .isr_count = count,
        .controller_epoch = controller_epoch,
    };
    memcpy(out->replicas, replicas, count * sizeof(*replicas));
    memcpy(out->isr, replicas, count * sizeof(*replicas));
}

/* The first replica, in replica order, that is live and (if in_isr) in p's
 * ISR; CLUSTER_LEADER_NONE when there is none. */
static int32_t first_live(const struct cluster_view *v, const struct cluster_partition *p,
                          bool in_isr)
{
    for (uint8_t i = 0; i < p->replica_count; i++) {
        int32_t id = p->replicas[i];
        if (live(v, id) && (!in_isr || cluster_partition_in_isr(p, id))) {
            return id;
        }
    }
    return CLUSTER_LEADER_NONE;
}

/* out's ISR without the brokers v does not hold live. */
static void isr_keep_live(const struct cluster_view *v, struct cluster_partition *out)
{
    uint8_t n = 0;
    for (uint8_t i = 0; i < out->isr_count; i++) {
        if (live(v, out->isr[i])) {
            out->isr[n++] = out->isr[i];
        }
    }
    out->isr_count = n;
}

bool controller_elect(const struct cluster_view *v, const struct cluster_topic *t,
                      const struct cluster_partition *p, struct cluster_partition *out,
                      bool *unclean)
{
    *unclean = false;
    if (cluster_partition_leader_holds(v, p)) {
        return false;
    }
    int32_t next = first_live(v, p, true);
    *out = *p;
    out->leader_epoch = p->leader_epoch + 1;
    if (next != CLUSTER_LEADER_NONE) {
        out->leader = next;
        isr_keep_live(v, out);
        return true;
    }
    int32_t any = t->cfg.unclean_leader_election ? first_live(v, p, false) : CLUSTER_LEADER_NONE;
    if (any != CLUSTER_LEADER_NONE) {
        out->leader = any;
        out->isr[0] = any;
        out->isr_count = 1;
        *unclean = true;
        return true;
    }
    if (p->leader == CLUSTER_LEADER_NONE) {
        return false; /* leaderless, and stays so */
    }
    out->leader = CLUSTER_LEADER_NONE; /* the ISR is kept: its members are the ones to wait for */
    return true;
}

bool controller_prefer(const struct cluster_view *v, const struct cluster_partition *p,
                       struct cluster_partition *out)
{
    int32_t first = p->replicas[0];
    if (first == p->leader || !live(v, first) || !cluster_partition_in_isr(p, first)) {
        return false;
    }
    *out = *p;
    out->leader = first;
    out->leader_epoch = p->leader_epoch + 1;
    return true;
}

static bool same_set(const int32_t *a, uint8_t an, const int32_t *b, uint8_t bn)
{
    if (an != bn) {
        return false;
    }
    for (uint8_t i = 0; i < an; i++) {
        if (!ids_has(b, bn, a[i])) {
            return false;
        }
    }
    return true;
}

/* The last step: replicas = target, the ISR within it, a leader in it. */
static void reassign_finish(const struct cluster_view *v, const struct cluster_partition *p,
                            const int32_t *target, uint8_t count, struct cluster_partition *out)
{
    *out = *p;
    memcpy(out->replicas, target, count * sizeof(*target));
    out->replica_count = count;
    uint8_t n = 0;
    for (uint8_t i = 0; i < p->isr_count; i++) {
        if (ids_has(target, count, p->isr[i])) {
            out->isr[n++] = p->isr[i];
        }
    }
    out->isr_count = n;
    if (!ids_has(target, count, p->leader)) {
        out->leader = first_live(v, out, true);
    }
    out->leader_epoch = p->leader_epoch + 1;
}

enum controller_reassign_step controller_reassign(const struct cluster_view *v,
                                                  const struct cluster_partition *p,
                                                  const int32_t *target, uint8_t count,
                                                  struct cluster_partition *out)
{
    ASSERT(count >= 1 && count <= CLUSTER_REPLICAS_MAX);
    if (count == p->replica_count && memcmp(target, p->replicas, count * sizeof(*target)) == 0) {
        return CONTROLLER_REASSIGN_DONE;
    }
    uint8_t missing = 0;
    for (uint8_t i = 0; i < count; i++) {
        missing += !cluster_partition_has_replica(p, target[i]);
    }
    if (missing > 0) {
        if (p->replica_count + missing > CLUSTER_REPLICAS_MAX) {
            return CONTROLLER_REASSIGN_INVALID;
        }
        *out = *p;
        memcpy(out->replicas, target, count * sizeof(*target));
        uint8_t n = count;
        for (uint8_t i = 0; i < p->replica_count; i++) {
            if (!ids_has(target, count, p->replicas[i])) {
                out->replicas[n++] = p->replicas[i];
            }
        }
        out->replica_count = n;
        return CONTROLLER_REASSIGN_EXPAND;
    }
    for (uint8_t i = 0; i < count; i++) {
        if (!cluster_partition_in_isr(p, target[i])) {
            return CONTROLLER_REASSIGN_WAIT;
        }
    }
    if (same_set(target, count, p->replicas, p->replica_count) &&
        ids_has(target, count, p->leader)) {
        /* Only the order differs: the preferred leader changes, nothing
         * else; no fencing needed, the preferred-leader check moves it. */
        *out = *p;
        memcpy(out->replicas, target, count * sizeof(*target));
        return CONTROLLER_REASSIGN_FINISH;
    }
    reassign_finish(v, p, target, count, out);
    return CONTROLLER_REASSIGN_FINISH;
}

int controller_isr_check(const struct cluster_partition *p, int32_t leader, const int32_t *isr,
                         uint8_t count)
{
    if (count < 1 || count > p->replica_count || !ids_has(isr, count, leader)) {
        return -NG_EBADARG;
    }
    for (uint8_t i = 0; i < count; i++) {
        if (ids_has(isr, i, isr[i]) || !cluster_partition_has_replica(p, isr[i])) {
            return -NG_EBADARG;
        }
    }
    return 0;
}

int controller_commit(struct etcd *e, const struct controller_ident *me, const char *key,
                      const struct cluster_partition *next, const struct etcd_op *extra,
                      size_t extra_count, int64_t *revision_out)
{
    ASSERT(extra_count + 1 <= ETCD_TXN_OPS_MAX);
    char value[512];
    int len = cluster_partition_encode(next, value, sizeof(value));
    ASSERT(len > 0); /* a partition's record is far below 512 bytes */
    const struct etcd_cmp cmps[] = {
        {.key = me->key,
         .target = ETCD_CMP_VALUE,
         .result = ETCD_CMP_EQUAL,
         .value = me->value,
         .value_len = me->value_len},
        {.key = me->key,
         .target = ETCD_CMP_MOD_REVISION,
         .result = ETCD_CMP_EQUAL,
         .number = me->mod_revision},
        {.key = key,
         .target = ETCD_CMP_MOD_REVISION,
         .result = ETCD_CMP_EQUAL,
         .number = next->mod_revision},
    };
    struct etcd_op ops[ETCD_TXN_OPS_MAX];
    ops[0] =
        (struct etcd_op){.kind = ETCD_OP_PUT, .key = key, .value = value, .value_len = (size_t)len};
    for (size_t i = 0; i < extra_count; i++) {
        ops[1 + i] = extra[i];
    }
    /* On failure, read the controller key back to say which compare lost. */
    const struct etcd_op get = {.kind = ETCD_OP_GET, .key = me->key};
    const struct etcd_txn txn = {.cmps = cmps,
                                 .cmp_count = ARRAY_LEN(cmps),
                                 .success = ops,
                                 .success_count = 1 + extra_count,
                                 .failure = &get,
                                 .failure_count = 1};
    bool ok = false;
    struct etcd_kvs got = {0};
    int rc = etcd_txn(e, &txn, &ok, revision_out, &got);
    if (rc != 0) {
        return rc;
    }
    if (ok) {
        etcd_kvs_free(&got);
        return 0;
    }
    bool still = got.count == 1 && got.kvs[0].mod_revision == me->mod_revision &&
                 got.kvs[0].value_len == me->value_len &&
                 memcmp(got.kvs[0].value, me->value, me->value_len) == 0;
    etcd_kvs_free(&got);
    return still ? -NG_ECONFLICT : -NG_ENOT_CONTROLLER;
}
