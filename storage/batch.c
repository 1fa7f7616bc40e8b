/*
 * storage/batch.c — the record batch format: header codec, checksum, builder,
 * reader. Byte layout and validation rules: docs/storage-format.md.
 *
 * Everything read comes through a struct rd, whose sticky error is checked
 * once per header, record and record header; every length is checked against
 * the bytes left before it is used. Nothing here allocates except
 * batch_zctx_init().
 */
#include "storage/batch.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>

#include <isa-l/crc.h>
#include <lz4frame.h>
#include <snappy-c.h>
#include <zlib.h>
#include <zstd.h>

static_assert(BATCH_OFF_RECORD_COUNT + 4 == BATCH_HEADER_BYTES,
              "record count is the last header field");
static_assert(BATCH_OFF_CHECKSUM + 4 == BATCH_CHECKSUM_FROM,
              "the checksum covers everything after itself");
static_assert(BATCH_OFF_LEADER_EPOCH + 4 == BATCH_OFF_MAGIC &&
                  BATCH_OFF_MAGIC + 1 == BATCH_OFF_CHECKSUM,
              "Kafka's RecordBatch v2: epoch, magic, crc");
static_assert(BATCH_OFF_LENGTH + 4 == BATCH_PREFIX_BYTES, "length counts the bytes after itself");
static_assert(BATCH_BYTES_LIMIT <= INT32_MAX,
              "batch bytes, and so every length inside, fit an i32");
static_assert(BATCH_ATTR_CODEC_MASK <= BATCH_ATTR_KNOWN_MASK, "codec bits are known bits");

/* The length field's smallest value: a header and no records. */
#define BATCH_LENGTH_MIN (BATCH_HEADER_BYTES - BATCH_PREFIX_BYTES)

/* A record body is at least attributes, timestamp delta, offset delta, key
 * length, value length and header count, one byte each. */
#define RECORD_BODY_BYTES_MIN (BATCH_RECORD_BYTES_MIN - 1)

/* A record header is at least a key length and a value length. */
#define RECORD_HEADER_BYTES_MIN 2

/* The most records any batch can hold; bounds counts before any arithmetic. */
#define BATCH_RECORD_COUNT_MAX \
    ((int32_t)((BATCH_BYTES_LIMIT - BATCH_HEADER_BYTES) / BATCH_RECORD_BYTES_MIN))

static size_t size_min(size_t a, size_t b) { return a < b ? a : b; }

/* ---- header ---- */

/* Reads the 61 header bytes at buf into *h; no checks. */
static void header_read(const uint8_t *buf, struct batch_header *h)
{
    struct rd r = rd_make(buf, BATCH_HEADER_BYTES);
    h->offset_base = (int64_t)rd_be64(&r);
    h->length = (int32_t)rd_be32(&r);
    h->leader_epoch = (int32_t)rd_be32(&r);
    h->magic = rd_u8(&r);
    h->checksum = rd_be32(&r);
    h->attributes = rd_be16(&r);
    h->last_offset_delta = (int32_t)rd_be32(&r);
    h->timestamp_first_ms = (int64_t)rd_be64(&r);
    h->timestamp_max_ms = (int64_t)rd_be64(&r);
    h->producer_id = (int64_t)rd_be64(&r);
    h->producer_epoch = (int16_t)rd_be16(&r);
    h->sequence_base = (int32_t)rd_be32(&r);
    h->record_count = (int32_t)rd_be32(&r);
    ASSERT(r.err == 0 && rd_left(&r) == 0);
}

/* The length field against the format and against the caller's maximum. */
static int header_check_length(const struct batch_header *h, size_t batch_bytes_max)
{
    if (h->length < BATCH_LENGTH_MIN) {
        return -NG_EBADLEN;
    }
    size_t limit = size_min(batch_bytes_max, BATCH_BYTES_LIMIT);
    if (batch_bytes(h) > limit) {
        return -NG_ETOOBIG;
    }
    return 0;
}

