/*
 * broker/fetcher.c — a follower's fetchers (broker/fetcher.h): the
 * transport thread of each, and on the loop the rounds of
 * OffsetForLeaderEpoch and ReplicaFetch it carries.
 */
#include "broker/fetcher.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
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

#define FETCHER_CLIENT_ID "nagared-replica"

/* A partition in the round in flight, as it was when the request went. */
struct fetcher_sent {
    struct bpart *bp; /* NULL once detached */
    int32_t epoch;
    int64_t offset; /* ReplicaFetch: its fetch offset */
};

struct fetcher {
    struct server *s;
    struct fetcher *next; /* s->fetchers */
    int32_t leader_id;
    char host[CLUSTER_HOST_BYTES];
    uint16_t port;
    /* the partitions followed here, in attach order */
    struct bpart **parts;
    uint32_t part_count;
    uint32_t part_cap;
    /* the round in flight */
    bool inflight;
    uint16_t api;
    uint32_t corr;
    struct fetcher_sent *sent;
    uint32_t sent_count;
    uint32_t appends_pending; /* of the last answer, not yet complete */
    bool round_failed;        /* back off before the next round */
    int err_logged;           /* the error last logged, so each is logged once */
    struct loop_timer timer;
    bool stopping;
    bool thread_done; /* its exit message ran */
    bool joined;
    /* the transport: the thread and what it shares with the loop */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;       /* under mu */
    int fd;          /* under mu: -1 when not connected */
    SSL_CTX *tls;    /* the server's replica_tls (a reference), or NULL: plaintext */
    SSL *ssl;        /* the thread's: TLS on fd while connected */
    uint8_t *req;    /* under mu: the next request, handed over */
    size_t req_len;  /* under mu */
    uint8_t *resp;   /* the answer's whole frame, prefix included */
    size_t resp_len; /* set by the thread before it posts resp_msg */
    int resp_rc;     /* likewise: 0, or why the connection ended */
    struct loop_msg resp_msg;
    struct loop_msg exit_msg;
};

/* The batches of one answer, kept until their appends complete. */
struct fetcher_append {
    struct part_append a;
    struct fetcher_batches *set;
    struct bpart *bp;
};

struct fetcher_batches {
    struct fetcher *f;
    uint8_t *frame;
    uint32_t refs;  /* appends in flight, + 1 while being placed */
    uint32_t count; /* apps used */
    uint32_t cap;   /* apps[] */
    struct fetcher_append apps[];
};

static void next_round(struct fetcher *f);

/* ---- the transport thread ---- */

