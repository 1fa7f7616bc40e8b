/* Contract tests for the replica side of storage/partition.h: leader epochs
 * (stamped, kept by replica appends, the cache and KIP-279's answer, its
 * file across reopen and damage), part_truncate() and part_reset() (and
 * their durability under the power-loss simulation, base/ring_sim.h), the
 * written and durable marks with their watch, and the commit cap. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/ring_sim.h"
#include "tests/storage_support.h"
#include "tests/sys_support.h"

static struct fx f;
static uint8_t batch[FX_BATCH_MAX];
static uint8_t buf[4 * FX_BATCH_MAX];

static char root[sizeof(f.dir)]; /* f.dir at setup: a test may move f.dir under it */

static void setup(void)
{
    fx_setup(&f);
    memcpy(root, f.dir, sizeof(root));
}

static void teardown(void)
{
    memcpy(f.dir, root, sizeof(root));
    fx_teardown(&f);
}

TestSuite(replica_log, .init = setup, .fini = teardown);

#define RECORDS 3 /* per batch: batch i holds offsets [3i, 3i + 3) */

/* Batch i of a test: RECORDS records of seed i, timestamps 1000000 + 1000i. */
static size_t make(uint32_t i, uint32_t value_bytes)
{
    return fx_batch(batch, sizeof(batch), RECORDS, value_bytes, i, 1000000 + 1000 * (int64_t)i,
                    BATCH_CODEC_NONE, NULL);
}

/* Appends batch i with leader epoch epoch (stamped); returns its base. */
static int64_t append_epoch(uint32_t i, int32_t epoch, bool durable)
{
    part_set_leader_epoch(&f.part, epoch);
    int64_t off = fx_append(&f, batch, make(i, 100), durable);
    cr_assert_geq(off, 0, "append %u: %s", i, err_str((int)off));
    return off;
}

/* Appends batches [from, to) with epoch epoch_of(i), durably. */
static void append_range(uint32_t from, uint32_t to, int32_t (*epoch_of)(uint32_t))
{
    for (uint32_t i = from; i < to; i++) {
        cr_assert_eq(append_epoch(i, epoch_of(i), true), (int64_t)i * RECORDS);
    }
}

static int32_t epoch_zero(uint32_t i)
{
    (void)i;
    return 0;
}

/* A new epoch every four batches: epoch e holds batches [4e, 4e + 4). */
static int32_t epoch_by_four(uint32_t i) { return (int32_t)(i / 4); }

struct sync_append {
    struct part_append a;
    bool done;
    int rc;
};

static void sync_done(struct part_append *a, int rc)
{
    struct sync_append *s = (struct sync_append *)a;
    s->done = true;
    s->rc = rc;
}

/* A leader's batch i, based at base with epoch epoch, appended as a
 * replica's; returns part_append()'s error or the completion's. */
static int replica_append(uint32_t i, int64_t base, int32_t epoch)
{
    size_t len = make(i, 100);
    batch_set_offset_base(batch, base);
    batch_set_leader_epoch(batch, epoch);
    struct sync_append s = {
        .a = {.batch = batch, .bytes = len, .durable = true, .replica = true, .done = sync_done}};
    int rc = part_append(&f.part, &s.a);
    while (rc == 0 && !s.done) {
        cr_assert_geq(ring_run(&f.ring, -1), 0);
    }
    return rc != 0 ? rc : s.rc;
}

/* The header of the batch holding offset. */
static struct batch_header header_at(int64_t offset)
{
    size_t len;
    int rc = fx_read_one(&f, offset, buf, sizeof(buf), &len);
    cr_assert_eq(rc, 0, "read at %ld: %s", (long)offset, err_str(rc));
    struct batch_header h;
    cr_assert_eq(batch_header_decode(buf, len, FX_BATCH_MAX, &h), 0);
    return h;
}

static void expect_end(int32_t asked, int32_t epoch, int64_t end)
{
    int32_t got_epoch = -7;
    int64_t got_end = -7;
    cr_assert_eq(part_epoch_end_offset(&f.part, asked, &got_epoch, &got_end), 0);
    cr_assert_eq(got_epoch, epoch, "epoch asked %d: epoch %d, want %d", asked, got_epoch, epoch);
    cr_assert_eq(got_end, end, "epoch asked %d: end %ld, want %ld", asked, (long)got_end,
                 (long)end);
}

/* Batches [0, count) read back whole and in order (batch i of seed i at
 * 3i), and the readable log ends right after them. */
static void check_batches(uint32_t count)
{
    for (uint32_t i = 0; i < count; i++) {
        size_t len;
        int rc = fx_read_one(&f, (int64_t)i * RECORDS, buf, sizeof(buf), &len);
        cr_assert_eq(rc, 0, "read batch %u: %s", i, err_str(rc));
        cr_assert_eq(fx_check_batch(buf, len, i, &f.zctx), RECORDS, "batch %u", i);
    }
    cr_assert_eq(part_offset_latest(&f.part), (int64_t)count * RECORDS);
}

static void reopen(void)
{
    fx_close(&f);
    cr_assert_eq(fx_open(&f), 0);
}

