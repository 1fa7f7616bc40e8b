/*
 * Reassignment (docs/cluster.md, section 3; nagare_partitions_reassign(),
 * ReassignPartitions): a cluster of 3 brokers and 3 etcd members
 * (tests/cluster_support.h) holds a topic of replication factor 2 with
 * records in it; a 4th broker joins later and partition 0 is moved onto it
 * and one of its old replicas. Once the partition's replicas are the
 * target and the new broker is in sync, the old replica left out is killed
 * and every record is read back from the new set, then from the new broker
 * alone. The requests the cluster must refuse are refused, each with its
 * error. And a topic created with unclean leader election allowed has it
 * in its record in etcd (what the controller reads), one created without
 * does not. And `nagare consume` asked through a follower that cannot hear
 * its leader (a one-way cut) still reads to the leader's end. Every wait
 * polls with a bound far above what a busy machine needs: only a hang
 * fails.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "client/nagare.h"
#include "tests/broker_support.h"
#include "tests/cluster_support.h"
#include "tests/sys_support.h"

#define TOPIC "moves"
#define PARTITIONS 2
#define RECORDS 300
#define SETTLE_MS 90000
#define ADMIN_TIMEOUT_MS 10000
#define NEW_BROKER 3 /* the index of the broker that starts later (id 4) */

static struct cluster C;

static void teardown(void) { cs_fini(&C); }

TestSuite(reassign, .fini = teardown, .timeout = 900);

static nagare_admin *admin_of(const char *bootstrap)
{
    nagare_admin *a = NULL;
    int rc = nagare_admin_new(bootstrap, ADMIN_TIMEOUT_MS, &a);
    cr_assert_eq(rc, 0, "admin of %s: %s", bootstrap, nagare_strerror(rc));
    return a;
}

/* Creates topic `name` once the brokers see each other (a controller
 * places it over the live ones). */
static void create_topic_as(const char *bootstrap, const char *name, bool unclean)
{
    struct nagare_topic_config cfg;
    nagare_topic_config_default(&cfg);
    cfg.partitions = PARTITIONS;
    cfg.replication_factor = 2;
    cfg.unclean_leader_election = unclean;
    cs_topic_create(&C, bootstrap, name, &cfg, NULL, SETTLE_MS);
}

static void create_topic(const char *bootstrap) { create_topic_as(bootstrap, TOPIC, false); }

/* Partition 0 as bootstrap's broker describes it now (false: not listed,
 * or the call failed). *live_out: whether broker `id` is live. */
static bool partition0(const char *bootstrap, int32_t id, struct nagare_partition_replicas *out,
                       int32_t *ids, bool *live_out)
{
    nagare_admin *a = NULL;
    if (nagare_admin_new(bootstrap, ADMIN_TIMEOUT_MS, &a) != 0) {
        return false;
    }
    const struct nagare_cluster_info *info = NULL;
    bool found = false;
    if (nagare_cluster_describe(a, &info) == 0) {
        *live_out = false;
        for (size_t i = 0; i < info->broker_count; i++) {
            *live_out = *live_out || info->brokers[i].id == id;
        }
        for (size_t i = 0; i < info->partition_count && !found; i++) {
            const struct nagare_partition_replicas *p = &info->partitions[i];
            if (p->topic != NULL && strcmp(p->topic, TOPIC) == 0 && p->partition == 0) {
                /* Copied out: the info is freed below. */
                *out = *p;
                memcpy(ids, p->replicas, p->replica_count * sizeof(*ids));
                memcpy(ids + p->replica_count, p->isr, p->isr_count * sizeof(*ids));
                if (p->target_count > 0) {
                    memcpy(ids + p->replica_count + p->isr_count, p->target,
                           p->target_count * sizeof(*ids));
                }
                out->replicas = ids;
                out->isr = ids + p->replica_count;
                out->target = ids + p->replica_count + p->isr_count;
                found = true;
            }
        }
        nagare_cluster_info_free(a, info);
    }
    nagare_admin_destroy(a);
    return found;
}

