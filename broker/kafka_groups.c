/*
 * broker/kafka_groups.c — Kafka's group APIs on the Kafka listener
 * (broker/kafka_serve.h): FindCoordinator, the classic group membership
 * (broker/kgroup.h) and committed offsets, which live in the same offsets
 * store as nagare's groups' (broker/offsets.h): a group's name is one
 * group whichever protocol its members speak, and members of both at once
 * are refused (INCONSISTENT_GROUP_PROTOCOL).
 *
 * Not kept: a commit's metadata string (OffsetFetch answers ""), and the
 * committed leader epoch (-1).
 */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "broker/acl_serve.h"
#include "broker/kafka_serve.h"
#include "broker/kgroup.h"
#include "broker/server.h"
#include "net/kafka/errors.h"

/* Kafka's groups with members: at most SERVER_GROUPS_MAX, as nagare's. */
struct kafka_groups {
    struct kgroup **v; /* count of them, unordered */
    uint32_t count;
    uint32_t cap;
};

static int64_t now_ms(const struct server *s) { return (int64_t)loop_now_ms(&s->loop); }

static struct kgroup_str kstr(struct kw_str s)
{
    return (struct kgroup_str){s.len > 0 ? s.ptr : "", s.len > 0 ? (uint32_t)s.len : 0};
}

static struct kw_str wstr(const char *c) { return kw_str_make(c); }

/* A Kafka code for an error of the group apis: the group's end (a
 * shutdown) is the coordinator's absence, which clients wait out. */
static int16_t group_err(int rc)
{
    return rc == -NG_ECLOSED ? KAFKA_ERR_COORDINATOR_NOT_AVAILABLE : kafka_err_from(rc);
}

/* A group id as a C string: 0, or the Kafka error for it (a bad id, or
 * req's principal may not do op on the group). */
static int16_t group_id_take(const struct server *s, struct loop_req *req, int8_t op,
                             struct kw_str id, char out[KGROUP_ID_BYTES_MAX + 1])
{
    if (id.len <= 0 || id.len > KGROUP_ID_BYTES_MAX) {
        return KAFKA_ERR_INVALID_GROUP_ID;
    }
    int16_t refused = acl_serve_kafka(s, req, PROTO_ACL_RESOURCE_GROUP, id, op);
    if (refused != 0) {
        return refused;
    }
    memcpy(out, id.ptr, (size_t)id.len);
    out[id.len] = '\0';
    return KAFKA_ERR_NONE;
}

/* ---- the groups ---- */

static struct kgroup *group_find(const struct server *s, const char *id)
{
    const struct kafka_groups *gs = s->kafka_groups;
    for (uint32_t i = 0; gs != NULL && i < gs->count; i++) {
        if (strcmp(gs->v[i]->id, id) == 0) {
            return gs->v[i];
        }
    }
    return NULL;
}

const struct kgroup *kafka_groups_find(const struct server *s, const char *id)
{
    return group_find(s, id);
}

const struct kgroup *kafka_groups_at(const struct server *s, uint32_t i)
{
    const struct kafka_groups *gs = s->kafka_groups;
    return gs != NULL && i < gs->count ? gs->v[i] : NULL;
}

bool kafka_groups_active(const struct server *s, const char *id)
{
    const struct kgroup *g = group_find(s, id);
    return g != NULL && g->member_count > 0;
}

static void join_done(void *arg, void *waiter, int err, const struct kgroup_join_answer *a);
static void sync_done(void *arg, void *waiter, int err, const uint8_t *assignment, uint32_t len);

static const struct kgroup_ops group_ops = {.join_done = join_done, .sync_done = sync_done};

static struct kgroup *group_get(struct server *s, const char *id)
{
    struct kgroup *g = group_find(s, id);
    struct kafka_groups *gs = s->kafka_groups;
    if (g != NULL) {
        return g;
    }
    if (gs->count == SERVER_GROUPS_MAX) {
        log_warn("kafka: group %s refused: %u Kafka groups with members already", id,
                 SERVER_GROUPS_MAX);
        return NULL;
    }
    if (gs->count == gs->cap) {
        uint32_t cap = gs->cap == 0 ? 8 : gs->cap * 2;
        struct kgroup **v = realloc(gs->v, cap * sizeof(*v));
        if (v == NULL) {
            return NULL;
        }
        gs->v = v;
        gs->cap = cap;
    }
    g = malloc(sizeof(*g));
    if (g == NULL) {
        return NULL;
    }
    /* Member ids of an earlier life of the broker are never given again. */
    kgroup_init(g, id, strlen(id), s->cfg.kafka_group_initial_delay_ms,
                (uint64_t)clock_wall_ms() << 20, &group_ops, s);
    gs->v[gs->count++] = g;
    return g;
}

static void group_drop(struct server *s, uint32_t i)
{
    struct kafka_groups *gs = s->kafka_groups;
    kgroup_fini(gs->v[i]);
    free(gs->v[i]);
    gs->v[i] = gs->v[--gs->count];
}

/* Drops g when it has nobody and holds nothing. */
static void group_drop_if_empty(struct server *s, struct kgroup *g)
{
    struct kafka_groups *gs = s->kafka_groups;
    for (uint32_t i = 0; i < gs->count; i++) {
        if (gs->v[i] == g && g->member_count == 0 && g->pending_count == 0) {
            group_drop(s, i);
            return;
        }
    }
}

int kafka_groups_open(struct server *s)
{
    s->kafka_groups = calloc(1, sizeof(*s->kafka_groups));
    return s->kafka_groups != NULL ? 0 : -ENOMEM;
}

void kafka_groups_close(struct server *s)
{
    struct kafka_groups *gs = s->kafka_groups;
    if (gs == NULL) {
        return;
    }
    while (gs->count > 0) {
        group_drop(s, gs->count - 1);
    }
    free(gs->v);
    free(gs);
    s->kafka_groups = NULL;
}

void kafka_groups_tick(struct server *s)
{
    struct kafka_groups *gs = s->kafka_groups;
    for (uint32_t i = gs != NULL ? gs->count : 0; i-- > 0;) {
        struct kgroup *g = gs->v[i];
        (void)kgroup_tick(g, now_ms(s));
        if (g->member_count == 0 && g->pending_count == 0) {
            group_drop(s, i);
        }
    }
}

/* Whether this broker coordinates groups now (a cluster: the leader of
 * __offsets/0; groups_refuse() says, for nagare's group apis too). */
static bool coordinates(struct server *s) { return !groups_refuse(s, PROTO_API_JOIN_GROUP); }

/* ---- FindCoordinator ---- */

