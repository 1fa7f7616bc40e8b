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

/* Reads one partition of a group or share message; false past the last
 * (and for messages whose topics have no partitions). */
static bool next_group_partition(struct proto_dec *d, int api, bool response)
{
    int32_t index;
    struct proto_partition_result pr;
    struct proto_partition_offset po;
    if ((api == PROTO_API_HEARTBEAT && response) ||
        (!response && (api == PROTO_API_OFFSET_FETCH || api == PROTO_API_RESET_OFFSETS ||
                       api == PROTO_API_SHARE_FETCH))) {
        return proto_next_partition_index(d, &index);
    }
    if (response && (api == PROTO_API_OFFSET_COMMIT || api == PROTO_API_SHARE_ACK)) {
        return proto_next_partition_result(d, &pr);
    }
    if (response && (api == PROTO_API_OFFSET_FETCH || api == PROTO_API_RESET_OFFSETS)) {
        return proto_next_partition_offset(d, &po);
    }
    if (api == PROTO_API_OFFSET_COMMIT) {
        struct proto_offset_commit_req_partition p;
        return proto_offset_commit_req_next_partition(d, &p);
    }
    if (api == PROTO_API_SHARE_FETCH) {
        struct proto_share_fetch_resp_partition p;
        struct proto_share_acquired a;
        bool more = proto_share_fetch_resp_next_partition(d, &p);
        for (uint32_t i = 0; more && i < p.acquired_count; i++) {
            proto_share_fetch_acquired(&p, i, &a);
        }
        return more;
    }
    if (api == PROTO_API_SHARE_ACK) {
        struct proto_share_ack_req_partition p;
        struct proto_share_ack a;
        bool more = proto_share_ack_req_next_partition(d, &p);
        for (uint32_t i = 0; more && i < p.ack_count; i++) {
            proto_share_ack_at(&p, i, &a);
        }
        return more;
    }
    return false;
}

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
            } else if (api == PROTO_API_REPLICA_FETCH && !response) {
                struct proto_replica_fetch_req_partition p;
                more = proto_replica_fetch_req_next_partition(d, &p);
            } else if (api == PROTO_API_REPLICA_FETCH) {
                struct proto_replica_fetch_resp_partition p;
                more = proto_replica_fetch_resp_next_partition(d, &p);
            } else if (api == PROTO_API_OFFSET_FOR_LEADER_EPOCH && !response) {
                struct proto_epoch_req_partition p;
                more = proto_epoch_req_next_partition(d, &p);
            } else if (api == PROTO_API_OFFSET_FOR_LEADER_EPOCH) {
                struct proto_epoch_resp_partition p;
                more = proto_epoch_resp_next_partition(d, &p);
            } else if (api == PROTO_API_REASSIGN_PARTITIONS && !response) {
                struct proto_reassign_partition p;
                more = proto_reassign_req_next_partition(d, &p);
            } else if (api == PROTO_API_REASSIGN_PARTITIONS) {
                struct proto_partition_result p;
                more = proto_next_partition_result(d, &p);
            } else {
                more = next_group_partition(d, api, response);
            }
            if (!more) {
                break;
            }
        }
    }
}

/* ACLs: an allow on a topic prefix, a deny on a group. */
static const struct proto_acl sample_acls[] = {
    {PROTO_ACL_RESOURCE_TOPIC,
     PROTO_ACL_PATTERN_PREFIXED,
     {"orders", 6},
     {"User:alice", 10},
     {"*", 1},
     PROTO_ACL_OP_WRITE,
     PROTO_ACL_PERMISSION_ALLOW},
    {PROTO_ACL_RESOURCE_GROUP,
     PROTO_ACL_PATTERN_LITERAL,
     {"g", 1},
     {"User:*", 6},
     {"10.0.0.1", 8},
     PROTO_ACL_OP_READ,
     PROTO_ACL_PERMISSION_DENY},
};

/* Requests and responses of the ACL apis. */
static int sample_acl_message(int api, bool response, struct wr *w)
{
    struct proto_enc e;
    if (!response && api == PROTO_API_CREATE_ACLS) {
        proto_create_acls_req_begin(&e, w, 0, 7, CID);
        proto_enc_acl(&e, &sample_acls[0]);
        proto_enc_acl(&e, &sample_acls[1]);
        return proto_enc_end(&e);
    }
    if (response && api == PROTO_API_CREATE_ACLS) {
        return proto_create_acls_resp_encode(w, 0, 9, -NG_EBADARG);
    }
    if (!response) {
        struct proto_acl f = {PROTO_ACL_RESOURCE_ANY,  PROTO_ACL_PATTERN_MATCH, {"orders-1", 8},
                              PROTO_STR_NULL,          PROTO_STR_NULL,          PROTO_ACL_OP_ANY,
                              PROTO_ACL_PERMISSION_ANY};
        return proto_acl_filter_req_encode(w, (uint16_t)api, 0, 7, CID, &f);
    }
    proto_acl_list_resp_begin(&e, w, (uint16_t)api, 0, 9);
    proto_enc_acl(&e, &sample_acls[0]);
    proto_enc_acl(&e, &sample_acls[1]);
    return proto_enc_end(&e);
}

/* Decodes an ACL api's message entirely. */
static int decode_acl_message(int api, bool response, struct rd *r)
{
    struct proto_dec d;
    struct proto_acl a;
    int rc;
    if (response && api == PROTO_API_CREATE_ACLS) {
        int err;
        return proto_create_acls_resp_decode(r, 0, &err);
    }
    if (!response && api != PROTO_API_CREATE_ACLS) {
        return proto_acl_filter_req_decode(r, (uint16_t)api, 0, &a);
    }
    rc = response ? proto_acl_list_resp_decode(r, (uint16_t)api, 0, &d)
                  : proto_create_acls_req_decode(r, 0, &d);
    while (rc == 0 && proto_next_acl(&d, &a)) {
    }
    return rc;
}

static bool acl_api(int api)
{
    return api == PROTO_API_CREATE_ACLS || api == PROTO_API_DESCRIBE_ACLS ||
           api == PROTO_API_DELETE_ACLS;
}

/* The group and share apis' request bodies, decoded entirely. */
static int decode_group_request(const struct proto_req_header *h, struct rd *r)
{
    uint16_t v = h->api_version;
    struct proto_dec d;
    struct proto_str name;
    int rc;
    switch (h->api_key) {
    case PROTO_API_JOIN_GROUP: {
        struct proto_join_group_req req;
        rc = proto_join_group_req_decode(r, v, &req, &d);
        break;
    }
    case PROTO_API_HEARTBEAT: {
        struct proto_heartbeat_req req;
        return proto_heartbeat_req_decode(r, v, &req);
    }
    case PROTO_API_LEAVE_GROUP: {
        struct proto_leave_group_req req;
        return proto_leave_group_req_decode(r, v, &req);
    }
    case PROTO_API_OFFSET_COMMIT: {
        struct proto_offset_commit_req req;
        rc = proto_offset_commit_req_decode(r, v, &req, &d);
        break;
    }
    case PROTO_API_OFFSET_FETCH:
        rc = proto_offset_fetch_req_decode(r, v, &name, &d);
        break;
    case PROTO_API_LIST_GROUPS:
        return proto_list_groups_req_decode(r, v);
    case PROTO_API_DESCRIBE_GROUP:
        return proto_describe_group_req_decode(r, v, &name);
    case PROTO_API_DELETE_GROUP:
        return proto_delete_group_req_decode(r, v, &name);
    case PROTO_API_RESET_OFFSETS: {
        struct proto_reset_offsets_req req;
        rc = proto_reset_offsets_req_decode(r, v, &req, &d);
        break;
    }
    case PROTO_API_SHARE_FETCH: {
        struct proto_share_fetch_req req;
        rc = proto_share_fetch_req_decode(r, v, &req, &d);
        break;
    }
    case PROTO_API_SHARE_ACK: {
        struct proto_share_ack_req req;
        rc = proto_share_ack_req_decode(r, v, &req, &d);
        break;
    }
    case PROTO_API_DLQ_REDRIVE: {
        struct proto_dlq_redrive_req req;
        return proto_dlq_redrive_req_decode(r, v, &req);
    }
    default:
        cr_assert_fail("header decode let api %u through", h->api_key);
    }
    if (rc == 0) {
        drain_topics(&d, h->api_key, false);
    }
    return rc;
}

/* Reads a whole DescribeGroup response body: members, then offsets. */
static int decode_describe_group(struct rd *r)
{
    struct proto_describe_group_resp out;
    struct proto_dec d;
    int rc = proto_describe_group_resp_decode(r, 0, &out, &d);
    if (rc != 0) {
        return rc;
    }
    struct proto_group_member_desc m;
    while (proto_describe_group_resp_next_member(&d, &m)) {
        drain_topics(&d, PROTO_API_HEARTBEAT, true); /* topics of bare indexes */
    }
    proto_describe_group_resp_seek_offsets(&d);
    struct proto_topic t;
    struct proto_group_offset_desc o;
    while (proto_next_topic(&d, &t)) {
        while (proto_describe_group_resp_next_offset(&d, &o)) {
        }
    }
    return 0;
}

/* The group and share apis' response bodies, decoded entirely. */
static int decode_group_response(int api, struct rd *r)
{
    struct proto_dec d;
    int err;
    int rc;
    switch (api) {
    case PROTO_API_JOIN_GROUP: {
        struct proto_join_group_resp out;
        return proto_join_group_resp_decode(r, 0, &out);
    }
    case PROTO_API_HEARTBEAT: {
        struct proto_heartbeat_resp out;
        rc = proto_heartbeat_resp_decode(r, 0, &out, &d);
        break;
    }
    case PROTO_API_LEAVE_GROUP:
        return proto_leave_group_resp_decode(r, 0, &err);
    case PROTO_API_OFFSET_COMMIT:
        rc = proto_offset_commit_resp_decode(r, 0, &d);
        break;
    case PROTO_API_OFFSET_FETCH:
        rc = proto_offset_fetch_resp_decode(r, 0, &d);
        break;
    case PROTO_API_LIST_GROUPS: {
        rc = proto_list_groups_resp_decode(r, 0, &d);
        struct proto_group_listing g;
        while (rc == 0 && proto_list_groups_resp_next(&d, &g)) {
        }
        return rc;
    }
    case PROTO_API_DESCRIBE_GROUP:
        return decode_describe_group(r);
    case PROTO_API_DELETE_GROUP:
        return proto_delete_group_resp_decode(r, 0, &err);
    case PROTO_API_RESET_OFFSETS:
        rc = proto_reset_offsets_resp_decode(r, 0, &err, &d);
        break;
    case PROTO_API_SHARE_FETCH: {
        struct proto_share_fetch_resp out;
        rc = proto_share_fetch_resp_decode(r, 0, &out, &d);
        break;
    }
    case PROTO_API_SHARE_ACK:
        rc = proto_share_ack_resp_decode(r, 0, &d);
        break;
    case PROTO_API_DLQ_REDRIVE: {
        struct proto_dlq_redrive_resp out;
        return proto_dlq_redrive_resp_decode(r, 0, &out);
    }
    default:
        cr_assert_fail("bad api");
    }
    if (rc == 0) {
        drain_topics(&d, api, true);
    }
    return rc;
}

/* ---- authentication and users (keys 26-29) ---- */

static const uint8_t sample_salt[16] = {1, 2, 3};
static const uint8_t sample_key[32] = {4, 5, 6};

static int sample_auth_request(int api, struct wr *w)
{
    struct proto_sasl_bytes b = {.bytes = (const uint8_t *)"n,,n=user,r=abc", .len = 15};
    struct proto_alter_user_req u = {
        .op = PROTO_USER_UPSERT,
        .mechanism = 0,
        .iterations = 4096,
        .user = proto_str_make("alice"),
        .salt = {.bytes = sample_salt, .len = sizeof sample_salt},
        .stored_key = {.bytes = sample_key, .len = sizeof sample_key},
        .server_key = {.bytes = sample_key, .len = sizeof sample_key},
    };
    switch (api) {
    case PROTO_API_SASL_HANDSHAKE:
        return proto_sasl_handshake_req_encode(w, 0, 7, CID, proto_str_make("SCRAM-SHA-256"));
    case PROTO_API_SASL_AUTHENTICATE:
        return proto_sasl_authenticate_req_encode(w, 0, 7, CID, &b);
    case PROTO_API_ALTER_USER:
        return proto_alter_user_req_encode(w, 0, 7, CID, &u);
    default:
        return proto_describe_users_req_encode(w, 0, 7, CID);
    }
}

static int sample_auth_response(int api, struct wr *w)
{
    struct proto_sasl_bytes b = {.bytes = (const uint8_t *)"r=abcdef,s=AQID,i=4096", .len = 22};
    struct proto_enc e;
    switch (api) {
    case PROTO_API_SASL_HANDSHAKE:
        return proto_sasl_handshake_resp_encode(
            w, 0, 9,
            &(struct proto_sasl_handshake_resp){0, proto_str_make("SCRAM-SHA-256,SCRAM-SHA-512")});
    case PROTO_API_SASL_AUTHENTICATE:
        return proto_sasl_authenticate_resp_encode(w, 0, 9, &b);
    case PROTO_API_ALTER_USER:
        return proto_alter_user_resp_encode(w, 0, 9, -NG_ENOTFOUND);
    default:
        proto_describe_users_resp_begin(&e, w, 0, 9);
        proto_describe_users_resp_user(&e, &(struct proto_user_listing){proto_str_make("a"), 3});
        proto_describe_users_resp_user(&e, &(struct proto_user_listing){proto_str_make("bb"), 2});
        return proto_enc_end(&e);
    }
}

static int decode_auth_request(const struct proto_req_header *h, struct rd *r)
{
    struct proto_str mech;
    struct proto_sasl_bytes b;
    struct proto_alter_user_req u;
    switch (h->api_key) {
    case PROTO_API_SASL_HANDSHAKE:
        return proto_sasl_handshake_req_decode(r, h->api_version, &mech);
    case PROTO_API_SASL_AUTHENTICATE:
        return proto_sasl_authenticate_req_decode(r, h->api_version, &b);
    case PROTO_API_ALTER_USER:
        return proto_alter_user_req_decode(r, h->api_version, &u);
    default:
        return proto_describe_users_req_decode(r, h->api_version);
    }
}

static int decode_auth_response(int api, struct rd *r)
{
    struct proto_sasl_handshake_resp hs;
    struct proto_sasl_bytes b;
    struct proto_dec d;
    struct proto_user_listing u;
    int err = 0;
    int rc = 0;
    switch (api) {
    case PROTO_API_SASL_HANDSHAKE:
        return proto_sasl_handshake_resp_decode(r, 0, &hs);
    case PROTO_API_SASL_AUTHENTICATE:
        return proto_sasl_authenticate_resp_decode(r, 0, &b);
    case PROTO_API_ALTER_USER:
        return proto_alter_user_resp_decode(r, 0, &err);
    default:
        rc = proto_describe_users_resp_decode(r, 0, &d);
        while (rc == 0 && proto_describe_users_resp_next(&d, &u)) {
        }
        return rc;
    }
}

static bool auth_api(int api)
{
    return api >= PROTO_API_SASL_HANDSHAKE && api <= PROTO_API_DESCRIBE_USERS;
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
    case PROTO_API_REPLICA_FETCH: {
        struct proto_replica_fetch_req req;
        rc = proto_replica_fetch_req_decode(&r, h.api_version, &req, &d);
        break;
    }
    case PROTO_API_OFFSET_FOR_LEADER_EPOCH:
        rc = proto_epoch_req_decode(&r, h.api_version, &d);
        break;
    case PROTO_API_REASSIGN_PARTITIONS:
        rc = proto_reassign_req_decode(&r, h.api_version, &d);
        break;
    default:
        return acl_api(h.api_key)    ? decode_acl_message(h.api_key, false, &r)
               : auth_api(h.api_key) ? decode_auth_request(&h, &r)
                                     : decode_group_request(&h, &r);
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
    case PROTO_API_REPLICA_FETCH:
        rc = proto_replica_fetch_resp_decode(&r, 0, &d);
        break;
    case PROTO_API_OFFSET_FOR_LEADER_EPOCH:
        rc = proto_epoch_resp_decode(&r, 0, &d);
        break;
    case PROTO_API_REASSIGN_PARTITIONS:
        rc = proto_reassign_resp_decode(&r, 0, &d);
        break;
    default:
        return acl_api(api)    ? decode_acl_message(api, true, &r)
               : auth_api(api) ? decode_auth_response(api, &r)
                               : decode_group_response(api, &r);
    }
    if (rc == 0) {
        drain_topics(&d, api, true);
    }
    return rc;
}

