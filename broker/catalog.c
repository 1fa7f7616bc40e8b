#include "broker/catalog.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "base/log.h"
#include "broker/names.h"
#include "base/ring.h"

#define META_NAME "topic.meta"
/* Not written by this version (a topic directory is built whole in trash/
 * and renamed into place), but a temp-file-and-rename update of topic.meta
 * would leave it; open removes it. */
#define META_TMP_NAME "topic.meta.tmp"
#define CHECKSUM_KEY "checksum = "
#define CHECKSUM_HEX_DIGITS 16
/* Attempts at a fresh trash entry name before giving up: a name is taken
 * only when a trash entry from a process with our pid survived a crash. */
#define TRASH_NAME_TRIES 16
/* Entries per ring: every blocking step waits for its one op. */
#define CATALOG_RING_ENTRIES 8

static_assert(PART_SEGMENT_BYTES_MAX <= INT64_MAX, "segment_bytes is an i64");
static_assert(BATCH_BYTES_LIMIT <= INT32_MAX, "batch_bytes_max is an i32");

/* ---- configuration ---- */

/* The fields of a topic, in topic.meta order. */
enum meta_field {
    MF_VERSION,
    MF_NAME,
    MF_PARTITIONS,
    MF_RETENTION_MS,
    MF_RETENTION_BYTES,
    MF_SEGMENT_BYTES,
    MF_SEGMENT_MS,
    MF_BATCH_BYTES_MAX,
    MF_COUNT
};

struct field_spec {
    const char *key;
    int64_t min;
    int64_t max;
    bool minus_one; /* -1 also allowed: no limit */
};

/* Ranges of the numeric fields (struct topic_config documents them). */
static const struct field_spec fields[MF_COUNT] = {
    [MF_VERSION] = {"version", CATALOG_META_VERSION, CATALOG_META_VERSION, false},
    [MF_NAME] = {"name", 0, 0, false},
    [MF_PARTITIONS] = {"partitions", 1, PROTO_PARTITIONS_MAX, false},
    [MF_RETENTION_MS] = {"retention_ms", 1, INT64_MAX, true},
    [MF_RETENTION_BYTES] = {"retention_bytes", 1, INT64_MAX, true},
    [MF_SEGMENT_BYTES] = {"segment_bytes", PART_SEGMENT_BYTES_MIN, PART_SEGMENT_BYTES_MAX, false},
    [MF_SEGMENT_MS] = {"segment_ms", 1, INT64_MAX, false},
    [MF_BATCH_BYTES_MAX] = {"batch_bytes_max", BATCH_HEADER_BYTES, BATCH_BYTES_LIMIT, false},
};

static bool field_ok(enum meta_field f, int64_t v)
{
    ASSERT(f > MF_NAME && f < MF_COUNT);
    return (v >= fields[f].min && v <= fields[f].max) || (fields[f].minus_one && v == -1);
}

static int64_t field_get(const struct topic_config *cfg, enum meta_field f)
{
    switch (f) {
    case MF_PARTITIONS:
        return cfg->partitions;
    case MF_RETENTION_MS:
        return cfg->retention_ms;
    case MF_RETENTION_BYTES:
        return cfg->retention_bytes;
    case MF_SEGMENT_BYTES:
        return cfg->segment_bytes;
    case MF_SEGMENT_MS:
        return cfg->segment_ms;
    case MF_BATCH_BYTES_MAX:
        return cfg->batch_bytes_max;
    default:
        UNREACHABLE();
    }
}

/* Precondition: field_ok(f, v), so the narrowing casts keep v. */
static void field_set(struct topic_config *cfg, enum meta_field f, int64_t v)
{
    ASSERT(field_ok(f, v));
    switch (f) {
    case MF_PARTITIONS:
        cfg->partitions = (int32_t)v;
        break;
    case MF_RETENTION_MS:
        cfg->retention_ms = v;
        break;
    case MF_RETENTION_BYTES:
        cfg->retention_bytes = v;
        break;
    case MF_SEGMENT_BYTES:
        cfg->segment_bytes = v;
        break;
    case MF_SEGMENT_MS:
        cfg->segment_ms = v;
        break;
    case MF_BATCH_BYTES_MAX:
        cfg->batch_bytes_max = (int32_t)v;
        break;
    default:
        UNREACHABLE();
    }
}

int catalog_config_check(const struct topic_config *cfg)
{
    for (int f = MF_PARTITIONS; f < MF_COUNT; f++) {
        if (!field_ok((enum meta_field)f, field_get(cfg, (enum meta_field)f))) {
            return -NG_EBADARG;
        }
    }
    return 0;
}

