/* The power-loss simulation of base/ring_sim.h: per file, a durable image
 * and the writes no fsync has covered yet; per directory, an undo log of
 * the entry changes no fsync has covered yet. Built into test builds only
 * (base/meson.build, ring_faults_lib). */
#include "base/ring_sim.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "base/file.h"

/* The unit a torn write keeps or loses: a disk sector. */
#define SECTOR_BYTES 512u

/* A rename, next to enum ring_dirent's operations. */
#define SIM_RENAME 100

#define STASH_NAME_BYTES 32

/* A completed write not yet durable (or a piece of one: a later durable
 * write over part of a poisoned one supersedes that part). */
struct sim_write {
    uint64_t seq;
    uint64_t off;
    size_t len;    /* bytes that landed */
    uint8_t *post; /* those bytes */
    uint8_t *own;  /* the allocation post points into (owned) */
    bool poisoned; /* a failed write or fsync covered it: never durable */
};

/* A file with writes recorded, reached through our own descriptor (the
 * owner's may be write-only, or closed before the cut). image is what the
 * platter holds: the file as first seen, with every durable write applied
 * since. A cut writes it back, then whatever of the pending writes
 * survives. */
struct sim_file {
    dev_t dev;
    ino_t ino;
    int fd;
    uint8_t *image;
    size_t image_bytes;
    size_t image_cap;
    struct sim_write *w;
    uint32_t count;
    uint32_t cap;
};

/* A directory change not yet durable. */
struct sim_dirent {
    uint64_t seq;
    int op;    /* enum ring_dirent, or SIM_RENAME */
    dev_t dev; /* the directory whose fsync makes it durable */
    ino_t ino;
    ino_t entry_ino;              /* rename: the inode that moved */
    char *path;                   /* the entry (rename: its old path) */
    char *path_to;                /* rename: the new path */
    char stash[STASH_NAME_BYTES]; /* the kept link of a removed file, or "" */
    bool poisoned;
};

/* An op between ring_sqe() and its completion. */
struct sim_slot {
    struct ring *r;
    struct ring_op *op;
    struct io_uring_sqe *sqe; /* until submitted */
    bool submitted;
    bool write; /* else an fsync */
    bool dir;   /* fsync of a directory */
    dev_t dev;
    ino_t ino;
    int file; /* write: index into files */
    uint64_t off;
    size_t len;
    uint64_t size; /* fsync: the file's size when it began */
    uint64_t seq;  /* fsync: covers records up to here */
};

static struct {
    bool on;
    bool debug; /* NAGARE_SIM_DEBUG: say what a cut does and what fails */
    int stash_fd;
    uint64_t stash_seq;
    uint32_t nosync;
    uint64_t seq;
    uint64_t completions;
    uint64_t crash_at;
    bool crashed;
    int err;
    uint64_t rng;
    struct sim_file *files;
    uint32_t files_count;
    uint32_t files_cap;
    struct sim_dirent *dirents;
    uint32_t dirents_count;
    uint32_t dirents_cap;
    struct sim_slot *slots;
    uint32_t slots_count;
    uint32_t slots_cap;
    struct ring_sim_stats stats;
} sim = {.stash_fd = -1};

/* ---- helpers ---- */

#define sim_fail(rc) sim_fail_at((rc), __LINE__)

static void sim_fail_at(int rc, int line)
{
    ASSERT(rc < 0);
    if (sim.debug) {
        fprintf(stderr, "ring_sim: line %d: %s\n", line, strerror(-rc));
    }
    if (sim.err == 0) {
        sim.err = rc;
    }
}

static void *grow(void *arr, uint32_t *cap, uint32_t count, size_t elem)
{
    if (count < *cap) {
        return arr;
    }
    uint32_t n = *cap ? *cap * 2 : 16;
    void *p = realloc(arr, (size_t)n * elem);
    ASSERT(p != NULL); /* test-only code: out of memory is fatal */
    *cap = n;
    return p;
}

/* Kinds whose ops are recorded (and counted for crash points). */
static bool tracked(enum ring_kind kind)
{
    switch (kind) {
    case RING_LOG_WRITE:
    case RING_LOG_SYNC:
    case RING_INDEX_WRITE:
    case RING_INDEX_SYNC:
    case RING_DIR_SYNC:
    case RING_META_WRITE:
    case RING_META_SYNC:
        return true;
    default:
        return false;
    }
}

