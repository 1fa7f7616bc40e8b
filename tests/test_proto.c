/* Tests for net/proto.h: every message both ways, and hostile bytes. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "net/proto.h"

static uint8_t buf[1 << 20];
static uint8_t scratch[1 << 20];

static const uint8_t batch_a[] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
static const uint8_t batch_b[] = {0xff};

#define CID proto_str_make("client-1")

/* ---- helpers ---- */

/* Checks the prefix of the frame at p[0..n) and returns a reader over the
 * rest, as the connection code would after reading the frame. */
static struct rd frame_rd(const uint8_t *p, size_t n, bool response)
{
    uint32_t len = 0;
    int rc = response ? proto_response_frame_len(p, PROTO_FRAME_BYTES_DEFAULT, &len)
                      : proto_request_frame_len(p, PROTO_FRAME_BYTES_DEFAULT, &len);
    cr_assert_eq(rc, 0, "frame_len: %s", err_str(rc));
    cr_assert_eq((size_t)len + PROTO_FRAME_PREFIX_BYTES, n);
    return rd_make(p + PROTO_FRAME_PREFIX_BYTES, len);
}

static bool str_is(struct proto_str s, const char *c) { return proto_str_eq(s, c); }

/* Walks every topic and partition of a checked body. */
static void drain_topics(struct proto_dec *d, int api, bool response)
{
    struct proto_topic t;
    while (proto_next_topic(d, &t)) {
        for (;;) {
            bool more = false;
            if (api == PROTO_API_METADATA && response) {
                struct proto_metadata_partition p;
                more = proto_metadata_resp_next_partition(d, &p);
            } else if (api == PROTO_API_PRODUCE && !response) {
                struct proto_produce_req_partition p;
                more = proto_produce_req_next_partition(d, &p);
            } else if (api == PROTO_API_PRODUCE) {
                struct proto_produce_resp_partition p;
                more = proto_produce_resp_next_partition(d, &p);
            } else if (api == PROTO_API_FETCH && !response) {
                struct proto_fetch_req_partition p;
                more = proto_fetch_req_next_partition(d, &p);
            } else if (api == PROTO_API_FETCH) {
                struct proto_fetch_resp_partition p;
                more = proto_fetch_resp_next_partition(d, &p);
            } else if (api == PROTO_API_LIST_OFFSETS && !response) {
                struct proto_list_offsets_req_partition p;
                more = proto_list_offsets_req_next_partition(d, &p);
            } else if (api == PROTO_API_LIST_OFFSETS) {
                struct proto_list_offsets_resp_partition p;
                more = proto_list_offsets_resp_next_partition(d, &p);
            }
            if (!more) {
                break;
            }
        }
    }
}

/* Decodes a request frame's content (header and body) entirely, as the
 * broker would. Returns the first error. */
static int decode_request(const uint8_t *p, size_t len)
{
    struct rd r = rd_make(p, len);
    struct proto_req_header h;
    int rc = proto_req_header_decode(&r, &h);
    if (rc != 0) {
        return rc;
    }
    struct proto_dec d;
    switch (h.api_key) {
    case PROTO_API_API_VERSIONS:
        return proto_api_versions_req_decode(&r, h.api_version);
    case PROTO_API_METADATA:
        rc = proto_metadata_req_decode(&r, h.api_version, &d);
        break;
    case PROTO_API_CREATE_TOPICS: {
        rc = proto_create_topics_req_decode(&r, h.api_version, &d);
        struct proto_create_topic t;
        while (rc == 0 && proto_create_topics_req_next(&d, &t)) {
        }
        return rc;
    }
    case PROTO_API_DELETE_TOPICS:
        rc = proto_delete_topics_req_decode(&r, h.api_version, &d);
        break;
    case PROTO_API_PRODUCE: {
        struct proto_produce_req req;
        rc = proto_produce_req_decode(&r, h.api_version, &req, &d);
        break;
    }
    case PROTO_API_FETCH: {
        struct proto_fetch_req req;
        rc = proto_fetch_req_decode(&r, h.api_version, &req, &d);
        break;
    }
    case PROTO_API_LIST_OFFSETS:
        rc = proto_list_offsets_req_decode(&r, h.api_version, &d);
        break;
    case PROTO_API_INIT_PRODUCER_ID:
        return proto_init_producer_id_req_decode(&r, h.api_version);
    default:
        cr_assert_fail("header decode let api %u through", h.api_key);
    }
    if (rc == 0) {
        drain_topics(&d, h.api_key, false);
    }
    return rc;
}

/* Decodes a response frame's content entirely, as the client would. */
static int decode_response(int api, const uint8_t *p, size_t len)
{
    struct rd r = rd_make(p, len);
    struct proto_resp_header h;
    int rc = proto_resp_header_decode(&r, &h);
    if (rc != 0 || h.err != 0) {
        return rc;
    }
    struct proto_dec d;
    switch (api) {
    case PROTO_API_API_VERSIONS: {
        struct proto_api_versions_resp v;
        return proto_api_versions_resp_decode(&r, 0, &v);
    }
    case PROTO_API_METADATA: {
        struct proto_metadata_resp m;
        rc = proto_metadata_resp_decode(&r, 0, &m, &d);
        break;
    }
    case PROTO_API_CREATE_TOPICS:
    case PROTO_API_DELETE_TOPICS: {
        rc = api == PROTO_API_CREATE_TOPICS ? proto_create_topics_resp_decode(&r, 0, &d)
                                            : proto_delete_topics_resp_decode(&r, 0, &d);
        struct proto_topic_result tr;
        while (rc == 0 && proto_next_topic_result(&d, &tr)) {
        }
        return rc;
    }
    case PROTO_API_PRODUCE:
        rc = proto_produce_resp_decode(&r, 0, &d);
        break;
    case PROTO_API_FETCH:
        rc = proto_fetch_resp_decode(&r, 0, &d);
        break;
    case PROTO_API_LIST_OFFSETS:
        rc = proto_list_offsets_resp_decode(&r, 0, &d);
        break;
    case PROTO_API_INIT_PRODUCER_ID: {
        struct proto_init_producer_id_resp ip;
        return proto_init_producer_id_resp_decode(&r, 0, &ip);
    }
    default:
        cr_assert_fail("bad api");
    }
    if (rc == 0) {
        drain_topics(&d, api, true);
    }
    return rc;
}

/* A representative request of each api, with several topics and
 * partitions, a null client id for some. Returns the frame bytes. */
static size_t sample_request(int api, uint8_t *out, size_t cap)
{
    struct wr w = wr_make(out, cap);
    struct proto_enc e;
    int rc = 0;
    switch (api) {
    case PROTO_API_API_VERSIONS:
        rc = proto_api_versions_req_encode(&w, 0, 7, PROTO_STR_NULL);
        break;
    case PROTO_API_METADATA:
        proto_metadata_req_begin(&e, &w, 0, 7, CID, false);
        proto_enc_topic(&e, proto_str_make("alpha"));
        proto_enc_topic(&e, proto_str_make("b"));
        rc = proto_enc_end(&e);
        break;
    case PROTO_API_CREATE_TOPICS: {
        proto_create_topics_req_begin(&e, &w, 0, 7, CID);
        struct proto_create_topic t = {proto_str_make("alpha"), 3, 1000, -2, 1 << 20, 65536};
        proto_create_topics_req_topic(&e, &t);
        t.name = proto_str_make("beta");
        proto_create_topics_req_topic(&e, &t);
        rc = proto_enc_end(&e);
        break;
    }
    case PROTO_API_DELETE_TOPICS:
        proto_delete_topics_req_begin(&e, &w, 0, 7, CID);
        proto_enc_topic(&e, proto_str_make("alpha"));
        rc = proto_enc_end(&e);
        break;
    case PROTO_API_PRODUCE: {
        struct proto_produce_req req = {PROTO_ACKS_ALL, 5000};
        proto_produce_req_begin(&e, &w, 0, 7, CID, &req);
        proto_enc_topic(&e, proto_str_make("alpha"));
        proto_produce_req_partition(&e, &(struct proto_produce_req_partition){0, batch_a, sizeof batch_a});
        proto_produce_req_partition(&e, &(struct proto_produce_req_partition){2, batch_b, sizeof batch_b});
        proto_enc_topic(&e, proto_str_make("beta"));
        proto_produce_req_partition(&e, &(struct proto_produce_req_partition){1, batch_a, 0});
        rc = proto_enc_end(&e);
        break;
    }
    case PROTO_API_FETCH: {
        struct proto_fetch_req req = {500, 1, 1 << 20};
        proto_fetch_req_begin(&e, &w, 0, 7, CID, &req);
        proto_enc_topic(&e, proto_str_make("alpha"));
        proto_fetch_req_partition(&e, &(struct proto_fetch_req_partition){0, 42, 4096});
        proto_fetch_req_partition(&e, &(struct proto_fetch_req_partition){1, 0, 100});
        proto_enc_topic(&e, proto_str_make("beta"));
        rc = proto_enc_end(&e);
        break;
    }
    case PROTO_API_LIST_OFFSETS:
        proto_list_offsets_req_begin(&e, &w, 0, 7, CID);
        proto_enc_topic(&e, proto_str_make("alpha"));
        proto_list_offsets_req_partition(&e, &(struct proto_list_offsets_req_partition){0, -2});
        proto_list_offsets_req_partition(&e, &(struct proto_list_offsets_req_partition){1, 1700000000000});
        rc = proto_enc_end(&e);
        break;
    case PROTO_API_INIT_PRODUCER_ID:
        rc = proto_init_producer_id_req_encode(&w, 0, 7, CID);
        break;
    default:
        cr_assert_fail("bad api");
    }
    cr_assert_eq(rc, 0, "encode %d: %s", api, err_str(rc));
    return w.pos;
}

