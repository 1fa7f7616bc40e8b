/*
 * tests/test_batch.c — the record batch contract (storage/batch.h), clause by
 * clause: round trips, header fields, and one rejection per error.
 *
 * Rejection tests craft batches by hand (raw_batch / raw_record below) and
 * re-seal the checksum, so that each one reaches the check it is aimed at
 * instead of failing on the checksum first.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lz4frame.h>
#include <snappy-c.h>
#include <zlib.h>
#include <zstd.h>

#include "storage/batch.h"

#define MAX_BYTES (4u * 1024 * 1024)

/* ---- helpers ---- */

static uint8_t *xmalloc(size_t n)
{
    uint8_t *p = malloc(n > 0 ? n : 1);
    cr_assert_not_null(p);
    return p;
}

static void zinit(struct batch_zctx *z) { cr_assert_eq(batch_zctx_init(z, MAX_BYTES, 3), 0); }

/* Recomputes the checksum after a test edited a batch on purpose. */
static void reseal(uint8_t *batch, size_t bytes) { batch_seal(batch, bytes); }

/* Rewrites the length field for `bytes` total and reseals. */
static void set_bytes(uint8_t *batch, size_t bytes)
{
    put_be32(batch + BATCH_OFF_LENGTH, (uint32_t)(bytes - BATCH_PREFIX_BYTES));
    reseal(batch, bytes);
}

/* A well-formed header (magic 2, count records, timestamps 0) around an
 * already encoded records section; returns the batch's bytes. */
static size_t raw_batch(uint8_t *buf, const uint8_t *records, size_t records_len, int32_t count,
                        uint16_t attributes)
{
    struct wr w = wr_make(buf, BATCH_HEADER_BYTES + records_len);
    wr_be64(&w, 0);
    wr_be32(&w, (uint32_t)(BATCH_HEADER_BYTES + records_len - BATCH_PREFIX_BYTES));
    wr_be32(&w, 0); /* leader epoch */
    wr_u8(&w, BATCH_MAGIC);
    wr_be32(&w, 0); /* checksum */
    wr_be16(&w, attributes);
    wr_be32(&w, (uint32_t)(count - 1));
    wr_be64(&w, 0);
    wr_be64(&w, 0);
    wr_be64(&w, (uint64_t)-1);
    wr_be16(&w, 0);
    wr_be32(&w, (uint32_t)-1);
    wr_be32(&w, (uint32_t)count);
    wr_bytes(&w, records, records_len);
    cr_assert_eq(w.err, 0);
    reseal(buf, w.pos);
    return w.pos;
}

/* One hand-encoded record. key/value bytes written are strlen(); the length
 * fields are written as given, so they can lie. extra is appended raw after
 * the header count; body_adjust is added to the true body length. */
struct raw {
    uint8_t attributes;
    int64_t ts_delta;
    int64_t offset_delta;
    int64_t key_len;
    const char *key;
    int64_t value_len;
    const char *value;
    int64_t header_count;
    const char *extra;
    int64_t body_adjust;
};

static void raw_record(struct wr *w, const struct raw *r)
{
    uint8_t tmp[512];
    struct wr b = wr_make(tmp, sizeof(tmp));
    wr_u8(&b, r->attributes);
    wr_varint(&b, r->ts_delta);
    wr_varint(&b, r->offset_delta);
    wr_varint(&b, r->key_len);
    wr_bytes(&b, r->key ? r->key : "", r->key ? strlen(r->key) : 0);
    wr_varint(&b, r->value_len);
    wr_bytes(&b, r->value ? r->value : "", r->value ? strlen(r->value) : 0);
    wr_varint(&b, r->header_count);
    wr_bytes(&b, r->extra ? r->extra : "", r->extra ? strlen(r->extra) : 0);
    cr_assert_eq(b.err, 0);
    wr_varint(w, (int64_t)b.pos + r->body_adjust);
    wr_bytes(w, tmp, b.pos);
    cr_assert_eq(w->err, 0);
}

/* A record with key "k" and value "v" at offset delta i. */
static struct raw raw_ok(int64_t i)
{
    return (struct raw){.offset_delta = i, .key_len = 1, .key = "k", .value_len = 1, .value = "v"};
}

/* An uncompressed batch of the n raw records. */
static size_t raw_batch_of(uint8_t *buf, const struct raw *recs, int n)
{
    uint8_t records[4096];
    struct wr w = wr_make(records, sizeof(records));
    for (int i = 0; i < n; i++) {
        raw_record(&w, &recs[i]);
    }
    return raw_batch(buf, records, w.pos, n, BATCH_CODEC_NONE);
}

/* Reads every record; returns the first result other than 1 (0 at a clean
 * end), and the records seen in *seen. */
static int read_all(const uint8_t *batch, size_t len, struct batch_zctx *z, uint8_t *out,
                    size_t out_cap, int *seen)
{
    struct batch_reader br;
    *seen = 0;
    int rc = batch_reader_open(&br, batch, len, MAX_BYTES, z, out, out_cap);
    if (rc != 0) {
        return rc;
    }
    struct batch_record rec;
    while ((rc = batch_reader_next(&br, &rec)) == 1) {
        struct batch_kv kv;
        int hrc;
        while ((hrc = batch_record_next_header(&rec, &kv)) == 1) {
        }
        cr_assert_eq(hrc, 0);
        (*seen)++;
    }
    return rc;
}

static int read_raw(const uint8_t *batch, size_t len)
{
    int seen;
    return read_all(batch, len, NULL, NULL, 0, &seen);
}

/* ---- the standard records of the round-trip tests ---- */

/* Record i: key null every 5th, value null every 7th and empty the one after,
 * 0..3 headers (one with a null value, one with an empty value), and
 * timestamps that go back and forth. */
struct spec {
    int64_t ts;
    char key[32];
    int32_t key_len;
    char value[96];
    int32_t value_len;
    struct batch_kv headers[3];
    uint32_t header_count;
};

static void spec_for(int i, struct spec *s)
{
    s->ts = 1700000000000 + (i % 2 ? i : -i);
    s->key_len = i % 5 == 0 ? -1 : snprintf(s->key, sizeof(s->key), "key-%d", i);
    if (i % 7 == 0) {
        s->value_len = -1;
    } else if (i % 7 == 1) {
        s->value_len = 0;
    } else {
        s->value_len =
            snprintf(s->value, sizeof(s->value), "value %d, a value that compresses well", i);
    }
    static const uint8_t hk[][3] = {"h0", "h1", "h2"};
    s->header_count = (uint32_t)(i % 4);
    for (uint32_t h = 0; h < s->header_count; h++) {
        s->headers[h] = (struct batch_kv){.key = hk[h], .key_len = 2};
        s->headers[h].value = (const uint8_t *)"hv";
        s->headers[h].value_len = h == 1 ? -1 : (h == 2 ? 0 : 2);
    }
}

static size_t build(uint8_t *buf, size_t cap, enum batch_codec codec, struct batch_zctx *z, int n)
{
    struct batch_builder b;
    batch_builder_init(&b, buf, cap, codec, 42, 3, 100);
    for (int i = 0; i < n; i++) {
        struct spec s;
        spec_for(i, &s);
        cr_assert_eq(batch_builder_add(&b, s.ts, s.key, s.key_len, s.value, s.value_len, s.headers,
                                       s.header_count),
                     0, "record %d", i);
    }
    size_t bytes = 0;
    cr_assert_eq(batch_builder_finish(&b, z, &bytes), 0);
    cr_assert_eq(bytes, batch_builder_bytes(&b));
    return bytes;
}