static int64_t resolve_field(int64_t requested, int64_t dflt, bool retention)
{
    if (requested == PROTO_CONFIG_DEFAULT) {
        return dflt;
    }
    if (retention && requested == PROTO_CONFIG_UNLIMITED) {
        return -1;
    }
    return requested;
}

int catalog_resolve_config(const struct topic_config *requested,
                           const struct topic_config *defaults, struct topic_config *out)
{
    ASSERT(catalog_config_check(defaults) == 0);
    struct topic_config r = {0};
    for (int i = MF_PARTITIONS; i < MF_COUNT; i++) {
        enum meta_field f = (enum meta_field)i;
        bool retention = f == MF_RETENTION_MS || f == MF_RETENTION_BYTES;
        int64_t v = resolve_field(field_get(requested, f), field_get(defaults, f), retention);
        if (!field_ok(f, v)) {
            return -NG_EBADARG;
        }
        field_set(&r, f, v);
    }
    *out = r;
    return 0;
}

void catalog_part_config(const struct topic_config *cfg, const struct part_config *base,
                         struct part_config *out)
{
    ASSERT(catalog_config_check(cfg) == 0);
    *out = *base;
    out->segment_bytes = (uint64_t)cfg->segment_bytes;
    out->segment_ms = cfg->segment_ms;
    out->batch_bytes_max = (uint32_t)cfg->batch_bytes_max;
    out->retention_ms = cfg->retention_ms;
    out->retention_bytes = cfg->retention_bytes;
}

/* ---- topic.meta ---- */

int catalog_meta_encode(const char *name, size_t len, const struct topic_config *cfg, char *buf,
                        size_t cap, size_t *len_out)
{
    ASSERT(proto_topic_name_valid(name, len));
    ASSERT(catalog_config_check(cfg) == 0);
    int n =
        snprintf(buf, cap,
                 "version = %d\nname = %.*s\npartitions = %" PRId32 "\nretention_ms = %" PRId64
                 "\nretention_bytes = %" PRId64 "\nsegment_bytes = %" PRId64
                 "\nsegment_ms = %" PRId64 "\nbatch_bytes_max = %" PRId32 "\n",
                 CATALOG_META_VERSION, (int)len, name, cfg->partitions, cfg->retention_ms,
                 cfg->retention_bytes, cfg->segment_bytes, cfg->segment_ms, cfg->batch_bytes_max);
    if (n < 0 || (size_t)n >= cap) {
        return -NG_ENOSPACE;
    }
    /* The checksum covers every byte before its own line. */
    uint64_t sum = XXH3_64bits(buf, (size_t)n);
    int m = snprintf(buf + n, cap - (size_t)n, CHECKSUM_KEY "%016" PRIx64 "\n", sum);
    if (m < 0 || (size_t)m >= cap - (size_t)n) {
        return -NG_ENOSPACE;
    }
    *len_out = (size_t)n + (size_t)m;
    return 0;
}

__attribute__((format(printf, 3, 4))) static int meta_bad(char *why, size_t cap, const char *fmt,
                                                          ...)
{
    if (cap > 0) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(why, cap, fmt, ap);
        va_end(ap);
        if (n < 0) {
            why[0] = '\0';
        }
    }
    return -NG_ECORRUPT;
}

/* Parses s[0..n) as a decimal i64: an optional '-', then digits with no
 * leading zero (except "0" itself). False for anything else or overflow. */
static bool parse_i64(const char *s, size_t n, int64_t *out)
{
    bool neg = n > 0 && s[0] == '-';
    size_t i = neg ? 1 : 0;
    if (i == n || (s[i] == '0' && n - i > 1) || (neg && s[i] == '0')) {
        return false;
    }
    uint64_t v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > ((uint64_t)INT64_MAX - d) / 10) {
            return false;
        }
        v = v * 10 + d;
    }
    *out = neg ? -(int64_t)v : (int64_t)v;
    return true;
}

static bool parse_hex64(const char *s, size_t n, uint64_t *out)
{
    if (n != CHECKSUM_HEX_DIGITS) {
        return false;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        unsigned d;
        if (ch >= '0' && ch <= '9') {
            d = (unsigned)(ch - '0');
        } else if (ch >= 'a' && ch <= 'f') {
            d = (unsigned)(ch - 'a' + 10);
        } else {
            return false;
        }
        v = v << 4 | d;
    }
    *out = v;
    return true;
}

/* Checks the final line "checksum = <16 hex>\n" against the bytes before it;
 * on 0, *body_len is where that line starts. */
