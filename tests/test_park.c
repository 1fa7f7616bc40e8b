/* broker/park.h: long-poll parking, one mechanism for Fetch and ShareFetch. */
#include <criterion/criterion.h>
#include <signal.h>

#include "base/assert.h"
#include "broker/park.h"

/* A parked request naming up to two partitions, as fetch.c and share_serve.c
 * hold them: links in the request, one waiter. */
struct req {
    struct park_waiter w;
    struct park_link links[2];
    int woken;
    int abandoned;
    bool answer_on_wake;  /* leaves every list when woken */
    bool stay_on_abandon; /* breaks the contract */
    int order;            /* when it was last called */
};

static int calls;

static void req_leave(struct req *r)
{
    for (size_t i = 0; i < ARRAY_LEN(r->links); i++) {
        park_remove(&r->links[i]);
    }
}

static bool on_wake(struct park_waiter *w)
{
    struct req *r = container_of(w, struct req, w);
    r->woken++;
    r->order = ++calls;
    if (r->answer_on_wake) {
        req_leave(r);
        return true;
    }
    return false;
}

static void on_abandon(struct park_waiter *w)
{
    struct req *r = container_of(w, struct req, w);
    r->abandoned++;
    r->order = ++calls;
    if (!r->stay_on_abandon) {
        req_leave(r);
    }
}

static void req_init(struct req *r)
{
    *r = (struct req){0};
    park_waiter_init(&r->w, PARK_DATA | PARK_FREED, on_wake, on_abandon);
}

static void init(void) { calls = 0; }

TestSuite(park, .init = init);

Test(park, a_zeroed_list_is_empty_and_a_zeroed_link_is_not_linked)
{
    struct park_list list = {0};
    struct park_link l = {0};
    cr_assert(park_empty(&list));
    cr_assert_not(park_linked(&l));
    park_remove(&l); /* harmless */
    park_wake(&list, PARK_DATA);
    park_abandon(&list);
    cr_assert(park_empty(&list));
}

Test(park, wake_calls_each_waiter_once_newest_first_and_they_stay)
{
    struct park_list list = {0};
    struct req r[3];
    for (int i = 0; i < 3; i++) {
        req_init(&r[i]);
        park_add(&list, &r[i].links[0], &r[i].w);
        cr_assert(park_linked(&r[i].links[0]));
    }
    park_wake(&list, PARK_DATA);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(r[i].woken, 1);
        cr_assert_eq(r[i].order, 3 - i, "list order: the last parked first");
        cr_assert(park_linked(&r[i].links[0]), "a waiter that does not answer stays");
    }
    park_wake(&list, PARK_DATA);
    cr_assert_eq(r[0].woken, 2);
}

Test(park, a_waiter_that_answers_while_woken_leaves_and_the_others_are_still_called_once)
{
    struct park_list list = {0};
    struct req r[4];
    for (int i = 0; i < 4; i++) {
        req_init(&r[i]);
        r[i].answer_on_wake = i % 2 == 0;
        park_add(&list, &r[i].links[0], &r[i].w);
    }
    park_wake(&list, PARK_DATA);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(r[i].woken, 1, "waiter %d", i);
        cr_assert_eq(park_linked(&r[i].links[0]), i % 2 != 0);
    }
}

Test(park, a_request_naming_the_partition_twice_is_woken_once_and_leaves_with_both_links)
{
    struct park_list list = {0};
    struct req before;
    struct req twice;
    struct req after;
    req_init(&before);
    req_init(&twice);
    req_init(&after);
    twice.answer_on_wake = true;
    park_add(&list, &after.links[0], &after.w);
    park_add(&list, &twice.links[0], &twice.w);
    park_add(&list, &twice.links[1], &twice.w);
    park_add(&list, &before.links[0], &before.w);
    park_wake(&list, PARK_DATA);
    cr_assert_eq(twice.woken, 1);
    cr_assert_eq(before.woken, 1);
    cr_assert_eq(after.woken, 1);
    cr_assert_not(park_linked(&twice.links[0]));
    cr_assert_not(park_linked(&twice.links[1]));
    cr_assert(park_linked(&before.links[0]) && park_linked(&after.links[0]));
}

