/* Contract tests for broker/share_state.h: share-group windows, locks, acks, dead
 * letters, and the durable state log (through a real partition log). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/bytes.h"
#include "base/log.h"
#include "broker/share_state.h"
#include "tests/storage_support.h"

#define T0 1000000 /* a "now" in ms */
#define LOCK 30000
#define A 11u /* member ids */
#define B 22u
#define C 33u

static struct share_reg reg;
static struct share_part *sp;
static struct share_grant grants[64];
static uint32_t ngrants;

static void teardown(void)
{
    if (reg.parts != NULL) {
        share_reg_fini(&reg);
    }
}

TestSuite(share, .fini = teardown);

/* A registry with these bounds and one part g/t/0 starting at offset 0. */
static void setup_reg(uint32_t inflight_max, uint32_t delivery_max)
{
    log_set_level(LOG_OFF);
    struct share_config cfg;
    share_config_default(&cfg);
    cfg.inflight_max = inflight_max;
    cfg.delivery_max = delivery_max;
    cr_assert_eq(share_reg_init(&reg, &cfg), 0);
    cr_assert_eq(share_reg_open(&reg, "g", 1, "t", 1, 0, 0, &sp), 0);
}

/* Acquires for member; returns the number of records handed out. */
static uint32_t acquire(uint64_t member, int64_t log_end, uint32_t max, int64_t now)
{
    cr_assert_eq(share_part_acquire(sp, member, log_end, max, now, LOCK, grants, ARRAY_LEN(grants),
                                    &ngrants),
                 0);
    uint32_t n = 0;
    for (uint32_t i = 0; i < ngrants; i++) {
        n += (uint32_t)(grants[i].last - grants[i].first + 1);
    }
    share_part_verify(sp);
    return n;
}

static struct share_record_info info(int64_t offset)
{
    struct share_record_info ri;
    cr_assert_eq(share_part_record(sp, offset, &ri), 0, "offset %ld", (long)offset);
    return ri;
}

static void expect_grant(uint32_t i, int64_t first, int64_t last, uint16_t count)
{
    cr_assert_lt(i, ngrants);
    cr_assert_eq(grants[i].first, first, "grant %u first %ld", i, (long)grants[i].first);
    cr_assert_eq(grants[i].last, last, "grant %u last %ld", i, (long)grants[i].last);
    cr_assert_eq(grants[i].delivery_count, count, "grant %u count %u", i, grants[i].delivery_count);
}

/* ---- configuration ---- */

Test(share, config_defaults_pass_and_bounds_are_checked)
{
    struct share_config c;
    share_config_default(&c);
    cr_assert_eq(c.inflight_max, 1000);
    cr_assert_eq(c.delivery_max, 5);
    cr_assert_eq(c.lock_ms, 30000);
    cr_assert_eq(share_config_check(&c), 0);
    c.inflight_max = SHARE_INFLIGHT_LIMIT + 1;
    cr_assert_eq(share_config_check(&c), -NG_EBADARG);
    share_config_default(&c);
    c.delivery_max = 0;
    cr_assert_eq(share_config_check(&c), -NG_EBADARG);
    share_config_default(&c);
    c.lock_ms = 0;
    cr_assert_eq(share_config_check(&c), -NG_EBADARG);
    share_config_default(&c);
    c.parts_max = 0;
    cr_assert_eq(share_config_check(&c), -NG_EBADARG);
}

/* ---- acquire ---- */

Test(share, acquire_hands_out_new_records_and_never_one_to_two_members)
{
    setup_reg(1000, 5);
    cr_assert_eq(acquire(A, 10, 4, T0), 4);
    expect_grant(0, 0, 3, 1);
    cr_assert_eq(acquire(B, 10, 100, T0), 6);
    expect_grant(0, 4, 9, 1);
    cr_assert_eq(acquire(C, 10, 100, T0), 0, "everything is held");
    cr_assert_eq(ngrants, 0);
    cr_assert_eq(info(2).member, A);
    cr_assert_eq(info(2).state, SHARE_ACQUIRED);
    cr_assert_eq(info(2).deadline_ms, T0 + LOCK);
    cr_assert_eq(info(7).member, B);
    cr_assert_eq(share_part_start(sp), 0);
    cr_assert_eq(share_part_end(sp), 10);
    cr_assert_eq(share_part_count(sp, SHARE_ACQUIRED), 10);
    /* new records appear as the log grows */
    cr_assert_eq(acquire(C, 12, 100, T0), 2);
    expect_grant(0, 10, 11, 1);
}

Test(share, acquire_stops_when_the_grant_array_is_full)
{
    setup_reg(1000, 5);
    cr_assert_eq(acquire(A, 6, 100, T0), 6);
    /* release 1 and 3: two separate redelivery grants, then new ones */
    cr_assert_eq(share_part_ack(sp, A, 1, 1, SHARE_ACK_RELEASE, T0), 0);
    cr_assert_eq(share_part_ack(sp, A, 3, 3, SHARE_ACK_RELEASE, T0), 0);
    struct share_grant two[2];
    uint32_t n;
    cr_assert_eq(share_part_acquire(sp, B, 10, 100, T0, LOCK, two, 2, &n), 0);
    cr_assert_eq(n, 2);
    cr_assert_eq(two[0].first, 1);
    cr_assert_eq(two[1].first, 3);
    cr_assert_eq(two[1].last, 3);
    cr_assert_eq(share_part_end(sp), 6, "no new offsets without a grant for them");
    cr_assert_eq(acquire(B, 10, 100, T0), 4);
    expect_grant(0, 6, 9, 1);
}

/* ---- release, expiry ---- */

Test(share, release_makes_a_record_available_with_its_count_raised_on_next_acquire)
{
    setup_reg(1000, 5);
    cr_assert_eq(acquire(A, 5, 100, T0), 5);
    cr_assert_eq(share_part_ack(sp, A, 2, 3, SHARE_ACK_RELEASE, T0 + 1), 0);
    cr_assert_eq(info(2).state, SHARE_AVAILABLE);
    cr_assert_eq(info(2).delivery_count, 1);
    cr_assert_eq(info(2).member, SHARE_MEMBER_NONE);
    cr_assert_eq(share_part_count(sp, SHARE_AVAILABLE), 2);
    /* redeliveries come first, lowest offset first, then new records */
    cr_assert_eq(acquire(B, 7, 100, T0 + 2), 4);
    expect_grant(0, 2, 3, 2);
    expect_grant(1, 5, 6, 1);
    cr_assert_eq(info(3).member, B);
    cr_assert_eq(share_part_ack(sp, A, 2, 2, SHARE_ACK_ACCEPT, T0 + 3), -NG_ENOT_ACQUIRED,
                 "A let it go; B holds it");
}

