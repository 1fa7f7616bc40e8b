/* Tests for net/kafka/codec.h: every Kafka message at every version both
 * ways, bytes computed by hand from the specification, hostile input, the
 * records hole, the headers and the table of APIs. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/kafka/codec.h"
#include "tests/kafka_support.h"

/* Room for any message struct (checked) and what it points to. */
#define MSG_BYTES_MAX 1024
static _Alignas(16) uint8_t msg_a[MSG_BYTES_MAX];
static _Alignas(16) uint8_t msg_b[MSG_BYTES_MAX];
static _Alignas(16) uint8_t fill_buf[1 << 16];
static uint8_t out[1 << 16];

/* Decodes n bytes at p as msg at version into *m, with an arena of exactly
 * what kw_arena_bytes() says the input may need. */
static int decode(const struct kafka_msg *msg, int16_t version, const uint8_t *p, size_t n, void *m,
                  void **arena_out)
{
    size_t cap = kw_arena_bytes(n);
    void *buf = malloc(cap > 0 ? cap : 1);
    cr_assert_not_null(buf);
    struct kw_arena a;
    kw_arena_init(&a, buf, cap);
    struct rd r = rd_make(p, n);
    int rc = kafka_decode(msg, &r, version, &a, m);
    *arena_out = buf;
    return rc;
}

/* Encodes m, checking that measuring says the same size. */
static size_t encode(const struct kafka_msg *msg, int16_t version, const void *m)
{
    struct kw_wr meas = kw_wr_measure();
    cr_assert_eq(kafka_encode(msg, &meas, version, m), 0, "%s v%d: measure", msg->name, version);
    struct kw_wr w = kw_wr_make(out, sizeof(out), NULL, 0);
    int rc = kafka_encode(msg, &w, version, m);
    cr_assert_eq(rc, 0, "%s v%d: %s", msg->name, version, err_str(rc));
    cr_assert_eq(w.w.pos, meas.w.pos, "%s v%d: measured %zu, wrote %zu", msg->name, version,
                 meas.w.pos, w.w.pos);
    return w.w.pos;
}

/* One random msg at version, seed: encode, decode, compare; then every
 * prefix is refused as truncated and one byte more as too long. */
static void round_trip(const struct kafka_msg *msg, int16_t version, uint64_t seed, bool cut)
{
    cr_assert_leq(msg->body->size, MSG_BYTES_MAX);
    struct kw_arena fa;
    kw_arena_init(&fa, fill_buf, sizeof(fill_buf));
    ks_fill(msg, version, &seed, &fa, msg_a);
    size_t n = encode(msg, version, msg_a);
    uint8_t *bytes = malloc(n + 1);
    memcpy(bytes, out, n);
    void *arena;
    int rc = decode(msg, version, bytes, n, msg_b, &arena);
    cr_assert_eq(rc, 0, "%s v%d seed %llu: %s", msg->name, version, (unsigned long long)seed,
                 err_str(rc));
    char why[128];
    cr_assert(ks_equal(msg, msg_a, msg_b, why, sizeof(why)), "%s v%d seed %llu: %s differs",
              msg->name, version, (unsigned long long)seed, why);
    free(arena);
    for (size_t k = 0; cut && k < n; k++) {
        uint8_t *head = malloc(k + 1); /* exactly k bytes readable to ASan */
        memcpy(head, bytes, k);
        rc = decode(msg, version, head, k, msg_b, &arena);
        cr_assert_eq(rc, -NG_ETRUNCATED, "%s v%d cut at %zu of %zu: %s", msg->name, version, k, n,
                     err_str(rc));
        free(arena);
        free(head);
    }
    bytes[n] = 0;
    rc = decode(msg, version, bytes, n + 1, msg_b, &arena);
    cr_assert_eq(rc, -NG_EBADLEN, "%s v%d with a byte more: %s", msg->name, version, err_str(rc));
    free(arena);
    free(bytes);
}

