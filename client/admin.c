/*
 * client/admin.c — the admin client: synchronous CreateTopics, DeleteTopics,
 * Metadata (v1 where the broker speaks it, for each topic's configuration)
 * and ListOffsets, each bounded by the client's timeout; and the calls of
 * admin_int.h, which every other admin call goes through.
 *
 * Connections: a struct brokers, the bootstrap broker's and those of the
 * brokers a Metadata answer named (asked for when the client is made).
 * A call any broker answers goes to the bootstrap broker while it is up,
 * else to another up; a group call to its coordinator; ListOffsets to the
 * partition's leader. Stalls (client/brokers.h): a read-only call is
 * watched (brokers_watch_init()) and made again at another broker once
 * its broker was given up; a call that changes state is sent once.
 *
 * A describe answer is copied into one allocation (topic array, partition
 * arrays, names), so nagare_topics_free() is a single free().
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/admin_int.h"
#include "client/brokers.h"
#include "client/calls.h"
#include "client/conn.h"
#include "client/nagare.h"

/* A Metadata answer lists every topic (up to PROTO_TOPICS_MAX) with every
 * partition: the broker's frame default bounds it. */
#define ADMIN_RESP_BYTES_MAX PROTO_FRAME_BYTES_DEFAULT
#define ADMIN_REQUEST_BYTES (128 + PROTO_TOPIC_NAME_BYTES_MAX)
/* stall_ms's default: as the producer's and the consumers'. */
#define ADMIN_STALL_MS_DEFAULT 2000

/* A coordinator (docs/cluster.md, section 5): the leader of partition 0
 * of its internal topic. */
struct admin_coord {
    const char *topic;
    struct cbroker *at; /* NULL: to be found */
};

struct nagare_admin {
    struct brokers bs;
    uint32_t timeout_ms;
    uint32_t stall_ms; /* 0: calls are not watched */
    /* the coordinators of consumer and of share groups */
    struct admin_coord coords[ADMIN_COORDS];
};

int nagare_admin_new(const char *bootstrap, uint32_t timeout_ms, nagare_admin **out)
{
    return nagare_admin_new_secure(bootstrap, timeout_ms, NULL, NULL, out);
}

int nagare_admin_new_login(const char *bootstrap, uint32_t timeout_ms,
                           const struct nagare_login *login, nagare_admin **out)
{
    return nagare_admin_new_secure(bootstrap, timeout_ms, login, NULL, out);
}

int nagare_admin_new_tls(const char *bootstrap, uint32_t timeout_ms, const struct nagare_tls *tls,
                         nagare_admin **out)
{
    return nagare_admin_new_secure(bootstrap, timeout_ms, NULL, tls, out);
}

int nagare_admin_new_secure(const char *bootstrap, uint32_t timeout_ms,
                            const struct nagare_login *login, const struct nagare_tls *tls,
                            nagare_admin **out)
{
    if (bootstrap == NULL || out == NULL || timeout_ms == 0 || timeout_ms > INT32_MAX) {
        return -NG_EBADARG;
    }
    *out = NULL;
    nagare_admin *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        return -ENOMEM;
    }
    a->timeout_ms = timeout_ms;
    a->stall_ms = ADMIN_STALL_MS_DEFAULT;
    a->coords[ADMIN_COORD_GROUPS].topic = PROTO_OFFSETS_TOPIC;
    a->coords[ADMIN_COORD_SHARE].topic = PROTO_SHARE_STATE_TOPIC;
    struct conn_config cc = {.bootstrap = bootstrap,
                             .request_timeout_ms = timeout_ms,
                             .resp_bytes_max = ADMIN_RESP_BYTES_MAX,
                             .tx_bytes_max = 1u << 16,
                             .pending_max = 4};
    int rc = login != NULL
                 ? conn_login_make(&cc.login, login->user, login->password, login->mechanism)
                 : 0;
    rc = rc == 0 ? conn_config_tls(&cc, tls) : rc;
    if (rc != 0) {
        explicit_bzero(&cc.login, sizeof(cc.login));
        conn_config_tls_done(&cc);
        free(a);
        return rc;
    }
    rc = brokers_init(&a->bs, &cc);
    conn_config_tls_done(&cc);
    explicit_bzero(&cc.login, sizeof(cc.login));
    rc = rc == 0 ? conn_wait_up(&a->bs.boot->conn, (int)timeout_ms) : rc;
    /* The other brokers, to turn to when the one asked stalls. A broker
     * that answers no Metadata yet (logins required, none given) names
     * none: its calls then wait for their answer, as before. */
    if (rc == 0 && brokers_refresh(&a->bs, clock_mono_ms() + timeout_ms) != 0) {
        a->stall_ms = 0; /* no other broker known: nobody to ask */
    }
    if (rc != 0) {
        brokers_fini(&a->bs);
        free(a);
        return rc;
    }
    *out = a;
    return 0;
}

