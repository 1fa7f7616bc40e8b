/*
 * tests/test_tls.c — TLS on a real nagared (net/tls.h, net/conn_tls.c,
 * docs/security.md "TLS"): what openssl s_client sees, refusals (TLS 1.1,
 * plaintext, an untrusted client certificate), libnagare and kcat round
 * trips over TLS, certificate reload on SIGHUP, and hostile clients on a
 * TLS port. The certificates are made fresh for each test by
 * tests/tls_certs.sh ($NAGARE_TLS_CERTS) in the broker's directory.
 *
 * No assertion depends on timing: a refusal is the connection's end (EOF
 * or reset) read well within the socket's receive timeout, and the reload
 * is waited for by its log line.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "base/err.h"
#include "client/nagare.h"
#include "net/tls.h"
#include "tests/broker_support.h"

#define WAIT_MS 30000
#define RECV_TIMEOUT_MS 20000

static struct bk B;
static char set_cert[BK_PATH_BYTES + 32], set_key[BK_PATH_BYTES + 32], set_ca[BK_PATH_BYTES + 32];

static void setup(void) { bk_init(&B); }
static void teardown(void) { bk_fini(&B); }

TestSuite(tls, .init = setup, .fini = teardown, .timeout = 300);

/* B.root/name. */
static void path(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", B.root, name);
}

/* Makes the certificates in B.root and starts B with both listeners on
 * TLS (client certificates as auth says) plus any extra settings. The
 * broker's certificate is B.root/live.pem (a copy of server.pem), so a
 * test can replace it. */
static void start_tls(const char *auth, const char *const *extra)
{
    const char *script = getenv("NAGARE_TLS_CERTS");
    cr_assert(script != NULL, "set NAGARE_TLS_CERTS to tests/tls_certs.sh");
    char cmd[1024], out[256];
    snprintf(cmd, sizeof(cmd),
             "sh '%s' '%s' && cp '%s/server.pem' '%s/live.pem' && "
             "cp '%s/server.key' '%s/live.key'",
             script, B.root, B.root, B.root, B.root, B.root);
    cr_assert_eq(bk_run(cmd, out, sizeof(out)), 0, "making certificates");
    snprintf(set_cert, sizeof(set_cert), "tls_cert_file=%s/live.pem", B.root);
    snprintf(set_key, sizeof(set_key), "tls_key_file=%s/live.key", B.root);
    snprintf(set_ca, sizeof(set_ca), "tls_ca_file=%s/ca.pem", B.root);
    static char set_auth[64];
    snprintf(set_auth, sizeof(set_auth), "tls_client_auth=%s", auth);
    bk_set(&B, "listen_tls=true");
    bk_set(&B, "kafka_listen_tls=true");
    bk_set(&B, set_cert);
    bk_set(&B, set_key);
    bk_set(&B, set_ca);
    bk_set(&B, set_auth);
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++) {
        bk_set(&B, extra[i]);
    }
    bk_start(&B);
}

/* The TLS settings of a libnagare client trusting the test CA, with the
 * client certificate `who` ("client", "rogue") or none (NULL). The paths
 * live in static buffers: one client's settings at a time. */
static struct nagare_tls client_tls(const char *who)
{
    static char ca[BK_PATH_BYTES], cert[BK_PATH_BYTES], key[BK_PATH_BYTES];
    path(ca, sizeof(ca), "ca.pem");
    struct nagare_tls t = {.enabled = true, .ca_file = ca};
    if (who != NULL) {
        snprintf(cert, sizeof(cert), "%s/%s.pem", B.root, who);
        snprintf(key, sizeof(key), "%s/%s.key", B.root, who);
        t.cert_file = cert;
        t.key_file = key;
    }
    return t;
}

/* ---- a raw TLS client: OpenSSL on a blocking socket ---- */

struct tc {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
};

static int tcp_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct timeval tv = {.tv_sec = RECV_TIMEOUT_MS / 1000};
    cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "connect: %s",
                 strerror(errno));
    return fd;
}

/* Connects to port and runs the handshake as a client trusting the test
 * CA (with client certificate who, or none). Returns SSL_connect's result
 * (1: done); t holds what was made either way (tc_close()). */
