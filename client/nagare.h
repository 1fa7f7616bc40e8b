/*
 * nagare.h — libnagare, the C client of the nagare broker.
 *
 * Three opaque handles: a producer, a consumer and an admin client. Each is
 * single-threaded: all calls on one handle come from one thread at a time
 * (different handles may be used from different threads). A handle does its
 * network I/O inside its own calls (send, poll, flush, admin calls); there
 * are no background threads, so delivery reports and records arrive only
 * through poll/flush, as with librdkafka's poll.
 *
 * Errors: every function returning int returns 0 (or a count) on success and
 * a negative code on failure: -errno for system errors, or -NAGARE_E* (the
 * broker's own codes, the same numbers the wire carries: docs/protocol.md).
 * nagare_strerror() names any of them.
 *
 * Ownership: strings and buffers passed in are copied before the call
 * returns unless said otherwise. Pointers handed out are owned by the
 * library and valid for the time stated on each function.
 */
#ifndef NAGARE_H
#define NAGARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NAGARE_MUST_USE __attribute__((warn_unused_result))

/* ---- errors (values equal base/err.h's NG_E*, which the wire carries) ---- */

enum {
    NAGARE_ETRUNCATED = 4096,
    NAGARE_EBADVARINT = 4097, /* the codes 4097..4105: bad bytes in a batch or frame */
    NAGARE_ENOSPACE = 4098,
    NAGARE_EBADLEN = 4099,
    NAGARE_EBADCOUNT = 4100,
    NAGARE_ECHECKSUM = 4101,
    NAGARE_EBADVERSION = 4102, /* the broker does not speak a request's version */
    NAGARE_EBADCODEC = 4103,
    NAGARE_EDECOMPRESS = 4104,
    NAGARE_EBADDELTA = 4105,
    NAGARE_ETOOBIG = 4106,
    NAGARE_EBADARG = 4107,
    NAGARE_EOFFSET_RANGE = 4120,
    NAGARE_EFAILED = 4121,
    NAGARE_ECORRUPT = 4122,
    NAGARE_EBUSY = 4123, /* a bounded queue is full: poll, then retry */
    NAGARE_ECLOSED = 4124,
    NAGARE_ENOTFOUND = 4125,
    NAGARE_EUNKNOWN_API = 4140,
    NAGARE_EUNKNOWN_TOPIC = 4141,
    NAGARE_ETOPIC_EXISTS = 4142,
    NAGARE_EBADNAME = 4143,
    NAGARE_EOUT_OF_ORDER = 4145,
    NAGARE_EPRODUCER_FENCED = 4146,
    NAGARE_ETIMEOUT = 4147,
    NAGARE_ENOT_COORDINATOR = 4148,    /* the broker asked does not coordinate the group */
    NAGARE_EREBALANCE = 4149,          /* a group partition is no longer this member's */
    NAGARE_EILLEGAL_GENERATION = 4150, /* a commit at a group generation that moved on */
    NAGARE_EUNKNOWN_MEMBER = 4151,     /* the group forgot the member (it joins again) */
    NAGARE_EGROUP_NOT_EMPTY = 4152,    /* an admin change that needs a group without members */
    NAGARE_EDISCONNECTED = 4153,
    NAGARE_EPROTO = 4154,
    NAGARE_ESYSTEM = 4155,        /* a system call failed on the broker (its log says which) */
    NAGARE_EDISK_FULL = 4157,     /* the broker's disk is full: producers retry until
                                     the delivery timeout */
    NAGARE_ENOT_ACQUIRED = 4156,  /* a share ack for a record this consumer does not hold */
    NAGARE_ETRANSACTIONAL = 4158, /* a transactional or control batch: not supported */
    /* a cluster (docs/cluster.md) */
    NAGARE_ENOT_LEADER = 4159,          /* the broker asked does not lead the partition */
    NAGARE_ENOT_ENOUGH_REPLICAS = 4160, /* acks=all refused: too few in-sync replicas */
    NAGARE_EFENCED_LEADER_EPOCH = 4161, /* a stale leader epoch */
    NAGARE_EUNKNOWN_LEADER_EPOCH = 4162,
    NAGARE_ENOT_CONTROLLER = 4163,
    NAGARE_ECONFLICT = 4164,              /* the cluster state changed meanwhile; retry */
    NAGARE_ECLUSTER_UNAVAILABLE = 4165,   /* the brokers cannot reach etcd; retry later */
    NAGARE_ENOT_CLUSTERED = 4166,         /* the broker runs alone; the call needs a cluster */
    NAGARE_ENO_REPLICA = 4167,            /* the share coordinator holds no replica of the
                                           partition: it cannot hand out its records */
    NAGARE_EINCONSISTENT_PROTOCOL = 4170, /* Kafka's clients hold the group: one group,
                                             one protocol */
    NAGARE_EAUTH = 4172,                  /* login failed: unknown user or wrong password */
    NAGARE_EAUTH_REQUIRED = 4173,         /* the broker requires a login (struct nagare_login) */
    NAGARE_EAUTH_THROTTLED = 4174,        /* too many failed logins from this address: later */
    NAGARE_EMECHANISM = 4175,             /* the broker does not offer that SASL mechanism */
    NAGARE_EUNAUTHORIZED = 4180,          /* the broker's ACLs do not allow this principal the call
                                    (docs/security.md) */
    NAGARE_ETLS = 4185, /* the TLS handshake failed: the broker's certificate is not trusted
                           (tls_ca_file) or not for the host dialled, or TLS was refused */
};

/* A short sentence naming rc (0, -errno or -NAGARE_E*). Static; never NULL. */
const char *nagare_strerror(int rc);

/* The library's version, e.g. "0.1.0". */
const char *nagare_version(void);

/* ---- records ---- */

#define NAGARE_PARTITION_ANY (-1)

/* A record header. key is not NUL-terminated; value_len -1 is null. */
struct nagare_header {
    const char *key;
    size_t key_len;
    const void *value;
    ssize_t value_len;
};

/* ---- producer ---- */

typedef struct nagare_producer nagare_producer;

enum nagare_compression { NAGARE_COMPRESSION_NONE = 0, NAGARE_COMPRESSION_ZSTD = 1 };

/* One record's outcome, handed to the delivery callback from poll/flush. */
struct nagare_delivery {
    const char *topic; /* valid during the callback */
    int32_t partition; /* as sent (NAGARE_PARTITION_ANY when it never got one) */
    int64_t offset;    /* the record's offset, or -1 with err, with acks=0, and for a
                          retried record the broker knew was written earlier
                          without knowing where (docs/protocol.md, Produce) */
    int err;           /* 0, or why the record was not delivered (negative) */
    void *opaque;      /* the record's nagare_record.opaque */
};

/* Runs from nagare_producer_poll() / flush() / destroy() on the producer's
 * thread. It may call nagare_send(), not poll, flush or destroy. */
typedef void (*nagare_delivery_fn)(const struct nagare_delivery *d, void *opaque);

/* The broker refused a batch of a partition with an error the producer
 * retries (a full disk, -NAGARE_EDISK_FULL, say). Informational, as
 * librdkafka's error callback: the records are still retried until their
 * delivery timeout, and each still gets its delivery report. */
struct nagare_producer_error {
    const char *topic; /* valid during the callback */
    int32_t partition;
    int err; /* negative */
};

/* Runs from nagare_producer_poll() / flush() / destroy() on the
 * producer's thread, before the delivery callbacks of the same call, once
 * when a partition first gets an error (again when the error changes, or
 * after a batch of the partition was delivered). Same rules as
 * nagare_delivery_fn. */
