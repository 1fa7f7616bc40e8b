/*
 * tests/test_loop.c — net/loop.h: a loop with a scripted handler runs in a
 * thread on 127.0.0.1, port 0; the tests drive it with plain blocking
 * sockets. Waits are generous and nothing asserts on speed.
 *
 * The handler reads the first byte of each request:
 *   'E' rest       answer the whole frame back, now
 *   'D' u32 ms ..  answer the whole frame back after ms (a loop timer)
 *   'N' ..         no answer
 *   'F' ..         fail: close the connection after earlier answers
 *   'B' u32 n u32 seq ..  answer n bytes: seq, then a pattern
 *   'X'            answer "ab" + ext "EXT" + "cd"
 *   'L' u64 off u32 len u32 n  answer "hd" + len bytes of the test file from
 *                  off, as n file parts (copied with pread when the loop
 *                  has no room for file parts), + "tl"
 *   (empty frame)  answer an empty frame
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/bytes.h"
#include "base/clock.h"
#include "base/err.h"
#include "net/loop.h"
#include "tests/sys_support.h"

#define WAIT_MS 20000 /* generous: a slow machine must not fail a test */

struct server {
    pthread_t thread;
    struct ring ring;
    struct loop loop;
    struct loop_cfg cfg;
    uint16_t port;
    uint16_t port2; /* a second listener: the same handler */
    sem_t ready;
    int init_rc;
    int run_rc;
    atomic_int reqs_seen;
    atomic_int ext_released;
    atomic_int closes;
    atomic_int ctxs_released; /* connection pointers on_close got back */
    atomic_int dones[3];      /* on_done calls with tag 0, with tag 'T', failed */
    int file_fd;              /* the test file of 'L' requests, or -1 */
    atomic_int files_released;
    atomic_int files_refused;
};

/* The test file: byte i is file_byte(i). */
#define TEST_FILE_BYTES (24u << 20)
static uint8_t file_byte(uint64_t i) { return (uint8_t)(i * 131 + (i >> 13) * 7 + 1); }

static int make_test_file(void)
{
    char path[] = "/tmp/nagare-loop-file-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    unlink(path);
    uint8_t *p = malloc(TEST_FILE_BYTES);
    for (uint64_t i = 0; i < TEST_FILE_BYTES; i++) {
        p[i] = file_byte(i);
    }
    cr_assert_eq(pwrite(fd, p, TEST_FILE_BYTES, 0), (ssize_t)TEST_FILE_BYTES);
    free(p);
    return fd;
}

struct delayed {
    struct loop_timer timer;
    struct loop_req *req;
};

static void echo_now(struct loop_req *req)
{
    size_t len;
    const uint8_t *frame = loop_req_frame(req, &len);
    uint8_t *out;
    if (loop_resp_buf(req, len, &out) != 0) {
        loop_req_fail(req);
        return;
    }
    memcpy(out, frame, len);
    loop_req_respond(req, len);
}

static void delayed_fire(struct loop_timer *t, void *arg)
{
    (void)arg;
    struct delayed *d = (struct delayed *)t;
    echo_now(d->req);
    free(d);
}

static void ext_release(struct loop_ext *ext)
{
    struct server *s = (struct server *)((void **)ext)[-1];
    atomic_fetch_add(&s->ext_released, 1);
    free((void **)ext - 1);
}

static void answer_big(struct loop_req *req, const uint8_t *frame, size_t len)
{
    cr_assert_geq(len, 9);
    uint32_t n = get_be32(frame + 1);
    uint8_t *out;
    if (loop_resp_buf(req, n, &out) != 0) {
        loop_req_fail(req);
        return;
    }
    memcpy(out, frame + 5, 4);
    for (uint32_t i = 4; i < n; i++) {
        out[i] = (uint8_t)(i * 7);
    }
    loop_req_respond(req, n);
}

static void answer_ext(struct server *s, struct loop_req *req)
{
    /* The ext node carries its server just before it, for the release. */
    void **mem = calloc(1, sizeof(void *) + sizeof(struct loop_ext));
    cr_assert_not_null(mem);
    mem[0] = s;
    struct loop_ext *ext = (struct loop_ext *)(mem + 1);
    ext->ptr = "EXT";
    ext->len = 3;
    ext->release = ext_release;
    uint8_t *out;
    cr_assert_eq(loop_resp_buf(req, 4, &out), 0);
    memcpy(out, "abcd", 4);
    loop_resp_ext(req, ext, 2);
    loop_req_respond(req, 4);
}

struct file_ext {
    struct loop_ext ext;
    struct server *s;
};

static void file_release(struct loop_ext *ext)
{
    struct file_ext *fe = (struct file_ext *)ext;
    atomic_fetch_add(&fe->s->files_released, 1);
    close(ext->fd);
    free(fe);
}

static void answer_file(struct server *s, struct loop_req *req, const uint8_t *frame, size_t len)
{
    cr_assert_eq(len, 17);
    uint64_t off = get_be64(frame + 1);
    uint32_t bytes = get_be32(frame + 9);
    uint32_t n = get_be32(frame + 13);
    uint8_t *out;
    cr_assert_eq(loop_resp_buf(req, 4 + 2 + 2 + (size_t)bytes, &out), 0);
    size_t at = 4;
    memcpy(out + at, "hd", 2);
    at += 2;
    for (uint32_t k = 0; k < n; k++) {
        uint64_t from = off + (uint64_t)bytes * k / n;
        uint64_t to = off + (uint64_t)bytes * (k + 1) / n;
        struct file_ext *fe = calloc(1, sizeof(*fe));
        fe->s = s;
        fe->ext.fd = dup(s->file_fd);
        fe->ext.off = from;
        fe->ext.len = to - from;
        fe->ext.release = file_release;
        cr_assert_geq(fe->ext.fd, 0);
        if (loop_resp_file(req, &fe->ext, at) != 0) {
            atomic_fetch_add(&s->files_refused, 1);
            cr_assert_eq(pread(s->file_fd, out + at, to - from, (off_t)from), (ssize_t)(to - from));
            at += to - from;
            close(fe->ext.fd);
            free(fe);
        }
    }
    memcpy(out + at, "tl", 2);
    at += 2;
    put_be32(out, bytes + 4); /* "hd", the bytes (in parts or copied), "tl" */
    loop_req_respond_frame(req, at);
}

