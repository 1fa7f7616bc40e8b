/*
 * fuzz/fuzz_proto.c — libFuzzer target for the wire codec (net/proto.h).
 *
 * Input: one selector byte, then the bytes of a frame after its length
 * prefix. Selector bit 7 clear: the bytes are a request (header and body),
 * decoded as the broker does, whatever api key they name. Bit 7 set: they
 * are a response to api (selector & 0x7f) % PROTO_API_COUNT at version
 * (selector & 0x7f) / PROTO_API_COUNT, decoded as the client does (an
 * unassigned key or a version past the api's decodes nothing). The frame is copied to a heap block of exactly its size, so
 * ASan sees any read past the end.
 *
 * Every input that decodes is re-encoded from what was decoded, through the
 * matching encoder, and must come out byte for byte as it went in (prefix
 * included): decoders and encoders agree on every field, and a decoder
 * never accepts a body an encoder could not have written. The frame-length
 * helpers see the first four bytes.
 *
 * Seeds: fuzz/corpus/proto/ (one request and one response of every api).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_SELECT_RESPONSE 0x80u

/* Ranges of one partition, decoded into arrays to be encoded again. */
static struct proto_share_acquired acquired_buf[PROTO_SHARE_RANGES_MAX];
static struct proto_share_ack acks_buf[PROTO_SHARE_RANGES_MAX];

/* Partitions of the group and share requests; false for other apis. */
static bool recode_group_request_parts(uint16_t api, struct proto_dec *d, struct proto_enc *e)
{
    if (api == PROTO_API_OFFSET_COMMIT) {
        struct proto_offset_commit_req_partition p;
        while (proto_offset_commit_req_next_partition(d, &p)) {
            proto_offset_commit_req_partition(e, &p);
        }
    } else if (api == PROTO_API_OFFSET_FETCH || api == PROTO_API_RESET_OFFSETS ||
               api == PROTO_API_SHARE_FETCH) {
        int32_t p;
        while (proto_next_partition_index(d, &p)) {
            proto_enc_partition_index(e, p);
        }
    } else if (api == PROTO_API_SHARE_ACK) {
        struct proto_share_ack_req_partition p;
        while (proto_share_ack_req_next_partition(d, &p)) {
            for (uint32_t i = 0; i < p.ack_count; i++) {
                proto_share_ack_at(&p, i, &acks_buf[i]);
            }
            p.acks = acks_buf;
            proto_share_ack_req_partition(e, &p);
        }
    } else {
        return false;
    }
    return true;
}

static int recode_topics_request(uint16_t api, struct proto_dec *d, struct proto_enc *e)
{
    struct proto_topic t;
    while (proto_next_topic(d, &t)) {
        proto_enc_topic(e, t.name);
        if (api == PROTO_API_PRODUCE) {
            struct proto_produce_req_partition p;
            while (proto_produce_req_next_partition(d, &p)) {
                proto_produce_req_partition(e, &p);
            }
        } else if (api == PROTO_API_FETCH) {
            struct proto_fetch_req_partition p;
            while (proto_fetch_req_next_partition(d, &p)) {
                proto_fetch_req_partition(e, &p);
            }
        } else if (api == PROTO_API_LIST_OFFSETS) {
            struct proto_list_offsets_req_partition p;
            while (proto_list_offsets_req_next_partition(d, &p)) {
                proto_list_offsets_req_partition(e, &p);
            }
        } else if (api == PROTO_API_REPLICA_FETCH) {
            struct proto_replica_fetch_req_partition p;
            while (proto_replica_fetch_req_next_partition(d, &p)) {
                proto_replica_fetch_req_partition(e, &p);
            }
        } else if (api == PROTO_API_OFFSET_FOR_LEADER_EPOCH) {
            struct proto_epoch_req_partition p;
            while (proto_epoch_req_next_partition(d, &p)) {
                proto_epoch_req_partition(e, &p);
            }
        } else if (api == PROTO_API_REASSIGN_PARTITIONS) {
            struct proto_reassign_partition p;
            while (proto_reassign_req_next_partition(d, &p)) {
                proto_reassign_req_partition(e, &p);
            }
        } else {
            (void)recode_group_request_parts(api, d, e);
        }
    }
    return proto_enc_end(e);
}

