/*
 * client/accum.c — the producer's record accumulator: the topic table, the
 * partitioner, one open batch per partition in pooled buffers, and the hold
 * for records whose topic is not known yet. Never touches the network.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "client/producer_int.h"

/* ---- topics ---- */

static struct ptopic *topic_find(const struct nagare_producer *p, const char *name, size_t len,
                                 uint64_t hash, uint32_t *slot_out)
{
    uint32_t mask = p->topic_slots - 1;
    for (uint32_t i = (uint32_t)hash & mask;; i = (i + 1) & mask) {
        struct ptopic *t = p->topics[i];
        if (t == NULL) {
            *slot_out = i;
            return NULL;
        }
        if (t->hash == hash && t->name_len == len && memcmp(t->name, name, len) == 0) {
            return t;
        }
    }
}

/* Doubles the table; at most half its slots are ever used. */
static int topics_grow(struct nagare_producer *p)
{
    uint32_t slots = p->topic_slots == 0 ? 16 : p->topic_slots * 2;
    struct ptopic **old = p->topics;
    uint32_t old_slots = p->topic_slots;
    p->topics = calloc(slots, sizeof(*p->topics));
    if (p->topics == NULL) {
        p->topics = old;
        return -ENOMEM;
    }
    p->topic_slots = slots;
    for (uint32_t i = 0; i < old_slots; i++) {
        if (old[i] != NULL) {
            uint32_t slot;
            struct ptopic *dup = topic_find(p, old[i]->name, old[i]->name_len, old[i]->hash, &slot);
            ASSERT(dup == NULL);
            p->topics[slot] = old[i];
        }
    }
    free(old);
    return 0;
}

struct ptopic *accum_topic(struct nagare_producer *p, const char *name, size_t len)
{
    struct ptopic *last = p->last_topic;
    if (last != NULL && last->name_len == len && memcmp(last->name, name, len) == 0) {
        return last;
    }
    if ((p->topic_count + 1) * 2 > p->topic_slots && topics_grow(p) != 0) {
        return NULL;
    }
    uint64_t hash = XXH3_64bits(name, len);
    uint32_t slot;
    struct ptopic *t = topic_find(p, name, len, hash, &slot);
    if (t == NULL) {
        ASSERT(proto_topic_name_valid(name, len));
        t = calloc(1, sizeof(*t));
        if (t == NULL) {
            return NULL;
        }
        memcpy(t->name, name, len);
        t->name_len = len;
        t->hash = hash;
        t->sticky = -1;
        t->state = PT_UNKNOWN;
        p->topics[slot] = t;
        p->topic_count++;
        producer_want_metadata(p, t);
    }
    p->last_topic = t;
    return t;
}

/* ---- buffers ---- */

static int opaques_room(void ***opaques, uint32_t *cap, uint32_t need)
{
    if (need <= *cap) {
        return 0;
    }
    uint32_t n = *cap == 0 ? 64 : *cap;
    while (n < need) {
        n *= 2;
    }
    void **o = realloc(*opaques, n * sizeof(*o));
    if (o == NULL) {
        return -ENOMEM;
    }
    *opaques = o;
    *cap = n;
    return 0;
}

/* A batch with a buffer of at least cap bytes: a pool buffer when that is
 * enough, a grown one when asked (grown: cap is grown_buf_bytes), else one
 * of its own. */
static int batch_get(struct nagare_producer *p, size_t cap, bool force, bool grown,
                     struct pbatch **out)
{
    bool pooled = cap <= p->pool_buf_bytes;
    size_t bytes = pooled ? p->pool_buf_bytes : cap;
    if (!force && p->bytes_used + bytes > p->cfg.buffer_bytes_max) {
        return -NG_EBUSY;
    }
    ASSERT(!grown || (!pooled && cap == p->grown_buf_bytes));
    struct pbatch **pool = pooled ? &p->pool : grown ? &p->pool_grown : NULL;
    struct pbatch *b = pool != NULL ? *pool : NULL;
    if (b != NULL) {
        *pool = b->next;
    } else {
        b = calloc(1, sizeof(*b));
        uint8_t *buf = b != NULL ? malloc(bytes) : NULL;
        if (buf == NULL) {
            free(b);
            return -ENOMEM;
        }
        b->buf = buf;
        b->cap = bytes;
        b->pooled = pooled;
        b->grown = grown;
    }
    p->bytes_used += b->cap;
    b->next = NULL;
    *out = b;
    return 0;
}

