/* The integration harness: a nagared process per test and a raw-frame
 * client (tests/broker_support.h). */
#include "tests/broker_support.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/sys_support.h"

#define LISTEN_LINE "nagared listening on 127.0.0.1:"
#define KAFKA_LINE "Kafka clients served on 127.0.0.1:" /* logged before LISTEN_LINE */
#define ADMIN_LINE "HTTP admin (metrics, health) served on 127.0.0.1:" /* so is this */
#define LOG_TAIL_BYTES 3000
#define CLIENT_ID "it"

/* ---- files ---- */

int bk_run(const char *cmd, char *out, size_t cap)
{
    cr_assert_gt(cap, 0);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p, "popen %s: %s", cmd, strerror(errno));
    size_t len = fread(out, 1, cap - 1, p);
    out[len] = '\0';
    int status = pclose(p);
    cr_assert(WIFEXITED(status), "%s: wait status %#x", cmd, status);
    return WEXITSTATUS(status);
}

int bk_verify(const struct bk *b, char *out, size_t cap)
{
    const char *nagared = getenv("NAGARED");
    cr_assert(nagared != NULL, "set NAGARED to the nagared binary");
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "'%s' --verify '%s'", nagared, b->data_dir);
    return bk_run(cmd, out, cap);
}

char *bk_read_file(const char *path, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    size_t len = 0;
    size_t cap = 4096;
    char *buf = malloc(cap);
    cr_assert_not_null(buf);
    while (f != NULL) {
        if (cap - len < 4096) {
            cap *= 2;
            buf = realloc(buf, cap);
            cr_assert_not_null(buf);
        }
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0) {
            break;
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    buf[len] = '\0';
    if (len_out != NULL) {
        *len_out = len;
    }
    return buf;
}

void bk_print_tail(const char *path, const char *why)
{
    size_t len;
    char *text = bk_read_file(path, &len);
    size_t from = len > LOG_TAIL_BYTES ? len - LOG_TAIL_BYTES : 0;
    fprintf(stderr, "---- %s: tail of %s ----\n%s\n---- end of log ----\n", why, path, text + from);
    free(text);
}

static const char *const log_alarms[] = {
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error",
    "assertion failed",
};

void bk_assert_log_clean(const char *path, size_t from)
{
    size_t len;
    char *text = bk_read_file(path, &len);
    const char *hit = NULL;
    for (size_t i = 0; i < sizeof(log_alarms) / sizeof(log_alarms[0]) && hit == NULL; i++) {
        hit = strstr(text + (from < len ? from : len), log_alarms[i]);
    }
    if (hit != NULL) {
        fprintf(stderr, "---- broker log %s ----\n%s\n---- end ----\n", path, text + from);
    }
    free(text);
    cr_assert_null(hit, "the broker's log shows a sanitizer report or a failed assertion");
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

/* ---- the broker process ---- */

void bk_init(struct bk *b)
{
    memset(b, 0, sizeof(*b));
    const char *tmp = getenv("TMPDIR");
    snprintf(b->root, sizeof(b->root), "%s/nagare-it-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    cr_assert_not_null(mkdtemp(b->root), "mkdtemp: %s", strerror(errno));
    snprintf(b->data_dir, sizeof(b->data_dir), "%s/data", b->root);
    snprintf(b->log_path, sizeof(b->log_path), "%s/nagared.log", b->root);
}

void bk_set(struct bk *b, const char *kv)
{
    cr_assert_lt(b->set_count, BK_SETS_MAX);
    b->sets[b->set_count++] = kv;
}

pid_t bk_spawn(const char *const *args, const char *log_path)
{
    return bk_spawn_as(NULL, args, log_path, 0);
}

pid_t bk_spawn_as(const char *path, const char *const *args, const char *log_path, uid_t uid)
{
    path = path != NULL ? path : getenv("NAGARED");
    cr_assert(path != NULL && *path, "set NAGARED to the nagared binary");
    const char *argv[64] = {path};
    size_t n = 1;
    for (; args[n - 1] != NULL; n++) {
        cr_assert_lt(n, 63);
        argv[n] = args[n - 1];
    }
    argv[n] = NULL;
    pid_t parent = getpid();
    pid_t pid = fork();
    cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        /* Only async-signal-safe calls between fork and exec. */
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        int nul = open("/dev/null", O_RDONLY);
        if (fd < 0 || nul < 0 || dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0 ||
            dup2(nul, STDIN_FILENO) < 0) {
            _exit(126);
        }
        if (uid != 0 && (setgroups(0, NULL) != 0 || setgid(uid) != 0 || setuid(uid) != 0)) {
            _exit(126);
        }
        /* A test process that dies takes its broker with it (set after
         * setuid, which clears it). */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) {
            _exit(126);
        }
        execv(path, (char *const *)argv);
        _exit(127);
    }
    return pid;
}

bool bk_wait(pid_t pid, int timeout_ms, int *status)
{
    int64_t deadline = clock_mono_ms() + timeout_ms;
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        cr_assert_geq(r, 0, "waitpid: %s", strerror(errno));
        if (r == pid) {
            return true;
        }
        if (clock_mono_ms() >= deadline) {
            return false;
        }
        sleep_ms(5);
    }
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : 0;
}

