/*
 * tests/checker.h — the safety checker of the fault runs: producers that
 * write unique values and record what was acknowledged, readers that take
 * every replica's log (read only, from a stopped broker's data directory)
 * and a consumer's view, and a verdict over all of it.
 *
 * Invariants. Every value written is "<producer>:<seq>" (decimal), seq
 * counting 0, 1, 2... per producer in the order the producer sent them, so
 * a value names its sender and its place, and "sent" is one counter per
 * producer. Every read (a source: one replica's log, or one consumer pass)
 * is kept whole as partition -> offset -> value, and acknowledgements as
 * (partition, offset, value, time). chk_verify() then judges, the same way
 * for every run:
 * - lost: an acknowledged record that no source shows at its offset with
 *   its value, or that a whole consumer read (one that reached the high
 *   watermark it set out for) does not show there: past its end, absent, or
 *   another value;
 * - two values: an offset of a partition that showed two different values
 *   over the acknowledgements and every source;
 * - never sent: a value read that does not parse, names no producer, or a
 *   seq its producer never sent;
 * - duplicated: one value at two offsets of a partition (idempotence);
 * - order broken: within a source, a producer's values in a partition not
 *   in increasing seq order as offsets increase;
 * - replica diverged: an offset below the partition's high watermark (the
 *   consumer's end, or chk_set_hw()) that a replica lacks or holds with
 *   another value than the consumer read.
 * Availability: faults are windows (chk_fault_begin/end); a fault's figure
 * is the longest stretch, from its start to the next fault's start (or the
 * end of the run), without an acknowledged write to one partition (the
 * worst partition's: writes acknowledged elsewhere do not hide a partition
 * without a leader). For the kill of a leader it is the time until its
 * successor acknowledged a write.
 *
 * Threads: chk_sent(), chk_acked() and the producer threads may run
 * concurrently (a mutex guards the acknowledgements and counters); every
 * other call comes from the test's thread while no producer runs. Calls
 * return 0 or a negative error (they never assert with criterion, so a
 * producer thread may call them); chk_init() and allocation failures assert
 * (always-on ASSERT): a checker that cannot hold its data cannot judge.
 */
#ifndef NAGARE_TESTS_CHECKER_H
#define NAGARE_TESTS_CHECKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/assert.h"

/* Limits, each sized for a fault run on a two-core machine: a run of
 * minutes at a few thousand records a second stays far below. */
#define CHK_PRODUCERS_MAX 64
#define CHK_PARTITIONS_MAX 64
#define CHK_SOURCES_MAX 16
#define CHK_FAULTS_MAX 256
#define CHK_NAME_BYTES 64
/* A value: "<producer>:<seq>" with seq below 2^40. */
#define CHK_VALUE_BYTES 32
/* Examples of each problem kept for the summary. */
#define CHK_EXAMPLES_MAX 4

/* A value as the checker holds it: 0 absent, CHK_ID_FOREIGN a value that
 * is no producer's, else ((producer + 1) << 40) | seq. */
typedef uint64_t chk_id;
#define CHK_ID_ABSENT ((chk_id)0)
#define CHK_ID_FOREIGN ((chk_id)1)
#define CHK_SEQ_BITS 40
#define CHK_SEQ_MAX ((UINT64_C(1) << CHK_SEQ_BITS) - 1)

/* One source's view of one partition: values of offsets [start, end). */
struct chk_log {
    int64_t start;
    int64_t end;
    chk_id *ids; /* end - start of them; CHK_ID_ABSENT where nothing was read */
    size_t cap;
};

enum chk_source_kind { CHK_REPLICA, CHK_CONSUMER };

/* One offset a source read twice with two values. */
struct chk_conflict {
    int32_t partition;
    int64_t offset;
    chk_id first;
    chk_id second;
};

struct chk_source {
    char name[CHK_NAME_BYTES];
    enum chk_source_kind kind;
    struct chk_log logs[CHK_PARTITIONS_MAX];
    bool complete; /* a consumer read that reached the end it set out for */
    uint64_t records;
    uint64_t bad_batches;    /* batches a replica read stopped at (torn or damaged) */
    uint64_t conflict_count; /* offsets this source read twice, differently */
    struct chk_conflict conflict_first;
};

struct chk_ack {
    int64_t offset;
    chk_id id;
    int64_t at_ms; /* clock_mono_ms() of the acknowledgement */
};

struct chk_fault {
    char name[CHK_NAME_BYTES];
    int64_t begin_ms;
    int64_t end_ms; /* -1 while open */
};

