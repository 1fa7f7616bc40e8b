/*
 * client/admin_cluster.c — nagare_cluster_describe(): one Metadata v2
 * request for every topic, its brokers and partition states copied into
 * one allocation (the info, brokers, partitions, replica ids, then the
 * strings), so nagare_cluster_info_free() is a single free().
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
            z->ids += (size_t)mp.replica_count + mp.isr_count;
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
                    mp.isr_count < mp.replica_count || mp.leader == PROTO_BROKER_NONE};
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
    int rc = conn_call(admin_conn(a), PROTO_API_METADATA, 64, cluster_encode, cluster_decode, &cc,
                       admin_deadline(a));
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
