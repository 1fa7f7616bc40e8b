#include "storage/segment.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/file.h"
#include "base/log.h"

void seg_name(char out[SEG_NAME_BYTES], int64_t offset_base, const char *ext)
{
    ASSERT(offset_base >= 0);
    int n = snprintf(out, SEG_NAME_BYTES, "%020" PRId64 ".%s", offset_base, ext);
    ASSERT(n > 0 && n < SEG_NAME_BYTES);
}

bool seg_parse_log_name(const char *name, int64_t *base)
{
    if (strlen(name) != 24 || strcmp(name + 20, ".log") != 0) {
        return false;
    }
    int64_t v = 0;
    for (int i = 0; i < 20; i++) {
        if (name[i] < '0' || name[i] > '9' || v > (INT64_MAX - 9) / 10) {
            return false;
        }
        v = v * 10 + (name[i] - '0');
    }
    *base = v;
    return true;
}

/* Entries a segment of log_bytes can need: one per interval, plus the first
 * batch's, plus one for a batch that overshoots the interval. */
static uint32_t index_cap(uint64_t log_bytes, const struct seg_limits *lim)
{
    uint64_t bytes = log_bytes > lim->segment_bytes ? log_bytes : lim->segment_bytes;
    uint64_t cap = (bytes + lim->batch_bytes_max) / lim->index_interval_bytes + 2;
    ASSERT(cap <= UINT32_MAX);
    return (uint32_t)cap;
}

static void seg_reset(struct seg *s, int64_t offset_base)
{
    memset(s, 0, sizeof(*s));
    s->offset_base = offset_base;
    s->offset_next = offset_base;
    s->timestamp_max_ms = INT64_MIN;
    s->fd_log = -1;
    s->fd_index = -1;
    s->fd_time = -1;
}

static int open_at(int dirfd, int64_t base, const char *ext, int flags)
{
    char name[SEG_NAME_BYTES];
    seg_name(name, base, ext);
    if ((flags & O_CREAT) != 0) {
        ring_note_dirent(dirfd, name, RING_DIRENT_CREATE); /* power-loss tests (base/ring.h) */
    }
    int fd = openat(dirfd, name, flags | O_CLOEXEC, 0644);
    return fd < 0 ? -errno : fd;
}

static int idx_alloc(struct seg *s, uint64_t log_bytes, const struct seg_limits *lim)
{
    uint32_t cap = index_cap(log_bytes, lim);
    int rc = idx_init(&s->index, IDX_OFFSET, cap, s->offset_base);
    if (rc == 0) {
        rc = idx_init(&s->timeindex, IDX_TIME, cap, s->offset_base);
    }
    return rc;
}

int seg_create(struct seg *s, int dirfd, int64_t offset_base, const struct seg_limits *lim,
               int64_t now_ms)
{
    seg_reset(s, offset_base);
    s->created_ms = now_ms;
    s->verified_pos = UINT64_MAX; /* only validated appends will fill it */
    int rc = idx_alloc(s, 0, lim);
    if (rc == 0) {
        rc = s->fd_log = open_at(dirfd, offset_base, "log", O_RDWR | O_CREAT | O_EXCL);
    }
    /* Index files are derived data: an old one under this name is stale. */
    if (rc >= 0) {
        rc = s->fd_index = open_at(dirfd, offset_base, "index", O_RDWR | O_CREAT | O_TRUNC);
    }
    if (rc >= 0) {
        rc = s->fd_time = open_at(dirfd, offset_base, "timeindex", O_RDWR | O_CREAT | O_TRUNC);
    }
    if (rc < 0) {
        seg_close(s);
        return rc;
    }
    return 0;
}

/* ---- reading through a window ---- */

/* A sliding window over a file, so a walk over many small batches costs one
 * pread per window rather than one per header. A walk that reads headers
 * only uses a small window (HEADER_WINDOW_BYTES): a big one would copy a
 * large batch's bytes just to reach the next header. A checking walk needs
 * whole batches, so it uses all its buffer. */
#define HEADER_WINDOW_BYTES (8u * 1024)
static_assert(HEADER_WINDOW_BYTES >= BATCH_HEADER_BYTES, "a header fits the window");

struct win {
    int fd;
    uint8_t *buf;
    size_t cap;
    uint64_t pos; /* file position of buf[0] */
    size_t len;   /* valid bytes in buf */
};

static size_t header_window(size_t buf_bytes)
{
    return buf_bytes < HEADER_WINDOW_BYTES ? buf_bytes : HEADER_WINDOW_BYTES;
}

/* Points *out at file bytes [at, at + n), reading as needed. Returns 0,
 * 1 when the file (or end) stops before at + n, or -errno. */
static int win_get(struct win *w, uint64_t at, size_t n, uint64_t end, const uint8_t **out)
{
    ASSERT(n <= w->cap);
    if (at > end || n > end - at) {
        return 1;
    }
    if (at < w->pos || at + n > w->pos + w->len) {
        size_t want = end - at < w->cap ? (size_t)(end - at) : w->cap;
        w->pos = at;
        w->len = 0;
        while (w->len < want) {
            ssize_t got = pread(w->fd, w->buf + w->len, want - w->len, (off_t)(at + w->len));
            if (got < 0) {
                if (errno == EINTR) {
                    continue;
                }
                return -errno;
            }
            if (got == 0) {
                break;
            }
            w->len += (size_t)got;
        }
        if (w->len < n) {
            return 1;
        }
    }
    *out = w->buf + (at - w->pos);
    return 0;
}

