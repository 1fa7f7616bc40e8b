/*
 * broker/peer.c — a link to a peer broker (broker/peer.h): the transport
 * thread, and on the loop the hand-over of requests and answers.
 */
#include "broker/peer.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "auth/scram.h"
#include "base/log.h"
#include "broker/sasl_serve.h"
#include "broker/server.h"
#include "net/tls.h"

/* The client id of a link's logins (the loop's requests carry their own). */
#define PEER_CLIENT_ID "nagared-peer"

/* ---- the transport thread ---- */

static int dial(const struct peer *p, int *fd_out)
{
    char port[8];
    snprintf(port, sizeof(port), "%u", p->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    if (getaddrinfo(p->host, port, &hints, &ai) != 0 || ai == NULL) {
        return -NG_ENOTFOUND;
    }
    int rc = -ECONNREFUSED;
    for (struct addrinfo *a = ai; a != NULL; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            rc = -errno;
            continue;
        }
        /* Bounds a connect and every read and write: a peer that stops
         * answering (paused, cut off) is given up and dialled again. */
        uint32_t ms = p->io_timeout_ms;
        struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
        int one = 1;
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
            *fd_out = fd;
            freeaddrinfo(ai);
            return 0;
        }
        rc = -errno;
        close(fd);
    }
    freeaddrinfo(ai);
    return rc;
}

/* Why a blocking SSL call returned n <= 0: the socket's -errno (its
 * SO_*TIMEO ran out: -EAGAIN), -NG_EDISCONNECTED, or -NG_ETLS. */
static int ssl_fail(SSL *ssl, int n)
{
    int e = SSL_get_error(ssl, n);
    int err = errno;
    ERR_clear_error();
    switch (e) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return -EAGAIN;
    case SSL_ERROR_SYSCALL:
        return err != 0 ? -err : -NG_EDISCONNECTED;
    case SSL_ERROR_ZERO_RETURN:
        return -NG_EDISCONNECTED;
    default:
        return -NG_ETLS;
    }
}

/* Makes the TLS session on fd, the peer's name checked against its
 * certificate. */
static int tls_start(struct peer *p, int fd)
{
    p->ssl = tls_client_session(p->tls, p->host);
    if (p->ssl == NULL || tls_set_socket(p->ssl, fd) != 0) {
        return -ENOMEM;
    }
    ERR_clear_error();
    errno = 0;
    int n = SSL_connect(p->ssl);
    return n == 1 ? 0 : ssl_fail(p->ssl, n);
}

static void tls_end(struct peer *p)
{
    SSL_free(p->ssl);
    p->ssl = NULL;
}

/* Sends (out) or receives all n bytes at p on a blocking socket (through
 * ssl when not NULL): 0, the socket's -errno (its SO_*TIMEO ran out:
 * -EAGAIN), -NG_EDISCONNECTED, or -NG_ETLS. */
