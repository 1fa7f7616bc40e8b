/* Contract tests for cluster/etcd.h against real etcd members
 * (tests/etcd_support.h): ranges, transactions, leases, watches, and
 * endpoint failover. Waits poll for what etcd must do; none of them is a
 * bound on how fast it does it. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/err.h"
#include "cluster/etcd.h"
#include "tests/etcd_support.h"

#define TIMEOUT_MS 10000  /* the client's, per call */
#define PATIENCE_MS 60000 /* how long a test waits for etcd to act */

static struct ets c;
static struct etcd *e;

static void teardown(void)
{
    etcd_close(e);
    e = NULL;
    ets_fini(&c);
}

TestSuite(etcd, .fini = teardown, .timeout = 300);

/* Starts count members and a client of all of them. */
static void up(size_t count)
{
    ets_start(&c, count);
    struct etcd_config cfg;
    ets_config(&c, TIMEOUT_MS, &cfg);
    cr_assert_eq(etcd_open(&e, &cfg), 0);
}

static int put(const char *key, const char *value, int64_t lease)
{
    struct etcd_op op = {.kind = ETCD_OP_PUT,
                         .key = key,
                         .value = value,
                         .value_len = strlen(value),
                         .lease = lease};
    struct etcd_txn t = {.success = &op, .success_count = 1};
    bool ok;
    int rc = etcd_txn(e, &t, &ok, NULL, NULL);
    cr_assert(rc != 0 || ok);
    return rc;
}

static int del(const char *key)
{
    struct etcd_op op = {.kind = ETCD_OP_DELETE, .key = key};
    struct etcd_txn t = {.success = &op, .success_count = 1};
    bool ok;
    return etcd_txn(e, &t, &ok, NULL, NULL);
}

/* The key's pair (asserting there is one), or its absence. */
static struct etcd_kv get(const char *key, bool *found)
{
    struct etcd_kvs kvs;
    cr_assert_eq(etcd_range(e, key, NULL, &kvs), 0);
    cr_assert_leq(kvs.count, 1);
    struct etcd_kv kv = {0};
    *found = kvs.count == 1;
    if (*found) {
        kv = kvs.kvs[0];
        kvs.count = 0; /* the pair's strings move to the caller */
    }
    etcd_kvs_free(&kvs);
    return kv;
}

static void kv_drop(struct etcd_kv *kv)
{
    free(kv->key);
    free(kv->value);
}

Test(etcd, open_refuses_a_bad_config)
{
    struct etcd_config cfg = {
        .endpoints = {"http://127.0.0.1:1"}, .endpoint_count = 0, .timeout_ms = 100};
    struct etcd *x = (struct etcd *)1;
    cr_assert_eq(etcd_open(&x, &cfg), -NG_EBADARG);
    cr_assert_null(x);
    cfg.endpoint_count = 1;
    cfg.timeout_ms = 0;
    cr_assert_eq(etcd_open(&x, &cfg), -NG_EBADARG);
    cfg.timeout_ms = 100;
    cfg.endpoints[0] = NULL;
    cr_assert_eq(etcd_open(&x, &cfg), -NG_EBADARG);
}

