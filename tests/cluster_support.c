/* A cluster on one machine for the fault runs (tests/cluster_support.h). */
#include "tests/cluster_support.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/clock.h"
#include "tests/broker_support.h"
#include "tests/sys_support.h"

/* The cluster settings every broker is started with (broker/config.c's
 * keys, `nagared --help` lists them): a nagared without them cannot run a
 * cluster, and cs_need_cluster() says which are missing. */
#define KEY_BROKER_ID "broker_id"
#define KEY_ETCD_ENDPOINTS "etcd_endpoints"
#define KEY_CLUSTER_NAME "cluster_name"
static const char *const cluster_keys[] = {KEY_BROKER_ID, KEY_ETCD_ENDPOINTS, KEY_CLUSTER_NAME};

#define LISTEN_TEXT "nagared listening on "
#define NFT_PATHS "/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"
#define TABLE_PREFIX "nagare_t"
#define NET_LOCK_FMT "/tmp/nagare-cluster-net-%d.lock"
#define ETCD_MEMBERS 3
/* The cut chain runs after source NAT (priority srcnat, 100), so a
 * connection's NAT binding is made when its first packet meets the cuts. */
#define CUT_PRIORITY 110
#define OUT_BYTES 8192

static const char *nft_path(void)
{
    static const char *const paths[] = {NFT_PATHS};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        if (access(paths[i], X_OK) == 0) {
            return paths[i];
        }
    }
    return NULL;
}

/* ---- the table, also removed when the test dies ---- */

/* The table this process made, for the exit and signal handlers: argv of
 * `nft delete table ip <name>`, built before any handler may run. */
static char dying_table[32];
static const char *dying_argv[6];
static const char *dying_nft;

static void delete_table_now(void)
{
    if (dying_table[0] == '\0' || dying_nft == NULL) {
        return;
    }
    /* Only async-signal-safe calls: this runs from signal handlers too. */
    pid_t pid = fork();
    if (pid == 0) {
        int nul = open("/dev/null", O_WRONLY);
        if (nul >= 0) {
            dup2(nul, STDERR_FILENO);
        }
        execv(dying_nft, (char *const *)dying_argv);
        _exit(127);
    }
    if (pid > 0) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
    }
    dying_table[0] = '\0';
}

static const int fatal_signals[] = {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTERM, SIGINT};
static struct sigaction previous[sizeof(fatal_signals) / sizeof(fatal_signals[0])];

static void on_fatal(int sig)
{
    delete_table_now();
    for (size_t i = 0; i < sizeof(fatal_signals) / sizeof(fatal_signals[0]); i++) {
        if (fatal_signals[i] == sig) {
            sigaction(sig, &previous[i], NULL);
        }
    }
    raise(sig);
}

static void guard_table(const char *name)
{
    static bool installed;
    snprintf(dying_table, sizeof(dying_table), "%s", name);
    dying_nft = nft_path();
    const char *argv[] = {dying_nft, "delete", "table", "ip", dying_table, NULL};
    memcpy(dying_argv, argv, sizeof(argv));
    if (installed) {
        return;
    }
    installed = true;
    atexit(delete_table_now);
    for (size_t i = 0; i < sizeof(fatal_signals) / sizeof(fatal_signals[0]); i++) {
        struct sigaction sa = {.sa_handler = on_fatal};
        sigemptyset(&sa.sa_mask);
        sigaction(fatal_signals[i], &sa, &previous[i]);
    }
}

/* Runs nft with a script; asserts success, showing nft's complaint. */
static void nft(const struct cluster *c, const char *script)
{
    char path[CS_PATH_BYTES];
    snprintf(path, sizeof(path), "%s/nft.rules", c->root);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(script, f);
    cr_assert_eq(fclose(f), 0);
    char cmd[CS_PATH_BYTES + 64];
    char out[OUT_BYTES];
    snprintf(cmd, sizeof(cmd), "'%s' -f '%s' 2>&1", nft_path(), path);
    int rc = bk_run(cmd, out, sizeof(out));
    cr_assert_eq(rc, 0, "nft failed (%d): %s\nscript:\n%s", rc, out, script);
}