typedef void (*nagare_producer_error_fn)(const struct nagare_producer_error *e, void *opaque);

/* Who a client logs in as (SASL SCRAM, docs/security.md): each connection
 * logs in right after its ApiVersions handshake, before any request. user
 * NULL: no login. The strings are copied when the client is created (the
 * password is kept, wiped at destroy, to log in again after a reconnect).
 * mechanism: "SCRAM-SHA-256" (NULL: this) or "SCRAM-SHA-512". A failed
 * login fails the call that connects with -NAGARE_EAUTH (or
 * -NAGARE_EAUTH_THROTTLED, -NAGARE_EMECHANISM). */
struct nagare_login {
    const char *user;
    const char *password;
    const char *mechanism;
};

/* TLS to the brokers (docs/security.md). Off by default; when on, the
 * broker's certificate is verified against ca_file (or the system's CAs)
 * and must name the host dialled (or server_name), unless no_verify. The
 * files are read when the producer, consumer or admin handle is created. */
struct nagare_tls {
    bool enabled;            /* false: plaintext (default) */
    const char *ca_file;     /* PEM CAs the broker's certificate must chain to; NULL: system's */
    const char *cert_file;   /* PEM client certificate (mutual TLS); NULL: none */
    const char *key_file;    /* its private key; NULL: in cert_file */
    const char *server_name; /* name the certificate must carry; NULL: each host dialled */
    bool no_verify;          /* accept any certificate: tests only, never by default */
};

struct nagare_producer_config {
    const char *bootstrap;               /* "host:port" (default "127.0.0.1:7420"), or a
                                            list "host:port,host:port" tried in turn; copied */
    int acks;                            /* 0, 1, or -1 = all (default -1) */
    enum nagare_compression compression; /* default zstd, at zstd_level */
    int zstd_level;                      /* default 3 */
    size_t batch_bytes;                  /* a partition's batch goes out at this size (64 KiB);
                                       while the partition cannot send, it grows by as
                                       much at a time, up to 16 times (1 MiB) */
    uint32_t linger_ms;                  /* ...or this long after its first record (5 ms) */
    bool idempotent;                     /* default true: retries never duplicate */
    uint32_t delivery_timeout_ms;        /* give up on a record after this (120 s) */
    uint32_t request_timeout_ms;         /* a request unanswered this long is retried (30 s) */
    uint32_t stall_ms;                   /* a produce unanswered this long has another broker
                                       asked who leads; if another leader, the request
                                       moves there (2 s; 0: never; see poll) */
    uint32_t retry_backoff_ms;           /* first backoff, doubling up to 1 s (100 ms) */
    uint32_t inflight_max;               /* produce requests in flight per connection (5) */
    size_t buffer_bytes_max;             /* records held, sent or not (64 MiB): past it,
                                       nagare_send() returns -NAGARE_EBUSY */
    nagare_delivery_fn on_delivery;      /* may be NULL */
    void *opaque;                        /* passed to on_delivery and on_error */
    nagare_producer_error_fn on_error;   /* may be NULL (default) */
    struct nagare_login login;           /* who to log in as (default: nobody) */
    struct nagare_tls tls;               /* default off */
};

void nagare_producer_config_default(struct nagare_producer_config *c);

/* Creates a producer and connects to the bootstrap broker (resolving,
 * connecting, ApiVersions, InitProducerId when idempotent). In a cluster
 * (docs/cluster.md) each partition's batches go to its leader, named by
 * the bootstrap broker's Metadata; a connection to each leader is opened
 * when first needed. Metadata stays on the bootstrap connection. Fails within
 * request_timeout_ms when the broker cannot be reached (plus the time the
 * system resolver takes for a host name; numeric addresses do not wait).
 * Returns 0 with *out, -NAGARE_EBADARG for a bad config or address,
 * -ECONNREFUSED (nothing listens there), -NAGARE_ETIMEOUT (no answer in
 * time), -NAGARE_ENOTFOUND (the host name does not resolve),
 * -NAGARE_EDISCONNECTED, -NAGARE_EPROTO (not a nagare broker), -ENOMEM.
 * Any thread; the producer then belongs to it. With acks=0 nothing is
 * acknowledged, so a batch written to the socket counts as delivered
 * (offset -1) and is never retried. */
NAGARE_MUST_USE int nagare_producer_new(const struct nagare_producer_config *c,
                                        nagare_producer **out);

/* A record to send. key_len/value_len -1: null (the pointer may be NULL).
 * An empty key (key_len 0) is a key: it is hashed like any other. */
struct nagare_record {
    const char *topic; /* NUL-terminated */
    int32_t partition; /* or NAGARE_PARTITION_ANY */
    const void *key;
    ssize_t key_len;
    const void *value;
    ssize_t value_len;
    const struct nagare_header *headers;
    size_t header_count;
    int64_t timestamp_ms; /* 0: now */
    void *opaque;         /* returned in its delivery report */
};

/* Adds a copy of r to its partition's open batch; never waits for the
 * network. With NAGARE_PARTITION_ANY, a keyed record goes to
 * XXH3-64(key) mod partitions, a keyless one to the partition the current
 * batch sticks to. Full batches are sent without blocking. A record for a
 * topic whose partition count is not known yet is held (copied) until the
 * broker's answer; if the topic does not exist, the broker gets the chance
 * to create it (auto_create_topics), else the record is reported failed
 * with -NAGARE_EUNKNOWN_TOPIC. Returns 0, -NAGARE_EBUSY (buffer_bytes_max
 * reached: poll and retry), -NAGARE_EUNKNOWN_TOPIC (the broker said within
 * the last second that it does not know the topic and will not create it,
 * or an explicit partition past its count), -NAGARE_ETOOBIG (larger than a
 * batch of the topic can be), -NAGARE_EBADNAME (invalid topic name),
 * -NAGARE_EBADARG, or the error that stopped the producer (see poll). */
NAGARE_MUST_USE int nagare_send(nagare_producer *p, const struct nagare_record *r);

/* Does pending I/O (sends batches whose linger expired, reads answers,
 * reconnects, retries) until a report is ready or timeout_ms passed (0:
 * without waiting, -1: until something is delivered, returning at once
 * when nothing is outstanding), and runs delivery callbacks. Returns the
 * number of reports delivered, or a negative error that stopped the
 * producer for good: -NAGARE_EPRODUCER_FENCED (a newer producer owns its
 * id), -NAGARE_EBADARG when called from a delivery callback. Errors of one
 * record or partition (the broker's -NAGARE_EFAILED: a log that refuses
 * writes until the broker restarts, -NAGARE_ETIMEOUT: the delivery timeout,
 * ...) go to the record's report, not here.
 *
 * Retries: the connection failing, a request timing out, -NAGARE_EBUSY,
 * -NAGARE_ECLOSED, -NAGARE_ETIMEOUT, -NAGARE_EDISK_FULL,
 * -NAGARE_EUNKNOWN_TOPIC (metadata refreshed first) and, in a cluster,
 * -NAGARE_ENOT_LEADER, -NAGARE_EFENCED_LEADER_EPOCH,
 * -NAGARE_EUNKNOWN_LEADER_EPOCH and -NAGARE_ENOT_ENOUGH_REPLICAS (the
 * partition's leader is asked for again, at most once per
 * retry_backoff_ms, and the batch goes to it) are retried with
 * backoff (retry_backoff_ms doubling up to 1 s), in order per partition,
 * until delivery_timeout_ms after the record was added; idempotence makes
 * a retried batch that the broker already wrote come back with its first
 * offset, never twice. A record out of time is reported with the last
 * error the broker gave its partition (-NAGARE_EDISK_FULL...), or
 * -NAGARE_ETIMEOUT when it gave none; on_error hears of such an error as
 * soon as it comes. Other errors fail the batch's records at once.
 *
 * A leader paused or cut off keeps its connection open and answers
 * nothing, while the cluster elects another leader once its lease runs
 * out. So a produce request unanswered for stall_ms has the producer ask
 * Metadata of another broker than the one it waits on, and again every
 * stall_ms while the wait lasts; when an answer names another leader,
 * at a leader epoch not older than known, for a partition whose batches
 * wait there, the connection is given up as if lost (its batches are retried in order at
 * the new leader: with idempotence the new leader answers a copy it
 * already has with its offset; without it, a batch the old leader had
 * passed on may be written twice, as after any lost connection). A leader
 * that is only slow is never left: only another leader named moves the
 * batches. Each ask goes to a connection with nothing waiting on it when
 * there is one (a broker answers a connection's requests in order). */
