/*
 * tests/test_progress.c — base/progress.h: the line's figures, drawn only on
 * a terminal (or when forced), ended once, erased on request.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "base/progress.h"

/* Everything written to the pipe so far (the write end stays open). */
static size_t drain(int rfd, char *out, size_t cap)
{
    size_t n = 0;
    ssize_t r;
    while (n + 1 < cap && (r = read(rfd, out + n, cap - 1 - n)) > 0) {
        n += (size_t)r;
    }
    out[n] = '\0';
    return n;
}

static void pipe_nonblocking(int fds[2])
{
    cr_assert_eq(pipe(fds), 0);
    cr_assert_eq(fcntl(fds[0], F_SETFL, O_NONBLOCK), 0);
}

Test(progress, nothing_is_written_where_the_descriptor_is_not_a_terminal)
{
    int fds[2];
    pipe_nonblocking(fds);
    struct progress p;
    progress_start(&p, fds[1], false, "producing", "records", 4096);
    progress_update(&p, 1024, 1);
    progress_clear(&p);
    char buf[256];
    cr_assert_eq(drain(fds[0], buf, sizeof(buf)), 0, "a pipe gets no progress: %s", buf);
    close(fds[0]);
    close(fds[1]);
}

Test(progress, the_first_update_draws_and_clear_erases_what_was_drawn)
{
    int fds[2];
    pipe_nonblocking(fds);
    struct progress p;
    progress_start(&p, fds[1], true, "producing", "records", 4096);
    progress_clear(&p); /* nothing shown yet: nothing to erase */
    char buf[512];
    cr_assert_eq(drain(fds[0], buf, sizeof(buf)), 0);
    progress_update(&p, 2048, 2);
    drain(fds[0], buf, sizeof(buf));
    cr_assert(strncmp(buf, "\r\033[Kproducing: 2.0 KiB of 4.0 KiB (50%), 2 records", 49) == 0,
              "drawn at once: %s", buf + 1);
    cr_assert_null(strchr(buf, '\n'), "redrawn in place: no newline");
    progress_clear(&p);
    drain(fds[0], buf, sizeof(buf));
    cr_assert_str_eq(buf, "\r\033[K", "erased");
    progress_update(&p, 4096, 3);
    drain(fds[0], buf, sizeof(buf));
    cr_assert(strstr(buf, "4.0 KiB of 4.0 KiB (100%), 3 records") != NULL,
              "after a clear the next update draws again: %s", buf + 1);
    close(fds[0]);
    close(fds[1]);
}

Test(progress, the_line_names_sizes_counts_and_rate)
{
    struct progress p;
    progress_start(&p, -1, false, "verifying", "partitions", 0);
    p.bytes = 3u << 30;
    p.count = 7;
    char line[PROGRESS_LINE_BYTES];
    int n = progress_format(&p, p.start_ms + 1000, line, sizeof(line));
    cr_assert_eq((size_t)n, strlen(line));
    cr_assert_str_eq(line, "verifying: 3.0 GiB, 7 partitions, 3221.2 MB/s",
                     "no total: no percentage; the rate over the time since the start");
    p.bytes = 999;
    n = progress_format(&p, p.start_ms, line, sizeof(line));
    cr_assert_str_eq(line, "verifying: 999 B, 7 partitions", "no time yet: no rate");
    n = progress_format(&p, p.start_ms, line, 12);
    cr_assert_eq(n, 11, "cut to fit");
    cr_assert_str_eq(line, "verifying: ");
}

Test(progress, work_in_items_alone_shows_counts_of_a_total_and_their_rate)
{
    struct progress p;
    progress_start_items(&p, -1, false, "redriving", "records", 5000);
    p.count = 1200;
    char line[PROGRESS_LINE_BYTES];
    int n = progress_format(&p, p.start_ms + 2000, line, sizeof(line));
    cr_assert_eq((size_t)n, strlen(line));
    cr_assert_str_eq(line, "redriving: 1200 of 5000 records (24%), 600 records/s");
    p.total_count = 0;
    progress_format(&p, p.start_ms, line, sizeof(line));
    cr_assert_str_eq(line, "redriving: 1200 records", "no total: no percentage; no time: no rate");
    p.total_count = 1000;
    progress_format(&p, p.start_ms, line, sizeof(line));
    cr_assert_str_eq(line, "redriving: 1200 of 1000 records (100%)", "never past 100%");
}
