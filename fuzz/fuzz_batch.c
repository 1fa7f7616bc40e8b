/*
 * fuzz/fuzz_batch.c — libFuzzer target for the record batch decoder.
 *
 * Each input is decoded twice, each time from a heap copy of exactly its
 * size (so ASan sees any read past the end):
 *   1. as is: header, length and checksum checks;
 *   2. resealed: the length field set to the input's size and the checksum
 *      recomputed, so that mutations get past the checksum into the record
 *      and codec decoders, which random bytes would otherwise never reach.
 * For each, batch_reader_open + batch_reader_next + header iteration must
 * agree with batch_verify_records(); a batch that reads cleanly is rebuilt
 * with the builder and must read back the same records.
 *
 * Seeds: fuzz/corpus/batch/ (valid batches, plain and each codec). The
 * codec decoders alone: fuzz/fuzz_codec.c.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storage/batch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_BATCH_BYTES_MAX (1u << 20)
#define FUZZ_HEADERS_MAX 256

static struct batch_zctx zctx;
static uint8_t *out_a, *out_b, *rebuilt;

static void fuzz_init(void)
{
    if (out_a != NULL) {
        return;
    }
    ASSERT(batch_zctx_init(&zctx, 4 * FUZZ_BATCH_BYTES_MAX, 1) == 0);
    out_a = malloc(FUZZ_BATCH_BYTES_MAX);
    out_b = malloc(FUZZ_BATCH_BYTES_MAX);
    rebuilt = malloc(4 * FUZZ_BATCH_BYTES_MAX);
    ASSERT(out_a != NULL && out_b != NULL && rebuilt != NULL);
}

static bool same_bytes(const uint8_t *a, int32_t a_len, const uint8_t *b, int32_t b_len)
{
    if (a_len != b_len) {
        return false;
    }
    return a_len <= 0 || memcmp(a, b, (size_t)a_len) == 0;
}

/* Walks all headers of rec into kv[] (up to FUZZ_HEADERS_MAX); returns the
 * header count, or -1 on an error (which reader_next should have caught). */
static int64_t walk_headers(struct batch_record rec, struct batch_kv *kv)
{
    int64_t n = 0;
    struct batch_kv tmp;
    int rc;
    while ((rc = batch_record_next_header(&rec, n < FUZZ_HEADERS_MAX ? &kv[n] : &tmp)) == 1) {
        n++;
    }
    ASSERT(rc == 0); /* batch_reader_next() walked and checked them already */
    ASSERT(n == rec.header_count);
    return n;
}

/* Reads every record and header; returns 0 or the first error. */
static int read_all(const uint8_t *batch, size_t len, uint8_t *out)
{
    struct batch_reader br;
    int rc =
        batch_reader_open(&br, batch, len, FUZZ_BATCH_BYTES_MAX, &zctx, out, FUZZ_BATCH_BYTES_MAX);
    if (rc != 0) {
        return rc;
    }
    struct batch_record rec;
    struct batch_kv kv[FUZZ_HEADERS_MAX];
    int32_t seen = 0;
    while ((rc = batch_reader_next(&br, &rec)) == 1) {
        ASSERT(rec.offset == br.hdr.offset_base + seen);
        ASSERT(rec.key_len >= -1 && rec.value_len >= -1);
        walk_headers(rec, kv);
        seen++;
    }
    ASSERT(rc <= 0);
    ASSERT(rc != 0 || seen == br.hdr.record_count);
    ASSERT(batch_reader_next(&br, &rec) == rc); /* sticky end and errors */
    return rc;
}

/* Re-encodes the records of a valid batch with the builder. Returns false
 * when the builder refuses them (timestamps too far apart, too many headers
 * to re-encode here). */
