/*
 * bench/kafka_direct.c — a Kafka-protocol consumer on nagare's Kafka codec
 * (see kafka_direct.h).
 */
#include "bench/kafka_direct.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "bench/kafka_conn.h"
#include "client/nagare.h"
#include "storage/batch.h"

#define KD_FETCH_VERSION 11
#define KD_LIST_OFFSETS_VERSION 1
#define KD_SHARES_MAX 8
/* An answer's bytes besides the records (headers, partitions): plenty. */
#define KD_HEADROOM_BYTES (1u << 20)
/* A share caught up asks the broker to wait this long for records. */
#define KD_WAIT_MS 500
/* ListOffsets' timestamps for the earliest and the latest offset. */
#define KD_OFFSET_EARLIEST (-2)
#define KD_OFFSET_LATEST (-1)

struct kd_part {
    int32_t partition;
    uint32_t share;
    int64_t next;         /* the offset the next fetch asks for */
    int64_t reading_from; /* records below it in the answer being read are skipped */
};

struct kdirect {
    struct kconn conn;
    struct kw_str topic;
    int32_t fetch_bytes_max;
    int32_t partition_fetch_bytes_max;
    struct kd_part *parts;
    uint32_t count;
    int32_t *index_of; /* partition -> parts[] index, -1: not ours */
    int32_t partitions;
    uint32_t shares;
    /* shares in flight, in the order their answers come (one connection) */
    uint32_t queue[KD_SHARES_MAX];
    uint32_t queued;
    struct kafka_fetch_request_partition *req_parts;
    /* the answer being read */
    struct kafka_fetch_response resp;
    int32_t topic_at;
    int32_t part_at;
    const uint8_t *rec_at;
    size_t rec_left;
    int64_t skip_below;
    struct batch_reader br;
    bool br_open;
    struct batch_zctx z;
    uint8_t *zbuf;
    size_t zbuf_cap;
};

/* ---- where to start ---- */

static int list_offsets(struct kdirect *d, int64_t timestamp)
{
    struct kafka_list_offsets_request_partition *ps = calloc(d->count, sizeof(*ps));
    if (ps == NULL) {
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < d->count; i++) {
        ps[i] =
            (struct kafka_list_offsets_request_partition){.partition_index = d->parts[i].partition,
                                                          .current_leader_epoch = -1,
                                                          .timestamp = timestamp};
    }
    struct kafka_list_offsets_request_topic t = {.name = d->topic,
                                                 .partitions = {ps, (int32_t)d->count}};
    struct kafka_list_offsets_request req;
    kafka_list_offsets_request_init(&req);
    req.replica_id = -1;
    req.topics.items = &t;
    req.topics.count = 1;
    int rc = kconn_request(&d->conn, KAFKA_API_LIST_OFFSETS, KD_LIST_OFFSETS_VERSION,
                           &kafka_list_offsets_request_msg, &req);
    free(ps);
    struct kafka_list_offsets_response resp;
    rc = rc == 0 ? kconn_answer(&d->conn, d->conn.corr, KAFKA_API_LIST_OFFSETS,
                                KD_LIST_OFFSETS_VERSION, &kafka_list_offsets_response_msg, &resp)
                 : rc;
    uint32_t found = 0;
    for (int32_t ti = 0; rc == 0 && ti < resp.topics.count; ti++) {
        for (int32_t p = 0; rc == 0 && p < resp.topics.items[ti].partitions.count; p++) {
            const struct kafka_list_offsets_response_partition_response *pr =
                &resp.topics.items[ti].partitions.items[p];
            int32_t i = pr->partition_index >= 0 && pr->partition_index < d->partitions
                            ? d->index_of[pr->partition_index]
                            : -1;
            if (i < 0 || pr->error_code != 0) {
                fprintf(stderr, "nagare-bench: kafka ListOffsets partition %d: error %d\n",
                        pr->partition_index, pr->error_code);
                rc = -EIO;
                break;
            }
            d->parts[i].next = pr->offset;
            found++;
        }
    }
    return rc == 0 && found != d->count ? -EIO : rc;
}

