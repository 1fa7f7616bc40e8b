/*
 * broker/server.h — a broker worker: its ring and event loop, the topics and
 * partitions it owns, and the request handlers that act on them.
 *
 * Invariants:
 * - Everything here belongs to the thread that called server_init(); only
 *   server_stop_async() and server_crash_async() may be called from
 *   elsewhere (or a signal handler).
 * - Each partition is owned by exactly one worker. There is one worker
 *   today; the handlers reach partitions only through server_topic_find()
 *   and struct bpart, so routing a request's partitions to their owners
 *   (loop_post) is a change in one place, not an assumption everywhere.
 * - Topics are kept sorted by name (binary search); a topic being deleted is
 *   out of that table at once and its partitions close when idle.
 * - A request's frame stays valid until its answer: produce batches are
 *   appended straight from it (their base offset is written in place).
 */
#ifndef NAGARE_BROKER_SERVER_H
#define NAGARE_BROKER_SERVER_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/ring.h"
#include "broker/acl.h"
#include "broker/catalog.h"
#include "broker/config.h"
#include "broker/group_state.h"
#include "broker/metrics.h"
#include "broker/offsets.h"
#include "broker/park.h"
#include "broker/producer_ids.h"
#include "broker/producers.h"
#include "broker/replica.h"
#include "cluster/session.h"
#include "cluster/state.h"
#include "net/loop.h"
#include "net/proto.h"
#include "storage/partition.h"

struct forwards;
struct queue;
struct sasl_serve;
struct server;
struct server_topic;

/* Consumer groups with members a worker holds at once, each a struct group
 * of about 17 KB (its topic names): 1024 of them is 17 MB at most. A join
 * that would need one more is answered NG_ETOOBIG. Groups without members
 * are not held (their committed offsets stay in the offsets store). */
#define SERVER_GROUPS_MAX 1024
/* How often member sessions are checked: session timeouts are >= 1 s
 * (GROUP_SESSION_MS_MIN), so a member is removed at most 100 ms late. */
#define SERVER_GROUPS_EXPIRE_MS 100
/* In a cluster: how often a broker asks for a topic it makes itself while
 * it is missing (the internal topics PROTO_OFFSETS_TOPIC and
 * PROTO_SHARE_STATE_TOPIC, dead-letter topics). */
#define GROUPS_OFFSETS_CREATE_MS 1000

/* What a partition counts for the metrics (broker/metrics.h). */
struct bpart_counters {
    uint64_t records_in;     /* records appended by producers */
    uint64_t bytes_in;       /* their batches' bytes */
    uint64_t bytes_out;      /* batch bytes answered to consumers and followers */
    uint64_t records_out;    /* offsets those answers took their readers past */
    uint64_t leader_changes; /* leader or leader epoch changes seen */
};

/* One partition of a topic, as the broker runs it. */
struct bpart {
    struct part log;
    struct producers producers;
    struct server_topic *topic;
    struct server *server;
    int32_t index;
    bool open;
    struct park_list waiters; /* parked fetches and share fetches wanting it */
    struct replica rep;       /* its replication state (broker/replica.h) */
    struct bpart_counters counters;
};

struct server_topic {
    char name[PROTO_TOPIC_NAME_BYTES_MAX + 1];
    size_t name_len;
    struct topic_config cfg;
    struct bpart *parts; /* cfg.partitions of them */
    struct server_topic *next_doomed;
};

