/* etcd's v3 gateway JSON (cluster/etcd_wire.h). */
#include "cluster/etcd_wire.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"

/* gRPC status codes the gateway reports (grpc/codes). */
enum grpc_code {
    GRPC_CANCELED = 1,
    GRPC_UNKNOWN = 2,
    GRPC_INVALID_ARGUMENT = 3,
    GRPC_DEADLINE_EXCEEDED = 4,
    GRPC_NOT_FOUND = 5,
    GRPC_PERMISSION_DENIED = 7,
    GRPC_RESOURCE_EXHAUSTED = 8,
    GRPC_FAILED_PRECONDITION = 9,
    GRPC_OUT_OF_RANGE = 11,
    GRPC_INTERNAL = 13,
    GRPC_UNAVAILABLE = 14,
    GRPC_UNAUTHENTICATED = 16,
};

/* ---- base64 ---- */

static const char b64_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t etcd_wire_b64_len(size_t n) { return (n + 2) / 3 * 4; }

void etcd_wire_b64_encode(const void *src, size_t n, char *dst)
{
    const uint8_t *p = src;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        v |= i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0;
        v |= i + 2 < n ? p[i + 2] : 0;
        dst[o++] = b64_chars[(v >> 18) & 63];
        dst[o++] = b64_chars[(v >> 12) & 63];
        dst[o++] = i + 1 < n ? b64_chars[(v >> 6) & 63] : '=';
        dst[o++] = i + 2 < n ? b64_chars[v & 63] : '=';
    }
    dst[o] = '\0';
}

/* 0..63, or -1 for a character outside the alphabet. */
static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

