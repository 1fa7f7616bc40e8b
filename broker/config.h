/*
 * broker/config.h — nagared's settings: defaults, the config file, the
 * command line. docs/configuration.md is the user's manual for every key.
 *
 * Invariants. A struct broker_config filled by broker_config_default() and
 * changed only through broker_config_set() / _load_file() / _parse_args()
 * holds every field inside its documented range. A call that fails leaves
 * the struct as it was: values are parsed and checked before anything is
 * stored. Precedence is defaults < config file < command-line flags.
 *
 * Every default and limit below comes from the module that owns it
 * (storage/partition.h, net/proto.h, net/loop.h); the few that belong to the
 * broker alone are defined here, each with its reason. Nothing here keeps
 * global state: every function may be called from any thread on a struct
 * that thread owns.
 */
#ifndef NAGARE_BROKER_CONFIG_H
#define NAGARE_BROKER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/assert.h"
#include "auth/scram.h"
#include "base/log.h"
#include "net/loop.h"
#include "broker/share_state.h"
#include "cluster/session.h"
#include "net/proto.h"
#include "net/tls.h"
#include "storage/partition.h"

/* ---- Defaults and limits that belong to the broker -------------------- */

/* Loopback only: a broker started with no configuration is not reachable
 * from other machines until someone says so. */
#define BROKER_LISTEN_HOST_DEFAULT "127.0.0.1"
#define BROKER_LISTEN_PORT_DEFAULT 7420
/* The Kafka protocol's listener (issue 14): Kafka's own default port, on
 * loopback like nagare's; kafka_listen = off turns it off. */
#define BROKER_KAFKA_LISTEN_PORT_DEFAULT 9092
/* The HTTP admin listener (issue 16: metrics, health, the console):
 * Redpanda's admin port, on loopback; admin_listen = off turns it off. */
#define BROKER_ADMIN_LISTEN_PORT_DEFAULT 9644
/* What kafka_listen and admin_listen take to open no listener. */
#define BROKER_LISTEN_OFF "off"
#define BROKER_DATA_DIR_DEFAULT "./nagare-data"
#define BROKER_DEFAULT_PARTITIONS_DEFAULT 1

/* Field sizes, NUL included. A DNS name is at most 253 bytes; PATH_MAX is
 * 4096 on Linux. */
#define BROKER_HOST_BYTES 256
#define BROKER_DATA_DIR_BYTES 4096

/* Retention scans each partition's segment list; once a minute is Kafka's
 * log.retention.check.interval.ms (5 min) made tighter for small disks. It
 * may not run more than 10 times a second: that is busy work, not policy. */
#define BROKER_RETENTION_CHECK_MS_DEFAULT 60000u
#define BROKER_RETENTION_CHECK_MS_MIN 100u

/* A fetch's long poll is capped at 30 s, below common client request
 * timeouts; the wire carries wait_max_ms as an i32, so no cap passes it. */
#define BROKER_FETCH_WAIT_MAX_MS_DEFAULT 30000u
#define BROKER_FETCH_WAIT_MAX_MS_LIMIT ((uint32_t)INT32_MAX)

/* Idempotent producer states per partition (the last sequences of each
 * producer id; broker/producers.h). 1024 covers any realistic fleet of
 * producers writing one partition; the limit, at about 200 bytes a producer
 * (a ~100-byte state in a table kept at most half full), keeps one
 * partition's table near 13 MiB. */
#define BROKER_PRODUCER_IDS_MAX_DEFAULT 1024u
#define BROKER_PRODUCER_IDS_MAX_LIMIT 65536u

/* Kafka's group.initial.rebalance.delay.ms (KIP-134): how long the first
 * rebalance of an empty classic group waits for more members, so that
 * consumers started together land in one generation. Kafka's default; at
 * most a rebalance timeout's worth (5 min). */
#define BROKER_KAFKA_GROUP_INITIAL_DELAY_MS_DEFAULT 3000u
#define BROKER_KAFKA_GROUP_INITIAL_DELAY_MS_LIMIT 300000u

