/*
 * tests/test_kafka_data.c — the Kafka listener's data path of a real
 * nagared (broker/kafka_serve.h): Metadata, Produce, Fetch, ListOffsets,
 * OffsetForLeaderEpoch and InitProducerId, spoken with net/kafka/codec.h.
 * Batches are built with storage/batch.h: nagare's format 2 is Kafka's
 * RecordBatch v2 (tests/test_kafka_batches.c checks it against an
 * independent Kafka encoder).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/bytes.h"
#include "net/kafka/codec.h"
#include "net/kafka/errors.h"
#include "storage/batch.h"
#include "tests/broker_support.h"
#include "tests/kafka_client_support.h"

#define TOPIC "kd"
#define TS_MS 1700000000000LL

static struct bk B;

static void setup(void) { bk_init(&B); }

static void teardown(void)
{
    bk_stop(&B);
    bk_fini(&B);
}

TestSuite(kafka_data, .init = setup, .fini = teardown, .timeout = 120);

/* Creates TOPIC (partitions) through nagare's own protocol. */
/* TOPIC with the broker's defaults, or with segments of segment_bytes
 * (small ones: several sealed segments from a few batches). */
static void create_topic_segments(int32_t partitions, int64_t segment_bytes)
{
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    struct proto_create_topic t = {.name = proto_str_make(TOPIC),
                                   .partition_count = partitions,
                                   .retention_ms = PROTO_CONFIG_DEFAULT,
                                   .retention_bytes = PROTO_CONFIG_DEFAULT,
                                   .segment_bytes = segment_bytes,
                                   .batch_bytes_max = PROTO_CONFIG_DEFAULT,
                                   .replication_factor = -1};
    cr_assert_eq(rq_create_cfg(&c, &t), 0);
    cl_close(&c);
}

static void create_topic(int32_t partitions)
{
    create_topic_segments(partitions, PROTO_CONFIG_DEFAULT);
}

/* ---- requests ---- */

struct produced {
    int16_t err;
    int64_t base_offset;
    int64_t log_start_offset;
};

static void produce_send(struct kc *c, int16_t version, int16_t acks, const uint8_t *batch,
                         size_t len)
{
    struct kafka_produce_request_partition_produce_data pd = {
        .index = 0, .records = {.ptr = batch, .len = (int32_t)len}};
    struct kafka_produce_request_topic_produce_data td = {
        .name = kw_str_make(TOPIC), .partition_data = {.items = &pd, .count = 1}};
    struct kafka_produce_request req;
    kafka_produce_request_init(&req);
    req.acks = acks;
    req.timeout_ms = 30000;
    req.topic_data.items = &td;
    req.topic_data.count = 1;
    kc_send(c, KAFKA_API_PRODUCE, version, &kafka_produce_request_msg, &req);
}

static struct produced produce_recv(struct kc *c, int16_t version)
{
    struct kafka_produce_response resp;
    cr_assert(kc_recv(c, KAFKA_API_PRODUCE, version, &kafka_produce_response_msg, &resp),
              "produce answered");
    cr_assert_eq(resp.responses.count, 1);
    cr_assert(kw_str_eq(resp.responses.items[0].name, TOPIC));
    cr_assert_eq(resp.responses.items[0].partition_responses.count, 1);
    const struct kafka_produce_response_partition_produce_response *p =
        &resp.responses.items[0].partition_responses.items[0];
    cr_assert_eq(p->index, 0);
    cr_assert_eq(p->log_append_time_ms, -1);
    return (struct produced){p->error_code, p->base_offset, p->log_start_offset};
}

static struct produced produce(struct kc *c, int16_t acks, const uint8_t *batch, size_t len)
{
    produce_send(c, 9, acks, batch, len);
    return produce_recv(c, 9);
}

struct fetched_part {
    int16_t err;
    int64_t high_watermark;
    int64_t last_stable_offset;
    int64_t log_start_offset;
    uint8_t *records; /* malloc'd copy */
    int32_t records_len;
};

static int32_t fetch_epoch = -1; /* the current leader epoch fetches name */

static void fetch_send(struct kc *c, int16_t version, int64_t offset, int32_t wait_ms,
                       int32_t session_id)
{
    struct kafka_fetch_request_partition fp = {.partition = 0,
                                               .current_leader_epoch = fetch_epoch,
                                               .fetch_offset = offset,
                                               .last_fetched_epoch = -1,
                                               .log_start_offset = -1,
                                               .partition_max_bytes = 1 << 20};
    struct kafka_fetch_request_topic ft = {.topic = kw_str_make(TOPIC),
                                           .partitions = {.items = &fp, .count = 1}};
    struct kafka_fetch_request req;
    kafka_fetch_request_init(&req);
    req.max_wait_ms = wait_ms;
    req.min_bytes = 1;
    req.session_id = session_id;
    req.topics.items = &ft;
    req.topics.count = 1;
    kc_send(c, KAFKA_API_FETCH, version, &kafka_fetch_request_msg, &req);
}