/* The coordinator of key_type (0: a group) as this broker sees it: itself,
 * or in a cluster the leader of __offsets/0, at the Kafka address it
 * registered. */
static int16_t coordinator(struct server *s, int8_t key_type, int32_t *node, const char **host,
                           int32_t *port)
{
    *node = -1;
    *host = "";
    *port = -1;
    if (key_type != 0) {
        return KAFKA_ERR_COORDINATOR_NOT_AVAILABLE; /* transactions: none here */
    }
    int32_t id = s->broker_id;
    if (!coordinates(s)) { /* (which asks the cluster for __offsets when it has none) */
        /* A cluster: the leader of __offsets/0 coordinates every group. */
        const struct cluster_partition *p = cluster_view_partition(
            s->view, PROTO_OFFSETS_TOPIC, sizeof(PROTO_OFFSETS_TOPIC) - 1, 0);
        id = p != NULL ? p->leader : CLUSTER_LEADER_NONE;
    }
    if (id == CLUSTER_LEADER_NONE || kafka_serve_broker(s, id, host, port) != 0) {
        return KAFKA_ERR_COORDINATOR_NOT_AVAILABLE; /* not yet: the client asks again */
    }
    *node = id;
    return KAFKA_ERR_NONE;
}

/* coordinator() for a key req's principal may describe (a group's). */
static int16_t coordinator_for(struct server *s, struct loop_req *req, int8_t key_type,
                               struct kw_str key, int32_t *node, const char **host, int32_t *port)
{
    int16_t refused = key_type == 0 ? acl_serve_kafka(s, req, PROTO_ACL_RESOURCE_GROUP, key,
                                                      PROTO_ACL_OP_DESCRIBE)
                                    : 0;
    if (refused != 0) {
        *node = -1;
        *host = "";
        *port = -1;
        return refused;
    }
    return coordinator(s, key_type, node, host, port);
}

void kafka_find_coordinator(struct server *s, struct loop_req *req,
                            const struct kafka_req_header *h, struct rd *body, struct kw_arena *a)
{
    struct kafka_find_coordinator_request in;
    int rc = kafka_find_coordinator_request_decode(body, h->api_version, a, &in);
    if (rc != 0) {
        loop_req_fail(req);
        return;
    }
    struct kafka_find_coordinator_response out;
    kafka_find_coordinator_response_init(&out);
    const char *host;
    if (h->api_version < 4) {
        out.error_code =
            coordinator_for(s, req, in.key_type, in.key, &out.node_id, &host, &out.port);
        out.host = wstr(host);
    } else {
        int32_t n = in.coordinator_keys.count > 0 ? in.coordinator_keys.count : 0;
        struct kafka_find_coordinator_response_coordinator *v =
            kw_arena_alloc(a, (size_t)n * sizeof(*v) + 1);
        if (v == NULL) {
            loop_req_fail(req);
            return;
        }
        for (int32_t i = 0; i < n; i++) {
            v[i] = (struct kafka_find_coordinator_response_coordinator){
                .key = in.coordinator_keys.items[i], .error_message = KW_STR_NULL};
            v[i].error_code = coordinator_for(s, req, in.key_type, in.coordinator_keys.items[i],
                                              &v[i].node_id, &host, &v[i].port);
            v[i].host = wstr(host);
        }
        out.coordinators.items = v;
        out.coordinators.count = n;
    }
    kafka_serve_respond(req, h, &kafka_find_coordinator_response_msg, &out);
}

/* ---- JoinGroup, SyncGroup ---- */

/* A JoinGroup or SyncGroup the group holds until it can answer. */
struct waiter {
    struct loop_req *req;
    struct kafka_req_header h; /* client_id points into req's frame */
};

static struct waiter *waiter_new(struct loop_req *req, const struct kafka_req_header *h)
{
    struct waiter *w = malloc(sizeof(*w));
    if (w != NULL) {
        *w = (struct waiter){.req = req, .h = *h};
    }
    return w;
}

/* A member's group.instance.id as Kafka sends it: null for a dynamic one. */
static struct kw_str instance_of(const struct kgroup_member *m)
{
    return m->instance_id[0] != '\0' ? wstr(m->instance_id) : KW_STR_NULL;
}

static void join_answer(struct loop_req *req, const struct kafka_req_header *h, int16_t err,
                        const char *member_id)
{
    struct kafka_join_group_response out;
    kafka_join_group_response_init(&out);
    out.error_code = err;
    out.member_id = wstr(member_id != NULL ? member_id : "");
    kafka_serve_respond(req, h, &kafka_join_group_response_msg, &out);
}

static void join_done(void *arg, void *waiter, int err, const struct kgroup_join_answer *a)
{
    (void)arg;
    struct waiter *w = waiter;
    if (err != 0) {
        join_answer(w->req, &w->h, group_err(err), NULL);
        free(w);
        return;
    }
    struct kafka_join_group_response out;
    kafka_join_group_response_init(&out);
    out.generation_id = a->generation;
    out.protocol_type = wstr(a->protocol_type);
    out.protocol_name = wstr(a->protocol_name);
    out.leader = wstr(a->leader_id);
    out.member_id = wstr(a->member_id);
    struct kafka_join_group_response_member *v = NULL;
    if (a->member_count > 0) {
        v = calloc(a->member_count, sizeof(*v)); /* not the arena: a callback */
        if (v == NULL) {
            join_answer(w->req, &w->h, KAFKA_ERR_UNKNOWN_SERVER, NULL);
            free(w);
            return;
        }
        for (uint32_t i = 0; i < a->member_count; i++) {
            uint32_t len;
            const uint8_t *md = kgroup_member_metadata(&a->members[i], a->protocol_name, &len);
            v[i].member_id = wstr(a->members[i].id);
            v[i].group_instance_id = instance_of(&a->members[i]);
            v[i].metadata = (struct kw_bytes){md != NULL ? md : (const uint8_t *)"", (int32_t)len};
        }
    }
    out.members.items = v;
    out.members.count = (int32_t)a->member_count;
    kafka_serve_respond(w->req, &w->h, &kafka_join_group_response_msg, &out);
    free(v);
    free(w);
}