/* xorshift64*: the cut's choices, reproducible from its seed. */
static uint64_t rng_next(void)
{
    uint64_t x = sim.rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    sim.rng = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static int pwrite_all(int fd, const uint8_t *buf, size_t len, uint64_t off)
{
    size_t put = 0;
    while (put < len) {
        ssize_t n = pwrite(fd, buf + put, len - put, (off_t)(off + put));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return n < 0 ? -errno : -EIO;
        }
        put += (size_t)n;
    }
    return 0;
}

static uint8_t *read_copy(int fd, size_t len, uint64_t off)
{
    uint8_t *buf = malloc(len ? len : 1);
    ASSERT(buf != NULL);
    int rc = file_pread_all(fd, buf, len, off);
    if (rc != 0) {
        sim_fail(rc);
    }
    return buf;
}

/* Makes the image at least bytes long (new bytes zero: a hole). */
static void image_reserve(struct sim_file *f, size_t bytes)
{
    if (bytes > f->image_cap) {
        size_t cap = f->image_cap ? f->image_cap : 4096;
        while (cap < bytes) {
            cap *= 2;
        }
        f->image = realloc(f->image, cap);
        ASSERT(f->image != NULL);
        f->image_cap = cap;
    }
    if (bytes > f->image_bytes) {
        memset(f->image + f->image_bytes, 0, bytes - f->image_bytes);
        f->image_bytes = bytes;
    }
}

/* ---- files ---- */

/* The record of the file open as fd (stat st), made on first use. */
static int file_get(const struct stat *st, int fd)
{
    for (uint32_t i = 0; i < sim.files_count; i++) {
        if (sim.files[i].dev == st->st_dev && sim.files[i].ino == st->st_ino) {
            return (int)i;
        }
    }
    char link[64];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    int own = open(link, O_RDWR | O_CLOEXEC);
    if (own < 0) {
        sim_fail(-errno);
        return -1;
    }
    sim.files = grow(sim.files, &sim.files_cap, sim.files_count, sizeof(*sim.files));
    struct sim_file *f = &sim.files[sim.files_count];
    *f = (struct sim_file){.dev = st->st_dev, .ino = st->st_ino, .fd = own};
    /* What is there before the first write seen counts as durable. */
    image_reserve(f, (size_t)st->st_size);
    int rc = file_pread_all(own, f->image, f->image_bytes, 0);
    if (rc != 0) {
        sim_fail(rc);
    }
    return (int)sim.files_count++;
}

static struct sim_file *file_find(dev_t dev, ino_t ino)
{
    for (uint32_t i = 0; i < sim.files_count; i++) {
        if (sim.files[i].dev == dev && sim.files[i].ino == ino) {
            return &sim.files[i];
        }
    }
    return NULL;
}

/* ---- submissions and completions ---- */

void ring_sim_sqe(struct ring *r, struct ring_op *op, struct io_uring_sqe *sqe)
{
    if (!sim.on || !tracked(op->kind)) {
        return;
    }
    sim.slots = grow(sim.slots, &sim.slots_cap, sim.slots_count, sizeof(*sim.slots));
    sim.slots[sim.slots_count++] = (struct sim_slot){.r = r, .op = op, .sqe = sqe, .file = -1};
}

static void slot_remove(uint32_t i)
{
    ASSERT(i < sim.slots_count);
    sim.slots[i] = sim.slots[--sim.slots_count];
}

/* Reads a filled slot before the kernel sees it. Returns false for ops the
 * simulation does not model. */
