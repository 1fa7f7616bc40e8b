#include "tests/sys_support.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

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
                         (unsigned long long)fds, (unsigned long long)rl.rlim_max, strerror(errno));
        }
        return;
    }
    rl.rlim_cur = rl.rlim_max;
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0, "setrlimit: %s", strerror(errno));
}

void flip_byte(const char *path, off_t at, uint8_t mask)
{
    cr_assert_neq(mask, 0);
    int fd = open(path, O_RDWR);
    cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
    uint8_t b;
    cr_assert_eq(pread(fd, &b, 1, at), 1);
    b ^= mask;
    cr_assert_eq(pwrite(fd, &b, 1, at), 1);
    close(fd);
}
