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
 * Threads: admin_http_start() and admin_http_stop() on the loop's thread.
 */
#ifndef NAGARE_BROKER_ADMIN_HTTP_H
#define NAGARE_BROKER_ADMIN_HTTP_H

#include <stdint.h>

#include "base/assert.h"

struct server;
struct admin_http;

/* How long an HTTP request waits for the loop to answer it. */
#define ADMIN_HTTP_LOOP_WAIT_MS 5000

/* Connections the admin listener serves at once; more wait in the kernel's
 * accept queue. Scrapers and a console need a handful. */
#define ADMIN_HTTP_CONN_MAX 64

/* Starts serving HTTP on host:port (0: any free port, *bound_port gets it)
 * for server s. Returns 0 with *out, or -errno / -NG_EBADARG (the host does
 * not resolve) / -ENOMEM, with nothing left open. */
MUST_USE int admin_http_start(struct server *s, const char *host, uint16_t port,
                              uint16_t *bound_port, struct admin_http **out);

/* Stops serving: closes the listener, waits for the HTTP thread (a request
 * waiting for the loop gives up at once), frees h. Messages already posted
 * still run on the loop later and find nothing to do. NULL is fine. */
void admin_http_stop(struct admin_http *h);

#endif
