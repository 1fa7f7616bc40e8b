/*
 * tests/etcd_support.h — real etcd members for tests: 1 or 3 `etcd`
 * processes on 127.0.0.1 with their own temporary data directories, and
 * what fault tests do to them (kill one, restart it, find the leader).
 *
 * Invariants. A struct ets owns one temporary directory (a data directory
 * and a log per member) and the members it started; ets_fini() kills every
 * member still running and removes the directory, so call it from the
 * suite's .fini and no test leaves a process or a file behind, failed or
 * not. Members also die with the test process (PR_SET_PDEATHSIG). A member
 * keeps its ports for the cluster's life (etcd names its peers by URL), so
 * a restarted member comes back where it was. Ports are chosen below the
 * kernel's ephemeral range (so no outgoing connection can take one between
 * the check and etcd's bind), checked free by binding them, and a start
 * that still meets "address already in use" starts again on new ports.
 * Everything here asserts with criterion: call it from the test's own
 * thread. When no `etcd` binary can be found (./dev.sh installs Debian's
 * etcd-server), ets_start() skips the test, saying so.
 */
#ifndef NAGARE_TESTS_ETCD_SUPPORT_H
#define NAGARE_TESTS_ETCD_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cluster/etcd.h"

#define ETS_MEMBERS_MAX 3
#define ETS_ROOT_BYTES 128
#define ETS_PATH_BYTES 256
#define ETS_URL_BYTES 40
/* Bounds on waiting for a start (all members healthy, a leader elected),
 * for a stop, and for a leader after a fault. They only turn a hang into a
 * failure: generous for a sanitized build on a loaded machine. */
#define ETS_START_TIMEOUT_MS 60000
#define ETS_STOP_TIMEOUT_MS 15000
#define ETS_LEADER_TIMEOUT_MS 60000

struct ets_member {
    char name[8];                   /* "m0".. */
    char data_dir[ETS_PATH_BYTES];  /* root/<name>.data */
    char log_path[ETS_PATH_BYTES];  /* root/<name>.log: stdout and stderr */
    char client_url[ETS_URL_BYTES]; /* "http://127.0.0.1:<port>" */
    char peer_url[ETS_URL_BYTES];
    uint16_t client_port;
    uint16_t peer_port;
    pid_t pid;          /* 0: not running */
    char member_id[24]; /* etcd's id, decimal; learnt at start */
};

struct ets {
    char root[ETS_ROOT_BYTES]; /* mkdtemp'd; removed by ets_fini() */
    size_t count;
    struct ets_member m[ETS_MEMBERS_MAX];
    const char *endpoints[ETS_MEMBERS_MAX]; /* m[i].client_url, for etcd_config */
};

/* Starts count (1..ETS_MEMBERS_MAX) members as one new cluster and waits
 * until each answers healthy (so a leader is elected) and its member id is
 * known. Skips the test when etcd is not installed; fails it, with the
 * logs' tails, when the cluster does not come up. */
void ets_start(struct ets *c, size_t count);

/* An etcd_config naming every member, m[0] first, with this timeout. */
void ets_config(const struct ets *c, uint32_t timeout_ms, struct etcd_config *cfg);

/* Sends sig to member i (SIGKILL: at once; SIGTERM: an orderly stop) and
 * waits for it to exit (SIGKILL after ETS_STOP_TIMEOUT_MS of SIGTERM). */
void ets_stop(struct ets *c, size_t i, int sig);

/* Starts stopped member i again, same name, ports and data directory, and
 * waits until it answers healthy. */
void ets_restart(struct ets *c, size_t i);

/* Starts every stopped member again at once (one alone has no quorum, so
 * ets_restart() of the first of them would wait for a leader in vain) and
 * waits until each answers healthy. */
void ets_restart_all(struct ets *c);

/* Kills every running member (SIGKILL) and waits for each. */
void ets_stop_all(struct ets *c);

/* The index of the current leader, as the running members report it;
 * waits (up to ETS_LEADER_TIMEOUT_MS) while none is known or the one
 * reported is not running. */
size_t ets_leader(struct ets *c);

/* Waits until member i answers healthy (it has a leader and serves reads). */
void ets_wait_healthy(struct ets *c, size_t i);

/* Compacts the store's history up to revision (a test of a watch from a
 * compacted revision), through any running member. */
void ets_compact(struct ets *c, int64_t revision);

/* Prints every member's log tail to stderr (for a failing test). */
void ets_print_logs(const struct ets *c, const char *why);

/* Kills what still runs and removes the directory. Harmless on a zeroed
 * struct ets. */
void ets_fini(struct ets *c);

#endif
