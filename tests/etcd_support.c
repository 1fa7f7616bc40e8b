/* Real etcd members for tests (tests/etcd_support.h). */
#include "tests/etcd_support.h"

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/clock.h"

#define START_ATTEMPTS 5     /* starts again on new ports after a clash */
#define POLL_MS 20           /* between two looks at a member */
#define HTTP_TIMEOUT_MS 2000 /* one health or status request */
#define ANSWER_BYTES_MAX 65536
#define LOG_TAIL_BYTES 2000
#define CLASH_TEXT "address already in use"
static_assert(ETS_MEMBERS_MAX <= 10, "member names are m and one digit");
/* Ports are drawn from [PORT_LOW, the ephemeral range's start). */
#define PORT_LOW 10000

/* ---- small HTTP ---- */

struct answer {
    char buf[ANSWER_BYTES_MAX];
    size_t len;
};

static size_t answer_write(char *p, size_t size, size_t n, void *arg)
{
    struct answer *a = arg;
    size_t bytes = size * n;
    if (bytes > sizeof(a->buf) - 1 - a->len) {
        return 0; /* too long: curl fails the transfer */
    }
    memcpy(a->buf + a->len, p, bytes);
    a->len += bytes;
    a->buf[a->len] = '\0';
    return bytes;
}

/* GET (body NULL) or POST body to url. Returns the HTTP status, or 0 when
 * the member did not answer. */
static long http(const char *url, const char *body, struct answer *a)
{
    a->len = 0;
    a->buf[0] = '\0';
    CURL *h = curl_easy_init();
    cr_assert_not_null(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)HTTP_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, answer_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, a);
    if (body != NULL) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    }
    long status = 0;
    if (curl_easy_perform(h) == CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    }
    curl_easy_cleanup(h);
    return status;
}

static bool healthy(const struct ets_member *m)
{
    char url[ETS_URL_BYTES + 16];
    snprintf(url, sizeof(url), "%s/health", m->client_url);
    struct answer a;
    return http(url, NULL, &a) == 200 && strstr(a.buf, "\"health\":\"true\"") != NULL;
}

/* Member m's own id and the leader it knows ("0" for none), from
 * /v3/maintenance/status; false when it does not answer. */
static bool status(const struct ets_member *m, char *id, char *leader, size_t cap)
{
    char url[ETS_URL_BYTES + 32];
    snprintf(url, sizeof(url), "%s/v3/maintenance/status", m->client_url);
    struct answer a;
    if (http(url, "{}", &a) != 200) {
        return false;
    }
    json_t *root = json_loadb(a.buf, a.len, 0, NULL);
    const char *got_id =
        json_string_value(json_object_get(json_object_get(root, "header"), "member_id"));
    const char *got_leader = json_string_value(json_object_get(root, "leader"));
    bool ok =
        got_id != NULL && strlen(got_id) < cap && (got_leader == NULL || strlen(got_leader) < cap);
    if (ok) {
        snprintf(id, cap, "%s", got_id);
        snprintf(leader, cap, "%s", got_leader != NULL ? got_leader : "0");
    }
    json_decref(root);
    return ok;
}

/* ---- files and processes ---- */

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

static void remove_tree(const char *path)
{
    (void)nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* $ETCD, or `etcd` on $PATH, into path; false when neither is there. */
static bool find_etcd(char *path, size_t cap)
{
    const char *env = getenv("ETCD");
    if (env != NULL && *env != '\0') {
        snprintf(path, cap, "%s", env);
        return access(path, X_OK) == 0;
    }
    const char *dirs = getenv("PATH");
    char copy[4096];
    snprintf(copy, sizeof(copy), "%s", dirs != NULL ? dirs : "/usr/bin:/bin");
    char *save = NULL;
    for (char *d = strtok_r(copy, ":", &save); d != NULL; d = strtok_r(NULL, ":", &save)) {
        snprintf(path, cap, "%s/etcd", d);
        if (access(path, X_OK) == 0) {
            return true;
        }
    }
    return false;
}

static bool file_has(const char *path, const char *text)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        return false;
    }
    static char buf[1 << 20];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    return strstr(buf, text) != NULL;
}

/* The start of the kernel's ephemeral port range. */
static unsigned ephemeral_low(void)
{
    unsigned low = 32768;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f != NULL) {
        if (fscanf(f, "%u", &low) != 1) {
            low = 32768;
        }
        fclose(f);
    }
    return low;
}

