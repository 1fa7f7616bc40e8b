/*
 * tests/test_cluster_share.c — share groups in a cluster of three brokers
 * (docs/cluster.md, section 5): their state is the replicated
 * __share_state/0, the leader of which coordinates every share group;
 * other brokers answer NOT_COORDINATOR; acknowledgements survive kill -9
 * of the coordinator, and what was handed out but not acknowledged is
 * handed out again by the next. Skipped, saying why, when the machine
 * cannot run a cluster (cs_need_cluster()).
 */
#include <criterion/criterion.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/err.h"
#include "client/nagare.h"
#include "net/proto.h"
#include "tests/broker_support.h"
#include "tests/checker.h"
#include "tests/cluster_support.h"

#define TOPIC "q"
#define GROUP "sg"
#define RECORDS 100
#define ACKED 40
#define MORE 10
/* Bounds that only turn a hang into a failure. */
#define SETUP_TIMEOUT_MS 60000
#define READ_TIMEOUT_MS 120000

static struct cluster C;

static void teardown(void) { cs_fini(&C); }

/* Creates TOPIC, one partition of replication_factor replicas (-1: the
 * brokers' default). */
static void topic_create(int16_t replication_factor)
{
    struct nagare_topic_config cfg;
    nagare_topic_config_default(&cfg);
    cfg.partitions = 1;
    cfg.replication_factor = replication_factor;
    cs_topic_create(&C, C.bootstrap, TOPIC, &cfg, NULL, SETUP_TIMEOUT_MS);
}

/* A cluster of three brokers (replication factor 3, min in-sync 2, and
 * setting, when not NULL) and the topic TOPIC (one partition) on it. */
static void cluster_up_with(const char *setting)
{
    cs_need_cluster();
    cs_init(&C, 3);
    cs_set(&C, "default_replication_factor=3");
    cs_set(&C, "min_insync_replicas=2");
    if (setting != NULL) {
        cs_set(&C, setting);
    }
    cs_start(&C);
    topic_create(-1);
}

static void cluster_up(void) { cluster_up_with(NULL); }

/* Writes values from..to-1 (their decimal text), acks=all, through the
 * brokers of bootstrap. */
static void produce_via(const char *bootstrap, int from, int to)
{
    struct nagare_producer_config cfg;
    nagare_producer_config_default(&cfg);
    cfg.bootstrap = bootstrap;
    nagare_producer *p;
    cr_assert_eq(nagare_producer_new(&cfg, &p), 0);
    for (int i = from; i < to; i++) {
        char v[16];
        int n = snprintf(v, sizeof(v), "%d", i);
        struct nagare_record r = {
            .topic = TOPIC, .partition = 0, .key_len = -1, .value = v, .value_len = n};
        cr_assert_eq(nagare_send(p, &r), 0);
    }
    int rc = nagare_producer_flush(p, READ_TIMEOUT_MS);
    cr_assert_eq(rc, 0, "flush: %s", nagare_strerror(rc));
    nagare_producer_destroy(p);
}

static void produce(int from, int to) { produce_via(C.bootstrap, from, to); }

/* A share consumer of GROUP through the brokers of bootstrap, with
 * request_timeout_ms (0: the default). */
static nagare_share_consumer *share_new_via(const char *bootstrap, uint32_t request_timeout_ms)
{
    struct nagare_share_consumer_config cfg;
    nagare_share_consumer_config_default(&cfg);
    cfg.bootstrap = bootstrap;
    if (request_timeout_ms > 0) {
        cfg.request_timeout_ms = request_timeout_ms;
    }
    cfg.close_ack = NAGARE_ACK_NONE;
    nagare_share_consumer *sc;
    cr_assert_eq(nagare_share_consumer_new(&cfg, &sc), 0);
    const char *topics[] = {TOPIC};
    int rc = nagare_share_subscribe(sc, GROUP, topics, 1);
    if (rc != 0) {
        cs_print_logs(&C, "no share subscription");
    }
    cr_assert_eq(rc, 0, "subscribe: %s", nagare_strerror(rc));
    return sc;
}

static nagare_share_consumer *share_new_timeout(uint32_t request_timeout_ms)
{
    return share_new_via(C.bootstrap, request_timeout_ms);
}

static nagare_share_consumer *share_new(void) { return share_new_timeout(0); }

/* The broker index leading topic/0 now (-1: none known). */
static int leader_index(const char *topic) { return cs_leader_index(C.bootstrap, topic, 0); }

/* Polls until every offset in [from, to) was returned (marked in seen),
 * failing the test at deadline (monotonic ms); asserts that none below
 * `floor` ever is, and that none is past the end. */
static void poll_until_by(nagare_share_consumer *sc, bool *seen, int64_t from, int64_t to,
                          int64_t floor, const char *what, int64_t deadline)
{
    for (int64_t next = from; next < to;) {
        const struct nagare_message *m;
        int rc = nagare_share_poll(sc, 200, &m);
        cr_assert_geq(rc, 0, "%s: poll: %s", what, nagare_strerror(rc));
        if (rc == 1) {
            cr_assert_geq(m->offset, floor, "%s: offset %lld handed out again", what,
                          (long long)m->offset);
            cr_assert_lt(m->offset, RECORDS + MORE, "%s: offset %lld was never written", what,
                         (long long)m->offset);
            seen[m->offset] = true;
        }
        while (next < to && seen[next]) {
            next++;
        }
        if (clock_mono_ms() >= deadline) {
            cs_print_logs(&C, what);
            cr_assert_fail("%s: offset %lld not handed out", what, (long long)next);
        }
    }
}

static void poll_until(nagare_share_consumer *sc, bool *seen, int64_t from, int64_t to,
                       int64_t floor, const char *what)
{
    poll_until_by(sc, seen, from, to, floor, what, clock_mono_ms() + READ_TIMEOUT_MS);
}

/* Accepts [from, to) and waits for the answers, retrying while the
 * coordinator moves. */
static void accept_range(nagare_share_consumer *sc, int64_t from, int64_t to)
{
    for (int64_t o = from; o < to; o++) {
        int rc = nagare_share_ack_offset(sc, TOPIC, 0, o, NAGARE_ACK_ACCEPT);
        cr_assert_eq(rc, 0, "ack %lld: %s", (long long)o, nagare_strerror(rc));
    }
    int rc = nagare_share_commit(sc);
    if (rc != 0) {
        cs_print_logs(&C, "acks not answered");
    }
    cr_assert_eq(rc, 0, "commit: %s", nagare_strerror(rc));
}

