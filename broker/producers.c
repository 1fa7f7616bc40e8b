#include "broker/producers.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"

static struct producer_state *slots_new(uint32_t count)
{
    struct producer_state *slots = malloc(count * sizeof(*slots));
    for (uint32_t i = 0; slots != NULL && i < count; i++) {
        slots[i].id = -1;
    }
    return slots;
}

int producers_init(struct producers *ps, uint32_t cap)
{
    ASSERT(cap >= 1 && cap <= (1u << 24));
    uint32_t max = PRODUCERS_SLOTS_MIN;
    while (max < 2 * cap) {
        max *= 2;
    }
    *ps = (struct producers){.slot_count = PRODUCERS_SLOTS_MIN, .slot_max = max, .cap = cap};
    ps->slots = slots_new(ps->slot_count);
    return ps->slots == NULL ? -ENOMEM : 0;
}

void producers_fini(struct producers *ps)
{
    free(ps->slots);
    ps->slots = NULL;
}

static uint32_t slot_home(const struct producers *ps, int64_t id)
{
    uint64_t x = (uint64_t)id * 0x9e3779b97f4a7c15ull;
    return (uint32_t)(x >> 32) & (ps->slot_count - 1);
}

static struct producer_state *find(struct producers *ps, int64_t id)
{
    for (uint32_t i = slot_home(ps, id);; i = (i + 1) & (ps->slot_count - 1)) {
        if (ps->slots[i].id == id) {
            return &ps->slots[i];
        }
        if (ps->slots[i].id == -1) {
            return NULL; /* half the slots are empty: the probe ends */
        }
    }
}

/* Removes the slot at i, shifting back later members of its probe run. */
static void remove_at(struct producers *ps, uint32_t i)
{
    uint32_t mask = ps->slot_count - 1;
    uint32_t j = i;
    for (;;) {
        ps->slots[i].id = -1;
        for (;;) {
            j = (j + 1) & mask;
            if (ps->slots[j].id == -1) {
                ps->count--;
                return;
            }
            uint32_t home = slot_home(ps, ps->slots[j].id);
            /* j may move to i when its home is not cyclically in (i, j] */
            bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
            if (!stays) {
                break;
            }
        }
        ps->slots[i] = ps->slots[j];
        i = j;
    }
}

static void evict_oldest(struct producers *ps)
{
    uint32_t oldest = UINT32_MAX;
    for (uint32_t i = 0; i < ps->slot_count; i++) {
        if (ps->slots[i].id != -1 &&
            (oldest == UINT32_MAX || ps->slots[i].used < ps->slots[oldest].used)) {
            oldest = i;
        }
    }
    ASSERT(oldest != UINT32_MAX);
    remove_at(ps, oldest);
}

/* Places s in a free slot of its probe run; the table has one. */
static struct producer_state *place(struct producers *ps, const struct producer_state *s)
{
    uint32_t i = slot_home(ps, s->id);
    while (ps->slots[i].id != -1) {
        i = (i + 1) & (ps->slot_count - 1);
    }
    ps->slots[i] = *s;
    ps->count++;
    return &ps->slots[i];
}

/* Doubles the slots, keeping every producer. False when memory is short:
 * the table is left as it was. */
static bool grow(struct producers *ps)
{
    ASSERT(ps->slot_count < ps->slot_max);
    struct producer_state *old = ps->slots;
    uint32_t old_count = ps->slot_count;
    struct producer_state *slots = slots_new(old_count * 2);
    if (slots == NULL) {
        return false;
    }
    ps->slots = slots;
    ps->slot_count = old_count * 2;
    ps->count = 0;
    for (uint32_t i = 0; i < old_count; i++) {
        if (old[i].id != -1) {
            place(ps, &old[i]);
        }
    }
    free(old);
    return true;
}

static struct producer_state *insert(struct producers *ps, int64_t id)
{
    /* At most half the slots are used, so every probe meets an empty one. */
    bool room = ps->count < ps->cap && ps->count + 1 <= ps->slot_count / 2;
    if (!room && ps->count < ps->cap && ps->slot_count < ps->slot_max) {
        room = grow(ps);
    }
    if (!room) {
        evict_oldest(ps);
    }
    ASSERT(ps->count + 1 <= ps->slot_count / 2 && ps->count < ps->cap);
    return place(ps, &(struct producer_state){.id = id});
}

/* Sequences run 0..INT32_MAX and wrap, as in Kafka. */
#define SEQUENCES (INT64_C(1) << 31)

static int32_t sequence_add(int32_t seq, int64_t n) { return (int32_t)((seq + n) % SEQUENCES); }

static int32_t sequence_after(int32_t last) { return sequence_add(last, 1); }

