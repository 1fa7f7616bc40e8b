/*
 * broker/share_serve.c — share groups served: ShareFetch and ShareAck over the
 * worker's share registry (broker/share_state.h), its durable state log, and
 * lock expiry. Dead letters and redrives are in broker/dlq.c; the
 * contract between the two is broker/share_serve.h.
 *
 * ShareFetch: expire locks, then for each partition open its share part
 * (starting at the log's first offset), acquire up to records_max, and
 * find the whole batches covering what was acquired by walking batch
 * headers; the answer is sized exactly and the batches are read from the
 * log straight into it. When nothing could be acquired the fetch parks
 * (like Fetch) on its partitions: new data (the log's watcher), a release,
 * an expired lock or a dead letter archived wakes it to try again, through
 * its own timer, so no attempt ever runs inside another one. Whatever the
 * attempt changed (a new part, expired locks) is made durable before the
 * answer goes.
 *
 * ShareAck: each range is applied with share_part_ack() (each succeeds or
 * fails whole; a partition's error is its first refused range's), then
 * the changes are appended durably and the answer goes from that append's
 * completion.
 *
 * Member ids are the broker's: decimal numbers from a sequence that starts
 * at the wall clock << 20 at each start, so an id handed out before a
 * restart is never handed out again (and holds nothing after it: locks are
 * not persisted). A share member has no session: records it holds come
 * back when their locks expire.
 *
 * In a cluster (docs/cluster.md, section 5) the leader of __share_state/0
 * serves share groups: share_serve_coordinate() attaches the registry to
 * that partition's log for one term per leadership (and starts member ids
 * at the clock again), its appends answer at the high watermark, and the
 * registry refuses everything (NG_ENOT_COORDINATOR) between terms.
 */
#include "broker/share_serve.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"

static_assert(PROTO_TOPIC_NAME_BYTES_MAX <= SHARE_NAME_BYTES_MAX &&
                  PROTO_GROUP_ID_BYTES_MAX <= SHARE_NAME_BYTES_MAX,
              "every topic name and group id names a share part");
static_assert(QUEUE_FLUSH_BYTES >= SHARE_FLUSH_BYTES_MIN(SHARE_INFLIGHT_LIMIT) &&
                  QUEUE_FLUSH_BYTES <= QUEUE_STATE_BATCH_MAX,
              "a flush buffer holds any part's record and fits a state-log batch");
static_assert(QUEUE_STATE_BATCH_MAX <= OFFSETS_BATCH_MAX,
              "the worker's scratch (sized for the offsets log) serves the state log");
static_assert(QUEUE_STATE_APPENDS_MAX <= PART_APPENDS_INFLIGHT_MAX, "a valid part config");

/* Bytes of an answer's fixed parts: frame header, error, member id. */
#define ANSWER_SLACK_BYTES 128

/* ---- small helpers ---- */

int64_t share_serve_now_ms(const struct server *s) { return (int64_t)loop_now_ms(&s->loop); }

bool share_serve_room(const struct queue *q, uint32_t batches)
{
    return q->served != NULL &&
           (uint64_t)batches + QUEUE_ROOM_SLACK <= part_appends_room(q->served);
}

struct bpart *share_serve_source(struct server *s, const struct share_part *sp)
{
    ASSERT(!s->loop.stopping);
    struct server_topic *st =
        server_topic_find(s, (struct proto_str){.ptr = sp->topic, .len = sp->topic_len});
    if (st == NULL || sp->partition >= st->cfg.partitions) {
        return NULL;
    }
    return &st->parts[sp->partition];
}

/* A group id from the wire: 1..249 bytes of printable ASCII, as consumer
 * groups (docs/protocol.md, "Group ids"). */
static int group_check(struct proto_str id)
{
    if (id.len <= 0 || id.len > PROTO_GROUP_ID_BYTES_MAX) {
        return -NG_EBADNAME;
    }
    for (int32_t i = 0; i < id.len; i++) {
        if (id.ptr[i] < 0x20 || id.ptr[i] > 0x7e) {
            return -NG_EBADNAME;
        }
    }
    return 0;
}

/* A member id from the wire: a decimal number this broker could have
 * handed out (1..member_seq, no leading zero). */
static int member_parse(const struct queue *q, struct proto_str id, uint64_t *out)
{
    if (id.len <= 0 || id.len > 20 || id.ptr[0] == '0') {
        return -NG_EUNKNOWN_MEMBER;
    }
    uint64_t v = 0;
    for (int32_t i = 0; i < id.len; i++) {
        unsigned d = (unsigned)(id.ptr[i] - '0');
        if (d > 9 || v > (UINT64_MAX - d) / 10) {
            return -NG_EUNKNOWN_MEMBER;
        }
        v = v * 10 + d;
    }
    if (v == SHARE_MEMBER_NONE || v > q->member_seq) {
        return -NG_EUNKNOWN_MEMBER;
    }
    *out = v;
    return 0;
}

/* 0 when the registry may change now, else why not: its failure, or, in
 * a cluster, __share_state/0 with fewer in-sync replicas than
 * min_insync_replicas (refused at once, as an acks=all produce is). */
static int serve_check(const struct queue *q)
{
    int rc = q->reg.failed;
    if (rc == 0 && q->attached != NULL) {
        rc = groups_leader_writable(q->attached);
        rc = rc == -NG_ENOT_LEADER ? -NG_ENOT_COORDINATOR : rc;
    }
    return rc;
}

/* ---- the state log ---- */

struct state_append {
    struct part_append a;     /* first: the done callback casts back */
    struct replica_wait wait; /* attached: for the high watermark */
    struct server *s;
    uint64_t term; /* the queue's when appended */
    share_serve_done_fn done;
    void *ctx;
    uint8_t batch[];
};
static_assert(offsetof(struct state_append, a) == 0, "state_append_done() casts back");

/* The append is in the log (rc 0; attached: below the high watermark), or
 * not. */
