/*
 * bench/nats_bench.c — nats-bench: the produce and replay of nagare-bench
 * against NATS JetStream, with Debian's libnats, for bench/compare.sh.
 *
 *   nats-bench produce  K publishers (threads, one connection each) publish
 *                       N records of S bytes with js_PublishAsync, round-robin
 *                       over P streams (file storage, one subject each), at
 *                       most --max-pending unacknowledged per publisher;
 *                       latency from the publish to its PubAck.
 *   nats-bench consume  fills the streams to N records when they hold fewer,
 *                       then K consumers (consumer k reads streams k, k+K, ...)
 *                       replay them from the first sequence: pull consumers
 *                       fetching batches (--mode pull, AckNone), or ordered
 *                       push consumers (--mode ordered).
 *
 * It mirrors nagare-bench on purpose: the same record sizes and values
 * (pseudo-random, with the send time in the first 8 bytes), the same
 * untimed warm-up (N MiB into scratch streams, deleted), the same figures
 * (records/s, MB/s of values, latency percentiles from bench/hist.h, the
 * server's CPU and RSS from /proc with --server-pid) and the same JSON
 * shape, so compare.sh reads both alike. Streams it creates are deleted at
 * the end. The server is started and stopped by the caller.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench/args.h"
#include "bench/hist.h"
#include "bench/sample.h"

#define NB_THREADS_MAX 64
#define NB_STREAMS_MAX 256
#define NB_STAMP_BYTES 8
/* JetStream API calls (stream create / delete / info) wait this long. */
#define NB_API_WAIT_MS 30000
/* Waiting for the last PubAcks, and for a fetch: bounded so a dead server
 * ends the run. */
#define NB_COMPLETE_MS 120000
#define NB_FETCH_WAIT_MS 5000
/* The ordered consumer's client-side queue: large, so no message is
 * dropped as from a slow consumer (which would restart the consumer). */
#define NB_PENDING_MSGS (1 << 20)
#define NB_PENDING_BYTES (1LL << 30)
/* The unacknowledged publishes per publisher by default: the same bytes a
 * nagare producer may hold (its buffer_bytes_max, 64 MiB), as messages. */
#define NB_PENDING_BYTES_DEFAULT (64 << 20)

enum nb_cmd { NB_PRODUCE, NB_CONSUME };

struct nb_opts {
    enum nb_cmd cmd;
    const char *url;
    int server_pid;
    uint32_t streams;
    uint64_t records;
    uint32_t record_bytes;
    uint32_t threads;    /* publishers or consumers */
    int64_t max_pending; /* 0: from NB_PENDING_BYTES_DEFAULT */
    bool ordered;        /* consume: ordered push consumers, else pull */
    int fetch_batch;
    uint64_t warmup_mib;
    bool json;
    bool quiet;
};

struct nb_worker {
    pthread_t thread;
    struct nb_run *run;
    uint32_t index;
    natsConnection *nc;
    jsCtx *js;
    uint64_t target;
    _Atomic uint64_t done; /* acked or consumed */
    _Atomic uint64_t failed;
    struct hist *lat;
    pthread_mutex_t lat_mu; /* the ack handler runs on libnats' thread */
    uint8_t *value;
    natsStatus err;
    double cpu_s;
    uint64_t end_ns;
};

struct nb_run {
    const struct nb_opts *o;
    const char *prefix; /* stream names: PREFIX<i>, subjects prefix.<i> */
    bool producing;
    uint64_t consume_goal;
    _Atomic uint64_t consumed;
    uint64_t go_ns;
    uint32_t count;
    struct nb_worker w[NB_THREADS_MAX];
};

struct nb_result {
    const char *name;
    uint64_t records;
    uint64_t errors;
    double seconds;
    struct hist *lat;
    double thread_max_pct;
    struct sample_delta self;
    double server_pct;
    double server_thread_max_pct;
    char server_thread[16];
    int64_t server_rss_max_kib;
    int64_t server_hwm_kib;
};