/* Reads and checks the batch at pos: header always (its base offset must be
 * expect, unless expect is -1), whole batch when checksums. Returns 0, 1 with *stop set when the batch is bad, or -errno. */
static int read_batch(struct win *w, uint64_t pos, uint64_t end, int64_t expect, bool checksums,
                      uint32_t batch_bytes_max, struct batch_header *h, int *stop)
{
    const uint8_t *p = NULL;
    int rc = win_get(w, pos, BATCH_HEADER_BYTES, end, &p);
    if (rc != 0) {
        *stop = -NG_ETRUNCATED;
        return rc < 0 ? rc : 1;
    }
    *stop = batch_header_decode(p, BATCH_HEADER_BYTES, batch_bytes_max, h);
    if (*stop == 0 && expect >= 0 && h->offset_base != expect) { /* -1: unknown */
        *stop = -NG_EDISCONTINUITY;
    }
    if (*stop == 0 && checksums) {
        rc = win_get(w, pos, batch_bytes(h), end, &p);
        if (rc < 0) {
            return rc;
        }
        *stop = rc == 1 ? -NG_ETRUNCATED : batch_validate(p, batch_bytes(h), batch_bytes_max, h);
    } else if (*stop == 0 && batch_bytes(h) > end - pos) {
        *stop = -NG_ETRUNCATED;
    }
    return *stop == 0 ? 0 : 1;
}

/* A rebuilding walk met a bad batch at pos: when good batches follow, notes
 * the damage and returns 1 with *pos / out->offset_next where they resume;
 * else 0 (a bad end). Or -errno. */
static int scan_resync(struct seg *s, uint64_t *pos, uint64_t end, int64_t offset_limit,
                       const struct seg_limits *lim, uint8_t *buf, size_t buf_bytes,
                       struct seg_scan *out)
{
    uint64_t next;
    int64_t offset;
    int rc = seg_resync(s->fd_log, *pos, out->offset_next, end, offset_limit, lim->batch_bytes_max,
                        buf, buf_bytes, &next, &offset);
    if (rc != 0 || next >= end) {
        return rc;
    }
    struct seg_damage d = {.offset = out->offset_next,
                           .offset_end = offset,
                           .pos = *pos,
                           .pos_end = next,
                           .why = out->stop};
    rc = seg_add_damage(s, &d);
    if (rc != 0) {
        return rc;
    }
    s->bytes = next;
    s->offset_next = offset;
    s->index_due_pos = next; /* the batch after damage gets an index entry */
    *pos = next;
    out->bytes_valid = next;
    out->offset_next = offset;
    out->stop = 0;
    return 1;
}

int seg_scan(struct seg *s, uint64_t pos, int64_t expect_offset, uint64_t end, int64_t offset_limit,
             bool checksums, bool rebuild, const struct seg_limits *lim, uint8_t *buf,
             size_t buf_bytes, struct seg_scan *out)
{
    ASSERT(!rebuild || pos == 0);
    ASSERT(buf_bytes >= SEG_RESYNC_BUF_BYTES(lim->batch_bytes_max));
    struct win w = {
        .fd = s->fd_log, .buf = buf, .cap = checksums ? buf_bytes : header_window(buf_bytes)};
    *out = (struct seg_scan){.bytes_valid = pos,
                             .offset_next = expect_offset,
                             .timestamp_max_ms = INT64_MIN,
                             .timestamp_first_batch_ms = INT64_MIN};
    if (rebuild) {
        idx_clear(&s->index);
        idx_clear(&s->timeindex);
        s->bytes = 0;
        s->offset_next = s->offset_base;
        s->timestamp_max_ms = INT64_MIN;
        s->index_due_pos = 0;
        s->damage_count = 0;
    }
    while (pos < end) {
        struct batch_header h;
        int rc = read_batch(&w, pos, end, out->offset_next, checksums, lim->batch_bytes_max, &h,
                            &out->stop);
        if (rc == 1 && rebuild) {
            rc = scan_resync(s, &pos, end, offset_limit, lim, buf, buf_bytes, out);
            w.len = 0; /* the resync used buf: read the window again */
            if (rc == 1) {
                continue;
            }
            rc = rc == 0 ? 1 : rc;
        }
        if (rc < 0) {
            return rc;
        }
        if (rc == 1) {
            break;
        }
        if (rebuild) {
            seg_note_batch(s, &h, pos, lim);
        } else if (pos >= s->index_due_pos) {
            out->index_gap = true; /* an entry was due here and is missing */
        }
        if (out->timestamp_first_batch_ms == INT64_MIN) {
            out->timestamp_first_batch_ms = h.timestamp_max_ms;
        }
        if (h.timestamp_max_ms > out->timestamp_max_ms) {
            out->timestamp_max_ms = h.timestamp_max_ms;
        }
        pos += batch_bytes(&h);
        out->bytes_valid = pos;
        out->offset_next = batch_offset_last(&h) + 1;
    }
    return 0;
}

/* ---- damage ---- */

/* Reads and checks the whole batch at pos, within end, into buf: 0 with *h,
 * 1 when there is no whole good batch there, or -errno. */