Test(cluster_share, acks_survive_kill9_of_the_coordinator, .fini = teardown, .timeout = 600)
{
    cluster_up();
    produce(0, RECORDS);
    nagare_share_consumer *sc = share_new();
    static bool seen[RECORDS + MORE];
    poll_until(sc, seen, 0, RECORDS, 0, "before the kill");
    accept_range(sc, 0, ACKED); /* answered once the high watermark passed them */
    int k = leader_index(PROTO_SHARE_STATE_TOPIC);
    cr_assert_geq(k, 0, "no leader of " PROTO_SHARE_STATE_TOPIC "/0");
    cs_broker_kill(&C, (size_t)k);

    /* The consumer finds the new coordinator, which replayed the state:
     * the records acknowledged are finished, the others (handed out, not
     * acknowledged) come again, none lost. */
    memset(seen, 0, sizeof(seen));
    poll_until(sc, seen, ACKED, RECORDS, ACKED, "after the kill");
    cr_assert_neq(leader_index(PROTO_SHARE_STATE_TOPIC), k, "the dead broker still coordinates");
    accept_range(sc, ACKED, RECORDS);
    nagare_share_consumer_destroy(sc);

    /* A new member of the group gets only what came since. */
    produce(RECORDS, RECORDS + MORE);
    nagare_share_consumer *d = share_new();
    memset(seen, 0, sizeof(seen));
    poll_until(d, seen, RECORDS, RECORDS + MORE, RECORDS, "a new member");
    accept_range(d, RECORDS, RECORDS + MORE);
    nagare_share_consumer_destroy(d);
    cs_stop_brokers(&C); /* a coordinator's term ends cleanly too */
}

/* SIGSTOPs the share coordinator (the leader of __share_state/0) and
 * returns its index, with the other brokers' addresses in live. */
static int pause_share_coordinator(char live[CS_BOOTSTRAP_BYTES])
{
    int k = leader_index(PROTO_SHARE_STATE_TOPIC);
    cr_assert_geq(k, 0, "no leader of " PROTO_SHARE_STATE_TOPIC "/0");
    cs_bootstrap_without(&C, (size_t)k, live);
    cs_broker_pause(&C, (size_t)k);
    return k;
}

/* The share coordinator SIGSTOPped and kept so (issue 13): its
 * connections stay open and it answers nothing, while the cluster makes
 * another broker leader of __share_state/0 (and of TOPIC's partition 0,
 * placed on the same broker) once its lease runs out. The share consumer,
 * whose requests would wait for their timeout (120 s here), asks another
 * broker who coordinates once the coordinator has kept its fetch
 * stall_ms past the long poll, moves to the broker named, and gets the
 * records written meanwhile at the partition's new leader, and its acks
 * answered, before the paused broker resumes. */
Test(cluster_share, a_paused_coordinator_is_left_for_its_successor, .fini = teardown,
     .timeout = 600)
{
    cluster_up();
    produce(0, RECORDS);
    nagare_share_consumer *sc = share_new_timeout(120000);
    static bool seen[RECORDS + MORE];
    poll_until(sc, seen, 0, RECORDS, 0, "before the pause");
    accept_range(sc, 0, RECORDS);
    char live[CS_BOOTSTRAP_BYTES];
    int k = pause_share_coordinator(live);

    /* Far below the request timeout: only leaving the paused broker makes it. */
    int64_t deadline = clock_mono_ms() + 60000;
    produce_via(live, RECORDS, RECORDS + MORE);
    poll_until_by(sc, seen, RECORDS, RECORDS + MORE, RECORDS, "with the coordinator paused",
                  deadline);
    accept_range(sc, RECORDS, RECORDS + MORE);
    cr_assert_lt(clock_mono_ms(), deadline, "acks answered only after 60000 ms");
    cr_assert(cs_broker_alive(&C, (size_t)k) && C.b[k].paused);
    cs_broker_resume(&C, (size_t)k);
    nagare_share_consumer_destroy(sc);
}

/* A share consumer made (through the live brokers) while the share
 * coordinator is SIGSTOPped: the lookup names the paused broker until its
 * lease runs out, whose kernel accepts the connection and whose handshake
 * never ends. The connect is watched like a request (issue 13): given up
 * once another broker names another coordinator, so the subscription
 * (its ShareFetch of nothing for a member id) completes at the successor
 * and the records are handed out there, within 60 s with a request
 * timeout of 120 s, the broker still paused. */
Test(cluster_share, a_consumer_subscribes_with_the_coordinator_paused, .fini = teardown,
     .timeout = 600)
{
    cluster_up();
    produce(0, RECORDS);
    nagare_share_consumer_destroy(share_new()); /* makes __share_state */
    char live[CS_BOOTSTRAP_BYTES];
    int k = pause_share_coordinator(live);
    int64_t deadline = clock_mono_ms() + 60000;
    nagare_share_consumer *sc = share_new_via(live, 120000);
    cr_assert_lt(clock_mono_ms(), deadline, "subscribed after 60000 ms");
    static bool seen[RECORDS + MORE];
    poll_until_by(sc, seen, 0, RECORDS, 0, "with the coordinator paused", deadline);
    cr_assert(cs_broker_alive(&C, (size_t)k) && C.b[k].paused);
    cs_broker_resume(&C, (size_t)k);
    nagare_share_consumer_destroy(sc);
}

/* A ShareFetch of nothing for GROUP on partitions 0..count-1 of topic,
 * sent to broker i: the error it is answered with, and each partition's
 * in part_errs (when the answer has them). */
static int share_fetch_parts(size_t i, const char *topic, int32_t count, int *part_errs)
{
    struct cl raw;
    cl_connect_host(&raw, C.b[i].host, C.b[i].port, 10000);
    uint32_t corr = cl_next_corr(&raw);
    struct proto_enc e;
    struct proto_share_fetch_req req = {.group = proto_str_make(GROUP),
                                        .member_id = proto_str_make(""),
                                        .wait_max_ms = 0,
                                        .records_max = 0};
    proto_share_fetch_req_begin(&e, cl_wr(&raw), 0, corr, proto_str_make("t"), &req);
    proto_enc_topic(&e, proto_str_make(topic));
    for (int32_t p = 0; p < count; p++) {
        proto_enc_partition_index(&e, p);
    }
    cr_assert_eq(proto_enc_end(&e), 0);
    cr_assert_eq(cl_send_wr(&raw), 0);
    struct proto_resp_header h;
    struct rd body;
    cr_assert_eq(cl_recv(&raw, &h, &body), 0);
    int err = h.err;
    if (err == 0) {
        struct proto_share_fetch_resp r;
        struct proto_dec d;
        cr_assert_eq(proto_share_fetch_resp_decode(&body, 0, &r, &d), 0);
        err = r.err;
        struct proto_topic t;
        struct proto_share_fetch_resp_partition rp;
        for (int32_t p = 0; err == 0 && p < count; p++) {
            cr_assert(p > 0 || proto_next_topic(&d, &t));
            cr_assert(proto_share_fetch_resp_next_partition(&d, &rp));
            cr_assert_eq(rp.partition, p);
            part_errs[p] = rp.err;
        }
    }
    cl_close(&raw);
    return err;
}

