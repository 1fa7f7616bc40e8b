#include "broker/producers.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"

int producers_init(struct producers *ps, uint32_t cap)
{
    ASSERT(cap >= 1 && cap <= (1u << 24));
    uint32_t slots = 4;
    while (slots < 2 * cap) {
        slots *= 2;
    }
    *ps = (struct producers){.slot_count = slots, .cap = cap};
    ps->slots = malloc(slots * sizeof(*ps->slots));
    if (ps->slots == NULL) {
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < slots; i++) {
        ps->slots[i].id = -1;
    }
    return 0;
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
        if (ps->slots[i].id != -1 && (oldest == UINT32_MAX || ps->slots[i].used < ps->slots[oldest].used)) {
            oldest = i;
        }
    }
    ASSERT(oldest != UINT32_MAX);
    remove_at(ps, oldest);
}

static struct producer_state *insert(struct producers *ps, int64_t id)
{
    if (ps->count == ps->cap) {
        evict_oldest(ps);
    }
    uint32_t i = slot_home(ps, id);
    while (ps->slots[i].id != -1) {
        i = (i + 1) & (ps->slot_count - 1);
    }
    ps->slots[i] = (struct producer_state){.id = id};
    ps->count++;
    return &ps->slots[i];
}

static int32_t sequence_after(int32_t last)
{
    return last == INT32_MAX ? 0 : last + 1; /* sequences wrap, as in Kafka */
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
    if (s->count > 0 && h->sequence_base != sequence_after(s->recent[s->newest].sequence_last)) {
        return -NG_EOUT_OF_ORDER;
    }
    return 0;
}

void producers_record(struct producers *ps, const struct batch_header *h)
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
    }
    s->newest = (uint8_t)((s->newest + 1) % PRODUCER_BATCHES_KEPT);
    s->recent[s->newest] = (struct producer_batch){
        .sequence_first = h->sequence_base,
        .sequence_last = (int32_t)((int64_t)h->sequence_base + h->last_offset_delta),
        .offset_base = h->offset_base,
    };
    if (s->count < PRODUCER_BATCHES_KEPT) {
        s->count++;
    }
    s->used = ++ps->clock;
}

void producers_forget(struct producers *ps, const struct batch_header *h)
{
    struct producer_state *s = h->producer_id >= 0 ? find(ps, h->producer_id) : NULL;
    if (s == NULL || s->epoch != h->producer_epoch) {
        return;
    }
    /* Oldest to newest, without the forgotten batch. */
    struct producer_batch kept[PRODUCER_BATCHES_KEPT];
    uint8_t n = 0;
    for (uint8_t k = 0; k < s->count; k++) {
        uint8_t i = (uint8_t)((s->newest + PRODUCER_BATCHES_KEPT - s->count + 1 + k) %
                              PRODUCER_BATCHES_KEPT);
        if (s->recent[i].sequence_first != h->sequence_base ||
            s->recent[i].offset_base != h->offset_base) {
            kept[n++] = s->recent[i];
        }
    }
    memcpy(s->recent, kept, n * sizeof(kept[0]));
    s->count = n;
    s->newest = (uint8_t)(n > 0 ? n - 1 : PRODUCER_BATCHES_KEPT - 1);
}
