/*
 * bench/kafka_conn.h — one blocking connection to a Kafka listener, for
 * nagare-bench's direct Kafka clients (kafka_direct.h): requests encoded
 * and answers decoded with nagare's Kafka codec (net/kafka/codec.h).
 *
 * Requests may be pipelined: each gets the next correlation id, and the
 * broker answers a connection's requests in order, so the oldest one in
 * flight is the next answered. Buffers are sized once at open: a request
 * or an answer larger than them is an error, never a reallocation. An
 * answer's decoded form lives in the connection's arena until the next
 * answer is read. One thread.
 */
#ifndef NAGARE_BENCH_KAFKA_CONN_H
#define NAGARE_BENCH_KAFKA_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "base/assert.h"
#include "net/kafka/codec.h"

struct kconn {
    int fd;
    int32_t corr; /* the last request's correlation id */
    uint8_t *tx;
    size_t tx_cap;
    uint8_t *rx;
    size_t rx_cap;
    uint8_t *arena;
    size_t arena_cap;
};

/* Connects to bootstrap ("host:port") with buffers for requests of up to
 * tx_cap bytes and answers of up to rx_cap. Returns 0 or -errno (printed);
 * kconn_close() is then still to be called. */
MUST_USE int kconn_open(struct kconn *c, const char *bootstrap, size_t tx_cap, size_t rx_cap);
void kconn_close(struct kconn *c);

/* Sends msg (a request of api at version); its correlation id is c->corr
 * afterwards. Returns 0 or an error (printed). */
MUST_USE int kconn_request(struct kconn *c, int16_t api, int16_t version,
                           const struct kafka_msg *msg, const void *body);

/* Waits up to timeout_ms for an answer to start arriving: 1, 0, -errno. */
MUST_USE int kconn_readable(const struct kconn *c, int timeout_ms);

/* Reads the next answer, which must be the one to request corr, as msg at
 * version into *out. Returns 0 or an error (printed). */
MUST_USE int kconn_answer(struct kconn *c, int32_t corr, int16_t api, int16_t version,
                          const struct kafka_msg *msg, void *out);

#endif
