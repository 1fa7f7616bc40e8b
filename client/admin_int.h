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

struct client_conn *admin_conn(nagare_admin *a);
/* Monotonic deadline of a call starting now: now + the client's timeout. */
int64_t admin_deadline(const nagare_admin *a);

#endif
