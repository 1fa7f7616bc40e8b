/* Hostile frames against the real nagared: truncated, oversized, negative
 * counts, lengths past the end, bad checksums, bad names, unknown apis,
 * garbage, a deep pipeline, and thousands of frames that stall half way.
 * After each, the process is alive, a well-behaved client on a new
 * connection is served correctly, and nothing of the hostile input reached
 * the log or the file system. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/broker_support.h"
#include "tests/sys_support.h"

#define T0 1700000000000LL
#define TOPIC "h"

static struct bk B;
static uint8_t batch[BT_BYTES_MAX];
static uint32_t healthy_seed = 1000;

static void setup(void)
{
    bk_init(&B);
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, TOPIC, 1), 0);
    cl_close(&c);
}

static void teardown(void) { bk_fini(&B); }

/* A hang guard, not a speed check: above the bounded waits a test may add up
 * on a loaded machine (start 10 s, each connect and answer 15 s, stop 15 s),
 * so that those fail with their own message first. */
TestSuite(hostile, .init = setup, .fini = teardown, .timeout = 300);

/* The broker is alive and a new, well-behaved client gets correct answers:
 * a produce lands at the log end and comes back byte for byte. */
static void assert_serving(void)
{
    cr_assert(bk_alive(&B), "the broker died");
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    rq_ping(&c);
    int64_t end = rq_latest(&c, TOPIC, 0);
    size_t len = bt_make(batch, sizeof(batch), 2, healthy_seed++, T0, -1, 0, -1);
    int64_t off;
    int rc = rq_produce(&c, TOPIC, 0, batch, len, 1, &off);
    cr_assert_eq(rc, 0, "%s", err_str(rc));
    cr_assert_eq(off, end);
    struct fetched f;
    rq_fetch(&c, TOPIC, 0, off, &f);
    cr_assert_eq(f.err, 0);
    cr_assert_eq(bt_count(f.records, f.records_bytes), 1);
    bt_assert_same(f.records, f.records_bytes, batch, len, off);
    rq_fetched_free(&f);
    struct md m;
    rq_metadata(&c, NULL, &m);
    cr_assert_not_null(md_find(&m, TOPIC));
    cl_close(&c);
}

/* ---- hand-built frames ---- */

/* Starts a request frame by hand: length placeholder and header with a null
 * client id. Returns where the length goes; finish with frame_end(). */
static size_t frame_begin(struct wr *w, uint16_t api_key, uint16_t version, uint32_t corr)
{
    size_t at = w->pos;
    wr_be32(w, 0);
    wr_be16(w, api_key);
    wr_be16(w, version);
    wr_be32(w, corr);
    wr_be16(w, 0xffff); /* null client id */
    return at;
}

static void frame_end(struct wr *w, size_t at)
{
    cr_assert_eq(w->err, 0);
    put_be32(w->ptr + at, (uint32_t)(w->pos - at - PROTO_FRAME_PREFIX_BYTES));
}

/* Sends the frame in c's writer and expects a request-level error err. */
static void expect_error(struct cl *c, uint32_t corr, int err, const char *what)
{
    cr_assert_eq(cl_send_wr(c), 0);
    struct proto_resp_header h;
    struct rd body;
    int rc = cl_recv(c, &h, &body);
    cr_assert_eq(rc, 0, "%s: no answer: %s", what, err_str(rc));
    cr_assert_eq(h.correlation_id, corr, "%s", what);
    cr_assert_eq(h.err, err, "%s: got %s (%d), expected %s", what, err_str(h.err), -h.err,
                 err_str(err));
}

/* A produce frame for topic h / partition 0 up to (not including) the
 * records length. */
static size_t produce_head(struct wr *w, uint32_t corr)
{
    size_t at = frame_begin(w, PROTO_API_PRODUCE, 0, corr);
    wr_be16(w, 1);    /* acks */
    wr_be32(w, 1000); /* timeout */
    wr_be32(w, 1);    /* topics */
    wr_be16(w, 1);
    wr_u8(w, 'h');
    wr_be32(w, 1); /* partitions */
    wr_be32(w, 0); /* partition 0 */
    return at;
}

/* ---- truncated and oversized frames ---- */

