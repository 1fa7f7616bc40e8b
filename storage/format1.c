/*
 * storage/format1.c — format-1 batches and the upgrade of their segments to
 * format 2. The why and the crash argument: storage/format1.h.
 */
#include "storage/format1.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "base/file.h"
#include "base/log.h"
#include "storage/batch.h"
#include "storage/segment.h"

static_assert(FORMAT1_OFF_CHECKSUM == BATCH_OFF_LEADER_EPOCH &&
                  FORMAT1_OFF_VERSION + 1 == BATCH_OFF_ATTRIBUTES,
              "the formats differ in bytes 12-20 only");

/* Format 1's attributes: codec bits 0-2 (0 none, 1 zstd), bit 3 log append
 * time, the rest 0. Returns format 2's, or -1 for none it allowed. */
static int attributes_upgrade(uint16_t a)
{
    unsigned codec = a & BATCH_ATTR_CODEC_MASK;
    if ((a & ~BATCH_ATTR_KNOWN_MASK) != 0 || codec > FORMAT1_CODEC_ZSTD) {
        return -1;
    }
    unsigned codec2 = codec == FORMAT1_CODEC_ZSTD ? BATCH_CODEC_ZSTD : BATCH_CODEC_NONE;
    return (int)((a & ~BATCH_ATTR_CODEC_MASK) | codec2);
}

static uint16_t attributes_downgrade(uint16_t a)
{
    unsigned codec = a & BATCH_ATTR_CODEC_MASK;
    ASSERT(codec == BATCH_CODEC_NONE || codec == BATCH_CODEC_ZSTD);
    unsigned codec1 = codec == BATCH_CODEC_ZSTD ? FORMAT1_CODEC_ZSTD : 0;
    return (uint16_t)((a & ~BATCH_ATTR_CODEC_MASK) | codec1);
}

/* The header's fields are checked by format 2's own rules on a copy of the
 * header with format 2's bytes 12-20: one definition of them. */
int format1_batch_check(const uint8_t *buf, size_t len, size_t batch_bytes_max, size_t *bytes_out)
{
    ASSERT(buf != NULL || len == 0);
    if (len < BATCH_HEADER_BYTES) {
        return -NG_ETRUNCATED;
    }
    if (buf[FORMAT1_OFF_VERSION] != FORMAT1_VERSION) {
        return -NG_EBADVERSION;
    }
    int attributes = attributes_upgrade(get_be16(buf + BATCH_OFF_ATTRIBUTES));
    if (attributes < 0) {
        return -NG_EBADCODEC;
    }
    uint8_t h2[BATCH_HEADER_BYTES];
    memcpy(h2, buf, sizeof(h2));
    batch_set_leader_epoch(h2, 0);
    h2[BATCH_OFF_MAGIC] = BATCH_MAGIC;
    put_be16(h2 + BATCH_OFF_ATTRIBUTES, (uint16_t)attributes);
    struct batch_header h;
    int rc = batch_header_decode(h2, sizeof(h2), batch_bytes_max, &h);
    if (rc != 0) {
        return rc;
    }
    if (batch_bytes(&h) > len) {
        return -NG_ETRUNCATED;
    }
    uint64_t sum = XXH3_64bits(buf + FORMAT1_OFF_VERSION, batch_bytes(&h) - FORMAT1_OFF_VERSION);
    if (sum != get_be64(buf + FORMAT1_OFF_CHECKSUM)) {
        return -NG_ECHECKSUM;
    }
    *bytes_out = batch_bytes(&h);
    return 0;
}

void format1_batch_upgrade(uint8_t *batch, size_t bytes)
{
    int attributes = attributes_upgrade(get_be16(batch + BATCH_OFF_ATTRIBUTES));
    ASSERT(attributes >= 0);
    put_be16(batch + BATCH_OFF_ATTRIBUTES, (uint16_t)attributes);
    batch_set_leader_epoch(batch, 0);
    batch[BATCH_OFF_MAGIC] = BATCH_MAGIC;
    batch_seal(batch, bytes);
}

void format1_batch_downgrade(uint8_t *batch, size_t bytes)
{
    put_be16(batch + BATCH_OFF_ATTRIBUTES,
             attributes_downgrade(get_be16(batch + BATCH_OFF_ATTRIBUTES)));
    batch[FORMAT1_OFF_VERSION] = FORMAT1_VERSION;
    put_be64(batch + FORMAT1_OFF_CHECKSUM,
             XXH3_64bits(batch + FORMAT1_OFF_VERSION, bytes - FORMAT1_OFF_VERSION));
}

/* ---- segments ---- */

enum seg_format { SEG_UNKNOWN, SEG_FORMAT1, SEG_FORMAT2 };