static void check_field(const uint8_t *got, int32_t got_len, const void *want, int32_t want_len,
                        int i)
{
    cr_assert_eq(got_len, want_len, "record %d", i);
    if (want_len >= 0) {
        cr_assert_not_null(got, "record %d: empty is not null", i);
        cr_assert_eq(memcmp(got, want, (size_t)want_len), 0, "record %d", i);
    } else {
        cr_assert_null(got, "record %d", i);
    }
}

static void check_record(struct batch_record *rec, int64_t offset_base, int i)
{
    struct spec s;
    spec_for(i, &s);
    cr_assert_eq(rec->offset, offset_base + i);
    cr_assert_eq(rec->timestamp_ms, s.ts, "record %d", i);
    check_field(rec->key, rec->key_len, s.key, s.key_len, i);
    check_field(rec->value, rec->value_len, s.value, s.value_len, i);
    cr_assert_eq(rec->header_count, s.header_count, "record %d", i);
    struct batch_kv kv;
    for (uint32_t h = 0; h < s.header_count; h++) {
        cr_assert_eq(batch_record_next_header(rec, &kv), 1);
        check_field(kv.key, kv.key_len, s.headers[h].key, 2, i);
        check_field(kv.value, kv.value_len, s.headers[h].value, s.headers[h].value_len, i);
    }
    cr_assert_eq(batch_record_next_header(rec, &kv), 0);
    cr_assert_eq(batch_record_next_header(rec, &kv), 0);
}

/* Reads back the n standard records and checks every field. */
static void check_batch(const uint8_t *batch, size_t bytes, struct batch_zctx *z, int n,
                        int64_t offset_base)
{
    uint8_t *out = xmalloc(MAX_BYTES);
    struct batch_reader br;
    cr_assert_eq(batch_reader_open(&br, batch, bytes, MAX_BYTES, z, out, MAX_BYTES), 0);
    cr_assert_eq(br.hdr.record_count, n);
    cr_assert_eq(br.hdr.producer_id, 42);
    cr_assert_eq(br.hdr.producer_epoch, 3);
    cr_assert_eq(br.hdr.sequence_base, 100);
    struct batch_record rec;
    for (int i = 0; i < n; i++) {
        cr_assert_eq(batch_reader_next(&br, &rec), 1, "record %d", i);
        check_record(&rec, offset_base, i);
    }
    cr_assert_eq(batch_reader_next(&br, &rec), 0);
    cr_assert_eq(batch_reader_next(&br, &rec), 0, "end is sticky");
    struct batch_header vh;
    cr_assert_eq(batch_verify_records(batch, bytes, MAX_BYTES, z, out, MAX_BYTES, &vh), 0);
    cr_assert_eq(vh.record_count, br.hdr.record_count, "the header comes back");
    cr_assert_eq(vh.checksum, br.hdr.checksum);
    free(out);
}

static void round_trip(enum batch_codec codec, int n, enum batch_codec want)
{
    struct batch_zctx z;
    zinit(&z);
    uint8_t *buf = xmalloc(MAX_BYTES);
    size_t bytes = build(buf, MAX_BYTES, codec, &z, n);
    struct batch_header h;
    cr_assert_eq(batch_validate(buf, bytes, MAX_BYTES, &h), 0);
    cr_assert_eq(batch_codec(&h), want);
    cr_assert_eq(batch_bytes(&h), bytes);
    check_batch(buf, bytes, &z, n, 0);
    free(buf);
    batch_zctx_fini(&z);
}

/* ---- round trips ---- */

Test(batch, round_trip_uncompressed) { round_trip(BATCH_CODEC_NONE, 50, BATCH_CODEC_NONE); }

Test(batch, round_trip_zstd) { round_trip(BATCH_CODEC_ZSTD, 50, BATCH_CODEC_ZSTD); }

Test(batch, round_trip_one_record)
{
    round_trip(BATCH_CODEC_NONE, 1, BATCH_CODEC_NONE);
    round_trip(BATCH_CODEC_ZSTD, 1, BATCH_CODEC_NONE); /* too small to pay */
}

Test(batch, round_trip_10000_records)
{
    round_trip(BATCH_CODEC_NONE, 10000, BATCH_CODEC_NONE);
    round_trip(BATCH_CODEC_ZSTD, 10000, BATCH_CODEC_ZSTD);
}

Test(batch, zstd_kept_uncompressed_when_not_smaller)
{
    struct batch_zctx z;
    zinit(&z);
    uint8_t noise[2000];
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (size_t i = 0; i < sizeof(noise); i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        noise[i] = (uint8_t)x;
    }
    uint8_t buf[4096];
    struct batch_builder b;
    batch_builder_init(&b, buf, sizeof(buf), BATCH_CODEC_ZSTD, -1, 0, -1);
    cr_assert_eq(batch_builder_add(&b, 5, NULL, -1, noise, sizeof(noise), NULL, 0), 0);
    size_t before = batch_builder_bytes(&b), bytes = 0;
    cr_assert_eq(batch_builder_finish(&b, &z, &bytes), 0);
    cr_assert_eq(bytes, before);
    struct batch_header h;
    cr_assert_eq(batch_validate(buf, bytes, MAX_BYTES, &h), 0);
    cr_assert_eq(batch_codec(&h), BATCH_CODEC_NONE);
    int seen;
    cr_assert_eq(read_all(buf, bytes, NULL, NULL, 0, &seen), 0);
    cr_assert_eq(seen, 1);
    batch_zctx_fini(&z);
}

Test(batch, header_fields_offsets_and_timestamps)
{
    uint8_t buf[4096];
    struct batch_builder b;
    batch_builder_init(&b, buf, sizeof(buf), BATCH_CODEC_NONE, 7, 1, 9);
    int64_t ts[] = {5000, 4000, 9000, 6000};
    for (size_t i = 0; i < ARRAY_LEN(ts); i++) {
        cr_assert_eq(batch_builder_add(&b, ts[i], "k", 1, "v", 1, NULL, 0), 0);
    }
    size_t bytes = 0;
    cr_assert_eq(batch_builder_finish(&b, NULL, &bytes), 0);
    struct batch_header h;
    cr_assert_eq(batch_validate(buf, bytes, MAX_BYTES, &h), 0);
    cr_assert_eq(h.offset_base, 0);
    cr_assert_eq(h.magic, BATCH_MAGIC);
    cr_assert_eq(h.leader_epoch, 0);
    cr_assert_eq(h.record_count, 4);
    cr_assert_eq(h.last_offset_delta, 3);
    cr_assert_eq(h.timestamp_first_ms, 5000);
    cr_assert_eq(h.timestamp_max_ms, 9000);
    cr_assert_eq(h.producer_id, 7);
    cr_assert_eq(h.producer_epoch, 1);
    cr_assert_eq(h.sequence_base, 9);
    cr_assert_eq(h.checksum, batch_checksum(buf, bytes));
    batch_set_offset_base(buf, 1000);
    cr_assert_eq(batch_validate(buf, bytes, MAX_BYTES, &h), 0);
    cr_assert_eq(batch_offset_last(&h), 1003);
    struct batch_reader br;
    cr_assert_eq(batch_reader_open(&br, buf, bytes, MAX_BYTES, NULL, NULL, 0), 0);
    struct batch_record rec;
    for (size_t i = 0; i < ARRAY_LEN(ts); i++) {
        cr_assert_eq(batch_reader_next(&br, &rec), 1);
        cr_assert_eq(rec.offset, 1000 + (int64_t)i);
        cr_assert_eq(rec.timestamp_ms, ts[i]);
    }
    cr_assert_eq(batch_reader_next(&br, &rec), 0);
}

