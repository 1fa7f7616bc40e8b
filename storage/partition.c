#include "storage/partition.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/file.h"
#include "base/log.h"
#include "storage/format1.h"

/* Start the kernel's write-back of a segment's log every this many written
 * bytes (sync_file_range, not waited for), so that the fdatasync sealing a
 * segment at a roll, and each group commit, find little left to write: a
 * roll then holds appends for milliseconds, not for a whole segment's
 * flush. */
#define WRITEBACK_BYTES (8u << 20)

/* Flush index entries once this many are pending (about 512 KiB of log at
 * the default interval): the index is rebuilt on recovery, so it needs no
 * sync of its own until the segment is sealed. */
#define INDEX_FLUSH_ENTRIES 128u

/* HELD: not yet in a segment (a roll is under way). PLACED: given its file
 * range, its write not yet submitted. WRITING: the kernel has its buffer.
 * WRITTEN: its write is over (done, failed, or never to be submitted). */
enum append_state { APPEND_HELD = 0, APPEND_PLACED, APPEND_WRITING, APPEND_WRITTEN };
enum roll_stage { ROLL_NONE = 0, ROLL_DRAIN, ROLL_FLUSH, ROLL_SYNC };

static void pump(struct part *p);
static void notify(struct part *p);
static bool roll_progress(struct part *p);
static uint32_t seg_for_offset(const struct part *p, int64_t offset);

void part_config_default(struct part_config *c)
{
    *c = (struct part_config){
        .segment_bytes = 1u << 30,
        .segment_ms = 7LL * 24 * 3600 * 1000,
        .index_interval_bytes = 4096,
        .batch_bytes_max = 8u << 20,
        .retention_ms = 7LL * 24 * 3600 * 1000,
        .retention_bytes = -1,
        .appends_inflight_max = 1024,
        .group_commit = true,
    };
}

int part_config_check(const struct part_config *c)
{
    bool ok = c->segment_bytes >= PART_SEGMENT_BYTES_MIN &&
              c->segment_bytes <= PART_SEGMENT_BYTES_MAX && c->segment_ms > 0 &&
              c->index_interval_bytes >= PART_INDEX_INTERVAL_MIN &&
              c->batch_bytes_max >= BATCH_HEADER_BYTES && c->batch_bytes_max <= BATCH_BYTES_LIMIT &&
              c->retention_ms >= -1 && c->retention_bytes >= -1 && c->appends_inflight_max >= 1 &&
              c->appends_inflight_max <= PART_APPENDS_INFLIGHT_MAX && c->leader_epoch >= 0;
    return ok ? 0 : -NG_EBADARG;
}

static struct seg *active(const struct part *p)
{
    ASSERT(p->seg_count > 0);
    return p->segs[p->seg_count - 1];
}

/* The placed appends whose writes were not submitted never will be: the
 * log failed or is cut back before them. They complete with the error. */
static void drop_unsubmitted(struct part *p)
{
    for (struct part_append *a = p->unsubmitted; a != NULL && a->state == APPEND_PLACED;
         a = a->next) {
        a->state = APPEND_WRITTEN;
        a->seg->ops_inflight--;
    }
    p->unsubmitted = NULL;
}

static void part_fail(struct part *p, int rc, const char *what)
{
    ASSERT(rc < 0);
    if (p->failed != 0) {
        return;
    }
    p->failed = rc;
    drop_unsubmitted(p);
    p->unwritten = NULL;
    p->held = NULL;
    log_error("partition %s: %s failed: %s; the log refuses writes until reopened", p->dir, what,
              err_str(rc));
}

/* ---- completing appends, in order ---- */

static bool rolled_back(const struct part *p, const struct part_append *a)
{
    return p->rollback_seq != 0 && a->seq >= p->rollback_seq;
}

static bool append_ready(const struct part *p, const struct part_append *a)
{
    if (p->failed != 0 || rolled_back(p, a)) {
        return a->state != APPEND_WRITING; /* its buffer is the kernel's until then */
    }
    return a->seq <= (a->durable ? p->seq_synced : p->seq_written);
}

static bool complete_ready(struct part *p)
{
    bool any = false;
    while (p->head != NULL && append_ready(p, p->head)) {
        struct part_append *a = p->head;
        p->head = a->next;
        if (p->head == NULL) {
            p->tail = NULL;
        }
        p->appends_count--;
        if (p->unwritten == a) { /* a rolled-back append leaves the cursor */
            p->unwritten = a->next;
        }
        any = true;
        int rc = p->failed != 0 ? p->failed : rolled_back(p, a) ? p->rollback_err : 0;
        a->done(a, rc); /* may append again */
    }
    return any;
}

/* Readers' mark follows the written one up to the commit cap; it never
 * goes down here (a cap set below it holds it). */
static void latest_update(struct part *p)
{
    int64_t to = p->offset_written < p->commit_cap ? p->offset_written : p->commit_cap;
    if (to > p->offset_latest) {
        p->offset_latest = to;
    }
    ASSERT(p->offset_latest <= p->offset_written);
}

static void advance_written(struct part *p)
{
    while (p->failed == 0 && p->unwritten != NULL && p->unwritten->state == APPEND_WRITTEN &&
           !rolled_back(p, p->unwritten)) {
        struct part_append *u = p->unwritten;
        /* Watermarks only grow, and stay within what was placed. */
        ASSERT(u->seq > p->seq_written && u->pos + u->bytes > u->seg->bytes_readable);
        ASSERT(u->hdr.offset_base ==
               p->offset_written); /* dense: each batch starts where the last ended */
        ASSERT(batch_offset_last(&u->hdr) < p->offset_next);
        p->seq_written = u->seq;
        u->seg->bytes_readable = u->pos + u->bytes;
        ASSERT(u->seg->bytes_readable <= u->seg->bytes);
        p->offset_written = batch_offset_last(&u->hdr) + 1;
        p->unwritten = u->next;
    }
    latest_update(p);
}

/* ---- writes ---- */

static void seg_writeback_done(struct ring_op *op, int res, uint32_t flags)
{
    (void)flags;
    struct seg *s = container_of(op, struct seg, writeback_op);
    struct part *p = s->owner;
    s->ops_inflight--;
    s->writeback_busy = false;
    if (res < 0) { /* the next fdatasync reports a real failure */
        log_debug("partition %s: early write-back: %s", p->dir, err_str(res));
    }
    pump(p);
}

static void writeback(struct part *p, struct seg *s)
{
    if (s->writeback_busy || s->bytes_readable - s->writeback_pos < WRITEBACK_BYTES) {
        return;
    }
    uint64_t len = s->bytes_readable - s->writeback_pos;
    io_uring_prep_sync_file_range(ring_sqe(p->env.ring, &s->writeback_op), s->fd_log, (unsigned)len,
                                  s->writeback_pos, SYNC_FILE_RANGE_WRITE);
    s->writeback_pos = s->bytes_readable;
    s->writeback_busy = true;
    s->ops_inflight++;
}

/* ---- a full disk: cut the log back and go on ---- */

/* Only the simple case is undone: the batch is in the active segment and no
 * roll is under way (a roll waits for its writes, so appends of two
 * segments are never in flight at once otherwise). */
static bool rollback_possible(const struct part *p, const struct part_append *a)
{
    return p->failed == 0 && p->roll_stage == ROLL_NONE && a->seg == active(p);
}

static void rollback_start(struct part *p, const struct part_append *a, int err)
{
    if (p->rollback_seq != 0 && p->rollback_seq <= a->seq) {
        return; /* an earlier append already set the cut */
    }
    drop_unsubmitted(p); /* all placed after a */
    p->rollback_seq = a->seq;
    p->rollback_err = err;
    p->rollback_pos = a->pos;
    p->rollback_offset = a->hdr.offset_base;
    log_warn("partition %s: disk full at offset %" PRId64 ": %s; failing the appends from "
             "there until the log is cut back",
             p->dir, a->hdr.offset_base, err_str(err));
}

/* Once every rolled-back append is done and the segment is quiet, cuts the
 * log where the first of them began. Returns true when it did. */
static bool rollback_finish(struct part *p)
{
    struct seg *s = active(p);
    if (p->rollback_seq == 0 || (p->tail != NULL && p->tail->seq >= p->rollback_seq) ||
        s->ops_inflight != 0 || p->syncs_inflight != 0) {
        return false;
    }
    /* The cut takes back only what never became readable. */
    ASSERT(p->rollback_offset >= p->offset_written && p->rollback_pos >= s->bytes_readable);
    int rc = seg_cut(s, p->rollback_pos, p->rollback_offset, &p->lim, p->env.scratch,
                     p->env.scratch_bytes);
    p->rollback_seq = 0;
    if (rc != 0) {
        part_fail(p, rc, "cutting the log after a full disk");
        return true;
    }
    p->offset_next = p->rollback_offset;
    p->sync_gate = p->seq_written;
    /* An epoch the cut batches began is gone: the file still names it
     * until the next append that adds to the cache rewrites it. */
    if (epochs_truncate_end(&p->epochs, p->rollback_offset) > 0) {
        p->epochs_stale = true;
    }
    log_warn("partition %s: log cut back to offset %" PRId64 " after a full disk", p->dir,
             p->rollback_offset);
    return true;
}

static struct iovec *append_iov(const struct part *p, const struct part_append *a)
{
    return &p->iovs[a->seq % p->iovs_count];
}

/* Submits the write of the run of a->run_count appends led by a, from
 * a->bytes_written on. Their iovecs are consecutive: the run never wraps
 * past the end of p->iovs. */
static void submit_run(struct part *p, struct part_append *a)
{
    ASSERT(a->run_count >= 1 && a->bytes_written < a->bytes);
    struct iovec *iov = append_iov(p, a);
    iov->iov_base = a->batch + a->bytes_written;
    iov->iov_len = a->bytes - a->bytes_written;
    struct io_uring_sqe *sqe = ring_sqe(p->env.ring, &a->op);
    uint64_t at = a->pos + a->bytes_written;
    if (a->run_count == 1) {
        io_uring_prep_write(sqe, a->seg->fd_log, iov->iov_base, (unsigned)iov->iov_len, at);
    } else {
        io_uring_prep_writev(sqe, a->seg->fd_log, iov, a->run_count, at);
    }
}

