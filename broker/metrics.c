/*
 * broker/metrics.c — the broker's metrics in Prometheus's text format, and
 * its readiness (broker/metrics.h).
 */
#include "broker/metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "broker/kafka_serve.h"
#include "broker/server.h"
#include "broker/share_serve.h"

void metrics_request_done(struct server_metrics *m, uint16_t tag, uint64_t handler_ns, bool failed)
{
    uint32_t api = tag & METRICS_TAG_API_MASK;
    if (api == 0) {
        m->untagged++;
        return;
    }
    struct metrics_api *a = NULL;
    if ((tag & METRICS_TAG_KAFKA) != 0) {
        ASSERT(api <= KAFKA_API_COUNT);
        a = &m->kafka[api - 1];
    } else {
        ASSERT(api <= PROTO_API_COUNT);
        a = &m->nagare[api - 1];
    }
    a->requests++;
    a->errors += failed || (tag & METRICS_TAG_ERROR) != 0;
    histo_record(&a->latency, handler_ns);
}

/* ---- the text ---- */

/* A growing buffer; after a failed allocation it only counts (oom). */
struct text {
    char *buf;
    size_t len;
    size_t cap;
    bool oom;
};

__attribute__((format(printf, 2, 3))) static void put(struct text *t, const char *fmt, ...)
{
    for (;;) {
        size_t room = t->cap - t->len;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->oom ? NULL : t->buf + t->len, t->oom ? 0 : room, fmt, ap);
        va_end(ap);
        ASSERT(n >= 0);
        if (t->oom) {
            return;
        }
        if ((size_t)n < room) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap * 2 > t->len + (size_t)n + 1 ? t->cap * 2 : t->len + (size_t)n + 1;
        char *b = realloc(t->buf, cap);
        if (b == NULL) {
            t->oom = true;
            return;
        }
        t->buf = b;
        t->cap = cap;
    }
}

/* A label value, escaped as the format asks: backslash, quote, newline. */
static void put_label(struct text *t, const char *v)
{
    put(t, "\"");
    for (const char *p = v; *p != '\0'; p++) {
        switch (*p) {
        case '\\':
            put(t, "\\\\");
            break;
        case '"':
            put(t, "\\\"");
            break;
        case '\n':
            put(t, "\\n");
            break;
        default:
            put(t, "%c", *p);
        }
    }
    put(t, "\"");
}

