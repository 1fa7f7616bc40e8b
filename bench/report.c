/*
 * bench/report.c — session_report(): the table, or one JSON object, of
 * every phase a produce / consume / e2e session ran.
 *
 * Units: MB = 10^6 bytes of record values (keys are null, batch and frame
 * headers are not counted); latencies in milliseconds; CPU in percent of
 * one core (the broker's and each thread's), box% in percent of the whole
 * machine (100 = every core busy).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/kafka_load.h"
#include "bench/session.h"

/* A thread busy for at least this share of a phase is what limited it. */
#define REPORT_CPU_BOUND_PCT 85.0
/* The machine counts as saturated from this share of all its cores. */
#define REPORT_BOX_BOUND_PCT 90.0
/* A row's label: "consume/kafka" and room to spare. */
#define REPORT_LABEL_BYTES 32

/* The Kafka listener's targets (issue 14): Kafka-protocol records/s at
 * least this share of nagare's own, phase by phase. */
static const struct {
    const char *phase;
    double ratio;
} kafka_targets[] = {{"produce", 0.70}, {"consume", 0.80}};

static const char *protocol_name(enum load_protocol p)
{
    return p == LOAD_KAFKA ? "kafka" : "nagare";
}

struct row {
    char label[REPORT_LABEL_BYTES];
    const char *lat_kind; /* "send>ack", "send>recv" or NULL */
    uint64_t records;
    double seconds;
    const struct hist *lat;
};

static double ms(uint64_t ns) { return (double)ns / 1e6; }

static double mib(int64_t kib) { return kib < 0 ? -1 : (double)kib / 1024.0; }

/* A phase's name, with its protocol when the session measures Kafka's. */
static void phase_label(const struct session *s, const struct session_phase *ph, char *buf,
                        size_t cap)
{
    if (s->o.protocols == SESSION_NAGARE) {
        snprintf(buf, cap, "%s", ph->name);
    } else {
        snprintf(buf, cap, "%s/%s", ph->name, protocol_name(ph->protocol));
    }
}

/* The producing row and the consuming row of a phase (either may be absent). */
static uint32_t phase_rows(const struct session *s, const struct session_phase *ph,
                           struct row rows[2])
{
    uint32_t n = 0;
    bool both = ph->producing && ph->consuming;
    if (ph->consuming) {
        rows[n] = (struct row){.lat_kind = ph->stamped ? "send>recv" : NULL,
                               .records = ph->r.consumed,
                               .seconds = ph->r.consume_s,
                               .lat = ph->stamped ? ph->r.e2e : NULL};
        phase_label(s, ph, rows[n++].label, REPORT_LABEL_BYTES);
    }
    if (ph->producing) {
        rows[n] = (struct row){.lat_kind = "send>ack",
                               .records = ph->r.produced,
                               .seconds = ph->r.produce_s,
                               .lat = ph->r.ack};
        if (both) {
            snprintf(rows[n].label, REPORT_LABEL_BYTES, "  acks");
        } else {
            phase_label(s, ph, rows[n].label, REPORT_LABEL_BYTES);
        }
        n++;
    }
    return n;
}

/* What limited a phase, from its CPU figures: a thread busy nearly all
 * the time, or the whole machine busy; otherwise it waited. */