/* Gathers the placed appends from a into one run: same segment, the
 * next file range each, consecutive iovecs, within the limits. Returns
 * the last append of the run. */
static struct part_append *run_gather(struct part *p, struct part_append *a)
{
    struct part_append *last = a;
    size_t bytes = 0;
    a->run_count = 1;
    for (struct part_append *n = a->next; n != NULL && n->state == APPEND_PLACED; n = n->next) {
        if (n->seg != a->seg || a->run_count == PART_WRITE_IOVS_MAX ||
            n->seq % p->iovs_count == 0 || bytes + n->bytes > PART_WRITE_BYTES_MAX) {
            break;
        }
        ASSERT(n->pos == last->pos + last->bytes); /* placed back to back */
        struct iovec *iov = append_iov(p, n);
        iov->iov_base = n->batch;
        iov->iov_len = n->bytes;
        bytes += n->bytes;
        a->run_count++;
        last = n;
    }
    return last;
}

/* The ring is about to submit: every placed append goes out, in runs. */
static void write_placed(struct ring_deferred *d)
{
    struct part *p = container_of(d, struct part, write_hook);
    while (p->unsubmitted != NULL && p->unsubmitted->state == APPEND_PLACED) {
        struct part_append *a = p->unsubmitted;
        struct part_append *last = run_gather(p, a);
        for (struct part_append *x = a; x != last->next; x = x->next) {
            x->state = APPEND_WRITING;
        }
        submit_run(p, a);
        p->unsubmitted = last->next;
    }
    p->unsubmitted = NULL;
}

/* The first n appends of the run from a are over; returns the one after. */
static struct part_append *run_finish(struct part_append *a, uint32_t n, bool wrote)
{
    for (; n > 0; n--, a = a->next) {
        a->seg->ops_inflight--;
        a->state = APPEND_WRITTEN;
        if (wrote) {
            a->bytes_written = a->bytes;
            a->seg->dirty = true;
        }
    }
    return a;
}

/* A short write moved res of the run's bytes: the appends it covered are
 * written; the rest of the run is written again from where it stopped. */
static void run_short(struct part *p, struct part_append *a, size_t res)
{
    uint32_t whole = 0;
    size_t left = res;
    for (struct part_append *x = a; left >= x->bytes - x->bytes_written; x = x->next) {
        left -= x->bytes - x->bytes_written;
        whole++;
    }
    uint32_t count = a->run_count;
    ASSERT(whole < count);
    struct part_append *rest = run_finish(a, whole, true);
    rest->bytes_written += left;
    rest->run_count = count - whole;
    submit_run(p, rest);
}

static void append_write_done(struct ring_op *op, int res, uint32_t flags)
{
    (void)flags;
    struct part_append *a = container_of(op, struct part_append, op);
    struct part *p = a->part;
    size_t left = 0;
    bool any_plain = false; /* non-durable data: start its write-back */
    struct part_append *x = a;
    for (uint32_t i = 0; i < a->run_count; i++, x = x->next) {
        left += x->bytes - x->bytes_written;
        any_plain |= !x->durable;
    }
    struct seg *s = a->seg;
    if (res > 0 && (size_t)res < left && p->failed == 0) {
        run_short(p, a, (size_t)res);
        advance_written(p);
    } else if (res <= 0) {
        /* The whole run failed: each of its appends fails with the log, or
         * from the first of them on for a full disk. */
        run_finish(a, a->run_count, false);
        if ((res == -ENOSPC || res == -EDQUOT) && rollback_possible(p, a)) {
            rollback_start(p, a, res);
        } else {
            part_fail(p, res < 0 ? res : -EIO, "log write");
        }
    } else {
        run_finish(a, a->run_count, true);
        advance_written(p);
        if (any_plain) { /* durable data is flushed by its own rounds */
            writeback(p, s);
        }
    }
    pump(p);
}

static void index_flush(struct part *p, struct seg *s, bool force)
{
    struct {
        struct idx *x;
        int fd;
        uint32_t *busy_bytes;
        struct ring_op *op;
    } files[] = {
        {&s->index, s->fd_index, &s->index_write_bytes, &s->index_write_op},
        {&s->timeindex, s->fd_time, &s->time_write_bytes, &s->time_write_op},
    };
    for (size_t i = 0; i < ARRAY_LEN(files); i++) {
        struct idx *x = files[i].x;
        if (*files[i].busy_bytes != 0 ||
            (!force && x->count - x->count_flushed < INDEX_FLUSH_ENTRIES)) {
            continue;
        }
        const uint8_t *buf;
        size_t len;
        uint64_t at;
        if (!idx_take_unflushed(x, &buf, &len, &at)) {
            continue;
        }
        *files[i].busy_bytes = (uint32_t)len;
        files[i].op->kind = RING_INDEX_WRITE;
        io_uring_prep_write(ring_sqe(p->env.ring, files[i].op), files[i].fd, buf, (unsigned)len,
                            at);
        s->ops_inflight++;
    }
}

static bool roll_needed(const struct part *p, const struct seg *s, const struct part_append *a)
{
    if (s->bytes == 0) {
        return false;
    }
    int64_t rel_last = batch_offset_last(&a->hdr) - s->offset_base;
    return s->bytes + a->bytes > p->cfg.segment_bytes || rel_last > (int64_t)UINT32_MAX ||
           p->env.now_ms() - s->created_ms >= p->cfg.segment_ms;
}

/* Places a in the active segment and starts its write, or starts a roll and
 * returns false (a stays held). */
static bool place(struct part *p, struct part_append *a)
{
    struct seg *s = active(p);
    if (roll_needed(p, s, a)) {
        p->roll_stage = ROLL_DRAIN;
        p->roll_seq = a->seq - 1;
        return false;
    }
    a->seg = s;
    a->pos = s->bytes;
    a->bytes_written = 0;
    a->state = APPEND_PLACED;
    seg_note_batch(s, &a->hdr, a->pos, &p->lim);
    s->ops_inflight++;
    if (p->unsubmitted == NULL) {
        p->unsubmitted = a;
    }
    /* The write goes out when the ring next submits, with the appends
     * placed until then (write_placed()). */
    ring_defer(p->env.ring, &p->write_hook);
    index_flush(p, s, false);
    return true;
}

static void place_held(struct part *p)
{
    while (p->held != NULL && p->roll_stage == ROLL_NONE && p->failed == 0) {
        struct part_append *a = p->held;
        if (!place(p, a)) {
            roll_progress(p);
            return;
        }
        p->held = a->next;
    }
}

static bool header_same(const struct batch_header *x, const struct batch_header *y)
{
    return x->length == y->length && x->checksum == y->checksum && x->magic == y->magic &&
           x->leader_epoch == y->leader_epoch && x->attributes == y->attributes &&
           x->last_offset_delta == y->last_offset_delta &&
           x->timestamp_first_ms == y->timestamp_first_ms &&
           x->timestamp_max_ms == y->timestamp_max_ms && x->producer_id == y->producer_id &&
           x->producer_epoch == y->producer_epoch && x->sequence_base == y->sequence_base &&
           x->record_count == y->record_count;
}

/* A batch the caller validated (a->validated): its header is decoded again
 * (61 bytes, no checksum) against this partition's limit, and must be the
 * one the caller handed in. */
static int header_vouched(const struct part *p, struct part_append *a)
{
    struct batch_header h;
    int rc = batch_header_decode(a->batch, a->bytes, p->cfg.batch_bytes_max, &h);
    if (rc != 0) {
        return rc;
    }
    ASSERT(header_same(&h, &a->hdr));    /* the caller's header is of these bytes */
    ASSERT(batch_bytes(&h) <= a->bytes); /* it checked the whole batch was there */
    a->hdr = h;
    return 0;
}

/* A leader's batch continues this log as it is: at the next offset, with
 * an epoch no older than the log's newest. */
static int replica_check(const struct part *p, const struct batch_header *h)
{
    if (h->offset_base != p->offset_next) {
        return -NG_EDISCONTINUITY;
    }
    if (h->leader_epoch < 0) {
        return -NG_EBADARG; /* a leader stamps every batch it appends */
    }
    return h->leader_epoch < epochs_last(&p->epochs) ? -NG_EFENCED_LEADER_EPOCH : 0;
}

/* Rewrites the leader epoch cache's file, durably (blocking, through a
 * private ring). A full disk is the caller's to retry; any other failure
 * fails the log, as a failed fsync of its data would. */
static int epochs_write(struct part *p)
{
    struct ring r;
    int rc = ring_init(&r, 4);
    if (rc == 0) {
        rc = epochs_store(&p->epochs, p->dirfd, &r);
        ring_fini(&r);
    }
    if (rc == 0) {
        p->epochs_stale = false;
        return 0;
    }
    p->epochs_stale = true; /* the file may be the old one or the new one */
    if (rc != -ENOSPC && rc != -EDQUOT && rc != -ENOMEM) {
        part_fail(p, rc, "leader epoch cache write");
    }
    log_error("partition %s: writing %s: %s", p->dir, EPOCHS_FILE, err_str(rc));
    return rc;
}

/* Before a batch of epoch is placed at offset: a newer epoch than the
 * cache's last goes into it, and the file is rewritten first (also when it
 * still names epochs the log lost), so the file covers every batch that
 * can reach the disk. Returns 0, or -errno with the batch refused. */
static int epochs_note(struct part *p, int32_t epoch, int64_t offset)
{
    bool add = epoch > epochs_last(&p->epochs);
    if (!add && !p->epochs_stale) {
        return 0;
    }
    if (add) {
        int rc = epochs_add(&p->epochs, epoch, offset);
        if (rc != 0) {
            return rc;
        }
    }
    int rc = epochs_write(p);
    if (rc != 0 && add) {
        uint32_t dropped = epochs_truncate_end(&p->epochs, offset); /* not in the log */
        ASSERT(dropped == 1);
    }
    return rc;
}

