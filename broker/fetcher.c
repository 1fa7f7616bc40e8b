/*
 * broker/fetcher.c — a follower's fetchers (broker/fetcher.h): on the loop
 * the rounds of OffsetForLeaderEpoch and ReplicaFetch each carries over
 * its link to the leader (broker/peer.h, the transport thread).
 */
#include "broker/fetcher.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "broker/peer.h"
#include "broker/server.h"

#define FETCHER_CLIENT_ID "nagared-replica"

/* A partition in the round in flight, as it was when the request went. */
struct fetcher_sent {
    struct bpart *bp; /* NULL once detached */
    int32_t epoch;
    int64_t offset;           /* ReplicaFetch: its fetch offset */
    bool verify;              /* ReplicaFetch from the base of `last`, to compare it */
    struct batch_header last; /* the log's last batch, when verify */
};

struct fetcher {
    struct server *s;
    struct fetcher *next; /* s->fetchers */
    int32_t leader_id;
    /* the partitions followed here, in attach order */
    struct bpart **parts;
    uint32_t part_count;
    uint32_t part_cap;
    /* the round in flight (link.inflight) */
    uint16_t api;
    uint32_t corr;
    struct fetcher_sent *sent;
    uint32_t sent_count;
    uint32_t appends_pending; /* of the last answer, not yet complete */
    bool round_failed;        /* back off before the next round */
    int err_logged;           /* the error last logged, so each is logged once */
    struct loop_timer timer;
    bool stopping;
    struct peer link; /* the transport: its thread and connection */
};

/* The batches of one answer, kept until their appends complete. */
struct fetcher_append {
    struct part_append a;
    struct fetcher_batches *set;
    struct bpart *bp;
};

struct fetcher_batches {
    struct fetcher *f;
    uint8_t *frame;
    uint32_t refs;  /* appends in flight, + 1 while being placed */
    uint32_t count; /* apps used */
    uint32_t cap;   /* apps[] */
    struct fetcher_append apps[];
};

static void next_round(struct fetcher *f);
static void note_error(struct fetcher *f, const char *what, int rc);

/* ---- life ---- */

static void fetcher_free_if_done(struct fetcher *f)
{
    if (!f->stopping || !f->link.thread_done || f->appends_pending > 0) {
        return;
    }
    struct fetcher **link = &f->s->fetchers;
    while (*link != f) {
        link = &(*link)->next;
    }
    *link = f->next;
    peer_fini(&f->link);
    free(f->parts);
    free(f->sent);
    free(f);
}

static void on_link_exit(struct peer *p)
{
    fetcher_free_if_done(container_of(p, struct fetcher, link));
}

/* Tells the link's thread to end, waking it from its socket. */
static void fetcher_stop(struct fetcher *f)
{
    if (f->stopping) {
        return;
    }
    f->stopping = true;
    (void)loop_timer_cancel(&f->s->loop, &f->timer);
    for (uint32_t i = 0; i < f->part_count; i++) {
        f->parts[i]->rep.fetcher = NULL;
    }
    f->part_count = 0;
    for (uint32_t i = 0; i < f->sent_count; i++) {
        f->sent[i].bp = NULL;
    }
    peer_stop(&f->link);
}

static void on_timer(struct loop_timer *t, void *arg)
{
    (void)t;
    next_round(arg);
}

static void on_answer(struct peer *p, uint8_t *frame, struct rd *body, int rc);

static struct fetcher *fetcher_new(struct server *s, const struct cluster_broker *b)
{
    struct fetcher *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        return NULL;
    }
    f->s = s;
    f->leader_id = b->id;
    loop_timer_init(&f->timer, on_timer, f);
    /* Bounds a connect and every read and write: a leader that stops
     * answering (paused, cut off) is given up and dialled again. */
    int rc = peer_start(&f->link, s, b, "replication", FETCHER_WAIT_MS + FETCHER_IO_TIMEOUT_MS,
                        on_answer, on_link_exit);
    if (rc != 0) {
        free(f);
        return NULL;
    }
    f->next = s->fetchers;
    s->fetchers = f;
    log_info("following broker %d at %s:%u%s", b->id, b->host, b->port,
             f->link.tls != NULL ? " over TLS" : "");
    return f;
}

