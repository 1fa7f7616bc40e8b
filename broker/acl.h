/*
 * broker/acl.h — authorization: ACLs in Kafka's shape, the decision, and
 * the broker's store of them (docs/security.md, "Authorization").
 *
 * Invariants: every ACL a store holds passed acl_from_proto() (a known
 * resource, pattern, operation and permission; names within their
 * limits), no two are equal, and there are at most ACL_COUNT_MAX. The
 * store's file DATA_DIR/acls holds exactly what the store holds once a
 * change has returned 0: it is replaced whole, atomically and durably
 * (ring_replace_file), before the change is answered or applied.
 *
 * The decision (acl_authorized): with the authorizer off, everything is
 * allowed; a super user is allowed everything; otherwise any ACL that
 * matches and denies refuses, else any that matches and allows permits,
 * else the request is refused (no ACL, no access). READ, WRITE, DELETE and
 * ALTER imply DESCRIBE, ALTER_CONFIGS implies DESCRIBE_CONFIGS and ALL
 * every operation, for allows only, as in Kafka.
 *
 * Threads: a store belongs to the worker's loop thread; the pure
 * functions (acl_from_proto, acl_matches, the file codec) to any.
 */
#ifndef NAGARE_BROKER_ACL_H
#define NAGARE_BROKER_ACL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/assert.h"
#include "broker/conn_auth.h"
#include "net/proto.h"

/* ACLs a broker keeps: as many as one message carries. */
#define ACL_COUNT_MAX PROTO_ACLS_MAX
/* A resource name: a topic's or group's longest (both 249), or the
 * cluster's; a prefix is at most as long as a name. */
#define ACL_NAME_BYTES_MAX PROTO_TOPIC_NAME_BYTES_MAX
/* A host, NUL included: a numeric IPv6 address (INET6_ADDRSTRLEN, 46) as
 * loop_req_peer() gives it, with room for a zone. */
#define ACL_HOST_BYTES 64
/* Super users a broker is configured with (super_users). */
#define ACL_SUPER_USERS_MAX 64

static_assert(PROTO_GROUP_ID_BYTES_MAX <= ACL_NAME_BYTES_MAX, "a group id fits an ACL's name");
static_assert(sizeof(PROTO_ACL_CLUSTER_NAME) - 1 <= ACL_NAME_BYTES_MAX, "the cluster's name fits");

/* The file in the data directory, and its temporary name while replaced. */
#define ACL_FILE "acls"
#define ACL_FILE_TMP "acls.tmp"

struct acl {
    int8_t resource_type; /* PROTO_ACL_RESOURCE_TOPIC, _GROUP or _CLUSTER */
    int8_t pattern_type;  /* PROTO_ACL_PATTERN_LITERAL or _PREFIXED */
    int8_t operation;     /* PROTO_ACL_OP_ALL .. PROTO_ACL_OP_IDEMPOTENT_WRITE */
    int8_t permission;    /* PROTO_ACL_PERMISSION_ALLOW or _DENY */
    char name[ACL_NAME_BYTES_MAX + 1];
    char principal[PRINCIPAL_BYTES_MAX]; /* "User:NAME" or PROTO_ACL_ANY_USER */
    char host[ACL_HOST_BYTES];           /* an address, or PROTO_ACL_WILDCARD */
};

/* Who asks: a request's principal and its connection's address. */
struct acl_who {
    const char *principal;     /* "User:NAME" */
    char host[ACL_HOST_BYTES]; /* "" when the address is unknown: only "*" matches */
};

struct acl_store {
    bool enabled;     /* the authorizer is on */
    int dirfd;        /* the data directory; -1: the store is memory only (tests) */
    struct acl *acls; /* count of them, in the order they were added */
    uint32_t count;
    uint32_t super_count;
    char supers[ACL_SUPER_USERS_MAX][PRINCIPAL_BYTES_MAX];
};

/* ---- the model (pure) ---- */

/* Whether p is a principal an ACL or super_users may name: "User:" and
 * at least one byte, shorter than PRINCIPAL_BYTES_MAX, no control byte,
 * ',' or blank. */
bool acl_principal_valid(const char *p, size_t len);

/* Checks an ACL as a client sends it and copies it into out. Returns 0,
 * or -NG_EBADARG with a reason in *why (static): an unknown or filter-only
 * code (ANY, MATCH), an empty or over-long name, principal or host, a
 * cluster ACL not on PROTO_ACL_CLUSTER_NAME literally. */
MUST_USE int acl_from_proto(const struct proto_acl *in, struct acl *out, const char **why);

/* The ACL as the wire carries it; strings borrow a. */
void acl_to_proto(const struct acl *a, struct proto_acl *out);

/* Checks a DescribeAcls / DeleteAcls filter: known codes (ANY and MATCH
 * allowed), strings within their limits. Returns 0 or -NG_EBADARG. */
MUST_USE int acl_filter_check(const struct proto_acl *f);

/* Whether the filter f selects a (see net/proto.h, "ACLs"). */
bool acl_filter_matches(const struct proto_acl *f, const struct acl *a);

/* Whether a applies to who acting with op on the resource (type, name):
 * its principal, host, resource and pattern match, and its operation is
 * op or ALL, or (for an allow) one that implies op. */
