/* Contract tests for storage/epochs.h: the leader epoch cache in memory,
 * KIP-279's answers, and its file (encoding, every refusal, the atomic
 * store). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "base/bytes.h"
#include "base/err.h"
#include "base/log.h"
#include "storage/epochs.h"

static struct epochs e;
static char dir[256];
static int dirfd_ = -1;
static struct ring ring;

static void setup(void)
{
    log_set_level(LOG_OFF);
    epochs_init(&e);
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/nagare-epochs-XXXXXX", tmp ? tmp : "/tmp");
    cr_assert_not_null(mkdtemp(dir));
    dirfd_ = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    cr_assert_geq(dirfd_, 0);
    cr_assert_eq(ring_init(&ring, 8), 0);
}

static void teardown(void)
{
    epochs_fini(&e);
    ring_fini(&ring);
    close(dirfd_);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(epochs, .init = setup, .fini = teardown);

/* e := (0,0) (2,100) (5,250) */
static void three(void)
{
    cr_assert_eq(epochs_add(&e, 0, 0), 0);
    cr_assert_eq(epochs_add(&e, 2, 100), 0);
    cr_assert_eq(epochs_add(&e, 5, 250), 0);
}

static void expect_end(int32_t asked, int64_t log_end, int32_t epoch, int64_t end)
{
    int32_t got_epoch = -7;
    int64_t got_end = -7;
    epochs_end_offset(&e, asked, log_end, &got_epoch, &got_end);
    cr_assert_eq(got_epoch, epoch, "epoch asked %d: epoch %d, want %d", asked, got_epoch, epoch);
    cr_assert_eq(got_end, end, "epoch asked %d: end %lld, want %lld", asked, (long long)got_end,
                 (long long)end);
}

Test(epochs, an_empty_cache_has_no_last_epoch_and_answers_the_log_end)
{
    cr_assert_eq(epochs_last(&e), EPOCHS_UNDEFINED);
    expect_end(3, 40, 3, 40);
    expect_end(-1, 40, EPOCHS_UNDEFINED, EPOCHS_UNDEFINED);
}

Test(epochs, end_offset_is_the_next_higher_epochs_start_or_the_log_end)
{
    three();
    cr_assert_eq(epochs_last(&e), 5);
    expect_end(0, 300, 0, 100); /* an epoch in the cache */
    expect_end(1, 300, 0, 100); /* between two: the largest below */
    expect_end(2, 300, 2, 250);
    expect_end(4, 300, 2, 250);
    expect_end(5, 300, 5, 300); /* the newest: the log end */
    expect_end(9, 300, 5, 300); /* newer than any: the newest's answer */
}

Test(epochs, an_epoch_below_the_first_is_undefined)
{
    cr_assert_eq(epochs_add(&e, 3, 10), 0);
    expect_end(2, 50, EPOCHS_UNDEFINED, EPOCHS_UNDEFINED);
    expect_end(-1, 50, EPOCHS_UNDEFINED, EPOCHS_UNDEFINED);
    expect_end(3, 50, 3, 50);
}

Test(epochs, truncating_the_end_drops_epochs_that_start_at_or_past_it)
{
    three();
    cr_assert_eq(epochs_truncate_end(&e, 251), 0);
    cr_assert_eq(epochs_truncate_end(&e, 250), 1);
    cr_assert_eq(epochs_last(&e), 2);
    expect_end(5, 200, 2, 200);
    cr_assert_eq(epochs_truncate_end(&e, 0), 2);
    cr_assert_eq(e.count, 0);
}

Test(epochs, truncating_the_start_keeps_the_epoch_covering_it_from_there)
{
    three();
    cr_assert_not(epochs_truncate_start(&e, 0));
    cr_assert(epochs_truncate_start(&e, 120)); /* in epoch 2: epoch 0 goes */
    cr_assert_eq(e.count, 2);
    cr_assert_eq(e.v[0].epoch, 2);
    cr_assert_eq(e.v[0].offset_start, 120);
    expect_end(0, 300, EPOCHS_UNDEFINED, EPOCHS_UNDEFINED);
    cr_assert(epochs_truncate_start(&e, 250)); /* exactly epoch 5's start */
    cr_assert_eq(e.count, 1);
    cr_assert_eq(e.v[0].epoch, 5);
    cr_assert_eq(e.v[0].offset_start, 250);
    cr_assert_not(epochs_truncate_start(&e, 250));
}

Test(epochs, the_cache_is_bounded_and_forgets_the_oldest)
{
    for (uint32_t i = 0; i < EPOCHS_MAX; i++) {
        cr_assert_eq(epochs_add(&e, (int32_t)i, (int64_t)i * 10), 0);
    }
    cr_assert_eq(e.count, EPOCHS_MAX);
    cr_assert_eq(epochs_add(&e, (int32_t)EPOCHS_MAX, (int64_t)EPOCHS_MAX * 10), 0);
    cr_assert_eq(e.count, EPOCHS_MAX);
    cr_assert_eq(e.v[0].epoch, 1);
    cr_assert_eq(epochs_last(&e), (int32_t)EPOCHS_MAX);
    expect_end(0, INT64_MAX, EPOCHS_UNDEFINED, EPOCHS_UNDEFINED);
}

static size_t encode(uint8_t *buf, size_t cap)
{
    size_t n = epochs_encode(&e, buf, cap);
    cr_assert_eq(n, EPOCHS_FILE_BYTES(e.count));
    return n;
}

