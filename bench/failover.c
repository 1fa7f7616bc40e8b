/*
 * bench/failover.c — nagare-bench failover (see failover.h): rounds of
 * kill -9 of a partition's leader under a steady acks=all producer.
 */
#include "bench/failover.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <spawn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "base/assert.h"
#include "base/clock.h"
#include "bench/args.h"
#include "client/nagare.h"

extern char **environ;

/* Rounds: far more than a run needs; the results are kept in an array. */
#define FO_ROUNDS_MAX 100
/* Each admin call (connect, describe, create) waits at most this long. */
#define FO_ADMIN_MS 5000
/* The partition's state is asked for this often while a leader is gone
 * and while the killed broker rejoins. */
#define FO_DESCRIBE_EVERY_NS (100 * CLOCK_NS_PER_MS)
/* The producer is pumped in slices this long between checks. */
#define FO_SLICE_NS (10 * CLOCK_NS_PER_MS)
/* A pid file holds one decimal pid and a newline. */
#define FO_PID_FILE_BYTES 32
/* At the end, the producer's last records get this long. */
#define FO_FLUSH_MS 60000
/* The environment variable naming the broker --restart-cmd starts. */
#define FO_RESTART_ENV "NAGARE_BENCH_BROKER_ID"

struct fo_opts {
    const char *bootstrap;
    const char *pid_dir;
    const char *restart_cmd;
    const char *topic;
    int16_t replication_factor;
    uint32_t rounds;
    double rate; /* records/s */
    uint32_t record_bytes;
    double steady_s;   /* producing before each kill */
    double failover_s; /* a round fails when no acknowledgement came by then */
    double rejoin_s;   /* ... or when the killed broker is not in sync by then */
    bool keep_topic;
    bool json;
    bool quiet;
};

struct fo_round {
    int32_t killed; /* broker id */
    int pid;
    int32_t successor; /* -1: not seen */
    double leader_ms;  /* kill to a new leader in the metadata; -1: not seen */
    double ack_ms;     /* kill to the steady producer's first acknowledgement of a
                          record sent after it; -1: none by --failover-max */
    double probe_ms;   /* kill to the acknowledgement of a fresh producer's record,
                          sent once the metadata named a new leader; -1: none */
    double rejoin_s;   /* restart to the broker back in the in-sync set */
};

/* A producer. The steady one keeps a fixed schedule: record i is due at
 * go + i / rate. A probe sends one record. */
struct fo_prod {
    const struct fo_opts *o;
    const char *name; /* "steady", "probe" */
    nagare_producer *p;
    uint8_t *value;
    uint64_t go_ns;
    uint64_t sent;
    uint64_t acked;
    uint64_t failed;
    int err;             /* the first delivery error */
    uint64_t watch_from; /* the first record sent after the kill; UINT64_MAX: none */
    uint64_t watch_ack_ns;
};

/* A partition's leader and whether every replica is in sync. */
struct fo_state {
    int32_t leader; /* -1: none */
    bool in_sync;   /* every replica in the in-sync set, and a leader */
};

/* ---- options ---- */

static const char fo_usage_text[] =
    "usage: nagare-bench failover --broker LIST --pid-dir DIR --restart-cmd CMD [options]\n"
    "  a steady acks=all producer on a one-partition topic; each round kills the\n"
    "  partition's leader with SIGKILL and times the kill to the acknowledgement of\n"
    "  the first record sent after it; then starts the broker again and waits for\n"
    "  it to rejoin the in-sync set\n\n"
    "  --broker LIST           the cluster's brokers, host:port,host:port,...\n"
    "  --pid-dir DIR           DIR/<broker id>.pid holds each broker's pid\n"
    "  --restart-cmd CMD       run with /bin/sh -c and " FO_RESTART_ENV "=<id> to start\n"
    "                          a killed broker again; it returns once the broker runs\n"
    "                          (and its pid file is rewritten)\n"
    "  --topic NAME            (nagare-bench-failover); created when missing\n"
    "  --replication-factor N  for a topic created here (3)\n"
    "  --rounds N              (5)\n"
    "  --rate R                records/s (1000)\n"
    "  --record-bytes S        value bytes (1024)\n"
    "  --steady-seconds S      producing before each kill (3)\n"
    "  --failover-max S        how long to wait for the acknowledgements after a kill (20)\n"
    "  --rejoin-max S          a round fails with the broker not in sync by then (120)\n"
    "  --keep-topic            do not delete a topic created here\n"
    "  --json                  one JSON object instead of the table\n"
    "  --quiet                 no progress lines\n";

