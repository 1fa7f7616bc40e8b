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
 * the first offset with a timestamp >= it (the log end when none is);
 * checked on by watch while it waits (NULL: not; conn_call_watched()). */
MUST_USE int calls_list_offset(struct client_conn *c, const char *topic, int32_t partition,
                               int64_t timestamp_ms, int64_t deadline_ms,
                               const struct conn_watch *watch, int64_t *offset_out);

/* Metadata for one topic: *led_out says whether the broker lists it with a
 * leader for every partition (false when it does not know the topic). */
MUST_USE int calls_topic_led(struct client_conn *c, const char *topic, int64_t deadline_ms,
                             bool *led_out);

#endif