static int tc_open(struct tc *t, uint16_t port, const char *who)
{
    struct nagare_tls nt = client_tls(who);
    struct tls_client_cfg cfg = {
        .ca_file = nt.ca_file, .cert_file = nt.cert_file, .key_file = nt.key_file};
    char err[256];
    cr_assert_eq(tls_client_ctx(&cfg, &t->ctx, err, sizeof(err)), 0, "%s", err);
    t->ssl = tls_client_session(t->ctx, "127.0.0.1");
    cr_assert(t->ssl != NULL);
    t->fd = tcp_connect(port);
    cr_assert_eq(tls_set_socket(t->ssl, t->fd), 0);
    return SSL_connect(t->ssl);
}

static void tc_close(struct tc *t)
{
    SSL_free(t->ssl);
    SSL_CTX_free(t->ctx);
    if (t->fd >= 0) {
        close(t->fd);
    }
    *t = (struct tc){.fd = -1};
}

static bool ssl_read_all(SSL *ssl, uint8_t *p, size_t n)
{
    for (size_t got = 0; got < n;) {
        int r = SSL_read(ssl, p + got, (int)(n - got));
        if (r <= 0) {
            return false;
        }
        got += (size_t)r;
    }
    return true;
}

/* One ApiVersions request and its answer on t. Returns 0, or -1 when the
 * connection failed (the broker closed it, a TLS alert). */
static int tc_api_versions(struct tc *t, uint32_t corr)
{
    uint8_t req[128];
    struct wr w = wr_make(req, sizeof(req));
    cr_assert_eq(proto_api_versions_req_encode(&w, 0, corr, proto_str_make("test_tls")), 0);
    if (SSL_write(t->ssl, req, (int)w.pos) != (int)w.pos) {
        return -1;
    }
    uint8_t prefix[4];
    static uint8_t body[1 << 16];
    if (!ssl_read_all(t->ssl, prefix, 4)) {
        return -1;
    }
    uint32_t len = get_be32(prefix);
    cr_assert_leq(len, sizeof(body));
    if (!ssl_read_all(t->ssl, body, len)) {
        return -1;
    }
    struct rd r = rd_make(body, len);
    struct proto_resp_header h;
    cr_assert_eq(proto_resp_header_decode(&r, &h), 0);
    cr_assert_eq(h.correlation_id, corr);
    cr_assert_eq(h.err, 0);
    return 0;
}

/* The subject of the certificate t's server showed (RFC 2253). */
static void tc_server_subject(struct tc *t, char *out, size_t cap)
{
    X509 *cert = SSL_get0_peer_certificate(t->ssl);
    cr_assert(cert != NULL);
    X509_NAME_oneline(X509_get_subject_name(cert), out, (int)cap);
}

/* Waits until the connection on fd ends (EOF or reset), reading and
 * dropping whatever comes first. false when the receive timed out. */
static bool closed_by_peer(int fd)
{
    uint8_t buf[4096];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET)) {
            return true;
        }
        if (n < 0 && errno != EINTR) {
            return false; /* EAGAIN: the receive timeout */
        }
    }
}

/* ---- openssl s_client ---- */

static int s_client(const char *opts, char *out, size_t cap)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "openssl s_client -connect 127.0.0.1:%u -CAfile '%s/ca.pem' -verify_ip 127.0.0.1 %s "
             "</dev/null 2>&1",
             B.port, B.root, opts);
    return bk_run(cmd, out, cap);
}

Test(tls, s_client_sees_tls_1_3_and_a_verified_certificate)
{
    start_tls("none", NULL);
    static char out[1 << 16];
    int st = s_client("-verify_return_error", out, sizeof(out));
    cr_assert_eq(st, 0, "s_client failed:\n%s", out);
    /* The handshake's own line: the session block ("Protocol  :") comes
     * only if the session tickets arrive before s_client quits. */
    cr_assert(strstr(out, "New, TLSv1.3, Cipher is") != NULL, "not TLS 1.3:\n%s", out);
    cr_assert(strstr(out, "Verify return code: 0 (ok)") != NULL, "not verified:\n%s", out);
    cr_assert(strstr(out, "CN = nagare-test-server") != NULL, "%s", out);
    /* TLS 1.2 is still spoken */
    st = s_client("-tls1_2 -verify_return_error", out, sizeof(out));
    cr_assert_eq(st, 0, "TLS 1.2 refused:\n%s", out);
    cr_assert(strstr(out, "New, TLSv1.2, Cipher is") != NULL, "%s", out);
    bk_stop(&B);
}