/* The join's fields in kgroup's terms, or the Kafka error refusing it. */
static int16_t join_req(const struct kafka_join_group_request *in, int16_t version,
                        struct kgroup_protocol_in *ps, struct kgroup_join_req *out)
{
    if (in->member_id.len > KGROUP_MEMBER_ID_BYTES_MAX ||
        in->group_instance_id.len > KGROUP_MEMBER_ID_BYTES_MAX ||
        in->protocol_type.len > KGROUP_NAME_BYTES_MAX) {
        return KAFKA_ERR_INVALID_REQUEST;
    }
    if (in->protocols.count < 1 || in->protocol_type.len <= 0) {
        return KAFKA_ERR_INCONSISTENT_GROUP_PROTOCOL; /* as Kafka answers either */
    }
    if (in->protocols.count > (int32_t)KGROUP_PROTOCOLS_MAX) {
        return KAFKA_ERR_INVALID_REQUEST;
    }
    if (in->session_timeout_ms < (int32_t)KGROUP_SESSION_MS_MIN ||
        in->session_timeout_ms > (int32_t)KGROUP_SESSION_MS_MAX) {
        return KAFKA_ERR_INVALID_SESSION_TIMEOUT;
    }
    for (int32_t k = 0; k < in->protocols.count; k++) {
        const struct kafka_join_group_request_protocol *p = &in->protocols.items[k];
        if (p->name.len < 0 || p->name.len > KGROUP_NAME_BYTES_MAX) {
            return KAFKA_ERR_INVALID_REQUEST;
        }
        ps[k] = (struct kgroup_protocol_in){
            .name = kstr(p->name),
            .metadata = p->metadata.ptr,
            .metadata_len = p->metadata.len > 0 ? (uint32_t)p->metadata.len : 0};
    }
    /* v0 has no rebalance timeout: the session timeout is both (KIP-62). */
    int32_t rebalance =
        in->rebalance_timeout_ms > 0 ? in->rebalance_timeout_ms : in->session_timeout_ms;
    *out = (struct kgroup_join_req){.member_id = kstr(in->member_id),
                                    .instance_id = kstr(in->group_instance_id),
                                    .protocol_type = kstr(in->protocol_type),
                                    .protocols = ps,
                                    .protocol_count = (uint32_t)in->protocols.count,
                                    .session_ms = (uint32_t)in->session_timeout_ms,
                                    .rebalance_ms = (uint32_t)rebalance,
                                    .member_id_required = version >= 4};
    return KAFKA_ERR_NONE;
}

void kafka_join_group(struct server *s, struct loop_req *req, const struct kafka_req_header *h,
                      struct rd *body, struct kw_arena *a)
{
    struct kafka_join_group_request in;
    if (kafka_join_group_request_decode(body, h->api_version, a, &in) != 0) {
        loop_req_fail(req);
        return;
    }
    char id[KGROUP_ID_BYTES_MAX + 1];
    struct kgroup_protocol_in ps[KGROUP_PROTOCOLS_MAX];
    struct kgroup_join_req jr;
    int16_t err = group_id_take(s, req, PROTO_ACL_OP_READ, in.group_id, id);
    err = err == 0 ? join_req(&in, h->api_version, ps, &jr) : err;
    if (err == 0 && !coordinates(s)) {
        err = KAFKA_ERR_NOT_COORDINATOR;
    }
    if (err == 0 && groups_active(s, id)) {
        err = KAFKA_ERR_INCONSISTENT_GROUP_PROTOCOL; /* nagare's members hold it */
    }
    if (err != 0) {
        join_answer(req, h, err, NULL);
        return;
    }
    char client_host[INET6_ADDRSTRLEN + 1] = "/"; /* Kafka's form: "/127.0.0.1" */
    if (loop_req_peer(req, client_host + 1, sizeof(client_host) - 1) != 0) {
        client_host[0] = '\0'; /* gone already: its join is answered nowhere */
    }
    jr.client_id = kstr(h->client_id.len <= KGROUP_NAME_BYTES_MAX ? h->client_id : KW_STR_NULL);
    jr.client_host = (struct kgroup_str){client_host, (uint32_t)strlen(client_host)};
    struct kgroup *g = group_get(s, id);
    struct waiter *w = g != NULL ? waiter_new(req, h) : NULL;
    if (w == NULL) {
        join_answer(req, h, KAFKA_ERR_COORDINATOR_NOT_AVAILABLE, NULL);
        return;
    }
    char member_id[KGROUP_MEMBER_ID_BYTES_MAX + 1] = "";
    int rc = kgroup_join(g, now_ms(s), &jr, w, member_id);
    if (rc != 0) {
        join_answer(req, h, group_err(rc), member_id); /* MEMBER_ID_REQUIRED names it */
        free(w);
        group_drop_if_empty(s, g);
    }
}

static void sync_answer(struct loop_req *req, const struct kafka_req_header *h,
                        const struct kgroup *g, int16_t err, const uint8_t *assignment,
                        uint32_t len)
{
    struct kafka_sync_group_response out;
    kafka_sync_group_response_init(&out);
    out.error_code = err;
    if (g != NULL && err == KAFKA_ERR_NONE) { /* v5 names them */
        out.protocol_type = wstr(g->protocol_type);
        out.protocol_name = wstr(g->protocol_name);
    }
    out.assignment =
        (struct kw_bytes){assignment != NULL ? assignment : (const uint8_t *)"", (int32_t)len};
    kafka_serve_respond(req, h, &kafka_sync_group_response_msg, &out);
}

static void sync_done(void *arg, void *waiter, int err, const uint8_t *assignment, uint32_t len)
{
    struct waiter *w = waiter;
    sync_answer(w->req, &w->h, arg, group_err(err), assignment, len);
    free(w);
}

/* The group a request names, or the Kafka error why there is none to
 * ask: a bad id, not the coordinator, or no such group (its members would
 * be unknown). */
static int16_t group_of(struct server *s, struct loop_req *req, struct kw_str id,
                        struct kgroup **out)
{
    char name[KGROUP_ID_BYTES_MAX + 1];
    int16_t err = group_id_take(s, req, PROTO_ACL_OP_READ, id, name);
    if (err != 0) {
        return err;
    }
    if (!coordinates(s)) {
        return KAFKA_ERR_NOT_COORDINATOR;
    }
    *out = group_find(s, name);
    return *out != NULL ? KAFKA_ERR_NONE : KAFKA_ERR_UNKNOWN_MEMBER_ID;
}

