/*
 * bench/load.c — producer and consumer threads, started together, watched
 * from the calling thread (see load.h).
 */
#include "bench/load.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench/kafka_load.h"

/* The monitor wakes this often: RSS samples, progress, the end. */
#define LOAD_TICK_MS 100
/* Progress lines start once a run is this old, then come this often. */
#define LOAD_PROGRESS_AFTER_S 2.0
#define LOAD_PROGRESS_EVERY_S 1.0
/* A producer waits for its last reports in slices this long, so SIGINT
 * or a failed broker is noticed. */
#define LOAD_FLUSH_SLICE_MS 100

struct load;

struct load_worker {
    pthread_t thread;
    bool started;
    struct load *l;
    bool producer;
    uint32_t index;     /* among its kind */
    nagare_producer *p; /* LOAD_NAGARE */
    nagare_consumer *c;
    struct kload_producer *kp; /* LOAD_KAFKA */
    struct kload_consumer *kc;
    uint64_t target;     /* producer: records to send */
    uint64_t acked;      /* producer: reports of success so far */
    uint64_t ack_now_ns; /* producer: when this poll's reports came; 0: not read */
    uint64_t failed;
    int err;                   /* the first error; 0 */
    _Atomic uint64_t progress; /* acked or consumed, published to the monitor */
    uint64_t bytes;
    struct hist *lat;
    uint8_t *value;
    double cpu_s;
    uint64_t end_ns;
};

struct load {
    const struct load_cfg *cfg;
    /* The start gate: every worker counts itself ready (client set up, or
     * failed), then waits for `open`; go_ns is set before it opens. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint32_t ready;
    bool open;
    uint64_t go_ns;
    uint64_t measure_from_ns;
    _Atomic bool abort;
    _Atomic uint64_t consumed_total;
    _Atomic uint64_t consume_end_ns;
    _Atomic uint32_t producers_running;
    _Atomic uint32_t running;
    uint32_t count;
    struct load_worker w[2 * LOAD_THREADS_MAX];
};

static volatile sig_atomic_t load_sigint;

static void on_sigint(int sig)
{
    (void)sig;
    load_sigint = 1;
}

static bool stopping(struct load *l)
{
    return load_sigint != 0 || atomic_load_explicit(&l->abort, memory_order_relaxed);
}

int load_result_init(struct load_result *r)
{
    *r = (struct load_result){.broker_cpu_pct = -1, .broker_rss_max_kib = -1, .broker_hwm_kib = -1};
    r->ack = malloc(sizeof(*r->ack));
    r->e2e = malloc(sizeof(*r->e2e));
    if (r->ack == NULL || r->e2e == NULL) {
        load_result_fini(r);
        return -ENOMEM;
    }
    hist_init(r->ack);
    hist_init(r->e2e);
    return 0;
}

void load_result_fini(struct load_result *r)
{
    free(r->ack);
    free(r->e2e);
    r->ack = NULL;
    r->e2e = NULL;
}

/* ---- producers ---- */

/* A delivery report of either protocol: err 0 or negative; at is the
 * record's (intended) send time. */
static void delivered(void *opaque, int err, uint64_t at)
{
    struct load_worker *w = opaque;
    if (err != 0) {
        w->failed++;
        w->err = w->err != 0 ? w->err : err;
        return;
    }
    if (at >= w->l->measure_from_ns) {
        /* One clock read per poll: its reports arrived together. */
        if (w->ack_now_ns == 0) {
            w->ack_now_ns = clock_mono_ns();
        }
        uint64_t now = w->ack_now_ns;
        hist_record(w->lat, now > at ? now - at : 0);
    }
    w->acked++;
}

static void on_delivery(const struct nagare_delivery *d, void *opaque)
{
    delivered(opaque, d->err, (uint64_t)(uintptr_t)d->opaque);
}

/* Value bytes: pseudo-random (xorshift32), so compression has little to
 * gain, as with most payloads that are already encoded. */
static void fill_value(uint8_t *v, size_t n, uint32_t seed)
{
    uint32_t x = seed | 1u;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        v[i] = (uint8_t)x;
    }
}