static struct fetched_part fetch_recv(struct kc *c, int16_t version)
{
    struct kafka_fetch_response resp;
    cr_assert(kc_recv(c, KAFKA_API_FETCH, version, &kafka_fetch_response_msg, &resp),
              "fetch answered");
    cr_assert_eq(resp.error_code, KAFKA_ERR_NONE);
    cr_assert_eq(resp.session_id, 0, "no fetch sessions");
    cr_assert_eq(resp.responses.count, 1);
    cr_assert(kw_str_eq(resp.responses.items[0].topic, TOPIC));
    cr_assert_eq(resp.responses.items[0].partitions.count, 1);
    const struct kafka_fetch_response_partition_data *p =
        &resp.responses.items[0].partitions.items[0];
    cr_assert_eq(p->partition_index, 0);
    cr_assert_eq(p->preferred_read_replica, -1);
    struct fetched_part out = {.err = p->error_code,
                               .high_watermark = p->high_watermark,
                               .last_stable_offset = p->last_stable_offset,
                               .log_start_offset = p->log_start_offset,
                               .records_len = p->records.len > 0 ? p->records.len : 0};
    out.records = malloc((size_t)out.records_len + 1);
    cr_assert_not_null(out.records);
    if (out.records_len > 0) {
        memcpy(out.records, p->records.ptr, (size_t)out.records_len);
    }
    return out;
}

static struct fetched_part fetch(struct kc *c, int64_t offset, int32_t wait_ms)
{
    fetch_send(c, 12, offset, wait_ms, 0);
    return fetch_recv(c, 12);
}

struct listed {
    int16_t err;
    int64_t offset;
    int64_t timestamp;
};

static struct listed list_offset(struct kc *c, int64_t timestamp)
{
    struct kafka_list_offsets_request_partition lp = {
        .partition_index = 0, .current_leader_epoch = fetch_epoch, .timestamp = timestamp};
    struct kafka_list_offsets_request_topic lt = {.name = kw_str_make(TOPIC),
                                                  .partitions = {.items = &lp, .count = 1}};
    struct kafka_list_offsets_request req;
    kafka_list_offsets_request_init(&req);
    req.replica_id = -1;
    req.topics.items = &lt;
    req.topics.count = 1;
    struct kafka_list_offsets_response resp;
    kc_call(c, KAFKA_API_LIST_OFFSETS, 6, &kafka_list_offsets_request_msg, &req,
            &kafka_list_offsets_response_msg, &resp);
    cr_assert_eq(resp.topics.count, 1);
    cr_assert_eq(resp.topics.items[0].partitions.count, 1);
    const struct kafka_list_offsets_response_partition_response *p =
        &resp.topics.items[0].partitions.items[0];
    return (struct listed){p->error_code, p->offset, p->timestamp};
}

/* Asserts that fetched holds exactly the batch sent, byte for byte from
 * its magic on (the broker writes the base offset and leader epoch). */
static void assert_same_batch(const uint8_t *got, int32_t got_len, const uint8_t *sent,
                              size_t sent_len, int64_t offset_base)
{
    cr_assert_eq((size_t)got_len, sent_len, "one whole batch: %d bytes for %zu", got_len, sent_len);
    cr_assert_eq((int64_t)get_be64(got + BATCH_OFF_OFFSET_BASE), offset_base);
    cr_assert_eq(memcmp(got + BATCH_OFF_LENGTH, sent + BATCH_OFF_LENGTH, 4), 0);
    cr_assert_eq(memcmp(got + BATCH_OFF_MAGIC, sent + BATCH_OFF_MAGIC, sent_len - BATCH_OFF_MAGIC),
                 0, "the stored bytes are the produced ones");
}

/* ---- Metadata ---- */

Test(kafka_data, metadata_lists_the_broker_and_a_created_topic)
{
    bk_start(&B);
    create_topic(3);
    struct kc c;
    kc_connect(&c, B.kafka_port);
    for (int16_t v = 1; v <= 12; v++) { /* null topics: every topic */
        struct kafka_metadata_request req;
        kafka_metadata_request_init(&req);
        req.topics.count = -1;
        struct kafka_metadata_response resp;
        kc_call(&c, KAFKA_API_METADATA, v, &kafka_metadata_request_msg, &req,
                &kafka_metadata_response_msg, &resp);
        cr_assert_eq(resp.brokers.count, 1, "v%d", v);
        cr_assert_eq(resp.brokers.items[0].node_id, 0);
        cr_assert(kw_str_eq(resp.brokers.items[0].host, "127.0.0.1"));
        cr_assert_eq(resp.brokers.items[0].port, B.kafka_port, "the Kafka listener's port");
        cr_assert_eq(resp.controller_id, 0);
        if (v >= 2) {
            cr_assert(kw_str_eq(resp.cluster_id, "nagare"));
        }
        const struct kafka_metadata_response_topic *t = NULL;
        for (int32_t i = 0; i < resp.topics.count; i++) {
            if (kw_str_eq(resp.topics.items[i].name, TOPIC)) {
                t = &resp.topics.items[i];
            }
        }
        cr_assert_not_null(t, "v%d lists the topic", v);
        cr_assert_eq(t->error_code, KAFKA_ERR_NONE);
        cr_assert_not(t->is_internal);
        cr_assert_eq(t->partitions.count, 3);
        for (int32_t p = 0; p < 3; p++) {
            const struct kafka_metadata_response_partition *mp = &t->partitions.items[p];
            cr_assert_eq(mp->partition_index, p);
            cr_assert_eq(mp->error_code, KAFKA_ERR_NONE);
            cr_assert_eq(mp->leader_id, 0);
            cr_assert_eq(mp->leader_epoch, v >= 7 ? 0 : -1);
            cr_assert_eq(mp->replica_nodes.count, 1);
            cr_assert_eq(mp->replica_nodes.items[0], 0);
            cr_assert_eq(mp->isr_nodes.count, 1);
            cr_assert_eq(mp->isr_nodes.items[0], 0);
        }
    }
    kc_close(&c);
}