void kafka_sync_group(struct server *s, struct loop_req *req, const struct kafka_req_header *h,
                      struct rd *body, struct kw_arena *a)
{
    struct kafka_sync_group_request in;
    if (kafka_sync_group_request_decode(body, h->api_version, a, &in) != 0) {
        loop_req_fail(req);
        return;
    }
    struct kgroup *g = NULL;
    int16_t err = group_of(s, req, in.group_id, &g);
    int32_t n = in.assignments.count > 0 ? in.assignments.count : 0;
    struct kgroup_assignment_in *as =
        err == 0 ? kw_arena_alloc(a, (size_t)n * sizeof(*as) + 1) : NULL;
    struct waiter *w = as != NULL ? waiter_new(req, h) : NULL;
    if (err == 0 && w == NULL) {
        err = KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
    }
    if (err != 0) {
        sync_answer(req, h, NULL, err, NULL, 0);
        return;
    }
    for (int32_t i = 0; i < n; i++) {
        const struct kafka_sync_group_request_assignment *x = &in.assignments.items[i];
        as[i] = (struct kgroup_assignment_in){
            .member_id = kstr(x->member_id),
            .assignment = x->assignment.ptr,
            .assignment_len = x->assignment.len > 0 ? (uint32_t)x->assignment.len : 0};
    }
    int rc =
        kgroup_sync(g, now_ms(s), kstr(in.member_id), kstr(in.group_instance_id), in.generation_id,
                    kstr(in.protocol_type), kstr(in.protocol_name), as, (uint32_t)n, w);
    if (rc != 0) {
        sync_answer(req, h, NULL, group_err(rc), NULL, 0);
        free(w);
    }
}

/* ---- Heartbeat, LeaveGroup ---- */

void kafka_heartbeat(struct server *s, struct loop_req *req, const struct kafka_req_header *h,
                     struct rd *body, struct kw_arena *a)
{
    struct kafka_heartbeat_request in;
    if (kafka_heartbeat_request_decode(body, h->api_version, a, &in) != 0) {
        loop_req_fail(req);
        return;
    }
    struct kgroup *g = NULL;
    int16_t err = group_of(s, req, in.group_id, &g);
    if (err == 0) {
        err = group_err(kgroup_heartbeat(g, now_ms(s), kstr(in.member_id),
                                         kstr(in.group_instance_id), in.generation_id));
    }
    struct kafka_heartbeat_response out;
    kafka_heartbeat_response_init(&out);
    out.error_code = err;
    kafka_serve_respond(req, h, &kafka_heartbeat_response_msg, &out);
}

void kafka_leave_group(struct server *s, struct loop_req *req, const struct kafka_req_header *h,
                       struct rd *body, struct kw_arena *a)
{
    struct kafka_leave_group_request in;
    if (kafka_leave_group_request_decode(body, h->api_version, a, &in) != 0) {
        loop_req_fail(req);
        return;
    }
    struct kgroup *g = NULL;
    int16_t err = group_of(s, req, in.group_id, &g);
    struct kafka_leave_group_response out;
    kafka_leave_group_response_init(&out);
    if (h->api_version < 3) {
        err = err == 0
                  ? group_err(kgroup_leave(g, now_ms(s), kstr(in.member_id), kstr(KW_STR_NULL)))
                  : err;
    } else {
        /* v3+: a batch of members, each by member id or instance id,
         * answered one by one (the group's own error above them). */
        int32_t n = err == 0 && in.members.count > 0 ? in.members.count : 0;
        struct kafka_leave_group_response_member_response *v =
            kw_arena_alloc(a, (size_t)n * sizeof(*v) + 1);
        if (v == NULL) {
            loop_req_fail(req);
            return;
        }
        for (int32_t i = 0; i < n; i++) {
            const struct kafka_leave_group_request_member_identity *m = &in.members.items[i];
            v[i] = (struct kafka_leave_group_response_member_response){
                .member_id = m->member_id,
                .group_instance_id = m->group_instance_id,
                .error_code = group_err(
                    kgroup_leave(g, now_ms(s), kstr(m->member_id), kstr(m->group_instance_id)))};
        }
        out.members.items = v;
        out.members.count = n;
    }
    if (g != NULL) {
        group_drop_if_empty(s, g);
    }
    out.error_code = err;
    kafka_serve_respond(req, h, &kafka_leave_group_response_msg, &out);
}

/* ---- OffsetCommit ---- */

/* One partition of a commit: written with the others, or refused. */
struct commit_part {
    uint32_t topic; /* index into the request's topics */
    int32_t partition;
    int16_t err;
    bool written;
};

/* An OffsetCommit in flight: the store's commit, then what the answer
 * needs (the request's topic names point into its frame, which lives
 * until the answer). */
struct commit_job {
    struct offsets_commit c; /* first: commit_done() casts back */
    struct loop_req *req;
    struct kafka_req_header h;
    struct kw_str *topics;
    uint32_t topic_count;
    struct commit_part *parts;
    uint32_t part_count;
    struct offsets_item *items;
    char *names; /* NUL-terminated copies for the store */
};

static void commit_job_free(struct commit_job *j)
{
    free(j->topics);
    free(j->parts);
    free(j->items);
    free(j->names);
    free(j);
}

static void commit_answer(struct commit_job *j)
{
    struct kafka_offset_commit_response out;
    kafka_offset_commit_response_init(&out);
    struct kafka_offset_commit_response_topic *ts = calloc(j->topic_count + 1, sizeof(*ts));
    struct kafka_offset_commit_response_partition *ps = calloc(j->part_count + 1, sizeof(*ps));
    if (ts == NULL || ps == NULL) {
        free(ts);
        free(ps);
        loop_req_fail(j->req);
        commit_job_free(j);
        return;
    }
    uint32_t k = 0;
    for (uint32_t t = 0; t < j->topic_count; t++) {
        ts[t].name = j->topics[t];
        ts[t].partitions.items = &ps[k];
        while (k < j->part_count && j->parts[k].topic == t) {
            ps[k] = (struct kafka_offset_commit_response_partition){
                .partition_index = j->parts[k].partition, .error_code = j->parts[k].err};
            ts[t].partitions.count++;
            k++;
        }
    }
    out.topics.items = ts;
    out.topics.count = (int32_t)j->topic_count;
    kafka_serve_respond(j->req, &j->h, &kafka_offset_commit_response_msg, &out);
    free(ts);
    free(ps);
    commit_job_free(j);
}

static void commit_done(struct offsets_commit *c, int rc)
{
    struct commit_job *j = (struct commit_job *)c;
    for (uint32_t i = 0; i < j->part_count; i++) {
        if (j->parts[i].written) {
            j->parts[i].err = group_err(rc);
        }
    }
    commit_answer(j);
}

/* Whether the commit may go, for every partition: the Kafka error when
 * not. */
