/* Contract tests for broker/producers.h: idempotent produce bookkeeping. */
#include <criterion/criterion.h>

#include "broker/producers.h"

static struct producers ps;

static void setup(void) { cr_assert_eq(producers_init(&ps, 4), 0); }
static void teardown(void) { producers_fini(&ps); }

TestSuite(producers, .init = setup, .fini = teardown);

static struct batch_header batch(int64_t id, int16_t epoch, int32_t seq, int32_t count)
{
    return (struct batch_header){.producer_id = id,
                                 .producer_epoch = epoch,
                                 .sequence_base = seq,
                                 .record_count = count,
                                 .last_offset_delta = count - 1};
}

/* Checks then records h at offset; returns the check's verdict. */
static int produce(struct batch_header h, int64_t offset)
{
    int64_t dup = -1;
    int rc = producers_check(&ps, &h, &dup);
    if (rc == 0) {
        h.offset_base = offset;
        producers_record(&ps, &h, false);
    }
    return rc;
}

Test(producers, a_new_producer_may_start_at_any_sequence)
{
    cr_assert_eq(produce(batch(7, 0, 42, 3), 0), 0);
    cr_assert_eq(produce(batch(7, 0, 45, 1), 3), 0);
}

Test(producers, a_retried_recent_batch_is_a_duplicate_with_its_first_offset)
{
    cr_assert_eq(produce(batch(7, 0, 0, 10), 100), 0);
    cr_assert_eq(produce(batch(7, 0, 10, 5), 110), 0);
    struct batch_header again = batch(7, 0, 0, 10);
    int64_t offset = -1;
    cr_assert_eq(producers_check(&ps, &again, &offset), 1);
    cr_assert_eq(offset, 100);
}

/* The last five batches are remembered with their offsets; one older is
 * known to be written (sequences go in only in order), not where. */
Test(producers, only_the_last_five_batches_are_remembered)
{
    for (int32_t i = 0; i < 6; i++) {
        cr_assert_eq(produce(batch(7, 0, i, 1), i), 0);
    }
    int64_t offset;
    struct batch_header oldest = batch(7, 0, 0, 1);
    cr_assert_eq(producers_check(&ps, &oldest, &offset), PRODUCERS_WRITTEN);
    cr_assert_eq(offset, 6, "one past the newest remembered batch");
    struct batch_header kept = batch(7, 0, 1, 1);
    cr_assert_eq(producers_check(&ps, &kept, &offset), PRODUCERS_DUPLICATE);
    cr_assert_eq(offset, 1);
}

/* A producer first seen in mid-sequence (forgotten, then back): what came
 * before its first batch here is not known to be in the log, so an older
 * batch is out of order, not written; learnt from the log, it is. */
Test(producers, an_older_batch_counts_as_written_only_with_the_whole_history)
{
    cr_assert_eq(produce(batch(7, 0, 42, 1), 0), PRODUCERS_APPEND);
    int64_t offset;
    struct batch_header older = batch(7, 0, 40, 2);
    cr_assert_eq(producers_check(&ps, &older, &offset), -NG_EOUT_OF_ORDER);

    struct batch_header logged = batch(8, 0, 42, 1);
    logged.offset_base = 5;
    producers_record(&ps, &logged, true);
    struct batch_header older8 = batch(8, 0, 40, 2);
    cr_assert_eq(producers_check(&ps, &older8, &offset), PRODUCERS_WRITTEN);
    cr_assert_eq(offset, 6);
    struct batch_header overlapping = batch(8, 0, 41, 2);
    cr_assert_eq(producers_check(&ps, &overlapping, &offset), -NG_EOUT_OF_ORDER);
}

/* Written before the remembered batches across the wrap of sequences. */
Test(producers, an_older_batch_across_the_wrap_is_written)
{
    const int32_t seqs[] = {INT32_MAX - 1, INT32_MAX, 0, 1, 3, 4, 5, 6};
    const int32_t counts[] = {1, 1, 1, 2, 1, 1, 1, 1};
    struct batch_header first = batch(7, 0, 10, INT32_MAX - 11); /* 10..INT32_MAX - 2 */
    producers_record(&ps, &first, true);                         /* as a rebuild learns it */
    int64_t offset = INT32_MAX - 11;
    for (size_t i = 0; i < 8; i++) {
        cr_assert_eq(produce(batch(7, 0, seqs[i], counts[i]), offset), PRODUCERS_APPEND, "%zu", i);
        offset += counts[i];
    }
    /* remembered: 1..2, 3, 4, 5, 6 */
    int64_t at;
    struct batch_header before_wrap = batch(7, 0, INT32_MAX, 1);
    cr_assert_eq(producers_check(&ps, &before_wrap, &at), PRODUCERS_WRITTEN);
    cr_assert_eq(at, offset);
    struct batch_header gap = batch(7, 0, 8, 1);
    cr_assert_eq(producers_check(&ps, &gap, &at), -NG_EOUT_OF_ORDER, "a gap, not a past");
    struct batch_header next = batch(7, 0, 7, 1);
    cr_assert_eq(producers_check(&ps, &next, &at), PRODUCERS_APPEND);
}

