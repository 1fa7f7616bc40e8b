/*
 * tests/broker_support.h — the integration harness: runs the real nagared
 * binary (path from $NAGARED) on an ephemeral port with a temporary data
 * directory, and speaks raw frames to it over blocking TCP sockets.
 *
 * Invariants. A struct bk owns one temporary directory (data dir, log file)
 * and at most one running broker; bk_fini() kills that broker if it still
 * runs and removes the directory, so call it from the suite's .fini and no
 * test leaves a process or a file behind, failed or not. A broker is also
 * killed if the test process dies (PR_SET_PDEATHSIG). Every socket has a
 * receive timeout, so a hung broker fails a test instead of hanging it.
 * Everything here asserts with criterion, so call it from the test's own
 * thread only (a long poll is tested by sending the fetch, acting on another
 * connection, then reading the fetch's answer).
 */
#ifndef NAGARE_TESTS_BROKER_SUPPORT_H
#define NAGARE_TESTS_BROKER_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/clock.h"
#include "net/proto.h"
#include "storage/batch.h"

/* ---- the broker process ---- */

#define BK_ROOT_BYTES 128
#define BK_PATH_BYTES 256
#define BK_SETS_MAX 8
/* How long a start may take to print its listening line, and a stop to
 * exit. Generous for a sanitized build on a loaded machine. */
#define BK_START_TIMEOUT_MS 10000
#define BK_STOP_TIMEOUT_MS 15000

struct bk {
    char root[BK_ROOT_BYTES];      /* mkdtemp'd; removed by bk_fini() */
    char data_dir[BK_PATH_BYTES];  /* root/data */
    char log_path[BK_PATH_BYTES];  /* root/nagared.log: stderr and stdout */
    const char *sets[BK_SETS_MAX]; /* "key=value" for --set; borrowed */
    size_t set_count;
    pid_t pid;            /* 0: not running */
    uint16_t port;        /* bound port of the running broker */
    uint16_t kafka_port;  /* its Kafka listener's */
    uint16_t admin_port;  /* its HTTP admin listener's */
    char bootstrap[32];   /* "127.0.0.1:<port>", for libnagare */
    char listen_same[48]; /* "listen=127.0.0.1:<port>", for restarts */
    size_t log_from;      /* log bytes before the current start */
};

/* Makes the temporary directory; starts nothing. */
void bk_init(struct bk *b);

/* Adds a --set option for every later start. kv must outlive b. */
void bk_set(struct bk *b, const char *kv);

/* Starts nagared on 127.0.0.1:0 with b->data_dir and the --set options,
 * stderr appended to b->log_path, and waits for its listening line to learn
 * the port (b->port, b->bootstrap). Fails the test (with the log's tail)
 * when it does not come. */
void bk_start(struct bk *b);

/* Kills the running broker at once (SIGKILL: nothing is flushed beyond
 * what the kernel has), waits down_ms, and starts it again on the same
 * port (every later start keeps that port). */
void bk_kill_restart(struct bk *b, int down_ms);

/* Spawns nagared with these arguments after argv[0] (NULL-terminated),
 * stdout and stderr appended to log_path. Returns its pid. */
pid_t bk_spawn(const char *const *args, const char *log_path);
/* bk_spawn() of the binary at path (NULL: $NAGARED) as user and group uid
 * (not 0), so that nftables can tell its packets apart
 * (tests/cluster_support.h); uid 0 runs it as the caller. */
pid_t bk_spawn_as(const char *path, const char *const *args, const char *log_path, uid_t uid);

/* Waits up to timeout_ms for pid to exit. Returns true with its wait
 * status in *status, false on timeout (pid still running). */
bool bk_wait(pid_t pid, int timeout_ms, int *status);

/* SIGTERM, then waits; asserts exit status 0 and a log free of sanitizer
 * reports and failed assertions. On timeout kills -9 and fails. */
void bk_stop(struct bk *b);

/* True while the broker process is running. */
bool bk_alive(struct bk *b);

/* Kills a still-running broker (printing its log's tail) and removes the
 * directory. Harmless on a zeroed struct bk. */
void bk_fini(struct bk *b);

