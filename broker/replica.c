/*
 * broker/replica.c — a partition's replication state (broker/replica.h):
 * roles from the cluster view, the leader's high watermark over the
 * in-sync set's durable offsets, and the acks=all appends waiting for it.
 */
#include "broker/replica.h"

#include <inttypes.h>

#include "base/log.h"
#include "broker/fetcher.h"
#include "broker/server.h"

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

static struct replica_peer *peer_find(struct replica *r, int32_t id)
{
    for (uint8_t i = 0; i < r->replica_count; i++) {
        if (r->peers[i].id == id) {
            return &r->peers[i];
        }
    }
    return NULL;
}

/* ---- waiting appends ---- */

static void wait_unlink(struct replica_wait *w)
{
    struct replica *r = w->owner;
    ASSERT(r != NULL);
    if (w->prev != NULL) {
        w->prev->next = w->next;
    } else {
        r->waits_head = w->next;
    }
    if (w->next != NULL) {
        w->next->prev = w->prev;
    } else {
        r->waits_tail = w->prev;
    }
    w->prev = w->next = NULL;
    w->owner = NULL;
}

/* Completes every waiting append with rc. */
static void waits_fail(struct replica *r, int rc)
{
    while (r->waits_head != NULL) {
        struct replica_wait *w = r->waits_head;
        wait_unlink(w);
        w->done(w, rc);
    }
}

void replica_wait_add(struct bpart *bp, struct replica_wait *w, int64_t end)
{
    struct replica *r = &bp->rep;
    ASSERT(r->role == REPLICA_LEADER && w->owner == NULL && w->done != NULL);
    w->end = end;
    if (end <= r->hw) {
        w->done(w, 0);
        return;
    }
    /* Kept in order of end: appends complete in order, so a new one goes
     * last; a retried duplicate may wait for an earlier offset. */
    struct replica_wait *after = r->waits_tail;
    while (after != NULL && after->end > end) {
        after = after->prev;
    }
    w->prev = after;
    w->next = after != NULL ? after->next : r->waits_head;
    w->owner = r;
    if (w->next != NULL) {
        w->next->prev = w;
    } else {
        r->waits_tail = w;
    }
    if (after != NULL) {
        after->next = w;
    } else {
        r->waits_head = w;
    }
}

void replica_wait_cancel(struct replica_wait *w)
{
    if (w->owner != NULL) {
        wait_unlink(w);
    }
}

/* ---- the high watermark ---- */

/* Moves the high watermark to hw when that is forward: readers see up to
 * it, and the appends it passed are answered. */
static void hw_advance(struct bpart *bp, int64_t hw)
{
    struct replica *r = &bp->rep;
    if (hw <= r->hw) {
        return;
    }
    r->hw = hw;
    part_set_commit_cap(&bp->log, hw);
    /* Passed by the high watermark of an ISR below min_insync_replicas:
     * committed, but not on as many replicas as acks=all promises (Kafka's
     * NOT_ENOUGH_REPLICAS_AFTER_APPEND). */
    int rc = r->isr_count < r->min_insync ? -NG_ENOT_ENOUGH_REPLICAS : 0;
    while (r->waits_head != NULL && r->waits_head->end <= r->hw) {
        struct replica_wait *w = r->waits_head;
        wait_unlink(w);
        w->done(w, rc);
    }
}

void replica_leader_update(struct bpart *bp)
{
    struct replica *r = &bp->rep;
    if (r->role != REPLICA_LEADER) {
        return;
    }
    int32_t self = bp->server->broker_id;
    /* The lowest durable offset over the ISR, the leader's own included. */
    int64_t hw = min64(part_offset_durable(&bp->log), part_offset_written(&bp->log));
    for (uint8_t i = 0; i < r->isr_count; i++) {
        if (r->isr[i] == self) {
            continue;
        }
        const struct replica_peer *p = peer_find(r, r->isr[i]);
        if (p == NULL || p->durable < 0) {
            return; /* a member not heard from yet holds it where it is */
        }
        hw = min64(hw, p->durable);
    }
    hw_advance(bp, hw);
}

void replica_follower_hw(struct bpart *bp, int64_t leader_hw)
{
    struct replica *r = &bp->rep;
    int64_t hw = min64(leader_hw, part_offset_written(&bp->log));
    if (r->role == REPLICA_FOLLOWER && hw > r->hw) {
        r->hw = hw;
        part_set_commit_cap(&bp->log, hw);
    }
}

