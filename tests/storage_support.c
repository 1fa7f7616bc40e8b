#include "tests/storage_support.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"

int64_t fx_now = 1700000000000;

static int64_t fx_clock(void) { return fx_now; }

void fx_setup(struct fx *f)
{
    memset(f, 0, sizeof(*f));
    log_set_level(LOG_OFF);
    const char *tmp = getenv("TMPDIR");
    snprintf(f->dir, sizeof(f->dir), "%s/nagare-test-XXXXXX", tmp ? tmp : "/tmp");
    cr_assert_not_null(mkdtemp(f->dir));
    cr_assert_eq(ring_init(&f->ring, 256), 0);
    cr_assert_eq(batch_zctx_init(&f->zctx, FX_BATCH_MAX, 3), 0);
    size_t scratch = PART_SCRATCH_BYTES(FX_BATCH_MAX);
    f->scratch = malloc(scratch);
    cr_assert_not_null(f->scratch);
    f->env = (struct part_env){.ring = &f->ring,
                               .scratch = f->scratch,
                               .scratch_bytes = scratch,
                               .zctx = &f->zctx,
                               .now_ms = fx_clock};
    part_config_default(&f->cfg);
    f->cfg.batch_bytes_max = FX_BATCH_MAX;
    fx_now = 1700000000000;
}

void fx_teardown(struct fx *f)
{
    if (f->open) {
        fx_close(f);
    }
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    cr_assert_eq(system(cmd), 0);
    ring_fini(&f->ring);
    batch_zctx_fini(&f->zctx);
    free(f->scratch);
}

int fx_open(struct fx *f)
{
    int rc = part_open(&f->part, f->dir, &f->cfg, &f->env);
    f->open = rc == 0;
    return rc;
}

void fx_close(struct fx *f)
{
    cr_assert_eq(part_drain(&f->part), 0);
    int rc = part_close(&f->part);
    f->open = false;
    cr_assert(rc == 0 || rc == f->part.failed, "close: %s", err_str(rc));
}

size_t fx_batch(uint8_t *buf, size_t cap, uint32_t records, uint32_t value_bytes, uint32_t seed,
                int64_t ts_ms, enum batch_codec codec, struct batch_zctx *z)
{
    struct batch_builder b;
    batch_builder_init(&b, buf, cap, codec, -1, 0, -1);
    uint8_t *value = malloc(value_bytes + 1);
    cr_assert_not_null(value);
    for (uint32_t i = 0; i < records; i++) {
        char key[32];
        int klen = snprintf(key, sizeof(key), "k%u-%u", seed, i);
        fx_fill_value(value, value_bytes, seed, i);
        cr_assert_eq(
            batch_builder_add(&b, ts_ms + i, key, klen, value, (int32_t)value_bytes, NULL, 0), 0);
    }
    free(value);
    size_t len = 0;
    cr_assert_eq(batch_builder_finish(&b, z, &len), 0);
    return len;
}

int fx_check_batch(const uint8_t *buf, size_t len, uint32_t seed, struct batch_zctx *z)
{
    static uint8_t out[FX_BATCH_MAX];
    struct batch_reader br;
    if (batch_reader_open(&br, buf, len, FX_BATCH_MAX, z, out, sizeof(out)) != 0 ||
        batch_bytes(&br.hdr) != len) {
        return -1;
    }
    struct batch_record rec;
    uint8_t expect[4096];
    int n = 0;
    int rc;
    while ((rc = batch_reader_next(&br, &rec)) == 1) {
        char key[32];
        int klen = snprintf(key, sizeof(key), "k%u-%d", seed, n);
        if (rec.key_len != klen || memcmp(rec.key, key, (size_t)klen) != 0 || rec.value_len < 0 ||
            (size_t)rec.value_len > sizeof(expect)) {
            return -1;
        }
        fx_fill_value(expect, (uint32_t)rec.value_len, seed, (uint32_t)n);
        if (memcmp(rec.value, expect, (size_t)rec.value_len) != 0) {
            return -1;
        }
        n++;
    }
    return rc == 0 ? n : -1;
}

struct sync_append {
    struct part_append a;
    bool done;
    int rc;
};

static void sync_append_done(struct part_append *a, int rc)
{
    struct sync_append *s = (struct sync_append *)a;
    s->done = true;
    s->rc = rc;
}

int64_t fx_append(struct fx *f, const uint8_t *batch, size_t len, bool durable)
{
    uint8_t *copy = malloc(len);
    cr_assert_not_null(copy);
    memcpy(copy, batch, len);
    struct sync_append s = {
        .a = {.batch = copy, .bytes = len, .durable = durable, .done = sync_append_done}};
    int rc = part_append(&f->part, &s.a);
    while (rc == 0 && !s.done) {
        cr_assert_geq(ring_run(&f->ring, -1), 0);
    }
    free(copy);
    if (rc != 0) {
        return rc;
    }
    return s.rc != 0 ? s.rc : s.a.hdr.offset_base;
}

int fx_read_one(struct fx *f, int64_t offset, uint8_t *buf, size_t cap, size_t *len_out)
{
    struct part_read_result r;
    int rc = part_read(&f->part, offset, buf, cap, 1, &r);
    *len_out = r.bytes;
    return rc;
}
