/* broker/admin.c — the request handlers other than produce and fetch,
 * nagare's and Kafka's (broker/kafka_serve.h) over the same lookups. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "broker/acl_serve.h"
#include "broker/kafka_serve.h"
#include "broker/server.h"
#include "net/kafka/errors.h"

/* An answer never needs more than this per request byte plus a header:
 * every element of these requests costs at least half its answer. */
#define RESP_PER_REQ_BYTE 2
#define RESP_SLACK_BYTES 256

/* After a body decoder: answers its error (decode_rc), or opens an answer
 * buffer of cap bytes (0: sized from the request, RESP_PER_REQ_BYTE per
 * byte). Returns whether the handler goes on to fill the answer. */
static bool answer_begin(struct loop_req *req, const struct proto_req_header *h, int decode_rc,
                         size_t cap, struct wr *w)
{
    if (decode_rc != 0) {
        server_resp_error(req, h->correlation_id, decode_rc);
        return false;
    }
    if (cap == 0) {
        size_t len;
        (void)loop_req_frame(req, &len);
        cap = RESP_PER_REQ_BYTE * len + RESP_SLACK_BYTES;
    }
    return server_resp_begin(req, h->correlation_id, cap, w);
}

void handle_api_versions(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                         struct rd *body)
{
    int rc = proto_api_versions_req_decode(body, h->api_version);
    struct wr w;
    if (!answer_begin(req, h, rc, 1024, &w)) {
        return;
    }
    struct proto_api_versions_resp resp;
    proto_api_versions_fill(&resp, s->cfg.frame_bytes_max);
    uint32_t served = 0;
    for (uint32_t i = 0; i < resp.api_count; i++) {
        if (server_api_served(resp.apis[i].api_key)) {
            resp.apis[served++] = resp.apis[i];
        }
    }
    resp.api_count = served; /* what the codec knows and this broker serves */
    rc = proto_api_versions_resp_encode(&w, h->api_version, h->correlation_id, &resp);
    ASSERT(rc == 0); /* 32 ranges fit 1 KiB */
    server_resp_send(req, &w);
}

/* ---- Metadata ---- */

/* What a view may hold fits a Metadata v2 answer. */
static_assert(CLUSTER_BROKERS_MAX <= PROTO_BROKERS_MAX, "every live broker is listed");
static_assert(CLUSTER_REPLICAS_MAX <= PROTO_REPLICAS_MAX, "every replica is listed");
static_assert(CLUSTER_HOST_BYTES - 1 <= PROTO_STRING_BYTES_MAX, "a broker's host is a string");

/* A single broker names itself this in Metadata v2 (docs/cluster.md). */
#define SINGLE_BROKER_ID 0

/* Bytes of one partition's entry at most, and of what v2 adds before the
 * topics (the brokers). */
static size_t metadata_partition_bytes(uint16_t version)
{
    if (version >= 3) {
        return PROTO_METADATA_PARTITION_V3_BYTES(CLUSTER_REPLICAS_MAX, CLUSTER_REPLICAS_MAX,
                                                 CLUSTER_REPLICAS_MAX);
    }
    return version >= 2
               ? PROTO_METADATA_PARTITION_V2_BYTES(CLUSTER_REPLICAS_MAX, CLUSTER_REPLICAS_MAX)
               : PROTO_METADATA_PARTITION_BYTES;
}

static size_t metadata_head_bytes(const struct server *s, uint16_t version)
{
    if (version < 2) {
        return 0;
    }
    uint32_t brokers = s->view != NULL ? s->view->broker_count : 1;
    return PROTO_METADATA_V2_HEAD_BYTES + brokers * PROTO_BROKER_BYTES(CLUSTER_HOST_BYTES);
}

static size_t metadata_topic_bytes(int32_t partitions, size_t name_len, uint16_t version)
{
    return PROTO_TOPIC_BYTES(name_len) + PROTO_ERR_BYTES + PROTO_METADATA_TOPIC_CONFIG_BYTES +
           (size_t)partitions * metadata_partition_bytes(version);
}

/* v2's brokers: the view's live brokers, or this broker alone. */
static void metadata_brokers(const struct server *s, struct proto_enc *e)
{
    if (s->view == NULL) {
        proto_metadata_resp_broker(
            e, &(struct proto_broker){.id = SINGLE_BROKER_ID,
                                      .host = proto_str_make(s->cfg.listen_host),
                                      .port = s->port});
        return;
    }
    for (uint32_t i = 0; i < s->view->broker_count; i++) {
        const struct cluster_broker *b = &s->view->brokers[i];
        proto_metadata_resp_broker(
            e,
            &(struct proto_broker){.id = b->id, .host = proto_str_make(b->host), .port = b->port});
    }
}

/* v2's leader and replicas of a partition (v3's reassignment target): on
 * a single broker this broker, leader of everything at epoch 0; in a
 * cluster the view's (cp), no leader while the view does not have the
 * partition. */
static void metadata_replicas(const struct server *s, const struct cluster_partition *cp,
                              struct proto_metadata_partition *mp)
{
    if (s->view != NULL && cp == NULL) {
        mp->leader = PROTO_BROKER_NONE;
        mp->leader_epoch = PROTO_BROKER_NONE;
        return;
    }
    if (s->view == NULL) {
        mp->leader = SINGLE_BROKER_ID;
        mp->leader_epoch = 0;
        mp->replica_count = mp->isr_count = 1;
        mp->replicas[0] = mp->isr[0] = SINGLE_BROKER_ID;
        return;
    }
    mp->leader = cp->leader;
    mp->leader_epoch = cp->leader_epoch;
    mp->replica_count = cp->replica_count;
    memcpy(mp->replicas, cp->replicas, cp->replica_count * sizeof(cp->replicas[0]));
    mp->isr_count = cp->isr_count;
    memcpy(mp->isr, cp->isr, cp->isr_count * sizeof(cp->isr[0]));
    mp->target_count = cp->target_count;
    memcpy(mp->target, cp->target, cp->target_count * sizeof(cp->target[0]));
}

/* Retention that is off is stored as -1 and sent as in CreateTopics: -2. */
static int64_t metadata_retention(int64_t v) { return v == -1 ? PROTO_CONFIG_UNLIMITED : v; }

/* A topic this broker holds; ct its state in the view (NULL on a single
 * broker). */
static void metadata_topic(const struct server *s, struct proto_enc *e,
                           const struct server_topic *t, const struct cluster_topic *ct)
{
    struct proto_topic_config cfg = {
        .partition_count = t->cfg.partitions,
        .retention_ms = metadata_retention(t->cfg.retention_ms),
        .retention_bytes = metadata_retention(t->cfg.retention_bytes),
        .segment_bytes = t->cfg.segment_bytes,
        .segment_ms = t->cfg.segment_ms,
        .batch_bytes_max = t->cfg.batch_bytes_max,
    };
    proto_metadata_resp_topic_config(
        e, (struct proto_str){.ptr = t->name, .len = (int32_t)t->name_len}, 0, &cfg);
    for (int32_t i = 0; i < t->cfg.partitions; i++) {
        const struct part *log = &t->parts[i].log;
        struct proto_metadata_partition mp = {
            .partition = i,
            .err = part_failed(log),
            .offset_earliest = part_offset_earliest(log),
            .offset_latest = part_offset_latest(log),
        };
        mp.err = mp.err != 0 ? -NG_EFAILED : 0;
        metadata_replicas(s, ct != NULL && i < ct->partitions ? &ct->parts[i] : NULL, &mp);
        proto_metadata_resp_partition(e, &mp);
    }
}

/* A topic of the view this broker does not hold (yet): its catalog
 * settings (-1 where the broker's default applies) and no offsets. */
static void metadata_view_topic(const struct server *s, struct proto_enc *e,
                                const struct cluster_topic *ct)
{
    struct proto_topic_config cfg = {
        .partition_count = ct->partitions,
        .retention_ms = ct->cfg.retention_ms,
        .retention_bytes = ct->cfg.retention_bytes,
        .segment_bytes = ct->cfg.segment_bytes,
        .segment_ms = ct->cfg.segment_ms,
        .batch_bytes_max = ct->cfg.batch_bytes_max,
    };
    proto_metadata_resp_topic_config(e, proto_str_make(ct->name), 0, &cfg);
    for (int32_t i = 0; i < ct->partitions; i++) {
        struct proto_metadata_partition mp = {
            .partition = i, .offset_earliest = -1, .offset_latest = -1};
        metadata_replicas(s, &ct->parts[i], &mp);
        proto_metadata_resp_partition(e, &mp);
    }
}