static void state_append_finish(struct state_append *sa, int rc)
{
    struct server *s = sa->s;
    struct queue *q = s->queue;
    ASSERT(q->state_appends > 0);
    q->state_appends--;
    if (sa->term == q->term && q->attached != NULL &&
        (rc == -NG_ENOT_LEADER || rc == -NG_ECLOSED)) {
        /* The leadership ended (or the partition closes): so does the
         * term, at the next share_serve_coordinate(); nothing more goes. */
        share_reg_fail(&q->reg, -NG_ENOT_COORDINATOR);
    }
    if (sa->term != q->term || rc == -NG_ENOT_LEADER || rc == -NG_ECLOSED) {
        rc = -NG_ENOT_COORDINATOR; /* the next coordinator's replay decides */
    } else if (rc != 0 && rc != -NG_ENOT_ENOUGH_REPLICAS && q->reg.failed == 0) {
        /* (Below the high watermark on fewer replicas than asked: in the
         * log all the same, and memory agrees with it.) */
        log_error("share state log: %s; share groups refuse everything until a restart "
                  "(in a cluster: until the next term)",
                  err_str(rc));
        share_reg_fail(&q->reg, rc);
    }
    share_serve_done_fn done = sa->done;
    void *ctx = sa->ctx;
    free(sa);
    if (done != NULL) {
        done(ctx, rc);
    }
    /* The decisions this append carried are written: copy dead letters. */
    dlq_drive(s);
}

static void state_append_replicated(struct replica_wait *w, int rc)
{
    state_append_finish(container_of(w, struct state_append, wait), rc);
}

static void state_append_done(struct part_append *a, int rc)
{
    struct state_append *sa = (struct state_append *)a;
    struct queue *q = sa->s->queue;
    bool waits = rc == 0 && sa->term == q->term && q->attached != NULL;
    if (waits && q->attached->rep.role == REPLICA_LEADER && !sa->s->loop.stopping) {
        sa->wait.done = state_append_replicated;
        replica_wait_add(q->attached, &sa->wait, batch_offset_last(&a->hdr) + 1);
        return;
    }
    /* No high watermark will come: the leadership ended, or the partition
     * closes. */
    state_append_finish(sa, waits ? -NG_ENOT_LEADER : rc);
}

/* Appends one flushed batch; on failure the registry is failed (the
 * flush cleaned parts whose changes are now nowhere but in memory). */
static int state_append(struct server *s, size_t bytes, bool durable, share_serve_done_fn done,
                        void *ctx)
{
    struct queue *q = s->queue;
    struct state_append *sa = malloc(sizeof(*sa) + bytes);
    int rc = sa == NULL ? -ENOMEM : 0;
    if (rc == 0) {
        *sa = (struct state_append){.s = s, .term = q->term, .done = done, .ctx = ctx};
        memcpy(sa->batch, q->flush_buf, bytes);
        /* Attached, the high watermark follows durable offsets: all are. */
        sa->a = (struct part_append){.batch = sa->batch,
                                     .bytes = bytes,
                                     .durable = durable || q->attached != NULL,
                                     .done = state_append_done};
        rc = part_append(q->served, &sa->a);
    }
    if (rc != 0) {
        free(sa);
        log_error("share state log: append: %s; share groups refuse everything until a restart "
                  "(in a cluster: until the next term)",
                  err_str(rc));
        share_reg_fail(&q->reg, rc);
        return rc;
    }
    q->state_appends++;
    return 0;
}