/* Share groups (broker/share_state.h): the defaults are share_config_default()'s
 * (KIP-932's: a 30 s acquisition lock, 5 deliveries) and the limits
 * share_state.h's. broker/share_serve.c checks the three against share_config_check(). */
#define BROKER_SHARE_LOCK_MS_DEFAULT 30000
#define BROKER_SHARE_DELIVERY_MAX_DEFAULT 5u
#define BROKER_SHARE_INFLIGHT_MAX_DEFAULT 1000u
static_assert(BROKER_SHARE_LOCK_MS_DEFAULT <= SHARE_LOCK_MS_LIMIT &&
                  BROKER_SHARE_DELIVERY_MAX_DEFAULT <= SHARE_DELIVERY_LIMIT &&
                  BROKER_SHARE_INFLIGHT_MAX_DEFAULT <= SHARE_INFLIGHT_LIMIT,
              "share defaults inside share_state.h's limits");

/* A cluster (docs/cluster.md). Three copies of each partition, two of
 * them needed to acknowledge acks=all: one broker may fail without loss or
 * unavailability (Kafka's usual production settings). A follower that has
 * not caught up for 10 s leaves the ISR (Kafka's replica.lag.time.max.ms
 * was 10 s for years; 30 s today, for larger clusters than this one). */
#define BROKER_ID_NONE (-1)
#define BROKER_DEFAULT_REPLICATION_FACTOR_DEFAULT 3
#define BROKER_MIN_INSYNC_REPLICAS_DEFAULT 2
#define BROKER_REPLICA_LAG_MS_DEFAULT 10000u
#define BROKER_REPLICA_LAG_MS_MIN 100u
/* A cluster's DlqRedrive: how long a batch bound for a partition another
 * broker leads is retried (broker/forward.h) before the step fails: a
 * leader's lease (6 s) and an election, with room, while a step still
 * answers within a client's request timeout (30 s by default) with a
 * request's time more (FORWARD_PRODUCE_TIMEOUT_MS + FORWARD_IO_MARGIN_MS,
 * 10 s). 0: no retry. At most 10 minutes. */
#define BROKER_REDRIVE_RETRY_MS_DEFAULT 15000u
#define BROKER_REDRIVE_RETRY_MS_LIMIT 600000u
/* The etcd endpoints as the config spells them: a comma-separated list. */
#define BROKER_ETCD_ENDPOINTS_BYTES (ETCD_ENDPOINTS_MAX * CLUSTER_ENDPOINT_BYTES)
static_assert(BROKER_HOST_BYTES == CLUSTER_HOST_BYTES, "an advertised host fits the view");
static_assert(BROKER_MIN_INSYNC_REPLICAS_DEFAULT <= BROKER_DEFAULT_REPLICATION_FACTOR_DEFAULT &&
                  BROKER_DEFAULT_REPLICATION_FACTOR_DEFAULT <= CLUSTER_REPLICAS_MAX,
              "cluster defaults inside their limits");

/* Authentication (docs/security.md, "Authentication"). Failed logins are
 * counted per peer address; past login_failures_max (5, as many as a user
 * mistyping a password plausibly makes) the address is refused without work
 * for login_block_ms (a minute: what an online password guesser may try
 * drops to 5 a minute). Every mechanism is on by default. */
#define BROKER_LOGIN_FAILURES_MAX_DEFAULT 5u
#define BROKER_LOGIN_FAILURES_MAX_LIMIT 1000u
#define BROKER_LOGIN_BLOCK_MS_DEFAULT 60000u
#define BROKER_SASL_MECHANISMS_ALL ((1u << SCRAM_MECH_COUNT) - 1)
/* A user name as the config holds it, NUL included. */
#define BROKER_USER_BYTES (SCRAM_USER_BYTES_MAX + 1)

/* Each connection holds a file descriptor; fs.nr_open, the most a process
 * can ever have, defaults to 2^20 on Linux. */
#define BROKER_CONN_MAX_LIMIT (1u << 20)