int part_append(struct part *p, struct part_append *a)
{
    ASSERT(a->batch != NULL && a->done != NULL);
    if (p->failed != 0) {
        return -NG_EFAILED;
    }
    if (p->appends_count >= p->cfg.appends_inflight_max) {
        return -NG_EBUSY;
    }
    if (p->rollback_seq != 0) {
        return p->rollback_err; /* still cutting back after a full disk */
    }
    int rc = a->validated ? header_vouched(p, a)
                          : batch_validate(a->batch, a->bytes, p->cfg.batch_bytes_max, &a->hdr);
    if (rc != 0) {
        return rc;
    }
    if (batch_bytes(&a->hdr) != a->bytes) {
        return -NG_EBADLEN; /* trailing bytes after the batch */
    }
    ASSERT(p->offset_next >= p->offset_written);
    int32_t epoch = a->replica ? a->hdr.leader_epoch : p->cfg.leader_epoch;
    if (a->replica) {
        rc = replica_check(p, &a->hdr);
        if (rc != 0) {
            return rc;
        }
    }
    rc = epochs_note(p, epoch, p->offset_next);
    if (rc != 0) {
        return rc;
    }
    if (!a->replica) {
        a->hdr.offset_base = p->offset_next;
        batch_set_offset_base(a->batch, p->offset_next);
        a->hdr.leader_epoch = epoch;
        batch_set_leader_epoch(a->batch, epoch);
    }
    p->offset_next = batch_offset_last(&a->hdr) + 1;
    a->op = (struct ring_op){.done = append_write_done, .kind = RING_LOG_WRITE};
    a->part = p;
    a->seg = NULL;
    a->state = APPEND_HELD;
    a->seq = ++p->seq_next;
    a->next = NULL;
    if (p->tail != NULL) {
        p->tail->next = a;
    } else {
        p->head = a;
    }
    p->tail = a;
    p->appends_count++;
    if (p->unwritten == NULL) {
        p->unwritten = a;
    }
    if (p->held == NULL) {
        p->held = a;
        place_held(p);
    }
    return 0;
}

/* ---- syncs: group commit rounds and the roll's seal ---- */

/* Batches below offset are fdatasync'd. */
static void durable_update(struct part *p, int64_t offset)
{
    ASSERT(offset <= p->offset_written); /* a sync covers only writes done */
    if (offset > p->offset_durable) {
        p->offset_durable = offset;
    }
}

/* A sync op finished (round or roll). A round's appends become durable when
 * its last op succeeds; a roll's are handled by roll_progress(). */
static void sync_finished(struct part *p, int res, const char *what)
{
    ASSERT(p->syncs_inflight > 0);
    if (res < 0) {
        part_fail(p, res, what);
    }
    p->syncs_inflight--;
    if (p->syncs_inflight == 0 && p->roll_stage == ROLL_NONE && p->failed == 0) {
        ASSERT(p->sync_target <= p->seq_written); /* a sync covers only writes done */
        p->seq_synced = p->sync_target > p->seq_synced ? p->sync_target : p->seq_synced;
        durable_update(p, p->sync_target_offset);
        p->dir_gen_synced = p->dir_gen_syncing;
        p->sync_gate_due = true;
    }
    pump(p);
}

static void seg_sync_done(struct ring_op *op, int res, uint32_t flags)
{
    (void)flags;
    struct seg *s = container_of(op, struct seg, sync_op);
    s->ops_inflight--;
    sync_finished(s->owner, res, "log fdatasync");
}

/* A short index write: writes the rest of it, which ends at the flush mark
 * (nothing else moves the mark while a write is in flight). */
static void index_write_rest(struct part *p, struct seg *s, struct ring_op *op,
                             uint32_t *busy_bytes, uint32_t left)
{
    bool offsets = op == &s->index_write_op;
    const struct idx *x = offsets ? &s->index : &s->timeindex;
    uint64_t end = (uint64_t)x->count_flushed * x->entry_bytes;
    ASSERT(left <= end);
    *busy_bytes = left;
    io_uring_prep_write(ring_sqe(p->env.ring, op), offsets ? s->fd_index : s->fd_time,
                        x->entries + end - left, left, end - left);
    s->ops_inflight++;
}

/* The index ops write entries, or (during a roll) fsync the file. */
static void index_op_done(struct seg *s, struct ring_op *op, uint32_t *busy_bytes, int res)
{
    struct part *p = s->owner;
    s->ops_inflight--;
    if (op->kind == RING_INDEX_SYNC) {
        sync_finished(p, res, "index fsync");
        return;
    }
    uint32_t want = *busy_bytes;
    *busy_bytes = 0;
    if (res > 0 && (uint32_t)res < want && p->failed == 0) {
        index_write_rest(p, s, op, busy_bytes, want - (uint32_t)res);
        return;
    }
    if (res < 0 || (uint32_t)res != want) {
        part_fail(p, res < 0 ? res : -EIO, "index write");
    }
    pump(p);
}

static void seg_index_op_done(struct ring_op *op, int res, uint32_t flags)
{
    (void)flags;
    struct seg *s = container_of(op, struct seg, index_write_op);
    index_op_done(s, op, &s->index_write_bytes, res);
}

static void seg_time_op_done(struct ring_op *op, int res, uint32_t flags)
{
    (void)flags;
    struct seg *s = container_of(op, struct seg, time_write_op);
    index_op_done(s, op, &s->time_write_bytes, res);
}

static void dir_sync_done(struct ring_op *op, int res, uint32_t flags)
{
    (void)flags;
    sync_finished(container_of(op, struct part, dir_sync_op), res, "directory fsync");
}

static void submit_fsync(struct part *p, struct ring_op *op, enum ring_kind kind, int fd,
                         bool datasync)
{
    op->kind = kind;
    io_uring_prep_fsync(ring_sqe(p->env.ring, op), fd, datasync ? IORING_FSYNC_DATASYNC : 0);
    p->syncs_inflight++;
}

static void sync_dir_if_changed(struct part *p)
{
    p->dir_gen_syncing = p->dir_gen_synced;
    if (p->dir_gen > p->dir_gen_synced) {
        p->dir_gen_syncing = p->dir_gen;
        submit_fsync(p, &p->dir_sync_op, RING_DIR_SYNC, p->dirfd, false);
    }
}

/* Starts a group commit round when a durable append waits for one (it is
 * then the head: written appends ahead of it completed already) or the
 * directory changed. Returns true when the round finished at once. */
static bool maybe_sync(struct part *p)
{
    if (p->failed != 0 || p->syncs_inflight != 0 || p->roll_stage != ROLL_NONE) {
        return false;
    }
    const struct part_append *h = p->head;
    bool need_data = h != NULL && h->durable && h->seq <= p->seq_written;
    if (!need_data && p->dir_gen == p->dir_gen_synced) {
        return false;
    }
    /* Appenders answered by the last round append again from their
     * callbacks, just before this; a round begun now would leave their
     * writes to the next one, and rounds would carry half the appenders
     * each. Wait for the writes already submitted (page-cache copies,
     * microseconds), never for later ones. */
    if (p->sync_gate_due) {
        p->sync_gate = p->seq_next;
        p->sync_gate_due = false;
    }
    /* Appends past a disk-full cut will never be written: not worth waiting. */
    uint64_t gate = p->sync_gate;
    if (p->rollback_seq != 0 && gate >= p->rollback_seq) {
        gate = p->rollback_seq - 1;
    }
    if (need_data && p->cfg.group_commit && p->seq_written < gate) {
        return false;
    }
    p->sync_target = p->seq_synced;
    p->sync_target_offset = p->offset_durable;
    if (need_data) {
        /* Every write up to seq_written completed before this fdatasync
         * begins, so it covers them all; without group commit, one each
         * (the appends before h are written, so covered as well). */
        p->sync_target = p->cfg.group_commit ? p->seq_written : h->seq;
        p->sync_target_offset =
            p->cfg.group_commit ? p->offset_written : batch_offset_last(&h->hdr) + 1;
        for (uint32_t i = 0; i < p->seg_count; i++) {
            struct seg *s = p->segs[i];
            if (s->dirty || (!p->cfg.group_commit && s == active(p))) {
                s->dirty = false;
                s->ops_inflight++;
                submit_fsync(p, &s->sync_op, RING_LOG_SYNC, s->fd_log, true);
            }
        }
    }
    sync_dir_if_changed(p);
    if (p->syncs_inflight == 0) { /* data already covered by an earlier round */
        p->seq_synced = p->sync_target;
        durable_update(p, p->sync_target_offset);
        return true;
    }
    return false;
}

/* ---- rolling to a new segment ---- */

static void seg_attach(struct part *p, struct seg *s)
{
    s->owner = p;
    s->sync_op = (struct ring_op){.done = seg_sync_done, .kind = RING_LOG_SYNC};
    s->index_write_op = (struct ring_op){.done = seg_index_op_done, .kind = RING_INDEX_WRITE};
    s->time_write_op = (struct ring_op){.done = seg_time_op_done, .kind = RING_INDEX_WRITE};
    s->writeback_op = (struct ring_op){.done = seg_writeback_done, .kind = RING_LOG_WRITEBACK};
    s->writeback_pos = s->bytes;
}

static int segs_push(struct part *p, struct seg *s)
{
    if (p->seg_count == p->seg_cap) {
        uint32_t cap = p->seg_cap ? p->seg_cap * 2 : 8;
        struct seg **segs = realloc(p->segs, cap * sizeof(*segs));
        if (segs == NULL) {
            return -ENOMEM;
        }
        p->segs = segs;
        p->seg_cap = cap;
    }
    p->segs[p->seg_count++] = s;
    return 0;
}