void accum_release(struct nagare_producer *p, struct pbatch *b)
{
    ASSERT(p->bytes_used >= b->cap);
    p->bytes_used -= b->cap;
    if (b->pooled || b->grown) {
        struct pbatch **pool = b->pooled ? &p->pool : &p->pool_grown;
        b->next = *pool;
        *pool = b;
        return;
    }
    free(b->opaques);
    free(b->buf);
    free(b);
}

/* The most a record can take in a batch (batch.h's record layout: a length,
 * attributes, two deltas, key, value, header count, headers; each varint at
 * its longest). */
static size_t record_bytes_bound(int32_t key_len, int32_t value_len, const struct batch_kv *hdrs,
                                 uint32_t hdr_count)
{
    size_t n = VARINT32_BYTES_MAX + 1 + VARINT64_BYTES_MAX + VARINT32_BYTES_MAX;
    n += VARINT32_BYTES_MAX + (key_len > 0 ? (size_t)key_len : 0);
    n += VARINT32_BYTES_MAX + (value_len > 0 ? (size_t)value_len : 0);
    n += VARINT32_BYTES_MAX;
    for (uint32_t i = 0; i < hdr_count; i++) {
        n += 2 * VARINT32_BYTES_MAX + (size_t)hdrs[i].key_len;
        n += hdrs[i].value_len > 0 ? (size_t)hdrs[i].value_len : 0;
    }
    return n;
}

/* Largest batch for t: the topic's limit, and a request frame's. */
static size_t topic_batch_limit(const struct nagare_producer *p, const struct ptopic *t)
{
    size_t frame = conn_frame_bytes_max(&p->brokers.boot->conn);
    size_t limit = t->batch_bytes_max;
    size_t overhead = PRODUCE_FRAME_OVERHEAD_BYTES + PRODUCE_PART_OVERHEAD_BYTES + 6 + t->name_len;
    if (frame > overhead && frame - overhead < limit) {
        limit = frame - overhead;
    }
    return limit < BATCH_BYTES_LIMIT ? limit : BATCH_BYTES_LIMIT;
}

/* The largest a batch of t grows to (BATCH_GROWTH_MAX). It is also about
 * what keyless records take in one partition before they move on while
 * batches grow (accum_close()): a count of bytes, not "until its batch
 * goes", since a partition whose batches go sooner (a faster leader)
 * would otherwise get fewer records than the others (KIP-794); and as
 * large as a grown batch, so that while the pipeline is full the records
 * fill one batch at a time rather than one slice of each partition's. */
static size_t grown_limit(const struct nagare_producer *p, const struct ptopic *t)
{
    size_t limit = topic_batch_limit(p, t);
    return limit < p->grown_buf_bytes ? limit : p->grown_buf_bytes;
}

/* ---- batches ---- */

/* The list of open batches whose linger runs, in the order they opened:
 * b->created_ms only grows along it (clock_mono_ms() is monotonic). An
 * overdue batch is off it (accum_linger()). */
static void open_link(struct nagare_producer *p, struct pbatch *b)
{
    ASSERT(p->open_tail == NULL || p->open_tail->created_ms <= b->created_ms);
    ASSERT(!b->overdue);
    b->open_next = NULL;
    b->open_prev = p->open_tail;
    if (p->open_tail != NULL) {
        p->open_tail->open_next = b;
    } else {
        p->open_head = b;
    }
    p->open_tail = b;
}

/* Takes b off the list of lingering batches (it stays open). */
static void open_unlink(struct nagare_producer *p, struct pbatch *b)
{
    ASSERT(!b->overdue);
    if (b->open_prev != NULL) {
        b->open_prev->open_next = b->open_next;
    } else {
        p->open_head = b->open_next;
    }
    if (b->open_next != NULL) {
        b->open_next->open_prev = b->open_prev;
    } else {
        p->open_tail = b->open_prev;
    }
    b->open_prev = NULL;
    b->open_next = NULL;
}

/* Takes the open batch of pp off its partition (and off the list). */
static struct pbatch *open_take(struct nagare_producer *p, struct ppart *pp)
{
    struct pbatch *b = pp->open;
    ASSERT(b != NULL && b->state == PB_OPEN);
    pp->open = NULL;
    if (!b->overdue) {
        open_unlink(p, b);
    }
    if (b->grown) {
        ASSERT(p->open_grown_bytes >= b->cap);
        p->open_grown_bytes -= b->cap;
    }
    b->overdue = false;
    return b;
}

