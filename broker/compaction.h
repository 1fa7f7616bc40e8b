/*
 * broker/compaction.h — when and how the broker's internal logs (committed
 * offsets, share-group state) are compacted.
 *
 * The owner of such a log can append its whole live state (a snapshot) at a
 * point from which the log replays to that state on its own. Once every
 * append of the snapshot has completed durably, each segment wholly before
 * it can go; a crash at any point replays to the same state, since the
 * snapshot repeats what is already there and segments go oldest first.
 * This module holds the policy and the bookkeeping; the owner writes the
 * snapshot: compaction_wanted(), compaction_begin(), its appends,
 * compaction_placed(), and compaction_end() from the last completion.
 * Threads: the log's owner's only.
 */
#ifndef NAGARE_BROKER_COMPACTION_H
#define NAGARE_BROKER_COMPACTION_H

#include <stdbool.h>
#include <stdint.h>

#include "storage/partition.h"

struct compaction {
    const char *what;       /* names the log in messages; static */
    uint64_t segment_bytes; /* the log's */
    bool running;           /* begun, not yet ended */
    int64_t offset;         /* the first offset of the running or last snapshot */
    uint64_t bytes_before;  /* the log's bytes when it began */
    uint64_t bytes;         /* the last snapshot's bytes */
    uint64_t completed;     /* snapshots ended with their segments deleted */
};

void compaction_init(struct compaction *c, const char *what, uint64_t segment_bytes);

/* Whether to compact now: none running, the log not failed, and holding at
 * least two segments' bytes and twice the last snapshot's (so the log
 * stays within a few segments plus a few snapshots, and a large state is
 * not rewritten over and over). */
bool compaction_wanted(const struct compaction *c, const struct part *log);

/* The snapshot starts at the log's next offset: call right before its
 * first append. */
void compaction_begin(struct compaction *c, const struct part *log);

/* Every append of the snapshot has been made: notes its bytes. */
void compaction_placed(struct compaction *c, const struct part *log);

/* Every append of the snapshot has completed, rc the first error (0 when
 * all were fdatasync'd): deletes the segments wholly before the snapshot.
 * On an error nothing is deleted (logged). */
void compaction_end(struct compaction *c, struct part *log, int rc);

#endif
