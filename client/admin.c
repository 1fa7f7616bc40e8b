/*
 * client/admin.c — the admin client: synchronous CreateTopics, DeleteTopics,
 * Metadata (v1 where the broker speaks it, for each topic's configuration)
 * and ListOffsets, each bounded by the client's timeout.
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
#include "client/calls.h"
#include "client/conn.h"
#include "client/nagare.h"

/* A Metadata answer lists every topic (up to PROTO_TOPICS_MAX) with every
 * partition: the broker's frame default bounds it. */
#define ADMIN_RESP_BYTES_MAX PROTO_FRAME_BYTES_DEFAULT
#define ADMIN_REQUEST_BYTES (128 + PROTO_TOPIC_NAME_BYTES_MAX)

/* A coordinator (docs/cluster.md, section 5): the leader of partition 0
 * of its internal topic. */
struct admin_coord {
    const char *topic;
    struct client_conn *at; /* &nagare_admin.conn, or &conn; NULL: to be found */
    struct client_conn conn;
    bool conn_ready; /* conn initialised */
};

struct nagare_admin {
    struct client_conn conn;
    uint32_t timeout_ms;
    /* the coordinators of consumer and of share groups */
    struct admin_coord coords[ADMIN_COORDS];
    /* a partition's leader, for offset lookups (initialised while
     * leader_ready) */
    struct client_conn leader;
    bool leader_ready;
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
    rc = conn_init(&a->conn, &cc);
    conn_config_tls_done(&cc);
    explicit_bzero(&cc.login, sizeof(cc.login));
    rc = rc == 0 ? conn_wait_up(&a->conn, (int)timeout_ms) : rc;
    if (rc != 0) {
        conn_fini(&a->conn);
        free(a);
        return rc;
    }
    *out = a;
    return 0;
}

void nagare_admin_destroy(nagare_admin *a)
{
    if (a != NULL) {
        for (size_t i = 0; i < ADMIN_COORDS; i++) {
            if (a->coords[i].conn_ready) {
                conn_fini(&a->coords[i].conn);
            }
        }
        if (a->leader_ready) {
            conn_fini(&a->leader);
        }
        conn_fini(&a->conn);
        free(a);
    }
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
        int rc = calls_topic_led(&a->conn, name, deadline, &led);
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
    int rc = conn_call(&a->conn, PROTO_API_CREATE_TOPICS, ADMIN_REQUEST_BYTES, topic_op_encode,
                       topic_op_decode, &op, deadline_of(a));
    return rc == 0 ? topic_await_leaders(a, name) : rc;
}

int nagare_topic_delete(nagare_admin *a, const char *name)
{
    ASSERT(a != NULL);
    if (!name_ok(name)) {
        return -NG_EBADNAME;
    }
    struct topic_op op = {.name = name, .cfg = NULL};
    return conn_call(&a->conn, PROTO_API_DELETE_TOPICS, ADMIN_REQUEST_BYTES, topic_op_encode,
                     topic_op_decode, &op, deadline_of(a));
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
    int rc = conn_call(&a->conn, PROTO_API_METADATA, ADMIN_REQUEST_BYTES, describe_encode,
                       describe_decode, &ds, deadline_of(a));
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
    /* In a cluster only the partition's leader answers. */
    int64_t deadline = deadline_of(a);
    struct client_conn *to;
    int rc = calls_leader_connect(&a->conn, topic, partition, &a->leader, &a->leader_ready,
                                  deadline, &to);
    return rc == 0 ? calls_list_offset(to, topic, partition, ts_ms, deadline, offset_out) : rc;
}

/* ---- the coordinators ---- */

/* Finds c when not known (client/calls.h). Returns 0 or the call's error
 * (-NG_ENOT_COORDINATOR: none now). */
static int coordinator_find(nagare_admin *a, struct admin_coord *c)
{
    if (c->at != NULL) {
        return 0;
    }
    return calls_coordinator_connect(&a->conn, c->topic, &c->conn, &c->conn_ready, deadline_of(a),
                                     &c->at);
}

/* ---- for admin_groups.c (admin_int.h) ---- */

struct client_conn *admin_conn(nagare_admin *a) { return &a->conn; }

int admin_coordinator_call(nagare_admin *a, enum admin_coordinator which, uint16_t api_key,
                           size_t need, conn_encode_fn encode, conn_decode_fn decode, void *arg)
{
    ASSERT((size_t)which < ADMIN_COORDS);
    struct admin_coord *c = &a->coords[which];
    int64_t deadline = deadline_of(a);
    uint32_t backoff_ms = 0;
    for (;;) {
        int rc = coordinator_find(a, c);
        rc = rc == 0 ? conn_call(c->at, api_key, need, encode, decode, arg, deadline) : rc;
        if (rc == -NG_ENOT_COORDINATOR || rc == -NG_EDISCONNECTED) {
            c->at = NULL; /* moved, or gone: found again */
        }
        if (rc != -NG_ENOT_COORDINATOR || clock_mono_ms() >= deadline) {
            return rc;
        }
        (void)poll(NULL, 0, (int)conn_backoff_next(&backoff_ms));
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

int64_t admin_deadline(const nagare_admin *a) { return deadline_of(a); }
