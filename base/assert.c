#include "base/assert.h"

#include <stdio.h>
#include <stdlib.h>

_Noreturn void base_assert_fail(const char *expr, const char *file, int line, const char *func)
{
    fprintf(stderr, "nagare: assertion failed: %s (%s:%d, %s)\n", expr, file, line, func);
    fflush(stderr);
    abort();
}
