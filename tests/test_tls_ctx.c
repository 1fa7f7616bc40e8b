/*
 * tests/test_tls_ctx.c — net/tls.h: contexts from files (and the errors
 * that name the file that does not load), TLS 1.2 as the floor, the host
 * name check, the verified peer's subject, and the kernel TLS probe. Two
 * sessions talk over a socketpair in this process; the certificates come
 * from tests/tls_certs.sh ($NAGARE_TLS_CERTS).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "base/err.h"
#include "net/tls.h"

static char dir[64];
static char err[512];

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/nagare-tls-XXXXXX");
    cr_assert(mkdtemp(dir) != NULL);
    const char *script = getenv("NAGARE_TLS_CERTS");
    cr_assert(script != NULL, "set NAGARE_TLS_CERTS to tests/tls_certs.sh");
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "sh '%s' '%s' >/dev/null 2>&1", script, dir);
    cr_assert_eq(system(cmd), 0);
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(tls_ctx, .init = setup, .fini = teardown, .timeout = 60);

static const char *f(const char *name)
{
    static char paths[4][128];
    static int next;
    char *p = paths[next++ % 4];
    snprintf(p, 128, "%s/%s", dir, name);
    return p;
}

static SSL_CTX *server(enum tls_client_auth auth)
{
    struct tls_server_cfg cfg = {.cert_file = f("server.pem"),
                                 .key_file = f("server.key"),
                                 .ca_file = f("ca.pem"),
                                 .client_auth = auth};
    SSL_CTX *ctx = NULL;
    cr_assert_eq(tls_server_ctx(&cfg, &ctx, err, sizeof(err)), 0, "%s", err);
    return ctx;
}

static SSL_CTX *client(const char *who)
{
    char cert[32], key[32];
    snprintf(cert, sizeof(cert), "%s.pem", who != NULL ? who : "");
    snprintf(key, sizeof(key), "%s.key", who != NULL ? who : "");
    struct tls_client_cfg cfg = {.ca_file = f("ca.pem")};
    if (who != NULL) {
        cfg.cert_file = f(cert);
        cfg.key_file = f(key);
    }
    SSL_CTX *ctx = NULL;
    cr_assert_eq(tls_client_ctx(&cfg, &ctx, err, sizeof(err)), 0, "%s", err);
    return ctx;
}

struct side {
    SSL *ssl;
    int rc; /* SSL_accept's or SSL_connect's, then the exchange's */
};

static void *accept_side(void *arg)
{
    struct side *s = arg;
    s->rc = SSL_accept(s->ssl);
    if (s->rc == 1) {
        char b;
        s->rc = SSL_read(s->ssl, &b, 1) == 1 && SSL_write(s->ssl, "y", 1) == 1 ? 1 : 0;
    }
    return NULL;
}

/* A handshake and one byte each way between a server of sctx and a client
 * session c over a socketpair. Returns whether both sides made it; *srv
 * keeps the server's session (caller frees). */
static bool talk(SSL_CTX *sctx, SSL *c, SSL **srv)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct side s = {.ssl = SSL_new(sctx)};
    cr_assert(s.ssl != NULL);
    cr_assert_eq(tls_set_socket(s.ssl, sv[0]), 0);
    cr_assert_eq(tls_set_socket(c, sv[1]), 0);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, accept_side, &s), 0);
    char b = 0;
    bool ok = SSL_connect(c) == 1 && SSL_write(c, "x", 1) == 1 && SSL_read(c, &b, 1) == 1;
    if (!ok) {
        shutdown(sv[1], SHUT_RDWR); /* the server side must not wait for more */
    }
    pthread_join(t, NULL);
    close(sv[0]);
    close(sv[1]);
    *srv = s.ssl;
    return ok && s.rc == 1 && b == 'y';
}

Test(tls_ctx, files_that_do_not_load_are_named)
{
    SSL_CTX *ctx = NULL;
    struct tls_server_cfg cfg = {.cert_file = f("missing.pem"), .key_file = f("server.key")};
    cr_assert_eq(tls_server_ctx(&cfg, &ctx, err, sizeof(err)), -NG_EBADARG);
    cr_assert(strstr(err, "missing.pem") != NULL, "%s", err);
    cfg = (struct tls_server_cfg){.cert_file = f("server.pem"), .key_file = f("client.key")};
    cr_assert_eq(tls_server_ctx(&cfg, &ctx, err, sizeof(err)), -NG_EBADARG);
    cr_assert(strstr(err, "client.key") != NULL, "%s", err); /* and OpenSSL says it mismatches */
    cfg = (struct tls_server_cfg){.cert_file = f("server.pem"),
                                  .key_file = f("server.key"),
                                  .client_auth = TLS_CLIENT_AUTH_REQUIRED};
    cr_assert_eq(tls_server_ctx(&cfg, &ctx, err, sizeof(err)), -NG_EBADARG);
    cr_assert(strstr(err, "CA") != NULL, "%s", err);
    cfg = (struct tls_server_cfg){.key_file = f("server.key")};
    cr_assert_eq(tls_server_ctx(&cfg, &ctx, err, sizeof(err)), -NG_EBADARG);
    struct tls_client_cfg cc = {.ca_file = f("nope.pem")};
    cr_assert_eq(tls_client_ctx(&cc, &ctx, err, sizeof(err)), -NG_EBADARG);
    cr_assert(strstr(err, "nope.pem") != NULL, "%s", err);
    cr_assert(ctx == NULL);
}

