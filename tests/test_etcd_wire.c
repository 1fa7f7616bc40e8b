/* Contract tests for cluster/etcd_wire.h: the gateway's JSON, built and
 * read, on answers as etcd 3.4 writes them and on damaged ones. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "cluster/etcd_wire.h"

#define HDR \
    "\"header\":{\"cluster_id\":\"1\",\"member_id\":\"2\",\"revision\":\"7\",\"raft_term\":\"2\"}"

static int range(const char *body, struct etcd_kvs *out)
{
    return etcd_wire_range_answer(body, strlen(body), out);
}

/* ---- base64 ---- */

Test(etcd_wire, base64_matches_rfc4648_vectors)
{
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const coded[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                                        "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (size_t i = 0; i < ARRAY_LEN(plain); i++) {
        char text[16];
        cr_assert_eq(etcd_wire_b64_len(strlen(plain[i])), strlen(coded[i]));
        etcd_wire_b64_encode(plain[i], strlen(plain[i]), text);
        cr_assert_str_eq(text, coded[i]);
        uint8_t back[16];
        size_t n;
        cr_assert_eq(etcd_wire_b64_decode(coded[i], strlen(coded[i]), back, sizeof(back), &n), 0);
        cr_assert_eq(n, strlen(plain[i]));
        cr_assert_eq(memcmp(back, plain[i], n), 0);
    }
}

Test(etcd_wire, base64_round_trips_every_byte_at_every_length)
{
    uint8_t src[259];
    for (size_t i = 0; i < sizeof(src); i++) {
        src[i] = (uint8_t)(255 - i);
    }
    for (size_t len = 0; len <= sizeof(src); len++) {
        char text[400];
        etcd_wire_b64_encode(src, len, text);
        uint8_t back[sizeof(src)];
        size_t n;
        cr_assert_eq(etcd_wire_b64_decode(text, strlen(text), back, len, &n), 0, "length %zu", len);
        cr_assert_eq(n, len);
        cr_assert_eq(memcmp(back, src, len), 0);
    }
}

Test(etcd_wire, base64_rejects_what_is_not_padded_base64)
{
    static const char *const bad[] = {"Zg=",  "Zg",   "Z===", "Zm9v=", "Zm=v",
                                      "Zm9*", "Zh==", "Zm9=", "=m9v",  "Zm 9"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        uint8_t out[8];
        size_t n = 99;
        cr_assert_eq(etcd_wire_b64_decode(bad[i], strlen(bad[i]), out, sizeof(out), &n), -NG_EPROTO,
                     "%s", bad[i]);
        cr_assert_eq(n, 0);
    }
    uint8_t small[2];
    size_t n;
    cr_assert_eq(etcd_wire_b64_decode("Zm9v", 4, small, sizeof(small), &n), -NG_ETOOBIG);
}

/* ---- requests ---- */

