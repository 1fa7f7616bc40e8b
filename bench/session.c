/*
 * bench/session.c — the command line, broker, topic and warm-up shared by
 * produce, consume and e2e (report.c prints the results).
 */
#include "bench/session.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/args.h"
#include "client/nagare.h"

/* Admin calls (create, describe, delete) wait at most this long. */
#define SESSION_ADMIN_MS 30000
/* Upper bounds of options, each far beyond a sensible run. */
#define SESSION_RECORDS_MAX (UINT64_C(1) << 40)
#define SESSION_RECORD_BYTES_MAX (64u << 20)
#define SESSION_PARTITIONS_MAX 4096
#define SESSION_RATE_MAX 1e9
#define SESSION_SECONDS_MAX 86400.0
/* After the warm-up: the broker counts as settled below 5% of a core over
 * 300 ms (the clock tick is 10 ms), waiting 10 s at most. */
#define SESSION_SETTLE_PCT 5.0
#define SESSION_SETTLE_STEP_MS 300
#define SESSION_SETTLE_MAX_MS 10000

static const char *const cmd_names[] = {"produce", "consume", "e2e"};

const char *session_cmd_name(enum session_cmd cmd)
{
    ASSERT((size_t)cmd < ARRAY_LEN(cmd_names));
    return cmd_names[cmd];
}

/* ---- usage ---- */

static void usage(enum session_cmd cmd, FILE *out)
{
    static const char *const what[] = {
        "produce N records of S bytes over P partitions from K producers",
        "read N records from the start with K consumers (filling the topic first\n"
        "  when it holds fewer)",
        "produce at a fixed rate while consuming; latency from each record's\n"
        "  intended send time to its receipt",
    };
    fprintf(out, "usage: nagare-bench %s [options]\n  %s\n\n", cmd_names[cmd], what[cmd]);
    fprintf(out,
            "broker:\n"
            "  --broker HOST:PORT      a running broker (127.0.0.1:7420)\n"
            "  --kafka-broker HOST:PORT  its Kafka listener (127.0.0.1:9092)\n"
            "  --broker-pid PID        read its CPU and memory from /proc/PID\n"
            "  --spawn-broker PATH     start this nagared on a fresh directory and an\n"
            "                          ephemeral loopback port; stopped and removed at the end\n"
            "  --broker-dir DIR        where the spawned broker's directory goes (/tmp)\n"
            "  --broker-set KEY=VALUE  --set for the spawned broker (repeatable)\n"
            "  --idle-connections N    hold N idle TCP connections to the broker open (0)\n"
            "  --tls                   TLS to the broker (its listeners listen_tls,\n"
            "                          kafka_listen_tls), verifying its certificate\n"
            "  --tls-ca FILE           ...against these CAs (the system's); implies --tls\n"
            "  --tls-cert FILE, --tls-key FILE  a client certificate (mutual TLS)\n"
            "topic and records:\n"
            "  --topic NAME            (nagare-bench); created when missing\n"
            "  --partitions P          for a topic created here (4)\n"
            "  --replication-factor N  for a topic created here, in a cluster (the\n"
            "                          broker's default); --broker may list several brokers\n"
            "  --records N             (%s)\n"
            "  --record-bytes S        value bytes; keys are null (1024)\n"
            "  --keep-topic            do not delete a topic created here\n",
            cmd == SESSION_E2E ? "rate x seconds" : "1000000");
    fprintf(out,
            "producers:\n"
            "  --producers K           threads, each with its own producer (1)\n"
            "  --batch-bytes B         (65536)\n"
            "  --linger-ms MS          (%s)\n"
            "  --acks 0|1|all          (1)\n"
            "  --compression none|zstd (none)\n"
            "  --no-idempotence        producers are idempotent by default\n"
            "  --inflight N            produce requests in flight per producer (5)\n"
            "  --buffer-mib N          records a producer may hold (64)\n"
            "  --rate R                records/s over all producers, on a fixed schedule;\n"
            "                          latency counts from the intended send time (%s)\n",
            cmd == SESSION_E2E ? "0" : "5", cmd == SESSION_E2E ? "10000" : "0: unlimited");
    fprintf(out,
            "consumers:\n"
            "  --consumers K           threads, each assigned partitions k, k+K, ... (1)\n"
            "  --fetch-bytes B         bytes per fetch request (the client's, 16 MiB)\n"
            "  --partition-fetch-bytes B  per partition per fetch (the client's, 1 MiB)\n"
            "  --fetches N             fetch requests in flight per consumer (the client's, 2)\n"
            "run:\n"
            "  --protocol P            nagare (libnagare), kafka (librdkafka on the Kafka\n"
            "                          listener) or both, alternately in one run (nagare)\n"
            "  --rounds R              every phase R times per protocol, up to %d (1)\n"
            "  --kafka-client C        librdkafka, or direct: a client on nagare's own Kafka\n"
            "                          codec, doing libnagare's work (librdkafka)\n"
            "  --seconds S             e2e: how long to produce at the rate (10)\n"
            "  --warmup-seconds S      e2e: latencies of the first S seconds not counted (1)\n"
            "  --warmup-mib N          untimed: N MiB into a scratch topic, deleted, first\n"
            "                          (%s)\n"
            "  --json                  one JSON object instead of the table\n"
            "  --quiet                 no progress lines\n",
            SESSION_ROUNDS_MAX, cmd == SESSION_E2E ? "0" : "256");
}

