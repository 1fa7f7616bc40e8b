/*
 * broker/peer.h — a link to a peer broker: one blocking TCP connection on
 * a thread of its own that only moves frames, for the loop-side code of
 * one use (a follower's fetcher, broker/fetcher.h; the redrive forwarder,
 * broker/forward.h). The loop hands it a request it built (peer_send);
 * the thread makes the connection when there is none, sends the request,
 * reads the answer's whole frame and posts it back to the loop
 * (loop_post), where on_answer runs. So at most one request is in flight
 * per link, and waking the thread (~80 us) is paid per round trip: a user
 * batches its work into each request.
 *
 * The connection: every connect, read and write bounded by io_timeout_ms
 * (a peer that stops answering, paused or cut off, is given up and dialled
 * again by the next request); closed after any failure. On a broker whose
 * own nagare listener is TLS (listen_tls, s->replica_tls), TLS too: the
 * peer's certificate checked against tls_ca_file and its advertised host,
 * this broker's shown when asked. A broker with inter-broker credentials
 * (inter_broker_user) logs in on each new connection (SCRAM), so the peer
 * sees the brokers' principal (docs/security.md, "Brokers in a cluster").
 *
 * Invariants: p->inflight while a request is with the thread; on_answer
 * runs once per peer_send, on the loop, unless peer_stop() came first
 * (then never again); on_exit runs once, on the loop, after the thread has
 * ended and posted its last message.
 * Threads: every function here is the worker's (the loop's).
 */
#ifndef NAGARE_BROKER_PEER_H
#define NAGARE_BROKER_PEER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/assert.h"
#include "cluster/state.h"
#include "net/loop.h"
#include "net/proto.h"

struct server;
struct peer;
struct ssl_ctx_st;
struct ssl_st;

/* The answer to the request of the last peer_send(): rc 0 with frame (the
 * whole answer frame, prefix included; the callee owns it, free() it) and
 * body (the answer's body, past its header, into frame); else the error
 * (the connection's -errno, -NG_EDISCONNECTED, -NG_ETLS, -NG_EAUTH, a
 * correlation id that is not the request's: -NG_EPROTO, or the answer's
 * request-level error), frame NULL. */
typedef void peer_answer_fn(struct peer *p, uint8_t *frame, struct rd *body, int rc);
/* The thread has ended: the link may be freed (peer_fini()). */
typedef void peer_exit_fn(struct peer *p);

struct peer {
    /* set by peer_start(), then read-only */
    struct server *s;
    int32_t broker_id;
    char host[CLUSTER_HOST_BYTES];
    uint16_t port;
    const char *what; /* for logs ("replication", "redrive"); static */
    uint32_t io_timeout_ms;
    peer_answer_fn *on_answer;
    peer_exit_fn *on_exit;
    /* the loop's */
    bool inflight;
    bool stopping;
    bool thread_done; /* on_exit ran */
    bool joined;
    uint32_t corr; /* the request in flight's correlation id */
    /* the thread and what it shares with the loop */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;              /* under mu */
    int fd;                 /* under mu: -1 when not connected */
    struct ssl_ctx_st *tls; /* the server's replica_tls (a reference), or NULL: plaintext */
    struct ssl_st *ssl;     /* the thread's: TLS on fd while connected */
    uint8_t *req;           /* under mu: the next request, handed over */
    size_t req_len;         /* under mu */
    uint8_t *resp;          /* set by the thread before it posts resp_msg */
    size_t resp_len;
    int resp_rc;
    struct loop_msg resp_msg;
    struct loop_msg exit_msg;
};

/* Starts the link to broker b (its address copied) and its thread; makes
 * no connection yet. client_id names this broker's requests (static).
 * Returns 0, or -ENOMEM / the thread's -errno (nothing left to free). */
MUST_USE int peer_start(struct peer *p, struct server *s, const struct cluster_broker *b,
                        const char *what, uint32_t io_timeout_ms, peer_answer_fn *on_answer,
                        peer_exit_fn *on_exit);

/* Whether p links to broker b where the view has it now. */
bool peer_is(const struct peer *p, const struct cluster_broker *b);

/* Hands req[0..len) (malloc'd, with correlation id corr; the link frees
 * it) to the thread. Pre: !p->inflight, !p->stopping. */
void peer_send(struct peer *p, uint8_t *req, size_t len, uint32_t corr);

/* Tells the thread to end, waking it from its socket: no on_answer runs
 * after this; on_exit will. Idempotent. */
void peer_stop(struct peer *p);

/* Waits for the thread (after peer_stop(); the loop is stopping: its
 * messages will not run). */
void peer_join(struct peer *p);

/* Frees what the link holds, once on_exit ran (or peer_join()); p itself
 * is the caller's. */
void peer_fini(struct peer *p);

#endif