int nagare_producer_poll(nagare_producer *p, int timeout_ms);

/* Sends every buffered record (ignoring linger) and waits until each has
 * its report, at most timeout_ms (-1: no limit). Returns 0, or
 * -NAGARE_ETIMEOUT with records still outstanding, or -NAGARE_EBADARG from
 * a delivery callback. Reports say which records failed. */
NAGARE_MUST_USE int nagare_producer_flush(nagare_producer *p, int timeout_ms);

/* Records buffered or in flight. */
size_t nagare_producer_outstanding(const nagare_producer *p);

/* Closes the producer; records not yet delivered are reported failed with
 * -NAGARE_ECLOSED first. NULL is allowed. */
void nagare_producer_destroy(nagare_producer *p);

/* ---- consumer: assigned partitions, or a pub/sub consumer group ---- */

typedef struct nagare_consumer nagare_consumer;

/* A partition of a topic and an offset, as the group calls report them.
 * topic points into the library (valid as each function says). */
struct nagare_topic_partition {
    const char *topic;
    int32_t partition;
    int64_t offset; /* meaning per use; -1 when there is none */
    int err;        /* 0, or this partition's error (negative) */
};

/* Runs from nagare_consumer_poll() (and nagare_consumer_unsubscribe(), for
 * everything the consumer held) when the group's assignment changed, before
 * any record of a newly assigned partition is returned and after records of
 * revoked ones were dropped. revoked: partitions no longer this member's,
 * with the position reached (offset of the next record poll would have
 * returned); assigned: partitions now this member's, with the offset
 * consumption starts at (the committed offset, or the reset policy's).
 * Arrays and topic strings are valid during the call. It may call
 * nagare_consumer_seek(), seek_time(), position() and assignment() (to
 * start an assigned partition elsewhere), not poll, commit, subscribe,
 * unsubscribe or destroy (those return -NAGARE_EBADARG from it). */
typedef void (*nagare_rebalance_fn)(nagare_consumer *c,
                                    const struct nagare_topic_partition *revoked,
                                    size_t revoked_count,
                                    const struct nagare_topic_partition *assigned,
                                    size_t assigned_count, void *opaque);

/* The outcome of an asynchronous commit (nagare_consumer_commit(c, true),
 * and auto-commit), from a later poll, commit, unsubscribe or destroy: err
 * is 0 when every partition was committed, else the first partition's
 * error or the request's; offsets[i].err per partition (offset: what was
 * sent). Same restrictions as the rebalance callback. */
typedef void (*nagare_commit_fn)(nagare_consumer *c, int err,
                                 const struct nagare_topic_partition *offsets, size_t count,
                                 void *opaque);

#define NAGARE_OFFSET_BEGINNING (-2)
#define NAGARE_OFFSET_END (-1)

enum nagare_offset_reset {
    NAGARE_RESET_EARLIEST = 0, /* out of range: start at the log start */
    NAGARE_RESET_LATEST,       /* ... at the end */
    NAGARE_RESET_ERROR,        /* ... report -NAGARE_EOFFSET_RANGE from poll */
};

struct nagare_consumer_config {
    const char *bootstrap;              /* default "127.0.0.1:7420", or a list
                                           "host:port,host:port"; copied */
    enum nagare_offset_reset reset;     /* default earliest */
    uint32_t fetch_wait_max_ms;         /* long poll (500 ms) */
    uint32_t fetch_bytes_min;           /* (1) */
    uint32_t fetch_bytes_max;           /* per fetch request (16 MiB) */
    uint32_t partition_fetch_bytes_max; /* per partition per fetch (1 MiB) */
    uint32_t fetches_inflight;          /* fetch requests in flight (2; 1..64): a
                                           replay shares its partitions out over
                                           them, and each partition's next fetch
                                           goes out as its answer comes, so the
                                           broker prepares answers while records
                                           are read; at the log end one fetch
                                           long-polls for every partition */
    uint32_t request_timeout_ms;        /* (30 s) */
    uint32_t stall_ms;                  /* a fetch (or a group request) unanswered this
                                           long past its long poll has another broker
                                           asked who leads (coordinates); if another,
                                           the requests go there (2 s; 0: never; see
                                           poll) */
    /* consumer groups (nagare_consumer_subscribe) */
    uint32_t session_timeout_ms;      /* the broker drops a member silent this long
                                           (10 s; 1000..300000): poll at least this often */
    bool auto_commit;                 /* commit positions from poll (true) */
    uint32_t auto_commit_interval_ms; /* ...this often (5 s) */
    nagare_rebalance_fn on_rebalance; /* may be NULL */
    nagare_commit_fn on_commit;       /* may be NULL */
    void *opaque;                     /* passed to both */
    struct nagare_login login;        /* who to log in as (default: nobody) */
    struct nagare_tls tls;            /* default off */
};

void nagare_consumer_config_default(struct nagare_consumer_config *c);

/* Creates a consumer connected to the bootstrap broker. Errors as for
 * nagare_producer_new(). In a cluster each partition is fetched from its
 * leader (a connection to each, opened when first needed); one that
 * answers -NAGARE_ENOT_LEADER or a stale leader epoch, or whose connection
 * is lost, is read on from its position at the leader the bootstrap
 * broker names next. Group requests stay on the bootstrap connection. Memory: fetches in flight and answers buffered
 * number at most fetches_inflight + 1 together, each answer up to
 * fetch_bytes_max plus one batch (in buffers reused from one answer to
 * the next, their sizes rounded up to a power of two). Any thread; it then
 * belongs to it. */
NAGARE_MUST_USE int nagare_consumer_new(const struct nagare_consumer_config *c,
                                        nagare_consumer **out);

/* Adds a partition to read, from offset (or NAGARE_OFFSET_BEGINNING / END).
 * Asks the broker (Metadata, and ListOffsets at the partition's leader for
 * BEGINNING / END), waiting at most request_timeout_ms for each. Returns 0,
 * -NAGARE_EUNKNOWN_TOPIC (no such topic or partition), -NAGARE_EBADARG
 * (bad arguments, already assigned, or the consumer is subscribed to a
 * group), -NAGARE_EBADNAME, -NAGARE_ENOT_LEADER (BEGINNING / END of a
 * partition that had no leader for all of request_timeout_ms: while a
 * leader change is under way it looks again), or the request's error. */
NAGARE_MUST_USE int nagare_consumer_assign(nagare_consumer *c, const char *topic, int32_t partition,
                                           int64_t offset);

/* Moves an assigned partition to offset (or BEGINNING / END, looked up
 * with ListOffsets at its leader); records fetched before are dropped.
 * Returns 0, -NAGARE_ENOTFOUND (not assigned), -NAGARE_EBADARG, or the
 * lookup's error (-NAGARE_ENOT_LEADER: no leader, as for assign()). */
