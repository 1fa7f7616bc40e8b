/*
 * libFuzzer target for the committed-offsets log's records
 * (broker/offsets.h): arbitrary bytes given a valid batch frame (length and
 * checksum fixed up, so the fuzzer reaches the records), replayed into an
 * empty table. Keys and values that do not parse must be refused, never
 * read past; whatever is accepted must read back.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/bytes.h"
#include "base/log.h"
#include "broker/offsets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < BATCH_HEADER_BYTES || size > (1u << 20)) {
        return 0;
    }
    log_set_level(LOG_OFF);        /* skipped records are logged; here they are the point */
    uint8_t *batch = malloc(size); /* exactly sized: ASan sees any over-read */
    static uint8_t out[1u << 20];
    if (batch == NULL) {
        return 0;
    }
    memcpy(batch, data, size);
    put_be32(batch + BATCH_OFF_LENGTH, (uint32_t)(size - BATCH_PREFIX_BYTES));
    batch[BATCH_OFF_MAGIC] = BATCH_MAGIC;
    batch_seal(batch, size);
    struct offsets o;
    memset(&o, 0, sizeof(o));
    if (offsets_replay_batch(&o, batch, size, NULL, out, sizeof(out)) == 0) {
        for (uint32_t g = 0; g < o.count; g++) {
            for (uint32_t e = 0; e < o.groups[g].count; e++) {
                const struct offsets_entry *en = &o.groups[g].entries[e];
                int64_t got = -1;
                int rc = offsets_get(&o, o.groups[g].id, en->topic, en->partition, &got);
                ASSERT(rc == 0 && got == en->offset && got >= 0);
            }
        }
    }
    for (uint32_t g = 0; g < o.count; g++) {
        free(o.groups[g].entries);
    }
    free(o.groups);
    free(batch);
    return 0;
}