static int header_check_counts(const struct batch_header *h)
{
    if (h->record_count < 1 || h->record_count > BATCH_RECORD_COUNT_MAX) {
        return -NG_EBADCOUNT;
    }
    size_t section_bytes = batch_bytes(h) - BATCH_HEADER_BYTES;
    if (batch_codec(h) == BATCH_CODEC_NONE &&
        (size_t)h->record_count * BATCH_RECORD_BYTES_MIN > section_bytes) {
        return -NG_EBADCOUNT;
    }
    if (h->last_offset_delta != h->record_count - 1) {
        return -NG_EBADCOUNT;
    }
    return 0;
}

/* Every field but length and checksum. Precondition: the length passed. */
static int header_check_fields(const struct batch_header *h)
{
    if (h->magic != BATCH_MAGIC) {
        return -NG_EBADVERSION;
    }
    if ((h->attributes & (BATCH_ATTR_TRANSACTIONAL | BATCH_ATTR_CONTROL)) != 0) {
        return -NG_ETRANSACTIONAL;
    }
    if ((h->attributes & ~BATCH_ATTR_KNOWN_MASK) != 0 || batch_codec(h) > BATCH_CODEC_LAST) {
        return -NG_EBADCODEC;
    }
    int rc = header_check_counts(h);
    if (rc != 0) {
        return rc;
    }
    if (h->timestamp_max_ms < h->timestamp_first_ms) {
        return -NG_EBADARG;
    }
    /* Offsets are never negative, and the last one must be representable:
     * batch_offset_last() and the reader add without overflow checks. */
    if (h->offset_base < 0 || h->offset_base > INT64_MAX - h->last_offset_delta) {
        return -NG_EBADARG;
    }
    return 0;
}

int batch_header_decode(const uint8_t *buf, size_t len, size_t batch_bytes_max,
                        struct batch_header *out)
{
    ASSERT(out != NULL);
    ASSERT(buf != NULL || len == 0);
    if (len < BATCH_HEADER_BYTES) {
        return -NG_ETRUNCATED;
    }
    header_read(buf, out);
    int rc = header_check_length(out, batch_bytes_max);
    if (rc != 0) {
        return rc;
    }
    return header_check_fields(out);
}

uint32_t batch_crc32c(const void *p, size_t n)
{
    ASSERT(p != NULL || n == 0);
    /* ISA-L's crc32_iscsi neither inverts its seed nor its result, and
     * takes an int length: chain it over chunks, inverting at both ends. */
    const unsigned char *at = p;
    uint32_t crc = 0xffffffffu;
    while (n > 0) {
        size_t chunk = size_min(n, (size_t)1 << 30);
        crc = crc32_iscsi((unsigned char *)at, (int)chunk, crc);
        at += chunk;
        n -= chunk;
    }
    return ~crc;
}

uint32_t batch_checksum(const uint8_t *batch, size_t bytes)
{
    ASSERT(batch != NULL && bytes >= BATCH_HEADER_BYTES);
    return batch_crc32c(batch + BATCH_CHECKSUM_FROM, bytes - BATCH_CHECKSUM_FROM);
}

void batch_seal(uint8_t *batch, size_t bytes)
{
    put_be32(batch + BATCH_OFF_CHECKSUM, batch_checksum(batch, bytes));
}

/* Checks the checksum before the field values: a corrupted byte then reads
 * as -NG_ECHECKSUM, not as whatever the flipped field happens to break. The
 * magic is outside the CRC (Kafka's layout) and checked first of the
 * fields: a batch of another format must not be read as a checksum error. */
int batch_validate(const uint8_t *buf, size_t len, size_t batch_bytes_max, struct batch_header *out)
{
    ASSERT(out != NULL);
    ASSERT(buf != NULL || len == 0);
    if (len < BATCH_HEADER_BYTES) {
        return -NG_ETRUNCATED;
    }
    header_read(buf, out);
    int rc = header_check_length(out, batch_bytes_max);
    if (rc != 0) {
        return rc;
    }
    if (batch_bytes(out) > len) {
        return -NG_ETRUNCATED;
    }
    if (out->magic != BATCH_MAGIC) {
        return -NG_EBADVERSION;
    }
    if (batch_checksum(buf, batch_bytes(out)) != out->checksum) {
        return -NG_ECHECKSUM;
    }
    return header_check_fields(out);
}

/* ---- compression context ---- */