static void limit_text(const struct session_phase *ph, char *buf, size_t cap)
{
    const struct load_result *r = &ph->r;
    double box = r->self.machine_busy * 100;
    if (ph->rate > 0) {
        snprintf(buf, cap, "the fixed rate (%.0f records/s); box %.0f%%", ph->rate, box);
    } else if (r->broker_thread_max_pct >= REPORT_CPU_BOUND_PCT) {
        snprintf(buf, cap, "CPU: the broker's thread '%s' busy %.0f%% of the phase",
                 r->broker_thread_comm, r->broker_thread_max_pct);
    } else if (r->producer_thread_max_pct >= REPORT_CPU_BOUND_PCT ||
               r->consumer_thread_max_pct >= REPORT_CPU_BOUND_PCT) {
        bool prod = r->producer_thread_max_pct >= r->consumer_thread_max_pct;
        snprintf(buf, cap, "CPU: a bench %s thread busy %.0f%% of the phase",
                 prod ? "producer" : "consumer",
                 prod ? r->producer_thread_max_pct : r->consumer_thread_max_pct);
    } else if (r->bench_thread_max_pct >= REPORT_CPU_BOUND_PCT) {
        snprintf(buf, cap,
                 "CPU: the bench's (client library's) thread '%s' busy %.0f%% of the phase",
                 r->bench_thread_comm, r->bench_thread_max_pct);
    } else if (box >= REPORT_BOX_BOUND_PCT) {
        snprintf(buf, cap, "CPU: the machine (box %.0f%%: every core busy)", box);
    } else {
        snprintf(buf, cap,
                 "no thread CPU-bound (busiest %.0f%%), box %.0f%%: waits (disk, "
                 "network, or the pipeline's depth)",
                 r->broker_thread_max_pct > r->producer_thread_max_pct ? r->broker_thread_max_pct
                                                                       : r->producer_thread_max_pct,
                 box);
    }
}

static void print_header(const struct session *s, FILE *out)
{
    const struct session_opts *o = &s->o;
    fprintf(out,
            "nagare-bench %s: records of %u value bytes, topic %s (%d partitions, "
            "replication factor %d)\n",
            session_cmd_name(o->cmd), o->record_bytes, o->topic, s->partitions,
            s->replication_factor);
    char rate[32] = "unlimited";
    if (o->rate > 0) {
        snprintf(rate, sizeof(rate), "%.0f records/s", o->rate);
    }
    fprintf(out,
            "  %u producer(s): batch %zu B, linger %u ms, acks %s, compression %s, %s, "
            "%u in flight, rate %s\n",
            o->producers, o->batch_bytes, o->linger_ms,
            o->acks < 0    ? "all"
            : o->acks == 0 ? "0"
                           : "1",
            o->compression == NAGARE_COMPRESSION_ZSTD ? "zstd" : "none",
            o->idempotent ? "idempotent" : "not idempotent", o->inflight, rate);
    fprintf(out,
            "  %u consumer(s); broker %s%s (pid %d); %u idle connections; "
            "warm-up %" PRIu64 " MiB\n",
            o->consumers, s->broker.bootstrap, s->broker.spawned ? ", spawned" : "", s->broker.pid,
            s->idle_open, o->warmup_mib);
    if (o->protocols != SESSION_NAGARE) {
        fprintf(out, "  through %s; Kafka listener %s (librdkafka %s); %u round(s)\n",
                o->protocols == SESSION_BOTH ? "both protocols, alternately" : "Kafka's protocol",
                s->broker.kafka_bootstrap, kload_version(), o->rounds);
    }
    fputc('\n', out);
}

static void print_row(const struct row *w, uint32_t record_bytes, FILE *out)
{
    double rps = w->seconds > 0 ? (double)w->records / w->seconds : 0;
    fprintf(out, "%-14s %11" PRIu64 " %8.3f %11.0f %8.1f", w->label, w->records, w->seconds, rps,
            rps * record_bytes / 1e6);
    if (w->lat == NULL || w->lat->count == 0) {
        fprintf(out, "  %-9s\n", "-");
        return;
    }
    const struct hist *h = w->lat;
    fprintf(out, "  %-9s %8.3f %8.3f %8.3f %8.3f %8.3f\n", w->lat_kind, ms(hist_percentile(h, 50)),
            ms(hist_percentile(h, 90)), ms(hist_percentile(h, 99)), ms(hist_percentile(h, 99.9)),
            ms(h->max));
}

