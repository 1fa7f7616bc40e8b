/*
 * A full disk, against the real nagared on a small
 * tmpfs: produce until the disk is full; every later produce gets an error,
 * fetches keep working and never see a torn record; once space is freed,
 * produce resumes with no gap in the offsets. Mounting needs root: the test
 * is skipped with a message otherwise.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/broker_support.h"

#define TMPFS_OPTIONS "size=24m"
#define BALLAST_BYTES (4u << 20)

static struct bk B;
static bool mounted;

static void setup(void) { bk_init(&B); }

static void teardown(void)
{
    if (B.pid != 0) {
        bk_stop(&B);
    }
    if (mounted) {
        cr_assert_eq(umount2(B.data_dir, MNT_DETACH), 0, "umount: %s", strerror(errno));
        mounted = false;
    }
    bk_fini(&B);
}

TestSuite(diskfull, .init = setup, .fini = teardown, .timeout = 120);

static void mount_small_disk(void)
{
    if (geteuid() != 0) {
        cr_skip_test("needs root to mount a tmpfs (running as uid %d)", (int)geteuid());
    }
    cr_assert_eq(mkdir(B.data_dir, 0755), 0);
    if (mount("tmpfs", B.data_dir, "tmpfs", 0, TMPFS_OPTIONS) != 0) {
        cr_skip_test("cannot mount a tmpfs here: %s", strerror(errno));
    }
    mounted = true;
}

/* A file taking space that the test gives back later. */
static void write_ballast(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert_geq(fd, 0);
    static uint8_t chunk[1 << 16];
    memset(chunk, 0xab, sizeof(chunk));
    for (size_t done = 0; done < BALLAST_BYTES; done += sizeof(chunk)) {
        cr_assert_eq(write(fd, chunk, sizeof(chunk)), (ssize_t)sizeof(chunk));
    }
    close(fd);
}

/* Reads the whole partition and checks every batch is whole and follows
 * the previous one; returns the offset after the last. */
static int64_t read_all(struct cl *c)
{
    int64_t offset = 0;
    for (;;) {
        struct fetched f;
        rq_fetch(c, "full", 0, offset, &f);
        cr_assert_eq(f.err, 0, "fetch at %lld: %s", (long long)offset, err_str(f.err));
        if (f.records_bytes == 0) {
            rq_fetched_free(&f);
            return offset;
        }
        const uint8_t *batch;
        size_t len;
        for (size_t i = 0; bt_at(f.records, f.records_bytes, i, &batch, &len); i++) {
            cr_assert_eq((int64_t)get_be64(batch), offset, "batches follow each other");
            offset += (int64_t)get_be32(batch + BATCH_OFF_RECORD_COUNT);
        }
        rq_fetched_free(&f);
    }
}

Test(diskfull, produce_fails_while_full_and_resumes_without_a_gap)
{
    mount_small_disk();
    char ballast[sizeof(B.data_dir) + 16];
    snprintf(ballast, sizeof(ballast), "%s/ballast", B.data_dir);
    write_ballast(ballast);
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, "full", 1), 0);
    static uint8_t batch[BT_BYTES_MAX];
    size_t len = bt_make_sized(batch, sizeof(batch), 250, 2000, 1, BATCH_CODEC_NONE, NULL);
    int64_t acked = 0; /* offset after the last acknowledged batch */
    int err = 0;
    for (int i = 0; i < 100 && err == 0; i++) {
        int64_t off = -1;
        err = rq_produce(&c, "full", 0, batch, len, PROTO_ACKS_ALL, &off);
        if (err == 0) {
            cr_assert_eq(off, acked, "offsets follow each other");
            acked = off + 250;
        }
    }
    cr_assert_eq(err, -NG_EDISK_FULL, "the disk filled: %s", err_str(err));
    for (int i = 0; i < 3; i++) { /* still full: still refused */
        int64_t off;
        cr_assert_eq(rq_produce(&c, "full", 0, batch, len, PROTO_ACKS_ALL, &off), -NG_EDISK_FULL);
    }
    cr_assert_eq(read_all(&c), acked, "everything acknowledged is there, nothing torn");
    cr_assert_eq(unlink(ballast), 0);
    int64_t off = -1;
    cr_assert_eq(rq_produce(&c, "full", 0, batch, len, PROTO_ACKS_ALL, &off), 0);
    cr_assert_eq(off, acked, "no gap after the disk filled");
    cr_assert_eq(read_all(&c), acked + 250);
    cl_close(&c);
    bk_stop(&B);
    bk_start(&B); /* and recovery agrees */
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(read_all(&c), acked + 250);
    cl_close(&c);
}