static int16_t commit_allowed(struct server *s, const struct kafka_offset_commit_request *in,
                              const char *id)
{
    if (!coordinates(s)) {
        return KAFKA_ERR_NOT_COORDINATOR;
    }
    if (groups_active(s, id)) {
        return KAFKA_ERR_INCONSISTENT_GROUP_PROTOCOL;
    }
    struct kgroup *g = group_find(s, id);
    if (g == NULL) {
        /* No members: commits from outside a group only (Kafka's simple
         * consumers and tools); a member's of a group unknown here is
         * from an earlier generation. */
        return in->generation_id_or_member_epoch < 0 ? KAFKA_ERR_NONE
                                                     : KAFKA_ERR_ILLEGAL_GENERATION;
    }
    return group_err(kgroup_commit_check(g, now_ms(s), kstr(in->member_id),
                                         kstr(in->group_instance_id),
                                         in->generation_id_or_member_epoch));
}

/* Fills j's parts from the request: each refused on its own (an unknown
 * topic or partition) or to be written. Returns how many are to be
 * written. A negative offset is taken, as Kafka takes it (KafkaJS's
 * resetOffsets commits -2 for earliest, -1 for latest; its seek() commits
 * the offset sought), and forgets the partition's offset (the store's -1):
 * every client reads a negative committed offset as none and starts where
 * its own reset policy says, so OffsetFetch answers -1 for it. */
static uint32_t commit_plan(struct server *s, struct commit_job *j,
                            const struct kafka_offset_commit_request *in, int16_t err)
{
    uint32_t k = 0, written = 0;
    size_t at = 0;
    for (int32_t t = 0; t < in->topics.count; t++) {
        const struct kafka_offset_commit_request_topic *rt = &in->topics.items[t];
        j->topics[t] = rt->name;
        int16_t refused = err == 0 ? acl_serve_kafka(s, j->req, PROTO_ACL_RESOURCE_TOPIC, rt->name,
                                                     PROTO_ACL_OP_READ)
                                   : 0;
        const struct server_topic *st =
            refused == 0 && rt->name.len > 0 && rt->name.len <= PROTO_TOPIC_NAME_BYTES_MAX
                ? server_topic_find(s, (struct proto_str){rt->name.ptr, rt->name.len})
                : NULL;
        if (st != NULL) {
            memcpy(j->names + at, rt->name.ptr, (size_t)rt->name.len);
            j->names[at + (size_t)rt->name.len] = '\0';
        }
        for (int32_t p = 0; p < rt->partitions.count; p++, k++) {
            const struct kafka_offset_commit_request_partition *rp = &rt->partitions.items[p];
            struct commit_part *cp = &j->parts[k];
            *cp = (struct commit_part){.topic = (uint32_t)t,
                                       .partition = rp->partition_index,
                                       .err = err != 0 ? err : refused};
            if (cp->err == 0 && (st == NULL || rp->partition_index < 0 ||
                                 rp->partition_index >= st->cfg.partitions)) {
                cp->err = KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION;
            }
            if (cp->err == 0) {
                cp->written = true;
                j->items[written++] = (struct offsets_item){
                    .topic = j->names + at,
                    .partition = rp->partition_index,
                    .offset = rp->committed_offset < 0 ? -1 : rp->committed_offset};
            }
        }
        at += st != NULL ? (size_t)rt->name.len + 1 : 0;
    }
    return written;
}

void kafka_offset_commit(struct server *s, struct loop_req *req, const struct kafka_req_header *h,
                         struct rd *body, struct kw_arena *a)
{
    struct kafka_offset_commit_request in;
    if (kafka_offset_commit_request_decode(body, h->api_version, a, &in) != 0) {
        loop_req_fail(req);
        return;
    }
    uint32_t topics = in.topics.count > 0 ? (uint32_t)in.topics.count : 0;
    uint32_t parts = 0;
    size_t name_bytes = 0;
    for (uint32_t t = 0; t < topics; t++) {
        parts += in.topics.items[t].partitions.count > 0
                     ? (uint32_t)in.topics.items[t].partitions.count
                     : 0;
        name_bytes += in.topics.items[t].name.len > 0 ? (size_t)in.topics.items[t].name.len + 1 : 0;
    }
    struct commit_job *j = calloc(1, sizeof(*j));
    if (j != NULL) {
        *j = (struct commit_job){.req = req, .h = *h, .topic_count = topics, .part_count = parts};
        j->topics = calloc(topics + 1, sizeof(*j->topics));
        j->parts = calloc(parts + 1, sizeof(*j->parts));
        j->items = calloc(parts + 1, sizeof(*j->items));
        j->names = malloc(name_bytes + 1);
    }
    if (j == NULL || j->topics == NULL || j->parts == NULL || j->items == NULL ||
        j->names == NULL) {
        if (j != NULL) {
            commit_job_free(j);
        }
        loop_req_fail(req);
        return;
    }
    char id[KGROUP_ID_BYTES_MAX + 1];
    int16_t err = group_id_take(s, req, PROTO_ACL_OP_READ, in.group_id, id);
    err = err == 0 ? commit_allowed(s, &in, id) : err;
    uint32_t n = commit_plan(s, j, &in, err);
    int rc = n > 0 ? offsets_commit(&s->offsets, &j->c, id, j->items, n, commit_done, NULL) : 0;
    if (n == 0 || rc != 0) {
        if (rc != 0) {
            commit_done(&j->c, rc);
        } else {
            commit_answer(j);
        }
    }
}

/* ---- OffsetFetch ---- */

/* One committed offset as OffsetFetch gives it (-1: none). */
static int64_t committed(struct server *s, const char *group, struct kw_str topic, int32_t p)
{
    char name[PROTO_TOPIC_NAME_BYTES_MAX + 1];
    int64_t off = -1;
    if (topic.len <= 0 || topic.len > PROTO_TOPIC_NAME_BYTES_MAX) {
        return -1;
    }
    memcpy(name, topic.ptr, (size_t)topic.len);
    name[topic.len] = '\0';
    return offsets_get(&s->offsets, group, name, p, &off) == 0 ? off : -1;
}

/* One partition's answer of OffsetFetch, before it takes the version's
 * shape. */
struct fetched {
    struct kw_str topic;
    int32_t partition;
    int64_t offset;
    int16_t err;
};

static int fetched_cmp(const void *x, const void *y)
{
    const struct fetched *a = x, *b = y;
    int32_t n = a->topic.len < b->topic.len ? a->topic.len : b->topic.len;
    int c = memcmp(a->topic.ptr, b->topic.ptr, (size_t)n);
    if (c != 0 || a->topic.len != b->topic.len) {
        return c != 0 ? c : (a->topic.len > b->topic.len) - (a->topic.len < b->topic.len);
    }
    return (a->partition > b->partition) - (a->partition < b->partition);
}

