/*
 * storage/batch.h — the record batch: the unit of storage and of the wire.
 *
 * A batch is Kafka's RecordBatch v2 byte for byte (format 2, magic 2): a
 * 61-byte big-endian header followed by its records, laid out byte by byte
 * in docs/storage-format.md. The checksum is CRC-32C over the attributes and
 * everything after them, so the broker can write the base offset (bytes
 * 0-7) and the partition leader epoch (bytes 12-15) in place without
 * recomputing it. The records section may be compressed (gzip,
 * snappy, lz4 or zstd, as Kafka's clients write them). A batch that passed
 * batch_validate() is structurally sound and its checksum matches;
 * batch_reader adds the per-record checks.
 *
 * This module is the format library the client links too: it depends on
 * base/, ISA-L (CRC-32C) and the codec libraries only. Every function here is reentrant; a
 * struct batch_zctx belongs to one thread at a time.
 */
#ifndef NAGARE_STORAGE_BATCH_H
#define NAGARE_STORAGE_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/assert.h"
#include "base/bytes.h"

/* Byte offsets of the header fields: Kafka's RecordBatch v2 (magic 2). */
enum {
    BATCH_OFF_OFFSET_BASE = 0,        /* i64 */
    BATCH_OFF_LENGTH = 8,             /* i32: bytes after this field */
    BATCH_OFF_LEADER_EPOCH = 12,      /* i32: partition leader epoch */
    BATCH_OFF_MAGIC = 16,             /* i8: 2 */
    BATCH_OFF_CHECKSUM = 17,          /* u32: CRC-32C of bytes [21, end) */
    BATCH_OFF_ATTRIBUTES = 21,        /* i16 */
    BATCH_OFF_LAST_OFFSET_DELTA = 23, /* i32 */
    BATCH_OFF_TIMESTAMP_FIRST = 27,   /* i64 ms */
    BATCH_OFF_TIMESTAMP_MAX = 35,     /* i64 ms */
    BATCH_OFF_PRODUCER_ID = 43,       /* i64, -1: none */
    BATCH_OFF_PRODUCER_EPOCH = 51,    /* i16 */
    BATCH_OFF_SEQUENCE_BASE = 53,     /* i32, -1: none */
    BATCH_OFF_RECORD_COUNT = 57,      /* i32 */
    BATCH_HEADER_BYTES = 61,
};

/* base offset + length: the bytes not counted by the length field. */
#define BATCH_PREFIX_BYTES 12
#define BATCH_CHECKSUM_FROM BATCH_OFF_ATTRIBUTES
#define BATCH_MAGIC 2

/* attributes (Kafka's) */
#define BATCH_ATTR_CODEC_MASK 0x0007u
#define BATCH_ATTR_LOG_APPEND_TIME 0x0008u /* timestamps set by the broker */
#define BATCH_ATTR_TRANSACTIONAL 0x0010u   /* refused: no transactions yet */
#define BATCH_ATTR_CONTROL 0x0020u         /* refused: no transactions yet */
#define BATCH_ATTR_KNOWN_MASK 0x000fu      /* the bits a batch may have set */

enum batch_codec {
    BATCH_CODEC_NONE = 0,
    BATCH_CODEC_GZIP = 1,
    BATCH_CODEC_SNAPPY = 2,
    BATCH_CODEC_LZ4 = 3,
    BATCH_CODEC_ZSTD = 4,
};
#define BATCH_CODEC_LAST BATCH_CODEC_ZSTD

/* The smallest record: length, attributes, ts delta, offset delta, key len,
 * value len, header count, one byte each. Bounds record counts by bytes. */
#define BATCH_RECORD_BYTES_MIN 7

/* Largest batch the format allows at all; configured maxima sit below it. */
#define BATCH_BYTES_LIMIT (256u * 1024 * 1024)

struct batch_header {
    int64_t offset_base;
    int32_t length;       /* batch bytes = BATCH_PREFIX_BYTES + length */
    int32_t leader_epoch; /* partition leader epoch; the broker's to set */
    uint8_t magic;
    uint32_t checksum; /* CRC-32C */
    uint16_t attributes;
    int32_t last_offset_delta;
    int64_t timestamp_first_ms;
    int64_t timestamp_max_ms;
    int64_t producer_id;
    int16_t producer_epoch;
    int32_t sequence_base;
    int32_t record_count;
};

