#include "storage/index.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "base/bytes.h"

/* Entry check: low 32 bits of XXH3-64 over the base offset and the entry's
 * fields (every byte but the check itself). */
static uint32_t entry_check(const struct idx *x, const uint8_t *e)
{
    uint8_t tmp[8 + IDX_TIME_ENTRY_BYTES];
    size_t fields = x->entry_bytes - 4u;
    put_be64(tmp, (uint64_t)x->offset_base);
    memcpy(tmp + 8, e, fields);
    return (uint32_t)XXH3_64bits(tmp, 8 + fields);
}

static void entry_seal(const struct idx *x, uint8_t *e)
{
    put_be32(e + x->entry_bytes - 4, entry_check(x, e));
}

static bool entry_intact(const struct idx *x, const uint8_t *e)
{
    return get_be32(e + x->entry_bytes - 4) == entry_check(x, e);
}

int idx_init(struct idx *x, enum idx_kind kind, uint32_t cap, int64_t offset_base)
{
    ASSERT(cap > 0);
    memset(x, 0, sizeof(*x));
    x->offset_base = offset_base;
    x->entry_bytes = kind == IDX_OFFSET ? IDX_OFFSET_ENTRY_BYTES : IDX_TIME_ENTRY_BYTES;
    /* Large and mostly untouched: only the pages entries land on cost RSS. */
    x->entries = malloc((size_t)cap * x->entry_bytes);
    if (x->entries == NULL) {
        return -ENOMEM;
    }
    x->cap = cap;
    return 0;
}

void idx_fini(struct idx *x)
{
    free(x->entries);
    memset(x, 0, sizeof(*x));
}

void idx_clear(struct idx *x)
{
    x->count = 0;
    x->count_flushed = 0;
}

static uint8_t *entry_at(const struct idx *x, uint32_t i)
{
    ASSERT(i < x->count);
    return x->entries + (size_t)i * x->entry_bytes;
}

uint32_t idx_offset_rel(const struct idx *x, uint32_t i)
{
    ASSERT(x->entry_bytes == IDX_OFFSET_ENTRY_BYTES);
    return get_be32(entry_at(x, i));
}

uint32_t idx_offset_pos(const struct idx *x, uint32_t i)
{
    ASSERT(x->entry_bytes == IDX_OFFSET_ENTRY_BYTES);
    return get_be32(entry_at(x, i) + 4);
}

int64_t idx_time_ts(const struct idx *x, uint32_t i)
{
    ASSERT(x->entry_bytes == IDX_TIME_ENTRY_BYTES);
    return (int64_t)get_be64(entry_at(x, i));
}

uint32_t idx_time_rel(const struct idx *x, uint32_t i)
{
    ASSERT(x->entry_bytes == IDX_TIME_ENTRY_BYTES);
    return get_be32(entry_at(x, i) + 8);
}

int idx_add_offset(struct idx *x, uint32_t rel, uint32_t pos)
{
    ASSERT(x->entry_bytes == IDX_OFFSET_ENTRY_BYTES);
    if (x->count == x->cap) {
        return -NG_ENOSPACE;
    }
    if (x->count > 0) {
        ASSERT(rel > idx_offset_rel(x, x->count - 1));
        ASSERT(pos > idx_offset_pos(x, x->count - 1));
    }
    uint8_t *e = x->entries + (size_t)x->count * IDX_OFFSET_ENTRY_BYTES;
    put_be32(e, rel);
    put_be32(e + 4, pos);
    entry_seal(x, e);
    x->count++;
    return 0;
}

int idx_add_time(struct idx *x, int64_t ts_ms, uint32_t rel)
{
    ASSERT(x->entry_bytes == IDX_TIME_ENTRY_BYTES);
    if (x->count == x->cap) {
        return -NG_ENOSPACE;
    }
    if (x->count > 0) {
        ASSERT(ts_ms > idx_time_ts(x, x->count - 1));
        ASSERT(rel > idx_time_rel(x, x->count - 1));
    }
    uint8_t *e = x->entries + (size_t)x->count * IDX_TIME_ENTRY_BYTES;
    put_be64(e, (uint64_t)ts_ms);
    put_be32(e + 8, rel);
    entry_seal(x, e);
    x->count++;
    return 0;
}

bool idx_find_offset(const struct idx *x, uint32_t rel, uint32_t *rel_out, uint32_t *pos_out)
{
    /* Binary search for the last entry with entry.rel <= rel. */
    uint32_t lo = 0;
    uint32_t hi = x->count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (idx_offset_rel(x, mid) <= rel) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo == 0) {
        return false;
    }
    *rel_out = idx_offset_rel(x, lo - 1);
    *pos_out = idx_offset_pos(x, lo - 1);
    return true;
}

bool idx_find_time_before(const struct idx *x, int64_t ts_ms, uint32_t *rel_out)
{
    uint32_t lo = 0;
    uint32_t hi = x->count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (idx_time_ts(x, mid) < ts_ms) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo == 0) {
        return false;
    }
    *rel_out = idx_time_rel(x, lo - 1);
    return true;
}

static bool entries_valid(const struct idx *x, uint64_t log_bytes, uint64_t rel_limit)
{
    for (uint32_t i = 0; i < x->count; i++) {
        if (!entry_intact(x, entry_at(x, i))) {
            return false;
        }
        bool is_offset = x->entry_bytes == IDX_OFFSET_ENTRY_BYTES;
        uint32_t rel = is_offset ? idx_offset_rel(x, i) : idx_time_rel(x, i);
        if (rel >= rel_limit) {
            return false;
        }
        if (is_offset && idx_offset_pos(x, i) >= log_bytes) {
            return false;
        }
        if (i == 0) {
            continue;
        }
        if (is_offset &&
            (rel <= idx_offset_rel(x, i - 1) || idx_offset_pos(x, i) <= idx_offset_pos(x, i - 1))) {
            return false;
        }
        if (!is_offset &&
            (rel <= idx_time_rel(x, i - 1) || idx_time_ts(x, i) <= idx_time_ts(x, i - 1))) {
            return false;
        }
    }
    return true;
}

int idx_load(struct idx *x, const uint8_t *buf, size_t len, uint64_t log_bytes, uint64_t rel_limit)
{
    idx_clear(x);
    if (len % x->entry_bytes != 0 || len / x->entry_bytes > x->cap) {
        return -NG_ECORRUPT;
    }
    memcpy(x->entries, buf, len);
    x->count = (uint32_t)(len / x->entry_bytes);
    if (!entries_valid(x, log_bytes, rel_limit)) {
        idx_clear(x);
        return -NG_ECORRUPT;
    }
    x->count_flushed = x->count;
    return 0;
}

bool idx_take_unflushed(struct idx *x, const uint8_t **buf, size_t *len, uint64_t *file_pos)
{
    if (x->count_flushed == x->count) {
        return false;
    }
    *buf = x->entries + (size_t)x->count_flushed * x->entry_bytes;
    *len = (size_t)(x->count - x->count_flushed) * x->entry_bytes;
    *file_pos = (uint64_t)x->count_flushed * x->entry_bytes;
    x->count_flushed = x->count;
    return true;
}