NAGARE_MUST_USE int nagare_consumer_seek(nagare_consumer *c, const char *topic, int32_t partition,
                                         int64_t offset);

/* Moves an assigned partition to its first record with timestamp >= ts_ms
 * (the end when there is none). Errors as nagare_consumer_seek(). */
NAGARE_MUST_USE int nagare_consumer_seek_time(nagare_consumer *c, const char *topic,
                                              int32_t partition, int64_t ts_ms);

/* A record read. Pointers are valid until the next poll, seek or destroy
 * (they point into the fetch answer as it was received, read in place). */
struct nagare_message {
    const char *topic;
    int32_t partition;
    int64_t offset;
    int64_t timestamp_ms;
    const void *key;
    ssize_t key_len; /* -1: null */
    const void *value;
    ssize_t value_len; /* -1: null */
    size_t header_count;
    int32_t delivery_count; /* share consumers: deliveries of this record so far
                               (1 the first time); 0 from nagare_consumer */
};

/* Header i < m->header_count of a message, valid as long as m. */
void nagare_message_header(const struct nagare_message *m, size_t i, struct nagare_header *out);

/* Returns the next record: 1 with *out, 0 when none came within timeout_ms
 * (0: do not wait, -1: no limit), or a negative error, each returned once:
 * -NAGARE_EOFFSET_RANGE (under NAGARE_RESET_ERROR), -NAGARE_EUNKNOWN_TOPIC
 * (the topic went away), -NAGARE_ECORRUPT (bad bytes from the broker: the
 * consumer checks every batch's CRC-32C checksum and structure as it reads
 * it, end to end; or the broker's log is damaged there): the partition
 * concerned then pauses until a seek, at the first record it could not
 * return (nagare_consumer_assignment() shows its err and offset;
 * nagare_consumer_corrupt_end() where a damaged range ends);
 * -NAGARE_EDISCONNECTED each
 * time the broker has been unreachable for request_timeout_ms (the
 * consumer keeps reconnecting); -ENOMEM. Records before an error are
 * returned first. A fetch unanswered for fetch_wait_max_ms plus stall_ms
 * has another broker asked who leads, as the producer does (see
 * nagare_producer_poll()): a newer leader named for a partition whose
 * fetch waits there gives that connection up, and the partition is read
 * on at the new leader from where it was. The group's coordinator is
 * watched the same way, its synchronous calls too (a commit, a join): a
 * request it keeps that long while another broker names another leader
 * of __offsets/0 fails with -NAGARE_EDISCONNECTED, and the member joins
 * again at the new coordinator (docs/cluster.md, section 6).
 * Subscribed to a group, it also heartbeats, acts on assignment changes
 * (running the rebalance callback first), auto-commits and delivers async
 * commit reports, and joins again when the broker forgot the member;
 * a join the broker refuses is returned (-NAGARE_ETOOBIG: its group
 * limits) and tried again after a backoff. -NAGARE_EBADARG from a
 * callback. */
int nagare_consumer_poll(nagare_consumer *c, int timeout_ms, const struct nagare_message **out);

/* The offset of the next record poll will return for the partition.
 * Returns 0, or -NAGARE_ENOTFOUND when it is not assigned. */
NAGARE_MUST_USE int nagare_consumer_position(nagare_consumer *c, const char *topic,
                                             int32_t partition, int64_t *offset_out);

/* After poll returned -NAGARE_ECORRUPT for a partition whose log the
 * broker found damaged there: the first offset past the damaged range
 * (the records in it are lost), where nagare_consumer_seek() resumes
 * reading. Returns 0, or -NAGARE_ENOTFOUND when the partition is not
 * assigned or is not paused on a range the broker reported (bad bytes the
 * consumer found itself, or a broker that speaks Fetch v0 only). */
NAGARE_MUST_USE int nagare_consumer_corrupt_end(nagare_consumer *c, const char *topic,
                                                int32_t partition, int64_t *offset_out);

/* The partitions the consumer reads now (assigned, or its group's share),
 * with their positions (offset). *out is valid until the next call on c.
 * Returns 0, -ENOMEM. */
NAGARE_MUST_USE int nagare_consumer_assignment(nagare_consumer *c,
                                               const struct nagare_topic_partition **out,
                                               size_t *count_out);

/*
 * Consumer groups (pub/sub; docs/protocol.md, "Consumer groups"). Every
 * group sees every record; within a group each partition is read by one
 * member at a time, the broker assigning them. Delivery is at least once:
 * a partition that changes hands is read by its new owner from the
 * group's committed offset, so records consumed after the last commit are
 * read again.
 *
 * Heartbeats, commits and assignment changes are driven from
 * nagare_consumer_poll(): call it at least every session_timeout_ms, or
 * the broker drops the member (the consumer then joins again, and its
 * partitions are read again from their committed offsets). The broker
 * refuses a commit of a partition the member no longer holds, and a
 * commit at a generation it has not yet heartbeated at; so the offsets of
 * a partition revoked by a rebalance cannot be committed once the member
 * learns of the revocation: with auto-commit, its records since the last
 * auto-commit go to the next owner again.
 */

/* Joins `group` (JoinGroup; the member id and generation come from the
 * broker) subscribing to topics (1..64 valid names, copied; a topic that
 * does not exist yet is assigned once it is created). Partitions assigned
 * before are dropped: the group's assignment replaces them, arriving
 * through later polls (rebalance callback). Calling it again replaces the
 * subscription: the consumer commits (with auto-commit) and leaves first.
 * Waits at most request_timeout_ms. Returns 0, -NAGARE_EBADNAME (group id
 * not 1..249 printable ASCII bytes, or a bad topic name), -NAGARE_EBADARG
 * (no topics, more than 64, session_timeout_ms out of range, or called from
 * a callback), -NAGARE_ETOOBIG (the broker's group limits), -ENOMEM, or the
 * request's error (-NAGARE_ETIMEOUT, -NAGARE_EDISCONNECTED...). */
NAGARE_MUST_USE int nagare_consumer_subscribe(nagare_consumer *c, const char *group,
                                              const char *const *topics, size_t topic_count);

/* Leaves the group: commits the positions (with auto-commit), runs the
 * rebalance callback with every partition revoked, sends LeaveGroup (the
 * broker reassigns the partitions at once), and drops the partitions.
 * Waits at most request_timeout_ms for each request. Returns 0 (also when
 * not subscribed), -NAGARE_EBADARG from a callback, or the first error of
 * the commit or the leave (the consumer has left its side of the group
 * either way; without a LeaveGroup the broker drops the member after its
 * session timeout). */
NAGARE_MUST_USE int nagare_consumer_unsubscribe(nagare_consumer *c);

/* Commits the position of every partition the member holds whose
 * position moved since its last commit. Sync (async false): waits for the
 * broker's durable answer (at most request_timeout_ms plus a fetch's long
 * poll), heartbeating and retrying once when the group's generation moved;
 * returns 0 (nothing to commit counts), -NAGARE_EBADARG (not subscribed,
 * or from a callback), -NAGARE_EREBALANCE (a partition was revoked
 * meanwhile: the others are committed), -NAGARE_EUNKNOWN_MEMBER (the member
 * was dropped: it joins again from poll), or the request's error. Async:
 * sends the commit and returns 0 at once (or -NAGARE_EBADARG, -ENOMEM, or
 * -NAGARE_EBUSY when the connection cannot take it now); the outcome goes
 * to on_commit from a later call. */
NAGARE_MUST_USE int nagare_consumer_commit(nagare_consumer *c, bool async);

/* Closes the consumer. When subscribed it first does what
 * nagare_consumer_unsubscribe() does, rebalance callback excepted
 * (outstanding async commit reports are delivered). NULL is allowed. */
