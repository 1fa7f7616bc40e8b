/*
 * broker/sasl_serve.c — logging in, the gate, and user management
 * (broker/sasl_serve.h).
 */
#include "broker/sasl_serve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/scram.h"
#include "base/log.h"
#include "broker/conn_auth.h"
#include "broker/kafka_serve.h"
#include "broker/server.h"
#include "broker/users.h"
#include "net/kafka/errors.h"

/* One peer address's failed logins. */
struct sasl_peer {
    char addr[INET6_ADDRSTRLEN];
    uint32_t failures;
    uint64_t blocked_until_ms; /* loop clock; 0: not blocked */
    uint64_t failed_ms;        /* the last failure */
};

struct sasl_serve {
    struct users users;  /* DATA_DIR/users */
    struct users merged; /* a cluster: users, then etcd's over them (served) */
    char inter_broker_password[SCRAM_PASSWORD_BYTES_MAX + 1]; /* "": none */
    uint8_t secret[SCRAM_KEY_BYTES_MAX]; /* keys the stand-in credentials' salts */
    uint32_t peer_count;
    struct sasl_peer peers[SASL_PEERS_MAX];
};

static_assert(CLUSTER_USER_BYTES == SCRAM_USER_BYTES_MAX + 1, "a cluster's user name is ours");
static_assert(CLUSTER_USER_VALUE_BYTES >= USERS_LINE_BYTES_MAX, "a credential's text fits");

/* The users logins are checked against: a single broker's own; in a
 * cluster, its own with the cluster's (etcd's) over them. */
static const struct users *users_served(const struct server *s)
{
    return broker_config_clustered(&s->cfg) ? &s->sasl->merged : &s->sasl->users;
}

static_assert(sizeof(PRINCIPAL_ANONYMOUS) <= sizeof("User:") + SCRAM_USER_BYTES_MAX &&
                  sizeof("User:") + SCRAM_USER_BYTES_MAX <= PRINCIPAL_BYTES_MAX,
              "a principal holds any user name");

/* SCRAM messages both ways fit these buffers (auth/scram.h). */
static_assert(SCRAM_MSG_BYTES_MAX <= PROTO_SASL_BYTES_MAX, "a SCRAM message fits the wire's limit");

/* inter_broker_password_file's first line. */
static int password_file_read(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        return -errno;
    }
    int rc = fgets(out, (int)cap, f) != NULL ? 0 : -NG_EBADARG;
    fclose(f);
    out[strcspn(out, "\r\n")] = '\0';
    return rc == 0 && out[0] == '\0' ? -NG_EBADARG : rc;
}

bool sasl_serve_inter_broker(const struct server *s, const char **user, const char **password)
{
    if (s->sasl == NULL || s->sasl->inter_broker_password[0] == '\0') {
        return false;
    }
    *user = s->cfg.inter_broker_user;
    *password = s->sasl->inter_broker_password;
    return true;
}

/* Builds out (empty, kept nowhere) from local's users, then the view's
 * credentials over them (v NULL: none). A credential the view holds that
 * does not parse is left out, logged. */
static int sasl_merge(struct users *out, const struct users *local, const struct cluster_view *v)
{
    int rc = 0;
    for (uint32_t i = 0; i < local->count && rc == 0; i++) {
        for (int m = 0; m < SCRAM_MECH_COUNT && rc == 0; m++) {
            if (local->v[i].mechs & (1u << m)) {
                rc = users_set(out, local->v[i].name, &local->v[i].cred[m]);
            }
        }
    }
    for (uint32_t i = 0; v != NULL && i < v->user_cred_count && rc == 0; i++) {
        const struct cluster_user_cred *c = &v->user_creds[i];
        enum scram_mech m;
        struct scram_cred cred;
        if (!scram_user_valid(c->user, strlen(c->user)) ||
            scram_mech_parse(c->mechanism, strlen(c->mechanism), &m) != 0 ||
            users_cred_parse(m, c->value, strlen(c->value), &cred) != 0) {
            log_warn("cluster: users/%s/%s: not a credential; left out", c->user, c->mechanism);
            continue;
        }
        rc = users_set(out, c->user, &cred);
        rc = rc == -NG_ETOOBIG ? 0 : rc; /* the first USERS_MAX are served */
    }
    return rc;
}

