/*
 * broker/fetch.c — Fetch, with long polling.
 *
 * A fetch is answered at once when it can be (data, an error, or no wait
 * allowed). Otherwise it parks: a link on each partition it wants, and a
 * timer for its max wait. New data on a partition (the log's watcher) tries
 * the fetches parked there; the timer, a closing connection, a deleted topic
 * or a stopping broker answer with what there is. Batches are read from the
 * log straight into the answer buffer: no per-record work.
 */
#include <stdlib.h>

#include "base/log.h"
#include "broker/server.h"

/* Per partition in an answer: index, error, two offsets, records length;
 * per topic: name length and partition count. */
#define PARTITION_HEADER_BYTES 26
#define TOPIC_HEADER_BYTES 6
#define ANSWER_HEADER_BYTES 64

struct fetch_req;

struct fetch_link {
    struct fetch_link *prev;
    struct fetch_link *next;
    struct fetch_req *fr;
    struct bpart *bp;
    bool linked;
};

struct fetch_part {
    struct proto_str topic; /* into the frame */
    int32_t partition;
    int64_t offset;
    int32_t bytes_max;
    struct bpart *bp;       /* NULL: unknown topic or partition */
    struct fetch_link link;
};

struct fetch_req {
    struct loop_req *req;
    struct server *s;
    uint32_t correlation_id;
    uint16_t version;
    struct proto_fetch_req in;
    uint64_t wake_seq;      /* the last fetch_wake() that tried it */
    uint32_t count;
    struct loop_timer timer;
    struct fetch_part parts[];
};

/* ---- parking ---- */

static void park(struct fetch_req *fr, uint32_t wait_ms)
{
    for (uint32_t i = 0; i < fr->count; i++) {
        struct fetch_link *l = &fr->parts[i].link;
        struct bpart *bp = fr->parts[i].bp;
        if (bp == NULL) {
            continue;
        }
        *l = (struct fetch_link){.fr = fr, .bp = bp, .next = bp->waiters, .linked = true};
        if (bp->waiters != NULL) {
            bp->waiters->prev = l;
        }
        bp->waiters = l;
    }
    loop_timer_arm(&fr->s->loop, &fr->timer, wait_ms);
}

static void unpark(struct fetch_req *fr)
{
    (void)loop_timer_cancel(&fr->s->loop, &fr->timer);
    for (uint32_t i = 0; i < fr->count; i++) {
        struct fetch_link *l = &fr->parts[i].link;
        if (!l->linked) {
            continue;
        }
        if (l->prev != NULL) {
            l->prev->next = l->next;
        } else {
            l->bp->waiters = l->next;
        }
        if (l->next != NULL) {
            l->next->prev = l->prev;
        }
        l->linked = false;
    }
}

/* ---- answering ---- */