Test(producers, a_gap_is_out_of_order)
{
    cr_assert_eq(produce(batch(7, 0, 0, 2), 0), 0);
    cr_assert_eq(produce(batch(7, 0, 3, 1), 2), -NG_EOUT_OF_ORDER);
    cr_assert_eq(produce(batch(7, 0, 2, 1), 2), 0);
}

Test(producers, the_same_start_with_another_length_is_out_of_order)
{
    cr_assert_eq(produce(batch(7, 0, 0, 2), 0), 0);
    struct batch_header other = batch(7, 0, 0, 3);
    int64_t offset;
    cr_assert_eq(producers_check(&ps, &other, &offset), -NG_EOUT_OF_ORDER);
}

Test(producers, an_older_epoch_is_fenced_and_a_newer_one_starts_afresh)
{
    cr_assert_eq(produce(batch(7, 2, 0, 1), 0), 0);
    cr_assert_eq(produce(batch(7, 1, 1, 1), 1), -NG_EPRODUCER_FENCED);
    cr_assert_eq(produce(batch(7, 3, 0, 1), 1), 0);
    cr_assert_eq(produce(batch(7, 2, 1, 1), 2), -NG_EPRODUCER_FENCED);
}

Test(producers, sequences_wrap_past_int32_max)
{
    cr_assert_eq(produce(batch(7, 0, INT32_MAX, 1), 0), 0);
    cr_assert_eq(produce(batch(7, 0, 0, 1), 1), 0);
}

Test(producers, the_least_recently_used_producer_is_forgotten_when_full)
{
    for (int64_t id = 1; id <= 4; id++) {
        cr_assert_eq(produce(batch(id, 0, 0, 1), id), 0);
    }
    cr_assert_eq(produce(batch(1, 0, 1, 1), 10), 0); /* 1 is now the most recent */
    cr_assert_eq(produce(batch(5, 0, 0, 1), 11), 0); /* evicts 2 */
    cr_assert_eq(ps.count, 4);
    int64_t offset;
    struct batch_header two = batch(2, 0, 0, 1);
    cr_assert_eq(producers_check(&ps, &two, &offset), 0, "2 was forgotten: looks new");
    struct batch_header one = batch(1, 0, 1, 1);
    cr_assert_eq(producers_check(&ps, &one, &offset), 1);
    cr_assert_eq(offset, 10);
}

Test(producers, many_evictions_keep_every_member_findable)
{
    /* Ids chosen at random collide in the probe runs; removal must keep the
     * rest reachable. */
    srand(7);
    for (int round = 0; round < 2000; round++) {
        int64_t id = rand() % 64;
        int64_t offset;
        struct batch_header h = batch(id, 0, round, 1);
        int rc = producers_check(&ps, &h, &offset);
        cr_assert(rc == 0 || rc == -NG_EOUT_OF_ORDER);
        h.offset_base = round;
        producers_record(&ps, &h, false);
        struct batch_header again = batch(id, 0, round, 1);
        cr_assert_eq(producers_check(&ps, &again, &offset), 1, "round %d id %ld", round, (long)id);
        cr_assert_eq(offset, round);
        cr_assert_leq(ps.count, 4);
    }
}

Test(producers, a_forgotten_batch_is_judged_afresh_when_retried)
{
    cr_assert_eq(produce(batch(7, 0, 0, 2), 0), 0);
    cr_assert_eq(produce(batch(7, 0, 2, 2), 2), 0);
    cr_assert_eq(produce(batch(7, 0, 4, 2), 4), 0);
    /* The last two appends failed (a full disk): forget them, oldest first. */
    struct batch_header second = batch(7, 0, 2, 2);
    second.offset_base = 2;
    struct batch_header third = batch(7, 0, 4, 2);
    third.offset_base = 4;
    producers_forget(&ps, &second);
    producers_forget(&ps, &third);
    int64_t offset = -1;
    struct batch_header retry = batch(7, 0, 2, 2);
    cr_assert_eq(producers_check(&ps, &retry, &offset), 0, "appended again, not a duplicate");
    struct batch_header first = batch(7, 0, 0, 2);
    cr_assert_eq(producers_check(&ps, &first, &offset), 1, "the one that stayed is remembered");
    cr_assert_eq(offset, 0);
}

Test(producers, the_table_starts_small_and_grows_keeping_every_producer)
{
    struct producers big;
    cr_assert_eq(producers_init(&big, 1024), 0);
    cr_assert_eq(big.slot_count, PRODUCERS_SLOTS_MIN, "no cap's worth of slots up front");
    for (int64_t id = 0; id < 1024; id++) {
        struct batch_header h = batch(id, 0, 0, 1);
        h.offset_base = id;
        producers_record(&big, &h, false);
    }
    cr_assert_eq(big.count, 1024, "nobody evicted before the cap");
    cr_assert_leq(big.slot_count, 2048);
    for (int64_t id = 0; id < 1024; id++) {
        int64_t offset = -1;
        struct batch_header again = batch(id, 0, 0, 1);
        cr_assert_eq(producers_check(&big, &again, &offset), 1, "id %ld", (long)id);
        cr_assert_eq(offset, id);
    }
    struct batch_header more = batch(5000, 0, 0, 1);
    producers_record(&big, &more, false);
    cr_assert_eq(big.count, 1024, "past the cap the least recent is forgotten");
    producers_fini(&big);
}
