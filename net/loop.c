/*
 * net/loop.c — the loop: set-up, listener, timers, mailbox, iteration, stop.
 *
 * One iteration: fire due timers, kick every dirty connection (send ready
 * answers, re-arm reading, close), wait in ring_run() until a completion or
 * the next timer, then do the same again so answers produced by completions
 * go out before the next wait. Work is proportional to what happened, never
 * to the number of connections.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/err.h"
#include "net/listen.h"
#include "net/loop_int.h"

#define NS_PER_MS 1000000ull

void loop_cfg_default(struct loop_cfg *cfg)
{
    *cfg = (struct loop_cfg){
        .frame_bytes_max = LOOP_FRAME_BYTES_MAX_DEFAULT,
        .conn_max = LOOP_CONN_MAX_DEFAULT,
        .conn_inflight_max = LOOP_CONN_INFLIGHT_MAX_DEFAULT,
        .conn_rx_bytes_max = LOOP_CONN_RX_BYTES_MAX_DEFAULT,
        .conn_tx_bytes_max = LOOP_CONN_TX_BYTES_MAX_DEFAULT,
        .mem_bytes_max = LOOP_MEM_BYTES_MAX_DEFAULT,
        .partial_bytes_max = LOOP_PARTIAL_BYTES_MAX_DEFAULT,
        .conn_partial_bytes = LOOP_CONN_PARTIAL_BYTES_DEFAULT,
        .partial_timeout_ms = LOOP_PARTIAL_TIMEOUT_MS_DEFAULT,
        .rx_buf_bytes = LOOP_RX_BUF_BYTES_DEFAULT,
        .rx_buf_count = LOOP_RX_BUF_COUNT_DEFAULT,
        .rx_mshot_bytes = LOOP_RX_MSHOT_BYTES_DEFAULT,
        .sock_rcvbuf_bytes = LOOP_SOCK_BUF_BYTES_DEFAULT,
        .sock_sndbuf_bytes = LOOP_SOCK_BUF_BYTES_DEFAULT,
        .drain_timeout_ms = LOOP_DRAIN_TIMEOUT_MS_DEFAULT,
        .file_parts_max = LOOP_FILE_PARTS_MAX_DEFAULT,
        .pipe_bytes = LOOP_PIPE_BYTES_DEFAULT,
        .tls_handshake_timeout_ms = LOOP_TLS_HANDSHAKE_TIMEOUT_MS_DEFAULT,
    };
}

static bool cfg_ok(const struct loop_cfg *c)
{
    bool pow2 = c->rx_buf_count != 0 && (c->rx_buf_count & (c->rx_buf_count - 1)) == 0;
    return c->on_request != NULL && c->frame_bytes_max >= 1 &&
           c->frame_bytes_max <= LOOP_FRAME_BYTES_CAP && c->conn_max >= 1 &&
           c->conn_inflight_max >= 1 && c->conn_inflight_max <= LOOP_CONN_INFLIGHT_CAP &&
           c->conn_rx_bytes_max >= 1 && c->conn_tx_bytes_max >= 1 &&
           /* a max frame rounds up to at most twice its size in the pool */
           c->mem_bytes_max >= 2ull * c->frame_bytes_max &&
           c->partial_bytes_max >= 2ull * c->frame_bytes_max &&
           c->partial_bytes_max <= c->mem_bytes_max && c->conn_partial_bytes >= 1 &&
           c->conn_partial_bytes <= LOOP_FRAME_BYTES_CAP && c->partial_timeout_ms >= 1 &&
           c->rx_buf_bytes >= 512 && c->rx_buf_bytes <= (1u << 20) && pow2 &&
           c->rx_buf_count <= LOOP_RX_BUF_COUNT_CAP && c->rx_mshot_bytes <= LOOP_FRAME_BYTES_CAP &&
           c->sock_rcvbuf_bytes <= INT32_MAX && c->sock_sndbuf_bytes <= INT32_MAX &&
           c->file_parts_max >= 1 && c->pipe_bytes >= LOOP_PIPE_BYTES_MIN &&
           c->pipe_bytes <= LOOP_PIPE_BYTES_CAP && c->tls_handshake_timeout_ms >= 1;
}

