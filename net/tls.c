/*
 * net/tls.c — TLS contexts and helpers (net/tls.h).
 */
#include "net/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "base/err.h"

const char *const tls_client_auth_names[3] = {
    [TLS_CLIENT_AUTH_NONE] = "none",
    [TLS_CLIENT_AUTH_REQUESTED] = "requested",
    [TLS_CLIENT_AUTH_REQUIRED] = "required",
};

/* Session ids a server context hands out are tied to this context name, so
 * a resumed session keeps its verified client certificate (OpenSSL refuses
 * resumption with client verification when it is unset). */
static const unsigned char session_ctx_id[] = "nagare";

static bool given(const char *s) { return s != NULL && s[0] != '\0'; }

void tls_err_take(char *out, size_t cap)
{
    ASSERT(cap > 0);
    unsigned long e = ERR_get_error();
    if (e == 0) {
        snprintf(out, cap, "no detail");
        return;
    }
    ERR_error_string_n(e, out, cap);
    ERR_clear_error(); /* the rest only repeats it */
}

/* -NG_EBADARG with "what FILE: OpenSSL's reason" in err. */
static int ctx_fail(SSL_CTX *ctx, const char *what, const char *file, char *err, size_t err_cap)
{
    char why[256];
    tls_err_take(why, sizeof(why));
    if (err_cap > 0) {
        snprintf(err, err_cap, "%s%s%s: %s", what, file != NULL ? " " : "",
                 file != NULL ? file : "", why);
    }
    SSL_CTX_free(ctx);
    return -NG_EBADARG;
}

/* The settings both sides share: TLS 1.2 and 1.3 only, no renegotiation,
 * buffers released while idle. */
static SSL_CTX *ctx_new(const SSL_METHOD *method)
{
    SSL_CTX *ctx = SSL_CTX_new(method);
    if (ctx == NULL) {
        return NULL;
    }
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    return ctx;
}

int tls_server_ctx(const struct tls_server_cfg *cfg, SSL_CTX **out, char *err, size_t err_cap)
{
    ASSERT(cfg != NULL && out != NULL);
    ERR_clear_error();
    if (!given(cfg->cert_file) || !given(cfg->key_file)) {
        snprintf(err, err_cap, "a TLS listener needs a certificate and its key");
        return -NG_EBADARG;
    }
    if (cfg->client_auth != TLS_CLIENT_AUTH_NONE && !given(cfg->ca_file)) {
        snprintf(err, err_cap, "client certificates (%s) need a CA file to check them against",
                 tls_client_auth_names[cfg->client_auth]);
        return -NG_EBADARG;
    }
    SSL_CTX *ctx = ctx_new(TLS_server_method());
    if (ctx == NULL) {
        return ctx_fail(NULL, "TLS context", NULL, err, err_cap);
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->cert_file) != 1) {
        return ctx_fail(ctx, "certificate", cfg->cert_file, err, err_cap);
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg->key_file, SSL_FILETYPE_PEM) != 1) {
        return ctx_fail(ctx, "private key", cfg->key_file, err, err_cap);
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        return ctx_fail(ctx, "private key (does not match the certificate)", cfg->key_file, err,
                        err_cap);
    }
    if (SSL_CTX_set_session_id_context(ctx, session_ctx_id, sizeof(session_ctx_id) - 1) != 1) {
        return ctx_fail(ctx, "TLS context", NULL, err, err_cap);
    }
    if (cfg->client_auth != TLS_CLIENT_AUTH_NONE) {
        if (SSL_CTX_load_verify_locations(ctx, cfg->ca_file, NULL) != 1) {
            return ctx_fail(ctx, "CA file", cfg->ca_file, err, err_cap);
        }
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->ca_file);
        if (names == NULL) {
            return ctx_fail(ctx, "CA file", cfg->ca_file, err, err_cap);
        }
        SSL_CTX_set_client_CA_list(ctx, names);
        int mode = SSL_VERIFY_PEER;
        if (cfg->client_auth == TLS_CLIENT_AUTH_REQUIRED) {
            mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        }
        SSL_CTX_set_verify(ctx, mode, NULL);
    }
    *out = ctx;
    return 0;
}

