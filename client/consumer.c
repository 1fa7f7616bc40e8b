/*
 * client/consumer.c — the consumer of assigned partitions.
 *
 * Invariants.
 * - Each assigned partition has a position (the next offset poll returns)
 *   and a fetch offset (the next offset to ask for, ahead of the position
 *   by what is buffered). At most one fetch per partition is in flight: the
 *   broker answers whole batches from the offset asked, up to byte limits,
 *   so the next offset is known only from the answer's batch headers. As
 *   soon as an answer arrives the next fetch goes out (fetch_done), while
 *   the records just received are read: broker and application overlap.
 * - While partitions are behind (a replay), they are shared out over up to
 *   fetches_inflight fetches asked with no wait, so that a few
 *   partitions keep the broker busy (one partition has its next fetch in
 *   flight while its last answer is read); a long poll goes out only alone,
 *   because the broker answers a connection's requests in order and a
 *   parked fetch would hold up the answers behind it (fetch_pick()).
 * - A large answer is read straight into a buffer of its own (conn's sink)
 *   and its records are read there in place; a small one is copied into
 *   one. The buffer is cut into chunks, one per partition with records,
 *   and reused once its last chunk is consumed, so a record poll returned
 *   stays valid until the next poll. While records are read, the socket is
 *   read every PUMP_BYTES so answers in flight do not stall the broker.
 *   Memory is bounded: at most fetches_inflight requests are in flight, a
 *   partition holds at most fetches_inflight chunks, and answers buffered
 *   plus requests in flight (one whose answer is coming into its buffer
 *   counted once) stay within fetches_inflight + 1, each buffer one answer
 *   (at most fetch_bytes_max plus one batch, as the broker sizes them).
 * - Records are delivered in offset order per partition, each once:
 *   chunks are read in arrival order, and records before the position
 *   (the first batch of an answer may start before the offset asked) are
 *   skipped. Each batch's checksum is checked as it is opened: bad bytes
 *   are reported after the records before them, and the partition pauses.
 * - seek bumps the partition's generation: chunks and answers of an older
 *   generation are dropped unread.
 * - A partition removed while subscribed to a group (consumer_part_remove)
 *   leaves the sorted list at once with its chunks dropped; fetches in
 *   flight still point at it (fetch_refs), so it is freed by the last of
 *   their answers.
 * - Each partition is fetched from its leader (cpart.leader, from Metadata
 *   v2; before v2 the bootstrap broker leads everything): a fetch carries
 *   the partitions of one broker, and the long-poll rule above holds per
 *   connection. A partition whose leader is not known (new, or after
 *   NOT_LEADER, a stale leader epoch or a lost connection) is not fetched
 *   until a Metadata answer names it; it resumes from its fetch offset.
 *   Metadata and ListOffsets lookups go to the bootstrap connection and
 *   to the leader; group requests go to the group's coordinator (the
 *   leader of __offsets/0). A fetch a leader keeps unanswered past its
 *   long poll plus stall_ms, or any request the coordinator keeps so long,
 *   has another broker asked who leads ("stalls" below).
 * One thread: the consumer's. Group membership is client/group.c's
 * (client/consumer_int.h).
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "client/brokers.h"
#include "client/calls.h"
#include "client/conn.h"
#include "client/consumer_int.h"
#include "client/msg.h"
#include "client/nagare.h"
#include "storage/batch.h"

#define FETCHES_INFLIGHT_LIMIT 64
#define ASSIGNED_MAX PROTO_REQUEST_PARTITIONS_MAX
/* Batch bytes read between two looks at the socket while records are
 * buffered: a read() per 256 KiB is about 1% of the time those bytes take
 * to consume, and the socket buffers (a few MiB on loopback) never fill
 * in between. */
#define PUMP_BYTES (256u * 1024)
/* stall_ms's default: as the producer's (client/producer.c), past the
 * fetch's own long poll. */
#define STALL_MS_DEFAULT 2000

struct cpart {
    struct cbroker *leader;   /* fetched from it; NULL: not known (cbroker_lead) */
    int32_t leader_epoch;     /* of leader, as the last Metadata naming it said */
    struct cbroker *fetch_to; /* while fetching: where the fetch went */
    char topic[PROTO_TOPIC_NAME_BYTES_MAX + 1];
    size_t topic_len;
    int32_t partition;
    int64_t position;
    int64_t fetch_offset;
    uint32_t gen;
    bool fetching;
    bool behind;  /* records known (or not known not) to lie past
                                 fetch_offset: fetched without a long poll */
    bool picked;  /* chosen for the fetch being encoded */
    bool stalled; /* bad bytes buffered: no fetch until they are read */
    uint32_t chunks;
    int err; /* reported once by poll, then paused until seek */
    bool err_reported;
    int64_t corrupt_end; /* err the broker's NG_ECORRUPT: where reading
                                 resumes past its damaged range; else -1 */
    int64_t backoff_until_ms;
    uint32_t backoff_ms;
    uint32_t fetch_refs; /* fetches in flight naming it */
    bool removed;        /* out of the list: freed with its last fetch */
};

struct cbuf {
    struct cbuf *next;
    uint8_t *data;
    size_t cap;
    uint32_t refs;
};

struct cchunk {
    struct cchunk *next;
    struct cpart *part;
    uint32_t gen;
    struct cbuf *buf;
    const uint8_t *ptr;
    size_t len;
    size_t pos;
};

struct fent {
    struct cpart *part;
    uint32_t gen;
};

struct freq {
    struct nagare_consumer *c;
    struct cbroker *broker; /* where it went */
    struct freq *next_free;
    struct cbuf *buf; /* the answer is read into it (fetch_sink) */
    uint32_t count;
    uint32_t cap;
    struct fent *ents;
};

struct nagare_consumer {
    struct nagare_consumer_config cfg;
    char bootstrap[CONN_BOOTSTRAP_BYTES_MAX];
    struct brokers brokers; /* the bootstrap connection and each leader's */
    struct batch_zctx zctx;
    struct cpart **parts; /* sorted by topic, then partition */
    uint32_t part_count;
    struct cchunk *chunk_head; /* in arrival order */
    struct cchunk *chunk_tail;
    struct cchunk *chunk_free;
    struct cbuf *buf_free;
    uint32_t bufs_used;
    uint32_t bufs_receiving; /* of them, answers of fetches in flight coming in */
    struct freq *freq_free;
    uint32_t fetches_out;
    uint32_t fetch_turn; /* brokers.all index send_fetches() starts at */
    uint64_t pump_bytes; /* batch bytes opened since the socket was last read */
    /* the chunk and batch being read */
    struct cchunk *cur;
    struct batch_reader br;
    bool br_open;
    uint8_t *zbuf;
    size_t zbuf_cap;
    struct cmsg msg;
    /* connection trouble */
    struct conn_redial redial; /* the bootstrap connection's */
    /* leaders: a Metadata refresh is wanted, in flight, may go then */
    bool meta_wanted;
    bool meta_inflight;
    struct cbroker *meta_on; /* the broker asked (brokers_meta()) */
    int64_t meta_next_ms;
    /* stalls (stall_check()): a broker keeping a fetch unanswered has
     * another broker asked who leads */
    uint32_t stall_asks;                 /* sent: spreads them over the brokers */
    struct cgroup *group;                /* NULL: not subscribed (client/group.c) */
    struct cbroker *coordinator;         /* the group's broker; NULL: to be found */
    struct nagare_topic_partition *view; /* nagare_consumer_assignment() */
};

void nagare_consumer_config_default(struct nagare_consumer_config *c)
{
    *c = (struct nagare_consumer_config){
        .bootstrap = "127.0.0.1:7420",
        .reset = NAGARE_RESET_EARLIEST,
        .fetch_wait_max_ms = 500,
        .fetch_bytes_min = 1,
        .fetch_bytes_max = 16u << 20,
        /* Kafka's max.partition.fetch.bytes. Answers of a MiB or two stay
         * in the caches between the socket read and the checksum, and a
         * replay's pipeline is kept full by fetches in flight, not by
         * their size: nagare-bench consume, 4 partitions, 1 KiB records,
         * medians of 5 on 2 vCPUs: 1.8 GB/s with 4 MiB, 2.2 GB/s with 1. */
        .partition_fetch_bytes_max = 1u << 20,
        .fetches_inflight = 2,
        .request_timeout_ms = 30000,
        .stall_ms = STALL_MS_DEFAULT,
        .session_timeout_ms = 10000,
        .auto_commit = true,
        .auto_commit_interval_ms = 5000,
    };
}

