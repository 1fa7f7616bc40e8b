/*
 * broker/sasl_serve.h — logging in (SASL SCRAM, auth/scram.h) on both
 * listeners, the gate in front of every other request, and the requests
 * that manage users (broker/users.h).
 *
 * A connection logs in with a handshake naming a mechanism, then the SCRAM
 * exchange: two SaslAuthenticate round trips (nagare's keys 26-27; Kafka's
 * SaslHandshake v1 and SaslAuthenticate, or after SaslHandshake v0 the
 * exchange's bytes in bare frames, as kafka-python 2.0 sends them). On
 * success its principal (broker/conn_auth.h) is "User:<name>". Any failure
 * (unknown user, wrong password, malformed message) gets one answer, the
 * same for all, and closes the connection; an unknown user runs the same
 * exchange against a stand-in credential so that no step tells it apart.
 *
 * With `authentication = required`, a connection that has not logged in may
 * send only ApiVersions and the SASL requests: anything else is answered
 * NG_EAUTH_REQUIRED (nagare) or not at all (Kafka, whose broker closes) and
 * the connection closes. Failed logins are counted per peer address in a
 * table of SASL_PEERS_MAX; an address past login_failures_max is refused
 * (NG_EAUTH_THROTTLED) without any work for login_block_ms.
 *
 * Loop thread only.
 */
#ifndef NAGARE_BROKER_SASL_SERVE_H
#define NAGARE_BROKER_SASL_SERVE_H

#include <stdbool.h>
#include <stdint.h>

#include "base/assert.h"
#include "net/kafka/codec.h"
#include "net/loop.h"
#include "net/proto.h"

struct server;
struct cluster_view;
struct scram_cred;

/* Peer addresses whose failed logins are counted at once. A full table
 * forgets its least recently failed unblocked address (a blocked one only
 * when all are blocked): 1024 addresses of ~80 bytes, 80 KiB. */
#define SASL_PEERS_MAX 1024u

/* Loads the users (DATA_DIR/users) and makes the stand-in credentials'
 * secret. Returns 0, or users_open()'s error (logged). */
MUST_USE int sasl_serve_open(struct server *s);

void sasl_serve_close(struct server *s);

/* A cluster's view changed (old: the one before, NULL for the first):
 * when its users' credentials did, the users logins are checked against
 * become this broker's own (DATA_DIR/users) with the view's over them.
 * Loop thread. */
void sasl_serve_apply_view(struct server *s, const struct cluster_view *old,
                           const struct cluster_view *view);

/* The user followers log in as to their leaders (inter_broker_user) and
 * its password (read from inter_broker_password_file at open): true with
 * both, false when none is configured. Any thread: both stay as they are
 * until sasl_serve_close(). */
bool sasl_serve_inter_broker(const struct server *s, const char **user, const char **password);

/* The gate: true when req (api_key on nagare's listener, or on the Kafka
 * listener when kafka) may go to its handler; false when it was answered
 * here (refused; its connection closing). */
MUST_USE bool sasl_serve_admit(struct server *s, struct loop_req *req, bool kafka, int api_key,
                               uint32_t correlation_id);

/* On the Kafka listener after a SaslHandshake v0: serves req's frame as the
 * exchange's next message and returns true; false when the connection is
 * not in that state (the frame is a request). */
MUST_USE bool sasl_serve_kafka_raw(struct server *s, struct loop_req *req);

/* ---- plain password logins (the HTTP admin listener's Basic) ---- */

/* Whether logins from addr (a numeric address, as getnameinfo gives it)
 * are refused for now: past login_failures_max failures, for
 * login_block_ms. The same table as SASL's. */
bool sasl_serve_addr_blocked(struct server *s, const char *addr);

/* Counts a failed login from addr as user (for the log), blocking addr
 * past login_failures_max; or forgets addr's failures after a success. */
void sasl_serve_addr_failed(struct server *s, const char *addr, const char *user);
void sasl_serve_addr_succeeded(struct server *s, const char *addr);

/* A copy of user's credential to check a plain password against
 * (scram_cred_check; off the loop: it is slow): SCRAM-SHA-512's when the
 * user has one, else SCRAM-SHA-256's. Returns 0, or -NG_ENOTFOUND with a
 * stand-in credential in *out (an unknown or invalid user costs the same
 * check and fails it, as a wrong password does). */
MUST_USE int sasl_serve_user_cred(struct server *s, const char *user, struct scram_cred *out);

/* nagare's requests (net/proto.h, keys 26-29). */
void handle_sasl_handshake(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                           struct rd *body);
void handle_sasl_authenticate(struct server *s, struct loop_req *req,
                              const struct proto_req_header *h, struct rd *body);
void handle_alter_user(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                       struct rd *body);
void handle_describe_users(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                           struct rd *body);

/* Kafka's SaslHandshake and SaslAuthenticate. */
void kafka_sasl_handshake(struct server *s, struct loop_req *req, const struct kafka_req_header *h,
                          struct rd *body, struct kw_arena *a);
void kafka_sasl_authenticate(struct server *s, struct loop_req *req,
                             const struct kafka_req_header *h, struct rd *body, struct kw_arena *a);

#endif