static int prod_setup(struct load_worker *w)
{
    const struct load_cfg *cfg = w->l->cfg;
    size_t vbytes = cfg->record_bytes > LOAD_STAMP_BYTES ? cfg->record_bytes : LOAD_STAMP_BYTES;
    w->value = malloc(vbytes);
    if (w->value == NULL) {
        return -ENOMEM;
    }
    fill_value(w->value, vbytes, 2463534242u + w->index);
    if (cfg->protocol == LOAD_KAFKA) {
        return kload_producer_new(cfg, delivered, w, &w->kp);
    }
    struct nagare_producer_config c;
    nagare_producer_config_default(&c);
    c.bootstrap = cfg->bootstrap;
    if (cfg->tls != NULL) {
        c.tls = *cfg->tls;
    }
    c.acks = cfg->acks;
    c.compression = cfg->compression;
    c.batch_bytes = cfg->batch_bytes;
    c.linger_ms = cfg->linger_ms;
    c.idempotent = cfg->idempotent;
    c.inflight_max = cfg->inflight;
    if (cfg->buffer_bytes_max > 0) {
        c.buffer_bytes_max = cfg->buffer_bytes_max;
    }
    if (c.buffer_bytes_max < 4 * c.batch_bytes) {
        c.buffer_bytes_max = 4 * c.batch_bytes;
    }
    c.on_delivery = on_delivery;
    c.opaque = w;
    return nagare_producer_new(&c, &w->p);
}

static void publish(struct load_worker *w)
{
    atomic_store_explicit(&w->progress, w->acked, memory_order_relaxed);
}

/* nagare_producer_poll(), with the reports' clock reset; errors only. */
static int prod_poll(struct load_worker *w, int timeout_ms)
{
    w->ack_now_ns = 0;
    int rc = w->kp != NULL ? kload_producer_poll(w->kp, timeout_ms)
                           : nagare_producer_poll(w->p, timeout_ms);
    publish(w);
    return rc < 0 ? rc : 0;
}

/* Until the intended time `at`: reports are read meanwhile when the wait is
 * long; a short wait sleeps to the nanosecond (timer slack is 1 ns). */