/* The port from the first line in the log after `from` that starts with
 * prefix (a whole line), or 0. */
static uint16_t find_port(const char *log_path, size_t from, const char *prefix)
{
    size_t len;
    char *text = bk_read_file(log_path, &len);
    const char *line = strstr(text + (from < len ? from : len), prefix);
    unsigned long port = 0;
    if (line != NULL && strchr(line, '\n') != NULL) {
        port = strtoul(line + strlen(prefix), NULL, 10);
    }
    free(text);
    return port <= UINT16_MAX ? (uint16_t)port : 0;
}

static void kill_hard(struct bk *b, const char *why)
{
    (void)kill(b->pid, SIGKILL);
    int status;
    (void)waitpid(b->pid, &status, 0);
    b->pid = 0;
    bk_print_tail(b->log_path, why);
}

void bk_start(struct bk *b)
{
    cr_assert_eq(b->pid, 0, "broker already running");
    const char *args[12 + 2 * BK_SETS_MAX] = {"--listen",    "127.0.0.1:0",    "--kafka-listen",
                                              "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
                                              "--data-dir",  b->data_dir};
    size_t n = 8;
    for (size_t i = 0; i < b->set_count; i++) {
        args[n++] = "--set";
        args[n++] = b->sets[i];
    }
    args[n] = NULL;
    b->log_from = (size_t)file_size(b->log_path);
    b->port = 0;
    b->pid = bk_spawn(args, b->log_path);
    int64_t deadline = clock_mono_ms() + BK_START_TIMEOUT_MS;
    while (b->port == 0) {
        int status;
        if (waitpid(b->pid, &status, WNOHANG) == b->pid) {
            b->pid = 0;
            bk_print_tail(b->log_path, "nagared exited at start");
            cr_assert_fail("nagared exited at start (wait status %#x)", status);
        }
        if (clock_mono_ms() >= deadline) {
            kill_hard(b, "nagared did not start");
            cr_assert_fail("no listening line within %d ms", BK_START_TIMEOUT_MS);
        }
        sleep_ms(10);
        b->port = find_port(b->log_path, b->log_from, LISTEN_LINE);
    }
    b->kafka_port = find_port(b->log_path, b->log_from, KAFKA_LINE);
    b->admin_port = find_port(b->log_path, b->log_from, ADMIN_LINE);
    snprintf(b->bootstrap, sizeof(b->bootstrap), "127.0.0.1:%u", b->port);
}

void bk_kill_restart(struct bk *b, int down_ms)
{
    cr_assert_gt(b->pid, 0, "no broker running");
    cr_assert_eq(kill(b->pid, SIGKILL), 0);
    int status;
    cr_assert_eq(waitpid(b->pid, &status, 0), b->pid);
    b->pid = 0;
    sleep_ms(down_ms); /* the dead broker's sockets let go of the port */
    if (b->listen_same[0] == '\0') {
        snprintf(b->listen_same, sizeof(b->listen_same), "listen=127.0.0.1:%u", b->port);
        bk_set(b, b->listen_same);
    }
    bk_start(b);
}