Test(hostile, truncated_frame_then_close)
{
    struct cl c;
    int64_t end;
    {
        struct cl probe;
        cl_connect(&probe, B.port, CL_TIMEOUT_MS_DEFAULT);
        end = rq_latest(&probe, TOPIC, 0);
        cl_close(&probe);
    }
    /* Half a length prefix. */
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(cl_send(&c, "\0\0", 2), 0);
    cl_close(&c);
    /* A frame promising 100 bytes, 20 sent. */
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    uint8_t part[24] = {0, 0, 0, 100, 0, 0, 0, 0, 0, 0, 0, 9};
    cr_assert_eq(cl_send(&c, part, sizeof(part)), 0);
    cl_close(&c);
    /* A real produce cut 10 bytes short: none of it may be written. */
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    size_t len = bt_make(batch, sizeof(batch), 3, 1, T0, -1, 0, -1);
    struct wr *w = cl_wr(&c);
    size_t at = produce_head(w, 5);
    wr_be32(w, (uint32_t)len);
    wr_bytes(w, batch, len);
    frame_end(w, at);
    cr_assert_eq(cl_send(&c, c.tx, w->pos - 10), 0);
    /* Half-closed: the broker answers nothing and closes. */
    cr_assert_eq(shutdown(c.fd, SHUT_WR), 0);
    cr_assert(cl_wait_closed(&c), "a truncated frame at EOF leaves the connection open");
    cl_close(&c);
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_latest(&c, TOPIC, 0), end, "a truncated produce wrote something");
    cl_close(&c);
    assert_serving();
    bk_stop(&B);
}

/* Virtual memory of the broker (peak and now), in KiB. */
static long vm_kib(const char *field)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)B.pid);
    char *text = bk_read_file(path, NULL);
    const char *line = strstr(text, field);
    cr_assert_not_null(line, "%s in %s", field, path);
    long kib = strtol(line + strlen(field), NULL, 10);
    free(text);
    return kib;
}

Test(hostile, oversized_length_prefix_closes_without_allocating)
{
    long before = vm_kib("VmSize:");
    /* Over every limit; over the frame maximum but under the loop's hard
     * cap (1 GiB); and one byte over the 64 MiB default. */
    const uint32_t lengths[] = {0x7fffffffu, 0xffffffffu, 512u << 20, (64u << 20) + 1};
    for (size_t i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++) {
        struct cl c;
        cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
        uint8_t prefix[4];
        put_be32(prefix, lengths[i]);
        cr_assert_eq(cl_send(&c, prefix, sizeof(prefix)), 0);
        cr_assert(cl_wait_closed(&c), "length %#x: connection not closed", lengths[i]);
        cl_close(&c);
    }
    long peak = vm_kib("VmPeak:");
    cr_assert_lt(peak - before, 256 * 1024,
                 "the broker's address space grew by %ld KiB for refused frames", peak - before);
    assert_serving();
    bk_stop(&B);
}

Test(hostile, frame_shorter_than_a_header_closes)
{
    const uint8_t frames[][8] = {
        {0, 0, 0, 0},
        {0, 0, 0, 3, 0, 0, 0},
        {0, 0, 0, 4, 0, 1, 0, 0},
    };
    const size_t sizes[] = {4, 7, 8};
    for (size_t i = 0; i < 3; i++) {
        struct cl c;
        cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
        cr_assert_eq(cl_send(&c, frames[i], sizes[i]), 0);
        cr_assert(cl_wait_closed(&c), "frame %zu: connection not closed", i);
        cl_close(&c);
    }
    assert_serving();
    bk_stop(&B);
}

Test(hostile, malformed_header_answered_or_closed)
{
    /* Client id length over the string limit, negative, and past the end.
     * docs/protocol.md says the connection is closed; the broker answers an
     * error with the correlation id it could read. Either is safe. */
    const uint16_t lens[] = {2000, (uint16_t)-7, 500};
    for (uint32_t i = 0; i < 3; i++) {
        struct cl c;
        cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
        struct wr *w = cl_wr(&c);
        size_t at = w->pos;
        wr_be32(w, 0);
        wr_be16(w, PROTO_API_API_VERSIONS);
        wr_be16(w, 0);
        wr_be32(w, 900 + i);
        wr_be16(w, lens[i]);
        wr_bytes(w, "abc", 3);
        frame_end(w, at);
        cr_assert_eq(cl_send_wr(&c), 0);
        struct proto_resp_header h;
        struct rd body;
        int rc = cl_recv(&c, &h, &body);
        cr_assert(rc == -NG_EDISCONNECTED || (rc == 0 && h.correlation_id == 900 + i && h.err != 0),
                  "client id length %d: %s / %s", (int16_t)lens[i], err_str(rc), err_str(h.err));
        cl_close(&c);
    }
    assert_serving();
    bk_stop(&B);
}