/* A Produce request carrying one batch of batch_bytes_max must fit in a
 * frame of frame_bytes_max: the request header with the longest client id,
 * acks (i16), timeout (i32), topic count (i32), the longest topic name
 * (i16 length + bytes), partition count (i32), partition (i32) and the
 * batch's length (i32). docs/protocol.md, "Produce". */
#define BROKER_PRODUCE_FRAME_OVERHEAD_BYTES                            \
    (PROTO_REQ_HEADER_BYTES_MIN + PROTO_STRING_BYTES_MAX + 2 + 4 + 4 + \
     (2 + PROTO_TOPIC_NAME_BYTES_MAX) + 4 + 4 + 4)

/* Longest config file line: room for the longest data_dir and its key. */
#define BROKER_CONFIG_LINE_BYTES_MAX 8192

static_assert(BROKER_CONFIG_LINE_BYTES_MAX > BROKER_DATA_DIR_BYTES + 64,
              "a config line must hold the longest data_dir");
static_assert(PROTO_FRAME_BYTES_LIMIT <= LOOP_FRAME_BYTES_CAP,
              "the loop must accept every frame maximum the config allows");
static_assert(PROTO_FRAME_BYTES_MIN >= BROKER_PRODUCE_FRAME_OVERHEAD_BYTES + BATCH_HEADER_BYTES,
              "the smallest frame must hold a produce request with one batch");
static_assert(LOOP_PARTIAL_BYTES_MAX_DEFAULT >= 2ull * PROTO_FRAME_BYTES_DEFAULT &&
                  LOOP_PARTIAL_BYTES_MAX_DEFAULT <= LOOP_MEM_BYTES_MAX_DEFAULT,
              "partial frames' default bound holds a frame of the default maximum");
static_assert(LOOP_CONN_MAX_DEFAULT <= BROKER_CONN_MAX_LIMIT &&
                  LOOP_CONN_INFLIGHT_MAX_DEFAULT <= LOOP_CONN_INFLIGHT_CAP,
              "loop defaults inside the config's limits");
static_assert(BROKER_FETCH_WAIT_MAX_MS_DEFAULT <= BROKER_FETCH_WAIT_MAX_MS_LIMIT &&
                  BROKER_PRODUCER_IDS_MAX_DEFAULT <= BROKER_PRODUCER_IDS_MAX_LIMIT &&
                  BROKER_RETENTION_CHECK_MS_DEFAULT >= BROKER_RETENTION_CHECK_MS_MIN,
              "broker defaults inside their limits");

/* super_users: a comma-separated list of principals, up to
 * ACL_SUPER_USERS_MAX of them (broker/acl.h); 2 KiB holds a few dozen
 * names of usual length. */
#define BROKER_SUPER_USERS_BYTES 2048

/* ---- The configuration ------------------------------------------------ */

/* Whether clients must log in (SASL/SCRAM) before anything else. */
enum broker_authentication { BROKER_AUTHENTICATION_NONE = 0, BROKER_AUTHENTICATION_REQUIRED };

/* Every field is also a key of the config file and of --set, under the
 * same name; `listen = HOST:PORT` sets listen_host and listen_port at once. */