enum {
    FO_BROKER = 1,
    FO_PID_DIR,
    FO_RESTART,
    FO_TOPIC,
    FO_RF,
    FO_ROUNDS,
    FO_RATE,
    FO_RECORD_BYTES,
    FO_STEADY,
    FO_FAILOVER_MAX,
    FO_REJOIN_MAX,
    FO_KEEP,
    FO_JSON,
    FO_QUIET,
    FO_HELP,
};

static const struct option fo_longopts[] = {
    {"broker", required_argument, NULL, FO_BROKER},
    {"pid-dir", required_argument, NULL, FO_PID_DIR},
    {"restart-cmd", required_argument, NULL, FO_RESTART},
    {"topic", required_argument, NULL, FO_TOPIC},
    {"replication-factor", required_argument, NULL, FO_RF},
    {"rounds", required_argument, NULL, FO_ROUNDS},
    {"rate", required_argument, NULL, FO_RATE},
    {"record-bytes", required_argument, NULL, FO_RECORD_BYTES},
    {"steady-seconds", required_argument, NULL, FO_STEADY},
    {"failover-max", required_argument, NULL, FO_FAILOVER_MAX},
    {"rejoin-max", required_argument, NULL, FO_REJOIN_MAX},
    {"keep-topic", no_argument, NULL, FO_KEEP},
    {"json", no_argument, NULL, FO_JSON},
    {"quiet", no_argument, NULL, FO_QUIET},
    {"help", no_argument, NULL, FO_HELP},
    {NULL, 0, NULL, 0},
};

/* Applies one option; false when its value is out of range. */
static bool fo_apply(struct fo_opts *o, int opt, const char *arg)
{
    uint32_t v = 0;
    switch (opt) {
    case FO_BROKER:
        o->bootstrap = arg;
        return arg[0] != '\0';
    case FO_PID_DIR:
        o->pid_dir = arg;
        return arg[0] != '\0';
    case FO_RESTART:
        o->restart_cmd = arg;
        return arg[0] != '\0';
    case FO_TOPIC:
        o->topic = arg;
        return arg[0] != '\0';
    case FO_RF:
        if (!args_u32(arg, 1, INT16_MAX, &v)) { /* the broker judges it */
            return false;
        }
        o->replication_factor = (int16_t)v;
        return true;
    case FO_ROUNDS:
        return args_u32(arg, 1, FO_ROUNDS_MAX, &o->rounds);
    case FO_RATE:
        return args_double(arg, 1, 1e6, &o->rate);
    case FO_RECORD_BYTES:
        return args_u32(arg, 0, 1u << 20, &o->record_bytes);
    case FO_STEADY:
        return args_double(arg, 0.1, 3600, &o->steady_s);
    case FO_FAILOVER_MAX:
        return args_double(arg, 1, 3600, &o->failover_s);
    case FO_REJOIN_MAX:
        return args_double(arg, 1, 3600, &o->rejoin_s);
    case FO_KEEP:
        o->keep_topic = true;
        return true;
    case FO_JSON:
        o->json = true;
        return true;
    case FO_QUIET:
        o->quiet = true;
        return true;
    default:
        return false;
    }
}