int batch_zctx_init(struct batch_zctx *z, size_t batch_bytes_max, int level)
{
    ASSERT(z != NULL);
    ASSERT(batch_bytes_max >= BATCH_HEADER_BYTES);
    ASSERT(level >= ZSTD_minCLevel() && level <= ZSTD_maxCLevel());
    *z = (struct batch_zctx){.level = level};
    z->scratch_bytes = size_min(batch_bytes_max, BATCH_BYTES_LIMIT);
    z->cctx = ZSTD_createCCtx();
    z->dctx = ZSTD_createDCtx();
    z->scratch = malloc(z->scratch_bytes);
    z_stream *gz = calloc(1, sizeof(*gz));
    if (gz != NULL && inflateInit2(gz, 16 + MAX_WBITS) != Z_OK) { /* gzip only */
        free(gz);
        gz = NULL;
    }
    z->gz = gz;
    LZ4F_dctx *lz4 = NULL;
    if (LZ4F_isError(LZ4F_createDecompressionContext(&lz4, LZ4F_VERSION))) {
        lz4 = NULL;
    }
    z->lz4 = lz4;
    if (z->cctx == NULL || z->dctx == NULL || z->scratch == NULL || z->gz == NULL ||
        z->lz4 == NULL) {
        batch_zctx_fini(z);
        return -ENOMEM;
    }
    /* Parameters are sticky: set once, used by every ZSTD_compress2(). The
     * frame must carry its content size: the reader checks it against the
     * caller's buffer before decompressing. */
    size_t r1 = ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_compressionLevel, level);
    size_t r2 = ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_contentSizeFlag, 1);
    ASSERT(!ZSTD_isError(r1) && !ZSTD_isError(r2));
    return 0;
}

void batch_zctx_fini(struct batch_zctx *z)
{
    ASSERT(z != NULL);
    ZSTD_freeCCtx(z->cctx);
    ZSTD_freeDCtx(z->dctx);
    if (z->gz != NULL) {
        inflateEnd(z->gz);
        free(z->gz);
    }
    LZ4F_freeDecompressionContext(z->lz4);
    free(z->scratch);
    *z = (struct batch_zctx){0};
}

/* ---- builder ---- */

void batch_builder_init(struct batch_builder *b, uint8_t *buf, size_t cap, enum batch_codec codec,
                        int64_t producer_id, int16_t producer_epoch, int32_t sequence_base)
{
    ASSERT(b != NULL && buf != NULL);
    ASSERT(cap >= BATCH_HEADER_BYTES);
    ASSERT(codec == BATCH_CODEC_NONE || codec == BATCH_CODEC_ZSTD);
    *b = (struct batch_builder){
        .buf = buf,
        /* A batch never exceeds the format's limit, so its length fits. */
        .cap = size_min(cap, BATCH_BYTES_LIMIT),
        .pos = BATCH_HEADER_BYTES,
        .codec = codec,
        .producer_id = producer_id,
        .producer_epoch = producer_epoch,
        .sequence_base = sequence_base,
    };
}

/* Bytes of a length-prefixed field: varint length, then the bytes. */
static size_t field_bytes(int32_t len) { return varint_len(len) + (len > 0 ? (size_t)len : 0); }

/* Sums the encoded size of the record body into *body_out, giving up with
 * -NG_ENOSPACE as soon as it passes room (so the sum cannot overflow). */
static int record_body_bytes(int64_t ts_delta, int32_t offset_delta, int32_t key_len,
                             int32_t value_len, const struct batch_kv *headers,
                             uint32_t header_count, size_t room, size_t *body_out)
{
    size_t n = 1 + varint_len(ts_delta) + varint_len(offset_delta) + field_bytes(key_len) +
               field_bytes(value_len) + varint_len(header_count);
    for (uint32_t i = 0; i < header_count && n <= room; i++) {
        n += field_bytes(headers[i].key_len) + field_bytes(headers[i].value_len);
    }
    if (n > room) {
        return -NG_ENOSPACE;
    }
    *body_out = n;
    return 0;
}

static void wr_field(struct wr *w, const void *p, int32_t len)
{
    wr_varint(w, len);
    if (len > 0) {
        wr_bytes(w, p, (size_t)len);
    }
}