static bool same_creds(const struct cluster_view *a, const struct cluster_view *b)
{
    return a != NULL && a->user_cred_count == b->user_cred_count &&
           (a->user_cred_count == 0 ||
            memcmp(a->user_creds, b->user_creds, a->user_cred_count * sizeof(*a->user_creds)) == 0);
}

void sasl_serve_apply_view(struct server *s, const struct cluster_view *old,
                           const struct cluster_view *view)
{
    if (same_creds(old, view)) {
        return; /* most views change partitions, not users */
    }
    struct users t;
    users_init(&t);
    int rc = sasl_merge(&t, &s->sasl->users, view);
    if (rc != 0) {
        log_error("cluster: users of revision %lld: %s; the previous users stay",
                  (long long)view->revision, err_str(rc));
        users_close(&t);
        return;
    }
    users_close(&s->sasl->merged);
    s->sasl->merged = t;
}

int sasl_serve_open(struct server *s)
{
    struct sasl_serve *ss = calloc(1, sizeof(*ss));
    if (ss == NULL) {
        return -ENOMEM;
    }
    int rc = users_open(&ss->users, s->cfg.data_dir);
    if (rc != 0) {
        log_error("%s/%s: %s", s->cfg.data_dir, USERS_FILE, err_str(rc));
    } else if (RAND_bytes(ss->secret, sizeof(ss->secret)) != 1) {
        log_error("no random bytes for the login secret (OpenSSL)");
        rc = -NG_ESYSTEM;
    } else if (s->cfg.inter_broker_password_file[0] != '\0') {
        rc = password_file_read(s->cfg.inter_broker_password_file, ss->inter_broker_password,
                                sizeof(ss->inter_broker_password));
        if (rc != 0) {
            log_error("inter_broker_password_file %s: %s", s->cfg.inter_broker_password_file,
                      rc == -NG_EBADARG ? "no password on its first line" : err_str(rc));
        }
    }
    users_init(&ss->merged);
    if (rc == 0 && broker_config_clustered(&s->cfg)) {
        rc = sasl_merge(&ss->merged, &ss->users, NULL);
    }
    if (rc != 0) {
        users_close(&ss->users);
        users_close(&ss->merged);
        free(ss);
        return rc;
    }
    s->sasl = ss;
    if (s->cfg.authentication == BROKER_AUTHENTICATION_REQUIRED && ss->users.count == 0 &&
        !broker_config_clustered(&s->cfg)) {
        log_warn("authentication is required and there are no users yet: add one with "
                 "nagared --add-user NAME %s (docs/security.md)",
                 s->cfg.data_dir);
    }
    return 0;
}

void sasl_serve_close(struct server *s)
{
    if (s->sasl != NULL) {
        users_close(&s->sasl->users);
        users_close(&s->sasl->merged);
        explicit_bzero(s->sasl->secret, sizeof(s->sasl->secret));
        explicit_bzero(s->sasl->inter_broker_password, sizeof(s->sasl->inter_broker_password));
        free(s->sasl);
        s->sasl = NULL;
    }
}

/* ---- failed logins per address ---- */

static struct sasl_peer *peer_find(struct sasl_serve *ss, const char *addr)
{
    for (uint32_t i = 0; i < ss->peer_count; i++) {
        if (strcmp(ss->peers[i].addr, addr) == 0) {
            return &ss->peers[i];
        }
    }
    return NULL;
}

/* A slot for addr: a new one, or the least recently failed (an unblocked
 * one before any blocked) when the table is full. */
static struct sasl_peer *peer_add(struct sasl_serve *ss, const char *addr, uint64_t now_ms)
{
    struct sasl_peer *p = NULL;
    if (ss->peer_count < SASL_PEERS_MAX) {
        p = &ss->peers[ss->peer_count++];
    } else {
        for (uint32_t i = 0; i < SASL_PEERS_MAX; i++) {
            struct sasl_peer *q = &ss->peers[i];
            bool q_blocked = q->blocked_until_ms > now_ms;
            bool p_blocked = p != NULL && p->blocked_until_ms > now_ms;
            if (p == NULL || (p_blocked && !q_blocked) ||
                (p_blocked == q_blocked && q->failed_ms < p->failed_ms)) {
                p = q;
            }
        }
    }
    memset(p, 0, sizeof(*p));
    snprintf(p->addr, sizeof(p->addr), "%s", addr);
    return p;
}