static int share_fetch_at(size_t i)
{
    int part_err = 0;
    return share_fetch_parts(i, TOPIC, 1, &part_err);
}

/* Only the leader of __share_state/0 serves share groups; the others
 * answer NOT_COORDINATOR, and the consumer finds the coordinator through
 * any of them. */
Test(cluster_share, a_broker_not_coordinator_answers_so, .fini = teardown, .timeout = 300)
{
    cluster_up();
    nagare_share_consumer *sc = share_new(); /* makes __share_state, finds its leader */
    nagare_share_consumer_destroy(sc);
    int k = leader_index(PROTO_SHARE_STATE_TOPIC);
    cr_assert_geq(k, 0);
    for (size_t i = 0; i < 3; i++) {
        int err = share_fetch_at(i);
        cr_assert_eq(err, (int)i == k ? 0 : -NG_ENOT_COORDINATOR, "broker %zu: %s", i,
                     err_str(err));
    }
}

/* The coordinator hands out the records of the partitions it holds a
 * replica of; one it holds none of gets NG_ENO_REPLICA. "spread" has one
 * partition per broker, each with one replica. */
Test(cluster_share, a_partition_without_a_replica_at_the_coordinator_says_so, .fini = teardown,
     .timeout = 300)
{
    cluster_up();
    nagare_share_consumer *sc = share_new(); /* makes __share_state */
    nagare_share_consumer_destroy(sc);
    int k = leader_index(PROTO_SHARE_STATE_TOPIC);
    cr_assert_geq(k, 0);
    nagare_admin *a;
    cr_assert_eq(nagare_admin_new(C.bootstrap, 5000, &a), 0);
    struct nagare_topic_config cfg;
    nagare_topic_config_default(&cfg);
    cfg.partitions = 3;
    cfg.replication_factor = 1;
    int rc = nagare_topic_create(a, "spread", &cfg);
    cr_assert_eq(rc, 0, "create spread: %s", nagare_strerror(rc));
    /* The broker asked (and the coordinator) learn of the topic from a
     * view: ask until they have. */
    int64_t deadline = clock_mono_ms() + SETUP_TIMEOUT_MS;
    int want[3];
    int held = 0;
    for (int listed = 0; listed < 3;) {
        cr_assert_lt(clock_mono_ms(), deadline, "spread is not described");
        const struct nagare_cluster_info *info;
        cr_assert_eq(nagare_cluster_describe(a, &info), 0);
        listed = held = 0;
        for (size_t i = 0; i < info->partition_count; i++) {
            const struct nagare_partition_replicas *p = &info->partitions[i];
            if (strcmp(p->topic, "spread") == 0) {
                cr_assert_eq(p->replica_count, 1);
                bool here = p->replicas[0] == k + 1;
                want[p->partition] = here ? 0 : -NG_ENO_REPLICA;
                held += here;
                listed++;
            }
        }
        nagare_cluster_info_free(a, info);
        (void)poll(NULL, 0, listed < 3 ? 200 : 0);
    }
    nagare_admin_destroy(a);
    cr_assert_lt(held, 3, "every partition landed on the coordinator");
    for (;;) {
        int got[3] = {1, 1, 1};
        int err = share_fetch_parts((size_t)k, "spread", 3, got);
        cr_assert_eq(err, 0, "%s", err_str(err));
        if (memcmp(got, want, sizeof(got)) == 0) {
            break;
        }
        cr_assert_lt(clock_mono_ms(), deadline,
                     "broker %d: partition errors %d, %d, %d (want %d, %d, %d)", k + 1, got[0],
                     got[1], got[2], want[0], want[1], want[2]);
        (void)poll(NULL, 0, 200);
    }
}

/* The end of broker i's replica of topic/0, read from its data directory
 * (safe while it runs: chk_replica_end()). */
static int64_t replica_end(size_t i, const char *topic)
{
    char dir[CS_PATH_BYTES + 64];
    snprintf(dir, sizeof(dir), "%s/topics/%s/0", C.b[i].data_dir, topic);
    int64_t end = 0;
    cr_assert_eq(chk_replica_end(dir, &end), 0, "%s", dir);
    return end;
}

/* Waits (until deadline) for every replica of TOPIC.dlq to hold a copy,
 * then asserts that broker k, the share coordinator, leads it. */
static void dlq_copied_by(int k, int64_t deadline)
{
    for (size_t i = 0; i < 3; i++) {
        while (replica_end(i, TOPIC ".dlq") < 1) {
            if (clock_mono_ms() >= deadline) {
                cs_print_logs(&C, "no dead-letter copy");
                cr_assert_fail("broker %zu has no copy (coordinator %d, " TOPIC ".dlq/0 led by %d)",
                               i + 1, k + 1, leader_index(TOPIC ".dlq") + 1);
            }
            (void)poll(NULL, 0, 200);
        }
    }
    cr_assert_eq(leader_index(TOPIC ".dlq"), k);
}

/* A rejected record is copied to the dead-letter topic TOPIC.dlq, made
 * through the cluster and replicated: every replica has the copy. Its
 * partition 0 is led by the first broker, as __share_state/0 is
 * (controller_place()), so the coordinator leads it and copies. */