static int config_check(const struct nagare_consumer_config *c)
{
    bool ok = c->bootstrap != NULL && c->reset <= NAGARE_RESET_ERROR &&
              c->fetch_wait_max_ms <= INT32_MAX && c->fetch_bytes_min <= INT32_MAX &&
              c->fetch_bytes_max > 0 && c->fetch_bytes_max <= INT32_MAX &&
              c->partition_fetch_bytes_max > 0 && c->partition_fetch_bytes_max <= INT32_MAX &&
              c->fetches_inflight > 0 && c->fetches_inflight <= FETCHES_INFLIGHT_LIMIT &&
              c->request_timeout_ms > 0 && c->request_timeout_ms <= INT32_MAX &&
              c->session_timeout_ms >= 1000 && c->session_timeout_ms <= 300000 &&
              c->auto_commit_interval_ms > 0 && c->auto_commit_interval_ms <= INT32_MAX;
    return ok ? 0 : -NG_EBADARG;
}

/* A lookup's answer may queue behind a fetch that long-polls. */
static int64_t deadline_of(const nagare_consumer *c)
{
    return clock_mono_ms() + c->cfg.request_timeout_ms + c->cfg.fetch_wait_max_ms;
}

/* ---- create, destroy ---- */

static void chunk_release(nagare_consumer *c, struct cchunk *k);

static struct client_conn *boot_conn(nagare_consumer *c) { return &c->brokers.boot->conn; }

static void consumer_free(nagare_consumer *c)
{
    brokers_fini(&c->brokers); /* fails fetches in flight: their buffers come back */
    if (c->group != NULL) {
        cgroup_free(c->group); /* its requests have just completed too */
    }
    if (c->cur != NULL) {
        chunk_release(c, c->cur);
    }
    while (c->chunk_head != NULL) {
        struct cchunk *k = c->chunk_head;
        c->chunk_head = k->next;
        chunk_release(c, k);
    }
    ASSERT(c->bufs_used == 0);
    while (c->chunk_free != NULL) {
        struct cchunk *k = c->chunk_free;
        c->chunk_free = k->next;
        free(k);
    }
    while (c->buf_free != NULL) {
        struct cbuf *b = c->buf_free;
        c->buf_free = b->next;
        free(b->data);
        free(b);
    }
    while (c->freq_free != NULL) {
        struct freq *r = c->freq_free;
        c->freq_free = r->next_free;
        free(r->ents);
        free(r);
    }
    for (uint32_t i = 0; i < c->part_count; i++) {
        free(c->parts[i]);
    }
    free(c->parts);
    free(c->view);
    free(c->zbuf);
    cmsg_fini(&c->msg);
    batch_zctx_fini(&c->zctx);
    free(c);
}

