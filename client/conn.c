/*
 * client/conn.c — the client's connection: non-blocking connect with a
 * deadline, an ApiVersions handshake, a send queue, pipelined requests
 * matched to answers in order. See conn.h for the invariants.
 */
#include "client/conn.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "net/tls.h"

/* Answer bytes read per conn_poll() before yielding to the caller. */
#define RX_READS_PER_POLL 64
/* The ApiVersions answer is small: 4 + 4 + 32 * 6 bytes and a header. */
#define HANDSHAKE_FRAME_BYTES 64
/* Pieces per gather write: a request of 64 batches by reference with the
 * bytes between them; a longer queue takes a few calls. */
#define TX_IOV_MAX 128
/* First room for references; grows to what the frames queued need. */
#define TXREFS_INITIAL 64

/* ---- address ---- */

static int copy_part(const char *from, size_t n, char *to, size_t cap)
{
    if (n == 0 || n >= cap) {
        return -NG_EBADARG;
    }
    memcpy(to, from, n);
    to[n] = '\0';
    return 0;
}

int conn_parse_address(const char *address, char *host, size_t host_cap, char *port,
                       size_t port_cap)
{
    if (address == NULL) {
        return -NG_EBADARG;
    }
    const char *colon = strrchr(address, ':');
    if (colon == NULL) {
        return -NG_EBADARG;
    }
    const char *h = address;
    size_t hn = (size_t)(colon - address);
    if (hn >= 2 && h[0] == '[' && h[hn - 1] == ']') {
        h++;
        hn -= 2;
    } else if (memchr(h, ':', hn) != NULL) {
        return -NG_EBADARG; /* an IPv6 address needs brackets */
    }
    const char *p = colon + 1;
    size_t pn = strlen(p);
    if (pn == 0 || pn > 5 || strspn(p, "0123456789") != pn || atoi(p) > 65535 || atoi(p) == 0) {
        return -NG_EBADARG;
    }
    int rc = copy_part(h, hn, host, host_cap);
    return rc != 0 ? rc : copy_part(p, pn, port, port_cap);
}

/* The entry i of a comma list: *at and *n. False past the last. */
static bool list_entry(const char *list, int i, const char **at, size_t *n)
{
    const char *p = list;
    for (; i > 0; i--) {
        p = strchr(p, ',');
        if (p == NULL) {
            return false;
        }
        p++;
    }
    const char *end = strchr(p, ',');
    *at = p;
    *n = end != NULL ? (size_t)(end - p) : strlen(p);
    return true;
}

int conn_bootstrap_at(const char *list, int i, char *host, size_t host_cap, char *port,
                      size_t port_cap)
{
    const char *at;
    size_t n;
    char one[CONN_BOOTSTRAP_BYTES_MAX];
    if (list == NULL || !list_entry(list, i, &at, &n) || n >= sizeof(one)) {
        return -NG_EBADARG;
    }
    memcpy(one, at, n);
    one[n] = '\0';
    return conn_parse_address(one, host, host_cap, port, port_cap);
}

int conn_bootstrap_check(const char *list)
{
    if (list == NULL || strlen(list) >= CONN_BOOTSTRAP_BYTES_MAX) {
        return -NG_EBADARG;
    }
    char host[CONN_HOST_BYTES_MAX];
    char port[8];
    int count = 0;
    const char *at;
    size_t n;
    for (; list_entry(list, count, &at, &n); count++) {
        if (conn_bootstrap_at(list, count, host, sizeof(host), port, sizeof(port)) != 0) {
            return -NG_EBADARG;
        }
    }
    return count;
}

/* ---- life cycle ---- */

int conn_init(struct client_conn *c, const struct conn_config *cfg)
{
    ASSERT(c != NULL && cfg != NULL);
    *c = (struct client_conn){.fd = -1, .corr_next = 1, .silent_since_ms = INT64_MAX};
    if (conn_bootstrap_check(cfg->bootstrap) < 1) {
        return -NG_EBADARG;
    }
    strcpy(c->bootstrap, cfg->bootstrap); /* shorter than the buffer: checked */
    if (cfg->pending_max == 0 || cfg->pending_max > CONN_PENDING_LIMIT ||
        cfg->resp_bytes_max < PROTO_FRAME_BYTES_MIN ||
        cfg->resp_bytes_max > PROTO_FRAME_BYTES_LIMIT || cfg->request_timeout_ms == 0) {
        return -NG_EBADARG;
    }
    c->cfg = *cfg;
    c->cfg.bootstrap = NULL;
    c->cfg.tls = NULL;
    c->cfg.tls_server_name = c->tls_server_name; /* copies of c->cfg name it */
    if (cfg->tls != NULL) {
        const char *name = cfg->tls_server_name != NULL ? cfg->tls_server_name : "";
        if (strlen(name) >= sizeof(c->tls_server_name)) {
            return -NG_EBADARG;
        }
        strcpy(c->tls_server_name, name);
        SSL_CTX_up_ref(cfg->tls);
        c->cfg.tls = cfg->tls; /* conn_fini() drops it */
        c->tls_wbuf = malloc(CONN_TLS_WBUF_BYTES);
        if (c->tls_wbuf == NULL) {
            return -ENOMEM;
        }
    }
    c->rx_cap = CONN_RX_BYTES_INITIAL;
    c->rx = malloc(c->rx_cap);
    c->tx_cap = HANDSHAKE_FRAME_BYTES * 4;
    c->tx = malloc(c->tx_cap);
    c->pend = calloc(cfg->pending_max, sizeof(*c->pend));
    if (c->rx == NULL || c->tx == NULL || c->pend == NULL) {
        conn_fini(c);
        return -ENOMEM;
    }
    for (size_t k = 0; k < PROTO_API_COUNT; k++) {
        c->api_version[k] = UINT16_MAX;
    }
    return 0;
}

void conn_fini(struct client_conn *c)
{
    if (c == NULL) {
        return;
    }
    conn_close(c, -NG_ECLOSED);
    explicit_bzero(c->cfg.login.password, sizeof(c->cfg.login.password));
    free(c->rx);
    free(c->tx);
    free(c->pend);
    free(c->txrefs);
    free(c->tls_wbuf);
    SSL_CTX_free(c->cfg.tls);
    c->cfg.tls = NULL;
    c->tls_wbuf = NULL;
    c->rx = NULL;
    c->tx = NULL;
    c->pend = NULL;
    c->txrefs = NULL;
    c->txref_cap = 0;
}

/* Forgets every byte queued and not written (the connection is gone):
 * the stream counts meet again, so requests queued later complete when
 * their own bytes are written. */
static void tx_drop(struct client_conn *c)
{
    c->tx_head = 0;
    c->tx_len = 0;
    c->txref_head = 0;
    c->txref_len = 0;
    c->tx_sent_total = c->tx_queued_total;
}

/* ---- pending FIFO ---- */

static struct conn_pending *pend_at(struct client_conn *c, uint32_t i)
{
    ASSERT(i < c->pend_count);
    return &c->pend[(c->pend_head + i) % c->cfg.pending_max];
}

