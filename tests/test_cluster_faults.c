/*
 * Fault runs (issue 13, docs/reliability.md): three brokers and three etcd
 * members on loopback (tests/cluster_support.h), a topic of 3 partitions
 * replicated 3 times, idempotent acks=all producers writing unique values
 * throughout (tests/checker.h), and faults one after another: kill -9 of a
 * broker; SIGSTOP of a broker (each leads some partition) for 5-15 s; a
 * broker cut from everything, the brokers split in halves, one-way loss
 * between two brokers (nftables); kill -9 of the etcd leader; a power cut
 * of a broker (nagared_sim: what it had not synced is lost). After
 * healing, every replica is read back from its data directory and through
 * a consumer, and the checker must find nothing lost, no offset with two
 * values, nothing never sent, each producer's order kept and the replicas
 * identical below the high watermark. And the planned loss: with
 * min_insync_replicas = 1 and unclean election on, a sequence that elects
 * a replica which never had acknowledged records must make the checker
 * report them lost.
 *
 * Each run is seeded (NAGARE_FAULT_SEED, logged; default: the time) and
 * bounded (NAGARE_FAULT_SECONDS of faults, default 15); the long runs of
 * docs/reliability.md use tests/cluster_faults_long.sh. The runs skip,
 * saying why, when nagared lacks the cluster settings they use
 * (cs_need_cluster(), cs_need_keys()).
 */
#include <assert.h>
#include <criterion/criterion.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "client/nagare.h"
#include "tests/broker_support.h"
#include "tests/checker.h"
#include "tests/cluster_support.h"
#include "tests/sys_support.h"

#define TOPIC "faults"
#define PARTITIONS 3
#define BROKERS 3
#define PRODUCERS 3
#define OUTSTANDING_MAX 32 /* records in flight per producer */
#define FAULT_SECONDS_DEFAULT 15
/* Between two faults the cluster gets this long to settle. */
#define QUIET_MS_MIN 2000
#define QUIET_MS_MAX 5000
/* A fault lasts this long (the 5-15 s for a pause). */
#define FAULT_MS_MIN 5000
#define FAULT_MS_MAX 15000
/* A partition this long without an acknowledged write (not a failure:
 * the figure is reported) has the brokers' logs printed, to see why. */
#define STALL_LOGGED_MS 30000
/* Bounds that only turn a hang into a failure. */
#define SETUP_TIMEOUT_MS 60000
#define RECOVERY_TIMEOUT_MS 120000
#define READ_TIMEOUT_MS 120000
#define CATCH_UP_TIMEOUT_MS 120000
/* Acknowledged writes that prove the cluster takes writes (at the start,
 * and again once everything is healed). */
#define ACKS_PROOF 200
/* The paused-leader run (paused_leader_left_for_its_successor): the
 * clients' request timeout, far above the wait for the move; the wait,
 * a bound that only turns a hang into a failure (the lease, about 6 s,
 * plus the producers' stall_ms, 2 s, on a busy machine); the writes
 * partition 0 must take meanwhile: more than the producers can have
 * outstanding, so they cannot all be answers sent before the pause. */
#define STALL_REQUEST_TIMEOUT_MS 120000
#define STALL_MOVE_TIMEOUT_MS 60000
#define STALL_ACKS 200
static_assert(STALL_ACKS > PRODUCERS * OUTSTANDING_MAX, "more than can be outstanding");
static_assert(STALL_MOVE_TIMEOUT_MS < STALL_REQUEST_TIMEOUT_MS, "only a move can pass");
/* The broker settings the runs use (broker/config.c): every topic gets
 * BROKERS replicas, and acks=all needs this many in sync. */
#define KEY_REPLICATION "default_replication_factor"
#define KEY_MIN_INSYNC "min_insync_replicas"
#define KEY_REPLICA_LAG "replica_lag_ms"
/* The paused-follower run's replica_lag_ms: far above its wait for the
 * writes, so that only the follower's lease can take it out of the
 * in-sync set in time. */
#define FOLLOWER_LAG_MS "600000"

struct run {
    struct cluster c;
    struct checker k;
    struct chk_producers p;
    bool producing;
    uint64_t seed;
    uint64_t rng;
    int64_t faults_end_ms;       /* no fault starts past it */
    uint32_t request_timeout_ms; /* the producers'; 0: the checker's default */
    const char *replica_lag_ms;  /* the brokers'; NULL: their default */
};

static struct run R;

static void setup(void) { memset(&R, 0, sizeof(R)); }