static bool exists(const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", f.dir, name);
    struct stat st;
    return stat(path, &st) == 0;
}

static bool segment_exists(int64_t base)
{
    char name[SEG_NAME_BYTES];
    seg_name(name, base, "log");
    return exists(name);
}

/* ---- leader epochs ---- */

Test(replica_log, appends_are_stamped_with_the_epoch_set_and_each_new_epoch_starts_an_entry)
{
    cr_assert_eq(fx_open(&f), 0);
    expect_end(2, 2, 0); /* an empty log: the epoch asked and the end */
    append_epoch(0, 1, true);
    append_epoch(1, 1, true);
    append_epoch(2, 4, false);
    cr_assert_eq(header_at(0).leader_epoch, 1);
    cr_assert_eq(header_at(5).leader_epoch, 1);
    cr_assert_eq(header_at(6).leader_epoch, 4);
    expect_end(0, -1, -1); /* older than every epoch: UNDEFINED */
    expect_end(1, 1, 6);
    expect_end(3, 1, 6);
    expect_end(4, 4, 9);
    expect_end(9, 4, 9);
}

Test(replica_log, a_replica_append_keeps_the_leaders_base_offset_and_epoch)
{
    cr_assert_eq(fx_open(&f), 0);
    part_set_leader_epoch(&f.part, 9); /* a replica's own epoch is not stamped */
    cr_assert_eq(replica_append(0, 0, 3), 0);
    cr_assert_eq(replica_append(1, 3, 3), 0);
    cr_assert_eq(replica_append(2, 6, 7), 0);
    cr_assert_eq(part_offset_next(&f.part), 9);
    cr_assert_eq(header_at(0).offset_base, 0);
    cr_assert_eq(header_at(3).leader_epoch, 3);
    cr_assert_eq(header_at(6).leader_epoch, 7);
    check_batches(3);
    expect_end(3, 3, 6);
    expect_end(5, 3, 6);
    expect_end(7, 7, 9);
}

Test(replica_log, a_replica_append_at_a_wrong_base_offset_is_refused_and_nothing_written)
{
    cr_assert_eq(fx_open(&f), 0);
    cr_assert_eq(replica_append(0, 0, 2), 0);
    uint64_t bytes = part_bytes(&f.part);
    cr_assert_eq(replica_append(1, 5, 2), -NG_EDISCONTINUITY); /* a gap */
    cr_assert_eq(replica_append(1, 1, 2), -NG_EDISCONTINUITY); /* an overlap */
    cr_assert_eq(replica_append(1, 4, 3), -NG_EDISCONTINUITY);
    cr_assert_eq(part_bytes(&f.part), bytes);
    cr_assert_eq(part_offset_next(&f.part), 3);
    cr_assert_eq(part_offset_written(&f.part), 3);
    expect_end(3, 2, 3); /* no entry for the refused epoch */
    cr_assert_eq(replica_append(1, 3, 3), 0);
    check_batches(2);
}

Test(replica_log, a_replica_append_with_an_older_epoch_is_fenced)
{
    cr_assert_eq(fx_open(&f), 0);
    cr_assert_eq(replica_append(0, 0, 5), 0);
    uint64_t bytes = part_bytes(&f.part);
    cr_assert_eq(replica_append(1, 3, 4), -NG_EFENCED_LEADER_EPOCH);
    cr_assert_eq(replica_append(1, 3, -1), -NG_EBADARG);
    cr_assert_eq(part_bytes(&f.part), bytes);
    cr_assert_eq(replica_append(1, 3, 5), 0);
}

Test(replica_log, epochs_survive_close_and_reopen)
{
    cr_assert_eq(fx_open(&f), 0);
    append_range(0, 10, epoch_by_four);
    reopen();
    cr_assert(exists(EPOCHS_FILE));
    expect_end(0, 0, 12);
    expect_end(1, 1, 24);
    expect_end(2, 2, 30);
    check_batches(10);
}

Test(replica_log, an_empty_log_writes_no_epoch_file_until_its_first_append)
{
    cr_assert_eq(fx_open(&f), 0);
    reopen();
    cr_assert_not(exists(EPOCHS_FILE));
    append_epoch(0, 0, false);
    cr_assert(exists(EPOCHS_FILE), "the file is written before the batch that needs it");
}

Test(replica_log, a_lowered_epoch_is_stamped_but_starts_no_entry_and_a_rebuild_agrees)
{
    cr_assert_eq(fx_open(&f), 0);
    append_epoch(0, 5, true);
    append_epoch(1, 2, true);
    cr_assert_eq(header_at(3).leader_epoch, 2);
    expect_end(5, 5, 6);
    reopen();
    expect_end(5, 5, 6);
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", f.dir, EPOCHS_FILE);
    cr_assert_eq(unlink(path), 0);
    reopen();
    expect_end(5, 5, 6);
    expect_end(2, -1, -1);
}

/* Damages the epoch file with damage(path), reopens, and checks that the
 * cache was rebuilt (same answers) and its file rewritten whole. */