Test(cluster_share, a_dead_letter_lands_in_the_replicated_dlq_topic, .fini = teardown,
     .timeout = 300)
{
    cluster_up();
    produce(0, 3);
    nagare_share_consumer *sc = share_new();
    static bool seen[RECORDS + MORE];
    poll_until(sc, seen, 0, 3, 0, "the records");
    cr_assert_eq(nagare_share_ack_offset(sc, TOPIC, 0, 0, NAGARE_ACK_ACCEPT), 0);
    cr_assert_eq(nagare_share_ack_offset(sc, TOPIC, 0, 1, NAGARE_ACK_REJECT), 0);
    cr_assert_eq(nagare_share_ack_offset(sc, TOPIC, 0, 2, NAGARE_ACK_ACCEPT), 0);
    int rc = nagare_share_commit(sc);
    cr_assert_eq(rc, 0, "commit: %s", nagare_strerror(rc));
    nagare_share_consumer_destroy(sc);
    int k = leader_index(PROTO_SHARE_STATE_TOPIC);
    cr_assert_geq(k, 0);
    int64_t deadline = clock_mono_ms() + READ_TIMEOUT_MS;
    dlq_copied_by(k, deadline);

    /* The copy, read from the leader: the rejected record. */
    struct nagare_consumer_config cfg;
    nagare_consumer_config_default(&cfg);
    cfg.bootstrap = C.bootstrap;
    nagare_consumer *c;
    cr_assert_eq(nagare_consumer_new(&cfg, &c), 0);
    cr_assert_eq(nagare_consumer_assign(c, TOPIC ".dlq", 0, NAGARE_OFFSET_BEGINNING), 0);
    const struct nagare_message *m = NULL;
    while (nagare_consumer_poll(c, 200, &m) != 1) {
        cr_assert_lt(clock_mono_ms(), deadline, "the copy is not read back");
    }
    cr_assert_eq(m->value_len, 1);
    cr_assert_eq(memcmp(m->value, "1", 1), 0);
    for (size_t i = 0; i < 3; i++) {
        cr_assert_eq(replica_end(i, TOPIC ".dlq"), 1, "broker %zu: one copy", i + 1);
    }
    nagare_consumer_destroy(c);

    /* Redriven at the offsets coordinator, which leads TOPIC.dlq/0 and
     * TOPIC/0 too: the record is back in TOPIC, on every replica. */
    nagare_admin *a;
    cr_assert_eq(nagare_admin_new(C.bootstrap, 30000, &a), 0);
    int64_t n = 0;
    rc = nagare_dlq_redrive(a, TOPIC ".dlq", &n);
    cr_assert_eq(rc, 0, "redrive: %s", nagare_strerror(rc));
    cr_assert_eq(n, 1);
    nagare_admin_destroy(a);
    for (size_t i = 0; i < 3; i++) {
        while (replica_end(i, TOPIC) < 4) {
            cr_assert_lt(clock_mono_ms(), deadline, "broker %zu lacks the redriven record", i + 1);
            (void)poll(NULL, 0, 200);
        }
    }
    cs_stop_brokers(&C);
}

/* Whether the listing through broker i names group as kind. */
static bool lists(size_t i, const char *group, int kind)
{
    nagare_admin *a;
    int rc = nagare_admin_new(C.b[i].bootstrap, 30000, &a);
    cr_assert_eq(rc, 0, "admin to broker %zu: %s", i + 1, nagare_strerror(rc));
    const struct nagare_group_listing *groups;
    size_t n = 0;
    rc = nagare_groups_list(a, &groups, &n);
    cr_assert_eq(rc, 0, "list through broker %zu: %s", i + 1, nagare_strerror(rc));
    bool found = false;
    for (size_t k = 0; k < n; k++) {
        found = found || (strcmp(groups[k].group, group) == 0 && groups[k].kind == kind);
    }
    nagare_groups_free(a, groups);
    nagare_admin_destroy(a);
    return found;
}

/* With the share coordinator moved away from the first broker (a
 * reassignment of __share_state/0 putting another broker first): a listing
 * through any broker names both a consumer group (listed by the offsets
 * coordinator, still the first broker) and the share group (by the share
 * coordinator); and a dead letter's topic, placed on the first broker as
 * every partition 0 is, comes to the coordinator, which copies into it only
 * as its leader and so asks to lead it: the copy lands on every replica. */
Test(cluster_share, a_share_coordinator_apart_lists_and_leads_its_dlq, .fini = teardown,
     .timeout = 600)
{
    /* The moves below end with preferred-leader elections: every second
     * rather than every 30 s. */
    cluster_up_with("preferred_leader_check_ms=1000");
    produce(0, 3);
    nagare_share_consumer *sc = share_new(); /* makes __share_state */
    nagare_share_consumer_destroy(sc);
    nagare_admin *a;
    cr_assert_eq(nagare_admin_new(C.bootstrap, 30000, &a), 0);
    int rc = nagare_group_reset_offsets(a, "cg", TOPIC, NAGARE_RESET_TO_EARLIEST, 0, NULL, NULL);
    cr_assert_eq(rc, 0, "a consumer group's offsets: %s", nagare_strerror(rc));
    int g = leader_index(PROTO_OFFSETS_TOPIC);
    cr_assert_geq(g, 0);
    int k = (g + 1) % 3;
    int32_t replicas[3] = {k + 1, g + 1, (g + 2) % 3 + 1};
    int32_t partition = 0;
    rc = nagare_partitions_reassign(a, PROTO_SHARE_STATE_TOPIC, &partition, 1, replicas, 3, NULL);
    cr_assert_eq(rc, 0, "reassign: %s", nagare_strerror(rc));
    nagare_admin_destroy(a);
    int64_t deadline = clock_mono_ms() + READ_TIMEOUT_MS;
    while (leader_index(PROTO_SHARE_STATE_TOPIC) != k || leader_index(PROTO_OFFSETS_TOPIC) != g) {
        if (clock_mono_ms() >= deadline) {
            cs_print_logs(&C, "the share coordinator did not move");
            cr_assert_fail("share coordinator %d, wanted %d (offsets %d)",
                           leader_index(PROTO_SHARE_STATE_TOPIC) + 1, k + 1,
                           leader_index(PROTO_OFFSETS_TOPIC) + 1);
        }
        (void)poll(NULL, 0, 200);
    }

    /* The new coordinator hands out the records (it replays the state). */
    sc = share_new();
    static bool seen[RECORDS + MORE];
    poll_until(sc, seen, 0, 3, 0, "the records");
    for (size_t i = 0; i < 3; i++) {
        cr_assert(lists(i, "cg", NAGARE_GROUP_CONSUMER), "broker %zu: no consumer group", i + 1);
        cr_assert(lists(i, GROUP, NAGARE_GROUP_SHARE), "broker %zu: no share group", i + 1);
    }

    cr_assert_eq(nagare_share_ack_offset(sc, TOPIC, 0, 0, NAGARE_ACK_REJECT), 0);
    rc = nagare_share_commit(sc);
    cr_assert_eq(rc, 0, "commit: %s", nagare_strerror(rc));
    nagare_share_consumer_destroy(sc);
    dlq_copied_by(k, deadline);
    cs_stop_brokers(&C);
}

/* Waits until broker i's metadata no longer names topic. */
static void await_gone_at(size_t i, const char *topic)
{
    int64_t deadline = clock_mono_ms() + SETUP_TIMEOUT_MS;
    for (;;) {
        nagare_admin *a;
        int rc = nagare_admin_new(C.b[i].bootstrap, 5000, &a);
        bool gone = false;
        if (rc == 0) {
            const struct nagare_cluster_info *info;
            if (nagare_cluster_describe(a, &info) == 0) {
                gone = true;
                for (size_t k = 0; k < info->partition_count; k++) {
                    gone = gone && strcmp(info->partitions[k].topic, topic) != 0;
                }
                nagare_cluster_info_free(a, info);
            }
            nagare_admin_destroy(a);
        }
        if (gone) {
            return;
        }
        cr_assert_lt(clock_mono_ms(), deadline, "broker %zu still names %s", i + 1, topic);
        (void)poll(NULL, 0, 100);
    }
}

