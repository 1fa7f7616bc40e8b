/*
 * tests/test_kafka_cluster.c — the Kafka listener in a cluster of three
 * brokers: each registers its Kafka address, and any broker names the
 * group coordinator (the leader of __offsets/0) at its Kafka address;
 * across a leader change, the codec sees what Kafka's clients rely on.
 * Then real clients (kcat, confluent-kafka, kafka-python, KafkaJS: each a
 * CLIENT of tests/kafka_cluster_clients.py) read Metadata and produce
 * across a stopped and a killed leader. Skipped, saying why, when
 * the machine cannot run a cluster or the client is not installed.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/clock.h"
#include "client/nagare.h"
#include "net/kafka/codec.h"
#include "net/kafka/errors.h"
#include "tests/broker_support.h"
#include "tests/cluster_support.h"
#include "tests/kafka_client_support.h"
#include "tests/sys_support.h"

/* Only turns a hang into a failure. */
#define SETUP_TIMEOUT_MS 60000

static struct cluster C;

static void teardown(void) { cs_fini(&C); }

/* FindCoordinator v2 of group through broker i. */
static void find_coordinator(size_t i, const char *group,
                             struct kafka_find_coordinator_response *out)
{
    struct kc c;
    kc_connect_host(&c, C.b[i].host, C.b[i].kafka_port);
    struct kafka_find_coordinator_request r;
    kafka_find_coordinator_request_init(&r);
    r.key = kw_str_make(group);
    kc_call(&c, KAFKA_API_FIND_COORDINATOR, 2, &kafka_find_coordinator_request_msg, &r,
            &kafka_find_coordinator_response_msg, out);
    /* the answer's strings live in c's buffers: keep what the tests read */
    static char host[256];
    cr_assert(out->host.len >= 0 && (size_t)out->host.len < sizeof(host));
    memcpy(host, out->host.ptr, (size_t)out->host.len);
    host[out->host.len] = '\0';
    out->host = kw_str_make(host);
    kc_close(&c);
}

Test(kafka_cluster, every_broker_names_the_group_coordinator_at_its_kafka_address, .fini = teardown,
     .timeout = 300)
{
    cs_need_cluster();
    cs_init(&C, 3);
    cs_start(&C);
    for (size_t i = 0; i < 3; i++) {
        cr_assert_neq(C.b[i].kafka_port, 0, "broker %d has a Kafka listener", C.b[i].id);
    }
    /* The first asks make __offsets; until it has a leader the answer is
     * COORDINATOR_NOT_AVAILABLE, which clients wait out. */
    struct kafka_find_coordinator_response out;
    int64_t give_up = clock_mono_ms() + SETUP_TIMEOUT_MS;
    do {
        cr_assert_lt(clock_mono_ms(), give_up, "no coordinator within %d ms", SETUP_TIMEOUT_MS);
        find_coordinator(0, "g", &out);
        cr_assert(out.error_code == KAFKA_ERR_NONE ||
                      out.error_code == KAFKA_ERR_COORDINATOR_NOT_AVAILABLE,
                  "error %d", out.error_code);
    } while (out.error_code != KAFKA_ERR_NONE);
    int32_t node = out.node_id;
    cr_assert(node >= 1 && node <= 3, "node %d", node);
    const struct cs_broker *k = &C.b[node - 1];
    for (size_t i = 0; i < 3; i++) {
        do {
            cr_assert_lt(clock_mono_ms(), give_up, "broker %zu never named it", i);
            find_coordinator(i, "g", &out);
        } while (out.error_code != KAFKA_ERR_NONE);
        cr_assert_eq(out.node_id, node, "broker %zu names the same coordinator", i);
        cr_assert(kw_str_eq(out.host, k->host), "its host %s", k->host);
        cr_assert_eq(out.port, k->kafka_port, "its Kafka port, not nagare's");
    }
}

/* JoinGroup v4 of a new member through broker i: its error. */
static int16_t join_through(size_t i, const char *group)
{
    struct kc c;
    kc_connect_host(&c, C.b[i].host, C.b[i].kafka_port);
    struct kafka_join_group_request_protocol p = {.name = kw_str_make("range"),
                                                  .metadata = {(const uint8_t *)"m", 1}};
    struct kafka_join_group_request r;
    kafka_join_group_request_init(&r);
    r.group_id = kw_str_make(group);
    r.session_timeout_ms = 30000;
    r.member_id = kw_str_make("");
    r.protocol_type = kw_str_make("consumer");
    r.protocols.items = &p;
    r.protocols.count = 1;
    struct kafka_join_group_response out;
    kc_call(&c, KAFKA_API_JOIN_GROUP, 4, &kafka_join_group_request_msg, &r,
            &kafka_join_group_response_msg, &out);
    kc_close(&c);
    return out.error_code;
}