/* ---- provided receive buffers ------------------------------------------- */

void loop_rxbuf_put(struct loop *l, uint16_t bid)
{
    io_uring_buf_ring_add(l->br, l->rx_bufs + (size_t)bid * l->cfg.rx_buf_bytes,
                          l->cfg.rx_buf_bytes, bid, io_uring_buf_ring_mask(l->cfg.rx_buf_count), 0);
    io_uring_buf_ring_advance(l->br, 1);
}

static void rxbufs_fini(struct loop *l)
{
    if (l->br_registered) {
        int rc = io_uring_unregister_buf_ring(&l->ring->uring, LOOP_BUF_GROUP);
        ASSERT(rc == 0);
        l->br_registered = false;
    }
    if (l->br != NULL) {
        munmap(l->br, l->br_bytes);
        l->br = NULL;
    }
    if (l->rx_bufs != NULL) {
        munmap(l->rx_bufs, (size_t)l->cfg.rx_buf_count * l->cfg.rx_buf_bytes);
        l->rx_bufs = NULL;
    }
}

/* Maps the buffers (touched lazily by the kernel's first receive into each)
 * and registers them as buffer group LOOP_BUF_GROUP. */
static int rxbufs_init(struct loop *l)
{
    uint32_t n = l->cfg.rx_buf_count;
    l->br_bytes = (size_t)n * sizeof(struct io_uring_buf);
    void *br = mmap(NULL, l->br_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (br == MAP_FAILED) {
        return -errno;
    }
    l->br = br;
    void *bufs = mmap(NULL, (size_t)n * l->cfg.rx_buf_bytes, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (bufs == MAP_FAILED) {
        int rc = -errno;
        rxbufs_fini(l);
        return rc;
    }
    l->rx_bufs = bufs;
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof(reg));
    reg.ring_addr = (uint64_t)(uintptr_t)l->br;
    reg.ring_entries = n;
    reg.bgid = LOOP_BUF_GROUP;
    int rc = io_uring_register_buf_ring(&l->ring->uring, &reg, 0);
    if (rc < 0) {
        rxbufs_fini(l);
        return rc;
    }
    l->br_registered = true;
    io_uring_buf_ring_init(l->br);
    for (uint32_t i = 0; i < n; i++) {
        io_uring_buf_ring_add(l->br, l->rx_bufs + (size_t)i * l->cfg.rx_buf_bytes,
                              l->cfg.rx_buf_bytes, (uint16_t)i, io_uring_buf_ring_mask(n), (int)i);
    }
    io_uring_buf_ring_advance(l->br, (int)n);
    return 0;
}

/* ---- timers: an intrusive pairing heap (Fredman et al., 1986) ----------- */

static struct loop_timer *ph_meld(struct loop_timer *a, struct loop_timer *b)
{
    if (a == NULL) {
        return b;
    }
    if (b == NULL) {
        return a;
    }
    if (b->deadline_ns < a->deadline_ns) {
        struct loop_timer *t = a;
        a = b;
        b = t;
    }
    /* b becomes a's first child; prev of a first child is its parent. */
    b->prev = a;
    b->next = a->child;
    if (a->child != NULL) {
        a->child->prev = b;
    }
    a->child = b;
    return a;
}

/* Melds a sibling list into one heap: pairs left to right, then the pairs
 * right to left (the two-pass rule that gives O(log n) amortised delete). */
static struct loop_timer *ph_merge_pairs(struct loop_timer *first)
{
    struct loop_timer *pairs = NULL; /* reversed, linked through next */
    while (first != NULL) {
        struct loop_timer *a = first;
        struct loop_timer *b = a->next;
        first = b != NULL ? b->next : NULL;
        a->next = a->prev = NULL;
        if (b != NULL) {
            b->next = b->prev = NULL;
        }
        struct loop_timer *m = ph_meld(a, b);
        m->next = pairs;
        pairs = m;
    }
    struct loop_timer *root = NULL;
    while (pairs != NULL) {
        struct loop_timer *next = pairs->next;
        pairs->next = NULL;
        root = ph_meld(root, pairs);
        pairs = next;
    }
    return root;
}

static void timer_remove(struct loop *l, struct loop_timer *t)
{
    ASSERT(t->armed);
    if (t == l->timers) {
        l->timers = ph_merge_pairs(t->child);
    } else {
        if (t->prev->child == t) {
            t->prev->child = t->next;
        } else {
            t->prev->next = t->next;
        }
        if (t->next != NULL) {
            t->next->prev = t->prev;
        }
        l->timers = ph_meld(l->timers, ph_merge_pairs(t->child));
    }
    t->child = t->next = t->prev = NULL;
    t->armed = false;
}

void loop_timer_init(struct loop_timer *t, loop_timer_fn fn, void *arg)
{
    ASSERT(fn != NULL);
    *t = (struct loop_timer){.fn = fn, .arg = arg};
}

void loop_timer_arm(struct loop *l, struct loop_timer *t, uint64_t delay_ms)
{
    ASSERT(t->fn != NULL);
    if (t->armed) {
        timer_remove(l, t);
    }
    /* A fresh clock, not the iteration's: a timer never fires early. */
    t->deadline_ns = clock_mono_ns() + delay_ms * NS_PER_MS;
    t->child = t->next = t->prev = NULL;
    t->armed = true;
    l->timers = ph_meld(l->timers, t);
}

bool loop_timer_cancel(struct loop *l, struct loop_timer *t)
{
    if (!t->armed) {
        return false;
    }
    timer_remove(l, t);
    return true;
}

uint64_t loop_now_ms(const struct loop *l) { return l->now_ns / NS_PER_MS; }

static void timers_fire(struct loop *l)
{
    l->now_ns = clock_mono_ns();
    /* A timer armed by a callback has a deadline past now_ns: it waits for
     * the next iteration, so this cannot spin. */
    while (l->timers != NULL && l->timers->deadline_ns <= l->now_ns) {
        struct loop_timer *t = l->timers;
        timer_remove(l, t);
        t->fn(t, t->arg);
    }
}

/* ---- mailbox and stop ---------------------------------------------------- */

static void efd_done(struct ring_op *op, int res, uint32_t flags);

static void efd_arm(struct loop *l)
{
    io_uring_prep_read(ring_sqe(l->ring, &l->efd_op), l->efd, &l->efd_val, sizeof(l->efd_val), 0);
    l->efd_armed = true;
}

static void mbox_run(struct loop *l)
{
    pthread_mutex_lock(&l->mbox_lock);
    struct loop_msg *m = l->mbox_head;
    l->mbox_head = l->mbox_tail = NULL;
    pthread_mutex_unlock(&l->mbox_lock);
    while (m != NULL) {
        struct loop_msg *next = m->next;
        m->next = NULL;
        m->fn(m, m->arg);
        m = next;
    }
}

static void efd_done(struct ring_op *op, int res, uint32_t flags)
{
    (void)flags;
    struct loop *l = container_of(op, struct loop, efd_op);
    l->efd_armed = false;
    mbox_run(l);
    if (atomic_load_explicit(&l->stop_requested, memory_order_acquire)) {
        loop_stop(l);
    }
    if (res == -ECANCELED || l->efd_cancelling || l->stopped) {
        return;
    }
    /* Any other failure of a read of our own eventfd is a bug. */
    ASSERT(res == sizeof(l->efd_val) || res == -EINTR || res == -EAGAIN);
    efd_arm(l);
}

static void efd_cancel_done(struct ring_op *op, int res, uint32_t flags)
{
    (void)res;
    (void)flags;
    struct loop *l = container_of(op, struct loop, efd_cancel_op);
    l->efd_cancelling = false;
}

void loop_post(struct loop *l, struct loop_msg *m)
{
    ASSERT(m != NULL && m->fn != NULL);
    m->next = NULL;
    pthread_mutex_lock(&l->mbox_lock);
    bool was_empty = l->mbox_head == NULL;
    if (was_empty) {
        l->mbox_head = m;
    } else {
        l->mbox_tail->next = m;
    }
    l->mbox_tail = m;
    pthread_mutex_unlock(&l->mbox_lock);
    if (was_empty) { /* one wakeup per batch of posts */
        uint64_t one = 1;
        ssize_t n = write(l->efd, &one, sizeof(one));
        (void)n; /* -EAGAIN: the counter is already non-zero, a wakeup is due */
    }
}

void loop_stop_async(struct loop *l)
{
    /* Counted in before the flag is set: once the loop can see the flag it
     * may stop and reach loop_fini(), which must not close the eventfd
     * under this write. */
    atomic_fetch_add(&l->stop_writers, 1);
    if (!atomic_exchange(&l->stop_requested, true)) {
        uint64_t one = 1;
        ssize_t n = write(l->efd, &one, sizeof(one));
        (void)n; /* as in loop_post() */
    }
    atomic_fetch_sub(&l->stop_writers, 1);
}

/* ---- listener ------------------------------------------------------------ */

static void accept_done(struct ring_op *op, int res, uint32_t flags);

static void accept_arm(struct loop_listener *li)
{
    struct io_uring_sqe *sqe = ring_sqe_multishot(li->loop->ring, &li->accept_op);
    /* Non-blocking sockets: the ring's receives and sends poll as before,
     * and a splice of a file part to a full socket returns EAGAIN rather
     * than stall the loop thread (net/conn.c). */
    io_uring_prep_multishot_accept(sqe, li->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    li->armed = true;
}

static void listen_close(struct loop_listener *li)
{
    if (li->fd >= 0) {
        close(li->fd);
        li->fd = -1;
    }
}

static void accept_retry_fire(struct loop_timer *t, void *arg)
{
    (void)t;
    struct loop_listener *li = arg;
    if (!li->loop->stopping && li->fd >= 0 && !li->armed) {
        accept_arm(li);
    }
}

static void accept_done(struct ring_op *op, int res, uint32_t flags)
{
    struct loop_listener *li = container_of(op, struct loop_listener, accept_op);
    struct loop *l = li->loop;
    if ((flags & IORING_CQE_F_MORE) == 0) {
        li->armed = false;
    }
    if (res >= 0) {
        if (l->stopping || l->stats.conns >= l->cfg.conn_max) {
            close(res);
            l->stats.conns_refused++;
        } else if (conn_open(l, res, (uint8_t)(li - l->listeners)) < 0) {
            l->stats.conns_refused++;
        }
    } else if (res != -ECANCELED) {
        l->stats.accept_errors++;
    }
    if (li->armed) {
        return;
    }
    if (l->stopping) {
        listen_close(li);
    } else if (res < 0 && res != -ECANCELED) {
        /* EMFILE and friends persist for a while: do not spin on them. */
        loop_timer_arm(l, &li->retry, LOOP_ACCEPT_RETRY_MS);
    } else {
        accept_arm(li);
    }
}

static void accept_cancel_done(struct ring_op *op, int res, uint32_t flags)
{
    (void)res;
    (void)flags;
    struct loop_listener *li = container_of(op, struct loop_listener, accept_cancel_op);
    li->cancelling = false;
}

/* Stops li accepting: its socket closes once the armed accept's last
 * completion is in (accept_done()). */
static void listener_stop(struct loop_listener *li)
{
    loop_timer_cancel(li->loop, &li->retry);
    if (li->armed) {
        io_uring_prep_cancel(ring_sqe(li->loop->ring, &li->accept_cancel_op), &li->accept_op, 0);
        li->cancelling = true;
    } else {
        listen_close(li);
    }
}

static bool listener_gone(const struct loop_listener *li)
{
    return !li->armed && !li->cancelling && li->fd < 0;
}

int loop_listen(struct loop *l, const char *host, uint16_t port, uint16_t *port_out)
{
    ASSERT(l->listener_count < LOOP_LISTENERS_MAX && !l->stopping && host != NULL);
    /* accepted sockets inherit the buffer sizes, which must be set before
     * the handshake to shape the window */
    struct listen_opts opts = {.rcvbuf_bytes = l->cfg.sock_rcvbuf_bytes,
                               .sndbuf_bytes = l->cfg.sock_sndbuf_bytes};
    int fd = -1;
    int rc = listen_socket(host, port, &opts, &fd, port_out);
    if (rc < 0) {
        return rc;
    }
    struct loop_listener *li = &l->listeners[l->listener_count++];
    *li = (struct loop_listener){
        .loop = l,
        .fd = fd,
        .accept_op = {.done = accept_done, .kind = RING_NET},
        .accept_cancel_op = {.done = accept_cancel_done, .kind = RING_NET},
    };
    loop_timer_init(&li->retry, accept_retry_fire, li);
    accept_arm(li);
    return 0;
}

/* ---- lifetime ------------------------------------------------------------ */

/* Connections that found no pipe try again (any pipe let go does the same). */
static void pipe_retry_fire(struct loop_timer *t, void *arg)
{
    (void)t;
    struct loop *l = arg;
    while (!dl_empty(&l->pipewait)) {
        struct conn *c = container_of(l->pipewait.next, struct conn, pwait);
        dl_del(&c->pwait);
        c->flags &= (uint16_t)~CONN_PIPEWAIT;
        conn_dirty(c);
    }
}

static void drain_timeout_fire(struct loop_timer *t, void *arg)
{
    (void)t;
    struct loop *l = arg;
    for (struct loop_dl *n = l->conns.next; n != &l->conns; n = n->next) {
        conn_abort(container_of(n, struct conn, all), -NG_ETIMEOUT);
    }
}

/* A splice to a socket its peer has reset raises SIGPIPE, and splice(2),
 * unlike sendmsg, has no MSG_NOSIGNAL: a peer gone must be an error
 * return, not the end of the process. A handler the process installed is
 * left alone. */
static void ignore_sigpipe(void)
{
    struct sigaction old;
    if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL) {
        struct sigaction ign;
        memset(&ign, 0, sizeof(ign));
        ign.sa_handler = SIG_IGN;
        sigemptyset(&ign.sa_mask);
        (void)sigaction(SIGPIPE, &ign, NULL);
    }
}

/* file_parts_max within a share of the descriptor limit (net/loop.h). */
static uint32_t file_parts_bound(uint32_t want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) {
        return want;
    }
    uint64_t share = (uint64_t)rl.rlim_cur / LOOP_FILE_PARTS_FD_SHARE;
    share = share < 16 ? 16 : share;
    return want < share ? want : (uint32_t)share;
}

