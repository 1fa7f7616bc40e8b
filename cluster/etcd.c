/* etcd's v3 API over its HTTP gateway, with libcurl (cluster/etcd.h); the
 * JSON is cluster/etcd_wire.c's. */
#include "cluster/etcd.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "cluster/etcd_wire.h"

#define ETCD_URL_BYTES_MAX 256 /* an endpoint's URL, path added */
/* One endpoint's share of a call's time is timeout_ms / endpoints, but at
 * least this: enough for a loaded etcd to answer a healthy request. */
#define ETCD_ATTEMPT_MS_MIN 500
/* Between two rounds over every endpoint, doubling from the first. */
#define ETCD_BACKOFF_MS_FIRST 20
#define ETCD_BACKOFF_MS_MAX 500
/* TCP keep-alive on every connection: a member whose host vanished
 * without closing is noticed by the kernel (after idle + probes). */
#define ETCD_TCP_IDLE_S 2
#define ETCD_TCP_INTERVAL_S 1

/* ---- what both kinds of connection share ---- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

struct endpoints {
    char *url[ETCD_ENDPOINTS_MAX];
    uint32_t count;
    uint32_t current; /* tried first: the last one that worked */
    uint32_t timeout_ms;
};

static void endpoints_free(struct endpoints *ep)
{
    for (uint32_t i = 0; i < ep->count; i++) {
        free(ep->url[i]);
    }
    memset(ep, 0, sizeof(*ep));
}

static int endpoints_copy(struct endpoints *ep, const struct etcd_config *cfg)
{
    memset(ep, 0, sizeof(*ep));
    if (cfg->endpoint_count == 0 || cfg->endpoint_count > ETCD_ENDPOINTS_MAX ||
        cfg->timeout_ms == 0) {
        return -NG_EBADARG;
    }
    for (uint32_t i = 0; i < cfg->endpoint_count; i++) {
        const char *u = cfg->endpoints[i];
        if (u == NULL || *u == '\0' || strlen(u) >= ETCD_URL_BYTES_MAX - 32) {
            endpoints_free(ep);
            return -NG_EBADARG;
        }
        ep->url[i] = strdup(u);
        ep->count = i + 1;
        if (ep->url[i] == NULL) {
            endpoints_free(ep);
            return -ENOMEM;
        }
    }
    ep->timeout_ms = cfg->timeout_ms;
    return 0;
}

/* The time one endpoint gets out of left_ms. */
static int64_t attempt_ms(const struct endpoints *ep, int64_t left_ms)
{
    int64_t share = (int64_t)ep->timeout_ms / ep->count;
    share = share < ETCD_ATTEMPT_MS_MIN ? ETCD_ATTEMPT_MS_MIN : share;
    return share < left_ms ? share : left_ms;
}

/* Moves on to the next endpoint. The first failure of a run is logged
 * (why: curl's or etcd's words); the retries that follow are not. */
static void endpoint_failed(struct endpoints *ep, const char *what, const char *why, bool first)
{
    if (first) {
        log_warn("etcd: %s at %s failed (%s); trying %s", what, ep->url[ep->current], why,
                 ep->url[(ep->current + 1) % ep->count]);
    }
    ep->current = (ep->current + 1) % ep->count;
}

/* Bytes received, up to max: beyond it the transfer is failed. */
struct buf {
    char *p;
    size_t len;
    size_t cap;
    size_t max;
    bool overflow;
};

static bool buf_append(struct buf *b, const char *data, size_t n)
{
    if (n > b->max - b->len) {
        b->overflow = true;
        return false;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap > 0 ? b->cap : 4096;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            return false;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return true;
}

/* Headers of every request: JSON, no "Expect: 100-continue" round trip,
 * and gRPC metadata "hasleader" (the gateway forwards Grpc-Metadata-*),
 * which makes a member without a leader refuse at once (and end a watch)
 * instead of waiting or serving a stale view. */
static struct curl_slist *make_headers(void)
{
    static const char *const lines[] = {"Content-Type: application/json",
                                        "Expect:", "Grpc-Metadata-hasleader: true"};
    struct curl_slist *list = NULL;
    for (size_t i = 0; i < ARRAY_LEN(lines); i++) {
        struct curl_slist *more = curl_slist_append(list, lines[i]);
        if (more == NULL) {
            curl_slist_free_all(list);
            return NULL;
        }
        list = more;
    }
    return list;
}

static void set_common(CURL *h, struct curl_slist *headers)
{
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, (long)ETCD_TCP_IDLE_S);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, (long)ETCD_TCP_INTERVAL_S);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---- calls ---- */