static int good_batch_at(int fd, uint64_t pos, uint64_t end, uint32_t batch_bytes_max, uint8_t *buf,
                         struct batch_header *h)
{
    if (pos > end || end - pos < BATCH_HEADER_BYTES) {
        return 1;
    }
    int rc = file_pread_all(fd, buf, BATCH_HEADER_BYTES, pos);
    if (rc == 0 && (batch_header_decode(buf, BATCH_HEADER_BYTES, batch_bytes_max, h) != 0 ||
                    batch_bytes(h) > end - pos)) {
        return 1;
    }
    rc = rc == 0 ? file_pread_all(fd, buf, batch_bytes(h), pos) : rc;
    if (rc != 0) {
        return rc == -NG_ETRUNCATED ? 1 : rc; /* the file shrank meanwhile */
    }
    return batch_validate(buf, batch_bytes(h), batch_bytes_max, h) == 0 ? 0 : 1;
}

/* Whether good batches resume at pos (see seg_resync): a good batch based
 * exactly at exact (>= 0), or else above after, ending below limit, and
 * then followed by end, a good batch continuing it, or a torn one
 * continuing it to end. Returns 1 with *base_out, 0, or -errno. */
static int resumes_at(int fd, uint64_t pos, uint64_t end, int64_t exact, int64_t after,
                      int64_t limit, uint32_t batch_bytes_max, uint8_t *buf, int64_t *base_out)
{
    struct batch_header h;
    int rc = good_batch_at(fd, pos, end, batch_bytes_max, buf, &h);
    if (rc != 0) {
        return rc < 0 ? rc : 0;
    }
    if ((exact >= 0 ? h.offset_base != exact : h.offset_base <= after) ||
        batch_offset_last(&h) >= limit) {
        return 0;
    }
    *base_out = h.offset_base;
    uint64_t next = pos + batch_bytes(&h);
    if (exact >= 0 || next == end) {
        return 1;
    }
    struct batch_header n;
    rc = good_batch_at(fd, next, end, batch_bytes_max, buf, &n);
    if (rc < 0) {
        return rc;
    }
    if (rc == 1) { /* torn at the end: a header continuing it that runs past end */
        if (end - next < BATCH_HEADER_BYTES) {
            return 1;
        }
        rc = file_pread_all(fd, buf, BATCH_HEADER_BYTES, next);
        if (rc != 0 || batch_header_decode(buf, BATCH_HEADER_BYTES, batch_bytes_max, &n) != 0) {
            return rc < 0 && rc != -NG_ETRUNCATED ? rc : 0;
        }
        return batch_bytes(&n) > end - next && n.offset_base == batch_offset_last(&h) + 1;
    }
    return n.offset_base == batch_offset_last(&h) + 1;
}

int seg_resync(int fd, uint64_t pos, int64_t expect_offset, uint64_t end, int64_t offset_limit,
               uint32_t batch_bytes_max, uint8_t *buf, size_t buf_bytes, uint64_t *pos_out,
               int64_t *offset_out)
{
    ASSERT(buf_bytes >= SEG_RESYNC_BUF_BYTES(batch_bytes_max) && pos <= end);
    ASSERT(expect_offset >= 0);
    *pos_out = end;
    *offset_out = -1;
    uint8_t *batch = buf + SEG_RESYNC_WINDOW_BYTES + BATCH_HEADER_BYTES;
    int64_t base;
    struct batch_header h;
    /* Only the records hit: the bad header still says where the next is. */
    if (end - pos >= BATCH_HEADER_BYTES && file_pread_all(fd, buf, BATCH_HEADER_BYTES, pos) == 0 &&
        batch_header_decode(buf, BATCH_HEADER_BYTES, batch_bytes_max, &h) == 0 &&
        batch_bytes(&h) < end - pos && expect_offset <= INT64_MAX - 1 - h.last_offset_delta) {
        int rc = resumes_at(fd, pos + batch_bytes(&h), end, expect_offset + h.last_offset_delta + 1,
                            expect_offset, offset_limit, batch_bytes_max, batch, &base);
        if (rc != 0) {
            *pos_out = rc == 1 ? pos + batch_bytes(&h) : end;
            *offset_out = rc == 1 ? base : -1;
            return rc < 0 ? rc : 0;
        }
    }
    for (uint64_t at = pos + 1; at < end && end - at >= BATCH_HEADER_BYTES;
         at += SEG_RESYNC_WINDOW_BYTES) {
        uint64_t left = end - at;
        size_t len = left < SEG_RESYNC_WINDOW_BYTES + BATCH_HEADER_BYTES
                         ? (size_t)left
                         : SEG_RESYNC_WINDOW_BYTES + BATCH_HEADER_BYTES;
        int rc = file_pread_all(fd, buf, len, at);
        if (rc != 0) {
            return rc == -NG_ETRUNCATED ? 0 : rc; /* the file shrank meanwhile */
        }
        for (size_t i = 0; i < SEG_RESYNC_WINDOW_BYTES && i + BATCH_HEADER_BYTES <= len; i++) {
            /* Cheap header checks in memory first. */
            if (batch_header_decode(buf + i, BATCH_HEADER_BYTES, batch_bytes_max, &h) != 0 ||
                h.offset_base <= expect_offset || batch_bytes(&h) > left - i) {
                continue;
            }
            rc = resumes_at(fd, at + i, end, -1, expect_offset, offset_limit, batch_bytes_max,
                            batch, &base);
            if (rc < 0) {
                return rc;
            }
            if (rc == 1) {
                *pos_out = at + i;
                *offset_out = base;
                return 0;
            }
        }
    }
    return 0;
}

