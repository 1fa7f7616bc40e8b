/*
 * broker/dlq.c — dead letters: copies of records a share group gave up on
 * (rejected, or past the maximum delivery count) appended to the topic's
 * dead-letter topic, and DlqRedrive, which republishes them to where they
 * came from. The contract with broker/share_serve.c is broker/share_serve.h.
 *
 * A copy keeps the record's key, value and headers (less any nagare.dlq.*
 * header from an earlier hop) and adds five headers, values as text:
 * nagare.dlq.topic, nagare.dlq.partition, nagare.dlq.offset,
 * nagare.dlq.delivery-count and nagare.dlq.reason ("rejected" or "max
 * deliveries"); its timestamp is when it was copied. Copies of one share
 * part's dead letters go as one batch, appended durably to partition 0 of
 * "<topic>.dlq" (created on demand with the broker's defaults and one
 * partition); only once that append completed are the records archived
 * (share_part_dead_done) and the archive flushed to the state log. A crash
 * in between copies them again: dead-letter copies are at-least-once, and
 * the headers identify a duplicate.
 *
 * Redrive reads a dead-letter topic from its redrive mark (a committed
 * offset of the internal group "__redrive" in the offsets store, per
 * dead-letter partition; none: the log start) to the end it had when the
 * redrive reached that partition, in chunks: each chunk's records are
 * republished durably to the topic and partition their headers name
 * (original key, value and headers, less nagare.dlq.*), then the mark is
 * committed past the chunk, durably; a record whose headers name no
 * partition that exists, or one of the broker's own topics ("__..."), is
 * skipped and logged in the count. A second redrive starts at the mark,
 * so it does not republish what the first did; a crash between a chunk's
 * republishing and its mark republishes that chunk again (at-least-once).
 * A request from version 1 reads at most the dead letters it names (its
 * budget; a chunk stops at the record that would pass it, the mark there)
 * and answers how many remain past the marks: the client repeats it to
 * redrive a large topic in bounded steps, each resuming at the marks, so
 * each record is republished once across requests and restarts between
 * them.
 *
 * With the authorizer on, a redrive needs READ and WRITE on the dead-letter
 * topic (the dispatcher's rule) and WRITE on every topic it republishes
 * to, checked as its asker (the principal and address it started with)
 * once per run of records bound for one topic. The first record bound for
 * a topic the asker may not write stops the redrive with NG_EUNAUTHORIZED,
 * logged with the topic's name: nothing goes to that topic, and the mark
 * stays before the chunk (what the chunk republished before it goes again
 * next time, as after a crash).
 *
 * In a cluster a redrive runs at the offsets coordinator, on dead-letter
 * partitions it leads. A chunk's records bound for a partition it leads
 * are appended here, acks=all (answered once the high watermark passes
 * them with enough in-sync replicas); those bound for a partition another
 * broker leads, or one this broker holds no replica of (the topic and its
 * partitions are looked up in the cluster's view), are forwarded to that
 * leader (broker/forward.h): a Produce, acks=all, batching every record
 * bound for that broker, allowed there by the brokers' cluster_action.
 * The chunk's mark is committed only once every batch of it is durable
 * where it went. A forwarded batch refused for a reason a leader change
 * explains goes again to whoever the view then names, for
 * redrive_retry_ms; then, or on any other failure, the step fails with
 * that error and the mark stays before the chunk (at-least-once, as
 * above: what the chunk wrote elsewhere goes again next time).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "broker/acl_serve.h"
#include "broker/forward.h"
#include "broker/share_serve.h"

#define DLQ_SUFFIX ".dlq"
#define DLQ_SUFFIX_BYTES 4
/* Dead letters of one part copied by one append, and copies in flight in
 * all: bounds the memory dead letters take; the window bound
 * (inflight_max) pushes back on the rest. */
#define DLQ_JOB_RECORDS_MAX 256
#define DLQ_JOBS_MAX 16
/* After a copy fails (no dead-letter topic, a full disk), copies wait this
 * long rather than retry every housekeeping tick. */
#define DLQ_RETRY_MS 1000
/* A cluster: how often a coordinator that does not lead a dead-letter
 * partition asks to lead it (a move takes a controller pass or two). */
#define DLQ_LEAD_ASK_MS 10000
/* The headers a copy adds, and room for their values. */
#define DLQ_HEADERS 5
#define DLQ_HEADER_PREFIX "nagare.dlq."
/* Redrive: dead-letter bytes read per chunk (at least one batch), and
 * redrives running at once (each holds a connection's request). */
#define REDRIVE_CHUNK_BYTES (1u << 20)
#define REDRIVES_MAX 16

static_assert(sizeof(QUEUE_REDRIVE_GROUP) - 1 <= PROTO_GROUP_ID_BYTES_MAX, "a valid group id");

/* ---- names and buffers ---- */

size_t dlq_name(const char *topic, size_t len, char out[PROTO_TOPIC_NAME_BYTES_MAX + 1])
{
    size_t keep = len;
    if (keep + DLQ_SUFFIX_BYTES > PROTO_TOPIC_NAME_BYTES_MAX) {
        keep = PROTO_TOPIC_NAME_BYTES_MAX - DLQ_SUFFIX_BYTES;
        bool same = keep + DLQ_SUFFIX_BYTES == len &&
                    memcmp(topic + keep, DLQ_SUFFIX, DLQ_SUFFIX_BYTES) == 0;
        keep -= same ? 1 : 0; /* the cut name would be the topic itself */
    }
    memcpy(out, topic, keep);
    memcpy(out + keep, DLQ_SUFFIX, DLQ_SUFFIX_BYTES + 1);
    return keep + DLQ_SUFFIX_BYTES;
}

/* Makes the buffers dead letters and redrives read and build batches in,
 * sized for the largest batch the broker accepts (and its records
 * decompressed, as Produce verified them). */
