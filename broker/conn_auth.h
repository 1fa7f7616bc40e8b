/*
 * broker/conn_auth.h — who a connection's requests come from.
 *
 * A principal names who sent a request, in Kafka's shape: "User:<name>".
 * A connection starts as PRINCIPAL_ANONYMOUS; authentication (SASL, a TLS
 * client certificate) gives it its principal, which then holds for the
 * connection's life. The state lives with the loop's connection
 * (loop_req_set_conn_ctx), taken only when a connection first needs one,
 * and is freed by conn_auth_release() from the loop's on_close.
 *
 * Loop thread only.
 */
#ifndef NAGARE_BROKER_CONN_AUTH_H
#define NAGARE_BROKER_CONN_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/assert.h"
#include "net/loop.h"

/* A principal's longest text, "User:" and NUL included. */
#define PRINCIPAL_BYTES_MAX 256u

/* The principal of a connection that has not authenticated. */
#define PRINCIPAL_ANONYMOUS "User:ANONYMOUS"

struct scram_server;

/* Where a connection is in its SASL login (broker/sasl_serve.h). */
enum conn_sasl {
    CONN_SASL_NONE = 0,   /* no handshake yet */
    CONN_SASL_MECH,       /* handshake done: the client's first message next */
    CONN_SASL_CHALLENGED, /* the server's first message sent: the client's last next */
    CONN_SASL_DONE,       /* logged in: principal holds the user */
};

/* One connection's authentication state. */
struct conn_auth {
    char principal[PRINCIPAL_BYTES_MAX]; /* NUL-terminated */
    uint8_t sasl;                        /* enum conn_sasl */
    uint8_t sasl_mech;                   /* enum scram_mech, from CONN_SASL_MECH on */
    bool sasl_raw;                       /* Kafka SaslHandshake v0: the exchange in bare frames */
    struct scram_server *scram;          /* the exchange's state while it runs, else NULL */
    bool tls_client;                     /* principal from a verified TLS client certificate */
};

/* The principal of req's connection: PRINCIPAL_ANONYMOUS until it has
 * authenticated, and for a request whose connection is gone. Valid until
 * req is completed. */
const char *conn_auth_principal(const struct loop_req *req);

/* req's connection's state, made (anonymous) on first use. NULL when
 * memory runs out or the connection is gone. */
MUST_USE struct conn_auth *conn_auth_get(struct loop_req *req);

/* Mutual TLS: on a TLS connection not yet authenticated whose client
 * certificate its listener verified, makes "User:<subject>" (RFC 2253, as
 * Kafka's default principal builder) the principal. For every request
 * before it is handled; cheap once done (the principal is kept). A
 * subject too long for PRINCIPAL_BYTES_MAX leaves the connection
 * anonymous. */
void conn_auth_tls(struct loop_req *req);

/* Frees what conn_auth_get() made, a running exchange's state wiped (ctx
 * as the loop's on_close hands it; NULL is fine). */
void conn_auth_release(void *ctx);

#endif
