/*
 * broker/produce.c — Produce: each partition's batch is checked whole
 * (header, checksum, every record), judged against its producer's recent
 * batches, and appended straight from the request frame; the answer goes
 * when every append has completed (written for acks=1, fdatasync'd for
 * acks=all; acks=0 completes the request with no answer).
 *
 * In a cluster (docs/cluster.md) only a partition's leader takes its
 * batches, every append is durable (the high watermark follows durable
 * offsets), and an acks=all append is answered once the high watermark
 * has passed it (broker/replica.h), or with NG_ENOT_ENOUGH_REPLICAS when
 * the in-sync set is too small: at once, before anything is appended, or
 * at the request's timeout when it shrank meanwhile.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "base/log.h"
#include "broker/acl_serve.h"
#include "broker/kafka_serve.h"
#include "broker/server.h"
#include "net/kafka/errors.h"

struct produce_req;

/* Encodes and sends the answer of a request whose every append completed
 * (acks 1 or all): nagare's or Kafka's. The core frees the request after. */
typedef void produce_answer_fn(struct produce_req *pr);

struct produce_part {
    struct part_append a;
    struct replica_wait wait; /* acks=all in a cluster: for the high watermark */
    struct produce_req *pr;
    struct bpart *bp;       /* the partition; NULL when unknown */
    int32_t leader_epoch;   /* bp's when appended */
    struct proto_str topic; /* into the frame */
    int32_t partition;
    int err;
    int64_t offset_base;
};

struct produce_req {
    struct loop_req *req;
    struct server *s;
    produce_answer_fn *answer;
    struct loop_timer timer; /* armed while an append waits for the HW */
    int32_t timeout_ms;
    int32_t correlation_id;
    int16_t version;
    int16_t acks;
    uint32_t count;
    uint32_t pending;   /* appends not yet completed */
    void *answer_space; /* after parts[]: answer_fn's arrays (Kafka's), or NULL */
    struct produce_part parts[];
};

static bool new_topic(const struct produce_req *pr, uint32_t i)
{
    return i == 0 || pr->parts[i].topic.ptr != pr->parts[i - 1].topic.ptr;
}

static size_t answer_bytes(const struct produce_req *pr)
{
    size_t bytes = 64;
    for (uint32_t i = 0; i < pr->count; i++) {
        bytes += 14 + (new_topic(pr, i) ? 6 + (size_t)pr->parts[i].topic.len : 0);
    }
    return bytes;
}

static void answer(struct produce_req *pr)
{
    ASSERT(pr->pending == 0);
    (void)loop_timer_cancel(&pr->s->loop, &pr->timer);
    if (pr->acks == PROTO_ACKS_NONE) {
        loop_req_noreply(pr->req);
    } else {
        pr->answer(pr);
    }
    free(pr);
}

/* nagare's answer. */
static void answer_proto(struct produce_req *pr)
{
    struct wr w;
    uint32_t corr = (uint32_t)pr->correlation_id;
    int rc = server_resp_open(pr->req, answer_bytes(pr), &w);
    if (rc != 0) {
        server_resp_error(pr->req, corr, rc);
        return;
    }
    struct proto_enc e;
    proto_produce_resp_begin(&e, &w, (uint16_t)pr->version, corr);
    for (uint32_t i = 0; i < pr->count; i++) {
        const struct produce_part *pp = &pr->parts[i];
        if (new_topic(pr, i)) {
            proto_enc_topic(&e, pp->topic);
        }
        struct proto_produce_resp_partition out = {.partition = pp->partition,
                                                   .err = pp->err,
                                                   .offset_base =
                                                       pp->err == 0 ? pp->offset_base : -1};
        proto_produce_resp_partition(&e, &out);
    }
    rc = proto_enc_end(&e);
    ASSERT(rc == 0); /* sized above */
    server_resp_send(pr->req, &w);
}

static void part_done(struct produce_part *pp, int err)
{
    struct produce_req *pr = pp->pr;
    pp->err = err;
    ASSERT(pr->pending > 0);
    if (--pr->pending == 0) {
        answer(pr);
    }
}