static inline size_t batch_bytes(const struct batch_header *h)
{
    return BATCH_PREFIX_BYTES + (size_t)h->length;
}

static inline int64_t batch_offset_last(const struct batch_header *h)
{
    return h->offset_base + h->last_offset_delta;
}

static inline enum batch_codec batch_codec(const struct batch_header *h)
{
    return (enum batch_codec)(h->attributes & BATCH_ATTR_CODEC_MASK);
}

/* Decodes the fixed header from buf[0..len) and checks it on its own: len >=
 * BATCH_HEADER_BYTES, magic 2, not transactional nor control, known
 * attribute bits and codec, length
 * >= BATCH_HEADER_BYTES - BATCH_PREFIX_BYTES and batch bytes <=
 * batch_bytes_max, record_count >= 1 and no more than the records section can
 * hold (BATCH_RECORD_BYTES_MIN each, for uncompressed batches),
 * last_offset_delta == record_count - 1, timestamp_max >= timestamp_first,
 * offset_base >= 0 and batch_offset_last() <= INT64_MAX (so it cannot
 * overflow). Does not need the whole batch and does not check the checksum.
 * A batch_bytes_max above BATCH_BYTES_LIMIT acts as BATCH_BYTES_LIMIT.
 * Returns 0, -NG_ETRUNCATED (len too short), -NG_EBADVERSION (magic not 2),
 * -NG_ETRANSACTIONAL (transactional or control batch),
 * -NG_EBADCODEC (codec or any attribute bit unknown), -NG_EBADLEN (length
 * below a header), -NG_ETOOBIG (over batch_bytes_max), -NG_EBADCOUNT (record
 * count or last offset delta) or -NG_EBADARG (timestamps or offset base).
 * On any return *out holds the raw fields read, if len allowed reading them. */
MUST_USE int batch_header_decode(const uint8_t *buf, size_t len, size_t batch_bytes_max,
                                 struct batch_header *out);

/* batch_header_decode(), then: the whole batch lies within buf[0..len)
 * (else -NG_ETRUNCATED) and its checksum matches (else -NG_ECHECKSUM).
 * Costs one CRC-32C pass, no record decoding: the storage hot path uses it
 * on append, read-back and recovery. Order of the checks: header length,
 * length field, whole batch present, checksum, then the other header fields;
 * so a corrupted byte anywhere in [BATCH_OFF_CHECKSUM, end) reads as
 * -NG_ECHECKSUM, never as whatever field it happens to break (a flipped
 * magic byte, outside the CRC, reads as -NG_EBADVERSION). */
MUST_USE int batch_validate(const uint8_t *buf, size_t len, size_t batch_bytes_max,
                            struct batch_header *out);

/* Writes the base offset into a batch in place. The checksum does not cover
 * it, so the batch stays valid. */
static inline void batch_set_offset_base(uint8_t *batch, int64_t offset_base)
{
    put_be64(batch + BATCH_OFF_OFFSET_BASE, (uint64_t)offset_base);
}

/* Writes the partition leader epoch into a batch in place, as the broker
 * does at append (with the base offset). Outside the checksum too. */
static inline void batch_set_leader_epoch(uint8_t *batch, int32_t epoch)
{
    put_be32(batch + BATCH_OFF_LEADER_EPOCH, (uint32_t)epoch);
}

/* CRC-32C (Castagnoli, reflected, initial and final value 0xffffffff, so
 * crc32c("123456789") = 0xe3069283) of p[0..n): what the batch checksum is. */
uint32_t batch_crc32c(const void *p, size_t n);

/* Computes the checksum field's value for a complete batch of `bytes`:
 * CRC-32C of [BATCH_CHECKSUM_FROM, bytes). */
uint32_t batch_checksum(const uint8_t *batch, size_t bytes);

/* Recomputes the checksum of a complete batch of `bytes` and writes it in
 * place: for a caller that changed a covered field (a producer stamping
 * its epoch and sequence). */
void batch_seal(uint8_t *batch, size_t bytes);

/* ---- compression context ---- */