static int dlq_buffers(struct server *s)
{
    struct queue *q = s->queue;
    if (q->dlq_src != NULL) {
        return 0;
    }
    size_t max = (size_t)s->cfg.batch_bytes_max; /* >= every topic's */
    q->dlq_src = malloc(max);
    q->dlq_recs = malloc(s->scratch_bytes);
    q->dlq_out = malloc(max);
    if (q->dlq_src == NULL || q->dlq_recs == NULL || q->dlq_out == NULL) {
        dlq_fini(q);
        return -ENOMEM;
    }
    q->dlq_src_cap = max;
    q->dlq_recs_cap = s->scratch_bytes;
    q->dlq_out_cap = max;
    return 0;
}

void dlq_fini(struct queue *q)
{
    free(q->dlq_src);
    free(q->dlq_recs);
    free(q->dlq_out);
    free(q->kv);
    q->dlq_src = q->dlq_recs = q->dlq_out = NULL;
    q->kv = NULL;
    q->kv_cap = 0;
}

/* Room for n headers in q->kv. */
static int kv_reserve(struct queue *q, uint32_t n)
{
    if (n <= q->kv_cap) {
        return 0;
    }
    struct batch_kv *grown = realloc(q->kv, (size_t)n * sizeof(*grown));
    if (grown == NULL) {
        return -ENOMEM;
    }
    q->kv = grown;
    q->kv_cap = n;
    return 0;
}

static bool is_dlq_header(const struct batch_kv *kv)
{
    size_t n = sizeof(DLQ_HEADER_PREFIX) - 1;
    return (size_t)kv->key_len >= n && memcmp(kv->key, DLQ_HEADER_PREFIX, n) == 0;
}

/* Copies rec's headers other than nagare.dlq.* into q->kv (with room for
 * `extra` more); *count_out of them. Consumes rec->headers. */
static int headers_kept(struct queue *q, struct batch_record *rec, uint32_t extra,
                        uint32_t *count_out)
{
    int rc = kv_reserve(q, rec->header_count + extra);
    uint32_t n = 0;
    struct batch_kv kv;
    while (rc == 0 && (rc = batch_record_next_header(rec, &kv)) == 1) {
        if (!is_dlq_header(&kv)) {
            q->kv[n++] = kv;
        }
        rc = 0;
    }
    *count_out = n;
    return rc;
}

/* ---- reading source records ---- */

/* Walks records of one log forward, one batch at a time. */
struct src_cursor {
    struct server *s;
    struct part *log;
    struct batch_reader br;
    bool open;
    int64_t last; /* the open batch's last offset */
};

/* The record at offset: at or after the cursor's last one. */
static int src_record(struct src_cursor *c, int64_t offset, struct batch_record *out)
{
    struct queue *q = c->s->queue;
    if (!c->open || offset > c->last) {
        struct part_read_result r;
        int rc = part_read(c->log, offset, q->dlq_src, q->dlq_src_cap, 1, &r);
        rc = rc == 0 && r.bytes == 0 ? -NG_ENOTFOUND : rc;
        rc = rc == 0 ? batch_reader_open(&c->br, q->dlq_src, r.bytes, q->dlq_src_cap, &c->s->zctx,
                                         q->dlq_recs, q->dlq_recs_cap)
                     : rc;
        c->open = rc == 0;
        if (rc != 0) {
            return rc;
        }
        c->last = batch_offset_last(&c->br.hdr);
    }
    int rc;
    while ((rc = batch_reader_next(&c->br, out)) == 1) {
        if (out->offset == offset) {
            return 0;
        }
        if (out->offset > offset) {
            break;
        }
    }
    c->open = false;
    return rc < 0 ? rc : -NG_ENOTFOUND;
}

/* ---- copying dead letters ---- */

struct dlq_job {
    struct part_append a;     /* first: the done callback casts back */
    struct replica_wait wait; /* a cluster: for the high watermark */
    struct bpart *dst;        /* the dead-letter partition */
    struct server *s;
    struct share_part *sp; /* the registry's: valid until it is freed */
    uint32_t count;
    int64_t offsets[DLQ_JOB_RECORDS_MAX];
    uint8_t batch[];
};
static_assert(offsetof(struct dlq_job, a) == 0, "dlq_job_done() casts back");

/* Adds the copy of rec (dead letter d of sp) to b. */
static int copy_add(struct queue *q, struct batch_builder *b, const struct share_part *sp,
                    const struct share_dead *d, struct batch_record *rec, int64_t now)
{
    uint32_t n;
    int rc = headers_kept(q, rec, DLQ_HEADERS, &n);
    if (rc != 0) {
        return rc;
    }
    char partition[16];
    char offset[24];
    char count[8];
    const char *reason = share_reason_str(d->reason);
    int pl = snprintf(partition, sizeof(partition), "%" PRId32, sp->partition);
    int ol = snprintf(offset, sizeof(offset), "%" PRId64, d->offset);
    int cl = snprintf(count, sizeof(count), "%u", (unsigned)d->delivery_count);
    const struct {
        const char *key;
        const void *value;
        size_t len;
    } added[DLQ_HEADERS] = {
        {DLQ_HEADER_PREFIX "topic", sp->topic, sp->topic_len},
        {DLQ_HEADER_PREFIX "partition", partition, (size_t)pl},
        {DLQ_HEADER_PREFIX "offset", offset, (size_t)ol},
        {DLQ_HEADER_PREFIX "delivery-count", count, (size_t)cl},
        {DLQ_HEADER_PREFIX "reason", reason, strlen(reason)},
    };
    for (uint32_t i = 0; i < DLQ_HEADERS; i++) {
        q->kv[n++] = (struct batch_kv){.key = (const uint8_t *)added[i].key,
                                       .key_len = (int32_t)strlen(added[i].key),
                                       .value = added[i].value,
                                       .value_len = (int32_t)added[i].len};
    }
    return batch_builder_add(b, now, rec->key, rec->key_len, rec->value, rec->value_len, q->kv, n);
}

/* Builds the copies of dead[0..n) into q->dlq_out (at most out_max
 * bytes); *built_out of them fit, *bytes_out the batch. */
