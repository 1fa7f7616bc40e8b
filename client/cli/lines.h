/*
 * client/cli/lines.h — stdin one line at a time, for `nagare produce`.
 *
 * Invariants. One buffer, allocated once, of LINES_BYTES_MAX plus one read
 * chunk: a line is handed out in place (no copy), and a line longer than
 * LINES_BYTES_MAX is refused and its rest skipped without ever growing the
 * buffer. Lines end at '\n', which is not part of the line; any other byte,
 * '\r' and NUL included, is data. A last line without '\n' is still a line.
 */
#ifndef NAGARE_CLI_LINES_H
#define NAGARE_CLI_LINES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest line (key, separator and value) that becomes a record:
 * 1 MiB, well inside a batch the broker accepts by default (8 MiB,
 * docs/configuration.md batch_bytes_max) yet a sane bound for a tool that
 * reads text. */
#define LINES_BYTES_MAX (1u << 20)
/* Bytes asked of each read(). */
#define LINES_READ_BYTES (64u << 10)

/* Called when no whole line is buffered and stdin has nothing to read yet,
 * so the caller can do its own work (a producer sends what it holds)
 * instead of sitting in read(). Returns 0: call again after stdin stayed
 * quiet for LINES_IDLE_MS; 1: nothing to do, wait for stdin as long as it
 * takes; or a negative error, which lines_next() returns. */
typedef int (*lines_idle_fn)(void *arg);

/* How long stdin is watched between two idle calls that asked for it. */
#define LINES_IDLE_MS 10

struct lines {
    int fd;
    lines_idle_fn idle; /* may be NULL: read() blocks */
    void *idle_arg;
    char *buf;    /* LINES_BYTES_MAX + LINES_READ_BYTES */
    size_t start; /* unread bytes are buf[start, end) */
    size_t end;
    bool eof;
    bool skipping;    /* dropping the rest of a line found too long */
    uint64_t line_no; /* 1-based number of the line last returned */
};

/* Sets up l over fd (not owned), with an idle hook (may be NULL). Returns 0
 * or -ENOMEM. */
int lines_init(struct lines *l, int fd, lines_idle_fn idle, void *idle_arg);

/* Frees the buffer; harmless after a failed init. */
void lines_fini(struct lines *l);

/* The next line: returns 1 with *line and *len (valid until the next call),
 * 0 at the end of input, -NAGARE_ETOOBIG for a line over LINES_BYTES_MAX
 * (l->line_no is its number; the next call goes on after it), or -errno
 * from read() or poll() (-EINTR when a signal came; calling again
 * resumes), or the idle hook's error. */
int lines_next(struct lines *l, const char **line, size_t *len);

#endif
