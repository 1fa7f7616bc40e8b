/*
 * net/kafka/codec.c — the one walker over the generated descriptors
 * (net/kafka/codec.h): init, decode and encode of every Kafka message, and
 * the request and response headers.
 *
 * Recursion follows the definition's nesting (a few levels), never the
 * input: an array's elements are a loop.
 */
#include <string.h>

#include "net/kafka/codec.h"

/* The arena bound (net/kafka/wire.h) for arrays of strings and bytes: 1
 * byte on the wire when compact. Integer, bool and uuid elements are as
 * long in C as on the wire; the generated code checks struct elements. */
static_assert(sizeof(struct kw_str) <= KW_ARENA_ELEM_BYTES_PER_WIRE_BYTE * 1, "string elements");
static_assert(sizeof(struct kw_bytes) <= KW_ARENA_ELEM_BYTES_PER_WIRE_BYTE * 1, "bytes elements");

/* What one walk needs besides the struct: the version and its form. */
struct walk {
    int16_t version;
    bool flexible;
    struct kw_arena *arena; /* decoding only */
};

static bool in(struct kafka_versions v, int16_t version)
{
    return version >= v.min && version <= v.max;
}

static bool has(const struct kafka_field *f, int16_t version) { return in(f->versions, version); }

static bool nullable(const struct kafka_field *f, int16_t version)
{
    return in(f->nullable, version);
}

static void *at(void *base, uint32_t offset) { return (char *)base + offset; }

static const void *cat(const void *base, uint32_t offset) { return (const char *)base + offset; }

size_t kafka_elem_size(uint8_t t, const struct kafka_struct *sub)
{
    switch (t) {
    case KAFKA_T_BOOL:
        return sizeof(bool);
    case KAFKA_T_INT8:
        return 1;
    case KAFKA_T_INT16:
        return 2;
    case KAFKA_T_INT32:
        return 4;
    case KAFKA_T_INT64:
        return 8;
    case KAFKA_T_UUID:
        return sizeof(struct kw_uuid);
    case KAFKA_T_STRING:
        return sizeof(struct kw_str);
    case KAFKA_T_BYTES:
        return sizeof(struct kw_bytes);
    case KAFKA_T_STRUCT:
        return sub->size;
    default:
        UNREACHABLE();
    }
}

/* Fewest bytes one element of type t takes on the wire. */
static size_t elem_wire_min(uint8_t t, const struct kafka_struct *sub, bool flexible)
{
    switch (t) {
    case KAFKA_T_STRING:
        return flexible ? 1 : 2;
    case KAFKA_T_BYTES:
        return flexible ? 1 : 4;
    case KAFKA_T_STRUCT:
        return sub->wire_min;
    case KAFKA_T_UUID:
        return sizeof(struct kw_uuid);
    default:
        return kafka_elem_size(t, sub); /* integers and bools: as in C */
    }
}

/* ---- the table of APIs ---- */

const struct kafka_api *kafka_api_find(int16_t key)
{
    for (size_t i = 0; i < KAFKA_API_COUNT; i++) {
        if (kafka_apis[i].key == key) {
            return &kafka_apis[i];
        }
    }
    return NULL;
}

bool kafka_api_version_ok(const struct kafka_api *api, int16_t version)
{
    return in(api->versions, version);
}

bool kafka_msg_flexible(const struct kafka_msg *msg, int16_t version)
{
    return version >= msg->flexible_min;
}

/* ---- init ---- */