Test(etcd, range_reads_one_key_or_every_key_of_a_prefix)
{
    up(1);
    cr_assert_eq(put("/t/a", "1", 0), 0);
    cr_assert_eq(put("/t/b", "", 0), 0);
    cr_assert_eq(put("/t/b/c", "3", 0), 0);
    cr_assert_eq(put("/u", "4", 0), 0);
    bool found;
    struct etcd_kv kv = get("/t/a", &found);
    cr_assert(found);
    cr_assert_str_eq(kv.key, "/t/a");
    cr_assert_eq(kv.value_len, 1);
    cr_assert_str_eq(kv.value, "1");
    cr_assert_gt(kv.mod_revision, 0);
    cr_assert_eq(kv.version, 1);
    kv_drop(&kv);
    (void)get("/t/none", &found);
    cr_assert_not(found);

    char end[ETCD_KEY_BYTES_MAX + 1];
    etcd_prefix_end("/t/", end);
    struct etcd_kvs kvs;
    cr_assert_eq(etcd_range(e, "/t/", end, &kvs), 0);
    cr_assert_eq(kvs.count, 3);
    cr_assert_str_eq(kvs.kvs[0].key, "/t/a");
    cr_assert_str_eq(kvs.kvs[1].key, "/t/b");
    cr_assert_eq(kvs.kvs[1].value_len, 0);
    cr_assert_str_eq(kvs.kvs[2].key, "/t/b/c");
    cr_assert_geq(kvs.revision, kvs.kvs[2].mod_revision);
    etcd_kvs_free(&kvs);
    cr_assert_eq(etcd_range(e, "", NULL, &kvs), -NG_EBADARG);
}

Test(etcd, values_are_bytes_of_any_kind_up_to_the_limit)
{
    up(1);
    char *value = malloc(ETCD_VALUE_BYTES_MAX);
    cr_assert_not_null(value);
    for (size_t i = 0; i < ETCD_VALUE_BYTES_MAX; i++) {
        value[i] = (char)(i * 7 + 3);
    }
    struct etcd_op op = {
        .kind = ETCD_OP_PUT, .key = "/big", .value = value, .value_len = ETCD_VALUE_BYTES_MAX};
    struct etcd_txn t = {.success = &op, .success_count = 1};
    bool ok;
    cr_assert_eq(etcd_txn(e, &t, &ok, NULL, NULL), 0);
    bool found;
    struct etcd_kv kv = get("/big", &found);
    cr_assert(found);
    cr_assert_eq(kv.value_len, ETCD_VALUE_BYTES_MAX);
    cr_assert_eq(memcmp(kv.value, value, ETCD_VALUE_BYTES_MAX), 0);
    kv_drop(&kv);
    op.value_len = ETCD_VALUE_BYTES_MAX + 1;
    cr_assert_eq(etcd_txn(e, &t, &ok, NULL, NULL), -NG_ETOOBIG);
    free(value);
}

Test(etcd, txn_compare_and_swap_runs_success_or_failure_ops)
{
    up(1);
    cr_assert_eq(put("/cas", "v1", 0), 0);
    bool found;
    struct etcd_kv kv = get("/cas", &found);
    int64_t seen = kv.mod_revision;
    kv_drop(&kv);

    struct etcd_cmp cmp = {
        .key = "/cas", .target = ETCD_CMP_MOD_REVISION, .result = ETCD_CMP_EQUAL, .number = seen};
    struct etcd_op swap = {.kind = ETCD_OP_PUT, .key = "/cas", .value = "v2", .value_len = 2};
    struct etcd_op reread = {.kind = ETCD_OP_GET, .key = "/cas"};
    struct etcd_txn t = {&cmp, 1, &swap, 1, &reread, 1};
    bool ok;
    int64_t rev;
    struct etcd_kvs gets;
    cr_assert_eq(etcd_txn(e, &t, &ok, &rev, &gets), 0);
    cr_assert(ok);
    cr_assert_gt(rev, seen);
    cr_assert_eq(gets.count, 0); /* the success branch has no get */
    etcd_kvs_free(&gets);

    /* The same swap again: the revision moved, so the failure branch runs
     * and shows what won. */
    cr_assert_eq(etcd_txn(e, &t, &ok, &rev, &gets), 0);
    cr_assert_not(ok);
    cr_assert_eq(gets.count, 1);
    cr_assert_str_eq(gets.kvs[0].value, "v2");
    cr_assert_eq(gets.kvs[0].mod_revision, rev);
    etcd_kvs_free(&gets);

    struct etcd_cmp by_value = {.key = "/cas",
                                .target = ETCD_CMP_VALUE,
                                .result = ETCD_CMP_EQUAL,
                                .value = "v2",
                                .value_len = 2};
    struct etcd_op gone = {.kind = ETCD_OP_DELETE, .key = "/cas"};
    t = (struct etcd_txn){&by_value, 1, &gone, 1, NULL, 0};
    cr_assert_eq(etcd_txn(e, &t, &ok, NULL, NULL), 0);
    cr_assert(ok);
    (void)get("/cas", &found);
    cr_assert_not(found);
}

