/*
 * broker/admin_http.c — the HTTP admin listener (broker/admin_http.h) on
 * libmicrohttpd.
 */
#include "broker/admin_http.h"

#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "auth/scram.h"
#include "base/log.h"
#include "broker/acl_serve.h"
#include "broker/conn_auth.h"
#include "broker/console_api.h"
#include "broker/console_assets.h"
#include "broker/metrics.h"
#include "broker/sasl_serve.h"
#include "broker/server.h"
#include "net/listen.h"

/* An idle HTTP connection is closed after this long. */
#define ADMIN_HTTP_IDLE_S 30u
/* How often a request waiting for the loop looks whether the listener is
 * stopping (then it gives up at once). */
#define ADMIN_HTTP_WAIT_SLICE_MS 50
/* Basic's realm (RFC 7617), in WWW-Authenticate. */
#define ADMIN_HTTP_REALM "nagare"
/* TLS versions offered, in GnuTLS's words: 1.2 and 1.3, as the broker's
 * other listeners (net/tls.h). */
#define ADMIN_HTTP_TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
/* The HMAC (SHA-256) a connection remembers a verified password by. */
#define ADMIN_HTTP_MAC_BYTES 32
/* A peer's numeric address, as getnameinfo() gives it (INET6_ADDRSTRLEN). */
#define ADMIN_HTTP_ADDR_BYTES 46

/* Whether the loop may still read the server for an ask: shared by the
 * listener and the asks it posted, freed by the last of them. `open` is
 * the loop thread's. `running` turns true when the loop first runs the
 * message posted at start (running: the broker's start is over). */
struct gate {
    atomic_int refs;
    bool open;
    atomic_bool running;
    struct loop_msg started;
    struct server *s;
};

static void gate_put(struct gate *g)
{
    if (atomic_fetch_sub(&g->refs, 1) == 1) {
        free(g);
    }
}

/* On the loop, the first time it runs: asks may go to it from now on. */
static void gate_started(struct loop_msg *m, void *arg)
{
    (void)m;
    struct gate *g = arg;
    atomic_store(&g->running, true);
    gate_put(g);
}

struct admin_http {
    struct MHD_Daemon *daemon;
    struct gate *gate;
    atomic_bool stopping;
    bool auth_required;
    uint8_t mac_key[ADMIN_HTTP_MAC_BYTES]; /* keys the passwords' HMACs below */
    char *tls_cert;                        /* PEM, NUL-terminated; NULL: plain HTTP */
    char *tls_key;
};

/* One HTTP connection's memory of the last login it verified (user ""
 * when none): the password's HMAC under mac_key and the StoredKey it
 * matched. HTTP thread only. */
struct http_conn {
    char user[SCRAM_USER_BYTES_MAX + 1];
    uint8_t pw_mac[ADMIN_HTTP_MAC_BYTES];
    uint8_t stored_key[SCRAM_KEY_BYTES_MAX];
};

/* Who sends a request, as authenticate() found. */
struct http_who {
    char principal[PRINCIPAL_BYTES_MAX];
    char addr[ADMIN_HTTP_ADDR_BYTES];
    bool fresh; /* a password was verified for this request: addr's failures go */
};

/* ---- asking the loop ---- */

enum ask_kind { ASK_HEALTH, ASK_READY, ASK_METRICS, ASK_API, ASK_LOGIN, ASK_LOGIN_FAILED };

/* One HTTP request's question to the loop. Two references: the HTTP
 * thread's and the loop's (its message); the last one frees it. */
