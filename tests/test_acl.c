/*
 * tests/test_acl.c — broker/acl.h: the model, the decision, the file and
 * the store.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "broker/acl.h"

#define TOPIC PROTO_ACL_RESOURCE_TOPIC
#define GROUP PROTO_ACL_RESOURCE_GROUP
#define CLUSTER PROTO_ACL_RESOURCE_CLUSTER
#define LIT PROTO_ACL_PATTERN_LITERAL
#define PRE PROTO_ACL_PATTERN_PREFIXED
#define ALLOW PROTO_ACL_PERMISSION_ALLOW
#define DENY PROTO_ACL_PERMISSION_DENY
#define OP(x) PROTO_ACL_OP_##x

static struct acl mk(int8_t res, int8_t pat, const char *name, const char *principal,
                     const char *host, int8_t op, int8_t perm)
{
    struct proto_acl p = {
        res, pat, proto_str_make(name), proto_str_make(principal), proto_str_make(host), op, perm};
    struct acl a;
    const char *why = NULL;
    cr_assert_eq(acl_from_proto(&p, &a, &why), 0, "%s", why);
    return a;
}

static struct acl_store st;
static const struct acl_who alice = {.principal = "User:alice", .host = "10.0.0.1"};
static const struct acl_who bob = {.principal = "User:bob", .host = "10.0.0.2"};

static void open_mem(bool enabled, const char *supers)
{
    cr_assert_eq(acl_store_open(&st, NULL, enabled, supers), 0);
}

static void add(struct acl a) { cr_assert_eq(acl_store_add(&st, &a, 1), 0); }

static bool may(const struct acl_who *w, int8_t res, const char *name, int8_t op)
{
    return acl_authorized(&st, w, res, name, strlen(name), op);
}

static void fini(void) { acl_store_close(&st); }

TestSuite(acl, .fini = fini);

Test(acl, no_matching_acl_means_no_access)
{
    open_mem(true, "");
    cr_assert(!may(&alice, TOPIC, "orders", OP(READ)));
    add(mk(TOPIC, LIT, "orders", "User:alice", "*", OP(READ), ALLOW));
    cr_assert(may(&alice, TOPIC, "orders", OP(READ)));
    cr_assert(!may(&alice, TOPIC, "orders", OP(WRITE)), "another operation");
    cr_assert(!may(&alice, TOPIC, "orders2", OP(READ)), "a literal is not a prefix");
    cr_assert(!may(&bob, TOPIC, "orders", OP(READ)), "another principal");
    cr_assert(!may(&alice, GROUP, "orders", OP(READ)), "another resource type");
}

Test(acl, the_authorizer_off_allows_everything)
{
    open_mem(false, "");
    add(mk(TOPIC, LIT, "*", "User:*", "*", OP(ALL), DENY));
    cr_assert(may(&alice, TOPIC, "orders", OP(DELETE)));
    cr_assert(may(&bob, CLUSTER, PROTO_ACL_CLUSTER_NAME, OP(ALTER)));
}

Test(acl, deny_wins_over_allow)
{
    open_mem(true, "");
    add(mk(TOPIC, PRE, "orders", "User:*", "*", OP(ALL), ALLOW));
    add(mk(TOPIC, LIT, "orders-secret", "User:alice", "*", OP(READ), DENY));
    cr_assert(may(&alice, TOPIC, "orders-1", OP(READ)));
    cr_assert(!may(&alice, TOPIC, "orders-secret", OP(READ)));
    cr_assert(may(&alice, TOPIC, "orders-secret", OP(WRITE)), "the deny is for READ only");
    cr_assert(may(&bob, TOPIC, "orders-secret", OP(READ)));
    add(mk(TOPIC, LIT, "*", "User:bob", "*", OP(ALL), DENY));
    cr_assert(!may(&bob, TOPIC, "orders-1", OP(DESCRIBE)), "a wildcard deny of ALL");
}

Test(acl, prefix_literal_and_wildcard)
{
    open_mem(true, "");
    add(mk(TOPIC, PRE, "ord", "User:alice", "*", OP(WRITE), ALLOW));
    add(mk(GROUP, LIT, "*", "User:alice", "*", OP(READ), ALLOW));
    cr_assert(may(&alice, TOPIC, "ord", OP(WRITE)), "a prefix covers itself");
    cr_assert(may(&alice, TOPIC, "orders", OP(WRITE)));
    cr_assert(!may(&alice, TOPIC, "or", OP(WRITE)));
    cr_assert(!may(&alice, TOPIC, "payroll", OP(WRITE)));
    cr_assert(may(&alice, GROUP, "anything", OP(READ)), "the literal * is every name");
    add(mk(TOPIC, PRE, "*", "User:bob", "*", OP(READ), ALLOW));
    cr_assert(!may(&bob, TOPIC, "orders", OP(READ)), "a prefix * is the character only");
    cr_assert(may(&bob, TOPIC, "*x", OP(READ)));
}

Test(acl, read_write_delete_alter_imply_describe)
{
    open_mem(true, "");
    const int8_t ops[] = {OP(READ), OP(WRITE), OP(DELETE), OP(ALTER)};
    for (size_t i = 0; i < sizeof(ops); i++) {
        acl_store_close(&st);
        open_mem(true, "");
        add(mk(TOPIC, LIT, "t", "User:alice", "*", ops[i], ALLOW));
        cr_assert(may(&alice, TOPIC, "t", OP(DESCRIBE)), "op %d", ops[i]);
        cr_assert(!may(&alice, TOPIC, "t", OP(CREATE)));
    }
    add(mk(TOPIC, LIT, "c", "User:alice", "*", OP(ALTER_CONFIGS), ALLOW));
    cr_assert(may(&alice, TOPIC, "c", OP(DESCRIBE_CONFIGS)));
    /* Only allows imply: a deny of READ does not deny DESCRIBE. */
    add(mk(TOPIC, LIT, "d", "User:alice", "*", OP(DESCRIBE), ALLOW));
    add(mk(TOPIC, LIT, "d", "User:alice", "*", OP(READ), DENY));
    cr_assert(may(&alice, TOPIC, "d", OP(DESCRIBE)));
    cr_assert(!may(&alice, TOPIC, "d", OP(READ)));
}