Test(tls, tls_1_1_is_refused_at_once)
{
    start_tls("none", NULL);
    static char out[1 << 16];
    /* @SECLEVEL=0 lets this OpenSSL offer TLS 1.1 at all: the broker must
     * be the one that refuses. */
    int st = s_client("-tls1_1 -cipher DEFAULT@SECLEVEL=0", out, sizeof(out));
    cr_assert_neq(st, 0, "TLS 1.1 accepted:\n%s", out);
    cr_assert(strstr(out, "Cipher is (NONE)") != NULL, "a cipher was agreed:\n%s", out);
    cr_assert(strstr(out, "alert protocol version") != NULL, "no alert came:\n%s", out);
    size_t len;
    char *log = bk_read_file(B.log_path, &len);
    cr_assert(strstr(log, "unsupported protocol") != NULL, "the broker did not refuse it");
    free(log);
    bk_stop(&B);
}

Test(tls, plaintext_nagare_request_on_a_tls_port_is_closed_at_once)
{
    start_tls("none", NULL);
    int fd = tcp_connect(B.port);
    uint8_t req[128];
    struct wr w = wr_make(req, sizeof(req));
    cr_assert_eq(proto_api_versions_req_encode(&w, 0, 1, proto_str_make("plain")), 0);
    cr_assert_eq(send(fd, req, w.pos, MSG_NOSIGNAL), (ssize_t)w.pos);
    cr_assert(closed_by_peer(fd), "the broker kept a plaintext client on its TLS port");
    close(fd);
    /* the Kafka listener too */
    fd = tcp_connect(B.kafka_port);
    cr_assert_eq(send(fd, req, w.pos, MSG_NOSIGNAL), (ssize_t)w.pos);
    cr_assert(closed_by_peer(fd), "the Kafka TLS listener kept a plaintext client");
    close(fd);
    bk_stop(&B);
}

Test(tls, garbage_before_the_client_hello_is_closed_at_once)
{
    start_tls("none", NULL);
    static const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n\x16\x03\x01\x02\x00";
    int fd = tcp_connect(B.port);
    cr_assert_eq(send(fd, junk, sizeof(junk) - 1, MSG_NOSIGNAL), (ssize_t)(sizeof(junk) - 1));
    cr_assert(closed_by_peer(fd));
    close(fd);
    struct tc t;
    cr_assert_eq(tc_open(&t, B.port, NULL), 1, "a good client after the garbage");
    cr_assert_eq(tc_api_versions(&t, 7), 0);
    tc_close(&t);
    bk_stop(&B);
}

Test(tls, untrusted_client_certificate_fails_the_handshake_when_required)
{
    start_tls("required", (const char *const[]){"log_level=debug", NULL});
    /* s_client with a certificate from another CA */
    char opts[512];
    static char out[1 << 16];
    snprintf(opts, sizeof(opts), "-cert '%s/rogue.pem' -key '%s/rogue.key'", B.root, B.root);
    (void)s_client(opts, out, sizeof(out));
    size_t len;
    char *log = bk_read_file(B.log_path, &len);
    cr_assert(strstr(log, "handshake failed") != NULL, "no failed handshake logged:\n%s", out);
    free(log);
    /* A raw client: in TLS 1.3 its side of the handshake ends before the
     * broker checks its certificate, so the refusal is the alert that
     * ends its first read. */
    struct tc t;
    (void)tc_open(&t, B.port, "rogue");
    cr_assert_neq(tc_api_versions(&t, 1), 0, "a rogue certificate was served");
    tc_close(&t);
    /* no certificate at all: refused too */
    (void)tc_open(&t, B.port, NULL);
    cr_assert_neq(tc_api_versions(&t, 2), 0, "a client without a certificate was served");
    tc_close(&t);
    /* libnagare says why */
    struct nagare_tls rogue = client_tls("rogue");
    nagare_admin *a = NULL;
    int rc = nagare_admin_new_tls(B.bootstrap, WAIT_MS, &rogue, &a);
    cr_assert_eq(rc, -NAGARE_ETLS, "rogue admin: %s", nagare_strerror(rc));
    /* the good certificate is served, and names the principal */
    cr_assert_eq(tc_open(&t, B.port, "client"), 1);
    cr_assert_eq(tc_api_versions(&t, 3), 0);
    tc_close(&t);
    log = bk_read_file(B.log_path, &len);
    cr_assert(strstr(log, "principal User:CN=alice,O=nagare-test") != NULL,
              "the client certificate's subject is not the principal");
    free(log);
    bk_stop(&B);
}