static void handle(void *arg, struct loop_req *req)
{
    struct server *s = arg;
    atomic_fetch_add(&s->reqs_seen, 1);
    size_t len;
    const uint8_t *frame = loop_req_frame(req, &len);
    if (len == 0) {
        loop_req_respond(req, 0);
        return;
    }
    switch (frame[0]) {
    case 'D': {
        cr_assert_geq(len, 5);
        struct delayed *d = calloc(1, sizeof(*d));
        cr_assert_not_null(d);
        d->req = req;
        loop_timer_init(&d->timer, delayed_fire, NULL);
        loop_timer_arm(&s->loop, &d->timer, get_be32(frame + 1));
        break;
    }
    case 'N':
        loop_req_noreply(req);
        break;
    case 'F':
        loop_req_fail(req);
        break;
    case 'Q': /* answered (an echo), and the last request its connection sends */
        loop_req_close_after(req, -NG_EPROTO);
        echo_now(req);
        break;
    case 'B':
        answer_big(req, frame, len);
        break;
    case 'X':
        answer_ext(s, req);
        break;
    case 'W': { /* which listener accepted the connection */
        uint8_t *out;
        cr_assert_eq(loop_resp_buf(req, 1, &out), 0);
        out[0] = (uint8_t)('0' + loop_req_listener(req));
        loop_req_respond(req, 1);
        break;
    }
    case 'C': { /* counts its connection's 'C' requests in its ctx */
        uint32_t *count = loop_req_conn_ctx(req);
        if (count == NULL) {
            count = calloc(1, sizeof(*count));
            cr_assert_not_null(count);
            loop_req_set_conn_ctx(req, count);
        }
        (*count)++;
        uint8_t *out;
        cr_assert_eq(loop_resp_buf(req, 4, &out), 0);
        put_be32(out, *count);
        loop_req_respond(req, 4);
        break;
    }
    case 'T': /* tagged, then answered later ('D' with a tag) */
        loop_req_set_tag(req, 'T');
        echo_now(req);
        break;
    case 'L':
        answer_file(s, req, frame, len);
        break;
    default:
        echo_now(req);
        break;
    }
}

static void on_close(void *arg, uint64_t conn_id, void *ctx, int reason)
{
    (void)conn_id;
    (void)reason;
    struct server *s = arg;
    if (ctx != NULL) {
        free(ctx);
        atomic_fetch_add(&s->ctxs_released, 1);
    }
    atomic_fetch_add(&s->closes, 1);
}

static void on_done(void *arg, uint16_t tag, uint64_t handler_ns, bool failed)
{
    (void)handler_ns;
    struct server *s = arg;
    cr_assert(tag == 0 || tag == 'T');
    atomic_fetch_add(&s->dones[failed ? 2 : tag == 'T' ? 1 : 0], 1);
}

static void *server_main(void *arg)
{
    struct server *s = arg;
    s->init_rc = ring_init(&s->ring, 1024);
    if (s->init_rc == 0) {
        s->init_rc = loop_init(&s->loop, &s->ring, &s->cfg);
        if (s->init_rc == 0) {
            s->init_rc = loop_listen(&s->loop, "127.0.0.1", 0, &s->port);
        }
        if (s->init_rc == 0) {
            s->init_rc = loop_listen(&s->loop, "127.0.0.1", 0, &s->port2);
        }
    }
    sem_post(&s->ready);
    if (s->init_rc != 0) {
        return NULL;
    }
    s->run_rc = loop_run(&s->loop);
    /* Orphaned requests still held by delayed answers: let them finish. */
    struct loop_stats st;
    loop_stats(&s->loop, &st);
    while (st.reqs_live > 0 && s->run_rc == 0) {
        s->run_rc = loop_run_once(&s->loop, 100);
        loop_stats(&s->loop, &st);
    }
    loop_fini(&s->loop);
    ring_fini(&s->ring);
    return NULL;
}

static void server_start(struct server *s, void (*tune)(struct loop_cfg *))
{
    memset(s, 0, sizeof(*s));
    s->file_fd = make_test_file();
    loop_cfg_default(&s->cfg);
    s->cfg.on_request = handle;
    s->cfg.on_close = on_close;
    s->cfg.on_done = on_done;
    s->cfg.arg = s;
    s->cfg.drain_timeout_ms = WAIT_MS;
    if (tune != NULL) {
        tune(&s->cfg);
    }
    sem_init(&s->ready, 0, 0);
    cr_assert_eq(pthread_create(&s->thread, NULL, server_main, s), 0);
    sem_wait(&s->ready);
    cr_assert_eq(s->init_rc, 0, "server start: %s", err_str(s->init_rc));
    cr_assert_neq(s->port, 0);
}

static void server_stop(struct server *s)
{
    loop_stop_async(&s->loop);
    cr_assert_eq(pthread_join(s->thread, NULL), 0);
    cr_assert_eq(s->run_rc, 0, "loop_run: %s", err_str(s->run_rc));
    close(s->file_fd);
}

/* ---- stats from the loop thread, through the mailbox ------------------ */

struct stats_msg {
    struct loop_msg msg;
    struct server *s;
    struct loop_stats st;
    sem_t done;
};

static void stats_fn(struct loop_msg *m, void *arg)
{
    (void)arg;
    struct stats_msg *sm = (struct stats_msg *)m;
    loop_stats(&sm->s->loop, &sm->st);
    sem_post(&sm->done);
}

static struct loop_stats get_stats(struct server *s)
{
    struct stats_msg sm = {.msg = {.fn = stats_fn}, .s = s};
    sem_init(&sm.done, 0, 0);
    loop_post(&s->loop, &sm.msg);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += WAIT_MS / 1000;
    cr_assert_eq(sem_timedwait(&sm.done, &ts), 0, "loop did not answer a post");
    sem_destroy(&sm.done);
    return sm.st;
}

#define WAIT_STATS(s, st, cond)                                                              \
    do {                                                                                     \
        uint64_t until_ = (uint64_t)clock_mono_ms() + WAIT_MS;                               \
        for (;;) {                                                                           \
            st = get_stats(s);                                                               \
            if (cond) {                                                                      \
                break;                                                                       \
            }                                                                                \
            cr_assert_lt((uint64_t)clock_mono_ms(), until_, "timed out waiting for " #cond); \
            usleep(5000);                                                                    \
        }                                                                                    \
    } while (0)

/* ---- client helpers --------------------------------------------------- */

/* Whether a connection to port on loopback is accepted. */
static bool listening(uint16_t port)
{
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(c, 0);
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool up = connect(c, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(c);
    return up;
}

static int client(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct timeval tv = {.tv_sec = WAIT_MS / 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "connect: %s",
                 strerror(errno));
    return fd;
}

static void send_all(int fd, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        cr_assert_gt(w, 0, "send: %s", strerror(errno));
        p += w;
        n -= (size_t)w;
    }
}

/* Reads exactly n bytes; false on EOF or error before that. */
static bool recv_all(int fd, void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n > 0) {
        ssize_t r = recv(fd, p, n, 0);
        if (r <= 0) {
            return false;
        }
        p += r;
        n -= (size_t)r;
    }
    return true;
}

/* Appends a frame (prefix + payload) to buf at *pos. */
static void put_frame(uint8_t *buf, size_t *pos, const void *payload, size_t len)
{
    put_be32(buf + *pos, (uint32_t)len);
    memcpy(buf + *pos + 4, payload, len);
    *pos += 4 + len;
}

static void send_frame(int fd, const void *payload, size_t len)
{
    uint8_t *buf = malloc(len + 4);
    size_t pos = 0;
    put_frame(buf, &pos, payload, len);
    send_all(fd, buf, pos);
    free(buf);
}

/* Reads one frame into a malloc'd buffer; returns its length. */
static size_t recv_frame(int fd, uint8_t **out)
{
    uint8_t hdr[4];
    cr_assert(recv_all(fd, hdr, 4), "no answer frame: %s", strerror(errno));
    size_t len = get_be32(hdr);
    *out = malloc(len + 1);
    cr_assert(recv_all(fd, *out, len), "answer frame cut short");
    return len;
}

