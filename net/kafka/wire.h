/*
 * net/kafka/wire.h — the primitives of Kafka's wire protocol, under the
 * codec that net/kafka/codec.h generates from net/kafka/messages.def.
 *
 * Kafka's types: big-endian integers, UUIDs, strings and byte arrays with
 * an i16 / i32 length (-1: null), arrays with an i32 count (-1: null) and,
 * in flexible versions (KIP-482), "compact" forms whose length or count is
 * an unsigned varint of length + 1 (0: null), and tagged-field sections: an
 * unsigned varint count, then per field its tag, its size and its bytes,
 * tags strictly increasing. Kafka's unsigned varints here are 32-bit: at
 * most 5 bytes and at most UINT32_MAX, anything longer is refused.
 *
 * Reading goes through base/bytes.h's struct rd: every length is checked
 * against the bytes left (-NG_ETRUNCATED) and against its limit
 * (-NG_EBADLEN), every count against the bytes its elements need at least
 * (-NG_ETRUNCATED) and its sign (-NG_EBADCOUNT); the first error sticks and
 * later reads return zeroes. Decoded strings and byte arrays point into the
 * reader's bytes (no copy); arrays of decoded elements come from a
 * struct kw_arena, bounded by its caller.
 *
 * Writing goes through struct kw_wr, a base/bytes.h struct wr with two
 * additions: a measuring mode (nothing written, only counted: how the
 * caller sizes a buffer) and holes, record bytes the encoder does not
 * write. A records field marked external gets its length written and its
 * place noted (struct kw_hole); the caller sends the bytes it wrote up to
 * each hole, the hole's bytes from elsewhere (a segment file, spliced as
 * net/loop.h's loop_resp_file does), then the rest. Errors stick as for the
 * reader: -NG_ENOSPACE (buffer or hole array full), -NG_EBADARG (a value
 * this version cannot carry).
 *
 * Nothing here has state of its own: any thread, one cursor per thread.
 */
#ifndef NAGARE_NET_KAFKA_WIRE_H
#define NAGARE_NET_KAFKA_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/assert.h"
#include "base/bytes.h"
#include "base/err.h"

/* ---- limits ---- */

/* Longest string, compact or not: Kafka's own bound (an i16 length; Java's
 * readers refuse a longer compact string as well). */
#define KW_STRING_BYTES_MAX 32767

/* Arena bytes a decode may need per byte of its input. An array element's
 * C struct takes at most KW_ARENA_ELEM_BYTES_PER_WIRE_BYTE bytes per byte of
 * its shortest encoding: the worst are elements whose struct holds fields
 * of versions other than the one on the wire (a ListGroups v3 group: 3
 * bytes on the wire, four strings in C, 64 bytes) and compact strings (1
 * byte, a 16-byte struct kw_str); the generated code checks every element
 * type with static_assert. Each array also costs at most 8 bytes of
 * alignment for the at least 1 byte of its count. So a decode of n bytes
 * never needs more than n * KW_ARENA_BYTES_PER_WIRE_BYTE. */
#define KW_ARENA_ELEM_BYTES_PER_WIRE_BYTE 32
#define KW_ARENA_ALIGN 8
#define KW_ARENA_BYTES_PER_WIRE_BYTE (KW_ARENA_ELEM_BYTES_PER_WIRE_BYTE + KW_ARENA_ALIGN)

/* Most arena one decode gets, whatever its size: 4 MiB holds a Metadata
 * request naming 16384 topics by name and id (32 bytes each, 512 KiB) or an
 * OffsetCommit of 4096 partitions (40 bytes each) eight times over. Past it
 * a request is refused (-NG_ETOOBIG): a large frame is large for its
 * records, which take no arena. */
#define KW_ARENA_BYTES_MAX (4u * 1024 * 1024)

/* Arena to give the decode of wire_bytes bytes: enough for any input of
 * that size, capped at KW_ARENA_BYTES_MAX. */
static inline size_t kw_arena_bytes(size_t wire_bytes)
{
    if (wire_bytes >= KW_ARENA_BYTES_MAX / KW_ARENA_BYTES_PER_WIRE_BYTE) {
        return KW_ARENA_BYTES_MAX;
    }
    return wire_bytes * KW_ARENA_BYTES_PER_WIRE_BYTE;
}

/* ---- values ---- */

/* A string, not NUL-terminated: len bytes at ptr, or null (len -1, ptr
 * NULL). Decoded ones point into the frame. */
struct kw_str {
    const char *ptr;
    int32_t len;
};

/* A byte array: len bytes at ptr, or null (len -1, ptr NULL). */
struct kw_bytes {
    const uint8_t *ptr;
    int32_t len;
};

/* A records field (Produce request, Fetch response): a byte array, null
 * (len -1) or len bytes at ptr, or, when external is set (encoding only),
 * len bytes the encoder leaves out and notes as a hole (struct kw_hole).
 * Decoding never sets external. */
struct kw_records {
    const uint8_t *ptr;
    int32_t len;
    bool external;
};