static void stream_name(char *buf, size_t cap, const char *prefix, uint32_t i, bool subject)
{
    int n = snprintf(buf, cap, subject ? "%s.%u" : "%s%u", prefix, i);
    ASSERT(n > 0 && (size_t)n < cap);
}

static void report_status(const char *what, natsStatus s, jsErrCode jerr)
{
    fprintf(stderr, "nats-bench: %s: %s (%s, JetStream error %d)\n", what, natsStatus_GetText(s),
            nats_GetLastError(NULL) != NULL ? nats_GetLastError(NULL) : "-", (int)jerr);
}

/* ---- streams ---- */

/* Deletes PREFIX0..PREFIX(n-1) where they exist, then creates them afresh:
 * file storage, one replica, one subject each. */
static natsStatus streams_reset(jsCtx *js, const char *prefix, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        char name[64];
        char subj[64];
        stream_name(name, sizeof(name), prefix, i, false);
        stream_name(subj, sizeof(subj), prefix, i, true);
        jsErrCode jerr = 0;
        natsStatus s = js_DeleteStream(js, name, NULL, &jerr);
        if (s != NATS_OK && jerr != JSStreamNotFoundErr) {
            report_status("delete stream", s, jerr);
            return s;
        }
        jsStreamConfig cfg;
        jsStreamConfig_Init(&cfg);
        const char *subjects[1] = {subj};
        cfg.Name = name;
        cfg.Subjects = subjects;
        cfg.SubjectsLen = 1;
        cfg.Storage = js_FileStorage;
        cfg.Replicas = 1;
        jsStreamInfo *si = NULL;
        s = js_AddStream(&si, js, &cfg, NULL, &jerr);
        if (s != NATS_OK) {
            report_status("add stream", s, jerr);
            return s;
        }
        jsStreamInfo_Destroy(si);
    }
    return NATS_OK;
}

static void streams_delete(jsCtx *js, const char *prefix, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        char name[64];
        stream_name(name, sizeof(name), prefix, i, false);
        jsErrCode jerr = 0;
        natsStatus s = js_DeleteStream(js, name, NULL, &jerr);
        if (s != NATS_OK && jerr != JSStreamNotFoundErr) {
            report_status("delete stream", s, jerr);
        }
    }
}

/* Messages held by stream i, or -1. */
static int64_t stream_msgs(jsCtx *js, const char *prefix, uint32_t i)
{
    char name[64];
    stream_name(name, sizeof(name), prefix, i, false);
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(&si, js, name, NULL, &jerr);
    if (s != NATS_OK) {
        report_status("stream info", s, jerr);
        return -1;
    }
    int64_t msgs = (int64_t)si->State.Msgs;
    jsStreamInfo_Destroy(si);
    return msgs;
}

static natsStatus connect_js(const char *url, natsConnection **nc, jsCtx **js, jsOptions *jo)
{
    natsStatus s = natsConnection_ConnectTo(nc, url);
    if (s == NATS_OK) {
        s = natsConnection_JetStream(js, *nc, jo);
    }
    if (s != NATS_OK) {
        report_status("connect", s, 0);
    }
    return s;
}

/* ---- publishers ---- */

static void on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    (void)js;
    struct nb_worker *w = closure;
    if (pae != NULL || pa == NULL) {
        atomic_fetch_add(&w->failed, 1);
    } else {
        uint64_t at = 0;
        if (natsMsg_GetDataLength(msg) >= NB_STAMP_BYTES) {
            memcpy(&at, natsMsg_GetData(msg), NB_STAMP_BYTES);
        }
        uint64_t now = clock_mono_ns();
        pthread_mutex_lock(&w->lat_mu);
        hist_record(w->lat, now > at ? now - at : 0);
        pthread_mutex_unlock(&w->lat_mu);
        atomic_fetch_add_explicit(&w->done, 1, memory_order_relaxed);
    }
    natsMsg_Destroy(msg);
}

