/*
 * net/conn.c — one connection: frames in, handler calls, answers out in
 * order, back-pressure, close.
 *
 * Reading. A connection reads only while it is under every bound (requests in
 * flight, request bytes held, answer bytes queued) or is in the middle of a
 * frame. Bytes that arrive after it went over a bound — the receive that was
 * already armed — are parked in its stash (at most one multishot arm's cap
 * plus one buffer) and parsed first when it resumes; it arms nothing while
 * the stash is not empty, so the kernel's socket buffer and then TCP push
 * back on the client.
 *
 * Partial frames. A frame's buffer is sized by what has arrived, never by
 * its length prefix alone (net/loop.h): it starts at conn_partial_bytes
 * and grows when full, to at least twice its size or to every byte that
 * has arrived (FIONREAD counts those still in the kernel), whichever is
 * more. Each growth copies the bytes it holds once. Frames that arrive
 * whole with their prefix skip all this.
 *
 * Writing. At most one sendmsg is in flight; it gathers every answer that is
 * ready at the head of the FIFO, up to the first file part. A partial send
 * leaves tx_head_sent bytes of the head answer sent, and the next sendmsg
 * starts after them. A file part at the head goes out with splice(2) on
 * this thread, file -> pipe -> socket, both non-blocking: the file side
 * takes page references from the page cache (reading from the disk first
 * if the pages are not there, as pread did), the socket side hands those
 * pages to TCP; no byte is copied. When the socket is full the bytes stay
 * in the connection's pipe and a POLLOUT poll stands in for the send in
 * flight. io_uring's own splice (IORING_OP_SPLICE) is always punted to an
 * io-wq worker (the kernel forces it async), two thread hops per pipeful
 * for the same two splices; done here, a splice costs what a send costs.
 * A connection holds a pipe only while bytes sit in it.
 *
 * Closing. conn_rx_stop() is the orderly way (EOF, oversized frame, stop):
 * read nothing more, answer what is in flight, close. conn_abort() cuts: ops
 * cancelled, requests the handler still holds are orphaned (their frames stay
 * valid until the handler completes them).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "base/bytes.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "net/loop_int.h"

enum { RX_GO, RX_BLOCKED, RX_DROP };

/* What an idle connection costs us (net/loop.h promises "about 210 bytes");
 * a request slot lives only as long as its request. */
static_assert(sizeof(struct conn) <= 256, "struct conn grew: idle connections cost more");
static_assert(sizeof(struct loop_req) <= 192, "struct loop_req grew");

static void conn_recv_done(struct ring_op *op, int res, uint32_t flags);
static void conn_send_done(struct ring_op *op, int res, uint32_t flags);
static void conn_cancel_done(struct ring_op *op, int res, uint32_t flags);

static size_t min_size(size_t a, size_t b) { return a < b ? a : b; }

int conn_open(struct loop *l, int fd, uint8_t listener)
{
    struct conn *c = loop_conn_get(l);
    if (c == NULL) {
        close(fd);
        return -ENOMEM;
    }
    /* Answers are whole frames written at once: never wait for more. A
     * failure only costs latency, so it is not fatal. */
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->loop = l;
    c->fd = fd;
    c->id = ++l->conn_seq;
    c->ctx = NULL;
    c->tls = NULL;
    c->listener = listener;
    if (l->listeners[listener].tls != NULL && conn_tls_open(c, l->listeners[listener].tls) != 0) {
        loop_conn_put(l, c);
        close(fd);
        return -ENOMEM;
    }
    c->recv_op = (struct ring_op){.done = conn_recv_done, .kind = RING_NET};
    c->send_op = (struct ring_op){.done = conn_send_done, .kind = RING_NET};
    c->cancel_op = (struct ring_op){.done = conn_cancel_done, .kind = RING_NET};
    dl_push(&l->conns, &c->all);
    l->stats.conns++;
    l->stats.conns_accepted++;
    conn_dirty(c);
    return 0;
}

void conn_dirty(struct conn *c)
{
    ASSERT(c->fd >= 0); /* never a freed connection */
    if ((c->flags & CONN_DIRTY) == 0) {
        c->flags |= CONN_DIRTY;
        dl_push(&c->loop->dirty, &c->dirty);
    }
}

/* ---- requests ----------------------------------------------------------- */

static void req_free_frame(struct loop *l, struct loop_req *r)
{
    if (r->frame != NULL) {
        if (r->conn != NULL) {
            ASSERT(r->conn->rx_held_bytes >= r->frame_bytes);
            r->conn->rx_held_bytes -= r->frame_bytes;
        }
        loop_mem_put(l, r->frame, r->frame_cap);
        r->frame = NULL;
    }
}

static void req_free_answer(struct loop *l, struct loop_req *r)
{
    loop_mem_put(l, r->resp, r->resp_cap);
    r->resp = NULL;
    r->resp_cap = r->resp_bytes = 0;
    struct loop_ext *e = r->ext_head;
    r->ext_head = r->ext_tail = NULL;
    r->ext_bytes = 0;
    while (e != NULL) {
        struct loop_ext *next = e->next;
        if (e->file) {
            ASSERT(l->stats.file_parts_live > 0);
            l->stats.file_parts_live--;
        }
        if (e->release != NULL) {
            e->release(e);
        }
        e = next;
    }
}

/* Frees r and everything it holds. The caller has taken it off its FIFO. */
static void req_destroy(struct loop *l, struct loop_req *r)
{
    req_free_frame(l, r);
    req_free_answer(l, r);
    if (dl_linked(&r->olink)) {
        dl_del(&r->olink);
    }
    ASSERT(l->stats.reqs_live > 0);
    l->stats.reqs_live--;
    loop_req_put(l, r);
}

static struct loop_req *conn_pop(struct conn *c)
{
    struct loop_req *r = c->head;
    ASSERT(r != NULL && c->req_count > 0);
    c->head = r->next;
    if (c->head == NULL) {
        c->tail = NULL;
    }
    r->next = NULL;
    c->req_count--;
    return r;
}

/* ---- reading ------------------------------------------------------------ */

/* Whether a new frame may be started (next_bytes long; 0 to ask whether
 * reading is worth arming at all). */