static void damage_epochs_and_check(void (*damage)(const char *path))
{
    cr_assert_eq(fx_open(&f), 0);
    append_range(0, 10, epoch_by_four);
    fx_close(&f);
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", f.dir, EPOCHS_FILE);
    damage(path);
    cr_assert_eq(fx_open(&f), 0);
    expect_end(0, 0, 12);
    expect_end(1, 1, 24);
    expect_end(2, 2, 30);
    struct epochs e;
    epochs_init(&e);
    cr_assert_eq(epochs_load(&e, f.part.dirfd), 0, "rewritten at open");
    cr_assert_eq(e.count, 3);
    epochs_fini(&e);
    check_batches(10);
}

static void delete_file(const char *path) { cr_assert_eq(unlink(path), 0); }
static void flip_in_file(const char *path) { flip_byte(path, 17, 0x5a); }
static void tear_file(const char *path) { cr_assert_eq(truncate(path, 20), 0); }
static void empty_file(const char *path) { cr_assert_eq(truncate(path, 0), 0); }

Test(replica_log, a_deleted_epoch_file_is_rebuilt) { damage_epochs_and_check(delete_file); }
Test(replica_log, a_corrupted_epoch_file_is_rebuilt) { damage_epochs_and_check(flip_in_file); }
Test(replica_log, a_torn_epoch_file_is_rebuilt) { damage_epochs_and_check(tear_file); }
Test(replica_log, an_emptied_epoch_file_is_rebuilt) { damage_epochs_and_check(empty_file); }

/* Replaces the epoch file of the closed log with these entries. */
static void store_epochs(const struct epoch_entry *v, uint32_t count)
{
    struct epochs e;
    epochs_init(&e);
    for (uint32_t i = 0; i < count; i++) {
        cr_assert_eq(epochs_add(&e, v[i].epoch, v[i].offset_start), 0);
    }
    int dirfd = open(f.dir, O_RDONLY | O_DIRECTORY);
    cr_assert_geq(dirfd, 0);
    cr_assert_eq(epochs_store(&e, dirfd, &f.ring), 0);
    close(dirfd);
    epochs_fini(&e);
}

Test(replica_log, epochs_past_the_recovered_end_are_dropped_at_open)
{
    cr_assert_eq(fx_open(&f), 0);
    append_range(0, 6, epoch_by_four);
    fx_close(&f);
    /* A crash after the file named epoch 4 at 18 and before its batch was
     * durable. */
    const struct epoch_entry v[] = {{0, 0}, {1, 12}, {4, 18}};
    store_epochs(v, 3);
    cr_assert_eq(fx_open(&f), 0);
    expect_end(4, 1, 18);
    struct epochs e;
    epochs_init(&e);
    cr_assert_eq(epochs_load(&e, f.part.dirfd), 0);
    cr_assert_eq(e.count, 2, "the file fitted to the log at open");
    epochs_fini(&e);
}

Test(replica_log, an_epoch_file_that_does_not_match_the_log_is_rebuilt)
{
    cr_assert_eq(fx_open(&f), 0);
    append_range(0, 10, epoch_by_four);
    fx_close(&f);
    const struct epoch_entry wrong_last[] = {{0, 0}, {1, 12}, {7, 24}};
    store_epochs(wrong_last, 3);
    cr_assert_eq(fx_open(&f), 0);
    expect_end(1, 1, 24);
    expect_end(7, 2, 30);
    fx_close(&f);
    const struct epoch_entry missing_last[] = {{0, 0}, {1, 12}};
    store_epochs(missing_last, 2);
    cr_assert_eq(fx_open(&f), 0);
    expect_end(1, 1, 24);
    expect_end(2, 2, 30);
}

Test(replica_log, a_validated_replica_append_skips_the_checksum_pass_and_keeps_the_batch)
{
    cr_assert_eq(fx_open(&f), 0);
    size_t len = make(0, 100);
    batch_set_offset_base(batch, 0);
    batch_set_leader_epoch(batch, 6);
    struct sync_append s = {.a = {.batch = batch,
                                  .bytes = len,
                                  .durable = true,
                                  .validated = true,
                                  .replica = true,
                                  .done = sync_done}};
    cr_assert_eq(batch_validate(batch, len, FX_BATCH_MAX, &s.a.hdr), 0);
    cr_assert_eq(part_append(&f.part, &s.a), 0);
    while (!s.done) {
        cr_assert_geq(ring_run(&f.ring, -1), 0);
    }
    cr_assert_eq(s.rc, 0);
    cr_assert_eq(header_at(0).leader_epoch, 6);
    expect_end(6, 6, 3);
}

Test(replica_log, a_full_disk_for_the_epoch_file_refuses_the_append_and_a_retry_goes_through)
{
    cr_assert_eq(fx_open(&f), 0);
    append_epoch(0, 1, true);
    ring_fault_clear();
    ring_fault_arm(RING_META_WRITE, 1, -ENOSPC, false);
    part_set_leader_epoch(&f.part, 2);
    size_t len = make(1, 100);
    cr_assert_eq(fx_append(&f, batch, len, true), -ENOSPC);
    ring_fault_clear();
    cr_assert_eq(part_failed(&f.part), 0, "a full disk does not fail the log");
    cr_assert_eq(part_offset_next(&f.part), 3, "nothing placed");
    expect_end(2, 1, 3);
    cr_assert_eq(append_epoch(1, 2, true), 3);
    expect_end(1, 1, 3);
    expect_end(2, 2, 6);
    reopen();
    expect_end(1, 1, 3);
    expect_end(2, 2, 6);
}

