/*
 * broker/config.c — nagared's settings. One table of keys drives parsing,
 * printing and the usage text, so a key cannot be settable without being
 * listed, or listed without a range.
 */
#include "broker/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/err.h"
#include "broker/acl.h"

#ifndef NAGARE_VERSION
#define NAGARE_VERSION "unknown"
#endif

/* ---- the key table ---- */

enum key_kind {
    KIND_ADDRESS,    /* HOST:PORT into a host and a port field (address_fields) */
    KIND_HOST,       /* a host name or address */
    KIND_PORT,       /* 0..65535 */
    KIND_PATH,       /* a directory path */
    KIND_BOOL,       /* true | false */
    KIND_COUNT,      /* a whole number */
    KIND_SIZE,       /* bytes, with k/m/g units */
    KIND_DURATION,   /* milliseconds, with ms/s/m/h/d units */
    KIND_CHOICE,     /* one of the key's choices (key_def.choices): an int-sized enum */
    KIND_ENDPOINTS,  /* etcd endpoint URLs, comma-separated (cluster_endpoints_parse) */
    KIND_NAME,       /* a cluster name (cluster_name_ok) */
    KIND_PRINCIPALS, /* principals, comma-separated (acl_principal_valid) */
    KIND_MECHS,      /* SASL mechanism names, comma-separated */
    KIND_USER,       /* a user name (scram_user_valid) */
};

enum field_type { FT_NONE, FT_U16, FT_I32, FT_U32, FT_I64 };

/* clang-format 14 would split a _Generic's associations over lines. */
/* clang-format off */
#define FIELD_TYPE(f)                                                          \
    _Generic(((struct broker_config *)0)->f, uint16_t: FT_U16, int32_t: FT_I32, \
             uint32_t: FT_U32, int64_t: FT_I64, default: FT_NONE)
/* clang-format on */
#define FIELD(f) offsetof(struct broker_config, f), FIELD_TYPE(f)

struct key_def {
    const char *name;
    enum key_kind kind;
    size_t offset;
    enum field_type type; /* numeric kinds only */
    int64_t min, max;     /* numeric kinds only */
    bool minus_one;       /* -1 also allowed: "no limit" */
    const char *help;
    const char *minus_one_means; /* what -1 is, for messages; NULL: "no limit" */
    const char *const *choices;  /* KIND_CHOICE: the names of the enum's values, in order */
    uint32_t choice_count;
};

/* The choices of a KIND_CHOICE key: its names table and their count. */
#define CHOICES(names) NULL, (names), ARRAY_LEN(names)

static const char *const level_names[] = {
    [LOG_DEBUG] = "debug", [LOG_INFO] = "info", [LOG_WARN] = "warn",
    [LOG_ERROR] = "error", [LOG_OFF] = "off",
};
static_assert(ARRAY_LEN(level_names) == LOG_OFF + 1, "a name for every level");

static const char *const authentication_names[] = {
    [BROKER_AUTHENTICATION_NONE] = "none", [BROKER_AUTHENTICATION_REQUIRED] = "required"};

static const char *const log_format_names[] = {
    [LOG_FORMAT_TEXT] = "text", [LOG_FORMAT_JSON] = "json"};
static_assert(sizeof(enum log_level) == sizeof(int) && sizeof(enum log_format) == sizeof(int) &&
                  sizeof(enum broker_authentication) == sizeof(int) &&
                  sizeof(enum tls_client_auth) == sizeof(int),
              "KIND_CHOICE fields are int-sized enums");