/* A topic deleted in the cluster is forgotten by the share coordinator
 * though it holds no replica of it: here the group consumed TOPIC (one
 * replica, at broker 1) while broker 1 coordinated, then the coordinator
 * moved to broker 2 (a reassignment of __share_state/0), which replayed
 * TOPIC's state; TOPIC is deleted and made again (three replicas): the
 * group starts it afresh, its first records handed out (with the old state
 * kept, it would wait past offsets the new topic has not reached). */
Test(cluster_share, a_topic_deleted_elsewhere_is_forgotten_by_the_coordinator, .fini = teardown,
     .timeout = 600)
{
    cs_need_cluster();
    cs_init(&C, 3);
    cs_set(&C, "default_replication_factor=3");
    cs_set(&C, "min_insync_replicas=2");
    cs_start(&C);
    topic_create(1); /* partition 0 goes to the first broker, as __share_state/0 will */
    produce(0, 5);
    nagare_share_consumer *sc = share_new(); /* makes __share_state */
    static bool seen[RECORDS + MORE];
    poll_until(sc, seen, 0, 5, 0, "the first topic's records");
    accept_range(sc, 0, 5);
    nagare_share_consumer_destroy(sc);
    cr_assert_eq(leader_index(PROTO_SHARE_STATE_TOPIC), 0);

    nagare_admin *a;
    cr_assert_eq(nagare_admin_new(C.bootstrap, 30000, &a), 0);
    int32_t replicas[2] = {2, 3}, partition = 0;
    int rc =
        nagare_partitions_reassign(a, PROTO_SHARE_STATE_TOPIC, &partition, 1, replicas, 2, NULL);
    cr_assert_eq(rc, 0, "reassign: %s", nagare_strerror(rc));
    int64_t deadline = clock_mono_ms() + SETUP_TIMEOUT_MS;
    while (leader_index(PROTO_SHARE_STATE_TOPIC) != 1) {
        cr_assert_lt(clock_mono_ms(), deadline, "the share coordinator did not move");
        (void)poll(NULL, 0, 100);
    }
    rc = nagare_topic_delete(a, TOPIC);
    cr_assert_eq(rc, 0, "delete: %s", nagare_strerror(rc));
    nagare_admin_destroy(a);
    await_gone_at(1, TOPIC);
    topic_create(-1);
    produce(0, 3);
    sc = share_new();
    memset(seen, 0, sizeof(seen));
    poll_until(sc, seen, 0, 3, 0, "the topic made again");
    nagare_share_consumer_destroy(sc);
    cs_stop_brokers(&C);
}

/* ---- DlqRedrive to partitions other brokers lead ---- */

#define SRC "src"
#define SRC_PARTS 3
#define SRC_RECORDS 6 /* per partition; the even ones are rejected */
#define SRC_REJECTED (SRC_RECORDS / 2)
#define VALUE_BYTES 16

/* Writes "p-j" for j in [0, SRC_RECORDS) to each partition p of SRC,
 * acks=all. */
static void src_produce(void)
{
    struct nagare_producer_config cfg;
    nagare_producer_config_default(&cfg);
    cfg.bootstrap = C.bootstrap;
    nagare_producer *p;
    cr_assert_eq(nagare_producer_new(&cfg, &p), 0);
    for (int32_t part = 0; part < SRC_PARTS; part++) {
        for (int j = 0; j < SRC_RECORDS; j++) {
            char v[VALUE_BYTES];
            int n = snprintf(v, sizeof(v), "%d-%d", part, j);
            struct nagare_record r = {
                .topic = SRC, .partition = part, .key_len = -1, .value = v, .value_len = n};
            cr_assert_eq(nagare_send(p, &r), 0);
        }
    }
    int rc = nagare_producer_flush(p, READ_TIMEOUT_MS);
    cr_assert_eq(rc, 0, "flush: %s", nagare_strerror(rc));
    nagare_producer_destroy(p);
}

/* SRC (SRC_PARTS partitions, factor 3: the share coordinator holds every
 * one; their leaders spread over the brokers) with its records written,
 * handed out to a share group, the even ones rejected into SRC.dlq; waits
 * until the copies are all there. */
static void src_dead_letters(void)
{
    struct nagare_topic_config cfg;
    nagare_topic_config_default(&cfg);
    cfg.partitions = SRC_PARTS;
    cs_topic_create(&C, C.bootstrap, SRC, &cfg, NULL, SETUP_TIMEOUT_MS);
    src_produce();
    struct nagare_share_consumer_config scfg;
    nagare_share_consumer_config_default(&scfg);
    scfg.bootstrap = C.bootstrap;
    scfg.close_ack = NAGARE_ACK_NONE;
    nagare_share_consumer *sc;
    cr_assert_eq(nagare_share_consumer_new(&scfg, &sc), 0);
    const char *topics[] = {SRC};
    int rc = nagare_share_subscribe(sc, GROUP, topics, 1);
    cr_assert_eq(rc, 0, "subscribe: %s", nagare_strerror(rc));
    static bool seen[SRC_PARTS][SRC_RECORDS];
    memset(seen, 0, sizeof(seen));
    int64_t deadline = clock_mono_ms() + READ_TIMEOUT_MS;
    for (int got = 0; got < SRC_PARTS * SRC_RECORDS;) {
        const struct nagare_message *m;
        rc = nagare_share_poll(sc, 200, &m);
        cr_assert_geq(rc, 0, "poll: %s", nagare_strerror(rc));
        if (rc == 1 && m->offset < SRC_RECORDS && !seen[m->partition][m->offset]) {
            seen[m->partition][m->offset] = true;
            got++;
            int type = m->offset % 2 == 0 ? NAGARE_ACK_REJECT : NAGARE_ACK_ACCEPT;
            cr_assert_eq(nagare_share_ack_offset(sc, SRC, m->partition, m->offset, type), 0);
        }
        if (clock_mono_ms() >= deadline) {
            cs_print_logs(&C, "records not handed out");
            cr_assert_fail("%d of %d records handed out", got, SRC_PARTS * SRC_RECORDS);
        }
    }
    rc = nagare_share_commit(sc);
    cr_assert_eq(rc, 0, "commit: %s", nagare_strerror(rc));
    nagare_share_consumer_destroy(sc);
    nagare_admin *a;
    cr_assert_eq(nagare_admin_new(C.bootstrap, 30000, &a), 0);
    for (int64_t end = 0; end < SRC_PARTS * SRC_REJECTED;) {
        if (nagare_offset_lookup(a, SRC ".dlq", 0, NAGARE_OFFSET_END, &end) != 0) {
            end = 0;
        }
        if (clock_mono_ms() >= deadline) {
            cs_print_logs(&C, "dead letters not copied");
            cr_assert_fail(SRC ".dlq holds %lld of %d copies", (long long)end,
                           SRC_PARTS * SRC_REJECTED);
        }
        (void)poll(NULL, 0, end < SRC_PARTS * SRC_REJECTED ? 200 : 0);
    }
    nagare_admin_destroy(a);
}

