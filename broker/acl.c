/*
 * broker/acl.c — ACLs, the decision and their store (broker/acl.h).
 */
#include "broker/acl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "base/bytes.h"
#include "base/err.h"
#include "base/file.h"
#include "base/ring.h"

#define PRINCIPAL_PREFIX "User:"
#define PRINCIPAL_PREFIX_LEN (sizeof(PRINCIPAL_PREFIX) - 1)

/* ---- the model ---- */

bool acl_principal_valid(const char *p, size_t len)
{
    if (len <= PRINCIPAL_PREFIX_LEN || len >= PRINCIPAL_BYTES_MAX ||
        memcmp(p, PRINCIPAL_PREFIX, PRINCIPAL_PREFIX_LEN) != 0) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c <= ' ' || c == ',' || c == 0x7f) {
            return false;
        }
    }
    return true;
}

/* Copies s into buf (cap bytes, NUL included) when it is 1..cap-1 bytes
 * without a NUL (which would cut the name short where it is kept). */
static bool str_take(struct proto_str s, char *buf, size_t cap)
{
    return s.len > 0 && memchr(s.ptr, '\0', (size_t)s.len) == NULL &&
           proto_str_copy(s, buf, cap) == 0;
}

static bool op_real(int8_t op)
{
    return op >= PROTO_ACL_OP_ALL && op <= PROTO_ACL_OP_IDEMPOTENT_WRITE;
}

int acl_from_proto(const struct proto_acl *in, struct acl *out, const char **why)
{
    *out = (struct acl){.resource_type = in->resource_type,
                        .pattern_type = in->pattern_type,
                        .operation = in->operation,
                        .permission = in->permission};
    const char *bad = NULL;
    if (in->resource_type != PROTO_ACL_RESOURCE_TOPIC &&
        in->resource_type != PROTO_ACL_RESOURCE_GROUP &&
        in->resource_type != PROTO_ACL_RESOURCE_CLUSTER) {
        bad = "resource type must be topic, group or cluster";
    } else if (in->pattern_type != PROTO_ACL_PATTERN_LITERAL &&
               in->pattern_type != PROTO_ACL_PATTERN_PREFIXED) {
        bad = "pattern type must be literal or prefixed";
    } else if (!op_real(in->operation)) {
        bad = "unknown operation (any is for filters)";
    } else if (in->permission != PROTO_ACL_PERMISSION_ALLOW &&
               in->permission != PROTO_ACL_PERMISSION_DENY) {
        bad = "permission must be allow or deny";
    } else if (!str_take(in->name, out->name, sizeof(out->name))) {
        bad = "resource name empty, longer than 249 bytes, or with a NUL";
    } else if (in->resource_type == PROTO_ACL_RESOURCE_CLUSTER &&
               (in->pattern_type != PROTO_ACL_PATTERN_LITERAL ||
                strcmp(out->name, PROTO_ACL_CLUSTER_NAME) != 0)) {
        bad = "a cluster ACL names the cluster literally: " PROTO_ACL_CLUSTER_NAME;
    } else if (in->principal.len <= 0 ||
               !acl_principal_valid(in->principal.ptr, (size_t)in->principal.len) ||
               !str_take(in->principal, out->principal, sizeof(out->principal))) {
        bad = "principal must be User:NAME (or User:*), without blanks or commas";
    } else if (!str_take(in->host, out->host, sizeof(out->host))) {
        bad = "host empty, too long, or with a NUL";
    }
    if (bad != NULL) {
        if (why != NULL) {
            *why = bad;
        }
        return -NG_EBADARG;
    }
    return 0;
}

void acl_to_proto(const struct acl *a, struct proto_acl *out)
{
    *out = (struct proto_acl){.resource_type = a->resource_type,
                              .pattern_type = a->pattern_type,
                              .name = proto_str_make(a->name),
                              .principal = proto_str_make(a->principal),
                              .host = proto_str_make(a->host),
                              .operation = a->operation,
                              .permission = a->permission};
}

static bool str_fits(struct proto_str s, size_t cap) { return s.len < 0 || (size_t)s.len < cap; }

int acl_filter_check(const struct proto_acl *f)
{
    bool ok = proto_acl_name(PROTO_ACL_VOCAB_RESOURCE, f->resource_type) != NULL &&
              proto_acl_name(PROTO_ACL_VOCAB_PATTERN, f->pattern_type) != NULL &&
              proto_acl_name(PROTO_ACL_VOCAB_OP, f->operation) != NULL &&
              proto_acl_name(PROTO_ACL_VOCAB_PERMISSION, f->permission) != NULL &&
              str_fits(f->name, ACL_NAME_BYTES_MAX + 1) &&
              str_fits(f->principal, PRINCIPAL_BYTES_MAX) && str_fits(f->host, ACL_HOST_BYTES);
    return ok ? 0 : -NG_EBADARG;
}

