/*
 * bench/broker.c — spawning nagared for a benchmark, and idle connections.
 */
#include "bench/broker.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/sample.h"

/* What nagared logs once it accepts connections (broker/server.c). */
#define LISTEN_LINE "nagared listening on 127.0.0.1:"
#define KAFKA_LISTEN_LINE "Kafka clients served on 127.0.0.1:"
/* Bytes of a spawned broker's log shown when it fails to start. */
#define LOG_TAIL_BYTES 2048
/* How long idle connections may take to be accepted by the broker. */
#define IDLE_ACCEPT_MS 10000
/* Descriptors the broker may have closed meanwhile (see wait_accepted). */
#define IDLE_ACCEPT_SLACK 8

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int bench_broker_attach(struct bench_broker *b, const char *bootstrap, const char *kafka_bootstrap,
                        int pid)
{
    *b = (struct bench_broker){.pid = pid};
    size_t n = strlen(bootstrap);
    size_t k = strlen(kafka_bootstrap);
    if (n >= sizeof(b->bootstrap) || k >= sizeof(b->kafka_bootstrap)) {
        return -ENAMETOOLONG;
    }
    memcpy(b->bootstrap, bootstrap, n + 1);
    memcpy(b->kafka_bootstrap, kafka_bootstrap, k + 1);
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 ? 0 : -errno;
}

static int rm_tree(const char *root) { return nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

static void print_log_tail(const char *path, const char *why)
{
    fprintf(stderr, "nagare-bench: %s; the end of %s:\n", why, path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return;
    }
    off_t end = lseek(fd, 0, SEEK_END);
    char buf[LOG_TAIL_BYTES];
    off_t from = end > (off_t)sizeof(buf) ? end - (off_t)sizeof(buf) : 0;
    ssize_t n = pread(fd, buf, sizeof(buf), from);
    close(fd);
    if (n > 0) {
        fwrite(buf, 1, (size_t)n, stderr);
    }
}

/* The port after marker on a line of the log, or 0 while there is none. */
static unsigned find_port(const char *log_path, const char *marker)
{
    FILE *f = fopen(log_path, "r");
    if (f == NULL) {
        return 0;
    }
    char line[512];
    unsigned long port = 0;
    while (port == 0 && fgets(line, sizeof(line), f) != NULL) {
        const char *at = strstr(line, marker);
        if (at != NULL) {
            port = strtoul(at + strlen(marker), NULL, 10);
        }
    }
    fclose(f);
    return port <= 65535 ? (unsigned)port : 0;
}

/* In the child: stdout and stderr to the log, then exec. Never returns. */
static _Noreturn void child_exec(const struct bench_broker *b, const char *path,
                                 const char *const *argv)
{
    (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
    int fd = open(b->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0) {
        _exit(127);
    }
    int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null_fd >= 0) {
        (void)dup2(null_fd, STDIN_FILENO);
    }
    execv(path, (char *const *)argv);
    fprintf(stderr, "nagare-bench: exec %s: %s\n", path, strerror(errno));
    _exit(127);
}

static int make_dirs(struct bench_broker *b, const char *parent)
{
    int n = snprintf(b->root, sizeof(b->root), "%s/nagare-bench-broker-XXXXXX", parent);
    if (n < 0 || (size_t)n >= sizeof(b->root) - 32) {
        return -ENAMETOOLONG;
    }
    if (mkdtemp(b->root) == NULL) {
        return -errno;
    }
    int n_data = snprintf(b->data_dir, sizeof(b->data_dir), "%s/data", b->root);
    int n_log = snprintf(b->log_path, sizeof(b->log_path), "%s/nagared.log", b->root);
    ASSERT(n_data > 0 && (size_t)n_data < sizeof(b->data_dir)); /* root is 32 shorter */
    ASSERT(n_log > 0 && (size_t)n_log < sizeof(b->log_path));
    return 0;
}

/* Waits for the listening line; the broker exiting or staying silent is
 * an error. */
static int wait_listening(struct bench_broker *b)
{
    double deadline = sample_now_s() + BENCH_BROKER_START_MS / 1000.0;
    unsigned port = 0;
    while ((port = find_port(b->log_path, LISTEN_LINE)) == 0) {
        int status;
        if (waitpid(b->pid, &status, WNOHANG) == b->pid) {
            b->pid = 0;
            print_log_tail(b->log_path, "nagared exited at start");
            return -ECHILD;
        }
        if (sample_now_s() >= deadline) {
            print_log_tail(b->log_path, "nagared did not start listening");
            return -ETIMEDOUT;
        }
        sleep_ms(5);
    }
    snprintf(b->bootstrap, sizeof(b->bootstrap), "127.0.0.1:%u", port);
    /* logged before the listening line, unless kafka_listen = off */
    unsigned kafka_port = find_port(b->log_path, KAFKA_LISTEN_LINE);
    if (kafka_port != 0) {
        snprintf(b->kafka_bootstrap, sizeof(b->kafka_bootstrap), "127.0.0.1:%u", kafka_port);
    }
    return 0;
}

int bench_broker_spawn(struct bench_broker *b, const char *path, const char *parent,
                       const char *const *sets, size_t n)
{
    ASSERT(n <= BENCH_BROKER_SETS_MAX);
    *b = (struct bench_broker){0};
    int rc = make_dirs(b, parent);
    if (rc != 0) {
        return rc;
    }
    b->spawned = true;
    const char *argv[10 + 2 * BENCH_BROKER_SETS_MAX + 1] = {
        "nagared",        "--listen",    "127.0.0.1:0", "--kafka-listen", "127.0.0.1:0",
        "--admin-listen", "127.0.0.1:0", "--data-dir",  b->data_dir};
    size_t argc = 9;
    for (size_t i = 0; i < n; i++) {
        argv[argc++] = "--set";
        argv[argc++] = sets[i];
    }
    argv[argc] = NULL;
    pid_t pid = fork();
    if (pid < 0) {
        return -errno;
    }
    if (pid == 0) {
        child_exec(b, path, argv);
    }
    b->pid = (int)pid;
    return wait_listening(b);
}

/* Waits up to ms for the child to exit; true with its status. */
static bool wait_exit(int pid, long ms, int *status)
{
    for (long waited = 0; waited <= ms; waited += 5) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid || (r < 0 && errno == ECHILD)) {
            return true;
        }
        sleep_ms(5);
    }
    return false;
}