void bk_stop(struct bk *b)
{
    cr_assert_gt(b->pid, 0, "no broker running");
    (void)kill(b->pid, SIGTERM); /* may have exited already: waitpid tells */
    int status = 0;
    if (!bk_wait(b->pid, BK_STOP_TIMEOUT_MS, &status)) {
        kill_hard(b, "nagared ignored SIGTERM");
        cr_assert_fail("nagared did not exit within %d ms of SIGTERM", BK_STOP_TIMEOUT_MS);
    }
    b->pid = 0;
    bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!clean) {
        bk_print_tail(b->log_path, "unclean exit");
    }
    cr_assert(clean, "nagared exit: %s %d", WIFEXITED(status) ? "status" : "signal",
              WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    bk_assert_log_clean(b->log_path, b->log_from);
}

bool bk_alive(struct bk *b)
{
    if (b->pid <= 0) {
        return false;
    }
    int status;
    if (waitpid(b->pid, &status, WNOHANG) == b->pid) {
        b->pid = 0;
        bk_print_tail(b->log_path, "nagared died");
        return false;
    }
    return true;
}

void bk_fini(struct bk *b)
{
    if (b->pid > 0) {
        kill_hard(b, "broker still running at teardown (test failed?)");
    }
    if (b->root[0] != '\0') {
        (void)nftw(b->root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
        b->root[0] = '\0';
    }
}

/* ---- client ---- */

void cl_connect(struct cl *c, uint16_t port, int timeout_ms)
{
    cl_connect_host(c, "127.0.0.1", port, timeout_ms);
}

void cl_connect_host(struct cl *c, const char *host, uint16_t port, int timeout_ms)
{
    memset(c, 0, sizeof(*c));
    c->corr = 1;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(c->fd, 0, "socket: %s", strerror(errno));
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    int one = 1;
    cr_assert_eq(setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    cr_assert_eq(setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), 0);
    cr_assert_eq(setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)), 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    cr_assert_eq(inet_pton(AF_INET, host, &sa.sin_addr), 1, "address %s", host);
    int rc = connect(c->fd, (struct sockaddr *)&sa, sizeof(sa));
    if (rc != 0 && (errno == EINTR || errno == EINPROGRESS)) {
        /* A signal (connect(2) with SO_SNDTIMEO is never restarted) or
         * the timeout cut the wait short; the kernel goes on connecting:
         * wait for it, and take its verdict. */
        struct pollfd pfd = {.fd = c->fd, .events = POLLOUT};
        int n;
        do {
            n = poll(&pfd, 1, timeout_ms);
        } while (n < 0 && errno == EINTR);
        int err = n == 1 ? 0 : ETIMEDOUT;
        socklen_t len = sizeof(err);
        if (n == 1 && getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
            err = errno;
        }
        errno = err;
        rc = err == 0 ? 0 : -1;
    }
    cr_assert_eq(rc, 0, "connect to port %u: %s", port, strerror(errno));
    c->tx = malloc(CL_TX_BYTES);
    cr_assert_not_null(c->tx);
}

void cl_close(struct cl *c)
{
    if (c->fd > 0) {
        close(c->fd);
    }
    free(c->tx);
    free(c->rx);
    memset(c, 0, sizeof(*c));
    c->fd = -1;
}

struct wr *cl_wr(struct cl *c)
{
    c->w = wr_make(c->tx, CL_TX_BYTES);
    return &c->w;
}

uint32_t cl_next_corr(struct cl *c) { return c->corr++; }

int cl_send(struct cl *c, const void *p, size_t n)
{
    const uint8_t *at = p;
    while (n > 0) {
        ssize_t k = send(c->fd, at, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k < 0) {
            return -errno;
        }
        at += k;
        n -= (size_t)k;
    }
    return 0;
}

int cl_send_wr(struct cl *c)
{
    cr_assert_eq(c->w.err, 0);
    return cl_send(c, c->tx, c->w.pos);
}

/* Reads exactly n bytes. 0, -NG_EDISCONNECTED (EOF or reset), -EAGAIN
 * (timeout), -NG_ETRUNCATED (EOF inside the bytes), or -errno. */
