/* cluster/mirror.c — the session's sorted copy of its etcd prefix, and the
 * views built from it. */
#include "cluster/mirror.h"

#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "cluster/etcd.h"

void mirror_init(struct mirror *m) { *m = (struct mirror){0}; }

void mirror_clear(struct mirror *m)
{
    for (size_t i = 0; i < m->count; i++) {
        free(m->kvs[i].key);
        free(m->kvs[i].value);
    }
    free(m->kvs);
    mirror_init(m);
}

size_t mirror_lower_bound(const struct mirror *m, const char *key)
{
    size_t lo = 0, hi = m->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(m->kvs[mid].key, key) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

bool mirror_has_prefix(const struct mirror *m, size_t i, const char *prefix)
{
    return i < m->count && strncmp(m->kvs[i].key, prefix, strlen(prefix)) == 0;
}

const struct mirror_kv *mirror_get(const struct mirror *m, const char *key)
{
    size_t i = mirror_lower_bound(m, key);
    return i < m->count && strcmp(m->kvs[i].key, key) == 0 ? &m->kvs[i] : NULL;
}

static void raise_revision(struct mirror *m, int64_t revision)
{
    if (revision > m->revision) {
        m->revision = revision;
    }
}

int mirror_put(struct mirror *m, const char *key, const char *value, size_t value_len,
               int64_t create_revision, int64_t mod_revision)
{
    size_t i = mirror_lower_bound(m, key);
    bool found = i < m->count && strcmp(m->kvs[i].key, key) == 0;
    char *v = malloc(value_len + 1);
    char *k = found ? NULL : strdup(key);
    if (v == NULL || (!found && k == NULL)) {
        free(v);
        free(k);
        return -ENOMEM;
    }
    if (!found && m->count == m->cap) {
        size_t cap = m->cap == 0 ? 64 : m->cap * 2;
        struct mirror_kv *kvs = realloc(m->kvs, cap * sizeof(*kvs));
        if (kvs == NULL) {
            free(v);
            free(k);
            return -ENOMEM;
        }
        m->kvs = kvs;
        m->cap = cap;
    }
    memcpy(v, value, value_len);
    v[value_len] = '\0';
    if (found) {
        free(m->kvs[i].value);
    } else {
        memmove(&m->kvs[i + 1], &m->kvs[i], (m->count - i) * sizeof(*m->kvs));
        m->count++;
        m->kvs[i].key = k;
    }
    m->kvs[i].value = v;
    m->kvs[i].value_len = value_len;
    m->kvs[i].create_revision = create_revision;
    m->kvs[i].mod_revision = mod_revision;
    raise_revision(m, mod_revision);
    return 0;
}

void mirror_delete(struct mirror *m, const char *key, int64_t revision)
{
    raise_revision(m, revision);
    size_t i = mirror_lower_bound(m, key);
    if (i == m->count || strcmp(m->kvs[i].key, key) != 0) {
        return;
    }
    free(m->kvs[i].key);
    free(m->kvs[i].value);
    memmove(&m->kvs[i], &m->kvs[i + 1], (m->count - i - 1) * sizeof(*m->kvs));
    m->count--;
}

int mirror_parse_index(const char *s, int64_t max, int32_t *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > 10 || (n > 1 && s[0] == '0')) {
        return -NG_EBADARG;
    }
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -NG_EBADARG;
        }
        v = v * 10 + (s[i] - '0');
    }
    if (v > max || v > INT32_MAX) {
        return -NG_EBADARG;
    }
    *out = (int32_t)v;
    return 0;
}

/* ---- views ---- */

static int broker_cmp(const void *a, const void *b)
{
    int32_t x = ((const struct cluster_broker *)a)->id, y = ((const struct cluster_broker *)b)->id;
    return (x > y) - (x < y);
}

