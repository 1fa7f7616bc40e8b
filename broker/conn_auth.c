/*
 * broker/conn_auth.c — a connection's principal (broker/conn_auth.h).
 */
#include "broker/conn_auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/scram.h"
#include "base/log.h"
#include "net/tls.h"

static_assert(sizeof(PRINCIPAL_ANONYMOUS) <= PRINCIPAL_BYTES_MAX, "the anonymous principal fits");
static_assert(sizeof("User:") - 1 + TLS_SUBJECT_BYTES_MAX <= PRINCIPAL_BYTES_MAX,
              "a certificate's subject fits a principal");

const char *conn_auth_principal(const struct loop_req *req)
{
    const struct conn_auth *a = loop_req_conn_ctx(req);
    return a != NULL ? a->principal : PRINCIPAL_ANONYMOUS;
}

struct conn_auth *conn_auth_get(struct loop_req *req)
{
    if (!loop_req_connected(req)) {
        return NULL;
    }
    struct conn_auth *a = loop_req_conn_ctx(req);
    if (a == NULL) {
        a = calloc(1, sizeof(*a));
        if (a == NULL) {
            return NULL;
        }
        memcpy(a->principal, PRINCIPAL_ANONYMOUS, sizeof(PRINCIPAL_ANONYMOUS));
        loop_req_set_conn_ctx(req, a);
    }
    return a;
}

void conn_auth_tls(struct loop_req *req)
{
    static const char prefix[] = "User:";
    char subject[TLS_SUBJECT_BYTES_MAX];
    if (loop_req_conn_ctx(req) != NULL || !loop_req_tls(req) ||
        loop_req_tls_peer(req, subject, sizeof(subject)) != 0) {
        return;
    }
    struct conn_auth *a = conn_auth_get(req);
    if (a != NULL) {
        snprintf(a->principal, sizeof(a->principal), "%s%s", prefix, subject);
        a->tls_client = true; /* authenticated: the listener verified the certificate */
        log_debug("connection %llu: principal %s (its TLS client certificate)",
                  (unsigned long long)loop_req_conn_id(req), a->principal);
    }
}

void conn_auth_release(void *ctx)
{
    struct conn_auth *a = ctx;
    if (a != NULL && a->scram != NULL) {
        explicit_bzero(a->scram, sizeof(*a->scram));
        free(a->scram);
    }
    free(a);
}