struct broker_config {
    char listen_host[BROKER_HOST_BYTES];       /* "127.0.0.1"; an IPv6 address without brackets */
    uint16_t listen_port;                      /* 7420; 0 = ephemeral */
    char kafka_listen_host[BROKER_HOST_BYTES]; /* "127.0.0.1"; "off": no Kafka listener */
    uint16_t kafka_listen_port;                /* 9092; 0 = ephemeral */
    char admin_listen_host[BROKER_HOST_BYTES]; /* "127.0.0.1"; "off": no HTTP admin listener */
    uint16_t admin_listen_port;                /* 9644; 0 = ephemeral */
    char data_dir[BROKER_DATA_DIR_BYTES];      /* "./nagare-data" */
    bool auto_create_topics;                   /* true */
    int32_t default_partitions;                /* 1; 1..PROTO_PARTITIONS_MAX */
    /* topic defaults (a topic's config may override); defaults are
     * part_config_default()'s */
    int64_t retention_ms;           /* 7 days; >= 1, or -1 forever */
    int64_t retention_bytes;        /* -1 = no limit; else >= 1 */
    int64_t segment_bytes;          /* 1 GiB; PART_SEGMENT_BYTES_MIN..MAX */
    int64_t segment_ms;             /* 7 days; >= 1 */
    int32_t batch_bytes_max;        /* 8 MiB; BATCH_HEADER_BYTES..BATCH_BYTES_LIMIT */
    uint32_t index_interval_bytes;  /* 4096; PART_INDEX_INTERVAL_MIN..PART_SEGMENT_BYTES_MAX */
    uint32_t retention_check_ms;    /* how often retention runs */
    int64_t scrub_bytes_per_sec;    /* background checksum scrubbing of the logs; 0: off */
    uint32_t fetch_wait_max_ms;     /* cap on a fetch's long-poll wait */
    uint32_t producer_ids_max;      /* idempotent producer states kept per partition */
    int64_t internal_segment_bytes; /* the offsets and share-state logs' segments */
    uint32_t kafka_group_initial_delay_ms; /* Kafka's group.initial.rebalance.delay.ms */
    /* share groups */
    int64_t share_lock_ms;       /* acquisition lock; 1..SHARE_LOCK_MS_LIMIT */
    uint32_t share_delivery_max; /* deliveries before dead-lettering; 1..SHARE_DELIVERY_LIMIT */
    uint32_t
        share_inflight_max; /* records in flight per share partition; 1..SHARE_INFLIGHT_LIMIT */
    /* network */
    uint32_t frame_bytes_max;   /* PROTO_FRAME_BYTES_DEFAULT; PROTO_FRAME_BYTES_MIN..LIMIT */
    uint32_t conn_max;          /* LOOP_CONN_MAX_DEFAULT; 1..BROKER_CONN_MAX_LIMIT */
    uint32_t conn_inflight_max; /* LOOP_CONN_INFLIGHT_MAX_DEFAULT; 1..LOOP_CONN_INFLIGHT_CAP */
    int64_t mem_bytes_max; /* LOOP_MEM_BYTES_MAX_DEFAULT; frame_bytes_max..BROKER_MEM_BYTES_LIMIT */
    int64_t
        partial_bytes_max; /* LOOP_PARTIAL_BYTES_MAX_DEFAULT; 2 x frame_bytes_max..mem_bytes_max */
    uint32_t partial_timeout_ms; /* LOOP_PARTIAL_TIMEOUT_MS_DEFAULT; >= 1 */
    /* TLS (docs/security.md): each listener plaintext (the default) or TLS;
     * a TLS listener needs tls_cert_file and tls_key_file */
    bool listen_tls;                           /* false */
    bool kafka_listen_tls;                     /* false */
    bool admin_listen_tls;                     /* false; HTTPS on the admin listener */
    char tls_cert_file[BROKER_DATA_DIR_BYTES]; /* "": none; PEM certificate (+ chain) */
    char tls_key_file[BROKER_DATA_DIR_BYTES];  /* "": none; PEM private key */
    char tls_ca_file[BROKER_DATA_DIR_BYTES];   /* "": none; PEM CAs for client certificates */
    enum tls_client_auth tls_client_auth;      /* TLS_CLIENT_AUTH_NONE */
    uint32_t tls_handshake_timeout_ms;         /* LOOP_TLS_HANDSHAKE_TIMEOUT_MS_DEFAULT; >= 1 */
    enum log_level log_level;   /* LOG_INFO; "debug", "info", "warn", "error", "off" */
    enum log_format log_format; /* LOG_FORMAT_TEXT; "text", "json" */
    /* a cluster (docs/cluster.md); with broker_id -1 the rest is unused */
    int32_t broker_id; /* BROKER_ID_NONE: a single broker, no etcd; else 0..CLUSTER_BROKER_ID_MAX */
    char etcd_endpoints[BROKER_ETCD_ENDPOINTS_BYTES]; /* "http://127.0.0.1:2379,..."; "" none */
    char advertised_host[BROKER_HOST_BYTES];          /* "": listen_host */
    uint16_t advertised_port;                         /* 0: the port it listens on */
    char cluster_name[CLUSTER_NAME_BYTES];            /* "nagare": keys under /nagare/ */
    int32_t default_replication_factor;               /* 3; 1..CLUSTER_REPLICAS_MAX */
    int32_t min_insync_replicas; /* 2; 1..CLUSTER_REPLICAS_MAX (capped at a topic's factor) */
    uint32_t replica_lag_ms;     /* 10000; a follower behind longer leaves the ISR */
    uint32_t lease_ttl_s;        /* 6; CLUSTER_LEASE_TTL_S_MIN..MAX */
    uint32_t preferred_leader_check_ms; /* 30000 */
    uint32_t redrive_retry_ms;          /* 15000; 0..BROKER_REDRIVE_RETRY_MS_LIMIT */
    /* authorization (broker/acl.h, docs/security.md) */
    bool authorizer;                            /* false: every request allowed */
    char super_users[BROKER_SUPER_USERS_BYTES]; /* "User:a,User:b"; "" none */
    /* authentication (docs/security.md) */
    enum broker_authentication authentication; /* NONE; "none", "required" */
    uint32_t sasl_mechanisms;    /* bit (1 << enum scram_mech) per mechanism offered */
    uint32_t login_failures_max; /* failed logins from one address before it is blocked */
    uint32_t login_block_ms;     /* how long a blocked address stays blocked */
    char inter_broker_user[BROKER_USER_BYTES];              /* "": followers do not log in */
    char inter_broker_password_file[BROKER_DATA_DIR_BYTES]; /* its password, first line */
};

