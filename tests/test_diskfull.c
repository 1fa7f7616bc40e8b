/*
 * A full disk, against the real nagared on a small
 * tmpfs: produce until the disk is full; every later produce gets an error,
 * fetches keep working and never see a torn record; once space is freed,
 * produce resumes with no gap in the offsets. libnagare and `nagare
 * produce` name the full disk at once, and in the report of a record that
 * ran out of time, never as a bare timeout: the cause tells the user to free
 * space rather than wait.
 * Mounting needs root: the tests are skipped with a message otherwise.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client/nagare.h"
#include "tests/broker_support.h"

#define TMPFS_OPTIONS "size=24m"
#define BALLAST_BYTES (4u << 20)

static struct bk B;
static bool mounted;

static void setup(void) { bk_init(&B); }

static void teardown(void)
{
    if (B.pid != 0) {
        bk_stop(&B);
    }
    if (mounted) {
        cr_assert_eq(umount2(B.data_dir, MNT_DETACH), 0, "umount: %s", strerror(errno));
        mounted = false;
    }
    bk_fini(&B);
}

TestSuite(diskfull, .init = setup, .fini = teardown, .timeout = 120);

static void mount_small_disk(void)
{
    if (geteuid() != 0) {
        cr_skip_test("needs root to mount a tmpfs (running as uid %d)", (int)geteuid());
    }
    cr_assert_eq(mkdir(B.data_dir, 0755), 0);
    if (mount("tmpfs", B.data_dir, "tmpfs", 0, TMPFS_OPTIONS) != 0) {
        cr_skip_test("cannot mount a tmpfs here: %s", strerror(errno));
    }
    mounted = true;
}

/* A file taking space that the test gives back later. */
static void write_ballast(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert_geq(fd, 0);
    static uint8_t chunk[1 << 16];
    memset(chunk, 0xab, sizeof(chunk));
    for (size_t done = 0; done < BALLAST_BYTES; done += sizeof(chunk)) {
        cr_assert_eq(write(fd, chunk, sizeof(chunk)), (ssize_t)sizeof(chunk));
    }
    close(fd);
}

/* Reads the whole partition and checks every batch is whole and follows
 * the previous one; returns the offset after the last. */
static int64_t read_all(struct cl *c)
{
    int64_t offset = 0;
    for (;;) {
        struct fetched f;
        rq_fetch(c, "full", 0, offset, &f);
        cr_assert_eq(f.err, 0, "fetch at %lld: %s", (long long)offset, err_str(f.err));
        if (f.records_bytes == 0) {
            rq_fetched_free(&f);
            return offset;
        }
        const uint8_t *batch;
        size_t len;
        for (size_t i = 0; bt_at(f.records, f.records_bytes, i, &batch, &len); i++) {
            cr_assert_eq((int64_t)get_be64(batch), offset, "batches follow each other");
            offset += (int64_t)get_be32(batch + BATCH_OFF_RECORD_COUNT);
        }
        rq_fetched_free(&f);
    }
}

Test(diskfull, produce_fails_while_full_and_resumes_without_a_gap)
{
    mount_small_disk();
    char ballast[sizeof(B.data_dir) + 16];
    snprintf(ballast, sizeof(ballast), "%s/ballast", B.data_dir);
    write_ballast(ballast);
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, "full", 1), 0);
    static uint8_t batch[BT_BYTES_MAX];
    size_t len = bt_make_sized(batch, sizeof(batch), 250, 2000, 1, BATCH_CODEC_NONE, NULL);
    int64_t acked = 0; /* offset after the last acknowledged batch */
    int err = 0;
    for (int i = 0; i < 100 && err == 0; i++) {
        int64_t off = -1;
        err = rq_produce(&c, "full", 0, batch, len, PROTO_ACKS_ALL, &off);
        if (err == 0) {
            cr_assert_eq(off, acked, "offsets follow each other");
            acked = off + 250;
        }
    }
    cr_assert_eq(err, -NG_EDISK_FULL, "the disk filled: %s", err_str(err));
    for (int i = 0; i < 3; i++) { /* still full: still refused */
        int64_t off;
        cr_assert_eq(rq_produce(&c, "full", 0, batch, len, PROTO_ACKS_ALL, &off), -NG_EDISK_FULL);
    }
    cr_assert_eq(read_all(&c), acked, "everything acknowledged is there, nothing torn");
    cr_assert_eq(unlink(ballast), 0);
    int64_t off = -1;
    cr_assert_eq(rq_produce(&c, "full", 0, batch, len, PROTO_ACKS_ALL, &off), 0);
    cr_assert_eq(off, acked, "no gap after the disk filled");
    cr_assert_eq(read_all(&c), acked + 250);
    cl_close(&c);
    bk_stop(&B);
    bk_start(&B); /* and recovery agrees */
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(read_all(&c), acked + 250);
    cl_close(&c);
}

/* ---- libnagare and the CLI on a full disk ---- */