static int transfer_all(int fd, SSL *ssl, uint8_t *p, size_t n, bool out)
{
    while (n > 0) {
        ssize_t k;
        if (ssl != NULL) {
            int want = n < INT32_MAX ? (int)n : INT32_MAX;
            ERR_clear_error();
            errno = 0; /* SSL_ERROR_SYSCALL with errno 0: EOF */
            k = out ? SSL_write(ssl, p, want) : SSL_read(ssl, p, want);
            if (k <= 0) {
                return ssl_fail(ssl, (int)k);
            }
        } else {
            k = out ? send(fd, p, n, MSG_NOSIGNAL) : recv(fd, p, n, 0);
        }
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k <= 0) {
            return k < 0 ? -errno : -NG_EDISCONNECTED;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Reads one answer frame: its length checked against frame_max before
 * anything is allocated for it. */
static int read_frame(int fd, SSL *ssl, uint32_t frame_max, uint8_t **out, size_t *len_out)
{
    uint8_t prefix[PROTO_FRAME_PREFIX_BYTES];
    int rc = transfer_all(fd, ssl, prefix, sizeof(prefix), false);
    uint32_t len = 0;
    rc = rc == 0 ? proto_response_frame_len(prefix, frame_max, &len) : rc;
    if (rc != 0) {
        return rc;
    }
    uint8_t *frame = malloc(PROTO_FRAME_PREFIX_BYTES + (size_t)len);
    if (frame == NULL) {
        return -ENOMEM;
    }
    memcpy(frame, prefix, sizeof(prefix));
    rc = transfer_all(fd, ssl, frame + PROTO_FRAME_PREFIX_BYTES, len, false);
    if (rc != 0) {
        free(frame);
        return rc;
    }
    *out = frame;
    *len_out = PROTO_FRAME_PREFIX_BYTES + (size_t)len;
    return 0;
}

/* ---- logging in to a peer that requires it (inter_broker_user) ---- */

/* The transport's own correlation ids for a login: apart from the loop's
 * requests, which start at 0 and never get near them. */
#define PEER_LOGIN_CORR 0x7fff0000u

/* One login request out and its answer in: 0 with *frame (freed by the
 * caller) and body at the answer's body, or the error (the answer's
 * request-level one too). */
static int login_round(int fd, SSL *ssl, uint32_t frame_max, const struct wr *w, uint32_t corr,
                       uint8_t **frame, struct rd *body)
{
    size_t len = 0;
    int rc = transfer_all(fd, ssl, w->ptr, w->pos, true);
    rc = rc == 0 ? read_frame(fd, ssl, frame_max, frame, &len) : rc;
    if (rc != 0) {
        return rc;
    }
    *body = rd_make(*frame + PROTO_FRAME_PREFIX_BYTES, len - PROTO_FRAME_PREFIX_BYTES);
    struct proto_resp_header h;
    rc = proto_resp_header_decode(body, &h);
    rc = rc == 0 && h.correlation_id != corr ? -NG_EPROTO : rc;
    return rc == 0 ? h.err : rc;
}

/* Sends a SaslHandshake for mech (msg NULL) or a SaslAuthenticate with
 * msg[0..len) and reads the answer: 0 with the server's bytes copied into
 * in[0..*in_len) (none for the handshake), or the error (the answer's
 * too). */
static int login_send(struct peer *p, int fd, uint32_t corr, enum scram_mech mech, const char *msg,
                      size_t len, char *in, size_t *in_len)
{
    uint8_t buf[SCRAM_MSG_BYTES_MAX + 128];
    struct wr w = wr_make(buf, sizeof(buf));
    struct proto_str cid = proto_str_make(PEER_CLIENT_ID);
    struct proto_sasl_bytes b = {.bytes = (const uint8_t *)msg, .len = (uint32_t)len};
    int rc = msg == NULL ? proto_sasl_handshake_req_encode(&w, 0, corr, cid,
                                                           proto_str_make(scram_mech_name(mech)))
                         : proto_sasl_authenticate_req_encode(&w, 0, corr, cid, &b);
    uint8_t *frame = NULL;
    struct rd body;
    rc = rc == 0 ? login_round(fd, p->ssl, p->s->cfg.frame_bytes_max, &w, corr, &frame, &body) : rc;
    *in_len = 0;
    if (rc == 0 && msg == NULL) {
        struct proto_sasl_handshake_resp h;
        rc = proto_sasl_handshake_resp_decode(&body, 0, &h);
        rc = rc == 0 ? h.err : rc;
    } else if (rc == 0) {
        rc = proto_sasl_authenticate_resp_decode(&body, 0, &b);
        rc = rc == 0 ? b.err : rc;
        rc = rc == 0 && b.len > SCRAM_MSG_BYTES_MAX ? -NG_EAUTH : rc;
        if (rc == 0) {
            memcpy(in, b.bytes, b.len);
            *in_len = b.len;
        }
    }
    free(frame);
    return rc;
}

/* Logs in on a new connection to the peer when this broker has
 * inter-broker credentials: a handshake, then the SCRAM exchange. */
static int login(struct peer *p, int fd)
{
    const char *user, *password;
    if (!sasl_serve_inter_broker(p->s, &user, &password)) {
        return 0;
    }
    enum scram_mech mech =
        (p->s->cfg.sasl_mechanisms & (1u << SCRAM_SHA_256)) ? SCRAM_SHA_256 : SCRAM_SHA_512;
    struct scram_client *sc = malloc(sizeof(*sc));
    if (sc == NULL) {
        return -ENOMEM;
    }
    char out[SCRAM_MSG_BYTES_MAX], in[SCRAM_MSG_BYTES_MAX];
    size_t out_len = 0, in_len = 0;
    uint32_t corr = PEER_LOGIN_CORR;
    int rc = login_send(p, fd, corr++, mech, NULL, 0, in, &in_len);
    rc = rc == 0 ? scram_client_first(sc, mech, user, password, NULL, out, sizeof(out), &out_len)
                 : rc;
    rc = rc == 0 ? login_send(p, fd, corr++, mech, out, out_len, in, &in_len) : rc;
    rc = rc == 0 ? scram_client_final(sc, (const uint8_t *)in, in_len, out, sizeof(out), &out_len)
                 : rc;
    rc = rc == 0 ? login_send(p, fd, corr++, mech, out, out_len, in, &in_len) : rc;
    rc = rc == 0 ? scram_client_verify(sc, (const uint8_t *)in, in_len) : rc;
    scram_client_wipe(sc);
    free(sc);
    if (rc != 0) {
        log_warn("%s: logging in to broker at %s:%u as %s: %s", p->what, p->host, p->port, user,
                 err_str(rc));
    }
    return rc;
}

/* One request out, its answer in; the connection made first when there is
 * none, and closed after any failure. */
static int exchange(struct peer *p, uint8_t *req, size_t req_len)
{
    pthread_mutex_lock(&p->mu);
    int fd = p->fd;
    pthread_mutex_unlock(&p->mu);
    int rc = 0;
    if (fd < 0) {
        rc = dial(p, &fd);
        pthread_mutex_lock(&p->mu);
        if (rc == 0 && p->stop) {
            close(fd);
            rc = -NG_ECLOSED;
        } else if (rc == 0) {
            p->fd = fd;
        }
        pthread_mutex_unlock(&p->mu);
        /* TLS first, then the login over it (both bounded by the socket's
         * timeouts; a stop closes p->fd, ending them) */
        rc = rc == 0 && p->tls != NULL ? tls_start(p, fd) : rc;
        rc = rc == 0 ? login(p, fd) : rc;
    }
    rc = rc == 0 ? transfer_all(fd, p->ssl, req, req_len, true) : rc;
    rc = rc == 0 ? read_frame(fd, p->ssl, p->s->cfg.frame_bytes_max, &p->resp, &p->resp_len) : rc;
    if (rc != 0 && fd >= 0) {
        tls_end(p);
        pthread_mutex_lock(&p->mu);
        if (p->fd == fd) {
            close(fd);
            p->fd = -1;
        }
        pthread_mutex_unlock(&p->mu);
    }
    return rc;
}

static void *transport(void *arg)
{
    struct peer *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->stop && p->req == NULL) {
            pthread_cond_wait(&p->cv, &p->mu);
        }
        uint8_t *req = p->req;
        size_t req_len = p->req_len;
        p->req = NULL;
        bool stop = p->stop;
        pthread_mutex_unlock(&p->mu);
        if (stop) {
            free(req);
            break;
        }
        p->resp = NULL;
        p->resp_rc = exchange(p, req, req_len);
        free(req);
        loop_post(&p->s->loop, &p->resp_msg);
    }
    tls_end(p);
    pthread_mutex_lock(&p->mu);
    if (p->fd >= 0) {
        close(p->fd);
        p->fd = -1;
    }
    pthread_mutex_unlock(&p->mu);
    loop_post(&p->s->loop, &p->exit_msg);
    return NULL;
}