Test(replica_log, a_failed_sync_of_the_epoch_file_fails_the_log_and_a_reopen_recovers)
{
    cr_assert_eq(fx_open(&f), 0);
    append_epoch(0, 1, true);
    ring_fault_clear();
    ring_fault_arm(RING_META_SYNC, 1, -EIO, false);
    part_set_leader_epoch(&f.part, 2);
    size_t len = make(1, 100);
    cr_assert_eq(fx_append(&f, batch, len, true), -EIO);
    ring_fault_clear();
    cr_assert_eq(part_failed(&f.part), -EIO, "an fsync is never retried");
    cr_assert_eq(fx_append(&f, batch, len, true), -NG_EFAILED);
    cr_assert_eq(part_drain(&f.part), 0);
    int rc = part_close(&f.part);
    cr_assert_eq(rc, -EIO);
    f.open = false;
    cr_assert_eq(fx_open(&f), 0);
    check_batches(1);
    expect_end(2, 1, 3);
    cr_assert_eq(append_epoch(1, 2, true), 3);
    expect_end(2, 2, 6);
}

/* A full disk rolls back an append that began epoch 2: the cache forgets
 * the epoch with it, and the log goes on with either epoch. */
static void rollback_of_a_new_epoch(int32_t next_epoch)
{
    cr_assert_eq(fx_open(&f), 0);
    append_epoch(0, 1, true);
    ring_fault_clear();
    ring_fault_arm(RING_LOG_WRITE, 1, -ENOSPC, false);
    part_set_leader_epoch(&f.part, 2);
    size_t len = make(1, 100);
    cr_assert_eq(fx_append(&f, batch, len, true), -ENOSPC);
    ring_fault_clear();
    cr_assert_eq(part_drain(&f.part), 0);
    cr_assert_eq(part_offset_next(&f.part), 3, "cut back");
    expect_end(2, 1, 3);
    cr_assert_eq(append_epoch(1, next_epoch, true), 3);
    expect_end(2, next_epoch, 6);
    struct epochs e; /* the file no longer names the lost start of epoch 2 */
    epochs_init(&e);
    cr_assert_eq(epochs_load(&e, f.part.dirfd), 0);
    cr_assert_eq(epochs_last(&e), next_epoch);
    cr_assert_eq(e.v[e.count - 1].offset_start, next_epoch == 1 ? 0 : 3);
    epochs_fini(&e);
    reopen();
    expect_end(2, next_epoch, 6);
    expect_end(1, 1, next_epoch == 1 ? 6 : 3);
}

Test(replica_log, a_full_disk_rollback_forgets_the_epoch_it_began) { rollback_of_a_new_epoch(2); }

Test(replica_log, a_full_disk_rollback_then_the_old_epoch_leaves_no_trace_of_the_new)
{
    rollback_of_a_new_epoch(1);
}

/* ---- truncation ---- */

Test(replica_log, truncate_inside_a_batch_cuts_at_that_batchs_start)
{
    cr_assert_eq(fx_open(&f), 0);
    append_range(0, 5, epoch_zero);
    cr_assert_eq(part_truncate(&f.part, 7), 0);
    cr_assert_eq(part_offset_next(&f.part), 6);
    cr_assert_eq(part_offset_written(&f.part), 6);
    cr_assert_eq(part_offset_durable(&f.part), 6);
    check_batches(2);
    struct part_read_result r;
    cr_assert_eq(part_read(&f.part, 9, buf, sizeof(buf), 1, &r), -NG_EOFFSET_RANGE);
    append_range(2, 4, epoch_zero); /* the log goes on from the cut */
    check_batches(4);
    reopen();
    check_batches(4);
}

Test(replica_log, truncate_at_a_batch_boundary_keeps_everything_below_it)
{
    cr_assert_eq(fx_open(&f), 0);
    append_range(0, 5, epoch_zero);
    cr_assert_eq(part_truncate(&f.part, 9), 0);
    check_batches(3);
    reopen();
    check_batches(3);
}

Test(replica_log, truncate_at_or_past_the_end_changes_nothing)
{
    cr_assert_eq(fx_open(&f), 0);
    append_range(0, 3, epoch_zero);
    uint64_t bytes = part_bytes(&f.part);
    cr_assert_eq(part_truncate(&f.part, 9), 0);
    cr_assert_eq(part_truncate(&f.part, 1000), 0);
    cr_assert_eq(part_bytes(&f.part), bytes);
    check_batches(3);
}