/* ---- libnagare ---- */

struct reports {
    uint32_t ok, failed;
};

static void on_delivery(const struct nagare_delivery *d, void *opaque)
{
    struct reports *r = opaque;
    if (d->err == 0) {
        r->ok++;
    } else {
        r->failed++;
    }
}

/* Record i's value: small ones and, every 7th, one of 300 KiB (bigger than
 * a TLS round and many records), in a pattern of i. */
static size_t value_of(uint32_t i, uint8_t *buf, size_t cap)
{
    size_t n = i % 7 == 3 ? (300u << 10) + i : 10 + i % 100;
    cr_assert_leq(n, cap);
    for (size_t k = 0; k < n; k++) {
        buf[k] = (uint8_t)(i * 31 + k * 7 + (k >> 9));
    }
    return n;
}

static void round_trip(const char *topic, uint32_t count, const char *who)
{
    static uint8_t val[400u << 10], want[400u << 10];
    struct nagare_producer_config pc;
    nagare_producer_config_default(&pc);
    pc.bootstrap = B.bootstrap;
    pc.on_delivery = on_delivery;
    struct reports r = {0};
    pc.opaque = &r;
    pc.tls = client_tls(who);
    nagare_producer *p;
    int rc = nagare_producer_new(&pc, &p);
    cr_assert_eq(rc, 0, "producer: %s", nagare_strerror(rc));
    for (uint32_t i = 0; i < count; i++) {
        size_t n = value_of(i, val, sizeof(val));
        struct nagare_record rec = {
            .topic = topic, .partition = 0, .key_len = -1, .value = val, .value_len = (ssize_t)n};
        while ((rc = nagare_send(p, &rec)) == -NAGARE_EBUSY) {
            cr_assert_geq(nagare_producer_poll(p, 100), 0);
        }
        cr_assert_eq(rc, 0, "send: %s", nagare_strerror(rc));
    }
    rc = nagare_producer_flush(p, 120000);
    cr_assert_eq(rc, 0, "flush: %s", nagare_strerror(rc));
    cr_assert_eq(r.ok, count);
    cr_assert_eq(r.failed, 0);
    nagare_producer_destroy(p);

    struct nagare_consumer_config cc;
    nagare_consumer_config_default(&cc);
    cc.bootstrap = B.bootstrap;
    cc.tls = client_tls(who);
    nagare_consumer *k;
    rc = nagare_consumer_new(&cc, &k);
    cr_assert_eq(rc, 0, "consumer: %s", nagare_strerror(rc));
    cr_assert_eq(nagare_consumer_assign(k, topic, 0, NAGARE_OFFSET_BEGINNING), 0);
    for (uint32_t i = 0; i < count; i++) {
        const struct nagare_message *m = NULL;
        rc = nagare_consumer_poll(k, WAIT_MS, &m);
        cr_assert_eq(rc, 1, "poll %u: %d %s", i, rc, rc < 0 ? nagare_strerror(rc) : "nothing");
        cr_assert_eq(m->offset, (int64_t)i);
        size_t n = value_of(i, want, sizeof(want));
        cr_assert_eq((size_t)m->value_len, n, "record %u: length", i);
        cr_assert(memcmp(m->value, want, n) == 0, "record %u differs", i);
    }
    nagare_consumer_destroy(k);
}

Test(tls, libnagare_round_trip_of_big_and_small_records)
{
    start_tls("requested", NULL);
    round_trip("tls-rt", 120, NULL);
    round_trip("tls-rt-mtls", 30, "client"); /* a client certificate, when asked for */
    /* the consumer's fetches came from the log files: the copy path */
    bk_stop(&B);
}

Test(tls, plaintext_client_against_tls_and_tls_client_against_plaintext_fail_clearly)
{
    start_tls("none", NULL);
    nagare_admin *a = NULL;
    int rc = nagare_admin_new(B.bootstrap, WAIT_MS, &a);
    cr_assert_lt(rc, 0, "a plaintext admin was served on the TLS port");
    /* a certificate nobody vouches for: the system's CAs do not know it */
    struct nagare_tls sys = {.enabled = true};
    rc = nagare_admin_new_tls(B.bootstrap, WAIT_MS, &sys, &a);
    cr_assert_eq(rc, -NAGARE_ETLS, "%s", nagare_strerror(rc));
    /* the name must match: the certificate is for 127.0.0.1 and localhost */
    struct nagare_tls named = client_tls(NULL);
    named.server_name = "broker.example.com";
    rc = nagare_admin_new_tls(B.bootstrap, WAIT_MS, &named, &a);
    cr_assert_eq(rc, -NAGARE_ETLS, "%s", nagare_strerror(rc));
    named.server_name = "localhost";
    rc = nagare_admin_new_tls(B.bootstrap, WAIT_MS, &named, &a);
    cr_assert_eq(rc, 0, "%s", nagare_strerror(rc));
    nagare_admin_destroy(a);
    bk_stop(&B);
}