/* The group and share requests with topics; the caller re-encodes the
 * topics. Returns the decode error, or 0 with e begun. */
static int recode_group_request_begin(const struct proto_req_header *h, struct rd *r, struct wr *w,
                                      struct proto_enc *e, struct proto_dec *d)
{
    uint16_t v = h->api_version;
    uint32_t c = h->correlation_id;
    int rc;
    if (h->api_key == PROTO_API_JOIN_GROUP) {
        struct proto_join_group_req q;
        if ((rc = proto_join_group_req_decode(r, v, &q, d)) == 0) {
            proto_join_group_req_begin(e, w, v, c, h->client_id, &q);
        }
    } else if (h->api_key == PROTO_API_OFFSET_COMMIT) {
        struct proto_offset_commit_req q;
        if ((rc = proto_offset_commit_req_decode(r, v, &q, d)) == 0) {
            proto_offset_commit_req_begin(e, w, v, c, h->client_id, &q);
        }
    } else if (h->api_key == PROTO_API_OFFSET_FETCH) {
        struct proto_str g;
        if ((rc = proto_offset_fetch_req_decode(r, v, &g, d)) == 0) {
            proto_offset_fetch_req_begin(e, w, v, c, h->client_id, g, d->topic_count < 0);
        }
    } else if (h->api_key == PROTO_API_RESET_OFFSETS) {
        struct proto_reset_offsets_req q;
        if ((rc = proto_reset_offsets_req_decode(r, v, &q, d)) == 0) {
            proto_reset_offsets_req_begin(e, w, v, c, h->client_id, &q);
        }
    } else if (h->api_key == PROTO_API_SHARE_FETCH) {
        struct proto_share_fetch_req q;
        if ((rc = proto_share_fetch_req_decode(r, v, &q, d)) == 0) {
            proto_share_fetch_req_begin(e, w, v, c, h->client_id, &q);
        }
    } else {
        struct proto_share_ack_req q;
        ASSERT(h->api_key == PROTO_API_SHARE_ACK);
        if ((rc = proto_share_ack_req_decode(r, v, &q, d)) == 0) {
            proto_share_ack_req_begin(e, w, v, c, h->client_id, &q);
        }
    }
    return rc;
}

/* The group and share requests without topics. */
static int recode_group_request_flat(const struct proto_req_header *h, struct rd *r, struct wr *w,
                                     int *enc_rc)
{
    uint16_t v = h->api_version;
    uint32_t c = h->correlation_id;
    struct proto_str name;
    int rc;
    switch (h->api_key) {
    case PROTO_API_HEARTBEAT: {
        struct proto_heartbeat_req q;
        rc = proto_heartbeat_req_decode(r, v, &q);
        *enc_rc = rc ? 0 : proto_heartbeat_req_encode(w, v, c, h->client_id, &q);
        return rc;
    }
    case PROTO_API_LEAVE_GROUP: {
        struct proto_leave_group_req q;
        rc = proto_leave_group_req_decode(r, v, &q);
        *enc_rc = rc ? 0 : proto_leave_group_req_encode(w, v, c, h->client_id, &q);
        return rc;
    }
    case PROTO_API_LIST_GROUPS:
        rc = proto_list_groups_req_decode(r, v);
        *enc_rc = rc ? 0 : proto_list_groups_req_encode(w, v, c, h->client_id);
        return rc;
    case PROTO_API_DESCRIBE_GROUP:
        rc = proto_describe_group_req_decode(r, v, &name);
        *enc_rc = rc ? 0 : proto_describe_group_req_encode(w, v, c, h->client_id, name);
        return rc;
    case PROTO_API_DELETE_GROUP:
        rc = proto_delete_group_req_decode(r, v, &name);
        *enc_rc = rc ? 0 : proto_delete_group_req_encode(w, v, c, h->client_id, name);
        return rc;
    case PROTO_API_DLQ_REDRIVE: {
        struct proto_dlq_redrive_req q;
        rc = proto_dlq_redrive_req_decode(r, v, &q);
        *enc_rc = rc ? 0 : proto_dlq_redrive_req_encode(w, v, c, h->client_id, &q);
        return rc;
    }
    default:
        abort(); /* the header decoder let an unknown api through */
    }
}