/* ReassignPartitions: alpha's partition 0 onto 4, 2; partition 3 onto 1. */
static const struct proto_reassign_partition sample_reassign[] = {
    {.partition = 0, .replica_count = 2, .replicas = {4, 2}},
    {.partition = 3, .replica_count = 1, .replicas = {1}},
};

static const struct proto_share_acquired sample_acquired[] = {{10, 12, 1}, {15, 15, 3}};
static const struct proto_share_ack sample_acks[] = {
    {10, 11, PROTO_ACK_ACCEPT}, {12, 12, PROTO_ACK_RELEASE}, {15, 15, PROTO_ACK_REJECT}};

/* Topics alpha (partitions 0 and 3) and beta (none) of bare indexes. */
static void sample_index_topics(struct proto_enc *e)
{
    proto_enc_topic(e, proto_str_make("alpha"));
    proto_enc_partition_index(e, 0);
    proto_enc_partition_index(e, 3);
    proto_enc_topic(e, proto_str_make("beta"));
}

/* Requests of the group and share apis. */
static int sample_group_request(int api, struct wr *w)
{
    struct proto_enc e;
    struct proto_str g = proto_str_make("group-1");
    struct proto_str m = proto_str_make("member-0000000000000001");
    switch (api) {
    case PROTO_API_JOIN_GROUP:
        proto_join_group_req_begin(&e, w, 0, 7, CID,
                                   &(struct proto_join_group_req){g, PROTO_STR_NULL, 10000});
        proto_enc_topic(&e, proto_str_make("alpha"));
        proto_enc_topic(&e, proto_str_make("beta"));
        return proto_enc_end(&e);
    case PROTO_API_HEARTBEAT:
        return proto_heartbeat_req_encode(w, 0, 7, CID, &(struct proto_heartbeat_req){g, m, 3});
    case PROTO_API_LEAVE_GROUP:
        return proto_leave_group_req_encode(w, 0, 7, PROTO_STR_NULL,
                                            &(struct proto_leave_group_req){g, m});
    case PROTO_API_OFFSET_COMMIT:
        proto_offset_commit_req_begin(&e, w, 0, 7, CID,
                                      &(struct proto_offset_commit_req){g, PROTO_STR_NULL, -1});
        proto_enc_topic(&e, proto_str_make("alpha"));
        proto_offset_commit_req_partition(&e, &(struct proto_offset_commit_req_partition){0, 42});
        proto_offset_commit_req_partition(&e, &(struct proto_offset_commit_req_partition){5, 0});
        proto_enc_topic(&e, proto_str_make("beta"));
        proto_offset_commit_req_partition(&e, &(struct proto_offset_commit_req_partition){1, 7});
        return proto_enc_end(&e);
    case PROTO_API_OFFSET_FETCH:
        proto_offset_fetch_req_begin(&e, w, 0, 7, CID, g, false);
        sample_index_topics(&e);
        return proto_enc_end(&e);
    case PROTO_API_LIST_GROUPS:
        return proto_list_groups_req_encode(w, 0, 7, CID);
    case PROTO_API_DESCRIBE_GROUP:
        return proto_describe_group_req_encode(w, 0, 7, CID, g);
    case PROTO_API_DELETE_GROUP:
        return proto_delete_group_req_encode(w, 0, 7, CID, g);
    case PROTO_API_RESET_OFFSETS:
        proto_reset_offsets_req_begin(
            &e, w, 0, 7, CID,
            &(struct proto_reset_offsets_req){g, PROTO_RESET_TIMESTAMP, 1700000000000});
        sample_index_topics(&e);
        return proto_enc_end(&e);
    case PROTO_API_SHARE_FETCH:
        proto_share_fetch_req_begin(
            &e, w, 0, 7, CID, &(struct proto_share_fetch_req){g, proto_str_make(""), 500, 100});
        sample_index_topics(&e);
        return proto_enc_end(&e);
    case PROTO_API_SHARE_ACK:
        proto_share_ack_req_begin(&e, w, 0, 7, CID, &(struct proto_share_ack_req){g, m});
        proto_enc_topic(&e, proto_str_make("alpha"));
        proto_share_ack_req_partition(&e, &(struct proto_share_ack_req_partition){
                                              .partition = 0, .ack_count = 3, .acks = sample_acks});
        proto_share_ack_req_partition(&e, &(struct proto_share_ack_req_partition){.partition = 1});
        return proto_enc_end(&e);
    case PROTO_API_DLQ_REDRIVE:
        return proto_dlq_redrive_req_encode(
            w, 0, 7, CID,
            &(struct proto_dlq_redrive_req){proto_str_make("alpha.dlq"),
                                            PROTO_REDRIVE_RECORDS_ALL});
    default:
        cr_assert_fail("bad api %d", api);
        return -1;
    }
}

