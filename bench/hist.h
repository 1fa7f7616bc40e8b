/*
 * bench/hist.h — a latency histogram in the manner of HdrHistogram:
 * log-linear buckets over the whole uint64 range in a fixed array.
 *
 * Invariants. Values below 2^HIST_SUB_BITS (256) each have a bucket of their
 * own; above, every power of two [2^e, 2^(e+1)) is cut into 2^(HIST_SUB_BITS-1)
 * equal buckets, so a bucket is never wider than 1/128 of its lowest value:
 * any percentile read back is within 0.79% above the true value (it reports
 * the bucket's highest value, clamped to the largest value recorded). The
 * memory is one struct, 59 KiB, whatever is recorded; recording is a few
 * instructions and never allocates. Minimum, maximum, count and sum are
 * exact. A histogram belongs to one thread; merge them after the threads
 * are joined.
 */
#ifndef NAGARE_BENCH_HIST_H
#define NAGARE_BENCH_HIST_H

#include <stdint.h>

#include "base/assert.h"

/* Bits of precision: 8 gives buckets at most 1/128 wide relative to their
 * value (0.79%), finer than any latency this machine can reproduce twice. */
#define HIST_SUB_BITS 8u
#define HIST_SUB_COUNT (1u << HIST_SUB_BITS)  /* 256 exact buckets */
#define HIST_HALF_COUNT (HIST_SUB_COUNT / 2u) /* 128 per power of two */
/* 256 exact values, then one group of 128 for each exponent 8..63. */
#define HIST_BUCKET_COUNT (HIST_SUB_COUNT + (64u - HIST_SUB_BITS) * HIST_HALF_COUNT)

static_assert(HIST_BUCKET_COUNT == 7424, "bucket count as documented (59 KiB)");

struct hist {
    uint64_t count;
    uint64_t min;    /* UINT64_MAX while empty */
    uint64_t max;    /* 0 while empty */
    long double sum; /* exact enough for a mean of ns over hours */
    uint64_t buckets[HIST_BUCKET_COUNT];
};

/* Empties h. */
void hist_init(struct hist *h);

/* Counts one value. */
void hist_record(struct hist *h, uint64_t value);

/* Adds every value counted in src to dst. */
void hist_merge(struct hist *dst, const struct hist *src);

/* The value at percentile q (0 < q <= 100): the highest value of the bucket
 * holding the value of rank round(q% of count) (at least 1), clamped to
 * [min, max]; q = 100 gives max exactly. 0 for an empty histogram. */
uint64_t hist_percentile(const struct hist *h, double q);

/* The mean of the values counted (0 when empty). */
double hist_mean(const struct hist *h);

/* Bucket geometry, exposed for tests: the bucket holding value, and the
 * lowest and highest value of bucket i < HIST_BUCKET_COUNT. */
uint32_t hist_bucket_of(uint64_t value);
uint64_t hist_bucket_low(uint32_t i);
uint64_t hist_bucket_high(uint32_t i);

#endif
