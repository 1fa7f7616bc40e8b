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
#define REL_VALUE_BYTES 100
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
    w->env = (struct part_env){.ring = &w->ring, .scratch = w->scratch,
                               .scratch_bytes = scratch, .zctx = &w->zctx,
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
    cr_assert_eq(system(cmd), 0);
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
        rc = offsets_open(&w->offsets, w->offsets_dir, &w->env);
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
    uint8_t buf[2048];
    uint32_t attempt;
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

/* Notes a batch given offset; batches at or past it that were never
 * acknowledged were cut back (a full disk) and their offsets reused. */
static uint32_t attempt_add(struct rel_world *w, int64_t offset, uint32_t seed, uint32_t records)
{
    while (w->attempts_count > 0 && w->attempts[w->attempts_count - 1].offset >= offset) {
        w->attempts_count--;
        if (w->attempts[w->attempts_count].acked) {
            w->counts.acked_offsets_reused++;
        }
    }
    if (w->attempts_count == w->attempts_cap) {
        w->attempts_cap = w->attempts_cap ? 2 * w->attempts_cap : 256;
        w->attempts = realloc(w->attempts, w->attempts_cap * sizeof(*w->attempts));
        cr_assert_not_null(w->attempts);
    }
    w->attempts[w->attempts_count] = (struct rel_attempt){.offset = offset, .seed = seed,
                                                          .records = records};
    return w->attempts_count++;
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
    cr_assert(ra->attempt < w->attempts_count && w->attempts[ra->attempt].offset == ra->offset,
              "an acknowledged append lost its attempt record");
    struct rel_attempt *t = &w->attempts[ra->attempt];
    t->acked = true;
    if (t->offset + t->records > w->floor_offset) {
        w->floor_offset = t->offset + t->records;
    }
}

/* Starts the round's appends; returns how many are in flight. */
static uint32_t start_appends(struct rel_world *w, struct rel_append *ras, uint32_t n)
{
    uint32_t started = 0;
    for (uint32_t i = 0; i < n && w->part_open; i++) {
        struct rel_append *ra = &ras[i];
        uint32_t seed = w->seed_next++;
        uint32_t records = 1 + seed % 3;
        size_t len = fx_batch(ra->buf, sizeof(ra->buf), records, REL_VALUE_BYTES, seed,
                              REL_NOW_MS + seed, BATCH_CODEC_NONE, NULL);
        ra->a = (struct part_append){.batch = ra->buf, .bytes = len, .durable = true,
                                     .done = append_done};
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
        ra->attempt = attempt_add(w, ra->offset, seed, records);
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

/* Records of attempts in [from, to) that had to be there. */
static uint64_t records_between(const struct rel_world *w, int64_t from, int64_t to)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < w->attempts_count; i++) {
        const struct rel_attempt *t = &w->attempts[i];
        if (t->offset >= from && t->offset < to) {
            n += t->records;
        }
    }
    return n;
}

/* Is buf[0..len) at offset the batch appended there? *k walks attempts. */
static bool batch_matches(struct rel_world *w, const uint8_t *buf, size_t len,
                          const struct batch_header *h, int64_t offset, uint32_t *k)
{
    while (*k < w->attempts_count && w->attempts[*k].offset < offset) {
        (*k)++;
    }
    if (*k == w->attempts_count || w->attempts[*k].offset != offset || h->offset_base != offset) {
        return false;
    }
    const struct rel_attempt *t = &w->attempts[*k];
    return fx_check_batch(buf, len, t->seed, &w->zctx) == (int)t->records;
}

/* Reads the whole log (part_read verifies every checksum) and compares
 * each batch with the attempt at its offset. Returns where the good dense
 * prefix ends. */
static int64_t check_batches(struct rel_world *w, struct rel_loss *loss)
{
    static uint8_t buf[64 * 1024];
    int64_t latest = part_offset_latest(&w->part);
    int64_t off = part_offset_earliest(&w->part);
    uint32_t k = 0;
    loss->records_lost += records_between(w, 0, off < w->floor_offset ? off : w->floor_offset);
    while (off < latest) {
        struct part_read_result r;
        int rc = part_read(&w->part, off, buf, sizeof(buf), sizeof(buf), &r);
        if (rc != 0 || r.bytes == 0) {
            if (getenv("NAGARE_RELIABILITY_LOG") != NULL) {
                fprintf(stderr, "check: read at %lld of [%lld, %lld), floor %lld: %s\n",
                        (long long)off, (long long)part_offset_earliest(&w->part),
                        (long long)latest, (long long)w->floor_offset, err_str(rc));
            }
            loss->read_errors++;
            return off;
        }
        for (size_t at = 0; at < r.bytes;) {
            struct batch_header h;
            rc = batch_header_decode(buf + at, r.bytes - at, REL_BATCH_MAX, &h);
            cr_assert_eq(rc, 0, "part_read returned a bad header at %lld", (long long)off);
            if (!batch_matches(w, buf + at, batch_bytes(&h), &h, off, &k)) {
                loss->batches_bad++;
                return off;
            }
            at += batch_bytes(&h);
            off = batch_offset_last(&h) + 1;
        }
    }
    return off;
}

static void check_log(struct rel_world *w, struct rel_loss *loss)
{
    int64_t end = check_batches(w, loss);
    if (end < w->floor_offset) {
        loss->records_lost += records_between(w, end, w->floor_offset);
    }
    /* What is there is the floor now; the rest never was, and its offsets
     * will be given again. */
    while (w->attempts_count > 0 && w->attempts[w->attempts_count - 1].offset >= end) {
        w->attempts_count--;
    }
    w->floor_offset = end;
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