void nagare_admin_destroy(nagare_admin *a)
{
    if (a != NULL) {
        brokers_fini(&a->bs);
        free(a);
    }
}

void nagare_admin_set_stall_ms(nagare_admin *a, uint32_t stall_ms)
{
    ASSERT(a != NULL);
    a->stall_ms = stall_ms;
}

void nagare_topic_config_default(struct nagare_topic_config *c)
{
    *c = (struct nagare_topic_config){.partitions = -1,
                                      .retention_ms = -1,
                                      .retention_bytes = -1,
                                      .segment_bytes = -1,
                                      .batch_bytes_max = -1,
                                      .replication_factor = -1};
}

static int64_t deadline_of(const nagare_admin *a) { return clock_mono_ms() + a->timeout_ms; }

static bool name_ok(const char *name)
{
    return name != NULL &&
           proto_topic_name_valid(name, strnlen(name, PROTO_TOPIC_NAME_BYTES_MAX + 1));
}

/* ---- calls (admin_int.h) ---- */

/* Calls that change nothing, which may be made again at another broker
 * (or coordinator) once the one asked was given up or lost: a listing or
 * description answers the same wherever it is asked. Every other call
 * (create, delete, alter, reassign, reset, redrive, ACL and user changes)
 * is sent once: it may have been done by the broker that went quiet. */
static bool read_only(uint16_t api_key)
{
    return api_key == PROTO_API_METADATA || api_key == PROTO_API_DESCRIBE_ACLS ||
           api_key == PROTO_API_DESCRIBE_USERS || api_key == PROTO_API_LIST_GROUPS ||
           api_key == PROTO_API_DESCRIBE_GROUP || api_key == PROTO_API_OFFSET_FETCH;
}

/* The broker for a call any broker answers: the bootstrap one while it is
 * up, else another that is up, else the bootstrap one (connected by the
 * call). */
static struct cbroker *any_broker(nagare_admin *a)
{
    struct cbroker *b = brokers_meta(&a->bs);
    return b != NULL ? b : a->bs.boot;
}

int admin_call(nagare_admin *a, uint16_t api_key, size_t need, conn_encode_fn encode,
               conn_decode_fn decode, void *arg)
{
    int64_t deadline = deadline_of(a);
    bool again = read_only(api_key);
    for (;;) {
        struct cbroker *b = any_broker(a);
        struct brokers_watch w;
        /* Only a read-only call is watched: "another broker answers" says
         * nothing of whether a slow one did a change. */
        const struct conn_watch *watch =
            brokers_watch_init(&w, &a->bs, b, NULL, 0, again ? a->stall_ms : 0, deadline);
        int rc = conn_call_watched(&b->conn, api_key, need, encode, decode, arg, deadline, watch);
        if (!again || rc != -NG_EDISCONNECTED || clock_mono_ms() >= deadline) {
            return rc;
        }
    }
}

/* ---- create, delete ---- */

struct topic_op {
    const char *name;
    const struct nagare_topic_config *cfg; /* NULL: delete */
};