static int recode_group_request(const struct proto_req_header *h, struct rd *r, struct wr *w,
                                int *enc_rc)
{
    switch (h->api_key) {
    case PROTO_API_JOIN_GROUP:
    case PROTO_API_OFFSET_COMMIT:
    case PROTO_API_OFFSET_FETCH:
    case PROTO_API_RESET_OFFSETS:
    case PROTO_API_SHARE_FETCH:
    case PROTO_API_SHARE_ACK: {
        struct proto_enc e;
        struct proto_dec d;
        int rc = recode_group_request_begin(h, r, w, &e, &d);
        if (rc == 0) {
            *enc_rc = recode_topics_request(h->api_key, &d, &e);
        }
        return rc;
    }
    default:
        return recode_group_request_flat(h, r, w, enc_rc);
    }
}

/* The security apis (logins, users, ACLs): their decoders run on the
 * input, every list walked to its end, without the round trip the other
 * apis get. Returns their error, or -NG_EUNKNOWN_API after a decode that
 * succeeded, so the harness asks nothing more of it. */
static bool security_api(uint16_t api)
{
    return api == PROTO_API_SASL_HANDSHAKE || api == PROTO_API_SASL_AUTHENTICATE ||
           api == PROTO_API_ALTER_USER || api == PROTO_API_DESCRIBE_USERS ||
           api == PROTO_API_CREATE_ACLS || api == PROTO_API_DESCRIBE_ACLS ||
           api == PROTO_API_DELETE_ACLS;
}

static int decode_security(uint16_t api, uint16_t v, bool response, struct rd *r)
{
    struct proto_dec d;
    struct proto_str name;
    struct proto_sasl_bytes bytes;
    struct proto_acl acl;
    int err = 0;
    int rc;
    switch (api) {
    case PROTO_API_SASL_HANDSHAKE: {
        struct proto_sasl_handshake_resp hs;
        rc = response ? proto_sasl_handshake_resp_decode(r, v, &hs)
                      : proto_sasl_handshake_req_decode(r, v, &name);
        break;
    }
    case PROTO_API_SASL_AUTHENTICATE:
        rc = response ? proto_sasl_authenticate_resp_decode(r, v, &bytes)
                      : proto_sasl_authenticate_req_decode(r, v, &bytes);
        break;
    case PROTO_API_ALTER_USER: {
        struct proto_alter_user_req u;
        rc = response ? proto_alter_user_resp_decode(r, v, &err)
                      : proto_alter_user_req_decode(r, v, &u);
        break;
    }
    case PROTO_API_DESCRIBE_USERS:
        rc = response ? proto_describe_users_resp_decode(r, v, &d)
                      : proto_describe_users_req_decode(r, v);
        if (rc == 0 && response) {
            struct proto_user_listing u;
            while (proto_describe_users_resp_next(&d, &u)) {
            }
        }
        break;
    case PROTO_API_CREATE_ACLS:
        rc = response ? proto_create_acls_resp_decode(r, v, &err)
                      : proto_create_acls_req_decode(r, v, &d);
        if (rc == 0 && !response) {
            while (proto_next_acl(&d, &acl)) {
            }
        }
        break;
    default:
        ASSERT(api == PROTO_API_DESCRIBE_ACLS || api == PROTO_API_DELETE_ACLS);
        rc = response ? proto_acl_list_resp_decode(r, api, v, &d)
                      : proto_acl_filter_req_decode(r, api, v, &acl);
        if (rc == 0 && response) {
            while (proto_next_acl(&d, &acl)) {
            }
        }
        break;
    }
    return rc != 0 ? rc : -NG_EUNKNOWN_API;
}