void fetcher_attach(struct server *s, struct bpart *bp, int32_t leader_id)
{
    ASSERT(bp->rep.fetcher == NULL && s->view != NULL);
    const struct cluster_broker *b = cluster_view_broker(s->view, leader_id);
    if (b == NULL) {
        log_info("topic %s partition %d: leader %d not live yet", bp->topic->name, bp->index,
                 leader_id);
        return;
    }
    struct fetcher *f = s->fetchers;
    while (f != NULL && (f->stopping || !peer_is(&f->link, b))) {
        f = f->next;
    }
    f = f != NULL ? f : fetcher_new(s, b);
    if (f != NULL && f->part_count == f->part_cap) {
        uint32_t cap = f->part_cap ? f->part_cap * 2 : 16;
        struct bpart **grown = realloc(f->parts, cap * sizeof(*grown));
        if (grown != NULL) {
            f->parts = grown;
            f->part_cap = cap;
        }
    }
    if (f == NULL || f->part_count == f->part_cap) {
        log_error("topic %s partition %d: cannot follow broker %d: %s", bp->topic->name, bp->index,
                  leader_id, err_str(-ENOMEM));
        if (f != NULL && f->part_count == 0) {
            fetcher_stop(f);
        }
        return;
    }
    f->parts[f->part_count++] = bp;
    bp->rep.fetcher = f;
    next_round(f);
}

void fetcher_detach(struct bpart *bp)
{
    struct fetcher *f = bp->rep.fetcher;
    ASSERT(f != NULL);
    bp->rep.fetcher = NULL;
    for (uint32_t i = 0; i < f->part_count; i++) {
        if (f->parts[i] == bp) {
            memmove(f->parts + i, f->parts + i + 1, (f->part_count - i - 1) * sizeof(*f->parts));
            f->part_count--;
            break;
        }
    }
    for (uint32_t i = 0; i < f->sent_count; i++) {
        if (f->sent[i].bp == bp) {
            f->sent[i].bp = NULL;
        }
    }
    if (f->part_count == 0) {
        fetcher_stop(f);
    }
}

void fetchers_stop(struct server *s)
{
    for (struct fetcher *f = s->fetchers; f != NULL; f = f->next) {
        fetcher_stop(f);
        peer_join(&f->link);
    }
}

/* ---- rounds: the requests ---- */

static bool sent_reserve(struct fetcher *f, uint32_t n)
{
    struct fetcher_sent *grown = realloc(f->sent, (n ? n : 1) * sizeof(*grown));
    if (grown == NULL) {
        return false;
    }
    f->sent = grown;
    return true;
}

/* Whether bp's log holds nothing (so there is nothing to truncate). */
static bool log_empty(const struct bpart *bp)
{
    return part_offset_next(&bp->log) == part_offset_earliest(&bp->log);
}

static int last_header(void *arg, const struct batch_header *h)
{
    *(struct batch_header *)arg = *h;
    return 0;
}

/* The header of the last batch of bp's log (not empty). Returns 0, or
 * part_for_each_batch_to()'s error (-NG_ECORRUPT when there is none to
 * read: the batch holding the end is damaged). */
static int last_batch(struct bpart *bp, struct batch_header *out)
{
    int64_t end = part_offset_next(&bp->log);
    out->offset_base = -1;
    int rc = part_for_each_batch_to(&bp->log, end - 1, end, last_header, out);
    if (rc == 0 && (out->offset_base < 0 || batch_offset_last(out) != end - 1)) {
        rc = -NG_ECORRUPT;
    }
    return rc;
}

/* Where bp's ReplicaFetch starts: its log end, or, while its last batch
 * is to be compared with the leader's (need_verify), that batch's base
 * offset: the leader answers from the batch holding it. The leader counts
 * the follower's durable offset only up to the fetch offset, so a tail
 * not yet compared is never counted toward the high watermark. */
static void fetch_from(struct fetcher *f, struct bpart *bp, struct fetcher_sent *sent)
{
    sent->offset = part_offset_next(&bp->log);
    if (!bp->rep.need_verify) {
        return;
    }
    if (log_empty(bp)) {
        bp->rep.need_verify = false; /* nothing it holds can differ */
        return;
    }
    int rc = last_batch(bp, &sent->last);
    if (rc != 0) {
        note_error(f, "reading the last batch", rc); /* its answer is not applied */
        return;
    }
    sent->verify = true;
    sent->offset = sent->last.offset_base;
}

/* Adds bp to the round's request, and its entry to f->sent: the epoch
 * whose end it asks (epochs: OffsetForLeaderEpoch), or its fetch
 * (ReplicaFetch). */
