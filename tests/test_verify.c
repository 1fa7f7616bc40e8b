/* Contract tests for storage/verify.h: offline verification of a
 * partition directory that reports every bad batch and index. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/verify.h"
#include "tests/storage_support.h"

static struct fx f;
static uint8_t batch[FX_BATCH_MAX];
static struct verify_problem seen[16];
static char seen_files[16][SEG_NAME_BYTES];
static int seen_n;

static void setup(void)
{
    fx_setup(&f);
    seen_n = 0;
}

static void teardown(void) { fx_teardown(&f); }

TestSuite(verify, .init = setup, .fini = teardown);

static void note(void *arg, const struct verify_problem *p)
{
    (void)arg;
    cr_assert_lt(seen_n, 16);
    seen[seen_n] = *p;
    snprintf(seen_files[seen_n], SEG_NAME_BYTES, "%s", p->file);
    seen_n++;
}

/* 30 batches of 3 records over several segments; closed. */
static void make_log(void)
{
    f.cfg.segment_bytes = 4096;
    cr_assert_eq(fx_open(&f), 0);
    for (uint32_t i = 0; i < 30; i++) {
        size_t len =
            fx_batch(batch, sizeof(batch), 3, 200, i, 1000 * (int64_t)i, BATCH_CODEC_NONE, NULL);
        cr_assert_geq(fx_append(&f, batch, len, true), 0);
    }
    fx_close(&f);
}

static void flip(const char *name, off_t at)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", f.dir, name);
    int fd = open(path, O_RDWR);
    cr_assert_geq(fd, 0);
    uint8_t b;
    cr_assert_eq(pread(fd, &b, 1, at), 1);
    b ^= 0x40;
    cr_assert_eq(pwrite(fd, &b, 1, at), 1);
    close(fd);
}

static struct verify_stats run(void)
{
    struct verify_stats st = {0};
    cr_assert_eq(verify_partition(f.dir, FX_BATCH_MAX, note, NULL, &st), 0);
    return st;
}

Test(verify, a_sound_log_has_no_problems)
{
    make_log();
    struct verify_stats st = run();
    cr_assert_eq(st.problems, 0);
    cr_assert_eq(st.batches, 30);
    cr_assert_eq(st.records, 90);
    cr_assert_gt(st.segments, 3);
}

Test(verify, a_flipped_record_byte_is_one_problem_and_the_rest_is_still_checked)
{
    make_log();
    char path[512];
    snprintf(path, sizeof(path), "%s/00000000000000000000.log", f.dir);
    int fd = open(path, O_RDONLY);
    uint8_t len_field[4];
    cr_assert_eq(pread(fd, len_field, 4, BATCH_OFF_LENGTH), 4);
    close(fd);
    off_t first = BATCH_PREFIX_BYTES + (off_t)get_be32(len_field);
    flip("00000000000000000000.log", first + BATCH_HEADER_BYTES + 100); /* second batch's records */
    struct verify_stats st = run();
    cr_assert_eq(st.problems, 1);
    cr_assert_eq(seen[0].reason, -NG_ECHECKSUM);
    cr_assert_str_eq(seen_files[0], "00000000000000000000.log");
    cr_assert_eq(seen[0].offset, 3);
    cr_assert_eq(seen[0].offset_end, 6, "exactly the damaged batch's offsets");
    cr_assert_eq(seen[0].position, (uint64_t)first);
    cr_assert_eq(seen[0].bytes, (uint64_t)first, "exactly the damaged batch's bytes");
    cr_assert_not(seen[0].torn_tail);
    cr_assert_eq(st.batches, 29);
}

Test(verify, a_damaged_length_names_exactly_the_batch_it_belongs_to)
{
    make_log();
    char path[512];
    snprintf(path, sizeof(path), "%s/00000000000000000000.log", f.dir);
    int fd = open(path, O_RDWR);
    uint8_t len_field[4];
    cr_assert_eq(pread(fd, len_field, 4, BATCH_OFF_LENGTH), 4);
    off_t one = BATCH_PREFIX_BYTES + (off_t)get_be32(len_field);
    /* The second batch's length now reaches into the fourth: a resync
     * that trusted it would skip the third. */
    put_be32(len_field, (uint32_t)(2 * one + 100 - BATCH_PREFIX_BYTES));
    cr_assert_eq(pwrite(fd, len_field, 4, one + BATCH_OFF_LENGTH), 4);
    close(fd);
    struct verify_stats st = run();
    cr_assert_eq(st.problems, 1);
    cr_assert_eq(seen[0].position, (uint64_t)one);
    cr_assert_eq(seen[0].bytes, (uint64_t)one);
    cr_assert_eq(seen[0].offset, 3);
    cr_assert_eq(seen[0].offset_end, 6);
    cr_assert_eq(st.batches, 29);
}

Test(verify, bad_batches_in_two_segments_are_both_reported)
{
    make_log();
    flip("00000000000000000000.log", 8); /* the first batch's length */
    char second[SEG_NAME_BYTES];
    int64_t base = 3 * 5; /* the second segment starts after five batches */
    seg_name(second, base, "log");
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", f.dir, second);
    cr_assert_eq(access(path, F_OK), 0, "the layout these offsets assume");
    flip(second, 300);
    struct verify_stats st = run();
    cr_assert_eq(st.problems, 2);
    cr_assert_eq(st.batches, 28);
}

static void cut_by(const char *name, off_t bytes)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", f.dir, name);
    struct stat sb;
    cr_assert_eq(stat(path, &sb), 0);
    cr_assert_eq(truncate(path, sb.st_size - bytes), 0);
}

Test(verify, a_torn_tail_a_short_sealed_segment_and_a_damaged_index_are_reported)
{
    make_log();
    char last[SEG_NAME_BYTES];
    seg_name(last, 75, "log"); /* five batches per segment */
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", f.dir, last);
    cr_assert_eq(access(path, F_OK), 0, "the layout these offsets assume");
    cut_by("00000000000000000000.log", 10); /* sealed: its last batch is lost */
    cut_by(last, 10);                       /* the active one: a torn tail */
    flip("00000000000000000000.index", 5);
    run();
    cr_assert_eq(seen_n, 3);
    cr_assert_eq(seen[0].reason, -NG_ETRUNCATED);
    cr_assert_not(seen[0].torn_tail, "a sealed segment is never cut");
    cr_assert_eq(seen[0].offset, 12);
    cr_assert_eq(seen[0].offset_end, 15, "lost up to the next segment");
    cr_assert_str_eq(seen_files[1], "00000000000000000000.index");
    cr_assert_eq(seen[1].offset, -1);
    cr_assert_str_eq(seen_files[2], last);
    cr_assert(seen[2].torn_tail, "nothing good after it in the last segment");
    cr_assert_eq(seen[2].offset, 87);
    cr_assert_eq(seen[2].offset_end, -1);
}