static void record_write(struct wr *w, size_t body, int64_t ts_delta, int32_t offset_delta,
                         const void *key, int32_t key_len, const void *value, int32_t value_len,
                         const struct batch_kv *headers, uint32_t header_count)
{
    wr_varint(w, (int64_t)body);
    wr_u8(w, 0); /* record attributes: none defined */
    wr_varint(w, ts_delta);
    wr_varint(w, offset_delta);
    wr_field(w, key, key_len);
    wr_field(w, value, value_len);
    wr_varint(w, header_count);
    for (uint32_t i = 0; i < header_count; i++) {
        wr_field(w, headers[i].key, headers[i].key_len);
        wr_field(w, headers[i].value, headers[i].value_len);
    }
}

static bool lengths_ok(const void *key, int32_t key_len, const void *value, int32_t value_len,
                       const struct batch_kv *headers, uint32_t header_count)
{
    ASSERT(key != NULL || key_len <= 0);
    ASSERT(value != NULL || value_len <= 0);
    ASSERT(headers != NULL || header_count == 0);
    if (key_len < -1 || value_len < -1) {
        return false;
    }
    for (uint32_t i = 0; i < header_count; i++) {
        const struct batch_kv *kv = &headers[i];
        ASSERT(kv->key != NULL || kv->key_len <= 0);
        ASSERT(kv->value != NULL || kv->value_len <= 0);
        if (kv->key_len < 0 || kv->value_len < -1) {
            return false;
        }
    }
    return true;
}

/* Everything is measured and checked before the first byte is written, so a
 * failed add leaves the builder exactly as it was. */
int batch_builder_add(struct batch_builder *b, int64_t timestamp_ms, const void *key,
                      int32_t key_len, const void *value, int32_t value_len,
                      const struct batch_kv *headers, uint32_t header_count)
{
    ASSERT(b != NULL && b->buf != NULL && b->pos <= b->cap);
    if (!lengths_ok(key, key_len, value, value_len, headers, header_count)) {
        return -NG_EBADARG;
    }
    int64_t first = b->record_count == 0 ? timestamp_ms : b->timestamp_first_ms;
    int64_t ts_delta;
    if (__builtin_sub_overflow(timestamp_ms, first, &ts_delta)) {
        return -NG_EBADARG;
    }
    if (b->record_count == INT32_MAX) {
        return -NG_ENOSPACE;
    }
    size_t room = b->cap - b->pos;
    size_t body = 0;
    int rc = record_body_bytes(ts_delta, b->record_count, key_len, value_len, headers, header_count,
                               room, &body);
    if (rc != 0) {
        return rc;
    }
    size_t total = varint_len((int64_t)body) + body;
    if (total > room) {
        return -NG_ENOSPACE;
    }
    struct wr w = wr_make(b->buf + b->pos, room);
    record_write(&w, body, ts_delta, b->record_count, key, key_len, value, value_len, headers,
                 header_count);
    ASSERT(w.err == 0 && w.pos == total);
    b->pos += total;
    b->record_count++;
    b->timestamp_first_ms = first;
    if (b->record_count == 1 || timestamp_ms > b->timestamp_max_ms) {
        b->timestamp_max_ms = timestamp_ms;
    }
    return 0;
}

/* Compresses the records section in place when zstd makes it smaller.
 * Returns the codec used, or -NG_ENOSPACE when z's scratch cannot hold it. */
static int builder_compress(struct batch_builder *b, struct batch_zctx *z)
{
    ASSERT(z != NULL && z->cctx != NULL && z->scratch != NULL);
    size_t records = b->pos - BATCH_HEADER_BYTES;
    if (records > z->scratch_bytes) {
        return -NG_ENOSPACE;
    }
    /* Room for one byte less than the input: zstd fails with
     * dstSize_tooSmall exactly when compression would not pay. Any other
     * failure also leaves the (always valid) uncompressed batch. */
    size_t c =
        ZSTD_compress2(z->cctx, z->scratch, records - 1, b->buf + BATCH_HEADER_BYTES, records);
    if (ZSTD_isError(c)) {
        return BATCH_CODEC_NONE;
    }
    ASSERT(c < records);
    memcpy(b->buf + BATCH_HEADER_BYTES, z->scratch, c);
    b->pos = BATCH_HEADER_BYTES + c;
    return BATCH_CODEC_ZSTD;
}