int share_serve_persist(struct server *s, bool durable, share_serve_done_fn done, void *ctx)
{
    struct queue *q = s->queue;
    if (q->reg.failed != 0) {
        return q->reg.failed;
    }
    if (!share_reg_dirty(&q->reg)) {
        return 1;
    }
    while (share_reg_dirty(&q->reg)) {
        size_t bytes = 0;
        int rc = share_reg_flush(&q->reg, s->env.now_ms(), q->flush_buf, QUEUE_FLUSH_BYTES, &bytes);
        if (rc != 0) {
            return rc;
        }
        ASSERT(bytes > 0); /* dirty, and the buffer holds any part's record */
        bool last = !share_reg_dirty(&q->reg);
        rc = state_append(s, bytes, durable, last ? done : NULL, last ? ctx : NULL);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* ---- compaction of the state log ----
 * Once the log holds two segments' bytes and twice the last checkpoint's,
 * every part's next record becomes a snapshot of its whole window
 * (share_reg_checkpoint), appended durably. From the checkpoint's first
 * batch on, the log rebuilds the registry alone (records before it only
 * describe older images of the same windows, or parts since dropped), so
 * once it is durable the segments wholly before it are deleted. */

static void checkpoint_done(void *ctx, int rc)
{
    struct server *s = ctx;
    struct queue *q = s->queue;
    /* A checkpoint of an ended term deletes nothing: the next term's
     * compaction starts afresh (share_serve_coordinate()). Attached, done
     * runs once the high watermark passed the checkpoint, so every replica
     * that may lead next has it before the segments before it go. */
    if (rc != -NG_ENOT_COORDINATOR) {
        /* committed on fewer replicas than asked: every one that may lead
         * (the in-sync set) has it all the same */
        compaction_end(&q->compaction, q->served, rc == -NG_ENOT_ENOUGH_REPLICAS ? 0 : rc);
    }
}

static void maybe_checkpoint(struct server *s)
{
    struct queue *q = s->queue;
    /* A flush holds at least one part's record: room for one per part. */
    if (q->reg.failed != 0 || !compaction_wanted(&q->compaction, q->served) ||
        !share_serve_room(q, share_reg_count(&q->reg))) {
        return;
    }
    compaction_begin(&q->compaction, q->served);
    share_reg_checkpoint(&q->reg);
    int rc = share_serve_persist(s, true, checkpoint_done, s);
    compaction_placed(&q->compaction, q->served);
    if (rc == 1) { /* no parts: nothing before this offset is needed */
        checkpoint_done(s, 0);
    } else if (rc != 0) { /* logged; the registry failed */
        checkpoint_done(s, rc);
    }
}

/* Ends locks whose deadline has passed, waking fetches parked on the
 * parts that got records back. */
static void expire_locks(struct server *s, int64_t now)
{
    struct queue *q = s->queue;
    for (uint32_t i = 0; i < share_reg_count(&q->reg); i++) {
        struct share_part *sp = share_reg_part(&q->reg, i);
        uint32_t expired = 0;
        int64_t next;
        if (share_part_expire(sp, now, &expired, &next) != 0) {
            return; /* the registry failed */
        }
        if (expired > 0) {
            struct bpart *bp = share_serve_source(s, sp);
            if (bp != NULL) {
                park_wake(&bp->waiters, PARK_FREED);
            }
        }
    }
}

/* ---- lifecycle ---- */

/* Makes an empty registry from the broker's config. */
static int reg_make(struct server *s, struct queue *q)
{
    ASSERT(!q->reg_ready);
    struct share_config cfg;
    share_config_default(&cfg);
    cfg.lock_ms = s->cfg.share_lock_ms;
    cfg.delivery_max = s->cfg.share_delivery_max;
    cfg.inflight_max = s->cfg.share_inflight_max;
    if (share_config_check(&cfg) != 0) {
        return -NG_EBADARG; /* config.c's bounds are share_state.h's: cannot happen */
    }
    q->lock_ms = cfg.lock_ms;
    int rc = share_reg_init(&q->reg, &cfg);
    q->reg_ready = rc == 0;
    return rc;
}

static int share_serve_alloc(struct server *s, struct queue *q)
{
    int rc = reg_make(s, q);
    if (rc != 0) {
        return rc;
    }
    q->flush_buf = malloc(QUEUE_FLUSH_BYTES);
    q->grants = malloc(PROTO_SHARE_FETCH_RECORDS_MAX * sizeof(*q->grants));
    q->acquired = malloc(PROTO_SHARE_FETCH_RECORDS_MAX * sizeof(*q->acquired));
    q->runs = malloc(PROTO_SHARE_FETCH_RECORDS_MAX * sizeof(*q->runs));
    if (q->flush_buf == NULL || q->grants == NULL || q->acquired == NULL || q->runs == NULL) {
        return -ENOMEM;
    }
    return 0;
}

static int reg_replay(struct queue *q, struct part *log);

/* Opens DATA_DIR/groups/share-state (groups_open() made the directory)
 * and replays it. */
static int share_serve_open_log(struct server *s, struct queue *q, const char *dir)
{
    struct part_config pc;
    part_config_default(&pc);
    pc.segment_bytes = (uint64_t)s->cfg.internal_segment_bytes;
    compaction_init(&q->compaction, "share state log", pc.segment_bytes);
    pc.retention_ms = -1; /* replay reads it from its first offset; compaction trims it */
    pc.retention_bytes = -1;
    pc.batch_bytes_max = QUEUE_STATE_BATCH_MAX;
    pc.appends_inflight_max = QUEUE_STATE_APPENDS_MAX;
    ASSERT(s->scratch_bytes >= PART_SCRATCH_BYTES(QUEUE_STATE_BATCH_MAX));
    int rc = part_open(&q->log, dir, &pc, &s->env);
    if (rc != 0) {
        return rc;
    }
    q->log_open = true;
    q->served = &q->log;
    return reg_replay(q, &q->log);
}

/* Rebuilds the (fresh) registry from the whole written log. Blocking. */
static int reg_replay(struct queue *q, struct part *log)
{
    uint8_t *buf = malloc(QUEUE_STATE_BATCH_MAX);
    if (buf == NULL) {
        return -ENOMEM;
    }
    int rc = share_reg_replay(&q->reg, log, buf, QUEUE_STATE_BATCH_MAX);
    free(buf);
    return rc;
}

void share_serve_topic_deleted(struct server *s, const char *name, size_t len)
{
    struct queue *q = s->queue;
    if (q == NULL || q->reg.failed != 0) {
        return;
    }
    uint32_t dropped;
    share_reg_drop_topic(&q->reg, name, len, &dropped);
    if (dropped == 0) {
        return;
    }
    log_info("share groups: forgot %" PRIu32 " partition(s) of deleted topic %.*s", dropped,
             (int)len, name);
    if (share_serve_room(q, dropped)) {
        int rc = share_serve_persist(s, true, NULL, NULL);
        (void)rc; /* a failure is logged and fails the registry */
    }             /* else the next tick's flush writes the tombstones */
}

/* Whether topic `name` exists: in a cluster, in the view (a coordinator
 * keeps the state of topics it holds no replica of); else here. */
static bool topic_exists(struct server *s, struct proto_str name)
{
    if (broker_config_clustered(&s->cfg)) {
        return s->view != NULL && cluster_view_topic(s->view, name.ptr, name.len) != NULL;
    }
    return server_topic_find(s, name) != NULL;
}

/* Forgets the replayed state of topics that no longer exist (deleted by an
 * older broker, before their tombstones were written, or in a cluster
 * while another broker coordinated). */
static void forget_missing_topics(struct server *s)
{
    struct queue *q = s->queue;
    for (uint32_t i = 0; i < share_reg_count(&q->reg);) {
        const struct share_part *sp = share_reg_part(&q->reg, i);
        struct proto_str name = {.ptr = sp->topic, .len = sp->topic_len};
        if (topic_exists(s, name)) {
            i++;
            continue;
        }
        char topic[SHARE_NAME_BYTES_MAX];
        size_t len = sp->topic_len;
        memcpy(topic, sp->topic, len);
        uint32_t before = share_reg_count(&q->reg);
        share_serve_topic_deleted(s, topic, len); /* parts[i] is now the next one */
        i += share_reg_count(&q->reg) == before;  /* not dropped (a failed registry) */
    }
}

int share_serve_open(struct server *s)
{
    struct queue *q = calloc(1, sizeof(*q));
    if (q == NULL) {
        return -ENOMEM;
    }
    s->queue = q;
    q->member_seq = (uint64_t)s->env.now_ms() << 20;
    char dir[sizeof(s->cfg.data_dir) + 32];
    snprintf(dir, sizeof(dir), "%s/groups/share-state", s->cfg.data_dir);
    int rc = share_serve_alloc(s, q);
    if (rc == 0 && broker_config_clustered(&s->cfg)) {
        /* The registry serves once this broker leads __share_state/0
         * (share_serve_coordinate()); until then it refuses everything. */
        share_reg_fail(&q->reg, -NG_ENOT_COORDINATOR);
        return 0;
    }
    rc = rc == 0 ? share_serve_open_log(s, q, dir) : rc;
    if (rc != 0) {
        log_error("share groups: state log %s: %s", dir, err_str(rc));
        return rc; /* server_fini() -> share_serve_close() frees what there is */
    }
    log_info("share groups: state of %u partitions replayed from %s", share_reg_count(&q->reg),
             dir);
    forget_missing_topics(s);
    return 0;
}

int share_serve_close(struct server *s)
{
    struct queue *q = s->queue;
    if (q == NULL) {
        return 0;
    }
    q->closing = true;
    int rc = 0;
    if (q->log_open) {
        /* Lock ends since the last tick: kept, so they count after a restart. */
        if (q->reg_ready && q->reg.failed == 0 && share_serve_room(q, 1)) {
            int prc = share_serve_persist(s, false, NULL, NULL);
            (void)prc; /* logged; the restart replays what made it */
        }
        rc = part_drain(&q->log);
        int rc2 = part_close(&q->log);
        rc = rc != 0 ? rc : rc2;
    }
    /* (Attached: the partition closed with the topics.) */
    q->served = NULL;
    q->attached = NULL;
    /* Topics closed first: their drains completed every dead-letter copy. */
    ASSERT(rc != 0 || (q->state_appends == 0 && q->dlq_jobs == 0));
    if (q->redrives != NULL) {
        log_warn("share groups: a redrive was still running at shutdown");
    }
    dlq_fini(q);
    if (q->reg_ready) {
        share_reg_fini(&q->reg);
    }
    free(q->flush_buf);
    free(q->grants);
    free(q->acquired);
    free(q->runs);
    free(q);
    s->queue = NULL;
    return rc;
}

/* ---- a cluster: the coordinator is the leader of __share_state/0 ---- */

/* Ends the term: the registry refuses everything (its memory stays until
 * the next attach or the close: dead-letter copies in flight point into
 * it); appends in flight complete NG_ENOT_COORDINATOR. */
static void detach(struct server *s)
{
    struct queue *q = s->queue;
    log_info("share group coordinator: no longer (leader epoch %d)", q->epoch);
    share_reg_fail(&q->reg, -NG_ENOT_COORDINATOR);
    q->attached = NULL;
    q->served = NULL;
    q->term++;
}

/* Starts a term on bp's log, which this broker leads with no append in
 * flight: a fresh registry replayed from the whole written log (a
 * follower's last appends included: what this leader serves). */
static void attach(struct server *s, struct bpart *bp)
{
    struct queue *q = s->queue;
    ASSERT(q->attached == NULL && q->dlq_jobs == 0);
    if (q->reg_ready) {
        share_reg_fini(&q->reg);
        q->reg_ready = false;
    }
    int rc = reg_make(s, q);
    rc = rc == 0 ? reg_replay(q, &bp->log) : rc;
    if (rc != 0) {
        log_error("share group coordinator: replaying %s/0: %s", PROTO_SHARE_STATE_TOPIC,
                  err_str(rc));
        if (q->reg_ready) {
            share_reg_fail(&q->reg, rc); /* the next view or housekeeping tries again */
        }
        return;
    }
    q->attached = bp;
    q->served = &bp->log;
    q->epoch = bp->rep.leader_epoch;
    q->term++;
    compaction_init(&q->compaction, "share state log", (uint64_t)bp->topic->cfg.segment_bytes);
    /* Member ids of earlier terms (another broker's) hold nothing here:
     * never hand out one below the clock's. */
    uint64_t seq = (uint64_t)s->env.now_ms() << 20;
    q->member_seq = seq > q->member_seq ? seq : q->member_seq;
    log_info("share group coordinator at leader epoch %d: state of %u partitions", q->epoch,
             share_reg_count(&q->reg));
    forget_missing_topics(s);
}

void share_serve_coordinate(struct server *s)
{
    struct queue *q = s->queue;
    if (q == NULL || s->view == NULL || q->closing || s->loop.stopping) {
        return;
    }
    struct server_topic *t = server_topic_find(s, proto_str_make(PROTO_SHARE_STATE_TOPIC));
    struct bpart *bp = t != NULL ? &t->parts[0] : NULL;
    bool lead = bp != NULL && bp->rep.role == REPLICA_LEADER;
    if (q->attached != NULL &&
        (!lead || q->attached != bp || q->epoch != bp->rep.leader_epoch || q->reg.failed != 0)) {
        detach(s);
    }
    /* The follower's last appends must be in the replay, and no dead-letter
     * copy may point into the registry replaced: else the next view or
     * housekeeping comes back. */
    if (lead && q->attached == NULL && q->dlq_jobs == 0 &&
        part_offset_written(&bp->log) == part_offset_next(&bp->log)) {
        attach(s, bp);
    }
}

static bool coordinating(const struct server *s)
{
    const struct queue *q = s->queue;
    return !broker_config_clustered(&s->cfg) || (q != NULL && q->attached != NULL);
}

bool share_serve_lists(const struct server *s)
{
    return coordinating(s) ||
           (s->view != NULL && cluster_view_topic(s->view, PROTO_SHARE_STATE_TOPIC,
                                                  sizeof(PROTO_SHARE_STATE_TOPIC) - 1) == NULL);
}

bool share_serve_refuse(struct server *s)
{
    struct queue *q = s->queue;
    if (coordinating(s)) {
        return false;
    }
    if (q != NULL) {
        groups_internal_topic_ensure(s, PROTO_SHARE_STATE_TOPIC, (int32_t)QUEUE_STATE_BATCH_MAX,
                                     &q->create_ms);
    }
    return true;
}

void share_serve_tick(struct server *s)
{
    struct queue *q = s->queue;
    if (q == NULL) {
        return;
    }
    if (s->loop.stopping) {
        return; /* housekeeping answers parked share fetches (park_abandon) */
    }
    share_serve_coordinate(s);
    if (q->reg.failed != 0 || !share_serve_room(q, 1)) {
        return;
    }
    expire_locks(s, share_serve_now_ms(s));
    /* A lost lock end only loses a delivery count increment: no fdatasync. */
    int rc = share_serve_persist(s, false, NULL, NULL);
    (void)rc; /* a failure is logged and fails the registry */
    maybe_checkpoint(s);
    dlq_drive(s);
}

uint32_t share_serve_groups_bound(const struct server *s)
{
    const struct queue *q = s->queue;
    return q != NULL && q->reg_ready && q->served != NULL ? share_reg_count(&q->reg) : 0;
}

bool share_serve_groups_next(struct server *s, uint32_t *cursor, struct proto_str *id)
{
    /* Parts are sorted by group, so a group's parts are adjacent. */
    uint32_t n = share_serve_groups_bound(s);
    const struct share_part *prev =
        *cursor > 0 ? share_reg_part(&s->queue->reg, *cursor - 1) : NULL;
    for (; *cursor < n; (*cursor)++) {
        const struct share_part *sp = share_reg_part(&s->queue->reg, *cursor);
        if (prev == NULL || prev->group_len != sp->group_len ||
            memcmp(prev->group, sp->group, sp->group_len) != 0) {
            *id = (struct proto_str){.ptr = sp->group, .len = sp->group_len};
            (*cursor)++;
            return true;
        }
    }
    return false;
}

/* ---- ShareFetch ---- */

struct sf_part {
    struct proto_str topic; /* into the frame */
    int32_t partition;
    struct bpart *bp; /* NULL: not readable here (absent says why) */
    int absent;       /* -NG_EUNKNOWN_TOPIC, -NG_ENO_REPLICA */
    int err;
    /* this attempt's: into q->grants and q->runs */
    uint32_t grant_at;
    uint32_t grant_count;
    uint32_t run_at;
    uint32_t run_count;
    uint64_t bytes;        /* of its runs */
    struct park_link link; /* on bp's waiters while parked */
};

enum sf_state {
    SF_NEW,        /* in its handler */
    SF_PARKED,     /* waiting for records */
    SF_PERSISTING, /* answer built, waiting for the state log */
};

enum sf_mode {
    SF_TRY,   /* acquire; answer only when something came (or an error) */
    SF_FINAL, /* acquire and answer whatever came */
    SF_EMPTY, /* answer without acquiring (stopping, topic deleted, connection gone) */
};

struct share_fetch {
    struct loop_req *req;
    struct server *s;
    uint32_t correlation_id;
    uint16_t version;
    uint8_t state;          /* enum sf_state */
    struct proto_str group; /* into the frame */
    char member_id[PROTO_SHARE_MEMBER_ID_BYTES];
    uint64_t member;
    uint32_t records_max;
    int64_t deadline_ms; /* loop clock: answer by then */
    struct loop_timer timer;
    struct park_waiter waiter;
    struct wr w; /* the answer, while persisting */
    uint32_t count;
    struct sf_part parts[];
};

static void sf_park(struct share_fetch *sf, int64_t now)
{
    for (uint32_t i = 0; i < sf->count; i++) {
        struct sf_part *p = &sf->parts[i];
        ASSERT(p->bp != NULL); /* a fetch naming an unknown partition answers at once */
        park_add(&p->bp->waiters, &p->link, &sf->waiter);
    }
    sf->state = SF_PARKED;
    loop_timer_arm(&sf->s->loop, &sf->timer, (uint64_t)(sf->deadline_ms - now));
}

static void sf_unpark(struct share_fetch *sf)
{
    (void)loop_timer_cancel(&sf->s->loop, &sf->timer);
    for (uint32_t i = 0; i < sf->count; i++) {
        park_remove(&sf->parts[i].link);
    }
    sf->state = SF_NEW;
}

/* ---- which batches cover the grants ---- */

struct cover {
    const struct share_grant *g;
    uint32_t n;
    uint32_t gi; /* first grant not wholly below the batch */
    struct queue_run *runs;
    uint32_t run_count;
    uint64_t bytes;
    uint64_t budget;   /* bytes the answer can still take */
    bool answer_empty; /* nothing in the answer yet: one batch may pass the budget */
    int64_t run_next;  /* offset just past the last run's last batch */
    int64_t cut;       /* first offset left out for the budget, or -1 */
};

/* part_for_each_batch() callback: takes every batch holding a granted
 * offset, merging adjacent ones into runs; stops past the last grant, or
 * where the budget ends. */
static int cover_batch(void *arg, const struct batch_header *h)
{
    struct cover *c = arg;
    int64_t base = h->offset_base;
    int64_t last = batch_offset_last(h);
    while (c->gi < c->n && c->g[c->gi].last < base) {
        c->gi++;
    }
    if (c->gi == c->n) {
        return 1;
    }
    if (c->g[c->gi].first > last) {
        return 0; /* between two grants */
    }
    uint64_t bytes = batch_bytes(h);
    bool first = c->answer_empty && c->bytes == 0;
    if (!first && c->bytes + bytes > c->budget) {
        c->cut = base > c->g[c->gi].first ? base : c->g[c->gi].first;
        return 1;
    }
    if (c->run_count > 0 && c->run_next == base) {
        c->runs[c->run_count - 1].bytes += bytes;
    } else {
        c->runs[c->run_count++] = (struct queue_run){.offset = base, .bytes = bytes};
    }
    c->run_next = last + 1;
    c->bytes += bytes;
    return 0;
}

/* Gives back the grants from offset cut on (left out of the answer for
 * its size) and shortens the list. Their delivery stays counted. */
static void cover_cut(struct share_part *sp, uint64_t member, int64_t now, struct share_grant *g,
                      uint32_t *n, int64_t cut)
{
    uint32_t kept = 0;
    for (uint32_t i = 0; i < *n; i++) {
        int64_t from = g[i].first > cut ? g[i].first : cut;
        if (from <= g[i].last) {
            int rc = share_part_ack(sp, member, from, g[i].last, SHARE_ACK_RELEASE, now);
            ASSERT(rc == 0); /* acquired by member just now, locked until now + lock_ms */
        }
        if (g[i].first < cut) {
            g[i].last = g[i].last < cut ? g[i].last : cut - 1;
            kept = i + 1;
        }
    }
    *n = kept;
}

static uint32_t grant_records(const struct share_grant *g, uint32_t n)
{
    uint64_t records = 0;
    for (uint32_t i = 0; i < n; i++) {
        records += (uint64_t)(g[i].last - g[i].first + 1);
    }
    return (uint32_t)records;
}

/* Finds the runs of batches covering p's grants within *budget; gives
 * back what does not fit (or every grant, when the log cannot be read). */
static int cover_part(struct share_fetch *sf, struct sf_part *p, struct share_part *sp, int64_t now,
                      uint64_t *budget, bool answer_empty)
{
    struct queue *q = sf->s->queue;
    struct share_grant *g = q->grants + p->grant_at;
    struct cover c = {.g = g,
                      .n = p->grant_count,
                      .runs = q->runs + p->run_at,
                      .budget = *budget,
                      .answer_empty = answer_empty,
                      .run_next = -1,
                      .cut = -1};
    int rc = part_for_each_batch(&p->bp->log, g[0].first, cover_batch, &c);
    if (rc < 0) {
        log_warn("share fetch %s/%d: %s", p->bp->topic->name, p->partition, err_str(rc));
        cover_cut(sp, sf->member, now, g, &p->grant_count, -1);
        return rc;
    }
    if (c.cut >= 0) {
        cover_cut(sp, sf->member, now, g, &p->grant_count, c.cut);
    }
    p->run_count = c.run_count;
    p->bytes = c.bytes;
    *budget -= c.bytes < *budget ? c.bytes : *budget;
    return 0;
}

/* ---- acquiring ---- */

/* Opens p's share part and acquires up to *left records within *budget
 * answer bytes. Returns 0 or the partition's error. */
static int acquire_part(struct share_fetch *sf, struct sf_part *p, int64_t now, uint32_t *left,
                        uint64_t *budget, bool answer_empty)
{
    struct queue *q = sf->s->queue;
    struct part *log = &p->bp->log;
    const struct server_topic *t = p->bp->topic;
    int64_t earliest = part_offset_earliest(log);
    struct share_part *sp;
    int rc = share_reg_open(&q->reg, sf->group.ptr, (size_t)sf->group.len, t->name, t->name_len,
                            p->partition, earliest, &sp);
    rc = rc == 0 ? share_part_trim(sp, earliest) : rc; /* retention took the records below */
    if (rc != 0 || *left == 0 || *budget == 0) {
        return rc;
    }
    uint32_t n = 0;
    rc = share_part_acquire(sp, sf->member, part_offset_latest(log), *left, now, q->lock_ms,
                            q->grants + p->grant_at, *left, &n);
    if (rc != 0 || n == 0) {
        return rc;
    }
    p->grant_count = n;
    rc = cover_part(sf, p, sp, now, budget, answer_empty);
    *left -= grant_records(q->grants + p->grant_at, p->grant_count);
    return rc;
}

/* Bytes of the answer without records and ranges, and so what the
 * records may take within the frame maximum. */
static uint64_t answer_fixed_bytes(const struct share_fetch *sf)
{
    uint64_t bytes = ANSWER_SLACK_BYTES;
    for (uint32_t i = 0; i < sf->count; i++) {
        const struct sf_part *p = &sf->parts[i];
        bool new_topic = i == 0 || p->topic.ptr != sf->parts[i - 1].topic.ptr;
        bytes += PROTO_SHARE_FETCH_RESP_PARTITION_BYTES +
                 (new_topic ? PROTO_TOPIC_BYTES(p->topic.len) : 0);
    }
    return bytes;
}

/* One attempt at every partition: *records_out acquired in all; *errors_out
 * when some partition has an error to report. */
static void acquire_all(struct share_fetch *sf, int64_t now, uint32_t *records_out,
                        bool *errors_out)
{
    uint32_t left = sf->records_max;
    uint64_t fixed = answer_fixed_bytes(sf) + (uint64_t)left * PROTO_SHARE_ACQUIRED_BYTES;
    uint64_t frame = sf->s->cfg.frame_bytes_max;
    uint64_t budget = frame > fixed ? frame - fixed : 0;
    uint32_t grants = 0;
    uint32_t runs = 0;
    *errors_out = false;
    for (uint32_t i = 0; i < sf->count; i++) {
        struct sf_part *p = &sf->parts[i];
        p->grant_at = grants;
        p->run_at = runs;
        p->grant_count = p->run_count = 0;
        p->bytes = 0;
        bool empty = left == sf->records_max;
        p->err = p->bp == NULL ? p->absent : acquire_part(sf, p, now, &left, &budget, empty);
        *errors_out |= p->err != 0;
        grants += p->grant_count;
        runs += p->run_count;
    }
    *records_out = sf->records_max - left;
}

/* Gives back every grant of this attempt (the answer could not be made). */
static void release_all(struct share_fetch *sf, int64_t now)
{
    struct queue *q = sf->s->queue;
    for (uint32_t i = 0; i < sf->count; i++) {
        struct sf_part *p = &sf->parts[i];
        if (p->grant_count == 0) {
            continue;
        }
        const struct server_topic *t = p->bp->topic;
        struct share_part *sp = share_reg_find(&q->reg, sf->group.ptr, (size_t)sf->group.len,
                                               t->name, t->name_len, p->partition);
        ASSERT(sp != NULL);
        cover_cut(sp, sf->member, now, q->grants + p->grant_at, &p->grant_count, -1);
    }
}

/* ---- answering ---- */

static size_t answer_bytes(const struct share_fetch *sf)
{
    uint64_t bytes = answer_fixed_bytes(sf);
    for (uint32_t i = 0; i < sf->count; i++) {
        bytes +=
            (uint64_t)sf->parts[i].grant_count * PROTO_SHARE_ACQUIRED_BYTES + sf->parts[i].bytes;
    }
    return (size_t)bytes;
}

/* Writes one partition: its ranges, then its batches read from the log
 * straight into the answer. */
static void answer_part(struct share_fetch *sf, struct proto_enc *e, const struct sf_part *p)
{
    struct queue *q = sf->s->queue;
    struct proto_share_fetch_resp_partition out = {.partition = p->partition,
                                                   .err = p->err,
                                                   .acquired_count = p->grant_count,
                                                   .acquired = q->acquired};
    for (uint32_t k = 0; k < p->grant_count; k++) {
        const struct share_grant *g = &q->grants[p->grant_at + k];
        q->acquired[k] = (struct proto_share_acquired){
            .first = g->first, .last = g->last, .delivery_count = (int16_t)g->delivery_count};
    }
    proto_share_fetch_resp_partition_begin(e, &out);
    struct wr *w = e->w;
    for (uint32_t k = 0; k < p->run_count && w->err == 0; k++) {
        const struct queue_run *run = &q->runs[p->run_at + k];
        struct part_read_result r;
        int rc = part_read(&p->bp->log, run->offset, w->ptr + w->pos, w->cap - w->pos,
                           (size_t)run->bytes, &r);
        if (rc == 0) {
            (void)wr_take(w, r.bytes); /* the bytes are in place already */
        } else {
            /* The ranges go anyway: their locks expire and they come back. */
            log_warn("share fetch %s/%d at %" PRId64 ": %s", p->bp->topic->name, p->partition,
                     run->offset, err_str(rc));
        }
    }
    proto_share_fetch_resp_partition_end(e);
}

static void sf_persisted(void *ctx, int rc)
{
    struct share_fetch *sf = ctx;
    if (rc == 0) {
        server_resp_send(sf->req, &sf->w);
    } else {
        server_resp_error(sf->req, sf->correlation_id, rc);
    }
    free(sf);
}

/* Builds the answer (a request-wide err: no topics), makes the attempt's
 * changes durable, and sends it; frees sf (now or once durable). */
static void sf_answer(struct share_fetch *sf, int err, int64_t now)
{
    struct server *s = sf->s;
    int rc = server_resp_open(sf->req, err != 0 ? ANSWER_SLACK_BYTES : answer_bytes(sf), &sf->w);
    if (rc != 0) {
        release_all(sf, now);
        server_resp_error(sf->req, sf->correlation_id, rc);
        free(sf);
        return;
    }
    struct proto_share_fetch_resp head = {
        .err = err, .member_id = proto_str_make(err == 0 ? sf->member_id : "")};
    struct proto_enc e;
    proto_share_fetch_resp_begin(&e, &sf->w, sf->version, sf->correlation_id, &head);
    for (uint32_t i = 0; err == 0 && i < sf->count; i++) {
        if (i == 0 || sf->parts[i].topic.ptr != sf->parts[i - 1].topic.ptr) {
            proto_enc_topic(&e, sf->parts[i].topic);
        }
        answer_part(sf, &e, &sf->parts[i]);
    }
    rc = proto_enc_end(&e);
    ASSERT(rc == 0); /* sized above */
    struct queue *q = s->queue;
    rc = q->reg.failed != 0 || !share_serve_room(q, 1)
             ? 1
             : share_serve_persist(s, true, sf_persisted, sf);
    if (rc == 0) {
        sf->state = SF_PERSISTING;
        return;
    }
    sf_persisted(sf, rc > 0 ? 0 : rc);
}

/* Tries to hand out records. Returns true when sf was answered (or is
 * being made durable, then answered), false when mode is SF_TRY and there
 * was nothing to say (sf is unchanged, parked or not). */
static bool sf_attempt(struct share_fetch *sf, enum sf_mode mode)
{
    struct server *s = sf->s;
    struct queue *q = s->queue;
    int64_t now = share_serve_now_ms(s);
    int err = serve_check(q);
    if (err == 0 && mode != SF_EMPTY && !share_serve_room(q, sf->count + 1)) {
        if (mode == SF_TRY) {
            return false; /* the state log is backed up: try at the next wake */
        }
        err = -NG_EBUSY;
    }
    uint32_t records = 0;
    bool errors = false;
    if (err == 0 && mode != SF_EMPTY) {
        expire_locks(s, now);
        acquire_all(sf, now, &records, &errors);
        err = q->reg.failed; /* an acquisition may meet a failure */
    } else {
        for (uint32_t i = 0; i < sf->count; i++) {
            struct sf_part *p = &sf->parts[i];
            p->grant_count = p->run_count = 0;
            p->bytes = 0;
            p->err = p->bp == NULL ? p->absent : 0;
        }
    }
    if (mode == SF_TRY && err == 0 && records == 0 && !errors) {
        return false;
    }
    sf_unpark(sf);
    sf_answer(sf, err, now);
    return true;
}

/* ---- waiting ---- */

/* The fetch's timer: its deadline, or a wake (armed to fire at once). */
static void sf_on_timer(struct loop_timer *t, void *arg)
{
    (void)t;
    struct share_fetch *sf = arg;
    struct server *s = sf->s;
    int64_t now = share_serve_now_ms(s);
    if (s->loop.stopping) {
        (void)sf_attempt(sf, SF_EMPTY);
    } else if (now >= sf->deadline_ms) {
        (void)sf_attempt(sf, SF_FINAL);
    } else if (!sf_attempt(sf, SF_TRY)) {
        loop_timer_arm(&s->loop, &sf->timer, (uint64_t)(sf->deadline_ms - now));
    }
}

static void sf_on_abort(struct loop_req *req, void *arg)
{
    (void)req;
    struct share_fetch *sf = arg;
    if (sf->state == SF_PARKED) {
        (void)sf_attempt(sf, SF_EMPTY); /* the loop drops the answer */
    }
}

/* Woken: tries again from its own timer, in the next turn of the loop,
 * never inside the caller (a watcher, a handler, an append's completion). */
static bool sf_on_wake(struct park_waiter *w)
{
    struct share_fetch *sf = container_of(w, struct share_fetch, waiter);
    loop_timer_arm(&sf->s->loop, &sf->timer, 0);
    return false;
}

static void sf_on_abandon(struct park_waiter *w)
{
    (void)sf_attempt(container_of(w, struct share_fetch, waiter), SF_EMPTY);
}

/* ---- the handler ---- */

/* Why partition p of topic `name` (st: held here, or NULL) cannot be
 * handed out here, or 0: a share group reads this broker's own replica,
 * leader or follower (a follower's reads stop at the leader's high
 * watermark); a partition of the cluster's catalog this broker holds no
 * replica of is NG_ENO_REPLICA. */
static int source_absent(const struct server *s, const struct server_topic *st,
                         struct proto_str name, int32_t p)
{
    if (st != NULL && p >= 0 && p < st->cfg.partitions) {
        return st->parts[p].rep.role == REPLICA_NONE ? -NG_ENO_REPLICA : 0;
    }
    const struct cluster_topic *ct =
        s->view != NULL ? cluster_view_topic(s->view, name.ptr, (size_t)name.len) : NULL;
    return ct != NULL && p >= 0 && p < ct->partitions ? -NG_ENO_REPLICA : -NG_EUNKNOWN_TOPIC;
}

static void resolve_fetch_parts(struct server *s, struct share_fetch *sf, struct proto_dec d)
{
    struct proto_topic t;
    int32_t p;
    uint32_t i = 0;
    while (proto_next_topic(&d, &t)) {
        struct server_topic *st = server_topic_find(s, t.name);
        while (proto_next_partition_index(&d, &p)) {
            int absent = source_absent(s, st, t.name, p);
            sf->parts[i++] = (struct sf_part){.topic = t.name,
                                              .partition = p,
                                              .bp = absent == 0 ? &st->parts[p] : NULL,
                                              .absent = absent};
        }
    }
    ASSERT(i == sf->count);
}

/* The member a fetch is for: a new one for an empty id. */
static int fetch_member(struct queue *q, struct share_fetch *sf, struct proto_str id)
{
    if (id.len == 0) {
        sf->member = ++q->member_seq;
    } else {
        int rc = member_parse(q, id, &sf->member);
        if (rc != 0) {
            return rc;
        }
    }
    snprintf(sf->member_id, sizeof(sf->member_id), "%" PRIu64, sf->member);
    return 0;
}

void handle_share_fetch(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                        struct rd *body)
{
    struct proto_share_fetch_req in;
    struct proto_dec d;
    int rc = proto_share_fetch_req_decode(body, h->api_version, &in, &d);
    uint32_t count = rc == 0 ? d.partition_count : 0;
    struct share_fetch *sf = rc == 0 ? calloc(1, sizeof(*sf) + count * sizeof(sf->parts[0])) : NULL;
    if (sf == NULL) {
        server_resp_error(req, h->correlation_id, rc != 0 ? rc : -ENOMEM);
        return;
    }
    struct queue *q = s->queue;
    int64_t now = share_serve_now_ms(s);
    uint32_t wait = (uint32_t)in.wait_max_ms;
    wait = wait < s->cfg.fetch_wait_max_ms ? wait : s->cfg.fetch_wait_max_ms;
    *sf =
        (struct share_fetch){.req = req,
                             .s = s,
                             .correlation_id = h->correlation_id,
                             .version = h->api_version,
                             .group = in.group,
                             .count = count,
                             .deadline_ms = now + wait,
                             .records_max = (uint32_t)in.records_max < PROTO_SHARE_FETCH_RECORDS_MAX
                                                ? (uint32_t)in.records_max
                                                : PROTO_SHARE_FETCH_RECORDS_MAX};
    loop_timer_init(&sf->timer, sf_on_timer, sf);
    park_waiter_init(&sf->waiter, PARK_DATA | PARK_FREED, sf_on_wake, sf_on_abandon);
    resolve_fetch_parts(s, sf, d);
    rc = group_check(in.group);
    rc = rc == 0 ? fetch_member(q, sf, in.member_id) : rc;
    if (rc != 0) {
        sf_answer(sf, rc, now);
        return;
    }
    bool at_once = wait == 0 || sf->records_max == 0 || count == 0;
    enum sf_mode mode = s->loop.stopping ? SF_EMPTY : at_once ? SF_FINAL : SF_TRY;
    if (sf_attempt(sf, mode)) {
        return;
    }
    loop_req_on_abort(req, sf_on_abort, sf);
    sf_park(sf, now);
}

/* ---- ShareAck ---- */

struct ack_part {
    struct proto_str topic; /* into the frame */
    int32_t partition;
    int err;
    bool applied; /* some range took effect: its error is the write's too */
};

struct ack_job {
    struct loop_req *req;
    uint32_t correlation_id;
    uint16_t version;
    uint32_t count;
    struct ack_part parts[];
};

static enum share_ack_type ack_type(int8_t wire)
{
    switch (wire) {
    case PROTO_ACK_ACCEPT:
        return SHARE_ACK_ACCEPT;
    case PROTO_ACK_RELEASE:
        return SHARE_ACK_RELEASE;
    default:
        ASSERT(wire == PROTO_ACK_REJECT); /* the decoder refuses others */
        return SHARE_ACK_REJECT;
    }
}

static void ack_answer(struct ack_job *j)
{
    size_t cap = ANSWER_SLACK_BYTES;
    for (uint32_t i = 0; i < j->count; i++) {
        cap += PROTO_PARTITION_RESULT_BYTES + PROTO_TOPIC_BYTES(j->parts[i].topic.len);
    }
    struct wr w;
    if (server_resp_begin(j->req, j->correlation_id, cap, &w)) {
        struct proto_enc e;
        proto_share_ack_resp_begin(&e, &w, j->version, j->correlation_id);
        for (uint32_t i = 0; i < j->count; i++) {
            const struct ack_part *p = &j->parts[i];
            if (i == 0 || p->topic.ptr != j->parts[i - 1].topic.ptr) {
                proto_enc_topic(&e, p->topic);
            }
            proto_enc_partition_result(&e, &(struct proto_partition_result){p->partition, p->err});
        }
        server_resp_end(j->req, &e, &w, j->correlation_id);
    }
    free(j);
}

static void ack_persisted(void *ctx, int rc)
{
    struct ack_job *j = ctx;
    for (uint32_t i = 0; rc != 0 && i < j->count; i++) {
        if (j->parts[i].applied) {
            j->parts[i].err = rc; /* not durable: maybe not kept */
        }
    }
    ack_answer(j);
}

/* Applies one partition's ranges in order; the first refusal is its error,
 * the other ranges take effect. */
static void ack_partition(struct server *s, struct proto_str group, uint64_t member,
                          struct server_topic *st, const struct proto_share_ack_req_partition *in,
                          struct ack_part *out)
{
    struct queue *q = s->queue;
    if (st == NULL || in->partition < 0 || in->partition >= st->cfg.partitions) {
        out->err = -NG_EUNKNOWN_TOPIC;
        return;
    }
    struct share_part *sp = share_reg_find(&q->reg, group.ptr, (size_t)group.len, st->name,
                                           st->name_len, in->partition);
    int64_t now = share_serve_now_ms(s);
    for (uint32_t k = 0; k < in->ack_count; k++) {
        struct proto_share_ack a;
        proto_share_ack_at(in, k, &a);
        int rc = sp == NULL ? -NG_ENOT_ACQUIRED
                            : share_part_ack(sp, member, a.first, a.last, ack_type(a.type), now);
        out->applied |= rc == 0;
        out->err = out->err != 0 ? out->err : rc;
    }
    if (out->applied) {
        park_wake(&st->parts[in->partition].waiters,
                  PARK_FREED); /* released records, or room in the window */
    }
}

/* An error every partition of an ack gets, or 0. */
static int ack_common_err(struct server *s, const struct proto_share_ack_req *in, uint32_t count,
                          uint64_t *member)
{
    struct queue *q = s->queue;
    int rc = group_check(in->group);
    rc = rc == 0 ? member_parse(q, in->member_id, member) : rc;
    rc = rc == 0 ? serve_check(q) : rc;
    if (rc == 0 && !share_serve_room(q, count + 1)) {
        rc = -NG_EBUSY; /* before anything changes: the state log must take it */
    }
    return rc;
}

void handle_share_ack(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                      struct rd *body)
{
    struct proto_share_ack_req in;
    struct proto_dec d;
    int rc = proto_share_ack_req_decode(body, h->api_version, &in, &d);
    uint32_t count = rc == 0 ? d.partition_count : 0;
    struct ack_job *j = rc == 0 ? calloc(1, sizeof(*j) + count * sizeof(j->parts[0])) : NULL;
    if (j == NULL) {
        server_resp_error(req, h->correlation_id, rc != 0 ? rc : -ENOMEM);
        return;
    }
    *j = (struct ack_job){
        .req = req, .correlation_id = h->correlation_id, .version = h->api_version, .count = count};
    uint64_t member = SHARE_MEMBER_NONE;
    int common = ack_common_err(s, &in, count, &member);
    struct proto_topic t;
    uint32_t i = 0;
    while (proto_next_topic(&d, &t)) {
        struct server_topic *st = server_topic_find(s, t.name);
        struct proto_share_ack_req_partition p;
        while (proto_share_ack_req_next_partition(&d, &p)) {
            struct ack_part *ap = &j->parts[i++];
            *ap = (struct ack_part){.topic = t.name, .partition = p.partition, .err = common};
            if (common == 0) {
                ack_partition(s, in.group, member, st, &p, ap);
            }
        }
    }
    ASSERT(i == count);
    /* Acknowledgements are durable before they are answered. */
    rc = common == 0 ? share_serve_persist(s, true, ack_persisted, j) : 1;
    if (rc != 0) {
        ack_persisted(j, rc > 0 ? 0 : rc);
    }
}