Test(kafka_codec, every_message_round_trips_at_every_version)
{
    for (size_t i = 0; i < KAFKA_API_COUNT; i++) {
        const struct kafka_api *api = &kafka_apis[i];
        for (int16_t v = api->versions.min; v <= api->versions.max; v++) {
            for (uint64_t seed = 1; seed <= 40; seed++) {
                round_trip(api->request, v, seed * 1000 + (uint64_t)v, seed == 1);
                round_trip(api->response, v, seed * 1000 + (uint64_t)v, seed == 1);
            }
        }
    }
}

Test(kafka_codec, absent_fields_decode_as_defaults)
{
    /* Metadata v0 response: no brokers, no topics; v0 has neither the
     * controller id, the cluster id nor authorized operations */
    static const uint8_t v0[] = {0, 0, 0, 0, 0, 0, 0, 0};
    struct kafka_metadata_response m;
    static uint8_t abuf[64];
    struct kw_arena a;
    kw_arena_init(&a, abuf, sizeof(abuf));
    struct rd r = rd_make(v0, sizeof(v0));
    cr_assert_eq(kafka_metadata_response_decode(&r, 0, &a, &m), 0);
    cr_assert_eq(m.controller_id, -1);
    cr_assert_eq(m.cluster_id.len, -1);
    cr_assert_eq(m.cluster_authorized_operations, INT32_MIN);
    cr_assert_eq(m.brokers.count, 0);
    cr_assert_eq(m.topics.count, 0);

    struct kafka_fetch_request f;
    kafka_fetch_request_init(&f);
    cr_assert_eq(f.replica_id, -1);
    cr_assert_eq(f.max_bytes, 0x7fffffff);
    cr_assert_eq(f.session_epoch, -1);
    cr_assert_eq(f.cluster_id.len, -1);
    cr_assert(kw_str_eq(f.rack_id, ""));
}

/* ---- bytes by hand, from the specification ---- */

static void expect_bytes(const struct kw_wr *w, const uint8_t *want, size_t n)
{
    cr_assert_eq(w->w.err, 0);
    cr_assert_eq(w->w.pos, n, "wrote %zu bytes, want %zu", w->w.pos, n);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(w->w.ptr[i], want[i], "byte %zu: %02x, want %02x", i, w->w.ptr[i], want[i]);
    }
}

Test(kafka_codec, api_versions_v3_request_by_hand)
{
    static const uint8_t want[] = {
        0x00, 0x12, 0x00, 0x03, 0x00, 0x00, 0x00, 0x07, /* key 18, v3, correlation 7 */
        0x00, 0x04, 'k',  'c',  'a',  't',              /* client id: i16 length always */
        0x00,                                           /* header v2: no tagged fields */
        0x0b, 'l',  'i',  'b',  'r',  'd',  'k',  'a',  'f', 'k', 'a', /* compact: 10 + 1 */
        0x06, '2',  '.',  '0',  '.',  '2',                             /* compact: 5 + 1 */
        0x00,                                                          /* no tagged fields */
    };
    struct kw_wr w = kw_wr_make(out, sizeof(out), NULL, 0);
    struct kafka_req_header h = {.api_key = KAFKA_API_API_VERSIONS,
                                 .api_version = 3,
                                 .correlation_id = 7,
                                 .client_id = kw_str_make("kcat")};
    kafka_req_header_encode(&w, &h);
    struct kafka_api_versions_request m;
    kafka_api_versions_request_init(&m);
    m.client_software_name = kw_str_make("librdkafka");
    m.client_software_version = kw_str_make("2.0.2");
    cr_assert_eq(kafka_api_versions_request_encode(&w, 3, &m), 0);
    expect_bytes(&w, want, sizeof(want));

    struct rd r = rd_make(want, sizeof(want));
    struct kafka_req_header got;
    const struct kafka_api *api;
    cr_assert_eq(kafka_req_header_decode(&r, &got, &api), 0);
    cr_assert_eq(api->key, KAFKA_API_API_VERSIONS);
    cr_assert_eq(got.correlation_id, 7);
    cr_assert(kw_str_eq(got.client_id, "kcat"));
    struct kw_arena a;
    kw_arena_init(&a, NULL, 0);
    cr_assert_eq(kafka_api_versions_request_decode(&r, 3, &a, &m), 0);
    cr_assert(kw_str_eq(m.client_software_name, "librdkafka"));
    cr_assert(kw_str_eq(m.client_software_version, "2.0.2"));
}