static void expect_echo(int fd, const void *payload, size_t len)
{
    uint8_t *got;
    size_t n = recv_frame(fd, &got);
    cr_assert_eq(n, len);
    cr_assert_eq(memcmp(got, payload, len), 0);
    free(got);
}

/* True when the peer closed (EOF or reset) before sending anything more. */
static bool closed_by_peer(int fd)
{
    uint8_t b;
    ssize_t r = recv(fd, &b, 1, 0);
    return r == 0 || (r < 0 && (errno == ECONNRESET || errno == EPIPE));
}

static void round_trip(uint16_t port)
{
    int fd = client(port);
    send_frame(fd, "Eping", 5);
    expect_echo(fd, "Eping", 5);
    close(fd);
}

/* ---- tests --------------------------------------------------------------- */

Test(loop, round_trip, .timeout = 60)
{
    struct server s;
    server_start(&s, NULL);
    int fd = client(s.port);
    send_frame(fd, "Ehello", 6);
    expect_echo(fd, "Ehello", 6);
    send_frame(fd, "", 0); /* empty frame, empty answer */
    expect_echo(fd, "", 0);
    send_frame(fd, "X", 1); /* answer with an external part spliced in */
    expect_echo(fd, "abEXTcd", 7);
    close(fd);
    struct loop_stats st;
    WAIT_STATS(&s, st, st.conns == 0);
    cr_assert_eq(st.frames_in, 3);
    cr_assert_eq(st.resps_out, 3);
    cr_assert_eq(st.mem_bytes_live, 0);
    cr_assert_eq(atomic_load(&s.ext_released), 1);
    cr_assert_eq(atomic_load(&s.closes), 1);
    server_stop(&s);
}

static void expect_count(int fd, uint32_t want)
{
    uint8_t ans[4];
    put_be32(ans, want);
    send_frame(fd, "C", 1);
    expect_echo(fd, (const char *)ans, 4);
}

Test(loop, a_connection_keeps_its_pointer_until_on_close_releases_it, .timeout = 60)
{
    struct server s;
    server_start(&s, NULL);
    int a = client(s.port);
    int b = client(s.port);
    expect_count(a, 1);
    expect_count(a, 2);
    expect_count(b, 1); /* each connection its own */
    expect_count(a, 3);
    close(a);
    struct loop_stats st;
    WAIT_STATS(&s, st, st.conns == 1);
    cr_assert_eq(atomic_load(&s.ctxs_released), 1, "a closed connection hands its pointer back");
    expect_count(b, 2);
    server_stop(&s); /* b still open: stopping closes it */
    cr_assert_eq(atomic_load(&s.ctxs_released), 2);
    close(b);
}

Test(loop, on_done_counts_each_completed_request_once_with_its_tag, .timeout = 60)
{
    struct server s;
    server_start(&s, NULL);
    int fd = client(s.port);
    send_frame(fd, "Ea", 2);
    expect_echo(fd, "Ea", 2);
    send_frame(fd, "Tb", 2);
    expect_echo(fd, "Tb", 2);
    send_frame(fd, "N", 1); /* no answer, still done */
    send_frame(fd, "F", 1); /* fails: the connection closes */
    cr_assert(closed_by_peer(fd));
    close(fd);
    struct loop_stats st;
    WAIT_STATS(&s, st, st.conns == 0);
    cr_assert_eq(atomic_load(&s.dones[0]), 2, "untagged: E and N");
    cr_assert_eq(atomic_load(&s.dones[1]), 1, "tagged: T");
    cr_assert_eq(atomic_load(&s.dones[2]), 1, "failed: F");
    server_stop(&s);
}

Test(loop, each_request_names_the_listener_its_connection_came_through, .timeout = 60)
{
    struct server s;
    server_start(&s, NULL);
    int first = client(s.port);
    int second = client(s.port2);
    send_frame(second, "W", 1);
    expect_echo(second, "1", 1);
    send_frame(first, "W", 1);
    expect_echo(first, "0", 1);
    send_frame(second, "Eboth", 5); /* the same handler serves both */
    expect_echo(second, "Eboth", 5);
    close(first);
    close(second);
    server_stop(&s);
    cr_assert(!listening(s.port), "the first listener is closed");
    cr_assert(!listening(s.port2), "the second listener is closed");
}

Test(loop, large_frame_round_trip, .timeout = 60)
{
    struct server s;
    server_start(&s, NULL);
    size_t len = (3u << 20) + 17; /* far past one receive buffer */
    uint8_t *p = malloc(len);
    p[0] = 'E';
    for (size_t i = 1; i < len; i++) {
        p[i] = (uint8_t)(i * 31 + (i >> 11));
    }
    int fd = client(s.port);
    send_frame(fd, p, len);
    expect_echo(fd, p, len);
    send_frame(fd, p, len); /* and again, from the pool's cache */
    expect_echo(fd, p, len);
    close(fd);
    free(p);
    server_stop(&s);
}

static void oneshot(struct loop_cfg *cfg) { cfg->rx_mshot_bytes = 0; }

static void pipelined_case(void (*tune)(struct loop_cfg *))
{
    struct server s;
    server_start(&s, tune);
    enum { N = 60 };
    uint8_t *buf = malloc(N * 32);
    size_t pos = 0;
    bool answered[N];
    for (int i = 0; i < N; i++) {
        uint8_t req[16];
        size_t len;
        answered[i] = true;
        if (i % 3 == 0) { /* later requests finish first */
            req[0] = 'D';
            put_be32(req + 1, (uint32_t)(N - i) * 3);
            put_be32(req + 5, (uint32_t)i);
            len = 9;
        } else if (i % 7 == 1) {
            req[0] = 'N'; /* no answer, must not hold up the rest */
            put_be32(req + 1, (uint32_t)i);
            len = 5;
            answered[i] = false;
        } else {
            req[0] = 'E';
            put_be32(req + 1, (uint32_t)i);
            len = 5;
        }
        put_frame(buf, &pos, req, len);
    }
    int fd = client(s.port);
    send_all(fd, buf, pos); /* one write: many frames per receive */
    for (int i = 0; i < N; i++) {
        if (!answered[i]) {
            continue;
        }
        uint8_t *got;
        size_t n = recv_frame(fd, &got);
        if (got[0] == 'D') {
            cr_assert_eq(n, 9);
            cr_assert_eq(get_be32(got + 5), (uint32_t)i, "answer %d out of order", i);
        } else {
            cr_assert_eq(n, 5);
            cr_assert_eq(got[0], 'E');
            cr_assert_eq(get_be32(got + 1), (uint32_t)i, "answer %d out of order", i);
        }
        free(got);
    }
    close(fd);
    free(buf);
    struct loop_stats st = get_stats(&s);
    if (tune == oneshot) {
        cr_assert(!st.rx_multishot);
    } else { /* multishot needs Linux >= 6.17 for its byte cap */
        cr_log_info("multishot receive in use: %s", st.rx_multishot ? "yes" : "no");
    }
    server_stop(&s);
}

Test(loop, pipelined_answers_in_order_when_handlers_finish_out_of_order, .timeout = 60)
{
    pipelined_case(NULL);
}