static bool ids_have(const int32_t *ids, size_t n, int32_t id)
{
    for (size_t i = 0; i < n; i++) {
        if (ids[i] == id) {
            return true;
        }
    }
    return false;
}

/* What a wait for partition 0 wants. */
struct want {
    int32_t live;         /* this broker live (-1: any) */
    size_t replica_count; /* 0: any */
    int32_t replicas[2];  /* exactly these, in order, when replica_count */
    int32_t in_isr;       /* this broker in sync (-1: any) */
    int32_t leader;       /* this leader (-1: any leader, but one) */
    bool full_isr;        /* every replica in sync */
    bool no_reassignment; /* no move in progress */
};

static bool wanted(const struct want *w, const struct nagare_partition_replicas *p, bool live)
{
    if (!live || p->leader < 0 || (w->leader >= 0 && p->leader != w->leader)) {
        return false;
    }
    if (w->replica_count > 0 &&
        (p->replica_count != w->replica_count ||
         memcmp(p->replicas, w->replicas, w->replica_count * sizeof(w->replicas[0])) != 0)) {
        return false;
    }
    if (w->in_isr >= 0 && !ids_have(p->isr, p->isr_count, w->in_isr)) {
        return false;
    }
    if (w->full_isr && p->isr_count != p->replica_count) {
        return false;
    }
    return !w->no_reassignment || p->target_count == 0;
}

/* Polls bootstrap's Metadata until partition 0 is as w says; returns it
 * (ids holds its arrays). While a reassignment to target runs, Metadata
 * must show that target and nothing else. */
static struct nagare_partition_replicas wait_partition0(const char *bootstrap, const struct want *w,
                                                        const int32_t *target, int32_t *ids,
                                                        const char *why)
{
    int64_t deadline = clock_mono_ms() + SETTLE_MS;
    struct nagare_partition_replicas p = {0};
    for (;;) {
        bool live = w->live < 0;
        bool found = partition0(bootstrap, w->live, &p, ids, &live);
        live = live || w->live < 0;
        if (found && target != NULL && p.target_count > 0) {
            cr_assert_eq(p.target_count, 2, "%s: a target of %zu replicas", why, p.target_count);
            cr_assert_arr_eq(p.target, target, 2 * sizeof(*target), "%s: another target", why);
        }
        if (found && wanted(w, &p, live)) {
            return p;
        }
        if (clock_mono_ms() >= deadline) {
            cs_print_logs(&C, why);
            cr_assert_fail("%s: partition 0 %s (leader %d, %zu replicas, %zu in sync, target of "
                           "%zu)",
                           why, found ? "not as wanted" : "not described", p.leader,
                           p.replica_count, p.isr_count, p.target_count);
        }
        sleep_ms(200);
    }
}

static size_t value_of(char *buf, size_t cap, int i)
{
    int n = snprintf(buf, cap, "record-%05d", i);
    cr_assert(n > 0 && (size_t)n < cap);
    return (size_t)n;
}

static void on_delivery(const struct nagare_delivery *d, void *opaque)
{
    int *failed = opaque;
    *failed += d->err != 0;
}

/* RECORDS records to partition 0 with acks=all, every one acknowledged. */
static void produce_all(const char *bootstrap)
{
    int failed = 0;
    struct nagare_producer_config cfg;
    nagare_producer_config_default(&cfg);
    cfg.bootstrap = bootstrap;
    cfg.on_delivery = on_delivery;
    cfg.opaque = &failed;
    nagare_producer *p = NULL;
    int rc = nagare_producer_new(&cfg, &p);
    cr_assert_eq(rc, 0, "producer: %s", nagare_strerror(rc));
    for (int i = 0; i < RECORDS; i++) {
        char v[32];
        size_t n = value_of(v, sizeof(v), i);
        struct nagare_record r = {
            .topic = TOPIC, .partition = 0, .key_len = -1, .value = v, .value_len = (ssize_t)n};
        rc = nagare_send(p, &r);
        cr_assert_eq(rc, 0, "send %d: %s", i, nagare_strerror(rc));
    }
    rc = nagare_producer_flush(p, SETTLE_MS);
    nagare_producer_destroy(p);
    cr_assert_eq(rc, 0, "flush: %s", nagare_strerror(rc));
    cr_assert_eq(failed, 0, "%d records not acknowledged", failed);
}

