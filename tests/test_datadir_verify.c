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

/* The text after the last line erase (ESC [K) of a terminal's output. */
static const char *after_last_erase(const char *out)
{
    const char *last = out;
    for (const char *p = strstr(out, "\033[K"); p != NULL; p = strstr(p + 3, "\033[K")) {
        last = p + 3;
    }
    return last;
}

/* On a terminal (script(1)'s), --verify draws its progress on stderr and
 * erases it before each line of its report. */
Test(datadir_verify, shows_progress_on_a_terminal_and_erases_it_for_the_report)
{
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    static uint8_t batch[BT_BYTES_MAX];
    for (int32_t t = 0; t < 3; t++) {
        char topic[8];
        snprintf(topic, sizeof(topic), "p%d", t);
        cr_assert_eq(rq_create(&c, topic, 2), 0);
        size_t len = bt_make(batch, sizeof(batch), 10, 0, 1000, -1, 0, -1);
        int64_t off;
        cr_assert_eq(rq_produce(&c, topic, 1, batch, len, PROTO_ACKS_ALL, &off), 0);
    }
    cl_close(&c);
    bk_stop(&B);
    const char *nagared = getenv("NAGARED");
    cr_assert(nagared != NULL, "set NAGARED to the nagared binary");
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "script -qec \"'%s' --verify '%s'\" /dev/null", nagared, B.data_dir);
    static char out[16384];
    cr_assert_eq(bk_run(cmd, out, sizeof(out)), 0, "%s", out);
    cr_assert_not_null(strstr(out, "\r\033[Kverifying: "), "a progress line: %s", out);
    cr_assert_not_null(strstr(out, " partitions"), "it counts partitions: %s", out);
    const char *tail = after_last_erase(out);
    cr_assert(strncmp(tail, "verified ", 9) == 0, "erased before the summary: %s", tail);
    snprintf(cmd, sizeof(cmd), "'%s' --verify '%s' 2>&1", nagared, B.data_dir);
    cr_assert_eq(bk_run(cmd, out, sizeof(out)), 0, "%s", out);
    cr_assert_null(strchr(out, '\r'), "no progress where stderr is not a terminal: %s", out);
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