Test(loop, pipelined_answers_in_order_with_oneshot_receives, .timeout = 60)
{
    pipelined_case(oneshot);
}

Test(loop, frame_sent_one_byte_at_a_time, .timeout = 60)
{
    struct server s;
    server_start(&s, NULL);
    uint8_t payload[200];
    payload[0] = 'E';
    for (size_t i = 1; i < sizeof(payload); i++) {
        payload[i] = (uint8_t)i;
    }
    uint8_t buf[4 + sizeof(payload)];
    size_t pos = 0;
    put_frame(buf, &pos, payload, sizeof(payload));
    int fd = client(s.port);
    for (size_t i = 0; i < pos; i++) {
        send_all(fd, buf + i, 1);
        usleep(500);
    }
    expect_echo(fd, payload, sizeof(payload));
    close(fd);
    server_stop(&s);
}

static void small_frames(struct loop_cfg *cfg) { cfg->frame_bytes_max = 1u << 20; }

Test(loop, oversized_length_closes_without_allocating, .timeout = 60)
{
    struct server s;
    server_start(&s, small_frames);
    int fd = client(s.port);
    /* A good request first: it is still answered before the close. */
    uint8_t buf[64];
    size_t pos = 0;
    uint8_t d[9] = {'D'};
    put_be32(d + 1, 50);
    put_frame(buf, &pos, d, sizeof(d));
    put_be32(buf + pos, 0x7fffffffu); /* 2 GiB: far past the 1 MiB max */
    pos += 4;
    memset(buf + pos, 'z', 16);
    pos += 16;
    send_all(fd, buf, pos);
    expect_echo(fd, d, sizeof(d));
    cr_assert(closed_by_peer(fd));
    close(fd);
    struct loop_stats st;
    WAIT_STATS(&s, st, st.conns == 0);
    cr_assert_eq(st.frames_refused, 1);
    cr_assert_lt(st.mem_bytes_peak, 1u << 20, "something was allocated for the frame");
    cr_assert_eq(st.mem_bytes_live, 0);
    /* Exactly one over the limit is refused too; exactly the limit is not. */
    fd = client(s.port);
    uint8_t hdr[4];
    put_be32(hdr, (1u << 20) + 1);
    send_all(fd, hdr, 4);
    cr_assert(closed_by_peer(fd));
    close(fd);
    uint8_t *max = calloc(1, 1u << 20);
    max[0] = 'E';
    fd = client(s.port);
    send_frame(fd, max, 1u << 20);
    expect_echo(fd, max, 1u << 20);
    close(fd);
    free(max);
    server_stop(&s);
}

/* Small fixed kernel buffers on both ends: what the kernel can park is then
 * bounded too (autotuning would allow up to tcp_rmem max, 32 MiB here), so
 * where the client stalls does not depend on timing. */
#define SOCK_BUF 65536

static void tight_bounds(struct loop_cfg *cfg)
{
    cfg->conn_inflight_max = 8;
    cfg->conn_tx_bytes_max = 16u << 10;
    cfg->sock_rcvbuf_bytes = SOCK_BUF;
    cfg->sock_sndbuf_bytes = SOCK_BUF;
}

static void tight_bounds_oneshot(struct loop_cfg *cfg)
{
    tight_bounds(cfg);
    oneshot(cfg);
}

static void never_reads_case(void (*tune)(struct loop_cfg *))
{
    struct server s;
    server_start(&s, tune);
    enum { M = 2000, REQ = 4096, ANS = 16384 };
    uint8_t *reqs = malloc((size_t)M * (REQ + 4));
    size_t total = 0;
    for (uint32_t i = 0; i < M; i++) {
        uint8_t req[REQ];
        memset(req, 'p', sizeof(req));
        req[0] = 'B';
        put_be32(req + 1, ANS);
        put_be32(req + 5, i);
        put_frame(reqs, &total, req, sizeof(req));
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int small = SOCK_BUF;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons(s.port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);

    /* Write without reading until writing has made no progress for a while:
     * the loop stopped reading and every buffer on the way is full. */
    size_t sent = 0;
    while (sent < total) {
        ssize_t w = send(fd, reqs + sent, total - sent, MSG_NOSIGNAL);
        if (w > 0) {
            sent += (size_t)w;
            continue;
        }
        cr_assert(w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK), "send: %s", strerror(errno));
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        if (poll(&pfd, 1, 1000) == 0) {
            break;
        }
    }
    /* Kernel buffers (4 x 128 KiB at most), the loop's bounds (8 requests,
     * 16 KiB of answers, a stash of 80 KiB): well under 2 MiB of 8. */
    cr_log_info("client stalled after %zu of %zu bytes", sent, total);
    cr_assert_lt(sent, total / 4, "the loop kept reading from a client that does not read");
    struct loop_stats st;
    WAIT_STATS(&s, st, st.rx_pauses >= 1);
    cr_assert_leq(st.reqs_live, 8, "more requests in flight than the bound");
    cr_assert_leq(st.rx_bytes, sent);

    /* Others are still served meanwhile. */
    for (int i = 0; i < 20; i++) {
        round_trip(s.port);
    }

    /* Now read: every answer arrives, in order, and the rest gets sent.
     * Every answer frame is exactly 4 + ANS bytes. */
    uint32_t next = 0;
    uint8_t *ans = malloc(ANS + 4);
    size_t have = 0;
    while (next < M) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN | (sent < total ? POLLOUT : 0)};
        cr_assert_gt(poll(&pfd, 1, WAIT_MS), 0, "stalled at answer %u", next);
        if ((pfd.revents & POLLOUT) && sent < total) {
            ssize_t w = send(fd, reqs + sent, total - sent, MSG_NOSIGNAL);
            if (w > 0) {
                sent += (size_t)w;
            }
        }
        if ((pfd.revents & POLLIN) == 0) {
            continue;
        }
        ssize_t r = recv(fd, ans + have, ANS + 4 - have, 0);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            continue;
        }
        cr_assert_gt(r, 0, "connection closed at answer %u", next);
        have += (size_t)r;
        if (have == ANS + 4) {
            cr_assert_eq(get_be32(ans), ANS);
            cr_assert_eq(get_be32(ans + 4), next, "answer out of order");
            cr_assert_eq(ans[4 + 100], (uint8_t)(100 * 7));
            next++;
            have = 0;
        }
    }
    free(ans);
    close(fd);
    free(reqs);
    WAIT_STATS(&s, st, st.conns == 0);
    cr_assert_eq(st.mem_bytes_live, 0);
    server_stop(&s);
}

Test(loop, client_that_never_reads_stops_being_read_from, .timeout = 120)
{
    never_reads_case(tight_bounds);
}

Test(loop, client_that_never_reads_stops_being_read_from_oneshot, .timeout = 120)
{
    never_reads_case(tight_bounds_oneshot);
}

