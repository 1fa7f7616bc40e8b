/*
 * tests/test_kafka_broker.c — the Kafka listener of a real nagared
 * (broker/kafka_serve.h), spoken to with net/kafka/codec.h.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/kafka/codec.h"
#include "net/kafka/errors.h"
#include "tests/broker_support.h"

static struct bk B;

static void setup(void) { bk_init(&B); }

static void teardown(void)
{
    bk_stop(&B);
    bk_fini(&B);
}

TestSuite(kafka_broker, .init = setup, .fini = teardown, .timeout = 120);

#define FRAME_MAX (1u << 20)

static uint8_t tx[FRAME_MAX];
static uint8_t rx[FRAME_MAX];
static uint8_t arena_buf[1u << 20];

static int kafka_connect(uint16_t port)
{
    struct cl c;
    cl_connect(&c, port, CL_TIMEOUT_MS_DEFAULT);
    int fd = dup(c.fd);
    cl_close(&c);
    return fd;
}

/* Sends a request of msg's API at version with header h's correlation id. */
static void send_request(int fd, const struct kafka_req_header *h, const struct kafka_msg *msg,
                         const void *body)
{
    struct kw_wr w = kw_wr_make(tx + 4, sizeof(tx) - 4, NULL, 0);
    kafka_req_header_encode(&w, h);
    cr_assert_eq(kafka_encode(msg, &w, h->api_version, body), 0);
    put_be32(tx, (uint32_t)w.w.pos);
    cr_assert_eq(send(fd, tx, w.w.pos + 4, MSG_NOSIGNAL), (ssize_t)(w.w.pos + 4));
}

/* Reads one answer frame: its length, or 0 when the broker closed. */
static size_t recv_frame(int fd)
{
    uint8_t prefix[4];
    ssize_t n = recv(fd, prefix, 4, MSG_WAITALL);
    if (n == 0 || (n < 0 && errno == ECONNRESET)) {
        return 0;
    }
    cr_assert_eq(n, 4, "answer length: %s", n < 0 ? strerror(errno) : "short");
    uint32_t len = get_be32(prefix);
    cr_assert(len > 0 && len <= sizeof(rx));
    cr_assert_eq(recv(fd, rx, len, MSG_WAITALL), (ssize_t)len);
    return len;
}

/* Reads the answer to h as resp_msg at version into *out. */
static void recv_answer(int fd, const struct kafka_req_header *h, int16_t version,
                        const struct kafka_msg *resp_msg, void *out)
{
    size_t len = recv_frame(fd);
    cr_assert_gt(len, 0, "the broker closed the connection");
    struct rd r = rd_make(rx, len);
    int32_t corr;
    cr_assert_eq(kafka_resp_header_decode(&r, h->api_key, version, &corr), 0);
    cr_assert_eq(corr, h->correlation_id);
    struct kw_arena a;
    kw_arena_init(&a, arena_buf, sizeof(arena_buf));
    cr_assert_eq(kafka_decode(resp_msg, &r, version, &a, out), 0);
}

static const struct kafka_api_versions_response_api_version *
find_key(const struct kafka_api_versions_response *resp, int16_t key)
{
    for (int32_t i = 0; i < resp->api_keys.count; i++) {
        if (resp->api_keys.items[i].api_key == key) {
            return &resp->api_keys.items[i];
        }
    }
    return NULL;
}