/* Returns 0, 1 after --help, 2 after a usage error (printed). */
static int fo_parse(struct fo_opts *o, int argc, char **argv)
{
    *o = (struct fo_opts){.topic = "nagare-bench-failover",
                          .replication_factor = 3,
                          .rounds = 5,
                          .rate = 1000,
                          .record_bytes = 1024,
                          .steady_s = 3,
                          .failover_s = 20,
                          .rejoin_s = 120};
    optind = 1;
    int opt;
    while ((opt = getopt_long(argc, argv, "h", fo_longopts, NULL)) != -1) {
        if (opt == FO_HELP || opt == 'h') {
            fputs(fo_usage_text, stdout);
            return 1;
        }
        if (opt == '?' || !fo_apply(o, opt, optarg)) {
            if (opt != '?') {
                fprintf(stderr, "nagare-bench failover: bad value '%s'\n", optarg);
            }
            fputs(fo_usage_text, stderr);
            return 2;
        }
    }
    if (optind != argc || o->bootstrap == NULL || o->pid_dir == NULL || o->restart_cmd == NULL) {
        fprintf(stderr, "nagare-bench failover: needs --broker, --pid-dir and --restart-cmd, "
                        "and no other arguments\n");
        return 2;
    }
    return 0;
}

/* ---- the cluster, through an admin client of its own per call: a
 * connection to a broker that was killed is not used again ---- */

/* Errors are the caller's to print: while a broker dies, a connection to
 * it may fail and the next call succeed. */
static int fo_admin(const struct fo_opts *o, nagare_admin **a)
{
    return nagare_admin_new(o->bootstrap, FO_ADMIN_MS, a);
}

static int fo_state_get(const struct fo_opts *o, struct fo_state *st)
{
    nagare_admin *a = NULL;
    int rc = fo_admin(o, &a);
    const struct nagare_cluster_info *ci = NULL;
    rc = rc == 0 ? nagare_cluster_describe(a, &ci) : rc;
    if (rc == 0) {
        rc = -NAGARE_EUNKNOWN_TOPIC;
        for (size_t i = 0; i < ci->partition_count; i++) {
            const struct nagare_partition_replicas *p = &ci->partitions[i];
            if (strcmp(p->topic, o->topic) == 0 && p->partition == 0) {
                st->leader = p->leader;
                st->in_sync = p->leader >= 0 && p->err == 0 && !p->under_replicated;
                rc = 0;
            }
        }
        nagare_cluster_info_free(a, ci);
    }
    nagare_admin_destroy(a);
    return rc;
}

/* Creates the one-partition topic when missing; *created then. */
static int fo_topic_ensure(const struct fo_opts *o, bool *created)
{
    nagare_admin *a = NULL;
    int rc = fo_admin(o, &a);
    struct nagare_topic_config tc;
    nagare_topic_config_default(&tc);
    tc.partitions = 1;
    tc.replication_factor = o->replication_factor;
    rc = rc == 0 ? nagare_topic_create(a, o->topic, &tc) : rc;
    *created = rc == 0;
    rc = rc == -NAGARE_ETOPIC_EXISTS ? 0 : rc;
    nagare_admin_destroy(a);
    if (rc != 0) {
        fprintf(stderr, "nagare-bench failover: topic %s: %s\n", o->topic, nagare_strerror(rc));
    }
    return rc;
}

static void fo_topic_delete(const struct fo_opts *o)
{
    nagare_admin *a = NULL;
    int rc = fo_admin(o, &a);
    rc = rc == 0 ? nagare_topic_delete(a, o->topic) : rc;
    nagare_admin_destroy(a);
    if (rc != 0) {
        fprintf(stderr, "nagare-bench failover: delete topic %s: %s\n", o->topic,
                nagare_strerror(rc));
    }
}

/* Reads DIR/<id>.pid. Returns 0 with *pid, -errno, or -NAGARE_EBADARG
 * when the file holds no pid. */
static int fo_pid_read(const struct fo_opts *o, int32_t id, int *pid)
{
    char path[4096];
    int n = snprintf(path, sizeof(path), "%s/%" PRId32 ".pid", o->pid_dir, id);
    if (n < 0 || (size_t)n >= sizeof(path)) {
        return -ENAMETOOLONG;
    }
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return -errno;
    }
    char buf[FO_PID_FILE_BYTES] = {0};
    size_t got = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[got] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    uint32_t v = 0;
    if (!args_u32(buf, 2, INT32_MAX, &v)) {
        return -NAGARE_EBADARG;
    }
    *pid = (int)v;
    return 0;
}