static bool slot_capture(struct sim_slot *s)
{
    const struct io_uring_sqe *q = s->sqe;
    s->sqe = NULL;
    s->submitted = true;
    if (q->opcode != IORING_OP_FSYNC && q->opcode != IORING_OP_WRITE &&
        q->opcode != IORING_OP_WRITEV) {
        return false;
    }
    struct stat st;
    if (fstat(q->fd, &st) != 0) {
        sim_fail(-errno);
        return false;
    }
    s->dev = st.st_dev;
    s->ino = st.st_ino;
    if (q->opcode == IORING_OP_FSYNC) {
        s->dir = S_ISDIR(st.st_mode);
        s->seq = sim.seq; /* what completed before this fsync began */
        s->size = (uint64_t)st.st_size;
        return true;
    }
    ASSERT(q->off != (uint64_t)-1); /* storage writes at explicit offsets */
    s->write = true;
    s->file = file_get(&st, q->fd);
    s->off = q->off;
    s->len = q->len;
    if (q->opcode == IORING_OP_WRITEV) { /* one file range: the iovecs' total */
        const struct iovec *iov = (const struct iovec *)(uintptr_t)q->addr;
        s->len = 0;
        for (uint32_t i = 0; i < q->len; i++) {
            s->len += iov[i].iov_len;
        }
    }
    struct sim_file *f = s->file >= 0 ? &sim.files[s->file] : NULL;
    if (f != NULL && (uint64_t)st.st_size < f->image_bytes) {
        f->image_bytes = (size_t)st.st_size; /* cut by ftruncate: durable at once */
    }
    return f != NULL;
}

void ring_sim_submit(struct ring *r)
{
    for (uint32_t i = sim.slots_count; i-- > 0;) {
        struct sim_slot *s = &sim.slots[i];
        if (s->r == r && !s->submitted && !slot_capture(s)) {
            slot_remove(i);
        }
    }
}

void ring_sim_forget(struct ring *r)
{
    for (uint32_t i = sim.slots_count; i-- > 0;) {
        if (sim.slots[i].r == r) {
            slot_remove(i);
        }
    }
}

/* Records what a write left in the file: real_res bytes landed, whatever
 * the completion reported (a failed one is poisoned). */
static void write_done(const struct sim_slot *s, int real_res, int res)
{
    if (real_res <= 0) {
        return;
    }
    struct sim_file *f = &sim.files[s->file];
    size_t len = (size_t)real_res;
    ASSERT(len <= s->len);
    uint8_t *post = read_copy(f->fd, len, s->off);
    f->w = grow(f->w, &f->cap, f->count, sizeof(*f->w));
    f->w[f->count++] = (struct sim_write){.seq = ++sim.seq,
                                          .off = s->off,
                                          .len = len,
                                          .post = post,
                                          .own = post,
                                          .poisoned = res < 0};
    sim.stats.writes++;
}

/* Removes [lo, hi) from the pending write at index i, which a durable
 * write superseded there: it shrinks, splits in two, or goes (len 0). */
static void write_trim(struct sim_file *f, uint32_t i, uint64_t lo, uint64_t hi)
{
    struct sim_write *w = &f->w[i];
    uint64_t end = w->off + w->len;
    if (w->len == 0 || hi <= w->off || lo >= end) {
        return;
    }
    if (lo > w->off && hi < end) { /* a hole in the middle: the tail gets its own copy */
        struct sim_write tail = *w;
        tail.off = hi;
        tail.len = (size_t)(end - hi);
        tail.own = malloc(tail.len);
        ASSERT(tail.own != NULL);
        memcpy(tail.own, w->post + (hi - w->off), tail.len);
        tail.post = tail.own;
        w->len = (size_t)(lo - w->off);
        f->w = grow(f->w, &f->cap, f->count, sizeof(*f->w));
        f->w[f->count++] = tail; /* seq order is restored by the caller */
        return;
    }
    if (lo <= w->off && hi >= end) {
        free(w->own);
        w->own = w->post = NULL;
        w->len = 0;
    } else if (lo <= w->off) {
        w->post += hi - w->off;
        w->len = (size_t)(end - hi);
        w->off = hi;
    } else {
        w->len = (size_t)(lo - w->off);
    }
}

static int write_cmp(const void *a, const void *b)
{
    const struct sim_write *x = a;
    const struct sim_write *y = b;
    return (x->seq > y->seq) - (x->seq < y->seq);
}

/* Applies a durable write to the image; older pending writes lose the
 * bytes it covers. */