struct ask {
    struct loop_msg msg;
    struct gate *gate;
    enum ask_kind kind;
    char path[64];              /* ASK_API: "/api/..." */
    struct console_query query; /* ASK_API: /api/records's */
    bool has_query;
    struct http_who who;                 /* ASK_METRICS, ASK_API, ASK_LOGIN* (addr) */
    char user[SCRAM_USER_BYTES_MAX + 1]; /* ASK_LOGIN*: "" for a name no user can have */
    bool blocked;                        /* ASK_LOGIN's answer: who.addr may not log in now */
    bool found;                          /* ASK_LOGIN's answer: cred is the user's */
    struct scram_cred cred;              /* ASK_LOGIN's answer (a stand-in when !found) */
    atomic_int refs;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done; /* under mu: the fields below are set */
    unsigned status;
    char *body; /* malloc'd; taken by the HTTP thread */
    size_t len;
    const char *type;
};

static void ask_put(struct ask *a)
{
    if (atomic_fetch_sub(&a->refs, 1) == 1) {
        free(a->body);
        explicit_bzero(&a->cred, sizeof(a->cred));
        pthread_cond_destroy(&a->cv);
        pthread_mutex_destroy(&a->mu);
        gate_put(a->gate);
        free(a);
    }
}

/* a's answer: a copy of text (NULL body on a failed allocation: 503). */
static void ask_text(struct ask *a, unsigned status, const char *text)
{
    a->len = strlen(text);
    a->body = malloc(a->len + 1);
    a->status = a->body != NULL ? status : MHD_HTTP_SERVICE_UNAVAILABLE;
    if (a->body != NULL) {
        memcpy(a->body, text, a->len + 1);
    }
    a->type = "text/plain; charset=utf-8";
}

/* Whether a's asker may have what it asks (the authorizer on: DESCRIBE on
 * the cluster, and READ on /api/records's topic). On the loop. */
static bool ask_authorized(struct server *s, const struct ask *a)
{
    struct acl_who who = {.principal = a->who.principal};
    snprintf(who.host, sizeof(who.host), "%s", a->who.addr);
    return acl_serve_allowed(s, &who, PROTO_ACL_RESOURCE_CLUSTER,
                             proto_str_make(PROTO_ACL_CLUSTER_NAME), PROTO_ACL_OP_DESCRIBE) &&
           (!a->has_query || acl_serve_allowed(s, &who, PROTO_ACL_RESOURCE_TOPIC,
                                               proto_str_make(a->query.topic), PROTO_ACL_OP_READ));
}

/* The login questions. On the loop. */
static void ask_login(struct server *s, struct ask *a)
{
    a->status = MHD_HTTP_OK;
    if (a->kind == ASK_LOGIN_FAILED) {
        sasl_serve_addr_failed(s, a->who.addr, a->user[0] != '\0' ? a->user : "?");
        return;
    }
    a->blocked = sasl_serve_addr_blocked(s, a->who.addr);
    a->found = !a->blocked && sasl_serve_user_cred(s, a->user, &a->cred) == 0;
}