Test(etcd, txn_creates_only_if_absent_by_create_revision_zero)
{
    up(1);
    struct etcd_cmp absent = {
        .key = "/ctl", .target = ETCD_CMP_CREATE_REVISION, .result = ETCD_CMP_EQUAL, .number = 0};
    struct etcd_op first = {.kind = ETCD_OP_PUT, .key = "/ctl", .value = "1", .value_len = 1};
    struct etcd_op second = {.kind = ETCD_OP_PUT, .key = "/ctl", .value = "2", .value_len = 1};
    struct etcd_txn t = {&absent, 1, &first, 1, NULL, 0};
    bool ok;
    cr_assert_eq(etcd_txn(e, &t, &ok, NULL, NULL), 0);
    cr_assert(ok);
    t.success = &second;
    cr_assert_eq(etcd_txn(e, &t, &ok, NULL, NULL), 0);
    cr_assert_not(ok);
    bool found;
    struct etcd_kv kv = get("/ctl", &found);
    cr_assert_str_eq(kv.value, "1");
    kv_drop(&kv);
}

Test(etcd, delete_prefix_removes_the_prefix_only)
{
    up(1);
    cr_assert_eq(put("/p/1", "a", 0), 0);
    cr_assert_eq(put("/p/2", "b", 0), 0);
    cr_assert_eq(put("/q", "c", 0), 0);
    struct etcd_op op = {.kind = ETCD_OP_DELETE_PREFIX, .key = "/p/"};
    struct etcd_txn t = {.success = &op, .success_count = 1};
    bool ok;
    cr_assert_eq(etcd_txn(e, &t, &ok, NULL, NULL), 0);
    bool found;
    (void)get("/p/1", &found);
    cr_assert_not(found);
    struct etcd_kv kv = get("/q", &found);
    cr_assert(found);
    kv_drop(&kv);
}

/* Polls until key is gone; false when it stays for PATIENCE_MS. */
static bool wait_gone(const char *key)
{
    int64_t deadline = clock_mono_ms() + PATIENCE_MS;
    for (;;) {
        bool found;
        struct etcd_kv kv = get(key, &found);
        kv_drop(&kv);
        if (!found) {
            return true;
        }
        if (clock_mono_ms() >= deadline) {
            return false;
        }
        usleep(100 * 1000);
    }
}

Test(etcd, a_key_under_a_lease_goes_when_the_lease_is_not_kept_alive)
{
    up(1);
    int64_t lease;
    cr_assert_eq(etcd_lease_grant(e, 2, &lease), 0);
    cr_assert_neq(lease, 0);
    cr_assert_eq(put("/leased", "x", lease), 0);
    bool found;
    struct etcd_kv kv = get("/leased", &found);
    cr_assert(found);
    cr_assert_eq(kv.lease, lease);
    kv_drop(&kv);
    cr_assert(wait_gone("/leased"), "the key outlived its lease");
    int64_t ttl = 99;
    cr_assert_eq(etcd_lease_keepalive(e, lease, &ttl), -NG_ENOTFOUND);
    cr_assert_eq(ttl, 0);
    cr_assert_eq(etcd_lease_grant(e, 0, &lease), -NG_EBADARG);
}