/* Starts --restart-cmd for broker id; *child is its pid. */
static int fo_restart_spawn(const struct fo_opts *o, int32_t id, pid_t *child)
{
    char idbuf[16];
    snprintf(idbuf, sizeof(idbuf), "%" PRId32, id);
    if (setenv(FO_RESTART_ENV, idbuf, 1) != 0) {
        return -errno;
    }
    char *argv[] = {"/bin/sh", "-c", (char *)o->restart_cmd, NULL};
    int rc = posix_spawn(child, "/bin/sh", NULL, NULL, argv, environ);
    (void)unsetenv(FO_RESTART_ENV);
    return -rc;
}

/* ---- the producer ---- */

static void fo_on_delivery(const struct nagare_delivery *d, void *opaque)
{
    struct fo_prod *fp = opaque;
    if (d->err != 0) {
        fp->failed++;
        fp->err = fp->err != 0 ? fp->err : d->err;
        return;
    }
    uint64_t index = (uint64_t)(uintptr_t)d->opaque - 1;
    if (index >= fp->watch_from && fp->watch_ack_ns == 0) {
        fp->watch_ack_ns = clock_mono_ns();
    }
    fp->acked++;
}

/* The errors the producer retries, as they come: what the outage looked
 * like from the client's side. */
static void fo_on_error(const struct nagare_producer_error *e, void *opaque)
{
    struct fo_prod *fp = opaque;
    if (!fp->o->quiet) {
        fprintf(stderr, "  %s producer, %.3f s: %s/%" PRId32 ": %s (retried)\n", fp->name,
                (double)(clock_mono_ns() - fp->go_ns) / 1e9, e->topic, e->partition,
                nagare_strerror(e->err));
    }
}

static int fo_prod_open(struct fo_prod *fp, const struct fo_opts *o, const char *name)
{
    *fp = (struct fo_prod){.o = o, .name = name, .watch_from = UINT64_MAX};
    fp->value = malloc(o->record_bytes > 0 ? o->record_bytes : 1);
    if (fp->value == NULL) {
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < o->record_bytes; i++) {
        fp->value[i] = (uint8_t)(i * 131u + 7u);
    }
    struct nagare_producer_config c;
    nagare_producer_config_default(&c);
    c.bootstrap = o->bootstrap;
    c.acks = -1;
    c.idempotent = true;
    c.compression = NAGARE_COMPRESSION_NONE;
    c.linger_ms = 0; /* each record goes out when due: the outage is not hidden by a linger */
    c.on_delivery = fo_on_delivery;
    c.on_error = fo_on_error;
    c.opaque = fp;
    int rc = nagare_producer_new(&c, &fp->p);
    if (rc != 0) {
        fprintf(stderr, "nagare-bench failover: %s producer: %s\n", name, nagare_strerror(rc));
        free(fp->value);
        fp->value = NULL;
    }
    fp->go_ns = clock_mono_ns();
    return rc;
}

static int fo_prod_poll(struct fo_prod *fp, int timeout_ms)
{
    int rc = nagare_producer_poll(fp->p, timeout_ms);
    return rc < 0 ? rc : 0;
}

/* The record the producer sends, numbered by its opaque (index + 1). */
static struct nagare_record fo_record(const struct fo_prod *fp)
{
    return (struct nagare_record){.topic = fp->o->topic,
                                  .partition = 0,
                                  .key_len = -1,
                                  .value = fp->value,
                                  .value_len = (ssize_t)fp->o->record_bytes,
                                  .opaque = (void *)(uintptr_t)(fp->sent + 1)};
}

/* Sends every record due by now and reads the answers; waits until the
 * next record is due or until_ns, whichever is first. */
