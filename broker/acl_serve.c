/*
 * broker/acl_serve.c — authorizing requests, and the ACL APIs of both
 * protocols (broker/acl_serve.h).
 */
#include "broker/acl_serve.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "broker/server.h"
#include "net/kafka/errors.h"

#define CLUSTER_NAME proto_str_make(PROTO_ACL_CLUSTER_NAME)

int acl_serve_open(struct server *s)
{
    int rc = acl_store_open(&s->acls, s->cfg.data_dir, s->cfg.authorizer, s->cfg.super_users);
    if (rc != 0) {
        log_error("ACLs in %s/%s: %s", s->cfg.data_dir, ACL_FILE, err_str(rc));
        return rc;
    }
    if (s->cfg.authorizer) {
        log_info("authorizer on: %u ACLs, %u super users", s->acls.count, s->acls.super_count);
    }
    return 0;
}

void acl_serve_close(struct server *s) { acl_store_close(&s->acls); }

void acl_serve_who(const struct server *s, struct loop_req *req, struct acl_who *who)
{
    who->principal = conn_auth_principal(req);
    who->host[0] = '\0';
    if (s->acls.enabled && loop_req_peer(req, who->host, sizeof(who->host)) != 0) {
        who->host[0] = '\0';
    }
}

bool acl_serve_allowed(const struct server *s, const struct acl_who *who, int8_t resource_type,
                       struct proto_str name, int8_t op)
{
    if (name.len < 0) {
        name.len = 0;
    }
    return acl_authorized(&s->acls, who, resource_type, name.ptr, (size_t)name.len, op);
}

/* Whether who may do cluster_op on the cluster, or topic_op on some topic
 * (ACL_RULE_ANY_TOPIC). */
static bool cluster_or_any_topic(const struct server *s, const struct acl_who *who,
                                 int8_t cluster_op, int8_t topic_op)
{
    return acl_serve_allowed(s, who, PROTO_ACL_RESOURCE_CLUSTER, CLUSTER_NAME, cluster_op) ||
           acl_authorized_any(&s->acls, who, PROTO_ACL_RESOURCE_TOPIC, topic_op);
}

bool acl_serve_may_create(const struct server *s, struct loop_req *req, struct proto_str name)
{
    if (!s->acls.enabled) {
        return true;
    }
    struct acl_who who;
    acl_serve_who(s, req, &who);
    return acl_serve_allowed(s, &who, PROTO_ACL_RESOURCE_CLUSTER, CLUSTER_NAME,
                             PROTO_ACL_OP_CREATE) ||
           acl_serve_allowed(s, &who, PROTO_ACL_RESOURCE_TOPIC, name, PROTO_ACL_OP_CREATE);
}

bool acl_serve_idempotent(const struct server *s, struct loop_req *req)
{
    if (!s->acls.enabled) {
        return true;
    }
    struct acl_who who;
    acl_serve_who(s, req, &who);
    return cluster_or_any_topic(s, &who, PROTO_ACL_OP_IDEMPOTENT_WRITE, PROTO_ACL_OP_WRITE);
}

/* ---- nagare's protocol: the dispatcher's check ---- */

struct names_check {
    const struct server *s;
    const struct acl_rule *rule;
    const struct acl_who *who;
    bool cluster_stands; /* ACL_RULE_OR_CLUSTER and cluster_op allowed */
};

static int check_name(void *arg, enum proto_name_kind kind, struct proto_str name)
{
    const struct names_check *c = arg;
    const struct acl_rule *r = c->rule;
    bool ok = true;
    if (kind == PROTO_NAME_GROUP) {
        ok = r->group_op == 0 ||
             acl_serve_allowed(c->s, c->who, PROTO_ACL_RESOURCE_GROUP, name, r->group_op);
    } else if (!c->cluster_stands) {
        ok = (r->topic_op == 0 ||
              acl_serve_allowed(c->s, c->who, PROTO_ACL_RESOURCE_TOPIC, name, r->topic_op)) &&
             (r->topic_op2 == 0 ||
              acl_serve_allowed(c->s, c->who, PROTO_ACL_RESOURCE_TOPIC, name, r->topic_op2));
    }
    return ok ? 0 : -NG_EUNAUTHORIZED;
}

/* The cluster part of an ACL_RULE_NAMES rule; *stands: it stands for the
 * topic checks. */