/* The answers for group's partitions asked (topic_count -1: every one it
 * has committed), from the arena; *count_out of them, or NULL when the
 * arena is spent. Each request topic is a (name, partitions) pair. */
static struct fetched *fetch_plan(struct server *s, struct loop_req *req, const char *group,
                                  const struct kw_str *names, const int32_t *const *indexes,
                                  const int32_t *index_counts, int32_t topic_count,
                                  struct kw_arena *a, uint32_t *count_out)
{
    uint32_t n = 0;
    const struct offsets_group *og =
        topic_count < 0 ? offsets_group_find(&s->offsets, group) : NULL;
    if (topic_count < 0) {
        n = og != NULL ? og->count : 0;
    } else {
        for (int32_t t = 0; t < topic_count; t++) {
            n += index_counts[t] > 0 ? (uint32_t)index_counts[t] : 0;
        }
    }
    struct fetched *v = kw_arena_alloc(a, (size_t)n * sizeof(*v) + 1);
    if (v == NULL) {
        return NULL;
    }
    uint32_t k = 0;
    if (topic_count < 0) {
        for (uint32_t i = 0; i < n; i++) {
            const struct offsets_entry *e = &og->entries[i];
            if (acl_serve_kafka(s, req, PROTO_ACL_RESOURCE_TOPIC, wstr(e->topic),
                                PROTO_ACL_OP_DESCRIBE) != 0) {
                continue; /* left out, as Kafka does */
            }
            v[k++] = (struct fetched){
                .topic = wstr(e->topic), .partition = e->partition, .offset = e->offset};
        }
        qsort(v, k, sizeof(*v), fetched_cmp);
    } else {
        for (int32_t t = 0; t < topic_count; t++) {
            int16_t refused =
                acl_serve_kafka(s, req, PROTO_ACL_RESOURCE_TOPIC, names[t], PROTO_ACL_OP_DESCRIBE);
            for (int32_t p = 0; p < index_counts[t]; p++) {
                v[k++] = (struct fetched){
                    .topic = names[t],
                    .partition = indexes[t][p],
                    .offset = refused == 0 ? committed(s, group, names[t], indexes[t][p]) : -1,
                    .err = refused};
            }
        }
    }
    *count_out = k;
    return v;
}

/* How many topics the sorted or request-ordered answers name (a topic
 * starts where the name changes). */
static uint32_t fetched_topics(const struct fetched *v, uint32_t n)
{
    uint32_t t = 0;
    for (uint32_t i = 0; i < n; i++) {
        t += i == 0 || v[i].topic.len != v[i - 1].topic.len ||
             memcmp(v[i].topic.ptr, v[i - 1].topic.ptr, (size_t)v[i].topic.len) != 0;
    }
    return t;
}

#define FETCH_EMIT(TOPIC_T, PART_T, v, n, a, items_out, count_out)                             \
    do {                                                                                       \
        uint32_t topics_ = fetched_topics((v), (n));                                           \
        TOPIC_T *ts_ = kw_arena_alloc((a), topics_ * sizeof(TOPIC_T) + 1);                     \
        PART_T *ps_ = kw_arena_alloc((a), (n) * sizeof(PART_T) + 1);                           \
        if (ts_ == NULL || ps_ == NULL) {                                                      \
            return false;                                                                      \
        }                                                                                      \
        int32_t t_ = -1;                                                                       \
        for (uint32_t i_ = 0; i_ < (n); i_++) {                                                \
            if (t_ < 0 || (v)[i_].topic.len != ts_[t_].name.len ||                             \
                memcmp((v)[i_].topic.ptr, ts_[t_].name.ptr, (size_t)(v)[i_].topic.len) != 0) { \
                t_++;                                                                          \
                ts_[t_] = (TOPIC_T){.name = (v)[i_].topic};                                    \
                ts_[t_].partitions.items = &ps_[i_];                                           \
            }                                                                                  \
            ps_[i_] = (PART_T){.partition_index = (v)[i_].partition,                           \
                               .committed_offset = (v)[i_].offset,                             \
                               .committed_leader_epoch = -1,                                   \
                               .metadata = wstr(""),                                           \
                               .error_code = (v)[i_].err};                                     \
            ts_[t_].partitions.count++;                                                        \
        }                                                                                      \
        (items_out) = ts_;                                                                     \
        (count_out) = (int32_t)topics_;                                                        \
    } while (0)

static bool fetch_emit_v0(const struct fetched *v, uint32_t n, struct kw_arena *a,
                          struct kafka_offset_fetch_response *out)
{
    FETCH_EMIT(struct kafka_offset_fetch_response_topic,
               struct kafka_offset_fetch_response_partition, v, n, a, out->topics.items,
               out->topics.count);
    return true;
}

static bool fetch_emit_v8(const struct fetched *v, uint32_t n, struct kw_arena *a,
                          struct kafka_offset_fetch_response_group *out)
{
    FETCH_EMIT(struct kafka_offset_fetch_response_topics,
               struct kafka_offset_fetch_response_partitions, v, n, a, out->topics.items,
               out->topics.count);
    return true;
}

/* A group's part of the answer: its error (or 0) and its offsets. */
static int16_t fetch_group(struct server *s, struct loop_req *req, struct kw_str group_id,
                           char id[KGROUP_ID_BYTES_MAX + 1])
{
    int16_t err = group_id_take(s, req, PROTO_ACL_OP_DESCRIBE, group_id, id);
    return err == 0 && !coordinates(s) ? KAFKA_ERR_NOT_COORDINATOR : err;
}

