/*
 * Users in a cluster (broker/sasl_serve.h, cluster/session.h): a user
 * added through one broker lives in etcd (users/<name>/<mechanism>) and
 * logs in at every broker; a delete through another reaches them all.
 * Waits poll a condition with a generous bound: they never depend on how
 * fast the machine is.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client/nagare.h"
#include "net/kafka/codec.h"
#include "net/kafka/errors.h"
#include "net/proto.h"
#include "tests/cluster_support.h"
#include "tests/kafka_client_support.h"

/* Far above what a view takes to reach every broker on a busy machine. */
#define SETTLE_MS 60000

static struct cluster C;

static void teardown(void) { cs_fini(&C); }

TestSuite(auth_cluster, .fini = teardown, .timeout = 300);

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A login at bootstrap as user: 0, or the connect's error. */
static int login_at(const char *bootstrap, const char *user, const char *password,
                    const char *mechanism)
{
    struct nagare_login l = {.user = user, .password = password, .mechanism = mechanism};
    nagare_admin *a = NULL;
    int rc = nagare_admin_new_login(bootstrap, 10000, &l, &a);
    nagare_admin_destroy(a);
    return rc;
}

/* Waits until a login at bootstrap gives want. */
static void wait_login(const char *bootstrap, const char *user, const char *password,
                       const char *mechanism, int want)
{
    int64_t deadline = now_ms() + SETTLE_MS;
    int rc;
    while ((rc = login_at(bootstrap, user, password, mechanism)) != want) {
        if (now_ms() > deadline) {
            cs_print_logs(&C, "the users did not settle");
            cr_assert_fail("login at %s as %s: %s, wanted %s", bootstrap, user, nagare_strerror(rc),
                           nagare_strerror(want));
        }
        usleep(50000);
    }
}

Test(auth_cluster, a_user_added_through_one_broker_logs_in_at_every_broker)
{
    cs_need_cluster();
    cs_init(&C, 2);
    cs_set(&C, "login_failures_max=1000"); /* the waits below may fail many logins */
    cs_start(&C);
    nagare_admin *a = NULL;
    cr_assert_eq(nagare_admin_new(C.b[0].bootstrap, 10000, &a), 0);
    int rc = nagare_user_set(a, "carol", "c4rol", NULL, 0);
    cr_assert_eq(rc, 0, "%s", nagare_strerror(rc));
    rc = nagare_user_set(a, "dave", "d4ve", "SCRAM-SHA-512", 0);
    cr_assert_eq(rc, 0, "%s", nagare_strerror(rc));
    nagare_admin_destroy(a);

    wait_login(C.b[1].bootstrap, "carol", "c4rol", "SCRAM-SHA-512", 0);
    wait_login(C.b[0].bootstrap, "dave", "d4ve", "SCRAM-SHA-512", 0);
    cr_assert_eq(login_at(C.b[1].bootstrap, "carol", "wrong", NULL), -NAGARE_EAUTH);

    struct nagare_login l = {.user = "carol", .password = "c4rol"};
    cr_assert_eq(nagare_admin_new_login(C.b[1].bootstrap, 10000, &l, &a), 0);
    wait_login(C.b[1].bootstrap, "dave", "d4ve", "SCRAM-SHA-512", 0);
    const struct nagare_user_info *u = NULL;
    size_t n = 0;
    cr_assert_eq(nagare_users_list(a, &u, &n), 0);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(u[0].user, "carol");
    cr_assert(u[0].scram_sha_256 && u[0].scram_sha_512);
    cr_assert_str_eq(u[1].user, "dave");
    cr_assert(!u[1].scram_sha_256 && u[1].scram_sha_512);
    nagare_users_free(u);
    /* Deleted through the other broker: gone from both. */
    cr_assert_eq(nagare_user_delete(a, "dave", NULL), 0);
    cr_assert_eq(nagare_user_delete(a, "nobody", NULL), -NAGARE_ENOTFOUND);
    nagare_admin_destroy(a);
    wait_login(C.b[0].bootstrap, "dave", "d4ve", "SCRAM-SHA-512", -NAGARE_EAUTH);
    wait_login(C.b[1].bootstrap, "dave", "d4ve", "SCRAM-SHA-512", -NAGARE_EAUTH);
    cr_assert_eq(login_at(C.b[0].bootstrap, "carol", "c4rol", NULL), 0);
}

/* What alice gets asking bootstrap for the ACLs (DESCRIBE on the
 * cluster): 0, or the error; *n how many she saw. */