/* ---- fetching ---- */

static int fetch_send(struct kdirect *d, uint32_t share, int32_t wait_ms)
{
    ASSERT(share < d->shares && d->queued < KD_SHARES_MAX);
    int32_t n = 0;
    for (uint32_t i = 0; i < d->count; i++) {
        if (d->parts[i].share == share) {
            d->req_parts[n++] = (struct kafka_fetch_request_partition){
                .partition = d->parts[i].partition,
                .current_leader_epoch = -1,
                .fetch_offset = d->parts[i].next,
                .last_fetched_epoch = -1,
                .log_start_offset = -1,
                .partition_max_bytes = d->partition_fetch_bytes_max};
        }
    }
    struct kafka_fetch_request_topic t = {.topic = d->topic, .partitions = {d->req_parts, n}};
    struct kafka_fetch_request req;
    kafka_fetch_request_init(&req);
    req.max_wait_ms = wait_ms;
    req.min_bytes = 1;
    req.max_bytes = d->fetch_bytes_max;
    req.session_id = 0;
    req.session_epoch = -1;
    req.topics.items = &t;
    req.topics.count = 1;
    req.rack_id = kw_str_make("");
    int rc =
        kconn_request(&d->conn, KAFKA_API_FETCH, KD_FETCH_VERSION, &kafka_fetch_request_msg, &req);
    if (rc == 0) {
        d->queue[d->queued++] = share;
    }
    return rc;
}

/* After partition data pd of an answer: the offset after its last whole
 * batch (the broker may cut the last one short at the size limit), or
 * from when it holds none. */
static int64_t next_offset(const struct kafka_fetch_response_partition_data *pd, int64_t from)
{
    const uint8_t *at = pd->records.ptr;
    size_t left = pd->records.len > 0 ? (size_t)pd->records.len : 0;
    int64_t next = from;
    struct batch_header h;
    while (left > 0 && batch_header_decode(at, left, BATCH_BYTES_LIMIT, &h) == 0 &&
           batch_bytes(&h) <= left) {
        next = batch_offset_last(&h) + 1 > next ? batch_offset_last(&h) + 1 : next;
        at += batch_bytes(&h);
        left -= batch_bytes(&h);
    }
    return next;
}

/* Takes in the answer to share's fetch: each partition's next offset, and
 * the share's next fetch sent before any record is read. */
static int fetch_taken(struct kdirect *d, uint32_t share)
{
    bool any = false;
    for (int32_t t = 0; t < d->resp.responses.count; t++) {
        const struct kafka_fetch_response_fetchable_topic_response *tr =
            &d->resp.responses.items[t];
        for (int32_t p = 0; p < tr->partitions.count; p++) {
            const struct kafka_fetch_response_partition_data *pd = &tr->partitions.items[p];
            int32_t i = pd->partition_index >= 0 && pd->partition_index < d->partitions
                            ? d->index_of[pd->partition_index]
                            : -1;
            if (i < 0 || pd->error_code != 0) {
                fprintf(stderr, "nagare-bench: kafka Fetch partition %d: error %d\n",
                        pd->partition_index, pd->error_code);
                return -EIO;
            }
            struct kd_part *kp = &d->parts[i];
            kp->reading_from = kp->next;
            kp->next = next_offset(pd, kp->next);
            any |= kp->next > kp->reading_from;
        }
    }
    if (any) {
        return fetch_send(d, share, 0);
    }
    if (d->queued > 0) {
        return 0; /* asked again once the others are caught up too */
    }
    int rc = 0;
    for (uint32_t s = 0; s < d->shares && rc == 0; s++) {
        rc = fetch_send(d, s, KD_WAIT_MS);
    }
    return rc;
}

/* Waits up to timeout_ms for the next answer: 1 read (cursor at its
 * start), 0 none yet, or an error. */