static bool conn_rx_blocked(const struct conn *c, uint64_t next_bytes)
{
    const struct loop_cfg *cfg = &c->loop->cfg;
    if (c->req_count >= cfg->conn_inflight_max || c->tx_queued_bytes >= cfg->conn_tx_bytes_max) {
        return true;
    }
    if (next_bytes == 0) {
        return c->rx_held_bytes >= cfg->conn_rx_bytes_max;
    }
    return c->rx_held_bytes > 0 && c->rx_held_bytes + next_bytes > cfg->conn_rx_bytes_max;
}

static void conn_memwait(struct conn *c)
{
    c->loop->stats.mem_waits++;
    if ((c->flags & CONN_MEMWAIT) == 0) {
        c->flags |= CONN_MEMWAIT;
        dl_push(&c->loop->memwait, &c->wait);
    }
}

/* ---- partial frames ------------------------------------------------------ */

/* Bytes r's buffer can still take. */
static uint32_t frame_room(const struct loop_req *r)
{
    uint32_t end = r->frame_cap < r->frame_bytes ? r->frame_cap : r->frame_bytes;
    ASSERT(end >= r->frame_got);
    return end - r->frame_got;
}

/* Bytes received on c that wait in the kernel (FIONREAD; 0 if it cannot
 * say: growth then just doubles). */
static uint64_t conn_inq(const struct conn *c)
{
    int n = 0;
    return ioctl(c->fd, FIONREAD, &n) == 0 && n > 0 ? (uint64_t)n : 0;
}

/* The size r's buffer grows to next, hand bytes of it being in hand: at
 * least conn_partial_bytes at first, then at least twice what it is; more
 * when more has arrived; never past the frame. */
static uint64_t frame_next_bytes(const struct conn *c, const struct loop_req *r, size_t hand)
{
    uint64_t want = r->frame == NULL ? c->loop->cfg.conn_partial_bytes : 2ull * r->frame_cap;
    if (want < r->frame_bytes) {
        uint64_t arrived = (uint64_t)r->frame_got + hand + conn_inq(c);
        want = arrived > want ? arrived : want;
    }
    return want < r->frame_bytes ? want : r->frame_bytes;
}

static void partial_enter(struct loop *l, struct loop_req *r)
{
    r->rx_start_ns = clock_mono_ns();
    dl_push(&l->partials, &r->olink);
    l->stats.partial_frames++;
    l->stats.partial_bytes += r->frame_cap;
    /* Armed for an older frame, it fires early and moves itself on. */
    if (!loop_timer_armed(&l->partial_timer)) {
        loop_timer_arm(l, &l->partial_timer, l->cfg.partial_timeout_ms);
    }
}

/* c's frame being received, if any, is one no more (complete, or never to
 * be: c reads no more). Idempotent. */
static void partial_leave(struct conn *c)
{
    struct loop *l = c->loop;
    struct loop_req *r = c->rx_req;
    if (r != NULL && r->state == REQ_RECV && dl_linked(&r->olink)) {
        dl_del(&r->olink);
        ASSERT(l->stats.partial_frames > 0 && l->stats.partial_bytes >= r->frame_cap);
        l->stats.partial_frames--;
        l->stats.partial_bytes -= r->frame_cap;
    }
}

