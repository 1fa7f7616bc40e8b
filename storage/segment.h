/*
 * storage/segment.h — one segment of a partition: `<base>.log` with its
 * sparse offset index `.index` and time index `.timeindex`.
 *
 * The log file holds whole record batches back to back with offsets
 * continuing from the base offset (the 20-digit file name). Index entries
 * point at batch starts: a batch gets an offset entry when it starts at
 * least index_interval_bytes after the previous entry (the first batch
 * always gets one), and a time entry at the same point when the maximum
 * timestamp so far has grown. So a lookup binary-searches the index and then
 * scans at most one interval plus one batch. Bad bytes between good batches
 * are a damaged range (struct seg_damage): kept in the file, never indexed
 * or served, stepped over by every walk.
 *
 * This module reads files directly (pread) and does blocking work through a
 * caller's private ring; the partition log owns all asynchronous I/O and the
 * fields marked "partition" below.
 */
#ifndef NAGARE_STORAGE_SEGMENT_H
#define NAGARE_STORAGE_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/ring.h"
#include "storage/batch.h"
#include "storage/index.h"

#define SEG_NAME_BYTES 32 /* "%020lld.timeindex" and its NUL fit */

struct seg_limits {
    uint64_t segment_bytes;
    uint32_t index_interval_bytes;
    uint32_t batch_bytes_max;
};

/* A damaged range of a segment's log: bytes [pos, pos_end) hold no batch
 * that checks, between good batches (or a start or end of the segment);
 * the offsets [offset, offset_end) they held are lost, and reads of them
 * fail with -NG_ECORRUPT. Good batches resume at pos_end with offset_end
 * (or the segment ends there). */
struct seg_damage {
    int64_t offset;
    int64_t offset_end;
    uint64_t pos;
    uint64_t pos_end;
    int why; /* what was wrong with the first bad batch (-NG_E*) */
};

/* Where a segment's batches stop making sense (see seg_scan). */
struct seg_scan {
    uint64_t bytes_valid; /* end of the last good batch */
    int64_t offset_next;  /* one past the last good batch's last offset */
    int64_t timestamp_max_ms;
    int64_t timestamp_first_batch_ms; /* INT64_MIN when no batch */
    int stop;                         /* 0: clean end of file; else why the next batch is bad */
    bool index_gap;                   /* walk without rebuild: a batch at or past
                                s->index_due_pos, where an entry was due */
};

struct seg {
    int64_t offset_base;
    int64_t offset_next;      /* one past the last offset placed in the file */
    uint64_t bytes;           /* bytes placed (written, or being written) */
    uint64_t bytes_readable;  /* prefix whose writes completed; reads stop here */
    int64_t timestamp_max_ms; /* INT64_MIN when empty */
    int64_t created_ms;       /* for roll by age */
    uint64_t index_due_pos;   /* a batch starting here or later gets an entry */
    /* Bytes [0, verified_pos) were checksum-checked by this process: whole
     * batches, so it is a batch boundary. UINT64_MAX: every batch, present
     * and future: a segment this process created or recovered as the active
     * one (recovery checks every batch; each appended batch is validated
     * before it is written). A sealed segment opened starts at 0 (its open
     * walks headers only); part_read() and the scrubber move it on. */
    uint64_t verified_pos;
    /* Known damaged ranges, ascending and disjoint (malloc'd). Walks over
     * the log step over them; reads of their offsets fail. */
    struct seg_damage *damage;
    uint32_t damage_count;
    int fd_log;
    int fd_index; /* -1 once sealed and loaded */
    int fd_time;
    struct idx index;
    struct idx timeindex;
    /* partition: asynchronous state */
    uint32_t ops_inflight;  /* ops naming this segment's files */
    bool dirty;             /* a write completed since the last sync began */
    uint64_t writeback_pos; /* write-back started for bytes below it */
    bool writeback_busy;
    uint32_t index_write_bytes; /* of the index write in flight, 0: none */
    uint32_t time_write_bytes;
    struct ring_op sync_op;
    struct ring_op index_write_op;
    struct ring_op time_write_op;
    struct ring_op writeback_op;
    void *owner;
};

/* Formats the file name of a segment file: ext is "log", "index" or
 * "timeindex". */
void seg_name(char out[SEG_NAME_BYTES], int64_t offset_base, const char *ext);

/* Parses "<20 digits>.log". Returns true with *base set, else false. */
bool seg_parse_log_name(const char *name, int64_t *base);

/* The base offsets of the segments (".log" files) in dirfd, ascending, in
 * a malloc'd array the caller frees (NULL with count 0). Returns 0 or
 * -errno. */
MUST_USE int seg_list(int dirfd, int64_t **bases_out, uint32_t *count_out);

/* Creates the three files of a new, empty segment in dirfd (the log with
 * O_EXCL: an existing log is never clobbered). Returns 0 or -errno; on error
 * nothing is left open. The caller fsyncs the directory. */
MUST_USE int seg_create(struct seg *s, int dirfd, int64_t offset_base, const struct seg_limits *lim,
                        int64_t now_ms);

