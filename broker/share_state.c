/*
 * broker/share_state.c — share-group state: windows of locked records per
 * (group, topic, partition), and their durable encoding. See share_state.h.
 *
 * Each part keeps its window in a ring of inflight_max slots, the record at
 * offset o in slot o % inflight_max: since end - start <= inflight_max, two
 * records of one window never share a slot, and a slot is free (state 0)
 * exactly when its offset is outside the window.
 */
#include "broker/share_state.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/bytes.h"
#include "base/err.h"
#include "base/log.h"
#include "broker/group_state.h"
#include "net/proto.h"

static_assert(SHARE_NAME_BYTES_MAX >= PROTO_TOPIC_NAME_BYTES_MAX, "every topic name fits");
static_assert(SHARE_NAME_BYTES_MAX >= GROUP_ID_BYTES_MAX, "every group id fits");
static_assert(SHARE_NAME_BYTES_MAX <= UINT16_MAX, "names have be16 lengths");
static_assert(SHARE_DELIVERY_LIMIT < UINT16_MAX, "a count past the limit still fits a u16");
static_assert(SHARE_INFLIGHT_LIMIT <= UINT32_MAX / SHARE_RANGE_BYTES_MAX,
              "a window's ranges are counted in a u32");
static_assert(SHARE_FLUSH_BYTES_MIN(SHARE_INFLIGHT_LIMIT) <= 8u * 1024 * 1024,
              "the largest record fits the state log's default batch_bytes_max");

#define SHARE_FORMAT_VERSION 1
#define SHARE_FLAG_SNAPSHOT 0x01u

/* share_rec.flags */
#define REC_DIRTY 0x01u /* changed since the part's last record */
#define REC_TAKEN 0x02u /* DEADLETTER handed to the caller to copy */
#define REC_REASON_SHIFT 2
#define REC_REASON_MASK 0x0cu /* enum share_reason */

/* A part's identity, borrowed from the caller or a decoded key. */
struct share_key {
    const char *group;
    size_t group_len;
    const char *topic;
    size_t topic_len;
    int32_t partition;
};

/* A record as persisted (share_state.h, "Durable format"). */
struct image {
    uint8_t state;
    uint8_t reason;
    uint16_t count;
};

/* ---- configuration ---- */

void share_config_default(struct share_config *c)
{
    ASSERT(c != NULL);
    *c = (struct share_config){
        .inflight_max = 1000, .delivery_max = 5, .lock_ms = 30000, .parts_max = 4096};
}

int share_config_check(const struct share_config *c)
{
    ASSERT(c != NULL);
    if (c->inflight_max < 1 || c->inflight_max > SHARE_INFLIGHT_LIMIT || c->delivery_max < 1 ||
        c->delivery_max > SHARE_DELIVERY_LIMIT || c->lock_ms < 1 ||
        c->lock_ms > SHARE_LOCK_MS_LIMIT || c->parts_max < 1 || c->parts_max > SHARE_PARTS_LIMIT) {
        return -NG_EBADARG;
    }
    return 0;
}

const char *share_reason_str(enum share_reason reason)
{
    switch (reason) {
    case SHARE_REASON_REJECTED:
        return "rejected";
    case SHARE_REASON_MAX_DELIVERIES:
        return "max deliveries";
    case SHARE_REASON_NONE:
        break;
    }
    return "";
}

/* ---- records of a window ---- */

static bool state_finished(uint8_t state)
{
    return state == SHARE_ACCEPTED || state == SHARE_ARCHIVED;
}

static struct share_rec *rec_at(const struct share_part *sp, int64_t off)
{
    ASSERT(off >= sp->start && off < sp->end);
    return &sp->recs[(uint64_t)off % sp->cap];
}

static enum share_reason rec_reason(const struct share_rec *rec)
{
    return (enum share_reason)((rec->flags & REC_REASON_MASK) >> REC_REASON_SHIFT);
}

/* Moves rec to state (0: out of the window), keeping the counters; leaving
 * a state drops the taken mark. */
static void rec_set(struct share_part *sp, struct share_rec *rec, uint8_t state)
{
    ASSERT(state < SHARE_STATE_COUNT && rec->state < SHARE_STATE_COUNT);
    ASSERT(state != rec->state);
    if (rec->state != 0) {
        ASSERT(sp->counts[rec->state] > 0);
        sp->counts[rec->state]--;
    }
    if (rec->flags & REC_TAKEN) {
        ASSERT(rec->state == SHARE_DEADLETTER && sp->dead_taken > 0);
        sp->dead_taken--;
        rec->flags &= (uint8_t)~REC_TAKEN;
    }
    if (state != 0) {
        sp->counts[state]++;
    }
    rec->state = state;
    if (state != SHARE_ACQUIRED) {
        rec->member = SHARE_MEMBER_NONE;
        rec->deadline_ms = 0;
    }
}

static void rec_set_reason(struct share_rec *rec, enum share_reason reason)
{
    rec->flags = (uint8_t)((rec->flags & ~REC_REASON_MASK) | (reason << REC_REASON_SHIFT));
}

static void part_mark_dirty(struct share_part *sp)
{
    if (sp->dirty) {
        return;
    }
    struct share_reg *r = sp->reg;
    sp->dirty = true;
    sp->dirty_next = NULL;
    if (r->dirty_tail != NULL) {
        r->dirty_tail->dirty_next = sp;
    } else {
        r->dirty_head = sp;
    }
    r->dirty_tail = sp;
}

static void rec_mark_dirty(struct share_part *sp, struct share_rec *rec, int64_t off)
{
    rec->flags |= REC_DIRTY;
    sp->dirty_lo = off < sp->dirty_lo ? off : sp->dirty_lo;
    sp->dirty_hi = off > sp->dirty_hi ? off : sp->dirty_hi;
    part_mark_dirty(sp);
}