void nagare_consumer_destroy(nagare_consumer *c);

/* ---- share consumer (queue semantics) ---- */

/*
 * A member of a share group (docs/protocol.md, "Share groups"): competing
 * consumers read the same partitions, the broker handing each record to
 * one of them at a time under a lock (the broker's share_lock_ms, 30 s by
 * default). Each record polled is acknowledged: accepted (done, never
 * delivered again), released (delivered again, its delivery count raised)
 * or rejected (copied to the dead-letter topic <topic>.dlq). A record not
 * acknowledged before its lock expires is delivered again; past the
 * broker's share_delivery_max deliveries it is dead-lettered. Delivery is
 * at least once.
 *
 * Acknowledgements are batched: nagare_share_ack() records one, and
 * nagare_share_poll() / nagare_share_commit() send what was recorded
 * (ShareAck, coalesced into ranges), the broker answering once they are
 * durable; each record's outcome goes to the optional on_ack callback.
 * Records a fetch acquired that poll has not returned yet are the
 * consumer's to release: on destroy they are released (not accepted: the
 * application never saw them). Records polled and not acknowledged when
 * the consumer is destroyed get close_ack: accepted by default (the
 * application had them: like Kafka's implicit acknowledgement, "polled
 * means processed"), or released, or left to their locks.
 */

typedef struct nagare_share_consumer nagare_share_consumer;

enum nagare_ack_type {
    NAGARE_ACK_ACCEPT = 0,  /* processed: never delivered again */
    NAGARE_ACK_RELEASE = 1, /* give it back: delivered again, count raised */
    NAGARE_ACK_REJECT = 2,  /* unprocessable: to the dead-letter topic */
};
/* close_ack: leave records polled and not acknowledged to their locks. */
#define NAGARE_ACK_NONE (-1)

/* One record's acknowledgement, reported once the broker answered. */
struct nagare_ack_report {
    const char *topic; /* valid during the callback */
    int32_t partition;
    int64_t offset;
    int type; /* enum nagare_ack_type */
    int err;  /* 0: durable on the broker. -NAGARE_ENOT_ACQUIRED: not
                            held any more (its lock expired: it may be someone
                            else's now). -NAGARE_EDISCONNECTED: the connection
                            went before the answer (kept or not: the record may
                            come again). Others: the broker's. */
};

/* Runs from nagare_share_poll(), commit() and destroy(), on the consumer's
 * thread. It may call nagare_share_ack() / ack_offset(), not poll, commit,
 * subscribe or destroy (those return -NAGARE_EBADARG). */
typedef void (*nagare_ack_fn)(nagare_share_consumer *sc, const struct nagare_ack_report *r,
                              void *opaque);

struct nagare_share_consumer_config {
    const char *bootstrap;       /* default "127.0.0.1:7420", or a list; copied.
                                    Requests go to the share coordinator found
                                    through it (docs/cluster.md, section 5). */
    uint32_t fetch_wait_max_ms;  /* long poll (500 ms) */
    uint32_t records_max;        /* most records one fetch acquires (500; 1..10000) */
    uint32_t unacked_max;        /* records polled and not yet acknowledged (10000;
                                     1..1048576): at this many, poll fetches no more */
    uint32_t request_timeout_ms; /* (30 s) */
    uint32_t stall_ms;           /* a request the share coordinator keeps unanswered
                                    this long past the long poll has another broker
                                    asked who coordinates; if another, the requests
                                    go there (2 s; 0: never; see poll) */
    int close_ack;               /* NAGARE_ACK_ACCEPT (default), NAGARE_ACK_RELEASE,
                                     or NAGARE_ACK_NONE */
    nagare_ack_fn on_ack;        /* may be NULL */
    void *opaque;                /* passed to on_ack */
    struct nagare_login login;   /* who to log in as (default: nobody) */
    struct nagare_tls tls;       /* default off */
};

void nagare_share_consumer_config_default(struct nagare_share_consumer_config *c);

/* Creates a share consumer connected to the bootstrap broker. Errors as
 * for nagare_producer_new(). Memory: one fetch answer (within the broker's
 * frame maximum), the unacknowledged records' offsets (unacked_max) and
 * the acknowledgements not yet answered. Any thread; it then belongs to it. */
NAGARE_MUST_USE int nagare_share_consumer_new(const struct nagare_share_consumer_config *c,
                                              nagare_share_consumer **out);

/* Joins share group `group` reading every partition of topics (1..64 valid
 * names, copied; partitions as the broker has them now; a topic that does
 * not exist yet is looked for again every 2 s). Asks the broker for the
 * partitions and for a member id, waiting at most request_timeout_ms. Once
 * only per consumer. Returns 0, -NAGARE_EBADNAME (group id or topic name),
 * -NAGARE_EBADARG (no topics, more than 64, already subscribed, from a
 * callback), -NAGARE_ETOOBIG (more than 4096 partitions in all),
 * -NAGARE_EUNKNOWN_API (a broker without share groups), -ENOMEM, or the
 * request's error. */
NAGARE_MUST_USE int nagare_share_subscribe(nagare_share_consumer *sc, const char *group,
                                           const char *const *topics, size_t topic_count);

/* Returns the next record acquired for this consumer: 1 with *out
 * (out->delivery_count: its deliveries so far, 1 the first time; valid
 * until the next poll or destroy), 0 when none came within timeout_ms (0:
 * do not wait, -1: no limit). Sends the acknowledgements recorded and runs
 * on_ack for answers. Fetches more only when every record of the last
 * fetch was returned and fewer than unacked_max are unacknowledged.
 * Errors, each returned once: -NAGARE_EBADARG (not subscribed, or from a
 * callback), -NAGARE_EDISCONNECTED each time the broker has been
 * unreachable for request_timeout_ms (it keeps reconnecting), a partition's
 * error (-NAGARE_EUNKNOWN_TOPIC: the topic went away, -NAGARE_ETOOBIG: the
 * broker's share windows are full), a fetch's error (-NAGARE_ESYSTEM...),
 * -NAGARE_ECORRUPT (bad bytes: the records concerned are released),
 * -ENOMEM. A share coordinator that keeps a request unanswered for
 * fetch_wait_max_ms plus stall_ms (paused, or cut off) has another broker
 * asked who coordinates, as the producer does for leaders (see
 * nagare_producer_poll()): when it names another broker, requests go there
 * and the stalled connection is given up (what that fetch acquired comes
 * back when its locks end; acks it did not answer report the error to
 * on_ack). Commit and destroy watch the same way while they wait. */
int nagare_share_poll(nagare_share_consumer *sc, int timeout_ms, const struct nagare_message **out);

/* Records an acknowledgement of m, a record this consumer's poll returned
 * (only its topic, partition and offset are read), sent by the next poll
 * or commit. Returns 0, -NAGARE_ENOT_ACQUIRED (not a record polled here and
 * not yet acknowledged), -NAGARE_EBADARG (bad type), -NAGARE_EBUSY (too
 * many acknowledgements unanswered: poll or commit first). */
NAGARE_MUST_USE int nagare_share_ack(nagare_share_consumer *sc, const struct nagare_message *m,
                                     enum nagare_ack_type type);

/* The same by position, for a record whose message was overwritten by a
 * later poll. */
NAGARE_MUST_USE int nagare_share_ack_offset(nagare_share_consumer *sc, const char *topic,
                                            int32_t partition, int64_t offset,
                                            enum nagare_ack_type type);