/* Reads path into a fresh NUL-terminated buffer (free() it). */
char *bk_read_file(const char *path, size_t *len_out);

/* Runs cmd through sh; what it writes to stdout goes to out (NUL-terminated,
 * cut at cap - 1 bytes). Returns its exit status; asserts it exited. */
int bk_run(const char *cmd, char *out, size_t cap);

/* Runs nagared --verify on b's data directory (the broker stopped); its
 * report goes to out as bk_run() puts it. Returns its exit status. */
int bk_verify(const struct bk *b, char *out, size_t cap);

/* Prints the last bytes of a log to stderr, for a failing test. */
void bk_print_tail(const char *path, const char *why);

/* Fails the test when the log (from byte `from`) shows a sanitizer report
 * or a failed assertion. */
void bk_assert_log_clean(const char *path, size_t from);

/* ---- a client speaking raw frames ---- */

/* Largest response frame a test client accepts. */
#define CL_FRAME_BYTES_MAX (64u << 20)
#define CL_TX_BYTES (8u << 20)
#define CL_TIMEOUT_MS_DEFAULT 15000

struct cl {
    int fd;
    uint32_t corr; /* next correlation id */
    uint8_t *tx;   /* request frames are built here */
    struct wr w;   /* over tx */
    uint8_t *rx;   /* the last response frame (after its prefix) */
    size_t rx_cap;
    size_t rx_len;
};

/* Connects to 127.0.0.1:port with a receive timeout of timeout_ms. */
void cl_connect(struct cl *c, uint16_t port, int timeout_ms);
/* The same to host (an IPv4 address) and port. */
void cl_connect_host(struct cl *c, const char *host, uint16_t port, int timeout_ms);
/* Closes the socket and frees the buffers; harmless twice. */
void cl_close(struct cl *c);

/* Resets the request buffer and returns a writer over it. */
struct wr *cl_wr(struct cl *c);
/* Next correlation id. */
uint32_t cl_next_corr(struct cl *c);
/* Sends c->w's bytes, or n raw bytes. Returns 0 or -errno (a peer that
 * closed first). */
int cl_send_wr(struct cl *c);
int cl_send(struct cl *c, const void *p, size_t n);

/* Reads one response frame and decodes its header. Returns 0 with *h and
 * *body (valid until the next receive); -NG_EDISCONNECTED on EOF or reset;
 * -EAGAIN on the receive timeout; -NG_ETOOBIG or a decoder error for a bad
 * frame. */
int cl_recv(struct cl *c, struct proto_resp_header *h, struct rd *body);

/* cl_recv() that must succeed with correlation id corr and error 0. */
void cl_expect(struct cl *c, uint32_t corr, struct rd *body);

/* Reads and checks error answers until EOF, within the timeout. Returns
 * true when the broker closed the connection; false when the timeout ran
 * out first. Every frame read must be a well-formed error answer. */
bool cl_wait_closed(struct cl *c);

/* ---- requests ---- */

/* CreateTopics with one topic and broker defaults; returns its error. */
int rq_create(struct cl *c, const char *topic, int32_t partitions);
/* CreateTopics with one topic as given; returns its error. */
int rq_create_cfg(struct cl *c, const struct proto_create_topic *t);
/* The same at a CreateTopics version (1: with its replication factor). */
int rq_create_version(struct cl *c, uint16_t version, const struct proto_create_topic *t);
/* DeleteTopics with one topic; returns its error. */
int rq_delete(struct cl *c, const char *topic);

/* Produce of one batch. Returns the partition's error; *offset_out gets its
 * base offset. With acks 0 nothing is read and 0 is returned. */
int rq_produce(struct cl *c, const char *topic, int32_t partition, const uint8_t *batch, size_t len,
               int16_t acks, int64_t *offset_out);
/* Sends that produce request and returns its correlation id. */
uint32_t rq_produce_send(struct cl *c, const char *topic, int32_t partition, const uint8_t *batch,
                         size_t len, int16_t acks);
/* Reads its answer: one topic, one partition. */
int rq_produce_recv(struct cl *c, uint32_t corr, int64_t *offset_out);

/* One fetched partition; records is a malloc'd copy (free with rq_fetched_free). */
struct fetched {
    int err;
    int64_t offset_earliest;
    int64_t offset_latest;
    uint8_t *records;
    size_t records_bytes;
};