static void batch_open(struct nagare_producer *p, struct ptopic *t, int32_t partition,
                       struct pbatch *b, size_t cap)
{
    enum batch_codec codec =
        p->cfg.compression == NAGARE_COMPRESSION_ZSTD ? BATCH_CODEC_ZSTD : BATCH_CODEC_NONE;
    batch_builder_init(&b->bld, b->buf, cap < b->cap ? cap : b->cap, codec, p->producer_id,
                       t->parts[partition].epoch, -1);
    b->topic = t;
    b->partition = partition;
    b->state = PB_OPEN;
    b->bytes = 0;
    b->record_count = 0;
    b->sequence_base = -1;
    b->created_ms = clock_mono_ms();
    b->attempts = 0;
    b->err = 0;
    b->offset_base = -1;
    b->overdue = false;
    t->parts[partition].open = b;
    open_link(p, b);
}

/* Sequence numbers go up by one per record and wrap as the broker's do. */
static int32_t sequence_add(int32_t seq, int32_t count)
{
    int64_t next = (int64_t)seq + count;
    return (int32_t)(next > INT32_MAX ? next - INT32_MAX - 1 : next);
}

void accum_close(struct nagare_producer *p, struct ptopic *t, int32_t partition)
{
    struct ppart *pp = &t->parts[partition];
    struct pbatch *b = open_take(p, pp);
    ASSERT(b->record_count > 0);
    if (p->producer_id >= 0) {
        b->bld.producer_epoch = pp->epoch;
        b->bld.sequence_base = pp->sequence_next;
        b->sequence_base = pp->sequence_next;
        pp->sequence_next = sequence_add(pp->sequence_next, b->record_count);
    }
    size_t bytes = 0;
    int rc = batch_builder_finish(&b->bld, &p->zctx, &bytes);
    if (rc == -NG_ENOSPACE) {
        /* Larger than the compression scratch (a record of its own): sent
         * uncompressed. The builder is unchanged by the refusal. */
        b->bld.codec = BATCH_CODEC_NONE;
        rc = batch_builder_finish(&b->bld, NULL, &bytes);
    }
    ASSERT(rc == 0);
    b->bytes = bytes;
    b->state = PB_QUEUED;
    if (pp->tail != NULL) {
        pp->tail->next = b;
    } else {
        pp->head = b;
    }
    pp->tail = b;
    b->next = NULL;
    pp->queued++;
    p->batches_closed++;
    sender_timer_at(p, b->created_ms + (int64_t)p->cfg.delivery_timeout_ms);
    if (t->sticky == partition &&
        (!b->grown || t->sticky_bytes + p->pool_buf_bytes > grown_limit(p, t))) {
        /* Keyless records move on to another partition when their batch
         * goes without having grown: the pipeline is not full, and each
         * batch picks a partition afresh (Kafka's sticky partitioner,
         * KIP-480). A grown batch went because its partition could send
         * again: they stay until the partition took about what one batch
         * grows to, and move on as a batch closes (as Kafka's do,
         * KIP-794), so that none is left with a few records. */
        t->sticky = -1;
    }
}

static int32_t pick_partition(struct nagare_producer *p, struct ptopic *t, const void *key,
                              int32_t key_len)
{
    if (key_len >= 0) {
        return (int32_t)(XXH3_64bits(key_len > 0 ? key : "", (size_t)key_len) %
                         (uint64_t)t->partition_count);
    }
    if (t->sticky < 0 || t->sticky >= t->partition_count) {
        /* xorshift64: cheap, and the sticky choice needs no quality. */
        p->rng ^= p->rng << 13;
        p->rng ^= p->rng >> 7;
        p->rng ^= p->rng << 17;
        t->sticky = (int32_t)(p->rng % (uint64_t)t->partition_count);
        t->sticky_bytes = 0;
    }
    return t->sticky;
}

/* Adds the record (and its opaque) to a batch; the opaque's slot is made
 * first, so a failure leaves the batch as it was. */