/* Responses of the group and share apis. */
static int sample_group_response(int api, struct wr *w)
{
    struct proto_enc e;
    struct proto_str m = proto_str_make("member-0000000000000001");
    switch (api) {
    case PROTO_API_JOIN_GROUP:
        return proto_join_group_resp_encode(w, 0, 9, &(struct proto_join_group_resp){0, m, 4});
    case PROTO_API_HEARTBEAT:
        proto_heartbeat_resp_begin(&e, w, 0, 9, &(struct proto_heartbeat_resp){0, 4, true});
        sample_index_topics(&e);
        return proto_enc_end(&e);
    case PROTO_API_LEAVE_GROUP:
        return proto_leave_group_resp_encode(w, 0, 9, -NG_EUNKNOWN_MEMBER);
    case PROTO_API_OFFSET_COMMIT:
    case PROTO_API_SHARE_ACK:
        if (api == PROTO_API_OFFSET_COMMIT) {
            proto_offset_commit_resp_begin(&e, w, 0, 9);
        } else {
            proto_share_ack_resp_begin(&e, w, 0, 9);
        }
        proto_enc_topic(&e, proto_str_make("alpha"));
        proto_enc_partition_result(&e, &(struct proto_partition_result){0, 0});
        proto_enc_partition_result(&e,
                                   &(struct proto_partition_result){5, -NG_EILLEGAL_GENERATION});
        return proto_enc_end(&e);
    case PROTO_API_OFFSET_FETCH:
    case PROTO_API_RESET_OFFSETS:
        if (api == PROTO_API_OFFSET_FETCH) {
            proto_offset_fetch_resp_begin(&e, w, 0, 9);
        } else {
            proto_reset_offsets_resp_begin(&e, w, 0, 9, 0);
        }
        proto_enc_topic(&e, proto_str_make("alpha"));
        proto_enc_partition_offset(&e, &(struct proto_partition_offset){0, 42, 0});
        proto_enc_partition_offset(&e, &(struct proto_partition_offset){3, -1, -NG_EUNKNOWN_TOPIC});
        return proto_enc_end(&e);
    case PROTO_API_LIST_GROUPS:
        proto_list_groups_resp_begin(&e, w, 0, 9);
        proto_list_groups_resp_group(&e, &(struct proto_group_listing){proto_str_make("g1"), 0, 3});
        proto_list_groups_resp_group(&e, &(struct proto_group_listing){proto_str_make("q"), 1, 0});
        return proto_enc_end(&e);
    case PROTO_API_DESCRIBE_GROUP:
        proto_describe_group_resp_begin(&e, w, 0, 9, &(struct proto_describe_group_resp){0, 0, 6});
        proto_describe_group_resp_member(&e, m);
        sample_index_topics(&e);
        proto_describe_group_resp_member(&e, proto_str_make("member-2"));
        proto_describe_group_resp_offsets(&e);
        proto_enc_topic(&e, proto_str_make("alpha"));
        proto_describe_group_resp_offset(&e,
                                         &(struct proto_group_offset_desc){0, 40, 50, 10, 1234});
        proto_describe_group_resp_offset(&e, &(struct proto_group_offset_desc){3, 7, 7, 0, 0});
        return proto_enc_end(&e);
    case PROTO_API_DELETE_GROUP:
        return proto_delete_group_resp_encode(w, 0, 9, -NG_EGROUP_NOT_EMPTY);
    case PROTO_API_SHARE_FETCH:
        proto_share_fetch_resp_begin(&e, w, 0, 9, &(struct proto_share_fetch_resp){0, m});
        proto_enc_topic(&e, proto_str_make("alpha"));
        proto_share_fetch_resp_partition(
            &e, &(struct proto_share_fetch_resp_partition){.partition = 0,
                                                           .acquired_count = 2,
                                                           .acquired = sample_acquired,
                                                           .records = batch_a,
                                                           .records_bytes = sizeof batch_a});
        proto_share_fetch_resp_partition(&e, &(struct proto_share_fetch_resp_partition){
                                                 .partition = 1, .err = -NG_EUNKNOWN_TOPIC});
        return proto_enc_end(&e);
    case PROTO_API_DLQ_REDRIVE:
        return proto_dlq_redrive_resp_encode(w, 0, 9,
                                             &(struct proto_dlq_redrive_resp){0, 17, -1, 0});
    default:
        cr_assert_fail("bad api %d", api);
        return -1;
    }
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
        proto_produce_req_partition(
            &e, &(struct proto_produce_req_partition){0, batch_a, sizeof batch_a});
        proto_produce_req_partition(
            &e, &(struct proto_produce_req_partition){2, batch_b, sizeof batch_b});
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
        proto_list_offsets_req_partition(
            &e, &(struct proto_list_offsets_req_partition){1, 1700000000000});
        rc = proto_enc_end(&e);
        break;
    case PROTO_API_INIT_PRODUCER_ID:
        rc = proto_init_producer_id_req_encode(&w, 0, 7, CID);
        break;
    case PROTO_API_REPLICA_FETCH:
        proto_replica_fetch_req_begin(&e, &w, 0, 7, CID,
                                      &(struct proto_replica_fetch_req){2, 500, 1, 1 << 20});
        proto_enc_topic(&e, proto_str_make("alpha"));
        proto_replica_fetch_req_partition(
            &e, &(struct proto_replica_fetch_req_partition){0, 4, 100, 90});
        proto_replica_fetch_req_partition(&e,
                                          &(struct proto_replica_fetch_req_partition){3, 5, 7, 6});
        proto_enc_topic(&e, proto_str_make("beta"));
        rc = proto_enc_end(&e);
        break;
    case PROTO_API_OFFSET_FOR_LEADER_EPOCH:
        proto_epoch_req_begin(&e, &w, 0, 7, CID);
        proto_enc_topic(&e, proto_str_make("alpha"));
        proto_epoch_req_partition(&e, &(struct proto_epoch_req_partition){0, 6, 4});
        proto_epoch_req_partition(&e, &(struct proto_epoch_req_partition){1, 6, 0});
        rc = proto_enc_end(&e);
        break;
    case PROTO_API_REASSIGN_PARTITIONS:
        proto_reassign_req_begin(&e, &w, 0, 7, CID);
        proto_enc_topic(&e, proto_str_make("alpha"));
        proto_reassign_req_partition(&e, &sample_reassign[0]);
        proto_reassign_req_partition(&e, &sample_reassign[1]);
        proto_enc_topic(&e, proto_str_make("beta"));
        rc = proto_enc_end(&e);
        break;
    default:
        rc = acl_api(api)    ? sample_acl_message(api, false, &w)
             : auth_api(api) ? sample_auth_request(api, &w)
                             : sample_group_request(api, &w);
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
        proto_enc_topic_result(&e,
                               &(struct proto_topic_result){proto_str_make(".."), -NG_EBADNAME});
        rc = proto_enc_end(&e);
        break;
    case PROTO_API_PRODUCE:
        proto_produce_resp_begin(&e, &w, 0, 9);
        proto_enc_topic(&e, proto_str_make("alpha"));
        proto_produce_resp_partition(&e, &(struct proto_produce_resp_partition){0, 0, 100});
        proto_produce_resp_partition(&e,
                                     &(struct proto_produce_resp_partition){2, -NG_ECHECKSUM, -1});
        rc = proto_enc_end(&e);
        break;
    case PROTO_API_FETCH:
        proto_fetch_resp_begin(&e, &w, 0, 9);
        proto_enc_topic(&e, proto_str_make("alpha"));
        proto_fetch_resp_partition(
            &e, &(struct proto_fetch_resp_partition){0, 0, 0, 50, batch_a, sizeof batch_a});
        proto_fetch_resp_partition(
            &e, &(struct proto_fetch_resp_partition){1, -NG_EOFFSET_RANGE, 3, 9, NULL, 0});
        proto_enc_topic(&e, proto_str_make("beta"));
        rc = proto_enc_end(&e);
        break;
    case PROTO_API_LIST_OFFSETS:
        proto_list_offsets_resp_begin(&e, &w, 0, 9);
        proto_enc_topic(&e, proto_str_make("alpha"));
        proto_list_offsets_resp_partition(&e,
                                          &(struct proto_list_offsets_resp_partition){0, 0, -1, 0});
        proto_list_offsets_resp_partition(
            &e, &(struct proto_list_offsets_resp_partition){1, 0, 1700000000001, 77});
        rc = proto_enc_end(&e);
        break;
    case PROTO_API_INIT_PRODUCER_ID:
        rc = proto_init_producer_id_resp_encode(&w, 0, 9,
                                                &(struct proto_init_producer_id_resp){1234, 0});
        break;
    case PROTO_API_REPLICA_FETCH:
        proto_replica_fetch_resp_begin(&e, &w, 0, 9);
        proto_enc_topic(&e, proto_str_make("alpha"));
        proto_replica_fetch_resp_partition(
            &e, &(struct proto_replica_fetch_resp_partition){0, 0, 95, 0, batch_a, sizeof batch_a});
        proto_replica_fetch_resp_partition(&e, &(struct proto_replica_fetch_resp_partition){
                                                   3, -NG_EFENCED_LEADER_EPOCH, -1, -1, NULL, 0});
        rc = proto_enc_end(&e);
        break;
    case PROTO_API_OFFSET_FOR_LEADER_EPOCH:
        proto_epoch_resp_begin(&e, &w, 0, 9);
        proto_enc_topic(&e, proto_str_make("alpha"));
        proto_epoch_resp_partition(&e, &(struct proto_epoch_resp_partition){0, 0, 4, 120});
        proto_epoch_resp_partition(&e, &(struct proto_epoch_resp_partition){1, 0, -1, -1});
        rc = proto_enc_end(&e);
        break;
    case PROTO_API_REASSIGN_PARTITIONS:
        proto_reassign_resp_begin(&e, &w, 0, 9);
        proto_enc_topic(&e, proto_str_make("alpha"));
        proto_enc_partition_result(&e, &(struct proto_partition_result){0, 0});
        proto_enc_partition_result(&e, &(struct proto_partition_result){3, -NG_EBADARG});
        proto_enc_topic(&e, proto_str_make("beta"));
        rc = proto_enc_end(&e);
        break;
    default:
        rc = acl_api(api)    ? sample_acl_message(api, true, &w)
             : auth_api(api) ? sample_auth_response(api, &w)
                             : sample_group_response(api, &w);
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
    const uint16_t unknown[] = {8, 9, 19, PROTO_API_COUNT};
    for (size_t i = 0; i < ARRAY_LEN(unknown); i++) {
        size_t n = raw_request(unknown[i], 0, NULL, 0);
        struct rd r = rd_make(buf + 4, n - 4);
        struct proto_req_header h;
        cr_assert_eq(proto_req_header_decode(&r, &h), -NG_EUNKNOWN_API, "key %u", unknown[i]);
        cr_assert_eq(h.api_key, unknown[i]);
        cr_assert_eq(h.correlation_id, 1);
        cr_assert_not(proto_api_known(unknown[i]));
        cr_assert_str_eq(proto_api_name(unknown[i]), "unknown");
    }
    size_t n = raw_request(0xffff, 0, NULL, 0);
    struct rd r = rd_make(buf + 4, n - 4);
    struct proto_req_header h;
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
    cr_assert_eq(proto_fetch_resp_decode(&empty, 2, &d), -NG_EBADVERSION);
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
    uint32_t i = 0;
    for (uint16_t k = 0; k < PROTO_API_COUNT; k++) {
        if (!proto_api_known(k)) {
            continue;
        }
        cr_assert_lt(i, v.api_count);
        cr_assert_eq(v.apis[i].api_key, k);
        cr_assert_eq(v.apis[i].version_min, 0);
        cr_assert_eq(v.apis[i].version_max, proto_api_version_max(k));
        i++;
    }
    cr_assert_eq(v.api_count, i);
    cr_assert_eq(v.api_count, PROTO_API_COUNT - 3, "every key but 8, 9 and 19");
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
    cr_assert_eq(d.partition_count, 2, "over every topic, as the iterators give them");
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

Test(proto, replica_fetch_round_trip)
{
    size_t n = sample_request(PROTO_API_REPLICA_FETCH, buf, sizeof buf);
    struct rd r = frame_rd(buf, n, false);
    struct proto_req_header h;
    cr_assert_eq(proto_req_header_decode(&r, &h), 0);
    cr_assert_eq(h.api_key, PROTO_API_REPLICA_FETCH);
    struct proto_replica_fetch_req req;
    struct proto_dec d;
    cr_assert_eq(proto_replica_fetch_req_decode(&r, 0, &req, &d), 0);
    cr_assert_eq(d.partition_count, 2);
    cr_assert_eq(req.replica_id, 2);
    cr_assert_eq(req.wait_max_ms, 500);
    cr_assert_eq(req.bytes_min, 1);
    cr_assert_eq(req.bytes_max, 1 << 20);
    struct proto_topic t;
    struct proto_replica_fetch_req_partition p;
    cr_assert(proto_next_topic(&d, &t));
    cr_assert(str_is(t.name, "alpha"));
    cr_assert(proto_replica_fetch_req_next_partition(&d, &p));
    cr_assert_eq(p.partition, 0);
    cr_assert_eq(p.leader_epoch, 4);
    cr_assert_eq(p.fetch_offset, 100);
    cr_assert_eq(p.durable_offset, 90);
    cr_assert(proto_replica_fetch_req_next_partition(&d, &p));
    cr_assert_eq(p.partition, 3);
    cr_assert_eq(p.durable_offset, 6);
    cr_assert_not(proto_replica_fetch_req_next_partition(&d, &p));
    cr_assert(proto_next_topic(&d, &t));
    cr_assert(str_is(t.name, "beta"));
    cr_assert_not(proto_next_topic(&d, &t));

    n = sample_response(PROTO_API_REPLICA_FETCH, buf, sizeof buf);
    r = frame_rd(buf, n, true);
    struct proto_resp_header rh;
    cr_assert_eq(proto_resp_header_decode(&r, &rh), 0);
    cr_assert_eq(proto_replica_fetch_resp_decode(&r, 0, &d), 0);
    struct proto_replica_fetch_resp_partition fp;
    cr_assert(proto_next_topic(&d, &t));
    cr_assert(proto_replica_fetch_resp_next_partition(&d, &fp));
    cr_assert_eq(fp.partition, 0);
    cr_assert_eq(fp.err, 0);
    cr_assert_eq(fp.high_watermark, 95);
    cr_assert_eq(fp.log_start, 0);
    cr_assert_eq(fp.records_bytes, sizeof batch_a);
    cr_assert_eq(memcmp(fp.records, batch_a, sizeof batch_a), 0);
    cr_assert(proto_replica_fetch_resp_next_partition(&d, &fp));
    cr_assert_eq(fp.partition, 3);
    cr_assert_eq(fp.err, -NG_EFENCED_LEADER_EPOCH);
    cr_assert_eq(fp.records_bytes, 0);
    cr_assert_not(proto_replica_fetch_resp_next_partition(&d, &fp));
    cr_assert_not(proto_next_topic(&d, &t));
}

Test(proto, replica_fetch_refuses_negative_ids_and_limits)
{
    for (int field = 0; field < 4; field++) {
        struct proto_replica_fetch_req q = {1, 100, 1, 4096};
        int32_t *f[] = {&q.replica_id, &q.wait_max_ms, &q.bytes_min, &q.bytes_max};
        *f[field] = -1;
        struct wr w = wr_make(buf, sizeof buf);
        struct proto_enc e;
        proto_replica_fetch_req_begin(&e, &w, 0, 1, CID, &q);
        cr_assert_eq(proto_enc_end(&e), 0);
        struct rd r = frame_rd(buf, w.pos, false);
        struct proto_req_header h;
        cr_assert_eq(proto_req_header_decode(&r, &h), 0);
        struct proto_dec d;
        cr_assert_eq(proto_replica_fetch_req_decode(&r, 0, &q, &d), -NG_EBADARG, "field %d", field);
    }
}

Test(proto, replica_fetch_partition_fail_sets_the_error_in_place)
{
    struct wr w = wr_make(buf, sizeof buf);
    struct proto_enc e;
    proto_replica_fetch_resp_begin(&e, &w, 0, 3);
    proto_enc_topic(&e, proto_str_make("t"));
    proto_replica_fetch_resp_partition_begin(
        &e, &(struct proto_replica_fetch_resp_partition){
                .partition = 2, .high_watermark = 9, .log_start = 1});
    proto_fetch_resp_partition_fail(&e, -NG_ECORRUPT, 77);
    proto_fetch_resp_partition_end(&e);
    cr_assert_eq(proto_enc_end(&e), 0);
    struct rd r = frame_rd(buf, w.pos, true);
    struct proto_resp_header rh;
    cr_assert_eq(proto_resp_header_decode(&r, &rh), 0);
    struct proto_dec d;
    cr_assert_eq(proto_replica_fetch_resp_decode(&r, 0, &d), 0);
    struct proto_topic t;
    struct proto_replica_fetch_resp_partition fp;
    cr_assert(proto_next_topic(&d, &t));
    cr_assert(proto_replica_fetch_resp_next_partition(&d, &fp));
    cr_assert_eq(fp.err, -NG_ECORRUPT);
    cr_assert_eq(fp.high_watermark, 9, "the fields around the error are kept");
    cr_assert_eq(fp.log_start, 1);
}

Test(proto, offset_for_leader_epoch_round_trip)
{
    size_t n = sample_request(PROTO_API_OFFSET_FOR_LEADER_EPOCH, buf, sizeof buf);
    struct rd r = frame_rd(buf, n, false);
    struct proto_req_header h;
    cr_assert_eq(proto_req_header_decode(&r, &h), 0);
    struct proto_dec d;
    cr_assert_eq(proto_epoch_req_decode(&r, 0, &d), 0);
    cr_assert_eq(d.partition_count, 2);
    struct proto_topic t;
    struct proto_epoch_req_partition p;
    cr_assert(proto_next_topic(&d, &t));
    cr_assert(proto_epoch_req_next_partition(&d, &p));
    cr_assert_eq(p.partition, 0);
    cr_assert_eq(p.current_leader_epoch, 6);
    cr_assert_eq(p.leader_epoch, 4);
    cr_assert(proto_epoch_req_next_partition(&d, &p));
    cr_assert_eq(p.partition, 1);
    cr_assert_eq(p.leader_epoch, 0);
    cr_assert_not(proto_epoch_req_next_partition(&d, &p));
    cr_assert_not(proto_next_topic(&d, &t));

    n = sample_response(PROTO_API_OFFSET_FOR_LEADER_EPOCH, buf, sizeof buf);
    r = frame_rd(buf, n, true);
    struct proto_resp_header rh;
    cr_assert_eq(proto_resp_header_decode(&r, &rh), 0);
    cr_assert_eq(proto_epoch_resp_decode(&r, 0, &d), 0);
    struct proto_epoch_resp_partition ep;
    cr_assert(proto_next_topic(&d, &t));
    cr_assert(proto_epoch_resp_next_partition(&d, &ep));
    cr_assert_eq(ep.partition, 0);
    cr_assert_eq(ep.err, 0);
    cr_assert_eq(ep.leader_epoch, 4);
    cr_assert_eq(ep.end_offset, 120);
    cr_assert(proto_epoch_resp_next_partition(&d, &ep));
    cr_assert_eq(ep.leader_epoch, -1);
    cr_assert_eq(ep.end_offset, -1);
    cr_assert_not(proto_epoch_resp_next_partition(&d, &ep));
    cr_assert_eq(proto_api_name(PROTO_API_OFFSET_FOR_LEADER_EPOCH)[0], 'O');
    cr_assert_str_eq(proto_api_name(PROTO_API_REPLICA_FETCH), "ReplicaFetch");
}

Test(proto, fetch_v1_carries_where_reading_resumes_past_damage)
{
    cr_assert_eq(proto_api_version_max(PROTO_API_FETCH), 1);
    for (uint16_t v = 0; v <= 1; v++) {
        struct wr w = wr_make(buf, sizeof buf);
        struct proto_enc e;
        proto_fetch_resp_begin(&e, &w, v, 4);
        proto_enc_topic(&e, proto_str_make("t"));
        proto_fetch_resp_partition(&e, &(struct proto_fetch_resp_partition){.partition = 2,
                                                                            .err = -NG_ECORRUPT,
                                                                            .offset_earliest = 0,
                                                                            .offset_latest = 900,
                                                                            .offset_resume = 315});
        proto_fetch_resp_partition(
            &e, &(struct proto_fetch_resp_partition){.partition = 3,
                                                     .offset_latest = 7,
                                                     .records = batch_a,
                                                     .records_bytes = sizeof batch_a,
                                                     .offset_resume = -1});
        cr_assert_eq(proto_enc_end(&e), 0);
        struct rd r = frame_rd(buf, w.pos, true);
        struct proto_resp_header h;
        cr_assert_eq(proto_resp_header_decode(&r, &h), 0);
        struct proto_dec d;
        cr_assert_eq(proto_fetch_resp_decode(&r, v, &d), 0);
        struct proto_topic t;
        struct proto_fetch_resp_partition fp;
        cr_assert(proto_next_topic(&d, &t));
        cr_assert(proto_fetch_resp_next_partition(&d, &fp));
        cr_assert_eq(fp.err, -NG_ECORRUPT);
        cr_assert_eq(fp.offset_latest, 900);
        cr_assert_eq(fp.offset_resume, v == 1 ? 315 : -1, "version %u", v);
        cr_assert(proto_fetch_resp_next_partition(&d, &fp));
        cr_assert_eq(fp.offset_resume, -1);
        cr_assert_eq(fp.records_bytes, sizeof batch_a);
        /* A v1 answer read as v0 (or the reverse) does not parse. */
        r = frame_rd(buf, w.pos, true);
        cr_assert_eq(proto_resp_header_decode(&r, &h), 0);
        cr_assert_neq(proto_fetch_resp_decode(&r, 1 - v, &d), 0, "version %u", v);
    }
}

Test(proto, fetch_response_takes_records_written_in_place)
{
    struct wr w = wr_make(buf, sizeof buf);
    struct proto_enc e;
    proto_fetch_resp_begin(&e, &w, 0, 4);
    proto_enc_topic(&e, proto_str_make("t"));
    proto_fetch_resp_partition_begin(&e,
                                     &(struct proto_fetch_resp_partition){0, 0, 0, 20, NULL, 0});
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
        if (proto_api_known((uint16_t)api)) {
            w.pos += sample_request(api, buf + w.pos, sizeof buf - w.pos);
        }
    }
    for (int api = 0; api < PROTO_API_COUNT; api++) {
        if (!proto_api_known((uint16_t)api)) {
            continue;
        }
        uint32_t len = 0;
        cr_assert_eq(proto_request_frame_len(buf + starts[api], PROTO_FRAME_BYTES_DEFAULT, &len),
                     0);
        cr_assert_eq(decode_request(buf + starts[api] + 4, len), 0, "api %d", api);
    }
}

/* ---- hostile bytes ---- */

