/*
 * client/brokers.h — a client's connections to the brokers of a cluster
 * (docs/cluster.md, section 6): the bootstrap connection, and one per
 * broker a Metadata v2 answer names, opened when first needed.
 *
 * Invariants. The bootstrap connection (boot) always exists and carries
 * the requests that need no particular broker (metadata, InitProducerId);
 * it tries the bootstrap list in turn. A Metadata v2 answer says which
 * broker answered it (broker_id): the connection it came on takes that id,
 * so a broker is never dialled twice, and a single broker whose listen
 * address is 0.0.0.0 is reached where it was found. Every other broker the
 * answer lists gets a connection of its own, not connected until the
 * owner asks (brokers_connect()). A struct cbroker lives until
 * brokers_fini(), so owners keep pointers to it (a partition's leader, a
 * group's coordinator); a broker that leaves the cluster keeps its (idle)
 * entry. At most BROKERS_CONNS_MAX entries. A connection is given up
 * (closed) only as lost, or as stalled once another broker named another
 * leader or coordinator (or, for a call any broker answers, answered
 * instead): "stalls" below.
 *
 * Threads: the owner's (a producer's, a consumer's, a share consumer's,
 * an admin client's), as its conns.
 */
#ifndef NAGARE_CLIENT_BROKERS_H
#define NAGARE_CLIENT_BROKERS_H

#include <stdbool.h>
#include <stdint.h>

#include "client/conn.h"

/* Connections one client keeps: a cluster this large is beyond what one
 * client's poll() is meant for; brokers past it are not connected (their
 * partitions wait as if leaderless). */
#define BROKERS_CONNS_MAX CONN_POLL_MANY_MAX
/* The id of a connection before a Metadata v2 answer named its broker. */
#define BROKER_ID_UNKNOWN (-1)

struct cbroker {
    int32_t id; /* BROKER_ID_UNKNOWN until an answer names it */
    struct client_conn conn;
    uint32_t requests;    /* the owner's requests in flight on it */
    uint32_t leads;       /* the owner's partitions it leads */
    uint32_t coordinates; /* the owner's groups it coordinates (cbroker_coordinate()) */
    int64_t redial_at_ms; /* the next connect may start then (monotonic) */
    uint32_t redial_backoff_ms;
    int64_t stall_next_ms; /* the owner's stall check may ask about it then (monotonic) */
    bool stall_drop;       /* stalled and replaced as a leader: its connection is given
                              up at the owner's next pass (brokers_stall_drops()) */
};

struct brokers {
    struct conn_config cfg; /* of every connection; bootstrap NULL; a reference to tls */
    char tls_server_name[CONN_HOST_BYTES_MAX]; /* cfg.tls_server_name's */
    struct cbroker *boot;
    struct cbroker *all[BROKERS_CONNS_MAX]; /* boot first */
    uint32_t count;
};

/* Readies bs and its bootstrap connection (conn_init(); nothing is opened).
 * Returns 0, -NG_EBADARG, -ENOMEM. */
MUST_USE int brokers_init(struct brokers *bs, const struct conn_config *cfg);

/* Closes and frees every connection (pending requests fail). */
void brokers_fini(struct brokers *bs);

/* Takes in the brokers of a Metadata v2 answer m that came on `on`: on's
 * id becomes m->broker_id (BROKER_ID_UNKNOWN when another entry has that
 * id: on reconnected to a broker known otherwise, and carries only
 * requests for no broker in particular from then on); every other broker
 * listed gets an entry (its address as advertised). A broker that cannot
 * get one (out of memory, BROKERS_CONNS_MAX reached) is skipped: its
 * partitions wait as if leaderless. Consumes m's broker cursor. */
void brokers_update(struct brokers *bs, struct cbroker *on, struct proto_metadata_resp *m);

/* The entry of broker id, or NULL. */
struct cbroker *brokers_find(struct brokers *bs, int32_t id);