/* A topic Metadata names: what this broker holds of it (*st) and what the
 * view says of it (*ct, NULL on a single broker); both NULL: unknown. */
static void metadata_lookup(struct server *s, struct proto_str name, struct server_topic **st,
                            const struct cluster_topic **ct)
{
    *st = server_topic_find(s, name);
    *ct = s->view != NULL ? cluster_view_topic(s->view, name.ptr, (size_t)name.len) : NULL;
}

/* Whether who may see topic name in a Metadata answer. */
static bool metadata_may(const struct server *s, const struct acl_who *who, struct proto_str name)
{
    return acl_serve_allowed(s, who, PROTO_ACL_RESOURCE_TOPIC, name, PROTO_ACL_OP_DESCRIBE);
}

/* One topic of the answer by name: refused when who may not describe it
 * (a broker's internal topic, named, anyone may: clients find their group
 * coordinators through __offsets's leader, as Kafka's FindCoordinator
 * asks nothing of its topic; only where it is led is told), else what
 * this broker holds of it, else what the view says, else unknown. Returns
 * the bytes it may take. */
static size_t metadata_named(struct server *s, struct proto_enc *e, struct proto_str name,
                             uint16_t version, const struct acl_who *who)
{
    struct server_topic *st;
    const struct cluster_topic *ct;
    metadata_lookup(s, name, &st, &ct);
    if (!server_topic_reserved(name) && !metadata_may(s, who, name)) {
        if (e != NULL) {
            proto_metadata_resp_topic(e, name, -NG_EUNAUTHORIZED);
        }
        return metadata_topic_bytes(0, (size_t)name.len, version);
    }
    if (st != NULL) {
        if (e != NULL) {
            metadata_topic(s, e, st, ct);
        }
        return metadata_topic_bytes(st->cfg.partitions, st->name_len, version);
    }
    if (ct != NULL) {
        if (e != NULL) {
            metadata_view_topic(s, e, ct);
        }
        return metadata_topic_bytes(ct->partitions, strlen(ct->name), version);
    }
    if (e != NULL) {
        proto_metadata_resp_topic(e, name, -NG_EUNKNOWN_TOPIC);
    }
    return metadata_topic_bytes(0, (size_t)name.len, version);
}

/* Every topic who may describe: the view's catalog in a cluster, else
 * those held here. */
static size_t metadata_all(struct server *s, struct proto_enc *e, uint16_t version,
                           const struct acl_who *who)
{
    size_t bytes = 0;
    if (s->view != NULL) {
        for (uint32_t i = 0; i < s->view->topic_count; i++) {
            struct proto_str name = proto_str_make(s->view->topics[i].name);
            if (metadata_may(s, who, name)) {
                bytes += metadata_named(s, e, name, version, who);
            }
        }
        return bytes;
    }
    for (uint32_t i = 0; i < s->topic_count; i++) {
        const struct server_topic *t = s->topics[i];
        if (!metadata_may(s, who,
                          (struct proto_str){.ptr = t->name, .len = (int32_t)t->name_len})) {
            continue;
        }
        if (e != NULL) {
            metadata_topic(s, e, t, NULL);
        }
        bytes += metadata_topic_bytes(t->cfg.partitions, t->name_len, version);
    }
    return bytes;
}

void handle_metadata(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                     struct rd *body)
{
    struct proto_dec d;
    int rc = proto_metadata_req_decode(body, h->api_version, &d);
    if (rc != 0) {
        server_resp_error(req, h->correlation_id, rc);
        return;
    }
    uint16_t v = h->api_version;
    struct acl_who who;
    acl_serve_who(s, req, &who);
    size_t cap = RESP_SLACK_BYTES + sizeof(s->cfg.listen_host) + metadata_head_bytes(s, v);
    struct proto_dec count = d;
    struct proto_topic t;
    if (d.topic_count < 0) {
        cap += metadata_all(s, NULL, v, &who);
    }
    while (d.topic_count >= 0 && proto_next_topic(&count, &t)) {
        cap += metadata_named(s, NULL, t.name, v, &who);
    }
    struct wr w;
    if (!answer_begin(req, h, 0, cap, &w)) {
        return;
    }
    struct proto_enc e;
    struct proto_metadata_resp m = {
        .host = proto_str_make(s->cfg.listen_host),
        .port = s->port,
        .broker_id = s->view != NULL ? s->broker_id : SINGLE_BROKER_ID,
        .controller_id = s->view != NULL ? s->view->controller : SINGLE_BROKER_ID,
    };
    proto_metadata_resp_begin(&e, &w, v, h->correlation_id, &m);
    if (v >= 2) {
        metadata_brokers(s, &e);
    }
    if (d.topic_count < 0) {
        (void)metadata_all(s, &e, v, &who);
    }
    while (d.topic_count >= 0 && proto_next_topic(&d, &t)) {
        (void)metadata_named(s, &e, t.name, v, &who);
    }
    server_resp_end(req, &e, &w, h->correlation_id);
}

/* ---- CreateTopics, DeleteTopics ---- */

/* Whether this broker can give a new topic replication_factor copies of
 * each partition (PROTO_CONFIG_DEFAULT: the default, one copy). A single
 * broker holds one copy: a factor above 1 needs a cluster. Returns 0,
 * -NG_ENOT_ENOUGH_REPLICAS, or -NG_EBADARG for a factor that is neither
 * the default nor 1..CLUSTER_REPLICAS_MAX. A broker in a cluster (s->view
 * set) decides against its live brokers; that path extends this one. */
static int create_replication_check(const struct server *s, struct proto_str name,
                                    int16_t replication_factor)
{
    if (replication_factor == PROTO_CONFIG_DEFAULT || replication_factor == 1) {
        return 0;
    }
    if (replication_factor < 1 || replication_factor > CLUSTER_REPLICAS_MAX) {
        return -NG_EBADARG;
    }
    (void)s;
    log_warn("create topic %.*s: replication factor %d needs a cluster", (int)name.len, name.ptr,
             replication_factor);
    return -NG_ENOT_ENOUGH_REPLICAS;
}

/* CreateTopics v2's unclean_leader_election: 0 or 1, else -NG_EBADARG. A
 * single broker refuses 1 (-NG_ENOT_CLUSTERED): it has no election, and a
 * setting it would silently drop is worse than a clear no. */
static int create_unclean_check(bool clustered, int8_t unclean)
{
    if (unclean != 0 && unclean != 1) {
        return -NG_EBADARG;
    }
    return unclean == 1 && !clustered ? -NG_ENOT_CLUSTERED : 0;
}

/* ---- CreateTopics, DeleteTopics in a cluster: through etcd ---- */

/* One request's topics (CreateTopics, DeleteTopics) or partitions
 * (ReassignPartitions), each handed to the cluster session; the answer
 * goes once every one has come back (the views that follow bring the
 * change to the brokers it concerns). */
enum admin_kind { ADMIN_CREATE, ADMIN_DELETE, ADMIN_REASSIGN };

/* An item's partition when the item is a topic (a ReassignPartitions
 * answer lists each topic, then its partitions' results). */
#define ADMIN_ITEM_TOPIC (-1)

struct admin_call;
struct admin_topic {
    struct loop_msg m;
    struct admin_call *call;
    struct proto_str name; /* into the frame, valid until the answer */
    int32_t partition;     /* ReassignPartitions; else ADMIN_ITEM_TOPIC */
    int err;
    int16_t kafka_err;  /* Kafka's answer: its code when err has no fit (0: none) */
    int32_t partitions; /* CreateTopics: as created (-1: unknown) */
    int16_t factor;     /* CreateTopics: replication factor (-1: unknown) */
};

struct admin_call {
    struct loop_req *req;
    struct server *s;
    uint32_t correlation_id;
    uint16_t version;
    bool kafka; /* Kafka's CreateTopics or DeleteTopics: kafka_admin_answer() */
    enum admin_kind kind;
    uint32_t count;
    uint32_t pending; /* items the session has not answered */
    struct admin_topic topics[];
};

static void kafka_admin_answer(const struct admin_call *c);