static natsStatus pub_setup(struct nb_worker *w)
{
    const struct nb_opts *o = w->run->o;
    jsOptions jo;
    jsOptions_Init(&jo);
    int64_t pending = o->max_pending;
    if (pending == 0) {
        pending = NB_PENDING_BYTES_DEFAULT / (o->record_bytes > 0 ? o->record_bytes : 1);
        pending = pending < 256 ? 256 : pending > (1 << 20) ? (1 << 20) : pending;
    }
    jo.PublishAsync.MaxPending = pending;
    jo.PublishAsync.AckHandler = on_ack;
    jo.PublishAsync.AckHandlerClosure = w;
    jo.PublishAsync.StallWait = NB_COMPLETE_MS; /* block on a full window, do not fail */
    jo.Wait = NB_API_WAIT_MS;
    return connect_js(o->url, &w->nc, &w->js, &jo);
}

static natsStatus pub_run(struct nb_worker *w)
{
    const struct nb_opts *o = w->run->o;
    char subjects[NB_STREAMS_MAX][64];
    for (uint32_t i = 0; i < o->streams; i++) {
        stream_name(subjects[i], sizeof(subjects[i]), w->run->prefix, i, true);
    }
    natsStatus s = NATS_OK;
    for (uint64_t i = 0; i < w->target && s == NATS_OK; i++) {
        uint64_t at = clock_mono_ns();
        memcpy(w->value, &at, NB_STAMP_BYTES);
        uint32_t k = (uint32_t)((i * o->threads + w->index) % o->streams);
        s = js_PublishAsync(w->js, subjects[k], w->value, (int)o->record_bytes, NULL);
    }
    if (s == NATS_OK) {
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MaxWait = NB_COMPLETE_MS;
        s = js_PublishAsyncComplete(w->js, &po);
    }
    if (s != NATS_OK) {
        report_status("publish", s, 0);
    }
    return s;
}

/* ---- consumers ---- */

static natsStatus cons_stream(struct nb_worker *w, uint32_t stream, uint64_t goal)
{
    const struct nb_opts *o = w->run->o;
    char name[64];
    char subj[64];
    stream_name(name, sizeof(name), w->run->prefix, stream, false);
    stream_name(subj, sizeof(subj), w->run->prefix, stream, true);
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = name;
    so.Config.DeliverPolicy = js_DeliverAll;
    natsSubscription *sub = NULL;
    jsErrCode jerr = 0;
    natsStatus s;
    if (o->ordered) {
        so.Ordered = true;
        s = js_SubscribeSync(&sub, w->js, subj, NULL, &so, &jerr);
        s = s == NATS_OK
                ? natsSubscription_SetPendingLimits(sub, NB_PENDING_MSGS, (int)NB_PENDING_BYTES)
                : s;
    } else {
        so.Config.AckPolicy = js_AckNone;
        s = js_PullSubscribe(&sub, w->js, subj, NULL, NULL, &so, &jerr);
    }
    uint64_t n = 0;
    while (s == NATS_OK && n < goal) {
        if (o->ordered) {
            natsMsg *m = NULL;
            s = natsSubscription_NextMsg(&m, sub, NB_FETCH_WAIT_MS);
            n += s == NATS_OK ? 1 : 0;
            natsMsg_Destroy(m);
        } else {
            natsMsgList list = {0};
            jsFetchRequest fr;
            jsFetchRequest_Init(&fr);
            /* no more than is left: a fetch for more waits out its expiry */
            uint64_t left = goal - n;
            fr.Batch = left < (uint64_t)o->fetch_batch ? (int)left : o->fetch_batch;
            fr.Expires = (int64_t)NB_FETCH_WAIT_MS * 1000000;
            s = natsSubscription_FetchRequest(&list, sub, &fr);
            n += s == NATS_OK ? (uint64_t)list.Count : 0;
            natsMsgList_Destroy(&list);
        }
        atomic_store_explicit(&w->done, w->target + n, memory_order_relaxed);
    }
    if (s != NATS_OK) {
        report_status("consume", s, jerr);
    }
    natsSubscription_Destroy(sub);
    w->target += n;
    return s;
}

static natsStatus cons_setup(struct nb_worker *w)
{
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = NB_API_WAIT_MS;
    return connect_js(w->run->o->url, &w->nc, &w->js, &jo);
}