/* Where to ask for metadata: the bootstrap connection while it is up, else
 * the first other connection that is up to a broker an answer named (every
 * bootstrap address may be down while the cluster lives on; Kafka's
 * clients too ask any broker they know). NULL when none is up. */
struct cbroker *brokers_meta(struct brokers *bs);

/* Where to ask for metadata past b, a broker that keeps its owner
 * waiting (a leader paused or cut off: client/producer.c): a connection
 * that is up to another broker an answer named, one with no request
 * waiting first (a broker answers a connection's requests in order, so
 * an ask behind a produce that waits for its replicas waits as long),
 * searched from entry `from` (mod count) on so that successive asks
 * spread. The bootstrap
 * connection counts only once an answer named its broker: until then it
 * may be b's broker itself. NULL when none is up. */
struct cbroker *brokers_meta_other(struct brokers *bs, const struct cbroker *b, uint32_t from);

/* A broker other than b that an answer named, whose connection is down:
 * the one to dial when brokers_meta_other() found none up. NULL when
 * there is none. */
struct cbroker *brokers_other_down(struct brokers *bs, const struct cbroker *b);

/* ---- stalls: a leader paused or cut off (docs/cluster.md, section 6) ----
 * A paused broker's kernel keeps its connections open and one cut off
 * drops packets silently, so its owner's requests wait for their timeout
 * while the cluster elects a successor. An owner asks another broker who
 * leads (or coordinates) when b has kept one of its requests unanswered
 * for longer than it may take when all is well (wait_ms: a fetch's long
 * poll) plus stall_ms, and again every stall_ms while the wait lasts; only
 * an answer naming another leader (coordinator) gives b's connection up.
 * The requests watched: every one pending on b's connection while b
 * carries requests the owner counts (b->requests: produce, fetch) or
 * coordinates one of the owner's groups (b->coordinates: every request on
 * a coordinator's connection is a group's, or waits behind one), or leads
 * the owner's partitions while its connection is not up. The wait counts
 * from the oldest request b has not answered, nor answered anything
 * after, across a reconnect a request timeout forced
 * (conn_silent_since_ms()). */

/* Whether b has kept a request of its owner unanswered for wait_ms plus
 * stall_ms by now_ms. */
bool brokers_stalled(const struct cbroker *b, uint32_t stall_ms, uint32_t wait_ms, int64_t now_ms);

/* Gives up the connection of every broker marked stall_drop (an answer
 * named another leader for a partition waiting there): its requests fail
 * with -NG_EDISCONNECTED, as when a connection is lost, and go to the new
 * leaders. Call outside brokers_poll() (the owner's loop). */
void brokers_stall_drops(struct brokers *bs);

/* When b is due to be asked about (monotonic ms; past: now), or INT64_MAX
 * while it keeps none of its owner's requests waiting. stall_ms > 0. */
int64_t brokers_stall_due(const struct cbroker *b, uint32_t stall_ms, uint32_t wait_ms);

/* The broker to ask about b (brokers_meta_other(), from entry `from`),
 * and the asks about b rated: the next is due stall_ms after one sent
 * (the caller says so with brokers_stall_asked()), backoff_ms after this
 * call when none is up (then one that is down is dialled). */
struct cbroker *brokers_stall_peer(struct brokers *bs, struct cbroker *b, uint32_t from,
                                   int64_t now_ms, uint32_t backoff_ms);
/* An ask about b went out now: the next waits stall_ms. */
void brokers_stall_asked(struct cbroker *b, int64_t now_ms, uint32_t stall_ms);

/* Whether b is worth connecting only to ask for metadata: the bootstrap
 * connection is down, and b is a broker an answer named. */
bool brokers_meta_fallback(const struct brokers *bs, const struct cbroker *b);