static const struct key_def keys[] = {
    {"listen", KIND_ADDRESS, FIELD(listen_host), 0, 0, false,
     "HOST:PORT to listen on; [ADDR]:PORT for IPv6"},
    {"listen_host", KIND_HOST, FIELD(listen_host), 0, 0, false,
     "host name or address to listen on"},
    {"listen_port", KIND_PORT, FIELD(listen_port), 0, UINT16_MAX, false,
     "TCP port to listen on; 0 = ephemeral"},
    {"kafka_listen", KIND_ADDRESS, FIELD(kafka_listen_host), 0, 0, false,
     "HOST:PORT the Kafka protocol listener is on (docs/kafka.md); off: none"},
    {"kafka_listen_host", KIND_HOST, FIELD(kafka_listen_host), 0, 0, false,
     "host name or address of the Kafka listener; off: no Kafka listener"},
    {"kafka_listen_port", KIND_PORT, FIELD(kafka_listen_port), 0, UINT16_MAX, false,
     "TCP port of the Kafka listener; 0 = ephemeral"},
    {"admin_listen", KIND_ADDRESS, FIELD(admin_listen_host), 0, 0, false,
     "HOST:PORT of the HTTP admin listener: /metrics, /healthz, /readyz; off: none"},
    {"admin_listen_host", KIND_HOST, FIELD(admin_listen_host), 0, 0, false,
     "host name or address of the HTTP admin listener; off: none"},
    {"admin_listen_port", KIND_PORT, FIELD(admin_listen_port), 0, UINT16_MAX, false,
     "TCP port of the HTTP admin listener; 0 = ephemeral"},
    {"data_dir", KIND_PATH, FIELD(data_dir), 1, BROKER_DATA_DIR_BYTES - 1, false,
     "directory holding the topics and their logs"},
    {"auto_create_topics", KIND_BOOL, FIELD(auto_create_topics), 0, 1, false,
     "create a missing topic on its first produce"},
    {"default_partitions", KIND_COUNT, FIELD(default_partitions), 1, PROTO_PARTITIONS_MAX, false,
     "partitions of an auto-created topic"},
    {"retention_ms", KIND_DURATION, FIELD(retention_ms), 1, INT64_MAX, true,
     "delete segments older than this; -1 = forever"},
    {"retention_bytes", KIND_SIZE, FIELD(retention_bytes), 1, INT64_MAX, true,
     "keep each partition under this size; -1 = no limit"},
    {"segment_bytes", KIND_SIZE, FIELD(segment_bytes), PART_SEGMENT_BYTES_MIN,
     PART_SEGMENT_BYTES_MAX, false, "roll a segment at this size"},
    {"segment_ms", KIND_DURATION, FIELD(segment_ms), 1, INT64_MAX, false,
     "roll a segment this old"},
    {"batch_bytes_max", KIND_SIZE, FIELD(batch_bytes_max), BATCH_HEADER_BYTES, BATCH_BYTES_LIMIT,
     false, "largest record batch accepted"},
    {"index_interval_bytes", KIND_SIZE, FIELD(index_interval_bytes), PART_INDEX_INTERVAL_MIN,
     PART_SEGMENT_BYTES_MAX, false, "log bytes between offset index entries"},
    {"scrub_bytes_per_sec", KIND_SIZE, FIELD(scrub_bytes_per_sec), 0, BROKER_MEM_BYTES_LIMIT, false,
     "background re-reading of every log to find damage; 0: off"},
    {"retention_check_ms", KIND_DURATION, FIELD(retention_check_ms), BROKER_RETENTION_CHECK_MS_MIN,
     UINT32_MAX, false, "how often retention runs"},
    {"fetch_wait_max_ms", KIND_DURATION, FIELD(fetch_wait_max_ms), 0,
     BROKER_FETCH_WAIT_MAX_MS_LIMIT, false, "cap on a fetch's long-poll wait"},
    {"producer_ids_max", KIND_COUNT, FIELD(producer_ids_max), 1, BROKER_PRODUCER_IDS_MAX_LIMIT,
     false, "idempotent producer states kept per partition"},
    {"internal_segment_bytes", KIND_SIZE, FIELD(internal_segment_bytes), PART_SEGMENT_BYTES_MIN,
     PART_SEGMENT_BYTES_MAX, false,
     "segments of the committed-offsets and share-state logs, compacted past two of them"},
    {"kafka_group_initial_delay_ms", KIND_DURATION, FIELD(kafka_group_initial_delay_ms), 0,
     BROKER_KAFKA_GROUP_INITIAL_DELAY_MS_LIMIT, false,
     "how long a Kafka group's first rebalance waits for more members"},
    {"share_lock_ms", KIND_DURATION, FIELD(share_lock_ms), 1, SHARE_LOCK_MS_LIMIT, false,
     "how long a share fetch locks the records it hands out"},
    {"share_delivery_max", KIND_COUNT, FIELD(share_delivery_max), 1, SHARE_DELIVERY_LIMIT, false,
     "deliveries of a record before it goes to the dead-letter topic"},
    {"share_inflight_max", KIND_COUNT, FIELD(share_inflight_max), 1, SHARE_INFLIGHT_LIMIT, false,
     "records in flight per share group and partition"},
    {"frame_bytes_max", KIND_SIZE, FIELD(frame_bytes_max), PROTO_FRAME_BYTES_MIN,
     PROTO_FRAME_BYTES_LIMIT, false, "largest request frame accepted"},
    {"conn_max", KIND_COUNT, FIELD(conn_max), 1, BROKER_CONN_MAX_LIMIT, false,
     "open connections at once"},
    {"conn_inflight_max", KIND_COUNT, FIELD(conn_inflight_max), 1, LOOP_CONN_INFLIGHT_CAP, false,
     "unanswered requests per connection"},
    {"mem_bytes_max", KIND_SIZE, FIELD(mem_bytes_max), PROTO_FRAME_BYTES_MIN,
     BROKER_MEM_BYTES_LIMIT, false, "request and answer buffers of all connections"},
    {"partial_bytes_max", KIND_SIZE, FIELD(partial_bytes_max), 2 * PROTO_FRAME_BYTES_MIN,
     BROKER_MEM_BYTES_LIMIT, false,
     "buffers of requests still arriving, all connections together; past it the oldest close"},
    {"partial_timeout_ms", KIND_DURATION, FIELD(partial_timeout_ms), 1, UINT32_MAX, false,
     "a request still arriving after this long closes its connection"},
    {"listen_tls", KIND_BOOL, FIELD(listen_tls), 0, 1, false,
     "nagare's listener speaks TLS (tls_cert_file, tls_key_file)"},
    {"kafka_listen_tls", KIND_BOOL, FIELD(kafka_listen_tls), 0, 1, false,
     "the Kafka listener speaks TLS (Kafka's security.protocol=SSL)"},
    {"admin_listen_tls", KIND_BOOL, FIELD(admin_listen_tls), 0, 1, false,
     "the HTTP admin listener serves HTTPS (tls_cert_file, tls_key_file; reread on SIGHUP)"},
    {"tls_cert_file", KIND_PATH, FIELD(tls_cert_file), 1, BROKER_DATA_DIR_BYTES - 1, false,
     "PEM certificate (and chain) of the TLS listeners; reread on SIGHUP"},
    {"tls_key_file", KIND_PATH, FIELD(tls_key_file), 1, BROKER_DATA_DIR_BYTES - 1, false,
     "PEM private key of tls_cert_file; reread on SIGHUP"},
    {"tls_ca_file", KIND_PATH, FIELD(tls_ca_file), 1, BROKER_DATA_DIR_BYTES - 1, false,
     "PEM CAs client certificates are checked against (and a leader's, when replicating)"},
    {"tls_client_auth", KIND_CHOICE, FIELD(tls_client_auth), 0, 0, false,
     "client certificates: none, requested or required; a verified one names the principal",
     CHOICES(tls_client_auth_names)},
    {"tls_handshake_timeout_ms", KIND_DURATION, FIELD(tls_handshake_timeout_ms), 1, UINT32_MAX,
     false, "a TLS handshake not finished after this long closes its connection"},
    {"log_level", KIND_CHOICE, FIELD(log_level), 0, 0, false,
     "lowest level logged: debug, info, warn, error, off", CHOICES(level_names)},
    {"log_format", KIND_CHOICE, FIELD(log_format), 0, 0, false,
     "log lines as text, or json: one JSON object per line", CHOICES(log_format_names)},
    {"broker_id", KIND_COUNT, FIELD(broker_id), 0, CLUSTER_BROKER_ID_MAX, true,
     "this broker's id in a cluster; -1: a single broker, no etcd", "for a single broker"},
    {"etcd_endpoints", KIND_ENDPOINTS, FIELD(etcd_endpoints), 0, 0, false,
     "the cluster's etcd: http://HOST:PORT[,http://HOST:PORT...]"},
    {"advertised", KIND_ADDRESS, FIELD(advertised_host), 0, 0, false,
     "HOST:PORT clients and other brokers reach this one at"},
    {"advertised_host", KIND_HOST, FIELD(advertised_host), 0, 0, false,
     "host clients and other brokers reach this one at; unset: listen_host"},
    {"advertised_port", KIND_PORT, FIELD(advertised_port), 0, UINT16_MAX, false,
     "port clients and other brokers reach this one at; 0: the listening port"},
    {"cluster_name", KIND_NAME, FIELD(cluster_name), 0, 0, false,
     "the cluster's key prefix in etcd (/NAME/), so clusters may share an etcd"},
    {"default_replication_factor", KIND_COUNT, FIELD(default_replication_factor), 1,
     CLUSTER_REPLICAS_MAX, false, "copies of each partition of a topic created without a factor"},
    {"min_insync_replicas", KIND_COUNT, FIELD(min_insync_replicas), 1, CLUSTER_REPLICAS_MAX, false,
     "in-sync copies acks=all needs (capped at the topic's factor)"},
    {"replica_lag_ms", KIND_DURATION, FIELD(replica_lag_ms), BROKER_REPLICA_LAG_MS_MIN, UINT32_MAX,
     false, "a follower not caught up for this long leaves the in-sync set"},
    {"lease_ttl_s", KIND_COUNT, FIELD(lease_ttl_s), CLUSTER_LEASE_TTL_S_MIN,
     CLUSTER_LEASE_TTL_S_MAX, false,
     "seconds the broker's etcd lease outlives its last keep-alive (failover time)"},
    {"preferred_leader_check_ms", KIND_DURATION, FIELD(preferred_leader_check_ms),
     CLUSTER_PREFERRED_LEADER_CHECK_MS_MIN, UINT32_MAX, false,
     "how often the controller gives leadership back to preferred replicas"},
    {"redrive_retry_ms", KIND_DURATION, FIELD(redrive_retry_ms), 0, BROKER_REDRIVE_RETRY_MS_LIMIT,
     false, "how long a redrive retries a record bound for a partition led elsewhere"},
    {"authorizer", KIND_BOOL, FIELD(authorizer), 0, 1, false,
     "check every request against the ACLs (docs/security.md); false: all allowed"},
    {"super_users", KIND_PRINCIPALS, FIELD(super_users), 0, 0, false,
     "principals allowed everything: User:NAME[,User:NAME...]"},
    {"authentication", KIND_CHOICE, FIELD(authentication), 0, 0, false,
     "none: anyone may connect; required: clients log in with SASL/SCRAM first",
     CHOICES(authentication_names)},
    {"sasl_mechanisms", KIND_MECHS, FIELD(sasl_mechanisms), 0, 0, false,
     "SASL mechanisms offered: SCRAM-SHA-256, SCRAM-SHA-512, comma-separated"},
    {"login_failures_max", KIND_COUNT, FIELD(login_failures_max), 1,
     BROKER_LOGIN_FAILURES_MAX_LIMIT, false,
     "failed logins from one address before it is refused for login_block_ms"},
    {"login_block_ms", KIND_DURATION, FIELD(login_block_ms), 1, UINT32_MAX, false,
     "how long an address past login_failures_max is refused"},
    {"inter_broker_user", KIND_USER, FIELD(inter_broker_user), 0, 0, false,
     "the user followers log in as to a leader that requires authentication"},
    {"inter_broker_password_file", KIND_PATH, FIELD(inter_broker_password_file), 1,
     BROKER_DATA_DIR_BYTES - 1, false, "file whose first line is inter_broker_user's password"},
};