static int dial(const struct fetcher *f, int *fd_out)
{
    char port[8];
    snprintf(port, sizeof(port), "%u", f->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    if (getaddrinfo(f->host, port, &hints, &ai) != 0 || ai == NULL) {
        return -NG_ENOTFOUND;
    }
    int rc = -ECONNREFUSED;
    for (struct addrinfo *a = ai; a != NULL; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            rc = -errno;
            continue;
        }
        /* Bounds a connect and every read and write: a leader that stops
         * answering (paused, cut off) is given up and dialled again. */
        uint32_t ms = FETCHER_WAIT_MS + FETCHER_IO_TIMEOUT_MS;
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

/* Makes the TLS session on fd, the leader's name checked against its
 * certificate. */
static int tls_start(struct fetcher *f, int fd)
{
    f->ssl = tls_client_session(f->tls, f->host);
    if (f->ssl == NULL || tls_set_socket(f->ssl, fd) != 0) {
        return -ENOMEM;
    }
    ERR_clear_error();
    errno = 0;
    int n = SSL_connect(f->ssl);
    return n == 1 ? 0 : ssl_fail(f->ssl, n);
}

static void tls_end(struct fetcher *f)
{
    SSL_free(f->ssl);
    f->ssl = NULL;
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

/* ---- logging in to a leader that requires it (inter_broker_user) ---- */

/* The transport's own correlation ids for a login: apart from the loop's
 * requests, which start at 0 and never get near them. */
#define FETCHER_LOGIN_CORR 0x7fff0000u

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
static int login_send(struct fetcher *f, int fd, uint32_t corr, enum scram_mech mech,
                      const char *msg, size_t len, char *in, size_t *in_len)
{
    uint8_t buf[SCRAM_MSG_BYTES_MAX + 128];
    struct wr w = wr_make(buf, sizeof(buf));
    struct proto_str cid = proto_str_make(FETCHER_CLIENT_ID);
    struct proto_sasl_bytes b = {.bytes = (const uint8_t *)msg, .len = (uint32_t)len};
    int rc = msg == NULL ? proto_sasl_handshake_req_encode(&w, 0, corr, cid,
                                                           proto_str_make(scram_mech_name(mech)))
                         : proto_sasl_authenticate_req_encode(&w, 0, corr, cid, &b);
    uint8_t *frame = NULL;
    struct rd body;
    rc = rc == 0 ? login_round(fd, f->ssl, f->s->cfg.frame_bytes_max, &w, corr, &frame, &body) : rc;
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

/* Logs in on a new connection to the leader when this broker has
 * inter-broker credentials: a handshake, then the SCRAM exchange. */
static int login(struct fetcher *f, int fd)
{
    const char *user, *password;
    if (!sasl_serve_inter_broker(f->s, &user, &password)) {
        return 0;
    }
    enum scram_mech mech =
        (f->s->cfg.sasl_mechanisms & (1u << SCRAM_SHA_256)) ? SCRAM_SHA_256 : SCRAM_SHA_512;
    struct scram_client *sc = malloc(sizeof(*sc));
    if (sc == NULL) {
        return -ENOMEM;
    }
    char out[SCRAM_MSG_BYTES_MAX], in[SCRAM_MSG_BYTES_MAX];
    size_t out_len = 0, in_len = 0;
    uint32_t corr = FETCHER_LOGIN_CORR;
    int rc = login_send(f, fd, corr++, mech, NULL, 0, in, &in_len);
    rc = rc == 0 ? scram_client_first(sc, mech, user, password, NULL, out, sizeof(out), &out_len)
                 : rc;
    rc = rc == 0 ? login_send(f, fd, corr++, mech, out, out_len, in, &in_len) : rc;
    rc = rc == 0 ? scram_client_final(sc, (const uint8_t *)in, in_len, out, sizeof(out), &out_len)
                 : rc;
    rc = rc == 0 ? login_send(f, fd, corr++, mech, out, out_len, in, &in_len) : rc;
    rc = rc == 0 ? scram_client_verify(sc, (const uint8_t *)in, in_len) : rc;
    scram_client_wipe(sc);
    free(sc);
    if (rc != 0) {
        log_warn("replication: logging in to broker at %s:%u as %s: %s", f->host, f->port, user,
                 err_str(rc));
    }
    return rc;
}

/* One request out, its answer in; the connection made first when there is
 * none, and closed after any failure. */
static int exchange(struct fetcher *f, uint8_t *req, size_t req_len)
{
    pthread_mutex_lock(&f->mu);
    int fd = f->fd;
    pthread_mutex_unlock(&f->mu);
    int rc = 0;
    if (fd < 0) {
        rc = dial(f, &fd);
        pthread_mutex_lock(&f->mu);
        if (rc == 0 && f->stop) {
            close(fd);
            rc = -NG_ECLOSED;
        } else if (rc == 0) {
            f->fd = fd;
        }
        pthread_mutex_unlock(&f->mu);
        /* TLS first, then the login over it (both bounded by the socket's
         * timeouts; a stop closes f->fd, ending them) */
        rc = rc == 0 && f->tls != NULL ? tls_start(f, fd) : rc;
        rc = rc == 0 ? login(f, fd) : rc;
    }
    rc = rc == 0 ? transfer_all(fd, f->ssl, req, req_len, true) : rc;
    rc = rc == 0 ? read_frame(fd, f->ssl, f->s->cfg.frame_bytes_max, &f->resp, &f->resp_len) : rc;
    if (rc != 0 && fd >= 0) {
        tls_end(f);
        pthread_mutex_lock(&f->mu);
        if (f->fd == fd) {
            close(fd);
            f->fd = -1;
        }
        pthread_mutex_unlock(&f->mu);
    }
    return rc;
}

static void *transport(void *arg)
{
    struct fetcher *f = arg;
    for (;;) {
        pthread_mutex_lock(&f->mu);
        while (!f->stop && f->req == NULL) {
            pthread_cond_wait(&f->cv, &f->mu);
        }
        uint8_t *req = f->req;
        size_t req_len = f->req_len;
        f->req = NULL;
        bool stop = f->stop;
        pthread_mutex_unlock(&f->mu);
        if (stop) {
            free(req);
            break;
        }
        f->resp = NULL;
        f->resp_rc = exchange(f, req, req_len);
        free(req);
        loop_post(&f->s->loop, &f->resp_msg);
    }
    tls_end(f);
    pthread_mutex_lock(&f->mu);
    if (f->fd >= 0) {
        close(f->fd);
        f->fd = -1;
    }
    pthread_mutex_unlock(&f->mu);
    loop_post(&f->s->loop, &f->exit_msg);
    return NULL;
}

/* ---- life ---- */

static void fetcher_free_if_done(struct fetcher *f)
{
    if (!f->stopping || !f->thread_done || f->appends_pending > 0) {
        return;
    }
    if (!f->joined) {
        pthread_join(f->thread, NULL); /* it has posted its last message */
    }
    struct fetcher **link = &f->s->fetchers;
    while (*link != f) {
        link = &(*link)->next;
    }
    *link = f->next;
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    SSL_CTX_free(f->tls);
    free(f->parts);
    free(f->sent);
    free(f);
}

static void on_exit_msg(struct loop_msg *m, void *arg)
{
    (void)m;
    struct fetcher *f = arg;
    f->thread_done = true;
    fetcher_free_if_done(f);
}

/* Tells the thread to end, waking it from its socket. */
static void fetcher_stop(struct fetcher *f)
{
    if (f->stopping) {
        return;
    }
    f->stopping = true;
    (void)loop_timer_cancel(&f->s->loop, &f->timer);
    for (uint32_t i = 0; i < f->part_count; i++) {
        f->parts[i]->rep.fetcher = NULL;
    }
    f->part_count = 0;
    for (uint32_t i = 0; i < f->sent_count; i++) {
        f->sent[i].bp = NULL;
    }
    pthread_mutex_lock(&f->mu);
    f->stop = true;
    if (f->fd >= 0) {
        shutdown(f->fd, SHUT_RDWR);
    }
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static void on_timer(struct loop_timer *t, void *arg)
{
    (void)t;
    next_round(arg);
}

static void on_resp_msg(struct loop_msg *m, void *arg);

static struct fetcher *fetcher_new(struct server *s, const struct cluster_broker *b)
{
    struct fetcher *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        return NULL;
    }
    f->s = s;
    f->leader_id = b->id;
    memcpy(f->host, b->host, sizeof(f->host));
    f->port = b->port;
    f->fd = -1;
    if (s->replica_tls != NULL) {
        SSL_CTX_up_ref(s->replica_tls);
        f->tls = s->replica_tls;
    }
    loop_timer_init(&f->timer, on_timer, f);
    f->resp_msg = (struct loop_msg){.fn = on_resp_msg, .arg = f};
    f->exit_msg = (struct loop_msg){.fn = on_exit_msg, .arg = f};
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    int rc = pthread_create(&f->thread, NULL, transport, f);
    if (rc != 0) {
        pthread_mutex_destroy(&f->mu);
        pthread_cond_destroy(&f->cv);
        SSL_CTX_free(f->tls);
        free(f);
        return NULL;
    }
    f->next = s->fetchers;
    s->fetchers = f;
    log_info("following broker %d at %s:%u%s", b->id, b->host, b->port,
             f->tls != NULL ? " over TLS" : "");
    return f;
}

void fetcher_attach(struct server *s, struct bpart *bp, int32_t leader_id)
{
    ASSERT(bp->rep.fetcher == NULL && s->view != NULL);
    const struct cluster_broker *b = cluster_view_broker(s->view, leader_id);
    if (b == NULL) {
        log_info("topic %s partition %d: leader %d not live yet", bp->topic->name, bp->index,
                 leader_id);
        return;
    }
    struct fetcher *f = s->fetchers;
    while (f != NULL && (f->stopping || f->leader_id != leader_id || f->port != b->port ||
                         strcmp(f->host, b->host) != 0)) {
        f = f->next;
    }
    f = f != NULL ? f : fetcher_new(s, b);
    if (f != NULL && f->part_count == f->part_cap) {
        uint32_t cap = f->part_cap ? f->part_cap * 2 : 16;
        struct bpart **grown = realloc(f->parts, cap * sizeof(*grown));
        if (grown != NULL) {
            f->parts = grown;
            f->part_cap = cap;
        }
    }
    if (f == NULL || f->part_count == f->part_cap) {
        log_error("topic %s partition %d: cannot follow broker %d: %s", bp->topic->name, bp->index,
                  leader_id, err_str(-ENOMEM));
        if (f != NULL && f->part_count == 0) {
            fetcher_stop(f);
        }
        return;
    }
    f->parts[f->part_count++] = bp;
    bp->rep.fetcher = f;
    next_round(f);
}

void fetcher_detach(struct bpart *bp)
{
    struct fetcher *f = bp->rep.fetcher;
    ASSERT(f != NULL);
    bp->rep.fetcher = NULL;
    for (uint32_t i = 0; i < f->part_count; i++) {
        if (f->parts[i] == bp) {
            memmove(f->parts + i, f->parts + i + 1, (f->part_count - i - 1) * sizeof(*f->parts));
            f->part_count--;
            break;
        }
    }
    for (uint32_t i = 0; i < f->sent_count; i++) {
        if (f->sent[i].bp == bp) {
            f->sent[i].bp = NULL;
        }
    }
    if (f->part_count == 0) {
        fetcher_stop(f);
    }
}

void fetchers_stop(struct server *s)
{
    for (struct fetcher *f = s->fetchers; f != NULL; f = f->next) {
        fetcher_stop(f);
        if (!f->joined) {
            pthread_join(f->thread, NULL);
            f->joined = true;
        }
    }
}

/* ---- rounds: the requests ---- */

static bool sent_reserve(struct fetcher *f, uint32_t n)
{
    struct fetcher_sent *grown = realloc(f->sent, (n ? n : 1) * sizeof(*grown));
    if (grown == NULL) {
        return false;
    }
    f->sent = grown;
    return true;
}

/* Whether bp's log holds nothing (so there is nothing to truncate). */
static bool log_empty(const struct bpart *bp)
{
    return part_offset_next(&bp->log) == part_offset_earliest(&bp->log);
}

/* Encodes the round's request into a new buffer: OffsetForLeaderEpoch for
 * the partitions that must truncate first, if any, else ReplicaFetch for
 * all. Returns 0 with *out (NULL when there is nothing to ask), or -errno /
 * the encoder's error. */
static int build_request(struct fetcher *f, uint8_t **out, size_t *len_out)
{
    *out = NULL;
    bool epochs = false;
    size_t need = 64 + sizeof(FETCHER_CLIENT_ID);
    for (uint32_t i = 0; i < f->part_count; i++) {
        struct bpart *bp = f->parts[i];
        if (bp->rep.need_truncate && log_empty(bp)) {
            bp->rep.need_truncate = false; /* nothing it holds can diverge */
        }
        epochs |= bp->rep.need_truncate;
        need += PROTO_TOPIC_BYTES(bp->topic->name_len) + PROTO_REPLICA_FETCH_REQ_PARTITION_BYTES;
    }
    if (f->part_count == 0) {
        return 0;
    }
    uint8_t *buf = malloc(need);
    if (buf == NULL || !sent_reserve(f, f->part_count)) {
        free(buf);
        return -ENOMEM;
    }
    struct wr w = wr_make(buf, need);
    struct proto_enc e;
    f->api = epochs ? PROTO_API_OFFSET_FOR_LEADER_EPOCH : PROTO_API_REPLICA_FETCH;
    f->corr++;
    struct proto_str cid = proto_str_make(FETCHER_CLIENT_ID);
    if (epochs) {
        proto_epoch_req_begin(&e, &w, 0, f->corr, cid);
    } else {
        struct proto_replica_fetch_req q = {.replica_id = f->s->broker_id,
                                            .wait_max_ms = FETCHER_WAIT_MS,
                                            .bytes_min = 1,
                                            .bytes_max = FETCHER_BYTES_MAX};
        proto_replica_fetch_req_begin(&e, &w, 0, f->corr, cid, &q);
    }
    f->sent_count = 0;
    const struct server_topic *topic = NULL;
    for (uint32_t i = 0; i < f->part_count; i++) {
        struct bpart *bp = f->parts[i];
        if (epochs && !bp->rep.need_truncate) {
            continue;
        }
        if (bp->topic != topic) {
            topic = bp->topic;
            proto_enc_topic(
                &e, (struct proto_str){.ptr = topic->name, .len = (int32_t)topic->name_len});
        }
        struct fetcher_sent *sent = &f->sent[f->sent_count++];
        *sent = (struct fetcher_sent){
            .bp = bp, .epoch = bp->rep.leader_epoch, .offset = part_offset_next(&bp->log)};
        if (epochs) {
            int32_t last = 0;
            int64_t end = 0;
            int rc = part_epoch_end_offset(&bp->log, INT32_MAX, &last, &end);
            struct proto_epoch_req_partition p = {.partition = bp->index,
                                                  .current_leader_epoch = bp->rep.leader_epoch,
                                                  .leader_epoch = rc == 0 && last >= 0 ? last : 0};
            proto_epoch_req_partition(&e, &p);
        } else {
            struct proto_replica_fetch_req_partition p = {.partition = bp->index,
                                                          .leader_epoch = bp->rep.leader_epoch,
                                                          .fetch_offset = sent->offset,
                                                          .durable_offset =
                                                              part_offset_durable(&bp->log)};
            proto_replica_fetch_req_partition(&e, &p);
        }
    }
    int rc = proto_enc_end(&e);
    if (rc != 0) {
        free(buf);
        return rc;
    }
    *out = buf;
    *len_out = w.pos;
    return 0;
}

static void backoff(struct fetcher *f)
{
    loop_timer_arm(&f->s->loop, &f->timer, FETCHER_BACKOFF_MS);
}

/* Starts the next round when none is in flight, no append of the last
 * answer is pending and no backoff runs. */
static void next_round(struct fetcher *f)
{
    if (f->stopping || f->inflight || f->appends_pending > 0 || loop_timer_armed(&f->timer)) {
        return;
    }
    if (f->round_failed) {
        f->round_failed = false;
        backoff(f);
        return;
    }
    uint8_t *req;
    size_t len;
    int rc = build_request(f, &req, &len);
    if (rc != 0) {
        log_error("fetcher of broker %d: %s", f->leader_id, err_str(rc));
        backoff(f);
        return;
    }
    if (req == NULL) {
        return; /* nothing followed here: the next attach starts a round */
    }
    f->inflight = true;
    pthread_mutex_lock(&f->mu);
    ASSERT(f->req == NULL);
    f->req = req;
    f->req_len = len;
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

/* Logs an error of the fetcher once, until it changes. */
static void note_error(struct fetcher *f, const char *what, int rc)
{
    if (rc != f->err_logged) {
        log_warn("fetcher of broker %d (%s:%u): %s: %s", f->leader_id, f->host, f->port, what,
                 err_str(rc));
        f->err_logged = rc;
    }
    f->round_failed = true;
}

/* ---- rounds: the answers ---- */

/* bp of a sent entry, when the answer may still be applied to it. */
static struct bpart *sent_part(const struct fetcher *f, const struct fetcher_sent *sent)
{
    struct bpart *bp = sent->bp;
    if (bp == NULL || bp->rep.fetcher != f || bp->rep.leader_epoch != sent->epoch ||
        bp->rep.role != REPLICA_FOLLOWER) {
        return NULL;
    }
    return bp;
}

/* Cuts bp's log back to offset (or starts it afresh at offset when reset);
 * its producer states are rebuilt from what the log keeps (the last
 * sequences before the cut, not merely fewer batches). Needs the log idle. */
static int cut_log(struct bpart *bp, int64_t offset, bool reset)
{
    if (!part_idle(&bp->log)) {
        return -NG_EBUSY; /* appends of its leader days in flight: next round */
    }
    int rc = reset ? part_reset(&bp->log, offset) : part_truncate(&bp->log, offset);
    rc = rc == 0 ? bpart_load_producers(bp) : rc;
    if (rc == 0) {
        bp->rep.hw = part_offset_latest(&bp->log); /* the cap came down with the log */
        log_info("topic %s partition %d: log %s at %" PRId64 " to follow broker %d",
                 bp->topic->name, bp->index, reset ? "started afresh" : "truncated", offset,
                 bp->rep.leader);
    }
    return rc;
}

/* KIP-279: the leader's largest epoch E <= our last ends at leader_end in
 * its log. Ours agrees with it up to the end of our own largest epoch <= E
 * (past that come epochs the leader never had), and never past
 * leader_end: the log is cut at the lower of the two. */
static void apply_epoch(struct fetcher *f, struct bpart *bp,
                        const struct proto_epoch_resp_partition *p)
{
    if (p->err != 0) {
        note_error(f, "OffsetForLeaderEpoch", p->err);
        return;
    }
    int64_t cut = part_offset_earliest(&bp->log); /* the leader has nothing of ours */
    int32_t ours = -1;
    int64_t our_end = 0;
    if (p->leader_epoch >= 0 &&
        part_epoch_end_offset(&bp->log, p->leader_epoch, &ours, &our_end) == 0 && ours >= 0) {
        cut = our_end < p->end_offset ? our_end : p->end_offset;
    }
    int rc = 0;
    if (cut < part_offset_next(&bp->log)) {
        rc =
            cut < part_offset_earliest(&bp->log) ? cut_log(bp, cut, true) : cut_log(bp, cut, false);
    }
    if (rc != 0) {
        note_error(f, "truncate", rc);
        return;
    }
    bp->rep.need_truncate = false;
}

static void apply_epochs(struct fetcher *f, struct rd *body)
{
    struct proto_dec d;
    int rc = proto_epoch_resp_decode(body, 0, &d);
    if (rc != 0) {
        note_error(f, "OffsetForLeaderEpoch answer", rc);
        return;
    }
    struct proto_topic t;
    uint32_t i = 0;
    while (proto_next_topic(&d, &t)) {
        struct proto_epoch_resp_partition p;
        while (proto_epoch_resp_next_partition(&d, &p) && i < f->sent_count) {
            struct bpart *bp = sent_part(f, &f->sent[i++]);
            if (bp != NULL && bp->index == p.partition) {
                apply_epoch(f, bp, &p);
            }
        }
    }
}

static void append_done(struct part_append *a, int rc)
{
    struct fetcher_append *fa = container_of(a, struct fetcher_append, a);
    struct fetcher_batches *set = fa->set;
    struct fetcher *f = set->f;
    if (rc != 0) {
        producers_forget(&fa->bp->producers, &a->hdr);
        note_error(f, "append", rc);
    }
    ASSERT(f->appends_pending > 0 && set->refs > 0);
    f->appends_pending--;
    if (--set->refs == 0) {
        free(set->frame);
        free(set);
    }
    if (f->appends_pending == 0) {
        next_round(f);
        fetcher_free_if_done(f);
    }
}

/* The whole batches at the start of records. */
static uint32_t count_batches(const uint8_t *rec, uint32_t len, uint32_t batch_max)
{
    uint32_t n = 0;
    size_t pos = 0;
    struct batch_header h;
    while (pos < len && batch_header_decode(rec + pos, len - pos, batch_max, &h) == 0 &&
           batch_bytes(&h) <= len - pos) {
        pos += batch_bytes(&h);
        n++;
    }
    return n;
}

/* Appends the leader's batches of one partition, from its log end on. */
static void append_batches(struct fetcher *f, struct fetcher_batches *set, struct bpart *bp,
                           const struct proto_replica_fetch_resp_partition *p)
{
    uint32_t batch_max = (uint32_t)bp->topic->cfg.batch_bytes_max;
    size_t pos = 0;
    while (pos < p->records_bytes && set->count < set->cap) {
        struct batch_header h;
        int rc = batch_header_decode(p->records + pos, p->records_bytes - pos, batch_max, &h);
        if (rc != 0 || batch_bytes(&h) > p->records_bytes - pos) {
            note_error(f, "batch from the leader", rc != 0 ? rc : -NG_ETRUNCATED);
            return;
        }
        uint8_t *batch = (uint8_t *)p->records + pos;
        pos += batch_bytes(&h);
        int64_t next = part_offset_next(&bp->log);
        if (batch_offset_last(&h) < next) {
            continue; /* held already: the answer starts at the batch holding our end */
        }
        struct fetcher_append *fa = &set->apps[set->count];
        *fa = (struct fetcher_append){.set = set, .bp = bp};
        fa->a = (struct part_append){.batch = batch,
                                     .bytes = batch_bytes(&h),
                                     .durable = true,
                                     .replica = true,
                                     .done = append_done};
        rc = part_append(&bp->log, &fa->a);
        if (rc == -NG_EBUSY) {
            return; /* as many appends in flight as the log takes: the rest next round */
        }
        if (rc != 0) {
            if (rc == -NG_EDISCONTINUITY) {
                bp->rep.need_truncate = true; /* our end is not a batch of the leader's */
            }
            note_error(f, "append", rc);
            return;
        }
        set->count++;
        set->refs++;
        f->appends_pending++;
        producers_record(&bp->producers, &fa->a.hdr, true);
    }
}

static void apply_fetch_partition(struct fetcher *f, struct fetcher_batches *set,
                                  const struct fetcher_sent *sent,
                                  const struct proto_replica_fetch_resp_partition *p)
{
    struct bpart *bp = sent_part(f, sent);
    if (bp == NULL || bp->index != p->partition) {
        return;
    }
    if (p->err == -NG_EOFFSET_RANGE && sent->offset < p->log_start) {
        int rc = cut_log(bp, p->log_start, true);
        if (rc != 0) {
            note_error(f, "reset", rc);
        }
        return;
    }
    if (p->err == -NG_EOFFSET_RANGE) {
        bp->rep.need_truncate = true; /* past the leader's end: ask where to cut */
        return;
    }
    if (p->err != 0) {
        note_error(f, "ReplicaFetch", p->err);
        return;
    }
    if (sent->offset == part_offset_next(&bp->log)) {
        append_batches(f, set, bp, p);
    }
    replica_follower_hw(bp, p->high_watermark);
}

static void apply_fetch(struct fetcher *f, uint8_t *frame, struct rd *body)
{
    struct proto_dec d;
    int rc = proto_replica_fetch_resp_decode(body, 0, &d);
    if (rc != 0) {
        note_error(f, "ReplicaFetch answer", rc);
        free(frame);
        return;
    }
    /* Sized by the batches the answer holds, counted first: at most what
     * each partition's log can take in flight (the rest is fetched again). */
    struct proto_dec count_d = d;
    struct proto_topic t;
    uint32_t batches = 0;
    uint32_t i = 0;
    while (proto_next_topic(&count_d, &t)) {
        struct proto_replica_fetch_resp_partition p;
        while (proto_replica_fetch_resp_next_partition(&count_d, &p) && i < f->sent_count) {
            const struct bpart *bp = sent_part(f, &f->sent[i++]);
            uint32_t n =
                bp != NULL ? count_batches(p.records, p.records_bytes, BATCH_BYTES_LIMIT) : 0;
            uint32_t room = bp != NULL ? part_appends_room(&bp->log) : 0;
            batches += n < room ? n : room;
        }
    }
    struct fetcher_batches *set = calloc(1, sizeof(*set) + batches * sizeof(set->apps[0]));
    if (set == NULL) {
        note_error(f, "ReplicaFetch answer", -ENOMEM);
        free(frame);
        return;
    }
    *set = (struct fetcher_batches){.f = f, .frame = frame, .refs = 1, .cap = batches};
    i = 0;
    while (proto_next_topic(&d, &t)) {
        struct proto_replica_fetch_resp_partition p;
        while (proto_replica_fetch_resp_next_partition(&d, &p) && i < f->sent_count) {
            apply_fetch_partition(f, set, &f->sent[i++], &p);
        }
    }
    if (--set->refs == 0) {
        free(set->frame);
        free(set);
    }
}

static void on_resp_msg(struct loop_msg *m, void *arg)
{
    (void)m;
    struct fetcher *f = arg;
    ASSERT(f->inflight);
    f->inflight = false;
    uint8_t *frame = f->resp;
    size_t len = f->resp_len;
    int rc = f->resp_rc;
    f->resp = NULL;
    if (f->stopping) {
        free(frame);
        return;
    }
    struct rd body = rd_make(frame, 0);
    struct proto_resp_header h = {0};
    if (rc == 0) {
        body = rd_make(frame + PROTO_FRAME_PREFIX_BYTES, len - PROTO_FRAME_PREFIX_BYTES);
        rc = proto_resp_header_decode(&body, &h);
        rc = rc == 0 && h.correlation_id != f->corr ? -NG_EPROTO : rc;
        rc = rc == 0 ? h.err : rc;
    }
    if (rc != 0) {
        free(frame);
        note_error(f, proto_api_name(f->api), rc);
    } else if (f->api == PROTO_API_OFFSET_FOR_LEADER_EPOCH) {
        f->err_logged = 0;
        apply_epochs(f, &body);
        free(frame);
    } else {
        f->err_logged = 0;
        apply_fetch(f, frame, &body);
    }
    next_round(f);
}
