/*
 * The cluster harness (tests/cluster_support.h). Its network: a broker's
 * user leaves from the broker's own address, and each cut drops exactly the
 * links it names, until healed; probed with plain sockets from processes
 * running as the brokers' users. Its brokers (standalone, so no etcd is
 * needed): each on its address as its user, through every fault it makes;
 * and its power cuts (nagared_sim): nothing acknowledged lost, and with
 * fsync off, acknowledged records lost (the cut is real).
 *
 * A dropped SYN never connects, so the probes of a cut link cannot pass by
 * chance; their short wait only bounds how long the test takes. Probes of
 * open links wait long (a busy machine).
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client/nagare.h"
#include "tests/checker.h"
#include "tests/cluster_support.h"

#define CUT_WAIT_MS 1500
#define OPEN_WAIT_MS 20000
#define CLIENT (-1) /* the probe runs as the test itself, from 127.0.0.1 */
#define ETCD_HOST "127.0.0.1"

static struct cluster C;
static int listeners[CS_BROKERS_MAX + 1]; /* one per broker address, then 127.0.0.1 */
static uint16_t ports[CS_BROKERS_MAX + 1];

static int listen_on(const char *host, uint16_t *port_out)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    cr_assert_eq(inet_pton(AF_INET, host, &sa.sin_addr), 1);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "bind: %s", strerror(errno));
    cr_assert_eq(listen(fd, 64), 0);
    socklen_t len = sizeof(sa);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *port_out = ntohs(sa.sin_port);
    return fd;
}

static void setup(void)
{
    cs_need_nft();
    cs_init(&C, 3);
    cs_net_start(&C);
    for (size_t i = 0; i < C.broker_count; i++) {
        listeners[i] = listen_on(C.b[i].host, &ports[i]);
    }
    listeners[C.broker_count] = listen_on(ETCD_HOST, &ports[C.broker_count]);
}

static void teardown(void)
{
    for (size_t i = 0; i <= C.broker_count; i++) {
        if (listeners[i] > 0) {
            close(listeners[i]);
        }
    }
    cs_fini(&C);
}

TestSuite(cluster_support, .init = setup, .fini = teardown, .timeout = 120);

/* Connects, as broker from's user (or CLIENT), to the listener of
 * broker `to` (or C.broker_count: 127.0.0.1) within wait_ms, in a child
 * process. True when it connected. */
static bool reaches(int from, size_t to, int wait_ms)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        if (from != CLIENT && (setgid(C.b[from].uid) != 0 || setuid(C.b[from].uid) != 0)) {
            _exit(2);
        }
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(ports[to])};
        inet_pton(AF_INET, to < C.broker_count ? C.b[to].host : ETCD_HOST, &sa.sin_addr);
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 && errno != EINPROGRESS) {
            _exit(1);
        }
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int err = 0;
        socklen_t len = sizeof(err);
        if (poll(&p, 1, wait_ms) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 ||
            err != 0) {
            _exit(1);
        }
        _exit(0);
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) != 2, "the probe could not become %d",
              from);
    return WEXITSTATUS(status) == 0;
}

/* The address the listener of `to` saw its last connection come from. */
static void last_peer(size_t to, char *host, size_t cap)
{
    host[0] = '\0';
    for (;;) {
        struct sockaddr_in sa;
        socklen_t len = sizeof(sa);
        int fd = accept(listeners[to], (struct sockaddr *)&sa, &len);
        if (fd < 0) {
            break;
        }
        inet_ntop(AF_INET, &sa.sin_addr, host, (socklen_t)cap);
        close(fd);
    }
}

static void assert_all_open(void)
{
    for (size_t to = 0; to <= C.broker_count; to++) {
        cr_assert(reaches(CLIENT, to, OPEN_WAIT_MS), "client -> %zu", to);
        for (size_t from = 0; from < C.broker_count; from++) {
            cr_assert(reaches((int)from, to, OPEN_WAIT_MS), "%zu -> %zu", from, to);
        }
    }
}

Test(cluster_support, a_broker_user_leaves_from_its_own_address)
{
    char peer[INET_ADDRSTRLEN];
    for (size_t from = 0; from < C.broker_count; from++) {
        cr_assert(reaches((int)from, C.broker_count, OPEN_WAIT_MS));
        last_peer(C.broker_count, peer, sizeof(peer));
        cr_assert_str_eq(peer, C.b[from].host);
    }
    cr_assert(reaches(CLIENT, 1, OPEN_WAIT_MS));
    last_peer(1, peer, sizeof(peer));
    cr_assert_str_eq(peer, "127.0.0.1", "the test's own clients are not rewritten");
    cr_assert_neq(C.b[0].uid, C.b[1].uid);
}

