/*
 * client/admin_users.c — the admin client's user calls (client/nagare.h,
 * "users"): AlterUser and DescribeUsers at the broker given. The
 * credential is derived here (auth/scram.h); the password stays in this
 * process.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "auth/scram.h"
#include "client/admin_int.h"

/* An AlterUser request: the header with the client id, the name, three
 * byte arrays of at most a key each, the fixed fields. */
#define ALTER_USER_REQUEST_BYTES                                            \
    (PROTO_REQ_HEADER_BYTES_MIN + sizeof(CONN_CLIENT_ID) + 4 + 2 + 4 + 4 +  \
     PROTO_STR_BYTES(SCRAM_USER_BYTES_MAX) + 3 * 4 + SCRAM_SALT_BYTES_MAX + \
     2 * SCRAM_KEY_BYTES_MAX)
#define DESCRIBE_USERS_REQUEST_BYTES (PROTO_REQ_HEADER_BYTES_MIN + sizeof(CONN_CLIENT_ID) + 4)

static int api_err(int rc) { return rc == -NG_EBADVERSION ? -NG_EUNKNOWN_API : rc; }

static int alter_encode(void *arg, struct wr *w, uint32_t corr, uint16_t version)
{
    return proto_alter_user_req_encode(w, version, corr, proto_str_make(CONN_CLIENT_ID), arg);
}

static int alter_decode(void *arg, struct rd *body, uint16_t version)
{
    (void)arg;
    int err = 0;
    return proto_alter_user_resp_decode(body, version, &err) != 0 ? -NG_EPROTO : err;
}

static int alter(nagare_admin *a, const struct proto_alter_user_req *r)
{
    int rc = admin_call(a, PROTO_API_ALTER_USER, ALTER_USER_REQUEST_BYTES, alter_encode,
                        alter_decode, (void *)r);
    return api_err(rc);
}

/* The mechanisms a call names: one, or (NULL) all. */
static int mechs_of(const char *mechanism, int *first, int *last)
{
    enum scram_mech m;
    if (mechanism == NULL) {
        *first = 0;
        *last = SCRAM_MECH_COUNT - 1;
        return 0;
    }
    if (scram_mech_parse(mechanism, strlen(mechanism), &m) != 0) {
        return -NG_EBADARG;
    }
    *first = *last = (int)m;
    return 0;
}

int nagare_user_set(nagare_admin *a, const char *user, const char *password, const char *mechanism,
                    uint32_t iterations)
{
    ASSERT(a != NULL);
    if (user == NULL || !scram_user_valid(user, strlen(user))) {
        return -NG_EBADNAME;
    }
    int first, last;
    if (password == NULL || mechs_of(mechanism, &first, &last) != 0) {
        return -NG_EBADARG;
    }
    int rc = 0;
    for (int m = first; m <= last && rc == 0; m++) {
        struct scram_cred c;
        rc = scram_cred_make((enum scram_mech)m, password, strlen(password), NULL, 0,
                             iterations == 0 ? SCRAM_ITERATIONS_MIN : iterations, &c);
        size_t kb = scram_key_bytes((enum scram_mech)m);
        struct proto_alter_user_req r = {
            .op = PROTO_USER_UPSERT,
            .mechanism = (int8_t)m,
            .iterations = (int32_t)c.iterations,
            .user = proto_str_make(user),
            .salt = {.bytes = c.salt, .len = c.salt_len},
            .stored_key = {.bytes = c.stored_key, .len = (uint32_t)kb},
            .server_key = {.bytes = c.server_key, .len = (uint32_t)kb},
        };
        rc = rc == 0 ? alter(a, &r) : rc;
        explicit_bzero(&c, sizeof(c));
    }
    return rc;
}

int nagare_user_delete(nagare_admin *a, const char *user, const char *mechanism)
{
    ASSERT(a != NULL);
    if (user == NULL || !scram_user_valid(user, strlen(user))) {
        return -NG_EBADNAME;
    }
    int first, last;
    if (mechs_of(mechanism, &first, &last) != 0) {
        return -NG_EBADARG;
    }
    struct proto_alter_user_req r = {
        .op = PROTO_USER_DELETE,
        .mechanism = (int8_t)(mechanism == NULL ? PROTO_MECH_ALL : first),
        .user = proto_str_make(user),
    };
    return alter(a, &r);
}

/* The answer, copied: the array, then the names after it. */
struct users_out {
    struct nagare_user_info *v;
    size_t count;
};

static int describe_encode(void *arg, struct wr *w, uint32_t corr, uint16_t version)
{
    (void)arg;
    return proto_describe_users_req_encode(w, version, corr, proto_str_make(CONN_CLIENT_ID));
}

static int describe_decode(void *arg, struct rd *body, uint16_t version)
{
    struct users_out *o = arg;
    struct proto_dec d;
    if (proto_describe_users_resp_decode(body, version, &d) != 0) {
        return -NG_EPROTO;
    }
    size_t n = (size_t)d.topic_count, names = 0;
    struct proto_dec scan = d;
    struct proto_user_listing u;
    while (proto_describe_users_resp_next(&scan, &u)) {
        names += (size_t)u.user.len + 1;
    }
    o->v = malloc(n * sizeof(*o->v) + names + 1);
    if (o->v == NULL) {
        return -ENOMEM;
    }
    char *at = (char *)(o->v + n);
    for (size_t i = 0; proto_describe_users_resp_next(&d, &u); i++) {
        memcpy(at, u.user.ptr, (size_t)u.user.len);
        at[u.user.len] = '\0';
        o->v[i] = (struct nagare_user_info){
            .user = at,
            .scram_sha_256 = (u.mechanisms & (1u << SCRAM_SHA_256)) != 0,
            .scram_sha_512 = (u.mechanisms & (1u << SCRAM_SHA_512)) != 0,
        };
        at += u.user.len + 1;
    }
    o->count = n;
    return 0;
}

int nagare_users_list(nagare_admin *a, const struct nagare_user_info **out, size_t *count)
{
    ASSERT(a != NULL && out != NULL && count != NULL);
    struct users_out o = {0};
    int rc = admin_call(a, PROTO_API_DESCRIBE_USERS, DESCRIBE_USERS_REQUEST_BYTES, describe_encode,
                        describe_decode, &o);
    if (rc != 0) {
        free(o.v);
        return api_err(rc);
    }
    *out = o.v;
    *count = o.count;
    return 0;
}

void nagare_users_free(const struct nagare_user_info *users) { free((void *)users); }
