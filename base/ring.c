#include "base/ring.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h> /* renameat */
#include <unistd.h>
#include <string.h>

#include "base/clock.h"

#ifdef NAGARE_FAULTS
#include "base/ring_sim.h"
#define SIM_SQE(r, op, sqe) ring_sim_sqe((r), (op), (sqe))
#define SIM_SUBMIT(r) ring_sim_submit(r)
#define SIM_FORGET(r) ring_sim_forget(r)
#else
#define SIM_SQE(r, op, sqe) ((void)0)
#define SIM_SUBMIT(r) ((void)0)
#define SIM_FORGET(r) ((void)0)

/* No power-loss simulation here: the hooks storage and the catalog call are
 * empty (base/ring.h). */
void ring_note_dirent(int dirfd, const char *name, enum ring_dirent op)
{
    (void)dirfd;
    (void)name;
    (void)op;
}

void ring_note_rename(int from_dirfd, const char *from, int to_dirfd, const char *to)
{
    (void)from_dirfd;
    (void)from;
    (void)to_dirfd;
    (void)to;
}
#endif

#ifdef NAGARE_FAULTS
struct fault_rule {
    uint64_t nth; /* 0: disarmed */
    int res;
    bool sticky;
};

static struct fault_rule fault_rules[RING_KIND_COUNT];
static uint64_t fault_seen[RING_KIND_COUNT];
static uint64_t fault_injected;

void ring_fault_arm(enum ring_kind kind, uint64_t nth, int res, bool sticky)
{
    ASSERT(kind < RING_KIND_COUNT && nth >= 1);
    ASSERT(res < 0 || res == RING_FAULT_SHORT);
    fault_rules[kind] = (struct fault_rule){.nth = nth, .res = res, .sticky = sticky};
}

void ring_fault_clear(void)
{
    memset(fault_rules, 0, sizeof(fault_rules));
    memset(fault_seen, 0, sizeof(fault_seen));
    fault_injected = 0;
}

uint64_t ring_fault_seen(enum ring_kind kind)
{
    ASSERT(kind < RING_KIND_COUNT);
    return fault_seen[kind];
}

uint64_t ring_fault_injected(void) { return fault_injected; }

static int fault_filter(enum ring_kind kind, int res)
{
    uint64_t n = ++fault_seen[kind];
    struct fault_rule *rule = &fault_rules[kind];
    if (rule->nth == 0 || n < rule->nth || (!rule->sticky && n != rule->nth)) {
        return res;
    }
    fault_injected++;
    if (rule->res != RING_FAULT_SHORT) {
        return rule->res;
    }
    return res > 1 ? res / 2 : res; /* a short write needs bytes to shorten */
}
#endif

int ring_init(struct ring *r, unsigned entries)
{
    ASSERT(entries >= 1 && entries <= 32768);
    memset(r, 0, sizeof(*r));
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    /* One thread owns the ring, so the kernel may run completion work only
     * when that thread enters it: fewer interrupts on a 2-core machine. */
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN;
    int rc = io_uring_queue_init_params(entries, &r->uring, &p);
    if (rc == -EINVAL) { /* older kernel: plain ring */
        memset(&p, 0, sizeof(p));
        rc = io_uring_queue_init_params(entries, &r->uring, &p);
    }
    return rc;
}

void ring_fini(struct ring *r)
{
    SIM_FORGET(r);
    io_uring_queue_exit(&r->uring);
}

struct io_uring_sqe *ring_sqe(struct ring *r, struct ring_op *op)
{
    ASSERT(op != NULL && op->done != NULL && op->kind < RING_KIND_COUNT);
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->uring);
    if (sqe == NULL) {
        SIM_SUBMIT(r);
        int rc = io_uring_submit(&r->uring);
        ASSERT(rc >= 0 || rc == -EBUSY || rc == -EAGAIN);
        sqe = io_uring_get_sqe(&r->uring);
        ASSERT(sqe != NULL); /* the submit above emptied the queue */
    }
    io_uring_sqe_set_data(sqe, op);
    if (ring_kind_timed(op->kind)) {
        op->submitted_us = (uint32_t)(clock_mono_ns() / 1000u);
    }
    r->inflight++;
    SIM_SQE(r, op, sqe);
    return sqe;
}

void ring_defer(struct ring *r, struct ring_deferred *d)
{
    ASSERT(d->fn != NULL);
    if (d->queued) {
        return;
    }
    d->queued = true;
    d->next = NULL;
    if (r->deferred_tail != NULL) {
        r->deferred_tail->next = d;
    } else {
        r->deferred_head = d;
    }
    r->deferred_tail = d;
}

void ring_undefer(struct ring *r, struct ring_deferred *d)
{
    if (!d->queued) {
        return;
    }
    struct ring_deferred **at = &r->deferred_head;
    struct ring_deferred *prev = NULL;
    while (*at != d) {
        ASSERT(*at != NULL); /* queued on this ring */
        prev = *at;
        at = &(*at)->next;
    }
    *at = d->next;
    if (r->deferred_tail == d) {
        r->deferred_tail = prev;
    }
    d->queued = false;
}

/* Runs the hooks queued before this call; hooks they queue wait for the
 * next submit. */
