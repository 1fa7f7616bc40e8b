/* Tests for net/kafka/wire.h: Kafka's wire primitives, valid and hostile. */
#include <criterion/criterion.h>
#include <string.h>

#include "net/kafka/wire.h"

#define RD(...) rd_make((const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__}))

/* ---- unsigned varints ---- */

static void check_uvarint32(uint32_t v, const uint8_t *enc, size_t n)
{
    uint8_t buf[8];
    struct kw_wr w = kw_wr_make(buf, sizeof(buf), NULL, 0);
    kw_wr_uvarint32(&w, v);
    cr_assert_eq(w.w.err, 0);
    cr_assert_eq(w.w.pos, n, "%u: %zu bytes, not %zu", v, w.w.pos, n);
    cr_assert_arr_eq(buf, enc, n);
    struct rd r = rd_make(enc, n);
    cr_assert_eq(kw_rd_uvarint32(&r), v);
    cr_assert_eq(r.err, 0);
    cr_assert_eq(rd_left(&r), 0);
}

Test(kafka_wire, uvarint32_edges)
{
    check_uvarint32(0, (const uint8_t[]){0x00}, 1);
    check_uvarint32(1, (const uint8_t[]){0x01}, 1);
    check_uvarint32(127, (const uint8_t[]){0x7f}, 1);
    check_uvarint32(128, (const uint8_t[]){0x80, 0x01}, 2);
    check_uvarint32(300, (const uint8_t[]){0xac, 0x02}, 2);
    check_uvarint32(16383, (const uint8_t[]){0xff, 0x7f}, 2);
    check_uvarint32(16384, (const uint8_t[]){0x80, 0x80, 0x01}, 3);
    check_uvarint32(0x0fffffff, (const uint8_t[]){0xff, 0xff, 0xff, 0x7f}, 4);
    check_uvarint32(0x10000000, (const uint8_t[]){0x80, 0x80, 0x80, 0x80, 0x01}, 5);
    check_uvarint32(UINT32_MAX, (const uint8_t[]){0xff, 0xff, 0xff, 0xff, 0x0f}, 5);
}

Test(kafka_wire, uvarint32_refuses_overflow_and_overlong)
{
    struct rd r = RD(0xff, 0xff, 0xff, 0xff, 0x1f); /* bit 32 set */
    (void)kw_rd_uvarint32(&r);
    cr_assert_eq(r.err, -NG_EBADVARINT);
    r = RD(0x80, 0x80, 0x80, 0x80, 0x80, 0x00); /* a sixth byte */
    (void)kw_rd_uvarint32(&r);
    cr_assert_eq(r.err, -NG_EBADVARINT);
    r = RD(0x80, 0x80); /* ends mid-varint */
    (void)kw_rd_uvarint32(&r);
    cr_assert_eq(r.err, -NG_ETRUNCATED);
    r = RD(0x81, 0x80, 0x00); /* not minimal, but within 5 bytes: Kafka reads it */
    cr_assert_eq(kw_rd_uvarint32(&r), 1);
    cr_assert_eq(r.err, 0);
}

/* ---- strings ---- */

Test(kafka_wire, strings_classic_and_compact)
{
    struct kw_str s;
    struct rd r = RD(0x00, 0x03, 'a', 'b', 'c', 0x04, 'x', 'y', 'z', 0x00, 0xff, 0xff);
    kw_rd_str(&r, false, false, &s);
    cr_assert(kw_str_eq(s, "abc"));
    kw_rd_str(&r, true, false, &s);
    cr_assert(kw_str_eq(s, "xyz"));
    kw_rd_str(&r, true, true, &s); /* compact 0: null */
    cr_assert_eq(s.len, -1);
    cr_assert_null(s.ptr);
    kw_rd_str(&r, false, true, &s); /* i16 -1: null */
    cr_assert_eq(s.len, -1);
    cr_assert_eq(r.err, 0);
    cr_assert_eq(rd_left(&r), 0);

    uint8_t buf[32];
    struct kw_wr w = kw_wr_make(buf, sizeof(buf), NULL, 0);
    kw_wr_str(&w, false, false, kw_str_make("abc"));
    kw_wr_str(&w, true, false, kw_str_make("xyz"));
    kw_wr_str(&w, true, true, KW_STR_NULL);
    kw_wr_str(&w, false, true, KW_STR_NULL);
    cr_assert_eq(w.w.err, 0);
    cr_assert_eq(w.w.pos, 12);
    cr_assert_arr_eq(
        buf, ((const uint8_t[]){0x00, 0x03, 'a', 'b', 'c', 0x04, 'x', 'y', 'z', 0x00, 0xff, 0xff}),
        12);
}

