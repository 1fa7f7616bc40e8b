/*
 * client/consumer_int.h — what consumer.c (fetching, positions) and group.c
 * (the consumer-group member: join, heartbeats, commits, rebalances) tell
 * each other. Neither is public.
 *
 * Invariants. consumer.c owns the partitions read and their positions;
 * group.c owns the group membership and decides which partitions are read
 * while subscribed, through consumer_part_add() / consumer_part_remove().
 * A removed partition's buffered records are dropped at once, and answers
 * still in flight for it are ignored (its memory lives until they come).
 * group.c's requests share the consumer's connection; their callbacks only
 * record answers, which cgroup_tick() acts on from nagare_consumer_poll(),
 * outside any connection callback, so it may make synchronous calls.
 * Threads: the consumer's.
 */
#ifndef NAGARE_CLIENT_CONSUMER_INT_H
#define NAGARE_CLIENT_CONSUMER_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "client/conn.h"
#include "client/nagare.h"

struct cgroup;

/* ---- consumer.c, for group.c ---- */

/* The connection of the group's requests: the coordinator's once found
 * (consumer_coordinator_find()), else the bootstrap broker's. */
struct client_conn *consumer_conn(nagare_consumer *c);
/* conn_call() of a group request on consumer_conn(), until
 * consumer_deadline(), watched for stalls (client/brokers.h,
 * brokers_watch_init()): the connection is given up (-NG_EDISCONNECTED)
 * once another broker names another leader of __offsets/0 while the
 * request waits. Synchronous. */
MUST_USE int consumer_group_call(nagare_consumer *c, uint16_t api_key, size_t need,
                                 conn_encode_fn encode, conn_decode_fn decode, void *arg);
/* Finds the coordinator when not known: the leader of __offsets/0 from a
 * Metadata call on the bootstrap connection; a broker that knows no such
 * topic (a single broker) is its own coordinator. Synchronous. Returns 0,
 * -NG_ENOT_COORDINATOR (the topic has no leader now: try later), or the
 * call's error. */
MUST_USE int consumer_coordinator_find(nagare_consumer *c);
/* The coordinator answered NG_ENOT_COORDINATOR or its connection failed:
 * it is found again before the next group request. */
void consumer_coordinator_lost(nagare_consumer *c);
/* ListOffsets of one partition at its leader (looked up when not known).
 * Synchronous. Returns 0 with *out, or the call's or partition's error. */
MUST_USE int consumer_list_offset(nagare_consumer *c, const char *topic, int32_t partition,
                                  int64_t timestamp_ms, int64_t *out);
const struct nagare_consumer_config *consumer_cfg(const nagare_consumer *c);
/* Deadline of a synchronous request: request timeout plus one long poll,
 * since its answer may queue behind a fetch. */
int64_t consumer_deadline(const nagare_consumer *c);
/* The group slot: NULL when not subscribed. */
struct cgroup **consumer_group_slot(nagare_consumer *c);

/* Starts reading (topic, partition) at offset (>= 0, not resolved further),
 * or paused with err reported once by poll (err < 0: offset ignored, until
 * a seek). Returns 0, -NG_EBADARG (already read), -ENOMEM. */
MUST_USE int consumer_part_add(nagare_consumer *c, const char *topic, int32_t partition,
                               int64_t offset, int err);
/* Stops reading it; buffered records are dropped. No-op when not read. */
void consumer_part_remove(nagare_consumer *c, const char *topic, int32_t partition);
/* Stops reading every partition. */
void consumer_parts_clear(nagare_consumer *c);

/* ---- group.c, for consumer.c ---- */

/* From each turn of nagare_consumer_poll(), before records are returned:
 * acts on answers that came (heartbeat: rebalance; commits: reports),
 * joins again when needed, sends the heartbeat and the auto-commit when
 * due, and runs the callbacks. Returns 0 or an error for poll to return
 * (a join the broker refuses). */
MUST_USE int cgroup_tick(nagare_consumer *c, struct cgroup *g);
/* When cgroup_tick() next has work (monotonic ms). */
int64_t cgroup_next_due_ms(const struct cgroup *g);
/* True while a callback of the group runs: public calls that must not
 * nest refuse with -NG_EBADARG. */
bool cgroup_in_callback(const struct cgroup *g);
/* From destroy: commits (auto-commit), delivers async commit reports,
 * leaves. The connection is still up. */
void cgroup_close(nagare_consumer *c, struct cgroup *g);
/* Frees g; its requests must have completed (conn_fini() ran). */
void cgroup_free(struct cgroup *g);

#endif