Test(hostile, many_connections_at_once)
{
    enum { CONNS = 300 };
    static struct cl c[CONNS];
    for (size_t i = 0; i < CONNS; i++) {
        cl_connect(&c[i], B.port, CL_TIMEOUT_MS_DEFAULT);
    }
    for (size_t i = 0; i < CONNS; i++) {
        (void)rq_api_versions_send(&c[i]);
    }
    for (size_t i = 0; i < CONNS; i++) {
        struct rd body;
        cl_expect(&c[i], 1, &body);
    }
    /* Half vanish with a request unanswered, half with nothing. */
    for (size_t i = 0; i < CONNS; i++) {
        if (i % 2 == 0) {
            (void)rq_fetch_send(&c[i], TOPIC, 0, 0, 0, 0);
        }
        cl_close(&c[i]);
    }
    assert_serving();
    bk_stop(&B);
}

/* ---- frames that stall half way ---- */

/* A connection that sends n bytes and then nothing more. A bare socket:
 * a struct cl's buffers, thousands of times over, are not needed. */
static int stall_connect(const void *p, size_t n)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0, "socket: %s", strerror(errno));
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons(B.port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "connect: %s",
                 strerror(errno));
    cr_assert_eq(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n, "send: %s", strerror(errno));
    return fd;
}

/* Bytes waiting unread in the broker's ends of established connections
 * (local port B.port), from /proc/net/tcp; *socks_out gets their number. */
static uint64_t broker_unread_bytes(size_t *socks_out)
{
    FILE *f = fopen("/proc/net/tcp", "r");
    cr_assert_not_null(f, "/proc/net/tcp: %s", strerror(errno));
    char line[512];
    uint64_t unread = 0;
    size_t socks = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned lport, rport, st;
        unsigned long laddr, raddr, txq, rxq;
        if (sscanf(line, " %*u: %lx:%x %lx:%x %x %lx:%lx", &laddr, &lport, &raddr, &rport, &st,
                   &txq, &rxq) == 7 &&
            lport == B.port && st == 1 /* TCP_ESTABLISHED */) {
            socks++;
            unread += rxq;
        }
    }
    fclose(f);
    *socks_out = socks;
    return unread;
}

/* Waits until the broker has accepted socks connections or more and read
 * every byte sent on them. */
static void wait_broker_read_all(size_t socks)
{
    int64_t until = clock_mono_ms() + CL_TIMEOUT_MS_DEFAULT;
    for (;;) {
        size_t n;
        uint64_t unread = broker_unread_bytes(&n);
        if (n >= socks && unread == 0) {
            return;
        }
        cr_assert_lt(clock_mono_ms(), until,
                     "the broker has %zu of %zu connections, %llu bytes unread", n, socks,
                     (unsigned long long)unread);
        usleep(10000);
    }
}

/* conns connections each send the length prefix of a frame of claimed
 * bytes and sent bytes of it, then stall: a new client and one connected
 * before are both served while they stay open. */
static void stalled_half_frames(size_t conns, uint32_t claimed, size_t sent)
{
    need_fds(conns + 256);
    struct cl old;
    cl_connect(&old, B.port, CL_TIMEOUT_MS_DEFAULT);
    rq_ping(&old);
    uint8_t *part = calloc(1, PROTO_FRAME_PREFIX_BYTES + sent);
    put_be32(part, claimed);
    int *fds = malloc(conns * sizeof(int));
    for (size_t i = 0; i < conns; i++) {
        fds[i] = stall_connect(part, PROTO_FRAME_PREFIX_BYTES + sent);
    }
    free(part);
    wait_broker_read_all(conns + 1);
    assert_serving();
    rq_ping(&old);
    cr_assert_geq(rq_latest(&old, TOPIC, 0), 1);
    cl_close(&old);
    for (size_t i = 0; i < conns; i++) {
        close(fds[i]);
    }
    free(fds);
    assert_serving();
    bk_stop(&B);
}

Test(hostile, sixteen_stalled_64_mib_frames_do_not_lock_out_new_clients)
{
    stalled_half_frames(16, 64u << 20, 64u << 10);
}

Test(hostile, a_thousand_stalled_1_mib_produce_frames_do_not_lock_out_new_clients)
{
    /* A produce request carrying 1 MiB of records: 1 MiB and its header. */
    stalled_half_frames(1000, (1u << 20) + 64, 4096);
}

