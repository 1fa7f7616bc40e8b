/*
 * net/conn_tls.c — TLS on the loop's connections (net/loop.h, "TLS").
 *
 * OpenSSL runs on two memory BIOs per connection, never on the socket, so
 * nothing it does can block the loop thread: the ring's receives write
 * ciphertext into the read BIO, SSL_read turns it into plaintext for the
 * framing of net/conn.c, SSL_write turns answers into ciphertext in the
 * write BIO, which is moved into a send buffer and sent by the ring. The
 * handshake is driven by the same SSL_read calls (server side: accept
 * state), its messages leaving through the same send path.
 *
 * Bounds. Decryption runs only while nothing is parked (conn->stash), so
 * plaintext waits at most one SSL_read's worth in the stash, and
 * ciphertext in the read BIO at most what the receive armed before the
 * connection paused still brought. Answers are encrypted a round at a time
 * (LOOP_TLS_TX_ROUND_BYTES), the next round only once the last one's
 * ciphertext has been sent. The BIOs' bytes count in mem_bytes_live; a BIO
 * left with a large buffer once empty is replaced, and the send buffer is
 * given back whenever nothing waits, so an idle TLS connection holds its
 * SSL object and no data buffers (SSL_MODE_RELEASE_BUFFERS, net/tls.c).
 *
 * Kernel TLS is not used: keys negotiated on memory BIOs cannot be handed
 * to the kernel, so file parts are read (pread) and encrypted here.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "net/loop_int.h"
#include "net/tls.h"

/* An empty BIO whose buffer grew past this is replaced by a new one, so a
 * connection that once moved a large answer does not keep its buffer. */
#define TLS_BIO_KEEP_BYTES (32u << 10)

struct conn_tls {
    SSL *ssl;
    BIO *rbio, *wbio; /* owned by ssl */
    struct conn *conn;
    struct loop_dl hs;    /* on loop->handshakes until the handshake ends */
    uint64_t hs_start_ns; /* when it was accepted */
    uint8_t *out;         /* ciphertext being sent: a pool buffer, or NULL */
    size_t out_cap, out_len, out_sent;
    uint64_t held; /* BIO bytes counted in stats.mem_bytes_live */
    bool established, failed, shut;
};

/* Counts what c's BIOs hold now in the loop's memory, in place of what
 * was counted before. */
static void tls_account(struct conn *c)
{
    struct conn_tls *t = c->tls;
    struct loop_stats *s = &c->loop->stats;
    uint64_t held = (uint64_t)BIO_ctrl_pending(t->rbio) + (uint64_t)BIO_ctrl_pending(t->wbio);
    ASSERT(s->mem_bytes_live >= t->held && s->tls_bytes >= t->held);
    s->mem_bytes_live = s->mem_bytes_live - t->held + held;
    s->tls_bytes = s->tls_bytes - t->held + held;
    if (s->mem_bytes_live > s->mem_bytes_peak) {
        s->mem_bytes_peak = s->mem_bytes_live;
    }
    t->held = held;
}

/* A fresh BIO in place of bio when it is empty and its buffer large.
 * false when memory runs out. */
static bool tls_bio_trim(struct conn_tls *t, bool read_side)
{
    BIO *b = read_side ? t->rbio : t->wbio;
    BUF_MEM *m = NULL;
    if (BIO_ctrl_pending(b) != 0 || BIO_get_mem_ptr(b, &m) != 1 || m == NULL ||
        m->max <= TLS_BIO_KEEP_BYTES) {
        return true;
    }
    BIO *n = BIO_new(BIO_s_mem());
    if (n == NULL) {
        return false;
    }
    BIO_set_mem_eof_return(n, -1); /* empty: "try again", never EOF */
    if (read_side) {
        SSL_set0_rbio(t->ssl, n); /* frees the old one */
        t->rbio = n;
    } else {
        SSL_set0_wbio(t->ssl, n);
        t->wbio = n;
    }
    return true;
}

static void hs_leave(struct conn_tls *t)
{
    if (dl_linked(&t->hs)) {
        dl_del(&t->hs);
    }
}