/* A consumer through bootstrap, assigned partition 0 from its start. */
static nagare_consumer *consumer_of(const char *bootstrap, const char *why)
{
    struct nagare_consumer_config cfg;
    nagare_consumer_config_default(&cfg);
    cfg.bootstrap = bootstrap;
    nagare_consumer *c = NULL;
    int64_t deadline = clock_mono_ms() + SETTLE_MS;
    int rc;
    /* The partition may be between leaders for a moment: assign again. */
    while ((rc = nagare_consumer_new(&cfg, &c)) != 0 ||
           (rc = nagare_consumer_assign(c, TOPIC, 0, NAGARE_OFFSET_BEGINNING)) != 0) {
        nagare_consumer_destroy(c);
        c = NULL;
        cr_assert_lt(clock_mono_ms(), deadline, "%s: consumer: %s", why, nagare_strerror(rc));
        sleep_ms(250);
    }
    return c;
}

/* Reads, through c (destroyed after), every record of partition 0, in
 * order, and nothing else. */
static void read_from(nagare_consumer *c, const char *why)
{
    int64_t deadline = clock_mono_ms() + SETTLE_MS;
    int got = 0;
    while (got < RECORDS) {
        const struct nagare_message *m = NULL;
        int rc = nagare_consumer_poll(c, 500, &m);
        cr_assert_lt(clock_mono_ms(), deadline, "%s: %d of %d records read", why, got, RECORDS);
        if (rc <= 0) {
            continue; /* nothing yet, or a transient error the consumer retries */
        }
        char v[32];
        size_t n = value_of(v, sizeof(v), got);
        cr_assert_eq(m->offset, got, "%s: offset %lld at record %d", why, (long long)m->offset,
                     got);
        cr_assert(m->value_len == (ssize_t)n && memcmp(m->value, v, n) == 0,
                  "%s: record %d differs", why, got);
        got++;
    }
    const struct nagare_message *m = NULL;
    cr_assert_leq(nagare_consumer_poll(c, 500, &m), 0, "%s: a record past the last one", why);
    nagare_consumer_destroy(c);
}

/* Reads partition 0 from the start through bootstrap: every record, in
 * order, and nothing else. */
static void read_all(const char *bootstrap, const char *why)
{
    read_from(consumer_of(bootstrap, why), why);
}

/* The requests the cluster refuses, while broker 4 is not live yet. */
static void refusals(const char *bootstrap)
{
    nagare_admin *a = admin_of(bootstrap);
    int32_t part = 0;
    int32_t beyond = PARTITIONS;
    int err = 0;
    int rc = nagare_partitions_reassign(a, "nosuch", &part, 1, (int32_t[]){1, 2}, 2, &err);
    cr_assert_eq(rc, -NAGARE_EUNKNOWN_TOPIC, "an unknown topic: %s", nagare_strerror(rc));
    cr_assert_eq(err, -NAGARE_EUNKNOWN_TOPIC);
    rc = nagare_partitions_reassign(a, TOPIC, &beyond, 1, (int32_t[]){1, 2}, 2, &err);
    cr_assert_eq(rc, -NAGARE_EUNKNOWN_TOPIC, "a partition past the last: %s", nagare_strerror(rc));
    rc = nagare_partitions_reassign(a, TOPIC, &part, 1, (int32_t[]){4, 1}, 2, &err);
    cr_assert_eq(rc, -NAGARE_EBADARG, "a broker not live: %s", nagare_strerror(rc));
    cr_assert_eq(err, -NAGARE_EBADARG);
    rc = nagare_partitions_reassign(a, TOPIC, &part, 1, (int32_t[]){1, 1}, 2, &err);
    cr_assert_eq(rc, -NAGARE_EBADARG, "a broker twice: %s", nagare_strerror(rc));
    rc = nagare_partitions_reassign(a, TOPIC, &part, 1, (int32_t[]){1, 2, 3, 5, 6, 7, 8, 9}, 8,
                                    &err);
    cr_assert_eq(rc, -NAGARE_EBADARG, "more than %d replicas: %s", NAGARE_REPLICAS_MAX,
                 nagare_strerror(rc));
    nagare_admin_destroy(a);
}