Test(etcd, a_key_under_a_lease_stays_while_the_lease_is_kept_alive)
{
    up(1);
    const int64_t ttl_s = 3;
    /* Keeps the lease alive for two of its TTLs. A keep-alive that comes
     * later than the TTL after the one before (a machine stalled) proves
     * nothing either way: that round starts over. */
    for (int round = 1;; round++) {
        cr_assert_leq(round, 5, "keep-alives could not be sent within the TTL");
        int64_t lease;
        cr_assert_eq(etcd_lease_grant(e, ttl_s, &lease), 0);
        cr_assert_eq(put("/kept", "x", lease), 0);
        int64_t start = clock_mono_ms();
        int64_t last = start;
        bool stalled = false;
        while (!stalled && clock_mono_ms() - start < 2 * ttl_s * 1000) {
            int64_t ttl = 0;
            int rc = etcd_lease_keepalive(e, lease, &ttl);
            stalled = clock_mono_ms() - last >= ttl_s * 1000;
            if (!stalled) {
                cr_assert_eq(rc, 0, "keep-alive: %s", err_str(rc));
                cr_assert_eq(ttl, ttl_s);
                bool found;
                struct etcd_kv kv = get("/kept", &found);
                cr_assert(found);
                kv_drop(&kv);
            }
            last = clock_mono_ms();
            usleep(100 * 1000);
        }
        if (!stalled) {
            cr_assert_eq(etcd_lease_revoke(e, lease), 0);
            return;
        }
    }
}

Test(etcd, revoke_ends_a_lease_and_its_keys_at_once)
{
    up(1);
    int64_t lease;
    cr_assert_eq(etcd_lease_grant(e, 60, &lease), 0);
    cr_assert_eq(put("/r", "x", lease), 0);
    cr_assert_eq(etcd_lease_revoke(e, lease), 0);
    bool found;
    (void)get("/r", &found);
    cr_assert_not(found);
    cr_assert_eq(etcd_lease_keepalive(e, lease, NULL), -NG_ENOTFOUND);
    cr_assert_eq(etcd_lease_revoke(e, lease), -NG_ENOTFOUND);
    cr_assert_eq(put("/r", "x", lease), -NG_ENOTFOUND); /* a put under a lease gone */
}

/* ---- watches ---- */

/* Collects events from w until want of them came (waiting up to
 * PATIENCE_MS), all into *all; returns the last answer's next revision. */
static int64_t collect(struct etcd_watch *w, size_t want, struct etcd_events *all)
{
    int64_t next = 0;
    int64_t deadline = clock_mono_ms() + PATIENCE_MS;
    memset(all, 0, sizeof(*all));
    while (all->count < want) {
        cr_assert_lt(clock_mono_ms(), deadline, "%zu of %zu events came", all->count, want);
        struct etcd_events ev;
        int rc = etcd_watch_next(w, 1000, &ev);
        cr_assert(rc == 0 || rc == -NG_ECLUSTER_UNAVAILABLE, "watch: %s", err_str(rc));
        cr_assert_leq(all->count + ev.count, want, "more events than changes");
        if (ev.count > 0) {
            next = ev.revision;
            struct etcd_event *grown =
                realloc(all->events, (all->count + ev.count) * sizeof(*grown));
            cr_assert_not_null(grown);
            memcpy(grown + all->count, ev.events, ev.count * sizeof(*grown));
            all->events = grown;
            all->count += ev.count;
            free(ev.events); /* the pairs' strings moved to all */
        }
    }
    return next;
}