static int view_brokers(const struct mirror *m, struct cluster_view *v)
{
    size_t first = mirror_lower_bound(m, "brokers/");
    size_t end = first;
    while (mirror_has_prefix(m, end, "brokers/")) {
        end++;
    }
    v->brokers = calloc(end - first + 1, sizeof(*v->brokers));
    if (v->brokers == NULL) {
        return -ENOMEM;
    }
    for (size_t i = first; i < end && v->broker_count < CLUSTER_BROKERS_MAX; i++) {
        const struct mirror_kv *kv = &m->kvs[i];
        struct cluster_broker *b = &v->brokers[v->broker_count];
        int32_t id = 0;
        if (mirror_parse_index(kv->key + strlen("brokers/"), CLUSTER_BROKER_ID_MAX, &id) == 0 &&
            cluster_broker_decode(kv->value, kv->value_len, b) == 0 && b->id == id) {
            b->reg_revision = kv->create_revision;
            v->broker_count++;
        }
    }
    qsort(v->brokers, v->broker_count, sizeof(*v->brokers), broker_cmp);
    return 0;
}

static void view_controller(const struct mirror *m, struct cluster_view *v)
{
    v->controller = -1;
    const struct mirror_kv *c = mirror_get(m, "controller");
    const struct mirror_kv *e = mirror_get(m, "controller_epoch");
    int64_t epoch = 0;
    if (c != NULL &&
        cluster_controller_decode(c->value, c->value_len, &v->controller, &epoch) != 0) {
        v->controller = -1;
    }
    if (e == NULL || cluster_epoch_decode(e->value, e->value_len, &v->controller_epoch) != 0) {
        v->controller_epoch = epoch;
    }
}

/* A reassignment's target for p, when reassign/<topic>/<i> holds a good
 * record (a bad one is the controller's to drop). */
static void view_reassign_target(const struct mirror *m, const char *topic,
                                 struct cluster_partition *p)
{
    char key[ETCD_KEY_BYTES_MAX];
    int n = snprintf(key, sizeof(key), "reassign/%s/%d", topic, (int)p->index);
    ASSERT(n > 0 && (size_t)n < sizeof(key));
    const struct mirror_kv *kv = mirror_get(m, key);
    struct cluster_reassign r;
    p->target_count = 0;
    if (kv != NULL && cluster_reassign_decode(kv->value, kv->value_len, &r) == 0) {
        p->target_count = r.replica_count;
        memcpy(p->target, r.replicas, r.replica_count * sizeof(r.replicas[0]));
    }
}

/* Fills t->parts from partitions/<name>/<i>; true when every one of them
 * is there and good. */
static bool view_partitions(const struct mirror *m, struct cluster_topic *t)
{
    char prefix[ETCD_KEY_BYTES_MAX];
    int n = snprintf(prefix, sizeof(prefix), "partitions/%s/", t->name);
    ASSERT(n > 0 && (size_t)n < sizeof(prefix));
    int32_t found = 0;
    for (size_t i = mirror_lower_bound(m, prefix); mirror_has_prefix(m, i, prefix); i++) {
        const struct mirror_kv *kv = &m->kvs[i];
        int32_t index = 0;
        if (mirror_parse_index(kv->key + n, t->partitions - 1, &index) != 0) {
            continue;
        }
        struct cluster_partition *p = &t->parts[index];
        p->index = index;
        p->mod_revision = kv->mod_revision;
        if (cluster_partition_decode(kv->value, kv->value_len, p) != 0) {
            return false;
        }
        view_reassign_target(m, t->name, p);
        found++;
    }
    return found == t->partitions;
}

static int view_topics(const struct mirror *m, struct cluster_view *v)
{
    size_t first = mirror_lower_bound(m, "topics/");
    size_t end = first;
    while (mirror_has_prefix(m, end, "topics/")) {
        end++;
    }
    v->topics = calloc(end - first + 1, sizeof(*v->topics));
    if (v->topics == NULL) {
        return -ENOMEM;
    }
    for (size_t i = first; i < end; i++) {
        const struct mirror_kv *kv = &m->kvs[i];
        const char *name = kv->key + strlen("topics/");
        struct cluster_topic *t = &v->topics[v->topic_count];
        *t = (struct cluster_topic){.mod_revision = kv->mod_revision};
        if (!proto_topic_name_valid(name, strlen(name)) ||
            cluster_topic_decode(kv->value, kv->value_len, t) != 0) {
            continue;
        }
        memcpy(t->name, name, strlen(name) + 1);
        t->parts = calloc((size_t)t->partitions, sizeof(*t->parts));
        if (t->parts == NULL) {
            return -ENOMEM;
        }
        if (!view_partitions(m, t)) {
            free(t->parts);
            t->parts = NULL;
            continue;
        }
        v->topic_count++;
    }
    return 0;
}