Test(kafka_codec, metadata_v1_request_by_hand)
{
    static const uint8_t want[] = {0x00, 0x00, 0x00, 0x02, 0x00, 0x03, 'f',
                                   'o',  'o',  0x00, 0x03, 'b',  'a',  'r'};
    struct kafka_metadata_request_topic topics[2];
    for (int i = 0; i < 2; i++) {
        memset(&topics[i], 0, sizeof(topics[i]));
        topics[i].name = kw_str_make(i == 0 ? "foo" : "bar");
    }
    struct kafka_metadata_request m;
    kafka_metadata_request_init(&m);
    m.topics.items = topics;
    m.topics.count = 2;
    struct kw_wr w = kw_wr_make(out, sizeof(out), NULL, 0);
    cr_assert_eq(kafka_metadata_request_encode(&w, 1, &m), 0);
    expect_bytes(&w, want, sizeof(want));

    /* null topics (all of them) from v1, not in v0 */
    m.topics.count = -1;
    w = kw_wr_make(out, sizeof(out), NULL, 0);
    cr_assert_eq(kafka_metadata_request_encode(&w, 1, &m), 0);
    expect_bytes(&w, (const uint8_t[]){0xff, 0xff, 0xff, 0xff}, 4);
    w = kw_wr_make(out, sizeof(out), NULL, 0);
    cr_assert_eq(kafka_metadata_request_encode(&w, 0, &m), -NG_EBADARG);
    cr_assert_eq(w.w.pos, 0, "a failed encode leaves the writer as it was");
    cr_assert_eq(w.w.err, 0);
    struct rd r = rd_make(out, 4);
    memcpy(out, (const uint8_t[]){0xff, 0xff, 0xff, 0xff}, 4);
    struct kw_arena a;
    kw_arena_init(&a, NULL, 0);
    cr_assert_eq(kafka_metadata_request_decode(&r, 0, &a, &m), -NG_EBADCOUNT);
}

Test(kafka_codec, produce_v9_request_by_hand)
{
    static const uint8_t want[] = {
        0x00,                         /* transactional id: compact null */
        0xff, 0xff,                   /* acks -1 */
        0x00, 0x00, 0x75, 0x30,       /* timeout 30000 ms */
        0x02, 0x02, 't',              /* one topic, "t" */
        0x02, 0x00, 0x00, 0x00, 0x05, /* one partition, index 5 */
        0x04, 0xaa, 0xbb, 0xcc,       /* records: compact 3 + 1 */
        0x00, 0x00, 0x00,             /* tagged fields: partition, topic, request */
    };
    static const uint8_t records[3] = {0xaa, 0xbb, 0xcc};
    struct kafka_produce_request_partition_produce_data part = {
        .index = 5, .records = {.ptr = records, .len = 3}};
    struct kafka_produce_request_topic_produce_data topic = {
        .name = kw_str_make("t"), .partition_data = {.items = &part, .count = 1}};
    struct kafka_produce_request m;
    kafka_produce_request_init(&m);
    cr_assert_eq(m.transactional_id.len, -1);
    m.acks = -1;
    m.timeout_ms = 30000;
    m.topic_data.items = &topic;
    m.topic_data.count = 1;
    struct kw_wr w = kw_wr_make(out, sizeof(out), NULL, 0);
    cr_assert_eq(kafka_produce_request_encode(&w, 9, &m), 0);
    expect_bytes(&w, want, sizeof(want));

    void *arena;
    struct kafka_produce_request got;
    cr_assert_eq(decode(&kafka_produce_request_msg, 9, want, sizeof(want), &got, &arena), 0);
    const struct kw_records *rec = &got.topic_data.items[0].partition_data.items[0].records;
    cr_assert_eq(rec->len, 3);
    cr_assert_eq(rec->ptr, want + 16, "records point into the frame");
    free(arena);
}

