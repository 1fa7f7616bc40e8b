/*
 * client/sender.c — the producer's sender: one Produce request per drain
 * carrying a batch for every partition that has one ready (as Kafka's
 * sender does), answers matched back to their batches, retries with
 * backoff in sequence order, and the delivery timeout.
 *
 * Retry policy (why each error is or is not retried):
 * - retried: the connection closing or failing (-NG_EDISCONNECTED, -errno),
 *   a request outliving request_timeout_ms or an acks=all sync that timed
 *   out on the broker (-NG_ETIMEOUT), a full broker queue (-NG_EBUSY), a
 *   broker shutting down (-NG_ECLOSED), a full disk on the broker
 *   (-NG_EDISK_FULL: it cut the batch back out, so it is not in the log),
 *   an unknown topic or partition
 *   (-NG_EUNKNOWN_TOPIC: metadata is refreshed; if the topic is gone the
 *   records fail), and in a cluster a broker that does not lead the
 *   partition (-NG_ENOT_LEADER), a leader epoch it does not agree with
 *   (-NG_EFENCED_LEADER_EPOCH, -NG_EUNKNOWN_LEADER_EPOCH) or too few
 *   replicas in sync (-NG_ENOT_ENOUGH_REPLICAS): the partition forgets its
 *   leader, metadata is refreshed (also after a lost connection: its broker
 *   may have died) and the batch goes to the leader the answer names. Idempotence makes these retries safe: the batch keeps its
 *   producer id, epoch and sequence, so a copy the broker already wrote is
 *   answered with its first offset and not written again.
 * - -NG_EOUT_OF_ORDER: retried when an earlier batch of the partition is
 *   still unacknowledged (the gap is that batch, resent first). When none
 *   is, an earlier batch failed for good: the gap will never fill, so the
 *   partition starts a new epoch and renumbers its queue from 0 (the broker
 *   starts afresh on a newer epoch, broker/producers.h).
 * - not retried: anything else the broker refuses a batch with (a bad or
 *   too big batch, -NG_EFAILED: the log refuses writes until the broker
 *   restarts, -NG_ECORRUPT, -NG_ESYSTEM, -NG_EBADNAME...) and, for the
 *   whole producer, -NG_EPRODUCER_FENCED.
 * Each partition's batches go to its leader (ppart.leader): one request per
 * broker and drain, carrying that broker's partitions.
 * Every record gets a report by delivery_timeout_ms after it was added to
 * its batch: batches waiting past it fail with the last error the broker
 * gave their partition, or -NG_ETIMEOUT when it gave none (a batch in
 * flight waits for its answer, itself bounded by request_timeout_ms). A
 * retried broker error is announced through on_error when the partition
 * first gets it, as librdkafka's error callback does.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client/producer_int.h"

/* A produce request carries every batch ready (one per partition), as
 * Kafka's sender does, up to this many bytes beyond its first batch: a
 * quarter of the producer's send queue (PRODUCER_TX_BYTES_MAX, 16 MiB), so
 * a request still fits behind others already queued. */
#define REQUEST_BYTES_MAX (4u << 20)
/* A batch at least this large is sent from its own buffer (a reference in
 * a gather write); a smaller one is copied into the send queue, where a
 * copy costs less than a piece of the gather list. */
#define SEND_REF_BYTES_MIN 1024u

/* Errors after which the partition's leader may have moved: metadata is
 * asked again before the retry (the broker's answer, or the connection to
 * it failing). */
static bool leader_may_have_moved(int err)
{
    switch (err) {
    case -NG_ENOT_LEADER:
    case -NG_EFENCED_LEADER_EPOCH:
    case -NG_EUNKNOWN_LEADER_EPOCH:
    case -NG_ENOT_ENOUGH_REPLICAS:
    case -NG_EDISCONNECTED:
        return true;
    default:
        return err < 0 && -err < NG_ERR_FIRST;
    }
}

/* ---- the partition queue ---- */

static void queue_remove(struct ppart *pp, struct pbatch *b)
{
    struct pbatch *prev = NULL;
    for (struct pbatch *it = pp->head; it != NULL; prev = it, it = it->next) {
        if (it != b) {
            continue;
        }
        if (prev != NULL) {
            prev->next = b->next;
        } else {
            pp->head = b->next;
        }
        if (pp->tail == b) {
            pp->tail = prev;
        }
        pp->queued--;
        b->next = NULL;
        return;
    }
    UNREACHABLE();
}

