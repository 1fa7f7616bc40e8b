/*
 * base/progress.h — a progress line for long work, redrawn in place on a
 * terminal:
 *
 *   producing: 1.2 GiB of 4.0 GiB (30%), 1234567 records, 118.4 MB/s
 *
 * or, for work counted in items alone (progress_start_items):
 *
 *   redriving: 1200 of 5000 records (24%), 350 records/s
 *
 * The line is drawn only when its descriptor is a terminal (decided once,
 * by progress_start); elsewhere every call is a no-op, so what goes to
 * pipes, files and logs never carries it. The first update draws at once,
 * later ones at least PROGRESS_REDRAW_MS apart, so updating after every
 * unit of work costs a clock read. progress_clear erases the line before
 * other output to the same terminal (the next update draws it again) and
 * when the work is done (its caller then prints its summary).
 *
 * A struct progress belongs to one thread. Writes to the terminal that
 * fail are ignored: progress is a courtesy, never a reason to fail.
 */
#ifndef NAGARE_BASE_PROGRESS_H
#define NAGARE_BASE_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

/* Least time between two redraws. */
#define PROGRESS_REDRAW_MS 200

/* The longest line drawn (it is cut to fit). */
#define PROGRESS_LINE_BYTES 160

struct progress {
    int fd;               /* -1: off */
    const char *what;     /* "producing", "verifying" */
    const char *items;    /* what is counted: "records", "partitions" */
    uint64_t total_bytes; /* 0: unknown */
    uint64_t total_count; /* items mode: 0 unknown */
    bool items_only;      /* no bytes: progress_start_items */
    uint64_t bytes, count;
    int64_t start_ms;
    int64_t drawn_ms; /* the last draw; INT64_MIN: draw at the next update */
    bool shown;       /* a line is on the terminal now */
};

/* Starts p on fd (STDERR_FILENO, usually): on when fd is a terminal, or
 * when force (tests). what and items must outlive p; total_bytes is the
 * work's size when known (a percentage is shown), else 0. */
void progress_start(struct progress *p, int fd, bool force, const char *what, const char *items,
                    uint64_t total_bytes);

/* Starts p as progress_start does, for work measured in items only
 * (bytes stay 0): the line gives the count, of total_count when known
 * (> 0) with a percentage, and the rate in items per second. */
void progress_start_items(struct progress *p, int fd, bool force, const char *what,
                          const char *items, uint64_t total_count);

/* Sets how far the work is (bytes done, items done; both only grow) and
 * draws: the first time, and then when PROGRESS_REDRAW_MS have passed
 * since the last draw. */
void progress_update(struct progress *p, uint64_t bytes, uint64_t count);

/* Erases the line (if shown) so other output can follow on the terminal. */
void progress_clear(struct progress *p);

/* Formats p's line (without the leading carriage return) into out[0..cap),
 * as drawn at now_ms; returns its length. For tests. */
int progress_format(const struct progress *p, int64_t now_ms, char *out, int cap);

#endif