Test(hostile, two_thousand_stalled_540_kb_frames_do_not_lock_out_new_clients)
{
    stalled_half_frames(2000, 540000, 16);
}

Test(hostile, a_frame_incomplete_past_partial_timeout_ms_closes_its_connection)
{
    bk_stop(&B);
    bk_set(&B, "partial_timeout_ms=200");
    bk_start(&B);
    struct cl idle; /* connected, no frame begun: left alone */
    cl_connect(&idle, B.port, CL_TIMEOUT_MS_DEFAULT);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    uint8_t part[PROTO_FRAME_PREFIX_BYTES + 10] = {0};
    put_be32(part, 1000);
    cr_assert_eq(cl_send(&c, part, sizeof(part)), 0);
    cr_assert(cl_wait_closed(&c), "a stalled frame's connection is still open");
    cl_close(&c);
    rq_ping(&idle);
    cl_close(&idle);
    char *log = bk_read_file(B.log_path, NULL);
    cr_assert_not_null(strstr(log + B.log_from, "frame incomplete past partial_timeout_ms"),
                       "nothing logged for the closed connection");
    free(log);
    assert_serving();
    bk_stop(&B);
}

/* ---- malformed bodies ---- */

Test(hostile, negative_and_oversized_counts_get_error_answers)
{
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    int64_t end = rq_latest(&c, TOPIC, 0);
    const int32_t bad_topic_counts[] = {-2, -100, INT32_MIN, PROTO_TOPICS_MAX + 1};
    for (size_t i = 0; i < 4; i++) {
        /* Produce's topic array. */
        struct wr *w = cl_wr(&c);
        size_t at = frame_begin(w, PROTO_API_PRODUCE, 0, 100 + (uint32_t)i);
        wr_be16(w, 1);
        wr_be32(w, 1000);
        wr_be32(w, (uint32_t)bad_topic_counts[i]);
        frame_end(w, at);
        expect_error(&c, 100 + (uint32_t)i, -NG_EBADCOUNT, "produce topic count");
        /* Metadata's nullable array: only -1 means null. */
        w = cl_wr(&c);
        at = frame_begin(w, PROTO_API_METADATA, 0, 200 + (uint32_t)i);
        wr_be32(w, (uint32_t)bad_topic_counts[i]);
        frame_end(w, at);
        expect_error(&c, 200 + (uint32_t)i, -NG_EBADCOUNT, "metadata topic count");
    }
    /* A negative partition count inside a topic. */
    struct wr *w = cl_wr(&c);
    size_t at = frame_begin(w, PROTO_API_FETCH, 0, 300);
    wr_be32(w, 0);
    wr_be32(w, 0);
    wr_be32(w, 1024);
    wr_be32(w, 1);
    wr_be16(w, 1);
    wr_u8(w, 'h');
    wr_be32(w, (uint32_t)-5);
    frame_end(w, at);
    expect_error(&c, 300, -NG_EBADCOUNT, "fetch partition count");
    /* A count the frame's bytes cannot hold. */
    w = cl_wr(&c);
    at = frame_begin(w, PROTO_API_DELETE_TOPICS, 0, 301);
    wr_be32(w, 1000);
    frame_end(w, at);
    expect_error(&c, 301, -NG_ETRUNCATED, "delete count past the end");
    rq_ping(&c); /* the connection itself goes on */
    cr_assert_eq(rq_latest(&c, TOPIC, 0), end);
    cl_close(&c);
    assert_serving();
    bk_stop(&B);
}