/* CRC-32C bit by bit (Castagnoli, reflected polynomial 0x82f63b78, initial
 * and final value 0xffffffff): the definition, against which the library's
 * folding code (whatever instructions it picks) is checked. */
static uint32_t crc32c_reference(const uint8_t *p, size_t n)
{
    uint32_t crc = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int bit = 0; bit < 8; bit++) {
            crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1u)));
        }
    }
    return ~crc;
}

Test(batch, crc32c_is_castagnolis_standard_check_value)
{
    cr_assert_eq(batch_crc32c("123456789", 9), 0xe3069283u);
    cr_assert_eq(batch_crc32c("", 0), 0);
}

Test(batch, the_checksum_is_crc32c_of_every_byte_from_the_attributes)
{
    /* The documented format (docs/storage-format.md), whatever code path
     * computes it: large and odd sizes. */
    static uint8_t buf[200003];
    for (size_t i = 0; i < sizeof(buf); i++) {
        buf[i] = (uint8_t)(i * 131 + (i >> 7));
    }
    for (size_t bytes = BATCH_HEADER_BYTES; bytes <= sizeof(buf); bytes = bytes * 3 + 1) {
        cr_assert_eq(batch_checksum(buf, bytes),
                     crc32c_reference(buf + BATCH_CHECKSUM_FROM, bytes - BATCH_CHECKSUM_FROM),
                     "%zu bytes", bytes);
    }
}

Test(batch, set_leader_epoch_keeps_checksum_valid)
{
    uint8_t buf[4096];
    size_t bytes = build(buf, sizeof(buf), BATCH_CODEC_NONE, NULL, 5);
    batch_set_leader_epoch(buf, 0x01020304);
    cr_assert_eq(get_be32(buf + 12), 0x01020304u);
    struct batch_header h;
    cr_assert_eq(batch_validate(buf, bytes, MAX_BYTES, &h), 0);
    cr_assert_eq(h.leader_epoch, 0x01020304);
}

Test(batch, set_offset_base_keeps_checksum_valid)
{
    struct batch_zctx z;
    zinit(&z);
    uint8_t *buf = xmalloc(MAX_BYTES);
    size_t bytes = build(buf, MAX_BYTES, BATCH_CODEC_ZSTD, &z, 20);
    uint32_t sum = batch_checksum(buf, bytes);
    batch_set_offset_base(buf, 123456789012);
    cr_assert_eq(batch_checksum(buf, bytes), sum);
    struct batch_header h;
    cr_assert_eq(batch_validate(buf, bytes, MAX_BYTES, &h), 0);
    cr_assert_eq(h.offset_base, 123456789012);
    check_batch(buf, bytes, &z, 20, 123456789012);
    free(buf);
    batch_zctx_fini(&z);
}

Test(batch, header_decode_needs_only_the_header)
{
    uint8_t *buf = xmalloc(MAX_BYTES);
    size_t bytes = build(buf, MAX_BYTES, BATCH_CODEC_NONE, NULL, 30);
    struct batch_header h;
    cr_assert_eq(batch_header_decode(buf, BATCH_HEADER_BYTES, MAX_BYTES, &h), 0);
    cr_assert_eq(batch_bytes(&h), bytes);
    cr_assert_eq(h.record_count, 30);
    cr_assert_eq(batch_validate(buf, BATCH_HEADER_BYTES, MAX_BYTES, &h), -NG_ETRUNCATED);
    free(buf);
}

/* ---- builder ---- */

static void assert_builder_eq(const struct batch_builder *a, const struct batch_builder *b)
{
    cr_assert_eq(a->buf, b->buf);
    cr_assert_eq(a->cap, b->cap);
    cr_assert_eq(a->pos, b->pos);
    cr_assert_eq(a->codec, b->codec);
    cr_assert_eq(a->record_count, b->record_count);
    cr_assert_eq(a->timestamp_first_ms, b->timestamp_first_ms);
    cr_assert_eq(a->timestamp_max_ms, b->timestamp_max_ms);
    cr_assert_eq(a->producer_id, b->producer_id);
    cr_assert_eq(a->producer_epoch, b->producer_epoch);
    cr_assert_eq(a->sequence_base, b->sequence_base);
}

Test(batch, builder_add_enospace_leaves_builder_unchanged)
{
    /* Key "k", value "v", no headers: a 9-byte record (length + 8 body). */
    uint8_t buf[BATCH_HEADER_BYTES + 2 * 9 + 4];
    memset(buf, 0xee, sizeof(buf));
    struct batch_builder b;
    batch_builder_init(&b, buf, sizeof(buf), BATCH_CODEC_NONE, -1, 0, -1);
    cr_assert_eq(batch_builder_add(&b, 10, "k", 1, "v", 1, NULL, 0), 0);
    cr_assert_eq(batch_builder_add(&b, 20, "k", 1, "v", 1, NULL, 0), 0);
    cr_assert_eq(batch_builder_bytes(&b), BATCH_HEADER_BYTES + 18);
    struct batch_builder before = b;
    uint8_t bytes_before[sizeof(buf)];
    memcpy(bytes_before, buf, sizeof(buf));
    cr_assert_eq(batch_builder_add(&b, 99, "k", 1, "v", 1, NULL, 0), -NG_ENOSPACE);
    assert_builder_eq(&b, &before);
    cr_assert_eq(memcmp(buf, bytes_before, sizeof(buf)), 0);
    size_t bytes = 0;
    cr_assert_eq(batch_builder_finish(&b, NULL, &bytes), 0);
    struct batch_header h;
    cr_assert_eq(batch_validate(buf, bytes, MAX_BYTES, &h), 0);
    cr_assert_eq(h.record_count, 2);
    cr_assert_eq(h.timestamp_max_ms, 20, "the failed add left no trace");
}

Test(batch, builder_add_fills_to_the_exact_byte)
{
    uint8_t buf[BATCH_HEADER_BYTES + 9];
    struct batch_builder b;
    batch_builder_init(&b, buf, sizeof(buf) - 1, BATCH_CODEC_NONE, -1, 0, -1);
    cr_assert_eq(batch_builder_add(&b, 0, "k", 1, "v", 1, NULL, 0), -NG_ENOSPACE);
    batch_builder_init(&b, buf, sizeof(buf), BATCH_CODEC_NONE, -1, 0, -1);
    cr_assert_eq(batch_builder_add(&b, 0, "k", 1, "v", 1, NULL, 0), 0);
    cr_assert_eq(batch_builder_bytes(&b), sizeof(buf));
    size_t bytes = 0;
    cr_assert_eq(batch_builder_finish(&b, NULL, &bytes), 0);
    cr_assert_eq(bytes, sizeof(buf));
    cr_assert_eq(read_raw(buf, bytes), 0);
}