void sender_complete(struct nagare_producer *p, struct pbatch *b, int err, int64_t offset_base)
{
    if (b->state == PB_QUEUED || b->state == PB_INFLIGHT) {
        queue_remove(&b->topic->parts[b->partition], b);
    }
    b->state = PB_DONE;
    b->err = err;
    b->offset_base = err == 0 ? offset_base : -1;
    b->next = NULL;
    if (p->done_tail != NULL) {
        p->done_tail->next = b;
    } else {
        p->done_head = b;
    }
    p->done_tail = b;
}

/* Restarts a partition's sequence under a new epoch: every queued batch
 * (none is in flight) is renumbered from 0, in order. The header fields
 * change, so the checksum is computed again. */
static int resequence(struct ppart *pp)
{
    if (pp->epoch == INT16_MAX) {
        return -NG_EPRODUCER_FENCED;
    }
    pp->epoch++;
    int32_t seq = 0;
    for (struct pbatch *b = pp->head; b != NULL; b = b->next) {
        ASSERT(b->state == PB_QUEUED);
        put_be16(b->buf + BATCH_OFF_PRODUCER_EPOCH, (uint16_t)pp->epoch);
        put_be32(b->buf + BATCH_OFF_SEQUENCE_BASE, (uint32_t)seq);
        batch_seal(b->buf, b->bytes);
        b->sequence_base = seq;
        seq += b->record_count;
    }
    pp->sequence_next = seq;
    return 0;
}

/* Whether pp may send to its leader now as far as its batches in flight
 * go: fewer than PART_INFLIGHT_MAX, and all at that leader. */
static bool part_room(const struct ppart *pp)
{
    return pp->inflight < PART_INFLIGHT_MAX && (pp->inflight == 0 || pp->inflight_to == pp->leader);
}

bool sender_part_ready(const struct nagare_producer *p, const struct ppart *pp, int64_t now_ms)
{
    /* A resend (or renumbering) pending with nothing queued or in flight
     * (its batches failed for good) holds nothing back: sendable() settles
     * it with the next batch. An open batch waiting for the partition to
     * be ready would otherwise wait for its delivery timeout. */
    bool resend = (pp->retrying || pp->resequence) && pp->inflight > 0;
    return pp->leader != NULL && conn_ready(&pp->leader->conn) &&
           pp->leader->requests < p->cfg.inflight_max && pp->queued == pp->inflight &&
           part_room(pp) && now_ms >= pp->backoff_until_ms && !resend;
}

/* The batch of pp to send next, or NULL. A batch that grew or went past
 * its linger while pp could not send (accum.c, BATCH_GROWTH_MAX,
 * accum_linger()) is closed to go now. */
static struct pbatch *sendable(struct nagare_producer *p, struct ppart *pp, int64_t now_ms)
{
    if (pp->open != NULL && (pp->open->grown || pp->open->overdue) &&
        sender_part_ready(p, pp, now_ms)) {
        accum_close(p, pp->open->topic, pp->open->partition);
    }
    if (pp->queued == pp->inflight || !part_room(pp) || now_ms < pp->backoff_until_ms) {
        return NULL;
    }
    if (pp->retrying || pp->resequence) {
        if (pp->inflight > 0) {
            return NULL; /* resend in order once the others came back */
        }
        if (pp->resequence) {
            int rc = resequence(pp);
            if (rc != 0) {
                p->fatal = rc;
                return NULL;
            }
        }
        pp->retrying = false;
        pp->resequence = false;
    }
    for (struct pbatch *b = pp->head; b != NULL; b = b->next) {
        if (b->state == PB_QUEUED) {
            return b;
        }
    }
    return NULL;
}

/* ---- requests ---- */