Test(park, a_waiter_on_two_lists_is_woken_by_each_and_leaves_both_when_it_answers)
{
    struct park_list a = {0};
    struct park_list b = {0};
    struct req r;
    req_init(&r);
    park_add(&a, &r.links[0], &r.w);
    park_add(&b, &r.links[1], &r.w);
    park_wake(&a, PARK_DATA);
    cr_assert_eq(r.woken, 1);
    r.answer_on_wake = true;
    park_wake(&b, PARK_DATA);
    cr_assert_eq(r.woken, 2);
    cr_assert(park_empty(&a) && park_empty(&b));
}

Test(park, a_wake_calls_only_the_waiters_waiting_for_its_event)
{
    struct park_list list = {0};
    struct req fetch;
    struct req share;
    req_init(&fetch);
    req_init(&share);
    park_waiter_init(&fetch.w, PARK_DATA, on_wake, on_abandon);
    park_add(&list, &fetch.links[0], &fetch.w);
    park_add(&list, &share.links[0], &share.w);
    park_wake(&list, PARK_FREED);
    cr_assert_eq(fetch.woken, 0, "a fetch does not wait for freed share records");
    cr_assert_eq(share.woken, 1);
    park_wake(&list, PARK_DATA);
    cr_assert_eq(fetch.woken, 1);
    cr_assert_eq(share.woken, 2);
}

Test(park, remove_takes_one_link_off_from_anywhere_in_the_list)
{
    struct park_list list = {0};
    struct req r[3];
    for (int i = 0; i < 3; i++) {
        req_init(&r[i]);
        park_add(&list, &r[i].links[0], &r[i].w);
    }
    park_remove(&r[1].links[0]); /* middle */
    park_remove(&r[2].links[0]); /* head */
    park_remove(&r[2].links[0]); /* again: harmless */
    park_wake(&list, PARK_DATA);
    cr_assert_eq(r[0].woken, 1);
    cr_assert_eq(r[1].woken + r[2].woken, 0);
    park_remove(&r[0].links[0]);
    cr_assert(park_empty(&list));
}

/* The drift this module ended: a partition going away answered its parked
 * fetches, and its parked share fetches only where the caller remembered
 * to. One list, one abandon: every kind of waiter is answered. */
Test(park, abandon_answers_every_waiter_of_every_kind_until_the_list_is_empty)
{
    struct park_list list = {0};
    struct req fetch;
    struct req share;
    struct req twice;
    req_init(&fetch);
    req_init(&share);
    req_init(&twice);
    park_add(&list, &fetch.links[0], &fetch.w);
    park_add(&list, &share.links[0], &share.w);
    park_add(&list, &twice.links[0], &twice.w);
    park_add(&list, &twice.links[1], &twice.w);
    park_abandon(&list);
    cr_assert(park_empty(&list));
    cr_assert_eq(fetch.abandoned, 1);
    cr_assert_eq(share.abandoned, 1);
    cr_assert_eq(twice.abandoned, 1);
    cr_assert_eq(fetch.woken + share.woken + twice.woken, 0);
}

Test(park, an_abandon_that_leaves_its_waiter_on_the_list_stops_on_an_assertion, .signal = SIGABRT)
{
    struct park_list list = {0};
    struct req r;
    req_init(&r);
    r.stay_on_abandon = true;
    park_add(&list, &r.links[0], &r.w);
    park_abandon(&list);
}

Test(park, adding_a_linked_link_stops_on_an_assertion, .signal = SIGABRT)
{
    struct park_list list = {0};
    struct req r;
    req_init(&r);
    park_add(&list, &r.links[0], &r.w);
    park_add(&list, &r.links[0], &r.w);
}