int loop_init(struct loop *l, struct ring *r, const struct loop_cfg *cfg)
{
    if (!cfg_ok(cfg)) {
        return -NG_EBADARG;
    }
    memset(l, 0, sizeof(*l));
    l->ring = r;
    l->cfg = *cfg;
    l->cfg.file_parts_max = file_parts_bound(cfg->file_parts_max);
    l->rx_mshot = cfg->rx_mshot_bytes > 0;
    l->efd_op = (struct ring_op){.done = efd_done, .kind = RING_NET};
    l->efd_cancel_op = (struct ring_op){.done = efd_cancel_done, .kind = RING_NET};
    dl_init(&l->conns);
    dl_init(&l->dirty);
    dl_init(&l->memwait);
    dl_init(&l->partials);
    dl_init(&l->pipewait);
    loop_timer_init(&l->partial_timer, conn_partial_expire, l);
    dl_init(&l->handshakes);
    loop_timer_init(&l->handshake_timer, conn_tls_handshake_expire, l);
    loop_timer_init(&l->pipe_retry, pipe_retry_fire, l);
    loop_timer_init(&l->drain_timer, drain_timeout_fire, l);
    atomic_init(&l->stop_requested, false);
    atomic_init(&l->stop_writers, 0);
    l->now_ns = clock_mono_ns();
    ignore_sigpipe();
    l->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (l->efd < 0) {
        return -errno;
    }
    int rc = rxbufs_init(l);
    if (rc < 0) {
        close(l->efd);
        return rc;
    }
    pthread_mutex_init(&l->mbox_lock, NULL);
    efd_arm(l);
    return 0;
}

