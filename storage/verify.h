/*
 * storage/verify.h — offline verification of a partition directory.
 *
 * Reads every segment of a partition (never writes, never truncates,
 * nothing needs to be open or running) and reports every damaged range: a
 * bad batch (a header out of bounds, a checksum that does not match, an
 * offset that does not continue the log) and the bytes up to where good
 * batches resume, found exactly as recovery and reads find them
 * (seg_resync()), so one flipped byte is one report naming the offsets and
 * file positions the broker will not serve, and the rest of the segment is
 * still checked. Index files are checked too (entry checks and bounds); a
 * bad index is reported as such: recovery rebuilds it, no record is lost.
 * A segment still in batch format 1 (storage/format1.h: not yet upgraded by
 * a broker start) is reported once as such, not as damage, and verified as
 * the broker will read it: through the copy its upgrade makes, written to
 * an unlinked temporary file (tmpfile(3)), with the same positions and
 * offsets. Any thread.
 */
#ifndef NAGARE_STORAGE_VERIFY_H
#define NAGARE_STORAGE_VERIFY_H

#include <stdbool.h>
#include <stdint.h>

#include "base/assert.h"

struct verify_problem {
    const char *file;   /* segment file name, within the directory */
    uint64_t position;  /* byte position of the bad batch or entry */
    int64_t offset;     /* the offset expected there (-1 for an index) */
    int reason;         /* -NG_ECHECKSUM, -NG_EDISCONTINUITY, -NG_ECORRUPT... */
    uint64_t bytes;     /* damaged bytes: [position, position + bytes) */
    int64_t offset_end; /* the damaged offsets are [offset, offset_end): where
                            good batches resume, or the next segment's base;
                            -1 for a torn tail and for an index */
    bool torn_tail;     /* bad bytes to the end of the last segment: the
                            torn tail of a crash, which recovery cuts */
    bool format1;       /* the segment is in batch format 1; with reason 0
                            this is no problem but the notice that it is (one
                            per such segment, not counted in problems): the
                            next broker start upgrades it */
};

struct verify_stats {
    uint64_t segments;
    uint64_t batches; /* good batches */
    uint64_t records;
    uint64_t bytes; /* log bytes read */
    uint64_t problems;
    uint64_t format1_segments; /* segments still in batch format 1 */
};

typedef void (*verify_report_fn)(void *arg, const struct verify_problem *p);

/* Verifies the partition in dir, adding to *stats and calling report for
 * each problem. batch_bytes_max bounds a batch (use the broker's maximum).
 * Returns 0 (problems, if any, were reported) or -errno when the directory
 * or a file cannot be read. */
MUST_USE int verify_partition(const char *dir, uint32_t batch_bytes_max, verify_report_fn report,
                              void *arg, struct verify_stats *stats);

#endif