/* ---- small helpers ---- */

/* Formats into err (if any) and returns -NG_EBADARG. */
__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t err_cap, const char *fmt,
                                                      ...)
{
    if (err_cap > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_cap, fmt, ap);
        va_end(ap);
    }
    return -NG_EBADARG;
}

static const struct key_def *key_find(const char *name)
{
    for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
        if (strcmp(keys[i].name, name) == 0) {
            return &keys[i];
        }
    }
    return NULL;
}

static void *field_ptr(struct broker_config *c, const struct key_def *k)
{
    return (char *)c + k->offset;
}

/* Reads a numeric field; the offset and type come from the struct itself
 * (FIELD), so the pointer is aligned and of the field's type. */
static int64_t field_get(const struct broker_config *c, const struct key_def *k)
{
    const char *p = (const char *)c + k->offset;
    switch (k->type) {
    case FT_U16:
        return *(const uint16_t *)p;
    case FT_I32:
        return *(const int32_t *)p;
    case FT_U32:
        return *(const uint32_t *)p;
    case FT_I64:
        return *(const int64_t *)p;
    case FT_NONE:
        break;
    }
    UNREACHABLE();
}

/* Stores v, already checked against k->min..k->max, which fit the type. */
static void field_set(struct broker_config *c, const struct key_def *k, int64_t v)
{
    char *p = (char *)c + k->offset;
    switch (k->type) {
    case FT_U16:
        ASSERT(v >= 0 && v <= UINT16_MAX);
        *(uint16_t *)p = (uint16_t)v;
        return;
    case FT_I32:
        ASSERT(v >= INT32_MIN && v <= INT32_MAX);
        *(int32_t *)p = (int32_t)v;
        return;
    case FT_U32:
        ASSERT(v >= 0 && v <= UINT32_MAX);
        *(uint32_t *)p = (uint32_t)v;
        return;
    case FT_I64:
        *(int64_t *)p = v;
        return;
    case FT_NONE:
        break;
    }
    UNREACHABLE();
}

static bool is_blank(char ch) { return ch == ' ' || ch == '\t' || ch == '\r'; }

/* Trims blanks from both ends of s in place; returns the new start. */
static char *trim(char *s)
{
    while (is_blank(*s)) {
        s++;
    }
    size_t n = strlen(s);
    while (n > 0 && is_blank(s[n - 1])) {
        s[--n] = '\0';
    }
    return s;
}

/* ---- numbers ---- */

struct unit {
    const char *suffix;
    int64_t mult;
};

static const struct unit size_units[] = {
    {"", 1},          {"k", 1LL << 10},   {"kib", 1LL << 10}, {"m", 1LL << 20}, {"mib", 1LL << 20},
    {"g", 1LL << 30}, {"gib", 1LL << 30},
};

static const struct unit duration_units[] = {
    {"", 1},          {"ms", 1},          {"s", 1000},
    {"m", 60 * 1000}, {"h", 3600 * 1000}, {"d", 24LL * 3600 * 1000},
};

/* The multiplier for suffix s (case-insensitive), or 0 if unknown. */
static int64_t unit_mult(enum key_kind kind, const char *s)
{
    const struct unit *u = kind == KIND_SIZE ? size_units : duration_units;
    size_t n = kind == KIND_SIZE ? ARRAY_LEN(size_units) : ARRAY_LEN(duration_units);
    if (kind == KIND_COUNT) {
        n = 1; /* no suffix at all */
    }
    for (size_t i = 0; i < n; i++) {
        if (strcasecmp(s, u[i].suffix) == 0) {
            return u[i].mult;
        }
    }
    return 0;
}

/* What k allows, for messages: "a size in bytes from 4096 to ...". */
static void describe_range(const struct key_def *k, char *out, size_t cap)
{
    const char *what = k->kind == KIND_SIZE       ? "a size in bytes"
                       : k->kind == KIND_DURATION ? "a duration in ms"
                                                  : "a whole number";
    const char *units = k->kind == KIND_SIZE       ? " (units: k, m, g = KiB, MiB, GiB)"
                        : k->kind == KIND_DURATION ? " (units: ms, s, m, h, d)"
                                                   : "";
    snprintf(out, cap, "%s from %lld to %lld%s%s%s", what, (long long)k->min, (long long)k->max,
             k->minus_one ? ", or -1 " : "",
             !k->minus_one                ? ""
             : k->minus_one_means != NULL ? k->minus_one_means
                                          : "for no limit",
             units);
}

static int number_fail(const struct key_def *k, const char *value, const char *why, char *err,
                       size_t err_cap)
{
    char range[160];
    describe_range(k, range, sizeof(range));
    return fail(err, err_cap, "%s: '%.64s'%s %s; want %s", k->name, value,
                strlen(value) > 64 ? "..." : "", why, range);
}

/* Parses value for a numeric key: decimal digits, then a unit; checks
 * overflow and k's range. */
static int parse_number(const struct key_def *k, const char *value, int64_t *out, char *err,
                        size_t err_cap)
{
    if (k->minus_one && strcmp(value, "-1") == 0) {
        *out = -1;
        return 0;
    }
    if (!isdigit((unsigned char)value[0])) {
        return number_fail(k, value, value[0] == '-' ? "is negative" : "is not a number", err,
                           err_cap);
    }
    char *end = NULL;
    errno = 0;
    long long n = strtoll(value, &end, 10);
    if (errno == ERANGE) {
        return number_fail(k, value, "is too large", err, err_cap);
    }
    int64_t mult = unit_mult(k->kind, end);
    if (mult == 0) {
        return number_fail(k, value, "has an unknown unit or trailing characters", err, err_cap);
    }
    if (n > INT64_MAX / mult || n * mult > k->max) {
        return number_fail(k, value, "is too large", err, err_cap);
    }
    if (n * mult < k->min) {
        return number_fail(k, value, "is too small", err, err_cap);
    }
    *out = n * mult;
    return 0;
}

