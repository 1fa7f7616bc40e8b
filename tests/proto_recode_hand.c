/*
 * tests/proto_recode_hand.c — the recoders of the messages net/proto.def
 * marks "hand" (net/proto_recode.h); the generated proto_recode() calls
 * proto_recode_hand() for them. Linked by fuzz/fuzz_proto.c and
 * tests/test_proto_def.c.
 */
#include "net/proto_recode.h"

/* Ranges of one partition, decoded into arrays to be encoded again. */
static struct proto_share_acquired acquired_buf[PROTO_SHARE_RANGES_MAX];
static struct proto_share_ack acks_buf[PROTO_SHARE_RANGES_MAX];

static void recode_index_partitions(struct proto_dec *d, struct proto_enc *e)
{
    int32_t p;
    while (proto_next_partition_index(d, &p)) {
        proto_enc_partition_index(e, p);
    }
}

/* ShareAck: its acks read by index and written from an array. */
static int recode_share_ack_req(uint16_t v, uint32_t c, struct proto_str cid, struct rd *r,
                                struct wr *w, int *enc_rc)
{
    struct proto_dec d;
    struct proto_enc e;
    struct proto_share_ack_req q;
    int rc = proto_share_ack_req_decode(r, v, &q, &d);
    if (rc != 0) {
        return rc;
    }
    proto_share_ack_req_begin(&e, w, v, c, cid, &q);
    struct proto_topic t;
    while (proto_next_topic(&d, &t)) {
        proto_enc_topic(&e, t.name);
        struct proto_share_ack_req_partition p;
        while (proto_share_ack_req_next_partition(&d, &p)) {
            for (uint32_t i = 0; i < p.ack_count; i++) {
                proto_share_ack_at(&p, i, &acks_buf[i]);
            }
            p.acks = acks_buf;
            proto_share_ack_req_partition(&e, &p);
        }
    }
    *enc_rc = proto_enc_end(&e);
    return 0;
}

/* The security apis: logins, users, ACLs. */
static int recode_security_req(uint16_t api, uint16_t v, uint32_t c, struct proto_str cid,
                               struct rd *r, struct wr *w, int *enc_rc)
{
    int rc;
    if (api == PROTO_API_SASL_AUTHENTICATE) {
        struct proto_sasl_bytes b;
        if ((rc = proto_sasl_authenticate_req_decode(r, v, &b)) == 0) {
            *enc_rc = proto_sasl_authenticate_req_encode(w, v, c, cid, &b);
        }
    } else if (api == PROTO_API_ALTER_USER) {
        struct proto_alter_user_req u;
        if ((rc = proto_alter_user_req_decode(r, v, &u)) == 0) {
            *enc_rc = proto_alter_user_req_encode(w, v, c, cid, &u);
        }
    } else if (api == PROTO_API_CREATE_ACLS) {
        struct proto_dec d;
        struct proto_enc e;
        if ((rc = proto_create_acls_req_decode(r, v, &d)) == 0) {
            proto_create_acls_req_begin(&e, w, v, c, cid);
            struct proto_acl a;
            while (proto_next_acl(&d, &a)) {
                proto_enc_acl(&e, &a);
            }
            *enc_rc = proto_enc_end(&e);
        }
    } else {
        struct proto_acl filter;
        if ((rc = proto_acl_filter_req_decode(r, api, v, &filter)) == 0) {
            *enc_rc = proto_acl_filter_req_encode(w, api, v, c, cid, &filter);
        }
    }
    return rc;
}

static int recode_security_resp(uint16_t api, uint16_t v, uint32_t c, struct rd *r, struct wr *w,
                                int *enc_rc)
{
    int rc;
    if (api == PROTO_API_SASL_AUTHENTICATE) {
        struct proto_sasl_bytes b;
        if ((rc = proto_sasl_authenticate_resp_decode(r, v, &b)) == 0) {
            *enc_rc = proto_sasl_authenticate_resp_encode(w, v, c, &b);
        }
        return rc;
    }
    struct proto_dec d;
    struct proto_enc e;
    if ((rc = proto_acl_list_resp_decode(r, api, v, &d)) == 0) {
        proto_acl_list_resp_begin(&e, w, api, v, c);
        struct proto_acl a;
        while (proto_next_acl(&d, &a)) {
            proto_enc_acl(&e, &a);
        }
        *enc_rc = proto_enc_end(&e);
    }
    return rc;
}

static bool security_api(uint16_t api)
{
    return api == PROTO_API_SASL_AUTHENTICATE || api == PROTO_API_ALTER_USER ||
           api == PROTO_API_CREATE_ACLS || api == PROTO_API_DESCRIBE_ACLS ||
           api == PROTO_API_DELETE_ACLS;
}

/* Responses. */
static int recode_api_versions_resp(uint16_t v, uint32_t c, struct rd *r, struct wr *w, int *enc_rc)
{
    struct proto_api_versions_resp av;
    int rc = proto_api_versions_resp_decode(r, v, &av);
    if (rc == 0) {
        *enc_rc = proto_api_versions_resp_encode(w, v, c, &av);
    }
    return rc;
}

