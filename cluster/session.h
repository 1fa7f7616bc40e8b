/*
 * cluster/session.h — a broker's session with the cluster (docs/cluster.md,
 * section 3): its lease and registration, the controller campaign and the
 * controller's work, the watched cluster view, and the requests that need
 * etcd. The broker's only door into cluster/.
 *
 * Contract:
 * - cluster_session_start() registers the broker (a lease of lease_ttl_s
 *   and brokers/<id> under it) before it returns, then runs one thread of
 *   its own, the cluster thread, until cluster_session_stop(). Every etcd
 *   call is made there; nothing here ever blocks the caller's event loop
 *   except start and stop.
 * - Views: each time the cluster changes (a watched etcd event, or this
 *   broker's registration lost or regained) the cluster thread calls
 *   view_fn(arg, view) with a new immutable struct cluster_view
 *   (cluster/state.h). Ownership moves to the callee, which frees it with
 *   cluster_view_free() (the broker posts it to its loop). Views come in
 *   revision order; the first comes once the session has read the prefix.
 * - Fencing: view->fenced is true while this broker's registration is not
 *   known to hold: its keep-alives have not been answered for
 *   lease_ttl_s - CLUSTER_KEEPALIVE_S seconds (before etcd can expire the
 *   lease and the controller move its partitions), or etcd said the lease
 *   is gone. A fenced broker must stop acting as leader of anything (no
 *   produce, no high watermark moves) until a view with fenced false comes;
 *   the session registers again under a new lease by itself.
 * - Requests (create_topic, delete_topic, alter_isr, reassign) are queued
 *   to the cluster thread; each queued one completes exactly once with
 *   done(arg, rc) called on the cluster thread (also when the session
 *   stops: -NG_ECLOSED). A request that cannot be queued returns its error
 *   and done is never called.
 * - Thread: start, stop and the request functions from one thread (the
 *   broker's main loop); view_fn and done on the cluster thread only.
 */
#ifndef NAGARE_CLUSTER_SESSION_H
#define NAGARE_CLUSTER_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/assert.h"
#include "cluster/etcd.h"
#include "cluster/state.h"

/* A lease of 6 s kept alive every 2 s: a dead broker's partitions move
 * within about 6 s, and two keep-alives may be lost before the lease is in
 * danger. The TTL may be set from 3 s (one keep-alive of slack) to 60 s. */
#define CLUSTER_LEASE_TTL_S_DEFAULT 6u
#define CLUSTER_LEASE_TTL_S_MIN 3u
#define CLUSTER_LEASE_TTL_S_MAX 60u
#define CLUSTER_KEEPALIVE_S(ttl_s) ((ttl_s) / 3u)
static_assert(CLUSTER_KEEPALIVE_S(CLUSTER_LEASE_TTL_S_MIN) >= 1,
              "a keep-alive every second at least");

/* The controller gives leadership back to preferred replicas this often
 * (Kafka's leader.imbalance.check.interval.seconds is 300 s; 30 s brings a
 * restarted broker back to work sooner). */
#define CLUSTER_PREFERRED_LEADER_CHECK_MS_DEFAULT 30000u
#define CLUSTER_PREFERRED_LEADER_CHECK_MS_MIN 100u

#define CLUSTER_NAME_DEFAULT "nagare"
/* An etcd endpoint URL, "http://127.0.0.1:2379", NUL included. */
#define CLUSTER_ENDPOINT_BYTES 256

/* Requests waiting for the cluster thread; past it a request is refused
 * with -NG_EBUSY (they are rare: topic changes and ISR changes). */
#define CLUSTER_SESSION_QUEUE_MAX 256u

struct cluster_session_config {
    int32_t broker_id;                   /* 0..CLUSTER_BROKER_ID_MAX */
    char host[CLUSTER_HOST_BYTES];       /* advertised to clients and followers */
    uint16_t port;                       /* advertised; not 0 */
    char kafka_host[CLUSTER_HOST_BYTES]; /* its Kafka listener's advertised host */
    uint16_t kafka_port;                 /* 0: no Kafka listener */
    char endpoints[ETCD_ENDPOINTS_MAX][CLUSTER_ENDPOINT_BYTES];
    uint32_t endpoint_count;               /* 1..ETCD_ENDPOINTS_MAX */
    char cluster_name[CLUSTER_NAME_BYTES]; /* keys live under /<cluster_name>/ */
    uint32_t lease_ttl_s;                  /* CLUSTER_LEASE_TTL_S_MIN..MAX */
    uint32_t preferred_leader_check_ms;    /* >= CLUSTER_PREFERRED_LEADER_CHECK_MS_MIN */
};