void conn_peer_name(const struct conn *c, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (getpeername(c->fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
            port = ntohs(a->sin6_port);
        } else if (ss.ss_family == AF_INET) {
            const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
            port = ntohs(a->sin_port);
        }
    }
    snprintf(out, cap, ss.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", host, port);
}

bool loop_close_log_turn(struct loop *l, char *more, size_t cap)
{
    uint64_t sec = clock_mono_ns() / 1000000000ull;
    if (sec != l->shed_log_sec) {
        l->shed_log_sec = sec;
        l->shed_log_lines = 0;
    }
    if (l->shed_log_lines >= LOOP_SHED_LOG_PER_SEC) {
        l->shed_log_skipped++;
        return false;
    }
    l->shed_log_lines++;
    more[0] = '\0';
    if (l->shed_log_skipped > 0) {
        snprintf(more, cap, " (and %llu more not logged before)",
                 (unsigned long long)l->shed_log_skipped);
    }
    l->shed_log_skipped = 0;
    return true;
}

/* Closes c, whose frame is being received (it reads no more; the answers
 * it is owed still go out), and logs why: at most LOOP_SHED_LOG_PER_SEC
 * lines a second, the rest counted in the next line. */
static void conn_shed(struct conn *c, int reason, const char *why)
{
    struct loop *l = c->loop;
    const struct loop_req *r = c->rx_req;
    ASSERT(r != NULL && r->state == REQ_RECV);
    char more[64];
    if (loop_close_log_turn(l, more, sizeof(more))) {
        char peer[INET6_ADDRSTRLEN + 16];
        conn_peer_name(c, peer, sizeof(peer));
        log_warn("net: closing connection %llu from %s: %s; %u of its %u-byte frame "
                 "came in %llu ms%s",
                 (unsigned long long)c->id, peer, why, r->frame_got, r->frame_bytes,
                 (unsigned long long)((clock_mono_ns() - r->rx_start_ns) / 1000000u), more);
    }
    conn_rx_stop(c, reason);
    ASSERT(!dl_linked(&r->olink)); /* so the callers' loops end */
}

/* Makes room under partial_bytes_max for need more bytes of c's frame:
 * closes the connections whose frames began longest ago, never c. */
static void partial_make_room(struct conn *c, uint64_t need)
{
    struct loop *l = c->loop;
    struct loop_dl *n = l->partials.next;
    while (l->stats.partial_bytes + need > l->cfg.partial_bytes_max) {
        /* Only c is left: it fits, partial_bytes_max >= 2 x frame_bytes_max. */
        ASSERT(n != &l->partials);
        struct loop_req *v = container_of(n, struct loop_req, olink);
        n = n->next;
        if (v->conn != c) {
            l->stats.partial_shed++;
            conn_shed(v->conn, -NG_EBUSY, "partial frames at partial_bytes_max");
        }
    }
}

/* Gives r, the frame c is receiving (or about to: frame NULL), a bigger
 * buffer (frame_next_bytes()), the bytes it holds copied over. false when
 * memory is short: c then waits on loop->memwait. No receive may target
 * r's buffer meanwhile. */
static bool frame_grow(struct conn *c, struct loop_req *r, size_t hand)
{
    struct loop *l = c->loop;
    ASSERT((c->flags & CONN_RX_DIRECT) == 0 && r->frame_got < r->frame_bytes);
    uint64_t want = frame_next_bytes(c, r, hand);
    size_t cap = loop_mem_cap(want);
    ASSERT(cap > r->frame_cap);
    bool counted = dl_linked(&r->olink);
    partial_make_room(c, cap - (counted ? r->frame_cap : 0));
    size_t got_cap = 0;
    uint8_t *p = loop_mem_get(l, want, false, &got_cap);
    if (p == NULL) {
        conn_memwait(c);
        return false;
    }
    ASSERT(got_cap == cap);
    if (r->frame != NULL) {
        memcpy(p, r->frame, r->frame_got);
        loop_mem_put(l, r->frame, r->frame_cap);
    }
    if (counted) {
        l->stats.partial_bytes += cap - r->frame_cap;
    }
    r->frame = p;
    r->frame_cap = (uint32_t)cap;
    return true;
}

void conn_partial_expire(struct loop_timer *t, void *arg)
{
    struct loop *l = arg;
    uint64_t limit_ns = (uint64_t)l->cfg.partial_timeout_ms * 1000000u;
    while (!dl_empty(&l->partials)) {
        struct loop_req *r = container_of(l->partials.next, struct loop_req, olink);
        uint64_t now = clock_mono_ns();
        uint64_t age = now > r->rx_start_ns ? now - r->rx_start_ns : 0;
        if (age < limit_ns) {
            loop_timer_arm(l, t, (limit_ns - age + 999999u) / 1000000u);
            return;
        }
        l->stats.partial_timeouts++;
        conn_shed(r->conn, -NG_ETIMEOUT, "frame incomplete past partial_timeout_ms");
    }
}

/* The frame in rx_req is complete: queue it and hand it to the handler. */
static void conn_rx_complete(struct conn *c)
{
    struct loop *l = c->loop;
    struct loop_req *r = c->rx_req;
    partial_leave(c);
    ASSERT(r->frame_cap >= r->frame_bytes);
    c->rx_req = NULL;
    r->state = REQ_HANDLER;
    r->tag = 0;
    r->handled_ns = l->cfg.on_done != NULL ? clock_mono_ns() : 0;
    if (c->tail != NULL) {
        c->tail->next = r;
    } else {
        c->head = r;
    }
    c->tail = r;
    l->stats.frames_in++;
    l->cfg.on_request(l->cfg.arg, r);
}

/* The 4-byte header is in c->hdr: check it, then allocate the request, with
 * hand bytes of the frame already received behind the header. */
static int conn_rx_begin(struct conn *c, size_t hand)
{
    struct loop *l = c->loop;
    uint32_t len = get_be32(c->hdr);
    if (len > l->cfg.frame_bytes_max) {
        /* Refused before anything is allocated for it. */
        l->stats.frames_refused++;
        conn_rx_stop(c, -NG_ETOOBIG);
        return RX_DROP;
    }
    if (conn_rx_blocked(c, len)) {
        return RX_BLOCKED;
    }
    struct loop_req *r = loop_req_get(l);
    if (r == NULL) {
        conn_memwait(c);
        return RX_BLOCKED;
    }
    r->loop = l;
    r->conn = c;
    r->conn_id = c->id;
    r->listener = c->listener;
    r->frame_bytes = len;
    r->state = REQ_RECV;
    if (len > 0 && hand >= len) {
        /* All here: a complete request, not a partial frame. */
        size_t cap = 0;
        r->frame = loop_mem_get(l, len, false, &cap);
        r->frame_cap = (uint32_t)cap;
        if (r->frame == NULL) {
            conn_memwait(c);
        }
    } else if (len > 0 && frame_grow(c, r, hand)) {
        partial_enter(l, r);
    }
    if (len > 0 && r->frame == NULL) {
        loop_req_put(l, r);
        return RX_BLOCKED;
    }
    l->stats.reqs_live++;
    c->rx_req = r;
    c->req_count++;
    c->rx_held_bytes += len;
    c->hdr_got = 0;
    if (len == 0) {
        conn_rx_complete(c);
    }
    return RX_GO;
}

/* Frames as much of p[0..n) as the bounds allow, calling the handler for each
 * complete one. Returns the bytes consumed (n when the connection stopped
 * reading: the rest is dropped). */
static size_t conn_parse(struct conn *c, const uint8_t *p, size_t n)
{
    size_t used = 0;
    for (;;) {
        if (c->flags & (CONN_RX_STOP | CONN_CLOSING)) {
            return n;
        }
        struct loop_req *r = c->rx_req;
        if (r == NULL) {
            while (c->hdr_got < 4 && used < n) {
                c->hdr[c->hdr_got++] = p[used++];
            }
            if (c->hdr_got < 4) {
                return used;
            }
            int rc = conn_rx_begin(c, n - used);
            if (rc == RX_BLOCKED) {
                return used;
            }
            if (rc == RX_DROP) {
                return n;
            }
            continue;
        }
        if (used == n) {
            return used;
        }
        if (r->frame_got == r->frame_cap && !frame_grow(c, r, n - used)) {
            return used; /* waits for memory; the rest is parked */
        }
        size_t take = min_size(n - used, frame_room(r));
        memcpy(r->frame + r->frame_got, p + used, take);
        r->frame_got += (uint32_t)take;
        used += take;
        if (r->frame_got == r->frame_bytes) {
            conn_rx_complete(c);
        }
    }
}

static void conn_stash_free(struct conn *c)
{
    loop_mem_put(c->loop, c->stash, c->stash_cap);
    c->stash = NULL;
    c->stash_cap = c->stash_off = c->stash_len = 0;
}

/* Parks n received bytes that cannot be framed yet. They come from the
 * receive armed when the connection went over a bound, so they are at most
 * rx_mshot_bytes + rx_buf_bytes; the stash ignores the memory budget, being
 * bounded by that times the connections. Without memory (malloc failed) the
 * bytes cannot be kept and the connection is cut. */
static void conn_stash_add(struct conn *c, const uint8_t *p, size_t n)
{
    struct loop *l = c->loop;
    size_t cap;
    if (c->stash == NULL) {
        size_t want = (size_t)l->cfg.rx_mshot_bytes + l->cfg.rx_buf_bytes;
        c->stash = loop_mem_get(l, n > want ? n : want, true, &cap);
        if (c->stash == NULL) {
            conn_abort(c, -ENOMEM);
            return;
        }
        c->stash_cap = (uint32_t)cap;
    }
    if ((size_t)c->stash_cap - c->stash_off - c->stash_len < n) {
        memmove(c->stash, c->stash + c->stash_off, c->stash_len);
        c->stash_off = 0;
    }
    if ((size_t)c->stash_cap - c->stash_len < n) {
        /* More than the kernel promised; keep it anyway. */
        uint8_t *bigger = loop_mem_get(l, (size_t)c->stash_len + n, true, &cap);
        if (bigger == NULL) {
            conn_abort(c, -ENOMEM);
            return;
        }
        memcpy(bigger, c->stash, c->stash_len);
        loop_mem_put(l, c->stash, c->stash_cap);
        c->stash = bigger;
        c->stash_cap = (uint32_t)cap;
    }
    memcpy(c->stash + c->stash_off + c->stash_len, p, n);
    c->stash_len += (uint32_t)n;
}

void conn_rx_input(struct conn *c, const uint8_t *p, size_t n)
{
    if (c->stash_len > 0) { /* keep byte order: behind what waits */
        conn_stash_add(c, p, n);
        return;
    }
    size_t used = conn_parse(c, p, n);
    if (used < n) {
        conn_stash_add(c, p + used, n - used);
    }
}

/* Drops the partial frame and parked bytes (the connection reads no more). */
static void conn_rx_drop(struct conn *c)
{
    ASSERT((c->flags & CONN_RX_ARMED) == 0); /* a direct receive may target it */
    partial_leave(c);
    struct loop_req *r = c->rx_req;
    if (r != NULL) {
        c->rx_req = NULL;
        c->req_count--;
        req_destroy(c->loop, r);
    }
    conn_stash_free(c);
    c->hdr_got = 0;
}

/* Arms a receive; false when c must wait for memory first (the frame's
 * buffer could not grow). */
static bool conn_rx_arm(struct conn *c)
{
    struct loop *l = c->loop;
    struct loop_req *r = c->rx_req;
    struct io_uring_sqe *sqe;
    c->flags &= (uint16_t) ~(CONN_RX_DIRECT | CONN_RX_MSHOT);
    if (r != NULL && c->tls == NULL && r->frame_bytes - r->frame_got >= l->cfg.rx_buf_bytes) {
        /* A big body goes straight into its request buffer: no copy
         * (never for TLS: what arrives is ciphertext). */
        if (frame_room(r) < l->cfg.rx_buf_bytes && !frame_grow(c, r, 0)) {
            return false;
        }
        sqe = ring_sqe(l->ring, &c->recv_op);
        io_uring_prep_recv(sqe, c->fd, r->frame + r->frame_got, frame_room(r), 0);
        c->flags |= CONN_RX_DIRECT;
    } else if (l->rx_mshot) {
        sqe = ring_sqe_multishot(l->ring, &c->recv_op);
        io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = LOOP_BUF_GROUP;
        /* sqe->optlen (Linux 6.17+) shares this field: the total bytes this
         * arm may deliver before it ends without IORING_CQE_F_MORE. Older
         * kernels refuse it with -EINVAL and we fall back to one-shot. */
        sqe->file_index = l->cfg.rx_mshot_bytes;
        c->flags |= CONN_RX_MSHOT;
    } else {
        sqe = ring_sqe(l->ring, &c->recv_op);
        io_uring_prep_recv(sqe, c->fd, NULL, l->cfg.rx_buf_bytes, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = LOOP_BUF_GROUP;
    }
    c->flags |= CONN_RX_ARMED;
    c->ops++;
    return true;
}

static void conn_rx_pause(struct conn *c)
{
    if ((c->flags & CONN_RX_PAUSED) == 0) {
        c->flags |= CONN_RX_PAUSED;
        c->loop->stats.rx_pauses++;
    }
}

/* Resumes reading if the bounds allow: parked bytes first, then a receive. */
static void conn_rx_pump(struct conn *c)
{
    if (c->flags & CONN_RX_STOP) {
        if ((c->flags & CONN_RX_ARMED) == 0) {
            conn_rx_drop(c);
        }
        return;
    }
    /* Parked bytes go first, even while a multishot receive is still armed:
     * it may not complete again until the client sends more, and the client
     * may be waiting for the answers to what is parked. Anything it delivers
     * meanwhile lands behind the parked bytes (conn_rx_input). A direct
     * receive is only ever armed with nothing parked. */
    if (c->stash_len > 0 || (c->rx_req == NULL && c->hdr_got == 4)) {
        ASSERT((c->flags & CONN_RX_DIRECT) == 0);
        size_t used = conn_parse(c, c->stash ? c->stash + c->stash_off : NULL, c->stash_len);
        if (c->flags & (CONN_RX_STOP | CONN_CLOSING)) {
            return; /* the next kick drops what is left */
        }
        c->stash_off += (uint32_t)used;
        c->stash_len -= (uint32_t)used;
        if (c->stash_len == 0) {
            conn_stash_free(c);
        }
        if (c->stash_len > 0 || (c->rx_req == NULL && c->hdr_got == 4)) {
            conn_rx_pause(c);
            return;
        }
    }
    if (c->tls != NULL) { /* what OpenSSL holds comes next */
        conn_tls_decrypt(c);
        if (c->flags & (CONN_RX_STOP | CONN_CLOSING)) {
            return;
        }
        if (c->stash_len > 0 || (c->rx_req == NULL && c->hdr_got == 4)) {
            conn_rx_pause(c);
            return;
        }
    }
    if (c->flags & CONN_RX_EOF) {
        /* Everything received is framed; a partial frame never completes. */
        if ((c->flags & CONN_RX_ARMED) == 0) {
            conn_rx_stop(c, 0);
        }
        return;
    }
    if (c->flags & CONN_RX_ARMED) {
        return;
    }
    if ((c->rx_req == NULL && conn_rx_blocked(c, 0)) || !conn_rx_arm(c)) {
        conn_rx_pause(c);
        return;
    }
    c->flags &= (uint16_t)~CONN_RX_PAUSED;
}

static void conn_recv_error(struct conn *c, int res, bool was_mshot)
{
    struct loop *l = c->loop;
    switch (res) {
    case -ENOBUFS: /* provided ring ran dry; every buffer is back by the kick */
        l->stats.rx_nobufs++;
        break;
    case -ECANCELED: /* we asked */
    case -EINTR:
    case -EAGAIN:
        break;
    case -EINVAL:
        if (was_mshot && l->rx_mshot) { /* kernel without the per-arm cap */
            l->rx_mshot = false;
            break;
        }
        conn_abort(c, res);
        break;
    default:
        conn_abort(c, res); /* -ECONNRESET, -ETIMEDOUT, ... */
        break;
    }
}

static void conn_recv_done(struct ring_op *op, int res, uint32_t flags)
{
    struct conn *c = container_of(op, struct conn, recv_op);
    struct loop *l = c->loop;
    bool direct = (c->flags & CONN_RX_DIRECT) != 0;
    bool was_mshot = (c->flags & CONN_RX_MSHOT) != 0;
    if ((flags & IORING_CQE_F_MORE) == 0) {
        c->flags &= (uint16_t) ~(CONN_RX_ARMED | CONN_RX_DIRECT | CONN_RX_MSHOT);
        ASSERT(c->ops > 0);
        c->ops--;
    }
    bool live = (c->flags & (CONN_RX_STOP | CONN_CLOSING)) == 0;
    if (res > 0) {
        l->stats.rx_bytes += (uint64_t)res;
    }
    if (flags & IORING_CQE_F_BUFFER) {
        uint16_t bid = (uint16_t)(flags >> IORING_CQE_BUFFER_SHIFT);
        ASSERT(bid < l->cfg.rx_buf_count);
        const uint8_t *p = l->rx_bufs + (size_t)bid * l->cfg.rx_buf_bytes;
        if (res > 0 && live && c->tls != NULL) {
            conn_tls_input(c, p, (size_t)res);
        } else if (res > 0 && live) {
            conn_rx_input(c, p, (size_t)res);
        }
        loop_rxbuf_put(l, bid);
    } else if (res > 0 && direct) {
        struct loop_req *r = c->rx_req;
        ASSERT(r != NULL && (uint32_t)res <= frame_room(r));
        r->frame_got += (uint32_t)res;
        if (live && r->frame_got == r->frame_bytes) {
            conn_rx_complete(c);
        }
    }
    if (res == 0) {
        /* Peer EOF (perhaps only a half-close): requests already received,
         * parked ones included, are still answered; then the connection
         * closes (conn_rx_pump). */
        c->flags |= CONN_RX_EOF;
    } else if (res < 0) {
        conn_recv_error(c, res, was_mshot);
    }
    conn_dirty(c);
}

/* ---- writing ------------------------------------------------------------ */

/* Adds p[0..len) (past any skip); false when the iovec array is full. */
static bool fill_piece(struct iov_fill *f, const void *p, size_t len)
{
    if (f->skip >= len) {
        f->skip -= len;
        return true;
    }
    if (f->n == LOOP_TX_IOV_MAX) {
        return false;
    }
    f->iov[f->n].iov_base = (char *)(uintptr_t)p + f->skip;
    f->iov[f->n].iov_len = len - f->skip;
    f->bytes += len - f->skip;
    f->skip = 0;
    f->n++;
    return true;
}

/* (loop_int.h) The ext parts go in at their offsets. */
int fill_answer(struct iov_fill *f, struct loop_req *r, struct loop_ext **file)
{
    if (!r->framed && !fill_piece(f, r->prefix, sizeof(r->prefix))) {
        return FILL_FULL;
    }
    size_t pos = 0;
    for (struct loop_ext *e = r->ext_head; e != NULL; e = e->next) {
        if (!fill_piece(f, r->resp + pos, e->at - pos)) {
            return FILL_FULL;
        }
        pos = e->at;
        if (!e->file) {
            if (!fill_piece(f, e->ptr, e->len)) {
                return FILL_FULL;
            }
        } else if (f->skip >= e->len) {
            f->skip -= e->len;
        } else {
            *file = e;
            return FILL_FILE;
        }
    }
    return fill_piece(f, r->resp + pos, r->resp_bytes - pos) ? FILL_DONE : FILL_FULL;
}

void conn_pop_finished(struct conn *c)
{
    struct loop_req *r;
    while ((r = c->head) != NULL && r->state == REQ_DONE && r->answer != ANS_RESP) {
        if (r->answer == ANS_CLOSE) {
            /* Every earlier answer is on the wire: now close. */
            conn_abort(c, -NG_EPROTO);
            return;
        }
        req_destroy(c->loop, conn_pop(c));
    }
}

static void conn_pipe_release(struct conn *c)
{
    if (c->pipe != NULL) {
        struct loop_pipe *p = c->pipe;
        c->pipe = NULL;
        loop_pipe_put(c->loop, p);
    }
}

/* Waits for room in the socket: a POLLOUT poll in place of a send. */
static void conn_tx_poll(struct conn *c)
{
    io_uring_prep_poll_add(ring_sqe(c->loop->ring, &c->send_op), c->fd, POLLOUT);
    c->flags |= CONN_TX_ARMED | CONN_TX_POLL;
    c->ops++;
}

/* A pipe for c, or false with c waiting for one (pipe2 failed: out of
 * descriptors; any pipe let go, or a timer, wakes it). */
static bool conn_pipe_get(struct conn *c)
{
    struct loop *l = c->loop;
    int err = 0;
    c->pipe = loop_pipe_get(l, &err);
    if (c->pipe != NULL) {
        return true;
    }
    l->stats.pipe_waits++;
    c->flags |= CONN_PIPEWAIT;
    dl_push(&l->pipewait, &c->pwait);
    if (!loop_timer_armed(&l->pipe_retry)) {
        loop_timer_arm(l, &l->pipe_retry, LOOP_PIPE_RETRY_MS);
    }
    return false;
}

/* Sends bytes of the file part e from its byte skip on: file -> pipe (what
 * the pipe holds already, else up to its capacity read in now), pipe ->
 * socket. Returns the bytes that reached the socket (> 0), 0 when c must
 * wait (a poll is armed, or no pipe can be had), or -errno: the connection
 * must close, the frame's length having been promised (-EIO: the file ends
 * before the part does). */
static int64_t conn_splice(struct conn *c, const struct loop_ext *e, uint64_t skip)
{
    if (c->pipe == NULL && !conn_pipe_get(c)) {
        return 0;
    }
    struct loop_pipe *p = c->pipe;
    ASSERT(skip < e->len && p->bytes <= e->len - skip);
    if (p->bytes == 0) {
        /* The pipe is empty, so this waits for nothing but the file's own
         * pages, like the pread it replaces. */
        uint64_t left = e->len - skip;
        size_t want = left < p->cap ? (size_t)left : p->cap;
        loff_t off = (loff_t)(e->off + skip);
        ssize_t n;
        do {
            n = splice(e->fd, &off, p->wfd, NULL, want, 0);
        } while (n < 0 && errno == EINTR);
        if (n <= 0) {
            return n < 0 ? -errno : -EIO;
        }
        p->bytes = (uint32_t)n;
    }
    /* Corks the segment when more of this queue follows at once. */
    unsigned more = c->tx_queued_bytes > p->bytes ? SPLICE_F_MORE : 0;
    ssize_t n = splice(p->rfd, NULL, c->fd, NULL, p->bytes, SPLICE_F_NONBLOCK | more);
    if (n < 0 && errno == EAGAIN) {
        conn_tx_poll(c);
        return 0;
    }
    if (n < 0 && errno == EINTR) {
        conn_dirty(c);
        return 0;
    }
    if (n <= 0) {
        return n < 0 ? -errno : -EPIPE;
    }
    ASSERT((uint64_t)n <= p->bytes);
    p->bytes -= (uint32_t)n;
    if (p->bytes == 0) {
        conn_pipe_release(c); /* others may need it while c waits */
    }
    return n;
}

/* Sends what is ready at the head: a sendmsg of the memory pieces up to
 * the first file part, or that file part by splice (repeatedly, while the
 * socket takes it, up to LOOP_SPLICE_BYTES_PER_KICK). */
static void conn_tx_pump(struct conn *c)
{
    struct loop *l = c->loop;
    uint64_t spliced = 0;
    if (c->tls != NULL) {
        conn_tls_tx_pump(c);
        return;
    }
    for (;;) {
        if (c->flags & (CONN_TX_ARMED | CONN_PIPEWAIT)) {
            return;
        }
        conn_pop_finished(c);
        if ((c->flags & CONN_CLOSING) || c->head == NULL || c->head->state != REQ_DONE) {
            return;
        }
        struct tx_batch *t = loop_tx_get(l);
        if (t == NULL) {
            conn_abort(c, -ENOMEM);
            return;
        }
        struct iov_fill f = {.iov = t->iov, .skip = c->tx_head_sent};
        struct loop_ext *file = NULL;
        for (struct loop_req *r = c->head; r != NULL && r->state == REQ_DONE; r = r->next) {
            if (r->answer == ANS_CLOSE) {
                break;
            }
            if (r->answer == ANS_RESP && fill_answer(&f, r, &file) != FILL_DONE) {
                break;
            }
        }
        if (f.n > 0) {
            ASSERT(f.bytes > 0);
            t->msg.msg_iov = t->iov;
            t->msg.msg_iovlen = f.n;
            t->bytes = f.bytes;
            c->tx = t;
            /* A file part follows: let TCP hold these bytes for it. */
            int flags = MSG_NOSIGNAL | (file != NULL ? MSG_MORE : 0);
            io_uring_prep_sendmsg(ring_sqe(l->ring, &c->send_op), c->fd, &t->msg, (unsigned)flags);
            c->flags |= CONN_TX_ARMED;
            c->ops++;
            return;
        }
        loop_tx_put(l, t);
        ASSERT(file != NULL); /* else the head would have been retired */
        if (spliced >= LOOP_SPLICE_BYTES_PER_KICK) {
            conn_dirty(c);
            return;
        }
        int64_t n = conn_splice(c, file, f.skip);
        if (n < 0) {
            conn_abort(c, (int)n);
            return;
        }
        if (n == 0) {
            return;
        }
        spliced += (uint64_t)n;
        l->stats.tx_bytes += (uint64_t)n;
        l->stats.tx_spliced_bytes += (uint64_t)n;
        conn_tx_consume(c, (uint64_t)n);
    }
}

void conn_tx_consume(struct conn *c, uint64_t sent)
{
    ASSERT(c->tx_queued_bytes >= sent);
    c->tx_queued_bytes -= sent;
    while (sent > 0) {
        struct loop_req *r = c->head;
        ASSERT(r != NULL && r->state == REQ_DONE && r->answer != ANS_CLOSE);
        if (r->answer == ANS_NONE) {
            req_destroy(c->loop, conn_pop(c));
            continue;
        }
        uint64_t left = req_wire_bytes(r) - c->tx_head_sent;
        if (sent < left) {
            c->tx_head_sent += sent;
            return;
        }
        sent -= left;
        c->tx_head_sent = 0;
        req_destroy(c->loop, conn_pop(c));
        c->loop->stats.resps_out++;
    }
}

static void conn_send_done(struct ring_op *op, int res, uint32_t flags)
{
    (void)flags;
    struct conn *c = container_of(op, struct conn, send_op);
    if (c->flags & CONN_TX_POLL) { /* room in the socket, or it failed */
        ASSERT(c->ops > 0 && c->tx == NULL);
        c->ops--;
        c->flags &= (uint16_t) ~(CONN_TX_ARMED | CONN_TX_POLL);
        if (res < 0 && res != -ECANCELED && res != -EINTR) {
            conn_abort(c, res);
        }
        conn_dirty(c); /* POLLERR, POLLHUP: the next splice says what */
        return;
    }
    if (c->tls != NULL) {
        conn_tls_send_done(c, res);
        return;
    }
    struct tx_batch *t = c->tx;
    ASSERT(c->ops > 0 && t != NULL);
    c->ops--;
    c->flags &= (uint16_t)~CONN_TX_ARMED;
    c->tx = NULL;
    uint64_t batch_bytes = t->bytes;
    loop_tx_put(c->loop, t);
    if (res > 0) {
        ASSERT((uint64_t)res <= batch_bytes);
        c->loop->stats.tx_bytes += (uint64_t)res;
        conn_tx_consume(c, (uint64_t)res);
    } else if (res == 0) {
        conn_abort(c, -EPIPE); /* nothing moved: never retry in a loop */
    } else if (res != -EINTR && res != -EAGAIN && res != -ECANCELED) {
        conn_abort(c, res); /* -EPIPE, -ECONNRESET: peer gone */
    }
    conn_dirty(c);
}

/* ---- closing ------------------------------------------------------------ */

/* Cancels the receive (all=false) or every op on the socket (all=true). One
 * cancel at a time; a second request is remembered and issued after. */
static void conn_cancel(struct conn *c, bool all)
{
    if (c->flags & CONN_CANCEL) {
        c->flags |= CONN_RECANCEL;
        return;
    }
    struct io_uring_sqe *sqe = ring_sqe(c->loop->ring, &c->cancel_op);
    if (all) {
        io_uring_prep_cancel_fd(sqe, c->fd, IORING_ASYNC_CANCEL_ALL);
    } else {
        io_uring_prep_cancel(sqe, &c->recv_op, 0);
    }
    c->flags |= CONN_CANCEL;
    c->ops++;
}

static void conn_cancel_done(struct ring_op *op, int res, uint32_t flags)
{
    (void)res; /* 0, -ENOENT (already done) or -EALREADY: all end the same */
    (void)flags;
    struct conn *c = container_of(op, struct conn, cancel_op);
    ASSERT(c->ops > 0);
    c->ops--;
    c->flags &= (uint16_t)~CONN_CANCEL;
    if (c->flags & CONN_RECANCEL) {
        c->flags &= (uint16_t)~CONN_RECANCEL;
        if ((c->flags & CONN_CLOSING) && (c->flags & (CONN_RX_ARMED | CONN_TX_ARMED))) {
            conn_cancel(c, true);
        } else if (c->flags & CONN_RX_ARMED) {
            conn_cancel(c, false);
        }
    }
    conn_dirty(c);
}

static void conn_memwait_leave(struct conn *c)
{
    if (c->flags & CONN_MEMWAIT) {
        c->flags &= (uint16_t)~CONN_MEMWAIT;
        dl_del(&c->wait);
    }
}

static void conn_pipewait_leave(struct conn *c)
{
    if (c->flags & CONN_PIPEWAIT) {
        c->flags &= (uint16_t)~CONN_PIPEWAIT;
        dl_del(&c->pwait);
    }
}

void conn_rx_stop(struct conn *c, int reason)
{
    if (c->flags & (CONN_RX_STOP | CONN_CLOSING)) {
        return;
    }
    c->flags |= CONN_RX_STOP;
    c->close_reason = reason;
    partial_leave(c); /* it can no longer complete */
    if (c->flags & CONN_RX_ARMED) {
        conn_cancel(c, false);
    }
    conn_memwait_leave(c);
    conn_dirty(c);
}

void conn_abort(struct conn *c, int reason)
{
    if (c->flags & CONN_CLOSING) {
        return;
    }
    if ((c->flags & CONN_RX_STOP) == 0 || c->close_reason == 0) {
        c->close_reason = reason;
    }
    c->flags |= CONN_CLOSING | CONN_RX_STOP;
    partial_leave(c);
    if (c->flags & (CONN_RX_ARMED | CONN_TX_ARMED)) {
        conn_cancel(c, true);
    }
    conn_memwait_leave(c);
    conn_pipewait_leave(c);
    conn_dirty(c);
}

/* Frees c once nothing is in flight. Requests the handler holds are orphaned;
 * their abort callbacks run last, when c is gone, so whatever they call
 * cannot reach it. */
static void conn_free(struct conn *c)
{
    struct loop *l = c->loop;
    if (c->ops > 0) {
        if ((c->flags & (CONN_RX_ARMED | CONN_TX_ARMED)) && !(c->flags & CONN_CANCEL)) {
            conn_cancel(c, true);
        }
        return;
    }
    dl_del(&c->all);
    conn_memwait_leave(c);
    conn_pipewait_leave(c);
    conn_pipe_release(c); /* closed if bytes are left in it */
    if (c->flags & CONN_DIRTY) {
        dl_del(&c->dirty);
    }
    c->flags = CONN_CLOSING;
    conn_rx_drop(c);
    struct loop_dl orphans;
    dl_init(&orphans);
    while (c->head != NULL) {
        struct loop_req *r = conn_pop(c);
        if (r->state != REQ_HANDLER) {
            req_destroy(l, r);
            continue;
        }
        /* The handler still holds r and may still be reading its frame
         * (a write to the log in flight): it stays, without a connection. */
        if (r->frame != NULL) {
            c->rx_held_bytes -= r->frame_bytes;
        }
        r->conn = NULL;
        if (r->on_abort != NULL) {
            dl_push(&orphans, &r->olink);
        }
    }
    ASSERT(c->req_count == 0 && c->rx_held_bytes == 0 && c->tx == NULL);
    uint64_t id = c->id;
    int reason = c->close_reason;
    void *ctx = c->ctx;
    ASSERT(ctx == NULL || l->cfg.on_close != NULL);
    c->ctx = NULL;
    if (c->tls != NULL) {
        conn_tls_free(c);
    }
    close(c->fd);
    c->fd = -1;
    ASSERT(l->stats.conns > 0);
    l->stats.conns--;
    loop_conn_put(l, c);
    while (!dl_empty(&orphans)) {
        struct loop_req *r = container_of(orphans.next, struct loop_req, olink);
        dl_del(&r->olink);
        void (*fn)(struct loop_req *, void *) = r->on_abort;
        r->on_abort = NULL;
        fn(r, r->abort_arg); /* may complete r, or others on this list */
    }
    if (l->cfg.on_close != NULL) {
        l->cfg.on_close(l->cfg.arg, id, ctx, reason);
    }
}

void conn_kick(struct conn *c)
{
    if ((c->flags & CONN_CLOSING) == 0) {
        conn_tx_pump(c);
    }
    if ((c->flags & CONN_CLOSING) == 0) {
        conn_rx_pump(c);
    }
    if ((c->flags & CONN_CLOSING) == 0 && (c->flags & CONN_RX_STOP) &&
        (c->flags & (CONN_RX_ARMED | CONN_TX_ARMED)) == 0 && c->head == NULL && c->rx_req == NULL &&
        (c->tls == NULL || conn_tls_drained(c))) {
        c->flags |= CONN_CLOSING; /* drained: every answer sent */
    }
    if (c->flags & CONN_CLOSING) {
        conn_free(c);
    }
}

/* ---- the request API (net/loop.h) ---------------------------------------- */

static void req_complete(struct loop_req *r, enum req_answer answer)
{
    struct loop *l = r->loop;
    ASSERT(r->state == REQ_HANDLER);
    r->state = REQ_DONE;
    r->answer = (uint8_t)answer;
    if (l->cfg.on_done != NULL) {
        l->cfg.on_done(l->cfg.arg, r->tag, clock_mono_ns() - r->handled_ns, answer == ANS_CLOSE);
    }
    req_free_frame(l, r);
    if (answer != ANS_RESP) {
        req_free_answer(l, r);
    }
    struct conn *c = r->conn;
    if (c == NULL) { /* orphaned: nobody to answer */
        req_destroy(l, r);
        return;
    }
    if (answer == ANS_RESP) {
        c->tx_queued_bytes += req_wire_bytes(r);
    } else if (answer == ANS_CLOSE) {
        conn_rx_stop(c, -NG_EPROTO);
    }
    conn_dirty(c);
}

const uint8_t *loop_req_frame(const struct loop_req *req, size_t *len_out)
{
    static const uint8_t empty[1];
    ASSERT(req->state == REQ_HANDLER);
    *len_out = req->frame_bytes;
    return req->frame != NULL ? req->frame : empty;
}

uint64_t loop_req_conn_id(const struct loop_req *req) { return req->conn_id; }

uint32_t loop_req_listener(const struct loop_req *req) { return req->listener; }

void *loop_req_conn_ctx(const struct loop_req *req)
{
    return req->conn != NULL ? req->conn->ctx : NULL;
}

void loop_req_set_conn_ctx(struct loop_req *req, void *ctx)
{
    ASSERT(req->conn != NULL);
    ASSERT(ctx == NULL || req->conn->loop->cfg.on_close != NULL);
    req->conn->ctx = ctx;
}

bool loop_req_connected(const struct loop_req *req) { return req->conn != NULL; }

void loop_req_set_tag(struct loop_req *req, uint16_t tag)
{
    ASSERT(req->state == REQ_HANDLER);
    req->tag = tag;
}

uint16_t loop_req_tag(const struct loop_req *req) { return req->tag; }

int loop_req_peer(const struct loop_req *req, char *out, size_t cap)
{
    if (req->conn == NULL) {
        return -ENOTCONN;
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getpeername(req->conn->fd, (struct sockaddr *)&ss, &len) != 0) {
        return -errno;
    }
    int rc = getnameinfo((struct sockaddr *)&ss, len, out, (socklen_t)cap, NULL, 0, NI_NUMERICHOST);
    return rc == 0 ? 0 : -EINVAL;
}

void loop_req_on_abort(struct loop_req *req, void (*fn)(struct loop_req *, void *), void *arg)
{
    ASSERT(req->state == REQ_HANDLER);
    req->on_abort = fn;
    req->abort_arg = arg;
}

int loop_resp_buf(struct loop_req *req, size_t cap, uint8_t **out)
{
    ASSERT(req->state == REQ_HANDLER && out != NULL);
    if (cap > LOOP_FRAME_BYTES_CAP) {
        return -NG_ETOOBIG;
    }
    if (req->resp != NULL && cap <= req->resp_cap) {
        *out = req->resp;
        return 0;
    }
    struct loop *l = req->loop;
    size_t real;
    uint8_t *p = loop_mem_get(l, cap, cap <= LOOP_RESP_RESERVE_BYTES, &real);
    if (p == NULL) {
        return -ENOMEM;
    }
    if (req->resp != NULL) {
        memcpy(p, req->resp, req->resp_cap);
        loop_mem_put(l, req->resp, req->resp_cap);
    }
    req->resp = p;
    req->resp_cap = real;
    *out = p;
    return 0;
}

static void resp_part_add(struct loop_req *req, struct loop_ext *ext, size_t at)
{
    ASSERT(req->ext_tail == NULL || req->ext_tail->at <= at);
    ext->at = at;
    ext->next = NULL;
    if (req->ext_tail != NULL) {
        req->ext_tail->next = ext;
    } else {
        req->ext_head = ext;
    }
    req->ext_tail = ext;
    req->ext_bytes += ext->len;
}

void loop_resp_ext(struct loop_req *req, struct loop_ext *ext, size_t at)
{
    ASSERT(req->state == REQ_HANDLER && ext != NULL);
    ASSERT(ext->ptr != NULL || ext->len == 0);
    ext->file = false;
    resp_part_add(req, ext, at);
}

int loop_resp_file(struct loop_req *req, struct loop_ext *ext, size_t at)
{
    ASSERT(req->state == REQ_HANDLER && ext != NULL && ext->fd >= 0);
    struct loop *l = req->loop;
    if (l->stats.file_parts_live >= l->cfg.file_parts_max) {
        return -NG_EBUSY;
    }
    l->stats.file_parts_live++;
    ext->file = true;
    resp_part_add(req, ext, at);
    return 0;
}

uint32_t loop_resp_file_room(const struct loop_req *req)
{
    const struct loop *l = req->loop;
    uint64_t live = l->stats.file_parts_live;
    return live >= l->cfg.file_parts_max ? 0 : (uint32_t)(l->cfg.file_parts_max - live);
}

void loop_req_respond(struct loop_req *req, size_t len)
{
    ASSERT(req->state == REQ_HANDLER);
    ASSERT(len <= req->resp_cap);
    ASSERT(req->ext_tail == NULL || req->ext_tail->at <= len);
    uint64_t payload = len + req->ext_bytes;
    ASSERT(payload <= LOOP_FRAME_BYTES_CAP);
    req->resp_bytes = len;
    put_be32(req->prefix, (uint32_t)payload);
    req_complete(req, ANS_RESP);
}

void loop_req_respond_frame(struct loop_req *req, size_t len)
{
    ASSERT(req->state == REQ_HANDLER);
    ASSERT(len >= 4 && len <= req->resp_cap);
    ASSERT(req->ext_tail == NULL || req->ext_tail->at <= len);
    /* the frame's own length prefix, ext parts included */
    ASSERT(get_be32(req->resp) == len - 4 + req->ext_bytes);
    req->resp_bytes = len;
    req->framed = true;
    req_complete(req, ANS_RESP);
}

void loop_req_noreply(struct loop_req *req) { req_complete(req, ANS_NONE); }

void loop_req_fail(struct loop_req *req) { req_complete(req, ANS_CLOSE); }

void loop_req_close_after(struct loop_req *req, int reason)
{
    ASSERT(req->state == REQ_HANDLER);
    if (req->conn != NULL) {
        conn_rx_stop(req->conn, reason);
    }
}
