#include "tests/reliability_support.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/ring_sim.h"
#include "tests/storage_support.h"

#define REL_NOW_MS 1700000000000LL
/* Values of 60 to 1,260 bytes: batches of one to three records span from
 * part of a sector to most of a segment, so cuts tear some of them. */
#define REL_VALUE_BYTES(seed) (60u + ((seed) / 3 % 5) * 300u)
#define REL_GROUP "g"
#define REL_TOPIC "t"
#define REL_COMPLETION_WAIT_MS 10000

static const struct topic_config topic_cfg = {
    .partitions = 2,
    .retention_ms = -1,
    .retention_bytes = -1,
    .segment_bytes = 1 << 20,
    .segment_ms = 3600000,
    .batch_bytes_max = 1 << 16,
};

static int64_t rel_clock(void) { return REL_NOW_MS; }

/* The world set up and not yet torn down, for rel_cleanup(). */
static struct rel_world *live_world;

const char *rel_tmpdir(void)
{
    const char *dir = getenv("NAGARE_RELIABILITY_TMPDIR");
    if (dir != NULL) {
        return dir;
    }
    if (access("/dev/shm", W_OK) == 0) {
        return "/dev/shm";
    }
    dir = getenv("TMPDIR");
    return dir != NULL ? dir : "/tmp";
}

/* ---- set-up ---- */

void rel_setup(struct rel_world *w)
{
    memset(w, 0, sizeof(*w));
    live_world = w;
    log_set_level(getenv("NAGARE_RELIABILITY_LOG") != NULL ? LOG_DEBUG : LOG_OFF);
    snprintf(w->root, sizeof(w->root), "%s/nagare-rel-XXXXXX", rel_tmpdir());
    cr_assert_not_null(mkdtemp(w->root));
    snprintf(w->data, sizeof(w->data), "%s/data", w->root);
    snprintf(w->log_dir, sizeof(w->log_dir), "%s/log", w->root);
    snprintf(w->offsets_dir, sizeof(w->offsets_dir), "%s/groups/offsets", w->root);
    snprintf(w->stash, sizeof(w->stash), "%s/stash", w->root);
    char groups[300];
    snprintf(groups, sizeof(groups), "%s/groups", w->root);
    cr_assert_eq(mkdir(groups, 0755), 0);
    cr_assert_eq(ring_init(&w->ring, 256), 0);
    cr_assert_eq(batch_zctx_init(&w->zctx, FX_BATCH_MAX, 3), 0);
    size_t scratch = PART_SCRATCH_BYTES(REL_BATCH_MAX);
    scratch = scratch > OFFSETS_SCRATCH_BYTES ? scratch : OFFSETS_SCRATCH_BYTES;
    w->scratch = malloc(scratch);
    cr_assert_not_null(w->scratch);
    w->env = (struct part_env){.ring = &w->ring,
                               .scratch = w->scratch,
                               .scratch_bytes = scratch,
                               .zctx = &w->zctx,
                               .now_ms = rel_clock};
    part_config_default(&w->cfg);
    w->cfg.segment_bytes = PART_SEGMENT_BYTES_MIN; /* a roll every dozen batches */
    w->cfg.index_interval_bytes = 256;             /* index entries in every segment */
    w->cfg.batch_bytes_max = REL_BATCH_MAX;
    w->cfg.retention_ms = -1;
    for (int p = 0; p < REL_COMMIT_PARTITIONS; p++) {
        w->commit_floor[p] = -1;
        w->commit_tried[p] = -1;
    }
}

void rel_teardown(struct rel_world *w)
{
    (void)rel_close(w);
    ring_fini(&w->ring);
    batch_zctx_fini(&w->zctx);
    free(w->scratch);
    free(w->attempts);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", w->root);
    live_world = NULL;
    cr_assert_eq(system(cmd), 0);
}

void rel_cleanup(void)
{
    if (live_world != NULL) {
        ring_sim_disable();
        rel_teardown(live_world);
    }
}

