/*
 * tests/reliability_support.h — a small broker-shaped world for the fault
 * sweep and the power-loss tests: a topic catalog, one partition log and
 * the committed-offsets log, all on one ring; a workload over them (durable
 * appends and an offset commit in flight together, segment rolls, topic
 * creates and deletes) that remembers every acknowledgement; and a check of
 * a recovered world against what was acknowledged.
 *
 * The invariant checked: everything acknowledged is there after recovery,
 * intact — the log a checksum-valid, dense prefix holding every acknowledged
 * batch (and only batches that were appended, at the offsets they were
 * given), no committed offset below the last acknowledged (or last seen),
 * every topic whose create was acknowledged present and every topic whose
 * delete was acknowledged absent. What a recovery shows becomes the floor
 * for the next one: once seen, nothing may go away.
 */
#ifndef NAGARE_TESTS_RELIABILITY_SUPPORT_H
#define NAGARE_TESTS_RELIABILITY_SUPPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "base/ring.h"
#include "broker/catalog.h"
#include "broker/offsets.h"
#include "storage/partition.h"

#define REL_APPENDS_PER_ROUND 3        /* in flight at once: group commit */
#define REL_COMMIT_PARTITIONS 4        /* offsets committed for "t"/0..3 */
#define REL_OFFSETS_SEGMENT_BYTES 4096 /* small: the workload compacts the offsets log often */
#define REL_TOPICS_MAX 256             /* topics the catalog workload may name */
#define REL_TOPICS_LIVE 3              /* past this many, a round deletes one */
#define REL_BATCH_MAX 16384

/* A batch given an offset by part_append(): what should be there. */
struct rel_attempt {
    int64_t offset;
    uint32_t seed;
    uint32_t records;
    bool acked;
    bool seen;  /* a recovery found it: it must stay */
    bool found; /* during a check */
};

enum rel_topic { REL_TOPIC_ABSENT = 0, REL_TOPIC_PRESENT, REL_TOPIC_EITHER };

/* What a check found wrong: all zero when nothing was lost. */
struct rel_loss {
    uint64_t records_lost;     /* acknowledged (or seen) records missing */
    uint64_t batches_bad;      /* a batch that is not the one appended there */
    uint64_t read_errors;      /* part_read failed inside the log (bad checksum, ...) */
    uint64_t commits_back;     /* committed offsets below the floor */
    uint64_t commits_invented; /* committed offsets never committed */
    uint64_t topics_lost;      /* acknowledged creates missing */
    uint64_t topics_back;      /* acknowledged deletes undone */
    uint64_t recover_failed;   /* an open after the crash failed */
    int recover_rc;            /* its error */
};

/* What the workload saw. */
struct rel_counts {
    uint64_t appends_acked;
    uint64_t appends_failed;  /* completed with an error */
    uint64_t appends_refused; /* part_append() refused */
    uint64_t commits_acked;
    uint64_t commits_failed;
    uint64_t topic_ops_acked;
    uint64_t topic_ops_failed;
    uint64_t refusals_missing;     /* a failed object accepted new work */
    uint64_t acked_offsets_reused; /* an acknowledged batch's offset given again */
};

struct rel_world {
    char root[256];
    char data[300];        /* root/data: the catalog */
    char log_dir[300];     /* root/log: the partition */
    char offsets_dir[300]; /* root/groups/offsets */
    char stash[300];       /* root/stash: for base/ring_sim.h */
    struct ring ring;
    struct batch_zctx zctx;
    uint8_t *scratch;
    struct part_env env;
    struct part_config cfg;
    struct part part;
    struct offsets offsets;
    struct catalog cat;
    bool part_open;
    bool offsets_open;
    bool cat_open;
    /* what was appended and acknowledged */
    struct rel_attempt *attempts; /* ascending offsets; after a full disk
                                     cut the log back, several at one */
    uint32_t attempts_count;
    uint32_t attempts_cap;
    uint32_t seed_next;
    /* offset commits: values grow, so a floor per partition */
    int64_t commit_value;
    int64_t commit_floor[REL_COMMIT_PARTITIONS]; /* -1: none */
    int64_t commit_tried[REL_COMMIT_PARTITIONS]; /* highest value ever sent */
    /* topics t0, t1, ... */
    enum rel_topic topics[REL_TOPICS_MAX];
    uint32_t topics_next;
    uint32_t round;
    struct rel_counts counts;
};

/* The directory tests run in: $NAGARE_RELIABILITY_TMPDIR, else /dev/shm
 * when writable (the simulation decides what is durable, so a tmpfs only
 * saves the real fsyncs' time), else $TMPDIR, else /tmp. */
const char *rel_tmpdir(void);

/* Makes a fresh world under rel_tmpdir() (nothing opened) and its ring. */
void rel_setup(struct rel_world *w);
/* Closes whatever is open (ignoring errors), removes the directory. */
void rel_teardown(struct rel_world *w);
/* A suite's .fini: tears down (and stops the simulation for) a world a
 * failed assertion left set up. Worlds must not live on a test's stack. */
void rel_cleanup(void);

/* Opens the catalog, the partition and the offsets log (recovering them).
 * Stops at the first failure and returns it (what opened stays open). */
int rel_open(struct rel_world *w);
/* Drains and closes all three, whatever state they are in. Returns the
 * first error (a failed log's close reports its failure). */
int rel_close(struct rel_world *w);

/* One round of work: REL_APPENDS_PER_ROUND durable appends and an offset
 * commit in flight together, run until all have completed; every other
 * round a topic create (or, past REL_TOPICS_LIVE, a delete). Stops early,
 * issuing nothing more, once the simulated machine crashed. */
void rel_round(struct rel_world *w);

/* Checks the open world against the acknowledgements and adds what is
 * wrong to *loss; then takes what is there as the new floor. */
void rel_check(struct rel_world *w, struct rel_loss *loss);

/* True when *loss holds no loss at all. */
bool rel_loss_none(const struct rel_loss *loss);

/* Total acknowledged records the world expects (for reports). */
uint64_t rel_records_acked(const struct rel_world *w);

#endif
