/*
 * tests/test_kafka_cluster.c — the Kafka listener in a cluster of three
 * brokers: each registers its Kafka address, and any broker names the
 * group coordinator (the leader of __offsets/0) at its Kafka address.
 * Skipped, saying why, when the machine cannot run a cluster.
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
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "client/nagare.h"
#include "net/kafka/codec.h"
#include "net/kafka/errors.h"
#include "tests/cluster_support.h"
#include "tests/kafka_client_support.h"

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

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

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

/* CLIENT_TOPIC's leaders in nagare's own Metadata (its own protocol),
 * asked of a running broker; true once every partition has a leader and,
 * when in_sync, every replica is in sync. */
static bool nagare_leaders(int32_t leaders[CLIENT_PARTITIONS], bool in_sync)
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
            leaders[p->partition] = p->leader;
            settled = settled && p->leader > 0 && (!in_sync || p->isr_count == p->replica_count);
            found++;
        }
        nagare_cluster_info_free(a, info);
    }
    nagare_admin_destroy(a);
    return found == CLIENT_PARTITIONS && settled;
}

/* Waits until every partition has a leader and, when in_sync, its whole
 * replica set in sync; returns the leaders. */
static void settle(int32_t leaders[CLIENT_PARTITIONS], bool in_sync, const char *why)
{
    int64_t give_up = clock_mono_ms() + SETUP_TIMEOUT_MS;
    while (!nagare_leaders(leaders, in_sync)) {
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
    int32_t before[CLIENT_PARTITIONS], after[CLIENT_PARTITIONS], said[CLIENT_PARTITIONS];
    settle(before, true, "before the client's metadata");
    bool broker_seen[3] = {false};
    bool partition_seen[CLIENT_PARTITIONS] = {false};
    char line[LINE_BYTES];
    for (client_hear(k, line); strcmp(line, "metadata") != 0; client_hear(k, line)) {
        int id, port, p, leader;
        char host[CS_HOST_BYTES];
        if (sscanf(line, "broker %d %15s %d", &id, host, &port) == 3) {
            cr_assert(id >= 1 && id <= 3 && !broker_seen[id - 1], "%s: %s", k->name, line);
            cr_assert_str_eq(host, C.b[id - 1].host, "%s: broker %d's host", k->name, id);
            cr_assert_eq(port, C.b[id - 1].kafka_port, "%s: broker %d's Kafka port", k->name,
                         id);
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
    settle(after, true, "after the client's metadata");
    cr_assert_arr_eq(before, after, sizeof(before), "the leaders moved while the client looked");
    for (size_t i = 0; i < 3; i++) {
        cr_assert(broker_seen[i], "%s: broker %d not listed", k->name, C.b[i].id);
    }
    for (int32_t p = 0; p < CLIENT_PARTITIONS; p++) {
        cr_assert(partition_seen[p], "%s: partition %d not listed", k->name, p);
        cr_assert_eq(said[p], before[p], "%s: partition %d's leader is %d, nagare says %d",
                     k->name, p, said[p], before[p]);
    }
}

/* Waits for "produced N" (n records handed over, acknowledged where the
 * client says so) and for n records committed; returns n. */
static int64_t hear_produced(struct client *k, int64_t more_than)
{
    char line[LINE_BYTES];
    long long n = 0;
    client_hear(k, line);
    cr_assert(sscanf(line, "produced %lld", &n) == 1 && n > more_than, "%s said %s", k->name,
              line);
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
    cs_init(&C, 3);
    /* A stopped follower leaves the in-sync set after this (acks=all waits
     * for it until then): short, for a short run. */
    cs_set(&C, "replica_lag_ms=2000");
    cs_start(&C);
    int64_t give_up = clock_mono_ms() + SETUP_TIMEOUT_MS;
    for (;;) { /* once the brokers see each other, the controller places it */
        nagare_admin *a = admin_of(0);
        struct nagare_topic_config cfg;
        nagare_topic_config_default(&cfg);
        cfg.partitions = CLIENT_PARTITIONS;
        cfg.replication_factor = 3;
        int rc = nagare_topic_create(a, CLIENT_TOPIC, &cfg);
        nagare_admin_destroy(a);
        if (rc == 0 || rc == -NAGARE_ETOPIC_EXISTS) {
            break;
        }
        cr_assert_lt(clock_mono_ms(), give_up, "create: %s", nagare_strerror(rc));
        sleep_ms(200);
    }
    char bootstrap[CS_BROKERS_MAX * (CS_HOST_BYTES + 8)];
    kafka_bootstrap(bootstrap, sizeof(bootstrap));
    struct client k = {.name = name};
    const char *argv[] = {script, name, bootstrap, CLIENT_TOPIC, NULL};
    client_spawn(&k, argv);
    check_client_metadata(&k);

    int32_t leaders[CLIENT_PARTITIONS];
    int64_t n = hear_produced(&k, 0);
    settle(leaders, true, "before the stop");
    size_t stopped = (size_t)leaders[0] - 1;
    cs_broker_stop(&C, stopped);
    client_say(&k, "go");

    n = hear_produced(&k, n);
    cs_broker_start(&C, stopped);
    settle(leaders, true, "the stopped broker back in sync");
    size_t killed = (size_t)leaders[1] - 1;
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