Test(acl, super_users_are_allowed_everything)
{
    open_mem(true, "User:admin,User:broker");
    add(mk(TOPIC, LIT, "*", "User:*", "*", OP(ALL), DENY));
    struct acl_who admin = {.principal = "User:admin", .host = "1.2.3.4"};
    struct acl_who broker = {.principal = "User:broker"};
    cr_assert(may(&admin, TOPIC, "payroll", OP(DELETE)));
    cr_assert(may(&broker, CLUSTER, PROTO_ACL_CLUSTER_NAME, OP(CLUSTER_ACTION)));
    cr_assert(!may(&alice, TOPIC, "payroll", OP(READ)));
}

Test(acl, super_user_lists_are_checked)
{
    const char *bad[] = {"admin", "User:", "User:a,", ",User:a", "User:a b", "User:a,,User:b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(acl_store_open(&st, NULL, true, bad[i]), -NG_EBADARG, "%s", bad[i]);
    }
    char many[ACL_SUPER_USERS_MAX * 8 + 16] = "";
    for (int i = 0; i <= ACL_SUPER_USERS_MAX; i++) {
        char one[16];
        snprintf(one, sizeof(one), "%sUser:%d", i > 0 ? "," : "", i);
        strcat(many, one);
    }
    cr_assert_eq(acl_store_open(&st, NULL, true, many), -NG_EBADARG, "one past the maximum");
}

Test(acl, hosts_match_exactly_or_by_wildcard)
{
    open_mem(true, "");
    add(mk(TOPIC, LIT, "t", "User:*", "10.0.0.1", OP(READ), ALLOW));
    cr_assert(may(&alice, TOPIC, "t", OP(READ)));
    cr_assert(!may(&bob, TOPIC, "t", OP(READ)));
    struct acl_who nowhere = {.principal = "User:alice"}; /* address unknown */
    cr_assert(!may(&nowhere, TOPIC, "t", OP(READ)));
}