static bool str_is(struct proto_str s, const char *c) { return s.len < 0 || proto_str_eq(s, c); }

/* Whether the pattern (type, pat) covers the resource name. */
static bool pattern_covers(int8_t pattern_type, const char *pat, const char *name, size_t len)
{
    size_t n = strlen(pat);
    if (pattern_type == PROTO_ACL_PATTERN_PREFIXED) {
        return n <= len && memcmp(pat, name, n) == 0;
    }
    return strcmp(pat, PROTO_ACL_WILDCARD) == 0 || (n == len && memcmp(pat, name, n) == 0);
}

bool acl_filter_matches(const struct proto_acl *f, const struct acl *a)
{
    if ((f->resource_type != PROTO_ACL_RESOURCE_ANY && f->resource_type != a->resource_type) ||
        (f->operation != PROTO_ACL_OP_ANY && f->operation != a->operation) ||
        (f->permission != PROTO_ACL_PERMISSION_ANY && f->permission != a->permission) ||
        !str_is(f->principal, a->principal) || !str_is(f->host, a->host)) {
        return false;
    }
    switch (f->pattern_type) {
    case PROTO_ACL_PATTERN_ANY:
        return str_is(f->name, a->name);
    case PROTO_ACL_PATTERN_MATCH:
        return f->name.len < 0 ||
               pattern_covers(a->pattern_type, a->name, f->name.ptr, (size_t)f->name.len);
    default:
        return f->pattern_type == a->pattern_type && str_is(f->name, a->name);
    }
}

/* Whether an allow of acl_op permits op (Kafka's implied operations). */
static bool op_implies(int8_t acl_op, int8_t op)
{
    if (acl_op == op || acl_op == PROTO_ACL_OP_ALL) {
        return true;
    }
    if (op == PROTO_ACL_OP_DESCRIBE) {
        return acl_op == PROTO_ACL_OP_READ || acl_op == PROTO_ACL_OP_WRITE ||
               acl_op == PROTO_ACL_OP_DELETE || acl_op == PROTO_ACL_OP_ALTER;
    }
    return op == PROTO_ACL_OP_DESCRIBE_CONFIGS && acl_op == PROTO_ACL_OP_ALTER_CONFIGS;
}

/* Whether a names who (principal and host). */
static bool acl_for(const struct acl *a, const struct acl_who *who)
{
    return (strcmp(a->principal, PROTO_ACL_ANY_USER) == 0 ||
            strcmp(a->principal, who->principal) == 0) &&
           (strcmp(a->host, PROTO_ACL_WILDCARD) == 0 ||
            (who->host[0] != '\0' && strcmp(a->host, who->host) == 0));
}

bool acl_matches(const struct acl *a, const struct acl_who *who, int8_t resource_type,
                 const char *name, size_t name_len, int8_t op)
{
    bool op_ok = a->permission == PROTO_ACL_PERMISSION_DENY
                     ? a->operation == op || a->operation == PROTO_ACL_OP_ALL
                     : op_implies(a->operation, op);
    return op_ok && a->resource_type == resource_type && acl_for(a, who) &&
           pattern_covers(a->pattern_type, a->name, name, name_len);
}

/* ---- the decision ---- */

static bool super_user(const struct acl_store *st, const char *principal)
{
    for (uint32_t i = 0; i < st->super_count; i++) {
        if (strcmp(st->supers[i], principal) == 0) {
            return true;
        }
    }
    return false;
}

bool acl_authorized(const struct acl_store *st, const struct acl_who *who, int8_t resource_type,
                    const char *name, size_t name_len, int8_t op)
{
    ASSERT(resource_type == PROTO_ACL_RESOURCE_TOPIC || resource_type == PROTO_ACL_RESOURCE_GROUP ||
           resource_type == PROTO_ACL_RESOURCE_CLUSTER);
    ASSERT(op_real(op) && op != PROTO_ACL_OP_ALL);
    if (!st->enabled || super_user(st, who->principal)) {
        return true;
    }
    bool allowed = false;
    for (uint32_t i = 0; i < st->count; i++) {
        const struct acl *a = &st->acls[i];
        if (acl_matches(a, who, resource_type, name, name_len, op)) {
            if (a->permission == PROTO_ACL_PERMISSION_DENY) {
                return false;
            }
            allowed = true;
        }
    }
    return allowed;
}