static size_t sample_response(int api, uint8_t *out, size_t cap)
{
    struct wr w = wr_make(out, cap);
    struct proto_enc e;
    int rc = 0;
    switch (api) {
    case PROTO_API_API_VERSIONS: {
        struct proto_api_versions_resp v;
        proto_api_versions_fill(&v, PROTO_FRAME_BYTES_DEFAULT);
        rc = proto_api_versions_resp_encode(&w, 0, 9, &v);
        break;
    }
    case PROTO_API_METADATA: {
        struct proto_metadata_resp m = {proto_str_make("127.0.0.1"), 7420};
        proto_metadata_resp_begin(&e, &w, 0, 9, &m);
        proto_metadata_resp_topic(&e, proto_str_make("alpha"), 0);
        proto_metadata_resp_partition(&e, &(struct proto_metadata_partition){0, 0, 5, 10});
        proto_metadata_resp_partition(&e, &(struct proto_metadata_partition){1, -NG_EFAILED, 0, 0});
        proto_metadata_resp_topic(&e, proto_str_make("gone"), -NG_EUNKNOWN_TOPIC);
        rc = proto_enc_end(&e);
        break;
    }
    case PROTO_API_CREATE_TOPICS:
    case PROTO_API_DELETE_TOPICS:
        if (api == PROTO_API_CREATE_TOPICS) {
            proto_create_topics_resp_begin(&e, &w, 0, 9);
        } else {
            proto_delete_topics_resp_begin(&e, &w, 0, 9);
        }
        proto_enc_topic_result(&e, &(struct proto_topic_result){proto_str_make("alpha"), 0});
        proto_enc_topic_result(&e, &(struct proto_topic_result){proto_str_make(".."), -NG_EBADNAME});
        rc = proto_enc_end(&e);
        break;
    case PROTO_API_PRODUCE:
        proto_produce_resp_begin(&e, &w, 0, 9);
        proto_enc_topic(&e, proto_str_make("alpha"));
        proto_produce_resp_partition(&e, &(struct proto_produce_resp_partition){0, 0, 100});
        proto_produce_resp_partition(&e, &(struct proto_produce_resp_partition){2, -NG_ECHECKSUM, -1});
        rc = proto_enc_end(&e);
        break;
    case PROTO_API_FETCH:
        proto_fetch_resp_begin(&e, &w, 0, 9);
        proto_enc_topic(&e, proto_str_make("alpha"));
        proto_fetch_resp_partition(&e, &(struct proto_fetch_resp_partition){0, 0, 0, 50, batch_a, sizeof batch_a});
        proto_fetch_resp_partition(&e, &(struct proto_fetch_resp_partition){1, -NG_EOFFSET_RANGE, 3, 9, NULL, 0});
        proto_enc_topic(&e, proto_str_make("beta"));
        rc = proto_enc_end(&e);
        break;
    case PROTO_API_LIST_OFFSETS:
        proto_list_offsets_resp_begin(&e, &w, 0, 9);
        proto_enc_topic(&e, proto_str_make("alpha"));
        proto_list_offsets_resp_partition(&e, &(struct proto_list_offsets_resp_partition){0, 0, -1, 0});
        proto_list_offsets_resp_partition(&e, &(struct proto_list_offsets_resp_partition){1, 0, 1700000000001, 77});
        rc = proto_enc_end(&e);
        break;
    case PROTO_API_INIT_PRODUCER_ID:
        rc = proto_init_producer_id_resp_encode(&w, 0, 9, &(struct proto_init_producer_id_resp){1234, 0});
        break;
    default:
        cr_assert_fail("bad api");
    }
    cr_assert_eq(rc, 0, "encode %d: %s", api, err_str(rc));
    return w.pos;
}

/* A request with a hand-written body (the header is written for you). */
static size_t raw_request(uint16_t api, uint16_t version, const uint8_t *body, size_t n)
{
    struct wr w = wr_make(buf, sizeof buf);
    wr_be32(&w, (uint32_t)(PROTO_REQ_HEADER_BYTES_MIN + n));
    wr_be16(&w, api);
    wr_be16(&w, version);
    wr_be32(&w, 1);
    wr_be16(&w, 0xffff);
    wr_bytes(&w, body, n);
    cr_assert_eq(w.err, 0);
    return w.pos;
}

static int decode_raw_request(uint16_t api, const uint8_t *body, size_t n)
{
    size_t len = raw_request(api, 0, body, n);
    return decode_request(buf + 4, len - 4);
}

/* ---- frames ---- */

Test(proto, frame_len_accepts_up_to_max_and_refuses_past_it)
{
    uint8_t p[4];
    uint32_t len = 0;
    put_be32(p, PROTO_FRAME_BYTES_DEFAULT);
    cr_assert_eq(proto_request_frame_len(p, PROTO_FRAME_BYTES_DEFAULT, &len), 0);
    cr_assert_eq(len, PROTO_FRAME_BYTES_DEFAULT);
    put_be32(p, PROTO_FRAME_BYTES_DEFAULT + 1);
    cr_assert_eq(proto_request_frame_len(p, PROTO_FRAME_BYTES_DEFAULT, &len), -NG_ETOOBIG);
    put_be32(p, UINT32_MAX);
    cr_assert_eq(proto_request_frame_len(p, PROTO_FRAME_BYTES_DEFAULT, &len), -NG_ETOOBIG);
    cr_assert_eq(proto_response_frame_len(p, PROTO_FRAME_BYTES_LIMIT, &len), -NG_ETOOBIG);
    /* A configured maximum below the default is honoured. */
    put_be32(p, 70000);
    cr_assert_eq(proto_request_frame_len(p, PROTO_FRAME_BYTES_MIN, &len), -NG_ETOOBIG);
}

Test(proto, frame_len_refuses_frames_too_short_for_a_header)
{
    uint8_t p[4];
    uint32_t len = 0;
    put_be32(p, PROTO_REQ_HEADER_BYTES_MIN - 1);
    cr_assert_eq(proto_request_frame_len(p, PROTO_FRAME_BYTES_DEFAULT, &len), -NG_EBADLEN);
    put_be32(p, PROTO_REQ_HEADER_BYTES_MIN);
    cr_assert_eq(proto_request_frame_len(p, PROTO_FRAME_BYTES_DEFAULT, &len), 0);
    put_be32(p, 0);
    cr_assert_eq(proto_response_frame_len(p, PROTO_FRAME_BYTES_DEFAULT, &len), -NG_EBADLEN);
    put_be32(p, PROTO_RESP_HEADER_BYTES);
    cr_assert_eq(proto_response_frame_len(p, PROTO_FRAME_BYTES_DEFAULT, &len), 0);
}

Test(proto, request_header_round_trips_null_and_empty_client_id)
{
    struct proto_str ids[] = {PROTO_STR_NULL, proto_str_make(""), proto_str_make("abc")};
    for (size_t i = 0; i < ARRAY_LEN(ids); i++) {
        struct wr w = wr_make(buf, sizeof buf);
        cr_assert_eq(proto_api_versions_req_encode(&w, 0, 0xdeadbeef, ids[i]), 0);
        struct rd r = frame_rd(buf, w.pos, false);
        struct proto_req_header h;
        cr_assert_eq(proto_req_header_decode(&r, &h), 0);
        cr_assert_eq(h.api_key, PROTO_API_API_VERSIONS);
        cr_assert_eq(h.api_version, 0);
        cr_assert_eq(h.correlation_id, 0xdeadbeef);
        cr_assert_eq(h.client_id.len, ids[i].len);
        if (ids[i].len >= 0) {
            cr_assert_not_null(h.client_id.ptr); /* empty is not null */
            cr_assert_eq(memcmp(h.client_id.ptr, ids[i].ptr, (size_t)ids[i].len), 0);
        } else {
            cr_assert_null(h.client_id.ptr);
        }
        cr_assert_eq(proto_api_versions_req_decode(&r, h.api_version), 0);
    }
}

