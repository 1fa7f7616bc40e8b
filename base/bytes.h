/*
 * base/bytes.h — byte order, varints, and bounds-checked cursors.
 *
 * All multi-byte integers on the wire and on disk are big-endian and go
 * through these helpers, built from explicit shifts (no struct casting, no
 * alignment assumptions). Varints are Kafka/protobuf style: unsigned LEB128,
 * signed values zigzag-encoded first.
 *
 * A reader (struct rd) never reads past its end: a read that would sets a
 * sticky error (rd.err = -NG_ETRUNCATED, or -NG_EBADVARINT for an overlong
 * varint) and returns zero; every later read also returns zero. Decoders read
 * a whole message and check rd.err once. A writer (struct wr) works the same
 * way against its capacity (-NG_ENOSPACE). Cursors never own their bytes.
 */
#ifndef NAGARE_BASE_BYTES_H
#define NAGARE_BASE_BYTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/assert.h"
#include "base/err.h"

/* Longest encodings of a 32- and 64-bit varint. */
#define VARINT32_BYTES_MAX 5
#define VARINT64_BYTES_MAX 10

static inline void put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void put_be64(uint8_t *p, uint64_t v)
{
    put_be32(p, (uint32_t)(v >> 32));
    put_be32(p + 4, (uint32_t)v);
}

static inline uint16_t get_be16(const uint8_t *p) { return (uint16_t)((uint16_t)p[0] << 8 | p[1]); }

static inline uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static inline uint64_t get_be64(const uint8_t *p)
{
    return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

static inline uint64_t zigzag_encode(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }

static inline int64_t zigzag_decode(uint64_t v) { return (int64_t)(v >> 1) ^ -(int64_t)(v & 1); }

/* Encodes v at p (room for VARINT64_BYTES_MAX); returns bytes written. */
static inline size_t uvarint_put(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

static inline size_t uvarint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static inline size_t varint_len(int64_t v) { return uvarint_len(zigzag_encode(v)); }

/* ---- reader cursor ---- */

struct rd {
    const uint8_t *ptr;
    size_t len;
    size_t pos;
    int err; /* 0, or the first error; sticky */
};

static inline struct rd rd_make(const void *ptr, size_t len)
{
    return (struct rd){.ptr = ptr, .len = len, .pos = 0, .err = 0};
}

static inline size_t rd_left(const struct rd *r) { return r->err ? 0 : r->len - r->pos; }

/* Returns a pointer to the next n bytes and moves past them, or NULL (and
 * sets the sticky error) when fewer than n are left. */
static inline const uint8_t *rd_take(struct rd *r, size_t n)
{
    if (r->err != 0) {
        return NULL;
    }
    if (n > r->len - r->pos) {
        r->err = -NG_ETRUNCATED;
        return NULL;
    }
    const uint8_t *p = r->ptr + r->pos;
    r->pos += n;
    return p;
}

static inline uint8_t rd_u8(struct rd *r)
{
    const uint8_t *p = rd_take(r, 1);
    return p ? p[0] : 0;
}

static inline uint16_t rd_be16(struct rd *r)
{
    const uint8_t *p = rd_take(r, 2);
    return p ? get_be16(p) : 0;
}

static inline uint32_t rd_be32(struct rd *r)
{
    const uint8_t *p = rd_take(r, 4);
    return p ? get_be32(p) : 0;
}

static inline uint64_t rd_be64(struct rd *r)
{
    const uint8_t *p = rd_take(r, 8);
    return p ? get_be64(p) : 0;
}

static inline uint64_t rd_uvarint(struct rd *r)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        const uint8_t *p = rd_take(r, 1);
        if (p == NULL) {
            return 0;
        }
        v |= (uint64_t)(p[0] & 0x7f) << shift;
        if ((p[0] & 0x80) == 0) {
            return v;
        }
    }
    r->err = -NG_EBADVARINT;
    return 0;
}

static inline int64_t rd_varint(struct rd *r) { return zigzag_decode(rd_uvarint(r)); }

/* Marks the reader failed with err unless it already failed. */
static inline void rd_fail(struct rd *r, int err)
{
    ASSERT(err < 0);
    if (r->err == 0) {
        r->err = err;
    }
}

/* ---- writer cursor ---- */

struct wr {
    uint8_t *ptr;
    size_t cap;
    size_t pos;
    int err; /* 0, or -NG_ENOSPACE; sticky */
};

static inline struct wr wr_make(void *ptr, size_t cap)
{
    return (struct wr){.ptr = ptr, .cap = cap, .pos = 0, .err = 0};
}

/* Reserves n bytes and returns where to write them, or NULL (sticky error). */
static inline uint8_t *wr_take(struct wr *w, size_t n)
{
    if (w->err != 0) {
        return NULL;
    }
    if (n > w->cap - w->pos) {
        w->err = -NG_ENOSPACE;
        return NULL;
    }
    uint8_t *p = w->ptr + w->pos;
    w->pos += n;
    return p;
}

static inline void wr_u8(struct wr *w, uint8_t v)
{
    uint8_t *p = wr_take(w, 1);
    if (p) {
        p[0] = v;
    }
}

static inline void wr_be16(struct wr *w, uint16_t v)
{
    uint8_t *p = wr_take(w, 2);
    if (p) {
        put_be16(p, v);
    }
}

static inline void wr_be32(struct wr *w, uint32_t v)
{
    uint8_t *p = wr_take(w, 4);
    if (p) {
        put_be32(p, v);
    }
}

static inline void wr_be64(struct wr *w, uint64_t v)
{
    uint8_t *p = wr_take(w, 8);
    if (p) {
        put_be64(p, v);
    }
}

static inline void wr_bytes(struct wr *w, const void *src, size_t n)
{
    uint8_t *p = wr_take(w, n);
    if (p && n > 0) {
        memcpy(p, src, n);
    }
}

static inline void wr_uvarint(struct wr *w, uint64_t v)
{
    if (w->err == 0 && w->cap - w->pos >= VARINT64_BYTES_MAX) {
        w->pos += uvarint_put(w->ptr + w->pos, v);
        return;
    }
    uint8_t tmp[VARINT64_BYTES_MAX];
    wr_bytes(w, tmp, uvarint_put(tmp, v));
}

static inline void wr_varint(struct wr *w, int64_t v) { wr_uvarint(w, zigzag_encode(v)); }

#endif