/* A record's value: larger than the smallest batch fill_disk() had
 * refused, so it cannot fit in what is left. Sent uncompressed (one byte
 * repeated: zstd would make it a batch smaller than that one). */
#define RECORD_BYTES 1000

/* Mounts the small disk with its ballast, starts the broker, connects c
 * and creates the one-partition topic "full". */
static void start_on_small_disk(struct cl *c, char *ballast, size_t ballast_bytes)
{
    mount_small_disk();
    snprintf(ballast, ballast_bytes, "%s/ballast", B.data_dir);
    write_ballast(ballast);
    bk_start(&B);
    cl_connect(c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(c, "full", 1), 0);
}

/* Produces batches of falling sizes, each until the disk refuses it, so
 * that afterwards no batch of RECORD_BYTES fits. Returns the offset after
 * the last acknowledged batch (acked: the log end before). */
static int64_t fill_disk(struct cl *c, int64_t acked)
{
    static const struct {
        uint32_t records, value_bytes;
    } steps[] = {{250, 2000}, {10, 2000}, {1, 100}};
    static uint8_t batch[BT_BYTES_MAX];
    for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
        size_t len = bt_make_sized(batch, sizeof(batch), steps[s].records, steps[s].value_bytes, 1,
                                   BATCH_CODEC_NONE, NULL);
        int err = 0;
        for (int i = 0; i < 10000 && err == 0; i++) {
            int64_t off = -1;
            err = rq_produce(c, "full", 0, batch, len, PROTO_ACKS_ALL, &off);
            if (err == 0) {
                cr_assert_eq(off, acked, "offsets follow each other");
                acked = off + steps[s].records;
            }
        }
        cr_assert_eq(err, -NG_EDISK_FULL, "batches of %u records fill the disk: %s",
                     steps[s].records, err_str(err));
    }
    return acked;
}

/* InitProducerId's request-level error (0 when it gave an id). */
static int init_producer_id_err(struct cl *c)
{
    uint32_t corr = cl_next_corr(c);
    cr_assert_eq(proto_init_producer_id_req_encode(cl_wr(c), 0, corr, proto_str_make("t")), 0);
    cr_assert_eq(cl_send_wr(c), 0);
    struct proto_resp_header h;
    struct rd body;
    cr_assert_eq(cl_recv(c, &h, &body), 0);
    cr_assert_eq(h.correlation_id, corr);
    return h.err;
}

Test(diskfull, a_producer_id_on_a_full_disk_names_the_full_disk)
{
    struct cl c;
    char ballast[sizeof(B.data_dir) + 16];
    start_on_small_disk(&c, ballast, sizeof(ballast));
    /* No id given yet: the first one reserves a block of ids on disk. */
    (void)fill_disk(&c, 0);
    int err = init_producer_id_err(&c);
    cr_assert_eq(err, -NG_EDISK_FULL, "InitProducerId: %s", err_str(err));
    cr_assert_eq(unlink(ballast), 0);
    cr_assert_eq(init_producer_id_err(&c), 0, "an id once space is freed");
    cl_close(&c);
}

/* What the callbacks saw. */
struct seen {
    int reports;
    int err; /* the last report's */
    int64_t offset;
    int errors;    /* on_error calls */
    int error_err; /* the last one's */
    int32_t error_partition;
    int reports_at_error;
};

static void seen_delivery(const struct nagare_delivery *d, void *opaque)
{
    struct seen *s = opaque;
    s->reports++;
    s->err = d->err;
    s->offset = d->offset;
}

static void seen_error(const struct nagare_producer_error *e, void *opaque)
{
    struct seen *s = opaque;
    cr_assert_str_eq(e->topic, "full");
    s->errors++;
    s->error_err = e->err;
    s->error_partition = e->partition;
    s->reports_at_error = s->reports;
}

static void send_record(nagare_producer *p)
{
    static char value[RECORD_BYTES];
    memset(value, 'v', sizeof(value));
    struct nagare_record r = {
        .topic = "full", .partition = 0, .key_len = -1, .value = value, .value_len = sizeof(value)};
    cr_assert_eq(nagare_send(p, &r), 0);
}

/* A producer of "full" that has delivered one record (offset 0), so the
 * topic is known before the disk fills. */
static nagare_producer *producer_started(struct seen *s, uint32_t delivery_timeout_ms)
{
    struct nagare_producer_config c;
    nagare_producer_config_default(&c);
    c.bootstrap = B.bootstrap;
    c.delivery_timeout_ms = delivery_timeout_ms;
    c.compression = NAGARE_COMPRESSION_NONE; /* RECORD_BYTES as they are */
    c.on_delivery = seen_delivery;
    c.on_error = seen_error;
    c.opaque = s;
    nagare_producer *p;
    cr_assert_eq(nagare_producer_new(&c, &p), 0);
    send_record(p);
    cr_assert_eq(nagare_producer_flush(p, -1), 0);
    cr_assert_eq(s->reports, 1);
    cr_assert_eq(s->err, 0, "%s", nagare_strerror(s->err));
    cr_assert_eq(s->offset, 0);
    return p;
}