/* One kind of problem: how many, and the first few as text. */
struct chk_problem {
    uint64_t count;
    char examples[CHK_EXAMPLES_MAX][96];
};

struct chk_fault_figure {
    char name[CHK_NAME_BYTES];
    int64_t duration_ms;           /* end - begin */
    int64_t unavailable_ms;        /* longest stretch without an ack on one partition */
    int32_t unavailable_partition; /* that partition */
    int64_t unavailable_from_ms;   /* when that stretch began, from the fault's start */
};

struct chk_result {
    uint64_t sent;
    uint64_t acked;
    uint64_t delivery_failed; /* reports with an error: not acknowledged */
    uint64_t read;            /* records read over every source */
    struct chk_problem lost;
    struct chk_problem two_values;
    struct chk_problem never_sent;
    struct chk_problem duplicated;
    struct chk_problem order_broken;
    struct chk_problem replica_diverged;
    uint32_t fault_count;
    struct chk_fault_figure faults[CHK_FAULTS_MAX];
    int64_t unavailable_ms_max; /* over every fault */
    bool ok;                    /* no problem of any kind */
};

struct checker {
    char topic[CHK_NAME_BYTES];
    int32_t partitions;
    pthread_mutex_t mu;               /* guards acks, ack counts, sent, delivery_failed */
    uint64_t sent[CHK_PRODUCERS_MAX]; /* seqs sent per producer: 0..sent-1 */
    struct chk_ack *acks[CHK_PARTITIONS_MAX];
    size_t ack_count[CHK_PARTITIONS_MAX];
    size_t ack_cap[CHK_PARTITIONS_MAX];
    uint64_t delivery_failed;
    struct chk_source *sources[CHK_SOURCES_MAX];
    uint32_t source_count;
    int64_t hw[CHK_PARTITIONS_MAX]; /* -1: the consumer's end */
    struct chk_fault faults[CHK_FAULTS_MAX];
    uint32_t fault_count;
    int64_t run_end_ms; /* chk_run_end(); -1: now at verify */
};

/* Sets c up for topic with partitions partitions (1..CHK_PARTITIONS_MAX). */
void chk_init(struct checker *c, const char *topic, int32_t partitions);
/* Frees everything c holds. Harmless on a zeroed struct. */
void chk_fini(struct checker *c);

/* ---- values ---- */

/* Formats the value of (producer, seq) into buf (CHK_VALUE_BYTES); returns
 * its length. */
size_t chk_value(char *buf, uint32_t producer, uint64_t seq);
/* Parses a value: its id, or CHK_ID_FOREIGN when it is not one of ours. */
chk_id chk_parse(const void *value, ssize_t len);
static inline uint32_t chk_id_producer(chk_id id) { return (uint32_t)(id >> CHK_SEQ_BITS) - 1; }
static inline uint64_t chk_id_seq(chk_id id) { return id & CHK_SEQ_MAX; }

/* ---- what producers did (any thread) ---- */

/* Producer (< CHK_PRODUCERS_MAX) is about to send seq, which must be its
 * next (the count sent so far). Returns 0 or -NG_EBADARG. */
int chk_sent(struct checker *c, uint32_t producer, uint64_t seq);
/* The broker acknowledged id at (partition, offset), at at_ms; offset -1:
 * acknowledged in the partition with no offset (a retry the broker knew
 * was written before the batches it remembers, broker/producers.h): it
 * must be read somewhere, and in a whole consumer read. Returns 0 or
 * -NG_EBADARG (partition out of range, an offset below -1, an id not
 * sent). */
int chk_acked(struct checker *c, int32_t partition, int64_t offset, chk_id id, int64_t at_ms);
/* A delivery report with an error: the record may or may not be stored. */
void chk_delivery_failed(struct checker *c);

/* ---- faults ---- */

/* A fault begins now (clock_mono_ms()); name is copied. Closes the
 * previous one if still open. */
void chk_fault_begin(struct checker *c, const char *name);
/* The open fault ends now (healed). */
void chk_fault_end(struct checker *c);
/* The run ends now: availability windows stop here. */
void chk_run_end(struct checker *c);
/* The same three at a given time, for tests of the arithmetic. */
void chk_fault_at(struct checker *c, const char *name, int64_t begin_ms, int64_t end_ms);
void chk_run_end_at(struct checker *c, int64_t at_ms);

/* ---- reads ---- */

/* A new empty source named name (copied); NULL past CHK_SOURCES_MAX. */
struct chk_source *chk_source_add(struct checker *c, const char *name, enum chk_source_kind kind);
/* The source read (partition, offset) = id. Returns 0 or -NG_EBADARG
 * (partition out of range, offset negative, id absent), -ENOMEM. A second
 * read of the same offset by one source with another value keeps the first
 * and counts the offset as two values. */