static int batch_add(struct pbatch *b, int64_t ts_ms, const void *key, int32_t key_len,
                     const void *value, int32_t value_len, const struct batch_kv *hdrs,
                     uint32_t hdr_count, void *opaque)
{
    size_t pos = b->bld.pos;
    int rc = opaques_room(&b->opaques, &b->opaque_cap, (uint32_t)b->record_count + 1);
    if (rc != 0) {
        return rc;
    }
    rc = batch_builder_add(&b->bld, ts_ms, key, key_len, value, value_len, hdrs, hdr_count);
    if (rc != 0) {
        return rc;
    }
    b->opaques[b->record_count++] = opaque;
    ASSERT(b->record_count == b->bld.record_count);
    b->added_bytes = b->bld.pos - pos;
    return 0;
}

/* Moves the open batch b into a grown buffer: its records, builder and
 * opaques go over as they are, and b goes back to its pool. Returns the
 * batch now open, or NULL when there is no room (b stays as it was). */
static struct pbatch *batch_move_grown(struct nagare_producer *p, struct ppart *pp,
                                       struct pbatch *b)
{
    struct pbatch *g;
    if (batch_get(p, p->grown_buf_bytes, false, true, &g) != 0) {
        return NULL;
    }
    struct pbatch keep = *g;
    *g = *b;
    g->buf = keep.buf;
    g->cap = keep.cap;
    g->pooled = false;
    g->grown = true;
    memcpy(g->buf, b->buf, b->bld.pos);
    g->bld.buf = g->buf;
    b->opaques = keep.opaques; /* g took b's; b keeps g's old ones */
    b->opaque_cap = keep.opaque_cap;
    if (g->overdue) {
        ASSERT(g->open_prev == NULL && g->open_next == NULL);
    } else if (g->open_prev != NULL) {
        g->open_prev->open_next = g;
    } else {
        p->open_head = g;
    }
    if (!g->overdue && g->open_next != NULL) {
        g->open_next->open_prev = g;
    } else if (!g->overdue) {
        p->open_tail = g;
    }
    pp->open = g;
    p->open_grown_bytes += g->cap;
    accum_release(p, b);
    return g;
}

/* pp's open batch is full: lets it take batch_bytes more when its partition
 * could not send it now anyway (BATCH_GROWTH_MAX). Returns whether it did;
 * if not, the caller closes it. Keyless records stay with it
 * (grown_limit()). */
static bool batch_grow(struct nagare_producer *p, struct ptopic *t, int32_t partition)
{
    struct ppart *pp = &t->parts[partition];
    struct pbatch *b = pp->open;
    size_t limit = grown_limit(p, t);
    if ((!b->pooled && !b->grown) || b->bld.cap + p->pool_buf_bytes > limit ||
        sender_part_ready(p, pp, clock_mono_ms())) {
        return false;
    }
    if (!b->grown) {
        /* The open batches that grew hold at most half the buffer, so that
         * grown buffers still filling never starve the partitions that are
         * sending. Not the whole buffer's half: under backpressure it
         * fills with batches queued behind those in flight, and a rule on
         * bytes_used then stopped all growth, leaving the queue to
         * batch_bytes batches, one per partition per request. A queued
         * grown batch went full, or its partition could send. */
        if (p->open_grown_bytes + p->grown_buf_bytes > p->cfg.buffer_bytes_max / 2 ||
            (b = batch_move_grown(p, pp, b)) == NULL) {
            return false;
        }
    }
    b->bld.cap += p->pool_buf_bytes;
    return true;
}

/* append_to(): the partition's batch was full and closed, and keyless
 * records moved on: the record goes where they went, not alone into a new
 * batch of the partition they left (it would go with that one record). */
#define APPEND_MOVED_ON 1

/* accum_append() once the partition is known (sticky: it is the keyless
 * records' partition). Returns as accum_append(), or APPEND_MOVED_ON. */