static void print_cpu(const struct session *s, const struct session_phase *ph, FILE *out)
{
    const struct load_result *r = &ph->r;
    char limit[256];
    limit_text(ph, limit, sizeof(limit));
    char label[REPORT_LABEL_BYTES];
    phase_label(s, ph, label, sizeof(label));
    fprintf(out, "%s:\n  cpu   ", label);
    if (r->broker_cpu_pct >= 0) {
        fprintf(out, "broker %.0f%% (busiest thread '%s' %.0f%%), ", r->broker_cpu_pct,
                r->broker_thread_comm, r->broker_thread_max_pct);
    } else {
        fprintf(out, "broker unknown (no --broker-pid), ");
    }
    double wall = r->self.wall_s > 0 ? r->self.wall_s : 1;
    fprintf(out,
            "bench %.0f%% (busiest producer %.0f%%, consumer %.0f%%, any '%s' %.0f%%), "
            "box %.0f%%\n",
            100 * (r->self.user_s + r->self.sys_s) / wall, r->producer_thread_max_pct,
            r->consumer_thread_max_pct, r->bench_thread_comm, r->bench_thread_max_pct,
            r->self.machine_busy * 100);
    if (r->broker_rss_max_kib >= 0) {
        fprintf(out, "  rss   broker %.1f MiB at most during the phase, VmHWM %.1f MiB\n",
                mib(r->broker_rss_max_kib), mib(r->broker_hwm_kib));
    }
    fprintf(out, "  limit %s\n", limit);
    if (r->produce_errors > 0 || r->produce_err != 0 || r->consume_err != 0) {
        fprintf(out, "  errors: %" PRIu64 " records failed (%s); consumer: %s\n", r->produce_errors,
                nagare_strerror(r->produce_err), nagare_strerror(r->consume_err));
    }
}

/* ---- Kafka's protocol against nagare's own ---- */

struct comparison {
    const char *phase;
    uint32_t rounds;     /* phases of each protocol counted (the fewer) */
    double median[2];    /* records/s, by enum load_protocol */
    double broker_us[2]; /* the broker's CPU per record, µs (median); -1: unknown */
    double ratio;        /* kafka / nagare; 0 when either is missing */
    double target;
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

static double median(double *v, uint32_t n)
{
    if (n == 0) {
        return -1;
    }
    qsort(v, n, sizeof(v[0]), cmp_double);
    return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The medians of the phases named name run through protocol p: records/s
 * and the broker's CPU µs per record; returns how many phases there were. */
static uint32_t phase_medians(const struct session *s, const char *name, enum load_protocol p,
                              double *rps, double *broker_us)
{
    double v[SESSION_PHASES_MAX];
    double cpu[SESSION_PHASES_MAX];
    uint32_t n = 0;
    uint32_t n_cpu = 0;
    for (uint32_t i = 0; i < s->phase_count; i++) {
        const struct session_phase *ph = &s->phases[i];
        if (ph->protocol != p || strcmp(ph->name, name) != 0) {
            continue;
        }
        bool prod = ph->producing && !ph->consuming;
        double secs = prod ? ph->r.produce_s : ph->r.consume_s;
        uint64_t recs = prod ? ph->r.produced : ph->r.consumed;
        v[n++] = secs > 0 ? (double)recs / secs : 0;
        if (ph->r.broker_cpu_pct >= 0 && recs > 0) {
            cpu[n_cpu++] = ph->r.broker_cpu_pct / 100 * ph->r.self.wall_s * 1e6 / (double)recs;
        }
    }
    *rps = median(v, n);
    *broker_us = median(cpu, n_cpu);
    return n;
}

/* The comparison of the phase with a Kafka target, when the session ran it
 * through both protocols; false otherwise. */
static bool compare_protocols(const struct session *s, struct comparison *c)
{
    if (s->o.protocols != SESSION_BOTH) {
        return false;
    }
    const char *phase = session_cmd_name(s->o.cmd);
    for (size_t i = 0; i < ARRAY_LEN(kafka_targets); i++) {
        if (strcmp(kafka_targets[i].phase, phase) != 0) {
            continue;
        }
        uint32_t n[2];
        *c = (struct comparison){.phase = phase, .target = kafka_targets[i].ratio};
        for (enum load_protocol p = LOAD_NAGARE; p <= LOAD_KAFKA; p++) {
            n[p] = phase_medians(s, phase, p, &c->median[p], &c->broker_us[p]);
        }
        c->rounds = n[0] < n[1] ? n[0] : n[1];
        c->ratio = c->median[LOAD_NAGARE] > 0 ? c->median[LOAD_KAFKA] / c->median[LOAD_NAGARE] : 0;
        return c->rounds > 0;
    }
    return false;
}

static void print_comparison(const struct session *s, FILE *out)
{
    struct comparison c;
    if (!compare_protocols(s, &c)) {
        return;
    }
    fprintf(
        out,
        "\nKafka's protocol against nagare's own, %s, median of %u round(s):\n"
        "  nagare %.0f records/s (%.1f MB/s), kafka %.0f records/s (%.1f MB/s)\n"
        "  kafka/nagare %.2f: target >= %.2f %s\n"
        "  the broker's CPU per record: nagare %.3f us, kafka %.3f us\n",
        c.phase, c.rounds, c.median[LOAD_NAGARE], c.median[LOAD_NAGARE] * s->o.record_bytes / 1e6,
        c.median[LOAD_KAFKA], c.median[LOAD_KAFKA] * s->o.record_bytes / 1e6, c.ratio, c.target,
        c.ratio >= c.target ? "met" : "MISSED", c.broker_us[LOAD_NAGARE], c.broker_us[LOAD_KAFKA]);
}

static void print_table(const struct session *s, FILE *out)
{
    print_header(s, out);
    fprintf(out, "%-14s %11s %8s %11s %8s  %-9s %8s %8s %8s %8s %8s\n", "phase", "records",
            "seconds", "records/s", "MB/s", "latency", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms",
            "max ms");
    for (uint32_t i = 0; i < s->phase_count; i++) {
        struct row rows[2];
        uint32_t n = phase_rows(s, &s->phases[i], rows);
        for (uint32_t j = 0; j < n; j++) {
            print_row(&rows[j], s->o.record_bytes, out);
        }
    }
    fputc('\n', out);
    for (uint32_t i = 0; i < s->phase_count; i++) {
        print_cpu(s, &s->phases[i], out);
    }
    fprintf(out, "\nMB = 10^6 value bytes. send>ack: from the (intended) send to the delivery "
                 "report;\nsend>recv: from the intended send to the consumer's receipt. "
                 "CPU: 100%% = one core; box: all cores.\n");
    print_comparison(s, out);
}

/* ---- JSON ---- */

static void json_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\') {
            fprintf(out, "\\%c", *p);
        } else if (*p < 0x20) {
            fprintf(out, "\\u%04x", *p);
        } else {
            fputc(*p, out);
        }
    }
    fputc('"', out);
}