static int recv_full(struct cl *c, uint8_t *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t k = recv(c->fd, p + got, n - got, 0);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return -EAGAIN;
        }
        if ((k < 0 && errno == ECONNRESET) || k == 0) {
            return got == 0 ? -NG_EDISCONNECTED : -NG_ETRUNCATED;
        }
        if (k < 0) {
            return -errno;
        }
        got += (size_t)k;
    }
    return 0;
}

int cl_recv(struct cl *c, struct proto_resp_header *h, struct rd *body)
{
    uint8_t prefix[PROTO_FRAME_PREFIX_BYTES];
    int rc = recv_full(c, prefix, sizeof(prefix));
    uint32_t len = 0;
    rc = rc == 0 ? proto_response_frame_len(prefix, CL_FRAME_BYTES_MAX, &len) : rc;
    if (rc != 0) {
        return rc;
    }
    if (c->rx_cap < len) {
        free(c->rx);
        c->rx = malloc(len);
        cr_assert_not_null(c->rx);
        c->rx_cap = len;
    }
    rc = recv_full(c, c->rx, len);
    if (rc != 0) {
        return rc == -NG_EDISCONNECTED ? -NG_ETRUNCATED : rc;
    }
    c->rx_len = len;
    *body = rd_make(c->rx, len);
    return proto_resp_header_decode(body, h);
}

void cl_expect(struct cl *c, uint32_t corr, struct rd *body)
{
    struct proto_resp_header h;
    int rc = cl_recv(c, &h, body);
    cr_assert_eq(rc, 0, "waiting for answer %u: %s", corr, err_str(rc));
    cr_assert_eq(h.correlation_id, corr, "answer for %u, expected %u", h.correlation_id, corr);
    cr_assert_eq(h.err, 0, "answer %u: request-level error %s", corr, err_str(h.err));
}

bool cl_wait_closed(struct cl *c)
{
    for (;;) {
        struct proto_resp_header h;
        struct rd body;
        int rc = cl_recv(c, &h, &body);
        if (rc == -NG_EDISCONNECTED) {
            return true;
        }
        if (rc == -EAGAIN) {
            return false;
        }
        cr_assert_eq(rc, 0, "bad frame while waiting for close: %s", err_str(rc));
        cr_assert_neq(h.err, 0, "a success answer (%u) to a hostile frame", h.correlation_id);
    }
}

/* ---- requests ---- */

static void enc_send(struct cl *c, struct proto_enc *e)
{
    int rc = proto_enc_end(e);
    cr_assert_eq(rc, 0, "encode: %s", err_str(rc));
    rc = cl_send_wr(c);
    cr_assert_eq(rc, 0, "send: %s", strerror(-rc));
}

static int topic_result(struct cl *c, uint32_t corr, bool create, const char *topic)
{
    struct rd body;
    struct proto_dec d;
    cl_expect(c, corr, &body);
    int rc = create ? proto_create_topics_resp_decode(&body, 0, &d)
                    : proto_delete_topics_resp_decode(&body, 0, &d);
    cr_assert_eq(rc, 0, "decode: %s", err_str(rc));
    struct proto_topic_result r;
    cr_assert(proto_next_topic_result(&d, &r));
    cr_assert(proto_str_eq(r.name, topic));
    cr_assert_not(proto_next_topic_result(&d, &r));
    return r.err;
}

int rq_create_cfg(struct cl *c, const struct proto_create_topic *t)
{
    return rq_create_version(c, 0, t);
}

int rq_create_version(struct cl *c, uint16_t version, const struct proto_create_topic *t)
{
    struct proto_enc e;
    uint32_t corr = cl_next_corr(c);
    proto_create_topics_req_begin(&e, cl_wr(c), version, corr, proto_str_make(CLIENT_ID));
    proto_create_topics_req_topic(&e, t);
    enc_send(c, &e);
    char name[PROTO_STRING_BYTES_MAX + 1];
    cr_assert_eq(proto_str_copy(t->name, name, sizeof(name)), 0);
    return topic_result(c, corr, true, name);
}