/* ---- parsing ---- */

enum {
    O_BROKER = 1,
    O_KAFKA_BROKER,
    O_PROTOCOL,
    O_ROUNDS,
    O_KAFKA_CLIENT,
    O_BROKER_PID,
    O_SPAWN,
    O_BROKER_DIR,
    O_BROKER_SET,
    O_IDLE,
    O_TOPIC,
    O_PARTITIONS,
    O_REPLICATION,
    O_RECORDS,
    O_RECORD_BYTES,
    O_KEEP,
    O_PRODUCERS,
    O_BATCH,
    O_LINGER,
    O_ACKS,
    O_COMPRESSION,
    O_NO_IDEM,
    O_INFLIGHT,
    O_RATE,
    O_CONSUMERS,
    O_FETCH,
    O_PART_FETCH,
    O_FETCHES,
    O_BUFFER,
    O_SECONDS,
    O_WARMUP_S,
    O_WARMUP_MIB,
    O_JSON,
    O_QUIET,
    O_TLS,
    O_TLS_CA,
    O_TLS_CERT,
    O_TLS_KEY,
    O_HELP,
};

static const struct option longopts[] = {
    {"broker", required_argument, NULL, O_BROKER},
    {"kafka-broker", required_argument, NULL, O_KAFKA_BROKER},
    {"protocol", required_argument, NULL, O_PROTOCOL},
    {"rounds", required_argument, NULL, O_ROUNDS},
    {"kafka-client", required_argument, NULL, O_KAFKA_CLIENT},
    {"broker-pid", required_argument, NULL, O_BROKER_PID},
    {"spawn-broker", required_argument, NULL, O_SPAWN},
    {"broker-dir", required_argument, NULL, O_BROKER_DIR},
    {"broker-set", required_argument, NULL, O_BROKER_SET},
    {"idle-connections", required_argument, NULL, O_IDLE},
    {"topic", required_argument, NULL, O_TOPIC},
    {"partitions", required_argument, NULL, O_PARTITIONS},
    {"replication-factor", required_argument, NULL, O_REPLICATION},
    {"records", required_argument, NULL, O_RECORDS},
    {"record-bytes", required_argument, NULL, O_RECORD_BYTES},
    {"keep-topic", no_argument, NULL, O_KEEP},
    {"producers", required_argument, NULL, O_PRODUCERS},
    {"batch-bytes", required_argument, NULL, O_BATCH},
    {"linger-ms", required_argument, NULL, O_LINGER},
    {"acks", required_argument, NULL, O_ACKS},
    {"compression", required_argument, NULL, O_COMPRESSION},
    {"no-idempotence", no_argument, NULL, O_NO_IDEM},
    {"inflight", required_argument, NULL, O_INFLIGHT},
    {"rate", required_argument, NULL, O_RATE},
    {"consumers", required_argument, NULL, O_CONSUMERS},
    {"fetch-bytes", required_argument, NULL, O_FETCH},
    {"partition-fetch-bytes", required_argument, NULL, O_PART_FETCH},
    {"fetches", required_argument, NULL, O_FETCHES},
    {"buffer-mib", required_argument, NULL, O_BUFFER},
    {"seconds", required_argument, NULL, O_SECONDS},
    {"warmup-seconds", required_argument, NULL, O_WARMUP_S},
    {"warmup-mib", required_argument, NULL, O_WARMUP_MIB},
    {"json", no_argument, NULL, O_JSON},
    {"quiet", no_argument, NULL, O_QUIET},
    {"tls", no_argument, NULL, O_TLS},
    {"tls-ca", required_argument, NULL, O_TLS_CA},
    {"tls-cert", required_argument, NULL, O_TLS_CERT},
    {"tls-key", required_argument, NULL, O_TLS_KEY},
    {"help", no_argument, NULL, O_HELP},
    {NULL, 0, NULL, 0},
};

