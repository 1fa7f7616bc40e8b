/*
 * net/loop_mem.c — the loop's memory: size-classed byte buffers under one
 * budget, and free lists of fixed-size objects.
 *
 * Freed memory on the target VMs goes back to the host and is slow to touch
 * again, so nothing here is returned to malloc while the loop runs: buffers
 * go to a per-class free list (evicted only to make room under the budget)
 * and objects come from slabs freed at loop_fini().
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/loop_int.h"

#define CLASS_MIN_SHIFT 8 /* 256 bytes */
#define SLAB_OBJECTS 64

static_assert((1ull << (CLASS_MIN_SHIFT + LOOP_POOL_CLASSES - 1)) == LOOP_FRAME_BYTES_CAP,
              "the largest class holds exactly the largest frame");

struct loop_slab {
    struct loop_slab *next;
    /* objects follow, max_align_t aligned */
};

struct free_node {
    struct free_node *next;
};

static unsigned class_of(size_t bytes)
{
    unsigned c = 0;
    while (((size_t)1 << (c + CLASS_MIN_SHIFT)) < bytes) {
        c++;
    }
    ASSERT(c < LOOP_POOL_CLASSES);
    return c;
}

static size_t class_bytes(unsigned c) { return (size_t)1 << (c + CLASS_MIN_SHIFT); }

size_t loop_mem_cap(size_t bytes) { return class_bytes(class_of(bytes)); }

/* Frees cached buffers, biggest first, until need more bytes fit under the
 * budget or nothing is cached. */
static void evict(struct loop *l, uint64_t need)
{
    struct loop_stats *s = &l->stats;
    for (int c = LOOP_POOL_CLASSES - 1; c >= 0; c--) {
        while (l->pool_free[c] != NULL &&
               s->mem_bytes_live + s->mem_bytes_cached + need > l->cfg.mem_bytes_max) {
            struct free_node *n = l->pool_free[c];
            l->pool_free[c] = n->next;
            free(n);
            l->pool_cached[c] -= class_bytes((unsigned)c);
            s->mem_bytes_cached -= class_bytes((unsigned)c);
        }
    }
}

void *loop_mem_get(struct loop *l, size_t bytes, bool force, size_t *cap_out)
{
    ASSERT(bytes <= LOOP_FRAME_BYTES_CAP);
    struct loop_stats *s = &l->stats;
    unsigned c = class_of(bytes);
    size_t cap = class_bytes(c);
    void *p = l->pool_free[c];
    if (p != NULL) {
        l->pool_free[c] = ((struct free_node *)p)->next;
        l->pool_cached[c] -= cap;
        s->mem_bytes_cached -= cap;
    } else {
        if (!force && s->mem_bytes_live + cap > l->cfg.mem_bytes_max) {
            return NULL;
        }
        evict(l, cap);
        p = malloc(cap);
        if (p == NULL) {
            return NULL;
        }
    }
    s->mem_bytes_live += cap;
    if (s->mem_bytes_live > s->mem_bytes_peak) {
        s->mem_bytes_peak = s->mem_bytes_live;
    }
    *cap_out = cap;
    return p;
}

void loop_mem_put(struct loop *l, void *p, size_t cap)
{
    if (p == NULL) {
        return;
    }
    unsigned c = class_of(cap);
    ASSERT(class_bytes(c) == cap && l->stats.mem_bytes_live >= cap);
    struct free_node *n = p;
    n->next = l->pool_free[c];
    l->pool_free[c] = n;
    l->pool_cached[c] += cap;
    l->stats.mem_bytes_live -= cap;
    l->stats.mem_bytes_cached += cap;
    /* Everyone waiting retries; those that still do not fit wait again. The
     * wait is only ever ended by a put, so this cannot spin. */
    while (!dl_empty(&l->memwait)) {
        struct conn *c2 = container_of(l->memwait.next, struct conn, wait);
        dl_del(&c2->wait);
        c2->flags &= (uint16_t)~CONN_MEMWAIT;
        conn_dirty(c2);
    }
}