/* A plain sorted array, searched linearly: damage is rare, a segment holds
 * a handful of ranges at most, and none costs a walk more than a compare. */
int seg_add_damage(struct seg *s, const struct seg_damage *d)
{
    ASSERT(d->pos <= d->pos_end && d->offset < d->offset_end);
    ASSERT(seg_damage_at(s, d->pos) == NULL && seg_damage_of_offset(s, d->offset) == NULL);
    struct seg_damage *grown = realloc(s->damage, (s->damage_count + 1) * sizeof(*grown));
    if (grown == NULL) {
        return -ENOMEM;
    }
    s->damage = grown;
    uint32_t i = s->damage_count;
    while (i > 0 && grown[i - 1].pos > d->pos) {
        grown[i] = grown[i - 1];
        i--;
    }
    grown[i] = *d;
    s->damage_count++;
    return 0;
}

const struct seg_damage *seg_damage_at(const struct seg *s, uint64_t pos)
{
    for (uint32_t i = 0; i < s->damage_count; i++) {
        if (pos >= s->damage[i].pos && pos < s->damage[i].pos_end) {
            return &s->damage[i];
        }
    }
    return NULL;
}

const struct seg_damage *seg_damage_of_offset(const struct seg *s, int64_t offset)
{
    for (uint32_t i = 0; i < s->damage_count; i++) {
        if (offset >= s->damage[i].offset && offset < s->damage[i].offset_end) {
            return &s->damage[i];
        }
    }
    return NULL;
}

void seg_note_batch(struct seg *s, const struct batch_header *h, uint64_t pos,
                    const struct seg_limits *lim)
{
    ASSERT(pos == s->bytes);
    ASSERT(h->offset_base == s->offset_next);
    ASSERT(pos + batch_bytes(h) <= UINT32_MAX); /* positions are u32 */
    if (h->timestamp_max_ms > s->timestamp_max_ms) {
        s->timestamp_max_ms = h->timestamp_max_ms;
    }
    if (pos >= s->index_due_pos) {
        uint32_t rel = (uint32_t)(h->offset_base - s->offset_base);
        /* A full index only makes lookups scan further; never fatal. */
        if (idx_add_offset(&s->index, rel, (uint32_t)pos) == 0) {
            uint32_t n = s->timeindex.count;
            if (n == 0 || s->timestamp_max_ms > idx_time_ts(&s->timeindex, n - 1)) {
                /* Same capacity, never more entries than the offset index. */
                int rc = idx_add_time(&s->timeindex, s->timestamp_max_ms, rel);
                ASSERT(rc == 0);
            }
        }
        s->index_due_pos = pos + lim->index_interval_bytes;
    }
    s->bytes = pos + batch_bytes(h);
    s->offset_next = batch_offset_last(h) + 1;
}

/* Reads a whole index file into x and checks it. Returns 0, -NG_ECORRUPT
 * (missing entries are fine: an empty or absent file loads as empty and the
 * caller's walk finds it short), or -errno. */
static int index_load(struct idx *x, int fd, uint64_t log_bytes, uint64_t rel_limit, uint8_t *buf,
                      size_t buf_bytes)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        return -errno;
    }
    size_t len = (size_t)st.st_size;
    if ((uint64_t)st.st_size > (uint64_t)x->cap * x->entry_bytes || len > buf_bytes) {
        return -NG_ECORRUPT;
    }
    int rc = file_pread_all(fd, buf, len, 0);
    if (rc != 0) {
        return rc == -NG_ETRUNCATED ? -NG_ECORRUPT : rc; /* shrank meanwhile */
    }
    return idx_load(x, buf, len, log_bytes, rel_limit);
}

/* Replaces an index file with the in-memory entries, through r. */
static int index_rewrite(struct idx *x, int fd, struct ring *r, bool sync)
{
    if (ftruncate(fd, 0) != 0) {
        return -errno;
    }
    x->count_flushed = 0;
    const uint8_t *buf;
    size_t len;
    uint64_t at;
    int rc = 0;
    if (idx_take_unflushed(x, &buf, &len, &at)) {
        rc = ring_write_all(r, RING_INDEX_WRITE, fd, buf, len, at);
    }
    if (rc == 0 && sync) {
        rc = ring_fsync(r, RING_INDEX_SYNC, fd, true);
    }
    return rc;
}

static int file_bytes(int fd, uint64_t *out)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        return -errno;
    }
    *out = (uint64_t)st.st_size;
    return 0;
}

/* Opens the three files of an existing segment (index files created when
 * missing) and allocates indexes for its size. */
static int open_existing(struct seg *s, int dirfd, int64_t base, int log_flags,
                         const struct seg_limits *lim)
{
    seg_reset(s, base);
    int rc = s->fd_log = open_at(dirfd, base, "log", log_flags);
    if (rc >= 0) {
        rc = s->fd_index = open_at(dirfd, base, "index", O_RDWR | O_CREAT);
    }
    if (rc >= 0) {
        rc = s->fd_time = open_at(dirfd, base, "timeindex", O_RDWR | O_CREAT);
    }
    if (rc >= 0) {
        rc = file_bytes(s->fd_log, &s->bytes);
    }
    if (rc >= 0) {
        rc = idx_alloc(s, s->bytes, lim);
    }
    return rc < 0 ? rc : 0;
}