/* Deletes the tables of test processes that no longer run. */
static void sweep_stale_tables(void)
{
    char cmd[64];
    char out[OUT_BYTES];
    snprintf(cmd, sizeof(cmd), "'%s' list tables 2>/dev/null", nft_path());
    (void)bk_run(cmd, out, sizeof(out));
    for (char *line = strtok(out, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        const char *at = strstr(line, "table ip " TABLE_PREFIX);
        if (at == NULL) {
            continue;
        }
        long pid = strtol(at + strlen("table ip " TABLE_PREFIX), NULL, 10);
        if (pid > 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH) {
            char del[128];
            char ignored[256];
            snprintf(del, sizeof(del), "'%s' delete table ip " TABLE_PREFIX "%ld 2>&1", nft_path(),
                     pid);
            (void)bk_run(del, ignored, sizeof(ignored));
        }
    }
}

void cs_net_start(struct cluster *c)
{
    cr_assert_not(c->table_made);
    char script[4096];
    size_t n = (size_t)snprintf(script, sizeof(script),
                                "table ip %s {\n"
                                "  chain rewrite {\n"
                                "    type nat hook postrouting priority srcnat; policy accept;\n",
                                c->table);
    for (size_t i = 0; i < c->broker_count; i++) {
        n += (size_t)snprintf(script + n, sizeof(script) - n,
                              "    meta skuid %u ip saddr 127.0.0.1 ip daddr 127.0.0.0/8 "
                              "snat to %s\n",
                              (unsigned)c->b[i].uid, c->b[i].host);
    }
    n += (size_t)snprintf(script + n, sizeof(script) - n,
                          "  }\n"
                          "  chain cut {\n"
                          "    type filter hook postrouting priority %d; policy accept;\n"
                          "  }\n"
                          "}\n",
                          CUT_PRIORITY);
    cr_assert_lt(n, sizeof(script));
    guard_table(c->table);
    c->table_made = true;
    nft(c, script);
}

/* ---- skips ---- */

void cs_need_nft(void)
{
    if (geteuid() != 0) {
        cr_skip_test("network cuts need root (nftables, brokers run as their own users)");
    }
    if (nft_path() == NULL) {
        cr_skip_test("no nft binary (Debian's nftables: ./dev.sh test installs it)");
    }
}

void cs_need_keys(const char *const *keys, size_t count)
{
    const char *nagared = getenv("NAGARED");
    cr_assert(nagared != NULL && *nagared, "set NAGARED to the nagared binary");
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "'%s' --help 2>&1", nagared);
    char *help = malloc(1 << 16);
    cr_assert_not_null(help);
    (void)bk_run(cmd, help, 1 << 16);
    char missing[256] = "";
    for (size_t i = 0; i < count; i++) {
        if (strstr(help, keys[i]) == NULL) {
            size_t len = strlen(missing);
            snprintf(missing + len, sizeof(missing) - len, " %s", keys[i]);
        }
    }
    free(help);
    if (missing[0] != '\0') {
        cr_skip_test("nagared lacks cluster settings (`nagared --help` has no:%s)", missing);
    }
}

void cs_need_cluster(void)
{
    cs_need_nft();
    cs_need_keys(cluster_keys, sizeof(cluster_keys) / sizeof(cluster_keys[0]));
}

/* ---- layout ---- */

/* Claims a free block 127.99.<net>.0/24: a lock file held while c lives. */
static void claim_net(struct cluster *c)
{
    for (int k = 0; k < CS_NETS; k++) {
        int net = (int)((getpid() + k) % CS_NETS);
        char path[64];
        snprintf(path, sizeof(path), NET_LOCK_FMT, net);
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
        cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            c->net = net;
            c->net_lock_fd = fd;
            c->net_claimed = true;
            return;
        }
        close(fd);
    }
    cr_assert_fail("every address block 127.99.*.0/24 is taken");
}

/* A port free on host now: the address is this cluster's alone, so it
 * stays free but for a listener on every address. */
static uint16_t free_port(const char *host)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    cr_assert_eq(inet_pton(AF_INET, host, &sa.sin_addr), 1);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "bind %s: %s", host,
                 strerror(errno));
    socklen_t len = sizeof(sa);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

/* Appends one broker's address to a bootstrap list. */
static void bootstrap_add(char list[CS_BOOTSTRAP_BYTES], const char *addr)
{
    size_t len = strlen(list);
    snprintf(list + len, CS_BOOTSTRAP_BYTES - len, "%s%s", len ? "," : "", addr);
}