static void pend_pop_done(struct client_conn *c)
{
    while (c->pend_count > 0 && pend_at(c, 0)->done) {
        c->pend_head = (c->pend_head + 1) % c->cfg.pending_max;
        c->pend_count--;
    }
}

/* Completes entry i (not done yet) and runs its callback. */
static void pend_complete(struct client_conn *c, uint32_t i, int err, struct rd *body)
{
    struct conn_pending *p = pend_at(c, i);
    ASSERT(!p->done);
    p->done = true;
    conn_done_fn fn = p->fn;
    void *arg = p->arg;
    uint16_t version = p->version;
    fn(arg, err, body, version);
}

static void login_end(struct client_conn *c);

void conn_close(struct client_conn *c, int err)
{
    ASSERT(err < 0);
    if (c->fd < 0) {
        return;
    }
    if (err == -NG_ETIMEOUT) { /* the broker went quiet: since its oldest request unanswered */
        int64_t oldest = conn_oldest_pending_ms(c);
        c->silent_since_ms = oldest < c->silent_since_ms ? oldest : c->silent_since_ms;
    }
    if (c->ssl != NULL) {
        if (c->state >= CONN_HANDSHAKE) {
            (void)SSL_shutdown(c->ssl); /* close_notify, if the socket takes it now */
        }
        SSL_free(c->ssl);
        c->ssl = NULL;
        c->tls_wpend = 0;
        c->tls_want_write = false;
        ERR_clear_error();
    }
    (void)close(c->fd);
    c->fd = -1;
    c->state = CONN_DOWN;
    c->err_last = err;
    c->generation++;
    c->rx_len = 0;
    login_end(c);
    c->sink = NULL; /* its owner learns from the request's failure below */
    c->sink_len = 0;
    c->sink_got = 0;
    tx_drop(c);
    /* Later callbacks see the connection down and submit nothing here. */
    while (c->pend_count > 0) {
        if (!pend_at(c, 0)->done) {
            pend_complete(c, 0, err, NULL);
        }
        pend_pop_done(c);
    }
}

/* ---- connecting ---- */

static int socket_open(int family)
{
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -errno;
    }
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) {
        int rc = -errno;
        (void)close(fd);
        return rc;
    }
    return fd;
}

/* Starts a non-blocking connect to the next address that does not refuse
 * at once. Returns the socket or -errno (every address refused). */
static int connect_next(struct client_conn *c)
{
    int rc = -ECONNREFUSED;
    while (c->addr_next < c->addr_count) {
        uint32_t i = c->addr_next++;
        int fd = socket_open(c->addr_families[i]);
        if (fd < 0) {
            rc = fd;
            continue;
        }
        if (connect(fd, (const struct sockaddr *)&c->addrs[i], c->addr_lens[i]) == 0 ||
            errno == EINPROGRESS) {
            return fd;
        }
        rc = -errno;
        (void)close(fd);
    }
    return rc;
}

/* Resolves one address of the list, appending to c->addrs. */
static int resolve_one(struct client_conn *c, const char *host, const char *port)
{
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    struct addrinfo *res = NULL;
    int g = getaddrinfo(host, port, &hints, &res);
    if (g != 0) {
        return g == EAI_SYSTEM ? -errno : -NG_ENOTFOUND;
    }
    for (const struct addrinfo *ai = res; ai != NULL && c->addr_count < CONN_ADDRS_MAX;
         ai = ai->ai_next) {
        if (ai->ai_addrlen <= sizeof(c->addrs[0])) {
            memcpy(&c->addrs[c->addr_count], ai->ai_addr, ai->ai_addrlen);
            c->addr_lens[c->addr_count] = (uint32_t)ai->ai_addrlen;
            c->addr_families[c->addr_count] = ai->ai_family;
            c->addr_count++;
        }
    }
    freeaddrinfo(res);
    return 0;
}

/* Resolves every address of the list into c->addrs, in list order. A name
 * that does not resolve is skipped; returns its error only when none did. */
static int resolve(struct client_conn *c)
{
    c->addr_count = 0;
    c->addr_next = 0;
    int rc = -NG_ENOTFOUND;
    char host[CONN_HOST_BYTES_MAX];
    char port[8];
    for (int i = 0; c->addr_count < CONN_ADDRS_MAX &&
                    conn_bootstrap_at(c->bootstrap, i, host, sizeof(host), port, sizeof(port)) == 0;
         i++) {
        uint32_t from = c->addr_count;
        int one = resolve_one(c, host, port);
        rc = one != 0 ? one : rc;
        for (uint32_t k = from; k < c->addr_count; k++) {
            c->addr_entry[k] = (uint8_t)(i < UINT8_MAX ? i : UINT8_MAX);
        }
    }
    return c->addr_count > 0 ? 0 : rc;
}

/* Connects to the next address; the socket becomes c's. */
static int connect_start_next(struct client_conn *c)
{
    int fd = connect_next(c);
    if (fd < 0) {
        c->err_last = fd;
        return fd;
    }
    c->fd = fd;
    c->state = CONN_CONNECTING;
    c->rx_len = 0;
    tx_drop(c);
    return 0;
}

int conn_connect_start(struct client_conn *c)
{
    if (c->fd >= 0) {
        return 0;
    }
    int rc = resolve(c);
    if (rc != 0) {
        c->err_last = rc;
        return rc;
    }
    c->connect_deadline_ms = clock_mono_ms() + c->cfg.request_timeout_ms;
    return connect_start_next(c);
}

uint32_t conn_backoff_next(uint32_t *b)
{
    *b = *b == 0 ? CONN_BACKOFF_MS_FIRST
                 : (*b < CONN_BACKOFF_MS_MAX / 2 ? *b * 2 : CONN_BACKOFF_MS_MAX);
    return *b;
}

int conn_redial(struct client_conn *c, struct conn_redial *r, int64_t now_ms, uint32_t timeout_ms)
{
    if (c->state == CONN_UP) {
        *r = (struct conn_redial){0};
        return 0;
    }
    if (c->state != CONN_DOWN) {
        return 0;
    }
    if (r->down_since_ms == 0) {
        r->down_since_ms = now_ms;
    }
    if (now_ms - r->down_since_ms >= (int64_t)timeout_ms) {
        r->down_since_ms = now_ms;
        return -NG_EDISCONNECTED;
    }
    if (now_ms >= r->at_ms) {
        r->at_ms = now_ms + conn_backoff_next(&r->backoff_ms);
        int rc = conn_connect_start(c);
        (void)rc; /* refused at once: tried again after the backoff */
    }
    return 0;
}

/* ---- logging in (SASL SCRAM, after ApiVersions) ---- */

int conn_login_make(struct conn_login *out, const char *user, const char *password,
                    const char *mechanism)
{
    memset(out, 0, sizeof(*out));
    if (user == NULL) {
        return 0;
    }
    enum scram_mech m = SCRAM_SHA_256;
    if (!scram_user_valid(user, strlen(user)) || password == NULL || password[0] == '\0' ||
        strlen(password) > SCRAM_PASSWORD_BYTES_MAX ||
        (mechanism != NULL && scram_mech_parse(mechanism, strlen(mechanism), &m) != 0)) {
        return -NG_EBADARG;
    }
    memcpy(out->user, user, strlen(user) + 1);
    memcpy(out->password, password, strlen(password) + 1);
    out->mech = (uint8_t)m;
    return 0;
}