Test(replica_log, truncate_to_the_log_start_empties_it_and_below_is_refused)
{
    cr_assert_eq(fx_open(&f), 0);
    cr_assert_eq(part_reset(&f.part, 30), 0);
    for (uint32_t i = 0; i < 3; i++) {
        cr_assert_eq(append_epoch(i, 0, true), 30 + (int64_t)i * RECORDS);
    }
    cr_assert_eq(part_truncate(&f.part, 29), -NG_EOFFSET_RANGE);
    cr_assert_eq(part_offset_written(&f.part), 39);
    cr_assert_eq(part_truncate(&f.part, 30), 0);
    cr_assert_eq(part_offset_earliest(&f.part), 30);
    cr_assert_eq(part_offset_written(&f.part), 30);
    cr_assert_eq(part_bytes(&f.part), 0);
    reopen();
    cr_assert_eq(part_offset_earliest(&f.part), 30);
    cr_assert_eq(part_offset_latest(&f.part), 30);
}

/* A log of many small segments: batch i of 3 records at 3i, about ten
 * batches a segment. Returns the batch count. */
static uint32_t many_segments(int32_t (*epoch_of)(uint32_t))
{
    f.cfg.segment_bytes = 4096;
    f.cfg.retention_ms = -1;
    cr_assert_eq(fx_open(&f), 0);
    append_range(0, 40, epoch_of);
    cr_assert_geq(part_segment_count(&f.part), 4);
    return 40;
}

Test(replica_log, truncate_across_segments_deletes_the_later_ones)
{
    uint32_t count = many_segments(epoch_zero);
    uint32_t segs = part_segment_count(&f.part);
    struct part_segment s1;
    part_segment(&f.part, 1, &s1);
    int64_t later[64];
    for (uint32_t i = 2; i < segs; i++) {
        struct part_segment s;
        part_segment(&f.part, i, &s);
        later[i] = s.offset_base;
    }
    int64_t cut = s1.offset_base + RECORDS + 1; /* inside the second batch of segment 1 */
    cr_assert_eq(part_truncate(&f.part, cut), 0);
    cr_assert_eq(part_segment_count(&f.part), 2);
    for (uint32_t i = 2; i < segs; i++) {
        cr_assert_not(segment_exists(later[i]), "segment %ld deleted", (long)later[i]);
    }
    uint32_t kept = (uint32_t)((s1.offset_base + RECORDS) / RECORDS);
    check_batches(kept);
    /* The cut segment is the active one: appends go on, and roll again. */
    append_range(kept, count, epoch_zero);
    cr_assert_geq(part_segment_count(&f.part), 4);
    check_batches(count);
    reopen();
    check_batches(count);
}

Test(replica_log, truncate_to_a_segments_base_leaves_it_empty_and_active)
{
    many_segments(epoch_zero);
    struct part_segment s2;
    part_segment(&f.part, 2, &s2);
    cr_assert_eq(part_truncate(&f.part, s2.offset_base), 0);
    cr_assert_eq(part_segment_count(&f.part), 3);
    part_segment(&f.part, 2, &s2);
    cr_assert_eq(s2.bytes, 0);
    uint32_t kept = (uint32_t)(s2.offset_base / RECORDS);
    check_batches(kept);
    append_range(kept, kept + 2, epoch_zero);
    reopen();
    check_batches(kept + 2);
}

Test(replica_log, truncation_survives_a_reopen_and_the_log_recovers_whole)
{
    uint32_t count = many_segments(epoch_zero);
    cr_assert_eq(part_truncate(&f.part, 3 * 17 + 2), 0);
    reopen();
    check_batches(17);
    cr_assert_eq(part_damage_count(&f.part), 0);
    append_range(17, count, epoch_zero);
    reopen();
    check_batches(count);
}

Test(replica_log, truncate_cuts_the_epoch_cache_with_the_log)
{
    many_segments(epoch_by_four);                        /* epochs 0..9, epoch e from 12e */
    cr_assert_eq(part_truncate(&f.part, 12 * 6 + 4), 0); /* inside epoch 6's second batch */
    expect_end(6, 6, 75);
    expect_end(9, 6, 75);
    expect_end(5, 5, 72);
    reopen();
    expect_end(9, 6, 75);
    cr_assert_eq(part_truncate(&f.part, 12 * 6), 0); /* epoch 6 gone whole */
    expect_end(9, 5, 72);
    cr_assert_eq(append_epoch(24, 11, true), 72);
    expect_end(9, 5, 72);
    expect_end(11, 11, 75);
    reopen();
    expect_end(9, 5, 72);
    expect_end(11, 11, 75);
}

Test(replica_log, truncate_brings_every_mark_down_and_the_cap_with_them)
{
    cr_assert_eq(fx_open(&f), 0);
    append_range(0, 6, epoch_zero);
    part_set_commit_cap(&f.part, 15);
    cr_assert_eq(part_offset_latest(&f.part), 15);
    cr_assert_eq(part_truncate(&f.part, 6), 0);
    cr_assert_eq(part_offset_latest(&f.part), 6);
    cr_assert_eq(part_offset_written(&f.part), 6);
    cr_assert_eq(part_offset_durable(&f.part), 6);
    append_range(2, 4, epoch_zero);
    cr_assert_eq(part_offset_latest(&f.part), 6, "the cap came down to the cut");
    part_set_commit_cap(&f.part, INT64_MAX);
    cr_assert_eq(part_offset_latest(&f.part), 12);
}