static int topic_op_encode(void *arg, struct wr *w, uint32_t corr, uint16_t version)
{
    const struct topic_op *op = arg;
    struct proto_enc e;
    if (op->cfg == NULL) {
        proto_delete_topics_req_begin(&e, w, version, corr, proto_str_make(CONN_CLIENT_ID));
        proto_enc_topic(&e, proto_str_make(op->name));
        return proto_enc_end(&e);
    }
    int16_t rf = op->cfg->replication_factor;
    if (version == 0 && rf != PROTO_CONFIG_DEFAULT && rf != 1) {
        return -NG_EBADVERSION; /* v0 cannot ask for copies: refuse, not drop it */
    }
    if (version < 2 && op->cfg->unclean_leader_election) {
        return -NG_EBADVERSION; /* nor v1 for unclean election */
    }
    proto_create_topics_req_begin(&e, w, version, corr, proto_str_make(CONN_CLIENT_ID));
    proto_create_topics_req_topic(
        &e, &(struct proto_create_topic){.name = proto_str_make(op->name),
                                         .partition_count = op->cfg->partitions,
                                         .retention_ms = op->cfg->retention_ms,
                                         .retention_bytes = op->cfg->retention_bytes,
                                         .segment_bytes = op->cfg->segment_bytes,
                                         .batch_bytes_max = op->cfg->batch_bytes_max,
                                         .replication_factor = rf,
                                         .unclean_leader_election =
                                             op->cfg->unclean_leader_election ? 1 : 0});
    return proto_enc_end(&e);
}

static int topic_op_decode(void *arg, struct rd *body, uint16_t version)
{
    const struct topic_op *op = arg;
    struct proto_dec d;
    int rc = op->cfg == NULL ? proto_delete_topics_resp_decode(body, version, &d)
                             : proto_create_topics_resp_decode(body, version, &d);
    struct proto_topic_result r;
    if (rc != 0 || !proto_next_topic_result(&d, &r) || !proto_str_eq(r.name, op->name)) {
        return -NG_EPROTO;
    }
    return r.err;
}

/* A topic a cluster just created is in etcd; its brokers learn of it, and
 * the controller elects its leaders, moments later. Waits, until the
 * request timeout, for the broker asked to list it with a leader for every
 * partition, so that a producer or consumer started next finds it (a
 * single broker lists it at once). Returns 0 either way (the topic is
 * created), or the call's error. */
static int topic_await_leaders(nagare_admin *a, const char *name)
{
    int64_t deadline = deadline_of(a);
    uint32_t backoff_ms = 0;
    for (;;) {
        bool led = false;
        int rc = calls_topic_led(&any_broker(a)->conn, name, deadline, &led);
        if (rc != 0 || led || clock_mono_ms() >= deadline) {
            return rc;
        }
        (void)poll(NULL, 0, (int)conn_backoff_next(&backoff_ms));
    }
}

int nagare_topic_create(nagare_admin *a, const char *name, const struct nagare_topic_config *c)
{
    ASSERT(a != NULL);
    if (c == NULL) {
        return -NG_EBADARG;
    }
    if (!name_ok(name)) {
        return -NG_EBADNAME;
    }
    struct topic_op op = {.name = name, .cfg = c};
    int rc = admin_call(a, PROTO_API_CREATE_TOPICS, ADMIN_REQUEST_BYTES, topic_op_encode,
                        topic_op_decode, &op);
    return rc == 0 ? topic_await_leaders(a, name) : rc;
}

int nagare_topic_delete(nagare_admin *a, const char *name)
{
    ASSERT(a != NULL);
    if (!name_ok(name)) {
        return -NG_EBADNAME;
    }
    struct topic_op op = {.name = name, .cfg = NULL};
    return admin_call(a, PROTO_API_DELETE_TOPICS, ADMIN_REQUEST_BYTES, topic_op_encode,
                      topic_op_decode, &op);
}

/* ---- describe ---- */

struct describe {
    const char *name; /* NULL: every topic */
    struct nagare_topic_info *topics;
    size_t count;
};

static int describe_encode(void *arg, struct wr *w, uint32_t corr, uint16_t version)
{
    const struct describe *ds = arg;
    struct proto_enc e;
    proto_metadata_req_begin(&e, w, version, corr, proto_str_make(CONN_CLIENT_ID),
                             ds->name == NULL);
    if (ds->name != NULL) {
        proto_enc_topic(&e, proto_str_make(ds->name));
    }
    return proto_enc_end(&e);
}

/* Bytes of the one allocation holding the answer: topics, then every
 * partition, then the names. */