static void admin_call_answer(struct admin_call *c)
{
    if (c->kafka) {
        kafka_admin_answer(c);
        free(c);
        return;
    }
    size_t len;
    (void)loop_req_frame(c->req, &len);
    struct wr w;
    if (!server_resp_begin(c->req, c->correlation_id, RESP_PER_REQ_BYTE * len + RESP_SLACK_BYTES,
                           &w)) {
        free(c);
        return;
    }
    struct proto_enc e;
    if (c->kind == ADMIN_CREATE) {
        proto_create_topics_resp_begin(&e, &w, c->version, c->correlation_id);
    } else if (c->kind == ADMIN_DELETE) {
        proto_delete_topics_resp_begin(&e, &w, c->version, c->correlation_id);
    } else {
        proto_reassign_resp_begin(&e, &w, c->version, c->correlation_id);
    }
    for (uint32_t i = 0; i < c->count; i++) {
        const struct admin_topic *t = &c->topics[i];
        if (c->kind != ADMIN_REASSIGN) {
            proto_enc_topic_result(&e,
                                   &(struct proto_topic_result){.name = t->name, .err = t->err});
        } else if (t->partition == ADMIN_ITEM_TOPIC) {
            proto_enc_topic(&e, t->name);
        } else {
            proto_enc_partition_result(
                &e, &(struct proto_partition_result){.partition = t->partition, .err = t->err});
        }
    }
    server_resp_end(c->req, &e, &w, c->correlation_id);
    free(c);
}

/* On the loop: one topic came back. */
static void admin_topic_back(struct loop_msg *m, void *arg)
{
    (void)arg;
    struct admin_topic *t = container_of(m, struct admin_topic, m);
    struct admin_call *c = t->call;
    ASSERT(c->pending > 0);
    if (--c->pending == 0) {
        admin_call_answer(c);
    }
}

/* On the cluster thread. */
static void admin_topic_done(void *arg, int rc)
{
    struct admin_topic *t = arg;
    t->err = rc;
    loop_post(&t->call->s->loop, &t->m);
}

static struct admin_call *admin_call_new(struct server *s, struct loop_req *req,
                                         uint32_t correlation_id, uint16_t version,
                                         enum admin_kind kind, uint32_t count)
{
    struct admin_call *c = calloc(1, sizeof(*c) + count * sizeof(c->topics[0]));
    if (c != NULL) {
        *c = (struct admin_call){.req = req,
                                 .s = s,
                                 .correlation_id = correlation_id,
                                 .version = version,
                                 .kind = kind,
                                 .pending = 1}; /* held until every item is handed over */
    }
    return c;
}

/* The next item of c, for name (and partition); its name copied into
 * cname when valid, else its error set (-NG_EBADNAME). */
static struct admin_topic *admin_item_add(struct admin_call *c, struct proto_str name,
                                          int32_t partition,
                                          char cname[PROTO_TOPIC_NAME_BYTES_MAX + 1])
{
    struct admin_topic *t = &c->topics[c->count++];
    *t = (struct admin_topic){.m = {.fn = admin_topic_back},
                              .call = c,
                              .name = name,
                              .partition = partition,
                              .partitions = -1,
                              .factor = -1};
    if (name.len <= 0 || !proto_topic_name_valid(name.ptr, (size_t)name.len) ||
        proto_str_copy(name, cname, PROTO_TOPIC_NAME_BYTES_MAX + 1) != 0) {
        t->err = -NG_EBADNAME;
    }
    return t;
}

/* Hands one topic of c to the session (or settles its error at once). */
static void admin_topic_start(struct server *s, struct admin_call *c, struct proto_str name,
                              const struct proto_create_topic *ct)
{
    char cname[PROTO_TOPIC_NAME_BYTES_MAX + 1];
    struct admin_topic *t = admin_item_add(c, name, ADMIN_ITEM_TOPIC, cname);
    if (t->err == 0 && server_topic_reserved(name)) {
        t->err = -NG_EBADNAME; /* internal: made by the brokers, not by users */
    }
    if (t->err != 0) {
        return;
    }
    int rc;
    if (ct != NULL) {
        struct cluster_topic_config cfg = {.retention_ms = ct->retention_ms,
                                           .retention_bytes = ct->retention_bytes,
                                           .segment_bytes = ct->segment_bytes,
                                           .segment_ms = PROTO_CONFIG_DEFAULT,
                                           .batch_bytes_max = ct->batch_bytes_max,
                                           .min_insync_replicas = PROTO_CONFIG_DEFAULT,
                                           .unclean_leader_election =
                                               ct->unclean_leader_election == 1};
        t->err = create_unclean_check(true, ct->unclean_leader_election);
        if (t->err != 0) {
            return;
        }
        int32_t parts = ct->partition_count == PROTO_CONFIG_DEFAULT ? s->cfg.default_partitions
                                                                    : ct->partition_count;
        int16_t factor = ct->replication_factor == PROTO_CONFIG_DEFAULT
                             ? (int16_t)s->cfg.default_replication_factor
                             : ct->replication_factor;
        t->partitions = parts;
        t->factor = factor;
        rc = cluster_session_create_topic(s->session, cname, parts, factor, &cfg, admin_topic_done,
                                          t);
    } else {
        rc = cluster_session_delete_topic(s->session, cname, admin_topic_done, t);
    }
    if (rc != 0) {
        t->err = rc;
        return;
    }
    c->pending++;
}

/* CreateTopics or DeleteTopics in a cluster. */
static void admin_cluster(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                          struct proto_dec *d, bool create)
{
    struct admin_call *c =
        admin_call_new(s, req, h->correlation_id, h->api_version,
                       create ? ADMIN_CREATE : ADMIN_DELETE, (uint32_t)d->topic_count);
    if (c == NULL) {
        server_resp_error(req, h->correlation_id, -ENOMEM);
        return;
    }
    if (create) {
        struct proto_create_topic ct;
        while (proto_create_topics_req_next(d, &ct)) {
            admin_topic_start(s, c, ct.name, &ct);
        }
    } else {
        struct proto_topic t;
        while (proto_next_topic(d, &t)) {
            admin_topic_start(s, c, t.name, NULL);
        }
    }
    if (--c->pending == 0) {
        admin_call_answer(c);
    }
}

/* Creates a topic on a single broker. Returns 0 with *out, or the error
 * (logged when it is the broker's, not the request's). */
static int create_local(struct server *s, const struct proto_create_topic *ct,
                        struct server_topic **out)
{
    struct topic_config requested = {
        .partitions = ct->partition_count,
        .retention_ms = ct->retention_ms,
        .retention_bytes = ct->retention_bytes,
        .segment_bytes = ct->segment_bytes,
        .segment_ms = PROTO_CONFIG_DEFAULT,
        .batch_bytes_max = ct->batch_bytes_max,
    };
    int err = server_topic_reserved(ct->name) ? -NG_EBADNAME : 0;
    err = err == 0 ? create_replication_check(s, ct->name, ct->replication_factor) : err;
    err = err == 0 ? create_unclean_check(false, ct->unclean_leader_election) : err;
    err = err == 0 ? server_topic_create(s, ct->name, &requested, out) : err;
    if (err != 0 && err != -NG_ETOPIC_EXISTS && err != -NG_ENOT_ENOUGH_REPLICAS &&
        err != -NG_ENOT_CLUSTERED) {
        log_warn("create topic %.*s: %s", (int)ct->name.len, ct->name.ptr, err_str(err));
    }
    return err;
}

/* Deletes a topic on a single broker: 0 or the error. */
static int delete_local(struct server *s, struct proto_str name)
{
    return server_topic_reserved(name) ? -NG_EBADNAME : server_topic_delete(s, name);
}

void handle_create_topics(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                          struct rd *body)
{
    struct proto_dec d;
    int rc = proto_create_topics_req_decode(body, h->api_version, &d);
    if (rc == 0 && s->session != NULL) {
        admin_cluster(s, req, h, &d, true);
        return;
    }
    struct wr w;
    if (!answer_begin(req, h, rc, 0, &w)) {
        return;
    }
    struct proto_enc e;
    proto_create_topics_resp_begin(&e, &w, h->api_version, h->correlation_id);
    struct proto_create_topic ct;
    while (proto_create_topics_req_next(&d, &ct)) {
        struct server_topic *t;
        struct proto_topic_result r = {.name = ct.name, .err = create_local(s, &ct, &t)};
        proto_enc_topic_result(&e, &r);
    }
    server_resp_end(req, &e, &w, h->correlation_id);
}