static void hw_passed(struct replica_wait *w, int rc)
{
    part_done(container_of(w, struct produce_part, wait), rc);
}

/* The request's time ran out with appends still short of the high
 * watermark: they are answered as not (yet) replicated enough. */
static void on_timeout(struct loop_timer *t, void *arg)
{
    (void)t;
    struct produce_req *pr = arg;
    for (uint32_t i = 0; i < pr->count; i++) {
        struct produce_part *pp = &pr->parts[i];
        if (pp->wait.owner != NULL) {
            replica_wait_cancel(&pp->wait);
            int err = replica_check_acks_all(pp->bp);
            pp->err = err != 0 ? err : -NG_ETIMEOUT;
            pr->pending--;
        }
    }
    if (pr->pending == 0) {
        answer(pr);
    }
}

/* Waits (up to the request's timeout) until the high watermark passes end. */
static void hw_wait(struct produce_part *pp, int64_t end)
{
    struct produce_req *pr = pp->pr;
    if (!loop_timer_armed(&pr->timer)) {
        loop_timer_arm(&pr->s->loop, &pr->timer, (uint64_t)pr->timeout_ms);
    }
    pp->wait.done = hw_passed;
    replica_wait_add(pp->bp, &pp->wait, end);
}

static void append_done(struct part_append *a, int rc)
{
    struct produce_part *pp = container_of(a, struct produce_part, a);
    struct produce_req *pr = pp->pr;
    pp->offset_base = a->hdr.offset_base;
    if (rc != 0) { /* not in the log: a retry must not be called a duplicate */
        producers_forget(&pp->bp->producers, &a->hdr);
    }
    const struct replica *r = &pp->bp->rep;
    if (rc == 0 && pr->acks == PROTO_ACKS_ALL && r->role != REPLICA_SINGLE) {
        if (r->role != REPLICA_LEADER || r->leader_epoch != pp->leader_epoch) {
            part_done(pp, -NG_ENOT_LEADER); /* may be cut by the new leader */
            return;
        }
        hw_wait(pp, batch_offset_last(&a->hdr) + 1);
        return;
    }
    part_done(pp, server_wire_err(rc));
}

/* A retried batch the log already holds (its original append may still be
 * on its way) is answered with its first offset, but an acks=all answer
 * promises what the original's would have: replicated up to the high
 * watermark in a cluster, fdatasync'd on a single broker. A duplicate not
 * yet there waits for the high watermark (a leader) or is answered
 * NG_EBUSY, which the producer retries (a single broker: the original's
 * own fdatasync is under way). end: one past its last offset. */
static void duplicate_acks_all(struct produce_part *pp, struct bpart *bp, int64_t end)
{
    if (bp->rep.role == REPLICA_LEADER) {
        pp->bp = bp;
        pp->pr->pending++;
        hw_wait(pp, end);
    } else if (part_offset_durable(&bp->log) < end) {
        pp->err = -NG_EBUSY;
    }
}

/* Checks and starts one partition's append of the batch records[0..bytes);
 * pp->err says why not. */