Test(loop, idle_connections_do_not_hurt_others, .timeout = 180)
{
    enum { IDLE = 2500 };
    need_fds(2 * IDLE + 100);
    struct server s;
    server_start(&s, NULL);
    int *idle = malloc(sizeof(int) * IDLE);
    for (int i = 0; i < IDLE; i++) {
        idle[i] = client(s.port);
    }
    struct loop_stats st;
    WAIT_STATS(&s, st, st.conns == IDLE);
    /* Idle connections hold no buffer from the pool. */
    cr_assert_eq(st.mem_bytes_live, 0);
    int fd = client(s.port);
    for (uint32_t i = 0; i < 200; i++) {
        uint8_t req[5] = {'E'};
        put_be32(req + 1, i);
        send_frame(fd, req, sizeof(req));
        expect_echo(fd, req, sizeof(req));
    }
    close(fd);
    /* A few of the idle ones wake up and are served too. */
    for (int i = 0; i < IDLE; i += 500) {
        send_frame(idle[i], "Ewake", 5);
        expect_echo(idle[i], "Ewake", 5);
    }
    for (int i = 0; i < IDLE; i++) {
        close(idle[i]);
    }
    free(idle);
    WAIT_STATS(&s, st, st.conns == 0);
    cr_assert_eq(st.conns_accepted, IDLE + 1);
    cr_assert_eq(st.mem_bytes_live, 0);
    server_stop(&s);
}

/* ---- frames that stall half way ------------------------------------------ */

/* Opens conns connections that each send the length prefix of a frame of
 * claimed bytes and its first sent bytes, then stall; returns their
 * descriptors once the loop has received every byte of them. */
static int *stall_half_frames(struct server *s, size_t conns, uint32_t claimed, size_t sent)
{
    uint8_t *part = calloc(1, 4 + sent);
    put_be32(part, claimed);
    part[4] = 'E';
    struct loop_stats st = get_stats(s);
    uint64_t rx_before = st.rx_bytes;
    int *fds = malloc(conns * sizeof(int));
    for (size_t i = 0; i < conns; i++) {
        fds[i] = client(s->port);
        send_all(fds[i], part, 4 + sent);
    }
    free(part);
    WAIT_STATS(s, st, st.rx_bytes >= rx_before + conns * (4 + sent));
    return fds;
}

/* conns stalled half frames, each claiming claimed bytes and sending sent:
 * a client connected before and a new one are both served. */
static void stalled_half_frames_case(size_t conns, uint32_t claimed, size_t sent)
{
    need_fds(2 * conns + 200);
    struct server s;
    server_start(&s, NULL);
    int old = client(s.port);
    send_frame(old, "Ebefore", 7);
    expect_echo(old, "Ebefore", 7);
    int *fds = stall_half_frames(&s, conns, claimed, sent);
    struct loop_stats st = get_stats(&s);
    cr_log_info("%zu stalled frames of %u bytes (%zu sent): %llu bytes of buffers live, "
                "%llu waits for memory",
                conns, claimed, sent, (unsigned long long)st.mem_bytes_live,
                (unsigned long long)st.mem_waits);
    round_trip(s.port);           /* a new client */
    send_frame(old, "Eafter", 6); /* and one already connected */
    expect_echo(old, "Eafter", 6);
    close(old);
    for (size_t i = 0; i < conns; i++) {
        close(fds[i]);
    }
    free(fds);
    WAIT_STATS(&s, st, st.conns == 0);
    cr_assert_eq(st.mem_bytes_live, 0);
    server_stop(&s);
}

Test(loop, sixteen_stalled_64_mib_frames_do_not_lock_out_new_clients, .timeout = 120)
{
    stalled_half_frames_case(16, 64u << 20, 64u << 10);
}

Test(loop, a_thousand_stalled_1_mib_frames_do_not_lock_out_new_clients, .timeout = 120)
{
    /* A produce request carrying 1 MiB of records: 1 MiB and its header. */
    stalled_half_frames_case(1000, (1u << 20) + 64, 4096);
}

Test(loop, two_thousand_stalled_540_kb_frames_do_not_lock_out_new_clients, .timeout = 120)
{
    stalled_half_frames_case(2000, 540000, 16);
}

/* Sends n bytes on fd and waits until the loop has received them. */
static void send_seen(struct server *s, int fd, const void *p, size_t n)
{
    struct loop_stats st = get_stats(s);
    uint64_t before = st.rx_bytes;
    send_all(fd, p, n);
    WAIT_STATS(s, st, st.rx_bytes >= before + n);
}

Test(loop, a_partial_frame_holds_memory_for_what_arrived_not_what_it_claims, .timeout = 120)
{
    struct server s;
    server_start(&s, NULL);
    enum { PIECE = 100000 };
    size_t len = (3u << 20) + 5;
    uint8_t *p = malloc(4 + len);
    put_be32(p, (uint32_t)len);
    p[4] = 'E';
    for (size_t i = 1; i < len; i++) {
        p[4 + i] = (uint8_t)(i * 13 + (i >> 9));
    }
    int fd = client(s.port);
    send_seen(&s, fd, p, 4 + 4096);
    struct loop_stats st = get_stats(&s);
    cr_assert_eq(st.partial_frames, 1);
    cr_assert_leq(st.partial_bytes, LOOP_CONN_PARTIAL_BYTES_DEFAULT,
                  "4 KiB of a 3 MiB frame hold %llu bytes", (unsigned long long)st.partial_bytes);
    cr_assert_leq(st.mem_bytes_live, 2 * LOOP_CONN_PARTIAL_BYTES_DEFAULT);
    /* The rest in pieces the loop sees one at a time: the buffer grows
     * with them, never far past what arrived, and the bytes stay whole. */
    size_t at = 4 + 4096;
    while (at < 4 + len) {
        size_t n = 4 + len - at < PIECE ? 4 + len - at : PIECE;
        send_seen(&s, fd, p + at, n);
        at += n;
        st = get_stats(&s);
        if (at < 4 + len) {
            cr_assert_eq(st.partial_frames, 1);
            cr_assert_leq(st.partial_bytes, 2 * (at - 4) + LOOP_CONN_PARTIAL_BYTES_DEFAULT,
                          "%zu bytes in, %llu held", at - 4, (unsigned long long)st.partial_bytes);
        }
    }
    expect_echo(fd, p + 4, len);
    st = get_stats(&s);
    cr_assert_eq(st.partial_frames, 0);
    cr_assert_eq(st.partial_bytes, 0);
    close(fd);
    free(p);
    WAIT_STATS(&s, st, st.conns == 0);
    cr_assert_eq(st.mem_bytes_live, 0);
    server_stop(&s);
}

/* Frames up to 1 MiB; partial frames together at most 2 MiB: 32 stalled
 * at 64 KiB each fill it. */
#define SHED_FRAME_BYTES (1u << 20)
static void small_partial_budget(struct loop_cfg *cfg)
{
    cfg->frame_bytes_max = SHED_FRAME_BYTES;
    cfg->partial_bytes_max = 2ull * SHED_FRAME_BYTES;
}