/* Loads both indexes and checks them against the log: a walk from the last
 * offset entry must reach the end of the file at offset_end, with no entry
 * missing on the way. Returns 1 when they hold, 0 when they must be rebuilt,
 * or -errno. */
static int indexes_hold(struct seg *s, int64_t offset_end, const struct seg_limits *lim,
                        uint8_t *scratch, size_t scratch_bytes)
{
    uint64_t rel_limit = (uint64_t)(offset_end - s->offset_base);
    int rc = index_load(&s->index, s->fd_index, s->bytes, rel_limit, scratch, scratch_bytes);
    if (rc == 0) {
        rc = index_load(&s->timeindex, s->fd_time, s->bytes, rel_limit, scratch, scratch_bytes);
    }
    if (rc == -NG_ECORRUPT) {
        return 0;
    }
    if (rc < 0) {
        return rc;
    }
    uint32_t rel = 0;
    uint32_t pos = 0;
    s->index_due_pos = 0;
    if (s->index.count > 0) {
        rel = idx_offset_rel(&s->index, s->index.count - 1);
        pos = idx_offset_pos(&s->index, s->index.count - 1);
        s->index_due_pos = (uint64_t)pos + lim->index_interval_bytes;
    }
    struct seg_scan w;
    rc = seg_scan(s, pos, s->offset_base + rel, s->bytes, offset_end, false, false, lim, scratch,
                  scratch_bytes, &w);
    if (rc < 0) {
        return rc;
    }
    if (w.stop != 0 || w.index_gap || w.offset_next != offset_end) {
        return 0;
    }
    s->offset_next = offset_end;
    s->timestamp_max_ms = w.timestamp_max_ms;
    if (s->timeindex.count > 0) {
        int64_t ts = idx_time_ts(&s->timeindex, s->timeindex.count - 1);
        s->timestamp_max_ms = ts > s->timestamp_max_ms ? ts : s->timestamp_max_ms;
    }
    return 1;
}

/* A sealed segment whose good batches end before offset_end: the rest of
 * its bytes and offsets are one damaged range (w: the rebuilding walk). */
static int seal_damaged_end(struct seg *s, const struct seg_scan *w, uint64_t size,
                            int64_t offset_end)
{
    if (w->offset_next >= offset_end) {
        return 0; /* whole (or offsets past the successor's base: it wins) */
    }
    struct seg_damage d = {.offset = w->offset_next,
                           .offset_end = offset_end,
                           .pos = w->bytes_valid,
                           .pos_end = size,
                           .why = w->stop != 0 ? w->stop : -NG_EDISCONTINUITY};
    int rc = seg_add_damage(s, &d);
    if (rc == 0) {
        s->bytes = size;
        s->offset_next = offset_end;
    }
    return rc;
}

int seg_open_sealed(struct seg *s, int dirfd, int64_t offset_base, int64_t offset_end,
                    const struct seg_limits *lim, struct ring *r, uint8_t *scratch,
                    size_t scratch_bytes)
{
    int rc = open_existing(s, dirfd, offset_base, O_RDONLY, lim);
    if (rc == 0) {
        rc = offset_end > offset_base ? indexes_hold(s, offset_end, lim, scratch, scratch_bytes)
                                      : -NG_EDISCONTINUITY;
        if (rc == -NG_EDISCONTINUITY) { /* successor does not start after us */
            rc = 0;
        }
    }
    if (rc == 0) { /* rebuild from the log itself */
        uint64_t size = s->bytes;
        struct seg_scan w;
        rc = seg_scan(s, 0, offset_base, size, offset_end, false, true, lim, scratch, scratch_bytes,
                      &w);
        if (rc == 0) {
            rc = seal_damaged_end(s, &w, size, offset_end);
        }
        if (rc == 0) {
            rc = index_rewrite(&s->index, s->fd_index, r, true);
        }
        if (rc == 0) {
            rc = index_rewrite(&s->timeindex, s->fd_time, r, true);
        }
        if (rc == 0) {
            log_warn("segment %020" PRId64 ".log: rebuilt its indexes (%u entries)", offset_base,
                     s->index.count);
        }
    }
    if (rc < 0) {
        seg_close(s);
        return rc;
    }
    s->bytes_readable = s->bytes;
    /* Sealed: the index files are never written again. */
    close(s->fd_index);
    close(s->fd_time);
    s->fd_index = -1;
    s->fd_time = -1;
    return 0;
}