Test(acl, some_topic_for_idempotent_producers)
{
    open_mem(true, "");
    cr_assert(!acl_authorized_any(&st, &alice, TOPIC, OP(WRITE)));
    add(mk(TOPIC, PRE, "orders", "User:alice", "*", OP(WRITE), ALLOW));
    cr_assert(acl_authorized_any(&st, &alice, TOPIC, OP(WRITE)));
    cr_assert(!acl_authorized_any(&st, &bob, TOPIC, OP(WRITE)));
    add(mk(TOPIC, LIT, "*", "User:alice", "*", OP(WRITE), DENY));
    cr_assert(!acl_authorized_any(&st, &alice, TOPIC, OP(WRITE)), "denied everywhere");
}

Test(acl, invalid_acls_are_refused_with_a_reason)
{
    struct {
        struct proto_acl p;
        const char *what;
    } bad[] = {
        {{TOPIC, PROTO_ACL_PATTERN_MATCH, {"t", 1}, {"User:a", 6}, {"*", 1}, OP(READ), ALLOW},
         "match is for filters"},
        {{PROTO_ACL_RESOURCE_ANY, LIT, {"t", 1}, {"User:a", 6}, {"*", 1}, OP(READ), ALLOW}, "any"},
        {{TOPIC, LIT, {"t", 1}, {"User:a", 6}, {"*", 1}, OP(ANY), ALLOW}, "op any"},
        {{TOPIC, LIT, {"t", 1}, {"User:a", 6}, {"*", 1}, 13, ALLOW}, "op past the last"},
        {{TOPIC, LIT, {"t", 1}, {"User:a", 6}, {"*", 1}, OP(READ), PROTO_ACL_PERMISSION_ANY},
         "permission any"},
        {{TOPIC, LIT, {"", 0}, {"User:a", 6}, {"*", 1}, OP(READ), ALLOW}, "an empty name"},
        {{TOPIC, LIT, {"t", 1}, {"alice", 5}, {"*", 1}, OP(READ), ALLOW}, "no User:"},
        {{TOPIC, LIT, {"t", 1}, {"User:a", 6}, {"", 0}, OP(READ), ALLOW}, "an empty host"},
        {{CLUSTER, LIT, {"c", 1}, {"User:a", 6}, {"*", 1}, OP(ALTER), ALLOW}, "the cluster's name"},
        {{CLUSTER, PRE, {"kafka", 5}, {"User:a", 6}, {"*", 1}, OP(ALTER), ALLOW},
         "a cluster prefix"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct acl a;
        const char *why = NULL;
        cr_assert_eq(acl_from_proto(&bad[i].p, &a, &why), -NG_EBADARG, "%s", bad[i].what);
        cr_assert_not_null(why);
    }
    /* A NUL inside a string would be cut off when stored (found by
     * fuzz/fuzz_acl.c): "orders\0x" must not become "orders". */
    struct proto_acl nul = {TOPIC, LIT, {"orders\0x", 8}, {"User:a", 6}, {"*", 1}, OP(READ), ALLOW};
    struct acl cut;
    cr_assert_eq(acl_from_proto(&nul, &cut, NULL), -NG_EBADARG, "a NUL in the name");
    nul.name = proto_str_make("orders");
    nul.host = (struct proto_str){"1\0", 2};
    cr_assert_eq(acl_from_proto(&nul, &cut, NULL), -NG_EBADARG, "a NUL in the host");
    char name[ACL_NAME_BYTES_MAX + 2];
    memset(name, 'n', sizeof(name));
    struct proto_acl p = {TOPIC,    LIT,  {name, ACL_NAME_BYTES_MAX}, {"User:a", 6}, {"*", 1},
                          OP(READ), ALLOW};
    struct acl a;
    cr_assert_eq(acl_from_proto(&p, &a, NULL), 0, "a name at its limit");
    p.name.len++;
    cr_assert_eq(acl_from_proto(&p, &a, NULL), -NG_EBADARG, "one byte past it");
}

Test(acl, filters_select_as_kafka_does)
{
    struct acl lit = mk(TOPIC, LIT, "orders", "User:a", "*", OP(READ), ALLOW);
    struct acl pre = mk(TOPIC, PRE, "ord", "User:a", "*", OP(READ), ALLOW);
    struct acl any = mk(TOPIC, LIT, "*", "User:b", "*", OP(WRITE), DENY);
    struct proto_acl f = {PROTO_ACL_RESOURCE_ANY,  PROTO_ACL_PATTERN_ANY, PROTO_STR_NULL,
                          PROTO_STR_NULL,          PROTO_STR_NULL,        OP(ANY),
                          PROTO_ACL_PERMISSION_ANY};
    cr_assert_eq(acl_filter_check(&f), 0);
    cr_assert(acl_filter_matches(&f, &lit) && acl_filter_matches(&f, &pre) &&
              acl_filter_matches(&f, &any));
    f.pattern_type = PROTO_ACL_PATTERN_MATCH;
    f.name = proto_str_make("orders");
    cr_assert(acl_filter_matches(&f, &lit) && acl_filter_matches(&f, &pre) &&
                  acl_filter_matches(&f, &any),
              "match: every ACL that applies to orders");
    f.pattern_type = LIT;
    cr_assert(acl_filter_matches(&f, &lit) && !acl_filter_matches(&f, &pre));
    f.pattern_type = PROTO_ACL_PATTERN_ANY;
    f.name = PROTO_STR_NULL;
    f.principal = proto_str_make("User:b");
    cr_assert(!acl_filter_matches(&f, &lit) && acl_filter_matches(&f, &any));
    f.principal = PROTO_STR_NULL;
    f.permission = DENY;
    cr_assert(!acl_filter_matches(&f, &lit) && acl_filter_matches(&f, &any));
    f.operation = 99;
    cr_assert_eq(acl_filter_check(&f), -NG_EBADARG);
}

/* ---- the file and the store ---- */

static char dir[64];

static void mkdir_tmp(void)
{
    strcpy(dir, "/tmp/test_acl.XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void rm_tmp(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

static void write_acl_file(const uint8_t *buf, size_t len)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, ACL_FILE);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(buf, 1, len, f), len);
    fclose(f);
}

