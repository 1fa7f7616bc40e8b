/*
 * kill -9 test: crash_writer appends durable batches and prints each
 * acknowledgement; we kill it at random moments (during recovery, appends,
 * group commits and rolls alike), reopen the log, and check that every
 * batch ever acknowledged is there, intact, at its offset.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/storage_support.h"

#define CYCLES_DEFAULT 20
#define ACKS_MAX 200000

struct ack {
    int64_t offset;
    uint32_t seed;
    int records;
};

static struct ack acks[ACKS_MAX];
static size_t acks_count;
static struct fx f;
static uint8_t buf[FX_BATCH_MAX];

/* Parses complete "ack O S R" lines from text; returns bytes consumed. */
static size_t parse_acks(const char *text, size_t len)
{
    size_t used = 0;
    for (;;) {
        const char *nl = memchr(text + used, '\n', len - used);
        if (nl == NULL) {
            return used;
        }
        long long off;
        unsigned seed;
        int records;
        cr_assert_eq(sscanf(text + used, "ack %lld %u %d", &off, &seed, &records), 3);
        cr_assert_lt(acks_count, ACKS_MAX);
        acks[acks_count++] = (struct ack){.offset = off, .seed = seed, .records = records};
        used = (size_t)(nl - text) + 1;
    }
}

/* Reads the writer's output from fd into text[*len] and parses the acks in
 * it; returns the bytes read (0 at the end of the output). */
static ssize_t read_acks(int fd, char *text, size_t cap, size_t *len)
{
    ssize_t n = read(fd, text + *len, cap - 1 - *len);
    if (n > 0) {
        *len += (size_t)n;
        size_t used = parse_acks(text, *len);
        memmove(text, text + used, *len - used);
        *len -= used;
    }
    return n;
}

/* Runs the writer for about delay_ms (counted from its first ack when
 * after_first_ack, so that the kill finds work done however slowly the
 * writer starts; else from its start, so that kills land in recovery too),
 * kills it, and collects its acks. */
static void run_and_kill(const char *writer, int run, long delay_ms, bool after_first_ack)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        char run_id[16];
        snprintf(run_id, sizeof(run_id), "%d", run);
        execl(writer, writer, f.dir, run_id, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    static char text[1 << 22];
    size_t len = 0;
    size_t before = acks_count;
    while (after_first_ack && acks_count == before &&
           read_acks(fds[0], text, sizeof(text), &len) > 0) {
    }
    struct timespec ts = {.tv_sec = delay_ms / 1000, .tv_nsec = (delay_ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
    kill(pid, SIGKILL);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status), "writer exited by itself (status %d)", status);
    while (read_acks(fds[0], text, sizeof(text), &len) > 0) {
    }
    close(fds[0]);
}

static void check_every_ack(int cycle)
{
    cr_assert_eq(fx_open(&f), 0, "cycle %d: reopen", cycle);
    for (size_t i = 0; i < acks_count; i++) {
        size_t len;
        int rc = fx_read_one(&f, acks[i].offset, buf, sizeof(buf), &len);
        cr_assert_eq(rc, 0, "cycle %d: acknowledged offset %lld: %s", cycle,
                     (long long)acks[i].offset, err_str(rc));
        cr_assert_eq((int64_t)get_be64(buf), acks[i].offset, "cycle %d: batch moved", cycle);
        cr_assert_eq(fx_check_batch(buf, len, acks[i].seed, &f.zctx), acks[i].records,
                     "cycle %d: acknowledged batch at %lld damaged", cycle,
                     (long long)acks[i].offset);
    }
    fx_close(&f);
}

Test(crash, every_acknowledged_batch_survives_kill_9, .timeout = 600)
{
    const char *writer = getenv("NAGARE_CRASH_WRITER");
    cr_assert_not_null(writer, "NAGARE_CRASH_WRITER names the crash_writer binary");
    const char *env_cycles = getenv("NAGARE_CRASH_CYCLES");
    int cycles = env_cycles ? atoi(env_cycles) : CYCLES_DEFAULT;
    fx_setup(&f);
    f.cfg.batch_bytes_max = 16384;
    f.cfg.segment_bytes = 256 * 1024;
    unsigned seed = (unsigned)time(NULL);
    srand(seed);
    size_t killed_with_acks = 0;
    for (int cycle = 1; cycle <= cycles; cycle++) {
        size_t before = acks_count;
        run_and_kill(writer, cycle, 5 + rand() % 300, cycle % 2 == 1);
        killed_with_acks += acks_count > before;
        check_every_ack(cycle);
    }
    cr_log_info("kill -9: %d cycles (seed %u), %zu acknowledged batches checked", cycles, seed,
                acks_count);
    cr_assert_geq(killed_with_acks, (size_t)(cycles + 1) / 2, "the writer must get work done");
    fx_teardown(&f);
}