/* ---- listen addresses ---- */

/* Letters, digits and . - _ : % (IPv6 addresses and their zone). */
static bool host_ok(const char *h, size_t len, bool colon_ok)
{
    if (len == 0 || len >= BROKER_HOST_BYTES) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)h[i];
        bool ok = isalnum(ch) || ch == '.' || ch == '-' || ch == '_' || ch == '%' ||
                  (colon_ok && ch == ':');
        if (!ok) {
            return false;
        }
    }
    return true;
}

static int parse_port(const char *key, const char *s, uint16_t *out, char *err, size_t err_cap)
{
    size_t n = strlen(s);
    bool digits = n > 0 && n <= 5;
    for (size_t i = 0; digits && i < n; i++) {
        digits = isdigit((unsigned char)s[i]) != 0;
    }
    long v = digits ? strtol(s, NULL, 10) : -1;
    if (v < 0 || v > UINT16_MAX) {
        return fail(err, err_cap, "%s: port '%.16s' is not a number from 0 to 65535", key, s);
    }
    *out = (uint16_t)v;
    return 0;
}

/* The host and port fields a HOST:PORT key (KIND_ADDRESS) sets. */
static void address_fields(struct broker_config *c, const struct key_def *k, char **host,
                           uint16_t **port)
{
    if (k->offset == offsetof(struct broker_config, listen_host)) {
        *host = c->listen_host;
        *port = &c->listen_port;
        return;
    }
    if (k->offset == offsetof(struct broker_config, kafka_listen_host)) {
        *host = c->kafka_listen_host;
        *port = &c->kafka_listen_port;
        return;
    }
    if (k->offset == offsetof(struct broker_config, admin_listen_host)) {
        *host = c->admin_listen_host;
        *port = &c->admin_listen_port;
        return;
    }
    ASSERT(k->offset == offsetof(struct broker_config, advertised_host));
    *host = c->advertised_host;
    *port = &c->advertised_port;
}

/* HOST:PORT, [ADDR]:PORT, or :PORT (keeps the host), for key k. */
static int parse_address(struct broker_config *c, const struct key_def *k, const char *v, char *err,
                         size_t err_cap)
{
    static const char want[] = "want HOST:PORT, [IPv6]:PORT or :PORT";
    char *to_host = NULL;
    uint16_t *to_port = NULL;
    address_fields(c, k, &to_host, &to_port);
    if ((to_host == c->kafka_listen_host || to_host == c->admin_listen_host) &&
        strcmp(v, BROKER_LISTEN_OFF) == 0) {
        memcpy(to_host, BROKER_LISTEN_OFF, sizeof(BROKER_LISTEN_OFF));
        *to_port = 0;
        return 0;
    }
    const char *host = v, *colon = NULL;
    size_t host_len = 0;
    if (v[0] == '[') {
        const char *close = strchr(v, ']');
        if (close == NULL || close[1] != ':') {
            return fail(err, err_cap, "%s: '%.300s' has no ']:PORT'; %s", k->name, v, want);
        }
        host = v + 1;
        host_len = (size_t)(close - host);
        colon = close + 1;
    } else {
        colon = strrchr(v, ':');
        if (colon == NULL) {
            return fail(err, err_cap, "%s: '%.300s' has no port; %s", k->name, v, want);
        }
        host_len = (size_t)(colon - v);
        if (memchr(v, ':', host_len) != NULL) {
            return fail(err, err_cap, "%s: '%.300s': an IPv6 address goes in brackets; %s", k->name,
                        v, want);
        }
    }
    if ((host_len > 0 || v[0] == '[') && !host_ok(host, host_len, v[0] == '[')) {
        return fail(err, err_cap, "%s: bad host in '%.300s'; %s", k->name, v, want);
    }
    uint16_t port = 0;
    int rc = parse_port(k->name, colon + 1, &port, err, err_cap);
    if (rc != 0) {
        return rc;
    }
    if (host_len > 0) {
        memcpy(to_host, host, host_len);
        to_host[host_len] = '\0';
    }
    *to_port = port;
    return 0;
}

/* ---- setting one key ---- */

/* A super_users value: comma-separated principals, as acl_store_open()
 * takes them. */
static bool principals_ok(const char *v, size_t n)
{
    if (n >= BROKER_SUPER_USERS_BYTES) {
        return false;
    }
    struct acl_store scratch;
    int rc = acl_store_open(&scratch, NULL, false, v);
    acl_store_close(&scratch);
    return rc == 0;
}

static int set_string(struct broker_config *c, const struct key_def *k, const char *v, char *err,
                      size_t err_cap)
{
    size_t n = strlen(v);
    if (k->kind == KIND_HOST && !host_ok(v, n, true)) {
        return fail(err, err_cap,
                    "%s: '%.300s' is not a host; want 1 to %d letters, digits or . - _ : %%",
                    k->name, v, BROKER_HOST_BYTES - 1);
    }
    if (k->kind == KIND_PATH &&
        (n == 0 || n >= BROKER_DATA_DIR_BYTES || is_blank(v[0]) || is_blank(v[n - 1]))) {
        return fail(err, err_cap,
                    "%s: a path of %zu bytes; want 1 to %d bytes, "
                    "not starting or ending with a blank",
                    k->name, n, BROKER_DATA_DIR_BYTES - 1);
    }
    if (k->kind == KIND_ENDPOINTS) {
        struct cluster_session_config scratch;
        cluster_session_config_default(&scratch);
        if (n >= BROKER_ETCD_ENDPOINTS_BYTES || cluster_endpoints_parse(&scratch, v) != 0) {
            return fail(err, err_cap,
                        "%s: '%.300s' is not a list of etcd endpoints; want 1 to %d "
                        "http://HOST:PORT URLs separated by commas",
                        k->name, v, ETCD_ENDPOINTS_MAX);
        }
    }
    if (k->kind == KIND_USER && !scram_user_valid(v, n)) {
        return fail(err, err_cap,
                    "%s: '%.100s' is not a user name; want 1 to %d letters, digits or . _ - @",
                    k->name, v, SCRAM_USER_BYTES_MAX);
    }
    if (k->kind == KIND_NAME && !cluster_name_ok(v)) {
        return fail(err, err_cap,
                    "%s: '%.100s' is not a cluster name; want 1 to %d letters, digits or . _ -",
                    k->name, v, CLUSTER_NAME_BYTES - 1);
    }
    if (k->kind == KIND_PRINCIPALS && !principals_ok(v, n)) {
        return fail(err, err_cap,
                    "%s: '%.300s' is not a list of principals; want User:NAME[,User:NAME...], "
                    "at most %d, in %d bytes",
                    k->name, v, ACL_SUPER_USERS_MAX, BROKER_SUPER_USERS_BYTES - 1);
    }
    memcpy(field_ptr(c, k), v, n + 1);
    return 0;
}

/* sasl_mechanisms: names separated by commas (blanks around each dropped);
 * an empty one is refused, so at least one is named. */