/* Creates the segment starting at offset_base and makes it the active one. */
static int add_segment(struct part *p, int64_t offset_base)
{
    struct seg *s = malloc(sizeof(*s));
    if (s == NULL) {
        return -ENOMEM;
    }
    int rc = seg_create(s, p->dirfd, offset_base, &p->lim, p->env.now_ms());
    if (rc == 0) {
        rc = segs_push(p, s);
        if (rc != 0) {
            seg_close(s);
        }
    }
    if (rc != 0) {
        free(s);
        return rc;
    }
    seg_attach(p, s);
    p->dir_gen++;
    return 0;
}

/* Seals the active segment (indexes flushed; log, indexes and directory
 * synced), then creates its successor: so a segment with a successor is
 * always whole on disk. Returns true when a stage finished. */
static bool roll_progress(struct part *p)
{
    struct seg *s = active(p);
    if (p->roll_stage == ROLL_NONE || s->ops_inflight != 0 || p->syncs_inflight != 0) {
        return false;
    }
    if (p->failed != 0) {
        p->roll_stage = ROLL_NONE;
        return true;
    }
    switch (p->roll_stage) {
    case ROLL_DRAIN:
        p->roll_stage = ROLL_FLUSH;
        index_flush(p, s, true);
        return s->ops_inflight == 0 ? roll_progress(p) : true;
    case ROLL_FLUSH:
        p->roll_stage = ROLL_SYNC;
        s->ops_inflight += 3;
        submit_fsync(p, &s->sync_op, RING_LOG_SYNC, s->fd_log, true);
        submit_fsync(p, &s->index_write_op, RING_INDEX_SYNC, s->fd_index, true);
        submit_fsync(p, &s->time_write_op, RING_INDEX_SYNC, s->fd_time, true);
        sync_dir_if_changed(p);
        return true;
    case ROLL_SYNC: {
        p->seq_synced = p->roll_seq > p->seq_synced ? p->roll_seq : p->seq_synced;
        p->dir_gen_synced = p->dir_gen_syncing;
        s->dirty = false;
        /* Sealed whole; every segment before it was at its own roll. */
        durable_update(p, s->offset_next < p->offset_written ? s->offset_next : p->offset_written);
        int rc = add_segment(p, s->offset_next);
        p->roll_stage = ROLL_NONE;
        if (rc != 0) {
            part_fail(p, rc, "segment roll");
            return true;
        }
        place_held(p);
        return true;
    }
    default:
        UNREACHABLE();
    }
}

static void pump(struct part *p)
{
    bool progress = true;
    while (progress) {
        progress = complete_ready(p);
        progress |= rollback_finish(p);
        progress |= roll_progress(p);
        progress |= maybe_sync(p);
    }
    notify(p);
}

/* Tells the watches of marks that advanced since they were last told. */
static void notify(struct part *p)
{
    if (p->offset_latest > p->notified_latest) {
        p->notified_latest = p->offset_latest;
        if (p->watch_fn != NULL) {
            p->watch_fn(p->watch_arg);
        }
    }
    if (p->offset_durable > p->notified_durable) {
        p->notified_durable = p->offset_durable;
        if (p->durable_fn != NULL) {
            p->durable_fn(p->durable_arg);
        }
    }
}

/* ---- reads ---- */

int64_t part_offset_earliest(const struct part *p) { return p->segs[0]->offset_base; }

int64_t part_offset_latest(const struct part *p) { return p->offset_latest; }

int64_t part_offset_written(const struct part *p) { return p->offset_written; }

int64_t part_offset_durable(const struct part *p) { return p->offset_durable; }

int64_t part_offset_next(const struct part *p) { return p->offset_next; }

uint64_t part_bytes(const struct part *p)
{
    uint64_t total = 0;
    for (uint32_t i = 0; i < p->seg_count; i++) {
        total += p->segs[i]->bytes;
    }
    return total;
}

int part_failed(const struct part *p) { return p->failed; }

uint32_t part_damage_count(const struct part *p) { return p->damage_count; }

bool part_damage_first(const struct part *p, int64_t *offset_out)
{
    for (uint32_t i = 0; p->damage_count > 0 && i < p->seg_count; i++) {
        const struct seg *s = p->segs[i];
        if (s->damage_count > 0) {
            *offset_out = s->damage[0].offset; /* sorted by position, so by offset */
            return true;
        }
    }
    return false;
}

bool part_corrupt_range(const struct part *p, int64_t offset, int64_t *segment_base_out,
                        struct seg_damage *out)
{
    if (p->damage_count == 0 || offset < part_offset_earliest(p) || offset >= p->offset_written) {
        return false;
    }
    const struct seg *s = p->segs[seg_for_offset(p, offset)];
    const struct seg_damage *d = seg_damage_of_offset(s, offset);
    if (d == NULL) {
        return false;
    }
    *segment_base_out = s->offset_base;
    *out = *d;
    return true;
}

uint32_t part_segment_count(const struct part *p) { return p->seg_count; }

void part_segment(const struct part *p, uint32_t i, struct part_segment *out)
{
    ASSERT(i < p->seg_count);
    const struct seg *s = p->segs[i];
    *out = (struct part_segment){.offset_base = s->offset_base,
                                 .offset_end = s->offset_next,
                                 .bytes = s->bytes,
                                 .bytes_checked = s->verified_pos,
                                 .damage_count = s->damage_count};
}

uint32_t part_appends_room(const struct part *p)
{
    ASSERT(p->appends_count <= p->cfg.appends_inflight_max);
    return p->cfg.appends_inflight_max - p->appends_count;
}

/* The last segment whose base offset is <= offset. */
static uint32_t seg_for_offset(const struct part *p, int64_t offset)
{
    uint32_t lo = 0;
    uint32_t hi = p->seg_count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (p->segs[mid]->offset_base <= offset) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    ASSERT(lo > 0);
    return lo - 1;
}

/* Reads len bytes of a segment's log at at: a log shorter than the bytes
 * its offsets promise is damage. */
static int read_log(const struct seg *s, uint8_t *buf, size_t len, uint64_t at)
{
    int rc = file_pread_all(s->fd_log, buf, len, at);
    return rc == -NG_ETRUNCATED ? -NG_ECORRUPT : rc;
}

static void log_damage(const struct part *p, const struct seg *s, const struct seg_damage *d)
{
    log_error("partition %s: segment %020" PRId64 ".log: damaged range: offsets [%" PRId64
              ", %" PRId64 ") at bytes [%" PRIu64 ", %" PRIu64 "): %s; not served, the rest is",
              p->dir, s->offset_base, d->offset, d->offset_end, d->pos, d->pos_end,
              err_str(d->why));
}

/* One past the last offset of s that is readable. */
static int64_t seg_offset_end(const struct part *p, const struct seg *s)
{
    uint32_t i = seg_for_offset(p, s->offset_base);
    ASSERT(p->segs[i] == s);
    return i + 1 < p->seg_count ? p->segs[i + 1]->offset_base : p->offset_written;
}

/* A bad batch at pos of s, where offset expect should start: finds where
 * good batches resume (seg_resync(), among the readable bytes) and marks
 * the bytes between as a damaged range, logged. Returns -NG_ECORRUPT (also
 * when pos was marked already), or -errno / -ENOMEM (nothing marked). */
static int mark_damage(struct part *p, struct seg *s, uint64_t pos, int64_t expect, int why)
{
    ASSERT(pos < s->bytes_readable && expect >= s->offset_base);
    if (seg_damage_at(s, pos) != NULL || seg_damage_of_offset(s, expect) != NULL) {
        return -NG_ECORRUPT;
    }
    int64_t end_offset = seg_offset_end(p, s);
    if (expect >= end_offset) {
        return -NG_ECORRUPT; /* nothing left to mark */
    }
    uint64_t next;
    int64_t offset;
    int rc =
        seg_resync(s->fd_log, pos, expect, s->bytes_readable, end_offset, p->cfg.batch_bytes_max,
                   p->env.scratch, p->env.scratch_bytes, &next, &offset);
    if (rc != 0) {
        return rc;
    }
    struct seg_damage d = {.offset = expect,
                           .offset_end = offset >= 0 ? offset : end_offset,
                           .pos = pos,
                           .pos_end = next,
                           .why = why};
    rc = seg_add_damage(s, &d);
    if (rc != 0) {
        return rc;
    }
    p->damage_count++;
    log_damage(p, s, &d);
    return -NG_ECORRUPT;
}

/* Copies whole, checked batches of s from pos (the batch holding *offset,
 * based at base) into buf, before the first that reaches end. first: the
 * read has nothing yet, so one batch is copied even past bytes_max. Adds to
 * *copied and moves *offset past what it copied. Stops before a damaged
 * range; a bad batch is marked as one and returns -NG_ECORRUPT (after what
 * it copied before). */
static int copy_batches(struct part *p, struct seg *s, uint64_t pos, int64_t base,
                        int64_t end_offset, uint8_t *buf, size_t cap, size_t bytes_max, bool first,
                        size_t *copied, int64_t *offset)
{
    uint64_t end = s->bytes_readable;
    size_t want = bytes_max > BATCH_HEADER_BYTES ? bytes_max : BATCH_HEADER_BYTES;
    want = want < cap ? want : cap;
    want = end - pos < want ? (size_t)(end - pos) : want;
    int rc = read_log(s, buf, want, pos);
    size_t k = 0;
    while (rc == 0 && want - k >= BATCH_HEADER_BYTES && seg_damage_at(s, pos + k) == NULL) {
        struct batch_header h;
        rc = batch_header_decode(buf + k, want - k, p->cfg.batch_bytes_max, &h);
        size_t size = rc == 0 ? batch_bytes(&h) : 0;
        if (rc == 0 && size > want - k) {
            if (k > 0 || !first || pos + size > end) {
                break;
            }
            if (size > cap) {
                *copied = size;
                return -NG_ETOOBIG;
            }
            rc = read_log(s, buf + want, size - want, pos + want);
            want = size;
            continue;
        }
        rc = rc == 0 ? batch_validate(buf + k, size, p->cfg.batch_bytes_max, &h) : rc;
        if (rc == 0 && h.offset_base != base) {
            rc = -NG_EDISCONTINUITY;
        }
        if (rc != 0) {
            *copied += k;
            return mark_damage(p, s, pos + k, base, rc);
        }
        if (s->verified_pos == pos + k) { /* checked: file parts may serve it */
            s->verified_pos = pos + k + size;
        }
        if (batch_offset_last(&h) >= end_offset) {
            break; /* checked first, so damage there is still found */
        }
        k += size;
        base = batch_offset_last(&h) + 1;
        *offset = base;
    }
    *copied += k;
    return rc;
}