static const struct acl *some_acls(uint32_t *n)
{
    static struct acl v[3];
    v[0] = mk(TOPIC, PRE, "orders", "User:alice", "*", OP(WRITE), ALLOW);
    v[1] = mk(GROUP, LIT, "g", "User:*", "10.0.0.1", OP(READ), DENY);
    v[2] = mk(CLUSTER, LIT, PROTO_ACL_CLUSTER_NAME, "User:ops", "*", OP(ALTER), ALLOW);
    *n = 3;
    return v;
}

Test(acl, the_store_survives_a_reopen_and_deletes_durably, .init = mkdir_tmp, .fini = rm_tmp)
{
    uint32_t n;
    const struct acl *v = some_acls(&n);
    cr_assert_eq(acl_store_open(&st, dir, true, ""), 0);
    cr_assert_eq(st.count, 0, "no file: no ACLs");
    cr_assert_eq(acl_store_add(&st, v, n), 0);
    cr_assert_eq(acl_store_add(&st, v, 1), 0, "one held already");
    cr_assert_eq(st.count, n);
    acl_store_close(&st);
    cr_assert_eq(acl_store_open(&st, dir, true, ""), 0);
    cr_assert_eq(st.count, n);
    for (uint32_t i = 0; i < n; i++) {
        cr_assert_eq(memcmp(&st.acls[i], &v[i], sizeof(v[i])), 0, "acl %u", i);
    }
    struct proto_acl f = {
        GROUP,   PROTO_ACL_PATTERN_ANY,   PROTO_STR_NULL, PROTO_STR_NULL, PROTO_STR_NULL,
        OP(ANY), PROTO_ACL_PERMISSION_ANY};
    struct acl *gone;
    uint32_t gone_n;
    cr_assert_eq(acl_store_delete(&st, &f, &gone, &gone_n), 0);
    cr_assert_eq(gone_n, 1);
    cr_assert_str_eq(gone[0].name, "g");
    free(gone);
    acl_store_close(&st);
    cr_assert_eq(acl_store_open(&st, dir, true, ""), 0);
    cr_assert_eq(st.count, n - 1);
    cr_assert_eq(st.acls[1].resource_type, CLUSTER);
}