static void write_apply(struct sim_file *f, const struct sim_write *d)
{
    image_reserve(f, (size_t)(d->off + d->len));
    memcpy(f->image + d->off, d->post, d->len);
    uint32_t n = f->count;
    for (uint32_t i = 0; i < n; i++) {
        if (f->w[i].seq < d->seq) {
            write_trim(f, i, d->off, d->off + d->len);
        }
    }
}

/* Marks what the fsync covered durable, or poisoned when it failed. */
static void sync_done(const struct sim_slot *s, enum ring_kind kind, int res)
{
    if (res >= 0 && (sim.nosync & (1u << kind)) != 0) {
        return; /* the harness's "fsync off" switch */
    }
    sim.stats.syncs += res >= 0;
    sim.stats.syncs_failed += res < 0;
    if (s->dir) {
        uint32_t kept = 0;
        for (uint32_t i = 0; i < sim.dirents_count; i++) {
            struct sim_dirent *d = &sim.dirents[i];
            bool covered = d->dev == s->dev && d->ino == s->ino && d->seq <= s->seq;
            d->poisoned |= covered && res < 0;
            if (covered && res >= 0 && !d->poisoned) {
                free(d->path);
                free(d->path_to);
                continue;
            }
            sim.dirents[kept++] = *d;
        }
        sim.dirents_count = kept;
        return;
    }
    struct sim_file *f = file_find(s->dev, s->ino);
    if (f == NULL) {
        return;
    }
    for (uint32_t i = 0; i < f->count; i++) {
        struct sim_write *w = &f->w[i];
        bool covered = w->seq <= s->seq;
        w->poisoned |= covered && res < 0;
        if (covered && res >= 0 && !w->poisoned) {
            struct sim_write d = *w;
            w->len = 0; /* applied: dropped below */
            write_apply(f, &d);
            free(d.own);
        }
    }
    for (uint32_t i = 0; res >= 0 && i < f->count; i++) {
        if (f->w[i].seq <= s->seq) { /* bytes a truncation before this fsync took away */
            write_trim(f, i, s->size, UINT64_MAX);
        }
    }
    uint32_t kept = 0;
    for (uint32_t i = 0; i < f->count; i++) {
        if (f->w[i].len > 0) {
            f->w[kept++] = f->w[i];
        }
    }
    f->count = kept;
    qsort(f->w, f->count, sizeof(*f->w), write_cmp);
    if (res >= 0 && s->size < f->image_bytes) {
        f->image_bytes = (size_t)s->size; /* a truncation this fsync made durable */
    }
}

static int slot_find(const struct ring *r, const struct ring_op *op)
{
    for (uint32_t i = 0; i < sim.slots_count; i++) {
        if (sim.slots[i].r == r && sim.slots[i].op == op && sim.slots[i].submitted) {
            return (int)i;
        }
    }
    return -1;
}

int ring_sim_complete(struct ring *r, struct ring_op *op, int real_res, int res)
{
    bool file_op = tracked(op->kind) || op->kind == RING_LOG_WRITEBACK;
    if (!sim.on || !file_op) {
        return res;
    }
    if (tracked(op->kind)) {
        sim.completions++;
        sim.crashed |= sim.crash_at != 0 && sim.completions >= sim.crash_at;
    }
    if (sim.crashed) {
        res = -EIO; /* the machine is gone */
    }
    int i = slot_find(r, op);
    if (i < 0) {
        return res;
    }
    struct sim_slot s = sim.slots[i];
    slot_remove((uint32_t)i);
    if (s.write) {
        write_done(&s, real_res, res);
    } else {
        sync_done(&s, op->kind, res);
    }
    return res;
}

/* ---- directory entries ---- */

/* The absolute path of dirfd/name. */
static int entry_path(int dirfd, const char *name, char out[PATH_MAX])
{
    if (name[0] == '/') {
        return snprintf(out, PATH_MAX, "%s", name) < PATH_MAX ? 0 : -ENAMETOOLONG;
    }
    char dir[PATH_MAX];
    if (dirfd == AT_FDCWD) {
        if (getcwd(dir, sizeof(dir)) == NULL) {
            return -errno;
        }
    } else {
        char link[64];
        snprintf(link, sizeof(link), "/proc/self/fd/%d", dirfd);
        ssize_t n = readlink(link, dir, sizeof(dir) - 1);
        if (n < 0) {
            return -errno;
        }
        dir[n] = '\0';
    }
    return snprintf(out, PATH_MAX, "%s/%s", dir, name) < PATH_MAX ? 0 : -ENAMETOOLONG;
}