Test(kafka_wire, null_string_where_not_nullable_is_refused)
{
    struct kw_str s;
    struct rd r = RD(0xff, 0xff);
    kw_rd_str(&r, false, false, &s);
    cr_assert_eq(r.err, -NG_EBADLEN);
    r = RD(0x00);
    kw_rd_str(&r, true, false, &s);
    cr_assert_eq(r.err, -NG_EBADLEN);
    r = RD(0xff, 0xfe); /* -2 */
    kw_rd_str(&r, false, true, &s);
    cr_assert_eq(r.err, -NG_EBADLEN);

    uint8_t buf[8];
    struct kw_wr w = kw_wr_make(buf, sizeof(buf), NULL, 0);
    kw_wr_str(&w, true, false, KW_STR_NULL);
    cr_assert_eq(w.w.err, -NG_EBADARG);
}

Test(kafka_wire, string_length_limit)
{
    static uint8_t big[3 + KW_STRING_BYTES_MAX + 1];
    /* compact 32767 bytes: varint 32768 = 80 80 02 */
    big[0] = 0x80;
    big[1] = 0x80;
    big[2] = 0x02;
    struct kw_str s;
    struct rd r = rd_make(big, 3 + KW_STRING_BYTES_MAX);
    kw_rd_str(&r, true, false, &s);
    cr_assert_eq(r.err, 0);
    cr_assert_eq(s.len, KW_STRING_BYTES_MAX);
    big[0] = 0x81; /* 32769: 32768 bytes */
    r = rd_make(big, sizeof(big));
    kw_rd_str(&r, true, false, &s);
    cr_assert_eq(r.err, -NG_EBADLEN);

    uint8_t out[8];
    struct kw_wr w = kw_wr_make(out, sizeof(out), NULL, 0);
    kw_wr_str(&w, true, false,
              (struct kw_str){.ptr = (const char *)big, .len = KW_STRING_BYTES_MAX + 1});
    cr_assert_eq(w.w.err, -NG_EBADARG);
}

/* ---- bytes and counts ---- */

Test(kafka_wire, bytes_and_null_bytes)
{
    struct kw_bytes b;
    struct rd r =
        RD(0x00, 0x00, 0x00, 0x02, 0xaa, 0xbb, 0x03, 0xcc, 0xdd, 0xff, 0xff, 0xff, 0xff, 0x00);
    kw_rd_bytes(&r, false, false, &b);
    cr_assert_eq(b.len, 2);
    cr_assert_eq(b.ptr[1], 0xbb);
    kw_rd_bytes(&r, true, false, &b);
    cr_assert_eq(b.len, 2);
    cr_assert_eq(b.ptr[0], 0xcc);
    kw_rd_bytes(&r, false, true, &b);
    cr_assert_eq(b.len, -1);
    kw_rd_bytes(&r, true, false, &b); /* compact null, not nullable */
    cr_assert_eq(r.err, -NG_EBADLEN);

    r = RD(0xff, 0xff, 0xff, 0xfe);
    kw_rd_bytes(&r, false, true, &b);
    cr_assert_eq(r.err, -NG_EBADLEN);
    r = RD(0x00, 0x00, 0x00, 0x05, 1, 2);
    kw_rd_bytes(&r, false, false, &b);
    cr_assert_eq(r.err, -NG_ETRUNCATED);
}