struct etcd {
    CURL *h;
    struct curl_slist *headers;
    struct endpoints ep;
    struct buf answer;
    char why[CURL_ERROR_SIZE]; /* the last try's failure, for the log */
};

static size_t answer_write(char *data, size_t size, size_t n, void *arg)
{
    struct etcd *e = arg;
    return buf_append(&e->answer, data, size * n) ? size * n : 0;
}

int etcd_open(struct etcd **out, const struct etcd_config *cfg)
{
    *out = NULL;
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK) {
        return -ENOMEM;
    }
    struct etcd *e = calloc(1, sizeof(*e));
    if (e == NULL) {
        return -ENOMEM;
    }
    int rc = endpoints_copy(&e->ep, cfg);
    if (rc != 0) {
        free(e);
        return rc;
    }
    e->answer.max = ETCD_WIRE_ANSWER_BYTES_MAX;
    e->h = curl_easy_init();
    e->headers = make_headers();
    if (e->h == NULL || e->headers == NULL) {
        etcd_close(e);
        return -ENOMEM;
    }
    set_common(e->h, e->headers);
    curl_easy_setopt(e->h, CURLOPT_ERRORBUFFER, e->why);
    curl_easy_setopt(e->h, CURLOPT_WRITEFUNCTION, answer_write);
    curl_easy_setopt(e->h, CURLOPT_WRITEDATA, e);
    *out = e;
    return 0;
}

void etcd_close(struct etcd *e)
{
    if (e == NULL) {
        return;
    }
    if (e->h != NULL) {
        curl_easy_cleanup(e->h);
    }
    curl_slist_free_all(e->headers);
    endpoints_free(&e->ep);
    free(e->answer.p);
    free(e);
}

/* Judges an answer of HTTP 200 that may still be an error (a stream's):
 * 0, or the error and whether another endpoint may do better. */
typedef int answer_check_fn(const char *body, size_t len, bool *retry);

/* One POST to the current endpoint within timeout_ms. 0 with the answer
 * in e->answer; otherwise the error, *retry when another endpoint (or a
 * later try) may do better. */