Test(loop, partial_frames_past_their_bound_shed_the_oldest, .timeout = 120)
{
    enum { STALLED = 2 * SHED_FRAME_BYTES / LOOP_CONN_PARTIAL_BYTES_DEFAULT };
    struct server s;
    server_start(&s, small_partial_budget);
    int old = client(s.port);
    send_frame(old, "Ebefore", 7);
    expect_echo(old, "Ebefore", 7);
    /* One at a time, so that their order is known: fds[0] is the oldest. */
    uint8_t part[4 + 100] = {0};
    put_be32(part, SHED_FRAME_BYTES);
    part[4] = 'E';
    int fds[STALLED + 1];
    for (int i = 0; i < STALLED; i++) {
        fds[i] = client(s.port);
        send_seen(&s, fds[i], part, sizeof(part));
    }
    struct loop_stats st = get_stats(&s);
    cr_assert_eq(st.partial_frames, STALLED);
    cr_assert_eq(st.partial_bytes, 2ull * SHED_FRAME_BYTES);
    cr_assert_eq(st.partial_shed, 0);
    /* One more: the oldest goes. */
    fds[STALLED] = client(s.port);
    send_seen(&s, fds[STALLED], part, sizeof(part));
    cr_assert(closed_by_peer(fds[0]), "the oldest partial frame's connection is still open");
    WAIT_STATS(&s, st, st.conns == STALLED + 1 && st.partial_shed == 1);
    cr_assert_eq(st.partial_frames, STALLED);
    /* A new client's whole frame of the maximum size sheds as many as it
     * needs, the oldest first, and is answered. */
    uint8_t *big = calloc(1, SHED_FRAME_BYTES);
    big[0] = 'E';
    big[SHED_FRAME_BYTES - 1] = 'z';
    int fd = client(s.port);
    send_frame(fd, big, SHED_FRAME_BYTES);
    expect_echo(fd, big, SHED_FRAME_BYTES);
    free(big);
    close(fd);
    st = get_stats(&s);
    cr_assert_geq(st.partial_shed, 2);
    for (uint64_t i = 1; i < st.partial_shed; i++) {
        cr_assert(closed_by_peer(fds[i]), "connection %llu of the oldest is still open",
                  (unsigned long long)i);
    }
    /* The youngest stalled one is still there: its frame completes. */
    uint8_t *rest = calloc(1, SHED_FRAME_BYTES - 100);
    send_all(fds[STALLED], rest, SHED_FRAME_BYTES - 100);
    free(rest);
    uint8_t *got;
    cr_assert_eq(recv_frame(fds[STALLED], &got), SHED_FRAME_BYTES);
    cr_assert_eq(got[0], 'E');
    free(got);
    /* New and old clients are served. */
    round_trip(s.port);
    send_frame(old, "Eafter", 6);
    expect_echo(old, "Eafter", 6);
    close(old);
    for (int i = 0; i <= STALLED; i++) {
        close(fds[i]);
    }
    WAIT_STATS(&s, st, st.conns == 0);
    cr_assert_eq(st.partial_frames, 0);
    cr_assert_eq(st.partial_bytes, 0);
    cr_assert_eq(st.mem_bytes_live, 0);
    server_stop(&s);
}

static void short_partial_timeout(struct loop_cfg *cfg) { cfg->partial_timeout_ms = 100; }

Test(loop, a_frame_incomplete_past_its_timeout_closes_the_connection, .timeout = 120)
{
    struct server s;
    server_start(&s, short_partial_timeout);
    int idle = client(s.port); /* no frame begun: not timed out */
    int fd = client(s.port);
    uint8_t part[4 + 10] = {0};
    put_be32(part, 1000);
    part[4] = 'E';
    send_all(fd, part, sizeof(part));
    cr_assert(closed_by_peer(fd), "a stalled frame's connection is still open");
    close(fd);
    struct loop_stats st;
    WAIT_STATS(&s, st, st.conns == 1);
    cr_assert_eq(st.partial_timeouts, 1);
    cr_assert_eq(st.partial_frames, 0);
    cr_assert_eq(st.partial_bytes, 0);
    send_frame(idle, "Estill", 6);
    expect_echo(idle, "Estill", 6);
    round_trip(s.port);
    close(idle);
    WAIT_STATS(&s, st, st.conns == 0);
    cr_assert_eq(st.mem_bytes_live, 0);
    server_stop(&s);
}

static void reset(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd); /* RST */
}

Test(loop, peer_reset_mid_frame_cleans_up, .timeout = 60)
{
    struct server s;
    server_start(&s, NULL);
    /* Reset in the middle of a large frame's body. */
    int fd = client(s.port);
    uint8_t *part = calloc(1, 40000);
    put_be32(part, 100000);
    part[4] = 'E';
    send_all(fd, part, 40000);
    free(part);
    usleep(20000);
    reset(fd);
    /* Reset in the middle of a header. */
    fd = client(s.port);
    send_all(fd, "\0\0", 2);
    reset(fd);
    /* Reset while the handler holds a request: it completes on an orphan. */
    fd = client(s.port);
    uint8_t d[5] = {'D'};
    put_be32(d + 1, 200);
    send_frame(fd, d, sizeof(d));
    struct loop_stats st;
    WAIT_STATS(&s, st, atomic_load(&s.reqs_seen) == 1);
    reset(fd);
    WAIT_STATS(&s, st, st.conns == 0 && st.reqs_live == 0);
    cr_assert_eq(st.mem_bytes_live, 0);
    cr_assert_eq(atomic_load(&s.closes), 3);
    round_trip(s.port);
    server_stop(&s);
}

static void few_inflight(struct loop_cfg *cfg) { cfg->conn_inflight_max = 4; }

Test(loop, half_close_after_pipelining_still_gets_every_answer, .timeout = 60)
{
    struct server s;
    server_start(&s, few_inflight);
    enum { N = 100 }; /* far past the in-flight bound: most wait parked */
    uint8_t buf[N * 16];
    size_t pos = 0;
    for (uint32_t i = 0; i < N; i++) {
        uint8_t req[5] = {'E'};
        put_be32(req + 1, i);
        put_frame(buf, &pos, req, sizeof(req));
    }
    int fd = client(s.port);
    send_all(fd, buf, pos);
    cr_assert_eq(shutdown(fd, SHUT_WR), 0);
    for (uint32_t i = 0; i < N; i++) {
        uint8_t req[5] = {'E'};
        put_be32(req + 1, i);
        expect_echo(fd, req, sizeof(req));
    }
    cr_assert(closed_by_peer(fd));
    close(fd);
    struct loop_stats st;
    WAIT_STATS(&s, st, st.conns == 0);
    cr_assert_eq(st.frames_in, N);
    cr_assert_eq(st.mem_bytes_live, 0);
    server_stop(&s);
}

Test(loop, fail_closes_after_earlier_answers, .timeout = 60)
{
    struct server s;
    server_start(&s, NULL);
    uint8_t buf[64];
    size_t pos = 0;
    uint8_t d[5] = {'D'};
    put_be32(d + 1, 30);
    put_frame(buf, &pos, d, sizeof(d));
    put_frame(buf, &pos, "F", 1);
    put_frame(buf, &pos, "Elater", 6);
    int fd = client(s.port);
    send_all(fd, buf, pos);
    expect_echo(fd, d, sizeof(d));
    cr_assert(closed_by_peer(fd));
    close(fd);
    struct loop_stats st;
    WAIT_STATS(&s, st, st.conns == 0 && st.reqs_live == 0);
    server_stop(&s);
}