static void family(struct text *t, const char *name, const char *type, const char *help)
{
    put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One histogram's samples (cumulative buckets in seconds, sum, count);
 * labels: "k=\"v\"," pieces or "". */
static void put_histo(struct text *t, const char *name, const char *labels, const struct histo *h)
{
    uint64_t cum = 0;
    for (uint32_t i = 0; i < HISTO_BUCKETS; i++) {
        cum += h->buckets[i];
        put(t, "%s_bucket{%sle=\"%g\"} %" PRIu64 "\n", name, labels,
            (double)histo_bounds_us[i] / 1e6, cum);
    }
    cum += h->buckets[HISTO_BUCKETS];
    put(t, "%s_bucket{%sle=\"+Inf\"} %" PRIu64 "\n", name, labels, cum);
    size_t n = strlen(labels);
    /* the sum and count take the labels without the trailing comma */
    put(t, "%s_sum{%.*s} %.9f\n", name, (int)(n > 0 ? n - 1 : 0), labels, (double)h->sum_ns / 1e9);
    put(t, "%s_count{%.*s} %" PRIu64 "\n", name, (int)(n > 0 ? n - 1 : 0), labels, h->count);
}

/* ---- requests ---- */

struct api_row {
    const char *protocol;
    const char *name;
    const struct metrics_api *m;
};

/* The served apis of both protocols, in order. Returns how many. */
static uint32_t api_rows(const struct server *s, struct api_row *rows)
{
    uint32_t n = 0;
    for (uint16_t k = 0; k < PROTO_API_COUNT; k++) {
        if (server_api_served(k)) {
            rows[n++] = (struct api_row){"nagare", proto_api_name(k), &s->metrics.nagare[k]};
        }
    }
    for (uint32_t i = 0; i < KAFKA_API_COUNT; i++) {
        if (kafka_serve_served(kafka_apis[i].key)) {
            rows[n++] = (struct api_row){"kafka", kafka_apis[i].name, &s->metrics.kafka[i]};
        }
    }
    return n;
}

static void render_requests(struct text *t, const struct server *s)
{
    struct api_row rows[PROTO_API_COUNT + KAFKA_API_COUNT];
    uint32_t n = api_rows(s, rows);
    family(t, "nagare_requests_total", "counter", "Requests answered, by protocol and api.");
    for (uint32_t i = 0; i < n; i++) {
        put(t, "nagare_requests_total{protocol=\"%s\",api=\"%s\"} %" PRIu64 "\n", rows[i].protocol,
            rows[i].name, rows[i].m->requests);
    }
    family(t, "nagare_request_errors_total", "counter",
           "Requests answered with a request-level error, or whose connection was closed "
           "for them.");
    for (uint32_t i = 0; i < n; i++) {
        put(t, "nagare_request_errors_total{protocol=\"%s\",api=\"%s\"} %" PRIu64 "\n",
            rows[i].protocol, rows[i].name, rows[i].m->errors);
    }
    family(t, "nagare_request_duration_seconds", "histogram",
           "Time from a request's arrival to its answer (waits for replication and fdatasync "
           "included, sending excluded).");
    for (uint32_t i = 0; i < n; i++) {
        char labels[128];
        snprintf(labels, sizeof(labels), "protocol=\"%s\",api=\"%s\",", rows[i].protocol,
                 rows[i].name);
        put_histo(t, "nagare_request_duration_seconds", labels, &rows[i].m->latency);
    }
}

/* ---- the loop and the ring ---- */

static void render_loop(struct text *t, struct server *s)
{
    struct loop_stats st;
    loop_stats(&s->loop, &st);
    family(t, "nagare_connections", "gauge", "Client connections open, every listener.");
    put(t, "nagare_connections %" PRIu64 "\n", st.conns);
    family(t, "nagare_connections_accepted_total", "counter", "Connections accepted.");
    put(t, "nagare_connections_accepted_total %" PRIu64 "\n", st.conns_accepted);
    family(t, "nagare_connections_refused_total", "counter",
           "Connections refused: past conn_max, or while stopping.");
    put(t, "nagare_connections_refused_total %" PRIu64 "\n", st.conns_refused);
    family(t, "nagare_memory_bytes", "gauge",
           "Request and answer buffers of the network layer: in use, and kept for reuse.");
    put(t, "nagare_memory_bytes{state=\"live\"} %" PRIu64 "\n", st.mem_bytes_live);
    put(t, "nagare_memory_bytes{state=\"cached\"} %" PRIu64 "\n", st.mem_bytes_cached);
    family(t, "nagare_memory_limit_bytes", "gauge", "The budget of those buffers (mem_bytes_max).");
    put(t, "nagare_memory_limit_bytes %" PRIu64 "\n", (uint64_t)s->cfg.mem_bytes_max);
    family(t, "nagare_memory_waits_total", "counter",
           "Times a request waited for the memory budget.");
    put(t, "nagare_memory_waits_total %" PRIu64 "\n", st.mem_waits);
    family(t, "nagare_network_bytes_total", "counter", "Bytes received and sent on connections.");
    put(t, "nagare_network_bytes_total{direction=\"in\"} %" PRIu64 "\n", st.rx_bytes);
    put(t, "nagare_network_bytes_total{direction=\"out\"} %" PRIu64 "\n", st.tx_bytes);
}

static void render_syncs(struct text *t, const struct ring *r)
{
    static const struct {
        enum ring_kind kind;
        const char *file;
    } kinds[] = {{RING_LOG_SYNC, "log"},
                 {RING_INDEX_SYNC, "index"},
                 {RING_DIR_SYNC, "dir"},
                 {RING_META_SYNC, "meta"}};
    family(t, "nagare_syncs_total", "counter",
           "fdatasync of log and index files, fsync of directories and metadata, done.");
    for (size_t i = 0; i < ARRAY_LEN(kinds); i++) {
        ASSERT(ring_kind_timed(kinds[i].kind));
        put(t, "nagare_syncs_total{file=\"%s\"} %" PRIu64 "\n", kinds[i].file,
            r->stats[kinds[i].kind].completions);
    }
    family(t, "nagare_sync_errors_total", "counter",
           "Syncs that failed (the log fails with them).");
    for (size_t i = 0; i < ARRAY_LEN(kinds); i++) {
        put(t, "nagare_sync_errors_total{file=\"%s\"} %" PRIu64 "\n", kinds[i].file,
            r->stats[kinds[i].kind].errors);
    }
    family(t, "nagare_sync_duration_seconds", "histogram",
           "Time from submitting a sync to its completion.");
    for (size_t i = 0; i < ARRAY_LEN(kinds); i++) {
        char labels[32];
        snprintf(labels, sizeof(labels), "file=\"%s\",", kinds[i].file);
        put_histo(t, "nagare_sync_duration_seconds", labels, &r->stats[kinds[i].kind].latency);
    }
}

/* ---- partitions ---- */

/* One gauge or counter per partition: the visit below calls it for every
 * partition with its value. */
struct part_metric {
    const char *name;
    const char *type;
    const char *help;
    /* the value; false to leave the partition out */
    bool (*value)(const struct bpart *bp, int64_t *out);
};

static bool leads(const struct bpart *bp)
{
    return bp->rep.role == REPLICA_SINGLE || bp->rep.role == REPLICA_LEADER;
}

static bool v_start(const struct bpart *bp, int64_t *out)
{
    *out = part_offset_earliest(&bp->log);
    return true;
}
static bool v_end(const struct bpart *bp, int64_t *out)
{
    *out = part_offset_next(&bp->log);
    return true;
}
static bool v_hw(const struct bpart *bp, int64_t *out)
{
    *out = part_offset_latest(&bp->log);
    return true;
}
static bool v_size(const struct bpart *bp, int64_t *out)
{
    *out = (int64_t)part_bytes(&bp->log);
    return true;
}
static bool v_segments(const struct bpart *bp, int64_t *out)
{
    *out = part_segment_count(&bp->log);
    return true;
}
static bool v_records_in(const struct bpart *bp, int64_t *out)
{
    *out = (int64_t)bp->counters.records_in;
    return true;
}
static bool v_bytes_in(const struct bpart *bp, int64_t *out)
{
    *out = (int64_t)bp->counters.bytes_in;
    return true;
}
static bool v_records_out(const struct bpart *bp, int64_t *out)
{
    *out = (int64_t)bp->counters.records_out;
    return true;
}

static bool v_bytes_out(const struct bpart *bp, int64_t *out)
{
    *out = (int64_t)bp->counters.bytes_out;
    return true;
}
static bool v_leader(const struct bpart *bp, int64_t *out)
{
    *out = leads(bp);
    return true;
}
static bool v_replicas(const struct bpart *bp, int64_t *out)
{
    *out = bp->rep.role == REPLICA_SINGLE ? 1 : bp->rep.replica_count;
    return true;
}
static bool v_isr(const struct bpart *bp, int64_t *out)
{
    *out = bp->rep.role == REPLICA_SINGLE ? 1 : bp->rep.isr_count;
    return leads(bp); /* the leader's view is the one that counts */
}
static bool v_under(const struct bpart *bp, int64_t *out)
{
    *out = bp->rep.role == REPLICA_LEADER && bp->rep.isr_count < bp->rep.replica_count;
    return leads(bp);
}
static bool v_leader_changes(const struct bpart *bp, int64_t *out)
{
    *out = (int64_t)bp->counters.leader_changes;
    return true;
}

static const struct part_metric part_metrics[] = {
    {"nagare_partition_log_start_offset", "gauge", "The first offset the partition holds.",
     v_start},
    {"nagare_partition_log_end_offset", "gauge", "The offset the next record will get.", v_end},
    {"nagare_partition_high_watermark", "gauge",
     "One past the last offset consumers may read (replicated, on a cluster).", v_hw},
    {"nagare_partition_size_bytes", "gauge", "Bytes of the partition's log segments.", v_size},
    {"nagare_partition_segments", "gauge", "Log segments of the partition.", v_segments},
    {"nagare_partition_records_in_total", "counter", "Records appended by producers.",
     v_records_in},
    {"nagare_partition_bytes_in_total", "counter", "Batch bytes appended by producers.",
     v_bytes_in},
    {"nagare_partition_records_out_total", "counter",
     "Records sent to consumers and followers (past the offset each fetch asked for).",
     v_records_out},
    {"nagare_partition_bytes_out_total", "counter", "Batch bytes sent to consumers and followers.",
     v_bytes_out},
    {"nagare_partition_leader", "gauge", "1 where this broker leads the partition.", v_leader},
    {"nagare_partition_replicas", "gauge", "Copies of the partition.", v_replicas},
    {"nagare_partition_in_sync_replicas", "gauge",
     "Copies in the in-sync set, as the leader sees it (leaders only).", v_isr},
    {"nagare_partition_under_replicated", "gauge",
     "1 where the in-sync set lacks a copy (leaders only).", v_under},
    {"nagare_partition_leader_changes_total", "counter",
     "Times the partition's leader or leader epoch changed, as this broker saw it.",
     v_leader_changes},
};

/* Calls fn for every open partition, at most METRICS_PARTITIONS_MAX;
 * returns how many were left out. */
static uint32_t for_each_part(struct server *s, void (*fn)(void *arg, const struct bpart *bp),
                              void *arg)
{
    uint32_t seen = 0, left = 0;
    for (uint32_t i = 0; i < s->topic_count; i++) {
        const struct server_topic *tp = s->topics[i];
        for (int32_t p = 0; p < tp->cfg.partitions; p++) {
            const struct bpart *bp = &tp->parts[p];
            if (!bp->open) {
                continue;
            }
            if (seen++ >= METRICS_PARTITIONS_MAX) {
                left++;
                continue;
            }
            fn(arg, bp);
        }
    }
    return left;
}

struct part_visit {
    struct text *t;
    const struct part_metric *m;
    uint64_t under; /* under-replicated partitions led here */
};

static void put_part_labels(struct text *t, const struct bpart *bp)
{
    put(t, "{topic=");
    put_label(t, bp->topic->name);
    put(t, ",partition=\"%d\"}", bp->index);
}

static void visit_part(void *arg, const struct bpart *bp)
{
    struct part_visit *v = arg;
    int64_t value;
    if (v->m->value(bp, &value)) {
        put(v->t, "%s", v->m->name);
        put_part_labels(v->t, bp);
        put(v->t, " %" PRId64 "\n", value);
    }
}

static void visit_lag(void *arg, const struct bpart *bp)
{
    struct part_visit *v = arg;
    if (bp->rep.role != REPLICA_LEADER) {
        return;
    }
    int64_t end = part_offset_written(&bp->log);
    for (uint8_t i = 0; i < bp->rep.replica_count; i++) {
        const struct replica_peer *peer = &bp->rep.peers[i];
        if (peer->id == bp->server->broker_id) {
            continue;
        }
        put(v->t, "nagare_partition_follower_lag_records{topic=");
        put_label(v->t, bp->topic->name);
        put(v->t, ",partition=\"%d\",replica=\"%d\"} %" PRId64 "\n", bp->index, peer->id,
            peer->durable < 0 ? end : (end > peer->durable ? end - peer->durable : 0));
    }
}

static void count_under(void *arg, const struct bpart *bp)
{
    struct part_visit *v = arg;
    int64_t under = 0;
    v->under += v_under(bp, &under) && under != 0;
}

static uint32_t render_partitions(struct text *t, struct server *s)
{
    uint32_t left = 0;
    struct part_visit v = {.t = t};
    for (size_t i = 0; i < ARRAY_LEN(part_metrics); i++) {
        v.m = &part_metrics[i];
        family(t, v.m->name, v.m->type, v.m->help);
        left = for_each_part(s, visit_part, &v);
    }
    family(t, "nagare_partition_follower_lag_records", "gauge",
           "Records a follower's durable copy is behind the leader's log (leaders only).");
    (void)for_each_part(s, visit_lag, &v);
    family(t, "nagare_under_replicated_partitions", "gauge",
           "Partitions this broker leads whose in-sync set lacks a copy.");
    (void)for_each_part(s, count_under, &v);
    put(t, "nagare_under_replicated_partitions %" PRIu64 "\n", v.under);
    return left;
}

/* ---- consumer groups ---- */

static int first_batch(void *arg, const struct batch_header *h)
{
    *(int64_t *)arg = h->timestamp_first_ms;
    return 1; /* the one holding the offset is enough */
}

void metrics_group_lag(struct server *s, struct offsets_entry *e, int64_t now_ms,
                       uint32_t *reads_left, int64_t *records, int64_t *ms, bool *found)
{
    struct server_topic *tp =
        server_topic_find(s, (struct proto_str){e->topic, (int32_t)strlen(e->topic)});
    *found = tp != NULL && e->partition >= 0 && e->partition < tp->cfg.partitions &&
             tp->parts[e->partition].open;
    *records = 0;
    *ms = 0;
    if (!*found) {
        return;
    }
    struct bpart *bp = &tp->parts[e->partition];
    int64_t hw = part_offset_latest(&bp->log);
    int64_t from =
        e->offset > part_offset_earliest(&bp->log) ? e->offset : part_offset_earliest(&bp->log);
    *records = hw > e->offset ? hw - from : 0;
    if (*records == 0) {
        return;
    }
    struct offsets_lag_memo *m = &e->lag;
    int64_t mono = clock_mono_ms();
    bool fresh = m->offset == from && mono - m->read_ms < METRICS_LAG_MEMO_MS;
    if (!fresh && *reads_left > 0) {
        (*reads_left)--;
        s->metrics.lag_reads++;
        int64_t ts = -1;
        if (part_for_each_batch(&bp->log, from, first_batch, &ts) != 1) {
            ts = -1;
        }
        *m = (struct offsets_lag_memo){.offset = from, .ts_ms = ts, .read_ms = mono};
    }
    if (m->offset >= 0 && m->ts_ms >= 0) {
        *ms = now_ms > m->ts_ms ? now_ms - m->ts_ms : 0;
    }
}

static void render_groups(struct text *t, struct server *s)
{
    family(t, "nagare_group_committed_offset", "gauge",
           "A consumer group's committed offset of a partition.");
    family(t, "nagare_group_lag_records", "gauge",
           "Records between a group's committed offset and the high watermark.");
    family(t, "nagare_group_lag_seconds", "gauge",
           "Age of the first record a group has not consumed (0 when it is caught up).");
    if (!s->offsets_ready || !s->offsets.open) {
        return;
    }
    int64_t now_ms = clock_wall_ms();
    uint32_t rows = 0;
    uint32_t reads_left = METRICS_LAG_READS_MAX;
    for (uint32_t g = 0; g < s->offsets.count; g++) {
        const struct offsets_group *grp = &s->offsets.groups[g];
        for (uint32_t i = 0; i < grp->count && rows < METRICS_GROUP_PARTITIONS_MAX; i++, rows++) {
            struct offsets_entry *e = &grp->entries[i];
            int64_t records, ms;
            bool found;
            metrics_group_lag(s, e, now_ms, &reads_left, &records, &ms, &found);
            static const char *const names[] = {"nagare_group_committed_offset",
                                                "nagare_group_lag_records",
                                                "nagare_group_lag_seconds"};
            for (size_t k = 0; k < ARRAY_LEN(names); k++) {
                if (k > 0 && !found) {
                    break; /* a topic gone or not here: no lag to tell */
                }
                put(t, "%s{group=", names[k]);
                put_label(t, grp->id);
                put(t, ",topic=");
                put_label(t, e->topic);
                put(t, ",partition=\"%d\"} ", e->partition);
                if (k == 0) {
                    put(t, "%" PRId64 "\n", e->offset);
                } else if (k == 1) {
                    put(t, "%" PRId64 "\n", records);
                } else {
                    put(t, "%.3f\n", (double)ms / 1e3);
                }
            }
        }
    }
}

/* ---- share groups ---- */

static void render_share(struct text *t, const struct server *s)
{
    const struct queue *q = s->queue;
    bool serving = q != NULL && q->reg_ready && q->served != NULL;
    struct share_reg_stats st = serving ? q->reg.stats : (struct share_reg_stats){0};
    const struct {
        const char *name;
        const char *help;
        uint64_t value;
    } counters[] = {
        {"nagare_share_deliveries_total", "Records handed to share-group members.", st.deliveries},
        {"nagare_share_redeliveries_total",
         "Of them, records delivered before (released, expired, or their member gone).",
         st.redeliveries},
        {"nagare_share_dead_lettered_total",
         "Records dead-lettered: rejected, or at share_delivery_max deliveries.", st.dead_lettered},
    };
    for (size_t i = 0; i < ARRAY_LEN(counters); i++) {
        family(t, counters[i].name, "counter", counters[i].help);
        put(t, "%s %" PRIu64 "\n", counters[i].name, counters[i].value);
    }
    static const struct {
        const char *state;
        enum share_state value;
    } states[] = {{"acquired", SHARE_ACQUIRED},
                  {"available", SHARE_AVAILABLE},
                  {"dead_letter_pending", SHARE_DEADLETTER}};
    family(t, "nagare_share_records", "gauge",
           "Records of a share group's window by state: acquired (in flight, locked by a "
           "member), available (waiting for redelivery), dead_letter_pending (decided dead, "
           "not yet copied to the dead-letter topic).");
    if (!serving) {
        return;
    }
    uint32_t n =
        q->reg.count < METRICS_GROUP_PARTITIONS_MAX ? q->reg.count : METRICS_GROUP_PARTITIONS_MAX;
    for (uint32_t i = 0; i < n; i++) {
        const struct share_part *sp = q->reg.parts[i];
        for (size_t k = 0; k < ARRAY_LEN(states); k++) {
            put(t, "nagare_share_records{group=");
            put_label(t, sp->group);
            put(t, ",topic=");
            put_label(t, sp->topic);
            put(t, ",partition=\"%d\",state=\"%s\"} %u\n", sp->partition, states[k].state,
                share_part_count(sp, states[k].value));
        }
    }
}

/* ---- the cluster ---- */

static void render_cluster(struct text *t, const struct server *s)
{
    bool clustered = broker_config_clustered(&s->cfg);
    family(t, "nagare_broker_id", "gauge", "This broker's id (0 for a single broker).");
    put(t, "nagare_broker_id %d\n", s->broker_id);
    family(t, "nagare_cluster_session_up", "gauge",
           "1 while this broker holds its registration in etcd (a view that does not fence "
           "it); a single broker: 1.");
    put(t, "nagare_cluster_session_up %d\n", !clustered || (s->view != NULL && !s->view->fenced));
    if (!clustered) {
        return;
    }
    family(t, "nagare_cluster_brokers", "gauge", "Live brokers in the cluster's view.");
    put(t, "nagare_cluster_brokers %u\n", s->view != NULL ? s->view->broker_count : 0);
    family(t, "nagare_cluster_controller", "gauge", "The controller's broker id; -1: none.");
    put(t, "nagare_cluster_controller %d\n", s->view != NULL ? s->view->controller : -1);
}

int metrics_render(struct server *s, char **out, size_t *len)
{
    struct text t = {.buf = malloc(64 << 10), .cap = 64 << 10};
    t.oom = t.buf == NULL;
    family(&t, "nagare_build_info", "gauge", "The broker's version, as a label.");
    put(&t, "nagare_build_info{version=\"%s\"} 1\n", broker_config_version());
    render_cluster(&t, s);
    render_requests(&t, s);
    render_loop(&t, s);
    render_syncs(&t, &s->ring);
    uint32_t left = render_partitions(&t, s);
    render_groups(&t, s);
    family(&t, "nagare_group_lag_reads_total", "counter",
           "Batch headers read from logs for the age of group lag (remembered between scrapes).");
    put(&t, "nagare_group_lag_reads_total %" PRIu64 "\n", s->metrics.lag_reads);
    render_share(&t, s);
    family(&t, "nagare_metrics_truncated", "gauge",
           "Partitions left out of this scrape (past METRICS_PARTITIONS_MAX).");
    put(&t, "nagare_metrics_truncated %u\n", left);
    if (t.oom) {
        free(t.buf);
        return -ENOMEM;
    }
    *out = t.buf;
    *len = t.len;
    return 0;
}

/* In a cluster: the first partition the view gives this broker whose
 * leader it does not know (the view names none, or the partition has not
 * taken it here yet: not open, or a follower without one); why says
 * which. False when every one is known. */
static bool ready_partition_missing(const struct server *s, char *why, size_t cap)
{
    const struct cluster_view *v = s->view;
    for (uint32_t i = 0; i < v->topic_count; i++) {
        const struct cluster_topic *ct = &v->topics[i];
        for (int32_t p = 0; p < ct->partitions; p++) {
            const struct cluster_partition *cp = &ct->parts[p];
            if (!cluster_partition_has_replica(cp, s->broker_id)) {
                continue;
            }
            const struct server_topic *t = server_topic_find(
                (struct server *)s,
                (struct proto_str){.ptr = ct->name, .len = (int32_t)strlen(ct->name)});
            const struct bpart *bp = t != NULL && p < t->cfg.partitions ? &t->parts[p] : NULL;
            const char *what = cp->leader == CLUSTER_LEADER_NONE ? "has no leader"
                               : bp == NULL || !bp->open         ? "is not open here yet"
                               : bp->rep.role == REPLICA_FOLLOWER && bp->rep.leader < 0
                                   ? "has no leader here yet"
                                   : NULL;
            if (what != NULL) {
                snprintf(why, cap, "topic %s partition %d %s", ct->name, p, what);
                return true;
            }
        }
    }
    return false;
}

bool metrics_ready(const struct server *s, char *why, size_t cap)
{
    const char *missing = NULL;
    bool clustered = broker_config_clustered(&s->cfg);
    if (!s->catalog_ready || !s->offsets_ready || s->queue == NULL) {
        missing = "the data directory is not open";
    } else if (clustered && s->view == NULL) {
        missing = "no cluster view yet";
    } else if (clustered && s->view->fenced) {
        missing = "this broker's registration in etcd is not sure";
    } else if (clustered && ready_partition_missing(s, why, cap)) {
        return false;
    }
    if (missing != NULL) {
        snprintf(why, cap, "%s", missing);
        return false;
    }
    return true;
}