static void run_deferred(struct ring *r)
{
    struct ring_deferred *d = r->deferred_head;
    r->deferred_head = r->deferred_tail = NULL;
    while (d != NULL) {
        struct ring_deferred *next = d->next;
        d->queued = false;
        d->fn(d);
        d = next;
    }
}

int ring_submit(struct ring *r)
{
    run_deferred(r);
    SIM_SUBMIT(r);
    int rc = io_uring_submit(&r->uring);
    return rc == -EBUSY || rc == -EAGAIN ? 0 : rc;
}

static unsigned dispatch_ready(struct ring *r)
{
    unsigned n = 0;
    struct io_uring_cqe *cqe;
    /* Callbacks may queue submissions, never reap: draining one at a time
     * keeps the CQ head consistent while they run. */
    while (io_uring_peek_cqe(&r->uring, &cqe) == 0) {
        struct ring_op *op = io_uring_cqe_get_data(cqe);
        int res = cqe->res;
        uint32_t flags = cqe->flags;
        io_uring_cqe_seen(&r->uring, cqe);
        ASSERT(op != NULL);
        if ((flags & IORING_CQE_F_MORE) == 0) {
            ASSERT(r->inflight > 0);
            r->inflight--;
        }
#ifdef NAGARE_FAULTS
        res = ring_sim_complete(r, op, res, fault_filter(op->kind, res));
#endif
        struct ring_kind_stats *st = &r->stats[op->kind];
        st->completions++;
        st->errors += res < 0;
        if (ring_kind_timed(op->kind)) {
            uint32_t us = (uint32_t)(clock_mono_ns() / 1000u) - op->submitted_us;
            histo_record(&st->latency, (uint64_t)us * 1000u);
        }
        op->done(op, res, flags);
        n++;
    }
    return n;
}

int ring_run(struct ring *r, int timeout_ms)
{
    int rc;
    run_deferred(r);
    SIM_SUBMIT(r);
    if (timeout_ms == 0) {
        rc = io_uring_submit(&r->uring);
    } else if (timeout_ms < 0) {
        rc = io_uring_submit_and_wait(&r->uring, 1);
    } else {
        struct __kernel_timespec ts = {
            .tv_sec = timeout_ms / 1000,
            .tv_nsec = (long long)(timeout_ms % 1000) * 1000000,
        };
        struct io_uring_cqe *cqe = NULL;
        rc = io_uring_submit_and_wait_timeout(&r->uring, &cqe, 1, &ts, NULL);
        if (rc == -ETIME) {
            rc = 0;
        }
    }
    if (rc < 0 && rc != -EBUSY && rc != -EAGAIN) {
        return rc;
    }
    return (int)dispatch_ready(r);
}

struct blocking_op {
    struct ring_op op;
    bool done;
    int res;
};

static void blocking_done(struct ring_op *op, int res, uint32_t flags)
{
    (void)flags;
    struct blocking_op *b = (struct blocking_op *)op;
    b->done = true;
    b->res = res;
}

static int blocking_wait(struct ring *r, struct blocking_op *b)
{
    while (!b->done) {
        int rc = ring_run(r, -1);
        if (rc < 0 && rc != -EINTR) {
            return rc;
        }
    }
    return b->res;
}

int ring_write_all(struct ring *r, enum ring_kind kind, int fd, const void *buf, size_t len,
                   uint64_t off)
{
    const uint8_t *p = buf;
    while (len > 0) {
        struct blocking_op b = {.op = {.done = blocking_done, .kind = kind}};
        unsigned chunk = len > (1u << 30) ? (1u << 30) : (unsigned)len;
        io_uring_prep_write(ring_sqe(r, &b.op), fd, p, chunk, off);
        int res = blocking_wait(r, &b);
        if (res < 0) {
            return res;
        }
        if (res == 0) {
            return -EIO;
        }
        p += res;
        len -= (size_t)res;
        off += (uint64_t)res;
    }
    return 0;
}

int ring_fsync(struct ring *r, enum ring_kind kind, int fd, bool datasync)
{
    struct blocking_op b = {.op = {.done = blocking_done, .kind = kind}};
    io_uring_prep_fsync(ring_sqe(r, &b.op), fd, datasync ? IORING_FSYNC_DATASYNC : 0);
    int res = blocking_wait(r, &b);
    return res < 0 ? res : 0;
}

int ring_replace_file(struct ring *r, int dirfd, const char *tmp, const char *name, const void *buf,
                      size_t len)
{
    ring_note_dirent(dirfd, tmp, RING_DIRENT_CREATE);
    int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int rc = fd < 0 ? -errno : ring_write_all(r, RING_META_WRITE, fd, buf, len, 0);
    rc = rc == 0 ? ring_fsync(r, RING_META_SYNC, fd, true) : rc;
    if (fd >= 0) {
        close(fd);
    }
    if (rc == 0) {
        ring_note_rename(dirfd, tmp, dirfd, name);
        rc = renameat(dirfd, tmp, dirfd, name) != 0 ? -errno : 0;
    }
    return rc == 0 ? ring_fsync(r, RING_DIR_SYNC, dirfd, false) : rc;
}