/* Sets f's value at p (not an array) to its default. */
static void init_value(const struct kafka_field *f, void *p)
{
    int64_t d = f->default_int;
    bool null = f->default_null;
    switch (f->type) {
    case KAFKA_T_BOOL:
        *(bool *)p = d != 0;
        break;
    case KAFKA_T_INT8:
        *(int8_t *)p = (int8_t)d;
        break;
    case KAFKA_T_INT16:
        *(int16_t *)p = (int16_t)d;
        break;
    case KAFKA_T_INT32:
        *(int32_t *)p = (int32_t)d;
        break;
    case KAFKA_T_INT64:
        *(int64_t *)p = d;
        break;
    case KAFKA_T_UUID:
        memset(p, 0, sizeof(struct kw_uuid));
        break;
    case KAFKA_T_STRING:
        *(struct kw_str *)p = null ? KW_STR_NULL : (struct kw_str){.ptr = "", .len = 0};
        break;
    case KAFKA_T_BYTES:
        *(struct kw_bytes *)p = (struct kw_bytes){.ptr = NULL, .len = null ? -1 : 0};
        break;
    case KAFKA_T_RECORDS:
        *(struct kw_records *)p = (struct kw_records){.ptr = NULL, .len = null ? -1 : 0};
        break;
    case KAFKA_T_STRUCT:
        kafka_struct_init(f->sub, p);
        break;
    default:
        UNREACHABLE();
    }
}

void kafka_struct_init(const struct kafka_struct *s, void *p)
{
    memset(p, 0, s->size);
    for (uint32_t i = 0; i < s->field_count; i++) {
        const struct kafka_field *f = &s->fields[i];
        if (f->type == KAFKA_T_ARRAY) {
            *(void **)at(p, f->offset) = NULL;
            *(int32_t *)at(p, f->count_offset) = f->default_null ? -1 : 0;
        } else {
            init_value(f, at(p, f->offset));
        }
    }
}

void kafka_init(const struct kafka_msg *msg, void *m) { kafka_struct_init(msg->body, m); }

/* ---- decode ---- */

static void dec_struct(const struct walk *k, struct rd *r, const struct kafka_struct *s, void *p);

/* One value of type t (f's, or an array element's with f the array). */
static void dec_value(const struct walk *k, struct rd *r, uint8_t t, bool null_ok,
                      const struct kafka_struct *sub, void *p)
{
    struct kw_bytes b;
    switch (t) {
    case KAFKA_T_BOOL:
        *(bool *)p = rd_u8(r) != 0;
        break;
    case KAFKA_T_INT8:
        *(int8_t *)p = (int8_t)rd_u8(r);
        break;
    case KAFKA_T_INT16:
        *(int16_t *)p = (int16_t)rd_be16(r);
        break;
    case KAFKA_T_INT32:
        *(int32_t *)p = (int32_t)rd_be32(r);
        break;
    case KAFKA_T_INT64:
        *(int64_t *)p = (int64_t)rd_be64(r);
        break;
    case KAFKA_T_UUID:
        kw_rd_uuid(r, p);
        break;
    case KAFKA_T_STRING:
        kw_rd_str(r, k->flexible, null_ok, p);
        break;
    case KAFKA_T_BYTES:
        kw_rd_bytes(r, k->flexible, null_ok, p);
        break;
    case KAFKA_T_RECORDS:
        kw_rd_bytes(r, k->flexible, null_ok, &b);
        *(struct kw_records *)p = (struct kw_records){.ptr = b.ptr, .len = b.len};
        break;
    case KAFKA_T_STRUCT:
        dec_struct(k, r, sub, p);
        break;
    default:
        UNREACHABLE();
    }
}

static void dec_array(const struct walk *k, struct rd *r, const struct kafka_field *f, void *p)
{
    size_t wire_min = elem_wire_min(f->elem, f->sub, k->flexible);
    int32_t n = kw_rd_count(r, k->flexible, nullable(f, k->version), wire_min);
    *(int32_t *)at(p, f->count_offset) = n;
    if (n <= 0) {
        return;
    }
    size_t size = kafka_elem_size(f->elem, f->sub);
    uint8_t *items = kw_arena_alloc(k->arena, (size_t)n * size);
    if (items == NULL) {
        rd_fail(r, -NG_ETOOBIG);
        return;
    }
    *(void **)at(p, f->offset) = items;
    for (int32_t i = 0; i < n && r->err == 0; i++) {
        dec_value(k, r, f->elem, false, f->sub, items + (size_t)i * size);
    }
}

