/*
 * bench/storage.h — `nagare-bench storage`: the partition log's throughput,
 * measured without the network.
 *
 * One run measures, each on a fresh partition directory: non-durable appends
 * with many appends in flight; reading all of that back; durable appends
 * from K concurrent appenders with group commit; and the same durable
 * workload with one fdatasync per batch (capped by time), so group commit
 * shows as a ratio. Every buffer is allocated and touched once before the
 * first phase and reused; nothing is allocated per batch. docs/benchmarks.md
 * explains the phases and records results.
 */
#ifndef NAGARE_BENCH_STORAGE_H
#define NAGARE_BENCH_STORAGE_H

#include <stdio.h>

/* Runs the storage benchmark. argv[0] is the subcommand's name; options as
 * printed by bench_storage_usage(). Prints a table (or, with --json, one JSON
 * object) on stdout, progress on stderr when it is a terminal. Returns the
 * process exit status: 0 success, 1 a phase failed (the error is printed),
 * 2 bad usage, 130 interrupted. Main thread only: it installs SIGINT and
 * SIGTERM handlers for the run, so an interrupted run still removes its
 * files. */
int bench_storage_main(int argc, char **argv);

/* Prints the subcommand's options. */
void bench_storage_usage(FILE *out);

#endif