static void peer_addr(struct loop_req *req, char *addr, size_t cap)
{
    if (loop_req_peer(req, addr, cap) != 0) {
        snprintf(addr, cap, "?");
    }
}

bool sasl_serve_addr_blocked(struct server *s, const char *addr)
{
    struct sasl_peer *p = peer_find(s->sasl, addr);
    uint64_t now = loop_now_ms(&s->loop);
    if (p != NULL && p->blocked_until_ms != 0 && p->blocked_until_ms <= now) {
        p->blocked_until_ms = 0; /* its time is served: counting starts again */
        p->failures = 0;
    }
    return p != NULL && p->blocked_until_ms > now;
}

void sasl_serve_addr_failed(struct server *s, const char *addr, const char *user)
{
    uint64_t now = loop_now_ms(&s->loop);
    struct sasl_peer *p = peer_find(s->sasl, addr);
    p = p != NULL ? p : peer_add(s->sasl, addr, now);
    p->failures++;
    p->failed_ms = now;
    log_info("failed login from %s as '%s' (%u in a row)", addr, user, p->failures);
    if (p->failures >= s->cfg.login_failures_max) {
        p->blocked_until_ms = now + s->cfg.login_block_ms;
        log_warn("%u failed logins from %s: its logins are refused for %u ms", p->failures, addr,
                 s->cfg.login_block_ms);
    }
}

void sasl_serve_addr_succeeded(struct server *s, const char *addr)
{
    struct sasl_peer *p = peer_find(s->sasl, addr);
    if (p != NULL) {
        p->failures = 0;
    }
}

static bool peer_blocked(struct server *s, struct loop_req *req)
{
    char addr[INET6_ADDRSTRLEN];
    peer_addr(req, addr, sizeof(addr));
    return sasl_serve_addr_blocked(s, addr);
}

static void peer_failed(struct server *s, struct loop_req *req, const char *user)
{
    char addr[INET6_ADDRSTRLEN];
    peer_addr(req, addr, sizeof(addr));
    sasl_serve_addr_failed(s, addr, user);
}

static void peer_succeeded(struct server *s, struct loop_req *req)
{
    char addr[INET6_ADDRSTRLEN];
    peer_addr(req, addr, sizeof(addr));
    sasl_serve_addr_succeeded(s, addr);
}

int sasl_serve_user_cred(struct server *s, const char *user, struct scram_cred *out)
{
    size_t len = strlen(user);
    bool valid = scram_user_valid(user, len);
    const struct users *u = users_served(s);
    const struct scram_cred *c = NULL;
    for (int m = SCRAM_MECH_COUNT - 1; valid && m >= 0 && c == NULL; m--) {
        c = users_find(u, user, (enum scram_mech)m);
    }
    if (c != NULL) {
        *out = *c;
        return 0;
    }
    len = valid ? len : 0; /* an invalid name: the stand-in of the empty one */
    if (scram_cred_fake(SCRAM_SHA_256, user, len, s->sasl->secret, out) != 0) {
        /* No random keys: zero ones, which no password's StoredKey is. */
        memset(out->stored_key, 0, sizeof(out->stored_key));
    }
    return -NG_ENOTFOUND;
}

/* ---- the exchange, either protocol ---- */

static void scram_end(struct conn_auth *a)
{
    if (a->scram != NULL) {
        explicit_bzero(a->scram, sizeof(*a->scram));
        free(a->scram);
        a->scram = NULL;
    }
}

/* The mechanisms offered, comma-separated, into buf. */
static void mechanisms_list(const struct server *s, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int m = 0; m < SCRAM_MECH_COUNT; m++) {
        if (s->cfg.sasl_mechanisms & (1u << m)) {
            int k = snprintf(buf + n, cap - n, "%s%s", n > 0 ? "," : "",
                             scram_mech_name((enum scram_mech)m));
            ASSERT(k > 0 && (size_t)k < cap - n);
            n += (size_t)k;
        }
    }
}

/* A handshake naming mech[0..len). Returns 0, -NG_EBADARG (logged in or
 * mid-exchange already), -NG_EMECHANISM (not offered). */
static int handshake(struct server *s, struct conn_auth *a, const char *mech, size_t len)
{
    if (a->sasl != CONN_SASL_NONE) {
        return -NG_EBADARG;
    }
    enum scram_mech m;
    if (scram_mech_parse(mech, len, &m) != 0 || (s->cfg.sasl_mechanisms & (1u << m)) == 0) {
        return -NG_EMECHANISM;
    }
    a->sasl = CONN_SASL_MECH;
    a->sasl_mech = (uint8_t)m;
    return 0;
}

