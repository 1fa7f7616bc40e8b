/*
 * tests/test_acl_serve.c — broker/acl_serve.h: every request kind of both
 * protocols has a rule, and a real nagared with the authorizer on refuses
 * every one of them to a principal without ACLs, changing nothing; ACLs
 * managed over nagare's protocol take effect for the requests that follow
 * and survive a restart.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "base/err.h"
#include "broker/acl_serve.h"
#include "broker/kafka_serve.h"
#include "broker/server.h"
#include "broker_support.h"
#include "kafka_client_support.h"
#include "net/kafka/codec.h"
#include "net/kafka/errors.h"

TestSuite(acl_serve);

Test(acl_serve, every_served_api_has_a_rule_on_both_protocols)
{
    int served = 0;
    for (uint16_t k = 0; k < PROTO_API_COUNT; k++) {
        if (server_api_served(k)) {
            served++;
            cr_assert_neq(server_api_rule(k)->kind, ACL_RULE_UNSET, "nagare api %u (%s)", k,
                          proto_api_name(k));
        }
    }
    cr_assert_gt(served, 20);
    served = 0;
    for (uint32_t i = 0; i < KAFKA_API_COUNT; i++) {
        int16_t key = kafka_apis[i].key;
        if (kafka_serve_served(key)) {
            served++;
            const struct acl_rule *r = kafka_serve_rule(key);
            cr_assert(r != NULL && r->kind != ACL_RULE_UNSET, "Kafka api %d (%s)", key,
                      kafka_apis[i].name);
        }
    }
    cr_assert_gt(served, 20);
}

/* ---- a real broker ---- */

static struct bk B;
static struct cl C;

static void setup(void) { bk_init(&B); }

static void teardown(void)
{
    cl_close(&C);
    bk_fini(&B);
}

#define CID proto_str_make("acl-test")