/* On the loop. */
static void ask_run(struct loop_msg *m, void *arg)
{
    (void)m;
    struct ask *a = arg;
    struct server *s = a->gate->open ? a->gate->s : NULL;
    if (s != NULL && a->who.fresh) {
        sasl_serve_addr_succeeded(s, a->who.addr);
    }
    if (s == NULL) {
        ask_text(a, MHD_HTTP_SERVICE_UNAVAILABLE, "stopping\n");
    } else if (a->kind == ASK_LOGIN || a->kind == ASK_LOGIN_FAILED) {
        ask_login(s, a);
    } else if ((a->kind == ASK_METRICS || a->kind == ASK_API) && !ask_authorized(s, a)) {
        log_debug("admin listener: %s by %s from %s: not authorized",
                  a->kind == ASK_API ? a->path : "/metrics", a->who.principal, a->who.addr);
        ask_text(a, MHD_HTTP_FORBIDDEN,
                 "not authorized: needs DESCRIBE on the cluster (and READ on the topic)\n");
    } else if (a->kind == ASK_HEALTH) {
        ask_text(a, MHD_HTTP_OK, "ok\n");
    } else if (a->kind == ASK_READY) {
        char why[256];
        if (metrics_ready(s, why, sizeof(why) - 1)) {
            ask_text(a, MHD_HTTP_OK, "ready\n");
        } else {
            strcat(why, "\n");
            ask_text(a, MHD_HTTP_SERVICE_UNAVAILABLE, why);
        }
    } else if (a->kind == ASK_API) {
        int status = console_api(s, a->path, a->has_query ? &a->query : NULL, &a->body, &a->len);
        if (status > 0) {
            a->status = (unsigned)status;
            a->type = "application/json";
        } else {
            ask_text(a, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory\n");
        }
    } else if (metrics_render(s, &a->body, &a->len) == 0) {
        a->status = MHD_HTTP_OK;
        a->type = "text/plain; version=0.0.4; charset=utf-8";
    } else {
        ask_text(a, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory\n");
    }
    pthread_mutex_lock(&a->mu);
    a->done = true;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
    ask_put(a);
}

/* Asks the loop and waits for its answer: true with a->status, a->body
 * set; false when the loop gave none in time or the listener stops. */
static bool ask_wait(struct admin_http *h, struct ask *a)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t give_up_ms =
        (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 + ADMIN_HTTP_LOOP_WAIT_MS;
    loop_post(&h->gate->s->loop, &a->msg);
    pthread_mutex_lock(&a->mu);
    while (!a->done && !atomic_load(&h->stopping)) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
        if (now_ms >= give_up_ms) {
            break;
        }
        int64_t until = now_ms + ADMIN_HTTP_WAIT_SLICE_MS;
        struct timespec ts = {.tv_sec = until / 1000, .tv_nsec = (until % 1000) * 1000000};
        (void)pthread_cond_timedwait(&a->cv, &a->mu, &ts);
    }
    bool done = a->done;
    pthread_mutex_unlock(&a->mu);
    return done;
}

static struct ask *ask_new(struct admin_http *h, enum ask_kind kind)
{
    struct ask *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        return NULL;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&a->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&a->mu, NULL);
    atomic_init(&a->refs, 2); /* this thread's and the loop's */
    a->kind = kind;
    a->gate = h->gate;
    atomic_fetch_add(&h->gate->refs, 1);
    a->msg = (struct loop_msg){.fn = ask_run, .arg = a};
    return a;
}

/* ---- HTTP ---- */

static enum MHD_Result respond(struct MHD_Connection *c, unsigned status, char *body, size_t len,
                               const char *type)
{
    struct MHD_Response *r = body != NULL
                                 ? MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE)
                                 : MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    if (r == NULL) {
        free(body);
        return MHD_NO;
    }
    (void)MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    (void)MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED) {
        (void)MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    }
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result respond_text(struct MHD_Connection *c, unsigned status, const char *text)
{
    size_t len = strlen(text);
    char *body = malloc(len);
    if (body == NULL) {
        return MHD_NO;
    }
    memcpy(body, text, len);
    return respond(c, status, body, len, "text/plain; charset=utf-8");
}

/* A refusal before anything is read: 401 with Basic's challenge, 429 for
 * an address blocked after failed logins, 503 when the loop is gone. */