/* ApiVersions v3 response: one api, FinalizedFeaturesEpoch 5 (tag 1) and
 * ZkMigrationReady (tag 3) set, the other tagged fields at their defaults. */
static const uint8_t api_versions_v3_resp[] = {
    0x00, 0x00,                                           /* error */
    0x02,                                                 /* compact array: 1 + 1 */
    0x00, 0x12, 0x00, 0x00, 0x00, 0x03, 0x00,             /* key 18, 0-3, no tags */
    0x00, 0x00, 0x00, 0x00,                               /* throttle */
    0x02,                                                 /* two tagged fields */
    0x01, 0x08, 0,    0,    0,    0,    0,    0, 0, 0x05, /* tag 1, 8 bytes: 5 */
    0x03, 0x01, 0x01,                                     /* tag 3, 1 byte: true */
};

Test(kafka_codec, flexible_response_with_tagged_fields_by_hand)
{
    struct kafka_api_versions_response_api_version key = {
        .api_key = KAFKA_API_API_VERSIONS, .min_version = 0, .max_version = 3};
    struct kafka_api_versions_response m;
    kafka_api_versions_response_init(&m);
    cr_assert_eq(m.finalized_features_epoch, -1);
    m.api_keys.items = &key;
    m.api_keys.count = 1;
    m.finalized_features_epoch = 5;
    m.zk_migration_ready = true;
    struct kw_wr w = kw_wr_make(out, sizeof(out), NULL, 0);
    cr_assert_eq(kafka_api_versions_response_encode(&w, 3, &m), 0);
    expect_bytes(&w, api_versions_v3_resp, sizeof(api_versions_v3_resp));

    static uint8_t abuf[256];
    struct kw_arena a;
    kw_arena_init(&a, abuf, sizeof(abuf));
    struct rd r = rd_make(api_versions_v3_resp, sizeof(api_versions_v3_resp));
    struct kafka_api_versions_response got;
    cr_assert_eq(kafka_api_versions_response_decode(&r, 3, &a, &got), 0);
    cr_assert_eq(got.finalized_features_epoch, 5);
    cr_assert(got.zk_migration_ready);
    cr_assert_eq(got.supported_features.count, 0);
    cr_assert_eq(got.api_keys.count, 1);
    cr_assert_eq(got.api_keys.items[0].max_version, 3);
}

/* The same response with its tagged section replaced by tags. */
static int decode_api_versions_tags(const uint8_t *tags, size_t n,
                                    struct kafka_api_versions_response *got)
{
    static uint8_t bytes[64];
    static uint8_t abuf[256];
    size_t head = sizeof(api_versions_v3_resp) - 14;
    memcpy(bytes, api_versions_v3_resp, head);
    memcpy(bytes + head, tags, n);
    struct kw_arena a;
    kw_arena_init(&a, abuf, sizeof(abuf));
    struct rd r = rd_make(bytes, head + n);
    return kafka_api_versions_response_decode(&r, 3, &a, got);
}

Test(kafka_codec, unknown_tags_are_skipped_bad_ones_refused)
{
    struct kafka_api_versions_response got;
    /* tag 1, then an unknown tag 9 of 3 bytes */
    static const uint8_t unknown[] = {0x02, 0x01, 0x08, 0,    0,    0, 0, 0,
                                      0,    0,    0x07, 0x09, 0x03, 1, 2, 3};
    cr_assert_eq(decode_api_versions_tags(unknown, sizeof(unknown), &got), 0);
    cr_assert_eq(got.finalized_features_epoch, 7);
    /* out of order */
    static const uint8_t order[] = {0x02, 0x03, 0x01, 0x01, 0x01, 0x08, 0, 0, 0, 0, 0, 0, 0, 0x07};
    cr_assert_eq(decode_api_versions_tags(order, sizeof(order), &got), -NG_EBADARG);
    /* a known tag whose value does not fill its size */
    static const uint8_t loose[] = {0x01, 0x01, 0x09, 0, 0, 0, 0, 0, 0, 0, 0x07, 0x00};
    cr_assert_eq(decode_api_versions_tags(loose, sizeof(loose), &got), -NG_EBADLEN);
    /* one shorter than its value */
    static const uint8_t tight[] = {0x01, 0x01, 0x04, 0, 0, 0, 0x07};
    cr_assert_eq(decode_api_versions_tags(tight, sizeof(tight), &got), -NG_ETRUNCATED);
}