/* One request of api, naming topic "t" and group "g" where it names any. */
static void encode_sample(struct wr *w, uint16_t api, uint32_t corr, const uint8_t *sample_batch,
                          size_t sample_bytes)
{
    struct proto_enc e;
    struct proto_str t = proto_str_make("t");
    struct proto_str g = proto_str_make("g");
    struct proto_str m = proto_str_make("member-0000000000000001");
    int rc = 0;
    switch (api) {
    case PROTO_API_API_VERSIONS:
        rc = proto_api_versions_req_encode(w, 0, corr, CID);
        break;
    case PROTO_API_METADATA:
        proto_metadata_req_begin(&e, w, 0, corr, CID, false);
        proto_enc_topic(&e, t);
        rc = proto_enc_end(&e);
        break;
    case PROTO_API_CREATE_TOPICS:
        proto_create_topics_req_begin(&e, w, 0, corr, CID);
        proto_create_topics_req_topic(
            &e, &(struct proto_create_topic){.name = proto_str_make("new-topic"),
                                             .partition_count = 1,
                                             .retention_ms = PROTO_CONFIG_DEFAULT,
                                             .retention_bytes = PROTO_CONFIG_DEFAULT,
                                             .segment_bytes = PROTO_CONFIG_DEFAULT,
                                             .batch_bytes_max = PROTO_CONFIG_DEFAULT});
        rc = proto_enc_end(&e);
        break;
    case PROTO_API_DELETE_TOPICS:
        proto_delete_topics_req_begin(&e, w, 0, corr, CID);
        proto_enc_topic(&e, t);
        rc = proto_enc_end(&e);
        break;
    case PROTO_API_PRODUCE:
        proto_produce_req_begin(&e, w, 0, corr, CID, &(struct proto_produce_req){1, 5000});
        proto_enc_topic(&e, t);
        proto_produce_req_partition(
            &e, &(struct proto_produce_req_partition){.partition = 0,
                                                      .records = sample_batch,
                                                      .records_bytes = (uint32_t)sample_bytes});
        rc = proto_enc_end(&e);
        break;
    case PROTO_API_FETCH:
        proto_fetch_req_begin(&e, w, 0, corr, CID, &(struct proto_fetch_req){0, 0, 1 << 20});
        proto_enc_topic(&e, t);
        proto_fetch_req_partition(&e, &(struct proto_fetch_req_partition){0, 0, 1 << 20});
        rc = proto_enc_end(&e);
        break;
    case PROTO_API_LIST_OFFSETS:
        proto_list_offsets_req_begin(&e, w, 0, corr, CID);
        proto_enc_topic(&e, t);
        proto_list_offsets_req_partition(&e, &(struct proto_list_offsets_req_partition){0, -1});
        rc = proto_enc_end(&e);
        break;
    case PROTO_API_INIT_PRODUCER_ID:
        rc = proto_init_producer_id_req_encode(w, 0, corr, CID);
        break;
    case PROTO_API_JOIN_GROUP:
        proto_join_group_req_begin(&e, w, 0, corr, CID,
                                   &(struct proto_join_group_req){g, PROTO_STR_NULL, 10000});
        proto_enc_topic(&e, t);
        rc = proto_enc_end(&e);
        break;
    case PROTO_API_HEARTBEAT:
        rc = proto_heartbeat_req_encode(w, 0, corr, CID, &(struct proto_heartbeat_req){g, m, 1});
        break;
    case PROTO_API_LEAVE_GROUP:
        rc = proto_leave_group_req_encode(w, 0, corr, CID, &(struct proto_leave_group_req){g, m});
        break;
    case PROTO_API_OFFSET_COMMIT:
        proto_offset_commit_req_begin(&e, w, 0, corr, CID,
                                      &(struct proto_offset_commit_req){g, PROTO_STR_NULL, -1});
        proto_enc_topic(&e, t);
        proto_offset_commit_req_partition(&e, &(struct proto_offset_commit_req_partition){0, 0});
        rc = proto_enc_end(&e);
        break;
    case PROTO_API_OFFSET_FETCH:
        proto_offset_fetch_req_begin(&e, w, 0, corr, CID, g, true);
        rc = proto_enc_end(&e);
        break;
    case PROTO_API_LIST_GROUPS:
        rc = proto_list_groups_req_encode(w, 0, corr, CID);
        break;
    case PROTO_API_DESCRIBE_GROUP:
        rc = proto_describe_group_req_encode(w, 0, corr, CID, g);
        break;
    case PROTO_API_DELETE_GROUP:
        rc = proto_delete_group_req_encode(w, 0, corr, CID, g);
        break;
    case PROTO_API_RESET_OFFSETS:
        proto_reset_offsets_req_begin(&e, w, 0, corr, CID,
                                      &(struct proto_reset_offsets_req){g, PROTO_RESET_LATEST, 0});
        proto_enc_topic(&e, t);
        proto_enc_partition_index(&e, 0);
        rc = proto_enc_end(&e);
        break;
    case PROTO_API_SHARE_FETCH:
        proto_share_fetch_req_begin(&e, w, 0, corr, CID,
                                    &(struct proto_share_fetch_req){g, m, 0, 10});
        proto_enc_topic(&e, t);
        proto_enc_partition_index(&e, 0);
        rc = proto_enc_end(&e);
        break;
    case PROTO_API_SHARE_ACK: {
        static const struct proto_share_ack ack = {.first = 0, .last = 0, .type = PROTO_ACK_ACCEPT};
        proto_share_ack_req_begin(&e, w, 0, corr, CID, &(struct proto_share_ack_req){g, m});
        proto_enc_topic(&e, t);
        proto_share_ack_req_partition(&e, &(struct proto_share_ack_req_partition){
                                              .partition = 0, .ack_count = 1, .acks = &ack});
        rc = proto_enc_end(&e);
        break;
    }
    case PROTO_API_DLQ_REDRIVE:
        rc = proto_dlq_redrive_req_encode(
            w, 0, corr, CID, &(struct proto_dlq_redrive_req){t, PROTO_REDRIVE_RECORDS_ALL});
        break;
    case PROTO_API_REPLICA_FETCH:
        proto_replica_fetch_req_begin(&e, w, 0, corr, CID,
                                      &(struct proto_replica_fetch_req){1, 0, 0, 1 << 20});
        proto_enc_topic(&e, t);
        proto_replica_fetch_req_partition(&e,
                                          &(struct proto_replica_fetch_req_partition){0, 0, 0, 0});
        rc = proto_enc_end(&e);
        break;
    case PROTO_API_OFFSET_FOR_LEADER_EPOCH:
        proto_epoch_req_begin(&e, w, 0, corr, CID);
        proto_enc_topic(&e, t);
        proto_epoch_req_partition(&e, &(struct proto_epoch_req_partition){0, 0, 0});
        rc = proto_enc_end(&e);
        break;
    case PROTO_API_REASSIGN_PARTITIONS:
        proto_reassign_req_begin(&e, w, 0, corr, CID);
        proto_enc_topic(&e, t);
        proto_reassign_req_partition(&e, &(struct proto_reassign_partition){0, 1, {0}});
        rc = proto_enc_end(&e);
        break;
    case PROTO_API_CREATE_ACLS:
        proto_create_acls_req_begin(&e, w, 0, corr, CID);
        proto_enc_acl(&e,
                      &(struct proto_acl){PROTO_ACL_RESOURCE_TOPIC, PROTO_ACL_PATTERN_LITERAL, t,
                                          proto_str_make(PROTO_ACL_ANY_USER), proto_str_make("*"),
                                          PROTO_ACL_OP_ALL, PROTO_ACL_PERMISSION_ALLOW});
        rc = proto_enc_end(&e);
        break;
    case PROTO_API_SASL_HANDSHAKE: /* open: answered as without an authorizer */
        rc = proto_sasl_handshake_req_encode(w, 0, corr, CID, proto_str_make("SCRAM-SHA-256"));
        break;
    case PROTO_API_SASL_AUTHENTICATE:
        rc = proto_sasl_authenticate_req_encode(
            w, 0, corr, CID, &(struct proto_sasl_bytes){.bytes = (const uint8_t *)"x", .len = 1});
        break;
    case PROTO_API_ALTER_USER:
        rc = proto_alter_user_req_encode(
            w, 0, corr, CID,
            &(struct proto_alter_user_req){
                .op = PROTO_USER_DELETE, .mechanism = PROTO_MECH_ALL, .user = proto_str_make("u")});
        break;
    case PROTO_API_DESCRIBE_USERS:
        rc = proto_describe_users_req_encode(w, 0, corr, CID);
        break;
    case PROTO_API_DESCRIBE_ACLS:
    case PROTO_API_DELETE_ACLS:
        rc = proto_acl_filter_req_encode(
            w, api, 0, corr, CID,
            &(struct proto_acl){PROTO_ACL_RESOURCE_ANY, PROTO_ACL_PATTERN_ANY, PROTO_STR_NULL,
                                PROTO_STR_NULL, PROTO_STR_NULL, PROTO_ACL_OP_ANY,
                                PROTO_ACL_PERMISSION_ANY});
        break;
    default:
        cr_assert_fail("api %u (%s) is served but this test has no request for it", api,
                       proto_api_name(api));
    }
    cr_assert_eq(rc, 0, "api %u: %s", api, err_str(rc));
}