struct server {
    struct broker_config cfg;
    struct ring ring;
    struct loop loop;
    struct server_metrics metrics; /* requests by kind (broker/metrics.h) */
    struct catalog catalog;
    int lock_fd; /* flock on DATA_DIR/.lock */
    bool catalog_ready;
    bool ring_ready;
    bool loop_ready;
    uint16_t port;            /* bound port */
    uint16_t kafka_port;      /* the Kafka listener's bound port; 0: none */
    struct admin_http *admin; /* the HTTP admin listener (broker/admin_http.h); NULL: none */
    uint16_t admin_port;      /* its bound port */
    uint8_t *kafka_arena;     /* its decode arena (broker/kafka_serve.h) */
    struct kafka_groups *kafka_groups; /* Kafka's classic groups (broker/kafka_groups.c) */
    struct server_topic **topics;      /* sorted by name */
    uint32_t topic_count;
    uint32_t topic_cap;
    struct server_topic *doomed; /* deleted, partitions closing */
    struct batch_zctx zctx;
    uint8_t *scratch; /* storage and batch verification scratch */
    size_t scratch_bytes;
    struct part_env env;
    struct progress upgrade_progress; /* format-1 upgrades at start, on a terminal */
    struct producer_ids producer_ids;
    struct acl_store acls; /* the authorizer's (broker/acl_serve.h) */
    struct loop_timer retention_timer;
    struct loop_timer reap_timer;
    /* background scrubbing: a buffer of one batch, and where it goes on */
    uint8_t *scrub_buf;
    size_t scrub_buf_bytes;
    uint32_t scrub_topic;
    int32_t scrub_part;
    struct offsets offsets; /* committed group offsets (group_serve.c) */
    bool offsets_ready;
    int32_t coordinator_epoch; /* a cluster: __offsets/0's epoch the store serves at */
    int64_t offsets_create_ms; /* a cluster: when __offsets was last asked for */
    struct group **groups;     /* groups with members, sorted by id */
    uint32_t group_count;
    uint64_t group_member_seq; /* where new groups start numbering members */
    int64_t groups_checked_ms; /* last session sweep, loop clock */
    struct queue *queue;       /* share groups (share_serve.c); NULL before share_serve_open() */
    /* a cluster (docs/cluster.md): the newest view applied, owned; NULL on
     * a single broker, which answers as broker 0, leader of everything */
    struct cluster_view *view;
    int32_t broker_id;
    struct cluster_session *session;  /* NULL: no etcd (a single broker, or views by hand) */
    volatile sig_atomic_t crashed;    /* server_crash_async(): fini leaves the lease to expire */
    volatile sig_atomic_t tls_reload; /* server_tls_reload_async(): reread the certificates */
    struct fetcher *fetchers;         /* one per leader followed (broker/fetcher.h) */
    struct forwards *forwards;        /* batches sent to leaders elsewhere (broker/forward.h) */
    struct sasl_serve *sasl;          /* users and failed logins (broker/sasl_serve.h) */
    /* TLS to the leaders fetched from (a cluster with listen_tls), or NULL:
     * new fetchers take a reference; rebuilt on reload */
    struct ssl_ctx_st *replica_tls;
    /* Proposes a leader's ISR change (broker/replica.h): 0 when it went to
     * the cluster session (the view that follows carries it), or its
     * error. NULL without a session: the ISR changes with views only. */
    int (*alter_isr)(struct server *s, struct bpart *bp, const int32_t *isr, uint8_t count);
};

/* Opens the data directory (taking its lock), the topic catalog and every
 * partition (recovering them and rebuilding producer state), and starts
 * listening. A clustered config (broker_config_clustered()) with etcd
 * endpoints then starts the cluster session, whose views the loop applies
 * (server_apply_view()); a broker id without endpoints (tests) waits for
 * views posted by hand. Logs what fails; returns 0 or -errno / -NG_E*. On
 * failure nothing is left open. The calling thread becomes the worker. */
MUST_USE int server_init(struct server *s, const struct broker_config *cfg);

/* Serves until a stop has finished. Returns 0 or the ring's -errno. */
MUST_USE int server_run(struct server *s);

/* Asks the server to stop: no new connections, in-flight requests answered.
 * Async-signal-safe; any thread. */
void server_stop_async(struct server *s);

/* Stops as a crashed broker would look to the cluster (a power cut in
 * tests, broker/power_sim.h): as server_stop_async(), and server_fini()
 * leaves the etcd lease to run out instead of revoking it. Async-signal-
 * safe; any thread. */
void server_crash_async(struct server *s);

/* Asks the server to build its TLS listeners' context again from the
 * certificate, key and CA files (after they were replaced), within its
 * next housekeeping round: new connections get the new certificate,
 * connections open keep theirs; files that do not load are logged and the
 * old context kept. Async-signal-safe (SIGHUP); any thread. */
void server_tls_reload_async(struct server *s);

