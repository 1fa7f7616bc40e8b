/*
 * broker/kafka_serve.c — the Kafka listener: header, dispatch, answers, and
 * ApiVersions (broker/kafka_serve.h). Each API's handler is in the file of
 * the service it maps onto.
 */
#include "broker/kafka_serve.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "base/log.h"
#include "broker/acl_serve.h"
#include "broker/sasl_serve.h"
#include "broker/server.h"
#include "net/kafka/errors.h"

static kafka_handler_fn serve_api_versions;

/* The APIs served, with their handlers and what each needs of its
 * principal (broker/acl_serve.h; each handler checks its names and
 * answers Kafka's authorization errors). An API the codec defines and
 * this table lacks is not advertised, and a request for it closes the
 * connection (a client asks only for what ApiVersions offered). */
#define CHECKS(...)                           \
    {                                         \
        .kind = ACL_RULE_HANDLER, __VA_ARGS__ \
    }
#define OP(x) PROTO_ACL_OP_##x
static const struct {
    int16_t key;
    kafka_handler_fn *fn;
    struct acl_rule rule;
} handlers[] = {
    {KAFKA_API_API_VERSIONS, serve_api_versions, {.kind = ACL_RULE_OPEN}},
    {KAFKA_API_METADATA, kafka_metadata, CHECKS(.topic_op = OP(DESCRIBE))},
    {KAFKA_API_PRODUCE, kafka_produce, CHECKS(.topic_op = OP(WRITE))},
    {KAFKA_API_FETCH, kafka_fetch, CHECKS(.topic_op = OP(READ))},
    {KAFKA_API_LIST_OFFSETS, kafka_list_offsets, CHECKS(.topic_op = OP(DESCRIBE))},
    {KAFKA_API_INIT_PRODUCER_ID, kafka_init_producer_id,
     CHECKS(.cluster_op = OP(IDEMPOTENT_WRITE), .topic_op = OP(WRITE),
            .flags = ACL_RULE_ANY_TOPIC)},
    {KAFKA_API_OFFSET_FOR_LEADER_EPOCH, kafka_offset_for_leader_epoch,
     CHECKS(.topic_op = OP(DESCRIBE))},
    {KAFKA_API_CREATE_TOPICS, kafka_create_topics,
     CHECKS(.cluster_op = OP(CREATE), .topic_op = OP(CREATE), .flags = ACL_RULE_OR_CLUSTER)},
    {KAFKA_API_DELETE_TOPICS, kafka_delete_topics, CHECKS(.topic_op = OP(DELETE))},
    {KAFKA_API_DESCRIBE_CONFIGS, kafka_describe_configs, CHECKS(.topic_op = OP(DESCRIBE_CONFIGS))},
    {KAFKA_API_FIND_COORDINATOR, kafka_find_coordinator, CHECKS(.group_op = OP(DESCRIBE))},
    {KAFKA_API_JOIN_GROUP, kafka_join_group, CHECKS(.group_op = OP(READ))},
    {KAFKA_API_SYNC_GROUP, kafka_sync_group, CHECKS(.group_op = OP(READ))},
    {KAFKA_API_HEARTBEAT, kafka_heartbeat, CHECKS(.group_op = OP(READ))},
    {KAFKA_API_LEAVE_GROUP, kafka_leave_group, CHECKS(.group_op = OP(READ))},
    {KAFKA_API_OFFSET_COMMIT, kafka_offset_commit,
     CHECKS(.group_op = OP(READ), .topic_op = OP(READ))},
    {KAFKA_API_OFFSET_FETCH, kafka_offset_fetch,
     CHECKS(.group_op = OP(DESCRIBE), .topic_op = OP(DESCRIBE))},
    {KAFKA_API_LIST_GROUPS, kafka_list_groups, CHECKS(.cluster_op = OP(DESCRIBE))},
    {KAFKA_API_DESCRIBE_GROUPS, kafka_describe_groups, CHECKS(.group_op = OP(DESCRIBE))},
    {KAFKA_API_DELETE_GROUPS, kafka_delete_groups, CHECKS(.group_op = OP(DELETE))},
    {KAFKA_API_DESCRIBE_ACLS, kafka_describe_acls, CHECKS(.cluster_op = OP(DESCRIBE))},
    {KAFKA_API_CREATE_ACLS, kafka_create_acls, CHECKS(.cluster_op = OP(ALTER))},
    {KAFKA_API_DELETE_ACLS, kafka_delete_acls, CHECKS(.cluster_op = OP(ALTER))},
    {KAFKA_API_SASL_HANDSHAKE, kafka_sasl_handshake, {.kind = ACL_RULE_OPEN}},
    {KAFKA_API_SASL_AUTHENTICATE, kafka_sasl_authenticate, {.kind = ACL_RULE_OPEN}},
};
#undef CHECKS
#undef OP

static kafka_handler_fn *handler_find(int16_t key)
{
    for (size_t i = 0; i < ARRAY_LEN(handlers); i++) {
        if (handlers[i].key == key) {
            return handlers[i].fn;
        }
    }
    return NULL;
}

const struct acl_rule *kafka_serve_rule(int16_t api_key)
{
    for (size_t i = 0; i < ARRAY_LEN(handlers); i++) {
        if (handlers[i].key == api_key) {
            return &handlers[i].rule;
        }
    }
    return NULL;
}

bool kafka_serve_served(int16_t api_key)
{
    const struct kafka_api *api = kafka_api_find(api_key);
    return api != NULL && handler_find(api_key) != NULL;
}

