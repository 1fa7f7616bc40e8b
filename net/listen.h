/*
 * net/listen.h — a listening TCP socket on HOST:PORT, for every listener of
 * the broker (the event loop's, the HTTP admin listener's).
 */
#ifndef NAGARE_NET_LISTEN_H
#define NAGARE_NET_LISTEN_H

#include <stdint.h>

#include "base/assert.h"

/* Socket buffer sizes set on the listener before listen(), which accepted
 * sockets inherit (0: leave it to the kernel). */
struct listen_opts {
    uint32_t rcvbuf_bytes;
    uint32_t sndbuf_bytes;
};

/* Binds and listens on the first address host (a name or a numeric address,
 * "0.0.0.0" or "::" for all) resolves to that takes it, with SO_REUSEADDR
 * and close-on-exec; port 0 takes any free port. Returns 0 with *fd_out and
 * the bound port in *port_out (may be NULL), or -errno, -NG_EBADARG for a
 * host that does not resolve. */
MUST_USE int listen_socket(const char *host, uint16_t port, const struct listen_opts *opts,
                           int *fd_out, uint16_t *port_out);

#endif