static uint8_t sample_batch[4096];
static size_t sample_bytes;

/* Starts B with the authorizer as said (the other settings kept). */
static void start(bool authorizer)
{
    B.set_count = 0;
    bk_set(&B, "auto_create_topics=true");
    bk_set(&B, authorizer ? "authorizer=true" : "authorizer=false");
    bk_start(&B);
    cl_connect(&C, B.port, CL_TIMEOUT_MS_DEFAULT);
}

static void stop(void)
{
    cl_close(&C);
    bk_stop(&B);
}

/* Topic t with 3 records, and group g's committed offset 2 on it. */
static void seed_state(void)
{
    sample_bytes = bt_make(sample_batch, sizeof(sample_batch), 3, 1, 1000, -1, 0, 0);
    int64_t off = -1;
    cr_assert_eq(rq_create(&C, "t", 1), 0);
    cr_assert_eq(rq_produce(&C, "t", 0, sample_batch, sample_bytes, PROTO_ACKS_ALL, &off), 0);
    struct wr *w = cl_wr(&C);
    struct proto_enc e;
    uint32_t corr = cl_next_corr(&C);
    proto_offset_commit_req_begin(
        &e, w, 0, corr, CID,
        &(struct proto_offset_commit_req){proto_str_make("g"), PROTO_STR_NULL, -1});
    proto_enc_topic(&e, proto_str_make("t"));
    proto_offset_commit_req_partition(&e, &(struct proto_offset_commit_req_partition){0, 2});
    cr_assert_eq(proto_enc_end(&e), 0);
    cr_assert_eq(cl_send_wr(&C), 0);
    struct rd body;
    cl_expect(&C, corr, &body);
}

/* Group g's committed offset on t/0, -1 for none. */
static int64_t committed_g(void)
{
    struct wr *w = cl_wr(&C);
    struct proto_enc e;
    uint32_t corr = cl_next_corr(&C);
    proto_offset_fetch_req_begin(&e, w, 0, corr, CID, proto_str_make("g"), false);
    proto_enc_topic(&e, proto_str_make("t"));
    proto_enc_partition_index(&e, 0);
    cr_assert_eq(proto_enc_end(&e), 0);
    cr_assert_eq(cl_send_wr(&C), 0);
    struct rd body;
    cl_expect(&C, corr, &body);
    struct proto_dec d;
    cr_assert_eq(proto_offset_fetch_resp_decode(&body, 0, &d), 0);
    struct proto_topic t;
    struct proto_partition_offset p = {.offset = -1};
    cr_assert(proto_next_topic(&d, &t));
    cr_assert(proto_next_partition_offset(&d, &p));
    return p.offset;
}

/* Sends api's sample and returns the answer's request-level error. */
static int send_sample(uint16_t api, struct rd *body)
{
    struct wr *w = cl_wr(&C);
    uint32_t corr = cl_next_corr(&C);
    encode_sample(w, api, corr, sample_batch, sample_bytes);
    cr_assert_eq(cl_send_wr(&C), 0);
    struct proto_resp_header h;
    cr_assert_eq(cl_recv(&C, &h, body), 0, "api %u", api);
    cr_assert_eq(h.correlation_id, corr);
    return h.err;
}