Test(cluster_support, isolate_cuts_one_broker_from_everything_until_healed)
{
    cs_isolate(&C, 0);
    cr_assert_not(reaches(CLIENT, 0, CUT_WAIT_MS), "client -> 0");
    cr_assert_not(reaches(1, 0, CUT_WAIT_MS), "1 -> 0");
    cr_assert_not(reaches(0, 1, CUT_WAIT_MS), "0 -> 1");
    cr_assert_not(reaches(0, C.broker_count, CUT_WAIT_MS), "0 -> etcd");
    cr_assert(reaches(1, 2, OPEN_WAIT_MS), "1 -> 2");
    cr_assert(reaches(2, C.broker_count, OPEN_WAIT_MS), "2 -> etcd");
    cs_heal(&C);
    assert_all_open();
}

Test(cluster_support, split_cuts_the_halves_apart_only)
{
    cs_split(&C, 1u << 0); /* {0} | {1, 2} */
    cr_assert_not(reaches(0, 1, CUT_WAIT_MS));
    cr_assert_not(reaches(2, 0, CUT_WAIT_MS));
    cr_assert(reaches(1, 2, OPEN_WAIT_MS));
    cr_assert(reaches(0, C.broker_count, OPEN_WAIT_MS), "etcd stays reachable");
    cr_assert(reaches(CLIENT, 0, OPEN_WAIT_MS), "clients too");
    cs_heal(&C);
    assert_all_open();
}

/* Sends a datagram as broker from's user to port on broker to's address,
 * in a child process. */
static void send_datagram(size_t from, size_t to, uint16_t port)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        if (setgid(C.b[from].uid) != 0 || setuid(C.b[from].uid) != 0) {
            _exit(2);
        }
        int fd = socket(AF_INET, SOCK_DGRAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
        inet_pton(AF_INET, C.b[to].host, &sa.sin_addr);
        /* A packet nftables drops on its way out fails with EPERM: only
         * its arrival tells. */
        (void)sendto(fd, "x", 1, 0, (struct sockaddr *)&sa, sizeof(sa));
        _exit(0);
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* Whether a datagram reaches a UDP socket on broker to's address from
 * broker from. */
static bool datagram_arrives(size_t from, size_t to, int wait_ms)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    inet_pton(AF_INET, C.b[to].host, &sa.sin_addr);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t len = sizeof(sa);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    send_datagram(from, to, ntohs(sa.sin_port));
    struct pollfd p = {.fd = fd, .events = POLLIN};
    bool arrived = poll(&p, 1, wait_ms) == 1;
    close(fd);
    return arrived;
}

Test(cluster_support, a_one_way_cut_drops_one_direction)
{
    cs_drop_oneway(&C, 0, 1);
    cr_assert_not(datagram_arrives(0, 1, CUT_WAIT_MS), "0 -> 1 is cut");
    cr_assert(datagram_arrives(1, 0, OPEN_WAIT_MS), "1 -> 0 is not");
    /* Broker 0's SYN to 1 is dropped; 1's SYN to 0 arrives but the answer
     * is dropped: TCP needs both ways, so neither connects. */
    cr_assert_not(reaches(0, 1, CUT_WAIT_MS));
    cr_assert_not(reaches(1, 0, CUT_WAIT_MS));
    cr_assert(reaches(0, 2, OPEN_WAIT_MS));
    cr_assert(reaches(2, 1, OPEN_WAIT_MS));
    cs_heal(&C);
    assert_all_open();
}

/* ---- brokers: on their addresses, as their users ---- */

#define ADMIN_CUT_MS 1500 /* an answer that cannot come: only bounds the wait */
#define ADMIN_OPEN_MS 20000

static void brokers_setup(void)
{
    cs_need_nft();
    cs_init(&C, 2);
    C.standalone = true;
    cs_start(&C);
}

static void brokers_teardown(void) { cs_fini(&C); }

TestSuite(cluster_brokers, .init = brokers_setup, .fini = brokers_teardown, .timeout = 300);

/* Whether broker i answers an admin client (connect and ApiVersions)
 * within wait_ms. */
static bool answers(size_t i, uint32_t wait_ms)
{
    nagare_admin *a;
    if (nagare_admin_new(C.b[i].bootstrap, wait_ms, &a) != 0) {
        return false;
    }
    nagare_admin_destroy(a);
    return true;
}

static void create_topic(size_t i, const char *name)
{
    nagare_admin *a;
    int rc = nagare_admin_new(C.b[i].bootstrap, ADMIN_OPEN_MS, &a);
    cr_assert_eq(rc, 0, "admin of broker %zu: %s", i, nagare_strerror(rc));
    struct nagare_topic_config cfg;
    nagare_topic_config_default(&cfg);
    rc = nagare_topic_create(a, name, &cfg);
    cr_assert_eq(rc, 0, "create %s: %s", name, nagare_strerror(rc));
    nagare_admin_destroy(a);
}

