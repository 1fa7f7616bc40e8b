/*
 * tests/cluster_support.h — a cluster on one machine for the fault runs:
 * 3 etcd members (tests/etcd_support.h) and N nagared brokers, each broker
 * on a loopback address of its own, with its own data directory, run as a
 * user id of its own; and the faults done to them: stop, kill -9,
 * SIGSTOP/SIGCONT, restart, kill of the etcd leader, and network
 * partitions made with nftables.
 *
 * Invariants.
 * - A struct cluster owns one temporary directory, the processes it
 *   started, one nftables table of its own (named after the test process)
 *   and one claimed block of addresses 127.99.<net>.0/24 (a lock file
 *   under /tmp held while the cluster lives), so two test processes at
 *   once neither share addresses nor cut each other's links. cs_fini()
 *   stops every process, deletes the table and the directory and lets the
 *   block go; an atexit() handler and the fatal signals' handlers delete
 *   the table too when a test dies, and cs_init() deletes the tables of
 *   test processes that are gone (a test killed with SIGKILL). Every
 *   process also dies with the test (PR_SET_PDEATHSIG).
 * - Addresses: broker i (0-based, id i + 1) listens on 127.99.<net>.(11+i)
 *   and runs as user and group CS_UID_BASE + 16 * net + i. Its outgoing
 *   connections (to etcd, to other brokers) would leave from 127.0.0.1, as
 *   the kernel picks for any loopback destination, so a source NAT rule of
 *   the table, matching the user id, rewrites them to the broker's address:
 *   every packet of a broker carries the broker's address, both ways, and
 *   the cut rules only need addresses. etcd members and the test's own
 *   clients use 127.0.0.1: a cut of a broker is also a cut from etcd and
 *   from the clients.
 * - Cuts live in one chain, after the source NAT (postrouting); they match
 *   a connection's ends as conntrack's reply tuple holds them (the NATed
 *   addresses, for the packets of both directions). cs_heal() empties it.
 * One cluster at a time per test process. Everything here asserts with
 * criterion: call it from the test's thread.
 * Tests that need a cluster start with cs_need_cluster() (skips, saying
 * what is missing, when nagared has no cluster settings, etcd or nft is
 * not installed, or the process cannot change the network: not root).
 * Power cuts need $NAGARED_SIM, the test build of nagared on the
 * power-loss simulation (tests/meson.build passes it).
 */
#ifndef NAGARE_TESTS_CLUSTER_SUPPORT_H
#define NAGARE_TESTS_CLUSTER_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "client/nagare.h"
#include "tests/etcd_support.h"

#define CS_BROKERS_MAX 5
#define CS_ROOT_BYTES 128
#define CS_PATH_BYTES 256
#define CS_HOST_BYTES 16 /* "127.99.249.15" and its NUL */
/* Every broker's "host:port", ','-separated, and its NUL. */
#define CS_BOOTSTRAP_BYTES (CS_BROKERS_MAX * (CS_HOST_BYTES + 8))
#define CS_SETS_MAX 8
/* Users the brokers run as: far above any login or system user. */
#define CS_UID_BASE 3990000u
/* Address blocks 127.99.<net>.0/24 that clusters may claim. */
#define CS_NETS 250
/* A start waits this long for the listening line (sanitized build, busy
 * machine: only a hang becomes a failure). */
#define CS_START_TIMEOUT_MS 30000
#define CS_STOP_TIMEOUT_MS 15000

struct cs_broker {
    int32_t id;               /* i + 1 */
    char host[CS_HOST_BYTES]; /* 127.99.<net>.(11+i) */
    uint16_t port;            /* chosen free once, kept across restarts */
    uint16_t kafka_port;      /* its Kafka listener's (on host), learnt at each start */
    uint16_t admin_port;      /* its HTTP admin listener's (on host), learnt at each start */
    char bootstrap[CS_HOST_BYTES + 8];
    uid_t uid;
    char dir[CS_ROOT_BYTES + 16]; /* root/b<id>, owned by uid */
    char data_dir[CS_PATH_BYTES]; /* dir/data */
    char log_path[CS_PATH_BYTES]; /* dir/nagared.log */
    size_t log_from;              /* log bytes before the current start */
    pid_t pid;                    /* 0: not running */
    bool paused;                  /* SIGSTOPped */
};

struct cluster {
    char root[CS_ROOT_BYTES]; /* mkdtemp'd, removed by cs_fini() */
    int net;                  /* the claimed block */
    int net_lock_fd;
    bool net_claimed;
    char table[32]; /* nftables table, "nagare_t<pid>"; also the
                                 brokers' cluster_name (keys under /<table>/) */
    bool table_made;
    struct ets etcd;
    char endpoints[4 * ETS_URL_BYTES]; /* "http://...,http://..." */
    size_t broker_count;
    struct cs_broker b[CS_BROKERS_MAX];
    bool standalone;               /* set before cs_start(): brokers without cluster settings,
                        no etcd (the harness's own tests) */
    bool power_sim;                /* set before cs_start(): brokers are $NAGARED_SIM, on the
                        power-loss simulation (cs_broker_power_cut()) */
    size_t start_count;            /* set before cs_start(): the first brokers it starts
                        (0: all); the others start later with cs_broker_start(),
                        as brokers added to a running cluster */
    const char *sets[CS_SETS_MAX]; /* "key=value" for every broker; borrowed */
    size_t set_count;
    char bootstrap[CS_BOOTSTRAP_BYTES]; /* every broker, ','-separated */
    bool keep_root; /* cs_fini() leaves root (data directories, logs) for a look */
};

