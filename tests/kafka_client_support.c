/* tests/kafka_client_support.c — see kafka_client_support.h. */
#include "tests/kafka_client_support.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define KC_FRAME_BYTES (4u << 20)
#define KC_ARENA_BYTES (4u << 20)
#define KC_TIMEOUT_S 30 /* only a failing broker comes near it */

void kc_connect(struct kc *c, uint16_t port) { kc_connect_host(c, "127.0.0.1", port); }

void kc_connect_host(struct kc *c, const char *host, uint16_t port)
{
    memset(c, 0, sizeof(*c));
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(c->fd, 0);
    struct timeval tv = {.tv_sec = KC_TIMEOUT_S};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    cr_assert_eq(inet_pton(AF_INET, host, &sa.sin_addr), 1, "host %s", host);
    cr_assert_eq(connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "connect: %s",
                 strerror(errno));
    c->tx = malloc(KC_FRAME_BYTES);
    c->rx = malloc(KC_FRAME_BYTES);
    c->arena = malloc(KC_ARENA_BYTES);
    cr_assert(c->tx != NULL && c->rx != NULL && c->arena != NULL);
}

void kc_close(struct kc *c)
{
    if (c->fd >= 0) {
        close(c->fd);
    }
    free(c->tx);
    free(c->rx);
    free(c->arena);
    memset(c, 0, sizeof(*c));
    c->fd = -1;
}

void kc_send(struct kc *c, int16_t api, int16_t version, const struct kafka_msg *msg,
             const void *body)
{
    struct kafka_req_header h = {.api_key = api,
                                 .api_version = version,
                                 .correlation_id = ++c->corr,
                                 .client_id = kw_str_make("nagare-test")};
    struct kw_wr w = kw_wr_make(c->tx + 4, KC_FRAME_BYTES - 4, NULL, 0);
    kafka_req_header_encode(&w, &h);
    int rc = kafka_encode(msg, &w, version, body);
    cr_assert_eq(rc, 0, "%s v%d: %s", msg->name, version, err_str(rc));
    put_be32(c->tx, (uint32_t)w.w.pos);
    size_t n = w.w.pos + 4;
    cr_assert_eq(send(c->fd, c->tx, n, MSG_NOSIGNAL), (ssize_t)n);
}

bool kc_recv(struct kc *c, int16_t api, int16_t version, const struct kafka_msg *msg, void *out)
{
    uint8_t prefix[4];
    ssize_t n = recv(c->fd, prefix, 4, MSG_WAITALL);
    if (n == 0 || (n < 0 && errno == ECONNRESET)) {
        return false;
    }
    cr_assert_eq(n, 4, "%s: no answer (%s)", msg->name, n < 0 ? strerror(errno) : "short");
    uint32_t len = get_be32(prefix);
    cr_assert(len > 0 && len <= KC_FRAME_BYTES, "%s: answer of %u bytes", msg->name, len);
    cr_assert_eq(recv(c->fd, c->rx, len, MSG_WAITALL), (ssize_t)len);
    struct rd r = rd_make(c->rx, len);
    int32_t corr;
    cr_assert_eq(kafka_resp_header_decode(&r, api, version, &corr), 0);
    cr_assert_eq(corr, c->corr, "%s: the answer to the last request", msg->name);
    struct kw_arena a;
    kw_arena_init(&a, c->arena, KC_ARENA_BYTES);
    int rc = kafka_decode(msg, &r, version, &a, out);
    cr_assert_eq(rc, 0, "%s v%d: %s", msg->name, version, err_str(rc));
    return true;
}

void kc_call(struct kc *c, int16_t api, int16_t version, const struct kafka_msg *req_msg,
             const void *req, const struct kafka_msg *resp_msg, void *resp)
{
    kc_send(c, api, version, req_msg, req);
    cr_assert(kc_recv(c, api, version, resp_msg, resp), "%s: the broker closed the connection",
              req_msg->name);
}
