/*
 * bench/broker.h — the broker a network benchmark talks to: one it starts
 * itself (nagared on a fresh temporary data directory and an ephemeral
 * loopback port), or one already running, named by address and optionally
 * by pid so its CPU and memory can be read from /proc. Also opens idle TCP
 * connections to it, for the "many idle clients" case.
 *
 * Invariants. A spawned broker is a child of this process, killed if this
 * process dies (PR_SET_PDEATHSIG), and bench_broker_stop() ends it and
 * removes its directory; nothing is left behind. Main thread only.
 */
#ifndef NAGARE_BENCH_BROKER_H
#define NAGARE_BENCH_BROKER_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/assert.h"

/* --broker-set options passed on: far more than any run needs. */
#define BENCH_BROKER_SETS_MAX 16
/* How long a spawned broker may take to print its listening line. */
#define BENCH_BROKER_START_MS 15000
/* How long it may take to exit after SIGTERM before it is killed. */
#define BENCH_BROKER_STOP_MS 30000

struct bench_broker {
    char bootstrap[280];       /* "host:port" for the clients */
    char kafka_bootstrap[280]; /* the Kafka listener's; "" when it has none */
    int pid;                   /* 0: not known (no /proc figures) */
    bool spawned;
    char root[PATH_MAX];     /* spawned: the temporary directory, else "" */
    char data_dir[PATH_MAX]; /* spawned: root/data, else "" */
    char log_path[PATH_MAX]; /* spawned: root/nagared.log */
};

/* Names a running broker (bootstrap and its Kafka listener's address
 * copied); pid may be 0. Returns 0 or -ENAMETOOLONG. */
MUST_USE int bench_broker_attach(struct bench_broker *b, const char *bootstrap,
                                 const char *kafka_bootstrap, int pid);

/* Starts the nagared at path on 127.0.0.1:0, data in a fresh directory
 * under parent (mkdtemp), with "--set KEY=VALUE" for each of sets[0..n),
 * stderr to the directory's nagared.log, and waits for its listening line.
 * Returns 0, -errno (fork, mkdtemp, ...), or -ETIMEDOUT / -ECHILD when it
 * did not come up (its log's tail is printed to stderr). */
MUST_USE int bench_broker_spawn(struct bench_broker *b, const char *path, const char *parent,
                                const char *const *sets, size_t n);

/* Ends a spawned broker (SIGTERM, then SIGKILL after BENCH_BROKER_STOP_MS)
 * and removes its directory; does nothing for an attached one. Returns 0,
 * or -ECHILD when the broker had to be killed or did not exit 0. */
MUST_USE int bench_broker_stop(struct bench_broker *b);

/* A TCP connection to "host:port" (the last ':' splits; "[v6]:port" too):
 * the descriptor, or -errno / -EHOSTUNREACH / -EINVAL. */
MUST_USE int bench_connect(const char *bootstrap);

/* Opens n plain TCP connections to the broker and leaves them idle; their
 * descriptors go to fds[0..n). Raises RLIMIT_NOFILE to its hard limit
 * first when needed. Returns 0, or -errno (nothing left open). */
MUST_USE int bench_idle_open(const struct bench_broker *b, uint32_t n, int *fds);

/* Closes what bench_idle_open() opened. */
void bench_idle_close(int *fds, uint32_t n);

/* Raises this process's RLIMIT_NOFILE soft limit to its hard limit (a
 * spawned broker inherits it). Returns the soft limit now, or -errno. */
long bench_nofile_raise(void);

#endif