Test(share, lock_expiry_makes_a_record_available_with_its_count_raised)
{
    setup_reg(1000, 5);
    cr_assert_eq(acquire(A, 3, 100, T0), 3);
    uint32_t expired;
    int64_t next;
    cr_assert_eq(share_part_expire(sp, T0 + LOCK - 1, &expired, &next), 0);
    cr_assert_eq(expired, 0);
    cr_assert_eq(next, T0 + LOCK);
    /* at the deadline the lock has ended: acks refused even before expire runs */
    cr_assert_eq(share_part_ack(sp, A, 0, 0, SHARE_ACK_ACCEPT, T0 + LOCK), -NG_ENOT_ACQUIRED);
    cr_assert_eq(acquire(B, 3, 100, T0 + LOCK), 0, "not reclaimed before expire");
    cr_assert_eq(share_part_expire(sp, T0 + LOCK, &expired, &next), 0);
    cr_assert_eq(expired, 3);
    cr_assert_eq(next, INT64_MAX);
    cr_assert_eq(info(1).state, SHARE_AVAILABLE);
    cr_assert_eq(info(1).delivery_count, 1);
    cr_assert_eq(acquire(B, 3, 100, T0 + LOCK), 3);
    expect_grant(0, 0, 2, 2);
    cr_assert_eq(share_part_ack(sp, B, 0, 2, SHARE_ACK_ACCEPT, T0 + LOCK + 1), 0);
    cr_assert_eq(share_part_start(sp), 3);
}

Test(share, registry_expire_covers_every_part_and_reports_the_next_deadline)
{
    setup_reg(1000, 5);
    struct share_part *other;
    cr_assert_eq(share_reg_open(&reg, "g", 1, "u", 1, 3, 100, &other), 0);
    cr_assert_eq(acquire(A, 2, 100, T0), 2);
    uint32_t n;
    cr_assert_eq(share_part_acquire(other, A, 105, 100, T0 + 10, LOCK, grants, 64, &n), 0);
    uint32_t expired;
    int64_t next;
    cr_assert_eq(share_reg_expire(&reg, T0 + LOCK, &expired, &next), 0);
    cr_assert_eq(expired, 2);
    cr_assert_eq(next, T0 + 10 + LOCK);
    cr_assert_eq(share_reg_expire(&reg, T0 + 10 + LOCK, &expired, &next), 0);
    cr_assert_eq(expired, 5);
    cr_assert_eq(next, INT64_MAX);
}

/* ---- accept, reject, dead letters ---- */

Test(share, accept_finishes_records_and_advances_start)
{
    setup_reg(1000, 5);
    cr_assert_eq(acquire(A, 10, 100, T0), 10);
    cr_assert_eq(share_part_ack(sp, A, 3, 5, SHARE_ACK_ACCEPT, T0), 0);
    cr_assert_eq(share_part_start(sp), 0, "0..2 are not finished");
    cr_assert_eq(info(4).state, SHARE_ACCEPTED);
    cr_assert_eq(share_part_ack(sp, A, 0, 2, SHARE_ACK_ACCEPT, T0), 0);
    cr_assert_eq(share_part_start(sp), 6, "start moves over every finished record");
    cr_assert_eq(share_part_record(sp, 5, &(struct share_record_info){0}), -NG_EOFFSET_RANGE);
    cr_assert_eq(share_part_ack(sp, A, 6, 9, SHARE_ACK_ACCEPT, T0), 0);
    cr_assert_eq(share_part_start(sp), 10);
    cr_assert_eq(share_part_end(sp), 10);
    cr_assert_eq(acquire(B, 10, 100, T0), 0, "accepted records are never delivered again");
    share_part_verify(sp);
}