static int append_to(struct nagare_producer *p, struct ptopic *t, int32_t partition, bool sticky,
                     int64_t ts_ms, const void *key, int32_t key_len, const void *value,
                     int32_t value_len, const struct batch_kv *hdrs, uint32_t hdr_count,
                     void *opaque, bool force)
{
    struct ppart *pp = &t->parts[partition];
    if (pp->open != NULL) {
        int rc =
            batch_add(pp->open, ts_ms, key, key_len, value, value_len, hdrs, hdr_count, opaque);
        if (rc == -NG_ENOSPACE && batch_grow(p, t, partition)) {
            rc =
                batch_add(pp->open, ts_ms, key, key_len, value, value_len, hdrs, hdr_count, opaque);
        }
        if (rc != -NG_ENOSPACE) {
            return rc;
        }
        accum_close(p, t, partition); /* full: it goes out, a new one starts */
        if (sticky && t->sticky != partition) {
            return APPEND_MOVED_ON;
        }
    }
    size_t limit = topic_batch_limit(p, t);
    size_t need = BATCH_HEADER_BYTES + record_bytes_bound(key_len, value_len, hdrs, hdr_count);
    if (need > limit) {
        return -NG_ETOOBIG;
    }
    struct pbatch *b;
    int rc = batch_get(p, need, force, false, &b);
    if (rc != 0) {
        return rc;
    }
    batch_open(p, t, partition, b, b->pooled ? limit : need);
    rc = batch_add(b, ts_ms, key, key_len, value, value_len, hdrs, hdr_count, opaque);
    if (rc != 0) {
        (void)open_take(p, pp);
        accum_release(p, b);
        return rc == -NG_ENOSPACE ? -NG_ETOOBIG : rc;
    }
    return 0;
}

int accum_append(struct nagare_producer *p, struct ptopic *t, int32_t partition, int64_t ts_ms,
                 const void *key, int32_t key_len, const void *value, int32_t value_len,
                 const struct batch_kv *hdrs, uint32_t hdr_count, void *opaque, bool force)
{
    ASSERT(t->state == PT_KNOWN && t->partition_count > 0);
    bool any = partition == NAGARE_PARTITION_ANY;
    bool sticky = any && key_len < 0;
    if (!any && (partition < 0 || partition >= t->partition_count)) {
        return -NG_EUNKNOWN_TOPIC;
    }
    int rc = APPEND_MOVED_ON;
    while (rc == APPEND_MOVED_ON) { /* each turn closes a full batch */
        if (any) {
            partition = pick_partition(p, t, key, key_len);
        }
        rc = append_to(p, t, partition, sticky, ts_ms, key, key_len, value, value_len, hdrs,
                       hdr_count, opaque, force);
    }
    /* The record is in the partition's open batch (a batch closing on the
     * way may have moved the records on). */
    if (rc == 0 && sticky && t->sticky == partition) {
        t->sticky_bytes += t->parts[partition].open->added_bytes;
    }
    return rc;
}

static void hold_reset(struct nagare_producer *p, struct phold *h);

/* Fails held records once the delivery timeout passed. Returns when it
 * will, or INT64_MAX. */
static int64_t hold_expire(struct nagare_producer *p, struct ptopic *t, int64_t now_ms)
{
    struct phold *h = &t->hold;
    if (h->count == 0) {
        return INT64_MAX;
    }
    int64_t due = h->first_ms + (int64_t)p->cfg.delivery_timeout_ms;
    if (now_ms < due) {
        return due;
    }
    for (uint32_t i = 0; i < h->count; i++) {
        accum_fail_record(p, t, h->partitions[i], -NG_ETIMEOUT, h->opaques[i]);
    }
    hold_reset(p, h);
    return INT64_MAX;
}

int64_t accum_linger(struct nagare_producer *p, int64_t now_ms)
{
    int64_t next = INT64_MAX;
    for (uint32_t i = 0; p->topics_holding > 0 && i < p->topic_slots; i++) {
        struct ptopic *t = p->topics[i];
        if (t != NULL && t->state != PT_KNOWN) {
            int64_t due = hold_expire(p, t, now_ms);
            next = due < next ? due : next;
        }
    }
    /* Oldest first: the first batch not yet due ends the walk. */
    while (p->open_head != NULL) {
        struct pbatch *b = p->open_head;
        int64_t due = b->created_ms + p->cfg.linger_ms;
        if (!p->flushing && now_ms < due) {
            next = due < next ? due : next;
            break;
        }
        /* Only a known topic has partitions: a topic that goes missing
         * fails its open batches (accum_topic_fail()). */
        ASSERT(b->topic->state == PT_KNOWN);
        struct ppart *pp = &b->topic->parts[b->partition];
        if (p->flushing || sender_part_ready(p, pp, now_ms)) {
            accum_close(p, b->topic, b->partition);
            continue;
        }
        /* Its partition cannot send now: closed, it would only wait in the
         * queue, while open it still takes records (and grows). It goes
         * as soon as the partition can (sendable()), or at its delivery
         * timeout (sender_timers()). Off the list, so that no walk passes
         * it again. */
        open_unlink(p, b);
        b->overdue = true;
        sender_timer_at(p, b->created_ms + (int64_t)p->cfg.delivery_timeout_ms);
    }
    return next;
}

