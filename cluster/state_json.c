/* cluster/state_json.c — the JSON records of docs/cluster.md, section 2,
 * with jansson. Each record has one check, used by its decoder on what it
 * read and asserted by its encoder on what it is given, so nothing written
 * can fail to read back. Fields a record does not know are ignored (a
 * newer broker may add some); a field missing, of the wrong type or out of
 * its range is -NG_EPROTO. */
#include <errno.h>
#include <jansson.h>
#include <string.h>

#include "base/err.h"
#include "cluster/state.h"

/* ---- reading ---- */

static int parse(const char *text, size_t len, json_t **out)
{
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        return -NG_EPROTO;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        return -NG_EPROTO;
    }
    *out = root;
    return 0;
}

/* obj[key], an integer in min..max. */
static int get_int(const json_t *obj, const char *key, int64_t min, int64_t max, int64_t *out)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v)) {
        return -NG_EPROTO;
    }
    json_int_t n = json_integer_value(v);
    if (n < min || n > max) {
        return -NG_EPROTO;
    }
    *out = n;
    return 0;
}

/* A setting of a topic's config: -1 (the broker's default), -2 when
 * unlimited is allowed, or min..max. */
static bool setting_ok(int64_t v, bool unlimited_ok, int64_t max)
{
    return v == PROTO_CONFIG_DEFAULT || (unlimited_ok && v == PROTO_CONFIG_UNLIMITED) ||
           (v >= 1 && v <= max);
}

static int get_setting(const json_t *obj, const char *key, bool unlimited_ok, int64_t max,
                       int64_t *out)
{
    int rc = get_int(obj, key, PROTO_CONFIG_UNLIMITED, max, out);
    if (rc == 0 && !setting_ok(*out, unlimited_ok, max)) {
        return -NG_EPROTO;
    }
    return rc;
}

static bool id_ok(int64_t id) { return id >= 0 && id <= CLUSTER_BROKER_ID_MAX; }

static bool ids_distinct(const int32_t *ids, uint8_t count)
{
    for (uint8_t i = 0; i < count; i++) {
        for (uint8_t j = 0; j < i; j++) {
            if (ids[i] == ids[j]) {
                return false;
            }
        }
    }
    return true;
}

/* obj[key], an array of min_count..CLUSTER_REPLICAS_MAX distinct broker ids. */
static int get_ids(const json_t *obj, const char *key, size_t min_count, int32_t *ids,
                   uint8_t *count)
{
    const json_t *arr = json_object_get(obj, key);
    if (!json_is_array(arr)) {
        return -NG_EPROTO;
    }
    size_t n = json_array_size(arr);
    if (n < min_count || n > CLUSTER_REPLICAS_MAX) {
        return -NG_EPROTO;
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_array_get(arr, i);
        if (!json_is_integer(v) || !id_ok(json_integer_value(v))) {
            return -NG_EPROTO;
        }
        ids[i] = (int32_t)json_integer_value(v);
    }
    *count = (uint8_t)n;
    return ids_distinct(ids, *count) ? 0 : -NG_EPROTO;
}

/* ---- writing ---- */

/* Dumps root (consumed) into buf[cap) with a NUL: its length, -NG_ENOSPACE
 * or -ENOMEM (root NULL: building it ran out of memory). */
static int dump(json_t *root, char *buf, size_t cap)
{
    if (root == NULL) {
        return -ENOMEM;
    }
    size_t n = json_dumpb(root, buf, cap, JSON_COMPACT);
    json_decref(root);
    if (n == 0) {
        return -ENOMEM;
    }
    if (n >= cap) {
        return -NG_ENOSPACE;
    }
    buf[n] = '\0';
    return (int)n;
}