void replica_follower_fetched(struct bpart *bp, int32_t replica_id, int64_t fetch_offset,
                              int64_t durable_offset, int64_t now_ms)
{
    struct replica *r = &bp->rep;
    struct replica_peer *p = peer_find(r, replica_id);
    ASSERT(r->role == REPLICA_LEADER && p != NULL);
    int64_t written = part_offset_written(&bp->log);
    /* What it holds beyond the leader's log is not the leader's (it will
     * truncate it): it counts only up to the leader's end. */
    p->durable = min64(min64(durable_offset, fetch_offset), written);
    if (fetch_offset >= written) {
        p->caught_up_ms = now_ms;
    }
    replica_leader_update(bp);
}

/* ---- checks for the request handlers ---- */

int replica_serving(const struct bpart *bp)
{
    enum replica_role role = bp->rep.role;
    return role == REPLICA_SINGLE || role == REPLICA_LEADER ? 0 : -NG_ENOT_LEADER;
}

int replica_check_acks_all(const struct bpart *bp)
{
    const struct replica *r = &bp->rep;
    if (r->role != REPLICA_LEADER) {
        return 0;
    }
    return r->isr_count < r->min_insync ? -NG_ENOT_ENOUGH_REPLICAS : 0;
}

bool replica_durable_appends(const struct bpart *bp) { return bp->rep.role != REPLICA_SINGLE; }

int replica_check_epoch(const struct bpart *bp, int32_t replica_id, int32_t leader_epoch)
{
    const struct replica *r = &bp->rep;
    if (r->role != REPLICA_LEADER) {
        return -NG_ENOT_LEADER;
    }
    if (leader_epoch < r->leader_epoch) {
        return -NG_EFENCED_LEADER_EPOCH;
    }
    if (leader_epoch > r->leader_epoch) {
        return -NG_EUNKNOWN_LEADER_EPOCH;
    }
    if (replica_id >= 0 && (replica_id == bp->server->broker_id ||
                            peer_find((struct replica *)r, replica_id) == NULL)) {
        return -NG_EBADARG;
    }
    return 0;
}

int replica_check_reader_epoch(const struct bpart *bp, int32_t leader_epoch)
{
    int rc = replica_serving(bp);
    if (rc != 0 || leader_epoch < 0) {
        return rc;
    }
    int32_t current = bp->rep.role == REPLICA_SINGLE ? 0 : bp->rep.leader_epoch;
    if (leader_epoch < current) {
        return -NG_EFENCED_LEADER_EPOCH;
    }
    return leader_epoch > current ? -NG_EUNKNOWN_LEADER_EPOCH : 0;
}

/* ---- applying a view ---- */

/* The topic's min_insync_replicas, else the broker's, capped at the
 * replication factor. */
static int32_t min_insync_of(const struct server *s, const struct cluster_topic *ct,
                             uint8_t replica_count)
{
    int32_t m = ct != NULL && ct->cfg.min_insync_replicas > 0 ? ct->cfg.min_insync_replicas
                                                              : s->cfg.min_insync_replicas;
    return m < replica_count ? m : replica_count;
}

/* Leadership of bp ends: its waiting appends and parked readers answer. */
static void leadership_end(struct bpart *bp)
{
    waits_fail(&bp->rep, -NG_ENOT_LEADER);
    park_abandon(&bp->waiters);
}

/* Copies the view's replicas and ISR; the peers' progress is kept for the
 * replicas that stay when reset is false. */
static void copy_members(struct replica *r, const struct cluster_partition *cp, bool reset,
                         int64_t now_ms)
{
    struct replica_peer old[CLUSTER_REPLICAS_MAX];
    uint8_t old_count = r->replica_count;
    memcpy(old, r->peers, sizeof(old));
    r->replica_count = cp->replica_count;
    for (uint8_t i = 0; i < cp->replica_count; i++) {
        r->peers[i] =
            (struct replica_peer){.id = cp->replicas[i], .durable = -1, .caught_up_ms = now_ms};
        for (uint8_t j = 0; j < old_count && !reset; j++) {
            if (old[j].id == cp->replicas[i]) {
                r->peers[i] = old[j];
            }
        }
    }
    r->isr_count = cp->isr_count;
    memcpy(r->isr, cp->isr, cp->isr_count * sizeof(r->isr[0]));
}

void replica_init(struct bpart *bp, bool clustered)
{
    struct replica *r = &bp->rep;
    *r = (struct replica){.role = REPLICA_SINGLE};
    if (clustered) {
        r->role = REPLICA_NONE;
        r->leader = CLUSTER_LEADER_NONE;
        r->leader_epoch = -1;
        r->hw = part_offset_earliest(&bp->log);
        part_set_commit_cap(&bp->log, r->hw);
    }
}

/* A leader fenced, or registered again since it was elected, leads
 * nothing until the controller elects it anew. */
