/*
 * bench/session.h — what produce, consume and e2e share: one command line,
 * the broker (spawned or attached), the topic, an untimed warm-up, idle
 * connections, and the report (a table, or one JSON object with --json).
 *
 * A session is opened once per command, runs one or more phases through
 * load_run(), prints them, and is closed: a spawned broker is stopped and
 * its directory removed, a topic the session created on an attached
 * broker is deleted (unless --keep-topic). Main thread only.
 */
#ifndef NAGARE_BENCH_SESSION_H
#define NAGARE_BENCH_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "bench/broker.h"
#include "bench/load.h"

enum session_cmd { SESSION_PRODUCE = 0, SESSION_CONSUME, SESSION_E2E };

/* Which listener a session measures through: one, or both in one run
 * (--protocol both), round after round. */
enum session_protocols { SESSION_NAGARE = 0, SESSION_KAFKA, SESSION_BOTH };
/* Rounds of --protocol both: each measures every phase once per protocol. */
#define SESSION_ROUNDS_MAX 9
/* Phases a command reports: produce has one per protocol and round,
 * consume a fill and then one per protocol and round, e2e as produce. */
#define SESSION_PHASES_MAX (1 + 2 * SESSION_ROUNDS_MAX)
/* Idle connections: bench/compare.sh's 1,000 with room to spare. */
#define SESSION_IDLE_MAX 16384u

struct session_opts {
    enum session_cmd cmd;
    enum session_protocols protocols;
    enum load_kafka_client kafka_client;
    uint32_t rounds;          /* of phases, each protocol once per round */
    const char *broker;       /* "host:port" of a running broker */
    const char *kafka_broker; /* its Kafka listener's */
    int broker_pid;
    const char *spawn_path;   /* nagared to start, or NULL */
    const char *spawn_parent; /* where its temporary directory goes */
    const char *sets[BENCH_BROKER_SETS_MAX];
    size_t set_count;
    const char *topic;
    int32_t partitions;
    int16_t replication_factor; /* for a topic created here; -1: the broker's default */
    uint64_t records;
    uint32_t record_bytes;
    uint32_t producers;
    uint32_t consumers;
    size_t batch_bytes;
    uint32_t linger_ms;
    int acks;
    enum nagare_compression compression;
    bool idempotent;
    uint32_t inflight;
    double rate;         /* records/s; 0: unlimited */
    double seconds;      /* e2e: how long to run at the rate */
    double warmup_s;     /* e2e: latencies of the first S s not counted */
    uint64_t warmup_mib; /* untimed writes to a scratch topic first */
    uint32_t idle_connections;
    struct nagare_tls tls;    /* --tls: libnagare's and librdkafka's connections */
    uint32_t fetch_bytes_max; /* 0: the client's default, as the next two */
    uint32_t partition_fetch_bytes_max;
    uint32_t fetches_inflight;
    uint32_t buffer_mib; /* producer buffer_bytes_max, MiB; 0: default */
    bool keep_topic;
    bool json;
    bool quiet;
};

struct session_phase {
    const char *name; /* "produce", "fill", "consume", "e2e" */
    enum load_protocol protocol;
    bool producing; /* producers ran: a row of their figures */
    bool consuming; /* consumers ran: a row of theirs */
    bool stamped;   /* consumers measured end-to-end latency */
    double rate;    /* the producers' fixed rate, 0: none */
    struct load_result r;
};

struct session {
    struct session_opts o;
    struct bench_broker broker;
    bool broker_up;
    bool topic_created;         /* by us: deleted at close unless kept */
    int32_t partitions;         /* the topic's, as the broker holds it */
    int16_t replication_factor; /* the same; -1 when the broker does not say */
    int *idle_fds;
    uint32_t idle_open;
    struct session_phase phases[SESSION_PHASES_MAX];
    uint32_t phase_count;
};

/* "produce", "consume" or "e2e". */
const char *session_cmd_name(enum session_cmd cmd);

/* A load configuration from the options, for the session's topic,
 * through protocol p's listener. */
void session_load_cfg(const struct session *s, enum load_protocol p, struct load_cfg *cfg);

/* The topic's records: the sum over partitions of latest - earliest. */
MUST_USE int session_topic_records(struct session *s, uint64_t *records_out);

/* Runs one phase and keeps its result for the report. Returns 0 or the
 * error (printed). */
MUST_USE int session_phase(struct session *s, const char *name, const struct load_cfg *cfg);

/* Prints the table (or JSON) of every phase run. */
void session_report(const struct session *s, FILE *out);

/* A subcommand's whole run: parse, open, warm up, run(s, p) (its phases)
 * once per round and protocol, the report of the phases that ran, close.
 * With both protocols, round r runs nagare's first when r is even and
 * Kafka's first when it is odd, so a drift of the machine's speed over
 * the run weighs on both alike. Returns the exit status: 0, 1 when
 * anything failed, 2 for a usage error. */
int session_main(enum session_cmd cmd, int argc, char **argv,
                 int (*run)(struct session *s, enum load_protocol p));

#endif
