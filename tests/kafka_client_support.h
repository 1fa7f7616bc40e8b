/*
 * tests/kafka_client_support.h — a test's Kafka client: requests encoded
 * and answers decoded with net/kafka/codec.h, one request at a time per
 * connection, over a socket with a receive timeout (a failing broker ends
 * the test with a message, not a hang).
 */
#ifndef NAGARE_TESTS_KAFKA_CLIENT_SUPPORT_H
#define NAGARE_TESTS_KAFKA_CLIENT_SUPPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "net/kafka/codec.h"

struct kc {
    int fd;
    int32_t corr; /* the last request's correlation id */
    uint8_t *tx;
    uint8_t *rx;
    uint8_t *arena; /* answers decode into it: valid until the next receive */
};

/* Connects to 127.0.0.1:port, or to host (an IPv4 address) and port. */
void kc_connect(struct kc *c, uint16_t port);
void kc_connect_host(struct kc *c, const char *host, uint16_t port);
void kc_close(struct kc *c);

/* Sends msg (a request of api at version) with client id "nagare-test". */
void kc_send(struct kc *c, int16_t api, int16_t version, const struct kafka_msg *msg,
             const void *body);

/* Reads the answer to the last request as msg at version into *out.
 * Returns false when the broker closed the connection instead. */
bool kc_recv(struct kc *c, int16_t api, int16_t version, const struct kafka_msg *msg, void *out);

/* kc_send() then kc_recv(), which must answer. */
void kc_call(struct kc *c, int16_t api, int16_t version, const struct kafka_msg *req_msg,
             const void *req, const struct kafka_msg *resp_msg, void *resp);

#endif