int part_read(struct part *p, int64_t offset, uint8_t *buf, size_t cap, size_t bytes_max,
              struct part_read_result *out)
{
    return part_read_to(p, offset, p->offset_latest, buf, cap, bytes_max, out);
}

int part_read_to(struct part *p, int64_t offset, int64_t end, uint8_t *buf, size_t cap,
                 size_t bytes_max, struct part_read_result *out)
{
    ASSERT(end <= p->offset_written);
    *out = (struct part_read_result){
        .offset_earliest = part_offset_earliest(p), .offset_latest = end, .offset_next = offset};
    if (offset < out->offset_earliest || offset > end) {
        return -NG_EOFFSET_RANGE;
    }
    uint32_t i = seg_for_offset(p, offset);
    while (offset < end && i < p->seg_count && out->bytes < bytes_max &&
           out->bytes + BATCH_HEADER_BYTES <= cap) {
        struct seg *s = p->segs[i];
        if (offset >= s->offset_next) {
            i++;
            continue;
        }
        if (seg_damage_of_offset(s, offset) != NULL) {
            return out->bytes > 0 ? 0 : -NG_ECORRUPT; /* served up to it */
        }
        uint32_t known = p->damage_count;
        uint64_t pos;
        struct batch_header h;
        int rc = seg_locate(s, offset, p->cfg.batch_bytes_max, p->env.scratch, p->env.scratch_bytes,
                            &pos, &h);
        if (rc == -NG_ECORRUPT) {
            rc = mark_damage(p, s, pos, h.offset_base, rc);
        } else if (rc == 0) {
            size_t before = out->bytes;
            rc = copy_batches(p, s, pos, h.offset_base, end, buf + out->bytes, cap - out->bytes,
                              bytes_max - out->bytes, before == 0, &out->bytes, &offset);
            out->offset_next = offset; /* past what it copied, also on an error */
            if (rc == 0 && out->bytes == before) {
                break; /* the next batch does not fit */
            }
        }
        if (rc == -NG_ECORRUPT && p->damage_count > known) {
            continue; /* marked: the offset is in it, or the read goes past it */
        }
        if (rc != 0) {
            return out->bytes > 0 && rc == -NG_ECORRUPT ? 0 : rc;
        }
    }
    return 0;
}

/* Whole batches of s from pos (a batch start; first: the read's first
 * batch, of first_bytes, taken even past bytes_max) within bytes_max and
 * cap, and within the checked bytes below stop (a batch boundary, at most
 * the readable end): *end_out (pos when none); *offset_out the offset
 * there when the headers walked to find it told it, else -1. */
static int range_end(struct part *p, const struct seg *s, uint64_t pos, uint64_t stop, bool first,
                     uint64_t first_bytes, uint64_t room, uint64_t *end_out, int64_t *offset_out)
{
    ASSERT(stop <= s->bytes_readable);
    uint64_t checked = s->verified_pos < stop ? s->verified_pos : stop;
    *end_out = pos;
    *offset_out = -1;
    if (pos >= checked) {
        return 0;
    }
    uint64_t limit = checked - pos < room ? checked : pos + room;
    if (first && limit < pos + first_bytes) {
        if (pos + first_bytes > checked) {
            return 0;
        }
        limit = pos + first_bytes; /* a boundary: the first batch whole */
    }
    if (limit == pos) {
        return 0;
    }
    if (limit == checked) { /* the stop or the mark: both boundaries */
        *end_out = limit;
        return 0;
    }
    return seg_batches_end(s, pos, limit, p->cfg.batch_bytes_max, p->env.scratch,
                           p->env.scratch_bytes, end_out, offset_out);
}

/* Where the ranges of s stop for a read that ends at offset end: the
 * readable end, or, in the segment holding end, the start of the batch
 * holding it; *stop_offset_out the offset there. */
static int range_stop(struct part *p, const struct seg *s, int64_t end, uint64_t *stop_out,
                      int64_t *stop_offset_out)
{
    *stop_out = s->bytes_readable;
    *stop_offset_out = seg_offset_end(p, s);
    if (end >= *stop_offset_out) {
        return 0;
    }
    *stop_offset_out = s->offset_base;
    if (end <= s->offset_base) {
        *stop_out = 0;
        return 0;
    }
    struct batch_header h = {.offset_base = s->offset_base};
    int rc = seg_locate(s, end, p->cfg.batch_bytes_max, p->env.scratch, p->env.scratch_bytes,
                        stop_out, &h);
    *stop_offset_out = h.offset_base;
    return rc == -NG_ECORRUPT ? -EAGAIN : rc; /* part_read_to() reports it */
}

/* The offset at `at`, the end of a range of s that began at pos (offset
 * pos_offset), where the ranges of s stop at stop (stop_offset) and the
 * read's first batch ends at first_end (first_next; 0 past the first
 * range): known for those ends, else read from the batch header at `at`
 * (a read cut by the checked mark: range_end() tells the offset where
 * bytes_max cut it). */
static int range_offset(struct part *p, const struct seg *s, uint64_t at, uint64_t pos,
                        int64_t pos_offset, uint64_t stop, int64_t stop_offset, uint64_t first_end,
                        int64_t first_next, int64_t *offset_out)
{
    if (at == pos || at == stop || at == first_end) {
        *offset_out = at == pos ? pos_offset : at == stop ? stop_offset : first_next;
        return 0;
    }
    int rc = seg_offset_at(s, at, p->cfg.batch_bytes_max, p->env.scratch, p->env.scratch_bytes,
                           offset_out);
    return rc == -NG_ECORRUPT ? -EAGAIN : rc;
}

int part_read_ranges(struct part *p, int64_t offset, size_t cap, size_t bytes_max,
                     struct part_range *ranges, uint32_t ranges_cap, uint32_t *count_out,
                     struct part_read_result *out)
{
    return part_read_ranges_to(p, offset, p->offset_latest, cap, bytes_max, ranges, ranges_cap,
                               count_out, out);
}

int part_read_ranges_to(struct part *p, int64_t offset, int64_t end, size_t cap, size_t bytes_max,
                        struct part_range *ranges, uint32_t ranges_cap, uint32_t *count_out,
                        struct part_read_result *out)
{
    ASSERT(ranges_cap > 0 && end <= p->offset_written);
    *count_out = 0;
    *out = (struct part_read_result){
        .offset_earliest = part_offset_earliest(p), .offset_latest = end, .offset_next = offset};
    if (offset < out->offset_earliest || offset > end) {
        return -NG_EOFFSET_RANGE;
    }
    int64_t base;
    struct seg_damage d;
    if (part_corrupt_range(p, offset, &base, &d)) {
        return -NG_ECORRUPT;
    }
    if (offset == end || bytes_max == 0 || cap < BATCH_HEADER_BYTES) {
        return 0;
    }
    if (p->damage_count != 0) {
        return -EAGAIN; /* part_read() alone decides what damage hides */
    }
    uint32_t i = seg_for_offset(p, offset);
    uint64_t pos;
    struct batch_header h;
    int rc = seg_locate(p->segs[i], offset, p->cfg.batch_bytes_max, p->env.scratch,
                        p->env.scratch_bytes, &pos, &h);
    if (rc != 0) {
        return rc == -NG_ECORRUPT ? -EAGAIN : rc; /* part_read() reports it */
    }
    if (batch_offset_last(&h) >= end) {
        return 0; /* the first batch reaches end: nothing to read yet */
    }
    uint64_t first_bytes = batch_bytes(&h);
    if (first_bytes > cap) {
        out->bytes = (size_t)first_bytes;
        return -NG_ETOOBIG;
    }
    uint64_t limit = bytes_max < cap ? bytes_max : cap;
    int64_t pos_offset = h.offset_base;
    for (;;) {
        const struct seg *s = p->segs[i];
        bool first = *count_out == 0;
        uint64_t stop;
        int64_t stop_offset;
        uint64_t range_to;
        int64_t next;
        rc = range_stop(p, s, end, &stop, &stop_offset);
        if (rc == 0) {
            rc = range_end(p, s, pos, stop, first, first_bytes, limit - out->bytes, &range_to,
                           &next);
        }
        if (rc == 0 && next < 0) {
            rc = range_offset(p, s, range_to, pos, pos_offset, stop, stop_offset,
                              first ? pos + first_bytes : 0, batch_offset_last(&h) + 1, &next);
        }
        if (rc != 0) {
            return first ? (rc == -NG_ECORRUPT ? -EAGAIN : rc) : 0;
        }
        if (range_to == pos) {
            return first ? -EAGAIN : 0; /* not checked yet, or nothing fits */
        }
        ranges[(*count_out)++] =
            (struct part_range){.fd = s->fd_log, .pos = pos, .bytes = range_to - pos};
        out->bytes += (size_t)(range_to - pos);
        out->offset_next = next;
        /* On into the next segment only from this one's readable end. */
        if (range_to < s->bytes_readable || i + 1 >= p->seg_count || *count_out == ranges_cap ||
            out->bytes + BATCH_HEADER_BYTES > limit) {
            return 0;
        }
        i++;
        pos = 0;
        pos_offset = p->segs[i]->offset_base;
    }
}

void part_set_watch(struct part *p, void (*fn)(void *arg), void *arg)
{
    p->watch_fn = fn;
    p->watch_arg = arg;
}

void part_set_durable_watch(struct part *p, void (*fn)(void *arg), void *arg)
{
    p->durable_fn = fn;
    p->durable_arg = arg;
}