static void recode_metadata_parts(struct proto_dec *d, struct proto_enc *e)
{
    struct proto_topic t;
    while (proto_next_topic(d, &t)) {
        proto_metadata_resp_topic_config(e, t.name, t.err, &t.config);
        struct proto_metadata_partition p;
        while (proto_metadata_resp_next_partition(d, &p)) {
            proto_metadata_resp_partition(e, &p);
        }
    }
}

static int recode_metadata_resp(uint16_t v, uint32_t c, struct rd *r, struct wr *w, int *enc_rc)
{
    struct proto_dec d;
    struct proto_enc e;
    struct proto_metadata_resp m;
    int rc = proto_metadata_resp_decode(r, v, &m, &d);
    if (rc != 0) {
        return rc;
    }
    proto_metadata_resp_begin(&e, w, v, c, &m);
    struct proto_broker b;
    while (proto_metadata_resp_next_broker(&m, &b)) {
        proto_metadata_resp_broker(&e, &b);
    }
    recode_metadata_parts(&d, &e);
    *enc_rc = proto_enc_end(&e);
    return 0;
}

/* Fetch and ReplicaFetch: the zero-copy path, as the broker uses it. */
static void recode_records_parts(uint16_t api, struct proto_dec *d, struct proto_enc *e)
{
    struct proto_topic t;
    while (proto_next_topic(d, &t)) {
        proto_enc_topic(e, t.name);
        if (api == PROTO_API_FETCH) {
            struct proto_fetch_resp_partition p;
            while (proto_fetch_resp_next_partition(d, &p)) {
                proto_fetch_resp_partition_begin(e, &p);
                wr_bytes(e->w, p.records, p.records_bytes);
                proto_fetch_resp_partition_end(e);
            }
        } else if (api == PROTO_API_REPLICA_FETCH) {
            struct proto_replica_fetch_resp_partition p;
            while (proto_replica_fetch_resp_next_partition(d, &p)) {
                proto_replica_fetch_resp_partition_begin(e, &p);
                wr_bytes(e->w, p.records, p.records_bytes);
                proto_fetch_resp_partition_end(e);
            }
        } else {
            struct proto_share_fetch_resp_partition p;
            ASSERT(api == PROTO_API_SHARE_FETCH);
            while (proto_share_fetch_resp_next_partition(d, &p)) {
                for (uint32_t i = 0; i < p.acquired_count; i++) {
                    proto_share_fetch_acquired(&p, i, &acquired_buf[i]);
                }
                p.acquired = acquired_buf;
                proto_share_fetch_resp_partition(e, &p);
            }
        }
    }
}

static int recode_records_resp(uint16_t api, uint16_t v, uint32_t c, struct rd *r, struct wr *w,
                               int *enc_rc)
{
    struct proto_dec d;
    struct proto_enc e;
    int rc;
    if (api == PROTO_API_FETCH) {
        if ((rc = proto_fetch_resp_decode(r, v, &d)) == 0) {
            proto_fetch_resp_begin(&e, w, v, c);
        }
    } else if (api == PROTO_API_REPLICA_FETCH) {
        if ((rc = proto_replica_fetch_resp_decode(r, v, &d)) == 0) {
            proto_replica_fetch_resp_begin(&e, w, v, c);
        }
    } else {
        struct proto_share_fetch_resp out;
        if ((rc = proto_share_fetch_resp_decode(r, v, &out, &d)) == 0) {
            proto_share_fetch_resp_begin(&e, w, v, c, &out);
        }
    }
    if (rc == 0) {
        recode_records_parts(api, &d, &e);
        *enc_rc = proto_enc_end(&e);
    }
    return rc;
}

static int recode_describe_group_resp(uint16_t v, uint32_t c, struct rd *r, struct wr *w,
                                      int *enc_rc)
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
        while (proto_next_topic(&d, &t)) {
            proto_enc_topic(&e, t.name);
            recode_index_partitions(&d, &e);
        }
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

static int recode_response(uint16_t api, uint16_t v, uint32_t c, struct rd *r, struct wr *w,
                           int *enc_rc)
{
    switch (api) {
    case PROTO_API_API_VERSIONS:
        return recode_api_versions_resp(v, c, r, w, enc_rc);
    case PROTO_API_METADATA:
        return recode_metadata_resp(v, c, r, w, enc_rc);
    case PROTO_API_DESCRIBE_GROUP:
        return recode_describe_group_resp(v, c, r, w, enc_rc);
    default:
        return recode_records_resp(api, v, c, r, w, enc_rc);
    }
}

int proto_recode_hand(uint16_t api_key, uint16_t version, bool response, uint32_t correlation_id,
                      struct proto_str client_id, struct rd *body, struct wr *w, int *enc_rc)
{
    if (security_api(api_key)) {
        return response ? recode_security_resp(api_key, version, correlation_id, body, w, enc_rc)
                        : recode_security_req(api_key, version, correlation_id, client_id, body, w,
                                              enc_rc);
    }
    if (response) {
        return recode_response(api_key, version, correlation_id, body, w, enc_rc);
    }
    ASSERT(api_key == PROTO_API_SHARE_ACK);
    return recode_share_ack_req(version, correlation_id, client_id, body, w, enc_rc);
}
