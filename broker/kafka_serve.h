/*
 * broker/kafka_serve.h — the Kafka listener's requests (issue 14): Kafka's
 * clients talk to the same broker services as nagare's own, through Kafka's
 * protocol (net/kafka/codec.h) on a listener of its own (kafka_listen).
 *
 * Each frame's header is decoded; a version the API does not have gets the
 * ApiVersions v0 answer with the ranges (KIP-511) for ApiVersions, and
 * otherwise, as for an unknown API or a malformed header, the connection
 * closes, as Kafka's broker does. The body is decoded into the worker's
 * arena (kafka_serve_open()), which handlers use only until they return:
 * what an answer needs later they copy into their own state. Errors are
 * Kafka's codes (net/kafka/errors.h).
 * Threads: the worker's loop thread.
 */
#ifndef NAGARE_BROKER_KAFKA_SERVE_H
#define NAGARE_BROKER_KAFKA_SERVE_H

#include <stdbool.h>
#include <stdint.h>

#include "base/assert.h"
#include "net/kafka/codec.h"
#include "net/loop.h"
#include "net/proto.h"

struct server;

/* Index of the Kafka listener in the loop (net/loop.h numbers listeners
 * in the order they opened: nagare's own is 0). */
#define KAFKA_LISTENER 1u

/* Takes the worker's decode arena (KW_ARENA_BYTES_MAX, held for the
 * broker's life: a pool, not a malloc per request). Returns 0 or -ENOMEM. */
MUST_USE int kafka_serve_open(struct server *s);

void kafka_serve_close(struct server *s);

/* Serves one request frame from the Kafka listener; completes req (now or
 * later) as net/loop.h asks. */
void kafka_serve_request(struct server *s, struct loop_req *req);

/* Whether this broker serves api_key on the Kafka listener (what
 * ApiVersions advertises). */
bool kafka_serve_served(int16_t api_key);

struct acl_rule;
/* What a served api_key needs of its principal (broker/acl_serve.h), or
 * NULL when it is not served. */
const struct acl_rule *kafka_serve_rule(int16_t api_key);

/* The address Kafka clients are told to connect to for this broker
 * (Metadata, FindCoordinator): the advertised host when one is set, else
 * the Kafka listener's host, and the Kafka listener's bound port. *host
 * is valid while s is. */
void kafka_serve_address(const struct server *s, const char **host, int32_t *port);

/* Where Kafka's clients reach broker id: this broker's own address, or,
 * in a cluster, the Kafka address the broker registered (cluster/state.h).
 * Returns 0, or -NG_ENOTFOUND when the broker is not live or has no Kafka
 * listener. */
MUST_USE int kafka_serve_broker(const struct server *s, int32_t id, const char **host,
                                int32_t *port);

/* The same bytes as a string of each protocol (a topic name decoded from
 * one, answered or looked up in the other's terms). */
static inline struct proto_str kafka_serve_proto_str(struct kw_str s)
{
    return (struct proto_str){.ptr = s.ptr, .len = s.len};
}

static inline struct kw_str kafka_serve_kw_str(struct proto_str s)
{
    return (struct kw_str){.ptr = s.ptr, .len = s.len};
}

/* Encodes the answer body (msg at version, behind the response header for
 * h) into req's answer buffer and sends it. A body that cannot be encoded
 * (a bug) or memory that cannot be had closes the connection, logged. */
void kafka_serve_respond(struct loop_req *req, const struct kafka_req_header *h,
                         const struct kafka_msg *msg, const void *body);

/* ---- handlers of the group APIs (broker/kafka_groups.c) ---- */

/* Kafka's classic groups a worker holds (broker/kgroup.h), by id; a group
 * is dropped once it is EMPTY (its committed offsets stay in the offsets
 * store, as for nagare's groups). */
struct kafka_groups;

MUST_USE int kafka_groups_open(struct server *s);

/* Answers every held JoinGroup and SyncGroup (COORDINATOR_NOT_AVAILABLE)
 * and frees the groups. Before the loop goes. */
void kafka_groups_close(struct server *s);

/* Expires sessions and completes rebalances that are due; drops groups
 * that emptied. From the housekeeping timer. */
void kafka_groups_tick(struct server *s);

/* Whether a Kafka group with members has id (nagare's own JoinGroup then
 * refuses with NG_EINCONSISTENT_PROTOCOL: one group, one protocol). */
bool kafka_groups_active(const struct server *s, const char *id);

/* The Kafka group id (with members or rebalancing), or NULL; and the i-th
 * of them (NULL past the last), in no order: for the console
 * (broker/console_api.h). */
struct kgroup;
const struct kgroup *kafka_groups_find(const struct server *s, const char *id);
const struct kgroup *kafka_groups_at(const struct server *s, uint32_t i);

typedef void kafka_handler_fn(struct server *s, struct loop_req *req,
                              const struct kafka_req_header *h, struct rd *body,
                              struct kw_arena *a);

kafka_handler_fn kafka_find_coordinator, kafka_join_group, kafka_sync_group, kafka_heartbeat,
    kafka_leave_group, kafka_offset_commit, kafka_offset_fetch, kafka_list_groups,
    kafka_describe_groups, kafka_delete_groups;

/* ---- handlers of the data APIs, each in the file of the service it maps
 * onto: Produce (broker/produce.c), Fetch (broker/fetch.c), Metadata,
 * ListOffsets, OffsetForLeaderEpoch, InitProducerId, CreateTopics,
 * DeleteTopics, DescribeConfigs (broker/admin.c) ---- */

kafka_handler_fn kafka_produce, kafka_fetch, kafka_metadata, kafka_list_offsets,
    kafka_offset_for_leader_epoch, kafka_init_producer_id, kafka_create_topics, kafka_delete_topics,
    kafka_describe_configs;

#endif