Test(share, reject_dead_letters_with_reason_rejected)
{
    setup_reg(1000, 5);
    cr_assert_eq(acquire(A, 4, 100, T0), 4);
    cr_assert_eq(share_part_ack(sp, A, 1, 2, SHARE_ACK_REJECT, T0), 0);
    cr_assert_eq(share_part_ack(sp, A, 0, 0, SHARE_ACK_ACCEPT, T0), 0);
    cr_assert_eq(info(1).state, SHARE_DEADLETTER);
    cr_assert_eq(info(1).reason, SHARE_REASON_REJECTED);
    cr_assert_eq(share_part_start(sp), 1, "a dead letter not yet copied holds start");
    cr_assert_eq(share_part_dead_pending(sp), 2);
    struct share_dead dead[8];
    uint32_t n;
    cr_assert_eq(share_part_dead_take(sp, dead, 8, &n), 0);
    cr_assert_eq(n, 2);
    cr_assert_eq(dead[0].offset, 1);
    cr_assert_eq(dead[0].delivery_count, 1);
    cr_assert_eq(dead[0].reason, SHARE_REASON_REJECTED);
    cr_assert_str_eq(share_reason_str(dead[0].reason), "rejected");
    cr_assert_eq(dead[1].offset, 2);
    cr_assert_eq(share_part_dead_pending(sp), 0, "taken once");
    cr_assert_eq(share_part_dead_take(sp, dead, 8, &n), 0);
    cr_assert_eq(n, 0);
    /* a failed copy is reported again; a confirmed one is archived */
    cr_assert_eq(share_part_dead_done(sp, 2, -NG_EFAILED), 0);
    cr_assert_eq(share_part_dead_done(sp, 1, 0), 0);
    cr_assert_eq(share_part_start(sp), 2);
    cr_assert_eq(share_part_dead_take(sp, dead, 8, &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(dead[0].offset, 2);
    cr_assert_eq(share_part_dead_done(sp, 2, 0), 0);
    cr_assert_eq(share_part_start(sp), 3);
    cr_assert_eq(share_part_dead_done(sp, 2, 0), -NG_ENOTFOUND);
    cr_assert_eq(acquire(B, 4, 100, T0), 0, "dead letters are never delivered again");
}

Test(share, max_deliveries_dead_letters_on_release_and_on_expiry)
{
    setup_reg(1000, 3);
    int64_t now = T0;
    for (uint16_t round = 1; round <= 3; round++) {
        cr_assert_eq(acquire(A, 2, 100, now), 2, "round %u", round);
        expect_grant(0, 0, 1, round);
        cr_assert_eq(share_part_ack(sp, A, 0, 0, SHARE_ACK_RELEASE, now), 0);
        uint32_t expired;
        int64_t next;
        now += LOCK;
        cr_assert_eq(share_part_expire(sp, now, &expired, &next), 0);
        cr_assert_eq(expired, 1);
    }
    for (int64_t off = 0; off < 2; off++) {
        cr_assert_eq(info(off).state, SHARE_DEADLETTER);
        cr_assert_eq(info(off).reason, SHARE_REASON_MAX_DELIVERIES);
        cr_assert_eq(info(off).delivery_count, 3);
    }
    cr_assert_eq(acquire(B, 2, 100, now), 0);
    struct share_dead dead[2];
    uint32_t n;
    cr_assert_eq(share_part_dead_take(sp, dead, 2, &n), 0);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(share_reason_str(dead[1].reason), "max deliveries");
}

Test(share, the_registry_counts_deliveries_redeliveries_and_dead_letters)
{
    setup_reg(1000, 3);
    int64_t now = T0;
    for (uint16_t round = 1; round <= 3; round++) { /* 2 records, 3 deliveries each */
        cr_assert_eq(acquire(A, 2, 100, now), 2, "round %u", round);
        cr_assert_eq(share_part_ack(sp, A, 0, 1, SHARE_ACK_RELEASE, now), 0);
    }
    cr_assert_eq(acquire(A, 3, 100, now), 1, "a third record, delivered once");
    cr_assert_eq(share_part_ack(sp, A, 2, 2, SHARE_ACK_REJECT, now), 0);
    cr_assert_eq(reg.stats.deliveries, 7);
    cr_assert_eq(reg.stats.redeliveries, 4, "rounds 2 and 3 of the first two");
    cr_assert_eq(reg.stats.dead_lettered, 3, "two at max deliveries, one rejected");
}

/* ---- refused acks ---- */

Test(share, acks_by_the_wrong_member_for_ended_locks_or_outside_the_window_are_refused)
{
    setup_reg(1000, 5);
    cr_assert_eq(acquire(A, 5, 100, T0), 5);
    cr_assert_eq(acquire(B, 8, 100, T0 + 10), 3);
    cr_assert_eq(share_part_ack(sp, B, 0, 0, SHARE_ACK_ACCEPT, T0), -NG_ENOT_ACQUIRED);
    cr_assert_eq(share_part_ack(sp, A, 4, 5, SHARE_ACK_ACCEPT, T0), -NG_ENOT_ACQUIRED,
                 "5 is B's: the whole range is refused");
    cr_assert_eq(info(4).state, SHARE_ACQUIRED, "nothing changed");
    cr_assert_eq(share_part_ack(sp, A, 0, 1, SHARE_ACK_ACCEPT, T0 + LOCK), -NG_ENOT_ACQUIRED,
                 "lock ended");
    cr_assert_eq(share_part_ack(sp, A, 7, 9, SHARE_ACK_ACCEPT, T0), -NG_ENOT_ACQUIRED,
                 "past end: never handed out");
    cr_assert_eq(share_part_ack(sp, A, 100, 100, SHARE_ACK_ACCEPT, T0), -NG_ENOT_ACQUIRED);
    cr_assert_eq(share_part_ack(sp, A, 0, 1, SHARE_ACK_ACCEPT, T0), 0);
    cr_assert_eq(share_part_ack(sp, A, 0, 1, SHARE_ACK_ACCEPT, T0), -NG_ENOT_ACQUIRED,
                 "below start: finished");
    cr_assert_eq(share_part_ack(sp, A, 3, 2, SHARE_ACK_ACCEPT, T0), -NG_EBADARG);
    cr_assert_eq(share_part_ack(sp, A, -1, 2, SHARE_ACK_ACCEPT, T0), -NG_EBADARG);
    cr_assert_eq(share_part_ack(sp, A, 2, 2, (enum share_ack_type)0, T0), -NG_EBADARG);
    cr_assert_eq(share_part_ack(sp, A, 2, 2, (enum share_ack_type)4, T0), -NG_EBADARG);
    cr_assert_eq(share_part_ack(sp, A, 2, 3, SHARE_ACK_REJECT, T0), 0);
    cr_assert_eq(share_part_ack(sp, A, 2, 2, SHARE_ACK_RELEASE, T0), -NG_ENOT_ACQUIRED,
                 "already rejected");
    share_part_verify(sp);
}

/* ---- the window bound ---- */

Test(share, the_window_bound_stops_acquisition_until_start_advances)
{
    setup_reg(10, 5);
    cr_assert_eq(acquire(A, 100, 100, T0), 10);
    cr_assert_eq(acquire(B, 100, 100, T0), 0, "window full");
    /* acks that do not finish the record at start do not make room */
    cr_assert_eq(share_part_ack(sp, A, 5, 9, SHARE_ACK_ACCEPT, T0), 0);
    cr_assert_eq(acquire(B, 100, 100, T0), 0);
    /* redeliveries inside the window are still handed out */
    cr_assert_eq(share_part_ack(sp, A, 2, 2, SHARE_ACK_RELEASE, T0), 0);
    cr_assert_eq(acquire(B, 100, 100, T0), 1);
    expect_grant(0, 2, 2, 2);
    cr_assert_eq(share_part_ack(sp, A, 0, 1, SHARE_ACK_ACCEPT, T0), 0);
    cr_assert_eq(share_part_start(sp), 2);
    cr_assert_eq(acquire(C, 100, 100, T0), 2, "start moved by 2: room for 2");
    expect_grant(0, 10, 11, 1);
    cr_assert_eq(share_part_end(sp) - share_part_start(sp), 10);
    cr_assert_eq(share_part_ack(sp, B, 2, 2, SHARE_ACK_ACCEPT, T0), 0);
    cr_assert_eq(share_part_ack(sp, A, 3, 4, SHARE_ACK_ACCEPT, T0), 0);
    cr_assert_eq(share_part_start(sp), 10);
    cr_assert_eq(acquire(C, 100, 100, T0), 8);
}

/* ---- members leaving ---- */

Test(share, a_member_leaving_releases_its_locks_with_counts_kept)
{
    setup_reg(1000, 5);
    struct share_part *other;
    struct share_part *elsewhere;
    cr_assert_eq(share_reg_open(&reg, "g", 1, "t", 1, 1, 0, &other), 0);
    cr_assert_eq(share_reg_open(&reg, "h", 1, "t", 1, 0, 0, &elsewhere), 0);
    cr_assert_eq(acquire(A, 3, 100, T0), 3);
    cr_assert_eq(acquire(B, 5, 100, T0), 2);
    uint32_t n;
    cr_assert_eq(share_part_acquire(other, A, 4, 100, T0, LOCK, grants, 64, &n), 0);
    cr_assert_eq(share_part_acquire(elsewhere, A, 4, 100, T0, LOCK, grants, 64, &n), 0);
    uint32_t released;
    cr_assert_eq(share_reg_member_leave(&reg, "g", 1, A, &released), 0);
    cr_assert_eq(released, 7, "every part of group g");
    cr_assert_eq(share_part_count(elsewhere, SHARE_ACQUIRED), 4, "group h untouched");
    cr_assert_eq(info(0).state, SHARE_AVAILABLE);
    cr_assert_eq(info(0).delivery_count, 1);
    cr_assert_eq(info(3).member, B, "B keeps its locks");
    cr_assert_eq(acquire(C, 5, 100, T0), 3);
    expect_grant(0, 0, 2, 2);
    cr_assert_eq(share_part_release_member(sp, B, &released), 0);
    cr_assert_eq(released, 2);
    share_part_verify(other);
}

/* ---- trim, failure, names ---- */

Test(share, trim_moves_start_past_records_the_log_no_longer_holds)
{
    setup_reg(1000, 5);
    cr_assert_eq(acquire(A, 6, 100, T0), 6);
    cr_assert_eq(share_part_ack(sp, A, 5, 5, SHARE_ACK_REJECT, T0), 0);
    cr_assert_eq(share_part_trim(sp, 3), 0);
    cr_assert_eq(share_part_start(sp), 3);
    cr_assert_eq(share_part_ack(sp, A, 1, 1, SHARE_ACK_ACCEPT, T0), -NG_ENOT_ACQUIRED);
    cr_assert_eq(share_part_ack(sp, A, 3, 4, SHARE_ACK_ACCEPT, T0), 0);
    cr_assert_eq(share_part_start(sp), 5, "the dead letter holds start");
    cr_assert_eq(share_part_trim(sp, 50), 0);
    cr_assert_eq(share_part_start(sp), 50);
    cr_assert_eq(share_part_end(sp), 50);
    cr_assert_eq(share_part_dead_pending(sp), 0);
    cr_assert_eq(acquire(B, 52, 100, T0), 2);
    expect_grant(0, 50, 51, 1);
}

Test(share, a_failed_registry_refuses_everything)
{
    setup_reg(1000, 5);
    cr_assert_eq(acquire(A, 3, 100, T0), 3);
    share_reg_fail(&reg, -EIO);
    uint32_t n;
    cr_assert_eq(share_part_acquire(sp, B, 5, 100, T0, LOCK, grants, 64, &n), -EIO);
    cr_assert_eq(n, 0);
    cr_assert_eq(share_part_ack(sp, A, 0, 0, SHARE_ACK_ACCEPT, T0), -EIO);
    uint8_t buf[SHARE_FLUSH_BYTES_MIN(1000)];
    size_t bytes;
    cr_assert_eq(share_reg_flush(&reg, T0, buf, sizeof(buf), &bytes), -EIO);
    struct share_part *p;
    cr_assert_eq(share_reg_open(&reg, "g", 1, "x", 1, 0, 0, &p), -EIO);
    cr_assert_eq(info(0).state, SHARE_ACQUIRED, "nothing changed");
}

Test(share, open_checks_names_and_bounds_and_finds_existing_parts)
{
    setup_reg(1000, 5);
    struct share_part *p;
    char long_name[SHARE_NAME_BYTES_MAX + 1];
    memset(long_name, 'x', sizeof(long_name));
    cr_assert_eq(share_reg_open(&reg, "", 0, "t", 1, 0, 0, &p), -NG_EBADNAME);
    cr_assert_eq(share_reg_open(&reg, long_name, sizeof(long_name), "t", 1, 0, 0, &p),
                 -NG_EBADNAME);
    cr_assert_eq(share_reg_open(&reg, "g", 1, long_name, SHARE_NAME_BYTES_MAX, 0, 0, &p), 0);
    cr_assert_eq(share_reg_open(&reg, "g", 1, "t", 1, -1, 0, &p), -NG_EBADARG);
    cr_assert_eq(share_reg_open(&reg, "g", 1, "t", 1, 0, -1, &p), -NG_EBADARG);
    cr_assert_eq(share_reg_open(&reg, "g", 1, "t", 1, 0, 500, &p), 0);
    cr_assert_eq(p, sp, "an existing part keeps its start");
    cr_assert_eq(share_part_start(p), 0);
    cr_assert_eq(share_reg_find(&reg, "g", 1, "t", 1, 0), sp);
    cr_assert_null(share_reg_find(&reg, "g", 1, "t", 1, 1));
    cr_assert_null(share_reg_find(&reg, "gg", 2, "t", 1, 0));
    cr_assert_eq(share_reg_count(&reg), 2);
}

Test(share, the_registry_is_bounded_by_parts_max)
{
    struct share_config cfg;
    share_config_default(&cfg);
    cfg.parts_max = 3;
    cr_assert_eq(share_reg_init(&reg, &cfg), 0);
    struct share_part *p;
    for (int32_t i = 0; i < 3; i++) {
        cr_assert_eq(share_reg_open(&reg, "g", 1, "t", 1, 2 - i, 0, &p), 0);
    }
    cr_assert_eq(share_reg_open(&reg, "g", 1, "t", 1, 7, 0, &p), -NG_ETOOBIG);
    for (uint32_t i = 0; i < 3; i++) {
        cr_assert_eq(share_reg_part(&reg, i)->partition, (int32_t)i, "kept sorted");
    }
}

/* ---- durability ---- */

static struct share_reg reg2;

static void teardown_both(void)
{
    teardown();
    if (reg2.parts != NULL) {
        share_reg_fini(&reg2);
    }
}

/* A state log kept in memory: the batches flushed, in order. */
struct mem_log {
    uint8_t **batches;
    size_t *lens;
    size_t count;
};

static uint8_t flush_buf[SHARE_FLUSH_BYTES_MIN(SHARE_INFLIGHT_LIMIT)];

static void mem_log_free(struct mem_log *l)
{
    for (size_t i = 0; i < l->count; i++) {
        free(l->batches[i]);
    }
    free(l->batches);
    free(l->lens);
    memset(l, 0, sizeof(*l));
}

/* Flushes r with a buffer of cap bytes until clean; returns the batches made. */
static size_t mem_log_flush(struct share_reg *r, struct mem_log *l, size_t cap)
{
    size_t made = 0;
    while (share_reg_dirty(r)) {
        size_t n;
        cr_assert_eq(share_reg_flush(r, T0, flush_buf, cap, &n), 0);
        cr_assert_gt(n, 0);
        l->batches = realloc(l->batches, (l->count + 1) * sizeof(*l->batches));
        l->lens = realloc(l->lens, (l->count + 1) * sizeof(*l->lens));
        cr_assert(l->batches != NULL && l->lens != NULL);
        l->batches[l->count] = malloc(n);
        cr_assert_not_null(l->batches[l->count]);
        memcpy(l->batches[l->count], flush_buf, n);
        l->lens[l->count++] = n;
        made++;
    }
    return made;
}

static void mem_log_replay(struct share_reg *r, const struct mem_log *l, size_t from)
{
    for (size_t i = from; i < l->count; i++) {
        int rc = share_reg_replay_batch(r, l->batches[i], l->lens[i]);
        cr_assert_eq(rc, 0, "batch %zu: %s", i, err_str(rc));
    }
}

/* back is live rebuilt from a log holding every change of live: the same
 * window, finished records finished, locks gone (the delivery in flight
 * not counted), records acquired since the last flush not yet known. */
static void expect_rebuilt(const struct share_part *live, const struct share_part *back)
{
    share_part_verify(back);
    cr_assert_eq(share_part_start(back), share_part_start(live));
    cr_assert_leq(share_part_end(back), share_part_end(live));
    cr_assert_eq(share_part_count(back, SHARE_ACQUIRED), 0);
    for (int64_t off = share_part_start(live); off < share_part_end(live); off++) {
        struct share_record_info l;
        struct share_record_info b;
        cr_assert_eq(share_part_record(live, off, &l), 0);
        if (off >= share_part_end(back)) {
            cr_assert(l.state == SHARE_ACQUIRED && l.delivery_count == 1, "offset %ld", (long)off);
            continue;
        }
        cr_assert_eq(share_part_record(back, off, &b), 0);
        bool held = l.state == SHARE_ACQUIRED;
        cr_assert_eq(b.state, held ? SHARE_AVAILABLE : l.state, "offset %ld", (long)off);
        if (l.state == SHARE_AVAILABLE || l.state == SHARE_ACQUIRED ||
            l.state == SHARE_DEADLETTER) {
            cr_assert_eq(b.delivery_count, l.delivery_count - (held ? 1 : 0),
                         "offset %ld: %u vs %u", (long)off, b.delivery_count, l.delivery_count);
        }
        if (l.state == SHARE_DEADLETTER) {
            cr_assert_eq(b.reason, l.reason);
        }
    }
}

static void expect_registry_rebuilt(struct share_reg *live, struct share_reg *back)
{
    cr_assert_eq(share_reg_count(back), share_reg_count(live));
    for (uint32_t i = 0; i < share_reg_count(live); i++) {
        struct share_part *l = share_reg_part(live, i);
        struct share_part *b =
            share_reg_find(back, l->group, l->group_len, l->topic, l->topic_len, l->partition);
        cr_assert_not_null(b, "part %u", i);
        expect_rebuilt(l, b);
    }
    cr_assert(!share_reg_dirty(back));
}

Test(share, only_changes_that_must_survive_a_restart_make_the_registry_dirty, .fini = teardown_both)
{
    setup_reg(1000, 5);
    cr_assert(share_reg_dirty(&reg), "a new part's start must be persisted");
    struct mem_log l = {0};
    cr_assert_eq(mem_log_flush(&reg, &l, sizeof(flush_buf)), 1);
    cr_assert_eq(acquire(A, 5, 100, T0), 5);
    cr_assert(!share_reg_dirty(&reg), "acquisitions are not persisted");
    cr_assert_eq(share_part_ack(sp, B, 0, 0, SHARE_ACK_ACCEPT, T0), -NG_ENOT_ACQUIRED);
    cr_assert(!share_reg_dirty(&reg), "a refused ack changes nothing");
    cr_assert_eq(share_part_ack(sp, A, 0, 0, SHARE_ACK_ACCEPT, T0), 0);
    cr_assert(share_reg_dirty(&reg));
    cr_assert_eq(mem_log_flush(&reg, &l, sizeof(flush_buf)), 1);
    struct share_config cfg = reg.cfg;
    cr_assert_eq(share_reg_init(&reg2, &cfg), 0);
    mem_log_replay(&reg2, &l, 0);
    expect_registry_rebuilt(&reg, &reg2);
    mem_log_free(&l);
}

/* The format share_state.h documents, written by hand. */
static size_t hand_value(uint8_t *v, uint8_t version, uint8_t flags, int64_t start, int64_t end)
{
    struct wr w = wr_make(v, 256);
    wr_u8(&w, version);
    wr_u8(&w, flags);
    wr_be64(&w, (uint64_t)start);
    wr_be64(&w, (uint64_t)end);
    wr_be32(&w, 2);
    /* [start + 1, start + 2] ACCEPTED; [start + 4] DEADLETTER max deliveries x5 */
    wr_uvarint(&w, 1);
    wr_uvarint(&w, 1);
    wr_u8(&w, SHARE_ACCEPTED);
    wr_u8(&w, 0);
    wr_uvarint(&w, 0);
    wr_uvarint(&w, 1);
    wr_uvarint(&w, 0);
    wr_u8(&w, SHARE_DEADLETTER);
    wr_u8(&w, SHARE_REASON_MAX_DELIVERIES);
    wr_uvarint(&w, 5);
    cr_assert_eq(w.err, 0);
    return w.pos;
}

static const uint8_t hand_key[] = {0, 1, 'g', 0, 1, 't', 0, 0, 0, 0};

/* One batch with one record (key, value) into buf; returns its size. */
static size_t one_record_batch(uint8_t *buf, size_t cap, const uint8_t *key, size_t key_len,
                               const uint8_t *value, size_t value_len)
{
    struct batch_builder b;
    batch_builder_init(&b, buf, cap, BATCH_CODEC_NONE, -1, 0, -1);
    cr_assert_eq(
        batch_builder_add(&b, T0, key, (int32_t)key_len, value, (int32_t)value_len, NULL, 0), 0);
    size_t n;
    cr_assert_eq(batch_builder_finish(&b, NULL, &n), 0);
    return n;
}

/* Replays one record into a fresh registry of inflight_max; returns rc. */
static int replay_one(uint32_t inflight_max, const uint8_t *key, size_t key_len,
                      const uint8_t *value, size_t value_len)
{
    static uint8_t batch[4096];
    size_t n = one_record_batch(batch, sizeof(batch), key, key_len, value, value_len);
    if (reg.parts != NULL) {
        share_reg_fini(&reg);
    }
    struct share_config cfg;
    share_config_default(&cfg);
    cfg.inflight_max = inflight_max;
    cr_assert_eq(share_reg_init(&reg, &cfg), 0);
    return share_reg_replay_batch(&reg, batch, n);
}

Test(share, replay_follows_the_documented_format)
{
    log_set_level(LOG_OFF);
    uint8_t v[256];
    size_t vlen = hand_value(v, 1, 1, 10, 15);
    cr_assert_eq(replay_one(1000, hand_key, sizeof(hand_key), v, vlen), 0);
    sp = share_reg_find(&reg, "g", 1, "t", 1, 0);
    cr_assert_not_null(sp);
    share_part_verify(sp);
    cr_assert_eq(share_part_start(sp), 10);
    cr_assert_eq(share_part_end(sp), 15);
    cr_assert_eq(info(10).state, SHARE_AVAILABLE);
    cr_assert_eq(info(10).delivery_count, 0);
    cr_assert_eq(info(11).state, SHARE_ACCEPTED);
    cr_assert_eq(info(12).state, SHARE_ACCEPTED);
    cr_assert_eq(info(13).state, SHARE_AVAILABLE);
    cr_assert_eq(info(14).state, SHARE_DEADLETTER);
    cr_assert_eq(info(14).reason, SHARE_REASON_MAX_DELIVERIES);
    cr_assert_eq(info(14).delivery_count, 5);
    cr_assert(!share_reg_dirty(&reg), "replay does not make changes to persist");
    cr_assert_eq(acquire(A, 20, 100, T0), 7);
    expect_grant(0, 10, 10, 1);
    expect_grant(1, 13, 13, 1);
    expect_grant(2, 15, 19, 1);
}

Test(share, replay_refuses_every_truncation_and_bad_field)
{
    log_set_level(LOG_OFF);
    uint8_t v[256];
    size_t vlen = hand_value(v, 1, 0, 10, 15);
    for (size_t n = 0; n < vlen; n++) {
        cr_assert_eq(replay_one(1000, hand_key, sizeof(hand_key), v, n), -NG_ECORRUPT,
                     "value cut at %zu", n);
    }
    for (size_t n = 0; n < sizeof(hand_key); n++) {
        cr_assert_eq(replay_one(1000, hand_key, n, v, vlen), -NG_ECORRUPT, "key cut at %zu", n);
    }
    v[vlen] = 0;
    cr_assert_eq(replay_one(1000, hand_key, sizeof(hand_key), v, vlen + 1), -NG_ECORRUPT,
                 "a byte after the last range");
    const uint8_t empty_group[] = {0, 0, 0, 1, 't', 0, 0, 0, 0};
    cr_assert_eq(replay_one(1000, empty_group, sizeof(empty_group), v, vlen), -NG_ECORRUPT);
    const uint8_t bad_partition[] = {0, 1, 'g', 0, 1, 't', 0x80, 0, 0, 0};
    cr_assert_eq(replay_one(1000, bad_partition, sizeof(bad_partition), v, vlen), -NG_ECORRUPT);
    cr_assert_eq(replay_one(1000, hand_key, sizeof(hand_key), v, hand_value(v, 2, 0, 10, 15)),
                 -NG_EBADVERSION);
    cr_assert_eq(replay_one(1000, hand_key, sizeof(hand_key), v, hand_value(v, 1, 2, 10, 15)),
                 -NG_ECORRUPT, "unknown flag");
    cr_assert_eq(replay_one(1000, hand_key, sizeof(hand_key), v, hand_value(v, 1, 0, 10, 14)),
                 -NG_ECORRUPT, "range past end");
    cr_assert_eq(replay_one(1000, hand_key, sizeof(hand_key), v, hand_value(v, 1, 0, 10, 9)),
                 -NG_ECORRUPT, "end below start");
    cr_assert_eq(replay_one(1000, hand_key, sizeof(hand_key), v, hand_value(v, 1, 0, -1, 15)),
                 -NG_ECORRUPT, "negative start");
    cr_assert_eq(replay_one(4, hand_key, sizeof(hand_key), v, hand_value(v, 1, 0, 10, 15)),
                 -NG_ETOOBIG, "a window wider than inflight_max");
    vlen = hand_value(v, 1, 0, 10, 15);
    v[22 + 2] = SHARE_ACQUIRED; /* first range's state: never persisted */
    cr_assert_eq(replay_one(1000, hand_key, sizeof(hand_key), v, vlen), -NG_ECORRUPT);
    vlen = hand_value(v, 1, 0, 10, 15);
    v[vlen - 2] = 0; /* dead letter without a reason */
    cr_assert_eq(replay_one(1000, hand_key, sizeof(hand_key), v, vlen), -NG_ECORRUPT);
}

Test(share, replay_refuses_start_or_end_going_back)
{
    log_set_level(LOG_OFF);
    uint8_t v[256];
    size_t vlen = hand_value(v, 1, 0, 10, 15);
    cr_assert_eq(replay_one(1000, hand_key, sizeof(hand_key), v, vlen), 0);
    uint8_t batch[512];
    size_t n = one_record_batch(batch, sizeof(batch), hand_key, sizeof(hand_key), v,
                                hand_value(v, 1, 0, 9, 15));
    cr_assert_eq(share_reg_replay_batch(&reg, batch, n), -NG_ECORRUPT);
    n = one_record_batch(batch, sizeof(batch), hand_key, sizeof(hand_key), v,
                         hand_value(v, 1, 1, 10, 14));
    cr_assert_eq(share_reg_replay_batch(&reg, batch, n), -NG_ECORRUPT);
    n = one_record_batch(batch, sizeof(batch), hand_key, sizeof(hand_key), v,
                         hand_value(v, 1, 1, 10, 16));
    cr_assert_eq(share_reg_replay_batch(&reg, batch, n), 0, "a later snapshot replaces all");
    batch[n - 1] ^= 1;
    cr_assert_eq(share_reg_replay_batch(&reg, batch, n), -NG_ECHECKSUM);
}

/* A mixed history on two parts; returns with everything flushed to l. */
static void mixed_history(struct mem_log *l, struct share_part **other)
{
    cr_assert_eq(share_reg_open(&reg, "g2", 2, "t", 1, 1, 100, other), 0);
    cr_assert_eq(acquire(A, 20, 20, T0), 20);
    cr_assert_eq(share_part_ack(sp, A, 0, 4, SHARE_ACK_ACCEPT, T0), 0);
    cr_assert_eq(share_part_ack(sp, A, 7, 7, SHARE_ACK_ACCEPT, T0), 0);
    cr_assert_eq(share_part_ack(sp, A, 8, 8, SHARE_ACK_REJECT, T0), 0);
    cr_assert_eq(share_part_ack(sp, A, 9, 10, SHARE_ACK_RELEASE, T0), 0);
    cr_assert_eq(share_part_ack(sp, A, 11, 11, SHARE_ACK_REJECT, T0), 0);
    mem_log_flush(&reg, l, sizeof(flush_buf));
    cr_assert_eq(acquire(B, 20, 1, T0), 1); /* 9 again, count 2: not persisted */
    struct share_dead dead[4];
    uint32_t n;
    cr_assert_eq(share_part_dead_take(sp, dead, 4, &n), 0);
    cr_assert_eq(n, 2);
    cr_assert_eq(share_part_dead_done(sp, 11, 0), 0);   /* copied: archived */
    cr_assert_eq(share_part_dead_done(sp, 8, -EIO), 0); /* copy failed: pending */
    cr_assert_eq(share_part_acquire(*other, C, 110, 100, T0, LOCK, grants, 64, &n), 0);
    cr_assert_eq(share_part_ack(*other, C, 100, 101, SHARE_ACK_ACCEPT, T0), 0);
    cr_assert_eq(share_part_ack(*other, C, 105, 105, SHARE_ACK_RELEASE, T0), 0);
    mem_log_flush(&reg, l, sizeof(flush_buf));
    cr_assert_eq(share_part_acquire(*other, C, 110, 1, T0, LOCK, grants, 64, &n), 0);
    expect_grant(0, 105, 105, 2);
}

static struct fx f;

static void fx_init(void)
{
    fx_setup(&f);
    cr_assert_eq(fx_open(&f), 0);
}

static void fx_fini(void)
{
    teardown_both();
    fx_teardown(&f);
}

Test(share, encode_and_replay_through_a_partition_log_rebuild_the_state, .init = fx_init,
     .fini = fx_fini)
{
    setup_reg(1000, 3);
    struct mem_log l = {0};
    struct share_part *other;
    mixed_history(&l, &other);
    for (size_t i = 0; i < l.count; i++) {
        int64_t off = fx_append(&f, l.batches[i], l.lens[i], true);
        cr_assert_geq(off, 0, "append: %s", err_str((int)off));
    }
    fx_close(&f);
    cr_assert_eq(fx_open(&f), 0);
    struct share_config cfg = reg.cfg;
    cr_assert_eq(share_reg_init(&reg2, &cfg), 0);
    static uint8_t buf[FX_BATCH_MAX];
    cr_assert_eq(share_reg_replay(&reg2, &f.part, buf, sizeof(buf)), 0);
    expect_registry_rebuilt(&reg, &reg2);
    /* and in the terms of the contract: */
    struct share_part *live = sp;
    sp = share_reg_find(&reg2, "g", 1, "t", 1, 0);
    cr_assert_eq(share_part_start(sp), 5, "accepted records stay finished");
    cr_assert_eq(info(7).state, SHARE_ACCEPTED);
    cr_assert_eq(info(8).state, SHARE_DEADLETTER, "an uncopied dead letter comes back");
    cr_assert_eq(info(11).state, SHARE_ARCHIVED);
    cr_assert_eq(info(9).delivery_count, 1, "B's delivery was in flight: not counted");
    cr_assert_eq(share_part_dead_pending(sp), 1);
    cr_assert_eq(acquire(C, 20, 100, T0), 12, "every unaccepted record comes back");
    expect_grant(0, 5, 6, 1);
    expect_grant(1, 9, 10, 2);
    expect_grant(2, 12, 19, 1);
    (void)live;
}

Test(share, a_checkpoint_makes_the_log_from_it_onwards_enough, .fini = teardown_both)
{
    setup_reg(1000, 3);
    struct mem_log l = {0};
    struct share_part *other;
    mixed_history(&l, &other);
    share_reg_checkpoint(&reg);
    size_t from = l.count;
    cr_assert_eq(mem_log_flush(&reg, &l, sizeof(flush_buf)), 1);
    cr_assert_eq(share_part_ack(other, C, 102, 104, SHARE_ACK_ACCEPT, T0), 0);
    mem_log_flush(&reg, &l, sizeof(flush_buf));
    struct share_config cfg = reg.cfg;
    cr_assert_eq(share_reg_init(&reg2, &cfg), 0);
    mem_log_replay(&reg2, &l, from);
    expect_registry_rebuilt(&reg, &reg2);
    share_reg_fini(&reg2);
    cr_assert_eq(share_reg_init(&reg2, &cfg), 0);
    mem_log_replay(&reg2, &l, 0);
    expect_registry_rebuilt(&reg, &reg2);
    mem_log_free(&l);
}

Test(share, a_dropped_topic_leaves_the_registry_and_replays_as_gone, .fini = teardown_both)
{
    setup_reg(1000, 5);
    struct share_part *other;
    struct share_part *second;
    cr_assert_eq(share_reg_open(&reg, "g", 1, "u", 1, 0, 0, &other), 0);
    cr_assert_eq(share_reg_open(&reg, "h", 1, "t", 1, 3, 0, &second), 0);
    cr_assert_eq(acquire(A, 10, 4, T0), 4);
    cr_assert_eq(share_part_ack(sp, A, 0, 3, SHARE_ACK_ACCEPT, T0), 0);
    struct mem_log l = {0};
    mem_log_flush(&reg, &l, sizeof(flush_buf));
    uint32_t dropped;
    share_reg_drop_topic(&reg, "t", 1, &dropped);
    cr_assert_eq(dropped, 2, "every group's parts of t");
    cr_assert_eq(share_reg_count(&reg), 1);
    cr_assert_null(share_reg_find(&reg, "g", 1, "t", 1, 0));
    cr_assert(share_reg_dirty(&reg), "the tombstones are due");
    /* A topic t created again: its part starts afresh. */
    cr_assert_eq(share_reg_open(&reg, "g", 1, "t", 1, 0, 0, &sp), 0);
    cr_assert_eq(share_part_start(sp), 0);
    mem_log_flush(&reg, &l, sizeof(flush_buf));
    cr_assert_null(reg.gone, "flushed tombstones free their parts");
    struct share_config cfg = reg.cfg;
    cr_assert_eq(share_reg_init(&reg2, &cfg), 0);
    mem_log_replay(&reg2, &l, 0);
    expect_registry_rebuilt(&reg, &reg2);
    cr_assert_null(share_reg_find(&reg2, "h", 1, "t", 1, 3), "gone after replay too");
    mem_log_free(&l);
}

Test(share, a_dropped_part_with_dead_letters_in_flight_lives_until_they_are_done)
{
    setup_reg(1000, 5);
    cr_assert_eq(acquire(A, 3, 100, T0), 3);
    cr_assert_eq(share_part_ack(sp, A, 0, 2, SHARE_ACK_REJECT, T0), 0);
    struct share_dead dead[8];
    uint32_t n;
    cr_assert_eq(share_part_dead_take(sp, dead, 8, &n), 0);
    cr_assert_eq(n, 3);
    uint32_t dropped;
    share_reg_drop_topic(&reg, "t", 1, &dropped);
    cr_assert_eq(dropped, 1);
    size_t bytes;
    cr_assert_eq(share_reg_flush(&reg, T0, flush_buf, sizeof(flush_buf), &bytes), 0);
    cr_assert_eq(reg.gone, sp, "copies in flight hold it");
    cr_assert_eq(share_part_dead_done(sp, dead[0].offset, 0), -NG_ENOTFOUND);
    cr_assert_eq(share_part_dead_done(sp, dead[1].offset, -EIO), -NG_ENOTFOUND);
    cr_assert(!share_reg_dirty(&reg), "a gone part records nothing more");
    cr_assert_eq(share_part_dead_done(sp, dead[2].offset, 0), -NG_ENOTFOUND);
    cr_assert_null(reg.gone, "the last copy freed it");
}

Test(share, a_flush_too_big_for_one_batch_continues_in_the_next, .fini = teardown_both)
{
    setup_reg(1000, 5);
    struct share_part *parts[12];
    char topic[8];
    for (int i = 0; i < 12; i++) {
        int n = snprintf(topic, sizeof(topic), "t%d", i);
        cr_assert_eq(share_reg_open(&reg, "g", 1, topic, (size_t)n, 0, 0, &parts[i]), 0);
        uint32_t got;
        cr_assert_eq(share_part_acquire(parts[i], A, 1000, 1000, T0, LOCK, grants, 64, &got), 0);
        for (int64_t off = 1; off < 1000; off += 2) { /* ~500 ranges */
            cr_assert_eq(share_part_ack(parts[i], A, off, off, SHARE_ACK_ACCEPT, T0), 0);
        }
    }
    struct mem_log l = {0};
    size_t made = mem_log_flush(&reg, &l, SHARE_FLUSH_BYTES_MIN(1000));
    cr_assert_geq(made, 2, "made %zu", made);
    struct share_config cfg = reg.cfg;
    cr_assert_eq(share_reg_init(&reg2, &cfg), 0);
    mem_log_replay(&reg2, &l, 0);
    expect_registry_rebuilt(&reg, &reg2);
    mem_log_free(&l);
}

/* ---- four members racing ---- */

#define RACE_RECORDS 10000
#define RACE_MEMBERS 4
#define RACE_HELD_MAX 16

struct held {
    int64_t first;
    int64_t last;
    int64_t deadline;
};

struct sim_member {
    uint64_t id;
    struct held held[RACE_HELD_MAX];
    uint32_t count;
};

struct sim {
    uint64_t seed;
    int64_t now;
    struct sim_member m[RACE_MEMBERS];
    uint64_t holder[RACE_RECORDS];
    int64_t holder_deadline[RACE_RECORDS];
    uint8_t accepted[RACE_RECORDS];
    bool crashes; /* flush after every change; restart now and then */
    struct mem_log log;
    uint64_t expired, redelivered, refused, restarts;
};

static uint32_t below(struct sim *s, uint32_t n)
{
    s->seed ^= s->seed << 13;
    s->seed ^= s->seed >> 7;
    s->seed ^= s->seed << 17;
    return (uint32_t)(s->seed % n);
}

static void sim_persist(struct sim *s)
{
    if (s->crashes) {
        mem_log_flush(&reg, &s->log, sizeof(flush_buf));
    }
}

/* m got off again after its lock on it ended (maybe after others held it):
 * it drops the stale entry (every record of an entry shares its deadline,
 * so all of it is stale). */
static void sim_forget(struct sim_member *m, int64_t off)
{
    for (uint32_t i = 0; i < m->count; i++) {
        if (off >= m->held[i].first && off <= m->held[i].last) {
            m->held[i] = m->held[--m->count];
            return;
        }
    }
}

static void sim_take(struct sim *s, struct sim_member *m, int64_t off, int64_t deadline,
                     uint16_t count)
{
    cr_assert_eq(s->accepted[off], 0, "offset %ld accepted, handed out again", (long)off);
    cr_assert(s->holder[off] == 0 || s->holder_deadline[off] <= s->now,
              "offset %ld held by %lu until %ld, handed to %lu at %ld", (long)off,
              (unsigned long)s->holder[off], (long)s->holder_deadline[off], (unsigned long)m->id,
              (long)s->now);
    sim_forget(m, off);
    s->holder[off] = m->id;
    s->holder_deadline[off] = deadline;
    s->redelivered += count > 1 ? 1 : 0;
}

static void sim_poll(struct sim *s, struct sim_member *m)
{
    if (m->count >= 3) {
        return;
    }
    int64_t lock = 20 + below(s, 60);
    uint32_t n;
    cr_assert_eq(share_part_acquire(sp, m->id, RACE_RECORDS, 1 + below(s, 8), s->now, lock, grants,
                                    RACE_HELD_MAX - m->count, &n),
                 0);
    for (uint32_t i = 0; i < n; i++) {
        for (int64_t off = grants[i].first; off <= grants[i].last; off++) {
            sim_take(s, m, off, s->now + lock, grants[i].delivery_count);
        }
        m->held[m->count++] = (struct held){grants[i].first, grants[i].last, s->now + lock};
    }
}

static void sim_ack(struct sim *s, struct sim_member *m)
{
    if (m->count == 0) {
        return;
    }
    uint32_t i = below(s, m->count);
    struct held h = m->held[i];
    uint32_t roll = below(s, 100);
    if (roll >= 94) {
        return; /* too slow this time; its lock may end */
    }
    m->held[i] = m->held[--m->count];
    enum share_ack_type type = roll < 85 ? SHARE_ACK_ACCEPT : SHARE_ACK_RELEASE;
    int rc = share_part_ack(sp, m->id, h.first, h.last, type, s->now);
    if (s->now >= h.deadline) {
        cr_assert_eq(rc, -NG_ENOT_ACQUIRED,
                     "ack of [%ld, %ld] by %lu at %ld after the lock ended at %ld: %s",
                     (long)h.first, (long)h.last, (unsigned long)m->id, (long)s->now,
                     (long)h.deadline, err_str(rc));
        s->refused++;
        return;
    }
    cr_assert_eq(rc, 0, "ack of a live lock [%ld, %ld]: %s", (long)h.first, (long)h.last,
                 err_str(rc));
    for (int64_t off = h.first; off <= h.last; off++) {
        s->holder[off] = 0;
        s->accepted[off] += type == SHARE_ACK_ACCEPT ? 1 : 0;
        cr_assert_leq(s->accepted[off], 1, "offset %ld accepted twice", (long)off);
    }
    sim_persist(s);
}

static void sim_leave(struct sim *s, struct sim_member *m)
{
    uint32_t released;
    cr_assert_eq(share_part_release_member(sp, m->id, &released), 0);
    for (uint32_t i = 0; i < m->count; i++) {
        for (int64_t off = m->held[i].first; off <= m->held[i].last; off++) {
            s->holder[off] = s->holder[off] == m->id ? 0 : s->holder[off];
        }
    }
    m->count = 0;
    sim_persist(s);
}

/* The broker restarts: the registry is rebuilt from the log; every lock and
 * every member session is gone. */
static void sim_restart(struct sim *s)
{
    cr_assert(!share_reg_dirty(&reg));
    struct share_config cfg = reg.cfg;
    cr_assert_eq(share_reg_init(&reg2, &cfg), 0);
    mem_log_replay(&reg2, &s->log, 0);
    expect_registry_rebuilt(&reg, &reg2);
    share_reg_fini(&reg2);
    share_reg_fini(&reg);
    cr_assert_eq(share_reg_init(&reg, &cfg), 0);
    mem_log_replay(&reg, &s->log, 0);
    sp = share_reg_find(&reg, "g", 1, "t", 1, 0);
    cr_assert_not_null(sp);
    memset(s->holder, 0, sizeof(s->holder));
    for (int i = 0; i < RACE_MEMBERS; i++) {
        s->m[i].count = 0;
    }
    s->restarts++;
}

static void sim_step(struct sim *s)
{
    s->now += below(s, 3);
    struct sim_member *m = &s->m[below(s, RACE_MEMBERS)];
    uint32_t roll = below(s, 1000);
    if (roll < 400) {
        sim_poll(s, m);
    } else if (roll < 950) {
        sim_ack(s, m);
    } else if (roll < 999) {
        uint32_t expired;
        int64_t next;
        cr_assert_eq(share_part_expire(sp, s->now, &expired, &next), 0);
        s->expired += expired;
        if (expired > 0) {
            sim_persist(s);
        }
    } else {
        sim_leave(s, m);
    }
    if (s->crashes && below(s, 800) == 0) {
        sim_restart(s);
    }
}

static void race(uint64_t seed, bool crashes)
{
    setup_reg(1000, SHARE_DELIVERY_LIMIT);
    static struct sim s;
    memset(&s, 0, sizeof(s));
    s.seed = seed;
    s.now = T0;
    s.crashes = crashes;
    for (int i = 0; i < RACE_MEMBERS; i++) {
        s.m[i].id = 100 + (uint64_t)i;
    }
    sim_persist(&s);
    uint64_t steps = 0;
    while (share_part_start(sp) < RACE_RECORDS) {
        sim_step(&s);
        cr_assert_lt(++steps, 5000000, "no progress");
        if (steps % 256 == 0) {
            share_part_verify(sp);
        }
    }
    for (int64_t off = 0; off < RACE_RECORDS; off++) {
        cr_assert_eq(s.accepted[off], 1, "offset %ld accepted %u times", (long)off,
                     s.accepted[off]);
    }
    cr_assert_eq(share_part_end(sp), RACE_RECORDS);
    cr_assert_eq(share_part_count(sp, SHARE_DEADLETTER), 0);
    cr_assert_gt(s.expired, 0, "locks expired");
    cr_assert_gt(s.redelivered, 0, "records were redelivered");
    cr_assert_gt(s.refused, 0, "late acks were refused");
    cr_assert(!crashes || s.restarts > 0, "restarted");
    cr_log_info("seed %lu: %lu steps, %lu expired, %lu redelivered, %lu refused, %lu restarts",
                (unsigned long)seed, (unsigned long)steps, (unsigned long)s.expired,
                (unsigned long)s.redelivered, (unsigned long)s.refused, (unsigned long)s.restarts);
    mem_log_free(&s.log);
}

#define RACE_SEEDS 8

Test(share, four_members_racing_accept_every_record_exactly_once, .fini = teardown_both)
{
    for (uint64_t i = 0; i < RACE_SEEDS; i++) {
        race(0x9e3779b97f4a7c15u * (i + 1), false);
        share_reg_fini(&reg);
    }
}

Test(share, four_members_racing_through_restarts_accept_every_record_exactly_once,
     .fini = teardown_both)
{
    for (uint64_t i = 0; i < RACE_SEEDS; i++) {
        race(0xd1b54a32d192ed03u * (i + 1), true);
        share_reg_fini(&reg);
    }
}