Test(cluster_brokers, run_as_their_users_on_their_addresses_through_every_fault)
{
    for (size_t i = 0; i < C.broker_count; i++) {
        create_topic(i, "t");
        char dir[CS_PATH_BYTES + 16];
        snprintf(dir, sizeof(dir), "%s/topics/t", C.b[i].data_dir);
        struct stat st;
        cr_assert_eq(stat(dir, &st), 0, "%s: %s", dir, strerror(errno));
        cr_assert_eq(st.st_uid, C.b[i].uid, "broker %zu writes as its own user", i);
    }

    cs_isolate(&C, 0);
    cr_assert_not(answers(0, ADMIN_CUT_MS), "isolated");
    cr_assert(answers(1, ADMIN_OPEN_MS));
    cs_heal(&C);
    cr_assert(answers(0, ADMIN_OPEN_MS), "healed");

    cs_broker_pause(&C, 1);
    cr_assert_not(answers(1, ADMIN_CUT_MS), "paused");
    cs_broker_resume(&C, 1);
    cr_assert(answers(1, ADMIN_OPEN_MS), "resumed");

    cs_broker_kill(&C, 0);
    cr_assert_not(cs_broker_alive(&C, 0));
    cr_assert_not(answers(0, ADMIN_CUT_MS), "killed");
    cs_broker_start(&C, 0);
    cr_assert(answers(0, ADMIN_OPEN_MS), "restarted on its address and port");
    create_topic(0, "u"); /* its data directory is still its own */

    cs_broker_pause(&C, 1); /* a stop resumes a paused broker first */
    cs_stop_brokers(&C);
    for (size_t i = 0; i < C.broker_count; i++) {
        cr_assert_not(cs_broker_alive(&C, i));
    }
}

/* ---- power cuts (nagared_sim) ---- */

#define POWER_TOPIC "p"
#define POWER_RECORDS 400

static struct checker K;

static void power_setup(void)
{
    cs_need_nft(); /* root: brokers run as their own users */
    cs_init(&C, 1);
    C.standalone = true;
    C.power_sim = true;
    cr_assert_eq(setenv("NAGARE_POWER_SIM_SEED", "7", 1), 0);
    chk_init(&K, POWER_TOPIC, 1);
}

static void power_teardown(void)
{
    cs_fini(&C);
    chk_fini(&K);
    unsetenv("NAGARE_POWER_SIM_NOSYNC");
}

TestSuite(cluster_power, .init = power_setup, .fini = power_teardown, .timeout = 300);

/* Starts the broker, makes the topic, and writes POWER_RECORDS records,
 * every one acknowledged (acks=all: synced first), then cuts the power. */
static void produce_then_cut(void)
{
    cs_start(&C);
    create_topic(0, POWER_TOPIC);
    struct chk_producers_config cfg;
    chk_producers_config_default(&cfg);
    cfg.bootstrap = C.b[0].bootstrap;
    cfg.records_max = POWER_RECORDS;
    struct chk_producers ps;
    cr_assert_eq(chk_producers_start(&ps, &K, &cfg), 0);
    int rc = chk_producers_join(&ps);
    cr_assert_eq(rc, 0, "producer: %s", nagare_strerror(rc));
    cr_assert_eq(chk_acked_count(&K), POWER_RECORDS);
    cs_broker_power_cut(&C, 0);
}

static void verify_after(struct chk_result *r)
{
    struct chk_source *s = chk_source_add(&K, "broker log", CHK_REPLICA);
    int rc = chk_read_replica_dir(&K, s, C.b[0].data_dir);
    cr_assert_eq(rc, 0, "replica read: %s", nagare_strerror(rc));
    chk_verify(&K, r);
    chk_print(&K, r, stderr);
}

Test(cluster_power, a_power_cut_keeps_everything_acknowledged)
{
    produce_then_cut();
    cs_broker_start(&C, 0); /* recovery after the cut */
    struct chk_source *s = chk_source_add(&K, "consumer", CHK_CONSUMER);
    int rc = chk_read_consumer(&K, s, C.b[0].bootstrap, 60000);
    cr_assert_eq(rc, 0, "consumer read: %s", nagare_strerror(rc));
    cs_stop_brokers(&C);
    struct chk_result r;
    verify_after(&r);
    cr_assert(r.ok);
    cr_assert_eq(r.acked, POWER_RECORDS);
}

/* The proof that the cut is real: with fsync keeping nothing, the records
 * acknowledged are gone from the disk the cut leaves. */
Test(cluster_power, a_power_cut_with_fsync_off_loses_acknowledged_records)
{
    cr_assert_eq(setenv("NAGARE_POWER_SIM_NOSYNC", "1", 1), 0);
    produce_then_cut();
    struct chk_result r;
    verify_after(&r);
    cr_assert_not(r.ok);
    cr_assert_gt(r.lost.count, 0);
}