int chk_observe(struct checker *c, struct chk_source *s, int32_t partition, int64_t offset,
                chk_id id);

/* Reads one replica's log of partition from its directory (a stopped
 * broker's DATA_DIR/topics/<topic>/<partition>), read only: every segment,
 * batch by batch (length, checksum, offset continuity, as recovery checks
 * them); a bad batch ends that segment's read and is counted in
 * s->bad_batches (recovery cuts a torn tail; a mid-log one is damage). A
 * missing directory is an empty replica. Returns 0, -errno, or a decoding
 * error of a batch that checked (never expected). */
int chk_read_replica(struct checker *c, struct chk_source *s, int32_t partition, const char *dir);
/* The end (one past the last offset) of the whole, checking batches of the
 * replica log in dir, read as chk_read_replica() reads it: 0 when empty or
 * missing. Safe on a running broker's directory (it only appends, and a
 * batch being written is not whole yet). Returns 0 or -errno. */
int chk_replica_end(const char *dir, int64_t *end_out);
/* chk_read_replica() for every partition of c's topic under data_dir. */
int chk_read_replica_dir(struct checker *c, struct chk_source *s, const char *data_dir);

/* Reads every partition of c's topic through a libnagare consumer of
 * bootstrap from its log start to the end offset the broker gives when the
 * read begins (the high watermark), within timeout_ms in all. Returns 0,
 * -NAGARE_ETIMEOUT (the end not reached in time), or the client's error. */
int chk_read_consumer(struct checker *c, struct chk_source *s, const char *bootstrap,
                      int timeout_ms);

/* The high watermark of partition for the replica check (default: the
 * end of the consumer read). */
void chk_set_hw(struct checker *c, int32_t partition, int64_t hw);

/* ---- verdict ---- */

/* Judges everything recorded (see the top of this file) into *out. */
void chk_verify(struct checker *c, struct chk_result *out);
/* Writes a summary of r: counts, examples, availability per fault. */
void chk_print(const struct checker *c, const struct chk_result *r, FILE *f);

/* ---- producers ---- */

struct chk_producers_config {
    const char *bootstrap;
    uint32_t producers;           /* 1..CHK_PRODUCERS_MAX, one thread each */
    uint32_t outstanding_max;     /* records in flight per producer (default 64) */
    uint32_t delivery_timeout_ms; /* default 120000 */
    uint32_t request_timeout_ms;  /* default 5000: fail over sooner than the default */
    bool compress;                /* zstd (default false: values stay readable in place) */
    uint64_t records_max;         /* per producer; 0: until chk_producers_stop() */
};

struct chk_producers;
struct chk_producer_ctx {
    struct chk_producers *ps;
    uint32_t index;
};

struct chk_producers {
    struct checker *c;
    struct chk_producers_config cfg;
    pthread_t threads[CHK_PRODUCERS_MAX];
    struct chk_producer_ctx ctx[CHK_PRODUCERS_MAX];
    uint32_t started;
    bool stop;                     /* atomic loads and stores */
    int errors[CHK_PRODUCERS_MAX]; /* a thread's fatal error, 0 if none */
};

void chk_producers_config_default(struct chk_producers_config *cfg);
/* Starts cfg->producers threads, each an idempotent acks=all libnagare
 * producer sending values to partition seq % partitions, recording
 * chk_sent() before each send and chk_acked() / chk_delivery_failed() on
 * each report. Returns 0 or the first -errno of pthread_create (those
 * started keep running: stop them). */
int chk_producers_start(struct chk_producers *ps, struct checker *c,
                        const struct chk_producers_config *cfg);
/* Asks every producer to stop, flushes each (up to its delivery timeout)
 * and joins. Returns 0, or the first fatal error a producer met (creating
 * its client, or a send or poll error that stops it). */
int chk_producers_stop(struct chk_producers *ps);
/* Waits until every producer has sent records_max records (> 0) and
 * flushed, and joins them. Returns as chk_producers_stop(). */
int chk_producers_join(struct chk_producers *ps);
/* Records acknowledged so far, over every producer (any thread). */
uint64_t chk_acked_count(struct checker *c);
/* Those of them in partition (any thread). */
uint64_t chk_acked_count_partition(struct checker *c, int32_t partition);
/* The highest offset acknowledged in partition, -1 when none (any thread). */
int64_t chk_acked_offset_max(struct checker *c, int32_t partition);

#endif
