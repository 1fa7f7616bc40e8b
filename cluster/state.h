/*
 * cluster/state.h — the cluster as the brokers see it: live brokers, the
 * controller, the topic catalog and each partition's replicas, leader,
 * leader epoch and in-sync set (docs/cluster.md, sections 1-2), and the
 * JSON records they are kept as in etcd.
 *
 * Contract:
 * - A struct cluster_view is an immutable snapshot at one etcd revision.
 *   The cluster thread builds each new one and hands it over whole
 *   (ownership moves with it); nobody changes a view once handed over, so
 *   a view may be read from any thread that holds it. cluster_view_free()
 *   frees it.
 * - Invariants of a view (cluster_view_check() asserts them): brokers
 *   sorted by id, ids unique; topics sorted by name; each topic has
 *   `partitions` partition states, index i at parts[i]; each partition's
 *   replicas are distinct, 1..CLUSTER_REPLICAS_MAX of them; its ISR is a
 *   subset of its replicas; its leader is -1 (none) or a member of its ISR
 *   (unclean election puts the chosen replica in the ISR alone).
 * - The record codecs check everything they decode (types, ranges, the
 *   invariants above per record) and return -NG_EPROTO naming nothing
 *   else: a bad record in etcd is logged by the caller and skipped, never
 *   trusted.
 * - cluster must not include broker/: the broker maps these records onto
 *   its own types.
 */
#ifndef NAGARE_CLUSTER_STATE_H
#define NAGARE_CLUSTER_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/assert.h"
#include "net/proto.h"

#define CLUSTER_BROKER_ID_MAX 1000000 /* ids are 0..this */
#define CLUSTER_BROKERS_MAX 1024
#define CLUSTER_REPLICAS_MAX 7 /* replication factor limit */
#define CLUSTER_HOST_BYTES 256 /* NUL included */
#define CLUSTER_NAME_BYTES 64  /* the key prefix's name, NUL included */
#define CLUSTER_LEADER_NONE (-1)

struct cluster_broker {
    int32_t id;
    char host[CLUSTER_HOST_BYTES];
    uint16_t port;
    int64_t incarnation; /* its start time, ms: tells a restart apart */
    /* Where Kafka's clients reach it (its Kafka listener); kafka_port 0:
     * none (a broker with kafka_listen off, or one from before it). */
    char kafka_host[CLUSTER_HOST_BYTES];
    uint16_t kafka_port;
    /* Not the record's: its brokers/<id> key's create revision. A
     * registration made again (a restart, a lease lost) has a newer one. */
    int64_t reg_revision;
};

/* A topic's settings as the catalog in etcd keeps them; -1 fields take the
 * broker's default (PROTO_CONFIG_DEFAULT), -2 retention is unlimited. */
struct cluster_topic_config {
    int64_t retention_ms;
    int64_t retention_bytes;
    int64_t segment_bytes;
    int64_t segment_ms;
    int32_t batch_bytes_max;
    int32_t min_insync_replicas;  /* 1..replication_factor; -1: the broker's default */
    bool unclean_leader_election; /* false: only an in-sync replica may lead */
};

struct cluster_partition {
    int32_t index;
    int32_t leader; /* broker id, or CLUSTER_LEADER_NONE */
    int32_t leader_epoch;
    uint8_t replica_count;
    int32_t replicas[CLUSTER_REPLICAS_MAX]; /* the first is the preferred leader */
    uint8_t isr_count;
    int32_t isr[CLUSTER_REPLICAS_MAX];
    int64_t controller_epoch; /* of the controller that last changed leader/replicas */
    int64_t mod_revision;     /* its key's, for the next compare-and-swap */
    /* Not the record's: the target of a reassignment in progress
     * (reassign/<topic>/<i>, when good), for Metadata to show; 0 when none. */
    uint8_t target_count;
    int32_t target[CLUSTER_REPLICAS_MAX];
};

struct cluster_topic {
    char name[PROTO_TOPIC_NAME_BYTES_MAX + 1];
    int32_t partitions;
    int16_t replication_factor;
    struct cluster_topic_config cfg;
    int64_t mod_revision;
    struct cluster_partition *parts; /* partitions of them; NULL entries never */
};

/* One credential of a user, as users/<user>/<mechanism> holds it
 * (docs/cluster.md, section 2): the value is the broker's to read
 * (broker/users.h); the cluster only carries it. Sizes, NUL included: a
 * user name of at most 128 bytes, a mechanism name, and a value with
 * room for base64 of a 64-byte salt and two 64-byte keys. */
#define CLUSTER_USER_BYTES 129
#define CLUSTER_MECHANISM_BYTES 32
#define CLUSTER_USER_VALUE_BYTES 512
/* Credentials a view carries at most: 4096 users of two mechanisms. */
#define CLUSTER_USER_CREDS_MAX 8192
struct cluster_user_cred {
    char user[CLUSTER_USER_BYTES];
    char mechanism[CLUSTER_MECHANISM_BYTES];
    char value[CLUSTER_USER_VALUE_BYTES];
};

/* One ACL, as acls/<key> holds it (docs/cluster.md, section 2): the key
 * is the broker's name for the ACL (hex digits of a hash of its value),
 * the value its encoding (broker/acl.h); the cluster only carries both.
 * Sizes: a key of at most 64 bytes (NUL after it), a value of at most
 * 1 KiB (an ACL's longest encoding is ~600 bytes). As many as a broker
 * keeps (ACL_COUNT_MAX). */