static void opts_default(struct session_opts *o, enum session_cmd cmd)
{
    *o = (struct session_opts){
        .cmd = cmd,
        .rounds = 1,
        .broker = "127.0.0.1:7420",
        .kafka_broker = "127.0.0.1:9092",
        .spawn_parent = "/tmp",
        .topic = "nagare-bench",
        .partitions = 4,
        .replication_factor = -1,
        .records = 1000000,
        .record_bytes = 1024,
        .producers = 1,
        .consumers = 1,
        .batch_bytes = 65536,
        .linger_ms = 5,
        .acks = 1,
        .idempotent = true,
        .inflight = 5,
        .seconds = 10,
        .warmup_s = 1,
        .warmup_mib = 256,
    };
    if (cmd == SESSION_E2E) {
        o->rate = 10000;
        o->linger_ms = 0;
        o->warmup_mib = 0;
        o->records = 0; /* rate x seconds unless given */
    }
}

static bool apply_broker_opt(struct session_opts *o, int opt, const char *arg)
{
    uint32_t v = 0;
    switch (opt) {
    case O_BROKER:
        o->broker = arg;
        return arg[0] != '\0';
    case O_KAFKA_BROKER:
        o->kafka_broker = arg;
        return arg[0] != '\0';
    case O_PROTOCOL:
        o->protocols = strcmp(arg, "kafka") == 0  ? SESSION_KAFKA
                       : strcmp(arg, "both") == 0 ? SESSION_BOTH
                                                  : SESSION_NAGARE;
        return strcmp(arg, "nagare") == 0 || o->protocols != SESSION_NAGARE;
    case O_ROUNDS:
        return args_u32(arg, 1, SESSION_ROUNDS_MAX, &o->rounds);
    case O_KAFKA_CLIENT:
        o->kafka_client = strcmp(arg, "direct") == 0 ? LOAD_KAFKA_DIRECT : LOAD_KAFKA_LIBRDKAFKA;
        return strcmp(arg, "direct") == 0 || strcmp(arg, "librdkafka") == 0;
    case O_BROKER_PID:
        if (!args_u32(arg, 1, INT32_MAX, &v)) {
            return false;
        }
        o->broker_pid = (int)v;
        return true;
    case O_SPAWN:
        o->spawn_path = arg;
        return arg[0] != '\0';
    case O_BROKER_DIR:
        o->spawn_parent = arg;
        return arg[0] != '\0';
    case O_BROKER_SET:
        if (o->set_count >= BENCH_BROKER_SETS_MAX || strchr(arg, '=') == NULL) {
            return false;
        }
        o->sets[o->set_count++] = arg;
        return true;
    case O_IDLE:
        return args_u32(arg, 0, SESSION_IDLE_MAX, &o->idle_connections);
    case O_TLS:
        o->tls.enabled = true;
        return true;
    case O_TLS_CA:
    case O_TLS_CERT:
    case O_TLS_KEY:
        *(opt == O_TLS_CA     ? &o->tls.ca_file
          : opt == O_TLS_CERT ? &o->tls.cert_file
                              : &o->tls.key_file) = arg;
        o->tls.enabled = true;
        return arg[0] != '\0';
    default:
        return false;
    }
}

