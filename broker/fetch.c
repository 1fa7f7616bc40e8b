/*
 * broker/fetch.c — Fetch, with long polling.
 *
 * A fetch is answered at once when it can be (data, an error, or no wait
 * allowed). Otherwise it parks: a link on each partition it wants, and a
 * timer for its max wait. New data on a partition (the log's watcher) tries
 * the fetches parked there; the timer, a closing connection, a deleted topic
 * or a stopping broker answer with what there is.
 *
 * Batches are not copied through the broker: the answer buffer holds the
 * headers, and each partition's batches go out as file parts (net/loop.h,
 * loop_resp_file) spliced from the segment files, the ranges
 * part_read_ranges() gives: the same whole batches part_read() would copy.
 * Each part holds a dup of its segment's descriptor, so retention or a
 * topic delete may close and unlink the segment while it is being sent.
 * Bytes this process has not checksum-checked yet (sealed segments after a
 * restart), a partition that found damage, or a loop out of file parts
 * or descriptors take the old way: part_read() into the answer buffer,
 * which checks every batch (docs/reliability.md, "Corruption").
 *
 * ReplicaFetch, a follower's fetch from the leader (docs/cluster.md), takes
 * the same path with three differences: each partition is first checked
 * against the leader's epoch and its durable offset noted (which may move
 * the high watermark); it reads past the high watermark, up to what the
 * leader has written (part_read_ranges_to); and it parks for the log's
 * durable growth (PARK_REPLICA) rather than for readers' (PARK_DATA).
 *
 * Kafka's Fetch (broker/kafka_serve.h) takes the same path too: the same
 * partitions, plan, parking and file parts; only its answer is encoded
 * otherwise (net/kafka/codec.h: the records are the codec's holes, where
 * the file parts go), and a partition that must be copied is read into a
 * buffer of its own first.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "broker/acl_serve.h"
#include "broker/kafka_serve.h"
#include "broker/server.h"
#include "net/kafka/errors.h"

/* An answer's frame prefix, header and topic count, with room to spare. */
#define ANSWER_HEADER_BYTES 64

/* Bounds of a Kafka Fetch answer's partition (v12: fixed fields, null
 * aborted transactions, the records' length and empty tag sections: 52
 * bytes) and of a topic's entry besides its name (length, count, tags). */
#define KAFKA_FETCH_PARTITION_BYTES 64
#define KAFKA_FETCH_TOPIC_BYTES(name_len) (12 + (size_t)(name_len))

/* File ranges in one answer: one per segment a partition's read touches.
 * A read that would need more stops at a batch boundary (the consumer asks
 * again from there); only segments far smaller than a fetch get near it. */
#define FETCH_RANGES_MAX 64

struct fetch_part {
    struct proto_str topic; /* into the frame */
    int32_t partition;
    int64_t offset;
    int32_t bytes_max;
    struct bpart *bp;     /* NULL: unknown topic or partition */
    int refused;          /* the leader's checks (ReplicaFetch) or the ACLs refused it (bp NULL) */
    int32_t leader_epoch; /* ReplicaFetch: the follower's; Kafka's: the consumer's, or -1 */
    struct park_link link;
    /* this answer's plan: file ranges, or a copy of up to copy_limit bytes */
    uint32_t range_first;
    uint32_t range_count;
    uint64_t range_bytes;
    int64_t sent_next;   /* past the batches planned or copied: records out */
    uint64_t copy_limit; /* 0: nothing to copy */
    size_t range_at;     /* where its ranges go in the answer buffer */
    uint8_t *copy;       /* Kafka's answer: the copied batches (malloc) */
    size_t copy_bytes;
    int read_err; /* Kafka's answer: what reading the copy found (damage) */
};

/* The file ranges of the answer being built (on try_answer()'s stack). */
struct fetch_ranges {
    uint32_t count;
    struct part_range at[FETCH_RANGES_MAX];
};

/* The file parts of one answer, freed with the last one released. */
struct fetch_files;
struct fetch_file {
    struct loop_ext ext;
    struct fetch_files *set;
};
struct fetch_files {
    uint32_t live;
    struct fetch_file files[];
};

struct fetch_req {
    struct loop_req *req;
    struct server *s;
    uint32_t correlation_id;
    uint16_t version;
    bool replica; /* a ReplicaFetch */
    bool kafka;   /* Kafka's Fetch: answered by try_answer_kafka() */
    struct proto_fetch_req in;
    struct park_waiter waiter;
    bool copy_only; /* file parts failed once: copy this answer */
    uint32_t count;
    struct loop_timer timer;
    void *answer_space; /* after parts[]: Kafka's answer's arrays, or NULL */
    struct fetch_part parts[];
};

/* ---- parking ---- */

