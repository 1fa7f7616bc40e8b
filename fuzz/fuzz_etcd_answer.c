/*
 * fuzz/fuzz_etcd_answer.c — libFuzzer target for the decoders of etcd's
 * gateway answers (cluster/etcd_wire.h).
 *
 * Input: one selector byte, then the bytes of an answer, copied to a heap
 * block of exactly their size so ASan sees any read past the end.
 * Selector % 8: 0 a range answer, 1 a txn answer (with its gets), 2 a lease
 * grant, 3 a keep-alive, 4 an error answer (the HTTP status from the
 * selector's high bits), 5 an answer with only a header, 6 a watch stream:
 * split into objects by etcd_wire_scan(), whole and fed in two pieces (at
 * a point the first byte picks), which must find the same objects, each
 * decoded as a watch message into one growing list of events; 7 base64:
 * what decodes must encode back to the very same text (one spelling).
 * Decoded pairs and events are checked against the limits the contract
 * promises, and freed (LeakSanitizer sees what is not).
 *
 * Seeds: fuzz/corpus/etcd_answer/ (answers as etcd 3.4 writes them).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "cluster/etcd_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_kv(const struct etcd_kv *kv)
{
    ASSERT(kv->key != NULL && kv->key_len > 0 && kv->key_len <= ETCD_KEY_BYTES_MAX);
    ASSERT(kv->key[kv->key_len] == '\0');
    ASSERT(kv->value != NULL && kv->value_len <= ETCD_VALUE_BYTES_MAX);
    ASSERT(kv->value[kv->value_len] == '\0');
    ASSERT(kv->mod_revision >= 0 && kv->create_revision >= 0 && kv->version >= 0);
}

static void check_kvs(int rc, struct etcd_kvs *kvs)
{
    ASSERT(rc == 0 || (kvs->count == 0 && kvs->kvs == NULL));
    ASSERT(kvs->count <= ETCD_RANGE_KVS_MAX);
    for (size_t i = 0; i < kvs->count; i++) {
        check_kv(&kvs->kvs[i]);
    }
    etcd_kvs_free(kvs);
}

/* The ends of the objects in buf[len], fed whole or as [0, cut) then the
 * rest; how many (at most cap) before the first error or the end. */
static size_t scan_all(const char *buf, size_t len, size_t cut, size_t *ends, size_t cap)
{
    size_t n = 0;
    size_t start = 0;
    struct etcd_wire_scan s = {0};
    size_t have = cut < len ? cut : len;
    while (n < cap) {
        size_t end;
        int rc = etcd_wire_scan(&s, buf + start, have - start, &end);
        if (rc < 0) {
            break;
        }
        if (rc == 0) {
            if (have == len) {
                break;
            }
            have = len;
            continue;
        }
        ASSERT(end > 0 && start + end <= have);
        ends[n++] = start + end;
        start += end;
        memset(&s, 0, sizeof(s));
    }
    return n;
}

static void stream(const char *buf, size_t len, size_t cut)
{
    enum { OBJECTS_MAX = 64 };
    size_t whole[OBJECTS_MAX];
    size_t split[OBJECTS_MAX];
    size_t n = scan_all(buf, len, len, whole, OBJECTS_MAX);
    ASSERT(scan_all(buf, len, cut, split, OBJECTS_MAX) == n);
    ASSERT(memcmp(whole, split, n * sizeof(whole[0])) == 0);
    struct etcd_events ev = {0};
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        struct etcd_wire_watch_msg msg;
        size_t before = ev.count;
        int rc = etcd_wire_watch_answer(buf + start, whole[i] - start, &msg, &ev);
        ASSERT(rc == 0 || ev.count == before);
        ASSERT(msg.err <= 0);
        start = whole[i];
    }
    for (size_t i = 0; i < ev.count; i++) {
        check_kv(&ev.events[i].kv);
        ASSERT(i == 0 || ev.events[i].kv.mod_revision >= ev.events[i - 1].kv.mod_revision);
    }
    etcd_events_free(&ev);
}

static void base64(const char *text, size_t len)
{
    uint8_t *bytes = malloc(len / 4 * 3 + 1);
    size_t n;
    if (bytes != NULL && etcd_wire_b64_decode(text, len, bytes, len / 4 * 3, &n) == 0) {
        char *again = malloc(etcd_wire_b64_len(n) + 1);
        ASSERT(again != NULL);
        etcd_wire_b64_encode(bytes, n, again);
        ASSERT(strlen(again) == len && memcmp(again, text, len) == 0);
        free(again);
    }
    free(bytes);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    size_t len = size - 1;
    char *body = malloc(len > 0 ? len : 1); /* exactly sized: ASan sees any over-read */
    if (body == NULL) {
        return 0;
    }
    memcpy(body, data + 1, len);
    struct etcd_kvs kvs;
    bool flag;
    int64_t a;
    int64_t b;
    int rc;
    switch (data[0] % 8) {
    case 0:
        rc = etcd_wire_range_answer(body, len, &kvs);
        check_kvs(rc, &kvs);
        break;
    case 1:
        rc = etcd_wire_txn_answer(body, len, &flag, &a, &kvs);
        ASSERT(rc == 0 || !flag);
        check_kvs(rc, &kvs);
        break;
    case 2:
        rc = etcd_wire_lease_grant_answer(body, len, &a, &b);
        ASSERT(rc != 0 || (a != 0 && b > 0));
        break;
    case 3:
        rc = etcd_wire_keepalive_answer(body, len, &a, &flag);
        ASSERT(rc != 0 || a > 0);
        break;
    case 4:
        rc = etcd_wire_error(body, len, 100 + (data[0] >> 3) * 16, &flag);
        ASSERT(rc < 0);
        break;
    case 5:
        (void)etcd_wire_header_answer(body, len);
        break;
    case 6:
        stream(body, len, len > 0 ? (size_t)data[0] * 7919 % len : 0);
        break;
    default:
        base64(body, len);
        break;
    }
    free(body);
    return 0;
}
