/*
 * client/group.c — a nagare_consumer as a member of a pub/sub consumer
 * group (docs/protocol.md, "Consumer groups"): JoinGroup, heartbeats that
 * carry the broker's assignment, OffsetFetch for where a partition starts,
 * OffsetCommit (sync, async, auto), LeaveGroup.
 *
 * Invariants.
 * - `owned` is the member's grant as of the last heartbeat answer it acted
 *   on, sorted by (topic, partition). A partition is read (consumer.c) only
 *   while owned and started; it starts once its committed offset (or the
 *   reset policy's) is known. The next heartbeat carries the generation of
 *   that answer, which tells the broker the member let go of everything the
 *   answer left out: revoked partitions are removed (records dropped)
 *   before that heartbeat goes out.
 * - Answers to heartbeats and async commits are only recorded by their
 *   connection callbacks; cgroup_tick() acts on them from poll, where a
 *   synchronous request (OffsetFetch, ListOffsets, JoinGroup) may be made.
 *   At most one heartbeat is in flight.
 * - Rebalance notifications accumulate in `revoked` / `assigned` until the
 *   callback runs from poll; a partition is in each list at most once, and
 *   one revoked before its assignment was reported is just dropped from
 *   `assigned`. So both lists hold at most the group's partition limit.
 * - A commit names only started partitions whose position moved since
 *   their last commit; its answer records the new committed offsets.
 * Memory: owned, notifications and each commit are bounded by
 * GROUP_PARTS_LIMIT (the most a heartbeat answer can grant).
 * Threads: the consumer's.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "client/conn.h"
#include "client/consumer_int.h"
#include "client/nagare.h"

/* Topics a member subscribes to: the broker's per-group limit. */
#define GROUP_TOPICS_LIMIT 64
/* Partitions one heartbeat answer may grant (docs/protocol.md, Limits). */
#define GROUP_PARTS_LIMIT PROTO_REQUEST_PARTITIONS_MAX
/* Heartbeat pace while the grant is not yet the member's full share. */
#define HB_REBALANCING_MS 100
/* While requests of the group are in flight and poll keeps returning
 * buffered records, the socket is still read this often. */
#define IO_INTERVAL_MS 5
/* A request naming a group and a member: header, ids, small fields. */
#define GROUP_REQUEST_BYTES \
    (64 + 2 * PROTO_STR_BYTES(PROTO_GROUP_ID_BYTES_MAX) + PROTO_GROUP_MEMBER_ID_BYTES)

struct gtp {
    uint16_t topic; /* index into cgroup.topics */
    int32_t partition;
};

struct gpart {
    uint16_t topic;
    int32_t partition;
    int64_t committed; /* last committed (or fetched) offset; -1: none */
    bool started;      /* being read */
};

/* A commit request and its outcome. */
struct gcommit {
    struct cgroup *g;
    struct gcommit *next; /* async: completed, waiting to be reported */
    bool async;
    bool done;
    int err; /* the first error (request-level or partition) */
    uint32_t count;
    struct nagare_topic_partition items[];
};

struct ghb {
    bool inflight;
    bool ready; /* an answer waits for cgroup_tick() */
    int err;
    int32_t generation;
    bool rebalancing;
    uint32_t count;
    struct gtp *grant; /* GROUP_PARTS_LIMIT entries */
};

struct gnotes {
    struct nagare_topic_partition *v;
    uint32_t count;
    uint32_t cap;
};

struct cgroup {
    char id[PROTO_GROUP_ID_BYTES_MAX + 1];
    char member_id[PROTO_GROUP_MEMBER_ID_BYTES]; /* "": not a member, join (again) */
    int32_t generation;
    int32_t session_ms;
    char topics[GROUP_TOPICS_LIMIT][PROTO_TOPIC_NAME_BYTES_MAX + 1];
    uint32_t topic_count;
    struct gpart *owned; /* GROUP_PARTS_LIMIT entries */
    uint32_t owned_count;
    uint32_t unstarted;    /* owned and not yet read */
    struct gpart *scratch; /* GROUP_PARTS_LIMIT entries, for grant_apply() */
    struct ghb hb;
    int64_t hb_due_ms;
    uint32_t hb_backoff_ms;
    int64_t join_due_ms;
    uint32_t join_backoff_ms;
    int64_t start_due_ms;
    uint32_t start_backoff_ms;
    int64_t commit_due_ms;
    uint32_t commits_inflight;
    struct gcommit *reports_head; /* completed async commits, in order */
    struct gcommit *reports_tail;
    struct gnotes revoked;
    struct gnotes assigned;
    bool in_callback;
    int64_t io_due_ms;
    /* the coordinator (docs/cluster.md, section 5) */
    bool coordinator_lost; /* an answer said so: find it again */
    int64_t find_due_ms;
    uint32_t find_backoff_ms;
};

static struct proto_str str_of(const char *s) { return proto_str_make(s); }

static bool is_member(const struct cgroup *g) { return g->member_id[0] != '\0'; }

/* A group request waits for its answer behind a long-polling fetch. */
static uint32_t request_timeout_of(nagare_consumer *c)
{
    const struct nagare_consumer_config *cfg = consumer_cfg(c);
    return cfg->request_timeout_ms + cfg->fetch_wait_max_ms;
}

/* The broker does not list the api (an old broker): say so plainly. */
static int api_err(int rc) { return rc == -NG_EBADVERSION ? -NG_EUNKNOWN_API : rc; }

/* An error that says the coordinator moved, or may have (its connection
 * failed): it is looked up again before the next group request. */
static int coordinator_note(struct cgroup *g, int err)
{
    if (err == -NG_ENOT_COORDINATOR || err == -NG_EDISCONNECTED || err == -NG_ETIMEOUT) {
        g->coordinator_lost = true;
    }
    return err;
}

/* ---- owned partitions ---- */