#define CLUSTER_ACL_KEY_BYTES 65
#define CLUSTER_ACL_VALUE_BYTES 1024
#define CLUSTER_ACLS_MAX 4096
struct cluster_acl_rec {
    char key[CLUSTER_ACL_KEY_BYTES];
    uint16_t value_len;
    uint8_t value[CLUSTER_ACL_VALUE_BYTES];
};

struct cluster_view {
    int64_t revision;   /* the etcd revision it reflects */
    int32_t controller; /* broker id, or -1 while there is none */
    int64_t controller_epoch;
    struct cluster_broker *brokers; /* live brokers (their lease holds), by id */
    uint32_t broker_count;
    struct cluster_topic *topics; /* by name */
    uint32_t topic_count;
    /* users/<user>/<mechanism> records whose key parts fit, by key; the
     * values unchecked (the broker decodes them) */
    struct cluster_user_cred *user_creds;
    uint32_t user_cred_count;
    /* acls/<key> records whose key and value fit, by key; the values
     * unchecked (the broker decodes them) */
    struct cluster_acl_rec *acl_recs;
    uint32_t acl_rec_count;
    /* Not etcd's: true while the broker that received the view cannot be
     * sure its own registration holds (cluster/session.h, "Fencing"); it
     * must then lead nothing. */
    bool fenced;
};

void cluster_view_free(struct cluster_view *v);
/* Asserts the invariants above. */
void cluster_view_check(const struct cluster_view *v);

/* Lookups: NULL when absent. Binary searches. */
const struct cluster_broker *cluster_view_broker(const struct cluster_view *v, int32_t id);
const struct cluster_topic *cluster_view_topic(const struct cluster_view *v, const char *name,
                                               size_t name_len);
const struct cluster_partition *cluster_view_partition(const struct cluster_view *v,
                                                       const char *topic, size_t topic_len,
                                                       int32_t index);

bool cluster_partition_in_isr(const struct cluster_partition *p, int32_t broker_id);
/* Whether p's leader is live under the registration it had when p last
 * changed (registered no later than p's key was written). A leader
 * registered again since (restarted, or its lease lost and made again)
 * may have lost what it had not synced, and its followers may hold that:
 * it must not go on at p's epoch, only lead again once elected at a new
 * one (controller_elect() does; replica_apply() waits for it). */
bool cluster_partition_leader_holds(const struct cluster_view *v,
                                    const struct cluster_partition *p);
bool cluster_partition_has_replica(const struct cluster_partition *p, int32_t broker_id);

/* ---- records (docs/cluster.md, section 2): JSON text <-> structs ---- */

/* Encoders write NUL-terminated JSON into buf[cap) and return its length,
 * or -NG_ENOSPACE. Decoders parse json[0..len) into *out. */
MUST_USE int cluster_broker_encode(const struct cluster_broker *b, char *buf, size_t cap);
MUST_USE int cluster_broker_decode(const char *json, size_t len, struct cluster_broker *out);
MUST_USE int cluster_topic_encode(const struct cluster_topic *t, char *buf, size_t cap);
/* Whether t's partitions, replication_factor and settings are in their
 * ranges (the check cluster_topic_encode() asserts and _decode() applies):
 * partitions 1..PROTO_PARTITIONS_MAX, replication_factor
 * 1..CLUSTER_REPLICAS_MAX, each setting -1 (the broker's default) or >= 1,
 * retention also -2 (unlimited), batch_bytes_max within an i32,
 * min_insync_replicas at most replication_factor. */
bool cluster_topic_ok(const struct cluster_topic *t);
/* Fills everything but name, parts and mod_revision (the name comes from
 * the key). */
MUST_USE int cluster_topic_decode(const char *json, size_t len, struct cluster_topic *out);
MUST_USE int cluster_partition_encode(const struct cluster_partition *p, char *buf, size_t cap);
/* Fills everything but index and mod_revision (they come from the key). */
MUST_USE int cluster_partition_decode(const char *json, size_t len, struct cluster_partition *out);

/* controller: {"broker":B,"epoch":E}; controller_epoch: {"epoch":E}
 * (broker 0..CLUSTER_BROKER_ID_MAX, epoch >= 1). */
MUST_USE int cluster_controller_encode(int32_t broker, int64_t epoch, char *buf, size_t cap);
MUST_USE int cluster_controller_decode(const char *json, size_t len, int32_t *broker,
                                       int64_t *epoch);
MUST_USE int cluster_epoch_encode(int64_t epoch, char *buf, size_t cap);
MUST_USE int cluster_epoch_decode(const char *json, size_t len, int64_t *epoch);

/* reassign/<topic>/<i>: {"replicas":[...]}, 1..CLUSTER_REPLICAS_MAX
 * distinct broker ids. */
struct cluster_reassign {
    uint8_t replica_count;
    int32_t replicas[CLUSTER_REPLICAS_MAX];
};
MUST_USE int cluster_reassign_encode(const struct cluster_reassign *r, char *buf, size_t cap);
MUST_USE int cluster_reassign_decode(const char *json, size_t len, struct cluster_reassign *out);

#endif