Test(acl_serve, every_request_is_refused_without_acls_and_changes_nothing, .init = setup,
     .fini = teardown, .timeout = 120)
{
    start(false);
    seed_state();
    stop();
    start(true);
    int refused = 0;
    for (uint16_t api = 0; api < PROTO_API_COUNT; api++) {
        if (!server_api_served(api)) {
            continue;
        }
        struct rd body;
        int err = send_sample(api, &body);
        if (api == PROTO_API_API_VERSIONS || api == PROTO_API_SASL_HANDSHAKE) {
            cr_assert_eq(err, 0, "api %u (%s): logging in needs no ACL", api, proto_api_name(api));
        } else if (api == PROTO_API_SASL_AUTHENTICATE) {
            /* open too: refused as a login, not by the authorizer */
            cr_assert_eq(err, 0, "api %u (%s): logging in needs no ACL", api, proto_api_name(api));
            struct proto_sasl_bytes answer;
            cr_assert_eq(proto_sasl_authenticate_resp_decode(&body, 0, &answer), 0);
            cr_assert_eq(answer.err, -NG_EAUTH, "a login refused as a login: %s",
                         err_str(answer.err));
            cl_close(&C); /* a failed login closes the connection: a new one */
            cl_connect(&C, B.port, CL_TIMEOUT_MS_DEFAULT);
        } else if (api == PROTO_API_METADATA) {
            /* Answered, with the topic refused in its place. */
            cr_assert_eq(err, 0);
            struct proto_metadata_resp m;
            struct proto_dec d;
            cr_assert_eq(proto_metadata_resp_decode(&body, 0, &m, &d), 0);
            struct proto_topic t;
            cr_assert(proto_next_topic(&d, &t));
            cr_assert_eq(t.err, -NG_EUNAUTHORIZED);
            cr_assert_eq(t.partition_count, 0);
        } else {
            cr_assert_eq(err, -NG_EUNAUTHORIZED, "api %u (%s): %s", api, proto_api_name(api),
                         err_str(err));
            refused++;
        }
    }
    cr_assert_gt(refused, 20);
    /* Metadata of every topic lists none of them. */
    struct md md;
    rq_metadata(&C, NULL, &md);
    cr_assert_eq(md.topic_count, 0);
    stop();
    start(false);
    rq_metadata(&C, NULL, &md);
    cr_assert_eq(md.topic_count, 1, "t still there, new-topic never made");
    cr_assert_not_null(md_find(&md, "t"));
    cr_assert_eq(rq_latest(&C, "t", 0), 3, "no record more");
    cr_assert_eq(committed_g(), 2, "the group's offset as it was");
    stop();
}

/* Produces the sample batch to t/0: the request's or the partition's error. */
static int produce_t(void)
{
    struct rd body;
    int err = send_sample(PROTO_API_PRODUCE, &body);
    if (err != 0) {
        return err;
    }
    struct proto_dec d;
    cr_assert_eq(proto_produce_resp_decode(&body, 0, &d), 0);
    struct proto_topic t;
    struct proto_produce_resp_partition p;
    cr_assert(proto_next_topic(&d, &t));
    cr_assert(proto_produce_resp_next_partition(&d, &p));
    return p.err;
}

/* Adds one ACL over nagare's protocol; returns the answer's error. */
static int create_acl(const struct proto_acl *a)
{
    struct wr *w = cl_wr(&C);
    struct proto_enc e;
    uint32_t corr = cl_next_corr(&C);
    proto_create_acls_req_begin(&e, w, 0, corr, CID);
    proto_enc_acl(&e, a);
    cr_assert_eq(proto_enc_end(&e), 0);
    cr_assert_eq(cl_send_wr(&C), 0);
    struct proto_resp_header h;
    struct rd body;
    cr_assert_eq(cl_recv(&C, &h, &body), 0);
    if (h.err != 0) {
        return h.err;
    }
    int err = 0;
    cr_assert_eq(proto_create_acls_resp_decode(&body, 0, &err), 0);
    return err;
}

static const struct proto_acl any_filter = {
    PROTO_ACL_RESOURCE_ANY, PROTO_ACL_PATTERN_ANY,   {NULL, -1}, {NULL, -1}, {NULL, -1},
    PROTO_ACL_OP_ANY,       PROTO_ACL_PERMISSION_ANY};

/* ACLs a DescribeAcls or DeleteAcls with filter f answers; -1 refused. */
static int acl_list(uint16_t api, const struct proto_acl *f)
{
    struct wr *w = cl_wr(&C);
    uint32_t corr = cl_next_corr(&C);
    cr_assert_eq(proto_acl_filter_req_encode(w, api, 0, corr, CID, f), 0);
    cr_assert_eq(cl_send_wr(&C), 0);
    struct proto_resp_header h;
    struct rd body;
    cr_assert_eq(cl_recv(&C, &h, &body), 0);
    if (h.err != 0) {
        return -1;
    }
    struct proto_dec d;
    cr_assert_eq(proto_acl_list_resp_decode(&body, api, 0, &d), 0);
    return d.topic_count;
}

#define ANON proto_str_make(PRINCIPAL_ANONYMOUS)

