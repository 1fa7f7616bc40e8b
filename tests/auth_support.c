/* tests/auth_support.c — logging in over raw frames (tests/auth_support.h). */
#include "tests/auth_support.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int answer(struct cl *c, uint32_t corr, bool handshake, struct au_answer *a)
{
    memset(a, 0, sizeof(*a));
    struct proto_resp_header h;
    struct rd body;
    int rc = cl_recv(c, &h, &body);
    if (rc != 0) {
        return rc;
    }
    cr_assert_eq(h.correlation_id, corr);
    a->req_err = h.err;
    if (h.err != 0) {
        return 0;
    }
    if (handshake) {
        struct proto_sasl_handshake_resp r;
        cr_assert_eq(proto_sasl_handshake_resp_decode(&body, 0, &r), 0);
        a->err = r.err;
        a->len = (size_t)r.mechanisms.len;
        memcpy(a->bytes, r.mechanisms.ptr, a->len);
    } else {
        struct proto_sasl_bytes r;
        cr_assert_eq(proto_sasl_authenticate_resp_decode(&body, 0, &r), 0);
        cr_assert_leq(r.len, SCRAM_MSG_BYTES_MAX);
        a->err = r.err;
        a->len = r.len;
        memcpy(a->bytes, r.bytes, r.len);
    }
    a->bytes[a->len] = '\0';
    return 0;
}

int au_handshake(struct cl *c, const char *mech, struct au_answer *a)
{
    uint32_t corr = cl_next_corr(c);
    int rc = proto_sasl_handshake_req_encode(cl_wr(c), 0, corr, proto_str_make("test"),
                                             proto_str_make(mech));
    cr_assert_eq(rc, 0);
    rc = cl_send_wr(c);
    return rc != 0 ? rc : answer(c, corr, true, a);
}

int au_authenticate(struct cl *c, const char *msg, size_t len, struct au_answer *a)
{
    uint32_t corr = cl_next_corr(c);
    struct proto_sasl_bytes b = {.bytes = (const uint8_t *)msg, .len = (uint32_t)len};
    int rc = proto_sasl_authenticate_req_encode(cl_wr(c), 0, corr, proto_str_make("test"), &b);
    cr_assert_eq(rc, 0);
    rc = cl_send_wr(c);
    return rc != 0 ? rc : answer(c, corr, false, a);
}

static int answer_err(int rc, const struct au_answer *a)
{
    return rc != 0 ? rc : a->req_err != 0 ? a->req_err : a->err;
}

int au_login(struct cl *c, const char *user, const char *password, enum scram_mech mech,
             struct au_answer *first)
{
    static struct scram_client sc;
    struct au_answer a;
    char msg[SCRAM_MSG_BYTES_MAX];
    size_t len = 0;
    int rc = answer_err(au_handshake(c, scram_mech_name(mech), &a), &a);
    if (rc != 0) {
        return rc;
    }
    cr_assert_eq(scram_client_first(&sc, mech, user, password, NULL, msg, sizeof(msg), &len), 0);
    rc = answer_err(au_authenticate(c, msg, len, &a), &a);
    if (first != NULL) {
        *first = a;
    }
    if (rc == 0) {
        rc = scram_client_final(&sc, (const uint8_t *)a.bytes, a.len, msg, sizeof(msg), &len);
        cr_assert_eq(rc, 0, "client-final: %s", err_str(rc));
        rc = answer_err(au_authenticate(c, msg, len, &a), &a);
    }
    if (rc == 0) {
        rc = scram_client_verify(&sc, (const uint8_t *)a.bytes, a.len);
        cr_assert_eq(rc, 0, "the broker's signature: %s", err_str(rc));
    }
    scram_client_wipe(&sc);
    return rc;
}

void au_add_user_offline(const char *data_dir, const char *user, const char *password)
{
    const char *nagared = getenv("NAGARED");
    cr_assert_not_null(nagared, "$NAGARED names the broker binary");
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "NAGARE_PASSWORD='%s' '%s' --add-user '%s' '%s' >/dev/null",
             password, nagared, user, data_dir);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}
