/*
 * libFuzzer target for the ACL decoders (broker/acl.h, net/proto.h "ACLs"):
 * the first byte picks one, the rest is its input.
 *   0  the broker's ACL file as it is on disk (the checksum must match),
 *      and the same bytes as a cluster's ACL record (acls/<key>);
 *   1  the same bytes with their checksum appended here, so that the
 *      fuzzer reaches the entries;
 *   2  a CreateAcls request body (v0), each ACL checked as the broker does;
 *   3  a DescribeAcls / DeleteAcls filter (v0), checked and matched;
 *   4  a DescribeAcls answer body (v0), as libnagare reads it.
 * A file that decodes must encode back to the very same bytes (the format
 * has one spelling); nothing may read past its input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "base/bytes.h"
#include "broker/acl.h"
#include "net/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void file_case(const uint8_t *p, size_t n)
{
    struct acl *acls = NULL;
    uint32_t count = 0;
    if (acl_file_decode(p, n, &acls, &count) == 0) {
        size_t cap = acl_file_bytes(acls, count);
        uint8_t *again = malloc(cap);
        ASSERT(again != NULL);
        ASSERT(acl_file_encode(acls, count, again, cap) == n && memcmp(again, p, n) == 0);
        free(again);
        free(acls);
    } else {
        ASSERT(acls == NULL && count == 0);
    }
    struct acl one;
    if (acl_rec_decode(p, n, &one) == 0) { /* a record: one ACL, the same bytes back */
        uint8_t again[ACL_REC_BYTES_MAX];
        char key[ACL_REC_KEY_BYTES];
        ASSERT(acl_rec_encode(&one, again, sizeof(again), key) == n && memcmp(again, p, n) == 0);
    }
}

static const struct acl probe_acl = {
    .resource_type = PROTO_ACL_RESOURCE_TOPIC,
    .pattern_type = PROTO_ACL_PATTERN_PREFIXED,
    .operation = PROTO_ACL_OP_READ,
    .permission = PROTO_ACL_PERMISSION_ALLOW,
    .name = "orders",
    .principal = "User:alice",
    .host = "*",
};

static void request_case(uint8_t which, const uint8_t *p, size_t n)
{
    struct rd r = rd_make(p, n);
    struct proto_dec d;
    struct proto_acl a;
    if (which == 2 && proto_create_acls_req_decode(&r, 0, &d) == 0) {
        while (proto_next_acl(&d, &a)) {
            struct acl out;
            const char *why = NULL;
            if (acl_from_proto(&a, &out, &why) == 0) {
                struct acl_who who = {.principal = "User:alice", .host = "10.0.0.1"};
                (void)acl_matches(&out, &who, PROTO_ACL_RESOURCE_TOPIC, "orders-1", 8,
                                  PROTO_ACL_OP_DESCRIBE);
            } else {
                ASSERT(why != NULL);
            }
        }
    } else if (which == 3) {
        uint16_t api = n > 0 && (p[0] & 1) ? PROTO_API_DELETE_ACLS : PROTO_API_DESCRIBE_ACLS;
        if (proto_acl_filter_req_decode(&r, api, 0, &a) == 0 && acl_filter_check(&a) == 0) {
            (void)acl_filter_matches(&a, &probe_acl);
        }
    } else if (which == 4 && proto_acl_list_resp_decode(&r, PROTO_API_DESCRIBE_ACLS, 0, &d) == 0) {
        while (proto_next_acl(&d, &a)) {
            ASSERT(a.name.len >= 0 && a.principal.len >= 0 && a.host.len >= 0);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    uint8_t which = data[0] % 5;
    size_t n = size - 1;
    /* Exactly sized copies: ASan sees any over-read. */
    uint8_t *copy = malloc(n + 8 + 1);
    if (copy == NULL) {
        return 0;
    }
    memcpy(copy, data + 1, n);
    if (which == 0) {
        file_case(copy, n);
    } else if (which == 1) {
        put_be64(copy + n, XXH3_64bits(copy, n));
        file_case(copy, n + 8);
    } else {
        request_case(which, copy, n);
    }
    free(copy);
    return 0;
}