/* ---- the loop's side ---- */

static void on_resp_msg(struct loop_msg *m, void *arg)
{
    (void)m;
    struct peer *p = arg;
    ASSERT(p->inflight);
    p->inflight = false;
    uint8_t *frame = p->resp;
    size_t len = p->resp_len;
    int rc = p->resp_rc;
    p->resp = NULL;
    if (p->stopping) {
        free(frame);
        return;
    }
    struct rd body = rd_make(frame, 0);
    if (rc == 0) {
        struct proto_resp_header h;
        body = rd_make(frame + PROTO_FRAME_PREFIX_BYTES, len - PROTO_FRAME_PREFIX_BYTES);
        rc = proto_resp_header_decode(&body, &h);
        rc = rc == 0 && h.correlation_id != p->corr ? -NG_EPROTO : rc;
        rc = rc == 0 ? h.err : rc;
    }
    if (rc != 0) {
        free(frame);
        frame = NULL;
    }
    p->on_answer(p, frame, &body, rc);
}

static void on_exit_msg(struct loop_msg *m, void *arg)
{
    (void)m;
    struct peer *p = arg;
    p->thread_done = true;
    p->on_exit(p);
}

int peer_start(struct peer *p, struct server *s, const struct cluster_broker *b, const char *what,
               uint32_t io_timeout_ms, peer_answer_fn *on_answer, peer_exit_fn *on_exit)
{
    *p = (struct peer){.s = s,
                       .broker_id = b->id,
                       .port = b->port,
                       .what = what,
                       .io_timeout_ms = io_timeout_ms,
                       .on_answer = on_answer,
                       .on_exit = on_exit,
                       .fd = -1};
    memcpy(p->host, b->host, sizeof(p->host));
    if (s->replica_tls != NULL) {
        SSL_CTX_up_ref(s->replica_tls);
        p->tls = s->replica_tls;
    }
    p->resp_msg = (struct loop_msg){.fn = on_resp_msg, .arg = p};
    p->exit_msg = (struct loop_msg){.fn = on_exit_msg, .arg = p};
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    int rc = pthread_create(&p->thread, NULL, transport, p);
    if (rc != 0) {
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->cv);
        SSL_CTX_free(p->tls);
        return -rc;
    }
    return 0;
}

bool peer_is(const struct peer *p, const struct cluster_broker *b)
{
    return p->broker_id == b->id && p->port == b->port && strcmp(p->host, b->host) == 0;
}

void peer_send(struct peer *p, uint8_t *req, size_t len, uint32_t corr)
{
    ASSERT(!p->inflight && !p->stopping && req != NULL);
    p->inflight = true;
    p->corr = corr;
    pthread_mutex_lock(&p->mu);
    ASSERT(p->req == NULL);
    p->req = req;
    p->req_len = len;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void peer_stop(struct peer *p)
{
    if (p->stopping) {
        return;
    }
    p->stopping = true;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    if (p->fd >= 0) {
        shutdown(p->fd, SHUT_RDWR);
    }
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void peer_join(struct peer *p)
{
    ASSERT(p->stopping);
    if (!p->joined) {
        pthread_join(p->thread, NULL);
        p->joined = true;
    }
}

void peer_fini(struct peer *p)
{
    ASSERT(p->stopping);
    peer_join(p); /* it has posted its last message, or the loop is stopping */
    free(p->req);
    p->req = NULL;
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    SSL_CTX_free(p->tls);
    p->tls = NULL;
}