/* Sends every acknowledgement recorded and waits for the answers (at most
 * request_timeout_ms plus a fetch's long poll), running on_ack. Returns 0
 * when each was kept, else the first record's error (every record's in
 * on_ack), -NAGARE_EBADARG from a callback, or -NAGARE_ETIMEOUT. */
NAGARE_MUST_USE int nagare_share_commit(nagare_share_consumer *sc);

/* Releases the records acquired and not yet polled, applies close_ack to
 * those polled and not acknowledged, sends every acknowledgement and waits
 * for the answers (bounded as commit), then closes. NULL is allowed. */
void nagare_share_consumer_destroy(nagare_share_consumer *sc);

/* ---- admin ---- */

typedef struct nagare_admin nagare_admin;

/* Connects to a broker (bootstrap: "host:port", or a list
 * "host:port,host:port" tried in turn) and asks it for the cluster's other
 * brokers (Metadata); each call below waits at most timeout_ms (and the
 * connection itself at most that long). Errors as nagare_producer_new().
 * A broker that keeps a call unanswered for stall_ms (2 s; see
 * nagare_admin_set_stall_ms()) has another broker asked about it, as the
 * producer does (nagare_producer_poll()): a call that only reads (a
 * describe, a listing, a group's committed offsets) is made again at
 * another broker once that one answers (for a group call: names another
 * coordinator), the quiet broker's connection given up; a call that
 * changes state is sent once (a topic, ACL or user call waits for its
 * answer; a group call fails with -NAGARE_EDISCONNECTED once another
 * coordinator is named: it may have been done). ListOffsets
 * (nagare_offset_lookup()) is watched at the partition's leader, and made
 * again at the leader named.
 * Any thread; the client then belongs to it. */
NAGARE_MUST_USE int nagare_admin_new(const char *bootstrap, uint32_t timeout_ms,
                                     nagare_admin **out);
/* nagare_admin_new() logging in as login (NULL: nobody), over TLS when tls
 * is not NULL and enabled (struct nagare_tls: files read now;
 * -NAGARE_EBADARG when one does not load). */
NAGARE_MUST_USE int nagare_admin_new_secure(const char *bootstrap, uint32_t timeout_ms,
                                            const struct nagare_login *login,
                                            const struct nagare_tls *tls, nagare_admin **out);
/* nagare_admin_new_secure() without TLS. */
NAGARE_MUST_USE int nagare_admin_new_login(const char *bootstrap, uint32_t timeout_ms,
                                           const struct nagare_login *login, nagare_admin **out);
/* nagare_admin_new_secure() without a login. */
NAGARE_MUST_USE int nagare_admin_new_tls(const char *bootstrap, uint32_t timeout_ms,
                                         const struct nagare_tls *tls, nagare_admin **out);
void nagare_admin_destroy(nagare_admin *a);
/* Sets how long a broker may keep a call unanswered before another is
 * asked about it (2000 by default; 0: never, every call waits for its
 * answer or timeout_ms). */
void nagare_admin_set_stall_ms(nagare_admin *a, uint32_t stall_ms);

/* Topic settings; -1 in any field takes the broker's default; -2 in a
 * retention field keeps forever. */
struct nagare_topic_config {
    int32_t partitions;
    int64_t retention_ms;
    int64_t retention_bytes;
    int64_t segment_bytes;
    int32_t batch_bytes_max;
    int16_t replication_factor; /* copies of each partition, 1..7 (a cluster) */
    /* A cluster only: when no in-sync replica of a partition is left, an
     * out-of-sync one may lead (records acknowledged may be lost). false
     * by default; nagare_topics_describe() does not report it. */
    bool unclean_leader_election;
};

void nagare_topic_config_default(struct nagare_topic_config *c);

/* Create / delete one topic. In a cluster, create returns once the broker
 * asked lists the new topic with a leader for every partition (or once
 * the admin's timeout passed: the topic is created all the same), so that
 * a producer or consumer made next finds it. Return 0 or the broker's
 * answer for it
 * (-NAGARE_ETOPIC_EXISTS, -NAGARE_EUNKNOWN_TOPIC, -NAGARE_EBADARG for a
 * config value it refuses, -NAGARE_EBADNAME, -NAGARE_ENOT_ENOUGH_REPLICAS
 * for a replication factor above the live brokers: above 1 on a single
 * broker), -NAGARE_ENOT_CLUSTERED (unclean_leader_election asked of a
 * single broker) or the request's error (-NAGARE_ETIMEOUT,
 * -NAGARE_EDISCONNECTED, -NAGARE_EBADVERSION: a replication factor other
 * than -1 or 1 for a broker that does not speak CreateTopics v1, unclean
 * election for one that does not speak v2, ...). */
NAGARE_MUST_USE int nagare_topic_create(nagare_admin *a, const char *name,
                                        const struct nagare_topic_config *c);
NAGARE_MUST_USE int nagare_topic_delete(nagare_admin *a, const char *name);

struct nagare_partition_info {
    int32_t partition;
    int err;                 /* 0, or negative (-NAGARE_EFAILED: the log failed) */
    int64_t offset_earliest; /* first offset still held */
    int64_t offset_latest;   /* the next offset written (log end) */
};

struct nagare_topic_info {
    const char *name;
    int err;                           /* 0, or negative */
    struct nagare_topic_config config; /* as the broker holds it: -2 for a
                                           retention that is off; -1 where an
                                           older broker (Metadata v0) does not say */
    size_t partition_count;
    const struct nagare_partition_info *partitions;
    int64_t segment_ms; /* segment roll age; -1 when not said */
};

/* Describes every topic (name NULL) or one. *out and everything it points
 * to stay valid until nagare_topics_free(). Returns 0 with *count_out
 * topics, -NAGARE_EUNKNOWN_TOPIC for a named topic that does not exist.
 * config.replication_factor is partition 0's replica count (-1 when the
 * broker does not say: Metadata before v2). */
NAGARE_MUST_USE int nagare_topics_describe(nagare_admin *a, const char *name,
                                           const struct nagare_topic_info **out, size_t *count_out);
void nagare_topics_free(nagare_admin *a, const struct nagare_topic_info *topics);

/* ---- admin: the cluster (docs/cluster.md) ---- */

struct nagare_broker_info {
    int32_t id;
    const char *host; /* its advertised address */
    uint16_t port;
};

/* A partition's replication state. A single broker reports itself as
 * broker 0, leader of every partition at epoch 0, the only replica. */
struct nagare_partition_replicas {
    const char *topic;
    int32_t partition;
    int err;              /* 0, or the partition's error (negative) */
    int32_t leader;       /* broker id; -1 while it has no leader */
    int32_t leader_epoch; /* bumped by each leader change */
    size_t replica_count;
    const int32_t *replicas; /* broker ids, the preferred leader first */
    size_t isr_count;
    const int32_t *isr;    /* the in-sync replicas */
    bool under_replicated; /* fewer in sync than replicas, or no leader */
    /* A reassignment in progress (nagare_partitions_reassign()): the
     * replicas it moves the partition onto; replicas holds them and the
     * old ones until it is done. 0 and NULL when none, or when the broker
     * does not say (Metadata before v3). */
    size_t target_count;
    const int32_t *target;
};

struct nagare_cluster_info {
    int32_t controller; /* broker id; -1 while there is none */
    size_t broker_count;
    const struct nagare_broker_info *brokers; /* live brokers, by id */
    size_t partition_count;
    const struct nagare_partition_replicas *partitions; /* by topic, then partition */
};

/* Describes the cluster: live brokers, the controller, and each partition
 * of every topic (topics with an error are left out) with its leader,
 * epoch, replicas and in-sync replicas. *out and what it points to stay
 * valid until nagare_cluster_info_free(). Returns 0, -NAGARE_EBADVERSION
 * (a broker that does not speak Metadata v2), -ENOMEM, or the request's
 * error. */