static int meta_check_sum(const char *buf, size_t len, size_t *body_len, char *why, size_t cap)
{
    if (len == 0) {
        return meta_bad(why, cap, "empty file");
    }
    if (len > CATALOG_META_BYTES_MAX) {
        return meta_bad(why, cap, "%zu bytes, more than the %d allowed", len,
                        CATALOG_META_BYTES_MAX);
    }
    if (buf[len - 1] != '\n') {
        return meta_bad(why, cap, "does not end with a newline (truncated?)");
    }
    size_t start = len - 1;
    while (start > 0 && buf[start - 1] != '\n') {
        start--;
    }
    size_t key_len = strlen(CHECKSUM_KEY);
    uint64_t stored;
    if (len - 1 - start != key_len + CHECKSUM_HEX_DIGITS ||
        memcmp(buf + start, CHECKSUM_KEY, key_len) != 0 ||
        !parse_hex64(buf + start + key_len, CHECKSUM_HEX_DIGITS, &stored)) {
        return meta_bad(why, cap, "last line is not 'checksum = <16 hex digits>' (truncated?)");
    }
    uint64_t actual = XXH3_64bits(buf, start);
    if (actual != stored) {
        return meta_bad(why, cap,
                        "checksum mismatch: file says %016" PRIx64 ", contents hash to %016" PRIx64,
                        stored, actual);
    }
    *body_len = start;
    return 0;
}

static int meta_key(const char *key, size_t n)
{
    for (int f = 0; f < MF_COUNT; f++) {
        if (strlen(fields[f].key) == n && memcmp(fields[f].key, key, n) == 0) {
            return f;
        }
    }
    return -1;
}

struct meta_parse {
    struct catalog_topic *t;
    bool seen[MF_COUNT];
    unsigned line;
};

/* Applies "key = value" (line[0..n), no newline) to the parse. */
static int meta_line(struct meta_parse *mp, const char *line, size_t n, char *why, size_t cap)
{
    size_t k = 0;
    while (k < n && ((line[k] >= 'a' && line[k] <= 'z') || line[k] == '_')) {
        k++;
    }
    if (k == 0 || n - k < 4 || memcmp(line + k, " = ", 3) != 0) {
        return meta_bad(why, cap, "line %u is not 'key = value'", mp->line);
    }
    int f = meta_key(line, k);
    if (f < 0) {
        return meta_bad(why, cap, "line %u: unknown key '%.*s'", mp->line, (int)k, line);
    }
    if (mp->seen[f]) {
        return meta_bad(why, cap, "line %u: key '%s' repeated", mp->line, fields[f].key);
    }
    if ((mp->line == 1) != (f == MF_VERSION)) {
        return meta_bad(why, cap, "line %u: the version must be the first line", mp->line);
    }
    mp->seen[f] = true;
    const char *v = line + k + 3;
    size_t vn = n - k - 3;
    if (f == MF_NAME) {
        if (!proto_topic_name_valid(v, vn)) {
            return meta_bad(why, cap, "line %u: invalid topic name", mp->line);
        }
        memcpy(mp->t->name, v, vn);
        mp->t->name[vn] = '\0';
        mp->t->name_len = (uint32_t)vn;
        return 0;
    }
    int64_t x;
    if (!parse_i64(v, vn, &x)) {
        return meta_bad(why, cap, "line %u: %s is not a decimal integer", mp->line, fields[f].key);
    }
    if (f == MF_VERSION) {
        return x == CATALOG_META_VERSION
                   ? 0
                   : meta_bad(why, cap, "version %" PRId64 " not supported (this is %d)", x,
                              CATALOG_META_VERSION);
    }
    if (!field_ok((enum meta_field)f, x)) {
        return meta_bad(why, cap, "line %u: %s = %" PRId64 " out of range", mp->line, fields[f].key,
                        x);
    }
    field_set(&mp->t->cfg, (enum meta_field)f, x);
    return 0;
}

int catalog_meta_decode(const char *buf, size_t len, struct catalog_topic *out, char *why,
                        size_t why_cap)
{
    size_t body = 0;
    int rc = meta_check_sum(buf, len, &body, why, why_cap);
    if (rc != 0) {
        return rc;
    }
    struct catalog_topic t;
    memset(&t, 0, sizeof(t));
    struct meta_parse mp = {.t = &t, .line = 0};
    size_t pos = 0;
    while (pos < body) {
        mp.line++;
        const char *nl = memchr(buf + pos, '\n', body - pos);
        ASSERT(nl != NULL); /* buf[body - 1] is a newline */
        size_t n = (size_t)(nl - (buf + pos));
        if (n + 1 > CATALOG_META_LINE_BYTES_MAX) {
            return meta_bad(why, why_cap, "line %u longer than %d bytes", mp.line,
                            CATALOG_META_LINE_BYTES_MAX);
        }
        rc = meta_line(&mp, buf + pos, n, why, why_cap);
        if (rc != 0) {
            return rc;
        }
        pos += n + 1;
    }
    for (int f = 0; f < MF_COUNT; f++) {
        if (!mp.seen[f]) {
            return meta_bad(why, why_cap, "key '%s' missing", fields[f].key);
        }
    }
    ASSERT(catalog_config_check(&t.cfg) == 0);
    *out = t;
    return 0;
}