/* Metadata of one named topic, allowing auto-creation or not. */
static int16_t metadata_of(struct kc *c, const char *name, bool allow, int32_t *partitions)
{
    struct kafka_metadata_request_topic rt = {.name = kw_str_make(name)};
    struct kafka_metadata_request req;
    kafka_metadata_request_init(&req);
    req.topics.items = &rt;
    req.topics.count = 1;
    req.allow_auto_topic_creation = allow;
    struct kafka_metadata_response resp;
    kc_call(c, KAFKA_API_METADATA, 9, &kafka_metadata_request_msg, &req,
            &kafka_metadata_response_msg, &resp);
    cr_assert_eq(resp.topics.count, 1);
    cr_assert(kw_str_eq(resp.topics.items[0].name, name));
    *partitions = resp.topics.items[0].partitions.count;
    return resp.topics.items[0].error_code;
}

Test(kafka_data, metadata_of_an_unknown_topic_creates_it_only_when_allowed)
{
    bk_start(&B);
    struct kc c;
    kc_connect(&c, B.kafka_port);
    int32_t partitions;
    cr_assert_eq(metadata_of(&c, "fresh", false, &partitions),
                 KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION);
    cr_assert_eq(partitions, 0);
    cr_assert_eq(metadata_of(&c, "fresh", true, &partitions), KAFKA_ERR_NONE);
    cr_assert_gt(partitions, 0, "created with the broker's default partitions");
    cr_assert_eq(metadata_of(&c, "fresh", false, &partitions), KAFKA_ERR_NONE, "it stays");
    cr_assert_eq(metadata_of(&c, "__own", true, &partitions), KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION,
                 "the broker's own names are not made");
    kc_close(&c);
}

/* ---- Produce and Fetch ---- */

Test(kafka_data, produce_then_fetch_returns_the_same_batch_bytes)
{
    bk_start(&B);
    create_topic(1);
    struct kc c;
    kc_connect(&c, B.kafka_port);
    uint8_t b1[4096], b2[4096];
    size_t n1 = bt_make(b1, sizeof(b1), 5, 1, TS_MS, -1, 0, -1);
    size_t n2 = bt_make(b2, sizeof(b2), 3, 2, TS_MS + 10, -1, 0, -1);
    struct produced p = produce(&c, 1, b1, n1);
    cr_assert_eq(p.err, KAFKA_ERR_NONE);
    cr_assert_eq(p.base_offset, 0);
    cr_assert_eq(p.log_start_offset, 0);
    p = produce(&c, 1, b2, n2);
    cr_assert_eq(p.err, KAFKA_ERR_NONE);
    cr_assert_eq(p.base_offset, 5);

    struct fetched_part f = fetch(&c, 0, 0);
    cr_assert_eq(f.err, KAFKA_ERR_NONE);
    cr_assert_eq(f.high_watermark, 8);
    cr_assert_eq(f.last_stable_offset, 8, "no transactions: the high watermark");
    cr_assert_eq(f.log_start_offset, 0);
    cr_assert_eq((size_t)f.records_len, n1 + n2);
    assert_same_batch(f.records, (int32_t)n1, b1, n1, 0);
    assert_same_batch(f.records + n1, (int32_t)n2, b2, n2, 5);
    free(f.records);

    f = fetch(&c, 5, 0);
    assert_same_batch(f.records, f.records_len, b2, n2, 5);
    free(f.records);
    f = fetch(&c, 8, 0);
    cr_assert_eq(f.err, KAFKA_ERR_NONE);
    cr_assert_eq(f.records_len, 0, "caught up: nothing");
    free(f.records);
    f = fetch(&c, 9, 0);
    cr_assert_eq(f.err, KAFKA_ERR_OFFSET_OUT_OF_RANGE);
    free(f.records);
    kc_close(&c);
}