static int set_mechs(struct broker_config *c, const struct key_def *k, const char *v, char *err,
                     size_t err_cap)
{
    uint32_t bits = 0;
    for (const char *p = v;;) {
        const char *end = strchr(p, ',');
        size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
        size_t lead = 0;
        while (lead < n && is_blank(p[lead])) {
            lead++;
        }
        while (n > lead && is_blank(p[n - 1])) {
            n--;
        }
        enum scram_mech m;
        if (scram_mech_parse(p + lead, n - lead, &m) != 0) {
            return fail(err, err_cap,
                        "%s: '%.*s' is not a mechanism; want SCRAM-SHA-256 or SCRAM-SHA-512",
                        k->name, (int)(n - lead > 64 ? 64 : n - lead), p + lead);
        }
        bits |= 1u << m;
        if (end == NULL) {
            break;
        }
        p = end + 1;
    }
    c->sasl_mechanisms = bits;
    return 0;
}

static int set_enum(struct broker_config *c, const struct key_def *k, const char *v, char *err,
                    size_t err_cap)
{
    if (k->kind == KIND_MECHS) {
        return set_mechs(c, k, v, err, err_cap);
    }
    if (k->kind == KIND_BOOL) {
        if (strcmp(v, "true") != 0 && strcmp(v, "false") != 0) {
            return fail(err, err_cap, "%s: '%.64s' is not a boolean; want true or false", k->name,
                        v);
        }
        *(bool *)field_ptr(c, k) = strcmp(v, "true") == 0;
        return 0;
    }
    ASSERT(k->kind == KIND_CHOICE && k->choice_count > 0);
    char want[128] = "";
    for (uint32_t i = 0; i < k->choice_count; i++) {
        if (strcmp(v, k->choices[i]) == 0) {
            *(int *)field_ptr(c, k) = (int)i;
            return 0;
        }
        size_t n = strlen(want);
        snprintf(want + n, sizeof(want) - n, "%s%s", i == 0 ? "" : ", ", k->choices[i]);
    }
    return fail(err, err_cap, "%s: '%.64s' is not one of %s", k->name, v, want);
}

int broker_config_set(struct broker_config *c, const char *key, const char *value, char *err,
                      size_t err_cap)
{
    ASSERT(c != NULL && key != NULL && value != NULL);
    ASSERT(err != NULL || err_cap == 0);
    const struct key_def *k = key_find(key);
    if (k == NULL) {
        return fail(err, err_cap,
                    "unknown key '%.64s'; see nagared --help or docs/configuration.md", key);
    }
    if (value[0] == '\0') {
        return fail(err, err_cap, "%s: no value given", k->name);
    }
    switch (k->kind) {
    case KIND_ADDRESS:
        return parse_address(c, k, value, err, err_cap);
    case KIND_PORT:
        return parse_port(k->name, value, (uint16_t *)field_ptr(c, k), err, err_cap);
    case KIND_HOST:
    case KIND_PATH:
    case KIND_ENDPOINTS:
    case KIND_NAME:
    case KIND_PRINCIPALS:
    case KIND_USER:
        return set_string(c, k, value, err, err_cap);
    case KIND_BOOL:
    case KIND_CHOICE:
    case KIND_MECHS:
        return set_enum(c, k, value, err, err_cap);
    case KIND_COUNT:
    case KIND_SIZE:
    case KIND_DURATION: {
        int64_t v = 0;
        int rc = parse_number(k, value, &v, err, err_cap);
        if (rc == 0) {
            field_set(c, k, v);
        }
        return rc;
    }
    }
    UNREACHABLE();
}

static bool wildcard_host(const char *host)
{
    return strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0;
}

/* The cluster settings that only make sense together. */
static int check_cluster(const struct broker_config *c, char *err, size_t err_cap)
{
    bool clustered = broker_config_clustered(c);
    if (clustered && c->etcd_endpoints[0] == '\0') {
        return fail(err, err_cap,
                    "broker_id (%d) is set but etcd_endpoints is not: a cluster keeps its state "
                    "in etcd; set both, or neither for a single broker",
                    (int)c->broker_id);
    }
    if (!clustered && c->etcd_endpoints[0] != '\0') {
        return fail(err, err_cap,
                    "etcd_endpoints is set but broker_id is not: set broker_id to join a "
                    "cluster, or drop etcd_endpoints for a single broker");
    }
    if (clustered && c->advertised_host[0] == '\0' && wildcard_host(c->listen_host)) {
        return fail(err, err_cap,
                    "listening on %s, which nobody can connect to: set advertised_host to "
                    "the address other brokers and clients reach this one at",
                    c->listen_host);
    }
    return 0;
}

int broker_config_check(const struct broker_config *c, char *err, size_t err_cap)
{
    ASSERT(err != NULL || err_cap == 0);
    uint64_t need = (uint64_t)c->batch_bytes_max + BROKER_PRODUCE_FRAME_OVERHEAD_BYTES;
    if (need > c->frame_bytes_max) {
        return fail(err, err_cap,
                    "frame_bytes_max (%u) must hold a produce request with one batch of "
                    "batch_bytes_max (%d): raise it to at least %llu or lower batch_bytes_max",
                    c->frame_bytes_max, c->batch_bytes_max, (unsigned long long)need);
    }
    uint64_t partial_min = 2ull * c->frame_bytes_max;
    if ((uint64_t)c->partial_bytes_max < partial_min || c->partial_bytes_max > c->mem_bytes_max) {
        return fail(err, err_cap,
                    "partial_bytes_max (%lld) must hold two frames of frame_bytes_max (%llu) "
                    "and be at most mem_bytes_max (%lld)",
                    (long long)c->partial_bytes_max, (unsigned long long)partial_min,
                    (long long)c->mem_bytes_max);
    }
    if ((c->inter_broker_user[0] == '\0') != (c->inter_broker_password_file[0] == '\0')) {
        return fail(err, err_cap,
                    "inter_broker_user and inter_broker_password_file go together: set both "
                    "for followers to log in, or neither");
    }
    if ((broker_config_tls(c) || (c->admin_listen_tls && broker_config_admin(c))) &&
        (c->tls_cert_file[0] == '\0' || c->tls_key_file[0] == '\0')) {
        return fail(err, err_cap,
                    "a TLS listener (listen_tls, kafka_listen_tls, admin_listen_tls) needs "
                    "tls_cert_file and tls_key_file");
    }
    if (c->tls_client_auth != TLS_CLIENT_AUTH_NONE && c->tls_ca_file[0] == '\0') {
        return fail(err, err_cap,
                    "tls_client_auth = %s needs tls_ca_file, the CAs client certificates are "
                    "checked against",
                    tls_client_auth_names[c->tls_client_auth]);
    }
    return check_cluster(c, err, err_cap);
}

bool broker_config_tls(const struct broker_config *c)
{
    return c->listen_tls || (c->kafka_listen_tls && broker_config_kafka(c));
}

void broker_config_tls_server(const struct broker_config *c, struct tls_server_cfg *out)
{
    *out = (struct tls_server_cfg){.cert_file = c->tls_cert_file,
                                   .key_file = c->tls_key_file,
                                   .ca_file = c->tls_ca_file,
                                   .client_auth = c->tls_client_auth};
}