int kafka_serve_open(struct server *s)
{
    s->kafka_arena = malloc(KW_ARENA_BYTES_MAX);
    return s->kafka_arena != NULL ? 0 : -ENOMEM;
}

void kafka_serve_close(struct server *s)
{
    free(s->kafka_arena);
    s->kafka_arena = NULL;
}

void kafka_serve_address(const struct server *s, const char **host, int32_t *port)
{
    *host = broker_config_kafka_host(&s->cfg);
    *port = s->kafka_port;
}

int kafka_serve_broker(const struct server *s, int32_t id, const char **host, int32_t *port)
{
    if (id == s->broker_id) {
        kafka_serve_address(s, host, port);
        return 0;
    }
    const struct cluster_broker *b = s->view != NULL ? cluster_view_broker(s->view, id) : NULL;
    if (b == NULL || b->kafka_port == 0) {
        return -NG_ENOTFOUND;
    }
    *host = b->kafka_host;
    *port = b->kafka_port;
    return 0;
}

void kafka_serve_respond(struct loop_req *req, const struct kafka_req_header *h,
                         const struct kafka_msg *msg, const void *body)
{
    struct kw_wr m = kw_wr_measure();
    kafka_resp_header_encode(&m, h->api_key, h->api_version, h->correlation_id);
    int rc = kafka_encode(msg, &m, h->api_version, body);
    uint8_t *out = NULL;
    if (rc == 0) {
        rc = loop_resp_buf(req, m.w.pos, &out);
    }
    if (rc != 0) {
        log_warn("kafka: connection %" PRIu64 ": %s v%d answer: %s; closing", loop_req_conn_id(req),
                 msg->name, h->api_version, err_str(rc));
        loop_req_fail(req);
        return;
    }
    struct kw_wr w = kw_wr_make(out, m.w.pos, NULL, 0);
    kafka_resp_header_encode(&w, h->api_key, h->api_version, h->correlation_id);
    rc = kafka_encode(msg, &w, h->api_version, body);
    ASSERT(rc == 0 && w.w.pos == m.w.pos); /* measured above */
    loop_req_respond(req, w.w.pos);
}

/* ---- ApiVersions ---- */

/* Answers with the served APIs' ranges and err; at version 0 when the
 * client asked for a version ApiVersions does not have (KIP-511: it then
 * retries at the highest version offered). */
static void api_versions_answer(struct loop_req *req, const struct kafka_req_header *h, int16_t err)
{
    struct kafka_api_versions_response_api_version keys[KAFKA_API_COUNT];
    struct kafka_api_versions_response resp;
    kafka_api_versions_response_init(&resp);
    resp.error_code = err;
    int32_t n = 0;
    for (uint32_t i = 0; i < KAFKA_API_COUNT; i++) {
        const struct kafka_api *api = &kafka_apis[i];
        if (kafka_serve_served(api->key)) {
            keys[n++] =
                (struct kafka_api_versions_response_api_version){.api_key = api->key,
                                                                 .min_version = api->versions.min,
                                                                 .max_version = api->versions.max};
        }
    }
    resp.api_keys.items = keys;
    resp.api_keys.count = n;
    kafka_serve_respond(req, h, &kafka_api_versions_response_msg, &resp);
}

static void serve_api_versions(struct server *s, struct loop_req *req,
                               const struct kafka_req_header *h, struct rd *body,
                               struct kw_arena *a)
{
    (void)s;
    struct kafka_api_versions_request r;
    int rc = kafka_api_versions_request_decode(body, h->api_version, a, &r);
    api_versions_answer(req, h, rc == 0 ? KAFKA_ERR_NONE : KAFKA_ERR_INVALID_REQUEST);
}

/* ---- requests ---- */

void kafka_serve_request(struct server *s, struct loop_req *req)
{
    if (sasl_serve_kafka_raw(s, req)) {
        return; /* a login's message after SaslHandshake v0 */
    }
    size_t len;
    const uint8_t *frame = loop_req_frame(req, &len);
    struct rd body = rd_make(frame, len);
    struct kafka_req_header h;
    const struct kafka_api *api = NULL;
    int rc = kafka_req_header_decode(&body, &h, &api);
    if (api != NULL) {
        loop_req_set_tag(req, metrics_tag_kafka(api));
    }
    if (rc == -NG_EBADVERSION && api->key == KAFKA_API_API_VERSIONS) {
        struct kafka_req_header v0 = h;
        v0.api_version = 0;
        api_versions_answer(req, &v0, KAFKA_ERR_UNSUPPORTED_VERSION);
        return;
    }
    kafka_handler_fn *fn = rc == 0 ? handler_find(h.api_key) : NULL;
    if (fn == NULL) {
        log_debug("kafka: connection %" PRIu64 ": api %d v%d: %s; closing", loop_req_conn_id(req),
                  rc == 0 || rc == -NG_EBADVERSION || rc == -NG_EUNKNOWN_API ? h.api_key : -1,
                  h.api_version, rc != 0 ? err_str(rc) : "not served");
        loop_req_fail(req);
        return;
    }
    if (!sasl_serve_admit(s, req, true, h.api_key, (uint32_t)h.correlation_id)) {
        return;
    }
    struct kw_arena a;
    kw_arena_init(&a, s->kafka_arena, KW_ARENA_BYTES_MAX);
    fn(s, req, &h, &body, &a);
}
