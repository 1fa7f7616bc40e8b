#include "tests/fd_support.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

void need_fds(rlim_t fds)
{
    struct rlimit rl;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur >= fds) {
        return;
    }
    if (rl.rlim_max < fds) {
        struct rlimit raised = {.rlim_cur = fds, .rlim_max = fds};
        if (setrlimit(RLIMIT_NOFILE, &raised) != 0) {
            cr_skip_test("needs %llu descriptors; RLIMIT_NOFILE's hard limit is %llu (%s)",
                         (unsigned long long)fds, (unsigned long long)rl.rlim_max,
                         strerror(errno));
        }
        return;
    }
    rl.rlim_cur = rl.rlim_max;
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0, "setrlimit: %s", strerror(errno));
}
