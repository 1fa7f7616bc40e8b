#include "broker/offsets.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "base/bytes.h"
#include "base/log.h"

#define ITEM_BYTES_MAX OFFSETS_ITEM_BYTES_MAX
static_assert(OFFSETS_BATCH_MAX >= BATCH_HEADER_BYTES + OFFSETS_COMMIT_ITEMS_MAX * ITEM_BYTES_MAX,
              "the offsets batch maximum holds the largest commit");

/* ---- the table ---- */

static uint32_t group_lower_bound(const struct offsets *o, const char *id)
{
    uint32_t lo = 0;
    uint32_t hi = o->count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (strcmp(o->groups[mid].id, id) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

const struct offsets_group *offsets_group_find(const struct offsets *o, const char *id)
{
    uint32_t i = group_lower_bound(o, id);
    return i < o->count && strcmp(o->groups[i].id, id) == 0 ? &o->groups[i] : NULL;
}

static struct offsets_group *group_get(struct offsets *o, const char *id)
{
    uint32_t i = group_lower_bound(o, id);
    if (i < o->count && strcmp(o->groups[i].id, id) == 0) {
        return &o->groups[i];
    }
    if (o->count == o->cap) {
        uint32_t cap = o->cap ? o->cap * 2 : 16;
        struct offsets_group *grown = realloc(o->groups, cap * sizeof(*grown));
        if (grown == NULL) {
            return NULL;
        }
        o->groups = grown;
        o->cap = cap;
    }
    memmove(&o->groups[i + 1], &o->groups[i], (o->count - i) * sizeof(*o->groups));
    o->count++;
    struct offsets_group *g = &o->groups[i];
    memset(g, 0, sizeof(*g));
    strcpy(g->id, id);
    return g;
}

static int entry_index(const struct offsets_group *g, const char *topic, int32_t partition)
{
    for (uint32_t i = 0; i < g->count; i++) {
        if (g->entries[i].partition == partition && strcmp(g->entries[i].topic, topic) == 0) {
            return (int)i;
        }
    }
    return -1;
}

/* Forgets one partition's offset; a group left with none leaves the table
 * (ListGroups and DescribeGroups go by it: a deleted group is gone). */
static void forget(struct offsets *o, const char *group, const char *topic, int32_t partition)
{
    uint32_t gi = group_lower_bound(o, group);
    if (gi == o->count || strcmp(o->groups[gi].id, group) != 0) {
        return;
    }
    struct offsets_group *g = &o->groups[gi];
    int i = entry_index(g, topic, partition);
    if (i >= 0) {
        g->entries[i] = g->entries[--g->count];
    }
    if (g->count == 0) {
        free(g->entries);
        memmove(g, g + 1, (o->count - gi - 1) * sizeof(*g));
        o->count--;
    }
}

/* Records one partition's offset (-1: forgets it). */
static int apply(struct offsets *o, const char *group, const char *topic, int32_t partition,
                 int64_t offset, int64_t ts_ms)
{
    if (offset < 0) {
        forget(o, group, topic, partition);
        return 0;
    }
    struct offsets_group *g = group_get(o, group);
    if (g == NULL) {
        return -ENOMEM;
    }
    int i = entry_index(g, topic, partition);
    if (i < 0 && g->count == g->cap) {
        uint32_t cap = g->cap ? g->cap * 2 : 16;
        struct offsets_entry *grown = realloc(g->entries, cap * sizeof(*grown));
        if (grown == NULL) {
            return -ENOMEM;
        }
        g->entries = grown;
        g->cap = cap;
    }
    if (i < 0) {
        i = (int)g->count++;
        strcpy(g->entries[i].topic, topic);
        g->entries[i].partition = partition;
        g->entries[i].lag = (struct offsets_lag_memo){.offset = -1, .ts_ms = -1};
    }
    g->entries[i].offset = offset;
    g->entries[i].commit_ms = ts_ms;
    return 0;
}

int offsets_get(const struct offsets *o, const char *group, const char *topic, int32_t partition,
                int64_t *offset_out)
{
    const struct offsets_group *g = offsets_group_find(o, group);
    int i = g != NULL ? entry_index(g, topic, partition) : -1;
    if (i < 0) {
        return -NG_ENOTFOUND;
    }
    *offset_out = g->entries[i].offset;
    return 0;
}

/* ---- records ---- */

static size_t key_encode(uint8_t *buf, const char *group, const char *topic, int32_t partition)
{
    struct wr w = wr_make(buf, ITEM_BYTES_MAX);
    size_t glen = strlen(group);
    size_t tlen = strlen(topic);
    wr_be16(&w, (uint16_t)glen);
    wr_bytes(&w, group, glen);
    wr_be16(&w, (uint16_t)tlen);
    wr_bytes(&w, topic, tlen);
    wr_be32(&w, (uint32_t)partition);
    ASSERT(w.err == 0);
    return w.pos;
}

/* Applies one record of the log; a record that does not parse is logged
 * and skipped (the batch's checksum held, so it was written that way). */
static int apply_record(struct offsets *o, const struct batch_record *rec)
{
    struct rd r = rd_make(rec->key, rec->key_len < 0 ? 0 : (size_t)rec->key_len);
    char group[GROUP_ID_BYTES_MAX + 1];
    char topic[GROUP_ID_BYTES_MAX + 1];
    uint16_t glen = rd_be16(&r);
    if (glen > GROUP_ID_BYTES_MAX) {
        rd_fail(&r, -NG_EBADLEN);
    }
    const uint8_t *gp = rd_take(&r, glen);
    uint16_t tlen = rd_be16(&r);
    if (tlen > GROUP_ID_BYTES_MAX) {
        rd_fail(&r, -NG_EBADLEN);
    }
    const uint8_t *tp = rd_take(&r, tlen);
    int32_t partition = (int32_t)rd_be32(&r);
    bool value_ok = rec->value_len == -1 || rec->value_len == 8;
    if (r.err != 0 || rd_left(&r) != 0 || !value_ok) {
        log_warn("offsets log: skipping a malformed record at offset %lld", (long long)rec->offset);
        return 0;
    }
    memcpy(group, gp, glen);
    group[glen] = '\0';
    memcpy(topic, tp, tlen);
    topic[tlen] = '\0';
    int64_t offset = rec->value_len == 8 ? (int64_t)get_be64(rec->value) : -1;
    return apply(o, group, topic, partition, offset, rec->timestamp_ms);
}

int offsets_replay_batch(struct offsets *o, const uint8_t *batch, size_t len, struct batch_zctx *z,
                         uint8_t *out, size_t out_cap)
{
    struct batch_reader br;
    int rc = batch_reader_open(&br, batch, len, OFFSETS_BATCH_MAX, z, out, out_cap);
    struct batch_record rec;
    while (rc == 0 && (rc = batch_reader_next(&br, &rec)) == 1) {
        rc = apply_record(o, &rec);
    }
    return rc < 0 ? rc : 0;
}

/* Reads the whole written log in order and applies every record (a
 * replica's log past its high watermark too: it is what it will serve). */
static int replay(struct offsets *o, const struct part_env *env)
{
    size_t cap = OFFSETS_BATCH_MAX;
    uint8_t *buf = malloc(cap);
    if (buf == NULL) {
        return -ENOMEM;
    }
    int64_t offset = part_offset_earliest(o->served);
    int64_t end = part_offset_written(o->served);
    int rc = 0;
    while (rc == 0 && offset < end) {
        struct part_read_result r;
        rc = part_read_to(o->served, offset, end, buf, cap, cap, &r);
        for (size_t at = 0; rc == 0 && at < r.bytes;) {
            struct batch_header h;
            rc = batch_header_decode(buf + at, r.bytes - at, OFFSETS_BATCH_MAX, &h);
            rc = rc == 0 ? offsets_replay_batch(o, buf + at, batch_bytes(&h), env->zctx,
                                                env->scratch, env->scratch_bytes)
                         : rc;
            at += batch_bytes(&h);
            offset = batch_offset_last(&h) + 1;
        }
    }
    free(buf);
    return rc;
}

int offsets_open(struct offsets *o, const char *dir, const struct part_env *env,
                 uint64_t segment_bytes)
{
    memset(o, 0, sizeof(*o));
    struct part_config cfg;
    part_config_default(&cfg);
    cfg.segment_bytes = segment_bytes;
    compaction_init(&o->compaction, "offsets log", segment_bytes);
    cfg.retention_ms = -1; /* never: the latest commit of a partition may be old */
    cfg.retention_bytes = -1;
    cfg.batch_bytes_max = OFFSETS_BATCH_MAX;
    ASSERT(env->scratch_bytes >= OFFSETS_SCRATCH_BYTES);
    o->now_ms = env->now_ms;
    int rc = part_open(&o->log, dir, &cfg, env);
    if (rc != 0) {
        return rc;
    }
    o->served = &o->log;
    o->open = true;
    rc = replay(o, env);
    if (rc != 0) {
        log_error("offsets log %s: %s", dir, err_str(rc));
        int rc_close = offsets_close(o);
        (void)rc_close; /* the replay error is the one to report */
    }
    return rc;
}

static void commit_free(struct offsets_commit *c);

static void table_free(struct offsets *o)
{
    for (uint32_t i = 0; i < o->count; i++) {
        free(o->groups[i].entries);
    }
    free(o->groups);
    o->groups = NULL;
    o->count = o->cap = 0;
}

int offsets_close(struct offsets *o)
{
    int rc = 0;
    o->closing = true; /* no new snapshot: held commits just go */
    if (o->attached) {
        offsets_detach(o);
    } else if (o->open) {
        rc = part_drain(&o->log);
        int rc2 = part_close(&o->log);
        rc = rc != 0 ? rc : rc2;
        o->open = false;
    }
    table_free(o);
    return rc;
}

int offsets_attach(struct offsets *o, struct part *log, uint64_t segment_bytes,
                   const struct offsets_repl *repl, const struct part_env *env)
{
    ASSERT(!o->open && !o->attached && o->inflight == 0 && o->snapshot_batches == 0 &&
           o->held_first == NULL);
    ASSERT(part_offset_written(log) == part_offset_next(log));
    ASSERT(env->scratch_bytes >= OFFSETS_SCRATCH_BYTES);
    o->served = log;
    o->attached = true;
    o->repl = *repl;
    o->term++;
    o->now_ms = env->now_ms;
    o->closing = false;
    o->snapshot_due = false;
    compaction_init(&o->compaction, "offsets log", segment_bytes);
    o->open = true;
    int rc = replay(o, env);
    if (rc != 0) {
        log_error("offsets log: %s", err_str(rc));
        offsets_detach(o);
    }
    return rc;
}

void offsets_detach(struct offsets *o)
{
    if (!o->attached) {
        return;
    }
    o->open = false;
    o->term++; /* what is in flight now changes nothing */
    o->snapshot_due = false;
    o->attached = false;
    o->served = NULL;
    table_free(o);
    while (o->held_first != NULL) {
        struct offsets_commit *c = o->held_first;
        o->held_first = c->held_next;
        c->held_next = NULL;
        commit_free(c);
        c->done(c, -NG_ENOT_COORDINATOR);
    }
    o->held_last = NULL;
}

/* ---- commits ---- */

static void commit_free(struct offsets_commit *c)
{
    free(c->batch);
    free(c->items);
    free(c->names);
    c->batch = NULL;
    c->items = NULL;
    c->names = NULL;
}

static void maybe_compact(struct offsets *o);

/* Whether rc, how an append of term came back, says that term's
 * leadership ended (the partition is no longer led here, or is closing);
 * while that term lasts, nothing more is appended in it (the detach
 * follows). An own log's term stays 0: its appends end no term. */
static bool term_ended_by(struct offsets *o, uint64_t term, int rc)
{
    bool ended = term != 0 && (rc == -NG_ENOT_LEADER || rc == -NG_ECLOSED);
    if (ended && term == o->term) {
        o->open = false;
    }
    return ended;
}

/* The commit is in the log (rc 0), or not: the table shows it when it is,
 * if its term still lasts. */
static void commit_finish(struct offsets_commit *c, int rc)
{
    struct offsets *o = c->o;
    ASSERT(o->inflight > 0);
    o->inflight--;
    if (term_ended_by(o, c->term, rc) || c->term != o->term) {
        rc = -NG_ENOT_COORDINATOR; /* the next coordinator replays it, or not */
    }
    /* Below the high watermark on fewer replicas than asked is committed
     * all the same: a replay shows it. */
    int applied = rc == -NG_ENOT_ENOUGH_REPLICAS ? 0 : rc;
    for (uint32_t i = 0; applied == 0 && i < c->count; i++) {
        applied = apply(o, c->group, c->items[i].topic, c->items[i].partition, c->items[i].offset,
                        c->a.hdr.timestamp_max_ms);
    }
    rc = applied != 0 ? applied : rc;
    commit_free(c);
    maybe_compact(o);
    c->done(c, rc);
}

static void commit_replicated(struct replica_wait *w, int rc)
{
    commit_finish(container_of(w, struct offsets_commit, wait), rc);
}

static void commit_done(struct part_append *a, int rc)
{
    struct offsets_commit *c = container_of(a, struct offsets_commit, a);
    struct offsets *o = c->o;
    if (rc == 0 && c->term == o->term && o->attached) {
        c->wait.done = commit_replicated;
        o->repl.wait(o->repl.arg, &c->wait, batch_offset_last(&a->hdr) + 1);
        return;
    }
    commit_finish(c, rc);
}

/* Appends c's batch; on failure frees what c holds. */
static int commit_append(struct offsets_commit *c)
{
    struct offsets *o = c->o;
    int rc = c->term == o->term && o->open ? part_append(o->served, &c->a) : -NG_ENOT_COORDINATOR;
    if (rc == 0) {
        c->o->inflight++;
    } else {
        commit_free(c);
    }
    return rc;
}

/* Copies the items (their names into one buffer) so the caller's may go. */
static int copy_items(struct offsets_commit *c, const struct offsets_item *items, uint32_t count)
{
    size_t names = 0;
    for (uint32_t i = 0; i < count; i++) {
        size_t len = strlen(items[i].topic);
        if (len == 0 || len > GROUP_ID_BYTES_MAX) {
            return -NG_EBADNAME;
        }
        names += len + 1;
    }
    c->items = malloc((count + 1) * sizeof(*c->items));
    c->names = malloc(names + 1);
    if (c->items == NULL || c->names == NULL) {
        return -ENOMEM;
    }
    char *at = c->names;
    for (uint32_t i = 0; i < count; i++) {
        size_t len = strlen(items[i].topic) + 1;
        memcpy(at, items[i].topic, len);
        c->items[i] = items[i];
        c->items[i].topic = at;
        at += len;
    }
    c->count = count;
    return 0;
}

static int build_batch(struct offsets_commit *c, int64_t now_ms, size_t *len_out)
{
    size_t cap = BATCH_HEADER_BYTES + (size_t)c->count * ITEM_BYTES_MAX;
    c->batch = malloc(cap);
    if (c->batch == NULL) {
        return -ENOMEM;
    }
    struct batch_builder b;
    batch_builder_init(&b, c->batch, cap, BATCH_CODEC_NONE, -1, 0, -1);
    for (uint32_t i = 0; i < c->count; i++) {
        uint8_t key[ITEM_BYTES_MAX];
        uint8_t value[8];
        size_t klen = key_encode(key, c->group, c->items[i].topic, c->items[i].partition);
        put_be64(value, (uint64_t)c->items[i].offset);
        int32_t vlen = c->items[i].offset < 0 ? -1 : 8;
        int rc = batch_builder_add(&b, now_ms, key, (int32_t)klen, value, vlen, NULL, 0);
        ASSERT(rc == 0); /* sized above */
    }
    return batch_builder_finish(&b, NULL, len_out);
}

int offsets_commit(struct offsets *o, struct offsets_commit *c, const char *group,
                   const struct offsets_item *items, uint32_t count, offsets_done_fn done,
                   void *ctx)
{
    size_t glen = strlen(group);
    if (count == 0 || count > OFFSETS_COMMIT_ITEMS_MAX) {
        return count == 0 ? -NG_EBADARG : -NG_ETOOBIG;
    }
    if (glen == 0 || glen > GROUP_ID_BYTES_MAX) {
        return -NG_EBADNAME;
    }
    if (!o->open) {
        return -NG_ENOT_COORDINATOR;
    }
    int rc = o->attached ? o->repl.check(o->repl.arg) : 0;
    if (rc != 0) {
        return rc == -NG_ENOT_LEADER ? -NG_ENOT_COORDINATOR : rc;
    }
    *c = (struct offsets_commit){.o = o, .term = o->term, .done = done, .ctx = ctx};
    memcpy(c->group, group, glen + 1);
    size_t len = 0;
    rc = copy_items(c, items, count);
    rc = rc == 0 ? build_batch(c, o->now_ms(), &len) : rc;
    if (rc != 0) {
        commit_free(c);
        return rc;
    }
    c->a =
        (struct part_append){.batch = c->batch, .bytes = len, .durable = true, .done = commit_done};
    if (o->snapshot_due) { /* goes after the snapshot */
        *(o->held_first == NULL ? &o->held_first : &o->held_last->held_next) = c;
        o->held_last = c;
        return 0;
    }
    return commit_append(c);
}

/* ---- compaction ---- */

/* One batch of a snapshot, owned by the table until its append completes
 * (attached: until the high watermark passes it). */
struct snapshot_batch {
    struct part_append a;
    struct replica_wait wait;
    struct offsets *o;
    uint64_t term;
    uint8_t bytes[];
};

static void snapshot_batch_finish(struct snapshot_batch *b, int rc)
{
    struct offsets *o = b->o;
    uint64_t term = b->term;
    bool current = term == o->term;
    free(b);
    /* committed on fewer replicas than asked is committed: no replica that
     * may lead, nor this one, loses it */
    rc = rc == -NG_ENOT_ENOUGH_REPLICAS ? 0 : rc;
    (void)term_ended_by(o, term, rc);
    o->snapshot_err = o->snapshot_err != 0 ? o->snapshot_err : rc;
    ASSERT(o->snapshot_batches > 0);
    if (--o->snapshot_batches == 0 && current) {
        compaction_end(&o->compaction, o->served, o->snapshot_err);
    }
}

static void snapshot_batch_replicated(struct replica_wait *w, int rc)
{
    snapshot_batch_finish(container_of(w, struct snapshot_batch, wait), rc);
}

static void snapshot_batch_done(struct part_append *a, int rc)
{
    struct snapshot_batch *b = container_of(a, struct snapshot_batch, a);
    struct offsets *o = b->o;
    if (rc == 0 && b->term == o->term && o->attached) {
        b->wait.done = snapshot_batch_replicated;
        o->repl.wait(o->repl.arg, &b->wait, batch_offset_last(&a->hdr) + 1);
        return;
    }
    snapshot_batch_finish(b, rc);
}

/* The next snapshot batch: up to OFFSETS_COMMIT_ITEMS_MAX live entries from
 * the cursor (group *gi, entry *ei), which it advances. NULL on -ENOMEM. */
static struct snapshot_batch *snapshot_batch_build(struct offsets *o, uint32_t *gi, uint32_t *ei,
                                                   uint32_t left)
{
    uint32_t n = left < OFFSETS_COMMIT_ITEMS_MAX ? left : OFFSETS_COMMIT_ITEMS_MAX;
    size_t cap = BATCH_HEADER_BYTES + (size_t)n * ITEM_BYTES_MAX;
    struct snapshot_batch *b = malloc(sizeof(*b) + cap);
    if (b == NULL) {
        return NULL;
    }
    struct batch_builder bb;
    batch_builder_init(&bb, b->bytes, cap, BATCH_CODEC_NONE, -1, 0, -1);
    for (uint32_t k = 0; k < n; k++) {
        while (*ei == o->groups[*gi].count) {
            (*gi)++;
            *ei = 0;
        }
        const struct offsets_group *g = &o->groups[*gi];
        const struct offsets_entry *e = &g->entries[(*ei)++];
        uint8_t key[ITEM_BYTES_MAX];
        uint8_t value[8];
        size_t klen = key_encode(key, g->id, e->topic, e->partition);
        put_be64(value, (uint64_t)e->offset);
        int rc = batch_builder_add(&bb, e->commit_ms, key, (int32_t)klen, value, 8, NULL, 0);
        ASSERT(rc == 0); /* sized above */
    }
    size_t len;
    int rc = batch_builder_finish(&bb, NULL, &len);
    ASSERT(rc == 0);
    b->a = (struct part_append){
        .batch = b->bytes, .bytes = len, .durable = true, .done = snapshot_batch_done};
    b->o = o;
    b->term = o->term;
    return b;
}

/* Appends the whole table. Precondition: no commit in flight, so the log
 * so far replays to exactly the table. */
static void snapshot_start(struct offsets *o)
{
    ASSERT(o->inflight == 0 && o->snapshot_batches == 0 && !o->compaction.running);
    uint32_t left = 0;
    for (uint32_t i = 0; i < o->count; i++) {
        left += o->groups[i].count;
    }
    o->snapshot_err = 0;
    compaction_begin(&o->compaction, o->served);
    uint32_t gi = 0;
    uint32_t ei = 0;
    while (left > 0 && o->snapshot_err == 0) {
        struct snapshot_batch *b = snapshot_batch_build(o, &gi, &ei, left);
        int rc = b != NULL ? part_append(o->served, &b->a) : -ENOMEM;
        if (rc != 0) {
            free(b);
            o->snapshot_err = rc; /* what is appended stays: it repeats the table */
            break;
        }
        left -= b->a.hdr.record_count;
        o->snapshot_batches++;
    }
    compaction_placed(&o->compaction, o->served);
    if (o->snapshot_batches == 0) { /* an empty table, or nothing could be appended */
        compaction_end(&o->compaction, o->served, o->snapshot_err);
    }
}

/* Called when a commit completes: once a snapshot is wanted, holds new
 * commits until none is in flight, then appends the snapshot and lets the
 * held commits go after it, in their order. */
static void maybe_compact(struct offsets *o)
{
    if (!o->snapshot_due && !o->closing && o->open &&
        compaction_wanted(&o->compaction, o->served)) {
        o->snapshot_due = true;
    }
    if (!o->snapshot_due || o->inflight > 0) {
        return;
    }
    o->snapshot_due = false;
    /* Attached, a snapshot goes only while the in-sync set is big enough
     * (else the next commit tries again). */
    if (!o->closing && o->open && (!o->attached || o->repl.check(o->repl.arg) == 0)) {
        snapshot_start(o);
    }
    while (o->held_first != NULL) {
        struct offsets_commit *c = o->held_first;
        o->held_first = c->held_next;
        c->held_next = NULL;
        int rc = commit_append(c);
        if (rc != 0) {
            c->done(c, rc);
        }
    }
    o->held_last = NULL;
}
