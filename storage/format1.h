/*
 * storage/format1.h — nagare's batch format 1, kept to upgrade old data.
 *
 * Format 1 differs from format 2 (storage/batch.h) only in bytes 12-20 and
 * in one codec number: an XXH3-64 checksum at 12 over bytes [20, end), the
 * version byte 1 at 20, and zstd as codec 1 (format 2: partition leader
 * epoch at 12, magic 2 at 16, CRC-32C at 17 over [21, end), zstd as codec
 * 4). The two headers have the same size, so a batch is upgraded in place
 * and a segment keeps every file position: its indexes stay valid.
 *
 * A partition directory is upgraded when the partition opens (part_open),
 * segment by segment, each through a copy that replaces the segment by
 * rename once written and synced; a crash leaves every segment whole in one
 * format or the other, and the copy is thrown away at the next open. Why
 * upgrade rather than read format 1 in place: the two formats cannot be told
 * apart from a header alone (format 1's checksum byte at 16 is 2 for one
 * batch in 256, format 2's CRC byte at 20 is 1 as often), so one format per
 * file, told apart by checksum once, keeps every reader single-format.
 *
 * Blocking (pread, pwrite, fsync, rename); for the thread opening the
 * partition, before it serves anything.
 */
#ifndef NAGARE_STORAGE_FORMAT1_H
#define NAGARE_STORAGE_FORMAT1_H

#include <stddef.h>
#include <stdint.h>

#include "base/assert.h"
#include "base/progress.h"

#define FORMAT1_OFF_CHECKSUM 12 /* u64: XXH3-64 of bytes [20, end) */
#define FORMAT1_OFF_VERSION 20  /* u8: 1 */
#define FORMAT1_VERSION 1
#define FORMAT1_CODEC_ZSTD 1

/* Suffix of the copy a segment is upgraded through ("<base>.log" + it). */
#define FORMAT1_UPGRADE_SUFFIX ".format2"

/* Checks that buf[0..len) starts with a whole, valid format-1 batch of at
 * most batch_bytes_max bytes: version 1, its checksum, and every header rule
 * that format 2 keeps. Returns 0 with its size in *bytes_out, or
 * -NG_EBADVERSION, -NG_EBADCODEC (attributes format 1 did not allow),
 * -NG_ECHECKSUM, -NG_ETRUNCATED, or a header error of
 * batch_header_decode(). */
MUST_USE int format1_batch_check(const uint8_t *buf, size_t len, size_t batch_bytes_max,
                                 size_t *bytes_out);

/* Rewrites a batch that passed format1_batch_check() into format 2 in
 * place: leader epoch 0, magic 2, codec number, CRC-32C. */
void format1_batch_upgrade(uint8_t *batch, size_t bytes);

/* Builds a format-1 batch from a valid format-2 one of `bytes` in place (the
 * inverse of format1_batch_upgrade, leader epoch dropped): for tests that
 * need format-1 data made by the format's definition. */
void format1_batch_downgrade(uint8_t *batch, size_t bytes);

/* Whether the segment file fd of `size` bytes is format 1 as
 * format1_upgrade_dir() judges it: its first valid batch is. Returns 1 (it
 * is), 0 (format 2, empty, or no valid batch), -errno or -ENOMEM. */
MUST_USE int format1_segment_is_format1(int fd, uint64_t size, size_t batch_bytes_max);

/* Writes to out_fd, at their own positions, the `size` bytes of the
 * format-1 segment fd exactly as format1_upgrade_dir() would make them
 * (every valid format-1 batch upgraded, damaged bytes as they are), without
 * syncing: for a verifier to judge the segment as the broker will read it.
 * Returns 0, -errno or -ENOMEM. */
MUST_USE int format1_segment_copy(int fd, uint64_t size, int out_fd, size_t batch_bytes_max);

/* Upgrades every format-1 segment (".log") of the partition directory dirfd
 * (`dir` names it in the log). A segment is format 1 when its first valid
 * batch is; only damaged bytes are left as they are (recovery judges them).
 * Removes copies left by an upgrade a crash interrupted. When progress is
 * not NULL, the bytes rewritten and the segments upgraded are added to it
 * as they go (a caller upgrading many directories shows one running total)
 * and its line is erased before each log line and at the end. Returns 0,
 * -errno, or -ENOMEM. */
MUST_USE int format1_upgrade_dir(int dirfd, const char *dir, size_t batch_bytes_max,
                                 struct progress *progress);

#endif