static void teardown(void)
{
    if (R.producing) {
        (void)chk_producers_stop(&R.p);
    }
    cs_fini(&R.c);
    chk_fini(&R.k);
}

TestSuite(cluster_faults, .init = setup, .fini = teardown, .timeout = 1800);

static uint64_t rnd(struct run *r)
{
    r->rng ^= r->rng << 13;
    r->rng ^= r->rng >> 7;
    r->rng ^= r->rng << 17;
    return r->rng;
}

static int64_t between(struct run *r, int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rnd(r) % (uint64_t)(hi - lo + 1));
}

static uint64_t env_u64(const char *name, uint64_t fallback)
{
    const char *v = getenv(name);
    return v != NULL && *v ? strtoull(v, NULL, 10) : fallback;
}

/* Creates the topic, through any broker, once a controller can place it;
 * unclean: with unclean leader election allowed. */
static void create_topic(struct run *r, bool unclean)
{
    struct nagare_topic_config cfg;
    nagare_topic_config_default(&cfg);
    cfg.partitions = PARTITIONS;
    cfg.unclean_leader_election = unclean;
    cs_topic_create(&r->c, r->c.bootstrap, TOPIC, &cfg, NULL, SETUP_TIMEOUT_MS);
}

/* Waits until `more` acknowledgements came after this call. */
static void await_acks(struct run *r, uint64_t more, const char *why)
{
    uint64_t want = chk_acked_count(&r->k) + more;
    int64_t deadline = clock_mono_ms() + RECOVERY_TIMEOUT_MS;
    while (chk_acked_count(&r->k) < want) {
        if (clock_mono_ms() >= deadline) {
            cs_print_logs(&r->c, why);
            cr_assert_fail("%s: fewer than %" PRIu64 " writes acknowledged in %d ms (seed %" PRIu64
                           ")",
                           why, more, RECOVERY_TIMEOUT_MS, r->seed);
        }
        sleep_ms(50);
    }
}

static void start_producers(struct run *r)
{
    struct chk_producers_config cfg;
    chk_producers_config_default(&cfg);
    cfg.bootstrap = r->c.bootstrap; /* every broker, tried in turn */
    cfg.producers = PRODUCERS;
    cfg.outstanding_max = OUTSTANDING_MAX;
    if (r->request_timeout_ms > 0) {
        cfg.request_timeout_ms = r->request_timeout_ms;
        cfg.delivery_timeout_ms = 2 * r->request_timeout_ms;
    }
    int rc = chk_producers_start(&r->p, &r->k, &cfg);
    r->producing = true;
    cr_assert_eq(rc, 0, "producers: %s", err_str(rc));
}

/* A cluster with the topic, producers writing, the first writes in. */
static void run_start(struct run *r, bool min_insync_one_unclean, bool power_sim)
{
    cs_need_cluster();
    const char *const keys[] = {KEY_REPLICATION, KEY_MIN_INSYNC, KEY_REPLICA_LAG};
    cs_need_keys(keys, ARRAY_LEN(keys));
    r->seed = env_u64("NAGARE_FAULT_SEED", (uint64_t)time(NULL));
    r->rng = r->seed * 2654435761u + 1;
    uint64_t seconds = env_u64("NAGARE_FAULT_SECONDS", FAULT_SECONDS_DEFAULT);
    fprintf(stderr, "fault run: seed %" PRIu64 ", %" PRIu64 " s of faults\n", r->seed, seconds);
    cs_init(&r->c, BROKERS);
    r->c.power_sim = power_sim;
    char seed[32];
    snprintf(seed, sizeof(seed), "%" PRIu64, r->seed);
    cr_assert_eq(setenv("NAGARE_POWER_SIM_SEED", seed, 1), 0); /* before any thread */
    cs_set(&r->c, KEY_REPLICATION "=3");
    cs_set(&r->c, min_insync_one_unclean ? KEY_MIN_INSYNC "=1" : KEY_MIN_INSYNC "=2");
    if (r->replica_lag_ms != NULL) {
        char kv[64];
        snprintf(kv, sizeof(kv), KEY_REPLICA_LAG "=%s", r->replica_lag_ms);
        cs_set(&r->c, kv);
    }
    cs_start(&r->c);
    create_topic(r, min_insync_one_unclean);
    chk_init(&r->k, TOPIC, PARTITIONS);
    start_producers(r);
    await_acks(r, ACKS_PROOF, "no writes at the start");
    r->faults_end_ms = clock_mono_ms() + (int64_t)seconds * 1000;
}