static bool apply_producer_opt(struct session_opts *o, int opt, const char *arg)
{
    uint32_t v = 0;
    switch (opt) {
    case O_PRODUCERS:
        return args_u32(arg, 1, LOAD_THREADS_MAX, &o->producers);
    case O_BATCH:
        if (!args_u32(arg, 1024, 256u << 20, &v)) {
            return false;
        }
        o->batch_bytes = v;
        return true;
    case O_LINGER:
        return args_u32(arg, 0, 60000, &o->linger_ms);
    case O_ACKS:
        o->acks = strcmp(arg, "all") == 0 ? -1 : strcmp(arg, "1") == 0 ? 1 : 0;
        return strcmp(arg, "all") == 0 || strcmp(arg, "1") == 0 || strcmp(arg, "0") == 0;
    case O_COMPRESSION:
        o->compression =
            strcmp(arg, "zstd") == 0 ? NAGARE_COMPRESSION_ZSTD : NAGARE_COMPRESSION_NONE;
        return strcmp(arg, "zstd") == 0 || strcmp(arg, "none") == 0;
    case O_NO_IDEM:
        o->idempotent = false;
        return true;
    case O_INFLIGHT:
        return args_u32(arg, 1, 1024, &o->inflight);
    case O_BUFFER:
        return args_u32(arg, 1, 1u << 16, &o->buffer_mib);
    case O_RATE:
        return args_double(arg, 0, SESSION_RATE_MAX, &o->rate);
    default:
        return apply_broker_opt(o, opt, arg);
    }
}

/* Applies one option; false when its value is out of range. */
static bool apply_opt(struct session_opts *o, int opt, const char *arg)
{
    uint32_t v = 0;
    switch (opt) {
    case O_TOPIC:
        o->topic = arg;
        return arg[0] != '\0' && strlen(arg) < 200;
    case O_PARTITIONS:
        if (!args_u32(arg, 1, SESSION_PARTITIONS_MAX, &v)) {
            return false;
        }
        o->partitions = (int32_t)v;
        return true;
    case O_REPLICATION:
        if (!args_u32(arg, 1, INT16_MAX, &v)) { /* the broker judges it */
            return false;
        }
        o->replication_factor = (int16_t)v;
        return true;
    case O_RECORDS:
        return args_u64(arg, 1, SESSION_RECORDS_MAX, &o->records);
    case O_RECORD_BYTES:
        return args_u32(arg, 0, SESSION_RECORD_BYTES_MAX, &o->record_bytes);
    case O_KEEP:
        o->keep_topic = true;
        return true;
    case O_CONSUMERS:
        return args_u32(arg, 1, LOAD_THREADS_MAX, &o->consumers);
    case O_FETCH:
        return args_u32(arg, 1024, 1u << 30, &o->fetch_bytes_max);
    case O_PART_FETCH:
        return args_u32(arg, 1024, 1u << 30, &o->partition_fetch_bytes_max);
    case O_FETCHES:
        return args_u32(arg, 1, 64, &o->fetches_inflight);
    case O_SECONDS:
        return args_double(arg, 0.1, SESSION_SECONDS_MAX, &o->seconds);
    case O_WARMUP_S:
        return args_double(arg, 0, SESSION_SECONDS_MAX, &o->warmup_s);
    case O_WARMUP_MIB:
        return args_u64(arg, 0, 1u << 20, &o->warmup_mib);
    case O_JSON:
        o->json = true;
        return true;
    case O_QUIET:
        o->quiet = true;
        return true;
    default:
        return apply_producer_opt(o, opt, arg);
    }
}