Test(batch, builder_add_rejects_bad_lengths)
{
    uint8_t buf[256];
    struct batch_builder b;
    batch_builder_init(&b, buf, sizeof(buf), BATCH_CODEC_NONE, -1, 0, -1);
    struct batch_builder before = b;
    struct batch_kv null_key = {.key = NULL, .key_len = -1, .value_len = -1};
    struct batch_kv bad_value = {.key = (const uint8_t *)"h", .key_len = 1, .value_len = -2};
    cr_assert_eq(batch_builder_add(&b, 0, NULL, -2, "v", 1, NULL, 0), -NG_EBADARG);
    cr_assert_eq(batch_builder_add(&b, 0, "k", 1, NULL, -2, NULL, 0), -NG_EBADARG);
    cr_assert_eq(batch_builder_add(&b, 0, "k", 1, "v", 1, &null_key, 1), -NG_EBADARG);
    cr_assert_eq(batch_builder_add(&b, 0, "k", 1, "v", 1, &bad_value, 1), -NG_EBADARG);
    assert_builder_eq(&b, &before);
}

Test(batch, builder_add_rejects_timestamp_delta_overflow)
{
    uint8_t buf[256];
    struct batch_builder b;
    batch_builder_init(&b, buf, sizeof(buf), BATCH_CODEC_NONE, -1, 0, -1);
    cr_assert_eq(batch_builder_add(&b, INT64_MIN, NULL, -1, NULL, -1, NULL, 0), 0);
    struct batch_builder before = b;
    cr_assert_eq(batch_builder_add(&b, INT64_MAX, NULL, -1, NULL, -1, NULL, 0), -NG_EBADARG);
    assert_builder_eq(&b, &before);
}

Test(batch, builder_finish_rejects_empty_batch)
{
    uint8_t buf[256];
    struct batch_builder b;
    batch_builder_init(&b, buf, sizeof(buf), BATCH_CODEC_NONE, -1, 0, -1);
    size_t bytes = 0;
    cr_assert_eq(batch_builder_finish(&b, NULL, &bytes), -NG_EBADCOUNT);
}

Test(batch, builder_finish_rejects_scratch_too_small)
{
    struct batch_zctx z;
    cr_assert_eq(batch_zctx_init(&z, BATCH_HEADER_BYTES + 16, 3), 0);
    uint8_t *buf = xmalloc(MAX_BYTES);
    struct batch_builder b;
    batch_builder_init(&b, buf, MAX_BYTES, BATCH_CODEC_ZSTD, -1, 0, -1);
    uint8_t value[100];
    memset(value, 'v', sizeof(value));
    cr_assert_eq(batch_builder_add(&b, 0, "k", 1, value, sizeof(value), NULL, 0), 0);
    size_t bytes = 0;
    cr_assert_eq(batch_builder_finish(&b, &z, &bytes), -NG_ENOSPACE);
    free(buf);
    batch_zctx_fini(&z);
}

/* ---- the four codecs, as Kafka's clients write them ---- */

static size_t gzip_section(const uint8_t *src, size_t n, uint8_t *out, size_t cap)
{
    z_stream zs = {0};
    cr_assert_eq(deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
    zs.next_in = (Bytef *)src;
    zs.avail_in = (uInt)n;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    cr_assert_eq(deflate(&zs, Z_FINISH), Z_STREAM_END);
    size_t got = cap - zs.avail_out;
    deflateEnd(&zs);
    return got;
}

/* variant 0: one raw block (librdkafka); 1: xerial framing in 1 KiB blocks
 * (Kafka's Java client, kafka-python: 32 KiB). */
static size_t snappy_section(int variant, const uint8_t *src, size_t n, uint8_t *out, size_t cap)
{
    size_t len = cap;
    if (variant == 0) {
        cr_assert_eq(snappy_compress((const char *)src, n, (char *)out, &len), SNAPPY_OK);
        return len;
    }
    static const uint8_t head[16] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1};
    memcpy(out, head, sizeof(head));
    size_t pos = sizeof(head);
    for (size_t at = 0; at < n; at += 1024) {
        size_t chunk = n - at < 1024 ? n - at : 1024;
        len = cap - pos - 4;
        cr_assert_eq(snappy_compress((const char *)src + at, chunk, (char *)out + pos + 4, &len),
                     SNAPPY_OK);
        put_be32(out + pos, (uint32_t)len);
        pos += 4 + len;
    }
    return pos;
}

/* variant 0: the frame declares its content size; 1: it does not. */
static size_t lz4_section(int variant, const uint8_t *src, size_t n, uint8_t *out, size_t cap)
{
    LZ4F_preferences_t prefs;
    memset(&prefs, 0, sizeof(prefs));
    prefs.frameInfo.contentSize = variant == 0 ? n : 0;
    size_t got = LZ4F_compressFrame(out, cap, src, n, &prefs);
    cr_assert(!LZ4F_isError(got));
    return got;
}

static size_t zstd_section(int variant, const uint8_t *src, size_t n, uint8_t *out, size_t cap)
{
    ZSTD_CCtx *c = ZSTD_createCCtx();
    cr_assert_not_null(c);
    cr_assert(!ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, variant == 0)));
    size_t got = ZSTD_compress2(c, out, cap, src, n);
    cr_assert(!ZSTD_isError(got));
    ZSTD_freeCCtx(c);
    unsigned long long size = ZSTD_getFrameContentSize(out, got);
    cr_assert_eq(size == ZSTD_CONTENTSIZE_UNKNOWN, variant == 1);
    return got;
}

/* The uncompressed batch's records section compressed with codec into a
 * batch in out, its header otherwise the same. Returns the batch's bytes. */
static size_t recompress(const uint8_t *plain, size_t bytes, enum batch_codec codec, int variant,
                         uint8_t *out, size_t cap)
{
    const uint8_t *src = plain + BATCH_HEADER_BYTES;
    size_t n = bytes - BATCH_HEADER_BYTES;
    uint8_t *dst = out + BATCH_HEADER_BYTES;
    size_t room = cap - BATCH_HEADER_BYTES;
    size_t got = 0;
    switch (codec) {
    case BATCH_CODEC_GZIP:
        got = gzip_section(src, n, dst, room);
        break;
    case BATCH_CODEC_SNAPPY:
        got = snappy_section(variant, src, n, dst, room);
        break;
    case BATCH_CODEC_LZ4:
        got = lz4_section(variant, src, n, dst, room);
        break;
    case BATCH_CODEC_ZSTD:
        got = zstd_section(variant, src, n, dst, room);
        break;
    case BATCH_CODEC_NONE:
        cr_assert_fail("a codec");
    }
    memcpy(out, plain, BATCH_HEADER_BYTES);
    put_be16(out + BATCH_OFF_ATTRIBUTES, (uint16_t)codec);
    set_bytes(out, BATCH_HEADER_BYTES + got);
    return BATCH_HEADER_BYTES + got;
}

