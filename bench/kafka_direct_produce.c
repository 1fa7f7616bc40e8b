/*
 * bench/kafka_direct_produce.c — a Kafka-protocol producer on nagare's
 * Kafka codec and batch builder (see kafka_direct.h).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/err.h"
#include "bench/kafka_conn.h"
#include "bench/kafka_direct.h"
#include "client/nagare.h"
#include "storage/batch.h"

/* The last versions without flexible encodings. */
#define KDP_PRODUCE_VERSION 8
#define KDP_INIT_PRODUCER_ID_VERSION 1
#define KDP_TIMEOUT_MS 30000
#define KDP_INFLIGHT_MAX 16
/* While every request slot is taken, the open batch grows by batch_bytes
 * at a time up to this many times batch_bytes (at most 8 MiB), as
 * libnagare's do (client/producer_int.h, BATCH_GROWTH_MAX): under acks=all
 * a request then carries what accumulated during the last round. */
#define KDP_GROWTH_MAX 16u
#define KDP_GROWN_BYTES_MAX (8u << 20)
/* A request's bytes besides its batches, and an answer's: plenty. */
#define KDP_HEADROOM_BYTES (64u << 10)

struct kdp_batch {
    uint8_t *buf; /* batch_bytes */
    struct batch_builder b;
    uint64_t *at; /* each record's send time */
    uint32_t n;
    int32_t partition;
    size_t bytes; /* once finished */
};

/* A FIFO of batch indexes, as big as the pool: never full. */
struct kdp_ring {
    uint32_t *slot;
    uint32_t cap;
    uint32_t head;
    uint32_t count;
};

struct kdirect_producer {
    struct kconn conn;
    struct kw_str topic;
    int32_t partitions;
    int16_t acks;
    int64_t producer_id; /* -1: not idempotent */
    int16_t producer_epoch;
    int32_t *sequence; /* per partition: the next batch's base sequence */
    int32_t sticky;    /* the partition of the next batch */
    enum batch_codec codec;
    struct batch_zctx z;
    size_t batch_bytes;
    size_t grown_bytes; /* each batch's buffer: the most a batch grows to */
    uint32_t at_cap;
    struct kdp_batch *batches;
    uint32_t batch_count;
    struct kdp_ring free;
    struct kdp_ring ready;  /* finished, not sent */
    struct kdp_ring flight; /* sent, in order; requests[] says how many each */
    int32_t open;           /* the batch records go into, or -1 */
    uint32_t inflight_max;
    uint32_t requests[KDP_INFLIGHT_MAX]; /* batches of each request in flight, oldest first */
    uint32_t request_head;
    uint32_t request_count;
    struct kafka_produce_request_partition_produce_data *pd; /* scratch, partitions long */
    load_delivered_fn *on_delivered;
    void *opaque;
};

/* ---- rings ---- */

static void ring_push(struct kdp_ring *r, uint32_t v)
{
    ASSERT(r->count < r->cap);
    r->slot[(r->head + r->count++) % r->cap] = v;
}

static uint32_t ring_at(const struct kdp_ring *r, uint32_t i)
{
    ASSERT(i < r->count);
    return r->slot[(r->head + i) % r->cap];
}

static uint32_t ring_pop(struct kdp_ring *r)
{
    uint32_t v = ring_at(r, 0);
    r->head = (r->head + 1) % r->cap;
    r->count--;
    return v;
}

/* ---- batches ---- */

/* Finishes the open batch and queues it to be sent. */
static int kbatch_seal(struct kdirect_producer *p)
{
    ASSERT(p->open >= 0);
    struct kdp_batch *kb = &p->batches[p->open];
    int rc = batch_builder_finish(&kb->b, &p->z, &kb->bytes);
    if (rc != 0) {
        fprintf(stderr, "nagare-bench: kafka batch: %s\n", err_str(rc));
        return rc;
    }
    if (p->producer_id >= 0) {
        p->sequence[kb->partition] += (int32_t)kb->n;
    }
    ring_push(&p->ready, (uint32_t)p->open);
    p->open = -1;
    return 0;
}

/* Opens a batch for the next partition in turn (sticky per batch, as
 * libnagare's and librdkafka's partitioners are for keyless records), or
 * returns -NAGARE_EBUSY when every batch is taken. */