/* ---- the nagare tool ---- */

Test(tls, the_cli_produces_and_consumes_with_its_tls_flags_or_environment)
{
    const char *cli = getenv("NAGARE");
    cr_assert(cli != NULL, "set NAGARE to the nagare tool");
    start_tls("none", NULL);
    char cmd[2048];
    static char out[1 << 14];
    /* the flags after the command's name */
    snprintf(cmd, sizeof(cmd),
             "printf 'a\\nb\\nc\\n' | '%s' produce --broker %s --tls-ca '%s/ca.pem' cli-tls 2>&1",
             cli, B.bootstrap, B.root);
    cr_assert_eq(bk_run(cmd, out, sizeof(out)), 0, "produce: %s", out);
    /* the environment */
    snprintf(cmd, sizeof(cmd),
             "NAGARE_TLS_CA='%s/ca.pem' '%s' --broker %s consume cli-tls --from beginning "
             "--count 3",
             B.root, cli, B.bootstrap);
    cr_assert_eq(bk_run(cmd, out, sizeof(out)), 0, "consume: %s", out);
    cr_assert_str_eq(out, "a\nb\nc\n");
    /* plaintext against the TLS port, and TLS trusting only the system's
     * CAs: both fail, the second saying why */
    snprintf(cmd, sizeof(cmd), "'%s' --broker %s topic list 2>&1", cli, B.bootstrap);
    cr_assert_eq(bk_run(cmd, out, sizeof(out)), 1, "%s", out);
    snprintf(cmd, sizeof(cmd), "'%s' --tls --broker %s topic list 2>&1", cli, B.bootstrap);
    cr_assert_eq(bk_run(cmd, out, sizeof(out)), 1, "%s", out);
    cr_assert(strstr(out, "TLS handshake failed") != NULL, "%s", out);
    snprintf(cmd, sizeof(cmd), "'%s' --broker %s topic list --tls-ca 2>&1", cli, B.bootstrap);
    cr_assert_eq(bk_run(cmd, out, sizeof(out)), 2, "a flag without its value: %s", out);
    bk_stop(&B);
}

/* ---- kcat ---- */

Test(tls, kcat_produces_and_consumes_on_the_kafka_tls_listener)
{
    char out[4096];
    if (bk_run("command -v kcat >/dev/null", out, sizeof(out)) != 0) {
        cr_skip_test("kcat is not installed (./dev.sh installs it)");
    }
    start_tls("none", NULL);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "printf 'one\\ntwo\\nthree\\n' | kcat -b 127.0.0.1:%u -X security.protocol=ssl "
             "-X ssl.ca.location='%s/ca.pem' -t kcat-tls -P 2>&1",
             B.kafka_port, B.root);
    cr_assert_eq(bk_run(cmd, out, sizeof(out)), 0, "kcat produce: %s", out);
    snprintf(cmd, sizeof(cmd),
             "kcat -b 127.0.0.1:%u -X security.protocol=ssl -X ssl.ca.location='%s/ca.pem' "
             "-t kcat-tls -C -o beginning -c 3 -e -q",
             B.kafka_port, B.root);
    cr_assert_eq(bk_run(cmd, out, sizeof(out)), 0, "kcat consume: %s", out);
    cr_assert_str_eq(out, "one\ntwo\nthree\n");
    bk_stop(&B);
}

/* ---- certificate reload ---- */

/* Waits for the reload's log line (after byte from). */
static bool reload_logged(size_t from, const char *what)
{
    for (int64_t deadline = clock_mono_ms() + WAIT_MS; clock_mono_ms() < deadline;) {
        size_t len;
        char *log = bk_read_file(B.log_path, &len);
        bool hit = len > from && strstr(log + from, what) != NULL;
        free(log);
        if (hit) {
            return true;
        }
        usleep(20000);
    }
    return false;
}

static size_t log_size(void)
{
    size_t len;
    free(bk_read_file(B.log_path, &len));
    return len;
}

