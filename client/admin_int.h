/*
 * client/admin_int.h — what admin.c (the admin client and its topic calls)
 * shares with admin_groups.c (its group and dead-letter calls): the
 * connection and the deadline of one call. Not public. Threads: the admin
 * client's.
 */
#ifndef NAGARE_CLIENT_ADMIN_INT_H
#define NAGARE_CLIENT_ADMIN_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "client/conn.h"
#include "client/nagare.h"

/* conn_call() of a call any broker answers (topic, cluster, ACL and user
 * calls) at the broker given (bootstrap) while it is up, else another one
 * up, until the client's timeout. A read-only
 * one is watched for stalls (client/brokers.h, brokers_watch_init()) and
 * made again at another broker when its broker was given up or lost; one
 * that changes state is sent once. Returns as conn_call(). */
MUST_USE int admin_call(nagare_admin *a, uint16_t api_key, size_t need, conn_encode_fn encode,
                        conn_decode_fn decode, void *arg);

/* The coordinators (docs/cluster.md, section 5): of consumer groups, the
 * leader of __offsets/0; of share groups, the leader of __share_state/0. */
enum admin_coordinator { ADMIN_COORD_GROUPS, ADMIN_COORD_SHARE, ADMIN_COORDS };

/* conn_call() at coordinator which, found from Metadata (the broker
 * given, when it knows no such topic: a single broker), and found again on
 * NG_ENOT_COORDINATOR (retried until the client's timeout, the request
 * having done nothing) or a lost connection (retried only when read-only:
 * a change may have been done). Watched for stalls: given up once another
 * broker names another coordinator (client/brokers.h). Returns as
 * conn_call(). */
MUST_USE int admin_coordinator_call(nagare_admin *a, enum admin_coordinator which, uint16_t api_key,
                                    size_t need, conn_encode_fn encode, conn_decode_fn decode,
                                    void *arg);

/* admin_coordinator_call() at the group coordinator: a consumer-group api,
 * or DlqRedrive, whose marks are committed offsets. */
MUST_USE int admin_group_call(nagare_admin *a, uint16_t api_key, size_t need, conn_encode_fn encode,
                              conn_decode_fn decode, void *arg);

/* Whether the two coordinators may be different brokers: false only when
 * both are found to be reached through the same connection (a single
 * broker, or the broker given leading both). */
bool admin_coordinators_apart(nagare_admin *a);

#endif