static int kbatch_open(struct kdirect_producer *p)
{
    ASSERT(p->open < 0);
    if (p->free.count == 0) {
        return -NAGARE_EBUSY;
    }
    p->open = (int32_t)ring_pop(&p->free);
    struct kdp_batch *kb = &p->batches[p->open];
    kb->partition = p->sticky;
    kb->n = 0;
    p->sticky = (p->sticky + 1) % p->partitions;
    batch_builder_init(&kb->b, kb->buf, p->batch_bytes, p->codec, p->producer_id,
                       p->producer_id >= 0 ? p->producer_epoch : -1,
                       p->producer_id >= 0 ? p->sequence[kb->partition] : -1);
    return 0;
}

/* ---- requests ---- */

static void deliver(struct kdirect_producer *p, uint32_t batch, int err)
{
    struct kdp_batch *kb = &p->batches[batch];
    for (uint32_t i = 0; i < kb->n; i++) {
        p->on_delivered(p->opaque, err, kb->at[i]);
    }
    ring_push(&p->free, batch);
}

static bool slot_free(const struct kdirect_producer *p)
{
    return p->acks == 0 || p->request_count < p->inflight_max;
}

/* Sends ready batches while fewer than inflight_max requests are out: one
 * request takes them in order, one per partition (a second batch of a
 * partition waits for the next request, so each partition's sequence
 * stays in order). */
static int send_ready(struct kdirect_producer *p)
{
    if (p->open >= 0 && slot_free(p) &&
        batch_builder_bytes(&p->batches[p->open].b) >= p->batch_bytes) {
        int rc = kbatch_seal(p); /* it grew while the slots were taken */
        if (rc != 0) {
            return rc;
        }
    }
    while (p->ready.count > 0 && slot_free(p)) {
        uint32_t n = 0;
        bool again = false; /* a partition already in this request */
        while (n < p->ready.count && !again) {
            const struct kdp_batch *kb = &p->batches[ring_at(&p->ready, n)];
            for (uint32_t i = 0; i < n && !again; i++) {
                again = p->pd[i].index == kb->partition;
            }
            if (!again) {
                p->pd[n++] = (struct kafka_produce_request_partition_produce_data){
                    .index = kb->partition, .records = {.ptr = kb->buf, .len = (int32_t)kb->bytes}};
            }
        }
        struct kafka_produce_request_topic_produce_data td = {
            .name = p->topic, .partition_data = {p->pd, (int32_t)n}};
        struct kafka_produce_request req;
        kafka_produce_request_init(&req);
        req.acks = p->acks;
        req.timeout_ms = KDP_TIMEOUT_MS;
        req.topic_data.items = &td;
        req.topic_data.count = 1;
        int rc = kconn_request(&p->conn, KAFKA_API_PRODUCE, KDP_PRODUCE_VERSION,
                               &kafka_produce_request_msg, &req);
        if (rc != 0) {
            return rc;
        }
        for (uint32_t i = 0; i < n; i++) {
            uint32_t b = ring_pop(&p->ready);
            if (p->acks == 0) {
                deliver(p, b, 0); /* no answer comes */
            } else {
                ring_push(&p->flight, b);
            }
        }
        if (p->acks != 0) {
            p->requests[(p->request_head + p->request_count++) % KDP_INFLIGHT_MAX] = n;
        }
    }
    return 0;
}

/* The error the answer gives partition, or -EIO when it names none. */
static int partition_result(const struct kafka_produce_response *resp, int32_t partition)
{
    for (int32_t t = 0; t < resp->responses.count; t++) {
        const struct kafka_produce_response_topic_produce_response *tr = &resp->responses.items[t];
        for (int32_t i = 0; i < tr->partition_responses.count; i++) {
            const struct kafka_produce_response_partition_produce_response *pr =
                &tr->partition_responses.items[i];
            if (pr->index == partition) {
                if (pr->error_code != 0) {
                    fprintf(stderr, "nagare-bench: kafka Produce partition %d: error %d\n",
                            partition, pr->error_code);
                }
                return pr->error_code == 0 ? 0 : -EIO;
            }
        }
    }
    fprintf(stderr, "nagare-bench: kafka Produce: no answer for partition %d\n", partition);
    return -EIO;
}