/* The server-first message for the client-first in[0..len). */
static int step_first(struct server *s, struct loop_req *req, struct conn_auth *a,
                      const uint8_t *in, size_t len, char *out, size_t cap, size_t *out_len)
{
    if (peer_blocked(s, req)) {
        return -NG_EAUTH_THROTTLED; /* refused without any work */
    }
    a->scram = malloc(sizeof(*a->scram));
    if (a->scram == NULL) {
        return -ENOMEM;
    }
    enum scram_mech m = (enum scram_mech)a->sasl_mech;
    scram_server_init(a->scram, m);
    int rc = scram_server_first(a->scram, in, len);
    if (rc != 0) {
        peer_failed(s, req, "?");
        return rc;
    }
    const struct scram_cred *cred = users_find(users_served(s), a->scram->user, m);
    struct scram_cred fake;
    if (cred == NULL) {
        /* Unknown: the same exchange against a credential no proof matches. */
        rc = scram_cred_fake(m, a->scram->user, a->scram->user_len, s->sasl->secret, &fake);
        cred = &fake;
    }
    rc = rc == 0 ? scram_server_challenge(a->scram, cred, NULL, out, cap, out_len) : rc;
    explicit_bzero(&fake, sizeof(fake));
    if (rc == 0) {
        a->sasl = CONN_SASL_CHALLENGED;
    }
    return rc;
}

/* The server-final message for the client-final in[0..len); on success the
 * connection is logged in. */
static int step_final(struct server *s, struct loop_req *req, struct conn_auth *a,
                      const uint8_t *in, size_t len, char *out, size_t cap, size_t *out_len)
{
    int rc = scram_server_final(a->scram, in, len, out, cap, out_len);
    if (rc != 0) {
        peer_failed(s, req, a->scram->user);
        return rc;
    }
    snprintf(a->principal, sizeof(a->principal), "User:%s", a->scram->user);
    a->sasl = CONN_SASL_DONE;
    peer_succeeded(s, req);
    log_debug("connection %" PRIu64 ": logged in as %s (%s)", loop_req_conn_id(req), a->principal,
              scram_mech_name((enum scram_mech)a->sasl_mech));
    return 0;
}

/* One message of the exchange: in from the client, out to it. Returns 0,
 * -NG_EBADARG (no handshake, or logged in already), -NG_EAUTH,
 * -NG_EAUTH_THROTTLED, -ENOMEM. The exchange's state is gone after an
 * error or the last step. */
static int step(struct server *s, struct loop_req *req, struct conn_auth *a, const uint8_t *in,
                size_t len, char *out, size_t cap, size_t *out_len)
{
    int rc = -NG_EBADARG;
    *out_len = 0;
    if (a->sasl == CONN_SASL_MECH) {
        rc = step_first(s, req, a, in, len, out, cap, out_len);
    } else if (a->sasl == CONN_SASL_CHALLENGED) {
        rc = step_final(s, req, a, in, len, out, cap, out_len);
    }
    if (rc != 0 || a->sasl == CONN_SASL_DONE) {
        scram_end(a);
    }
    if (rc != 0 && rc != -NG_EBADARG) {
        a->sasl = CONN_SASL_NONE;
    }
    return rc == -NG_ENOSPACE || rc == -NG_ESYSTEM ? -NG_EAUTH : rc;
}

/* ---- the gate ---- */

/* What a Kafka connection may send before its login: ApiVersions and the
 * APIs messages.def marks `sasl`. */
static bool kafka_login_api(int key)
{
    const struct kafka_api *api = kafka_api_find((int16_t)key);
    return key == KAFKA_API_API_VERSIONS || (api != NULL && api->sasl);
}

static bool nagare_login_api(int key)
{
    return key == PROTO_API_API_VERSIONS || key == PROTO_API_SASL_HANDSHAKE ||
           key == PROTO_API_SASL_AUTHENTICATE;
}