Test(loop, close_after_sends_the_answer_then_closes_and_reads_no_more, .timeout = 60)
{
    struct server s;
    server_start(&s, NULL);
    uint8_t buf[64];
    size_t pos = 0;
    uint8_t d[5] = {'D'};
    put_be32(d + 1, 30);
    put_frame(buf, &pos, d, sizeof(d));
    put_frame(buf, &pos, "Qbye", 4);
    put_frame(buf, &pos, "Elater", 6);
    int fd = client(s.port);
    send_all(fd, buf, pos);
    expect_echo(fd, d, sizeof(d)); /* the earlier answer first */
    expect_echo(fd, "Qbye", 4);    /* then its own */
    cr_assert(closed_by_peer(fd)); /* and nothing for the request after it */
    close(fd);
    struct loop_stats st;
    WAIT_STATS(&s, st, st.conns == 0 && st.reqs_live == 0);
    cr_assert_eq(atomic_load(&s.reqs_seen), 2, "the request after it was not handled");
    server_stop(&s);
}

/* ---- timers --------------------------------------------------------------- */

struct timer_case {
    struct server *s;
    struct loop_timer t[4];
    uint64_t armed_ms;
    int order[8];
    uint64_t at_ms[8];
    atomic_int fired;
    bool rearmed;
    sem_t done;
    struct loop_msg msg;
};

static void timer_fire(struct loop_timer *t, void *arg)
{
    struct timer_case *tc = arg;
    int which = (int)(t - tc->t);
    int n = atomic_load(&tc->fired);
    tc->order[n] = which;
    tc->at_ms[n] = (uint64_t)clock_mono_ms();
    atomic_store(&tc->fired, n + 1);
    if (which == 1 && !tc->rearmed) { /* a callback re-arms its own timer */
        tc->rearmed = true;
        loop_timer_arm(&tc->s->loop, t, 50);
    }
    if (n + 1 == 4) {
        sem_post(&tc->done);
    }
}

static void timer_setup(struct loop_msg *m, void *arg)
{
    (void)m;
    struct timer_case *tc = arg;
    struct loop *l = &tc->s->loop;
    static const uint64_t delay[4] = {60, 20, 40, 30};
    tc->armed_ms = (uint64_t)clock_mono_ms();
    for (int i = 0; i < 4; i++) {
        loop_timer_init(&tc->t[i], timer_fire, tc);
        loop_timer_arm(l, &tc->t[i], delay[i]);
    }
    cr_assert(loop_timer_cancel(l, &tc->t[3]));
    cr_assert(!loop_timer_cancel(l, &tc->t[3]));
    cr_assert(!loop_timer_armed(&tc->t[3]));
}

Test(loop, timers_fire_in_deadline_order_and_never_early, .timeout = 60)
{
    struct server s;
    server_start(&s, NULL);
    struct timer_case *tc = calloc(1, sizeof(*tc));
    tc->s = &s;
    sem_init(&tc->done, 0, 0);
    tc->msg = (struct loop_msg){.fn = timer_setup, .arg = tc};
    loop_post(&s.loop, &tc->msg);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += WAIT_MS / 1000;
    cr_assert_eq(sem_timedwait(&tc->done, &ts), 0);
    cr_assert_eq(tc->order[0], 1);
    cr_assert_eq(tc->order[1], 2);
    cr_assert_eq(tc->order[2], 0);
    cr_assert_eq(tc->order[3], 1); /* the re-armed one: 20 + 50 > 60 */
    cr_assert_geq(tc->at_ms[0] - tc->armed_ms, 20);
    cr_assert_geq(tc->at_ms[1] - tc->armed_ms, 40);
    cr_assert_geq(tc->at_ms[2] - tc->armed_ms, 60);
    cr_assert_geq(tc->at_ms[3] - tc->armed_ms, 70);
    usleep(100000);
    cr_assert_eq(atomic_load(&tc->fired), 4, "the cancelled timer fired");
    server_stop(&s);
    free(tc);
}

/* ---- shutdown ------------------------------------------------------------ */

Test(loop, stop_answers_in_flight_requests_then_closes, .timeout = 60)
{
    struct server s;
    server_start(&s, NULL);
    int idle = client(s.port);
    int fd = client(s.port);
    uint8_t buf[64];
    size_t pos = 0;
    for (uint32_t i = 0; i < 3; i++) {
        uint8_t d[9] = {'D'};
        put_be32(d + 1, 300);
        put_be32(d + 5, i);
        put_frame(buf, &pos, d, sizeof(d));
    }
    send_all(fd, buf, pos);
    struct loop_stats st;
    WAIT_STATS(&s, st, atomic_load(&s.reqs_seen) == 3 && st.conns == 2);
    loop_stop_async(&s.loop);
    for (uint32_t i = 0; i < 3; i++) {
        uint8_t *got;
        size_t n = recv_frame(fd, &got);
        cr_assert_eq(n, 9);
        cr_assert_eq(get_be32(got + 5), i);
        free(got);
    }
    cr_assert(closed_by_peer(fd));
    cr_assert(closed_by_peer(idle));
    cr_assert_eq(pthread_join(s.thread, NULL), 0);
    cr_assert_eq(s.run_rc, 0);
    close(fd);
    close(idle);
    cr_assert(!listening(s.port), "the listener is gone");
}

Test(loop, bad_config_is_refused, .timeout = 30)
{
    struct ring r;
    cr_assert_eq(ring_init(&r, 8), 0);
    struct loop_cfg cfg;
    loop_cfg_default(&cfg);
    struct loop l;
    cr_assert_eq(loop_init(&l, &r, &cfg), -NG_EBADARG); /* no handler */
    cfg.on_request = handle;
    cfg.rx_buf_count = 100; /* not a power of two */
    cr_assert_eq(loop_init(&l, &r, &cfg), -NG_EBADARG);
    loop_cfg_default(&cfg);
    cfg.on_request = handle;
    cfg.frame_bytes_max = LOOP_FRAME_BYTES_CAP + 1;
    cr_assert_eq(loop_init(&l, &r, &cfg), -NG_EBADARG);
    ring_fini(&r);
}

/* ---- file parts --------------------------------------------------------- */

static void send_file_req(int fd, uint64_t off, uint32_t len, uint32_t parts)
{
    uint8_t req[17] = {'L'};
    put_be64(req + 1, off);
    put_be32(req + 9, len);
    put_be32(req + 13, parts);
    send_frame(fd, req, sizeof(req));
}

static void expect_file_answer(int fd, uint64_t off, uint32_t len)
{
    uint8_t *got;
    size_t n = recv_frame(fd, &got);
    cr_assert_eq(n, (size_t)len + 4);
    cr_assert_eq(memcmp(got, "hd", 2), 0);
    for (uint32_t i = 0; i < len; i++) {
        if (got[2 + i] != file_byte(off + i)) {
            cr_assert_fail("byte %u of a file part from %lu differs", i, (unsigned long)off);
        }
    }
    cr_assert_eq(memcmp(got + 2 + len, "tl", 2), 0);
    free(got);
}