static int copies_build(struct server *s, struct share_part *sp, struct part *src,
                        const struct share_dead *dead, uint32_t n, size_t out_max,
                        uint32_t *built_out, size_t *bytes_out)
{
    struct queue *q = s->queue;
    struct batch_builder b;
    batch_builder_init(&b, q->dlq_out, out_max, BATCH_CODEC_NONE, -1, 0, -1);
    struct src_cursor c = {.s = s, .log = src};
    int64_t now = s->env.now_ms();
    uint32_t built = 0;
    int rc = 0;
    while (built < n) {
        struct batch_record rec;
        rc = src_record(&c, dead[built].offset, &rec);
        rc = rc == 0 ? copy_add(q, &b, sp, &dead[built], &rec, now) : rc;
        if (rc != 0) {
            break;
        }
        built++;
    }
    if (rc != 0 && (built == 0 || rc != -NG_ENOSPACE)) {
        log_error("share group %s: dead letter %s/%d at %" PRId64 ": %s", sp->group, sp->topic,
                  sp->partition, dead[built].offset, err_str(rc));
    }
    *built_out = built;
    return built > 0 ? batch_builder_finish(&b, NULL, bytes_out) : rc;
}

/* The copy is in the dead-letter partition (rc 0; a cluster: below its
 * high watermark), or not. */
static void dlq_job_finish(struct dlq_job *j, int rc)
{
    struct server *s = j->s;
    struct queue *q = s->queue;
    ASSERT(q->dlq_jobs > 0);
    q->dlq_jobs--;
    if (rc != 0) {
        log_error("share group %s: dead letters of %s/%d: %s", j->sp->group, j->sp->topic,
                  j->sp->partition, err_str(rc));
        q->dlq_retry_ms = share_serve_now_ms(s) + DLQ_RETRY_MS;
    }
    /* Looked up first: the last dead_done() of a dropped part frees it. */
    struct bpart *bp = s->loop.stopping || q->closing ? NULL : share_serve_source(s, j->sp);
    for (uint32_t i = 0; i < j->count; i++) {
        int drc = share_part_dead_done(j->sp, j->offsets[i], rc);
        (void)drc; /* trimmed or dropped meanwhile, or the registry failed: nothing to keep */
    }
    free(j);
    if (rc == 0 && share_serve_room(q, 1)) {
        /* An archive lost in a crash only copies the record again. */
        int prc = share_serve_persist(s, false, NULL, NULL);
        (void)prc; /* a failure is logged and fails the registry */
    }
    if (bp != NULL) {
        park_wake(&bp->waiters, PARK_FREED); /* the window may have moved */
    }
}

static void dlq_job_replicated(struct replica_wait *w, int rc)
{
    /* committed on fewer replicas than asked is written all the same */
    dlq_job_finish(container_of(w, struct dlq_job, wait), rc == -NG_ENOT_ENOUGH_REPLICAS ? 0 : rc);
}

static void dlq_job_done(struct part_append *a, int rc)
{
    struct dlq_job *j = (struct dlq_job *)a;
    if (rc == 0 && j->dst->rep.role == REPLICA_LEADER && !j->s->loop.stopping) {
        j->wait.done = dlq_job_replicated;
        replica_wait_add(j->dst, &j->wait, batch_offset_last(&a->hdr) + 1);
        return;
    }
    bool led = j->dst->rep.role == REPLICA_LEADER || j->dst->rep.role == REPLICA_SINGLE;
    dlq_job_finish(j, rc == 0 && !led ? -NG_ENOT_LEADER : rc);
}

/* Gives taken dead letters back, to be taken again. */
static void give_back(struct share_part *sp, const struct share_dead *dead, uint32_t n, int rc)
{
    for (uint32_t i = 0; i < n; i++) {
        int drc = share_part_dead_done(sp, dead[i].offset, rc);
        (void)drc;
    }
}

/* Takes sp's dead letters, builds their copies and starts their append
 * to dst. */
static int copy_start(struct server *s, struct share_part *sp, struct part *src,
                      struct server_topic *dst)
{
    struct queue *q = s->queue;
    struct share_dead dead[DLQ_JOB_RECORDS_MAX];
    uint32_t n = 0;
    int rc = share_part_dead_take(sp, dead, DLQ_JOB_RECORDS_MAX, &n);
    if (rc != 0 || n == 0) {
        return rc;
    }
    size_t out_max = (size_t)dst->cfg.batch_bytes_max;
    uint32_t built = 0;
    size_t bytes = 0;
    rc = copies_build(s, sp, src, dead, n, out_max < q->dlq_out_cap ? out_max : q->dlq_out_cap,
                      &built, &bytes);
    give_back(sp, dead + built, n - built, -NG_ENOSPACE); /* the next job takes them */
    struct dlq_job *j = rc == 0 ? malloc(sizeof(*j) + bytes) : NULL;
    rc = rc == 0 && j == NULL ? -ENOMEM : rc;
    if (rc == 0) {
        *j = (struct dlq_job){.dst = &dst->parts[0], .s = s, .sp = sp, .count = built};
        for (uint32_t i = 0; i < built; i++) {
            j->offsets[i] = dead[i].offset;
        }
        memcpy(j->batch, q->dlq_out, bytes);
        j->a = (struct part_append){
            .batch = j->batch, .bytes = bytes, .durable = true, .done = dlq_job_done};
        rc = part_append(&dst->parts[0].log, &j->a);
    }
    if (rc != 0) {
        free(j);
        give_back(sp, dead, built, rc < 0 ? rc : -EIO);
        return rc;
    }
    q->dlq_jobs++;
    return 0;
}

static void lead_asked(void *arg, int rc)
{
    (void)arg;
    if (rc != 0) {
        log_warn("share groups: asking to lead a dead-letter partition: %s", err_str(rc));
    }
}

