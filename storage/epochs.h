/*
 * storage/epochs.h — a partition's leader epoch cache (Kafka's KIP-101 and
 * KIP-279): for each leader epoch that wrote batches to the log, the base
 * offset of its first batch, kept in the file `leader-epoch` of the
 * partition directory (docs/storage-format.md has its layout).
 *
 * Invariants: entries ascend strictly in epoch and in start offset; epoch
 * e's batches run from its start to the next entry's start (the last
 * entry's, to the log end). At most EPOCHS_MAX entries: when a new one
 * would pass it, the oldest goes (logged).
 * The partition log (storage/partition.h) keeps the file in step with the
 * log: it is stored, durably, before a batch that adds an entry is written,
 * truncated with the log, and rebuilt from the batch headers when missing
 * or damaged. This module holds the entries, answers questions about them
 * and reads and writes the file.
 * Threads: the owner's; no state is shared.
 */
#ifndef NAGARE_STORAGE_EPOCHS_H
#define NAGARE_STORAGE_EPOCHS_H

#include <stddef.h>
#include <stdint.h>

#include "base/assert.h"
#include "base/ring.h"

/* The file's name in the partition directory, and its temporary name while
 * a new version is written (renamed over the file once synced). */
#define EPOCHS_FILE "leader-epoch"
#define EPOCHS_FILE_TMP "leader-epoch.tmp"

/* Entries kept. A partition gets one per leader epoch that wrote a batch
 * still in its log (an election after a broker failure or a preferred
 * leader's return, so a handful a day even on a flapping cluster); 4096
 * keeps a file under 50 KiB, read whole at open, and the memory of a
 * partition's cache small (the array grows as needed). */
#define EPOCHS_MAX 4096u

/* The file: magic, version, count, count entries, XXH3-64 of the bytes
 * before it. */
#define EPOCHS_MAGIC 0x4e474550u /* "NGEP" */
#define EPOCHS_VERSION 1u
#define EPOCHS_HEAD_BYTES 12u  /* u32 magic, u32 version, u32 count */
#define EPOCHS_ENTRY_BYTES 12u /* i32 epoch, i64 start offset */
#define EPOCHS_SUM_BYTES 8u    /* u64 XXH3-64 of everything before it */
#define EPOCHS_FILE_BYTES(count) \
    (EPOCHS_HEAD_BYTES + (size_t)(count)*EPOCHS_ENTRY_BYTES + EPOCHS_SUM_BYTES)

/* Kafka's UNDEFINED_EPOCH and UNDEFINED_EPOCH_OFFSET: what
 * epochs_end_offset() answers for an epoch older than every entry. */
#define EPOCHS_UNDEFINED (-1)

struct epoch_entry {
    int32_t epoch;
    int64_t offset_start; /* base offset of the epoch's first batch */
};

struct epochs {
    struct epoch_entry *v; /* count entries, ascending; owned (malloc'd) */
    uint32_t count;
    uint32_t cap;
};

/* An empty cache (allocates nothing). */
void epochs_init(struct epochs *e);

/* Frees the entries; e is empty afterwards and may be used again. */
void epochs_fini(struct epochs *e);

/* The newest epoch, or EPOCHS_UNDEFINED when there is none. */
int32_t epochs_last(const struct epochs *e);

/* Adds (epoch, offset_start) after the last entry. Preconditions: epoch >
 * epochs_last(e) and offset_start > the last entry's start (each epoch's
 * first batch takes at least one offset), both >= 0. When the cache holds
 * EPOCHS_MAX entries the oldest is dropped first. Returns 0 or -ENOMEM
 * (nothing changed). */
MUST_USE int epochs_add(struct epochs *e, int32_t epoch, int64_t offset_start);

/* The log now ends at offset_end: drops the entries starting at or past
 * it. Returns how many went. */
uint32_t epochs_truncate_end(struct epochs *e, int64_t offset_end);

/* The log now starts at offset_start: drops the entries whose epoch ended
 * at or before it, and moves the start of the one covering it up to it
 * (Kafka's truncateFromStart). Returns true when anything changed. */
bool epochs_truncate_start(struct epochs *e, int64_t offset_start);

/* KIP-279's answer for a follower whose last epoch is epoch, in a log that
 * ends at log_end: *epoch_out is the largest epoch <= epoch in the cache,
 * *end_out the start of the next higher epoch, or log_end when it is the
 * last. An epoch below the first entry (or negative) gets
 * EPOCHS_UNDEFINED for both; an empty cache (an empty log) gets epoch
 * itself and log_end. */
void epochs_end_offset(const struct epochs *e, int32_t epoch, int64_t log_end, int32_t *epoch_out,
                       int64_t *end_out);

/* Encodes e into buf[0..cap); returns the bytes written, which is
 * EPOCHS_FILE_BYTES(e->count), or 0 when cap is smaller. */
size_t epochs_encode(const struct epochs *e, uint8_t *buf, size_t cap);

/* Decodes a whole file's bytes into e (replacing what it held). Returns 0,
 * -NG_ECORRUPT (wrong magic, length, count past EPOCHS_MAX, checksum, or
 * entries not strictly ascending or negative: e is then empty),
 * -NG_EBADVERSION, or -ENOMEM. */
MUST_USE int epochs_decode(struct epochs *e, const uint8_t *buf, size_t len);

/* Reads EPOCHS_FILE in dirfd into e. Returns 0, -ENOENT (no file), the
 * errors of epochs_decode(), or -errno. */
MUST_USE int epochs_load(struct epochs *e, int dirfd);

/* Replaces EPOCHS_FILE in dirfd with e, atomically and durably: written to
 * EPOCHS_FILE_TMP, fsync'd, renamed over the file, then the directory
 * fsync'd, all through r (a private ring: its blocking steps run it). On
 * error the file is the old one or the new one. Returns 0 or -errno. */
MUST_USE int epochs_store(const struct epochs *e, int dirfd, struct ring *r);

#endif