Test(reassign, a_partition_moves_onto_a_broker_added_later_and_keeps_every_record)
{
    cs_need_cluster();
    cs_init(&C, NEW_BROKER + 1);
    C.start_count = NEW_BROKER;
    cs_start(&C);
    char first3[sizeof(C.bootstrap)];
    snprintf(first3, sizeof(first3), "%s,%s,%s", C.b[0].bootstrap, C.b[1].bootstrap,
             C.b[2].bootstrap);
    create_topic(first3);
    int32_t ids[3 * CS_BROKERS_MAX];
    struct want ready = {.live = -1, .leader = -1, .in_isr = -1, .full_isr = true};
    struct nagare_partition_replicas p = wait_partition0(first3, &ready, NULL, ids, "at the start");
    cr_assert_eq(p.replica_count, 2);
    int32_t dropped = p.replicas[0]; /* the preferred leader leaves: leadership moves */
    int32_t kept = p.replicas[1];
    produce_all(first3);
    refusals(first3);

    int32_t added = C.b[NEW_BROKER].id;
    cs_broker_start(&C, NEW_BROKER);
    struct want joined = {.live = added, .leader = -1, .in_isr = -1};
    (void)wait_partition0(first3, &joined, NULL, ids, "the new broker is not seen live");

    nagare_admin *a = admin_of(first3);
    int32_t part = 0;
    int32_t target[2] = {added, kept};
    int err = 1;
    int rc = nagare_partitions_reassign(a, TOPIC, &part, 1, target, 2, &err);
    nagare_admin_destroy(a);
    cr_assert_eq(rc, 0, "reassign: %s", nagare_strerror(rc));
    cr_assert_eq(err, 0);
    struct want moved = {.live = added,
                         .replica_count = 2,
                         .replicas = {added, kept},
                         .in_isr = added,
                         .leader = -1,
                         .full_isr = true,
                         .no_reassignment = true};
    (void)wait_partition0(first3, &moved, target, ids, "the move did not finish");

    /* The replica left out holds nothing the partition needs. */
    cs_broker_kill(&C, (size_t)dropped - 1);
    char new_set[sizeof(C.bootstrap)];
    snprintf(new_set, sizeof(new_set), "%s,%s", C.b[NEW_BROKER].bootstrap, C.b[kept - 1].bootstrap);
    read_all(new_set, "read from the new replicas");

    /* Nor the one kept: the added broker alone holds every record. */
    cs_broker_kill(&C, (size_t)kept - 1);
    struct want alone = {.live = added, .leader = added, .in_isr = added};
    (void)wait_partition0(C.b[NEW_BROKER].bootstrap, &alone, NULL, ids,
                          "the added broker did not take over");
    read_all(C.b[NEW_BROKER].bootstrap, "read from the added broker alone");
}

/* The record of topic name in etcd, as etcdctl prints it, into out. */
static void topic_record(const char *name, char *out, size_t cap)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "ETCDCTL_API=3 etcdctl --endpoints=%s get --print-value-only /%s/topics/%s 2>&1",
             C.endpoints, C.table, name);
    cr_assert_eq(bk_run(cmd, out, cap), 0, "%s: %s", cmd, out);
}