/* Copies go only through the dead-letter partition's leader, so the share
 * coordinator leads it: when another broker does (placement puts both on
 * the same broker, but a failover may part them), the coordinator asks the
 * controller to move the partition onto itself first, then the replicas it
 * has (as many as it has): the controller adds this broker as a replica if
 * it is none, waits for it to be in sync, and hands it the lead as the
 * preferred replica (docs/cluster.md, section 5). At most once per
 * DLQ_LEAD_ASK_MS, and not while a move of the partition is under way. */
static void dlq_ask_to_lead(struct server *s, const struct cluster_topic *ct)
{
    struct queue *q = s->queue;
    const struct cluster_partition *p = &ct->parts[0];
    int32_t self = s->cfg.broker_id;
    int64_t now = share_serve_now_ms(s);
    if (ct->partitions < 1 || p->leader == self || p->leader < 0 || p->target_count > 0 ||
        (p->replica_count > 0 && p->replicas[0] == self) ||
        (q->dlq_lead_ms != 0 && now - q->dlq_lead_ms < DLQ_LEAD_ASK_MS)) {
        return; /* leads; none does (an election comes first); will lead once
                   in sync (the preferred replica); or asked already */
    }
    int32_t target[CLUSTER_REPLICAS_MAX] = {self};
    uint8_t n = 1;
    for (uint8_t i = 0; i < p->replica_count && n < p->replica_count; i++) {
        if (p->replicas[i] != self) {
            target[n++] = p->replicas[i];
        }
    }
    q->dlq_lead_ms = now;
    log_info("share groups: asking to lead %s/0 (led by broker %d), where dead letters are copied",
             ct->name, p->leader);
    int rc = cluster_session_reassign(s->session, ct->name, 0, target, n, lead_asked, NULL);
    if (rc != 0) {
        lead_asked(NULL, rc);
    }
}

/* A cluster's dead-letter topic: 0 when this broker leads its partition
 * with enough in-sync replicas (copies are appended only there, acks=all),
 * 1 when not: the records stay DEADLETTER, holding their window's start
 * (nothing is lost; logged once per cause), the cluster is asked for the
 * topic when its catalog has none, and to make this broker its leader when
 * another leads it (dlq_ask_to_lead()). */
static int dlq_cluster_topic(struct server *s, const char *name, size_t len,
                             const struct server_topic *t)
{
    struct queue *q = s->queue;
    const struct cluster_topic *ct =
        s->view != NULL ? cluster_view_topic(s->view, name, len) : NULL;
    if (ct == NULL) {
        const struct cluster_topic_config cfg = {.retention_ms = PROTO_CONFIG_DEFAULT,
                                                 .retention_bytes = PROTO_CONFIG_DEFAULT,
                                                 .segment_bytes = PROTO_CONFIG_DEFAULT,
                                                 .segment_ms = PROTO_CONFIG_DEFAULT,
                                                 .batch_bytes_max = PROTO_CONFIG_DEFAULT};
        groups_topic_ensure(s, name, &cfg, &q->dlq_create_ms);
        return 1;
    }
    int rc = t != NULL ? groups_leader_writable(&t->parts[0]) : -NG_ENO_REPLICA;
    if (rc == -NG_ENOT_LEADER || rc == -NG_ENO_REPLICA) {
        dlq_ask_to_lead(s, ct);
    }
    if (rc != 0 && rc != q->dlq_wait_logged) {
        log_warn("share groups: dead letters for %s wait (%s): copies are appended only by the "
                 "leader of the dead-letter partition, with enough in-sync replicas; the records "
                 "hold their window's start meanwhile",
                 name, err_str(rc));
    }
    q->dlq_wait_logged = rc;
    return rc != 0 ? 1 : 0;
}

/* The dead-letter topic of sp's topic, created on first use. Returns 0
 * with *out, 1 when copies cannot go now (a cluster: dlq_cluster_topic()),
 * or the creation's error. */
static int dlq_topic(struct server *s, const struct share_part *sp, struct server_topic **out)
{
    char name[PROTO_TOPIC_NAME_BYTES_MAX + 1];
    size_t len = dlq_name(sp->topic, sp->topic_len, name);
    struct proto_str str = {.ptr = name, .len = (int32_t)len};
    *out = server_topic_find(s, str);
    if (broker_config_clustered(&s->cfg)) {
        return dlq_cluster_topic(s, name, len, *out);
    }
    if (*out != NULL) {
        return 0;
    }
    const struct topic_config cfg = {.partitions = 1,
                                     .retention_ms = PROTO_CONFIG_DEFAULT,
                                     .retention_bytes = PROTO_CONFIG_DEFAULT,
                                     .segment_bytes = PROTO_CONFIG_DEFAULT,
                                     .segment_ms = PROTO_CONFIG_DEFAULT,
                                     .batch_bytes_max = PROTO_CONFIG_DEFAULT};
    int rc = server_topic_create(s, str, &cfg, out);
    if (rc == 0) {
        log_info("created dead-letter topic %s", name);
    }
    return rc;
}

/* Starts one copy job for sp, when its source is still there. */
static int copy_part(struct server *s, struct share_part *sp)
{
    struct bpart *src = share_serve_source(s, sp);
    if (src == NULL) {
        return 0; /* the topic is gone: its dead letters stay, unread (docs/protocol.md) */
    }
    int rc = share_part_trim(sp, part_offset_earliest(&src->log));
    if (rc != 0 || share_part_dead_pending(sp) == 0) {
        return rc;
    }
    struct server_topic *dst;
    rc = dlq_topic(s, sp, &dst);
    if (rc == 1) {
        return 0; /* not here, or not now */
    }
    rc = rc == 0 ? dlq_buffers(s) : rc;
    return rc == 0 ? copy_start(s, sp, &src->log, dst) : rc;
}