static void encode_partition(struct fetcher *f, struct proto_enc *e, struct bpart *bp, bool epochs)
{
    struct fetcher_sent *sent = &f->sent[f->sent_count++];
    *sent = (struct fetcher_sent){
        .bp = bp, .epoch = bp->rep.leader_epoch, .offset = part_offset_next(&bp->log)};
    if (epochs) {
        int32_t last = 0;
        int64_t end = 0;
        int rc = part_epoch_end_offset(&bp->log, INT32_MAX, &last, &end);
        struct proto_epoch_req_partition p = {.partition = bp->index,
                                              .current_leader_epoch = bp->rep.leader_epoch,
                                              .leader_epoch = rc == 0 && last >= 0 ? last : 0};
        proto_epoch_req_partition(e, &p);
        return;
    }
    fetch_from(f, bp, sent);
    struct proto_replica_fetch_req_partition p = {.partition = bp->index,
                                                  .leader_epoch = bp->rep.leader_epoch,
                                                  .fetch_offset = sent->offset,
                                                  .durable_offset = part_offset_durable(&bp->log)};
    proto_replica_fetch_req_partition(e, &p);
}

/* Encodes the round's request into a new buffer: OffsetForLeaderEpoch for
 * the partitions that must truncate first, if any, else ReplicaFetch for
 * all. Returns 0 with *out (NULL when there is nothing to ask), or -errno /
 * the encoder's error. */
static int build_request(struct fetcher *f, uint8_t **out, size_t *len_out)
{
    *out = NULL;
    bool epochs = false;
    size_t need = 64 + sizeof(FETCHER_CLIENT_ID);
    for (uint32_t i = 0; i < f->part_count; i++) {
        struct bpart *bp = f->parts[i];
        if (bp->rep.need_truncate && log_empty(bp)) {
            bp->rep.need_truncate = false; /* nothing it holds can diverge */
        }
        epochs |= bp->rep.need_truncate;
        need += PROTO_TOPIC_BYTES(bp->topic->name_len) + PROTO_REPLICA_FETCH_REQ_PARTITION_BYTES;
    }
    if (f->part_count == 0) {
        return 0;
    }
    uint8_t *buf = malloc(need);
    if (buf == NULL || !sent_reserve(f, f->part_count)) {
        free(buf);
        return -ENOMEM;
    }
    struct wr w = wr_make(buf, need);
    struct proto_enc e;
    f->api = epochs ? PROTO_API_OFFSET_FOR_LEADER_EPOCH : PROTO_API_REPLICA_FETCH;
    f->corr++;
    struct proto_str cid = proto_str_make(FETCHER_CLIENT_ID);
    if (epochs) {
        proto_epoch_req_begin(&e, &w, 0, f->corr, cid);
    } else {
        struct proto_replica_fetch_req q = {.replica_id = f->s->broker_id,
                                            .wait_max_ms = FETCHER_WAIT_MS,
                                            .bytes_min = 1,
                                            .bytes_max = FETCHER_BYTES_MAX};
        proto_replica_fetch_req_begin(&e, &w, 0, f->corr, cid, &q);
    }
    f->sent_count = 0;
    const struct server_topic *topic = NULL;
    for (uint32_t i = 0; i < f->part_count; i++) {
        struct bpart *bp = f->parts[i];
        if (epochs && !bp->rep.need_truncate) {
            continue;
        }
        if (bp->topic != topic) {
            topic = bp->topic;
            proto_enc_topic(
                &e, (struct proto_str){.ptr = topic->name, .len = (int32_t)topic->name_len});
        }
        encode_partition(f, &e, bp, epochs);
    }
    int rc = proto_enc_end(&e);
    if (rc != 0) {
        free(buf);
        return rc;
    }
    *out = buf;
    *len_out = w.pos;
    return 0;
}

static void backoff(struct fetcher *f)
{
    loop_timer_arm(&f->s->loop, &f->timer, FETCHER_BACKOFF_MS);
}

/* Starts the next round when none is in flight, no append of the last
 * answer is pending and no backoff runs. */