bool sasl_serve_admit(struct server *s, struct loop_req *req, bool kafka, int api_key,
                      uint32_t correlation_id)
{
    if (s->cfg.authentication != BROKER_AUTHENTICATION_REQUIRED) {
        return true;
    }
    const struct conn_auth *a = loop_req_conn_ctx(req);
    if ((a != NULL && (a->sasl == CONN_SASL_DONE || a->tls_client)) ||
        (kafka ? kafka_login_api(api_key) : nagare_login_api(api_key))) {
        return true;
    }
    log_debug("connection %" PRIu64 ": %s request %d before logging in; closing",
              loop_req_conn_id(req), kafka ? "Kafka" : "nagare", api_key);
    if (kafka) {
        loop_req_fail(req); /* as Kafka's broker: no answer, the connection closed */
        return false;
    }
    loop_req_close_after(req, -NG_EAUTH_REQUIRED);
    server_resp_error(req, correlation_id, -NG_EAUTH_REQUIRED);
    return false;
}

/* ---- nagare's requests ---- */

void handle_sasl_handshake(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                           struct rd *body)
{
    struct proto_str mech;
    int rc = proto_sasl_handshake_req_decode(body, h->api_version, &mech);
    struct conn_auth *a = rc == 0 ? conn_auth_get(req) : NULL;
    if (rc == 0 && a == NULL) {
        rc = -ENOMEM;
    }
    if (rc != 0) {
        server_resp_error(req, h->correlation_id, rc);
        return;
    }
    char list[64];
    mechanisms_list(s, list, sizeof(list));
    struct proto_sasl_handshake_resp r = {.err = handshake(s, a, mech.ptr, (size_t)mech.len),
                                          .mechanisms = proto_str_make(list)};
    struct wr w;
    if (server_resp_begin(req, h->correlation_id, 128, &w)) {
        rc = proto_sasl_handshake_resp_encode(&w, h->api_version, h->correlation_id, &r);
        ASSERT(rc == 0);
        server_resp_send(req, &w);
    }
}

void handle_sasl_authenticate(struct server *s, struct loop_req *req,
                              const struct proto_req_header *h, struct rd *body)
{
    struct proto_sasl_bytes in;
    int rc = proto_sasl_authenticate_req_decode(body, h->api_version, &in);
    struct conn_auth *a = rc == 0 ? conn_auth_get(req) : NULL;
    if (rc == 0 && a == NULL) {
        rc = -ENOMEM;
    }
    if (rc != 0) {
        server_resp_error(req, h->correlation_id, rc);
        return;
    }
    char out[SCRAM_MSG_BYTES_MAX];
    size_t out_len = 0;
    struct proto_sasl_bytes r = {.err =
                                     step(s, req, a, in.bytes, in.len, out, sizeof(out), &out_len),
                                 .bytes = (const uint8_t *)out};
    r.len = (uint32_t)out_len;
    if (r.err != 0) {
        loop_req_close_after(req, r.err); /* one login per connection */
    }
    struct wr w;
    if (server_resp_begin(req, h->correlation_id, 64 + sizeof(out), &w)) {
        rc = proto_sasl_authenticate_resp_encode(&w, h->api_version, h->correlation_id, &r);
        ASSERT(rc == 0);
        server_resp_send(req, &w);
    }
}

/* The credential an upsert carries, checked. */
static int alter_cred(const struct proto_alter_user_req *r, struct scram_cred *c)
{
    enum scram_mech m = (enum scram_mech)r->mechanism;
    size_t kb = scram_key_bytes(m);
    if (r->iterations < SCRAM_ITERATIONS_MIN || r->iterations > SCRAM_ITERATIONS_MAX ||
        r->salt.len == 0 || r->salt.len > SCRAM_SALT_BYTES_MAX || r->stored_key.len != kb ||
        r->server_key.len != kb) {
        return -NG_EBADARG;
    }
    *c = (struct scram_cred){.mech = (uint8_t)m,
                             .salt_len = (uint8_t)r->salt.len,
                             .iterations = (uint32_t)r->iterations};
    memcpy(c->salt, r->salt.bytes, r->salt.len);
    memcpy(c->stored_key, r->stored_key.bytes, kb);
    memcpy(c->server_key, r->server_key.bytes, kb);
    return 0;
}

/* An AlterUser a cluster carries out: answered from the loop once the
 * session is done with it. */
struct alter_call {
    struct loop_msg m;
    struct loop *loop;
    struct loop_req *req;
    uint32_t correlation_id;
    uint16_t version;
    int err;
};