/* A port below the ephemeral range that nobody holds on 127.0.0.1 now. */
static uint16_t pick_port(void)
{
    unsigned low = ephemeral_low();
    cr_assert_gt(low, PORT_LOW + 1000, "the ephemeral port range starts at %u", low);
    for (int tries = 0; tries < 1000; tries++) {
        uint16_t port = (uint16_t)(PORT_LOW + (unsigned)random() % (low - PORT_LOW));
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert_geq(fd, 0, "socket: %s", strerror(errno));
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons(port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
        close(fd);
        if (rc == 0) {
            return port;
        }
    }
    cr_assert_fail("no free port below %u", low);
    return 0;
}

static void spawn(struct ets *c, struct ets_member *m, const char *etcd, const char *cluster)
{
    char token[ETS_ROOT_BYTES + 8];
    snprintf(token, sizeof(token), "nagare-%s", strrchr(c->root, '/') + 1);
    const char *argv[] = {etcd,          "--name",
                          m->name,       "--data-dir",
                          m->data_dir,   "--listen-client-urls",
                          m->client_url, "--advertise-client-urls",
                          m->client_url, "--listen-peer-urls",
                          m->peer_url,   "--initial-advertise-peer-urls",
                          m->peer_url,   "--initial-cluster",
                          cluster,       "--initial-cluster-state",
                          "new",         "--initial-cluster-token",
                          token,         "--logger",
                          "zap",         "--log-level",
                          "warn",        NULL};
    pid_t parent = getpid();
    pid_t pid = fork();
    cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        /* Only async-signal-safe calls between fork and exec. */
        int fd = open(m->log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        int nul = open("/dev/null", O_RDONLY);
        if (fd < 0 || nul < 0 || dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0 ||
            dup2(nul, STDIN_FILENO) < 0) {
            _exit(126);
        }
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) {
            _exit(126);
        }
        execv(etcd, (char *const *)argv);
        _exit(127);
    }
    m->pid = pid;
}

/* The --initial-cluster list of c's members. */
static void cluster_list(const struct ets *c, char *buf, size_t cap)
{
    size_t at = 0;
    for (size_t i = 0; i < c->count; i++) {
        int n = snprintf(buf + at, cap - at, "%s%s=%s", i > 0 ? "," : "", c->m[i].name,
                         c->m[i].peer_url);
        cr_assert(n > 0 && (size_t)n < cap - at);
        at += (size_t)n;
    }
}

static void start_member(struct ets *c, size_t i)
{
    char etcd[ETS_PATH_BYTES];
    cr_assert(find_etcd(etcd, sizeof(etcd)));
    char cluster[ETS_MEMBERS_MAX * (ETS_URL_BYTES + 16)];
    cluster_list(c, cluster, sizeof(cluster));
    spawn(c, &c->m[i], etcd, cluster);
}

/* Fresh ports, names and paths for every member; empty data directories. */
static void lay_out(struct ets *c)
{
    for (size_t i = 0; i < c->count; i++) {
        struct ets_member *m = &c->m[i];
        memset(m, 0, sizeof(*m));
        const char name[] = {'m', (char)('0' + i), '\0'};
        snprintf(m->name, sizeof(m->name), "%s", name);
        snprintf(m->data_dir, sizeof(m->data_dir), "%s/%s.data", c->root, name);
        snprintf(m->log_path, sizeof(m->log_path), "%s/%s.log", c->root, name);
        remove_tree(m->data_dir);
        m->client_port = pick_port();
        do {
            m->peer_port = pick_port();
        } while (m->peer_port == m->client_port);
        snprintf(m->client_url, sizeof(m->client_url), "http://127.0.0.1:%u", m->client_port);
        snprintf(m->peer_url, sizeof(m->peer_url), "http://127.0.0.1:%u", m->peer_port);
        c->endpoints[i] = m->client_url;
    }
}

static void reap(struct ets_member *m, int sig)
{
    if (m->pid <= 0) {
        return;
    }
    (void)kill(m->pid, sig);
    int st;
    (void)waitpid(m->pid, &st, 0);
    m->pid = 0;
}

/* True when member m exited; its wait status in *st. */
static bool exited(struct ets_member *m, int *st)
{
    if (m->pid <= 0) {
        return true;
    }
    if (waitpid(m->pid, st, WNOHANG) == m->pid) {
        m->pid = 0;
        return true;
    }
    return false;
}