/* ---- failures ---- */

void accum_fail_record(struct nagare_producer *p, struct ptopic *t, int32_t partition, int err,
                       void *opaque)
{
    if (p->failed_count == p->failed_cap) {
        uint32_t cap = p->failed_cap == 0 ? 16 : p->failed_cap * 2;
        struct pfailed *f = realloc(p->failed, cap * sizeof(*f));
        if (f == NULL) {
            /* Out of memory while failing: the report is lost but the
             * count stays right, so flush() still terminates. */
            p->outstanding--;
            return;
        }
        p->failed = f;
        p->failed_cap = cap;
    }
    p->failed[p->failed_count++] =
        (struct pfailed){.topic = t, .partition = partition, .err = err, .opaque = opaque};
}

/* ---- hold ---- */

static int hold_room(struct nagare_producer *p, struct phold *h, size_t need)
{
    size_t used = h->buf != NULL ? h->bld.pos : 0;
    if (h->buf != NULL && h->cap - used >= need) {
        return 0;
    }
    size_t cap = h->cap == 0 ? p->pool_buf_bytes : h->cap * 2;
    while (cap < used + need) {
        cap *= 2;
    }
    if (p->bytes_used - h->cap + cap > p->cfg.buffer_bytes_max) {
        return -NG_EBUSY;
    }
    uint8_t *buf = realloc(h->buf, cap);
    if (buf == NULL) {
        return -ENOMEM;
    }
    if (h->buf == NULL) {
        batch_builder_init(&h->bld, buf, cap, BATCH_CODEC_NONE, -1, 0, -1);
    }
    /* The builder writes at buf + pos: moving its buffer keeps its state. */
    h->bld.buf = buf;
    h->bld.cap = cap;
    p->bytes_used = p->bytes_used - h->cap + cap;
    h->buf = buf;
    h->cap = cap;
    return 0;
}

static int hold_slots(struct phold *h)
{
    if (h->count < h->slots) {
        return 0;
    }
    uint32_t n = h->slots == 0 ? 64 : h->slots * 2;
    void **o = realloc(h->opaques, n * sizeof(*o));
    if (o == NULL) {
        return -ENOMEM;
    }
    h->opaques = o;
    int32_t *parts = realloc(h->partitions, n * sizeof(*parts));
    if (parts == NULL) {
        return -ENOMEM;
    }
    h->partitions = parts;
    h->slots = n;
    return 0;
}

int accum_hold(struct nagare_producer *p, struct ptopic *t, int32_t partition, int64_t ts_ms,
               const void *key, int32_t key_len, const void *value, int32_t value_len,
               const struct batch_kv *hdrs, uint32_t hdr_count, void *opaque)
{
    struct phold *h = &t->hold;
    size_t need = BATCH_HEADER_BYTES + record_bytes_bound(key_len, value_len, hdrs, hdr_count);
    if (need > BATCH_BYTES_LIMIT) {
        return -NG_ETOOBIG;
    }
    int rc = hold_slots(h);
    rc = rc == 0 ? hold_room(p, h, need) : rc;
    if (rc != 0) {
        return rc;
    }
    rc = batch_builder_add(&h->bld, ts_ms, key, key_len, value, value_len, hdrs, hdr_count);
    if (rc != 0) {
        return rc;
    }
    h->opaques[h->count] = opaque;
    h->partitions[h->count] = partition;
    if (h->count++ == 0) {
        h->first_ms = clock_mono_ms();
        p->topics_holding++;
    }
    return 0;
}

static void hold_reset(struct nagare_producer *p, struct phold *h)
{
    ASSERT(p->bytes_used >= h->cap);
    p->bytes_used -= h->cap;
    if (h->count > 0) {
        ASSERT(p->topics_holding > 0);
        p->topics_holding--;
    }
    free(h->buf);
    h->buf = NULL;
    h->cap = 0;
    h->count = 0;
}

