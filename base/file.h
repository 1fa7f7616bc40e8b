/*
 * base/file.h — blocking whole reads of a file range, for open, recovery,
 * verification and the test-only power-loss simulation (the hot paths go
 * through the ring).
 */
#ifndef NAGARE_BASE_FILE_H
#define NAGARE_BASE_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "base/assert.h"

/* Reads exactly len bytes of fd at off into buf, going on after short reads
 * and EINTR. Returns 0, -errno, or -NG_ETRUNCATED when the file ends
 * first. */
MUST_USE int file_pread_all(int fd, void *buf, size_t len, uint64_t off);

#endif
