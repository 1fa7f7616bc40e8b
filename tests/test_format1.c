/*
 * tests/test_format1.c — storage/format1.h: format-1 batches checked and
 * upgraded in place, and the upgrade of a partition directory: every
 * format-1 batch rewritten, damaged bytes kept, format-2 segments and a
 * second run left alone, a copy left by a crash removed; the partition then
 * opens and reads every record. The format-1 batches are made from format-2
 * ones by format1_batch_downgrade(); tests/test_format1_dir.sh covers a
 * directory written by the nagared of format 1 itself.
 */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/file.h"
#include "storage/format1.h"
#include "tests/storage_support.h"

#define SEGMENT "00000000000000000000.log"

static struct fx F;

static void setup(void) { fx_setup(&F); }
static void teardown(void) { fx_teardown(&F); }

TestSuite(format1, .init = setup, .fini = teardown);

static void write_file(const char *name, const uint8_t *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", F.dir, name);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(p, 1, n, f), n);
    cr_assert_eq(fclose(f), 0);
}

static size_t read_file(const char *name, uint8_t *p, size_t cap)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", F.dir, name);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    size_t n = fread(p, 1, cap, f);
    fclose(f);
    return n;
}

static int upgrade(void)
{
    int dirfd = open(F.dir, O_RDONLY | O_DIRECTORY);
    cr_assert_geq(dirfd, 0);
    int rc = format1_upgrade_dir(dirfd, F.dir, FX_BATCH_MAX, NULL);
    close(dirfd);
    return rc;
}

/* A segment of `count` batches of 3 records (seeds 0..count-1, zstd for odd
 * ones) in format 1 when format1, with `gap` damaged bytes after batch 1.
 * Batch starts go to at[]; returns the segment's size. */
static size_t segment(uint8_t *buf, size_t cap, int count, bool format1, size_t gap, size_t *at)
{
    size_t pos = 0;
    for (int i = 0; i < count; i++) {
        at[i] = pos;
        size_t n = fx_batch(buf + pos, cap - pos, 3, 100, (uint32_t)i, 1000 * i,
                            i % 2 ? BATCH_CODEC_ZSTD : BATCH_CODEC_NONE, &F.zctx);
        batch_set_offset_base(buf + pos, 3 * i);
        if (format1) {
            format1_batch_downgrade(buf + pos, n);
            size_t bytes = 0;
            cr_assert_eq(format1_batch_check(buf + pos, n, FX_BATCH_MAX, &bytes), 0);
            cr_assert_eq(bytes, n);
        }
        pos += n;
        if (i == 1 && gap > 0) {
            memset(buf + pos, 0x5a, gap);
            pos += gap;
        }
    }
    return pos;
}

Test(format1, batch_upgrade_is_format2_and_downgrade_its_inverse)
{
    uint8_t a[8192], b[8192], value[200];
    memset(value, 'v', sizeof(value)); /* compresses: a zstd batch */
    struct batch_builder bb;
    batch_builder_init(&bb, a, sizeof(a), BATCH_CODEC_ZSTD, -1, 0, -1);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(batch_builder_add(&bb, 123 + i, "k", 1, value, sizeof(value), NULL, 0), 0);
    }
    size_t n = 0;
    cr_assert_eq(batch_builder_finish(&bb, &F.zctx, &n), 0);
    cr_assert_eq(get_be16(a + BATCH_OFF_ATTRIBUTES) & BATCH_ATTR_CODEC_MASK, BATCH_CODEC_ZSTD);
    memcpy(b, a, n);
    format1_batch_downgrade(b, n);
    cr_assert_eq(b[FORMAT1_OFF_VERSION], FORMAT1_VERSION);
    cr_assert_eq(get_be16(b + BATCH_OFF_ATTRIBUTES) & BATCH_ATTR_CODEC_MASK, FORMAT1_CODEC_ZSTD);
    struct batch_header h;
    cr_assert_neq(batch_validate(b, n, FX_BATCH_MAX, &h), 0);
    format1_batch_upgrade(b, n);
    cr_assert_eq(memcmp(a, b, n), 0);
    cr_assert_eq(batch_validate(b, n, FX_BATCH_MAX, &h), 0);
}

Test(format1, batch_check_refuses_a_bad_checksum_version_or_length)
{
    uint8_t a[8192];
    size_t n = fx_batch(a, sizeof(a), 3, 50, 1, 0, BATCH_CODEC_NONE, NULL);
    format1_batch_downgrade(a, n);
    size_t bytes = 0;
    cr_assert_eq(format1_batch_check(a, n - 1, FX_BATCH_MAX, &bytes), -NG_ETRUNCATED);
    cr_assert_eq(format1_batch_check(a, n, n - 1, &bytes), -NG_ETOOBIG);
    a[n - 1] ^= 1;
    cr_assert_eq(format1_batch_check(a, n, FX_BATCH_MAX, &bytes), -NG_ECHECKSUM);
    a[n - 1] ^= 1;
    a[FORMAT1_OFF_VERSION] = 2;
    cr_assert_eq(format1_batch_check(a, n, FX_BATCH_MAX, &bytes), -NG_EBADVERSION);
    /* Format 1 had no attribute bits past the timestamp type. */
    n = fx_batch(a, sizeof(a), 3, 50, 1, 0, BATCH_CODEC_NONE, NULL);
    put_be16(a + BATCH_OFF_ATTRIBUTES, 0x10);
    format1_batch_downgrade(a, n);
    cr_assert_eq(format1_batch_check(a, n, FX_BATCH_MAX, &bytes), -NG_EBADCODEC);
}