static void rec_dead_letter(struct share_part *sp, struct share_rec *rec, enum share_reason reason)
{
    rec_set(sp, rec, SHARE_DEADLETTER);
    rec_set_reason(rec, reason);
    sp->reg->stats.dead_lettered++;
}

/* A lock ends without an accept: release, expiry, the member leaving. */
static void lock_end(struct share_part *sp, struct share_rec *rec, int64_t off)
{
    ASSERT(rec->state == SHARE_ACQUIRED && rec->delivery_count >= 1);
    if (rec->delivery_count >= sp->reg->cfg.delivery_max) {
        rec_dead_letter(sp, rec, SHARE_REASON_MAX_DELIVERIES);
    } else {
        rec_set(sp, rec, SHARE_AVAILABLE);
    }
    rec_mark_dirty(sp, rec, off);
}

/* Moves start over finished records, freeing their slots. Returns whether
 * it moved. */
static bool advance_start(struct share_part *sp)
{
    int64_t before = sp->start;
    while (sp->start < sp->end) {
        struct share_rec *rec = rec_at(sp, sp->start);
        if (!state_finished(rec->state)) {
            break;
        }
        rec_set(sp, rec, 0);
        rec->flags = 0;
        sp->start++;
    }
    return sp->start != before;
}

/* Frees the window's records below s (all of them when s >= end) and moves
 * start (and end, if below) to s. Precondition: s >= start. */
static void window_drop_below(struct share_part *sp, int64_t s)
{
    ASSERT(s >= sp->start);
    int64_t stop = s < sp->end ? s : sp->end;
    for (int64_t off = sp->start; off < stop; off++) {
        struct share_rec *rec = rec_at(sp, off);
        rec_set(sp, rec, 0);
        rec->flags = 0;
    }
    sp->start = s;
    sp->end = sp->end > s ? sp->end : s;
}

/* Takes offset end into the window as AVAILABLE with count 0. */
static struct share_rec *window_push(struct share_part *sp)
{
    ASSERT(sp->end - sp->start < (int64_t)sp->cap);
    struct share_rec *rec = &sp->recs[(uint64_t)sp->end % sp->cap];
    ASSERT(rec->state == 0); /* the slot's previous offset left the window */
    *rec = (struct share_rec){.member = SHARE_MEMBER_NONE};
    sp->end++;
    rec_set(sp, rec, SHARE_AVAILABLE);
    return rec;
}

/* ---- the registry ---- */

int share_reg_init(struct share_reg *r, const struct share_config *cfg)
{
    ASSERT(r != NULL && cfg != NULL && share_config_check(cfg) == 0);
    memset(r, 0, sizeof(*r));
    r->cfg = *cfg;
    r->scratch_bytes = SHARE_KEY_BYTES_MAX + SHARE_VALUE_BYTES_MAX(cfg->inflight_max);
    r->parts = calloc(cfg->parts_max, sizeof(*r->parts));
    r->scratch = malloc(r->scratch_bytes);
    if (r->parts == NULL || r->scratch == NULL) {
        free(r->parts);
        free(r->scratch);
        memset(r, 0, sizeof(*r));
        return -ENOMEM;
    }
    return 0;
}

static void part_free(struct share_part *sp)
{
    free(sp->recs);
    free(sp);
}

void share_reg_fini(struct share_reg *r)
{
    ASSERT(r != NULL);
    for (uint32_t i = 0; i < r->count; i++) {
        part_free(r->parts[i]);
    }
    while (r->gone != NULL) {
        struct share_part *sp = r->gone;
        r->gone = sp->gone_next;
        part_free(sp);
    }
    free(r->parts);
    free(r->scratch);
    memset(r, 0, sizeof(*r));
}

static int bytes_cmp(const char *a, size_t a_len, const char *b, size_t b_len)
{
    size_t n = a_len < b_len ? a_len : b_len;
    int c = n > 0 ? memcmp(a, b, n) : 0;
    if (c != 0) {
        return c;
    }
    return a_len < b_len ? -1 : a_len > b_len;
}

/* Orders parts by group, then topic, then partition; group_only compares
 * the group alone (a group's parts are contiguous). */
static int part_cmp(const struct share_part *sp, const struct share_key *k, bool group_only)
{
    int c = bytes_cmp(sp->group, sp->group_len, k->group, k->group_len);
    if (c != 0 || group_only) {
        return c;
    }
    c = bytes_cmp(sp->topic, sp->topic_len, k->topic, k->topic_len);
    if (c != 0) {
        return c;
    }
    return sp->partition < k->partition ? -1 : sp->partition > k->partition;
}

