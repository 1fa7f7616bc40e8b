/*
 * broker/users.c — the broker's users (broker/users.h).
 *
 * The file:
 *   nagare-users 1
 *   <name> <mechanism> <iterations> <salt> <StoredKey> <ServerKey>   (base64)
 *   ...
 *   checksum <16 hex digits: XXH3-64 of every byte before this line>
 */
#include "broker/users.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "base/err.h"
#include "base/file.h"
#include "base/ring.h"
#include "broker/names.h"

#define USERS_MAGIC "nagare-users 1\n"

void users_init(struct users *u) { *u = (struct users){.dirfd = -1}; }

void users_close(struct users *u)
{
    if (u->dirfd >= 0) {
        close(u->dirfd);
    }
    free(u->v);
    users_init(u);
}

static const char *user_name_at(const void *table, uint32_t i, size_t *len)
{
    const struct user *v = table;
    *len = strlen(v[i].name);
    return v[i].name;
}

static uint32_t find(const struct users *u, const char *name, bool *found)
{
    return names_lower_bound(u->v, u->count, user_name_at, name, strlen(name), found);
}

const struct scram_cred *users_find(const struct users *u, const char *name, enum scram_mech mech)
{
    bool found = false;
    uint32_t i = find(u, name, &found);
    return found && (u->v[i].mechs & (1u << mech)) ? &u->v[i].cred[mech] : NULL;
}

/* ---- the file's text ---- */

static bool put_b64(char **p, char *end, const uint8_t *in, size_t n);

int users_cred_format(const struct scram_cred *c, char *buf, size_t cap)
{
    size_t kb = scram_key_bytes((enum scram_mech)c->mech);
    char *p = buf, *end = buf + cap;
    int n = snprintf(p, cap, "%u ", c->iterations);
    if (n < 0 || (size_t)n >= cap) {
        return -NG_ENOSPACE;
    }
    p += n;
    if (!put_b64(&p, end, c->salt, c->salt_len) || end - p < 2) {
        return -NG_ENOSPACE;
    }
    *p++ = ' ';
    if (!put_b64(&p, end, c->stored_key, kb) || end - p < 2) {
        return -NG_ENOSPACE;
    }
    *p++ = ' ';
    if (!put_b64(&p, end, c->server_key, kb)) {
        return -NG_ENOSPACE;
    }
    return (int)(p - buf);
}

static bool put_b64(char **p, char *end, const uint8_t *in, size_t n)
{
    int rc = scram_b64_encode(in, n, *p, (size_t)(end - *p));
    if (rc < 0) {
        return false;
    }
    *p += rc;
    return true;
}

int64_t users_encode(const struct users *u, char *buf, size_t cap)
{
    char *p = buf, *end = buf + cap;
    int n = snprintf(p, cap, USERS_MAGIC);
    if (n < 0 || (size_t)n >= cap) {
        return -NG_ENOSPACE;
    }
    p += n;
    for (uint32_t i = 0; i < u->count; i++) {
        for (int m = 0; m < SCRAM_MECH_COUNT; m++) {
            const struct user *us = &u->v[i];
            if ((us->mechs & (1u << m)) == 0) {
                continue;
            }
            n = snprintf(p, (size_t)(end - p), "%s %s ", us->name,
                         scram_mech_name((enum scram_mech)m));
            if (n < 0 || n >= end - p) {
                return -NG_ENOSPACE;
            }
            p += n;
            n = users_cred_format(&us->cred[m], p, (size_t)(end - p));
            if (n < 0 || end - p - n < 2) {
                return -NG_ENOSPACE;
            }
            p += n;
            *p++ = '\n';
        }
    }
    uint64_t sum = XXH3_64bits(buf, (size_t)(p - buf));
    n = snprintf(p, (size_t)(end - p), "checksum %016" PRIx64 "\n", sum);
    if (n < 0 || n >= end - p) {
        return -NG_ENOSPACE;
    }
    return (int64_t)(p + n - buf);
}

