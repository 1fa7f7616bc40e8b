/*
 * fuzz/fuzz_codec.c — libFuzzer target for the four decompressors of
 * batch_decompress() (gzip, snappy raw and xerial-framed, lz4 frames, zstd
 * frames with and without a content size).
 *
 * Input: byte 0 picks the codec (mod 5: 0 must be refused), byte 1 the
 * output buffer's size (256 << (b % 13) bytes, 256 B to 1 MiB), the rest is
 * a records section. The output buffer and the input are heap blocks of
 * exactly their sizes, so ASan sees any access past either. A success must
 * fit the buffer, and decompressing again into a buffer of exactly the size
 * found must give the same bytes; one byte less must be -NG_ETOOBIG.
 *
 * Seeds: fuzz/corpus/codec/ (a small section in each codec and variant).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storage/batch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_OUT_MAX (1u << 20)

static struct batch_zctx zctx;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (zctx.dctx == NULL) {
        ASSERT(batch_zctx_init(&zctx, BATCH_HEADER_BYTES, 1) == 0);
    }
    if (size < 2) {
        return 0;
    }
    enum batch_codec codec = (enum batch_codec)(data[0] % (BATCH_CODEC_LAST + 1));
    size_t cap = (size_t)256 << (data[1] % 13);
    ASSERT(cap <= FUZZ_OUT_MAX);
    size_t n = size - 2;
    uint8_t *src = malloc(n > 0 ? n : 1);
    uint8_t *out = malloc(cap);
    ASSERT(src != NULL && out != NULL);
    memcpy(src, data + 2, n);
    size_t got = SIZE_MAX;
    int rc = batch_decompress(&zctx, codec, src, n, out, cap, &got);
    ASSERT(codec != BATCH_CODEC_NONE || rc == -NG_EBADCODEC);
    ASSERT(rc == 0 || rc == -NG_ETOOBIG || rc == -NG_EDECOMPRESS || rc == -NG_EBADCODEC);
    if (rc == 0) {
        ASSERT(got <= cap);
        uint8_t *exact = malloc(got > 0 ? got : 1);
        ASSERT(exact != NULL);
        size_t again = SIZE_MAX;
        ASSERT(batch_decompress(&zctx, codec, src, n, exact, got, &again) == 0);
        ASSERT(again == got && memcmp(exact, out, got) == 0);
        if (got > 0) {
            ASSERT(batch_decompress(&zctx, codec, src, n, exact, got - 1, &again) == -NG_ETOOBIG);
        }
        free(exact);
    }
    free(src);
    free(out);
    return 0;
}
