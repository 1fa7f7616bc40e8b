/*
 * client/admin_acl.c — the admin client's ACL calls (client/nagare.h,
 * "admin: ACLs"): CreateAcls, DescribeAcls and DeleteAcls at the broker
 * given.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client/admin_int.h"
#include "client/nagare.h"
#include "net/proto.h"

static_assert((int)NAGARE_ACL_RESOURCE_TOPIC == PROTO_ACL_RESOURCE_TOPIC &&
                  (int)NAGARE_ACL_RESOURCE_CLUSTER == PROTO_ACL_RESOURCE_CLUSTER &&
                  (int)NAGARE_ACL_PATTERN_PREFIXED == PROTO_ACL_PATTERN_PREFIXED &&
                  (int)NAGARE_ACL_OP_IDEMPOTENT_WRITE == PROTO_ACL_OP_IDEMPOTENT_WRITE &&
                  (int)NAGARE_ACL_PERMISSION_ALLOW == PROTO_ACL_PERMISSION_ALLOW,
              "the public ACL codes are the wire's (Kafka's)");
static_assert((int)NAGARE_ACL_VOCAB_OP == PROTO_ACL_VOCAB_OP &&
                  (int)NAGARE_ACL_VOCAB_PERMISSION == PROTO_ACL_VOCAB_PERMISSION,
              "one vocabulary");

const char *nagare_acl_name(enum nagare_acl_vocab vocab, int code)
{
    return code >= INT8_MIN && code <= INT8_MAX
               ? proto_acl_name((enum proto_acl_vocab)vocab, (int8_t)code)
               : NULL;
}

int nagare_acl_code(enum nagare_acl_vocab vocab, const char *name)
{
    return name != NULL ? proto_acl_code((enum proto_acl_vocab)vocab, name, strlen(name)) : 0;
}

/* Codes as the wire's i8: out of range ones become 0, which no vocabulary
 * has (the broker refuses them). */
static int8_t code8(int c) { return c > 0 && c <= INT8_MAX ? (int8_t)c : 0; }

static struct proto_acl to_proto(const struct nagare_acl *a)
{
    return (struct proto_acl){.resource_type = code8(a->resource_type),
                              .pattern_type = code8(a->pattern_type),
                              .name = proto_str_make(a->name),
                              .principal = proto_str_make(a->principal),
                              .host = proto_str_make(a->host),
                              .operation = code8(a->operation),
                              .permission = code8(a->permission)};
}

static size_t str_bytes(const char *s) { return s != NULL ? strlen(s) : 0; }

static size_t acl_bytes(const struct nagare_acl *a)
{
    return PROTO_ACL_BYTES(str_bytes(a->name), str_bytes(a->principal), str_bytes(a->host));
}

/* ---- CreateAcls ---- */

struct create_call {
    const struct nagare_acl *acls;
    size_t count;
};

static int create_encode(void *arg, struct wr *w, uint32_t corr, uint16_t version)
{
    const struct create_call *c = arg;
    struct proto_enc e;
    proto_create_acls_req_begin(&e, w, version, corr, proto_str_make(CONN_CLIENT_ID));
    for (size_t i = 0; i < c->count; i++) {
        struct proto_acl p = to_proto(&c->acls[i]);
        proto_enc_acl(&e, &p);
    }
    return proto_enc_end(&e);
}

static int create_decode(void *arg, struct rd *body, uint16_t version)
{
    (void)arg;
    int err = 0;
    return proto_create_acls_resp_decode(body, version, &err) != 0 ? -NG_EPROTO : err;
}

int nagare_acls_create(nagare_admin *a, const struct nagare_acl *acls, size_t count)
{
    ASSERT(a != NULL);
    if (acls == NULL || count == 0 || count > PROTO_ACLS_MAX) {
        return -NG_EBADARG;
    }
    size_t need = 64;
    for (size_t i = 0; i < count; i++) {
        if (acls[i].name == NULL || acls[i].principal == NULL || acls[i].host == NULL) {
            return -NG_EBADARG;
        }
        need += acl_bytes(&acls[i]);
    }
    struct create_call c = {.acls = acls, .count = count};
    return admin_call(a, PROTO_API_CREATE_ACLS, need, create_encode, create_decode, &c);
}