void dlq_drive(struct server *s)
{
    struct queue *q = s->queue;
    int64_t now = share_serve_now_ms(s);
    if (q == NULL || q->closing || s->loop.stopping || q->reg.failed != 0 ||
        now < q->dlq_retry_ms) {
        return;
    }
    for (uint32_t i = 0; i < share_reg_count(&q->reg) && q->dlq_jobs < DLQ_JOBS_MAX; i++) {
        struct share_part *sp = share_reg_part(&q->reg, i);
        if (share_part_dead_pending(sp) == 0) {
            continue;
        }
        int rc = copy_part(s, sp);
        if (rc != 0) {
            log_error("share group %s: dead letters of %s/%d: %s; retrying in %d ms", sp->group,
                      sp->topic, sp->partition, err_str(rc), DLQ_RETRY_MS);
            q->dlq_retry_ms = now + DLQ_RETRY_MS;
            return;
        }
    }
}

/* ---- DlqRedrive ---- */

struct redrive {
    struct offsets_commit commit; /* first: mark_done() gets the redrive from it */
    struct server *s;
    struct loop_req *req;
    uint32_t correlation_id;
    uint16_t version;
    char dlq[PROTO_TOPIC_NAME_BYTES_MAX + 1];
    size_t dlq_len;
    int32_t partition;  /* the dead-letter partition being read */
    int64_t next;       /* its next offset to read */
    int64_t end;        /* its log end when its turn came */
    int64_t chunk_end;  /* past the chunk in flight */
    int64_t budget;     /* dead letters this request may still read */
    int64_t chunk_read; /* read by the chunk in flight */
    int64_t read;       /* read by chunks whose mark is committed */
    int64_t records;    /* republished durably */
    int64_t skipped;    /* without usable nagare.dlq.* headers, their topic gone or reserved */
    uint32_t pending;   /* appends of the chunk in flight */
    int err;
    struct redrive *next_rd; /* in q->redrives */
    /* the asker, for WRITE on the topics republished to (authorizer on) */
    char principal[PRINCIPAL_BYTES_MAX];
    struct acl_who who;                            /* principal points at the above */
    char writable[PROTO_TOPIC_NAME_BYTES_MAX + 1]; /* the last topic found writable */
    size_t writable_len;                           /* 0: none yet this chunk */
};
static_assert(offsetof(struct redrive, commit) == 0, "mark_done() casts back");

/* One batch of republished records: appended here, or (a cluster, a
 * partition another broker leads) forwarded to its leader. */
struct redrive_out {
    struct part_append a;     /* first: out_done() casts back */
    struct replica_wait wait; /* a cluster: for the high watermark */
    struct forward_batch fwd; /* forwarded: broker/forward.h */
    struct bpart *bp;         /* appended here: where */
    struct redrive *rd;
    uint32_t records;
    uint8_t batch[];
};
static_assert(offsetof(struct redrive_out, a) == 0, "out_done() casts back");

/* Where a dead letter goes back to, as its headers name it. */
struct redrive_target {
    struct proto_str topic; /* into the record */
    int32_t partition;
    struct bpart *bp; /* this broker's replica of it, or NULL (a cluster: none here) */
    size_t batch_max; /* the topic's largest batch */
};

/* Where the records being gathered go. */
struct redrive_dest {
    bool open; /* false: nothing gathered */
    struct bpart *bp;
    char topic[PROTO_TOPIC_NAME_BYTES_MAX + 1];
    size_t topic_len;
    int32_t partition;
    struct batch_builder b;
    uint32_t records;
};

static void redrive_step(struct redrive *rd);

/* Where the next redrive of dead-letter partition p starts: its mark, or
 * the log start when it has none (never redriven), when the mark is past
 * the log end (the topic was made again since) or below the log start
 * (retention removed what it named). */
static int64_t redrive_start_of(struct server *s, const char *dlq, int32_t p, struct part *log)
{
    int64_t earliest = part_offset_earliest(log);
    int64_t mark;
    if (offsets_get(&s->offsets, QUEUE_REDRIVE_GROUP, dlq, p, &mark) != 0 ||
        mark > part_offset_latest(log)) {
        mark = earliest;
    }
    return mark > earliest ? mark : earliest;
}

/* Dead letters past the marks of rd's topic now (offsets: a dead-letter
 * topic has no gaps); 0 when it is gone. */
static int64_t redrive_remaining(const struct redrive *rd)
{
    struct server *s = rd->s;
    struct server_topic *t =
        server_topic_find(s, (struct proto_str){.ptr = rd->dlq, .len = (int32_t)rd->dlq_len});
    int64_t left = 0;
    for (int32_t p = 0; t != NULL && p < t->cfg.partitions; p++) {
        struct part *log = &t->parts[p].log;
        left += part_offset_latest(log) - redrive_start_of(s, rd->dlq, p, log);
    }
    return left;
}

static void redrive_finish(struct redrive *rd, int err)
{
    struct queue *q = rd->s->queue;
    for (struct redrive **link = &q->redrives; *link != NULL; link = &(*link)->next_rd) {
        if (*link == rd) {
            *link = rd->next_rd;
            break;
        }
    }
    /* v1: what is left past the marks, for the client's next step */
    int64_t remaining = rd->dlq_len > 0 && rd->version >= 1 ? redrive_remaining(rd) : 0;
    if (rd->dlq_len == 0) {
        /* refused before it started */
    } else if (err == 0) {
        log_info("redrive of %s: %" PRId64 " records republished, %" PRId64 " skipped, %" PRId64
                 " left",
                 rd->dlq, rd->records, rd->skipped, remaining);
    } else {
        log_warn("redrive of %s: %s after %" PRId64 " records", rd->dlq, err_str(err), rd->records);
    }
    struct wr w;
    if (server_resp_begin(rd->req, rd->correlation_id, 64, &w)) {
        struct proto_dlq_redrive_resp out = {
            .err = err, .records = rd->records, .read = rd->read, .remaining = remaining};
        int rc = proto_dlq_redrive_resp_encode(&w, rd->version, rd->correlation_id, &out);
        ASSERT(rc == 0);
        server_resp_send(rd->req, &w);
    }
    free(rd);
}

static void mark_done(struct offsets_commit *c, int rc)
{
    struct redrive *rd = (struct redrive *)c;
    if (rc != 0) {
        redrive_finish(rd, rc);
        return;
    }
    rd->next = rd->chunk_end;
    rd->read += rd->chunk_read;
    redrive_step(rd);
}

