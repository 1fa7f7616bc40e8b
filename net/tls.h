/*
 * net/tls.h — TLS contexts (OpenSSL 3) for the broker's listeners, its
 * replication fetchers and libnagare, and the few helpers they share.
 *
 * Invariants. Every context made here speaks TLS 1.2 and 1.3 only, with
 * OpenSSL's default ciphers, and keeps no buffers while a connection is idle
 * (SSL_MODE_RELEASE_BUFFERS). A client context verifies the server's
 * certificate unless told not to, and tls_client_session() adds the host
 * name check. A server context verifies client certificates against its CA
 * when client authentication is requested or required. Contexts are
 * reference-counted by OpenSSL: a connection keeps the context it was made
 * with, so swapping a listener's context (certificate reload) never touches
 * connections already open.
 *
 * The header names OpenSSL's types only as incomplete structs (SSL_CTX is
 * struct ssl_ctx_st, SSL is struct ssl_st), so including it needs no OpenSSL
 * headers. Every function may be called from any thread on objects that
 * thread owns.
 */
#ifndef NAGARE_NET_TLS_H
#define NAGARE_NET_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "base/assert.h"

struct ssl_ctx_st; /* SSL_CTX */
struct ssl_st;     /* SSL */

/* What a server asks of its clients' certificates. */
enum tls_client_auth {
    TLS_CLIENT_AUTH_NONE = 0,  /* no certificate asked for */
    TLS_CLIENT_AUTH_REQUESTED, /* asked for; none is fine, a bad one fails the handshake */
    TLS_CLIENT_AUTH_REQUIRED,  /* a certificate the CA vouches for, or no handshake */
};

/* The names the configuration spells them with ("none", "requested",
 * "required"), indexed by enum tls_client_auth. */
extern const char *const tls_client_auth_names[3];

/* A certificate subject's longest text (RFC 2253), NUL included: a
 * principal "User:<subject>" must fit broker/conn_auth.h's 256 bytes. */
#define TLS_SUBJECT_BYTES_MAX 240u

struct tls_server_cfg {
    const char *cert_file;            /* PEM: the certificate, then any chain */
    const char *key_file;             /* PEM: its private key */
    const char *ca_file;              /* PEM: CAs for client certificates; NULL or "": none */
    enum tls_client_auth client_auth; /* not NONE: needs ca_file */
};

struct tls_client_cfg {
    const char *ca_file;   /* PEM: CAs for the server's certificate; NULL or "": system store */
    const char *cert_file; /* PEM: a client certificate to show; NULL or "": none */
    const char *key_file;  /* its key; NULL or "": in cert_file */
    bool no_verify;        /* accept any server certificate (tests, never by default) */
};

/* Builds a server context from cfg's files. Returns 0 with *out (the
 * caller's: SSL_CTX_free), or -NG_EBADARG with a message naming the file
 * and OpenSSL's reason in err[0..err_cap) (unreadable file, key that does
 * not match the certificate, client auth without a CA). */
MUST_USE int tls_server_ctx(const struct tls_server_cfg *cfg, struct ssl_ctx_st **out, char *err,
                            size_t err_cap);

/* Builds a client context (as tls_server_ctx(), same returns). */
MUST_USE int tls_client_ctx(const struct tls_client_cfg *cfg, struct ssl_ctx_st **out, char *err,
                            size_t err_cap);

/* A client connection of ctx for a server reached as host (a name or a
 * numeric address): SNI for a name, and the certificate must name host
 * (its DNS names, or its IP addresses for a numeric host) unless ctx does
 * not verify. Returns the SSL (the caller's: SSL_free), or NULL when
 * memory runs out. */
struct ssl_st *tls_client_session(struct ssl_ctx_st *ctx, const char *host);

/* Puts ssl on the connected socket fd (not taken over: the caller closes
 * it after SSL_free) through a socket BIO that writes with MSG_NOSIGNAL, so
 * a peer gone is an error return (EPIPE), never SIGPIPE in a process that
 * did not ignore it. Blocking or not as fd is. Returns 0 or -ENOMEM. */
MUST_USE int tls_set_socket(struct ssl_st *ssl, int fd);

/* The subject of the certificate ssl's peer showed, if it was verified
 * (RFC 2253: "CN=alice,O=Example"), into out[0..cap). Returns 0, -ENOENT
 * when the peer showed none or it was not verified, or -NG_ETOOBIG when it
 * does not fit (or is longer than TLS_SUBJECT_BYTES_MAX). */
MUST_USE int tls_peer_subject(struct ssl_st *ssl, char *out, size_t cap);

/* OpenSSL's error queue as one line ("...: reason"), emptied, into
 * out[0..cap); "no detail" when it is empty. For messages. */
void tls_err_take(char *out, size_t cap);

/* Why kernel TLS is not used, into why[0..cap): the kernel's "tls" upper
 * layer protocol is missing (not in /proc/sys/net/ipv4/tcp_available_ulp),
 * or the loop cannot use it (its handshake runs on memory buffers, which
 * cannot hand keys to the kernel). For the listener's start-up log line;
 * returns whether the kernel has the module. */
bool tls_ktls_probe(char *why, size_t cap);

#endif