/* Opens a segment that was sealed (has a successor whose base offset is
 * offset_end): loads its indexes and checks them against the log (entry
 * fields, then a header walk from the last entry to the end of the file
 * that must end exactly there at offset_end, without finding an interval
 * with no entry). An index that is missing, short or wrong is rebuilt by a
 * header walk and rewritten through r. Bad batches met by that walk become
 * damaged ranges (s->damage, see seg_resync()); bytes at the end that hold
 * no good batch up to offset_end are one too. The rest is served. scratch:
 * >= SEG_RESYNC_BUF_BYTES(lim->batch_bytes_max). Returns 0 or -errno. */
MUST_USE int seg_open_sealed(struct seg *s, int dirfd, int64_t offset_base, int64_t offset_end,
                             const struct seg_limits *lim, struct ring *r, uint8_t *scratch,
                             size_t scratch_bytes);

/* Opens the last segment: checks every batch (length, checksum, offset
 * continuity). A bad batch followed by good ones (seg_resync()) is damage,
 * not a torn write: it becomes a damaged range (s->damage) and the good
 * batches after it stay. Bad bytes with no good batch after them are the
 * torn tail a crash leaves: the file is truncated after the last good
 * batch (fdatasync through r; *cut says what was cut: cut->stop != 0 when
 * anything was). Both indexes are rebuilt. Returns 0 or -errno. */
MUST_USE int seg_open_active(struct seg *s, int dirfd, int64_t offset_base,
                             const struct seg_limits *lim, struct ring *r, uint8_t *scratch,
                             size_t scratch_bytes, int64_t now_ms, struct seg_scan *cut);

/* Records a batch placed at pos in the indexes (if an entry is due) and in
 * the segment's counters. Precondition: pos == s->bytes and the batch
 * continues the segment's offsets. */
void seg_note_batch(struct seg *s, const struct batch_header *h, uint64_t pos,
                    const struct seg_limits *lim);

/* Makes a sealed segment writable again, so that it can become the active
 * one (a truncation cut the log back into it): opens its log for writing
 * and its index files (which hold its indexes whole: a segment is sealed
 * with them flushed and synced). Its age is not known (created_ms stays 0),
 * so once it holds a batch the next append rolls it, as an old segment.
 * Nothing to do for a writable one. Returns 0 or -errno (s unchanged). */
MUST_USE int seg_unseal(struct seg *s, int dirfd);

/* Cuts a writable segment (active, or unsealed) back to its first pos
 * bytes, which end at offset offset_end (a batch boundary): the log file is
 * truncated (not synced: the caller fsyncs it when the cut must last),
 * then the counters, the damage past pos and the indexes follow, in memory
 * and in their files; the newest timestamp is found again from the time
 * index and a header walk of at most one index interval. Precondition: no
 * I/O in flight on s. buf (>= SEG_RESYNC_BUF_BYTES(lim->batch_bytes_max))
 * is scratch. Returns 0 or -errno: when the log's truncation fails s is
 * unchanged; later errors leave s cut in memory (and its log file too). */
MUST_USE int seg_cut(struct seg *s, uint64_t pos, int64_t offset_end, const struct seg_limits *lim,
                     uint8_t *buf, size_t buf_bytes);

/* Finds the batch holding offset among the readable bytes: *pos_out is its
 * position and *h_out (may be NULL) its header. Known damaged ranges are
 * stepped over. buf (>= BATCH_HEADER_BYTES) is scratch. Returns 0,
 * -NG_EOFFSET_RANGE when offset is not in [base, readable end), -NG_ECORRUPT
 * when offset is in a known damaged range or a header on the way is bad:
 * *pos_out says where the bad bytes start and h_out->offset_base (h_out's
 * only field then set) the offset expected there; or -errno. */
MUST_USE int seg_locate(const struct seg *s, int64_t offset, uint32_t batch_bytes_max, uint8_t *buf,
                        size_t buf_bytes, uint64_t *pos_out, struct batch_header *h_out);

/* The base offset of the batch starting at pos (a batch boundary below
 * s->bytes_readable): *offset_out. Reads its header alone into buf (>=
 * BATCH_HEADER_BYTES, scratch). Returns 0, -NG_ECORRUPT (a bad header), or
 * -errno. */
MUST_USE int seg_offset_at(const struct seg *s, uint64_t pos, uint32_t batch_bytes_max,
                           uint8_t *buf, size_t buf_bytes, int64_t *offset_out);

/* The furthest batch boundary at or below limit reached by whole batches
 * from pos (a batch start, below limit): *end_out, which is pos when the
 * batch at pos passes limit; *offset_out the offset of the batch starting
 * there, from the headers read on the way (-1 when none was read: limit
 * is the readable end). Preconditions: limit <= s->bytes_readable, no
 * known damage in s.
 * Reads only batch headers: none when limit is the readable end, else
 * from the last index entry at or below limit (at most one index interval
 * and a batch). buf (>= BATCH_HEADER_BYTES) is scratch. Returns 0,
 * -NG_ECORRUPT (a bad header on the way), or -errno. */