Test(kafka_codec, versions_outside_the_range_are_refused)
{
    for (size_t i = 0; i < KAFKA_API_COUNT; i++) {
        const struct kafka_api *api = &kafka_apis[i];
        const struct kafka_msg *msgs[2] = {api->request, api->response};
        for (int j = 0; j < 2; j++) {
            kafka_init(msgs[j], msg_a);
            struct kw_wr w = kw_wr_make(out, sizeof(out), NULL, 0);
            cr_assert_eq(kafka_encode(msgs[j], &w, (int16_t)(api->versions.max + 1), msg_a),
                         -NG_EBADVERSION);
            struct rd r = rd_make(out, 0);
            struct kw_arena a;
            kw_arena_init(&a, NULL, 0);
            cr_assert_eq(kafka_decode(msgs[j], &r, (int16_t)(api->versions.min - 1), &a, msg_b),
                         -NG_EBADVERSION);
        }
    }
}

Test(kafka_codec, encode_errors_leave_the_writer_as_it_was)
{
    struct kafka_heartbeat_request m;
    kafka_heartbeat_request_init(&m);
    m.group_id = KW_STR_NULL; /* never nullable */
    uint8_t small[4];
    struct kw_wr w = kw_wr_make(small, sizeof(small), NULL, 0);
    kw_wr_u8(&w, 0xaa);
    cr_assert_eq(kafka_heartbeat_request_encode(&w, 0, &m), -NG_EBADARG);
    cr_assert_eq(w.w.pos, 1);
    cr_assert_eq(w.w.err, 0);
    m.group_id = kw_str_make("a-group-id-longer-than-the-buffer");
    cr_assert_eq(kafka_heartbeat_request_encode(&w, 0, &m), -NG_ENOSPACE);
    cr_assert_eq(w.w.pos, 1);
    cr_assert_eq(w.w.err, 0);

    /* a header that does not fit: the body's encode says so */
    w = kw_wr_make(small, 2, NULL, 0);
    kafka_resp_header_encode(&w, KAFKA_API_HEARTBEAT, 0, 1);
    cr_assert_eq(w.w.err, -NG_ENOSPACE);
    struct kafka_heartbeat_response resp;
    kafka_heartbeat_response_init(&resp);
    cr_assert_eq(kafka_heartbeat_response_encode(&w, 0, &resp), -NG_ENOSPACE);
}

Test(kafka_codec, arena_too_small_is_too_big)
{
    static const uint8_t req[] = {0x00, 0x00, 0x00, 0x02, 0x00, 0x01, 'a', 0x00, 0x01, 'b'};
    static uint8_t abuf[16];
    struct kw_arena a;
    kw_arena_init(&a, abuf, sizeof(abuf)); /* two kw_str elements need 32 */
    struct rd r = rd_make(req, sizeof(req));
    struct kafka_describe_groups_request m;
    cr_assert_eq(kafka_describe_groups_request_decode(&r, 0, &a, &m), -NG_ETOOBIG);
}

/* ---- the records hole ---- */

/* A Fetch response of one topic "t" and two partitions: the first's 1000
 * bytes of records external, the second's 3 inline. */
static void fetch_with_hole(int16_t version, struct kw_wr *w)
{
    static const uint8_t inline_records[3] = {7, 8, 9};
    struct kafka_fetch_response_partition_data parts[2];
    struct kafka_fetch_response_fetchable_topic_response topic;
    struct kafka_fetch_response m;
    kafka_fetch_response_init(&m);
    memset(&topic, 0, sizeof(topic));
    topic.topic = kw_str_make("t");
    topic.partitions.items = parts;
    topic.partitions.count = 2;
    m.responses.items = &topic;
    m.responses.count = 1;
    for (int i = 0; i < 2; i++) {
        memset(&parts[i], 0, sizeof(parts[i]));
        parts[i].partition_index = i;
        parts[i].high_watermark = 100;
        parts[i].preferred_read_replica = -1;
        parts[i].diverging_epoch.epoch = -1;
        parts[i].diverging_epoch.end_offset = -1;
        parts[i].current_leader.leader_id = -1;
        parts[i].current_leader.leader_epoch = -1;
        parts[i].snapshot_id.end_offset = -1;
        parts[i].snapshot_id.epoch = -1;
    }
    parts[0].records = (struct kw_records){.len = 1000, .external = true};
    parts[1].records = (struct kw_records){.ptr = inline_records, .len = 3};
    cr_assert_eq(kafka_fetch_response_encode(w, version, &m), 0);
}