/* Whether a partition has something to say: data, or an error. */
static bool part_has_news(const struct fetch_part *fp)
{
    if (fp->bp == NULL || fp->bytes_max < 0) {
        return true;
    }
    const struct part *log = &fp->bp->log;
    return fp->offset != part_offset_latest(log) || fp->offset >= log->corrupt_offset;
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

/* The answer's size bound, from the bytes really there: a buffer sized by
 * the limits alone would hold megabytes for a consumer that is caught up,
 * and answers waiting on a client that does not read would spend the
 * loop's memory budget on empty space. */
static size_t answer_cap(const struct fetch_req *fr)
{
    size_t bytes = ANSWER_HEADER_BYTES;
    uint64_t data = 0;
    uint64_t overshoot = 0; /* a partition's first batch past the budget */
    for (uint32_t i = 0; i < fr->count; i++) {
        const struct fetch_part *fp = &fr->parts[i];
        bool new_topic = i == 0 || fp->topic.ptr != fr->parts[i - 1].topic.ptr;
        bytes += PARTITION_HEADER_BYTES + (new_topic ? TOPIC_HEADER_BYTES + (size_t)fp->topic.len : 0);
        uint64_t part = part_answer_bytes(fp);
        data += part;
        overshoot = part > overshoot ? part : overshoot;
    }
    uint64_t budget = (uint64_t)fr->in.bytes_max + overshoot;
    data = data < budget ? data : budget;
    uint64_t cap = bytes + data;
    uint64_t limit = fr->s->cfg.frame_bytes_max;
    return (size_t)(cap < limit ? cap : limit);
}

/* Adds one partition's answer, reading batches into the buffer. */
static void answer_part(struct proto_enc *e, struct wr *w, const struct fetch_part *fp,
                        uint64_t *budget, uint64_t *records_total)
{
    struct proto_fetch_resp_partition out = {.partition = fp->partition, .offset_earliest = -1,
                                             .offset_latest = -1};
    if (fp->bp == NULL) {
        out.err = -NG_EUNKNOWN_TOPIC;
        proto_fetch_resp_partition(e, &out);
        return;
    }
    struct part *log = &fp->bp->log;
    out.offset_earliest = part_offset_earliest(log);
    out.offset_latest = part_offset_latest(log);
    if (fp->bytes_max < 0) {
        out.err = -NG_EBADARG; /* docs/protocol.md, Fetch: per partition */
    } else if (fp->offset < out.offset_earliest || fp->offset > out.offset_latest) {
        out.err = -NG_EOFFSET_RANGE;
    } else if (fp->offset >= log->corrupt_offset) {
        out.err = -NG_ECORRUPT;
    }
    proto_fetch_resp_partition_begin(e, &out);
    size_t room = w->err == 0 ? w->cap - w->pos : 0;
    uint64_t limit = (uint64_t)fp->bytes_max < *budget ? (uint64_t)fp->bytes_max : *budget;
    if (out.err == 0 && room > 0 && limit > 0) {
        struct part_read_result r;
        int rc = part_read(log, fp->offset, w->ptr + w->pos, room, (size_t)limit, &r);
        if (rc == 0) {
            (void)wr_take(w, r.bytes); /* the bytes are in place already */
            *records_total += r.bytes;
            *budget -= r.bytes < *budget ? r.bytes : *budget;
        } else if (rc != -NG_ETOOBIG) {
            log_warn("fetch %s/%d at %lld: %s", fp->bp->topic->name, fp->partition,
                     (long long)fp->offset, err_str(rc));
        }
    }
    proto_fetch_resp_partition_end(e);
}

/* Builds the answer; when final, or when it holds bytes_min record bytes,
 * unparks fr, sends the answer and frees fr. Returns whether it was sent
 * (else fr stays as it was, parked or not). */
static bool try_answer(struct fetch_req *fr, bool final)
{
    struct wr w;
    int rc = server_resp_open(fr->req, answer_cap(fr), &w);
    if (rc != 0) {
        unpark(fr);
        server_resp_error(fr->req, fr->correlation_id, rc);
        free(fr);
        return true;
    }
    struct proto_enc e;
    proto_fetch_resp_begin(&e, &w, fr->version, fr->correlation_id);
    uint64_t budget = (uint64_t)fr->in.bytes_max;
    uint64_t records = 0;
    for (uint32_t i = 0; i < fr->count; i++) {
        const struct fetch_part *fp = &fr->parts[i];
        if (i == 0 || fp->topic.ptr != fr->parts[i - 1].topic.ptr) {
            proto_enc_topic(&e, fp->topic);
        }
        answer_part(&e, &w, fp, &budget, &records);
    }
    if (!final && records < (uint64_t)(fr->in.bytes_min > 0 ? fr->in.bytes_min : 1)) {
        return false; /* the buffer stays the request's, reused next time */
    }
    unpark(fr);
    rc = proto_enc_end(&e);
    if (rc != 0) {
        server_resp_error(fr->req, fr->correlation_id, rc);
    } else {
        server_resp_send(fr->req, &w);
    }
    free(fr);
    return true;
}

static bool has_news(const struct fetch_req *fr, bool *errors)
{
    bool any = false;
    *errors = false;
    for (uint32_t i = 0; i < fr->count; i++) {
        const struct fetch_part *fp = &fr->parts[i];
        bool news = part_has_news(fp);
        any |= news;
        *errors |= news && (fp->bp == NULL || fp->bytes_max < 0 || fp->offset > part_offset_latest(&fp->bp->log) ||
                            fp->offset < part_offset_earliest(&fp->bp->log) ||
                            fp->offset >= fp->bp->log.corrupt_offset);
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

void fetch_wake(struct bpart *bp)
{
    /* Answering unlinks fetches from the list: start over after each, and
     * try each fetch at most once per wake. */
    uint64_t seq = ++bp->server->fetch_wake_seq;
    struct fetch_link *l = bp->waiters;
    while (l != NULL) {
        struct fetch_req *fr = l->fr;
        bool errors;
        if (fr->wake_seq != seq) {
            fr->wake_seq = seq;
            if (has_news(fr, &errors) && try_answer(fr, errors)) {
                l = bp->waiters;
                continue;
            }
        }
        l = l->next;
    }
}

void fetch_abandon(struct bpart *bp)
{
    while (bp->waiters != NULL) {
        (void)try_answer(bp->waiters->fr, true);
    }
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
            fr->parts[i++] = (struct fetch_part){
                .topic = t.name, .partition = p.partition, .offset = p.offset,
                .bytes_max = p.bytes_max, .bp = known ? &st->parts[p.partition] : NULL};
        }
    }
    ASSERT(i == fr->count);
}

static uint32_t count_partitions(struct proto_dec d)
{
    uint32_t n = 0;
    struct proto_topic t;
    struct proto_fetch_req_partition p;
    while (proto_next_topic(&d, &t)) {
        while (proto_fetch_req_next_partition(&d, &p)) {
            n++;
        }
    }
    return n;
}

void handle_fetch(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                  struct rd *body)
{
    struct proto_fetch_req in;
    struct proto_dec d;
    int rc = proto_fetch_req_decode(body, h->api_version, &in, &d);
    uint32_t count = rc == 0 ? count_partitions(d) : 0;
    struct fetch_req *fr = rc == 0 ? calloc(1, sizeof(*fr) + count * sizeof(fr->parts[0])) : NULL;
    if (fr == NULL) {
        server_resp_error(req, h->correlation_id, rc != 0 ? rc : -ENOMEM);
        return;
    }
    *fr = (struct fetch_req){.req = req, .s = s, .correlation_id = h->correlation_id,
                             .version = h->api_version, .in = in, .count = count};
    loop_timer_init(&fr->timer, on_timeout, fr);
    resolve(s, fr, d);
    bool errors;
    if (in.wait_max_ms == 0 || s->loop.stopping) {
        (void)try_answer(fr, true);
        return;
    }
    if (has_news(fr, &errors) && try_answer(fr, errors)) {
        return;
    }
    uint32_t wait = (uint32_t)in.wait_max_ms;
    loop_req_on_abort(req, on_abort, fr);
    park(fr, wait < s->cfg.fetch_wait_max_ms ? wait : s->cfg.fetch_wait_max_ms);
}