/* A request with room for batch_count batches (each may be a reference). */
static struct preq *preq_get(struct nagare_producer *p, uint32_t batch_count)
{
    struct preq *r = p->preq_free;
    if (r == NULL) {
        r = calloc(1, sizeof(*r));
        if (r == NULL) {
            return NULL;
        }
        r->p = p;
    } else {
        p->preq_free = r->next_free;
    }
    r->count = 0;
    r->ref_count = 0;
    r->ref_bytes = 0;
    if (batch_count > r->cap) {
        struct pbatch **v = realloc(r->batches, batch_count * sizeof(*v));
        struct conn_ref *refs = v != NULL ? realloc(r->refs, batch_count * sizeof(*refs)) : NULL;
        if (v != NULL) {
            r->batches = v;
        }
        if (refs == NULL) {
            r->next_free = p->preq_free;
            p->preq_free = r;
            return NULL;
        }
        r->refs = refs;
        r->cap = batch_count;
    }
    return r;
}

static void preq_put(struct nagare_producer *p, struct preq *r)
{
    r->next_free = p->preq_free;
    p->preq_free = r;
}

static void preq_add(struct preq *r, struct pbatch *b)
{
    ASSERT(r->count < r->cap);
    r->batches[r->count++] = b;
}

void sender_free(struct nagare_producer *p)
{
    while (p->preq_free != NULL) {
        struct preq *r = p->preq_free;
        p->preq_free = r->next_free;
        free(r->batches);
        free(r->refs);
        free(r);
    }
    free(p->errors);
    p->errors = NULL;
}

/* One backoff step per failed attempt: the batches of one request, or of
 * several out to the same broker when its connection fails, come back
 * together and count once (five batches in flight once took the backoff
 * straight to its maximum). */
static void backoff(struct nagare_producer *p, struct ppart *pp, int64_t now_ms)
{
    if (now_ms < pp->backoff_until_ms) {
        return;
    }
    uint32_t next = pp->backoff_ms == 0 ? p->cfg.retry_backoff_ms : pp->backoff_ms * 2;
    pp->backoff_ms = next < RETRY_BACKOFF_MAX_MS ? next : RETRY_BACKOFF_MAX_MS;
    pp->backoff_until_ms = now_ms + pp->backoff_ms;
    sender_timer_at(p, pp->backoff_until_ms);
}

/* What a batch whose delivery timeout ran out reports: the last error the
 * broker gave the partition while it retried (a full disk, say), which
 * tells more than the timeout; -NG_ETIMEOUT when the broker gave none
 * (the connection failed, or the batch never got an answer). */
static int expired_err(const struct ppart *pp)
{
    return pp->err_last != 0 ? pp->err_last : -NG_ETIMEOUT;
}

/* The broker refused a batch of t's partition with err. A retried error
 * new to the partition is queued for on_error, so the application hears
 * of it at once rather than at the delivery timeout. */
static void broker_err(struct nagare_producer *p, struct ptopic *t, int32_t partition, int err)
{
    struct ppart *pp = &t->parts[partition];
    if (!proto_produce_retriable(err) || err == pp->err_last) {
        return;
    }
    pp->err_last = err;
    if (p->cfg.on_error == NULL) {
        return;
    }
    if (p->error_count == p->error_cap) {
        uint32_t cap = p->error_cap == 0 ? 16 : p->error_cap * 2;
        struct perror *e = realloc(p->errors, cap * sizeof(*e));
        if (e == NULL) {
            return; /* only a notice: the record's report still comes */
        }
        p->errors = e;
        p->error_cap = cap;
    }
    p->errors[p->error_count++] = (struct perror){.topic = t, .partition = partition, .err = err};
}

/* A batch came back with an error: retry it, restart the partition's
 * sequence, or fail it (see the policy at the top). */
static void batch_error(struct nagare_producer *p, struct pbatch *b, int err, int64_t now_ms)
{
    struct ppart *pp = &b->topic->parts[b->partition];
    bool idempotent = p->producer_id >= 0;
    b->state = PB_QUEUED;
    sender_timer_at(p, b->created_ms + (int64_t)p->cfg.delivery_timeout_ms);
    if (err == -NG_EPRODUCER_FENCED) {
        p->fatal = err;
    }
    if (err == -NG_EUNKNOWN_TOPIC) {
        if (b->topic->state == PT_MISSING) {
            sender_complete(p, b, err, -1);
            return;
        }
        producer_want_metadata(p, b->topic);
    }
    if (leader_may_have_moved(err)) {
        /* Nothing more goes to the partition until the refresh says where:
         * a retry to the old leader would only be refused again. A leader
         * that an answer named since the batch went out (a stalled
         * leader's successor, producer.c) is kept: it is where. */
        if (pp->leader == pp->inflight_to) {
            cbroker_lead(&pp->leader, NULL);
        }
        producer_want_metadata(p, b->topic);
    }
    bool expired = now_ms - b->created_ms >= (int64_t)p->cfg.delivery_timeout_ms;
    if (err == -NG_EOUT_OF_ORDER && idempotent && !expired && !p->closing) {
        if (pp->head == b) {
            pp->resequence = true; /* an earlier batch failed for good */
        } else {
            pp->retrying = true;
        }
        return;
    }
    if (proto_produce_retriable(err) && !expired && !p->closing && p->fatal == 0) {
        pp->retrying = true;
        backoff(p, pp, now_ms);
        return;
    }
    sender_complete(p, b, expired && proto_produce_retriable(err) ? expired_err(pp) : err, -1);
}