int conn_tls_open(struct conn *c, SSL_CTX *ctx)
{
    struct loop *l = c->loop;
    struct conn_tls *t = calloc(1, sizeof(*t));
    BIO *r = BIO_new(BIO_s_mem());
    BIO *w = BIO_new(BIO_s_mem());
    SSL *ssl = t != NULL && r != NULL && w != NULL ? SSL_new(ctx) : NULL;
    if (ssl == NULL) {
        BIO_free(r);
        BIO_free(w);
        free(t);
        return -ENOMEM;
    }
    BIO_set_mem_eof_return(r, -1);
    BIO_set_mem_eof_return(w, -1);
    SSL_set_bio(ssl, r, w);
    SSL_set_accept_state(ssl);
    t->ssl = ssl;
    t->rbio = r;
    t->wbio = w;
    t->conn = c;
    t->hs_start_ns = clock_mono_ns();
    dl_push(&l->handshakes, &t->hs);
    if (!loop_timer_armed(&l->handshake_timer)) {
        loop_timer_arm(l, &l->handshake_timer, l->cfg.tls_handshake_timeout_ms);
    }
    c->tls = t;
    l->stats.tls_conns++;
    return 0;
}

static void tls_out_release(struct conn *c)
{
    struct conn_tls *t = c->tls;
    if (t->out != NULL) {
        loop_mem_put(c->loop, t->out, t->out_cap);
        t->out = NULL;
        t->out_cap = t->out_len = t->out_sent = 0;
    }
}

void conn_tls_free(struct conn *c)
{
    struct conn_tls *t = c->tls;
    struct loop *l = c->loop;
    ASSERT(t != NULL && (c->flags & CONN_TX_ARMED) == 0);
    hs_leave(t);
    tls_out_release(c);
    ASSERT(l->stats.mem_bytes_live >= t->held && l->stats.tls_bytes >= t->held);
    l->stats.mem_bytes_live -= t->held;
    l->stats.tls_bytes -= t->held;
    SSL_free(t->ssl); /* and its BIOs */
    free(t);
    c->tls = NULL;
    ASSERT(l->stats.tls_conns > 0);
    l->stats.tls_conns--;
}

/* c broke TLS (a bad handshake, a bad record): it reads no more, sends the
 * alert OpenSSL queued, and closes. */
static void tls_fail(struct conn *c, int ssl_err)
{
    struct conn_tls *t = c->tls;
    struct loop *l = c->loop;
    char why[256];
    if (ssl_err == SSL_ERROR_SSL) {
        tls_err_take(why, sizeof(why));
    } else {
        snprintf(why, sizeof(why), "SSL error %d", ssl_err);
        ERR_clear_error();
    }
    l->stats.tls_failures++;
    char more[64];
    if (loop_close_log_turn(l, more, sizeof(more))) {
        char peer[INET6_ADDRSTRLEN + 16];
        conn_peer_name(c, peer, sizeof(peer));
        log_warn("net: closing TLS connection %llu from %s: %s %s%s", (unsigned long long)c->id,
                 peer, t->established ? "TLS error:" : "handshake failed:", why, more);
    }
    t->failed = true;
    hs_leave(t);
    conn_rx_stop(c, -NG_EPROTO);
}

/* The scratch buffer, or NULL (c aborted) when memory runs out. */
static uint8_t *tls_scratch(struct conn *c)
{
    struct loop *l = c->loop;
    if (l->tls_scratch == NULL) {
        l->tls_scratch = malloc(LOOP_TLS_SCRATCH_BYTES);
        if (l->tls_scratch == NULL) {
            conn_abort(c, -ENOMEM);
        }
    }
    return l->tls_scratch;
}

void conn_tls_decrypt(struct conn *c)
{
    struct conn_tls *t = c->tls;
    uint8_t *buf = tls_scratch(c);
    while (buf != NULL && (c->flags & (CONN_RX_STOP | CONN_CLOSING)) == 0 && c->stash_len == 0 &&
           !(c->rx_req == NULL && c->hdr_got == 4)) {
        ERR_clear_error();
        int n = SSL_read(t->ssl, buf, (int)LOOP_TLS_SCRATCH_BYTES);
        if (n > 0) {
            conn_rx_input(c, buf, (size_t)n);
            continue;
        }
        int e = SSL_get_error(t->ssl, n);
        if (e == SSL_ERROR_ZERO_RETURN) {
            /* close_notify: every request before it is framed (nothing
             * was parked); answer them, then close. */
            conn_rx_stop(c, 0);
        } else if (e != SSL_ERROR_WANT_READ) {
            tls_fail(c, e);
        }
        break;
    }
    if (!t->established && !t->failed && SSL_is_init_finished(t->ssl)) {
        t->established = true;
        hs_leave(t);
        c->loop->stats.tls_handshakes++;
    }
    if (!tls_bio_trim(t, true)) {
        conn_abort(c, -ENOMEM);
    }
    tls_account(c);
    if ((c->flags & CONN_TX_ARMED) == 0 && BIO_ctrl_pending(t->wbio) > 0) {
        conn_dirty(c); /* handshake messages or an alert to send */
    }
}

