/*
 * base/progress.c — a progress line on a terminal (base/progress.h).
 */
#include "base/progress.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/assert.h"
#include "base/clock.h"

/* Carriage return, then erase to the end of the line (ANSI EL). */
static const char clear_line[] = "\r\033[K";

void progress_start(struct progress *p, int fd, bool force, const char *what, const char *items,
                    uint64_t total_bytes)
{
    ASSERT(what != NULL && items != NULL);
    *p = (struct progress){
        .fd = force || isatty(fd) ? fd : -1,
        .what = what,
        .items = items,
        .total_bytes = total_bytes,
        .start_ms = clock_mono_ms(),
        .drawn_ms = INT64_MIN,
    };
}

/* bytes as "812 B", "12.3 KiB", ... "1.2 TiB". */
static int human_bytes(uint64_t bytes, char *out, int cap)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    size_t u = 0;
    while (v >= 1024.0 && u + 1 < ARRAY_LEN(units)) {
        v /= 1024.0;
        u++;
    }
    return u == 0 ? snprintf(out, (size_t)cap, "%" PRIu64 " B", bytes)
                  : snprintf(out, (size_t)cap, "%.1f %s", v, units[u]);
}

void progress_start_items(struct progress *p, int fd, bool force, const char *what,
                          const char *items, uint64_t total_count)
{
    progress_start(p, fd, force, what, items, 0);
    p->items_only = true;
    p->total_count = total_count;
}

/* The line of an items-only p. */
static int format_items(const struct progress *p, int64_t now_ms, char *out, int cap)
{
    int n = snprintf(out, (size_t)cap, "%s: %" PRIu64, p->what, p->count);
    if (p->total_count > 0 && n < cap) {
        uint64_t pct = p->count >= p->total_count ? 100 : p->count * 100 / p->total_count;
        n += snprintf(out + n, (size_t)(cap - n), " of %" PRIu64 " %s (%" PRIu64 "%%)",
                      p->total_count, p->items, pct);
    } else if (n < cap) {
        n += snprintf(out + n, (size_t)(cap - n), " %s", p->items);
    }
    int64_t ms = now_ms - p->start_ms;
    if (ms > 0 && n < cap) {
        n += snprintf(out + n, (size_t)(cap - n), ", %.0f %s/s",
                      (double)p->count * 1e3 / (double)ms, p->items);
    }
    return n < cap ? n : cap - 1;
}

int progress_format(const struct progress *p, int64_t now_ms, char *out, int cap)
{
    ASSERT(cap > 0);
    if (p->items_only) {
        return format_items(p, now_ms, out, cap);
    }
    char done[32], total[32];
    human_bytes(p->bytes, done, sizeof(done));
    int n = snprintf(out, (size_t)cap, "%s: %s", p->what, done);
    if (p->total_bytes > 0 && n < cap) {
        human_bytes(p->total_bytes, total, sizeof(total));
        uint64_t pct = p->bytes >= p->total_bytes ? 100 : p->bytes * 100 / p->total_bytes;
        n += snprintf(out + n, (size_t)(cap - n), " of %s (%" PRIu64 "%%)", total, pct);
    }
    if (n < cap) {
        n += snprintf(out + n, (size_t)(cap - n), ", %" PRIu64 " %s", p->count, p->items);
    }
    int64_t ms = now_ms - p->start_ms;
    if (ms > 0 && n < cap) {
        n += snprintf(out + n, (size_t)(cap - n), ", %.1f MB/s",
                      (double)p->bytes / 1e3 / (double)ms);
    }
    return n < cap ? n : cap - 1;
}

static void draw(struct progress *p, int64_t now_ms)
{
    char line[sizeof(clear_line) + PROGRESS_LINE_BYTES];
    int n = (int)sizeof(clear_line) - 1;
    memcpy(line, clear_line, (size_t)n);
    n += progress_format(p, now_ms, line + n, PROGRESS_LINE_BYTES);
    ssize_t w = write(p->fd, line, (size_t)n);
    (void)w; /* a courtesy: see the header */
    p->drawn_ms = now_ms;
    p->shown = true;
}

void progress_update(struct progress *p, uint64_t bytes, uint64_t count)
{
    ASSERT(bytes >= p->bytes && count >= p->count);
    p->bytes = bytes;
    p->count = count;
    if (p->fd < 0) {
        return;
    }
    int64_t now = clock_mono_ms();
    if (p->drawn_ms == INT64_MIN || now - p->drawn_ms >= PROGRESS_REDRAW_MS) {
        draw(p, now);
    }
}

void progress_clear(struct progress *p)
{
    if (p->fd >= 0 && p->shown) {
        ssize_t w = write(p->fd, clear_line, sizeof(clear_line) - 1);
        (void)w;
        p->shown = false;
        p->drawn_ms = INT64_MIN; /* the next update draws again */
    }
}
