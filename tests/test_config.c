/* Tests for broker/config.h: defaults, every key, the file, the command line. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "broker/config.h"

static char err[1024];

/* ---- helpers ---- */

#define ARGV(...) ((char *[]){"nagared", __VA_ARGS__, NULL})
#define ARGC(...) ((int)(sizeof((char *[]){"nagared", __VA_ARGS__}) / sizeof(char *)))
#define PARSE(c, ...) \
    broker_config_parse_args((c), ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), err, sizeof(err))

static void set_ok(struct broker_config *c, const char *key, const char *value)
{
    int rc = broker_config_set(c, key, value, err, sizeof(err));
    cr_assert_eq(rc, 0, "%s = %s: %s", key, value, err);
}

/* Refused with a message naming the key; c left as it was. */
static void set_bad(const char *key, const char *value)
{
    struct broker_config c, before;
    broker_config_default(&c);
    before = c;
    err[0] = '\0';
    int rc = broker_config_set(&c, key, value, err, sizeof(err));
    cr_assert_eq(rc, -NG_EBADARG, "%s = '%s' accepted", key, value);
    cr_assert(strstr(err, key) != NULL, "message '%s' does not name %s", err, key);
    cr_assert_eq(memcmp(&c, &before, sizeof(c)), 0, "%s = '%s' changed the config", key, value);
}

static bool config_eq(const struct broker_config *a, const struct broker_config *b)
{
    return strcmp(a->listen_host, b->listen_host) == 0 && a->listen_port == b->listen_port &&
           a->authentication == b->authentication && a->sasl_mechanisms == b->sasl_mechanisms &&
           a->login_failures_max == b->login_failures_max &&
           a->login_block_ms == b->login_block_ms &&
           strcmp(a->inter_broker_user, b->inter_broker_user) == 0 &&
           strcmp(a->inter_broker_password_file, b->inter_broker_password_file) == 0 &&
           strcmp(a->data_dir, b->data_dir) == 0 &&
           a->auto_create_topics == b->auto_create_topics && a->authorizer == b->authorizer &&
           strcmp(a->super_users, b->super_users) == 0 &&
           a->default_partitions == b->default_partitions && a->retention_ms == b->retention_ms &&
           a->retention_bytes == b->retention_bytes && a->segment_bytes == b->segment_bytes &&
           a->segment_ms == b->segment_ms && a->batch_bytes_max == b->batch_bytes_max &&
           a->index_interval_bytes == b->index_interval_bytes &&
           a->retention_check_ms == b->retention_check_ms &&
           a->fetch_wait_max_ms == b->fetch_wait_max_ms &&
           a->producer_ids_max == b->producer_ids_max && a->share_lock_ms == b->share_lock_ms &&
           a->share_delivery_max == b->share_delivery_max &&
           a->share_inflight_max == b->share_inflight_max &&
           a->frame_bytes_max == b->frame_bytes_max && a->conn_max == b->conn_max &&
           a->conn_inflight_max == b->conn_inflight_max &&
           a->partial_bytes_max == b->partial_bytes_max &&
           a->partial_timeout_ms == b->partial_timeout_ms && a->log_level == b->log_level &&
           a->log_format == b->log_format && a->broker_id == b->broker_id &&
           strcmp(a->etcd_endpoints, b->etcd_endpoints) == 0 &&
           strcmp(a->advertised_host, b->advertised_host) == 0 &&
           a->advertised_port == b->advertised_port &&
           strcmp(a->cluster_name, b->cluster_name) == 0 &&
           a->default_replication_factor == b->default_replication_factor &&
           a->min_insync_replicas == b->min_insync_replicas &&
           a->replica_lag_ms == b->replica_lag_ms && a->lease_ttl_s == b->lease_ttl_s &&
           a->preferred_leader_check_ms == b->preferred_leader_check_ms &&
           a->redrive_retry_ms == b->redrive_retry_ms && a->listen_tls == b->listen_tls &&
           a->kafka_listen_tls == b->kafka_listen_tls &&
           strcmp(a->tls_cert_file, b->tls_cert_file) == 0 &&
           strcmp(a->tls_key_file, b->tls_key_file) == 0 &&
           strcmp(a->tls_ca_file, b->tls_ca_file) == 0 &&
           a->tls_client_auth == b->tls_client_auth &&
           a->tls_handshake_timeout_ms == b->tls_handshake_timeout_ms;
}