static void alter_answer(struct loop_req *req, uint32_t correlation_id, uint16_t version, int err)
{
    struct wr w;
    if (server_resp_begin(req, correlation_id, 64, &w)) {
        int rc = proto_alter_user_resp_encode(&w, version, correlation_id, server_wire_err(err));
        ASSERT(rc == 0);
        server_resp_send(req, &w);
    }
}

static void alter_call_answer(struct loop_msg *m, void *arg)
{
    (void)arg;
    struct alter_call *c = container_of(m, struct alter_call, m);
    alter_answer(c->req, c->correlation_id, c->version, c->err);
    free(c);
}

static void alter_call_done(void *arg, int rc)
{
    struct alter_call *c = arg; /* on the cluster thread */
    c->err = rc;
    loop_post(c->loop, &c->m);
}

/* AlterUser in a cluster: the change goes to etcd (users/<name>/...), and
 * every broker's next view carries it. */
static int alter_in_cluster(struct server *s, struct loop_req *req,
                            const struct proto_req_header *h, const char *name, int op, int mech,
                            const struct scram_cred *cred)
{
    struct alter_call *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return -ENOMEM;
    }
    *c = (struct alter_call){.m = {.fn = alter_call_answer},
                             .loop = &s->loop,
                             .req = req,
                             .correlation_id = h->correlation_id,
                             .version = h->api_version};
    int rc = 0;
    if (op == PROTO_USER_UPSERT) {
        char value[CLUSTER_USER_VALUE_BYTES];
        rc = users_cred_format(cred, value, sizeof(value));
        ASSERT(rc > 0);
        rc = cluster_session_put_user(s->session, name, scram_mech_name((enum scram_mech)mech),
                                      value, alter_call_done, c);
    } else {
        rc = cluster_session_delete_user(s->session, name,
                                         mech < 0 ? NULL : scram_mech_name((enum scram_mech)mech),
                                         alter_call_done, c);
    }
    if (rc != 0) {
        free(c);
    }
    return rc;
}

void handle_alter_user(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                       struct rd *body)
{
    struct proto_alter_user_req r;
    int rc = proto_alter_user_req_decode(body, h->api_version, &r);
    if (rc != 0) {
        server_resp_error(req, h->correlation_id, rc);
        return;
    }
    char name[SCRAM_USER_BYTES_MAX + 1];
    if (r.user.len <= 0 || !scram_user_valid(r.user.ptr, (size_t)r.user.len)) {
        rc = -NG_EBADNAME;
    } else {
        memcpy(name, r.user.ptr, (size_t)r.user.len);
        name[r.user.len] = '\0';
    }
    struct scram_cred cred;
    if (rc == 0 && r.op == PROTO_USER_UPSERT) {
        rc = alter_cred(&r, &cred);
    }
    if (rc == 0 && s->session != NULL) {
        rc = alter_in_cluster(s, req, h, name, r.op, r.mechanism, &cred);
        if (rc == 0) {
            return; /* answered once etcd has it */
        }
    } else if (rc == 0 && r.op == PROTO_USER_UPSERT) {
        rc = users_upsert(&s->sasl->users, name, &cred);
    } else if (rc == 0) {
        rc = users_delete(&s->sasl->users, name, r.mechanism);
    }
    if (rc == 0) {
        log_info("user %s: %s %s by %s", name, r.op == PROTO_USER_UPSERT ? "set" : "deleted",
                 r.mechanism < 0 ? "every mechanism"
                                 : scram_mech_name((enum scram_mech)r.mechanism),
                 conn_auth_principal(req));
    }
    alter_answer(req, h->correlation_id, h->api_version, rc);
}

void handle_describe_users(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                           struct rd *body)
{
    int rc = proto_describe_users_req_decode(body, h->api_version);
    if (rc != 0) {
        server_resp_error(req, h->correlation_id, rc);
        return;
    }
    const struct users *u = users_served(s);
    size_t cap = 64 + (size_t)u->count * (PROTO_STR_BYTES(SCRAM_USER_BYTES_MAX) + 1);
    struct wr w;
    if (!server_resp_begin(req, h->correlation_id, cap, &w)) {
        return;
    }
    struct proto_enc e;
    proto_describe_users_resp_begin(&e, &w, h->api_version, h->correlation_id);
    for (uint32_t i = 0; i < u->count; i++) {
        struct proto_user_listing l = {.user = proto_str_make(u->v[i].name),
                                       .mechanisms = u->v[i].mechs};
        proto_describe_users_resp_user(&e, &l);
    }
    server_resp_end(req, &e, &w, h->correlation_id);
}