void loop_stop(struct loop *l)
{
    if (l->stopping) {
        return;
    }
    l->stopping = true;
    for (uint32_t i = 0; i < l->listener_count; i++) {
        listener_stop(&l->listeners[i]);
    }
    for (struct loop_dl *n = l->conns.next; n != &l->conns; n = n->next) {
        conn_rx_stop(container_of(n, struct conn, all), 0);
    }
    loop_timer_arm(l, &l->drain_timer, l->cfg.drain_timeout_ms);
}

/* Once stopping and every connection and listener are gone: retire the
 * mailbox read, then the loop is stopped. */
static void loop_check_stopped(struct loop *l)
{
    if (!l->stopping || l->stopped || l->stats.conns > 0) {
        return;
    }
    for (uint32_t i = 0; i < l->listener_count; i++) {
        if (!listener_gone(&l->listeners[i])) {
            return;
        }
    }
    loop_timer_cancel(l, &l->drain_timer);
    loop_timer_cancel(l, &l->pipe_retry);
    loop_timer_cancel(l, &l->partial_timer);
    loop_timer_cancel(l, &l->handshake_timer);
    if (l->efd_armed) {
        if (!l->efd_cancelling) {
            io_uring_prep_cancel(ring_sqe(l->ring, &l->efd_cancel_op), &l->efd_op, 0);
            l->efd_cancelling = true;
        }
        return;
    }
    if (!l->efd_cancelling) {
        l->stopped = true;
    }
}

