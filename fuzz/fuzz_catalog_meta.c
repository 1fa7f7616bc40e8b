/*
 * libFuzzer target for the topic catalog's topic.meta parser
 * (broker/catalog.h): arbitrary bytes as a topic.meta file. What it accepts
 * must encode back to the very same bytes (the format has one spelling),
 * and it must never read past its input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/catalog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size + 1); /* exactly sized: ASan sees any over-read */
    if (copy == NULL) {
        return 0;
    }
    memcpy(copy, data, size);
    struct catalog_topic t;
    char why[256];
    if (catalog_meta_decode(copy, size, &t, why, sizeof(why)) == 0) {
        static char again[CATALOG_META_BYTES_MAX];
        size_t len = 0;
        int rc = catalog_meta_encode(t.name, t.name_len, &t.cfg, again, sizeof(again), &len);
        ASSERT(rc == 0);
        ASSERT(len == size && memcmp(again, copy, size) == 0);
    }
    free(copy);
    return 0;
}