/* How many times value v is among the records of SRC/part from offset
 * SRC_RECORDS to its end (asserting each there is a rejected one of the
 * partition), in counts[j] for value "part-j"; returns the end. */
static int64_t src_redriven(int32_t part, int counts[SRC_RECORDS])
{
    memset(counts, 0, SRC_RECORDS * sizeof(counts[0]));
    nagare_admin *a;
    cr_assert_eq(nagare_admin_new(C.bootstrap, 30000, &a), 0);
    int64_t end = 0;
    int rc = nagare_offset_lookup(a, SRC, part, NAGARE_OFFSET_END, &end);
    cr_assert_eq(rc, 0, "end of %s/%d: %s", SRC, part, nagare_strerror(rc));
    nagare_admin_destroy(a);
    struct nagare_consumer_config cfg;
    nagare_consumer_config_default(&cfg);
    cfg.bootstrap = C.bootstrap;
    nagare_consumer *c;
    cr_assert_eq(nagare_consumer_new(&cfg, &c), 0);
    cr_assert_eq(nagare_consumer_assign(c, SRC, part, SRC_RECORDS), 0);
    int64_t deadline = clock_mono_ms() + READ_TIMEOUT_MS;
    for (int64_t next = SRC_RECORDS; next < end;) {
        const struct nagare_message *m = NULL;
        rc = nagare_consumer_poll(c, 200, &m);
        cr_assert_geq(rc, 0, "poll %s/%d: %s", SRC, part, nagare_strerror(rc));
        cr_assert_lt(clock_mono_ms(), deadline, "%s/%d: read to %lld of %lld", SRC, part,
                     (long long)next, (long long)end);
        if (rc != 1 || m->offset < next) {
            continue;
        }
        next = m->offset + 1;
        char v[VALUE_BYTES] = {0};
        cr_assert_lt(m->value_len, (ssize_t)sizeof(v));
        memcpy(v, m->value, (size_t)m->value_len);
        int p = -1, j = -1;
        cr_assert_eq(sscanf(v, "%d-%d", &p, &j), 2, "%s/%d at %lld: %s", SRC, part,
                     (long long)m->offset, v);
        cr_assert(p == part && j >= 0 && j < SRC_RECORDS && j % 2 == 0,
                  "%s/%d at %lld: %s was not rejected there", SRC, part, (long long)m->offset, v);
        counts[j]++;
    }
    nagare_consumer_destroy(c);
    return end;
}

/* Redrives SRC.dlq in steps of step_records until none remain (each
 * request given timeout_ms); the records republished. before_step (when
 * not NULL) runs before each step but the first. */
static int64_t redrive_steps(int32_t step_records, void (*before_step)(void), uint32_t timeout_ms)
{
    nagare_admin *a;
    cr_assert_eq(nagare_admin_new(C.bootstrap, timeout_ms, &a), 0);
    int64_t records = 0;
    int steps = 0;
    for (struct nagare_redrive_step st = {.remaining = 1}; st.remaining > 0; steps++) {
        if (steps > 0 && before_step != NULL) {
            before_step();
        }
        int rc = nagare_dlq_redrive_step(a, SRC ".dlq", step_records, &st);
        if (rc != 0) {
            cs_print_logs(&C, "redrive step failed");
        }
        cr_assert_eq(rc, 0, "step %d: %s", steps, nagare_strerror(rc));
        records += st.records;
        cr_assert_leq(steps, SRC_PARTS * SRC_REJECTED, "steps do not end");
    }
    nagare_admin_destroy(a);
    return records;
}

/* How many partitions of SRC a broker other than g leads. */
static int src_led_elsewhere(int g)
{
    nagare_admin *a;
    cr_assert_eq(nagare_admin_new(C.bootstrap, 30000, &a), 0);
    const struct nagare_cluster_info *info;
    cr_assert_eq(nagare_cluster_describe(a, &info), 0);
    int elsewhere = 0;
    for (size_t i = 0; i < info->partition_count; i++) {
        const struct nagare_partition_replicas *p = &info->partitions[i];
        elsewhere += strcmp(p->topic, SRC) == 0 && p->leader != g + 1;
    }
    nagare_cluster_info_free(a, info);
    nagare_admin_destroy(a);
    return elsewhere;
}

/* The offsets coordinator (where redrives run) leads SRC.dlq/0, as it
 * leads every partition 0 (controller_place()), and partitions 1 and 2 of
 * SRC are led by the two other brokers: a redrive republishes most
 * records to partitions led elsewhere, forwarded to their leaders. Each
 * rejected record is back exactly once in its partition, read back
 * through its leader; the marks are past them: a second redrive
 * republishes nothing. */
Test(cluster_share, a_redrive_republishes_to_partitions_other_brokers_lead, .fini = teardown,
     .timeout = 600)
{
    cluster_up();
    src_dead_letters();
    int64_t records = redrive_steps(2, NULL, 30000);
    cr_assert_eq(records, SRC_PARTS * SRC_REJECTED);
    int g = leader_index(PROTO_OFFSETS_TOPIC);
    cr_assert_geq(g, 0);
    for (int32_t part = 0; part < SRC_PARTS; part++) {
        int counts[SRC_RECORDS];
        int64_t end = src_redriven(part, counts);
        cr_assert_eq(end, SRC_RECORDS + SRC_REJECTED, "%s/%d ends at %lld", SRC, part,
                     (long long)end);
        for (int j = 0; j < SRC_RECORDS; j += 2) {
            cr_assert_eq(counts[j], 1, "%s/%d: %d-%d republished %d times", SRC, part, part, j,
                         counts[j]);
        }
    }
    cr_assert_gt(src_led_elsewhere(g), 0,
                 "every partition of " SRC " is led by the redriving broker");
    nagare_admin *a;
    cr_assert_eq(nagare_admin_new(C.bootstrap, 30000, &a), 0);
    int64_t n = -1;
    int rc = nagare_dlq_redrive(a, SRC ".dlq", &n);
    cr_assert_eq(rc, 0, "second redrive: %s", nagare_strerror(rc));
    cr_assert_eq(n, 0, "a second redrive republished %lld", (long long)n);
    nagare_admin_destroy(a);
    cs_stop_brokers(&C);
}

static int killed = -1; /* the broker index killed between steps */

/* The broker index leading SRC/part now (-1: none known), asked through
 * broker `through`. */
static int src_leader(int32_t part, size_t through)
{
    return cs_leader_index(C.b[through].bootstrap, SRC, part);
}

/* The broker index of the offsets coordinator, where redrives run; makes
 * __offsets first (a group api) when there is none yet. */