static bool check_cluster(const struct server *s, const struct acl_rule *r,
                          const struct acl_who *who, bool *stands)
{
    *stands = false;
    if (r->cluster_op == 0) {
        return true;
    }
    if ((r->flags & ACL_RULE_ANY_TOPIC) != 0) {
        return cluster_or_any_topic(s, who, r->cluster_op, r->topic_op);
    }
    bool ok = acl_serve_allowed(s, who, PROTO_ACL_RESOURCE_CLUSTER, CLUSTER_NAME, r->cluster_op);
    if ((r->flags & ACL_RULE_OR_CLUSTER) != 0) {
        *stands = ok;
        return true; /* else each topic is checked */
    }
    return ok;
}

int acl_serve_check(struct server *s, struct loop_req *req, const struct acl_rule *rule,
                    const struct proto_req_header *h, const struct rd *body)
{
    if (rule->kind == ACL_RULE_OPEN || rule->kind == ACL_RULE_HANDLER ||
        (rule->kind == ACL_RULE_NAMES && !s->acls.enabled)) {
        return 0; /* the authorizer off: no system call on the request path */
    }
    int rc = -NG_EUNAUTHORIZED; /* ACL_RULE_UNSET: never served */
    struct acl_who who;
    acl_serve_who(s, req, &who);
    if (rule->kind == ACL_RULE_NAMES) {
        struct names_check c = {.s = s, .rule = rule, .who = &who};
        bool cluster_ok = check_cluster(s, rule, &who, &c.cluster_stands);
        rc = cluster_ok ? 0 : -NG_EUNAUTHORIZED;
        if (rc == 0 && (rule->flags & ACL_RULE_ANY_TOPIC) == 0) {
            rc = proto_req_names(body, h->api_key, h->api_version, check_name, &c);
            rc = rc == -NG_EUNAUTHORIZED ? rc : 0; /* a decode error: the handler's to answer */
        }
    }
    if (rc != 0) {
        log_debug("connection %" PRIu64 ": %s by %s from %s: not authorized", loop_req_conn_id(req),
                  proto_api_name(h->api_key), who.principal, who.host);
    }
    return rc;
}

/* ---- Kafka's listener ---- */

int16_t acl_serve_kafka(const struct server *s, struct loop_req *req, int8_t resource_type,
                        struct kw_str name, int8_t op)
{
    if (!s->acls.enabled) {
        return KAFKA_ERR_NONE;
    }
    struct acl_who who;
    acl_serve_who(s, req, &who);
    if (acl_serve_allowed(s, &who, resource_type, kafka_serve_proto_str(name), op)) {
        return KAFKA_ERR_NONE;
    }
    log_debug("kafka: connection %" PRIu64 ": %s %.*s by %s from %s: not authorized",
              loop_req_conn_id(req), proto_acl_name(PROTO_ACL_VOCAB_OP, op),
              name.len > 0 ? (int)name.len : 0, name.ptr != NULL ? name.ptr : "", who.principal,
              who.host);
    switch (resource_type) {
    case PROTO_ACL_RESOURCE_TOPIC:
        return KAFKA_ERR_TOPIC_AUTHORIZATION_FAILED;
    case PROTO_ACL_RESOURCE_GROUP:
        return KAFKA_ERR_GROUP_AUTHORIZATION_FAILED;
    default:
        return KAFKA_ERR_CLUSTER_AUTHORIZATION_FAILED;
    }
}

/* ---- nagare's ACL APIs ---- */

/* The ACLs of a CreateAcls request, each checked, into a malloc'd array. */
static int create_acls_take(struct proto_dec *d, struct acl **out, uint32_t *n_out)
{
    uint32_t n = d->topic_count > 0 ? (uint32_t)d->topic_count : 0;
    struct acl *acls = malloc(((size_t)n + 1) * sizeof(*acls));
    if (acls == NULL) {
        return -ENOMEM;
    }
    struct proto_acl p;
    uint32_t i = 0;
    int rc = 0;
    while (rc == 0 && proto_next_acl(d, &p)) {
        const char *why = NULL;
        rc = acl_from_proto(&p, &acls[i++], &why);
        if (rc != 0) {
            log_debug("CreateAcls: ACL %u: %s", i, why);
        }
    }
    if (rc != 0) {
        free(acls);
        return rc;
    }
    *out = acls;
    *n_out = i;
    return 0;
}