Test(replica_log, truncate_into_a_damaged_range_cuts_at_its_start)
{
    cr_assert_eq(fx_open(&f), 0);
    append_range(0, 6, epoch_zero);
    fx_close(&f);
    char name[SEG_NAME_BYTES];
    seg_name(name, 0, "log");
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", f.dir, name);
    size_t len = make(0, 100);                         /* every batch has the same size */
    flip_byte(path, (off_t)(2 * len + len / 2), 0x5a); /* batch 2's records */
    cr_assert_eq(fx_open(&f), 0);
    cr_assert_eq(part_damage_count(&f.part), 1);
    cr_assert_eq(part_truncate(&f.part, 7), 0);
    cr_assert_eq(part_offset_written(&f.part), 6);
    cr_assert_eq(part_damage_count(&f.part), 0);
    check_batches(2);
    append_range(2, 4, epoch_zero);
    reopen();
    cr_assert_eq(part_damage_count(&f.part), 0);
    check_batches(4);
}

/* ---- reset ---- */

Test(replica_log, reset_starts_an_empty_log_at_the_offset)
{
    many_segments(epoch_by_four);
    struct part_segment s0;
    part_segment(&f.part, 0, &s0);
    cr_assert_eq(part_reset(&f.part, 1000), 0);
    cr_assert_not(segment_exists(s0.offset_base));
    cr_assert_eq(part_segment_count(&f.part), 1);
    cr_assert_eq(part_offset_earliest(&f.part), 1000);
    cr_assert_eq(part_offset_latest(&f.part), 1000);
    cr_assert_eq(part_offset_written(&f.part), 1000);
    cr_assert_eq(part_offset_durable(&f.part), 1000);
    cr_assert_eq(part_offset_next(&f.part), 1000);
    expect_end(3, 3, 1000);                      /* no epoch left */
    cr_assert_eq(replica_append(0, 1000, 2), 0); /* a leader's epochs are the log's now */
    reopen();
    cr_assert_eq(part_offset_earliest(&f.part), 1000);
    cr_assert_eq(header_at(1001).leader_epoch, 2);
    expect_end(1, -1, -1);
    expect_end(2, 2, 1003);
}

/* ---- the written and durable marks ---- */

static int durable_calls;
static int64_t durable_seen;

static void on_durable(void *arg)
{
    struct part *p = arg;
    durable_calls++;
    cr_assert_gt(part_offset_durable(p), durable_seen, "called only when it advanced");
    durable_seen = part_offset_durable(p);
}

static void durable_follows_the_syncs(bool group_commit)
{
    f.cfg.group_commit = group_commit;
    cr_assert_eq(fx_open(&f), 0);
    append_range(0, 2, epoch_zero);
    reopen();
    cr_assert_eq(part_offset_durable(&f.part), 6, "after open: the recovered end");
    durable_calls = 0;
    durable_seen = 6;
    part_set_durable_watch(&f.part, on_durable, &f.part);
    append_epoch(2, 0, false);
    cr_assert_eq(part_offset_written(&f.part), 9);
    cr_assert_eq(part_offset_durable(&f.part), 6, "written, not synced");
    cr_assert_eq(durable_calls, 0);
    append_epoch(3, 0, true);
    cr_assert_eq(part_offset_durable(&f.part), 12, "the sync covers the earlier write too");
    cr_assert_geq(durable_calls, 1);
    cr_assert_eq(durable_seen, 12);
    part_set_durable_watch(&f.part, NULL, NULL);
    append_epoch(4, 0, true);
    cr_assert_eq(durable_seen, 12, "NULL stops the calls");
}

Test(replica_log, durable_follows_group_commits_and_its_watch_is_told)
{
    durable_follows_the_syncs(true);
}

Test(replica_log, durable_follows_single_syncs_and_its_watch_is_told)
{
    durable_follows_the_syncs(false);
}

Test(replica_log, a_segment_roll_makes_what_it_sealed_durable)
{
    f.cfg.segment_bytes = 4096;
    cr_assert_eq(fx_open(&f), 0);
    for (uint32_t i = 0; part_segment_count(&f.part) < 2; i++) {
        append_epoch(i, 0, false);
    }
    struct part_segment s0;
    part_segment(&f.part, 0, &s0);
    cr_assert_geq(part_offset_durable(&f.part), s0.offset_end);
}

/* ---- the commit cap ---- */

static int watch_calls;

static void on_watch(void *arg)
{
    (void)arg;
    watch_calls++;
}

static int count_batch(void *arg, const struct batch_header *h)
{
    (void)h;
    (*(int *)arg)++;
    return 0;
}

static uint64_t ranges_bytes(int64_t offset, int64_t end)
{
    struct part_range ranges[4];
    uint32_t count;
    struct part_read_result r;
    int rc =
        part_read_ranges_to(&f.part, offset, end, sizeof(buf), sizeof(buf), ranges, 4, &count, &r);
    cr_assert_eq(rc, 0, "ranges: %s", err_str(rc));
    cr_assert_eq(r.offset_latest, end);
    return r.bytes;
}