Test(reassign, unclean_leader_election_is_in_the_topic_record_only_when_asked_for)
{
    cs_need_cluster();
    char out[4096];
    if (bk_run("command -v etcdctl >/dev/null", out, sizeof(out)) != 0) {
        cr_skip_test("no etcdctl (Debian's etcd-client) to read the topic record");
    }
    cs_init(&C, 3);
    cs_start(&C);
    create_topic_as(C.bootstrap, "unclean", true);
    create_topic_as(C.bootstrap, "clean", false);
    topic_record("unclean", out, sizeof(out));
    cr_assert_not_null(strstr(out, "\"unclean_leader_election\":true"), "%s", out);
    topic_record("clean", out, sizeof(out));
    cr_assert_not_null(strstr(out, "\"unclean_leader_election\":false"), "%s", out);
}

/* In a cluster a create is done in etcd before any broker has the topic:
 * nagare_topic_create() returns only once the broker asked lists it with
 * a leader, so a client made next finds it (a producer's send to a topic
 * its broker does not know fails at once). */
Test(reassign, a_created_topic_has_a_leader_when_create_returns)
{
    cs_need_cluster();
    cs_init(&C, 3);
    cs_start(&C);
    nagare_admin *a = admin_of(C.b[1].bootstrap);
    struct nagare_topic_config cfg;
    nagare_topic_config_default(&cfg);
    cfg.partitions = PARTITIONS;
    cfg.replication_factor = 2;
    int64_t deadline = clock_mono_ms() + SETTLE_MS;
    int rc;
    while ((rc = nagare_topic_create(a, TOPIC, &cfg)) != 0 && clock_mono_ms() < deadline) {
        sleep_ms(250); /* the brokers do not see each other yet */
    }
    cr_assert_eq(rc, 0, "create: %s", nagare_strerror(rc));
    const struct nagare_cluster_info *info = NULL;
    rc = nagare_cluster_describe(a, &info);
    cr_assert_eq(rc, 0, "describe: %s", nagare_strerror(rc));
    int32_t leaders = 0;
    for (size_t i = 0; i < info->partition_count; i++) {
        const struct nagare_partition_replicas *p = &info->partitions[i];
        leaders += p->topic != NULL && strcmp(p->topic, TOPIC) == 0 && p->leader >= 0;
    }
    nagare_cluster_info_free(a, info);
    nagare_admin_destroy(a);
    cr_assert_eq(leaders, PARTITIONS,
                 "every partition listed with its leader when create returned");
}

/* An admin's offset lookup asks the partition's leader, whichever broker
 * the admin is connected to (a follower refuses ListOffsets). */
Test(reassign, an_offset_lookup_through_any_broker_gets_the_leaders_end)
{
    cs_need_cluster();
    cs_init(&C, 3);
    cs_start(&C);
    create_topic(C.bootstrap);
    int32_t ids[3 * CS_BROKERS_MAX];
    struct want ready = {.live = -1, .leader = -1, .in_isr = -1, .full_isr = true};
    (void)wait_partition0(C.bootstrap, &ready, NULL, ids, "start");
    produce_all(C.bootstrap);
    for (size_t i = 0; i < 3; i++) {
        (void)wait_partition0(C.b[i].bootstrap, &ready, NULL, ids, "seen by each broker");
        nagare_admin *a = admin_of(C.b[i].bootstrap);
        int64_t end = -1;
        int rc = nagare_offset_lookup(a, TOPIC, 0, NAGARE_OFFSET_END, &end);
        nagare_admin_destroy(a);
        cr_assert_eq(rc, 0, "through broker %d: %s", C.b[i].id, nagare_strerror(rc));
        cr_assert_eq(end, RECORDS, "through broker %d", C.b[i].id);
    }
}

/* A producer and a consumer given one bootstrap address, the leader's,
 * whose broker then dies: they ask the other brokers they learnt of for
 * metadata, find the new leader, and deliver and read everything (the
 * bootstrap connection alone could not be made again: they stayed on the
 * dead leader). */
