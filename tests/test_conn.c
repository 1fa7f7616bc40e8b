/* Tests for client/conn.h's frames that carry bytes by reference
 * (conn_frame_begin_refs(), conn_frame_commit_refs()): against the real
 * nagared (a Produce whose batches go by reference, written in many
 * partial writes) and against a scripted peer in a thread (an answer that
 * comes before its request was written whole; a close with bytes still
 * queued). */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "client/conn.h"
#include "storage/batch.h"
#include "tests/broker_support.h"

static struct bk B;

static void setup(void) { bk_init(&B); }
static void teardown(void) { bk_fini(&B); }

TestSuite(conn, .init = setup, .fini = teardown, .timeout = 120);

/* A connection to port, not waited for. */
static void conn_to(struct client_conn *c, uint16_t port)
{
    char addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
    struct conn_config cfg = {.bootstrap = addr,
                              .request_timeout_ms = 10000,
                              .resp_bytes_max = 1u << 20,
                              .tx_bytes_max = 1u << 20,
                              .pending_max = 8};
    cr_assert_eq(conn_init(c, &cfg), 0);
}

/* A connection to port, once up. */
static void conn_up(struct client_conn *c, uint16_t port)
{
    conn_to(c, port);
    int rc = conn_wait_up(c, 10000);
    cr_assert_eq(rc, 0, "up: %d", rc);
}

struct done {
    bool ran;
    int err;
    int32_t count;  /* partitions answered */
    int32_t errors; /* with an error */
};

static void produce_done(void *arg, int err, struct rd *body, uint16_t version)
{
    struct done *d = arg;
    d->ran = true;
    d->err = err;
    struct proto_dec dec;
    if (err != 0 || body == NULL || proto_produce_resp_decode(body, version, &dec) != 0) {
        return;
    }
    struct proto_topic t;
    while (proto_next_topic(&dec, &t)) {
        struct proto_produce_resp_partition p;
        while (proto_produce_resp_next_partition(&dec, &p)) {
            d->count++;
            d->errors += p.err != 0;
        }
    }
}

/* One batch of `records` records of value_bytes each. */
static size_t batch_make(uint8_t *buf, size_t cap, uint32_t records, size_t value_bytes,
                         uint8_t fill)
{
    uint8_t *value = malloc(value_bytes);
    cr_assert_not_null(value);
    memset(value, fill, value_bytes);
    struct batch_builder b;
    batch_builder_init(&b, buf, cap, BATCH_CODEC_NONE, -1, 0, -1);
    for (uint32_t i = 0; i < records; i++) {
        value[0] = (uint8_t)i;
        cr_assert_eq(batch_builder_add(&b, 1700000000000LL + i, NULL, -1, value,
                                       (int32_t)value_bytes, NULL, 0),
                     0);
    }
    size_t bytes;
    cr_assert_eq(batch_builder_finish(&b, NULL, &bytes), 0);
    free(value);
    return bytes;
}

struct part {
    const uint8_t *batch;
    size_t bytes;
    bool by_ref;
};

/* Sends a Produce of topic's partitions 0.. with parts[i]'s batch, those
 * marked by reference, the others copied. */
