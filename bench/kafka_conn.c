/* bench/kafka_conn.c — see kafka_conn.h. */
#include "bench/kafka_conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/bytes.h"
#include "base/err.h"
#include "bench/broker.h"

#define KCONN_CLIENT_ID "nagare-bench"
#define KCONN_PREFIX_BYTES 4

int kconn_open(struct kconn *c, const char *bootstrap, size_t tx_cap, size_t rx_cap)
{
    *c = (struct kconn){.fd = -1, .tx_cap = tx_cap, .rx_cap = rx_cap};
    c->arena_cap = kw_arena_bytes(rx_cap);
    c->tx = malloc(tx_cap);
    c->rx = malloc(rx_cap);
    c->arena = malloc(c->arena_cap);
    if (c->tx == NULL || c->rx == NULL || c->arena == NULL) {
        return -ENOMEM;
    }
    c->fd = bench_connect(bootstrap);
    if (c->fd < 0) {
        int rc = c->fd;
        fprintf(stderr, "nagare-bench: kafka connect %s: %s\n", bootstrap, err_str(rc));
        return rc;
    }
    int one = 1;
    (void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return 0;
}

void kconn_close(struct kconn *c)
{
    if (c->fd >= 0) {
        close(c->fd);
    }
    free(c->tx);
    free(c->rx);
    free(c->arena);
    *c = (struct kconn){.fd = -1};
}

static int send_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return w < 0 ? -errno : -EIO;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int recv_all(int fd, uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t r = recv(fd, p, n, MSG_WAITALL);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            return r < 0 ? -errno : -ECONNRESET;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

int kconn_request(struct kconn *c, int16_t api, int16_t version, const struct kafka_msg *msg,
                  const void *body)
{
    struct kafka_req_header h = {.api_key = api,
                                 .api_version = version,
                                 .correlation_id = ++c->corr,
                                 .client_id = kw_str_make(KCONN_CLIENT_ID)};
    struct kw_wr w =
        kw_wr_make(c->tx + KCONN_PREFIX_BYTES, c->tx_cap - KCONN_PREFIX_BYTES, NULL, 0);
    kafka_req_header_encode(&w, &h);
    int rc = kafka_encode(msg, &w, version, body);
    if (rc == 0) {
        put_be32(c->tx, (uint32_t)w.w.pos);
        rc = send_all(c->fd, c->tx, w.w.pos + KCONN_PREFIX_BYTES);
    }
    if (rc != 0) {
        fprintf(stderr, "nagare-bench: kafka %s: %s\n", msg->name, err_str(rc));
    }
    return rc;
}

int kconn_readable(const struct kconn *c, int timeout_ms)
{
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    int n = poll(&pfd, 1, timeout_ms);
    return n < 0 ? (errno == EINTR ? 0 : -errno) : n;
}

int kconn_answer(struct kconn *c, int32_t corr, int16_t api, int16_t version,
                 const struct kafka_msg *msg, void *out)
{
    uint8_t prefix[KCONN_PREFIX_BYTES];
    int rc = recv_all(c->fd, prefix, sizeof(prefix));
    uint32_t len = rc == 0 ? get_be32(prefix) : 0;
    if (rc == 0 && (len == 0 || len > c->rx_cap)) {
        fprintf(stderr, "nagare-bench: kafka %s: an answer of %u bytes\n", msg->name, len);
        return -EIO;
    }
    rc = rc == 0 ? recv_all(c->fd, c->rx, len) : rc;
    struct rd r = rd_make(c->rx, len);
    int32_t got = 0;
    rc = rc == 0 ? kafka_resp_header_decode(&r, api, version, &got) : rc;
    rc = rc == 0 && got != corr ? -NG_EPROTO : rc;
    struct kw_arena a;
    kw_arena_init(&a, c->arena, c->arena_cap);
    rc = rc == 0 ? kafka_decode(msg, &r, version, &a, out) : rc;
    if (rc != 0) {
        fprintf(stderr, "nagare-bench: kafka %s answer: %s\n", msg->name, err_str(rc));
    }
    return rc;
}