int etcd_wire_b64_decode(const char *src, size_t n, uint8_t *dst, size_t cap, size_t *len_out)
{
    *len_out = 0;
    if (n % 4 != 0) {
        return -NG_EPROTO;
    }
    size_t pad = n > 0 && src[n - 1] == '=' ? 1 + (src[n - 2] == '=') : 0;
    size_t bytes = n / 4 * 3 - pad;
    if (bytes > cap) {
        return -NG_ETOOBIG;
    }
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        uint32_t v = 0;
        for (size_t k = 0; k < 4; k++) {
            bool padding = i + 4 == n && k >= 4 - pad;
            int d = padding ? 0 : b64_value(src[i + k]);
            if (d < 0) {
                return -NG_EPROTO;
            }
            v = v << 6 | (uint32_t)d;
        }
        uint8_t out[3] = {(uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
        for (size_t k = 0; k < 3 && o < bytes; k++) {
            dst[o++] = out[k];
        }
        /* The bits a padded group leaves over must be zero (RFC 4648 3.5):
         * one meaning per text. */
        if (i + 4 == n && pad > 0 && (v & (pad == 1 ? 0xffu : 0xffffu)) != 0) {
            return -NG_EPROTO;
        }
    }
    *len_out = bytes;
    return 0;
}

/* ---- what cluster/etcd.h declares that needs no connection ---- */

void etcd_prefix_end(const char *prefix, char *buf)
{
    size_t n = strlen(prefix);
    ASSERT(n <= ETCD_KEY_BYTES_MAX);
    memcpy(buf, prefix, n);
    /* The first key past every key with the prefix: its last byte that is
     * not 0xff, plus one, cut there. None: every key from the prefix on,
     * written "" (etcd's "\0"). */
    while (n > 0 && (uint8_t)buf[n - 1] == 0xff) {
        n--;
    }
    if (n > 0) {
        buf[n - 1] = (char)((uint8_t)buf[n - 1] + 1);
    }
    buf[n] = '\0';
}

void etcd_kvs_free(struct etcd_kvs *kvs)
{
    for (size_t i = 0; i < kvs->count; i++) {
        free(kvs->kvs[i].key);
        free(kvs->kvs[i].value);
    }
    free(kvs->kvs);
    memset(kvs, 0, sizeof(*kvs));
}

void etcd_events_free(struct etcd_events *ev)
{
    for (size_t i = 0; i < ev->count; i++) {
        free(ev->events[i].kv.key);
        free(ev->events[i].kv.value);
    }
    free(ev->events);
    memset(ev, 0, sizeof(*ev));
}

/* ---- JSON building ---- */

/* A base64 JSON string of n bytes, or NULL. */
static json_t *b64_string(const void *p, size_t n)
{
    char *text = malloc(etcd_wire_b64_len(n) + 1);
    if (text == NULL) {
        return NULL;
    }
    etcd_wire_b64_encode(p, n, text);
    json_t *s = json_stringn_nocheck(text, etcd_wire_b64_len(n));
    free(text);
    return s;
}

/* A decimal JSON string, as proto3 JSON writes 64-bit numbers. */
static json_t *i64_string(int64_t v)
{
    char text[24];
    snprintf(text, sizeof(text), "%" PRId64, v);
    return json_string(text);
}

/* Sets o[name] = v, taking v; false when v is NULL or the set fails. */
static bool put(json_t *o, const char *name, json_t *v)
{
    return v != NULL && json_object_set_new(o, name, v) == 0;
}

static int check_key(const char *key)
{
    ASSERT(key != NULL);
    size_t n = strlen(key);
    return n == 0 ? -NG_EBADARG : n > ETCD_KEY_BYTES_MAX ? -NG_ETOOBIG : 0;
}

/* Serialises root (taken) into *out. */
static int finish(json_t *root, bool ok, char **out)
{
    *out = ok ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    return *out != NULL ? 0 : -ENOMEM;
}

/* key and range_end (NULL: none) into o; range_end "" is etcd's "\0". */
static bool put_range(json_t *o, const char *key, const char *range_end)
{
    bool ok = put(o, "key", b64_string(key, strlen(key)));
    if (range_end != NULL) {
        size_t n = strlen(range_end);
        ok = ok && put(o, "range_end", n == 0 ? b64_string("", 1) : b64_string(range_end, n));
    }
    return ok;
}

static int check_range_end(const char *range_end)
{
    return range_end != NULL && strlen(range_end) > ETCD_KEY_BYTES_MAX ? -NG_ETOOBIG : 0;
}

int etcd_wire_range_request(const char *key, const char *range_end, int64_t limit, char **out)
{
    *out = NULL;
    int rc = check_key(key);
    rc = rc == 0 ? check_range_end(range_end) : rc;
    if (rc != 0) {
        return rc;
    }
    json_t *root = json_object();
    bool ok = root != NULL && put_range(root, key, range_end);
    if (limit > 0) {
        ok = ok && put(root, "limit", i64_string(limit));
    }
    return finish(root, ok, out);
}

static const char *const cmp_targets[] = {
    [ETCD_CMP_CREATE_REVISION] = "CREATE",
    [ETCD_CMP_MOD_REVISION] = "MOD",
    [ETCD_CMP_VERSION] = "VERSION",
    [ETCD_CMP_VALUE] = "VALUE",
};
static const char *const cmp_target_fields[] = {
    [ETCD_CMP_CREATE_REVISION] = "create_revision",
    [ETCD_CMP_MOD_REVISION] = "mod_revision",
    [ETCD_CMP_VERSION] = "version",
    [ETCD_CMP_VALUE] = "value",
};
static const char *const cmp_results[] = {
    [ETCD_CMP_EQUAL] = "EQUAL",
    [ETCD_CMP_NOT_EQUAL] = "NOT_EQUAL",
    [ETCD_CMP_LESS] = "LESS",
    [ETCD_CMP_GREATER] = "GREATER",
};

static int check_cmp(const struct etcd_cmp *c)
{
    ASSERT((unsigned)c->target < ARRAY_LEN(cmp_targets));
    ASSERT((unsigned)c->result < ARRAY_LEN(cmp_results));
    ASSERT(c->target != ETCD_CMP_VALUE || c->value != NULL || c->value_len == 0);
    int rc = check_key(c->key);
    return rc == 0 && c->value_len > ETCD_VALUE_BYTES_MAX ? -NG_ETOOBIG : rc;
}

static json_t *cmp_json(const struct etcd_cmp *c)
{
    json_t *o = json_object();
    bool ok = o != NULL && put(o, "key", b64_string(c->key, strlen(c->key))) &&
              put(o, "target", json_string(cmp_targets[c->target])) &&
              put(o, "result", json_string(cmp_results[c->result]));
    json_t *v =
        c->target == ETCD_CMP_VALUE ? b64_string(c->value, c->value_len) : i64_string(c->number);
    ok = ok && put(o, cmp_target_fields[c->target], v);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static int check_op(const struct etcd_op *op)
{
    ASSERT(op->kind == ETCD_OP_PUT || op->kind == ETCD_OP_DELETE ||
           op->kind == ETCD_OP_DELETE_PREFIX || op->kind == ETCD_OP_GET);
    ASSERT(op->kind != ETCD_OP_PUT || op->value != NULL || op->value_len == 0);
    int rc = check_key(op->key);
    return rc == 0 && op->kind == ETCD_OP_PUT && op->value_len > ETCD_VALUE_BYTES_MAX ? -NG_ETOOBIG
                                                                                      : rc;
}

static json_t *op_json(const struct etcd_op *op)
{
    json_t *inner = json_object();
    json_t *o = json_object();
    bool ok = inner != NULL && o != NULL;
    const char *name = NULL;
    char end[ETCD_KEY_BYTES_MAX + 1];
    switch (op->kind) {
    case ETCD_OP_PUT:
        name = "request_put";
        ok = ok && put_range(inner, op->key, NULL) &&
             put(inner, "value", b64_string(op->value, op->value_len));
        if (op->lease != 0) {
            ok = ok && put(inner, "lease", i64_string(op->lease));
        }
        break;
    case ETCD_OP_DELETE:
    case ETCD_OP_GET:
        name = op->kind == ETCD_OP_GET ? "request_range" : "request_delete_range";
        ok = ok && put_range(inner, op->key, NULL);
        break;
    case ETCD_OP_DELETE_PREFIX:
        name = "request_delete_range";
        etcd_prefix_end(op->key, end);
        ok = ok && put_range(inner, op->key, end);
        break;
    }
    ok = ok && json_object_set(o, name, inner) == 0;
    json_decref(inner);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* An array of n compares (cmps) or ops into root[name]. */
static bool put_list(json_t *root, const char *name, const struct etcd_cmp *cmps,
                     const struct etcd_op *ops, size_t n)
{
    json_t *a = json_array();
    bool ok = a != NULL;
    for (size_t i = 0; i < n && ok; i++) {
        json_t *item = cmps != NULL ? cmp_json(&cmps[i]) : op_json(&ops[i]);
        ok = item != NULL && json_array_append_new(a, item) == 0;
    }
    if (!ok) {
        json_decref(a);
        return false;
    }
    return put(root, name, a);
}

static int check_txn(const struct etcd_txn *t)
{
    ASSERT(t->cmp_count == 0 || t->cmps != NULL);
    ASSERT(t->success_count == 0 || t->success != NULL);
    ASSERT(t->failure_count == 0 || t->failure != NULL);
    if (t->cmp_count > ETCD_TXN_OPS_MAX || t->success_count > ETCD_TXN_OPS_MAX ||
        t->failure_count > ETCD_TXN_OPS_MAX) {
        return -NG_ETOOBIG;
    }
    int rc = 0;
    for (size_t i = 0; i < t->cmp_count && rc == 0; i++) {
        rc = check_cmp(&t->cmps[i]);
    }
    for (size_t i = 0; i < t->success_count && rc == 0; i++) {
        rc = check_op(&t->success[i]);
    }
    for (size_t i = 0; i < t->failure_count && rc == 0; i++) {
        rc = check_op(&t->failure[i]);
    }
    return rc;
}

int etcd_wire_txn_request(const struct etcd_txn *t, char **out)
{
    *out = NULL;
    int rc = check_txn(t);
    if (rc != 0) {
        return rc;
    }
    json_t *root = json_object();
    bool ok = root != NULL && put_list(root, "compare", t->cmps, NULL, t->cmp_count) &&
              put_list(root, "success", NULL, t->success, t->success_count) &&
              put_list(root, "failure", NULL, t->failure, t->failure_count);
    return finish(root, ok, out);
}

int etcd_wire_lease_grant_request(int64_t ttl_s, char **out)
{
    json_t *root = json_object();
    return finish(root, root != NULL && put(root, "TTL", i64_string(ttl_s)), out);
}

int etcd_wire_lease_id_request(int64_t lease, char **out)
{
    json_t *root = json_object();
    return finish(root, root != NULL && put(root, "ID", i64_string(lease)), out);
}

int etcd_wire_watch_request(const char *key, const char *range_end, int64_t start_revision,
                            char **out)
{
    *out = NULL;
    int rc = check_key(key);
    rc = rc == 0 ? check_range_end(range_end) : rc;
    if (rc != 0) {
        return rc;
    }
    json_t *root = json_object();
    json_t *create = json_object();
    bool ok = root != NULL && create != NULL && put_range(create, key, range_end) &&
              put(create, "start_revision", i64_string(start_revision)) &&
              put(create, "fragment", json_true()) &&
              json_object_set(root, "create_request", create) == 0;
    json_decref(create);
    return finish(root, ok, out);
}

/* ---- JSON reading ---- */

/* root, parsed from body, when it is an object; NULL otherwise. */
static json_t *load_object(const char *body, size_t len)
{
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    if (root != NULL && !json_is_object(root)) {
        json_decref(root);
        return NULL;
    }
    return root;
}

/* o[name] as an int64: absent is 0, a decimal string or an integer is its
 * value, anything else -NG_EPROTO. */
static int get_i64(const json_t *o, const char *name, int64_t *out)
{
    *out = 0;
    const json_t *v = json_object_get(o, name);
    if (v == NULL) {
        return 0;
    }
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 0;
    }
    const char *s = json_string_value(v);
    if (s == NULL || *s == '\0' || strlen(s) != json_string_length(v)) {
        return -NG_EPROTO;
    }
    char *end = NULL;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || (*s != '-' && (*s < '0' || *s > '9'))) {
        return -NG_EPROTO;
    }
    *out = n;
    return 0;
}

/* o[name] as a bool: absent is false. */
static int get_bool(const json_t *o, const char *name, bool *out)
{
    const json_t *v = json_object_get(o, name);
    *out = json_is_true(v);
    return v == NULL || json_is_boolean(v) ? 0 : -NG_EPROTO;
}

/* o[name], absent or an object (NULL when absent); -NG_EPROTO otherwise. */
static int get_object(const json_t *o, const char *name, const json_t **out)
{
    *out = json_object_get(o, name);
    return *out == NULL || json_is_object(*out) ? 0 : -NG_EPROTO;
}

/* o[name], absent or an array, at most ETCD_RANGE_KVS_MAX long. */
static int get_array(const json_t *o, const char *name, const json_t **out)
{
    *out = json_object_get(o, name);
    if (*out == NULL) {
        return 0;
    }
    if (!json_is_array(*out)) {
        return -NG_EPROTO;
    }
    return json_array_size(*out) > ETCD_RANGE_KVS_MAX ? -NG_ETOOBIG : 0;
}

/* o[name], base64, decoded into a fresh NUL-terminated copy of at most max
 * bytes (absent: empty). */
static int get_bytes(const json_t *o, const char *name, size_t max, char **out, size_t *len_out)
{
    *out = NULL;
    *len_out = 0;
    const json_t *v = json_object_get(o, name);
    if (v != NULL && !json_is_string(v)) {
        return -NG_EPROTO;
    }
    size_t n = v != NULL ? json_string_length(v) : 0;
    if (n / 4 * 3 > max + 2) {
        return -NG_ETOOBIG; /* longer than any max-byte text, padded */
    }
    char *buf = malloc(n / 4 * 3 + 1);
    if (buf == NULL) {
        return -ENOMEM;
    }
    int rc = etcd_wire_b64_decode(v != NULL ? json_string_value(v) : "", n, (uint8_t *)buf, max,
                                  len_out);
    if (rc != 0) {
        free(buf);
        return rc;
    }
    buf[*len_out] = '\0';
    *out = buf;
    return 0;
}

static void kv_free(struct etcd_kv *kv)
{
    free(kv->key);
    free(kv->value);
    memset(kv, 0, sizeof(*kv));
}

static int get_kv(const json_t *o, struct etcd_kv *kv)
{
    memset(kv, 0, sizeof(*kv));
    if (!json_is_object(o)) {
        return -NG_EPROTO;
    }
    int rc = get_bytes(o, "key", ETCD_KEY_BYTES_MAX, &kv->key, &kv->key_len);
    rc = rc == 0 ? get_bytes(o, "value", ETCD_VALUE_BYTES_MAX, &kv->value, &kv->value_len) : rc;
    rc = rc == 0 ? get_i64(o, "create_revision", &kv->create_revision) : rc;
    rc = rc == 0 ? get_i64(o, "mod_revision", &kv->mod_revision) : rc;
    rc = rc == 0 ? get_i64(o, "version", &kv->version) : rc;
    rc = rc == 0 ? get_i64(o, "lease", &kv->lease) : rc;
    if (rc == 0 &&
        (kv->key_len == 0 || kv->create_revision < 0 || kv->mod_revision < 0 || kv->version < 0)) {
        rc = -NG_EPROTO;
    }
    if (rc != 0) {
        kv_free(kv);
    }
    return rc;
}

/* Appends the pairs of the array kvs to out (count kept on error). */
static int append_kvs(const json_t *kvs, struct etcd_kvs *out)
{
    size_t n = json_array_size(kvs);
    if (n == 0) {
        return 0;
    }
    if (out->count + n > ETCD_RANGE_KVS_MAX) {
        return -NG_ETOOBIG;
    }
    struct etcd_kv *grown = realloc(out->kvs, (out->count + n) * sizeof(*grown));
    if (grown == NULL) {
        return -ENOMEM;
    }
    out->kvs = grown;
    for (size_t i = 0; i < n; i++) {
        int rc = get_kv(json_array_get(kvs, i), &out->kvs[out->count + i]);
        if (rc != 0) {
            while (i-- > 0) {
                kv_free(&out->kvs[out->count + i]);
            }
            return rc;
        }
    }
    out->count += n;
    return 0;
}

/* The header's revision (absent: 0), which must not be negative. */
static int get_header(const json_t *root, int64_t *revision)
{
    const json_t *h;
    int rc = get_object(root, "header", &h);
    rc = rc == 0 ? get_i64(h, "revision", revision) : rc;
    return rc == 0 && *revision < 0 ? -NG_EPROTO : rc;
}

/* A range answer's pairs appended to out; -NG_ETOOBIG when it says more
 * were left out. */
static int get_range(const json_t *o, struct etcd_kvs *out)
{
    const json_t *kvs;
    bool more;
    int rc = get_array(o, "kvs", &kvs);
    rc = rc == 0 ? get_bool(o, "more", &more) : rc;
    rc = rc == 0 && more ? -NG_ETOOBIG : rc;
    return rc == 0 ? append_kvs(kvs, out) : rc;
}

int etcd_wire_range_answer(const char *body, size_t len, struct etcd_kvs *out)
{
    memset(out, 0, sizeof(*out));
    json_t *root = load_object(body, len);
    int rc = root != NULL ? get_header(root, &out->revision) : -NG_EPROTO;
    rc = rc == 0 ? get_range(root, out) : rc;
    json_decref(root);
    if (rc != 0) {
        etcd_kvs_free(out);
    }
    return rc;
}

/* One of a txn's responses: a range's pairs into gets (when not NULL);
 * the others carry nothing the caller reads. */
static int get_txn_response(const json_t *r, struct etcd_kvs *gets)
{
    if (!json_is_object(r) || json_object_size(r) != 1) {
        return -NG_EPROTO;
    }
    const json_t *range = json_object_get(r, "response_range");
    if (range == NULL) {
        const char *kind = json_object_iter_key(json_object_iter((json_t *)r));
        bool known = strcmp(kind, "response_put") == 0 ||
                     strcmp(kind, "response_delete_range") == 0 ||
                     strcmp(kind, "response_txn") == 0;
        return known ? 0 : -NG_EPROTO;
    }
    if (!json_is_object(range)) {
        return -NG_EPROTO;
    }
    return gets != NULL ? get_range(range, gets) : 0;
}

int etcd_wire_txn_answer(const char *body, size_t len, bool *succeeded, int64_t *revision,
                         struct etcd_kvs *gets)
{
    *succeeded = false;
    *revision = 0;
    if (gets != NULL) {
        memset(gets, 0, sizeof(*gets));
    }
    json_t *root = load_object(body, len);
    const json_t *responses = NULL;
    int rc = root != NULL ? get_header(root, revision) : -NG_EPROTO;
    rc = rc == 0 ? get_bool(root, "succeeded", succeeded) : rc;
    rc = rc == 0 ? get_array(root, "responses", &responses) : rc;
    for (size_t i = 0; rc == 0 && i < json_array_size(responses); i++) {
        rc = get_txn_response(json_array_get(responses, i), gets);
    }
    json_decref(root);
    if (gets != NULL) {
        gets->revision = *revision;
        if (rc != 0) {
            etcd_kvs_free(gets);
        }
    }
    if (rc != 0) {
        *succeeded = false;
        *revision = 0;
    }
    return rc;
}

int etcd_wire_lease_grant_answer(const char *body, size_t len, int64_t *lease, int64_t *ttl_s)
{
    json_t *root = load_object(body, len);
    int64_t revision;
    int rc = root != NULL ? get_header(root, &revision) : -NG_EPROTO;
    rc = rc == 0 ? get_i64(root, "ID", lease) : rc;
    rc = rc == 0 ? get_i64(root, "TTL", ttl_s) : rc;
    json_decref(root);
    /* etcd answers a refused grant with an error, never with no lease. */
    return rc == 0 && (*lease == 0 || *ttl_s <= 0) ? -NG_EPROTO : rc;
}

int etcd_wire_keepalive_answer(const char *body, size_t len, int64_t *ttl_s, bool *retry)
{
    *ttl_s = 0;
    *retry = false;
    json_t *root = load_object(body, len);
    if (json_is_object(json_object_get(root, "error"))) {
        json_decref(root);
        return etcd_wire_error(body, len, 200, retry);
    }
    const json_t *result = NULL;
    int64_t revision;
    int rc = root != NULL ? get_object(root, "result", &result) : -NG_EPROTO;
    rc = rc == 0 && result == NULL ? -NG_EPROTO : rc;
    rc = rc == 0 ? get_header(result, &revision) : rc;
    rc = rc == 0 ? get_i64(result, "TTL", ttl_s) : rc;
    json_decref(root);
    return rc == 0 && *ttl_s <= 0 ? -NG_ENOTFOUND : rc;
}

int etcd_wire_header_answer(const char *body, size_t len)
{
    json_t *root = load_object(body, len);
    int64_t revision;
    int rc = root != NULL ? get_header(root, &revision) : -NG_EPROTO;
    json_decref(root);
    return rc;
}

/* ---- errors ---- */

static int error_of(int64_t code, const char *message, bool *retry)
{
    *retry = false;
    switch (code) {
    case GRPC_CANCELED:
    case GRPC_UNKNOWN:
    case GRPC_DEADLINE_EXCEEDED:
    case GRPC_FAILED_PRECONDITION: /* "not leader", "not capable" */
    case GRPC_INTERNAL:
    case GRPC_UNAVAILABLE: /* "no leader", "request timed out", "leader changed" */
        *retry = true;
        return -NG_ECLUSTER_UNAVAILABLE;
    case GRPC_NOT_FOUND:
        return -NG_ENOTFOUND;
    case GRPC_RESOURCE_EXHAUSTED: /* "database space exceeded": an operator's alarm */
        return -NG_ECLUSTER_UNAVAILABLE;
    case GRPC_PERMISSION_DENIED:
    case GRPC_UNAUTHENTICATED:
        return -EACCES;
    case GRPC_INVALID_ARGUMENT:
    case GRPC_OUT_OF_RANGE:
        if (strstr(message, "compacted") != NULL) {
            return -NG_EOFFSET_RANGE;
        }
        if (strstr(message, "too large") != NULL || strstr(message, "too many") != NULL) {
            return -NG_ETOOBIG;
        }
        return -NG_EBADARG;
    default:
        return -NG_EPROTO;
    }
}

int etcd_wire_error(const char *body, size_t len, long http_status, bool *retry)
{
    json_t *root = load_object(body, len);
    const json_t *error = json_object_get(root, "error");
    int64_t code = -1;
    const char *message = NULL;
    if (json_is_object(error)) { /* a stream's {"error":{"grpc_code",...}} */
        message = json_string_value(json_object_get(error, "message"));
        if (get_i64(error, "grpc_code", &code) != 0) {
            code = -1;
        }
    } else if (root != NULL) { /* a unary {"error","message","code"} */
        message = json_string_value(json_object_get(root, "message"));
        if (get_i64(root, "code", &code) != 0 || json_object_get(root, "code") == NULL) {
            code = -1;
        }
    }
    int rc;
    if (code >= 0) {
        rc = error_of(code, message != NULL ? message : "", retry);
    } else {
        *retry = http_status >= 500 || http_status == 0;
        rc = *retry ? -NG_ECLUSTER_UNAVAILABLE : -NG_EPROTO;
    }
    json_decref(root);
    return rc;
}

/* ---- the watch stream ---- */

static bool is_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

int etcd_wire_scan(struct etcd_wire_scan *s, const char *buf, size_t len, size_t *end)
{
    for (; s->pos < len; s->pos++) {
        char c = buf[s->pos];
        if (!s->started) {
            if (is_space(c)) {
                continue;
            }
            if (c != '{') {
                return -NG_EPROTO;
            }
            s->started = true;
            s->depth = 1;
        } else if (s->in_string) {
            if (s->escape) {
                s->escape = false;
            } else if (c == '\\') {
                s->escape = true;
            } else if (c == '"') {
                s->in_string = false;
            }
        } else if (c == '"') {
            s->in_string = true;
        } else if (c == '{' || c == '[') {
            if (++s->depth > ETCD_WIRE_DEPTH_MAX) {
                return -NG_EPROTO;
            }
        } else if (c == '}' || c == ']') {
            if (--s->depth == 0) {
                *end = ++s->pos;
                return 1;
            }
        }
    }
    return 0;
}

static int get_event(const json_t *o, struct etcd_event *e)
{
    memset(e, 0, sizeof(*e));
    if (!json_is_object(o)) {
        return -NG_EPROTO;
    }
    const json_t *type = json_object_get(o, "type");
    const char *t = json_string_value(type);
    if (type == NULL || (t != NULL && strcmp(t, "PUT") == 0)) {
        e->kind = ETCD_EVENT_PUT;
    } else if (t != NULL && strcmp(t, "DELETE") == 0) {
        e->kind = ETCD_EVENT_DELETE;
    } else {
        return -NG_EPROTO;
    }
    int rc = get_kv(json_object_get(o, "kv"), &e->kv);
    if (rc == 0 && e->kv.mod_revision <= 0) {
        kv_free(&e->kv);
        rc = -NG_EPROTO;
    }
    return rc;
}

/* Appends the array events to ev, in order; ev unchanged on error. */
static int append_events(const json_t *events, struct etcd_events *ev)
{
    size_t n = json_array_size(events);
    if (n == 0) {
        return 0;
    }
    if (ev->count + n > ETCD_RANGE_KVS_MAX) {
        return -NG_ETOOBIG;
    }
    struct etcd_event *grown = realloc(ev->events, (ev->count + n) * sizeof(*grown));
    if (grown == NULL) {
        return -ENOMEM;
    }
    ev->events = grown;
    int64_t last = ev->count > 0 ? ev->events[ev->count - 1].kv.mod_revision : 0;
    for (size_t i = 0; i < n; i++) {
        struct etcd_event *e = &ev->events[ev->count + i];
        int rc = get_event(json_array_get(events, i), e);
        /* Events come in revision order; one out of it is not etcd's. */
        if (rc == 0 && e->kv.mod_revision < last) {
            kv_free(&e->kv);
            rc = -NG_EPROTO;
        }
        if (rc != 0) {
            while (i-- > 0) {
                kv_free(&ev->events[ev->count + i].kv);
            }
            return rc;
        }
        last = e->kv.mod_revision;
    }
    ev->count += n;
    return 0;
}

static int get_watch_result(const json_t *r, struct etcd_wire_watch_msg *msg,
                            struct etcd_events *ev)
{
    const json_t *events;
    int rc = get_header(r, &msg->revision);
    rc = rc == 0 ? get_bool(r, "created", &msg->created) : rc;
    rc = rc == 0 ? get_bool(r, "canceled", &msg->canceled) : rc;
    rc = rc == 0 ? get_bool(r, "fragment", &msg->fragment) : rc;
    rc = rc == 0 ? get_i64(r, "compact_revision", &msg->compact_revision) : rc;
    rc = rc == 0 && msg->compact_revision < 0 ? -NG_EPROTO : rc;
    rc = rc == 0 ? get_array(r, "events", &events) : rc;
    return rc == 0 ? append_events(events, ev) : rc;
}

int etcd_wire_watch_answer(const char *obj, size_t len, struct etcd_wire_watch_msg *msg,
                           struct etcd_events *ev)
{
    memset(msg, 0, sizeof(*msg));
    json_t *root = load_object(obj, len);
    if (root == NULL) {
        return -NG_EPROTO;
    }
    const json_t *result = json_object_get(root, "result");
    int rc;
    if (json_is_object(result)) {
        rc = get_watch_result(result, msg, ev);
    } else if (result == NULL && json_is_object(json_object_get(root, "error"))) {
        msg->err = etcd_wire_error(obj, len, 200, &msg->retry);
        rc = 0;
    } else {
        rc = -NG_EPROTO;
    }
    json_decref(root);
    if (rc != 0) {
        memset(msg, 0, sizeof(*msg));
    }
    return rc;
}