MUST_USE int seg_batches_end(const struct seg *s, uint64_t pos, uint64_t limit,
                             uint32_t batch_bytes_max, uint8_t *buf, size_t buf_bytes,
                             uint64_t *end_out, int64_t *offset_out);

/* Walks batches from pos (expected to start offset expect_offset) to end and
 * says in *out where the walk stopped and why. checksums: also verify each
 * batch's checksum. rebuild (pos 0 only): reset the segment's counters,
 * indexes and damage, note every batch again, and step over bad batches
 * that good ones follow (seg_resync() below offset_limit), noting each as
 * damage; without rebuild the walk stops at the first bad batch. buf (>=
 * SEG_RESYNC_BUF_BYTES(lim->batch_bytes_max)) is scratch. Returns 0
 * (out->stop says whether the walk ended at a bad batch) or -errno. */
MUST_USE int seg_scan(struct seg *s, uint64_t pos, int64_t expect_offset, uint64_t end,
                      int64_t offset_limit, bool checksums, bool rebuild,
                      const struct seg_limits *lim, uint8_t *buf, size_t buf_bytes,
                      struct seg_scan *out);

/* Bytes a resynchronising scan reads per window (a whole batch is read on
 * top of it to check a candidate), and the scratch seg_resync() needs. */
#define SEG_RESYNC_WINDOW_BYTES (32u * 1024)
#define SEG_RESYNC_BUF_BYTES(batch_bytes_max) \
    ((size_t)(batch_bytes_max) + SEG_RESYNC_WINDOW_BYTES + BATCH_HEADER_BYTES)

/* After a bad batch at pos (its offsets would start at expect_offset) in
 * bytes [pos, end) of the log fd: where good batches resume. Tried first:
 * the bad batch's own length, when the batch there is whole, checks and
 * starts exactly at the offset the bad header promises (only its records
 * were hit). Else every later position, in order, for a batch that is
 * whole within end, checks (batch_validate: its own length and checksum),
 * has offsets above expect_offset and below offset_limit, and is followed
 * by end, by a good batch continuing its offsets, or by a torn batch
 * continuing them that runs to end. So a damaged length neither skips good
 * batches nor makes garbage (or one batch-shaped record value) pass.
 * *pos_out and *offset_out get that batch's position and base offset, or
 * end and -1 when there is none (damage running to end: a torn tail).
 * buf: scratch of buf_bytes >= SEG_RESYNC_BUF_BYTES(batch_bytes_max).
 * Returns 0 or -errno. Blocking reads; any thread. */
MUST_USE int seg_resync(int fd, uint64_t pos, int64_t expect_offset, uint64_t end,
                        int64_t offset_limit, uint32_t batch_bytes_max, uint8_t *buf,
                        size_t buf_bytes, uint64_t *pos_out, int64_t *offset_out);

/* Adds d (within s's readable bytes, overlapping no known range) to s's
 * damaged ranges. Returns 0 or -ENOMEM (nothing added). */
MUST_USE int seg_add_damage(struct seg *s, const struct seg_damage *d);

/* The known damaged range holding file position pos, or NULL. */
const struct seg_damage *seg_damage_at(const struct seg *s, uint64_t pos);

/* The known damaged range holding offset, or NULL. */
const struct seg_damage *seg_damage_of_offset(const struct seg *s, int64_t offset);

/* Finds, among the readable bytes, the first batch whose max timestamp is
 * >= ts_ms, starting from the time index's hint, stepping over known
 * damaged ranges: *pos_out is its position.
 * buf (>= batch_bytes_max) is scratch. Returns 0, -NG_ENOTFOUND,
 * -NG_ECORRUPT, or -errno. */
MUST_USE int seg_find_time(const struct seg *s, int64_t ts_ms, uint32_t batch_bytes_max,
                           uint8_t *buf, size_t buf_bytes, uint64_t *pos_out);

/* Calls fn(arg, h) for each batch header from pos (the batch starting at
 * expect_offset) to the readable end, stepping over known damaged ranges;
 * stops when fn returns non-zero and returns that. expect_offset -1: the
 * first batch's base is not known. buf (>= BATCH_HEADER_BYTES) is scratch.
 * Returns 0, -NG_ECORRUPT (a bad header: *pos_out says where, *offset_out
 * the offset expected there, -1 when not known), or -errno. */
MUST_USE int seg_for_each_batch(const struct seg *s, uint64_t pos, int64_t expect_offset,
                                uint32_t batch_bytes_max, uint8_t *buf, size_t buf_bytes,
                                int (*fn)(void *arg, const struct batch_header *h), void *arg,
                                uint64_t *pos_out, int64_t *offset_out);

/* Closes every file and frees the indexes and the damage list. */
void seg_close(struct seg *s);

/* Unlinks a segment's three files from dirfd (a missing index is fine).
 * Returns 0 or -errno. The caller fsyncs the directory. */
MUST_USE int seg_remove(int dirfd, int64_t offset_base);

#endif