/* A pass over one segment file through a window of the file. */
struct walk {
    int fd;
    uint64_t size;
    uint8_t *win;
    size_t win_cap; /* >= batch_bytes_max: a whole batch always fits */
    size_t batch_bytes_max;
    int out_fd;                /* -1: only find the format of the first valid batch */
    uint64_t upgraded;         /* batches rewritten */
    struct progress *progress; /* an upgrade's, or NULL */
};

/* Adds bytes rewritten and segments upgraded to w's progress. */
static void walk_progress(const struct walk *w, uint64_t bytes, uint64_t segments)
{
    if (w->progress != NULL) {
        progress_update(w->progress, w->progress->bytes + bytes, w->progress->count + segments);
    }
}

/* Erases w's progress line before a log line or at the end. */
static void walk_progress_clear(const struct walk *w)
{
    if (w->progress != NULL) {
        progress_clear(w->progress);
    }
}

/* The format of a whole valid batch at p[0..n), if any. */
static enum seg_format batch_format(const uint8_t *p, size_t n, size_t max, size_t *bytes)
{
    struct batch_header h;
    if (batch_validate(p, n, max, &h) == 0) {
        *bytes = batch_bytes(&h);
        return SEG_FORMAT2;
    }
    return format1_batch_check(p, n, max, bytes) == 0 ? SEG_FORMAT1 : SEG_UNKNOWN;
}

/* Bytes of win[k..n) that can be judged now: false when the batch that may
 * start at k runs past the window and the file has more (refill first). */
static bool judgeable(const struct walk *w, const uint8_t *p, size_t left, bool file_ends)
{
    if (file_ends) {
        return true;
    }
    if (left < BATCH_HEADER_BYTES) {
        return false;
    }
    uint32_t length = get_be32(p + BATCH_OFF_LENGTH);
    uint64_t bytes = (uint64_t)BATCH_PREFIX_BYTES + length;
    return bytes > w->batch_bytes_max || bytes <= left;
}

static int write_all(int fd, const uint8_t *p, size_t n, uint64_t off)
{
    while (n > 0) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return w < 0 ? -errno : -EIO;
        }
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

/* Walks the file from its start. Without an out_fd, stops at the first
 * valid batch and gives its format; with one, writes every byte to out_fd
 * at its own position, format-1 batches upgraded, and gives SEG_FORMAT1. */
static int walk_file(struct walk *w, enum seg_format *found)
{
    *found = SEG_UNKNOWN;
    uint64_t pos = 0;
    while (pos < w->size) {
        size_t n = (size_t)(w->size - pos < w->win_cap ? w->size - pos : w->win_cap);
        int rc = file_pread_all(w->fd, w->win, n, pos);
        if (rc != 0) {
            return rc;
        }
        bool file_ends = pos + n == w->size;
        size_t k = 0;
        while (k < n && (k == 0 || judgeable(w, w->win + k, n - k, file_ends))) {
            size_t bytes = 1; /* a damaged byte: kept as it is */
            enum seg_format f = batch_format(w->win + k, n - k, w->batch_bytes_max, &bytes);
            if (f != SEG_UNKNOWN && w->out_fd < 0) {
                *found = f;
                return 0;
            }
            if (f == SEG_FORMAT1) {
                format1_batch_upgrade(w->win + k, bytes);
                w->upgraded++;
            }
            k += bytes;
        }
        rc = w->out_fd >= 0 ? write_all(w->out_fd, w->win, k, pos) : 0;
        if (rc != 0) {
            return rc;
        }
        if (w->out_fd >= 0) {
            walk_progress(w, k, 0);
        }
        pos += k;
    }
    *found = w->out_fd >= 0 ? SEG_FORMAT1 : SEG_UNKNOWN;
    return 0;
}

/* The common case costs one read of the first batch: format 2. */
static int segment_format(struct walk *w, enum seg_format *found)
{
    *found = SEG_UNKNOWN;
    if (w->size == 0) {
        return 0;
    }
    uint8_t head[BATCH_HEADER_BYTES];
    if (w->size >= sizeof(head) && file_pread_all(w->fd, head, sizeof(head), 0) == 0 &&
        head[BATCH_OFF_MAGIC] == BATCH_MAGIC) {
        uint64_t bytes = (uint64_t)BATCH_PREFIX_BYTES + get_be32(head + BATCH_OFF_LENGTH);
        if (bytes <= w->size && bytes <= w->batch_bytes_max &&
            file_pread_all(w->fd, w->win, (size_t)bytes, 0) == 0) {
            size_t got;
            if (batch_format(w->win, (size_t)bytes, w->batch_bytes_max, &got) == SEG_FORMAT2) {
                *found = SEG_FORMAT2;
                return 0;
            }
        }
    }
    return walk_file(w, found);
}