/* Matches each partition of a Produce answer to its batch, in order.
 * Returns how many batches were settled, or -1 at the first mismatch. */
static int32_t answer_apply(struct nagare_producer *p, struct preq *r, struct proto_dec *d,
                            int64_t now_ms)
{
    uint32_t i = 0;
    struct proto_topic t;
    while (proto_next_topic(d, &t)) {
        struct proto_produce_resp_partition rp;
        while (proto_produce_resp_next_partition(d, &rp)) {
            if (i == r->count) {
                return -1;
            }
            struct pbatch *b = r->batches[i];
            if (!proto_str_eq(t.name, b->topic->name) || rp.partition != b->partition) {
                return -1;
            }
            struct ppart *pp = &b->topic->parts[b->partition];
            pp->inflight--;
            if (rp.err == 0) {
                pp->backoff_ms = 0;
                pp->err_last = 0;
                sender_complete(p, b, 0, rp.offset_base);
            } else {
                broker_err(p, b->topic, b->partition, rp.err);
                batch_error(p, b, rp.err, now_ms);
            }
            i++;
        }
    }
    return i == r->count ? (int32_t)i : -1;
}

static void produce_done(void *arg, int err, struct rd *body, uint16_t version)
{
    struct preq *r = arg;
    struct nagare_producer *p = r->p;
    int64_t now = clock_mono_ms();
    ASSERT(r->broker->requests > 0);
    r->broker->requests--;
    if (err == 0 && body == NULL) {
        /* acks=0: written is all we will ever know. */
        for (uint32_t i = 0; i < r->count; i++) {
            struct pbatch *b = r->batches[i];
            b->topic->parts[b->partition].inflight--;
            sender_complete(p, b, 0, -1);
        }
    } else if (err == 0) {
        struct proto_dec d;
        int rc = proto_produce_resp_decode(body, version, &d);
        if (rc != 0 || answer_apply(p, r, &d, now) < 0) {
            /* Not an answer to this request: nothing after it can be
             * trusted either. Batches not settled are sent again. */
            err = -NG_EDISCONNECTED;
            conn_close(&r->broker->conn, -NG_EPROTO);
        }
    }
    /* Batches not settled above (all of them on an error) are still marked
     * in flight; each is in this one request only. */
    for (uint32_t i = 0; i < r->count; i++) {
        struct pbatch *b = r->batches[i];
        if (b->state == PB_INFLIGHT) {
            b->topic->parts[b->partition].inflight--;
            batch_error(p, b, err, now);
        }
    }
    preq_put(p, r);
}

/* What one request will carry, from plan_request(): its frame bytes
 * (references included), those sent by reference, and how many batches
 * and references. add_topic() takes the same batches in the same order. */
struct plan {
    size_t frame_bytes;
    size_t ref_bytes;
    uint32_t batch_count;
    uint32_t ref_count;
};

static bool by_ref(const struct pbatch *b) { return b->bytes >= SEND_REF_BYTES_MIN; }

/* A batch as a partition of the request. The produce request carries a
 * partition as its index (i32) and its batch as bytes: an i32 length, then
 * the bytes (docs/protocol.md, Produce). A batch sent by reference is
 * encoded empty and its length set afterwards: the gather write puts its
 * bytes right after it (conn_frame_commit_refs()), so the batch is never
 * copied on its way to the socket, and a retry sends the same bytes again
 * from the same buffer. */