Test(format1, upgrade_rewrites_every_batch_and_keeps_damaged_bytes)
{
    static uint8_t buf[1 << 16], got[1 << 16];
    size_t at[6];
    size_t n = segment(buf, sizeof(buf), 6, true, 37, at);
    /* and a torn tail: half of a batch */
    size_t tail = fx_batch(buf + n, sizeof(buf) - n, 3, 100, 99, 0, BATCH_CODEC_NONE, NULL);
    format1_batch_downgrade(buf + n, tail);
    n += tail / 2;
    write_file(SEGMENT, buf, n);
    cr_assert_eq(upgrade(), 0);
    cr_assert_eq(read_file(SEGMENT, got, sizeof(got)), n, "the size is kept");
    for (int i = 0; i < 6; i++) {
        size_t end = i < 5 ? at[i + 1] : n - tail / 2;
        if (i == 1) {
            end -= 37;
            cr_assert_eq(memcmp(got + end, buf + end, 37), 0, "damaged bytes kept");
        }
        cr_assert_eq(fx_check_batch(got + at[i], end - at[i], (uint32_t)i, &F.zctx), 3, "batch %d",
                     i);
    }
    cr_assert_eq(memcmp(got + n - tail / 2, buf + n - tail / 2, tail / 2), 0, "torn tail kept");
}

Test(format1, format2_segments_and_a_second_run_are_left_alone)
{
    static uint8_t buf[1 << 16];
    size_t at[4];
    size_t n = segment(buf, sizeof(buf), 4, false, 0, at);
    write_file(SEGMENT, buf, n);
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", F.dir, SEGMENT);
    struct stat before, after;
    cr_assert_eq(stat(path, &before), 0);
    cr_assert_eq(upgrade(), 0);
    cr_assert_eq(stat(path, &after), 0);
    cr_assert_eq(before.st_ino, after.st_ino, "a format-2 segment is not rewritten");
    /* Format 1, upgraded once, then left alone. */
    n = segment(buf, sizeof(buf), 4, true, 0, at);
    write_file(SEGMENT, buf, n);
    cr_assert_eq(upgrade(), 0);
    cr_assert_eq(stat(path, &before), 0);
    cr_assert_eq(upgrade(), 0);
    cr_assert_eq(stat(path, &after), 0);
    cr_assert_eq(before.st_ino, after.st_ino, "a second run rewrites nothing");
}

/* The upgrade adds what it rewrote to a running progress: bytes of every
 * format-1 segment and one per segment; a format-2 one adds nothing. The
 * line is erased at the end, before the log line that follows. */
Test(format1, upgrade_adds_its_bytes_and_segments_to_a_progress_and_erases_its_line)
{
    static uint8_t buf[1 << 16];
    size_t at[4];
    size_t n1 = segment(buf, sizeof(buf), 4, true, 0, at);
    write_file(SEGMENT, buf, n1);
    size_t n2 = segment(buf, sizeof(buf), 3, false, 0, at);
    write_file("00000000000000000100.log", buf, n2);
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    cr_assert_eq(fcntl(fds[0], F_SETFL, O_NONBLOCK), 0);
    struct progress p;
    progress_start(&p, fds[1], true, "upgrading", "segments", 0);
    progress_update(&p, 1000, 2); /* two directories before this one */
    int dirfd = open(F.dir, O_RDONLY | O_DIRECTORY);
    cr_assert_geq(dirfd, 0);
    cr_assert_eq(format1_upgrade_dir(dirfd, F.dir, FX_BATCH_MAX, &p), 0);
    cr_assert_eq(p.bytes, 1000 + n1, "the format-1 segment's bytes, not the format-2 one's");
    cr_assert_eq(p.count, 3);
    cr_assert_not(p.shown, "erased at the end");
    char out[4096];
    ssize_t got = read(fds[0], out, sizeof(out) - 1);
    cr_assert_gt(got, 0);
    out[got] = '\0';
    cr_assert_not_null(strstr(out, "\r\033[Kupgrading: "), "drawn: %s", out + 1);
    size_t clear = strlen("\r\033[K");
    cr_assert_eq(strcmp(out + got - (ssize_t)clear, "\r\033[K"), 0, "ends erased");
    /* A second run has nothing to upgrade: nothing is added or drawn. */
    cr_assert_eq(format1_upgrade_dir(dirfd, F.dir, FX_BATCH_MAX, &p), 0);
    cr_assert_eq(p.count, 3);
    cr_assert_lt(read(fds[0], out, sizeof(out)), 0, "nothing drawn");
    close(dirfd);
    close(fds[0]);
    close(fds[1]);
}

Test(format1, a_copy_left_by_a_crash_is_removed_and_the_partition_reads_every_record)
{
    static uint8_t buf[1 << 16];
    size_t at[5];
    size_t n = segment(buf, sizeof(buf), 5, true, 0, at);
    write_file(SEGMENT, buf, n);
    write_file(SEGMENT FORMAT1_UPGRADE_SUFFIX, buf, n / 3);
    cr_assert_eq(fx_open(&F), 0);
    char path[512];
    snprintf(path, sizeof(path), "%s/%s%s", F.dir, SEGMENT, FORMAT1_UPGRADE_SUFFIX);
    cr_assert_eq(access(path, F_OK), -1, "the copy is gone");
    cr_assert_eq(part_offset_next(&F.part), 15);
    for (int i = 0; i < 5; i++) {
        uint8_t one[8192];
        size_t len = 0;
        cr_assert_eq(fx_read_one(&F, 3 * i, one, sizeof(one), &len), 0);
        cr_assert_eq(fx_check_batch(one, len, (uint32_t)i, &F.zctx), 3, "batch %d", i);
    }
    cr_assert_eq(fx_append(&F, buf + at[0], at[1] - at[0], true), -NG_EBADVERSION,
                 "format-1 batches are not appended");
}