/* ---- defaults ---- */

void broker_config_default(struct broker_config *c)
{
    ASSERT(c != NULL);
    struct part_config p;
    part_config_default(&p);
    ASSERT(p.segment_bytes <= PART_SEGMENT_BYTES_MAX && p.batch_bytes_max <= BATCH_BYTES_LIMIT);
    *c = (struct broker_config){
        .listen_port = BROKER_LISTEN_PORT_DEFAULT,
        .kafka_listen_port = BROKER_KAFKA_LISTEN_PORT_DEFAULT,
        .admin_listen_port = BROKER_ADMIN_LISTEN_PORT_DEFAULT,
        .auto_create_topics = true,
        .default_partitions = BROKER_DEFAULT_PARTITIONS_DEFAULT,
        .retention_ms = p.retention_ms,
        .retention_bytes = p.retention_bytes,
        .segment_bytes = (int64_t)p.segment_bytes,
        .segment_ms = p.segment_ms,
        .batch_bytes_max = (int32_t)p.batch_bytes_max,
        .index_interval_bytes = p.index_interval_bytes,
        .retention_check_ms = BROKER_RETENTION_CHECK_MS_DEFAULT,
        .scrub_bytes_per_sec = BROKER_SCRUB_BYTES_PER_SEC_DEFAULT,
        .internal_segment_bytes = BROKER_INTERNAL_SEGMENT_BYTES_DEFAULT,
        .fetch_wait_max_ms = BROKER_FETCH_WAIT_MAX_MS_DEFAULT,
        .producer_ids_max = BROKER_PRODUCER_IDS_MAX_DEFAULT,
        .kafka_group_initial_delay_ms = BROKER_KAFKA_GROUP_INITIAL_DELAY_MS_DEFAULT,
        .share_lock_ms = BROKER_SHARE_LOCK_MS_DEFAULT,
        .share_delivery_max = BROKER_SHARE_DELIVERY_MAX_DEFAULT,
        .share_inflight_max = BROKER_SHARE_INFLIGHT_MAX_DEFAULT,
        .frame_bytes_max = PROTO_FRAME_BYTES_DEFAULT,
        .conn_max = LOOP_CONN_MAX_DEFAULT,
        .conn_inflight_max = LOOP_CONN_INFLIGHT_MAX_DEFAULT,
        .mem_bytes_max = LOOP_MEM_BYTES_MAX_DEFAULT,
        .partial_bytes_max = LOOP_PARTIAL_BYTES_MAX_DEFAULT,
        .partial_timeout_ms = LOOP_PARTIAL_TIMEOUT_MS_DEFAULT,
        .tls_handshake_timeout_ms = LOOP_TLS_HANDSHAKE_TIMEOUT_MS_DEFAULT,
        .log_level = LOG_INFO,
        .broker_id = BROKER_ID_NONE,
        .default_replication_factor = BROKER_DEFAULT_REPLICATION_FACTOR_DEFAULT,
        .min_insync_replicas = BROKER_MIN_INSYNC_REPLICAS_DEFAULT,
        .replica_lag_ms = BROKER_REPLICA_LAG_MS_DEFAULT,
        .lease_ttl_s = CLUSTER_LEASE_TTL_S_DEFAULT,
        .preferred_leader_check_ms = CLUSTER_PREFERRED_LEADER_CHECK_MS_DEFAULT,
        .redrive_retry_ms = BROKER_REDRIVE_RETRY_MS_DEFAULT,
        .sasl_mechanisms = BROKER_SASL_MECHANISMS_ALL,
        .login_failures_max = BROKER_LOGIN_FAILURES_MAX_DEFAULT,
        .login_block_ms = BROKER_LOGIN_BLOCK_MS_DEFAULT,
    };
    static_assert(sizeof(CLUSTER_NAME_DEFAULT) <= sizeof(c->cluster_name), "name fits");
    memcpy(c->cluster_name, CLUSTER_NAME_DEFAULT, sizeof(CLUSTER_NAME_DEFAULT));
    static_assert(sizeof(BROKER_LISTEN_HOST_DEFAULT) <= BROKER_HOST_BYTES, "host fits");
    static_assert(sizeof(BROKER_DATA_DIR_DEFAULT) <= BROKER_DATA_DIR_BYTES, "dir fits");
    memcpy(c->listen_host, BROKER_LISTEN_HOST_DEFAULT, sizeof(BROKER_LISTEN_HOST_DEFAULT));
    memcpy(c->kafka_listen_host, BROKER_LISTEN_HOST_DEFAULT, sizeof(BROKER_LISTEN_HOST_DEFAULT));
    memcpy(c->admin_listen_host, BROKER_LISTEN_HOST_DEFAULT, sizeof(BROKER_LISTEN_HOST_DEFAULT));
    memcpy(c->data_dir, BROKER_DATA_DIR_DEFAULT, sizeof(BROKER_DATA_DIR_DEFAULT));
}

void broker_config_part(const struct broker_config *c, struct part_config *out)
{
    part_config_default(out);
    out->segment_bytes = (uint64_t)c->segment_bytes;
    out->segment_ms = c->segment_ms;
    out->index_interval_bytes = c->index_interval_bytes;
    out->batch_bytes_max = (uint32_t)c->batch_bytes_max;
    out->retention_ms = c->retention_ms;
    out->retention_bytes = c->retention_bytes;
}

const char *broker_config_version(void) { return NAGARE_VERSION; }

bool broker_config_kafka(const struct broker_config *c)
{
    return strcmp(c->kafka_listen_host, BROKER_LISTEN_OFF) != 0;
}

bool broker_config_admin(const struct broker_config *c)
{
    return strcmp(c->admin_listen_host, BROKER_LISTEN_OFF) != 0;
}

bool broker_config_clustered(const struct broker_config *c)
{
    return c->broker_id != BROKER_ID_NONE;
}

const char *broker_config_kafka_host(const struct broker_config *c)
{
    return c->advertised_host[0] != '\0' ? c->advertised_host : c->kafka_listen_host;
}

void broker_config_cluster(const struct broker_config *c, uint16_t bound_port, uint16_t kafka_port,
                           struct cluster_session_config *out)
{
    ASSERT(broker_config_clustered(c));
    cluster_session_config_default(out);
    out->broker_id = c->broker_id;
    const char *host = c->advertised_host[0] != '\0' ? c->advertised_host : c->listen_host;
    memcpy(out->host, host, strlen(host) + 1);
    out->port = c->advertised_port != 0 ? c->advertised_port : bound_port;
    if (broker_config_kafka(c)) {
        const char *kh = broker_config_kafka_host(c);
        memcpy(out->kafka_host, kh, strlen(kh) + 1);
        out->kafka_port = kafka_port;
    }
    int rc = cluster_endpoints_parse(out, c->etcd_endpoints);
    ASSERT(rc == 0); /* checked when it was set */
    memcpy(out->cluster_name, c->cluster_name, sizeof(out->cluster_name));
    out->lease_ttl_s = c->lease_ttl_s;
    out->preferred_leader_check_ms = c->preferred_leader_check_ms;
}

/* ---- the config file ---- */