Test(etcd, watch_sees_puts_and_deletes_in_order)
{
    up(1);
    cr_assert_eq(put("/w/before", "old", 0), 0);
    struct etcd_kvs snap;
    char end[ETCD_KEY_BYTES_MAX + 1];
    etcd_prefix_end("/w/", end);
    cr_assert_eq(etcd_range(e, "/w/", end, &snap), 0);
    struct etcd_config cfg;
    ets_config(&c, TIMEOUT_MS, &cfg);
    struct etcd_watch *w;
    cr_assert_eq(etcd_watch_open(&w, &cfg, "/w/", end, snap.revision + 1), 0);
    etcd_kvs_free(&snap);

    cr_assert_eq(put("/w/a", "1", 0), 0);
    cr_assert_eq(put("/w/b", "2", 0), 0);
    cr_assert_eq(put("/other", "no", 0), 0); /* outside the range */
    cr_assert_eq(del("/w/a"), 0);
    cr_assert_eq(put("/w/b", "3", 0), 0);

    struct etcd_events all;
    int64_t next = collect(w, 4, &all);
    const struct etcd_event *got = all.events;
    static const char *const keys[] = {"/w/a", "/w/b", "/w/a", "/w/b"};
    static const char *const values[] = {"1", "2", "", "3"};
    for (size_t i = 0; i < 4; i++) {
        cr_assert_str_eq(got[i].kv.key, keys[i]);
        cr_assert_str_eq(got[i].kv.value, values[i]);
        cr_assert_eq(got[i].kind, i == 2 ? ETCD_EVENT_DELETE : ETCD_EVENT_PUT);
        cr_assert(i == 0 || got[i].kv.mod_revision > got[i - 1].kv.mod_revision);
    }
    cr_assert_eq(got[3].kv.version, 2);
    cr_assert_eq(next, got[3].kv.mod_revision + 1);
    etcd_events_free(&all);

    /* Nothing more: an empty answer that says where to go on from. */
    struct etcd_events ev;
    cr_assert_eq(etcd_watch_next(w, 10, &ev), 0);
    cr_assert_eq(ev.count, 0);
    cr_assert_eq(ev.revision, next);
    etcd_watch_close(w);
}

Test(etcd, a_watch_far_behind_hands_on_every_event_once_in_order)
{
    up(1);
    struct etcd_kvs snap;
    cr_assert_eq(etcd_range(e, "/many", NULL, &snap), 0);
    int64_t from = snap.revision + 1;
    etcd_kvs_free(&snap);
    /* More events than ETCD_WATCH_READY_MAX, and more bytes than etcd's
     * request limit, so its catch-up answer comes fragmented. */
    enum { TXNS = 80, VALUE_BYTES = 1000 };
    static char values[ETCD_TXN_OPS_MAX][VALUE_BYTES];
    memset(values, 'v', sizeof(values));
    static char keys[ETCD_TXN_OPS_MAX][32];
    struct etcd_op ops[ETCD_TXN_OPS_MAX];
    for (int t = 0; t < TXNS; t++) {
        for (int i = 0; i < ETCD_TXN_OPS_MAX; i++) {
            snprintf(keys[i], sizeof(keys[i]), "/many/%03d/%02d", t, i);
            values[i][0] = (char)('a' + (t + i) % 26);
            ops[i] = (struct etcd_op){
                .kind = ETCD_OP_PUT, .key = keys[i], .value = values[i], .value_len = VALUE_BYTES};
        }
        struct etcd_txn txn = {.success = ops, .success_count = ETCD_TXN_OPS_MAX};
        bool ok;
        cr_assert_eq(etcd_txn(e, &txn, &ok, NULL, NULL), 0);
    }
    struct etcd_config cfg;
    ets_config(&c, TIMEOUT_MS, &cfg);
    struct etcd_watch *w;
    cr_assert_eq(etcd_watch_open(&w, &cfg, "/many/", "/many0", from), 0);
    struct etcd_events all;
    int64_t next = collect(w, TXNS * ETCD_TXN_OPS_MAX, &all);
    for (int t = 0; t < TXNS; t++) {
        for (int i = 0; i < ETCD_TXN_OPS_MAX; i++) {
            const struct etcd_event *ev = &all.events[t * ETCD_TXN_OPS_MAX + i];
            char key[32];
            snprintf(key, sizeof(key), "/many/%03d/%02d", t, i);
            cr_assert_str_eq(ev->kv.key, key);
            cr_assert_eq(ev->kv.mod_revision, from + t);
            cr_assert_eq(ev->kv.value_len, VALUE_BYTES);
            cr_assert_eq(ev->kv.value[0], (char)('a' + (t + i) % 26));
        }
    }
    cr_assert_eq(next, from + TXNS);
    etcd_events_free(&all);
    etcd_watch_close(w);
}