/* Drains and closes every partition (fsyncing them), the catalog, the
 * loop. Returns 0 or the first error met while closing logs. */
MUST_USE int server_fini(struct server *s);

/* ---- a cluster (docs/cluster.md) ---- */

/* Applies a cluster view on the worker: every partition of the view that
 * has this broker (s->broker_id) as a replica is created locally when
 * missing (the topic from the view's catalog) and takes its role, leader
 * epoch and ISR (broker/replica.h); partitions it no longer holds serve
 * nothing. Takes ownership of view (s->view holds it until the next).
 * Loop thread; a clustered broker only. */
void server_apply_view(struct server *s, struct cluster_view *view);

/* server_apply_view() from any thread: posts view to s's loop (ownership
 * moves with it). Returns 0 or -ENOMEM (view freed). */
MUST_USE int server_post_view(struct server *s, struct cluster_view *view);

/* Rebuilds bp's producer states from the batches of its last two segments
 * (a retry can only repeat a recent batch; producers not seen there are
 * treated as new), up to the written end: at open, and after a follower's
 * log was cut back. Blocking reads. Returns 0 or -errno. */
MUST_USE int bpart_load_producers(struct bpart *bp);

/* ---- for the request handlers (admin.c, produce.c, fetch.c, group_serve.c) ---- */

/* The topic named name, or NULL. */
struct server_topic *server_topic_find(struct server *s, struct proto_str name);

/* Names beginning with "__" are the broker's own (PROTO_OFFSETS_TOPIC):
 * clients may not create, delete or produce to them (NG_EBADNAME). */
static inline bool server_topic_reserved(struct proto_str name)
{
    return name.len >= 2 && name.ptr[0] == '_' && name.ptr[1] == '_';
}

/* Creates a topic (catalog entry and every partition). requested may hold
 * PROTO_CONFIG_DEFAULT fields. Returns 0 with *out, or -NG_EBADNAME,
 * -NG_ETOPIC_EXISTS, -NG_EBADARG, -NG_ETOOBIG (too many topics), -errno. */
MUST_USE int server_topic_create(struct server *s, struct proto_str name,
                                 const struct topic_config *requested, struct server_topic **out);

/* Deletes a topic: its directory is durably moved away and removed, it
 * leaves the table (no new request reaches it) and parked fetches on it are
 * answered. Appends already in flight finish on the still-open files, or
 * fail if one needs a segment roll in the removed directory; the
 * partitions close once idle (housekeeping). Returns 0,
 * -NG_EUNKNOWN_TOPIC, or catalog_delete()'s error. */
MUST_USE int server_topic_delete(struct server *s, struct proto_str name);

/* Answer buffers: a writer over room for a frame of frame_cap bytes
 * (returns 0, -NG_EBUSY when the loop's answer memory is spent, or
 * -NG_ETOOBIG), then send what the writer holds (one whole frame, prefix
 * included). */
MUST_USE int server_resp_open(struct loop_req *req, size_t frame_cap, struct wr *w);
void server_resp_send(struct loop_req *req, struct wr *w);

/* A system error as the wire says it: a full disk (-ENOSPC, -EDQUOT) is
 * -NG_EDISK_FULL, which tells the client to retry later rather than report
 * a failure on the peer; any other rc is returned unchanged. */
int server_wire_err(int rc);

/* Answers req with a request-level error. */
void server_resp_error(struct loop_req *req, uint32_t correlation_id, int err);

/* server_resp_open(), or answers the request-level error and returns false. */
MUST_USE bool server_resp_begin(struct loop_req *req, uint32_t correlation_id, size_t frame_cap,
                                struct wr *w);

/* Ends the encoder and sends its frame, or answers its error (logged). */
void server_resp_end(struct loop_req *req, struct proto_enc *e, struct wr *w,
                     uint32_t correlation_id);

/* True when this broker has a handler for api_key: what ApiVersions lists.
 * Keys the codec knows but the broker does not serve are answered
 * NG_EUNKNOWN_API at any version. */
bool server_api_served(uint16_t api_key);

struct acl_rule;
/* What a request of api_key needs of its principal (broker/acl_serve.h):
 * every served api has a rule (tests/test_acl_serve.c). */