Test(epochs, encoding_round_trips_and_refuses_a_short_buffer)
{
    three();
    uint8_t buf[256];
    size_t n = encode(buf, sizeof(buf));
    cr_assert_eq(epochs_encode(&e, buf, n - 1), 0);
    struct epochs back;
    epochs_init(&back);
    cr_assert_eq(epochs_decode(&back, buf, n), 0);
    cr_assert_eq(back.count, 3);
    for (uint32_t i = 0; i < 3; i++) {
        cr_assert_eq(back.v[i].epoch, e.v[i].epoch);
        cr_assert_eq(back.v[i].offset_start, e.v[i].offset_start);
    }
    epochs_fini(&back);
}

/* Decoding buf[0..len) fails with want and leaves the cache empty. */
static void refused(const uint8_t *buf, size_t len, int want)
{
    struct epochs back;
    epochs_init(&back);
    cr_assert_eq(epochs_add(&back, 1, 1), 0);
    int rc = epochs_decode(&back, buf, len);
    cr_assert_eq(rc, want, "decode: %s, want %s", err_str(rc), err_str(want));
    cr_assert_eq(back.count, 0);
    epochs_fini(&back);
}

/* Recomputes the checksum after a deliberate change, so that the check
 * under test is the one that refuses. */
static void reseal(uint8_t *buf, size_t len)
{
    put_be64(buf + len - EPOCHS_SUM_BYTES, XXH3_64bits(buf, len - EPOCHS_SUM_BYTES));
}

Test(epochs, decoding_refuses_every_bad_byte_and_each_broken_rule)
{
    three();
    uint8_t good[256];
    size_t n = encode(good, sizeof(good));
    uint8_t buf[256];
    for (size_t i = 0; i < n; i++) { /* any flipped byte */
        memcpy(buf, good, n);
        buf[i] ^= 0x20;
        struct epochs back;
        epochs_init(&back);
        cr_assert_neq(epochs_decode(&back, buf, n), 0, "byte %zu flipped was accepted", i);
        epochs_fini(&back);
    }
    for (size_t len = 0; len < n; len++) { /* any torn length */
        refused(good, len, -NG_ECORRUPT);
    }
    memcpy(buf, good, n);
    put_be32(buf + 4, 2);
    reseal(buf, n);
    refused(buf, n, -NG_EBADVERSION);
    memcpy(buf, good, n);
    put_be32(buf + 8, EPOCHS_MAX + 1);
    reseal(buf, n);
    refused(buf, n, -NG_ECORRUPT); /* count past the bound */
    memcpy(buf, good, n);
    put_be32(buf + EPOCHS_HEAD_BYTES + EPOCHS_ENTRY_BYTES, 0); /* epoch 2 -> 0: not ascending */
    reseal(buf, n);
    refused(buf, n, -NG_ECORRUPT);
    memcpy(buf, good, n);
    put_be64(buf + EPOCHS_HEAD_BYTES + 2 * EPOCHS_ENTRY_BYTES + 4, 100); /* start 250 -> 100 */
    reseal(buf, n);
    refused(buf, n, -NG_ECORRUPT);
    memcpy(buf, good, n);
    put_be32(buf + EPOCHS_HEAD_BYTES, (uint32_t)-3); /* a negative epoch */
    reseal(buf, n);
    refused(buf, n, -NG_ECORRUPT);
}

Test(epochs, a_missing_file_loads_as_enoent) { cr_assert_eq(epochs_load(&e, dirfd_), -ENOENT); }

Test(epochs, store_then_load_gives_the_same_cache_and_leaves_no_temporary)
{
    three();
    cr_assert_eq(epochs_store(&e, dirfd_, &ring), 0);
    struct epochs back;
    epochs_init(&back);
    cr_assert_eq(epochs_load(&back, dirfd_), 0);
    cr_assert_eq(back.count, 3);
    cr_assert_eq(back.v[2].epoch, 5);
    cr_assert_eq(back.v[2].offset_start, 250);
    epochs_fini(&back);
    struct stat st;
    cr_assert_neq(fstatat(dirfd_, EPOCHS_FILE_TMP, &st, 0), 0);
    cr_assert_eq(fstatat(dirfd_, EPOCHS_FILE, &st, 0), 0);
    cr_assert_eq(st.st_size, (off_t)EPOCHS_FILE_BYTES(3));
}

Test(epochs, a_store_replaces_the_file_whole)
{
    three();
    cr_assert_eq(epochs_store(&e, dirfd_, &ring), 0);
    cr_assert_eq(epochs_truncate_end(&e, 100), 2);
    cr_assert_eq(epochs_store(&e, dirfd_, &ring), 0);
    struct epochs back;
    epochs_init(&back);
    cr_assert_eq(epochs_load(&back, dirfd_), 0);
    cr_assert_eq(back.count, 1);
    cr_assert_eq(back.v[0].epoch, 0);
    epochs_fini(&back);
}

Test(epochs, a_file_too_large_is_refused_before_it_is_read)
{
    int fd = openat(dirfd_, EPOCHS_FILE, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert_geq(fd, 0);
    cr_assert_eq(ftruncate(fd, (off_t)EPOCHS_FILE_BYTES(EPOCHS_MAX) + 1), 0);
    close(fd);
    cr_assert_eq(epochs_load(&e, dirfd_), -NG_ECORRUPT);
}