static void next_round(struct fetcher *f)
{
    if (f->stopping || f->link.inflight || f->appends_pending > 0 || loop_timer_armed(&f->timer)) {
        return;
    }
    if (f->round_failed) {
        f->round_failed = false;
        backoff(f);
        return;
    }
    uint8_t *req;
    size_t len;
    int rc = build_request(f, &req, &len);
    if (rc != 0) {
        log_error("fetcher of broker %d: %s", f->leader_id, err_str(rc));
        backoff(f);
        return;
    }
    if (req == NULL) {
        return; /* nothing followed here: the next attach starts a round */
    }
    peer_send(&f->link, req, len, f->corr);
}

/* Logs an error of the fetcher once, until it changes. */
static void note_error(struct fetcher *f, const char *what, int rc)
{
    if (rc != f->err_logged) {
        log_warn("fetcher of broker %d (%s:%u): %s: %s", f->leader_id, f->link.host, f->link.port,
                 what, err_str(rc));
        f->err_logged = rc;
    }
    f->round_failed = true;
}

/* ---- rounds: the answers ---- */

/* bp of a sent entry, when the answer may still be applied to it. */
static struct bpart *sent_part(const struct fetcher *f, const struct fetcher_sent *sent)
{
    struct bpart *bp = sent->bp;
    if (bp == NULL || bp->rep.fetcher != f || bp->rep.leader_epoch != sent->epoch ||
        bp->rep.role != REPLICA_FOLLOWER) {
        return NULL;
    }
    return bp;
}

/* Cuts bp's log back to offset (or starts it afresh at offset when reset);
 * its producer states are rebuilt from what the log keeps (the last
 * sequences before the cut, not merely fewer batches). Needs the log idle. */
static int cut_log(struct bpart *bp, int64_t offset, bool reset)
{
    if (!part_idle(&bp->log)) {
        return -NG_EBUSY; /* appends of its leader days in flight: next round */
    }
    int rc = reset ? part_reset(&bp->log, offset) : part_truncate(&bp->log, offset);
    rc = rc == 0 ? bpart_load_producers(bp) : rc;
    if (rc == 0) {
        bp->rep.hw = part_offset_latest(&bp->log); /* the cap came down with the log */
        log_info("topic %s partition %d: log %s at %" PRId64 " to follow broker %d",
                 bp->topic->name, bp->index, reset ? "started afresh" : "truncated", offset,
                 bp->rep.leader);
    }
    return rc;
}

/* KIP-279: the leader's largest epoch E <= our last ends at leader_end in
 * its log. Ours agrees with it up to the end of our own largest epoch <= E
 * (past that come epochs the leader never had), and never past
 * leader_end: the log is cut at the lower of the two. */
static void apply_epoch(struct fetcher *f, struct bpart *bp,
                        const struct proto_epoch_resp_partition *p)
{
    if (p->err != 0) {
        note_error(f, "OffsetForLeaderEpoch", p->err);
        return;
    }
    int64_t cut = part_offset_earliest(&bp->log); /* the leader has nothing of ours */
    int32_t ours = -1;
    int64_t our_end = 0;
    if (p->leader_epoch >= 0 &&
        part_epoch_end_offset(&bp->log, p->leader_epoch, &ours, &our_end) == 0 && ours >= 0) {
        cut = our_end < p->end_offset ? our_end : p->end_offset;
    }
    int rc = 0;
    if (cut < part_offset_next(&bp->log)) {
        rc =
            cut < part_offset_earliest(&bp->log) ? cut_log(bp, cut, true) : cut_log(bp, cut, false);
    }
    if (rc != 0) {
        note_error(f, "truncate", rc);
        return;
    }
    bp->rep.need_truncate = false;
    bp->rep.need_verify = true;
}

static void apply_epochs(struct fetcher *f, struct rd *body)
{
    struct proto_dec d;
    int rc = proto_epoch_resp_decode(body, 0, &d);
    if (rc != 0) {
        note_error(f, "OffsetForLeaderEpoch answer", rc);
        return;
    }
    struct proto_topic t;
    uint32_t i = 0;
    while (proto_next_topic(&d, &t)) {
        struct proto_epoch_resp_partition p;
        while (proto_epoch_resp_next_partition(&d, &p) && i < f->sent_count) {
            struct bpart *bp = sent_part(f, &f->sent[i++]);
            if (bp != NULL && bp->index == p.partition) {
                apply_epoch(f, bp, &p);
            }
        }
    }
}