/* Scrubbing reads every log again at this pace: a 1 TiB log in about
 * 18 hours, with little of a disk's bandwidth. */
#define BROKER_SCRUB_BYTES_PER_SEC_DEFAULT (16ll << 20)
/* The internal logs' segments (they are compacted two segments at a time). */
#define BROKER_INTERNAL_SEGMENT_BYTES_DEFAULT (64ll << 20)

/* Largest request and answer buffer budget: far above any machine this
 * runs on, so only a typo is refused. */
#define BROKER_MEM_BYTES_LIMIT (1ll << 40)

/* What broker_config_parse_args() tells main to do. */
enum broker_args_result {
    BROKER_ARGS_RUN = 0,        /* start the broker with the config */
    BROKER_ARGS_EXIT_OK = 1,    /* --help or --version printed; exit 0 */
    BROKER_ARGS_EXIT_USAGE = 2, /* bad command line or config; print err, exit 2 */
};

/* Fills c with the defaults. */
void broker_config_default(struct broker_config *c);

/* Applies one `key = value` setting (the keys of the config file; see
 * docs/configuration.md). Numbers are decimal with optional unit suffixes:
 * sizes k/kib, m/mib, g/gib (powers of 1024); durations ms, s, m, h, d (no
 * suffix: milliseconds). value is used as given (no trimming). Returns 0, or
 * -NG_EBADARG with a message in err[0..err_cap) naming the key, the value
 * and what is allowed; c is then unchanged. err may be NULL if err_cap is 0. */
MUST_USE int broker_config_set(struct broker_config *c, const char *key, const char *value,
                               char *err, size_t err_cap);

/* Checks the relations between fields that no single setting can: a Produce
 * request with one batch of batch_bytes_max must fit frame_bytes_max;
 * partial_bytes_max must hold a frame of frame_bytes_max (twice it, for the
 * pool's rounding) and fit in mem_bytes_max; a broker_id needs
 * etcd_endpoints and etcd_endpoints a broker_id; a broker listening on a
 * wildcard address (0.0.0.0, ::) in a cluster needs an advertised_host; a
 * TLS listener (admin_listen_tls too) needs tls_cert_file and
 * tls_key_file, and tls_client_auth other than none a tls_ca_file.
 * broker_config_parse_args() calls it on the final config; call it after
 * building a config with _set / _load_file. Returns 0 or -NG_EBADARG with a
 * message in err. */