/* A walk's callback, and where the walk ends: before the first batch that
 * reaches end (the segment walks go to the readable end). */
struct walk_to {
    int (*fn)(void *arg, const struct batch_header *h);
    void *arg;
    int64_t end;
    bool reached;
};

static int walk_to_fn(void *arg, const struct batch_header *h)
{
    struct walk_to *w = arg;
    if (batch_offset_last(h) >= w->end) {
        w->reached = true;
        return 1;
    }
    return w->fn(w->arg, h);
}

/* part_for_each_batch() over one segment from offset from (in it). A bad
 * header met is marked and the walk goes on past it. */
static int for_each_in(struct part *p, struct seg *s, int64_t from, struct walk_to *w)
{
    for (;;) {
        const struct seg_damage *d = seg_damage_of_offset(s, from);
        from = d != NULL ? d->offset_end : from;
        if (from >= s->offset_next || from >= w->end) {
            return 0;
        }
        uint32_t known = p->damage_count;
        uint64_t pos = 0;
        int64_t start = s->offset_base;
        struct batch_header h;
        int rc = 0;
        if (from > s->offset_base) {
            rc = seg_locate(s, from, p->cfg.batch_bytes_max, p->env.scratch, p->env.scratch_bytes,
                            &pos, &h);
            start = rc == -NG_ECORRUPT ? h.offset_base : -1; /* -1: the batch's own base */
        }
        if (rc == 0) {
            rc = seg_for_each_batch(s, pos, start, p->cfg.batch_bytes_max, p->env.scratch,
                                    p->env.scratch_bytes, walk_to_fn, w, &pos, &start);
        }
        if (rc == -NG_ECORRUPT && start >= 0) {
            rc = mark_damage(p, s, pos, start, rc);
        }
        if (rc != -NG_ECORRUPT || p->damage_count == known) {
            return rc == -NG_EOFFSET_RANGE ? 0 : rc;
        }
        from = start; /* marked: go on past it */
    }
}

int part_for_each_batch(struct part *p, int64_t from,
                        int (*fn)(void *arg, const struct batch_header *h), void *arg)
{
    return part_for_each_batch_to(p, from, p->offset_latest, fn, arg);
}

