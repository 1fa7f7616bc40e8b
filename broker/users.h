/*
 * broker/users.h — the broker's users: per user and SCRAM mechanism a
 * credential (salt, iterations, StoredKey, ServerKey; auth/scram.h), never
 * a password.
 *
 * Invariants. The table is sorted by name (broker/names.h) and holds at most
 * USERS_MAX users, each with at least one mechanism. A single broker keeps
 * it in DATA_DIR/users, replaced whole and durably on every change (written
 * to a temporary file, fdatasync'd, renamed, the directory fsync'd) before
 * the change is answered; a change whose write fails leaves the table as it
 * was. The file is text, one credential a line, and ends with an XXH3
 * checksum of the lines before it, so damage is found at start rather than
 * taken for a smaller set of users.
 *
 * One thread at a time (the broker's worker); users_save() blocks on its own
 * private ring, as the topic catalog's writes do.
 */
#ifndef NAGARE_BROKER_USERS_H
#define NAGARE_BROKER_USERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/scram.h"
#include "base/assert.h"
#include "net/proto.h"

#define USERS_FILE "users"
#define USERS_FILE_TMP "users.tmp"

/* Users a broker keeps: what a DescribeUsers answer lists. */
#define USERS_MAX PROTO_USERS_MAX

/* One credential's line at most: name, mechanism, iterations and three
 * base64 fields, with room to spare. A file holds at most this many
 * lines' bytes. */
#define USERS_LINE_BYTES_MAX 512
#define USERS_FILE_BYTES_MAX ((size_t)USERS_MAX * SCRAM_MECH_COUNT * USERS_LINE_BYTES_MAX + 256)

struct user {
    char name[SCRAM_USER_BYTES_MAX + 1];
    uint8_t mechs; /* bit 1 << enum scram_mech per credential held */
    struct scram_cred cred[SCRAM_MECH_COUNT];
};

struct users {
    int dirfd; /* the data directory; -1 when the table is not kept on disk */
    uint32_t count;
    uint32_t cap;
    struct user *v; /* sorted by name */
};

/* An empty table kept nowhere (tests, the cluster's mirror). */
void users_init(struct users *u);

/* Opens the table of data_dir: DATA_DIR/users read, or empty when there is
 * no such file. Returns 0, -errno, -NG_ECORRUPT (a malformed line, a
 * checksum that does not match), -ENOMEM. */
MUST_USE int users_open(struct users *u, const char *data_dir);

void users_close(struct users *u);

/* The credential of user name for mech, or NULL. Valid until the next
 * change. */
const struct scram_cred *users_find(const struct users *u, const char *name, enum scram_mech mech);

/* Sets name's credential of cred->mech (adding the user) in memory only:
 * for a table kept nowhere (a cluster's, rebuilt from its views). Returns
 * 0, -NG_EBADNAME, -NG_ETOOBIG, -ENOMEM. */
MUST_USE int users_set(struct users *u, const char *name, const struct scram_cred *cred);

/* One credential as text: "<iterations> <salt> <StoredKey> <ServerKey>"
 * (base64), as the file's lines hold it after the name and mechanism, and
 * as a cluster keeps users/<name>/<mechanism> (docs/cluster.md). Format
 * returns the length written (NUL after it), or -NG_ENOSPACE; parse
 * returns 0 or -NG_ECORRUPT (a field missing, out of its range, or bad
 * base64). */
MUST_USE int users_cred_format(const struct scram_cred *c, char *buf, size_t cap);
MUST_USE int users_cred_parse(enum scram_mech mech, const char *text, size_t len,
                              struct scram_cred *out);

/* Sets name's credential of cred->mech (adding the user), then saves.
 * Returns 0, -NG_EBADNAME (not scram_user_valid), -NG_ETOOBIG (USERS_MAX
 * users already), -ENOMEM, or users_save()'s error (table unchanged). */
MUST_USE int users_upsert(struct users *u, const char *name, const struct scram_cred *cred);

/* Drops name's credential of mech (mech < 0: all of them; the user goes
 * with its last), then saves. Returns 0, -NG_ENOTFOUND, or users_save()'s
 * error (table unchanged). */
MUST_USE int users_delete(struct users *u, const char *name, int mech);

/* Adds (or changes) user name with a credential of every mechanism, for
 * password at SCRAM_ITERATIONS_MIN iterations, in data_dir's table, with
 * no broker running: the data directory's lock (DATA_DIR/.lock) is taken
 * for the change. How the first user of a broker that requires
 * authentication is made (nagared --add-user). Returns 0, -EWOULDBLOCK (a
 * broker holds the lock), -NG_EBADNAME, -NG_EBADARG (password empty or too
 * long), or users_open()'s and users_upsert()'s errors. */
MUST_USE int users_add_offline(const char *data_dir, const char *name, const char *password);

/* Writes the table as the file holds it into buf[0..cap): returns the
 * length, or -NG_ENOSPACE. */
MUST_USE int64_t users_encode(const struct users *u, char *buf, size_t cap);

/* Replaces u's table (not its dirfd) with what buf[0..len) holds. Returns
 * 0, -NG_ECORRUPT (u unchanged), -ENOMEM. */
MUST_USE int users_decode(struct users *u, const char *buf, size_t len);

#endif
