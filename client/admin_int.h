/*
 * client/admin_int.h — what admin.c (the admin client and its topic calls)
 * shares with admin_groups.c (its group and dead-letter calls): the
 * connection and the deadline of one call. Not public. Threads: the admin
 * client's.
 */
#ifndef NAGARE_CLIENT_ADMIN_INT_H
#define NAGARE_CLIENT_ADMIN_INT_H

#include <stdint.h>

#include "client/conn.h"
#include "client/nagare.h"

/* The connection to the broker given (bootstrap): topic and cluster calls. */
struct client_conn *admin_conn(nagare_admin *a);

/* conn_call() of a consumer-group api (or DlqRedrive, whose marks are
 * committed offsets) at the group coordinator: the
 * leader of __offsets/0, found from Metadata (the broker given, when it
 * knows no such topic: a single broker), and found again on
 * NG_ENOT_COORDINATOR (retried until the client's timeout, the request
 * having done nothing) or a lost connection (not retried: the request may
 * have been done). Returns as conn_call(). */
MUST_USE int admin_group_call(nagare_admin *a, uint16_t api_key, size_t need, conn_encode_fn encode,
                              conn_decode_fn decode, void *arg);
/* Monotonic deadline of a call starting now: now + the client's timeout. */
int64_t admin_deadline(const nagare_admin *a);

#endif