/* Index of the first part not below k. */
static uint32_t lower_bound(const struct share_reg *r, const struct share_key *k, bool group_only)
{
    uint32_t lo = 0;
    uint32_t hi = r->count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (part_cmp(r->parts[mid], k, group_only) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

static bool key_names_ok(const struct share_key *k)
{
    return k->group != NULL && k->topic != NULL && k->group_len >= 1 &&
           k->group_len <= SHARE_NAME_BYTES_MAX && k->topic_len >= 1 &&
           k->topic_len <= SHARE_NAME_BYTES_MAX;
}

static struct share_part *find_key(struct share_reg *r, const struct share_key *k)
{
    uint32_t i = lower_bound(r, k, false);
    if (i < r->count && part_cmp(r->parts[i], k, false) == 0) {
        return r->parts[i];
    }
    return NULL;
}

struct share_part *share_reg_find(struct share_reg *r, const char *group, size_t group_len,
                                  const char *topic, size_t topic_len, int32_t partition)
{
    ASSERT(r != NULL);
    struct share_key k = {group, group_len, topic, topic_len, partition};
    if (!key_names_ok(&k)) {
        return NULL;
    }
    return find_key(r, &k);
}

/* Creates the part for k (not yet present) with window [start, start). */
static int part_create(struct share_reg *r, const struct share_key *k, int64_t start,
                       struct share_part **out)
{
    ASSERT(key_names_ok(k) && k->partition >= 0 && start >= 0);
    if (r->count == r->cfg.parts_max) {
        return -NG_ETOOBIG;
    }
    struct share_part *sp = calloc(1, sizeof(*sp));
    struct share_rec *recs = calloc(r->cfg.inflight_max, sizeof(*recs));
    if (sp == NULL || recs == NULL) {
        free(sp);
        free(recs);
        return -ENOMEM;
    }
    memcpy(sp->group, k->group, k->group_len);
    memcpy(sp->topic, k->topic, k->topic_len);
    sp->group_len = (uint16_t)k->group_len;
    sp->topic_len = (uint16_t)k->topic_len;
    sp->partition = k->partition;
    sp->start = start;
    sp->end = start;
    sp->recs = recs;
    sp->cap = r->cfg.inflight_max;
    sp->deadline_min = INT64_MAX;
    sp->dirty_lo = INT64_MAX;
    sp->dirty_hi = -1;
    sp->reg = r;
    uint32_t i = lower_bound(r, k, false);
    memmove(&r->parts[i + 1], &r->parts[i], (r->count - i) * sizeof(*r->parts));
    r->parts[i] = sp;
    r->count++;
    *out = sp;
    return 0;
}

int share_reg_open(struct share_reg *r, const char *group, size_t group_len, const char *topic,
                   size_t topic_len, int32_t partition, int64_t start_offset,
                   struct share_part **out)
{
    ASSERT(r != NULL && out != NULL);
    *out = NULL;
    if (r->failed != 0) {
        return r->failed;
    }
    struct share_key k = {group, group_len, topic, topic_len, partition};
    if (!key_names_ok(&k)) {
        return -NG_EBADNAME;
    }
    if (partition < 0 || start_offset < 0) {
        return -NG_EBADARG;
    }
    *out = find_key(r, &k);
    if (*out != NULL) {
        return 0;
    }
    int rc = part_create(r, &k, start_offset, out);
    if (rc == 0) {
        (*out)->snapshot_due = true; /* its first record says where it starts */
        part_mark_dirty(*out);
    }
    return rc;
}

/* Takes parts[i] out of the table. */
static struct share_part *part_unlist(struct share_reg *r, uint32_t i)
{
    ASSERT(i < r->count);
    struct share_part *sp = r->parts[i];
    memmove(&r->parts[i], &r->parts[i + 1], (r->count - i - 1) * sizeof(*r->parts));
    r->count--;
    return sp;
}

void share_reg_drop_topic(struct share_reg *r, const char *topic, size_t topic_len,
                          uint32_t *dropped_out)
{
    *dropped_out = 0;
    for (uint32_t i = 0; i < r->count;) {
        struct share_part *sp = r->parts[i];
        if (sp->topic_len != topic_len || memcmp(sp->topic, topic, topic_len) != 0) {
            i++;
            continue;
        }
        part_unlist(r, i);
        sp->gone = true;
        sp->gone_next = r->gone;
        r->gone = sp;
        part_mark_dirty(sp); /* for its tombstone */
        (*dropped_out)++;
    }
}

/* Frees a gone part once nothing needs it: its tombstone flushed and no
 * dead-letter copy in flight. */
static void gone_maybe_free(struct share_part *sp)
{
    ASSERT(sp->gone);
    if (sp->dirty || sp->dead_taken > 0) {
        return;
    }
    struct share_part **link = &sp->reg->gone;
    while (*link != sp) {
        link = &(*link)->gone_next;
    }
    *link = sp->gone_next;
    part_free(sp);
}

uint32_t share_reg_count(const struct share_reg *r) { return r->count; }

struct share_part *share_reg_part(struct share_reg *r, uint32_t i)
{
    ASSERT(i < r->count);
    return r->parts[i];
}

/* ---- acquire ---- */

struct grant_out {
    struct share_grant *grants;
    uint32_t cap;
    uint32_t count;
    uint32_t records;
    uint32_t records_max;
    uint64_t member;
    int64_t deadline_ms;
};

/* Adds offset off, now delivered `count` times, to the grants. Returns
 * false when it needs a new grant and there is no room. */
static bool grant_add(struct grant_out *g, int64_t off, uint16_t count)
{
    if (g->count > 0) {
        struct share_grant *last = &g->grants[g->count - 1];
        if (last->last + 1 == off && last->delivery_count == count) {
            last->last = off;
            g->records++;
            return true;
        }
    }
    if (g->count == g->cap) {
        return false;
    }
    g->grants[g->count++] =
        (struct share_grant){.first = off, .last = off, .delivery_count = count};
    g->records++;
    return true;
}

static void rec_acquire(struct share_part *sp, struct share_rec *rec, const struct grant_out *g)
{
    /* The one way into ACQUIRED: two members never hold a record at once. */
    ASSERT(rec->state == SHARE_AVAILABLE && rec->member == SHARE_MEMBER_NONE);
    ASSERT(rec->delivery_count < UINT16_MAX);
    rec_set(sp, rec, SHARE_ACQUIRED);
    rec->member = g->member;
    rec->deadline_ms = g->deadline_ms;
    rec->delivery_count++;
    sp->reg->stats.deliveries++;
    sp->reg->stats.redeliveries += rec->delivery_count > 1;
    sp->deadline_min = g->deadline_ms < sp->deadline_min ? g->deadline_ms : sp->deadline_min;
}

/* Redeliveries: AVAILABLE records of the window, lowest offset first. */
static void acquire_available(struct share_part *sp, struct grant_out *g)
{
    for (int64_t off = sp->start;
         off < sp->end && sp->counts[SHARE_AVAILABLE] > 0 && g->records < g->records_max; off++) {
        struct share_rec *rec = rec_at(sp, off);
        if (rec->state != SHARE_AVAILABLE) {
            continue;
        }
        if (!grant_add(g, off, (uint16_t)(rec->delivery_count + 1))) {
            return;
        }
        rec_acquire(sp, rec, g);
    }
}

/* New offsets from end, up to log_end and the window bound. */
static void acquire_new(struct share_part *sp, struct grant_out *g, int64_t log_end)
{
    int64_t bound = sp->start + (int64_t)sp->cap;
    int64_t limit = log_end < bound ? log_end : bound;
    while (sp->end < limit && g->records < g->records_max) {
        if (!grant_add(g, sp->end, 1)) {
            return;
        }
        rec_acquire(sp, window_push(sp), g);
    }
}

int share_part_acquire(struct share_part *sp, uint64_t member, int64_t log_end,
                       uint32_t max_records, int64_t now_ms, int64_t lock_ms,
                       struct share_grant *grants, uint32_t grants_cap, uint32_t *count_out)
{
    ASSERT(sp != NULL && grants != NULL && count_out != NULL);
    ASSERT(member != SHARE_MEMBER_NONE && max_records >= 1 && grants_cap >= 1);
    ASSERT(now_ms >= 0 && lock_ms >= 1 && lock_ms <= SHARE_LOCK_MS_LIMIT && log_end >= 0);
    ASSERT(now_ms <= INT64_MAX - lock_ms);
    *count_out = 0;
    if (sp->reg->failed != 0) {
        return sp->reg->failed;
    }
    struct grant_out g = {.grants = grants,
                          .cap = grants_cap,
                          .records_max = max_records,
                          .member = member,
                          .deadline_ms = now_ms + lock_ms};
    acquire_available(sp, &g);
    acquire_new(sp, &g, log_end);
    ASSERT(sp->end - sp->start <= (int64_t)sp->cap);
    *count_out = g.count;
    return 0;
}

/* ---- acknowledge, expire, leave ---- */

static bool ackable(const struct share_rec *rec, uint64_t member, int64_t now_ms)
{
    return rec->state == SHARE_ACQUIRED && rec->member == member && now_ms < rec->deadline_ms;
}

int share_part_ack(struct share_part *sp, uint64_t member, int64_t first, int64_t last,
                   enum share_ack_type type, int64_t now_ms)
{
    ASSERT(sp != NULL && member != SHARE_MEMBER_NONE);
    if (sp->reg->failed != 0) {
        return sp->reg->failed;
    }
    if (first < 0 || first > last ||
        (type != SHARE_ACK_ACCEPT && type != SHARE_ACK_RELEASE && type != SHARE_ACK_REJECT)) {
        return -NG_EBADARG;
    }
    if (first < sp->start || last >= sp->end) {
        return -NG_ENOT_ACQUIRED;
    }
    for (int64_t off = first; off <= last; off++) {
        if (!ackable(rec_at(sp, off), member, now_ms)) {
            return -NG_ENOT_ACQUIRED;
        }
    }
    for (int64_t off = first; off <= last; off++) {
        struct share_rec *rec = rec_at(sp, off);
        if (type == SHARE_ACK_RELEASE) {
            lock_end(sp, rec, off);
            continue;
        }
        if (type == SHARE_ACK_ACCEPT) {
            rec_set(sp, rec, SHARE_ACCEPTED);
        } else {
            rec_dead_letter(sp, rec, SHARE_REASON_REJECTED);
        }
        rec_mark_dirty(sp, rec, off);
    }
    if (advance_start(sp)) {
        part_mark_dirty(sp);
    }
    return 0;
}

int share_part_expire(struct share_part *sp, int64_t now_ms, uint32_t *expired_out,
                      int64_t *next_deadline_ms_out)
{
    ASSERT(sp != NULL && expired_out != NULL && next_deadline_ms_out != NULL);
    *expired_out = 0;
    *next_deadline_ms_out = INT64_MAX;
    if (sp->reg->failed != 0) {
        return sp->reg->failed;
    }
    if (sp->counts[SHARE_ACQUIRED] == 0 || now_ms < sp->deadline_min) {
        sp->deadline_min = sp->counts[SHARE_ACQUIRED] == 0 ? INT64_MAX : sp->deadline_min;
        *next_deadline_ms_out = sp->deadline_min;
        return 0;
    }
    uint32_t left = sp->counts[SHARE_ACQUIRED];
    int64_t next = INT64_MAX;
    for (int64_t off = sp->start; off < sp->end && left > 0; off++) {
        struct share_rec *rec = rec_at(sp, off);
        if (rec->state != SHARE_ACQUIRED) {
            continue;
        }
        left--;
        if (rec->deadline_ms <= now_ms) {
            lock_end(sp, rec, off);
            (*expired_out)++;
        } else if (rec->deadline_ms < next) {
            next = rec->deadline_ms;
        }
    }
    sp->deadline_min = next;
    *next_deadline_ms_out = next;
    return 0;
}

int share_reg_expire(struct share_reg *r, int64_t now_ms, uint32_t *expired_out,
                     int64_t *next_deadline_ms_out)
{
    ASSERT(r != NULL && expired_out != NULL && next_deadline_ms_out != NULL);
    *expired_out = 0;
    *next_deadline_ms_out = INT64_MAX;
    for (uint32_t i = 0; i < r->count; i++) {
        uint32_t expired;
        int64_t next;
        int rc = share_part_expire(r->parts[i], now_ms, &expired, &next);
        if (rc != 0) {
            return rc;
        }
        *expired_out += expired;
        *next_deadline_ms_out = next < *next_deadline_ms_out ? next : *next_deadline_ms_out;
    }
    return 0;
}

int share_part_release_member(struct share_part *sp, uint64_t member, uint32_t *released_out)
{
    ASSERT(sp != NULL && member != SHARE_MEMBER_NONE && released_out != NULL);
    *released_out = 0;
    if (sp->reg->failed != 0) {
        return sp->reg->failed;
    }
    uint32_t left = sp->counts[SHARE_ACQUIRED];
    for (int64_t off = sp->start; off < sp->end && left > 0; off++) {
        struct share_rec *rec = rec_at(sp, off);
        if (rec->state != SHARE_ACQUIRED) {
            continue;
        }
        left--;
        if (rec->member == member) {
            lock_end(sp, rec, off);
            (*released_out)++;
        }
    }
    return 0;
}

int share_reg_member_leave(struct share_reg *r, const char *group, size_t group_len,
                           uint64_t member, uint32_t *released_out)
{
    ASSERT(r != NULL && released_out != NULL);
    *released_out = 0;
    if (r->failed != 0) {
        return r->failed;
    }
    struct share_key k = {.group = group, .group_len = group_len};
    for (uint32_t i = lower_bound(r, &k, true);
         i < r->count && part_cmp(r->parts[i], &k, true) == 0; i++) {
        uint32_t released;
        int rc = share_part_release_member(r->parts[i], member, &released);
        ASSERT(rc == 0); /* the registry did not fail */
        *released_out += released;
    }
    return 0;
}

/* ---- dead letters, trim ---- */

uint32_t share_part_dead_pending(const struct share_part *sp)
{
    ASSERT(sp->counts[SHARE_DEADLETTER] >= sp->dead_taken);
    return sp->counts[SHARE_DEADLETTER] - sp->dead_taken;
}

int share_part_dead_take(struct share_part *sp, struct share_dead *out, uint32_t cap,
                         uint32_t *count_out)
{
    ASSERT(sp != NULL && out != NULL && cap >= 1 && count_out != NULL);
    *count_out = 0;
    if (sp->reg->failed != 0) {
        return sp->reg->failed;
    }
    for (int64_t off = sp->start;
         off < sp->end && *count_out < cap && share_part_dead_pending(sp) > 0; off++) {
        struct share_rec *rec = rec_at(sp, off);
        if (rec->state != SHARE_DEADLETTER || (rec->flags & REC_TAKEN)) {
            continue;
        }
        out[(*count_out)++] = (struct share_dead){
            .offset = off, .delivery_count = rec->delivery_count, .reason = rec_reason(rec)};
        rec->flags |= REC_TAKEN;
        sp->dead_taken++;
    }
    return 0;
}

int share_part_dead_done(struct share_part *sp, int64_t offset, int copy_rc)
{
    ASSERT(sp != NULL && copy_rc <= 0);
    if (sp->gone) { /* its topic was deleted: nothing to record */
        ASSERT(sp->dead_taken > 0);
        sp->dead_taken--;
        gone_maybe_free(sp);
        return -NG_ENOTFOUND;
    }
    if (sp->reg->failed != 0) {
        return sp->reg->failed;
    }
    if (offset < sp->start || offset >= sp->end) {
        return -NG_ENOTFOUND;
    }
    struct share_rec *rec = rec_at(sp, offset);
    ASSERT(rec->state == SHARE_DEADLETTER && (rec->flags & REC_TAKEN));
    if (copy_rc != 0) {
        rec->flags &= (uint8_t)~REC_TAKEN;
        sp->dead_taken--;
        return 0;
    }
    rec_set(sp, rec, SHARE_ARCHIVED);
    rec_mark_dirty(sp, rec, offset);
    if (advance_start(sp)) {
        part_mark_dirty(sp);
    }
    return 0;
}

int share_part_trim(struct share_part *sp, int64_t log_start)
{
    ASSERT(sp != NULL && log_start >= 0);
    if (sp->reg->failed != 0) {
        return sp->reg->failed;
    }
    if (log_start <= sp->start) {
        return 0;
    }
    window_drop_below(sp, log_start);
    (void)advance_start(sp);
    part_mark_dirty(sp);
    return 0;
}

/* ---- accessors and the invariant check ---- */

int64_t share_part_start(const struct share_part *sp) { return sp->start; }
int64_t share_part_end(const struct share_part *sp) { return sp->end; }

uint32_t share_part_count(const struct share_part *sp, enum share_state state)
{
    ASSERT(state >= SHARE_AVAILABLE && state < SHARE_STATE_COUNT);
    return sp->counts[state];
}

int share_part_record(const struct share_part *sp, int64_t offset, struct share_record_info *out)
{
    ASSERT(sp != NULL && out != NULL);
    if (offset < sp->start || offset >= sp->end) {
        return -NG_EOFFSET_RANGE;
    }
    const struct share_rec *rec = rec_at(sp, offset);
    *out = (struct share_record_info){.state = (enum share_state)rec->state,
                                      .delivery_count = rec->delivery_count,
                                      .reason = rec_reason(rec),
                                      .member = rec->member,
                                      .deadline_ms = rec->deadline_ms};
    return 0;
}

static void verify_rec(const struct share_part *sp, const struct share_rec *rec, int64_t off)
{
    ASSERT(rec->state >= SHARE_AVAILABLE && rec->state < SHARE_STATE_COUNT);
    if (rec->state == SHARE_ACQUIRED) {
        ASSERT(rec->member != SHARE_MEMBER_NONE && rec->delivery_count >= 1);
        ASSERT(rec->deadline_ms >= sp->deadline_min);
    } else {
        ASSERT(rec->member == SHARE_MEMBER_NONE);
    }
    ASSERT(!(rec->flags & REC_TAKEN) || rec->state == SHARE_DEADLETTER);
    if (rec->state == SHARE_DEADLETTER) {
        ASSERT(rec_reason(rec) == SHARE_REASON_REJECTED ||
               rec_reason(rec) == SHARE_REASON_MAX_DELIVERIES);
    }
    if (rec->flags & REC_DIRTY) {
        ASSERT(sp->dirty && off >= sp->dirty_lo && off <= sp->dirty_hi);
    }
}

void share_part_verify(const struct share_part *sp)
{
    ASSERT(sp != NULL && sp->cap == sp->reg->cfg.inflight_max);
    ASSERT(sp->start >= 0 && sp->start <= sp->end && sp->end - sp->start <= (int64_t)sp->cap);
    uint32_t counts[SHARE_STATE_COUNT] = {0};
    uint32_t taken = 0;
    for (int64_t off = sp->start; off < sp->end; off++) {
        const struct share_rec *rec = rec_at(sp, off);
        verify_rec(sp, rec, off);
        counts[rec->state]++;
        taken += (rec->flags & REC_TAKEN) ? 1 : 0;
    }
    for (int s = 0; s < SHARE_STATE_COUNT; s++) {
        ASSERT(s == 0 || counts[s] == sp->counts[s]);
    }
    ASSERT(taken == sp->dead_taken);
    uint32_t used = 0;
    for (uint32_t i = 0; i < sp->cap; i++) {
        used += sp->recs[i].state != 0 ? 1 : 0;
    }
    ASSERT(used == sp->end - sp->start); /* slots outside the window are free */
    ASSERT(sp->start == sp->end || !state_finished(rec_at(sp, sp->start)->state));
}

/* ---- encoding (share_state.h, "Durable format") ---- */

bool share_reg_dirty(const struct share_reg *r) { return r->dirty_head != NULL; }

void share_reg_fail(struct share_reg *r, int rc)
{
    ASSERT(r != NULL && rc < 0);
    if (r->failed == 0) {
        r->failed = rc; /* the caller says why */
    }
}

void share_reg_checkpoint(struct share_reg *r)
{
    for (uint32_t i = 0; i < r->count; i++) {
        r->parts[i]->snapshot_due = true;
        part_mark_dirty(r->parts[i]);
    }
}

static size_t encode_key(const struct share_part *sp, uint8_t *buf, size_t cap)
{
    struct wr w = wr_make(buf, cap);
    wr_be16(&w, sp->group_len);
    wr_bytes(&w, sp->group, sp->group_len);
    wr_be16(&w, sp->topic_len);
    wr_bytes(&w, sp->topic, sp->topic_len);
    wr_be32(&w, (uint32_t)sp->partition);
    ASSERT(w.err == 0 && w.pos <= SHARE_KEY_BYTES_MAX);
    return w.pos;
}

/* What a record looks like on disk: an acquisition is not persisted, so an
 * acquired record is AVAILABLE with the deliveries before this one. */
static struct image rec_image(const struct share_rec *rec)
{
    switch (rec->state) {
    case SHARE_AVAILABLE:
        return (struct image){SHARE_AVAILABLE, 0, rec->delivery_count};
    case SHARE_ACQUIRED:
        return (struct image){SHARE_AVAILABLE, 0, (uint16_t)(rec->delivery_count - 1)};
    case SHARE_ACCEPTED:
        return (struct image){SHARE_ACCEPTED, 0, 0};
    case SHARE_DEADLETTER:
        return (struct image){SHARE_DEADLETTER, (uint8_t)rec_reason(rec), rec->delivery_count};
    case SHARE_ARCHIVED:
        return (struct image){SHARE_ARCHIVED, 0, 0};
    default:
        UNREACHABLE();
    }
}

/* Coalesces consecutive offsets with one image into ranges. */
struct run_wr {
    struct wr *w;
    int64_t cursor;
    uint32_t ranges;
    bool open;
    int64_t first;
    int64_t last;
    struct image img;
};

static void run_close(struct run_wr *rw)
{
    if (!rw->open) {
        return;
    }
    wr_uvarint(rw->w, (uint64_t)(rw->first - rw->cursor));
    wr_uvarint(rw->w, (uint64_t)(rw->last - rw->first));
    wr_u8(rw->w, rw->img.state);
    wr_u8(rw->w, rw->img.reason);
    wr_uvarint(rw->w, rw->img.count);
    rw->cursor = rw->last + 1;
    rw->ranges++;
    rw->open = false;
}

static void run_add(struct run_wr *rw, int64_t off, struct image img)
{
    if (rw->open && rw->last + 1 == off && rw->img.state == img.state &&
        rw->img.reason == img.reason && rw->img.count == img.count) {
        rw->last = off;
        return;
    }
    run_close(rw);
    *rw = (struct run_wr){.w = rw->w,
                          .cursor = rw->cursor,
                          .ranges = rw->ranges,
                          .open = true,
                          .first = off,
                          .last = off,
                          .img = img};
}

/* The span a record must describe: the whole window for a snapshot, else
 * the changed records still in it. */
static void encode_span(const struct share_part *sp, int64_t *lo, int64_t *hi)
{
    if (sp->snapshot_due) {
        *lo = sp->start;
        *hi = sp->end;
        return;
    }
    *lo = sp->dirty_lo > sp->start ? sp->dirty_lo : sp->start;
    *hi = sp->dirty_hi + 1 < sp->end ? sp->dirty_hi + 1 : sp->end;
}

static size_t encode_value(const struct share_part *sp, uint8_t *buf, size_t cap)
{
    struct wr w = wr_make(buf, cap);
    wr_u8(&w, SHARE_FORMAT_VERSION);
    wr_u8(&w, sp->snapshot_due ? SHARE_FLAG_SNAPSHOT : 0);
    wr_be64(&w, (uint64_t)sp->start);
    wr_be64(&w, (uint64_t)sp->end);
    size_t count_at = w.pos;
    wr_be32(&w, 0); /* range_count, back-patched */
    struct run_wr rw = {.w = &w, .cursor = sp->start};
    int64_t lo;
    int64_t hi;
    encode_span(sp, &lo, &hi);
    for (int64_t off = lo; off < hi; off++) {
        const struct share_rec *rec = rec_at(sp, off);
        if (sp->snapshot_due || (rec->flags & REC_DIRTY)) {
            run_add(&rw, off, rec_image(rec));
        }
    }
    run_close(&rw);
    ASSERT(w.err == 0 && w.pos <= SHARE_VALUE_BYTES_MAX(sp->cap));
    put_be32(buf + count_at, rw.ranges);
    return w.pos;
}

static void part_clean(struct share_part *sp)
{
    int64_t lo;
    int64_t hi;
    encode_span(sp, &lo, &hi);
    for (int64_t off = lo; off < hi; off++) {
        rec_at(sp, off)->flags &= (uint8_t)~REC_DIRTY;
    }
    sp->dirty_lo = INT64_MAX;
    sp->dirty_hi = -1;
    sp->snapshot_due = false;
    sp->dirty = false;
    sp->dirty_next = NULL;
}

int share_reg_flush(struct share_reg *r, int64_t now_ms, uint8_t *buf, size_t cap,
                    size_t *bytes_out)
{
    ASSERT(r != NULL && buf != NULL && bytes_out != NULL);
    ASSERT(cap >= SHARE_FLUSH_BYTES_MIN(r->cfg.inflight_max));
    *bytes_out = 0;
    if (r->failed != 0) {
        return r->failed;
    }
    if (r->dirty_head == NULL) {
        return 0;
    }
    struct batch_builder b;
    batch_builder_init(&b, buf, cap, BATCH_CODEC_NONE, -1, 0, -1);
    uint8_t *key = r->scratch;
    uint8_t *value = r->scratch + SHARE_KEY_BYTES_MAX;
    while (r->dirty_head != NULL) {
        struct share_part *sp = r->dirty_head;
        size_t key_bytes = encode_key(sp, key, SHARE_KEY_BYTES_MAX);
        int32_t value_bytes =
            sp->gone ? -1 /* a tombstone */
                     : (int32_t)encode_value(sp, value, r->scratch_bytes - SHARE_KEY_BYTES_MAX);
        int rc =
            batch_builder_add(&b, now_ms, key, (int32_t)key_bytes, value, value_bytes, NULL, 0);
        if (rc == -NG_ENOSPACE && b.record_count > 0) {
            break; /* the next call starts a batch with it */
        }
        ASSERT(rc == 0); /* cap holds one record of any part */
        r->dirty_head = sp->dirty_next;
        r->dirty_tail = r->dirty_head == NULL ? NULL : r->dirty_tail;
        part_clean(sp);
        if (sp->gone) {
            gone_maybe_free(sp);
        }
    }
    int rc = batch_builder_finish(&b, NULL, bytes_out);
    ASSERT(rc == 0);
    return 0;
}

/* ---- replay ---- */

/* One decoded record of the state log. */
struct change {
    struct share_key key;
    uint8_t flags;
    int64_t start;
    int64_t end;
    uint32_t range_count;
    struct rd ranges; /* at the first range */
};

struct range {
    int64_t first;
    int64_t last;
    struct image img;
};

static int decode_key(const struct batch_record *rec, struct share_key *k)
{
    if (rec->key_len < 0) {
        return -NG_ECORRUPT;
    }
    struct rd r = rd_make(rec->key, (size_t)rec->key_len);
    k->group_len = rd_be16(&r);
    k->group = (const char *)rd_take(&r, k->group_len);
    k->topic_len = rd_be16(&r);
    k->topic = (const char *)rd_take(&r, k->topic_len);
    uint32_t partition = rd_be32(&r);
    if (r.err != 0 || rd_left(&r) != 0 || !key_names_ok(k) || partition > INT32_MAX) {
        return -NG_ECORRUPT;
    }
    k->partition = (int32_t)partition;
    return 0;
}

static int decode_change(const struct batch_record *rec, struct change *c)
{
    int rc = decode_key(rec, &c->key);
    if (rc != 0) {
        return rc;
    }
    if (rec->value_len < 0) {
        return -NG_ECORRUPT;
    }
    struct rd r = rd_make(rec->value, (size_t)rec->value_len);
    uint8_t version = rd_u8(&r);
    c->flags = rd_u8(&r);
    c->start = (int64_t)rd_be64(&r);
    c->end = (int64_t)rd_be64(&r);
    c->range_count = rd_be32(&r);
    if (r.err != 0) {
        return -NG_ECORRUPT;
    }
    if (version != SHARE_FORMAT_VERSION) {
        return -NG_EBADVERSION;
    }
    if ((c->flags & ~SHARE_FLAG_SNAPSHOT) != 0 || c->start < 0 || c->end < c->start) {
        return -NG_ECORRUPT;
    }
    c->ranges = r;
    return 0;
}

static bool image_ok(struct image img, uint64_t count)
{
    switch (img.state) {
    case SHARE_AVAILABLE:
        return img.reason == 0 && count <= SHARE_DELIVERY_LIMIT;
    case SHARE_ACCEPTED:
    case SHARE_ARCHIVED:
        return img.reason == 0 && count == 0;
    case SHARE_DEADLETTER:
        return (img.reason == SHARE_REASON_REJECTED || img.reason == SHARE_REASON_MAX_DELIVERIES) &&
               count >= 1 && count <= SHARE_DELIVERY_LIMIT;
    default:
        return false;
    }
}

/* Reads the range after *cursor; it must lie in [*cursor, end). */
static int range_next(struct rd *r, int64_t *cursor, int64_t end, struct range *out)
{
    uint64_t gap = rd_uvarint(r);
    uint64_t len = rd_uvarint(r);
    out->img.state = rd_u8(r);
    out->img.reason = rd_u8(r);
    uint64_t count = rd_uvarint(r);
    if (r->err != 0) {
        return -NG_ECORRUPT;
    }
    uint64_t room = (uint64_t)(end - *cursor);
    if (gap >= room || len >= room - gap || !image_ok(out->img, count)) {
        return -NG_ECORRUPT;
    }
    out->img.count = (uint16_t)count;
    out->first = *cursor + (int64_t)gap;
    out->last = out->first + (int64_t)len;
    *cursor = out->last + 1;
    return 0;
}

/* Checks every range before anything is applied. */
static int ranges_check(const struct change *c)
{
    struct rd r = c->ranges;
    int64_t cursor = c->start;
    struct range rg;
    for (uint32_t i = 0; i < c->range_count; i++) {
        int rc = range_next(&r, &cursor, c->end, &rg);
        if (rc != 0) {
            return rc;
        }
    }
    return rd_left(&r) == 0 ? 0 : -NG_ECORRUPT;
}

static void ranges_apply(struct share_part *sp, const struct change *c)
{
    struct rd r = c->ranges;
    int64_t cursor = c->start;
    struct range rg;
    for (uint32_t i = 0; i < c->range_count; i++) {
        int rc = range_next(&r, &cursor, c->end, &rg);
        ASSERT(rc == 0); /* ranges_check passed */
        for (int64_t off = rg.first; off <= rg.last; off++) {
            struct share_rec *rec = rec_at(sp, off);
            if (rec->state != rg.img.state) {
                rec_set(sp, rec, rg.img.state);
            }
            rec->delivery_count = rg.img.count;
            rec_set_reason(rec, (enum share_reason)rg.img.reason);
        }
    }
}

/* Finds or creates the part c describes and checks c may follow its state. */
static int replay_part(struct share_reg *r, const struct change *c, struct share_part **out)
{
    if (c->end - c->start > (int64_t)r->cfg.inflight_max) {
        log_error("share: %.*s/%.*s/%d: a window of %lld records is over inflight_max %u;"
                  " raise it to replay the share state",
                  (int)c->key.group_len, c->key.group, (int)c->key.topic_len, c->key.topic,
                  (int)c->key.partition, (long long)(c->end - c->start), r->cfg.inflight_max);
        return -NG_ETOOBIG;
    }
    *out = find_key(r, &c->key);
    if (*out == NULL) {
        return part_create(r, &c->key, c->start, out);
    }
    if (c->start < (*out)->start || c->end < (*out)->end) {
        return -NG_ECORRUPT; /* start and end never go back */
    }
    return 0;
}

/* A tombstone: forgets the part, if there is one. */
static int replay_tombstone(struct share_reg *r, const struct batch_record *rec)
{
    struct share_key k;
    int rc = decode_key(rec, &k);
    if (rc != 0) {
        return rc;
    }
    uint32_t i = lower_bound(r, &k, false);
    if (i < r->count && part_cmp(r->parts[i], &k, false) == 0) {
        part_free(part_unlist(r, i));
    }
    return 0;
}

static int replay_record(struct share_reg *r, const struct batch_record *rec)
{
    if (rec->value_len < 0) {
        return replay_tombstone(r, rec);
    }
    struct change c;
    int rc = decode_change(rec, &c);
    if (rc == 0) {
        rc = ranges_check(&c);
    }
    struct share_part *sp = NULL;
    if (rc == 0) {
        rc = replay_part(r, &c, &sp);
    }
    if (rc != 0) {
        return rc;
    }
    ASSERT(sp->counts[SHARE_ACQUIRED] == 0 && sp->dead_taken == 0);
    if (c.flags & SHARE_FLAG_SNAPSHOT) {
        window_drop_below(sp, sp->end); /* every slot is free again */
        sp->start = c.start;
        sp->end = c.start;
    }
    window_drop_below(sp, c.start);
    while (sp->end < c.end) {
        (void)window_push(sp);
    }
    ranges_apply(sp, &c);
    (void)advance_start(sp);
    return 0;
}

int share_reg_replay_batch(struct share_reg *r, const uint8_t *batch, size_t len)
{
    ASSERT(r != NULL && batch != NULL);
    if (r->failed != 0) {
        return r->failed;
    }
    struct batch_reader br;
    struct batch_record rec;
    int rc = batch_reader_open(&br, batch, len, BATCH_BYTES_LIMIT, NULL, NULL, 0);
    while (rc == 0 && (rc = batch_reader_next(&br, &rec)) == 1) {
        rc = replay_record(r, &rec);
    }
    return rc;
}

/* Replays the whole batches in buf[0..bytes), the first at *offset. */
static int replay_chunk(struct share_reg *r, const uint8_t *buf, size_t bytes, int64_t *offset)
{
    size_t pos = 0;
    while (pos < bytes) {
        struct batch_header h;
        int rc = batch_validate(buf + pos, bytes - pos, BATCH_BYTES_LIMIT, &h);
        if (rc != 0) {
            return rc;
        }
        if (h.offset_base != *offset) {
            return -NG_EDISCONTINUITY;
        }
        rc = share_reg_replay_batch(r, buf + pos, batch_bytes(&h));
        if (rc != 0) {
            return rc;
        }
        *offset = batch_offset_last(&h) + 1;
        pos += batch_bytes(&h);
    }
    return 0;
}

int share_reg_replay(struct share_reg *r, struct part *log, uint8_t *buf, size_t cap)
{
    ASSERT(r != NULL && log != NULL && buf != NULL && cap >= BATCH_HEADER_BYTES);
    int64_t offset = part_offset_earliest(log);
    int64_t end = part_offset_written(log);
    while (offset < end) {
        struct part_read_result res;
        int rc = part_read_to(log, offset, end, buf, cap, cap, &res);
        if (rc != 0) {
            return rc;
        }
        if (res.bytes == 0) {
            return -NG_ECORRUPT; /* cannot happen: the first batch is copied or -NG_ETOOBIG */
        }
        rc = replay_chunk(r, buf, res.bytes, &offset);
        if (rc != 0) {
            return rc;
        }
    }
    ASSERT(!share_reg_dirty(r));
    return 0;
}
