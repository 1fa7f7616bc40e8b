/*
 * tests/sys_support.h — what tests need of the system around them:
 * descriptor room for the tests that open thousands of connections (a test
 * process only raises its own limits; a broker it starts afterwards inherits
 * them), damage to a byte of a file on disk, and a pause between the looks
 * of a test that waits for a state.
 */
#ifndef NAGARE_TESTS_SYS_SUPPORT_H
#define NAGARE_TESTS_SYS_SUPPORT_H

#include <errno.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <time.h>

/* Makes room for fds descriptors: raises RLIMIT_NOFILE's soft limit to its
 * hard one when fds do not fit, and the hard one too when the process may
 * (root). Skips the calling criterion test, naming the limit, when neither
 * makes room. Call from a test's body only. */
void need_fds(rlim_t fds);

/* XORs the byte at file position at of the file at path with mask (not 0),
 * in place: a damaged byte on disk. Asserts the byte is there. */
void flip_byte(const char *path, off_t at, uint8_t mask);

/* Sleeps ms milliseconds (>= 0), the whole of them when a signal comes
 * first. Only ever a pause between two looks at a state the caller waits
 * for: no test may rely on what happens within it. Inline, so that every
 * support file and test has it without linking sys_support.c. */
static inline void sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

#endif