void handle_create_acls(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                        struct rd *body)
{
    struct proto_dec d;
    int rc = proto_create_acls_req_decode(body, h->api_version, &d);
    if (rc != 0) {
        server_resp_error(req, h->correlation_id, rc); /* malformed: a request-level error */
        return;
    }
    struct acl *acls = NULL;
    uint32_t n = 0;
    rc = create_acls_take(&d, &acls, &n);
    rc = rc == 0 ? server_wire_err(acl_store_add(&s->acls, acls, n)) : rc;
    free(acls);
    if (rc == 0) {
        log_info("ACLs: %u added by %s (%u now)", n, conn_auth_principal(req), s->acls.count);
    }
    struct wr w;
    if (!server_resp_begin(req, h->correlation_id, PROTO_FRAME_PREFIX_BYTES + 64, &w)) {
        return;
    }
    rc = proto_create_acls_resp_encode(&w, h->api_version, h->correlation_id, rc);
    ASSERT(rc == 0); /* 64 bytes hold an error answer */
    server_resp_send(req, &w);
}

static size_t acl_wire_bytes(const struct acl *a)
{
    return PROTO_ACL_BYTES(strlen(a->name), strlen(a->principal), strlen(a->host));
}

/* Answers a DescribeAcls or DeleteAcls with acls[0..n). */
static void acl_list_answer(struct loop_req *req, const struct proto_req_header *h,
                            const struct acl *acls, uint32_t n)
{
    size_t cap = PROTO_FRAME_PREFIX_BYTES + PROTO_RESP_HEADER_BYTES + 4;
    for (uint32_t i = 0; i < n; i++) {
        cap += acl_wire_bytes(&acls[i]);
    }
    struct wr w;
    if (!server_resp_begin(req, h->correlation_id, cap, &w)) {
        return;
    }
    struct proto_enc e;
    proto_acl_list_resp_begin(&e, &w, h->api_key, h->api_version, h->correlation_id);
    for (uint32_t i = 0; i < n; i++) {
        struct proto_acl p;
        acl_to_proto(&acls[i], &p);
        proto_enc_acl(&e, &p);
    }
    server_resp_end(req, &e, &w, h->correlation_id);
}

void handle_describe_acls(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                          struct rd *body)
{
    struct proto_acl f;
    int rc = proto_acl_filter_req_decode(body, h->api_key, h->api_version, &f);
    rc = rc == 0 ? acl_filter_check(&f) : rc;
    struct acl *found = rc == 0 ? malloc(((size_t)s->acls.count + 1) * sizeof(*found)) : NULL;
    if (rc == 0 && found == NULL) {
        rc = -ENOMEM;
    }
    if (rc != 0) {
        server_resp_error(req, h->correlation_id, rc);
        return;
    }
    uint32_t n = 0;
    for (uint32_t i = 0; i < s->acls.count; i++) {
        if (acl_filter_matches(&f, &s->acls.acls[i])) {
            found[n++] = s->acls.acls[i];
        }
    }
    acl_list_answer(req, h, found, n);
    free(found);
}

void handle_delete_acls(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                        struct rd *body)
{
    struct proto_acl f;
    int rc = proto_acl_filter_req_decode(body, h->api_key, h->api_version, &f);
    rc = rc == 0 ? acl_filter_check(&f) : rc;
    struct acl *gone = NULL;
    uint32_t n = 0;
    rc = rc == 0 ? server_wire_err(acl_store_delete(&s->acls, &f, &gone, &n)) : rc;
    if (rc != 0) {
        server_resp_error(req, h->correlation_id, rc);
        return;
    }
    if (n > 0) {
        log_info("ACLs: %u deleted by %s (%u left)", n, conn_auth_principal(req), s->acls.count);
    }
    acl_list_answer(req, h, gone, n);
    free(gone);
}

/* ---- Kafka's ACL APIs ---- */

/* A Kafka filter as nagare's. */
static struct proto_acl kafka_filter(int8_t res, struct kw_str name, int8_t pattern,
                                     struct kw_str principal, struct kw_str host, int8_t op,
                                     int8_t perm)
{
    return (struct proto_acl){.resource_type = res,
                              .pattern_type = pattern,
                              .name = kafka_serve_proto_str(name),
                              .principal = kafka_serve_proto_str(principal),
                              .host = kafka_serve_proto_str(host),
                              .operation = op,
                              .permission = perm};
}

static void *kafka_items(struct loop_req *req, struct kw_arena *a, uint32_t n, size_t size)
{
    void *p = kw_arena_alloc(a, n > 0 ? (size_t)n * size : 1);
    if (p == NULL) {
        log_warn("kafka: connection %" PRIu64 ": ACL answer: %s; closing", loop_req_conn_id(req),
                 err_str(-NG_ETOOBIG));
        loop_req_fail(req);
    }
    return p;
}