/* Codec contexts and the builder's scratch buffer, made once and reused so
 * the hot path never allocates. */
struct batch_zctx {
    void *cctx;       /* ZSTD_CCtx */
    void *dctx;       /* ZSTD_DCtx */
    void *gz;         /* zlib z_stream, inflating gzip */
    void *lz4;        /* LZ4F_dctx */
    uint8_t *scratch; /* batch_bytes_max bytes, for the builder */
    size_t scratch_bytes;
    int level;
};

/* Allocates the contexts and a scratch buffer for batches of up to
 * batch_bytes_max (capped at BATCH_BYTES_LIMIT). Preconditions: batch_bytes_max
 * >= BATCH_HEADER_BYTES, level a zstd level (0: zstd's default). Returns 0 or
 * -ENOMEM (nothing left allocated). fini frees and zeroes z; calling it on a
 * zeroed z is harmless. */
MUST_USE int batch_zctx_init(struct batch_zctx *z, size_t batch_bytes_max, int level);
void batch_zctx_fini(struct batch_zctx *z);

/* ---- record headers ---- */

struct batch_kv {
    const uint8_t *key;
    int32_t key_len; /* >= 0: header keys are never null */
    const uint8_t *value;
    int32_t value_len; /* -1: null */
};

/* ---- builder ---- */

/* Builds one batch into a caller-owned buffer. Records are encoded as they
 * are added; batch_builder_finish() back-patches length, counts, timestamps
 * and checksum, compressing the records section first when asked (and
 * keeping it uncompressed when zstd would not make it smaller). */
struct batch_builder {
    uint8_t *buf;
    size_t cap;
    size_t pos; /* end of the records written so far */
    enum batch_codec codec;
    int32_t record_count;
    int64_t timestamp_first_ms;
    int64_t timestamp_max_ms;
    int64_t producer_id;
    int16_t producer_epoch;
    int32_t sequence_base;
};

/* Starts a batch in buf[0..cap). Preconditions: cap >= BATCH_HEADER_BYTES,
 * codec BATCH_CODEC_NONE or BATCH_CODEC_ZSTD (the one codec the builder
 * writes; the reader takes all four). A cap above BATCH_BYTES_LIMIT is used as BATCH_BYTES_LIMIT.
 * producer_id -1 / sequence_base -1 for a non-idempotent producer.
 * buf is the caller's and must outlive the builder. */
void batch_builder_init(struct batch_builder *b, uint8_t *buf, size_t cap, enum batch_codec codec,
                        int64_t producer_id, int16_t producer_epoch, int32_t sequence_base);

/* Appends one record. key_len / value_len -1 mean null (key may then be
 * NULL). Returns 0, or -NG_ENOSPACE when the record does not fit in the
 * buffer (the builder is unchanged, so the caller can finish this batch and
 * start another), or -NG_EBADARG for lengths < -1, a header key_len < 0, or
 * a timestamp whose distance from the batch's first does not fit an i64.
 * On any error the builder and its buffer are unchanged. A record that gets
 * -NG_ENOSPACE from an empty builder will never fit: the caller must refuse
 * it rather than start another batch. The first record's timestamp becomes
 * timestamp_first; the largest becomes timestamp_max. */
MUST_USE int batch_builder_add(struct batch_builder *b, int64_t timestamp_ms, const void *key,
                               int32_t key_len, const void *value, int32_t value_len,
                               const struct batch_kv *headers, uint32_t header_count);

/* Bytes the batch would take if finished uncompressed now. */
static inline size_t batch_builder_bytes(const struct batch_builder *b) { return b->pos; }

/* Finishes the batch: base offset 0, every header field, the checksum.
 * z is needed for BATCH_CODEC_ZSTD (may be NULL otherwise). On success
 * *bytes_out is the batch's size in buf. Returns 0, -NG_EBADCOUNT for an
 * empty batch, or -NG_ENOSPACE when z's scratch is smaller than the records
 * section. The builder is spent after a successful finish. */
MUST_USE int batch_builder_finish(struct batch_builder *b, struct batch_zctx *z, size_t *bytes_out);

/* ---- reader ---- */