static void login_end(struct client_conn *c)
{
    if (c->scram != NULL) {
        scram_client_wipe(c->scram);
        free(c->scram);
        c->scram = NULL;
    }
}

static void login_step_done(void *arg, int err, struct rd *body, uint16_t version);
static int tx_room(struct client_conn *c, size_t need);

/* Sends SaslHandshake (bytes NULL) or SaslAuthenticate with bytes. */
static void login_send(struct client_conn *c, const char *bytes, size_t len)
{
    int rc = tx_room(c, HANDSHAKE_FRAME_BYTES + PROTO_STR_BYTES(sizeof(CONN_CLIENT_ID)) + len);
    if (rc != 0) {
        conn_close(c, rc);
        return;
    }
    struct wr w = wr_make(c->tx + c->tx_len, c->tx_cap - c->tx_len);
    uint32_t corr = c->corr_next++;
    struct proto_str id = proto_str_make(CONN_CLIENT_ID);
    uint16_t key = bytes == NULL ? PROTO_API_SASL_HANDSHAKE : PROTO_API_SASL_AUTHENTICATE;
    if (bytes == NULL) {
        const char *mech = scram_mech_name((enum scram_mech)c->cfg.login.mech);
        rc = proto_sasl_handshake_req_encode(&w, 0, corr, id, proto_str_make(mech));
    } else {
        struct proto_sasl_bytes b = {.bytes = (const uint8_t *)bytes, .len = (uint32_t)len};
        rc = proto_sasl_authenticate_req_encode(&w, 0, corr, id, &b);
    }
    ASSERT(rc == 0);
    int64_t left = c->connect_deadline_ms - clock_mono_ms();
    conn_frame_commit(c, &w, corr, key, 0, false, left > 0 ? (uint32_t)left : 1, login_step_done,
                      c);
}

/* The next message of the exchange for what the broker answered in[0..len)
 * (nothing after the handshake); CONN_UP after the last. */
static int login_next(struct client_conn *c, const uint8_t *in, size_t len)
{
    char out[SCRAM_MSG_BYTES_MAX];
    size_t out_len = 0;
    int rc = 0;
    if (c->scram == NULL) {
        c->scram = malloc(sizeof(*c->scram));
        if (c->scram == NULL) {
            return -ENOMEM;
        }
        rc = scram_client_first(c->scram, (enum scram_mech)c->cfg.login.mech, c->cfg.login.user,
                                c->cfg.login.password, NULL, out, sizeof(out), &out_len);
    } else if (!scram_client_challenged(c->scram)) {
        rc = scram_client_final(c->scram, in, len, out, sizeof(out), &out_len);
    } else {
        rc = scram_client_verify(c->scram, in, len);
        if (rc == 0) {
            login_end(c);
            c->state = CONN_UP;
            return 0;
        }
    }
    if (rc == 0) {
        login_send(c, out, out_len);
    }
    return rc;
}

static void login_step_done(void *arg, int err, struct rd *body, uint16_t version)
{
    struct client_conn *c = arg;
    if (c->state != CONN_LOGIN) {
        return; /* closed meanwhile: conn_close() said why */
    }
    struct proto_sasl_bytes in = {0};
    if (err == 0 && c->scram == NULL) {
        struct proto_sasl_handshake_resp h;
        err = proto_sasl_handshake_resp_decode(body, version, &h);
        err = err == 0 ? h.err : err;
    } else if (err == 0) {
        err = proto_sasl_authenticate_resp_decode(body, version, &in);
        err = err == 0 ? in.err : err;
    }
    err = err == 0 ? login_next(c, in.bytes, in.len) : err;
    if (err != 0) {
        conn_close(c, err == -NG_EBADVERSION || err == -NG_ETRUNCATED || err == -NG_EBADLEN
                          ? -NG_EPROTO
                          : err);
    }
}

/* After ApiVersions: logs in when the config says so, else the connection
 * is up. */
static void login_start(struct client_conn *c)
{
    if (c->cfg.login.user[0] == '\0') {
        c->state = CONN_UP;
        return;
    }
    if (c->api_version[PROTO_API_SASL_HANDSHAKE] == UINT16_MAX ||
        c->api_version[PROTO_API_SASL_AUTHENTICATE] == UINT16_MAX) {
        conn_close(c, -NG_EUNKNOWN_API); /* a broker without logins */
        return;
    }
    c->state = CONN_LOGIN;
    login_send(c, NULL, 0);
}

static void handshake_done(void *arg, int err, struct rd *body, uint16_t version)
{
    struct client_conn *c = arg;
    struct proto_api_versions_resp v;
    if (err == 0) {
        err = proto_api_versions_resp_decode(body, version, &v);
    }
    if (err == 0 && (v.frame_bytes_max < PROTO_FRAME_BYTES_MIN ||
                     v.frame_bytes_max > PROTO_FRAME_BYTES_LIMIT)) {
        err = -NG_EPROTO;
    }
    if (err != 0) {
        conn_close(c, err == -NG_EDISCONNECTED || err == -NG_ETIMEOUT || err == -NG_ETLS
                          ? err
                          : -NG_EPROTO);
        return;
    }
    for (uint16_t k = 0; k < PROTO_API_COUNT; k++) {
        c->api_version[k] = UINT16_MAX;
        if (proto_api_check(k, 0) != 0) {
            continue; /* a key this codec does not serve (unassigned) */
        }
        for (uint32_t i = 0; i < v.api_count; i++) {
            uint16_t ours = proto_api_version_max(k);
            const struct proto_api_range *r = &v.apis[i];
            uint16_t use = r->version_max < ours ? r->version_max : ours;
            if (r->api_key == k && use >= r->version_min) {
                c->api_version[k] = use;
            }
        }
    }
    c->peer_frame_bytes_max = v.frame_bytes_max;
    login_start(c);
}

static void tx_write(struct client_conn *c);

/* Connected (and TLS done, if any): ask the broker what it speaks. */
static void handshake_start(struct client_conn *c)
{
    c->state = CONN_HANDSHAKE;
    struct wr w = wr_make(c->tx, c->tx_cap);
    uint32_t corr = c->corr_next++;
    int rc = proto_api_versions_req_encode(&w, 0, corr, proto_str_make(CONN_CLIENT_ID));
    ASSERT(rc == 0);
    int64_t left = c->connect_deadline_ms - clock_mono_ms();
    conn_frame_commit(c, &w, corr, PROTO_API_API_VERSIONS, 0, false, left > 0 ? (uint32_t)left : 1,
                      handshake_done, c);
}

/* Moves the TLS handshake on; once done, the ApiVersions one starts. A
 * failure closes c with -NG_ETLS (the broker's certificate, or TLS
 * refused) or -NG_EDISCONNECTED (the broker hung up). */