static void dec_field(const struct walk *k, struct rd *r, const struct kafka_field *f, void *p)
{
    if (f->type == KAFKA_T_ARRAY) {
        dec_array(k, r, f, p);
    } else {
        dec_value(k, r, f->type, nullable(f, k->version), f->sub, at(p, f->offset));
    }
}

/* The tagged fields s has at this version, from their section. */
static void dec_tags(const struct walk *k, struct rd *r, const struct kafka_struct *s, void *p)
{
    uint32_t n = kw_rd_uvarint32(r);
    int64_t last = -1;
    for (uint32_t i = 0; i < n && r->err == 0; i++) {
        uint32_t tag;
        struct rd field;
        kw_rd_tag(r, &last, &tag, &field);
        for (uint32_t j = 0; j < s->field_count && r->err == 0; j++) {
            const struct kafka_field *f = &s->fields[j];
            if (f->tag < 0 || (uint32_t)f->tag != tag || !has(f, k->version)) {
                continue;
            }
            dec_field(k, &field, f, p);
            if (field.err == 0 && rd_left(&field) != 0) {
                rd_fail(&field, -NG_EBADLEN);
            }
            if (field.err != 0) {
                rd_fail(r, field.err);
            }
        }
    }
}

static void dec_struct(const struct walk *k, struct rd *r, const struct kafka_struct *s, void *p)
{
    kafka_struct_init(s, p);
    for (uint32_t i = 0; i < s->field_count && r->err == 0; i++) {
        const struct kafka_field *f = &s->fields[i];
        if (f->tag < 0 && has(f, k->version)) {
            dec_field(k, r, f, p);
        }
    }
    if (k->flexible && r->err == 0) {
        dec_tags(k, r, s, p);
    }
}

int kafka_decode(const struct kafka_msg *msg, struct rd *r, int16_t version, struct kw_arena *a,
                 void *out)
{
    if (r->err != 0) {
        return r->err;
    }
    if (!in(msg->versions, version)) {
        return -NG_EBADVERSION;
    }
    struct walk k = {.version = version, .flexible = kafka_msg_flexible(msg, version), .arena = a};
    dec_struct(&k, r, msg->body, out);
    if (r->err == 0 && rd_left(r) != 0) {
        rd_fail(r, -NG_EBADLEN);
    }
    return r->err;
}

/* ---- encode ---- */

static void enc_struct(const struct walk *k, struct kw_wr *w, const struct kafka_struct *s,
                       const void *p);
static bool is_default_struct(const struct kafka_struct *s, const void *p);

static void enc_value(const struct walk *k, struct kw_wr *w, uint8_t t, bool null_ok,
                      const struct kafka_struct *sub, const void *p)
{
    switch (t) {
    case KAFKA_T_BOOL:
        kw_wr_u8(w, *(const bool *)p ? 1 : 0);
        break;
    case KAFKA_T_INT8:
        kw_wr_u8(w, (uint8_t) * (const int8_t *)p);
        break;
    case KAFKA_T_INT16:
        kw_wr_be16(w, (uint16_t) * (const int16_t *)p);
        break;
    case KAFKA_T_INT32:
        kw_wr_be32(w, (uint32_t) * (const int32_t *)p);
        break;
    case KAFKA_T_INT64:
        kw_wr_be64(w, (uint64_t) * (const int64_t *)p);
        break;
    case KAFKA_T_UUID:
        kw_wr_uuid(w, p);
        break;
    case KAFKA_T_STRING:
        kw_wr_str(w, k->flexible, null_ok, *(const struct kw_str *)p);
        break;
    case KAFKA_T_BYTES:
        kw_wr_bytes(w, k->flexible, null_ok, *(const struct kw_bytes *)p);
        break;
    case KAFKA_T_RECORDS:
        kw_wr_records(w, k->flexible, null_ok, p);
        break;
    case KAFKA_T_STRUCT:
        enc_struct(k, w, sub, p);
        break;
    default:
        UNREACHABLE();
    }
}

