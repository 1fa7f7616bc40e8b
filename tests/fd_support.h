/*
 * tests/fd_support.h — descriptor room for the tests that open thousands of
 * connections. A test process only raises its own limits; a broker it starts
 * afterwards inherits them.
 */
#ifndef NAGARE_TESTS_FD_SUPPORT_H
#define NAGARE_TESTS_FD_SUPPORT_H

#include <sys/resource.h>

/* Makes room for fds descriptors: raises RLIMIT_NOFILE's soft limit to its
 * hard one when fds do not fit, and the hard one too when the process may
 * (root). Skips the calling criterion test, naming the limit, when neither
 * makes room. Call from a test's body only. */
void need_fds(rlim_t fds);

#endif