/* Sends a Fetch of one partition; returns its correlation id. */
uint32_t rq_fetch_send(struct cl *c, const char *topic, int32_t partition, int64_t offset,
                       int32_t wait_max_ms, int32_t bytes_min);
void rq_fetch_recv(struct cl *c, uint32_t corr, struct fetched *out);
/* Fetch with no wait. */
void rq_fetch(struct cl *c, const char *topic, int32_t partition, int64_t offset,
              struct fetched *out);
void rq_fetched_free(struct fetched *f);

/* ListOffsets of one partition. Returns its error; *offset_out and
 * *timestamp_out get its fields. */
int rq_list_offset(struct cl *c, const char *topic, int32_t partition, int64_t timestamp_ms,
                   int64_t *offset_out, int64_t *timestamp_out);
/* The latest offset (ListOffsets -1), asserting no error. */
int64_t rq_latest(struct cl *c, const char *topic, int32_t partition);

#define MD_TOPICS_MAX 16
#define MD_PARTS_MAX 16

struct md_topic {
    char name[PROTO_TOPIC_NAME_BYTES_MAX + 1];
    int err;
    int32_t partition_count;
    struct proto_metadata_partition parts[MD_PARTS_MAX];
};

#define MD_BROKERS_MAX 4

struct md_broker {
    int32_t id;
    char host[256];
    uint16_t port;
};

struct md {
    char host[256];
    uint16_t port;
    int32_t broker_id;     /* v2 */
    int32_t controller_id; /* v2 */
    uint32_t broker_count; /* v2 */
    struct md_broker brokers[MD_BROKERS_MAX];
    uint32_t topic_count;
    struct md_topic topics[MD_TOPICS_MAX];
};

/* Metadata for these topics (names NULL-terminated), or every topic when
 * names is NULL. */
void rq_metadata(struct cl *c, const char *const *names, struct md *out);
/* The same at a Metadata version. */
void rq_metadata_version(struct cl *c, uint16_t version, const char *const *names, struct md *out);
/* The topic named name in out, or NULL. */
const struct md_topic *md_find(const struct md *m, const char *name);

/* InitProducerId; *epoch_out gets the epoch. */
int64_t rq_init_producer_id(struct cl *c, int16_t *epoch_out);

/* Sends an ApiVersions request; returns its correlation id. */
uint32_t rq_api_versions_send(struct cl *c);
/* Round trip of an ApiVersions request, checking its answer. */
void rq_ping(struct cl *c);

/* ---- batches ---- */

#define BT_BYTES_MAX (1u << 20)

/* Builds an uncompressed batch of `records` records: record i has key
 * "k<seed>-<i>", a value of 48 bytes derived from (seed, i), timestamp
 * ts_ms + i. producer_id -1 for a plain producer. Returns its size. */
size_t bt_make(uint8_t *buf, size_t cap, uint32_t records, uint32_t seed, int64_t ts_ms,
               int64_t producer_id, int16_t producer_epoch, int32_t sequence_base);

/* The same with values of value_bytes bytes (one byte repeated when a
 * codec is asked for, so it compresses) compressed with codec (z is needed
 * for zstd), timestamps from a fixed epoch. */
size_t bt_make_sized(uint8_t *buf, size_t cap, uint32_t records, uint32_t value_bytes,
                     uint32_t seed, enum batch_codec codec, struct batch_zctx *z);

/* Splits fetched records into batches: the batch at index i of buf, or
 * false past the last. Asserts each is whole and valid. */
bool bt_at(const uint8_t *buf, size_t len, size_t index, const uint8_t **batch_out,
           size_t *bytes_out);
/* Number of whole batches in buf. */
size_t bt_count(const uint8_t *buf, size_t len);

/* Asserts that got is sent byte for byte except its base offset, which
 * must be offset_base. */
void bt_assert_same(const uint8_t *got, size_t got_bytes, const uint8_t *sent, size_t sent_bytes,
                    int64_t offset_base);

/* ---- checks ---- */

/* Paths under dir, one per line, sorted: a snapshot of a directory tree. */
char *tree_list(const char *dir);

#endif
