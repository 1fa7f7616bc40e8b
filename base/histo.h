/*
 * base/histo.h — a latency histogram with fixed buckets, as Prometheus
 * exports them: a count per bucket (each bucket counts durations up to its
 * bound; the last, +Inf, counts the rest), the number of durations and
 * their sum. Recording is a few compares and adds; the owner's thread only
 * (copy it to read it elsewhere).
 */
#ifndef NAGARE_BASE_HISTO_H
#define NAGARE_BASE_HISTO_H

#include <stdint.h>

/* Bounded buckets; one more counts the rest (+Inf). */
#define HISTO_BUCKETS 17

/* Upper bounds of the buckets, in microseconds, ascending: from the 50 us
 * of a fast fdatasync or a request answered from memory to the 10 s past
 * which anything is simply too slow (1-2.5-5 steps). */
extern const uint64_t histo_bounds_us[HISTO_BUCKETS];

struct histo {
    uint64_t buckets[HISTO_BUCKETS + 1]; /* not cumulative; [HISTO_BUCKETS]: past every bound */
    uint64_t count;
    uint64_t sum_ns;
};

/* Counts one duration of ns nanoseconds. */
void histo_record(struct histo *h, uint64_t ns);

#endif