static int attempt(struct etcd *e, const char *path, const char *body, int64_t timeout_ms,
                   answer_check_fn *check, bool *retry)
{
    char url[ETCD_URL_BYTES_MAX];
    snprintf(url, sizeof(url), "%s%s", e->ep.url[e->ep.current], path);
    e->answer.len = 0;
    e->answer.overflow = false;
    e->why[0] = '\0';
    curl_easy_setopt(e->h, CURLOPT_URL, url);
    curl_easy_setopt(e->h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    curl_easy_setopt(e->h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    CURLcode c = curl_easy_perform(e->h);
    *retry = false;
    if (e->answer.overflow) {
        return -NG_ETOOBIG;
    }
    if (c == CURLE_WRITE_ERROR || c == CURLE_OUT_OF_MEMORY) {
        return -ENOMEM;
    }
    if (c != CURLE_OK) { /* refused, reset, timed out: a member down or stuck */
        if (e->why[0] == '\0') {
            snprintf(e->why, sizeof(e->why), "%s", curl_easy_strerror(c));
        }
        *retry = true;
        return -NG_ECLUSTER_UNAVAILABLE;
    }
    long status = 0;
    curl_easy_getinfo(e->h, CURLINFO_RESPONSE_CODE, &status);
    int rc = 0;
    if (status != 200) {
        rc = etcd_wire_error(e->answer.p, e->answer.len, status, retry);
    } else if (check != NULL) {
        rc = check(e->answer.p, e->answer.len, retry);
    }
    if (rc == 0) {
        return 0;
    }
    snprintf(e->why, sizeof(e->why), "HTTP %ld: %.200s", status,
             e->answer.len > 0 ? e->answer.p : "");
    return rc;
}

/* POSTs body to path, trying each endpoint in turn until one answers or
 * the client's timeout passes. A try that timed out may still have been
 * applied: a retried transaction then fails its compares, so writers
 * re-read and decide again (docs/cluster.md section 1). */
static int call_checked(struct etcd *e, const char *path, const char *body, answer_check_fn *check)
{
    int64_t deadline = clock_mono_ms() + e->ep.timeout_ms;
    int64_t backoff_ms = ETCD_BACKOFF_MS_FIRST;
    for (uint32_t tries = 1;; tries++) {
        int64_t left = deadline - clock_mono_ms();
        if (left <= 0) {
            return -NG_ECLUSTER_UNAVAILABLE;
        }
        bool retry;
        int rc = attempt(e, path, body, attempt_ms(&e->ep, left), check, &retry);
        if (!retry) {
            return rc;
        }
        endpoint_failed(&e->ep, path, e->why, tries == 1);
        if (tries % e->ep.count == 0) { /* every endpoint failed: wait a little */
            left = deadline - clock_mono_ms();
            sleep_ms(backoff_ms < left ? backoff_ms : (left > 0 ? left : 0));
            backoff_ms =
                backoff_ms * 2 < ETCD_BACKOFF_MS_MAX ? backoff_ms * 2 : ETCD_BACKOFF_MS_MAX;
        }
    }
}

/* call_checked() with a body an encoder made (taken), or the encoder's
 * error. */
static int call_with(struct etcd *e, const char *path, int encoded, char *body,
                     answer_check_fn *check)
{
    int rc = encoded == 0 ? call_checked(e, path, body, check) : encoded;
    free(body);
    return rc;
}

int etcd_range(struct etcd *e, const char *key, const char *range_end, struct etcd_kvs *out)
{
    memset(out, 0, sizeof(*out));
    char *body = NULL;
    int rc = etcd_wire_range_request(key, range_end, ETCD_RANGE_KVS_MAX, &body);
    rc = call_with(e, "/v3/kv/range", rc, body, NULL);
    return rc == 0 ? etcd_wire_range_answer(e->answer.p, e->answer.len, out) : rc;
}

static bool has_get(const struct etcd_op *ops, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (ops[i].kind == ETCD_OP_GET) {
            return true;
        }
    }
    return false;
}

int etcd_txn(struct etcd *e, const struct etcd_txn *t, bool *succeeded, int64_t *revision_out,
             struct etcd_kvs *gets_out)
{
    ASSERT(gets_out != NULL ||
           (!has_get(t->success, t->success_count) && !has_get(t->failure, t->failure_count)));
    *succeeded = false;
    if (gets_out != NULL) {
        memset(gets_out, 0, sizeof(*gets_out));
    }
    char *body = NULL;
    int rc = etcd_wire_txn_request(t, &body);
    rc = call_with(e, "/v3/kv/txn", rc, body, NULL);
    int64_t revision = 0;
    rc = rc == 0 ? etcd_wire_txn_answer(e->answer.p, e->answer.len, succeeded, &revision, gets_out)
                 : rc;
    if (revision_out != NULL) {
        *revision_out = revision;
    }
    return rc;
}

int etcd_lease_grant(struct etcd *e, int64_t ttl_s, int64_t *lease_out)
{
    *lease_out = 0;
    if (ttl_s <= 0) {
        return -NG_EBADARG;
    }
    char *body = NULL;
    int rc = etcd_wire_lease_grant_request(ttl_s, &body);
    rc = call_with(e, "/v3/lease/grant", rc, body, NULL);
    int64_t ttl_granted;
    return rc == 0
               ? etcd_wire_lease_grant_answer(e->answer.p, e->answer.len, lease_out, &ttl_granted)
               : rc;
}

/* The gateway serves keep-alive as a stream, so a member's error (no
 * leader) comes as an answer of HTTP 200: judged per try, so the call
 * moves on to the next endpoint as for any other error. */
static int keepalive_check(const char *body, size_t len, bool *retry)
{
    int64_t ttl;
    int rc = etcd_wire_keepalive_answer(body, len, &ttl, retry);
    return *retry ? rc : 0; /* a lease gone is the caller's answer */
}

int etcd_lease_keepalive(struct etcd *e, int64_t lease, int64_t *ttl_out)
{
    int64_t ttl = 0;
    char *body = NULL;
    int rc = etcd_wire_lease_id_request(lease, &body);
    rc = call_with(e, "/v3/lease/keepalive", rc, body, keepalive_check);
    bool retry;
    rc = rc == 0 ? etcd_wire_keepalive_answer(e->answer.p, e->answer.len, &ttl, &retry) : rc;
    if (ttl_out != NULL) {
        *ttl_out = rc == 0 ? ttl : 0;
    }
    return rc;
}

int etcd_lease_revoke(struct etcd *e, int64_t lease)
{
    char *body = NULL;
    int rc = etcd_wire_lease_id_request(lease, &body);
    rc = call_with(e, "/v3/lease/revoke", rc, body, NULL);
    return rc == 0 ? etcd_wire_header_answer(e->answer.p, e->answer.len) : rc;
}

/* ---- watches ---- */

struct etcd_watch {
    CURLM *multi;
    CURL *h; /* the current stream; NULL between streams */
    struct curl_slist *headers;
    struct endpoints ep;
    char *key;
    char *range_end;  /* NULL: the one key */
    int64_t next_rev; /* where the next stream starts: past every revision taken */
    struct buf in;    /* the stream's bytes not parsed yet: part of one message */
    struct etcd_wire_scan scan;
    long http_status;           /* the current stream's, once known */
    struct etcd_events pending; /* a fragmented response's last revision, so far */
    struct etcd_events ready;   /* whole revisions not handed on yet */
    bool paused;                /* the stream waits for ready to empty */
    bool created;               /* etcd accepted the current stream */
    int stream_err;             /* why the current stream ends */
    bool stream_retry;          /* ... and whether another endpoint may do */
    int err;                    /* sticky: compacted, bad bytes */
    int64_t stream_start_ms;
    int64_t down_since_ms; /* since when no stream was created; -1 while one is */
    int64_t retry_at_ms;   /* no new stream before */
    int64_t backoff_ms;
    uint32_t failures; /* streams in a row that ended in failure */
    atomic_bool cancelled;
    char why[CURL_ERROR_SIZE]; /* curl's words on the last stream's end */
};

/* Moves the events of whole revisions from pending to ready: all of them
 * at the end of a response, and while a fragmented response goes on, those
 * older than its last event's revision (events come in revision order, so
 * those revisions are complete). pending then holds at most one revision
 * and one message; the stream resumes after the last revision moved. */
static int take_revisions(struct etcd_watch *w, bool response_ends)
{
    struct etcd_events *p = &w->pending;
    size_t n = p->count;
    while (!response_ends && n > 0 &&
           p->events[n - 1].kv.mod_revision == p->events[p->count - 1].kv.mod_revision) {
        n--;
    }
    if (n == 0) {
        return 0;
    }
    struct etcd_event *grown = realloc(w->ready.events, (w->ready.count + n) * sizeof(*grown));
    if (grown == NULL) {
        return -ENOMEM;
    }
    memcpy(grown + w->ready.count, p->events, n * sizeof(*grown));
    w->ready.events = grown;
    w->ready.count += n;
    w->next_rev = p->events[n - 1].kv.mod_revision + 1;
    memmove(p->events, p->events + n, (p->count - n) * sizeof(*grown));
    p->count -= n;
    return 0;
}

/* One whole message of the stream. false ends the stream (w->stream_err
 * or w->err says why). */
static bool take_message(struct etcd_watch *w, const char *obj, size_t len)
{
    struct etcd_wire_watch_msg msg;
    int rc = etcd_wire_watch_answer(obj, len, &msg, &w->pending);
    if (rc != 0) {
        w->err = rc;
        return false;
    }
    if (msg.err != 0) {
        w->stream_err = msg.err;
        w->stream_retry = msg.retry;
        return false;
    }
    if (msg.canceled && msg.compact_revision > 0) {
        w->err = -NG_EOFFSET_RANGE;
        return false;
    }
    if (msg.canceled) { /* the member lost its leader, or is going away */
        w->stream_err = -NG_ECLUSTER_UNAVAILABLE;
        w->stream_retry = true;
        return false;
    }
    if (msg.created) {
        w->created = true;
        w->down_since_ms = -1;
        w->failures = 0;
        w->backoff_ms = ETCD_BACKOFF_MS_FIRST;
    }
    rc = take_revisions(w, !msg.fragment);
    if (rc != 0) {
        w->err = rc;
        return false;
    }
    return true;
}

/* Parses every whole message in w->in and keeps the rest. */
static bool take_messages(struct etcd_watch *w)
{
    size_t start = 0;
    bool ok = true;
    while (ok) {
        size_t end;
        int rc = etcd_wire_scan(&w->scan, w->in.p + start, w->in.len - start, &end);
        if (rc < 0) {
            w->err = rc;
            ok = false;
        } else if (rc == 0) {
            break;
        } else {
            ok = take_message(w, w->in.p + start, end);
            start += end;
            memset(&w->scan, 0, sizeof(w->scan));
        }
    }
    memmove(w->in.p, w->in.p + start, w->in.len - start);
    w->in.len -= start;
    return ok;
}

static size_t stream_write(char *data, size_t size, size_t n, void *arg)
{
    struct etcd_watch *w = arg;
    if (w->ready.count >= ETCD_WATCH_READY_MAX) {
        w->paused = true;
        return CURL_WRITEFUNC_PAUSE; /* etcd_watch_next() resumes it */
    }
    if (w->http_status == 0) {
        curl_easy_getinfo(w->h, CURLINFO_RESPONSE_CODE, &w->http_status);
    }
    if (!buf_append(&w->in, data, size * n)) {
        w->err = w->in.overflow ? -NG_ETOOBIG : -ENOMEM;
        return 0;
    }
    /* An error answer is read whole, then judged when the stream ends. */
    return w->http_status != 200 || take_messages(w) ? size * n : 0;
}

static int start_stream(struct etcd_watch *w)
{
    char url[ETCD_URL_BYTES_MAX];
    snprintf(url, sizeof(url), "%s/v3/watch", w->ep.url[w->ep.current]);
    char *body = NULL;
    int rc = etcd_wire_watch_request(w->key, w->range_end, w->next_rev, &body);
    if (rc != 0) {
        return rc;
    }
    w->h = curl_easy_init();
    if (w->h == NULL) {
        free(body);
        return -ENOMEM;
    }
    set_common(w->h, w->headers);
    curl_easy_setopt(w->h, CURLOPT_URL, url);
    curl_easy_setopt(w->h, CURLOPT_COPYPOSTFIELDS, body);
    curl_easy_setopt(w->h, CURLOPT_WRITEFUNCTION, stream_write);
    curl_easy_setopt(w->h, CURLOPT_WRITEDATA, w);
    curl_easy_setopt(w->h, CURLOPT_ERRORBUFFER, w->why);
    w->why[0] = '\0';
    curl_easy_setopt(w->h, CURLOPT_CONNECTTIMEOUT_MS, (long)attempt_ms(&w->ep, w->ep.timeout_ms));
    free(body);
    w->in.len = 0;
    memset(&w->scan, 0, sizeof(w->scan));
    w->http_status = 0;
    w->created = false;
    w->paused = false;
    w->stream_err = 0;
    w->stream_retry = true; /* a stream that just ends: the member went away */
    w->stream_start_ms = clock_mono_ms();
    return curl_multi_add_handle(w->multi, w->h) == CURLM_OK ? 0 : -ENOMEM;
}

/* Ends the current stream; unless the watch failed for good, the next
 * starts on the next endpoint (at once, or after a backoff once every
 * endpoint failed). */
static void end_stream(struct etcd_watch *w)
{
    curl_multi_remove_handle(w->multi, w->h);
    curl_easy_cleanup(w->h);
    w->h = NULL;
    etcd_events_free(&w->pending); /* an unfinished revision comes again */
    if (w->err != 0) {
        return;
    }
    int rc = w->stream_err != 0 ? w->stream_err : -NG_ECLUSTER_UNAVAILABLE;
    if (w->http_status != 0 && w->http_status != 200) {
        rc = etcd_wire_error(w->in.p, w->in.len, w->http_status, &w->stream_retry);
    }
    if (!w->stream_retry) {
        w->err = rc;
        return;
    }
    int64_t now = clock_mono_ms();
    if (w->created) {
        w->down_since_ms = now;
    }
    endpoint_failed(&w->ep, "watch", w->stream_err == 0 && w->why[0] != '\0' ? w->why : err_str(rc),
                    w->failures == 0);
    w->retry_at_ms = now;
    if (++w->failures % w->ep.count == 0) {
        w->retry_at_ms += w->backoff_ms;
        w->backoff_ms =
            w->backoff_ms * 2 < ETCD_BACKOFF_MS_MAX ? w->backoff_ms * 2 : ETCD_BACKOFF_MS_MAX;
    }
}

int etcd_watch_open(struct etcd_watch **out, const struct etcd_config *cfg, const char *key,
                    const char *range_end, int64_t start_revision)
{
    *out = NULL;
    char *probe = NULL;
    int rc = start_revision > 0 ? etcd_wire_watch_request(key, range_end, start_revision, &probe)
                                : -NG_EBADARG;
    free(probe);
    if (rc != 0) {
        return rc;
    }
    pthread_once(&curl_once, curl_init);
    struct etcd_watch *w = calloc(1, sizeof(*w));
    if (w == NULL || curl_init_rc != CURLE_OK) {
        free(w);
        return -ENOMEM;
    }
    rc = endpoints_copy(&w->ep, cfg);
    if (rc != 0) {
        free(w);
        return rc;
    }
    atomic_init(&w->cancelled, false);
    w->next_rev = start_revision;
    w->in.max = ETCD_WIRE_STREAM_BYTES_MAX;
    w->down_since_ms = clock_mono_ms();
    w->retry_at_ms = w->down_since_ms;
    w->backoff_ms = ETCD_BACKOFF_MS_FIRST;
    w->key = strdup(key);
    w->range_end = range_end != NULL ? strdup(range_end) : NULL;
    w->multi = curl_multi_init();
    w->headers = make_headers();
    if (w->key == NULL || (range_end != NULL && w->range_end == NULL) || w->multi == NULL ||
        w->headers == NULL) {
        etcd_watch_close(w);
        return -ENOMEM;
    }
    *out = w;
    return 0;
}

/* Runs the transfers and ends a stream that finished or that etcd did not
 * accept within one endpoint's share of the timeout. */
static int pump(struct etcd_watch *w)
{
    int running;
    CURLMcode mc = curl_multi_perform(w->multi, &running);
    if (mc != CURLM_OK) {
        return mc == CURLM_OUT_OF_MEMORY ? -ENOMEM : -NG_EPROTO;
    }
    int queued;
    CURLMsg *m;
    while ((m = curl_multi_info_read(w->multi, &queued)) != NULL) {
        if (m->msg == CURLMSG_DONE && m->easy_handle == w->h) {
            end_stream(w);
        }
    }
    if (w->h != NULL && !w->created &&
        clock_mono_ms() - w->stream_start_ms >= attempt_ms(&w->ep, w->ep.timeout_ms)) {
        end_stream(w); /* connected, but no answer: a stuck member */
    }
    return 0;
}

/* How long to poll: until the deadline, the next stream's start or a
 * pending stream's give-up time, whichever comes first. */
static int64_t poll_ms(const struct etcd_watch *w, int64_t now, int64_t deadline)
{
    int64_t until = deadline;
    if (w->h == NULL && w->retry_at_ms < until) {
        until = w->retry_at_ms;
    }
    int64_t give_up = w->stream_start_ms + attempt_ms(&w->ep, w->ep.timeout_ms);
    if (w->h != NULL && !w->created && give_up < until) {
        until = give_up;
    }
    return until > now ? until - now : 0;
}

int etcd_watch_next(struct etcd_watch *w, uint32_t wait_ms, struct etcd_events *ev)
{
    memset(ev, 0, sizeof(*ev));
    int64_t deadline = clock_mono_ms() + wait_ms;
    if (w->paused && w->h != NULL) {
        w->paused = false;
        curl_easy_pause(w->h, CURLPAUSE_CONT); /* may deliver at once */
    }
    for (;;) {
        if (atomic_load(&w->cancelled)) {
            return -NG_ECLOSED;
        }
        if (w->ready.count > 0) {
            *ev = w->ready;
            memset(&w->ready, 0, sizeof(w->ready));
            ev->revision = w->next_rev;
            return 0;
        }
        if (w->err != 0) {
            return w->err;
        }
        int64_t now = clock_mono_ms();
        int rc = w->h == NULL && now >= w->retry_at_ms ? start_stream(w) : 0;
        rc = rc == 0 ? pump(w) : rc;
        if (rc != 0) {
            return rc;
        }
        if (w->ready.count > 0 || w->err != 0) {
            continue;
        }
        now = clock_mono_ms();
        if (now >= deadline) {
            ev->revision = w->next_rev;
            bool down =
                w->down_since_ms >= 0 && now - w->down_since_ms >= (int64_t)w->ep.timeout_ms;
            return down ? -NG_ECLUSTER_UNAVAILABLE : 0;
        }
        int64_t ms = poll_ms(w, now, deadline);
        curl_multi_poll(w->multi, NULL, 0, (int)(ms < INT32_MAX ? ms : INT32_MAX), NULL);
    }
}

void etcd_watch_cancel(struct etcd_watch *w)
{
    atomic_store(&w->cancelled, true);
    curl_multi_wakeup(w->multi);
}

void etcd_watch_close(struct etcd_watch *w)
{
    if (w == NULL) {
        return;
    }
    if (w->h != NULL) {
        curl_multi_remove_handle(w->multi, w->h);
        curl_easy_cleanup(w->h);
    }
    if (w->multi != NULL) {
        curl_multi_cleanup(w->multi);
    }
    curl_slist_free_all(w->headers);
    endpoints_free(&w->ep);
    etcd_events_free(&w->pending);
    etcd_events_free(&w->ready);
    free(w->in.p);
    free(w->key);
    free(w->range_end);
    free(w);
}