static void park(struct fetch_req *fr, uint32_t wait_ms)
{
    for (uint32_t i = 0; i < fr->count; i++) {
        struct bpart *bp = fr->parts[i].bp;
        if (bp != NULL) {
            park_add(&bp->waiters, &fr->parts[i].link, &fr->waiter);
        }
    }
    loop_timer_arm(&fr->s->loop, &fr->timer, wait_ms);
}

static void unpark(struct fetch_req *fr)
{
    (void)loop_timer_cancel(&fr->s->loop, &fr->timer);
    for (uint32_t i = 0; i < fr->count; i++) {
        park_remove(&fr->parts[i].link);
    }
}

/* ---- answering ---- */

/* Where reading resumes past the damaged range holding fp's offset, or -1
 * when it is in none. */
static int64_t damage_end(const struct fetch_part *fp)
{
    int64_t segment;
    struct seg_damage d;
    return part_corrupt_range(&fp->bp->log, fp->offset, &segment, &d) ? d.offset_end : -1;
}

/* Where a partition's answer may read to: the high watermark for a
 * consumer, everything written for a follower. */
static int64_t part_end(const struct fetch_req *fr, const struct fetch_part *fp)
{
    return fr->replica ? part_offset_written(&fp->bp->log) : part_offset_latest(&fp->bp->log);
}

/* Whether this broker may answer for the partition now: a follower's
 * fetch must match the leader's epoch, a consumer's must reach the leader
 * (leadership may move while it is parked), at the epoch a Kafka consumer
 * names (KIP-320). 0 or the error. */
static int part_refusal(const struct fetch_req *fr, const struct fetch_part *fp)
{
    if (fr->replica) {
        return replica_check_epoch(fp->bp, -1, fp->leader_epoch);
    }
    return fr->kafka ? replica_check_reader_epoch(fp->bp, fp->leader_epoch)
                     : replica_serving(fp->bp);
}

/* Whether a partition has something to say: data, or an error. */
static bool part_has_news(const struct fetch_req *fr, const struct fetch_part *fp)
{
    if (fp->bp == NULL || fp->bytes_max < 0 || part_refusal(fr, fp) != 0) {
        return true;
    }
    return fp->offset != part_end(fr, fp) || damage_end(fp) >= 0;
}

/* What one partition can add to an answer: its readable bytes from the
 * offset, within its limit, except that its first batch goes whole. */
static uint64_t part_answer_bytes(const struct fetch_part *fp)
{
    if (fp->bp == NULL || fp->bytes_max <= 0) {
        return 0;
    }
    uint32_t first;
    uint64_t avail = part_bytes_from(&fp->bp->log, fp->offset, &first);
    uint64_t limit = (uint64_t)fp->bytes_max > first ? (uint64_t)fp->bytes_max : first;
    return avail < limit ? avail : limit;
}

static bool new_topic(const struct fetch_req *fr, uint32_t i)
{
    return i == 0 || fr->parts[i].topic.ptr != fr->parts[i - 1].topic.ptr;
}

/* The answer's bytes besides the records: header, topics, partitions. */
static size_t answer_header_bytes(const struct fetch_req *fr)
{
    size_t bytes = ANSWER_HEADER_BYTES;
    size_t part_bytes = fr->replica ? PROTO_REPLICA_FETCH_RESP_PARTITION_BYTES
                                    : PROTO_FETCH_RESP_PARTITION_BYTES(fr->version);
    part_bytes = fr->kafka ? KAFKA_FETCH_PARTITION_BYTES : part_bytes;
    for (uint32_t i = 0; i < fr->count; i++) {
        size_t len = (size_t)fr->parts[i].topic.len;
        size_t topic = fr->kafka ? KAFKA_FETCH_TOPIC_BYTES(len) : PROTO_TOPIC_BYTES(len);
        bytes += part_bytes + (new_topic(fr, i) ? topic : 0);
    }
    return bytes;
}

/* The partition's error for this answer (0: records may follow). */
static int part_error(const struct fetch_req *fr, const struct fetch_part *fp)
{
    if (fp->bp == NULL) {
        return fp->refused != 0 ? fp->refused : -NG_EUNKNOWN_TOPIC;
    }
    const struct part *log = &fp->bp->log;
    if (fp->bytes_max < 0) {
        return -NG_EBADARG; /* docs/protocol.md, Fetch: per partition */
    }
    int rc = part_refusal(fr, fp);
    if (rc != 0) {
        return rc;
    }
    if (fp->offset < part_offset_earliest(log) || fp->offset > part_end(fr, fp)) {
        return -NG_EOFFSET_RANGE;
    }
    return damage_end(fp) >= 0 ? -NG_ECORRUPT : 0;
}