static void tls_step(struct client_conn *c)
{
    ERR_clear_error();
    int n = SSL_do_handshake(c->ssl);
    if (n == 1) {
        c->tls_want_write = false;
        handshake_start(c);
        return;
    }
    int e = SSL_get_error(c->ssl, n);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        c->tls_want_write = e == SSL_ERROR_WANT_WRITE;
        return;
    }
    conn_close(c, e == SSL_ERROR_SSL ? -NG_ETLS : -NG_EDISCONNECTED);
}

/* The host the broker's certificate must name: server_name, else the host
 * of the address c dialled. */
static void tls_host(const struct client_conn *c, char *host, size_t cap)
{
    char port[8];
    if (c->tls_server_name[0] != '\0') {
        snprintf(host, cap, "%s", c->tls_server_name);
    } else if (conn_bootstrap_at(c->bootstrap, c->addr_entry[c->addr_next - 1], host, cap, port,
                                 sizeof(port)) != 0) {
        host[0] = '\0';
    }
}

/* The socket connected: TLS first when configured, then ApiVersions. */
static void connected(struct client_conn *c)
{
    if (c->cfg.tls == NULL) {
        handshake_start(c);
        return;
    }
    char host[CONN_HOST_BYTES_MAX];
    tls_host(c, host, sizeof(host));
    c->ssl = tls_client_session(c->cfg.tls, host);
    if (c->ssl == NULL || tls_set_socket(c->ssl, c->fd) != 0) {
        conn_close(c, -ENOMEM);
        return;
    }
    c->state = CONN_TLS;
    tls_step(c);
}

/* The socket connected (or failed to): check, then go on. */
static void connect_finish(struct client_conn *c)
{
    int soerr = 0;
    socklen_t len = sizeof(soerr);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0) {
        soerr = errno;
    }
    if (soerr != 0) {
        /* Nothing is pending yet: try the name's next address quietly. */
        (void)close(c->fd);
        c->fd = -1;
        c->state = CONN_DOWN;
        if (connect_start_next(c) != 0) {
            c->err_last = -soerr;
            c->generation++;
        }
        return;
    }
    connected(c);
}