static int fo_prod_step(struct fo_prod *fp, uint64_t until_ns)
{
    const struct fo_opts *o = fp->o;
    uint64_t now = clock_mono_ns();
    int rc = 0;
    for (;;) {
        uint64_t due = fp->go_ns + (uint64_t)((double)fp->sent * 1e9 / o->rate);
        if (due > now) {
            uint64_t wake = due < until_ns ? due : until_ns;
            if (wake <= now) {
                return fo_prod_poll(fp, 0);
            }
            if (wake - now > 2 * CLOCK_NS_PER_MS) { /* long enough to read answers meanwhile */
                return fo_prod_poll(fp, (int)((wake - now) / CLOCK_NS_PER_MS) - 1);
            }
            struct timespec ts = {.tv_sec = (time_t)(wake / 1000000000u),
                                  .tv_nsec = (long)(wake % 1000000000u)};
            while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
            }
            return 0;
        }
        struct nagare_record rec = fo_record(fp);
        rc = nagare_send(fp->p, &rec);
        if (rc == -NAGARE_EBUSY) { /* the buffer is full: read answers first */
            return fo_prod_poll(fp, 1);
        }
        if (rc != 0) {
            return rc;
        }
        fp->sent++;
        rc = fo_prod_poll(fp, 0);
        now = clock_mono_ns();
        if (rc != 0 || now >= until_ns) {
            return rc;
        }
    }
}

/* Produces on schedule until deadline_ns. */
static int fo_prod_run(struct fo_prod *fp, uint64_t deadline_ns)
{
    int rc = 0;
    while (rc == 0 && clock_mono_ns() < deadline_ns) {
        rc = fo_prod_step(fp, deadline_ns);
    }
    return rc;
}

/* Waits up to flush_ms for the producer's last reports, then ends it. */
static void fo_prod_close(struct fo_prod *fp, int flush_ms)
{
    if (fp->p != NULL) {
        int rc = nagare_producer_flush(fp->p, flush_ms);
        if (rc != 0 && flush_ms > 0) {
            fprintf(stderr, "nagare-bench failover: final flush: %s\n", nagare_strerror(rc));
        }
        nagare_producer_destroy(fp->p);
        fp->p = NULL;
    }
    free(fp->value);
    fp->value = NULL;
}

/* ---- one round ---- */

static double since_ms(uint64_t from_ns, uint64_t to_ns) { return (double)(to_ns - from_ns) / 1e6; }

/* Produces until the partition has a leader and every replica in sync
 * (and, with *child > 0, the restart command exited 0), at most max_s.
 * Returns 0, -NAGARE_ETIMEOUT, -ECHILD (the command failed), or the
 * producer's error. */
static int fo_wait_in_sync(struct fo_prod *fp, pid_t *child, double max_s)
{
    uint64_t t0 = clock_mono_ns();
    uint64_t deadline = t0 + (uint64_t)(max_s * 1e9);
    for (;;) {
        int status = 0;
        if (*child > 0 && waitpid(*child, &status, WNOHANG) == *child) {
            *child = 0;
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                fprintf(stderr, "nagare-bench failover: --restart-cmd %s %d\n",
                        WIFEXITED(status) ? "exited with status" : "was killed by signal",
                        WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
                return -ECHILD;
            }
        }
        struct fo_state st;
        if (*child == 0 && fo_state_get(fp->o, &st) == 0 && st.in_sync) {
            return 0;
        }
        uint64_t now = clock_mono_ns();
        if (now >= deadline) {
            return -NAGARE_ETIMEOUT;
        }
        int rc = fo_prod_run(fp, now + FO_DESCRIBE_EVERY_NS);
        if (rc != 0) {
            return rc;
        }
    }
}

/* While the leader is gone: looks for a new leader in the metadata, and
 * once there is one starts the probe (a fresh producer, one record). */
