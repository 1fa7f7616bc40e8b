/*
 * broker/producer_ids.h — hands out producer ids for idempotent produce.
 *
 * Ids are reserved on disk a block at a time (DATA_DIR/producer-ids holds
 * the first id not yet reserved, with a checksum), so an id is never handed
 * out twice, even across a crash, and most allocations write nothing.
 */
#ifndef NAGARE_BROKER_PRODUCER_IDS_H
#define NAGARE_BROKER_PRODUCER_IDS_H

#include <stdint.h>

#include "base/assert.h"

/* Ids reserved per write: one fsync'd write per this many producers. */
#define PRODUCER_IDS_BLOCK 1000

struct producer_ids {
    int dirfd;
    int64_t next;  /* next id to hand out */
    int64_t limit; /* ids below it are reserved on disk */
};

/* Reads DATA_DIR/producer-ids (none yet: ids start at 0). Returns 0,
 * -NG_ECORRUPT for a damaged file, or -errno. */
MUST_USE int producer_ids_open(struct producer_ids *ids, const char *data_dir);
void producer_ids_close(struct producer_ids *ids);

/* Gives the next id, reserving a new block durably when needed. Returns 0
 * or -errno (the id is then not given). Blocking when it reserves. */
MUST_USE int producer_ids_take(struct producer_ids *ids, int64_t *id_out);

#endif
