/*
 * bench/sample.c — wall clock, getrusage, /proc/stat and
 * /sys/dev/block/MAJ:MIN/stat, read once per sample (never on a hot path).
 */
#include "bench/sample.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>

/* Fields of the block layer's stat file (Documentation/block/stat.rst),
 * 0-based: sectors written is the 7th, flush requests completed the 16th
 * (kernel 5.5 on). */
#define DEV_FIELD_WRITE_SECTORS 6
#define DEV_FIELD_FLUSHES 15
#define DEV_FIELDS 17

int sample_dev_find(struct sample_dev *d, const char *dir)
{
    struct stat st;
    d->stat_path[0] = '\0';
    if (stat(dir, &st) != 0) {
        return -errno;
    }
    char path[sizeof(d->stat_path)];
    int n = snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/stat",
                     major(st.st_dev), minor(st.st_dev));
    ASSERT(n > 0 && (size_t)n < sizeof(path));
    FILE *f = fopen(path, "r");
    if (f != NULL) { /* none for tmpfs or overlay: counters read -1 */
        fclose(f);
        memcpy(d->stat_path, path, (size_t)n + 1);
    }
    return 0;
}

double sample_now_s(void)
{
    struct timespec ts;
    int rc = clock_gettime(CLOCK_MONOTONIC, &ts);
    ASSERT(rc == 0); /* CLOCK_MONOTONIC always exists on Linux */
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double tv_s(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec * 1e-6;
}

/* The first line of /proc/stat: "cpu user nice system idle iowait irq
 * softirq steal ...", in clock ticks summed over every CPU. */
static void read_machine(struct sample *s)
{
    s->machine_busy_ticks = -1;
    s->machine_total_ticks = -1;
    FILE *f = fopen("/proc/stat", "r");
    if (f == NULL) {
        return;
    }
    int64_t v[8];
    int n = fscanf(f, "cpu %" SCNd64 " %" SCNd64 " %" SCNd64 " %" SCNd64 " %" SCNd64
                      " %" SCNd64 " %" SCNd64 " %" SCNd64,
                   &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n != 8) {
        return;
    }
    s->machine_busy_ticks = v[0] + v[1] + v[2] + v[5] + v[6];
    s->machine_total_ticks = s->machine_busy_ticks + v[3] + v[4] + v[7];
}

static void read_dev(struct sample *s, const struct sample_dev *dev)
{
    s->dev_flushes = -1;
    s->dev_write_sectors = -1;
    if (dev == NULL || dev->stat_path[0] == '\0') {
        return;
    }
    FILE *f = fopen(dev->stat_path, "r");
    if (f == NULL) {
        return;
    }
    int64_t v[DEV_FIELDS];
    int n = 0;
    while (n < DEV_FIELDS && fscanf(f, "%" SCNd64, &v[n]) == 1) {
        n++;
    }
    fclose(f);
    if (n > DEV_FIELD_WRITE_SECTORS) {
        s->dev_write_sectors = v[DEV_FIELD_WRITE_SECTORS];
    }
    if (n > DEV_FIELD_FLUSHES) {
        s->dev_flushes = v[DEV_FIELD_FLUSHES];
    }
}

void sample_take(struct sample *s, const struct sample_dev *dev)
{
    struct rusage ru;
    int rc = getrusage(RUSAGE_SELF, &ru);
    ASSERT(rc == 0); /* fails only for a bad `who` */
    s->user_s = tv_s(ru.ru_utime);
    s->sys_s = tv_s(ru.ru_stime);
    rc = getrusage(RUSAGE_THREAD, &ru);
    ASSERT(rc == 0);
    s->thread_s = tv_s(ru.ru_utime) + tv_s(ru.ru_stime);
    read_machine(s);
    read_dev(s, dev);
    s->wall_s = sample_now_s();
}

static int64_t diff_or_none(int64_t before, int64_t after)
{
    return before < 0 || after < 0 ? -1 : after - before;
}

void sample_diff(const struct sample *before, const struct sample *after,
                 struct sample_delta *out)
{
    out->wall_s = after->wall_s - before->wall_s;
    out->user_s = after->user_s - before->user_s;
    out->sys_s = after->sys_s - before->sys_s;
    out->thread_s = after->thread_s - before->thread_s;
    int64_t busy = diff_or_none(before->machine_busy_ticks, after->machine_busy_ticks);
    int64_t total = diff_or_none(before->machine_total_ticks, after->machine_total_ticks);
    out->machine_busy = busy < 0 || total <= 0 ? -1 : (double)busy / (double)total;
    out->dev_flushes = diff_or_none(before->dev_flushes, after->dev_flushes);
    int64_t sectors = diff_or_none(before->dev_write_sectors, after->dev_write_sectors);
    out->dev_write_bytes = sectors < 0 ? -1 : sectors * 512;
}