Test(etcd, watch_from_a_compacted_revision_is_offset_range)
{
    up(1);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(put("/c", "x", 0), 0);
    }
    bool found;
    struct etcd_kv kv = get("/c", &found);
    ets_compact(&c, kv.mod_revision);
    kv_drop(&kv);
    struct etcd_config cfg;
    ets_config(&c, TIMEOUT_MS, &cfg);
    struct etcd_watch *w;
    cr_assert_eq(etcd_watch_open(&w, &cfg, "/c", NULL, 2), 0);
    int64_t deadline = clock_mono_ms() + PATIENCE_MS;
    int rc;
    struct etcd_events ev;
    while ((rc = etcd_watch_next(w, 1000, &ev)) == 0) {
        cr_assert_eq(ev.count, 0);
        cr_assert_lt(clock_mono_ms(), deadline);
    }
    cr_assert_eq(rc, -NG_EOFFSET_RANGE, "%s", err_str(rc));
    cr_assert_eq(etcd_watch_next(w, 0, &ev), -NG_EOFFSET_RANGE); /* and stays so */
    etcd_watch_close(w);
    cr_assert_eq(etcd_watch_open(&w, &cfg, "/c", NULL, 0), -NG_EBADARG);
}

struct waiter {
    struct etcd_watch *w;
    atomic_bool started;
    int rc;
};

static void *wait_long(void *arg)
{
    struct waiter *wt = arg;
    struct etcd_events ev;
    atomic_store(&wt->started, true);
    /* Ten minutes: only etcd_watch_cancel() ends this before the suite's
     * timeout does. */
    wt->rc = etcd_watch_next(wt->w, 600000, &ev);
    etcd_events_free(&ev);
    return NULL;
}

Test(etcd, cancel_wakes_a_waiting_watch)
{
    up(1);
    struct etcd_config cfg;
    ets_config(&c, TIMEOUT_MS, &cfg);
    struct waiter wt = {.rc = 1};
    atomic_init(&wt.started, false);
    cr_assert_eq(etcd_watch_open(&wt.w, &cfg, "/quiet", NULL, 1), 0);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, wait_long, &wt), 0);
    while (!atomic_load(&wt.started)) {
        usleep(1000);
    }
    usleep(200 * 1000); /* most likely asleep in the watch by now; either way it must end */
    etcd_watch_cancel(wt.w);
    cr_assert_eq(pthread_join(t, NULL), 0);
    cr_assert_eq(wt.rc, -NG_ECLOSED);
    etcd_watch_close(wt.w);
}

/* ---- failover ---- */

Test(etcd, three_members_keep_answering_when_the_first_endpoint_dies)
{
    up(3);
    cr_assert_eq(put("/f/1", "a", 0), 0);
    struct etcd_kvs snap;
    cr_assert_eq(etcd_range(e, "/f/1", NULL, &snap), 0);
    struct etcd_config cfg;
    ets_config(&c, TIMEOUT_MS, &cfg);
    struct etcd_watch *w;
    cr_assert_eq(etcd_watch_open(&w, &cfg, "/f/", "/f0", snap.revision + 1), 0);
    etcd_kvs_free(&snap);
    cr_assert_eq(put("/f/2", "b", 0), 0);
    struct etcd_events all;
    (void)collect(w, 1, &all); /* the watch runs on member 0 */
    cr_assert_str_eq(all.events[0].kv.key, "/f/2");
    etcd_events_free(&all);

    ets_stop(&c, 0, SIGKILL); /* the endpoint both connections use first */
    cr_assert_eq(put("/f/3", "c", 0), 0);
    bool found;
    struct etcd_kv kv = get("/f/3", &found);
    cr_assert(found);
    kv_drop(&kv);
    int64_t lease;
    cr_assert_eq(etcd_lease_grant(e, 10, &lease), 0);
    cr_assert_eq(etcd_lease_keepalive(e, lease, NULL), 0);
    (void)collect(w, 1, &all); /* /f/3, from another member: nothing lost or repeated */
    cr_assert_str_eq(all.events[0].kv.key, "/f/3");
    etcd_events_free(&all);
    etcd_watch_close(w);
}