static void add_batch(struct proto_enc *e, struct preq *r, int32_t partition,
                      const struct pbatch *b)
{
    if (!by_ref(b)) {
        proto_produce_req_partition(
            e, &(struct proto_produce_req_partition){
                   .partition = partition, .records = b->buf, .records_bytes = (uint32_t)b->bytes});
        return;
    }
    proto_produce_req_partition(e, &(struct proto_produce_req_partition){.partition = partition,
                                                                         .records = b->buf,
                                                                         .records_bytes = 0});
    struct wr *w = e->w;
    if (w->err == 0 && e->err == 0) {
        ASSERT(get_be32(w->ptr + w->pos - 4) == 0);
        put_be32(w->ptr + w->pos - 4, (uint32_t)b->bytes);
    }
    r->refs[r->ref_count++] = (struct conn_ref){.at = w->pos, .ptr = b->buf, .len = b->bytes};
    r->ref_bytes += b->bytes;
}

/* Adds the sendable batches of t that r's broker leads and that fit the
 * plan. Returns false when the request cannot take more (full). */
static bool add_topic(struct nagare_producer *p, struct proto_enc *e, struct preq *r,
                      struct ptopic *t, const struct plan *plan, int64_t now_ms)
{
    bool opened = false;
    for (int32_t k = 0; k < t->parts_len; k++) {
        struct pbatch *b =
            t->parts[k].leader == r->broker ? sendable(p, &t->parts[k], now_ms) : NULL;
        if (b == NULL) {
            continue;
        }
        if (r->count == plan->batch_count) {
            return false;
        }
        size_t more = b->bytes + PRODUCE_PART_OVERHEAD_BYTES + (opened ? 0 : 6 + t->name_len);
        if (proto_enc_frame_bytes(e) + r->ref_bytes + more > plan->frame_bytes ||
            (by_ref(b) && r->ref_count == plan->ref_count)) {
            continue; /* goes in the next request */
        }
        preq_add(r, b);
        if (!opened) {
            proto_enc_topic(e, (struct proto_str){.ptr = t->name, .len = (int32_t)t->name_len});
            opened = true;
        }
        add_batch(e, r, k, b);
        b->state = PB_INFLIGHT;
        b->attempts++;
        t->parts[k].inflight_to = r->broker;
        t->parts[k].inflight++;
    }
    return true;
}

/* Plans a request to broker br for the batches ready to go of the
 * partitions it leads, one per partition in the order add_topic() takes
 * them, up to REQUEST_BYTES_MAX (the first batch always counts) and
 * PROTO_REQUEST_PARTITIONS_MAX batches; frame_bytes 0 when none is ready.
 * Sizing the frame for the first batch alone made every request carry one
 * batch, and the lowest partitions took every request slot while the
 * others starved. */
static struct plan plan_request(struct nagare_producer *p, const struct cbroker *br, int64_t now_ms)
{
    struct plan plan = {.frame_bytes = PRODUCE_FRAME_OVERHEAD_BYTES};
    for (uint32_t i = 0; i < p->topic_slots; i++) {
        struct ptopic *t = p->topics[i];
        bool opened = false;
        for (int32_t k = 0; t != NULL && t->state != PT_UNKNOWN && k < t->parts_len; k++) {
            struct pbatch *b = t->parts[k].leader == br ? sendable(p, &t->parts[k], now_ms) : NULL;
            if (b == NULL) {
                continue;
            }
            size_t more = b->bytes + PRODUCE_PART_OVERHEAD_BYTES + (opened ? 0 : 6 + t->name_len);
            if (plan.batch_count > 0 && (plan.frame_bytes + more > REQUEST_BYTES_MAX ||
                                         plan.batch_count == PROTO_REQUEST_PARTITIONS_MAX)) {
                return plan;
            }
            plan.frame_bytes += more;
            plan.batch_count++;
            if (by_ref(b)) {
                plan.ref_bytes += b->bytes;
                plan.ref_count++;
            }
            opened = true;
        }
    }
    if (plan.batch_count == 0) {
        plan.frame_bytes = 0;
    }
    return plan;
}

/* Builds and submits one request to broker br. Returns false when there
 * was nothing to send or the connection cannot take it now. */
