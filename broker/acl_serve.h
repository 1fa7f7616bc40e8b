/*
 * broker/acl_serve.h — authorization of requests on both listeners, and
 * the ACL APIs (docs/security.md, "Authorization").
 *
 * Each protocol's handler table gives every API it serves a rule: what
 * the request needs (an operation on the cluster, on the group it names,
 * on each topic it names). On nagare's protocol the dispatcher enforces
 * the rule before the handler runs (acl_serve_check): a request that
 * names anything its principal may not use is refused whole with
 * NG_EUNAUTHORIZED, and nothing of it is done; Metadata, whose rule is
 * ACL_RULE_HANDLER, leaves out the topics its asker may not describe. On
 * Kafka's listener each handler checks its own names (acl_serve_kafka)
 * and answers Kafka's per-topic, per-group or request error codes, as
 * Kafka's clients expect. An API whose rule is ACL_RULE_UNSET is refused
 * on nagare's protocol and fails tests/test_acl_serve.c.
 *
 * Threads: the worker's loop thread.
 */
#ifndef NAGARE_BROKER_ACL_SERVE_H
#define NAGARE_BROKER_ACL_SERVE_H

#include <stdbool.h>
#include <stdint.h>

#include "base/bytes.h"
#include "broker/acl.h"
#include "broker/kafka_serve.h"
#include "net/loop.h"
#include "net/proto.h"

struct server;

enum acl_rule_kind {
    ACL_RULE_UNSET = 0, /* no rule: never served */
    ACL_RULE_OPEN,      /* anyone (ApiVersions, authentication) */
    ACL_RULE_NAMES,     /* the operations below, on what the request names */
    ACL_RULE_HANDLER,   /* the handler applies the operations below itself */
};

/* ACL_RULE_NAMES flags. */
#define ACL_RULE_OR_CLUSTER 1u /* cluster_op on the cluster stands for topic_op on each topic */
#define ACL_RULE_ANY_TOPIC 2u  /* cluster_op on the cluster, or topic_op on some topic */

/* What one request kind needs. An op of 0 asks for nothing of that
 * resource. */
struct acl_rule {
    uint8_t kind;      /* enum acl_rule_kind */
    uint8_t flags;     /* ACL_RULE_* */
    int8_t cluster_op; /* on PROTO_ACL_CLUSTER_NAME */
    int8_t group_op;   /* on the group the request names */
    int8_t topic_op;   /* on every topic it names */
    int8_t topic_op2;  /* and this one too (DlqRedrive: READ and WRITE) */
};

/* Opens s->acls from the data directory with the configured authorizer
 * and super users; logs what fails. Returns acl_store_open()'s error. */
MUST_USE int acl_serve_open(struct server *s);
void acl_serve_close(struct server *s);

/* A cluster's view changed (old: the one before, NULL for the first):
 * when its ACLs (acls/<key>) did, they become the store's. In a cluster
 * the ACLs are etcd's alone (DATA_DIR/acls is not read); CreateAcls and
 * DeleteAcls on any broker change etcd's and are answered once etcd has
 * the change, and each broker follows it with its next view. Loop thread. */
struct cluster_view;
void acl_serve_apply_view(struct server *s, const struct cluster_view *old,
                          const struct cluster_view *view);

/* Who req comes from: its connection's principal and address (the
 * address only when the authorizer is on: a system call). who is valid
 * until req is completed. */
void acl_serve_who(const struct server *s, struct loop_req *req, struct acl_who *who);

/* Whether who may do op on the resource (type, name). */
bool acl_serve_allowed(const struct server *s, const struct acl_who *who, int8_t resource_type,
                       struct proto_str name, int8_t op);

/* Whether req's principal may create topic name: CREATE on the cluster
 * or on the topic (auto-creation on produce or Metadata). */
bool acl_serve_may_create(const struct server *s, struct loop_req *req, struct proto_str name);

/* Whether req's principal may produce idempotently (InitProducerId):
 * IDEMPOTENT_WRITE on the cluster, or WRITE on some topic. */
bool acl_serve_idempotent(const struct server *s, struct loop_req *req);

/* nagare's protocol: enforces rule for req (header h, body at body, not
 * moved). Returns 0 to serve it, -NG_EUNAUTHORIZED to refuse it (logged
 * at debug). A body that does not decode passes: its handler answers the
 * decode error. */
MUST_USE int acl_serve_check(struct server *s, struct loop_req *req, const struct acl_rule *rule,
                             const struct proto_req_header *h, const struct rd *body);

/* Kafka's listener: 0 when req's principal may do op on the resource,
 * else Kafka's TOPIC_, GROUP_ or CLUSTER_AUTHORIZATION_FAILED by type. */
int16_t acl_serve_kafka(const struct server *s, struct loop_req *req, int8_t resource_type,
                        struct kw_str name, int8_t op);

/* nagare's CreateAcls, DescribeAcls, DeleteAcls. */
void handle_create_acls(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                        struct rd *body);
void handle_describe_acls(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                          struct rd *body);
void handle_delete_acls(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                        struct rd *body);

/* Kafka's DescribeAcls, CreateAcls, DeleteAcls. */
kafka_handler_fn kafka_describe_acls, kafka_create_acls, kafka_delete_acls;

#endif