/* Reads one line (without its '\n') into buf[0..BROKER_CONFIG_LINE_BYTES_MAX].
 * Returns 1 for a line, 0 at the end of the file, -NG_ETOOBIG for an overlong
 * line, -NG_EBADARG for a NUL byte, or -errno. */
static int read_line(FILE *f, char *buf)
{
    size_t n = 0;
    for (;;) {
        int ch = getc(f);
        if (ch == EOF) {
            if (ferror(f)) {
                return errno != 0 ? -errno : -EIO;
            }
            buf[n] = '\0';
            return n > 0 ? 1 : 0;
        }
        if (ch == '\n') {
            buf[n] = '\0';
            return 1;
        }
        if (ch == '\0') {
            return -NG_EBADARG;
        }
        if (n == BROKER_CONFIG_LINE_BYTES_MAX) {
            return -NG_ETOOBIG;
        }
        buf[n++] = (char)ch;
    }
}

/* Applies one line of path (comment, blank, or key = value). */
static int apply_line(struct broker_config *c, char *line, char *err, size_t err_cap)
{
    char *s = trim(line);
    if (s[0] == '\0' || s[0] == '#') {
        return 0;
    }
    char *eq = strchr(s, '=');
    if (eq == NULL) {
        return fail(err, err_cap, "'%.64s' is not a setting; want key = value", s);
    }
    *eq = '\0';
    char *key = trim(s);
    if (key[0] == '\0') {
        return fail(err, err_cap, "no key before '='; want key = value");
    }
    return broker_config_set(c, key, trim(eq + 1), err, err_cap);
}

static int load_lines(struct broker_config *c, FILE *f, const char *path, char *err, size_t err_cap)
{
    char line[BROKER_CONFIG_LINE_BYTES_MAX + 1];
    char msg[512];
    for (unsigned lineno = 1;; lineno++) {
        int rc = read_line(f, line);
        if (rc == 0) {
            return 0;
        }
        if (rc == -NG_ETOOBIG) {
            return fail(err, err_cap, "%s:%u: line longer than %d bytes", path, lineno,
                        BROKER_CONFIG_LINE_BYTES_MAX);
        }
        if (rc == -NG_EBADARG) {
            return fail(err, err_cap, "%s:%u: NUL byte in the line", path, lineno);
        }
        if (rc < 0) {
            fail(err, err_cap, "%s: cannot read: %s", path, strerror(-rc));
            return rc;
        }
        rc = apply_line(c, line, msg, sizeof(msg));
        if (rc != 0) {
            return fail(err, err_cap, "%s:%u: %s", path, lineno, msg);
        }
    }
}

int broker_config_load_file(struct broker_config *c, const char *path, char *err, size_t err_cap)
{
    ASSERT(c != NULL && path != NULL);
    ASSERT(err != NULL || err_cap == 0);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        int rc = -errno;
        fail(err, err_cap, "%s: cannot open: %s", path, strerror(-rc));
        return rc;
    }
    struct broker_config tmp = *c;
    int rc = load_lines(&tmp, f, path, err, err_cap);
    fclose(f); /* read only: nothing to lose */
    if (rc == 0) {
        *c = tmp;
    }
    return rc;
}

/* ---- the command line ---- */

enum flag_id { FLAG_KEY, FLAG_CONFIG, FLAG_SET, FLAG_HELP, FLAG_VERSION };

struct flag_def {
    const char *name;
    enum flag_id id;
    bool takes_value;
    const char *key; /* FLAG_KEY: the config key it sets */
};

static const struct flag_def flags[] = {
    {"--listen", FLAG_KEY, true, "listen"},
    {"--kafka-listen", FLAG_KEY, true, "kafka_listen"},
    {"--admin-listen", FLAG_KEY, true, "admin_listen"},
    {"--data-dir", FLAG_KEY, true, "data_dir"},
    {"--broker-id", FLAG_KEY, true, "broker_id"},
    {"--etcd", FLAG_KEY, true, "etcd_endpoints"},
    {"--advertised", FLAG_KEY, true, "advertised"},
    {"--config", FLAG_CONFIG, true},
    {"--set", FLAG_SET, true},
    {"--help", FLAG_HELP, false},
    {"-h", FLAG_HELP, false},
    {"--version", FLAG_VERSION, false},
};

/* One flag of the command line and its value (NULL if it takes none). */
struct flag {
    const struct flag_def *def;
    const char *value;
};

/* Reads the flag at argv[*i] (and its value), advancing *i past both. */
static int next_flag(int argc, char **argv, int *i, struct flag *out, char *err, size_t err_cap)
{
    const char *arg = argv[*i];
    const char *eq = strncmp(arg, "--", 2) == 0 ? strchr(arg, '=') : NULL;
    size_t name_len = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
    *i += 1;
    for (size_t f = 0; f < ARRAY_LEN(flags); f++) {
        const struct flag_def *d = &flags[f];
        if (strlen(d->name) != name_len || strncmp(d->name, arg, name_len) != 0) {
            continue;
        }
        if (!d->takes_value && eq != NULL) {
            return fail(err, err_cap, "%s takes no value", d->name);
        }
        if (d->takes_value && eq == NULL && *i >= argc) {
            return fail(err, err_cap, "%s needs a value", d->name);
        }
        *out = (struct flag){.def = d,
                             .value = !d->takes_value ? NULL
                                      : eq != NULL    ? eq + 1
                                                      : argv[(*i)++]};
        return 0;
    }
    if (arg[0] == '-') {
        return fail(err, err_cap, "unknown option '%.64s'; see nagared --help", arg);
    }
    return fail(err, err_cap, "unexpected argument '%.64s'; see nagared --help", arg);
}

/* --set KEY=VALUE, blanks around both dropped. */
static int apply_set(struct broker_config *c, const char *kv, char *err, size_t err_cap)
{
    char buf[BROKER_CONFIG_LINE_BYTES_MAX + 1];
    size_t n = strlen(kv);
    if (n > BROKER_CONFIG_LINE_BYTES_MAX) {
        return fail(err, err_cap, "--set: longer than %d bytes", BROKER_CONFIG_LINE_BYTES_MAX);
    }
    memcpy(buf, kv, n + 1);
    char *eq = strchr(buf, '=');
    if (eq == NULL) {
        return fail(err, err_cap, "--set '%.64s': want KEY=VALUE", kv);
    }
    *eq = '\0';
    char msg[512];
    int rc = broker_config_set(c, trim(buf), trim(eq + 1), msg, sizeof(msg));
    if (rc != 0) {
        return fail(err, err_cap, "--set: %s", msg);
    }
    return 0;
}

static int apply_flag(struct broker_config *c, const struct flag *fl, char *err, size_t err_cap)
{
    char msg[512];
    int rc = 0;
    switch (fl->def->id) {
    case FLAG_KEY:
        rc = broker_config_set(c, fl->def->key, fl->value, msg, sizeof(msg));
        break;
    case FLAG_SET:
        return apply_set(c, fl->value, err, err_cap);
    case FLAG_CONFIG:
    case FLAG_HELP:
    case FLAG_VERSION:
        return 0;
    }
    if (rc != 0) {
        return fail(err, err_cap, "%s: %s", fl->def->name, msg);
    }
    return 0;
}