int seg_open_active(struct seg *s, int dirfd, int64_t offset_base, const struct seg_limits *lim,
                    struct ring *r, uint8_t *scratch, size_t scratch_bytes, int64_t now_ms,
                    struct seg_scan *cut)
{
    int rc = open_existing(s, dirfd, offset_base, O_RDWR, lim);
    uint64_t size = s->bytes;
    if (rc == 0) {
        rc = seg_scan(s, 0, offset_base, size, INT64_MAX, true, true, lim, scratch, scratch_bytes,
                      cut);
    }
    if (rc == 0 && cut->stop != 0) {
        /* A torn tail: bad bytes with no good batch after them. Only
         * unacknowledged data can be there: every acknowledged batch was
         * fdatasync'd whole, and appends complete in order. */
        log_warn("segment %020" PRId64 ".log: cut %" PRIu64 " bytes at position %" PRIu64
                 " (offset %" PRId64 "): %s",
                 offset_base, size - cut->bytes_valid, cut->bytes_valid, cut->offset_next,
                 err_str(cut->stop));
        rc = ftruncate(s->fd_log, (off_t)cut->bytes_valid) != 0 ? -errno : 0;
        if (rc == 0) {
            rc = ring_fsync(r, RING_LOG_SYNC, s->fd_log, true);
        }
    }
    if (rc == 0) {
        rc = index_rewrite(&s->index, s->fd_index, r, false);
    }
    if (rc == 0) {
        rc = index_rewrite(&s->timeindex, s->fd_time, r, false);
    }
    if (rc < 0) {
        seg_close(s);
        return rc;
    }
    s->bytes_readable = s->bytes;
    s->verified_pos = UINT64_MAX; /* the scan checked every checksum kept */
    int64_t first = cut->timestamp_first_batch_ms;
    s->created_ms = first != INT64_MIN && first <= now_ms ? first : now_ms;
    return 0;
}

int seg_unseal(struct seg *s, int dirfd)
{
    if (s->fd_index >= 0) {
        return 0;
    }
    int fds[3] = {-1, -1, -1};
    int rc = fds[0] = open_at(dirfd, s->offset_base, "log", O_RDWR);
    if (rc >= 0) {
        rc = fds[1] = open_at(dirfd, s->offset_base, "index", O_RDWR | O_CREAT);
    }
    if (rc >= 0) {
        rc = fds[2] = open_at(dirfd, s->offset_base, "timeindex", O_RDWR | O_CREAT);
    }
    if (rc < 0) {
        for (size_t i = 0; i < ARRAY_LEN(fds); i++) {
            if (fds[i] >= 0) {
                close(fds[i]);
            }
        }
        return rc;
    }
    close(s->fd_log);
    s->fd_log = fds[0];
    s->fd_index = fds[1];
    s->fd_time = fds[2];
    return 0;
}

/* Drops index entries at or past the cut, in memory and in the file. */
static int index_cut(struct idx *x, int fd, uint64_t pos, uint32_t rel)
{
    bool offsets = x->entry_bytes == IDX_OFFSET_ENTRY_BYTES;
    while (x->count > 0 && (offsets ? idx_offset_pos(x, x->count - 1) >= pos
                                    : idx_time_rel(x, x->count - 1) >= rel)) {
        x->count--;
    }
    if (x->count_flushed <= x->count) {
        return 0;
    }
    x->count_flushed = x->count;
    return ftruncate(fd, (off_t)x->count * x->entry_bytes) != 0 ? -errno : 0;
}

/* The newest timestamp of a segment whose indexes are cut at its end: the
 * last time entry's, or a later batch's, walked from the last offset entry
 * (a walk that stops at bad bytes gives what it saw: a hint for retention). */
static int timestamp_max_again(struct seg *s, const struct seg_limits *lim, uint8_t *buf,
                               size_t buf_bytes)
{
    int64_t ts = INT64_MIN;
    if (s->timeindex.count > 0) {
        ts = idx_time_ts(&s->timeindex, s->timeindex.count - 1);
    }
    uint64_t pos = 0;
    int64_t expect = s->offset_base;
    if (s->index.count > 0) {
        pos = idx_offset_pos(&s->index, s->index.count - 1);
        expect = s->offset_base + idx_offset_rel(&s->index, s->index.count - 1);
    }
    struct seg_scan w;
    int rc =
        seg_scan(s, pos, expect, s->bytes, s->offset_next, false, false, lim, buf, buf_bytes, &w);
    if (rc != 0) {
        return rc;
    }
    s->timestamp_max_ms = w.timestamp_max_ms > ts ? w.timestamp_max_ms : ts;
    return 0;
}

int seg_cut(struct seg *s, uint64_t pos, int64_t offset_end, const struct seg_limits *lim,
            uint8_t *buf, size_t buf_bytes)
{
    ASSERT(s->fd_index >= 0 && s->fd_time >= 0 && s->ops_inflight == 0);
    ASSERT(pos <= s->bytes && offset_end >= s->offset_base && offset_end <= s->offset_next);
    ASSERT((pos == 0) == (offset_end == s->offset_base));
    if (ftruncate(s->fd_log, (off_t)pos) != 0) {
        return -errno;
    }
    s->bytes = s->bytes_readable = pos;
    s->offset_next = offset_end;
    s->writeback_pos = s->writeback_pos < pos ? s->writeback_pos : pos;
    if (s->verified_pos != UINT64_MAX && s->verified_pos > pos) {
        s->verified_pos = pos; /* a batch boundary, as the mark must be */
    }
    while (s->damage_count > 0 && s->damage[s->damage_count - 1].pos >= pos) {
        s->damage_count--; /* a cut lands on a batch or a damaged range's start */
    }
    ASSERT(s->damage_count == 0 || s->damage[s->damage_count - 1].pos_end <= pos);
    uint32_t rel = (uint32_t)(offset_end - s->offset_base);
    int rc = index_cut(&s->index, s->fd_index, pos, rel);
    int rc_time = index_cut(&s->timeindex, s->fd_time, pos, rel);
    rc = rc != 0 ? rc : rc_time;
    s->index_due_pos =
        s->index.count > 0
            ? (uint64_t)idx_offset_pos(&s->index, s->index.count - 1) + lim->index_interval_bytes
            : 0;
    int rc_ts = timestamp_max_again(s, lim, buf, buf_bytes);
    return rc != 0 ? rc : rc_ts;
}