bool acl_authorized_any(const struct acl_store *st, const struct acl_who *who, int8_t resource_type,
                        int8_t op)
{
    if (!st->enabled || super_user(st, who->principal)) {
        return true;
    }
    bool allowed = false;
    for (uint32_t i = 0; i < st->count; i++) {
        const struct acl *a = &st->acls[i];
        if (a->resource_type != resource_type || !acl_for(a, who)) {
            continue;
        }
        if (a->permission == PROTO_ACL_PERMISSION_DENY) {
            bool everywhere = a->pattern_type == PROTO_ACL_PATTERN_LITERAL &&
                              strcmp(a->name, PROTO_ACL_WILDCARD) == 0;
            if (everywhere && (a->operation == op || a->operation == PROTO_ACL_OP_ALL)) {
                return false;
            }
        } else if (op_implies(a->operation, op)) {
            allowed = true;
        }
    }
    return allowed;
}

/* ---- the file ---- */

#define FILE_MAGIC 0x4e41434cu /* "NACL" */
#define FILE_VERSION 1
#define FILE_HEAD_BYTES 10 /* magic, u16 version, u32 count */
#define FILE_TAIL_BYTES 8  /* XXH3-64 */
#define ENTRY_BYTES_MIN 10 /* four codes, three u16 lengths */

size_t acl_file_bytes(const struct acl *acls, uint32_t n)
{
    size_t bytes = FILE_HEAD_BYTES + FILE_TAIL_BYTES;
    for (uint32_t i = 0; i < n; i++) {
        bytes += ENTRY_BYTES_MIN + strlen(acls[i].name) + strlen(acls[i].principal) +
                 strlen(acls[i].host);
    }
    return bytes;
}

static void wr_str16(struct wr *w, const char *s)
{
    size_t n = strlen(s);
    wr_be16(w, (uint16_t)n);
    wr_bytes(w, s, n);
}

size_t acl_file_encode(const struct acl *acls, uint32_t n, uint8_t *buf, size_t cap)
{
    ASSERT(cap >= acl_file_bytes(acls, n));
    struct wr w = wr_make(buf, cap);
    wr_be32(&w, FILE_MAGIC);
    wr_be16(&w, FILE_VERSION);
    wr_be32(&w, n);
    for (uint32_t i = 0; i < n; i++) {
        const struct acl *a = &acls[i];
        wr_u8(&w, (uint8_t)a->resource_type);
        wr_u8(&w, (uint8_t)a->pattern_type);
        wr_u8(&w, (uint8_t)a->operation);
        wr_u8(&w, (uint8_t)a->permission);
        wr_str16(&w, a->name);
        wr_str16(&w, a->principal);
        wr_str16(&w, a->host);
    }
    wr_be64(&w, XXH3_64bits(buf, w.pos));
    ASSERT(w.err == 0);
    return w.pos;
}

/* A u16-length string, its length checked against the bytes left (the
 * reader's) and its limit (cap, NUL included). */
static struct proto_str rd_str16(struct rd *r, size_t cap)
{
    uint16_t n = rd_be16(r);
    if (r->err == 0 && n >= cap) {
        rd_fail(r, -NG_ECORRUPT);
    }
    const uint8_t *p = rd_take(r, n);
    return p != NULL ? (struct proto_str){.ptr = (const char *)p, .len = n} : PROTO_STR_NULL;
}

/* One entry at r into out, checked as a client's ACL would be. */
static int decode_entry(struct rd *r, struct acl *out)
{
    struct proto_acl p = {0};
    p.resource_type = (int8_t)rd_u8(r);
    p.pattern_type = (int8_t)rd_u8(r);
    p.operation = (int8_t)rd_u8(r);
    p.permission = (int8_t)rd_u8(r);
    p.name = rd_str16(r, ACL_NAME_BYTES_MAX + 1);
    p.principal = rd_str16(r, PRINCIPAL_BYTES_MAX);
    p.host = rd_str16(r, ACL_HOST_BYTES);
    if (r->err != 0) {
        return -NG_ECORRUPT;
    }
    return acl_from_proto(&p, out, NULL) == 0 ? 0 : -NG_ECORRUPT;
}

