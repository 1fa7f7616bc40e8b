/*
 * broker/conn_auth.c — a connection's principal (broker/conn_auth.h).
 */
#include "broker/conn_auth.h"

#include <stdlib.h>
#include <string.h>

#include "auth/scram.h"

static_assert(sizeof(PRINCIPAL_ANONYMOUS) <= PRINCIPAL_BYTES_MAX, "the anonymous principal fits");

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

void conn_auth_release(void *ctx)
{
    struct conn_auth *a = ctx;
    if (a != NULL && a->scram != NULL) {
        explicit_bzero(a->scram, sizeof(*a->scram));
        free(a->scram);
    }
    free(a);
}