int conn_wait_up(struct client_conn *c, int timeout_ms)
{
    int64_t deadline = clock_mono_ms() + (timeout_ms < 0 ? INT32_MAX : timeout_ms);
    if (c->state == CONN_DOWN) {
        int rc = conn_connect_start(c);
        if (rc != 0) {
            return rc;
        }
        /* Never wait past the caller's deadline for the connect itself. */
        if (c->connect_deadline_ms > deadline) {
            c->connect_deadline_ms = deadline;
        }
    }
    uint64_t gen = c->generation;
    while (c->state != CONN_UP) {
        if (c->generation != gen || c->state == CONN_DOWN) {
            return c->err_last != 0 ? c->err_last : -NG_EDISCONNECTED;
        }
        int64_t left = deadline - clock_mono_ms();
        if (left <= 0) {
            conn_close(c, -NG_ETIMEOUT);
            return -NG_ETIMEOUT;
        }
        int rc = conn_poll(c, (int)(left < 100 ? left : 100));
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* ---- sending ---- */

bool conn_ready(const struct client_conn *c)
{
    return c->state == CONN_UP && c->pend_count < c->cfg.pending_max;
}

uint16_t conn_version(const struct client_conn *c, uint16_t api_key)
{
    ASSERT(api_key < PROTO_API_COUNT);
    return c->api_version[api_key];
}

size_t conn_frame_bytes_max(const struct client_conn *c)
{
    return (size_t)c->peer_frame_bytes_max + PROTO_FRAME_PREFIX_BYTES;
}

static size_t tx_limit(const struct client_conn *c)
{
    size_t frame = conn_frame_bytes_max(c);
    return c->cfg.tx_bytes_max > frame ? c->cfg.tx_bytes_max : frame;
}

/* Makes need bytes free at the end of tx: compacts, then grows. */
static int tx_room(struct client_conn *c, size_t need)
{
    if (c->tx_head == c->tx_len) {
        c->tx_head = 0;
        c->tx_len = 0;
    }
    if (c->tx_cap - c->tx_len >= need) {
        return 0;
    }
    size_t unsent = c->tx_len - c->tx_head;
    if (c->tx_head > 0) {
        memmove(c->tx, c->tx + c->tx_head, unsent);
        c->tx_head = 0;
        c->tx_len = unsent;
    }
    if (c->tx_cap - c->tx_len >= need) {
        return 0;
    }
    if (unsent + need > tx_limit(c)) {
        return -NG_EBUSY;
    }
    size_t cap = c->tx_cap * 2 > unsent + need ? c->tx_cap * 2 : unsent + need;
    cap = cap < tx_limit(c) ? cap : tx_limit(c);
    uint8_t *tx = realloc(c->tx, cap);
    if (tx == NULL) {
        return -ENOMEM;
    }
    c->tx = tx;
    c->tx_cap = cap;
    return 0;
}

/* Makes room for n more references: compacts, then grows. Their number is
 * bounded by the requests pending, CONN_FRAME_REFS_MAX each. */
static int txref_room(struct client_conn *c, uint32_t n)
{
    if (c->txref_head == c->txref_len) {
        c->txref_head = 0;
        c->txref_len = 0;
    }
    if (c->txref_cap - c->txref_len >= n) {
        return 0;
    }
    uint32_t live = c->txref_len - c->txref_head;
    if (c->txref_head > 0) {
        memmove(c->txrefs, c->txrefs + c->txref_head, live * sizeof(*c->txrefs));
        c->txref_head = 0;
        c->txref_len = live;
    }
    if (c->txref_cap - c->txref_len >= n) {
        return 0;
    }
    ASSERT((uint64_t)live + n <= (uint64_t)c->cfg.pending_max * CONN_FRAME_REFS_MAX);
    uint32_t cap = c->txref_cap == 0 ? TXREFS_INITIAL : c->txref_cap * 2;
    while (cap < live + n) {
        cap *= 2;
    }
    struct conn_txref *refs = realloc(c->txrefs, cap * sizeof(*refs));
    if (refs == NULL) {
        return -ENOMEM;
    }
    c->txrefs = refs;
    c->txref_cap = cap;
    return 0;
}

int conn_frame_begin_refs(struct client_conn *c, size_t need, size_t ref_bytes, uint32_t ref_count,
                          struct wr *w, uint32_t *corr_out)
{
    ASSERT(conn_ready(c) && ref_count <= CONN_FRAME_REFS_MAX);
    size_t frame_max = conn_frame_bytes_max(c);
    if (need > frame_max || ref_bytes > frame_max - need) {
        return -NG_ETOOBIG;
    }
    int rc = tx_room(c, need);
    rc = rc == 0 && ref_count > 0 ? txref_room(c, ref_count) : rc;
    if (rc != 0) {
        return rc;
    }
    size_t room = c->tx_cap - c->tx_len;
    size_t inline_max = frame_max - ref_bytes;
    *w = wr_make(c->tx + c->tx_len, room < inline_max ? room : inline_max);
    *corr_out = c->corr_next++;
    return 0;
}

int conn_frame_begin(struct client_conn *c, size_t need, struct wr *w, uint32_t *corr_out)
{
    return conn_frame_begin_refs(c, need, 0, 0, w, corr_out);
}

static void frame_commit(struct client_conn *c, const struct wr *w, const struct conn_ref *refs,
                         uint32_t ref_count, uint32_t corr, uint16_t api_key, uint16_t version,
                         bool noreply, uint32_t timeout_ms, conn_done_fn fn, conn_sink_fn sink,
                         void *arg)
{
    ASSERT(c->fd >= 0 && c->pend_count < c->cfg.pending_max && fn != NULL);
    ASSERT(w->err == 0 && w->pos >= 8 && w->ptr == c->tx + c->tx_len);
    ASSERT(get_be32(w->ptr + 8) == corr);             /* prefix, api key, version, corr */
    ASSERT(ref_count <= c->txref_cap - c->txref_len); /* made room for in begin */
    uint64_t start = c->tx_queued_total;
    size_t ref_bytes = 0;
    size_t at_last = 0;
    for (uint32_t i = 0; i < ref_count; i++) {
        ASSERT(refs[i].at >= at_last && refs[i].at <= w->pos && refs[i].ptr != NULL);
        at_last = refs[i].at;
        if (refs[i].len > 0) {
            c->txrefs[c->txref_len++] = (struct conn_txref){
                .at = start + refs[i].at + ref_bytes, .ptr = refs[i].ptr, .len = refs[i].len};
            ref_bytes += refs[i].len;
        }
    }
    /* The frame's length counts every byte it carries. */
    ASSERT((uint64_t)get_be32(w->ptr) + PROTO_FRAME_PREFIX_BYTES == w->pos + ref_bytes);
    c->tx_len += w->pos;
    c->tx_queued_total += w->pos + ref_bytes;
    c->pend_count++;
    int64_t now_ms = clock_mono_ms();
    *pend_at(c, c->pend_count - 1) = (struct conn_pending){.corr = corr,
                                                           .api_key = api_key,
                                                           .version = version,
                                                           .noreply = noreply,
                                                           .tx_end = c->tx_queued_total,
                                                           .deadline_ms = now_ms + timeout_ms,
                                                           .submitted_ms = now_ms,
                                                           .fn = fn,
                                                           .sink = sink,
                                                           .arg = arg};
    tx_write(c);
}

void conn_frame_commit(struct client_conn *c, const struct wr *w, uint32_t corr, uint16_t api_key,
                       uint16_t version, bool noreply, uint32_t timeout_ms, conn_done_fn fn,
                       void *arg)
{
    frame_commit(c, w, NULL, 0, corr, api_key, version, noreply, timeout_ms, fn, NULL, arg);
}

void conn_frame_commit_refs(struct client_conn *c, const struct wr *w, const struct conn_ref *refs,
                            uint32_t ref_count, uint32_t corr, uint16_t api_key, uint16_t version,
                            bool noreply, uint32_t timeout_ms, conn_done_fn fn, void *arg)
{
    frame_commit(c, w, refs, ref_count, corr, api_key, version, noreply, timeout_ms, fn, NULL, arg);
}

void conn_frame_commit_sink(struct client_conn *c, const struct wr *w, uint32_t corr,
                            uint16_t api_key, uint16_t version, uint32_t timeout_ms,
                            conn_done_fn fn, conn_sink_fn sink, void *arg)
{
    ASSERT(sink != NULL);
    frame_commit(c, w, NULL, 0, corr, api_key, version, false, timeout_ms, fn, sink, arg);
}

/* Describes the unwritten bytes in stream order, copied ones and
 * references interleaved, in at most TX_IOV_MAX pieces. Returns how many. */
static int tx_iov(const struct client_conn *c, struct iovec *iov)
{
    uint64_t pos = c->tx_sent_total;
    size_t copied = c->tx_head;
    uint32_t r = c->txref_head;
    int n = 0;
    while (n < TX_IOV_MAX && pos < c->tx_queued_total) {
        const struct conn_txref *ref = r < c->txref_len ? &c->txrefs[r] : NULL;
        if (ref != NULL && ref->at <= pos) {
            size_t off = (size_t)(pos - ref->at);
            iov[n++] =
                (struct iovec){.iov_base = (void *)(ref->ptr + off), .iov_len = ref->len - off};
            pos += ref->len - off;
            r++;
            continue;
        }
        uint64_t end = ref != NULL ? ref->at : c->tx_queued_total;
        size_t len = (size_t)(end - pos);
        ASSERT(copied + len <= c->tx_len);
        iov[n++] = (struct iovec){.iov_base = c->tx + copied, .iov_len = len};
        copied += len;
        pos = end;
    }
    return n;
}

/* Accounts for n more bytes written: through the copied bytes and the
 * references they cover. */
static void tx_advance(struct client_conn *c, size_t n)
{
    uint64_t pos = c->tx_sent_total;
    uint64_t end = pos + n;
    ASSERT(end <= c->tx_queued_total);
    while (pos < end) {
        const struct conn_txref *ref =
            c->txref_head < c->txref_len ? &c->txrefs[c->txref_head] : NULL;
        if (ref != NULL && ref->at <= pos) {
            uint64_t ref_end = ref->at + ref->len;
            pos = end < ref_end ? end : ref_end;
            if (pos == ref_end) {
                c->txref_head++;
            }
            continue;
        }
        uint64_t stop = ref != NULL && ref->at < end ? ref->at : end;
        c->tx_head += (size_t)(stop - pos);
        ASSERT(c->tx_head <= c->tx_len);
        pos = stop;
    }
    c->tx_sent_total = end;
}

/* tx_write() over TLS: the queued bytes gathered into tls_wbuf, then
 * SSL_write; the queue moves on once OpenSSL has taken them all. */
static void tls_tx_write(struct client_conn *c)
{
    while (c->broken == 0 && c->tx_sent_total < c->tx_queued_total && c->state >= CONN_HANDSHAKE) {
        if (c->tls_wpend == 0) {
            struct iovec iov[TX_IOV_MAX];
            int n = tx_iov(c, iov);
            for (int i = 0; i < n && c->tls_wpend < CONN_TLS_WBUF_BYTES; i++) {
                size_t take = CONN_TLS_WBUF_BYTES - c->tls_wpend;
                take = iov[i].iov_len < take ? iov[i].iov_len : take;
                memcpy(c->tls_wbuf + c->tls_wpend, iov[i].iov_base, take);
                c->tls_wpend += take;
            }
        }
        ERR_clear_error();
        int n = SSL_write(c->ssl, c->tls_wbuf, (int)c->tls_wpend);
        if (n > 0) {
            ASSERT((size_t)n == c->tls_wpend); /* no partial writes: not enabled */
            c->tls_wpend = 0;
            tx_advance(c, (size_t)n);
            continue;
        }
        int e = SSL_get_error(c->ssl, n);
        if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
            return;
        }
        c->broken = e == SSL_ERROR_SSL ? -NG_ETLS : -NG_EDISCONNECTED;
        return;
    }
}

/* Writes what the socket takes. A failure marks the connection broken; it
 * is closed (and its requests failed) by the next conn_poll()/conn_flush(),
 * never from inside conn_frame_commit(). */
static void tx_write(struct client_conn *c)
{
    if (c->ssl != NULL) {
        tls_tx_write(c);
        return;
    }
    while (c->broken == 0 && c->tx_sent_total < c->tx_queued_total && c->state >= CONN_HANDSHAKE) {
        struct iovec iov[TX_IOV_MAX];
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)tx_iov(c, iov)};
        ssize_t n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        }
        if (n < 0) {
            c->broken = errno == EPIPE || errno == ECONNRESET ? -NG_EDISCONNECTED : -errno;
            return;
        }
        tx_advance(c, (size_t)n);
    }
}