Test(replica_log, the_commit_cap_hides_what_lies_past_it_from_every_reader)
{
    cr_assert_eq(fx_open(&f), 0);
    cr_assert_eq(part_offset_latest(&f.part), 0);
    append_range(0, 4, epoch_zero);
    cr_assert_eq(part_offset_latest(&f.part), 12, "no cap: latest is the written end");
    size_t len = make(0, 100);
    part_set_commit_cap(&f.part, 6);
    cr_assert_eq(part_offset_latest(&f.part), 6);
    cr_assert_eq(part_offset_written(&f.part), 12);
    struct part_read_result r;
    cr_assert_eq(part_read(&f.part, 0, buf, sizeof(buf), sizeof(buf), &r), 0);
    cr_assert_eq(r.bytes, 2 * len);
    cr_assert_eq(r.offset_latest, 6);
    cr_assert_eq(part_read(&f.part, 6, buf, sizeof(buf), sizeof(buf), &r), 0);
    cr_assert_eq(r.bytes, 0);
    cr_assert_eq(part_read(&f.part, 9, buf, sizeof(buf), sizeof(buf), &r), -NG_EOFFSET_RANGE);
    struct part_range ranges[4];
    uint32_t count;
    cr_assert_eq(part_read_ranges(&f.part, 0, sizeof(buf), sizeof(buf), ranges, 4, &count, &r), 0);
    cr_assert_eq(r.bytes, 2 * len);
    int batches = 0;
    cr_assert_eq(part_for_each_batch(&f.part, 0, count_batch, &batches), 0);
    cr_assert_eq(batches, 2);
    int64_t off;
    cr_assert_eq(part_offset_for_time(&f.part, 1000000 + 1000 * 2, &off, NULL), -NG_ENOTFOUND);
    cr_assert_eq(part_offset_for_time(&f.part, 1000000 + 1000, &off, NULL), 0);
    cr_assert_eq(off, 3);
    uint32_t first;
    cr_assert_eq(part_bytes_from(&f.part, 6, &first), 0);
    cr_assert_gt(part_bytes_from(&f.part, 3, &first), 0);
    /* A follower is served past the cap. */
    cr_assert_eq(part_read_to(&f.part, 6, 12, buf, sizeof(buf), sizeof(buf), &r), 0);
    cr_assert_eq(r.bytes, 2 * len);
    cr_assert_eq(fx_check_batch(buf, len, 2, &f.zctx), RECORDS);
    cr_assert_eq(ranges_bytes(6, 12), 2 * len);
    cr_assert_eq(ranges_bytes(0, 12), 4 * len);
    cr_assert_eq(ranges_bytes(3, 9), 2 * len);
}

Test(replica_log, a_cap_inside_a_batch_stops_readers_before_that_batch)
{
    cr_assert_eq(fx_open(&f), 0);
    append_range(0, 4, epoch_zero);
    size_t len = make(0, 100);
    part_set_commit_cap(&f.part, 7);
    cr_assert_eq(part_offset_latest(&f.part), 7);
    struct part_read_result r;
    cr_assert_eq(part_read(&f.part, 0, buf, sizeof(buf), sizeof(buf), &r), 0);
    cr_assert_eq(r.bytes, 2 * len);
    cr_assert_eq(part_read(&f.part, 6, buf, sizeof(buf), sizeof(buf), &r), 0);
    cr_assert_eq(r.bytes, 0);
    cr_assert_eq(ranges_bytes(0, 7), 2 * len);
    cr_assert_eq(ranges_bytes(6, 7), 0);
    int batches = 0;
    cr_assert_eq(part_for_each_batch(&f.part, 0, count_batch, &batches), 0);
    cr_assert_eq(batches, 2);
}

Test(replica_log, the_watch_fires_when_the_cap_moves_latest_and_latest_never_goes_back)
{
    cr_assert_eq(fx_open(&f), 0);
    part_set_commit_cap(&f.part, 3);
    watch_calls = 0;
    part_set_watch(&f.part, on_watch, NULL);
    append_range(0, 1, epoch_zero);
    cr_assert_eq(watch_calls, 1, "latest moved up to the cap");
    append_range(1, 3, epoch_zero);
    cr_assert_eq(watch_calls, 1, "held at the cap");
    cr_assert_eq(part_offset_latest(&f.part), 3);
    part_set_commit_cap(&f.part, 6);
    cr_assert_eq(watch_calls, 2);
    cr_assert_eq(part_offset_latest(&f.part), 6);
    part_set_commit_cap(&f.part, 3);
    cr_assert_eq(part_offset_latest(&f.part), 6, "a lower cap holds latest where it is");
    cr_assert_eq(watch_calls, 2);
    part_set_commit_cap(&f.part, 5);
    cr_assert_eq(part_offset_latest(&f.part), 6);
    part_set_commit_cap(&f.part, INT64_MAX);
    cr_assert_eq(part_offset_latest(&f.part), 9);
    cr_assert_eq(watch_calls, 3);
    append_range(3, 4, epoch_zero);
    cr_assert_eq(watch_calls, 4, "no cap: every write that lands");
}