void kafka_offset_fetch(struct server *s, struct loop_req *req, const struct kafka_req_header *h,
                        struct rd *body, struct kw_arena *a)
{
    struct kafka_offset_fetch_request in;
    if (kafka_offset_fetch_request_decode(body, h->api_version, a, &in) != 0) {
        loop_req_fail(req);
        return;
    }
    struct kafka_offset_fetch_response out;
    kafka_offset_fetch_response_init(&out);
    bool ok = true;
    char id[KGROUP_ID_BYTES_MAX + 1];
    if (h->api_version < 8) {
        int32_t tc = in.topics.count;
        struct kw_str *names = kw_arena_alloc(a, (size_t)(tc > 0 ? tc : 0) * sizeof(*names) + 1);
        const int32_t **idx = kw_arena_alloc(a, (size_t)(tc > 0 ? tc : 0) * sizeof(*idx) + 1);
        int32_t *cnt = kw_arena_alloc(a, (size_t)(tc > 0 ? tc : 0) * sizeof(*cnt) + 1);
        ok = names != NULL && idx != NULL && cnt != NULL;
        for (int32_t t = 0; ok && t < tc; t++) {
            names[t] = in.topics.items[t].name;
            idx[t] = in.topics.items[t].partition_indexes.items;
            cnt[t] = in.topics.items[t].partition_indexes.count;
        }
        out.error_code = fetch_group(s, req, in.group_id, id);
        uint32_t n = 0;
        struct fetched *v =
            ok && out.error_code == 0 ? fetch_plan(s, req, id, names, idx, cnt, tc, a, &n) : NULL;
        ok = ok && (out.error_code != 0 || v != NULL) && fetch_emit_v0(v, n, a, &out);
    } else {
        int32_t gc = in.groups.count > 0 ? in.groups.count : 0;
        struct kafka_offset_fetch_response_group *gs =
            kw_arena_alloc(a, (size_t)gc * sizeof(*gs) + 1);
        ok = gs != NULL;
        for (int32_t i = 0; ok && i < gc; i++) {
            const struct kafka_offset_fetch_request_group *rg = &in.groups.items[i];
            int32_t tc = rg->topics.count;
            struct kw_str *names =
                kw_arena_alloc(a, (size_t)(tc > 0 ? tc : 0) * sizeof(*names) + 1);
            const int32_t **idx = kw_arena_alloc(a, (size_t)(tc > 0 ? tc : 0) * sizeof(*idx) + 1);
            int32_t *cnt = kw_arena_alloc(a, (size_t)(tc > 0 ? tc : 0) * sizeof(*cnt) + 1);
            ok = names != NULL && idx != NULL && cnt != NULL;
            for (int32_t t = 0; ok && t < tc; t++) {
                names[t] = rg->topics.items[t].name;
                idx[t] = rg->topics.items[t].partition_indexes.items;
                cnt[t] = rg->topics.items[t].partition_indexes.count;
            }
            gs[i] = (struct kafka_offset_fetch_response_group){.group_id = rg->group_id};
            gs[i].error_code = fetch_group(s, req, rg->group_id, id);
            uint32_t n = 0;
            struct fetched *v = ok && gs[i].error_code == 0
                                    ? fetch_plan(s, req, id, names, idx, cnt, tc, a, &n)
                                    : NULL;
            ok = ok && (gs[i].error_code != 0 || v != NULL) && fetch_emit_v8(v, n, a, &gs[i]);
        }
        out.groups.items = gs;
        out.groups.count = gc;
    }
    if (!ok) {
        log_warn("kafka: OffsetFetch answer past the arena; closing");
        loop_req_fail(req);
        return;
    }
    kafka_serve_respond(req, h, &kafka_offset_fetch_response_msg, &out);
}

/* ---- ListGroups, DescribeGroups ---- */

/* Whether a state filter (empty: any) names state. */
static bool state_wanted(const struct kafka_list_groups_request *in, const char *state)
{
    for (int32_t i = 0; i < in->states_filter.count; i++) {
        if (kw_str_eq(in->states_filter.items[i], state)) {
            return true;
        }
    }
    return in->states_filter.count <= 0;
}

/* nagare's own groups are listed as protocol type "nagare", Stable while
 * they have members; groups with only committed offsets as Kafka lists
 * them: Empty, no protocol type. */
#define NAGARE_PROTOCOL_TYPE "nagare"

void kafka_list_groups(struct server *s, struct loop_req *req, const struct kafka_req_header *h,
                       struct rd *body, struct kw_arena *a)
{
    struct kafka_list_groups_request in;
    if (kafka_list_groups_request_decode(body, h->api_version, a, &in) != 0) {
        loop_req_fail(req);
        return;
    }
    struct kafka_list_groups_response out;
    kafka_list_groups_response_init(&out);
    const struct kafka_groups *gs = s->kafka_groups;
    uint32_t bound = gs->count + s->group_count + s->offsets.count;
    struct kafka_list_groups_response_listed_group *v = kw_arena_alloc(a, bound * sizeof(*v) + 1);
    if (v == NULL) {
        loop_req_fail(req);
        return;
    }
    int32_t n = 0;
    if (!coordinates(s)) {
        out.error_code = KAFKA_ERR_NOT_COORDINATOR;
        bound = 0;
    }
    for (uint32_t i = 0; bound > 0 && i < gs->count; i++) {
        const char *state = kgroup_state_name(gs->v[i]->state);
        if (state_wanted(&in, state)) {
            v[n++] = (struct kafka_list_groups_response_listed_group){
                .group_id = wstr(gs->v[i]->id),
                .protocol_type = wstr(gs->v[i]->protocol_type),
                .group_state = wstr(state),
                .group_type = wstr("classic")};
        }
    }
    for (uint32_t i = 0; bound > 0 && i < s->group_count; i++) {
        if (state_wanted(&in, "Stable")) {
            v[n++] = (struct kafka_list_groups_response_listed_group){
                .group_id = wstr(s->groups[i]->id),
                .protocol_type = wstr(NAGARE_PROTOCOL_TYPE),
                .group_state = wstr("Stable"),
                .group_type = wstr("classic")};
        }
    }
    for (uint32_t i = 0; bound > 0 && i < s->offsets.count; i++) {
        const char *id = s->offsets.groups[i].id;
        if (group_find(s, id) == NULL && !groups_active(s, id) && state_wanted(&in, "Empty")) {
            v[n++] =
                (struct kafka_list_groups_response_listed_group){.group_id = wstr(id),
                                                                 .protocol_type = wstr(""),
                                                                 .group_state = wstr("Empty"),
                                                                 .group_type = wstr("classic")};
        }
    }
    /* Without DESCRIBE on the cluster, the groups its asker may describe. */
    if (acl_serve_kafka(s, req, PROTO_ACL_RESOURCE_CLUSTER, wstr(PROTO_ACL_CLUSTER_NAME),
                        PROTO_ACL_OP_DESCRIBE) != 0) {
        int32_t kept = 0;
        for (int32_t i = 0; i < n; i++) {
            if (acl_serve_kafka(s, req, PROTO_ACL_RESOURCE_GROUP, v[i].group_id,
                                PROTO_ACL_OP_DESCRIBE) == 0) {
                v[kept++] = v[i];
            }
        }
        n = kept;
    }
    out.groups.items = v;
    out.groups.count = n;
    kafka_serve_respond(req, h, &kafka_list_groups_response_msg, &out);
}

/* One group described: a Kafka group with its members (their metadata and
 * assignment once the group has a generation's), a nagare group with its
 * member ids, or Kafka's answer for one it does not know ("Dead"). */
