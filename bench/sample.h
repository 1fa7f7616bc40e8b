/*
 * bench/sample.h — what a benchmark phase cost: wall time, this process's
 * CPU time, the whole machine's CPU time, and the block device's counters.
 *
 * A phase takes a sample before and after and reports the difference, so the
 * reader can tell a CPU-bound figure from a disk-bound one. Counters that the
 * system does not offer (no /proc/stat, a directory on tmpfs) read as -1 and
 * every difference involving them is -1. Any thread; no allocation.
 */
#ifndef NAGARE_BENCH_SAMPLE_H
#define NAGARE_BENCH_SAMPLE_H

#include <stdint.h>

#include "base/assert.h"
#include "base/clock.h"

/* Where the device counters of a directory's filesystem live. */
struct sample_dev {
    char stat_path[64]; /* /sys/dev/block/MAJ:MIN/stat, or "" when none */
};

struct sample {
    double wall_s; /* CLOCK_MONOTONIC */
    double user_s; /* getrusage(RUSAGE_SELF): every thread, io_uring workers too */
    double sys_s;
    double thread_s;             /* getrusage(RUSAGE_THREAD), user + sys: the caller alone */
    int64_t machine_busy_ticks;  /* /proc/stat, all CPUs: user+nice+system+irq+softirq */
    int64_t machine_total_ticks; /* the above plus idle, iowait and steal */
    int64_t dev_flushes;         /* flush requests the device completed */
    int64_t dev_write_sectors;   /* 512-byte sectors written to the device */
};

/* What happened between two samples. */
struct sample_delta {
    double wall_s;
    double user_s;
    double sys_s;
    double thread_s;         /* of which the sampling thread; the rest ran in
                                  other threads (io_uring's io-wq workers) */
    double machine_busy;     /* 0..1 of all CPUs, or -1 */
    int64_t dev_flushes;     /* or -1 */
    int64_t dev_write_bytes; /* or -1 */
};

/* Finds the block device holding dir (its filesystem's st_dev) so samples
 * can read its counters; d->stat_path stays "" when it has none (tmpfs,
 * overlay). Returns 0 or -errno from stat(2). */
MUST_USE int sample_dev_find(struct sample_dev *d, const char *dir);

/* Takes a sample now. dev may be NULL (device counters read -1). */
void sample_take(struct sample *s, const struct sample_dev *dev);

/* Monotonic seconds, for deadlines and progress (clock_mono_ns() in
 * base/clock.h, for latencies). */
double sample_now_s(void);

/* CPU seconds (user + system) of the calling thread so far. */
double sample_thread_cpu_s(void);

/* after - before. */
void sample_diff(const struct sample *before, const struct sample *after, struct sample_delta *out);

/* Another process (the broker under test), from /proc/PID/stat and
 * /proc/PID/status. Every thread of the process is counted, io_uring's
 * io-wq workers too. */
struct sample_proc {
    double cpu_s;    /* utime + stime, all threads; -1: unreadable */
    int64_t rss_kib; /* VmRSS now; -1: unreadable */
    int64_t hwm_kib; /* VmHWM: the peak RSS since it started; -1 */
};

/* Reads pid's counters. Returns 0, or -errno when /proc/PID cannot be read
 * (the fields are then -1). */
MUST_USE int sample_proc_take(int pid, struct sample_proc *out);

/* Each thread of a process (/proc/PID/task/TID/stat), to find the busiest:
 * a figure is CPU-bound when one thread ran for (nearly) all of it. */
#define SAMPLE_THREADS_MAX 512 /* threads followed per process; more are ignored */

struct sample_threads {
    uint32_t count;
    int tid[SAMPLE_THREADS_MAX];
    double cpu_s[SAMPLE_THREADS_MAX];
    char comm[SAMPLE_THREADS_MAX][16];
};

/* Reads every thread of pid (up to SAMPLE_THREADS_MAX). Returns 0 or -errno. */
MUST_USE int sample_threads_take(int pid, struct sample_threads *out);

/* The thread that used the most CPU between two samples (threads started
 * in between count from zero): returns its CPU seconds and copies its name
 * to comm; 0 and "" when there is none. */
double sample_threads_busiest(const struct sample_threads *before,
                              const struct sample_threads *after, char comm[16]);

#endif