static void check_hole(int16_t version, size_t len_bytes)
{
    struct kw_wr meas = kw_wr_measure();
    fetch_with_hole(version, &meas);
    cr_assert_eq(meas.hole_count, 1);
    cr_assert_eq(meas.hole_bytes, 1000);
    struct kw_hole holes[1];
    struct kw_wr w = kw_wr_make(out, sizeof(out), holes, 1);
    fetch_with_hole(version, &w);
    cr_assert_eq(w.w.pos, meas.w.pos);
    cr_assert_eq(w.hole_count, 1);
    cr_assert_eq(holes[0].len, 1000);
    /* the length just before the hole: compact 1001 = e9 07, or i32 1000 */
    const uint8_t *len = out + holes[0].at - len_bytes;
    if (len_bytes == 2) {
        cr_assert(len[0] == 0xe9 && len[1] == 0x07);
    } else {
        cr_assert(len[0] == 0 && len[1] == 0 && len[2] == 0x03 && len[3] == 0xe8);
    }

    /* what the connection sends: bytes to the hole, the file's, the rest */
    size_t n = w.w.pos + holes[0].len;
    uint8_t *frame = malloc(n);
    memcpy(frame, out, holes[0].at);
    for (size_t i = 0; i < holes[0].len; i++) {
        frame[holes[0].at + i] = (uint8_t)i;
    }
    memcpy(frame + holes[0].at + holes[0].len, out + holes[0].at, w.w.pos - holes[0].at);
    void *arena;
    struct kafka_fetch_response got;
    cr_assert_eq(decode(&kafka_fetch_response_msg, version, frame, n, &got, &arena), 0);
    const struct kafka_fetch_response_partition_data *p = got.responses.items[0].partitions.items;
    cr_assert_eq(p[0].records.len, 1000);
    cr_assert_eq(p[0].records.ptr, frame + holes[0].at);
    cr_assert_eq(p[1].records.len, 3);
    cr_assert_eq(p[1].records.ptr[2], 9);
    free(arena);
    free(frame);
}

Test(kafka_codec, records_hole_at_its_length)
{
    check_hole(4, 4);
    check_hole(11, 4);
    check_hole(12, 2);
}

Test(kafka_codec, records_hole_needs_room)
{
    struct kw_wr w = kw_wr_make(out, sizeof(out), NULL, 0);
    uint8_t before = 0x5a;
    kw_wr_u8(&w, before);
    struct kafka_fetch_response m;
    kafka_fetch_response_init(&m);
    struct kafka_fetch_response_fetchable_topic_response topic;
    struct kafka_fetch_response_partition_data part;
    memset(&topic, 0, sizeof(topic));
    memset(&part, 0, sizeof(part));
    topic.topic = kw_str_make("t");
    topic.partitions.items = &part;
    topic.partitions.count = 1;
    part.records = (struct kw_records){.len = 10, .external = true};
    m.responses.items = &topic;
    m.responses.count = 1;
    cr_assert_eq(kafka_fetch_response_encode(&w, 4, &m), -NG_ENOSPACE);
    cr_assert_eq(w.w.pos, 1);
    cr_assert_eq(w.hole_count, 0);
}

/* ---- headers ---- */