MUST_USE int broker_config_check(const struct broker_config *c, char *err, size_t err_cap);

/* Reads a config file: `key = value` lines; a line whose first non-blank
 * character is '#' is a comment; blank lines are skipped. Blanks around the
 * key and the value are dropped; the value is the rest of the line ('#'
 * inside it is part of it). A key given twice: the last one wins. Lines may
 * be at most BROKER_CONFIG_LINE_BYTES_MAX bytes. An unknown key, a bad value,
 * a line without '=', an overlong line or a NUL byte is an error naming the
 * file and the line. Returns 0; -errno when the file cannot be opened or
 * read; or -NG_EBADARG. On any error err holds a message and c is unchanged. */
MUST_USE int broker_config_load_file(struct broker_config *c, const char *path, char *err,
                                     size_t err_cap);

/* Parses nagared's command line into c: first the defaults, then the
 * --config file, then the other flags in the order given (so flags win over
 * the file wherever they appear). Flags, each also as --flag=VALUE:
 *   --listen HOST:PORT   ([v6addr]:PORT for IPv6; :PORT keeps the host)
 *   --data-dir DIR       --config FILE (at most once)
 *   --broker-id N        --etcd URL[,URL...]
 *   --advertised HOST:PORT (as --listen)
 *   --set KEY=VALUE      (repeatable; any config key)
 *   -h, --help           --version
 * --help and --version print to stdout and win over everything else except
 * an unknown flag. Returns BROKER_ARGS_RUN with c filled (and checked with
 * broker_config_check()), BROKER_ARGS_EXIT_OK, or BROKER_ARGS_EXIT_USAGE
 * with a message in err (not newline-terminated). c is written only for
 * BROKER_ARGS_RUN. argv[0] is the program name and is skipped. */
MUST_USE int broker_config_parse_args(struct broker_config *c, int argc, char **argv, char *err,
                                      size_t err_cap);

/* Writes the usage text (every flag, and a pointer to
 * docs/configuration.md) to f. */
void broker_config_usage(FILE *f);

/* Writes c to f as a config file (every key, one `key = value` line each;
 * a text key left empty, as the cluster's are on a single broker, is left
 * out) that broker_config_load_file() reads back to the same struct; for
 * logging the effective config at start-up. */
void broker_config_print(FILE *f, const struct broker_config *c);

/* Whether c has a TLS listener (listen_tls or, with a Kafka listener,
 * kafka_listen_tls). */
bool broker_config_tls(const struct broker_config *c);

/* The server-side TLS settings of c (pointers into c). */
void broker_config_tls_server(const struct broker_config *c, struct tls_server_cfg *out);

/* Whether c has a Kafka listener (kafka_listen not off). */
bool broker_config_kafka(const struct broker_config *c);

/* Whether c has an HTTP admin listener (admin_listen not off). */
bool broker_config_admin(const struct broker_config *c);

/* Whether c makes the broker one of a cluster (broker_id set). */
bool broker_config_clustered(const struct broker_config *c);

/* The host Kafka's clients are told this broker is at: advertised_host,
 * else kafka_listen_host. */
const char *broker_config_kafka_host(const struct broker_config *c);

/* The cluster session's config of a clustered c (cluster/session.h): its
 * broker id, etcd endpoints, cluster name, lease and check interval, and
 * the address it advertises: advertised_host (else listen_host) and
 * advertised_port (else bound_port, the port it listens on); with a Kafka
 * listener, broker_config_kafka_host() and kafka_port, the Kafka
 * listener's bound port. Precondition: broker_config_clustered(c) and c
 * passed broker_config_check(). */
void broker_config_cluster(const struct broker_config *c, uint16_t bound_port, uint16_t kafka_port,
                           struct cluster_session_config *out);

/* Fills out with part_config_default() overlaid by c's topic defaults
 * (segment and retention settings, index interval, batch maximum): the
 * config of a partition whose topic overrides nothing. */
void broker_config_part(const struct broker_config *c, struct part_config *out);

/* The version string --version prints, e.g. "0.1.0". */
const char *broker_config_version(void);

#endif