int seg_locate(const struct seg *s, int64_t offset, uint32_t batch_bytes_max, uint8_t *buf,
               size_t buf_bytes, uint64_t *pos_out, struct batch_header *h_out)
{
    ASSERT(buf_bytes >= BATCH_HEADER_BYTES);
    if (offset < s->offset_base || (uint64_t)(offset - s->offset_base) > UINT32_MAX) {
        return -NG_EOFFSET_RANGE;
    }
    uint32_t rel = 0;
    uint32_t pos = 0;
    bool from_index = idx_find_offset(&s->index, (uint32_t)(offset - s->offset_base), &rel, &pos);
    struct win w = {.fd = s->fd_log, .buf = buf, .cap = header_window(buf_bytes)};
    uint64_t at = from_index ? pos : 0;
    int64_t expect = s->offset_base + rel;
    while (at < s->bytes_readable) {
        const struct seg_damage *d = seg_damage_at(s, at);
        if (d != NULL && offset >= d->offset_end) { /* step over it */
            at = d->pos_end;
            expect = d->offset_end;
            continue;
        }
        if (d != NULL) {
            *pos_out = d->pos;
            if (h_out != NULL) {
                h_out->offset_base = d->offset;
            }
            return -NG_ECORRUPT;
        }
        struct batch_header h;
        int stop;
        int rc = read_batch(&w, at, s->bytes_readable, expect, false, batch_bytes_max, &h, &stop);
        if (rc < 0) {
            return rc;
        }
        if (rc == 1 && from_index && at == pos) {
            /* The entry disagrees with the log: walk from the start instead. */
            from_index = false;
            at = 0;
            expect = s->offset_base;
            continue;
        }
        if (rc == 1) {
            *pos_out = at;
            if (h_out != NULL) {
                h_out->offset_base = expect;
            }
            return -NG_ECORRUPT;
        }
        if (offset <= batch_offset_last(&h)) {
            *pos_out = at;
            if (h_out != NULL) {
                *h_out = h;
            }
            return 0;
        }
        at += batch_bytes(&h);
        expect = batch_offset_last(&h) + 1;
    }
    return -NG_EOFFSET_RANGE;
}

/* The last offset index entry whose position is in [pos, limit], or false. */
static bool index_entry_at_or_below(const struct idx *x, uint64_t pos, uint64_t limit,
                                    uint32_t *rel_out, uint32_t *pos_out)
{
    uint32_t lo = 0;
    uint32_t hi = x->count;
    while (lo < hi) { /* first entry past limit */
        uint32_t mid = lo + (hi - lo) / 2;
        if (idx_offset_pos(x, mid) <= limit) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo == 0 || idx_offset_pos(x, lo - 1) < pos) {
        return false;
    }
    *rel_out = idx_offset_rel(x, lo - 1);
    *pos_out = idx_offset_pos(x, lo - 1);
    return true;
}

int seg_offset_at(const struct seg *s, uint64_t pos, uint32_t batch_bytes_max, uint8_t *buf,
                  size_t buf_bytes, int64_t *offset_out)
{
    ASSERT(pos < s->bytes_readable && buf_bytes >= BATCH_HEADER_BYTES);
    struct win w = {.fd = s->fd_log, .buf = buf, .cap = BATCH_HEADER_BYTES};
    struct batch_header h;
    int stop;
    int rc = read_batch(&w, pos, s->bytes_readable, -1, false, batch_bytes_max, &h, &stop);
    if (rc < 0) {
        return rc;
    }
    if (rc == 1) {
        return -NG_ECORRUPT;
    }
    *offset_out = h.offset_base;
    return 0;
}

int seg_batches_end(const struct seg *s, uint64_t pos, uint64_t limit, uint32_t batch_bytes_max,
                    uint8_t *buf, size_t buf_bytes, uint64_t *end_out, int64_t *offset_out)
{
    ASSERT(pos < limit && limit <= s->bytes_readable && buf_bytes >= BATCH_HEADER_BYTES);
    ASSERT(s->damage_count == 0); /* file ranges are never planned over damage */
    *offset_out = -1;
    if (limit == s->bytes_readable) { /* the readable end is a batch boundary */
        *end_out = limit;
        return 0;
    }
    uint64_t at = pos;
    int64_t expect = -1; /* the caller knows the first batch; not its base here */
    uint32_t rel;
    uint32_t entry_pos;
    if (index_entry_at_or_below(&s->index, pos, limit, &rel, &entry_pos)) {
        at = entry_pos;
        expect = s->offset_base + rel;
    }
    /* Headers only: a window of one header, so a large batch is not read
     * just to reach the next header. */
    struct win w = {.fd = s->fd_log, .buf = buf, .cap = BATCH_HEADER_BYTES};
    while (at < limit) {
        struct batch_header h;
        int stop;
        int rc = read_batch(&w, at, s->bytes_readable, expect, false, batch_bytes_max, &h, &stop);
        if (rc < 0) {
            return rc;
        }
        if (rc == 1) {
            return -NG_ECORRUPT;
        }
        if (batch_bytes(&h) > limit - at) {
            expect = h.offset_base; /* the batch that does not fit starts at */
            break;
        }
        at += batch_bytes(&h);
        expect = batch_offset_last(&h) + 1;
    }
    *end_out = at;
    *offset_out = expect;
    return 0;
}

