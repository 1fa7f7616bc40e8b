/*
 * tests/storage_support.h — fixtures shared by the storage suites: a temporary
 * partition directory, a ring and the per-thread resources, a settable
 * clock, and deterministic batches whose contents a test can check.
 */
#ifndef NAGARE_TESTS_STORAGE_SUPPORT_H
#define NAGARE_TESTS_STORAGE_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/ring.h"
#include "storage/batch.h"
#include "storage/partition.h"

#define FX_BATCH_MAX (1u << 20)

struct fx {
    char dir[256];
    struct ring ring;
    struct batch_zctx zctx;
    uint8_t *scratch;
    struct part_env env;
    struct part_config cfg;
    struct part part;
    bool open;
};

/* The clock every fixture's partitions see. */
extern int64_t fx_now;

void fx_setup(struct fx *f);
void fx_teardown(struct fx *f);
/* Opens f->part on f->dir with f->cfg; returns part_open()'s result. */
int fx_open(struct fx *f);
/* Drains and closes f->part, asserting success. */
void fx_close(struct fx *f);

/* The value bytes of record i of the batch with this seed. */
static inline void fx_fill_value(uint8_t *v, uint32_t n, uint32_t seed, uint32_t i)
{
    uint32_t x = seed * 2654435761u ^ (i + 1) * 40503u;
    for (uint32_t k = 0; k < n; k++) {
        x = x * 1103515245u + 12345u;
        v[k] = (uint8_t)(x >> 16);
    }
}

/* Builds a batch of `records` records: record i has key "k<seed>-<i>" and a
 * value of value_bytes bytes derived from (seed, i), timestamp ts_ms + i.
 * Returns its size. */
size_t fx_batch(uint8_t *buf, size_t cap, uint32_t records, uint32_t value_bytes, uint32_t seed,
                int64_t ts_ms, enum batch_codec codec, struct batch_zctx *z);

/* Checks that buf[0..len) holds exactly one valid batch built by fx_batch()
 * with this seed; returns its record count, or -1. */
int fx_check_batch(const uint8_t *buf, size_t len, uint32_t seed, struct batch_zctx *z);

/* Appends a copy of batch and runs the ring until it completes. Returns the
 * base offset, or the negative error of part_append() / the completion. */
int64_t fx_append(struct fx *f, const uint8_t *batch, size_t len, bool durable);

/* Reads the batch holding offset into buf (cap bytes) with a limit of one
 * byte, so exactly one batch comes back. Returns part_read()'s rc. */
int fx_read_one(struct fx *f, int64_t offset, uint8_t *buf, size_t cap, size_t *len_out);

#endif