/* Every append of the chunk completed: commit the mark past it. */
static void chunk_done(struct redrive *rd)
{
    if (rd->err != 0) {
        redrive_finish(rd, rd->err); /* the mark stays: the chunk is republished next time */
        return;
    }
    struct offsets_item item = {
        .topic = rd->dlq, .partition = rd->partition, .offset = rd->chunk_end};
    int rc =
        offsets_commit(&rd->s->offsets, &rd->commit, QUEUE_REDRIVE_GROUP, &item, 1, mark_done, rd);
    if (rc != 0) {
        redrive_finish(rd, rc);
    }
}

/* The batch is republished (rc 0; a cluster: below the high watermark),
 * or not. */
static void out_finish(struct redrive_out *o, int rc)
{
    struct redrive *rd = o->rd;
    if (rc == 0) {
        rd->records += o->records;
    } else if (rd->err == 0) {
        rd->err = rc;
    }
    free(o);
    ASSERT(rd->pending > 0);
    if (--rd->pending == 0) {
        chunk_done(rd);
    }
}

static void out_replicated(struct replica_wait *w, int rc)
{
    /* committed on fewer replicas than asked is written all the same */
    out_finish(container_of(w, struct redrive_out, wait), rc == -NG_ENOT_ENOUGH_REPLICAS ? 0 : rc);
}

static void out_done(struct part_append *a, int rc)
{
    struct redrive_out *o = (struct redrive_out *)a;
    if (rc == 0 && o->bp->rep.role == REPLICA_LEADER && !o->rd->s->loop.stopping) {
        o->wait.done = out_replicated;
        replica_wait_add(o->bp, &o->wait, batch_offset_last(&a->hdr) + 1);
        return;
    }
    bool led = o->bp->rep.role == REPLICA_LEADER || o->bp->rep.role == REPLICA_SINGLE;
    out_finish(o, rc == 0 && !led ? -NG_ENOT_LEADER : rc);
}

/* The forwarded batch is at its leader, below its high watermark (rc
 * 0), or not. */
static void out_forwarded(struct forward_batch *fb, int rc)
{
    out_finish(container_of(fb, struct redrive_out, fwd), rc);
}

/* Starts o's way to d's partition: appended here when this broker leads
 * it (a cluster: with enough in-sync replicas, acks=all), forwarded to its
 * leader when another broker leads it or this one holds no replica. */
static int out_start(struct redrive *rd, struct redrive_dest *d, struct redrive_out *o,
                     size_t bytes)
{
    struct bpart *bp = d->bp;
    int rc = bp != NULL ? 0 : -NG_ENO_REPLICA;
    if (broker_config_clustered(&rd->s->cfg) && bp != NULL) {
        rc = groups_leader_writable(bp);
    }
    if (broker_config_clustered(&rd->s->cfg) && (rc == -NG_ENOT_LEADER || rc == -NG_ENO_REPLICA)) {
        o->fwd = (struct forward_batch){.topic_len = d->topic_len,
                                        .partition = d->partition,
                                        .batch = o->batch,
                                        .bytes = bytes,
                                        .done = out_forwarded};
        memcpy(o->fwd.topic, d->topic, d->topic_len + 1);
        return forward_send(rd->s, &o->fwd);
    }
    if (rc != 0) {
        return rc; /* the redrive stops there, its mark before this chunk */
    }
    o->bp = bp;
    o->a =
        (struct part_append){.batch = o->batch, .bytes = bytes, .durable = true, .done = out_done};
    return part_append(&bp->log, &o->a);
}

/* Sends what d gathered on its way, durably. */
static void dest_flush(struct redrive *rd, struct redrive_dest *d)
{
    if (!d->open) {
        return;
    }
    d->open = false;
    size_t bytes = 0;
    int rc = batch_builder_finish(&d->b, NULL, &bytes);
    struct redrive_out *o = rc == 0 ? malloc(sizeof(*o) + bytes) : NULL;
    rc = rc == 0 && o == NULL ? -ENOMEM : rc;
    if (rc == 0) {
        *o = (struct redrive_out){.rd = rd, .records = d->records};
        memcpy(o->batch, rd->s->queue->dlq_out, bytes);
        rc = out_start(rd, d, o, bytes);
    }
    if (rc == 0) {
        rd->pending++;
    } else {
        free(o);
        rd->err = rd->err != 0 ? rd->err : rc;
    }
}

/* The topic and partition a dead letter's headers name, when they exist
 * (a cluster: in the cluster's view, whether or not this broker holds a
 * replica) and are not the broker's own (server_topic_reserved(): the
 * headers are whatever was written to the dead-letter topic). */