/* ---- file system helpers ---- */

static void catalog_fail(struct catalog *c, int rc, const char *what)
{
    ASSERT(rc < 0);
    if (c->failed == 0) {
        c->failed = rc;
    }
    log_error("catalog %s: %s failed: %s; topics can no longer be created or deleted "
              "until the broker restarts",
              c->data_dir, what, err_str(rc));
}

/* Reads up to cap bytes of fd from its start; *len_out < cap means EOF. */
static int read_upto(int fd, char *buf, size_t cap, size_t *len_out)
{
    size_t got = 0;
    while (got < cap) {
        ssize_t n = pread(fd, buf + got, cap - got, (off_t)got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return -errno;
        }
        if (n == 0) {
            break;
        }
        got += (size_t)n;
    }
    *len_out = got;
    return 0;
}

static int close_checked(int fd)
{
    /* After close() fails the descriptor is gone all the same (Linux). */
    return close(fd) == 0 ? 0 : -errno;
}

static int rename_noreplace(int from_fd, const char *from, int to_fd, const char *to)
{
    ring_note_rename(from_fd, from, to_fd, to); /* power-loss tests (base/ring.h) */
    if (renameat2(from_fd, from, to_fd, to, RENAME_NOREPLACE) == 0) {
        return 0;
    }
    if (errno != EINVAL) {
        return -errno;
    }
    /* A file system without RENAME_NOREPLACE: the callers' targets are
     * checked absent (a catalog name, or a fresh trash name). */
    return renameat(from_fd, from, to_fd, to) == 0 ? 0 : -errno;
}

static void trash_name(struct catalog *c, const char *kind, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%s.%ld.%" PRIu64, kind, (long)getpid(), c->trash_seq++);
    ASSERT(n > 0 && (size_t)n < cap);
}

#define TRASH_NAME_BYTES 64

/* Renames from_fd/from to a fresh name in trash/, written into entry. */
static int move_to_trash(struct catalog *c, int from_fd, const char *from, const char *kind,
                         char entry[TRASH_NAME_BYTES])
{
    int rc = -EEXIST;
    for (int i = 0; i < TRASH_NAME_TRIES && (rc == -EEXIST || rc == -ENOTEMPTY); i++) {
        trash_name(c, kind, entry, TRASH_NAME_BYTES);
        rc = rename_noreplace(from_fd, from, c->trash_fd, entry);
    }
    return rc;
}

static int remove_tree_at(int dirfd, const char *name, int depth);

/* Removes every entry of the open directory d (one pass). */
static int remove_entries(DIR *d, int depth)
{
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (e == NULL) {
            return errno == 0 ? 0 : -errno;
        }
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        int rc = remove_tree_at(dirfd(d), e->d_name, depth + 1);
        if (rc != 0) {
            return rc;
        }
    }
}

/* Removes dirfd/name and, when it is a directory, everything beneath it,
 * at most CATALOG_TRASH_DEPTH_MAX levels down. Symbolic links are removed,
 * never followed. A missing name is not an error. */
static int remove_tree_at(int dirfd, const char *name, int depth)
{
    ring_note_dirent(dirfd, name, RING_DIRENT_UNLINK); /* power-loss tests (base/ring.h) */
    if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT) {
        return 0;
    }
    if (errno != EISDIR && errno != EPERM) {
        return -errno;
    }
    if (depth >= CATALOG_TRASH_DEPTH_MAX) {
        return -ELOOP;
    }
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    int rc = remove_entries(d, depth);
    closedir(d);
    ring_note_dirent(dirfd, name, RING_DIRENT_RMDIR); /* power-loss tests (base/ring.h) */
    if (rc == 0 && unlinkat(dirfd, name, AT_REMOVEDIR) != 0) {
        rc = -errno;
    }
    return rc;
}

/* Opens a new descriptor on fd's directory for readdir (fdopendir owns it). */
static DIR *dir_reopen(int fd)
{
    int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        return NULL;
    }
    DIR *d = fdopendir(dfd);
    if (d == NULL) {
        int err = errno;
        close(dfd);
        errno = err;
    }
    return d;
}

/* ---- the in-memory table ---- */

static const char *topic_name(const void *table, uint32_t i, size_t *len)
{
    const struct catalog_topic *t = ((struct catalog_topic *const *)table)[i];
    *len = t->name_len;
    return t->name;
}

/* Index of the first topic whose name is >= name[0..len); *found: it is name. */
static uint32_t lower_bound(const struct catalog *c, const char *name, size_t len, bool *found)
{
    return names_lower_bound(c->topics, c->count, topic_name, name, len, found);
}