int rq_create(struct cl *c, const char *topic, int32_t partitions)
{
    struct proto_create_topic t = {.name = proto_str_make(topic),
                                   .partition_count = partitions,
                                   .retention_ms = PROTO_CONFIG_DEFAULT,
                                   .retention_bytes = PROTO_CONFIG_DEFAULT,
                                   .segment_bytes = PROTO_CONFIG_DEFAULT,
                                   .batch_bytes_max = PROTO_CONFIG_DEFAULT};
    return rq_create_cfg(c, &t);
}

int rq_delete(struct cl *c, const char *topic)
{
    struct proto_enc e;
    uint32_t corr = cl_next_corr(c);
    proto_delete_topics_req_begin(&e, cl_wr(c), 0, corr, proto_str_make(CLIENT_ID));
    proto_enc_topic(&e, proto_str_make(topic));
    enc_send(c, &e);
    return topic_result(c, corr, false, topic);
}

uint32_t rq_produce_send(struct cl *c, const char *topic, int32_t partition, const uint8_t *batch,
                         size_t len, int16_t acks)
{
    struct proto_enc e;
    uint32_t corr = cl_next_corr(c);
    struct proto_produce_req req = {.acks = acks, .timeout_ms = 10000};
    proto_produce_req_begin(&e, cl_wr(c), 0, corr, proto_str_make(CLIENT_ID), &req);
    proto_enc_topic(&e, proto_str_make(topic));
    struct proto_produce_req_partition p = {
        .partition = partition, .records = batch, .records_bytes = (uint32_t)len};
    proto_produce_req_partition(&e, &p);
    enc_send(c, &e);
    return corr;
}

int rq_produce_recv(struct cl *c, uint32_t corr, int64_t *offset_out)
{
    struct rd body;
    struct proto_dec d;
    cl_expect(c, corr, &body);
    cr_assert_eq(proto_produce_resp_decode(&body, 0, &d), 0);
    struct proto_topic t;
    struct proto_produce_resp_partition p;
    cr_assert(proto_next_topic(&d, &t));
    cr_assert_eq(t.partition_count, 1);
    cr_assert(proto_produce_resp_next_partition(&d, &p));
    cr_assert_not(proto_next_topic(&d, &t));
    if (p.err != 0) {
        cr_assert_eq(p.offset_base, -1, "an error answer carries offset -1");
    }
    *offset_out = p.offset_base;
    return p.err;
}

int rq_produce(struct cl *c, const char *topic, int32_t partition, const uint8_t *batch, size_t len,
               int16_t acks, int64_t *offset_out)
{
    uint32_t corr = rq_produce_send(c, topic, partition, batch, len, acks);
    if (acks == PROTO_ACKS_NONE) {
        *offset_out = -1;
        return 0;
    }
    return rq_produce_recv(c, corr, offset_out);
}

uint32_t rq_fetch_send(struct cl *c, const char *topic, int32_t partition, int64_t offset,
                       int32_t wait_max_ms, int32_t bytes_min)
{
    struct proto_enc e;
    uint32_t corr = cl_next_corr(c);
    struct proto_fetch_req req = {
        .wait_max_ms = wait_max_ms, .bytes_min = bytes_min, .bytes_max = 8 << 20};
    proto_fetch_req_begin(&e, cl_wr(c), 0, corr, proto_str_make(CLIENT_ID), &req);
    proto_enc_topic(&e, proto_str_make(topic));
    struct proto_fetch_req_partition p = {
        .partition = partition, .offset = offset, .bytes_max = 4 << 20};
    proto_fetch_req_partition(&e, &p);
    enc_send(c, &e);
    return corr;
}

void rq_fetch_recv(struct cl *c, uint32_t corr, struct fetched *out)
{
    struct rd body;
    struct proto_dec d;
    cl_expect(c, corr, &body);
    cr_assert_eq(proto_fetch_resp_decode(&body, 0, &d), 0);
    struct proto_topic t;
    struct proto_fetch_resp_partition p;
    cr_assert(proto_next_topic(&d, &t));
    cr_assert_eq(t.partition_count, 1);
    cr_assert(proto_fetch_resp_next_partition(&d, &p));
    cr_assert_not(proto_next_topic(&d, &t));
    *out = (struct fetched){.err = p.err,
                            .offset_earliest = p.offset_earliest,
                            .offset_latest = p.offset_latest,
                            .records_bytes = p.records_bytes};
    out->records = malloc(p.records_bytes + 1);
    cr_assert_not_null(out->records);
    if (p.records_bytes > 0) {
        memcpy(out->records, p.records, p.records_bytes);
    }
}

