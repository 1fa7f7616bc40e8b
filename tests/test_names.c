/* Contract tests for broker/names.h: the order of name-sorted tables. */
#include <criterion/criterion.h>
#include <string.h>

#include "broker/names.h"

static const char *const sorted[] = {"a", "ab", "abc", "b", "b.dlq", "orders"};
#define SORTED_COUNT (uint32_t)(sizeof(sorted) / sizeof(sorted[0]))

static const char *name_at(const void *table, uint32_t i, size_t *len)
{
    const char *name = ((const char *const *)table)[i];
    *len = strlen(name);
    return name;
}

static uint32_t lower_bound(const char *name, bool *found)
{
    return names_lower_bound(sorted, SORTED_COUNT, name_at, name, strlen(name), found);
}

Test(names, a_prefix_sorts_before_its_extensions)
{
    cr_assert_lt(names_cmp("ab", 2, "abc", 3), 0);
    cr_assert_gt(names_cmp("abc", 3, "ab", 2), 0);
    cr_assert_eq(names_cmp("ab", 2, "ab", 2), 0);
    cr_assert_lt(names_cmp("", 0, "a", 1), 0);
    cr_assert_lt(names_cmp("abz", 3, "ac", 2), 0, "bytes first, then length");
}

Test(names, every_entry_is_found_at_its_index)
{
    for (uint32_t i = 0; i < SORTED_COUNT; i++) {
        bool found = false;
        cr_assert_eq(lower_bound(sorted[i], &found), i, "%s", sorted[i]);
        cr_assert(found, "%s", sorted[i]);
    }
}

Test(names, an_absent_name_gives_where_it_would_go)
{
    bool found = true;
    cr_assert_eq(lower_bound("aa", &found), 1);
    cr_assert_not(found);
    cr_assert_eq(lower_bound("b.", &found), 4);
    cr_assert_not(found);
    cr_assert_eq(lower_bound("zzz", &found), SORTED_COUNT, "past the end");
    cr_assert_not(found);
    cr_assert_eq(names_lower_bound(sorted, 0, name_at, "a", 1, &found), 0, "empty table");
    cr_assert_not(found);
}