static natsStatus cons_run(struct nb_worker *w)
{
    const struct nb_opts *o = w->run->o;
    natsStatus s = NATS_OK;
    w->target = 0; /* counts what was consumed, stream after stream */
    for (uint32_t i = w->index; i < o->streams && s == NATS_OK; i += o->threads) {
        int64_t goal = stream_msgs(w->js, w->run->prefix, i);
        s = goal < 0 ? NATS_ERR : cons_stream(w, i, (uint64_t)goal);
    }
    return s;
}

/* ---- a run: threads started together, watched from main ---- */

static void *worker_main(void *arg)
{
    struct nb_worker *w = arg;
    double cpu0 = sample_thread_cpu_s();
    natsStatus s = w->run->producing ? pub_run(w) : cons_run(w);
    w->cpu_s = sample_thread_cpu_s() - cpu0;
    w->end_ns = clock_mono_ns();
    w->err = s;
    return NULL;
}

static void workers_fini(struct nb_run *run)
{
    for (uint32_t i = 0; i < run->count; i++) {
        struct nb_worker *w = &run->w[i];
        jsCtx_Destroy(w->js);
        natsConnection_Destroy(w->nc);
        pthread_mutex_destroy(&w->lat_mu);
        free(w->lat);
        free(w->value);
    }
}

/* Connects every worker; publishers get their share of records. */
static natsStatus workers_init(struct nb_run *run, uint64_t records)
{
    const struct nb_opts *o = run->o;
    run->count = o->threads;
    natsStatus s = NATS_OK;
    for (uint32_t i = 0; i < run->count; i++) {
        struct nb_worker *w = &run->w[i];
        *w = (struct nb_worker){.run = run, .index = i};
        pthread_mutex_init(&w->lat_mu, NULL);
        w->lat = malloc(sizeof(*w->lat));
        size_t vbytes = o->record_bytes > NB_STAMP_BYTES ? o->record_bytes : NB_STAMP_BYTES;
        w->value = malloc(vbytes);
        if (w->lat == NULL || w->value == NULL) {
            return NATS_NO_MEMORY;
        }
        hist_init(w->lat);
        uint32_t x = 2463534242u + i; /* the values nagare-bench sends */
        for (size_t b = 0; b < vbytes; b++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            w->value[b] = (uint8_t)x;
        }
        w->target = records / run->count + (i < records % run->count ? 1 : 0);
        if (s == NATS_OK) {
            s = run->producing ? pub_setup(w) : cons_setup(w);
        }
    }
    return s;
}

struct nb_watch {
    struct sample self0;
    struct sample_proc server0;
    struct sample_threads *t0;
    struct sample_threads *t1;
};

static void watch_tick(const struct nb_run *run, struct nb_result *r, double *next_s)
{
    const struct nb_opts *o = run->o;
    if (o->server_pid > 0) {
        struct sample_proc p;
        if (sample_proc_take(o->server_pid, &p) == 0 && p.rss_kib > r->server_rss_max_kib) {
            r->server_rss_max_kib = p.rss_kib;
        }
    }
    double t = (double)(clock_mono_ns() - run->go_ns) * 1e-9;
    if (!o->quiet && t >= 2.0 && t >= *next_s) {
        uint64_t done = 0;
        for (uint32_t i = 0; i < run->count; i++) {
            done += atomic_load_explicit(&run->w[i].done, memory_order_relaxed);
        }
        fprintf(stderr, "  %s %5.1f s: %" PRIu64 " records\n", r->name, t, done);
        *next_s = t + 1.0;
    }
}

static void watch_end(const struct nb_run *run, struct nb_watch *wt, struct nb_result *r)
{
    struct sample self1;
    sample_take(&self1, NULL);
    sample_diff(&wt->self0, &self1, &r->self);
    int pid = run->o->server_pid;
    struct sample_proc p1;
    double wall = r->self.wall_s > 0 ? r->self.wall_s : 1;
    if (pid > 0 && wt->server0.cpu_s >= 0 && sample_proc_take(pid, &p1) == 0 &&
        sample_threads_take(pid, wt->t1) == 0) {
        r->server_pct = 100 * (p1.cpu_s - wt->server0.cpu_s) / wall;
        r->server_thread_max_pct =
            100 * sample_threads_busiest(wt->t0, wt->t1, r->server_thread) / wall;
        r->server_hwm_kib = p1.hwm_kib;
        r->server_rss_max_kib =
            p1.rss_kib > r->server_rss_max_kib ? p1.rss_kib : r->server_rss_max_kib;
    }
}