struct kw_uuid {
    uint8_t bytes[16];
};

#define KW_STR_NULL ((struct kw_str){.ptr = NULL, .len = -1})

/* The string c (NUL-terminated, at most KW_STRING_BYTES_MAX bytes). */
struct kw_str kw_str_make(const char *c);

/* Whether s holds exactly the bytes of c (false when s is null). */
bool kw_str_eq(struct kw_str s, const char *c);

/* ---- arena ---- */

/* Bump allocation from a caller's buffer; nothing is freed but all at once
 * (kw_arena_init again). The buffer must outlive everything decoded into it. */
struct kw_arena {
    uint8_t *base;
    size_t cap;
    size_t used;
};

void kw_arena_init(struct kw_arena *a, void *buf, size_t cap);

/* n bytes aligned to KW_ARENA_ALIGN, or NULL when fewer are left. */
void *kw_arena_alloc(struct kw_arena *a, size_t n);

/* ---- reading ---- */

/* An unsigned varint of at most 5 bytes and 32 bits (else -NG_EBADVARINT). */
uint32_t kw_rd_uvarint32(struct rd *r);

/* A string, compact when flexible. Null only when nullable (else
 * -NG_EBADLEN, as for a length below -1 or past KW_STRING_BYTES_MAX). */
void kw_rd_str(struct rd *r, bool flexible, bool nullable, struct kw_str *out);

/* A byte array (or records field), compact when flexible; null only when
 * nullable (else -NG_EBADLEN). */
void kw_rd_bytes(struct rd *r, bool flexible, bool nullable, struct kw_bytes *out);

void kw_rd_uuid(struct rd *r, struct kw_uuid *out);

/* An array's count, compact when flexible: -1 for null (when nullable, else
 * -NG_EBADCOUNT, as for a count below -1), else the count, which must fit
 * the bytes left at elem_bytes_min bytes per element (else
 * -NG_ETRUNCATED). Returns 0 after an error. elem_bytes_min >= 1. */
int32_t kw_rd_count(struct rd *r, bool flexible, bool nullable, size_t elem_bytes_min);

/* The head of one tagged field: its tag, then a reader over its size bytes
 * (r moves past them). Tags must increase: *last is the previous tag (-1
 * before the first) and is updated; a tag not above it is -NG_EBADARG. */
void kw_rd_tag(struct rd *r, int64_t *last, uint32_t *tag, struct rd *field);

/* Reads a tagged-field section, skipping every field (a header's, whose
 * fields nagare does not use). */
void kw_rd_tags_skip(struct rd *r);

/* ---- writing ---- */

/* Where an external records field's bytes go: at offset `at` of the
 * writer's buffer (between the bytes before and after it), len bytes. */
struct kw_hole {
    size_t at;
    size_t len;
};

struct kw_wr {
    struct wr w;
    bool measure;          /* count only: w.ptr is NULL */
    struct kw_hole *holes; /* may be NULL when holes_max is 0 */
    uint32_t holes_max;
    uint32_t hole_count; /* in measuring mode: holes there would be */
    uint64_t hole_bytes; /* their bytes, summed */
};

/* A writer into buf[0..cap), noting at most holes_max holes in holes. */
struct kw_wr kw_wr_make(void *buf, size_t cap, struct kw_hole *holes, uint32_t holes_max);

/* A writer that writes nothing: afterwards w.pos is the byte count an
 * encode would have written, hole_count and hole_bytes its holes. */
struct kw_wr kw_wr_measure(void);

/* Marks w failed with err (< 0) unless it already failed. */
void kw_wr_fail(struct kw_wr *w, int err);

void kw_wr_raw(struct kw_wr *w, const void *src, size_t n);
void kw_wr_u8(struct kw_wr *w, uint8_t v);
void kw_wr_be16(struct kw_wr *w, uint16_t v);
void kw_wr_be32(struct kw_wr *w, uint32_t v);
void kw_wr_be64(struct kw_wr *w, uint64_t v);
void kw_wr_uvarint32(struct kw_wr *w, uint32_t v);
void kw_wr_uuid(struct kw_wr *w, const struct kw_uuid *u);

/* A string, compact when flexible; -NG_EBADARG for a null one when not
 * nullable or one longer than KW_STRING_BYTES_MAX. */
void kw_wr_str(struct kw_wr *w, bool flexible, bool nullable, struct kw_str s);

/* A byte array, compact when flexible; -NG_EBADARG for a null one when not
 * nullable. */
void kw_wr_bytes(struct kw_wr *w, bool flexible, bool nullable, struct kw_bytes b);

/* A records field: as a byte array, or, external, its length and a hole
 * (-NG_ENOSPACE when holes_max are noted already). Precondition: an
 * external one is not null. */
void kw_wr_records(struct kw_wr *w, bool flexible, bool nullable, const struct kw_records *rec);

/* An array's count (-1: null), compact when flexible; -NG_EBADARG for null
 * when not nullable. Precondition: count >= -1. */
void kw_wr_count(struct kw_wr *w, bool flexible, bool nullable, int32_t count);

#endif