/* Reads the oldest request's answer and reports its records. */
static int take_answer(struct kdirect_producer *p)
{
    ASSERT(p->request_count > 0);
    uint32_t n = p->requests[p->request_head];
    int32_t corr = p->conn.corr - (int32_t)p->request_count + 1;
    p->request_head = (p->request_head + 1) % KDP_INFLIGHT_MAX;
    p->request_count--;
    struct kafka_produce_response resp;
    int rc = kconn_answer(&p->conn, corr, KAFKA_API_PRODUCE, KDP_PRODUCE_VERSION,
                          &kafka_produce_response_msg, &resp);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t b = ring_pop(&p->flight);
        deliver(p, b, rc != 0 ? rc : partition_result(&resp, p->batches[b].partition));
    }
    return rc;
}

/* Reads the answers that came within timeout_ms (the first wait), then
 * sends what is ready. */
static int pump(struct kdirect_producer *p, int timeout_ms)
{
    int rc = send_ready(p);
    int wait = timeout_ms;
    while (rc == 0 && p->request_count > 0) {
        int r = kconn_readable(&p->conn, wait);
        if (r <= 0) {
            rc = r;
            break;
        }
        rc = take_answer(p);
        rc = rc == 0 ? send_ready(p) : rc;
        wait = 0;
    }
    return rc;
}

/* ---- the interface ---- */

int kdirect_send(struct kdirect_producer *p, const void *value, size_t len, uint64_t at)
{
    ASSERT(len <= INT32_MAX);
    int rc = p->open < 0 ? kbatch_open(p) : 0;
    while (rc == 0) {
        struct kdp_batch *kb = &p->batches[p->open];
        rc = kb->n < p->at_cap ? batch_builder_add(&kb->b, clock_wall_ms(), NULL, -1, value,
                                                   (int32_t)len, NULL, 0)
                               : -NG_ENOSPACE;
        if (rc == 0) {
            kb->at[kb->n++] = at;
            return 0;
        }
        if (rc != -NG_ENOSPACE || kb->n == 0) {
            break; /* a record an empty batch cannot take never fits */
        }
        if (!slot_free(p) && kb->b.cap + p->batch_bytes <= p->grown_bytes) {
            kb->b.cap += p->batch_bytes;
            rc = 0;
            continue;
        }
        rc = kbatch_seal(p);
        rc = rc == 0 ? send_ready(p) : rc;
        rc = rc == 0 ? kbatch_open(p) : rc;
    }
    if (rc != -NAGARE_EBUSY) {
        fprintf(stderr, "nagare-bench: kafka record of %zu bytes: %s\n", len, err_str(rc));
    }
    return rc;
}

int kdirect_producer_poll(struct kdirect_producer *p, int timeout_ms)
{
    return pump(p, timeout_ms);
}

int kdirect_producer_flush(struct kdirect_producer *p, int timeout_ms)
{
    int rc = p->open >= 0 && p->batches[p->open].n > 0 ? kbatch_seal(p) : 0;
    int64_t deadline = clock_mono_ms() + timeout_ms;
    while (rc == 0 && (p->ready.count > 0 || p->request_count > 0)) {
        int64_t left = deadline - clock_mono_ms();
        if (left <= 0) {
            return -NAGARE_ETIMEOUT;
        }
        rc = pump(p, (int)left);
    }
    return rc;
}

static int init_producer_id(struct kdirect_producer *p)
{
    struct kafka_init_producer_id_request req;
    kafka_init_producer_id_request_init(&req);
    req.transactional_id = KW_STR_NULL; /* not transactional: idempotence alone */
    req.transaction_timeout_ms = -1;
    struct kafka_init_producer_id_response resp;
    int rc = kconn_request(&p->conn, KAFKA_API_INIT_PRODUCER_ID, KDP_INIT_PRODUCER_ID_VERSION,
                           &kafka_init_producer_id_request_msg, &req);
    rc = rc == 0 ? kconn_answer(&p->conn, p->conn.corr, KAFKA_API_INIT_PRODUCER_ID,
                                KDP_INIT_PRODUCER_ID_VERSION, &kafka_init_producer_id_response_msg,
                                &resp)
                 : rc;
    if (rc == 0 && (resp.error_code != 0 || resp.producer_id < 0)) {
        fprintf(stderr, "nagare-bench: kafka InitProducerId: error %d\n", resp.error_code);
        rc = -EIO;
    }
    if (rc == 0) {
        p->producer_id = resp.producer_id;
        p->producer_epoch = resp.producer_epoch;
    }
    return rc;
}