int nagare_consumer_new(const struct nagare_consumer_config *cfg, nagare_consumer **out)
{
    if (cfg == NULL || out == NULL || config_check(cfg) != 0 ||
        strlen(cfg->bootstrap) >= CONN_BOOTSTRAP_BYTES_MAX) {
        return -NG_EBADARG;
    }
    *out = NULL;
    nagare_consumer *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return -ENOMEM;
    }
    c->cfg = *cfg;
    strcpy(c->bootstrap, cfg->bootstrap);
    c->cfg.bootstrap = c->bootstrap;
    /* An answer holds fetch_bytes_max plus one batch past it (the broker
     * always sends the first batch whole): leave room for a largest one. */
    uint64_t resp = (uint64_t)cfg->fetch_bytes_max + BATCH_BYTES_LIMIT;
    struct conn_config cc = {
        .bootstrap = c->cfg.bootstrap,
        .request_timeout_ms = cfg->request_timeout_ms,
        .resp_bytes_max =
            (uint32_t)(resp < PROTO_FRAME_BYTES_LIMIT ? resp : PROTO_FRAME_BYTES_LIMIT),
        .tx_bytes_max = 1u << 20,
        /* fetches, plus a heartbeat, an async commit, a synchronous call
         * and one spare */
        .pending_max = cfg->fetches_inflight + 4,
    };
    int rc = conn_login_make(&cc.login, cfg->login.user, cfg->login.password, cfg->login.mechanism);
    c->cfg.login = (struct nagare_login){0}; /* the caller's strings: copied, not kept */
    rc = rc == 0 ? conn_config_tls(&cc, &cfg->tls) : rc;
    rc = rc == 0 ? brokers_init(&c->brokers, &cc) : rc;
    conn_config_tls_done(&cc);
    explicit_bzero(&cc.login, sizeof(cc.login));
    rc = rc == 0 ? batch_zctx_init(&c->zctx, BATCH_HEADER_BYTES, 0) : rc;
    c->zbuf_cap = MSG_ZBUF_BYTES_INITIAL;
    c->zbuf = rc == 0 ? malloc(c->zbuf_cap) : NULL;
    rc = rc == 0 && c->zbuf == NULL ? -ENOMEM : rc;
    rc = rc == 0 ? conn_wait_up(boot_conn(c), (int)cfg->request_timeout_ms) : rc;
    if (rc != 0) {
        consumer_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void nagare_consumer_destroy(nagare_consumer *c)
{
    if (c != NULL) {
        ASSERT(c->group == NULL || !cgroup_in_callback(c->group));
        if (c->group != NULL) {
            cgroup_close(c, c->group);
        }
        consumer_free(c);
    }
}

/* ---- buffers and chunks ---- */

static void buf_unref(nagare_consumer *c, struct cbuf *b)
{
    ASSERT(b->refs > 0);
    if (--b->refs > 0) {
        return;
    }
    c->bufs_used--;
    b->next = c->buf_free;
    c->buf_free = b;
}

static struct cbuf *buf_get(nagare_consumer *c, size_t bytes)
{
    struct cbuf *b = c->buf_free;
    if (b != NULL) {
        c->buf_free = b->next;
    } else {
        b = calloc(1, sizeof(*b));
        if (b == NULL) {
            return NULL;
        }
    }
    if (b->cap < bytes) {
        /* A power of two: answers of about the same size (fetch limits plus
         * a batch past them) then stop regrowing buffers, each regrowth
         * costing fresh pages to fault in. */
        size_t cap = 4096;
        while (cap < bytes) {
            cap *= 2;
        }
        free(b->data); /* what it held is spent: no copy as realloc would */
        b->cap = 0;
        b->data = malloc(cap);
        if (b->data == NULL) {
            b->next = c->buf_free;
            c->buf_free = b;
            return NULL;
        }
        b->cap = cap;
    }
    b->refs = 1; /* held by the answer being cut into chunks */
    c->bufs_used++;
    return b;
}

static void chunk_release(nagare_consumer *c, struct cchunk *k)
{
    if (k->gen == k->part->gen) {
        ASSERT(k->part->chunks > 0);
        k->part->chunks--;
    }
    buf_unref(c, k->buf);
    k->next = c->chunk_free;
    c->chunk_free = k;
}

/* Drops everything buffered for part (after a seek bumped its generation,
 * chunks of the old one no longer count in part->chunks). */
static void drop_chunks(nagare_consumer *c, struct cpart *part)
{
    if (c->cur != NULL && c->cur->part == part) {
        chunk_release(c, c->cur);
        c->cur = NULL;
        c->br_open = false;
    }
    struct cchunk **at = &c->chunk_head;
    c->chunk_tail = NULL;
    while (*at != NULL) {
        struct cchunk *k = *at;
        if (k->part == part) {
            *at = k->next;
            chunk_release(c, k);
            continue;
        }
        c->chunk_tail = k;
        at = &k->next;
    }
}

/* ---- assignment ---- */

static struct cpart *part_find(nagare_consumer *c, const char *topic, int32_t partition)
{
    for (uint32_t i = 0; i < c->part_count; i++) {
        struct cpart *p = c->parts[i];
        if (p->partition == partition && strcmp(p->topic, topic) == 0) {
            return p;
        }
    }
    return NULL;
}

static int part_cmp(const struct cpart *a, const char *topic, int32_t partition)
{
    int r = strcmp(a->topic, topic);
    return r != 0 ? r : (a->partition > partition) - (a->partition < partition);
}

/* Inserts keeping parts sorted, so a fetch names each topic once. */
static int part_insert(nagare_consumer *c, struct cpart *p)
{
    struct cpart **v = realloc(c->parts, (c->part_count + 1) * sizeof(*v));
    if (v == NULL) {
        return -ENOMEM;
    }
    c->parts = v;
    uint32_t i = c->part_count;
    while (i > 0 && part_cmp(v[i - 1], p->topic, p->partition) > 0) {
        v[i] = v[i - 1];
        i--;
    }
    v[i] = p;
    c->part_count++;
    return 0;
}

/* ---- leaders ---- */

/* brokers_leader_lookup() until the consumer's request deadline. */
static int leader_lookup(nagare_consumer *c, const char *topic, int32_t partition,
                         struct cbroker **leader_out)
{
    return brokers_leader_lookup(&c->brokers, topic, partition, c->cfg.stall_ms, deadline_of(c),
                                 leader_out);
}

static bool leader_moved(int err)
{
    return err == -NG_ENOT_LEADER || err == -NG_EFENCED_LEADER_EPOCH ||
           err == -NG_EUNKNOWN_LEADER_EPOCH;
}

/* The leader asked may be gone (a leader change under way). */
static bool leader_unreachable(int err)
{
    return err == -NG_EDISCONNECTED || err == -ECONNREFUSED || err == -ECONNRESET ||
           err == -EPIPE || err == -EHOSTUNREACH;
}

/* ListOffsets of a partition at its leader (looked up when not known).
 * While the partition has no leader, or the one asked no longer leads it
 * or cannot be reached (a leader change), the leader is looked up again
 * after a backoff, until the request timeout. */
static int leader_list_offset(nagare_consumer *c, struct cbroker *leader, const char *topic,
                              int32_t partition, int64_t timestamp_ms, int64_t *out)
{
    int64_t deadline = deadline_of(c);
    uint32_t backoff_ms = 0;
    for (;;) {
        int rc = leader == NULL ? leader_lookup(c, topic, partition, &leader) : 0;
        if (rc == 0 && leader == NULL) {
            rc = -NG_ENOT_LEADER; /* the partition has no leader now */
        }
        if (rc == 0) {
            /* A leader that stalls is given up once another is named. */
            struct brokers_watch w;
            const struct conn_watch *watch = brokers_watch_init(
                &w, &c->brokers, leader, topic, partition, c->cfg.stall_ms, deadline);
            rc = calls_list_offset(&leader->conn, topic, partition, timestamp_ms, deadline, watch,
                                   out);
        }
        if (!(leader_moved(rc) || leader_unreachable(rc)) ||
            clock_mono_ms() + (int64_t)CONN_BACKOFF_MS_MAX >= deadline) {
            return rc;
        }
        leader = NULL;
        (void)poll(NULL, 0, (int)conn_backoff_next(&backoff_ms));
    }
}

/* Resolves NAGARE_OFFSET_BEGINNING / END with ListOffsets; checks others. */
static int resolve_offset(nagare_consumer *c, struct cbroker *leader, const char *topic,
                          int32_t partition, int64_t offset, int64_t *out)
{
    if (offset >= 0) {
        *out = offset;
        return 0;
    }
    if (offset != NAGARE_OFFSET_BEGINNING && offset != NAGARE_OFFSET_END) {
        return -NG_EBADARG;
    }
    return leader_list_offset(c, leader, topic, partition, offset, out);
}

static bool topic_arg_ok(const char *topic, int32_t partition)
{
    return topic != NULL && partition >= 0 &&
           proto_topic_name_valid(topic, strnlen(topic, PROTO_TOPIC_NAME_BYTES_MAX + 1));
}

int nagare_consumer_assign(nagare_consumer *c, const char *topic, int32_t partition, int64_t offset)
{
    ASSERT(c != NULL);
    if (!topic_arg_ok(topic, partition) || part_find(c, topic, partition) != NULL ||
        c->part_count == ASSIGNED_MAX || c->group != NULL) {
        return -NG_EBADARG;
    }
    struct cbroker *leader;
    int rc = leader_lookup(c, topic, partition, &leader);
    int64_t at;
    rc = rc == 0 ? resolve_offset(c, leader, topic, partition, offset, &at) : rc;
    rc = rc == 0 ? consumer_part_add(c, topic, partition, at, 0) : rc;
    if (rc == 0) {
        cbroker_lead(&part_find(c, topic, partition)->leader, leader);
    }
    return rc;
}

/* Moves part to offset: what is buffered or in flight for it is dropped. */
static void part_move(nagare_consumer *c, struct cpart *p, int64_t offset)
{
    drop_chunks(c, p);
    p->gen++;
    ASSERT(p->chunks == 0);
    p->fetching = false; /* an answer in flight is of the old generation */
    p->behind = true;    /* not known yet */
    p->position = offset;
    p->fetch_offset = offset;
    p->err = 0;
    p->err_reported = false;
    p->corrupt_end = -1;
    p->stalled = false;
    p->backoff_until_ms = 0;
}

int nagare_consumer_seek(nagare_consumer *c, const char *topic, int32_t partition, int64_t offset)
{
    ASSERT(c != NULL);
    if (!topic_arg_ok(topic, partition)) {
        return -NG_EBADARG;
    }
    struct cpart *p = part_find(c, topic, partition);
    if (p == NULL) {
        return -NG_ENOTFOUND;
    }
    int64_t at;
    int rc = resolve_offset(c, p->leader, topic, partition, offset, &at);
    if (rc == 0) {
        part_move(c, p, at);
    }
    return rc;
}

int nagare_consumer_seek_time(nagare_consumer *c, const char *topic, int32_t partition,
                              int64_t ts_ms)
{
    ASSERT(c != NULL);
    if (!topic_arg_ok(topic, partition) || ts_ms < 0) {
        return -NG_EBADARG;
    }
    struct cpart *p = part_find(c, topic, partition);
    if (p == NULL) {
        return -NG_ENOTFOUND;
    }
    int64_t at;
    int rc = leader_list_offset(c, p->leader, topic, partition, ts_ms, &at);
    if (rc == 0) {
        part_move(c, p, at);
    }
    return rc;
}

int nagare_consumer_position(nagare_consumer *c, const char *topic, int32_t partition,
                             int64_t *offset_out)
{
    ASSERT(c != NULL && offset_out != NULL);
    struct cpart *p = topic != NULL ? part_find(c, topic, partition) : NULL;
    if (p == NULL) {
        return -NG_ENOTFOUND;
    }
    *offset_out = p->position;
    return 0;
}

int nagare_consumer_corrupt_end(nagare_consumer *c, const char *topic, int32_t partition,
                                int64_t *offset_out)
{
    ASSERT(c != NULL && offset_out != NULL);
    struct cpart *p = topic != NULL ? part_find(c, topic, partition) : NULL;
    if (p == NULL || p->err != -NG_ECORRUPT || p->corrupt_end < 0) {
        return -NG_ENOTFOUND;
    }
    *offset_out = p->corrupt_end;
    return 0;
}

/* ---- fetching ---- */

static struct freq *freq_get(nagare_consumer *c)
{
    struct freq *r = c->freq_free;
    if (r != NULL) {
        c->freq_free = r->next_free;
        r->count = 0;
        r->buf = NULL;
        return r;
    }
    r = calloc(1, sizeof(*r));
    if (r != NULL) {
        r->c = c;
    }
    return r;
}

static void freq_put(nagare_consumer *c, struct freq *r)
{
    r->next_free = c->freq_free;
    c->freq_free = r;
}

static void part_backoff(struct cpart *p, int64_t now_ms)
{
    p->backoff_until_ms = now_ms + conn_backoff_next(&p->backoff_ms);
}

/* The offset after the last batch of records whose header reads well and
 * which is whole (-1 when the first is not), and *bad: whether bytes after
 * it are left (the broker sends whole, valid batches only). Checksums are
 * checked as each batch is read (batch_next()). */
static int64_t records_end(const uint8_t *records, size_t len, bool *bad)
{
    int64_t end = -1;
    size_t pos = 0;
    *bad = false;
    while (pos < len) {
        struct batch_header h;
        if (batch_header_decode(records + pos, len - pos, BATCH_BYTES_LIMIT, &h) != 0 ||
            batch_bytes(&h) > len - pos) {
            *bad = true;
            return end;
        }
        end = batch_offset_last(&h) + 1;
        pos += batch_bytes(&h);
    }
    return end;
}

/* Queues fp's records for reading. Returns false (the partition backs off
 * and is fetched again from the same offset) when out of memory. */
static bool chunk_add(nagare_consumer *c, struct cpart *p, struct cbuf *b,
                      const struct proto_fetch_resp_partition *fp)
{
    struct cchunk *k = c->chunk_free;
    if (k != NULL) {
        c->chunk_free = k->next;
    } else if ((k = malloc(sizeof(*k))) == NULL) {
        part_backoff(p, clock_mono_ms());
        return false;
    }
    *k = (struct cchunk){
        .part = p, .gen = p->gen, .buf = b, .ptr = fp->records, .len = fp->records_bytes};
    b->refs++;
    p->chunks++;
    if (c->chunk_tail != NULL) {
        c->chunk_tail->next = k;
    } else {
        c->chunk_head = k;
    }
    c->chunk_tail = k;
    return true;
}

/* Applies the offset reset policy to an out-of-range partition. */
static void out_of_range(nagare_consumer *c, struct cpart *p,
                         const struct proto_fetch_resp_partition *fp)
{
    if (c->cfg.reset == NAGARE_RESET_ERROR || fp->offset_earliest < 0 || fp->offset_latest < 0) {
        p->err = -NG_EOFFSET_RANGE;
        return;
    }
    int64_t to = c->cfg.reset == NAGARE_RESET_EARLIEST ? fp->offset_earliest : fp->offset_latest;
    p->position = to;
    p->fetch_offset = to;
    p->behind = true;
}

/* The partition's leader may have moved: it is not fetched until a
 * Metadata answer names its leader again. */
static void leader_forget(nagare_consumer *c, struct cpart *p)
{
    cbroker_lead(&p->leader, NULL);
    c->meta_wanted = true;
}

/* One partition's part of a fetch answer. */
static void fetched(nagare_consumer *c, struct cpart *p, struct cbuf *b,
                    const struct proto_fetch_resp_partition *fp)
{
    int64_t now = clock_mono_ms();
    if (leader_moved(fp->err)) {
        leader_forget(c, p); /* fetched again from fetch_offset, at the leader */
    } else if (fp->err == -NG_EOFFSET_RANGE) {
        out_of_range(c, p, fp);
    } else if (fp->err == -NG_EUNKNOWN_TOPIC || fp->err == -NG_ECORRUPT) {
        p->err = fp->err;
        /* Fetch v1: the damaged range's end, for nagare_consumer_corrupt_end(). */
        p->corrupt_end =
            fp->err == -NG_ECORRUPT && fp->offset_resume > p->fetch_offset ? fp->offset_resume : -1;
    } else if (fp->err != 0) {
        part_backoff(p, now); /* busy, closing, failed log: try again later */
    } else {
        bool bad;
        int64_t end = records_end(fp->records, fp->records_bytes, &bad);
        if (fp->records_bytes > 0 && chunk_add(c, p, b, fp)) {
            p->backoff_ms = 0;
            p->fetch_offset = end > p->fetch_offset ? end : p->fetch_offset;
            /* Bad bytes are read in their turn, after the records before
             * them, and reported then (read_failed()); nothing past them is
             * fetched meanwhile. */
            p->stalled = bad;
        }
        /* Records past what came (the answer's byte limits held them back):
         * the next fetch need not wait for any. */
        p->behind = fp->offset_latest > p->fetch_offset;
    }
}

/* Walks a fetch answer (body, which lies in b) against its request. */
static int fetch_apply(nagare_consumer *c, struct freq *r, struct cbuf *b, struct rd body,
                       uint16_t version)
{
    struct proto_dec d;
    if (proto_fetch_resp_decode(&body, version, &d) != 0) {
        return -NG_EPROTO;
    }
    uint64_t records_bytes = 0;
    uint32_t i = 0;
    struct proto_topic t;
    while (proto_next_topic(&d, &t)) {
        struct proto_fetch_resp_partition fp;
        while (proto_fetch_resp_next_partition(&d, &fp)) {
            if (i == r->count) {
                return -NG_EPROTO;
            }
            struct cpart *p = r->ents[i].part;
            if (!proto_str_eq(t.name, p->topic) || fp.partition != p->partition) {
                return -NG_EPROTO;
            }
            if (r->ents[i].gen == p->gen) {
                p->fetching = false;
                fetched(c, p, b, &fp);
            }
            records_bytes += fp.records_bytes;
            i++;
        }
    }
    if (records_bytes == 0) {
        /* Nothing came at all, so no byte limit held anything back: these
         * partitions are caught up whatever the high watermark said (it
         * may count records not yet readable). Their next fetch long-polls,
         * so fetches without a wait never spin on them. */
        for (uint32_t k = 0; k < r->count; k++) {
            if (r->ents[k].gen == r->ents[k].part->gen) {
                r->ents[k].part->behind = false;
            }
        }
    }
    return i == r->count ? 0 : -NG_EPROTO;
}

/* Drops the request's hold on its partitions: a removed one goes with
 * the last answer that names it. */
static void fetch_unref(struct freq *r)
{
    for (uint32_t i = 0; i < r->count; i++) {
        struct cpart *p = r->ents[i].part;
        ASSERT(p->fetch_refs > 0);
        p->fetch_refs--;
        if (p->removed && p->fetch_refs == 0) {
            free(p);
        }
    }
    r->count = 0;
}

/* Marks the request's partitions as no longer being fetched; with
 * forget (the connection to their leader was lost), their leaders are
 * asked for again. */
static void fetch_settle(nagare_consumer *c, struct freq *r, bool backoff, bool forget)
{
    int64_t now = clock_mono_ms();
    for (uint32_t i = 0; i < r->count; i++) {
        struct cpart *p = r->ents[i].part;
        if (r->ents[i].gen == p->gen && p->fetching) {
            p->fetching = false;
            if (backoff) {
                part_backoff(p, now);
            }
            /* A leader named since the fetch went out (a stalled
             * leader's successor, stall_done()) is kept: it is where. */
            if (forget && !p->removed && p->leader == r->broker) {
                leader_forget(c, p);
            }
        }
    }
}

static void send_fetches(nagare_consumer *c, int64_t now_ms);

/* conn_sink_fn: a large answer is read straight into a buffer of ours,
 * where its records are then read in place. */
static uint8_t *fetch_sink(void *arg, size_t frame_bytes)
{
    struct freq *r = arg;
    ASSERT(r->buf == NULL);
    r->buf = buf_get(r->c, frame_bytes);
    r->c->bufs_receiving += r->buf != NULL ? 1 : 0;
    return r->buf != NULL ? r->buf->data : NULL;
}

/* The answer's buffer: the one it was read into, or (a small answer read
 * into the connection's buffer, valid only now) a copy. */
static struct cbuf *answer_buf(nagare_consumer *c, struct freq *r, struct rd *body)
{
    if (r->buf != NULL) {
        ASSERT(body->ptr > r->buf->data && body->ptr + body->len <= r->buf->data + r->buf->cap);
        return r->buf;
    }
    size_t len = body->len - body->pos;
    struct cbuf *b = buf_get(c, len > 0 ? len : 1);
    if (b != NULL) {
        memcpy(b->data, body->ptr + body->pos, len);
        *body = rd_make(b->data, len);
    }
    return b;
}

static void fetch_done(void *arg, int err, struct rd *body, uint16_t version)
{
    struct freq *r = arg;
    nagare_consumer *c = r->c;
    ASSERT(c->fetches_out > 0 && r->broker->requests > 0);
    c->fetches_out--;
    r->broker->requests--;
    if (r->buf != NULL) {
        ASSERT(c->bufs_receiving > 0);
        c->bufs_receiving--;
    }
    struct cbuf *b = NULL;
    if (err == 0) {
        b = answer_buf(c, r, body);
        err = b == NULL ? -ENOMEM : fetch_apply(c, r, b, *body, version);
        if (err == -NG_EPROTO) {
            conn_close(&r->broker->conn, err);
        }
    } else if (r->buf != NULL) {
        b = r->buf; /* the connection closed while the answer came in */
    }
    /* A request-level refusal (busy, closing) backs off; after a lost
     * connection the partitions' leaders are asked for again (the broker
     * may be gone), and fetched once known and connected. */
    bool lost = err == -NG_EDISCONNECTED || err == -NG_ETIMEOUT || err == -NG_EPROTO ||
                (err < 0 && -err < NG_ERR_FIRST && err != -ENOMEM);
    fetch_settle(c, r, err == -NG_EBUSY || err == -NG_ECLOSED || err == -ENOMEM, lost);
    if (b != NULL) {
        buf_unref(c, b);
    }
    fetch_unref(r);
    freq_put(c, r);
    /* The partitions answered can be fetched again at once, from where
     * this answer ends, while its records are read. */
    send_fetches(c, clock_mono_ms());
}

static bool fetchable(const nagare_consumer *c, const struct cpart *p, int64_t now_ms)
{
    return p->leader != NULL && p->err == 0 && !p->fetching && !p->stalled &&
           p->chunks < c->cfg.fetches_inflight && now_ms >= p->backoff_until_ms;
}

/* Room in r for n partitions. Returns 0 or -ENOMEM. */
static int freq_reserve(struct freq *r, uint32_t n)
{
    if (n <= r->cap) {
        return 0;
    }
    uint32_t cap = r->cap == 0 ? 16 : r->cap;
    while (cap < n) {
        cap *= 2;
    }
    struct fent *v = realloc(r->ents, cap * sizeof(*v));
    if (v == NULL) {
        return -ENOMEM;
    }
    r->ents = v;
    r->cap = cap;
    return 0;
}

/*
 * Picks the partitions of the next fetch (cpart.picked) and returns how
 * many: 0 when none should go now.
 *
 * The broker answers a connection's requests in order, so a fetch parked
 * in a long poll holds up every answer behind it. Hence two kinds:
 * - While some partition is behind (records known to lie past its fetch
 *   offset: a replay), fetches ask for no wait and the partitions are
 *   shared out over the fetches in flight, at most
 *   ceil(assigned / fetches_inflight) to one, behind ones first, so that
 *   the broker prepares one answer while the application reads another
 *   even with few partitions. Caught-up partitions ride along, so they
 *   are not starved by a long replay of the others.
 * - When every partition is caught up, one fetch takes them all and
 *   long-polls, and only when no other fetch is in flight. Not while any
 *   partition is behind, even one that cannot take a fetch now (its
 *   answers are buffered, or in flight): its next fetch would wait behind
 *   the long poll. Nor while a caught-up partition waits for the
 *   application to read its buffered answers (p->chunks): a long poll
 *   without it would hold its next records back until some other
 *   partition gets one, or for fetch_wait_max_ms (e2e's 501 ms record).
 * A partition has at most one fetch in flight: the offset to ask for next
 * is known only from the previous answer (whole batches from the offset
 * asked, up to byte limits), so it is asked for as soon as that answer
 * comes (fetch_done), while its records are being read.
 */
static uint32_t fetch_pick(nagare_consumer *c, const struct cbroker *br, int64_t now_ms,
                           bool *long_poll)
{
    uint32_t want = 0;
    uint32_t behind = 0;
    bool any_behind = false; /* fetchable or not: in flight, full, backing off */
    bool any_full = false;   /* kept out only by its unread chunks */
    for (uint32_t i = 0; i < c->part_count; i++) {
        const struct cpart *p = c->parts[i];
        if (p->leader != br) {
            continue; /* another connection's: its long polls do not hold these up */
        }
        any_behind = any_behind || (p->behind && p->err == 0 && !p->stalled);
        any_full = any_full || (p->err == 0 && !p->stalled && !p->fetching &&
                                p->chunks >= c->cfg.fetches_inflight);
        if (fetchable(c, p, now_ms)) {
            want++;
            behind += p->behind ? 1 : 0;
        }
    }
    *long_poll = !any_behind;
    if (want == 0 || (*long_poll && (br->requests > 0 || any_full)) ||
        (any_behind && behind == 0)) {
        return 0;
    }
    uint32_t fi = c->cfg.fetches_inflight;
    uint32_t limit = *long_poll ? want : (c->part_count + fi - 1) / fi;
    uint32_t n = 0;
    for (int pass = 0; pass < 2 && n < limit; pass++) {
        for (uint32_t i = 0; i < c->part_count && n < limit; i++) {
            struct cpart *p = c->parts[i];
            if (p->leader == br && !p->picked && p->behind == (pass == 0) &&
                fetchable(c, p, now_ms)) {
                p->picked = true;
                n++;
            }
        }
    }
    ASSERT(n > 0);
    return n;
}

/* Encodes a fetch of the picked partitions into w (in the order of
 * c->parts, so each topic is named once) and clears their marks. */
static void fetch_encode(nagare_consumer *c, struct freq *r, struct wr *w, uint32_t corr,
                         uint16_t version, bool long_poll)
{
    struct proto_enc e;
    struct proto_fetch_req req = {.wait_max_ms = long_poll ? (int32_t)c->cfg.fetch_wait_max_ms : 0,
                                  .bytes_min = long_poll ? (int32_t)c->cfg.fetch_bytes_min : 0,
                                  .bytes_max = (int32_t)c->cfg.fetch_bytes_max};
    proto_fetch_req_begin(&e, w, version, corr, proto_str_make(CONN_CLIENT_ID), &req);
    const char *open_topic = NULL;
    for (uint32_t i = 0; i < c->part_count; i++) {
        struct cpart *p = c->parts[i];
        if (!p->picked) {
            continue;
        }
        p->picked = false;
        ASSERT(r->count < r->cap);
        r->ents[r->count++] = (struct fent){.part = p, .gen = p->gen};
        p->fetch_refs++;
        if (open_topic == NULL || strcmp(open_topic, p->topic) != 0) {
            proto_enc_topic(&e, (struct proto_str){.ptr = p->topic, .len = (int32_t)p->topic_len});
            open_topic = p->topic;
        }
        p->fetch_to = r->broker;
        proto_fetch_req_partition(&e, &(struct proto_fetch_req_partition){
                                          .partition = p->partition,
                                          .offset = p->fetch_offset,
                                          .bytes_max = (int32_t)c->cfg.partition_fetch_bytes_max});
        p->fetching = true;
    }
    int rc = proto_enc_end(&e);
    ASSERT(rc == 0); /* sized for every partition picked */
}

static void unpick(nagare_consumer *c)
{
    for (uint32_t i = 0; i < c->part_count; i++) {
        c->parts[i]->picked = false;
    }
}

/* Sends one fetch to broker br if any partition it leads should have one
 * now. Returns whether it did. */
static bool fetch_send(nagare_consumer *c, struct cbroker *br, int64_t now_ms)
{
    bool long_poll;
    uint32_t n = fetch_pick(c, br, now_ms, &long_poll);
    if (n == 0) {
        return false;
    }
    struct wr w;
    uint32_t corr;
    size_t need = 64 + (size_t)n * (16 + 8 + PROTO_TOPIC_NAME_BYTES_MAX);
    struct freq *r = freq_get(c);
    if (r == NULL || freq_reserve(r, n) != 0 || conn_frame_begin(&br->conn, need, &w, &corr) != 0) {
        if (r != NULL) {
            freq_put(c, r);
        }
        unpick(c);
        return false;
    }
    r->broker = br;
    uint16_t version = conn_version(&br->conn, PROTO_API_FETCH);
    fetch_encode(c, r, &w, corr, version, long_poll);
    ASSERT(r->count == n);
    conn_frame_commit_sink(&br->conn, &w, corr, PROTO_API_FETCH, version,
                           c->cfg.request_timeout_ms + c->cfg.fetch_wait_max_ms, fetch_done,
                           fetch_sink, r);
    c->fetches_out++;
    br->requests++;
    return true;
}

/* ---- metadata: the partitions' leaders ---- */

/* A Metadata answer names b (NULL: none known) leader of p, at an epoch
 * not older than p knew. When p's fetch waits at another broker that has
 * kept a fetch unanswered for its long poll plus stall_ms, that broker no
 * longer leads p and may never answer (paused or cut off: see "stalls"
 * below): its connection is given up at the next pass. */
static void stall_drop_if(nagare_consumer *c, const struct cpart *p, const struct cbroker *b)
{
    struct cbroker *x = p->fetch_to;
    if (c->cfg.stall_ms > 0 && b != NULL && p->fetching && x != NULL && x != b &&
        brokers_stalled(x, c->cfg.stall_ms, c->cfg.fetch_wait_max_ms, clock_mono_ms())) {
        x->stall_drop = true;
    }
}

static void meta_done(void *arg, int err, struct rd *body, uint16_t version)
{
    nagare_consumer *c = arg;
    c->meta_inflight = false;
    struct proto_metadata_resp m;
    struct proto_dec d;
    if (err != 0 || proto_metadata_resp_decode(body, version, &m, &d) != 0) {
        c->meta_wanted = true;
        return;
    }
    if (version >= 2) {
        brokers_update(&c->brokers, c->meta_on, &m);
    }
    struct proto_topic t;
    struct proto_metadata_partition mp;
    char name[PROTO_TOPIC_NAME_BYTES_MAX + 1];
    while (proto_next_topic(&d, &t)) {
        if (t.err != 0 || proto_str_copy(t.name, name, sizeof(name)) != 0) {
            continue; /* a topic gone: its fetches say so */
        }
        for (int32_t i = 0; version < 2 && i < t.partition_count; i++) {
            (void)proto_metadata_resp_next_partition(&d, &mp);
        }
        for (uint32_t i = 0; version < 2 && i < c->part_count; i++) {
            if (strcmp(c->parts[i]->topic, name) == 0) {
                cbroker_lead(&c->parts[i]->leader, c->brokers.boot);
            }
        }
        while (version >= 2 && proto_metadata_resp_next_partition(&d, &mp)) {
            struct cpart *p = part_find(c, name, mp.partition);
            if (p != NULL) {
                struct cbroker *b = brokers_find(&c->brokers, mp.leader);
                if (mp.leader_epoch >= p->leader_epoch) {
                    stall_drop_if(c, p, b);
                }
                cbroker_lead(&p->leader, b);
                p->leader_epoch = mp.leader_epoch;
            }
        }
    }
    for (uint32_t i = 0; i < c->part_count; i++) {
        c->meta_wanted = c->meta_wanted || (c->parts[i]->leader == NULL && c->parts[i]->err == 0);
    }
}

/* Asks a broker (brokers_meta(): the bootstrap one while it is up) for the
 * leaders of the topics of partitions that have none known. */
static void metadata_send(nagare_consumer *c, int64_t now_ms)
{
    struct cbroker *on = brokers_meta(&c->brokers);
    struct wr w;
    uint32_t corr;
    size_t need = 64 + (size_t)c->part_count * PROTO_STR_BYTES(PROTO_TOPIC_NAME_BYTES_MAX);
    if (on == NULL || conn_frame_begin(&on->conn, need, &w, &corr) != 0) {
        return;
    }
    uint16_t version = conn_version(&on->conn, PROTO_API_METADATA);
    struct proto_enc e;
    proto_metadata_req_begin(&e, &w, version, corr, proto_str_make(CONN_CLIENT_ID), false);
    const char *last = NULL;
    for (uint32_t i = 0; i < c->part_count; i++) {
        const struct cpart *p = c->parts[i]; /* sorted: a topic's partitions together */
        if (p->leader == NULL && (last == NULL || strcmp(last, p->topic) != 0)) {
            proto_enc_topic(&e, (struct proto_str){.ptr = p->topic, .len = (int32_t)p->topic_len});
            last = p->topic;
        }
    }
    int rc = proto_enc_end(&e);
    ASSERT(rc == 0); /* sized for every partition's topic */
    conn_frame_commit(&on->conn, &w, corr, PROTO_API_METADATA, version, false,
                      c->cfg.request_timeout_ms + c->cfg.fetch_wait_max_ms, meta_done, c);
    c->meta_wanted = false;
    c->meta_inflight = true;
    c->meta_on = on;
    /* At most one refresh per backoff step while leaders are missing. */
    c->meta_next_ms = now_ms + CONN_BACKOFF_MS_FIRST;
}

/* Sends the refresh when wanted and allowed. Returns when it may go, or
 * INT64_MAX. */
static int64_t metadata_upkeep(nagare_consumer *c, int64_t now_ms)
{
    if (!c->meta_wanted || c->meta_inflight) {
        return INT64_MAX;
    }
    if (now_ms < c->meta_next_ms) {
        return c->meta_next_ms;
    }
    metadata_send(c, now_ms); /* none when no broker is up */
    return INT64_MAX;
}

/* ---- stalls: a leader paused or cut off ---- */

/* As the producer's (client/producer.c; client/brokers.h): a broker
 * keeping a fetch unanswered for stall_ms past its long poll has another
 * broker asked for the leaders of the topics it leads partitions of, again
 * every stall_ms while the wait lasts; an answer naming another leader,
 * at an epoch not older than known, for a partition whose fetch waits at
 * a stalled broker gives that connection up (stall_drop_if()), and the
 * partition is fetched from its fetch offset at the new leader. */
struct stall_ask {
    nagare_consumer *c;
    struct cbroker *on;
};

/* An answer names b (NULL: none known) leader of __offsets/0, the group
 * coordinator's partition (docs/cluster.md, section 5). When the
 * coordinator known is another broker that has kept a request unanswered
 * for stall_ms past a long poll (group requests queue behind fetches), it
 * is given up at the next pass: the group's requests fail as after a lost
 * connection (client/group.c), which finds the coordinator again through
 * a broker that answers. */
static void coordinator_drop_if(nagare_consumer *c, const struct cbroker *b)
{
    struct cbroker *x = c->coordinator;
    if (b != NULL && x != NULL && x != b &&
        brokers_stalled(x, c->cfg.stall_ms, c->cfg.fetch_wait_max_ms, clock_mono_ms())) {
        x->stall_drop = true;
    }
}

static void stall_done(void *arg, int err, struct rd *body, uint16_t version)
{
    struct stall_ask ask = *(struct stall_ask *)arg;
    free(arg);
    nagare_consumer *c = ask.c;
    struct proto_metadata_resp m;
    struct proto_dec d;
    if (err != 0 || version < 2 || proto_metadata_resp_decode(body, version, &m, &d) != 0) {
        return; /* asked again after stall_ms while the wait lasts */
    }
    brokers_update(&c->brokers, ask.on, &m);
    struct proto_topic t;
    struct proto_metadata_partition mp;
    char name[PROTO_TOPIC_NAME_BYTES_MAX + 1];
    while (proto_next_topic(&d, &t)) {
        if (t.err != 0 || proto_str_copy(t.name, name, sizeof(name)) != 0) {
            continue;
        }
        while (proto_metadata_resp_next_partition(&d, &mp)) {
            struct cpart *p = part_find(c, name, mp.partition);
            struct cbroker *b = brokers_find(&c->brokers, mp.leader);
            if (mp.partition == 0 && strcmp(name, PROTO_OFFSETS_TOPIC) == 0) {
                coordinator_drop_if(c, b);
            }
            if (p == NULL || b == NULL || mp.leader_epoch < p->leader_epoch) {
                continue; /* an answer older than what is known */
            }
            stall_drop_if(c, p, b);
            cbroker_lead(&p->leader, b);
            p->leader_epoch = mp.leader_epoch;
        }
    }
}

/* Asks a broker other than `stalled` for the leaders of the topics of the
 * partitions it leads or has a fetch of, and of __offsets when it is the
 * group's coordinator. */
static void stall_ask(nagare_consumer *c, struct cbroker *stalled, int64_t now_ms)
{
    struct cbroker *on =
        brokers_stall_peer(&c->brokers, stalled, c->stall_asks, now_ms, CONN_BACKOFF_MS_FIRST);
    if (on == NULL) {
        return;
    }
    uint16_t version = conn_version(&on->conn, PROTO_API_METADATA);
    size_t need = 64 + ((size_t)c->part_count + 1) * PROTO_STR_BYTES(PROTO_TOPIC_NAME_BYTES_MAX);
    struct stall_ask *ask = malloc(sizeof(*ask));
    struct wr w;
    uint32_t corr;
    if (version < 2 || ask == NULL || conn_frame_begin(&on->conn, need, &w, &corr) != 0) {
        free(ask);
        brokers_stall_asked(stalled, now_ms, CONN_BACKOFF_MS_FIRST); /* soon again */
        return;
    }
    *ask = (struct stall_ask){.c = c, .on = on};
    struct proto_enc e;
    proto_metadata_req_begin(&e, &w, version, corr, proto_str_make(CONN_CLIENT_ID), false);
    const char *last = NULL;
    for (uint32_t i = 0; i < c->part_count; i++) {
        const struct cpart *p = c->parts[i]; /* sorted: a topic's partitions together */
        bool on_it = p->leader == stalled || (p->fetching && p->fetch_to == stalled);
        if (on_it && (last == NULL || strcmp(last, p->topic) != 0)) {
            proto_enc_topic(&e, (struct proto_str){.ptr = p->topic, .len = (int32_t)p->topic_len});
            last = p->topic;
        }
    }
    if (stalled == c->coordinator) {
        proto_enc_topic(&e, proto_str_make(PROTO_OFFSETS_TOPIC));
    }
    int rc = proto_enc_end(&e);
    ASSERT(rc == 0); /* sized for every partition's topic and __offsets */
    conn_frame_commit(&on->conn, &w, corr, PROTO_API_METADATA, version, false,
                      c->cfg.request_timeout_ms + c->cfg.fetch_wait_max_ms, stall_done, ask);
    c->stall_asks++;
    brokers_stall_asked(stalled, now_ms, c->cfg.stall_ms);
}

/* Gives up the connection an answer showed leads no more, and asks about
 * every broker keeping a fetch waiting past its long poll plus stall_ms.
 * Returns when it is due next. */
static int64_t stall_check(nagare_consumer *c, int64_t now_ms)
{
    brokers_stall_drops(&c->brokers); /* their partitions go to the new leaders */
    int64_t next = INT64_MAX;
    for (uint32_t i = 0; c->cfg.stall_ms > 0 && i < c->brokers.count; i++) {
        struct cbroker *b = c->brokers.all[i];
        int64_t due = brokers_stall_due(b, c->cfg.stall_ms, c->cfg.fetch_wait_max_ms);
        if (now_ms >= due) {
            stall_ask(c, b, now_ms);
            due = brokers_stall_due(b, c->cfg.stall_ms, c->cfg.fetch_wait_max_ms);
        }
        next = due < next ? due : next;
    }
    return next;
}

/* ---- connection upkeep ---- */

/* Reconnects with backoff while there is something to fetch. Returns
 * -NG_EDISCONNECTED when the broker has been unreachable for
 * request_timeout_ms (once per such period). */
static int keep_connected(nagare_consumer *c, int64_t now_ms)
{
    for (uint32_t i = 1; i < c->brokers.count; i++) { /* all[0] is boot, below */
        struct cbroker *b = c->brokers.all[i];
        if (b->leads > 0 && b->conn.state == CONN_DOWN && b->redial_backoff_ms > 0) {
            /* Dialled since it was last up, and down: it may have died, and
             * its partitions may have a new leader by now (the metadata is
             * asked again, rate limited; Kafka's clients do the same). */
            c->meta_wanted = true;
        }
        if (b == c->coordinator && b->conn.state == CONN_DOWN && b->redial_backoff_ms > 0) {
            cbroker_coordinate(&c->coordinator, NULL); /* it may have died: found again */
        }
        if (b->conn.state == CONN_UP || b->leads > 0 || b == c->coordinator ||
            (c->meta_wanted && brokers_meta_fallback(&c->brokers, b))) {
            (void)brokers_connect(b, now_ms, CONN_BACKOFF_MS_FIRST); /* next_redial() */
        }
    }
    if (boot_conn(c)->state == CONN_DOWN && c->part_count == 0 && c->group == NULL) {
        return 0;
    }
    return conn_redial(boot_conn(c), &c->redial, now_ms, c->cfg.request_timeout_ms);
}

/* When the next connect to a leader may start. */
static int64_t next_redial(const nagare_consumer *c)
{
    int64_t next = c->brokers.boot->conn.state == CONN_DOWN ? c->redial.at_ms : INT64_MAX;
    for (uint32_t i = 1; i < c->brokers.count; i++) {
        const struct cbroker *b = c->brokers.all[i];
        if (b->leads > 0 && b->conn.state == CONN_DOWN && b->redial_at_ms < next) {
            next = b->redial_at_ms;
        }
    }
    return next;
}

/* Answers buffered or asked for: the memory bound. A fetch whose answer
 * is coming into its buffer counts once. */
static uint32_t answers_held(const nagare_consumer *c)
{
    ASSERT(c->bufs_used >= c->bufs_receiving);
    return c->bufs_used - c->bufs_receiving + c->fetches_out;
}

/* The fetches in flight are shared by every broker's connection, so the
 * brokers take turns: each call starts after the last broker that sent.
 * From a fixed first broker, idle brokers' long polls, re-sent as soon as
 * they are answered, would keep a later broker's partitions from ever
 * being fetched. */
static void send_fetches(nagare_consumer *c, int64_t now_ms)
{
    uint32_t count = c->brokers.count;
    for (uint32_t k = 0; k < count; k++) {
        uint32_t i = (c->fetch_turn + k) % count;
        struct cbroker *br = c->brokers.all[i];
        while (br->leads > 0 && conn_ready(&br->conn) && c->fetches_out < c->cfg.fetches_inflight &&
               answers_held(c) < c->cfg.fetches_inflight + 1 && fetch_send(c, br, now_ms)) {
            c->fetch_turn = (i + 1) % count;
        }
    }
}

/* When the next fetch could go out for a partition in backoff. */
static int64_t next_backoff(const nagare_consumer *c, int64_t now_ms)
{
    int64_t next = INT64_MAX;
    for (uint32_t i = 0; i < c->part_count; i++) {
        const struct cpart *p = c->parts[i];
        if (p->err == 0 && !p->fetching && p->backoff_until_ms > now_ms &&
            p->backoff_until_ms < next) {
            next = p->backoff_until_ms;
        }
    }
    return next;
}

/* ---- reading records ---- */

/* Opens the next batch of the current chunk that holds records at or past
 * the position. Returns 1 when one is open, 0 at the chunk's end, or an
 * error for bad bytes. */
static int batch_next(nagare_consumer *c)
{
    struct cchunk *k = c->cur;
    while (k->pos < k->len) {
        const uint8_t *at = k->ptr + k->pos;
        size_t left = k->len - k->pos;
        struct batch_header h;
        int rc = batch_header_decode(at, left, BATCH_BYTES_LIMIT, &h);
        if (rc != 0 || batch_bytes(&h) > left) {
            return -NG_ECORRUPT;
        }
        k->pos += batch_bytes(&h);
        c->pump_bytes += batch_bytes(&h);
        if (batch_offset_last(&h) < k->part->position) {
            continue; /* wholly before what was asked for */
        }
        rc = msg_batch_open(&c->br, at, batch_bytes(&h), &c->zctx, &c->zbuf, &c->zbuf_cap);
        if (rc != 0) {
            return rc == -ENOMEM ? rc : -NG_ECORRUPT;
        }
        c->br_open = true;
        return 1;
    }
    return 0;
}

/* Reading the current chunk failed. Out of memory: what was buffered is
 * dropped and fetched again from the position, so nothing is lost. Bad
 * bytes: the partition pauses (until a seek) and the error is returned. */
static int read_failed(nagare_consumer *c, struct cpart *p, int rc)
{
    if (rc == -ENOMEM) {
        part_move(c, p, p->position);
        return rc;
    }
    p->err = -NG_ECORRUPT;
    p->corrupt_end = -1;    /* bad bytes on the way: no range the broker knows */
    p->err_reported = true; /* returned right here */
    drop_chunks(c, p);
    return -NG_ECORRUPT;
}

/* Releases the current chunk. When that frees its buffer or lets its
 * partition take a fetch again, the next fetch goes out now, not once
 * every buffered record has been read (checked here in O(1): a scan of
 * every partition per chunk would cost much with many partitions). */
static void chunk_done(nagare_consumer *c)
{
    struct cpart *p = c->cur->part;
    bool counted = c->cur->gen == p->gen;
    uint32_t bufs = c->bufs_used;
    chunk_release(c, c->cur);
    c->cur = NULL;
    int64_t now = clock_mono_ms();
    if (c->bufs_used < bufs ||
        (counted && p->chunks + 1 == c->cfg.fetches_inflight && fetchable(c, p, now))) {
        send_fetches(c, now);
    }
}

/* The next record from what is buffered: 1 with c->msg, 0 when nothing is
 * buffered, or an error (bad bytes: the partition pauses until a seek). */
static int next_record(nagare_consumer *c)
{
    for (;;) {
        if (c->cur == NULL) {
            struct cchunk *k = c->chunk_head;
            if (k == NULL) {
                return 0;
            }
            c->chunk_head = k->next;
            if (c->chunk_head == NULL) {
                c->chunk_tail = NULL;
            }
            k->next = NULL;
            c->cur = k;
            c->br_open = false;
            /* A partition's error (from a later answer) waits until what
             * was buffered before it is read: pending_error(). */
            if (k->gen != k->part->gen) {
                chunk_done(c);
                continue;
            }
        }
        struct cpart *p = c->cur->part;
        int rc = c->br_open ? 0 : batch_next(c);
        if (rc == 0 && !c->br_open) {
            chunk_done(c);
            continue;
        }
        struct batch_record rec;
        rc = rc < 0 ? rc : batch_reader_next(&c->br, &rec);
        if (rc == 0) {
            c->br_open = false;
            continue;
        }
        if (rc == 1 && rec.offset < p->position) {
            continue; /* the fetch's first batch may start before the offset */
        }
        rc = rc == 1 ? cmsg_fill(&c->msg, p->topic, p->partition, &rec) : rc;
        if (rc != 0) {
            return read_failed(c, p, rc);
        }
        p->position = rec.offset + 1;
        return 1;
    }
}

/* A partition error not yet reported, returned once. */
static int pending_error(nagare_consumer *c)
{
    for (uint32_t i = 0; i < c->part_count; i++) {
        struct cpart *p = c->parts[i];
        if (p->err != 0 && !p->err_reported && p->chunks == 0) {
            p->err_reported = true;
            return p->err;
        }
    }
    return 0;
}

int nagare_consumer_poll(nagare_consumer *c, int timeout_ms, const struct nagare_message **out)
{
    ASSERT(c != NULL && out != NULL);
    if (c->group != NULL && cgroup_in_callback(c->group)) {
        return -NG_EBADARG;
    }
    /* Without a group (whose work may wait on the broker) the clock is read
     * only when nothing is buffered, so the deadline runs from there: a
     * clock read per record returned shows in a replay's profile. */
    int64_t deadline = timeout_ms < 0     ? INT64_MAX
                       : c->group != NULL ? clock_mono_ms() + timeout_ms
                                          : -1;
    for (;;) {
        /* Group work first: a rebalance drops revoked partitions' records
         * and runs its callback before any record is returned. */
        int rc = c->group != NULL ? cgroup_tick(c, c->group) : 0;
        if (rc != 0) {
            return rc;
        }
        rc = next_record(c);
        if (rc == 1) {
            /* Takes in the answers that came meanwhile, so the broker is
             * never held up by a full socket buffer while records are read
             * (the overlap fetches in flight are for), at a cost of one
             * read() per PUMP_BYTES. */
            if (c->pump_bytes >= PUMP_BYTES && c->fetches_out > 0) {
                c->pump_bytes = 0;
                for (uint32_t i = 0; i < c->brokers.count; i++) {
                    conn_pump(&c->brokers.all[i]->conn);
                }
            }
            *out = &c->msg.pub;
            return 1;
        }
        rc = rc == 0 ? pending_error(c) : rc;
        int64_t now = clock_mono_ms();
        rc = rc == 0 ? keep_connected(c, now) : rc;
        if (rc != 0) {
            return rc;
        }
        int64_t meta_at = metadata_upkeep(c, now);
        int64_t stall_at = stall_check(c, now);
        send_fetches(c, now);
        deadline = deadline < 0 ? now + timeout_ms : deadline;
        if (now >= deadline) {
            return 0;
        }
        int64_t until = deadline;
        int64_t b = next_backoff(c, now);
        until = b < until ? b : until;
        b = c->group != NULL ? cgroup_next_due_ms(c->group) : INT64_MAX;
        until = b < until ? b : until;
        b = next_redial(c);
        until = b < until ? b : until;
        until = meta_at < until ? meta_at : until;
        until = stall_at < until ? stall_at : until;
        int64_t wait = until > now ? until - now : 0;
        rc = brokers_poll(&c->brokers, (int)(wait < INT32_MAX ? wait : INT32_MAX));
        if (rc != 0) {
            return rc;
        }
    }
}

/* ---- for client/group.c (consumer_int.h) ---- */

struct client_conn *consumer_conn(nagare_consumer *c)
{
    return c->coordinator != NULL ? &c->coordinator->conn : boot_conn(c);
}

int consumer_group_call(nagare_consumer *c, uint16_t api_key, size_t need, conn_encode_fn encode,
                        conn_decode_fn decode, void *arg)
{
    struct cbroker *b = c->coordinator != NULL ? c->coordinator : c->brokers.boot;
    int64_t deadline = deadline_of(c);
    struct brokers_watch w;
    const struct conn_watch *watch =
        brokers_watch_init(&w, &c->brokers, b, PROTO_OFFSETS_TOPIC, 0, c->cfg.stall_ms, deadline);
    return conn_call_watched(&b->conn, api_key, need, encode, decode, arg, deadline, watch);
}

int consumer_coordinator_find(nagare_consumer *c)
{
    if (c->coordinator != NULL) {
        return 0;
    }
    struct cbroker *leader = NULL;
    int rc = leader_lookup(c, PROTO_OFFSETS_TOPIC, 0, &leader);
    if (rc == -NG_EUNKNOWN_TOPIC) {
        /* A single broker (or a cluster that has not made the topic yet:
         * its brokers answer NG_ENOT_COORDINATOR and make it). */
        leader = c->brokers.boot;
        rc = 0;
    }
    if (rc == 0 && leader == NULL) {
        rc = -NG_ENOT_COORDINATOR; /* no leader now: try later */
    }
    cbroker_coordinate(&c->coordinator, rc == 0 ? leader : NULL);
    return rc;
}

void consumer_coordinator_lost(nagare_consumer *c) { cbroker_coordinate(&c->coordinator, NULL); }

int consumer_list_offset(nagare_consumer *c, const char *topic, int32_t partition,
                         int64_t timestamp_ms, int64_t *out)
{
    const struct cpart *p = part_find(c, topic, partition);
    return leader_list_offset(c, p != NULL ? p->leader : NULL, topic, partition, timestamp_ms, out);
}

const struct nagare_consumer_config *consumer_cfg(const nagare_consumer *c) { return &c->cfg; }

int64_t consumer_deadline(const nagare_consumer *c) { return deadline_of(c); }

struct cgroup **consumer_group_slot(nagare_consumer *c) { return &c->group; }

int consumer_part_add(nagare_consumer *c, const char *topic, int32_t partition, int64_t offset,
                      int err)
{
    ASSERT(topic_arg_ok(topic, partition) && (offset >= 0 || err < 0));
    if (part_find(c, topic, partition) != NULL || c->part_count == ASSIGNED_MAX) {
        return -NG_EBADARG;
    }
    struct cpart *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return -ENOMEM;
    }
    p->topic_len = strlen(topic);
    memcpy(p->topic, topic, p->topic_len + 1);
    p->partition = partition;
    p->position = err < 0 ? 0 : offset;
    p->fetch_offset = p->position;
    p->behind = true;
    p->err = err;
    p->corrupt_end = -1;
    int rc = part_insert(c, p);
    if (rc != 0) {
        free(p);
        return rc;
    }
    c->meta_wanted = true; /* its leader */
    return 0;
}