static void builder_write_header(struct batch_builder *b, enum batch_codec codec)
{
    struct wr w = wr_make(b->buf, BATCH_HEADER_BYTES);
    wr_be64(&w, 0);                                       /* offset base */
    wr_be32(&w, (uint32_t)(b->pos - BATCH_PREFIX_BYTES)); /* length */
    wr_be32(&w, 0);                                       /* leader epoch */
    wr_u8(&w, BATCH_MAGIC);
    wr_be32(&w, 0); /* checksum */
    wr_be16(&w, (uint16_t)codec);
    wr_be32(&w, (uint32_t)(b->record_count - 1)); /* last delta */
    wr_be64(&w, (uint64_t)b->timestamp_first_ms);
    wr_be64(&w, (uint64_t)b->timestamp_max_ms);
    wr_be64(&w, (uint64_t)b->producer_id);
    wr_be16(&w, (uint16_t)b->producer_epoch);
    wr_be32(&w, (uint32_t)b->sequence_base);
    wr_be32(&w, (uint32_t)b->record_count);
    ASSERT(w.err == 0 && w.pos == BATCH_HEADER_BYTES);
    /* Back-patched last: it covers every byte written above after itself. */
    batch_seal(b->buf, b->pos);
}

int batch_builder_finish(struct batch_builder *b, struct batch_zctx *z, size_t *bytes_out)
{
    ASSERT(b != NULL && b->buf != NULL && bytes_out != NULL);
    if (b->record_count == 0) {
        return -NG_EBADCOUNT;
    }
    int codec = BATCH_CODEC_NONE;
    if (b->codec == BATCH_CODEC_ZSTD) {
        codec = builder_compress(b, z);
        if (codec < 0) {
            return codec;
        }
    }
    builder_write_header(b, (enum batch_codec)codec);
    /* Pair the encoder with the decoder: what we build must decode. */
    struct batch_header h;
    ASSERT(batch_header_decode(b->buf, b->pos, b->pos, &h) == 0);
    *bytes_out = b->pos;
    return 0;
}

/* ---- reader ---- */

/* ---- decompression ----
 * Each decoder writes into out[0..cap) and nothing past it; one that would
 * need more gives -NG_ETOOBIG. "No progress" (neither input read nor output
 * written by a call) ends each loop, so none can spin. */

/* One zstd frame. A declared content size is checked against cap before
 * any work; a frame without one is streamed into out, bounded by cap. */
static int zstd_decompress(struct batch_zctx *z, const uint8_t *src, size_t n, uint8_t *out,
                           size_t cap, size_t *size_out)
{
    unsigned long long size = ZSTD_getFrameContentSize(src, n);
    if (size == ZSTD_CONTENTSIZE_ERROR || ZSTD_findFrameCompressedSize(src, n) != n) {
        return -NG_EDECOMPRESS; /* not one frame and nothing after it */
    }
    if (size != ZSTD_CONTENTSIZE_UNKNOWN) {
        if (size > cap) {
            return -NG_ETOOBIG;
        }
        size_t got = ZSTD_decompressDCtx(z->dctx, out, (size_t)size, src, n);
        if (ZSTD_isError(got) || got != size) {
            return -NG_EDECOMPRESS;
        }
        *size_out = (size_t)size;
        return 0;
    }
    ZSTD_DCtx_reset(z->dctx, ZSTD_reset_session_only);
    ZSTD_inBuffer in = {.src = src, .size = n, .pos = 0};
    ZSTD_outBuffer o = {.dst = out, .size = cap, .pos = 0};
    for (;;) {
        size_t in_was = in.pos;
        size_t out_was = o.pos;
        size_t r = ZSTD_decompressStream(z->dctx, &o, &in);
        if (ZSTD_isError(r)) {
            return -NG_EDECOMPRESS;
        }
        if (r == 0) {
            break; /* the frame is complete */
        }
        if (in.pos == in_was && o.pos == out_was) {
            return o.pos == o.size ? -NG_ETOOBIG : -NG_EDECOMPRESS;
        }
    }
    if (in.pos != in.size) {
        return -NG_EDECOMPRESS;
    }
    *size_out = o.pos;
    return 0;
}