static bool record_source(struct server *s, struct batch_record rec, struct redrive_target *out)
{
    struct proto_str topic = {.ptr = NULL, .len = -1};
    int64_t partition = -1;
    struct batch_kv kv;
    while (batch_record_next_header(&rec, &kv) == 1) {
        if (kv.value_len < 0) {
            continue;
        }
        if ((size_t)kv.key_len == strlen(DLQ_HEADER_PREFIX "topic") &&
            memcmp(kv.key, DLQ_HEADER_PREFIX "topic", (size_t)kv.key_len) == 0) {
            topic = (struct proto_str){.ptr = (const char *)kv.value, .len = kv.value_len};
        } else if ((size_t)kv.key_len == strlen(DLQ_HEADER_PREFIX "partition") &&
                   memcmp(kv.key, DLQ_HEADER_PREFIX "partition", (size_t)kv.key_len) == 0) {
            partition = 0;
            for (int32_t i = 0; i < kv.value_len && partition >= 0; i++) {
                unsigned d = (unsigned)(kv.value[i] - '0');
                partition = d > 9 || partition > PROTO_PARTITIONS_MAX ? -1 : partition * 10 + d;
            }
            partition = kv.value_len == 0 ? -1 : partition;
        }
    }
    if (topic.len <= 0 || topic.len > PROTO_TOPIC_NAME_BYTES_MAX || partition < 0 ||
        server_topic_reserved(topic)) {
        return false;
    }
    struct server_topic *t = server_topic_find(s, topic);
    int32_t partitions = t != NULL ? t->cfg.partitions : 0;
    int32_t batch_max = t != NULL ? t->cfg.batch_bytes_max : 0;
    if (broker_config_clustered(&s->cfg)) {
        const struct cluster_topic *ct =
            s->view != NULL ? cluster_view_topic(s->view, topic.ptr, (size_t)topic.len) : NULL;
        /* The cluster's word; a topic no view names (one this broker kept
         * from before it joined) is only its own. */
        partitions = ct != NULL ? ct->partitions : partitions;
        if (t == NULL && ct != NULL) {
            batch_max =
                ct->cfg.batch_bytes_max > 0 ? ct->cfg.batch_bytes_max : s->cfg.batch_bytes_max;
        }
    }
    if (partition >= partitions) {
        return false;
    }
    *out = (struct redrive_target){
        .topic = topic,
        .partition = (int32_t)partition,
        .bp = t != NULL && partition < t->cfg.partitions ? &t->parts[partition] : NULL,
        .batch_max = (size_t)batch_max};
    return true;
}

static void dest_open(struct redrive *rd, struct redrive_dest *d, const struct redrive_target *to)
{
    struct queue *q = rd->s->queue;
    size_t cap = to->batch_max < q->dlq_out_cap ? to->batch_max : q->dlq_out_cap;
    batch_builder_init(&d->b, q->dlq_out, cap, BATCH_CODEC_NONE, -1, 0, -1);
    d->open = true;
    d->bp = to->bp;
    memcpy(d->topic, to->topic.ptr, (size_t)to->topic.len);
    d->topic[to->topic.len] = '\0';
    d->topic_len = (size_t)to->topic.len;
    d->partition = to->partition;
    d->records = 0;
}

static bool dest_is(const struct redrive_dest *d, const struct redrive_target *to)
{
    return d->open && d->partition == to->partition && d->topic_len == (size_t)to->topic.len &&
           memcmp(d->topic, to->topic.ptr, d->topic_len) == 0;
}

/* Whether the asker may write to's topic (asked once per run of records
 * bound for one topic); logs a refusal. */
static bool redrive_may_write(struct redrive *rd, const struct redrive_target *to,
                              const struct batch_record *rec)
{
    size_t len = (size_t)to->topic.len;
    if (!rd->s->acls.enabled ||
        (rd->writable_len == len && memcmp(rd->writable, to->topic.ptr, len) == 0)) {
        return true;
    }
    if (!acl_serve_allowed(rd->s, &rd->who, PROTO_ACL_RESOURCE_TOPIC, to->topic,
                           PROTO_ACL_OP_WRITE)) {
        log_warn("redrive of %s: %s from %s may not write %.*s (the record at %" PRId64
                 "); stopped",
                 rd->dlq, rd->who.principal, rd->who.host, (int)len, to->topic.ptr, rec->offset);
        return false;
    }
    memcpy(rd->writable, to->topic.ptr, len);
    rd->writable_len = len;
    return true;
}

/* Adds one dead letter's republished form to what goes to its source. */
static void redrive_record(struct redrive *rd, struct redrive_dest *d, struct batch_record *rec,
                           int64_t now)
{
    struct queue *q = rd->s->queue;
    struct redrive_target to;
    if (!record_source(rd->s, *rec, &to)) {
        rd->skipped++;
        return;
    }
    if (!redrive_may_write(rd, &to, rec)) {
        rd->err = -NG_EUNAUTHORIZED;
        d->open = false; /* what was gathered for this chunk is not written */
        return;
    }
    if (d->open && !dest_is(d, &to)) {
        dest_flush(rd, d);
    }
    uint32_t n;
    int rc = headers_kept(q, rec, 0, &n);
    if (rc == 0 && !d->open) {
        dest_open(rd, d, &to);
    }
    rc = rc == 0 ? batch_builder_add(&d->b, now, rec->key, rec->key_len, rec->value, rec->value_len,
                                     q->kv, n)
                 : rc;
    if (rc == -NG_ENOSPACE && d->records > 0) {
        dest_flush(rd, d);
        dest_open(rd, d, &to);
        rc = batch_builder_add(&d->b, now, rec->key, rec->key_len, rec->value, rec->value_len,
                               q->kv, n);
    }
    if (rc == -NG_ENOSPACE) {
        log_warn("redrive of %s: the record at %" PRId64 " is larger than %s takes; skipped",
                 rd->dlq, rec->offset, d->topic);
        rd->skipped++;
    } else if (rc != 0) {
        rd->err = rd->err != 0 ? rd->err : rc;
    } else {
        d->records++;
    }
}

/* Republishes the records of one batch from rd->next on, while the
 * budget lasts: the record it stops at is where the chunk ends. */
static int redrive_batch(struct redrive *rd, struct redrive_dest *d, const uint8_t *batch,
                         size_t len, int64_t now)
{
    struct server *s = rd->s;
    struct queue *q = s->queue;
    struct batch_reader br;
    int rc =
        batch_reader_open(&br, batch, len, q->dlq_src_cap, &s->zctx, q->dlq_recs, q->dlq_recs_cap);
    struct batch_record rec;
    while (rc == 0 && rd->err == 0 && (rc = batch_reader_next(&br, &rec)) == 1) {
        if (rec.offset >= rd->next && rec.offset < rd->end) {
            if (rd->budget == 0) {
                rd->chunk_end = rec.offset;
                return 0;
            }
            rd->budget--;
            rd->chunk_read++;
            redrive_record(rd, d, &rec, now);
        }
        rc = 0;
    }
    if (rc == 0) {
        rd->chunk_end = batch_offset_last(&br.hdr) + 1;
    }
    return rc < 0 ? rc : 0;
}