/* Defaults: no broker id (-1), no endpoints, "nagare", the TTL and check
 * interval above. */
void cluster_session_config_default(struct cluster_session_config *c);

/* Parses a comma-separated list of etcd endpoints ("http://h:p,http://h2:p")
 * into c->endpoints. Each must start with http:// and have a host; blanks
 * around each are dropped. Returns 0, or -NG_EBADARG (empty list, an entry
 * empty or too long, more than ETCD_ENDPOINTS_MAX, not http://); c is then
 * unchanged. */
MUST_USE int cluster_endpoints_parse(struct cluster_session_config *c, const char *list);

/* A cluster name is 1..CLUSTER_NAME_BYTES-1 letters, digits, '.', '_',
 * '-', not "." or "..": it becomes a key path segment. */
bool cluster_name_ok(const char *name);

typedef void cluster_view_fn(void *arg, struct cluster_view *view);
typedef void cluster_done_fn(void *arg, int rc);

struct cluster_session; /* opaque */

/* Connects to etcd, grants the lease, registers brokers/<id> (host, port,
 * incarnation = now in ms) and starts the cluster thread. cfg is copied.
 * A registration of the same id with this broker's own host and port is
 * its previous life's (the caller holds that port): start waits up to
 * two lease_ttl_s (an etcd leader change renews every lease) for its lease
 * to end, as after a crash and a quick restart;
 * while no etcd endpoint answers, it tries again for up to 30 s.
 * Returns 0 with *out set; -EEXIST when a live broker holds the id (its
 * registration's lease has not expired), logged with its address;
 * -NG_ECLUSTER_UNAVAILABLE when no endpoint answered for 30 s; -NG_EBADARG
 * for a config out of its ranges; -ENOMEM; -errno when the thread cannot
 * start. On error nothing is left behind (the lease is revoked). */
MUST_USE int cluster_session_start(struct cluster_session **out,
                                   const struct cluster_session_config *cfg,
                                   cluster_view_fn *view_fn, void *arg);

/* Stops the cluster thread (view_fn is not called again once it returns),
 * completes queued requests with -NG_ECLOSED, revokes the lease (so the
 * controller moves this broker's partitions at once rather than after the
 * TTL) and frees s. NULL is a no-op. */
void cluster_session_stop(struct cluster_session *s);

/* Stops and frees s as a crash would leave etcd: the lease is not revoked
 * and runs out by itself (its TTL after the last keep-alive), so the
 * controller moves this broker's partitions only then. For a power cut in
 * tests (broker/power_sim.h). NULL is a no-op. */
void cluster_session_vanish(struct cluster_session *s);

/* Creates a topic: topics/<name> and every partitions/<name>/<i>, replicas
 * placed by controller_place() over the live brokers, the first replica
 * leading at leader epoch 0, all replicas in sync. done's rc: 0 once
 * etcd holds the topic and every partition (views follow); -NG_ETOPIC_EXISTS;
 * -NG_ENOT_ENOUGH_REPLICAS when fewer brokers live than replication_factor;
 * -NG_ECLUSTER_UNAVAILABLE. Returns 0 (queued), -NG_EBADARG (a bad name,
 * partitions outside 1..PROTO_PARTITIONS_MAX, replication_factor outside
 * 1..CLUSTER_REPLICAS_MAX, min_insync_replicas above it), -NG_EBUSY (queue
 * full), -NG_ECLOSED. name is copied. */
MUST_USE int cluster_session_create_topic(struct cluster_session *s, const char *name,
                                          int32_t partitions, int16_t replication_factor,
                                          const struct cluster_topic_config *cfg,
                                          cluster_done_fn *done, void *arg);

/* Deletes topics/<name>, its partition states and its reassignments in one
 * transaction. done's rc: 0, -NG_EUNKNOWN_TOPIC, -NG_ECLUSTER_UNAVAILABLE.
 * Returns as create_topic. */
MUST_USE int cluster_session_delete_topic(struct cluster_session *s, const char *name,
                                          cluster_done_fn *done, void *arg);

