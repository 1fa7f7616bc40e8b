#include "broker/datadir_verify.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "base/progress.h"
#include "broker/catalog.h"
#include "storage/verify.h"

struct run {
    FILE *out;
    const char *where; /* the partition directory being walked */
    struct verify_stats stats;
    uint64_t meta_problems;
    int unreadable;           /* first -errno met */
    uint64_t partitions;      /* verified so far */
    struct progress progress; /* on stderr, when it is a terminal */
};

/* A line of the report, after erasing the progress line. */
__attribute__((format(printf, 2, 3))) static void say(struct run *r, const char *fmt, ...)
{
    progress_clear(&r->progress);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(r->out, fmt, ap);
    va_end(ap);
}

#define PATH_BYTES 4608

/* a/b into out; false (and a report) when it does not fit. */
static bool join(struct run *r, char out[PATH_BYTES], const char *a, const char *b)
{
    int n = snprintf(out, PATH_BYTES, "%s/%s", a, b);
    if (n < 0 || n >= PATH_BYTES) {
        say(r, "UNREADABLE %s/%s: path too long\n", a, b);
        r->unreadable = r->unreadable != 0 ? r->unreadable : -ENAMETOOLONG;
        return false;
    }
    return true;
}

static void report(void *arg, const struct verify_problem *p)
{
    struct run *r = arg;
    if (p->reason == 0) {
        say(r,
            "FORMAT1 %s/%s: batch format 1, verified as format 2 will hold it; "
            "the next broker start upgrades it\n",
            r->where, p->file);
        return;
    }
    const char *as = p->format1 ? " (format 1, as its upgrade will hold it)" : "";
    if (p->offset < 0) {
        say(r, "BAD %s/%s%s: index entries do not hold (%s); recovery rebuilds it\n", r->where,
            p->file, as, err_str(p->reason));
        return;
    }
    if (p->torn_tail) {
        say(r,
            "BAD %s/%s%s at byte %" PRIu64 " (offset %" PRId64 "): %s; nothing good "
            "after it: a torn tail, recovery cuts it\n",
            r->where, p->file, as, p->position, p->offset, err_str(p->reason));
        return;
    }
    say(r,
        "BAD %s/%s%s at bytes [%" PRIu64 ", %" PRIu64 ") (offsets [%" PRId64 ", %" PRId64
        ")): %s; a damaged range: not served, the batches around it are\n",
        r->where, p->file, as, p->position, p->position + p->bytes, p->offset, p->offset_end,
        err_str(p->reason));
}

static void partition(struct run *r, const char *dir, uint32_t batch_bytes_max)
{
    r->where = dir;
    int rc = verify_partition(dir, batch_bytes_max, report, r, &r->stats);
    if (rc != 0) {
        say(r, "UNREADABLE %s: %s\n", dir, err_str(rc));
        r->unreadable = r->unreadable != 0 ? r->unreadable : rc;
    }
    progress_update(&r->progress, r->stats.bytes, ++r->partitions);
}

/* Reads and checks one topic.meta; returns its partition count, or -1. */
static int32_t topic_meta(struct run *r, const char *topic_dir, const char *name,
                          uint32_t *batch_max)
{
    char path[PATH_BYTES];
    if (!join(r, path, topic_dir, "topic.meta")) {
        return -1;
    }
    FILE *f = fopen(path, "rb");
    char buf[CATALOG_META_BYTES_MAX + 1];
    size_t len = f ? fread(buf, 1, sizeof(buf), f) : 0;
    if (f != NULL) {
        fclose(f);
    }
    struct catalog_topic t;
    char why[256] = "cannot read it";
    if (f == NULL || len > CATALOG_META_BYTES_MAX ||
        catalog_meta_decode(buf, len, &t, why, sizeof(why)) != 0 || strcmp(t.name, name) != 0) {
        say(r, "BAD %s: %s\n", path,
            f != NULL && strcmp(why, "cannot read it") == 0 ? "names another topic" : why);
        r->meta_problems++;
        return -1;
    }
    *batch_max = (uint32_t)t.cfg.batch_bytes_max;
    return t.cfg.partitions;
}

/* Without a readable topic.meta, the partition count is unknown: check the
 * partition directories that are there. */
static int32_t partitions_on_disk(const char *topic_dir)
{
    DIR *d = opendir(topic_dir);
    int32_t count = 0;
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        char *end;
        long p = strtol(e->d_name, &end, 10);
        if (e->d_name[0] >= '0' && e->d_name[0] <= '9' && *end == '\0' && p < INT32_MAX &&
            p + 1 > count) {
            count = (int32_t)(p + 1);
        }
    }
    if (d != NULL) {
        closedir(d);
    }
    return count;
}

static void topics(struct run *r, const char *data_dir)
{
    char dir[PATH_BYTES];
    if (!join(r, dir, data_dir, "topics")) {
        return;
    }
    DIR *d = opendir(dir);
    if (d == NULL) {
        say(r, "UNREADABLE %s: %s\n", dir, strerror(errno));
        r->unreadable = -errno;
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' && (e->d_name[1] == '\0' || strcmp(e->d_name, "..") == 0)) {
            continue;
        }
        char topic_dir[PATH_BYTES];
        uint32_t batch_max = BATCH_BYTES_LIMIT;
        if (!join(r, topic_dir, dir, e->d_name)) {
            continue;
        }
        int32_t parts = topic_meta(r, topic_dir, e->d_name, &batch_max);
        parts = parts >= 0 ? parts : partitions_on_disk(topic_dir);
        for (int32_t p = 0; p < parts; p++) {
            char index[16];
            char part_dir[PATH_BYTES];
            snprintf(index, sizeof(index), "%d", p);
            if (join(r, part_dir, topic_dir, index)) {
                partition(r, part_dir, batch_max);
            }
        }
    }
    closedir(d);
}

int datadir_verify(const char *data_dir, FILE *out)
{
    struct run r = {.out = out};
    progress_start(&r.progress, STDERR_FILENO, false, "verifying", "partitions", 0);
    topics(&r, data_dir);
    static const char *const internal[] = {"groups/offsets", "groups/share-state"};
    for (size_t i = 0; i < ARRAY_LEN(internal); i++) {
        char dir[PATH_BYTES];
        DIR *d = join(&r, dir, data_dir, internal[i]) ? opendir(dir) : NULL;
        if (d != NULL) { /* absent until first used: nothing to check */
            closedir(d);
            partition(&r, dir, BATCH_BYTES_LIMIT);
        }
    }
    uint64_t problems = r.stats.problems + r.meta_problems;
    progress_clear(&r.progress);
    fprintf(out,
            "verified %s: %" PRIu64 " segments, %" PRIu64 " batches, %" PRIu64 " records, %" PRIu64
            " bytes; %" PRIu64 " problem%s\n",
            data_dir, r.stats.segments, r.stats.batches, r.stats.records, r.stats.bytes, problems,
            problems == 1 ? "" : "s");
    if (r.stats.format1_segments > 0) {
        fprintf(out,
                "%" PRIu64 " segment%s in batch format 1: the next broker start upgrades "
                "them to format 2\n",
                r.stats.format1_segments, r.stats.format1_segments == 1 ? "" : "s");
    }
    return r.unreadable != 0 ? 2 : problems > 0 ? 1 : 0;
}