static void fo_probe_tend(struct fo_prod *probe, struct fo_round *r, uint64_t t0,
                          uint64_t *next_describe)
{
    const struct fo_opts *o = probe->o;
    uint64_t now = clock_mono_ns();
    if (r->leader_ms < 0 && now >= *next_describe) {
        struct fo_state st;
        if (fo_state_get(o, &st) == 0 && st.leader >= 0 && st.leader != r->killed) {
            r->leader_ms = since_ms(t0, clock_mono_ns());
            r->successor = st.leader;
        }
        *next_describe = now + FO_DESCRIBE_EVERY_NS;
    }
    if (r->leader_ms >= 0 && probe->p == NULL && probe->err == 0) {
        int rc = fo_prod_open(probe, o, "probe");
        probe->watch_from = 0;
        struct nagare_record rec = fo_record(probe);
        rc = rc == 0 ? nagare_send(probe->p, &rec) : rc;
        probe->sent += rc == 0 ? 1 : 0;
        probe->err = rc;
    }
    if (probe->p != NULL && probe->watch_ack_ns == 0 && fo_prod_poll(probe, 0) == 0 &&
        probe->watch_ack_ns != 0) {
        r->probe_ms = since_ms(t0, probe->watch_ack_ns);
    }
}

/* Kills the leader and produces until a record sent after the kill is
 * acknowledged and the probe's record too, or --failover-max passed
 * (what did not come stays -1). Returns 0, or an error that stops the run. */
static int fo_kill_and_time(struct fo_prod *fp, struct fo_round *r)
{
    const struct fo_opts *o = fp->o;
    int rc = fo_prod_poll(fp, 0); /* answers already here count before the kill */
    if (rc != 0) {
        return rc;
    }
    fp->watch_from = fp->sent;
    fp->watch_ack_ns = 0;
    uint64_t t0 = clock_mono_ns();
    if (kill(r->pid, SIGKILL) != 0) {
        return -errno;
    }
    uint64_t deadline = t0 + (uint64_t)(o->failover_s * 1e9);
    uint64_t next_describe = t0;
    struct fo_prod probe = {.o = o};
    while (rc == 0 && (fp->watch_ack_ns == 0 || r->probe_ms < 0)) {
        uint64_t now = clock_mono_ns();
        if (now >= deadline) {
            break;
        }
        fo_probe_tend(&probe, r, t0, &next_describe);
        rc = fo_prod_run(fp, now + FO_SLICE_NS);
    }
    fo_prod_close(&probe, 0);
    r->ack_ms = fp->watch_ack_ns != 0 ? since_ms(t0, fp->watch_ack_ns) : -1;
    return rc;
}

static int fo_round(struct fo_prod *fp, uint32_t i, struct fo_round *r)
{
    const struct fo_opts *o = fp->o;
    *r = (struct fo_round){.killed = -1,
                           .successor = -1,
                           .leader_ms = -1,
                           .ack_ms = -1,
                           .probe_ms = -1,
                           .rejoin_s = -1};
    uint64_t acked0 = fp->acked;
    int rc = fo_prod_run(fp, clock_mono_ns() + (uint64_t)(o->steady_s * 1e9));
    if (rc == 0 && fp->acked == acked0) {
        fprintf(stderr,
                "nagare-bench failover: round %u: nothing acknowledged in %.1f s of "
                "steady producing\n",
                i + 1, o->steady_s);
        return -NAGARE_ETIMEOUT;
    }
    struct fo_state st = {.leader = -1};
    rc = rc == 0 ? fo_state_get(o, &st) : rc;
    rc = rc == 0 && st.leader < 0 ? -NAGARE_ENOT_LEADER : rc;
    r->killed = st.leader;
    rc = rc == 0 ? fo_pid_read(o, r->killed, &r->pid) : rc;
    if (rc != 0) {
        fprintf(stderr,
                "nagare-bench failover: round %u: the leader (broker %" PRId32
                ") and its pid: %s\n",
                i + 1, r->killed, nagare_strerror(rc));
        return rc;
    }
    rc = fo_kill_and_time(fp, r);
    if (rc != 0) {
        fprintf(stderr,
                "nagare-bench failover: round %u: kill of broker %" PRId32 " (pid %d): %s\n", i + 1,
                r->killed, r->pid, nagare_strerror(rc));
        return rc;
    }
    pid_t child = 0;
    uint64_t t_restart = clock_mono_ns();
    rc = fo_restart_spawn(o, r->killed, &child);
    rc = rc == 0 ? fo_wait_in_sync(fp, &child, o->rejoin_s) : rc;
    if (child > 0) { /* timed out with the command still running: leave it be, reaped later */
        (void)waitpid(child, NULL, WNOHANG);
    }
    if (rc != 0) {
        fprintf(stderr, "nagare-bench failover: round %u: restart of broker %" PRId32 ": %s\n",
                i + 1, r->killed, nagare_strerror(rc));
        return rc;
    }
    r->rejoin_s = since_ms(t_restart, clock_mono_ns()) / 1e3;
    if (!o->quiet) {
        fprintf(stderr,
                "  round %u: killed broker %" PRId32 "; new leader %" PRId32
                " in the metadata after %.0f ms; first acknowledgement after the kill: steady "
                "producer %.0f ms, fresh producer %.0f ms (-1: none in %.0f s); back in sync "
                "%.1f s after its restart\n",
                i + 1, r->killed, r->successor, r->leader_ms, r->ack_ms, r->probe_ms, o->failover_s,
                r->rejoin_s);
    }
    return 0;
}

