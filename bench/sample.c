/*
 * bench/sample.c — wall clock, getrusage, /proc/stat and
 * /sys/dev/block/MAJ:MIN/stat, read once per sample (never on a hot path).
 */
#include "bench/sample.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

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
    int n = snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/stat", major(st.st_dev),
                     minor(st.st_dev));
    ASSERT(n > 0 && (size_t)n < sizeof(path));
    FILE *f = fopen(path, "r");
    if (f != NULL) { /* none for tmpfs or overlay: counters read -1 */
        fclose(f);
        memcpy(d->stat_path, path, (size_t)n + 1);
    }
    return 0;
}

double sample_now_s(void) { return (double)clock_mono_ns() * 1e-9; }

static double tv_s(struct timeval tv) { return (double)tv.tv_sec + (double)tv.tv_usec * 1e-6; }

double sample_thread_cpu_s(void)
{
    struct rusage ru;
    int rc = getrusage(RUSAGE_THREAD, &ru);
    ASSERT(rc == 0); /* fails only for a bad `who` */
    return tv_s(ru.ru_utime) + tv_s(ru.ru_stime);
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
    int n = fscanf(f,
                   "cpu %" SCNd64 " %" SCNd64 " %" SCNd64 " %" SCNd64 " %" SCNd64 " %" SCNd64
                   " %" SCNd64 " %" SCNd64,
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
    s->thread_s = sample_thread_cpu_s();
    read_machine(s);
    read_dev(s, dev);
    s->wall_s = sample_now_s();
}

static int64_t diff_or_none(int64_t before, int64_t after)
{
    return before < 0 || after < 0 ? -1 : after - before;
}

void sample_diff(const struct sample *before, const struct sample *after, struct sample_delta *out)
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

/* /proc/PID/stat: "pid (comm) state ..." where comm may hold blanks and
 * parentheses, so fields are counted after the last ')'; utime and stime
 * are fields 14 and 15 (proc(5)), the 12th and 13th after the comm. */
static int read_stat_cpu(const char *path, double *cpu_s, char comm[16])
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return -errno;
    }
    char line[1024];
    bool ok = fgets(line, sizeof(line), f) != NULL;
    fclose(f);
    const char *p = ok ? strrchr(line, ')') : NULL;
    const char *open_paren = ok ? strchr(line, '(') : NULL;
    if (comm != NULL && p != NULL && open_paren != NULL && open_paren < p) {
        size_t n = (size_t)(p - open_paren - 1);
        n = n < 15 ? n : 15;
        memcpy(comm, open_paren + 1, n);
        comm[n] = '\0';
    }
    unsigned long long ut = 0;
    unsigned long long st = 0;
    if (p == NULL ||
        sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2) {
        return -EINVAL;
    }
    long hz = sysconf(_SC_CLK_TCK);
    *cpu_s = (double)(ut + st) / (double)(hz > 0 ? hz : 100);
    return 0;
}

static int read_proc_mem(int pid, int64_t *rss_kib, int64_t *hwm_kib)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return -errno;
    }
    char line[256];
    long long v = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "VmRSS: %lld kB", &v) == 1) {
            *rss_kib = v;
        } else if (sscanf(line, "VmHWM: %lld kB", &v) == 1) {
            *hwm_kib = v;
        }
    }
    fclose(f);
    return *rss_kib < 0 || *hwm_kib < 0 ? -EINVAL : 0;
}

int sample_proc_take(int pid, struct sample_proc *out)
{
    *out = (struct sample_proc){.cpu_s = -1, .rss_kib = -1, .hwm_kib = -1};
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    int rc = read_stat_cpu(path, &out->cpu_s, NULL);
    int rc_mem = read_proc_mem(pid, &out->rss_kib, &out->hwm_kib);
    return rc != 0 ? rc : rc_mem;
}

int sample_threads_take(int pid, struct sample_threads *out)
{
    out->count = 0;
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task", pid);
    DIR *d = opendir(path);
    if (d == NULL) {
        return -errno;
    }
    struct dirent *e;
    while (out->count < SAMPLE_THREADS_MAX && (e = readdir(d)) != NULL) {
        int tid = atoi(e->d_name);
        if (tid <= 0) {
            continue;
        }
        char stat_path[96];
        snprintf(stat_path, sizeof(stat_path), "/proc/%d/task/%d/stat", pid, tid);
        uint32_t i = out->count;
        out->comm[i][0] = '\0';
        if (read_stat_cpu(stat_path, &out->cpu_s[i], out->comm[i]) == 0) {
            out->tid[i] = tid;
            out->count++;
        }
    }
    closedir(d);
    return 0;
}

double sample_threads_busiest(const struct sample_threads *before,
                              const struct sample_threads *after, char comm[16])
{
    double best = 0;
    comm[0] = '\0';
    for (uint32_t i = 0; i < after->count; i++) {
        double was = 0;
        for (uint32_t j = 0; j < before->count; j++) {
            if (before->tid[j] == after->tid[i]) {
                was = before->cpu_s[j];
                break;
            }
        }
        double used = after->cpu_s[i] - was;
        if (used > best) {
            best = used;
            memcpy(comm, after->comm[i], 16);
        }
    }
    return best;
}