/* The index of the broker leading partition, once one does. */
static size_t leader_of(struct run *r, int32_t partition)
{
    int64_t deadline = clock_mono_ms() + SETUP_TIMEOUT_MS;
    for (;;) {
        int leader = cs_leader_index(r->c.bootstrap, TOPIC, partition);
        if (leader >= 0 && leader < BROKERS) {
            return (size_t)leader;
        }
        cr_assert_lt(clock_mono_ms(), deadline, "partition %d has no leader", partition);
        sleep_ms(250);
    }
}

/* ---- faults ---- */

/* Begins fault `name` aimed at broker i (for a split, the one on its own;
 * for one-way loss, the sender), and logs it with the time in the brokers'
 * log format, to read beside their logs. */
static void fault_begin(struct run *r, const char *name, size_t i)
{
    chk_fault_begin(&r->k, name);
    log_info("fault: %s, broker %d", name, r->c.b[i].id);
}

static void fault_kill9(struct run *r)
{
    size_t i = rnd(r) % BROKERS;
    fault_begin(r, "kill -9 of a broker", i);
    cs_broker_kill(&r->c, i);
    sleep_ms(between(r, 1000, 5000));
    cs_broker_start(&r->c, i);
    chk_fault_end(&r->k);
}

/* Every broker leads some partition (leaders spread round-robin), so any
 * broker paused is a leader paused. */
static void fault_pause(struct run *r)
{
    size_t i = rnd(r) % BROKERS;
    fault_begin(r, "SIGSTOP of a leader", i);
    cs_broker_pause(&r->c, i);
    sleep_ms(between(r, FAULT_MS_MIN, FAULT_MS_MAX));
    cs_broker_resume(&r->c, i);
    chk_fault_end(&r->k);
}

static void fault_isolate(struct run *r)
{
    size_t i = rnd(r) % BROKERS;
    fault_begin(r, "a leader isolated", i);
    cs_isolate(&r->c, i);
    sleep_ms(between(r, FAULT_MS_MIN, FAULT_MS_MAX));
    cs_heal(&r->c);
    chk_fault_end(&r->k);
}

static void fault_halves(struct run *r)
{
    size_t alone = rnd(r) % BROKERS;
    fault_begin(r, "brokers split in halves", alone);
    cs_split(&r->c, 1u << alone);
    sleep_ms(between(r, FAULT_MS_MIN, FAULT_MS_MAX));
    cs_heal(&r->c);
    chk_fault_end(&r->k);
}

static void fault_oneway(struct run *r)
{
    size_t from = rnd(r) % BROKERS;
    size_t to = (from + 1 + rnd(r) % (BROKERS - 1)) % BROKERS;
    fault_begin(r, "one-way loss", from);
    cs_drop_oneway(&r->c, from, to);
    sleep_ms(between(r, FAULT_MS_MIN, FAULT_MS_MAX));
    cs_heal(&r->c);
    chk_fault_end(&r->k);
}

static void fault_etcd_leader(struct run *r)
{
    chk_fault_begin(&r->k, "kill -9 of the etcd leader");
    size_t i = cs_etcd_kill_leader(&r->c);
    log_info("fault: kill -9 of the etcd leader, member %zu", i);
    sleep_ms(between(r, 2000, 8000));
    ets_restart(&r->c.etcd, i);
    chk_fault_end(&r->k);
}

/* The power-loss simulation's cut (nagared_sim): the broker loses what it
 * had not synced, then restarts on what is left. */
static void fault_power_cut(struct run *r)
{
    size_t i = rnd(r) % BROKERS;
    fault_begin(r, "power cut of a broker", i);
    cs_broker_power_cut(&r->c, i);
    sleep_ms(between(r, 1000, 5000));
    cs_broker_start(&r->c, i);
    chk_fault_end(&r->k);
}

typedef void fault_fn(struct run *r);

/* Faults of these kinds, one after another with quiet between, until the
 * run's time is up (at least one). */
static void run_faults(struct run *r, fault_fn *const *kinds, size_t kind_count)
{
    do {
        sleep_ms(between(r, QUIET_MS_MIN, QUIET_MS_MAX));
        kinds[rnd(r) % kind_count](r);
    } while (clock_mono_ms() < r->faults_end_ms);
}

/* ---- the end of a run ---- */

