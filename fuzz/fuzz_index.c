/*
 * libFuzzer target for the index loader (storage/index.h): arbitrary bytes
 * as an .index or .timeindex file. idx_load must accept only well-formed
 * files (every entry's check right, fields increasing and in range) and
 * never read outside its input; lookups on what it accepted must stay
 * inside the entries.
 */
#include <stdint.h>
#include <stdlib.h>

#include "base/bytes.h"
#include "storage/index.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 9) {
        return 0;
    }
    /* byte 0: which index; bytes 1-8: log size and offset range */
    enum idx_kind kind = data[0] & 1 ? IDX_TIME : IDX_OFFSET;
    uint64_t log_bytes = get_be32(data + 1);
    uint64_t rel_limit = get_be32(data + 5);
    struct idx x;
    if (idx_init(&x, kind, 4096, (int64_t)(data[0] >> 1)) != 0) {
        return 0;
    }
    int rc = idx_load(&x, data + 9, size - 9, log_bytes, rel_limit);
    ASSERT(rc == 0 || (rc == -NG_ECORRUPT && x.count == 0));
    for (uint32_t probe = 0; rc == 0 && probe < 4; probe++) {
        uint32_t rel = (uint32_t)(rel_limit >> probe);
        uint32_t found_rel;
        uint32_t pos;
        if (kind == IDX_OFFSET && idx_find_offset(&x, rel, &found_rel, &pos)) {
            ASSERT(found_rel <= rel && pos < log_bytes);
        }
        if (kind == IDX_TIME && idx_find_time_before(&x, (int64_t)rel, &found_rel)) {
            ASSERT(found_rel < rel_limit);
        }
    }
    idx_fini(&x);
    return 0;
}