bool acl_matches(const struct acl *a, const struct acl_who *who, int8_t resource_type,
                 const char *name, size_t name_len, int8_t op);

/* ---- the decision ---- */

/* The decision above for who doing op on a resource. Preconditions:
 * resource_type is TOPIC, GROUP or CLUSTER; op is a real operation (not
 * ANY or ALL). */
bool acl_authorized(const struct acl_store *st, const struct acl_who *who, int8_t resource_type,
                    const char *name, size_t name_len, int8_t op);

/* Whether who may do op on some resource of the type (Kafka's
 * authorizeByResourceType, as InitProducerId asks for WRITE on any topic):
 * the authorizer is off, who is a super user, or an ACL of who's allows op
 * there and no ACL of who's denies it on every name ("*" literal, or the
 * empty prefix). */
bool acl_authorized_any(const struct acl_store *st, const struct acl_who *who, int8_t resource_type,
                        int8_t op);

/* ---- the store ---- */

/* Readies st: the authorizer on or off, the super users from a
 * comma-separated list ("" none), the ACLs from data_dir's ACL_FILE (none
 * when it is missing; data_dir NULL: memory only). Returns 0, -NG_EBADARG
 * for a bad super user list, the file's decode error (-NG_ECORRUPT,
 * -NG_EBADVERSION, -NG_ETOOBIG), -ENOMEM, or -errno. On error st holds
 * nothing (acl_store_close() is harmless). */
MUST_USE int acl_store_open(struct acl_store *st, const char *data_dir, bool enabled,
                            const char *super_users);
void acl_store_close(struct acl_store *st);

/* Adds the n ACLs of in (each from acl_from_proto()) that st does not
 * hold yet, and writes the file; all of them or none. Returns 0,
 * -NG_ETOOBIG (past ACL_COUNT_MAX), -ENOMEM, or the write's -errno (st
 * unchanged). Blocking: a file replaced through a private ring. */
MUST_USE int acl_store_add(struct acl_store *st, const struct acl *in, uint32_t n);

/* Deletes every ACL f selects and writes the file. *removed is a copy
 * of them (malloc'd, the caller frees it; NULL when none), *removed_count
 * how many. Returns 0, -ENOMEM, or the write's -errno (st unchanged). */
MUST_USE int acl_store_delete(struct acl_store *st, const struct proto_acl *f, struct acl **removed,
                              uint32_t *removed_count);

/* Replaces st's ACLs with acls[0..n) (malloc'd; st takes it), in memory
 * only: a cluster's store, which follows etcd's ACLs (acl_serve_apply_view)
 * and keeps no file. Preconditions: st->dirfd < 0; each ACL passed
 * acl_from_proto() (or acl_rec_decode()), none twice, n <= ACL_COUNT_MAX. */
void acl_store_replace(struct acl_store *st, struct acl *acls, uint32_t n);

/* ---- one ACL as a cluster keeps it: acls/<key> (docs/cluster.md) ---- */

/* An ACL's record: the file's encoding (below) holding it alone, at most
 * ACL_REC_BYTES_MAX; its key: the hex digits of XXH3-128 of that, so the
 * same ACL added twice is one key, and different ones (at 128 bits) never
 * share one. */
/* head, checksum, codes and lengths; the strings at their longest (NULs not kept) */
#define ACL_REC_BYTES_MAX \
    (10 + 8 + 10 + ACL_NAME_BYTES_MAX + (PRINCIPAL_BYTES_MAX - 1) + (ACL_HOST_BYTES - 1))
#define ACL_REC_KEY_BYTES 33 /* 32 hex digits and a NUL */

/* Writes a's record into buf[0..cap) (cap >= ACL_REC_BYTES_MAX) and its
 * key into key. Returns the record's length. */
size_t acl_rec_encode(const struct acl *a, uint8_t *buf, size_t cap, char key[ACL_REC_KEY_BYTES]);

/* Decodes a record: 0 with *out; -NG_ECORRUPT (not a file of exactly one
 * valid ACL), or acl_file_decode()'s other errors. */
MUST_USE int acl_rec_decode(const uint8_t *buf, size_t len, struct acl *out);

/* ---- the file (pure) ---- */

/* Bytes acl_file_encode() needs for these ACLs. */
size_t acl_file_bytes(const struct acl *acls, uint32_t n);

/* Writes the file's bytes: a magic, a version, a count, each ACL (codes,
 * then name, principal and host with u16 lengths), an XXH3-64 of all
 * before it. Precondition: cap >= acl_file_bytes(). Returns the length. */
size_t acl_file_encode(const struct acl *acls, uint32_t n, uint8_t *buf, size_t cap);

/* Decodes a whole file. *acls_out is malloc'd (the caller frees it).
 * Returns 0; -NG_ECORRUPT for a wrong magic or checksum, a length past the
 * end or its limit, an invalid ACL, trailing bytes; -NG_EBADVERSION;
 * -NG_ETOOBIG for a count past ACL_COUNT_MAX; -ENOMEM. */
MUST_USE int acl_file_decode(const uint8_t *buf, size_t len, struct acl **acls_out,
                             uint32_t *n_out);

#endif