/* Decodes a request; on success re-encodes it into w. Returns the decode
 * error, or 0 and what the encoder returned in *enc_rc. */
static int recode_request(const uint8_t *in, size_t n, struct wr *w, int *enc_rc)
{
    struct rd r = rd_make(in, n);
    struct proto_req_header h;
    int rc = proto_req_header_decode(&r, &h);
    if (rc != 0) {
        return rc;
    }
    uint16_t v = h.api_version;
    uint32_t c = h.correlation_id;
    struct proto_enc e;
    struct proto_dec d;
    if (security_api(h.api_key)) {
        return decode_security(h.api_key, v, false, &r);
    }
    switch (h.api_key) {
    case PROTO_API_API_VERSIONS:
        rc = proto_api_versions_req_decode(&r, v);
        *enc_rc = rc ? 0 : proto_api_versions_req_encode(w, v, c, h.client_id);
        return rc;
    case PROTO_API_INIT_PRODUCER_ID:
        rc = proto_init_producer_id_req_decode(&r, v);
        *enc_rc = rc ? 0 : proto_init_producer_id_req_encode(w, v, c, h.client_id);
        return rc;
    case PROTO_API_METADATA:
    case PROTO_API_DELETE_TOPICS:
        rc = h.api_key == PROTO_API_METADATA ? proto_metadata_req_decode(&r, v, &d)
                                             : proto_delete_topics_req_decode(&r, v, &d);
        if (rc != 0) {
            return rc;
        }
        if (h.api_key == PROTO_API_METADATA) {
            proto_metadata_req_begin(&e, w, v, c, h.client_id, d.topic_count < 0);
        } else {
            proto_delete_topics_req_begin(&e, w, v, c, h.client_id);
        }
        *enc_rc = recode_topics_request(h.api_key, &d, &e);
        return 0;
    case PROTO_API_CREATE_TOPICS: {
        rc = proto_create_topics_req_decode(&r, v, &d);
        if (rc != 0) {
            return rc;
        }
        proto_create_topics_req_begin(&e, w, v, c, h.client_id);
        struct proto_create_topic t;
        while (proto_create_topics_req_next(&d, &t)) {
            proto_create_topics_req_topic(&e, &t);
        }
        *enc_rc = proto_enc_end(&e);
        return 0;
    }
    case PROTO_API_PRODUCE: {
        struct proto_produce_req req;
        rc = proto_produce_req_decode(&r, v, &req, &d);
        if (rc != 0) {
            return rc;
        }
        proto_produce_req_begin(&e, w, v, c, h.client_id, &req);
        *enc_rc = recode_topics_request(h.api_key, &d, &e);
        return 0;
    }
    case PROTO_API_FETCH: {
        struct proto_fetch_req req;
        rc = proto_fetch_req_decode(&r, v, &req, &d);
        if (rc != 0) {
            return rc;
        }
        proto_fetch_req_begin(&e, w, v, c, h.client_id, &req);
        *enc_rc = recode_topics_request(h.api_key, &d, &e);
        return 0;
    }
    case PROTO_API_LIST_OFFSETS:
        rc = proto_list_offsets_req_decode(&r, v, &d);
        if (rc != 0) {
            return rc;
        }
        proto_list_offsets_req_begin(&e, w, v, c, h.client_id);
        *enc_rc = recode_topics_request(h.api_key, &d, &e);
        return 0;
    case PROTO_API_REPLICA_FETCH: {
        struct proto_replica_fetch_req req;
        rc = proto_replica_fetch_req_decode(&r, v, &req, &d);
        if (rc != 0) {
            return rc;
        }
        proto_replica_fetch_req_begin(&e, w, v, c, h.client_id, &req);
        *enc_rc = recode_topics_request(h.api_key, &d, &e);
        return 0;
    }
    case PROTO_API_OFFSET_FOR_LEADER_EPOCH:
        rc = proto_epoch_req_decode(&r, v, &d);
        if (rc != 0) {
            return rc;
        }
        proto_epoch_req_begin(&e, w, v, c, h.client_id);
        *enc_rc = recode_topics_request(h.api_key, &d, &e);
        return 0;
    case PROTO_API_REASSIGN_PARTITIONS:
        rc = proto_reassign_req_decode(&r, v, &d);
        if (rc != 0) {
            return rc;
        }
        proto_reassign_req_begin(&e, w, v, c, h.client_id);
        *enc_rc = recode_topics_request(h.api_key, &d, &e);
        return 0;
    default:
        return recode_group_request(&h, &r, w, enc_rc);
    }
}