static void enc_field(const struct walk *k, struct kw_wr *w, const struct kafka_field *f,
                      const void *p)
{
    if (f->type != KAFKA_T_ARRAY) {
        enc_value(k, w, f->type, nullable(f, k->version), f->sub, cat(p, f->offset));
        return;
    }
    int32_t n = *(const int32_t *)cat(p, f->count_offset);
    const uint8_t *items = *(const void *const *)cat(p, f->offset);
    ASSERT(n >= -1 && (n <= 0 || items != NULL));
    kw_wr_count(w, k->flexible, nullable(f, k->version), n);
    size_t size = kafka_elem_size(f->elem, f->sub);
    for (int32_t i = 0; i < n && w->w.err == 0; i++) {
        enc_value(k, w, f->elem, false, f->sub, items + (size_t)i * size);
    }
}

/* Whether f's value in the struct at p is its default (a tagged field is
 * sent only when it is not). */
static bool is_default_field(const struct kafka_field *f, const void *p)
{
    const void *v = cat(p, f->offset);
    int32_t null_len = f->default_null ? -1 : 0;
    switch (f->type) {
    case KAFKA_T_BOOL:
        return (*(const bool *)v ? 1 : 0) == f->default_int;
    case KAFKA_T_INT8:
        return *(const int8_t *)v == f->default_int;
    case KAFKA_T_INT16:
        return *(const int16_t *)v == f->default_int;
    case KAFKA_T_INT32:
        return *(const int32_t *)v == f->default_int;
    case KAFKA_T_INT64:
        return *(const int64_t *)v == f->default_int;
    case KAFKA_T_UUID:
        return memcmp(v, &(struct kw_uuid){{0}}, sizeof(struct kw_uuid)) == 0;
    case KAFKA_T_STRING:
        return ((const struct kw_str *)v)->len == null_len;
    case KAFKA_T_BYTES:
        return ((const struct kw_bytes *)v)->len == null_len;
    case KAFKA_T_RECORDS:
        return ((const struct kw_records *)v)->len == null_len &&
               !((const struct kw_records *)v)->external;
    case KAFKA_T_STRUCT:
        return is_default_struct(f->sub, v);
    case KAFKA_T_ARRAY:
        return *(const int32_t *)cat(p, f->count_offset) == null_len;
    default:
        UNREACHABLE();
    }
}

static bool is_default_struct(const struct kafka_struct *s, const void *p)
{
    for (uint32_t i = 0; i < s->field_count; i++) {
        if (!is_default_field(&s->fields[i], p)) {
            return false;
        }
    }
    return true;
}

/* The tagged-field section: each tagged field this version has that is
 * not at its default, its size measured first. */
static void enc_tags(const struct walk *k, struct kw_wr *w, const struct kafka_struct *s,
                     const void *p)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < s->field_count; i++) {
        const struct kafka_field *f = &s->fields[i];
        n += f->tag >= 0 && has(f, k->version) && !is_default_field(f, p);
    }
    kw_wr_uvarint32(w, n);
    for (uint32_t i = 0; i < s->field_count && n > 0 && w->w.err == 0; i++) {
        const struct kafka_field *f = &s->fields[i];
        if (f->tag < 0 || !has(f, k->version) || is_default_field(f, p)) {
            continue;
        }
        struct kw_wr m = kw_wr_measure();
        enc_field(k, &m, f, p);
        if (m.w.err != 0 || m.w.pos > UINT32_MAX) {
            kw_wr_fail(w, m.w.err != 0 ? m.w.err : -NG_EBADARG);
            return;
        }
        kw_wr_uvarint32(w, (uint32_t)f->tag);
        kw_wr_uvarint32(w, (uint32_t)m.w.pos);
        enc_field(k, w, f, p);
    }
}