static const char *opt_name(int opt)
{
    for (const struct option *lo = longopts; lo->name != NULL; lo++) {
        if (lo->val == opt) {
            return lo->name;
        }
    }
    return "?";
}

/* Checks between options; prints what is wrong. */
static bool opts_check(struct session_opts *o)
{
    const char *cmd = cmd_names[o->cmd];
    if (o->cmd == SESSION_E2E) {
        if (o->rate <= 0) {
            fprintf(stderr, "nagare-bench %s: needs --rate > 0\n", cmd);
            return false;
        }
        if (o->records == 0) {
            o->records = (uint64_t)(o->rate * o->seconds + 0.5);
        }
    }
    if (o->cmd == SESSION_E2E && o->record_bytes < LOAD_STAMP_BYTES) {
        fprintf(stderr, "nagare-bench %s: --record-bytes must be >= %d (the send time)\n", cmd,
                LOAD_STAMP_BYTES);
        return false;
    }
    if (o->spawn_path != NULL && o->broker_pid != 0) {
        fprintf(stderr, "nagare-bench %s: --spawn-broker and --broker-pid exclude each other\n",
                cmd);
        return false;
    }
    if (o->tls.enabled && o->protocols != SESSION_NAGARE && o->kafka_client == LOAD_KAFKA_DIRECT) {
        fprintf(stderr, "nagare-bench %s: --kafka-client direct speaks no TLS; use librdkafka\n",
                cmd);
        return false;
    }
    bool kafka_producers = o->protocols != SESSION_NAGARE && o->cmd != SESSION_CONSUME;
    if (o->protocols != SESSION_NAGARE && o->kafka_client == LOAD_KAFKA_DIRECT &&
        o->cmd == SESSION_E2E) {
        fprintf(stderr,
                "nagare-bench %s: --kafka-client direct has no linger: produce and "
                "consume only\n",
                cmd);
        return false;
    }
    if (kafka_producers && o->kafka_client == LOAD_KAFKA_LIBRDKAFKA && o->idempotent &&
        o->acks != -1) {
        fprintf(stderr,
                "nagare-bench %s: an idempotent Kafka producer needs --acks all (librdkafka, "
                "as Kafka's clients): pass --acks all or --no-idempotence\n",
                cmd);
        return false;
    }
    if (o->set_count > 0 && o->spawn_path == NULL) {
        fprintf(stderr, "nagare-bench %s: --broker-set needs --spawn-broker\n", cmd);
        return false;
    }
    return true;
}

/* Parses argv (argv[0] is the subcommand) into s->o with the command's
 * defaults. Returns 0, 1 after printing --help, 2 after a usage error. */
static int session_parse(struct session *s, enum session_cmd cmd, int argc, char **argv)
{
    *s = (struct session){0};
    struct session_opts *o = &s->o;
    opts_default(o, cmd);
    optind = 1;
    int opt;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (opt == O_HELP || opt == 'h') {
            usage(cmd, stdout);
            return 1;
        }
        if (opt == '?' || !apply_opt(o, opt, optarg)) {
            if (opt != '?') {
                fprintf(stderr, "nagare-bench %s: bad value '%s' for --%s\n", cmd_names[cmd],
                        optarg, opt_name(opt));
            }
            usage(cmd, stderr);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "nagare-bench %s: unexpected argument '%s'\n", cmd_names[cmd],
                argv[optind]);
        return 2;
    }
    return opts_check(o) ? 0 : 2;
}

/* ---- broker and topic ---- */

static int admin_open(const struct session *s, nagare_admin **a)
{
    int rc = nagare_admin_new_tls(s->broker.bootstrap, SESSION_ADMIN_MS, &s->o.tls, a);
    if (rc != 0) {
        fprintf(stderr, "nagare-bench: connect to %s: %s\n", s->broker.bootstrap,
                nagare_strerror(rc));
    }
    return rc;
}

/* What the broker holds of a topic: partitions, replication factor. */
struct topic_shape {
    int32_t partitions;
    int16_t replication_factor; /* -1: the broker does not say (Metadata before v2) */
};

