/*
 * client/admin_cluster.c — nagare_cluster_describe(): one Metadata v2 (or
 * v3, with reassignments in progress) request for every topic, its brokers
 * and partition states copied into one allocation (the info, brokers,
 * partitions, replica ids, then the strings), so nagare_cluster_info_free()
 * is a single free(). nagare_partitions_reassign(): one ReassignPartitions
 * request.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client/admin_int.h"
#include "client/conn.h"
#include "client/nagare.h"

/* Metadata v2 is the first version that names brokers and leaders. */
#define CLUSTER_METADATA_VERSION 2

struct cluster_call {
    struct nagare_cluster_info *info;
};

static int cluster_encode(void *arg, struct wr *w, uint32_t corr, uint16_t version)
{
    (void)arg;
    if (version < CLUSTER_METADATA_VERSION) {
        return -NG_EBADVERSION;
    }
    struct proto_enc e;
    proto_metadata_req_begin(&e, w, version, corr, proto_str_make(CONN_CLIENT_ID), true);
    return proto_enc_end(&e);
}

/* What the answer needs: brokers, partitions, replica ids, string bytes. */
struct cluster_sizes {
    size_t brokers;
    size_t parts;
    size_t ids;
    size_t chars;
};

static size_t cluster_bytes(struct proto_metadata_resp m, struct proto_dec d,
                            struct cluster_sizes *z)
{
    *z = (struct cluster_sizes){0};
    struct proto_broker b;
    while (proto_metadata_resp_next_broker(&m, &b)) {
        z->brokers++;
        z->chars += (size_t)b.host.len + 1;
    }
    struct proto_topic t;
    struct proto_metadata_partition mp;
    while (proto_next_topic(&d, &t)) {
        z->chars += t.err == 0 ? (size_t)t.name.len + 1 : 0;
        while (proto_metadata_resp_next_partition(&d, &mp)) {
            z->parts++;
            z->ids += (size_t)mp.replica_count + mp.isr_count + mp.target_count;
        }
    }
    return sizeof(struct nagare_cluster_info) + z->brokers * sizeof(struct nagare_broker_info) +
           z->parts * sizeof(struct nagare_partition_replicas) + z->ids * sizeof(int32_t) +
           z->chars;
}

/* Copies s into *chars as a C string; returns it. */
static const char *copy_str(char **chars, struct proto_str s)
{
    char *at = *chars;
    memcpy(at, s.ptr, (size_t)s.len);
    at[s.len] = '\0';
    *chars += s.len + 1;
    return at;
}

static const int32_t *copy_ids(int32_t **ids, const int32_t *from, uint8_t n)
{
    int32_t *at = *ids;
    memcpy(at, from, n * sizeof(*from));
    *ids += n;
    return at;
}

static int cluster_decode(void *arg, struct rd *body, uint16_t version)
{
    struct cluster_call *cc = arg;
    struct proto_metadata_resp m;
    struct proto_dec d;
    if (proto_metadata_resp_decode(body, version, &m, &d) != 0) {
        return -NG_EPROTO;
    }
    struct cluster_sizes z;
    size_t bytes = cluster_bytes(m, d, &z);
    uint8_t *block = calloc(1, bytes);
    if (block == NULL) {
        return -ENOMEM;
    }
    struct nagare_cluster_info *info = (struct nagare_cluster_info *)block;
    struct nagare_broker_info *brokers = (struct nagare_broker_info *)(info + 1);
    struct nagare_partition_replicas *parts =
        (struct nagare_partition_replicas *)(brokers + z.brokers);
    int32_t *ids = (int32_t *)(parts + z.parts);
    char *chars = (char *)(ids + z.ids);
    *info = (struct nagare_cluster_info){
        .controller = m.controller_id, .brokers = brokers, .partitions = parts};
    struct proto_broker b;
    while (proto_metadata_resp_next_broker(&m, &b)) {
        brokers[info->broker_count++] = (struct nagare_broker_info){
            .id = b.id, .host = copy_str(&chars, b.host), .port = b.port};
    }
    struct proto_topic t;
    struct proto_metadata_partition mp;
    while (proto_next_topic(&d, &t)) {
        const char *name = t.err == 0 ? copy_str(&chars, t.name) : NULL;
        while (proto_metadata_resp_next_partition(&d, &mp)) {
            parts[info->partition_count++] = (struct nagare_partition_replicas){
                .topic = name,
                .partition = mp.partition,
                .err = mp.err,
                .leader = mp.leader,
                .leader_epoch = mp.leader_epoch,
                .replica_count = mp.replica_count,
                .replicas = copy_ids(&ids, mp.replicas, mp.replica_count),
                .isr_count = mp.isr_count,
                .isr = copy_ids(&ids, mp.isr, mp.isr_count),
                .under_replicated =
                    mp.isr_count < mp.replica_count || mp.leader == PROTO_BROKER_NONE,
                .target_count = mp.target_count,
                .target = mp.target_count > 0 ? copy_ids(&ids, mp.target, mp.target_count) : NULL};
        }
    }
    ASSERT((uint8_t *)chars == block + bytes);
    cc->info = info;
    return 0;
}