static void lay_out_broker(struct cluster *c, size_t i)
{
    struct cs_broker *b = &c->b[i];
    b->id = (int32_t)i + 1;
    /* Formatted from locals: b's fields all live in *c, and the compiler
     * cannot tell that they do not overlap. */
    int net = c->net;
    char host[CS_HOST_BYTES];
    cr_assert(net >= 0 && net < CS_NETS && i < CS_BROKERS_MAX);
    snprintf(host, sizeof(host), "127.99.%hhu.%hhu", (unsigned char)net, (unsigned char)(11 + i));
    uint16_t port = free_port(host);
    memcpy(b->host, host, sizeof(host));
    b->port = port;
    snprintf(b->bootstrap, sizeof(b->bootstrap), "%s:%u", host, port);
    b->uid = CS_UID_BASE + 16u * (unsigned)net + (unsigned)i;
    char root[CS_ROOT_BYTES];
    memcpy(root, c->root, sizeof(root));
    char dir[sizeof(b->dir)];
    snprintf(dir, sizeof(dir), "%s/b%d", root, b->id);
    memcpy(b->dir, dir, sizeof(dir));
    snprintf(b->data_dir, sizeof(b->data_dir), "%s/data", dir);
    snprintf(b->log_path, sizeof(b->log_path), "%s/nagared.log", dir);
    cr_assert_eq(mkdir(b->dir, 0755), 0, "mkdir %s: %s", b->dir, strerror(errno));
    cr_assert_eq(chown(b->dir, b->uid, b->uid), 0, "chown %s: %s", b->dir, strerror(errno));
    bootstrap_add(c->bootstrap, b->bootstrap);
}

void cs_bootstrap_without(const struct cluster *c, size_t skip, char out[CS_BOOTSTRAP_BYTES])
{
    out[0] = '\0';
    for (size_t i = 0; i < c->broker_count; i++) {
        if (i != skip) {
            bootstrap_add(out, c->b[i].bootstrap);
        }
    }
}

