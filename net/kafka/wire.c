/* net/kafka/wire.c — Kafka's wire primitives (net/kafka/wire.h). */
#include <string.h>

#include "net/kafka/wire.h"

struct kw_str kw_str_make(const char *c)
{
    size_t n = strlen(c);
    ASSERT(n <= KW_STRING_BYTES_MAX);
    return (struct kw_str){.ptr = c, .len = (int32_t)n};
}

bool kw_str_eq(struct kw_str s, const char *c)
{
    size_t n = strlen(c);
    return s.len >= 0 && (size_t)s.len == n && (n == 0 || memcmp(s.ptr, c, n) == 0);
}

/* ---- arena ---- */

void kw_arena_init(struct kw_arena *a, void *buf, size_t cap)
{
    ASSERT(buf != NULL || cap == 0);
    *a = (struct kw_arena){.base = buf, .cap = cap, .used = 0};
}

void *kw_arena_alloc(struct kw_arena *a, size_t n)
{
    uintptr_t at = (uintptr_t)(a->base + a->used);
    size_t pad = (size_t)(-at & (KW_ARENA_ALIGN - 1));
    if (pad > a->cap - a->used || n > a->cap - a->used - pad) {
        return NULL;
    }
    void *p = a->base + a->used + pad;
    a->used += pad + n;
    return p;
}

/* ---- reading ---- */

uint32_t kw_rd_uvarint32(struct rd *r)
{
    uint32_t v = 0;
    for (unsigned i = 0; i < VARINT32_BYTES_MAX; i++) {
        const uint8_t *p = rd_take(r, 1);
        if (p == NULL) {
            return 0;
        }
        /* the fifth byte carries bits 28-31: any higher bit overflows */
        if (i == VARINT32_BYTES_MAX - 1 && (p[0] & 0xf0) != 0) {
            break;
        }
        v |= (uint32_t)(p[0] & 0x7f) << (7 * i);
        if ((p[0] & 0x80) == 0) {
            return v;
        }
    }
    rd_fail(r, -NG_EBADVARINT);
    return 0;
}

/* A length: compact (varint of len + 1, 0 for null) or a big-endian i16 or
 * i32. Returns -1 for null, or a length >= 0; -2 (error set) otherwise. */
static int64_t rd_len(struct rd *r, bool flexible, bool wide)
{
    if (flexible) {
        return (int64_t)kw_rd_uvarint32(r) - 1;
    }
    return wide ? (int64_t)(int32_t)rd_be32(r) : (int64_t)(int16_t)rd_be16(r);
}

void kw_rd_str(struct rd *r, bool flexible, bool nullable, struct kw_str *out)
{
    *out = KW_STR_NULL;
    int64_t len = rd_len(r, flexible, false);
    if (r->err != 0) {
        return;
    }
    if (len < -1 || len > KW_STRING_BYTES_MAX || (len == -1 && !nullable)) {
        rd_fail(r, -NG_EBADLEN);
        return;
    }
    if (len >= 0) {
        const uint8_t *p = rd_take(r, (size_t)len);
        if (p != NULL) {
            *out = (struct kw_str){.ptr = (const char *)p, .len = (int32_t)len};
        }
    }
}

void kw_rd_bytes(struct rd *r, bool flexible, bool nullable, struct kw_bytes *out)
{
    *out = (struct kw_bytes){.ptr = NULL, .len = -1};
    int64_t len = rd_len(r, flexible, true);
    if (r->err != 0) {
        return;
    }
    if (len < -1 || len > INT32_MAX || (len == -1 && !nullable)) {
        rd_fail(r, -NG_EBADLEN);
        return;
    }
    if (len >= 0) {
        const uint8_t *p = rd_take(r, (size_t)len);
        if (p != NULL) {
            *out = (struct kw_bytes){.ptr = p, .len = (int32_t)len};
        }
    }
}

void kw_rd_uuid(struct rd *r, struct kw_uuid *out)
{
    const uint8_t *p = rd_take(r, sizeof(out->bytes));
    if (p != NULL) {
        memcpy(out->bytes, p, sizeof(out->bytes));
    } else {
        memset(out->bytes, 0, sizeof(out->bytes));
    }
}

int32_t kw_rd_count(struct rd *r, bool flexible, bool nullable, size_t elem_bytes_min)
{
    ASSERT(elem_bytes_min >= 1);
    int64_t n = rd_len(r, flexible, true);
    if (r->err != 0) {
        return 0;
    }
    if (n < -1 || n > INT32_MAX || (n == -1 && !nullable)) {
        rd_fail(r, -NG_EBADCOUNT);
        return 0;
    }
    if (n > 0 && (uint64_t)n > rd_left(r) / elem_bytes_min) {
        rd_fail(r, -NG_ETRUNCATED);
        return 0;
    }
    return (int32_t)n;
}