static void produce_refs(struct client_conn *c, const char *topic, const struct part *parts,
                         uint32_t count, int16_t acks, struct done *d)
{
    size_t ref_bytes = 0;
    uint32_t ref_count = 0;
    size_t copied = 256;
    for (uint32_t i = 0; i < count; i++) {
        ref_bytes += parts[i].by_ref ? parts[i].bytes : 0;
        ref_count += parts[i].by_ref;
        copied += 8 + (parts[i].by_ref ? 0 : parts[i].bytes);
    }
    struct wr w;
    uint32_t corr;
    cr_assert_eq(conn_frame_begin_refs(c, copied, ref_bytes, ref_count, &w, &corr), 0);
    uint16_t version = conn_version(c, PROTO_API_PRODUCE);
    struct proto_enc e;
    struct proto_produce_req req = {.acks = acks, .timeout_ms = 10000};
    proto_produce_req_begin(&e, &w, version, corr, proto_str_make("test"), &req);
    proto_enc_topic(&e, proto_str_make(topic));
    struct conn_ref refs[8];
    uint32_t n = 0;
    for (uint32_t i = 0; i < count; i++) {
        const struct part *pt = &parts[i];
        proto_produce_req_partition(&e, &(struct proto_produce_req_partition){
                                            .partition = (int32_t)i,
                                            .records = pt->batch,
                                            .records_bytes = pt->by_ref ? 0 : (uint32_t)pt->bytes});
        if (pt->by_ref) {
            put_be32(w.ptr + w.pos - 4, (uint32_t)pt->bytes);
            refs[n++] = (struct conn_ref){.at = w.pos, .ptr = pt->batch, .len = pt->bytes};
        }
    }
    cr_assert_eq(proto_enc_end(&e), 0);
    put_be32(w.ptr, get_be32(w.ptr) + (uint32_t)ref_bytes);
    conn_frame_commit_refs(c, &w, refs, n, corr, PROTO_API_PRODUCE, version, acks == 0, 10000,
                           produce_done, d);
}

static void wait_done(struct client_conn *c, struct done *d)
{
    for (int k = 0; k < 200 && !d->ran; k++) {
        cr_assert_eq(conn_poll(c, 50), 0);
    }
    cr_assert(d->ran, "the request completed");
}

/* Batches by reference between batches copied, each larger than the
 * socket's send buffer: the gather writes stop inside references and
 * inside copied runs, and the broker still gets every batch whole (it
 * checks each one's checksum), while the send queue holds only the
 * copied bytes. */
Test(conn, referenced_bytes_go_in_place_through_partial_writes)
{
    bk_start(&B);
    struct cl admin;
    cl_connect(&admin, B.port, 10000);
    cr_assert_eq(rq_create(&admin, "refs", 5), 0);
    cl_close(&admin);
    struct client_conn c;
    conn_up(&c, B.port);
    int small = 16 * 1024;
    cr_assert_eq(setsockopt(c.fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);

    size_t cap = 3u << 20;
    uint8_t *bufs[5];
    struct part parts[5];
    bool by_ref[5] = {true, false, true, true, false};
    for (uint32_t i = 0; i < 5; i++) {
        bufs[i] = malloc(cap);
        cr_assert_not_null(bufs[i]);
        uint32_t records = by_ref[i] ? 40 : 3; /* 2.5 MiB by reference, 48 KiB copied */
        parts[i] = (struct part){
            .batch = bufs[i],
            .by_ref = by_ref[i],
            .bytes = batch_make(bufs[i], cap, records, 64 * 1024, (uint8_t)(0x40 + i))};
    }
    for (int round = 0; round < 3; round++) {
        struct done d = {0};
        produce_refs(&c, "refs", parts, 5, PROTO_ACKS_LEADER, &d);
        cr_assert_lt(c.tx_cap, parts[0].bytes, "references are not copied into the queue");
        wait_done(&c, &d);
        cr_assert_eq(d.err, 0, "request: %d", d.err);
        cr_assert_eq(d.count, 5);
        cr_assert_eq(d.errors, 0, "every batch arrived whole");
    }
    cr_assert_eq(c.tx_sent_total, c.tx_queued_total);
    cr_assert_eq(c.txref_head, c.txref_len);
    conn_fini(&c);
    for (uint32_t i = 0; i < 5; i++) {
        free(bufs[i]);
    }
    bk_stop(&B);
}

/* ---- a scripted peer ---- */

/* The scripted peer's receive buffer and the client's send buffer: what
 * the kernel may hold of a request the peer does not read (each doubled by
 * the kernel, a few KiB in all), far less than the request. */
#define PEER_SOCKBUF_BYTES (16 * 1024)

struct peer {
    int listen_fd;
    uint16_t port;
    pthread_t thread;
};

static void read_exact(int fd, uint8_t *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t k = read(fd, buf + got, n - got);
        cr_assert_gt(k, 0, "peer read");
        got += (size_t)k;
    }
}