/* Splits line[0..len) at spaces into exactly `want` fields. */
static bool split(const char *line, size_t len, const char **f, size_t *fl, int want)
{
    int k = 0;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || line[i] == ' ') {
            if (k == want || i == start) {
                return false;
            }
            f[k] = line + start;
            fl[k++] = i - start;
            start = i + 1;
        }
    }
    return k == want;
}

static bool b64_field(const char *f, size_t fl, uint8_t *out, size_t cap, size_t want_min,
                      size_t want_max, size_t *got)
{
    int n = scram_b64_decode(f, fl, out, cap);
    if (n < 0 || (size_t)n < want_min || (size_t)n > want_max) {
        return false;
    }
    *got = (size_t)n;
    return true;
}

int users_cred_parse(enum scram_mech m, const char *v, size_t len, struct scram_cred *out)
{
    const char *f[4];
    size_t fl[4];
    if (!split(v, len, f, fl, 4) || fl[0] > 9) {
        return -NG_ECORRUPT;
    }
    struct scram_cred c = {.mech = (uint8_t)m};
    for (size_t i = 0; i < fl[0]; i++) {
        if (f[0][i] < '0' || f[0][i] > '9') {
            return -NG_ECORRUPT;
        }
        c.iterations = c.iterations * 10 + (uint32_t)(f[0][i] - '0');
    }
    size_t kb = scram_key_bytes(m), salt_len = 0, n = 0;
    if (c.iterations < SCRAM_ITERATIONS_MIN || c.iterations > SCRAM_ITERATIONS_MAX ||
        !b64_field(f[1], fl[1], c.salt, sizeof(c.salt), 1, SCRAM_SALT_BYTES_MAX, &salt_len) ||
        !b64_field(f[2], fl[2], c.stored_key, sizeof(c.stored_key), kb, kb, &n) ||
        !b64_field(f[3], fl[3], c.server_key, sizeof(c.server_key), kb, kb, &n)) {
        return -NG_ECORRUPT;
    }
    c.salt_len = (uint8_t)salt_len;
    *out = c;
    return 0;
}

/* Reads one credential line into the table being built (sorted, each user
 * and mechanism once). */
static bool parse_line(struct users *t, const char *line, size_t len)
{
    const char *f[3];
    size_t fl[3];
    enum scram_mech m;
    struct scram_cred c;
    /* "<name> <mechanism> <the credential's four fields>" */
    const char *sp1 = memchr(line, ' ', len);
    const char *sp2 = sp1 != NULL ? memchr(sp1 + 1, ' ', len - (size_t)(sp1 + 1 - line)) : NULL;
    if (sp2 == NULL) {
        return false;
    }
    f[0] = line;
    fl[0] = (size_t)(sp1 - line);
    f[1] = sp1 + 1;
    fl[1] = (size_t)(sp2 - f[1]);
    f[2] = sp2 + 1;
    fl[2] = len - (size_t)(f[2] - line);
    if (!scram_user_valid(f[0], fl[0]) || scram_mech_parse(f[1], fl[1], &m) != 0 ||
        users_cred_parse(m, f[2], fl[2], &c) != 0) {
        return false;
    }
    char name[SCRAM_USER_BYTES_MAX + 1];
    memcpy(name, f[0], fl[0]);
    name[fl[0]] = '\0';
    struct user *last = t->count > 0 ? &t->v[t->count - 1] : NULL;
    int cmp = last != NULL ? names_cmp(last->name, strlen(last->name), name, fl[0]) : -1;
    if (cmp > 0 || (cmp == 0 && (last->mechs & (1u << m)))) {
        return false; /* out of order, or twice */
    }
    if (cmp < 0) {
        if (t->count == t->cap) {
            return false; /* more lines than the cap sized from the file's */
        }
        last = &t->v[t->count++];
        memset(last, 0, sizeof(*last));
        memcpy(last->name, name, fl[0] + 1);
    }
    last->mechs |= (uint8_t)(1u << m);
    last->cred[m] = c;
    return true;
}