static int topic_ptr_cmp(const void *a, const void *b)
{
    const struct catalog_topic *x = *(const struct catalog_topic *const *)a;
    const struct catalog_topic *y = *(const struct catalog_topic *const *)b;
    return names_cmp(x->name, x->name_len, y->name, y->name_len);
}

uint32_t catalog_count(const struct catalog *c) { return c->count; }

const struct catalog_topic *catalog_at(const struct catalog *c, uint32_t i)
{
    ASSERT(i < c->count);
    return c->topics[i];
}

const struct catalog_topic *catalog_find(const struct catalog *c, const char *name, size_t len)
{
    if (!proto_topic_name_valid(name, len)) {
        return NULL;
    }
    bool found;
    uint32_t i = lower_bound(c, name, len, &found);
    return found ? c->topics[i] : NULL;
}

int catalog_failed(const struct catalog *c) { return c->failed; }

int catalog_partition_dir(const struct catalog *c, const struct catalog_topic *t, int32_t p,
                          char *buf, size_t cap)
{
    ASSERT(p >= 0 && p < t->cfg.partitions);
    ASSERT(cap > 0);
    int n = snprintf(buf, cap, "%s/topics/%s/%" PRId32, c->data_dir, t->name, p);
    if (n < 0 || (size_t)n >= cap) {
        buf[0] = '\0';
        return -NG_ETOOBIG;
    }
    return 0;
}

/* ---- open ---- */

/* mkdir at (dirfd, name) unless it exists; *created says which. */
static int mkdir_at(int dirfd, const char *name, bool *created)
{
    ring_note_dirent(dirfd, name, RING_DIRENT_MKDIR); /* power-loss tests (base/ring.h) */
    if (mkdirat(dirfd, name, 0755) == 0) {
        *created = true;
        return 0;
    }
    return errno == EEXIST ? 0 : -errno;
}

/* Creates data_dir (one level) if missing, and fsyncs its parent then. */
static int open_data_dir(struct catalog *c, struct ring *r)
{
    bool created = false;
    int rc = mkdir_at(AT_FDCWD, c->data_dir, &created);
    if (rc == 0 && created) {
        char *copy = strdup(c->data_dir);
        int parent = copy ? open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
        rc = copy == NULL ? -ENOMEM : parent < 0 ? -errno : 0;
        rc = rc == 0 ? ring_fsync(r, RING_DIR_SYNC, parent, false) : rc;
        if (parent >= 0) {
            close(parent);
        }
        free(copy);
    }
    if (rc != 0) {
        return rc;
    }
    c->data_fd = open(c->data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return c->data_fd < 0 ? -errno : 0;
}

/* Creates (if missing) and opens topics/ and trash/ in the data dir. */
static int open_subdirs(struct catalog *c, struct ring *r)
{
    bool created = false;
    int rc = mkdir_at(c->data_fd, "topics", &created);
    rc = rc == 0 ? mkdir_at(c->data_fd, "trash", &created) : rc;
    if (rc == 0 && created) {
        rc = ring_fsync(r, RING_DIR_SYNC, c->data_fd, false);
    }
    if (rc != 0) {
        return rc;
    }
    c->topics_fd = openat(c->data_fd, "topics", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (c->topics_fd < 0) {
        return -errno;
    }
    c->trash_fd = openat(c->data_fd, "trash", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return c->trash_fd < 0 ? -errno : 0;
}

/* Removes everything in trash/. No fsync: whatever a crash brings back of
 * it is removed again on the next open. */
static int clean_trash(struct catalog *c)
{
    DIR *d = dir_reopen(c->trash_fd);
    if (d == NULL) {
        return -errno;
    }
    int rc = 0;
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (e == NULL) {
            rc = errno == 0 ? 0 : -errno;
            break;
        }
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        log_info("catalog %s: removing trash/%s left by an interrupted create or delete",
                 c->data_dir, e->d_name);
        rc = remove_tree_at(c->trash_fd, e->d_name, 0);
        if (rc != 0) {
            log_error("catalog %s: cannot remove trash/%s: %s", c->data_dir, e->d_name,
                      err_str(rc));
            break;
        }
    }
    closedir(d);
    return rc;
}

/* A topic directory without topic.meta: an interrupted creation when it
 * holds nothing but META_TMP_NAME, which is removed; anything else is
 * refused. */
static int handle_no_meta(struct catalog *c, int tfd, const char *name)
{
    DIR *d = dir_reopen(tfd);
    if (d == NULL) {
        return -errno;
    }
    int rc = 0;
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (e == NULL) {
            rc = errno == 0 ? 0 : -errno;
            break;
        }
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 &&
            strcmp(e->d_name, META_TMP_NAME) != 0) {
            log_error("catalog %s: topics/%s has no " META_NAME " but holds %s; refusing "
                      "to guess (restore " META_NAME " or move the directory away)",
                      c->data_dir, name, e->d_name);
            rc = -NG_ECORRUPT;
            break;
        }
    }
    closedir(d);
    if (rc != 0) {
        return rc;
    }
    log_warn("catalog %s: removing topics/%s, an interrupted topic creation", c->data_dir, name);
    return remove_tree_at(c->topics_fd, name, 0);
}

