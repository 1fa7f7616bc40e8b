/*
 * Network robustness against the real nagared: 10,000 idle connections,
 * slowloris senders, clients that never read their answers, and resets in
 * the middle of a request. Through each,
 * the broker stays up, a well-behaved client keeps getting correct answers,
 * and the broker's memory stays bounded (its RSS is logged and checked).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tests/broker_support.h"

/* The broker runs with a 256 MiB buffer budget (mem_bytes_max); its
 * resident memory may not pass that plus 64 MiB for everything else (the
 * worker's scratch, indexes, code) under any of these loads. */
#define MEM_BUDGET "mem_bytes_max=256m"
#define RSS_BOUND_KIB ((256u + 64u) * 1024)

static struct bk B;

static void setup(void)
{
    bk_init(&B);
    bk_set(&B, MEM_BUDGET);
}
static void teardown(void) { bk_fini(&B); }

TestSuite(robust, .init = setup, .fini = teardown, .timeout = 300);

static long rss_kib(pid_t pid, const char *field)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    size_t len;
    char *text = bk_read_file(path, &len);
    char *at = text ? strstr(text, field) : NULL;
    long kib = at ? strtol(at + strlen(field), NULL, 10) : -1;
    free(text);
    return kib;
}

static void check_rss(const char *when)
{
    long now = rss_kib(B.pid, "VmRSS:");
    long peak = rss_kib(B.pid, "VmHWM:");
    cr_log_info("broker RSS %s: %ld KiB (peak %ld KiB)", when, now, peak);
    cr_assert_gt(peak, 0);
    cr_assert_lt(peak, (long)RSS_BOUND_KIB, "broker RSS peak %ld KiB %s", peak, when);
}

/* A plain TCP connection to the broker, non-blocking after connect. */
static int raw_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0, "socket: %s", strerror(errno));
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(B.port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "connect: %s", strerror(errno));
    return fd;
}

/* Produces one batch and reads it back on a fresh connection. */
static void well_behaved_round_trip(const char *topic, uint32_t seed)
{
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    static uint8_t batch[BT_BYTES_MAX];
    size_t len = bt_make(batch, sizeof(batch), 5, seed, 1000, -1, 0, -1);
    int64_t offset = -1;
    cr_assert_eq(rq_produce(&c, topic, 0, batch, len, PROTO_ACKS_ALL, &offset), 0);
    struct fetched f;
    rq_fetch(&c, topic, 0, offset, &f);
    cr_assert_eq(f.err, 0);
    cr_assert_geq(f.records_bytes, len);
    cr_assert_eq(memcmp(f.records + 8, batch + 8, len - 8), 0, "the batch reads back whole");
    rq_fetched_free(&f);
    cl_close(&c);
}

static void create(const char *topic)
{
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, topic, 1), 0);
    cl_close(&c);
}

Test(robust, ten_thousand_idle_connections_do_not_stop_the_others)
{
    enum { IDLE = 10000 };
    struct rlimit rl = {.rlim_cur = IDLE + 1024, .rlim_max = IDLE + 1024};
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        cr_skip_test("cannot raise RLIMIT_NOFILE to %d: %s", IDLE + 1024, strerror(errno));
    }
    bk_start(&B); /* inherits the limit */
    create("idle");
    static int fds[IDLE];
    for (int i = 0; i < IDLE; i++) {
        fds[i] = raw_connect();
        if (i % 2500 == 2499) {
            well_behaved_round_trip("idle", (uint32_t)i);
        }
    }
    well_behaved_round_trip("idle", 1);
    check_rss("with 10,000 idle connections");
    for (int i = 0; i < IDLE; i++) {
        close(fds[i]);
    }
    well_behaved_round_trip("idle", 2);
    bk_stop(&B);
}