/* ---- the report ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

/* Median and maximum of the rounds' field at offset `off` (a double),
 * over rounds where it is >= 0. Returns how many counted. */
static uint32_t fo_stats(const struct fo_round *r, uint32_t n, size_t off, double *median,
                         double *max)
{
    double v[FO_ROUNDS_MAX];
    uint32_t k = 0;
    for (uint32_t i = 0; i < n; i++) {
        double x;
        memcpy(&x, (const char *)&r[i] + off, sizeof(x));
        if (x >= 0) {
            v[k++] = x;
        }
    }
    *median = -1;
    *max = -1;
    if (k == 0) {
        return 0;
    }
    qsort(v, k, sizeof(v[0]), cmp_double);
    *median = k % 2 == 1 ? v[k / 2] : (v[k / 2 - 1] + v[k / 2]) / 2;
    *max = v[k - 1];
    return k;
}

static void fo_print_table(const struct fo_opts *o, const struct fo_prod *fp,
                           const struct fo_round *r, uint32_t n)
{
    printf("nagare-bench failover: topic %s (1 partition, replication factor %d), acks=all, "
           "idempotent, %.0f records/s of %u bytes\n\n",
           o->topic, o->replication_factor, o->rate, o->record_bytes);
    printf("%-6s %7s %8s %10s %14s %14s %14s %10s\n", "round", "killed", "pid", "successor",
           "new leader ms", "steady ack ms", "fresh ack ms", "rejoin s");
    for (uint32_t i = 0; i < n; i++) {
        printf("%-6u %7" PRId32 " %8d %10" PRId32 " %14.0f %14.0f %14.0f %10.1f\n", i + 1,
               r[i].killed, r[i].pid, r[i].successor, r[i].leader_ms, r[i].ack_ms, r[i].probe_ms,
               r[i].rejoin_s);
    }
    static const struct {
        size_t off;
        const char *what;
    } lines[] = {
        {offsetof(struct fo_round, ack_ms), "kill to the steady producer's first acknowledged "
                                            "write on the successor"},
        {offsetof(struct fo_round, probe_ms), "kill to a fresh producer's first acknowledged "
                                              "write on the successor"},
        {offsetof(struct fo_round, leader_ms), "kill to a new leader in the metadata"},
    };
    printf("\n(-1: none within --failover-max, %.0f s; the metadata is asked every %d ms)\n",
           o->failover_s, (int)(FO_DESCRIBE_EVERY_NS / CLOCK_NS_PER_MS));
    for (size_t j = 0; j < ARRAY_LEN(lines); j++) {
        double med;
        double max;
        uint32_t k = fo_stats(r, n, lines[j].off, &med, &max);
        printf("%s: median %.0f ms, max %.0f ms (%u of %u rounds)\n", lines[j].what, med, max, k,
               n);
    }
    printf("records: %" PRIu64 " sent, %" PRIu64 " acknowledged, %" PRIu64 " failed%s%s\n",
           fp->sent, fp->acked, fp->failed, fp->failed > 0 ? ": " : "",
           fp->failed > 0 ? nagare_strerror(fp->err) : "");
}