/* Writes the upgraded copy, syncs it, and renames it over the segment. */
static int segment_rewrite(struct walk *w, int dirfd, const char *name, const char *tmp)
{
    w->out_fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->out_fd < 0) {
        return -errno;
    }
    enum seg_format f;
    int rc = walk_file(w, &f);
    if (rc == 0 && fsync(w->out_fd) != 0) {
        rc = -errno;
    }
    close(w->out_fd);
    w->out_fd = -1;
    if (rc == 0 && renameat(dirfd, tmp, dirfd, name) != 0) {
        rc = -errno;
    }
    if (rc == 0 && fsync(dirfd) != 0) {
        rc = -errno;
    }
    if (rc != 0) {
        (void)unlinkat(dirfd, tmp, 0);
    }
    return rc;
}

static int segment_upgrade(struct walk *w, int dirfd, const char *dir, int64_t base)
{
    char name[SEG_NAME_BYTES];
    char tmp[SEG_NAME_BYTES + sizeof(FORMAT1_UPGRADE_SUFFIX)];
    seg_name(name, base, "log");
    snprintf(tmp, sizeof(tmp), "%s%s", name, FORMAT1_UPGRADE_SUFFIX);
    /* A copy left by a crash: the segment it was made from is still whole. */
    if (unlinkat(dirfd, tmp, 0) != 0 && errno != ENOENT) {
        return -errno;
    }
    w->fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
    if (w->fd < 0) {
        return -errno;
    }
    struct stat st;
    int rc = fstat(w->fd, &st) != 0 ? -errno : 0;
    w->size = rc == 0 ? (uint64_t)st.st_size : 0;
    enum seg_format f = SEG_UNKNOWN;
    rc = rc == 0 ? segment_format(w, &f) : rc;
    if (rc == 0 && f == SEG_FORMAT1) {
        walk_progress_clear(w);
        log_info("partition %s: upgrading segment %s (%llu bytes) from batch format 1 to 2", dir,
                 name, (unsigned long long)w->size);
        w->upgraded = 0;
        rc = segment_rewrite(w, dirfd, name, tmp);
        walk_progress(w, 0, rc == 0 ? 1 : 0);
        walk_progress_clear(w);
        if (rc == 0) {
            log_info("partition %s: segment %s upgraded: %llu batches", dir, name,
                     (unsigned long long)w->upgraded);
        }
    }
    close(w->fd);
    return rc;
}

/* Room for a batch of the largest size wherever it starts in the window. */
static int walk_init(struct walk *w, int fd, uint64_t size, size_t batch_bytes_max)
{
    *w = (struct walk){.fd = fd,
                       .size = size,
                       .win_cap = 2 * batch_bytes_max + BATCH_HEADER_BYTES,
                       .batch_bytes_max = batch_bytes_max,
                       .out_fd = -1};
    w->win = malloc(w->win_cap);
    return w->win == NULL ? -ENOMEM : 0;
}

int format1_segment_is_format1(int fd, uint64_t size, size_t batch_bytes_max)
{
    struct walk w;
    enum seg_format f = SEG_UNKNOWN;
    int rc = walk_init(&w, fd, size, batch_bytes_max);
    rc = rc == 0 ? segment_format(&w, &f) : rc;
    free(w.win);
    return rc != 0 ? rc : f == SEG_FORMAT1;
}

int format1_segment_copy(int fd, uint64_t size, int out_fd, size_t batch_bytes_max)
{
    struct walk w;
    enum seg_format f;
    int rc = walk_init(&w, fd, size, batch_bytes_max);
    w.out_fd = out_fd;
    rc = rc == 0 ? walk_file(&w, &f) : rc;
    free(w.win);
    return rc;
}

int format1_upgrade_dir(int dirfd, const char *dir, size_t batch_bytes_max,
                        struct progress *progress)
{
    int64_t *bases = NULL;
    uint32_t count = 0;
    int rc = seg_list(dirfd, &bases, &count);
    if (rc != 0 || count == 0) {
        free(bases);
        return rc;
    }
    struct walk w;
    rc = walk_init(&w, -1, 0, batch_bytes_max);
    w.progress = progress;
    for (uint32_t i = 0; rc == 0 && i < count; i++) {
        rc = segment_upgrade(&w, dirfd, dir, bases[i]);
    }
    if (rc != 0) {
        log_error("partition %s: upgrade to batch format 2 failed: %s", dir, err_str(rc));
    }
    free(w.win);
    free(bases);
    return rc;
}