struct batch_record {
    int64_t offset;
    int64_t timestamp_ms;
    const uint8_t *key;
    int32_t key_len; /* -1: null */
    const uint8_t *value;
    int32_t value_len; /* -1: null */
    uint32_t header_count;
    struct rd headers; /* cursor over the encoded headers */
};

/* Iterates the records of one validated batch. Pointers in a record point
 * into the batch or into the caller's decompression buffer and are valid as
 * long as both are. */
struct batch_reader {
    struct batch_header hdr;
    struct rd records; /* over the (decompressed) records section */
    int32_t index;     /* records returned so far */
};

/* Decompresses a records section src[0..n) of codec (not NONE) into
 * out[0..out_cap), as Kafka's clients write them: gzip, one gzip member
 * (RFC 1952); snappy, Kafka's xerial framing (the 16-byte header "\x82SNAPPY\0",
 * version, compatible version, then blocks each a big-endian i32 length
 * and a raw snappy block) or one raw snappy block; lz4, one LZ4 frame; zstd,
 * one zstd frame, with or without its content size (without it, a bounded
 * streaming decode). Nothing may follow the member, blocks or frame. Never
 * writes past out_cap (capped at BATCH_BYTES_LIMIT): an expansion past it is
 * -NG_ETOOBIG, found before or while decompressing. Returns 0 with the size
 * in *size_out, -NG_ETOOBIG, -NG_EDECOMPRESS (bytes that do not decompress,
 * or trailing bytes), or -NG_EBADCODEC (codec not one of the four). */
MUST_USE int batch_decompress(struct batch_zctx *z, enum batch_codec codec, const uint8_t *src,
                              size_t n, uint8_t *out, size_t out_cap, size_t *size_out);

/* batch_validate()s the batch, then readies record iteration. A compressed
 * records section is decompressed into out[0..out_cap) using z
 * (batch_decompress(): -NG_ETOOBIG, -NG_EDECOMPRESS), and must hold at
 * least BATCH_RECORD_BYTES_MIN bytes per record (else -NG_EBADCOUNT). z and out may be NULL for a caller that takes only
 * uncompressed batches: a compressed one then gets -NG_EBADCODEC.
 * Returns 0 or the errors of batch_validate(), -NG_ETOOBIG, -NG_EDECOMPRESS,
 * -NG_EBADCOUNT, -NG_EBADCODEC. After an error, batch_reader_next() returns
 * it again. */
MUST_USE int batch_reader_open(struct batch_reader *br, const uint8_t *batch, size_t len,
                               size_t batch_bytes_max, struct batch_zctx *z, uint8_t *out,
                               size_t out_cap);

/* Decodes the next record into *rec. Returns 1 with a record, 0 after the
 * last one (only when exactly record_count records used every byte of the
 * records section), or a negative error: -NG_ETRUNCATED / -NG_EBADVARINT
 * (bad encoding), -NG_EBADLEN (a length past the record or < -1, a null
 * header key, or bytes left in the record after its last header),
 * -NG_EBADDELTA (offset delta not equal to the record's index),
 * -NG_EBADCOUNT (records and record_count disagree, or a header count < 0 or
 * more than the record's bytes can hold), -NG_EBADARG (record attributes not
 * 0, or first timestamp + delta overflows). It walks the record's headers, so
 * a record returned has exactly header_count well-formed headers. Errors are
 * sticky: later calls return the same error; 0 is returned again after the
 * end. */
MUST_USE int batch_reader_next(struct batch_reader *br, struct batch_record *rec);

/* Decodes the next header of rec. Returns 1 with a header, 0 when all
 * header_count were read, or -NG_ETRUNCATED / -NG_EBADLEN. Consumes
 * rec->headers: copy the record first to iterate its headers twice. */
MUST_USE int batch_record_next_header(struct batch_record *rec, struct batch_kv *kv);

/* Decodes every record and header of a batch and checks them: what the broker
 * runs on a produced batch before writing anything. out/out_cap as for
 * batch_reader_open(). Returns 0 with the batch's header in *hdr_out, or
 * the first error found. */
MUST_USE int batch_verify_records(const uint8_t *batch, size_t len, size_t batch_bytes_max,
                                  struct batch_zctx *z, uint8_t *out, size_t out_cap,
                                  struct batch_header *hdr_out);

#endif