Test(proto, unknown_api_key_is_reported_with_the_header_filled)
{
    size_t n = raw_request(10, 0, NULL, 0);
    struct rd r = rd_make(buf + 4, n - 4);
    struct proto_req_header h;
    cr_assert_eq(proto_req_header_decode(&r, &h), -NG_EUNKNOWN_API);
    cr_assert_eq(h.api_key, 10);
    cr_assert_eq(h.correlation_id, 1);
    n = raw_request(0xffff, 0, NULL, 0);
    r = rd_make(buf + 4, n - 4);
    cr_assert_eq(proto_req_header_decode(&r, &h), -NG_EUNKNOWN_API);
    cr_assert_eq(proto_api_check(PROTO_API_COUNT, 0), -NG_EUNKNOWN_API);
    cr_assert_str_eq(proto_api_name(42), "unknown");
    cr_assert_str_eq(proto_api_name(PROTO_API_FETCH), "Fetch");
}

Test(proto, bad_version_is_reported_by_header_and_body_decoders)
{
    size_t n = raw_request(PROTO_API_PRODUCE, 1, NULL, 0);
    struct rd r = rd_make(buf + 4, n - 4);
    struct proto_req_header h;
    cr_assert_eq(proto_req_header_decode(&r, &h), -NG_EBADVERSION);
    cr_assert_eq(h.api_key, PROTO_API_PRODUCE);
    cr_assert_eq(h.api_version, 1);
    cr_assert_eq(h.correlation_id, 1);
    struct rd empty = rd_make(buf, 0);
    cr_assert_eq(proto_api_versions_req_decode(&empty, 3), -NG_EBADVERSION);
    struct proto_dec d;
    cr_assert_eq(proto_fetch_resp_decode(&empty, 1, &d), -NG_EBADVERSION);
}

Test(proto, error_response_round_trips_and_carries_no_body)
{
    struct wr w = wr_make(buf, sizeof buf);
    cr_assert_eq(proto_resp_error_encode(&w, 55, -NG_EUNKNOWN_API), 0);
    cr_assert_eq(w.pos, 10);
    struct rd r = frame_rd(buf, w.pos, true);
    struct proto_resp_header h;
    cr_assert_eq(proto_resp_header_decode(&r, &h), 0);
    cr_assert_eq(h.correlation_id, 55);
    cr_assert_eq(h.err, -NG_EUNKNOWN_API);
    /* An error response with a body is malformed. */
    uint8_t bad[] = {0, 0, 0, 1, 0x10, 0x2c, 0};
    r = rd_make(bad, sizeof bad);
    cr_assert_eq(proto_resp_header_decode(&r, &h), -NG_EBADLEN);
    /* No room: nothing written. */
    w = wr_make(buf, 9);
    cr_assert_eq(proto_resp_error_encode(&w, 1, -NG_EPROTO), -NG_ENOSPACE);
    cr_assert_eq(w.pos, 0);
}

Test(proto, error_codes_map_to_and_from_the_wire)
{
    cr_assert_eq(proto_err_to_wire(0), 0);
    cr_assert_eq(proto_err_to_wire(-NG_EUNKNOWN_TOPIC), NG_EUNKNOWN_TOPIC);
    cr_assert_eq(proto_err_to_wire(-NG_ESYSTEM), NG_ESYSTEM);
    cr_assert_eq(proto_err_to_wire(-ENOSPC), NG_ESYSTEM);
    cr_assert_eq(proto_err_to_wire(-EIO), NG_ESYSTEM);
    cr_assert_eq(proto_err_to_wire(-70000), NG_ESYSTEM);
    cr_assert_eq(proto_err_from_wire(0), 0);
    cr_assert_eq(proto_err_from_wire(NG_EOFFSET_RANGE), -NG_EOFFSET_RANGE);
    cr_assert_eq(proto_err_from_wire(5), -NG_EPROTO);
    cr_assert_eq(proto_err_from_wire(60000), -60000); /* a newer peer's code */
    for (int c = NG_ERR_FIRST; c < NG_ERR_LAST; c++) {
        cr_assert_eq(proto_err_from_wire(proto_err_to_wire(-c)), -c);
    }
}

Test(proto, response_error_code_below_4096_is_refused)
{
    uint8_t resp[] = {0, 0, 0, 1, 0, 5};
    struct rd r = rd_make(resp, sizeof resp);
    struct proto_resp_header h;
    cr_assert_eq(proto_resp_header_decode(&r, &h), -NG_EBADARG);
    /* And inside a body. */
    size_t n = sample_response(PROTO_API_PRODUCE, buf, sizeof buf);
    /* alpha partition 0's error field: after header(6) count(4) name(2+5)
     * pcount(4) partition(4). */
    size_t at = 4 + 6 + 4 + 7 + 4 + 4;
    cr_assert_eq(get_be16(buf + at), 0);
    put_be16(buf + at, 17);
    cr_assert_eq(decode_response(PROTO_API_PRODUCE, buf + 4, n - 4), -NG_EBADARG);
}

/* ---- round trips ---- */

Test(proto, api_versions_round_trip)
{
    size_t n = sample_request(PROTO_API_API_VERSIONS, buf, sizeof buf);
    cr_assert_eq(decode_request(buf + 4, n - 4), 0);

    n = sample_response(PROTO_API_API_VERSIONS, buf, sizeof buf);
    struct rd r = frame_rd(buf, n, true);
    struct proto_resp_header h;
    cr_assert_eq(proto_resp_header_decode(&r, &h), 0);
    cr_assert_eq(h.correlation_id, 9);
    cr_assert_eq(h.err, 0);
    struct proto_api_versions_resp v;
    cr_assert_eq(proto_api_versions_resp_decode(&r, 0, &v), 0);
    cr_assert_eq(v.frame_bytes_max, PROTO_FRAME_BYTES_DEFAULT);
    cr_assert_eq(v.api_count, PROTO_API_COUNT);
    for (uint16_t k = 0; k < PROTO_API_COUNT; k++) {
        cr_assert_eq(v.apis[k].api_key, k);
        cr_assert_eq(v.apis[k].version_min, 0);
        cr_assert_eq(v.apis[k].version_max, proto_api_version_max(k));
    }
}

Test(proto, api_versions_resp_refuses_too_many_ranges)
{
    struct proto_api_versions_resp v;
    proto_api_versions_fill(&v, 1);
    v.api_count = PROTO_API_RANGES_MAX + 1;
    struct wr w = wr_make(buf, sizeof buf);
    cr_assert_eq(proto_api_versions_resp_encode(&w, 0, 1, &v), -NG_EBADCOUNT);
    cr_assert_eq(w.pos, 0);
    cr_assert_eq(w.err, 0);
}

Test(proto, metadata_request_round_trip_named_and_all)
{
    size_t n = sample_request(PROTO_API_METADATA, buf, sizeof buf);
    struct rd r = frame_rd(buf, n, false);
    struct proto_req_header h;
    cr_assert_eq(proto_req_header_decode(&r, &h), 0);
    cr_assert_eq(h.api_key, PROTO_API_METADATA);
    cr_assert(str_is(h.client_id, "client-1"));
    struct proto_dec d;
    cr_assert_eq(proto_metadata_req_decode(&r, h.api_version, &d), 0);
    cr_assert_eq(d.topic_count, 2);
    struct proto_topic t;
    cr_assert(proto_next_topic(&d, &t));
    cr_assert(str_is(t.name, "alpha"));
    cr_assert_eq(t.partition_count, 0);
    cr_assert(proto_next_topic(&d, &t));
    cr_assert(str_is(t.name, "b"));
    cr_assert_not(proto_next_topic(&d, &t));

    struct wr w = wr_make(buf, sizeof buf);
    struct proto_enc e;
    proto_metadata_req_begin(&e, &w, 0, 3, PROTO_STR_NULL, true);
    cr_assert_eq(proto_enc_end(&e), 0);
    r = frame_rd(buf, w.pos, false);
    cr_assert_eq(proto_req_header_decode(&r, &h), 0);
    cr_assert_eq(proto_metadata_req_decode(&r, 0, &d), 0);
    cr_assert_eq(d.topic_count, -1);
    cr_assert_not(proto_next_topic(&d, &t));

    /* An empty list is not "all". */
    w = wr_make(buf, sizeof buf);
    proto_metadata_req_begin(&e, &w, 0, 3, PROTO_STR_NULL, false);
    cr_assert_eq(proto_enc_end(&e), 0);
    r = frame_rd(buf, w.pos, false);
    cr_assert_eq(proto_req_header_decode(&r, &h), 0);
    cr_assert_eq(proto_metadata_req_decode(&r, 0, &d), 0);
    cr_assert_eq(d.topic_count, 0);
}