/* Reads and checks tfd/topic.meta of topic directory name into t. */
static int load_meta(struct catalog *c, int tfd, const char *name, struct catalog_topic *t)
{
    int fd = openat(tfd, META_NAME, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        int rc = -errno;
        if (rc != -ENOENT) {
            log_error("catalog %s: cannot open topics/%s/" META_NAME ": %s", c->data_dir, name,
                      err_str(rc));
        }
        return rc;
    }
    char buf[CATALOG_META_BYTES_MAX + 1];
    size_t len = 0;
    int rc = read_upto(fd, buf, sizeof(buf), &len);
    close(fd);
    if (rc != 0) {
        log_error("catalog %s: cannot read topics/%s/" META_NAME ": %s", c->data_dir, name,
                  err_str(rc));
        return rc;
    }
    char why[256];
    rc = catalog_meta_decode(buf, len, t, why, sizeof(why));
    if (rc == 0 && strcmp(t->name, name) != 0) {
        rc = meta_bad(why, sizeof(why), "names topic '%s', not its directory", t->name);
    }
    if (rc != 0) {
        log_error("catalog %s: topics/%s/" META_NAME " is damaged: %s", c->data_dir, name, why);
    }
    return rc;
}

/* Loads topic directory name (an entry of topics/). A loaded topic is
 * appended to c->topics (sorted later); an interrupted creation is removed
 * and adds nothing. */
static int load_entry(struct catalog *c, const char *name)
{
    if (!proto_topic_name_valid(name, strlen(name))) {
        log_error("catalog %s: topics/%s is not a valid topic name; move it away", c->data_dir,
                  name);
        return -NG_ECORRUPT;
    }
    int tfd = openat(c->topics_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (tfd < 0 && (errno == ENOTDIR || errno == ELOOP)) {
        log_error("catalog %s: topics/%s is not a directory; move it away", c->data_dir, name);
        return -NG_ECORRUPT;
    }
    if (tfd < 0) {
        return -errno;
    }
    struct catalog_topic *t = malloc(sizeof(*t));
    int rc = t == NULL ? -ENOMEM : load_meta(c, tfd, name, t);
    if (rc == -ENOENT) {
        rc = handle_no_meta(c, tfd, name);
    } else if (rc == 0 && c->count == PROTO_TOPICS_MAX) {
        log_error("catalog %s: more than %d topics", c->data_dir, PROTO_TOPICS_MAX);
        rc = -NG_ETOOBIG;
    } else if (rc == 0) {
        ring_note_dirent(tfd, META_TMP_NAME, RING_DIRENT_UNLINK); /* power-loss tests */
        if (unlinkat(tfd, META_TMP_NAME, 0) == 0) {
            log_warn("catalog %s: removed a stale topics/%s/" META_TMP_NAME, c->data_dir, name);
        }
        c->topics[c->count++] = t;
        t = NULL;
    }
    free(t);
    close(tfd);
    return rc;
}

static int load_topics(struct catalog *c)
{
    DIR *d = dir_reopen(c->topics_fd);
    if (d == NULL) {
        return -errno;
    }
    int rc = 0;
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (e == NULL) {
            rc = errno == 0 ? 0 : -errno;
            break;
        }
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            rc = load_entry(c, e->d_name);
            if (rc != 0) {
                break;
            }
        }
    }
    closedir(d);
    if (rc == 0 && c->count > 1) {
        qsort(c->topics, c->count, sizeof(c->topics[0]), topic_ptr_cmp);
    }
    return rc;
}

int catalog_open(struct catalog *c, const char *data_dir)
{
    memset(c, 0, sizeof(*c));
    c->data_fd = -1;
    c->topics_fd = -1;
    c->trash_fd = -1;
    c->data_dir = strdup(data_dir);
    c->topics = calloc(PROTO_TOPICS_MAX, sizeof(c->topics[0]));
    struct ring r;
    int rc =
        c->data_dir == NULL || c->topics == NULL ? -ENOMEM : ring_init(&r, CATALOG_RING_ENTRIES);
    if (rc == 0) {
        rc = open_data_dir(c, &r);
        rc = rc == 0 ? open_subdirs(c, &r) : rc;
        ring_fini(&r);
    }
    rc = rc == 0 ? clean_trash(c) : rc;
    rc = rc == 0 ? load_topics(c) : rc;
    if (rc != 0) {
        /* err_str(-NG_ECORRUPT) speaks of segments; say what it means here. */
        log_error("catalog %s: open failed: %s", data_dir,
                  rc == -NG_ECORRUPT ? "damaged topic catalog (reason above)" : err_str(rc));
        catalog_close(c);
        return rc;
    }
    log_info("catalog %s: %" PRIu32 " topics", c->data_dir, c->count);
    return 0;
}