static void collect(struct nb_run *run, struct nb_result *r)
{
    uint64_t end = run->go_ns;
    for (uint32_t i = 0; i < run->count; i++) {
        struct nb_worker *w = &run->w[i];
        r->records += run->producing ? atomic_load(&w->done) : w->target;
        r->errors += atomic_load(&w->failed) + (w->err != NATS_OK ? 1 : 0);
        hist_merge(r->lat, w->lat);
        end = w->end_ns > end ? w->end_ns : end;
        double run_s = w->end_ns > run->go_ns ? (double)(w->end_ns - run->go_ns) * 1e-9 : 0;
        double pct = run_s > 0 ? 100 * w->cpu_s / run_s : 0;
        r->thread_max_pct = pct > r->thread_max_pct ? pct : r->thread_max_pct;
    }
    r->seconds = (double)(end - run->go_ns) * 1e-9;
}

/* Runs one phase: every worker connected first, then started together. */
static int run_phase(const struct nb_opts *o, const char *prefix, bool producing, uint64_t records,
                     struct nb_result *r)
{
    struct nb_run *run = calloc(1, sizeof(*run));
    struct nb_watch wt = {.t0 = malloc(sizeof(*wt.t0)), .t1 = malloc(sizeof(*wt.t1))};
    int rc = run != NULL && wt.t0 != NULL && wt.t1 != NULL ? 0 : -ENOMEM;
    uint32_t started = 0;
    if (rc == 0) {
        *run = (struct nb_run){.o = o, .prefix = prefix, .producing = producing};
        rc = workers_init(run, records) == NATS_OK ? 0 : -EIO;
        sample_take(&wt.self0, NULL);
        wt.server0.cpu_s = -1;
        if (o->server_pid > 0 && (sample_proc_take(o->server_pid, &wt.server0) != 0 ||
                                  sample_threads_take(o->server_pid, wt.t0) != 0)) {
            wt.server0.cpu_s = -1;
        }
        run->go_ns = clock_mono_ns();
        for (uint32_t i = 0; i < run->count && rc == 0; i++) {
            rc = -pthread_create(&run->w[i].thread, NULL, worker_main, &run->w[i]);
            started += rc == 0 ? 1 : 0;
        }
        double next_s = 0;
        for (uint32_t i = 0; i < started; i++) {
            while (pthread_tryjoin_np(run->w[i].thread, NULL) == EBUSY) {
                struct timespec ts = {.tv_sec = 0, .tv_nsec = 100000000L};
                (void)nanosleep(&ts, NULL);
                watch_tick(run, r, &next_s);
            }
        }
        watch_end(run, &wt, r);
        collect(run, r);
        rc = rc != 0 ? rc : r->errors > 0 ? -EIO : 0;
        workers_fini(run);
    }
    free(run);
    free(wt.t0);
    free(wt.t1);
    return rc;
}

/* ---- report ---- */

static double ms(uint64_t ns) { return (double)ns / 1e6; }

static double mib(int64_t kib) { return kib < 0 ? -1 : (double)kib / 1024.0; }

static void print_row(const struct nb_opts *o, const struct nb_result *r)
{
    double rps = r->seconds > 0 ? (double)r->records / r->seconds : 0;
    printf("%-10s %11" PRIu64 " %8.3f %11.0f %8.1f", r->name, r->records, r->seconds, rps,
           rps * o->record_bytes / 1e6);
    const struct hist *h = r->lat;
    if (h->count == 0) {
        printf("  -\n");
        return;
    }
    printf("  %-9s %8.3f %8.3f %8.3f %8.3f %8.3f\n", "send>ack", ms(hist_percentile(h, 50)),
           ms(hist_percentile(h, 90)), ms(hist_percentile(h, 99)), ms(hist_percentile(h, 99.9)),
           ms(h->max));
}