/* Decides how each partition answers: file ranges where part_read_ranges()
 * gives them, else a copy, sized from the bytes really there (a buffer
 * sized by the limits alone would hold megabytes for a consumer that is
 * caught up, and answers waiting on a client that does not read would
 * spend the loop's memory on empty space). A copied partition counts
 * against the request's bytes_max by that size, an upper bound of what it
 * copies, so partitions after it in the same answer may get a little less
 * than an all-copy answer gave them. Returns the answer buffer's size:
 * headers and the copies. */
static size_t plan(struct fetch_req *fr, struct fetch_ranges *rs)
{
    size_t header = answer_header_bytes(fr);
    uint64_t frame_max = fr->s->cfg.frame_bytes_max;
    uint64_t data = 0; /* ranges and copies, as planned */
    uint64_t copies = 0;
    uint64_t budget = (uint64_t)fr->in.bytes_max;
    uint32_t room = fr->copy_only ? 0 : loop_resp_file_room(fr->req);
    room = room < FETCH_RANGES_MAX ? room : FETCH_RANGES_MAX;
    rs->count = 0;
    for (uint32_t i = 0; i < fr->count; i++) {
        struct fetch_part *fp = &fr->parts[i];
        fp->range_first = rs->count;
        fp->range_count = 0;
        fp->range_bytes = 0;
        fp->copy_limit = 0;
        fp->sent_next = fp->offset;
        uint64_t limit = (uint64_t)fp->bytes_max < budget ? (uint64_t)fp->bytes_max : budget;
        if (part_error(fr, fp) != 0 || limit == 0 || header + data >= frame_max) {
            continue;
        }
        uint64_t cap = frame_max - header - data;
        int rc = -EAGAIN;
        if (rs->count < room) {
            struct part_read_result r;
            rc = part_read_ranges_to(&fp->bp->log, fp->offset, part_end(fr, fp), (size_t)cap,
                                     (size_t)limit, rs->at + rs->count, room - rs->count,
                                     &fp->range_count, &r);
            fp->range_bytes = rc == 0 ? r.bytes : 0;
            fp->range_count = rc == 0 ? fp->range_count : 0;
            fp->sent_next = r.offset_next;
        }
        if (rc == -EAGAIN) { /* copy it: at most what is there */
            uint64_t est = part_answer_bytes(fp);
            fp->copy_limit = limit;
            est = est < cap ? est : cap;
            copies += est;
            data += est;
            budget -= est < budget ? est : budget;
        } else if (rc == 0) {
            rs->count += fp->range_count;
            data += fp->range_bytes;
            budget -= fp->range_bytes < budget ? fp->range_bytes : budget;
        } else if (rc != -NG_ETOOBIG) {
            log_warn("fetch %s/%d at %lld: %s", fp->bp->topic->name, fp->partition,
                     (long long)fp->offset, err_str(rc));
        }
    }
    uint64_t cap = header + copies;
    return (size_t)(cap < frame_max ? cap : frame_max);
}

/* Opens one partition's answer in the message fr answers. */
static void answer_part_begin(const struct fetch_req *fr, struct proto_enc *e,
                              const struct proto_fetch_resp_partition *out)
{
    if (fr->replica) {
        struct proto_replica_fetch_resp_partition r = {.partition = out->partition,
                                                       .err = out->err,
                                                       .high_watermark = out->offset_latest,
                                                       .log_start = out->offset_earliest};
        proto_replica_fetch_resp_partition_begin(e, &r);
    } else {
        proto_fetch_resp_partition_begin(e, out);
    }
}

/* Counts what fp's answer sends: bytes, and records past the offset asked
 * for (a first batch that began before it counts from it). Two additions
 * per partition answered, nothing per record. An answer to a connection
 * gone meanwhile (a long poll its consumer left) is not sent: not
 * counted. */
static void count_out(const struct fetch_req *fr, const struct fetch_part *fp, uint64_t bytes)
{
    if (!loop_req_connected(fr->req)) {
        return;
    }
    fp->bp->counters.bytes_out += bytes;
    if (fp->sent_next > fp->offset) {
        fp->bp->counters.records_out += (uint64_t)(fp->sent_next - fp->offset);
    }
}

/* Adds one partition's answer: its planned ranges (declared; attached
 * once the frame is whole), or its batches copied into the buffer.
 * Returns true when its read found damage (the answer has news). */