static size_t describe_bytes(struct proto_dec d, size_t *topics_out, size_t *parts_out)
{
    size_t topics = 0;
    size_t parts = 0;
    size_t names = 0;
    struct proto_topic t;
    while (proto_next_topic(&d, &t)) {
        topics++;
        parts += (size_t)t.partition_count;
        names += (size_t)t.name.len + 1;
    }
    *topics_out = topics;
    *parts_out = parts;
    return topics * sizeof(struct nagare_topic_info) +
           parts * sizeof(struct nagare_partition_info) + names;
}

static void topic_info_fill(struct nagare_topic_info *ti, const struct proto_topic *t,
                            const struct proto_metadata_partition *first, uint16_t version)
{
    ti->err = t->err;
    ti->partition_count = (size_t)t->partition_count;
    struct nagare_topic_config *cfg = &ti->config;
    nagare_topic_config_default(cfg);
    ti->segment_ms = -1;
    if (version >= 1 && t->err == 0) {
        cfg->partitions = t->config.partition_count;
        cfg->retention_ms = t->config.retention_ms;
        cfg->retention_bytes = t->config.retention_bytes;
        cfg->segment_bytes = t->config.segment_bytes;
        cfg->batch_bytes_max = t->config.batch_bytes_max;
        ti->segment_ms = t->config.segment_ms;
    } else if (t->err == 0) {
        cfg->partitions = t->partition_count;
    }
    if (version >= 2 && first != NULL) {
        cfg->replication_factor = first->replica_count;
    }
}

static int describe_decode(void *arg, struct rd *body, uint16_t version)
{
    struct describe *ds = arg;
    struct proto_metadata_resp m;
    struct proto_dec d;
    if (proto_metadata_resp_decode(body, version, &m, &d) != 0) {
        return -NG_EPROTO;
    }
    size_t count;
    size_t part_total;
    size_t bytes = describe_bytes(d, &count, &part_total);
    uint8_t *block = calloc(1, bytes > 0 ? bytes : 1);
    if (block == NULL) {
        return -ENOMEM;
    }
    struct nagare_topic_info *topics = (struct nagare_topic_info *)block;
    struct nagare_partition_info *parts = (struct nagare_partition_info *)(topics + count);
    char *names = (char *)(parts + part_total);
    struct proto_topic t;
    for (size_t i = 0; proto_next_topic(&d, &t); i++) {
        memcpy(names, t.name.ptr, (size_t)t.name.len);
        names[t.name.len] = '\0';
        topics[i].name = names;
        names += t.name.len + 1;
        topics[i].partitions = parts;
        struct proto_metadata_partition mp;
        for (int32_t k = 0; proto_metadata_resp_next_partition(&d, &mp); k++) {
            if (k == 0) {
                topic_info_fill(&topics[i], &t, &mp, version);
            }
            *parts++ = (struct nagare_partition_info){.partition = mp.partition,
                                                      .err = mp.err,
                                                      .offset_earliest = mp.offset_earliest,
                                                      .offset_latest = mp.offset_latest};
        }
        if (t.partition_count == 0) {
            topic_info_fill(&topics[i], &t, NULL, version);
        }
    }
    ASSERT((uint8_t *)names == block + bytes || bytes == 0);
    ds->topics = topics;
    ds->count = count;
    return 0;
}

int nagare_topics_describe(nagare_admin *a, const char *name, const struct nagare_topic_info **out,
                           size_t *count_out)
{
    ASSERT(a != NULL && out != NULL && count_out != NULL);
    if (name != NULL && !name_ok(name)) {
        return -NG_EBADNAME;
    }
    struct describe ds = {.name = name};
    int rc = admin_call(a, PROTO_API_METADATA, ADMIN_REQUEST_BYTES, describe_encode,
                        describe_decode, &ds);
    if (rc != 0) {
        return rc;
    }
    if (name != NULL && (ds.count != 1 || ds.topics[0].err != 0)) {
        rc = ds.count == 1 ? ds.topics[0].err : -NG_EPROTO;
        free(ds.topics);
        return rc;
    }
    *out = ds.topics;
    *count_out = ds.count;
    return 0;
}

void nagare_topics_free(nagare_admin *a, const struct nagare_topic_info *topics)
{
    (void)a;
    free((void *)topics);
}

/* ---- offsets ---- */