/* Completes requests that get no answer once their bytes are written. */
static void complete_written(struct client_conn *c)
{
    uint64_t gen = c->generation;
    for (uint32_t i = 0; i < c->pend_count && c->generation == gen; i++) {
        struct conn_pending *p = pend_at(c, i);
        if (p->tx_end > c->tx_sent_total) {
            break; /* frames are written in order */
        }
        if (p->noreply && !p->done) {
            pend_complete(c, i, 0, NULL);
        }
    }
    if (c->generation == gen) {
        pend_pop_done(c);
    }
}

void conn_flush(struct client_conn *c)
{
    if (c->fd < 0) {
        return;
    }
    tx_write(c);
    if (c->broken != 0) {
        int err = c->broken;
        c->broken = 0;
        conn_close(c, err);
        return;
    }
    complete_written(c);
}

/* ---- receiving ---- */

/* recv(2), or SSL_read on a TLS connection with recv's returns: > 0 bytes,
 * 0 at the peer's end (close_notify or EOF), -1 with errno (EAGAIN when
 * OpenSSL needs more bytes first, EPROTO for a TLS error). */
static ssize_t conn_recv(struct client_conn *c, uint8_t *buf, size_t len)
{
    if (c->ssl == NULL) {
        return recv(c->fd, buf, len, 0);
    }
    ERR_clear_error();
    errno = 0; /* SSL_ERROR_SYSCALL with errno 0: EOF */
    int want = len < INT32_MAX ? (int)len : INT32_MAX;
    int n = SSL_read(c->ssl, buf, want);
    if (n > 0) {
        return n;
    }
    switch (SSL_get_error(c->ssl, n)) {
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_SYSCALL:
        errno = errno != 0 ? errno : ECONNRESET; /* EOF without close_notify */
        return -1;
    default:
        errno = EPROTO;
        return -1;
    }
}

/* What a failed conn_recv() (errno) closes c with. */
static int recv_err(const struct client_conn *c)
{
    if (errno == EPROTO && c->ssl != NULL) {
        return -NG_ETLS; /* an alert: e.g. the broker refused our certificate */
    }
    return errno == ECONNRESET ? -NG_EDISCONNECTED : -errno;
}

/* The oldest request still waiting for an answer, or -1. */
static int64_t pend_first_reply(struct client_conn *c)
{
    for (uint32_t i = 0; i < c->pend_count; i++) {
        const struct conn_pending *p = pend_at(c, i);
        if (!p->done && !p->noreply) {
            return i;
        }
    }
    return -1;
}

/* Hands one whole frame (after its prefix) to its request. Returns 0, or
 * the error that must close the connection. */
static int dispatch_frame(struct client_conn *c, const uint8_t *frame, uint32_t len)
{
    struct rd r = rd_make(frame, len);
    struct proto_resp_header h;
    int rc = proto_resp_header_decode(&r, &h);
    if (rc != 0) {
        return -NG_EPROTO;
    }
    int64_t i = pend_first_reply(c);
    if (i < 0 || pend_at(c, (uint32_t)i)->corr != h.correlation_id) {
        return -NG_EPROTO; /* answers come in request order */
    }
    if (pend_at(c, (uint32_t)i)->tx_end > c->tx_sent_total) {
        /* An answer to a request not yet written whole: the references
         * it carries must stay untouched until then (conn_frame_commit_refs). */
        return -NG_EPROTO;
    }
    c->silent_since_ms = INT64_MAX; /* it answers */
    pend_complete(c, (uint32_t)i, h.err, h.err == 0 ? &r : NULL);
    return 0;
}

/* The frame that begins at rx[at] and has not wholly come: when it is
 * large and its request takes answers into a buffer of its own, what came
 * of it moves there and the rest is read straight into it (sink_read()).
 * Answers come in request order, so it is the oldest unanswered request's
 * (dispatch_frame() checks its correlation id once it is whole). */
static void sink_start(struct client_conn *c, size_t at)
{
    if (c->rx_len - at < PROTO_FRAME_PREFIX_BYTES) {
        return;
    }
    size_t frame = PROTO_FRAME_PREFIX_BYTES + (size_t)get_be32(c->rx + at);
    int64_t i = pend_first_reply(c);
    if (frame < CONN_SINK_BYTES_MIN || i < 0 ||
        frame > PROTO_FRAME_PREFIX_BYTES + (size_t)c->cfg.resp_bytes_max) {
        return; /* small, no request for it, or too big (rx_room() refuses it) */
    }
    const struct conn_pending *p = pend_at(c, (uint32_t)i);
    uint8_t *buf = p->sink != NULL ? p->sink(p->arg, frame) : NULL;
    if (buf == NULL) {
        return;
    }
    ASSERT(frame > c->rx_len - at); /* not whole yet */
    c->sink = buf;
    c->sink_len = frame;
    c->sink_got = c->rx_len - at;
    memcpy(buf, c->rx + at, c->sink_got);
    c->rx_len = at; /* nothing past the frame was read */
}

/* Reads into the sink, never past its frame; dispatches the frame once it
 * is whole. Returns 1 when the socket has nothing more now, 0 to read on,
 * or the error that must close the connection. */
static int sink_read(struct client_conn *c)
{
    ssize_t n = conn_recv(c, c->sink + c->sink_got, c->sink_len - c->sink_got);
    if (n < 0 && errno == EINTR) {
        return 0;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return 1;
    }
    if (n <= 0) {
        return n == 0 ? -NG_EDISCONNECTED : recv_err(c);
    }
    c->sink_got += (size_t)n;
    if (c->sink_got < c->sink_len) {
        return 0;
    }
    uint8_t *frame = c->sink;
    size_t len = c->sink_len - PROTO_FRAME_PREFIX_BYTES;
    c->sink = NULL;
    c->sink_len = 0;
    c->sink_got = 0;
    uint64_t gen = c->generation;
    int rc = dispatch_frame(c, frame + PROTO_FRAME_PREFIX_BYTES, (uint32_t)len);
    if (rc == 0 && c->generation == gen) {
        pend_pop_done(c);
    }
    return rc;
}

/* Dispatches every whole frame at the start of rx, then moves the rest to
 * the front. Returns 0 or the error that must close the connection. */