static const enum batch_codec codecs[] = {BATCH_CODEC_GZIP, BATCH_CODEC_SNAPPY, BATCH_CODEC_LZ4,
                                          BATCH_CODEC_ZSTD};

Test(batch, reads_every_codec_as_kafka_clients_write_it)
{
    struct batch_zctx z;
    zinit(&z);
    uint8_t *plain = xmalloc(MAX_BYTES);
    uint8_t *batch = xmalloc(MAX_BYTES);
    size_t bytes = build(plain, MAX_BYTES, BATCH_CODEC_NONE, NULL, 300);
    for (size_t c = 0; c < ARRAY_LEN(codecs); c++) {
        for (int variant = 0; variant < 2; variant++) {
            size_t n = recompress(plain, bytes, codecs[c], variant, batch, MAX_BYTES);
            cr_assert_lt(n, bytes, "codec %d compresses", codecs[c]);
            check_batch(batch, n, &z, 300, 0);
        }
    }
    free(plain);
    free(batch);
    batch_zctx_fini(&z);
}

Test(batch, refuses_a_section_that_expands_past_the_buffer)
{
    struct batch_zctx z;
    zinit(&z);
    uint8_t *plain = xmalloc(MAX_BYTES);
    uint8_t *batch = xmalloc(MAX_BYTES);
    uint8_t *out = xmalloc(MAX_BYTES);
    size_t bytes = build(plain, MAX_BYTES, BATCH_CODEC_NONE, NULL, 300);
    size_t section = bytes - BATCH_HEADER_BYTES;
    for (size_t c = 0; c < ARRAY_LEN(codecs); c++) {
        for (int variant = 0; variant < 2; variant++) {
            size_t n = recompress(plain, bytes, codecs[c], variant, batch, MAX_BYTES);
            int seen;
            cr_assert_eq(read_all(batch, n, &z, out, section - 1, &seen), -NG_ETOOBIG,
                         "codec %d variant %d", codecs[c], variant);
            cr_assert_eq(read_all(batch, n, &z, out, section, &seen), 0);
            cr_assert_eq(seen, 300);
        }
    }
    free(plain);
    free(batch);
    free(out);
    batch_zctx_fini(&z);
}

Test(batch, refuses_trailing_or_cut_compressed_bytes)
{
    struct batch_zctx z;
    zinit(&z);
    uint8_t *plain = xmalloc(MAX_BYTES);
    uint8_t *batch = xmalloc(MAX_BYTES);
    uint8_t *out = xmalloc(MAX_BYTES);
    size_t bytes = build(plain, MAX_BYTES, BATCH_CODEC_NONE, NULL, 50);
    for (size_t c = 0; c < ARRAY_LEN(codecs); c++) {
        for (int variant = 0; variant < 2; variant++) {
            size_t n = recompress(plain, bytes, codecs[c], variant, batch, MAX_BYTES);
            int seen;
            batch[n] = 0;
            set_bytes(batch, n + 1);
            cr_assert_eq(read_all(batch, n + 1, &z, out, MAX_BYTES, &seen), -NG_EDECOMPRESS,
                         "codec %d variant %d: a trailing byte", codecs[c], variant);
            set_bytes(batch, n - 1);
            cr_assert_eq(read_all(batch, n - 1, &z, out, MAX_BYTES, &seen), -NG_EDECOMPRESS,
                         "codec %d variant %d: a byte short", codecs[c], variant);
        }
    }
    free(plain);
    free(batch);
    free(out);
    batch_zctx_fini(&z);
}

/* ---- header rejections ---- */

/* A valid uncompressed 3-record batch to corrupt. */
static size_t sample(uint8_t *buf)
{
    struct raw recs[] = {raw_ok(0), raw_ok(1), raw_ok(2)};
    size_t bytes = raw_batch_of(buf, recs, 3);
    cr_assert_eq(read_raw(buf, bytes), 0);
    return bytes;
}

Test(batch, rejects_checksum_mismatch_at_every_byte)
{
    uint8_t buf[4096];
    size_t bytes = sample(buf);
    struct batch_header h;
    for (size_t i = BATCH_OFF_CHECKSUM; i < bytes; i++) {
        for (unsigned bit = 0; bit < 8; bit++) {
            buf[i] ^= (uint8_t)(1u << bit);
            cr_assert_eq(batch_validate(buf, bytes, MAX_BYTES, &h), -NG_ECHECKSUM,
                         "byte %zu bit %u", i, bit);
            cr_assert_eq(read_raw(buf, bytes), -NG_ECHECKSUM);
            buf[i] ^= (uint8_t)(1u << bit);
        }
    }
    cr_assert_eq(batch_validate(buf, bytes, MAX_BYTES, &h), 0);
}

Test(batch, rejects_truncated_header)
{
    uint8_t buf[4096];
    sample(buf);
    struct batch_header h;
    for (size_t len = 0; len < BATCH_HEADER_BYTES; len++) {
        uint8_t *p = xmalloc(len);
        memcpy(p, buf, len);
        cr_assert_eq(batch_header_decode(p, len, MAX_BYTES, &h), -NG_ETRUNCATED);
        cr_assert_eq(batch_validate(p, len, MAX_BYTES, &h), -NG_ETRUNCATED);
        free(p);
    }
}

Test(batch, rejects_length_past_the_end)
{
    uint8_t buf[4096];
    size_t bytes = sample(buf);
    put_be32(buf + BATCH_OFF_LENGTH, (uint32_t)(bytes - BATCH_PREFIX_BYTES + 1));
    struct batch_header h;
    cr_assert_eq(batch_header_decode(buf, bytes, MAX_BYTES, &h), 0);
    cr_assert_eq(batch_validate(buf, bytes, MAX_BYTES, &h), -NG_ETRUNCATED);
    cr_assert_eq(read_raw(buf, bytes), -NG_ETRUNCATED);
}

Test(batch, rejects_length_below_the_header)
{
    uint8_t buf[4096];
    size_t bytes = sample(buf);
    struct batch_header h;
    uint32_t bad[] = {BATCH_HEADER_BYTES - BATCH_PREFIX_BYTES - 1, 0, 0xffffffffu, 0x80000000u};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        put_be32(buf + BATCH_OFF_LENGTH, bad[i]);
        cr_assert_eq(batch_header_decode(buf, bytes, MAX_BYTES, &h), -NG_EBADLEN);
        cr_assert_eq(batch_validate(buf, bytes, MAX_BYTES, &h), -NG_EBADLEN);
    }
}

Test(batch, rejects_batch_over_the_maximum)
{
    uint8_t buf[4096];
    size_t bytes = sample(buf);
    struct batch_header h;
    cr_assert_eq(batch_validate(buf, bytes, bytes, &h), 0);
    cr_assert_eq(batch_validate(buf, bytes, bytes - 1, &h), -NG_ETOOBIG);
    cr_assert_eq(batch_header_decode(buf, bytes, bytes - 1, &h), -NG_ETOOBIG);
    /* Past the format's own limit, whatever the caller allows. */
    put_be32(buf + BATCH_OFF_LENGTH, BATCH_BYTES_LIMIT);
    cr_assert_eq(batch_header_decode(buf, bytes, SIZE_MAX, &h), -NG_ETOOBIG);
}