Test(kafka_cluster, only_the_coordinator_takes_a_join, .fini = teardown, .timeout = 300)
{
    cs_need_cluster();
    cs_init(&C, 3);
    cs_start(&C);
    struct kafka_find_coordinator_response out;
    int64_t give_up = clock_mono_ms() + SETUP_TIMEOUT_MS;
    do {
        cr_assert_lt(clock_mono_ms(), give_up, "no coordinator within %d ms", SETUP_TIMEOUT_MS);
        find_coordinator(0, "g", &out);
    } while (out.error_code != KAFKA_ERR_NONE);
    size_t k = (size_t)out.node_id - 1;
    for (size_t i = 0; i < 3; i++) {
        int16_t err = join_through(i, "g");
        if (i == k) {
            /* The coordinator may not have attached the offsets store at
             * the moment its leadership shows: then it says so too. */
            cr_assert(err == KAFKA_ERR_MEMBER_ID_REQUIRED || err == KAFKA_ERR_NOT_COORDINATOR,
                      "coordinator: %d", err);
        } else {
            cr_assert_eq(err, KAFKA_ERR_NOT_COORDINATOR, "broker %zu: %d", i, err);
        }
    }
    do { /* the coordinator takes it once it serves */
        cr_assert_lt(clock_mono_ms(), give_up, "the coordinator never took a join");
    } while (join_through(k, "g") != KAFKA_ERR_MEMBER_ID_REQUIRED);
}

Test(kafka_cluster, metadata_names_every_broker_at_its_kafka_address, .fini = teardown,
     .timeout = 300)
{
    cs_need_cluster();
    cs_init(&C, 3);
    cs_start(&C);
    int64_t give_up = clock_mono_ms() + SETUP_TIMEOUT_MS;
    for (size_t i = 0; i < 3; i++) {
        struct kc c;
        kc_connect_host(&c, C.b[i].host, C.b[i].kafka_port);
        struct kafka_metadata_request r;
        kafka_metadata_request_init(&r);
        r.topics.count = -1; /* every topic */
        struct kafka_metadata_response out;
        for (;;) { /* until this broker's view holds all three */
            kc_call(&c, KAFKA_API_METADATA, 9, &kafka_metadata_request_msg, &r,
                    &kafka_metadata_response_msg, &out);
            if (out.brokers.count == 3) {
                break;
            }
            cr_assert_lt(clock_mono_ms(), give_up, "broker %zu lists %d brokers", i,
                         out.brokers.count);
        }
        for (int32_t k = 0; k < 3; k++) {
            const struct kafka_metadata_response_broker *b = &out.brokers.items[k];
            cr_assert(b->node_id >= 1 && b->node_id <= 3);
            const struct cs_broker *want = &C.b[b->node_id - 1];
            cr_assert(kw_str_eq(b->host, want->host), "broker %d's host", b->node_id);
            cr_assert_eq(b->port, want->kafka_port, "broker %d's Kafka port", b->node_id);
        }
        kc_close(&c);
    }
}

/* ---- real clients (tests/kafka_cluster_clients.py) ---- */

#define CLIENT_TOPIC "followed"
#define CLIENT_PARTITIONS 3
#define ADMIN_TIMEOUT_MS 10000
#define LINE_BYTES 512

/* The script, its stdin and its stdout; its stderr is the test's. */
struct client {
    const char *name;
    pid_t pid;
    FILE *in;
    FILE *out;
};

/* Starts argv[0] with pipes to its stdin and from its stdout; it dies with
 * the test. */