void kw_rd_tag(struct rd *r, int64_t *last, uint32_t *tag, struct rd *field)
{
    *tag = kw_rd_uvarint32(r);
    uint32_t size = kw_rd_uvarint32(r);
    if (r->err == 0 && (int64_t)*tag <= *last) {
        rd_fail(r, -NG_EBADARG);
    }
    const uint8_t *p = rd_take(r, size);
    *field = rd_make(p, p != NULL ? size : 0);
    if (p == NULL) {
        field->err = r->err;
        return;
    }
    *last = *tag;
}

void kw_rd_tags_skip(struct rd *r)
{
    uint32_t n = kw_rd_uvarint32(r);
    int64_t last = -1;
    for (uint32_t i = 0; i < n && r->err == 0; i++) {
        uint32_t tag;
        struct rd field;
        kw_rd_tag(r, &last, &tag, &field);
    }
}

/* ---- writing ---- */

struct kw_wr kw_wr_make(void *buf, size_t cap, struct kw_hole *holes, uint32_t holes_max)
{
    ASSERT(holes != NULL || holes_max == 0);
    return (struct kw_wr){.w = wr_make(buf, cap), .holes = holes, .holes_max = holes_max};
}

struct kw_wr kw_wr_measure(void)
{
    return (struct kw_wr){.w = {.ptr = NULL, .cap = SIZE_MAX, .pos = 0, .err = 0}, .measure = true};
}

void kw_wr_fail(struct kw_wr *w, int err)
{
    ASSERT(err < 0);
    if (w->w.err == 0) {
        w->w.err = err;
    }
}

void kw_wr_raw(struct kw_wr *w, const void *src, size_t n)
{
    if (w->measure) {
        w->w.pos += w->w.err == 0 ? n : 0;
        return;
    }
    wr_bytes(&w->w, src, n);
}

void kw_wr_u8(struct kw_wr *w, uint8_t v) { kw_wr_raw(w, &v, 1); }

void kw_wr_be16(struct kw_wr *w, uint16_t v)
{
    uint8_t b[2];
    put_be16(b, v);
    kw_wr_raw(w, b, sizeof(b));
}

void kw_wr_be32(struct kw_wr *w, uint32_t v)
{
    uint8_t b[4];
    put_be32(b, v);
    kw_wr_raw(w, b, sizeof(b));
}

void kw_wr_be64(struct kw_wr *w, uint64_t v)
{
    uint8_t b[8];
    put_be64(b, v);
    kw_wr_raw(w, b, sizeof(b));
}

void kw_wr_uvarint32(struct kw_wr *w, uint32_t v)
{
    uint8_t b[VARINT32_BYTES_MAX];
    kw_wr_raw(w, b, uvarint_put(b, v));
}

void kw_wr_uuid(struct kw_wr *w, const struct kw_uuid *u)
{
    kw_wr_raw(w, u->bytes, sizeof(u->bytes));
}

/* A length (-1: null) as rd_len() reads it. */
static void wr_len(struct kw_wr *w, bool flexible, bool wide, int32_t len)
{
    ASSERT(len >= -1);
    if (flexible) {
        kw_wr_uvarint32(w, (uint32_t)(len + 1));
    } else if (wide) {
        kw_wr_be32(w, (uint32_t)len);
    } else {
        kw_wr_be16(w, (uint16_t)(int16_t)len);
    }
}

void kw_wr_str(struct kw_wr *w, bool flexible, bool nullable, struct kw_str s)
{
    if ((s.len == -1 && !nullable) || s.len > KW_STRING_BYTES_MAX) {
        kw_wr_fail(w, -NG_EBADARG);
        return;
    }
    wr_len(w, flexible, false, s.len);
    if (s.len > 0) {
        kw_wr_raw(w, s.ptr, (size_t)s.len);
    }
}

void kw_wr_bytes(struct kw_wr *w, bool flexible, bool nullable, struct kw_bytes b)
{
    if (b.len == -1 && !nullable) {
        kw_wr_fail(w, -NG_EBADARG);
        return;
    }
    wr_len(w, flexible, true, b.len);
    if (b.len > 0) {
        kw_wr_raw(w, b.ptr, (size_t)b.len);
    }
}

void kw_wr_records(struct kw_wr *w, bool flexible, bool nullable, const struct kw_records *rec)
{
    if (!rec->external) {
        kw_wr_bytes(w, flexible, nullable, (struct kw_bytes){.ptr = rec->ptr, .len = rec->len});
        return;
    }
    ASSERT(rec->len >= 0);
    wr_len(w, flexible, true, rec->len);
    if (w->w.err != 0) {
        return;
    }
    if (!w->measure) {
        if (w->hole_count == w->holes_max) {
            kw_wr_fail(w, -NG_ENOSPACE);
            return;
        }
        w->holes[w->hole_count] = (struct kw_hole){.at = w->w.pos, .len = (size_t)rec->len};
    }
    w->hole_count++;
    w->hole_bytes += (uint64_t)rec->len;
}

void kw_wr_count(struct kw_wr *w, bool flexible, bool nullable, int32_t count)
{
    if (count == -1 && !nullable) {
        kw_wr_fail(w, -NG_EBADARG);
        return;
    }
    wr_len(w, flexible, true, count);
}