void rq_fetch(struct cl *c, const char *topic, int32_t partition, int64_t offset,
              struct fetched *out)
{
    rq_fetch_recv(c, rq_fetch_send(c, topic, partition, offset, 0, 0), out);
}

void rq_fetched_free(struct fetched *f)
{
    free(f->records);
    f->records = NULL;
}

int rq_list_offset(struct cl *c, const char *topic, int32_t partition, int64_t timestamp_ms,
                   int64_t *offset_out, int64_t *timestamp_out)
{
    struct proto_enc e;
    uint32_t corr = cl_next_corr(c);
    proto_list_offsets_req_begin(&e, cl_wr(c), 0, corr, proto_str_make(CLIENT_ID));
    proto_enc_topic(&e, proto_str_make(topic));
    struct proto_list_offsets_req_partition in = {.partition = partition,
                                                  .timestamp_ms = timestamp_ms};
    proto_list_offsets_req_partition(&e, &in);
    enc_send(c, &e);
    struct rd body;
    struct proto_dec d;
    cl_expect(c, corr, &body);
    cr_assert_eq(proto_list_offsets_resp_decode(&body, 0, &d), 0);
    struct proto_topic t;
    struct proto_list_offsets_resp_partition p;
    cr_assert(proto_next_topic(&d, &t));
    cr_assert(proto_list_offsets_resp_next_partition(&d, &p));
    cr_assert_eq(p.partition, partition);
    *offset_out = p.offset;
    *timestamp_out = p.timestamp_ms;
    return p.err;
}

int64_t rq_latest(struct cl *c, const char *topic, int32_t partition)
{
    int64_t offset;
    int64_t ts;
    int rc = rq_list_offset(c, topic, partition, PROTO_TIMESTAMP_LATEST, &offset, &ts);
    cr_assert_eq(rc, 0, "latest offset of %s/%d: %s", topic, partition, err_str(rc));
    return offset;
}

static void md_decode(struct rd *body, uint16_t version, struct md *out)
{
    struct proto_metadata_resp m;
    struct proto_dec d;
    cr_assert_eq(proto_metadata_resp_decode(body, version, &m, &d), 0);
    memset(out, 0, sizeof(*out));
    cr_assert_eq(proto_str_copy(m.host, out->host, sizeof(out->host)), 0);
    out->port = m.port;
    out->broker_id = m.broker_id;
    out->controller_id = m.controller_id;
    struct proto_broker b;
    while (proto_metadata_resp_next_broker(&m, &b)) {
        cr_assert_lt(out->broker_count, MD_BROKERS_MAX);
        struct md_broker *mb = &out->brokers[out->broker_count++];
        mb->id = b.id;
        mb->port = b.port;
        cr_assert_eq(proto_str_copy(b.host, mb->host, sizeof(mb->host)), 0);
    }
    struct proto_topic t;
    while (proto_next_topic(&d, &t)) {
        cr_assert_lt(out->topic_count, MD_TOPICS_MAX);
        struct md_topic *mt = &out->topics[out->topic_count++];
        cr_assert_eq(proto_str_copy(t.name, mt->name, sizeof(mt->name)), 0);
        mt->err = t.err;
        mt->partition_count = t.partition_count;
        for (int32_t i = 0; i < t.partition_count && i < MD_PARTS_MAX; i++) {
            cr_assert(proto_metadata_resp_next_partition(&d, &mt->parts[i]));
        }
    }
}

void rq_metadata(struct cl *c, const char *const *names, struct md *out)
{
    rq_metadata_version(c, 0, names, out);
}

void rq_metadata_version(struct cl *c, uint16_t version, const char *const *names, struct md *out)
{
    struct proto_enc e;
    uint32_t corr = cl_next_corr(c);
    proto_metadata_req_begin(&e, cl_wr(c), version, corr, proto_str_make(CLIENT_ID), names == NULL);
    for (size_t i = 0; names != NULL && names[i] != NULL; i++) {
        proto_enc_topic(&e, proto_str_make(names[i]));
    }
    enc_send(c, &e);
    struct rd body;
    cl_expect(c, corr, &body);
    md_decode(&body, version, out);
}

