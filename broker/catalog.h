/*
 * broker/catalog.h — the broker's persistent registry of topics and their
 * configuration.
 *
 * Invariants: the catalog in memory is exactly the set of directories
 * DATA_DIR/topics/<name> holding a valid topic.meta, and every change to it
 * (create, delete) is durable before it returns 0. A topic appears in
 * topics/ in one atomic rename of a fully written and synced directory, and
 * leaves it in one atomic rename into DATA_DIR/trash/, so a crash leaves
 * each topic either whole or gone; whatever is in trash/ is garbage and is
 * removed on the next open. Stored configurations are resolved (no
 * PROTO_CONFIG_DEFAULT) and pass catalog_config_check().
 *
 * Threads: a catalog is not locked. One thread at a time may call catalog_*
 * on it (any thread: each blocking call brings up its own private ring).
 * Every function that touches the disk blocks; none is for the hot path.
 * docs/storage-format.md, "Topic catalog", describes the files.
 */
#ifndef NAGARE_BROKER_CATALOG_H
#define NAGARE_BROKER_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/assert.h"
#include "net/proto.h"
#include "storage/partition.h"

/* Per-topic settings. -1 (PROTO_CONFIG_DEFAULT) is never stored: the
 * catalog resolves defaults at create time (catalog_resolve_config). The
 * ranges are those catalog_config_check() enforces. */
struct topic_config {
    int32_t partitions;      /* 1 .. PROTO_PARTITIONS_MAX */
    int64_t retention_ms;    /* > 0, or -1: keep forever */
    int64_t retention_bytes; /* > 0, or -1: no limit */
    int64_t segment_bytes;   /* PART_SEGMENT_BYTES_MIN .. PART_SEGMENT_BYTES_MAX */
    int64_t segment_ms;      /* > 0 */
    int32_t batch_bytes_max; /* BATCH_HEADER_BYTES .. BATCH_BYTES_LIMIT */
};

struct catalog_topic {
    char name[PROTO_TOPIC_NAME_BYTES_MAX + 1]; /* NUL-terminated */
    uint32_t name_len;                         /* strlen(name), 1..249 */
    struct topic_config cfg;
};

/* Bounds of topic.meta (docs/storage-format.md). Its longest line is
 * "name = " and a 249-byte name; ten such lines would still fit the file
 * bound, so a file over it is damage, not a topic. */
#define CATALOG_META_BYTES_MAX 4096
#define CATALOG_META_LINE_BYTES_MAX 320
#define CATALOG_META_VERSION 1
static_assert(CATALOG_META_LINE_BYTES_MAX > sizeof("name = ") + PROTO_TOPIC_NAME_BYTES_MAX,
              "a name line must fit a meta line");
static_assert(10 * CATALOG_META_LINE_BYTES_MAX <= CATALOG_META_BYTES_MAX,
              "every meta line must fit the file");

/* Directories nested under a trash entry that removal will walk: a topic
 * holds partition directories holding files, so 4 leaves room and bounds
 * the recursion. A deeper tree is not ours and is refused (-ELOOP). */
#define CATALOG_TRASH_DEPTH_MAX 4

struct catalog {
    /* private */
    char *data_dir;                /* owned copy */
    int data_fd;                   /* DATA_DIR */
    int topics_fd;                 /* DATA_DIR/topics */
    int trash_fd;                  /* DATA_DIR/trash */
    struct catalog_topic **topics; /* sorted by name; PROTO_TOPICS_MAX slots */
    uint32_t count;
    uint64_t trash_seq; /* makes trash entry names unique */
    int failed;         /* 0, or the fsync error that failed the catalog */
};

/* Opens the catalog of data_dir: creates DATA_DIR (one level), DATA_DIR/topics
 * and DATA_DIR/trash if missing (fsyncing their parents), removes everything
 * in trash/ (deletions and creations a crash interrupted), and loads every
 * DATA_DIR/topics/<name>/topic.meta. A topic directory holding nothing but
 * an optional "topic.meta.tmp" is an interrupted creation and is removed; a
 * stray "topic.meta.tmp" beside a topic.meta is unlinked. Anything else
 * unexpected — a damaged or truncated topic.meta, a directory without one
 * that holds data, an entry with an invalid name or that is not a directory
 * — is logged with its path and the open fails with -NG_ECORRUPT: a topic
 * is never silently dropped. More than PROTO_TOPICS_MAX topics:
 * -NG_ETOOBIG. Other failures: -errno (e.g. -EACCES, -ENOENT when the
 * parent of data_dir is missing, -EIO reading a topic.meta). On error
 * nothing is held and c must not be used; on 0, c owns its resources until
 * catalog_close(). data_dir is copied. Blocking. */
MUST_USE int catalog_open(struct catalog *c, const char *data_dir);

/* Frees everything c holds. Nothing on disk changes (every change was made
 * durable when it was made). */
void catalog_close(struct catalog *c);

/* Number of topics. */
uint32_t catalog_count(const struct catalog *c);

/* The i-th topic (precondition: i < catalog_count(c)), in ascending byte
 * order of names. Indexes shift on create and delete; the pointer itself
 * stays valid until that topic is deleted or the catalog closed. */
const struct catalog_topic *catalog_at(const struct catalog *c, uint32_t i);