Test(tls_ctx, tls_1_2_is_the_floor_and_1_3_what_is_spoken)
{
    SSL_CTX *s = server(TLS_CLIENT_AUTH_NONE);
    SSL_CTX *c = client(NULL);
    cr_assert_eq(SSL_CTX_get_min_proto_version(s), TLS1_2_VERSION);
    cr_assert_eq(SSL_CTX_get_min_proto_version(c), TLS1_2_VERSION);
    SSL *cs = tls_client_session(c, "127.0.0.1");
    SSL *ss = NULL;
    cr_assert(talk(s, cs, &ss));
    cr_assert_eq(SSL_version(cs), TLS1_3_VERSION);
    SSL_free(cs);
    SSL_free(ss);
    /* a client that offers at most TLS 1.1 is refused */
    cs = tls_client_session(c, "127.0.0.1");
    cr_assert_eq(SSL_set_min_proto_version(cs, TLS1_VERSION), 1);
    cr_assert_eq(SSL_set_max_proto_version(cs, TLS1_1_VERSION), 1);
    SSL_set_security_level(cs, 0);
    cr_assert(!talk(s, cs, &ss));
    SSL_free(cs);
    SSL_free(ss);
    SSL_CTX_free(s);
    SSL_CTX_free(c);
}

Test(tls_ctx, the_client_checks_the_servers_name)
{
    SSL_CTX *s = server(TLS_CLIENT_AUTH_NONE);
    SSL_CTX *c = client(NULL);
    static const char *const good[] = {"127.0.0.1", "localhost", "::1"};
    for (size_t i = 0; i < 3; i++) {
        SSL *cs = tls_client_session(c, good[i]), *ss = NULL;
        cr_assert(talk(s, cs, &ss), "%s refused", good[i]);
        SSL_free(cs);
        SSL_free(ss);
    }
    static const char *const bad[] = {"127.0.0.2", "broker.example.com"};
    for (size_t i = 0; i < 2; i++) {
        SSL *cs = tls_client_session(c, bad[i]), *ss = NULL;
        cr_assert(!talk(s, cs, &ss), "%s accepted", bad[i]);
        SSL_free(cs);
        SSL_free(ss);
    }
    SSL_CTX_free(s);
    SSL_CTX_free(c);
}

Test(tls_ctx, the_verified_client_certificate_names_its_subject)
{
    SSL_CTX *s = server(TLS_CLIENT_AUTH_REQUESTED);
    SSL_CTX *c = client("client");
    SSL *cs = tls_client_session(c, "127.0.0.1"), *ss = NULL;
    cr_assert(talk(s, cs, &ss));
    char subject[TLS_SUBJECT_BYTES_MAX];
    cr_assert_eq(tls_peer_subject(ss, subject, sizeof(subject)), 0);
    cr_assert_str_eq(subject, "CN=alice,O=nagare-test");
    char tiny[8];
    cr_assert_eq(tls_peer_subject(ss, tiny, sizeof(tiny)), -NG_ETOOBIG);
    SSL_free(cs);
    SSL_free(ss);
    SSL_CTX_free(c);
    /* requested: no certificate is fine, and names nobody */
    c = client(NULL);
    cs = tls_client_session(c, "127.0.0.1");
    cr_assert(talk(s, cs, &ss));
    cr_assert_eq(tls_peer_subject(ss, subject, sizeof(subject)), -ENOENT);
    SSL_free(cs);
    SSL_free(ss);
    SSL_CTX_free(c);
    /* a certificate another CA signed fails the handshake */
    c = client("rogue");
    cs = tls_client_session(c, "127.0.0.1");
    cr_assert(!talk(s, cs, &ss));
    SSL_free(cs);
    SSL_free(ss);
    SSL_CTX_free(c);
    SSL_CTX_free(s);
}

Test(tls_ctx, the_kernel_tls_probe_says_why)
{
    char why[192];
    bool have = tls_ktls_probe(why, sizeof(why));
    cr_assert(strstr(why, have ? "present but unused" : "unavailable") != NULL, "%s", why);
}
