/* base/clock.h: the clocks as integers. */
#include <criterion/criterion.h>
#include <sys/time.h>

#include "base/clock.h"

Test(clock, monotonic_time_never_goes_back)
{
    uint64_t prev_ns = clock_mono_ns();
    int64_t prev_ms = clock_mono_ms();
    for (int i = 0; i < 100000; i++) {
        uint64_t ns = clock_mono_ns();
        int64_t ms = clock_mono_ms();
        cr_assert_geq(ns, prev_ns);
        cr_assert_geq(ms, prev_ms);
        prev_ns = ns;
        prev_ms = ms;
    }
}

Test(clock, milliseconds_are_the_nanosecond_clock_cut_down)
{
    uint64_t before = clock_mono_ns();
    int64_t ms = clock_mono_ms();
    uint64_t after = clock_mono_ns();
    cr_assert_geq(ms, (int64_t)(before / CLOCK_NS_PER_MS));
    cr_assert_leq(ms, (int64_t)(after / CLOCK_NS_PER_MS));
}

Test(clock, wall_milliseconds_are_the_unix_time)
{
    struct timeval before;
    struct timeval after;
    cr_assert_eq(gettimeofday(&before, NULL), 0);
    int64_t ms = clock_wall_ms();
    cr_assert_eq(gettimeofday(&after, NULL), 0);
    cr_assert_geq(ms, (int64_t)before.tv_sec * 1000 + before.tv_usec / 1000);
    cr_assert_leq(ms, (int64_t)after.tv_sec * 1000 + after.tv_usec / 1000);
}