Test(kafka_wire, counts_checked_against_bytes_left)
{
    struct rd r = RD(0x00, 0x00, 0x00, 0x02, 0, 0, 0, 1, 0, 0, 0, 2);
    cr_assert_eq(kw_rd_count(&r, false, false, 4), 2);
    cr_assert_eq(r.err, 0);
    r = RD(0x00, 0x00, 0x00, 0x03, 0, 0, 0, 1, 0, 0, 0, 2); /* 3 int32 in 8 bytes */
    (void)kw_rd_count(&r, false, false, 4);
    cr_assert_eq(r.err, -NG_ETRUNCATED);
    r = RD(0x7f, 0xff, 0xff, 0xff); /* 2^31 - 1 elements in no bytes */
    (void)kw_rd_count(&r, false, false, 1);
    cr_assert_eq(r.err, -NG_ETRUNCATED);
    r = RD(0xff, 0xff, 0xff, 0xff);
    cr_assert_eq(kw_rd_count(&r, false, true, 4), -1);
    cr_assert_eq(r.err, 0);
    r = RD(0xff, 0xff, 0xff, 0xff);
    (void)kw_rd_count(&r, false, false, 4);
    cr_assert_eq(r.err, -NG_EBADCOUNT);
    r = RD(0xff, 0xff, 0xff, 0xfe);
    (void)kw_rd_count(&r, false, true, 4);
    cr_assert_eq(r.err, -NG_EBADCOUNT);
    r = RD(0x00); /* compact null */
    cr_assert_eq(kw_rd_count(&r, true, true, 1), -1);
    r = RD(0x00);
    (void)kw_rd_count(&r, true, false, 1);
    cr_assert_eq(r.err, -NG_EBADCOUNT);
    r = RD(0x03, 'a', 'b'); /* compact 2 of at least 1 byte */
    cr_assert_eq(kw_rd_count(&r, true, false, 1), 2);
}

/* ---- tagged fields ---- */

Test(kafka_wire, tags_skipped_in_order)
{
    /* two fields: tag 0 (2 bytes), tag 5 (0 bytes), then a trailing byte */
    struct rd r = RD(0x02, 0x00, 0x02, 0xaa, 0xbb, 0x05, 0x00, 0x99);
    kw_rd_tags_skip(&r);
    cr_assert_eq(r.err, 0);
    cr_assert_eq(rd_u8(&r), 0x99);

    int64_t last = -1;
    uint32_t tag;
    struct rd field;
    r = RD(0x00, 0x02, 0xaa, 0xbb);
    kw_rd_tag(&r, &last, &tag, &field);
    cr_assert_eq(tag, 0);
    cr_assert_eq(last, 0);
    cr_assert_eq(rd_left(&field), 2);
    cr_assert_eq(rd_be16(&field), 0xaabb);
}

Test(kafka_wire, tags_out_of_order_or_repeated_are_refused)
{
    struct rd r = RD(0x02, 0x03, 0x00, 0x01, 0x00);
    kw_rd_tags_skip(&r);
    cr_assert_eq(r.err, -NG_EBADARG);
    r = RD(0x02, 0x01, 0x00, 0x01, 0x00);
    kw_rd_tags_skip(&r);
    cr_assert_eq(r.err, -NG_EBADARG);
    r = RD(0x01, 0x00, 0x05, 0xaa); /* size past the end */
    kw_rd_tags_skip(&r);
    cr_assert_eq(r.err, -NG_ETRUNCATED);
}

/* ---- truncation ---- */

/* Reads one of everything; returns the reader's error. */
static int read_all(const uint8_t *p, size_t n)
{
    struct rd r = rd_make(p, n);
    struct kw_str s;
    struct kw_bytes b;
    struct kw_uuid u;
    (void)rd_be32(&r);
    kw_rd_str(&r, false, true, &s);
    kw_rd_str(&r, true, true, &s);
    kw_rd_bytes(&r, false, true, &b);
    kw_rd_bytes(&r, true, true, &b);
    kw_rd_uuid(&r, &u);
    (void)kw_rd_count(&r, true, false, 1);
    (void)kw_rd_uvarint32(&r);
    kw_rd_tags_skip(&r);
    return r.err;
}