static void print_table(const struct nb_opts *o, const struct nb_result *rs, uint32_t n)
{
    printf("nats-bench %s: records of %u value bytes over %u JetStream streams (file storage), "
           "%u %s, %s\n\n",
           o->cmd == NB_PRODUCE ? "produce" : "consume", o->record_bytes, o->streams, o->threads,
           o->cmd == NB_PRODUCE ? "publishers (js_PublishAsync)" : "consumers",
           o->cmd == NB_PRODUCE ? "async"
           : o->ordered         ? "ordered push"
                                : "pull, AckNone");
    printf("%-10s %11s %8s %11s %8s  %-9s %8s %8s %8s %8s %8s\n", "phase", "records", "seconds",
           "records/s", "MB/s", "latency", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms");
    for (uint32_t i = 0; i < n; i++) {
        print_row(o, &rs[i]);
    }
    for (uint32_t i = 0; i < n; i++) {
        const struct nb_result *r = &rs[i];
        double wall = r->self.wall_s > 0 ? r->self.wall_s : 1;
        printf("%s:\n  cpu   server %.0f%% (busiest thread '%s' %.0f%%), bench %.0f%% "
               "(busiest thread %.0f%%), box %.0f%%\n",
               r->name, r->server_pct, r->server_thread, r->server_thread_max_pct,
               100 * (r->self.user_s + r->self.sys_s) / wall, r->thread_max_pct,
               r->self.machine_busy * 100);
        printf("  rss   server %.1f MiB at most during the phase, VmHWM %.1f MiB\n",
               mib(r->server_rss_max_kib), mib(r->server_hwm_kib));
    }
}

static void json_result(const struct nb_opts *o, const struct nb_result *r)
{
    double rps = r->seconds > 0 ? (double)r->records / r->seconds : 0;
    double wall = r->self.wall_s > 0 ? r->self.wall_s : 1;
    const struct hist *h = r->lat;
    printf("{\"name\": \"%s\", \"%s\": {\"records\": %" PRIu64 ", \"seconds\": %.4f, "
           "\"records_per_s\": %.1f, \"mb_per_s\": %.2f, \"latency_ms\": ",
           r->name, strcmp(r->name, "consume") == 0 ? "consume" : "produce", r->records, r->seconds,
           rps, rps * o->record_bytes / 1e6);
    if (h->count == 0) {
        printf("null");
    } else {
        printf("{\"count\": %" PRIu64 ", \"mean\": %.4f, \"p50\": %.4f, \"p90\": %.4f, "
               "\"p99\": %.4f, \"p99_9\": %.4f, \"max\": %.4f}",
               h->count, hist_mean(h) / 1e6, ms(hist_percentile(h, 50)), ms(hist_percentile(h, 90)),
               ms(hist_percentile(h, 99)), ms(hist_percentile(h, 99.9)), ms(h->max));
    }
    printf("}, \"errors\": %" PRIu64 ", \"cpu\": {\"broker_pct\": %.1f, "
           "\"broker_thread_max_pct\": %.1f, \"broker_thread\": \"%s\", \"bench_pct\": %.1f, "
           "\"thread_max_pct\": %.1f, \"box_pct\": %.1f}, \"broker_rss_max_mib\": %.1f, "
           "\"broker_hwm_mib\": %.1f}",
           r->errors, r->server_pct, r->server_thread_max_pct, r->server_thread,
           100 * (r->self.user_s + r->self.sys_s) / wall, r->thread_max_pct,
           r->self.machine_busy * 100, mib(r->server_rss_max_kib), mib(r->server_hwm_kib));
}

static void print_json(const struct nb_opts *o, const struct nb_result *rs, uint32_t n)
{
    printf("{\"command\": \"%s\", \"config\": {\"streams\": %u, \"records\": %" PRIu64
           ", \"record_bytes\": %u, \"threads\": %u, \"max_pending\": %" PRId64
           ", \"mode\": \"%s\", \"warmup_mib\": %" PRIu64 "}, \"phases\": [",
           o->cmd == NB_PRODUCE ? "produce" : "consume", o->streams, o->records, o->record_bytes,
           o->threads, o->max_pending,
           o->cmd == NB_PRODUCE ? "async"
           : o->ordered         ? "ordered"
                                : "pull",
           o->warmup_mib);
    for (uint32_t i = 0; i < n; i++) {
        printf("%s", i > 0 ? ", " : "");
        json_result(o, &rs[i]);
    }
    printf("]}\n");
}

/* ---- options, main ---- */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: nats-bench produce|consume [options]\n"
            "  --url URL            the NATS server (nats://127.0.0.1:4222)\n"
            "  --server-pid PID     read the server's CPU and memory from /proc/PID\n"
            "  --streams P          streams, one subject each, file storage (4)\n"
            "  --records N          (1000000)\n"
            "  --record-bytes S     (1024)\n"
            "  --threads K          publishers (produce) or consumers (consume) (1)\n"
            "  --max-pending M      unacknowledged async publishes per publisher\n"
            "                       (64 MiB of records, within 256..1048576)\n"
            "  --mode pull|ordered  consume: pull consumers or ordered push consumers (pull)\n"
            "  --fetch-batch B      pull: messages per fetch (4096)\n"
            "  --warmup-mib N       untimed: N MiB into scratch streams, deleted, first (256)\n"
            "  --json               one JSON object instead of the table\n"
            "  --quiet              no progress lines\n");
}