enum up { UP_OK, UP_CLASH };

/* Waits until every member is healthy and has told its id. UP_CLASH when
 * one died on a port someone else took; fails the test otherwise. */
static enum up wait_up(struct ets *c)
{
    int64_t deadline = clock_mono_ms() + ETS_START_TIMEOUT_MS;
    for (size_t i = 0; i < c->count; i++) {
        struct ets_member *m = &c->m[i];
        char leader[sizeof(m->member_id)];
        while (!healthy(m) || !status(m, m->member_id, leader, sizeof(m->member_id))) {
            int st = 0;
            if (exited(m, &st)) {
                if (file_has(m->log_path, CLASH_TEXT)) {
                    return UP_CLASH;
                }
                ets_print_logs(c, "an etcd member exited at start");
                cr_assert_fail("etcd member %s exited at start (wait status %#x)", m->name, st);
            }
            if (clock_mono_ms() >= deadline) {
                ets_print_logs(c, "etcd did not come up");
                cr_assert_fail("etcd member %s not healthy within %d ms", m->name,
                               ETS_START_TIMEOUT_MS);
            }
            usleep(POLL_MS * 1000);
        }
    }
    return UP_OK;
}

/* ---- the contract ---- */

void ets_start(struct ets *c, size_t count)
{
    cr_assert(count >= 1 && count <= ETS_MEMBERS_MAX);
    char etcd[ETS_PATH_BYTES];
    if (!find_etcd(etcd, sizeof(etcd))) {
        cr_skip_test(
            "no etcd binary (set ETCD or install Debian's etcd-server: ./dev.sh test does)");
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    memset(c, 0, sizeof(*c));
    srandom((unsigned)(clock_mono_ns() ^ ((uint64_t)getpid() << 16)));
    const char *tmp = getenv("TMPDIR");
    snprintf(c->root, sizeof(c->root), "%s/nagare-etcd-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    cr_assert_not_null(mkdtemp(c->root), "mkdtemp: %s", strerror(errno));
    c->count = count;
    for (int attempt = 1;; attempt++) {
        lay_out(c);
        for (size_t i = 0; i < count; i++) {
            start_member(c, i);
        }
        if (wait_up(c) == UP_OK) {
            return;
        }
        ets_stop_all(c);
        cr_assert_lt(attempt, START_ATTEMPTS, "etcd met a taken port %d times", attempt);
        for (size_t i = 0; i < count; i++) {
            (void)unlink(c->m[i].log_path);
        }
    }
}

void ets_config(const struct ets *c, uint32_t timeout_ms, struct etcd_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < c->count; i++) {
        cfg->endpoints[i] = c->m[i].client_url;
    }
    cfg->endpoint_count = (uint32_t)c->count;
    cfg->timeout_ms = timeout_ms;
}

void ets_stop(struct ets *c, size_t i, int sig)
{
    cr_assert_lt(i, c->count);
    struct ets_member *m = &c->m[i];
    cr_assert_gt(m->pid, 0, "etcd member %s is not running", m->name);
    cr_assert_eq(kill(m->pid, sig), 0, "kill: %s", strerror(errno));
    int64_t deadline = clock_mono_ms() + ETS_STOP_TIMEOUT_MS;
    int st;
    while (!exited(m, &st)) {
        if (clock_mono_ms() >= deadline) {
            reap(m, SIGKILL);
            cr_assert_fail("etcd member %s ignored signal %d", m->name, sig);
        }
        usleep(POLL_MS * 1000);
    }
}

void ets_restart(struct ets *c, size_t i)
{
    cr_assert_lt(i, c->count);
    cr_assert_eq(c->m[i].pid, 0, "etcd member %s is running", c->m[i].name);
    /* Its ports are below the ephemeral range, so only another test's
     * member could have taken one meanwhile; try a few times. */
    for (int attempt = 1;; attempt++) {
        start_member(c, i);
        int64_t deadline = clock_mono_ms() + ETS_START_TIMEOUT_MS;
        int st = 0;
        while (!healthy(&c->m[i]) && !exited(&c->m[i], &st) && clock_mono_ms() < deadline) {
            usleep(POLL_MS * 1000);
        }
        if (c->m[i].pid > 0 && clock_mono_ms() < deadline) {
            return;
        }
        reap(&c->m[i], SIGKILL);
        if (attempt >= START_ATTEMPTS || !file_has(c->m[i].log_path, CLASH_TEXT)) {
            ets_print_logs(c, "a restarted etcd member did not come up");
            cr_assert_fail("etcd member %s did not come back", c->m[i].name);
        }
        usleep(500 * 1000);
    }
}

void ets_restart_all(struct ets *c)
{
    for (size_t i = 0; i < c->count; i++) {
        if (c->m[i].pid == 0) {
            start_member(c, i);
        }
    }
    int64_t deadline = clock_mono_ms() + ETS_START_TIMEOUT_MS;
    for (size_t i = 0; i < c->count; i++) {
        int st = 0;
        while (!healthy(&c->m[i]) && !exited(&c->m[i], &st) && clock_mono_ms() < deadline) {
            usleep(POLL_MS * 1000);
        }
        if (c->m[i].pid == 0 || clock_mono_ms() >= deadline) {
            ets_print_logs(c, "restarted etcd members did not come up");
            cr_assert_fail("etcd member %s did not come back", c->m[i].name);
        }
    }
}

void ets_stop_all(struct ets *c)
{
    for (size_t i = 0; i < c->count; i++) {
        reap(&c->m[i], SIGKILL);
    }
}

size_t ets_leader(struct ets *c)
{
    int64_t deadline = clock_mono_ms() + ETS_LEADER_TIMEOUT_MS;
    for (;;) {
        for (size_t i = 0; i < c->count; i++) {
            char id[24];
            char leader[24];
            if (c->m[i].pid <= 0 || !status(&c->m[i], id, leader, sizeof(id))) {
                continue;
            }
            for (size_t k = 0; k < c->count; k++) {
                if (c->m[k].pid > 0 && strcmp(c->m[k].member_id, leader) == 0) {
                    return k;
                }
            }
        }
        if (clock_mono_ms() >= deadline) {
            ets_print_logs(c, "no etcd leader");
            cr_assert_fail("no running etcd member is leader after %d ms", ETS_LEADER_TIMEOUT_MS);
        }
        usleep(POLL_MS * 1000);
    }
}

void ets_wait_healthy(struct ets *c, size_t i)
{
    cr_assert_lt(i, c->count);
    int64_t deadline = clock_mono_ms() + ETS_START_TIMEOUT_MS;
    while (!healthy(&c->m[i])) {
        if (clock_mono_ms() >= deadline) {
            ets_print_logs(c, "an etcd member stayed unhealthy");
            cr_assert_fail("etcd member %s not healthy within %d ms", c->m[i].name,
                           ETS_START_TIMEOUT_MS);
        }
        usleep(POLL_MS * 1000);
    }
}

void ets_compact(struct ets *c, int64_t revision)
{
    char body[64];
    snprintf(body, sizeof(body), "{\"revision\":\"%lld\",\"physical\":true}", (long long)revision);
    for (size_t i = 0; i < c->count; i++) {
        char url[ETS_URL_BYTES + 32];
        snprintf(url, sizeof(url), "%s/v3/kv/compaction", c->m[i].client_url);
        struct answer a;
        if (c->m[i].pid > 0 && http(url, body, &a) == 200) {
            return;
        }
    }
    cr_assert_fail("no etcd member compacted to revision %lld", (long long)revision);
}

void ets_print_logs(const struct ets *c, const char *why)
{
    for (size_t i = 0; i < c->count; i++) {
        int fd = open(c->m[i].log_path, O_RDONLY);
        if (fd < 0) {
            continue;
        }
        static char buf[LOG_TAIL_BYTES + 1];
        off_t end = lseek(fd, 0, SEEK_END);
        off_t from = end > LOG_TAIL_BYTES ? end - LOG_TAIL_BYTES : 0;
        ssize_t n = pread(fd, buf, LOG_TAIL_BYTES, from);
        close(fd);
        buf[n > 0 ? n : 0] = '\0';
        fprintf(stderr, "---- %s: tail of %s ----\n%s\n---- end ----\n", why, c->m[i].log_path,
                buf);
    }
}

void ets_fini(struct ets *c)
{
    ets_stop_all(c);
    if (c->root[0] != '\0') {
        remove_tree(c->root);
        c->root[0] = '\0';
    }
}