static int topic_describe(nagare_admin *a, const char *name, struct topic_shape *out)
{
    const struct nagare_topic_info *ti = NULL;
    size_t n = 0;
    int rc = nagare_topics_describe(a, name, &ti, &n);
    if (rc != 0) {
        return rc;
    }
    if (n == 1) {
        out->partitions = (int32_t)ti[0].partition_count;
        out->replication_factor = ti[0].config.replication_factor;
    }
    nagare_topics_free(a, ti);
    return n == 1 ? 0 : -NAGARE_EPROTO;
}

/* Makes sure the topic exists (created with partitions and the session's
 * replication factor when missing; *created then) and says what it is. */
static int topic_ensure(struct session *s, const char *name, int32_t partitions, bool *created,
                        struct topic_shape *out)
{
    nagare_admin *a = NULL;
    int rc = admin_open(s, &a);
    if (rc != 0) {
        return rc;
    }
    *created = false;
    rc = topic_describe(a, name, out);
    if (rc == -NAGARE_EUNKNOWN_TOPIC) {
        struct nagare_topic_config tc;
        nagare_topic_config_default(&tc);
        tc.partitions = partitions;
        tc.replication_factor = s->o.replication_factor;
        rc = nagare_topic_create(a, name, &tc);
        *created = rc == 0;
        rc = rc == 0 ? topic_describe(a, name, out) : rc; /* create waited for it */
    }
    if (rc != 0) {
        fprintf(stderr, "nagare-bench: topic %s: %s\n", name, nagare_strerror(rc));
    }
    nagare_admin_destroy(a);
    return rc;
}

static int topic_delete(struct session *s, const char *name)
{
    nagare_admin *a = NULL;
    int rc = admin_open(s, &a);
    rc = rc == 0 ? nagare_topic_delete(a, name) : rc;
    if (rc != 0) {
        fprintf(stderr, "nagare-bench: delete topic %s: %s\n", name, nagare_strerror(rc));
    }
    nagare_admin_destroy(a);
    return rc;
}

int session_topic_records(struct session *s, uint64_t *records_out)
{
    nagare_admin *a = NULL;
    int rc = admin_open(s, &a);
    const struct nagare_topic_info *ti = NULL;
    size_t n = 0;
    rc = rc == 0 ? nagare_topics_describe(a, s->o.topic, &ti, &n) : rc;
    *records_out = 0;
    if (rc == 0) {
        for (size_t i = 0; n == 1 && i < ti[0].partition_count; i++) {
            const struct nagare_partition_info *p = &ti[0].partitions[i];
            *records_out += (uint64_t)(p->offset_latest - p->offset_earliest);
        }
        nagare_topics_free(a, ti);
    }
    nagare_admin_destroy(a);
    return rc;
}

static int broker_start(struct session *s)
{
    const struct session_opts *o = &s->o;
    int rc;
    if (o->spawn_path != NULL) {
        (void)bench_nofile_raise(); /* the broker inherits it: idle connections */
        rc = bench_broker_spawn(&s->broker, o->spawn_path, o->spawn_parent, o->sets, o->set_count);
    } else {
        rc = bench_broker_attach(&s->broker, o->broker, o->kafka_broker, o->broker_pid);
    }
    s->broker_up = rc == 0;
    if (rc != 0) {
        fprintf(stderr, "nagare-bench: broker: %s\n", nagare_strerror(rc));
    } else if (o->protocols != SESSION_NAGARE && s->broker.kafka_bootstrap[0] == '\0') {
        fprintf(stderr, "nagare-bench: the broker serves no Kafka clients (kafka_listen = off)\n");
        rc = -NAGARE_EBADARG;
    }
    return rc;
}

/* Starts or names the broker, makes sure the topic exists (creating it
 * with o.partitions), and opens the idle connections. Returns 0 or an
 * error (printed). */