static void json_lat(FILE *out, const struct hist *h)
{
    if (h == NULL || h->count == 0) {
        fprintf(out, "null");
        return;
    }
    fprintf(out,
            "{\"count\": %" PRIu64 ", \"mean\": %.4f, \"p50\": %.4f, \"p90\": %.4f, "
            "\"p99\": %.4f, \"p99_9\": %.4f, \"max\": %.4f}",
            h->count, hist_mean(h) / 1e6, ms(hist_percentile(h, 50)), ms(hist_percentile(h, 90)),
            ms(hist_percentile(h, 99)), ms(hist_percentile(h, 99.9)), ms(h->max));
}

static void json_row(FILE *out, const char *key, const struct row *w, uint32_t record_bytes)
{
    double rps = w->seconds > 0 ? (double)w->records / w->seconds : 0;
    fprintf(out,
            "\"%s\": {\"records\": %" PRIu64 ", \"seconds\": %.4f, \"records_per_s\": %.1f, "
            "\"mb_per_s\": %.2f, \"latency_ms\": ",
            key, w->records, w->seconds, rps, rps * record_bytes / 1e6);
    json_lat(out, w->lat);
    fprintf(out, "}, ");
}

static void json_phase(const struct session *s, const struct session_phase *ph, FILE *out)
{
    const struct load_result *r = &ph->r;
    struct row rows[2];
    uint32_t n = phase_rows(s, ph, rows);
    fprintf(out, "{\"name\": ");
    json_str(out, ph->name);
    fprintf(out, ", \"protocol\": \"%s\", ", protocol_name(ph->protocol));
    for (uint32_t j = 0; j < n; j++) {
        bool prod = ph->producing && (j == 1 || !ph->consuming);
        json_row(out, prod ? "produce" : "consume", &rows[j], s->o.record_bytes);
    }
    double wall = r->self.wall_s > 0 ? r->self.wall_s : 1;
    fprintf(out,
            "\"errors\": %" PRIu64 ", \"cpu\": {\"broker_pct\": %.1f, "
            "\"broker_thread_max_pct\": %.1f, \"broker_thread\": ",
            r->produce_errors + (r->consume_err != 0 ? 1 : 0), r->broker_cpu_pct,
            r->broker_thread_max_pct);
    json_str(out, r->broker_thread_comm);
    fprintf(out,
            ", \"bench_pct\": %.1f, \"producer_thread_max_pct\": %.1f, "
            "\"consumer_thread_max_pct\": %.1f, \"bench_thread_max_pct\": %.1f, "
            "\"box_pct\": %.1f}, "
            "\"broker_rss_max_mib\": %.1f, \"broker_hwm_mib\": %.1f, \"limit\": ",
            100 * (r->self.user_s + r->self.sys_s) / wall, r->producer_thread_max_pct,
            r->consumer_thread_max_pct, r->bench_thread_max_pct, r->self.machine_busy * 100,
            mib(r->broker_rss_max_kib), mib(r->broker_hwm_kib));
    char limit[256];
    limit_text(ph, limit, sizeof(limit));
    json_str(out, limit);
    fprintf(out, "}");
}

