/*
 * tests/test_kafka_cluster.c — the Kafka listener in a cluster of three
 * brokers: each registers its Kafka address, and any broker names the
 * group coordinator (the leader of __offsets/0) at its Kafka address.
 * Skipped, saying why, when the machine cannot run a cluster.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "base/clock.h"
#include "net/kafka/codec.h"
#include "net/kafka/errors.h"
#include "tests/cluster_support.h"
#include "tests/kafka_client_support.h"

/* Only turns a hang into a failure. */
#define SETUP_TIMEOUT_MS 60000

static struct cluster C;

static void teardown(void) { cs_fini(&C); }

/* FindCoordinator v2 of group through broker i. */
static void find_coordinator(size_t i, const char *group,
                             struct kafka_find_coordinator_response *out)
{
    struct kc c;
    kc_connect_host(&c, C.b[i].host, C.b[i].kafka_port);
    struct kafka_find_coordinator_request r;
    kafka_find_coordinator_request_init(&r);
    r.key = kw_str_make(group);
    kc_call(&c, KAFKA_API_FIND_COORDINATOR, 2, &kafka_find_coordinator_request_msg, &r,
            &kafka_find_coordinator_response_msg, out);
    /* the answer's strings live in c's buffers: keep what the tests read */
    static char host[256];
    cr_assert(out->host.len >= 0 && (size_t)out->host.len < sizeof(host));
    memcpy(host, out->host.ptr, (size_t)out->host.len);
    host[out->host.len] = '\0';
    out->host = kw_str_make(host);
    kc_close(&c);
}

Test(kafka_cluster, every_broker_names_the_group_coordinator_at_its_kafka_address, .fini = teardown,
     .timeout = 300)
{
    cs_need_cluster();
    cs_init(&C, 3);
    cs_start(&C);
    for (size_t i = 0; i < 3; i++) {
        cr_assert_neq(C.b[i].kafka_port, 0, "broker %d has a Kafka listener", C.b[i].id);
    }
    /* The first asks make __offsets; until it has a leader the answer is
     * COORDINATOR_NOT_AVAILABLE, which clients wait out. */
    struct kafka_find_coordinator_response out;
    int64_t give_up = clock_mono_ms() + SETUP_TIMEOUT_MS;
    do {
        cr_assert_lt(clock_mono_ms(), give_up, "no coordinator within %d ms", SETUP_TIMEOUT_MS);
        find_coordinator(0, "g", &out);
        cr_assert(out.error_code == KAFKA_ERR_NONE ||
                      out.error_code == KAFKA_ERR_COORDINATOR_NOT_AVAILABLE,
                  "error %d", out.error_code);
    } while (out.error_code != KAFKA_ERR_NONE);
    int32_t node = out.node_id;
    cr_assert(node >= 1 && node <= 3, "node %d", node);
    const struct cs_broker *k = &C.b[node - 1];
    for (size_t i = 0; i < 3; i++) {
        do {
            cr_assert_lt(clock_mono_ms(), give_up, "broker %zu never named it", i);
            find_coordinator(i, "g", &out);
        } while (out.error_code != KAFKA_ERR_NONE);
        cr_assert_eq(out.node_id, node, "broker %zu names the same coordinator", i);
        cr_assert(kw_str_eq(out.host, k->host), "its host %s", k->host);
        cr_assert_eq(out.port, k->kafka_port, "its Kafka port, not nagare's");
    }
}

/* JoinGroup v4 of a new member through broker i: its error. */
static int16_t join_through(size_t i, const char *group)
{
    struct kc c;
    kc_connect_host(&c, C.b[i].host, C.b[i].kafka_port);
    struct kafka_join_group_request_protocol p = {.name = kw_str_make("range"),
                                                  .metadata = {(const uint8_t *)"m", 1}};
    struct kafka_join_group_request r;
    kafka_join_group_request_init(&r);
    r.group_id = kw_str_make(group);
    r.session_timeout_ms = 30000;
    r.member_id = kw_str_make("");
    r.protocol_type = kw_str_make("consumer");
    r.protocols.items = &p;
    r.protocols.count = 1;
    struct kafka_join_group_response out;
    kc_call(&c, KAFKA_API_JOIN_GROUP, 4, &kafka_join_group_request_msg, &r,
            &kafka_join_group_response_msg, &out);
    kc_close(&c);
    return out.error_code;
}

Test(kafka_cluster, only_the_coordinator_takes_a_join, .fini = teardown, .timeout = 300)
{
    cs_need_cluster();
    cs_init(&C, 3);
    cs_start(&C);
    struct kafka_find_coordinator_response out;
    int64_t give_up = clock_mono_ms() + SETUP_TIMEOUT_MS;
    do {
        cr_assert_lt(clock_mono_ms(), give_up, "no coordinator within %d ms", SETUP_TIMEOUT_MS);
        find_coordinator(0, "g", &out);
    } while (out.error_code != KAFKA_ERR_NONE);
    size_t k = (size_t)out.node_id - 1;
    for (size_t i = 0; i < 3; i++) {
        int16_t err = join_through(i, "g");
        if (i == k) {
            /* The coordinator may not have attached the offsets store at
             * the moment its leadership shows: then it says so too. */
            cr_assert(err == KAFKA_ERR_MEMBER_ID_REQUIRED || err == KAFKA_ERR_NOT_COORDINATOR,
                      "coordinator: %d", err);
        } else {
            cr_assert_eq(err, KAFKA_ERR_NOT_COORDINATOR, "broker %zu: %d", i, err);
        }
    }
    do { /* the coordinator takes it once it serves */
        cr_assert_lt(clock_mono_ms(), give_up, "the coordinator never took a join");
    } while (join_through(k, "g") != KAFKA_ERR_MEMBER_ID_REQUIRED);
}

Test(kafka_cluster, metadata_names_every_broker_at_its_kafka_address, .fini = teardown,
     .timeout = 300)
{
    cs_need_cluster();
    cs_init(&C, 3);
    cs_start(&C);
    int64_t give_up = clock_mono_ms() + SETUP_TIMEOUT_MS;
    for (size_t i = 0; i < 3; i++) {
        struct kc c;
        kc_connect_host(&c, C.b[i].host, C.b[i].kafka_port);
        struct kafka_metadata_request r;
        kafka_metadata_request_init(&r);
        r.topics.count = -1; /* every topic */
        struct kafka_metadata_response out;
        for (;;) { /* until this broker's view holds all three */
            kc_call(&c, KAFKA_API_METADATA, 9, &kafka_metadata_request_msg, &r,
                    &kafka_metadata_response_msg, &out);
            if (out.brokers.count == 3) {
                break;
            }
            cr_assert_lt(clock_mono_ms(), give_up, "broker %zu lists %d brokers", i,
                         out.brokers.count);
        }
        for (int32_t k = 0; k < 3; k++) {
            const struct kafka_metadata_response_broker *b = &out.brokers.items[k];
            cr_assert(b->node_id >= 1 && b->node_id <= 3);
            const struct cs_broker *want = &C.b[b->node_id - 1];
            cr_assert(kw_str_eq(b->host, want->host), "broker %d's host", b->node_id);
            cr_assert_eq(b->port, want->kafka_port, "broker %d's Kafka port", b->node_id);
        }
        kc_close(&c);
    }
}