/* The directory holding path: the one whose fsync makes the entry durable. */
static int parent_of(const char *path, dev_t *dev, ino_t *ino)
{
    char copy[PATH_MAX];
    snprintf(copy, sizeof(copy), "%s", path);
    struct stat st;
    if (stat(dirname(copy), &st) != 0) {
        return -errno;
    }
    *dev = st.st_dev;
    *ino = st.st_ino;
    return 0;
}

/* Keeps path's inode alive as a link in the stash; names it in stash. */
static int stash_link(const char *path, char stash[STASH_NAME_BYTES])
{
    snprintf(stash, STASH_NAME_BYTES, "s%llu", (unsigned long long)sim.stash_seq++);
    if (linkat(AT_FDCWD, path, sim.stash_fd, stash, 0) != 0) {
        stash[0] = '\0';
        return -errno;
    }
    return 0;
}

static void dirent_push(struct sim_dirent *d, const char *path, const char *path_to)
{
    int rc = parent_of(path_to != NULL ? path_to : path, &d->dev, &d->ino);
    if (rc != 0) {
        sim_fail(rc);
        return;
    }
    d->seq = ++sim.seq;
    d->path = strdup(path);
    d->path_to = path_to != NULL ? strdup(path_to) : NULL;
    ASSERT(d->path != NULL && (path_to == NULL || d->path_to != NULL));
    sim.dirents = grow(sim.dirents, &sim.dirents_cap, sim.dirents_count, sizeof(*sim.dirents));
    sim.dirents[sim.dirents_count++] = *d;
    sim.stats.dirents++;
}

void ring_note_dirent(int dirfd, const char *name, enum ring_dirent op)
{
    char path[PATH_MAX];
    if (!sim.on) {
        return;
    }
    int rc = entry_path(dirfd, name, path);
    if (rc != 0) {
        sim_fail(rc);
        return;
    }
    struct stat st;
    bool exists = lstat(path, &st) == 0;
    bool is_dir = exists && S_ISDIR(st.st_mode);
    struct sim_dirent d = {.op = (int)op};
    switch (op) {
    case RING_DIRENT_CREATE:
    case RING_DIRENT_MKDIR:
        if (exists) {
            return; /* not a creation */
        }
        break;
    case RING_DIRENT_UNLINK:
        if (!exists || is_dir) {
            return; /* the unlink will fail */
        }
        rc = stash_link(path, d.stash);
        if (rc != 0) {
            sim_fail(rc);
        }
        break;
    case RING_DIRENT_RMDIR:
        if (!is_dir) {
            return;
        }
        break;
    default:
        UNREACHABLE();
    }
    dirent_push(&d, path, NULL);
}

void ring_note_rename(int from_dirfd, const char *from, int to_dirfd, const char *to)
{
    char from_path[PATH_MAX];
    char to_path[PATH_MAX];
    if (!sim.on) {
        return;
    }
    int rc = entry_path(from_dirfd, from, from_path);
    rc = rc == 0 ? entry_path(to_dirfd, to, to_path) : rc;
    if (rc != 0) {
        sim_fail(rc);
        return;
    }
    struct stat st;
    if (lstat(from_path, &st) != 0) {
        return; /* the rename will fail */
    }
    struct sim_dirent d = {.op = SIM_RENAME, .entry_ino = st.st_ino};
    struct stat target;
    if (lstat(to_path, &target) == 0 && !S_ISDIR(target.st_mode)) {
        rc = stash_link(to_path, d.stash); /* replaced: bring it back on undo */
        if (rc != 0) {
            sim_fail(rc);
        }
    }
    dirent_push(&d, from_path, to_path);
}

/* ---- the cut ---- */

/* Writes back the sectors of w that survive: none (drop), or, tearing,
 * none, all, a prefix or a random subset. */