Test(reassign, clients_outlive_their_only_bootstrap_broker)
{
    cs_need_cluster();
    cs_init(&C, 3);
    cs_set(&C, "min_insync_replicas=1"); /* two replicas, one of them killed */
    cs_start(&C);
    create_topic(C.bootstrap);
    int32_t ids[3 * CS_BROKERS_MAX];
    struct want ready = {.live = -1, .leader = -1, .in_isr = -1, .full_isr = true};
    struct nagare_partition_replicas p = wait_partition0(C.bootstrap, &ready, NULL, ids, "start");
    size_t leader = (size_t)p.leader - 1;
    int failed = 0;
    struct nagare_producer_config cfg;
    nagare_producer_config_default(&cfg);
    cfg.bootstrap = C.b[leader].bootstrap;
    cfg.on_delivery = on_delivery;
    cfg.opaque = &failed;
    cfg.delivery_timeout_ms = SETTLE_MS;
    nagare_producer *pr = NULL;
    int rc = nagare_producer_new(&cfg, &pr);
    cr_assert_eq(rc, 0, "producer: %s", nagare_strerror(rc));
    nagare_consumer *k = consumer_of(cfg.bootstrap, "a consumer of the leader alone");
    for (int i = 0; i < RECORDS; i++) {
        char v[32];
        size_t n = value_of(v, sizeof(v), i);
        struct nagare_record r = {
            .topic = TOPIC, .partition = 0, .key_len = -1, .value = v, .value_len = (ssize_t)n};
        cr_assert_eq(nagare_send(pr, &r), 0);
        if (i == RECORDS / 2) {
            rc = nagare_producer_flush(pr, SETTLE_MS);
            cr_assert_eq(rc, 0, "flush before the kill: %s", nagare_strerror(rc));
            cs_broker_kill(&C, leader);
        }
    }
    rc = nagare_producer_flush(pr, SETTLE_MS);
    nagare_producer_destroy(pr);
    cr_assert_eq(rc, 0, "flush after the kill: %s", nagare_strerror(rc));
    cr_assert_eq(failed, 0, "%d records not acknowledged", failed);
    read_from(k, "a consumer made before its only bootstrap broker died");
}

/* A follower's offsets lag its leader's: here the follower hears nothing
 * from the leader (packets from the leader to it are dropped), so its log
 * stays empty while the leader, having taken it out of the in-sync set,
 * acknowledges every record. `nagare consume` through the follower must
 * still read them all: where a partition ends comes from its leader. */
Test(reassign, the_cli_reads_to_the_leaders_end_through_a_follower_that_lags)
{
    cs_need_cluster();
    const char *nagare = getenv("NAGARE");
    cr_assert(nagare != NULL && *nagare, "set NAGARE to the nagare tool");
    cs_init(&C, 3);
    cs_set(&C, "replica_lag_ms=500");
    cs_set(&C, "min_insync_replicas=1");
    cs_start(&C);
    create_topic(C.bootstrap);
    int32_t ids[3 * CS_BROKERS_MAX];
    struct want ready = {.live = -1, .leader = -1, .in_isr = -1, .full_isr = true};
    struct nagare_partition_replicas p = wait_partition0(C.bootstrap, &ready, NULL, ids, "start");
    int32_t leader = p.leader;
    int32_t follower = p.replicas[0] == leader ? p.replicas[1] : p.replicas[0];
    cs_drop_oneway(&C, (size_t)leader - 1, (size_t)follower - 1);
    produce_all(C.b[leader - 1].bootstrap); /* acknowledged once the follower is out of sync */

    char cmd[512];
    snprintf(cmd, sizeof(cmd), "'%s' consume " TOPIC " --partition 0 --broker %s 2>&1", nagare,
             C.b[follower - 1].bootstrap);
    static char out[RECORDS * 32];
    int rc = bk_run(cmd, out, sizeof(out));
    cr_assert_eq(rc, 0, "%s: %s", cmd, out);
    char *line = out;
    for (int i = 0; i < RECORDS; i++) {
        char v[32];
        size_t n = value_of(v, sizeof(v), i);
        cr_assert(strncmp(line, v, n) == 0 && line[n] == '\n', "record %d: %.40s", i, line);
        line += n + 1;
    }
    cr_assert_str_eq(line, "", "past the last record: %.40s", line);
}