void catalog_close(struct catalog *c)
{
    for (uint32_t i = 0; i < c->count; i++) {
        free(c->topics[i]);
    }
    free(c->topics);
    free(c->data_dir);
    int fds[] = {c->data_fd, c->topics_fd, c->trash_fd};
    for (size_t i = 0; i < ARRAY_LEN(fds); i++) {
        if (fds[i] >= 0) {
            close(fds[i]);
        }
    }
    memset(c, 0, sizeof(*c));
    c->data_fd = -1;
    c->topics_fd = -1;
    c->trash_fd = -1;
}

/* ---- create ---- */

/* Writes and fsyncs topic.meta in the directory dfd, then fsyncs dfd. */
static int write_meta(struct ring *r, int dfd, const struct catalog_topic *t)
{
    char buf[CATALOG_META_BYTES_MAX];
    size_t len = 0;
    int rc = catalog_meta_encode(t->name, t->name_len, &t->cfg, buf, sizeof(buf), &len);
    ASSERT(rc == 0); /* the longest text fits: see CATALOG_META_BYTES_MAX */
    ring_note_dirent(dfd, META_NAME, RING_DIRENT_CREATE); /* power-loss tests (base/ring.h) */
    int fd = openat(dfd, META_NAME, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        return -errno;
    }
    rc = ring_write_all(r, RING_META_WRITE, fd, buf, len, 0);
    rc = rc == 0 ? ring_fsync(r, RING_META_SYNC, fd, false) : rc;
    int crc = close_checked(fd);
    rc = rc == 0 ? crc : rc;
    return rc == 0 ? ring_fsync(r, RING_DIR_SYNC, dfd, false) : rc;
}

/* Builds the topic's directory as trash/<entry>, whole and synced. On error
 * whatever was made is removed (else the next open removes it). */
