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
#include "tests/kafka_client_support.h"

static struct bk B;

static void setup(void) { bk_init(&B); }

static void teardown(void)
{
    bk_stop(&B);
    bk_fini(&B);
}

TestSuite(kafka_broker, .init = setup, .fini = teardown, .timeout = 120);

static const struct kafka_api_versions_response_api_version *find_key(
    const struct kafka_api_versions_response *resp, int16_t key)
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
    struct kc c;
    kc_connect(&c, B.kafka_port);
    struct kafka_api_versions_request req;
    kafka_api_versions_request_init(&req);
    req.client_software_name = kw_str_make("nagare-test");
    req.client_software_version = kw_str_make("1.0");
    struct kafka_api_versions_response resp;
    kc_call(&c, KAFKA_API_API_VERSIONS, 3, &kafka_api_versions_request_msg, &req,
            &kafka_api_versions_response_msg, &resp);
    cr_assert_eq(resp.error_code, KAFKA_ERR_NONE);
    const struct kafka_api_versions_response_api_version *av =
        find_key(&resp, KAFKA_API_API_VERSIONS);
    cr_assert_not_null(av);
    cr_assert_eq(av->min_version, 0);
    cr_assert_eq(av->max_version, 3);
    /* Logins are served whether or not the broker requires them
     * (broker/sasl_serve.h): a client may always log in. */
    av = find_key(&resp, KAFKA_API_SASL_HANDSHAKE);
    cr_assert_not_null(av, "SaslHandshake is advertised");
    cr_assert_eq(av->max_version, 1);
    av = find_key(&resp, KAFKA_API_SASL_AUTHENTICATE);
    cr_assert_not_null(av, "SaslAuthenticate is advertised");
    cr_assert_eq(av->max_version, 2);
    for (int32_t i = 0; i < resp.api_keys.count; i++) {
        const struct kafka_api_versions_response_api_version *k = &resp.api_keys.items[i];
        const struct kafka_api *api = kafka_api_find(k->api_key);
        cr_assert_not_null(api, "api %d is one the codec defines", k->api_key);
        cr_assert_eq(k->min_version, api->versions.min);
        cr_assert_eq(k->max_version, api->versions.max);
    }
    kc_close(&c);
}

Test(kafka_broker, an_api_versions_version_it_lacks_gets_the_v0_answer_with_the_ranges)
{
    bk_start(&B);
    struct kc c;
    kc_connect(&c, B.kafka_port);
    /* Header v1 (a version past the range is not flexible as far as the
     * broker knows), no body: what a newer client sends (KIP-511). */
    uint8_t frame[4 + 10 + 4];
    put_be32(frame, sizeof(frame) - 4);
    put_be16(frame + 4, KAFKA_API_API_VERSIONS);
    put_be16(frame + 6, 99);
    put_be32(frame + 8, (uint32_t)++c.corr);
    put_be16(frame + 12, 4);
    memcpy(frame + 14, "test", 4);
    cr_assert_eq(send(c.fd, frame, sizeof(frame), MSG_NOSIGNAL), (ssize_t)sizeof(frame));
    struct kafka_api_versions_response resp;
    cr_assert(kc_recv(&c, KAFKA_API_API_VERSIONS, 0, &kafka_api_versions_response_msg, &resp));
    cr_assert_eq(resp.error_code, KAFKA_ERR_UNSUPPORTED_VERSION);
    const struct kafka_api_versions_response_api_version *av =
        find_key(&resp, KAFKA_API_API_VERSIONS);
    cr_assert_not_null(av, "the ranges come with the error");
    cr_assert_eq(av->max_version, 3);
    kc_close(&c);
}

Test(kafka_broker, a_request_for_an_api_it_does_not_serve_closes_the_connection)
{
    bk_start(&B);
    struct kc c;
    kc_connect(&c, B.kafka_port);
    uint8_t frame[4 + 10];
    put_be32(frame, sizeof(frame) - 4);
    put_be16(frame + 4, 999);
    put_be16(frame + 6, 0);
    put_be32(frame + 8, (uint32_t)++c.corr);
    put_be16(frame + 12, 0xffff); /* client id null */
    cr_assert_eq(send(c.fd, frame, sizeof(frame), MSG_NOSIGNAL), (ssize_t)sizeof(frame));
    struct kafka_api_versions_response resp;
    cr_assert(!kc_recv(&c, 999, 0, &kafka_api_versions_response_msg, &resp),
              "closed without an answer, as Kafka does");
    kc_close(&c);
    /* The broker serves on. */
    kc_connect(&c, B.kafka_port);
    struct kafka_api_versions_request req;
    kafka_api_versions_request_init(&req);
    kc_call(&c, KAFKA_API_API_VERSIONS, 0, &kafka_api_versions_request_msg, &req,
            &kafka_api_versions_response_msg, &resp);
    cr_assert_eq(resp.error_code, KAFKA_ERR_NONE);
    kc_close(&c);
}

Test(kafka_broker, kafka_listen_off_opens_no_kafka_listener)
{
    bk_set(&B, "kafka_listen=off");
    bk_start(&B);
    cr_assert_eq(B.kafka_port, 0, "no Kafka listener line");
}