Test(acl_serve, acls_take_effect_at_once_and_survive_a_restart, .init = setup, .fini = teardown,
     .timeout = 120)
{
    start(false);
    seed_state();
    /* The authorizer off: ACLs may be set up before it is turned on. */
    struct proto_acl admin = {PROTO_ACL_RESOURCE_CLUSTER,
                              PROTO_ACL_PATTERN_LITERAL,
                              proto_str_make(PROTO_ACL_CLUSTER_NAME),
                              ANON,
                              proto_str_make("*"),
                              PROTO_ACL_OP_ALTER,
                              PROTO_ACL_PERMISSION_ALLOW};
    cr_assert_eq(create_acl(&admin), 0);
    admin.operation = PROTO_ACL_OP_DESCRIBE;
    cr_assert_eq(create_acl(&admin), 0);
    struct proto_acl bad = admin;
    bad.name = proto_str_make("not-the-cluster");
    cr_assert_eq(create_acl(&bad), -NG_EBADARG);
    stop();
    start(true);
    cr_assert_eq(acl_list(PROTO_API_DESCRIBE_ACLS, &any_filter), 2, "kept across the restart");
    cr_assert_eq(produce_t(), -NG_EUNAUTHORIZED);
    struct proto_acl writer = {
        PROTO_ACL_RESOURCE_TOPIC,    PROTO_ACL_PATTERN_PREFIXED, proto_str_make("t"),       ANON,
        proto_str_make("127.0.0.1"), PROTO_ACL_OP_WRITE,         PROTO_ACL_PERMISSION_ALLOW};
    cr_assert_eq(create_acl(&writer), 0);
    cr_assert_eq(produce_t(), 0, "allowed by the next request");
    cr_assert_eq(rq_latest(&C, "t", 0), 6, "WRITE implies DESCRIBE (ListOffsets)");
    struct proto_acl deny = writer;
    deny.pattern_type = PROTO_ACL_PATTERN_LITERAL;
    deny.permission = PROTO_ACL_PERMISSION_DENY;
    cr_assert_eq(create_acl(&deny), 0);
    cr_assert_eq(produce_t(), -NG_EUNAUTHORIZED, "deny wins");
    struct proto_acl denies = any_filter;
    denies.permission = PROTO_ACL_PERMISSION_DENY;
    cr_assert_eq(acl_list(PROTO_API_DELETE_ACLS, &denies), 1, "the deny deleted");
    cr_assert_eq(produce_t(), 0);
    stop();
    start(true);
    cr_assert_eq(acl_list(PROTO_API_DESCRIBE_ACLS, &any_filter), 3);
    cr_assert_eq(produce_t(), 0);
    /* Without ALTER on the cluster, ACLs cannot be changed. */
    struct proto_acl alters = any_filter;
    alters.operation = PROTO_ACL_OP_ALTER;
    cr_assert_eq(acl_list(PROTO_API_DELETE_ACLS, &alters), 1);
    cr_assert_eq(create_acl(&deny), -NG_EUNAUTHORIZED);
    cr_assert_eq(acl_list(PROTO_API_DESCRIBE_ACLS, &any_filter), 2);
    stop();
}

/* A Produce is allowed by WRITE on its topic or by cluster_action on the
 * cluster: the brokers' principal writes at a partition's leader for a
 * redrive the redriving broker authorized (broker/forward.h). Any other
 * cluster operation stands for nothing, and cluster_action gives no READ. */
Test(acl_serve, a_produce_needs_write_on_its_topic_or_cluster_action, .init = setup,
     .fini = teardown, .timeout = 120)
{
    start(false);
    seed_state();
    struct proto_acl admin = {PROTO_ACL_RESOURCE_CLUSTER,
                              PROTO_ACL_PATTERN_LITERAL,
                              proto_str_make(PROTO_ACL_CLUSTER_NAME),
                              ANON,
                              proto_str_make("*"),
                              PROTO_ACL_OP_ALTER,
                              PROTO_ACL_PERMISSION_ALLOW};
    cr_assert_eq(create_acl(&admin), 0);
    stop();
    start(true);
    cr_assert_eq(produce_t(), -NG_EUNAUTHORIZED, "ALTER on the cluster is no WRITE");
    struct proto_acl idempotent = admin;
    idempotent.operation = PROTO_ACL_OP_IDEMPOTENT_WRITE;
    cr_assert_eq(create_acl(&idempotent), 0);
    cr_assert_eq(produce_t(), -NG_EUNAUTHORIZED, "nor is IDEMPOTENT_WRITE");
    struct proto_acl brokers = admin;
    brokers.operation = PROTO_ACL_OP_CLUSTER_ACTION;
    cr_assert_eq(create_acl(&brokers), 0);
    cr_assert_eq(produce_t(), 0, "cluster_action stands for WRITE on every topic");
    struct rd body;
    cr_assert_eq(send_sample(PROTO_API_FETCH, &body), -NG_EUNAUTHORIZED, "but not for READ");
    stop();
}

