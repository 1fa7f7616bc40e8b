/*
 * storage/index.h — the sparse offset index and the time index of a segment.
 *
 * Both are arrays of fixed-size big-endian entries, held in memory in their
 * on-disk form so that a file write can point straight into the array. The
 * array is allocated once with room for every entry the segment can need and
 * never moves, so a write in flight stays valid while entries are appended.
 *   offset index entry (12 bytes): u32 relative offset, u32 file position, u32 check
 *   time index entry (16 bytes):   i64 max timestamp so far (ms), u32 relative offset, u32 check
 * The check is the low 32 bits of XXH3-64 over the segment's base offset
 * (8 bytes, big-endian) and the entry's other fields, so a damaged entry, or
 * an index file belonging to another segment, is found on load.
 * Invariants: offset entries strictly increase in both fields; time entries
 * strictly increase in timestamp and relative offset.
 */
#ifndef NAGARE_STORAGE_INDEX_H
#define NAGARE_STORAGE_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/assert.h"

#define IDX_OFFSET_ENTRY_BYTES 12
#define IDX_TIME_ENTRY_BYTES 16

enum idx_kind { IDX_OFFSET, IDX_TIME };

struct idx {
    uint8_t *entries; /* cap entries of entry_bytes each; owned */
    uint32_t count;
    uint32_t cap;
    uint32_t count_flushed; /* entries already handed to the file */
    uint8_t entry_bytes;
    int64_t offset_base; /* the segment's, mixed into each check */
};

/* Allocates room for cap entries of the segment starting at offset_base.
 * Returns 0 or -ENOMEM. */
MUST_USE int idx_init(struct idx *x, enum idx_kind kind, uint32_t cap, int64_t offset_base);
void idx_fini(struct idx *x);

/* Drops every entry (for a rebuild). */
void idx_clear(struct idx *x);

/* Appends an offset entry. Precondition: rel and pos above the last entry's.
 * Returns 0 or -NG_ENOSPACE when the array is full. */
MUST_USE int idx_add_offset(struct idx *x, uint32_t rel, uint32_t pos);

/* Appends a time entry. Precondition: ts and rel above the last entry's. */
MUST_USE int idx_add_time(struct idx *x, int64_t ts_ms, uint32_t rel);

/* The last offset entry with relative offset <= rel. Returns false (and
 * leaves the outputs alone) when there is none. */
bool idx_find_offset(const struct idx *x, uint32_t rel, uint32_t *rel_out, uint32_t *pos_out);

/* The last time entry with timestamp < ts_ms. Returns false when none. */
bool idx_find_time_before(const struct idx *x, int64_t ts_ms, uint32_t *rel_out);

/* Field accessors for entry i < count. */
uint32_t idx_offset_rel(const struct idx *x, uint32_t i);
uint32_t idx_offset_pos(const struct idx *x, uint32_t i);
int64_t idx_time_ts(const struct idx *x, uint32_t i);
uint32_t idx_time_rel(const struct idx *x, uint32_t i);

/* Replaces the entries with the file bytes buf[0..len) and checks them: len
 * a whole number of entries within cap, every check right, fields strictly
 * increasing, offset
 * positions below log_bytes and relative offsets below rel_limit. Returns 0
 * or -NG_ECORRUPT (the index is then empty). All entries count as flushed. */
MUST_USE int idx_load(struct idx *x, const uint8_t *buf, size_t len, uint64_t log_bytes,
                      uint64_t rel_limit);

/* The entries not yet handed to the file: bytes and where they go. Marks
 * them flushed. Returns false when there are none. */
bool idx_take_unflushed(struct idx *x, const uint8_t **buf, size_t *len, uint64_t *file_pos);

#endif
