/*
 * cluster/etcd_wire.h — the JSON messages of etcd's v3 HTTP gateway, as
 * pure functions over bytes: request bodies built from cluster/etcd.h's
 * types, answers and watch-stream messages decoded into them. No I/O:
 * cluster/etcd.c moves the bytes; the fuzz target drives the decoders.
 *
 * Contract:
 * - The gateway speaks proto3 JSON: keys and values are base64, 64-bit
 *   numbers are decimal strings, and fields at their default (0, false,
 *   "", PUT) are left out. Decoders read a missing field as its default
 *   and anything of the wrong type, out of range or not base64 as
 *   -NG_EPROTO; they never trust a length they did not check.
 * - Decoded keys and values are bounded by ETCD_KEY_BYTES_MAX and
 *   ETCD_VALUE_BYTES_MAX, pairs and events per answer by ETCD_RANGE_KVS_MAX
 *   (-NG_ETOOBIG past them). On any error an output struct is left empty
 *   (nothing to free); on success the caller owns it (etcd_kvs_free(),
 *   etcd_events_free()).
 * - Encoders return 0 with a malloc'd NUL-terminated body in *out (the
 *   caller frees it), -NG_EBADARG for an empty key, -NG_ETOOBIG for a key,
 *   value or op count over its limit, -ENOMEM.
 * - Any thread; no state.
 */
#ifndef NAGARE_CLUSTER_ETCD_WIRE_H
#define NAGARE_CLUSTER_ETCD_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/assert.h"
#include "cluster/etcd.h"

/* A whole unary answer: ETCD_RANGE_KVS_MAX small pairs, or a few dozen of
 * the largest values, with base64's 4/3 and the JSON around them. Larger
 * is -NG_ETOOBIG (the caller pages by key). */
#define ETCD_WIRE_ANSWER_BYTES_MAX (64u << 20)
/* One message of a watch stream. The watch asks etcd to fragment its
 * responses at its request limit (--max-request-bytes, 1.5 MiB by
 * default), so a message is at most that much raw data, 4/3 of it in
 * base64, plus the JSON of each event. */
#define ETCD_WIRE_STREAM_BYTES_MAX (8u << 20)
/* Nesting deeper than any message of the gateway (result.events[].kv). */
#define ETCD_WIRE_DEPTH_MAX 16

/* ---- base64 (RFC 4648, with padding) ---- */

/* Characters that encode n bytes (no NUL). */
size_t etcd_wire_b64_len(size_t n);
/* Writes etcd_wire_b64_len(n) characters and a NUL into dst. */
void etcd_wire_b64_encode(const void *src, size_t n, char *dst);
/* Decodes n characters into dst[cap]; *len_out gets the byte count.
 * -NG_EPROTO when src is not padded base64, -NG_ETOOBIG when the bytes do
 * not fit in cap. */
MUST_USE int etcd_wire_b64_decode(const char *src, size_t n, uint8_t *dst, size_t cap,
                                  size_t *len_out);

/* ---- requests ---- */

/* /v3/kv/range: key, or [key, range_end) (range_end "" is every key from
 * key on), at most limit pairs (0: no limit). */
MUST_USE int etcd_wire_range_request(const char *key, const char *range_end, int64_t limit,
                                     char **out);
/* /v3/kv/txn. */
MUST_USE int etcd_wire_txn_request(const struct etcd_txn *t, char **out);
/* /v3/lease/grant {"TTL"}; /v3/lease/keepalive and /v3/lease/revoke {"ID"}. */
MUST_USE int etcd_wire_lease_grant_request(int64_t ttl_s, char **out);
MUST_USE int etcd_wire_lease_id_request(int64_t lease, char **out);
/* /v3/watch's create request, fragmented responses asked for. */
MUST_USE int etcd_wire_watch_request(const char *key, const char *range_end, int64_t start_revision,
                                     char **out);

/* ---- answers ---- */

/* An answer other than HTTP 200 (http_status), or a stream's "error"
 * message: the error it means, and whether another endpoint may succeed
 * (*retry: unavailable, no leader, timed out, not leader, any 5xx without
 * a readable body). Returns -NG_ECLUSTER_UNAVAILABLE for those,
 * -NG_ENOTFOUND for "not found" (a lease), -NG_ETOOBIG for "too large"
 * and "too many", -NG_EOFFSET_RANGE for "compacted", -NG_EBADARG for other
 * invalid arguments, -EACCES for authentication, -NG_EPROTO otherwise. */
MUST_USE int etcd_wire_error(const char *body, size_t len, long http_status, bool *retry);

MUST_USE int etcd_wire_range_answer(const char *body, size_t len, struct etcd_kvs *out);
/* gets may be NULL: the branch's range answers are then skipped. */
MUST_USE int etcd_wire_txn_answer(const char *body, size_t len, bool *succeeded, int64_t *revision,
                                  struct etcd_kvs *gets);
MUST_USE int etcd_wire_lease_grant_answer(const char *body, size_t len, int64_t *lease,
                                          int64_t *ttl_s);
/* -NG_ENOTFOUND when the lease is gone (etcd answers TTL 0 or less). The
 * gateway answers keep-alive as a stream, so an error comes with HTTP 200:
 * that error as etcd_wire_error() says, *retry with it. */
MUST_USE int etcd_wire_keepalive_answer(const char *body, size_t len, int64_t *ttl_s, bool *retry);
/* An answer with no fields the caller needs: checks it is a JSON object
 * with a header. */
MUST_USE int etcd_wire_header_answer(const char *body, size_t len);

/* ---- the watch stream ---- */

/* Finds where the JSON object a stream's bytes begin with ends, across
 * calls as more bytes come: zero it before the first byte of each object
 * and keep passing the same, longer buffer. */
struct etcd_wire_scan {
    size_t pos; /* bytes of buf looked at */
    uint32_t depth;
    bool in_string;
    bool escape;
    bool started;
};
/* Returns 1 with *end (exclusive) when the object is whole, 0 when more
 * bytes are needed, -NG_EPROTO when buf holds something other than
 * whitespace then an object (or nests past ETCD_WIRE_DEPTH_MAX). */
MUST_USE int etcd_wire_scan(struct etcd_wire_scan *s, const char *buf, size_t len, size_t *end);

struct etcd_wire_watch_msg {
    bool created;
    bool canceled;
    bool fragment;            /* more of this response follows */
    int64_t compact_revision; /* canceled because its start was compacted */
    int64_t revision;         /* the header's */
    int err;                  /* an "error" message: what etcd_wire_error() says */
    bool retry;               /* ... and whether another endpoint may do */
};
/* One message of the stream: its flags into *msg, its events appended to
 * *ev (ev->revision untouched). On error *ev is as it was. */
MUST_USE int etcd_wire_watch_answer(const char *obj, size_t len, struct etcd_wire_watch_msg *msg,
                                    struct etcd_events *ev);

#endif