Test(acl_serve, super_users_do_everything_and_a_corrupt_acl_file_stops_the_start, .init = setup,
     .fini = teardown, .timeout = 120)
{
    B.set_count = 0;
    bk_set(&B, "authorizer=true");
    bk_set(&B, "super_users=User:admin,User:ANONYMOUS");
    bk_start(&B);
    cl_connect(&C, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&C, "x", 1), 0);
    cr_assert_eq(rq_delete(&C, "x"), 0);
    cr_assert_eq(create_acl(&(struct proto_acl){PROTO_ACL_RESOURCE_GROUP, PROTO_ACL_PATTERN_LITERAL,
                                                proto_str_make("g"), ANON, proto_str_make("*"),
                                                PROTO_ACL_OP_READ, PROTO_ACL_PERMISSION_DENY}),
                 0);
    cl_close(&C);
    bk_stop(&B);
    char path[BK_PATH_BYTES + 16];
    snprintf(path, sizeof(path), "%s/%s", B.data_dir, ACL_FILE);
    FILE *f = fopen(path, "r+b");
    cr_assert_not_null(f);
    cr_assert_eq(fseek(f, 12, SEEK_SET), 0);
    cr_assert_eq(fputc('!', f), '!');
    fclose(f);
    const char *args[] = {"--data-dir", B.data_dir, "--listen", "127.0.0.1:0", NULL};
    pid_t pid = bk_spawn(args, B.log_path);
    int status = 0;
    cr_assert(bk_wait(pid, BK_STOP_TIMEOUT_MS, &status), "a corrupt ACL file: no start");
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) != 0);
    size_t len;
    char *log = bk_read_file(B.log_path, &len);
    cr_assert_not_null(strstr(log, "/acls: corrupt"), "the log says why");
    free(log);
}

/* ---- Kafka's listener ---- */

/* Every error_code field of a decoded message (s at p), into counts of
 * the authorization failures (29-31) and of the others. */
static void count_errors(const struct kafka_struct *s, const void *p, int *refusals, int *others)
{
    for (uint32_t i = 0; i < s->field_count; i++) {
        const struct kafka_field *f = &s->fields[i];
        const char *at = (const char *)p + f->offset;
        if (f->type == KAFKA_T_INT16 && strcmp(f->name, "error_code") == 0) {
            int16_t e = *(const int16_t *)(const void *)at;
            *(e >= KAFKA_ERR_TOPIC_AUTHORIZATION_FAILED &&
                      e <= KAFKA_ERR_CLUSTER_AUTHORIZATION_FAILED
                  ? refusals
                  : others) += e != 0;
        } else if (f->type == KAFKA_T_STRUCT) {
            count_errors(f->sub, at, refusals, others);
        } else if (f->type == KAFKA_T_ARRAY && f->elem == KAFKA_T_STRUCT) {
            const char *items = *(const char *const *)(const void *)at;
            int32_t n = *(const int32_t *)(const void *)((const char *)p + f->count_offset);
            for (int32_t k = 0; k < n; k++) {
                count_errors(f->sub, items + (size_t)k * f->sub->size, refusals, others);
            }
        }
    }
}

static struct kw_str T(void) {
    return kw_str_make("t");
} static struct kw_str G(void) {
    return kw_str_make("g");
}

/* A request of api naming topic t and group g, at version *v, into req
 * (zeroed storage of KAFKA_REQ_BYTES). Static arrays: one request at a time. */