int acl_file_decode(const uint8_t *buf, size_t len, struct acl **acls_out, uint32_t *n_out)
{
    *acls_out = NULL;
    *n_out = 0;
    if (len < FILE_HEAD_BYTES + FILE_TAIL_BYTES ||
        get_be64(buf + len - FILE_TAIL_BYTES) != XXH3_64bits(buf, len - FILE_TAIL_BYTES)) {
        return -NG_ECORRUPT;
    }
    struct rd r = rd_make(buf, len - FILE_TAIL_BYTES);
    if (rd_be32(&r) != FILE_MAGIC) {
        return -NG_ECORRUPT;
    }
    if (rd_be16(&r) != FILE_VERSION) {
        return -NG_EBADVERSION;
    }
    uint32_t n = rd_be32(&r);
    if (n > ACL_COUNT_MAX) {
        return -NG_ETOOBIG;
    }
    if ((size_t)n * ENTRY_BYTES_MIN > rd_left(&r)) {
        return -NG_ECORRUPT;
    }
    struct acl *acls = n > 0 ? calloc(n, sizeof(*acls)) : NULL;
    if (n > 0 && acls == NULL) {
        return -ENOMEM;
    }
    int rc = 0;
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        rc = decode_entry(&r, &acls[i]);
    }
    if (rc == 0 && rd_left(&r) != 0) {
        rc = -NG_ECORRUPT; /* trailing bytes */
    }
    if (rc != 0) {
        free(acls);
        return rc;
    }
    *acls_out = acls;
    *n_out = n;
    return 0;
}

/* ---- the store ---- */

static int parse_supers(struct acl_store *st, const char *list)
{
    const char *p = list;
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
        if (!acl_principal_valid(p, n) || st->super_count == ACL_SUPER_USERS_MAX) {
            return -NG_EBADARG;
        }
        memcpy(st->supers[st->super_count], p, n);
        st->supers[st->super_count][n] = '\0';
        st->super_count++;
        p += n + (end != NULL ? 1 : 0);
        if (end != NULL && *p == '\0') {
            return -NG_EBADARG; /* a trailing comma */
        }
    }
    return 0;
}

/* Reads ACL_FILE in st->dirfd. */
static int load_file(struct acl_store *st)
{
    int fd = openat(st->dirfd, ACL_FILE, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return errno == ENOENT ? 0 : -errno;
    }
    struct stat sb;
    int rc = fstat(fd, &sb) != 0 ? -errno : 0;
    /* The largest file the store can write: every ACL at its longest. */
    size_t limit = FILE_HEAD_BYTES + FILE_TAIL_BYTES +
                   (size_t)ACL_COUNT_MAX * (ENTRY_BYTES_MIN + ACL_NAME_BYTES_MAX +
                                            PRINCIPAL_BYTES_MAX + ACL_HOST_BYTES);
    if (rc == 0 && (uint64_t)sb.st_size > limit) {
        rc = -NG_ECORRUPT;
    }
    uint8_t *buf = rc == 0 ? malloc((size_t)sb.st_size + 1) : NULL;
    if (rc == 0 && buf == NULL) {
        rc = -ENOMEM;
    }
    rc = rc == 0 ? file_pread_all(fd, buf, (size_t)sb.st_size, 0) : rc;
    close(fd);
    if (rc == 0) {
        rc = acl_file_decode(buf, (size_t)sb.st_size, &st->acls, &st->count);
    }
    free(buf);
    return rc;
}