/* ---- Kafka's ---- */

/* A SASL request's error in Kafka's words: out of order is
 * ILLEGAL_SASL_STATE there. */
static int16_t kafka_sasl_err(int rc)
{
    return rc == -NG_EBADARG ? KAFKA_ERR_ILLEGAL_SASL_STATE : kafka_err_from(rc);
}

void kafka_sasl_handshake(struct server *s, struct loop_req *req, const struct kafka_req_header *h,
                          struct rd *body, struct kw_arena *ar)
{
    struct kafka_sasl_handshake_request r;
    int rc = kafka_sasl_handshake_request_decode(body, h->api_version, ar, &r);
    struct conn_auth *a = rc == 0 ? conn_auth_get(req) : NULL;
    if (a == NULL) {
        loop_req_fail(req);
        return;
    }
    rc = handshake(s, a, r.mechanism.ptr, r.mechanism.len > 0 ? (size_t)r.mechanism.len : 0);
    struct kw_str names[SCRAM_MECH_COUNT];
    struct kafka_sasl_handshake_response resp;
    kafka_sasl_handshake_response_init(&resp);
    resp.mechanisms.items = names;
    resp.mechanisms.count = 0;
    for (int m = 0; m < SCRAM_MECH_COUNT; m++) {
        if (s->cfg.sasl_mechanisms & (1u << m)) {
            const char *n = scram_mech_name((enum scram_mech)m);
            names[resp.mechanisms.count++] = (struct kw_str){.ptr = n, .len = (int32_t)strlen(n)};
        }
    }
    resp.error_code = kafka_sasl_err(rc);
    if (rc == 0 && h->api_version == 0) {
        a->sasl_raw = true; /* the exchange follows in bare frames */
    }
    if (rc == -NG_EBADARG) {
        loop_req_close_after(req, rc);
    }
    kafka_serve_respond(req, h, &kafka_sasl_handshake_response_msg, &resp);
}

void kafka_sasl_authenticate(struct server *s, struct loop_req *req,
                             const struct kafka_req_header *h, struct rd *body, struct kw_arena *ar)
{
    struct kafka_sasl_authenticate_request r;
    int rc = kafka_sasl_authenticate_request_decode(body, h->api_version, ar, &r);
    struct conn_auth *a = rc == 0 ? conn_auth_get(req) : NULL;
    if (a == NULL || r.auth_bytes.len < 0 || a->sasl_raw) {
        loop_req_fail(req);
        return;
    }
    char out[SCRAM_MSG_BYTES_MAX];
    size_t out_len = 0;
    rc = step(s, req, a, r.auth_bytes.ptr, (size_t)r.auth_bytes.len, out, sizeof(out), &out_len);
    struct kafka_sasl_authenticate_response resp;
    kafka_sasl_authenticate_response_init(&resp);
    resp.error_code = kafka_sasl_err(rc);
    resp.auth_bytes = (struct kw_bytes){.ptr = (const uint8_t *)out, .len = (int32_t)out_len};
    if (rc != 0) {
        const char *msg = err_str(rc);
        resp.error_message = (struct kw_str){.ptr = msg, .len = (int32_t)strlen(msg)};
        loop_req_close_after(req, rc); /* Kafka closes after a failed login */
    }
    kafka_serve_respond(req, h, &kafka_sasl_authenticate_response_msg, &resp);
}

bool sasl_serve_kafka_raw(struct server *s, struct loop_req *req)
{
    struct conn_auth *a = loop_req_conn_ctx(req);
    if (a == NULL || !a->sasl_raw) {
        return false;
    }
    size_t len;
    const uint8_t *frame = loop_req_frame(req, &len);
    char out[SCRAM_MSG_BYTES_MAX];
    size_t out_len = 0;
    int rc = step(s, req, a, frame, len, out, sizeof(out), &out_len);
    if (a->sasl == CONN_SASL_DONE || rc != 0) {
        a->sasl_raw = false;
    }
    uint8_t *buf = NULL;
    if (rc != 0 || loop_resp_buf(req, out_len, &buf) != 0) {
        loop_req_fail(req); /* v0 has no error answer: Kafka closes */
        return true;
    }
    memcpy(buf, out, out_len);
    loop_req_respond(req, out_len);
    return true;
}