Test(kafka_data, fetch_reads_sealed_segments_after_a_restart)
{
    bk_start(&B);
    create_topic_segments(1, 4096);
    struct kc c;
    kc_connect(&c, B.kafka_port);
    uint8_t b[8][1024];
    size_t n[8];
    for (int i = 0; i < 8; i++) {
        n[i] = bt_make(b[i], sizeof(b[i]), 8, (uint32_t)i, TS_MS + i, -1, 0, -1);
        cr_assert_eq(produce(&c, -1, b[i], n[i]).base_offset, 8 * i);
    }
    kc_close(&c);
    /* Sealed segments are checksum-checked as they are read after a
     * restart: the copy path, not the splice. */
    bk_stop(&B);
    bk_start(&B);
    kc_connect(&c, B.kafka_port);
    int64_t offset = 0;
    for (int i = 0; i < 8;) {
        struct fetched_part f = fetch(&c, offset, 0);
        cr_assert_eq(f.err, KAFKA_ERR_NONE);
        cr_assert_gt(f.records_len, 0, "batch %d", i);
        size_t at = 0;
        while (at < (size_t)f.records_len) {
            cr_assert_lt(i, 8);
            assert_same_batch(f.records + at, (int32_t)n[i], b[i], n[i], 8 * i);
            at += n[i];
            offset += 8;
            i++;
        }
        free(f.records);
    }
    kc_close(&c);
}

Test(kafka_data, acks_0_1_and_all_each_append)
{
    bk_start(&B);
    create_topic(1);
    struct kc c;
    kc_connect(&c, B.kafka_port);
    uint8_t b[4096];
    size_t n = bt_make(b, sizeof(b), 2, 1, TS_MS, -1, 0, -1);
    cr_assert_eq(produce(&c, -1, b, n).base_offset, 0);
    cr_assert_eq(produce(&c, 1, b, n).base_offset, 2);
    produce_send(&c, 9, 0, b, n); /* no answer */
    /* A fetch from offset 4 waits until the acks=0 batch is there. */
    struct fetched_part f = fetch(&c, 4, 60000);
    cr_assert_eq(f.err, KAFKA_ERR_NONE);
    assert_same_batch(f.records, f.records_len, b, n, 4);
    free(f.records);
    kc_close(&c);
}

Test(kafka_data, a_batch_with_a_bad_crc_is_corrupt_and_not_written)
{
    bk_start(&B);
    create_topic(1);
    struct kc c;
    kc_connect(&c, B.kafka_port);
    uint8_t b[4096];
    size_t n = bt_make(b, sizeof(b), 4, 1, TS_MS, -1, 0, -1);
    b[n - 1] ^= 0x40; /* a value byte: the CRC-32C no longer matches */
    struct produced p = produce(&c, -1, b, n);
    cr_assert_eq(p.err, KAFKA_ERR_CORRUPT_MESSAGE);
    cr_assert_eq(p.base_offset, -1);
    cr_assert_eq(list_offset(&c, -1).offset, 0, "nothing written");
    kc_close(&c);
}

Test(kafka_data, records_of_two_batches_are_refused_and_not_written)
{
    bk_start(&B);
    create_topic(1);
    struct kc c;
    kc_connect(&c, B.kafka_port);
    uint8_t b[8192];
    size_t n1 = bt_make(b, sizeof(b), 3, 1, TS_MS, -1, 0, -1);
    size_t n2 = bt_make(b + n1, sizeof(b) - n1, 2, 2, TS_MS, -1, 0, -1);
    struct produced p = produce(&c, -1, b, n1 + n2);
    cr_assert_eq(p.err, KAFKA_ERR_CORRUPT_MESSAGE);
    cr_assert_eq(list_offset(&c, -1).offset, 0, "nothing written");
    uint8_t tail[] = {0, 0, 0};
    memcpy(b + n1, tail, sizeof(tail)); /* a batch and stray bytes */
    cr_assert_eq(produce(&c, -1, b, n1 + sizeof(tail)).err, KAFKA_ERR_CORRUPT_MESSAGE);
    cr_assert_eq(list_offset(&c, -1).offset, 0, "nothing written");
    kc_close(&c);
}

Test(kafka_data, produce_v2_and_below_is_unsupported_per_partition)
{
    bk_start(&B);
    create_topic(1);
    struct kc c;
    kc_connect(&c, B.kafka_port);
    uint8_t b[4096];
    size_t n = bt_make(b, sizeof(b), 1, 1, TS_MS, -1, 0, -1);
    for (int16_t v = 0; v <= 2; v++) {
        produce_send(&c, v, 1, b, n);
        cr_assert_eq(produce_recv(&c, v).err, KAFKA_ERR_UNSUPPORTED_VERSION, "v%d", v);
    }
    produce_send(&c, 3, 1, b, n);
    cr_assert_eq(produce_recv(&c, 3).err, KAFKA_ERR_NONE);
    cr_assert_eq(list_offset(&c, -1).offset, 1);
    kc_close(&c);
}

