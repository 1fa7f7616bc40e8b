/*
 * cluster/etcd.h — a client of etcd's v3 API over its HTTP/JSON gateway
 * (libcurl + jansson): ranges, compare-and-swap transactions, leases and
 * watches. docs/cluster.md says what nagare keeps there.
 *
 * Contract:
 * - Every call blocks (bounded by the client's timeout_ms) and is made
 *   from one thread at a time per struct etcd: the cluster thread, never
 *   an event loop's. etcd_watch_* use a second connection of their own, so
 *   a watch may wait on its own thread while the first thread makes calls
 *   (two threads, two struct etcd_watch / struct etcd users: no sharing).
 * - Endpoints are tried in order; a connection failure or an answer
 *   "no leader"/unavailable moves to the next one and the call is retried
 *   until timeout_ms, then fails with -NG_ECLUSTER_UNAVAILABLE.
 * - Keys and values are byte strings (the gateway's base64 is this
 *   module's business, never the caller's). Sizes are bounded:
 *   ETCD_KEY_BYTES_MAX, ETCD_VALUE_BYTES_MAX, and a range returns at most
 *   ETCD_RANGE_KVS_MAX pairs (more is -NG_ETOOBIG: callers page by key).
 * - Returned memory (struct etcd_kvs, events) is owned by the caller and
 *   freed with etcd_kvs_free() / etcd_events_free().
 * - Returns 0, or -NG_ECLUSTER_UNAVAILABLE (no endpoint answered in time),
 *   -NG_EPROTO (an answer that does not parse), -NG_ETOOBIG, -NG_EBADARG,
 *   -NG_ENOTFOUND (a lease that expired or never was), -ENOMEM.
 */
#ifndef NAGARE_CLUSTER_ETCD_H
#define NAGARE_CLUSTER_ETCD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/assert.h"

#define ETCD_ENDPOINTS_MAX 8
#define ETCD_KEY_BYTES_MAX 1024
#define ETCD_VALUE_BYTES_MAX (1u << 20) /* etcd's own request limit is 1.5 MiB */
#define ETCD_RANGE_KVS_MAX 100000
#define ETCD_TXN_OPS_MAX 64

struct etcd_config {
    const char *endpoints[ETCD_ENDPOINTS_MAX]; /* "http://127.0.0.1:2379"; borrowed */
    uint32_t endpoint_count;
    uint32_t timeout_ms; /* per call, retries included */
};

struct etcd; /* opaque: one per thread */

MUST_USE int etcd_open(struct etcd **out, const struct etcd_config *cfg);
void etcd_close(struct etcd *e);

struct etcd_kv {
    char *key; /* NUL-terminated copies */
    size_t key_len;
    char *value;
    size_t value_len;
    int64_t create_revision;
    int64_t mod_revision;
    int64_t version;
    int64_t lease; /* 0: none */
};

struct etcd_kvs {
    struct etcd_kv *kvs;
    size_t count;
    int64_t revision; /* the store's revision the answer was read at */
};
void etcd_kvs_free(struct etcd_kvs *kvs);

/* Every key in [key, range_end), or the one key when range_end is NULL;
 * etcd_prefix_end() gives the range_end of a prefix. */
MUST_USE int etcd_range(struct etcd *e, const char *key, const char *range_end,
                        struct etcd_kvs *out);
/* The range end that selects every key starting with prefix, into
 * buf[ETCD_KEY_BYTES_MAX + 1]. */
void etcd_prefix_end(const char *prefix, char *buf);

/* A transaction: if every compare holds, the success ops run, else the
 * failure ops; all at one revision. */
enum etcd_cmp_target {
    ETCD_CMP_CREATE_REVISION, /* 0: the key does not exist */
    ETCD_CMP_MOD_REVISION,
    ETCD_CMP_VERSION,
    ETCD_CMP_VALUE,
};
enum etcd_cmp_result { ETCD_CMP_EQUAL, ETCD_CMP_NOT_EQUAL, ETCD_CMP_LESS, ETCD_CMP_GREATER };

struct etcd_cmp {
    const char *key;
    enum etcd_cmp_target target;
    enum etcd_cmp_result result;
    int64_t number;    /* for the revision and version targets */
    const char *value; /* for ETCD_CMP_VALUE */
    size_t value_len;
};

enum etcd_op_kind { ETCD_OP_PUT, ETCD_OP_DELETE, ETCD_OP_DELETE_PREFIX, ETCD_OP_GET };

struct etcd_op {
    enum etcd_op_kind kind;
    const char *key;
    const char *value; /* put */
    size_t value_len;
    int64_t lease; /* put: 0 for none */
};

struct etcd_txn {
    const struct etcd_cmp *cmps;
    size_t cmp_count;
    const struct etcd_op *success;
    size_t success_count;
    const struct etcd_op *failure;
    size_t failure_count;
};

/* *succeeded says which branch ran; *revision_out (may be NULL) the store's
 * revision after it. gets (ETCD_OP_GET) in the branch that ran are returned
 * in *gets_out (may be NULL when there are none), in op order, all their
 * pairs concatenated. */
MUST_USE int etcd_txn(struct etcd *e, const struct etcd_txn *t, bool *succeeded,
                      int64_t *revision_out, struct etcd_kvs *gets_out);

/* Leases. */
MUST_USE int etcd_lease_grant(struct etcd *e, int64_t ttl_s, int64_t *lease_out);
/* One keep-alive; -NG_ENOTFOUND when the lease has expired. *ttl_out (may
 * be NULL) gets the remaining TTL in seconds. */
MUST_USE int etcd_lease_keepalive(struct etcd *e, int64_t lease, int64_t *ttl_out);
MUST_USE int etcd_lease_revoke(struct etcd *e, int64_t lease);

/* Watches: every change to keys in [key, range_end) from start_revision
 * on, in revision order. */
enum etcd_event_kind { ETCD_EVENT_PUT, ETCD_EVENT_DELETE };
struct etcd_event {
    enum etcd_event_kind kind;
    struct etcd_kv kv; /* a delete carries the key and its mod_revision */
};
struct etcd_events {
    struct etcd_event *events;
    size_t count;
    int64_t revision; /* next start_revision: one past the last event's */
};
void etcd_events_free(struct etcd_events *ev);

struct etcd_watch; /* opaque: one per thread, its own connection */
MUST_USE int etcd_watch_open(struct etcd_watch **out, const struct etcd_config *cfg,
                             const char *key, const char *range_end, int64_t start_revision);
/* Waits up to wait_ms for events; 0 with ev->count == 0 when none came.
 * -NG_EOFFSET_RANGE when start_revision was compacted away: re-read the
 * range and open a new watch from its revision. */
MUST_USE int etcd_watch_next(struct etcd_watch *w, uint32_t wait_ms, struct etcd_events *ev);
/* Wakes a etcd_watch_next() waiting on another thread (it returns
 * -NG_ECLOSED); safe from any thread. */
void etcd_watch_cancel(struct etcd_watch *w);
void etcd_watch_close(struct etcd_watch *w);

#endif