/* Pops an object of size bytes from *list, growing it by one slab. */
static void *obj_get(struct loop *l, void **list, size_t size)
{
    if (*list == NULL) {
        size_t stride = (size + _Alignof(max_align_t) - 1) & ~(_Alignof(max_align_t) - 1);
        size_t head =
            (sizeof(struct loop_slab) + _Alignof(max_align_t) - 1) & ~(_Alignof(max_align_t) - 1);
        struct loop_slab *slab = malloc(head + stride * SLAB_OBJECTS);
        if (slab == NULL) {
            return NULL;
        }
        slab->next = l->slabs;
        l->slabs = slab;
        for (size_t i = 0; i < SLAB_OBJECTS; i++) {
            struct free_node *n = (void *)((char *)slab + head + stride * i);
            n->next = *list;
            *list = n;
        }
    }
    struct free_node *n = *list;
    *list = n->next;
    memset(n, 0, size);
    return n;
}

static void obj_put(void **list, void *p)
{
    struct free_node *n = p;
    n->next = *list;
    *list = n;
}

struct conn *loop_conn_get(struct loop *l)
{
    return obj_get(l, &l->conn_free, sizeof(struct conn));
}

void loop_conn_put(struct loop *l, struct conn *c) { obj_put(&l->conn_free, c); }

struct loop_req *loop_req_get(struct loop *l)
{
    return obj_get(l, &l->req_free, sizeof(struct loop_req));
}

void loop_req_put(struct loop *l, struct loop_req *r) { obj_put(&l->req_free, r); }

struct tx_batch *loop_tx_get(struct loop *l)
{
    return obj_get(l, &l->tx_free, sizeof(struct tx_batch));
}

void loop_tx_put(struct loop *l, struct tx_batch *t) { obj_put(&l->tx_free, t); }

struct loop_pipe *loop_pipe_get(struct loop *l, int *err)
{
    struct loop_pipe *p = l->pipes;
    if (p != NULL) {
        l->pipes = p->next_free;
        l->stats.pipes_cached--;
        p->next_free = NULL;
        return p;
    }
    p = obj_get(l, &l->pipe_obj_free, sizeof(*p));
    if (p == NULL) {
        *err = -ENOMEM;
        return NULL;
    }
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        *err = -errno;
        obj_put(&l->pipe_obj_free, p);
        return NULL;
    }
    /* Refused past the per-user pipe budget: the default size still works,
     * only in smaller steps. */
    (void)fcntl(fds[1], F_SETPIPE_SZ, (int)l->cfg.pipe_bytes);
    int cap = fcntl(fds[1], F_GETPIPE_SZ);
    ASSERT(cap > 0);
    *p = (struct loop_pipe){.rfd = fds[0], .wfd = fds[1], .cap = (uint32_t)cap};
    l->stats.pipes_live++;
    return p;
}

static void pipe_close(struct loop *l, struct loop_pipe *p)
{
    close(p->rfd);
    close(p->wfd);
    obj_put(&l->pipe_obj_free, p);
    ASSERT(l->stats.pipes_live > 0);
    l->stats.pipes_live--;
}

void loop_pipe_put(struct loop *l, struct loop_pipe *p)
{
    /* Bytes left in it belong to a connection that is gone: close it. */
    if (p->bytes == 0 && l->stats.pipes_cached < LOOP_PIPE_CACHE) {
        p->next_free = l->pipes;
        l->pipes = p;
        l->stats.pipes_cached++;
    } else {
        pipe_close(l, p);
    }
    while (!dl_empty(&l->pipewait)) {
        struct conn *c = container_of(l->pipewait.next, struct conn, pwait);
        dl_del(&c->pwait);
        c->flags &= (uint16_t)~CONN_PIPEWAIT;
        conn_dirty(c);
    }
}

void loop_mem_fini(struct loop *l)
{
    while (l->pipes != NULL) {
        struct loop_pipe *p = l->pipes;
        l->pipes = p->next_free;
        l->stats.pipes_cached--;
        pipe_close(l, p);
    }
    ASSERT(l->stats.pipes_live == 0 && l->stats.file_parts_live == 0);
    ASSERT(l->stats.mem_bytes_live == 0);
    l->stats.mem_bytes_cached = 0;
    for (unsigned c = 0; c < LOOP_POOL_CLASSES; c++) {
        while (l->pool_free[c] != NULL) {
            struct free_node *n = l->pool_free[c];
            l->pool_free[c] = n->next;
            free(n);
        }
        l->pool_cached[c] = 0;
    }
    while (l->slabs != NULL) {
        struct loop_slab *s = l->slabs;
        l->slabs = s->next;
        free(s);
    }
    l->conn_free = l->req_free = l->tx_free = l->pipe_obj_free = NULL;
}