static bool answer_part(const struct fetch_req *fr, struct proto_enc *e, struct wr *w,
                        struct fetch_part *fp, uint64_t *records_total)
{
    struct proto_fetch_resp_partition out = {.partition = fp->partition,
                                             .offset_earliest = -1,
                                             .offset_latest = -1,
                                             .offset_resume = -1,
                                             .err = part_error(fr, fp)};
    if (fp->bp == NULL || part_refusal(fr, fp) != 0) {
        answer_part_begin(fr, e, &out);
        proto_fetch_resp_partition_end(e);
        return false;
    }
    bool damaged = false;
    struct part *log = &fp->bp->log;
    out.offset_earliest = part_offset_earliest(log);
    out.offset_latest = part_offset_latest(log);
    out.offset_resume = out.err == -NG_ECORRUPT ? damage_end(fp) : -1;
    answer_part_begin(fr, e, &out);
    fp->range_at = w->pos;
    if (fp->range_count > 0) {
        proto_fetch_resp_spliced(e, fp->range_bytes);
        *records_total += fp->range_bytes;
        count_out(fr, fp, fp->range_bytes);
    }
    size_t room = w->err == 0 ? w->cap - w->pos : 0;
    if (out.err == 0 && fp->copy_limit > 0 && room > 0) {
        struct part_read_result r;
        int rc = part_read_to(log, fp->offset, part_end(fr, fp), w->ptr + w->pos, room,
                              (size_t)fp->copy_limit, &r);
        if (rc == 0) {
            (void)wr_take(w, r.bytes); /* the bytes are in place already */
            *records_total += r.bytes;
            fp->sent_next = r.offset_next;
            count_out(fr, fp, r.bytes);
        } else if (rc == -NG_ECORRUPT && fp->range_count == 0) {
            proto_fetch_resp_partition_fail(e, rc, damage_end(fp)); /* found by this read */
            damaged = true;
        } else if (rc != -NG_ETOOBIG) {
            log_warn("fetch %s/%d at %lld: %s", fp->bp->topic->name, fp->partition,
                     (long long)fp->offset, err_str(rc));
        }
    }
    proto_fetch_resp_partition_end(e);
    return damaged;
}

static void file_release(struct loop_ext *ext)
{
    struct fetch_file *f = (struct fetch_file *)ext;
    close(ext->fd);
    if (--f->set->live == 0) {
        free(f->set);
    }
}

/* Attaches the planned ranges to the answer, each with a dup of its
 * segment's descriptor. Returns 0, or -errno (nothing attached). */
static int attach_files(struct fetch_req *fr, const struct fetch_ranges *rs)
{
    if (rs->count == 0) {
        return 0;
    }
    struct fetch_files *set = malloc(sizeof(*set) + rs->count * sizeof(set->files[0]));
    if (set == NULL) {
        return -ENOMEM;
    }
    for (uint32_t k = 0; k < rs->count; k++) {
        set->files[k].ext.fd = fcntl(rs->at[k].fd, F_DUPFD_CLOEXEC, 0);
        if (set->files[k].ext.fd < 0) {
            int rc = -errno;
            while (k-- > 0) {
                close(set->files[k].ext.fd);
            }
            free(set);
            return rc;
        }
    }
    set->live = rs->count;
    for (uint32_t i = 0; i < fr->count; i++) {
        const struct fetch_part *fp = &fr->parts[i];
        for (uint32_t k = fp->range_first; k < fp->range_first + fp->range_count; k++) {
            struct fetch_file *f = &set->files[k];
            f->set = set;
            f->ext.off = rs->at[k].pos;
            f->ext.len = (size_t)rs->at[k].bytes;
            f->ext.release = file_release;
            int rc = loop_resp_file(fr->req, &f->ext, fp->range_at);
            ASSERT(rc == 0); /* room was counted when planning, on this thread */
        }
    }
    return 0;
}

/* Builds nagare's answer; as try_answer(). */
static bool try_answer_proto(struct fetch_req *fr, bool final)
{
    struct fetch_ranges rs;
    struct wr w;
    int rc = server_resp_open(fr->req, plan(fr, &rs), &w);
    if (rc != 0) {
        unpark(fr);
        server_resp_error(fr->req, fr->correlation_id, rc);
        free(fr);
        return true;
    }
    struct proto_enc e;
    if (fr->replica) {
        proto_replica_fetch_resp_begin(&e, &w, fr->version, fr->correlation_id);
    } else {
        proto_fetch_resp_begin(&e, &w, fr->version, fr->correlation_id);
    }
    uint64_t records = 0;
    for (uint32_t i = 0; i < fr->count; i++) {
        struct fetch_part *fp = &fr->parts[i];
        if (new_topic(fr, i)) {
            proto_enc_topic(&e, fp->topic);
        }
        final |= answer_part(fr, &e, &w, fp, &records);
    }
    if (!final && records < (uint64_t)(fr->in.bytes_min > 0 ? fr->in.bytes_min : 1)) {
        return false; /* the buffer stays the request's, reused next time */
    }
    unpark(fr);
    rc = proto_enc_end(&e);
    if (rc == 0) {
        rc = attach_files(fr, &rs);
        if (rc != 0) { /* out of descriptors or memory: copy instead */
            log_debug("fetch: file parts: %s; copying", err_str(rc));
            fr->copy_only = true;
            return try_answer_proto(fr, true);
        }
        server_resp_send(fr->req, &w);
    } else {
        server_resp_error(fr->req, fr->correlation_id, rc);
    }
    free(fr);
    return true;
}

