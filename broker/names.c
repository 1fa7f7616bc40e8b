#include "broker/names.h"

#include <string.h>

int names_cmp(const char *a, size_t a_len, const char *b, size_t b_len)
{
    size_t n = a_len < b_len ? a_len : b_len;
    int c = n == 0 ? 0 : memcmp(a, b, n);
    return c != 0 ? c : (a_len > b_len) - (a_len < b_len);
}

uint32_t names_lower_bound(const void *table, uint32_t count, names_at_fn name_at, const char *name,
                           size_t len, bool *found)
{
    uint32_t lo = 0;
    uint32_t hi = count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        size_t mid_len;
        const char *mid_name = name_at(table, mid, &mid_len);
        if (names_cmp(mid_name, mid_len, name, len) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    size_t at_len = 0;
    const char *at = lo < count ? name_at(table, lo, &at_len) : NULL;
    *found = at != NULL && names_cmp(at, at_len, name, len) == 0;
    return lo;
}