static int alice_lists_acls(const char *bootstrap, size_t *n)
{
    struct nagare_login l = {.user = "alice", .password = "al1ce"};
    nagare_admin *a = NULL;
    int rc = nagare_admin_new_login(bootstrap, 10000, &l, &a);
    const struct nagare_acl *acls = NULL;
    struct nagare_acl any = {.resource_type = NAGARE_ACL_RESOURCE_ANY,
                             .pattern_type = NAGARE_ACL_PATTERN_ANY,
                             .operation = NAGARE_ACL_OP_ANY,
                             .permission = NAGARE_ACL_PERMISSION_ANY};
    *n = 0;
    rc = rc == 0 ? nagare_acls_describe(a, &any, &acls, n) : rc;
    if (acls != NULL) {
        nagare_acls_free(a, acls);
    }
    nagare_admin_destroy(a);
    return rc;
}

static void wait_alice(const char *bootstrap, int want)
{
    int64_t deadline = now_ms() + SETTLE_MS;
    size_t n;
    int rc;
    while ((rc = alice_lists_acls(bootstrap, &n)) != want) {
        if (now_ms() > deadline) {
            cs_print_logs(&C, "the ACLs did not settle");
            cr_assert_fail("alice listing ACLs at %s: %s, wanted %s", bootstrap,
                           nagare_strerror(rc), nagare_strerror(want));
        }
        usleep(50000);
    }
}

Test(auth_cluster, an_acl_created_through_one_broker_is_enforced_by_the_other)
{
    cs_need_cluster();
    cs_init(&C, 2);
    cs_set(&C, "login_failures_max=1000");
    cs_set(&C, "authorizer=true");
    cs_set(&C, "super_users=User:ANONYMOUS"); /* who does not log in administers */
    cs_start(&C);
    nagare_admin *a = NULL;
    cr_assert_eq(nagare_admin_new(C.b[0].bootstrap, 10000, &a), 0);
    cr_assert_eq(nagare_user_set(a, "alice", "al1ce", NULL, 0), 0);
    wait_login(C.b[1].bootstrap, "alice", "al1ce", NULL, 0);
    size_t n;
    cr_assert_eq(alice_lists_acls(C.b[1].bootstrap, &n), -NAGARE_EUNAUTHORIZED);

    struct nagare_acl grant = {.resource_type = NAGARE_ACL_RESOURCE_CLUSTER,
                               .pattern_type = NAGARE_ACL_PATTERN_LITERAL,
                               .name = NAGARE_ACL_CLUSTER_NAME,
                               .principal = "User:alice",
                               .host = "*",
                               .operation = NAGARE_ACL_OP_DESCRIBE,
                               .permission = NAGARE_ACL_PERMISSION_ALLOW};
    int rc = nagare_acls_create(a, &grant, 1);
    cr_assert_eq(rc, 0, "%s", nagare_strerror(rc));
    nagare_admin_destroy(a);
    wait_alice(C.b[1].bootstrap, 0);
    cr_assert_eq(alice_lists_acls(C.b[1].bootstrap, &n), 0);
    cr_assert_eq(n, 1, "the one ACL, once");
    wait_alice(C.b[0].bootstrap, 0);

    /* Deleted through the other broker: gone from both. */
    cr_assert_eq(nagare_admin_new(C.b[1].bootstrap, 10000, &a), 0);
    const struct nagare_acl *gone = NULL;
    struct nagare_acl f = grant;
    rc = nagare_acls_delete(a, &f, &gone, &n);
    cr_assert_eq(rc, 0, "%s", nagare_strerror(rc));
    cr_assert_eq(n, 1);
    cr_assert_str_eq(gone[0].principal, "User:alice");
    nagare_acls_free(a, gone);
    nagare_admin_destroy(a);
    wait_alice(C.b[0].bootstrap, -NAGARE_EUNAUTHORIZED);
    wait_alice(C.b[1].bootstrap, -NAGARE_EUNAUTHORIZED);
}

/* ---- the same through Kafka's CreateAcls, DescribeAcls, DeleteAcls ---- */

#define KAFKA_ACL_VERSION 2

/* ACLs broker i's Kafka listener describes (anonymous: a super user). */
static int32_t kafka_acl_count(size_t i)
{
    struct kc k;
    kc_connect_host(&k, C.b[i].host, C.b[i].kafka_port);
    struct kafka_describe_acls_request r;
    kafka_describe_acls_request_init(&r);
    r.resource_type_filter = PROTO_ACL_RESOURCE_ANY;
    r.resource_name_filter = KW_STR_NULL;
    r.principal_filter = KW_STR_NULL;
    r.host_filter = KW_STR_NULL;
    r.pattern_type_filter = PROTO_ACL_PATTERN_ANY;
    r.operation = PROTO_ACL_OP_ANY;
    r.permission_type = PROTO_ACL_PERMISSION_ANY;
    struct kafka_describe_acls_response out;
    kc_call(&k, KAFKA_API_DESCRIBE_ACLS, KAFKA_ACL_VERSION, &kafka_describe_acls_request_msg, &r,
            &kafka_describe_acls_response_msg, &out);
    cr_assert_eq(out.error_code, 0);
    int32_t n = out.resources.count;
    kc_close(&k);
    return n;
}