/* Everything healed and running again. */
static void heal_all(struct run *r)
{
    if (r->c.table_made) {
        cs_heal(&r->c);
    }
    for (size_t i = 0; i < r->c.etcd.count; i++) {
        if (r->c.etcd.m[i].pid == 0) {
            ets_restart(&r->c.etcd, i);
        }
    }
    for (size_t i = 0; i < BROKERS; i++) {
        cs_broker_resume(&r->c, i);
        if (!cs_broker_alive(&r->c, i)) {
            cs_broker_start(&r->c, i);
        }
    }
}

/* A consumer's read of everything, through any broker, tried again while
 * the cluster settles (a leader not elected yet). One source for every
 * try: what a failed try read counts too (an offset read twice must show
 * one value), and the try that reaches the end makes the read whole.
 * Returns 0, or the last try's error once READ_TIMEOUT_MS passed. */
static int read_consumer(struct run *r)
{
    struct chk_source *s = chk_source_add(&r->k, "consumer", CHK_CONSUMER);
    cr_assert_not_null(s);
    int64_t deadline = clock_mono_ms() + READ_TIMEOUT_MS;
    for (;;) {
        int rc = chk_read_consumer(&r->k, s, r->c.bootstrap, READ_TIMEOUT_MS);
        if (rc == 0 || clock_mono_ms() >= deadline) {
            return rc;
        }
        fprintf(stderr, "consumer read: %s\n", nagare_strerror(rc));
        sleep_ms(500);
    }
}

/* Waits until every replica's log reaches the high watermark the consumer
 * read to: the followers caught up, so their logs can be compared. */
static void await_replicas(struct run *r)
{
    int64_t deadline = clock_mono_ms() + CATCH_UP_TIMEOUT_MS;
    for (size_t i = 0; i < BROKERS; i++) {
        for (int32_t p = 0; p < PARTITIONS; p++) {
            char dir[CS_PATH_BYTES + 64];
            snprintf(dir, sizeof(dir), "%s/topics/" TOPIC "/%d", r->c.b[i].data_dir, p);
            int64_t end = 0;
            while (chk_replica_end(dir, &end) != 0 || end < r->k.hw[p]) {
                if (clock_mono_ms() >= deadline) {
                    cs_print_logs(&r->c, "a follower did not catch up");
                    r->c.keep_root = true;
                    cr_assert_fail("broker %zu, partition %d: log end %" PRId64
                                   " below the high watermark %" PRId64 " (seed %" PRIu64 ")",
                                   i + 1, p, end, r->k.hw[p], r->seed);
                }
                sleep_ms(100);
            }
        }
    }
}

/* Heals, proves the cluster takes writes again, stops the producers, reads
 * everything back (consumer, then each stopped broker's logs), judges. */
static void run_finish(struct run *r, struct chk_result *out)
{
    heal_all(r);
    await_acks(r, ACKS_PROOF, "no writes after healing");
    int rc = chk_producers_stop(&r->p);
    r->producing = false;
    if (rc != 0) {
        cs_print_logs(&r->c, "a producer stopped");
        cr_assert_fail("a producer stopped: %s (seed %" PRIu64 ")", nagare_strerror(rc), r->seed);
    }
    chk_run_end(&r->k);
    /* Without a whole read the replicas are still read and judged, for
     * what they say of the failure, and the data is kept. */
    int read_rc = read_consumer(r);
    if (read_rc == 0) {
        await_replicas(r);
    } else {
        cs_print_logs(&r->c, "no whole consumer read");
        r->c.keep_root = true;
    }
    cs_stop_brokers(&r->c);
    for (size_t i = 0; i < BROKERS; i++) {
        char name[CHK_NAME_BYTES];
        snprintf(name, sizeof(name), "broker %d log", r->c.b[i].id);
        struct chk_source *s = chk_source_add(&r->k, name, CHK_REPLICA);
        cr_assert_not_null(s);
        rc = chk_read_replica_dir(&r->k, s, r->c.b[i].data_dir);
        cr_assert_eq(rc, 0, "%s: %s", name, err_str(rc));
    }
    chk_verify(&r->k, out);
    fprintf(stderr, "fault run: seed %" PRIu64 "\n", r->seed);
    chk_print(&r->k, out, stderr);
    if (!out->ok) {
        cs_print_logs(&r->c, "the checker found problems");
    } else if (out->unavailable_ms_max >= STALL_LOGGED_MS) {
        cs_print_logs(&r->c, "a partition took no acknowledged write for a long time");
    }
    cr_assert_eq(read_rc, 0, "no whole consumer read (seed %" PRIu64 "): %s", r->seed,
                 nagare_strerror(read_rc));
}