/* The leader's ISR change (docs/cluster.md, section 4): writes isr[count)
 * into partitions/<topic>/<index> if its key is still at mod_revision and
 * its leader epoch is still leader_epoch, and this broker is still
 * registered and its leader. isr must be a subset of the replicas holding
 * this broker (controller_isr_check()). done's rc: 0 once etcd accepted it
 * (the new ISR may be used from then on; the view follows); -NG_ECONFLICT
 * when the key moved (a view with the new state follows: decide again);
 * -NG_EFENCED_LEADER_EPOCH when the epoch is not the key's;
 * -NG_ENOT_LEADER when this broker does not lead it or is fenced;
 * -NG_EUNKNOWN_TOPIC; -NG_EBADARG for an ISR the partition does not allow;
 * -NG_ECLUSTER_UNAVAILABLE. Returns 0 (queued), -NG_EBADARG (count outside
 * 1..CLUSTER_REPLICAS_MAX, a bad name), -NG_EBUSY, -NG_ECLOSED. */
MUST_USE int cluster_session_alter_isr(struct cluster_session *s, const char *topic, int32_t index,
                                       int64_t mod_revision, int32_t leader_epoch,
                                       const int32_t *isr, uint8_t count, cluster_done_fn *done,
                                       void *arg);

/* Asks the controller to move partition <index> of topic onto
 * replicas[count) (the first becomes the preferred leader): writes
 * reassign/<topic>/<index>, which the controller carries out (section 3)
 * and deletes when done. done's rc: 0 once the request is in etcd;
 * -NG_EUNKNOWN_TOPIC; -NG_EBADARG (replicas not distinct, a broker not
 * live); -NG_ECLUSTER_UNAVAILABLE. Returns as alter_isr. */
MUST_USE int cluster_session_reassign(struct cluster_session *s, const char *topic, int32_t index,
                                      const int32_t *replicas, uint8_t count, cluster_done_fn *done,
                                      void *arg);

/* Sets users/<user>/<mechanism> to value (docs/cluster.md, section 2;
 * broker/users.h reads it): every broker's next view carries it. done's
 * rc: 0 once etcd holds it; -NG_ECLUSTER_UNAVAILABLE. Returns 0 (queued),
 * -NG_EBADARG (a name empty, with '/', or too long for its field; an
 * empty or too long value), -NG_EBUSY, -NG_ECLOSED. Strings are copied. */
MUST_USE int cluster_session_put_user(struct cluster_session *s, const char *user,
                                      const char *mechanism, const char *value,
                                      cluster_done_fn *done, void *arg);

/* Deletes users/<user>/<mechanism>, or (mechanism NULL) every credential
 * of user. done's rc: 0; -NG_ENOTFOUND (the session's copy of etcd has no
 * such key); -NG_ECLUSTER_UNAVAILABLE. Returns as put_user. */
MUST_USE int cluster_session_delete_user(struct cluster_session *s, const char *user,
                                         const char *mechanism, cluster_done_fn *done, void *arg);

/* Puts acls/<key> = value for each of recs[0..n) (docs/cluster.md,
 * section 2; broker/acl.h makes and reads them), in transactions of up to
 * ETCD_TXN_OPS_MAX keys: every broker's next view carries them. done's
 * rc: 0 once etcd holds them all; -NG_ECLUSTER_UNAVAILABLE (the ones of
 * earlier transactions may be in: putting them again is harmless).
 * Returns 0 (queued: the session owns recs, malloc'd, and frees it once
 * done has run), -NG_EBADARG (n 0 or over CLUSTER_ACLS_MAX, a key empty or
 * with '/', a value empty), -NG_EBUSY, -NG_ECLOSED (then recs is still the
 * caller's). */
MUST_USE int cluster_session_put_acls(struct cluster_session *s, struct cluster_acl_rec *recs,
                                      uint32_t n, cluster_done_fn *done, void *arg);

/* Deletes acls/<key> for the keys of recs[0..n) (values unused); keys the
 * session's copy of etcd does not hold are skipped. done's rc: 0;
 * -NG_ECLUSTER_UNAVAILABLE. Returns and owns recs as put_acls. */
MUST_USE int cluster_session_delete_acls(struct cluster_session *s, struct cluster_acl_rec *recs,
                                         uint32_t n, cluster_done_fn *done, void *arg);

#endif