NAGARE_MUST_USE int nagare_cluster_describe(nagare_admin *a,
                                            const struct nagare_cluster_info **out);
void nagare_cluster_info_free(nagare_admin *a, const struct nagare_cluster_info *info);

/* Most replicas a partition may be moved onto (the replication factor's
 * limit), and most partitions in one nagare_partitions_reassign(). */
#define NAGARE_REPLICAS_MAX 7
#define NAGARE_REASSIGN_PARTITIONS_MAX 4096

/* Asks the cluster to move each of partitions[partition_count) of topic
 * onto replicas[replica_count) (broker ids, distinct; the first becomes
 * the preferred leader). The controller then adds the new replicas, waits
 * until they are in sync, and drops the others (docs/cluster.md, section
 * 3); nagare_cluster_describe() shows the move until it is done. errs_out
 * (NULL, or partition_count ints) receives each partition's answer: 0
 * (the request is in etcd), -NAGARE_EUNKNOWN_TOPIC (no such topic or
 * partition), -NAGARE_EBADARG (an id that is not a live broker, or more
 * replicas, old and new together, than NAGARE_REPLICAS_MAX),
 * -NAGARE_ECLUSTER_UNAVAILABLE. Returns 0 when every partition was
 * accepted, else the first partition error; -NAGARE_EBADARG before
 * sending (no partition or more than NAGARE_REASSIGN_PARTITIONS_MAX, no
 * replica or more than NAGARE_REPLICAS_MAX, an id twice or negative),
 * -NAGARE_EBADNAME, -NAGARE_ENOT_CLUSTERED (a single broker),
 * -NAGARE_EBADVERSION (a broker without ReassignPartitions), or the
 * request's error. */
NAGARE_MUST_USE int nagare_partitions_reassign(nagare_admin *a, const char *topic,
                                               const int32_t *partitions, size_t partition_count,
                                               const int32_t *replicas, size_t replica_count,
                                               int *errs_out);

/* The first offset with timestamp >= ts_ms (or NAGARE_OFFSET_BEGINNING /
 * END) of a partition; the log end when no record is that recent. Asked
 * of the partition's leader (in a cluster, found from the Metadata of the
 * broker the admin is connected to). Returns 0, -NAGARE_EUNKNOWN_TOPIC,
 * -NAGARE_EBADARG, -NAGARE_ENOT_LEADER (the partition has no leader now),
 * or the request's error. */
NAGARE_MUST_USE int nagare_offset_lookup(nagare_admin *a, const char *topic, int32_t partition,
                                         int64_t ts_ms, int64_t *offset_out);

/* ---- admin: groups ---- */

enum nagare_group_kind {
    NAGARE_GROUP_CONSUMER = 0, /* pub/sub consumer group */
    NAGARE_GROUP_SHARE = 1,    /* share group (queue) */
};

struct nagare_group_listing {
    const char *group;
    int kind;             /* enum nagare_group_kind; a newer broker may send others */
    int32_t member_count; /* members now (0 for a group with only offsets) */
};

/* Every group with members or committed offsets, by id. *out and what it
 * points to stay valid until nagare_groups_free(). Returns 0 with
 * *count_out groups, or the request's error. */
NAGARE_MUST_USE int nagare_groups_list(nagare_admin *a, const struct nagare_group_listing **out,
                                       size_t *count_out);
void nagare_groups_free(nagare_admin *a, const struct nagare_group_listing *groups);

struct nagare_group_member {
    const char *member_id;
    size_t assignment_count;
    const struct nagare_topic_partition *assignment; /* its grant (offset -1) */
};

/* A committed partition of a group, with the broker's view of its lag. */
struct nagare_group_offset {
    const char *topic;
    int32_t partition;
    int64_t committed;   /* the next offset the group will consume */
    int64_t end;         /* the log end offset; -1 when the topic is gone */
    int64_t lag_records; /* end - committed (0 when caught up); -1: topic gone */
    int64_t lag_ms;      /* now minus the timestamp of the record at committed
                            (0 when caught up; -1 when unknown) */
};

struct nagare_group_info {
    const char *group;
    int kind;           /* enum nagare_group_kind */
    int32_t generation; /* 0 for a group without members */
    size_t member_count;
    const struct nagare_group_member *members; /* by id */
    size_t offset_count;
    const struct nagare_group_offset *offsets; /* by topic, then partition */
};

/* Describes a group: members with their assignment, and per committed
 * partition the offsets and lag. *out and what it points to stay valid
 * until nagare_group_info_free(). Returns 0, -NAGARE_ENOTFOUND (no members
 * and no committed offsets), -NAGARE_EBADNAME, or the request's error. */
NAGARE_MUST_USE int nagare_group_describe(nagare_admin *a, const char *group,
                                          const struct nagare_group_info **out);
void nagare_group_info_free(nagare_admin *a, const struct nagare_group_info *info);

/* Forgets every committed offset of a group without members (durably,
 * before the answer). Returns 0, -NAGARE_EGROUP_NOT_EMPTY (it has members:
 * nothing changed), -NAGARE_ENOTFOUND, -NAGARE_EBADNAME, or the request's
 * error. */
NAGARE_MUST_USE int nagare_group_delete(nagare_admin *a, const char *group);

enum nagare_reset_to {
    NAGARE_RESET_TO_EARLIEST = 0,  /* the log start */
    NAGARE_RESET_TO_LATEST = 1,    /* the log end */
    NAGARE_RESET_TO_OFFSET = 2,    /* value, kept within [log start, log end] */
    NAGARE_RESET_TO_TIMESTAMP = 3, /* the first record with timestamp >= value (ms) */
};

/* Sets the committed offsets of a group without members, for every
 * partition of `topic`, or (topic NULL) of every topic the group has
 * committed offsets in. The results (offset now committed, or -1 with err)
 * go to *out (when out is not NULL), valid until nagare_reset_free().
 * Returns 0 (check each result's err), -NAGARE_EGROUP_NOT_EMPTY,
 * -NAGARE_ENOTFOUND (topic NULL and the group has no committed offsets),
 * -NAGARE_EUNKNOWN_TOPIC (the named topic does not exist), -NAGARE_EBADNAME,
 * -NAGARE_EBADARG (a negative value for OFFSET or TIMESTAMP), -ENOMEM, or
 * the request's error. Partitions without an error were written
 * durably as one batch before the answer. */
NAGARE_MUST_USE int nagare_group_reset_offsets(nagare_admin *a, const char *group,
                                               const char *topic, enum nagare_reset_to to,
                                               int64_t value,
                                               const struct nagare_topic_partition **out,
                                               size_t *count_out);
void nagare_reset_free(nagare_admin *a, const struct nagare_topic_partition *results);

/* Republishes the records of a dead-letter topic (<topic>.dlq) to their
 * source topics, at the group coordinator (its marks are committed
 * offsets). Returns 0 with *records_out republished,
 * -NAGARE_EUNKNOWN_TOPIC, -NAGARE_EBADNAME, -NAGARE_EUNKNOWN_API (a broker
 * without share groups), -NAGARE_ENOT_LEADER (a cluster: the coordinator
 * does not lead the dead-letter partitions; what was republished before is
 * marked), or the request's error. In a cluster, records go back to their
 * partitions' leaders wherever they are (docs/cluster.md, section 5). */
NAGARE_MUST_USE int nagare_dlq_redrive(nagare_admin *a, const char *dlq_topic,
                                       int64_t *records_out);