void conn_tls_input(struct conn *c, const uint8_t *p, size_t n)
{
    struct conn_tls *t = c->tls;
    ASSERT(n <= INT32_MAX);
    if (BIO_write(t->rbio, p, (int)n) != (int)n) {
        conn_abort(c, -ENOMEM);
        return;
    }
    conn_tls_decrypt(c);
}

/* Encrypts len bytes of plaintext into the write BIO (which grows: never
 * a partial write). Returns 0 or -NG_EPROTO. */
static int tls_write(struct conn *c, const void *p, size_t len)
{
    ASSERT(len > 0 && len <= LOOP_TLS_TX_ROUND_BYTES);
    ERR_clear_error();
    int n = SSL_write(c->tls->ssl, p, (int)len);
    if (n != (int)len) {
        char why[256];
        tls_err_take(why, sizeof(why));
        log_warn("net: TLS connection %llu: encrypting an answer failed: %s",
                 (unsigned long long)c->id, why);
        return -NG_EPROTO;
    }
    return 0;
}

/* Reads and encrypts up to budget bytes of the file part e from its byte
 * skip on. Returns the bytes encrypted (> 0) or -errno / -NG_EPROTO; -EIO
 * when the file ends before the part does (the frame's length was
 * promised: the connection must close). */
static int64_t tls_write_file(struct conn *c, const struct loop_ext *e, uint64_t skip,
                              uint64_t budget)
{
    uint8_t *buf = tls_scratch(c);
    if (buf == NULL) {
        return -ENOMEM;
    }
    uint64_t done = 0;
    while (done < budget && skip + done < e->len) {
        uint64_t want = e->len - skip - done;
        want = want < budget - done ? want : budget - done;
        want = want < LOOP_TLS_SCRATCH_BYTES ? want : LOOP_TLS_SCRATCH_BYTES;
        ssize_t n = pread(e->fd, buf, (size_t)want, (off_t)(e->off + skip + done));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return n < 0 ? -errno : -EIO;
        }
        int rc = tls_write(c, buf, (size_t)n);
        if (rc != 0) {
            return rc;
        }
        done += (uint64_t)n;
    }
    return (int64_t)done;
}

/* Encrypts the next round of answers ready at the head. Returns whether
 * anything was encrypted (false: nothing ready, or c aborted). */
static bool tls_encrypt_round(struct conn *c)
{
    struct loop *l = c->loop;
    conn_pop_finished(c);
    if ((c->flags & CONN_CLOSING) || c->head == NULL || c->head->state != REQ_DONE) {
        return false;
    }
    struct tx_batch *tb = loop_tx_get(l);
    if (tb == NULL) {
        conn_abort(c, -ENOMEM);
        return false;
    }
    struct iov_fill f = {.iov = tb->iov, .skip = c->tx_head_sent};
    struct loop_ext *file = NULL;
    for (struct loop_req *r = c->head; r != NULL && r->state == REQ_DONE; r = r->next) {
        if (r->answer == ANS_CLOSE) {
            break;
        }
        if (r->answer == ANS_RESP && fill_answer(&f, r, &file) != FILL_DONE) {
            break;
        }
    }
    uint64_t done = 0;
    int64_t rc = 0;
    for (size_t i = 0; i < f.n && done < LOOP_TLS_TX_ROUND_BYTES && rc == 0; i++) {
        uint64_t len = f.iov[i].iov_len;
        len = len < LOOP_TLS_TX_ROUND_BYTES - done ? len : LOOP_TLS_TX_ROUND_BYTES - done;
        rc = tls_write(c, f.iov[i].iov_base, (size_t)len);
        done += rc == 0 ? len : 0;
    }
    if (f.n == 0 && file != NULL) { /* a file part at the head */
        rc = tls_write_file(c, file, f.skip, LOOP_TLS_TX_ROUND_BYTES);
        done = rc > 0 ? (uint64_t)rc : 0;
    }
    loop_tx_put(l, tb);
    if (rc < 0) {
        conn_abort(c, (int)rc);
        return false;
    }
    ASSERT(done > 0);
    conn_tx_consume(c, done);
    return true;
}

/* Moves the write BIO's ciphertext into the send buffer. false when c
 * was aborted. */
static bool tls_out_fill(struct conn *c)
{
    struct conn_tls *t = c->tls;
    ASSERT(t->out_sent == t->out_len);
    if (t->out == NULL) {
        size_t cap = 0;
        /* One per connection, like the stash: outside the budget. */
        t->out = loop_mem_get(c->loop, LOOP_TLS_TX_ROUND_BYTES, true, &cap);
        if (t->out == NULL) {
            conn_abort(c, -ENOMEM);
            return false;
        }
        t->out_cap = cap;
    }
    int n = BIO_read(t->wbio, t->out, (int)t->out_cap);
    ASSERT(n > 0);
    t->out_len = (size_t)n;
    t->out_sent = 0;
    if (!tls_bio_trim(t, false)) {
        conn_abort(c, -ENOMEM);
        return false;
    }
    tls_account(c);
    return true;
}