/* First pass: every flag well-formed; finds --config, --help, --version. */
static int scan_args(int argc, char **argv, const char **config, bool *help, bool *version,
                     char *err, size_t err_cap)
{
    for (int i = 1; i < argc;) {
        struct flag fl;
        int rc = next_flag(argc, argv, &i, &fl, err, err_cap);
        if (rc != 0) {
            return rc;
        }
        *help = *help || fl.def->id == FLAG_HELP;
        *version = *version || fl.def->id == FLAG_VERSION;
        if (fl.def->id == FLAG_CONFIG) {
            if (*config != NULL) {
                return fail(err, err_cap, "--config given twice");
            }
            *config = fl.value;
        }
    }
    return 0;
}

static int apply_args(struct broker_config *c, int argc, char **argv, char *err, size_t err_cap)
{
    for (int i = 1; i < argc;) {
        struct flag fl;
        int rc = next_flag(argc, argv, &i, &fl, err, err_cap);
        ASSERT(rc == 0); /* scan_args saw the same argv */
        rc = apply_flag(c, &fl, err, err_cap);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

int broker_config_parse_args(struct broker_config *c, int argc, char **argv, char *err,
                             size_t err_cap)
{
    ASSERT(c != NULL && argc >= 0 && (argc == 0 || argv != NULL));
    ASSERT(err != NULL || err_cap == 0);
    const char *config = NULL;
    bool help = false, version = false;
    if (scan_args(argc, argv, &config, &help, &version, err, err_cap) != 0) {
        return BROKER_ARGS_EXIT_USAGE;
    }
    if (help) {
        broker_config_usage(stdout);
        return BROKER_ARGS_EXIT_OK;
    }
    if (version) {
        printf("nagared %s\n", NAGARE_VERSION);
        return BROKER_ARGS_EXIT_OK;
    }
    struct broker_config tmp;
    broker_config_default(&tmp);
    if (config != NULL && broker_config_load_file(&tmp, config, err, err_cap) != 0) {
        return BROKER_ARGS_EXIT_USAGE;
    }
    if (apply_args(&tmp, argc, argv, err, err_cap) != 0 ||
        broker_config_check(&tmp, err, err_cap) != 0) {
        return BROKER_ARGS_EXIT_USAGE;
    }
    *c = tmp;
    return BROKER_ARGS_RUN;
}

/* ---- printing ---- */

static bool is_text(const struct key_def *k)
{
    return k->kind == KIND_HOST || k->kind == KIND_PATH || k->kind == KIND_ENDPOINTS ||
           k->kind == KIND_NAME || k->kind == KIND_PRINCIPALS || k->kind == KIND_USER;
}

/* Writes k's value in c as the config file spells it. */
static void print_value(FILE *f, const struct broker_config *c, const struct key_def *k)
{
    switch (k->kind) {
    case KIND_ADDRESS:
        break;
    case KIND_HOST:
    case KIND_PATH:
    case KIND_ENDPOINTS:
    case KIND_NAME:
    case KIND_PRINCIPALS:
    case KIND_USER:
        fputs((const char *)c + k->offset, f);
        break;
    case KIND_MECHS: {
        const char *sep = "";
        for (int m = 0; m < SCRAM_MECH_COUNT; m++) {
            if (c->sasl_mechanisms & (1u << m)) {
                fprintf(f, "%s%s", sep, scram_mech_name((enum scram_mech)m));
                sep = ",";
            }
        }
        break;
    }
    case KIND_PORT:
        fprintf(f, "%lld", (long long)field_get(c, k));
        break;
    case KIND_BOOL:
        fputs(*(const bool *)((const char *)c + k->offset) ? "true" : "false", f);
        break;
    case KIND_CHOICE: {
        int i = *(const int *)((const char *)c + k->offset);
        ASSERT(i >= 0 && (uint32_t)i < k->choice_count);
        fputs(k->choices[i], f);
        break;
    }
    case KIND_COUNT:
    case KIND_SIZE:
    case KIND_DURATION:
        fprintf(f, "%lld", (long long)field_get(c, k));
        break;
    }
}

void broker_config_print(FILE *f, const struct broker_config *c)
{
    for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
        if (keys[i].kind == KIND_ADDRESS) {
            continue; /* its host and port keys say it */
        }
        if (is_text(&keys[i]) && ((const char *)c + keys[i].offset)[0] == '\0') {
            continue; /* unset; an empty value would not read back */
        }
        fprintf(f, "%s = ", keys[i].name);
        print_value(f, c, &keys[i]);
        fputc('\n', f);
    }
}

void broker_config_usage(FILE *f)
{
    struct broker_config d;
    broker_config_default(&d);
    fprintf(f,
            "usage: nagared [options]\n"
            "\n"
            "Runs the nagare broker. With no options it listens on %s:%u and keeps\n"
            "its data in %s.\n"
            "\n"
            "options:\n"
            "  --listen HOST:PORT  address to listen on; [ADDR]:PORT for IPv6,\n"
            "                      :PORT to change only the port, port 0 for any free port\n"
            "  --kafka-listen HOST:PORT  address Kafka clients connect to (default\n"
            "                      127.0.0.1:9092), as --listen; off for none\n"
            "  --admin-listen HOST:PORT  address of the HTTP admin listener: metrics,\n"
            "                      health (default 127.0.0.1:9644), as --listen; off for none\n"
            "  --data-dir DIR      directory for topics and logs\n"
            "  --broker-id N       join a cluster as broker N (docs/cluster.md)\n"
            "  --etcd URL[,URL]    the cluster's etcd endpoints, http://HOST:PORT\n"
            "  --advertised HOST:PORT  the address other brokers and clients use\n"
            "  --config FILE       read settings from FILE: `key = value` lines, '#' comments\n"
            "  --set KEY=VALUE     set any key below (repeatable)\n"
            "  -h, --help          print this and exit\n"
            "  --version           print the version and exit\n"
            "  --verify DIR        check a data directory offline (no broker running on\n"
            "                      it): report every bad batch, index and topic.meta;\n"
            "                      exit 0 when sound, 1 with problems\n"
            "  --add-user NAME DIR add or change a user in data directory DIR offline (no\n"
            "                      broker running on it), password from $NAGARE_PASSWORD or\n"
            "                      standard input (docs/security.md)\n"
            "\n"
            "Precedence: defaults < --config file < the other flags, in any order.\n"
            "Sizes take units k, m, g (KiB, MiB, GiB); durations ms, s, m, h, d.\n"
            "\n"
            "keys (as a --config file writes them, with their defaults):\n",
            d.listen_host, (unsigned)d.listen_port, d.data_dir);
    for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
        const struct key_def *k = &keys[i];
        fprintf(f, "  %s = ", k->name);
        if (k->kind == KIND_ADDRESS) {
            char *host = NULL;
            uint16_t *port = NULL;
            address_fields(&d, k, &host, &port);
            fprintf(f, "%s:%u", host, (unsigned)*port);
        } else {
            print_value(f, &d, k);
        }
        fprintf(f, "\n                      %s\n", k->help);
    }
    fprintf(f, "\nEvery flag and key, with its range: docs/configuration.md\n");
}