static int rx_dispatch(struct client_conn *c)
{
    size_t at = 0;
    uint64_t gen = c->generation;
    while (c->rx_len - at >= PROTO_FRAME_PREFIX_BYTES) {
        uint32_t len;
        int rc = proto_response_frame_len(c->rx + at, c->cfg.resp_bytes_max, &len);
        if (rc != 0) {
            return rc == -NG_ETOOBIG ? rc : -NG_EPROTO;
        }
        if (c->rx_len - at - PROTO_FRAME_PREFIX_BYTES < len) {
            break;
        }
        rc = dispatch_frame(c, c->rx + at + PROTO_FRAME_PREFIX_BYTES, len);
        if (rc != 0) {
            return rc;
        }
        if (c->generation != gen) {
            return 0; /* a callback closed the connection: rx is reset */
        }
        at += PROTO_FRAME_PREFIX_BYTES + len;
        pend_pop_done(c);
    }
    sink_start(c, at);
    if (at > 0) {
        memmove(c->rx, c->rx + at, c->rx_len - at);
        c->rx_len -= at;
    }
    return 0;
}

/* Room for the frame being assembled plus a read window, within bounds. */
static int rx_room(struct client_conn *c)
{
    size_t want = c->rx_len + CONN_RX_WINDOW_BYTES;
    if (c->rx_len >= PROTO_FRAME_PREFIX_BYTES) {
        size_t frame = PROTO_FRAME_PREFIX_BYTES + (size_t)get_be32(c->rx);
        if (frame > PROTO_FRAME_PREFIX_BYTES + (size_t)c->cfg.resp_bytes_max) {
            return -NG_ETOOBIG; /* refused before anything is allocated for it */
        }
        want = frame > c->rx_len ? frame : want;
    }
    if (want <= c->rx_cap) {
        return 0;
    }
    size_t cap = c->rx_cap * 2 > want ? c->rx_cap * 2 : want;
    size_t limit = PROTO_FRAME_PREFIX_BYTES + (size_t)c->cfg.resp_bytes_max + CONN_RX_WINDOW_BYTES;
    cap = cap < limit ? cap : limit;
    uint8_t *rx = realloc(c->rx, cap);
    if (rx == NULL) {
        return -ENOMEM;
    }
    c->rx = rx;
    c->rx_cap = cap;
    return 0;
}

/* Bytes to read into rx now: the rest of the frame being assembled when
 * its length is known, else a read window. Never the whole of rx: what a
 * read brings of a large answer before its sink is known is copied there
 * (sink_start()), so at most a window of it is. */
static size_t rx_want(const struct client_conn *c)
{
    size_t want = CONN_RX_WINDOW_BYTES;
    if (c->rx_len >= PROTO_FRAME_PREFIX_BYTES) {
        size_t frame = PROTO_FRAME_PREFIX_BYTES + (size_t)get_be32(c->rx);
        want = frame > c->rx_len + want ? frame - c->rx_len : want;
    }
    size_t room = c->rx_cap - c->rx_len;
    return want < room ? want : room;
}

/* Reads and dispatches until the socket is empty (or a read budget is
 * spent). Returns 0 or the error that must close the connection. */