int users_decode(struct users *u, const char *buf, size_t len)
{
    size_t magic = sizeof(USERS_MAGIC) - 1;
    if (len < magic || memcmp(buf, USERS_MAGIC, magic) != 0 || buf[len - 1] != '\n') {
        return -NG_ECORRUPT;
    }
    uint32_t lines = 0;
    for (size_t i = magic; i < len; i++) {
        lines += buf[i] == '\n';
    }
    if (lines == 0 || lines - 1 > (uint32_t)USERS_MAX * SCRAM_MECH_COUNT) {
        return -NG_ECORRUPT;
    }
    struct users t = {.dirfd = -1, .cap = lines - 1};
    t.v = t.cap > 0 ? calloc(t.cap, sizeof(*t.v)) : NULL;
    if (t.cap > 0 && t.v == NULL) {
        return -ENOMEM;
    }
    size_t pos = magic;
    int rc = 0;
    for (uint32_t l = 0; l + 1 < lines && rc == 0; l++) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        rc = parse_line(&t, buf + pos, (size_t)(nl - (buf + pos))) ? 0 : -NG_ECORRUPT;
        pos = (size_t)(nl - buf) + 1;
    }
    char want[64];
    snprintf(want, sizeof(want), "checksum %016" PRIx64 "\n", XXH3_64bits(buf, pos));
    if (rc == 0 && (len - pos != strlen(want) || memcmp(buf + pos, want, len - pos) != 0)) {
        rc = -NG_ECORRUPT;
    }
    if (rc != 0 || t.count > USERS_MAX) {
        free(t.v);
        return rc != 0 ? rc : -NG_ECORRUPT;
    }
    free(u->v);
    u->v = t.v;
    u->count = t.count;
    u->cap = t.cap;
    return 0;
}

/* ---- the file ---- */