/* Skips the test, naming what is missing, unless this machine and nagared
 * can run a cluster (see the top). Call first in a test's body. */
void cs_need_cluster(void);
/* Skips the test unless nftables can be driven (root, nft installed). */
void cs_need_nft(void);
/* Skips the test, naming the missing ones, unless `nagared --help` lists
 * every one of these settings. */
void cs_need_keys(const char *const *keys, size_t count);

/* Makes the temporary directory, claims an address block, and lays out
 * brokers (1..CS_BROKERS_MAX); starts nothing. */
void cs_init(struct cluster *c, size_t brokers);
/* Adds a --set option for every broker start. kv must outlive c. */
void cs_set(struct cluster *c, const char *kv);

/* Starts 3 etcd members, the network (cs_net_start(), when root and nft
 * are there), then every broker (the first c->start_count when set);
 * waits for each broker's listening line. */
void cs_start(struct cluster *c);
/* Makes the nftables table: a source NAT rule per broker user and the
 * empty cut chain. */
void cs_net_start(struct cluster *c);

/* ---- brokers ---- */

/* Starts broker i (stopped or killed) again: same address, port, user and
 * data directory. */
void cs_broker_start(struct cluster *c, size_t i);
/* SIGTERM, then waits; asserts a clean exit and a clean log. */
void cs_broker_stop(struct cluster *c, size_t i);
/* SIGKILL, then waits: nothing is flushed beyond what the kernel has. */
void cs_broker_kill(struct cluster *c, size_t i);
/* Cuts broker i's power (c->power_sim): what it had not synced is torn
 * or gone from its disk, as after a machine's power loss (nagared_sim,
 * broker/main.c), and the process is gone. Start it again to recover. */
void cs_broker_power_cut(struct cluster *c, size_t i);
/* SIGSTOP / SIGCONT: the broker freezes with its connections open. */
void cs_broker_pause(struct cluster *c, size_t i);
void cs_broker_resume(struct cluster *c, size_t i);
/* True while broker i's process runs (paused counts). */
bool cs_broker_alive(struct cluster *c, size_t i);
/* Stops every running broker in order (resuming paused ones first). */
void cs_stop_brokers(struct cluster *c);

/* ---- etcd ---- */

/* Kills the etcd leader with SIGKILL; returns its index (restart it with
 * ets_restart(&c->etcd, i)). */
size_t cs_etcd_kill_leader(struct cluster *c);

/* ---- network cuts (cs_need_nft) ---- */

/* Broker i can reach nothing and nothing reaches it: no other broker, no
 * etcd member, no client. */
void cs_isolate(struct cluster *c, size_t i);
/* Brokers whose bit is set in side (bit i: broker i) and the others cannot
 * reach each other; etcd and the clients still reach both sides. */
void cs_split(struct cluster *c, uint32_t side);
/* Packets from broker from to broker to are dropped; the other way works. */
void cs_drop_oneway(struct cluster *c, size_t from, size_t to);
/* Removes every cut. */
void cs_heal(struct cluster *c);

/* The index of the broker leading topic/partition as the brokers of
 * bootstrap describe the cluster now; -1 when none is known (no answer,
 * no such partition, no leader). */
int cs_leader_index(const char *bootstrap, const char *topic, int32_t partition);

/* Writes to out every broker's address but broker skip's, ','-separated:
 * a bootstrap list that leaves a paused or cut-off broker out. */
void cs_bootstrap_without(const struct cluster *c, size_t skip, char out[CS_BOOTSTRAP_BYTES]);

/* Creates topic with cfg through bootstrap (some or all of c's brokers),
 * over TLS when tls is not NULL, retrying every 250 ms while the cluster
 * settles (no admin connection yet, no controller to place it; a retried
 * create that was done answers "exists") until timeout_ms have passed:
 * then prints the logs and fails the test. */
void cs_topic_create(struct cluster *c, const char *bootstrap, const char *topic,
                     const struct nagare_topic_config *cfg, const struct nagare_tls *tls,
                     uint32_t timeout_ms);

/* Prints every broker's log tail and every etcd member's (for a failing
 * test). */
void cs_print_logs(const struct cluster *c, const char *why);

/* Kills everything still running, deletes the table and the directory
 * (unless keep_root, or NAGARE_CLUSTER_KEEP is set in the environment, to
 * look at a run that passed: then it says where it is), lets the address
 * block go. Harmless on a zeroed struct cluster. */
void cs_fini(struct cluster *c);

#endif