const struct acl_rule *server_api_rule(uint16_t api_key);

/* Request handlers, one per api: body is the reader after the header. */
void handle_api_versions(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                         struct rd *body);
void handle_metadata(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                     struct rd *body);
void handle_create_topics(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                          struct rd *body);
void handle_delete_topics(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                          struct rd *body);
void handle_produce(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                    struct rd *body);

/* The topic a produce names (broker/produce.c), created with the broker's
 * defaults when auto_create_topics allows (a single broker: in a cluster
 * topics are made through etcd) and req's principal may create it
 * (acl_serve_may_create). Returns it, or NULL with *err: -NG_EBADNAME (a
 * name of the broker's own, "__", or an invalid one), -NG_EUNKNOWN_TOPIC,
 * -NG_EUNAUTHORIZED, or server_topic_create()'s error. */
struct server_topic *produce_topic_get(struct server *s, struct loop_req *req,
                                       struct proto_str name, int *err);
void handle_fetch(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                  struct rd *body);
void handle_list_offsets(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                         struct rd *body);
void handle_init_producer_id(struct server *s, struct loop_req *req,
                             const struct proto_req_header *h, struct rd *body);
void handle_replica_fetch(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                          struct rd *body);
void handle_offset_for_leader_epoch(struct server *s, struct loop_req *req,
                                    const struct proto_req_header *h, struct rd *body);
void handle_reassign_partitions(struct server *s, struct loop_req *req,
                                const struct proto_req_header *h, struct rd *body);

/* ---- consumer groups (broker/group_serve.c) ---- */

/* Opens the committed offsets store in DATA_DIR/groups/offsets (creating
 * it), replaying it. Precondition: the worker's ring and scratch exist,
 * scratch_bytes >= OFFSETS_SCRATCH_BYTES. Returns 0 or the store's error
 * (logged). */
MUST_USE int groups_open(struct server *s);

/* Waits for offset writes in flight (their requests are answered), closes
 * the store and frees every group. Harmless when groups_open() did not run
 * or failed. Returns 0 or the store's -errno. */
MUST_USE int groups_close(struct server *s);

/* Whether nagare's groups hold one named id with members (the Kafka
 * listener's JoinGroup then refuses it: one group, one protocol). */
bool groups_active(const struct server *s, const char *id);

/* Deletes group: forgets its committed offsets (durably, in chunks), for
 * DeleteGroup and Kafka's DeleteGroups. done(arg, rc) runs once all are
 * gone (0) or a write failed. Returns 0 when started, or with nothing
 * started -NG_EGROUP_NOT_EMPTY (members, of either protocol),
 * -NG_ENOTFOUND (no offsets), -ENOMEM, offsets_commit()'s errors. */
typedef void (*groups_delete_fn)(void *arg, int rc);
MUST_USE int groups_delete(struct server *s, const char *group, groups_delete_fn done, void *arg);

/* Removes members whose session ran out (logged) and frees groups left
 * empty; at most every SERVER_GROUPS_EXPIRE_MS. From housekeeping. */
void groups_expire(struct server *s);

/* A clustered broker after each view (and from housekeeping): while it
 * leads __offsets/0 the offsets store serves from that partition (attached
 * once no append is in flight there, replaying it whole); when it stops
 * leading, or leads at a new epoch, the store is detached and every group
 * with members dropped. No-op on a single broker. */
void groups_coordinate(struct server *s);

/* True when this broker must answer a request of api_key
 * NG_ENOT_COORDINATOR: a clustered broker asked a group api (JoinGroup ..
 * ResetOffsets, DlqRedrive) while its offsets store does not serve, or a
 * share api (ShareFetch, ShareAck) while it does not coordinate share
 * groups (share_serve_refuse()). It then asks the cluster for the internal
 * topic if its catalog has none. The one place that says which
 * coordinator serves which api. */
bool groups_refuse(struct server *s, uint16_t api_key);

/* Asks the cluster for the topic name when its catalog has none, at most
 * once per GROUPS_OFFSETS_CREATE_MS (*asked_ms: when last asked, loop
 * clock; brokers asking at once: one wins, the others get
 * NG_ETOPIC_EXISTS): one partition of cfg (its min_insync_replicas
 * ignored), replicated on as many live brokers as the default replication
 * factor asks and there are, min in-sync replicas the config's (capped at
 * that factor). No-op without a cluster session. */