static int ring_init(struct kdp_ring *r, uint32_t cap)
{
    *r = (struct kdp_ring){.slot = calloc(cap, sizeof(*r->slot)), .cap = cap};
    return r->slot != NULL ? 0 : -ENOMEM;
}

static int pool_init(struct kdirect_producer *p, uint32_t record_bytes)
{
    /* the open batch, a request's worth ready, and inflight_max in flight */
    p->batch_count = 1 + (p->inflight_max + 1) * (uint32_t)p->partitions;
    size_t grown = p->batch_bytes * KDP_GROWTH_MAX;
    grown = grown < KDP_GROWN_BYTES_MAX ? grown : KDP_GROWN_BYTES_MAX;
    p->grown_bytes = grown > p->batch_bytes ? grown : p->batch_bytes;
    /* every record of the load holds record_bytes of value */
    p->at_cap = (uint32_t)(p->grown_bytes / (record_bytes + BATCH_RECORD_BYTES_MIN)) + 1;
    p->batches = calloc(p->batch_count, sizeof(*p->batches));
    p->sequence = calloc((size_t)p->partitions, sizeof(*p->sequence));
    p->pd = calloc((size_t)p->partitions, sizeof(*p->pd));
    int rc = p->batches && p->sequence && p->pd ? 0 : -ENOMEM;
    rc = rc == 0 ? ring_init(&p->free, p->batch_count) : rc;
    rc = rc == 0 ? ring_init(&p->ready, p->batch_count) : rc;
    rc = rc == 0 ? ring_init(&p->flight, p->batch_count) : rc;
    for (uint32_t i = 0; rc == 0 && i < p->batch_count; i++) {
        p->batches[i].buf = malloc(p->grown_bytes);
        p->batches[i].at = malloc(p->at_cap * sizeof(*p->batches[i].at));
        rc = p->batches[i].buf && p->batches[i].at ? 0 : -ENOMEM;
        if (rc == 0) {
            ring_push(&p->free, i);
        }
    }
    return rc == 0 ? batch_zctx_init(&p->z, p->grown_bytes, 0) : rc;
}

int kdirect_producer_new(const struct load_cfg *cfg, load_delivered_fn *on_delivered, void *opaque,
                         struct kdirect_producer **out)
{
    *out = NULL;
    struct kdirect_producer *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return -ENOMEM;
    }
    p->conn.fd = -1;
    p->topic = kw_str_make(cfg->topic);
    p->partitions = cfg->partitions;
    p->acks = (int16_t)cfg->acks;
    p->producer_id = -1;
    p->open = -1;
    p->codec = cfg->compression == NAGARE_COMPRESSION_ZSTD ? BATCH_CODEC_ZSTD : BATCH_CODEC_NONE;
    p->batch_bytes = cfg->batch_bytes;
    p->inflight_max = cfg->inflight < KDP_INFLIGHT_MAX ? cfg->inflight : KDP_INFLIGHT_MAX;
    p->on_delivered = on_delivered;
    p->opaque = opaque;
    int rc = p->partitions > 0 && p->inflight_max > 0 ? pool_init(p, cfg->record_bytes) : -EINVAL;
    rc = rc == 0 ? kconn_open(&p->conn, cfg->bootstrap,
                              (size_t)p->partitions * p->grown_bytes + KDP_HEADROOM_BYTES,
                              KDP_HEADROOM_BYTES + (size_t)p->partitions * 256u)
                 : rc;
    rc = rc == 0 && cfg->idempotent ? init_producer_id(p) : rc;
    if (rc != 0) {
        kdirect_producer_destroy(p);
        return rc;
    }
    *out = p;
    return 0;
}

void kdirect_producer_destroy(struct kdirect_producer *p)
{
    if (p == NULL) {
        return;
    }
    kconn_close(&p->conn);
    batch_zctx_fini(&p->z);
    for (uint32_t i = 0; p->batches != NULL && i < p->batch_count; i++) {
        free(p->batches[i].buf);
        free(p->batches[i].at);
    }
    free(p->batches);
    free(p->sequence);
    free(p->pd);
    free(p->free.slot);
    free(p->ready.slot);
    free(p->flight.slot);
    free(p);
}