static void enc_struct(const struct walk *k, struct kw_wr *w, const struct kafka_struct *s,
                       const void *p)
{
    for (uint32_t i = 0; i < s->field_count && w->w.err == 0; i++) {
        const struct kafka_field *f = &s->fields[i];
        if (f->tag < 0 && has(f, k->version)) {
            enc_field(k, w, f, p);
        }
    }
    if (k->flexible) {
        enc_tags(k, w, s, p);
    }
}

int kafka_encode(const struct kafka_msg *msg, struct kw_wr *w, int16_t version, const void *m)
{
    if (w->w.err != 0) {
        return w->w.err; /* a header before it did not fit */
    }
    if (!in(msg->versions, version)) {
        return -NG_EBADVERSION;
    }
    struct kw_wr before = *w;
    struct walk k = {.version = version, .flexible = kafka_msg_flexible(msg, version)};
    enc_struct(&k, w, msg->body, m);
    int rc = w->w.err;
    if (rc != 0) {
        *w = before;
    }
    return rc;
}

/* ---- headers ---- */

int kafka_req_header_decode(struct rd *r, struct kafka_req_header *h,
                            const struct kafka_api **api_out)
{
    ASSERT(r->err == 0);
    h->api_key = (int16_t)rd_be16(r);
    h->api_version = (int16_t)rd_be16(r);
    h->correlation_id = (int32_t)rd_be32(r);
    /* KIP-482: the client id keeps its i16 length in every header version,
     * so that any broker can read an ApiVersions request's header */
    kw_rd_str(r, false, true, &h->client_id);
    *api_out = NULL;
    if (r->err != 0) {
        return r->err;
    }
    const struct kafka_api *api = kafka_api_find(h->api_key);
    if (api == NULL) {
        return -NG_EUNKNOWN_API;
    }
    *api_out = api;
    if (!kafka_api_version_ok(api, h->api_version)) {
        return -NG_EBADVERSION;
    }
    if (kafka_msg_flexible(api->request, h->api_version)) {
        kw_rd_tags_skip(r);
    }
    return r->err;
}

void kafka_req_header_encode(struct kw_wr *w, const struct kafka_req_header *h)
{
    const struct kafka_api *api = kafka_api_find(h->api_key);
    ASSERT(api != NULL && kafka_api_version_ok(api, h->api_version));
    kw_wr_be16(w, (uint16_t)h->api_key);
    kw_wr_be16(w, (uint16_t)h->api_version);
    kw_wr_be32(w, (uint32_t)h->correlation_id);
    kw_wr_str(w, false, true, h->client_id);
    if (kafka_msg_flexible(api->request, h->api_version)) {
        kw_wr_uvarint32(w, 0);
    }
}

/* Whether the response header to (api_key, version) is v1. */
static bool resp_header_flexible(int16_t api_key, int16_t version)
{
    const struct kafka_api *api = kafka_api_find(api_key);
    ASSERT(api != NULL);
    return api->key != KAFKA_API_API_VERSIONS && kafka_msg_flexible(api->response, version);
}

void kafka_resp_header_encode(struct kw_wr *w, int16_t api_key, int16_t version,
                              int32_t correlation_id)
{
    kw_wr_be32(w, (uint32_t)correlation_id);
    if (resp_header_flexible(api_key, version)) {
        kw_wr_uvarint32(w, 0);
    }
}

int kafka_resp_header_decode(struct rd *r, int16_t api_key, int16_t version,
                             int32_t *correlation_id)
{
    *correlation_id = (int32_t)rd_be32(r);
    if (resp_header_flexible(api_key, version)) {
        kw_rd_tags_skip(r);
    }
    return r->err;
}