/* Kicks the connections dirty now; ones dirtied meanwhile wait for the next
 * round (the caller then does not block). */
static void loop_flush(struct loop *l)
{
    struct loop_dl round;
    dl_init(&round);
    dl_splice(&round, &l->dirty);
    while (!dl_empty(&round)) {
        struct conn *c = container_of(round.next, struct conn, dirty);
        dl_del(&c->dirty);
        c->flags &= (uint16_t)~CONN_DIRTY;
        conn_kick(c);
    }
}

static void loop_work(struct loop *l)
{
    if (!l->stopping && atomic_load_explicit(&l->stop_requested, memory_order_acquire)) {
        loop_stop(l);
    }
    timers_fire(l);
    loop_flush(l);
    loop_check_stopped(l);
}

/* How long ring_run may wait: not past the next timer nor timeout_ms, and
 * not at all while connections are dirty. */
static int loop_wait_ms(struct loop *l, int timeout_ms)
{
    if (!dl_empty(&l->dirty)) {
        return 0;
    }
    int wait = timeout_ms;
    if (l->timers != NULL) {
        uint64_t now = clock_mono_ns();
        uint64_t due = l->timers->deadline_ns;
        uint64_t ms = due <= now ? 0 : (due - now + NS_PER_MS - 1) / NS_PER_MS;
        if (ms > INT32_MAX) {
            ms = INT32_MAX;
        }
        if (wait < 0 || (uint64_t)wait > ms) {
            wait = (int)ms;
        }
    }
    return wait;
}