/* ---- DescribeAcls, DeleteAcls ---- */

struct list_call {
    uint16_t api_key;
    struct proto_acl filter;
    struct nagare_acl *out; /* one block: the ACLs, then their strings */
    size_t count;
};

static int list_encode(void *arg, struct wr *w, uint32_t corr, uint16_t version)
{
    const struct list_call *c = arg;
    return proto_acl_filter_req_encode(w, c->api_key, version, corr, proto_str_make(CONN_CLIENT_ID),
                                       &c->filter);
}

static char *str_put(char **at, struct proto_str s)
{
    char *p = *at;
    memcpy(p, s.ptr, (size_t)s.len);
    p[s.len] = '\0';
    *at += (size_t)s.len + 1;
    return p;
}

/* Copies the answer's ACLs into one block the caller frees. */
static int list_decode(void *arg, struct rd *body, uint16_t version)
{
    struct list_call *c = arg;
    struct proto_dec d;
    if (proto_acl_list_resp_decode(body, c->api_key, version, &d) != 0) {
        return -NG_EPROTO;
    }
    size_t n = d.topic_count > 0 ? (size_t)d.topic_count : 0;
    size_t bytes = n * sizeof(*c->out) + 1;
    struct proto_dec count = d;
    struct proto_acl p;
    while (proto_next_acl(&count, &p)) {
        bytes += (size_t)p.name.len + (size_t)p.principal.len + (size_t)p.host.len + 3;
    }
    struct nagare_acl *out = malloc(bytes);
    if (out == NULL) {
        return -ENOMEM;
    }
    char *at = (char *)(out + n);
    for (size_t i = 0; proto_next_acl(&d, &p); i++) {
        out[i] = (struct nagare_acl){.resource_type = p.resource_type,
                                     .pattern_type = p.pattern_type,
                                     .name = str_put(&at, p.name),
                                     .principal = str_put(&at, p.principal),
                                     .host = str_put(&at, p.host),
                                     .operation = p.operation,
                                     .permission = p.permission};
    }
    c->out = out;
    c->count = n;
    return 0;
}

static int acl_list(nagare_admin *a, uint16_t api_key, const struct nagare_acl *filter,
                    const struct nagare_acl **out, size_t *count_out)
{
    ASSERT(a != NULL && filter != NULL && out != NULL && count_out != NULL);
    *out = NULL;
    *count_out = 0;
    struct list_call c = {.api_key = api_key, .filter = to_proto(filter)};
    if (c.filter.resource_type == 0 || c.filter.pattern_type == 0 || c.filter.operation == 0 ||
        c.filter.permission == 0) {
        return -NG_EBADARG;
    }
    size_t need = 64 + acl_bytes(filter);
    int rc = admin_call(a, api_key, need, list_encode, list_decode, &c);
    if (rc != 0) {
        free(c.out);
        return rc;
    }
    *out = c.out;
    *count_out = c.count;
    return 0;
}

int nagare_acls_describe(nagare_admin *a, const struct nagare_acl *filter,
                         const struct nagare_acl **out, size_t *count_out)
{
    return acl_list(a, PROTO_API_DESCRIBE_ACLS, filter, out, count_out);
}

int nagare_acls_delete(nagare_admin *a, const struct nagare_acl *filter,
                       const struct nagare_acl **out, size_t *count_out)
{
    return acl_list(a, PROTO_API_DELETE_ACLS, filter, out, count_out);
}

void nagare_acls_free(nagare_admin *a, const struct nagare_acl *acls)
{
    (void)a;
    free((void *)acls);
}