static enum MHD_Result respond_refused(struct MHD_Connection *c, unsigned status)
{
    if (status != MHD_HTTP_UNAUTHORIZED) {
        return respond_text(c, status,
                            status == MHD_HTTP_TOO_MANY_REQUESTS
                                ? "too many failed logins from this address: try again later\n"
                                : "the event loop does not answer (stuck or stopping)\n");
    }
    static const char body[] = "log in: HTTP Basic with a broker user's name and password\n";
    struct MHD_Response *r =
        MHD_create_response_from_buffer(sizeof(body) - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
    if (r == NULL) {
        return MHD_NO;
    }
    (void)MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
    enum MHD_Result rc = MHD_queue_basic_auth_fail_response(c, ADMIN_HTTP_REALM, r);
    MHD_destroy_response(r);
    return rc;
}

/* ---- who asks ---- */

static void conn_addr(struct MHD_Connection *c, char *out, size_t cap)
{
    const union MHD_ConnectionInfo *i =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = i != NULL ? i->client_addr : NULL;
    socklen_t len = sa == NULL                  ? 0
                    : sa->sa_family == AF_INET6 ? (socklen_t)sizeof(struct sockaddr_in6)
                                                : (socklen_t)sizeof(struct sockaddr_in);
    if (sa == NULL || getnameinfo(sa, len, out, (socklen_t)cap, NULL, 0, NI_NUMERICHOST) != 0) {
        snprintf(out, cap, "?"); /* as SASL's table counts an unknown address */
    }
}

static struct http_conn *conn_state(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *i =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return i != NULL ? i->socket_context : NULL;
}

/* Made when a connection opens (NULL on no memory: it just remembers no
 * login), wiped and freed when it closes. */
static void conn_notify(void *cls, struct MHD_Connection *c, void **ctx,
                        enum MHD_ConnectionNotificationCode toe)
{
    (void)cls;
    (void)c;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        *ctx = calloc(1, sizeof(struct http_conn));
    } else if (*ctx != NULL) {
        explicit_bzero(*ctx, sizeof(struct http_conn));
        free(*ctx);
        *ctx = NULL;
    }
}

/* Asks the loop a login question (ASK_LOGIN, ASK_LOGIN_FAILED) about user
 * from addr. Returns the answered ask (the caller puts it), or NULL when
 * the loop gave no answer. */
static struct ask *login_ask(struct admin_http *h, enum ask_kind kind, const char *user,
                             const char *addr)
{
    struct ask *a = ask_new(h, kind);
    if (a == NULL) {
        return NULL;
    }
    snprintf(a->user, sizeof(a->user), "%s", user);
    snprintf(a->who.addr, sizeof(a->who.addr), "%s", addr);
    if (!ask_wait(h, a) || a->status != MHD_HTTP_OK) {
        ask_put(a);
        return NULL;
    }
    return a;
}

/* Whether the connection verified this very login against this very
 * credential before. */
static bool login_remembered(const struct http_conn *hc, const char *user,
                             const uint8_t mac[ADMIN_HTTP_MAC_BYTES], const struct scram_cred *cred)
{
    return hc != NULL && hc->user[0] != '\0' && strcmp(hc->user, user) == 0 &&
           CRYPTO_memcmp(hc->pw_mac, mac, ADMIN_HTTP_MAC_BYTES) == 0 &&
           CRYPTO_memcmp(hc->stored_key, cred->stored_key, sizeof(hc->stored_key)) == 0;
}

/* Checks user's password pw (the slow part here, off the loop) against
 * the credential the loop has for it now. Returns 0 with w's principal
 * set, or the status to refuse with (401, 429, 503). */
