/* Contract tests for bench/hist.h. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "bench/hist.h"

static struct hist *h;
static struct hist *h2;

static void setup(void)
{
    h = malloc(sizeof(*h));
    h2 = malloc(sizeof(*h2));
    cr_assert_not_null(h);
    cr_assert_not_null(h2);
    hist_init(h);
    hist_init(h2);
}

static void teardown(void)
{
    free(h);
    free(h2);
}

TestSuite(hist, .init = setup, .fini = teardown);

Test(hist, empty_reads_zero)
{
    cr_assert_eq(h->count, 0);
    cr_assert_eq(hist_percentile(h, 50), 0);
    cr_assert_eq(hist_percentile(h, 100), 0);
    cr_assert_eq(hist_mean(h), 0.0);
}

Test(hist, small_values_are_exact)
{
    for (uint64_t v = 0; v < HIST_SUB_COUNT; v++) {
        cr_assert_eq(hist_bucket_of(v), v);
        cr_assert_eq(hist_bucket_low((uint32_t)v), v);
        cr_assert_eq(hist_bucket_high((uint32_t)v), v);
    }
    for (uint64_t v = 1; v <= 100; v++) {
        hist_record(h, v);
    }
    cr_assert_eq(hist_percentile(h, 50), 50);
    cr_assert_eq(hist_percentile(h, 90), 90);
    cr_assert_eq(hist_percentile(h, 99), 99);
    cr_assert_eq(hist_percentile(h, 99.9), 100);
    cr_assert_eq(hist_percentile(h, 100), 100);
    cr_assert_eq(h->min, 1);
    cr_assert_eq(h->max, 100);
    cr_assert_float_eq(hist_mean(h), 50.5, 1e-9);
}

Test(hist, buckets_tile_the_whole_range_in_order)
{
    cr_assert_eq(hist_bucket_low(0), 0);
    for (uint32_t i = 1; i < HIST_BUCKET_COUNT; i++) {
        cr_assert_eq(hist_bucket_low(i), hist_bucket_high(i - 1) + 1, "gap before bucket %u", i);
        cr_assert_eq(hist_bucket_of(hist_bucket_low(i)), i);
        cr_assert_eq(hist_bucket_of(hist_bucket_high(i)), i);
    }
    cr_assert_eq(hist_bucket_high(HIST_BUCKET_COUNT - 1), UINT64_MAX);
    cr_assert_eq(hist_bucket_of(UINT64_MAX), HIST_BUCKET_COUNT - 1);
}

Test(hist, a_bucket_is_at_most_one_128th_of_its_value)
{
    for (uint32_t i = HIST_SUB_COUNT; i < HIST_BUCKET_COUNT; i++) {
        uint64_t lo = hist_bucket_low(i);
        uint64_t width = hist_bucket_high(i) - lo + 1;
        cr_assert_leq(width, lo / HIST_HALF_COUNT, "bucket %u too wide", i);
    }
}

Test(hist, percentiles_of_a_uniform_spread_within_precision)
{
    /* 1..1,000,000 ns: percentile q is q * 10,000 ns, read back at most
     * 1/128 above. */
    for (uint64_t v = 1; v <= 1000000; v++) {
        hist_record(h, v);
    }
    const double qs[] = {50, 90, 99, 99.9};
    for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
        double want = qs[i] * 10000.0;
        double got = (double)hist_percentile(h, qs[i]);
        cr_assert_geq(got, want, "p%g = %g below %g", qs[i], got, want);
        cr_assert_leq(got, want * (1.0 + 1.0 / 128), "p%g = %g above %g", qs[i], got, want);
    }
    cr_assert_eq(hist_percentile(h, 100), 1000000);
}

Test(hist, percentile_is_clamped_to_max_and_min)
{
    hist_record(h, 1000001); /* its bucket reaches above it */
    cr_assert_eq(hist_percentile(h, 50), 1000001);
    cr_assert_eq(hist_percentile(h, 99.9), 1000001);
    cr_assert_eq(h->min, 1000001);
}

Test(hist, an_outlier_shows_only_in_the_tail)
{
    for (int i = 0; i < 9990; i++) {
        hist_record(h, 1000);
    }
    for (int i = 0; i < 10; i++) {
        hist_record(h, 50000000);
    }
    /* 1000 lies in the bucket [1000, 1003]: read back as its top. */
    cr_assert_eq(hist_percentile(h, 99), 1003);
    cr_assert_eq(hist_percentile(h, 99.9), 1003);
    cr_assert_geq(hist_percentile(h, 99.91), 50000000);
    cr_assert_eq(hist_percentile(h, 100), 50000000);
}

Test(hist, merge_adds_counts_and_extremes)
{
    for (uint64_t v = 1; v <= 500; v++) {
        hist_record(h, v);
        hist_record(h2, v + 500);
    }
    hist_merge(h, h2);
    cr_assert_eq(h->count, 1000);
    cr_assert_eq(h->min, 1);
    cr_assert_eq(h->max, 1000);
    uint64_t p50 = hist_percentile(h, 50);
    cr_assert(p50 >= 500 && p50 <= 504, "p50 = %lu", (unsigned long)p50);
    cr_assert_float_eq(hist_mean(h), 500.5, 1e-9);
}

Test(hist, merging_an_empty_histogram_changes_nothing)
{
    hist_record(h, 42);
    hist_merge(h, h2);
    cr_assert_eq(h->count, 1);
    cr_assert_eq(h->min, 42);
    cr_assert_eq(h->max, 42);
}

Test(hist, extreme_values_are_counted)
{
    hist_record(h, 0);
    hist_record(h, UINT64_MAX);
    cr_assert_eq(h->count, 2);
    cr_assert_eq(hist_percentile(h, 50), 0);
    cr_assert_eq(hist_percentile(h, 100), UINT64_MAX);
}