/* Reads one chunk of the dead-letter partition and starts republishing
 * its records; rd->chunk_end says how far it went. */
static int redrive_chunk(struct redrive *rd, struct part *log)
{
    struct queue *q = rd->s->queue;
    struct part_read_result r;
    int rc = part_read(log, rd->next, q->dlq_src, q->dlq_src_cap, REDRIVE_CHUNK_BYTES, &r);
    if (rc != 0) {
        return rc;
    }
    struct redrive_dest d = {.open = false};
    int64_t now = rd->s->env.now_ms();
    rd->writable_len = 0; /* each chunk asks again: ACLs change, topics go */
    for (size_t at = 0; at < r.bytes && rc == 0 && rd->err == 0 && rd->budget > 0;) {
        struct batch_header h;
        rc = batch_header_decode(q->dlq_src + at, r.bytes - at, q->dlq_src_cap, &h);
        if (rc != 0 || h.offset_base >= rd->end) {
            break;
        }
        rc = redrive_batch(rd, &d, q->dlq_src + at, batch_bytes(&h), now);
        at += batch_bytes(&h);
    }
    dest_flush(rd, &d);
    if (rc == 0 && rd->err == 0 && rd->chunk_end <= rd->next) {
        rc = -NG_ECORRUPT; /* no progress: never loop on it */
    }
    return rc;
}

/* Where redriving partition rd->partition of t starts and ends. */
static void redrive_partition_start(struct redrive *rd, struct server_topic *t)
{
    struct part *log = &t->parts[rd->partition].log;
    rd->next = redrive_start_of(rd->s, rd->dlq, rd->partition, log);
    rd->end = part_offset_latest(log);
}

static void redrive_step(struct redrive *rd)
{
    struct server *s = rd->s;
    if (s->loop.stopping || s->queue->closing) {
        redrive_finish(rd, -NG_ECLOSED); /* the marks say where the next one starts */
        return;
    }
    struct server_topic *t =
        server_topic_find(s, (struct proto_str){.ptr = rd->dlq, .len = (int32_t)rd->dlq_len});
    if (t == NULL) {
        redrive_finish(rd, -NG_EUNKNOWN_TOPIC); /* deleted meanwhile */
        return;
    }
    while (rd->budget > 0 && rd->next >= rd->end) {
        if (++rd->partition >= t->cfg.partitions) {
            redrive_finish(rd, 0);
            return;
        }
        redrive_partition_start(rd, t);
    }
    if (rd->budget == 0) {
        redrive_finish(rd, 0); /* the answer says what remains */
        return;
    }
    rd->pending = 1; /* held while the chunk is read */
    rd->chunk_end = rd->next;
    rd->chunk_read = 0;
    int rc = redrive_chunk(rd, &t->parts[rd->partition].log);
    rd->err = rd->err != 0 ? rd->err : rc;
    if (--rd->pending == 0) {
        chunk_done(rd);
    }
}

/* Whether a redrive of topic may start: 0, or the answer's error. */
static int redrive_check(struct server *s, struct proto_str topic)
{
    size_t len = topic.len > 0 ? (size_t)topic.len : 0;
    if (len == 0 || !proto_topic_name_valid(topic.ptr, len)) {
        return -NG_EBADNAME;
    }
    if (len <= DLQ_SUFFIX_BYTES ||
        memcmp(topic.ptr + len - DLQ_SUFFIX_BYTES, DLQ_SUFFIX, DLQ_SUFFIX_BYTES) != 0) {
        return -NG_EBADARG; /* not a dead-letter topic */
    }
    const struct server_topic *t = server_topic_find(s, topic);
    if (t == NULL) {
        return -NG_EUNKNOWN_TOPIC;
    }
    /* A cluster: the offsets coordinator (groups_refuse()) redrives only
     * dead-letter partitions it leads, reading them whole. */
    for (int32_t p = 0; broker_config_clustered(&s->cfg) && p < t->cfg.partitions; p++) {
        int rc = replica_serving(&t->parts[p]);
        if (rc != 0) {
            return rc;
        }
    }
    uint32_t running = 0;
    for (const struct redrive *rd = s->queue->redrives; rd != NULL; rd = rd->next_rd) {
        if (rd->dlq_len == len && memcmp(rd->dlq, topic.ptr, len) == 0) {
            return -NG_EBUSY; /* one at a time per topic: both would start at its marks */
        }
        running++;
    }
    return running >= REDRIVES_MAX ? -NG_EBUSY : dlq_buffers(s);
}

void handle_dlq_redrive(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                        struct rd *body)
{
    struct proto_dlq_redrive_req in;
    int rc = proto_dlq_redrive_req_decode(body, h->api_version, &in);
    struct proto_str topic = in.topic;
    struct redrive *rd = rc == 0 ? calloc(1, sizeof(*rd)) : NULL;
    if (rd == NULL) {
        server_resp_error(req, h->correlation_id, rc != 0 ? rc : -ENOMEM);
        return;
    }
    *rd = (struct redrive){.s = s,
                           .req = req,
                           .correlation_id = h->correlation_id,
                           .version = h->api_version,
                           .partition = -1,
                           .budget = in.records_max == PROTO_REDRIVE_RECORDS_ALL ? INT64_MAX
                                                                                 : in.records_max};
    rc = s->loop.stopping ? -NG_ECLOSED : redrive_check(s, topic);
    if (rc != 0) {
        redrive_finish(rd, rc);
        return;
    }
    memcpy(rd->dlq, topic.ptr, (size_t)topic.len);
    rd->dlq[topic.len] = '\0';
    rd->dlq_len = (size_t)topic.len;
    acl_serve_who(s, req, &rd->who);
    snprintf(rd->principal, sizeof(rd->principal), "%s", rd->who.principal);
    rd->who.principal = rd->principal; /* the connection may go before the redrive ends */
    rd->next_rd = s->queue->redrives;
    s->queue->redrives = rd;
    log_info("redrive of %s: started", rd->dlq);
    redrive_step(rd);
}