/* A consumer of partitions led by three brokers, two of them with nothing
 * to read: their fetches long-poll, and the fetches in flight are shared
 * by every broker, so the third broker's partition must still get its
 * turn (a fixed order of brokers once starved it for good). */
Test(reassign, a_consumer_reads_the_last_brokers_partition_while_the_others_idle)
{
    cs_need_cluster();
    cs_init(&C, 3);
    cs_start(&C);
    nagare_admin *a = admin_of(C.b[0].bootstrap);
    int64_t deadline = clock_mono_ms() + SETTLE_MS;
    int rc;
    /* Every broker live first: a factor-1 topic is placed over those live. */
    size_t live = 0;
    while (live < 3) {
        cr_assert_lt(clock_mono_ms(), deadline, "%zu brokers live, not 3", live);
        const struct nagare_cluster_info *info = NULL;
        if (nagare_cluster_describe(a, &info) == 0) {
            live = info->broker_count;
            nagare_cluster_info_free(a, info);
        }
        sleep_ms(live < 3 ? 200 : 0);
    }
    struct nagare_topic_config cfg;
    nagare_topic_config_default(&cfg);
    cfg.partitions = 3;
    cfg.replication_factor = 1; /* partition i on one broker each */
    while ((rc = nagare_topic_create(a, "idle", &cfg)) != 0 && rc != -NAGARE_ETOPIC_EXISTS) {
        cr_assert_lt(clock_mono_ms(), deadline, "create: %s", nagare_strerror(rc));
        sleep_ms(250);
    }
    /* The partition broker 3 leads, once every partition has its leader. */
    int32_t busy = -1;
    while (busy < 0) {
        cr_assert_lt(clock_mono_ms(), deadline, "no leaders for topic idle");
        const struct nagare_cluster_info *info = NULL;
        int led = 0;
        if (nagare_cluster_describe(a, &info) == 0) {
            for (size_t i = 0; i < info->partition_count; i++) {
                const struct nagare_partition_replicas *p = &info->partitions[i];
                if (p->topic != NULL && strcmp(p->topic, "idle") == 0 && p->leader >= 0) {
                    led++;
                    busy = p->leader == 3 ? p->partition : busy;
                }
            }
            nagare_cluster_info_free(a, info);
        }
        busy = led == 3 ? busy : -1;
        sleep_ms(led == 3 ? 0 : 200);
    }
    nagare_admin_destroy(a);

    struct nagare_producer_config pc;
    nagare_producer_config_default(&pc);
    pc.bootstrap = C.b[0].bootstrap;
    nagare_producer *p = NULL;
    cr_assert_eq(nagare_producer_new(&pc, &p), 0);
    struct nagare_record r = {
        .topic = "idle", .partition = busy, .key_len = -1, .value = "x", .value_len = 1};
    cr_assert_eq(nagare_send(p, &r), 0);
    cr_assert_eq(nagare_producer_flush(p, SETTLE_MS), 0);
    nagare_producer_destroy(p);

    /* Bootstrapped at broker 1: the client meets the brokers in id order. */
    struct nagare_consumer_config cc;
    nagare_consumer_config_default(&cc);
    cc.bootstrap = C.b[0].bootstrap;
    nagare_consumer *c = NULL;
    cr_assert_eq(nagare_consumer_new(&cc, &c), 0);
    for (int32_t i = 0; i < 3; i++) {
        cr_assert_eq(nagare_consumer_assign(c, "idle", i, NAGARE_OFFSET_BEGINNING), 0);
    }
    const struct nagare_message *m = NULL;
    do {
        cr_assert_lt(clock_mono_ms(), deadline, "partition %d's record never came", busy);
        rc = nagare_consumer_poll(c, 500, &m);
    } while (rc <= 0);
    cr_assert_eq(m->partition, busy);
    cr_assert(m->value_len == 1 && memcmp(m->value, "x", 1) == 0);
    nagare_consumer_destroy(c);
}