static void start_append(struct server *s, struct server_topic *t, struct produce_part *pp,
                         const uint8_t *records, size_t bytes)
{
    if (t == NULL || pp->partition < 0 || pp->partition >= t->cfg.partitions) {
        pp->err = pp->err != 0 ? pp->err : -NG_EUNKNOWN_TOPIC;
        return;
    }
    struct bpart *bp = &t->parts[pp->partition];
    pp->bp = bp;
    pp->err = replica_serving(bp);
    if (pp->err == 0 && pp->pr->acks == PROTO_ACKS_ALL) {
        pp->err = replica_check_acks_all(bp);
    }
    if (pp->err != 0) {
        return;
    }
    uint32_t max = (uint32_t)t->cfg.batch_bytes_max;
    struct batch_header h;
    pp->err = batch_verify_records(records, bytes, max, &s->zctx, s->scratch, s->scratch_bytes, &h);
    if (pp->err == 0 && h.producer_id >= 0) {
        int64_t at = -1;
        int verdict = producers_check(&bp->producers, &h, &at);
        if (verdict != PRODUCERS_APPEND) {
            /* A duplicate is answered with its first offset; a batch written
             * before the ones remembered with none (-1): it is in the log,
             * where is not known. With acks=all, once replicated. */
            pp->err = verdict < 0 ? verdict : 0;
            pp->offset_base = verdict == PRODUCERS_DUPLICATE ? at : -1;
            int64_t end = at; /* PRODUCERS_WRITTEN: one past the newest remembered */
            if (verdict == PRODUCERS_DUPLICATE) {
                h.offset_base = at;
                end = batch_offset_last(&h) + 1;
            }
            if (verdict > 0 && pp->pr->acks == PROTO_ACKS_ALL) {
                duplicate_acks_all(pp, bp, end);
            }
            return;
        }
    }
    if (pp->err != 0) {
        return;
    }
    /* The frame is the request's own buffer, writable until it is answered:
     * the base offset is written into the batch there. */
    /* batch_verify_records() checked it whole, checksum included: the
     * append need not run the checksum again. */
    pp->a = (struct part_append){.batch = (uint8_t *)records,
                                 .bytes = bytes,
                                 .durable =
                                     pp->pr->acks == PROTO_ACKS_ALL || replica_durable_appends(bp),
                                 .validated = true,
                                 .hdr = h,
                                 .done = append_done};
    pp->leader_epoch = bp->rep.leader_epoch;
    pp->err = server_wire_err(part_append(&bp->log, &pp->a));
    if (pp->err == 0) {
        bp->counters.records_in += (uint64_t)h.record_count;
        bp->counters.bytes_in += bytes;
        producers_record(&bp->producers, &pp->a.hdr, false);
        pp->pr->pending++;
    }
}

struct server_topic *produce_topic_get(struct server *s, struct loop_req *req,
                                       struct proto_str name, int *err)
{
    if (server_topic_reserved(name)) {
        *err = -NG_EBADNAME; /* the broker's own */
        return NULL;
    }
    struct server_topic *t = server_topic_find(s, name);
    *err = 0;
    /* In a cluster topics are made through etcd (CreateTopics), never by
     * one broker alone. */
    if (t == NULL && s->cfg.auto_create_topics && !broker_config_clustered(&s->cfg) &&
        !acl_serve_may_create(s, req, name)) {
        *err = -NG_EUNAUTHORIZED;
    } else if (t == NULL && s->cfg.auto_create_topics && !broker_config_clustered(&s->cfg)) {
        struct topic_config defaults = {.partitions = PROTO_CONFIG_DEFAULT,
                                        .retention_ms = PROTO_CONFIG_DEFAULT,
                                        .retention_bytes = PROTO_CONFIG_DEFAULT,
                                        .segment_bytes = PROTO_CONFIG_DEFAULT,
                                        .segment_ms = PROTO_CONFIG_DEFAULT,
                                        .batch_bytes_max = PROTO_CONFIG_DEFAULT};
        *err = server_topic_create(s, name, &defaults, &t);
        t = *err == 0 ? t : NULL;
    } else if (t == NULL) {
        *err = -NG_EUNKNOWN_TOPIC;
    }
    return t;
}

/* A request of count partitions, held (pending 1) until produce_go(), with
 * answer_part_bytes per partition for its answer's arrays in the same
 * block (one allocation per request on the produce path). */
static struct produce_req *produce_new(struct server *s, struct loop_req *req, uint32_t count,
                                       int16_t acks, int32_t timeout_ms,
                                       produce_answer_fn *answer_fn, size_t answer_part_bytes)
{
    struct produce_req *pr =
        calloc(1, sizeof(*pr) + count * (sizeof(pr->parts[0]) + answer_part_bytes));
    if (pr != NULL) {
        *pr =
            (struct produce_req){.req = req,
                                 .s = s,
                                 .answer = answer_fn,
                                 .timeout_ms = timeout_ms,
                                 .acks = acks,
                                 .count = count,
                                 .pending = 1,
                                 .answer_space = answer_part_bytes > 0 ? &pr->parts[count] : NULL};
        loop_timer_init(&pr->timer, on_timeout, pr);
    }
    return pr;
}