int nagare_offset_lookup(nagare_admin *a, const char *topic, int32_t partition, int64_t ts_ms,
                         int64_t *offset_out)
{
    ASSERT(a != NULL && offset_out != NULL);
    if (!name_ok(topic)) {
        return -NG_EBADNAME;
    }
    if (partition < 0 ||
        (ts_ms < 0 && ts_ms != NAGARE_OFFSET_BEGINNING && ts_ms != NAGARE_OFFSET_END)) {
        return -NG_EBADARG;
    }
    /* In a cluster only the partition's leader answers; one that stalls
     * is given up once another is named, and asked again (it reads). */
    int64_t deadline = deadline_of(a);
    for (;;) {
        struct cbroker *leader;
        int rc = brokers_leader_lookup(&a->bs, topic, partition, a->stall_ms, deadline, &leader);
        if (rc == 0 && leader == NULL) {
            rc = -NG_ENOT_LEADER; /* none now: try later */
        }
        if (rc == 0) {
            struct brokers_watch w;
            const struct conn_watch *watch =
                brokers_watch_init(&w, &a->bs, leader, topic, partition, a->stall_ms, deadline);
            rc = calls_list_offset(&leader->conn, topic, partition, ts_ms, deadline, watch,
                                   offset_out);
        }
        if (rc != -NG_EDISCONNECTED || clock_mono_ms() >= deadline) {
            return rc;
        }
    }
}

/* ---- the coordinators ---- */

/* Finds c when not known: the leader of its topic's partition 0; a broker
 * that knows no such topic is its own (a single broker). Returns 0 or the
 * call's error (-NG_ENOT_COORDINATOR: none now). */
static int coordinator_find(nagare_admin *a, struct admin_coord *c)
{
    if (c->at != NULL) {
        return 0;
    }
    struct cbroker *leader;
    int rc = brokers_leader_lookup(&a->bs, c->topic, 0, a->stall_ms, deadline_of(a), &leader);
    if (rc == -NG_EUNKNOWN_TOPIC) {
        leader = any_broker(a);
        rc = 0;
    }
    if (rc == 0 && leader == NULL) {
        rc = -NG_ENOT_COORDINATOR;
    }
    c->at = rc == 0 ? leader : NULL;
    return rc;
}

int admin_coordinator_call(nagare_admin *a, enum admin_coordinator which, uint16_t api_key,
                           size_t need, conn_encode_fn encode, conn_decode_fn decode, void *arg)
{
    ASSERT((size_t)which < ADMIN_COORDS);
    struct admin_coord *c = &a->coords[which];
    int64_t deadline = deadline_of(a);
    uint32_t backoff_ms = 0;
    for (;;) {
        int rc = coordinator_find(a, c);
        if (rc == 0) {
            /* Given up only once another broker names another coordinator:
             * a change is then not made again (it may have been done). */
            struct brokers_watch w;
            const struct conn_watch *watch =
                brokers_watch_init(&w, &a->bs, c->at, c->topic, 0, a->stall_ms, deadline);
            rc = conn_call_watched(&c->at->conn, api_key, need, encode, decode, arg, deadline,
                                   watch);
        }
        if (rc == -NG_ENOT_COORDINATOR || rc == -NG_EDISCONNECTED) {
            c->at = NULL; /* moved, or gone: found again */
        }
        bool again = rc == -NG_ENOT_COORDINATOR || (rc == -NG_EDISCONNECTED && read_only(api_key));
        if (!again || clock_mono_ms() >= deadline) {
            return rc;
        }
        if (rc == -NG_ENOT_COORDINATOR) {
            (void)poll(NULL, 0, (int)conn_backoff_next(&backoff_ms));
        }
    }
}

int admin_group_call(nagare_admin *a, uint16_t api_key, size_t need, conn_encode_fn encode,
                     conn_decode_fn decode, void *arg)
{
    return admin_coordinator_call(a, ADMIN_COORD_GROUPS, api_key, need, encode, decode, arg);
}

bool admin_coordinators_apart(nagare_admin *a)
{
    int rc = coordinator_find(a, &a->coords[ADMIN_COORD_GROUPS]);
    rc = rc == 0 ? coordinator_find(a, &a->coords[ADMIN_COORD_SHARE]) : rc;
    return rc != 0 || a->coords[ADMIN_COORD_GROUPS].at != a->coords[ADMIN_COORD_SHARE].at;
}