/* Whether a comes before b, within half the sequence space. */
static bool sequence_before(int32_t a, int32_t b)
{
    int64_t d = ((int64_t)b - a + SEQUENCES) % SEQUENCES;
    return d > 0 && d <= SEQUENCES / 2;
}

static const struct producer_batch *oldest_of(const struct producer_state *s)
{
    ASSERT(s->count > 0);
    return &s->recent[(s->newest + PRODUCER_BATCHES_KEPT - s->count + 1) % PRODUCER_BATCHES_KEPT];
}

int producers_check(struct producers *ps, const struct batch_header *h, int64_t *offset_out)
{
    ASSERT(h->producer_id >= 0);
    struct producer_state *s = find(ps, h->producer_id);
    if (s == NULL || h->producer_epoch > s->epoch) {
        return 0; /* a new producer or a new epoch starts afresh */
    }
    if (h->producer_epoch < s->epoch) {
        return -NG_EPRODUCER_FENCED;
    }
    for (uint8_t k = 0; k < s->count; k++) {
        const struct producer_batch *b = &s->recent[k];
        if (b->sequence_first == h->sequence_base) {
            if (b->sequence_last != h->sequence_base + h->last_offset_delta) {
                return -NG_EOUT_OF_ORDER; /* same start, different batch */
            }
            *offset_out = b->offset_base;
            return 1;
        }
    }
    if (s->count == 0) {
        return PRODUCERS_APPEND; /* its batches were forgotten: judged afresh */
    }
    const struct producer_batch *newest = &s->recent[s->newest];
    if (h->sequence_base == sequence_after(newest->sequence_last)) {
        return PRODUCERS_APPEND;
    }
    int32_t last = sequence_add(h->sequence_base, h->last_offset_delta);
    if (s->whole && sequence_before(last, oldest_of(s)->sequence_first)) {
        int64_t records =
            ((int64_t)newest->sequence_last - newest->sequence_first + SEQUENCES) % SEQUENCES + 1;
        *offset_out = newest->offset_base + records;
        return PRODUCERS_WRITTEN;
    }
    return -NG_EOUT_OF_ORDER;
}

void producers_record(struct producers *ps, const struct batch_header *h, bool from_log)
{
    if (h->producer_id < 0) {
        return;
    }
    struct producer_state *s = find(ps, h->producer_id);
    if (s == NULL) {
        s = insert(ps, h->producer_id);
    }
    if (h->producer_epoch != s->epoch || s->count == 0) {
        s->epoch = h->producer_epoch;
        s->count = 0;
        s->newest = PRODUCER_BATCHES_KEPT - 1;
        s->whole = from_log || h->sequence_base == 0;
    }
    s->newest = (uint8_t)((s->newest + 1) % PRODUCER_BATCHES_KEPT);
    s->recent[s->newest] = (struct producer_batch){
        .sequence_first = h->sequence_base,
        .sequence_last = sequence_add(h->sequence_base, h->last_offset_delta),
        .offset_base = h->offset_base,
    };
    if (s->count < PRODUCER_BATCHES_KEPT) {
        s->count++;
    }
    s->used = ++ps->clock;
}

/* Keeps s's recent batches, oldest to newest, for which keep() is true. */
static void keep_batches(struct producer_state *s,
                         bool (*keep)(const struct producer_batch *b, const void *arg),
                         const void *arg)
{
    struct producer_batch kept[PRODUCER_BATCHES_KEPT];
    uint8_t n = 0;
    for (uint8_t k = 0; k < s->count; k++) {
        uint8_t i = (uint8_t)((s->newest + PRODUCER_BATCHES_KEPT - s->count + 1 + k) %
                              PRODUCER_BATCHES_KEPT);
        if (keep(&s->recent[i], arg)) {
            kept[n++] = s->recent[i];
        }
    }
    memcpy(s->recent, kept, n * sizeof(kept[0]));
    s->count = n;
    s->newest = (uint8_t)(n > 0 ? n - 1 : PRODUCER_BATCHES_KEPT - 1);
}

static bool not_this_batch(const struct producer_batch *b, const void *arg)
{
    const struct batch_header *h = arg;
    return b->sequence_first != h->sequence_base || b->offset_base != h->offset_base;
}

void producers_forget(struct producers *ps, const struct batch_header *h)
{
    struct producer_state *s = h->producer_id >= 0 ? find(ps, h->producer_id) : NULL;
    if (s == NULL || s->epoch != h->producer_epoch) {
        return;
    }
    keep_batches(s, not_this_batch, h);
}

void producers_clear(struct producers *ps)
{
    for (uint32_t i = 0; i < ps->slot_count; i++) {
        ps->slots[i].id = -1;
    }
    ps->count = 0;
}