/* users/<user>/<mechanism>: the records whose parts fit their fields,
 * at most CLUSTER_USER_CREDS_MAX, in key order. */
static int view_users(const struct mirror *m, struct cluster_view *v)
{
    size_t first = mirror_lower_bound(m, "users/");
    size_t end = first;
    while (mirror_has_prefix(m, end, "users/")) {
        end++;
    }
    size_t n = end - first < CLUSTER_USER_CREDS_MAX ? end - first : CLUSTER_USER_CREDS_MAX;
    v->user_creds = calloc(n + 1, sizeof(*v->user_creds));
    if (v->user_creds == NULL) {
        return -ENOMEM;
    }
    for (size_t i = first; i < end && v->user_cred_count < n; i++) {
        const struct mirror_kv *kv = &m->kvs[i];
        const char *user = kv->key + strlen("users/");
        const char *slash = strchr(user, '/');
        struct cluster_user_cred *c = &v->user_creds[v->user_cred_count];
        size_t ul = slash != NULL ? (size_t)(slash - user) : 0;
        size_t ml = slash != NULL ? strlen(slash + 1) : 0;
        if (ul == 0 || ul >= sizeof(c->user) || ml == 0 || ml >= sizeof(c->mechanism) ||
            kv->value_len >= sizeof(c->value) || strchr(slash + 1, '/') != NULL) {
            continue;
        }
        memcpy(c->user, user, ul);
        memcpy(c->mechanism, slash + 1, ml);
        memcpy(c->value, kv->value, kv->value_len);
        v->user_cred_count++;
    }
    return 0;
}

/* acls/<key>: the records whose key (no '/') and value fit, at most
 * CLUSTER_ACLS_MAX, in key order. */
static int view_acls(const struct mirror *m, struct cluster_view *v)
{
    size_t first = mirror_lower_bound(m, "acls/");
    size_t end = first;
    while (mirror_has_prefix(m, end, "acls/")) {
        end++;
    }
    size_t n = end - first < CLUSTER_ACLS_MAX ? end - first : CLUSTER_ACLS_MAX;
    v->acl_recs = calloc(n + 1, sizeof(*v->acl_recs));
    if (v->acl_recs == NULL) {
        return -ENOMEM;
    }
    for (size_t i = first; i < end && v->acl_rec_count < n; i++) {
        const struct mirror_kv *kv = &m->kvs[i];
        const char *key = kv->key + strlen("acls/");
        struct cluster_acl_rec *r = &v->acl_recs[v->acl_rec_count];
        size_t kl = strlen(key);
        if (kl == 0 || kl >= sizeof(r->key) || strchr(key, '/') != NULL || kv->value_len == 0 ||
            kv->value_len > sizeof(r->value)) {
            continue;
        }
        memcpy(r->key, key, kl);
        r->value_len = (uint16_t)kv->value_len;
        memcpy(r->value, kv->value, kv->value_len);
        v->acl_rec_count++;
    }
    return 0;
}

int mirror_view(const struct mirror *m, struct cluster_view **out)
{
    struct cluster_view *v = calloc(1, sizeof(*v));
    if (v == NULL) {
        return -ENOMEM;
    }
    v->revision = m->revision;
    view_controller(m, v);
    int rc = view_brokers(m, v);
    rc = rc ? rc : view_topics(m, v);
    rc = rc ? rc : view_users(m, v);
    rc = rc ? rc : view_acls(m, v);
    if (rc != 0) {
        cluster_view_free(v);
        return rc;
    }
    cluster_view_check(v);
    *out = v;
    return 0;
}