/* Writes bytes to a fresh temporary file; returns its path (static). */
static const char *temp_file(const void *bytes, size_t len)
{
    static char path[64];
    snprintf(path, sizeof(path), "/tmp/nagare-config-XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, bytes, len), (ssize_t)len);
    close(fd);
    return path;
}

static const char *temp_text(const char *text) { return temp_file(text, strlen(text)); }

static int load(struct broker_config *c, const char *text)
{
    const char *path = temp_text(text);
    int rc = broker_config_load_file(c, path, err, sizeof(err));
    unlink(path);
    return rc;
}

static char *fmt_ll(long long v)
{
    static char buf[8][32];
    static int at;
    at = (at + 1) % 8;
    snprintf(buf[at], sizeof(buf[at]), "%lld", v);
    return buf[at];
}

/* ---- defaults ---- */

Test(config, defaults)
{
    struct broker_config c;
    struct part_config p;
    broker_config_default(&c);
    part_config_default(&p);
    cr_assert_str_eq(c.listen_host, "127.0.0.1");
    cr_assert_eq(c.listen_port, 7420);
    cr_assert_str_eq(c.data_dir, "./nagare-data");
    cr_assert(c.auto_create_topics);
    cr_assert_eq(c.default_partitions, 1);
    cr_assert_eq(c.retention_ms, 7LL * 24 * 3600 * 1000);
    cr_assert_eq(c.retention_ms, p.retention_ms);
    cr_assert_eq(c.retention_bytes, -1);
    cr_assert_eq(c.segment_bytes, 1LL << 30);
    cr_assert_eq((uint64_t)c.segment_bytes, p.segment_bytes);
    cr_assert_eq(c.segment_ms, p.segment_ms);
    cr_assert_eq(c.batch_bytes_max, 8 << 20);
    cr_assert_eq(c.index_interval_bytes, 4096u);
    cr_assert_eq(c.retention_check_ms, 60000u);
    cr_assert_eq(c.fetch_wait_max_ms, 30000u);
    cr_assert_eq(c.producer_ids_max, 1024u);
    struct share_config sc;
    share_config_default(&sc);
    cr_assert_eq(c.share_lock_ms, sc.lock_ms);
    cr_assert_eq(c.share_delivery_max, sc.delivery_max);
    cr_assert_eq(c.share_inflight_max, sc.inflight_max);
    cr_assert_eq(c.frame_bytes_max, PROTO_FRAME_BYTES_DEFAULT);
    cr_assert_eq(c.frame_bytes_max, 64u << 20);
    cr_assert_eq(c.conn_max, LOOP_CONN_MAX_DEFAULT);
    cr_assert_eq(c.conn_inflight_max, LOOP_CONN_INFLIGHT_MAX_DEFAULT);
    cr_assert_eq(c.partial_bytes_max, LOOP_PARTIAL_BYTES_MAX_DEFAULT);
    cr_assert_eq(c.partial_timeout_ms, LOOP_PARTIAL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(c.log_level, LOG_INFO);
    cr_assert_eq(c.broker_id, -1, "a single broker");
    cr_assert(!broker_config_clustered(&c));
    cr_assert_str_eq(c.etcd_endpoints, "");
    cr_assert_str_eq(c.advertised_host, "");
    cr_assert_eq(c.advertised_port, 0);
    cr_assert_str_eq(c.cluster_name, "nagare");
    cr_assert_eq(c.default_replication_factor, 3);
    cr_assert_eq(c.min_insync_replicas, 2);
    cr_assert_eq(c.replica_lag_ms, 10000u);
    cr_assert_eq(c.lease_ttl_s, 6u);
    cr_assert_eq(c.redrive_retry_ms, 15000u);
    cr_assert_eq(c.preferred_leader_check_ms, 30000u);
    cr_assert_eq(broker_config_check(&c, err, sizeof(err)), 0, "%s", err);
}

Test(config, the_kafka_listener_is_on_loopback_9092_unless_moved_or_turned_off)
{
    struct broker_config c;
    broker_config_default(&c);
    cr_assert(broker_config_kafka(&c));
    cr_assert_str_eq(c.kafka_listen_host, "127.0.0.1");
    cr_assert_eq(c.kafka_listen_port, 9092);
    set_ok(&c, "kafka_listen", "0.0.0.0:19092");
    cr_assert_str_eq(c.kafka_listen_host, "0.0.0.0");
    cr_assert_eq(c.kafka_listen_port, 19092);
    cr_assert_eq(c.listen_port, 7420, "nagare's own listener stays");
    set_ok(&c, "kafka_listen", "off");
    cr_assert(!broker_config_kafka(&c));
    set_bad("kafka_listen", "nowhere");
    cr_assert_eq(PARSE(&c, "--kafka-listen", "127.0.0.1:0"), BROKER_ARGS_RUN, "%s", err);
    cr_assert(broker_config_kafka(&c));
    cr_assert_eq(c.kafka_listen_port, 0);
}

Test(config, the_admin_listener_is_on_loopback_9644_unless_moved_or_turned_off)
{
    struct broker_config c;
    broker_config_default(&c);
    cr_assert(broker_config_admin(&c));
    cr_assert_str_eq(c.admin_listen_host, "127.0.0.1");
    cr_assert_eq(c.admin_listen_port, 9644);
    set_ok(&c, "admin_listen", "[::1]:19644");
    cr_assert_str_eq(c.admin_listen_host, "::1");
    cr_assert_eq(c.admin_listen_port, 19644);
    cr_assert_eq(c.kafka_listen_port, 9092, "the Kafka listener stays");
    set_ok(&c, "admin_listen", "off");
    cr_assert(!broker_config_admin(&c));
    cr_assert(broker_config_kafka(&c), "off for one listener only");
    set_bad("admin_listen", "nowhere");
    cr_assert_eq(PARSE(&c, "--admin-listen", "127.0.0.1:0"), BROKER_ARGS_RUN, "%s", err);
    cr_assert(broker_config_admin(&c));
    cr_assert_eq(c.admin_listen_port, 0);
}

Test(config, part_config_from_topic_defaults)
{
    struct broker_config c;
    struct part_config p;
    broker_config_default(&c);
    set_ok(&c, "segment_bytes", "64k");
    set_ok(&c, "segment_ms", "1h");
    set_ok(&c, "retention_bytes", "1g");
    set_ok(&c, "retention_ms", "-1");
    set_ok(&c, "batch_bytes_max", "1m");
    set_ok(&c, "index_interval_bytes", "128");
    broker_config_part(&c, &p);
    cr_assert_eq(p.segment_bytes, 64u << 10);
    cr_assert_eq(p.segment_ms, 3600 * 1000);
    cr_assert_eq(p.retention_bytes, 1LL << 30);
    cr_assert_eq(p.retention_ms, -1);
    cr_assert_eq(p.batch_bytes_max, 1u << 20);
    cr_assert_eq(p.index_interval_bytes, 128u);
    cr_assert_eq(part_config_check(&p), 0);
}

Test(config, version_is_the_project_version)
{
    cr_assert_str_neq(broker_config_version(), "unknown");
    cr_assert_str_neq(broker_config_version(), "");
}

/* ---- every key ---- */

Test(config, sets_every_key)
{
    struct broker_config c;
    broker_config_default(&c);
    set_ok(&c, "listen", "0.0.0.0:9000");
    cr_assert_str_eq(c.listen_host, "0.0.0.0");
    cr_assert_eq(c.listen_port, 9000);
    set_ok(&c, "listen_host", "broker-1.example.com");
    cr_assert_str_eq(c.listen_host, "broker-1.example.com");
    set_ok(&c, "listen_host", "fe80::1%eth0");
    cr_assert_str_eq(c.listen_host, "fe80::1%eth0");
    set_ok(&c, "listen_port", "0");
    cr_assert_eq(c.listen_port, 0);
    set_ok(&c, "data_dir", "/var/lib/nagare data");
    cr_assert_str_eq(c.data_dir, "/var/lib/nagare data");
    set_ok(&c, "auto_create_topics", "false");
    cr_assert(!c.auto_create_topics);
    set_ok(&c, "auto_create_topics", "true");
    cr_assert(c.auto_create_topics);
    set_ok(&c, "default_partitions", "12");
    cr_assert_eq(c.default_partitions, 12);
    set_ok(&c, "retention_ms", "3600000");
    cr_assert_eq(c.retention_ms, 3600000);
    set_ok(&c, "retention_bytes", "1000000");
    cr_assert_eq(c.retention_bytes, 1000000);
    set_ok(&c, "segment_bytes", "1048576");
    cr_assert_eq(c.segment_bytes, 1 << 20);
    set_ok(&c, "segment_ms", "60000");
    cr_assert_eq(c.segment_ms, 60000);
    set_ok(&c, "batch_bytes_max", "65536");
    cr_assert_eq(c.batch_bytes_max, 65536);
    set_ok(&c, "index_interval_bytes", "8192");
    cr_assert_eq(c.index_interval_bytes, 8192u);
    set_ok(&c, "retention_check_ms", "1000");
    cr_assert_eq(c.retention_check_ms, 1000u);
    set_ok(&c, "fetch_wait_max_ms", "500");
    cr_assert_eq(c.fetch_wait_max_ms, 500u);
    set_ok(&c, "producer_ids_max", "77");
    cr_assert_eq(c.producer_ids_max, 77u);
    set_ok(&c, "kafka_group_initial_delay_ms", "0");
    cr_assert_eq(c.kafka_group_initial_delay_ms, 0u);
    set_ok(&c, "kafka_group_initial_delay_ms", "5m");
    cr_assert_eq(c.kafka_group_initial_delay_ms, 300000u);
    set_ok(&c, "share_lock_ms", "1s");
    cr_assert_eq(c.share_lock_ms, 1000);
    set_ok(&c, "share_delivery_max", "3");
    cr_assert_eq(c.share_delivery_max, 3u);
    set_ok(&c, "share_inflight_max", "64");
    cr_assert_eq(c.share_inflight_max, 64u);
    set_ok(&c, "frame_bytes_max", "1048576");
    cr_assert_eq(c.frame_bytes_max, 1u << 20);
    set_ok(&c, "conn_max", "10");
    cr_assert_eq(c.conn_max, 10u);
    set_ok(&c, "conn_inflight_max", "5");
    cr_assert_eq(c.conn_inflight_max, 5u);
    set_ok(&c, "partial_bytes_max", "128m");
    cr_assert_eq(c.partial_bytes_max, 128 << 20);
    set_ok(&c, "partial_timeout_ms", "5s");
    cr_assert_eq(c.partial_timeout_ms, 5000u);
}

Test(config, log_levels)
{
    static const struct {
        const char *name;
        enum log_level level;
    } levels[] = {{"debug", LOG_DEBUG},
                  {"info", LOG_INFO},
                  {"warn", LOG_WARN},
                  {"error", LOG_ERROR},
                  {"off", LOG_OFF}};
    struct broker_config c;
    broker_config_default(&c);
    for (size_t i = 0; i < ARRAY_LEN(levels); i++) {
        set_ok(&c, "log_level", levels[i].name);
        cr_assert_eq(c.log_level, levels[i].level);
    }
    set_bad("kafka_group_initial_delay_ms",
            "301s"); /* past BROKER_KAFKA_GROUP_INITIAL_DELAY_MS_LIMIT */
    set_bad("log_level", "verbose");
    set_bad("log_level", "INFO");
    set_bad("log_level", "1");
}

Test(config, log_formats)
{
    struct broker_config c;
    broker_config_default(&c);
    cr_assert_eq(c.log_format, LOG_FORMAT_TEXT);
    set_ok(&c, "log_format", "json");
    cr_assert_eq(c.log_format, LOG_FORMAT_JSON);
    set_ok(&c, "log_format", "text");
    cr_assert_eq(c.log_format, LOG_FORMAT_TEXT);
    set_bad("log_format", "xml");
    set_bad("log_format", "JSON");
    char why[256];
    cr_assert_neq(broker_config_set(&c, "log_format", "xml", why, sizeof(why)), 0);
    cr_assert_not_null(strstr(why, "text, json"), "the error names the choices: %s", why);
}

Test(config, size_units)
{
    struct broker_config c;
    broker_config_default(&c);
    set_ok(&c, "retention_bytes", "3k");
    cr_assert_eq(c.retention_bytes, 3 * 1024);
    set_ok(&c, "retention_bytes", "3KiB");
    cr_assert_eq(c.retention_bytes, 3 * 1024);
    set_ok(&c, "retention_bytes", "5m");
    cr_assert_eq(c.retention_bytes, 5LL << 20);
    set_ok(&c, "retention_bytes", "5MIB");
    cr_assert_eq(c.retention_bytes, 5LL << 20);
    set_ok(&c, "retention_bytes", "7G");
    cr_assert_eq(c.retention_bytes, 7LL << 30);
    set_ok(&c, "retention_bytes", "7gib");
    cr_assert_eq(c.retention_bytes, 7LL << 30);
    set_ok(&c, "frame_bytes_max", "1g");
    cr_assert_eq(c.frame_bytes_max, PROTO_FRAME_BYTES_LIMIT);
    set_bad("retention_bytes", "3 k");
    set_bad("retention_bytes", "3kb");
    set_bad("retention_bytes", "3t");
    set_bad("retention_bytes", "3s"); /* a duration unit on a size */
}

Test(config, duration_units)
{
    struct broker_config c;
    broker_config_default(&c);
    set_ok(&c, "segment_ms", "250ms");
    cr_assert_eq(c.segment_ms, 250);
    set_ok(&c, "segment_ms", "90s");
    cr_assert_eq(c.segment_ms, 90000);
    set_ok(&c, "segment_ms", "5m");
    cr_assert_eq(c.segment_ms, 5 * 60000);
    set_ok(&c, "segment_ms", "2h");
    cr_assert_eq(c.segment_ms, 2 * 3600000);
    set_ok(&c, "segment_ms", "7d");
    cr_assert_eq(c.segment_ms, 7LL * 24 * 3600000);
    set_ok(&c, "retention_check_ms", "1S");
    cr_assert_eq(c.retention_check_ms, 1000u);
    set_ok(&c, "fetch_wait_max_ms", "0");
    cr_assert_eq(c.fetch_wait_max_ms, 0u);
    set_bad("segment_ms", "1w");
    set_bad("segment_ms", "1k");          /* a size unit on a duration */
    set_bad("retention_check_ms", "50d"); /* past u32 ms */
    set_bad("fetch_wait_max_ms", "25d");  /* past the wire's i32 */
}

Test(config, counts_take_no_units)
{
    set_bad("default_partitions", "1k");
    set_bad("conn_max", "1m");
    set_bad("producer_ids_max", "1s");
}

/* ---- ranges ---- */

struct range {
    const char *key;
    long long min, max;
    bool minus_one;
};

static const struct range ranges[] = {
    {"default_partitions", 1, PROTO_PARTITIONS_MAX, false},
    {"retention_ms", 1, INT64_MAX, true},
    {"retention_bytes", 1, INT64_MAX, true},
    {"segment_bytes", PART_SEGMENT_BYTES_MIN, PART_SEGMENT_BYTES_MAX, false},
    {"segment_ms", 1, INT64_MAX, false},
    {"batch_bytes_max", BATCH_HEADER_BYTES, BATCH_BYTES_LIMIT, false},
    {"index_interval_bytes", PART_INDEX_INTERVAL_MIN, PART_SEGMENT_BYTES_MAX, false},
    {"retention_check_ms", BROKER_RETENTION_CHECK_MS_MIN, UINT32_MAX, false},
    {"fetch_wait_max_ms", 0, INT32_MAX, false},
    {"producer_ids_max", 1, BROKER_PRODUCER_IDS_MAX_LIMIT, false},
    {"share_lock_ms", 1, SHARE_LOCK_MS_LIMIT, false},
    {"share_delivery_max", 1, SHARE_DELIVERY_LIMIT, false},
    {"share_inflight_max", 1, SHARE_INFLIGHT_LIMIT, false},
    {"frame_bytes_max", PROTO_FRAME_BYTES_MIN, PROTO_FRAME_BYTES_LIMIT, false},
    {"conn_max", 1, BROKER_CONN_MAX_LIMIT, false},
    {"conn_inflight_max", 1, LOOP_CONN_INFLIGHT_CAP, false},
    {"partial_bytes_max", 2 * PROTO_FRAME_BYTES_MIN, BROKER_MEM_BYTES_LIMIT, false},
    {"partial_timeout_ms", 1, UINT32_MAX, false},
    {"listen_port", 0, UINT16_MAX, false},
    {"broker_id", 0, CLUSTER_BROKER_ID_MAX, true},
    {"advertised_port", 0, UINT16_MAX, false},
    {"default_replication_factor", 1, CLUSTER_REPLICAS_MAX, false},
    {"min_insync_replicas", 1, CLUSTER_REPLICAS_MAX, false},
    {"replica_lag_ms", BROKER_REPLICA_LAG_MS_MIN, UINT32_MAX, false},
    {"lease_ttl_s", CLUSTER_LEASE_TTL_S_MIN, CLUSTER_LEASE_TTL_S_MAX, false},
    {"preferred_leader_check_ms", CLUSTER_PREFERRED_LEADER_CHECK_MS_MIN, UINT32_MAX, false},
    {"redrive_retry_ms", 0, BROKER_REDRIVE_RETRY_MS_LIMIT, false},
};

Test(config, numeric_bounds_accepted_and_one_past_refused)
{
    for (size_t i = 0; i < ARRAY_LEN(ranges); i++) {
        const struct range *r = &ranges[i];
        struct broker_config c;
        broker_config_default(&c);
        set_ok(&c, r->key, fmt_ll(r->min));
        set_ok(&c, r->key, fmt_ll(r->max));
        if (r->min > 0) {
            set_bad(r->key, fmt_ll(r->min - 1));
        }
        if (r->max < INT64_MAX) {
            set_bad(r->key, fmt_ll(r->max + 1));
        } else {
            set_bad(r->key, "9223372036854775808"); /* strtoll's ERANGE */
        }
        if (r->minus_one) {
            set_ok(&c, r->key, "-1");
        } else {
            set_bad(r->key, "-1");
        }
        set_bad(r->key, "-2");
    }
}

Test(config, malformed_numbers_refused)
{
    static const char *const bad[] = {"",
                                      "abc",
                                      "12x",
                                      "1.5",
                                      "+5",
                                      " 5",
                                      "5 ",
                                      "0x10",
                                      "1e3",
                                      "-",
                                      "--1",
                                      "-1d",
                                      "99999999999999999999999",
                                      "9223372036854775807g"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        set_bad("retention_bytes", bad[i]);
        set_bad("segment_ms", bad[i]);
        set_bad("conn_max", bad[i]);
    }
}

Test(config, message_says_what_is_allowed)
{
    struct broker_config c;
    broker_config_default(&c);
    int rc = broker_config_set(&c, "segment_bytes", "12x", err, sizeof(err));
    cr_assert_eq(rc, -NG_EBADARG);
    cr_assert(strstr(err, "segment_bytes") != NULL, "%s", err);
    cr_assert(strstr(err, "12x") != NULL, "%s", err);
    cr_assert(strstr(err, fmt_ll(PART_SEGMENT_BYTES_MIN)) != NULL, "%s", err);
    cr_assert(strstr(err, fmt_ll(PART_SEGMENT_BYTES_MAX)) != NULL, "%s", err);
}

Test(config, message_fits_a_small_buffer)
{
    struct broker_config c;
    char small[8];
    memset(small, 'x', sizeof(small));
    broker_config_default(&c);
    cr_assert_eq(broker_config_set(&c, "segment_bytes", "nope", small, sizeof(small)), -NG_EBADARG);
    cr_assert_eq(strlen(small), sizeof(small) - 1);
    cr_assert_eq(broker_config_set(&c, "segment_bytes", "nope", NULL, 0), -NG_EBADARG);
}

Test(config, unknown_key_refused)
{
    set_bad("segment_size", "1g");
    set_bad("", "1");
    set_bad("Listen", "127.0.0.1:1");
}

Test(config, strings_refused)
{
    char path[BROKER_DATA_DIR_BYTES + 1];
    memset(path, 'a', sizeof(path) - 1);
    path[sizeof(path) - 1] = '\0';
    set_bad("data_dir", path); /* 4096 bytes */
    path[BROKER_DATA_DIR_BYTES - 1] = '\0';
    struct broker_config c;
    broker_config_default(&c);
    set_ok(&c, "data_dir", path); /* 4095 bytes */
    cr_assert_eq(strlen(c.data_dir), BROKER_DATA_DIR_BYTES - 1);
    set_bad("data_dir", "");
    set_bad("data_dir", " leading");
    set_bad("listen_host", "");
    set_bad("listen_host", "bad host");
    set_bad("listen_host", "[::1]");
    set_bad("listen_host", "a/b");
    char host[BROKER_HOST_BYTES + 1];
    memset(host, 'h', sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    set_bad("listen_host", host);
    host[BROKER_HOST_BYTES - 1] = '\0';
    set_ok(&c, "listen_host", host);
    set_bad("auto_create_topics", "yes");
    set_bad("auto_create_topics", "1");
    set_bad("auto_create_topics", "TRUE");
}

/* ---- listen ---- */

Test(config, listen_forms)
{
    struct broker_config c;
    broker_config_default(&c);
    set_ok(&c, "listen", "localhost:1234");
    cr_assert_str_eq(c.listen_host, "localhost");
    cr_assert_eq(c.listen_port, 1234);
    set_ok(&c, "listen", "[::1]:7421");
    cr_assert_str_eq(c.listen_host, "::1");
    cr_assert_eq(c.listen_port, 7421);
    set_ok(&c, "listen", "[::]:0");
    cr_assert_str_eq(c.listen_host, "::");
    cr_assert_eq(c.listen_port, 0);
    set_ok(&c, "listen", "10.0.0.7:65535");
    cr_assert_eq(c.listen_port, 65535);
    set_ok(&c, "listen", ":9999"); /* keeps the host */
    cr_assert_str_eq(c.listen_host, "10.0.0.7");
    cr_assert_eq(c.listen_port, 9999);
}

Test(config, listen_refused)
{
    static const char *const bad[] = {
        "localhost",        /* missing port */
        "localhost:",       /* empty port */
        ":",                /* nothing */
        "localhost:65536",  /* port too large */
        "localhost:-1",     /* negative port */
        "localhost:http",   /* not a number */
        "localhost:80x",    /* trailing */
        "localhost:000080", /* more than 5 digits */
        "::1:7420",         /* IPv6 without brackets */
        "[::1]",            /* brackets, no port */
        "[::1]7420",        /* no colon after ] */
        "[::1:7420",        /* no closing bracket */
        "[]:7420",          /* empty address */
        "bad host:1",       /* blank in host */
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        set_bad("listen", bad[i]);
    }
    set_bad("listen_port", "65536");
    set_bad("listen_port", "");
    set_bad("listen_port", "1k");
}

/* ---- cross-field check ---- */

Test(config, frame_must_hold_a_batch)
{
    struct broker_config c;
    broker_config_default(&c);
    set_ok(&c, "frame_bytes_max", "64k");
    cr_assert_eq(broker_config_check(&c, err, sizeof(err)), -NG_EBADARG);
    cr_assert(strstr(err, "frame_bytes_max") != NULL, "%s", err);
    cr_assert(strstr(err, "batch_bytes_max") != NULL, "%s", err);
    c.batch_bytes_max = (int32_t)(c.frame_bytes_max - BROKER_PRODUCE_FRAME_OVERHEAD_BYTES);
    cr_assert_eq(broker_config_check(&c, err, sizeof(err)), 0, "%s", err);
    c.batch_bytes_max++;
    cr_assert_eq(broker_config_check(&c, err, sizeof(err)), -NG_EBADARG);
}

Test(config, partial_bytes_between_two_frames_and_the_memory_budget)
{
    struct broker_config c;
    broker_config_default(&c);
    set_ok(&c, "partial_bytes_max", "127m"); /* under 2 x 64 MiB */
    cr_assert_eq(broker_config_check(&c, err, sizeof(err)), -NG_EBADARG);
    cr_assert(strstr(err, "partial_bytes_max") != NULL, "%s", err);
    cr_assert(strstr(err, "frame_bytes_max") != NULL, "%s", err);
    set_ok(&c, "partial_bytes_max", "128m");
    cr_assert_eq(broker_config_check(&c, err, sizeof(err)), 0, "%s", err);
    set_ok(&c, "mem_bytes_max", "127m");
    cr_assert_eq(broker_config_check(&c, err, sizeof(err)), -NG_EBADARG);
    cr_assert(strstr(err, "mem_bytes_max") != NULL, "%s", err);
    set_ok(&c, "mem_bytes_max", "128m");
    cr_assert_eq(broker_config_check(&c, err, sizeof(err)), 0, "%s", err);
}

/* ---- the file ---- */

Test(config, file_comments_blanks_whitespace)
{
    struct broker_config c;
    broker_config_default(&c);
    int rc = load(&c, "# a comment\n"
                      "\n"
                      "   \t\n"
                      "  # indented comment = 5\n"
                      "segment_bytes=2m\n"
                      "  retention_ms\t=\t1h  \n"
                      "data_dir = /srv/a=b # not a comment\n"
                      "listen = [::1]:7000\r\n"
                      "log_level = debug");
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_eq(c.segment_bytes, 2 << 20);
    cr_assert_eq(c.retention_ms, 3600 * 1000);
    cr_assert_str_eq(c.data_dir, "/srv/a=b # not a comment");
    cr_assert_str_eq(c.listen_host, "::1");
    cr_assert_eq(c.listen_port, 7000);
    cr_assert_eq(c.log_level, LOG_DEBUG);
}

Test(config, file_empty_and_last_key_wins)
{
    struct broker_config c, d;
    broker_config_default(&c);
    broker_config_default(&d);
    cr_assert_eq(load(&c, ""), 0, "%s", err);
    cr_assert(config_eq(&c, &d));
    cr_assert_eq(load(&c, "conn_max = 5\nconn_max = 6\n"), 0, "%s", err);
    cr_assert_eq(c.conn_max, 6u);
}

/* Loads text, expects -NG_EBADARG with "PATH:LINE:" and want in the message,
 * and the config untouched. */
static void load_bad(const char *text, unsigned line, const char *want)
{
    struct broker_config c, before;
    broker_config_default(&c);
    before = c;
    const char *path = temp_text(text);
    int rc = broker_config_load_file(&c, path, err, sizeof(err));
    cr_assert_eq(rc, -NG_EBADARG, "accepted: %s", text);
    char where[128];
    snprintf(where, sizeof(where), "%s:%u: ", path, line);
    cr_assert(strstr(err, where) == err, "'%s' does not start with '%s'", err, where);
    cr_assert(strstr(err, want) != NULL, "'%s' does not say '%s'", err, want);
    cr_assert(config_eq(&c, &before), "a failed load changed the config");
    unlink(path);
}

Test(config, file_errors_name_file_and_line)
{
    load_bad("segment_bytes = 1m\n# fine\n\nsegmnet_bytes = 2m\n", 4, "segmnet_bytes");
    load_bad("conn_max = 5\nconn_max = lots\n", 2, "conn_max");
    load_bad("conn_max 5\n", 1, "key = value");
    load_bad(" = 5\n", 1, "no key");
    load_bad("conn_max =\n", 1, "conn_max");
    load_bad("log_level = info\nauto_create_topics = maybe", 2, "auto_create_topics");
}

Test(config, file_overlong_line)
{
    size_t len = BROKER_CONFIG_LINE_BYTES_MAX;
    char *text = malloc(len + 64);
    cr_assert(text != NULL);
    /* exactly the maximum: a comment line is fine */
    memset(text, '#', len);
    strcpy(text + len, "\nconn_max = 3\n");
    struct broker_config c;
    broker_config_default(&c);
    cr_assert_eq(load(&c, text), 0, "%s", err);
    cr_assert_eq(c.conn_max, 3u);
    /* one byte more, on line 2 */
    memcpy(text, "conn_max = 3\n", 13);
    memset(text + 13, '#', len + 1);
    strcpy(text + 13 + len + 1, "\n");
    load_bad(text, 2, "longer than");
    free(text);
}

Test(config, file_nul_byte)
{
    static const char text[] = "conn_max = 3\nconn_max = 4\0\n";
    struct broker_config c;
    broker_config_default(&c);
    const char *path = temp_file(text, sizeof(text) - 1);
    cr_assert_eq(broker_config_load_file(&c, path, err, sizeof(err)), -NG_EBADARG);
    cr_assert(strstr(err, ":2: ") != NULL, "%s", err);
    cr_assert(strstr(err, "NUL") != NULL, "%s", err);
    unlink(path);
}

Test(config, file_missing_or_unreadable)
{
    struct broker_config c;
    broker_config_default(&c);
    int rc = broker_config_load_file(&c, "/nonexistent/nagare.conf", err, sizeof(err));
    cr_assert_eq(rc, -ENOENT);
    cr_assert(strstr(err, "/nonexistent/nagare.conf") != NULL, "%s", err);
    rc = broker_config_load_file(&c, "/tmp", err, sizeof(err));
    cr_assert_eq(rc, -EISDIR, "%d %s", rc, err);
    cr_assert(strstr(err, "/tmp") != NULL, "%s", err);
}

Test(config, authorizer_and_super_users)
{
    struct broker_config c;
    broker_config_default(&c);
    cr_assert(!c.authorizer, "off by default: zero configuration");
    cr_assert_str_eq(c.super_users, "");
    set_ok(&c, "authorizer", "true");
    cr_assert(c.authorizer);
    cr_assert(c.auto_create_topics, "each boolean key sets its own field");
    set_ok(&c, "auto_create_topics", "false");
    cr_assert(c.authorizer);
    set_ok(&c, "super_users", "User:admin");
    cr_assert_str_eq(c.super_users, "User:admin");
    set_bad("super_users", "admin");
    set_bad("super_users", "User:a,,User:b");
    set_bad("super_users", "User:a b");
    set_bad("authorizer", "yes");
}

Test(config, print_reads_back)
{
    struct broker_config c, d;
    broker_config_default(&c);
    set_ok(&c, "listen", "[::1]:0");
    set_ok(&c, "data_dir", "/srv/nagare # x");
    set_ok(&c, "auto_create_topics", "false");
    set_ok(&c, "retention_ms", "-1");
    set_ok(&c, "segment_bytes", "4k");
    set_ok(&c, "conn_inflight_max", "4096");
    set_ok(&c, "log_level", "off");
    set_ok(&c, "broker_id", "3");
    set_ok(&c, "etcd_endpoints", "http://127.0.0.1:2379, http://127.0.0.2:2379");
    set_ok(&c, "advertised", "broker-3.example.com:7423");
    set_ok(&c, "cluster_name", "east-1");
    set_ok(&c, "default_replication_factor", "2");
    set_ok(&c, "min_insync_replicas", "1");
    set_ok(&c, "replica_lag_ms", "5s");
    set_ok(&c, "lease_ttl_s", "9");
    set_ok(&c, "preferred_leader_check_ms", "1m");
    set_ok(&c, "authorizer", "true");
    set_ok(&c, "super_users", "User:admin,User:broker-1");
    set_ok(&c, "kafka_listen_tls", "true");
    set_ok(&c, "tls_cert_file", "/etc/nagare/b.pem");
    set_ok(&c, "tls_key_file", "/etc/nagare/b.key");
    set_ok(&c, "tls_ca_file", "/etc/nagare/ca.pem");
    set_ok(&c, "tls_client_auth", "requested");
    set_ok(&c, "tls_handshake_timeout_ms", "3s");
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert(f != NULL);
    broker_config_print(f, &c);
    cr_assert_eq(fclose(f), 0);
    broker_config_default(&d);
    cr_assert_eq(load(&d, buf), 0, "%s\n%s", err, buf);
    cr_assert(config_eq(&c, &d), "%s", buf);
    free(buf);
}

/* ---- the command line ---- */

Test(config, args_none_gives_defaults)
{
    struct broker_config c, d;
    memset(&c, 0xa5, sizeof(c));
    broker_config_default(&d);
    cr_assert_eq(broker_config_parse_args(&c, 1, ARGV(NULL), err, sizeof(err)), BROKER_ARGS_RUN,
                 "%s", err);
    cr_assert(config_eq(&c, &d));
}

Test(config, args_flags)
{
    struct broker_config c;
    cr_assert_eq(PARSE(&c, "--listen", "0.0.0.0:1", "--data-dir", "/d", "--set", "conn_max=9",
                       "--set", " log_level = warn "),
                 BROKER_ARGS_RUN, "%s", err);
    cr_assert_str_eq(c.listen_host, "0.0.0.0");
    cr_assert_eq(c.listen_port, 1);
    cr_assert_str_eq(c.data_dir, "/d");
    cr_assert_eq(c.conn_max, 9u);
    cr_assert_eq(c.log_level, LOG_WARN);
    cr_assert_eq(PARSE(&c, "--listen=[::1]:2", "--data-dir=/e", "--set=conn_max=8"),
                 BROKER_ARGS_RUN, "%s", err);
    cr_assert_str_eq(c.listen_host, "::1");
    cr_assert_eq(c.listen_port, 2);
    cr_assert_str_eq(c.data_dir, "/e");
    cr_assert_eq(c.conn_max, 8u);
    cr_assert_eq(PARSE(&c, "--listen", ":3"), BROKER_ARGS_RUN, "%s", err);
    cr_assert_str_eq(c.listen_host, "127.0.0.1");
    cr_assert_eq(c.listen_port, 3);
}

Test(config, args_flags_override_file_in_any_order)
{
    const char *path = temp_text("listen = 10.1.1.1:5000\n"
                                 "data_dir = /from-file\n"
                                 "conn_max = 100\n"
                                 "segment_bytes = 1m\n");
    char *p = (char *)path;
    struct broker_config c;
    /* flags before --config */
    cr_assert_eq(PARSE(&c, "--listen", ":6000", "--set", "conn_max=7", "--data-dir", "/from-flag",
                       "--config", p),
                 BROKER_ARGS_RUN, "%s", err);
    cr_assert_str_eq(c.listen_host, "10.1.1.1");
    cr_assert_eq(c.listen_port, 6000);
    cr_assert_eq(c.conn_max, 7u);
    cr_assert_str_eq(c.data_dir, "/from-flag");
    cr_assert_eq(c.segment_bytes, 1 << 20); /* only in the file */
    /* flags after --config */
    cr_assert_eq(PARSE(&c, "--config", p, "--set", "segment_bytes=2m", "--set", "segment_bytes=3m"),
                 BROKER_ARGS_RUN, "%s", err);
    cr_assert_eq(c.segment_bytes, 3 << 20); /* the later flag wins */
    cr_assert_eq(c.conn_max, 100u);
    cr_assert_eq(c.listen_port, 5000);
    unlink(path);
}

/* Expects a usage error with want in the message and c untouched. */
static void args_bad(int argc, char **argv, const char *want)
{
    struct broker_config c;
    memset(&c, 0x5a, sizeof(c));
    unsigned char before[sizeof(c)];
    memcpy(before, &c, sizeof(c));
    err[0] = '\0';
    int rc = broker_config_parse_args(&c, argc, argv, err, sizeof(err));
    cr_assert_eq(rc, BROKER_ARGS_EXIT_USAGE, "accepted (%s)", want);
    cr_assert(strstr(err, want) != NULL, "'%s' does not say '%s'", err, want);
    cr_assert_eq(memcmp(&c, before, sizeof(c)), 0, "c changed on a usage error");
}

#define ARGS_BAD(want, ...) args_bad(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), want)

Test(config, args_refused)
{
    ARGS_BAD("--bogus", "--bogus");
    ARGS_BAD("stray", "stray");
    ARGS_BAD("--listen needs a value", "--listen");
    ARGS_BAD("--version takes no value", "--version=1");
    ARGS_BAD("port", "--listen", "localhost");
    ARGS_BAD("--listen", "--listen", "localhost:99999");
    ARGS_BAD("brackets", "--listen", "::1:7420");
    ARGS_BAD("--data-dir", "--data-dir", "");
    ARGS_BAD("KEY=VALUE", "--set", "conn_max");
    ARGS_BAD("nosuchkey", "--set", "nosuchkey=1");
    ARGS_BAD("conn_max", "--set", "conn_max=0");
    ARGS_BAD("--config given twice", "--config", "/a", "--config", "/b");
    ARGS_BAD("/nonexistent.conf", "--config", "/nonexistent.conf");
    ARGS_BAD("frame_bytes_max", "--set", "frame_bytes_max=64k");
    ARGS_BAD("--bogus", "--help", "--bogus");
}

Test(config, args_bad_config_file_names_line)
{
    const char *path = temp_text("conn_max = 1\nwhat = 2\n");
    char where[96];
    snprintf(where, sizeof(where), "%s:2:", path);
    args_bad(3, ARGV("--config", (char *)path), where);
    unlink(path);
}

Test(config, args_help, .init = cr_redirect_stdout)
{
    struct broker_config c;
    cr_assert_eq(PARSE(&c, "--help"), BROKER_ARGS_EXIT_OK);
    cr_assert_eq(PARSE(&c, "-h"), BROKER_ARGS_EXIT_OK);
    /* wins over bad values and the other flags */
    cr_assert_eq(PARSE(&c, "--listen", "nonsense", "--help", "--config", "/nonexistent"),
                 BROKER_ARGS_EXIT_OK);
    fflush(stdout);
    char line[256];
    FILE *out = cr_get_redirected_stdout();
    cr_assert(fgets(line, sizeof(line), out) != NULL);
    cr_assert(strncmp(line, "usage: nagared", 14) == 0, "%s", line);
}

Test(config, args_version, .init = cr_redirect_stdout)
{
    struct broker_config c;
    cr_assert_eq(PARSE(&c, "--version"), BROKER_ARGS_EXIT_OK);
    fflush(stdout);
    char want[64];
    snprintf(want, sizeof(want), "nagared %s\n", broker_config_version());
    cr_assert_stdout_eq_str(want);
}

Test(config, usage_lists_every_flag_and_key)
{
    static const char *const words[] = {"--listen",
                                        "--admin-listen",
                                        "admin_listen",
                                        "--data-dir",
                                        "--config",
                                        "--set",
                                        "--help",
                                        "--version",
                                        "docs/configuration.md",
                                        "authentication",
                                        "sasl_mechanisms",
                                        "login_failures_max",
                                        "login_block_ms",
                                        "inter_broker_user",
                                        "inter_broker_password_file",
                                        "--add-user",
                                        "listen_host",
                                        "listen_port",
                                        "data_dir",
                                        "auto_create_topics",
                                        "default_partitions",
                                        "retention_ms",
                                        "retention_bytes",
                                        "segment_bytes",
                                        "segment_ms",
                                        "batch_bytes_max",
                                        "index_interval_bytes",
                                        "retention_check_ms",
                                        "fetch_wait_max_ms",
                                        "producer_ids_max",
                                        "frame_bytes_max",
                                        "conn_max",
                                        "conn_inflight_max",
                                        "log_level",
                                        "--broker-id",
                                        "--etcd",
                                        "--advertised",
                                        "broker_id",
                                        "etcd_endpoints",
                                        "advertised_host",
                                        "advertised_port",
                                        "cluster_name",
                                        "default_replication_factor",
                                        "min_insync_replicas",
                                        "replica_lag_ms",
                                        "lease_ttl_s",
                                        "preferred_leader_check_ms",
                                        "redrive_retry_ms",
                                        "authorizer",
                                        "super_users"};
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert(f != NULL);
    broker_config_usage(f);
    cr_assert_eq(fclose(f), 0);
    for (size_t i = 0; i < ARRAY_LEN(words); i++) {
        cr_assert(strstr(buf, words[i]) != NULL, "usage lacks %s", words[i]);
    }
    free(buf);
}

/* ---- a cluster ---- */

Test(config, cluster_keys_set)
{
    struct broker_config c;
    broker_config_default(&c);
    set_ok(&c, "broker_id", "0");
    cr_assert_eq(c.broker_id, 0);
    cr_assert(broker_config_clustered(&c));
    set_ok(&c, "broker_id", "-1");
    cr_assert(!broker_config_clustered(&c));
    set_ok(&c, "etcd_endpoints", "http://127.0.0.1:2379");
    cr_assert_str_eq(c.etcd_endpoints, "http://127.0.0.1:2379");
    set_ok(&c, "advertised", "10.0.0.7:7500");
    cr_assert_str_eq(c.advertised_host, "10.0.0.7");
    cr_assert_eq(c.advertised_port, 7500);
    set_ok(&c, "advertised", ":7501");
    cr_assert_str_eq(c.advertised_host, "10.0.0.7", ":PORT keeps the host");
    cr_assert_eq(c.advertised_port, 7501);
    cr_assert_str_eq(c.listen_host, "127.0.0.1", "listen untouched");
    cr_assert_eq(c.listen_port, 7420);
    set_ok(&c, "advertised_host", "broker-2");
    set_ok(&c, "advertised_port", "7502");
    cr_assert_str_eq(c.advertised_host, "broker-2");
    cr_assert_eq(c.advertised_port, 7502);
    set_ok(&c, "cluster_name", "a.b_c-1");
    cr_assert_str_eq(c.cluster_name, "a.b_c-1");
}

Test(config, cluster_keys_refused)
{
    set_bad("etcd_endpoints", "127.0.0.1:2379");         /* no scheme */
    set_bad("etcd_endpoints", "https://127.0.0.1:2379"); /* only http */
    set_bad("etcd_endpoints", "http://");
    set_bad("etcd_endpoints", "http://a:1,,http://b:1");
    set_bad("etcd_endpoints", "http://a:1,");
    set_bad("etcd_endpoints", "http://a b:1");
    set_bad("etcd_endpoints", "http://1:1,http://2:1,http://3:1,http://4:1,http://5:1,"
                              "http://6:1,http://7:1,http://8:1,http://9:1"); /* nine */
    set_bad("cluster_name", "a/b");
    set_bad("cluster_name", ".");
    set_bad("cluster_name", "..");
    set_bad("cluster_name", "1234567890123456789012345678901234567890123456789012345678901234");
    set_bad("advertised", "nohost");
    set_bad("advertised", "h:70000");
    set_bad("advertised_host", "a b");
    set_bad("broker_id", "1000001");
    struct broker_config c;
    broker_config_default(&c);
    set_ok(&c, "etcd_endpoints",
           "http://1:1,http://2:1,http://3:1,http://4:1,http://5:1,"
           "http://6:1,http://7:1,http://8:1");
    set_ok(&c, "cluster_name", "123456789012345678901234567890123456789012345678901234567890123");
}

Test(config, broker_id_message_says_what_minus_one_is)
{
    struct broker_config c;
    broker_config_default(&c);
    cr_assert_eq(broker_config_set(&c, "broker_id", "x", err, sizeof(err)), -NG_EBADARG);
    cr_assert(strstr(err, "-1 for a single broker") != NULL, "%s", err);
    cr_assert_eq(broker_config_set(&c, "retention_ms", "x", err, sizeof(err)), -NG_EBADARG);
    cr_assert(strstr(err, "-1 for no limit") != NULL, "%s", err);
}

Test(config, cluster_settings_go_together)
{
    struct broker_config c;
    cr_assert_eq(PARSE(&c, "--broker-id", "1"), BROKER_ARGS_EXIT_USAGE);
    cr_assert(strstr(err, "etcd_endpoints") != NULL, "%s", err);
    cr_assert_eq(PARSE(&c, "--etcd", "http://127.0.0.1:2379"), BROKER_ARGS_EXIT_USAGE);
    cr_assert(strstr(err, "broker_id") != NULL, "%s", err);
    cr_assert_eq(PARSE(&c, "--broker-id", "1", "--etcd", "http://127.0.0.1:2379", "--listen",
                       "0.0.0.0:7420"),
                 BROKER_ARGS_EXIT_USAGE);
    cr_assert(strstr(err, "advertised_host") != NULL, "%s", err);
    cr_assert_eq(PARSE(&c, "--broker-id", "1", "--etcd", "http://127.0.0.1:2379", "--listen",
                       "0.0.0.0:7420", "--advertised", "10.1.2.3:7420"),
                 BROKER_ARGS_RUN, "%s", err);
    cr_assert_eq(PARSE(&c, "--broker-id=2", "--etcd=http://127.0.0.1:2379,http://127.0.0.2:2379"),
                 BROKER_ARGS_RUN, "%s", err);
    cr_assert_eq(c.broker_id, 2);
}

Test(config, cluster_session_config_from_the_broker_config)
{
    struct broker_config c;
    struct cluster_session_config s;
    cr_assert_eq(PARSE(&c, "--broker-id", "4", "--etcd", "http://127.0.0.1:2379, http://h:2",
                       "--listen", "127.0.0.4:0", "--set", "lease_ttl_s=10", "--set",
                       "cluster_name=test", "--set", "preferred_leader_check_ms=2s"),
                 BROKER_ARGS_RUN, "%s", err);
    broker_config_cluster(&c, 40123, 40124, &s);
    cr_assert_eq(s.broker_id, 4);
    cr_assert_str_eq(s.host, "127.0.0.4", "the listen host when none is advertised");
    cr_assert_eq(s.port, 40123, "the port it listens on");
    cr_assert_str_eq(s.kafka_host, "127.0.0.1", "the Kafka listener's host");
    cr_assert_eq(s.kafka_port, 40124, "the Kafka listener's port");
    cr_assert_eq(s.endpoint_count, 2);
    cr_assert_str_eq(s.endpoints[0], "http://127.0.0.1:2379");
    cr_assert_str_eq(s.endpoints[1], "http://h:2");
    cr_assert_str_eq(s.cluster_name, "test");
    cr_assert_eq(s.lease_ttl_s, 10u);
    cr_assert_eq(s.preferred_leader_check_ms, 2000u);
    set_ok(&c, "advertised", "b4.example:7004");
    broker_config_cluster(&c, 40123, 40124, &s);
    cr_assert_str_eq(s.host, "b4.example");
    cr_assert_eq(s.port, 7004);
}

Test(config, single_broker_prints_no_cluster_text)
{
    struct broker_config c;
    broker_config_default(&c);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert(f != NULL);
    broker_config_print(f, &c);
    cr_assert_eq(fclose(f), 0);
    cr_assert(strstr(buf, "etcd_endpoints") == NULL, "%s", buf);
    cr_assert(strstr(buf, "advertised_host") == NULL, "%s", buf);
    cr_assert(strstr(buf, "broker_id = -1") != NULL, "%s", buf);
    free(buf);
}

Test(config, authentication_keys)
{
    struct broker_config c, d;
    broker_config_default(&c);
    cr_assert(c.authentication == BROKER_AUTHENTICATION_NONE,
              "zero configuration: no logins required");
    cr_assert_eq(c.sasl_mechanisms, BROKER_SASL_MECHANISMS_ALL);
    set_ok(&c, "authentication", "required");
    set_ok(&c, "sasl_mechanisms", " SCRAM-SHA-512 ");
    set_ok(&c, "login_failures_max", "3");
    set_ok(&c, "login_block_ms", "1h");
    set_ok(&c, "inter_broker_user", "repl@east");
    set_ok(&c, "inter_broker_password_file", "/etc/nagare/repl.pw");
    cr_assert(c.authentication == BROKER_AUTHENTICATION_REQUIRED);
    cr_assert_eq(c.sasl_mechanisms, 1u << SCRAM_SHA_512);
    cr_assert_eq(c.login_block_ms, 3600000);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert(f != NULL);
    broker_config_print(f, &c);
    cr_assert_eq(fclose(f), 0);
    broker_config_default(&d);
    cr_assert_eq(load(&d, buf), 0, "%s\n%s", err, buf);
    cr_assert(config_eq(&c, &d), "%s", buf);
    free(buf);
    set_ok(&c, "sasl_mechanisms", "SCRAM-SHA-256,SCRAM-SHA-512");
    cr_assert_eq(c.sasl_mechanisms, BROKER_SASL_MECHANISMS_ALL);

    set_bad("authentication", "yes");
    set_bad("sasl_mechanisms", "PLAIN");
    set_bad("sasl_mechanisms", "SCRAM-SHA-256,");
    set_bad("sasl_mechanisms", ",");
    set_bad("login_failures_max", "0");
    set_bad("inter_broker_user", "a b");
    cr_assert_eq(PARSE(&c, "--set", "inter_broker_user=repl"), BROKER_ARGS_EXIT_USAGE);
    cr_assert(strstr(err, "inter_broker_password_file") != NULL, "%s", err);
}

/* ---- TLS ---- */

Test(config, tls_is_off_by_default_and_its_keys_set)
{
    struct broker_config c;
    broker_config_default(&c);
    cr_assert(!c.listen_tls && !c.kafka_listen_tls && !broker_config_tls(&c));
    cr_assert_str_eq(c.tls_cert_file, "");
    cr_assert_eq(c.tls_client_auth, TLS_CLIENT_AUTH_NONE);
    cr_assert_eq(c.tls_handshake_timeout_ms, LOOP_TLS_HANDSHAKE_TIMEOUT_MS_DEFAULT);
    set_ok(&c, "listen_tls", "true");
    cr_assert(c.listen_tls && !c.kafka_listen_tls && c.auto_create_topics);
    set_ok(&c, "kafka_listen_tls", "true");
    cr_assert(c.kafka_listen_tls);
    set_ok(&c, "tls_client_auth", "required");
    cr_assert_eq(c.tls_client_auth, TLS_CLIENT_AUTH_REQUIRED);
    set_ok(&c, "tls_client_auth", "none");
    cr_assert_eq(c.tls_client_auth, TLS_CLIENT_AUTH_NONE);
    set_ok(&c, "tls_handshake_timeout_ms", "2s");
    cr_assert_eq(c.tls_handshake_timeout_ms, 2000u);
    set_ok(&c, "tls_ca_file", "ca.pem");
    cr_assert_str_eq(c.tls_ca_file, "ca.pem");
    set_bad("listen_tls", "yes");
    set_bad("tls_client_auth", "optional");
    set_bad("tls_handshake_timeout_ms", "0");
    set_bad("tls_cert_file", " x.pem");
}

Test(config, a_tls_listener_needs_a_certificate_and_client_auth_a_ca)
{
    struct broker_config c;
    cr_assert_eq(PARSE(&c, "--set", "listen_tls=true"), BROKER_ARGS_EXIT_USAGE);
    cr_assert(strstr(err, "tls_cert_file") != NULL, "%s", err);
    cr_assert_eq(PARSE(&c, "--set", "kafka_listen_tls=true", "--set", "tls_cert_file=a.pem"),
                 BROKER_ARGS_EXIT_USAGE);
    cr_assert(strstr(err, "tls_key_file") != NULL, "%s", err);
    /* without a Kafka listener its TLS setting needs nothing */
    cr_assert_eq(PARSE(&c, "--kafka-listen", "off", "--set", "kafka_listen_tls=true"),
                 BROKER_ARGS_RUN, "%s", err);
    cr_assert(!broker_config_tls(&c));
    cr_assert_eq(PARSE(&c, "--set", "listen_tls=true", "--set", "tls_cert_file=a.pem", "--set",
                       "tls_key_file=a.key", "--set", "tls_client_auth=requested"),
                 BROKER_ARGS_EXIT_USAGE);
    cr_assert(strstr(err, "tls_ca_file") != NULL, "%s", err);
    cr_assert_eq(PARSE(&c, "--set", "listen_tls=true", "--set", "tls_cert_file=a.pem", "--set",
                       "tls_key_file=a.key", "--set", "tls_client_auth=requested", "--set",
                       "tls_ca_file=ca.pem"),
                 BROKER_ARGS_RUN, "%s", err);
    cr_assert(broker_config_tls(&c));
    struct tls_server_cfg t;
    broker_config_tls_server(&c, &t);
    cr_assert_str_eq(t.cert_file, "a.pem");
    cr_assert_str_eq(t.key_file, "a.key");
    cr_assert_str_eq(t.ca_file, "ca.pem");
    cr_assert_eq(t.client_auth, TLS_CLIENT_AUTH_REQUESTED);
}