static void cut_write(struct sim_file *f, const struct sim_write *w, enum ring_sim_cut how)
{
    uint64_t first = w->off / SECTOR_BYTES;
    uint64_t sectors = (w->off + w->len - 1) / SECTOR_BYTES - first + 1;
    uint64_t fate = how == RING_SIM_DROP ? 0 : rng_next() % 4;
    uint64_t prefix = fate == 2 ? 1 + rng_next() % sectors : 0;
    size_t kept = 0;
    for (uint64_t k = 0; k < sectors; k++) {
        bool keep = fate == 1 || k < prefix || (fate == 3 && (rng_next() & 1) != 0);
        if (!keep) {
            continue;
        }
        uint64_t lo = (first + k) * SECTOR_BYTES;
        uint64_t hi = lo + SECTOR_BYTES;
        lo = lo > w->off ? lo : w->off;
        hi = hi < w->off + w->len ? hi : w->off + w->len;
        int rc = pwrite_all(f->fd, w->post + (lo - w->off), (size_t)(hi - lo), lo);
        if (rc != 0) {
            sim_fail(rc);
        }
        kept += (size_t)(hi - lo);
    }
    sim.stats.writes_dropped += kept == 0;
    sim.stats.writes_torn += kept > 0 && kept < w->len;
    sim.stats.writes_kept += kept == w->len;
    sim.stats.bytes_lost += w->len - kept;
}

/* Puts the file back to its durable image, then writes back what survives
 * of the pending writes, oldest first. */
static void cut_file(struct sim_file *f, enum ring_sim_cut how)
{
    int rc = pwrite_all(f->fd, f->image, f->image_bytes, 0);
    if (rc == 0 && ftruncate(f->fd, (off_t)f->image_bytes) != 0) {
        rc = -errno;
    }
    if (rc != 0) {
        sim_fail(rc);
    }
    for (uint32_t i = 0; i < f->count; i++) {
        cut_write(f, &f->w[i], how);
    }
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return (flag == FTW_DP ? rmdir(path) : unlink(path)) == 0 ? 0 : -errno;
}

static bool parent_exists(const char *path)
{
    char copy[PATH_MAX];
    snprintf(copy, sizeof(copy), "%s", path);
    struct stat st;
    return stat(dirname(copy), &st) == 0;
}

/* Puts back what one directory change altered. A change inside a directory
 * that is gone (its removal was made durable) is moot. */