int acl_store_open(struct acl_store *st, const char *data_dir, bool enabled,
                   const char *super_users)
{
    memset(st, 0, sizeof(*st));
    st->dirfd = -1;
    st->enabled = enabled;
    int rc = parse_supers(st, super_users);
    if (rc == 0 && data_dir != NULL) {
        st->dirfd = open(data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        rc = st->dirfd < 0 ? -errno : load_file(st);
    }
    if (rc != 0) {
        acl_store_close(st);
    }
    return rc;
}

void acl_store_close(struct acl_store *st)
{
    if (st->dirfd >= 0) {
        close(st->dirfd);
    }
    free(st->acls);
    memset(st, 0, sizeof(*st));
    st->dirfd = -1;
}

/* Writes acls[0..n) as the file, durably. */
static int write_file(const struct acl_store *st, const struct acl *acls, uint32_t n)
{
    if (st->dirfd < 0) {
        return 0;
    }
    size_t bytes = acl_file_bytes(acls, n);
    uint8_t *buf = malloc(bytes);
    if (buf == NULL) {
        return -ENOMEM;
    }
    size_t len = acl_file_encode(acls, n, buf, bytes);
    struct ring r;
    int rc = ring_init(&r, 4);
    if (rc == 0) {
        rc = ring_replace_file(&r, st->dirfd, ACL_FILE_TMP, ACL_FILE, buf, len);
        ring_fini(&r);
    }
    free(buf);
    return rc;
}

static bool acl_equal(const struct acl *a, const struct acl *b)
{
    return a->resource_type == b->resource_type && a->pattern_type == b->pattern_type &&
           a->operation == b->operation && a->permission == b->permission &&
           strcmp(a->name, b->name) == 0 && strcmp(a->principal, b->principal) == 0 &&
           strcmp(a->host, b->host) == 0;
}

static bool held(const struct acl *acls, uint32_t n, const struct acl *a)
{
    for (uint32_t i = 0; i < n; i++) {
        if (acl_equal(&acls[i], a)) {
            return true;
        }
    }
    return false;
}

int acl_store_add(struct acl_store *st, const struct acl *in, uint32_t n)
{
    if (n > ACL_COUNT_MAX) {
        return -NG_ETOOBIG;
    }
    /* The new list is built aside: st changes only once the file has it. */
    struct acl *next = malloc(((size_t)st->count + n + 1) * sizeof(*next));
    if (next == NULL) {
        return -ENOMEM;
    }
    if (st->count > 0) {
        memcpy(next, st->acls, st->count * sizeof(*next));
    }
    uint32_t count = st->count;
    for (uint32_t i = 0; i < n; i++) {
        if (!held(next, count, &in[i])) {
            next[count++] = in[i];
        }
    }
    int rc = count > ACL_COUNT_MAX ? -NG_ETOOBIG : 0;
    rc = rc == 0 && count != st->count ? write_file(st, next, count) : rc;
    if (rc != 0) {
        free(next);
        return rc;
    }
    free(st->acls);
    st->acls = next;
    st->count = count;
    return 0;
}

void acl_store_replace(struct acl_store *st, struct acl *acls, uint32_t n)
{
    ASSERT(st->dirfd < 0 && n <= ACL_COUNT_MAX && (acls != NULL || n == 0));
    free(st->acls);
    st->acls = acls;
    st->count = n;
}

static_assert(ACL_REC_BYTES_MAX == FILE_HEAD_BYTES + FILE_TAIL_BYTES + ENTRY_BYTES_MIN +
                                       ACL_NAME_BYTES_MAX + (PRINCIPAL_BYTES_MAX - 1) +
                                       (ACL_HOST_BYTES - 1),
              "a record holds an ACL at its longest");

size_t acl_rec_encode(const struct acl *a, uint8_t *buf, size_t cap, char key[ACL_REC_KEY_BYTES])
{
    ASSERT(cap >= ACL_REC_BYTES_MAX);
    size_t len = acl_file_encode(a, 1, buf, cap);
    XXH128_hash_t h = XXH3_128bits(buf, len);
    int n = snprintf(key, ACL_REC_KEY_BYTES, "%016llx%016llx", (unsigned long long)h.high64,
                     (unsigned long long)h.low64);
    ASSERT(n == ACL_REC_KEY_BYTES - 1);
    return len;
}

int acl_rec_decode(const uint8_t *buf, size_t len, struct acl *out)
{
    struct acl *acls = NULL;
    uint32_t n = 0;
    int rc = acl_file_decode(buf, len, &acls, &n);
    if (rc == 0 && n != 1) {
        rc = -NG_ECORRUPT;
    }
    if (rc == 0) {
        *out = acls[0];
    }
    free(acls);
    return rc;
}

int acl_store_delete(struct acl_store *st, const struct proto_acl *f, struct acl **removed,
                     uint32_t *removed_count)
{
    *removed = NULL;
    *removed_count = 0;
    struct acl *kept = malloc(((size_t)st->count + 1) * sizeof(*kept));
    struct acl *gone = malloc(((size_t)st->count + 1) * sizeof(*gone));
    if (kept == NULL || gone == NULL) {
        free(kept);
        free(gone);
        return -ENOMEM;
    }
    uint32_t nk = 0;
    uint32_t ng = 0;
    for (uint32_t i = 0; i < st->count; i++) {
        if (acl_filter_matches(f, &st->acls[i])) {
            gone[ng++] = st->acls[i];
        } else {
            kept[nk++] = st->acls[i];
        }
    }
    int rc = ng > 0 ? write_file(st, kept, nk) : 0;
    if (rc != 0 || ng == 0) {
        free(kept);
        free(gone);
        return rc;
    }
    free(st->acls);
    st->acls = kept;
    st->count = nk;
    *removed = gone;
    *removed_count = ng;
    return 0;
}