/* Partitions of the group and share responses. */
static void recode_group_partitions_response(uint16_t api, struct proto_dec *d, struct proto_enc *e)
{
    if (api == PROTO_API_HEARTBEAT) {
        int32_t p;
        while (proto_next_partition_index(d, &p)) {
            proto_enc_partition_index(e, p);
        }
    } else if (api == PROTO_API_OFFSET_COMMIT || api == PROTO_API_SHARE_ACK ||
               api == PROTO_API_REASSIGN_PARTITIONS) {
        struct proto_partition_result p;
        while (proto_next_partition_result(d, &p)) {
            proto_enc_partition_result(e, &p);
        }
    } else if (api == PROTO_API_OFFSET_FETCH || api == PROTO_API_RESET_OFFSETS) {
        struct proto_partition_offset p;
        while (proto_next_partition_offset(d, &p)) {
            proto_enc_partition_offset(e, &p);
        }
    } else if (api == PROTO_API_SHARE_FETCH) {
        struct proto_share_fetch_resp_partition p;
        while (proto_share_fetch_resp_next_partition(d, &p)) {
            for (uint32_t i = 0; i < p.acquired_count; i++) {
                proto_share_fetch_acquired(&p, i, &acquired_buf[i]);
            }
            p.acquired = acquired_buf;
            proto_share_fetch_resp_partition(e, &p);
        }
    }
}

static void recode_partitions_response(uint16_t api, struct proto_dec *d, struct proto_enc *e)
{
    if (api == PROTO_API_METADATA) {
        struct proto_metadata_partition p;
        while (proto_metadata_resp_next_partition(d, &p)) {
            proto_metadata_resp_partition(e, &p);
        }
    } else if (api == PROTO_API_PRODUCE) {
        struct proto_produce_resp_partition p;
        while (proto_produce_resp_next_partition(d, &p)) {
            proto_produce_resp_partition(e, &p);
        }
    } else if (api == PROTO_API_FETCH) {
        struct proto_fetch_resp_partition p;
        while (proto_fetch_resp_next_partition(d, &p)) {
            /* The zero-copy path, as the broker uses it. */
            proto_fetch_resp_partition_begin(e, &p);
            wr_bytes(e->w, p.records, p.records_bytes);
            proto_fetch_resp_partition_end(e);
        }
    } else if (api == PROTO_API_LIST_OFFSETS) {
        struct proto_list_offsets_resp_partition p;
        while (proto_list_offsets_resp_next_partition(d, &p)) {
            proto_list_offsets_resp_partition(e, &p);
        }
    } else if (api == PROTO_API_REPLICA_FETCH) {
        struct proto_replica_fetch_resp_partition p;
        while (proto_replica_fetch_resp_next_partition(d, &p)) {
            /* The zero-copy path, as the broker uses it. */
            proto_replica_fetch_resp_partition_begin(e, &p);
            wr_bytes(e->w, p.records, p.records_bytes);
            proto_fetch_resp_partition_end(e);
        }
    } else if (api == PROTO_API_OFFSET_FOR_LEADER_EPOCH) {
        struct proto_epoch_resp_partition p;
        while (proto_epoch_resp_next_partition(d, &p)) {
            proto_epoch_resp_partition(e, &p);
        }
    } else {
        recode_group_partitions_response(api, d, e);
    }
}