Test(kafka_codec, request_header_v1_and_unknowns)
{
    /* Metadata v1: header v1, no tagged fields; null client id */
    static const uint8_t v1[] = {0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x01, 0x00, 0xff, 0xff, 0xee};
    struct rd r = rd_make(v1, sizeof(v1));
    struct kafka_req_header h;
    const struct kafka_api *api;
    cr_assert_eq(kafka_req_header_decode(&r, &h, &api), 0);
    cr_assert_eq(h.api_key, KAFKA_API_METADATA);
    cr_assert_eq(h.correlation_id, 256);
    cr_assert_eq(h.client_id.len, -1);
    cr_assert_eq(rd_u8(&r), 0xee, "the body follows");

    static const uint8_t unknown[] = {0x03, 0xe7, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09, 0x00, 0x00};
    r = rd_make(unknown, sizeof(unknown));
    cr_assert_eq(kafka_req_header_decode(&r, &h, &api), -NG_EUNKNOWN_API);
    cr_assert_null(api);
    cr_assert_eq(h.correlation_id, 9);

    /* ApiVersions v9: answered in v0 (KIP-511), so the api is named */
    static const uint8_t newer[] = {0x00, 0x12, 0x00, 0x09, 0x00, 0x00,
                                    0x00, 0x0a, 0x00, 0x00, 0x00};
    r = rd_make(newer, sizeof(newer));
    cr_assert_eq(kafka_req_header_decode(&r, &h, &api), -NG_EBADVERSION);
    cr_assert_eq(api->key, KAFKA_API_API_VERSIONS);
    cr_assert_eq(h.correlation_id, 10);

    for (size_t n = 0; n < sizeof(v1) - 1; n++) {
        r = rd_make(v1, n);
        cr_assert_eq(kafka_req_header_decode(&r, &h, &api), -NG_ETRUNCATED, "cut at %zu", n);
    }
}

Test(kafka_codec, response_headers)
{
    struct kw_wr w = kw_wr_make(out, sizeof(out), NULL, 0);
    kafka_resp_header_encode(&w, KAFKA_API_METADATA, 9, 5); /* flexible: v1 */
    expect_bytes(&w, (const uint8_t[]){0, 0, 0, 5, 0}, 5);
    w = kw_wr_make(out, sizeof(out), NULL, 0);
    kafka_resp_header_encode(&w, KAFKA_API_METADATA, 8, 5);
    expect_bytes(&w, (const uint8_t[]){0, 0, 0, 5}, 4);
    w = kw_wr_make(out, sizeof(out), NULL, 0);
    kafka_resp_header_encode(&w, KAFKA_API_API_VERSIONS, 3, 5); /* always v0 */
    expect_bytes(&w, (const uint8_t[]){0, 0, 0, 5}, 4);

    int32_t cid;
    struct rd r = rd_make((const uint8_t[]){0, 0, 0, 6, 0}, 5);
    cr_assert_eq(kafka_resp_header_decode(&r, KAFKA_API_FETCH, 12, &cid), 0);
    cr_assert_eq(cid, 6);
    cr_assert_eq(rd_left(&r), 0);
}

/* ---- the table ---- */

Test(kafka_codec, table_of_apis)
{
    for (size_t i = 0; i < KAFKA_API_COUNT; i++) {
        const struct kafka_api *api = &kafka_apis[i];
        cr_assert(i == 0 || kafka_apis[i - 1].key < api->key, "ascending keys");
        cr_assert_eq(kafka_api_find(api->key), api);
        cr_assert_eq(api->request->api_key, api->key);
        cr_assert_eq(api->response->api_key, api->key);
        cr_assert(!api->request->response && api->response->response);
        cr_assert_leq(api->versions.min, api->served_min);
        cr_assert_leq(api->served_min, api->versions.max);
        cr_assert_eq(api->request->versions.max, api->versions.max);
        cr_assert_eq(api->request->flexible_min, api->flexible_min);
    }
    cr_assert_null(kafka_api_find(-1));
    cr_assert_null(kafka_api_find(4)); /* LeaderAndIsr: not for clients */
    cr_assert_eq(kafka_api_find(KAFKA_API_PRODUCE)->served_min, 3);
    cr_assert(kafka_api_find(KAFKA_API_SASL_HANDSHAKE)->sasl);
    cr_assert(!kafka_api_find(KAFKA_API_METADATA)->sasl);
}