const struct md_topic *md_find(const struct md *m, const char *name)
{
    for (uint32_t i = 0; i < m->topic_count; i++) {
        if (strcmp(m->topics[i].name, name) == 0) {
            return &m->topics[i];
        }
    }
    return NULL;
}

int64_t rq_init_producer_id(struct cl *c, int16_t *epoch_out)
{
    uint32_t corr = cl_next_corr(c);
    struct wr *w = cl_wr(c);
    cr_assert_eq(proto_init_producer_id_req_encode(w, 0, corr, proto_str_make(CLIENT_ID)), 0);
    cr_assert_eq(cl_send_wr(c), 0);
    struct rd body;
    cl_expect(c, corr, &body);
    struct proto_init_producer_id_resp r;
    cr_assert_eq(proto_init_producer_id_resp_decode(&body, 0, &r), 0);
    *epoch_out = r.producer_epoch;
    return r.producer_id;
}

uint32_t rq_api_versions_send(struct cl *c)
{
    uint32_t corr = cl_next_corr(c);
    struct wr *w = cl_wr(c);
    cr_assert_eq(proto_api_versions_req_encode(w, 0, corr, proto_str_make(CLIENT_ID)), 0);
    cr_assert_eq(cl_send_wr(c), 0);
    return corr;
}

void rq_ping(struct cl *c)
{
    uint32_t corr = rq_api_versions_send(c);
    struct rd body;
    cl_expect(c, corr, &body);
    struct proto_api_versions_resp r;
    cr_assert_eq(proto_api_versions_resp_decode(&body, 0, &r), 0);
    /* At least the core apis: keys 8, 9 and 19 are unassigned, and the
     * broker lists only the apis it serves. */
    cr_assert_geq(r.api_count, (uint32_t)PROTO_API_INIT_PRODUCER_ID + 1);
    cr_assert_geq(r.frame_bytes_max, PROTO_FRAME_BYTES_MIN);
}

/* ---- batches ---- */

/* The value bytes of record i of the batch with this seed. */
static void fill_value(uint8_t *v, size_t n, uint32_t seed, uint32_t i)
{
    uint32_t x = seed * 2654435761u ^ (i + 1) * 40503u;
    for (size_t k = 0; k < n; k++) {
        x = x * 1103515245u + 12345u;
        v[k] = (uint8_t)(x >> 16);
    }
}

/* Values are pseudo-random, or for compressible ones a byte repeated. */
static void add_records(struct batch_builder *b, uint32_t records, size_t value_bytes,
                        uint32_t seed, int64_t ts_ms, bool compressible)
{
    uint8_t *value = malloc(value_bytes + 1);
    cr_assert_not_null(value);
    for (uint32_t i = 0; i < records; i++) {
        char key[32];
        int klen = snprintf(key, sizeof(key), "k%u-%u", seed, i);
        if (compressible) {
            memset(value, (int)('a' + (seed + i) % 26), value_bytes);
        } else {
            fill_value(value, value_bytes, seed, i);
        }
        int rc = batch_builder_add(b, ts_ms + i, key, klen, value, (int32_t)value_bytes, NULL, 0);
        cr_assert_eq(rc, 0, "batch_builder_add: %s", err_str(rc));
    }
    free(value);
}

size_t bt_make(uint8_t *buf, size_t cap, uint32_t records, uint32_t seed, int64_t ts_ms,
               int64_t producer_id, int16_t producer_epoch, int32_t sequence_base)
{
    struct batch_builder b;
    batch_builder_init(&b, buf, cap, BATCH_CODEC_NONE, producer_id, producer_epoch, sequence_base);
    add_records(&b, records, 48, seed, ts_ms, false);
    size_t len = 0;
    cr_assert_eq(batch_builder_finish(&b, NULL, &len), 0);
    return len;
}