static int session_open(struct session *s)
{
    int rc = broker_start(s);
    struct topic_shape shape = {0};
    rc = rc == 0 ? topic_ensure(s, s->o.topic, s->o.partitions, &s->topic_created, &shape) : rc;
    s->partitions = shape.partitions;
    s->replication_factor = shape.replication_factor;
    if (rc == 0 && s->o.idle_connections > 0) {
        s->idle_fds = calloc(s->o.idle_connections, sizeof(*s->idle_fds));
        rc = s->idle_fds == NULL ? -ENOMEM
                                 : bench_idle_open(&s->broker, s->o.idle_connections, s->idle_fds);
        s->idle_open = rc == 0 ? s->o.idle_connections : 0;
        if (rc != 0) {
            fprintf(stderr, "nagare-bench: %u idle connections: %s\n", s->o.idle_connections,
                    nagare_strerror(rc));
        }
    }
    return rc;
}

void session_load_cfg(const struct session *s, enum load_protocol p, struct load_cfg *cfg)
{
    const struct session_opts *o = &s->o;
    *cfg = (struct load_cfg){
        .protocol = p,
        .kafka_client = o->kafka_client,
        .bootstrap = p == LOAD_KAFKA ? s->broker.kafka_bootstrap : s->broker.bootstrap,
        .tls = &o->tls,
        .topic = o->topic,
        .partitions = s->partitions,
        .record_bytes = o->record_bytes,
        .producers = o->producers,
        .records = o->records,
        .batch_bytes = o->batch_bytes,
        .linger_ms = o->linger_ms,
        .acks = o->acks,
        .compression = o->compression,
        .idempotent = o->idempotent,
        .inflight = o->inflight,
        .rate = o->rate,
        .consumers = 0,
        .fetch_bytes_max = o->fetch_bytes_max,
        .partition_fetch_bytes_max = o->partition_fetch_bytes_max,
        .fetches_inflight = o->fetches_inflight,
        .buffer_bytes_max = (size_t)o->buffer_mib << 20,
        .broker_pid = s->broker.pid,
        .label = cmd_names[o->cmd],
        .progress = !o->quiet,
    };
}

/* Waits until the broker is idle (under SESSION_SETTLE_PCT of a core over
 * SESSION_SETTLE_STEP_MS), at most SESSION_SETTLE_MAX_MS: a deleted topic's
 * partitions are closed, and their page cache dropped, by the broker's
 * housekeeping after the DeleteTopics answer, which is no part of the next
 * phase. Without a broker pid it waits SESSION_SETTLE_STEP_MS once. */
static void settle(const struct session *s)
{
    struct timespec step = {.tv_sec = 0, .tv_nsec = SESSION_SETTLE_STEP_MS * 1000000L};
    struct sample_proc a;
    if (s->broker.pid <= 0 || sample_proc_take(s->broker.pid, &a) != 0) {
        (void)nanosleep(&step, NULL);
        return;
    }
    for (int waited = 0; waited < SESSION_SETTLE_MAX_MS; waited += SESSION_SETTLE_STEP_MS) {
        (void)nanosleep(&step, NULL);
        struct sample_proc b;
        if (sample_proc_take(s->broker.pid, &b) != 0) {
            return;
        }
        double pct = 100.0 * (b.cpu_s - a.cpu_s) / (SESSION_SETTLE_STEP_MS / 1000.0);
        if (pct < SESSION_SETTLE_PCT) {
            return;
        }
        a = b;
    }
}

/* Untimed: o.warmup_mib of records with the run's settings into a scratch
 * topic, which is then deleted. Returns 0 or an error (printed). */