int loop_run_once(struct loop *l, int timeout_ms)
{
    loop_work(l);
    int rc = ring_run(l->ring, loop_wait_ms(l, timeout_ms));
    if (rc == -EINTR) {
        rc = 0;
    }
    loop_work(l);
    return rc < 0 ? rc : 0;
}

int loop_run(struct loop *l)
{
    while (!l->stopped) {
        int rc = loop_run_once(l, -1);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

void loop_stats(struct loop *l, struct loop_stats *out)
{
    *out = l->stats;
    out->rx_multishot = l->rx_mshot;
}

void loop_fini(struct loop *l)
{
    if (!l->stopped) {
        loop_stop(l);
        while (!l->stopped) {
            int rc = loop_run_once(l, -1);
            ASSERT(rc == 0);
        }
    }
    mbox_run(l); /* posts that came after the mailbox closed */
    ASSERT(l->stats.conns == 0 && l->stats.reqs_live == 0);
    for (uint32_t i = 0; i < l->listener_count; i++) {
        ASSERT(listener_gone(&l->listeners[i]));
        loop_listener_tls(l, i, NULL);
    }
    free(l->tls_scratch);
    l->tls_scratch = NULL;
    ASSERT(!l->efd_armed && l->timers == NULL);
    rxbufs_fini(l);
    while (atomic_load(&l->stop_writers) != 0) { /* a loop_stop_async() mid-write */
        sched_yield();
    }
    close(l->efd);
    l->efd = -1;
    pthread_mutex_destroy(&l->mbox_lock);
    loop_mem_fini(l);
}