static void recode_topics_response_parts(uint16_t api, struct proto_dec *d, struct proto_enc *e)
{
    struct proto_topic t;
    while (proto_next_topic(d, &t)) {
        if (api == PROTO_API_METADATA) {
            proto_metadata_resp_topic_config(e, t.name, t.err, &t.config);
        } else {
            proto_enc_topic(e, t.name);
        }
        recode_partitions_response(api, d, e);
    }
}

static int recode_topics_response(uint16_t api, struct proto_dec *d, struct proto_enc *e)
{
    recode_topics_response_parts(api, d, e);
    return proto_enc_end(e);
}

static int recode_describe_group(uint16_t v, uint32_t c, struct rd *r, struct wr *w, int *enc_rc)
{
    struct proto_enc e;
    struct proto_dec d;
    struct proto_describe_group_resp out;
    int rc = proto_describe_group_resp_decode(r, v, &out, &d);
    if (rc != 0) {
        return rc;
    }
    proto_describe_group_resp_begin(&e, w, v, c, &out);
    struct proto_group_member_desc m;
    struct proto_topic t;
    while (proto_describe_group_resp_next_member(&d, &m)) {
        proto_describe_group_resp_member(&e, m.member_id);
        recode_topics_response_parts(PROTO_API_HEARTBEAT, &d, &e); /* bare indexes */
    }
    proto_describe_group_resp_seek_offsets(&d);
    proto_describe_group_resp_offsets(&e);
    while (proto_next_topic(&d, &t)) {
        proto_enc_topic(&e, t.name);
        struct proto_group_offset_desc o;
        while (proto_describe_group_resp_next_offset(&d, &o)) {
            proto_describe_group_resp_offset(&e, &o);
        }
    }
    *enc_rc = proto_enc_end(&e);
    return 0;
}

/* The group and share responses without topics; -1 for the others. */
static int recode_group_flat(uint16_t api, uint16_t v, uint32_t c, struct rd *r, struct wr *w,
                             int *enc_rc)
{
    int rc;
    int err;
    switch (api) {
    case PROTO_API_JOIN_GROUP: {
        struct proto_join_group_resp out;
        rc = proto_join_group_resp_decode(r, v, &out);
        *enc_rc = rc ? 0 : proto_join_group_resp_encode(w, v, c, &out);
        return rc;
    }
    case PROTO_API_LEAVE_GROUP:
        rc = proto_leave_group_resp_decode(r, v, &err);
        *enc_rc = rc ? 0 : proto_leave_group_resp_encode(w, v, c, err);
        return rc;
    case PROTO_API_DELETE_GROUP:
        rc = proto_delete_group_resp_decode(r, v, &err);
        *enc_rc = rc ? 0 : proto_delete_group_resp_encode(w, v, c, err);
        return rc;
    case PROTO_API_DLQ_REDRIVE: {
        struct proto_dlq_redrive_resp out;
        rc = proto_dlq_redrive_resp_decode(r, v, &out);
        *enc_rc = rc ? 0 : proto_dlq_redrive_resp_encode(w, v, c, &out);
        return rc;
    }
    case PROTO_API_LIST_GROUPS: {
        struct proto_enc e;
        struct proto_dec d;
        if ((rc = proto_list_groups_resp_decode(r, v, &d)) != 0) {
            return rc;
        }
        proto_list_groups_resp_begin(&e, w, v, c);
        struct proto_group_listing g;
        while (proto_list_groups_resp_next(&d, &g)) {
            proto_list_groups_resp_group(&e, &g);
        }
        *enc_rc = proto_enc_end(&e);
        return 0;
    }
    case PROTO_API_DESCRIBE_GROUP:
        return recode_describe_group(v, c, r, w, enc_rc);
    default:
        return 1;
    }
}