/* One gzip member (Kafka's gzip is java.util.zip's GZIPOutputStream). */
static int gzip_decompress(struct batch_zctx *z, const uint8_t *src, size_t n, uint8_t *out,
                           size_t cap, size_t *size_out)
{
    z_stream *gz = z->gz;
    if (inflateReset(gz) != Z_OK || n > UINT_MAX) {
        return -NG_EDECOMPRESS;
    }
    static_assert(BATCH_BYTES_LIMIT <= UINT_MAX, "a section and its output fit a uInt");
    gz->next_in = (Bytef *)src;
    gz->avail_in = (uInt)n;
    gz->next_out = out;
    gz->avail_out = (uInt)cap;
    for (;;) {
        uInt in_was = gz->avail_in;
        uInt out_was = gz->avail_out;
        int rc = inflate(gz, Z_FINISH);
        if (rc == Z_STREAM_END) {
            break;
        }
        if (rc != Z_OK && rc != Z_BUF_ERROR) {
            return -NG_EDECOMPRESS;
        }
        if (gz->avail_in == in_was && gz->avail_out == out_was) {
            return gz->avail_out == 0 ? -NG_ETOOBIG : -NG_EDECOMPRESS;
        }
    }
    if (gz->avail_in != 0) {
        return -NG_EDECOMPRESS; /* a second member or trailing bytes */
    }
    *size_out = cap - gz->avail_out;
    return 0;
}

/* One LZ4 frame (Kafka's lz4 for magic 2: the standard frame format). */
static int lz4_decompress(struct batch_zctx *z, const uint8_t *src, size_t n, uint8_t *out,
                          size_t cap, size_t *size_out)
{
    LZ4F_resetDecompressionContext(z->lz4);
    size_t in_pos = 0;
    size_t out_pos = 0;
    for (;;) {
        size_t dst = cap - out_pos;
        size_t got = n - in_pos;
        size_t r = LZ4F_decompress(z->lz4, out + out_pos, &dst, src + in_pos, &got, NULL);
        if (LZ4F_isError(r)) {
            return -NG_EDECOMPRESS;
        }
        in_pos += got;
        out_pos += dst;
        if (r == 0) {
            break; /* the frame is complete */
        }
        if (got == 0 && dst == 0) {
            return out_pos == cap ? -NG_ETOOBIG : -NG_EDECOMPRESS;
        }
    }
    if (in_pos != n) {
        return -NG_EDECOMPRESS;
    }
    *size_out = out_pos;
    return 0;
}

/* One raw snappy block appended at out[*pos..cap). */
static int snappy_block(const uint8_t *src, size_t n, uint8_t *out, size_t cap, size_t *pos)
{
    size_t size = 0;
    if (snappy_uncompressed_length((const char *)src, n, &size) != SNAPPY_OK) {
        return -NG_EDECOMPRESS;
    }
    if (size > cap - *pos) {
        return -NG_ETOOBIG;
    }
    size_t got = size;
    if (snappy_uncompress((const char *)src, n, (char *)out + *pos, &got) != SNAPPY_OK ||
        got != size) {
        return -NG_EDECOMPRESS;
    }
    *pos += size;
    return 0;
}

/* Kafka's Java client frames snappy as xerial's snappy-java stream does:
 * 8 magic bytes, version and minimum compatible version (i32 each), then
 * blocks of an i32 length and a raw block. Other clients send one raw
 * block; Kafka takes both, and so does nagare. */
static const uint8_t xerial_magic[8] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0};
#define XERIAL_HEADER_BYTES 16