static int rx_read(struct client_conn *c)
{
    uint64_t gen = c->generation;
    for (int k = 0; k < RX_READS_PER_POLL && c->generation == gen; k++) {
        if (c->sink != NULL) {
            int rc = sink_read(c);
            if (rc != 0) {
                return rc > 0 ? 0 : rc;
            }
            continue;
        }
        int rc = rx_room(c);
        if (rc != 0) {
            return rc;
        }
        ssize_t n = conn_recv(c, c->rx + c->rx_len, rx_want(c));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return 0;
        }
        if (n < 0) {
            return recv_err(c);
        }
        if (n == 0) {
            return -NG_EDISCONNECTED;
        }
        c->rx_len += (size_t)n;
        rc = rx_dispatch(c);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* ---- polling ---- */

int64_t conn_next_deadline(const struct client_conn *c)
{
    int64_t d = INT64_MAX;
    if (c->state == CONN_CONNECTING || c->state == CONN_TLS) {
        d = c->connect_deadline_ms;
    }
    for (uint32_t i = 0; i < c->pend_count; i++) {
        const struct conn_pending *p = &c->pend[(c->pend_head + i) % c->cfg.pending_max];
        if (!p->done && p->deadline_ms < d) {
            d = p->deadline_ms;
        }
    }
    return d;
}

int64_t conn_oldest_pending_ms(const struct client_conn *c)
{
    /* Entries are in submission order; done ones wait only to leave the
     * FIFO behind an older one still pending. */
    for (uint32_t i = 0; i < c->pend_count; i++) {
        const struct conn_pending *p = &c->pend[(c->pend_head + i) % c->cfg.pending_max];
        if (!p->done) {
            return p->submitted_ms;
        }
    }
    return INT64_MAX;
}

int64_t conn_silent_since_ms(const struct client_conn *c)
{
    int64_t oldest = conn_oldest_pending_ms(c);
    if (oldest == INT64_MAX) {
        return c->state == CONN_UP ? INT64_MAX : c->silent_since_ms;
    }
    return c->silent_since_ms < oldest ? c->silent_since_ms : oldest;
}

static void check_deadlines(struct client_conn *c)
{
    if (c->fd >= 0 && clock_mono_ms() >= conn_next_deadline(c)) {
        conn_close(c, -NG_ETIMEOUT);
    }
}

static void handle_events(struct client_conn *c, short revents)
{
    if (c->state == CONN_CONNECTING) {
        if ((revents & (POLLOUT | POLLERR | POLLHUP)) != 0) {
            connect_finish(c);
        }
        return;
    }
    if (c->state == CONN_TLS) {
        tls_step(c);
        return;
    }
    if ((revents & (POLLIN | POLLERR | POLLHUP)) != 0) {
        int rc = rx_read(c);
        if (rc != 0) {
            conn_close(c, rc);
            return;
        }
    }
    if (c->fd >= 0) {
        conn_flush(c);
    }
}

void conn_pump(struct client_conn *c)
{
    if (c->state != CONN_UP) {
        return;
    }
    int rc = rx_read(c);
    if (rc != 0) {
        conn_close(c, rc);
        return;
    }
    conn_flush(c);
}

int conn_poll(struct client_conn *c, int timeout_ms) { return conn_poll_many(&c, 1, timeout_ms); }

int conn_poll_many(struct client_conn *const *cs, uint32_t n, int timeout_ms)
{
    ASSERT(n <= CONN_POLL_MANY_MAX);
    struct pollfd pfds[CONN_POLL_MANY_MAX];
    struct client_conn *polled[CONN_POLL_MANY_MAX];
    bool buffered[CONN_POLL_MANY_MAX];
    uint32_t k = 0;
    bool broke = false; /* a write just failed: report it without sleeping */
    int64_t now = clock_mono_ms();
    for (uint32_t i = 0; i < n; i++) {
        struct client_conn *c = cs[i];
        bool open = c->fd >= 0;
        conn_flush(c);
        if (c->fd < 0) {
            broke = broke || open;
            continue;
        }
        /* Never sleep past a request's deadline: it must be enforced on time. */
        int64_t deadline = conn_next_deadline(c);
        if (deadline != INT64_MAX) {
            int64_t left = deadline > now ? deadline - now : 0;
            left = left < INT32_MAX ? left : INT32_MAX;
            timeout_ms = timeout_ms < 0 || left < timeout_ms ? (int)left : timeout_ms;
        }
        pfds[k] = (struct pollfd){.fd = c->fd, .events = POLLIN};
        if (c->state == CONN_CONNECTING || c->tx_sent_total < c->tx_queued_total ||
            (c->state == CONN_TLS && c->tls_want_write)) {
            pfds[k].events |= POLLOUT;
        }
        /* Bytes OpenSSL read and decrypted already: the socket will not
         * say so, so do not wait for it. (A record only partly read is
         * not counted: the rest of it wakes poll.) */
        buffered[k] = c->ssl != NULL && c->state >= CONN_HANDSHAKE && SSL_pending(c->ssl) > 0;
        timeout_ms = buffered[k] ? 0 : timeout_ms;
        polled[k++] = c;
    }
    if (k == 0 && broke) {
        return 0;
    }
    int ready = poll(k > 0 ? pfds : NULL, k, timeout_ms);
    if (ready < 0 && errno != EINTR) {
        return -errno;
    }
    for (uint32_t i = 0; i < k; i++) {
        short revents = ready > 0 ? pfds[i].revents : 0;
        revents |= buffered[i] ? POLLIN : 0;
        /* A callback of an earlier one may have closed this one. */
        if (revents != 0 && polled[i]->fd == pfds[i].fd) {
            handle_events(polled[i], revents);
        }
    }
    for (uint32_t i = 0; i < k; i++) {
        check_deadlines(polled[i]);
    }
    return 0;
}

/* ---- synchronous calls ---- */

struct call {
    conn_decode_fn decode;
    void *arg;
    bool done;
    int rc;
};

static void call_done(void *arg, int err, struct rd *body, uint16_t version)
{
    struct call *st = arg;
    st->done = true;
    st->rc = err != 0 ? err : st->decode(st->arg, body, version);
}

/* Runs the watch when due (*check_ms: when next): returns true when it
 * gave c up (closed). */
static bool call_check(struct client_conn *c, const struct conn_watch *watch, int64_t *check_ms)
{
    int64_t now = clock_mono_ms();
    if (watch == NULL || now < *check_ms) {
        return false;
    }
    *check_ms = now + watch->period_ms;
    if (!watch->fn(watch->arg)) {
        return false;
    }
    conn_close(c, -NG_EDISCONNECTED);
    return true;
}

/* How long a call's loop may poll now: at most 100 ms, not past the next
 * check or the deadline. */
static int call_step_ms(int64_t check_ms, int64_t deadline_ms)
{
    int64_t until = check_ms < deadline_ms ? check_ms : deadline_ms;
    int64_t step = until - clock_mono_ms();
    return step <= 0 ? 0 : step < 100 ? (int)step : 100;
}

/* Waits until c is up (room: and can take a request), connecting when
 * down (one connect, bounded by the deadline); the watch runs meanwhile,
 * as it does for an answer (a broker paused after accepting the
 * connection never finishes the handshake). */
static int wait_ready(struct client_conn *c, bool room, int64_t deadline_ms,
                      const struct conn_watch *watch, int64_t *check_ms)
{
    bool started = false;
    while (room ? !conn_ready(c) : c->state != CONN_UP) {
        if (clock_mono_ms() >= deadline_ms) {
            if (c->state != CONN_UP) {
                conn_close(c, -NG_ETIMEOUT);
            }
            return -NG_ETIMEOUT;
        }
        if (call_check(c, watch, check_ms)) {
            return -NG_EDISCONNECTED;
        }
        if (c->state == CONN_DOWN) {
            if (started) {
                return c->err_last != 0 ? c->err_last : -NG_EDISCONNECTED;
            }
            int rc = conn_connect_start(c);
            if (rc != 0) {
                return rc;
            }
            started = true;
            /* Never wait past the caller's deadline for the connect itself. */
            if (c->connect_deadline_ms > deadline_ms) {
                c->connect_deadline_ms = deadline_ms;
            }
        }
        int rc = conn_poll(c, call_step_ms(*check_ms, deadline_ms));
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

int conn_wait_up_watched(struct client_conn *c, int64_t deadline_ms, const struct conn_watch *watch)
{
    ASSERT(watch == NULL || (watch->period_ms > 0 && watch->fn != NULL));
    int64_t check_ms = watch != NULL ? clock_mono_ms() + watch->period_ms : INT64_MAX;
    return wait_ready(c, false, deadline_ms, watch, &check_ms);
}

int conn_call(struct client_conn *c, uint16_t api_key, size_t need, conn_encode_fn encode,
              conn_decode_fn decode, void *arg, int64_t deadline_ms)
{
    return conn_call_watched(c, api_key, need, encode, decode, arg, deadline_ms, NULL);
}

int conn_call_watched(struct client_conn *c, uint16_t api_key, size_t need, conn_encode_fn encode,
                      conn_decode_fn decode, void *arg, int64_t deadline_ms,
                      const struct conn_watch *watch)
{
    ASSERT(watch == NULL || (watch->period_ms > 0 && watch->fn != NULL));
    int64_t check_ms = watch != NULL ? clock_mono_ms() + watch->period_ms : INT64_MAX;
    int rc = wait_ready(c, true, deadline_ms, watch, &check_ms);
    if (rc != 0) {
        return rc;
    }
    uint16_t version = conn_version(c, api_key);
    if (version == UINT16_MAX) {
        return -NG_EBADVERSION;
    }
    struct wr w;
    uint32_t corr;
    rc = conn_frame_begin(c, need, &w, &corr);
    rc = rc == 0 ? encode(arg, &w, corr, version) : rc;
    if (rc != 0) {
        return rc;
    }
    int64_t left = deadline_ms - clock_mono_ms();
    struct call st = {.decode = decode, .arg = arg};
    conn_frame_commit(c, &w, corr, api_key, version, false, left > 0 ? (uint32_t)left : 1,
                      call_done, &st);
    /* The request's own timeout closes the connection when it runs out, so
     * call_done() always runs before this returns. */
    while (!st.done) {
        if (call_check(c, watch, &check_ms)) {
            break; /* the close completed the call */
        }
        /* The request's deadline closes c (check_deadlines()): not polled
         * past it. */
        rc = conn_poll(c, call_step_ms(check_ms, INT64_MAX));
        if (rc != 0 && !st.done) {
            conn_close(c, rc);
        }
    }
    return st.rc;
}

/* ---- TLS contexts ---- */

int conn_config_tls(struct conn_config *cc, const struct nagare_tls *t)
{
    cc->tls = NULL;
    cc->tls_server_name = NULL;
    if (t == NULL || !t->enabled) {
        return 0;
    }
    struct tls_client_cfg tc = {.ca_file = t->ca_file,
                                .cert_file = t->cert_file,
                                .key_file = t->key_file,
                                .no_verify = t->no_verify};
    char err[256];
    cc->tls_server_name = t->server_name;
    return tls_client_ctx(&tc, &cc->tls, err, sizeof(err));
}

void conn_config_tls_done(struct conn_config *cc)
{
    SSL_CTX_free(cc->tls);
    cc->tls = NULL;
}
