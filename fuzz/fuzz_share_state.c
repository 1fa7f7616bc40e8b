/*
 * libFuzzer target for the share-group state log's records
 * (broker/share_state.h): arbitrary bytes given a valid batch frame (length and
 * checksum fixed up, so the fuzzer reaches the records), replayed into a
 * fresh registry. The decoder must refuse what does not parse and never
 * read outside its input; what it accepts must leave every part's
 * invariants holding.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/bytes.h"
#include "base/log.h"
#include "broker/share_state.h"
#include "storage/batch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < BATCH_HEADER_BYTES || size > (1u << 20)) {
        return 0;
    }
    log_set_level(LOG_OFF);        /* refusals are logged; here they are the point */
    uint8_t *batch = malloc(size); /* exactly sized: ASan sees any over-read */
    if (batch == NULL) {
        return 0;
    }
    memcpy(batch, data, size);
    put_be32(batch + BATCH_OFF_LENGTH, (uint32_t)(size - BATCH_PREFIX_BYTES));
    batch[BATCH_OFF_MAGIC] = BATCH_MAGIC;
    batch_seal(batch, size);
    struct share_config cfg;
    share_config_default(&cfg);
    cfg.inflight_max = 64;
    cfg.parts_max = 16;
    struct share_reg r;
    if (share_reg_init(&r, &cfg) == 0) {
        if (share_reg_replay_batch(&r, batch, size) == 0) {
            for (uint32_t i = 0; i < share_reg_count(&r); i++) {
                share_part_verify(share_reg_part(&r, i));
            }
        }
        share_reg_fini(&r);
    }
    free(batch);
    return 0;
}
