#include "storage/epochs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "base/bytes.h"
#include "base/err.h"
#include "base/file.h"
#include "base/log.h"

static_assert(EPOCHS_FILE_BYTES(EPOCHS_MAX) < (64u << 10), "a file is read whole at open");

void epochs_init(struct epochs *e) { *e = (struct epochs){0}; }

void epochs_fini(struct epochs *e)
{
    free(e->v);
    epochs_init(e);
}

int32_t epochs_last(const struct epochs *e)
{
    return e->count > 0 ? e->v[e->count - 1].epoch : EPOCHS_UNDEFINED;
}

/* Room for one more entry: grows the array, doubling up to EPOCHS_MAX. */
static int epochs_reserve(struct epochs *e)
{
    if (e->count < e->cap) {
        return 0;
    }
    uint32_t cap = e->cap == 0 ? 4 : e->cap * 2;
    cap = cap < EPOCHS_MAX ? cap : EPOCHS_MAX;
    ASSERT(cap > e->count);
    struct epoch_entry *v = realloc(e->v, cap * sizeof(*v));
    if (v == NULL) {
        return -ENOMEM;
    }
    e->v = v;
    e->cap = cap;
    return 0;
}

int epochs_add(struct epochs *e, int32_t epoch, int64_t offset_start)
{
    ASSERT(epoch >= 0 && offset_start >= 0 && epoch > epochs_last(e));
    ASSERT(e->count == 0 || offset_start > e->v[e->count - 1].offset_start);
    if (e->count == EPOCHS_MAX) {
        log_warn("leader epoch cache: full (%u epochs): forgetting epoch %d (from offset %lld)",
                 EPOCHS_MAX, (int)e->v[0].epoch, (long long)e->v[0].offset_start);
        memmove(e->v, e->v + 1, (e->count - 1) * sizeof(*e->v));
        e->count--;
    }
    int rc = epochs_reserve(e);
    if (rc != 0) {
        return rc;
    }
    e->v[e->count++] = (struct epoch_entry){.epoch = epoch, .offset_start = offset_start};
    return 0;
}

uint32_t epochs_truncate_end(struct epochs *e, int64_t offset_end)
{
    uint32_t before = e->count;
    while (e->count > 0 && e->v[e->count - 1].offset_start >= offset_end) {
        e->count--;
    }
    return before - e->count;
}

bool epochs_truncate_start(struct epochs *e, int64_t offset_start)
{
    uint32_t gone = 0; /* entries whose successor starts at or before it */
    while (gone + 1 < e->count && e->v[gone + 1].offset_start <= offset_start) {
        gone++;
    }
    bool moved = e->count > gone && e->v[gone].offset_start < offset_start;
    if (gone > 0) {
        memmove(e->v, e->v + gone, (e->count - gone) * sizeof(*e->v));
        e->count -= gone;
    }
    if (moved) {
        e->v[0].offset_start = offset_start;
    }
    return gone > 0 || moved;
}

void epochs_end_offset(const struct epochs *e, int32_t epoch, int64_t log_end, int32_t *epoch_out,
                       int64_t *end_out)
{
    if (e->count == 0 && epoch >= 0) {
        *epoch_out = epoch;
        *end_out = log_end;
        return;
    }
    if (epoch < 0 || epoch < e->v[0].epoch) {
        *epoch_out = EPOCHS_UNDEFINED;
        *end_out = EPOCHS_UNDEFINED;
        return;
    }
    uint32_t lo = 0; /* the first entry with a higher epoch */
    uint32_t hi = e->count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (e->v[mid].epoch <= epoch) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    ASSERT(lo > 0);
    *epoch_out = e->v[lo - 1].epoch;
    *end_out = lo < e->count ? e->v[lo].offset_start : log_end;
}

size_t epochs_encode(const struct epochs *e, uint8_t *buf, size_t cap)
{
    size_t bytes = EPOCHS_FILE_BYTES(e->count);
    if (cap < bytes) {
        return 0;
    }
    /* Written at positions the check above covers, not through a struct wr:
     * gcc 12 at -O3 misreads wr_take()'s bound here (-Wstringop-overflow). */
    put_be32(buf, EPOCHS_MAGIC);
    put_be32(buf + 4, EPOCHS_VERSION);
    put_be32(buf + 8, e->count);
    size_t pos = EPOCHS_HEAD_BYTES;
    for (uint32_t i = 0; i < e->count; i++, pos += EPOCHS_ENTRY_BYTES) {
        put_be32(buf + pos, (uint32_t)e->v[i].epoch);
        put_be64(buf + pos + 4, (uint64_t)e->v[i].offset_start);
    }
    put_be64(buf + pos, XXH3_64bits(buf, pos));
    ASSERT(pos + EPOCHS_SUM_BYTES == bytes);
    return bytes;
}

int epochs_decode(struct epochs *e, const uint8_t *buf, size_t len)
{
    e->count = 0;
    struct rd r = rd_make(buf, len);
    uint32_t magic = rd_be32(&r);
    uint32_t version = rd_be32(&r);
    uint32_t count = rd_be32(&r);
    if (r.err != 0 || magic != EPOCHS_MAGIC) {
        return -NG_ECORRUPT;
    }
    if (version != EPOCHS_VERSION) {
        return -NG_EBADVERSION;
    }
    if (count > EPOCHS_MAX || len != EPOCHS_FILE_BYTES(count) ||
        get_be64(buf + len - EPOCHS_SUM_BYTES) != XXH3_64bits(buf, len - EPOCHS_SUM_BYTES)) {
        return -NG_ECORRUPT;
    }
    for (uint32_t i = 0; i < count; i++) {
        int32_t epoch = (int32_t)rd_be32(&r);
        int64_t start = (int64_t)rd_be64(&r);
        ASSERT(r.err == 0); /* the length was checked against count */
        if (epoch < 0 || start < 0 || epoch <= epochs_last(e) ||
            (e->count > 0 && start <= e->v[e->count - 1].offset_start)) {
            e->count = 0;
            return -NG_ECORRUPT;
        }
        int rc = epochs_add(e, epoch, start);
        if (rc != 0) {
            e->count = 0;
            return rc;
        }
    }
    return 0;
}

int epochs_load(struct epochs *e, int dirfd)
{
    int fd = openat(dirfd, EPOCHS_FILE, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    struct stat st;
    int rc = fstat(fd, &st) != 0 ? -errno : 0;
    uint8_t *buf = NULL;
    size_t len = rc == 0 ? (size_t)st.st_size : 0;
    if (rc == 0 && (st.st_size < 0 || len > EPOCHS_FILE_BYTES(EPOCHS_MAX))) {
        rc = -NG_ECORRUPT; /* checked before it sizes the buffer */
    }
    if (rc == 0) {
        buf = malloc(len > 0 ? len : 1);
        rc = buf == NULL ? -ENOMEM : file_pread_all(fd, buf, len, 0);
        rc = rc == -NG_ETRUNCATED ? -NG_ECORRUPT : rc; /* shrank meanwhile */
    }
    close(fd);
    if (rc == 0) {
        rc = epochs_decode(e, buf, len);
    }
    free(buf);
    return rc;
}

int epochs_store(const struct epochs *e, int dirfd, struct ring *r)
{
    size_t len = EPOCHS_FILE_BYTES(e->count);
    uint8_t *buf = malloc(len);
    if (buf == NULL) {
        return -ENOMEM;
    }
    size_t n = epochs_encode(e, buf, len);
    ASSERT(n == len);
    int rc = ring_replace_file(r, dirfd, EPOCHS_FILE_TMP, EPOCHS_FILE, buf, len);
    free(buf);
    return rc;
}