Test(tls, sighup_reloads_the_certificate_for_new_connections_and_keeps_old_ones)
{
    start_tls("none", NULL);
    struct tc old;
    cr_assert_eq(tc_open(&old, B.port, NULL), 1);
    cr_assert_eq(tc_api_versions(&old, 1), 0);
    char subject[256];
    tc_server_subject(&old, subject, sizeof(subject));
    cr_assert(strstr(subject, "CN=nagare-test-server") != NULL && !strstr(subject, "server-2"));

    /* a bad certificate file first: logged, the old one kept */
    char cmd[1024], out[256];
    snprintf(cmd, sizeof(cmd), "echo garbage > '%s/live.pem'", B.root);
    cr_assert_eq(bk_run(cmd, out, sizeof(out)), 0);
    size_t from = log_size();
    cr_assert_eq(kill(B.pid, SIGHUP), 0);
    cr_assert(reload_logged(from, "the listeners keep their certificate"));
    struct tc t;
    cr_assert_eq(tc_open(&t, B.port, NULL), 1, "the old certificate was not kept");
    tc_server_subject(&t, subject, sizeof(subject));
    cr_assert(strstr(subject, "server-2") == NULL);
    tc_close(&t);

    /* then the new one */
    snprintf(cmd, sizeof(cmd),
             "cp '%s/server2.pem' '%s/live.pem' && cp '%s/server2.key' '%s/live.key'", B.root,
             B.root, B.root, B.root);
    cr_assert_eq(bk_run(cmd, out, sizeof(out)), 0);
    from = log_size();
    cr_assert_eq(kill(B.pid, SIGHUP), 0);
    cr_assert(reload_logged(from, "TLS: certificate reloaded"));
    cr_assert_eq(tc_open(&t, B.port, NULL), 1);
    tc_server_subject(&t, subject, sizeof(subject));
    cr_assert(strstr(subject, "CN=nagare-test-server-2") != NULL, "new connection: %s", subject);
    cr_assert_eq(tc_api_versions(&t, 2), 0);
    tc_close(&t);
    /* the connection from before still works, on its old certificate */
    cr_assert_eq(tc_api_versions(&old, 3), 0);
    tc_close(&old);
    bk_stop(&B);
}

/* ---- hostile clients ---- */

Test(tls, a_handshake_never_finished_is_closed_after_its_deadline)
{
    start_tls("none", (const char *const[]){"tls_handshake_timeout_ms=500", NULL});
    /* a ClientHello's record header and a few bytes of it, then nothing */
    static const uint8_t part[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01};
    int fd = tcp_connect(B.port);
    cr_assert_eq(send(fd, part, sizeof(part), MSG_NOSIGNAL), (ssize_t)sizeof(part));
    int idle = tcp_connect(B.port); /* says nothing at all */
    /* meanwhile a client is served */
    struct tc t;
    cr_assert_eq(tc_open(&t, B.port, NULL), 1);
    cr_assert_eq(tc_api_versions(&t, 1), 0);
    cr_assert(closed_by_peer(fd), "a stalled handshake was kept");
    cr_assert(closed_by_peer(idle), "a silent connection was kept");
    close(fd);
    close(idle);
    /* one that finished its handshake is not closed by that deadline */
    cr_assert_eq(tc_api_versions(&t, 2), 0);
    tc_close(&t);
    bk_stop(&B);
}

Test(tls, a_thousand_half_open_handshakes_do_not_stop_other_clients)
{
    enum { HALF_OPEN = 1000 };
    struct rlimit rl;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < HALF_OPEN + 256 && rl.rlim_max >= HALF_OPEN + 256) {
        rl.rlim_cur = rl.rlim_max;
        cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    if (rl.rlim_cur < HALF_OPEN + 256) {
        cr_skip_test("descriptor limit %llu is too low", (unsigned long long)rl.rlim_cur);
    }
    start_tls("none", NULL);
    static int fds[HALF_OPEN];
    static const uint8_t part[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01};
    for (int i = 0; i < HALF_OPEN; i++) {
        fds[i] = tcp_connect(B.port);
        cr_assert_eq(send(fds[i], part, sizeof(part), MSG_NOSIGNAL), (ssize_t)sizeof(part));
    }
    round_trip("tls-busy", 40, NULL);
    for (int i = 0; i < HALF_OPEN; i++) {
        close(fds[i]);
    }
    bk_stop(&B);
}
