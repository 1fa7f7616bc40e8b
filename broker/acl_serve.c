/*
 * broker/acl_serve.c — authorizing requests, and the ACL APIs of both
 * protocols (broker/acl_serve.h).
 */
#include "broker/acl_serve.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "broker/server.h"
#include "cluster/session.h"
#include "net/kafka/errors.h"

static_assert(ACL_REC_BYTES_MAX <= CLUSTER_ACL_VALUE_BYTES, "an ACL's record fits a cluster's");
static_assert(ACL_REC_KEY_BYTES <= CLUSTER_ACL_KEY_BYTES, "an ACL's key fits a cluster's");
static_assert(ACL_COUNT_MAX == CLUSTER_ACLS_MAX, "a view carries as many ACLs as a store holds");

#define CLUSTER_NAME proto_str_make(PROTO_ACL_CLUSTER_NAME)

int acl_serve_open(struct server *s)
{
    /* A cluster's ACLs are etcd's (acl_serve_apply_view): no file. */
    bool clustered = broker_config_clustered(&s->cfg);
    int rc = acl_store_open(&s->acls, clustered ? NULL : s->cfg.data_dir, s->cfg.authorizer,
                            s->cfg.super_users);
    if (rc != 0) {
        log_error("ACLs in %s/%s: %s", s->cfg.data_dir, ACL_FILE, err_str(rc));
        return rc;
    }
    char path[BROKER_DATA_DIR_BYTES + sizeof(ACL_FILE) + 1];
    snprintf(path, sizeof(path), "%s/%s", s->cfg.data_dir, ACL_FILE);
    if (clustered && access(path, F_OK) == 0) {
        log_warn("%s is not read in a cluster: its ACLs are etcd's (docs/security.md); add "
                 "those still needed with nagare acl add",
                 path);
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

/* ---- in a cluster: the ACLs are etcd's (acls/<key>) ---- */

static bool same_acls(const struct cluster_view *a, const struct cluster_view *b)
{
    return a != NULL && a->acl_rec_count == b->acl_rec_count &&
           (a->acl_rec_count == 0 ||
            memcmp(a->acl_recs, b->acl_recs, a->acl_rec_count * sizeof(*a->acl_recs)) == 0);
}

void acl_serve_apply_view(struct server *s, const struct cluster_view *old,
                          const struct cluster_view *view)
{
    if (!broker_config_clustered(&s->cfg) || same_acls(old, view)) {
        return; /* most views change partitions, not ACLs */
    }
    struct acl *acls = malloc(((size_t)view->acl_rec_count + 1) * sizeof(*acls));
    if (acls == NULL) {
        log_error("cluster: ACLs of revision %lld: %s; the previous ACLs stay",
                  (long long)view->revision, err_str(-ENOMEM));
        return;
    }
    uint32_t n = 0;
    for (uint32_t i = 0; i < view->acl_rec_count; i++) {
        const struct cluster_acl_rec *r = &view->acl_recs[i];
        if (acl_rec_decode(r->value, r->value_len, &acls[n]) != 0) {
            log_warn("cluster: acls/%s: not an ACL; left out", r->key);
            continue;
        }
        n++; /* a key is its value's hash: no ACL twice */
    }
    if (n != s->acls.count) {
        log_info("cluster: %u ACLs as of revision %lld", n, (long long)view->revision);
    }
    acl_store_replace(&s->acls, acls, n);
}

/* A change of the cluster's ACLs, answered from the loop once etcd has it
 * (or could not take it): nagare's or Kafka's CreateAcls or DeleteAcls. */
struct acl_call {
    struct loop_msg m;
    struct loop *loop;
    struct loop_req *req;
    bool kafka;
    bool create;
    uint16_t api_key;
    uint16_t version;
    uint32_t correlation_id;
    int err;          /* etcd's answer, or the failure to ask it */
    struct acl *acls; /* created, or deleted; malloc'd */
    uint32_t acl_count;
    /* Kafka's items: each creation (create) or filter (delete) */
    uint32_t item_count;
    int16_t *item_err;     /* its own error; 0: it went to etcd */
    const char **item_why; /* create: why it was invalid (static), or NULL */
    uint32_t *item_first;  /* delete: its ACLs are acls[first..first+n) */
    uint32_t *item_n;
};

static struct acl_call *acl_call_new(struct server *s, struct loop_req *req, bool kafka,
                                     bool create, uint16_t api_key, uint16_t version,
                                     uint32_t correlation_id, uint32_t acl_cap, uint32_t items)
{
    struct acl_call *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    *c = (struct acl_call){.loop = &s->loop,
                           .req = req,
                           .kafka = kafka,
                           .create = create,
                           .api_key = api_key,
                           .version = version,
                           .correlation_id = correlation_id,
                           .item_count = items};
    c->acls = malloc(((size_t)acl_cap + 1) * sizeof(*c->acls));
    c->item_err = calloc((size_t)items + 1, sizeof(*c->item_err));
    c->item_why = calloc((size_t)items + 1, sizeof(*c->item_why));
    c->item_first = calloc((size_t)items + 1, sizeof(*c->item_first));
    c->item_n = calloc((size_t)items + 1, sizeof(*c->item_n));
    if (c->acls == NULL || c->item_err == NULL || c->item_why == NULL || c->item_first == NULL ||
        c->item_n == NULL) {
        c->err = -ENOMEM; /* answered as such */
    }
    return c;
}

static void acl_call_free(struct acl_call *c)
{
    free(c->acls);
    free(c->item_err);
    free(c->item_why);
    free(c->item_first);
    free(c->item_n);
    free(c);
}

static void acl_call_answer(struct acl_call *c);

static void acl_call_back(struct loop_msg *m, void *arg)
{
    (void)arg;
    acl_call_answer(container_of(m, struct acl_call, m));
}

static void acl_call_done(void *arg, int rc)
{
    struct acl_call *c = arg; /* on the cluster thread */
    c->err = rc;
    loop_post(c->loop, &c->m);
}

/* Hands c's ACLs to etcd (the session answers through acl_call_done), or
 * answers at once: nothing to do, or a failure to ask. */
static void acl_call_start(struct server *s, struct acl_call *c)
{
    c->m = (struct loop_msg){.fn = acl_call_back};
    if (c->err != 0 || c->acl_count == 0) {
        acl_call_answer(c);
        return;
    }
    struct cluster_acl_rec *recs = malloc((size_t)c->acl_count * sizeof(*recs));
    int rc = recs != NULL ? 0 : -ENOMEM;
    for (uint32_t i = 0; rc == 0 && i < c->acl_count; i++) {
        uint8_t buf[ACL_REC_BYTES_MAX];
        size_t len = acl_rec_encode(&c->acls[i], buf, sizeof(buf), recs[i].key);
        recs[i].value_len = (uint16_t)len;
        memcpy(recs[i].value, buf, len);
    }
    if (rc == 0) {
        rc = c->create
                 ? cluster_session_put_acls(s->session, recs, c->acl_count, acl_call_done, c)
                 : cluster_session_delete_acls(s->session, recs, c->acl_count, acl_call_done, c);
    }
    if (rc != 0) {
        free(recs);
        c->err = rc;
        acl_call_answer(c);
    }
}

/* The ACLs of the store f selects, appended to c's. */
static void acl_call_select(const struct server *s, struct acl_call *c, const struct proto_acl *f)
{
    for (uint32_t i = 0; i < s->acls.count; i++) {
        if (acl_filter_matches(f, &s->acls.acls[i])) {
            c->acls[c->acl_count++] = s->acls.acls[i];
        }
    }
}

static void acl_list_answer(struct loop_req *req, const struct proto_req_header *h,
                            const struct acl *acls, uint32_t n);
static void kafka_call_answer(struct acl_call *c);

static void acl_call_answer(struct acl_call *c)
{
    const char *who = conn_auth_principal(c->req);
    if (c->err == 0 && c->acl_count > 0) {
        log_info("ACLs: %u %s the cluster's by %s", c->acl_count,
                 c->create ? "added to" : "deleted from", who);
    }
    if (c->kafka) {
        kafka_call_answer(c);
    } else if (c->create || c->err != 0) {
        struct wr w;
        int rc = server_wire_err(c->err);
        if (!c->create) {
            server_resp_error(c->req, c->correlation_id, rc);
        } else if (server_resp_begin(c->req, c->correlation_id, PROTO_FRAME_PREFIX_BYTES + 64,
                                     &w)) {
            rc = proto_create_acls_resp_encode(&w, c->version, c->correlation_id, rc);
            ASSERT(rc == 0); /* 64 bytes hold an error answer */
            server_resp_send(c->req, &w);
        }
    } else {
        struct proto_req_header h = {
            .api_key = c->api_key, .api_version = c->version, .correlation_id = c->correlation_id};
        acl_list_answer(c->req, &h, c->acls, c->acl_count);
    }
    acl_call_free(c);
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
    if (rc == 0 && s->session != NULL) { /* a cluster's: etcd's, answered once it has them */
        struct acl_call *c =
            acl_call_new(s, req, false, true, h->api_key, h->api_version, h->correlation_id, n, 0);
        if (c != NULL) {
            c->err = c->err == 0 && s->acls.count + n > ACL_COUNT_MAX ? -NG_ETOOBIG : c->err;
            if (c->err == 0) {
                memcpy(c->acls, acls, (size_t)n * sizeof(*acls));
                c->acl_count = n;
            }
            free(acls);
            acl_call_start(s, c);
            return;
        }
        rc = -ENOMEM;
    }
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
    if (rc == 0 && s->session != NULL) { /* a cluster's: etcd's, answered once it has it */
        struct acl_call *c = acl_call_new(s, req, false, false, h->api_key, h->api_version,
                                          h->correlation_id, s->acls.count, 0);
        if (c != NULL) {
            if (c->err == 0) {
                acl_call_select(s, c, &f);
            }
            acl_call_start(s, c);
            return;
        }
        rc = -ENOMEM;
    }
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

/* Kafka's CreateAcls in a cluster: results[i] holds creation i's own
 * error; acls[0..valid) the valid ones, for etcd. */
static void kafka_create_in_cluster(
    struct server *s, struct loop_req *req, const struct kafka_req_header *h,
    const struct kafka_create_acls_response_acl_creation_result *results, uint32_t n,
    const struct acl *acls, uint32_t valid)
{
    struct acl_call *c =
        acl_call_new(s, req, true, true, (uint16_t)h->api_key, (uint16_t)h->api_version,
                     (uint32_t)h->correlation_id, valid, n);
    if (c == NULL) {
        loop_req_fail(req);
        return;
    }
    c->err = c->err == 0 && s->acls.count + valid > ACL_COUNT_MAX ? -NG_ETOOBIG : c->err;
    if (c->err == 0) {
        for (uint32_t i = 0; i < n; i++) {
            c->item_err[i] = results[i].error_code;
            c->item_why[i] = results[i].error_message.len > 0 ? results[i].error_message.ptr : NULL;
        }
        memcpy(c->acls, acls, (size_t)valid * sizeof(*acls));
        c->acl_count = valid;
    }
    acl_call_start(s, c);
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
    if (s->session != NULL) {
        kafka_create_in_cluster(s, req, h, results, n, acls, valid);
        free(acls);
        return;
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

/* Kafka's DeleteAcls in a cluster: each filter's ACLs deleted from etcd
 * (err: the request's own, as not authorized). */
static void kafka_delete_in_cluster(struct server *s, struct loop_req *req,
                                    const struct kafka_req_header *h,
                                    const struct kafka_delete_acls_request *in, int16_t err)
{
    uint32_t n = in->filters.count > 0 ? (uint32_t)in->filters.count : 0;
    struct proto_acl *f = calloc((size_t)n + 1, sizeof(*f));
    uint32_t total = 0;
    for (uint32_t i = 0; f != NULL && i < n; i++) {
        const struct kafka_delete_acls_request_filter *k = &in->filters.items[i];
        f[i] =
            kafka_filter(k->resource_type_filter, k->resource_name_filter, k->pattern_type_filter,
                         k->principal_filter, k->host_filter, k->operation, k->permission_type);
        for (uint32_t j = 0; err == 0 && acl_filter_check(&f[i]) == 0 && j < s->acls.count; j++) {
            total += acl_filter_matches(&f[i], &s->acls.acls[j]);
        }
    }
    struct acl_call *c =
        f != NULL ? acl_call_new(s, req, true, false, (uint16_t)h->api_key,
                                 (uint16_t)h->api_version, (uint32_t)h->correlation_id, total, n)
                  : NULL;
    if (c == NULL) {
        free(f);
        loop_req_fail(req);
        return;
    }
    for (uint32_t i = 0; c->err == 0 && i < n; i++) {
        c->item_err[i] = err != 0                       ? err
                         : acl_filter_check(&f[i]) != 0 ? KAFKA_ERR_INVALID_REQUEST
                                                        : 0;
        c->item_first[i] = c->acl_count;
        if (c->item_err[i] == 0) {
            acl_call_select(s, c, &f[i]);
        }
        c->item_n[i] = c->acl_count - c->item_first[i];
    }
    free(f);
    acl_call_start(s, c);
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
    if (s->session != NULL) {
        kafka_delete_in_cluster(s, req, h, &in, err);
        return;
    }
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

/* ---- Kafka's answers of a cluster's ACL change ---- */

static void kafka_call_created(struct acl_call *c, const struct kafka_req_header *h, int16_t etcd)
{
    struct kafka_create_acls_response_acl_creation_result *r =
        calloc((size_t)c->item_count + 1, sizeof(*r));
    if (r == NULL) {
        loop_req_fail(c->req);
        return;
    }
    for (uint32_t i = 0; i < c->item_count; i++) {
        const char *why = c->item_why[i];
        r[i] = (struct kafka_create_acls_response_acl_creation_result){
            .error_code = c->item_err[i] != 0 ? c->item_err[i] : etcd,
            .error_message = why != NULL ? kafka_serve_kw_str(proto_str_make(why))
                                         : (struct kw_str){.ptr = NULL, .len = -1}};
    }
    struct kafka_create_acls_response out;
    kafka_create_acls_response_init(&out);
    out.results.items = r;
    out.results.count = (int32_t)c->item_count;
    kafka_serve_respond(c->req, h, &kafka_create_acls_response_msg, &out);
    free(r);
}

static void kafka_call_deleted(struct acl_call *c, const struct kafka_req_header *h, int16_t etcd)
{
    struct kafka_delete_acls_response_filter_result *r =
        calloc((size_t)c->item_count + 1, sizeof(*r));
    struct kafka_delete_acls_response_matching_acl *m =
        calloc((size_t)c->acl_count + 1, sizeof(*m));
    if (r == NULL || m == NULL) {
        free(r);
        free(m);
        loop_req_fail(c->req);
        return;
    }
    for (uint32_t i = 0; i < c->acl_count; i++) {
        const struct acl *g = &c->acls[i];
        m[i] = (struct kafka_delete_acls_response_matching_acl){
            .error_message = {.ptr = NULL, .len = -1},
            .resource_type = g->resource_type,
            .resource_name = kafka_serve_kw_str(proto_str_make(g->name)),
            .pattern_type = g->pattern_type,
            .principal = kafka_serve_kw_str(proto_str_make(g->principal)),
            .host = kafka_serve_kw_str(proto_str_make(g->host)),
            .operation = g->operation,
            .permission_type = g->permission};
    }
    for (uint32_t i = 0; i < c->item_count; i++) {
        r[i] = (struct kafka_delete_acls_response_filter_result){
            .error_code = c->item_err[i] != 0 ? c->item_err[i] : etcd,
            .error_message = {.ptr = NULL, .len = -1}};
        if (r[i].error_code == 0) {
            r[i].matching_acls.items = &m[c->item_first[i]];
            r[i].matching_acls.count = (int32_t)c->item_n[i];
        }
    }
    struct kafka_delete_acls_response out;
    kafka_delete_acls_response_init(&out);
    out.filter_results.items = r;
    out.filter_results.count = (int32_t)c->item_count;
    kafka_serve_respond(c->req, h, &kafka_delete_acls_response_msg, &out);
    free(r);
    free(m);
}

static void kafka_call_answer(struct acl_call *c)
{
    if (c->item_err == NULL || c->item_why == NULL || c->item_first == NULL || c->item_n == NULL) {
        loop_req_fail(c->req); /* no memory for the answer */
        return;
    }
    struct kafka_req_header h = {.api_key = (int16_t)c->api_key,
                                 .api_version = (int16_t)c->version,
                                 .correlation_id = (int32_t)c->correlation_id};
    int16_t etcd = c->err != 0 ? kafka_err_from(server_wire_err(c->err)) : 0;
    if (c->create) {
        kafka_call_created(c, &h, etcd);
    } else {
        kafka_call_deleted(c, &h, etcd);
    }
}
