/*
 * tests/auth_support.h — logging in over a raw-frame test client
 * (tests/broker_support.h): SaslHandshake and the SCRAM exchange
 * (auth/scram.h), step by step so that tests can look at each answer.
 */
#ifndef NAGARE_TESTS_AUTH_SUPPORT_H
#define NAGARE_TESTS_AUTH_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

#include "auth/scram.h"
#include "tests/broker_support.h"

/* What one SASL answer said: its request-level error, the body's error and
 * the server's bytes (copied). */
struct au_answer {
    int req_err; /* the response header's */
    int err;     /* SaslHandshake's or SaslAuthenticate's own */
    char bytes[SCRAM_MSG_BYTES_MAX + 1];
    size_t len;
};

/* Sends SaslHandshake naming mech and reads the answer into *a. Returns
 * cl_recv()'s error (0 when an answer came). */
int au_handshake(struct cl *c, const char *mech, struct au_answer *a);

/* Sends SaslAuthenticate with msg[0..len) and reads the answer into *a. */
int au_authenticate(struct cl *c, const char *msg, size_t len, struct au_answer *a);

/* A whole login as user with password over mech: 0, or the first error
 * met (a transport error, a request-level one, or an answer's). *first
 * (when not NULL) gets the server-first message. */
int au_login(struct cl *c, const char *user, const char *password, enum scram_mech mech,
             struct au_answer *first);

/* Adds user with password (both mechanisms) to data_dir offline, through
 * `nagared --add-user` ($NAGARED). */
void au_add_user_offline(const char *data_dir, const char *user, const char *password);

#endif