/* The group and share responses. */
static int recode_group_body(uint16_t api, uint16_t v, uint32_t c, struct rd *r, struct wr *w,
                             int *enc_rc)
{
    int rc = recode_group_flat(api, v, c, r, w, enc_rc);
    if (rc <= 0) {
        return rc;
    }
    struct proto_enc e;
    struct proto_dec d;
    int err;
    if (api == PROTO_API_HEARTBEAT) {
        struct proto_heartbeat_resp out;
        if ((rc = proto_heartbeat_resp_decode(r, v, &out, &d)) == 0) {
            proto_heartbeat_resp_begin(&e, w, v, c, &out);
        }
    } else if (api == PROTO_API_OFFSET_COMMIT || api == PROTO_API_SHARE_ACK) {
        bool commit = api == PROTO_API_OFFSET_COMMIT;
        rc = commit ? proto_offset_commit_resp_decode(r, v, &d)
                    : proto_share_ack_resp_decode(r, v, &d);
        if (rc == 0 && commit) {
            proto_offset_commit_resp_begin(&e, w, v, c);
        } else if (rc == 0) {
            proto_share_ack_resp_begin(&e, w, v, c);
        }
    } else if (api == PROTO_API_OFFSET_FETCH) {
        if ((rc = proto_offset_fetch_resp_decode(r, v, &d)) == 0) {
            proto_offset_fetch_resp_begin(&e, w, v, c);
        }
    } else if (api == PROTO_API_RESET_OFFSETS) {
        if ((rc = proto_reset_offsets_resp_decode(r, v, &err, &d)) == 0) {
            proto_reset_offsets_resp_begin(&e, w, v, c, err);
        }
    } else {
        struct proto_share_fetch_resp out;
        ASSERT(api == PROTO_API_SHARE_FETCH);
        if ((rc = proto_share_fetch_resp_decode(r, v, &out, &d)) == 0) {
            proto_share_fetch_resp_begin(&e, w, v, c, &out);
        }
    }
    if (rc == 0) {
        *enc_rc = recode_topics_response(api, &d, &e);
    }
    return rc;
}

/* Decodes a response body of api at version v. */
static int recode_body(uint16_t api, uint16_t v, uint32_t c, struct rd *r, struct wr *w,
                       int *enc_rc)
{
    struct proto_enc e;
    struct proto_dec d;
    int rc;
    switch (api) {
    case PROTO_API_API_VERSIONS: {
        struct proto_api_versions_resp av;
        rc = proto_api_versions_resp_decode(r, v, &av);
        *enc_rc = rc ? 0 : proto_api_versions_resp_encode(w, v, c, &av);
        return rc;
    }
    case PROTO_API_INIT_PRODUCER_ID: {
        struct proto_init_producer_id_resp ip;
        rc = proto_init_producer_id_resp_decode(r, v, &ip);
        *enc_rc = rc ? 0 : proto_init_producer_id_resp_encode(w, v, c, &ip);
        return rc;
    }
    case PROTO_API_CREATE_TOPICS:
    case PROTO_API_DELETE_TOPICS: {
        bool create = api == PROTO_API_CREATE_TOPICS;
        rc = create ? proto_create_topics_resp_decode(r, v, &d)
                    : proto_delete_topics_resp_decode(r, v, &d);
        if (rc != 0) {
            return rc;
        }
        if (create) {
            proto_create_topics_resp_begin(&e, w, v, c);
        } else {
            proto_delete_topics_resp_begin(&e, w, v, c);
        }
        struct proto_topic_result tr;
        while (proto_next_topic_result(&d, &tr)) {
            proto_enc_topic_result(&e, &tr);
        }
        *enc_rc = proto_enc_end(&e);
        return 0;
    }
    case PROTO_API_METADATA: {
        struct proto_metadata_resp m;
        rc = proto_metadata_resp_decode(r, v, &m, &d);
        if (rc != 0) {
            return rc;
        }
        proto_metadata_resp_begin(&e, w, v, c, &m);
        struct proto_broker b;
        while (proto_metadata_resp_next_broker(&m, &b)) {
            proto_metadata_resp_broker(&e, &b);
        }
        break;
    }
    case PROTO_API_PRODUCE:
        if ((rc = proto_produce_resp_decode(r, v, &d)) != 0) {
            return rc;
        }
        proto_produce_resp_begin(&e, w, v, c);
        break;
    case PROTO_API_FETCH:
        if ((rc = proto_fetch_resp_decode(r, v, &d)) != 0) {
            return rc;
        }
        proto_fetch_resp_begin(&e, w, v, c);
        break;
    case PROTO_API_LIST_OFFSETS:
        if ((rc = proto_list_offsets_resp_decode(r, v, &d)) != 0) {
            return rc;
        }
        proto_list_offsets_resp_begin(&e, w, v, c);
        break;
    case PROTO_API_REPLICA_FETCH:
        if ((rc = proto_replica_fetch_resp_decode(r, 0, &d)) != 0) {
            return rc;
        }
        proto_replica_fetch_resp_begin(&e, w, 0, c);
        break;
    case PROTO_API_OFFSET_FOR_LEADER_EPOCH:
        if ((rc = proto_epoch_resp_decode(r, 0, &d)) != 0) {
            return rc;
        }
        proto_epoch_resp_begin(&e, w, 0, c);
        break;
    case PROTO_API_REASSIGN_PARTITIONS:
        if ((rc = proto_reassign_resp_decode(r, v, &d)) != 0) {
            return rc;
        }
        proto_reassign_resp_begin(&e, w, v, c);
        break;
    default:
        return recode_group_body(api, v, c, r, w, enc_rc);
    }
    *enc_rc = recode_topics_response(api, &d, &e);
    return 0;
}