static int snappy_decompress(const uint8_t *src, size_t n, uint8_t *out, size_t cap,
                             size_t *size_out)
{
    size_t pos = 0;
    if (n < XERIAL_HEADER_BYTES || memcmp(src, xerial_magic, sizeof(xerial_magic)) != 0) {
        int rc = snappy_block(src, n, out, cap, &pos);
        *size_out = pos;
        return rc;
    }
    struct rd r = rd_make(src + XERIAL_HEADER_BYTES, n - XERIAL_HEADER_BYTES);
    while (rd_left(&r) > 0) {
        uint32_t len = rd_be32(&r);
        if (r.err != 0 || len > rd_left(&r)) {
            return -NG_EDECOMPRESS;
        }
        int rc = snappy_block(rd_take(&r, len), len, out, cap, &pos);
        if (rc != 0) {
            return rc;
        }
    }
    *size_out = pos;
    return 0;
}

int batch_decompress(struct batch_zctx *z, enum batch_codec codec, const uint8_t *src, size_t n,
                     uint8_t *out, size_t out_cap, size_t *size_out)
{
    ASSERT(z != NULL && src != NULL && out != NULL && size_out != NULL);
    size_t cap = size_min(out_cap, BATCH_BYTES_LIMIT);
    switch (codec) {
    case BATCH_CODEC_GZIP:
        return gzip_decompress(z, src, n, out, cap, size_out);
    case BATCH_CODEC_SNAPPY:
        return snappy_decompress(src, n, out, cap, size_out);
    case BATCH_CODEC_LZ4:
        return lz4_decompress(z, src, n, out, cap, size_out);
    case BATCH_CODEC_ZSTD:
        return zstd_decompress(z, src, n, out, cap, size_out);
    case BATCH_CODEC_NONE:
        break;
    }
    return -NG_EBADCODEC;
}

/* Validates the batch and points br->records at its records section,
 * decompressing it into out when needed. */
static int reader_setup(struct batch_reader *br, const uint8_t *batch, size_t len,
                        size_t batch_bytes_max, struct batch_zctx *z, uint8_t *out, size_t out_cap)
{
    int rc = batch_validate(batch, len, batch_bytes_max, &br->hdr);
    if (rc != 0) {
        return rc;
    }
    const uint8_t *src = batch + BATCH_HEADER_BYTES;
    size_t n = batch_bytes(&br->hdr) - BATCH_HEADER_BYTES;
    if (batch_codec(&br->hdr) == BATCH_CODEC_NONE) {
        br->records = rd_make(src, n);
        return 0;
    }
    if (z == NULL || z->dctx == NULL || out == NULL) {
        return -NG_EBADCODEC; /* this caller reads uncompressed batches only */
    }
    size_t size = 0;
    rc = batch_decompress(z, batch_codec(&br->hdr), src, n, out, out_cap, &size);
    if (rc != 0) {
        return rc;
    }
    if ((size_t)br->hdr.record_count * BATCH_RECORD_BYTES_MIN > size) {
        return -NG_EBADCOUNT;
    }
    br->records = rd_make(out, size);
    return 0;
}

int batch_reader_open(struct batch_reader *br, const uint8_t *batch, size_t len,
                      size_t batch_bytes_max, struct batch_zctx *z, uint8_t *out, size_t out_cap)
{
    ASSERT(br != NULL);
    *br = (struct batch_reader){0};
    int rc = reader_setup(br, batch, len, batch_bytes_max, z, out, out_cap);
    if (rc != 0) {
        rd_fail(&br->records, rc); /* batch_reader_next() repeats it */
    }
    return rc;
}

/* Reads a varint length of -1 (null, when allowed) or 0..left, and takes
 * that many bytes. Sets r's error to -NG_EBADLEN when it is out of range. */
static const uint8_t *rd_field(struct rd *r, bool null_ok, int32_t *len_out)
{
    int64_t len = rd_varint(r);
    *len_out = -1;
    if (r->err != 0) {
        return NULL;
    }
    if (len < (null_ok ? -1 : 0) || len > (int64_t)rd_left(r) || len > INT32_MAX) {
        rd_fail(r, -NG_EBADLEN);
        return NULL;
    }
    *len_out = (int32_t)len;
    return len < 0 ? NULL : rd_take(r, (size_t)len);
}

/* Decodes one record header from r; errors are left in r->err. */
static void rd_header(struct rd *r, struct batch_kv *kv)
{
    kv->key = rd_field(r, false, &kv->key_len);
    kv->value = rd_field(r, true, &kv->value_len);
}