/* Asks a broker (brokers_meta(), else the bootstrap one, connected first)
 * for topic's partition count and partition's leader, synchronously
 * until deadline_ms (monotonic), taking in the brokers the answer names
 * (brokers_update()). The leader of a group's internal partition is its
 * coordinator (docs/cluster.md, section 5). A broker that keeps the call
 * stall_ms (0: no limit) is given up once another answers, and the call
 * made at another (brokers_watch_init(), topic NULL). Returns 0 with
 * *leader_out (NULL: none now; the bootstrap entry for a broker speaking
 * Metadata before v2: a single broker), -NG_EUNKNOWN_TOPIC (no such topic
 * or partition), or the call's error, with *leader_out NULL. */
MUST_USE int brokers_leader_lookup(struct brokers *bs, const char *topic, int32_t partition,
                                   uint32_t stall_ms, int64_t deadline_ms,
                                   struct cbroker **leader_out);

/* brokers_leader_lookup() that also says how many partitions topic has
 * (*count_out; 0 on an error). */
MUST_USE int brokers_topic_lookup(struct brokers *bs, const char *topic, int32_t partition,
                                  uint32_t stall_ms, int64_t deadline_ms,
                                  struct cbroker **leader_out, int32_t *count_out);

/* Asks a broker (as brokers_leader_lookup()) for the brokers alone,
 * taking them in. Returns 0 or the call's error. */
MUST_USE int brokers_refresh(struct brokers *bs, int64_t deadline_ms);

/* Watching a synchronous call at broker b (conn_call_watched()): once b
 * has kept it stall_ms, and again every stall_ms while it waits, another
 * broker an answer named is asked (an idle connection first; when none is
 * up, one that is down is connected, waiting at most stall_ms), and b is
 * given up when that broker answers Metadata
 * - naming a leader of topic's partition other than b: a call to the
 *   leader of that partition (a group's coordinator: the leader of its
 *   internal partition 0). A slow leader that answers still name is
 *   waited for.
 * - at all, when topic is NULL: a call any broker answers alike (a
 *   Metadata, a listing), then made again by the caller at another.
 * The asks run inside the call's wait, on other connections, synchronously
 * (each bounded by deadline_ms). */
struct brokers_watch {
    struct conn_watch cw;
    struct brokers *bs;
    struct cbroker *b;
    const char *topic; /* NULL: any broker answers the call */
    int32_t partition;
    int64_t deadline_ms; /* the call's */
    uint32_t asks;       /* sent: spreads them over the brokers */
};

/* Readies w; returns the watch to pass to conn_call_watched(), NULL when
 * stall_ms is 0 (not watched). w, bs and b outlive the call. */
const struct conn_watch *brokers_watch_init(struct brokers_watch *w, struct brokers *bs,
                                            struct cbroker *b, const char *topic, int32_t partition,
                                            uint32_t stall_ms, int64_t deadline_ms);

/* Makes b (NULL: not known) the leader in *slot (an owner's partition),
 * keeping each broker's count of the partitions it leads (leads). */
void cbroker_lead(struct cbroker **slot, struct cbroker *b);

/* Makes b (NULL: not known) the coordinator in *slot (a group of the
 * owner's), keeping each broker's count of the groups it coordinates
 * (coordinates). */
void cbroker_coordinate(struct cbroker **slot, struct cbroker *b);

/* Starts connecting b when it is down and its backoff has passed (the
 * backoff doubles from backoff_first_ms per failed try up to
 * CONN_BACKOFF_MS_MAX, reset once up). Returns the time of the next try
 * worth making, INT64_MAX when none is needed. */
int64_t brokers_connect(struct cbroker *b, int64_t now_ms, uint32_t backoff_first_ms);

/* conn_poll_many() over every connection. */
MUST_USE int brokers_poll(struct brokers *bs, int timeout_ms);

/* The earliest conn_next_deadline() of them all. */
int64_t brokers_next_deadline(const struct brokers *bs);

/* conn_close() of every connection. */
void brokers_close_all(struct brokers *bs, int err);

#endif