void kafka_describe_acls(struct server *s, struct loop_req *req, const struct kafka_req_header *h,
                         struct rd *body, struct kw_arena *a)
{
    struct kafka_describe_acls_request in;
    if (kafka_describe_acls_request_decode(body, h->api_version, a, &in) != 0) {
        loop_req_fail(req);
        return;
    }
    struct kafka_describe_acls_response out;
    kafka_describe_acls_response_init(&out);
    struct proto_acl f =
        kafka_filter(in.resource_type_filter, in.resource_name_filter, in.pattern_type_filter,
                     in.principal_filter, in.host_filter, in.operation, in.permission_type);
    out.error_code = acl_serve_kafka(s, req, PROTO_ACL_RESOURCE_CLUSTER,
                                     kafka_serve_kw_str(CLUSTER_NAME), PROTO_ACL_OP_DESCRIBE);
    if (out.error_code == 0 && acl_filter_check(&f) != 0) {
        out.error_code = KAFKA_ERR_INVALID_REQUEST;
    }
    uint32_t n = 0;
    for (uint32_t i = 0; out.error_code == 0 && i < s->acls.count; i++) {
        n += acl_filter_matches(&f, &s->acls.acls[i]);
    }
    struct kafka_describe_acls_response_resource *res = kafka_items(req, a, n, sizeof(*res));
    struct kafka_describe_acls_response_acl_description *desc =
        res != NULL ? kafka_items(req, a, n, sizeof(*desc)) : NULL;
    if (desc == NULL) {
        return;
    }
    uint32_t k = 0;
    for (uint32_t i = 0; k < n && i < s->acls.count; i++) {
        const struct acl *acl = &s->acls.acls[i];
        if (!acl_filter_matches(&f, acl)) {
            continue;
        }
        desc[k] = (struct kafka_describe_acls_response_acl_description){
            .principal = kafka_serve_kw_str(proto_str_make(acl->principal)),
            .host = kafka_serve_kw_str(proto_str_make(acl->host)),
            .operation = acl->operation,
            .permission_type = acl->permission};
        res[k] = (struct kafka_describe_acls_response_resource){
            .resource_type = acl->resource_type,
            .resource_name = kafka_serve_kw_str(proto_str_make(acl->name)),
            .pattern_type = acl->pattern_type};
        res[k].acls.items = &desc[k];
        res[k].acls.count = 1;
        k++;
    }
    out.resources.items = res;
    out.resources.count = (int32_t)k;
    kafka_serve_respond(req, h, &kafka_describe_acls_response_msg, &out);
}

void kafka_create_acls(struct server *s, struct loop_req *req, const struct kafka_req_header *h,
                       struct rd *body, struct kw_arena *a)
{
    struct kafka_create_acls_request in;
    if (kafka_create_acls_request_decode(body, h->api_version, a, &in) != 0) {
        loop_req_fail(req);
        return;
    }
    uint32_t n = in.creations.count > 0 ? (uint32_t)in.creations.count : 0;
    struct kafka_create_acls_response_acl_creation_result *results =
        kafka_items(req, a, n, sizeof(*results));
    struct acl *acls = results != NULL ? malloc(((size_t)n + 1) * sizeof(*acls)) : NULL;
    if (results == NULL || acls == NULL) {
        if (results != NULL) {
            loop_req_fail(req);
        }
        return;
    }
    int16_t err = acl_serve_kafka(s, req, PROTO_ACL_RESOURCE_CLUSTER,
                                  kafka_serve_kw_str(CLUSTER_NAME), PROTO_ACL_OP_ALTER);
    /* Each creation stands alone, as in Kafka: the valid ones are added
     * (together, one file write), the others answered with their error. */
    uint32_t valid = 0;
    for (uint32_t i = 0; i < n; i++) {
        const struct kafka_create_acls_request_acl_creation *c = &in.creations.items[i];
        struct proto_acl p =
            kafka_filter(c->resource_type, c->resource_name, c->resource_pattern_type, c->principal,
                         c->host, c->operation, c->permission_type);
        const char *why = NULL;
        results[i] = (struct kafka_create_acls_response_acl_creation_result){
            .error_code = err, .error_message = {.ptr = NULL, .len = -1}};
        if (err == 0 && acl_from_proto(&p, &acls[valid], &why) != 0) {
            results[i].error_code = KAFKA_ERR_INVALID_REQUEST;
            results[i].error_message = kafka_serve_kw_str(proto_str_make(why));
        } else if (err == 0) {
            valid++;
        }
    }
    int rc = valid > 0 ? acl_store_add(&s->acls, acls, valid) : 0;
    for (uint32_t i = 0; rc != 0 && i < n; i++) {
        if (results[i].error_code == 0) {
            results[i].error_code = kafka_err_from(server_wire_err(rc));
        }
    }
    free(acls);
    if (rc == 0 && valid > 0) {
        log_info("ACLs: %u added by %s (%u now)", valid, conn_auth_principal(req), s->acls.count);
    }
    struct kafka_create_acls_response out;
    kafka_create_acls_response_init(&out);
    out.results.items = results;
    out.results.count = (int32_t)n;
    kafka_serve_respond(req, h, &kafka_create_acls_response_msg, &out);
}