static int session_warmup(struct session *s)
{
    if (s->o.warmup_mib == 0) {
        return 0;
    }
    char name[256];
    snprintf(name, sizeof(name), "%s.warmup", s->o.topic);
    bool created = false;
    struct topic_shape shape = {0};
    int rc = topic_ensure(s, name, s->partitions, &created, &shape);
    struct load_cfg cfg;
    session_load_cfg(s, s->o.protocols == SESSION_KAFKA ? LOAD_KAFKA : LOAD_NAGARE, &cfg);
    cfg.topic = name;
    cfg.partitions = shape.partitions;
    cfg.rate = 0;
    cfg.progress = false;
    cfg.records = s->o.warmup_mib * (1u << 20) / (s->o.record_bytes > 0 ? s->o.record_bytes : 1);
    cfg.records = cfg.records == 0 ? 1 : cfg.records;
    struct load_result r;
    rc = rc == 0 ? load_result_init(&r) : rc;
    if (rc == 0) {
        rc = load_run(&cfg, &r);
        load_result_fini(&r);
        if (rc != 0) {
            fprintf(stderr, "nagare-bench: warm-up: %s\n", nagare_strerror(rc));
        }
    }
    int rc_del = created ? topic_delete(s, name) : 0;
    settle(s);
    return rc != 0 ? rc : rc_del;
}

int session_phase(struct session *s, const char *name, const struct load_cfg *cfg)
{
    ASSERT(s->phase_count < SESSION_PHASES_MAX);
    struct session_phase *ph = &s->phases[s->phase_count];
    int rc = load_result_init(&ph->r);
    if (rc != 0) {
        return rc;
    }
    ph->name = name;
    ph->protocol = cfg->protocol;
    ph->producing = cfg->records > 0 && cfg->producers > 0;
    ph->consuming = cfg->consumers > 0;
    ph->stamped = cfg->stamp;
    ph->rate = cfg->rate;
    s->phase_count++;
    rc = load_run(cfg, &ph->r);
    if (rc != 0) {
        fprintf(stderr, "nagare-bench %s: %s: %s\n", cmd_names[s->o.cmd], name,
                nagare_strerror(rc));
    }
    return rc;
}

/* Closes what open made and frees the results. Returns 0, or the first
 * error of stopping the broker or deleting the topic. */
static int session_close(struct session *s)
{
    int rc = 0;
    if (s->idle_open > 0) {
        bench_idle_close(s->idle_fds, s->idle_open);
        s->idle_open = 0;
    }
    free(s->idle_fds);
    s->idle_fds = NULL;
    if (s->topic_created && !s->o.keep_topic && s->o.spawn_path == NULL) {
        rc = topic_delete(s, s->o.topic);
    }
    if (s->broker_up) {
        int rc_stop = bench_broker_stop(&s->broker);
        rc = rc != 0 ? rc : rc_stop;
        s->broker_up = false;
    }
    for (uint32_t i = 0; i < s->phase_count; i++) {
        load_result_fini(&s->phases[i].r);
    }
    s->phase_count = 0;
    return rc;
}

/* Runs every round: each protocol the session measures, once per round. */
static int session_rounds(struct session *s, int (*run)(struct session *s, enum load_protocol p))
{
    int rc = 0;
    for (uint32_t r = 0; rc == 0 && r < s->o.rounds && !load_interrupted(); r++) {
        enum load_protocol order[2] = {LOAD_NAGARE, LOAD_KAFKA};
        uint32_t n = 2;
        if (s->o.protocols != SESSION_BOTH) {
            order[0] = s->o.protocols == SESSION_KAFKA ? LOAD_KAFKA : LOAD_NAGARE;
            n = 1;
        } else if (r % 2 == 1) {
            order[0] = LOAD_KAFKA;
            order[1] = LOAD_NAGARE;
        }
        for (uint32_t i = 0; rc == 0 && i < n && !load_interrupted(); i++) {
            rc = run(s, order[i]);
        }
    }
    return rc;
}

int session_main(enum session_cmd cmd, int argc, char **argv,
                 int (*run)(struct session *s, enum load_protocol p))
{
    struct session s;
    int rc = session_parse(&s, cmd, argc, argv);
    if (rc != 0) {
        return rc == 1 ? 0 : 2;
    }
    rc = session_open(&s);
    rc = rc == 0 ? session_warmup(&s) : rc;
    rc = rc == 0 ? session_rounds(&s, run) : rc;
    if (s.phase_count > 0) {
        session_report(&s, stdout);
    }
    int rc_close = session_close(&s);
    return rc == 0 && rc_close == 0 ? 0 : 1;
}