void handle_delete_topics(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                          struct rd *body)
{
    struct proto_dec d;
    int rc = proto_delete_topics_req_decode(body, h->api_version, &d);
    if (rc == 0 && s->session != NULL) {
        admin_cluster(s, req, h, &d, false);
        return;
    }
    struct wr w;
    if (!answer_begin(req, h, rc, 0, &w)) {
        return;
    }
    struct proto_enc e;
    proto_delete_topics_resp_begin(&e, &w, h->api_version, h->correlation_id);
    struct proto_topic t;
    while (proto_next_topic(&d, &t)) {
        struct proto_topic_result r = {.name = t.name, .err = delete_local(s, t.name)};
        proto_enc_topic_result(&e, &r);
    }
    server_resp_end(req, &e, &w, h->correlation_id);
}

/* ---- ReassignPartitions ---- */

/* Hands one partition of c to the session, which judges it against
 * etcd's state (cluster_session_reassign(): the topic and partition, the
 * ids' count, range, distinctness and liveness), or settles a bad name. */
static void reassign_start(struct server *s, struct admin_call *c, struct proto_str name,
                           const struct proto_reassign_partition *p)
{
    char cname[PROTO_TOPIC_NAME_BYTES_MAX + 1];
    struct admin_topic *t = admin_item_add(c, name, p->partition, cname);
    if (t->err == 0) {
        t->err = cluster_session_reassign(s->session, cname, p->partition, p->replicas,
                                          p->replica_count, admin_topic_done, t);
        c->pending += t->err == 0;
    }
}

void handle_reassign_partitions(struct server *s, struct loop_req *req,
                                const struct proto_req_header *h, struct rd *body)
{
    struct proto_dec d;
    int rc = proto_reassign_req_decode(body, h->api_version, &d);
    rc = rc == 0 && s->session == NULL ? -NG_ENOT_CLUSTERED : rc;
    if (rc != 0) {
        server_resp_error(req, h->correlation_id, rc);
        return;
    }
    struct admin_call *c = admin_call_new(s, req, h->correlation_id, h->api_version, ADMIN_REASSIGN,
                                          (uint32_t)d.topic_count + d.partition_count);
    if (c == NULL) {
        server_resp_error(req, h->correlation_id, -ENOMEM);
        return;
    }
    struct proto_topic t;
    while (proto_next_topic(&d, &t)) {
        char unused[PROTO_TOPIC_NAME_BYTES_MAX + 1];
        (void)admin_item_add(c, t.name, ADMIN_ITEM_TOPIC, unused);
        struct proto_reassign_partition p;
        while (proto_reassign_req_next_partition(&d, &p)) {
            reassign_start(s, c, t.name, &p);
        }
    }
    if (--c->pending == 0) {
        admin_call_answer(c);
    }
}

/* ---- ListOffsets ---- */

static void list_offset(struct server_topic *t, const struct proto_list_offsets_req_partition *in,
                        struct proto_list_offsets_resp_partition *out)
{
    *out = (struct proto_list_offsets_resp_partition){
        .partition = in->partition, .timestamp_ms = -1, .offset = -1};
    if (t == NULL || in->partition < 0 || in->partition >= t->cfg.partitions) {
        out->err = -NG_EUNKNOWN_TOPIC;
        return;
    }
    struct part *log = &t->parts[in->partition].log;
    out->err = replica_serving(&t->parts[in->partition]);
    if (out->err != 0) {
        return; /* a follower's offsets are not the partition's */
    }
    if (in->timestamp_ms == PROTO_TIMESTAMP_EARLIEST) {
        out->offset = part_offset_earliest(log);
    } else if (in->timestamp_ms == PROTO_TIMESTAMP_LATEST) {
        out->offset = part_offset_latest(log);
    } else if (in->timestamp_ms < 0) {
        out->err = -NG_EBADARG;
    } else {
        /* The found record's offset and timestamp; when no record is that
         * late, the log end with timestamp -1 (docs/protocol.md). */
        int rc = part_offset_for_time(log, in->timestamp_ms, &out->offset, &out->timestamp_ms);
        if (rc == -NG_ENOTFOUND) {
            out->offset = part_offset_latest(log);
            out->timestamp_ms = -1;
        } else if (rc != 0) {
            out->err = rc;
        }
    }
}

void handle_list_offsets(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                         struct rd *body)
{
    struct proto_dec d;
    int rc = proto_list_offsets_req_decode(body, h->api_version, &d);
    struct wr w;
    if (!answer_begin(req, h, rc, 0, &w)) {
        return;
    }
    struct proto_enc e;
    proto_list_offsets_resp_begin(&e, &w, h->api_version, h->correlation_id);
    struct proto_topic t;
    while (proto_next_topic(&d, &t)) {
        struct server_topic *st = server_topic_find(s, t.name);
        proto_enc_topic(&e, t.name);
        struct proto_list_offsets_req_partition in;
        while (proto_list_offsets_req_next_partition(&d, &in)) {
            struct proto_list_offsets_resp_partition out;
            list_offset(st, &in, &out);
            proto_list_offsets_resp_partition(&e, &out);
        }
    }
    server_resp_end(req, &e, &w, h->correlation_id);
}

/* ---- OffsetForLeaderEpoch ---- */

/* KIP-279's answer for one partition, to a follower (nagare's, checked as
 * replica_check_epoch() does) or to a reader (Kafka's consumers, checked
 * as replica_check_reader_epoch() does). */
static void epoch_end(struct server_topic *t, const struct proto_epoch_req_partition *in,
                      bool reader, struct proto_epoch_resp_partition *out)
{
    *out = (struct proto_epoch_resp_partition){
        .partition = in->partition, .leader_epoch = -1, .end_offset = -1};
    if (t == NULL || in->partition < 0 || in->partition >= t->cfg.partitions) {
        out->err = -NG_EUNKNOWN_TOPIC;
        return;
    }
    struct bpart *bp = &t->parts[in->partition];
    out->err = reader ? replica_check_reader_epoch(bp, in->current_leader_epoch)
                      : replica_check_epoch(bp, -1, in->current_leader_epoch);
    if (out->err == 0) {
        out->err =
            part_epoch_end_offset(&bp->log, in->leader_epoch, &out->leader_epoch, &out->end_offset);
    }
    if (out->err != 0) {
        out->leader_epoch = -1;
        out->end_offset = -1;
    }
}

void handle_offset_for_leader_epoch(struct server *s, struct loop_req *req,
                                    const struct proto_req_header *h, struct rd *body)
{
    struct proto_dec d;
    int rc = proto_epoch_req_decode(body, h->api_version, &d);
    struct wr w;
    /* An answer partition is 18 bytes for the request's 12, and the topic
     * names are the same: twice the request bounds it. */
    if (!answer_begin(req, h, rc, 0, &w)) {
        return;
    }
    struct proto_enc e;
    proto_epoch_resp_begin(&e, &w, h->api_version, h->correlation_id);
    struct proto_topic t;
    while (proto_next_topic(&d, &t)) {
        struct server_topic *st = server_topic_find(s, t.name);
        proto_enc_topic(&e, t.name);
        struct proto_epoch_req_partition in;
        while (proto_epoch_req_next_partition(&d, &in)) {
            struct proto_epoch_resp_partition out;
            epoch_end(st, &in, false, &out);
            proto_epoch_resp_partition(&e, &out);
        }
    }
    server_resp_end(req, &e, &w, h->correlation_id);
}

/* ---- InitProducerId ---- */

/* A new producer id (unique in the cluster: replica_producer_id()).
 * Returns 0, or the id store's error as the wire says it. */
static int producer_id_new(struct server *s, int64_t *id)
{
    /* Taking an id may reserve a block on disk: a full disk is said as such. */
    int rc = server_wire_err(producer_ids_take(&s->producer_ids, id));
    if (rc == 0 && broker_config_clustered(&s->cfg)) {
        *id = replica_producer_id(*id, s->broker_id);
    }
    return rc;
}

void handle_init_producer_id(struct server *s, struct loop_req *req,
                             const struct proto_req_header *h, struct rd *body)
{
    int rc = proto_init_producer_id_req_decode(body, h->api_version);
    struct proto_init_producer_id_resp r = {.producer_epoch = 0};
    rc = rc == 0 ? producer_id_new(s, &r.producer_id) : rc;
    struct wr w;
    if (!answer_begin(req, h, rc, 64, &w)) {
        return;
    }
    rc = proto_init_producer_id_resp_encode(&w, h->api_version, h->correlation_id, &r);
    ASSERT(rc == 0);
    server_resp_send(req, &w);
}