/* ---- the fuzz target's seeds ---- */

/* The fuzz target's input (fuzz/fuzz_kafka.c): api index, version offset,
 * flags, then the body (or a whole request frame). */
#define SEED_RESPONSE 0x01u
#define SEED_FRAME 0x02u

static void write_seed(const char *dir, const char *name, size_t n)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fwrite(out, 1, n, f), n);
    fclose(f);
}

/* Writes the seed corpus into dir (run by hand: NAGARE_KAFKA_SEEDS_OUT):
 * each api's request and response at both ends of its range, and its
 * request at its highest version as a whole frame. */
static void write_seeds(const char *dir)
{
    for (size_t i = 0; i < KAFKA_API_COUNT; i++) {
        const struct kafka_api *api = &kafka_apis[i];
        int16_t vs[2] = {api->versions.min, api->versions.max};
        for (int j = 0; j < 5; j++) {
            bool response = j == 1 || j == 3;
            int16_t v = vs[j < 2 ? 0 : 1];
            const struct kafka_msg *msg = response ? api->response : api->request;
            uint64_t seed = 7;
            struct kw_arena fa;
            kw_arena_init(&fa, fill_buf, sizeof(fill_buf));
            ks_fill(msg, v, &seed, &fa, msg_a);
            out[0] = (uint8_t)i;
            out[1] = (uint8_t)(v - api->versions.min);
            out[2] = response ? 1 : 0;
            struct kw_wr w = kw_wr_make(out + 3, sizeof(out) - 3, NULL, 0);
            if (j == 4) { /* the frame: a header first */
                out[2] = SEED_FRAME;
                struct kafka_req_header h = {.api_key = api->key,
                                             .api_version = v,
                                             .correlation_id = 1,
                                             .client_id = kw_str_make("fuzz")};
                kafka_req_header_encode(&w, &h);
                msg = api->request;
            }
            cr_assert_eq(kafka_encode(msg, &w, v, msg_a), 0);
            char name[128];
            snprintf(name, sizeof(name), "%s-%s-v%d", api->name,
                     j == 4     ? "frame"
                     : response ? "resp"
                                : "req",
                     v);
            write_seed(dir, name, 3 + w.w.pos);
        }
    }
}

/* Decodes one seed of n bytes at p; returns 0 or the error. */
static int decode_seed(const uint8_t *p, size_t n)
{
    const struct kafka_api *api = &kafka_apis[p[0] % KAFKA_API_COUNT];
    int16_t v = (int16_t)(api->versions.min + p[1]);
    const struct kafka_msg *msg = (p[2] & SEED_RESPONSE) ? api->response : api->request;
    struct rd r = rd_make(p + 3, n - 3);
    if (p[2] & SEED_FRAME) {
        struct kafka_req_header h;
        int rc = kafka_req_header_decode(&r, &h, &api);
        if (rc != 0) {
            return rc;
        }
        msg = api->request;
        v = h.api_version;
    }
    void *arena;
    int rc = decode(msg, v, p + 3 + r.pos, n - 3 - r.pos, msg_b, &arena);
    free(arena);
    return rc;
}

Test(kafka_codec, fuzz_seeds_decode)
{
    const char *out_dir = getenv("NAGARE_KAFKA_SEEDS_OUT");
    if (out_dir != NULL) {
        write_seeds(out_dir);
    }
    const char *dir = getenv("KAFKA_FUZZ_CORPUS");
    cr_assert_not_null(dir, "KAFKA_FUZZ_CORPUS names fuzz/corpus/kafka");
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "%s", dir);
    int seeds = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        cr_assert_not_null(f, "%s", path);
        size_t n = fread(out, 1, sizeof(out), f);
        fclose(f);
        cr_assert_geq(n, 3, "%s", path);
        int rc = decode_seed(out, n);
        cr_assert_eq(rc, 0, "%s: %s", e->d_name, err_str(rc));
        seeds++;
    }
    closedir(d);
    cr_assert_eq(seeds, 5 * KAFKA_API_COUNT, "five seeds per api");
}