int rel_open(struct rel_world *w)
{
    int rc = 0;
    if (!w->cat_open) {
        rc = catalog_open(&w->cat, w->data);
        w->cat_open = rc == 0;
    }
    if (rc == 0 && !w->part_open) {
        rc = part_open(&w->part, w->log_dir, &w->cfg, &w->env);
        w->part_open = rc == 0;
    }
    if (rc == 0 && !w->offsets_open) {
        rc = offsets_open(&w->offsets, w->offsets_dir, &w->env, REL_OFFSETS_SEGMENT_BYTES);
        w->offsets_open = rc == 0;
    }
    return rc;
}

int rel_close(struct rel_world *w)
{
    int first = 0;
    if (w->part_open) {
        int rc = part_drain(&w->part);
        int rc2 = part_close(&w->part);
        first = rc != 0 ? rc : rc2;
        w->part_open = false;
    }
    if (w->offsets_open) {
        int rc = offsets_close(&w->offsets);
        first = first != 0 ? first : rc;
        w->offsets_open = false;
    }
    if (w->cat_open) {
        catalog_close(&w->cat);
        w->cat_open = false;
    }
    return first;
}

/* ---- the workload ---- */

struct rel_append {
    struct part_append a; /* first: the callback casts */
    struct rel_world *w;
    uint8_t buf[REL_BATCH_MAX];
    uint32_t seed;
    int64_t offset;
    bool done;
    int rc;
};

struct rel_commit {
    struct offsets_commit c;
    struct rel_world *w;
    int32_t partition;
    int64_t value;
    bool done;
    int rc;
};

/* The first attempt at or past offset (attempts are sorted by offset;
 * several at one offset when a full disk cut the log back and its offsets
 * were given again). */