Test(kafka_broker, api_versions_lists_the_apis_the_broker_serves)
{
    bk_start(&B);
    cr_assert_neq(B.kafka_port, 0);
    int fd = kafka_connect(B.kafka_port);
    struct kafka_api_versions_request req;
    kafka_api_versions_request_init(&req);
    req.client_software_name = kw_str_make("nagare-test");
    req.client_software_version = kw_str_make("1.0");
    struct kafka_req_header h = {.api_key = KAFKA_API_API_VERSIONS,
                                 .api_version = 3,
                                 .correlation_id = 7,
                                 .client_id = kw_str_make("test")};
    send_request(fd, &h, &kafka_api_versions_request_msg, &req);
    struct kafka_api_versions_response resp;
    recv_answer(fd, &h, 3, &kafka_api_versions_response_msg, &resp);
    cr_assert_eq(resp.error_code, KAFKA_ERR_NONE);
    const struct kafka_api_versions_response_api_version *av =
        find_key(&resp, KAFKA_API_API_VERSIONS);
    cr_assert_not_null(av);
    cr_assert_eq(av->min_version, 0);
    cr_assert_eq(av->max_version, 3);
    cr_assert_null(find_key(&resp, KAFKA_API_SASL_HANDSHAKE),
                   "no SASL while the listener does not authenticate");
    for (int32_t i = 0; i < resp.api_keys.count; i++) {
        const struct kafka_api_versions_response_api_version *k = &resp.api_keys.items[i];
        const struct kafka_api *api = kafka_api_find(k->api_key);
        cr_assert_not_null(api, "api %d is one the codec defines", k->api_key);
        cr_assert_eq(k->min_version, api->versions.min);
        cr_assert_eq(k->max_version, api->versions.max);
    }
    close(fd);
}

Test(kafka_broker, an_api_versions_version_it_lacks_gets_the_v0_answer_with_the_ranges)
{
    bk_start(&B);
    int fd = kafka_connect(B.kafka_port);
    /* Header v1 (a version past the range is not flexible as far as the
     * broker knows), no body: what a newer client sends (KIP-511). */
    uint8_t frame[4 + 10 + 4];
    put_be32(frame, sizeof(frame) - 4);
    put_be16(frame + 4, KAFKA_API_API_VERSIONS);
    put_be16(frame + 6, 99);
    put_be32(frame + 8, 41);
    put_be16(frame + 12, 4);
    memcpy(frame + 14, "test", 4);
    cr_assert_eq(send(fd, frame, sizeof(frame), MSG_NOSIGNAL), (ssize_t)sizeof(frame));
    struct kafka_req_header h = {.api_key = KAFKA_API_API_VERSIONS, .correlation_id = 41};
    struct kafka_api_versions_response resp;
    recv_answer(fd, &h, 0, &kafka_api_versions_response_msg, &resp);
    cr_assert_eq(resp.error_code, KAFKA_ERR_UNSUPPORTED_VERSION);
    const struct kafka_api_versions_response_api_version *av =
        find_key(&resp, KAFKA_API_API_VERSIONS);
    cr_assert_not_null(av, "the ranges come with the error");
    cr_assert_eq(av->max_version, 3);
    close(fd);
}

Test(kafka_broker, a_request_for_an_api_it_does_not_serve_closes_the_connection)
{
    bk_start(&B);
    int fd = kafka_connect(B.kafka_port);
    uint8_t frame[4 + 10];
    put_be32(frame, sizeof(frame) - 4);
    put_be16(frame + 4, 999);
    put_be16(frame + 6, 0);
    put_be32(frame + 8, 1);
    put_be16(frame + 12, 0xffff); /* client id null */
    cr_assert_eq(send(fd, frame, sizeof(frame), MSG_NOSIGNAL), (ssize_t)sizeof(frame));
    cr_assert_eq(recv_frame(fd), 0, "closed without an answer, as Kafka does");
    close(fd);
    /* The broker serves on. */
    fd = kafka_connect(B.kafka_port);
    struct kafka_api_versions_request req;
    kafka_api_versions_request_init(&req);
    struct kafka_req_header h = {.api_key = KAFKA_API_API_VERSIONS, .api_version = 0,
                                 .correlation_id = 2, .client_id = KW_STR_NULL};
    send_request(fd, &h, &kafka_api_versions_request_msg, &req);
    struct kafka_api_versions_response resp;
    recv_answer(fd, &h, 0, &kafka_api_versions_response_msg, &resp);
    cr_assert_eq(resp.error_code, KAFKA_ERR_NONE);
    close(fd);
}

Test(kafka_broker, kafka_listen_off_opens_no_kafka_listener)
{
    bk_set(&B, "kafka_listen=off");
    bk_start(&B);
    cr_assert_eq(B.kafka_port, 0, "no Kafka listener line");
}
