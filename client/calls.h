/*
 * client/calls.h — the synchronous requests the consumer and the admin
 * client make: each sends one request on a struct client_conn and waits for its
 * answer until a deadline (conn_call()), connecting first when down.
 *
 * Every function returns 0 or a negative error: the request's (-NG_ETIMEOUT,
 * -NG_EDISCONNECTED, -errno...), a decoder's (turned into -NG_EPROTO: the
 * broker broke the protocol), or the per-topic / per-partition error the
 * broker answered with. Nothing is allocated except where said. Same thread
 * as the conn.
 */
#ifndef NAGARE_CLIENT_CALLS_H
#define NAGARE_CLIENT_CALLS_H

#include <stdbool.h>
#include <stdint.h>

#include "client/conn.h"

/* ListOffsets for one partition: timestamp_ms -2 (earliest), -1 (latest) or
 * the first offset with a timestamp >= it (the log end when none is). */
MUST_USE int calls_list_offset(struct client_conn *c, const char *topic, int32_t partition,
                               int64_t timestamp_ms, int64_t deadline_ms, int64_t *offset_out);

/* Metadata for one topic: its partition count. -NG_EUNKNOWN_TOPIC when the
 * broker does not have it. */
MUST_USE int calls_partition_count(struct client_conn *c, const char *topic, int64_t deadline_ms,
                                   int32_t *count_out);

/* Metadata for one topic: *led_out says whether the broker lists it with a
 * leader for every partition (false when it does not know the topic). */
MUST_USE int calls_topic_led(struct client_conn *c, const char *topic, int64_t deadline_ms,
                             bool *led_out);

/* The coordinator of the groups kept in the internal topic `topic`
 * (PROTO_OFFSETS_TOPIC: consumer groups; PROTO_SHARE_STATE_TOPIC: share
 * groups), docs/cluster.md section 5: the leader of its partition 0, from
 * a Metadata v2 answer of the broker c reaches. *out becomes c when that
 * broker is the leader or knows no such topic (a single broker is its own
 * coordinator), else coord, (re)opened (conn_init(), c's config) to the
 * leader's address and connected by deadline_ms; *coord_ready says
 * whether coord holds an initialised connection (conn_fini() it when
 * done). Returns 0, -NG_ENOT_COORDINATOR (no live leader now: try later)
 * or the call's error, with *out NULL. */
MUST_USE int calls_coordinator_connect(struct client_conn *c, const char *topic,
                                       struct client_conn *coord, bool *coord_ready,
                                       int64_t deadline_ms, struct client_conn **out);

/* The leader of partition of topic, as calls_coordinator_connect() finds
 * a coordinator: *out is c when the broker c reaches leads it (or speaks
 * Metadata before v2: a single broker), else leader, (re)opened to the
 * leader's address. Returns 0, -NG_EUNKNOWN_TOPIC (no such topic or
 * partition), -NG_ENOT_LEADER (no live leader now: try later) or the
 * call's error, with *out NULL. */
MUST_USE int calls_leader_connect(struct client_conn *c, const char *topic, int32_t partition,
                                  struct client_conn *leader, bool *leader_ready,
                                  int64_t deadline_ms, struct client_conn **out);

#endif