static int fetch_receive(struct kdirect *d, int timeout_ms)
{
    ASSERT(d->queued > 0);
    int n = kconn_readable(&d->conn, timeout_ms);
    if (n <= 0) {
        return n;
    }
    uint32_t share = d->queue[0];
    int32_t corr = d->conn.corr - (int32_t)d->queued + 1; /* the oldest in flight */
    memmove(d->queue, d->queue + 1, (d->queued - 1) * sizeof(d->queue[0]));
    d->queued--;
    int rc = kconn_answer(&d->conn, corr, KAFKA_API_FETCH, KD_FETCH_VERSION,
                          &kafka_fetch_response_msg, &d->resp);
    if (rc == 0 && d->resp.error_code != 0) {
        fprintf(stderr, "nagare-bench: kafka Fetch: error %d\n", d->resp.error_code);
        rc = -EIO;
    }
    rc = rc == 0 ? fetch_taken(d, share) : rc;
    d->topic_at = 0;
    d->part_at = -1;
    d->rec_left = 0;
    return rc == 0 ? 1 : rc;
}

/* Moves the cursor to the next partition of the answer with records;
 * false after the last. */
static bool next_partition(struct kdirect *d)
{
    while (d->topic_at < d->resp.responses.count) {
        const struct kafka_fetch_response_fetchable_topic_response *tr =
            &d->resp.responses.items[d->topic_at];
        if (++d->part_at >= tr->partitions.count) {
            d->topic_at++;
            d->part_at = -1;
            continue;
        }
        const struct kafka_fetch_response_partition_data *pd = &tr->partitions.items[d->part_at];
        if (pd->records.len <= 0) {
            continue;
        }
        d->rec_at = pd->records.ptr;
        d->rec_left = (size_t)pd->records.len;
        d->skip_below = d->parts[d->index_of[pd->partition_index]].reading_from;
        return true;
    }
    return false;
}

/* Opens the next whole batch of the partition being read; false when none
 * is left (a batch cut short at the end is read by the next fetch). */
static int next_batch(struct kdirect *d)
{
    struct batch_header h;
    if (d->rec_left == 0 ||
        batch_header_decode(d->rec_at, d->rec_left, BATCH_BYTES_LIMIT, &h) != 0 ||
        batch_bytes(&h) > d->rec_left) {
        d->rec_left = 0;
        return 0;
    }
    size_t n = batch_bytes(&h);
    int rc;
    for (;;) {
        rc =
            batch_reader_open(&d->br, d->rec_at, n, BATCH_BYTES_LIMIT, &d->z, d->zbuf, d->zbuf_cap);
        if (rc != -NG_ETOOBIG || d->zbuf_cap >= BATCH_BYTES_LIMIT) {
            break;
        }
        uint8_t *grown = realloc(d->zbuf, d->zbuf_cap * 2);
        if (grown == NULL) {
            return -ENOMEM;
        }
        d->zbuf = grown;
        d->zbuf_cap *= 2;
    }
    if (rc != 0) {
        fprintf(stderr, "nagare-bench: kafka batch at offset %lld: %s\n", (long long)h.offset_base,
                err_str(rc));
        return rc;
    }
    d->rec_at += n;
    d->rec_left -= n;
    d->br_open = true;
    return 1;
}

int kdirect_poll(struct kdirect *d, int timeout_ms, const void **value, size_t *len)
{
    for (;;) {
        if (d->br_open) {
            struct batch_record rec;
            int rc = batch_reader_next(&d->br, &rec);
            if (rc == 1 && rec.offset >= d->skip_below) {
                *value = rec.value;
                *len = rec.value_len > 0 ? (size_t)rec.value_len : 0;
                return 1;
            }
            if (rc < 0) {
                fprintf(stderr, "nagare-bench: kafka record: %s\n", err_str(rc));
                return rc;
            }
            d->br_open = rc == 1;
            continue;
        }
        int rc = next_batch(d);
        if (rc != 0) {
            if (rc < 0) {
                return rc;
            }
            continue;
        }
        if (next_partition(d)) {
            continue;
        }
        rc = fetch_receive(d, timeout_ms);
        if (rc <= 0) {
            return rc;
        }
    }
}