static bool try_answer_kafka(struct fetch_req *fr, bool final);

/* Builds the answer; when final, or when it holds bytes_min record bytes,
 * unparks fr, sends the answer and frees fr. Returns whether it was sent
 * (else fr stays as it was, parked or not). */
static bool try_answer(struct fetch_req *fr, bool final)
{
    return fr->kafka ? try_answer_kafka(fr, final) : try_answer_proto(fr, final);
}

static bool has_news(const struct fetch_req *fr, bool *errors)
{
    bool any = false;
    *errors = false;
    for (uint32_t i = 0; i < fr->count; i++) {
        const struct fetch_part *fp = &fr->parts[i];
        bool news = part_has_news(fr, fp);
        any |= news;
        *errors |= news && (fp->bp == NULL || part_error(fr, fp) != 0);
    }
    return any;
}

static void on_timeout(struct loop_timer *t, void *arg)
{
    (void)t;
    (void)try_answer(arg, true);
}

static void on_abort(struct loop_req *req, void *arg)
{
    (void)req;
    (void)try_answer(arg, true); /* the loop drops it: the connection is gone */
}

static bool on_wake(struct park_waiter *w)
{
    struct fetch_req *fr = container_of(w, struct fetch_req, waiter);
    bool errors;
    return has_news(fr, &errors) && try_answer(fr, errors);
}

static void on_abandon(struct park_waiter *w)
{
    (void)try_answer(container_of(w, struct fetch_req, waiter), true);
}

/* Resolves the partitions a fetch names; unknown ones get bp NULL. */
static void resolve(struct server *s, struct fetch_req *fr, struct proto_dec d)
{
    struct proto_topic t;
    uint32_t i = 0;
    while (proto_next_topic(&d, &t)) {
        struct server_topic *st = server_topic_find(s, t.name);
        struct proto_fetch_req_partition p;
        while (proto_fetch_req_next_partition(&d, &p)) {
            bool known = st != NULL && p.partition >= 0 && p.partition < st->cfg.partitions;
            fr->parts[i++] = (struct fetch_part){.topic = t.name,
                                                 .partition = p.partition,
                                                 .offset = p.offset,
                                                 .bytes_max = p.bytes_max,
                                                 .bp = known ? &st->parts[p.partition] : NULL};
        }
    }
    ASSERT(i == fr->count);
}

/* Answers fr at once or parks it; fr is resolved. */
static void fetch_start(struct server *s, struct loop_req *req, struct fetch_req *fr,
                        int32_t wait_max_ms)
{
    loop_timer_init(&fr->timer, on_timeout, fr);
    park_waiter_init(&fr->waiter, fr->replica ? PARK_REPLICA : PARK_DATA, on_wake, on_abandon);
    bool errors;
    if (wait_max_ms == 0 || s->loop.stopping) {
        (void)try_answer(fr, true);
        return;
    }
    if (has_news(fr, &errors) && try_answer(fr, errors)) {
        return;
    }
    uint32_t wait = (uint32_t)wait_max_ms;
    loop_req_on_abort(req, on_abort, fr);
    park(fr, wait < s->cfg.fetch_wait_max_ms ? wait : s->cfg.fetch_wait_max_ms);
}

/* A request of count partitions, with answer_part_bytes per partition for
 * its answer's arrays in the same block (Kafka's; one allocation per
 * request on the fetch path). */
static struct fetch_req *fetch_req_new(struct server *s, struct loop_req *req,
                                       uint32_t correlation_id, uint16_t version, uint32_t count,
                                       size_t answer_part_bytes)
{
    struct fetch_req *fr =
        calloc(1, sizeof(*fr) + count * (sizeof(fr->parts[0]) + answer_part_bytes));
    if (fr != NULL) {
        *fr = (struct fetch_req){.req = req,
                                 .s = s,
                                 .correlation_id = correlation_id,
                                 .version = version,
                                 .count = count,
                                 .answer_space = answer_part_bytes > 0 ? &fr->parts[count] : NULL};
    }
    return fr;
}

void handle_fetch(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                  struct rd *body)
{
    struct proto_fetch_req in;
    struct proto_dec d;
    int rc = proto_fetch_req_decode(body, h->api_version, &in, &d);
    struct fetch_req *fr =
        rc == 0 ? fetch_req_new(s, req, h->correlation_id, h->api_version, d.partition_count, 0)
                : NULL;
    if (fr == NULL) {
        server_resp_error(req, h->correlation_id, rc != 0 ? rc : -ENOMEM);
        return;
    }
    fr->in = in;
    resolve(s, fr, d);
    fetch_start(s, req, fr, in.wait_max_ms);
}

/* Resolves a follower's partitions: each checked against the leader's
 * epoch and its replicas (refused ones get bp NULL and the error), and its
 * progress noted, which may move the high watermark. */
