/*
 * libFuzzer target for the cluster's JSON records (cluster/state.h): the
 * first byte picks the record kind, the rest is its JSON as read from
 * etcd. Whatever a decoder accepts must satisfy its encoder's checks (the
 * encoder asserts them), encode, and decode back to the same struct.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char again[4096];

static void broker(const char *json, size_t len)
{
    struct cluster_broker a = {0}, b = {0};
    if (cluster_broker_decode(json, len, &a) != 0) {
        return;
    }
    int n = cluster_broker_encode(&a, again, sizeof(again));
    ASSERT(n > 0 && cluster_broker_decode(again, (size_t)n, &b) == 0);
    ASSERT(a.id == b.id && a.port == b.port && a.incarnation == b.incarnation &&
           strcmp(a.host, b.host) == 0 && a.kafka_port == b.kafka_port &&
           strcmp(a.kafka_host, b.kafka_host) == 0);
}

static void topic(const char *json, size_t len)
{
    struct cluster_topic a = {0}, b = {0};
    if (cluster_topic_decode(json, len, &a) != 0) {
        return;
    }
    int n = cluster_topic_encode(&a, again, sizeof(again));
    ASSERT(n > 0 && cluster_topic_decode(again, (size_t)n, &b) == 0);
    ASSERT(a.partitions == b.partitions && a.replication_factor == b.replication_factor);
    ASSERT(a.cfg.retention_ms == b.cfg.retention_ms &&
           a.cfg.retention_bytes == b.cfg.retention_bytes &&
           a.cfg.segment_bytes == b.cfg.segment_bytes && a.cfg.segment_ms == b.cfg.segment_ms &&
           a.cfg.batch_bytes_max == b.cfg.batch_bytes_max &&
           a.cfg.min_insync_replicas == b.cfg.min_insync_replicas &&
           a.cfg.unclean_leader_election == b.cfg.unclean_leader_election);
}

static bool same_ids(const int32_t *a, uint8_t an, const int32_t *b, uint8_t bn)
{
    return an == bn && memcmp(a, b, an * sizeof(*a)) == 0;
}

static void partition(const char *json, size_t len)
{
    struct cluster_partition a = {0}, b = {0};
    if (cluster_partition_decode(json, len, &a) != 0) {
        return;
    }
    int n = cluster_partition_encode(&a, again, sizeof(again));
    ASSERT(n > 0 && cluster_partition_decode(again, (size_t)n, &b) == 0);
    ASSERT(a.leader == b.leader && a.leader_epoch == b.leader_epoch &&
           a.controller_epoch == b.controller_epoch);
    ASSERT(same_ids(a.replicas, a.replica_count, b.replicas, b.replica_count));
    ASSERT(same_ids(a.isr, a.isr_count, b.isr, b.isr_count));
}

static void controller(const char *json, size_t len)
{
    int32_t broker_id = 0, broker_again = 0;
    int64_t epoch = 0, epoch_again = 0;
    if (cluster_controller_decode(json, len, &broker_id, &epoch) == 0) {
        int n = cluster_controller_encode(broker_id, epoch, again, sizeof(again));
        ASSERT(n > 0 &&
               cluster_controller_decode(again, (size_t)n, &broker_again, &epoch_again) == 0);
        ASSERT(broker_id == broker_again && epoch == epoch_again);
    }
    if (cluster_epoch_decode(json, len, &epoch) == 0) {
        int n = cluster_epoch_encode(epoch, again, sizeof(again));
        ASSERT(n > 0 && cluster_epoch_decode(again, (size_t)n, &epoch_again) == 0);
        ASSERT(epoch == epoch_again);
    }
}

static void reassign(const char *json, size_t len)
{
    struct cluster_reassign a = {0}, b = {0};
    if (cluster_reassign_decode(json, len, &a) != 0) {
        return;
    }
    int n = cluster_reassign_encode(&a, again, sizeof(again));
    ASSERT(n > 0 && cluster_reassign_decode(again, (size_t)n, &b) == 0);
    ASSERT(same_ids(a.replicas, a.replica_count, b.replicas, b.replica_count));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    char *json = malloc(size - 1 + 1); /* exactly sized: ASan sees any over-read */
    if (json == NULL) {
        return 0;
    }
    memcpy(json, data + 1, size - 1);
    switch (data[0] % 5) {
    case 0:
        broker(json, size - 1);
        break;
    case 1:
        topic(json, size - 1);
        break;
    case 2:
        partition(json, size - 1);
        break;
    case 3:
        controller(json, size - 1);
        break;
    default:
        reassign(json, size - 1);
        break;
    }
    free(json);
    return 0;
}