static unsigned login(struct admin_http *h, struct MHD_Connection *c, const char *user,
                      const char *pw, struct http_who *w)
{
    char name[SCRAM_USER_BYTES_MAX + 1] = "";
    if (strlen(user) < sizeof(name)) { /* longer: no user has it ("" is no name) */
        memcpy(name, user, strlen(user) + 1);
    }
    struct ask *a = login_ask(h, ASK_LOGIN, name, w->addr);
    if (a == NULL) {
        return MHD_HTTP_SERVICE_UNAVAILABLE;
    }
    if (a->blocked) {
        ask_put(a);
        return MHD_HTTP_TOO_MANY_REQUESTS; /* refused without any work */
    }
    size_t pw_len = strlen(pw);
    uint8_t mac[ADMIN_HTTP_MAC_BYTES];
    unsigned mac_len = 0;
    bool ok = HMAC(EVP_sha256(), h->mac_key, sizeof(h->mac_key), (const uint8_t *)pw, pw_len, mac,
                   &mac_len) != NULL &&
              mac_len == sizeof(mac);
    struct http_conn *hc = conn_state(c);
    if (ok && a->found && login_remembered(hc, name, mac, &a->cred)) {
        explicit_bzero(mac, sizeof(mac));
        ask_put(a);
        snprintf(w->principal, sizeof(w->principal), "User:%s", name);
        return 0;
    }
    /* An unknown user's stand-in costs the same check, and fails it. */
    ok = ok && scram_cred_check(&a->cred, pw, pw_len) == 0 && a->found;
    if (ok && hc != NULL) {
        memcpy(hc->user, name, sizeof(name));
        memcpy(hc->pw_mac, mac, sizeof(mac));
        memcpy(hc->stored_key, a->cred.stored_key, sizeof(hc->stored_key));
    } else if (hc != NULL) {
        hc->user[0] = '\0';
    }
    explicit_bzero(mac, sizeof(mac));
    ask_put(a);
    if (!ok) {
        struct ask *f = login_ask(h, ASK_LOGIN_FAILED, name, w->addr);
        if (f != NULL) {
            ask_put(f);
        }
        return MHD_HTTP_UNAUTHORIZED; /* the same for an unknown user and a wrong password */
    }
    w->fresh = true;
    snprintf(w->principal, sizeof(w->principal), "User:%s", name);
    return 0;
}

/* Who sends c's request (docs in broker/admin_http.h). Returns 0 with w
 * filled, or the status to refuse it with. */
static unsigned authenticate(struct admin_http *h, struct MHD_Connection *c, struct http_who *w)
{
    snprintf(w->principal, sizeof(w->principal), "%s", PRINCIPAL_ANONYMOUS);
    w->fresh = false;
    conn_addr(c, w->addr, sizeof(w->addr));
    char *pw = NULL;
    char *user = MHD_basic_auth_get_username_password(c, &pw);
    unsigned status = 0;
    if (user == NULL) {
        status = h->auth_required ? MHD_HTTP_UNAUTHORIZED : 0;
    } else {
        status = login(h, c, user, pw != NULL ? pw : "", w);
    }
    if (pw != NULL) {
        explicit_bzero(pw, strlen(pw));
        MHD_free(pw);
    }
    if (user != NULL) {
        MHD_free(user);
    }
    return status;
}

static const struct console_asset *asset_find(const char *url)
{
    for (size_t i = 0; i < console_asset_count; i++) {
        if (strcmp(console_assets[i].path, url) == 0) {
            return &console_assets[i];
        }
    }
    return NULL;
}

/* An /api/ request: its path and, for /api/records, its parsed query.
 * Returns 0, or answers a bad query (400) itself and returns 1 (rc in *rc). */