/* Takes parts[i] out of the list; frees it unless a fetch still names it. */
static void part_remove_at(nagare_consumer *c, uint32_t i)
{
    struct cpart *p = c->parts[i];
    cbroker_lead(&p->leader, NULL);
    drop_chunks(c, p);
    p->gen++; /* answers in flight for it are ignored */
    p->fetching = false;
    memmove(&c->parts[i], &c->parts[i + 1], (c->part_count - i - 1) * sizeof(*c->parts));
    c->part_count--;
    if (p->fetch_refs == 0) {
        free(p);
    } else {
        p->removed = true;
    }
}

void consumer_part_remove(nagare_consumer *c, const char *topic, int32_t partition)
{
    for (uint32_t i = 0; i < c->part_count; i++) {
        if (c->parts[i]->partition == partition && strcmp(c->parts[i]->topic, topic) == 0) {
            part_remove_at(c, i);
            return;
        }
    }
}

void consumer_parts_clear(nagare_consumer *c)
{
    while (c->part_count > 0) {
        part_remove_at(c, c->part_count - 1);
    }
}

int nagare_consumer_assignment(nagare_consumer *c, const struct nagare_topic_partition **out,
                               size_t *count_out)
{
    ASSERT(c != NULL && out != NULL && count_out != NULL);
    struct nagare_topic_partition *v =
        realloc(c->view, (c->part_count > 0 ? c->part_count : 1) * sizeof(*v));
    if (v == NULL) {
        return -ENOMEM;
    }
    c->view = v;
    for (uint32_t i = 0; i < c->part_count; i++) {
        const struct cpart *p = c->parts[i];
        v[i] = (struct nagare_topic_partition){
            .topic = p->topic, .partition = p->partition, .offset = p->position, .err = p->err};
    }
    *out = v;
    *count_out = c->part_count;
    return 0;
}