/* One bounded step of a redrive, for callers that show progress or
 * spread a large redrive out (nagare_dlq_redrive() is a loop of these):
 * reads at most records_max (> 0) dead letters from the redrive marks on,
 * republishes them and moves the marks past them, durably, before it
 * answers; the next step resumes at the marks, on this broker or after a
 * restart, so no record is republished twice. Returns 0 with *out filled,
 * or nagare_dlq_redrive()'s errors and -NAGARE_EBADARG (records_max <=
 * 0). A broker older than the step (DlqRedrive v0) redrives everything in
 * one step: out->remaining is then 0 and out->read the records. */
struct nagare_redrive_step {
    int64_t records;   /* republished by this step */
    int64_t read;      /* dead letters read: republished or skipped (no
                        * usable nagare.dlq.* headers, source gone) */
    int64_t remaining; /* dead letters past the marks after it */
};
NAGARE_MUST_USE int nagare_dlq_redrive_step(nagare_admin *a, const char *dlq_topic,
                                            int32_t records_max, struct nagare_redrive_step *out);

/* ---- admin: ACLs (docs/security.md, "Authorization") ---- */

/* An ACL in Kafka's shape, with Kafka's codes: a resource (type, name,
 * and whether the name is literal, "*" for every name, or a prefix), a
 * principal ("User:NAME", "User:*" for any), a host (an address, "*" for
 * any), an operation, allow or deny. As a filter (describe, delete) the
 * ANY codes, MATCH (every ACL that applies to the name) and NULL strings
 * match anything. */
enum nagare_acl_resource {
    NAGARE_ACL_RESOURCE_ANY = 1,
    NAGARE_ACL_RESOURCE_TOPIC = 2,
    NAGARE_ACL_RESOURCE_GROUP = 3,
    NAGARE_ACL_RESOURCE_CLUSTER = 4, /* its one name: NAGARE_ACL_CLUSTER_NAME */
};
enum nagare_acl_pattern {
    NAGARE_ACL_PATTERN_ANY = 1,
    NAGARE_ACL_PATTERN_MATCH = 2,
    NAGARE_ACL_PATTERN_LITERAL = 3,
    NAGARE_ACL_PATTERN_PREFIXED = 4,
};
enum nagare_acl_op {
    NAGARE_ACL_OP_ANY = 1,
    NAGARE_ACL_OP_ALL = 2,
    NAGARE_ACL_OP_READ = 3,
    NAGARE_ACL_OP_WRITE = 4,
    NAGARE_ACL_OP_CREATE = 5,
    NAGARE_ACL_OP_DELETE = 6,
    NAGARE_ACL_OP_ALTER = 7,
    NAGARE_ACL_OP_DESCRIBE = 8,
    NAGARE_ACL_OP_CLUSTER_ACTION = 9,
    NAGARE_ACL_OP_DESCRIBE_CONFIGS = 10,
    NAGARE_ACL_OP_ALTER_CONFIGS = 11,
    NAGARE_ACL_OP_IDEMPOTENT_WRITE = 12,
};
enum nagare_acl_permission {
    NAGARE_ACL_PERMISSION_ANY = 1,
    NAGARE_ACL_PERMISSION_DENY = 2,
    NAGARE_ACL_PERMISSION_ALLOW = 3,
};

#define NAGARE_ACL_CLUSTER_NAME "kafka-cluster"

struct nagare_acl {
    int resource_type; /* enum nagare_acl_resource */
    int pattern_type;  /* enum nagare_acl_pattern */
    const char *name;
    const char *principal;
    const char *host;
    int operation;  /* enum nagare_acl_op */
    int permission; /* enum nagare_acl_permission */
};

/* The code sets, for nagare_acl_name() and nagare_acl_code(). */
enum nagare_acl_vocab {
    NAGARE_ACL_VOCAB_RESOURCE,
    NAGARE_ACL_VOCAB_PATTERN,
    NAGARE_ACL_VOCAB_OP,
    NAGARE_ACL_VOCAB_PERMISSION,
};

/* The lower-case name of a code ("topic", "prefixed", "read",
 * "describe_configs", "allow"...), or NULL; static. And the code a name
 * says (case-insensitive, '-' as '_'), or 0. */
const char *nagare_acl_name(enum nagare_acl_vocab vocab, int code);
int nagare_acl_code(enum nagare_acl_vocab vocab, const char *name);

/* Adds acls[count) (1..4096), all or none: the broker checks each and
 * stores them together, durably; ones it holds already are kept once.
 * They hold for the requests that follow (in a cluster: the answer comes
 * once etcd holds them, and each broker enforces them from its next view
 * of the cluster). Returns 0, -NAGARE_EBADARG (an
 * ACL the broker refuses: a filter code, an empty name, principal or host,
 * a principal not "User:...", a cluster ACL not on NAGARE_ACL_CLUSTER_NAME
 * literally; or count out of range, a NULL string, before sending),
 * -NAGARE_ETOOBIG (past the broker's 4096), -NAGARE_EUNAUTHORIZED (no
 * ALTER on the cluster), or the request's error. */
NAGARE_MUST_USE int nagare_acls_create(nagare_admin *a, const struct nagare_acl *acls,
                                       size_t count);

/* The ACLs filter selects (describe), or deletes them and gives those it
 * deleted (delete). *out (count_out of them, strings included) stays
 * valid until nagare_acls_free(). Returns 0, -NAGARE_EBADARG (a code out
 * of range), -NAGARE_EUNAUTHORIZED (no DESCRIBE, or ALTER, on the
 * cluster), -ENOMEM, or the request's error. */
NAGARE_MUST_USE int nagare_acls_describe(nagare_admin *a, const struct nagare_acl *filter,
                                         const struct nagare_acl **out, size_t *count_out);
NAGARE_MUST_USE int nagare_acls_delete(nagare_admin *a, const struct nagare_acl *filter,
                                       const struct nagare_acl **out, size_t *count_out);
void nagare_acls_free(nagare_admin *a, const struct nagare_acl *acls);

#ifdef __cplusplus
}
#endif

/* ---- users (docs/security.md, "Authentication") ---- */

/* Sets user's credential of mechanism ("SCRAM-SHA-256" or "SCRAM-SHA-512";
 * NULL: both) for password, adding the user when new: the credential
 * (salt, iterations, StoredKey, ServerKey) is derived here, so the password
 * never goes to the broker. iterations 0: 4096; else 4096..16384. Returns
 * 0, -NAGARE_EBADNAME (user: 1..128 letters, digits, '.', '_', '-', '@'),
 * -NAGARE_EBADARG (password empty or over 1024 bytes, mechanism or
 * iterations not allowed), -NAGARE_ETOOBIG (the broker holds 4096 users),
 * or the request's error. */
NAGARE_MUST_USE int nagare_user_set(nagare_admin *a, const char *user, const char *password,
                                    const char *mechanism, uint32_t iterations);

/* Deletes user's credential of mechanism (NULL: all of them, and the user).
 * Returns 0, -NAGARE_ENOTFOUND (no such user or credential),
 * -NAGARE_EBADNAME, -NAGARE_EBADARG, or the request's error. */
NAGARE_MUST_USE int nagare_user_delete(nagare_admin *a, const char *user, const char *mechanism);

struct nagare_user_info {
    const char *user;
    bool scram_sha_256; /* has a credential of that mechanism */
    bool scram_sha_512;
};

/* Lists the broker's users, sorted by name (never a key or a salt): *out
 * (free with nagare_users_free()) and *count. Returns 0, -ENOMEM, or the
 * request's error. */
NAGARE_MUST_USE int nagare_users_list(nagare_admin *a, const struct nagare_user_info **out,
                                      size_t *count);
void nagare_users_free(const struct nagare_user_info *users);

#endif
