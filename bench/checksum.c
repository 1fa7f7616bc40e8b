/*
 * bench/checksum.c — `nagare-bench checksum`: CRC-32C against XXH3-64.
 */
#include "bench/checksum.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "bench/args.h"
#include "base/clock.h"
#include "storage/batch.h"

/* Keeps the compiler from dropping a result nobody reads. */
static volatile uint64_t sink;

static double gbps(const char *name, const uint8_t *buf, size_t bytes, uint64_t rounds, int which)
{
    uint64_t t0 = clock_mono_ns();
    uint64_t acc = 0;
    for (uint64_t i = 0; i < rounds; i++) {
        acc += which == 0 ? batch_crc32c(buf, bytes) : XXH3_64bits(buf, bytes);
    }
    uint64_t ns = clock_mono_ns() - t0;
    sink = acc;
    double rate = (double)bytes * (double)rounds / (double)(ns > 0 ? ns : 1);
    printf("%-28s %8zu B  %7.2f GB/s\n", name, bytes, rate);
    return rate;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: nagare-bench checksum [--bytes N] [--mib M]\n\n"
                 "  --bytes N  checksum buffers of N bytes (default 65536)\n"
                 "  --mib M    checksum M MiB with each function (default 4096)\n");
}

int bench_checksum_main(int argc, char **argv)
{
    uint64_t bytes = 65536;
    uint64_t mib = 4096;
    for (int i = 1; i < argc; i++) {
        bool more = i + 1 < argc;
        if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--bytes") == 0 && more &&
            args_u64(argv[++i], 1, BATCH_BYTES_LIMIT, &bytes)) {
            continue;
        }
        if (strcmp(argv[i], "--mib") == 0 && more && args_u64(argv[++i], 1, 1u << 20, &mib)) {
            continue;
        }
        usage(stderr);
        return 2;
    }
    uint8_t *buf = malloc(bytes);
    if (buf == NULL) {
        fprintf(stderr, "nagare-bench checksum: out of memory\n");
        return 1;
    }
    for (uint64_t i = 0; i < bytes; i++) {
        buf[i] = (uint8_t)(i * 131 + (i >> 9));
    }
    uint64_t rounds = (mib << 20) / bytes + 1;
    gbps("warm-up (CRC-32C)", buf, (size_t)bytes, rounds / 8 + 1, 0);
    double crc = gbps("CRC-32C (ISA-L, format 2)", buf, (size_t)bytes, rounds, 0);
    double xxh = gbps("XXH3-64 (format 1)", buf, (size_t)bytes, rounds, 1);
    printf("CRC-32C / XXH3-64: %.2f\n", crc / xxh);
    free(buf);
    return 0;
}