Test(hostile, lengths_past_the_end_get_error_answers)
{
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    int64_t end = rq_latest(&c, TOPIC, 0);
    size_t len = bt_make(batch, sizeof(batch), 3, 1, T0, -1, 0, -1);
    /* Records length 1000 with only the batch's bytes behind it. */
    struct wr *w = cl_wr(&c);
    size_t at = produce_head(w, 400);
    wr_be32(w, (uint32_t)len + 1000);
    wr_bytes(w, batch, len);
    frame_end(w, at);
    expect_error(&c, 400, -NG_ETRUNCATED, "records past the end");
    /* A negative records length, and a null batch. */
    const int32_t bad_lens[] = {-5, -1, INT32_MIN};
    for (uint32_t i = 0; i < 3; i++) {
        w = cl_wr(&c);
        at = produce_head(w, 401 + i);
        wr_be32(w, (uint32_t)bad_lens[i]);
        frame_end(w, at);
        expect_error(&c, 401 + i, -NG_EBADLEN, "negative records length");
    }
    /* A topic name longer than the frame, and one with a negative length. */
    w = cl_wr(&c);
    at = frame_begin(w, PROTO_API_DELETE_TOPICS, 0, 410);
    wr_be32(w, 1);
    wr_be16(w, 200);
    wr_bytes(w, "abcde", 5);
    frame_end(w, at);
    expect_error(&c, 410, -NG_ETRUNCATED, "string past the end");
    w = cl_wr(&c);
    at = frame_begin(w, PROTO_API_DELETE_TOPICS, 0, 411);
    wr_be32(w, 1);
    wr_be16(w, (uint16_t)-3);
    frame_end(w, at);
    expect_error(&c, 411, -NG_EBADLEN, "negative string length");
    /* Bytes left after the last field. */
    w = cl_wr(&c);
    at = frame_begin(w, PROTO_API_API_VERSIONS, 0, 412);
    wr_be32(w, 7);
    frame_end(w, at);
    expect_error(&c, 412, -NG_EBADLEN, "trailing bytes");
    rq_ping(&c);
    cr_assert_eq(rq_latest(&c, TOPIC, 0), end, "a malformed produce wrote something");
    cl_close(&c);
    assert_serving();
    bk_stop(&B);
}

Test(hostile, bad_field_values_get_error_answers)
{
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    int64_t end = rq_latest(&c, TOPIC, 0);
    size_t len = bt_make(batch, sizeof(batch), 1, 1, T0, -1, 0, -1);
    struct wr *w = cl_wr(&c);
    size_t at = frame_begin(w, PROTO_API_PRODUCE, 0, 500);
    wr_be16(w, 5); /* acks 5 */
    wr_be32(w, 1000);
    wr_be32(w, 1);
    wr_be16(w, 1);
    wr_u8(w, 'h');
    wr_be32(w, 1);
    wr_be32(w, 0);
    wr_be32(w, (uint32_t)len);
    wr_bytes(w, batch, len);
    frame_end(w, at);
    expect_error(&c, 500, -NG_EBADARG, "acks 5");
    w = cl_wr(&c);
    at = frame_begin(w, PROTO_API_FETCH, 0, 501);
    wr_be32(w, (uint32_t)-1); /* wait */
    wr_be32(w, 0);
    wr_be32(w, 1024);
    wr_be32(w, 0);
    frame_end(w, at);
    expect_error(&c, 501, -NG_EBADARG, "negative wait");
    rq_ping(&c);
    cr_assert_eq(rq_latest(&c, TOPIC, 0), end);
    cl_close(&c);
    assert_serving();
    bk_stop(&B);
}

/* ---- bad batches ---- */

static int produce_raw(struct cl *c, const uint8_t *b, size_t len)
{
    int64_t off;
    return rq_produce(c, TOPIC, 0, b, len, 1, &off);
}

Test(hostile, bad_checksum_refused_and_nothing_written)
{
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    int64_t end = rq_latest(&c, TOPIC, 0);
    size_t len = bt_make(batch, sizeof(batch), 4, 1, T0, -1, 0, -1);
    const size_t flips[] = {BATCH_OFF_CHECKSUM + 3, BATCH_OFF_RECORD_COUNT, len - 1, len / 2};
    for (size_t i = 0; i < 4; i++) {
        batch[flips[i]] ^= 0x20;
        int rc = produce_raw(&c, batch, len);
        cr_assert_eq(rc, -NG_ECHECKSUM, "byte %zu flipped: %s", flips[i], err_str(rc));
        batch[flips[i]] ^= 0x20;
    }
    /* A length field that disagrees with the bytes sent. */
    put_be32(batch + BATCH_OFF_LENGTH, (uint32_t)(len - BATCH_PREFIX_BYTES + 50));
    cr_assert_neq(produce_raw(&c, batch, len), 0, "a batch longer than its bytes");
    put_be32(batch + BATCH_OFF_LENGTH, (uint32_t)(len - BATCH_PREFIX_BYTES - 1));
    cr_assert_neq(produce_raw(&c, batch, len), 0, "a batch shorter than its bytes");
    put_be32(batch + BATCH_OFF_LENGTH, (uint32_t)(len - BATCH_PREFIX_BYTES));
    cr_assert_neq(produce_raw(&c, batch, 30), 0, "a batch shorter than its header");
    cr_assert_eq(rq_latest(&c, TOPIC, 0), end, "a refused batch was written");
    struct fetched f;
    rq_fetch(&c, TOPIC, 0, end, &f);
    cr_assert_eq(f.records_bytes, 0);
    rq_fetched_free(&f);
    /* The base offset is not covered by the checksum: the broker assigns it. */
    put_be64(batch, 123456789);
    int64_t off;
    cr_assert_eq(rq_produce(&c, TOPIC, 0, batch, len, 1, &off), 0);
    cr_assert_eq(off, end);
    rq_fetch(&c, TOPIC, 0, end, &f);
    cr_assert_eq(get_be64(f.records), (uint64_t)end);
    rq_fetched_free(&f);
    cl_close(&c);
    assert_serving();
    bk_stop(&B);
}