Test(robust, slowloris_senders_hold_nothing_up)
{
    enum { SLOW = 64 };
    bk_start(&B);
    create("slow");
    /* Each slow client sends an ApiVersions request one byte at a time, all
     * interleaved, while a normal client is served in between. */
    uint8_t frame[64];
    struct wr w = wr_make(frame, sizeof(frame));
    cr_assert_eq(proto_api_versions_req_encode(&w, 0, 7, proto_str_make("slow")), 0);
    int fds[SLOW];
    for (int i = 0; i < SLOW; i++) {
        fds[i] = raw_connect();
    }
    for (size_t byte = 0; byte < w.pos; byte++) {
        for (int i = 0; i < SLOW; i++) {
            cr_assert_eq(send(fds[i], frame + byte, 1, MSG_NOSIGNAL), 1);
        }
        if (byte % 8 == 0) {
            well_behaved_round_trip("slow", (uint32_t)byte);
        }
        struct timespec ts = {.tv_nsec = 2000000};
        nanosleep(&ts, NULL);
    }
    for (int i = 0; i < SLOW; i++) { /* each gets its answer in the end */
        struct timeval tv = {.tv_sec = 10};
        setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        uint8_t prefix[4];
        cr_assert_eq(recv(fds[i], prefix, 4, MSG_WAITALL), 4, "slow client %d: no answer", i);
        close(fds[i]);
    }
    check_rss("after slow senders");
    bk_stop(&B);
}

Test(robust, clients_that_never_read_are_paused_not_buffered)
{
    enum { DEAF = 16, REQUESTS = 400 };
    bk_start(&B);
    create("deaf");
    static uint8_t batch[BT_BYTES_MAX];
    size_t len = bt_make_sized(batch, sizeof(batch), 200, 4000, 9, BATCH_CODEC_NONE, NULL);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    for (int i = 0; i < 8; i++) { /* ~6 MB to fetch */
        int64_t off;
        cr_assert_eq(rq_produce(&c, "deaf", 0, batch, len, PROTO_ACKS_LEADER, &off), 0);
    }
    cl_close(&c);
    /* Each deaf client pipelines fetches of everything and reads nothing:
     * ~2.4 GB of answers between them if the broker kept them all. */
    int fds[DEAF];
    for (int d = 0; d < DEAF; d++) {
        struct cl deaf;
        cl_connect(&deaf, B.port, CL_TIMEOUT_MS_DEFAULT);
        fcntl(deaf.fd, F_SETFL, O_NONBLOCK);
        for (int i = 0; i < REQUESTS; i++) {
            (void)rq_fetch_send(&deaf, "deaf", 0, 0, 0, 1);
        }
        fds[d] = dup(deaf.fd);
        cl_close(&deaf);
    }
    well_behaved_round_trip("deaf", 5);
    check_rss("with 16 clients that never read");
    for (int d = 0; d < DEAF; d++) {
        close(fds[d]);
    }
    well_behaved_round_trip("deaf", 6);
    bk_stop(&B);
}

Test(robust, resets_in_the_middle_of_requests_leave_no_trace)
{
    enum { RESETS = 300 };
    bk_start(&B);
    create("reset");
    static uint8_t batch[BT_BYTES_MAX];
    size_t len = bt_make(batch, sizeof(batch), 50, 3, 1000, -1, 0, -1);
    for (int i = 0; i < RESETS; i++) {
        struct cl c;
        cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
        (void)rq_produce_send(&c, "reset", 0, batch, len, PROTO_ACKS_ALL);
        /* Resend only part of it on a second socket, then reset both. */
        int fd = raw_connect();
        cr_assert_gt(send(fd, c.tx, c.w.pos / 2 + (size_t)(i % 7), MSG_NOSIGNAL), 0);
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        close(fd);
        cl_close(&c);
        if (i % 100 == 99) {
            well_behaved_round_trip("reset", (uint32_t)i);
        }
    }
    cr_assert(bk_alive(&B));
    check_rss("after resets");
    bk_stop(&B);
}
