/*
 * fuzz/fuzz_proto.c — libFuzzer target for the wire codec (net/proto.h).
 *
 * Input: one selector byte, then the bytes of a frame after its length
 * prefix. Selector bit 7 clear: the bytes are a request (header and body),
 * decoded as the broker does, whatever api key they name. Bit 7 set: they
 * are a response to api (selector & 0x7f) % PROTO_API_COUNT at version
 * (selector & 0x7f) / PROTO_API_COUNT, decoded as the client does (an
 * unassigned key or a version past the api's decodes nothing). The frame is copied to a heap block of exactly its size, so
 * ASan sees any read past the end.
 *
 * Every input that decodes is re-encoded from what was decoded, through the
 * matching encoder, and must come out byte for byte as it went in (prefix
 * included): decoders and encoders agree on every field, and a decoder
 * never accepts a body an encoder could not have written. The arms come
 * from net/proto.def: proto_recode() (net/proto_recode.h) is generated
 * from it, with tests/proto_recode_hand.c for the messages written by hand.
 * The frame-length helpers see
 * the first four bytes.
 *
 * Seeds: fuzz/corpus/proto/ (one request and one response of every api).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/proto_recode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_SELECT_RESPONSE 0x80u

/* Decodes a request; on success re-encodes it into w. Returns the decode
 * error, or 0 and what the encoder returned in *enc_rc. */
static int recode_request(const uint8_t *in, size_t n, struct wr *w, int *enc_rc)
{
    struct rd r = rd_make(in, n);
    struct proto_req_header h;
    int rc = proto_req_header_decode(&r, &h);
    if (rc != 0) {
        return rc;
    }
    return proto_recode(h.api_key, h.api_version, false, h.correlation_id, h.client_id, &r, w,
                        enc_rc);
}

static int recode_response(uint16_t api, uint16_t version, const uint8_t *in, size_t n,
                           struct wr *w, int *enc_rc)
{
    struct rd r = rd_make(in, n);
    struct proto_resp_header h;
    int rc = proto_resp_header_decode(&r, &h);
    if (rc != 0) {
        return rc;
    }
    if (h.err != 0) {
        *enc_rc = proto_resp_error_encode(w, h.correlation_id, h.err);
        return 0;
    }
    rc = proto_api_check(api, version); /* no layout to decode against */
    if (rc != 0) {
        return rc;
    }
    return proto_recode(api, version, true, h.correlation_id, PROTO_STR_NULL, &r, w, enc_rc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    uint8_t sel = data[0];
    size_t n = size - 1;
    uint8_t *in = malloc(n + 1); /* +1: never malloc(0) */
    uint8_t *out = malloc(n + PROTO_FRAME_PREFIX_BYTES);
    ASSERT(in != NULL && out != NULL);
    memcpy(in, data + 1, n);

    if (n >= PROTO_FRAME_PREFIX_BYTES) {
        uint32_t len;
        (void)!proto_request_frame_len(in, PROTO_FRAME_BYTES_DEFAULT, &len);
        (void)!proto_response_frame_len(in, PROTO_FRAME_BYTES_MIN, &len);
    }

    struct wr w = wr_make(out, n + PROTO_FRAME_PREFIX_BYTES);
    int enc_rc = -1;
    int rc = (sel & FUZZ_SELECT_RESPONSE)
                 ? recode_response((uint16_t)((sel & 0x7fu) % PROTO_API_COUNT),
                                   (uint16_t)((sel & 0x7fu) / PROTO_API_COUNT), in, n, &w, &enc_rc)
                 : recode_request(in, n, &w, &enc_rc);
    if (rc == 0) {
        /* What decoded must encode, to the same bytes. */
        ASSERT(enc_rc == 0);
        ASSERT(w.pos == n + PROTO_FRAME_PREFIX_BYTES);
        ASSERT(get_be32(out) == n);
        ASSERT(memcmp(out + PROTO_FRAME_PREFIX_BYTES, in, n) == 0);
    } else {
        ASSERT(rc < 0);
    }
    free(in);
    free(out);
    return 0;
}