int bench_broker_stop(struct bench_broker *b)
{
    if (!b->spawned) {
        return 0;
    }
    int rc = 0;
    if (b->pid > 0) {
        (void)kill(b->pid, SIGTERM); /* may be gone already: waitpid says */
        int status = 0;
        if (!wait_exit(b->pid, BENCH_BROKER_STOP_MS, &status)) {
            (void)kill(b->pid, SIGKILL);
            (void)waitpid(b->pid, &status, 0);
            print_log_tail(b->log_path, "nagared ignored SIGTERM and was killed");
            rc = -ECHILD;
        } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            print_log_tail(b->log_path, "nagared did not exit cleanly");
            rc = -ECHILD;
        }
        b->pid = 0;
    }
    if (b->root[0] != '\0' && rm_tree(b->root) != 0 && rc == 0) {
        rc = -EIO;
    }
    b->spawned = false;
    return rc;
}

long bench_nofile_raise(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return -errno;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            return -errno;
        }
    }
    return (long)rl.rlim_cur;
}

/* "host:port" (the last ':' splits, "[v6]:port" too) to one address. */
static int resolve(const char *bootstrap, struct addrinfo **out)
{
    char host[256];
    const char *colon = strrchr(bootstrap, ':');
    if (colon == NULL || (size_t)(colon - bootstrap) >= sizeof(host)) {
        return -EINVAL;
    }
    const char *h = bootstrap;
    size_t len = (size_t)(colon - bootstrap);
    if (len >= 2 && h[0] == '[' && h[len - 1] == ']') {
        h++;
        len -= 2;
    }
    memcpy(host, h, len);
    host[len] = '\0';
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int rc = getaddrinfo(host, colon + 1, &hints, out);
    return rc == 0 ? 0 : -EHOSTUNREACH;
}

/* Entries of /proc/PID/fd, or -1. */
static long fd_count(int pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd", pid);
    DIR *d = opendir(path);
    if (d == NULL) {
        return -1;
    }
    long n = 0;
    while (readdir(d) != NULL) {
        n++;
    }
    closedir(d);
    return n - 2;
}

/* Waits until the broker holds nearly `want` more descriptors than
 * `before`: the connections are accepted, not just queued in the listen
 * backlog. Nearly: connections of ours that closed just before (the admin
 * client that made the topic) may still have been counted in `before`. */
static int wait_accepted(const struct bench_broker *b, long before, uint32_t want)
{
    if (b->pid <= 0 || before < 0) {
        sleep_ms(200); /* no way to see: give the accept loop a moment */
        return 0;
    }
    long slack = want > IDLE_ACCEPT_SLACK ? IDLE_ACCEPT_SLACK : 0;
    for (long waited = 0; waited < IDLE_ACCEPT_MS; waited += 10) {
        if (fd_count(b->pid) >= before + (long)want - slack) {
            return 0;
        }
        sleep_ms(10);
    }
    fprintf(stderr, "nagare-bench: the broker did not accept %u idle connections in %d ms\n", want,
            IDLE_ACCEPT_MS);
    return -ETIMEDOUT;
}

/* A TCP connection to the address resolved: the descriptor or -errno. */
static int connect_to(const struct addrinfo *ai)
{
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        int rc = -errno;
        if (fd >= 0) {
            close(fd);
        }
        return rc;
    }
    return fd;
}

int bench_connect(const char *bootstrap)
{
    struct addrinfo *ai = NULL;
    int rc = resolve(bootstrap, &ai);
    rc = rc == 0 ? connect_to(ai) : rc;
    if (ai != NULL) {
        freeaddrinfo(ai);
    }
    return rc;
}

int bench_idle_open(const struct bench_broker *b, uint32_t n, int *fds)
{
    long lim = bench_nofile_raise();
    if (lim < 0) {
        return (int)lim;
    }
    if ((uint64_t)lim < (uint64_t)n + 64) {
        return -EMFILE;
    }
    struct addrinfo *ai = NULL;
    int rc = resolve(b->bootstrap, &ai);
    long before = b->pid > 0 ? fd_count(b->pid) : -1;
    uint32_t opened = 0;
    while (rc == 0 && opened < n) {
        int fd = connect_to(ai);
        if (fd < 0) {
            rc = fd;
            break;
        }
        fds[opened++] = fd;
    }
    if (ai != NULL) {
        freeaddrinfo(ai);
    }
    rc = rc == 0 ? wait_accepted(b, before, n) : rc;
    if (rc != 0) {
        bench_idle_close(fds, opened);
    }
    return rc;
}

void bench_idle_close(int *fds, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        (void)close(fds[i]);
        fds[i] = -1;
    }
}