static int offsets_coordinator(void)
{
    nagare_admin *a;
    cr_assert_eq(nagare_admin_new(C.bootstrap, 30000, &a), 0);
    int rc = nagare_group_reset_offsets(a, "cg", SRC, NAGARE_RESET_TO_EARLIEST, 0, NULL, NULL);
    cr_assert_eq(rc, 0, "a consumer group's offsets: %s", nagare_strerror(rc));
    nagare_admin_destroy(a);
    int64_t deadline = clock_mono_ms() + SETUP_TIMEOUT_MS;
    int g;
    while ((g = leader_index(PROTO_OFFSETS_TOPIC)) < 0) {
        cr_assert_lt(clock_mono_ms(), deadline, "no leader of " PROTO_OFFSETS_TOPIC "/0");
        (void)poll(NULL, 0, 200);
    }
    return g;
}

/* Before the second step: kill -9 the leader of a partition of SRC that
 * the redriving broker (the offsets coordinator) does not lead. The step
 * goes at once, while the cluster still names the dead broker leader. */
static void kill_a_target_leader(void)
{
    if (killed >= 0) {
        return;
    }
    int g = leader_index(PROTO_OFFSETS_TOPIC);
    cr_assert_geq(g, 0);
    for (int32_t p = 0; p < SRC_PARTS && killed < 0; p++) {
        int l = src_leader(p, (size_t)g);
        killed = l >= 0 && l != g ? l : -1;
    }
    cr_assert_geq(killed, 0, "every partition of " SRC " is led by the redriving broker");
    cs_broker_kill(&C, (size_t)killed);
}

/* A leader of a partition redriven to is killed just before a step: the
 * step's records for it are sent again, to its successor once the
 * redriving broker's view names one (redrive_retry_ms: here far past any
 * election, so only a hang fails), and nothing a step answered is lost:
 * every rejected record is back in its partition, at least once (a batch
 * whose answer was lost with the leader is written again: at-least-once),
 * and no other record came. */
Test(cluster_share, a_redrive_step_after_a_target_leader_died_goes_to_its_successor,
     .fini = teardown, .timeout = 600)
{
    cluster_up_with("redrive_retry_ms=120000");
    src_dead_letters();
    killed = -1;
    int64_t records = redrive_steps(2, kill_a_target_leader, 300000);
    cr_assert_geq(killed, 0);
    cr_assert_geq(records, SRC_PARTS * SRC_REJECTED);
    for (int32_t part = 0; part < SRC_PARTS; part++) {
        int counts[SRC_RECORDS];
        int64_t end = src_redriven(part, counts);
        cr_assert_geq(end, SRC_RECORDS + SRC_REJECTED, "%s/%d ends at %lld", SRC, part,
                      (long long)end);
        for (int j = 0; j < SRC_RECORDS; j += 2) {
            cr_assert_geq(counts[j], 1, "%s/%d: %d-%d lost", SRC, part, part, j);
        }
    }
    nagare_admin *a;
    cr_assert_eq(nagare_admin_new(C.bootstrap, 30000, &a), 0);
    int64_t n = -1;
    int rc = nagare_dlq_redrive(a, SRC ".dlq", &n);
    cr_assert_eq(rc, 0, "second redrive: %s", nagare_strerror(rc));
    cr_assert_eq(n, 0, "a second redrive republished %lld", (long long)n);
    nagare_admin_destroy(a);
    cs_stop_brokers(&C);
}

/* The redriving broker cannot reach the leader of a partition redriven to
 * (its packets to it dropped; the leader keeps its lease, so the cluster
 * names no other) and redrive_retry_ms is 0: the step fails with that
 * error and the mark stays before the chunk, so the next step, once the
 * link is back, reads every dead letter again and republishes them; the
 * partition cut off holds each of its records once, the others at least
 * once (what the failed step wrote there goes again). */
Test(cluster_share, a_redrive_step_fails_and_keeps_its_mark_when_a_leader_stays_out_of_reach,
     .fini = teardown, .timeout = 600)
{
    cs_need_nft();
    cluster_up_with("redrive_retry_ms=0");
    src_dead_letters();
    int g = offsets_coordinator();
    int32_t cut = -1;
    int l = -1;
    for (int32_t p = 0; p < SRC_PARTS && cut < 0; p++) {
        l = src_leader(p, (size_t)g);
        cut = l >= 0 && l != g ? p : -1;
    }
    cr_assert_geq(cut, 0, "every partition of " SRC " is led by the redriving broker");
    cs_drop_oneway(&C, (size_t)g, (size_t)l);
    nagare_admin *a;
    cr_assert_eq(nagare_admin_new(C.bootstrap, 60000, &a), 0);
    struct nagare_redrive_step st = {0};
    int rc = nagare_dlq_redrive_step(a, SRC ".dlq", 1000, &st);
    cr_assert_neq(rc, 0, "the step republished to a leader it cannot reach");
    cr_log_info("the step failed: %s", nagare_strerror(rc));
    cs_heal(&C);
    rc = nagare_dlq_redrive_step(a, SRC ".dlq", 1000, &st);
    if (rc != 0) {
        cs_print_logs(&C, "redrive after the heal");
    }
    cr_assert_eq(rc, 0, "after the heal: %s", nagare_strerror(rc));
    cr_assert_eq(st.read, SRC_PARTS * SRC_REJECTED, "the mark moved past the failed step");
    cr_assert_eq(st.records, SRC_PARTS * SRC_REJECTED);
    cr_assert_eq(st.remaining, 0);
    nagare_admin_destroy(a);
    for (int32_t part = 0; part < SRC_PARTS; part++) {
        int counts[SRC_RECORDS];
        (void)src_redriven(part, counts);
        for (int j = 0; j < SRC_RECORDS; j += 2) {
            cr_assert_geq(counts[j], 1, "%s/%d: %d-%d lost", SRC, part, part, j);
            cr_assert(part != cut || counts[j] == 1, "%s/%d: %d-%d written %d times", SRC, part,
                      part, j, counts[j]);
        }
    }
    cs_stop_brokers(&C);
}

/* ---- the brokers' principal: cluster_action, no topic ACLs ---- */

/* Whether a client (ANONYMOUS from 127.0.0.1) may list the ACLs at broker
 * i: the broker has the cluster's ACLs of the test's grants. */
static bool acls_listed_at(size_t i)
{
    nagare_admin *a;
    if (nagare_admin_new(C.b[i].bootstrap, 5000, &a) != 0) {
        return false;
    }
    struct nagare_acl any = {.resource_type = NAGARE_ACL_RESOURCE_ANY,
                             .pattern_type = NAGARE_ACL_PATTERN_ANY,
                             .operation = NAGARE_ACL_OP_ANY,
                             .permission = NAGARE_ACL_PERMISSION_ANY};
    const struct nagare_acl *got = NULL;
    size_t n = 0;
    bool ok = nagare_acls_describe(a, &any, &got, &n) == 0;
    if (ok) {
        nagare_acls_free(a, got);
    }
    nagare_admin_destroy(a);
    return ok;
}