/* ---- bad topic names ---- */

static int create_many(struct cl *c, const char *const *names, size_t count, int *errs)
{
    struct proto_enc e;
    uint32_t corr = cl_next_corr(c);
    proto_create_topics_req_begin(&e, cl_wr(c), 0, corr, PROTO_STR_NULL);
    for (size_t i = 0; i < count; i++) {
        struct proto_create_topic t = {.name = proto_str_make(names[i]),
                                       .partition_count = 1,
                                       .retention_ms = PROTO_CONFIG_DEFAULT,
                                       .retention_bytes = PROTO_CONFIG_DEFAULT,
                                       .segment_bytes = PROTO_CONFIG_DEFAULT,
                                       .batch_bytes_max = PROTO_CONFIG_DEFAULT};
        proto_create_topics_req_topic(&e, &t);
    }
    cr_assert_eq(proto_enc_end(&e), 0);
    cr_assert_eq(cl_send_wr(c), 0);
    struct rd body;
    struct proto_dec d;
    cl_expect(c, corr, &body);
    cr_assert_eq(proto_create_topics_resp_decode(&body, 0, &d), 0);
    struct proto_topic_result r;
    size_t n = 0;
    while (proto_next_topic_result(&d, &r)) {
        cr_assert_lt(n, count);
        cr_assert(proto_str_eq(r.name, names[n]), "results in request order");
        errs[n++] = r.err;
    }
    return (int)n;
}

Test(hostile, bad_topic_names_refused_before_the_file_system)
{
    char long_name[251];
    memset(long_name, 'a', 250);
    long_name[250] = '\0';
    char max_name[250];
    memset(max_name, 'b', 249);
    max_name[249] = '\0';
    /* "__" begins the broker's own (internal) topics */
    const char *const bad[] = {"../x",    "a/b",    "__offsets", "__x",
                               long_name, ".",      "..",        "",
                               "x\\y",    "sp ace", "nul\x01",   "../../../tmp/evil"};
    const size_t bad_count = sizeof(bad) / sizeof(bad[0]);
    char *before = tree_list(B.root);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    int errs[16];
    cr_assert_eq(create_many(&c, bad, bad_count, errs), (int)bad_count);
    for (size_t i = 0; i < bad_count; i++) {
        cr_assert_eq(errs[i], -NG_EBADNAME, "create \"%s\": %s", bad[i], err_str(errs[i]));
    }
    size_t len = bt_make(batch, sizeof(batch), 1, 1, T0, -1, 0, -1);
    for (size_t i = 0; i < bad_count; i++) {
        int64_t off;
        int rc = rq_produce(&c, bad[i], 0, batch, len, 1, &off);
        cr_assert_eq(rc, -NG_EBADNAME, "produce to \"%s\" (auto-create on): %s", bad[i],
                     err_str(rc));
        struct fetched f;
        rq_fetch(&c, bad[i], 0, 0, &f);
        cr_assert_neq(f.err, 0);
        rq_fetched_free(&f);
        rc = rq_delete(&c, bad[i]);
        cr_assert(rc == -NG_EBADNAME || rc == -NG_EUNKNOWN_TOPIC, "delete \"%s\": %s", bad[i],
                  err_str(rc));
    }
    char *after = tree_list(B.root);
    cr_assert_str_eq(after, before, "bad names touched the file system");
    free(after);
    free(before);
    /* The boundaries: 249 bytes is a valid name, and a good topic in the
     * same request as bad ones is created on its own. */
    const char *const mixed[] = {"../y", max_name, "ok.name_1-2"};
    cr_assert_eq(create_many(&c, mixed, 3, errs), 3);
    cr_assert_eq(errs[0], -NG_EBADNAME);
    cr_assert_eq(errs[1], 0, "249 bytes: %s", err_str(errs[1]));
    cr_assert_eq(errs[2], 0, "%s", err_str(errs[2]));
    cl_close(&c);
    char path[BK_PATH_BYTES + 16];
    snprintf(path, sizeof(path), "%s/y", B.root);
    struct stat st;
    cr_assert_neq(stat(path, &st), 0);
    snprintf(path, sizeof(path), "%s/y", B.data_dir);
    cr_assert_neq(stat(path, &st), 0);
    assert_serving();
    bk_stop(&B);
}