Test(batch, rejects_bad_magic)
{
    uint8_t buf[4096];
    size_t bytes = sample(buf);
    struct batch_header h;
    /* Kafka's message sets 0 and 1, nagare's format 1 read there, others. */
    uint8_t bad[] = {0, 1, 3, 0xff};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        buf[BATCH_OFF_MAGIC] = bad[i];
        cr_assert_eq(batch_header_decode(buf, bytes, MAX_BYTES, &h), -NG_EBADVERSION);
        cr_assert_eq(batch_validate(buf, bytes, MAX_BYTES, &h), -NG_EBADVERSION);
        cr_assert_eq(read_raw(buf, bytes), -NG_EBADVERSION);
    }
}

Test(batch, rejects_transactional_and_control_batches)
{
    uint8_t buf[4096];
    size_t bytes = sample(buf);
    struct batch_header h;
    uint16_t bad[] = {BATCH_ATTR_TRANSACTIONAL, BATCH_ATTR_CONTROL,
                      BATCH_ATTR_TRANSACTIONAL | BATCH_ATTR_CONTROL};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        put_be16(buf + BATCH_OFF_ATTRIBUTES, bad[i]);
        reseal(buf, bytes);
        cr_assert_eq(batch_header_decode(buf, bytes, MAX_BYTES, &h), -NG_ETRANSACTIONAL);
        cr_assert_eq(batch_validate(buf, bytes, MAX_BYTES, &h), -NG_ETRANSACTIONAL);
    }
}

Test(batch, rejects_unknown_codec)
{
    uint8_t buf[4096];
    size_t bytes = sample(buf);
    struct batch_header h;
    for (uint16_t codec = BATCH_CODEC_LAST + 1; codec <= BATCH_ATTR_CODEC_MASK; codec++) {
        put_be16(buf + BATCH_OFF_ATTRIBUTES, codec);
        reseal(buf, bytes);
        cr_assert_eq(batch_validate(buf, bytes, MAX_BYTES, &h), -NG_EBADCODEC);
    }
}

Test(batch, rejects_unknown_attribute_bits)
{
    uint8_t buf[4096];
    size_t bytes = sample(buf);
    struct batch_header h;
    for (unsigned bit = 6; bit < 16; bit++) {
        put_be16(buf + BATCH_OFF_ATTRIBUTES, (uint16_t)(1u << bit));
        reseal(buf, bytes);
        cr_assert_eq(batch_validate(buf, bytes, MAX_BYTES, &h), -NG_EBADCODEC);
    }
    put_be16(buf + BATCH_OFF_ATTRIBUTES, BATCH_ATTR_LOG_APPEND_TIME);
    reseal(buf, bytes);
    cr_assert_eq(batch_validate(buf, bytes, MAX_BYTES, &h), 0);
}

Test(batch, rejects_negative_record_count)
{
    uint8_t buf[4096];
    size_t bytes = sample(buf);
    struct batch_header h;
    int32_t bad[] = {-1, INT32_MIN, 0};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        put_be32(buf + BATCH_OFF_RECORD_COUNT, (uint32_t)bad[i]);
        put_be32(buf + BATCH_OFF_LAST_OFFSET_DELTA, (uint32_t)bad[i] - 1u);
        reseal(buf, bytes);
        cr_assert_eq(batch_validate(buf, bytes, MAX_BYTES, &h), -NG_EBADCOUNT);
    }
}

Test(batch, rejects_record_count_the_section_cannot_hold)
{
    uint8_t buf[4096];
    size_t bytes = sample(buf);
    int32_t most = (int32_t)((bytes - BATCH_HEADER_BYTES) / BATCH_RECORD_BYTES_MIN);
    put_be32(buf + BATCH_OFF_RECORD_COUNT, (uint32_t)(most + 1));
    put_be32(buf + BATCH_OFF_LAST_OFFSET_DELTA, (uint32_t)most);
    reseal(buf, bytes);
    struct batch_header h;
    cr_assert_eq(batch_validate(buf, bytes, MAX_BYTES, &h), -NG_EBADCOUNT);
}

Test(batch, rejects_record_count_larger_than_the_records)
{
    uint8_t buf[4096];
    struct raw recs[] = {raw_ok(0), raw_ok(1), raw_ok(2)};
    for (size_t i = 0; i < ARRAY_LEN(recs); i++) {
        recs[i].value = "a longer value"; /* room for a 4th record by count */
        recs[i].value_len = 14;
    }
    size_t bytes = raw_batch_of(buf, recs, 3);
    cr_assert_eq(read_raw(buf, bytes), 0);
    put_be32(buf + BATCH_OFF_RECORD_COUNT, 4);
    put_be32(buf + BATCH_OFF_LAST_OFFSET_DELTA, 3);
    reseal(buf, bytes);
    int seen;
    cr_assert_eq(read_all(buf, bytes, NULL, NULL, 0, &seen), -NG_EBADCOUNT);
    cr_assert_eq(seen, 3);
}

Test(batch, rejects_last_offset_delta_not_count_minus_one)
{
    uint8_t buf[4096];
    size_t bytes = sample(buf);
    put_be32(buf + BATCH_OFF_LAST_OFFSET_DELTA, 3);
    reseal(buf, bytes);
    struct batch_header h;
    cr_assert_eq(batch_validate(buf, bytes, MAX_BYTES, &h), -NG_EBADCOUNT);
}

Test(batch, rejects_timestamp_max_below_first)
{
    uint8_t buf[4096];
    size_t bytes = sample(buf);
    put_be64(buf + BATCH_OFF_TIMESTAMP_FIRST, 100);
    put_be64(buf + BATCH_OFF_TIMESTAMP_MAX, 99);
    reseal(buf, bytes);
    struct batch_header h;
    cr_assert_eq(batch_validate(buf, bytes, MAX_BYTES, &h), -NG_EBADARG);
}

Test(batch, rejects_negative_or_overflowing_offset_base)
{
    uint8_t buf[4096];
    size_t bytes = sample(buf);
    struct batch_header h;
    batch_set_offset_base(buf, -1);
    cr_assert_eq(batch_validate(buf, bytes, MAX_BYTES, &h), -NG_EBADARG);
    batch_set_offset_base(buf, INT64_MAX - 1); /* last offset INT64_MAX + 1 */
    cr_assert_eq(batch_validate(buf, bytes, MAX_BYTES, &h), -NG_EBADARG);
    batch_set_offset_base(buf, INT64_MAX - 2); /* last offset INT64_MAX */
    cr_assert_eq(batch_validate(buf, bytes, MAX_BYTES, &h), 0);
    cr_assert_eq(batch_offset_last(&h), INT64_MAX);
}

/* ---- record rejections ---- */

Test(batch, rejects_bad_offset_delta)
{
    uint8_t buf[4096];
    int64_t bad[] = {-1, 2, 1000, INT64_MAX};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        struct raw recs[] = {raw_ok(0), raw_ok(bad[i]), raw_ok(2)};
        size_t bytes = raw_batch_of(buf, recs, 3);
        int seen;
        cr_assert_eq(read_all(buf, bytes, NULL, NULL, 0, &seen), -NG_EBADDELTA);
        cr_assert_eq(seen, 1);
        struct batch_header vh;
        cr_assert_eq(batch_verify_records(buf, bytes, MAX_BYTES, NULL, NULL, 0, &vh),
                     -NG_EBADDELTA);
    }
}

