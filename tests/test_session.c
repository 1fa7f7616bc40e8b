/* tests/test_session.c — cluster/session.h against a real etcd
 * (tests/etcd_support.h): several sessions in one process stand for
 * several brokers. Every wait is for a state to be reached, bounded only by
 * WAIT_MS as a hang guard. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/err.h"
#include "cluster/controller.h"
#include "cluster/session.h"
#include "tests/etcd_support.h"

#define WAIT_MS 60000
#define BROKERS_MAX 3

static struct ets etcd;

/* What one session's views and requests leave behind. */
struct broker {
    struct cluster_session *s;
    int32_t id;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct cluster_view *view; /* the newest */
    uint32_t views;
    uint32_t fenced_views;
    bool disorder; /* a view came with a lower revision than the one before */
};

static struct broker brokers[BROKERS_MAX];

static void on_view(void *arg, struct cluster_view *v)
{
    struct broker *b = arg;
    pthread_mutex_lock(&b->mu);
    /* no criterion assert here: this is the cluster thread, and the lock
     * is held; wait_view() checks the flag */
    b->disorder = b->disorder || (b->view != NULL && v->revision < b->view->revision);
    cluster_view_free(b->view);
    b->view = v;
    b->views++;
    b->fenced_views += v->fenced;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

static void teardown(void)
{
    for (size_t i = 0; i < BROKERS_MAX; i++) {
        cluster_session_stop(brokers[i].s);
        cluster_view_free(brokers[i].view);
        memset(&brokers[i], 0, sizeof(brokers[i]));
    }
    ets_fini(&etcd);
}

static void session_config(int32_t id, uint32_t check_ms, struct cluster_session_config *cfg)
{
    cluster_session_config_default(cfg);
    cfg->broker_id = id;
    snprintf(cfg->host, sizeof(cfg->host), "127.0.0.%d", (int)id);
    cfg->port = (uint16_t)(7400 + id);
    for (size_t i = 0; i < etcd.count; i++) {
        snprintf(cfg->endpoints[i], sizeof(cfg->endpoints[i]), "%s", etcd.m[i].client_url);
    }
    cfg->endpoint_count = (uint32_t)etcd.count;
    cfg->preferred_leader_check_ms = check_ms;
}

/* Starts broker slot i as id with the given preferred-leader interval. */
static int start_broker(size_t i, int32_t id, uint32_t check_ms)
{
    struct broker *b = &brokers[i];
    if (b->id == 0) {
        pthread_mutex_init(&b->mu, NULL);
        pthread_cond_init(&b->cv, NULL);
    }
    b->id = id;
    struct cluster_session_config cfg;
    session_config(id, check_ms, &cfg);
    return cluster_session_start(&b->s, &cfg, on_view, b);
}

static void start_brokers(size_t count, uint32_t check_ms)
{
    ets_start(&etcd, 1);
    for (size_t i = 0; i < count; i++) {
        int rc = start_broker(i, (int32_t)i + 1, check_ms);
        cr_assert_eq(rc, 0, "broker %zu: %s", i + 1, err_str(rc));
    }
}

static void stop_broker(size_t i)
{
    cluster_session_stop(brokers[i].s);
    brokers[i].s = NULL;
}

/* A client of the test's etcd, to look behind the brokers' backs. */
static struct etcd *etcd_of_test(void)
{
    struct etcd_config ecfg;
    ets_config(&etcd, 5000, &ecfg);
    struct etcd *e = NULL;
    cr_assert_eq(etcd_open(&e, &ecfg), 0);
    return e;
}

/* How many keys `key` names in etcd now (0 or 1). */
static size_t key_count(struct etcd *e, const char *key)
{
    struct etcd_kvs kvs = {0};
    cr_assert_eq(etcd_range(e, key, NULL, &kvs), 0);
    size_t n = kvs.count;
    etcd_kvs_free(&kvs);
    return n;
}

typedef bool view_pred(const struct cluster_view *v, const void *arg);

/* Waits until broker i's newest view satisfies pred; fails after WAIT_MS. */
static void wait_view(size_t i, view_pred *pred, const void *arg, const char *what)
{
    struct broker *b = &brokers[i];
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += WAIT_MS / 1000;
    pthread_mutex_lock(&b->mu);
    bool timed_out = false;
    while (!timed_out && (b->view == NULL || !pred(b->view, arg))) {
        timed_out = pthread_cond_timedwait(&b->cv, &b->mu, &until) == ETIMEDOUT;
    }
    bool disorder = b->disorder;
    pthread_mutex_unlock(&b->mu);
    if (timed_out) {
        ets_print_logs(&etcd, what);
    }
    cr_assert_not(timed_out, "broker %d: no view where %s", (int)b->id, what);
    cr_assert_not(disorder, "broker %d: views out of revision order", (int)b->id);
}

/* Runs fn on broker i's newest view, under its lock: fn must not assert
 * (a failed assert would leave the lock held and the session stuck). */
static void with_view(size_t i, void (*fn)(const struct cluster_view *v, void *arg), void *arg)
{
    pthread_mutex_lock(&brokers[i].mu);
    fn(brokers[i].view, arg);
    pthread_mutex_unlock(&brokers[i].mu);
}

/* ---- requests ---- */

struct done {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int rc;
};

static void on_done(void *arg, int rc)
{
    struct done *d = arg;
    pthread_mutex_lock(&d->mu);
    cr_assert(!d->done, "done called once");
    d->done = true;
    d->rc = rc;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

static void done_init(struct done *d)
{
    *d = (struct done){0};
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
}

static int wait_done(struct done *d)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += WAIT_MS / 1000;
    pthread_mutex_lock(&d->mu);
    while (!d->done) {
        if (pthread_cond_timedwait(&d->cv, &d->mu, &until) == ETIMEDOUT) {
            cr_assert_fail("a request never completed");
        }
    }
    int rc = d->rc;
    pthread_mutex_unlock(&d->mu);
    return rc;
}

static const struct cluster_topic_config default_cfg = {.retention_ms = -1,
                                                        .retention_bytes = -1,
                                                        .segment_bytes = -1,
                                                        .segment_ms = -1,
                                                        .batch_bytes_max = -1,
                                                        .min_insync_replicas = -1};

static int create_topic(size_t i, const char *name, int32_t partitions, int16_t rf)
{
    struct done d;
    done_init(&d);
    int rc =
        cluster_session_create_topic(brokers[i].s, name, partitions, rf, &default_cfg, on_done, &d);
    return rc != 0 ? rc : wait_done(&d);
}

static int alter_isr(size_t i, const char *topic, const struct cluster_partition *p, int32_t epoch,
                     const int32_t *isr, uint8_t count)
{
    struct done d;
    done_init(&d);
    int rc = cluster_session_alter_isr(brokers[i].s, topic, p->index, p->mod_revision, epoch, isr,
                                       count, on_done, &d);
    return rc != 0 ? rc : wait_done(&d);
}

/* ---- predicates ---- */

static bool has_brokers(const struct cluster_view *v, const void *arg)
{
    return v->broker_count == *(const uint32_t *)arg && v->controller >= 0;
}

static bool has_topic(const struct cluster_view *v, const void *arg)
{
    return cluster_view_topic(v, arg, strlen(arg)) != NULL;
}

static bool lacks_topic(const struct cluster_view *v, const void *arg)
{
    return !has_topic(v, arg);
}

struct leader_moved {
    const char *topic;
    int32_t index;
    int32_t old_leader;
    int32_t old_epoch;
};

static bool leader_moved(const struct cluster_view *v, const void *arg)
{
    const struct leader_moved *m = arg;
    const struct cluster_partition *p =
        cluster_view_partition(v, m->topic, strlen(m->topic), m->index);
    return p != NULL && p->leader != m->old_leader && p->leader_epoch > m->old_epoch;
}

/* Partition (topic, index) past old_epoch, whoever leads it. */
static bool epoch_passed(const struct cluster_view *v, const void *arg)
{
    const struct leader_moved *m = arg;
    const struct cluster_partition *p =
        cluster_view_partition(v, m->topic, strlen(m->topic), m->index);
    return p != NULL && p->leader_epoch > m->old_epoch;
}

/* Copies partition (topic, index) of a view. */
struct part_copy {
    const char *topic;
    int32_t index;
    struct cluster_partition p;
    int32_t controller;
    int64_t controller_epoch;
    int64_t revision;
    bool found;
};

static void copy_part(const struct cluster_view *v, void *arg)
{
    struct part_copy *c = arg;
    const struct cluster_partition *p =
        cluster_view_partition(v, c->topic, strlen(c->topic), c->index);
    c->found = p != NULL;
    if (!c->found) {
        return;
    }
    c->p = *p;
    c->controller = v->controller;
    c->controller_epoch = v->controller_epoch;
    c->revision = v->revision;
}

static struct cluster_partition part_of(size_t i, const char *topic, int32_t index)
{
    struct part_copy c = {.topic = topic, .index = index};
    with_view(i, copy_part, &c);
    cr_assert(c.found, "broker %d has no %s/%d", (int)brokers[i].id, topic, (int)index);
    return c.p;
}

static size_t slot_of(int32_t id)
{
    for (size_t i = 0; i < BROKERS_MAX; i++) {
        if (brokers[i].id == id) {
            return i;
        }
    }
    cr_assert_fail("no broker %d", (int)id);
    return 0;
}

TestSuite(session, .fini = teardown, .timeout = 300);

/* ---- tests ---- */

Test(session, views_converge_on_the_brokers_and_one_controller)
{
    start_brokers(2, CLUSTER_PREFERRED_LEADER_CHECK_MS_DEFAULT);
    uint32_t two = 2;
    wait_view(0, has_brokers, &two, "two brokers and a controller");
    wait_view(1, has_brokers, &two, "two brokers and a controller");
    struct part_copy a = {0}, b = {0};
    /* the controller may still be settling in one of them: wait for both
     * to name the same one */
    struct cluster_broker two_seen = {0};
    bool fenced = true;
    for (;;) {
        pthread_mutex_lock(&brokers[0].mu);
        a.controller = brokers[0].view->controller;
        a.controller_epoch = brokers[0].view->controller_epoch;
        two_seen = *cluster_view_broker(brokers[0].view, 2); /* has_brokers: both there */
        fenced = brokers[0].view->fenced;
        pthread_mutex_unlock(&brokers[0].mu);
        pthread_mutex_lock(&brokers[1].mu);
        b.controller = brokers[1].view->controller;
        b.controller_epoch = brokers[1].view->controller_epoch;
        pthread_mutex_unlock(&brokers[1].mu);
        if (a.controller == b.controller && a.controller_epoch == b.controller_epoch) {
            break;
        }
        struct timespec ts = {.tv_nsec = 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    cr_assert(a.controller == 1 || a.controller == 2);
    cr_assert_eq(a.controller_epoch, 1, "one campaign won, once");
    cr_assert_str_eq(two_seen.host, "127.0.0.2");
    cr_assert_eq(two_seen.port, 7402);
    cr_assert_gt(two_seen.incarnation, 0);
    cr_assert_not(fenced);
}

Test(session, refuses_an_id_a_live_broker_holds)
{
    start_brokers(1, CLUSTER_PREFERRED_LEADER_CHECK_MS_DEFAULT);
    struct cluster_session_config cfg;
    session_config(1, CLUSTER_PREFERRED_LEADER_CHECK_MS_DEFAULT, &cfg);
    cfg.port = 7499; /* another broker's address: not its own previous life */
    struct cluster_session *s = NULL;
    int rc = cluster_session_start(&s, &cfg, on_view, &brokers[1]);
    cr_assert_eq(rc, -EEXIST, "%s", err_str(rc));
    cr_assert_null(s);
    stop_broker(0);
    cr_assert_eq(start_broker(1, 1, CLUSTER_PREFERRED_LEADER_CHECK_MS_DEFAULT), 0,
                 "free again once its holder stopped (its lease revoked)");
}

/* A broker restarted after a crash finds its previous life's registration
 * (its own address) still under an unexpired lease, and waits it out. */
Test(session, waits_out_the_lease_of_its_previous_life)
{
    ets_start(&etcd, 1);
    struct etcd *e = etcd_of_test();
    int64_t lease = 0;
    cr_assert_eq(etcd_lease_grant(e, CLUSTER_LEASE_TTL_S_MIN, &lease), 0);
    const char *before = "{\"id\":1,\"host\":\"127.0.0.1\",\"port\":7401,\"incarnation\":1}";
    const struct etcd_op put = {.kind = ETCD_OP_PUT,
                                .key = "/nagare/brokers/1",
                                .value = before,
                                .value_len = strlen(before),
                                .lease = lease};
    const struct etcd_txn txn = {.success = &put, .success_count = 1};
    bool ok = false;
    cr_assert_eq(etcd_txn(e, &txn, &ok, NULL, NULL), 0);
    cr_assert(ok);
    /* the crashed process sends no more keep-alives: its lease ends */
    int rc = start_broker(0, 1, CLUSTER_PREFERRED_LEADER_CHECK_MS_DEFAULT);
    cr_assert_eq(rc, 0, "%s", err_str(rc));
    struct etcd_kvs kvs = {0};
    cr_assert_eq(etcd_range(e, "/nagare/brokers/1", NULL, &kvs), 0);
    cr_assert_eq(kvs.count, 1);
    cr_assert_neq(kvs.kvs[0].lease, lease, "registered under its own new lease");
    etcd_kvs_free(&kvs);
    etcd_close(e);
}

Test(session, refuses_a_bad_config)
{
    struct cluster_session_config cfg;
    cluster_session_config_default(&cfg);
    struct cluster_session *s = NULL;
    cr_assert_eq(cluster_session_start(&s, &cfg, on_view, &brokers[0]), -NG_EBADARG, "no id");
    cfg.broker_id = 1;
    snprintf(cfg.host, sizeof(cfg.host), "h");
    cfg.port = 1;
    cr_assert_eq(cluster_session_start(&s, &cfg, on_view, &brokers[0]), -NG_EBADARG, "no endpoint");
    cr_assert_null(s);
}

Test(session, create_topic_spreads_replicas_over_live_brokers)
{
    start_brokers(3, CLUSTER_PREFERRED_LEADER_CHECK_MS_DEFAULT);
    uint32_t three = 3;
    wait_view(0, has_brokers, &three, "three brokers");
    cr_assert_eq(create_topic(0, "spread", 3, 2), 0);
    wait_view(1, has_topic, "spread", "topic spread");
    int led[4] = {0};
    for (int32_t i = 0; i < 3; i++) {
        struct cluster_partition p = part_of(1, "spread", i);
        cr_assert_eq(p.replica_count, 2);
        cr_assert_eq(p.replicas[0], 1 + i, "the start rotates with the index");
        cr_assert_eq(p.replicas[1], 1 + (i + 1) % 3);
        cr_assert_eq(p.leader, p.replicas[0]);
        cr_assert_eq(p.leader_epoch, 0);
        cr_assert_eq(p.isr_count, 2, "all in sync at creation");
        led[p.leader]++;
    }
    cr_assert(led[1] == 1 && led[2] == 1 && led[3] == 1, "each broker leads one");
    cr_assert_eq(create_topic(2, "spread", 3, 2), -NG_ETOPIC_EXISTS);
    cr_assert_eq(create_topic(0, "wide", 1, 4), -NG_ENOT_ENOUGH_REPLICAS);
    cr_assert_eq(create_topic(0, "bad/name", 1, 1), -NG_EBADARG);
    cr_assert_eq(create_topic(0, "zero", 0, 1), -NG_EBADARG);
}

Test(session, create_topic_past_one_transaction)
{
    start_brokers(1, CLUSTER_PREFERRED_LEADER_CHECK_MS_DEFAULT);
    cr_assert_eq(create_topic(0, "many", 100, 1), 0);
    wait_view(0, has_topic, "many", "topic many, whole");
    struct cluster_partition p = part_of(0, "many", 99);
    cr_assert_eq(p.leader, 1);
}

Test(session, delete_topic)
{
    start_brokers(1, CLUSTER_PREFERRED_LEADER_CHECK_MS_DEFAULT);
    cr_assert_eq(create_topic(0, "gone", 2, 1), 0);
    wait_view(0, has_topic, "gone", "topic gone");
    struct done d;
    done_init(&d);
    cr_assert_eq(cluster_session_delete_topic(brokers[0].s, "gone", on_done, &d), 0);
    cr_assert_eq(wait_done(&d), 0);
    wait_view(0, lacks_topic, "gone", "topic gone deleted");
    done_init(&d);
    cr_assert_eq(cluster_session_delete_topic(brokers[0].s, "gone", on_done, &d), 0);
    cr_assert_eq(wait_done(&d), -NG_EUNKNOWN_TOPIC);
    cr_assert_eq(create_topic(0, "gone", 1, 1), 0, "its name is free again");
}

/* The leader of a partition stops: the controller elects the next in-sync
 * replica with the epoch bumped, and the dead broker leaves the ISR. */
Test(session, controller_elects_a_new_leader_when_a_broker_stops)
{
    start_brokers(3, CLUSTER_PREFERRED_LEADER_CHECK_MS_DEFAULT);
    uint32_t three = 3;
    wait_view(0, has_brokers, &three, "three brokers");
    cr_assert_eq(create_topic(0, "fail", 3, 3), 0);
    wait_view(0, has_topic, "fail", "topic fail");
    /* stop the controller itself, so a new one must take over first */
    struct part_copy before = {.topic = "fail", .index = 0};
    with_view(0, copy_part, &before);
    size_t dead = slot_of(before.controller);
    size_t alive = (dead + 1) % 3;
    int32_t dead_id = brokers[dead].id;
    wait_view(alive, has_topic, "fail", "topic fail");
    int32_t led = -1;
    for (int32_t i = 0; i < 3; i++) {
        if (part_of(alive, "fail", i).leader == dead_id) {
            led = i;
        }
    }
    cr_assert_geq(led, 0, "the dead broker led one of three partitions");
    struct cluster_partition old = part_of(alive, "fail", led);
    stop_broker(dead);
    struct leader_moved m = {
        .topic = "fail", .index = led, .old_leader = dead_id, .old_epoch = old.leader_epoch};
    wait_view(alive, leader_moved, &m, "a new leader for the dead broker's partition");
    struct part_copy after = {.topic = "fail", .index = led};
    with_view(alive, copy_part, &after);
    cr_assert_neq(after.p.leader, CLUSTER_LEADER_NONE);
    cr_assert_eq(after.p.leader_epoch, old.leader_epoch + 1);
    cr_assert(!cluster_partition_in_isr(&after.p, dead_id), "the dead broker left the ISR");
    cr_assert_eq(after.p.isr_count, 2);
    cr_assert(cluster_partition_has_replica(&after.p, dead_id), "but stays a replica");
    cr_assert_neq(after.controller, dead_id);
    cr_assert_eq(after.controller_epoch, before.controller_epoch + 1);
    cr_assert_eq(after.p.controller_epoch, after.controller_epoch);
    pthread_mutex_lock(&brokers[alive].mu);
    bool dead_seen = cluster_view_broker(brokers[alive].view, dead_id) != NULL;
    pthread_mutex_unlock(&brokers[alive].mu);
    cr_assert_not(dead_seen, "the dead broker left the view");
    /* the partitions it did not lead keep their leader and epoch */
    for (int32_t i = 0; i < 3; i++) {
        if (i != led) {
            struct cluster_partition p = part_of(alive, "fail", i);
            cr_assert_eq(p.leader_epoch, 0);
        }
    }
}

/* A leader's registration made again while no controller watched (as a
 * restart within its lease is, when the old registration's end and the
 * new one reach the controller in one view): the next controller must
 * not take the new registration for the one the leadership was granted
 * to, and elects the partition anew, at a new epoch. Broker ids: the
 * controller c vanishes first (its lease, and so its controller key,
 * kept), the leader l's registration is replaced behind its back (its
 * session vanished; the test registers it again, under a lease of its
 * own), then c's lease is revoked: the third broker takes over. */
Test(session, a_leader_registered_again_is_elected_anew)
{
    start_brokers(3, CLUSTER_PREFERRED_LEADER_CHECK_MS_DEFAULT);
    uint32_t three = 3;
    wait_view(0, has_brokers, &three, "three brokers");
    cr_assert_eq(create_topic(0, "again", 3, 3), 0);
    wait_view(0, has_topic, "again", "topic again");
    struct part_copy before = {.topic = "again"};
    with_view(0, copy_part, &before);
    size_t c = slot_of(before.controller), l = c, other = c;
    struct cluster_partition p = {0};
    for (int32_t i = 0; i < 3 && l == c; i++) {
        p = part_of(0, "again", i);
        l = slot_of(p.leader);
    }
    cr_assert_neq(l, c, "leaders spread: one partition led by another broker");
    for (size_t i = 0; i < 3; i++) {
        other = i != c && i != l ? i : other;
    }
    struct etcd *e = etcd_of_test();
    char key[64], ckey[64];
    snprintf(key, sizeof(key), "/nagare/brokers/%d", (int)brokers[l].id);
    snprintf(ckey, sizeof(ckey), "/nagare/brokers/%d", (int)brokers[c].id);
    struct etcd_kvs kvs = {0}, ckvs = {0};
    cr_assert_eq(etcd_range(e, ckey, NULL, &ckvs), 0);
    cr_assert_eq(ckvs.count, 1);
    cluster_session_vanish(brokers[c].s); /* no controller acts from here on */
    brokers[c].s = NULL;
    cluster_session_vanish(brokers[l].s);
    brokers[l].s = NULL;
    cr_assert_eq(etcd_range(e, key, NULL, &kvs), 0);
    cr_assert_eq(kvs.count, 1);
    cr_assert_eq(etcd_lease_revoke(e, kvs.kvs[0].lease), 0);
    int64_t lease = 0;
    cr_assert_eq(etcd_lease_grant(e, 60, &lease), 0);
    const struct etcd_op put = {.kind = ETCD_OP_PUT,
                                .key = key,
                                .value = kvs.kvs[0].value,
                                .value_len = kvs.kvs[0].value_len,
                                .lease = lease};
    const struct etcd_txn txn = {.success = &put, .success_count = 1};
    bool ok = false;
    cr_assert_eq(etcd_txn(e, &txn, &ok, NULL, NULL), 0);
    cr_assert(ok);
    cr_assert_eq(etcd_lease_revoke(e, ckvs.kvs[0].lease), 0); /* the third broker takes over */
    struct leader_moved m = {.topic = "again", .index = p.index, .old_epoch = p.leader_epoch};
    wait_view(other, epoch_passed, &m, "the partition elected anew");
    struct cluster_partition after = part_of(other, "again", p.index);
    cr_assert_eq(after.leader_epoch, p.leader_epoch + 1);
    cr_assert_neq(after.leader, CLUSTER_LEADER_NONE);
    etcd_kvs_free(&kvs);
    etcd_kvs_free(&ckvs);
    etcd_close(e);
}

/* Nobody in sync is live: leaderless, not an unclean leader. */
Test(session, partition_left_leaderless_without_a_live_in_sync_replica)
{
    start_brokers(2, CLUSTER_PREFERRED_LEADER_CHECK_MS_DEFAULT);
    uint32_t two = 2;
    wait_view(0, has_brokers, &two, "two brokers");
    cr_assert_eq(create_topic(0, "lone", 1, 2), 0);
    wait_view(0, has_topic, "lone", "topic lone");
    struct cluster_partition p = part_of(0, "lone", 0);
    size_t leader = slot_of(p.leader), other = 1 - leader;
    const int32_t only_leader[] = {p.leader};
    cr_assert_eq(alter_isr(leader, "lone", &p, p.leader_epoch, only_leader, 1), 0);
    stop_broker(leader);
    struct leader_moved m = {
        .topic = "lone", .index = 0, .old_leader = p.leader, .old_epoch = p.leader_epoch};
    wait_view(other, leader_moved, &m, "the partition leaderless");
    struct cluster_partition after = part_of(other, "lone", 0);
    cr_assert_eq(after.leader, CLUSTER_LEADER_NONE, "the live replica was not in sync");
    cr_assert(after.isr_count == 1 && after.isr[0] == p.leader, "the ISR names whom to wait for");
}

Test(session, alter_isr_is_a_compare_and_swap)
{
    start_brokers(2, CLUSTER_PREFERRED_LEADER_CHECK_MS_DEFAULT);
    uint32_t two = 2;
    wait_view(0, has_brokers, &two, "two brokers");
    cr_assert_eq(create_topic(0, "isr", 1, 2), 0);
    wait_view(0, has_topic, "isr", "topic isr");
    wait_view(1, has_topic, "isr", "topic isr");
    struct cluster_partition p = part_of(0, "isr", 0);
    size_t leader = slot_of(p.leader), follower = 1 - leader;
    const int32_t shrunk[] = {p.leader};
    cr_assert_eq(alter_isr(follower, "isr", &p, p.leader_epoch, shrunk, 1), -NG_ENOT_LEADER);
    cr_assert_eq(alter_isr(leader, "isr", &p, p.leader_epoch + 1, shrunk, 1),
                 -NG_EFENCED_LEADER_EPOCH);
    const int32_t no_leader[] = {brokers[follower].id};
    cr_assert_eq(alter_isr(leader, "isr", &p, p.leader_epoch, no_leader, 1), -NG_EBADARG);
    const int32_t stranger[] = {p.leader, 9};
    cr_assert_eq(alter_isr(leader, "isr", &p, p.leader_epoch, stranger, 2), -NG_EBADARG);
    cr_assert_eq(alter_isr(leader, "isr", &p, p.leader_epoch, shrunk, 1), 0);
    cr_assert_eq(alter_isr(leader, "isr", &p, p.leader_epoch, shrunk, 1), -NG_ECONFLICT,
                 "the same revision again: the key moved");
    /* the view follows; from it the next change goes through */
    for (;;) {
        struct cluster_partition now = part_of(leader, "isr", 0);
        if (now.isr_count == 1) {
            cr_assert_gt(now.mod_revision, p.mod_revision);
            cr_assert_eq(now.leader_epoch, p.leader_epoch, "an ISR change is no leader change");
            const int32_t grown[] = {p.leader, brokers[follower].id};
            cr_assert_eq(alter_isr(leader, "isr", &now, now.leader_epoch, grown, 2), 0);
            break;
        }
        struct timespec ts = {.tv_nsec = 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    int rc = cluster_session_alter_isr(brokers[leader].s, "isr", 0, 1, 0, shrunk, 0, on_done, NULL);
    cr_assert_eq(rc, -NG_EBADARG, "an empty ISR is refused before it is queued");
}

/* A controller replaced by another changes nothing: its transactions
 * compare the controller key. */
Test(session, a_stale_controllers_transaction_is_refused)
{
    start_brokers(2, CLUSTER_PREFERRED_LEADER_CHECK_MS_DEFAULT);
    uint32_t two = 2;
    wait_view(0, has_brokers, &two, "two brokers");
    cr_assert_eq(create_topic(0, "fence", 1, 2), 0);
    wait_view(0, has_topic, "fence", "topic fence");
    struct etcd *e = etcd_of_test();
    struct etcd_kvs kvs = {0};
    cr_assert_eq(etcd_range(e, "/nagare/controller", NULL, &kvs), 0);
    cr_assert_eq(kvs.count, 1);
    char value[64];
    cr_assert_lt(kvs.kvs[0].value_len, sizeof(value));
    memcpy(value, kvs.kvs[0].value, kvs.kvs[0].value_len + 1);
    const struct controller_ident stale = {.key = "/nagare/controller",
                                           .value = value,
                                           .value_len = kvs.kvs[0].value_len,
                                           .mod_revision = kvs.kvs[0].mod_revision};
    etcd_kvs_free(&kvs);
    int32_t old_controller = 0;
    int64_t old_epoch = 0;
    cr_assert_eq(cluster_controller_decode(value, strlen(value), &old_controller, &old_epoch), 0);
    size_t dead = slot_of(old_controller), alive = 1 - dead;
    wait_view(alive, has_topic, "fence", "topic fence");
    struct cluster_partition p = part_of(alive, "fence", 0);
    stop_broker(dead);
    /* the survivor becomes controller (and moves leadership if needed) */
    struct part_copy now = {.topic = "fence", .index = 0};
    for (;;) {
        with_view(alive, copy_part, &now);
        if (now.controller == brokers[alive].id) {
            break;
        }
        struct timespec ts = {.tv_nsec = 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    cr_assert_eq(now.controller_epoch, old_epoch + 1);
    struct cluster_partition next = now.p;
    next.leader_epoch++;
    int64_t revision = 0;
    cr_assert_eq(
        controller_commit(e, &stale, "/nagare/partitions/fence/0", &next, NULL, 0, &revision),
        -NG_ENOT_CONTROLLER);
    /* the live controller's identity with a stale partition revision loses too */
    cr_assert_eq(etcd_range(e, "/nagare/controller", NULL, &kvs), 0);
    cr_assert_eq(kvs.count, 1);
    const struct controller_ident current = {.key = "/nagare/controller",
                                             .value = kvs.kvs[0].value,
                                             .value_len = kvs.kvs[0].value_len,
                                             .mod_revision = kvs.kvs[0].mod_revision};
    next = p; /* read before the broker stopped */
    if (next.mod_revision != now.p.mod_revision) {
        cr_assert_eq(
            controller_commit(e, &current, "/nagare/partitions/fence/0", &next, NULL, 0, &revision),
            -NG_ECONFLICT);
    }
    etcd_kvs_free(&kvs);
    etcd_close(e);
}

/* A reassignment: the new replica is added, joins the ISR (the leader
 * says so), then the old one is dropped and leadership moves. */
Test(session, reassignment_moves_a_partition_step_by_step)
{
    start_brokers(3, CLUSTER_PREFERRED_LEADER_CHECK_MS_DEFAULT);
    uint32_t three = 3;
    wait_view(0, has_brokers, &three, "three brokers");
    cr_assert_eq(create_topic(0, "move", 1, 2), 0); /* replicas 1,2; leader 1 */
    wait_view(0, has_topic, "move", "topic move");
    struct cluster_partition p = part_of(0, "move", 0);
    cr_assert(p.replicas[0] == 1 && p.replicas[1] == 2);
    struct done d;
    done_init(&d);
    const int32_t target[] = {3, 2};
    cr_assert_eq(cluster_session_reassign(brokers[1].s, "move", 0, target, 2, on_done, &d), 0);
    cr_assert_eq(wait_done(&d), 0);
    struct cluster_partition now;
    for (;;) { /* EXPAND: replicas 3,2,1 */
        now = part_of(0, "move", 0);
        if (now.replica_count == 3) {
            break;
        }
        struct timespec ts = {.tv_nsec = 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    cr_assert(now.replicas[0] == 3 && now.replicas[1] == 2 && now.replicas[2] == 1);
    cr_assert_eq(now.leader, 1);
    cr_assert_eq(now.leader_epoch, p.leader_epoch, "adding replicas moves no leader");
    /* the leader (broker 1) puts 3 in sync */
    const int32_t isr[] = {1, 2, 3};
    cr_assert_eq(alter_isr(0, "move", &now, now.leader_epoch, isr, 3), 0);
    struct leader_moved m = {
        .topic = "move", .index = 0, .old_leader = 1, .old_epoch = now.leader_epoch};
    wait_view(0, leader_moved, &m, "the reassignment finished");
    now = part_of(0, "move", 0);
    cr_assert(now.replica_count == 2 && now.replicas[0] == 3 && now.replicas[1] == 2);
    cr_assert_eq(now.leader, 3, "the old leader left; the first in-sync target leads");
    cr_assert(!cluster_partition_in_isr(&now, 1));
    cr_assert_eq(now.leader_epoch, p.leader_epoch + 1);
    /* refused: a broker that is not live, a partition that does not exist */
    done_init(&d);
    const int32_t ghost[] = {9};
    cr_assert_eq(cluster_session_reassign(brokers[0].s, "move", 0, ghost, 1, on_done, &d), 0);
    cr_assert_eq(wait_done(&d), -NG_EBADARG);
    done_init(&d);
    cr_assert_eq(cluster_session_reassign(brokers[0].s, "move", 5, target, 2, on_done, &d), 0);
    cr_assert_eq(wait_done(&d), -NG_EUNKNOWN_TOPIC);
}

/* A broker that comes back and is put back in sync gets its preferred
 * leadership back. */
Test(session, leadership_returns_to_the_preferred_replica)
{
    start_brokers(2, 100);
    uint32_t two = 2;
    wait_view(0, has_brokers, &two, "two brokers");
    cr_assert_eq(create_topic(0, "pref", 2, 2), 0);
    wait_view(1, has_topic, "pref", "topic pref");
    /* partition 1 prefers broker 2; stop it */
    struct cluster_partition p = part_of(1, "pref", 1);
    cr_assert_eq(p.replicas[0], 2);
    stop_broker(1);
    struct leader_moved away = {
        .topic = "pref", .index = 1, .old_leader = 2, .old_epoch = p.leader_epoch};
    wait_view(0, leader_moved, &away, "broker 1 leads partition 1");
    cr_assert_eq(start_broker(1, 2, 100), 0);
    struct cluster_partition now = part_of(0, "pref", 1);
    cr_assert_eq(now.leader, 1);
    /* the leader puts the returned broker back in sync, as its replica
     * fetcher would once caught up */
    const int32_t both[] = {1, 2};
    cr_assert_eq(alter_isr(0, "pref", &now, now.leader_epoch, both, 2), 0);
    struct leader_moved back = {
        .topic = "pref", .index = 1, .old_leader = 1, .old_epoch = now.leader_epoch};
    wait_view(0, leader_moved, &back, "broker 2 leads partition 1 again");
    struct cluster_partition last = part_of(0, "pref", 1);
    cr_assert_eq(last.leader, 2);
    cr_assert_eq(last.leader_epoch, now.leader_epoch + 1);
}

static bool is_fenced(const struct cluster_view *v, const void *arg)
{
    (void)arg;
    return v->fenced;
}

static bool registered_again(const struct cluster_view *v, const void *arg)
{
    return !v->fenced && cluster_view_broker(v, *(const int32_t *)arg) != NULL;
}

/* Its lease revoked behind its back, a broker is fenced, registers again
 * under a new lease and is unfenced. */
Test(session, a_lost_lease_fences_the_broker_until_it_registers_again)
{
    start_brokers(1, CLUSTER_PREFERRED_LEADER_CHECK_MS_DEFAULT);
    uint32_t one = 1;
    wait_view(0, has_brokers, &one, "one broker");
    struct etcd *e = etcd_of_test();
    struct etcd_kvs kvs = {0};
    cr_assert_eq(etcd_range(e, "/nagare/brokers/1", NULL, &kvs), 0);
    cr_assert_eq(kvs.count, 1);
    int64_t lease = kvs.kvs[0].lease;
    cr_assert_neq(lease, 0, "registered under a lease");
    etcd_kvs_free(&kvs);
    cr_assert_eq(etcd_lease_revoke(e, lease), 0);
    wait_view(0, is_fenced, NULL, "the broker fenced");
    int32_t id = 1;
    wait_view(0, registered_again, &id, "the broker registered again, unfenced");
    cr_assert_eq(etcd_range(e, "/nagare/brokers/1", NULL, &kvs), 0);
    cr_assert_eq(kvs.count, 1);
    cr_assert_neq(kvs.kvs[0].lease, lease, "a new lease");
    etcd_kvs_free(&kvs);
    etcd_close(e);
}

/* A session that vanishes (a power cut) leaves its registration to its
 * lease, which runs out by itself: no goodbye reaches etcd. */
Test(session, a_vanished_broker_stays_registered_until_its_lease_runs_out)
{
    start_brokers(1, CLUSTER_PREFERRED_LEADER_CHECK_MS_DEFAULT);
    uint32_t one = 1;
    wait_view(0, has_brokers, &one, "one broker");
    cluster_session_vanish(brokers[0].s);
    brokers[0].s = NULL;
    struct etcd *e = etcd_of_test();
    cr_assert_eq(key_count(e, "/nagare/brokers/1"), 1,
                 "still registered: its lease was not revoked");
    int64_t deadline = clock_mono_ms() + WAIT_MS;
    while (key_count(e, "/nagare/brokers/1") > 0) {
        cr_assert_lt(clock_mono_ms(), deadline, "the lease never ran out");
        usleep(100 * 1000);
    }
    etcd_close(e);
}

/* A request queued as the session stops still completes, once: served, or
 * refused with NG_ECLOSED. */
Test(session, a_request_queued_at_stop_completes_once)
{
    start_brokers(1, CLUSTER_PREFERRED_LEADER_CHECK_MS_DEFAULT);
    struct done d;
    done_init(&d);
    cr_assert_eq(
        cluster_session_create_topic(brokers[0].s, "late", 1, 1, &default_cfg, on_done, &d), 0);
    stop_broker(0);
    pthread_mutex_lock(&d.mu);
    bool done = d.done;
    int rc = d.rc;
    pthread_mutex_unlock(&d.mu);
    cr_assert(done, "completed by the time stop returned");
    cr_assert(rc == 0 || rc == -NG_ECLOSED, "%s", err_str(rc));
}

/* etcd's leader dies: the sessions go on through the other members. */
Test(session, goes_on_when_the_etcd_leader_dies)
{
    ets_start(&etcd, 3);
    for (size_t i = 0; i < 2; i++) {
        int rc = start_broker(i, (int32_t)i + 1, CLUSTER_PREFERRED_LEADER_CHECK_MS_DEFAULT);
        cr_assert_eq(rc, 0, "%s", err_str(rc));
    }
    uint32_t two = 2;
    wait_view(0, has_brokers, &two, "two brokers");
    cr_assert_eq(create_topic(0, "before", 1, 2), 0);
    wait_view(1, has_topic, "before", "topic before");
    ets_stop(&etcd, ets_leader(&etcd), SIGKILL);
    int rc = create_topic(1, "after", 1, 2);
    if (rc == -NG_ECLUSTER_UNAVAILABLE) { /* no leader yet within one call's timeout */
        ets_leader(&etcd);
        rc = create_topic(1, "after", 1, 2);
        /* the first try may have written it, its answer lost */
        rc = rc == -NG_ETOPIC_EXISTS ? 0 : rc;
    }
    cr_assert_eq(rc, 0, "%s", err_str(rc));
    wait_view(0, has_topic, "after", "topic after, through the new etcd leader");
    wait_view(0, has_brokers, &two, "both brokers still registered");
}

/* etcd is away long enough for the brokers to fence themselves, but not
 * for their leases to end (a restarted etcd renews every lease): once it is
 * back the controller still holds its key, and must act as controller
 * again, or nobody would until its lease ended, which it never does. */
Test(session, the_controller_acts_again_after_a_fenced_spell)
{
    start_brokers(2, CLUSTER_PREFERRED_LEADER_CHECK_MS_DEFAULT);
    uint32_t two = 2;
    wait_view(0, has_brokers, &two, "two brokers");
    wait_view(1, has_brokers, &two, "two brokers");
    cr_assert_eq(create_topic(0, "pause", 2, 2), 0);
    wait_view(0, has_topic, "pause", "topic pause");
    wait_view(1, has_topic, "pause", "topic pause");
    ets_stop(&etcd, 0, SIGKILL);
    wait_view(0, is_fenced, NULL, "broker 1 fenced while etcd is away");
    wait_view(1, is_fenced, NULL, "broker 2 fenced while etcd is away");
    ets_restart(&etcd, 0);
    int32_t one_id = 1, two_id = 2;
    wait_view(0, registered_again, &one_id, "broker 1 unfenced");
    wait_view(1, registered_again, &two_id, "broker 2 unfenced");
    struct part_copy c = {.topic = "pause", .index = 0};
    with_view(0, copy_part, &c);
    cr_assert(c.found);
    cr_assert(c.controller == 1 || c.controller == 2);
    size_t other = slot_of(c.controller == 1 ? 2 : 1), ctl = 1 - other;
    int32_t other_id = brokers[other].id;
    int32_t led = part_of(ctl, "pause", 0).leader == other_id ? 0 : 1;
    struct cluster_partition p = part_of(ctl, "pause", led);
    cr_assert_eq(p.leader, other_id);
    stop_broker(other);
    struct leader_moved m = {
        .topic = "pause", .index = led, .old_leader = other_id, .old_epoch = p.leader_epoch};
    wait_view(ctl, leader_moved, &m, "the controller moved the stopped broker's partition");
}