#define KAFKA_REQ_BYTES 1024
static void
kafka_sample(int16_t api, int16_t *v, void *req)
{
    static struct kw_str names[1];
    static int32_t parts[1];
    names[0] = T();
    const struct kafka_api *ka = kafka_api_find(api);
    *v = ka->versions.max;
    kafka_init(ka->request, req);
    switch (api) {
    case KAFKA_API_PRODUCE: {
        static struct kafka_produce_request_partition_produce_data pd = {.index = 0};
        static struct kafka_produce_request_topic_produce_data td;
        td = (struct kafka_produce_request_topic_produce_data){
            .name = T(), .partition_data = {.items = &pd, .count = 1}};
        struct kafka_produce_request *r = req;
        r->acks = -1;
        r->timeout_ms = 5000;
        r->topic_data.items = &td;
        r->topic_data.count = 1;
        return;
    }
    case KAFKA_API_FETCH: {
        static struct kafka_fetch_request_partition fp = {.partition_max_bytes = 1 << 20};
        static struct kafka_fetch_request_topic ft;
        ft = (struct kafka_fetch_request_topic){.topic = T(), .partitions = {&fp, 1}};
        struct kafka_fetch_request *r = req;
        *v = 11; /* by name */
        r->max_bytes = 1 << 20;
        r->topics.items = &ft;
        r->topics.count = 1;
        return;
    }
    case KAFKA_API_LIST_OFFSETS: {
        static struct kafka_list_offsets_request_partition lp = {.timestamp = -1};
        static struct kafka_list_offsets_request_topic lt;
        lt = (struct kafka_list_offsets_request_topic){.name = T(), .partitions = {&lp, 1}};
        struct kafka_list_offsets_request *r = req;
        r->topics.items = &lt;
        r->topics.count = 1;
        return;
    }
    case KAFKA_API_METADATA: {
        static struct kafka_metadata_request_topic mt;
        mt = (struct kafka_metadata_request_topic){.name = T()};
        struct kafka_metadata_request *r = req;
        r->topics.items = &mt;
        r->topics.count = 1;
        return;
    }
    case KAFKA_API_OFFSET_COMMIT: {
        static struct kafka_offset_commit_request_partition cp = {.committed_offset = 0};
        static struct kafka_offset_commit_request_topic ct;
        ct = (struct kafka_offset_commit_request_topic){.name = T(), .partitions = {&cp, 1}};
        struct kafka_offset_commit_request *r = req;
        r->group_id = G();
        r->topics.items = &ct;
        r->topics.count = 1;
        return;
    }
    case KAFKA_API_OFFSET_FETCH: {
        static struct kafka_offset_fetch_request_topic ot;
        ot =
            (struct kafka_offset_fetch_request_topic){.name = T(), .partition_indexes = {parts, 1}};
        struct kafka_offset_fetch_request *r = req;
        *v = 7; /* one group, by its id */
        r->group_id = G();
        r->topics.items = &ot;
        r->topics.count = 1;
        return;
    }
    case KAFKA_API_FIND_COORDINATOR: {
        static struct kw_str keys[1];
        keys[0] = G();
        struct kafka_find_coordinator_request *r = req;
        r->key = G();
        r->coordinator_keys.items = keys;
        r->coordinator_keys.count = 1;
        return;
    }
    case KAFKA_API_JOIN_GROUP: {
        static struct kafka_join_group_request_protocol jp;
        jp = (struct kafka_join_group_request_protocol){.name = kw_str_make("range")};
        struct kafka_join_group_request *r = req;
        r->group_id = G();
        r->session_timeout_ms = 10000;
        r->rebalance_timeout_ms = 10000;
        r->protocol_type = kw_str_make("consumer");
        r->protocols.items = &jp;
        r->protocols.count = 1;
        return;
    }
    case KAFKA_API_HEARTBEAT:
        ((struct kafka_heartbeat_request *)req)->group_id = G();
        return;
    case KAFKA_API_LEAVE_GROUP:
        ((struct kafka_leave_group_request *)req)->group_id = G();
        return;
    case KAFKA_API_SYNC_GROUP:
        ((struct kafka_sync_group_request *)req)->group_id = G();
        return;
    case KAFKA_API_DESCRIBE_GROUPS: {
        static struct kw_str gs[1];
        gs[0] = G();
        struct kafka_describe_groups_request *r = req;
        r->groups.items = gs;
        r->groups.count = 1;
        return;
    }
    case KAFKA_API_DELETE_GROUPS: {
        static struct kw_str gs[1];
        gs[0] = G();
        struct kafka_delete_groups_request *r = req;
        r->groups_names.items = gs;
        r->groups_names.count = 1;
        return;
    }
    case KAFKA_API_CREATE_TOPICS: {
        static struct kafka_create_topics_request_creatable_topic nt;
        nt = (struct kafka_create_topics_request_creatable_topic){
            .name = kw_str_make("new-topic"), .num_partitions = 1, .replication_factor = -1};
        struct kafka_create_topics_request *r = req;
        r->topics.items = &nt;
        r->topics.count = 1;
        return;
    }
    case KAFKA_API_DELETE_TOPICS: {
        struct kafka_delete_topics_request *r = req;
        *v = 5; /* by name */
        r->topic_names.items = names;
        r->topic_names.count = 1;
        return;
    }
    case KAFKA_API_DESCRIBE_CONFIGS: {
        static struct kafka_describe_configs_request_resource dr;
        dr = (struct kafka_describe_configs_request_resource){.resource_type =
                                                                  PROTO_ACL_RESOURCE_TOPIC,
                                                              .resource_name = T(),
                                                              .configuration_keys = {NULL, -1}};
        struct kafka_describe_configs_request *r = req;
        r->resources.items = &dr;
        r->resources.count = 1;
        return;
    }
    case KAFKA_API_OFFSET_FOR_LEADER_EPOCH: {
        static struct kafka_offset_for_leader_epoch_request_offset_for_leader_partition ep;
        static struct kafka_offset_for_leader_epoch_request_offset_for_leader_topic et;
        ep = (struct kafka_offset_for_leader_epoch_request_offset_for_leader_partition){
            .current_leader_epoch = -1};
        et = (struct kafka_offset_for_leader_epoch_request_offset_for_leader_topic){
            .topic = T(), .partitions = {&ep, 1}};
        struct kafka_offset_for_leader_epoch_request *r = req;
        r->topics.items = &et;
        r->topics.count = 1;
        return;
    }
    case KAFKA_API_CREATE_ACLS: {
        static struct kafka_create_acls_request_acl_creation c;
        c = (struct kafka_create_acls_request_acl_creation){
            .resource_type = PROTO_ACL_RESOURCE_TOPIC,
            .resource_name = T(),
            .resource_pattern_type = PROTO_ACL_PATTERN_LITERAL,
            .principal = kw_str_make(PROTO_ACL_ANY_USER),
            .host = kw_str_make("*"),
            .operation = PROTO_ACL_OP_ALL,
            .permission_type = PROTO_ACL_PERMISSION_ALLOW};
        struct kafka_create_acls_request *r = req;
        r->creations.items = &c;
        r->creations.count = 1;
        return;
    }
    case KAFKA_API_DESCRIBE_ACLS: {
        struct kafka_describe_acls_request *r = req;
        r->resource_type_filter = PROTO_ACL_RESOURCE_ANY;
        r->pattern_type_filter = PROTO_ACL_PATTERN_ANY;
        r->operation = PROTO_ACL_OP_ANY;
        r->permission_type = PROTO_ACL_PERMISSION_ANY;
        return;
    }
    case KAFKA_API_DELETE_ACLS: {
        static struct kafka_delete_acls_request_filter f;
        f = (struct kafka_delete_acls_request_filter){.resource_type_filter =
                                                          PROTO_ACL_RESOURCE_ANY,
                                                      .resource_name_filter = KW_STR_NULL,
                                                      .pattern_type_filter = PROTO_ACL_PATTERN_ANY,
                                                      .principal_filter = KW_STR_NULL,
                                                      .host_filter = KW_STR_NULL,
                                                      .operation = PROTO_ACL_OP_ANY,
                                                      .permission_type = PROTO_ACL_PERMISSION_ANY};
        struct kafka_delete_acls_request *r = req;
        r->filters.items = &f;
        r->filters.count = 1;
        return;
    }
    case KAFKA_API_INIT_PRODUCER_ID: /* idempotent, not transactional */
        ((struct kafka_init_producer_id_request *)req)->transactional_id = KW_STR_NULL;
        return;
    case KAFKA_API_LIST_GROUPS:
    case KAFKA_API_API_VERSIONS:
        return; /* names nothing */
    default:
        cr_assert_fail("Kafka api %d is served but this test has no request for it", api);
    }
}