Test(proto, metadata_response_round_trip)
{
    size_t n = sample_response(PROTO_API_METADATA, buf, sizeof buf);
    struct rd r = frame_rd(buf, n, true);
    struct proto_resp_header h;
    cr_assert_eq(proto_resp_header_decode(&r, &h), 0);
    struct proto_metadata_resp m;
    struct proto_dec d;
    cr_assert_eq(proto_metadata_resp_decode(&r, 0, &m, &d), 0);
    cr_assert(str_is(m.host, "127.0.0.1"));
    cr_assert_eq(m.port, 7420);
    cr_assert_eq(d.topic_count, 2);
    struct proto_topic t;
    struct proto_metadata_partition p;
    cr_assert(proto_next_topic(&d, &t));
    cr_assert(str_is(t.name, "alpha"));
    cr_assert_eq(t.err, 0);
    cr_assert_eq(t.partition_count, 2);
    cr_assert(proto_metadata_resp_next_partition(&d, &p));
    cr_assert_eq(p.partition, 0);
    cr_assert_eq(p.err, 0);
    cr_assert_eq(p.offset_earliest, 5);
    cr_assert_eq(p.offset_latest, 10);
    cr_assert(proto_metadata_resp_next_partition(&d, &p));
    cr_assert_eq(p.partition, 1);
    cr_assert_eq(p.err, -NG_EFAILED);
    cr_assert_not(proto_metadata_resp_next_partition(&d, &p));
    cr_assert(proto_next_topic(&d, &t));
    cr_assert(str_is(t.name, "gone"));
    cr_assert_eq(t.err, -NG_EUNKNOWN_TOPIC);
    cr_assert_eq(t.partition_count, 0);
    cr_assert_not(proto_metadata_resp_next_partition(&d, &p));
    cr_assert_not(proto_next_topic(&d, &t));
}

Test(proto, create_topics_round_trip)
{
    size_t n = sample_request(PROTO_API_CREATE_TOPICS, buf, sizeof buf);
    struct rd r = frame_rd(buf, n, false);
    struct proto_req_header h;
    cr_assert_eq(proto_req_header_decode(&r, &h), 0);
    cr_assert_eq(h.api_key, PROTO_API_CREATE_TOPICS);
    struct proto_dec d;
    cr_assert_eq(proto_create_topics_req_decode(&r, 0, &d), 0);
    cr_assert_eq(d.topic_count, 2);
    struct proto_create_topic t;
    cr_assert(proto_create_topics_req_next(&d, &t));
    cr_assert(str_is(t.name, "alpha"));
    cr_assert_eq(t.partition_count, 3);
    cr_assert_eq(t.retention_ms, 1000);
    cr_assert_eq(t.retention_bytes, PROTO_CONFIG_UNLIMITED);
    cr_assert_eq(t.segment_bytes, 1 << 20);
    cr_assert_eq(t.batch_bytes_max, 65536);
    cr_assert(proto_create_topics_req_next(&d, &t));
    cr_assert(str_is(t.name, "beta"));
    cr_assert_not(proto_create_topics_req_next(&d, &t));

    n = sample_response(PROTO_API_CREATE_TOPICS, buf, sizeof buf);
    r = frame_rd(buf, n, true);
    struct proto_resp_header rh;
    cr_assert_eq(proto_resp_header_decode(&r, &rh), 0);
    cr_assert_eq(proto_create_topics_resp_decode(&r, 0, &d), 0);
    struct proto_topic_result tr;
    cr_assert(proto_next_topic_result(&d, &tr));
    cr_assert(str_is(tr.name, "alpha"));
    cr_assert_eq(tr.err, 0);
    cr_assert(proto_next_topic_result(&d, &tr));
    cr_assert(str_is(tr.name, ".."));
    cr_assert_eq(tr.err, -NG_EBADNAME);
    cr_assert_not(proto_next_topic_result(&d, &tr));
}

Test(proto, delete_topics_round_trip)
{
    size_t n = sample_request(PROTO_API_DELETE_TOPICS, buf, sizeof buf);
    struct rd r = frame_rd(buf, n, false);
    struct proto_req_header h;
    cr_assert_eq(proto_req_header_decode(&r, &h), 0);
    struct proto_dec d;
    cr_assert_eq(proto_delete_topics_req_decode(&r, 0, &d), 0);
    struct proto_topic t;
    cr_assert(proto_next_topic(&d, &t));
    cr_assert(str_is(t.name, "alpha"));
    cr_assert_not(proto_next_topic(&d, &t));

    n = sample_response(PROTO_API_DELETE_TOPICS, buf, sizeof buf);
    r = frame_rd(buf, n, true);
    struct proto_resp_header rh;
    cr_assert_eq(proto_resp_header_decode(&r, &rh), 0);
    cr_assert_eq(proto_delete_topics_resp_decode(&r, 0, &d), 0);
    struct proto_topic_result tr;
    cr_assert(proto_next_topic_result(&d, &tr));
    cr_assert(proto_next_topic_result(&d, &tr));
    cr_assert_eq(tr.err, -NG_EBADNAME);
    cr_assert_not(proto_next_topic_result(&d, &tr));
}

Test(proto, produce_request_round_trip_points_into_the_frame)
{
    size_t n = sample_request(PROTO_API_PRODUCE, buf, sizeof buf);
    struct rd r = frame_rd(buf, n, false);
    struct proto_req_header h;
    cr_assert_eq(proto_req_header_decode(&r, &h), 0);
    struct proto_produce_req req;
    struct proto_dec d;
    cr_assert_eq(proto_produce_req_decode(&r, 0, &req, &d), 0);
    cr_assert_eq(req.acks, PROTO_ACKS_ALL);
    cr_assert_eq(req.timeout_ms, 5000);
    cr_assert_eq(d.topic_count, 2);
    struct proto_topic t;
    struct proto_produce_req_partition p;
    cr_assert(proto_next_topic(&d, &t));
    cr_assert(str_is(t.name, "alpha"));
    cr_assert_eq(t.partition_count, 2);
    cr_assert(proto_produce_req_next_partition(&d, &p));
    cr_assert_eq(p.partition, 0);
    cr_assert_eq(p.records_bytes, sizeof batch_a);
    cr_assert(p.records > buf && p.records < buf + n); /* zero-copy */
    cr_assert_eq(memcmp(p.records, batch_a, sizeof batch_a), 0);
    cr_assert(proto_produce_req_next_partition(&d, &p));
    cr_assert_eq(p.partition, 2);
    cr_assert_eq(p.records_bytes, 1);
    cr_assert_eq(p.records[0], 0xff);
    cr_assert_not(proto_produce_req_next_partition(&d, &p));
    cr_assert(proto_next_topic(&d, &t));
    cr_assert(str_is(t.name, "beta"));
    cr_assert(proto_produce_req_next_partition(&d, &p));
    cr_assert_eq(p.partition, 1);
    cr_assert_eq(p.records_bytes, 0);
    cr_assert_not(proto_produce_req_next_partition(&d, &p));
    cr_assert_not(proto_next_topic(&d, &t));
}

Test(proto, produce_response_round_trip)
{
    size_t n = sample_response(PROTO_API_PRODUCE, buf, sizeof buf);
    struct rd r = frame_rd(buf, n, true);
    struct proto_resp_header h;
    cr_assert_eq(proto_resp_header_decode(&r, &h), 0);
    cr_assert_eq(h.correlation_id, 9);
    struct proto_dec d;
    cr_assert_eq(proto_produce_resp_decode(&r, 0, &d), 0);
    struct proto_topic t;
    struct proto_produce_resp_partition p;
    cr_assert(proto_next_topic(&d, &t));
    cr_assert(str_is(t.name, "alpha"));
    cr_assert(proto_produce_resp_next_partition(&d, &p));
    cr_assert_eq(p.partition, 0);
    cr_assert_eq(p.err, 0);
    cr_assert_eq(p.offset_base, 100);
    cr_assert(proto_produce_resp_next_partition(&d, &p));
    cr_assert_eq(p.partition, 2);
    cr_assert_eq(p.err, -NG_ECHECKSUM);
    cr_assert_eq(p.offset_base, -1);
    cr_assert_not(proto_produce_resp_next_partition(&d, &p));
    cr_assert_not(proto_next_topic(&d, &t));
}