static int prod_wait(struct load_worker *w, uint64_t at, uint64_t now)
{
    uint64_t gap = at - now;
    if (gap > 2000000u) {
        return prod_poll(w, (int)(gap / 1000000u) - 1);
    }
    struct timespec ts = {.tv_sec = (time_t)(at / 1000000000u),
                          .tv_nsec = (long)(at % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
    return 0;
}

/* Sends w->target records, on schedule at a fixed rate, then waits for
 * every report. Without a rate the send time is read once per slice of
 * poll_every records (about one batch), not per record: a record's
 * latency may read long by that slice's duration, tens of microseconds,
 * and the bench's clock reads stay off the producer's profile. */
static int prod_run(struct load_worker *w)
{
    struct load *l = w->l;
    const struct load_cfg *cfg = l->cfg;
    struct nagare_record rec = {.topic = cfg->topic,
                                .partition = NAGARE_PARTITION_ANY,
                                .key_len = -1,
                                .value = w->value,
                                .value_len = (ssize_t)cfg->record_bytes};
    uint64_t poll_every = cfg->batch_bytes / ((uint64_t)cfg->record_bytes + 8u);
    poll_every = poll_every == 0 ? 1 : poll_every;
    double interval_ns = cfg->rate > 0 ? 1e9 * cfg->producers / cfg->rate : 0;
    double first_ns = (double)l->go_ns + (cfg->rate > 0 ? 1e9 * w->index / cfg->rate : 0);
    uint64_t sent = 0;
    uint64_t since_poll = 0;
    int rc = 0;
    uint64_t now = 0;
    while (rc == 0 && sent < w->target && !stopping(l)) {
        if (cfg->rate > 0 || since_poll == 0) {
            now = clock_mono_ns();
        }
        uint64_t at = cfg->rate > 0 ? (uint64_t)(first_ns + (double)sent * interval_ns) : now;
        if (at > now) {
            rc = prod_wait(w, at, now);
            continue;
        }
        if (cfg->stamp) {
            memcpy(w->value, &at, LOAD_STAMP_BYTES);
        }
        rec.opaque = (void *)(uintptr_t)at;
        rc = w->kp != NULL ? kload_send(w->kp, w->value, cfg->record_bytes, at)
                           : nagare_send(w->p, &rec);
        if (rc == -NAGARE_EBUSY) { /* buffer full: read answers, same record again */
            since_poll = 0;
            rc = prod_poll(w, 1);
            continue;
        }
        sent += rc == 0 ? 1 : 0;
        if (rc == 0 && (cfg->rate > 0 || ++since_poll >= poll_every)) {
            since_poll = 0;
            rc = prod_poll(w, 0);
        }
    }
    while (rc == 0 && !stopping(l)) {
        w->ack_now_ns = 0;
        rc = w->kp != NULL ? kload_producer_flush(w->kp, LOAD_FLUSH_SLICE_MS)
                           : nagare_producer_flush(w->p, LOAD_FLUSH_SLICE_MS);
        publish(w);
        if (rc != -NAGARE_ETIMEOUT) {
            break;
        }
        rc = 0;
    }
    publish(w);
    return rc;
}

/* ---- consumers ---- */

static int cons_setup(struct load_worker *w)
{
    const struct load_cfg *cfg = w->l->cfg;
    if (cfg->protocol == LOAD_KAFKA) {
        return kload_consumer_new(cfg, (int32_t)w->index, (int32_t)cfg->consumers, &w->kc);
    }
    struct nagare_consumer_config c;
    nagare_consumer_config_default(&c);
    c.bootstrap = cfg->bootstrap;
    if (cfg->tls != NULL) {
        c.tls = *cfg->tls;
    }
    if (cfg->fetch_bytes_max > 0) {
        c.fetch_bytes_max = cfg->fetch_bytes_max;
    }
    if (cfg->partition_fetch_bytes_max > 0) {
        c.partition_fetch_bytes_max = cfg->partition_fetch_bytes_max;
    }
    if (cfg->fetches_inflight > 0) {
        c.fetches_inflight = cfg->fetches_inflight;
    }
    int rc = nagare_consumer_new(&c, &w->c);
    int64_t from = cfg->from_end ? NAGARE_OFFSET_END : NAGARE_OFFSET_BEGINNING;
    for (int32_t p = (int32_t)w->index; rc == 0 && p < cfg->partitions;
         p += (int32_t)cfg->consumers) {
        rc = nagare_consumer_assign(w->c, cfg->topic, p, from);
    }
    return rc;
}

/* Nothing arrived for LOAD_CONSUME_IDLE_S since the producers finished
 * (or since the start, with no producers): the records are not coming. */
static bool cons_gave_up(struct load *l, uint64_t *seen, uint64_t *seen_ns)
{
    uint64_t total = atomic_load_explicit(&l->consumed_total, memory_order_relaxed);
    uint64_t now = clock_mono_ns();
    if (total != *seen || atomic_load(&l->producers_running) > 0) {
        *seen = total;
        *seen_ns = now;
        return false;
    }
    return (double)(now - *seen_ns) * 1e-9 >= LOAD_CONSUME_IDLE_S;
}

static void cons_record(struct load_worker *w, const void *value, size_t len)
{
    struct load *l = w->l;
    w->bytes += len;
    if (l->cfg->stamp && len >= LOAD_STAMP_BYTES) {
        uint64_t now = clock_mono_ns();
        uint64_t at;
        memcpy(&at, value, LOAD_STAMP_BYTES);
        if (at >= l->measure_from_ns) {
            hist_record(w->lat, now > at ? now - at : 0);
        }
    }
    uint64_t total = atomic_fetch_add_explicit(&l->consumed_total, 1, memory_order_relaxed) + 1;
    if (total == l->cfg->consume_records) {
        atomic_store(&l->consume_end_ns, clock_mono_ns());
    }
}

/* The next record's value: 1, 0 when none came within LOAD_TICK_MS, or
 * an error. */
static int cons_poll(struct load_worker *w, const void **value, size_t *len)
{
    if (w->kc != NULL) {
        return kload_consumer_poll(w->kc, LOAD_TICK_MS, value, len);
    }
    const struct nagare_message *m = NULL;
    int rc = nagare_consumer_poll(w->c, LOAD_TICK_MS, &m);
    if (rc > 0) {
        *value = m->value;
        *len = m->value_len > 0 ? (size_t)m->value_len : 0;
    }
    return rc;
}

static int cons_run(struct load_worker *w)
{
    struct load *l = w->l;
    uint64_t goal = l->cfg->consume_records;
    uint64_t seen = 0;
    uint64_t seen_ns = clock_mono_ns();
    uint64_t n = 0;
    while (!stopping(l) && atomic_load_explicit(&l->consumed_total, memory_order_relaxed) < goal) {
        const void *value = NULL;
        size_t len = 0;
        int rc = cons_poll(w, &value, &len);
        if (rc < 0) {
            return rc;
        }
        if (rc == 0) {
            if (cons_gave_up(l, &seen, &seen_ns)) {
                return -NAGARE_ETIMEOUT;
            }
            continue;
        }
        cons_record(w, value, len);
        n++;
        if ((n & 255u) == 0) {
            atomic_store_explicit(&w->progress, n, memory_order_relaxed);
        }
    }
    atomic_store_explicit(&w->progress, n, memory_order_relaxed);
    return 0;
}

/* ---- threads ---- */

static void *worker_main(void *arg)
{
    struct load_worker *w = arg;
    struct load *l = w->l;
    (void)prctl(PR_SET_TIMERSLACK, 1UL); /* fixed-rate sleeps end on time */
    int rc = w->producer ? prod_setup(w) : cons_setup(w);
    w->err = rc;
    pthread_mutex_lock(&l->mu); /* the monitor looks at every w->err */
    l->ready++;
    pthread_cond_broadcast(&l->cv);
    while (!l->open) {
        pthread_cond_wait(&l->cv, &l->mu);
    }
    pthread_mutex_unlock(&l->mu);
    if (rc == 0 && !stopping(l)) {
        double cpu0 = sample_thread_cpu_s();
        rc = w->producer ? prod_run(w) : cons_run(w);
        w->cpu_s = sample_thread_cpu_s() - cpu0;
        w->end_ns = clock_mono_ns();
        w->err = w->err != 0 ? w->err : rc;
    }
    if (w->err != 0) {
        atomic_store(&l->abort, true);
    }
    if (w->producer) {
        atomic_fetch_sub(&l->producers_running, 1);
    }
    atomic_fetch_sub(&l->running, 1);
    return NULL;
}

/* ---- the monitor (the calling thread) ---- */

struct load_watch {
    struct sample self0;
    struct sample_proc broker0;
    struct sample_threads *threads0; /* the broker's */
    struct sample_threads *threads1;
    struct sample_threads *own0; /* this process's: the clients' own threads too */
    struct sample_threads *own1;
    double next_progress_s;
    uint64_t last_produced;
    uint64_t last_consumed;
    double last_s;
};

static void sum_progress(struct load *l, uint64_t *produced, uint64_t *consumed)
{
    *produced = 0;
    *consumed = 0;
    for (uint32_t i = 0; i < l->count; i++) {
        uint64_t v = atomic_load_explicit(&l->w[i].progress, memory_order_relaxed);
        *(l->w[i].producer ? produced : consumed) += v;
    }
}

static void progress_line(struct load *l, struct load_watch *wt, double t)
{
    uint64_t produced;
    uint64_t consumed;
    sum_progress(l, &produced, &consumed);
    double dt = t - wt->last_s;
    fprintf(stderr, "  %s %5.1f s:", l->cfg->label, t);
    if (l->cfg->producers > 0) {
        fprintf(stderr, " produced %" PRIu64 " (%.0f/s)", produced,
                dt > 0 ? (double)(produced - wt->last_produced) / dt : 0);
    }
    if (l->cfg->consumers > 0) {
        fprintf(stderr, " consumed %" PRIu64 " (%.0f/s)", consumed,
                dt > 0 ? (double)(consumed - wt->last_consumed) / dt : 0);
    }
    fputc('\n', stderr);
    wt->last_produced = produced;
    wt->last_consumed = consumed;
    wt->last_s = t;
}

static void watch_tick(struct load *l, struct load_watch *wt, struct load_result *r)
{
    const struct load_cfg *cfg = l->cfg;
    if (cfg->broker_pid > 0) {
        struct sample_proc now;
        if (sample_proc_take(cfg->broker_pid, &now) == 0 && now.rss_kib > r->broker_rss_max_kib) {
            r->broker_rss_max_kib = now.rss_kib;
        }
    }
    double t = (double)(clock_mono_ns() - l->go_ns) * 1e-9;
    if (cfg->progress && t >= LOAD_PROGRESS_AFTER_S && t >= wt->next_progress_s) {
        progress_line(l, wt, t);
        wt->next_progress_s = t + LOAD_PROGRESS_EVERY_S;
    }
}

static void watch_start(struct load *l, struct load_watch *wt)
{
    int pid = l->cfg->broker_pid;
    sample_take(&wt->self0, NULL);
    if (sample_threads_take(getpid(), wt->own0) != 0) {
        wt->own0->count = 0;
    }
    if (pid > 0 &&
        (sample_proc_take(pid, &wt->broker0) != 0 || sample_threads_take(pid, wt->threads0) != 0)) {
        wt->broker0.cpu_s = -1;
    }
}

static void watch_end(struct load *l, struct load_watch *wt, struct load_result *r)
{
    struct sample self1;
    sample_take(&self1, NULL);
    sample_diff(&wt->self0, &self1, &r->self);
    double self_wall = r->self.wall_s > 0 ? r->self.wall_s : 1;
    if (sample_threads_take(getpid(), wt->own1) == 0) {
        r->bench_thread_max_pct =
            100.0 * sample_threads_busiest(wt->own0, wt->own1, r->bench_thread_comm) / self_wall;
    }
    int pid = l->cfg->broker_pid;
    struct sample_proc b1;
    if (pid <= 0 || wt->broker0.cpu_s < 0 || sample_proc_take(pid, &b1) != 0 ||
        sample_threads_take(pid, wt->threads1) != 0) {
        return;
    }
    double wall = r->self.wall_s > 0 ? r->self.wall_s : 1;
    r->broker_cpu_pct = 100.0 * (b1.cpu_s - wt->broker0.cpu_s) / wall;
    r->broker_thread_max_pct =
        100.0 * sample_threads_busiest(wt->threads0, wt->threads1, r->broker_thread_comm) / wall;
    r->broker_hwm_kib = b1.hwm_kib;
    if (b1.rss_kib > r->broker_rss_max_kib) {
        r->broker_rss_max_kib = b1.rss_kib;
    }
}

/* ---- the run ---- */

static void collect(struct load *l, struct load_result *r)
{
    uint64_t prod_end = 0;
    uint64_t cons_end = 0;
    for (uint32_t i = 0; i < l->count; i++) {
        struct load_worker *w = &l->w[i];
        double run_s = w->end_ns > l->go_ns ? (double)(w->end_ns - l->go_ns) * 1e-9 : 0;
        double pct = run_s > 0 ? 100.0 * w->cpu_s / run_s : 0;
        if (w->producer) {
            r->produced += w->acked;
            r->produce_errors += w->failed;
            r->produce_err = r->produce_err != 0 ? r->produce_err : w->err;
            hist_merge(r->ack, w->lat);
            prod_end = w->end_ns > prod_end ? w->end_ns : prod_end;
            r->producer_thread_max_pct =
                pct > r->producer_thread_max_pct ? pct : r->producer_thread_max_pct;
        } else {
            r->consumed += atomic_load(&w->progress);
            r->consumed_bytes += w->bytes;
            r->consume_err = r->consume_err != 0 ? r->consume_err : w->err;
            hist_merge(r->e2e, w->lat);
            cons_end = w->end_ns > cons_end ? w->end_ns : cons_end;
            r->consumer_thread_max_pct =
                pct > r->consumer_thread_max_pct ? pct : r->consumer_thread_max_pct;
        }
    }
    uint64_t goal_ns = atomic_load(&l->consume_end_ns);
    cons_end = goal_ns != 0 ? goal_ns : cons_end;
    r->produce_s = prod_end > l->go_ns ? (double)(prod_end - l->go_ns) * 1e-9 : 0;
    r->consume_s = cons_end > l->go_ns ? (double)(cons_end - l->go_ns) * 1e-9 : 0;
}

static int workers_init(struct load *l)
{
    const struct load_cfg *cfg = l->cfg;
    uint32_t producers = cfg->records > 0 ? cfg->producers : 0;
    ASSERT(producers <= LOAD_THREADS_MAX && cfg->consumers <= LOAD_THREADS_MAX);
    l->count = producers + cfg->consumers;
    for (uint32_t i = 0; i < l->count; i++) {
        struct load_worker *w = &l->w[i];
        w->l = l;
        w->producer = i < producers;
        w->index = w->producer ? i : i - producers;
        if (w->producer) {
            w->target = cfg->records / producers + (w->index < cfg->records % producers ? 1 : 0);
        }
        w->lat = malloc(sizeof(*w->lat));
        if (w->lat == NULL) {
            return -ENOMEM;
        }
        hist_init(w->lat);
    }
    atomic_store(&l->producers_running, producers);
    atomic_store(&l->running, l->count);
    return 0;
}

static void workers_fini(struct load *l)
{
    for (uint32_t i = 0; i < l->count; i++) {
        struct load_worker *w = &l->w[i];
        nagare_producer_destroy(w->p);
        nagare_consumer_destroy(w->c);
        kload_producer_destroy(w->kp);
        kload_consumer_destroy(w->kc);
        free(w->lat);
        free(w->value);
    }
}

/* Starts every worker and opens the gate once all are ready. Returns 0,
 * or the error of a thread or client that could not start (the gate opens
 * anyway, with abort set, so every started thread ends). */
static int workers_start(struct load *l, struct load_watch *wt)
{
    int rc = 0;
    uint32_t started = 0;
    for (uint32_t i = 0; i < l->count && rc == 0; i++) {
        rc = -pthread_create(&l->w[i].thread, NULL, worker_main, &l->w[i]);
        l->w[i].started = rc == 0;
        started += rc == 0 ? 1 : 0;
    }
    if (rc != 0) {
        atomic_fetch_sub(&l->running, l->count - started);
    }
    pthread_mutex_lock(&l->mu);
    while (l->ready < started) {
        pthread_cond_wait(&l->cv, &l->mu);
    }
    for (uint32_t i = 0; i < started && rc == 0; i++) {
        rc = l->w[i].err;
    }
    if (rc != 0) {
        atomic_store(&l->abort, true);
    }
    watch_start(l, wt);
    l->go_ns = clock_mono_ns();
    l->measure_from_ns = l->go_ns + (uint64_t)(l->cfg->warmup_s * 1e9);
    l->open = true;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    return rc;
}

static int run_watched(struct load *l, struct load_result *r)
{
    struct load_watch wt = {.next_progress_s = 0};
    wt.threads0 = malloc(sizeof(*wt.threads0));
    wt.threads1 = malloc(sizeof(*wt.threads1));
    wt.own0 = malloc(sizeof(*wt.own0));
    wt.own1 = malloc(sizeof(*wt.own1));
    int rc = wt.threads0 && wt.threads1 && wt.own0 && wt.own1 ? 0 : -ENOMEM;
    rc = rc == 0 ? workers_init(l) : rc;
    if (rc == 0) {
        rc = workers_start(l, &wt);
        while (atomic_load(&l->running) > 0) {
            struct timespec ts = {.tv_sec = 0, .tv_nsec = LOAD_TICK_MS * 1000000L};
            (void)nanosleep(&ts, NULL);
            watch_tick(l, &wt, r);
        }
        for (uint32_t i = 0; i < l->count; i++) {
            if (l->w[i].started) {
                (void)pthread_join(l->w[i].thread, NULL);
            }
        }
        watch_end(l, &wt, r);
        collect(l, r);
        for (uint32_t i = 0; i < l->count && rc == 0; i++) {
            rc = l->w[i].err;
        }
    }
    workers_fini(l);
    free(wt.threads0);
    free(wt.threads1);
    free(wt.own0);
    free(wt.own1);
    return rc;
}

int load_run(const struct load_cfg *cfg, struct load_result *r)
{
    struct load *l = calloc(1, sizeof(*l));
    if (l == NULL) {
        return -ENOMEM;
    }
    l->cfg = cfg;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    struct sigaction sa = {.sa_handler = on_sigint};
    struct sigaction old;
    sigemptyset(&sa.sa_mask);
    int rc = sigaction(SIGINT, &sa, &old) == 0 ? 0 : -errno;
    rc = rc == 0 ? run_watched(l, r) : rc;
    (void)sigaction(SIGINT, &old, NULL);
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
    free(l);
    return rc;
}

bool load_interrupted(void) { return load_sigint != 0; }