Test(replica_log, a_cap_past_the_written_end_lets_writes_through_as_they_land)
{
    cr_assert_eq(fx_open(&f), 0);
    part_set_commit_cap(&f.part, 100);
    append_range(0, 3, epoch_zero);
    cr_assert_eq(part_offset_latest(&f.part), 9);
    check_batches(3);
}

Test(replica_log, the_scrubber_checks_past_the_cap)
{
    cr_assert_eq(fx_open(&f), 0);
    append_range(0, 4, epoch_zero);
    part_set_commit_cap(&f.part, 3);
    static uint8_t scrub[2 * FX_BATCH_MAX];
    size_t done;
    cr_assert_eq(part_scrub(&f.part, scrub, sizeof(scrub), sizeof(scrub), &done), 0);
    cr_assert_eq(done, 4 * make(0, 100));
}

/* ---- durability under the power-loss simulation ---- */

static char stash[300];

/* Starts the simulation with its stash beside the partition directory. */
static void sim_start(void)
{
    snprintf(stash, sizeof(stash), "%s-stash", f.dir);
    int rc = ring_sim_enable(stash);
    cr_assert_eq(rc, 0, "ring_sim_enable: %s", err_str(rc));
}

static void sim_stop(void)
{
    ring_sim_disable();
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", stash);
    cr_assert_eq(system(cmd), 0);
}

/* The machine goes down now: the log fails and closes, the cut drops what
 * no fsync made durable, and the log is opened again. */
static void power_cut(enum ring_sim_cut how, uint64_t seed)
{
    ring_sim_crash_now();
    cr_assert_eq(part_drain(&f.part), 0);
    int rc = part_close(&f.part); /* its syncs fail: the machine is gone */
    (void)rc;
    f.open = false;
    cr_assert_eq(ring_sim_power_cut(how, seed), 0);
    cr_assert_eq(fx_open(&f), 0);
}

/* One epoch: the truncation's own syncs, with no rewrite of the epoch
 * file (whose directory sync would cover the segments' unlinks too). */
Test(replica_log, a_truncation_is_durable_when_it_returns)
{
    uint32_t count = many_segments(epoch_zero);
    sim_start();
    cr_assert_eq(part_truncate(&f.part, 3 * 13 + 1), 0);
    power_cut(RING_SIM_DROP, 1);
    check_batches(13);
    append_range(13, count, epoch_zero);
    check_batches(count);
    sim_stop();
}

Test(replica_log, a_truncation_of_epochs_is_durable_when_it_returns)
{
    uint32_t count = many_segments(epoch_by_four);
    sim_start();
    cr_assert_eq(part_truncate(&f.part, 3 * 13 + 1), 0);
    power_cut(RING_SIM_DROP, 1);
    check_batches(13);
    expect_end(9, 3, 39);
    append_range(13, count, epoch_by_four);
    check_batches(count);
    sim_stop();
}

Test(replica_log, a_reset_is_durable_when_it_returns)
{
    many_segments(epoch_by_four);
    sim_start();
    cr_assert_eq(part_reset(&f.part, 500), 0);
    power_cut(RING_SIM_DROP, 1);
    cr_assert_eq(part_offset_earliest(&f.part), 500);
    cr_assert_eq(part_offset_written(&f.part), 500);
    expect_end(9, 9, 500);
    sim_stop();
}

static uint64_t crash_points;

/* A crash at every point of a truncation: after the cut, the log is a
 * whole, dense prefix ending between the truncation point and its old end
 * at a batch boundary, its epoch cache agrees, and it takes appends. */
Test(replica_log, a_crash_anywhere_in_a_truncation_recovers_a_log_cut_between)
{
    f.cfg.segment_bytes = 4096;
    f.cfg.retention_ms = -1;
    bool finished = false;
    for (uint64_t n = 1; !finished; n++) {
        cr_assert_lt(n, 64, "a truncation makes a handful of completions");
        crash_points = n;
        snprintf(f.dir, sizeof(f.dir), "%.200s/p%02u", root, (unsigned)n);
        cr_assert_eq(fx_open(&f), 0);
        append_range(0, 40, epoch_by_four);
        sim_start();
        ring_sim_crash_at(n);
        int rc = part_truncate(&f.part, 3 * 13 + 1);
        finished = !ring_sim_crashed();
        cr_assert(rc == 0 || !finished, "failed with no crash: %s", err_str(rc));
        power_cut(n % 2 ? RING_SIM_TEAR : RING_SIM_DROP, n);
        int64_t end = part_offset_written(&f.part);
        cr_assert(end >= 39 && end <= 120 && end % RECORDS == 0, "crash at %lu: end %ld",
                  (unsigned long)n, (long)end);
        cr_assert(!finished || end == 39, "a finished truncation lasts");
        uint32_t kept = (uint32_t)(end / RECORDS);
        check_batches(kept);
        int32_t last = epoch_by_four(kept - 1);
        expect_end(last, last, end);
        if (last > 0) {
            expect_end(last - 1, last - 1, (int64_t)last * 12);
        }
        append_range(kept, kept + 1, epoch_by_four);
        sim_stop();
        fx_close(&f);
    }
    cr_assert_geq(crash_points, 5,
                  "unlinks' sync, the cut's, the epoch file's write, sync, rename");
}
