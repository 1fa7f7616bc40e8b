#include "storage/verify.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/file.h"
#include "storage/batch.h"
#include "storage/format1.h"
#include "storage/index.h"
#include "storage/segment.h"

struct walk {
    int fd;
    uint64_t size;
    uint32_t batch_bytes_max;
    uint8_t *buf; /* SEG_RESYNC_BUF_BYTES(batch_bytes_max) */
    verify_report_fn report;
    void *arg;
    struct verify_stats *stats;
    bool format1; /* the segment is format 1: fd is its upgraded copy */
    char name[SEG_NAME_BYTES];
};

/* Checks the batch at pos: 0 with *h when it is whole, valid and starts at
 * expect, else why not (or -errno). */
static int check_at(struct walk *w, uint64_t pos, int64_t expect, struct batch_header *h)
{
    if (w->size - pos < BATCH_HEADER_BYTES) {
        return -NG_ETRUNCATED;
    }
    int rc = file_pread_all(w->fd, w->buf, BATCH_HEADER_BYTES, pos);
    rc = rc == 0 ? batch_header_decode(w->buf, BATCH_HEADER_BYTES, w->batch_bytes_max, h) : rc;
    if (rc == 0 && h->offset_base != expect) {
        rc = -NG_EDISCONTINUITY;
    }
    if (rc == 0 && batch_bytes(h) > w->size - pos) {
        rc = -NG_ETRUNCATED;
    }
    rc = rc == 0 ? file_pread_all(w->fd, w->buf, batch_bytes(h), pos) : rc;
    return rc == 0 ? batch_validate(w->buf, batch_bytes(h), w->batch_bytes_max, h) : rc;
}

static void problem(struct walk *w, const struct verify_problem *p)
{
    w->stats->problems++;
    struct verify_problem q = *p;
    q.format1 = w->format1;
    w->report(w->arg, &q);
}

/* A format-1 segment is judged as the broker will read it after its
 * upgrade: w->fd becomes the upgraded copy, in an unlinked temporary file.
 * Returns 1 (it was format 1), 0 (left as it is), or -errno. */
static int format1_as_upgraded(struct walk *w)
{
    int rc = format1_segment_is_format1(w->fd, w->size, w->batch_bytes_max);
    if (rc <= 0) {
        return rc;
    }
    FILE *t = tmpfile();
    int fd = t != NULL ? dup(fileno(t)) : -1;
    rc = fd < 0 ? -errno : 0;
    if (t != NULL) {
        fclose(t);
    }
    rc = rc == 0 ? format1_segment_copy(w->fd, w->size, fd, w->batch_bytes_max) : rc;
    if (rc != 0) {
        if (fd >= 0) {
            close(fd);
        }
        return rc;
    }
    close(w->fd);
    w->fd = fd;
    return 1;
}

/* Walks one segment's log, reporting every damaged range as recovery and
 * reads find it (seg_resync()): offset_end is the successor's base offset,
 * -1 for the last segment. */
static void walk_log(struct walk *w, int64_t base, int64_t offset_end)
{
    uint64_t pos = 0;
    int64_t expect = base;
    int64_t limit = offset_end >= 0 ? offset_end : INT64_MAX;
    while (pos < w->size) {
        struct batch_header h;
        int rc = check_at(w, pos, expect, &h);
        if (rc == 0) {
            w->stats->batches++;
            w->stats->records += (uint64_t)h.record_count;
            pos += batch_bytes(&h);
            expect = batch_offset_last(&h) + 1;
            continue;
        }
        uint64_t next = w->size;
        int64_t resume = -1;
        int why = rc;
        if (rc > -NG_ERR_FIRST ||
            (rc = seg_resync(w->fd, pos, expect, w->size, limit, w->batch_bytes_max, w->buf,
                             SEG_RESYNC_BUF_BYTES(w->batch_bytes_max), &next, &resume)) != 0) {
            why = rc; /* unreadable: report it as such, at its place */
        }
        struct verify_problem p = {.file = w->name,
                                   .position = pos,
                                   .offset = expect,
                                   .reason = why,
                                   .bytes = next - pos,
                                   .offset_end = resume >= 0 ? resume : offset_end,
                                   .torn_tail =
                                       resume < 0 && offset_end < 0 && why <= -NG_ERR_FIRST};
        problem(w, &p);
        if (resume < 0) {
            break;
        }
        pos = next;
        expect = resume;
    }
    if (pos == w->size && offset_end >= 0 && expect < offset_end) {
        /* Whole batches, but the offsets stop short of the successor's. */
        struct verify_problem p = {.file = w->name,
                                   .position = pos,
                                   .offset = expect,
                                   .reason = -NG_EDISCONTINUITY,
                                   .offset_end = offset_end};
        problem(w, &p);
    }
    w->stats->bytes += w->size;
}