static void append_done(struct part_append *a, int rc)
{
    struct fetcher_append *fa = container_of(a, struct fetcher_append, a);
    struct fetcher_batches *set = fa->set;
    struct fetcher *f = set->f;
    if (rc != 0) {
        producers_forget(&fa->bp->producers, &a->hdr);
        note_error(f, "append", rc);
    }
    ASSERT(f->appends_pending > 0 && set->refs > 0);
    f->appends_pending--;
    if (--set->refs == 0) {
        free(set->frame);
        free(set);
    }
    if (f->appends_pending == 0) {
        next_round(f);
        fetcher_free_if_done(f);
    }
}

/* The whole batches at the start of records. */
static uint32_t count_batches(const uint8_t *rec, uint32_t len, uint32_t batch_max)
{
    uint32_t n = 0;
    size_t pos = 0;
    struct batch_header h;
    while (pos < len && batch_header_decode(rec + pos, len - pos, batch_max, &h) == 0 &&
           batch_bytes(&h) <= len - pos) {
        pos += batch_bytes(&h);
        n++;
    }
    return n;
}

/* Appends the leader's batches of one partition, from its log end on. */
static void append_batches(struct fetcher *f, struct fetcher_batches *set, struct bpart *bp,
                           const struct proto_replica_fetch_resp_partition *p)
{
    uint32_t batch_max = (uint32_t)bp->topic->cfg.batch_bytes_max;
    size_t pos = 0;
    while (pos < p->records_bytes && set->count < set->cap) {
        struct batch_header h;
        int rc = batch_header_decode(p->records + pos, p->records_bytes - pos, batch_max, &h);
        if (rc != 0 || batch_bytes(&h) > p->records_bytes - pos) {
            note_error(f, "batch from the leader", rc != 0 ? rc : -NG_ETRUNCATED);
            return;
        }
        uint8_t *batch = (uint8_t *)p->records + pos;
        pos += batch_bytes(&h);
        int64_t next = part_offset_next(&bp->log);
        if (batch_offset_last(&h) < next) {
            continue; /* held already: the answer starts at the batch holding our end */
        }
        struct fetcher_append *fa = &set->apps[set->count];
        *fa = (struct fetcher_append){.set = set, .bp = bp};
        fa->a = (struct part_append){.batch = batch,
                                     .bytes = batch_bytes(&h),
                                     .durable = true,
                                     .replica = true,
                                     .done = append_done};
        rc = part_append(&bp->log, &fa->a);
        if (rc == -NG_EBUSY) {
            return; /* as many appends in flight as the log takes: the rest next round */
        }
        if (rc != 0) {
            if (rc == -NG_EDISCONTINUITY) {
                bp->rep.need_truncate = true; /* our end is not a batch of the leader's */
            }
            note_error(f, "append", rc);
            return;
        }
        set->count++;
        set->refs++;
        f->appends_pending++;
        producers_record(&bp->producers, &fa->a.hdr, true);
    }
}

/* Whether bp's last batch, as the request saw it, is the leader's batch at
 * that offset: same offsets, epoch and checksum (CRC-32C from the
 * attributes on: producer, sequences, timestamps, records). A
 * follower's log is a copy of its leader's batches, so a last batch the
 * leader does not hold as it is was written by a life of the log the
 * leader no longer has: one at an epoch the leader still holds past it
 * (a leader that lost its unsynced writes and went on at the same epoch)
 * is invisible to OffsetForLeaderEpoch. Such a batch is cut, with any of
 * ours the leader's overlaps, and the next round compares the one before:
 * the log never keeps bytes the leader does not have at their offsets,
 * nor stalls on an end inside one of the leader's batches. Returns true
 * when it matches (the log goes on from its end); false after a cut, or
 * when the answer has nothing to compare (the next round asks again). */