/* The topic named name[0..len) (not NUL-terminated: names come from the
 * wire), or NULL when there is none or the name is not valid. O(log n).
 * The pointer is valid as catalog_at()'s. */
const struct catalog_topic *catalog_find(const struct catalog *c, const char *name, size_t len);

/* 0 when every field of cfg lies in the range documented on struct
 * topic_config, else -NG_EBADARG. Use it to check the broker's defaults. */
MUST_USE int catalog_config_check(const struct topic_config *cfg);

/* Resolves a requested configuration (CreateTopics' fields): a field equal
 * to PROTO_CONFIG_DEFAULT takes the value in defaults; a retention field
 * equal to PROTO_CONFIG_UNLIMITED becomes -1. Then checks every field with
 * catalog_config_check(): -NG_EBADARG for a value out of range (including
 * PROTO_CONFIG_UNLIMITED anywhere but retention, and 0). On error *out is
 * unspecified. Precondition: defaults passes catalog_config_check()
 * (asserted); its -1 retention means keep forever. out may alias
 * requested. Pure; any thread. */
MUST_USE int catalog_resolve_config(const struct topic_config *requested,
                                    const struct topic_config *defaults, struct topic_config *out);

/* Creates topic name[0..len) with the resolved cfg, durably. Refused before
 * the file system is touched: -NG_EFAILED (the catalog failed), -NG_EBADNAME
 * (proto_topic_name_valid), -NG_EBADARG (cfg fails catalog_config_check),
 * -NG_ETOPIC_EXISTS, -NG_ETOOBIG (PROTO_TOPICS_MAX topics already).
 * Otherwise: builds the topic directory in trash/ (topic.meta written and
 * fsync'd, the directory fsync'd), renames it to DATA_DIR/topics/<name>,
 * then fsyncs topics/ and trash/. Partition directories are not created
 * (part_open creates them inside the topic directory).
 * Returns 0 (the topic is in the catalog and on disk), or -errno with the
 * topic absent from the catalog. A failure before the rename leaves only
 * trash (removed at once, else on the next open). A failed fsync after the
 * rename fails the catalog (later creates and deletes get -NG_EFAILED;
 * reopen to recover) and the directory is moved back to trash without a
 * further fsync, so after a crash the topic may come back, but whole.
 * Blocking. */
MUST_USE int catalog_create(struct catalog *c, const char *name, size_t len,
                            const struct topic_config *cfg);

/* Writes DATA_DIR/topics/<name>/<p> (p in decimal) into buf[0..cap) with its
 * NUL. Precondition: t is c's, 0 <= p < t->cfg.partitions. Returns 0 or
 * -NG_ETOOBIG when it does not fit (buf then holds an empty string). */
MUST_USE int catalog_partition_dir(const struct catalog *c, const struct catalog_topic *t,
                                   int32_t p, char *buf, size_t cap);

/* Deletes topic name[0..len) durably. Precondition: the caller has closed
 * the topic's partitions. Refused with nothing changed: -NG_EFAILED,
 * -NG_EBADNAME, -NG_EUNKNOWN_TOPIC, or -errno when the rename fails.
 * Otherwise renames DATA_DIR/topics/<name> to DATA_DIR/trash/<unique>,
 * fsyncs topics/ and trash/, drops the topic from the catalog (its
 * catalog_topic pointer dies) and removes the trash entry recursively (a
 * failure there is logged, returns 0, and is finished on the next open).
 * A failed fsync after the rename: the topic is dropped from the catalog
 * all the same, its files are kept in trash (a crash may bring it back
 * whole, else the next open removes it), the catalog fails, and the -errno
 * is returned. So after an error, catalog_find() tells whether the topic
 * is still there. Blocking. */
MUST_USE int catalog_delete(struct catalog *c, const char *name, size_t len);

/* 0, or the fsync error that failed the catalog. */
int catalog_failed(const struct catalog *c);

/* The partition configuration of a topic: base (the broker's settings for
 * index interval, appends in flight, group commit) with the topic's
 * segment, retention and batch fields. Pure; any thread. */
void catalog_part_config(const struct topic_config *cfg, const struct part_config *base,
                         struct part_config *out);

/* ---- topic.meta, exposed for tests and fuzzing ---- */

/* Writes the topic.meta text for name[0..len) and cfg into buf[0..cap).
 * Preconditions: the name is valid, cfg passes catalog_config_check().
 * Returns 0 with *len_out set, or -NG_ENOSPACE when cap is too small
 * (CATALOG_META_BYTES_MAX always suffices). */
MUST_USE int catalog_meta_encode(const char *name, size_t len, const struct topic_config *cfg,
                                 char *buf, size_t cap, size_t *len_out);

/* Parses topic.meta text buf[0..len) into *out, checking the size, every
 * line's length and shape, the version, that every known key is present
 * once and no other is, every value's syntax and range, the name, and the
 * checksum. Returns 0, or -NG_ECORRUPT with a NUL-terminated reason
 * (naming the line) in why[0..why_cap). Never reads past buf[len). The
 * caller checks that the name matches its directory. */
MUST_USE int catalog_meta_decode(const char *buf, size_t len, struct catalog_topic *out, char *why,
                                 size_t why_cap);

#endif