/* ---- set-up ---- */

/* The partitions first, first + step, ... shared over up to `fetches`
 * fetches in flight. */
static int parts_init(struct kdirect *d, const struct load_cfg *cfg, int32_t first, int32_t step,
                      uint32_t fetches)
{
    d->partitions = cfg->partitions;
    d->index_of = malloc((size_t)cfg->partitions * sizeof(*d->index_of));
    d->parts = calloc((size_t)cfg->partitions, sizeof(*d->parts));
    d->req_parts = calloc((size_t)cfg->partitions, sizeof(*d->req_parts));
    if (d->index_of == NULL || d->parts == NULL || d->req_parts == NULL) {
        return -ENOMEM;
    }
    for (int32_t p = 0; p < cfg->partitions; p++) {
        d->index_of[p] = -1;
    }
    for (int32_t p = first; p < cfg->partitions; p += step) {
        d->index_of[p] = (int32_t)d->count;
        d->parts[d->count++] = (struct kd_part){.partition = p};
    }
    uint32_t want = fetches < KD_SHARES_MAX ? fetches : KD_SHARES_MAX;
    d->shares = d->count < want ? d->count : want;
    for (uint32_t i = 0; i < d->count; i++) {
        d->parts[i].share = i % (d->shares > 0 ? d->shares : 1);
    }
    return d->count > 0 ? 0 : -EINVAL;
}

static int buffers_init(struct kdirect *d)
{
    d->zbuf_cap = 1u << 20;
    d->zbuf = malloc(d->zbuf_cap);
    if (d->zbuf == NULL) {
        return -ENOMEM;
    }
    return batch_zctx_init(&d->z, BATCH_HEADER_BYTES, 0);
}

int kdirect_new(const struct load_cfg *cfg, int32_t first, int32_t step, struct kdirect **out)
{
    ASSERT(first >= 0 && step > 0);
    *out = NULL;
    struct kdirect *d = calloc(1, sizeof(*d));
    if (d == NULL) {
        return -ENOMEM;
    }
    d->conn.fd = -1;
    d->topic = kw_str_make(cfg->topic);
    /* what the load does not set is libnagare's consumer's default */
    struct nagare_consumer_config dc;
    nagare_consumer_config_default(&dc);
    d->fetch_bytes_max =
        (int32_t)(cfg->fetch_bytes_max > 0 ? cfg->fetch_bytes_max : dc.fetch_bytes_max);
    d->partition_fetch_bytes_max =
        (int32_t)(cfg->partition_fetch_bytes_max > 0 ? cfg->partition_fetch_bytes_max
                                                     : dc.partition_fetch_bytes_max);
    int rc = parts_init(d, cfg, first, step,
                        cfg->fetches_inflight > 0 ? cfg->fetches_inflight : dc.fetches_inflight);
    rc = rc == 0 ? buffers_init(d) : rc;
    /* an answer may hold one batch past the limit, as the broker sizes it */
    rc = rc == 0 ? kconn_open(&d->conn, cfg->bootstrap, KD_HEADROOM_BYTES,
                              (size_t)d->fetch_bytes_max + BATCH_BYTES_LIMIT + KD_HEADROOM_BYTES)
                 : rc;
    rc = rc == 0 ? list_offsets(d, cfg->from_end ? KD_OFFSET_LATEST : KD_OFFSET_EARLIEST) : rc;
    for (uint32_t s = 0; rc == 0 && s < d->shares; s++) {
        rc = fetch_send(d, s, 0);
    }
    if (rc != 0) {
        kdirect_destroy(d);
        return rc;
    }
    *out = d;
    return 0;
}

void kdirect_destroy(struct kdirect *d)
{
    if (d == NULL) {
        return;
    }
    kconn_close(&d->conn);
    batch_zctx_fini(&d->z);
    free(d->index_of);
    free(d->parts);
    free(d->req_parts);
    free(d->zbuf);
    free(d);
}