/* Starts partition i of pr (topic t, NULL with topic_err when it cannot be
 * had) from the batch records[0..bytes). */
static void produce_part_start(struct produce_req *pr, uint32_t i, struct server_topic *t,
                               int topic_err, struct proto_str topic, int32_t partition,
                               const uint8_t *records, size_t bytes)
{
    ASSERT(i < pr->count);
    struct produce_part *pp = &pr->parts[i];
    *pp = (struct produce_part){
        .pr = pr, .topic = topic, .partition = partition, .err = topic_err, .offset_base = -1};
    start_append(pr->s, t, pp, records, bytes);
}

/* Every partition is started: answers once their appends complete. */
static void produce_go(struct produce_req *pr)
{
    if (--pr->pending == 0) {
        answer(pr);
    }
}

void handle_produce(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                    struct rd *body)
{
    struct proto_produce_req in;
    struct proto_dec d;
    int rc = proto_produce_req_decode(body, h->api_version, &in, &d);
    uint32_t count = rc == 0 ? d.partition_count : 0;
    struct produce_req *pr =
        rc == 0 ? produce_new(s, req, count, in.acks, in.timeout_ms, answer_proto, 0) : NULL;
    if (pr == NULL) {
        server_resp_error(req, h->correlation_id, rc != 0 ? rc : -ENOMEM);
        return;
    }
    pr->correlation_id = (int32_t)h->correlation_id;
    pr->version = (int16_t)h->api_version;
    struct proto_topic t;
    uint32_t i = 0;
    while (proto_next_topic(&d, &t)) {
        int topic_err;
        struct server_topic *st = produce_topic_get(s, req, t.name, &topic_err);
        struct proto_produce_req_partition p;
        while (proto_produce_req_next_partition(&d, &p)) {
            produce_part_start(pr, i++, st, topic_err, t.name, p.partition, p.records,
                               p.records_bytes);
        }
    }
    ASSERT(i == count);
    produce_go(pr);
}

/* ---- Kafka's Produce (broker/kafka_serve.h) ---- */

typedef struct kafka_produce_response_partition_produce_response kafka_part_answer;
typedef struct kafka_produce_response_topic_produce_response kafka_topic_answer;

/* Kafka's answer's arrays, per partition of the request (at most one topic
 * each), in the request's own block (produce_new()). */
#define KAFKA_ANSWER_PART_BYTES (sizeof(kafka_part_answer) + sizeof(kafka_topic_answer))
static_assert(_Alignof(kafka_part_answer) <= _Alignof(struct produce_part) &&
                  sizeof(kafka_part_answer) % _Alignof(kafka_topic_answer) == 0,
              "the partitions follow parts[] aligned, and the topics them");

/* Kafka's answer: per partition its base offset (a duplicate's first),
 * log_append_time -1 (batches keep the producer's CreateTime) and the
 * log start offset. */
static void answer_kafka(struct produce_req *pr)
{
    kafka_part_answer *parts = pr->answer_space;
    kafka_topic_answer *topics = (kafka_topic_answer *)(parts + pr->count);
    struct kafka_produce_response resp;
    kafka_produce_response_init(&resp);
    struct kafka_req_header h = {.api_key = KAFKA_API_PRODUCE,
                                 .api_version = pr->version,
                                 .correlation_id = pr->correlation_id};
    kafka_topic_answer *t = NULL;
    for (uint32_t i = 0; i < pr->count; i++) {
        const struct produce_part *pp = &pr->parts[i];
        if (new_topic(pr, i)) {
            t = &topics[resp.responses.count++];
            t->name = kafka_serve_kw_str(pp->topic);
            t->partition_responses.items = &parts[i];
        }
        t->partition_responses.count++;
        parts[i] = (kafka_part_answer){.index = pp->partition,
                                       .error_code = kafka_err_from(pp->err),
                                       .base_offset = pp->err == 0 ? pp->offset_base : -1,
                                       .log_append_time_ms = -1,
                                       .log_start_offset =
                                           pp->bp != NULL ? part_offset_earliest(&pp->bp->log) : -1,
                                       .error_message = KW_STR_NULL,
                                       .current_leader = {.leader_id = -1, .leader_epoch = -1}};
    }
    resp.responses.items = topics;
    kafka_serve_respond(pr->req, &h, &kafka_produce_response_msg, &resp);
}