Test(loop, file_parts_arrive_whole_and_in_order, .timeout = 60)
{
    struct server s;
    server_start(&s, NULL);
    int fd = client(s.port);
    /* Pipelined: answers with file parts between ones without. */
    send_frame(fd, "Eone", 4);
    send_file_req(fd, 5, 3u << 20, 3);
    send_frame(fd, "X", 1);
    send_file_req(fd, (8u << 20) + 1, 1000, 1);
    send_file_req(fd, 0, 0, 1); /* an empty part */
    send_file_req(fd, 77, 5u << 20, 17);
    send_frame(fd, "Etwo", 4);
    expect_echo(fd, "Eone", 4);
    expect_file_answer(fd, 5, 3u << 20);
    expect_echo(fd, "abEXTcd", 7);
    expect_file_answer(fd, (8u << 20) + 1, 1000);
    expect_file_answer(fd, 0, 0);
    expect_file_answer(fd, 77, 5u << 20);
    expect_echo(fd, "Etwo", 4);
    close(fd);
    struct loop_stats st;
    WAIT_STATS(&s, st, st.conns == 0);
    cr_assert_eq(atomic_load(&s.files_released), 3 + 1 + 1 + 17);
    cr_assert_eq(st.file_parts_live, 0);
    cr_assert_eq(st.tx_spliced_bytes, (3u << 20) + 1000 + (5u << 20));
    cr_assert_eq(st.pipes_live, st.pipes_cached, "no pipe held by anyone");
    cr_assert_leq(st.pipes_live, LOOP_PIPE_CACHE);
    cr_assert_eq(st.mem_bytes_live, 0);
    server_stop(&s);
}

static void small_socket_buffers(struct loop_cfg *cfg) { cfg->sock_sndbuf_bytes = 64 << 10; }

Test(loop, peer_reset_mid_splice_releases_file_parts_and_pipe, .timeout = 60)
{
    struct server s;
    server_start(&s, small_socket_buffers);
    int fd = client(s.port);
    int rcv = 32 << 10;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
    send_file_req(fd, 0, 16u << 20, 4);
    send_file_req(fd, 0, 16u << 20, 4);
    uint8_t head[4096];
    cr_assert(recv_all(fd, head, sizeof(head)));
    cr_assert_eq(get_be32(head), (16u << 20) + 4);
    struct loop_stats st;
    /* The socket fills: the rest waits in the pipe, behind a poll. */
    WAIT_STATS(&s, st, st.pipes_live > st.pipes_cached);
    reset(fd);
    WAIT_STATS(&s, st, st.conns == 0 && st.file_parts_live == 0);
    cr_assert_eq(atomic_load(&s.files_released), 8);
    cr_assert_eq(st.pipes_live, st.pipes_cached, "the held pipe went with the connection");
    cr_assert_lt(st.tx_spliced_bytes, 32u << 20);
    cr_assert_eq(st.mem_bytes_live, 0);
    round_trip(s.port);
    server_stop(&s);
}

Test(loop, a_file_shorter_than_its_part_closes_the_connection, .timeout = 60)
{
    struct server s;
    server_start(&s, NULL);
    int fd = client(s.port);
    send_file_req(fd, TEST_FILE_BYTES - 100, 1000, 1); /* 900 bytes past the end */
    uint8_t got[4 + 2 + 100];
    cr_assert(recv_all(fd, got, sizeof(got)), "what the file had is sent");
    cr_assert_eq(get_be32(got), 1004);
    cr_assert(closed_by_peer(fd), "then the connection closes: its length was promised");
    close(fd);
    struct loop_stats st;
    WAIT_STATS(&s, st, st.conns == 0 && st.file_parts_live == 0);
    cr_assert_eq(atomic_load(&s.files_released), 1);
    round_trip(s.port);
    server_stop(&s);
}

Test(loop, many_connections_send_file_parts_at_once, .timeout = 120)
{
    enum { CONNS = 48, REQS = 3 };
    struct server s;
    server_start(&s, small_socket_buffers);
    int fds[CONNS];
    for (int i = 0; i < CONNS; i++) {
        fds[i] = client(s.port);
        for (int k = 0; k < REQS; k++) {
            send_file_req(fds[i], (uint64_t)i * 4099 + (uint64_t)k * 65537, 1u << 20, 1 + k);
        }
    }
    /* Read them one after another: the others wait with full sockets,
     * each holding a pipe, meanwhile. */
    struct loop_stats st;
    WAIT_STATS(&s, st, st.pipes_live > LOOP_PIPE_CACHE);
    for (int i = 0; i < CONNS; i++) {
        for (int k = 0; k < REQS; k++) {
            expect_file_answer(fds[i], (uint64_t)i * 4099 + (uint64_t)k * 65537, 1u << 20);
        }
        close(fds[i]);
    }
    WAIT_STATS(&s, st, st.conns == 0);
    cr_assert_eq(st.file_parts_live, 0);
    cr_assert_eq(atomic_load(&s.files_released), CONNS * (1 + 2 + 3));
    cr_assert_eq(st.pipes_live, st.pipes_cached);
    cr_assert_leq(st.pipes_live, LOOP_PIPE_CACHE);
    cr_assert_eq(st.tx_spliced_bytes, (uint64_t)CONNS * REQS << 20);
    server_stop(&s);
}

static void two_file_parts(struct loop_cfg *cfg) { cfg->file_parts_max = 2; }

Test(loop, file_parts_past_the_maximum_are_refused_and_copied, .timeout = 60)
{
    struct server s;
    server_start(&s, two_file_parts);
    int fd = client(s.port);
    send_file_req(fd, 3, 1u << 20, 5);
    expect_file_answer(fd, 3, 1u << 20);
    close(fd);
    struct loop_stats st;
    WAIT_STATS(&s, st, st.conns == 0);
    cr_assert_eq(atomic_load(&s.files_released), 2);
    cr_assert_eq(atomic_load(&s.files_refused), 3);
    cr_assert_eq(st.file_parts_live, 0);
    server_stop(&s);
}

/* The lowest descriptor number not in use. */
static int first_free_fd(void)
{
    int fd = 0;
    while (fcntl(fd, F_GETFD) >= 0) {
        fd++;
    }
    return fd;
}

Test(loop, a_connection_that_finds_no_pipe_waits_for_one, .timeout = 60)
{
    struct server s;
    server_start(&s, small_socket_buffers);
    /* a holds a pipe: its socket is full and bytes wait in the pipe. */
    int a = client(s.port);
    int rcv = 32 << 10;
    setsockopt(a, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
    send_file_req(a, 0, 8u << 20, 1);
    struct loop_stats st;
    WAIT_STATS(&s, st, st.pipes_live > st.pipes_cached);
    int b = client(s.port);
    WAIT_STATS(&s, st, st.conns == 2);
    /* Room for the handler's dup, none for a new pipe. */
    struct rlimit saved;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &saved), 0);
    struct rlimit tight = {.rlim_cur = (rlim_t)first_free_fd() + 1, .rlim_max = saved.rlim_max};
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &tight), 0);
    send_file_req(b, 11, 1u << 20, 1);
    WAIT_STATS(&s, st, st.pipe_waits > 0);
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &saved), 0);
    /* The retry finds a pipe: b is served, then a. */
    expect_file_answer(b, 11, 1u << 20);
    expect_file_answer(a, 0, 8u << 20);
    close(a);
    close(b);
    WAIT_STATS(&s, st, st.conns == 0);
    cr_assert_eq(st.file_parts_live, 0);
    cr_assert_eq(st.pipes_live, st.pipes_cached);
    server_stop(&s);
}