int tls_client_ctx(const struct tls_client_cfg *cfg, SSL_CTX **out, char *err, size_t err_cap)
{
    ASSERT(cfg != NULL && out != NULL);
    ERR_clear_error();
    SSL_CTX *ctx = ctx_new(TLS_client_method());
    if (ctx == NULL) {
        return ctx_fail(NULL, "TLS context", NULL, err, err_cap);
    }
    if (given(cfg->ca_file)) {
        if (SSL_CTX_load_verify_locations(ctx, cfg->ca_file, NULL) != 1) {
            return ctx_fail(ctx, "CA file", cfg->ca_file, err, err_cap);
        }
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        return ctx_fail(ctx, "the system's CA store", NULL, err, err_cap);
    }
    if (given(cfg->cert_file)) {
        const char *key = given(cfg->key_file) ? cfg->key_file : cfg->cert_file;
        if (SSL_CTX_use_certificate_chain_file(ctx, cfg->cert_file) != 1) {
            return ctx_fail(ctx, "client certificate", cfg->cert_file, err, err_cap);
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(ctx) != 1) {
            return ctx_fail(ctx, "client key", key, err, err_cap);
        }
    }
    SSL_CTX_set_verify(ctx, cfg->no_verify ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
    *out = ctx;
    return 0;
}

SSL *tls_client_session(SSL_CTX *ctx, const char *host)
{
    ASSERT(ctx != NULL && host != NULL);
    SSL *ssl = SSL_new(ctx);
    if (ssl == NULL) {
        return NULL;
    }
    SSL_set_connect_state(ssl);
    unsigned char addr[16];
    bool numeric = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
    bool ok = true;
    if (!numeric) {
        /* SNI carries names only (RFC 6066, 3). */
        ok = SSL_set_tlsext_host_name(ssl, host) == 1;
    }
    if (ok && (SSL_CTX_get_verify_mode(ctx) & SSL_VERIFY_PEER)) {
        ok = numeric ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1
                     : SSL_set1_host(ssl, host) == 1;
    }
    if (!ok) {
        SSL_free(ssl);
        return NULL;
    }
    return ssl;
}

/* A socket BIO whose writes are send(MSG_NOSIGNAL): OpenSSL's own uses
 * write(2), which raises SIGPIPE on a reset connection. Reads, control
 * and life cycle are the socket BIO's. */
static BIO_METHOD *nosig_method;
static pthread_once_t nosig_once = PTHREAD_ONCE_INIT;

static int nosig_write(BIO *b, const char *buf, int len)
{
    int fd = (int)BIO_get_fd(b, NULL);
    ssize_t n;
    do {
        n = send(fd, buf, (size_t)len, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    BIO_clear_retry_flags(b);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        BIO_set_retry_write(b);
    }
    return n < 0 ? -1 : (int)n;
}

static void nosig_init(void)
{
    const BIO_METHOD *sock = BIO_s_socket();
    BIO_METHOD *m = BIO_meth_new(BIO_TYPE_SOCKET, "socket without SIGPIPE");
    if (m == NULL || BIO_meth_set_write(m, nosig_write) != 1 ||
        BIO_meth_set_read(m, BIO_meth_get_read(sock)) != 1 ||
        BIO_meth_set_puts(m, BIO_meth_get_puts(sock)) != 1 ||
        BIO_meth_set_ctrl(m, BIO_meth_get_ctrl(sock)) != 1 ||
        BIO_meth_set_create(m, BIO_meth_get_create(sock)) != 1 ||
        BIO_meth_set_destroy(m, BIO_meth_get_destroy(sock)) != 1) {
        BIO_meth_free(m);
        return;
    }
    nosig_method = m;
}

int tls_set_socket(SSL *ssl, int fd)
{
    ASSERT(ssl != NULL && fd >= 0);
    (void)pthread_once(&nosig_once, nosig_init);
    BIO *b = nosig_method != NULL ? BIO_new(nosig_method) : NULL;
    if (b == NULL) {
        return -ENOMEM;
    }
    BIO_set_fd(b, fd, BIO_NOCLOSE);
    SSL_set_bio(ssl, b, b);
    return 0;
}

int tls_peer_subject(SSL *ssl, char *out, size_t cap)
{
    ASSERT(ssl != NULL && out != NULL && cap > 0);
    X509 *cert = SSL_get0_peer_certificate(ssl);
    if (cert == NULL || SSL_get_verify_result(ssl) != X509_V_OK) {
        return -ENOENT;
    }
    BIO *b = BIO_new(BIO_s_mem());
    if (b == NULL) {
        return -ENOMEM;
    }
    int rc = -NG_ETOOBIG;
    if (X509_NAME_print_ex(b, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) >= 0) {
        char *p = NULL;
        long n = BIO_get_mem_data(b, &p);
        if (n >= 0 && (size_t)n < cap && (size_t)n < TLS_SUBJECT_BYTES_MAX) {
            memcpy(out, p, (size_t)n);
            out[n] = '\0';
            rc = 0;
        }
    }
    BIO_free(b);
    return rc;
}

bool tls_ktls_probe(char *why, size_t cap)
{
    static const char path[] = "/proc/sys/net/ipv4/tcp_available_ulp";
    char ulps[256] = "";
    FILE *f = fopen(path, "r");
    if (f != NULL) {
        if (fgets(ulps, sizeof(ulps), f) == NULL) {
            ulps[0] = '\0';
        }
        fclose(f);
    }
    bool have = false;
    for (char *save = NULL, *t = strtok_r(ulps, " \t\n", &save); t != NULL;
         t = strtok_r(NULL, " \t\n", &save)) {
        have = have || strcmp(t, "tls") == 0;
    }
    if (!have) {
        snprintf(why, cap, "kernel TLS unavailable (no \"tls\" in %s: modprobe tls)", path);
    } else {
        snprintf(why, cap,
                 "kernel TLS present but unused (the loop's handshake runs on memory buffers, "
                 "which cannot hand keys to the kernel)");
    }
    return have;
}