static void write_all(int fd, const uint8_t *buf, size_t n)
{
    cr_assert_eq(write(fd, buf, n), (ssize_t)n);
}

/* Reads a request's prefix and header; returns its correlation id and
 * its length after the prefix. */
static uint32_t read_header(int fd, uint32_t *len_out)
{
    uint8_t h[12];
    read_exact(fd, h, sizeof(h));
    *len_out = get_be32(h);
    return get_be32(h + 8);
}

static void skip(int fd, size_t n)
{
    uint8_t buf[65536];
    while (n > 0) {
        size_t k = n < sizeof(buf) ? n : sizeof(buf);
        read_exact(fd, buf, k);
        n -= k;
    }
}

/* Accepts a connection and answers its ApiVersions. */
static int peer_accept(struct peer *p)
{
    int fd = accept(p->listen_fd, NULL, NULL);
    cr_assert_geq(fd, 0);
    uint32_t len;
    uint32_t corr = read_header(fd, &len);
    skip(fd, len - 8);
    uint8_t out[1024];
    struct wr w = wr_make(out, sizeof(out));
    struct proto_api_versions_resp resp;
    proto_api_versions_fill(&resp, PROTO_FRAME_BYTES_LIMIT);
    cr_assert_eq(proto_api_versions_resp_encode(&w, 0, corr, &resp), 0);
    write_all(fd, out, w.pos);
    return fd;
}

/* First connection: answers the next request as soon as its header came
 * and never reads another byte of it, so the request cannot be written
 * whole however fast the client is (the socket buffers on both sides are
 * set far smaller than the request). It stays open until the client,
 * having seen the answer come too early, connects again. Second
 * connection: reads whole frames until the client closes. */
static void *peer_run(void *arg)
{
    struct peer *p = arg;
    int first = peer_accept(p);
    uint32_t len;
    uint32_t corr = read_header(first, &len);
    uint8_t answer[10];
    put_be32(answer, 6);
    put_be32(answer + 4, corr);
    put_be16(answer + 8, 0);
    write_all(first, answer, sizeof(answer));
    int fd = peer_accept(p);
    close(first);
    uint8_t buf[65536];
    while (read(fd, buf, sizeof(buf)) > 0) {
    }
    close(fd);
    return NULL;
}

