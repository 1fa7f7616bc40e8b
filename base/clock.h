/*
 * base/clock.h — the clocks as integers: monotonic nanoseconds and
 * milliseconds (for deadlines, timeouts and latencies: never go back), and
 * wall-clock milliseconds since the Unix epoch (for timestamps a person or
 * another process reads: may jump).
 *
 * CLOCK_MONOTONIC and CLOCK_REALTIME always exist on Linux, so a failure is
 * a programmer error (asserted). Any thread; async-signal-safe.
 */
#ifndef NAGARE_BASE_CLOCK_H
#define NAGARE_BASE_CLOCK_H

#include <stdint.h>
#include <time.h>

#include "base/assert.h"

#define CLOCK_NS_PER_MS 1000000

static inline uint64_t clock_mono_ns(void)
{
    struct timespec ts;
    int rc = clock_gettime(CLOCK_MONOTONIC, &ts);
    ASSERT(rc == 0);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline int64_t clock_mono_ms(void) { return (int64_t)(clock_mono_ns() / CLOCK_NS_PER_MS); }

static inline int64_t clock_wall_ms(void)
{
    struct timespec ts;
    int rc = clock_gettime(CLOCK_REALTIME, &ts);
    ASSERT(rc == 0);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / CLOCK_NS_PER_MS;
}

#endif