static void client_spawn(struct client *k, const char *const *argv)
{
    int to[2], from[2];
    cr_assert(pipe2(to, O_CLOEXEC) == 0 && pipe2(from, O_CLOEXEC) == 0, "pipe: %s",
              strerror(errno));
    pid_t parent = getpid();
    k->pid = fork();
    cr_assert_geq(k->pid, 0, "fork: %s", strerror(errno));
    if (k->pid == 0) {
        /* Only async-signal-safe calls between fork and exec; dup2 clears
         * O_CLOEXEC on the copies. */
        if (dup2(to[0], STDIN_FILENO) < 0 || dup2(from[1], STDOUT_FILENO) < 0 ||
            prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) {
            _exit(126);
        }
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(to[0]);
    close(from[1]);
    k->in = fdopen(to[1], "w");
    k->out = fdopen(from[0], "r");
    cr_assert(k->in != NULL && k->out != NULL);
}

/* Waits for the script's end: its exit status (128 + signal when killed). */
static int client_end(struct client *k)
{
    if (k->in != NULL) {
        fclose(k->in);
        k->in = NULL;
    }
    int status;
    cr_assert_eq(waitpid(k->pid, &status, 0), k->pid, "waitpid: %s", strerror(errno));
    fclose(k->out);
    k->out = NULL;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* The script's next line, without its newline; a script that ends instead
 * fails the test (it said why on stderr). */
static void client_hear(struct client *k, char *line)
{
    if (fgets(line, LINE_BYTES, k->out) == NULL) {
        int rc = client_end(k);
        cs_print_logs(&C, "the client ended");
        cr_assert_fail("%s ended (status %d) before its next line", k->name, rc);
    }
    line[strcspn(line, "\n")] = '\0';
}

static void client_say(struct client *k, const char *line)
{
    cr_assert(fprintf(k->in, "%s\n", line) > 0 && fflush(k->in) == 0, "%s: %s", k->name,
              strerror(errno));
}

/* Skips the test, saying why, unless the script finds client installed. */
static const char *client_script(const char *name)
{
    const char *script = getenv("KAFKA_CLUSTER_CLIENTS");
    cr_assert(script != NULL && *script, "set KAFKA_CLUSTER_CLIENTS to the script");
    struct client k = {.name = name};
    const char *argv[] = {script, name, "--check", NULL};
    client_spawn(&k, argv);
    char why[LINE_BYTES] = "";
    if (fgets(why, sizeof(why), k.out) != NULL) {
        why[strcspn(why, "\n")] = '\0';
    }
    int rc = client_end(&k);
    if (rc == 77) {
        cr_skip_test("%s", why);
    }
    cr_assert_eq(rc, 0, "%s --check: status %d", name, rc);
    return script;
}

static nagare_admin *admin_of(size_t i)
{
    nagare_admin *a = NULL;
    int rc = nagare_admin_new(C.b[i].bootstrap, ADMIN_TIMEOUT_MS, &a);
    cr_assert_eq(rc, 0, "admin of broker %zu: %s", i, nagare_strerror(rc));
    return a;
}

/* A running broker (the one the test's own views and lookups go to). */
static size_t live_broker(void)
{
    size_t i = 0;
    while (i < C.broker_count && !cs_broker_alive(&C, i)) {
        i++;
    }
    cr_assert_lt(i, C.broker_count, "no broker runs");
    return i;
}

/* CLIENT_TOPIC's partitions as nagare's own Metadata (its own protocol)
 * names them. */
struct view {
    int32_t leader[CLIENT_PARTITIONS];
    int32_t epoch[CLIENT_PARTITIONS];
};

/* The view of a running broker; true once every partition has a leader
 * and, when in_sync, every replica is in sync. */
static bool nagare_view(struct view *v, bool in_sync)
{
    nagare_admin *a = admin_of(live_broker());
    const struct nagare_cluster_info *info = NULL;
    size_t found = 0;
    bool settled = true;
    if (nagare_cluster_describe(a, &info) == 0) {
        for (size_t i = 0; i < info->partition_count; i++) {
            const struct nagare_partition_replicas *p = &info->partitions[i];
            if (strcmp(p->topic, CLIENT_TOPIC) != 0) {
                continue;
            }
            cr_assert(p->partition >= 0 && p->partition < CLIENT_PARTITIONS);
            v->leader[p->partition] = p->leader;
            v->epoch[p->partition] = p->leader_epoch;
            settled = settled && p->leader > 0 && (!in_sync || p->isr_count == p->replica_count);
            found++;
        }
        nagare_cluster_info_free(a, info);
    }
    nagare_admin_destroy(a);
    return found == CLIENT_PARTITIONS && settled;
}

/* Waits until every partition has a leader and, when in_sync, its whole
 * replica set in sync; returns the view. */
static void settle(struct view *v, bool in_sync, const char *why)
{
    int64_t give_up = clock_mono_ms() + SETUP_TIMEOUT_MS;
    while (!nagare_view(v, in_sync)) {
        if (clock_mono_ms() >= give_up) {
            cs_print_logs(&C, why);
            cr_assert_fail("%s: not settled within %d ms", why, SETUP_TIMEOUT_MS);
        }
        sleep_ms(100);
    }
}

/* Waits until the partitions' high watermarks add up to at least n (what
 * the client handed over is committed: kcat does not say when). */
static void wait_committed(int64_t n)
{
    int64_t give_up = clock_mono_ms() + SETUP_TIMEOUT_MS;
    for (;;) {
        nagare_admin *a = admin_of(live_broker());
        int64_t sum = 0;
        int rc = 0;
        for (int32_t p = 0; p < CLIENT_PARTITIONS && rc == 0; p++) {
            int64_t end = 0;
            rc = nagare_offset_lookup(a, CLIENT_TOPIC, p, NAGARE_OFFSET_END, &end);
            sum += end;
        }
        nagare_admin_destroy(a);
        if (rc == 0 && sum >= n) {
            return;
        }
        if (clock_mono_ms() >= give_up) {
            cs_print_logs(&C, "records not committed");
            cr_assert_fail("%lld of %lld records committed (%s)", (long long)sum, (long long)n,
                           nagare_strerror(rc));
        }
        sleep_ms(100);
    }
}

/* Creates CLIENT_TOPIC through nagare's admin, with factor replicas of
 * each partition. */
static void create_topic(int16_t factor)
{
    struct nagare_topic_config cfg;
    nagare_topic_config_default(&cfg);
    cfg.partitions = CLIENT_PARTITIONS;
    cfg.replication_factor = factor;
    cs_topic_create(&C, C.b[0].bootstrap, CLIENT_TOPIC, &cfg, NULL, SETUP_TIMEOUT_MS);
}

/* Starts the cluster and creates CLIENT_TOPIC, replication factor 3. */
static void start_with_topic(void)
{
    cs_init(&C, 3);
    /* A stopped follower leaves the in-sync set after this (acks=all waits
     * for it until then): short, for a short run. */
    cs_set(&C, "replica_lag_ms=2000");
    /* The read-back of a client that reads through a group (KafkaJS's
     * consumers only do) is its one member: no wait for others to join. */
    cs_set(&C, "kafka_group_initial_delay_ms=0");
    cs_start(&C);
    create_topic(3);
}

/* The Kafka addresses of the running brokers, ','-separated. */
static void kafka_bootstrap(char *out, size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < C.broker_count; i++) {
        if (cs_broker_alive(&C, i)) {
            int n = snprintf(out + len, cap - len, "%s%s:%u", len ? "," : "", C.b[i].host,
                             C.b[i].kafka_port);
            cr_assert(n > 0 && (size_t)n < cap - len);
            len += (size_t)n;
        }
    }
}

/* Reads the client's Metadata lines: every broker at its Kafka address,
 * and the leaders nagare's own Metadata names before and after. */
static void check_client_metadata(struct client *k)
{
    struct view before, after;
    int32_t said[CLIENT_PARTITIONS];
    settle(&before, true, "before the client's metadata");
    bool broker_seen[3] = {false};
    bool partition_seen[CLIENT_PARTITIONS] = {false};
    char line[LINE_BYTES];
    for (client_hear(k, line); strcmp(line, "metadata") != 0; client_hear(k, line)) {
        int id, port, p, leader;
        char host[CS_HOST_BYTES];
        static_assert(CS_HOST_BYTES == 16, "the %15s below");
        if (sscanf(line, "broker %d %15s %d", &id, host, &port) == 3) {
            cr_assert(id >= 1 && id <= 3 && !broker_seen[id - 1], "%s: %s", k->name, line);
            cr_assert_str_eq(host, C.b[id - 1].host, "%s: broker %d's host", k->name, id);
            cr_assert_eq(port, C.b[id - 1].kafka_port, "%s: broker %d's Kafka port", k->name, id);
            broker_seen[id - 1] = true;
        } else if (sscanf(line, "partition %d %d", &p, &leader) == 2) {
            cr_assert(p >= 0 && p < CLIENT_PARTITIONS && !partition_seen[p], "%s: %s", k->name,
                      line);
            said[p] = leader;
            partition_seen[p] = true;
        } else {
            cr_assert_fail("%s said %s", k->name, line);
        }
    }
    settle(&after, true, "after the client's metadata");
    cr_assert_arr_eq(before.leader, after.leader, sizeof(before.leader),
                     "the leaders moved while the client looked");
    for (size_t i = 0; i < 3; i++) {
        cr_assert(broker_seen[i], "%s: broker %d not listed", k->name, C.b[i].id);
    }
    for (int32_t p = 0; p < CLIENT_PARTITIONS; p++) {
        cr_assert(partition_seen[p], "%s: partition %d not listed", k->name, p);
        cr_assert_eq(said[p], before.leader[p], "%s: partition %d's leader is %d, nagare says %d",
                     k->name, p, said[p], before.leader[p]);
    }
}

/* Waits for "produced N" (n records handed over, acknowledged where the
 * client says so) and for n records committed; returns n. */
static int64_t hear_produced(struct client *k, int64_t more_than)
{
    char line[LINE_BYTES];
    long long n = 0;
    client_hear(k, line);
    cr_assert(sscanf(line, "produced %lld", &n) == 1 && n > more_than, "%s said %s", k->name, line);
    wait_committed(n);
    return n;
}

/* The client's run: its Metadata, then a numbered stream produced in
 * three rounds: between the first two the test stops the leader of
 * partition 0 (SIGTERM), between the last two it kills the leader of
 * partition 1 (SIGKILL, the first one back in sync by then); the client
 * goes on to the new leaders by itself, and reports success for every
 * record; then it reads everything back through the surviving brokers. */
static void client_follows_leader_changes(const char *name)
{
    cs_need_cluster();
    const char *script = client_script(name);
    signal(SIGPIPE, SIG_IGN); /* a client that died is seen at its next line */
    start_with_topic();
    char bootstrap[CS_BROKERS_MAX * (CS_HOST_BYTES + 8)];
    kafka_bootstrap(bootstrap, sizeof(bootstrap));
    struct client k = {.name = name};
    const char *argv[] = {script, name, bootstrap, CLIENT_TOPIC, NULL};
    client_spawn(&k, argv);
    check_client_metadata(&k);

    struct view v;
    int64_t n = hear_produced(&k, 0);
    settle(&v, true, "before the stop");
    size_t stopped = (size_t)v.leader[0] - 1;
    cs_broker_stop(&C, stopped);
    client_say(&k, "go");

    n = hear_produced(&k, n);
    cs_broker_start(&C, stopped);
    settle(&v, true, "the stopped broker back in sync");
    size_t killed = (size_t)v.leader[1] - 1;
    cs_broker_kill(&C, killed);
    client_say(&k, "go");

    hear_produced(&k, n);
    char line[LINE_BYTES] = "consume ";
    kafka_bootstrap(line + strlen(line), sizeof(line) - strlen(line));
    client_say(&k, line);
    client_hear(&k, line);
    cr_assert(strncmp(line, "ok", 2) == 0, "%s said %s", name, line);
    cr_log_info("%s: %s", name, line);
    cr_assert_eq(client_end(&k), 0, "%s's exit status", name);
}

/* One test per client, each a CLIENT of tests/kafka_cluster_clients.py. */
Test(kafka_cluster, kcat_follows_leader_changes, .fini = teardown, .timeout = 600)
{
    client_follows_leader_changes("kcat");
}

Test(kafka_cluster, confluent_kafka_follows_leader_changes, .fini = teardown, .timeout = 600)
{
    client_follows_leader_changes("confluent");
}

Test(kafka_cluster, kafka_python_follows_leader_changes, .fini = teardown, .timeout = 600)
{
    client_follows_leader_changes("kafka-python");
}

Test(kafka_cluster, kafkajs_follows_leader_changes, .fini = teardown, .timeout = 600)
{
    client_follows_leader_changes("kafkajs");
}

/* ---- a leader change, spoken with the codec ---- */

/* A partition of CLIENT_TOPIC in a broker's Kafka Metadata. */
struct kafka_part {
    int16_t err; /* UNKNOWN_TOPIC_OR_PARTITION while the broker does not
                    list it (it has not applied the view that made it) */
    int32_t leader;
    int32_t epoch;
};

/* Partition p in broker i's Kafka Metadata (v9). */
static struct kafka_part kafka_partition(size_t i, int32_t partition)
{
    struct kc c;
    kc_connect_host(&c, C.b[i].host, C.b[i].kafka_port);
    struct kafka_metadata_request_topic t = {.name = kw_str_make(CLIENT_TOPIC)};
    struct kafka_metadata_request r;
    kafka_metadata_request_init(&r);
    r.topics.items = &t;
    r.topics.count = 1;
    struct kafka_metadata_response out;
    kc_call(&c, KAFKA_API_METADATA, 9, &kafka_metadata_request_msg, &r,
            &kafka_metadata_response_msg, &out);
    cr_assert_eq(out.topics.count, 1);
    struct kafka_part got = {.err = out.topics.items[0].error_code, .leader = -1, .epoch = -1};
    cr_assert(got.err == KAFKA_ERR_NONE || got.err == KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION,
              "broker %zu's Metadata: error %d", i, got.err);
    for (int32_t k = 0; k < out.topics.items[0].partitions.count; k++) {
        const struct kafka_metadata_response_partition *p =
            &out.topics.items[0].partitions.items[k];
        if (p->partition_index == partition) {
            got = (struct kafka_part){p->error_code, p->leader_id, p->leader_epoch};
        }
    }
    kc_close(&c);
    return got;
}

/* Waits until broker i's Kafka Metadata names partition 0's leader and
 * leader epoch as nagare's view v does (a broker applies a view a moment
 * after another: until then its answer may be an older one's). */
static void kafka_agrees(size_t i, const struct view *v)
{
    int64_t give_up = clock_mono_ms() + SETUP_TIMEOUT_MS;
    struct kafka_part p;
    for (p = kafka_partition(i, 0);
         p.err != KAFKA_ERR_NONE || p.leader != v->leader[0] || p.epoch != v->epoch[0];
         p = kafka_partition(i, 0)) {
        cr_assert_lt(clock_mono_ms(), give_up,
                     "broker %zu's Kafka Metadata: error %d, leader %d at epoch %d, nagare's %d "
                     "at %d",
                     i, p.err, p.leader, p.epoch, v->leader[0], v->epoch[0]);
        sleep_ms(100);
    }
}

/* Produce v9 of one batch to partition 0: its error, *offset its base
 * offset. */
static int16_t kafka_produce0(struct kc *c, const uint8_t *batch, size_t len, int64_t *offset)
{
    struct kafka_produce_request_partition_produce_data pd = {
        .index = 0, .records = {.ptr = batch, .len = (int32_t)len}};
    struct kafka_produce_request_topic_produce_data td = {
        .name = kw_str_make(CLIENT_TOPIC), .partition_data = {.items = &pd, .count = 1}};
    struct kafka_produce_request req;
    kafka_produce_request_init(&req);
    req.acks = -1;
    req.timeout_ms = 30000;
    req.topic_data.items = &td;
    req.topic_data.count = 1;
    struct kafka_produce_response out;
    kc_call(c, KAFKA_API_PRODUCE, 9, &kafka_produce_request_msg, &req, &kafka_produce_response_msg,
            &out);
    cr_assert(out.responses.count == 1 && out.responses.items[0].partition_responses.count == 1);
    *offset = out.responses.items[0].partition_responses.items[0].base_offset;
    return out.responses.items[0].partition_responses.items[0].error_code;
}

/* Fetch v12 of partition 0 from offset 0, naming current_epoch: its error. */
static int16_t kafka_fetch0(struct kc *c, int32_t current_epoch, int64_t *high_watermark)
{
    struct kafka_fetch_request_partition fp = {.partition = 0,
                                               .current_leader_epoch = current_epoch,
                                               .fetch_offset = 0,
                                               .last_fetched_epoch = -1,
                                               .log_start_offset = -1,
                                               .partition_max_bytes = 1 << 20};
    struct kafka_fetch_request_topic ft = {.topic = kw_str_make(CLIENT_TOPIC),
                                           .partitions = {.items = &fp, .count = 1}};
    struct kafka_fetch_request req;
    kafka_fetch_request_init(&req);
    req.max_wait_ms = 0;
    req.min_bytes = 1;
    req.topics.items = &ft;
    req.topics.count = 1;
    struct kafka_fetch_response out;
    kc_call(c, KAFKA_API_FETCH, 12, &kafka_fetch_request_msg, &req, &kafka_fetch_response_msg,
            &out);
    cr_assert(out.responses.count == 1 && out.responses.items[0].partitions.count == 1);
    *high_watermark = out.responses.items[0].partitions.items[0].high_watermark;
    return out.responses.items[0].partitions.items[0].error_code;
}

/* ListOffsets v6 (latest) of partition 0: its error. */
static int16_t kafka_list0(struct kc *c)
{
    struct kafka_list_offsets_request_partition lp = {
        .partition_index = 0, .current_leader_epoch = -1, .timestamp = -1};
    struct kafka_list_offsets_request_topic lt = {.name = kw_str_make(CLIENT_TOPIC),
                                                  .partitions = {.items = &lp, .count = 1}};
    struct kafka_list_offsets_request req;
    kafka_list_offsets_request_init(&req);
    req.replica_id = -1;
    req.topics.items = &lt;
    req.topics.count = 1;
    struct kafka_list_offsets_response out;
    kc_call(c, KAFKA_API_LIST_OFFSETS, 6, &kafka_list_offsets_request_msg, &req,
            &kafka_list_offsets_response_msg, &out);
    cr_assert(out.topics.count == 1 && out.topics.items[0].partitions.count == 1);
    return out.topics.items[0].partitions.items[0].error_code;
}

/* OffsetForLeaderEpoch v4 of partition 0: its error, *end_offset and
 * *end_epoch the answer. */
static int16_t kafka_epoch_end0(struct kc *c, int32_t current_epoch, int32_t epoch,
                                int64_t *end_offset, int32_t *end_epoch)
{
    struct kafka_offset_for_leader_epoch_request_offset_for_leader_partition p = {
        .partition = 0, .current_leader_epoch = current_epoch, .leader_epoch = epoch};
    struct kafka_offset_for_leader_epoch_request_offset_for_leader_topic t = {
        .topic = kw_str_make(CLIENT_TOPIC), .partitions = {.items = &p, .count = 1}};
    struct kafka_offset_for_leader_epoch_request req;
    kafka_offset_for_leader_epoch_request_init(&req);
    req.replica_id = -1;
    req.topics.items = &t;
    req.topics.count = 1;
    struct kafka_offset_for_leader_epoch_response out;
    kc_call(c, KAFKA_API_OFFSET_FOR_LEADER_EPOCH, 4, &kafka_offset_for_leader_epoch_request_msg,
            &req, &kafka_offset_for_leader_epoch_response_msg, &out);
    cr_assert(out.topics.count == 1 && out.topics.items[0].partitions.count == 1);
    *end_offset = out.topics.items[0].partitions.items[0].end_offset;
    *end_epoch = out.topics.items[0].partitions.items[0].leader_epoch;
    return out.topics.items[0].partitions.items[0].error_code;
}

static int64_t kafka_init_producer_id(struct kc *c)
{
    struct kafka_init_producer_id_request req;
    kafka_init_producer_id_request_init(&req);
    req.transactional_id = KW_STR_NULL;
    req.transaction_timeout_ms = 60000;
    struct kafka_init_producer_id_response out;
    kc_call(c, KAFKA_API_INIT_PRODUCER_ID, 4, &kafka_init_producer_id_request_msg, &req,
            &kafka_init_producer_id_response_msg, &out);
    cr_assert_eq(out.error_code, KAFKA_ERR_NONE);
    return out.producer_id;
}

/* What Kafka's clients rely on across a leader change: every broker's
 * Metadata names nagare's leader and leader epoch; a follower refuses
 * Produce, Fetch and ListOffsets with NOT_LEADER_OR_FOLLOWER (the clients
 * look again); the new leader answers OffsetForLeaderEpoch for the old
 * epoch with where it ended (KIP-320's truncation check) and fences the
 * old epoch; and an idempotent producer's retry of its last batch, sent
 * to the new leader, is known as a copy, its next batch taken in turn,
 * one out of order refused. */
Test(kafka_cluster, a_new_leader_carries_on_where_the_old_one_stopped, .fini = teardown,
     .timeout = 300)
{
    cs_need_cluster();
    start_with_topic();
    struct view v;
    settle(&v, true, "the topic in sync");
    for (size_t i = 0; i < 3; i++) {
        kafka_agrees(i, &v);
    }
    size_t leader = (size_t)v.leader[0] - 1, follower = (leader + 1) % 3;
    int32_t epoch = v.epoch[0];
    int64_t offset, high_watermark;
    uint8_t b0[4096], b1[4096], b2[4096], b3[4096];

    struct kc c;
    kc_connect_host(&c, C.b[follower].host, C.b[follower].kafka_port);
    int64_t pid = kafka_init_producer_id(&c);
    size_t n0 = bt_make(b0, sizeof(b0), 3, 1, 0, pid, 0, 0);
    size_t n1 = bt_make(b1, sizeof(b1), 2, 2, 0, pid, 0, 3);
    size_t n2 = bt_make(b2, sizeof(b2), 4, 3, 0, pid, 0, 5);
    size_t n3 = bt_make(b3, sizeof(b3), 1, 4, 0, pid, 0, 12);
    cr_assert_eq(kafka_produce0(&c, b0, n0, &offset), KAFKA_ERR_NOT_LEADER_OR_FOLLOWER);
    cr_assert_eq(kafka_fetch0(&c, epoch, &high_watermark), KAFKA_ERR_NOT_LEADER_OR_FOLLOWER);
    cr_assert_eq(kafka_list0(&c), KAFKA_ERR_NOT_LEADER_OR_FOLLOWER);
    kc_close(&c);

    kc_connect_host(&c, C.b[leader].host, C.b[leader].kafka_port);
    cr_assert_eq(kafka_produce0(&c, b0, n0, &offset), KAFKA_ERR_NONE);
    cr_assert_eq(offset, 0);
    cr_assert_eq(kafka_produce0(&c, b1, n1, &offset), KAFKA_ERR_NONE);
    cr_assert_eq(offset, 3);
    kc_close(&c);

    cs_broker_stop(&C, leader);
    int64_t give_up = clock_mono_ms() + SETUP_TIMEOUT_MS;
    do {
        cr_assert_lt(clock_mono_ms(), give_up, "no new leader");
        sleep_ms(100);
        settle(&v, false, "a new leader");
    } while (v.leader[0] == (int32_t)leader + 1);
    cr_assert_gt(v.epoch[0], epoch, "a new leader, a new epoch");
    size_t next = (size_t)v.leader[0] - 1;
    kafka_agrees(next, &v);
    kafka_agrees(3 - leader - next, &v);

    kc_connect_host(&c, C.b[next].host, C.b[next].kafka_port);
    int32_t end_epoch;
    cr_assert_eq(kafka_epoch_end0(&c, v.epoch[0], epoch, &offset, &end_epoch), KAFKA_ERR_NONE);
    cr_assert_eq(offset, 5, "the old epoch ends where its records do");
    cr_assert_eq(end_epoch, epoch);
    cr_assert_eq(kafka_epoch_end0(&c, epoch, epoch, &offset, &end_epoch),
                 KAFKA_ERR_FENCED_LEADER_EPOCH);
    cr_assert_eq(kafka_fetch0(&c, epoch, &high_watermark), KAFKA_ERR_FENCED_LEADER_EPOCH);
    /* The old leader's last batch again (its answer lost, say): a copy. */
    cr_assert_eq(kafka_produce0(&c, b1, n1, &offset), KAFKA_ERR_NONE);
    cr_assert_eq(offset, 3, "the copy's first offset");
    cr_assert_eq(kafka_produce0(&c, b2, n2, &offset), KAFKA_ERR_NONE);
    cr_assert_eq(offset, 5);
    cr_assert_eq(kafka_produce0(&c, b3, n3, &offset), KAFKA_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    cr_assert_eq(kafka_fetch0(&c, v.epoch[0], &high_watermark), KAFKA_ERR_NONE);
    cr_assert_eq(high_watermark, 9, "nothing twice");
    kc_close(&c);
}

/* Live brokers in nagare's own Metadata, asked of a running broker (0
 * when it does not answer). */
static size_t nagare_brokers(void)
{
    nagare_admin *a = admin_of(live_broker());
    const struct nagare_cluster_info *info = NULL;
    size_t n = 0;
    if (nagare_cluster_describe(a, &info) == 0) {
        n = info->broker_count;
        nagare_cluster_info_free(a, info);
    }
    nagare_admin_destroy(a);
    return n;
}

/* A partition whose leader Kafka's clients cannot reach (it has no Kafka
 * address: not live, or without a Kafka listener) is LEADER_NOT_AVAILABLE
 * with no leader and its epoch, as Kafka's brokers answer, so clients
 * look again; a leader id that no broker of the answer carries leaves
 * kafka-python waiting for its next periodic refresh. A broker's lease
 * ending shows this for a moment, before the controller moves its
 * partitions; here broker 3 has no Kafka listener and leads a partition
 * of a topic of one replica, for as long as the test looks. */
Test(kafka_cluster, a_leader_without_a_kafka_address_is_not_available, .fini = teardown,
     .timeout = 300)
{
    cs_need_cluster();
    cs_init(&C, 3);
    C.start_count = 2;
    cs_start(&C);
    cs_set(&C, "kafka_listen=off"); /* for broker 3 only, started now */
    cs_broker_start(&C, 2);
    cr_assert_eq(C.b[2].kafka_port, 0, "broker 3 has no Kafka listener");
    int64_t give_up = clock_mono_ms() + SETUP_TIMEOUT_MS;
    while (nagare_brokers() < 3) { /* the controller places over live brokers */
        cr_assert_lt(clock_mono_ms(), give_up, "broker 3 never registered");
        sleep_ms(100);
    }
    create_topic(1);
    struct view v;
    settle(&v, false, "the topic led");
    for (int32_t p = 0; p < CLIENT_PARTITIONS; p++) {
        struct kafka_part got;
        do { /* until broker 1 has the topic */
            cr_assert_lt(clock_mono_ms(), give_up, "broker 1 never listed the topic");
            got = kafka_partition(0, p);
        } while (got.err == KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION);
        if (v.leader[p] == C.b[2].id) {
            cr_assert_eq(got.err, KAFKA_ERR_LEADER_NOT_AVAILABLE, "partition %d: error %d", p,
                         got.err);
            cr_assert_eq(got.leader, -1, "partition %d: leader %d", p, got.leader);
        } else {
            cr_assert_eq(got.err, KAFKA_ERR_NONE, "partition %d: error %d", p, got.err);
            cr_assert_eq(got.leader, v.leader[p]);
        }
        cr_assert_eq(got.epoch, v.epoch[p], "partition %d's epoch", p);
    }
    bool led_by_3 = v.leader[0] == 3 || v.leader[1] == 3 || v.leader[2] == 3;
    cr_assert(led_by_3, "broker 3 leads a partition (leaders %d %d %d)", v.leader[0], v.leader[1],
              v.leader[2]);
}