int part_for_each_batch_to(struct part *p, int64_t from, int64_t end,
                           int (*fn)(void *arg, const struct batch_header *h), void *arg)
{
    ASSERT(end <= p->offset_written);
    from = from < part_offset_earliest(p) ? part_offset_earliest(p) : from;
    struct walk_to w = {.fn = fn, .arg = arg, .end = end};
    if (from >= w.end) {
        return 0;
    }
    for (uint32_t i = seg_for_offset(p, from); i < p->seg_count; i++) {
        struct seg *s = p->segs[i];
        int rc = for_each_in(p, s, from > s->offset_base ? from : s->offset_base, &w);
        if (w.reached) {
            return 0;
        }
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

int part_scrub(struct part *p, uint8_t *buf, size_t cap, size_t budget, size_t *scrubbed_out)
{
    ASSERT(cap >= p->cfg.batch_bytes_max && buf != p->env.scratch);
    *scrubbed_out = 0;
    int64_t base;
    struct seg_damage d;
    while (part_corrupt_range(p, p->scrub_offset, &base, &d)) {
        p->scrub_offset = d.offset_end; /* nothing there to check */
    }
    if (p->scrub_offset < part_offset_earliest(p) || p->scrub_offset >= p->offset_written) {
        p->scrub_offset = part_offset_earliest(p); /* a new pass */
    }
    struct part_read_result r = {0};
    int rc = 0;
    if (p->scrub_offset < p->offset_written) {
        rc = part_read_to(p, p->scrub_offset, p->offset_written, buf, cap, budget, &r);
    }
    for (size_t at = 0; rc == 0 && at + BATCH_PREFIX_BYTES <= r.bytes;) {
        struct batch_header h;
        int hrc = batch_header_decode(buf + at, r.bytes - at, p->cfg.batch_bytes_max, &h);
        ASSERT(hrc == 0); /* part_read checked every batch it returned */
        at += batch_bytes(&h);
        p->scrub_offset = batch_offset_last(&h) + 1;
    }
    if (rc == -NG_ECORRUPT && part_corrupt_range(p, p->scrub_offset, &base, &d)) {
        p->scrub_offset = d.offset_end; /* found (and logged) now: on past it */
        rc = 0;
    }
    *scrubbed_out = r.bytes;
    return rc == 0 && p->damage_count != 0 ? -NG_ECORRUPT : rc;
}

uint64_t part_bytes_from(struct part *p, int64_t offset, uint32_t *first_batch_bytes)
{
    *first_batch_bytes = 0;
    int64_t base;
    struct seg_damage d;
    if (offset < part_offset_earliest(p) || offset >= p->offset_latest ||
        part_corrupt_range(p, offset, &base, &d)) {
        return 0;
    }
    uint32_t i = seg_for_offset(p, offset);
    uint64_t pos;
    struct batch_header h;
    if (seg_locate(p->segs[i], offset, p->cfg.batch_bytes_max, p->env.scratch, p->env.scratch_bytes,
                   &pos, &h) != 0) {
        return 0;
    }
    *first_batch_bytes = (uint32_t)batch_bytes(&h);
    uint64_t total = p->segs[i]->bytes_readable - pos;
    for (i++; i < p->seg_count; i++) {
        total += p->segs[i]->bytes_readable;
    }
    return total;
}

/* ---- timestamps ---- */

/* The first record of the batch at pos with a timestamp >= ts_ms. */
static int record_for_time(struct part *p, const struct seg *s, uint64_t pos, int64_t ts_ms,
                           int64_t *offset_out, int64_t *ts_out)
{
    size_t half = p->cfg.batch_bytes_max;
    uint8_t *batch = p->env.scratch;
    uint8_t *records = p->env.scratch + half;
    int rc = read_log(s, batch, BATCH_HEADER_BYTES, pos);
    struct batch_header h;
    if (rc == 0) {
        rc = batch_header_decode(batch, BATCH_HEADER_BYTES, half, &h);
    }
    if (rc == 0) {
        rc = read_log(s, batch, batch_bytes(&h), pos);
    }
    struct batch_reader br;
    if (rc == 0) {
        rc = batch_reader_open(&br, batch, batch_bytes(&h), half, p->env.zctx, records,
                               p->env.scratch_bytes - half);
    }
    struct batch_record rec;
    while (rc == 0 && (rc = batch_reader_next(&br, &rec)) == 1) {
        if (rec.timestamp_ms >= ts_ms) {
            *offset_out = rec.offset;
            if (ts_out != NULL) {
                *ts_out = rec.timestamp_ms;
            }
            return 0;
        }
        rc = 0;
    }
    if (rc < 0 && rc > -NG_ERR_FIRST) {
        return rc; /* -errno */
    }
    if (rc < 0) {
        log_error("partition %s: segment %020" PRId64 ".log: bad batch at byte %" PRIu64
                  " in a timestamp lookup: %s",
                  p->dir, s->offset_base, pos, err_str(rc));
    }
    return rc < 0 ? -NG_ECORRUPT : -NG_ENOTFOUND;
}

int part_offset_for_time(struct part *p, int64_t ts_ms, int64_t *offset_out, int64_t *ts_out)
{
    for (uint32_t i = 0; i < p->seg_count; i++) {
        const struct seg *s = p->segs[i];
        uint64_t pos;
        int rc = seg_find_time(s, ts_ms, p->cfg.batch_bytes_max, p->env.scratch,
                               p->env.scratch_bytes, &pos);
        if (rc == 0) {
            rc = record_for_time(p, s, pos, ts_ms, offset_out, ts_out);
        }
        if (rc == 0 && *offset_out >= p->offset_latest) {
            return -NG_ENOTFOUND; /* later records are not readable yet */
        }
        if (rc != -NG_ENOTFOUND) {
            return rc;
        }
    }
    return -NG_ENOTFOUND;
}

/* ---- retention ---- */

/* Deletes the first segment (not the active one, none of its I/O in
 * flight), logging why. Returns 0 or -errno (the segment then stays). */
static int drop_first_segment(struct part *p, const char *why)
{
    ASSERT(p->seg_count > 1 && p->segs[0]->ops_inflight == 0);
    struct seg *s = p->segs[0];
    int rc = seg_remove(p->dirfd, s->offset_base);
    if (rc != 0) {
        log_error("partition %s: deleting segment %020" PRId64 ": %s", p->dir, s->offset_base,
                  err_str(rc));
        return rc;
    }
    log_info("partition %s: deleted segment %020" PRId64 " (%s)", p->dir, s->offset_base, why);
    ASSERT(p->damage_count >= s->damage_count);
    p->damage_count -= s->damage_count;
    seg_close(s);
    free(s);
    memmove(p->segs, p->segs + 1, (p->seg_count - 1) * sizeof(*p->segs));
    p->seg_count--;
    p->dir_gen++;
    /* In memory only: entries below the log start are harmless in the
     * file, cut again at open, and gone at its next rewrite. */
    (void)epochs_truncate_start(&p->epochs, part_offset_earliest(p));
    return 0;
}

int part_retain(struct part *p, uint32_t *deleted_out)
{
    *deleted_out = 0;
    int64_t now = p->env.now_ms();
    int rc = 0;
    while (rc == 0 && p->seg_count > 1 && p->segs[0]->ops_inflight == 0) {
        const struct seg *s = p->segs[0];
        uint64_t total = part_bytes(p);
        bool by_size =
            p->cfg.retention_bytes >= 0 && total - s->bytes >= (uint64_t)p->cfg.retention_bytes;
        bool by_age = p->cfg.retention_ms >= 0 && now - s->timestamp_max_ms > p->cfg.retention_ms;
        if (!by_size && !by_age) {
            break;
        }
        rc = drop_first_segment(p, by_size ? "retention bytes" : "retention ms");
        *deleted_out += rc == 0;
    }
    if (*deleted_out > 0) {
        (void)maybe_sync(p); /* syncs the directory */
    }
    return rc;
}

int part_delete_before(struct part *p, int64_t offset, uint32_t *deleted_out)
{
    *deleted_out = 0;
    int rc = 0;
    while (rc == 0 && p->seg_count > 1 && p->segs[0]->ops_inflight == 0 &&
           p->segs[1]->offset_base <= offset) {
        rc = drop_first_segment(p, "before a given offset");
        *deleted_out += rc == 0;
    }
    if (*deleted_out > 0) {
        (void)maybe_sync(p); /* syncs the directory */
    }
    return rc;
}

/* ---- replicas: epochs, the commit cap, truncation ---- */

void part_set_commit_cap(struct part *p, int64_t offset)
{
    if (p->commit_cap == INT64_MAX) {
        /* The owner takes over what readers see: at once, even below what
         * an uncapped log showed (it sets its cap before it serves). */
        int64_t to = offset < p->offset_written ? offset : p->offset_written;
        to = to > part_offset_earliest(p) ? to : part_offset_earliest(p);
        p->offset_latest = to < p->offset_latest ? to : p->offset_latest;
        p->notified_latest = to < p->notified_latest ? to : p->notified_latest;
    }
    p->commit_cap = offset;
    latest_update(p);
    notify(p);
}

void part_set_leader_epoch(struct part *p, int32_t epoch)
{
    ASSERT(epoch >= 0);
    p->cfg.leader_epoch = epoch;
}

int part_epoch_end_offset(const struct part *p, int32_t epoch, int32_t *epoch_out, int64_t *end_out)
{
    epochs_end_offset(&p->epochs, epoch, p->offset_written, epoch_out, end_out);
    return 0;
}

/* Deletes the last segment's files (not the only segment). */
static int drop_last_segment(struct part *p)
{
    ASSERT(p->seg_count > 1);
    struct seg *s = active(p);
    int rc = seg_remove(p->dirfd, s->offset_base);
    if (rc != 0) {
        return rc;
    }
    ASSERT(p->damage_count >= s->damage_count);
    p->damage_count -= s->damage_count;
    seg_close(s);
    free(s);
    p->seg_count--;
    p->dir_gen++;
    return 0;
}

/* The log now ends at the active segment's end (what a truncation reached):
 * every mark comes down to it, none goes up; the epoch cache is cut with it
 * (its file is then stale until stored). */
static void marks_cut(struct part *p)
{
    int64_t end = active(p)->offset_next;
    ASSERT(end <= p->offset_written);
    p->offset_next = p->offset_written = end;
    p->offset_durable = p->offset_durable < end ? p->offset_durable : end;
    p->offset_latest = p->offset_latest < end ? p->offset_latest : end;
    if (p->commit_cap != INT64_MAX) { /* an uncapped log stays uncapped */
        p->commit_cap = p->commit_cap < end ? p->commit_cap : end;
    }
    p->notified_latest = p->notified_latest < end ? p->notified_latest : end;
    p->notified_durable = p->notified_durable < end ? p->notified_durable : end;
    if (epochs_truncate_end(&p->epochs, end) > 0) {
        p->epochs_stale = true;
    }
}

/* Where the log is cut to end at offset (< the written end): segment i, at
 * byte *pos_out, which starts offset *end_out: the batch holding offset, or
 * a damaged range (or bad bytes) before it. */
static int cut_point(struct part *p, int64_t offset, uint32_t *i_out, uint64_t *pos_out,
                     int64_t *end_out)
{
    uint32_t i = seg_for_offset(p, offset);
    const struct seg *s = p->segs[i];
    *i_out = i;
    *pos_out = 0;
    *end_out = s->offset_base;
    if (offset == s->offset_base) {
        return 0;
    }
    struct batch_header h;
    int rc = seg_locate(s, offset, p->cfg.batch_bytes_max, p->env.scratch, p->env.scratch_bytes,
                        pos_out, &h);
    if (rc == 0 || rc == -NG_ECORRUPT) { /* bad bytes: cut where they start */
        *end_out = h.offset_base;
        return 0;
    }
    return rc;
}

/* Truncation's steps, each durable before the next, so that a crash
 * between them leaves a log that recovers: the segments past i go (last
 * first, then the directory is synced), then segment i is cut and synced,
 * then the epoch cache follows. */
static int truncate_at(struct part *p, struct ring *r, uint32_t i, uint64_t pos, int64_t end)
{
    int rc = 0;
    while (rc == 0 && p->seg_count > i + 1) {
        rc = drop_last_segment(p);
    }
    if (p->dir_gen != p->dir_gen_synced) {
        rc = rc == 0 ? ring_fsync(r, RING_DIR_SYNC, p->dirfd, false) : rc;
        p->dir_gen_synced = rc == 0 ? p->dir_gen : p->dir_gen_synced;
    }
    struct seg *s = active(p); /* segment i, unless a deletion failed */
    rc = rc == 0 ? seg_unseal(s, p->dirfd) : rc;
    uint32_t damage = s->damage_count;
    rc = rc == 0 ? seg_cut(s, pos, end, &p->lim, p->env.scratch, p->env.scratch_bytes) : rc;
    p->damage_count -= damage - s->damage_count;
    marks_cut(p); /* as far as the cut went */
    if (rc == 0) {
        rc = ring_fsync(r, RING_LOG_SYNC, s->fd_log, true);
        s->dirty = false;
    }
    if (rc == 0 && p->epochs_stale) {
        rc = epochs_store(&p->epochs, p->dirfd, r);
        p->epochs_stale = rc != 0;
    }
    return rc;
}

int part_truncate(struct part *p, int64_t offset)
{
    ASSERT(part_idle(p) && p->rollback_seq == 0);
    if (p->failed != 0) {
        return -NG_EFAILED;
    }
    if (offset < part_offset_earliest(p)) {
        return -NG_EOFFSET_RANGE;
    }
    if (offset >= p->offset_written) {
        return 0;
    }
    uint32_t i;
    uint64_t pos;
    int64_t end;
    int rc = cut_point(p, offset, &i, &pos, &end);
    if (rc != 0) {
        return rc; /* nothing changed */
    }
    struct ring r;
    rc = ring_init(&r, 8);
    if (rc != 0) {
        return rc;
    }
    int64_t was = p->offset_written;
    rc = truncate_at(p, &r, i, pos, end);
    ring_fini(&r);
    if (rc != 0) {
        part_fail(p, rc, "truncation");
        return rc;
    }
    log_info("partition %s: truncated to offset %" PRId64 " (was %" PRId64 ")", p->dir, end, was);
    return 0;
}

/* Replaces every segment with an empty one at offset: the others go last
 * first, then the first one's files; its successor is created before it
 * leaves memory, so p always has an active segment. */
static int reset_segments(struct part *p, struct ring *r, int64_t offset, bool *replaced)
{
    int rc = 0;
    *replaced = false;
    while (rc == 0 && p->seg_count > 1) {
        rc = drop_last_segment(p);
    }
    struct seg *old = p->segs[0];
    rc = rc == 0 ? seg_remove(p->dirfd, old->offset_base) : rc;
    if (rc == 0) {
        p->seg_count = 0;
        rc = add_segment(p, offset); /* in segs[0]: no allocation */
        if (rc != 0) {
            p->segs[0] = old;
            p->seg_count = 1;
        } else {
            p->damage_count -= old->damage_count;
            seg_close(old);
            free(old);
            *replaced = true;
        }
    }
    if (p->dir_gen != p->dir_gen_synced) {
        rc = rc == 0 ? ring_fsync(r, RING_DIR_SYNC, p->dirfd, false) : rc;
        p->dir_gen_synced = rc == 0 ? p->dir_gen : p->dir_gen_synced;
    }
    return rc;
}

int part_reset(struct part *p, int64_t offset)
{
    ASSERT(part_idle(p) && p->rollback_seq == 0 && offset >= 0);
    if (p->failed != 0) {
        return -NG_EFAILED;
    }
    struct ring r;
    int rc = ring_init(&r, 8);
    if (rc != 0) {
        return rc;
    }
    int64_t was_start = part_offset_earliest(p);
    int64_t was_end = p->offset_written;
    bool replaced;
    rc = reset_segments(p, &r, offset, &replaced);
    if (!replaced) {
        marks_cut(p); /* the segments that went before a failure */
    } else {
        ASSERT(p->seg_count == 1 && p->damage_count == 0);
        p->offset_next = p->offset_written = p->offset_durable = p->offset_latest = offset;
        p->notified_latest = p->notified_durable = offset;
        if (p->commit_cap != INT64_MAX) {
            p->commit_cap = p->commit_cap < offset ? p->commit_cap : offset;
        }
        p->scrub_offset = offset;
        p->epochs.count = 0;
        p->epochs_stale = true;
    }
    if (rc == 0) {
        rc = epochs_store(&p->epochs, p->dirfd, &r);
        p->epochs_stale = rc != 0;
    }
    ring_fini(&r);
    if (rc != 0) {
        part_fail(p, rc, "reset");
        return rc;
    }
    log_info("partition %s: reset to an empty log at offset %" PRId64 " (was [%" PRId64 ", %" PRId64
             "))",
             p->dir, offset, was_start, was_end);
    return 0;
}

/* ---- lifecycle ---- */

bool part_idle(const struct part *p)
{
    if (p->head != NULL || p->syncs_inflight != 0 || p->roll_stage != ROLL_NONE) {
        return false;
    }
    for (uint32_t i = 0; i < p->seg_count; i++) {
        if (p->segs[i]->ops_inflight != 0) {
            return false;
        }
    }
    return true;
}

int part_drain(struct part *p)
{
    while (!part_idle(p)) {
        int rc = ring_run(p->env.ring, -1);
        if (rc < 0 && rc != -EINTR) {
            return rc;
        }
    }
    return 0;
}

/* Closes and frees everything p holds, with no I/O. */
static void part_release(struct part *p)
{
    for (uint32_t i = 0; i < p->seg_count; i++) {
        seg_close(p->segs[i]);
        free(p->segs[i]);
    }
    free(p->segs);
    if (p->dirfd >= 0) {
        close(p->dirfd);
    }
    if (p->env.ring != NULL) {
        ring_undefer(p->env.ring, &p->write_hook);
    }
    free(p->iovs);
    free(p->dir);
    epochs_fini(&p->epochs);
    memset(p, 0, sizeof(*p));
    p->dirfd = -1;
}

/* Opens dir, creating it (and syncing its parent) when missing. */
static int open_dir(const char *dir, struct ring *r, int *dirfd_out)
{
    bool created = false;
    ring_note_dirent(AT_FDCWD, dir, RING_DIRENT_MKDIR); /* power-loss tests (base/ring.h) */
    if (mkdir(dir, 0755) == 0) {
        created = true;
    } else if (errno != EEXIST) {
        return -errno;
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    int rc = 0;
    if (created) {
        char *copy = strdup(dir);
        int parent = copy ? open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
        rc = parent < 0 ? -errno : ring_fsync(r, RING_DIR_SYNC, parent, false);
        if (parent >= 0) {
            close(parent);
        }
        free(copy);
    }
    if (rc != 0) {
        close(fd);
        return rc;
    }
    *dirfd_out = fd;
    return 0;
}

/* Opens every listed segment: all but the last sealed, the last active. */
static int open_segments(struct part *p, const int64_t *bases, uint32_t count, struct ring *r)
{
    for (uint32_t i = 0; i < count; i++) {
        struct seg *s = malloc(sizeof(*s));
        if (s == NULL) {
            return -ENOMEM;
        }
        struct seg_scan scan;
        bool last = i + 1 == count;
        int rc = last ? seg_open_active(s, p->dirfd, bases[i], &p->lim, r, p->env.scratch,
                                        p->env.scratch_bytes, p->env.now_ms(), &scan)
                      : seg_open_sealed(s, p->dirfd, bases[i], bases[i + 1], &p->lim, r,
                                        p->env.scratch, p->env.scratch_bytes);
        if (rc == 0) {
            rc = segs_push(p, s);
            if (rc != 0) {
                seg_close(s);
            }
        }
        if (rc != 0) {
            free(s);
            return rc;
        }
        seg_attach(p, s);
        for (uint32_t k = 0; k < s->damage_count; k++) {
            log_damage(p, s, &s->damage[k]);
        }
        p->damage_count += s->damage_count;
    }
    return 0;
}

static int epochs_rebuild_fn(void *arg, const struct batch_header *h)
{
    struct epochs *e = arg;
    if (h->leader_epoch <= epochs_last(e)) {
        return 0;
    }
    return epochs_add(e, h->leader_epoch, h->offset_base);
}

/* The leader epoch of the batch holding offset (readable), in *epoch_out.
 * Returns 0, or a read's error. */
static int epoch_at(struct part *p, int64_t offset, int64_t *base_out, int32_t *epoch_out)
{
    uint64_t pos;
    struct batch_header h = {0};
    int rc = seg_locate(p->segs[seg_for_offset(p, offset)], offset, p->cfg.batch_bytes_max,
                        p->env.scratch, p->env.scratch_bytes, &pos, &h);
    *base_out = h.offset_base;
    *epoch_out = h.leader_epoch;
    return rc;
}

/* Whether the cache loaded agrees with the recovered log where it can be
 * checked cheaply (two headers): its newest epoch begins with a batch of
 * that epoch, and the log's last batch has no newer one. 1 when it does,
 * 0 when it does not (or a header cannot be read), or -errno. */
static int epochs_match(struct part *p)
{
    int64_t end = p->offset_written;
    if (p->epochs.count == 0 || end == part_offset_earliest(p)) {
        return p->epochs.count == 0 && end == part_offset_earliest(p);
    }
    const struct epoch_entry *last = &p->epochs.v[p->epochs.count - 1];
    int64_t base;
    int32_t epoch;
    int rc = epoch_at(p, last->offset_start, &base, &epoch);
    if (rc == 0 && (base != last->offset_start || epoch != last->epoch)) {
        return 0;
    }
    rc = rc == 0 ? epoch_at(p, end - 1, &base, &epoch) : rc;
    if (rc == -NG_ECORRUPT || rc == -NG_EOFFSET_RANGE) {
        return 0;
    }
    return rc < 0 ? rc : epoch <= last->epoch;
}

/* Loads the leader epoch cache and fits it to the recovered log (entries
 * past its end or before its start cut), or rebuilds it from the batch
 * headers when the file is missing, damaged or does not match; stores it
 * when that changed it (not for an empty log with no file: its first
 * append does). Blocking, through r. */
static int epochs_open(struct part *p, struct ring *r)
{
    int rc = epochs_load(&p->epochs, p->dirfd);
    bool store = false;
    if (rc == 0) {
        /* Start first: an entry moved up to the start of an emptied log
         * then goes with the end's cut. */
        store = epochs_truncate_start(&p->epochs, part_offset_earliest(p));
        store |= epochs_truncate_end(&p->epochs, p->offset_written) > 0;
        rc = epochs_match(p);
        if (rc < 0) {
            return rc;
        }
        rc = rc == 1 ? 0 : -NG_ECORRUPT;
        if (rc != 0) {
            log_warn("partition %s: %s does not match the log: rebuilt from the batches", p->dir,
                     EPOCHS_FILE);
        }
    } else if (rc == -NG_ECORRUPT || rc == -NG_EBADVERSION) {
        log_warn("partition %s: %s: %s: rebuilt from the batches", p->dir, EPOCHS_FILE,
                 err_str(rc));
    } else if (rc != -ENOENT) {
        return rc;
    }
    if (rc != 0) {
        p->epochs.count = 0;
        int walked = part_for_each_batch(p, part_offset_earliest(p), epochs_rebuild_fn, &p->epochs);
        if (walked != 0 && walked != -NG_ECORRUPT) {
            return walked; /* -errno; damage it could not mark leaves a shorter cache */
        }
        store = rc != -ENOENT || p->epochs.count > 0;
    }
    return store ? epochs_store(&p->epochs, p->dirfd, r) : 0;
}

int part_open(struct part *p, const char *dir, const struct part_config *cfg,
              const struct part_env *env)
{
    ASSERT(env->ring != NULL && env->now_ms != NULL && env->zctx != NULL);
    ASSERT(env->scratch_bytes >= PART_SCRATCH_BYTES(cfg->batch_bytes_max));
    int rc = part_config_check(cfg);
    if (rc != 0) {
        return rc;
    }
    memset(p, 0, sizeof(*p));
    p->cfg = *cfg;
    p->env = *env;
    p->lim = (struct seg_limits){.segment_bytes = cfg->segment_bytes,
                                 .index_interval_bytes = cfg->index_interval_bytes,
                                 .batch_bytes_max = cfg->batch_bytes_max};
    p->dirfd = -1;
    p->dir_sync_op = (struct ring_op){.done = dir_sync_done, .kind = RING_DIR_SYNC};
    p->write_hook = (struct ring_deferred){.fn = write_placed};
    p->iovs_count = cfg->appends_inflight_max;
    p->iovs = calloc(p->iovs_count, sizeof(*p->iovs));
    p->dir = strdup(dir);
    struct ring r;
    rc = p->dir == NULL || p->iovs == NULL ? -ENOMEM : ring_init(&r, 8);
    if (rc != 0) {
        free(p->iovs);
        free(p->dir);
        return rc;
    }
    int64_t *bases = NULL;
    uint32_t count = 0;
    rc = open_dir(dir, &r, &p->dirfd);
    if (rc == 0) {
        rc = format1_upgrade_dir(p->dirfd, dir, cfg->batch_bytes_max, env->upgrade_progress);
    }
    if (rc == 0) {
        rc = seg_list(p->dirfd, &bases, &count);
    }
    if (rc == 0 && count > 0) {
        rc = open_segments(p, bases, count, &r);
    } else if (rc == 0) {
        rc = add_segment(p, 0);
        rc = rc == 0 ? ring_fsync(&r, RING_DIR_SYNC, p->dirfd, false) : rc;
        p->dir_gen_synced = p->dir_gen;
    }
    free(bases);
    if (rc == 0) {
        int64_t end = active(p)->offset_next;
        p->offset_next = p->offset_written = p->offset_durable = p->offset_latest = end;
        p->notified_latest = p->notified_durable = end;
        p->commit_cap = INT64_MAX;
        rc = epochs_open(p, &r);
    }
    ring_fini(&r);
    if (rc != 0) {
        log_error("partition %s: open failed: %s", dir, err_str(rc));
        part_release(p);
        return rc;
    }
    return 0;
}

int part_close(struct part *p)
{
    ASSERT(part_idle(p));
    int rc = p->failed;
    struct ring r;
    if (rc == 0 && p->seg_count > 0) {
        rc = ring_init(&r, 8);
        if (rc == 0) {
            struct seg *s = active(p);
            const uint8_t *buf;
            size_t len;
            uint64_t at;
            if (idx_take_unflushed(&s->index, &buf, &len, &at)) {
                rc = ring_write_all(&r, RING_INDEX_WRITE, s->fd_index, buf, len, at);
            }
            if (rc == 0 && idx_take_unflushed(&s->timeindex, &buf, &len, &at)) {
                rc = ring_write_all(&r, RING_INDEX_WRITE, s->fd_time, buf, len, at);
            }
            rc = rc == 0 ? ring_fsync(&r, RING_LOG_SYNC, s->fd_log, true) : rc;
            rc = rc == 0 ? ring_fsync(&r, RING_INDEX_SYNC, s->fd_index, true) : rc;
            rc = rc == 0 ? ring_fsync(&r, RING_INDEX_SYNC, s->fd_time, true) : rc;
            rc = rc == 0 ? ring_fsync(&r, RING_DIR_SYNC, p->dirfd, false) : rc;
            ring_fini(&r);
        }
        if (rc != 0) {
            log_error("partition %s: close: %s", p->dir, err_str(rc));
        }
    }
    part_release(p);
    return rc;
}