static void print_json(const struct session *s, FILE *out)
{
    const struct session_opts *o = &s->o;
    fprintf(out, "{\"command\": \"%s\", \"broker\": {\"bootstrap\": ", session_cmd_name(o->cmd));
    json_str(out, s->broker.bootstrap);
    fprintf(out, ", \"kafka_bootstrap\": ");
    json_str(out, s->broker.kafka_bootstrap);
    fprintf(out, ", \"protocols\": \"%s\", \"rounds\": %u",
            o->protocols == SESSION_BOTH    ? "both"
            : o->protocols == SESSION_KAFKA ? "kafka"
                                            : "nagare",
            o->rounds);
    fprintf(out, ", \"pid\": %d, \"spawned\": %s}, \"config\": {\"topic\": ", s->broker.pid,
            s->broker.spawned ? "true" : "false");
    json_str(out, o->topic);
    fprintf(out,
            ", \"partitions\": %d, \"replication_factor\": %d, \"records\": %" PRIu64
            ", \"record_bytes\": %u, "
            "\"producers\": %u, \"consumers\": %u, \"batch_bytes\": %zu, \"linger_ms\": %u, "
            "\"acks\": %d, \"compression\": \"%s\", \"idempotent\": %s, \"inflight\": %u, "
            "\"rate\": %.1f, \"idle_connections\": %u, \"warmup_mib\": %" PRIu64 "}, "
            "\"phases\": [",
            s->partitions, s->replication_factor, o->records, o->record_bytes, o->producers,
            o->consumers, o->batch_bytes, o->linger_ms, o->acks,
            o->compression == NAGARE_COMPRESSION_ZSTD ? "zstd" : "none",
            o->idempotent ? "true" : "false", o->inflight, o->rate, s->idle_open, o->warmup_mib);
    for (uint32_t i = 0; i < s->phase_count; i++) {
        fprintf(out, "%s", i > 0 ? ", " : "");
        json_phase(s, &s->phases[i], out);
    }
    fprintf(out, "]");
    struct comparison c;
    if (compare_protocols(s, &c)) {
        fprintf(out,
                ", \"kafka_vs_nagare\": {\"phase\": \"%s\", \"rounds\": %u, "
                "\"nagare_records_per_s\": %.1f, \"kafka_records_per_s\": %.1f, "
                "\"ratio\": %.3f, \"target\": %.2f, \"met\": %s, "
                "\"nagare_broker_us_per_record\": %.4f, \"kafka_broker_us_per_record\": %.4f}",
                c.phase, c.rounds, c.median[LOAD_NAGARE], c.median[LOAD_KAFKA], c.ratio, c.target,
                c.ratio >= c.target ? "true" : "false", c.broker_us[LOAD_NAGARE],
                c.broker_us[LOAD_KAFKA]);
    }
    fprintf(out, "}\n");
}

void session_report(const struct session *s, FILE *out)
{
    if (s->o.json) {
        print_json(s, out);
    } else {
        print_table(s, out);
    }
}