/* ---- unknown apis, garbage ---- */

Test(hostile, unknown_api_and_version_get_error_answers)
{
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    const uint16_t keys[] = {8, 9, 19, 99, 0xffff};
    for (uint32_t i = 0; i < 5; i++) {
        struct wr *w = cl_wr(&c);
        size_t at = frame_begin(w, keys[i], 0, 600 + i);
        wr_be32(w, 0xdeadbeef); /* a body it cannot know */
        frame_end(w, at);
        expect_error(&c, 600 + i, -NG_EUNKNOWN_API, "unknown api key");
    }
    /* An api the broker lists refuses a version it does not have; a key
     * it does not serve is unknown at any version. */
    bool served[PROTO_API_COUNT] = {false};
    uint32_t corr = rq_api_versions_send(&c);
    struct rd body;
    cl_expect(&c, corr, &body);
    struct proto_api_versions_resp v;
    cr_assert_eq(proto_api_versions_resp_decode(&body, 0, &v), 0);
    for (uint32_t i = 0; i < v.api_count; i++) {
        cr_assert_lt(v.apis[i].api_key, PROTO_API_COUNT);
        served[v.apis[i].api_key] = true;
    }
    for (uint16_t api = 0; api < PROTO_API_COUNT; api++) {
        struct wr *w = cl_wr(&c);
        size_t at = frame_begin(w, api, 7, 700 + api);
        frame_end(w, at);
        expect_error(&c, 700 + api, served[api] ? -NG_EBADVERSION : -NG_EUNKNOWN_API,
                     "unknown version");
    }
    rq_ping(&c);
    cl_close(&c);
    assert_serving();
    bk_stop(&B);
}

/* Deterministic garbage. */
static void fill_garbage(uint8_t *p, size_t n, uint32_t seed)
{
    uint64_t x = 0x9e3779b97f4a7c15ull * (seed + 1);
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (uint8_t)x;
    }
}

static void send_garbage_and_expect_close(const void *p, size_t n)
{
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    int rc = cl_send(&c, p, n);
    /* The broker may close before taking it all. */
    cr_assert(rc == 0 || rc == -ECONNRESET || rc == -EPIPE, "send: %s", strerror(-rc));
    (void)shutdown(c.fd, SHUT_WR);
    cr_assert(cl_wait_closed(&c), "garbage left the connection open");
    cl_close(&c);
}