static bool send_one(struct nagare_producer *p, struct cbroker *br, int64_t now_ms)
{
    struct plan plan = plan_request(p, br, now_ms);
    struct wr w;
    uint32_t corr;
    if (plan.frame_bytes == 0 ||
        conn_frame_begin_refs(&br->conn, plan.frame_bytes - plan.ref_bytes, plan.ref_bytes,
                              plan.ref_count, &w, &corr) != 0) {
        return false;
    }
    struct preq *r = preq_get(p, plan.batch_count);
    if (r == NULL) {
        return false;
    }
    r->broker = br;
    uint16_t version = conn_version(&br->conn, PROTO_API_PRODUCE);
    struct proto_enc e;
    struct proto_produce_req req = {.acks = (int16_t)p->cfg.acks,
                                    .timeout_ms = (int32_t)p->cfg.request_timeout_ms};
    proto_produce_req_begin(&e, &w, version, corr, proto_str_make("libnagare"), &req);
    for (uint32_t i = 0; i < p->topic_slots; i++) {
        struct ptopic *t = p->topics[i];
        if (t != NULL && t->state != PT_UNKNOWN && !add_topic(p, &e, r, t, &plan, now_ms)) {
            break;
        }
    }
    int rc = proto_enc_end(&e);
    ASSERT(rc == 0 && r->count > 0); /* sized above, within every limit */
    /* The frame's length counts the batches sent by reference too. */
    put_be32(w.ptr, get_be32(w.ptr) + (uint32_t)r->ref_bytes);
    conn_frame_commit_refs(&br->conn, &w, r->refs, r->ref_count, corr, PROTO_API_PRODUCE, version,
                           p->cfg.acks == 0, p->cfg.request_timeout_ms, produce_done, r);
    br->requests++;
    return true;
}

void sender_drain(struct nagare_producer *p, int64_t now_ms)
{
    for (uint32_t i = 0; i < p->brokers.count; i++) {
        struct cbroker *br = p->brokers.all[i];
        while (p->fatal == 0 && br->leads > 0 && conn_ready(&br->conn) &&
               br->requests < p->cfg.inflight_max && send_one(p, br, now_ms)) {
        }
    }
}

/* Fails a partition's waiting batches past the delivery timeout (an
 * overdue open batch is closed for it first). Returns when the next one
 * will be due (or a backoff ends). */
static int64_t part_timers(struct nagare_producer *p, struct ppart *pp, int64_t now_ms)
{
    int64_t next = INT64_MAX;
    struct pbatch *o = pp->open;
    if (o != NULL && o->overdue) {
        int64_t due = o->created_ms + (int64_t)p->cfg.delivery_timeout_ms;
        if (now_ms >= due) {
            accum_close(p, o->topic, o->partition);
        } else {
            next = due;
        }
    }
    struct pbatch *b = pp->head;
    while (b != NULL) {
        struct pbatch *after = b->next;
        int64_t due = b->created_ms + (int64_t)p->cfg.delivery_timeout_ms;
        if (b->state == PB_QUEUED && now_ms >= due) {
            sender_complete(p, b, expired_err(pp), -1);
        } else if (b->state == PB_QUEUED) {
            /* The queue is in the order the batches were opened, one open
             * batch per partition at a time, so no later batch is due
             * sooner: stop here rather than walk the whole queue on every
             * poll (a full buffer queues a thousand batches). */
            next = due < next ? due : next;
            break;
        }
        b = after;
    }
    if (pp->queued > pp->inflight && pp->backoff_until_ms > now_ms && pp->backoff_until_ms < next) {
        next = pp->backoff_until_ms;
    }
    return next;
}

void sender_timer_at(struct nagare_producer *p, int64_t at_ms)
{
    if (at_ms < p->timers_due_ms) {
        p->timers_due_ms = at_ms;
    }
}

int64_t sender_timers(struct nagare_producer *p, int64_t now_ms)
{
    if (now_ms < p->timers_due_ms) {
        return p->timers_due_ms; /* nothing can be due before */
    }
    int64_t next = INT64_MAX;
    for (uint32_t i = 0; i < p->topic_slots; i++) {
        struct ptopic *t = p->topics[i];
        for (int32_t k = 0; t != NULL && k < t->parts_len; k++) {
            int64_t due = part_timers(p, &t->parts[k], now_ms);
            next = due < next ? due : next;
        }
    }
    p->timers_due_ms = next;
    return next;
}