Test(proto, fetch_round_trip)
{
    size_t n = sample_request(PROTO_API_FETCH, buf, sizeof buf);
    struct rd r = frame_rd(buf, n, false);
    struct proto_req_header h;
    cr_assert_eq(proto_req_header_decode(&r, &h), 0);
    struct proto_fetch_req req;
    struct proto_dec d;
    cr_assert_eq(proto_fetch_req_decode(&r, 0, &req, &d), 0);
    cr_assert_eq(req.wait_max_ms, 500);
    cr_assert_eq(req.bytes_min, 1);
    cr_assert_eq(req.bytes_max, 1 << 20);
    struct proto_topic t;
    struct proto_fetch_req_partition p;
    cr_assert(proto_next_topic(&d, &t));
    cr_assert(proto_fetch_req_next_partition(&d, &p));
    cr_assert_eq(p.partition, 0);
    cr_assert_eq(p.offset, 42);
    cr_assert_eq(p.bytes_max, 4096);
    cr_assert(proto_fetch_req_next_partition(&d, &p));
    cr_assert_eq(p.partition, 1);
    cr_assert_not(proto_fetch_req_next_partition(&d, &p));
    cr_assert(proto_next_topic(&d, &t));
    cr_assert(str_is(t.name, "beta"));
    cr_assert_eq(t.partition_count, 0);
    cr_assert_not(proto_fetch_req_next_partition(&d, &p));
    cr_assert_not(proto_next_topic(&d, &t));

    n = sample_response(PROTO_API_FETCH, buf, sizeof buf);
    r = frame_rd(buf, n, true);
    struct proto_resp_header rh;
    cr_assert_eq(proto_resp_header_decode(&r, &rh), 0);
    cr_assert_eq(proto_fetch_resp_decode(&r, 0, &d), 0);
    struct proto_fetch_resp_partition fp;
    cr_assert(proto_next_topic(&d, &t));
    cr_assert(proto_fetch_resp_next_partition(&d, &fp));
    cr_assert_eq(fp.partition, 0);
    cr_assert_eq(fp.err, 0);
    cr_assert_eq(fp.offset_earliest, 0);
    cr_assert_eq(fp.offset_latest, 50);
    cr_assert_eq(fp.records_bytes, sizeof batch_a);
    cr_assert_eq(memcmp(fp.records, batch_a, sizeof batch_a), 0);
    cr_assert(proto_fetch_resp_next_partition(&d, &fp));
    cr_assert_eq(fp.err, -NG_EOFFSET_RANGE);
    cr_assert_eq(fp.offset_earliest, 3);
    cr_assert_eq(fp.offset_latest, 9);
    cr_assert_eq(fp.records_bytes, 0);
    cr_assert_not(proto_fetch_resp_next_partition(&d, &fp));
    cr_assert(proto_next_topic(&d, &t));
    cr_assert_not(proto_next_topic(&d, &t));
}

Test(proto, fetch_response_takes_records_written_in_place)
{
    struct wr w = wr_make(buf, sizeof buf);
    struct proto_enc e;
    proto_fetch_resp_begin(&e, &w, 0, 4);
    proto_enc_topic(&e, proto_str_make("t"));
    proto_fetch_resp_partition_begin(&e, &(struct proto_fetch_resp_partition){0, 0, 0, 20, NULL, 0});
    /* As a read from the log would: reserve, fill part, trim the rest. */
    uint8_t *dst = wr_take(&w, 100);
    cr_assert_not_null(dst);
    memcpy(dst, batch_a, sizeof batch_a);
    w.pos -= 100 - sizeof batch_a;
    proto_fetch_resp_partition_end(&e);
    proto_fetch_resp_partition_begin(&e, &(struct proto_fetch_resp_partition){1, 0, 0, 0, NULL, 0});
    proto_fetch_resp_partition_end(&e);
    size_t before = proto_enc_frame_bytes(&e);
    cr_assert_eq(proto_enc_end(&e), 0);
    cr_assert_eq(before, w.pos);

    struct rd r = frame_rd(buf, w.pos, true);
    struct proto_resp_header h;
    cr_assert_eq(proto_resp_header_decode(&r, &h), 0);
    struct proto_dec d;
    cr_assert_eq(proto_fetch_resp_decode(&r, 0, &d), 0);
    struct proto_topic t;
    struct proto_fetch_resp_partition p;
    cr_assert(proto_next_topic(&d, &t));
    cr_assert(proto_fetch_resp_next_partition(&d, &p));
    cr_assert_eq(p.records_bytes, sizeof batch_a);
    cr_assert_eq(memcmp(p.records, batch_a, sizeof batch_a), 0);
    cr_assert(proto_fetch_resp_next_partition(&d, &p));
    cr_assert_eq(p.partition, 1);
    cr_assert_eq(p.records_bytes, 0);
    cr_assert_not(proto_fetch_resp_next_partition(&d, &p));
}

Test(proto, list_offsets_round_trip)
{
    size_t n = sample_request(PROTO_API_LIST_OFFSETS, buf, sizeof buf);
    struct rd r = frame_rd(buf, n, false);
    struct proto_req_header h;
    cr_assert_eq(proto_req_header_decode(&r, &h), 0);
    struct proto_dec d;
    cr_assert_eq(proto_list_offsets_req_decode(&r, 0, &d), 0);
    struct proto_topic t;
    struct proto_list_offsets_req_partition p;
    cr_assert(proto_next_topic(&d, &t));
    cr_assert(proto_list_offsets_req_next_partition(&d, &p));
    cr_assert_eq(p.partition, 0);
    cr_assert_eq(p.timestamp_ms, PROTO_TIMESTAMP_EARLIEST);
    cr_assert(proto_list_offsets_req_next_partition(&d, &p));
    cr_assert_eq(p.timestamp_ms, 1700000000000);
    cr_assert_not(proto_list_offsets_req_next_partition(&d, &p));
    cr_assert_not(proto_next_topic(&d, &t));

    n = sample_response(PROTO_API_LIST_OFFSETS, buf, sizeof buf);
    r = frame_rd(buf, n, true);
    struct proto_resp_header rh;
    cr_assert_eq(proto_resp_header_decode(&r, &rh), 0);
    cr_assert_eq(proto_list_offsets_resp_decode(&r, 0, &d), 0);
    struct proto_list_offsets_resp_partition rp;
    cr_assert(proto_next_topic(&d, &t));
    cr_assert(proto_list_offsets_resp_next_partition(&d, &rp));
    cr_assert_eq(rp.timestamp_ms, -1);
    cr_assert_eq(rp.offset, 0);
    cr_assert(proto_list_offsets_resp_next_partition(&d, &rp));
    cr_assert_eq(rp.partition, 1);
    cr_assert_eq(rp.err, 0);
    cr_assert_eq(rp.timestamp_ms, 1700000000001);
    cr_assert_eq(rp.offset, 77);
    cr_assert_not(proto_list_offsets_resp_next_partition(&d, &rp));
}

Test(proto, init_producer_id_round_trip)
{
    size_t n = sample_request(PROTO_API_INIT_PRODUCER_ID, buf, sizeof buf);
    struct rd r = frame_rd(buf, n, false);
    struct proto_req_header h;
    cr_assert_eq(proto_req_header_decode(&r, &h), 0);
    cr_assert_eq(h.api_key, PROTO_API_INIT_PRODUCER_ID);
    cr_assert_eq(proto_init_producer_id_req_decode(&r, 0), 0);

    struct wr w = wr_make(buf, sizeof buf);
    struct proto_init_producer_id_resp in = {INT64_MAX - 3, -2};
    cr_assert_eq(proto_init_producer_id_resp_encode(&w, 0, 77, &in), 0);
    r = frame_rd(buf, w.pos, true);
    struct proto_resp_header rh;
    cr_assert_eq(proto_resp_header_decode(&r, &rh), 0);
    cr_assert_eq(rh.correlation_id, 77);
    struct proto_init_producer_id_resp out;
    cr_assert_eq(proto_init_producer_id_resp_decode(&r, 0, &out), 0);
    cr_assert_eq(out.producer_id, INT64_MAX - 3);
    cr_assert_eq(out.producer_epoch, -2);
}

Test(proto, next_topic_skips_partitions_not_read)
{
    size_t n = sample_request(PROTO_API_PRODUCE, buf, sizeof buf);
    struct rd r = frame_rd(buf, n, false);
    struct proto_req_header h;
    cr_assert_eq(proto_req_header_decode(&r, &h), 0);
    struct proto_produce_req req;
    struct proto_dec d;
    cr_assert_eq(proto_produce_req_decode(&r, 0, &req, &d), 0);
    struct proto_topic t;
    struct proto_produce_req_partition p;
    cr_assert(proto_next_topic(&d, &t));
    cr_assert(proto_produce_req_next_partition(&d, &p)); /* 1 of 2 */
    cr_assert(proto_next_topic(&d, &t));
    cr_assert(str_is(t.name, "beta"));
    cr_assert(proto_produce_req_next_partition(&d, &p));
    cr_assert_eq(p.partition, 1);
}

Test(proto, every_frame_decodes_the_same_when_pipelined)
{
    struct wr w = wr_make(buf, sizeof buf);
    size_t starts[PROTO_API_COUNT];
    for (int api = 0; api < PROTO_API_COUNT; api++) {
        starts[api] = w.pos;
        w.pos += sample_request(api, buf + w.pos, sizeof buf - w.pos);
    }
    for (int api = 0; api < PROTO_API_COUNT; api++) {
        uint32_t len = 0;
        cr_assert_eq(proto_request_frame_len(buf + starts[api], PROTO_FRAME_BYTES_DEFAULT, &len), 0);
        cr_assert_eq(decode_request(buf + starts[api] + 4, len), 0, "api %d", api);
    }
}

/* ---- hostile bytes ---- */