static uint32_t attempt_lower(const struct rel_world *w, int64_t offset)
{
    uint32_t lo = 0;
    uint32_t hi = w->attempts_count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (w->attempts[mid].offset < offset) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

/* Notes a batch given offset. Attempts at or past it were cut back (a
 * full disk): they stay, as any of them may be what a power cut leaves
 * there, but none of them may have been acknowledged. */
static void attempt_add(struct rel_world *w, int64_t offset, uint32_t seed, uint32_t records)
{
    uint32_t at = attempt_lower(w, offset);
    for (uint32_t i = at; i < w->attempts_count; i++) {
        w->counts.acked_offsets_reused += w->attempts[i].acked;
    }
    while (at < w->attempts_count && w->attempts[at].offset == offset) {
        at++; /* after the earlier attempts at this offset */
    }
    if (w->attempts_count == w->attempts_cap) {
        w->attempts_cap = w->attempts_cap ? 2 * w->attempts_cap : 256;
        w->attempts = realloc(w->attempts, w->attempts_cap * sizeof(*w->attempts));
        cr_assert_not_null(w->attempts);
    }
    memmove(&w->attempts[at + 1], &w->attempts[at],
            (w->attempts_count - at) * sizeof(*w->attempts));
    w->attempts[at] = (struct rel_attempt){.offset = offset, .seed = seed, .records = records};
    w->attempts_count++;
}

static struct rel_attempt *attempt_find(struct rel_world *w, int64_t offset, uint32_t seed)
{
    for (uint32_t i = attempt_lower(w, offset);
         i < w->attempts_count && w->attempts[i].offset == offset; i++) {
        if (w->attempts[i].seed == seed) {
            return &w->attempts[i];
        }
    }
    return NULL;
}

static void append_done(struct part_append *a, int rc)
{
    struct rel_append *ra = (struct rel_append *)a;
    struct rel_world *w = ra->w;
    ra->done = true;
    ra->rc = rc;
    if (rc != 0) {
        w->counts.appends_failed++;
        return;
    }
    w->counts.appends_acked++;
    struct rel_attempt *t = attempt_find(w, ra->offset, ra->seed);
    cr_assert_not_null(t, "an acknowledged append lost its attempt record");
    t->acked = true;
}

/* Starts the round's appends; returns how many are in flight. */
static uint32_t start_appends(struct rel_world *w, struct rel_append *ras, uint32_t n)
{
    uint32_t started = 0;
    for (uint32_t i = 0; i < n && w->part_open; i++) {
        struct rel_append *ra = &ras[i];
        uint32_t seed = w->seed_next++;
        uint32_t records = 1 + seed % 3;
        size_t len = fx_batch(ra->buf, sizeof(ra->buf), records, REL_VALUE_BYTES(seed), seed,
                              REL_NOW_MS + seed, BATCH_CODEC_NONE, NULL);
        ra->a = (struct part_append){
            .batch = ra->buf, .bytes = len, .durable = true, .done = append_done};
        ra->w = w;
        ra->done = false;
        bool failed = part_failed(&w->part) != 0;
        int rc = part_append(&w->part, &ra->a);
        if (rc != 0) {
            w->counts.appends_refused++;
            w->counts.refusals_missing += failed && rc != -NG_EFAILED;
            ra->done = true;
            continue;
        }
        w->counts.refusals_missing += failed;
        ra->offset = ra->a.hdr.offset_base;
        ra->seed = seed;
        attempt_add(w, ra->offset, seed, records);
        started++;
    }
    return started;
}

static void commit_done(struct offsets_commit *c, int rc)
{
    struct rel_commit *rc_ = c->ctx;
    struct rel_world *w = rc_->w;
    rc_->done = true;
    rc_->rc = rc;
    if (rc != 0) {
        w->counts.commits_failed++;
        return;
    }
    w->counts.commits_acked++;
    int32_t p = rc_->partition;
    w->commit_floor[p] = rc_->value > w->commit_floor[p] ? rc_->value : w->commit_floor[p];
}

/* Starts one commit of a growing value; returns whether it is in flight. */
static bool start_commit(struct rel_world *w, struct rel_commit *rc_)
{
    if (!w->offsets_open) {
        return false;
    }
    int32_t p = (int32_t)(w->round % REL_COMMIT_PARTITIONS);
    *rc_ = (struct rel_commit){.w = w, .partition = p, .value = ++w->commit_value};
    struct offsets_item item = {.topic = REL_TOPIC, .partition = p, .offset = rc_->value};
    bool failed = part_failed(&w->offsets.log) != 0;
    w->commit_tried[p] = rc_->value;
    int rc = offsets_commit(&w->offsets, &rc_->c, REL_GROUP, &item, 1, commit_done, rc_);
    if (rc != 0) {
        w->counts.commits_failed++;
        w->counts.refusals_missing += failed && rc != -NG_EFAILED;
        return false;
    }
    w->counts.refusals_missing += failed;
    return true;
}

static void topic_name(char out[16], uint32_t i) { snprintf(out, 16, "t%u", i); }

/* Creates the next topic, or deletes the oldest once REL_TOPICS_LIVE are
 * there. */
static void topic_op(struct rel_world *w)
{
    char name[16];
    uint32_t live = 0;
    uint32_t oldest = UINT32_MAX;
    uint32_t named = w->topics_next < REL_TOPICS_MAX ? w->topics_next : REL_TOPICS_MAX;
    for (uint32_t i = 0; i < named; i++) {
        topic_name(name, i);
        if (catalog_find(&w->cat, name, strlen(name)) != NULL) {
            live++;
            oldest = oldest < i ? oldest : i;
        }
    }
    bool deleting = live >= REL_TOPICS_LIVE;
    /* Names are reused round the table: a slot's topic was deleted long ago. */
    uint32_t i = deleting ? oldest : w->topics_next++ % REL_TOPICS_MAX;
    topic_name(name, i);
    if (!deleting && catalog_find(&w->cat, name, strlen(name)) != NULL) {
        return;
    }
    bool failed = catalog_failed(&w->cat) != 0;
    int rc = deleting ? catalog_delete(&w->cat, name, strlen(name))
                      : catalog_create(&w->cat, name, strlen(name), &topic_cfg);
    w->counts.refusals_missing += failed && rc != -NG_EFAILED;
    if (rc == 0) {
        w->counts.topic_ops_acked++;
        w->topics[i] = deleting ? REL_TOPIC_ABSENT : REL_TOPIC_PRESENT;
    } else {
        w->counts.topic_ops_failed++;
        w->topics[i] = REL_TOPIC_EITHER;
    }
}

void rel_round(struct rel_world *w)
{
    static struct rel_append appends[REL_APPENDS_PER_ROUND];
    static struct rel_commit commit;
    if (ring_sim_crashed()) {
        return;
    }
    uint32_t n = start_appends(w, appends, REL_APPENDS_PER_ROUND);
    bool committing = start_commit(w, &commit);
    for (;;) {
        bool all = !committing || commit.done;
        for (uint32_t i = 0; i < REL_APPENDS_PER_ROUND && n > 0; i++) {
            all &= appends[i].done;
        }
        if (all) {
            break;
        }
        /* Every append and commit must complete, with an error or not. */
        int rc = ring_run(&w->ring, REL_COMPLETION_WAIT_MS);
        cr_assert(rc != 0, "an append or commit never completed");
        cr_assert(rc > 0 || rc == -EINTR, "ring_run: %s", err_str(rc));
    }
    if (w->round % 2 == 1 && w->cat_open && !ring_sim_crashed()) {
        topic_op(w);
    }
    w->round++;
}

/* ---- checks ---- */

/* The attempt at offset that buf[0..len) is, or NULL. When one there was
 * acknowledged or seen, only that one will do. */
static struct rel_attempt *batch_attempt(struct rel_world *w, const uint8_t *buf, size_t len,
                                         const struct batch_header *h, int64_t offset)
{
    uint32_t first = attempt_lower(w, offset);
    uint32_t end = first;
    bool must = false;
    while (end < w->attempts_count && w->attempts[end].offset == offset) {
        must |= w->attempts[end].acked || w->attempts[end].seen;
        end++;
    }
    for (uint32_t i = first; i < end && h->offset_base == offset; i++) {
        struct rel_attempt *t = &w->attempts[i];
        bool allowed = !must || t->acked || t->seen;
        if (allowed && fx_check_batch(buf, len, t->seed, &w->zctx) == (int)t->records) {
            return t;
        }
    }
    return NULL;
}

static void report_bad_batch(const struct rel_world *w, int64_t off, const struct batch_header *h)
{
    if (getenv("NAGARE_RELIABILITY_LOG") == NULL) {
        return;
    }
    fprintf(stderr, "check: the batch at %lld (%d records, %zu bytes) is none appended there:",
            (long long)off, h->record_count, batch_bytes(h));
    for (uint32_t i = attempt_lower(w, off); i < w->attempts_count && w->attempts[i].offset == off;
         i++) {
        fprintf(stderr, " [seed %u, %u records%s%s]", w->attempts[i].seed, w->attempts[i].records,
                w->attempts[i].acked ? ", acked" : "", w->attempts[i].seen ? ", seen" : "");
    }
    fprintf(stderr, "\n");
}

/* Reads the whole log (part_read verifies every checksum), stepping over
 * damaged ranges, and finds each batch among the attempts at its offset,
 * marking it found. Returns where the reading stopped. */
static int64_t check_batches(struct rel_world *w, struct rel_loss *loss)
{
    static uint8_t buf[256 * 1024];
    int64_t latest = part_offset_latest(&w->part);
    int64_t off = part_offset_earliest(&w->part);
    while (off < latest) {
        struct part_read_result r;
        int rc = part_read(&w->part, off, buf, sizeof(buf), sizeof(buf), &r);
        int64_t segment;
        struct seg_damage d;
        if (rc == -NG_ECORRUPT && part_corrupt_range(&w->part, off, &segment, &d)) {
            /* A cut tore unsynced writes out of order (a later one kept, an
             * earlier one not): recovery keeps the later batches and marks
             * the torn bytes as damage. Acknowledged records in the range
             * are not found, so they count as lost below. */
            off = d.offset_end;
            continue;
        }
        if (rc != 0 || r.bytes == 0) {
            if (getenv("NAGARE_RELIABILITY_LOG") != NULL) {
                fprintf(stderr, "check: read at %lld of [%lld, %lld): %s\n", (long long)off,
                        (long long)part_offset_earliest(&w->part), (long long)latest, err_str(rc));
            }
            loss->read_errors++;
            return off;
        }
        for (size_t at = 0; at < r.bytes;) {
            struct batch_header h;
            rc = batch_header_decode(buf + at, r.bytes - at, REL_BATCH_MAX, &h);
            cr_assert_eq(rc, 0, "part_read returned a bad header at %lld", (long long)off);
            struct rel_attempt *t = batch_attempt(w, buf + at, batch_bytes(&h), &h, off);
            if (t == NULL) {
                report_bad_batch(w, off, &h);
                loss->batches_bad++;
                return off;
            }
            t->found = true;
            at += batch_bytes(&h);
            off = batch_offset_last(&h) + 1;
        }
    }
    return off;
}

/* Checks the log, then keeps as attempts exactly the batches found: what
 * recovery showed must stay; the rest never was, and its offsets will be
 * given again. */
static void check_log(struct rel_world *w, struct rel_loss *loss)
{
    for (uint32_t i = 0; i < w->attempts_count; i++) {
        w->attempts[i].found = false;
    }
    (void)check_batches(w, loss);
    uint32_t kept = 0;
    for (uint32_t i = 0; i < w->attempts_count; i++) {
        struct rel_attempt t = w->attempts[i];
        if ((t.acked || t.seen) && !t.found) {
            loss->records_lost += t.records;
        }
        if (t.found) {
            t.seen = true;
            w->attempts[kept++] = t;
        }
    }
    w->attempts_count = kept;
}

static void check_offsets(struct rel_world *w, struct rel_loss *loss)
{
    for (int32_t p = 0; p < REL_COMMIT_PARTITIONS; p++) {
        int64_t v = -1;
        if (offsets_get(&w->offsets, REL_GROUP, REL_TOPIC, p, &v) != 0) {
            v = -1;
        }
        loss->commits_back += v < w->commit_floor[p];
        loss->commits_invented += v > w->commit_tried[p];
        w->commit_floor[p] = v;
    }
}

static bool topic_whole(const struct catalog_topic *t)
{
    return memcmp(&t->cfg, &topic_cfg, sizeof(topic_cfg)) == 0;
}

static void check_topics(struct rel_world *w, struct rel_loss *loss)
{
    uint32_t named = w->topics_next < REL_TOPICS_MAX ? w->topics_next : REL_TOPICS_MAX;
    for (uint32_t i = 0; i < named; i++) {
        char name[16];
        topic_name(name, i);
        const struct catalog_topic *t = catalog_find(&w->cat, name, strlen(name));
        loss->topics_lost += w->topics[i] == REL_TOPIC_PRESENT && (t == NULL || !topic_whole(t));
        loss->topics_back += w->topics[i] == REL_TOPIC_ABSENT && t != NULL;
        w->topics[i] = t != NULL ? REL_TOPIC_PRESENT : REL_TOPIC_ABSENT;
    }
}

void rel_check(struct rel_world *w, struct rel_loss *loss)
{
    cr_assert(w->cat_open && w->part_open && w->offsets_open, "check an open world");
    check_log(w, loss);
    check_offsets(w, loss);
    check_topics(w, loss);
}

bool rel_loss_none(const struct rel_loss *l)
{
    return l->records_lost == 0 && l->batches_bad == 0 && l->read_errors == 0 &&
           l->commits_back == 0 && l->commits_invented == 0 && l->topics_lost == 0 &&
           l->topics_back == 0 && l->recover_failed == 0;
}

uint64_t rel_records_acked(const struct rel_world *w)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < w->attempts_count; i++) {
        n += w->attempts[i].acked ? w->attempts[i].records : 0;
    }
    return n;
}