Test(hostile, garbage_bytes)
{
    static const char http[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    send_garbage_and_expect_close(http, sizeof(http) - 1);
    static uint8_t junk[16384];
    for (uint32_t seed = 0; seed < 8; seed++) {
        fill_garbage(junk, sizeof(junk), seed);
        send_garbage_and_expect_close(junk, sizeof(junk));
    }
    /* Frames with plausible lengths and random headers and bodies. */
    for (uint32_t seed = 0; seed < 8; seed++) {
        fill_garbage(junk, sizeof(junk), 100 + seed);
        for (size_t at = 0; at + 64 <= sizeof(junk); at += 64) {
            put_be32(junk + at, 60);
        }
        send_garbage_and_expect_close(junk, sizeof(junk));
    }
    assert_serving();
    bk_stop(&B);
}

/* ---- pipelining ---- */

enum { PIPE_PING, PIPE_META, PIPE_LIST, PIPE_PRODUCE, PIPE_FETCH, PIPE_PRODUCE_ACKS0, PIPE_KINDS };

/* Appends one request of kind k to c's writer (not reset between calls). */
static void pipe_add(struct cl *c, int k, uint32_t corr, const uint8_t *b, size_t len)
{
    struct proto_enc e;
    struct wr *w = &c->w;
    if (k == PIPE_PING) {
        cr_assert_eq(proto_api_versions_req_encode(w, 0, corr, PROTO_STR_NULL), 0);
        return;
    }
    if (k == PIPE_META) {
        proto_metadata_req_begin(&e, w, 0, corr, PROTO_STR_NULL, true);
    } else if (k == PIPE_LIST) {
        proto_list_offsets_req_begin(&e, w, 0, corr, PROTO_STR_NULL);
        proto_enc_topic(&e, proto_str_make(TOPIC));
        struct proto_list_offsets_req_partition p = {.partition = 0, .timestamp_ms = -1};
        proto_list_offsets_req_partition(&e, &p);
    } else if (k == PIPE_FETCH) {
        struct proto_fetch_req req = {.wait_max_ms = 0, .bytes_min = 0, .bytes_max = 1 << 20};
        proto_fetch_req_begin(&e, w, 0, corr, PROTO_STR_NULL, &req);
        proto_enc_topic(&e, proto_str_make(TOPIC));
        struct proto_fetch_req_partition p = {.partition = 0, .offset = 0, .bytes_max = 1024};
        proto_fetch_req_partition(&e, &p);
    } else {
        struct proto_produce_req req = {.acks = k == PIPE_PRODUCE ? 1 : 0, .timeout_ms = 1000};
        proto_produce_req_begin(&e, w, 0, corr, PROTO_STR_NULL, &req);
        proto_enc_topic(&e, proto_str_make(TOPIC));
        struct proto_produce_req_partition p = {
            .partition = 0, .records = b, .records_bytes = (uint32_t)len};
        proto_produce_req_partition(&e, &p);
    }
    cr_assert_eq(proto_enc_end(&e), 0);
}

Test(hostile, pipelined_requests_answered_in_order)
{
    enum { REQUESTS = 300 };
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    int64_t end = rq_latest(&c, TOPIC, 0);
    size_t len = bt_make(batch, sizeof(batch), 2, 1, T0, -1, 0, -1);
    (void)cl_wr(&c);
    int kinds[REQUESTS];
    for (uint32_t i = 0; i < REQUESTS; i++) {
        kinds[i] = (int)((i * 7) % PIPE_KINDS);
        pipe_add(&c, kinds[i], 1000 + i, batch, len);
    }
    cr_assert_eq(cl_send_wr(&c), 0, "one write of %zu bytes", c.w.pos);
    int64_t written = end;
    for (uint32_t i = 0; i < REQUESTS; i++) {
        if (kinds[i] == PIPE_PRODUCE_ACKS0) {
            written += 2; /* no answer, but it lands in order */
            continue;
        }
        struct rd body;
        cl_expect(&c, 1000 + i, &body);
        if (kinds[i] == PIPE_PRODUCE) {
            struct proto_dec d;
            struct proto_topic t;
            struct proto_produce_resp_partition p;
            cr_assert_eq(proto_produce_resp_decode(&body, 0, &d), 0);
            cr_assert(proto_next_topic(&d, &t) && proto_produce_resp_next_partition(&d, &p));
            cr_assert_eq(p.err, 0);
            cr_assert_eq(p.offset_base, written, "request %u: produced at %lld, expected %lld", i,
                         (long long)p.offset_base, (long long)written);
            written += 2;
        }
    }
    /* A long poll in the middle of a pipeline holds back the answers after it. */
    (void)cl_wr(&c);
    pipe_add(&c, PIPE_PING, 5000, NULL, 0);
    struct proto_enc e;
    struct proto_fetch_req req = {.wait_max_ms = 300, .bytes_min = 1, .bytes_max = 1 << 20};
    proto_fetch_req_begin(&e, &c.w, 0, 5001, PROTO_STR_NULL, &req);
    proto_enc_topic(&e, proto_str_make(TOPIC));
    struct proto_fetch_req_partition p = {.partition = 0, .offset = written, .bytes_max = 1024};
    proto_fetch_req_partition(&e, &p);
    cr_assert_eq(proto_enc_end(&e), 0);
    pipe_add(&c, PIPE_PING, 5002, NULL, 0);
    cr_assert_eq(cl_send_wr(&c), 0);
    struct rd body;
    cl_expect(&c, 5000, &body);
    cl_expect(&c, 5001, &body);
    cl_expect(&c, 5002, &body);
    cr_assert_eq(rq_latest(&c, TOPIC, 0), written);
    cl_close(&c);
    assert_serving();
    bk_stop(&B);
}
