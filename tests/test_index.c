/* Contract tests for storage/index.h. */
#include <criterion/criterion.h>
#include <string.h>

#include "base/bytes.h"
#include "storage/index.h"

static struct idx off_idx;
static struct idx time_idx;

static void setup(void)
{
    cr_assert_eq(idx_init(&off_idx, IDX_OFFSET, 8, 1000), 0);
    cr_assert_eq(idx_init(&time_idx, IDX_TIME, 8, 1000), 0);
}

static void teardown(void)
{
    idx_fini(&off_idx);
    idx_fini(&time_idx);
}

TestSuite(index, .init = setup, .fini = teardown);

Test(index, finds_the_last_offset_entry_at_or_below)
{
    for (uint32_t i = 0; i < 5; i++) {
        cr_assert_eq(idx_add_offset(&off_idx, 10 * i, 4096 * i + 1), 0);
    }
    uint32_t rel = 99;
    uint32_t pos = 99;
    cr_assert(idx_find_offset(&off_idx, 0, &rel, &pos));
    cr_assert_eq(rel, 0);
    cr_assert(idx_find_offset(&off_idx, 25, &rel, &pos));
    cr_assert_eq(rel, 20);
    cr_assert_eq(pos, 8193);
    cr_assert(idx_find_offset(&off_idx, 1000, &rel, &pos));
    cr_assert_eq(rel, 40);
}

Test(index, an_empty_index_finds_nothing)
{
    uint32_t rel, pos;
    cr_assert_not(idx_find_offset(&off_idx, 5, &rel, &pos));
    cr_assert_not(idx_find_time_before(&time_idx, 5, &rel));
}

Test(index, finds_the_last_time_entry_strictly_before)
{
    cr_assert_eq(idx_add_time(&time_idx, 100, 0), 0);
    cr_assert_eq(idx_add_time(&time_idx, 200, 10), 0);
    cr_assert_eq(idx_add_time(&time_idx, 300, 20), 0);
    uint32_t rel;
    cr_assert_not(idx_find_time_before(&time_idx, 100, &rel));
    cr_assert(idx_find_time_before(&time_idx, 101, &rel));
    cr_assert_eq(rel, 0);
    cr_assert(idx_find_time_before(&time_idx, 300, &rel));
    cr_assert_eq(rel, 10);
    cr_assert(idx_find_time_before(&time_idx, 1 << 30, &rel));
    cr_assert_eq(rel, 20);
}

Test(index, a_full_index_refuses_more_entries)
{
    for (uint32_t i = 0; i < 8; i++) {
        cr_assert_eq(idx_add_offset(&off_idx, i, i), 0);
    }
    cr_assert_eq(idx_add_offset(&off_idx, 8, 8), -NG_ENOSPACE);
}

Test(index, unflushed_entries_are_handed_out_once)
{
    const uint8_t *buf;
    size_t len;
    uint64_t at;
    cr_assert_not(idx_take_unflushed(&off_idx, &buf, &len, &at));
    cr_assert_eq(idx_add_offset(&off_idx, 1, 1), 0);
    cr_assert_eq(idx_add_offset(&off_idx, 2, 2), 0);
    cr_assert(idx_take_unflushed(&off_idx, &buf, &len, &at));
    cr_assert_eq(len, 2 * IDX_OFFSET_ENTRY_BYTES);
    cr_assert_eq(at, 0);
    cr_assert_eq(idx_add_offset(&off_idx, 3, 3), 0);
    cr_assert(idx_take_unflushed(&off_idx, &buf, &len, &at));
    cr_assert_eq(len, IDX_OFFSET_ENTRY_BYTES);
    cr_assert_eq(at, 2 * IDX_OFFSET_ENTRY_BYTES);
}

/* A file image of three good offset entries. */
static size_t good_file(uint8_t *out)
{
    for (uint32_t i = 0; i < 3; i++) {
        cr_assert_eq(idx_add_offset(&off_idx, 5 * i, 100 * i + 7), 0);
    }
    memcpy(out, off_idx.entries, 3 * IDX_OFFSET_ENTRY_BYTES);
    return 3 * IDX_OFFSET_ENTRY_BYTES;
}

Test(index, loads_its_own_file_image)
{
    uint8_t file[64];
    size_t len = good_file(file);
    idx_clear(&off_idx);
    cr_assert_eq(idx_load(&off_idx, file, len, 1000, 100), 0);
    cr_assert_eq(off_idx.count, 3);
    cr_assert_eq(idx_offset_pos(&off_idx, 2), 207);
}

Test(index, load_rejects_every_flipped_byte)
{
    uint8_t file[64];
    size_t len = good_file(file);
    for (size_t i = 0; i < len; i++) {
        file[i] ^= 0x10;
        cr_assert_eq(idx_load(&off_idx, file, len, 1000, 100), -NG_ECORRUPT, "byte %zu", i);
        cr_assert_eq(off_idx.count, 0);
        file[i] ^= 0x10;
    }
}

Test(index, load_rejects_partial_entries_and_entries_past_the_log)
{
    uint8_t file[64];
    size_t len = good_file(file);
    cr_assert_eq(idx_load(&off_idx, file, len - 1, 1000, 100), -NG_ECORRUPT);
    cr_assert_eq(idx_load(&off_idx, file, len, 207, 100), -NG_ECORRUPT); /* position */
    cr_assert_eq(idx_load(&off_idx, file, len, 1000, 10), -NG_ECORRUPT); /* offset */
}

Test(index, load_rejects_an_index_of_another_segment)
{
    uint8_t file[64];
    size_t len = good_file(file);
    struct idx other;
    cr_assert_eq(idx_init(&other, IDX_OFFSET, 8, 2000), 0);
    cr_assert_eq(idx_load(&other, file, len, 1000, 100), -NG_ECORRUPT);
    idx_fini(&other);
}
