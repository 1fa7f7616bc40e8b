/*
 * tests/crash_writer.c — appends durable batches to a partition until it is
 * killed, printing "ack <base offset> <seed> <records>" for each batch whose
 * append completed (so was fdatasync'd). test_crash kills it with SIGKILL at
 * random moments and checks that every printed batch survived intact.
 * Usage: crash_writer DIR RUN_ID
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#include "base/clock.h"
#include "base/log.h"
#include "tests/storage_support.h"

enum { APPENDERS = 4, RECORDS = 10, VALUE_BYTES = 300, BATCH_CAP = 16384 };

struct writer {
    struct part_append a;
    uint8_t batch[BATCH_CAP];
    uint32_t seed;
};

static struct part part;
static struct writer writers[APPENDERS];
static uint32_t next_seed;
static int failures;

static size_t build(uint8_t *buf, uint32_t seed)
{
    struct batch_builder b;
    batch_builder_init(&b, buf, BATCH_CAP, BATCH_CODEC_NONE, -1, 0, -1);
    uint8_t value[VALUE_BYTES];
    for (uint32_t i = 0; i < RECORDS; i++) {
        char key[32];
        int klen = snprintf(key, sizeof(key), "k%u-%u", seed, i);
        fx_fill_value(value, VALUE_BYTES, seed, i);
        if (batch_builder_add(&b, 1000 * (int64_t)seed + i, key, klen, value, VALUE_BYTES, NULL,
                              0) != 0) {
            abort();
        }
    }
    size_t len = 0;
    if (batch_builder_finish(&b, NULL, &len) != 0) {
        abort();
    }
    return len;
}

static void submit(struct writer *w);

static void done(struct part_append *a, int rc)
{
    struct writer *w = (struct writer *)a;
    if (rc != 0) {
        failures++;
        return;
    }
    char line[96];
    int n = snprintf(line, sizeof(line), "ack %lld %u %d\n", (long long)a->hdr.offset_base, w->seed,
                     RECORDS);
    if (write(STDOUT_FILENO, line, (size_t)n) != n) { /* one write: whole lines */
        abort();
    }
    submit(w);
}

static void submit(struct writer *w)
{
    w->seed = next_seed++;
    w->a = (struct part_append){
        .batch = w->batch, .bytes = build(w->batch, w->seed), .durable = true, .done = done};
    if (part_append(&part, &w->a) != 0) {
        failures++;
    }
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: crash_writer DIR RUN_ID\n");
        return 2;
    }
    log_set_level(LOG_WARN);
    next_seed = (uint32_t)atoi(argv[2]) << 20;
    struct ring ring;
    struct batch_zctx z;
    static struct part_config cfg;
    part_config_default(&cfg);
    cfg.batch_bytes_max = BATCH_CAP;
    cfg.segment_bytes = 256 * 1024; /* rolls often: crashes land mid-roll too */
    size_t scratch_bytes = PART_SCRATCH_BYTES(BATCH_CAP);
    uint8_t *scratch = malloc(scratch_bytes);
    if (scratch == NULL || ring_init(&ring, 64) != 0 || batch_zctx_init(&z, BATCH_CAP, 1) != 0) {
        return 1;
    }
    struct part_env env = {.ring = &ring,
                           .scratch = scratch,
                           .scratch_bytes = scratch_bytes,
                           .zctx = &z,
                           .now_ms = clock_wall_ms};
    if (part_open(&part, argv[1], &cfg, &env) != 0) {
        return 1;
    }
    for (int i = 0; i < APPENDERS; i++) {
        submit(&writers[i]);
    }
    while (failures == 0) {
        if (ring_run(&ring, -1) < 0) {
            return 1;
        }
    }
    return 1;
}
