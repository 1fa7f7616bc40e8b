/* stdin one line at a time, with a bounded line length (lines.h). */
#include "client/cli/lines.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/assert.h"
#include "client/nagare.h"

#define LINES_BUF_BYTES ((size_t)LINES_BYTES_MAX + LINES_READ_BYTES)

int lines_init(struct lines *l, int fd, lines_idle_fn idle, void *idle_arg)
{
    memset(l, 0, sizeof(*l));
    l->fd = fd;
    l->idle = idle;
    l->idle_arg = idle_arg;
    l->buf = malloc(LINES_BUF_BYTES);
    return l->buf != NULL ? 0 : -ENOMEM;
}

void lines_fini(struct lines *l)
{
    free(l->buf);
    l->buf = NULL;
}

/* Waits until fd is readable, running the idle hook while it is not.
 * Returns 0 or a negative error. */
static int lines_wait(struct lines *l)
{
    int timeout_ms = 0;
    for (;;) {
        struct pollfd pfd = {.fd = l->fd, .events = POLLIN};
        int n = poll(&pfd, 1, timeout_ms);
        if (n < 0) {
            return -errno;
        }
        if (n > 0) {
            return 0; /* readable, at its end, or failed: read() will tell */
        }
        int rc = l->idle(l->idle_arg);
        if (rc < 0) {
            return rc;
        }
        timeout_ms = rc == 0 ? LINES_IDLE_MS : -1;
    }
}

/* Moves the unread bytes to the front and reads more after them. Returns 0
 * (l->eof set at the end of input) or -errno. */
static int lines_fill(struct lines *l)
{
    size_t pending = l->end - l->start;
    if (l->start > 0) {
        memmove(l->buf, l->buf + l->start, pending);
        l->start = 0;
        l->end = pending;
    }
    /* pending <= LINES_BYTES_MAX here, so at least a read chunk is free. */
    ASSERT(LINES_BUF_BYTES - l->end >= LINES_READ_BYTES);
    if (l->idle != NULL) {
        int rc = lines_wait(l);
        if (rc < 0) {
            return rc;
        }
    }
    ssize_t n = read(l->fd, l->buf + l->end, LINES_BUF_BYTES - l->end);
    if (n < 0) {
        return -errno;
    }
    l->eof = n == 0;
    l->end += (size_t)n;
    return 0;
}

/* A line of len bytes at buf[start] ends at the next byte (or the input's
 * end): hands it out. */
static int lines_take(struct lines *l, size_t len, size_t skip, const char **line, size_t *len_out)
{
    *line = l->buf + l->start;
    *len_out = len;
    l->start += len + skip;
    l->line_no++;
    return len > LINES_BYTES_MAX ? -NAGARE_ETOOBIG : 1;
}

int lines_next(struct lines *l, const char **line, size_t *len)
{
    ASSERT(l->buf != NULL);
    for (;;) {
        size_t pending = l->end - l->start;
        const char *nl = memchr(l->buf + l->start, '\n', pending);
        if (nl != NULL && l->skipping) {
            l->start += (size_t)(nl - (l->buf + l->start)) + 1;
            l->skipping = false;
            continue;
        }
        if (nl != NULL) {
            return lines_take(l, (size_t)(nl - (l->buf + l->start)), 1, line, len);
        }
        if (l->skipping) {
            l->start = l->end = 0;
        } else if (pending > LINES_BYTES_MAX) {
            l->start = l->end = 0;
            l->skipping = true;
            l->line_no++;
            return -NAGARE_ETOOBIG;
        }
        if (l->eof) {
            return l->end > l->start ? lines_take(l, l->end - l->start, 0, line, len) : 0;
        }
        int rc = lines_fill(l);
        if (rc < 0) {
            return rc;
        }
    }
}