Test(batch, rejects_trailing_garbage_after_last_record)
{
    uint8_t records[256];
    struct wr w = wr_make(records, sizeof(records));
    struct raw r0 = raw_ok(0);
    raw_record(&w, &r0);
    wr_bytes(&w, "\0\0\0\0\0\0\0\0", 8); /* room for one more minimal record */
    uint8_t buf[512];
    size_t bytes = raw_batch(buf, records, w.pos, 1, BATCH_CODEC_NONE);
    int seen;
    cr_assert_eq(read_all(buf, bytes, NULL, NULL, 0, &seen), -NG_EBADCOUNT);
    cr_assert_eq(seen, 1);
}

Test(batch, rejects_key_length_past_the_record)
{
    uint8_t buf[4096];
    struct raw r = raw_ok(0);
    r.key_len = 100;
    size_t bytes = raw_batch_of(buf, &r, 1);
    cr_assert_eq(read_raw(buf, bytes), -NG_EBADLEN);
    r.key_len = -2;
    bytes = raw_batch_of(buf, &r, 1);
    cr_assert_eq(read_raw(buf, bytes), -NG_EBADLEN);
}

Test(batch, rejects_value_length_past_the_record)
{
    uint8_t buf[4096];
    struct raw r = raw_ok(0);
    r.value_len = 5;
    size_t bytes = raw_batch_of(buf, &r, 1);
    cr_assert_eq(read_raw(buf, bytes), -NG_EBADLEN);
    r.value_len = INT64_MIN;
    bytes = raw_batch_of(buf, &r, 1);
    cr_assert_eq(read_raw(buf, bytes), -NG_EBADLEN);
}

Test(batch, rejects_record_length_past_the_section)
{
    uint8_t buf[4096];
    struct raw r = raw_ok(0);
    r.body_adjust = 1;
    size_t bytes = raw_batch_of(buf, &r, 1);
    cr_assert_eq(read_raw(buf, bytes), -NG_EBADLEN);
    r.body_adjust = -100; /* negative length */
    bytes = raw_batch_of(buf, &r, 1);
    cr_assert_eq(read_raw(buf, bytes), -NG_EBADLEN);
}

Test(batch, rejects_bytes_left_inside_a_record)
{
    uint8_t buf[4096];
    struct raw r = raw_ok(0);
    r.extra = "x"; /* after the (zero) headers, inside the record's length */
    size_t bytes = raw_batch_of(buf, &r, 1);
    cr_assert_eq(read_raw(buf, bytes), -NG_EBADLEN);
}

Test(batch, rejects_bad_record_headers)
{
    uint8_t buf[4096];
    struct raw r = raw_ok(0);
    r.header_count = 1;
    r.extra = "\x01"
              "h"; /* key length -1: header keys are never null */
    size_t bytes = raw_batch_of(buf, &r, 1);
    cr_assert_eq(read_raw(buf, bytes), -NG_EBADLEN);
    r.extra = "\x02"
              "h"
              "\x08"
              "v"; /* value length 4 past the record */
    bytes = raw_batch_of(buf, &r, 1);
    cr_assert_eq(read_raw(buf, bytes), -NG_EBADLEN);
    r.extra = "\x02"
              "h"
              "\x01"
              "\x02"
              "h"; /* a second header not counted */
    bytes = raw_batch_of(buf, &r, 1);
    cr_assert_eq(read_raw(buf, bytes), -NG_EBADLEN);
}

Test(batch, rejects_bad_header_count)
{
    uint8_t buf[4096];
    struct raw r = raw_ok(0);
    r.header_count = -1;
    size_t bytes = raw_batch_of(buf, &r, 1);
    cr_assert_eq(read_raw(buf, bytes), -NG_EBADCOUNT);
    r.header_count = 2;
    r.extra = "\x02"
              "h"
              "\x01"; /* one header's bytes for two */
    bytes = raw_batch_of(buf, &r, 1);
    cr_assert_eq(read_raw(buf, bytes), -NG_EBADCOUNT);
}

Test(batch, rejects_record_attributes)
{
    uint8_t buf[4096];
    struct raw r = raw_ok(0);
    r.attributes = 1;
    size_t bytes = raw_batch_of(buf, &r, 1);
    cr_assert_eq(read_raw(buf, bytes), -NG_EBADARG);
}

Test(batch, rejects_timestamp_delta_overflow)
{
    uint8_t buf[4096];
    struct raw r = raw_ok(0);
    r.ts_delta = INT64_MAX;
    size_t bytes = raw_batch_of(buf, &r, 1);
    put_be64(buf + BATCH_OFF_TIMESTAMP_FIRST, 1);
    put_be64(buf + BATCH_OFF_TIMESTAMP_MAX, 1);
    reseal(buf, bytes);
    cr_assert_eq(read_raw(buf, bytes), -NG_EBADARG);
}

Test(batch, rejects_overlong_varint)
{
    uint8_t records[64];
    memset(records, 0x80, sizeof(records)); /* a record length that never ends */
    uint8_t buf[256];
    size_t bytes = raw_batch(buf, records, sizeof(records), 1, BATCH_CODEC_NONE);
    cr_assert_eq(read_raw(buf, bytes), -NG_EBADVARINT);
}

Test(batch, failed_reader_stays_failed)
{
    uint8_t buf[4096];
    struct raw recs[] = {raw_ok(0), raw_ok(5)};
    size_t bytes = raw_batch_of(buf, recs, 2);
    struct batch_reader br;
    struct batch_record rec;
    cr_assert_eq(batch_reader_open(&br, buf, bytes, MAX_BYTES, NULL, NULL, 0), 0);
    cr_assert_eq(batch_reader_next(&br, &rec), 1);
    cr_assert_eq(batch_reader_next(&br, &rec), -NG_EBADDELTA);
    cr_assert_eq(batch_reader_next(&br, &rec), -NG_EBADDELTA);
    buf[BATCH_HEADER_BYTES] ^= 1;
    cr_assert_eq(batch_reader_open(&br, buf, bytes, MAX_BYTES, NULL, NULL, 0), -NG_ECHECKSUM);
    cr_assert_eq(batch_reader_next(&br, &rec), -NG_ECHECKSUM);
}

/* ---- compression rejections ---- */

/* A zstd batch around an already made frame. */
static size_t zbatch(uint8_t *buf, const void *frame, size_t frame_len, int32_t count)
{
    return raw_batch(buf, frame, frame_len, count, BATCH_CODEC_ZSTD);
}

/* The records of sample() as one zstd frame; returns the frame's size. */
static size_t sample_frame(uint8_t *frame, size_t cap, size_t *records_len)
{
    uint8_t plain[4096];
    size_t bytes = sample(plain);
    *records_len = bytes - BATCH_HEADER_BYTES;
    size_t n = ZSTD_compress(frame, cap, plain + BATCH_HEADER_BYTES, *records_len, 3);
    cr_assert(!ZSTD_isError(n));
    return n;
}

static int read_z(const uint8_t *batch, size_t bytes, size_t out_cap)
{
    struct batch_zctx z;
    zinit(&z);
    uint8_t *out = xmalloc(out_cap);
    int seen;
    int rc = read_all(batch, bytes, &z, out, out_cap, &seen);
    free(out);
    batch_zctx_fini(&z);
    return rc;
}