static void fo_print_json(const struct fo_opts *o, const struct fo_prod *fp,
                          const struct fo_round *r, uint32_t n)
{
    printf("{\"command\": \"failover\", \"config\": {\"replication_factor\": %d, \"rate\": %.1f, "
           "\"record_bytes\": %u, \"rounds\": %u, \"steady_s\": %.1f, \"failover_max_s\": %.1f}, "
           "\"rounds\": [",
           o->replication_factor, o->rate, o->record_bytes, o->rounds, o->steady_s, o->failover_s);
    for (uint32_t i = 0; i < n; i++) {
        printf("%s{\"killed\": %" PRId32 ", \"pid\": %d, \"successor\": %" PRId32
               ", \"leader_ms\": %.1f, \"ack_ms\": %.1f, \"probe_ms\": %.1f, "
               "\"rejoin_s\": %.2f}",
               i > 0 ? ", " : "", r[i].killed, r[i].pid, r[i].successor, r[i].leader_ms,
               r[i].ack_ms, r[i].probe_ms, r[i].rejoin_s);
    }
    double med;
    double max;
    uint32_t k = fo_stats(r, n, offsetof(struct fo_round, ack_ms), &med, &max);
    printf("], \"ack_ms\": {\"count\": %u, \"median\": %.1f, \"max\": %.1f}", k, med, max);
    k = fo_stats(r, n, offsetof(struct fo_round, probe_ms), &med, &max);
    printf(", \"probe_ms\": {\"count\": %u, \"median\": %.1f, \"max\": %.1f}", k, med, max);
    k = fo_stats(r, n, offsetof(struct fo_round, leader_ms), &med, &max);
    printf(", \"leader_ms\": {\"count\": %u, \"median\": %.1f, \"max\": %.1f}", k, med, max);
    printf(", \"records\": {\"sent\": %" PRIu64 ", \"acked\": %" PRIu64 ", \"failed\": %" PRIu64
           "}}\n",
           fp->sent, fp->acked, fp->failed);
}

/* ---- the command ---- */

int bench_failover_main(int argc, char **argv)
{
    struct fo_opts o;
    int rc = fo_parse(&o, argc, argv);
    if (rc != 0) {
        return rc == 1 ? 0 : 2;
    }
    static struct fo_round rounds[FO_ROUNDS_MAX];
    bool created = false;
    rc = fo_topic_ensure(&o, &created);
    struct fo_prod fp = {0};
    rc = rc == 0 ? fo_prod_open(&fp, &o, "steady") : rc;
    pid_t none = 0;
    if (rc == 0) {
        rc = fo_wait_in_sync(&fp, &none, o.rejoin_s);
        if (rc != 0) {
            fprintf(stderr, "nagare-bench failover: topic %s never had every replica in sync: %s\n",
                    o.topic, nagare_strerror(rc));
        }
    }
    uint32_t done = 0;
    while (rc == 0 && done < o.rounds) {
        rc = fo_round(&fp, done, &rounds[done]);
        done += rc == 0 ? 1 : 0;
    }
    fo_prod_close(&fp, FO_FLUSH_MS);
    if (done > 0) {
        if (o.json) {
            fo_print_json(&o, &fp, rounds, done);
        } else {
            fo_print_table(&o, &fp, rounds, done);
        }
    }
    if (created && !o.keep_topic) {
        fo_topic_delete(&o);
    }
    uint32_t steady_ok = 0;
    for (uint32_t i = 0; i < done; i++) {
        steady_ok += rounds[i].ack_ms >= 0 ? 1 : 0;
    }
    return rc == 0 && fp.failed == 0 && steady_ok == done ? 0 : 1;
}