static int undo_dirent(const struct sim_dirent *d)
{
    if (!parent_exists(d->path) || (d->path_to != NULL && !parent_exists(d->path_to))) {
        return 0;
    }
    struct stat st;
    bool exists = lstat(d->path, &st) == 0;
    switch (d->op) {
    case RING_DIRENT_CREATE:
        return !exists || S_ISDIR(st.st_mode) || unlink(d->path) == 0 ? 0 : -errno;
    case RING_DIRENT_MKDIR:
        return !exists ? 0 : nftw(d->path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    case RING_DIRENT_UNLINK:
        if (d->stash[0] == '\0') {
            return -ENOENT; /* nothing kept to bring back */
        }
        return renameat(sim.stash_fd, d->stash, AT_FDCWD, d->path) == 0 ? 0 : -errno;
    case RING_DIRENT_RMDIR:
        return exists || mkdir(d->path, 0755) == 0 ? 0 : -errno;
    case SIM_RENAME: {
        struct stat to;
        if (exists || lstat(d->path_to, &to) != 0 || to.st_ino != d->entry_ino) {
            return 0; /* the rename did not happen (or was undone by a later change) */
        }
        if (rename(d->path_to, d->path) != 0) {
            return -errno;
        }
        bool stashed = d->stash[0] != '\0';
        return !stashed || renameat(sim.stash_fd, d->stash, AT_FDCWD, d->path_to) == 0 ? 0 : -errno;
    }
    default:
        UNREACHABLE();
    }
}

/* Undoes the unsynced directory changes, newest first: all of them, or
 * (tearing) all but a random chronological prefix. */
static void cut_dirents(enum ring_sim_cut how)
{
    uint32_t n = sim.dirents_count;
    uint32_t keep = how == RING_SIM_DROP ? 0 : (uint32_t)(rng_next() % (n + 1u));
    for (uint32_t i = 0; i < n && sim.debug; i++) {
        fprintf(stderr, "ring_sim: pending %u op %d %s %s%s\n", i, sim.dirents[i].op,
                sim.dirents[i].path, sim.dirents[i].stash, i < keep ? " (kept)" : "");
    }
    for (uint32_t i = n; i-- > keep;) {
        int rc = undo_dirent(&sim.dirents[i]);
        if (rc != 0 && sim.debug) {
            fprintf(stderr, "ring_sim: undoing op %d of %s (%s): %s\n", sim.dirents[i].op,
                    sim.dirents[i].path, sim.dirents[i].path_to ? sim.dirents[i].path_to : "",
                    strerror(-rc));
        }
        if (rc != 0) {
            sim_fail(rc);
        }
    }
    sim.stats.dirents_undone += n - keep;
    sim.stats.dirents_kept += keep;
}

/* Forgets every record, closes our descriptors and empties the stash. */
static void sim_reset(void)
{
    for (uint32_t i = 0; i < sim.files_count; i++) {
        struct sim_file *f = &sim.files[i];
        for (uint32_t k = 0; k < f->count; k++) {
            free(f->w[k].own);
        }
        free(f->w);
        free(f->image);
        close(f->fd);
    }
    for (uint32_t i = 0; i < sim.dirents_count; i++) {
        free(sim.dirents[i].path);
        free(sim.dirents[i].path_to);
    }
    free(sim.files);
    free(sim.dirents);
    free(sim.slots);
    sim.files = NULL;
    sim.dirents = NULL;
    sim.slots = NULL;
    sim.files_count = sim.files_cap = sim.dirents_count = sim.dirents_cap = 0;
    sim.slots_count = sim.slots_cap = 0;
    sim.completions = sim.crash_at = 0;
    sim.crashed = false;
    sim.err = 0;
    DIR *d = sim.stash_fd >= 0 ? fdopendir(dup(sim.stash_fd)) : NULL;
    if (d != NULL) {
        rewinddir(d); /* the duplicate shares the offset of the last pass */
    }
    for (struct dirent *e; d != NULL && (e = readdir(d)) != NULL;) {
        if (e->d_name[0] != '.') {
            (void)unlinkat(sim.stash_fd, e->d_name, 0);
        }
    }
    if (d != NULL) {
        closedir(d);
    }
}

int ring_sim_power_cut(enum ring_sim_cut how, uint64_t seed)
{
    ASSERT(sim.on);
    for (uint32_t i = 0; i < sim.slots_count; i++) {
        ASSERT(!sim.slots[i].submitted); /* drain and close before the cut */
    }
    sim.rng = seed * 2 + 1;
    for (uint32_t i = 0; i < sim.files_count; i++) {
        cut_file(&sim.files[i], how);
    }
    cut_dirents(how);
    int rc = sim.err;
    sim_reset();
    sim.stats.cuts++;
    return rc;
}

/* ---- control ---- */

int ring_sim_enable(const char *stash_dir)
{
    ASSERT(!sim.on);
    if (mkdir(stash_dir, 0755) != 0 && errno != EEXIST) {
        return -errno;
    }
    sim.stash_fd = open(stash_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (sim.stash_fd < 0) {
        return -errno;
    }
    sim_reset();
    sim.on = true;
    sim.debug = getenv("NAGARE_SIM_DEBUG") != NULL;
    sim.nosync = 0;
    sim.seq = 0;
    sim.stats = (struct ring_sim_stats){0};
    return 0;
}

void ring_sim_disable(void)
{
    sim_reset();
    if (sim.stash_fd >= 0) {
        close(sim.stash_fd);
    }
    sim.stash_fd = -1;
    sim.on = false;
}

void ring_sim_set_nosync(uint32_t kinds_mask) { sim.nosync = kinds_mask; }

void ring_sim_crash_at(uint64_t nth) { sim.crash_at = nth ? sim.completions + nth : 0; }

void ring_sim_crash_now(void) { sim.crashed = true; }

bool ring_sim_crashed(void) { return sim.crashed; }

uint64_t ring_sim_completions(void) { return sim.completions; }

void ring_sim_stats(struct ring_sim_stats *out) { *out = sim.stats; }