void conn_tls_tx_pump(struct conn *c)
{
    struct conn_tls *t = c->tls;
    struct loop *l = c->loop;
    for (;;) {
        if (c->flags & (CONN_TX_ARMED | CONN_CLOSING)) {
            return;
        }
        if (t->out_sent < t->out_len) {
            io_uring_prep_send(ring_sqe(l->ring, &c->send_op), c->fd, t->out + t->out_sent,
                               t->out_len - t->out_sent, MSG_NOSIGNAL);
            c->flags |= CONN_TX_ARMED;
            c->ops++;
            return;
        }
        if (BIO_ctrl_pending(t->wbio) > 0) {
            if (!tls_out_fill(c)) {
                return;
            }
            continue;
        }
        tls_out_release(c); /* nothing waits: an idle connection holds no buffer */
        if (!t->established || t->failed || !tls_encrypt_round(c)) {
            return;
        }
    }
}

void conn_tls_send_done(struct conn *c, int res)
{
    struct conn_tls *t = c->tls;
    ASSERT(c->ops > 0 && (c->flags & CONN_TX_ARMED));
    c->ops--;
    c->flags &= (uint16_t)~CONN_TX_ARMED;
    if (res > 0) {
        ASSERT((size_t)res <= t->out_len - t->out_sent);
        t->out_sent += (size_t)res;
        c->loop->stats.tx_bytes += (uint64_t)res;
    } else if (res == 0) {
        conn_abort(c, -EPIPE); /* nothing moved: never retry in a loop */
    } else if (res != -EINTR && res != -EAGAIN && res != -ECANCELED) {
        conn_abort(c, res); /* -EPIPE, -ECONNRESET: peer gone */
    }
    conn_dirty(c);
}

bool conn_tls_drained(struct conn *c)
{
    struct conn_tls *t = c->tls;
    if (t->established && !t->failed && !t->shut) {
        t->shut = true;
        (void)SSL_shutdown(t->ssl); /* queues close_notify; the peer's is not awaited */
        ERR_clear_error();
        tls_account(c);
        conn_dirty(c);
    }
    return t->out_sent == t->out_len && BIO_ctrl_pending(t->wbio) == 0;
}

void conn_tls_handshake_expire(struct loop_timer *tm, void *arg)
{
    struct loop *l = arg;
    uint64_t limit_ns = (uint64_t)l->cfg.tls_handshake_timeout_ms * 1000000u;
    while (!dl_empty(&l->handshakes)) {
        struct conn_tls *t = container_of(l->handshakes.next, struct conn_tls, hs);
        uint64_t now = clock_mono_ns();
        uint64_t age = now > t->hs_start_ns ? now - t->hs_start_ns : 0;
        if (age < limit_ns) {
            loop_timer_arm(l, tm, (limit_ns - age + 999999u) / 1000000u);
            return;
        }
        hs_leave(t);
        l->stats.tls_handshake_timeouts++;
        char more[64];
        if (loop_close_log_turn(l, more, sizeof(more))) {
            char peer[INET6_ADDRSTRLEN + 16];
            conn_peer_name(t->conn, peer, sizeof(peer));
            log_warn("net: closing TLS connection %llu from %s: handshake not finished in "
                     "tls_handshake_timeout_ms (%u)%s",
                     (unsigned long long)t->conn->id, peer, l->cfg.tls_handshake_timeout_ms, more);
        }
        conn_abort(t->conn, -NG_ETIMEOUT);
    }
}

/* ---- the API (net/loop.h) ------------------------------------------------ */

void loop_listener_tls(struct loop *l, uint32_t listener, SSL_CTX *ctx)
{
    ASSERT(listener < l->listener_count);
    struct loop_listener *li = &l->listeners[listener];
    if (ctx != NULL) {
        SSL_CTX_up_ref(ctx);
    }
    SSL_CTX_free(li->tls); /* connections made with it hold their own references */
    li->tls = ctx;
}

bool loop_req_tls(const struct loop_req *req)
{
    return req->conn != NULL && req->conn->tls != NULL;
}

int loop_req_tls_peer(const struct loop_req *req, char *out, size_t cap)
{
    if (req->conn == NULL) {
        return -ENOTCONN;
    }
    if (req->conn->tls == NULL) {
        return -ENOENT;
    }
    return tls_peer_subject(req->conn->tls->ssl, out, cap);
}