static int api_ask(struct MHD_Connection *c, struct ask *a, const char *url, enum MHD_Result *rc)
{
    snprintf(a->path, sizeof(a->path), "%s", url);
    if (strcmp(url, "/api/records") != 0) {
        return 0;
    }
    char why[128];
#define ARG(name) MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name)
    if (console_query_parse(&a->query, ARG("topic"), ARG("partition"), ARG("offset"), ARG("time"),
                            ARG("limit"), why, sizeof(why)) != 0) {
#undef ARG
        char body[192];
        snprintf(body, sizeof(body), "{\"error\":\"%s\"}", why); /* why has no quotes */
        size_t len = strlen(body);
        char *copy = malloc(len);
        if (copy != NULL) {
            memcpy(copy, body, len);
        }
        *rc =
            copy != NULL ? respond(c, MHD_HTTP_BAD_REQUEST, copy, len, "application/json") : MHD_NO;
        return 1;
    }
    a->has_query = true;
    return 0;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **req_cls)
{
    (void)version;
    (void)upload_data;
    struct admin_http *h = cls;
    if (*req_cls == NULL) { /* headers in: answer once the body (if any) is read */
        *req_cls = h;
        return MHD_YES;
    }
    if (*upload_data_size != 0) { /* no request here takes a body: drop it */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        return respond_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD\n");
    }
    bool probe = strcmp(url, "/healthz") == 0 || strcmp(url, "/readyz") == 0;
    struct http_who who = {.principal = PRINCIPAL_ANONYMOUS};
    if (!probe) { /* the probes are open to all; everything else logs in */
        unsigned refused = authenticate(h, c, &who);
        if (refused != 0) {
            return respond_refused(c, refused);
        }
    }
    const struct console_asset *asset = asset_find(url);
    if (asset != NULL) { /* the console's own files: constant, no loop needed */
        struct MHD_Response *r = MHD_create_response_from_buffer(asset->len, (void *)asset->data,
                                                                 MHD_RESPMEM_PERSISTENT);
        if (r == NULL) {
            return MHD_NO;
        }
        (void)MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, asset->type);
        enum MHD_Result rc = MHD_queue_response(c, MHD_HTTP_OK, r);
        MHD_destroy_response(r);
        return rc;
    }
    enum ask_kind kind;
    if (strncmp(url, "/api/", 5) == 0 && strlen(url) < sizeof(((struct ask *)0)->path)) {
        kind = ASK_API;
    } else if (strcmp(url, "/healthz") == 0) {
        kind = ASK_HEALTH;
    } else if (strcmp(url, "/readyz") == 0) {
        kind = ASK_READY;
    } else if (strcmp(url, "/metrics") == 0) {
        kind = ASK_METRICS;
    } else {
        return respond_text(c, MHD_HTTP_NOT_FOUND,
                            "not found: /, /api/..., /metrics, /healthz, /readyz\n");
    }
    if (!atomic_load(&h->gate->running)) {
        /* The broker is still starting (opening its data, joining the
         * cluster): the loop does not run yet, so say so at once rather
         * than after ADMIN_HTTP_LOOP_WAIT_MS. */
        return respond_text(c, MHD_HTTP_SERVICE_UNAVAILABLE,
                            "starting: not serving yet (opening the data directory or joining the "
                            "cluster)\n");
    }
    struct ask *a = ask_new(h, kind);
    if (a == NULL) {
        return respond_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory\n");
    }
    a->who = who;
    enum MHD_Result rc;
    if (kind == ASK_API && api_ask(c, a, url, &rc) != 0) {
        atomic_fetch_sub(&a->refs, 1); /* never posted: the loop's reference goes too */
        ask_put(a);
        return rc;
    }
    if (ask_wait(h, a)) {
        rc = respond(c, a->status, a->body, a->len, a->type);
        a->body = NULL; /* the response has it */
    } else {
        rc = respond_text(c, MHD_HTTP_SERVICE_UNAVAILABLE,
                          "the event loop does not answer (stuck or stopping)\n");
    }
    ask_put(a);
    return rc;
}

/* libmicrohttpd's own messages (its format strings). */
__attribute__((format(printf, 2, 0))) static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof(line), fmt, ap);
    size_t n = strlen(line);
    while (n > 0 && line[n - 1] == '\n') {
        line[--n] = '\0';
    }
    log_warn("admin listener: %s", line);
}

/* path's bytes, NUL-terminated, into *out (malloc'd). Returns 0, -errno,
 * -NG_EBADARG (empty, or over ADMIN_HTTP_TLS_FILE_BYTES_MAX). */
static int tls_file_read(const char *path, char **out)
{
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        return -errno;
    }
    char *buf = malloc(ADMIN_HTTP_TLS_FILE_BYTES_MAX + 1);
    size_t n = buf != NULL ? fread(buf, 1, ADMIN_HTTP_TLS_FILE_BYTES_MAX + 1, f) : 0;
    int rc = buf == NULL                                   ? -ENOMEM
             : ferror(f)                                   ? -EIO
             : n == 0 || n > ADMIN_HTTP_TLS_FILE_BYTES_MAX ? -NG_EBADARG
             : memchr(buf, '\0', n) != NULL                ? -NG_EBADARG
                                                           : 0;
    fclose(f);
    if (rc != 0) {
        free(buf);
        return rc;
    }
    buf[n] = '\0';
    *out = buf;
    return 0;
}