int users_open(struct users *u, const char *data_dir)
{
    users_init(u);
    u->dirfd = open(data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (u->dirfd < 0) {
        return -errno;
    }
    int fd = openat(u->dirfd, USERS_FILE, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return errno == ENOENT ? 0 : -errno;
    }
    struct stat st;
    int rc = fstat(fd, &st) != 0 ? -errno : 0;
    if (rc == 0 && ((uint64_t)st.st_size > USERS_FILE_BYTES_MAX || st.st_size == 0)) {
        rc = -NG_ECORRUPT;
    }
    char *buf = rc == 0 ? malloc((size_t)st.st_size) : NULL;
    if (rc == 0 && buf == NULL) {
        rc = -ENOMEM;
    }
    rc = rc == 0 ? file_pread_all(fd, buf, (size_t)st.st_size, 0) : rc;
    rc = rc == 0 ? users_decode(u, buf, (size_t)st.st_size) : rc;
    free(buf);
    close(fd);
    return rc;
}

/* Writes the table durably, when it is kept on disk. */
static int users_save(const struct users *u)
{
    if (u->dirfd < 0) {
        return 0;
    }
    size_t cap = (size_t)u->count * SCRAM_MECH_COUNT * USERS_LINE_BYTES_MAX + 256;
    char *buf = malloc(cap);
    if (buf == NULL) {
        return -ENOMEM;
    }
    int64_t len = users_encode(u, buf, cap);
    ASSERT(len > 0); /* sized for the longest lines */
    struct ring r;
    int rc = ring_init(&r, 4);
    if (rc == 0) {
        rc = ring_replace_file(&r, u->dirfd, USERS_FILE_TMP, USERS_FILE, buf, (size_t)len);
        ring_fini(&r);
    }
    free(buf);
    return rc;
}

/* The user name's index, added (no credential yet) when new; *added says
 * which. Returns 0, -NG_ETOOBIG, -ENOMEM. */
static int user_slot(struct users *u, const char *name, uint32_t *index, bool *added)
{
    bool found = false;
    uint32_t i = find(u, name, &found);
    *index = i;
    *added = !found;
    if (found) {
        return 0;
    }
    if (u->count == USERS_MAX) {
        return -NG_ETOOBIG;
    }
    if (u->count == u->cap) {
        uint32_t cap = u->cap < 16 ? 16 : u->cap * 2;
        cap = cap > USERS_MAX ? USERS_MAX : cap;
        struct user *v = realloc(u->v, cap * sizeof(*v));
        if (v == NULL) {
            return -ENOMEM;
        }
        u->v = v;
        u->cap = cap;
    }
    memmove(&u->v[i + 1], &u->v[i], (u->count - i) * sizeof(*u->v));
    memset(&u->v[i], 0, sizeof(u->v[i]));
    memcpy(u->v[i].name, name, strlen(name) + 1);
    u->count++;
    return 0;
}

int users_set(struct users *u, const char *name, const struct scram_cred *cred)
{
    ASSERT(cred->mech < SCRAM_MECH_COUNT);
    if (!scram_user_valid(name, strlen(name))) {
        return -NG_EBADNAME;
    }
    uint32_t i;
    bool added;
    int rc = user_slot(u, name, &i, &added);
    if (rc == 0) {
        u->v[i].mechs |= (uint8_t)(1u << cred->mech);
        u->v[i].cred[cred->mech] = *cred;
    }
    return rc;
}

int users_upsert(struct users *u, const char *name, const struct scram_cred *cred)
{
    ASSERT(cred->mech < SCRAM_MECH_COUNT);
    if (!scram_user_valid(name, strlen(name))) {
        return -NG_EBADNAME;
    }
    uint32_t i;
    bool added;
    int rc = user_slot(u, name, &i, &added);
    if (rc != 0) {
        return rc;
    }
    struct user before = u->v[i];
    u->v[i].mechs |= (uint8_t)(1u << cred->mech);
    u->v[i].cred[cred->mech] = *cred;
    rc = users_save(u);
    if (rc != 0 && !added) {
        u->v[i] = before;
    } else if (rc != 0) {
        memmove(&u->v[i], &u->v[i + 1], (u->count - i - 1) * sizeof(*u->v));
        u->count--;
    }
    return rc;
}

int users_delete(struct users *u, const char *name, int mech)
{
    ASSERT(mech < SCRAM_MECH_COUNT);
    bool found = false;
    uint32_t i = find(u, name, &found);
    uint8_t drop = mech < 0 ? (uint8_t)((1u << SCRAM_MECH_COUNT) - 1) : (uint8_t)(1u << mech);
    if (!found || (u->v[i].mechs & drop) == 0) {
        return -NG_ENOTFOUND;
    }
    struct user before = u->v[i];
    u->v[i].mechs &= (uint8_t)~drop;
    bool gone = u->v[i].mechs == 0;
    if (gone) {
        memmove(&u->v[i], &u->v[i + 1], (u->count - i - 1) * sizeof(*u->v));
        u->count--;
    }
    int rc = users_save(u);
    if (rc != 0 && gone) {
        memmove(&u->v[i + 1], &u->v[i], (u->count - i) * sizeof(*u->v));
        u->count++;
    }
    if (rc != 0) {
        u->v[i] = before;
    }
    return rc;
}

int users_add_offline(const char *data_dir, const char *name, const char *password)
{
    if (!scram_user_valid(name, strlen(name))) {
        return -NG_EBADNAME;
    }
    if (mkdir(data_dir, 0755) != 0 && errno != EEXIST) {
        return -errno; /* a new broker's first user: the directory it will use */
    }
    char path[4200];
    snprintf(path, sizeof(path), "%s/.lock", data_dir);
    int lock = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock < 0) {
        return -errno;
    }
    int rc = flock(lock, LOCK_EX | LOCK_NB) != 0 ? -errno : 0;
    struct users u;
    users_init(&u);
    rc = rc == 0 ? users_open(&u, data_dir) : rc;
    for (int m = 0; m < SCRAM_MECH_COUNT && rc == 0; m++) {
        struct scram_cred cred;
        rc = scram_cred_make((enum scram_mech)m, password, strlen(password), NULL, 0,
                             SCRAM_ITERATIONS_MIN, &cred);
        rc = rc == 0 ? users_upsert(&u, name, &cred) : rc;
        explicit_bzero(&cred, sizeof(cred));
    }
    users_close(&u);
    close(lock);
    return rc;
}
