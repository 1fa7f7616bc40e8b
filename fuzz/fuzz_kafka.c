/*
 * fuzz/fuzz_kafka.c — libFuzzer target for the Kafka codec
 * (net/kafka/codec.h): every request and response nagare defines, at every
 * version it defines.
 *
 * Input: three selector bytes, then the bytes. Byte 0 picks the api,
 * kafka_apis[b0 % KAFKA_API_COUNT]; byte 1 its version, versions.min +
 * b1 % (the range's size); byte 2, bit 0: the response, else the request;
 * bit 1: the bytes are a whole request frame (after its length prefix),
 * read as the listener does, header first, whatever api and version it
 * names (bytes 0 and 1 then unused). The bytes are copied to a heap block
 * of exactly their size, so ASan sees any read past the end, and decoded
 * with an arena of exactly kw_arena_bytes() of them: running out of it is
 * a bug (the bound of net/kafka/wire.h broken), and aborts.
 *
 * Every input that decodes is encoded again from what was decoded, and
 * that must decode to the same message (tests/kafka_support.h's deep
 * comparison): the decoder never accepts what the encoder cannot write
 * back, and the encoder measures what it writes.
 *
 * Seeds: fuzz/corpus/kafka/ (each message at both ends of its range, made
 * by tests/test_kafka_codec.c; NAGARE_KAFKA_SEEDS_OUT=dir writes them).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/kafka/codec.h"
#include "tests/kafka_support.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_SELECT_RESPONSE 0x01u
#define FUZZ_SELECT_FRAME 0x02u

/* Room for any message struct (checked). */
#define FUZZ_MSG_BYTES 1024
static _Alignas(16) uint8_t first[FUZZ_MSG_BYTES];
static _Alignas(16) uint8_t again[FUZZ_MSG_BYTES];

static int decode(const struct kafka_msg *msg, int16_t version, const uint8_t *p, size_t n,
                  void *out, void **arena_out)
{
    size_t cap = kw_arena_bytes(n);
    void *buf = malloc(cap > 0 ? cap : 1);
    ASSERT(buf != NULL);
    struct kw_arena a;
    kw_arena_init(&a, buf, cap);
    struct rd r = rd_make(p, n);
    int rc = kafka_decode(msg, &r, version, &a, out);
    ASSERT(rc != -NG_ETOOBIG || cap == KW_ARENA_BYTES_MAX);
    *arena_out = buf;
    return rc;
}

/* Encodes the decoded message and decodes that again: the same message. */
static void recode(const struct kafka_msg *msg, int16_t version)
{
    struct kw_wr meas = kw_wr_measure();
    ASSERT(kafka_encode(msg, &meas, version, first) == 0);
    ASSERT(meas.hole_count == 0);
    uint8_t *buf = malloc(meas.w.pos > 0 ? meas.w.pos : 1);
    ASSERT(buf != NULL);
    struct kw_wr w = kw_wr_make(buf, meas.w.pos, NULL, 0);
    ASSERT(kafka_encode(msg, &w, version, first) == 0);
    ASSERT(w.w.pos == meas.w.pos);
    void *arena;
    ASSERT(decode(msg, version, buf, w.w.pos, again, &arena) == 0);
    ASSERT(ks_equal(msg, first, again, NULL, 0));
    free(arena);
    free(buf);
}

static void one(const struct kafka_msg *msg, int16_t version, const uint8_t *p, size_t n)
{
    ASSERT(msg->body->size <= FUZZ_MSG_BYTES);
    uint8_t *copy = malloc(n > 0 ? n : 1);
    ASSERT(copy != NULL);
    memcpy(copy, p, n);
    void *arena;
    if (decode(msg, version, copy, n, first, &arena) == 0) {
        recode(msg, version);
    }
    free(arena);
    free(copy);
}

/* A request frame as the listener reads it: header, then body. */
static void frame(const uint8_t *p, size_t n)
{
    uint8_t *copy = malloc(n > 0 ? n : 1);
    ASSERT(copy != NULL);
    memcpy(copy, p, n);
    struct rd r = rd_make(copy, n);
    struct kafka_req_header h;
    const struct kafka_api *api;
    if (kafka_req_header_decode(&r, &h, &api) == 0) {
        one(api->request, h.api_version, copy + r.pos, n - r.pos);
    }
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3) {
        return 0;
    }
    if (data[2] & FUZZ_SELECT_FRAME) {
        frame(data + 3, size - 3);
        return 0;
    }
    const struct kafka_api *api = &kafka_apis[data[0] % KAFKA_API_COUNT];
    int span = api->versions.max - api->versions.min + 1;
    int16_t version = (int16_t)(api->versions.min + data[1] % span);
    const struct kafka_msg *msg = (data[2] & FUZZ_SELECT_RESPONSE) ? api->response : api->request;
    one(msg, version, data + 3, size - 3);
    return 0;
}