size_t bt_make_sized(uint8_t *buf, size_t cap, uint32_t records, uint32_t value_bytes,
                     uint32_t seed, enum batch_codec codec, struct batch_zctx *z)
{
    struct batch_builder b;
    batch_builder_init(&b, buf, cap, codec, -1, 0, -1);
    add_records(&b, records, value_bytes, seed, 1700000000000LL, codec != BATCH_CODEC_NONE);
    size_t len = 0;
    int rc = batch_builder_finish(&b, z, &len);
    cr_assert_eq(rc, 0, "batch_builder_finish: %s", err_str(rc));
    return len;
}

bool bt_at(const uint8_t *buf, size_t len, size_t index, const uint8_t **batch_out,
           size_t *bytes_out)
{
    size_t pos = 0;
    for (size_t i = 0;; i++) {
        if (pos == len) {
            return false;
        }
        cr_assert_geq(len - pos, (size_t)BATCH_PREFIX_BYTES, "a partial batch in a fetch");
        int32_t length = (int32_t)get_be32(buf + pos + BATCH_OFF_LENGTH);
        cr_assert_geq(length, 0);
        size_t bytes = BATCH_PREFIX_BYTES + (size_t)length;
        cr_assert_leq(bytes, len - pos, "a partial batch in a fetch");
        struct batch_header h;
        int rc = batch_validate(buf + pos, bytes, BATCH_BYTES_LIMIT, &h);
        cr_assert_eq(rc, 0, "fetched batch %zu: %s", i, err_str(rc));
        if (i == index) {
            *batch_out = buf + pos;
            *bytes_out = bytes;
            return true;
        }
        pos += bytes;
    }
}

size_t bt_count(const uint8_t *buf, size_t len)
{
    const uint8_t *b;
    size_t n;
    size_t count = 0;
    while (bt_at(buf, len, count, &b, &n)) {
        count++;
    }
    return count;
}

void bt_assert_same(const uint8_t *got, size_t got_bytes, const uint8_t *sent, size_t sent_bytes,
                    int64_t offset_base)
{
    cr_assert_eq(got_bytes, sent_bytes, "fetched batch of %zu bytes, sent %zu", got_bytes,
                 sent_bytes);
    cr_assert_eq((int64_t)get_be64(got + BATCH_OFF_OFFSET_BASE), offset_base,
                 "base offset %lld, expected %lld",
                 (long long)(int64_t)get_be64(got + BATCH_OFF_OFFSET_BASE), (long long)offset_base);
    cr_assert_eq(
        memcmp(got + BATCH_OFF_LENGTH, sent + BATCH_OFF_LENGTH, sent_bytes - BATCH_OFF_LENGTH), 0,
        "fetched batch differs from the one produced");
}

/* ---- directory snapshots ---- */

static char *tree_buf;
static size_t tree_len;
static size_t tree_cap;
static size_t tree_skip;

static int tree_add(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    size_t n = strlen(path + tree_skip) + 1;
    if (tree_cap - tree_len < n + 1) {
        tree_cap = (tree_cap + n) * 2;
        tree_buf = realloc(tree_buf, tree_cap);
        cr_assert_not_null(tree_buf);
    }
    memcpy(tree_buf + tree_len, path + tree_skip, n - 1);
    tree_buf[tree_len + n - 1] = '\n';
    tree_len += n;
    return 0;
}

static int line_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char *tree_list(const char *dir)
{
    tree_buf = NULL;
    tree_len = 0;
    tree_cap = 0;
    tree_skip = strlen(dir);
    cr_assert_eq(nftw(dir, tree_add, 16, FTW_PHYS), 0, "walk %s", dir);
    char **lines = malloc((tree_len + 1) * sizeof(*lines));
    cr_assert_not_null(lines);
    size_t count = 0;
    for (char *p = tree_buf; p < tree_buf + tree_len; p = strchr(p, '\0') + 1) {
        lines[count++] = p;
        *strchr(p, '\n') = '\0';
    }
    qsort(lines, count, sizeof(*lines), line_cmp);
    char *out = malloc(tree_len + 1);
    cr_assert_not_null(out);
    size_t at = 0;
    for (size_t i = 0; i < count; i++) {
        at += (size_t)sprintf(out + at, "%s\n", lines[i]);
    }
    out[at] = '\0';
    free(lines);
    free(tree_buf);
    tree_buf = NULL;
    return out;
}