void seg_close(struct seg *s)
{
    ASSERT(s->ops_inflight == 0);
    int fds[] = {s->fd_log, s->fd_index, s->fd_time};
    for (size_t i = 0; i < ARRAY_LEN(fds); i++) {
        if (fds[i] >= 0) {
            close(fds[i]);
        }
    }
    s->fd_log = s->fd_index = s->fd_time = -1;
    idx_fini(&s->index);
    idx_fini(&s->timeindex);
    free(s->damage);
    s->damage = NULL;
    s->damage_count = 0;
}

int seg_remove(int dirfd, int64_t offset_base)
{
    static const char *const exts[] = {"index", "timeindex", "log"};
    for (size_t i = 0; i < ARRAY_LEN(exts); i++) {
        char name[SEG_NAME_BYTES];
        seg_name(name, offset_base, exts[i]);
        ring_note_dirent(dirfd, name, RING_DIRENT_UNLINK); /* power-loss tests (base/ring.h) */
        if (unlinkat(dirfd, name, 0) != 0 && errno != ENOENT) {
            return -errno;
        }
    }
    return 0;
}

int seg_find_time(const struct seg *s, int64_t ts_ms, uint32_t batch_bytes_max, uint8_t *buf,
                  size_t buf_bytes, uint64_t *pos_out)
{
    if (s->timestamp_max_ms < ts_ms) {
        return -NG_ENOTFOUND;
    }
    /* Batches up to the hint's have max timestamps below ts_ms. */
    uint32_t rel = 0;
    uint64_t at = 0;
    int64_t expect = s->offset_base;
    if (idx_find_time_before(&s->timeindex, ts_ms, &rel)) {
        int rc = seg_locate(s, s->offset_base + rel, batch_bytes_max, buf, buf_bytes, &at, NULL);
        if (rc != 0) {
            return rc == -NG_EOFFSET_RANGE ? -NG_ENOTFOUND : rc;
        }
        expect = s->offset_base + rel;
    }
    struct win w = {.fd = s->fd_log, .buf = buf, .cap = header_window(buf_bytes)};
    while (at < s->bytes_readable) {
        const struct seg_damage *d = seg_damage_at(s, at);
        if (d != NULL) {
            at = d->pos_end;
            expect = d->offset_end;
            continue;
        }
        struct batch_header h;
        int stop;
        int rc = read_batch(&w, at, s->bytes_readable, expect, false, batch_bytes_max, &h, &stop);
        if (rc < 0) {
            return rc;
        }
        if (rc == 1) {
            *pos_out = at;
            return -NG_ECORRUPT;
        }
        if (h.timestamp_max_ms >= ts_ms) {
            *pos_out = at;
            return 0;
        }
        at += batch_bytes(&h);
        expect = batch_offset_last(&h) + 1;
    }
    return -NG_ENOTFOUND;
}

int seg_for_each_batch(const struct seg *s, uint64_t pos, int64_t expect_offset,
                       uint32_t batch_bytes_max, uint8_t *buf, size_t buf_bytes,
                       int (*fn)(void *arg, const struct batch_header *h), void *arg,
                       uint64_t *pos_out, int64_t *offset_out)
{
    struct win w = {.fd = s->fd_log, .buf = buf, .cap = header_window(buf_bytes)};
    while (pos < s->bytes_readable) {
        const struct seg_damage *d = seg_damage_at(s, pos);
        if (d != NULL) {
            pos = d->pos_end;
            expect_offset = d->offset_end;
            continue;
        }
        struct batch_header h;
        int stop;
        int rc = read_batch(&w, pos, s->bytes_readable, expect_offset, false, batch_bytes_max, &h,
                            &stop);
        if (rc < 0) {
            return rc;
        }
        if (rc == 1) {
            *pos_out = pos;
            *offset_out = expect_offset;
            return -NG_ECORRUPT;
        }
        rc = fn(arg, &h);
        if (rc != 0) {
            return rc;
        }
        pos += batch_bytes(&h);
        expect_offset = batch_offset_last(&h) + 1;
    }
    return 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a;
    int64_t y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int seg_list(int dirfd, int64_t **bases_out, uint32_t *count_out)
{
    int fd = dup(dirfd);
    DIR *d = fd < 0 ? NULL : fdopendir(fd);
    if (d == NULL) {
        int rc = -errno;
        if (fd >= 0) {
            close(fd);
        }
        return rc;
    }
    rewinddir(d);
    int64_t *bases = NULL;
    uint32_t count = 0;
    uint32_t cap = 0;
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        int64_t base;
        if (!seg_parse_log_name(e->d_name, &base)) {
            continue;
        }
        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            int64_t *grown = realloc(bases, cap * sizeof(*bases));
            if (grown == NULL) {
                rc = -ENOMEM;
                break;
            }
            bases = grown;
        }
        bases[count++] = base;
    }
    closedir(d);
    if (rc != 0) {
        free(bases);
        return rc;
    }
    if (count > 1) {
        qsort(bases, count, sizeof(*bases), cmp_i64);
    }
    *bases_out = bases;
    *count_out = count;
    return 0;
}