static int gtp_cmp(uint16_t ta, int32_t pa, uint16_t tb, int32_t pb)
{
    if (ta != tb) {
        return ta < tb ? -1 : 1;
    }
    return (pa > pb) - (pa < pb);
}

/* Index of (topic, partition) in owned, or where it would go (*found false). */
static uint32_t owned_find(const struct cgroup *g, uint16_t topic, int32_t partition, bool *found)
{
    uint32_t lo = 0;
    uint32_t hi = g->owned_count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int r = gtp_cmp(g->owned[mid].topic, g->owned[mid].partition, topic, partition);
        if (r == 0) {
            *found = true;
            return mid;
        }
        if (r < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *found = false;
    return lo;
}

static int topic_index(const struct cgroup *g, struct proto_str name)
{
    for (uint32_t i = 0; i < g->topic_count; i++) {
        if (proto_str_eq(name, g->topics[i])) {
            return (int)i;
        }
    }
    return -1;
}

/* ---- notifications for the rebalance callback ---- */

static int notes_find(const struct gnotes *n, const char *topic, int32_t partition)
{
    for (uint32_t i = 0; i < n->count; i++) {
        /* topic strings are cgroup.topics entries: compare pointers */
        if (n->v[i].topic == topic && n->v[i].partition == partition) {
            return (int)i;
        }
    }
    return -1;
}

static int notes_add(struct gnotes *n, const char *topic, int32_t partition, int64_t offset,
                     int err)
{
    if (n->count == n->cap) {
        uint32_t cap = n->cap == 0 ? 64 : n->cap * 2;
        ASSERT(cap <= 4 * GROUP_PARTS_LIMIT);
        struct nagare_topic_partition *v = realloc(n->v, cap * sizeof(*v));
        if (v == NULL) {
            return -ENOMEM;
        }
        n->v = v;
        n->cap = cap;
    }
    n->v[n->count++] = (struct nagare_topic_partition){
        .topic = topic, .partition = partition, .offset = offset, .err = err};
    return 0;
}

static void notes_remove(struct gnotes *n, uint32_t i)
{
    memmove(&n->v[i], &n->v[i + 1], (n->count - i - 1) * sizeof(*n->v));
    n->count--;
}

/* A started partition stops being read: its records are dropped, and the
 * callback will name it revoked with the position reached (unless its
 * assignment was never reported: then that report just goes). */
static void part_revoke(nagare_consumer *c, struct cgroup *g, const struct gpart *p)
{
    if (!p->started) {
        return;
    }
    const char *topic = g->topics[p->topic];
    int64_t pos = -1;
    if (nagare_consumer_position(c, topic, p->partition, &pos) != 0) {
        pos = -1;
    }
    consumer_part_remove(c, topic, p->partition);
    int i = notes_find(&g->assigned, topic, p->partition);
    if (i >= 0) {
        notes_remove(&g->assigned, (uint32_t)i);
    } else if (notes_find(&g->revoked, topic, p->partition) < 0) {
        /* out of memory, the partition still stops: only its report is lost */
        (void)notes_add(&g->revoked, topic, p->partition, pos, 0);
    }
}

/* Runs the rebalance callback with what accumulated. */
static void notes_deliver(nagare_consumer *c, struct cgroup *g)
{
    const struct nagare_consumer_config *cfg = consumer_cfg(c);
    if (g->revoked.count == 0 && g->assigned.count == 0) {
        return;
    }
    if (cfg->on_rebalance != NULL) {
        g->in_callback = true;
        cfg->on_rebalance(c, g->revoked.v, g->revoked.count, g->assigned.v, g->assigned.count,
                          cfg->opaque);
        g->in_callback = false;
    }
    g->revoked.count = 0;
    g->assigned.count = 0;
}

/* The member is gone on the broker's side (session expired, the broker
 * restarted): every partition stops, and it joins again. */
static void member_lost(nagare_consumer *c, struct cgroup *g)
{
    for (uint32_t i = 0; i < g->owned_count; i++) {
        part_revoke(c, g, &g->owned[i]);
    }
    g->owned_count = 0;
    g->unstarted = 0;
    g->member_id[0] = '\0';
    g->generation = -1;
    g->join_due_ms = clock_mono_ms();
}

/* ---- JoinGroup, LeaveGroup ---- */

static int join_encode(void *arg, struct wr *w, uint32_t corr, uint16_t version)
{
    const struct cgroup *g = arg;
    struct proto_enc e;
    struct proto_join_group_req req = {.group = str_of(g->id),
                                       .member_id = str_of(g->member_id),
                                       .session_timeout_ms = g->session_ms};
    proto_join_group_req_begin(&e, w, version, corr, str_of(CONN_CLIENT_ID), &req);
    for (uint32_t i = 0; i < g->topic_count; i++) {
        proto_enc_topic(&e, str_of(g->topics[i]));
    }
    return proto_enc_end(&e);
}

static int join_decode(void *arg, struct rd *body, uint16_t version)
{
    struct cgroup *g = arg;
    struct proto_join_group_resp out;
    if (proto_join_group_resp_decode(body, version, &out) != 0) {
        return -NG_EPROTO;
    }
    if (out.err != 0) {
        return out.err;
    }
    if (out.member_id.len <= 0 ||
        proto_str_copy(out.member_id, g->member_id, sizeof(g->member_id)) != 0) {
        return -NG_EPROTO;
    }
    g->generation = out.generation;
    return 0;
}

/* JoinGroup as a new member. On 0 the member id and generation are set. */
static int join(nagare_consumer *c, struct cgroup *g)
{
    g->member_id[0] = '\0';
    int rc = consumer_group_call(c, PROTO_API_JOIN_GROUP,
                                 GROUP_REQUEST_BYTES + g->topic_count * PROTO_TOPIC_BYTES_MAX,
                                 join_encode, join_decode, g);
    if (coordinator_note(g, rc) != 0) {
        g->member_id[0] = '\0';
        g->generation = -1;
        return api_err(rc);
    }
    int64_t now = clock_mono_ms();
    g->hb_due_ms = now;
    g->hb_backoff_ms = 0;
    g->join_backoff_ms = 0;
    return 0;
}

static int leave_encode(void *arg, struct wr *w, uint32_t corr, uint16_t version)
{
    const struct cgroup *g = arg;
    struct proto_leave_group_req req = {.group = str_of(g->id), .member_id = str_of(g->member_id)};
    return proto_leave_group_req_encode(w, version, corr, str_of(CONN_CLIENT_ID), &req);
}

static int leave_decode(void *arg, struct rd *body, uint16_t version)
{
    (void)arg;
    int err = 0;
    if (proto_leave_group_resp_decode(body, version, &err) != 0) {
        return -NG_EPROTO;
    }
    return err;
}

static int leave(nagare_consumer *c, struct cgroup *g)
{
    if (!is_member(g)) {
        return 0;
    }
    int rc = consumer_group_call(c, PROTO_API_LEAVE_GROUP, GROUP_REQUEST_BYTES, leave_encode,
                                 leave_decode, g);
    g->member_id[0] = '\0';
    /* Already forgotten by the broker: the member has left either way. */
    return rc == -NG_EUNKNOWN_MEMBER ? 0 : rc;
}

/* ---- where assigned partitions start: OffsetFetch, then ListOffsets ---- */

/* Partitions asked about; items[i].offset is filled in by the answer. For
 * ListOffsets only items without an offset (and without an error) are
 * asked for. */
struct gquery {
    const struct cgroup *g;
    struct nagare_topic_partition *items;
    uint32_t count;
    int64_t timestamp_ms; /* ListOffsets: PROTO_TIMESTAMP_EARLIEST / LATEST */
};

static size_t query_bytes(const struct gquery *q)
{
    /* OffsetFetch's partitions are smaller than ListOffsets' */
    return GROUP_REQUEST_BYTES + (size_t)q->g->topic_count * PROTO_TOPIC_BYTES_MAX +
           (size_t)q->count * PROTO_LIST_OFFSETS_PARTITION_BYTES;
}

static bool list_wants(const struct nagare_topic_partition *it)
{
    return it->offset < 0 && it->err == 0;
}

static int offset_fetch_encode(void *arg, struct wr *w, uint32_t corr, uint16_t version)
{
    const struct gquery *q = arg;
    struct proto_enc e;
    proto_offset_fetch_req_begin(&e, w, version, corr, str_of(CONN_CLIENT_ID), str_of(q->g->id),
                                 false);
    const char *open = NULL;
    for (uint32_t i = 0; i < q->count; i++) {
        if (q->items[i].topic != open) {
            open = q->items[i].topic;
            proto_enc_topic(&e, str_of(open));
        }
        proto_enc_partition_index(&e, q->items[i].partition);
    }
    return proto_enc_end(&e);
}

static int offset_fetch_decode(void *arg, struct rd *body, uint16_t version)
{
    struct gquery *q = arg;
    struct proto_dec d;
    if (proto_offset_fetch_resp_decode(body, version, &d) != 0) {
        return -NG_EPROTO;
    }
    uint32_t i = 0;
    struct proto_topic t;
    while (proto_next_topic(&d, &t)) {
        struct proto_partition_offset po;
        while (proto_next_partition_offset(&d, &po)) {
            if (i == q->count || !proto_str_eq(t.name, q->items[i].topic) ||
                po.partition != q->items[i].partition) {
                return -NG_EPROTO;
            }
            if (po.err != 0) {
                return po.err;
            }
            q->items[i++].offset = po.offset >= 0 ? po.offset : -1;
        }
    }
    return i == q->count ? 0 : -NG_EPROTO;
}

static int list_offsets_encode(void *arg, struct wr *w, uint32_t corr, uint16_t version)
{
    const struct gquery *q = arg;
    struct proto_enc e;
    proto_list_offsets_req_begin(&e, w, version, corr, str_of(CONN_CLIENT_ID));
    const char *open = NULL;
    for (uint32_t i = 0; i < q->count; i++) {
        if (!list_wants(&q->items[i])) {
            continue;
        }
        if (q->items[i].topic != open) {
            open = q->items[i].topic;
            proto_enc_topic(&e, str_of(open));
        }
        proto_list_offsets_req_partition(
            &e, &(struct proto_list_offsets_req_partition){.partition = q->items[i].partition,
                                                           .timestamp_ms = q->timestamp_ms});
    }
    return proto_enc_end(&e);
}

/* Answers fill items in request order; -1 marks "asked" while decoding. */
static int list_offsets_decode(void *arg, struct rd *body, uint16_t version)
{
    struct gquery *q = arg;
    struct proto_dec d;
    if (proto_list_offsets_resp_decode(body, version, &d) != 0) {
        return -NG_EPROTO;
    }
    uint32_t i = 0;
    struct proto_topic t;
    while (proto_next_topic(&d, &t)) {
        struct proto_list_offsets_resp_partition p;
        while (proto_list_offsets_resp_next_partition(&d, &p)) {
            while (i < q->count && !list_wants(&q->items[i])) {
                i++;
            }
            if (i == q->count || !proto_str_eq(t.name, q->items[i].topic) ||
                p.partition != q->items[i].partition) {
                return -NG_EPROTO;
            }
            if (p.err != 0) {
                return p.err;
            }
            if (p.offset < 0) {
                return -NG_EPROTO;
            }
            q->items[i++].offset = p.offset;
        }
    }
    return 0;
}

/* Finds each item's start: the committed offset, else the reset policy's
 * (the log start or end, or a paused partition under NAGARE_RESET_ERROR).
 * committed[i] gets the committed offset or -1. */
static int starts_find(nagare_consumer *c, struct gquery *q, int64_t *committed)
{
    int rc = consumer_group_call(c, PROTO_API_OFFSET_FETCH, query_bytes(q), offset_fetch_encode,
                                 offset_fetch_decode, q);
    if (rc != 0) {
        return rc;
    }
    enum nagare_offset_reset reset = consumer_cfg(c)->reset;
    uint32_t asks = 0;
    for (uint32_t i = 0; i < q->count; i++) {
        committed[i] = q->items[i].offset;
        if (q->items[i].offset < 0 && reset == NAGARE_RESET_ERROR) {
            q->items[i].err = -NG_EOFFSET_RANGE;
        }
        asks += list_wants(&q->items[i]) ? 1 : 0;
    }
    if (asks == 0) {
        return 0;
    }
    q->timestamp_ms =
        reset == NAGARE_RESET_LATEST ? PROTO_TIMESTAMP_LATEST : PROTO_TIMESTAMP_EARLIEST;
    rc = consumer_group_call(c, PROTO_API_LIST_OFFSETS, query_bytes(q), list_offsets_encode,
                             list_offsets_decode, q);
    /* In a cluster the coordinator need not lead them: the rest each at
     * its leader. */
    if (rc == -NG_ENOT_LEADER) {
        rc = 0;
        for (uint32_t i = 0; rc == 0 && i < q->count; i++) {
            rc = list_wants(&q->items[i])
                     ? consumer_list_offset(c, q->items[i].topic, q->items[i].partition,
                                            q->timestamp_ms, &q->items[i].offset)
                     : 0;
        }
    }
    for (uint32_t i = 0; rc == 0 && i < q->count; i++) {
        rc = list_wants(&q->items[i]) ? -NG_EPROTO : 0; /* every one answered */
    }
    return rc;
}

/* Starts reading the owned partitions that are not read yet. On an error
 * nothing starts (tried again after a backoff). */
static int start_pending(nagare_consumer *c, struct cgroup *g, uint32_t unstarted)
{
    ASSERT(unstarted > 0);
    struct nagare_topic_partition *items = calloc(unstarted, sizeof(*items));
    int64_t *committed = calloc(unstarted, sizeof(*committed));
    int rc = items == NULL || committed == NULL ? -ENOMEM : 0;
    struct gquery q = {.g = g, .items = items};
    for (uint32_t i = 0; rc == 0 && i < g->owned_count; i++) {
        const struct gpart *p = &g->owned[i];
        if (!p->started) {
            ASSERT(q.count < unstarted);
            items[q.count++] = (struct nagare_topic_partition){
                .topic = g->topics[p->topic], .partition = p->partition, .offset = -1};
        }
    }
    ASSERT(rc != 0 || q.count == unstarted);
    rc = rc == 0 ? starts_find(c, &q, committed) : rc;
    for (uint32_t i = 0, k = 0; rc == 0 && i < g->owned_count; i++) {
        struct gpart *p = &g->owned[i];
        if (p->started) {
            continue;
        }
        struct nagare_topic_partition *it = &items[k];
        ASSERT(it->partition == p->partition && it->topic == g->topics[p->topic]);
        rc = consumer_part_add(c, it->topic, it->partition, it->offset, it->err);
        if (rc == 0) {
            p->started = true;
            p->committed = committed[k];
            g->unstarted--;
            /* a report that cannot be recorded (no memory) is all that is lost */
            (void)notes_add(&g->assigned, it->topic, it->partition, it->err < 0 ? -1 : it->offset,
                            it->err);
        }
        k++;
    }
    free(items);
    free(committed);
    return rc;
}

/* ---- heartbeats ---- */

static int hb_decode(struct cgroup *g, struct rd *body, uint16_t version)
{
    struct proto_heartbeat_resp out;
    struct proto_dec d;
    if (proto_heartbeat_resp_decode(body, version, &out, &d) != 0) {
        return -NG_EPROTO;
    }
    if (out.err != 0) {
        return out.err;
    }
    g->hb.generation = out.generation;
    g->hb.rebalancing = out.rebalancing;
    struct proto_topic t;
    while (proto_next_topic(&d, &t)) {
        int ti = topic_index(g, t.name);
        int32_t p;
        while (proto_next_partition_index(&d, &p)) {
            if (ti < 0 || p < 0) {
                continue; /* not subscribed: nothing to read there */
            }
            if (g->hb.count == GROUP_PARTS_LIMIT) {
                return -NG_EPROTO;
            }
            g->hb.grant[g->hb.count++] = (struct gtp){.topic = (uint16_t)ti, .partition = p};
        }
    }
    return 0;
}

/* Connection callback: records the answer for cgroup_tick(). */
static void hb_done(void *arg, int err, struct rd *body, uint16_t version)
{
    struct cgroup *g = arg;
    ASSERT(g->hb.inflight);
    g->hb.inflight = false;
    g->hb.ready = true;
    g->hb.count = 0;
    g->hb.err = err == 0 ? hb_decode(g, body, version) : err;
}

/* Sends a heartbeat at the generation of the last answer acted on. When
 * the connection cannot take it now, tries again a little later. */
static void hb_send(nagare_consumer *c, struct cgroup *g)
{
    ASSERT(!g->hb.inflight && !g->hb.ready && is_member(g));
    struct client_conn *conn = consumer_conn(c);
    struct wr w;
    uint32_t corr;
    if (!conn_ready(conn) || conn_version(conn, PROTO_API_HEARTBEAT) == UINT16_MAX ||
        conn_frame_begin(conn, GROUP_REQUEST_BYTES, &w, &corr) != 0) {
        g->hb_due_ms = clock_mono_ms() + CONN_BACKOFF_MS_FIRST;
        return;
    }
    uint16_t version = conn_version(conn, PROTO_API_HEARTBEAT);
    struct proto_heartbeat_req req = {
        .group = str_of(g->id), .member_id = str_of(g->member_id), .generation = g->generation};
    int rc = proto_heartbeat_req_encode(&w, version, corr, str_of(CONN_CLIENT_ID), &req);
    ASSERT(rc == 0); /* ids are bounded: GROUP_REQUEST_BYTES holds them */
    conn_frame_commit(conn, &w, corr, PROTO_API_HEARTBEAT, version, false, request_timeout_of(c),
                      hb_done, g);
    g->hb.inflight = true;
}

static int gtp_qsort_cmp(const void *a, const void *b)
{
    const struct gtp *x = a;
    const struct gtp *y = b;
    return gtp_cmp(x->topic, x->partition, y->topic, y->partition);
}

/* Makes owned the grant (both sorted: a merge into the scratch array):
 * revokes what it left out, adds what is new (not started yet). Returns
 * whether anything was revoked. */
static bool grant_apply(nagare_consumer *c, struct cgroup *g)
{
    const struct gtp *grant = g->hb.grant;
    uint32_t n = g->hb.count;
    qsort(g->hb.grant, n, sizeof(*g->hb.grant), gtp_qsort_cmp);
    bool revoked = false;
    uint32_t i = 0;
    uint32_t k = 0;
    uint32_t out = 0;
    while (i < g->owned_count || k < n) {
        const struct gpart *p = i < g->owned_count ? &g->owned[i] : NULL;
        int r = p == NULL ? 1
                : k == n  ? -1
                          : gtp_cmp(p->topic, p->partition, grant[k].topic, grant[k].partition);
        if (r < 0) {
            if (!p->started) {
                ASSERT(g->unstarted > 0);
                g->unstarted--; /* granted and taken back before it started */
            }
            part_revoke(c, g, p);
            revoked = true;
            i++;
            continue;
        }
        if (r == 0) {
            g->scratch[out++] = *p;
            i++;
        } else if (k == 0 || gtp_cmp(grant[k - 1].topic, grant[k - 1].partition, grant[k].topic,
                                     grant[k].partition) != 0) {
            g->scratch[out++] = (struct gpart){.topic = grant[k].topic,
                                               .partition = grant[k].partition,
                                               .committed = -1,
                                               .started = false};
            g->unstarted++;
        }
        k++;
    }
    ASSERT(out <= GROUP_PARTS_LIMIT);
    struct gpart *old = g->owned;
    g->owned = g->scratch;
    g->scratch = old;
    g->owned_count = out;
    return revoked;
}

/* Acts on a heartbeat answer. */
static void hb_apply(nagare_consumer *c, struct cgroup *g)
{
    ASSERT(g->hb.ready);
    g->hb.ready = false;
    int64_t now = clock_mono_ms();
    if (!is_member(g)) {
        return; /* for a member id given up since */
    }
    if (g->hb.err == -NG_EUNKNOWN_MEMBER) {
        member_lost(c, g);
        return;
    }
    if (coordinator_note(g, g->hb.err) != 0) {
        g->hb_due_ms = now + conn_backoff_next(&g->hb_backoff_ms);
        return;
    }
    g->hb_backoff_ms = 0;
    g->generation = g->hb.generation;
    bool revoked = grant_apply(c, g);
    /* A revocation is confirmed by the next heartbeat: send it at once so
     * the partition's next owner gets it soon. */
    uint32_t pace = g->hb.rebalancing ? HB_REBALANCING_MS : (uint32_t)g->session_ms / 3;
    g->hb_due_ms = revoked ? now : now + pace;
}

/* A heartbeat now, waiting for its answer (or the one in flight), acted
 * on. Returns 0, the heartbeat's error, or -NG_EDISCONNECTED when none
 * could be sent. */
static int hb_sync(nagare_consumer *c, struct cgroup *g)
{
    struct client_conn *conn = consumer_conn(c);
    int64_t deadline = consumer_deadline(c);
    if (!g->hb.inflight && !g->hb.ready && is_member(g)) {
        hb_send(c, g);
    }
    while (g->hb.inflight) {
        int64_t left = deadline - clock_mono_ms();
        int rc = left > 0 ? conn_poll(conn, (int)(left < 100 ? left : 100)) : -NG_ETIMEOUT;
        if (rc != 0) {
            return rc; /* the request itself times out with the connection */
        }
    }
    if (!g->hb.ready) {
        return is_member(g) ? -NG_EDISCONNECTED : -NG_EUNKNOWN_MEMBER;
    }
    int err = g->hb.err;
    hb_apply(c, g);
    return err;
}

/* ---- commits ---- */

/* The index of a topic string that is a cgroup.topics entry. */
static uint16_t topic_of(const struct cgroup *g, const char *topic)
{
    ptrdiff_t i = (topic - g->topics[0]) / (ptrdiff_t)sizeof(g->topics[0]);
    ASSERT(i >= 0 && (uint32_t)i < g->topic_count && g->topics[i] == topic);
    return (uint16_t)i;
}

/* A commit of every started partition whose position moved since its last
 * commit; *out NULL when there is none. Returns 0 or -ENOMEM. */
static int commit_build(nagare_consumer *c, struct cgroup *g, bool async, struct gcommit **out)
{
    *out = NULL;
    uint32_t n = 0;
    for (uint32_t pass = 0; pass < 2; pass++) {
        for (uint32_t i = 0; i < g->owned_count; i++) {
            const struct gpart *p = &g->owned[i];
            const char *topic = g->topics[p->topic];
            int64_t pos = -1;
            if (!p->started || nagare_consumer_position(c, topic, p->partition, &pos) != 0 ||
                pos < 0 || pos == p->committed) {
                continue;
            }
            if (pass == 1) {
                (*out)->items[(*out)->count++] = (struct nagare_topic_partition){
                    .topic = topic, .partition = p->partition, .offset = pos};
            } else {
                n++;
            }
        }
        if (pass == 0 && n == 0) {
            return 0;
        }
        if (pass == 0) {
            *out = calloc(1, sizeof(**out) + n * sizeof((*out)->items[0]));
            if (*out == NULL) {
                return -ENOMEM;
            }
            **out = (struct gcommit){.g = g, .async = async};
        }
    }
    ASSERT((*out)->count == n);
    return 0;
}

static size_t commit_bytes(const struct gcommit *gc)
{
    return GROUP_REQUEST_BYTES + (size_t)gc->g->topic_count * PROTO_TOPIC_BYTES_MAX +
           (size_t)gc->count * PROTO_COMMIT_PARTITION_BYTES;
}

static int commit_encode(void *arg, struct wr *w, uint32_t corr, uint16_t version)
{
    const struct gcommit *gc = arg;
    const struct cgroup *g = gc->g;
    struct proto_enc e;
    struct proto_offset_commit_req req = {
        .group = str_of(g->id), .member_id = str_of(g->member_id), .generation = g->generation};
    proto_offset_commit_req_begin(&e, w, version, corr, str_of(CONN_CLIENT_ID), &req);
    const char *open = NULL;
    for (uint32_t i = 0; i < gc->count; i++) {
        if (gc->items[i].topic != open) {
            open = gc->items[i].topic;
            proto_enc_topic(&e, str_of(open));
        }
        proto_offset_commit_req_partition(
            &e, &(struct proto_offset_commit_req_partition){.partition = gc->items[i].partition,
                                                            .offset = gc->items[i].offset});
    }
    return proto_enc_end(&e);
}

/* Reads per-partition results into the items and records what is now
 * committed. Returns 0 (gc->err: the first partition error) or -NG_EPROTO. */
static int commit_decode(void *arg, struct rd *body, uint16_t version)
{
    struct gcommit *gc = arg;
    struct cgroup *g = gc->g;
    struct proto_dec d;
    if (proto_offset_commit_resp_decode(body, version, &d) != 0) {
        return -NG_EPROTO;
    }
    uint32_t i = 0;
    struct proto_topic t;
    while (proto_next_topic(&d, &t)) {
        struct proto_partition_result r;
        while (proto_next_partition_result(&d, &r)) {
            struct nagare_topic_partition *it = &gc->items[i < gc->count ? i : 0];
            if (i++ == gc->count || !proto_str_eq(t.name, it->topic) ||
                r.partition != it->partition) {
                return -NG_EPROTO;
            }
            it->err = r.err;
            gc->err = gc->err != 0 ? gc->err : r.err;
            bool found;
            uint32_t at = owned_find(g, topic_of(g, it->topic), it->partition, &found);
            if (r.err == 0 && found) {
                g->owned[at].committed = it->offset;
            }
        }
    }
    return i == gc->count ? 0 : -NG_EPROTO;
}

/* A generation or membership problem: the next heartbeat says which. */
static void commit_fenced(struct cgroup *g, int err)
{
    if (err == -NG_EILLEGAL_GENERATION || err == -NG_EUNKNOWN_MEMBER) {
        g->hb_due_ms = 0;
    }
}

static void commit_done(void *arg, int err, struct rd *body, uint16_t version)
{
    struct gcommit *gc = arg;
    struct cgroup *g = gc->g;
    ASSERT(g->commits_inflight > 0);
    g->commits_inflight--;
    err = err == 0 ? commit_decode(gc, body, version) : err;
    if (coordinator_note(g, err) != 0) {
        gc->err = err;
        for (uint32_t i = 0; i < gc->count; i++) {
            gc->items[i].err = gc->items[i].err != 0 ? gc->items[i].err : err;
        }
    }
    commit_fenced(g, gc->err);
    gc->done = true;
    if (g->reports_tail != NULL) {
        g->reports_tail->next = gc;
    } else {
        g->reports_head = gc;
    }
    g->reports_tail = gc;
}

/* Sends a commit whose outcome goes to on_commit. Returns 0, -ENOMEM,
 * -NG_EBUSY (the connection cannot take it now). */
static int commit_async(nagare_consumer *c, struct cgroup *g)
{
    struct gcommit *gc;
    int rc = commit_build(c, g, true, &gc);
    if (rc != 0 || gc == NULL) {
        return rc;
    }
    struct client_conn *conn = consumer_conn(c);
    struct wr w;
    uint32_t corr;
    uint16_t version = conn_ready(conn) ? conn_version(conn, PROTO_API_OFFSET_COMMIT) : 0;
    rc = !conn_ready(conn) || version == UINT16_MAX ? -NG_EBUSY : 0;
    rc = rc == 0 ? conn_frame_begin(conn, commit_bytes(gc), &w, &corr) : rc;
    rc = rc == 0 ? commit_encode(gc, &w, corr, version) : rc;
    if (rc != 0) {
        free(gc);
        return rc;
    }
    conn_frame_commit(conn, &w, corr, PROTO_API_OFFSET_COMMIT, version, false,
                      request_timeout_of(c), commit_done, gc);
    g->commits_inflight++;
    return 0;
}

/* Commits and waits; when the generation moved, heartbeats (acting on the
 * answer) and tries once more with what is still held. */
static int commit_sync(nagare_consumer *c, struct cgroup *g)
{
    for (int attempt = 0;; attempt++) {
        struct gcommit *gc;
        int rc = commit_build(c, g, false, &gc);
        if (rc != 0 || gc == NULL) {
            return rc;
        }
        rc = consumer_group_call(c, PROTO_API_OFFSET_COMMIT, commit_bytes(gc), commit_encode,
                                 commit_decode, gc);
        rc = rc == 0 ? gc->err : api_err(coordinator_note(g, rc));
        free(gc);
        commit_fenced(g, rc);
        if (rc != -NG_EILLEGAL_GENERATION || attempt == 1) {
            return rc;
        }
        rc = hb_sync(c, g);
        if (rc != 0) {
            return rc;
        }
    }
}

static void reports_deliver(nagare_consumer *c, struct cgroup *g)
{
    const struct nagare_consumer_config *cfg = consumer_cfg(c);
    while (g->reports_head != NULL) {
        struct gcommit *gc = g->reports_head;
        g->reports_head = gc->next;
        if (g->reports_head == NULL) {
            g->reports_tail = NULL;
        }
        if (cfg->on_commit != NULL) {
            g->in_callback = true;
            cfg->on_commit(c, gc->err, gc->items, gc->count, cfg->opaque);
            g->in_callback = false;
        }
        free(gc);
    }
}

/* ---- from poll ---- */

/* A failure of the connection (the consumer reconnects; poll reports a
 * long outage itself), not of the request. */
static bool transient(int rc)
{
    return rc > -NG_ERR_FIRST || rc == -NG_EDISCONNECTED || rc == -NG_ETIMEOUT ||
           rc == -NG_ECLOSED || rc == -NG_EBUSY;
}

/* Joins again after the broker forgot the member. Returns a refusal for
 * poll to report (it is retried after a backoff either way). */
static int tick_join(nagare_consumer *c, struct cgroup *g, int64_t now)
{
    if (consumer_conn(c)->state != CONN_UP) {
        g->join_due_ms = now + CONN_BACKOFF_MS_FIRST; /* the consumer reconnects */
        return 0;
    }
    int rc = join(c, g);
    if (rc != 0) {
        g->join_due_ms = clock_mono_ms() + conn_backoff_next(&g->join_backoff_ms);
    }
    return transient(rc) ? 0 : rc;
}

static void tick_start(nagare_consumer *c, struct cgroup *g, int64_t now)
{
    if (consumer_conn(c)->state != CONN_UP) {
        g->start_due_ms = now + CONN_BACKOFF_MS_FIRST;
        return;
    }
    int rc = start_pending(c, g, g->unstarted);
    if (coordinator_note(g, rc) != 0) {
        g->start_due_ms = clock_mono_ms() + conn_backoff_next(&g->start_backoff_ms);
    } else {
        g->start_backoff_ms = 0;
    }
}

/* Sends the auto-commit when due (skipped while one is in flight). */
static void tick_commit(nagare_consumer *c, struct cgroup *g, int64_t now)
{
    g->commit_due_ms = now + consumer_cfg(c)->auto_commit_interval_ms;
    if (g->commits_inflight == 0) {
        /* -NG_EBUSY or -ENOMEM: the next interval tries again */
        (void)commit_async(c, g);
    }
}

/* Finds the coordinator again when an answer said it moved (with a
 * backoff while it cannot be found). Returns whether it is known. */
static bool coordinator_known(nagare_consumer *c, struct cgroup *g, int64_t now)
{
    if (g->coordinator_lost) {
        g->coordinator_lost = false;
        consumer_coordinator_lost(c);
    }
    if (now < g->find_due_ms) {
        return false;
    }
    if (consumer_coordinator_find(c) != 0) {
        g->find_due_ms = clock_mono_ms() + conn_backoff_next(&g->find_backoff_ms);
        return false;
    }
    g->find_backoff_ms = 0;
    return true;
}

int cgroup_tick(nagare_consumer *c, struct cgroup *g)
{
    ASSERT(!g->in_callback);
    int64_t now = clock_mono_ms();
    int rc = 0;
    if (g->hb.ready) {
        hb_apply(c, g);
    }
    bool known = coordinator_known(c, g, now);
    if (known && !is_member(g) && now >= g->join_due_ms) {
        rc = tick_join(c, g, now);
    }
    if (known && is_member(g) && g->unstarted > 0 && now >= g->start_due_ms) {
        tick_start(c, g, now);
    }
    notes_deliver(c, g);
    reports_deliver(c, g);
    if (known && is_member(g) && consumer_cfg(c)->auto_commit && now >= g->commit_due_ms) {
        tick_commit(c, g, now);
    }
    if (known && is_member(g) && !g->hb.inflight && !g->hb.ready && now >= g->hb_due_ms) {
        hb_send(c, g);
    }
    /* Answers are read by poll's wait; while records keep poll from
     * waiting, read them here now and then. */
    if ((g->hb.inflight || g->commits_inflight > 0) && now >= g->io_due_ms) {
        g->io_due_ms = now + IO_INTERVAL_MS;
        int prc = conn_poll(consumer_conn(c), 0);
        rc = rc != 0 ? rc : prc;
    }
    return rc;
}

int64_t cgroup_next_due_ms(const struct cgroup *g)
{
    if (g->hb.ready || g->reports_head != NULL) {
        return 0;
    }
    if (!is_member(g)) {
        return g->join_due_ms < g->find_due_ms ? g->find_due_ms : g->join_due_ms;
    }
    int64_t due = g->hb.inflight ? INT64_MAX : g->hb_due_ms;
    due = g->unstarted > 0 && g->start_due_ms < due ? g->start_due_ms : due;
    due = g->commit_due_ms < due ? g->commit_due_ms : due;
    return due < g->find_due_ms ? g->find_due_ms : due; /* nothing goes before it is found */
}

bool cgroup_in_callback(const struct cgroup *g) { return g->in_callback; }

/* Waits for the heartbeat and commits in flight (each ends by its answer
 * or its timeout). */
static void drain(nagare_consumer *c, struct cgroup *g)
{
    while (g->hb.inflight || g->commits_inflight > 0) {
        if (conn_poll(consumer_conn(c), 100) != 0) {
            conn_close(consumer_conn(c), -NG_ECLOSED); /* completes them */
        }
    }
    if (g->hb.ready) {
        g->hb.ready = false; /* no longer acted on: the member is leaving */
    }
}

/* Commit (auto-commit), wait, report, leave. Returns the first error. */
static int group_end(nagare_consumer *c, struct cgroup *g)
{
    int rc = 0;
    if (is_member(g) && consumer_cfg(c)->auto_commit && consumer_conn(c)->state != CONN_DOWN) {
        rc = commit_sync(c, g);
    }
    drain(c, g);
    reports_deliver(c, g);
    int lrc = consumer_conn(c)->state != CONN_DOWN ? leave(c, g) : 0;
    g->member_id[0] = '\0';
    return rc != 0 ? rc : lrc;
}

void cgroup_close(nagare_consumer *c, struct cgroup *g)
{
    /* Destroy cannot report: the broker drops a member that did not leave
     * after its session, and uncommitted records are read again. */
    (void)group_end(c, g);
}

void cgroup_free(struct cgroup *g)
{
    ASSERT(!g->hb.inflight && g->commits_inflight == 0);
    while (g->reports_head != NULL) {
        struct gcommit *gc = g->reports_head;
        g->reports_head = gc->next;
        free(gc);
    }
    free(g->revoked.v);
    free(g->assigned.v);
    free(g->owned);
    free(g->scratch);
    free(g->hb.grant);
    free(g);
}

/* ---- the public calls ---- */

/* The first join: at the coordinator, found first; while there is none
 * (a cluster making its __offsets topic, or electing its leader) tried
 * again until the request timeout. */
static int join_first(nagare_consumer *c, struct cgroup *g)
{
    int64_t deadline = consumer_deadline(c);
    uint32_t backoff_ms = 0;
    for (;;) {
        int rc = consumer_coordinator_find(c);
        rc = rc == 0 ? join(c, g) : rc;
        if (rc != -NG_ENOT_COORDINATOR || clock_mono_ms() >= deadline) {
            g->coordinator_lost = false;
            return rc;
        }
        consumer_coordinator_lost(c);
        (void)poll(NULL, 0, (int)conn_backoff_next(&backoff_ms));
    }
}

/* 1..249 bytes of printable ASCII (docs/protocol.md, "Group ids"). */
static bool group_id_ok(const char *id)
{
    size_t n = id != NULL ? strnlen(id, PROTO_GROUP_ID_BYTES_MAX + 1) : 0;
    if (n == 0 || n > PROTO_GROUP_ID_BYTES_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (id[i] < 0x20 || id[i] > 0x7e) {
            return false;
        }
    }
    return true;
}

static int subscribe_check(const char *group, const char *const *topics, size_t topic_count)
{
    if (!group_id_ok(group)) {
        return -NG_EBADNAME;
    }
    if (topics == NULL || topic_count == 0 || topic_count > GROUP_TOPICS_LIMIT) {
        return -NG_EBADARG;
    }
    for (size_t i = 0; i < topic_count; i++) {
        const char *t = topics[i];
        if (t == NULL || !proto_topic_name_valid(t, strnlen(t, PROTO_TOPIC_NAME_BYTES_MAX + 1))) {
            return -NG_EBADNAME;
        }
    }
    return 0;
}

/* A group state for (group, topics), duplicates dropped; not joined. */
static struct cgroup *cgroup_new(const nagare_consumer *c, const char *group,
                                 const char *const *topics, size_t topic_count)
{
    struct cgroup *g = calloc(1, sizeof(*g));
    if (g == NULL) {
        return NULL;
    }
    g->owned = calloc(GROUP_PARTS_LIMIT, sizeof(*g->owned));
    g->scratch = calloc(GROUP_PARTS_LIMIT, sizeof(*g->scratch));
    g->hb.grant = calloc(GROUP_PARTS_LIMIT, sizeof(*g->hb.grant));
    if (g->owned == NULL || g->scratch == NULL || g->hb.grant == NULL) {
        cgroup_free(g);
        return NULL;
    }
    strcpy(g->id, group);
    g->generation = -1;
    g->session_ms = (int32_t)consumer_cfg(c)->session_timeout_ms;
    for (size_t i = 0; i < topic_count; i++) {
        if (topic_index(g, str_of(topics[i])) < 0) {
            strcpy(g->topics[g->topic_count++], topics[i]);
        }
    }
    g->commit_due_ms = clock_mono_ms() + consumer_cfg(c)->auto_commit_interval_ms;
    return g;
}

int nagare_consumer_subscribe(nagare_consumer *c, const char *group, const char *const *topics,
                              size_t topic_count)
{
    ASSERT(c != NULL);
    struct cgroup **slot = consumer_group_slot(c);
    if (*slot != NULL && (*slot)->in_callback) {
        return -NG_EBADARG;
    }
    int rc = subscribe_check(group, topics, topic_count);
    if (rc != 0) {
        return rc;
    }
    if (*slot != NULL) {
        /* Replaced: its commit or leave failing only means the broker
         * drops the old member after its session timeout. */
        int old = nagare_consumer_unsubscribe(c);
        (void)old;
    }
    consumer_parts_clear(c);
    struct cgroup *g = cgroup_new(c, group, topics, topic_count);
    if (g == NULL) {
        return -ENOMEM;
    }
    rc = join_first(c, g);
    if (rc != 0) {
        cgroup_free(g);
        return rc;
    }
    *slot = g;
    return 0;
}

int nagare_consumer_unsubscribe(nagare_consumer *c)
{
    ASSERT(c != NULL);
    struct cgroup **slot = consumer_group_slot(c);
    struct cgroup *g = *slot;
    if (g == NULL) {
        return 0;
    }
    if (g->in_callback) {
        return -NG_EBADARG;
    }
    int rc = group_end(c, g);
    for (uint32_t i = 0; i < g->owned_count; i++) {
        part_revoke(c, g, &g->owned[i]);
    }
    g->owned_count = 0;
    notes_deliver(c, g);
    consumer_parts_clear(c);
    cgroup_free(g);
    *slot = NULL;
    return rc;
}

int nagare_consumer_commit(nagare_consumer *c, bool async)
{
    ASSERT(c != NULL);
    struct cgroup *g = *consumer_group_slot(c);
    if (g == NULL || g->in_callback) {
        return -NG_EBADARG;
    }
    if (!is_member(g)) {
        return -NG_EUNKNOWN_MEMBER; /* joining again: its partitions restart anyway */
    }
    return async ? commit_async(c, g) : commit_sync(c, g);
}