static enum replica_role role_of(const struct cluster_view *v, const struct cluster_partition *cp,
                                 int32_t self, bool fenced)
{
    if (cp == NULL || !cluster_partition_has_replica(cp, self)) {
        return REPLICA_NONE;
    }
    if (cp->leader == self) {
        return fenced || !cluster_partition_leader_holds(v, cp) ? REPLICA_NONE : REPLICA_LEADER;
    }
    return REPLICA_FOLLOWER;
}

void replica_apply(struct server *s, struct bpart *bp, const struct cluster_topic *ct,
                   const struct cluster_partition *cp, int32_t self, bool fenced)
{
    struct replica *r = &bp->rep;
    ASSERT(s->view != NULL); /* the view being applied */
    enum replica_role role = role_of(s->view, cp, self, fenced);
    enum replica_role was = r->role;
    int64_t now_ms = (int64_t)loop_now_ms(&s->loop);
    ASSERT(was != REPLICA_SINGLE); /* replica_init(): a clustered broker's start as NONE */
    bool new_epoch = cp != NULL && (cp->leader_epoch != r->leader_epoch || cp->leader != r->leader);
    bp->counters.leader_changes += new_epoch;
    if (was == REPLICA_LEADER && (role != REPLICA_LEADER || new_epoch)) {
        leadership_end(bp);
    }
    if (r->fetcher != NULL && (role != REPLICA_FOLLOWER || new_epoch)) {
        fetcher_detach(bp);
    }
    if (role != REPLICA_LEADER && was != role) {
        park_abandon(&bp->waiters); /* consumers are told to go to the leader */
    }
    r->role = role;
    r->isr_changing = false; /* a new view: decide again from it */
    if (cp == NULL) {
        r->leader = CLUSTER_LEADER_NONE;
        return;
    }
    r->leader = cp->leader;
    r->leader_epoch = cp->leader_epoch;
    r->mod_revision = cp->mod_revision;
    copy_members(r, cp, new_epoch || was != role, now_ms);
    r->min_insync = min_insync_of(s, ct, cp->replica_count);
    if (role == REPLICA_LEADER) {
        if (new_epoch || was != role) {
            part_set_leader_epoch(&bp->log, cp->leader_epoch);
            log_info("topic %s partition %d: leader at epoch %d", bp->topic->name, bp->index,
                     cp->leader_epoch);
        }
        replica_leader_update(bp);
    } else if (role == REPLICA_FOLLOWER && r->fetcher == NULL && cp->leader >= 0) {
        r->need_truncate = true;
        fetcher_attach(s, bp, cp->leader);
    }
}

void replica_fini(struct bpart *bp)
{
    waits_fail(&bp->rep, -NG_ECLOSED);
    if (bp->rep.fetcher != NULL) {
        fetcher_detach(bp);
    }
}

/* ---- the in-sync set ---- */

void replica_check_isr(struct server *s, struct bpart *bp, int64_t now_ms, int64_t lag_ms)
{
    struct replica *r = &bp->rep;
    if (r->role != REPLICA_LEADER || r->isr_changing || s->alter_isr == NULL) {
        return;
    }
    ASSERT(s->view != NULL); /* a leader in a cluster has a view */
    int32_t isr[CLUSTER_REPLICAS_MAX];
    uint8_t n = 0;
    bool changed = false;
    for (uint8_t i = 0; i < r->replica_count; i++) {
        const struct replica_peer *p = &r->peers[i];
        bool member = false;
        for (uint8_t j = 0; j < r->isr_count; j++) {
            member |= r->isr[j] == p->id;
        }
        /* Catching up is seen when a fetch arrives, and a caught-up
         * follower's fetch waits at the leader up to FETCHER_WAIT_MS
         * before its next one can come: that long is not lag. */
        bool recent = now_ms - p->caught_up_ms <= lag_ms + FETCHER_WAIT_MS;
        /* A follower whose registration the view no longer holds (its
         * lease ran out: killed, paused or cut off from etcd) leaves at
         * once rather than after lag_ms, and joins only once registered
         * again (KIP-841): acks=all waits for a lease, not for the lag. */
        bool live = cluster_view_broker(s->view, p->id) != NULL;
        bool keep = p->id == s->broker_id || (recent && live);
        /* A follower joins once it has lately caught up with the leader's
         * end and durably holds everything the high watermark covers. */
        bool join = recent && live && p->durable >= 0 && p->durable >= r->hw;
        bool in = member ? keep : join;
        changed |= in != member;
        if (in) {
            isr[n++] = p->id;
        }
    }
    if (!changed) {
        return;
    }
    r->isr_changing = true;
    int rc = s->alter_isr(s, bp, isr, n);
    if (rc != 0) {
        r->isr_changing = false;
        log_warn("topic %s partition %d: ISR change: %s", bp->topic->name, bp->index, err_str(rc));
    }
}