static int recode_response(uint16_t api, uint16_t version, const uint8_t *in, size_t n,
                           struct wr *w, int *enc_rc)
{
    struct rd r = rd_make(in, n);
    struct proto_resp_header h;
    int rc = proto_resp_header_decode(&r, &h);
    if (rc != 0) {
        return rc;
    }
    if (h.err != 0) {
        *enc_rc = proto_resp_error_encode(w, h.correlation_id, h.err);
        return 0;
    }
    if (!proto_api_known(api)) {
        return -NG_EUNKNOWN_API; /* no layout to decode against */
    }
    if (security_api(api)) {
        return decode_security(api, version, true, &r);
    }
    return recode_body(api, version, h.correlation_id, &r, w, enc_rc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    uint8_t sel = data[0];
    size_t n = size - 1;
    uint8_t *in = malloc(n + 1); /* +1: never malloc(0) */
    uint8_t *out = malloc(n + PROTO_FRAME_PREFIX_BYTES);
    ASSERT(in != NULL && out != NULL);
    memcpy(in, data + 1, n);

    if (n >= PROTO_FRAME_PREFIX_BYTES) {
        uint32_t len;
        (void)!proto_request_frame_len(in, PROTO_FRAME_BYTES_DEFAULT, &len);
        (void)!proto_response_frame_len(in, PROTO_FRAME_BYTES_MIN, &len);
    }

    struct wr w = wr_make(out, n + PROTO_FRAME_PREFIX_BYTES);
    int enc_rc = -1;
    int rc = (sel & FUZZ_SELECT_RESPONSE)
                 ? recode_response((uint16_t)((sel & 0x7fu) % PROTO_API_COUNT),
                                   (uint16_t)((sel & 0x7fu) / PROTO_API_COUNT), in, n, &w, &enc_rc)
                 : recode_request(in, n, &w, &enc_rc);
    if (rc == 0) {
        /* What decoded must encode, to the same bytes. */
        ASSERT(enc_rc == 0);
        ASSERT(w.pos == n + PROTO_FRAME_PREFIX_BYTES);
        ASSERT(get_be32(out) == n);
        ASSERT(memcmp(out + PROTO_FRAME_PREFIX_BYTES, in, n) == 0);
    } else {
        ASSERT(rc < 0);
    }
    free(in);
    free(out);
    return 0;
}
