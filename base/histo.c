/*
 * base/histo.c — fixed-bucket latency histograms (base/histo.h).
 */
#include "base/histo.h"

#include "base/assert.h"

/* Sized by its initializer: a count that differs from HISTO_BUCKETS
 * conflicts with the header's declaration. */
const uint64_t histo_bounds_us[] = {50,     100,     250,     500,     1000,    2500,
                                    5000,   10000,   25000,   50000,   100000,  250000,
                                    500000, 1000000, 2500000, 5000000, 10000000};

void histo_record(struct histo *h, uint64_t ns)
{
    uint32_t i = 0;
    while (i < HISTO_BUCKETS && ns > histo_bounds_us[i] * 1000u) {
        i++;
    }
    h->buckets[i]++;
    h->count++;
    h->sum_ns += ns;
}