/* The partitions of a Kafka Produce request, all topics together. */
static uint32_t kafka_produce_count(const struct kafka_produce_request *in)
{
    uint32_t count = 0;
    for (int32_t i = 0; i < in->topic_data.count; i++) {
        count += (uint32_t)in->topic_data.items[i].partition_data.count;
    }
    return count;
}

/* Each partition's records are one RecordBatch v2, nagare's batch format 2
 * byte for byte: it takes the path of nagare's Produce. Versions 0-2 (old
 * message sets) and transactional producers get an error per partition;
 * acks other than 0, 1 and -1 too (INVALID_REQUEST). */
void kafka_produce(struct server *s, struct loop_req *req, const struct kafka_req_header *h,
                   struct rd *body, struct kw_arena *a)
{
    struct kafka_produce_request in;
    int rc = kafka_produce_request_decode(body, h->api_version, a, &in);
    if (rc != 0) {
        log_debug("kafka: connection %" PRIu64 ": produce: %s; closing", loop_req_conn_id(req),
                  err_str(rc));
        loop_req_fail(req);
        return;
    }
    int refused = 0;
    if (h->api_version < kafka_api_find(KAFKA_API_PRODUCE)->served_min) {
        refused = -NG_EBADVERSION;
    } else if (in.transactional_id.len >= 0) {
        refused = -NG_ETRANSACTIONAL; /* no transactions (docs/kafka.md) */
    } else if (in.acks != PROTO_ACKS_NONE && in.acks != PROTO_ACKS_LEADER &&
               in.acks != PROTO_ACKS_ALL) {
        refused = -NG_EBADARG;
    }
    int16_t acks = refused == -NG_EBADARG ? PROTO_ACKS_LEADER : in.acks; /* answered */
    /* The timeout arms a timer (unsigned): a negative one is none. */
    int32_t timeout_ms = in.timeout_ms > 0 ? in.timeout_ms : 0;
    struct produce_req *pr = produce_new(s, req, kafka_produce_count(&in), acks, timeout_ms,
                                         answer_kafka, KAFKA_ANSWER_PART_BYTES);
    if (pr == NULL) {
        log_warn("kafka: produce: %s; closing", err_str(-ENOMEM));
        loop_req_fail(req);
        return;
    }
    pr->correlation_id = h->correlation_id;
    pr->version = h->api_version;
    uint32_t i = 0;
    for (int32_t ti = 0; ti < in.topic_data.count; ti++) {
        const struct kafka_produce_request_topic_produce_data *td = &in.topic_data.items[ti];
        struct proto_str name = kafka_serve_proto_str(td->name);
        int topic_err = refused;
        if (topic_err == 0 &&
            acl_serve_kafka(s, req, PROTO_ACL_RESOURCE_TOPIC, td->name, PROTO_ACL_OP_WRITE) != 0) {
            topic_err = -NG_EUNAUTHORIZED;
        }
        struct server_topic *st =
            topic_err == 0 ? produce_topic_get(s, req, name, &topic_err) : NULL;
        for (int32_t pi = 0; pi < td->partition_data.count; pi++) {
            const struct kafka_produce_request_partition_produce_data *pd =
                &td->partition_data.items[pi];
            size_t bytes = pd->records.len > 0 ? (size_t)pd->records.len : 0;
            produce_part_start(pr, i++, st, topic_err, name, pd->index, pd->records.ptr, bytes);
        }
    }
    produce_go(pr);
}