/* ---- Kafka's Metadata, ListOffsets, OffsetForLeaderEpoch, InitProducerId ---- */

/* An array of n answer elements from the request's arena: the answer is
 * encoded before the handler returns. NULL when the arena is spent (a
 * request for more than it holds): the handler then closes the
 * connection, logged by kafka_arena_spent(). */
static void *kafka_array(struct kw_arena *a, int64_t n, size_t size)
{
    return kw_arena_alloc(a, n > 0 ? (size_t)n * size : 1);
}

static void kafka_arena_spent(struct loop_req *req, const char *api)
{
    log_warn("kafka: connection %" PRIu64 ": %s answer: %s; closing", loop_req_conn_id(req), api,
             err_str(-NG_ETOOBIG));
    loop_req_fail(req);
}

/* A request the codec could not decode: the connection closes, as Kafka's
 * broker does. */
static void kafka_undecodable(struct loop_req *req, const char *api, int rc)
{
    log_debug("kafka: connection %" PRIu64 ": %s: %s; closing", loop_req_conn_id(req), api,
              err_str(rc));
    loop_req_fail(req);
}

/* A topic's partitions for Kafka's Metadata, from what this broker holds
 * (st, may be NULL) and the view (ct, NULL on a single broker): leaders,
 * epochs, replicas and ISRs as nagare's Metadata gives them. Returns false
 * when the arena is spent. */
static bool kafka_metadata_parts(const struct server *s, struct kw_arena *a,
                                 const struct server_topic *st, const struct cluster_topic *ct,
                                 struct kafka_metadata_response_topic *out)
{
    int32_t n = st != NULL ? st->cfg.partitions : ct->partitions;
    struct kafka_metadata_response_partition *ps = kafka_array(a, n, sizeof(*ps));
    int32_t *ids = kafka_array(a, (int64_t)n * 2 * PROTO_REPLICAS_MAX, sizeof(*ids));
    if (ps == NULL || ids == NULL) {
        return false;
    }
    for (int32_t i = 0; i < n; i++) {
        struct proto_metadata_partition mp = {.partition = i};
        metadata_replicas(s, ct != NULL && i < ct->partitions ? &ct->parts[i] : NULL, &mp);
        int32_t *replicas = ids + (size_t)i * 2 * PROTO_REPLICAS_MAX;
        int32_t *isr = replicas + PROTO_REPLICAS_MAX;
        memcpy(replicas, mp.replicas, mp.replica_count * sizeof(*replicas));
        memcpy(isr, mp.isr, mp.isr_count * sizeof(*isr));
        int16_t err = st != NULL && part_failed(&st->parts[i].log) != 0
                          ? kafka_err_from(-NG_EFAILED)
                          : KAFKA_ERR_NONE;
        /* A leader with no Kafka address (its lease just ended, or it has
         * no Kafka listener) is none to Kafka's clients, as Kafka's
         * brokers answer (its epoch kept): they look again, where an id
         * the answer gives no address for may leave them waiting. */
        const char *host;
        int32_t port;
        if (s->view != NULL && mp.leader != PROTO_BROKER_NONE &&
            kafka_serve_broker(s, mp.leader, &host, &port) != 0) {
            mp.leader = PROTO_BROKER_NONE;
        }
        if (err == KAFKA_ERR_NONE && mp.leader == PROTO_BROKER_NONE) {
            err = KAFKA_ERR_LEADER_NOT_AVAILABLE;
        }
        ps[i] = (struct kafka_metadata_response_partition){
            .error_code = err,
            .partition_index = i,
            .leader_id = mp.leader,
            .leader_epoch = mp.leader_epoch,
            .replica_nodes = {.items = replicas, .count = mp.replica_count},
            .isr_nodes = {.items = isr, .count = mp.isr_count},
            .offline_replicas = {.items = NULL, .count = 0}};
    }
    out->partitions.items = ps;
    out->partitions.count = n;
    return true;
}

/* One topic of Kafka's Metadata by name: TOPIC_AUTHORIZATION_FAILED when
 * req's principal may not describe it; an unknown one is created when the
 * broker's auto_create_topics and the request allow it (a single broker,
 * not a name of the broker's own). Returns false when the arena is spent. */
static bool kafka_metadata_topic(struct server *s, struct loop_req *req, struct kw_arena *a,
                                 struct proto_str name, bool auto_create,
                                 struct kafka_metadata_response_topic *out)
{
    *out = (struct kafka_metadata_response_topic){
        .name = kafka_serve_kw_str(name),
        .is_internal = server_topic_reserved(name),
        .topic_authorized_operations = INT32_MIN,
        .error_code = acl_serve_kafka(s, req, PROTO_ACL_RESOURCE_TOPIC, kafka_serve_kw_str(name),
                                      PROTO_ACL_OP_DESCRIBE),
    };
    if (out->error_code != 0) {
        return true;
    }
    struct server_topic *st;
    const struct cluster_topic *ct;
    metadata_lookup(s, name, &st, &ct);
    if (st == NULL && ct == NULL && auto_create && !server_topic_reserved(name)) {
        int err;
        st = produce_topic_get(s, req, name, &err);
        out->error_code = kafka_err_from(err);
    } else if (st == NULL && ct == NULL) {
        out->error_code = KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION;
    }
    return st == NULL && ct == NULL ? true : kafka_metadata_parts(s, a, st, ct, out);
}

/* Every topic req's principal may describe: the view's catalog in a
 * cluster, else those held here. */
static bool kafka_metadata_all(struct server *s, struct loop_req *req, struct kw_arena *a,
                               struct kafka_metadata_response *resp)
{
    uint32_t n = s->view != NULL ? s->view->topic_count : s->topic_count;
    struct kafka_metadata_response_topic *ts = kafka_array(a, n, sizeof(*ts));
    if (ts == NULL) {
        return false;
    }
    resp->topics.items = ts;
    resp->topics.count = 0;
    for (uint32_t i = 0; i < n; i++) {
        struct proto_str name =
            s->view != NULL
                ? proto_str_make(s->view->topics[i].name)
                : (struct proto_str){s->topics[i]->name, (int32_t)s->topics[i]->name_len};
        struct kafka_metadata_response_topic *t = &ts[resp->topics.count];
        if (!kafka_metadata_topic(s, req, a, name, false, t)) {
            return false;
        }
        resp->topics.count += t->error_code != KAFKA_ERR_TOPIC_AUTHORIZATION_FAILED;
    }
    return true;
}

/* The live brokers with a Kafka listener, at their Kafka addresses
 * (kafka_serve_broker(): a cluster's from their registrations; a single
 * broker is node 0), from the arena; NULL when it is spent. */
static struct kafka_metadata_response_broker *kafka_metadata_brokers(struct server *s,
                                                                     struct kw_arena *a,
                                                                     int32_t *count)
{
    uint32_t n = s->view != NULL ? s->view->broker_count : 1;
    struct kafka_metadata_response_broker *v = kafka_array(a, (int32_t)n, sizeof(*v));
    *count = 0;
    for (uint32_t i = 0; v != NULL && i < n; i++) {
        int32_t id = s->view != NULL ? s->view->brokers[i].id : SINGLE_BROKER_ID;
        const char *host;
        int32_t port;
        if (kafka_serve_broker(s, s->view != NULL ? id : s->broker_id, &host, &port) == 0) {
            v[(*count)++] = (struct kafka_metadata_response_broker){
                .node_id = id, .host = kw_str_make(host), .port = port, .rack = KW_STR_NULL};
        }
    }
    return v;
}