static bool verify_last(struct fetcher *f, struct bpart *bp, const struct fetcher_sent *sent,
                        const struct proto_replica_fetch_resp_partition *p)
{
    const struct batch_header *ours = &sent->last;
    if (part_offset_next(&bp->log) != batch_offset_last(ours) + 1 || p->records_bytes == 0) {
        return false; /* the log moved since, or the leader sent nothing (yet) */
    }
    struct batch_header h;
    int rc = batch_header_decode(p->records, p->records_bytes,
                                 (uint32_t)bp->topic->cfg.batch_bytes_max, &h);
    if (rc != 0) {
        note_error(f, "batch from the leader", rc);
        return false;
    }
    if (h.offset_base == ours->offset_base && h.last_offset_delta == ours->last_offset_delta &&
        h.leader_epoch == ours->leader_epoch && h.checksum == ours->checksum) {
        bp->rep.need_verify = false;
        return true;
    }
    int64_t cut = h.offset_base < ours->offset_base ? h.offset_base : ours->offset_base;
    log_warn("topic %s partition %d: its batch %" PRId64 "-%" PRId64 " (epoch %d) is not broker "
             "%d's (%" PRId64 "-%" PRId64 ", epoch %d): the log is cut at %" PRId64,
             bp->topic->name, bp->index, ours->offset_base, batch_offset_last(ours),
             ours->leader_epoch, bp->rep.leader, h.offset_base, batch_offset_last(&h),
             h.leader_epoch, cut);
    rc = cut_log(bp, cut, cut < part_offset_earliest(&bp->log));
    if (rc != 0) {
        note_error(f, "truncate", rc);
    }
    return false;
}

static void apply_fetch_partition(struct fetcher *f, struct fetcher_batches *set,
                                  const struct fetcher_sent *sent,
                                  const struct proto_replica_fetch_resp_partition *p)
{
    struct bpart *bp = sent_part(f, sent);
    if (bp == NULL || bp->index != p->partition) {
        return;
    }
    if (p->err == -NG_EOFFSET_RANGE && sent->offset < p->log_start) {
        int rc = cut_log(bp, p->log_start, true);
        if (rc != 0) {
            note_error(f, "reset", rc);
        }
        return;
    }
    if (p->err == -NG_EOFFSET_RANGE) {
        bp->rep.need_truncate = true; /* past the leader's end: ask where to cut */
        return;
    }
    if (p->err != 0) {
        note_error(f, "ReplicaFetch", p->err);
        return;
    }
    bool at_end =
        sent->verify ? verify_last(f, bp, sent, p) : sent->offset == part_offset_next(&bp->log);
    if (at_end && !bp->rep.need_verify) {
        append_batches(f, set, bp, p);
    }
    replica_follower_hw(bp, p->high_watermark);
}

static void apply_fetch(struct fetcher *f, uint8_t *frame, struct rd *body)
{
    struct proto_dec d;
    int rc = proto_replica_fetch_resp_decode(body, 0, &d);
    if (rc != 0) {
        note_error(f, "ReplicaFetch answer", rc);
        free(frame);
        return;
    }
    /* Sized by the batches the answer holds, counted first: at most what
     * each partition's log can take in flight (the rest is fetched again). */
    struct proto_dec count_d = d;
    struct proto_topic t;
    uint32_t batches = 0;
    uint32_t i = 0;
    while (proto_next_topic(&count_d, &t)) {
        struct proto_replica_fetch_resp_partition p;
        while (proto_replica_fetch_resp_next_partition(&count_d, &p) && i < f->sent_count) {
            const struct bpart *bp = sent_part(f, &f->sent[i++]);
            uint32_t n =
                bp != NULL ? count_batches(p.records, p.records_bytes, BATCH_BYTES_LIMIT) : 0;
            uint32_t room = bp != NULL ? part_appends_room(&bp->log) : 0;
            batches += n < room ? n : room;
        }
    }
    struct fetcher_batches *set = calloc(1, sizeof(*set) + batches * sizeof(set->apps[0]));
    if (set == NULL) {
        note_error(f, "ReplicaFetch answer", -ENOMEM);
        free(frame);
        return;
    }
    *set = (struct fetcher_batches){.f = f, .frame = frame, .refs = 1, .cap = batches};
    i = 0;
    while (proto_next_topic(&d, &t)) {
        struct proto_replica_fetch_resp_partition p;
        while (proto_replica_fetch_resp_next_partition(&d, &p) && i < f->sent_count) {
            apply_fetch_partition(f, set, &f->sent[i++], &p);
        }
    }
    if (--set->refs == 0) {
        free(set->frame);
        free(set);
    }
}

static void on_answer(struct peer *p, uint8_t *frame, struct rd *body, int rc)
{
    struct fetcher *f = container_of(p, struct fetcher, link);
    if (rc != 0) {
        note_error(f, proto_api_name(f->api), rc);
    } else if (f->api == PROTO_API_OFFSET_FOR_LEADER_EPOCH) {
        f->err_logged = 0;
        apply_epochs(f, body);
        free(frame);
    } else {
        f->err_logged = 0;
        apply_fetch(f, frame, body);
    }
    next_round(f);
}