static const struct option nb_longopts[] = {
    {"url", required_argument, NULL, 'u'},
    {"server-pid", required_argument, NULL, 'p'},
    {"streams", required_argument, NULL, 's'},
    {"records", required_argument, NULL, 'n'},
    {"record-bytes", required_argument, NULL, 'b'},
    {"threads", required_argument, NULL, 'k'},
    {"max-pending", required_argument, NULL, 'm'},
    {"mode", required_argument, NULL, 'o'},
    {"fetch-batch", required_argument, NULL, 'f'},
    {"warmup-mib", required_argument, NULL, 'w'},
    {"json", no_argument, NULL, 'j'},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static bool apply_opt(struct nb_opts *o, int opt, const char *arg)
{
    uint64_t v = 0;
    bool ok = true;
    switch (opt) {
    case 'u':
        o->url = arg;
        break;
    case 'p':
        ok = args_u64(arg, 1, INT32_MAX, &v);
        o->server_pid = (int)v;
        break;
    case 's':
        ok = args_u64(arg, 1, NB_STREAMS_MAX, &v);
        o->streams = (uint32_t)v;
        break;
    case 'n':
        ok = args_u64(arg, 1, UINT64_C(1) << 40, &o->records);
        break;
    case 'b':
        ok = args_u64(arg, NB_STAMP_BYTES, 64u << 20, &v);
        o->record_bytes = (uint32_t)v;
        break;
    case 'k':
        ok = args_u64(arg, 1, NB_THREADS_MAX, &v);
        o->threads = (uint32_t)v;
        break;
    case 'm':
        ok = args_u64(arg, 1, 1u << 24, &v);
        o->max_pending = (int64_t)v;
        break;
    case 'o':
        ok = strcmp(arg, "pull") == 0 || strcmp(arg, "ordered") == 0;
        o->ordered = strcmp(arg, "ordered") == 0;
        break;
    case 'f':
        ok = args_u64(arg, 1, 1u << 20, &v);
        o->fetch_batch = (int)v;
        break;
    case 'w':
        ok = args_u64(arg, 0, 1u << 20, &o->warmup_mib);
        break;
    case 'j':
        o->json = true;
        break;
    case 'q':
        o->quiet = true;
        break;
    default:
        ok = false;
        break;
    }
    return ok;
}

/* Returns 0, 1 after --help, 2 on a usage error. */
static int parse(struct nb_opts *o, int argc, char **argv)
{
    *o = (struct nb_opts){.url = "nats://127.0.0.1:4222",
                          .streams = 4,
                          .records = 1000000,
                          .record_bytes = 1024,
                          .threads = 1,
                          .fetch_batch = 4096,
                          .warmup_mib = 256};
    if (argc < 2 || (strcmp(argv[1], "produce") != 0 && strcmp(argv[1], "consume") != 0)) {
        bool help = argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0);
        usage(help ? stdout : stderr);
        return help ? 1 : 2;
    }
    o->cmd = strcmp(argv[1], "produce") == 0 ? NB_PRODUCE : NB_CONSUME;
    optind = 2;
    int opt;
    while ((opt = getopt_long(argc, argv, "h", nb_longopts, NULL)) != -1) {
        if (opt == 'h') {
            usage(stdout);
            return 1;
        }
        if (opt == '?' || !apply_opt(o, opt, optarg)) {
            fprintf(stderr, "nats-bench: bad option or value%s%s\n", optarg ? ": " : "",
                    optarg ? optarg : "");
            usage(stderr);
            return 2;
        }
    }
    return optind == argc ? 0 : 2;
}