/* Topics named by id (v10+) are unknown: nagare's topics have none. */
void kafka_metadata(struct server *s, struct loop_req *req, const struct kafka_req_header *h,
                    struct rd *body, struct kw_arena *a)
{
    struct kafka_metadata_request in;
    int rc = kafka_metadata_request_decode(body, h->api_version, a, &in);
    if (rc != 0) {
        kafka_undecodable(req, "metadata", rc);
        return;
    }
    struct kafka_metadata_response resp;
    kafka_metadata_response_init(&resp);
    resp.brokers.items = kafka_metadata_brokers(s, a, &resp.brokers.count);
    resp.cluster_id = kw_str_make(s->cfg.cluster_name);
    resp.controller_id = s->view != NULL ? s->view->controller : SINGLE_BROKER_ID;
    bool ok = resp.brokers.items != NULL;
    bool all = in.topics.count < 0 || (in.topics.count == 0 && h->api_version == 0);
    if (ok && all) {
        ok = kafka_metadata_all(s, req, a, &resp); /* v0: an empty list is every topic */
    } else if (ok) {
        struct kafka_metadata_response_topic *ts = kafka_array(a, in.topics.count, sizeof(*ts));
        ok = ts != NULL;
        resp.topics.items = ts;
        resp.topics.count = ok ? in.topics.count : 0;
        bool create = in.allow_auto_topic_creation && s->cfg.auto_create_topics;
        for (int32_t i = 0; ok && i < in.topics.count; i++) {
            const struct kafka_metadata_request_topic *t = &in.topics.items[i];
            if (t->name.len < 0) {
                ts[i] = (struct kafka_metadata_response_topic){
                    .error_code = KAFKA_ERR_UNKNOWN_TOPIC_ID,
                    .name = KW_STR_NULL,
                    .topic_id = t->topic_id,
                    .topic_authorized_operations = INT32_MIN};
                continue;
            }
            ok = kafka_metadata_topic(s, req, a, kafka_serve_proto_str(t->name), create, &ts[i]);
        }
    }
    if (!ok) {
        kafka_arena_spent(req, "metadata");
        return;
    }
    kafka_serve_respond(req, h, &kafka_metadata_response_msg, &resp);
}

/* Kafka's -1 (latest) and -2 (earliest) are nagare's; other timestamps
 * through the time index, as nagare's ListOffsets answers them; the
 * client's current leader epoch is checked (KIP-320). The leader epoch of
 * the offset found is not kept: -1. */
void kafka_list_offsets(struct server *s, struct loop_req *req, const struct kafka_req_header *h,
                        struct rd *body, struct kw_arena *a)
{
    static_assert(PROTO_TIMESTAMP_LATEST == -1 && PROTO_TIMESTAMP_EARLIEST == -2,
                  "Kafka's ListOffsets timestamps");
    struct kafka_list_offsets_request in;
    int rc = kafka_list_offsets_request_decode(body, h->api_version, a, &in);
    if (rc != 0) {
        kafka_undecodable(req, "list_offsets", rc);
        return;
    }
    struct kafka_list_offsets_response resp;
    kafka_list_offsets_response_init(&resp);
    struct kafka_list_offsets_response_topic_response *ts =
        kafka_array(a, in.topics.count, sizeof(*ts));
    for (int32_t i = 0; ts != NULL && i < in.topics.count; i++) {
        const struct kafka_list_offsets_request_topic *t = &in.topics.items[i];
        int16_t refused =
            acl_serve_kafka(s, req, PROTO_ACL_RESOURCE_TOPIC, t->name, PROTO_ACL_OP_DESCRIBE);
        struct server_topic *st =
            refused == 0 ? server_topic_find(s, kafka_serve_proto_str(t->name)) : NULL;
        struct kafka_list_offsets_response_partition_response *ps =
            kafka_array(a, t->partitions.count, sizeof(*ps));
        if (ps == NULL) {
            ts = NULL;
            break;
        }
        ts[i] = (struct kafka_list_offsets_response_topic_response){
            .name = t->name, .partitions = {.items = ps, .count = t->partitions.count}};
        for (int32_t k = 0; k < t->partitions.count; k++) {
            const struct kafka_list_offsets_request_partition *p = &t->partitions.items[k];
            struct proto_list_offsets_resp_partition out;
            list_offset(st,
                        &(struct proto_list_offsets_req_partition){.partition = p->partition_index,
                                                                   .timestamp_ms = p->timestamp},
                        &out);
            if (out.err == 0) { /* the partition is there and served: at that epoch? */
                out.err = replica_check_reader_epoch(&st->parts[p->partition_index],
                                                     p->current_leader_epoch);
            }
            ps[k] = (struct kafka_list_offsets_response_partition_response){
                .partition_index = p->partition_index,
                .error_code = refused != 0 ? refused : kafka_err_from(out.err),
                .timestamp = out.err == 0 ? out.timestamp_ms : -1,
                .offset = out.err == 0 ? out.offset : -1,
                .leader_epoch = -1};
        }
    }
    if (ts == NULL) {
        kafka_arena_spent(req, "list_offsets");
        return;
    }
    resp.topics.items = ts;
    resp.topics.count = in.topics.count;
    kafka_serve_respond(req, h, &kafka_list_offsets_response_msg, &resp);
}

/* KIP-279's answer from the partition's epoch history, as nagare's. */
void kafka_offset_for_leader_epoch(struct server *s, struct loop_req *req,
                                   const struct kafka_req_header *h, struct rd *body,
                                   struct kw_arena *a)
{
    struct kafka_offset_for_leader_epoch_request in;
    int rc = kafka_offset_for_leader_epoch_request_decode(body, h->api_version, a, &in);
    if (rc != 0) {
        kafka_undecodable(req, "offset_for_leader_epoch", rc);
        return;
    }
    struct kafka_offset_for_leader_epoch_response resp;
    kafka_offset_for_leader_epoch_response_init(&resp);
    struct kafka_offset_for_leader_epoch_response_offset_for_leader_topic_result *ts =
        kafka_array(a, in.topics.count, sizeof(*ts));
    for (int32_t i = 0; ts != NULL && i < in.topics.count; i++) {
        const struct kafka_offset_for_leader_epoch_request_offset_for_leader_topic *t =
            &in.topics.items[i];
        int16_t refused =
            acl_serve_kafka(s, req, PROTO_ACL_RESOURCE_TOPIC, t->topic, PROTO_ACL_OP_DESCRIBE);
        struct server_topic *st =
            refused == 0 ? server_topic_find(s, kafka_serve_proto_str(t->topic)) : NULL;
        struct kafka_offset_for_leader_epoch_response_epoch_end_offset *ps =
            kafka_array(a, t->partitions.count, sizeof(*ps));
        if (ps == NULL) {
            ts = NULL;
            break;
        }
        ts[i] = (struct kafka_offset_for_leader_epoch_response_offset_for_leader_topic_result){
            .topic = t->topic, .partitions = {.items = ps, .count = t->partitions.count}};
        for (int32_t k = 0; k < t->partitions.count; k++) {
            const struct kafka_offset_for_leader_epoch_request_offset_for_leader_partition *p =
                &t->partitions.items[k];
            struct proto_epoch_resp_partition out;
            epoch_end(
                st,
                &(struct proto_epoch_req_partition){.partition = p->partition,
                                                    .current_leader_epoch = p->current_leader_epoch,
                                                    .leader_epoch = p->leader_epoch},
                true, &out);
            ps[k] = (struct kafka_offset_for_leader_epoch_response_epoch_end_offset){
                .error_code = refused != 0 ? refused : kafka_err_from(out.err),
                .partition = p->partition,
                .leader_epoch = out.leader_epoch,
                .end_offset = out.end_offset};
        }
    }
    if (ts == NULL) {
        kafka_arena_spent(req, "offset_for_leader_epoch");
        return;
    }
    resp.topics.items = ts;
    resp.topics.count = in.topics.count;
    kafka_serve_respond(req, h, &kafka_offset_for_leader_epoch_response_msg, &resp);
}

/* An idempotent producer gets a new id at epoch 0, as from nagare's
 * InitProducerId; a transactional one is refused (no transactions:
 * docs/kafka.md). */
void kafka_init_producer_id(struct server *s, struct loop_req *req,
                            const struct kafka_req_header *h, struct rd *body, struct kw_arena *a)
{
    struct kafka_init_producer_id_request in;
    int rc = kafka_init_producer_id_request_decode(body, h->api_version, a, &in);
    if (rc != 0) {
        kafka_undecodable(req, "init_producer_id", rc);
        return;
    }
    struct kafka_init_producer_id_response resp;
    kafka_init_producer_id_response_init(&resp);
    bool allowed = acl_serve_idempotent(s, req);
    rc = in.transactional_id.len >= 0 ? -NG_ETRANSACTIONAL
         : allowed                    ? producer_id_new(s, &resp.producer_id)
                                      : -NG_EUNAUTHORIZED;
    resp.error_code = in.transactional_id.len >= 0 ? KAFKA_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED
                      : !allowed                   ? KAFKA_ERR_CLUSTER_AUTHORIZATION_FAILED
                                                   : kafka_err_from(rc);
    resp.producer_id = rc == 0 ? resp.producer_id : -1;
    resp.producer_epoch = rc == 0 ? 0 : -1;
    kafka_serve_respond(req, h, &kafka_init_producer_id_response_msg, &resp);
}