int nagare_cluster_describe(nagare_admin *a, const struct nagare_cluster_info **out)
{
    ASSERT(a != NULL && out != NULL);
    struct cluster_call cc = {0};
    int rc = admin_call(a, PROTO_API_METADATA, 64, cluster_encode, cluster_decode, &cc);
    if (rc != 0) {
        return rc;
    }
    *out = cc.info;
    return 0;
}

void nagare_cluster_info_free(nagare_admin *a, const struct nagare_cluster_info *info)
{
    (void)a;
    free((void *)info);
}

/* ---- ReassignPartitions ---- */

static_assert(NAGARE_REPLICAS_MAX <= PROTO_REPLICAS_MAX, "a target list fits the wire");
static_assert(NAGARE_REASSIGN_PARTITIONS_MAX <= PROTO_REQUEST_PARTITIONS_MAX,
              "one request holds every partition");

struct reassign_call {
    const char *topic;
    const int32_t *partitions;
    size_t partition_count;
    struct proto_reassign_partition target; /* partition set per entry */
    int *errs;                              /* partition_count */
};

static int reassign_encode(void *arg, struct wr *w, uint32_t corr, uint16_t version)
{
    struct reassign_call *rc = arg;
    struct proto_enc e;
    proto_reassign_req_begin(&e, w, version, corr, proto_str_make(CONN_CLIENT_ID));
    proto_enc_topic(&e, proto_str_make(rc->topic));
    for (size_t i = 0; i < rc->partition_count; i++) {
        rc->target.partition = rc->partitions[i];
        proto_reassign_req_partition(&e, &rc->target);
    }
    return proto_enc_end(&e);
}

/* The answer has the topic and each partition asked, in order. */
static int reassign_decode(void *arg, struct rd *body, uint16_t version)
{
    struct reassign_call *rc = arg;
    struct proto_dec d;
    struct proto_topic t;
    if (proto_reassign_resp_decode(body, version, &d) != 0 || d.topic_count != 1 ||
        !proto_next_topic(&d, &t) || !proto_str_eq(t.name, rc->topic) ||
        (size_t)t.partition_count != rc->partition_count) {
        return -NG_EPROTO;
    }
    int first = 0;
    struct proto_partition_result r;
    for (size_t i = 0; proto_next_partition_result(&d, &r); i++) {
        if (r.partition != rc->partitions[i]) {
            return -NG_EPROTO;
        }
        rc->errs[i] = r.err;
        first = first != 0 ? first : r.err;
    }
    return first;
}

/* The checks made before sending (nagare.h). */
static int reassign_args_ok(const char *topic, const int32_t *partitions, size_t partition_count,
                            const int32_t *replicas, size_t replica_count)
{
    if (topic == NULL ||
        !proto_topic_name_valid(topic, strnlen(topic, PROTO_TOPIC_NAME_BYTES_MAX + 1))) {
        return -NG_EBADNAME;
    }
    if (partitions == NULL || partition_count == 0 ||
        partition_count > NAGARE_REASSIGN_PARTITIONS_MAX || replicas == NULL ||
        replica_count == 0 || replica_count > NAGARE_REPLICAS_MAX) {
        return -NG_EBADARG;
    }
    for (size_t i = 0; i < replica_count; i++) {
        for (size_t j = 0; j < i; j++) {
            if (replicas[j] == replicas[i]) {
                return -NG_EBADARG;
            }
        }
        if (replicas[i] < 0) {
            return -NG_EBADARG;
        }
    }
    return 0;
}

int nagare_partitions_reassign(nagare_admin *a, const char *topic, const int32_t *partitions,
                               size_t partition_count, const int32_t *replicas,
                               size_t replica_count, int *errs_out)
{
    ASSERT(a != NULL);
    int rc = reassign_args_ok(topic, partitions, partition_count, replicas, replica_count);
    if (rc != 0) {
        return rc;
    }
    int *errs = errs_out != NULL ? errs_out : calloc(partition_count, sizeof(*errs));
    if (errs == NULL) {
        return -ENOMEM;
    }
    struct reassign_call call = {.topic = topic,
                                 .partitions = partitions,
                                 .partition_count = partition_count,
                                 .target = {.replica_count = (uint8_t)replica_count},
                                 .errs = errs};
    memcpy(call.target.replicas, replicas, replica_count * sizeof(*replicas));
    /* A partition's entry: its index and its ids. */
    size_t need = 64 + PROTO_TOPIC_BYTES_MAX +
                  partition_count * PROTO_REASSIGN_PARTITION_BYTES(replica_count);
    rc =
        admin_call(a, PROTO_API_REASSIGN_PARTITIONS, need, reassign_encode, reassign_decode, &call);
    if (errs != errs_out) {
        free(errs);
    }
    return rc;
}
