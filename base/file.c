#include "base/file.h"

#include <errno.h>
#include <unistd.h>

#include "base/err.h"

int file_pread_all(int fd, void *buf, size_t len, uint64_t off)
{
    uint8_t *p = buf;
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, p + got, len - got, (off_t)(off + got));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return n < 0 ? -errno : -NG_ETRUNCATED;
        }
        got += (size_t)n;
    }
    return 0;
}