/* Reads the header count and walks the headers, so that a record that
 * passes has exactly header_count well-formed headers filling its body. */
static void rd_headers(struct rd *body, struct batch_record *rec)
{
    int64_t count = rd_varint(body);
    if (body->err == 0 &&
        (count < 0 || count > (int64_t)(rd_left(body) / RECORD_HEADER_BYTES_MIN))) {
        rd_fail(body, -NG_EBADCOUNT);
    }
    if (body->err != 0) {
        return;
    }
    rec->header_count = (uint32_t)count;
    rec->headers = rd_make(body->ptr + body->pos, rd_left(body));
    struct batch_kv kv;
    for (int64_t i = 0; i < count && body->err == 0; i++) {
        rd_header(body, &kv);
    }
    if (body->err == 0 && rd_left(body) != 0) {
        rd_fail(body, -NG_EBADLEN); /* bytes after the last header */
    }
}

/* Decodes a record body (everything after its length) into *rec. */
static int record_decode(struct rd *body, const struct batch_header *h, int32_t index,
                         struct batch_record *rec)
{
    uint8_t attributes = rd_u8(body);
    int64_t ts_delta = rd_varint(body);
    int64_t offset_delta = rd_varint(body);
    if (body->err == 0 && attributes != 0) {
        rd_fail(body, -NG_EBADARG);
    }
    if (body->err == 0 && offset_delta != index) {
        rd_fail(body, -NG_EBADDELTA);
    }
    if (body->err == 0 &&
        __builtin_add_overflow(h->timestamp_first_ms, ts_delta, &rec->timestamp_ms)) {
        rd_fail(body, -NG_EBADARG);
    }
    rec->key = rd_field(body, true, &rec->key_len);
    rec->value = rd_field(body, true, &rec->value_len);
    rd_headers(body, rec);
    if (body->err != 0) {
        return body->err;
    }
    /* No overflow: the header check bounded offset_base + last delta. */
    rec->offset = h->offset_base + index;
    return 0;
}

int batch_reader_next(struct batch_reader *br, struct batch_record *rec)
{
    ASSERT(br != NULL && rec != NULL);
    struct rd *r = &br->records;
    if (r->err != 0) {
        return r->err; /* a failed reader stays failed */
    }
    if (br->index == br->hdr.record_count || rd_left(r) == 0) {
        if (br->index != br->hdr.record_count || rd_left(r) != 0) {
            rd_fail(r, -NG_EBADCOUNT);
            return r->err;
        }
        return 0;
    }
    int64_t len = rd_varint(r);
    if (r->err == 0 && (len < RECORD_BODY_BYTES_MIN || len > (int64_t)rd_left(r))) {
        rd_fail(r, -NG_EBADLEN);
    }
    if (r->err != 0) {
        return r->err;
    }
    struct rd body = rd_make(rd_take(r, (size_t)len), (size_t)len);
    *rec = (struct batch_record){0};
    int rc = record_decode(&body, &br->hdr, br->index, rec);
    if (rc != 0) {
        rd_fail(r, rc);
        return rc;
    }
    br->index++;
    return 1;
}

int batch_record_next_header(struct batch_record *rec, struct batch_kv *kv)
{
    ASSERT(rec != NULL && kv != NULL);
    struct rd *r = &rec->headers;
    if (r->err != 0) {
        return r->err;
    }
    if (rd_left(r) == 0) {
        return 0;
    }
    rd_header(r, kv);
    return r->err != 0 ? r->err : 1;
}

int batch_verify_records(const uint8_t *batch, size_t len, size_t batch_bytes_max,
                         struct batch_zctx *z, uint8_t *out, size_t out_cap,
                         struct batch_header *hdr_out)
{
    struct batch_reader br;
    int rc = batch_reader_open(&br, batch, len, batch_bytes_max, z, out, out_cap);
    if (rc != 0) {
        return rc;
    }
    /* batch_reader_next() already walks and checks every record header. */
    struct batch_record rec;
    do {
        rc = batch_reader_next(&br, &rec);
    } while (rc == 1);
    if (rc == 0) {
        *hdr_out = br.hdr;
    }
    return rc;
}