Test(acl_serve, every_kafka_request_is_refused_without_acls_and_changes_nothing, .init = setup,
     .fini = teardown, .timeout = 120)
{
    start(false);
    seed_state();
    stop();
    start(true);
    struct kc k;
    kc_connect(&k, B.kafka_port);
    int refused = 0;
    for (uint32_t i = 0; i < KAFKA_API_COUNT; i++) {
        int16_t api = kafka_apis[i].key;
        if (!kafka_serve_served(api) || api == KAFKA_API_API_VERSIONS || kafka_apis[i].sasl) {
            continue;
        }
        static _Alignas(16) uint8_t req[KAFKA_REQ_BYTES];
        static _Alignas(16) uint8_t resp[KAFKA_REQ_BYTES];
        cr_assert_leq(kafka_apis[i].request->body->size, sizeof(req));
        cr_assert_leq(kafka_apis[i].response->body->size, sizeof(resp));
        int16_t v;
        kafka_sample(api, &v, req);
        kc_call(&k, api, v, kafka_apis[i].request, req, kafka_apis[i].response, resp);
        int refusals = 0;
        int others = 0;
        count_errors(kafka_apis[i].response->body, resp, &refusals, &others);
        if (api == KAFKA_API_LIST_GROUPS) {
            /* Without DESCRIBE on the cluster: only the groups it may
             * describe, none. */
            cr_assert_eq(((struct kafka_list_groups_response *)(void *)resp)->groups.count, 0);
            refused++;
            continue;
        }
        cr_assert_gt(refusals, 0, "Kafka api %s v%d: not refused (%d other errors)",
                     kafka_apis[i].name, v, others);
        refused++;
    }
    cr_assert_gt(refused, 20);
    kc_close(&k);
    stop();
    start(false);
    struct md md;
    rq_metadata(&C, NULL, &md);
    cr_assert_eq(md.topic_count, 1, "t still there, new-topic never made");
    cr_assert_eq(rq_latest(&C, "t", 0), 3, "no record more");
    cr_assert_eq(committed_g(), 2, "the group's offset as it was");
    struct rd body;
    cr_assert_eq(send_sample(PROTO_API_DESCRIBE_ACLS, &body), 0);
    struct proto_dec d;
    cr_assert_eq(proto_acl_list_resp_decode(&body, PROTO_API_DESCRIBE_ACLS, 0, &d), 0);
    cr_assert_eq(d.topic_count, 0, "no ACL made");
    stop();
}