static void peer_start(struct peer *p)
{
    p->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(p->listen_fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(p->listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t sl = sizeof(sa);
    cr_assert_eq(getsockname(p->listen_fd, (struct sockaddr *)&sa, &sl), 0);
    /* Inherited by the accepted sockets: the window the client sees. */
    int small = PEER_SOCKBUF_BYTES;
    cr_assert_eq(setsockopt(p->listen_fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
    cr_assert_eq(listen(p->listen_fd, 4), 0);
    p->port = ntohs(sa.sin_port);
    cr_assert_eq(pthread_create(&p->thread, NULL, peer_run, p), 0);
}

/* An answer to a request not yet written whole breaks the protocol (the
 * peer cannot have read it): the connection closes before the callback
 * could release what the request refers to, and every reference is
 * dropped. The peer reads nothing past the request's header, so the
 * request cannot be written whole before the answer is seen. After the
 * close the stream counts meet again, so a request that gets no answer
 * completes once its own bytes are written. */
Test(conn, an_answer_before_the_request_was_written_closes_and_drops_references)
{
    struct peer peer;
    peer_start(&peer);
    struct client_conn c;
    conn_up(&c, peer.port);
    int small = PEER_SOCKBUF_BYTES;
    cr_assert_eq(setsockopt(c.fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
    size_t big = 4u << 20; /* far more than both socket buffers hold */
    uint8_t *buf = calloc(1, big);
    cr_assert_not_null(buf);
    struct part part = {.batch = buf, .bytes = big, .by_ref = true};
    struct done d = {0};
    produce_refs(&c, "early", &part, 1, PROTO_ACKS_LEADER, &d);
    cr_assert_lt(c.tx_sent_total, c.tx_queued_total, "still being written");
    wait_done(&c, &d);
    cr_assert_eq(d.err, -NG_EPROTO, "err %d", d.err);
    cr_assert_eq(c.state, CONN_DOWN);
    cr_assert_eq(c.tx_sent_total, c.tx_queued_total, "nothing left queued");
    cr_assert_eq(c.txref_len, 0);

    cr_assert_eq(conn_wait_up(&c, 10000), 0);
    uint8_t one_buf[4096];
    struct part one = {
        .batch = one_buf, .bytes = batch_make(one_buf, sizeof(one_buf), 1, 100, 1), .by_ref = true};
    struct done d2 = {0};
    produce_refs(&c, "early", &one, 1, PROTO_ACKS_NONE, &d2);
    wait_done(&c, &d2);
    cr_assert_eq(d2.err, 0, "a noreply request completes once written: %d", d2.err);
    conn_fini(&c);
    pthread_join(peer.thread, NULL);
    close(peer.listen_fd);
    free(buf);
}

/* ---- backoff and reconnecting (conn_backoff_next, conn_redial) ---- */

Test(conn, backoff_doubles_from_the_first_step_to_the_last)
{
    uint32_t b = 0;
    uint32_t want[] = {CONN_BACKOFF_MS_FIRST, 200, 400, 800, CONN_BACKOFF_MS_MAX,
                       CONN_BACKOFF_MS_MAX};
    for (size_t i = 0; i < ARRAY_LEN(want); i++) {
        cr_assert_eq(conn_backoff_next(&b), want[i], "step %zu", i);
        cr_assert_eq(b, want[i]);
    }
}

/* A port nobody listens on: bound, never listened to, then closed. */
static uint16_t port_refused(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void poll_until_down(struct client_conn *c)
{
    while (c->state != CONN_DOWN) {
        cr_assert_eq(conn_poll(c, 100), 0);
    }
}

Test(conn, redial_tries_once_per_backoff_step_and_reports_a_long_outage_once)
{
    struct client_conn c;
    conn_to(&c, port_refused());
    struct conn_redial r = {0};
    cr_assert_eq(conn_redial(&c, &r, 1000, 5000), 0);
    cr_assert_eq(r.at_ms, 1000 + CONN_BACKOFF_MS_FIRST, "the next try waits a step");
    cr_assert_eq(r.down_since_ms, 1000);
    poll_until_down(&c); /* refused */
    uint64_t tried = c.generation;
    cr_assert_eq(conn_redial(&c, &r, 1099, 5000), 0);
    cr_assert_eq(c.state, CONN_DOWN, "no try before the step is over");
    cr_assert_eq(c.generation, tried);
    cr_assert_eq(conn_redial(&c, &r, 1100, 5000), 0);
    cr_assert_eq(r.at_ms, 1100 + 200, "the step doubles");
    poll_until_down(&c);
    cr_assert_eq(conn_redial(&c, &r, 6000, 5000), -NG_EDISCONNECTED, "down for the timeout");
    cr_assert_eq(conn_redial(&c, &r, 6001, 5000), 0, "reported once per period");
    conn_fini(&c);
}

Test(conn, redial_connects_a_conn_that_is_down_and_resets_once_it_is_up)
{
    bk_start(&B);
    struct client_conn c;
    conn_to(&c, B.port);
    struct conn_redial r = {.backoff_ms = 800, .down_since_ms = 5};
    cr_assert_eq(conn_redial(&c, &r, 10, 1000000), 0);
    while (c.state != CONN_UP) {
        cr_assert_neq(c.state, CONN_DOWN, "connecting to a running broker failed");
        cr_assert_eq(conn_poll(&c, 100), 0);
    }
    cr_assert_eq(conn_redial(&c, &r, 20, 1000000), 0);
    cr_assert_eq(r.backoff_ms, 0);
    cr_assert_eq(r.down_since_ms, 0);
    cr_assert_eq(r.at_ms, 0);
    conn_fini(&c);
    bk_stop(&B);
}

/* conn_oldest_pending_ms(): when the oldest request still waiting was
 * submitted, through a second one behind it, and none once both were
 * answered. */
Test(conn, oldest_pending_is_the_first_request_not_yet_answered)
{
    bk_start(&B);
    struct client_conn c;
    conn_up(&c, B.port);
    cr_assert_eq(conn_oldest_pending_ms(&c), INT64_MAX, "none pending");
    uint8_t buf[4096];
    size_t bytes = batch_make(buf, sizeof(buf), 2, 16, 'x');
    struct part part = {.batch = buf, .bytes = bytes};
    struct done d1 = {0};
    struct done d2 = {0};
    int64_t before = clock_mono_ms();
    produce_refs(&c, "oldest", &part, 1, 1, &d1);
    int64_t after = clock_mono_ms();
    while (clock_mono_ms() == after) { /* the second is submitted later */
        usleep(1000);
    }
    produce_refs(&c, "oldest", &part, 1, 1, &d2);
    int64_t oldest = conn_oldest_pending_ms(&c);
    cr_assert(oldest >= before && oldest <= after, "the first request's time (%" PRId64 ")",
              oldest);
    wait_done(&c, &d1);
    wait_done(&c, &d2);
    cr_assert_eq(conn_oldest_pending_ms(&c), INT64_MAX, "none pending once answered");
    conn_fini(&c);
    bk_stop(&B);
}

/* ---- conn_call_watched() ---- */

static int metadata_none_encode(void *arg, struct wr *w, uint32_t corr, uint16_t version)
{
    (void)arg;
    struct proto_enc e;
    proto_metadata_req_begin(&e, w, version, corr, proto_str_make("t"), false);
    return proto_enc_end(&e);
}

static int answer_ignore(void *arg, struct rd *body, uint16_t version)
{
    (void)body;
    (void)version;
    *(int *)arg += 1;
    return 0;
}

/* A watch that gives the connection up at its `give_up`-th run (0: never). */
struct watch_count {
    int runs;
    int give_up;
};

static bool watch_counting(void *arg)
{
    struct watch_count *wc = arg;
    wc->runs++;
    return wc->give_up > 0 && wc->runs >= wc->give_up;
}

/* A listening socket nobody accepts on: the kernel completes the TCP
 * handshake, and nothing answers (as a paused broker's kernel does). */
static int listener_silent(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t sl = sizeof(sa);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    cr_assert_eq(listen(fd, 4), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

/* Accepts one connection, answers its ApiVersions, then reads and never
 * answers until the client closes. */
static void *peer_silent_run(void *arg)
{
    struct peer *p = arg;
    int fd = peer_accept(p);
    uint8_t buf[4096];
    while (read(fd, buf, sizeof(buf)) > 0) {
    }
    close(fd);
    return NULL;
}

/* A watched call whose broker never answers: the watch runs every period
 * while the answer is awaited, and the call ends with -NG_EDISCONNECTED
 * when it says so (the connection closed), long before its deadline; the
 * same while the handshake of a connection the broker's kernel accepted
 * is awaited. A watch that never gives up leaves a call that is answered
 * alone. */
Test(conn, a_watched_call_is_given_up_when_the_watch_says_so)
{
    struct peer p;
    p.listen_fd = listener_silent(&p.port);
    cr_assert_eq(pthread_create(&p.thread, NULL, peer_silent_run, &p), 0);
    struct client_conn c;
    conn_up(&c, p.port);
    struct watch_count wc = {.give_up = 3};
    struct conn_watch w = {.period_ms = 20, .fn = watch_counting, .arg = &wc};
    int answers = 0;
    int64_t deadline = clock_mono_ms() + 60000;
    int rc = conn_call_watched(&c, PROTO_API_METADATA, 64, metadata_none_encode, answer_ignore,
                               &answers, deadline, &w);
    cr_assert_eq(rc, -NG_EDISCONNECTED, "%d", rc);
    cr_assert_eq(wc.runs, 3);
    cr_assert_eq(answers, 0);
    cr_assert_eq(c.state, CONN_DOWN);
    cr_assert_lt(clock_mono_ms(), deadline);
    conn_fini(&c);
    cr_assert_eq(pthread_join(p.thread, NULL), 0);
    close(p.listen_fd);

    uint16_t port;
    int fd = listener_silent(&port);
    conn_to(&c, port);
    wc = (struct watch_count){.give_up = 2};
    rc = conn_call_watched(&c, PROTO_API_METADATA, 64, metadata_none_encode, answer_ignore,
                           &answers, deadline, &w);
    cr_assert_eq(rc, -NG_EDISCONNECTED, "in the handshake: %d", rc);
    cr_assert_eq(wc.runs, 2);
    cr_assert_lt(clock_mono_ms(), deadline);
    conn_fini(&c);
    close(fd);

    bk_start(&B);
    conn_up(&c, B.port);
    wc = (struct watch_count){.give_up = 0};
    w.period_ms = 1;
    rc = conn_call_watched(&c, PROTO_API_METADATA, 64, metadata_none_encode, answer_ignore,
                           &answers, deadline, &w);
    cr_assert_eq(rc, 0, "%d", rc);
    cr_assert_eq(answers, 1);
    cr_assert_eq(c.state, CONN_UP);
    conn_fini(&c);
    bk_stop(&B);
}

/* ---- silence across a reconnect ---- */

/* Accepts a connection, answers its ApiVersions, then reads and never
 * answers; then accepts the next and answers nothing at all, the
 * handshake included: a broker paused while a request waited on it. */
static void *peer_silent_twice_run(void *arg)
{
    struct peer *p = arg;
    (void)peer_silent_run(p);
    uint8_t buf[4096];
    int fd = accept(p->listen_fd, NULL, NULL);
    cr_assert_geq(fd, 0);
    while (read(fd, buf, sizeof(buf)) > 0) {
    }
    close(fd);
    return NULL;
}

/* A broker that stops answering: its request times out, and the
 * connection made again waits for the handshake's answer; the silence is
 * counted from the request, across the reconnect (what the stall checks
 * read: client/brokers.h), where the pending requests alone would say
 * nothing waits. */
Test(conn, silence_is_counted_across_a_reconnect_a_timeout_forced)
{
    struct peer p;
    p.listen_fd = listener_silent(&p.port);
    cr_assert_eq(pthread_create(&p.thread, NULL, peer_silent_twice_run, &p), 0);
    struct client_conn c;
    conn_up(&c, p.port);
    cr_assert_eq(conn_silent_since_ms(&c), INT64_MAX, "up, nothing pending");
    int answers = 0;
    int64_t first = clock_mono_ms();
    int rc = conn_call(&c, PROTO_API_METADATA, 64, metadata_none_encode, answer_ignore, &answers,
                       first + 200);
    cr_assert_eq(rc, -NG_ETIMEOUT, "%d", rc);
    cr_assert_eq(c.state, CONN_DOWN, "a timed-out request closes its connection");
    int64_t since = conn_silent_since_ms(&c);
    cr_assert(since >= first && since < first + 200, "since the request (%" PRId64 ")",
              since - first);
    cr_assert_eq(conn_wait_up(&c, 200), -NG_ETIMEOUT, "the handshake is never answered");
    cr_assert_eq(conn_silent_since_ms(&c), since, "still silent since the request");
    conn_fini(&c);
    cr_assert_eq(pthread_join(p.thread, NULL), 0);
    close(p.listen_fd);
}