Test(acl, file_round_trips_and_every_damage_is_refused)
{
    uint32_t n;
    const struct acl *v = some_acls(&n);
    size_t cap = acl_file_bytes(v, n);
    uint8_t *buf = malloc(cap);
    size_t len = acl_file_encode(v, n, buf, cap);
    cr_assert_eq(len, cap);
    struct acl *out;
    uint32_t out_n;
    cr_assert_eq(acl_file_decode(buf, len, &out, &out_n), 0);
    cr_assert_eq(out_n, n);
    cr_assert_eq(memcmp(out, v, n * sizeof(*v)), 0);
    free(out);
    for (size_t cut = 0; cut < len; cut++) {
        cr_assert_lt(acl_file_decode(buf, cut, &out, &out_n), 0, "cut at %zu", cut);
        cr_assert_null(out);
    }
    for (size_t i = 0; i < len; i++) {
        buf[i] ^= 0x20;
        cr_assert_eq(acl_file_decode(buf, len, &out, &out_n), -NG_ECORRUPT, "byte %zu", i);
        buf[i] ^= 0x20;
    }
    free(buf);
}

Test(acl, a_cluster_record_holds_one_acl_under_a_key_of_its_bytes)
{
    uint32_t n;
    const struct acl *v = some_acls(&n);
    uint8_t buf[ACL_REC_BYTES_MAX];
    char keys[3][ACL_REC_KEY_BYTES];
    for (uint32_t i = 0; i < n; i++) {
        size_t len = acl_rec_encode(&v[i], buf, sizeof(buf), keys[i]);
        cr_assert_eq(strlen(keys[i]), ACL_REC_KEY_BYTES - 1);
        cr_assert_eq(strspn(keys[i], "0123456789abcdef"), ACL_REC_KEY_BYTES - 1);
        struct acl out;
        cr_assert_eq(acl_rec_decode(buf, len, &out), 0);
        cr_assert_eq(memcmp(&out, &v[i], sizeof(out)), 0);
        char again[ACL_REC_KEY_BYTES];
        (void)acl_rec_encode(&v[i], buf, sizeof(buf), again);
        cr_assert_str_eq(again, keys[i], "the same ACL, the same key");
        buf[len - 1] ^= 1;
        cr_assert_eq(acl_rec_decode(buf, len, &out), -NG_ECORRUPT);
    }
    cr_assert_str_neq(keys[0], keys[1]);
    cr_assert_str_neq(keys[1], keys[2]);
    /* A file of two ACLs is not a record. */
    size_t len = acl_file_encode(v, 2, buf, sizeof(buf));
    struct acl out;
    cr_assert_eq(acl_rec_decode(buf, len, &out), -NG_ECORRUPT);
    /* The longest ACL fits. */
    struct acl big = v[0];
    memset(big.name, 'n', ACL_NAME_BYTES_MAX);
    big.name[ACL_NAME_BYTES_MAX] = '\0';
    memset(big.principal + 5, 'p', PRINCIPAL_BYTES_MAX - 6);
    big.principal[PRINCIPAL_BYTES_MAX - 1] = '\0';
    memset(big.host, 'h', ACL_HOST_BYTES - 1);
    big.host[ACL_HOST_BYTES - 1] = '\0';
    char key[ACL_REC_KEY_BYTES];
    len = acl_rec_encode(&big, buf, sizeof(buf), key);
    cr_assert_eq(len, ACL_REC_BYTES_MAX);
}

/* A cluster's store follows the view: replaced whole, in memory. */
Test(acl, a_cluster_store_is_replaced_whole)
{
    open_mem(true, "");
    uint32_t n;
    const struct acl *v = some_acls(&n);
    struct acl *copy = malloc(n * sizeof(*copy));
    memcpy(copy, v, n * sizeof(*copy));
    acl_store_replace(&st, copy, n);
    cr_assert_eq(st.count, n);
    cr_assert(may(&alice, TOPIC, "orders-1", OP(WRITE)));
    acl_store_replace(&st, NULL, 0);
    cr_assert_eq(st.count, 0);
    cr_assert(!may(&alice, TOPIC, "orders-1", OP(WRITE)));
}

Test(acl, a_corrupt_file_is_an_error_at_open, .init = mkdir_tmp, .fini = rm_tmp)
{
    uint32_t n;
    const struct acl *v = some_acls(&n);
    uint8_t buf[1024];
    size_t len = acl_file_encode(v, n, buf, sizeof(buf));
    buf[len / 2] ^= 1;
    write_acl_file(buf, len);
    cr_assert_eq(acl_store_open(&st, dir, true, ""), -NG_ECORRUPT);
    write_acl_file(buf, 3);
    cr_assert_eq(acl_store_open(&st, dir, true, ""), -NG_ECORRUPT);
}