/* run_finish(), and the checker must have found nothing (the data kept
 * when it did). */
static void run_judge(struct run *r)
{
    struct chk_result res;
    run_finish(r, &res);
    r->c.keep_root = !res.ok;
    cr_assert(res.ok, "the checker found problems (seed %" PRIu64 ")", r->seed);
}

static void run_kinds(fault_fn *const *kinds, size_t kind_count)
{
    bool power_sim = false;
    for (size_t i = 0; i < kind_count; i++) {
        power_sim |= kinds[i] == fault_power_cut;
    }
    run_start(&R, false, power_sim);
    run_faults(&R, kinds, kind_count);
    run_judge(&R);
}

#define RUN(...)                                            \
    do {                                                    \
        fault_fn *const kinds[] = {__VA_ARGS__};            \
        run_kinds(kinds, sizeof(kinds) / sizeof(kinds[0])); \
    } while (0)

Test(cluster_faults, kill9_of_a_broker) { RUN(fault_kill9); }

Test(cluster_faults, sigstop_of_a_leader) { RUN(fault_pause); }

Test(cluster_faults, a_leader_isolated)
{
    cs_need_nft();
    RUN(fault_isolate);
}

Test(cluster_faults, split_in_halves)
{
    cs_need_nft();
    RUN(fault_halves);
}

Test(cluster_faults, one_way_loss)
{
    cs_need_nft();
    RUN(fault_oneway);
}

Test(cluster_faults, kill9_of_the_etcd_leader) { RUN(fault_etcd_leader); }

Test(cluster_faults, power_cut_of_a_broker) { RUN(fault_power_cut); }

/* Every kind, drawn by the seed: the long runs' test. */
Test(cluster_faults, mixed)
{
    cs_need_nft();
    RUN(fault_kill9, fault_pause, fault_isolate, fault_halves, fault_oneway, fault_etcd_leader,
        fault_power_cut);
}

/* A consumer of partition 0 reading along in the paused-leader run. */
struct reader {
    nagare_consumer *k;
    int64_t next; /* the offset after the last record read */
};

static void reader_start(struct reader *rd, struct run *r)
{
    struct nagare_consumer_config cc;
    nagare_consumer_config_default(&cc);
    cc.bootstrap = r->c.bootstrap;
    cc.request_timeout_ms = STALL_REQUEST_TIMEOUT_MS;
    int rc = nagare_consumer_new(&cc, &rd->k);
    cr_assert_eq(rc, 0, "consumer: %s", nagare_strerror(rc));
    rc = nagare_consumer_assign(rd->k, TOPIC, 0, 0);
    cr_assert_eq(rc, 0, "assign: %s", nagare_strerror(rc));
    rd->next = 0;
}

/* One poll of the reader: records come in order, each once, ours. */
static void reader_poll(struct reader *rd, int timeout_ms)
{
    const struct nagare_message *m = NULL;
    int rc = nagare_consumer_poll(rd->k, timeout_ms, &m);
    cr_assert_geq(rc, 0, "consumer poll: %s", nagare_strerror(rc));
    if (rc == 1) {
        cr_assert_geq(m->offset, rd->next, "partition 0 read in order, each record once");
        cr_assert_neq(chk_parse(m->value, m->value_len), CHK_ID_FOREIGN);
        rd->next = m->offset + 1;
    }
}

/* Pauses broker i (partition 0's `role`, "leader" or "follower") and keeps
 * it paused until partition 0 took STALL_ACKS more acknowledged writes,
 * polling rd meanwhile (NULL: none); fails past STALL_MOVE_TIMEOUT_MS.
 * Returns that deadline, for what the test waits for next. */
static int64_t pause_for_acks(struct run *r, size_t i, const char *role, struct reader *rd)
{
    char fault[64];
    snprintf(fault, sizeof(fault), "SIGSTOP of a %s, kept", role);
    chk_fault_begin(&r->k, fault);
    cs_broker_pause(&r->c, i);
    uint64_t want = chk_acked_count_partition(&r->k, 0) + STALL_ACKS;
    int64_t deadline = clock_mono_ms() + STALL_MOVE_TIMEOUT_MS;
    while (chk_acked_count_partition(&r->k, 0) < want) {
        if (clock_mono_ms() >= deadline) {
            cs_print_logs(&r->c, "the writes did not move");
            cr_assert_fail("partition 0: fewer than %d writes acknowledged in %d ms with its "
                           "%s, broker %d, paused (seed %" PRIu64 ")",
                           STALL_ACKS, STALL_MOVE_TIMEOUT_MS, role, r->c.b[i].id, r->seed);
        }
        if (rd != NULL) {
            reader_poll(rd, 50);
        } else {
            sleep_ms(50);
        }
    }
    return deadline;
}