Test(proto, truncated_at_every_byte_is_refused_cleanly)
{
    for (int api = 0; api < PROTO_API_COUNT; api++) {
        size_t n = sample_request(api, scratch, sizeof scratch);
        cr_assert_eq(decode_request(scratch + 4, n - 4), 0);
        for (size_t cut = 0; cut < n - 4; cut++) {
            /* Copy so reads past the cut would hit ASan's redzone. */
            uint8_t *p = malloc(cut + 1);
            memcpy(p, scratch + 4, cut);
            int rc = decode_request(p, cut);
            free(p);
            cr_assert_lt(rc, 0, "request api %d cut at %zu decoded", api, cut);
            cr_assert(rc == -NG_ETRUNCATED || rc == -NG_EBADLEN || rc == -NG_EBADCOUNT,
                      "api %d cut %zu: %s", api, cut, err_str(rc));
        }
        n = sample_response(api, scratch, sizeof scratch);
        cr_assert_eq(decode_response(api, scratch + 4, n - 4), 0);
        for (size_t cut = 0; cut < n - 4; cut++) {
            uint8_t *p = malloc(cut + 1);
            memcpy(p, scratch + 4, cut);
            int rc = decode_response(api, p, cut);
            free(p);
            cr_assert_lt(rc, 0, "response api %d cut at %zu decoded", api, cut);
        }
    }
}

Test(proto, trailing_bytes_are_refused)
{
    for (int api = 0; api < PROTO_API_COUNT; api++) {
        size_t n = sample_request(api, scratch, sizeof scratch);
        scratch[n] = 0;
        cr_assert_eq(decode_request(scratch + 4, n - 4 + 1), -NG_EBADLEN, "api %d", api);
        n = sample_response(api, scratch, sizeof scratch);
        scratch[n] = 0;
        cr_assert_eq(decode_response(api, scratch + 4, n - 4 + 1), -NG_EBADLEN, "api %d", api);
    }
}

Test(proto, negative_counts_are_refused)
{
    /* Produce: acks, timeout, topic count. */
    uint8_t body[64];
    struct wr w = wr_make(body, sizeof body);
    wr_be16(&w, 1);
    wr_be32(&w, 100);
    wr_be32(&w, (uint32_t)-1);
    cr_assert_eq(decode_raw_request(PROTO_API_PRODUCE, body, w.pos), -NG_EBADCOUNT);

    /* One topic with -5 partitions. */
    w = wr_make(body, sizeof body);
    wr_be16(&w, 1);
    wr_be32(&w, 100);
    wr_be32(&w, 1);
    wr_be16(&w, 1);
    wr_u8(&w, 't');
    wr_be32(&w, (uint32_t)-5);
    cr_assert_eq(decode_raw_request(PROTO_API_PRODUCE, body, w.pos), -NG_EBADCOUNT);

    /* Metadata: -1 means all topics, -2 is nothing. */
    w = wr_make(body, sizeof body);
    wr_be32(&w, (uint32_t)-1);
    cr_assert_eq(decode_raw_request(PROTO_API_METADATA, body, w.pos), 0);
    put_be32(body, (uint32_t)-2);
    cr_assert_eq(decode_raw_request(PROTO_API_METADATA, body, w.pos), -NG_EBADCOUNT);
    /* DeleteTopics does not take null. */
    put_be32(body, (uint32_t)-1);
    cr_assert_eq(decode_raw_request(PROTO_API_DELETE_TOPICS, body, w.pos), -NG_EBADCOUNT);
    put_be32(body, (uint32_t)INT32_MIN);
    cr_assert_eq(decode_raw_request(PROTO_API_CREATE_TOPICS, body, w.pos), -NG_EBADCOUNT);
}

Test(proto, counts_over_limits_are_refused)
{
    uint8_t body[64];
    struct wr w = wr_make(body, sizeof body);
    wr_be32(&w, PROTO_TOPICS_MAX + 1);
    cr_assert_eq(decode_raw_request(PROTO_API_DELETE_TOPICS, body, w.pos), -NG_EBADCOUNT);
    /* Within the limit but more than the bytes could hold. */
    put_be32(body, 1000);
    cr_assert_eq(decode_raw_request(PROTO_API_DELETE_TOPICS, body, w.pos), -NG_ETRUNCATED);

    /* ApiVersions response with more ranges than fit the array. */
    uint8_t resp[64];
    w = wr_make(resp, sizeof resp);
    wr_be32(&w, 1);
    wr_be16(&w, 0);
    wr_be32(&w, 1 << 20);
    wr_be32(&w, PROTO_API_RANGES_MAX + 1);
    cr_assert_eq(decode_response(PROTO_API_API_VERSIONS, resp, w.pos), -NG_EBADCOUNT);
}

/* Fetch request body: two topics of n partitions each. */
static size_t fetch_body(uint8_t *out, size_t cap, int32_t n)
{
    struct wr w = wr_make(out, cap);
    wr_be32(&w, 0);
    wr_be32(&w, 0);
    wr_be32(&w, 0);
    wr_be32(&w, 2);
    for (int t = 0; t < 2; t++) {
        wr_be16(&w, 1);
        wr_u8(&w, (uint8_t)('a' + t));
        wr_be32(&w, (uint32_t)n);
        for (int32_t i = 0; i < n; i++) {
            wr_be32(&w, (uint32_t)i);
            wr_be64(&w, 0);
            wr_be32(&w, 1);
        }
    }
    cr_assert_eq(w.err, 0);
    return w.pos;
}

Test(proto, partitions_per_request_are_bounded_in_total)
{
    size_t n = fetch_body(scratch, sizeof scratch, PROTO_REQUEST_PARTITIONS_MAX / 2);
    cr_assert_eq(decode_raw_request(PROTO_API_FETCH, scratch, n), 0);
    n = fetch_body(scratch, sizeof scratch, PROTO_REQUEST_PARTITIONS_MAX / 2 + 1);
    cr_assert_eq(decode_raw_request(PROTO_API_FETCH, scratch, n), -NG_EBADCOUNT);
    n = fetch_body(scratch, sizeof scratch, PROTO_PARTITIONS_MAX + 1);
    cr_assert_eq(decode_raw_request(PROTO_API_FETCH, scratch, n), -NG_EBADCOUNT);
}

Test(proto, metadata_response_partitions_are_bounded_per_topic_only)
{
    struct wr w = wr_make(buf, sizeof buf);
    struct proto_enc e;
    struct proto_metadata_resp m = {proto_str_make("h"), 1};
    proto_metadata_resp_begin(&e, &w, 0, 1, &m);
    for (int t = 0; t < 2; t++) {
        proto_metadata_resp_topic(&e, proto_str_make(t ? "a" : "b"), 0);
        for (int32_t i = 0; i < PROTO_PARTITIONS_MAX; i++) {
            proto_metadata_resp_partition(&e, &(struct proto_metadata_partition){i, 0, 0, 0});
        }
    }
    cr_assert_eq(proto_enc_end(&e), 0);
    cr_assert_eq(decode_response(PROTO_API_METADATA, buf + 4, w.pos - 4), 0);
}

Test(proto, lengths_past_the_end_are_refused)
{
    /* DeleteTopics: one name claiming 100 bytes, 3 present. */
    uint8_t body[64];
    struct wr w = wr_make(body, sizeof body);
    wr_be32(&w, 1);
    wr_be16(&w, 100);
    wr_bytes(&w, "abc", 3);
    cr_assert_eq(decode_raw_request(PROTO_API_DELETE_TOPICS, body, w.pos), -NG_ETRUNCATED);

    /* Produce: a batch claiming 2^31-1 bytes. */
    w = wr_make(body, sizeof body);
    wr_be16(&w, 1);
    wr_be32(&w, 0);
    wr_be32(&w, 1);
    wr_be16(&w, 1);
    wr_u8(&w, 't');
    wr_be32(&w, 1);
    wr_be32(&w, 0);
    size_t len_at = w.pos;
    wr_be32(&w, INT32_MAX);
    wr_bytes(&w, "xyz", 3);
    cr_assert_eq(decode_raw_request(PROTO_API_PRODUCE, body, w.pos), -NG_ETRUNCATED);
    put_be32(body + len_at, 4);
    cr_assert_eq(decode_raw_request(PROTO_API_PRODUCE, body, w.pos), -NG_ETRUNCATED);
    put_be32(body + len_at, 3);
    cr_assert_eq(decode_raw_request(PROTO_API_PRODUCE, body, w.pos), 0);
    put_be32(body + len_at, (uint32_t)-1); /* null batch */
    cr_assert_eq(decode_raw_request(PROTO_API_PRODUCE, body, w.pos), -NG_EBADLEN);
    put_be32(body + len_at, (uint32_t)-7);
    cr_assert_eq(decode_raw_request(PROTO_API_PRODUCE, body, w.pos), -NG_EBADLEN);
}