static int stage_topic(struct catalog *c, struct ring *r, const struct catalog_topic *t,
                       char entry[TRASH_NAME_BYTES])
{
    int rc = -EEXIST;
    for (int i = 0; i < TRASH_NAME_TRIES && rc == -EEXIST; i++) {
        trash_name(c, "new", entry, TRASH_NAME_BYTES);
        ring_note_dirent(c->trash_fd, entry, RING_DIRENT_MKDIR); /* power-loss tests */
        rc = mkdirat(c->trash_fd, entry, 0755) == 0 ? 0 : -errno;
    }
    if (rc != 0) {
        return rc;
    }
    int dfd = openat(c->trash_fd, entry, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    rc = dfd < 0 ? -errno : write_meta(r, dfd, t);
    if (dfd >= 0) {
        close(dfd);
    }
    if (rc != 0) {
        int rrc = remove_tree_at(c->trash_fd, entry, 0);
        if (rrc != 0) {
            log_warn("catalog %s: cannot remove trash/%s: %s (removed on the next open)",
                     c->data_dir, entry, err_str(rrc));
        }
    }
    return rc;
}

/* The rename into topics/ happened but an fsync after it failed: fail the
 * catalog and take the topic back out of topics/ (no more fsyncs). */
static void unpublish(struct catalog *c, const char *name, int rc)
{
    catalog_fail(c, rc, "directory fsync after creating a topic");
    char entry[TRASH_NAME_BYTES];
    int mrc = move_to_trash(c, c->topics_fd, name, "new", entry);
    if (mrc == 0) {
        mrc = remove_tree_at(c->trash_fd, entry, 0);
    }
    if (mrc != 0) {
        log_error("catalog %s: cannot take back topics/%s: %s; it may be back after a "
                  "restart",
                  c->data_dir, name, err_str(mrc));
    }
}

/* Stages the topic, renames it into topics/ and syncs both directories. */
static int create_on_disk(struct catalog *c, const struct catalog_topic *t)
{
    struct ring r;
    int rc = ring_init(&r, CATALOG_RING_ENTRIES);
    if (rc != 0) {
        return rc;
    }
    char entry[TRASH_NAME_BYTES];
    rc = stage_topic(c, &r, t, entry);
    if (rc == 0) {
        rc = rename_noreplace(c->trash_fd, entry, c->topics_fd, t->name);
        if (rc != 0) {
            (void)remove_tree_at(c->trash_fd, entry, 0); /* else the next open does */
        } else {
            rc = ring_fsync(&r, RING_DIR_SYNC, c->topics_fd, false);
            rc = rc == 0 ? ring_fsync(&r, RING_DIR_SYNC, c->trash_fd, false) : rc;
            if (rc != 0) {
                unpublish(c, t->name, rc);
            }
        }
    }
    ring_fini(&r);
    return rc;
}

static int create_check(const struct catalog *c, const char *name, size_t len,
                        const struct topic_config *cfg)
{
    if (c->failed != 0) {
        return -NG_EFAILED;
    }
    if (!proto_topic_name_valid(name, len)) {
        return -NG_EBADNAME;
    }
    if (catalog_config_check(cfg) != 0) {
        return -NG_EBADARG;
    }
    if (catalog_find(c, name, len) != NULL) {
        return -NG_ETOPIC_EXISTS;
    }
    return c->count == PROTO_TOPICS_MAX ? -NG_ETOOBIG : 0;
}

int catalog_create(struct catalog *c, const char *name, size_t len, const struct topic_config *cfg)
{
    int rc = create_check(c, name, len, cfg);
    if (rc != 0) {
        return rc;
    }
    struct catalog_topic *t = malloc(sizeof(*t));
    if (t == NULL) {
        return -ENOMEM;
    }
    memset(t, 0, sizeof(*t));
    memcpy(t->name, name, len);
    t->name[len] = '\0';
    t->name_len = (uint32_t)len;
    t->cfg = *cfg;
    rc = create_on_disk(c, t);
    if (rc != 0) {
        log_error("catalog %s: creating topic %s failed: %s", c->data_dir, t->name, err_str(rc));
        free(t);
        return rc;
    }
    bool found;
    uint32_t i = lower_bound(c, name, len, &found);
    ASSERT(!found);
    memmove(&c->topics[i + 1], &c->topics[i], (c->count - i) * sizeof(c->topics[0]));
    c->topics[i] = t;
    c->count++;
    log_info("catalog %s: created topic %s (%" PRId32 " partitions)", c->data_dir, t->name,
             t->cfg.partitions);
    return 0;
}

/* ---- delete ---- */

static void drop_topic(struct catalog *c, uint32_t i)
{
    ASSERT(i < c->count);
    free(c->topics[i]);
    memmove(&c->topics[i], &c->topics[i + 1], (c->count - i - 1) * sizeof(c->topics[0]));
    c->count--;
    c->topics[c->count] = NULL;
}

/* Renames the topic into trash/ and syncs both directories. */
static int delete_on_disk(struct catalog *c, const char *name, char entry[TRASH_NAME_BYTES],
                          bool *moved)
{
    struct ring r;
    int rc = ring_init(&r, CATALOG_RING_ENTRIES);
    if (rc != 0) {
        return rc;
    }
    rc = move_to_trash(c, c->topics_fd, name, "del", entry);
    *moved = rc == 0;
    if (rc == 0) {
        rc = ring_fsync(&r, RING_DIR_SYNC, c->topics_fd, false);
        rc = rc == 0 ? ring_fsync(&r, RING_DIR_SYNC, c->trash_fd, false) : rc;
        if (rc != 0) {
            catalog_fail(c, rc, "directory fsync after deleting a topic");
        }
    }
    ring_fini(&r);
    return rc;
}

int catalog_delete(struct catalog *c, const char *name, size_t len)
{
    if (c->failed != 0) {
        return -NG_EFAILED;
    }
    if (!proto_topic_name_valid(name, len)) {
        return -NG_EBADNAME;
    }
    bool found;
    uint32_t i = lower_bound(c, name, len, &found);
    if (!found) {
        return -NG_EUNKNOWN_TOPIC;
    }
    char tname[PROTO_TOPIC_NAME_BYTES_MAX + 1];
    memcpy(tname, c->topics[i]->name, sizeof(tname));
    char entry[TRASH_NAME_BYTES];
    bool moved = false;
    int rc = delete_on_disk(c, tname, entry, &moved);
    if (moved) {
        drop_topic(c, i); /* gone from topics/, whether or not durably */
    }
    if (rc != 0) {
        log_error("catalog %s: deleting topic %s failed: %s", c->data_dir, tname, err_str(rc));
        return rc;
    }
    log_info("catalog %s: deleted topic %s", c->data_dir, tname);
    int rrc = remove_tree_at(c->trash_fd, entry, 0);
    if (rrc != 0) {
        log_warn("catalog %s: cannot remove trash/%s: %s (removed on the next open)", c->data_dir,
                 entry, err_str(rrc));
    }
    return 0;
}