Test(etcd_wire, range_request_encodes_key_end_and_limit)
{
    char *body;
    cr_assert_eq(etcd_wire_range_request("foo", "fop", 10, &body), 0);
    cr_assert_str_eq(body, "{\"key\":\"Zm9v\",\"range_end\":\"Zm9w\",\"limit\":\"10\"}");
    free(body);
    cr_assert_eq(etcd_wire_range_request("foo", "", 0, &body), 0);
    cr_assert_str_eq(body, "{\"key\":\"Zm9v\",\"range_end\":\"AA==\"}"); /* "\0": every key on */
    free(body);
    cr_assert_eq(etcd_wire_range_request("", NULL, 0, &body), -NG_EBADARG);
    cr_assert_null(body);
    char big[ETCD_KEY_BYTES_MAX + 2];
    memset(big, 'k', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    cr_assert_eq(etcd_wire_range_request(big, NULL, 0, &body), -NG_ETOOBIG);
    big[ETCD_KEY_BYTES_MAX] = '\0';
    cr_assert_eq(etcd_wire_range_request(big, NULL, 0, &body), 0);
    free(body);
}

Test(etcd_wire, txn_request_writes_zero_revisions_and_every_op)
{
    struct etcd_cmp cmps[] = {
        {.key = "a", .target = ETCD_CMP_CREATE_REVISION, .result = ETCD_CMP_EQUAL, .number = 0},
        {.key = "b",
         .target = ETCD_CMP_VALUE,
         .result = ETCD_CMP_NOT_EQUAL,
         .value = "x",
         .value_len = 1},
    };
    struct etcd_op ok[] = {
        {.kind = ETCD_OP_PUT, .key = "a", .value = "", .value_len = 0, .lease = 5},
        {.kind = ETCD_OP_DELETE_PREFIX, .key = "p/"},
    };
    struct etcd_op no[] = {{.kind = ETCD_OP_GET, .key = "a"}, {.kind = ETCD_OP_DELETE, .key = "b"}};
    struct etcd_txn t = {cmps, 2, ok, 2, no, 2};
    char *body;
    cr_assert_eq(etcd_wire_txn_request(&t, &body), 0);
    cr_assert_str_eq(
        body,
        "{\"compare\":[{\"key\":\"YQ==\",\"target\":\"CREATE\",\"result\":\"EQUAL\",\"create_"
        "revision\":\"0\"},"
        "{\"key\":\"Yg==\",\"target\":\"VALUE\",\"result\":\"NOT_EQUAL\",\"value\":\"eA==\"}],"
        "\"success\":[{\"request_put\":{\"key\":\"YQ==\",\"value\":\"\",\"lease\":\"5\"}},"
        "{\"request_delete_range\":{\"key\":\"cC8=\",\"range_end\":\"cDA=\"}}],"
        "\"failure\":[{\"request_range\":{\"key\":\"YQ==\"}},{\"request_delete_range\":{\"key\":"
        "\"Yg==\"}}]}");
    free(body);
}

Test(etcd_wire, txn_request_refuses_oversized_parts)
{
    struct etcd_op ops[ETCD_TXN_OPS_MAX + 1];
    for (size_t i = 0; i < ARRAY_LEN(ops); i++) {
        ops[i] = (struct etcd_op){.kind = ETCD_OP_DELETE, .key = "k"};
    }
    char *body;
    struct etcd_txn t = {NULL, 0, ops, ETCD_TXN_OPS_MAX + 1, NULL, 0};
    cr_assert_eq(etcd_wire_txn_request(&t, &body), -NG_ETOOBIG);
    t.success_count = ETCD_TXN_OPS_MAX;
    cr_assert_eq(etcd_wire_txn_request(&t, &body), 0);
    free(body);
    struct etcd_op put = {
        .kind = ETCD_OP_PUT, .key = "k", .value = "", .value_len = ETCD_VALUE_BYTES_MAX + 1};
    t = (struct etcd_txn){NULL, 0, &put, 1, NULL, 0};
    cr_assert_eq(etcd_wire_txn_request(&t, &body), -NG_ETOOBIG);
    struct etcd_op empty = {.kind = ETCD_OP_DELETE, .key = ""};
    t = (struct etcd_txn){NULL, 0, NULL, 0, &empty, 1};
    cr_assert_eq(etcd_wire_txn_request(&t, &body), -NG_EBADARG);
}

Test(etcd_wire, prefix_end_is_the_first_key_past_the_prefix)
{
    char buf[ETCD_KEY_BYTES_MAX + 1];
    etcd_prefix_end("/nagare/", buf);
    cr_assert_str_eq(buf, "/nagare0");
    etcd_prefix_end("a\xff\xff", buf);
    cr_assert_str_eq(buf, "b");
    etcd_prefix_end("\xff", buf);
    cr_assert_str_eq(buf, "");
    etcd_prefix_end("", buf);
    cr_assert_str_eq(buf, "");
}

Test(etcd_wire, watch_request_asks_for_fragments_from_its_revision)
{
    char *body;
    cr_assert_eq(etcd_wire_watch_request("a", "b", 42, &body), 0);
    cr_assert_str_eq(body, "{\"create_request\":{\"key\":\"YQ==\",\"range_end\":\"Yg==\","
                           "\"start_revision\":\"42\",\"fragment\":true}}");
    free(body);
}

/* ---- answers ---- */

Test(etcd_wire, range_answer_reads_pairs_and_defaults)
{
    struct etcd_kvs kvs;
    cr_assert_eq(
        range("{" HDR
              ",\"kvs\":[{\"key\":\"Zm9v\",\"create_revision\":\"2\",\"mod_revision\":\"5\","
              "\"version\":\"3\",\"value\":\"YmFy\",\"lease\":\"99\"},"
              "{\"key\":\"Zm9w\",\"create_revision\":\"4\",\"mod_revision\":\"4\",\"version\":"
              "\"1\"}],"
              "\"count\":\"2\"}",
              &kvs),
        0);
    cr_assert_eq(kvs.revision, 7);
    cr_assert_eq(kvs.count, 2);
    cr_assert_str_eq(kvs.kvs[0].key, "foo");
    cr_assert_eq(kvs.kvs[0].key_len, 3);
    cr_assert_str_eq(kvs.kvs[0].value, "bar");
    cr_assert_eq(kvs.kvs[0].create_revision, 2);
    cr_assert_eq(kvs.kvs[0].mod_revision, 5);
    cr_assert_eq(kvs.kvs[0].version, 3);
    cr_assert_eq(kvs.kvs[0].lease, 99);
    cr_assert_str_eq(kvs.kvs[1].value, ""); /* proto3 leaves the empty value out */
    cr_assert_eq(kvs.kvs[1].value_len, 0);
    cr_assert_eq(kvs.kvs[1].lease, 0);
    etcd_kvs_free(&kvs);
    cr_assert_eq(range("{" HDR "}", &kvs), 0);
    cr_assert_eq(kvs.count, 0);
    cr_assert_eq(kvs.revision, 7);
    etcd_kvs_free(&kvs);
}

Test(etcd_wire, range_answer_refuses_damage)
{
    static const char *const bad[] = {
        "",
        "[]",
        "{\"header\":[]}",
        "{" HDR ",\"kvs\":{}}",
        "{" HDR ",\"kvs\":[{\"key\":\"Zm9*\",\"mod_revision\":\"1\"}]}",
        "{" HDR ",\"kvs\":[{\"value\":\"YmFy\"}]}",                       /* no key */
        "{" HDR ",\"kvs\":[{\"key\":\"Zm9v\",\"mod_revision\":\"-1\"}]}", /* negative */
        "{" HDR ",\"kvs\":[{\"key\":\"Zm9v\",\"mod_revision\":\"1x\"}]}", /* not a number */
        "{" HDR ",\"kvs\":[{\"key\":\"Zm9v\",\"mod_revision\":\"99999999999999999999\"}]}",
        "{" HDR ",\"kvs\":[{\"key\":\"Zm9v\",\"mod_revision\":true}]}",
        "{\"header\":{\"revision\":\"-3\"}}",
        "{" HDR ",\"kvs\":[1]}",
        "{" HDR "} trailing",
        "{" HDR ",\"more\":\"yes\"}",
        "{\"header\":{},\"header\":{}}",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        struct etcd_kvs kvs;
        cr_assert_eq(range(bad[i], &kvs), -NG_EPROTO, "%s", bad[i]);
        cr_assert_eq(kvs.count, 0);
        cr_assert_null(kvs.kvs);
    }
    struct etcd_kvs kvs;
    cr_assert_eq(range("{" HDR ",\"kvs\":[{\"key\":\"Zm9v\"}],\"more\":true}", &kvs), -NG_ETOOBIG);
    cr_assert_eq(kvs.count, 0);
}

Test(etcd_wire, range_answer_refuses_a_key_over_its_limit)
{
    char raw[ETCD_KEY_BYTES_MAX + 1];
    memset(raw, 'k', sizeof(raw));
    char text[2 * ETCD_KEY_BYTES_MAX];
    etcd_wire_b64_encode(raw, sizeof(raw), text);
    char body[3 * ETCD_KEY_BYTES_MAX];
    snprintf(body, sizeof(body), "{" HDR ",\"kvs\":[{\"key\":\"%s\",\"mod_revision\":\"1\"}]}",
             text);
    struct etcd_kvs kvs;
    cr_assert_eq(range(body, &kvs), -NG_ETOOBIG);
    etcd_wire_b64_encode(raw, ETCD_KEY_BYTES_MAX, text);
    snprintf(body, sizeof(body), "{" HDR ",\"kvs\":[{\"key\":\"%s\",\"mod_revision\":\"1\"}]}",
             text);
    cr_assert_eq(range(body, &kvs), 0);
    cr_assert_eq(kvs.kvs[0].key_len, ETCD_KEY_BYTES_MAX);
    etcd_kvs_free(&kvs);
}

Test(etcd_wire, txn_answer_reads_its_branch_and_gets)
{
    const char *won =
        "{" HDR
        ",\"succeeded\":true,\"responses\":[{\"response_put\":{\"header\":{\"revision\":\"7\"}}}]}";
    bool succeeded;
    int64_t rev;
    cr_assert_eq(etcd_wire_txn_answer(won, strlen(won), &succeeded, &rev, NULL), 0);
    cr_assert(succeeded);
    cr_assert_eq(rev, 7);
    const char *lost =
        "{" HDR ",\"responses\":[{\"response_range\":{\"header\":{\"revision\":\"7\"},\"kvs\":"
        "[{\"key\":\"Zm9v\",\"create_revision\":\"4\",\"mod_revision\":\"4\",\"version\":\"1\","
        "\"value\":\"eA==\"}],\"count\":\"1\"}},{\"response_range\":{\"header\":{}}},"
        "{\"response_delete_range\":{\"header\":{}}}]}";
    struct etcd_kvs gets;
    cr_assert_eq(etcd_wire_txn_answer(lost, strlen(lost), &succeeded, &rev, &gets), 0);
    cr_assert_not(succeeded); /* proto3 leaves "succeeded": false out */
    cr_assert_eq(gets.count, 1);
    cr_assert_str_eq(gets.kvs[0].value, "x");
    cr_assert_eq(gets.revision, 7);
    etcd_kvs_free(&gets);
    const char *odd = "{" HDR ",\"responses\":[{\"response_what\":{}}]}";
    cr_assert_eq(etcd_wire_txn_answer(odd, strlen(odd), &succeeded, &rev, &gets), -NG_EPROTO);
    cr_assert_eq(gets.count, 0);
}

Test(etcd_wire, lease_answers)
{
    const char *grant = "{" HDR ",\"ID\":\"4111120475338167049\",\"TTL\":\"5\"}";
    int64_t id;
    int64_t ttl;
    bool retry;
    cr_assert_eq(etcd_wire_lease_grant_answer(grant, strlen(grant), &id, &ttl), 0);
    cr_assert_eq(id, 4111120475338167049);
    cr_assert_eq(ttl, 5);
    const char *alive = "{\"result\":{" HDR ",\"ID\":\"12\",\"TTL\":\"5\"}}";
    cr_assert_eq(etcd_wire_keepalive_answer(alive, strlen(alive), &ttl, &retry), 0);
    cr_assert_eq(ttl, 5);
    const char *gone = "{\"result\":{" HDR ",\"ID\":\"12\"}}";
    cr_assert_eq(etcd_wire_keepalive_answer(gone, strlen(gone), &ttl, &retry), -NG_ENOTFOUND);
    const char *no_leader =
        "{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":\"etcdserver: no leader\"}}";
    cr_assert_eq(etcd_wire_keepalive_answer(no_leader, strlen(no_leader), &ttl, &retry),
                 -NG_ECLUSTER_UNAVAILABLE);
    cr_assert(retry);
    cr_assert_eq(etcd_wire_header_answer("{" HDR "}", strlen("{" HDR "}")), 0);
    cr_assert_eq(etcd_wire_header_answer("{\"header\":1}", 12), -NG_EPROTO);
}

Test(etcd_wire, errors_say_what_and_whether_to_try_elsewhere)
{
    static const struct {
        const char *body;
        long status;
        int rc;
        bool retry;
    } cases[] = {
        {"{\"error\":\"etcdserver: no leader\",\"message\":\"etcdserver: no leader\",\"code\":14}",
         503, -NG_ECLUSTER_UNAVAILABLE, true},
        {"{\"error\":\"etcdserver: requested lease not found\",\"code\":5}", 404, -NG_ENOTFOUND,
         false},
        {"{\"error\":\"x\",\"message\":\"etcdserver: request is too large\",\"code\":3}", 400,
         -NG_ETOOBIG, false},
        {"{\"error\":\"x\",\"message\":\"etcdserver: duplicate key given in txn "
         "request\",\"code\":3}",
         400, -NG_EBADARG, false},
        {"{\"error\":\"x\",\"message\":\"mvcc: required revision has been compacted\",\"code\":11}",
         400, -NG_EOFFSET_RANGE, false},
        {"{\"error\":\"x\",\"message\":\"etcdserver: request timed out\",\"code\":4}", 504,
         -NG_ECLUSTER_UNAVAILABLE, true},
        {"{\"error\":\"x\",\"code\":16}", 401, -EACCES, false},
        {"<html>bad gateway</html>", 502, -NG_ECLUSTER_UNAVAILABLE, true},
        {"", 400, -NG_EPROTO, false},
        {"{\"error\":\"x\",\"code\":\"fourteen\"}", 404, -NG_EPROTO, false},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        bool retry = !cases[i].retry;
        int rc = etcd_wire_error(cases[i].body, strlen(cases[i].body), cases[i].status, &retry);
        cr_assert_eq(rc, cases[i].rc, "%s: %d", cases[i].body, rc);
        cr_assert_eq(retry, cases[i].retry, "%s", cases[i].body);
    }
}

/* ---- the watch stream ---- */

Test(etcd_wire, scan_finds_objects_fed_a_byte_at_a_time)
{
    const char *stream = " {\"a\":\"}\\\"{\",\"b\":[{}]}\n{\"c\":\"\\\\\"}";
    size_t len = strlen(stream);
    size_t ends[2] = {0, 0};
    size_t found = 0;
    size_t start = 0;
    struct etcd_wire_scan s = {0};
    for (size_t have = 1; have <= len; have++) {
        size_t end;
        int rc = etcd_wire_scan(&s, stream + start, have - start, &end);
        cr_assert_geq(rc, 0);
        if (rc == 1) {
            ends[found++] = start + end;
            start += end;
            memset(&s, 0, sizeof(s));
        }
    }
    cr_assert_eq(found, 2);
    cr_assert_eq(ends[0], strlen(" {\"a\":\"}\\\"{\",\"b\":[{}]}"));
    cr_assert_eq(ends[1], len);
}

Test(etcd_wire, scan_refuses_what_is_not_an_object_or_nests_too_deep)
{
    struct etcd_wire_scan s = {0};
    size_t end;
    cr_assert_eq(etcd_wire_scan(&s, " [1]", 4, &end), -NG_EPROTO);
    char deep[ETCD_WIRE_DEPTH_MAX + 2];
    memset(deep, '[', sizeof(deep));
    deep[0] = '{';
    memset(&s, 0, sizeof(s));
    cr_assert_eq(etcd_wire_scan(&s, deep, ETCD_WIRE_DEPTH_MAX, &end), 0);
    memset(&s, 0, sizeof(s));
    cr_assert_eq(etcd_wire_scan(&s, deep, sizeof(deep), &end), -NG_EPROTO);
}

static int watch_msg(const char *obj, struct etcd_wire_watch_msg *m, struct etcd_events *ev)
{
    return etcd_wire_watch_answer(obj, strlen(obj), m, ev);
}

Test(etcd_wire, watch_answer_reads_created_events_and_cancels)
{
    struct etcd_wire_watch_msg m;
    struct etcd_events ev = {0};
    cr_assert_eq(watch_msg("{\"result\":{" HDR ",\"created\":true}}", &m, &ev), 0);
    cr_assert(m.created);
    cr_assert_eq(m.revision, 7);
    cr_assert_eq(ev.count, 0);
    cr_assert_eq(
        watch_msg("{\"result\":{" HDR
                  ",\"events\":[{\"kv\":{\"key\":\"YTE=\",\"create_revision\":\"5\","
                  "\"mod_revision\":\"5\",\"version\":\"1\"}},{\"type\":\"DELETE\",\"kv\":{\"key\":"
                  "\"YTE=\",\"mod_revision\":\"6\"}}],\"fragment\":true}}",
                  &m, &ev),
        0);
    cr_assert(m.fragment);
    cr_assert_eq(ev.count, 2);
    cr_assert_eq(ev.events[0].kind, ETCD_EVENT_PUT);
    cr_assert_str_eq(ev.events[0].kv.key, "a1");
    cr_assert_eq(ev.events[1].kind, ETCD_EVENT_DELETE);
    cr_assert_eq(ev.events[1].kv.mod_revision, 6);
    cr_assert_eq(
        watch_msg("{\"result\":{" HDR ",\"canceled\":true,\"compact_revision\":\"3\"}}", &m, &ev),
        0);
    cr_assert(m.canceled);
    cr_assert_eq(m.compact_revision, 3);
    cr_assert_eq(
        watch_msg("{\"error\":{\"grpc_code\":14,\"message\":\"etcdserver: no leader\"}}", &m, &ev),
        0);
    cr_assert_eq(m.err, -NG_ECLUSTER_UNAVAILABLE);
    cr_assert(m.retry);
    cr_assert_eq(ev.count, 2);
    etcd_events_free(&ev);
}

Test(etcd_wire, watch_answer_leaves_events_as_they_were_on_damage)
{
    struct etcd_wire_watch_msg m;
    struct etcd_events ev = {0};
    cr_assert_eq(
        watch_msg("{\"result\":{\"events\":[{\"kv\":{\"key\":\"YQ==\",\"mod_revision\":\"9\"}}]}}",
                  &m, &ev),
        0);
    static const char *const bad[] = {
        /* out of revision order after the 9 already held */
        "{\"result\":{\"events\":[{\"kv\":{\"key\":\"YQ==\",\"mod_revision\":\"10\"}},"
        "{\"kv\":{\"key\":\"YQ==\",\"mod_revision\":\"8\"}}]}}",
        "{\"result\":{\"events\":[{\"kv\":{\"key\":\"YQ==\",\"mod_revision\":\"8\"}}]}}",
        "{\"result\":{\"events\":[{\"type\":\"MERGE\",\"kv\":{\"key\":\"YQ==\",\"mod_revision\":"
        "\"10\"}}]}}",
        "{\"result\":{\"events\":[{\"kv\":{\"key\":\"YQ==\"}}]}}", /* no revision */
        "{\"result\":{\"events\":[{}]}}",
        "{\"result\":{\"compact_revision\":\"-1\"}}",
        "{\"result\":7}",
        "{\"what\":{}}",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        cr_assert_eq(watch_msg(bad[i], &m, &ev), -NG_EPROTO, "%s", bad[i]);
        cr_assert_eq(ev.count, 1, "%s", bad[i]);
    }
    etcd_events_free(&ev);
}