static void resolve_replica(struct server *s, struct fetch_req *fr, int32_t replica_id,
                            struct proto_dec d)
{
    struct proto_topic t;
    uint32_t i = 0;
    int64_t now_ms = (int64_t)loop_now_ms(&s->loop);
    while (proto_next_topic(&d, &t)) {
        struct server_topic *st = server_topic_find(s, t.name);
        struct proto_replica_fetch_req_partition p;
        while (proto_replica_fetch_req_next_partition(&d, &p)) {
            bool known = st != NULL && p.partition >= 0 && p.partition < st->cfg.partitions;
            struct bpart *bp = known ? &st->parts[p.partition] : NULL;
            int rc = bp != NULL ? replica_check_epoch(bp, replica_id, p.leader_epoch)
                                : -NG_EUNKNOWN_TOPIC;
            if (rc == 0) {
                replica_follower_fetched(bp, replica_id, p.fetch_offset, p.durable_offset, now_ms);
            }
            fr->parts[i++] = (struct fetch_part){.topic = t.name,
                                                 .partition = p.partition,
                                                 .offset = p.fetch_offset,
                                                 .bytes_max = fr->in.bytes_max,
                                                 .bp = rc == 0 ? bp : NULL,
                                                 .refused = rc,
                                                 .leader_epoch = p.leader_epoch};
        }
    }
    ASSERT(i == fr->count);
}

void handle_replica_fetch(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                          struct rd *body)
{
    struct proto_replica_fetch_req in;
    struct proto_dec d;
    int rc = proto_replica_fetch_req_decode(body, h->api_version, &in, &d);
    struct fetch_req *fr =
        rc == 0 ? fetch_req_new(s, req, h->correlation_id, h->api_version, d.partition_count, 0)
                : NULL;
    if (fr == NULL) {
        server_resp_error(req, h->correlation_id, rc != 0 ? rc : -ENOMEM);
        return;
    }
    fr->replica = true;
    fr->in = (struct proto_fetch_req){
        .wait_max_ms = in.wait_max_ms, .bytes_min = in.bytes_min, .bytes_max = in.bytes_max};
    resolve_replica(s, fr, in.replica_id, d);
    fetch_start(s, req, fr, in.wait_max_ms);
}

/* ---- Kafka's Fetch (broker/kafka_serve.h) ---- */

typedef struct kafka_fetch_response_partition_data kafka_part_answer;
typedef struct kafka_fetch_response_fetchable_topic_response kafka_topic_answer;

/* Kafka's answer's arrays, per partition of the request (at most one topic
 * each), in the request's own block. */
#define KAFKA_ANSWER_PART_BYTES (sizeof(kafka_part_answer) + sizeof(kafka_topic_answer))
static_assert(_Alignof(kafka_part_answer) <= _Alignof(struct fetch_part) &&
                  sizeof(kafka_part_answer) % _Alignof(kafka_topic_answer) == 0,
              "the partitions follow parts[] aligned, and the topics them");

static void kafka_copies_free(struct fetch_req *fr)
{
    for (uint32_t i = 0; i < fr->count; i++) {
        free(fr->parts[i].copy);
        fr->parts[i].copy = NULL;
        fr->parts[i].copy_bytes = 0;
    }
}

/* Reads fp's planned copy into a buffer of its own (part_read_to() checks
 * every batch), within *room bytes left of the frame for copies (less what
 * it read); damage found is fp->read_err. Returns the bytes read. */
static size_t kafka_copy(const struct fetch_req *fr, struct fetch_part *fp, uint64_t *room)
{
    fp->read_err = 0;
    uint64_t est = part_answer_bytes(fp);
    est = est < *room ? est : *room;
    if (fp->copy_limit == 0 || est == 0 || part_error(fr, fp) != 0) {
        return 0;
    }
    fp->copy = malloc((size_t)est);
    if (fp->copy == NULL) {
        return 0; /* this answer goes without it; the consumer asks again */
    }
    struct part_read_result r;
    int rc = part_read_to(&fp->bp->log, fp->offset, part_end(fr, fp), fp->copy, (size_t)est,
                          (size_t)fp->copy_limit, &r);
    if (rc == 0) {
        fp->copy_bytes = r.bytes;
        fp->sent_next = r.offset_next;
        *room -= r.bytes;
    } else if (rc == -NG_ECORRUPT) {
        fp->read_err = rc;
    } else if (rc != -NG_ETOOBIG) {
        log_warn("kafka fetch %s/%d at %lld: %s", fp->bp->topic->name, fp->partition,
                 (long long)fp->offset, err_str(rc));
    }
    return fp->copy_bytes;
}

/* One partition of Kafka's answer: its records the planned file ranges (a
 * hole of the encoding), its copy, or none. No transactions: the last
 * stable offset is the high watermark and no transaction was aborted. */