/* ---- Kafka's CreateTopics, DeleteTopics ---- */

/* The answer of a Kafka admin_call (CreateTopics, DeleteTopics), once each
 * topic is settled; the call is freed by the caller. */
static void kafka_admin_answer(const struct admin_call *c)
{
    struct kafka_req_header h = {.api_key = c->kind == ADMIN_CREATE ? KAFKA_API_CREATE_TOPICS
                                                                    : KAFKA_API_DELETE_TOPICS,
                                 .api_version = (int16_t)c->version,
                                 .correlation_id = (int32_t)c->correlation_id};
    struct kafka_create_topics_response_creatable_topic_result *created = NULL;
    struct kafka_delete_topics_response_deletable_topic_result *deleted = NULL;
    if (c->kind == ADMIN_CREATE) {
        created = calloc(c->count + 1, sizeof(*created));
    } else {
        deleted = calloc(c->count + 1, sizeof(*deleted));
    }
    if (created == NULL && deleted == NULL) {
        log_warn("kafka: topics answer: %s; closing", err_str(-ENOMEM));
        loop_req_fail(c->req);
        return;
    }
    for (uint32_t i = 0; i < c->count; i++) {
        const struct admin_topic *t = &c->topics[i];
        int16_t err = t->kafka_err != 0 ? t->kafka_err : kafka_err_from(t->err);
        if (created != NULL) {
            created[i] = (struct kafka_create_topics_response_creatable_topic_result){
                .name = kafka_serve_kw_str(t->name),
                .error_code = err,
                .error_message = KW_STR_NULL,
                .num_partitions = err == 0 ? t->partitions : -1,
                .replication_factor = err == 0 ? t->factor : -1,
                .configs = {.items = NULL, .count = -1}};
        } else {
            deleted[i] = (struct kafka_delete_topics_response_deletable_topic_result){
                .name = kafka_serve_kw_str(t->name),
                .error_code = err,
                .error_message = KW_STR_NULL};
        }
    }
    if (created != NULL) {
        struct kafka_create_topics_response resp;
        kafka_create_topics_response_init(&resp);
        resp.topics.items = created;
        resp.topics.count = (int32_t)c->count;
        kafka_serve_respond(c->req, &h, &kafka_create_topics_response_msg, &resp);
    } else {
        struct kafka_delete_topics_response resp;
        kafka_delete_topics_response_init(&resp);
        resp.responses.items = deleted;
        resp.responses.count = (int32_t)c->count;
        kafka_serve_respond(c->req, &h, &kafka_delete_topics_response_msg, &resp);
    }
    free(created);
    free(deleted);
}

/* A config value as an integer: 0, or -1 when it is not one. */
static int kafka_config_int(struct kw_str v, int64_t *out)
{
    char buf[24];
    if (v.len <= 0 || (size_t)v.len >= sizeof(buf)) {
        return -1;
    }
    memcpy(buf, v.ptr, (size_t)v.len);
    buf[v.len] = '\0';
    char *end;
    errno = 0;
    long long n = strtoll(buf, &end, 10);
    if (errno != 0 || *end != '\0') {
        return -1;
    }
    *out = n;
    return 0;
}

/* A topic of Kafka's CreateTopics as nagare's: its configs by Kafka's names
 * (retention.ms, retention.bytes with -1 for no limit, segment.bytes,
 * max.message.bytes, cleanup.policy delete, unclean.leader.election.enable).
 * Returns 0, or the Kafka error: INVALID_CONFIG for another config or a
 * value that is not one, INVALID_REQUEST for replicas assigned by hand. */
static int16_t kafka_topic_to_create(const struct kafka_create_topics_request_creatable_topic *kt,
                                     struct proto_create_topic *ct)
{
    *ct = (struct proto_create_topic){.name = kafka_serve_proto_str(kt->name),
                                      .partition_count = kt->num_partitions,
                                      .retention_ms = PROTO_CONFIG_DEFAULT,
                                      .retention_bytes = PROTO_CONFIG_DEFAULT,
                                      .segment_bytes = PROTO_CONFIG_DEFAULT,
                                      .batch_bytes_max = PROTO_CONFIG_DEFAULT,
                                      .replication_factor = kt->replication_factor};
    if (kt->assignments.count > 0) {
        return KAFKA_ERR_INVALID_REQUEST;
    }
    for (int32_t i = 0; i < kt->configs.count; i++) {
        struct kw_str name = kt->configs.items[i].name;
        struct kw_str value = kt->configs.items[i].value;
        int64_t v = 0;
        bool number = kafka_config_int(value, &v) == 0;
        if (value.len < 0) {
            continue; /* null: the default */
        } else if (number && kw_str_eq(name, "retention.ms")) {
            ct->retention_ms = v == -1 ? PROTO_CONFIG_UNLIMITED : v;
        } else if (number && kw_str_eq(name, "retention.bytes")) {
            ct->retention_bytes = v == -1 ? PROTO_CONFIG_UNLIMITED : v;
        } else if (number && kw_str_eq(name, "segment.bytes")) {
            ct->segment_bytes = v;
        } else if (number && kw_str_eq(name, "max.message.bytes") && v > 0 && v <= INT32_MAX) {
            ct->batch_bytes_max = (int32_t)v;
        } else if (kw_str_eq(name, "cleanup.policy") && kw_str_eq(value, "delete")) {
            continue;
        } else if (kw_str_eq(name, "unclean.leader.election.enable") &&
                   (kw_str_eq(value, "true") || kw_str_eq(value, "false"))) {
            ct->unclean_leader_election = kw_str_eq(value, "true") ? 1 : 0;
        } else {
            return KAFKA_ERR_INVALID_CONFIG;
        }
    }
    return KAFKA_ERR_NONE;
}

/* One topic of Kafka's CreateTopics: through etcd in a cluster, else here;
 * validate_only checks without creating. */
static void kafka_create_one(struct server *s, struct admin_call *c,
                             const struct kafka_create_topics_request_creatable_topic *kt,
                             bool validate_only)
{
    struct proto_create_topic ct;
    int16_t kerr = kafka_topic_to_create(kt, &ct);
    if (kerr == 0 && !acl_serve_may_create(s, c->req, ct.name)) {
        kerr = KAFKA_ERR_TOPIC_AUTHORIZATION_FAILED;
    }
    if (kerr == 0 && s->session != NULL && !validate_only) {
        admin_topic_start(s, c, ct.name, &ct);
        return;
    }
    char cname[PROTO_TOPIC_NAME_BYTES_MAX + 1];
    struct admin_topic *t = admin_item_add(c, ct.name, ADMIN_ITEM_TOPIC, cname);
    t->kafka_err = kerr;
    if (t->err != 0 || kerr != 0) {
        return;
    }
    if (validate_only) {
        t->err = server_topic_reserved(ct.name)          ? -NG_EBADNAME
                 : server_topic_find(s, ct.name) != NULL ? -NG_ETOPIC_EXISTS
                                                         : 0;
        return;
    }
    struct server_topic *st;
    t->err = create_local(s, &ct, &st);
    if (t->err == 0) {
        t->partitions = st->cfg.partitions;
        t->factor = 1;
    }
}

void kafka_create_topics(struct server *s, struct loop_req *req, const struct kafka_req_header *h,
                         struct rd *body, struct kw_arena *a)
{
    struct kafka_create_topics_request in;
    int rc = kafka_create_topics_request_decode(body, h->api_version, a, &in);
    if (rc != 0) {
        kafka_undecodable(req, "create_topics", rc);
        return;
    }
    struct admin_call *c =
        admin_call_new(s, req, (uint32_t)h->correlation_id, (uint16_t)h->api_version, ADMIN_CREATE,
                       (uint32_t)in.topics.count);
    if (c == NULL) {
        kafka_undecodable(req, "create_topics", -ENOMEM);
        return;
    }
    c->kafka = true;
    for (int32_t i = 0; i < in.topics.count; i++) {
        kafka_create_one(s, c, &in.topics.items[i], in.validate_only);
    }
    if (--c->pending == 0) {
        admin_call_answer(c);
    }
}