/* The certificate and key of an HTTPS listener, read into h. */
static int tls_load(struct admin_http *h, const struct admin_http_cfg *cfg)
{
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        log_error("admin_listen_tls: this libmicrohttpd was built without TLS (GnuTLS)");
        return -NG_EBADARG;
    }
    const char *path = cfg->tls_cert_file;
    int rc = tls_file_read(path, &h->tls_cert);
    if (rc == 0) {
        path = cfg->tls_key_file;
        rc = tls_file_read(path, &h->tls_key);
    }
    if (rc != 0) {
        log_error("admin_listen_tls: %s: %s", path,
                  rc == -NG_EBADARG ? "empty, too long or not PEM text" : err_str(rc));
    }
    return rc;
}

static void admin_http_free(struct admin_http *h)
{
    if (h->tls_key != NULL) {
        explicit_bzero(h->tls_key, strlen(h->tls_key));
    }
    free(h->tls_key);
    free(h->tls_cert);
    explicit_bzero(h->mac_key, sizeof(h->mac_key));
    free(h);
}

/* Allocates h and its gate for s, with the login memory's key and, for
 * HTTPS, the certificate and key read. */
static int admin_http_new(struct server *s, const struct admin_http_cfg *cfg,
                          struct admin_http **out)
{
    struct admin_http *h = calloc(1, sizeof(*h));
    struct gate *g = calloc(1, sizeof(*g));
    if (h == NULL || g == NULL) {
        free(h);
        free(g);
        return -ENOMEM;
    }
    atomic_init(&g->refs, 1);
    atomic_init(&g->running, false); /* admin_http_start() posts g->started */
    g->open = true;
    g->s = s;
    g->started = (struct loop_msg){.fn = gate_started, .arg = g};
    h->gate = g;
    atomic_init(&h->stopping, false);
    h->auth_required = cfg->auth_required;
    int rc = 0;
    if (RAND_bytes(h->mac_key, sizeof(h->mac_key)) != 1) {
        log_error("admin listener: no random bytes (OpenSSL)");
        rc = -NG_ESYSTEM;
    } else if (MHD_is_feature_supported(MHD_FEATURE_BASIC_AUTH) != MHD_YES) {
        log_error("admin listener: this libmicrohttpd was built without HTTP Basic logins");
        rc = -NG_EBADARG;
    } else if (cfg->tls_cert_file != NULL) {
        rc = tls_load(h, cfg);
    }
    if (rc != 0) {
        gate_put(g);
        admin_http_free(h);
        return rc;
    }
    *out = h;
    return 0;
}

/* Starts h's libmicrohttpd daemon on the listening socket fd (taken:
 * the daemon closes it when stopped, unless quiesced first). Returns 0,
 * or -EIO (fd still the caller's). */
static int daemon_start(struct admin_http *h, int fd)
{
    struct MHD_OptionItem tls[] = {
        {MHD_OPTION_HTTPS_MEM_CERT, 0, h->tls_cert},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, h->tls_key},
        {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)ADMIN_HTTP_TLS_PRIORITIES},
        {MHD_OPTION_END, 0, NULL},
    };
    /* epoll, never select(): the broker's descriptors pass FD_SETSIZE; ITC
     * for MHD_quiesce_daemon() (a certificate reload) */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC;
    flags |= h->tls_cert != NULL ? MHD_USE_TLS : 0;
    h->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, handle, h, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)ADMIN_HTTP_CONN_MAX, MHD_OPTION_CONNECTION_TIMEOUT, ADMIN_HTTP_IDLE_S,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_NOTIFY_CONNECTION, conn_notify, h,
        MHD_OPTION_ARRAY, h->tls_cert != NULL ? tls : &tls[3], MHD_OPTION_END);
    return h->daemon != NULL ? 0 : -EIO;
}