Test(batch, reads_a_zstd_frame_made_elsewhere)
{
    uint8_t frame[4096], buf[4096];
    size_t records_len;
    size_t n = sample_frame(frame, sizeof(frame), &records_len);
    size_t bytes = zbatch(buf, frame, n, 3);
    cr_assert_eq(read_z(buf, bytes, records_len), 0);
}

Test(batch, rejects_decompressed_size_over_the_buffer)
{
    struct batch_zctx z;
    zinit(&z);
    uint8_t *buf = xmalloc(MAX_BYTES);
    size_t bytes = build(buf, MAX_BYTES, BATCH_CODEC_ZSTD, &z, 100);
    size_t plain = build(buf + bytes, MAX_BYTES - bytes, BATCH_CODEC_NONE, NULL, 100);
    size_t records_len = plain - BATCH_HEADER_BYTES;
    cr_assert_eq(read_z(buf, bytes, records_len), 0);
    cr_assert_eq(read_z(buf, bytes, records_len - 1), -NG_ETOOBIG);
    cr_assert_eq(read_z(buf, bytes, 1), -NG_ETOOBIG);
    free(buf);
    batch_zctx_fini(&z);
}

Test(batch, rejects_compressed_batch_without_a_zctx)
{
    uint8_t frame[4096], buf[4096];
    size_t records_len;
    size_t bytes = zbatch(buf, frame, sample_frame(frame, sizeof(frame), &records_len), 3);
    cr_assert_eq(read_raw(buf, bytes), -NG_EBADCODEC);
}

Test(batch, rejects_corrupt_zstd_frame)
{
    uint8_t frame[4096], buf[4096];
    size_t records_len;
    size_t n = sample_frame(frame, sizeof(frame), &records_len);
    frame[0] ^= 0xff; /* magic number */
    cr_assert_eq(read_z(buf, zbatch(buf, frame, n, 3), 4096), -NG_EDECOMPRESS);
    frame[0] ^= 0xff;
    cr_assert_eq(read_z(buf, zbatch(buf, frame, n - 1, 3), 4096), -NG_EDECOMPRESS,
                 "frame cut short");
    frame[n] = 0;
    cr_assert_eq(read_z(buf, zbatch(buf, frame, n + 1, 3), 4096), -NG_EDECOMPRESS,
                 "a byte after the frame");
    memcpy(frame + n, frame, n);
    cr_assert_eq(read_z(buf, zbatch(buf, frame, 2 * n, 3), 4096), -NG_EDECOMPRESS, "two frames");
    cr_assert_eq(read_z(buf, zbatch(buf, frame, 3, 3), 4096), -NG_EDECOMPRESS, "three bytes");
}

Test(batch, reads_zstd_frame_without_content_size_bounded_by_the_buffer)
{
    uint8_t plain[4096], frame[4096], buf[4096];
    size_t bytes = sample(plain);
    ZSTD_CCtx *c = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0);
    ZSTD_inBuffer in = {plain + BATCH_HEADER_BYTES, bytes - BATCH_HEADER_BYTES, 0};
    ZSTD_outBuffer out = {frame, sizeof(frame), 0};
    cr_assert_eq(ZSTD_compressStream2(c, &out, &in, ZSTD_e_end), 0);
    ZSTD_freeCCtx(c);
    cr_assert_eq(ZSTD_getFrameContentSize(frame, out.pos), ZSTD_CONTENTSIZE_UNKNOWN);
    cr_assert_eq(read_z(buf, zbatch(buf, frame, out.pos, 3), 4096), 0);
    cr_assert_eq(read_z(buf, zbatch(buf, frame, out.pos, 3), bytes - BATCH_HEADER_BYTES), 0,
                 "exactly the size");
    cr_assert_eq(read_z(buf, zbatch(buf, frame, out.pos, 3), bytes - BATCH_HEADER_BYTES - 1),
                 -NG_ETOOBIG, "a byte short");
}

Test(batch, rejects_compressed_records_fewer_than_count)
{
    uint8_t frame[4096], buf[4096];
    size_t records_len;
    size_t n = sample_frame(frame, sizeof(frame), &records_len);
    cr_assert_eq(read_z(buf, zbatch(buf, frame, n, 4), 4096), -NG_EBADCOUNT);
    /* More records than the decompressed bytes can hold, caught up front. */
    cr_assert_eq(read_z(buf, zbatch(buf, frame, n, 1000), 4096), -NG_EBADCOUNT);
}

/* ---- truncation ---- */

/* Every prefix of a valid batch, in a buffer of exactly that size (so ASan
 * sees any read past it), is rejected as truncated. */
static void truncate_everywhere(enum batch_codec codec)
{
    struct batch_zctx z;
    zinit(&z);
    uint8_t *buf = xmalloc(MAX_BYTES), *out = xmalloc(MAX_BYTES);
    size_t bytes = build(buf, MAX_BYTES, codec, &z, 40);
    for (size_t len = 0; len < bytes; len++) {
        uint8_t *p = xmalloc(len);
        memcpy(p, buf, len);
        int seen;
        cr_assert_eq(read_all(p, len, &z, out, MAX_BYTES, &seen), -NG_ETRUNCATED, "len %zu", len);
        free(p);
    }
    free(out);
    free(buf);
    batch_zctx_fini(&z);
}

Test(batch, truncation_at_every_byte_is_rejected)
{
    truncate_everywhere(BATCH_CODEC_NONE);
    truncate_everywhere(BATCH_CODEC_ZSTD);
}

/* As above, but the length field and checksum are rewritten to the cut, as
 * if the batch had been built short: the record checks must catch it. */
static void cut_everywhere(enum batch_codec codec)
{
    struct batch_zctx z;
    zinit(&z);
    uint8_t *buf = xmalloc(MAX_BYTES), *out = xmalloc(MAX_BYTES);
    size_t bytes = build(buf, MAX_BYTES, codec, &z, 40);
    for (size_t len = BATCH_HEADER_BYTES; len < bytes; len++) {
        uint8_t *p = xmalloc(len);
        memcpy(p, buf, len);
        set_bytes(p, len);
        int seen;
        int rc = read_all(p, len, &z, out, MAX_BYTES, &seen);
        cr_assert_lt(rc, 0, "len %zu", len);
        free(p);
    }
    free(out);
    free(buf);
    batch_zctx_fini(&z);
}

Test(batch, resealed_cut_at_every_byte_is_rejected)
{
    cut_everywhere(BATCH_CODEC_NONE);
    cut_everywhere(BATCH_CODEC_ZSTD);
}

/* ---- misc ---- */

Test(batch, zctx_init_and_fini)
{
    struct batch_zctx z;
    cr_assert_eq(batch_zctx_init(&z, BATCH_HEADER_BYTES, 1), 0);
    cr_assert_not_null(z.cctx);
    cr_assert_not_null(z.dctx);
    cr_assert_eq(z.scratch_bytes, BATCH_HEADER_BYTES);
    batch_zctx_fini(&z);
    cr_assert_null(z.scratch);
    batch_zctx_fini(&z); /* a second fini is harmless */
}