/* Topics by name (v0-5), or by name or id (v6: by id UNKNOWN_TOPIC_ID). */
void kafka_delete_topics(struct server *s, struct loop_req *req, const struct kafka_req_header *h,
                         struct rd *body, struct kw_arena *a)
{
    struct kafka_delete_topics_request in;
    int rc = kafka_delete_topics_request_decode(body, h->api_version, a, &in);
    if (rc != 0) {
        kafka_undecodable(req, "delete_topics", rc);
        return;
    }
    bool by_state = h->api_version >= 6;
    int32_t count = by_state ? in.topics.count : in.topic_names.count;
    struct admin_call *c = admin_call_new(s, req, (uint32_t)h->correlation_id,
                                          (uint16_t)h->api_version, ADMIN_DELETE, (uint32_t)count);
    if (c == NULL) {
        kafka_undecodable(req, "delete_topics", -ENOMEM);
        return;
    }
    c->kafka = true;
    for (int32_t i = 0; i < count; i++) {
        struct proto_str name =
            kafka_serve_proto_str(by_state ? in.topics.items[i].name : in.topic_names.items[i]);
        if (name.len < 0) {
            struct admin_topic *t = &c->topics[c->count++];
            *t = (struct admin_topic){
                .call = c, .name = name, .kafka_err = KAFKA_ERR_UNKNOWN_TOPIC_ID};
            continue;
        }
        int16_t refused = acl_serve_kafka(s, req, PROTO_ACL_RESOURCE_TOPIC,
                                          kafka_serve_kw_str(name), PROTO_ACL_OP_DELETE);
        if (refused != 0) {
            struct admin_topic *t = &c->topics[c->count++];
            *t = (struct admin_topic){.call = c, .name = name, .kafka_err = refused};
            continue;
        }
        if (s->session != NULL) {
            admin_topic_start(s, c, name, NULL);
            continue;
        }
        char cname[PROTO_TOPIC_NAME_BYTES_MAX + 1];
        struct admin_topic *t = admin_item_add(c, name, ADMIN_ITEM_TOPIC, cname);
        t->err = t->err != 0 ? t->err : delete_local(s, name);
    }
    if (--c->pending == 0) {
        admin_call_answer(c);
    }
}

/* ---- Kafka's DescribeConfigs ---- */

/* Kafka's resource types and config types (DescribeConfigs) that nagare
 * answers with. */
#define KAFKA_RESOURCE_TOPIC 2
#define KAFKA_RESOURCE_BROKER 4
#define KAFKA_CONFIG_TYPE_STRING 2
#define KAFKA_CONFIG_TYPE_INT 3
#define KAFKA_CONFIG_TYPE_LONG 5
#define KAFKA_CONFIG_SOURCE_TOPIC 1 /* DYNAMIC_TOPIC_CONFIG */

/* A topic's settings by Kafka's names: -1 retention is no limit in both. */
#define KAFKA_TOPIC_CONFIGS 6

/* Whether keys (null: every config) names name. */
static bool kafka_config_asked(const struct kafka_describe_configs_request_resource *r,
                               const char *name)
{
    for (int32_t i = 0; i < r->configuration_keys.count; i++) {
        if (kw_str_eq(r->configuration_keys.items[i], name)) {
            return true;
        }
    }
    return r->configuration_keys.count < 0;
}

/* The configs of topic t asked for by r, into out (KAFKA_TOPIC_CONFIGS of
 * room). Returns how many, or -1 when the arena is spent. */
static int32_t kafka_topic_configs(const struct server_topic *t,
                                   const struct kafka_describe_configs_request_resource *r,
                                   struct kw_arena *a,
                                   struct kafka_describe_configs_response_resource_result *out)
{
    const struct {
        const char *name;
        int64_t value; /* INT64_MIN: the string below */
        const char *text;
        int8_t type;
    } all[KAFKA_TOPIC_CONFIGS] = {
        {"retention.ms", t->cfg.retention_ms, NULL, KAFKA_CONFIG_TYPE_LONG},
        {"retention.bytes", t->cfg.retention_bytes, NULL, KAFKA_CONFIG_TYPE_LONG},
        {"segment.bytes", t->cfg.segment_bytes, NULL, KAFKA_CONFIG_TYPE_LONG},
        {"segment.ms", t->cfg.segment_ms, NULL, KAFKA_CONFIG_TYPE_LONG},
        {"max.message.bytes", t->cfg.batch_bytes_max, NULL, KAFKA_CONFIG_TYPE_INT},
        {"cleanup.policy", INT64_MIN, "delete", KAFKA_CONFIG_TYPE_STRING},
    };
    int32_t n = 0;
    for (size_t i = 0; i < KAFKA_TOPIC_CONFIGS; i++) {
        if (!kafka_config_asked(r, all[i].name)) {
            continue;
        }
        char *text = kafka_array(a, 24, 1);
        if (text == NULL) {
            return -1;
        }
        if (all[i].text != NULL) {
            snprintf(text, 24, "%s", all[i].text);
        } else {
            snprintf(text, 24, "%lld", (long long)all[i].value);
        }
        out[n++] = (struct kafka_describe_configs_response_resource_result){
            .name = kw_str_make(all[i].name),
            .value = kw_str_make(text),
            .config_source = KAFKA_CONFIG_SOURCE_TOPIC,
            .synonyms = {.items = NULL, .count = 0},
            .config_type = all[i].type,
            .documentation = KW_STR_NULL};
    }
    return n;
}

/* A topic's settings by Kafka's names (retention.ms, retention.bytes,
 * segment.bytes, segment.ms, max.message.bytes, cleanup.policy), for a
 * topic this broker holds; a broker resource has none to give; any other
 * resource is INVALID_REQUEST. No synonyms, no documentation. */
void kafka_describe_configs(struct server *s, struct loop_req *req,
                            const struct kafka_req_header *h, struct rd *body, struct kw_arena *a)
{
    struct kafka_describe_configs_request in;
    int rc = kafka_describe_configs_request_decode(body, h->api_version, a, &in);
    if (rc != 0) {
        kafka_undecodable(req, "describe_configs", rc);
        return;
    }
    struct kafka_describe_configs_response resp;
    kafka_describe_configs_response_init(&resp);
    struct kafka_describe_configs_response_result *rs =
        kafka_array(a, in.resources.count, sizeof(*rs));
    for (int32_t i = 0; rs != NULL && i < in.resources.count; i++) {
        const struct kafka_describe_configs_request_resource *r = &in.resources.items[i];
        rs[i] = (struct kafka_describe_configs_response_result){.error_message = KW_STR_NULL,
                                                                .resource_type = r->resource_type,
                                                                .resource_name = r->resource_name};
        bool topic = r->resource_type == KAFKA_RESOURCE_TOPIC;
        int16_t refused =
            topic || r->resource_type == KAFKA_RESOURCE_BROKER
                ? acl_serve_kafka(s, req,
                                  topic ? PROTO_ACL_RESOURCE_TOPIC : PROTO_ACL_RESOURCE_CLUSTER,
                                  topic ? r->resource_name : kw_str_make(PROTO_ACL_CLUSTER_NAME),
                                  PROTO_ACL_OP_DESCRIBE_CONFIGS)
                : 0;
        struct server_topic *st =
            topic && refused == 0 ? server_topic_find(s, kafka_serve_proto_str(r->resource_name))
                                  : NULL;
        if (refused != 0) {
            rs[i].error_code = refused;
        } else if (topic && st == NULL) {
            rs[i].error_code = KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION;
        } else if (r->resource_type != KAFKA_RESOURCE_TOPIC &&
                   r->resource_type != KAFKA_RESOURCE_BROKER) {
            rs[i].error_code = KAFKA_ERR_INVALID_REQUEST;
        }
        if (st == NULL) {
            continue;
        }
        struct kafka_describe_configs_response_resource_result *cs =
            kafka_array(a, KAFKA_TOPIC_CONFIGS, sizeof(*cs));
        int32_t n = cs != NULL ? kafka_topic_configs(st, r, a, cs) : -1;
        if (n < 0) {
            rs = NULL;
            break;
        }
        rs[i].configs.items = cs;
        rs[i].configs.count = n;
    }
    if (rs == NULL) {
        kafka_arena_spent(req, "describe_configs");
        return;
    }
    resp.results.items = rs;
    resp.results.count = in.resources.count;
    kafka_serve_respond(req, h, &kafka_describe_configs_response_msg, &resp);
}