static char *arena_strdup(struct kw_arena *a, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = kw_arena_alloc(a, n);
    return p != NULL ? memcpy(p, s, n) : NULL;
}

/* One filter of a DeleteAcls: what it deleted, into r. */
static void kafka_delete_one(struct server *s, struct loop_req *req, struct kw_arena *a,
                             const struct kafka_delete_acls_request_filter *in,
                             struct kafka_delete_acls_response_filter_result *r)
{
    struct proto_acl f =
        kafka_filter(in->resource_type_filter, in->resource_name_filter, in->pattern_type_filter,
                     in->principal_filter, in->host_filter, in->operation, in->permission_type);
    if (acl_filter_check(&f) != 0) {
        r->error_code = KAFKA_ERR_INVALID_REQUEST;
        return;
    }
    struct acl *gone = NULL;
    uint32_t n = 0;
    int rc = acl_store_delete(&s->acls, &f, &gone, &n);
    struct kafka_delete_acls_response_matching_acl *m =
        rc == 0 ? kw_arena_alloc(a, (size_t)n * sizeof(*m) + 1) : NULL;
    /* The deleted ACLs' strings live in the arena too: the copies are freed here. */
    for (uint32_t i = 0; m != NULL && i < n; i++) {
        char *name = arena_strdup(a, gone[i].name);
        char *principal = arena_strdup(a, gone[i].principal);
        char *host = arena_strdup(a, gone[i].host);
        if (name == NULL || principal == NULL || host == NULL) {
            m = NULL; /* deleted all the same; the answer cannot list them */
            break;
        }
        m[i] = (struct kafka_delete_acls_response_matching_acl){
            .error_message = {.ptr = NULL, .len = -1},
            .resource_type = gone[i].resource_type,
            .resource_name = kafka_serve_kw_str(proto_str_make(name)),
            .pattern_type = gone[i].pattern_type,
            .principal = kafka_serve_kw_str(proto_str_make(principal)),
            .host = kafka_serve_kw_str(proto_str_make(host)),
            .operation = gone[i].operation,
            .permission_type = gone[i].permission};
    }
    free(gone);
    if (rc == 0 && n > 0) {
        log_info("ACLs: %u deleted by %s (%u left)", n, conn_auth_principal(req), s->acls.count);
    }
    r->error_code = rc != 0 ? kafka_err_from(server_wire_err(rc)) : 0;
    if (m != NULL) {
        r->matching_acls.items = m;
        r->matching_acls.count = (int32_t)n;
    }
}

void kafka_delete_acls(struct server *s, struct loop_req *req, const struct kafka_req_header *h,
                       struct rd *body, struct kw_arena *a)
{
    struct kafka_delete_acls_request in;
    if (kafka_delete_acls_request_decode(body, h->api_version, a, &in) != 0) {
        loop_req_fail(req);
        return;
    }
    uint32_t n = in.filters.count > 0 ? (uint32_t)in.filters.count : 0;
    struct kafka_delete_acls_response_filter_result *results =
        kafka_items(req, a, n, sizeof(*results));
    if (results == NULL) {
        return;
    }
    int16_t err = acl_serve_kafka(s, req, PROTO_ACL_RESOURCE_CLUSTER,
                                  kafka_serve_kw_str(CLUSTER_NAME), PROTO_ACL_OP_ALTER);
    for (uint32_t i = 0; i < n; i++) {
        results[i] = (struct kafka_delete_acls_response_filter_result){
            .error_code = err, .error_message = {.ptr = NULL, .len = -1}};
        if (err == 0) {
            kafka_delete_one(s, req, a, &in.filters.items[i], &results[i]);
        }
    }
    struct kafka_delete_acls_response out;
    kafka_delete_acls_response_init(&out);
    out.filter_results.items = results;
    out.filter_results.count = (int32_t)n;
    kafka_serve_respond(req, h, &kafka_delete_acls_response_msg, &out);
}