/* Loads an index file and reports it when its entries do not hold. A
 * missing one is no problem: recovery rebuilds it. */
static void check_index(struct walk *w, int dirfd, int64_t base, enum idx_kind kind)
{
    struct walk iw = *w;
    seg_name(iw.name, base, kind == IDX_OFFSET ? "index" : "timeindex");
    int fd = openat(dirfd, iw.name, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0) {
            close(fd);
        }
        return;
    }
    size_t entry = kind == IDX_OFFSET ? IDX_OFFSET_ENTRY_BYTES : IDX_TIME_ENTRY_BYTES;
    uint8_t *bytes = malloc((size_t)st.st_size + 1);
    struct idx x;
    if (bytes != NULL &&
        idx_init(&x, kind, (uint32_t)((size_t)st.st_size / entry + 1), base) == 0) {
        int rc = file_pread_all(fd, bytes, (size_t)st.st_size, 0);
        rc = rc == 0 ? idx_load(&x, bytes, (size_t)st.st_size, w->size, UINT32_MAX) : rc;
        if (rc != 0) {
            problem(&iw, &(struct verify_problem){
                             .file = iw.name, .offset = -1, .offset_end = -1, .reason = rc});
        }
        idx_fini(&x);
    }
    free(bytes);
    close(fd);
}

int verify_partition(const char *dir, uint32_t batch_bytes_max, verify_report_fn report, void *arg,
                     struct verify_stats *stats)
{
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        return -errno;
    }
    int64_t *bases = NULL;
    uint32_t count = 0;
    struct walk w = {
        .batch_bytes_max = batch_bytes_max, .report = report, .arg = arg, .stats = stats};
    w.buf = malloc(SEG_RESYNC_BUF_BYTES(batch_bytes_max));
    int rc = w.buf == NULL ? -ENOMEM : seg_list(dirfd, &bases, &count);
    for (uint32_t i = 0; rc == 0 && i < count; i++) {
        seg_name(w.name, bases[i], "log");
        struct stat st;
        w.fd = openat(dirfd, w.name, O_RDONLY | O_CLOEXEC);
        rc = w.fd < 0 || fstat(w.fd, &st) != 0 ? -errno : 0;
        if (rc == 0) {
            w.size = (uint64_t)st.st_size;
            rc = format1_as_upgraded(&w);
            w.format1 = rc == 1;
            rc = rc < 0 ? rc : 0;
        }
        if (rc == 0) {
            stats->segments++;
            if (w.format1) {
                stats->format1_segments++;
                report(arg, &(struct verify_problem){
                                .file = w.name, .offset = -1, .offset_end = -1, .format1 = true});
            }
            walk_log(&w, bases[i], i + 1 < count ? bases[i + 1] : -1);
            check_index(&w, dirfd, bases[i], IDX_OFFSET);
            check_index(&w, dirfd, bases[i], IDX_TIME);
        }
        if (w.fd >= 0) {
            close(w.fd);
        }
    }
    free(bases);
    free(w.buf);
    close(dirfd);
    return rc;
}