Test(diskfull, a_record_out_of_time_on_a_full_disk_is_reported_with_the_full_disk)
{
    struct cl c;
    char ballast[sizeof(B.data_dir) + 16];
    start_on_small_disk(&c, ballast, sizeof(ballast));
    struct seen s = {0};
    /* Short: the record runs out of time while the disk is full. */
    nagare_producer *p = producer_started(&s, 2000);
    int64_t acked = fill_disk(&c, 1);
    send_record(p);
    cr_assert_eq(nagare_producer_flush(p, -1), 0);
    cr_assert_eq(s.reports, 2);
    cr_assert_eq(s.err, -NAGARE_EDISK_FULL, "reported: %s", nagare_strerror(s.err));
    cr_assert_eq(unlink(ballast), 0);
    send_record(p); /* and the next one goes through, right after the others */
    cr_assert_eq(nagare_producer_flush(p, -1), 0);
    cr_assert_eq(s.err, 0, "%s", nagare_strerror(s.err));
    cr_assert_eq(s.offset, acked);
    nagare_producer_destroy(p);
    cl_close(&c);
}

Test(diskfull, the_full_disk_is_announced_while_the_record_is_retried_then_it_is_delivered)
{
    struct cl c;
    char ballast[sizeof(B.data_dir) + 16];
    start_on_small_disk(&c, ballast, sizeof(ballast));
    struct seen s = {0};
    nagare_producer *p = producer_started(&s, 120000);
    int64_t acked = fill_disk(&c, 1);
    send_record(p);
    while (s.errors == 0) {
        cr_assert_geq(nagare_producer_poll(p, 100), 0);
    }
    cr_assert_eq(s.errors, 1);
    cr_assert_eq(s.error_err, -NAGARE_EDISK_FULL, "announced: %s", nagare_strerror(s.error_err));
    cr_assert_eq(s.error_partition, 0);
    cr_assert_eq(s.reports_at_error, 1, "announced before the record's report");
    cr_assert_eq(nagare_producer_outstanding(p), 1, "still being retried");
    cr_assert_eq(unlink(ballast), 0);
    cr_assert_eq(nagare_producer_flush(p, -1), 0);
    cr_assert_eq(s.reports, 2);
    cr_assert_eq(s.err, 0, "delivered once space was freed: %s", nagare_strerror(s.err));
    cr_assert_eq(s.offset, acked, "nothing lost, no gap");
    nagare_producer_destroy(p);
    cl_close(&c);
}

/* Reads one line (without its '\n') from fd into buf; false at the end. */
static bool read_line(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    for (;;) {
        char ch;
        ssize_t got = read(fd, &ch, 1);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            buf[n] = '\0';
            return n > 0;
        }
        if (ch == '\n') {
            buf[n] = '\0';
            return true;
        }
        if (n + 1 < cap) {
            buf[n++] = ch;
        }
    }
}

Test(diskfull, nagare_produce_names_the_full_disk_at_once_and_delivers_once_space_is_freed)
{
    const char *nagare = getenv("NAGARE");
    cr_assert(nagare != NULL, "set NAGARE to the nagare binary");
    struct cl c;
    char ballast[sizeof(B.data_dir) + 16];
    start_on_small_disk(&c, ballast, sizeof(ballast));
    int in[2];
    int err[2];
    cr_assert_eq(pipe(in), 0);
    cr_assert_eq(pipe(err), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(in[0], STDIN_FILENO);
        dup2(err[1], STDERR_FILENO);
        close(in[1]);
        close(err[0]);
        execl(nagare, "nagare", "produce", "full", "--compression", "none", "--broker", B.bootstrap,
              (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(err[1]);
    static char line[RECORD_BYTES + 1];
    memset(line, 'v', RECORD_BYTES);
    line[RECORD_BYTES] = '\n';
    /* A first line while there is room: once it is in the log, nagare is
     * connected (it asks the broker for a producer id, which takes disk
     * space too). */
    cr_assert_eq(write(in[1], line, sizeof(line)), (ssize_t)sizeof(line));
    while (rq_latest(&c, "full", 0) < 1) {
        usleep(10000);
    }
    (void)fill_disk(&c, 1);
    cr_assert_eq(write(in[1], line, sizeof(line)), (ssize_t)sizeof(line));
    /* stdin stays open: the first thing said must be the cause, while the
     * record is still being retried (before the fix: "timed out", 30 s on). */
    char said[512];
    cr_assert(read_line(err[0], said, sizeof(said)), "nagare said nothing");
    cr_assert(strstr(said, "disk is full") != NULL, "nagare said: %s", said);
    cr_assert_eq(unlink(ballast), 0);
    close(in[1]);
    char summary[512] = "";
    while (read_line(err[0], said, sizeof(said))) {
        snprintf(summary, sizeof(summary), "%s", said);
    }
    close(err[0]);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status %d; last: %s", status,
              summary);
    cr_assert(strstr(summary, "2 records (2000 bytes) delivered") != NULL, "summary: %s", summary);
    cl_close(&c);
}