static void wait_kafka_acls(size_t i, int32_t want)
{
    int64_t deadline = now_ms() + SETTLE_MS;
    int32_t n;
    while ((n = kafka_acl_count(i)) != want) {
        if (now_ms() > deadline) {
            cs_print_logs(&C, "the ACLs did not settle");
            cr_assert_fail("broker %zu describes %d ACLs, wanted %d", i, n, want);
        }
        usleep(50000);
    }
}

Test(auth_cluster, kafka_acl_requests_change_the_clusters_acls)
{
    cs_need_cluster();
    cs_init(&C, 2);
    cs_set(&C, "authorizer=true");
    cs_set(&C, "super_users=User:ANONYMOUS");
    cs_start(&C);
    /* Two creations: a good one and one with no principal (refused alone). */
    struct kafka_create_acls_request_acl_creation c[2];
    for (int i = 0; i < 2; i++) {
        c[i] = (struct kafka_create_acls_request_acl_creation){
            .resource_type = PROTO_ACL_RESOURCE_TOPIC,
            .resource_name = kw_str_make("orders"),
            .resource_pattern_type = PROTO_ACL_PATTERN_PREFIXED,
            .principal = kw_str_make(i == 0 ? "User:bob" : ""),
            .host = kw_str_make("*"),
            .operation = PROTO_ACL_OP_READ,
            .permission_type = PROTO_ACL_PERMISSION_ALLOW};
    }
    struct kafka_create_acls_request cr;
    kafka_create_acls_request_init(&cr);
    cr.creations.items = c;
    cr.creations.count = 2;
    struct kc k;
    kc_connect_host(&k, C.b[0].host, C.b[0].kafka_port);
    struct kafka_create_acls_response cout;
    kc_call(&k, KAFKA_API_CREATE_ACLS, KAFKA_ACL_VERSION, &kafka_create_acls_request_msg, &cr,
            &kafka_create_acls_response_msg, &cout);
    cr_assert_eq(cout.results.count, 2);
    cr_assert_eq(cout.results.items[0].error_code, 0);
    cr_assert_eq(cout.results.items[1].error_code, KAFKA_ERR_INVALID_REQUEST);
    kc_close(&k);
    wait_kafka_acls(1, 1);

    /* Deleted through the other broker, two filters: one selects it, one
     * is invalid (a LITERAL filter on a name of none). */
    struct kafka_delete_acls_request_filter f[2] = {
        {.resource_type_filter = PROTO_ACL_RESOURCE_TOPIC,
         .resource_name_filter = KW_STR_NULL,
         .pattern_type_filter = PROTO_ACL_PATTERN_ANY,
         .principal_filter = kw_str_make("User:bob"),
         .host_filter = KW_STR_NULL,
         .operation = PROTO_ACL_OP_ANY,
         .permission_type = PROTO_ACL_PERMISSION_ANY},
        {.resource_type_filter = 99,
         .resource_name_filter = KW_STR_NULL,
         .pattern_type_filter = PROTO_ACL_PATTERN_ANY,
         .principal_filter = KW_STR_NULL,
         .host_filter = KW_STR_NULL,
         .operation = PROTO_ACL_OP_ANY,
         .permission_type = PROTO_ACL_PERMISSION_ANY},
    };
    struct kafka_delete_acls_request dr;
    kafka_delete_acls_request_init(&dr);
    dr.filters.items = f;
    dr.filters.count = 2;
    kc_connect_host(&k, C.b[1].host, C.b[1].kafka_port);
    struct kafka_delete_acls_response dout;
    kc_call(&k, KAFKA_API_DELETE_ACLS, KAFKA_ACL_VERSION, &kafka_delete_acls_request_msg, &dr,
            &kafka_delete_acls_response_msg, &dout);
    cr_assert_eq(dout.filter_results.count, 2);
    cr_assert_eq(dout.filter_results.items[0].error_code, 0);
    cr_assert_eq(dout.filter_results.items[0].matching_acls.count, 1);
    struct kw_str who = dout.filter_results.items[0].matching_acls.items[0].principal;
    cr_assert(who.len == 8 && memcmp(who.ptr, "User:bob", 8) == 0);
    cr_assert_eq(dout.filter_results.items[1].error_code, KAFKA_ERR_INVALID_REQUEST);
    kc_close(&k);
    wait_kafka_acls(0, 0);
    wait_kafka_acls(1, 0);
}
