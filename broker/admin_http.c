/*
 * broker/admin_http.c — the HTTP admin listener (broker/admin_http.h) on
 * libmicrohttpd.
 */
#include "broker/admin_http.h"

#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "base/log.h"
#include "broker/console_api.h"
#include "broker/console_assets.h"
#include "broker/metrics.h"
#include "broker/server.h"
#include "net/listen.h"

/* An idle HTTP connection is closed after this long. */
#define ADMIN_HTTP_IDLE_S 30u
/* How often a request waiting for the loop looks whether the listener is
 * stopping (then it gives up at once). */
#define ADMIN_HTTP_WAIT_SLICE_MS 50

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
};

/* ---- asking the loop ---- */

enum ask_kind { ASK_HEALTH, ASK_READY, ASK_METRICS, ASK_API };

/* One HTTP request's question to the loop. Two references: the HTTP
 * thread's and the loop's (its message); the last one frees it. */
struct ask {
    struct loop_msg msg;
    struct gate *gate;
    enum ask_kind kind;
    char path[64];              /* ASK_API: "/api/..." */
    struct console_query query; /* ASK_API: /api/records's */
    bool has_query;
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

/* On the loop. */
static void ask_run(struct loop_msg *m, void *arg)
{
    (void)m;
    struct ask *a = arg;
    struct server *s = a->gate->open ? a->gate->s : NULL;
    if (s == NULL) {
        ask_text(a, MHD_HTTP_SERVICE_UNAVAILABLE, "stopping\n");
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

static void mhd_log(void *cls, const char *fmt, va_list ap)
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

int admin_http_start(struct server *s, const char *host, uint16_t port, uint16_t *bound_port,
                     struct admin_http **out)
{
    int fd = -1;
    int rc = listen_socket(host, port, &(struct listen_opts){0}, &fd, bound_port);
    if (rc != 0) {
        return rc;
    }
    struct admin_http *h = calloc(1, sizeof(*h));
    struct gate *g = calloc(1, sizeof(*g));
    if (h == NULL || g == NULL) {
        free(h);
        free(g);
        close(fd);
        return -ENOMEM;
    }
    atomic_init(&g->refs, 2); /* the listener's and the start message's */
    atomic_init(&g->running, false);
    g->open = true;
    g->s = s;
    g->started = (struct loop_msg){.fn = gate_started, .arg = g};
    h->gate = g;
    atomic_init(&h->stopping, false);
    /* epoll, never select(): the broker's descriptors pass FD_SETSIZE */
    h->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, 0, NULL, NULL,
                                 handle, h, MHD_OPTION_LISTEN_SOCKET, fd,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned)ADMIN_HTTP_CONN_MAX,
                                 MHD_OPTION_CONNECTION_TIMEOUT, ADMIN_HTTP_IDLE_S,
                                 MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_END);
    if (h->daemon == NULL) {
        close(fd);
        gate_put(g);
        gate_put(g); /* never posted */
        free(h);
        return -EIO;
    }
    loop_post(&s->loop, &g->started);
    *out = h;
    return 0;
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
    free(h);
}
