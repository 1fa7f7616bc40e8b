/*
 * bench/load.h — the load that produce, consume and e2e put on a broker:
 * K producer threads, each with its own nagare_producer, and K' consumer
 * threads, each with its own nagare_consumer assigned a share of the
 * partitions, started together and watched from the calling thread. With
 * LOAD_KAFKA the clients are librdkafka's, on the Kafka listener, and
 * everything else is the same.
 *
 * Invariants. Every client is created and connected (consumers assigned)
 * before any thread starts its work, so connection set-up is never timed.
 * At a fixed rate, record i of producer k has an intended send time fixed
 * in advance (go + (k + i K) / rate); its latencies are measured from that
 * time, not from when the send happened, so a stall that delays later
 * sends shows in their latencies (coordinated omission, Gil Tene's "How
 * NOT to measure latency"). Memory is bounded: one histogram per thread
 * (hist.h), one record's value buffer per producer, the clients' own
 * buffers. The calling thread alone calls load_run().
 */
#ifndef NAGARE_BENCH_LOAD_H
#define NAGARE_BENCH_LOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/assert.h"
#include "bench/hist.h"
#include "bench/sample.h"
#include "client/nagare.h"

/* Threads of one kind: far above what two cores can use. */
#define LOAD_THREADS_MAX 64
/* A stamped value starts with the intended send time, 8 bytes. */
#define LOAD_STAMP_BYTES 8
/* Consumers give up when nothing has arrived for this long after the
 * producers finished: records were lost, and the run says so. */
#define LOAD_CONSUME_IDLE_S 10.0

/* Which listener the clients use: nagare's own protocol (libnagare) or
 * Kafka's (librdkafka, bench/kafka_load.h). */
enum load_protocol { LOAD_NAGARE = 0, LOAD_KAFKA };
/* Whose clients use the Kafka listener: librdkafka's, or the ones on
 * nagare's own Kafka codec (bench/kafka_direct.h). */
enum load_kafka_client { LOAD_KAFKA_LIBRDKAFKA = 0, LOAD_KAFKA_DIRECT };

/* A producer's report of one record, for the clients other than
 * libnagare (kafka_load.h, kafka_direct.h): err 0 or a negative NAGARE_E*
 * / errno code; at is the (intended) send time the record was given. */
typedef void load_delivered_fn(void *opaque, int err, uint64_t at);

struct load_cfg {
    enum load_protocol protocol;
    const char *bootstrap;        /* of the protocol's listener */
    const struct nagare_tls *tls; /* NULL or not enabled: plaintext */
    enum load_kafka_client kafka_client;
    const char *topic;
    int32_t partitions;    /* the topic's */
    uint32_t record_bytes; /* value bytes; keys are null */
    /* producing: records > 0 and producers > 0 */
    uint32_t producers;
    uint64_t records; /* over all producers */
    size_t batch_bytes;
    uint32_t linger_ms;
    int acks; /* 0, 1, -1 (all) */
    enum nagare_compression compression;
    bool idempotent;
    uint32_t inflight; /* produce requests in flight per producer */
    double rate;       /* records/s over all producers; 0: as fast as it goes */
    bool stamp;        /* values start with their intended send time */
    /* consuming: consumers > 0 */
    uint32_t consumers;
    bool from_end;                      /* start at the log end (e2e), else the beginning */
    uint64_t consume_records;           /* done once this many arrived over all consumers */
    uint32_t fetch_bytes_max;           /* per fetch request; 0: the client's default */
    uint32_t partition_fetch_bytes_max; /* 0: the client's default */
    uint32_t fetches_inflight;          /* 0: the client's default */
    size_t buffer_bytes_max;            /* producers; 0: the client's default */
    /* latencies of records intended before go + warmup_s are not counted */
    double warmup_s;
    int broker_pid;    /* 0: no broker figures */
    const char *label; /* for progress lines */
    bool progress;     /* print progress lines to stderr */
};

struct load_result {
    uint64_t produced;       /* records acknowledged */
    uint64_t produce_errors; /* records reported failed */
    int produce_err;         /* the first failure, or 0 */
    uint64_t consumed;
    uint64_t consumed_bytes; /* value bytes */
    int consume_err;         /* the first consumer error, or 0 */
    double produce_s;        /* go to the last acknowledgement */
    double consume_s;        /* go to the last record wanted */
    struct hist *ack;        /* send (or intended send) to acknowledgement, ns */
    struct hist *e2e;        /* intended send to receipt, ns (stamped runs) */
    /* CPU: 100% = one core */
    double producer_thread_max_pct; /* busiest producer thread */
    double consumer_thread_max_pct;
    double bench_thread_max_pct; /* busiest thread of this process, the clients' own too */
    char bench_thread_comm[16];
    struct sample_delta self; /* this process and the machine */
    double broker_cpu_pct;    /* -1: no broker pid */
    double broker_thread_max_pct;
    char broker_thread_comm[16];
    int64_t broker_rss_max_kib; /* largest VmRSS seen during the run; -1 */
    int64_t broker_hwm_kib;     /* VmHWM at the end; -1 */
};

/* Allocates r's histograms (freed by load_result_fini). Returns 0 or -ENOMEM. */
MUST_USE int load_result_init(struct load_result *r);
void load_result_fini(struct load_result *r);

/* Runs the load: creates the clients, starts every thread at once, prints
 * a progress line each second once the run is past 2 s (when
 * cfg->progress), samples the broker's RSS every 100 ms, and waits for the
 * producers to have every record acknowledged and the consumers to have
 * cfg->consume_records. SIGINT stops it early (counted as done so far).
 * Returns 0 with *r filled, or the first error that stopped a client
 * (creating it, a send, a poll): every thread is joined either way. */
MUST_USE int load_run(const struct load_cfg *cfg, struct load_result *r);

/* Whether SIGINT stopped a run: later runs then do not start. */
bool load_interrupted(void);

#endif