static int64_t init_producer_id(struct kc *c, const char *transactional_id, int16_t *err)
{
    struct kafka_init_producer_id_request req;
    kafka_init_producer_id_request_init(&req);
    req.transactional_id = transactional_id != NULL ? kw_str_make(transactional_id) : KW_STR_NULL;
    req.transaction_timeout_ms = 60000;
    struct kafka_init_producer_id_response resp;
    kc_call(c, KAFKA_API_INIT_PRODUCER_ID, 4, &kafka_init_producer_id_request_msg, &req,
            &kafka_init_producer_id_response_msg, &resp);
    *err = resp.error_code;
    cr_assert_eq(resp.producer_epoch, *err == 0 ? 0 : -1);
    return resp.producer_id;
}

Test(kafka_data, an_idempotent_duplicate_gets_the_first_offset)
{
    bk_start(&B);
    create_topic(1);
    struct kc c;
    kc_connect(&c, B.kafka_port);
    int16_t err;
    int64_t pid = init_producer_id(&c, NULL, &err);
    cr_assert_eq(err, KAFKA_ERR_NONE);
    cr_assert_geq(pid, 0);
    int64_t pid2 = init_producer_id(&c, NULL, &err);
    cr_assert_neq(pid2, pid, "a new id each time");
    uint8_t b0[4096], b1[4096];
    size_t n0 = bt_make(b0, sizeof(b0), 3, 1, TS_MS, pid, 0, 0);
    size_t n1 = bt_make(b1, sizeof(b1), 2, 2, TS_MS, pid, 0, 3);
    cr_assert_eq(produce(&c, -1, b0, n0).base_offset, 0);
    cr_assert_eq(produce(&c, -1, b1, n1).base_offset, 3);
    struct produced p = produce(&c, -1, b1, n1); /* a retry of the last */
    cr_assert_eq(p.err, KAFKA_ERR_NONE);
    cr_assert_eq(p.base_offset, 3, "the first append's offset");
    cr_assert_eq(list_offset(&c, -1).offset, 5, "written once");
    uint8_t gap[4096];
    size_t ng = bt_make(gap, sizeof(gap), 1, 3, TS_MS, pid, 0, 9);
    cr_assert_eq(produce(&c, -1, gap, ng).err, KAFKA_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    kc_close(&c);
}

Test(kafka_data, a_transactional_producer_is_refused)
{
    bk_start(&B);
    struct kc c;
    kc_connect(&c, B.kafka_port);
    int16_t err;
    int64_t pid = init_producer_id(&c, "tx-1", &err);
    cr_assert_eq(err, KAFKA_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
    cr_assert_eq(pid, -1);
    kc_close(&c);
}

/* ---- ListOffsets, OffsetForLeaderEpoch ---- */

Test(kafka_data, list_offsets_earliest_latest_and_by_time)
{
    bk_start(&B);
    create_topic(1);
    struct kc c;
    kc_connect(&c, B.kafka_port);
    uint8_t b[4096];
    /* Records at TS_MS .. TS_MS+3 and TS_MS+1000 .. TS_MS+1003. */
    size_t n = bt_make(b, sizeof(b), 4, 1, TS_MS, -1, 0, -1);
    cr_assert_eq(produce(&c, 1, b, n).base_offset, 0);
    n = bt_make(b, sizeof(b), 4, 2, TS_MS + 1000, -1, 0, -1);
    cr_assert_eq(produce(&c, 1, b, n).base_offset, 4);
    struct listed l = list_offset(&c, -2);
    cr_assert_eq(l.err, KAFKA_ERR_NONE);
    cr_assert_eq(l.offset, 0);
    cr_assert_eq(list_offset(&c, -1).offset, 8);
    l = list_offset(&c, TS_MS + 500);
    cr_assert_eq(l.err, KAFKA_ERR_NONE);
    cr_assert_eq(l.offset, 4, "the first record at or after the time");
    cr_assert_eq(l.timestamp, TS_MS + 1000);
    l = list_offset(&c, TS_MS + 2);
    cr_assert_eq(l.offset, 2);
    cr_assert_eq(l.timestamp, TS_MS + 2);
    l = list_offset(&c, TS_MS + 5000);
    cr_assert_eq(l.offset, 8, "past every record: the end");
    cr_assert_eq(l.timestamp, -1);
    kc_close(&c);
}

Test(kafka_data, offset_for_leader_epoch_gives_the_epoch_end)
{
    bk_start(&B);
    create_topic(1);
    struct kc c;
    kc_connect(&c, B.kafka_port);
    uint8_t b[4096];
    size_t n = bt_make(b, sizeof(b), 6, 1, TS_MS, -1, 0, -1);
    cr_assert_eq(produce(&c, 1, b, n).err, KAFKA_ERR_NONE);
    struct kafka_offset_for_leader_epoch_request_offset_for_leader_partition rp = {
        .partition = 0, .current_leader_epoch = 0, .leader_epoch = 0};
    struct kafka_offset_for_leader_epoch_request_offset_for_leader_topic rt = {
        .topic = kw_str_make(TOPIC), .partitions = {.items = &rp, .count = 1}};
    struct kafka_offset_for_leader_epoch_request req;
    kafka_offset_for_leader_epoch_request_init(&req);
    req.topics.items = &rt;
    req.topics.count = 1;
    struct kafka_offset_for_leader_epoch_response resp;
    kc_call(&c, KAFKA_API_OFFSET_FOR_LEADER_EPOCH, 4, &kafka_offset_for_leader_epoch_request_msg,
            &req, &kafka_offset_for_leader_epoch_response_msg, &resp);
    cr_assert_eq(resp.topics.count, 1);
    const struct kafka_offset_for_leader_epoch_response_epoch_end_offset *p =
        &resp.topics.items[0].partitions.items[0];
    cr_assert_eq(p->error_code, KAFKA_ERR_NONE, "error %d", p->error_code);
    cr_assert_eq(p->leader_epoch, 0);
    cr_assert_eq(p->end_offset, 6);
    kc_close(&c);
}

/* ---- Fetch: long-poll, sessions ---- */

Test(kafka_data, a_long_poll_fetch_wakes_on_produce)
{
    bk_start(&B);
    create_topic(1);
    struct kc consumer, producer;
    kc_connect(&consumer, B.kafka_port);
    kc_connect(&producer, B.kafka_port);
    /* It waits far longer than any test runs: only the produce answers it. */
    fetch_send(&consumer, 11, 0, 600000, 0);
    uint8_t b[4096];
    size_t n = bt_make(b, sizeof(b), 2, 1, TS_MS, -1, 0, -1);
    cr_assert_eq(produce(&producer, 1, b, n).err, KAFKA_ERR_NONE);
    struct fetched_part f = fetch_recv(&consumer, 11);
    cr_assert_eq(f.err, KAFKA_ERR_NONE);
    assert_same_batch(f.records, f.records_len, b, n, 0);
    free(f.records);
    kc_close(&producer);
    kc_close(&consumer);
}

Test(kafka_data, a_fetch_session_id_is_not_found)
{
    bk_start(&B);
    create_topic(1);
    struct kc c;
    kc_connect(&c, B.kafka_port);
    fetch_send(&c, 12, 0, 0, 7);
    struct kafka_fetch_response resp;
    cr_assert(kc_recv(&c, KAFKA_API_FETCH, 12, &kafka_fetch_response_msg, &resp));
    cr_assert_eq(resp.error_code, KAFKA_ERR_FETCH_SESSION_ID_NOT_FOUND);
    cr_assert_eq(resp.responses.count, 0);
    kc_close(&c);
}

/* ---- CreateTopics, DeleteTopics ---- */

static int16_t create_topics(struct kc *c, const char *name, int32_t partitions,
                             const char *config_name, const char *config_value, bool validate_only,
                             int32_t *partitions_out)
{
    struct kafka_create_topics_request_creatable_topic_config cfg = {
        .name = kw_str_make(config_name != NULL ? config_name : ""),
        .value = config_value != NULL ? kw_str_make(config_value) : KW_STR_NULL};
    struct kafka_create_topics_request_creatable_topic t = {
        .name = kw_str_make(name),
        .num_partitions = partitions,
        .replication_factor = -1,
        .configs = {.items = &cfg, .count = config_name != NULL ? 1 : 0}};
    struct kafka_create_topics_request req;
    kafka_create_topics_request_init(&req);
    req.topics.items = &t;
    req.topics.count = 1;
    req.validate_only = validate_only;
    struct kafka_create_topics_response resp;
    kc_call(c, KAFKA_API_CREATE_TOPICS, 7, &kafka_create_topics_request_msg, &req,
            &kafka_create_topics_response_msg, &resp);
    cr_assert_eq(resp.topics.count, 1);
    cr_assert(kw_str_eq(resp.topics.items[0].name, name));
    *partitions_out = resp.topics.items[0].num_partitions;
    return resp.topics.items[0].error_code;
}

static int16_t delete_topic(struct kc *c, int16_t version, const char *name)
{
    struct kw_str n = kw_str_make(name);
    struct kafka_delete_topics_request_delete_topic_state st = {.name = n};
    struct kafka_delete_topics_request req;
    kafka_delete_topics_request_init(&req);
    if (version >= 6) {
        req.topics.items = &st;
        req.topics.count = 1;
    } else {
        req.topic_names.items = &n;
        req.topic_names.count = 1;
    }
    req.timeout_ms = 30000;
    struct kafka_delete_topics_response resp;
    kc_call(c, KAFKA_API_DELETE_TOPICS, version, &kafka_delete_topics_request_msg, &req,
            &kafka_delete_topics_response_msg, &resp);
    cr_assert_eq(resp.responses.count, 1);
    cr_assert(kw_str_eq(resp.responses.items[0].name, name));
    return resp.responses.items[0].error_code;
}

Test(kafka_data, create_topics_then_delete_topics)
{
    bk_start(&B);
    struct kc c;
    kc_connect(&c, B.kafka_port);
    int32_t n;
    cr_assert_eq(create_topics(&c, "made", 4, NULL, NULL, true, &n), KAFKA_ERR_NONE);
    cr_assert_eq(metadata_of(&c, "made", false, &n), KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION,
                 "validate_only creates nothing");
    cr_assert_eq(create_topics(&c, "made", 4, "retention.ms", "-1", false, &n), KAFKA_ERR_NONE);
    cr_assert_eq(n, 4);
    cr_assert_eq(metadata_of(&c, "made", false, &n), KAFKA_ERR_NONE);
    cr_assert_eq(n, 4);
    cr_assert_eq(create_topics(&c, "made", 4, NULL, NULL, false, &n),
                 KAFKA_ERR_TOPIC_ALREADY_EXISTS);
    cr_assert_eq(create_topics(&c, "odd", 1, "flush.ms", "5", false, &n), KAFKA_ERR_INVALID_CONFIG,
                 "a config nagare does not have");
    cr_assert_eq(create_topics(&c, "odd", 1, "cleanup.policy", "compact", false, &n),
                 KAFKA_ERR_INVALID_CONFIG);
    cr_assert_eq(create_topics(&c, "__own", 1, NULL, NULL, false, &n), KAFKA_ERR_INVALID_TOPIC);
    cr_assert_eq(create_topics(&c, "bad/name", 1, NULL, NULL, false, &n), KAFKA_ERR_INVALID_TOPIC);
    cr_assert_eq(create_topics(&c, "dflt", -1, "segment.bytes", "1048576", false, &n),
                 KAFKA_ERR_NONE);
    cr_assert_gt(n, 0, "the broker's default partitions");
    cr_assert_eq(delete_topic(&c, 6, "made"), KAFKA_ERR_NONE);
    cr_assert_eq(metadata_of(&c, "made", false, &n), KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION);
    cr_assert_eq(delete_topic(&c, 5, "dflt"), KAFKA_ERR_NONE);
    cr_assert_eq(delete_topic(&c, 5, "dflt"), KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION);
    kc_close(&c);
}

Test(kafka_data, fetch_and_list_offsets_check_the_current_leader_epoch)
{
    bk_start(&B);
    create_topic(1);
    struct kc c;
    kc_connect(&c, B.kafka_port);
    uint8_t b[4096];
    size_t n = bt_make(b, sizeof(b), 2, 1, TS_MS, -1, 0, -1);
    cr_assert_eq(produce(&c, 1, b, n).err, KAFKA_ERR_NONE);
    fetch_epoch = 0; /* a single broker's */
    struct fetched_part f = fetch(&c, 0, 0);
    cr_assert_eq(f.err, KAFKA_ERR_NONE);
    cr_assert_eq((size_t)f.records_len, n);
    free(f.records);
    cr_assert_eq(list_offset(&c, -1).err, KAFKA_ERR_NONE);
    fetch_epoch = 3; /* from a leader this broker has not heard of */
    f = fetch(&c, 0, 0);
    cr_assert_eq(f.err, KAFKA_ERR_UNKNOWN_LEADER_EPOCH);
    cr_assert_eq(f.records_len, 0);
    free(f.records);
    cr_assert_eq(list_offset(&c, -1).err, KAFKA_ERR_UNKNOWN_LEADER_EPOCH);
    fetch_epoch = -1;
    kc_close(&c);
}

/* DescribeConfigs of TOPIC: the value of each config named, NULL when not
 * in the answer. */
static int16_t describe_topic(struct kc *c, const char *topic, const char *const *keys,
                              int32_t key_count, char values[][32])
{
    struct kw_str k[8];
    for (int32_t i = 0; i < key_count; i++) {
        k[i] = kw_str_make(keys[i]);
    }
    struct kafka_describe_configs_request_resource r = {
        .resource_type = 2,
        .resource_name = kw_str_make(topic),
        .configuration_keys = {.items = k, .count = key_count}};
    struct kafka_describe_configs_request req;
    kafka_describe_configs_request_init(&req);
    req.resources.items = &r;
    req.resources.count = 1;
    struct kafka_describe_configs_response resp;
    kc_call(c, KAFKA_API_DESCRIBE_CONFIGS, 4, &kafka_describe_configs_request_msg, &req,
            &kafka_describe_configs_response_msg, &resp);
    cr_assert_eq(resp.results.count, 1);
    const struct kafka_describe_configs_response_result *res = &resp.results.items[0];
    cr_assert(kw_str_eq(res->resource_name, topic));
    for (int32_t i = 0; i < res->configs.count; i++) {
        const struct kafka_describe_configs_response_resource_result *cfg = &res->configs.items[i];
        cr_assert_lt(i, 8);
        cr_assert_lt(cfg->value.len, 32);
        snprintf(values[i], 32, "%.*s=%.*s", (int)cfg->name.len, cfg->name.ptr, (int)cfg->value.len,
                 cfg->value.ptr);
    }
    values[res->configs.count][0] = '\0';
    return res->error_code;
}

Test(kafka_data, describe_configs_gives_a_topics_settings_by_kafkas_names)
{
    bk_start(&B);
    struct kc c;
    kc_connect(&c, B.kafka_port);
    int32_t n;
    cr_assert_eq(create_topics(&c, TOPIC, 1, "retention.bytes", "1048576", false, &n),
                 KAFKA_ERR_NONE);
    char v[9][32];
    cr_assert_eq(describe_topic(&c, TOPIC, NULL, -1, v), KAFKA_ERR_NONE);
    const char *names[] = {"retention.ms=", "retention.bytes=1048576", "segment.bytes=",
                           "segment.ms=",   "max.message.bytes=",      "cleanup.policy=delete"};
    for (size_t i = 0; i < ARRAY_LEN(names); i++) {
        cr_assert(strncmp(v[i], names[i], strlen(names[i])) == 0, "%s for %s", v[i], names[i]);
    }
    cr_assert_eq(v[6][0], '\0', "six configs");
    const char *keys[] = {"segment.bytes", "nope"};
    cr_assert_eq(describe_topic(&c, TOPIC, keys, 2, v), KAFKA_ERR_NONE);
    cr_assert(strncmp(v[0], "segment.bytes=", 14) == 0);
    cr_assert_eq(v[1][0], '\0', "only the config asked for");
    cr_assert_eq(describe_topic(&c, "missing", NULL, -1, v), KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION);
    kc_close(&c);
}

/* Two partitions of sealed segments after a restart are copied (checked
 * batch by batch); together they stay within the frame limit. */
Test(kafka_data, copied_partitions_stay_within_the_frame_limit)
{
    bk_set(&B, "frame_bytes_max=65536");
    bk_set(&B, "batch_bytes_max=8192");
    bk_start(&B);
    create_topic_segments(2, 4096);
    struct kc c;
    kc_connect(&c, B.kafka_port);
    uint8_t b[8192];
    size_t n = bt_make_sized(b, sizeof(b), 4, 1500, 1, BATCH_CODEC_NONE, NULL);
    for (int32_t p = 0; p < 2; p++) {
        for (int i = 0; i < 8; i++) { /* 8 batches of ~6 KiB: ~48 KiB a partition */
            struct kafka_produce_request_partition_produce_data pd = {
                .index = p, .records = {.ptr = b, .len = (int32_t)n}};
            struct kafka_produce_request_topic_produce_data td = {
                .name = kw_str_make(TOPIC), .partition_data = {.items = &pd, .count = 1}};
            struct kafka_produce_request req;
            kafka_produce_request_init(&req);
            req.acks = -1;
            req.timeout_ms = 30000;
            req.topic_data.items = &td;
            req.topic_data.count = 1;
            struct kafka_produce_response resp;
            kc_call(&c, KAFKA_API_PRODUCE, 9, &kafka_produce_request_msg, &req,
                    &kafka_produce_response_msg, &resp);
            cr_assert_eq(resp.responses.items[0].partition_responses.items[0].error_code, 0);
        }
    }
    kc_close(&c);
    bk_stop(&B);
    bk_start(&B);
    kc_connect(&c, B.kafka_port);
    struct kafka_fetch_request_partition fp[2];
    for (int32_t p = 0; p < 2; p++) {
        fp[p] = (struct kafka_fetch_request_partition){.partition = p,
                                                       .current_leader_epoch = -1,
                                                       .fetch_offset = 0,
                                                       .last_fetched_epoch = -1,
                                                       .log_start_offset = -1,
                                                       .partition_max_bytes = 1 << 20};
    }
    struct kafka_fetch_request_topic ft = {.topic = kw_str_make(TOPIC),
                                           .partitions = {.items = fp, .count = 2}};
    struct kafka_fetch_request req;
    kafka_fetch_request_init(&req);
    req.min_bytes = 1;
    req.topics.items = &ft;
    req.topics.count = 1;
    struct kafka_fetch_response resp;
    kc_send(&c, KAFKA_API_FETCH, 12, &kafka_fetch_request_msg, &req);
    cr_assert(kc_recv(&c, KAFKA_API_FETCH, 12, &kafka_fetch_response_msg, &resp),
              "answered, not closed");
    int32_t total = 0;
    for (int32_t p = 0; p < 2; p++) {
        const struct kafka_fetch_response_partition_data *pd =
            &resp.responses.items[0].partitions.items[p];
        cr_assert_eq(pd->error_code, KAFKA_ERR_NONE);
        total += pd->records.len > 0 ? pd->records.len : 0;
    }
    cr_assert_gt(total, 0);
    cr_assert_leq(total, 65536, "within the frame limit");
    kc_close(&c);
}