static bool rebuild(const uint8_t *batch, size_t len, size_t *bytes_out)
{
    struct batch_reader br;
    ASSERT(batch_reader_open(&br, batch, len, FUZZ_BATCH_BYTES_MAX, &zctx, out_a,
                             FUZZ_BATCH_BYTES_MAX) == 0);
    struct batch_builder b;
    /* The builder writes zstd alone of the codecs it reads. */
    enum batch_codec codec =
        batch_codec(&br.hdr) == BATCH_CODEC_NONE ? BATCH_CODEC_NONE : BATCH_CODEC_ZSTD;
    batch_builder_init(&b, rebuilt, 4 * FUZZ_BATCH_BYTES_MAX, codec, br.hdr.producer_id,
                       br.hdr.producer_epoch, br.hdr.sequence_base);
    struct batch_record rec;
    struct batch_kv kv[FUZZ_HEADERS_MAX];
    while (batch_reader_next(&br, &rec) == 1) {
        if (rec.header_count > FUZZ_HEADERS_MAX) {
            return false;
        }
        walk_headers(rec, kv);
        int rc = batch_builder_add(&b, rec.timestamp_ms, rec.key, rec.key_len, rec.value,
                                   rec.value_len, kv, rec.header_count);
        if (rc == -NG_EBADARG) {
            return false;
        }
        ASSERT(rc == 0);
    }
    ASSERT(batch_builder_finish(&b, &zctx, bytes_out) == 0);
    return true;
}

/* The rebuilt batch must hold the same records as the original. */
static void check_rebuilt(const uint8_t *batch, size_t len, size_t rebuilt_bytes)
{
    struct batch_reader a, b;
    ASSERT(batch_reader_open(&a, batch, len, FUZZ_BATCH_BYTES_MAX, &zctx, out_a,
                             FUZZ_BATCH_BYTES_MAX) == 0);
    ASSERT(batch_reader_open(&b, rebuilt, rebuilt_bytes, 4 * FUZZ_BATCH_BYTES_MAX, &zctx, out_b,
                             FUZZ_BATCH_BYTES_MAX) == 0);
    ASSERT(a.hdr.record_count == b.hdr.record_count);
    struct batch_record ra, rb;
    struct batch_kv ka, kb;
    int rc;
    while ((rc = batch_reader_next(&a, &ra)) == 1) {
        ASSERT(batch_reader_next(&b, &rb) == 1);
        ASSERT(ra.offset - a.hdr.offset_base == rb.offset);
        ASSERT(ra.timestamp_ms == rb.timestamp_ms);
        ASSERT(same_bytes(ra.key, ra.key_len, rb.key, rb.key_len));
        ASSERT(same_bytes(ra.value, ra.value_len, rb.value, rb.value_len));
        ASSERT(ra.header_count == rb.header_count);
        while (batch_record_next_header(&ra, &ka) == 1) {
            ASSERT(batch_record_next_header(&rb, &kb) == 1);
            ASSERT(same_bytes(ka.key, ka.key_len, kb.key, kb.key_len));
            ASSERT(same_bytes(ka.value, ka.value_len, kb.value, kb.value_len));
        }
    }
    ASSERT(rc == 0 && batch_reader_next(&b, &rb) == 0);
}

static void run(const uint8_t *batch, size_t len)
{
    struct batch_header h;
    int hrc = batch_header_decode(batch, len, FUZZ_BATCH_BYTES_MAX, &h);
    int rc = read_all(batch, len, out_a);
    struct batch_header vh;
    int vrc = batch_verify_records(batch, len, FUZZ_BATCH_BYTES_MAX, &zctx, out_b,
                                   FUZZ_BATCH_BYTES_MAX, &vh);
    ASSERT(rc == vrc);
    ASSERT(rc != 0 || hrc == 0); /* a readable batch has a good header */
    /* and it is the one verify gives */
    ASSERT(rc != 0 ||
           (vh.checksum == h.checksum && vh.record_count == h.record_count &&
            vh.last_offset_delta == h.last_offset_delta && vh.producer_id == h.producer_id));
    size_t bytes = 0;
    if (rc == 0 && rebuild(batch, len, &bytes)) {
        check_rebuilt(batch, len, bytes);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_init();
    uint8_t *copy = malloc(size > 0 ? size : 1);
    ASSERT(copy != NULL);
    if (size > 0) {
        memcpy(copy, data, size);
    }
    run(copy, size);
    if (size >= BATCH_HEADER_BYTES && size <= FUZZ_BATCH_BYTES_MAX) {
        put_be32(copy + BATCH_OFF_LENGTH, (uint32_t)(size - BATCH_PREFIX_BYTES));
        copy[BATCH_OFF_MAGIC] = BATCH_MAGIC;
        batch_seal(copy, size);
        run(copy, size);
    }
    free(copy);
    return 0;
}