/* With the authorizer on, the test's clients (ANONYMOUS from 127.0.0.1)
 * may do anything, and the brokers (ANONYMOUS from their own addresses)
 * hold only cluster_action on the cluster: replication, and the Produce a
 * redrive forwards to a leader elsewhere, which needs no WRITE on the
 * topic. The redrive republishes every record, each once. */
Test(cluster_share, a_redrive_forwards_with_only_cluster_action_for_the_brokers, .fini = teardown,
     .timeout = 600)
{
    cs_need_nft(); /* the brokers' own source addresses (cs_net_start()) */
    cluster_up();
    nagare_admin *a;
    cr_assert_eq(nagare_admin_new(C.bootstrap, 30000, &a), 0);
    struct nagare_acl grants[3 + CS_BROKERS_MAX];
    size_t n = 0;
    const int client_on[3] = {NAGARE_ACL_RESOURCE_CLUSTER, NAGARE_ACL_RESOURCE_TOPIC,
                              NAGARE_ACL_RESOURCE_GROUP};
    for (size_t i = 0; i < 3; i++) {
        grants[n++] = (struct nagare_acl){
            .resource_type = client_on[i],
            .pattern_type = NAGARE_ACL_PATTERN_LITERAL,
            .name = client_on[i] == NAGARE_ACL_RESOURCE_CLUSTER ? NAGARE_ACL_CLUSTER_NAME : "*",
            .principal = "User:ANONYMOUS",
            .host = "127.0.0.1",
            .operation = NAGARE_ACL_OP_ALL,
            .permission = NAGARE_ACL_PERMISSION_ALLOW};
    }
    for (size_t i = 0; i < C.broker_count; i++) {
        grants[n++] = (struct nagare_acl){.resource_type = NAGARE_ACL_RESOURCE_CLUSTER,
                                          .pattern_type = NAGARE_ACL_PATTERN_LITERAL,
                                          .name = NAGARE_ACL_CLUSTER_NAME,
                                          .principal = "User:ANONYMOUS",
                                          .host = C.b[i].host,
                                          .operation = NAGARE_ACL_OP_CLUSTER_ACTION,
                                          .permission = NAGARE_ACL_PERMISSION_ALLOW};
    }
    int rc = nagare_acls_create(a, grants, n);
    cr_assert_eq(rc, 0, "ACLs: %s", nagare_strerror(rc));
    nagare_admin_destroy(a);
    /* The authorizer is a start-time setting: every broker again, with it. */
    cs_stop_brokers(&C);
    cs_set(&C, "authorizer=true");
    for (size_t i = 0; i < C.broker_count; i++) {
        cs_broker_start(&C, i);
    }
    int64_t deadline = clock_mono_ms() + SETUP_TIMEOUT_MS;
    for (size_t i = 0; i < C.broker_count; i++) {
        while (!acls_listed_at(i)) {
            if (clock_mono_ms() >= deadline) {
                cs_print_logs(&C, "the ACLs did not reach every broker");
                cr_assert_fail("broker %zu refuses the test's client", i + 1);
            }
            (void)poll(NULL, 0, 200);
        }
    }
    src_dead_letters();
    int64_t records = redrive_steps(2, NULL, 30000);
    cr_assert_eq(records, SRC_PARTS * SRC_REJECTED);
    cr_assert_gt(src_led_elsewhere(leader_index(PROTO_OFFSETS_TOPIC)), 0,
                 "every partition of " SRC " is led by the redriving broker");
    for (int32_t part = 0; part < SRC_PARTS; part++) {
        int counts[SRC_RECORDS];
        int64_t end = src_redriven(part, counts);
        cr_assert_eq(end, SRC_RECORDS + SRC_REJECTED, "%s/%d ends at %lld", SRC, part,
                     (long long)end);
        for (int j = 0; j < SRC_RECORDS; j += 2) {
            cr_assert_eq(counts[j], 1, "%s/%d: %d-%d republished %d times", SRC, part, part, j,
                         counts[j]);
        }
    }
    cs_stop_brokers(&C);
}

/* A dead letter naming one of the brokers' own topics (its headers are
 * whatever was written to the dead-letter topic) is skipped, never
 * republished there: here __share_state/0, which the redriving broker
 * leads too. */
Test(cluster_share, a_redrive_never_writes_to_the_brokers_own_topics, .fini = teardown,
     .timeout = 300)
{
    cluster_up();
    nagare_share_consumer *sc = share_new(); /* makes __share_state */
    nagare_share_consumer_destroy(sc);
    struct nagare_topic_config cfg;
    nagare_topic_config_default(&cfg);
    cfg.partitions = 1;
    cs_topic_create(&C, C.bootstrap, TOPIC ".dlq", &cfg, NULL, SETUP_TIMEOUT_MS);
    struct nagare_producer_config pc;
    nagare_producer_config_default(&pc);
    pc.bootstrap = C.bootstrap;
    nagare_producer *p;
    cr_assert_eq(nagare_producer_new(&pc, &p), 0);
    const struct nagare_header hs[] = {
        {"nagare.dlq.topic", 16, PROTO_SHARE_STATE_TOPIC, sizeof(PROTO_SHARE_STATE_TOPIC) - 1},
        {"nagare.dlq.partition", 20, "0", 1},
    };
    struct nagare_record r = {.topic = TOPIC ".dlq",
                              .partition = 0,
                              .key_len = -1,
                              .value = "x",
                              .value_len = 1,
                              .headers = hs,
                              .header_count = 2};
    cr_assert_eq(nagare_send(p, &r), 0);
    cr_assert_eq(nagare_producer_flush(p, READ_TIMEOUT_MS), 0);
    nagare_producer_destroy(p);
    int k = leader_index(PROTO_SHARE_STATE_TOPIC);
    cr_assert_geq(k, 0);
    int64_t before = replica_end((size_t)k, PROTO_SHARE_STATE_TOPIC);
    nagare_admin *a;
    cr_assert_eq(nagare_admin_new(C.bootstrap, 30000, &a), 0);
    int64_t n = -1;
    int rc = nagare_dlq_redrive(a, TOPIC ".dlq", &n);
    cr_assert_eq(rc, 0, "redrive: %s", nagare_strerror(rc));
    cr_assert_eq(n, 0, "nothing republished");
    nagare_admin_destroy(a);
    cr_assert_eq(replica_end((size_t)k, PROTO_SHARE_STATE_TOPIC), before,
                 "__share_state untouched");
    cs_stop_brokers(&C);
}