void cs_init(struct cluster *c, size_t brokers)
{
    cr_assert(brokers >= 1 && brokers <= CS_BROKERS_MAX);
    memset(c, 0, sizeof(*c));
    const char *tmp = getenv("TMPDIR");
    snprintf(c->root, sizeof(c->root), "%s/nagare-cluster-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    cr_assert_not_null(mkdtemp(c->root), "mkdtemp: %s", strerror(errno));
    cr_assert_eq(chmod(c->root, 0755), 0); /* the brokers' users go through it */
    snprintf(c->table, sizeof(c->table), TABLE_PREFIX "%d", (int)getpid());
    if (geteuid() == 0 && nft_path() != NULL) {
        sweep_stale_tables();
    }
    claim_net(c);
    c->broker_count = brokers;
    for (size_t i = 0; i < brokers; i++) {
        lay_out_broker(c, i);
    }
}

void cs_set(struct cluster *c, const char *kv)
{
    cr_assert_lt(c->set_count, CS_SETS_MAX);
    c->sets[c->set_count++] = kv;
}

/* ---- brokers ---- */

static bool log_has_since(const char *path, size_t from, const char *text)
{
    size_t len;
    char *log = bk_read_file(path, &len);
    const char *at = strstr(log + (from < len ? from : len), text);
    bool found = at != NULL && strchr(at, '\n') != NULL;
    free(log);
    return found;
}

/* A listener's port from the broker's log of this start (what names it,
 * "<what> on <host>:<port>", is logged before the listening line), or 0. */
static uint16_t port_since(const struct cs_broker *b, const char *what)
{
    char text[CS_HOST_BYTES + 64];
    snprintf(text, sizeof(text), "%s on %s:", what, b->host);
    size_t len;
    char *log = bk_read_file(b->log_path, &len);
    const char *at = strstr(log + (b->log_from < len ? b->log_from : len), text);
    unsigned long port = at != NULL ? strtoul(at + strlen(text), NULL, 10) : 0;
    free(log);
    return port <= UINT16_MAX ? (uint16_t)port : 0;
}

static size_t file_bytes(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (size_t)st.st_size : 0;
}

void cs_broker_start(struct cluster *c, size_t i)
{
    cr_assert_lt(i, c->broker_count);
    struct cs_broker *b = &c->b[i];
    cr_assert_eq(b->pid, 0, "broker %d already running", b->id);
    char listen[CS_HOST_BYTES + 8];
    char id[32];
    char endpoints[sizeof(c->endpoints) + 32];
    char name[64];
    snprintf(listen, sizeof(listen), "%s:%u", b->host, b->port);
    char kafka_listen[CS_HOST_BYTES + 8];
    snprintf(kafka_listen, sizeof(kafka_listen), "%s:0", b->host);
    snprintf(id, sizeof(id), KEY_BROKER_ID "=%d", b->id);
    snprintf(endpoints, sizeof(endpoints), KEY_ETCD_ENDPOINTS "=%s", c->endpoints);
    snprintf(name, sizeof(name), KEY_CLUSTER_NAME "=%s", c->table);
    const char *args[20 + 2 * CS_SETS_MAX] = {
        "--listen",   listen,       "--kafka-listen", kafka_listen, "--admin-listen",
        kafka_listen, "--data-dir", b->data_dir,      "--set",      id,
        "--set",      endpoints,    "--set",          name};
    size_t n = c->standalone ? 8 : 14;
    for (size_t k = 0; k < c->set_count; k++) {
        args[n++] = "--set";
        args[n++] = c->sets[k];
    }
    args[n] = NULL;
    b->log_from = file_bytes(b->log_path);
    b->paused = false;
    const char *path = NULL;
    if (c->power_sim) {
        path = getenv("NAGARED_SIM");
        cr_assert(path != NULL && *path, "set NAGARED_SIM to the nagared_sim binary");
        /* The simulation's switch, seen by every broker this process
         * starts; set at the first start, before the test runs threads. */
        if (getenv("NAGARE_POWER_SIM") == NULL) {
            cr_assert_eq(setenv("NAGARE_POWER_SIM", "1", 1), 0);
        }
    }
    b->pid = bk_spawn_as(path, args, b->log_path, b->uid);
    int64_t deadline = clock_mono_ms() + CS_START_TIMEOUT_MS;
    while (!log_has_since(b->log_path, b->log_from, LISTEN_TEXT)) {
        int status;
        if (waitpid(b->pid, &status, WNOHANG) == b->pid) {
            b->pid = 0;
            bk_print_tail(b->log_path, "nagared exited at start");
            cr_assert_fail("broker %d exited at start (wait status %#x)", b->id, status);
        }
        if (clock_mono_ms() >= deadline) {
            cs_broker_kill(c, i);
            bk_print_tail(b->log_path, "nagared did not start");
            cr_assert_fail("broker %d: no listening line within %d ms", b->id, CS_START_TIMEOUT_MS);
        }
        sleep_ms(10);
    }
    b->kafka_port = port_since(b, "Kafka clients served");
    b->admin_port = port_since(b, "HTTP admin (metrics, health) served");
}

void cs_broker_stop(struct cluster *c, size_t i)
{
    struct cs_broker *b = &c->b[i];
    cr_assert_gt(b->pid, 0, "broker %d is not running", b->id);
    cs_broker_resume(c, i);
    (void)kill(b->pid, SIGTERM);
    int status = 0;
    if (!bk_wait(b->pid, CS_STOP_TIMEOUT_MS, &status)) {
        cs_broker_kill(c, i);
        bk_print_tail(b->log_path, "nagared ignored SIGTERM");
        cr_assert_fail("broker %d did not exit within %d ms of SIGTERM", b->id, CS_STOP_TIMEOUT_MS);
    }
    b->pid = 0;
    bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!clean) {
        bk_print_tail(b->log_path, "unclean exit");
    }
    cr_assert(clean, "broker %d exit: %s %d", b->id, WIFEXITED(status) ? "status" : "signal",
              WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    bk_assert_log_clean(b->log_path, b->log_from);
}

void cs_broker_kill(struct cluster *c, size_t i)
{
    struct cs_broker *b = &c->b[i];
    cr_assert_gt(b->pid, 0, "broker %d is not running", b->id);
    (void)kill(b->pid, SIGKILL); /* a stopped process dies too */
    int status;
    while (waitpid(b->pid, &status, 0) < 0 && errno == EINTR) {
    }
    b->pid = 0;
    b->paused = false;
}

void cs_broker_power_cut(struct cluster *c, size_t i)
{
    struct cs_broker *b = &c->b[i];
    cr_assert(c->power_sim, "power cuts need c->power_sim");
    cr_assert_gt(b->pid, 0, "broker %d is not running", b->id);
    cs_broker_resume(c, i);
    cr_assert_eq(kill(b->pid, SIGUSR2), 0);
    int status = 0;
    if (!bk_wait(b->pid, CS_STOP_TIMEOUT_MS, &status)) {
        cs_broker_kill(c, i);
        bk_print_tail(b->log_path, "no power cut");
        cr_assert_fail("broker %d did not go down within %d ms of its power cut", b->id,
                       CS_STOP_TIMEOUT_MS);
    }
    b->pid = 0;
    bool cut = WIFEXITED(status) && WEXITSTATUS(status) == 137;
    if (!cut) {
        bk_print_tail(b->log_path, "the power cut failed");
    }
    cr_assert(cut, "broker %d: wait status %#x after its power cut", b->id, status);
}

void cs_broker_pause(struct cluster *c, size_t i)
{
    struct cs_broker *b = &c->b[i];
    cr_assert_gt(b->pid, 0, "broker %d is not running", b->id);
    cr_assert_eq(kill(b->pid, SIGSTOP), 0);
    b->paused = true;
}

void cs_broker_resume(struct cluster *c, size_t i)
{
    struct cs_broker *b = &c->b[i];
    if (b->pid > 0 && b->paused) {
        cr_assert_eq(kill(b->pid, SIGCONT), 0);
    }
    b->paused = false;
}

bool cs_broker_alive(struct cluster *c, size_t i)
{
    struct cs_broker *b = &c->b[i];
    int status;
    if (b->pid > 0 && waitpid(b->pid, &status, WNOHANG) == b->pid) {
        b->pid = 0;
        bk_print_tail(b->log_path, "nagared died");
    }
    return b->pid > 0;
}

void cs_stop_brokers(struct cluster *c)
{
    for (size_t i = 0; i < c->broker_count; i++) {
        if (c->b[i].pid > 0) {
            cs_broker_stop(c, i);
        }
    }
}

void cs_start(struct cluster *c)
{
    if (!c->standalone) {
        ets_start(&c->etcd, ETCD_MEMBERS);
    }
    size_t n = 0;
    for (size_t i = 0; i < c->etcd.count; i++) {
        n += (size_t)snprintf(c->endpoints + n, sizeof(c->endpoints) - n, "%s%s", i ? "," : "",
                              c->etcd.m[i].client_url);
    }
    cr_assert_lt(n, sizeof(c->endpoints));
    if (geteuid() == 0 && nft_path() != NULL) {
        cs_net_start(c);
    }
    size_t start = c->start_count > 0 ? c->start_count : c->broker_count;
    cr_assert_leq(start, c->broker_count);
    for (size_t i = 0; i < start; i++) {
        cs_broker_start(c, i);
    }
}

/* ---- etcd ---- */

size_t cs_etcd_kill_leader(struct cluster *c)
{
    size_t i = ets_leader(&c->etcd);
    ets_stop(&c->etcd, i, SIGKILL);
    return i;
}

/* ---- cuts ---- */

static void cut(struct cluster *c, const char *rules)
{
    cr_assert(c->table_made, "network cuts need the table (cs_need_nft, cs_start)");
    nft(c, rules);
}

/* A connection's reply tuple holds both ends as the wire has them: its
 * source is the side that accepted, its destination the side that
 * connected (after the source NAT). A reply packet is rewritten back to
 * 127.0.0.1 where it is sent, before postrouting, so its own addresses
 * would not tell; the tuple does. */
#define ACCEPTED "ct reply ip saddr"
#define CONNECTED "ct reply ip daddr"

/* Rules dropping every packet sent from address from to address to. */
static void drop_between(char *buf, size_t cap, size_t *n, const char *table, const char *from,
                         const char *to)
{
    *n += (size_t)snprintf(
        buf + *n, cap - *n,
        "add rule ip %s cut ct direction original " CONNECTED " %s " ACCEPTED " %s drop\n"
        "add rule ip %s cut ct direction reply " ACCEPTED " %s " CONNECTED " %s drop\n",
        table, from, to, table, from, to);
    cr_assert_lt(*n, cap);
}

void cs_isolate(struct cluster *c, size_t i)
{
    cr_assert_lt(i, c->broker_count);
    const char *h = c->b[i].host;
    char rules[512];
    snprintf(rules, sizeof(rules),
             "add rule ip %s cut " CONNECTED " %s " ACCEPTED " != %s drop\n"
             "add rule ip %s cut " ACCEPTED " %s " CONNECTED " != %s drop\n",
             c->table, h, h, c->table, h, h);
    cut(c, rules);
}

void cs_split(struct cluster *c, uint32_t side)
{
    char rules[4096];
    size_t n = 0;
    for (size_t a = 0; a < c->broker_count; a++) {
        for (size_t b = 0; b < c->broker_count; b++) {
            if (((side >> a) & 1u) != ((side >> b) & 1u)) {
                drop_between(rules, sizeof(rules), &n, c->table, c->b[a].host, c->b[b].host);
            }
        }
    }
    cr_assert_gt(n, 0, "a split needs brokers on both sides");
    cut(c, rules);
}

void cs_drop_oneway(struct cluster *c, size_t from, size_t to)
{
    cr_assert(from < c->broker_count && to < c->broker_count && from != to);
    char rules[512];
    size_t n = 0;
    drop_between(rules, sizeof(rules), &n, c->table, c->b[from].host, c->b[to].host);
    cut(c, rules);
}

void cs_heal(struct cluster *c)
{
    char rules[128];
    snprintf(rules, sizeof(rules), "flush chain ip %s cut\n", c->table);
    cut(c, rules);
}

/* ---- the end ---- */

int cs_leader_index(const char *bootstrap, const char *topic, int32_t partition)
{
    nagare_admin *a;
    if (nagare_admin_new(bootstrap, 5000, &a) != 0) {
        return -1;
    }
    const struct nagare_cluster_info *info;
    int found = -1;
    if (nagare_cluster_describe(a, &info) == 0) {
        for (size_t i = 0; i < info->partition_count; i++) {
            const struct nagare_partition_replicas *p = &info->partitions[i];
            if (strcmp(p->topic, topic) == 0 && p->partition == partition && p->leader > 0) {
                found = p->leader - 1;
            }
        }
        nagare_cluster_info_free(a, info);
    }
    nagare_admin_destroy(a);
    return found;
}

void cs_topic_create(struct cluster *c, const char *bootstrap, const char *topic,
                     const struct nagare_topic_config *cfg, const struct nagare_tls *tls,
                     uint32_t timeout_ms)
{
    int64_t deadline = clock_mono_ms() + timeout_ms;
    for (;;) {
        nagare_admin *a;
        int rc = nagare_admin_new_secure(bootstrap, 5000, NULL, tls, &a);
        if (rc == 0) {
            rc = nagare_topic_create(a, topic, cfg);
            nagare_admin_destroy(a);
        }
        if (rc == 0 || rc == -NAGARE_ETOPIC_EXISTS) {
            return;
        }
        if (clock_mono_ms() >= deadline) {
            cs_print_logs(c, "the topic was not created");
            cr_assert_fail("creating %s: %s", topic, nagare_strerror(rc));
        }
        sleep_ms(250);
    }
}

void cs_print_logs(const struct cluster *c, const char *why)
{
    for (size_t i = 0; i < c->broker_count; i++) {
        bk_print_tail(c->b[i].log_path, why);
    }
    ets_print_logs(&c->etcd, why);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

void cs_fini(struct cluster *c)
{
    for (size_t i = 0; i < c->broker_count; i++) {
        if (c->b[i].pid > 0) {
            cs_broker_kill(c, i);
        }
    }
    if (c->table_made) {
        delete_table_now();
        c->table_made = false;
    }
    ets_fini(&c->etcd);
    bool keep = c->keep_root || getenv("NAGARE_CLUSTER_KEEP") != NULL;
    if (c->root[0] != '\0' && keep) {
        fprintf(stderr, "cluster: data directories and logs kept in %s\n", c->root);
    } else if (c->root[0] != '\0') {
        (void)nftw(c->root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
    c->root[0] = '\0';
    if (c->net_claimed) {
        close(c->net_lock_fd);
        c->net_claimed = false;
    }
}