static int result_init(struct nb_result *r, const char *name)
{
    *r = (struct nb_result){
        .name = name, .server_pct = -1, .server_rss_max_kib = -1, .server_hwm_kib = -1};
    r->lat = malloc(sizeof(*r->lat));
    if (r->lat == NULL) {
        return -ENOMEM;
    }
    hist_init(r->lat);
    return 0;
}

/* Untimed: warmup_mib into scratch streams, then deleted. */
static int warmup(const struct nb_opts *o, jsCtx *js)
{
    if (o->warmup_mib == 0) {
        return 0;
    }
    struct nb_result r;
    int rc = result_init(&r, "warm-up");
    rc = rc == 0 && streams_reset(js, "NBW", o->streams) != NATS_OK ? -EIO : rc;
    if (rc == 0) {
        uint64_t n = o->warmup_mib * (1u << 20) / o->record_bytes;
        struct nb_opts quiet = *o;
        quiet.quiet = true;
        rc = run_phase(&quiet, "NBW", true, n > 0 ? n : 1, &r);
    }
    streams_delete(js, "NBW", o->streams);
    free(r.lat);
    return rc;
}

static int run_cmd(const struct nb_opts *o, jsCtx *js, struct nb_result *rs, uint32_t *n)
{
    int rc = warmup(o, js);
    rc = rc == 0 && streams_reset(js, "NB", o->streams) != NATS_OK ? -EIO : rc;
    rc = rc == 0 ? result_init(&rs[0], o->cmd == NB_PRODUCE ? "produce" : "fill") : rc;
    if (rc != 0) {
        return rc;
    }
    *n = 1;
    rc = run_phase(o, "NB", true, o->records, &rs[0]);
    if (rc == 0 && o->cmd == NB_CONSUME) {
        rc = result_init(&rs[1], "consume");
        *n = rc == 0 ? 2 : 1;
        rc = rc == 0 ? run_phase(o, "NB", false, 0, &rs[1]) : rc;
    }
    streams_delete(js, "NB", o->streams);
    return rc;
}

int main(int argc, char **argv)
{
    struct nb_opts o;
    int rc = parse(&o, argc, argv);
    if (rc != 0) {
        return rc == 1 ? 0 : 2;
    }
    if (nats_Open(-1) != NATS_OK) {
        fprintf(stderr, "nats-bench: nats_Open failed\n");
        return 1;
    }
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = NB_API_WAIT_MS;
    struct nb_result rs[2] = {0};
    uint32_t n = 0;
    rc = connect_js(o.url, &nc, &js, &jo) == NATS_OK ? 0 : -EIO;
    rc = rc == 0 ? run_cmd(&o, js, rs, &n) : rc;
    if (n > 0 && o.json) {
        print_json(&o, rs, n);
    } else if (n > 0) {
        print_table(&o, rs, n);
    }
    for (uint32_t i = 0; i < n; i++) {
        free(rs[i].lat);
    }
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    nats_Close();
    return rc == 0 ? 0 : 1;
}