/* A paused leader is left for its successor while it stays paused
 * (client/producer.c and client/consumer.c, "stalls"). The producers' and
 * the consumer's request timeout is far above the wait allowed here, and
 * the leader's kernel keeps their connections open: only the clients
 * asking another broker who leads and giving the paused one up move them.
 * Partition 0 must take more acknowledged writes than the producers can
 * have outstanding (so none of them can be answers the leader sent before
 * it stopped), and a consumer that was reading it from the leader must
 * read up to the last of them, with the leader still paused; then it
 * resumes and the checker must find every acknowledged record once, in
 * order. */
Test(cluster_faults, paused_leader_left_for_its_successor)
{
    R.request_timeout_ms = STALL_REQUEST_TIMEOUT_MS;
    run_start(&R, false, false);
    size_t i = leader_of(&R, 0);
    struct reader rd;
    reader_start(&rd, &R);
    int64_t deadline = clock_mono_ms() + SETUP_TIMEOUT_MS;
    while (rd.next == 0) { /* fetching from the leader */
        cr_assert_lt(clock_mono_ms(), deadline, "the consumer read nothing");
        reader_poll(&rd, 50);
    }
    deadline = pause_for_acks(&R, i, "leader", &rd);
    int64_t last = chk_acked_offset_max(&R.k, 0); /* written by the successor */
    while (rd.next <= last) {
        if (clock_mono_ms() >= deadline) {
            cs_print_logs(&R.c, "the reads did not move");
            cr_assert_fail("partition 0: read to offset %" PRId64 ", not %" PRId64
                           ", in %d ms with its leader, broker %d, paused (seed %" PRIu64 ")",
                           rd.next, last + 1, STALL_MOVE_TIMEOUT_MS, R.c.b[i].id, R.seed);
        }
        reader_poll(&rd, 50);
    }
    cr_assert(R.c.b[i].paused, "still paused when its successor took the writes and reads");
    nagare_consumer_destroy(rd.k);
    cs_broker_resume(&R.c, i);
    chk_fault_end(&R.k);
    run_judge(&R);
}

/* A follower of partition 0 (not its leader) paused and kept so, with
 * replica_lag_ms far above the wait: partition 0 must take STALL_ACKS more
 * acks=all writes from its unmoved leader meanwhile, which it can only once
 * the leader has taken the follower out of its in-sync set because the
 * follower's etcd lease ran out. Then it resumes, catches up, and the
 * checker must find every acknowledged record once, in order, the replicas
 * alike. */
Test(cluster_faults, paused_follower_left_out_of_in_sync_sets)
{
    R.request_timeout_ms = STALL_REQUEST_TIMEOUT_MS;
    R.replica_lag_ms = FOLLOWER_LAG_MS;
    run_start(&R, false, false);
    size_t f = (leader_of(&R, 0) + 1) % BROKERS;
    (void)pause_for_acks(&R, f, "follower", NULL);
    cr_assert(R.c.b[f].paused, "still paused when partition 0 took the writes");
    cs_broker_resume(&R.c, f);
    chk_fault_end(&R.k);
    run_judge(&R);
}

/* The planned loss. Broker 1 leads partition 0 (the first replica of the
 * first partition). With min_insync_replicas = 1 and unclean election
 * allowed (a setting of the topic), its followers are killed,
 * so the leader alone acknowledges writes once it dropped them from the
 * ISR; then it is killed, the followers come back, and unclean election
 * makes one of them leader without those records: they are lost, and the
 * checker must say so. */
Test(cluster_faults, unclean_election_loses_acknowledged_records)
{
    run_start(&R, true, false);
    cs_broker_kill(&R.c, 1);
    cs_broker_kill(&R.c, 2);
    await_acks(&R, ACKS_PROOF, "the leader alone took no writes");
    cs_broker_kill(&R.c, 0);
    cs_broker_start(&R.c, 1);
    cs_broker_start(&R.c, 2);
    await_acks(&R, ACKS_PROOF, "no unclean leader took writes");
    cs_broker_start(&R.c, 0);
    struct chk_result res;
    run_finish(&R, &res);
    cr_assert_not(res.ok);
    cr_assert_gt(res.lost.count, 0, "acknowledged records lost, and the checker saw it");
}