Test(kafka_wire, truncation_at_every_byte_is_an_error)
{
    uint8_t buf[256];
    struct kw_wr w = kw_wr_make(buf, sizeof(buf), NULL, 0);
    static const uint8_t blob[3] = {1, 2, 3};
    kw_wr_be32(&w, 42);
    kw_wr_str(&w, false, true, kw_str_make("classic"));
    kw_wr_str(&w, true, true, kw_str_make("compact"));
    kw_wr_bytes(&w, false, true, (struct kw_bytes){.ptr = blob, .len = 3});
    kw_wr_bytes(&w, true, true, (struct kw_bytes){.ptr = blob, .len = 3});
    kw_wr_uuid(&w, &(struct kw_uuid){{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}});
    kw_wr_count(&w, true, false, 1);
    kw_wr_uvarint32(&w, 300);
    kw_wr_raw(&w, (const uint8_t[]){0x01, 0x07, 0x01, 0x00}, 4); /* one tag */
    cr_assert_eq(w.w.err, 0);
    cr_assert_eq(read_all(buf, w.w.pos), 0);
    for (size_t n = 0; n < w.w.pos; n++) {
        cr_assert_eq(read_all(buf, n), -NG_ETRUNCATED, "cut at %zu", n);
    }
}

/* ---- the writer ---- */

Test(kafka_wire, writer_full_is_sticky)
{
    uint8_t buf[5];
    struct kw_wr w = kw_wr_make(buf, sizeof(buf), NULL, 0);
    kw_wr_be32(&w, 1);
    kw_wr_be16(&w, 2);
    cr_assert_eq(w.w.err, -NG_ENOSPACE);
    kw_wr_u8(&w, 3);
    cr_assert_eq(w.w.pos, 4);
    cr_assert_eq(w.w.err, -NG_ENOSPACE);
}

Test(kafka_wire, measuring_counts_what_writing_writes)
{
    uint8_t buf[64];
    struct kw_hole hole;
    struct kw_wr ws[2] = {kw_wr_make(buf, sizeof(buf), &hole, 1), kw_wr_measure()};
    struct kw_records rec = {.len = 1000, .external = true};
    for (int i = 0; i < 2; i++) {
        kw_wr_be64(&ws[i], 1);
        kw_wr_str(&ws[i], true, false, kw_str_make("abc"));
        kw_wr_records(&ws[i], true, true, &rec);
        kw_wr_be16(&ws[i], 7);
        cr_assert_eq(ws[i].w.err, 0);
    }
    cr_assert_eq(ws[1].w.pos, ws[0].w.pos);
    cr_assert_eq(ws[0].w.pos, 8 + 4 + 2 + 2); /* compact 1001: e9 07 */
    cr_assert_eq(ws[1].hole_count, 1);
    cr_assert_eq(ws[1].hole_bytes, 1000);
    cr_assert_eq(hole.at, 8 + 4 + 2);
    cr_assert_eq(hole.len, 1000);
    cr_assert_eq(buf[12], 0xe9);
    cr_assert_eq(buf[13], 0x07);
}

Test(kafka_wire, hole_array_full_is_no_space)
{
    uint8_t buf[64];
    struct kw_hole hole;
    struct kw_wr w = kw_wr_make(buf, sizeof(buf), &hole, 1);
    struct kw_records rec = {.len = 10, .external = true};
    kw_wr_records(&w, false, true, &rec);
    cr_assert_eq(w.w.err, 0);
    kw_wr_records(&w, false, true, &rec);
    cr_assert_eq(w.w.err, -NG_ENOSPACE);
    cr_assert_eq(w.hole_count, 1);
}

/* ---- the arena ---- */

Test(kafka_wire, arena_aligns_and_runs_out)
{
    static uint8_t buf[64] __attribute__((aligned(8)));
    struct kw_arena a;
    kw_arena_init(&a, buf, sizeof(buf));
    uint8_t *p = kw_arena_alloc(&a, 3);
    uint8_t *q = kw_arena_alloc(&a, 8);
    cr_assert_eq(p, buf);
    cr_assert_eq(q, buf + 8);
    cr_assert_not_null(kw_arena_alloc(&a, 48));
    cr_assert_null(kw_arena_alloc(&a, 1));
    cr_assert_not_null(kw_arena_alloc(&a, 0));
    cr_assert_null(kw_arena_alloc(&a, SIZE_MAX));
}

Test(kafka_wire, arena_bytes_capped)
{
    cr_assert_eq(kw_arena_bytes(0), 0);
    cr_assert_eq(kw_arena_bytes(100), 100 * KW_ARENA_BYTES_PER_WIRE_BYTE);
    cr_assert_eq(kw_arena_bytes(KW_ARENA_BYTES_MAX), KW_ARENA_BYTES_MAX);
    cr_assert_eq(kw_arena_bytes(SIZE_MAX), KW_ARENA_BYTES_MAX);
}