static void kafka_answer_part(const struct fetch_req *fr, const struct fetch_part *fp,
                              struct kafka_fetch_response_partition_data *out)
{
    static const uint8_t none[1];
    int err = fp->read_err != 0 ? fp->read_err : part_error(fr, fp);
    bool served = fp->bp != NULL && part_refusal(fr, fp) == 0;
    int64_t hw = served ? part_offset_latest(&fp->bp->log) : -1;
    *out = (struct kafka_fetch_response_partition_data){
        .partition_index = fp->partition,
        .error_code = kafka_err_from(err),
        .high_watermark = hw,
        .last_stable_offset = hw,
        .log_start_offset = served ? part_offset_earliest(&fp->bp->log) : -1,
        .diverging_epoch = {.epoch = -1, .end_offset = -1},
        .current_leader = {.leader_id = -1, .leader_epoch = -1},
        .snapshot_id = {.end_offset = -1, .epoch = -1},
        .aborted_transactions = {.items = NULL, .count = -1},
        .preferred_read_replica = -1,
        .records = {.ptr = none, .len = 0}};
    if (fp->range_count > 0) {
        out->records = (struct kw_records){.len = (int32_t)fp->range_bytes, .external = true};
        count_out(fr, fp, fp->range_bytes);
    } else if (fp->copy_bytes > 0) {
        out->records = (struct kw_records){.ptr = fp->copy, .len = (int32_t)fp->copy_bytes};
        count_out(fr, fp, fp->copy_bytes);
    }
}

/* Encodes and sends Kafka's answer with the planned file parts at its
 * holes. Returns 0 (sent, or the connection failed: logged), or
 * attach_files()'s error with nothing sent. */
static int kafka_send(struct fetch_req *fr, const struct fetch_ranges *rs,
                      struct kafka_fetch_response *resp)
{
    struct kafka_req_header h = {.api_key = KAFKA_API_FETCH,
                                 .api_version = (int16_t)fr->version,
                                 .correlation_id = (int32_t)fr->correlation_id};
    struct kw_wr m = kw_wr_measure();
    kafka_resp_header_encode(&m, h.api_key, h.api_version, h.correlation_id);
    int rc = kafka_encode(&kafka_fetch_response_msg, &m, h.api_version, resp);
    struct kw_hole holes[FETCH_RANGES_MAX];
    uint8_t *out = NULL;
    if (rc == 0) {
        ASSERT(m.hole_count <= FETCH_RANGES_MAX); /* one per partition with ranges */
        rc = loop_resp_buf(fr->req, m.w.pos, &out);
    }
    struct kw_wr w = kw_wr_make(out, m.w.pos, holes, m.hole_count);
    if (rc == 0) {
        kafka_resp_header_encode(&w, h.api_key, h.api_version, h.correlation_id);
        rc = kafka_encode(&kafka_fetch_response_msg, &w, h.api_version, resp);
        ASSERT(rc == 0 && w.w.pos == m.w.pos && w.hole_count == m.hole_count);
    }
    if (rc != 0) {
        log_warn("kafka: connection %" PRIu64 ": fetch answer: %s; closing",
                 loop_req_conn_id(fr->req), err_str(rc));
        loop_req_fail(fr->req);
        return 0;
    }
    uint32_t k = 0;
    for (uint32_t i = 0; i < fr->count; i++) {
        if (fr->parts[i].range_count > 0) {
            fr->parts[i].range_at = holes[k++].at;
        }
    }
    ASSERT(k == w.hole_count);
    rc = attach_files(fr, rs);
    if (rc == 0) {
        loop_req_respond(fr->req, w.w.pos);
    }
    return rc;
}

/* Kafka's answer, as try_answer(): the partitions grouped by topic as the
 * request named them, its arrays in the request's block (fetch_req_new()),
 * built afresh each time. */
static int kafka_answer(struct fetch_req *fr, const struct fetch_ranges *rs)
{
    kafka_part_answer *parts = fr->answer_space;
    kafka_topic_answer *topics = (kafka_topic_answer *)(parts + fr->count);
    memset(fr->answer_space, 0, fr->count * KAFKA_ANSWER_PART_BYTES);
    struct kafka_fetch_response resp;
    kafka_fetch_response_init(&resp);
    resp.responses.items = topics;
    kafka_topic_answer *t = NULL;
    for (uint32_t i = 0; i < fr->count; i++) {
        const struct fetch_part *fp = &fr->parts[i];
        if (new_topic(fr, i)) {
            t = &topics[resp.responses.count++];
            t->topic = kafka_serve_kw_str(fp->topic);
            t->partitions.items = &parts[i];
        }
        t->partitions.count++;
        kafka_answer_part(fr, fp, &parts[i]);
    }
    return kafka_send(fr, rs, &resp);
}

