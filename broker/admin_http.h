/*
 * broker/admin_http.h — the HTTP admin listener (issue 16): GET /metrics
 * (Prometheus's text format, broker/metrics.h), /healthz and /readyz, the
 * web console (its files at /, broker/console_assets.h, and its JSON at
 * /api/..., broker/console_api.h), on admin_listen, served by
 * libmicrohttpd on its own thread.
 *
 * What an answer says is read on the event loop's thread: the HTTP thread
 * posts a message to the loop (loop_post), the loop renders the answer
 * into a buffer and hands it back, and the HTTP thread sends it. So the
 * hot path takes no lock and keeps no copy of anything for this; a scrape
 * costs the loop one render. An answer the loop has not given within
 * ADMIN_HTTP_LOOP_WAIT_MS is 503 (the loop is stuck or stopping), which is
 * exactly what /healthz is for. Until the loop first runs (the broker is
 * still starting: the listener opens before the broker joins its cluster,
 * which may wait for etcd), every path but the console's files is 503
 * "starting" at once.
 *
 *   /healthz  200 "ok" when the event loop answers; else 503
 *   /readyz   200 "ready" when metrics_ready(); else 503 and why
 *   /metrics  200 and the metrics; 503 when the loop does not answer
 *   /api/...  the console's JSON (400 for a bad query, 404 for no such
 *             endpoint or topic)
 *   /, /console.css, /console.js  the console's files, from the binary
 *   anything else: 404; any method but GET and HEAD: 405
 *
 * Who asks (docs/security.md, "The HTTP admin listener"). /healthz and
 * /readyz are open to anyone: load balancers and orchestrators probe
 * without credentials. Every other path takes HTTP Basic credentials of a
 * broker user (RFC 7617), checked against the user's stored SCRAM
 * credential (scram_cred_check): with `authentication = required` they are
 * needed (401 with WWW-Authenticate: Basic realm="nagare" without them);
 * otherwise a request without them is User:ANONYMOUS, and one with them
 * is still checked. A wrong password and an unknown user get the same 401;
 * failed logins count in SASL's per-address table (sasl_serve_addr_*),
 * and a blocked address gets 429 without any check. With the authorizer
 * on, /metrics and /api/... need DESCRIBE on the cluster and /api/records
 * READ on its topic too (403 otherwise); the console's own files need only
 * the login.
 *
 * The password check (PBKDF2, thousands of HMACs) runs on the HTTP thread,
 * against a copy of the credential the loop hands it, never on the loop.
 * Each HTTP connection remembers the last login it verified (the user, an
 * HMAC of the password under a key of this listener's, and the StoredKey
 * it matched), so a scraper on a kept-alive connection pays PBKDF2 once;
 * the memory is bounded by ADMIN_HTTP_CONN_MAX and is not trusted once the
 * user's credential changes (its StoredKey is compared on every request).
 *
 * HTTPS (admin_listen_tls) through libmicrohttpd's GnuTLS with the
 * broker's tls_cert_file and tls_key_file, TLS 1.2 and 1.3 only, read into
 * memory at start and again by admin_http_reload() (SIGHUP): libmicrohttpd
 * takes a certificate only when a daemon starts, so a reload starts a new
 * daemon on the same listening socket and stops the old one, whose open
 * connections close.
 *
 * Threads: admin_http_start() and admin_http_stop() on the loop's thread.
 */
#ifndef NAGARE_BROKER_ADMIN_HTTP_H
#define NAGARE_BROKER_ADMIN_HTTP_H

#include <stdbool.h>
#include <stdint.h>

#include "base/assert.h"

struct server;
struct admin_http;

/* How long an HTTP request waits for the loop to answer it. */
#define ADMIN_HTTP_LOOP_WAIT_MS 5000

/* Connections the admin listener serves at once; more wait in the kernel's
 * accept queue. Scrapers and a console need a handful. */
#define ADMIN_HTTP_CONN_MAX 64

/* Largest certificate (with its chain) or key file the HTTPS listener
 * reads: a chain of a few certificates is a few KiB. */
#define ADMIN_HTTP_TLS_FILE_BYTES_MAX (256u * 1024u)

struct admin_http_cfg {
    const char *host;
    uint16_t port;             /* 0: any free port */
    bool auth_required;        /* authentication = required */
    const char *tls_cert_file; /* NULL: plain HTTP; else PEM certificate (and chain) */
    const char *tls_key_file;  /* with tls_cert_file: its PEM private key */
};

/* Starts serving HTTP (or HTTPS) as cfg says for server s (*bound_port
 * gets the port). Returns 0 with *out, or -errno / -NG_EBADARG (the host
 * does not resolve, a TLS file is unreadable, empty or too long, or this
 * libmicrohttpd has no TLS; logged) / -ENOMEM / -EIO (libmicrohttpd
 * refused to start, as with a certificate it cannot use; logged), with
 * nothing left open. */
MUST_USE int admin_http_start(struct server *s, const struct admin_http_cfg *cfg,
                              uint16_t *bound_port, struct admin_http **out);

/* Reloads an HTTPS listener's certificate and key (cfg's files; its
 * other fields as at start): a new listener on *hp's socket replaces *hp
 * (same port; the old one's connections close, requests in flight are
 * cut). Returns 0; or the files' error (logged) with *hp untouched; or
 * -EIO when libmicrohttpd refused them, then *hp serves with the old ones
 * again (NULL, logged, when even that failed). Loop thread. */
MUST_USE int admin_http_reload(struct server *s, const struct admin_http_cfg *cfg,
                               struct admin_http **hp);

/* Stops serving: closes the listener, waits for the HTTP thread (a request
 * waiting for the loop gives up at once), frees h. Messages already posted
 * still run on the loop later and find nothing to do. NULL is fine. */
void admin_http_stop(struct admin_http *h);

#endif
