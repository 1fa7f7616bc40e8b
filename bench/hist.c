/*
 * bench/hist.c — log-linear histogram (see hist.h for the bucket layout).
 */
#include "bench/hist.h"

#include <string.h>

void hist_init(struct hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

uint32_t hist_bucket_of(uint64_t value)
{
    if (value < HIST_SUB_COUNT) {
        return (uint32_t)value;
    }
    uint32_t msb = 63u - (uint32_t)__builtin_clzll(value); /* >= HIST_SUB_BITS */
    uint32_t shift = msb - (HIST_SUB_BITS - 1u);           /* >= 1 */
    uint32_t sub = (uint32_t)(value >> shift);             /* [128, 256) */
    ASSERT(sub >= HIST_HALF_COUNT && sub < HIST_SUB_COUNT);
    return HIST_SUB_COUNT + (shift - 1u) * HIST_HALF_COUNT + (sub - HIST_HALF_COUNT);
}

uint64_t hist_bucket_low(uint32_t i)
{
    ASSERT(i < HIST_BUCKET_COUNT);
    if (i < HIST_SUB_COUNT) {
        return i;
    }
    uint32_t j = i - HIST_SUB_COUNT;
    uint32_t shift = j / HIST_HALF_COUNT + 1u;
    uint64_t sub = j % HIST_HALF_COUNT + HIST_HALF_COUNT;
    return sub << shift;
}

uint64_t hist_bucket_high(uint32_t i)
{
    ASSERT(i < HIST_BUCKET_COUNT);
    if (i < HIST_SUB_COUNT) {
        return i;
    }
    uint32_t shift = (i - HIST_SUB_COUNT) / HIST_HALF_COUNT + 1u;
    return hist_bucket_low(i) + ((UINT64_C(1) << shift) - 1u);
}

void hist_record(struct hist *h, uint64_t value)
{
    h->buckets[hist_bucket_of(value)]++;
    h->count++;
    h->sum += (long double)value;
    h->min = value < h->min ? value : h->min;
    h->max = value > h->max ? value : h->max;
}

void hist_merge(struct hist *dst, const struct hist *src)
{
    for (uint32_t i = 0; i < HIST_BUCKET_COUNT; i++) {
        dst->buckets[i] += src->buckets[i];
    }
    dst->count += src->count;
    dst->sum += src->sum;
    dst->min = src->min < dst->min ? src->min : dst->min;
    dst->max = src->max > dst->max ? src->max : dst->max;
}

uint64_t hist_percentile(const struct hist *h, double q)
{
    ASSERT(q > 0 && q <= 100);
    if (h->count == 0) {
        return 0;
    }
    if (q >= 100) {
        return h->max;
    }
    /* The rank of the value at q, rounded to the nearest as HdrHistogram
     * does (a ceiling would turn 99.9% of 10,000 into 9,991 through the
     * binary error of 0.999), and at least the first value. */
    uint64_t rank = (uint64_t)(q / 100.0 * (double)h->count + 0.5);
    rank = rank == 0 ? 1 : rank;
    uint64_t seen = 0;
    for (uint32_t i = 0; i < HIST_BUCKET_COUNT; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t v = hist_bucket_high(i);
            v = v > h->max ? h->max : v;
            return v < h->min ? h->min : v;
        }
    }
    UNREACHABLE(); /* the buckets add up to count */
}

double hist_mean(const struct hist *h)
{
    return h->count == 0 ? 0.0 : (double)(h->sum / (long double)h->count);
}
