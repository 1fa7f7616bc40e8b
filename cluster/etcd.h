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
 * - Endpoints are tried in order, starting from the last one that worked;
 *   a connection failure, a try that ran out of its share of the time
 *   (timeout_ms / endpoints, at least 500 ms) or an answer "no leader",
 *   "not leader", unavailable or timed out moves to the next one, and the
 *   call is retried until timeout_ms, then fails with
 *   -NG_ECLUSTER_UNAVAILABLE. Every request asks etcd to refuse when the
 *   member has no leader (gRPC metadata "hasleader"), so a member cut off
 *   from its quorum sends the client elsewhere instead of stalling it.
 * - A try that timed out may still have been applied. Retrying it is safe
 *   for what the cluster does: a compare-and-swap retried after it took
 *   effect fails its compares (the caller re-reads and decides again), a
 *   put or a delete is idempotent, a lease granted twice expires unused.
 * - Keys and values are byte strings (the gateway's base64 is this
 *   module's business, never the caller's). Sizes are bounded:
 *   ETCD_KEY_BYTES_MAX, ETCD_VALUE_BYTES_MAX, and a range returns at most
 *   ETCD_RANGE_KVS_MAX pairs (more is -NG_ETOOBIG: callers page by key).
 * - Returned memory (struct etcd_kvs, events) is owned by the caller and
 *   freed with etcd_kvs_free() / etcd_events_free().
 * - Returns 0, or -NG_ECLUSTER_UNAVAILABLE (no endpoint answered in time,
 *   or etcd's database is full), -NG_EPROTO (an answer that does not
 *   parse), -NG_ETOOBIG, -NG_EBADARG (an empty key, a bad config, an
 *   argument etcd refused), -NG_ENOTFOUND (a lease that expired or never
 *   was, also for a put under it), -EACCES (etcd wants authentication),
 *   -ENOMEM. The log gets one WARN line per call whose first endpoint
 *   failed, naming it and why.
 * - The gateway's JSON is cluster/etcd_wire.h's business.
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
/* A watch stops reading its stream while this many events (or more: a
 * message read is taken whole) wait for etcd_watch_next(). */
#define ETCD_WATCH_READY_MAX 4096

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

/* Every key in [key, range_end), or the one key when range_end is NULL
 * (range_end "" is every key from key on); etcd_prefix_end() gives the
 * range_end of a prefix. out is left empty on error. */
MUST_USE int etcd_range(struct etcd *e, const char *key, const char *range_end,
                        struct etcd_kvs *out);
/* The range end that selects every key starting with prefix, into
 * buf[ETCD_KEY_BYTES_MAX + 1]: "" when the prefix is empty or all 0xff
 * bytes (every key from the prefix on). */
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
 * in *gets_out (may be NULL when neither branch has one), in op order, all
 * their pairs concatenated. At most ETCD_TXN_OPS_MAX compares and ops per
 * branch (-NG_ETOOBIG). A key may appear in one put or delete of a branch
 * only (etcd refuses the rest: -NG_EBADARG). */
MUST_USE int etcd_txn(struct etcd *e, const struct etcd_txn *t, bool *succeeded,
                      int64_t *revision_out, struct etcd_kvs *gets_out);

/* Leases. A grant's ttl_s must be positive (-NG_EBADARG); etcd may round
 * it up to its minimum (1.5 x its election timeout). */
MUST_USE int etcd_lease_grant(struct etcd *e, int64_t ttl_s, int64_t *lease_out);
/* One keep-alive; -NG_ENOTFOUND when the lease has expired. *ttl_out (may
 * be NULL) gets the remaining TTL in seconds. */
MUST_USE int etcd_lease_keepalive(struct etcd *e, int64_t lease, int64_t *ttl_out);
MUST_USE int etcd_lease_revoke(struct etcd *e, int64_t lease);

/* Watches: every change to keys in [key, range_end) from start_revision
 * (>= 1, else -NG_EBADARG) on, in revision order, each exactly once. A
 * stream that ends (its member died, lost its leader, or did not accept
 * the watch within its share of timeout_ms) is started again on the next
 * endpoint from the revision after the last one handed on, so a member's
 * death loses and repeats nothing. A member that stops answering without
 * closing its connection (SIGSTOP) is not noticed by the watch: the
 * session's lease keep-alives notice it, and the caller then reopens the
 * watch from its last revision. */
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
/* Waits up to wait_ms for events; 0 with ev->count == 0 when none came
 * (ev->revision is then where the watch goes on from). Events come as
 * etcd sends them, whole revisions only (a revision's events are handed on
 * together); the watch reads no more while ETCD_WATCH_READY_MAX
 * events wait to be handed on. -NG_ECLUSTER_UNAVAILABLE when the wait ends
 * and no stream has worked for timeout_ms (the watch keeps trying; call
 * again). -NG_EOFFSET_RANGE when start_revision was compacted away:
 * re-read the range and open a new watch from its revision; that and
 * -NG_EPROTO (a stream that does not parse) stay for every later call. */
MUST_USE int etcd_watch_next(struct etcd_watch *w, uint32_t wait_ms, struct etcd_events *ev);
/* Wakes a etcd_watch_next() waiting on another thread (it returns
 * -NG_ECLOSED, as every later call does); safe from any thread while the
 * watch is open. */
void etcd_watch_cancel(struct etcd_watch *w);
void etcd_watch_close(struct etcd_watch *w);

#endif