static json_t *ids_json(const int32_t *ids, uint8_t count)
{
    json_t *arr = json_array();
    for (uint8_t i = 0; arr != NULL && i < count; i++) {
        if (json_array_append_new(arr, json_integer(ids[i])) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    return arr;
}

/* ---- brokers/<id> ---- */

/* A host as the view keeps it: printable ASCII without blanks. */
static bool host_ok(const char *h, size_t len)
{
    if (len == 0 || len >= CLUSTER_HOST_BYTES) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (h[i] <= ' ' || h[i] > '~') {
            return false;
        }
    }
    return true;
}

static bool broker_ok(const struct cluster_broker *b)
{
    return id_ok(b->id) && host_ok(b->host, strnlen(b->host, CLUSTER_HOST_BYTES)) && b->port != 0 &&
           b->incarnation >= 0 &&
           (b->kafka_port == 0 ||
            host_ok(b->kafka_host, strnlen(b->kafka_host, CLUSTER_HOST_BYTES)));
}

int cluster_broker_encode(const struct cluster_broker *b, char *buf, size_t cap)
{
    ASSERT(broker_ok(b));
    if (b->kafka_port == 0) {
        return dump(json_pack("{s:i, s:s, s:i, s:I}", "id", (int)b->id, "host", b->host, "port",
                              (int)b->port, "incarnation", (json_int_t)b->incarnation),
                    buf, cap);
    }
    return dump(json_pack("{s:i, s:s, s:i, s:I, s:s, s:i}", "id", (int)b->id, "host", b->host,
                          "port", (int)b->port, "incarnation", (json_int_t)b->incarnation,
                          "kafka_host", b->kafka_host, "kafka_port", (int)b->kafka_port),
                buf, cap);
}

/* The optional Kafka address: both fields or neither. */
static int broker_kafka(const json_t *root, struct cluster_broker *b)
{
    const json_t *host = json_object_get(root, "kafka_host");
    if (host == NULL && json_object_get(root, "kafka_port") == NULL) {
        return 0;
    }
    int64_t port = 0;
    int rc = get_int(root, "kafka_port", 1, UINT16_MAX, &port);
    if (rc != 0 || !json_is_string(host) ||
        !host_ok(json_string_value(host), json_string_length(host))) {
        return -NG_EPROTO;
    }
    b->kafka_port = (uint16_t)port;
    memcpy(b->kafka_host, json_string_value(host), json_string_length(host) + 1);
    return 0;
}

int cluster_broker_decode(const char *json, size_t len, struct cluster_broker *out)
{
    json_t *root = NULL;
    int rc = parse(json, len, &root);
    if (rc != 0) {
        return rc;
    }
    struct cluster_broker b = {0};
    int64_t id = 0, port = 0;
    const json_t *host = json_object_get(root, "host");
    rc = get_int(root, "id", 0, CLUSTER_BROKER_ID_MAX, &id);
    rc = rc ? rc : get_int(root, "port", 1, UINT16_MAX, &port);
    rc = rc ? rc : get_int(root, "incarnation", 0, INT64_MAX, &b.incarnation);
    rc = rc ? rc : broker_kafka(root, &b);
    /* jansson refuses "\u0000" in strings (no JSON_ALLOW_NUL): the length
     * is the C string's. */
    if (rc == 0 &&
        (!json_is_string(host) || !host_ok(json_string_value(host), json_string_length(host)))) {
        rc = -NG_EPROTO;
    }
    if (rc == 0) {
        b.id = (int32_t)id;
        b.port = (uint16_t)port;
        memcpy(b.host, json_string_value(host), json_string_length(host) + 1);
        *out = b;
    }
    json_decref(root);
    return rc;
}

/* ---- topics/<name> ---- */

bool cluster_topic_ok(const struct cluster_topic *t)
{
    const struct cluster_topic_config *c = &t->cfg;
    return t->partitions >= 1 && t->partitions <= PROTO_PARTITIONS_MAX &&
           t->replication_factor >= 1 && t->replication_factor <= CLUSTER_REPLICAS_MAX &&
           setting_ok(c->retention_ms, true, INT64_MAX) &&
           setting_ok(c->retention_bytes, true, INT64_MAX) &&
           setting_ok(c->segment_bytes, false, INT64_MAX) &&
           setting_ok(c->segment_ms, false, INT64_MAX) &&
           setting_ok(c->batch_bytes_max, false, INT32_MAX) &&
           setting_ok(c->min_insync_replicas, false, t->replication_factor);
}

int cluster_topic_encode(const struct cluster_topic *t, char *buf, size_t cap)
{
    ASSERT(cluster_topic_ok(t));
    const struct cluster_topic_config *c = &t->cfg;
    json_t *cfg = json_pack(
        "{s:I, s:I, s:I, s:I, s:i, s:i}", "retention_ms", (json_int_t)c->retention_ms,
        "retention_bytes", (json_int_t)c->retention_bytes, "segment_bytes",
        (json_int_t)c->segment_bytes, "segment_ms", (json_int_t)c->segment_ms, "batch_bytes_max",
        (int)c->batch_bytes_max, "min_insync_replicas", (int)c->min_insync_replicas);
    if (cfg == NULL) {
        return -ENOMEM;
    }
    return dump(json_pack("{s:i, s:i, s:o, s:b}", "partitions", (int)t->partitions,
                          "replication_factor", (int)t->replication_factor, "config", cfg,
                          "unclean_leader_election", (int)c->unclean_leader_election),
                buf, cap);
}

static int topic_config_decode(const json_t *cfg, int16_t replication_factor,
                               struct cluster_topic_config *c)
{
    int64_t batch = 0, min_isr = 0;
    int rc = json_is_object(cfg) ? 0 : -NG_EPROTO;
    rc = rc ? rc : get_setting(cfg, "retention_ms", true, INT64_MAX, &c->retention_ms);
    rc = rc ? rc : get_setting(cfg, "retention_bytes", true, INT64_MAX, &c->retention_bytes);
    rc = rc ? rc : get_setting(cfg, "segment_bytes", false, INT64_MAX, &c->segment_bytes);
    rc = rc ? rc : get_setting(cfg, "segment_ms", false, INT64_MAX, &c->segment_ms);
    rc = rc ? rc : get_setting(cfg, "batch_bytes_max", false, INT32_MAX, &batch);
    rc = rc ? rc : get_setting(cfg, "min_insync_replicas", false, replication_factor, &min_isr);
    c->batch_bytes_max = (int32_t)batch;
    c->min_insync_replicas = (int32_t)min_isr;
    return rc;
}

int cluster_topic_decode(const char *json, size_t len, struct cluster_topic *out)
{
    json_t *root = NULL;
    int rc = parse(json, len, &root);
    if (rc != 0) {
        return rc;
    }
    struct cluster_topic t = {0};
    int64_t partitions = 0, rf = 0;
    const json_t *unclean = json_object_get(root, "unclean_leader_election");
    rc = get_int(root, "partitions", 1, PROTO_PARTITIONS_MAX, &partitions);
    rc = rc ? rc : get_int(root, "replication_factor", 1, CLUSTER_REPLICAS_MAX, &rf);
    rc = rc ? rc : topic_config_decode(json_object_get(root, "config"), (int16_t)rf, &t.cfg);
    rc = rc ? rc : json_is_boolean(unclean) ? 0 : -NG_EPROTO;
    if (rc == 0) {
        t.partitions = (int32_t)partitions;
        t.replication_factor = (int16_t)rf;
        t.cfg.unclean_leader_election = json_is_true(unclean);
        ASSERT(cluster_topic_ok(&t));
        out->partitions = t.partitions;
        out->replication_factor = t.replication_factor;
        out->cfg = t.cfg;
    }
    json_decref(root);
    return rc;
}

/* ---- partitions/<name>/<i> ---- */

/* The view's per-partition invariants (cluster/state.h), on one record. */
static bool partition_ok(const struct cluster_partition *p)
{
    if (p->replica_count < 1 || p->replica_count > CLUSTER_REPLICAS_MAX ||
        p->isr_count > p->replica_count || !ids_distinct(p->replicas, p->replica_count) ||
        !ids_distinct(p->isr, p->isr_count) || p->leader_epoch < 0 || p->controller_epoch < 0) {
        return false;
    }
    for (uint8_t i = 0; i < p->replica_count; i++) {
        if (!id_ok(p->replicas[i])) {
            return false;
        }
    }
    for (uint8_t i = 0; i < p->isr_count; i++) {
        if (!cluster_partition_has_replica(p, p->isr[i])) {
            return false;
        }
    }
    return p->leader == CLUSTER_LEADER_NONE || cluster_partition_in_isr(p, p->leader);
}

int cluster_partition_encode(const struct cluster_partition *p, char *buf, size_t cap)
{
    ASSERT(partition_ok(p));
    json_t *replicas = ids_json(p->replicas, p->replica_count);
    json_t *isr = ids_json(p->isr, p->isr_count);
    if (replicas == NULL || isr == NULL) {
        json_decref(replicas);
        json_decref(isr);
        return -ENOMEM;
    }
    return dump(json_pack("{s:o, s:i, s:i, s:o, s:I}", "replicas", replicas, "leader",
                          (int)p->leader, "leader_epoch", (int)p->leader_epoch, "isr", isr,
                          "controller_epoch", (json_int_t)p->controller_epoch),
                buf, cap);
}

int cluster_partition_decode(const char *json, size_t len, struct cluster_partition *out)
{
    json_t *root = NULL;
    int rc = parse(json, len, &root);
    if (rc != 0) {
        return rc;
    }
    struct cluster_partition p = {0};
    int64_t leader = 0, epoch = 0;
    rc = get_ids(root, "replicas", 1, p.replicas, &p.replica_count);
    rc = rc ? rc : get_ids(root, "isr", 0, p.isr, &p.isr_count);
    rc = rc ? rc : get_int(root, "leader", CLUSTER_LEADER_NONE, CLUSTER_BROKER_ID_MAX, &leader);
    rc = rc ? rc : get_int(root, "leader_epoch", 0, INT32_MAX, &epoch);
    rc = rc ? rc : get_int(root, "controller_epoch", 0, INT64_MAX, &p.controller_epoch);
    p.leader = (int32_t)leader;
    p.leader_epoch = (int32_t)epoch;
    if (rc == 0 && !partition_ok(&p)) {
        rc = -NG_EPROTO;
    }
    if (rc == 0) {
        p.index = out->index;
        p.mod_revision = out->mod_revision;
        *out = p;
    }
    json_decref(root);
    return rc;
}

/* ---- controller, controller_epoch ---- */

int cluster_controller_encode(int32_t broker, int64_t epoch, char *buf, size_t cap)
{
    ASSERT(id_ok(broker) && epoch >= 1);
    return dump(json_pack("{s:i, s:I}", "broker", (int)broker, "epoch", (json_int_t)epoch), buf,
                cap);
}

int cluster_controller_decode(const char *json, size_t len, int32_t *broker, int64_t *epoch)
{
    json_t *root = NULL;
    int rc = parse(json, len, &root);
    if (rc != 0) {
        return rc;
    }
    int64_t b = 0, e = 0;
    rc = get_int(root, "broker", 0, CLUSTER_BROKER_ID_MAX, &b);
    rc = rc ? rc : get_int(root, "epoch", 1, INT64_MAX, &e);
    if (rc == 0) {
        *broker = (int32_t)b;
        *epoch = e;
    }
    json_decref(root);
    return rc;
}

int cluster_epoch_encode(int64_t epoch, char *buf, size_t cap)
{
    ASSERT(epoch >= 1);
    return dump(json_pack("{s:I}", "epoch", (json_int_t)epoch), buf, cap);
}

int cluster_epoch_decode(const char *json, size_t len, int64_t *epoch)
{
    json_t *root = NULL;
    int rc = parse(json, len, &root);
    if (rc != 0) {
        return rc;
    }
    int64_t e = 0;
    rc = get_int(root, "epoch", 1, INT64_MAX, &e);
    if (rc == 0) {
        *epoch = e;
    }
    json_decref(root);
    return rc;
}

/* ---- reassign/<name>/<i> ---- */

int cluster_reassign_encode(const struct cluster_reassign *r, char *buf, size_t cap)
{
    ASSERT(r->replica_count >= 1 && r->replica_count <= CLUSTER_REPLICAS_MAX);
    ASSERT(ids_distinct(r->replicas, r->replica_count));
    json_t *replicas = ids_json(r->replicas, r->replica_count);
    if (replicas == NULL) {
        return -ENOMEM;
    }
    return dump(json_pack("{s:o}", "replicas", replicas), buf, cap);
}

int cluster_reassign_decode(const char *json, size_t len, struct cluster_reassign *out)
{
    json_t *root = NULL;
    int rc = parse(json, len, &root);
    if (rc != 0) {
        return rc;
    }
    struct cluster_reassign r = {0};
    rc = get_ids(root, "replicas", 1, r.replicas, &r.replica_count);
    if (rc == 0) {
        *out = r;
    }
    json_decref(root);
    return rc;
}