Test(proto, bad_string_lengths_are_refused)
{
    uint8_t body[2048];
    struct wr w = wr_make(body, sizeof body);
    wr_be32(&w, 1);
    wr_be16(&w, (uint16_t)-1); /* null topic name */
    cr_assert_eq(decode_raw_request(PROTO_API_DELETE_TOPICS, body, w.pos), -NG_EBADLEN);
    put_be16(body + 4, (uint16_t)-2);
    cr_assert_eq(decode_raw_request(PROTO_API_DELETE_TOPICS, body, w.pos), -NG_EBADLEN);
    /* Over PROTO_STRING_BYTES_MAX, with the bytes present. */
    w = wr_make(body, sizeof body);
    wr_be32(&w, 1);
    wr_be16(&w, PROTO_STRING_BYTES_MAX + 1);
    memset(body + w.pos, 'a', PROTO_STRING_BYTES_MAX + 1);
    w.pos += PROTO_STRING_BYTES_MAX + 1;
    cr_assert_eq(decode_raw_request(PROTO_API_DELETE_TOPICS, body, w.pos), -NG_EBADLEN);
    put_be16(body + 4, PROTO_STRING_BYTES_MAX);
    cr_assert_eq(decode_raw_request(PROTO_API_DELETE_TOPICS, body, w.pos - 1), 0);

    /* A client id of -3 bytes. */
    uint8_t req[] = {0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xfd};
    struct rd r = rd_make(req, sizeof req);
    struct proto_req_header h;
    cr_assert_eq(proto_req_header_decode(&r, &h), -NG_EBADLEN);
    cr_assert_eq(h.correlation_id, 1);
}

Test(proto, bad_field_values_are_refused)
{
    uint8_t body[64];
    int16_t acks[] = {2, -2, 100};
    for (size_t i = 0; i < ARRAY_LEN(acks); i++) {
        struct wr w = wr_make(body, sizeof body);
        wr_be16(&w, (uint16_t)acks[i]);
        wr_be32(&w, 0);
        wr_be32(&w, 0);
        cr_assert_eq(decode_raw_request(PROTO_API_PRODUCE, body, w.pos), -NG_EBADARG);
    }
    struct wr w = wr_make(body, sizeof body);
    wr_be16(&w, 0);
    wr_be32(&w, (uint32_t)-1); /* timeout */
    wr_be32(&w, 0);
    cr_assert_eq(decode_raw_request(PROTO_API_PRODUCE, body, w.pos), -NG_EBADARG);
    for (int f = 0; f < 3; f++) {
        w = wr_make(body, sizeof body);
        for (int i = 0; i < 3; i++) {
            wr_be32(&w, i == f ? (uint32_t)-1 : 0);
        }
        wr_be32(&w, 0);
        cr_assert_eq(decode_raw_request(PROTO_API_FETCH, body, w.pos), -NG_EBADARG);
    }
}

Test(proto, topic_names_are_validated)
{
    const char *good[] = {"a", "A.b_c-9", "...", ".a", "a..", "-", "_"};
    for (size_t i = 0; i < ARRAY_LEN(good); i++) {
        cr_assert(proto_topic_name_valid(good[i], strlen(good[i])), "%s", good[i]);
    }
    const char *bad[] = {"", ".", "..", "a/b", "a b", "a\\b", "é", "a\n", "a:b", "*"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        cr_assert_not(proto_topic_name_valid(bad[i], strlen(bad[i])), "%s", bad[i]);
    }
    cr_assert_not(proto_topic_name_valid("a\0b", 3));
    cr_assert_not(proto_topic_name_valid(NULL, 0));
    char name[PROTO_TOPIC_NAME_BYTES_MAX + 1];
    memset(name, 'x', sizeof name);
    cr_assert(proto_topic_name_valid(name, PROTO_TOPIC_NAME_BYTES_MAX));
    cr_assert_not(proto_topic_name_valid(name, PROTO_TOPIC_NAME_BYTES_MAX + 1));
}

Test(proto, str_copy_terminates_and_checks_room)
{
    char out[4];
    cr_assert_eq(proto_str_copy(proto_str_make("abc"), out, sizeof out), 0);
    cr_assert_str_eq(out, "abc");
    cr_assert_eq(proto_str_copy(proto_str_make("abcd"), out, sizeof out), -NG_ETOOBIG);
    cr_assert_eq(proto_str_copy(PROTO_STR_NULL, out, sizeof out), -NG_EBADARG);
    cr_assert_eq(proto_str_copy(proto_str_make(""), out, sizeof out), 0);
    cr_assert_str_eq(out, "");
    cr_assert(proto_str_eq((struct proto_str){NULL, 0}, ""));
    cr_assert_not(proto_str_eq(PROTO_STR_NULL, ""));
    cr_assert_not(proto_str_eq(proto_str_make("ab"), "abc"));
}

/* ---- encoder failures ---- */

Test(proto, encoder_out_of_space_leaves_the_writer_as_it_was)
{
    /* A frame already in the buffer stays; the one that does not fit goes. */
    size_t first = sample_request(PROTO_API_INIT_PRODUCER_ID, buf, sizeof buf);
    struct wr w = wr_make(buf, first + 30);
    w.pos = first;
    struct proto_enc e;
    struct proto_produce_req req = {1, 0};
    proto_produce_req_begin(&e, &w, 0, 1, CID, &req);
    proto_enc_topic(&e, proto_str_make("alpha"));
    proto_produce_req_partition(&e, &(struct proto_produce_req_partition){0, batch_a, sizeof batch_a});
    cr_assert_eq(proto_enc_end(&e), -NG_ENOSPACE);
    cr_assert_eq(w.pos, first);
    cr_assert_eq(w.err, 0);
    /* Every shorter buffer fails the same way, never a half frame. */
    size_t n = SIZE_MAX;
    for (size_t cap = 0; cap <= n; cap++) {
        struct wr w2 = wr_make(buf, cap);
        proto_produce_req_begin(&e, &w2, 0, 7, CID, &(struct proto_produce_req){PROTO_ACKS_ALL, 5000});
        proto_enc_topic(&e, proto_str_make("alpha"));
        proto_produce_req_partition(&e, &(struct proto_produce_req_partition){0, batch_a, sizeof batch_a});
        int rc = proto_enc_end(&e);
        if (rc == 0) {
            n = cap; /* the first capacity that fits: the frame's size */
            cr_assert_eq(w2.pos, cap);
            break;
        }
        cr_assert_eq(rc, -NG_ENOSPACE, "cap %zu", cap);
        cr_assert_eq(w2.pos, 0);
    }
    cr_assert_eq(n, 4 + 10 + 8 + 6 + 4 + 7 + 4 + 4 + 4 + sizeof batch_a);
}

Test(proto, encoder_refuses_bad_strings_and_counts)
{
    struct wr w = wr_make(buf, sizeof buf);
    struct proto_enc e;
    proto_delete_topics_req_begin(&e, &w, 0, 1, CID);
    proto_enc_topic(&e, PROTO_STR_NULL);
    cr_assert_eq(proto_enc_end(&e), -NG_EBADLEN);
    cr_assert_eq(w.pos, 0);

    char big[PROTO_STRING_BYTES_MAX + 2];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    cr_assert_eq(proto_api_versions_req_encode(&w, 0, 1, proto_str_make(big)), -NG_EBADLEN);
    cr_assert_eq(w.pos, 0);

    proto_delete_topics_req_begin(&e, &w, 0, 1, CID);
    for (int i = 0; i <= PROTO_TOPICS_MAX; i++) {
        proto_enc_topic(&e, proto_str_make("t"));
    }
    cr_assert_eq(proto_enc_end(&e), -NG_EBADCOUNT);

    proto_produce_req_begin(&e, &w, 0, 1, CID, &(struct proto_produce_req){1, 0});
    proto_enc_topic(&e, proto_str_make("t"));
    for (int i = 0; i <= PROTO_PARTITIONS_MAX; i++) {
        proto_produce_req_partition(&e, &(struct proto_produce_req_partition){i, batch_b, 1});
    }
    cr_assert_eq(proto_enc_end(&e), -NG_EBADCOUNT);

    proto_list_offsets_req_begin(&e, &w, 0, 1, CID);
    for (int t = 0; t < 2; t++) {
        proto_enc_topic(&e, proto_str_make("t"));
        for (int i = 0; i <= PROTO_REQUEST_PARTITIONS_MAX / 2; i++) {
            proto_list_offsets_req_partition(&e, &(struct proto_list_offsets_req_partition){i, -1});
        }
    }
    cr_assert_eq(proto_enc_end(&e), -NG_EBADCOUNT);
    cr_assert_eq(w.pos, 0);

    /* The largest legal request still goes through. */
    proto_list_offsets_req_begin(&e, &w, 0, 1, CID);
    for (int t = 0; t < 2; t++) {
        proto_enc_topic(&e, proto_str_make("t"));
        for (int i = 0; i < PROTO_REQUEST_PARTITIONS_MAX / 2; i++) {
            proto_list_offsets_req_partition(&e, &(struct proto_list_offsets_req_partition){i, -1});
        }
    }
    cr_assert_eq(proto_enc_end(&e), 0);
    cr_assert_eq(decode_request(buf + 4, w.pos - 4), 0);
}