Test(etcd, a_watch_waits_out_a_lost_quorum_and_resumes_where_it_was)
{
    up(3);
    cr_assert_eq(put("/q/1", "a", 0), 0);
    struct etcd_kvs snap;
    cr_assert_eq(etcd_range(e, "/q/1", NULL, &snap), 0);
    struct etcd_config cfg;
    ets_config(&c, 2000, &cfg);
    struct etcd_watch *w;
    cr_assert_eq(etcd_watch_open(&w, &cfg, "/q/", "/q0", snap.revision + 1), 0);
    etcd_kvs_free(&snap);
    struct etcd_events ev;
    cr_assert_eq(etcd_watch_next(w, 0, &ev), 0); /* the stream starts, on member 0 */

    /* Member 0 lives on without a quorum: it must end the watch (it was
     * asked to, "hasleader") rather than keep it open and silent. */
    ets_stop(&c, 1, SIGKILL);
    ets_stop(&c, 2, SIGKILL);
    int64_t deadline = clock_mono_ms() + PATIENCE_MS;
    int rc;
    while ((rc = etcd_watch_next(w, 1000, &ev)) == 0) {
        cr_assert_eq(ev.count, 0);
        cr_assert_lt(clock_mono_ms(), deadline, "the watch never noticed the lost quorum");
    }
    cr_assert_eq(rc, -NG_ECLUSTER_UNAVAILABLE, "%s", err_str(rc));

    ets_restart(&c, 1);
    cr_assert_eq(put("/q/2", "b", 0), 0);
    struct etcd_events all;
    (void)collect(w, 1, &all);
    cr_assert_str_eq(all.events[0].kv.key, "/q/2");
    etcd_events_free(&all);
    etcd_watch_close(w);
}

Test(etcd, no_member_answering_is_cluster_unavailable)
{
    up(1);
    ets_stop(&c, 0, SIGKILL);
    struct etcd_config cfg;
    ets_config(&c, 1500, &cfg);
    struct etcd *x;
    cr_assert_eq(etcd_open(&x, &cfg), 0);
    struct etcd_kvs kvs;
    cr_assert_eq(etcd_range(x, "/k", NULL, &kvs), -NG_ECLUSTER_UNAVAILABLE);
    int64_t lease;
    cr_assert_eq(etcd_lease_grant(x, 5, &lease), -NG_ECLUSTER_UNAVAILABLE);
    etcd_close(x);
    struct etcd_watch *w;
    cr_assert_eq(etcd_watch_open(&w, &cfg, "/k", NULL, 1), 0);
    struct etcd_events ev;
    cr_assert_eq(etcd_watch_next(w, 3000, &ev), -NG_ECLUSTER_UNAVAILABLE);
    cr_assert_eq(ev.count, 0);
    etcd_watch_close(w);
}

Test(etcd, a_member_without_quorum_is_cluster_unavailable)
{
    up(3);
    ets_stop(&c, 1, SIGKILL);
    ets_stop(&c, 2, SIGKILL);
    struct etcd_config cfg = {
        .endpoints = {c.m[0].client_url}, .endpoint_count = 1, .timeout_ms = 3000};
    struct etcd *x;
    cr_assert_eq(etcd_open(&x, &cfg), 0);
    bool ok;
    struct etcd_op op = {.kind = ETCD_OP_PUT, .key = "/k", .value = "v", .value_len = 1};
    struct etcd_txn t = {.success = &op, .success_count = 1};
    cr_assert_eq(etcd_txn(x, &t, &ok, NULL, NULL), -NG_ECLUSTER_UNAVAILABLE);
    etcd_close(x);
}