Test(proto, truncated_at_every_byte_is_refused_cleanly)
{
    for (int api = 0; api < PROTO_API_COUNT; api++) {
        if (!proto_api_known((uint16_t)api)) {
            continue;
        }
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
        if (!proto_api_known((uint16_t)api)) {
            continue;
        }
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

Test(proto, a_decoded_request_counts_its_partitions_over_every_topic)
{
    for (int32_t per_topic = 0; per_topic <= 3; per_topic++) {
        size_t n = fetch_body(scratch, sizeof scratch, per_topic);
        struct rd r = rd_make(scratch, n);
        struct proto_fetch_req req;
        struct proto_dec d;
        cr_assert_eq(proto_fetch_req_decode(&r, 0, &req, &d), 0);
        cr_assert_eq(d.partition_count, (uint32_t)(2 * per_topic));
        uint32_t seen = 0;
        struct proto_topic t;
        struct proto_fetch_req_partition p;
        while (proto_next_topic(&d, &t)) {
            while (proto_fetch_req_next_partition(&d, &p)) {
                seen++;
            }
        }
        cr_assert_eq(seen, d.partition_count);
    }
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
    proto_produce_req_partition(&e,
                                &(struct proto_produce_req_partition){0, batch_a, sizeof batch_a});
    cr_assert_eq(proto_enc_end(&e), -NG_ENOSPACE);
    cr_assert_eq(w.pos, first);
    cr_assert_eq(w.err, 0);
    /* Every shorter buffer fails the same way, never a half frame. */
    size_t n = SIZE_MAX;
    for (size_t cap = 0; cap <= n; cap++) {
        struct wr w2 = wr_make(buf, cap);
        proto_produce_req_begin(&e, &w2, 0, 7, CID,
                                &(struct proto_produce_req){PROTO_ACKS_ALL, 5000});
        proto_enc_topic(&e, proto_str_make("alpha"));
        proto_produce_req_partition(
            &e, &(struct proto_produce_req_partition){0, batch_a, sizeof batch_a});
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
    static const uint8_t api_versions[] = {0x00, 0x00, 0x00, 0x0d, 0x00, 0x00, 0x00, 0x00, 0x00,
                                           0x00, 0x00, 0x01, 0x00, 0x03, 'c',  'l',  'i'};
    struct wr w = wr_make(buf, sizeof buf);
    cr_assert_eq(proto_api_versions_req_encode(&w, 0, 1, proto_str_make("cli")), 0);
    cr_assert_eq(w.pos, sizeof api_versions);
    cr_assert_eq(memcmp(buf, api_versions, sizeof api_versions), 0);

    static const uint8_t produce_resp[] = {0x00, 0x00, 0x00, 0x1f, 0x00, 0x00, 0x00, 0x01, 0x00,
                                           0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 't',  0x00,
                                           0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
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
    cr_assert_eq(proto_api_version_max(PROTO_API_METADATA), 3);
    cr_assert_eq(proto_api_check(PROTO_API_METADATA, 1), 0);
    cr_assert_eq(proto_api_check(PROTO_API_METADATA, 3), 0);
    cr_assert_eq(proto_api_check(PROTO_API_METADATA, 4), -NG_EBADVERSION);
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

/* ---- consumer groups and share groups ---- */

/* Reads a response frame's header, leaving r at the body. */
static struct rd resp_body(const uint8_t *p, size_t n)
{
    struct rd r = frame_rd(p, n, true);
    struct proto_resp_header h;
    cr_assert_eq(proto_resp_header_decode(&r, &h), 0);
    cr_assert_eq(h.err, 0);
    return r;
}

static struct rd req_body(const uint8_t *p, size_t n, uint16_t api)
{
    struct rd r = frame_rd(p, n, false);
    struct proto_req_header h;
    cr_assert_eq(proto_req_header_decode(&r, &h), 0);
    cr_assert_eq(h.api_key, api);
    return r;
}

static size_t req_of(int api) { return sample_request(api, buf, sizeof buf); }

static size_t resp_of(int api) { return sample_response(api, buf, sizeof buf); }

/* Expects topic `name` next, with `parts` partitions. */
static void expect_topic(struct proto_dec *d, const char *name, int32_t parts)
{
    struct proto_topic t;
    cr_assert(proto_next_topic(d, &t));
    cr_assert(str_is(t.name, name), "topic %.*s", (int)t.name.len, t.name.ptr);
    cr_assert_eq(t.partition_count, parts);
}

/* alpha [0, 3], beta [] as sample_index_topics() wrote them. */
static void expect_index_topics(struct proto_dec *d)
{
    int32_t p;
    expect_topic(d, "alpha", 2);
    cr_assert(proto_next_partition_index(d, &p));
    cr_assert_eq(p, 0);
    cr_assert(proto_next_partition_index(d, &p));
    cr_assert_eq(p, 3);
    cr_assert_not(proto_next_partition_index(d, &p));
    expect_topic(d, "beta", 0);
    struct proto_topic t;
    cr_assert_not(proto_next_topic(d, &t));
}

Test(proto, group_api_names_and_versions)
{
    const char *names[] = {"JoinGroup",     "Heartbeat",   "LeaveGroup",
                           "OffsetCommit",  "OffsetFetch", "ListGroups",
                           "DescribeGroup", "DeleteGroup", "ResetOffsets"};
    for (uint16_t k = 10; k <= 18; k++) {
        cr_assert(proto_api_known(k));
        cr_assert_str_eq(proto_api_name(k), names[k - 10]);
        cr_assert_eq(proto_api_version_max(k), 0);
        cr_assert_eq(proto_api_check(k, 0), 0);
        cr_assert_eq(proto_api_check(k, 1), -NG_EBADVERSION);
    }
    cr_assert_str_eq(proto_api_name(PROTO_API_SHARE_FETCH), "ShareFetch");
    cr_assert_str_eq(proto_api_name(PROTO_API_SHARE_ACK), "ShareAck");
    cr_assert_str_eq(proto_api_name(PROTO_API_DLQ_REDRIVE), "DlqRedrive");
    cr_assert_eq(proto_api_check(PROTO_API_DLQ_REDRIVE, 0), 0);
    cr_assert_eq(proto_api_check(19, 0), -NG_EUNKNOWN_API);
}

Test(proto, join_group_round_trip)
{
    size_t n = req_of(PROTO_API_JOIN_GROUP);
    struct rd r = req_body(buf, n, PROTO_API_JOIN_GROUP);
    struct proto_join_group_req req;
    struct proto_dec d;
    cr_assert_eq(proto_join_group_req_decode(&r, 0, &req, &d), 0);
    cr_assert(str_is(req.group, "group-1"));
    cr_assert_eq(req.member_id.len, -1);
    cr_assert_null(req.member_id.ptr);
    cr_assert_eq(req.session_timeout_ms, 10000);
    cr_assert_eq(d.topic_count, 2);
    expect_topic(&d, "alpha", 0);
    expect_topic(&d, "beta", 0);

    /* An empty member id is not null. */
    struct wr w = wr_make(buf, sizeof buf);
    struct proto_enc e;
    struct proto_join_group_req empty = {proto_str_make("g"), proto_str_make(""), 1500};
    proto_join_group_req_begin(&e, &w, 0, 1, CID, &empty);
    proto_enc_topic(&e, proto_str_make("t"));
    cr_assert_eq(proto_enc_end(&e), 0);
    r = req_body(buf, w.pos, PROTO_API_JOIN_GROUP);
    cr_assert_eq(proto_join_group_req_decode(&r, 0, &req, &d), 0);
    cr_assert_eq(req.member_id.len, 0);

    n = resp_of(PROTO_API_JOIN_GROUP);
    r = resp_body(buf, n);
    struct proto_join_group_resp resp;
    cr_assert_eq(proto_join_group_resp_decode(&r, 0, &resp), 0);
    cr_assert_eq(resp.err, 0);
    cr_assert(str_is(resp.member_id, "member-0000000000000001"));
    cr_assert_eq(resp.generation, 4);
}

Test(proto, join_group_refuses_a_negative_session_timeout)
{
    struct wr w = wr_make(buf, sizeof buf);
    struct proto_enc e;
    struct proto_join_group_req req = {proto_str_make("g"), PROTO_STR_NULL, -1};
    proto_join_group_req_begin(&e, &w, 0, 1, CID, &req);
    cr_assert_eq(proto_enc_end(&e), 0);
    struct rd r = req_body(buf, w.pos, PROTO_API_JOIN_GROUP);
    struct proto_dec d;
    cr_assert_eq(proto_join_group_req_decode(&r, 0, &req, &d), -NG_EBADARG);
    /* A null group is malformed. */
    uint8_t body[] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0, 0, 0, 0};
    cr_assert_eq(decode_raw_request(PROTO_API_JOIN_GROUP, body, sizeof body), -NG_EBADLEN);
}

Test(proto, heartbeat_round_trip)
{
    size_t n = req_of(PROTO_API_HEARTBEAT);
    struct rd r = req_body(buf, n, PROTO_API_HEARTBEAT);
    struct proto_heartbeat_req req;
    cr_assert_eq(proto_heartbeat_req_decode(&r, 0, &req), 0);
    cr_assert(str_is(req.group, "group-1"));
    cr_assert(str_is(req.member_id, "member-0000000000000001"));
    cr_assert_eq(req.generation, 3);

    n = resp_of(PROTO_API_HEARTBEAT);
    r = resp_body(buf, n);
    struct proto_heartbeat_resp resp;
    struct proto_dec d;
    cr_assert_eq(proto_heartbeat_resp_decode(&r, 0, &resp, &d), 0);
    cr_assert_eq(resp.generation, 4);
    cr_assert(resp.rebalancing);
    expect_index_topics(&d);

    /* rebalancing is 0 or 1. */
    size_t at = 4 + PROTO_RESP_HEADER_BYTES + 2 + 4;
    buf[at] = 2;
    r = frame_rd(buf, n, true);
    struct proto_resp_header h;
    cr_assert_eq(proto_resp_header_decode(&r, &h), 0);
    cr_assert_eq(proto_heartbeat_resp_decode(&r, 0, &resp, &d), -NG_EBADARG);
}

Test(proto, heartbeat_member_id_is_not_nullable)
{
    uint8_t body[] = {0, 1, 'g', 0xff, 0xff, 0, 0, 0, 1};
    cr_assert_eq(decode_raw_request(PROTO_API_HEARTBEAT, body, sizeof body), -NG_EBADLEN);
    body[3] = 0;
    body[4] = 0;
    cr_assert_eq(decode_raw_request(PROTO_API_HEARTBEAT, body, sizeof body), 0);
}

Test(proto, leave_and_delete_group_round_trip)
{
    size_t n = req_of(PROTO_API_LEAVE_GROUP);
    struct rd r = req_body(buf, n, PROTO_API_LEAVE_GROUP);
    struct proto_leave_group_req req;
    cr_assert_eq(proto_leave_group_req_decode(&r, 0, &req), 0);
    cr_assert(str_is(req.group, "group-1"));
    cr_assert(str_is(req.member_id, "member-0000000000000001"));
    int err = 0;
    n = resp_of(PROTO_API_LEAVE_GROUP);
    r = resp_body(buf, n);
    cr_assert_eq(proto_leave_group_resp_decode(&r, 0, &err), 0);
    cr_assert_eq(err, -NG_EUNKNOWN_MEMBER);

    struct proto_str g;
    n = req_of(PROTO_API_DELETE_GROUP);
    r = req_body(buf, n, PROTO_API_DELETE_GROUP);
    cr_assert_eq(proto_delete_group_req_decode(&r, 0, &g), 0);
    cr_assert(str_is(g, "group-1"));
    n = resp_of(PROTO_API_DELETE_GROUP);
    r = resp_body(buf, n);
    cr_assert_eq(proto_delete_group_resp_decode(&r, 0, &err), 0);
    cr_assert_eq(err, -NG_EGROUP_NOT_EMPTY);
}

Test(proto, offset_commit_round_trip)
{
    size_t n = req_of(PROTO_API_OFFSET_COMMIT);
    struct rd r = req_body(buf, n, PROTO_API_OFFSET_COMMIT);
    struct proto_offset_commit_req req;
    struct proto_dec d;
    cr_assert_eq(proto_offset_commit_req_decode(&r, 0, &req, &d), 0);
    cr_assert(str_is(req.group, "group-1"));
    cr_assert_eq(req.member_id.len, -1, "a commit from outside the group");
    cr_assert_eq(req.generation, -1);
    struct proto_offset_commit_req_partition p;
    expect_topic(&d, "alpha", 2);
    cr_assert(proto_offset_commit_req_next_partition(&d, &p));
    cr_assert_eq(p.partition, 0);
    cr_assert_eq(p.offset, 42);
    cr_assert(proto_offset_commit_req_next_partition(&d, &p));
    cr_assert_eq(p.partition, 5);
    cr_assert_eq(p.offset, 0);
    cr_assert_not(proto_offset_commit_req_next_partition(&d, &p));
    expect_topic(&d, "beta", 1);
    cr_assert(proto_offset_commit_req_next_partition(&d, &p));
    cr_assert_eq(p.offset, 7);

    n = resp_of(PROTO_API_OFFSET_COMMIT);
    r = resp_body(buf, n);
    cr_assert_eq(proto_offset_commit_resp_decode(&r, 0, &d), 0);
    struct proto_partition_result pr;
    expect_topic(&d, "alpha", 2);
    cr_assert(proto_next_partition_result(&d, &pr));
    cr_assert_eq(pr.err, 0);
    cr_assert(proto_next_partition_result(&d, &pr));
    cr_assert_eq(pr.partition, 5);
    cr_assert_eq(pr.err, -NG_EILLEGAL_GENERATION);
    cr_assert_not(proto_next_partition_result(&d, &pr));
}

Test(proto, offset_fetch_round_trip_named_and_all)
{
    size_t n = req_of(PROTO_API_OFFSET_FETCH);
    struct rd r = req_body(buf, n, PROTO_API_OFFSET_FETCH);
    struct proto_str g;
    struct proto_dec d;
    cr_assert_eq(proto_offset_fetch_req_decode(&r, 0, &g, &d), 0);
    cr_assert(str_is(g, "group-1"));
    expect_index_topics(&d);

    struct wr w = wr_make(buf, sizeof buf);
    struct proto_enc e;
    proto_offset_fetch_req_begin(&e, &w, 0, 2, CID, proto_str_make("g"), true);
    cr_assert_eq(proto_enc_end(&e), 0);
    r = req_body(buf, w.pos, PROTO_API_OFFSET_FETCH);
    cr_assert_eq(proto_offset_fetch_req_decode(&r, 0, &g, &d), 0);
    cr_assert_eq(d.topic_count, -1, "null: every committed partition");
    struct proto_topic t;
    cr_assert_not(proto_next_topic(&d, &t));

    n = resp_of(PROTO_API_OFFSET_FETCH);
    r = resp_body(buf, n);
    cr_assert_eq(proto_offset_fetch_resp_decode(&r, 0, &d), 0);
    struct proto_partition_offset po;
    expect_topic(&d, "alpha", 2);
    cr_assert(proto_next_partition_offset(&d, &po));
    cr_assert_eq(po.offset, 42);
    cr_assert(proto_next_partition_offset(&d, &po));
    cr_assert_eq(po.partition, 3);
    cr_assert_eq(po.offset, -1);
    cr_assert_eq(po.err, -NG_EUNKNOWN_TOPIC);
}

Test(proto, offset_fetch_response_partitions_are_bounded_per_topic_only)
{
    struct wr w = wr_make(scratch, sizeof scratch);
    struct proto_enc e;
    proto_offset_fetch_resp_begin(&e, &w, 0, 1);
    for (int t = 0; t < 2; t++) {
        proto_enc_topic(&e, proto_str_make(t ? "a" : "b"));
        for (int32_t i = 0; i < PROTO_PARTITIONS_MAX; i++) {
            proto_enc_partition_offset(&e, &(struct proto_partition_offset){i, i, 0});
        }
    }
    cr_assert_eq(proto_enc_end(&e), 0);
    cr_assert_eq(decode_response(PROTO_API_OFFSET_FETCH, scratch + 4, w.pos - 4), 0);
    /* One more in a topic is over. */
    w = wr_make(scratch, sizeof scratch);
    proto_offset_fetch_resp_begin(&e, &w, 0, 1);
    proto_enc_topic(&e, proto_str_make("a"));
    for (int32_t i = 0; i <= PROTO_PARTITIONS_MAX; i++) {
        proto_enc_partition_offset(&e, &(struct proto_partition_offset){i, i, 0});
    }
    cr_assert_eq(proto_enc_end(&e), -NG_EBADCOUNT);
    /* Commit requests are summed like Fetch's. */
    w = wr_make(scratch, sizeof scratch);
    proto_offset_commit_req_begin(
        &e, &w, 0, 1, CID,
        &(struct proto_offset_commit_req){proto_str_make("g"), PROTO_STR_NULL, 0});
    for (int t = 0; t < 2; t++) {
        proto_enc_topic(&e, proto_str_make("t"));
        for (int32_t i = 0; i <= PROTO_REQUEST_PARTITIONS_MAX / 2; i++) {
            proto_offset_commit_req_partition(&e,
                                              &(struct proto_offset_commit_req_partition){i, 0});
        }
    }
    cr_assert_eq(proto_enc_end(&e), -NG_EBADCOUNT);
}

Test(proto, list_groups_round_trip)
{
    size_t n = req_of(PROTO_API_LIST_GROUPS);
    struct rd r = req_body(buf, n, PROTO_API_LIST_GROUPS);
    cr_assert_eq(proto_list_groups_req_decode(&r, 0), 0);
    n = resp_of(PROTO_API_LIST_GROUPS);
    r = resp_body(buf, n);
    struct proto_dec d;
    cr_assert_eq(proto_list_groups_resp_decode(&r, 0, &d), 0);
    cr_assert_eq(d.topic_count, 2);
    struct proto_group_listing g;
    cr_assert(proto_list_groups_resp_next(&d, &g));
    cr_assert(str_is(g.group, "g1"));
    cr_assert_eq(g.kind, PROTO_GROUP_KIND_CONSUMER);
    cr_assert_eq(g.member_count, 3);
    cr_assert(proto_list_groups_resp_next(&d, &g));
    cr_assert(str_is(g.group, "q"));
    cr_assert_eq(g.kind, PROTO_GROUP_KIND_SHARE);
    cr_assert_not(proto_list_groups_resp_next(&d, &g));

    /* Over PROTO_GROUPS_MAX, both ways. */
    struct wr w = wr_make(scratch, sizeof scratch);
    struct proto_enc e;
    proto_list_groups_resp_begin(&e, &w, 0, 1);
    for (int i = 0; i <= PROTO_GROUPS_MAX; i++) {
        proto_list_groups_resp_group(&e, &(struct proto_group_listing){proto_str_make("g"), 0, 0});
    }
    cr_assert_eq(proto_enc_end(&e), -NG_EBADCOUNT);
    uint8_t resp[10] = {0, 0, 0, 1, 0, 0}; /* correlation id, error */
    put_be32(resp + 6, PROTO_GROUPS_MAX + 1);
    cr_assert_eq(decode_response(PROTO_API_LIST_GROUPS, resp, sizeof resp), -NG_EBADCOUNT);
}

/* Reads the sample DescribeGroup's members, then its offsets. */
static void expect_describe(struct proto_dec *d, bool read_members)
{
    struct proto_group_member_desc m;
    if (read_members) {
        cr_assert(proto_describe_group_resp_next_member(d, &m));
        cr_assert(str_is(m.member_id, "member-0000000000000001"));
        cr_assert_eq(m.topic_count, 2);
        expect_index_topics(d);
        cr_assert(proto_describe_group_resp_next_member(d, &m));
        cr_assert(str_is(m.member_id, "member-2"));
        cr_assert_eq(m.topic_count, 0);
        cr_assert_not(proto_describe_group_resp_next_member(d, &m));
    }
    proto_describe_group_resp_seek_offsets(d);
    cr_assert_eq(d->topic_count, 1);
    struct proto_group_offset_desc o;
    expect_topic(d, "alpha", 2);
    cr_assert(proto_describe_group_resp_next_offset(d, &o));
    cr_assert_eq(o.partition, 0);
    cr_assert_eq(o.committed, 40);
    cr_assert_eq(o.end, 50);
    cr_assert_eq(o.lag_records, 10);
    cr_assert_eq(o.lag_ms, 1234);
    cr_assert(proto_describe_group_resp_next_offset(d, &o));
    cr_assert_eq(o.partition, 3);
    cr_assert_eq(o.lag_records, 0);
    cr_assert_not(proto_describe_group_resp_next_offset(d, &o));
    struct proto_topic t;
    cr_assert_not(proto_next_topic(d, &t));
}

Test(proto, describe_group_round_trip_and_skips_members_not_read)
{
    size_t n = req_of(PROTO_API_DESCRIBE_GROUP);
    struct rd r = req_body(buf, n, PROTO_API_DESCRIBE_GROUP);
    struct proto_str g;
    cr_assert_eq(proto_describe_group_req_decode(&r, 0, &g), 0);
    cr_assert(str_is(g, "group-1"));

    n = resp_of(PROTO_API_DESCRIBE_GROUP);
    for (int read = 0; read < 2; read++) {
        r = resp_body(buf, n);
        struct proto_describe_group_resp resp;
        struct proto_dec d;
        cr_assert_eq(proto_describe_group_resp_decode(&r, 0, &resp, &d), 0);
        cr_assert_eq(resp.err, 0);
        cr_assert_eq(resp.kind, PROTO_GROUP_KIND_CONSUMER);
        cr_assert_eq(resp.generation, 6);
        cr_assert_eq(d.topic_count, 2, "the member count");
        expect_describe(&d, read == 1);
    }
    /* A member's topics half read, then the next member. */
    r = resp_body(buf, n);
    struct proto_describe_group_resp resp;
    struct proto_dec d;
    cr_assert_eq(proto_describe_group_resp_decode(&r, 0, &resp, &d), 0);
    struct proto_group_member_desc m;
    cr_assert(proto_describe_group_resp_next_member(&d, &m));
    int32_t p;
    expect_topic(&d, "alpha", 2);
    cr_assert(proto_next_partition_index(&d, &p));
    cr_assert(proto_describe_group_resp_next_member(&d, &m));
    cr_assert(str_is(m.member_id, "member-2"));
    expect_describe(&d, false);
}

Test(proto, describe_group_with_an_error_has_empty_arrays)
{
    struct wr w = wr_make(buf, sizeof buf);
    struct proto_enc e;
    proto_describe_group_resp_begin(&e, &w, 0, 3,
                                    &(struct proto_describe_group_resp){-NG_ENOTFOUND, 0, -1});
    cr_assert_eq(proto_enc_end(&e), 0, "the offsets array is implied");
    cr_assert_eq(w.pos, 4 + PROTO_RESP_HEADER_BYTES + 2 + 1 + 4 + 4 + 4);
    struct rd r = resp_body(buf, w.pos);
    struct proto_describe_group_resp resp;
    struct proto_dec d;
    cr_assert_eq(proto_describe_group_resp_decode(&r, 0, &resp, &d), 0);
    cr_assert_eq(resp.err, -NG_ENOTFOUND);
    cr_assert_eq(resp.generation, -1);
    struct proto_group_member_desc m;
    cr_assert_not(proto_describe_group_resp_next_member(&d, &m));
    proto_describe_group_resp_seek_offsets(&d);
    struct proto_topic t;
    cr_assert_not(proto_next_topic(&d, &t));

    /* Members over their limit. */
    w = wr_make(scratch, sizeof scratch);
    proto_describe_group_resp_begin(&e, &w, 0, 3, &(struct proto_describe_group_resp){0, 0, 1});
    for (int i = 0; i <= PROTO_GROUP_MEMBERS_MAX; i++) {
        proto_describe_group_resp_member(&e, proto_str_make("m"));
    }
    cr_assert_eq(proto_enc_end(&e), -NG_EBADCOUNT);
    /* Header, then error, kind, generation and the member count. */
    uint8_t raw[6 + 2 + 1 + 4 + 4 + 4] = {0};
    put_be32(raw + 13, PROTO_GROUP_MEMBERS_MAX + 1);
    cr_assert_eq(decode_response(PROTO_API_DESCRIBE_GROUP, raw, sizeof raw), -NG_EBADCOUNT);
    put_be32(raw + 13, 0);
    cr_assert_eq(decode_response(PROTO_API_DESCRIBE_GROUP, raw, sizeof raw), 0);
}

Test(proto, reset_offsets_round_trip_and_bad_targets)
{
    size_t n = req_of(PROTO_API_RESET_OFFSETS);
    struct rd r = req_body(buf, n, PROTO_API_RESET_OFFSETS);
    struct proto_reset_offsets_req req;
    struct proto_dec d;
    cr_assert_eq(proto_reset_offsets_req_decode(&r, 0, &req, &d), 0);
    cr_assert(str_is(req.group, "group-1"));
    cr_assert_eq(req.to, PROTO_RESET_TIMESTAMP);
    cr_assert_eq(req.value, 1700000000000);
    expect_index_topics(&d);

    n = resp_of(PROTO_API_RESET_OFFSETS);
    r = resp_body(buf, n);
    int err = -1;
    cr_assert_eq(proto_reset_offsets_resp_decode(&r, 0, &err, &d), 0);
    cr_assert_eq(err, 0);
    struct proto_partition_offset po;
    expect_topic(&d, "alpha", 2);
    cr_assert(proto_next_partition_offset(&d, &po));
    cr_assert_eq(po.offset, 42);

    const struct {
        int8_t to;
        int64_t value;
        int rc;
    } cases[] = {
        {PROTO_RESET_EARLIEST, -5, 0},
        {PROTO_RESET_LATEST, 0, 0},
        {PROTO_RESET_OFFSET, 0, 0},
        {PROTO_RESET_OFFSET, -1, -NG_EBADARG},
        {PROTO_RESET_TIMESTAMP, -1, -NG_EBADARG},
        {4, 0, -NG_EBADARG},
        {-1, 0, -NG_EBADARG},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        struct wr w = wr_make(buf, sizeof buf);
        struct proto_enc e;
        req = (struct proto_reset_offsets_req){proto_str_make("g"), cases[i].to, cases[i].value};
        proto_reset_offsets_req_begin(&e, &w, 0, 1, CID, &req);
        cr_assert_eq(proto_enc_end(&e), 0);
        r = req_body(buf, w.pos, PROTO_API_RESET_OFFSETS);
        cr_assert_eq(proto_reset_offsets_req_decode(&r, 0, &req, &d), cases[i].rc, "case %zu", i);
    }
}

Test(proto, share_fetch_round_trip)
{
    size_t n = req_of(PROTO_API_SHARE_FETCH);
    struct rd r = req_body(buf, n, PROTO_API_SHARE_FETCH);
    struct proto_share_fetch_req req;
    struct proto_dec d;
    cr_assert_eq(proto_share_fetch_req_decode(&r, 0, &req, &d), 0);
    cr_assert(str_is(req.group, "group-1"));
    cr_assert_eq(req.member_id.len, 0);
    cr_assert_eq(req.wait_max_ms, 500);
    cr_assert_eq(req.records_max, 100);
    expect_index_topics(&d);

    n = resp_of(PROTO_API_SHARE_FETCH);
    r = resp_body(buf, n);
    struct proto_share_fetch_resp resp;
    cr_assert_eq(proto_share_fetch_resp_decode(&r, 0, &resp, &d), 0);
    cr_assert(str_is(resp.member_id, "member-0000000000000001"));
    struct proto_share_fetch_resp_partition p;
    struct proto_share_acquired a;
    expect_topic(&d, "alpha", 2);
    cr_assert(proto_share_fetch_resp_next_partition(&d, &p));
    cr_assert_eq(p.partition, 0);
    cr_assert_eq(p.acquired_count, 2);
    cr_assert_null(p.acquired);
    for (uint32_t i = 0; i < 2; i++) {
        proto_share_fetch_acquired(&p, i, &a);
        cr_assert_eq(a.first, sample_acquired[i].first);
        cr_assert_eq(a.last, sample_acquired[i].last);
        cr_assert_eq(a.delivery_count, sample_acquired[i].delivery_count);
    }
    cr_assert_eq(p.records_bytes, sizeof batch_a);
    cr_assert_eq(memcmp(p.records, batch_a, sizeof batch_a), 0);
    cr_assert(p.records >= buf && p.records < buf + n, "records point into the frame");
    cr_assert(proto_share_fetch_resp_next_partition(&d, &p));
    cr_assert_eq(p.err, -NG_EUNKNOWN_TOPIC);
    cr_assert_eq(p.acquired_count, 0);
    cr_assert_eq(p.records_bytes, 0);
    cr_assert_not(proto_share_fetch_resp_next_partition(&d, &p));
}

Test(proto, share_fetch_response_takes_records_written_in_place)
{
    struct wr w = wr_make(buf, sizeof buf);
    struct proto_enc e;
    proto_share_fetch_resp_begin(&e, &w, 0, 9,
                                 &(struct proto_share_fetch_resp){0, proto_str_make("m")});
    proto_enc_topic(&e, proto_str_make("alpha"));
    struct proto_share_fetch_resp_partition p = {
        .partition = 0, .acquired_count = 2, .acquired = sample_acquired};
    proto_share_fetch_resp_partition_begin(&e, &p);
    uint8_t *at = wr_take(e.w, 100);
    memcpy(at, batch_a, sizeof batch_a);
    e.w->pos -= 100 - sizeof batch_a; /* trimmed back */
    proto_share_fetch_resp_partition_end(&e);
    cr_assert_eq(proto_enc_end(&e), 0);
    size_t zero_copy = w.pos;
    size_t copied = sample_response(PROTO_API_SHARE_FETCH, scratch, sizeof scratch);
    /* The sample has a second partition (4 + 2 + 4 + 4 bytes), another
     * member id ("member-0000000000000001" is 22 bytes longer than "m"). */
    cr_assert_eq(copied - zero_copy, 14 + 22);
    struct rd r = resp_body(buf, zero_copy);
    struct proto_share_fetch_resp resp;
    struct proto_dec d;
    cr_assert_eq(proto_share_fetch_resp_decode(&r, 0, &resp, &d), 0);
    expect_topic(&d, "alpha", 1);
    struct proto_share_fetch_resp_partition got;
    cr_assert(proto_share_fetch_resp_next_partition(&d, &got));
    cr_assert_eq(got.records_bytes, sizeof batch_a);
}

Test(proto, share_fetch_refuses_negative_limits_and_too_many_ranges)
{
    int32_t bad[][2] = {{-1, 10}, {10, -1}};
    for (int i = 0; i < 2; i++) {
        struct wr w = wr_make(buf, sizeof buf);
        struct proto_enc e;
        struct proto_share_fetch_req req = {proto_str_make("g"), proto_str_make(""), bad[i][0],
                                            bad[i][1]};
        proto_share_fetch_req_begin(&e, &w, 0, 1, CID, &req);
        cr_assert_eq(proto_enc_end(&e), 0);
        struct rd r = req_body(buf, w.pos, PROTO_API_SHARE_FETCH);
        struct proto_dec d;
        cr_assert_eq(proto_share_fetch_req_decode(&r, 0, &req, &d), -NG_EBADARG);
    }
    struct wr w = wr_make(scratch, sizeof scratch);
    struct proto_enc e;
    proto_share_fetch_resp_begin(&e, &w, 0, 1,
                                 &(struct proto_share_fetch_resp){0, proto_str_make("m")});
    proto_enc_topic(&e, proto_str_make("t"));
    proto_share_fetch_resp_partition(
        &e, &(struct proto_share_fetch_resp_partition){.acquired_count = PROTO_SHARE_RANGES_MAX + 1,
                                                       .acquired = sample_acquired});
    cr_assert_eq(proto_enc_end(&e), -NG_EBADCOUNT);
    cr_assert_eq(w.pos, 0);
    /* A forged range count: over the limit, then past the bytes. */
    uint8_t resp[64];
    w = wr_make(resp, sizeof resp);
    wr_be32(&w, 1); /* correlation id */
    wr_be16(&w, 0); /* error */
    wr_be16(&w, 0);
    wr_be16(&w, 1);
    wr_u8(&w, 'm');
    wr_be32(&w, 1);
    wr_be16(&w, 1);
    wr_u8(&w, 't');
    wr_be32(&w, 1);
    wr_be32(&w, 0);
    wr_be16(&w, 0);
    size_t count_at = w.pos;
    wr_be32(&w, 0);
    wr_be32(&w, 0); /* records: empty */
    cr_assert_eq(decode_response(PROTO_API_SHARE_FETCH, resp, w.pos), 0);
    put_be32(resp + count_at, PROTO_SHARE_RANGES_MAX + 1);
    cr_assert_eq(decode_response(PROTO_API_SHARE_FETCH, resp, w.pos), -NG_EBADCOUNT);
    put_be32(resp + count_at, 1);
    cr_assert_eq(decode_response(PROTO_API_SHARE_FETCH, resp, w.pos), -NG_ETRUNCATED);
}

Test(proto, share_ack_round_trip_and_bad_types)
{
    size_t n = req_of(PROTO_API_SHARE_ACK);
    struct rd r = req_body(buf, n, PROTO_API_SHARE_ACK);
    struct proto_share_ack_req req;
    struct proto_dec d;
    cr_assert_eq(proto_share_ack_req_decode(&r, 0, &req, &d), 0);
    cr_assert(str_is(req.group, "group-1"));
    cr_assert(str_is(req.member_id, "member-0000000000000001"));
    struct proto_share_ack_req_partition p;
    struct proto_share_ack a;
    expect_topic(&d, "alpha", 2);
    cr_assert(proto_share_ack_req_next_partition(&d, &p));
    cr_assert_eq(p.ack_count, 3);
    for (uint32_t i = 0; i < 3; i++) {
        proto_share_ack_at(&p, i, &a);
        cr_assert_eq(a.first, sample_acks[i].first);
        cr_assert_eq(a.last, sample_acks[i].last);
        cr_assert_eq(a.type, sample_acks[i].type);
    }
    cr_assert(proto_share_ack_req_next_partition(&d, &p));
    cr_assert_eq(p.partition, 1);
    cr_assert_eq(p.ack_count, 0);
    cr_assert_not(proto_share_ack_req_next_partition(&d, &p));

    n = resp_of(PROTO_API_SHARE_ACK);
    r = resp_body(buf, n);
    cr_assert_eq(proto_share_ack_resp_decode(&r, 0, &d), 0);
    struct proto_partition_result pr;
    expect_topic(&d, "alpha", 2);
    cr_assert(proto_next_partition_result(&d, &pr));
    cr_assert(proto_next_partition_result(&d, &pr));
    cr_assert_eq(pr.err, -NG_EILLEGAL_GENERATION);

    /* An unknown type anywhere refuses the whole request. */
    int8_t bad[] = {3, -1, 127};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        struct proto_share_ack acks[] = {{1, 1, PROTO_ACK_ACCEPT}, {2, 3, bad[i]}};
        struct wr w = wr_make(buf, sizeof buf);
        struct proto_enc e;
        proto_share_ack_req_begin(
            &e, &w, 0, 1, CID,
            &(struct proto_share_ack_req){proto_str_make("g"), proto_str_make("m")});
        proto_enc_topic(&e, proto_str_make("a"));
        proto_share_ack_req_partition(&e,
                                      &(struct proto_share_ack_req_partition){0, 0, NULL, NULL});
        proto_enc_topic(&e, proto_str_make("b"));
        proto_share_ack_req_partition(&e,
                                      &(struct proto_share_ack_req_partition){7, 2, acks, NULL});
        cr_assert_eq(proto_enc_end(&e), 0);
        r = req_body(buf, w.pos, PROTO_API_SHARE_ACK);
        cr_assert_eq(proto_share_ack_req_decode(&r, 0, &req, &d), -NG_EBADARG, "type %d", bad[i]);
    }
}

Test(proto, dlq_redrive_round_trip)
{
    size_t n = req_of(PROTO_API_DLQ_REDRIVE);
    struct rd r = req_body(buf, n, PROTO_API_DLQ_REDRIVE);
    struct proto_dlq_redrive_req req;
    cr_assert_eq(proto_dlq_redrive_req_decode(&r, 0, &req), 0);
    cr_assert(str_is(req.topic, "alpha.dlq"));
    cr_assert_eq(req.records_max, PROTO_REDRIVE_RECORDS_ALL, "v0 has no limit");
    n = resp_of(PROTO_API_DLQ_REDRIVE);
    r = resp_body(buf, n);
    struct proto_dlq_redrive_resp resp;
    cr_assert_eq(proto_dlq_redrive_resp_decode(&r, 0, &resp), 0);
    cr_assert_eq(resp.err, 0);
    cr_assert_eq(resp.records, 17);
    cr_assert_eq(resp.read, -1, "v0 has no read: its reader takes records");
    cr_assert_eq(resp.remaining, 0);
}

Test(proto, dlq_redrive_v1_carries_a_record_limit_and_what_remains)
{
    cr_assert_eq(proto_api_version_max(PROTO_API_DLQ_REDRIVE), 1);
    struct wr w = wr_make(buf, sizeof buf);
    struct proto_dlq_redrive_req in = {proto_str_make("alpha.dlq"), 250};
    cr_assert_eq(proto_dlq_redrive_req_encode(&w, 1, 7, CID, &in), 0);
    struct rd r = req_body(buf, w.pos, PROTO_API_DLQ_REDRIVE);
    struct proto_dlq_redrive_req req;
    cr_assert_eq(proto_dlq_redrive_req_decode(&r, 1, &req), 0);
    cr_assert(str_is(req.topic, "alpha.dlq"));
    cr_assert_eq(req.records_max, 250);
    /* A v1 request read as v0 has bytes left over. */
    r = req_body(buf, w.pos, PROTO_API_DLQ_REDRIVE);
    cr_assert_neq(proto_dlq_redrive_req_decode(&r, 0, &req), 0);
    /* No limit, or a negative one, is refused. */
    for (int32_t bad = -1; bad <= 0; bad++) {
        w = wr_make(buf, sizeof buf);
        in.records_max = bad;
        cr_assert_eq(proto_dlq_redrive_req_encode(&w, 1, 7, CID, &in), 0);
        r = req_body(buf, w.pos, PROTO_API_DLQ_REDRIVE);
        cr_assert_eq(proto_dlq_redrive_req_decode(&r, 1, &req), -NG_EBADARG, "limit %d", bad);
    }
    w = wr_make(buf, sizeof buf);
    struct proto_dlq_redrive_resp out = {0, 240, 250, 1234567890123};
    cr_assert_eq(proto_dlq_redrive_resp_encode(&w, 1, 9, &out), 0);
    r = resp_body(buf, w.pos);
    struct proto_dlq_redrive_resp resp;
    cr_assert_eq(proto_dlq_redrive_resp_decode(&r, 1, &resp), 0);
    cr_assert_eq(resp.records, 240);
    cr_assert_eq(resp.read, 250);
    cr_assert_eq(resp.remaining, 1234567890123);
    r = resp_body(buf, w.pos);
    cr_assert_neq(proto_dlq_redrive_resp_decode(&r, 0, &resp), 0, "a v1 answer read as v0");
}

Test(proto, group_encoders_check_their_partition_element)
{
    /* A bare index is the Heartbeat response's element; it is written
     * exactly as the shared encoder writes it. */
    struct wr w = wr_make(buf, sizeof buf);
    struct proto_enc e;
    proto_heartbeat_resp_begin(&e, &w, 0, 1, &(struct proto_heartbeat_resp){0, 1, false});
    proto_enc_topic(&e, proto_str_make("t"));
    proto_enc_partition_index(&e, 7);
    cr_assert_eq(proto_enc_end(&e), 0);
    static const uint8_t want[] = {0, 0, 0, 1, 0, 0,    /* header */
                                   0, 0, 0, 0, 0, 1, 0, /* err, generation, rebalancing */
                                   0, 0, 0, 1, 0, 1, 't', 0, 0, 0, 1, 0, 0, 0, 7};
    cr_assert_eq(w.pos, 4 + sizeof want);
    cr_assert_eq(get_be32(buf), sizeof want);
    cr_assert_eq(memcmp(buf + 4, want, sizeof want), 0);
}

/* ---- wire sizes (net/proto.h): what the encoders write ---- */

Test(proto, wire_sizes_are_what_the_encoders_write)
{
    struct wr w = wr_make(buf, sizeof buf);
    struct proto_enc e;
    proto_fetch_resp_begin(&e, &w, 0, 1);
    size_t at = w.pos;
    proto_enc_topic(&e, proto_str_make("topic"));
    cr_assert_eq(w.pos - at, PROTO_TOPIC_BYTES(5));
    at = w.pos;
    proto_fetch_resp_partition(&e, &(struct proto_fetch_resp_partition){.partition = 1});
    cr_assert_eq(w.pos - at, PROTO_FETCH_RESP_PARTITION_BYTES(0));
    cr_assert_eq(proto_enc_end(&e), 0);

    w = wr_make(buf, sizeof buf);
    proto_fetch_resp_begin(&e, &w, 1, 1);
    proto_enc_topic(&e, proto_str_make("topic"));
    at = w.pos;
    proto_fetch_resp_partition(&e, &(struct proto_fetch_resp_partition){.partition = 1});
    cr_assert_eq(w.pos - at, PROTO_FETCH_RESP_PARTITION_BYTES(1));
    cr_assert_eq(proto_enc_end(&e), 0);

    w = wr_make(buf, sizeof buf);
    proto_replica_fetch_req_begin(&e, &w, 0, 1, CID, &(struct proto_replica_fetch_req){0});
    proto_enc_topic(&e, proto_str_make("t"));
    at = w.pos;
    proto_replica_fetch_req_partition(&e, &(struct proto_replica_fetch_req_partition){0});
    cr_assert_eq(w.pos - at, PROTO_REPLICA_FETCH_REQ_PARTITION_BYTES);
    cr_assert_eq(proto_enc_end(&e), 0);

    w = wr_make(buf, sizeof buf);
    proto_replica_fetch_resp_begin(&e, &w, 0, 1);
    proto_enc_topic(&e, proto_str_make("t"));
    at = w.pos;
    proto_replica_fetch_resp_partition(&e, &(struct proto_replica_fetch_resp_partition){0});
    cr_assert_eq(w.pos - at, PROTO_REPLICA_FETCH_RESP_PARTITION_BYTES);
    cr_assert_eq(proto_enc_end(&e), 0);

    w = wr_make(buf, sizeof buf);
    proto_epoch_req_begin(&e, &w, 0, 1, CID);
    proto_enc_topic(&e, proto_str_make("t"));
    at = w.pos;
    proto_epoch_req_partition(&e, &(struct proto_epoch_req_partition){0});
    cr_assert_eq(w.pos - at, PROTO_EPOCH_REQ_PARTITION_BYTES);
    cr_assert_eq(proto_enc_end(&e), 0);

    w = wr_make(buf, sizeof buf);
    proto_epoch_resp_begin(&e, &w, 0, 1);
    proto_enc_topic(&e, proto_str_make("t"));
    at = w.pos;
    proto_epoch_resp_partition(&e, &(struct proto_epoch_resp_partition){0});
    cr_assert_eq(w.pos - at, PROTO_EPOCH_RESP_PARTITION_BYTES);
    cr_assert_eq(proto_enc_end(&e), 0);

    w = wr_make(buf, sizeof buf);
    proto_offset_commit_req_begin(
        &e, &w, 0, 1, proto_str_make("c"),
        &(struct proto_offset_commit_req){proto_str_make("g"), PROTO_STR_NULL, -1});
    proto_enc_topic(&e, proto_str_make("t"));
    at = w.pos;
    proto_offset_commit_req_partition(&e, &(struct proto_offset_commit_req_partition){0, 5});
    cr_assert_eq(w.pos - at, PROTO_COMMIT_PARTITION_BYTES);
    cr_assert_eq(proto_enc_end(&e), 0);

    w = wr_make(buf, sizeof buf);
    proto_list_offsets_req_begin(&e, &w, 0, 1, proto_str_make("c"));
    proto_enc_topic(&e, proto_str_make("t"));
    at = w.pos;
    proto_list_offsets_req_partition(&e, &(struct proto_list_offsets_req_partition){0, -1});
    cr_assert_eq(w.pos - at, PROTO_LIST_OFFSETS_PARTITION_BYTES);
    cr_assert_eq(proto_enc_end(&e), 0);

    w = wr_make(buf, sizeof buf);
    proto_offset_commit_resp_begin(&e, &w, 0, 1);
    proto_enc_topic(&e, proto_str_make("t"));
    at = w.pos;
    proto_enc_partition_result(&e, &(struct proto_partition_result){0, 0});
    cr_assert_eq(w.pos - at, PROTO_PARTITION_RESULT_BYTES);
    cr_assert_eq(proto_enc_end(&e), 0);

    w = wr_make(buf, sizeof buf);
    proto_offset_fetch_resp_begin(&e, &w, 0, 1);
    proto_enc_topic(&e, proto_str_make("t"));
    at = w.pos;
    proto_enc_partition_offset(&e, &(struct proto_partition_offset){0, 7, 0});
    cr_assert_eq(w.pos - at, PROTO_PARTITION_OFFSET_BYTES);
    cr_assert_eq(proto_enc_end(&e), 0);

    w = wr_make(buf, sizeof buf);
    proto_offset_fetch_req_begin(&e, &w, 0, 1, proto_str_make("c"), proto_str_make("g"), false);
    proto_enc_topic(&e, proto_str_make("t"));
    at = w.pos;
    proto_enc_partition_index(&e, 3);
    cr_assert_eq(w.pos - at, PROTO_PARTITION_INDEX_BYTES);
    cr_assert_eq(proto_enc_end(&e), 0);
}

Test(proto, wire_sizes_of_metadata_describe_and_share_messages)
{
    struct wr w = wr_make(buf, sizeof buf);
    struct proto_enc e;
    struct proto_metadata_resp m = {proto_str_make("h"), 1};
    proto_metadata_resp_begin(&e, &w, 1, 1, &m);
    size_t at = w.pos;
    proto_metadata_resp_topic_config(&e, proto_str_make("t"), 0, &(struct proto_topic_config){0});
    cr_assert_eq(w.pos - at,
                 PROTO_TOPIC_BYTES(1) + PROTO_ERR_BYTES + PROTO_METADATA_TOPIC_CONFIG_BYTES,
                 "name, error, configuration, partition count");
    at = w.pos;
    proto_metadata_resp_partition(&e, &(struct proto_metadata_partition){0, 0, 0, 0});
    cr_assert_eq(w.pos - at, PROTO_METADATA_PARTITION_BYTES);
    cr_assert_eq(proto_enc_end(&e), 0);

    w = wr_make(buf, sizeof buf);
    proto_describe_group_resp_begin(&e, &w, 0, 1, &(struct proto_describe_group_resp){0});
    at = w.pos;
    proto_describe_group_resp_member(&e, proto_str_make("m-1"));
    cr_assert_eq(w.pos - at, PROTO_MEMBER_DESC_BYTES(3));
    proto_describe_group_resp_offsets(&e);
    proto_enc_topic(&e, proto_str_make("t"));
    at = w.pos;
    proto_describe_group_resp_offset(&e, &(struct proto_group_offset_desc){0});
    cr_assert_eq(w.pos - at, PROTO_OFFSET_DESC_BYTES);
    cr_assert_eq(proto_enc_end(&e), 0);

    w = wr_make(buf, sizeof buf);
    proto_list_groups_resp_begin(&e, &w, 0, 1);
    at = w.pos;
    proto_list_groups_resp_group(&e, &(struct proto_group_listing){.group = proto_str_make("gg")});
    cr_assert_eq(w.pos - at, PROTO_GROUP_LISTING_BYTES(2));
    cr_assert_eq(proto_enc_end(&e), 0);

    w = wr_make(buf, sizeof buf);
    proto_share_fetch_resp_begin(&e, &w, 0, 1,
                                 &(struct proto_share_fetch_resp){0, proto_str_make("1")});
    proto_enc_topic(&e, proto_str_make("t"));
    struct proto_share_acquired acq[3] = {{0, 0, 1}, {2, 5, 1}, {9, 9, 2}};
    for (uint32_t n = 0; n <= 3; n++) {
        at = w.pos;
        proto_share_fetch_resp_partition(
            &e, &(struct proto_share_fetch_resp_partition){.acquired_count = n, .acquired = acq});
        cr_assert_eq(w.pos - at,
                     PROTO_SHARE_FETCH_RESP_PARTITION_BYTES + n * PROTO_SHARE_ACQUIRED_BYTES);
    }
    cr_assert_eq(proto_enc_end(&e), 0);

    w = wr_make(buf, sizeof buf);
    proto_share_ack_req_begin(
        &e, &w, 0, 1, proto_str_make("c"),
        &(struct proto_share_ack_req){proto_str_make("g"), proto_str_make("1")});
    proto_enc_topic(&e, proto_str_make("t"));
    struct proto_share_ack acks[2] = {{0, 0, PROTO_ACK_ACCEPT}, {1, 4, PROTO_ACK_RELEASE}};
    for (uint32_t n = 1; n <= 2; n++) {
        at = w.pos;
        proto_share_ack_req_partition(
            &e, &(struct proto_share_ack_req_partition){.ack_count = n, .acks = acks});
        cr_assert_eq(w.pos - at, PROTO_SHARE_ACK_PARTITION_BYTES + n * PROTO_SHARE_ACK_RANGE_BYTES);
    }
    cr_assert_eq(proto_enc_end(&e), 0);
}

/* ---- a cluster: Metadata v2, CreateTopics v1 ---- */

static const struct proto_metadata_partition sample_v2_part = {
    .partition = 0,
    .offset_earliest = 5,
    .offset_latest = 10,
    .leader = 2,
    .leader_epoch = 7,
    .replica_count = 3,
    .replicas = {2, 1, 3},
    .isr_count = 2,
    .isr = {2, 3},
};

/* Two brokers, controller 1; topic alpha (a partition led by broker 2 and
 * one without a leader), topic gone (an error). */
static size_t metadata_v2_response(uint8_t *out, size_t cap)
{
    struct wr w = wr_make(out, cap);
    struct proto_enc e;
    struct proto_metadata_resp m = {
        .host = proto_str_make("127.0.0.2"), .port = 7421, .broker_id = 2, .controller_id = 1};
    proto_metadata_resp_begin(&e, &w, 2, 9, &m);
    proto_metadata_resp_broker(&e, &(struct proto_broker){1, proto_str_make("127.0.0.1"), 7420});
    proto_metadata_resp_broker(&e, &(struct proto_broker){2, proto_str_make("127.0.0.2"), 7421});
    proto_metadata_resp_topic_config(&e, proto_str_make("alpha"), 0, &sample_cfg);
    proto_metadata_resp_partition(&e, &sample_v2_part);
    proto_metadata_resp_partition(&e,
                                  &(struct proto_metadata_partition){.partition = 1,
                                                                     .leader = PROTO_BROKER_NONE,
                                                                     .leader_epoch = 3,
                                                                     .replica_count = 1,
                                                                     .replicas = {4}});
    proto_metadata_resp_topic(&e, proto_str_make("gone"), -NG_EUNKNOWN_TOPIC);
    cr_assert_eq(proto_enc_end(&e), 0);
    return w.pos;
}

Test(proto, metadata_v2_round_trips_brokers_leaders_and_replicas)
{
    size_t n = metadata_v2_response(buf, sizeof buf);
    struct rd r = frame_rd(buf, n, true);
    struct proto_resp_header h;
    cr_assert_eq(proto_resp_header_decode(&r, &h), 0);
    struct proto_metadata_resp m;
    struct proto_dec d;
    cr_assert_eq(proto_metadata_resp_decode(&r, 2, &m, &d), 0);
    cr_assert(str_is(m.host, "127.0.0.2"));
    cr_assert_eq(m.port, 7421);
    cr_assert_eq(m.broker_id, 2);
    cr_assert_eq(m.controller_id, 1);
    cr_assert_eq(m.broker_count, 2);
    cr_assert_eq(d.topic_count, 2);
    /* Topics first: the brokers stay readable. */
    struct proto_topic t;
    struct proto_metadata_partition p;
    cr_assert(proto_next_topic(&d, &t));
    cr_assert(str_is(t.name, "alpha"));
    cr_assert_eq(memcmp(&t.config, &sample_cfg, sizeof sample_cfg), 0);
    cr_assert(proto_metadata_resp_next_partition(&d, &p));
    cr_assert_eq(p.offset_latest, 10);
    cr_assert_eq(p.leader, 2);
    cr_assert_eq(p.leader_epoch, 7);
    cr_assert_eq(p.replica_count, 3);
    cr_assert_eq(memcmp(p.replicas, sample_v2_part.replicas, 3 * sizeof(int32_t)), 0);
    cr_assert_eq(p.isr_count, 2);
    cr_assert_eq(p.isr[0], 2);
    cr_assert_eq(p.isr[1], 3);
    cr_assert(proto_metadata_resp_next_partition(&d, &p));
    cr_assert_eq(p.partition, 1);
    cr_assert_eq(p.leader, PROTO_BROKER_NONE);
    cr_assert_eq(p.leader_epoch, 3);
    cr_assert_eq(p.replica_count, 1);
    cr_assert_eq(p.replicas[0], 4);
    cr_assert_eq(p.isr_count, 0);
    cr_assert_not(proto_metadata_resp_next_partition(&d, &p));
    cr_assert(proto_next_topic(&d, &t));
    cr_assert_eq(t.err, -NG_EUNKNOWN_TOPIC);
    cr_assert_not(proto_next_topic(&d, &t));
    struct proto_broker b;
    cr_assert(proto_metadata_resp_next_broker(&m, &b));
    cr_assert_eq(b.id, 1);
    cr_assert(str_is(b.host, "127.0.0.1"));
    cr_assert_eq(b.port, 7420);
    cr_assert(proto_metadata_resp_next_broker(&m, &b));
    cr_assert_eq(b.id, 2);
    cr_assert_eq(b.port, 7421);
    cr_assert_not(proto_metadata_resp_next_broker(&m, &b));
}

Test(proto, metadata_v2_without_brokers_or_topics_round_trips)
{
    struct wr w = wr_make(buf, sizeof buf);
    struct proto_enc e;
    struct proto_metadata_resp m = {
        .host = proto_str_make("h"), .port = 1, .broker_id = 0, .controller_id = PROTO_BROKER_NONE};
    proto_metadata_resp_begin(&e, &w, 2, 9, &m);
    cr_assert_eq(proto_enc_end(&e), 0);
    cr_assert_eq(w.pos, 4 + PROTO_RESP_HEADER_BYTES + PROTO_STR_BYTES(1) + 2 +
                            PROTO_METADATA_V2_HEAD_BYTES + 4);
    struct rd r = frame_rd(buf, w.pos, true);
    struct proto_resp_header h;
    cr_assert_eq(proto_resp_header_decode(&r, &h), 0);
    struct proto_dec d;
    cr_assert_eq(proto_metadata_resp_decode(&r, 2, &m, &d), 0);
    cr_assert_eq(m.controller_id, PROTO_BROKER_NONE);
    cr_assert_eq(m.broker_count, 0);
    cr_assert_eq(d.topic_count, 0);
    struct proto_broker b;
    cr_assert_not(proto_metadata_resp_next_broker(&m, &b));
}

Test(proto, metadata_v1_decodes_without_leaders_or_brokers)
{
    size_t n = metadata_v1_response(buf, sizeof buf);
    struct rd r = frame_rd(buf, n, true);
    struct proto_resp_header h;
    cr_assert_eq(proto_resp_header_decode(&r, &h), 0);
    struct proto_metadata_resp m;
    struct proto_dec d;
    cr_assert_eq(proto_metadata_resp_decode(&r, 1, &m, &d), 0);
    cr_assert_eq(m.broker_count, 0);
    cr_assert_eq(m.broker_id, PROTO_BROKER_NONE);
    struct proto_broker b;
    cr_assert_not(proto_metadata_resp_next_broker(&m, &b));
    struct proto_topic t;
    struct proto_metadata_partition p;
    cr_assert(proto_next_topic(&d, &t));
    cr_assert(proto_metadata_resp_next_partition(&d, &p));
    cr_assert_eq(p.leader, PROTO_BROKER_NONE);
    cr_assert_eq(p.replica_count, 0);
}

Test(proto, metadata_v2_truncated_extended_or_read_as_v1_is_refused)
{
    size_t n = metadata_v2_response(scratch, sizeof scratch);
    cr_assert_eq(decode_metadata(scratch + 4, n - 4, 2), 0);
    cr_assert_lt(decode_metadata(scratch + 4, n - 4, 1), 0);
    for (size_t cut = 0; cut < n - 4; cut++) {
        uint8_t *p = malloc(cut + 1);
        memcpy(p, scratch + 4, cut);
        int rc = decode_metadata(p, cut, 2);
        free(p);
        cr_assert_lt(rc, 0, "cut at %zu decoded", cut);
    }
    scratch[n] = 0;
    cr_assert_eq(decode_metadata(scratch + 4, n - 3, 2), -NG_EBADLEN);
    n = metadata_v1_response(scratch, sizeof scratch);
    cr_assert_lt(decode_metadata(scratch + 4, n - 4, 2), 0);
}

/* A Metadata v2 response body by hand: header, no host, broker ids, then
 * `brokers` brokers and one topic of one partition with `replicas`
 * replicas (count as written) and no ISR. */
static size_t metadata_v2_raw(uint8_t *out, size_t cap, int32_t brokers, int32_t replicas,
                              int32_t replicas_written)
{
    struct wr w = wr_make(out, cap);
    wr_be32(&w, 9);
    wr_be16(&w, 0);
    wr_be16(&w, 1);
    wr_u8(&w, 'h');
    wr_be16(&w, 7420);
    wr_be32(&w, 0);
    wr_be32(&w, 0);
    wr_be32(&w, (uint32_t)brokers);
    for (int32_t i = 0; i < brokers; i++) {
        wr_be32(&w, (uint32_t)i);
        wr_be16(&w, 1);
        wr_u8(&w, 'b');
        wr_be16(&w, 1);
    }
    wr_be32(&w, 1);
    wr_be16(&w, 1);
    wr_u8(&w, 't');
    wr_be16(&w, 0);
    wr_be32(&w, 1);
    for (int i = 0; i < 4; i++) {
        wr_be64(&w, 0);
    }
    wr_be32(&w, 0);
    wr_be32(&w, 1);
    wr_be32(&w, 0);
    wr_be16(&w, 0);
    wr_be64(&w, 0);
    wr_be64(&w, 0);
    wr_be32(&w, 0);
    wr_be32(&w, 0);
    wr_be32(&w, (uint32_t)replicas);
    for (int32_t i = 0; i < replicas_written; i++) {
        wr_be32(&w, (uint32_t)i);
    }
    wr_be32(&w, 0);
    cr_assert_eq(w.err, 0);
    return w.pos;
}

Test(proto, metadata_v2_counts_are_checked_against_their_limits)
{
    size_t n = metadata_v2_raw(scratch, sizeof scratch, 2, PROTO_REPLICAS_MAX, PROTO_REPLICAS_MAX);
    cr_assert_eq(decode_metadata(scratch, n, 2), 0);
    n = metadata_v2_raw(scratch, sizeof scratch, 2, PROTO_REPLICAS_MAX + 1, PROTO_REPLICAS_MAX + 1);
    cr_assert_eq(decode_metadata(scratch, n, 2), -NG_EBADCOUNT);
    n = metadata_v2_raw(scratch, sizeof scratch, 2, -1, 0);
    cr_assert_eq(decode_metadata(scratch, n, 2), -NG_EBADCOUNT);
    n = metadata_v2_raw(scratch, sizeof scratch, 2, 3, 1); /* more than the bytes left */
    cr_assert_lt(decode_metadata(scratch, n, 2), 0);
    n = metadata_v2_raw(scratch, sizeof scratch, PROTO_BROKERS_MAX, 1, 1);
    cr_assert_eq(decode_metadata(scratch, n, 2), 0);
    n = metadata_v2_raw(scratch, sizeof scratch, PROTO_BROKERS_MAX + 1, 1, 1);
    cr_assert_eq(decode_metadata(scratch, n, 2), -NG_EBADCOUNT);
    n = metadata_v2_raw(scratch, sizeof scratch, -1, 1, 1);
    cr_assert_eq(decode_metadata(scratch, n, 2), -NG_EBADCOUNT);
}

Test(proto, metadata_v2_encoder_refuses_too_many_brokers_or_replicas)
{
    struct wr w = wr_make(buf, sizeof buf);
    struct proto_enc e;
    struct proto_metadata_resp m = {.host = proto_str_make("h"), .port = 1};
    proto_metadata_resp_begin(&e, &w, 2, 9, &m);
    proto_metadata_resp_topic(&e, proto_str_make("t"), 0);
    struct proto_metadata_partition p = sample_v2_part;
    p.replica_count = PROTO_REPLICAS_MAX + 1;
    proto_metadata_resp_partition(&e, &p);
    cr_assert_eq(proto_enc_end(&e), -NG_EBADCOUNT);
    cr_assert_eq(w.pos, 0);

    proto_metadata_resp_begin(&e, &w, 2, 9, &m);
    for (int32_t i = 0; i <= PROTO_BROKERS_MAX; i++) {
        proto_metadata_resp_broker(&e, &(struct proto_broker){i, proto_str_make("b"), 1});
    }
    cr_assert_eq(proto_enc_end(&e), -NG_EBADCOUNT);
    cr_assert_eq(w.pos, 0);
}

Test(proto, wire_sizes_of_metadata_v2)
{
    struct wr w = wr_make(buf, sizeof buf);
    struct proto_enc e;
    struct proto_metadata_resp m = {.host = proto_str_make("h"), .port = 1};
    proto_metadata_resp_begin(&e, &w, 2, 1, &m);
    cr_assert_eq(w.pos, 4 + PROTO_RESP_HEADER_BYTES + PROTO_STR_BYTES(1) + 2 +
                            PROTO_METADATA_V2_HEAD_BYTES);
    size_t at = w.pos;
    proto_metadata_resp_broker(&e, &(struct proto_broker){1, proto_str_make("host-1"), 7420});
    cr_assert_eq(w.pos - at, PROTO_BROKER_BYTES(6));
    proto_metadata_resp_topic(&e, proto_str_make("t"), 0);
    at = w.pos;
    proto_metadata_resp_partition(&e, &sample_v2_part);
    cr_assert_eq(w.pos - at, PROTO_METADATA_PARTITION_V2_BYTES(3, 2));
    cr_assert_eq(proto_enc_end(&e), 0);
}

static size_t create_topics_request(uint16_t version, int16_t rf)
{
    struct wr w = wr_make(buf, sizeof buf);
    struct proto_enc e;
    proto_create_topics_req_begin(&e, &w, version, 7, CID);
    struct proto_create_topic t = {proto_str_make("alpha"), 3, 1000, -2, 1 << 20, 65536, rf};
    proto_create_topics_req_topic(&e, &t);
    cr_assert_eq(proto_enc_end(&e), 0);
    return w.pos;
}

static struct proto_create_topic create_topics_decoded(size_t n, uint16_t version)
{
    struct rd r = frame_rd(buf, n, false);
    struct proto_req_header h;
    cr_assert_eq(proto_req_header_decode(&r, &h), 0);
    cr_assert_eq(h.api_version, version);
    struct proto_dec d;
    cr_assert_eq(proto_create_topics_req_decode(&r, version, &d), 0);
    struct proto_create_topic t;
    cr_assert(proto_create_topics_req_next(&d, &t));
    cr_assert(str_is(t.name, "alpha"));
    cr_assert_eq(t.partition_count, 3);
    cr_assert_eq(t.retention_bytes, PROTO_CONFIG_UNLIMITED);
    cr_assert_eq(t.batch_bytes_max, 65536);
    cr_assert_not(proto_create_topics_req_next(&d, &t));
    return t;
}

Test(proto, create_topics_v1_carries_a_replication_factor)
{
    size_t n1 = create_topics_request(1, 3);
    cr_assert_eq(create_topics_decoded(n1, 1).replication_factor, 3);
    n1 = create_topics_request(1, -1);
    cr_assert_eq(create_topics_decoded(n1, 1).replication_factor, -1);
    /* v0 has no such field: decoded, the broker's default. */
    size_t n0 = create_topics_request(0, 3);
    cr_assert_eq(n1 - n0, 2);
    cr_assert_eq(create_topics_decoded(n0, 0).replication_factor, PROTO_CONFIG_DEFAULT);
    /* The versions do not decode each other's bodies. */
    struct rd r = frame_rd(buf, n0, false);
    struct proto_req_header h;
    cr_assert_eq(proto_req_header_decode(&r, &h), 0);
    struct proto_dec d;
    cr_assert_lt(proto_create_topics_req_decode(&r, 1, &d), 0);
    /* The response is v0's. */
    struct wr w = wr_make(buf, sizeof buf);
    struct proto_enc e;
    proto_create_topics_resp_begin(&e, &w, 1, 9);
    proto_enc_topic_result(
        &e, &(struct proto_topic_result){proto_str_make("a"), -NG_ENOT_ENOUGH_REPLICAS});
    cr_assert_eq(proto_enc_end(&e), 0);
    r = frame_rd(buf, w.pos, true);
    struct proto_resp_header rh;
    cr_assert_eq(proto_resp_header_decode(&r, &rh), 0);
    cr_assert_eq(proto_create_topics_resp_decode(&r, 1, &d), 0);
    struct proto_topic_result tr;
    cr_assert(proto_next_topic_result(&d, &tr));
    cr_assert_eq(tr.err, -NG_ENOT_ENOUGH_REPLICAS);
}

Test(proto, create_topics_v1_truncated_is_refused)
{
    size_t n = create_topics_request(1, 3);
    memcpy(scratch, buf, n);
    for (size_t cut = 0; cut < n - 4; cut++) {
        uint8_t *p = malloc(cut + 1);
        memcpy(p, scratch + 4, cut);
        struct rd r = rd_make(p, cut);
        struct proto_req_header h;
        int rc = proto_req_header_decode(&r, &h);
        struct proto_dec d;
        rc = rc != 0 ? rc : proto_create_topics_req_decode(&r, 1, &d);
        free(p);
        cr_assert_lt(rc, 0, "cut at %zu decoded", cut);
    }
}

/* ---- ReassignPartitions, Metadata v3, CreateTopics v2 ---- */

Test(proto, reassign_partitions_round_trip)
{
    cr_assert_str_eq(proto_api_name(PROTO_API_REASSIGN_PARTITIONS), "ReassignPartitions");
    size_t n = sample_request(PROTO_API_REASSIGN_PARTITIONS, buf, sizeof buf);
    struct rd r = frame_rd(buf, n, false);
    struct proto_req_header h;
    cr_assert_eq(proto_req_header_decode(&r, &h), 0);
    struct proto_dec d;
    cr_assert_eq(proto_reassign_req_decode(&r, 0, &d), 0);
    cr_assert_eq(d.topic_count, 2);
    cr_assert_eq(d.partition_count, 2);
    struct proto_topic t;
    struct proto_reassign_partition p;
    cr_assert(proto_next_topic(&d, &t));
    cr_assert(str_is(t.name, "alpha"));
    for (int i = 0; i < 2; i++) {
        cr_assert(proto_reassign_req_next_partition(&d, &p));
        cr_assert_eq(p.partition, sample_reassign[i].partition);
        cr_assert_eq(p.replica_count, sample_reassign[i].replica_count);
        cr_assert_arr_eq(p.replicas, sample_reassign[i].replicas,
                         p.replica_count * sizeof(p.replicas[0]));
    }
    cr_assert_not(proto_reassign_req_next_partition(&d, &p));
    cr_assert(proto_next_topic(&d, &t));
    cr_assert(str_is(t.name, "beta"));
    cr_assert_not(proto_reassign_req_next_partition(&d, &p));
    cr_assert_not(proto_next_topic(&d, &t));

    n = sample_response(PROTO_API_REASSIGN_PARTITIONS, buf, sizeof buf);
    r = frame_rd(buf, n, true);
    struct proto_resp_header rh;
    cr_assert_eq(proto_resp_header_decode(&r, &rh), 0);
    cr_assert_eq(proto_reassign_resp_decode(&r, 0, &d), 0);
    struct proto_partition_result pr;
    cr_assert(proto_next_topic(&d, &t));
    cr_assert(proto_next_partition_result(&d, &pr));
    cr_assert_eq(pr.partition, 0);
    cr_assert_eq(pr.err, 0);
    cr_assert(proto_next_partition_result(&d, &pr));
    cr_assert_eq(pr.partition, 3);
    cr_assert_eq(pr.err, -NG_EBADARG);
    cr_assert_not(proto_next_partition_result(&d, &pr));
}

Test(proto, reassign_partitions_wire_size_and_replica_limit)
{
    struct wr w = wr_make(buf, sizeof buf);
    struct proto_enc e;
    proto_reassign_req_begin(&e, &w, 0, 7, CID);
    proto_enc_topic(&e, proto_str_make("t"));
    size_t at = w.pos;
    proto_reassign_req_partition(&e, &sample_reassign[0]);
    cr_assert_eq(w.pos - at, PROTO_REASSIGN_PARTITION_BYTES(2));
    cr_assert_eq(proto_enc_end(&e), 0);
    size_t n = w.pos;

    /* An encoder refuses more ids than the wire's limit... */
    w = wr_make(scratch, sizeof scratch);
    proto_reassign_req_begin(&e, &w, 0, 7, CID);
    proto_enc_topic(&e, proto_str_make("t"));
    struct proto_reassign_partition big = {.partition = 0, .replica_count = PROTO_REPLICAS_MAX + 1};
    proto_reassign_req_partition(&e, &big);
    cr_assert_eq(proto_enc_end(&e), -NG_EBADCOUNT);

    /* ...and a decoder an id count over it, or past the body. */
    struct rd r = frame_rd(buf, n, false);
    struct proto_req_header h;
    cr_assert_eq(proto_req_header_decode(&r, &h), 0);
    size_t count_at = n - 2 * 4 - 4; /* the id count before the two ids */
    put_be32(buf + count_at, PROTO_REPLICAS_MAX + 1);
    r = frame_rd(buf, n, false);
    cr_assert_eq(proto_req_header_decode(&r, &h), 0);
    struct proto_dec d;
    cr_assert_eq(proto_reassign_req_decode(&r, 0, &d), -NG_EBADCOUNT);
    put_be32(buf + count_at, 3);
    r = frame_rd(buf, n, false);
    cr_assert_eq(proto_req_header_decode(&r, &h), 0);
    cr_assert_eq(proto_reassign_req_decode(&r, 0, &d), -NG_ETRUNCATED);
}

static const struct proto_metadata_partition sample_v3_part = {
    .partition = 0,
    .offset_earliest = 5,
    .offset_latest = 10,
    .leader = 2,
    .leader_epoch = 8,
    .replica_count = 3,
    .replicas = {4, 2, 1},
    .isr_count = 2,
    .isr = {2, 1},
    .target_count = 2,
    .target = {4, 2},
};

/* A Metadata answer of one topic with sample_v3_part at version v. */
static size_t metadata_target_response(uint16_t v)
{
    struct wr w = wr_make(buf, sizeof buf);
    struct proto_enc e;
    struct proto_metadata_resp m = {.host = proto_str_make("h"), .port = 1, .controller_id = 2};
    proto_metadata_resp_begin(&e, &w, v, 1, &m);
    proto_metadata_resp_broker(&e, &(struct proto_broker){2, proto_str_make("h"), 7420});
    proto_metadata_resp_topic(&e, proto_str_make("t"), 0);
    size_t at = w.pos;
    proto_metadata_resp_partition(&e, &sample_v3_part);
    cr_assert_eq(w.pos - at, v >= 3 ? PROTO_METADATA_PARTITION_V3_BYTES(3, 2, 2)
                                    : PROTO_METADATA_PARTITION_V2_BYTES(3, 2));
    cr_assert_eq(proto_enc_end(&e), 0);
    return w.pos;
}

static struct proto_metadata_partition metadata_target_decoded(size_t n, uint16_t v)
{
    struct rd r = frame_rd(buf, n, true);
    struct proto_resp_header rh;
    cr_assert_eq(proto_resp_header_decode(&r, &rh), 0);
    struct proto_metadata_resp m;
    struct proto_dec d;
    cr_assert_eq(proto_metadata_resp_decode(&r, v, &m, &d), 0);
    struct proto_topic t;
    struct proto_metadata_partition p;
    cr_assert(proto_next_topic(&d, &t));
    cr_assert(proto_metadata_resp_next_partition(&d, &p));
    cr_assert_not(proto_metadata_resp_next_partition(&d, &p));
    cr_assert_eq(p.replica_count, 3);
    cr_assert_eq(p.isr_count, 2);
    return p;
}

Test(proto, metadata_v3_carries_a_reassignment_target)
{
    size_t n = metadata_target_response(3);
    struct proto_metadata_partition p = metadata_target_decoded(n, 3);
    cr_assert_eq(p.target_count, 2);
    cr_assert_eq(p.target[0], 4);
    cr_assert_eq(p.target[1], 2);
    /* v2 has no such field: encoded without it, decoded as none. */
    size_t n2 = metadata_target_response(2);
    cr_assert_eq(n - n2, 4 + 2 * 4);
    cr_assert_eq(metadata_target_decoded(n2, 2).target_count, 0);
    /* Neither version decodes the other's body. */
    struct rd r = frame_rd(buf, n2, true);
    struct proto_resp_header rh;
    cr_assert_eq(proto_resp_header_decode(&r, &rh), 0);
    struct proto_metadata_resp m;
    struct proto_dec d;
    cr_assert_lt(proto_metadata_resp_decode(&r, 3, &m, &d), 0);
}

Test(proto, create_topics_v2_carries_the_unclean_election_flag)
{
    cr_assert_eq(proto_api_version_max(PROTO_API_CREATE_TOPICS), 2);
    struct wr w = wr_make(buf, sizeof buf);
    struct proto_enc e;
    proto_create_topics_req_begin(&e, &w, 2, 7, CID);
    struct proto_create_topic t = {proto_str_make("alpha"), 3, 1000, -2, 1 << 20, 65536, 3, 1};
    proto_create_topics_req_topic(&e, &t);
    cr_assert_eq(proto_enc_end(&e), 0);
    size_t n2 = w.pos;
    struct proto_create_topic got = create_topics_decoded(n2, 2);
    cr_assert_eq(got.replication_factor, 3);
    cr_assert_eq(got.unclean_leader_election, 1);
    /* v1 has no such field: one byte shorter, decoded as 0. */
    size_t n1 = create_topics_request(1, 3);
    cr_assert_eq(n2 - n1, 1);
    cr_assert_eq(create_topics_decoded(n1, 1).unclean_leader_election, 0);
}

/* ---- ACLs ---- */

Test(proto, acl_names_and_codes_round_trip)
{
    cr_assert_str_eq(proto_acl_name(PROTO_ACL_VOCAB_OP, PROTO_ACL_OP_DESCRIBE_CONFIGS),
                     "describe_configs");
    cr_assert_eq(proto_acl_code(PROTO_ACL_VOCAB_OP, "Describe-Configs", 16),
                 PROTO_ACL_OP_DESCRIBE_CONFIGS);
    cr_assert_eq(proto_acl_code(PROTO_ACL_VOCAB_PATTERN, "prefixed", 8),
                 PROTO_ACL_PATTERN_PREFIXED);
    cr_assert_eq(proto_acl_code(PROTO_ACL_VOCAB_PERMISSION, "allo", 4), 0, "a prefix is no name");
    cr_assert_eq(proto_acl_code(PROTO_ACL_VOCAB_RESOURCE, "topics", 6), 0);
    cr_assert_null(proto_acl_name(PROTO_ACL_VOCAB_RESOURCE, 5));
    for (int8_t c = 1; c <= PROTO_ACL_OP_IDEMPOTENT_WRITE; c++) {
        const char *n = proto_acl_name(PROTO_ACL_VOCAB_OP, c);
        cr_assert_not_null(n);
        cr_assert_eq(proto_acl_code(PROTO_ACL_VOCAB_OP, n, strlen(n)), c);
    }
}

Test(proto, acls_round_trip_with_null_filter_strings)
{
    size_t n = sample_request(PROTO_API_CREATE_ACLS, buf, sizeof buf);
    struct rd r = frame_rd(buf, n, false);
    struct proto_req_header h;
    cr_assert_eq(proto_req_header_decode(&r, &h), 0);
    struct proto_dec d;
    cr_assert_eq(proto_create_acls_req_decode(&r, 0, &d), 0);
    cr_assert_eq(d.topic_count, 2);
    struct proto_acl a;
    cr_assert(proto_next_acl(&d, &a));
    cr_assert(str_is(a.name, "orders") && str_is(a.principal, "User:alice") && str_is(a.host, "*"));
    cr_assert_eq(a.pattern_type, PROTO_ACL_PATTERN_PREFIXED);
    cr_assert_eq(a.operation, PROTO_ACL_OP_WRITE);
    cr_assert(proto_next_acl(&d, &a));
    cr_assert_eq(a.permission, PROTO_ACL_PERMISSION_DENY);
    cr_assert(!proto_next_acl(&d, &a));

    n = sample_request(PROTO_API_DELETE_ACLS, buf, sizeof buf);
    r = frame_rd(buf, n, false);
    cr_assert_eq(proto_req_header_decode(&r, &h), 0);
    cr_assert_eq(proto_acl_filter_req_decode(&r, PROTO_API_DELETE_ACLS, 0, &a), 0);
    cr_assert(str_is(a.name, "orders-1"));
    cr_assert_eq(a.principal.len, -1);
    cr_assert_eq(a.host.len, -1);
    /* A null where an ACL (not a filter) must have a string is refused. */
    struct wr w = wr_make(buf, sizeof buf);
    struct proto_enc e;
    proto_create_acls_req_begin(&e, &w, 0, 7, CID);
    struct proto_acl bad = sample_acls[0];
    bad.host = PROTO_STR_NULL;
    proto_enc_acl(&e, &bad);
    cr_assert_eq(proto_enc_end(&e), -NG_EBADLEN);
}

struct names_seen {
    int groups;
    int topics;
    char last[64];
};

static int note_name(void *arg, enum proto_name_kind kind, struct proto_str name)
{
    struct names_seen *n = arg;
    if (kind == PROTO_NAME_GROUP) {
        n->groups++;
    } else {
        n->topics++;
    }
    snprintf(n->last, sizeof(n->last), "%.*s", (int)name.len, name.ptr);
    return 0;
}

static struct names_seen names_of(int api)
{
    size_t n = sample_request(api, buf, sizeof buf);
    struct rd r = frame_rd(buf, n, false);
    struct proto_req_header h;
    cr_assert_eq(proto_req_header_decode(&r, &h), 0);
    struct names_seen seen = {0};
    cr_assert_eq(proto_req_names(&r, h.api_key, h.api_version, note_name, &seen), 0, "api %d", api);
    return seen;
}

Test(proto, req_names_gives_the_group_and_every_topic)
{
    struct names_seen n = names_of(PROTO_API_PRODUCE);
    cr_assert_eq(n.groups, 0);
    cr_assert_eq(n.topics, 2);
    cr_assert_str_eq(n.last, "beta");
    n = names_of(PROTO_API_OFFSET_COMMIT);
    cr_assert_eq(n.groups, 1);
    cr_assert_gt(n.topics, 0);
    n = names_of(PROTO_API_DLQ_REDRIVE);
    cr_assert_eq(n.topics, 1);
    cr_assert_str_eq(n.last, "alpha.dlq");
    n = names_of(PROTO_API_CREATE_TOPICS);
    cr_assert_gt(n.topics, 0);
    n = names_of(PROTO_API_HEARTBEAT);
    cr_assert_eq(n.groups, 1);
    cr_assert_eq(n.topics, 0);
    /* Every request of every api walks, and a malformed one is refused. */
    for (int api = 0; api < PROTO_API_COUNT; api++) {
        if (proto_api_known((uint16_t)api)) {
            (void)names_of(api);
        }
    }
    size_t len = sample_request(PROTO_API_PRODUCE, buf, sizeof buf);
    struct rd r = rd_make(buf + 4, len - 4 - 1); /* its last byte cut */
    struct proto_req_header h;
    cr_assert_eq(proto_req_header_decode(&r, &h), 0);
    struct names_seen seen = {0};
    cr_assert_lt(proto_req_names(&r, h.api_key, h.api_version, note_name, &seen), 0);
}

Test(proto, alter_user_refuses_an_unknown_op_or_mechanism_and_sasl_bytes_past_their_limit)
{
    struct proto_alter_user_req u = {.op = 2, .mechanism = 0, .user = proto_str_make("a")};
    struct wr w = wr_make(buf, sizeof buf);
    cr_assert_eq(proto_alter_user_req_encode(&w, 0, 1, CID, &u), 0);
    struct rd r = req_body(buf, w.pos, PROTO_API_ALTER_USER);
    struct proto_alter_user_req out;
    cr_assert_eq(proto_alter_user_req_decode(&r, 0, &out), -NG_EBADARG);
    /* mechanism "all" only with a delete */
    u = (struct proto_alter_user_req){
        .op = PROTO_USER_UPSERT, .mechanism = PROTO_MECH_ALL, .user = proto_str_make("a")};
    w = wr_make(buf, sizeof buf);
    cr_assert_eq(proto_alter_user_req_encode(&w, 0, 1, CID, &u), 0);
    r = req_body(buf, w.pos, PROTO_API_ALTER_USER);
    cr_assert_eq(proto_alter_user_req_decode(&r, 0, &out), -NG_EBADARG);
    u.op = PROTO_USER_DELETE;
    w = wr_make(buf, sizeof buf);
    cr_assert_eq(proto_alter_user_req_encode(&w, 0, 1, CID, &u), 0);
    r = req_body(buf, w.pos, PROTO_API_ALTER_USER);
    cr_assert_eq(proto_alter_user_req_decode(&r, 0, &out), 0);
    cr_assert_eq(out.mechanism, PROTO_MECH_ALL);

    static uint8_t big[PROTO_SASL_BYTES_MAX + 1];
    struct proto_sasl_bytes b = {.bytes = big, .len = sizeof big};
    w = wr_make(buf, sizeof buf);
    cr_assert_eq(proto_sasl_authenticate_req_encode(&w, 0, 1, CID, &b), 0);
    r = req_body(buf, w.pos, PROTO_API_SASL_AUTHENTICATE);
    struct proto_sasl_bytes got;
    cr_assert_eq(proto_sasl_authenticate_req_decode(&r, 0, &got), -NG_EBADLEN);
    b.len = PROTO_SASL_BYTES_MAX;
    w = wr_make(buf, sizeof buf);
    cr_assert_eq(proto_sasl_authenticate_req_encode(&w, 0, 1, CID, &b), 0);
    r = req_body(buf, w.pos, PROTO_API_SASL_AUTHENTICATE);
    cr_assert_eq(proto_sasl_authenticate_req_decode(&r, 0, &got), 0);
    cr_assert_eq(got.len, PROTO_SASL_BYTES_MAX);
}