int admin_http_start(struct server *s, const struct admin_http_cfg *cfg, uint16_t *bound_port,
                     struct admin_http **out)
{
    ASSERT((cfg->tls_cert_file == NULL) == (cfg->tls_key_file == NULL));
    struct admin_http *h = NULL;
    int rc = admin_http_new(s, cfg, &h);
    if (rc != 0) {
        return rc;
    }
    int fd = -1;
    rc = listen_socket(cfg->host, cfg->port, &(struct listen_opts){0}, &fd, bound_port);
    rc = rc == 0 ? daemon_start(h, fd) : rc;
    if (rc != 0) {
        if (fd >= 0) {
            close(fd);
        }
        gate_put(h->gate);
        admin_http_free(h);
        return rc;
    }
    /* Asks wait for the loop once it runs (the broker's start is over). */
    atomic_fetch_add(&h->gate->refs, 1); /* the message's */
    loop_post(&s->loop, &h->gate->started);
    *out = h;
    return 0;
}

/* A listener like old with old's certificate and key, for when the new
 * ones do not start. NULL on no memory. */
static struct admin_http *admin_http_like(struct server *s, const struct admin_http *old)
{
    struct admin_http *h = NULL;
    struct admin_http_cfg plain = {.auth_required = old->auth_required};
    if (admin_http_new(s, &plain, &h) != 0) {
        return NULL;
    }
    atomic_store(&h->gate->running, true); /* a reload: the loop runs */
    h->tls_cert = strdup(old->tls_cert);
    h->tls_key = strdup(old->tls_key);
    if (h->tls_cert == NULL || h->tls_key == NULL) {
        gate_put(h->gate);
        admin_http_free(h);
        return NULL;
    }
    return h;
}

int admin_http_reload(struct server *s, const struct admin_http_cfg *cfg, struct admin_http **hp)
{
    struct admin_http *old = *hp;
    ASSERT(old != NULL && old->tls_cert != NULL && cfg->tls_cert_file != NULL);
    struct admin_http *h = NULL;
    int rc = admin_http_new(s, cfg, &h); /* reads the files: on a failure old goes on */
    if (rc != 0) {
        return rc;
    }
    atomic_store(&h->gate->running, true);           /* a reload: the loop runs */
    MHD_socket fd = MHD_quiesce_daemon(old->daemon); /* old accepts no more */
    if (fd == MHD_INVALID_SOCKET) {
        gate_put(h->gate);
        admin_http_free(h);
        return -EIO;
    }
    rc = daemon_start(h, fd);
    if (rc != 0) { /* GnuTLS refused them: the old ones again, on the same socket */
        log_error("admin listener: libmicrohttpd refused %s; keeping the certificate it had",
                  cfg->tls_cert_file);
        gate_put(h->gate);
        admin_http_free(h);
        h = admin_http_like(s, old);
        if (h == NULL || daemon_start(h, fd) != 0) {
            log_error("admin listener: cannot serve again; it is closed until a restart");
            close(fd);
            if (h != NULL) {
                gate_put(h->gate);
                admin_http_free(h);
            }
            h = NULL;
        }
        rc = -EIO;
    }
    admin_http_stop(old); /* its connections close; the socket is h's now */
    *hp = h;
    return rc;
}

void admin_http_stop(struct admin_http *h)
{
    if (h == NULL) {
        return;
    }
    atomic_store(&h->stopping, true);
    MHD_stop_daemon(h->daemon); /* joins its thread; closes the listener */
    h->gate->open = false;      /* asks still queued answer "stopping" */
    gate_put(h->gate);
    admin_http_free(h);
}