void groups_topic_ensure(struct server *s, const char *name, const struct cluster_topic_config *cfg,
                         int64_t *asked_ms);

/* groups_topic_ensure() of an internal topic (PROTO_OFFSETS_TOPIC,
 * PROTO_SHARE_STATE_TOPIC): never retained away, segments of
 * internal_segment_bytes, batches of up to batch_bytes_max. */
void groups_internal_topic_ensure(struct server *s, const char *name, int32_t batch_bytes_max,
                                  int64_t *asked_ms);

/* 0 when an acks=all append to bp may go now (this broker leads it, with
 * enough in-sync replicas: an internal partition, a dead-letter copy, a
 * redrive), else -NG_ENOT_LEADER or -NG_ENOT_ENOUGH_REPLICAS. */
MUST_USE int groups_leader_writable(const struct bpart *bp);

void handle_join_group(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                       struct rd *body);
void handle_heartbeat(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                      struct rd *body);
void handle_leave_group(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                        struct rd *body);
void handle_offset_commit(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                          struct rd *body);
void handle_offset_fetch(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                         struct rd *body);
void handle_list_groups(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                        struct rd *body);
void handle_describe_group(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                           struct rd *body);
void handle_delete_group(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                         struct rd *body);
void handle_reset_offsets(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                          struct rd *body);

/* ---- share groups (broker/share_serve.c, broker/dlq.c; broker/share_serve.h) ---- */

/* Makes the share registry and opens its state log in
 * DATA_DIR/groups/share-state, replaying it; forgets the state of topics
 * that no longer exist. Preconditions: groups_open() made DATA_DIR/groups,
 * the topics are open. Returns 0 or the log's error (logged). */
MUST_USE int share_serve_open(struct server *s);

/* Flushes what changed since the last tick, drains and closes the state
 * log, frees the registry. After the topics are closed (dead-letter copies
 * in flight complete then) and groups_close() (redrive marks). Harmless
 * when share_serve_open() did not run or failed. Returns 0 or the log's -errno. */
MUST_USE int share_serve_close(struct server *s);

/* From housekeeping: expires locks (persisting the lock ends), drives
 * dead-letter copies; nothing while stopping. In a cluster it also does
 * share_serve_coordinate() (an attach put off by appends in flight). */
void share_serve_tick(struct server *s);

/* A clustered broker after each view (and from housekeeping): while it
 * leads __share_state/0 the share registry serves from that partition's
 * log (attached once no append or dead-letter copy is in flight, replaying
 * it whole), one term per leadership; when it stops leading, or leads at
 * a new epoch, or the registry failed, the term ends (requests in flight
 * are answered NG_ENOT_COORDINATOR). No-op on a single broker. */
void share_serve_coordinate(struct server *s);

/* For groups_refuse(): true when this clustered broker does not coordinate
 * share groups now (it then asks for __share_state if the cluster has
 * none); false on a single broker. */
bool share_serve_refuse(struct server *s);

/* For ListGroups: whether this broker can say which share groups exist:
 * it coordinates them (a single broker always does), or the cluster has no
 * __share_state and so no share groups. */
bool share_serve_lists(const struct server *s);

/* For ListGroups: an upper bound of the share groups held (0 before
 * share_serve_open()), and the next one from *cursor (start at 0): its id in
 * *id, valid until the registry next changes. Returns false past the
 * last. Each group is named once. */
uint32_t share_serve_groups_bound(const struct server *s);
bool share_serve_groups_next(struct server *s, uint32_t *cursor, struct proto_str *id);

/* A topic was deleted: its share state is forgotten, durably (a topic
 * created again under its name starts afresh). After its partitions'
 * waiters were abandoned (park_abandon). */
void share_serve_topic_deleted(struct server *s, const char *name, size_t len);

void handle_share_fetch(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                        struct rd *body);
void handle_share_ack(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                      struct rd *body);
void handle_dlq_redrive(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                        struct rd *body);

#endif
