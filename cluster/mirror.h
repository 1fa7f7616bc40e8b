/*
 * cluster/mirror.h — the session's copy of its etcd prefix: every key under
 * /<cluster_name>/ (without that prefix) with its value and revisions, as
 * the last full read and the watch events after it left them, and the
 * cluster views built from it.
 *
 * Contract:
 * - Keys are kept sorted bytewise (strcmp), so each kind of record
 *   (brokers/, topics/, partitions/<t>/, reassign/) is one run of entries
 *   that mirror_lower_bound() finds.
 * - The mirror holds bytes as etcd had them, good or bad; records are
 *   decoded (and bad ones skipped) only when a view is built, so a bad
 *   record never enters a view.
 * - Owned by one thread (the cluster thread); no locking.
 */
#ifndef NAGARE_CLUSTER_MIRROR_H
#define NAGARE_CLUSTER_MIRROR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/assert.h"
#include "cluster/state.h"

struct mirror_kv {
    char *key; /* NUL-terminated, without the prefix */
    char *value;
    size_t value_len;
    int64_t create_revision;
    int64_t mod_revision;
};

struct mirror {
    struct mirror_kv *kvs; /* sorted by key */
    size_t count;
    size_t cap;
    int64_t revision; /* the newest revision applied */
};

void mirror_init(struct mirror *m);
/* Frees every entry; m is empty (revision 0) and may be used again. */
void mirror_clear(struct mirror *m);

/* Inserts or replaces key (its bytes are copied). 0 or -ENOMEM (m is then
 * unchanged). Raises m->revision to mod_revision. */
MUST_USE int mirror_put(struct mirror *m, const char *key, const char *value, size_t value_len,
                        int64_t create_revision, int64_t mod_revision);
/* Removes key if present; raises m->revision to revision. */
void mirror_delete(struct mirror *m, const char *key, int64_t revision);

const struct mirror_kv *mirror_get(const struct mirror *m, const char *key);
/* The index of the first entry whose key is >= key (m->count if none). */
size_t mirror_lower_bound(const struct mirror *m, const char *key);
/* Whether entry i's key starts with prefix. */
bool mirror_has_prefix(const struct mirror *m, size_t i, const char *prefix);

/* Builds the view of m: its live brokers (brokers/<id> whose record names
 * the same id), the controller and its epoch, each topic whose record
 * and every partition record are good (a topic still being created, or
 * with a bad record, is left out until it is whole), and the users'
 * credentials (users/<user>/<mechanism>), and the ACLs (acls/<key>).
 * view->fenced is false. 0 with *out set (the caller owns it), or -ENOMEM. */
MUST_USE int mirror_view(const struct mirror *m, struct cluster_view **out);

/* Parses a decimal id or index ("0", "17"; no sign, no leading zero) in
 * 0..max. */
MUST_USE int mirror_parse_index(const char *s, int64_t max, int32_t *out);

#endif