/* Decodes a held record's headers into p->kv. */
static int held_headers(struct nagare_producer *p, struct batch_record *rec)
{
    if (rec->header_count > p->kv_cap) {
        struct batch_kv *kv = realloc(p->kv, rec->header_count * sizeof(*kv));
        if (kv == NULL) {
            return -ENOMEM;
        }
        p->kv = kv;
        p->kv_cap = rec->header_count;
    }
    for (uint32_t i = 0; i < rec->header_count; i++) {
        int rc = batch_record_next_header(rec, &p->kv[i]);
        ASSERT(rc == 1); /* we built it */
    }
    return 0;
}

/* Moves held records into their partitions' batches, in the order sent. */
static void hold_replay(struct nagare_producer *p, struct ptopic *t)
{
    struct phold *h = &t->hold;
    size_t bytes;
    int rc = batch_builder_finish(&h->bld, NULL, &bytes);
    ASSERT(rc == 0);
    struct batch_reader br;
    rc = batch_reader_open(&br, h->buf, bytes, bytes, NULL, NULL, 0);
    ASSERT(rc == 0);
    struct batch_record rec;
    for (uint32_t i = 0; i < h->count; i++) {
        rc = batch_reader_next(&br, &rec);
        ASSERT(rc == 1);
        rc = held_headers(p, &rec);
        if (rc == 0) {
            rc = accum_append(p, t, h->partitions[i], rec.timestamp_ms, rec.key, rec.key_len,
                              rec.value, rec.value_len, p->kv, rec.header_count, h->opaques[i],
                              true);
        }
        if (rc != 0) {
            accum_fail_record(p, t, h->partitions[i], rc, h->opaques[i]);
        }
    }
    hold_reset(p, h);
}

int accum_topic_known(struct nagare_producer *p, struct ptopic *t, int32_t partition_count,
                      uint32_t batch_bytes_max)
{
    ASSERT(partition_count > 0);
    if (partition_count > t->parts_len) {
        struct ppart *parts = realloc(t->parts, (size_t)partition_count * sizeof(*parts));
        if (parts == NULL) {
            return -ENOMEM;
        }
        memset(parts + t->parts_len, 0, (size_t)(partition_count - t->parts_len) * sizeof(*parts));
        t->parts = parts;
        t->parts_len = partition_count;
    }
    t->partition_count = partition_count;
    t->batch_bytes_max = batch_bytes_max;
    t->state = PT_KNOWN;
    t->probed = false;
    if (t->hold.count > 0) {
        hold_replay(p, t);
    } else if (t->hold.buf != NULL) {
        hold_reset(p, &t->hold);
    }
    return 0;
}

void accum_topic_fail(struct nagare_producer *p, struct ptopic *t, int err)
{
    for (uint32_t i = 0; i < t->hold.count; i++) {
        accum_fail_record(p, t, t->hold.partitions[i], err, t->hold.opaques[i]);
    }
    if (t->hold.buf != NULL) {
        hold_reset(p, &t->hold);
    }
    for (int32_t k = 0; k < t->parts_len; k++) {
        struct ppart *pp = &t->parts[k];
        if (pp->open != NULL) {
            sender_complete(p, open_take(p, pp), err, -1);
        }
        struct pbatch *b = pp->head;
        while (b != NULL) {
            struct pbatch *next = b->next;
            if (b->state == PB_QUEUED) {
                sender_complete(p, b, err, -1);
            }
            b = next;
        }
    }
}

void accum_free_all(struct nagare_producer *p)
{
    for (uint32_t i = 0; i < p->topic_slots; i++) {
        struct ptopic *t = p->topics[i];
        if (t == NULL) {
            continue;
        }
        ASSERT(t->hold.count == 0);
        free(t->hold.buf);
        free(t->hold.opaques);
        free(t->hold.partitions);
        free(t->parts);
        free(t);
    }
    free(p->topics);
    p->topics = NULL;
    struct pbatch *pools[] = {p->pool, p->pool_grown};
    for (size_t i = 0; i < sizeof(pools) / sizeof(pools[0]); i++) {
        while (pools[i] != NULL) {
            struct pbatch *b = pools[i];
            pools[i] = b->next;
            free(b->opaques);
            free(b->buf);
            free(b);
        }
    }
    p->pool = NULL;
    p->pool_grown = NULL;
    free(p->failed);
    free(p->kv);
}