static bool try_answer_kafka(struct fetch_req *fr, bool final)
{
    struct fetch_ranges rs;
    /* The copies are read into buffers of their own, within the room the
     * plan left them in the frame. */
    size_t frame = plan(fr, &rs);
    size_t header = answer_header_bytes(fr);
    uint64_t room = frame > header ? frame - header : 0;
    uint64_t records = 0;
    for (uint32_t i = 0; i < fr->count; i++) {
        struct fetch_part *fp = &fr->parts[i];
        records += fp->range_bytes + kafka_copy(fr, fp, &room);
        final |= fp->read_err != 0;
    }
    if (!final && records < (uint64_t)(fr->in.bytes_min > 0 ? fr->in.bytes_min : 1)) {
        kafka_copies_free(fr);
        return false;
    }
    unpark(fr);
    int rc = kafka_answer(fr, &rs);
    kafka_copies_free(fr);
    if (rc != 0) { /* out of descriptors or memory: copy instead */
        log_debug("kafka fetch: file parts: %s; copying", err_str(rc));
        fr->copy_only = true;
        return try_answer_kafka(fr, true);
    }
    free(fr);
    return true;
}

/* The top-level answer to a request that asked for a fetch session, which
 * nagare does not keep (KIP-227: FETCH_SESSION_ID_NOT_FOUND; the client
 * then fetches without one). */
static void kafka_fetch_refuse(struct loop_req *req, const struct kafka_req_header *h, int16_t err)
{
    struct kafka_fetch_response resp;
    kafka_fetch_response_init(&resp);
    resp.error_code = err;
    kafka_serve_respond(req, h, &kafka_fetch_response_msg, &resp);
}

/* Sessionless (session id 0 in the answer, which tells a client that asked
 * to open one that none was made); the isolation level is ignored, there
 * being no transactions; a replica id is ignored (followers use nagare's
 * ReplicaFetch). Each partition's current leader epoch is checked
 * (replica_check_reader_epoch()). */
void kafka_fetch(struct server *s, struct loop_req *req, const struct kafka_req_header *h,
                 struct rd *body, struct kw_arena *a)
{
    struct kafka_fetch_request in;
    int rc = kafka_fetch_request_decode(body, h->api_version, a, &in);
    if (rc != 0) {
        log_debug("kafka: connection %" PRIu64 ": fetch: %s; closing", loop_req_conn_id(req),
                  err_str(rc));
        loop_req_fail(req);
        return;
    }
    if (in.session_id != 0) {
        kafka_fetch_refuse(req, h, KAFKA_ERR_FETCH_SESSION_ID_NOT_FOUND);
        return;
    }
    uint32_t count = 0;
    for (int32_t t = 0; t < in.topics.count; t++) {
        count += (uint32_t)in.topics.items[t].partitions.count;
    }
    struct fetch_req *fr = fetch_req_new(s, req, (uint32_t)h->correlation_id,
                                         (uint16_t)h->api_version, count, KAFKA_ANSWER_PART_BYTES);
    if (fr == NULL) {
        log_warn("kafka: fetch: %s; closing", err_str(-ENOMEM));
        loop_req_fail(req);
        return;
    }
    fr->kafka = true;
    fr->in = (struct proto_fetch_req){.wait_max_ms = in.max_wait_ms > 0 ? in.max_wait_ms : 0,
                                      .bytes_min = in.min_bytes,
                                      .bytes_max = in.max_bytes > 0 ? in.max_bytes : 0};
    uint32_t i = 0;
    for (int32_t t = 0; t < in.topics.count; t++) {
        const struct kafka_fetch_request_topic *ft = &in.topics.items[t];
        struct proto_str name = kafka_serve_proto_str(ft->topic);
        bool allowed =
            acl_serve_kafka(s, req, PROTO_ACL_RESOURCE_TOPIC, ft->topic, PROTO_ACL_OP_READ) == 0;
        struct server_topic *st = allowed ? server_topic_find(s, name) : NULL;
        for (int32_t p = 0; p < ft->partitions.count; p++) {
            const struct kafka_fetch_request_partition *fp = &ft->partitions.items[p];
            bool known = st != NULL && fp->partition >= 0 && fp->partition < st->cfg.partitions;
            fr->parts[i++] = (struct fetch_part){.topic = name,
                                                 .partition = fp->partition,
                                                 .offset = fp->fetch_offset,
                                                 .bytes_max = fp->partition_max_bytes,
                                                 .bp = known ? &st->parts[fp->partition] : NULL,
                                                 .refused = allowed ? 0 : -NG_EUNAUTHORIZED,
                                                 .leader_epoch = fp->current_leader_epoch};
        }
    }
    ASSERT(i == count);
    fetch_start(s, req, fr, fr->in.wait_max_ms);
}