/* ---- docs/protocol.md ---- */

Test(proto, examples_in_protocol_md_match_the_encoder)
{
    static const uint8_t api_versions[] = {
        0x00, 0x00, 0x00, 0x0d, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x01, 0x00, 0x03, 'c', 'l', 'i'};
    struct wr w = wr_make(buf, sizeof buf);
    cr_assert_eq(proto_api_versions_req_encode(&w, 0, 1, proto_str_make("cli")), 0);
    cr_assert_eq(w.pos, sizeof api_versions);
    cr_assert_eq(memcmp(buf, api_versions, sizeof api_versions), 0);

    static const uint8_t produce_resp[] = {
        0x00, 0x00, 0x00, 0x1f, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 't',
        0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a};
    w = wr_make(buf, sizeof buf);
    struct proto_enc e;
    proto_produce_resp_begin(&e, &w, 0, 1);
    proto_enc_topic(&e, proto_str_make("t"));
    proto_produce_resp_partition(&e, &(struct proto_produce_resp_partition){0, 0, 42});
    cr_assert_eq(proto_enc_end(&e), 0);
    cr_assert_eq(w.pos, sizeof produce_resp);
    cr_assert_eq(memcmp(buf, produce_resp, sizeof produce_resp), 0);
}

/* ---- Metadata v1: the topic's configuration ---- */

static const struct proto_topic_config sample_cfg = {
    .partition_count = 4,
    .retention_ms = 86400000,
    .retention_bytes = PROTO_CONFIG_UNLIMITED,
    .segment_bytes = 1 << 30,
    .segment_ms = 604800000,
    .batch_bytes_max = 8 << 20,
};

static size_t metadata_v1_response(uint8_t *out, size_t cap)
{
    struct wr w = wr_make(out, cap);
    struct proto_enc e;
    struct proto_metadata_resp m = {proto_str_make("127.0.0.1"), 7420};
    proto_metadata_resp_begin(&e, &w, 1, 9, &m);
    proto_metadata_resp_topic_config(&e, proto_str_make("alpha"), 0, &sample_cfg);
    proto_metadata_resp_partition(&e, &(struct proto_metadata_partition){0, 0, 5, 10});
    proto_metadata_resp_topic(&e, proto_str_make("gone"), -NG_EUNKNOWN_TOPIC);
    cr_assert_eq(proto_enc_end(&e), 0);
    return w.pos;
}

static int decode_metadata(const uint8_t *p, size_t len, uint16_t version)
{
    struct rd r = rd_make(p, len);
    struct proto_resp_header h;
    int rc = proto_resp_header_decode(&r, &h);
    if (rc != 0) {
        return rc;
    }
    struct proto_metadata_resp m;
    struct proto_dec d;
    rc = proto_metadata_resp_decode(&r, version, &m, &d);
    if (rc == 0) {
        drain_topics(&d, PROTO_API_METADATA, true);
    }
    return rc;
}

Test(proto, metadata_v1_is_served_and_has_the_v0_request)
{
    cr_assert_eq(proto_api_version_max(PROTO_API_METADATA), 1);
    cr_assert_eq(proto_api_check(PROTO_API_METADATA, 1), 0);
    cr_assert_eq(proto_api_check(PROTO_API_METADATA, 2), -NG_EBADVERSION);
    struct wr w = wr_make(buf, sizeof buf);
    struct proto_enc e;
    proto_metadata_req_begin(&e, &w, 1, 3, CID, false);
    proto_enc_topic(&e, proto_str_make("alpha"));
    cr_assert_eq(proto_enc_end(&e), 0);
    size_t n1 = w.pos;
    struct rd r = frame_rd(buf, n1, false);
    struct proto_req_header h;
    cr_assert_eq(proto_req_header_decode(&r, &h), 0);
    cr_assert_eq(h.api_version, 1);
    struct proto_dec d;
    cr_assert_eq(proto_metadata_req_decode(&r, 1, &d), 0);
    struct proto_topic t;
    cr_assert(proto_next_topic(&d, &t));
    cr_assert(str_is(t.name, "alpha"));
    /* Same bytes as v0 apart from the version field. */
    proto_metadata_req_begin(&e, &w, 0, 3, CID, false);
    proto_enc_topic(&e, proto_str_make("alpha"));
    cr_assert_eq(proto_enc_end(&e), 0);
    cr_assert_eq(w.pos, 2 * n1);
    cr_assert_eq(memcmp(buf, buf + n1, 6), 0);
    cr_assert_eq(memcmp(buf + 8, buf + n1 + 8, n1 - 8), 0);
}

Test(proto, metadata_v1_response_round_trips_the_config)
{
    size_t n = metadata_v1_response(buf, sizeof buf);
    struct rd r = frame_rd(buf, n, true);
    struct proto_resp_header h;
    cr_assert_eq(proto_resp_header_decode(&r, &h), 0);
    struct proto_metadata_resp m;
    struct proto_dec d;
    cr_assert_eq(proto_metadata_resp_decode(&r, 1, &m, &d), 0);
    cr_assert(str_is(m.host, "127.0.0.1"));
    struct proto_topic t;
    struct proto_metadata_partition p;
    cr_assert(proto_next_topic(&d, &t));
    cr_assert(str_is(t.name, "alpha"));
    cr_assert_eq(t.err, 0);
    cr_assert_eq(t.partition_count, 1);
    cr_assert_eq(memcmp(&t.config, &sample_cfg, sizeof sample_cfg), 0);
    cr_assert(proto_metadata_resp_next_partition(&d, &p));
    cr_assert_eq(p.offset_earliest, 5);
    cr_assert_eq(p.offset_latest, 10);
    cr_assert_not(proto_metadata_resp_next_partition(&d, &p));
    cr_assert(proto_next_topic(&d, &t));
    cr_assert(str_is(t.name, "gone"));
    cr_assert_eq(t.err, -NG_EUNKNOWN_TOPIC);
    cr_assert_eq(t.config.partition_count, 0);
    cr_assert_eq(t.config.retention_ms, 0);
    cr_assert_eq(t.config.batch_bytes_max, 0);
    cr_assert_not(proto_next_topic(&d, &t));
}

Test(proto, metadata_v0_leaves_the_config_out)
{
    struct wr w = wr_make(buf, sizeof buf);
    struct proto_enc e;
    struct proto_metadata_resp m = {proto_str_make("h"), 1};
    proto_metadata_resp_begin(&e, &w, 0, 9, &m);
    proto_metadata_resp_topic_config(&e, proto_str_make("alpha"), 0, &sample_cfg);
    cr_assert_eq(proto_enc_end(&e), 0);
    size_t v0 = w.pos;
    struct rd r = frame_rd(buf, v0, true);
    struct proto_resp_header h;
    cr_assert_eq(proto_resp_header_decode(&r, &h), 0);
    struct proto_dec d;
    cr_assert_eq(proto_metadata_resp_decode(&r, 0, &m, &d), 0);
    struct proto_topic t;
    cr_assert(proto_next_topic(&d, &t));
    cr_assert_eq(t.config.partition_count, 0);
    cr_assert_eq(t.config.segment_bytes, 0);

    w = wr_make(buf, sizeof buf);
    proto_metadata_resp_begin(&e, &w, 1, 9, &m);
    proto_metadata_resp_topic_config(&e, proto_str_make("alpha"), 0, &sample_cfg);
    cr_assert_eq(proto_enc_end(&e), 0);
    cr_assert_eq(w.pos, v0 + 40, "v1 adds 40 bytes per topic");
}

Test(proto, metadata_versions_do_not_decode_each_other)
{
    size_t n = metadata_v1_response(scratch, sizeof scratch);
    cr_assert_eq(decode_metadata(scratch + 4, n - 4, 1), 0);
    cr_assert_lt(decode_metadata(scratch + 4, n - 4, 0), 0);
    n = sample_response(PROTO_API_METADATA, scratch, sizeof scratch);
    cr_assert_eq(decode_metadata(scratch + 4, n - 4, 0), 0);
    cr_assert_lt(decode_metadata(scratch + 4, n - 4, 1), 0);
}

Test(proto, metadata_v1_truncated_or_extended_is_refused)
{
    size_t n = metadata_v1_response(scratch, sizeof scratch);
    for (size_t cut = 0; cut < n - 4; cut++) {
        uint8_t *p = malloc(cut + 1);
        memcpy(p, scratch + 4, cut);
        int rc = decode_metadata(p, cut, 1);
        free(p);
        cr_assert_lt(rc, 0, "cut at %zu decoded", cut);
    }
    scratch[n] = 0;
    cr_assert_eq(decode_metadata(scratch + 4, n - 3, 1), -NG_EBADLEN);
}
