/* `nagared --verify DIR` against a data directory the real broker wrote:
 * sound, it exits 0; with a flipped byte in a record, it names the file,
 * position and offset and exits 1. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/broker_support.h"

static struct bk B;

static void setup(void) { bk_init(&B); }
static void teardown(void) { bk_fini(&B); }

TestSuite(datadir_verify, .init = setup, .fini = teardown, .timeout = 120);

Test(datadir_verify, reports_a_flipped_record_byte_with_its_place)
{
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, "v", 1), 0);
    static uint8_t batch[BT_BYTES_MAX];
    for (uint32_t i = 0; i < 5; i++) {
        size_t len = bt_make(batch, sizeof(batch), 10, i, 1000, -1, 0, -1);
        int64_t off;
        cr_assert_eq(rq_produce(&c, "v", 0, batch, len, PROTO_ACKS_ALL, &off), 0);
    }
    cl_close(&c);
    bk_stop(&B);
    static char out[8192];
    cr_assert_eq(bk_verify(&B, out, sizeof(out)), 0, "%s", out);
    cr_assert_not_null(strstr(out, "; 0 problems"), "%s", out);
    char log[1024];
    snprintf(log, sizeof(log), "%s/topics/v/0/00000000000000000000.log", B.data_dir);
    int fd = open(log, O_RDWR);
    cr_assert_geq(fd, 0);
    uint8_t byte = 0x5a;
    cr_assert_eq(pwrite(fd, &byte, 1, 900), 1); /* in the second batch's records */
    close(fd);
    cr_assert_eq(bk_verify(&B, out, sizeof(out)), 1, "%s", out);
    cr_assert_not_null(strstr(out, "BAD "), "%s", out);
    cr_assert_not_null(strstr(out, "00000000000000000000.log at bytes ["), "%s", out);
    cr_assert_not_null(strstr(out, "(offsets [10, 20))"), "the damaged range: %s", out);
    cr_assert_not_null(strstr(out, "checksum mismatch"), "%s", out);
    cr_assert_not_null(strstr(out, "1 problem"), "%s", out);
}

/* The background scrubber finds damage in a sealed segment that no
 * consumer reads: the broker logs it on its own, and refuses to serve it. */
Test(datadir_verify, the_scrubber_finds_damage_nobody_reads)
{
    bk_set(&B, "scrub_bytes_per_sec=64m");
    bk_set(&B, "segment_bytes=4k");
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, "s", 1), 0);
    static uint8_t batch[BT_BYTES_MAX];
    for (uint32_t i = 0; i < 20; i++) {
        size_t len = bt_make(batch, sizeof(batch), 10, i, 1000, -1, 0, -1);
        int64_t off;
        cr_assert_eq(rq_produce(&c, "s", 0, batch, len, PROTO_ACKS_ALL, &off), 0);
    }
    cl_close(&c);
    bk_stop(&B);
    char log[1024];
    snprintf(log, sizeof(log), "%s/topics/s/0/00000000000000000000.log", B.data_dir);
    int fd = open(log, O_RDWR);
    cr_assert_geq(fd, 0);
    uint8_t byte = 0x5a;
    cr_assert_eq(pwrite(fd, &byte, 1, 1500), 1); /* a sealed segment's record */
    close(fd);
    bk_start(&B);
    bool found = false;
    for (int i = 0; i < 100 && !found; i++) { /* no client reads anything */
        usleep(50000);
        size_t len;
        char *text = bk_read_file(B.log_path, &len);
        found = text != NULL && strstr(text, "damaged range: offsets [20, 30)") != NULL;
        free(text);
    }
    cr_assert(found, "the scrubber reported the damage within 5 s");
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    struct fetched f;
    rq_fetch(&c, "s", 0, 20, &f); /* the damaged batch: offsets 20-29 */
    cr_assert_eq(f.err, -NG_ECORRUPT, "and it is not served: %s", err_str(f.err));
    rq_fetched_free(&f);
    rq_fetch(&c, "s", 0, 30, &f); /* the batch after it, and so on */
    cr_assert_eq(f.err, 0, "what follows is: %s", err_str(f.err));
    cr_assert_gt(f.records_bytes, 0);
    rq_fetched_free(&f);
    cl_close(&c);
    bk_stop(&B);
}