static bool describe_one(struct server *s, struct loop_req *req, struct kw_str id_in,
                         struct kw_arena *a,
                         struct kafka_describe_groups_response_described_group *d)
{
    char id[KGROUP_ID_BYTES_MAX + 1];
    *d =
        (struct kafka_describe_groups_response_described_group){.group_id = id_in,
                                                                .group_state = wstr("Dead"),
                                                                .protocol_type = wstr(""),
                                                                .protocol_data = wstr(""),
                                                                .authorized_operations = INT32_MIN};
    d->error_code = group_id_take(s, req, PROTO_ACL_OP_DESCRIBE, id_in, id);
    if (d->error_code == 0 && !coordinates(s)) {
        d->error_code = KAFKA_ERR_NOT_COORDINATOR;
    }
    if (d->error_code != 0) {
        return true;
    }
    const struct kgroup *g = group_find(s, id);
    if (g != NULL) {
        bool assigned = g->state == KGROUP_STABLE || g->state == KGROUP_COMPLETING;
        struct kafka_describe_groups_response_described_group_member *ms =
            kw_arena_alloc(a, g->member_count * sizeof(*ms) + 1);
        if (ms == NULL) {
            return false;
        }
        for (uint32_t i = 0; i < g->member_count; i++) {
            const struct kgroup_member *m = &g->members[i];
            uint32_t len = 0;
            const uint8_t *md = assigned ? kgroup_member_metadata(m, g->protocol_name, &len) : NULL;
            ms[i] = (struct kafka_describe_groups_response_described_group_member){
                .member_id = wstr(m->id),
                .group_instance_id = instance_of(m),
                .client_id = wstr(m->client_id),
                .client_host = wstr(m->client_host),
                .member_metadata = {md != NULL ? md : (const uint8_t *)"", (int32_t)len},
                .member_assignment = {m->assignment != NULL ? m->assignment : (const uint8_t *)"",
                                      (int32_t)m->assignment_len}};
        }
        d->group_state = wstr(kgroup_state_name(g->state));
        d->protocol_type = wstr(g->protocol_type);
        d->protocol_data = wstr(g->protocol_name);
        d->members.items = ms;
        d->members.count = (int32_t)g->member_count;
    } else if (groups_active(s, id)) {
        d->group_state = wstr("Stable");
        d->protocol_type = wstr(NAGARE_PROTOCOL_TYPE);
    } else if (offsets_group_find(&s->offsets, id) != NULL) {
        d->group_state = wstr("Empty");
    }
    return true;
}

void kafka_describe_groups(struct server *s, struct loop_req *req, const struct kafka_req_header *h,
                           struct rd *body, struct kw_arena *a)
{
    struct kafka_describe_groups_request in;
    if (kafka_describe_groups_request_decode(body, h->api_version, a, &in) != 0) {
        loop_req_fail(req);
        return;
    }
    int32_t n = in.groups.count > 0 ? in.groups.count : 0;
    struct kafka_describe_groups_response out;
    kafka_describe_groups_response_init(&out);
    struct kafka_describe_groups_response_described_group *v =
        kw_arena_alloc(a, (size_t)n * sizeof(*v) + 1);
    bool ok = v != NULL;
    for (int32_t i = 0; ok && i < n; i++) {
        ok = describe_one(s, req, in.groups.items[i], a, &v[i]);
    }
    if (!ok) {
        loop_req_fail(req);
        return;
    }
    out.groups.items = v;
    out.groups.count = n;
    kafka_serve_respond(req, h, &kafka_describe_groups_response_msg, &out);
}

/* ---- DeleteGroups ---- */

/* A DeleteGroups in flight: one deletion per group, answered once the
 * last is done (the request's group ids point into its frame). */
struct delete_job {
    struct loop_req *req;
    struct kafka_req_header h;
    uint32_t pending;
    int32_t count;
    struct kafka_delete_groups_response_deletable_group_result *results;
    struct delete_one {
        struct delete_job *job;
        int32_t index;
    } * ones;
};

static int16_t delete_err(int rc)
{
    return rc == -NG_ENOTFOUND ? KAFKA_ERR_GROUP_ID_NOT_FOUND : group_err(rc);
}

static void delete_job_end(struct delete_job *j)
{
    struct kafka_delete_groups_response out;
    kafka_delete_groups_response_init(&out);
    out.results.items = j->results;
    out.results.count = j->count;
    kafka_serve_respond(j->req, &j->h, &kafka_delete_groups_response_msg, &out);
    free(j->results);
    free(j->ones);
    free(j);
}

static void delete_one_done(void *arg, int rc)
{
    struct delete_one *one = arg;
    struct delete_job *j = one->job;
    j->results[one->index].error_code = delete_err(rc);
    if (--j->pending == 0) {
        delete_job_end(j);
    }
}

void kafka_delete_groups(struct server *s, struct loop_req *req, const struct kafka_req_header *h,
                         struct rd *body, struct kw_arena *a)
{
    struct kafka_delete_groups_request in;
    if (kafka_delete_groups_request_decode(body, h->api_version, a, &in) != 0) {
        loop_req_fail(req);
        return;
    }
    int32_t n = in.groups_names.count > 0 ? in.groups_names.count : 0;
    struct delete_job *j = calloc(1, sizeof(*j));
    if (j != NULL) {
        *j = (struct delete_job){.req = req, .h = *h, .count = n, .pending = 1};
        j->results = calloc((size_t)n + 1, sizeof(*j->results));
        j->ones = calloc((size_t)n + 1, sizeof(*j->ones));
    }
    if (j == NULL || j->results == NULL || j->ones == NULL) {
        if (j != NULL) {
            free(j->results);
            free(j->ones);
            free(j);
        }
        loop_req_fail(req);
        return;
    }
    for (int32_t i = 0; i < n; i++) {
        char id[KGROUP_ID_BYTES_MAX + 1];
        j->results[i].group_id = in.groups_names.items[i];
        int16_t err = group_id_take(s, req, PROTO_ACL_OP_DELETE, in.groups_names.items[i], id);
        err = err == 0 && !coordinates(s) ? KAFKA_ERR_NOT_COORDINATOR : err;
        j->ones[i] = (struct delete_one){.job = j, .index = i};
        int rc = err == 0 ? groups_delete(s, id, delete_one_done, &j->ones[i]) : 0;
        j->results[i].error_code = err != 0 ? err : delete_err(rc);
        j->pending += err == 0 && rc == 0; /* answered by delete_one_done() */
    }
    if (--j->pending == 0) { /* the count's own 1: nothing in flight */
        delete_job_end(j);
    }
}
