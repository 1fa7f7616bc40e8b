/*
 * net/loop_int.h — what net/loop.c, net/conn.c, net/conn_tls.c and
 * net/loop_mem.c share. Not part of the API: only those files include it.
 *
 * A connection's requests form one FIFO in arrival order (head = oldest). A
 * request enters it when its frame is complete and leaves it when its answer
 * is fully sent (or it needs none); the frame being received is not in it
 * yet (conn->rx_req). req_count counts both, and is what conn_inflight_max
 * bounds. An rx_req whose bytes are not all in is on loop->partials (in the
 * order their prefixes came) and its buffer counts in stats.partial_bytes,
 * until it completes or its connection stops reading. A struct conn is
 * freed only when none of its ring ops is in flight.
 */
#ifndef NAGARE_NET_LOOP_INT_H
#define NAGARE_NET_LOOP_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "net/loop.h"

/* ---- intrusive circular doubly linked lists -------------------------- */

static inline void dl_init(struct loop_dl *h) { h->prev = h->next = h; }
static inline bool dl_empty(const struct loop_dl *h) { return h->next == h; }
static inline bool dl_linked(const struct loop_dl *n) { return n->next != NULL; }

static inline void dl_push(struct loop_dl *h, struct loop_dl *n)
{
    ASSERT(n->next == NULL);
    n->prev = h->prev;
    n->next = h;
    h->prev->next = n;
    h->prev = n;
}

static inline void dl_del(struct loop_dl *n)
{
    ASSERT(n->next != NULL);
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = NULL;
}

/* Moves every node of from to the end of to, leaving from empty. */
static inline void dl_splice(struct loop_dl *to, struct loop_dl *from)
{
    if (dl_empty(from)) {
        return;
    }
    from->next->prev = to->prev;
    from->prev->next = to;
    to->prev->next = from->next;
    to->prev = from->prev;
    dl_init(from);
}

/* ---- requests --------------------------------------------------------- */

enum req_state {
    REQ_RECV = 1, /* frame being received (conn->rx_req) */
    REQ_HANDLER,  /* handed to the handler, not completed */
    REQ_DONE,     /* completed: answer (or none) decided */
};

enum req_answer {
    ANS_NONE = 0, /* noreply */
    ANS_RESP,     /* prefix + answer bytes + ext parts */
    ANS_CLOSE,    /* close the connection when this reaches the head */
};

struct conn;
struct conn_tls;

struct loop_req {
    struct loop_req *next; /* conn FIFO */
    struct conn *conn;     /* NULL once orphaned */
    struct loop *loop;
    uint64_t conn_id;
    uint8_t listener;     /* its connection's */
    struct loop_dl olink; /* REQ_RECV: on loop->partials; REQ_HANDLER: on a
                            * closing connection's abort list */
    uint64_t rx_start_ns; /* when its length prefix came (on loop->partials) */
    uint8_t *frame;       /* pool buffer of frame_cap, or NULL */
    uint32_t frame_cap;   /* < frame_bytes only while REQ_RECV: it grows */
    uint32_t frame_bytes;
    uint32_t frame_got;
    uint8_t *resp; /* pool buffer of resp_cap, or NULL */
    size_t resp_cap;
    size_t resp_bytes;
    struct loop_ext *ext_head, *ext_tail;
    uint64_t ext_bytes;
    void (*on_abort)(struct loop_req *, void *);
    void *abort_arg;
    uint64_t handled_ns; /* when it went to the handler (with cfg.on_done) */
    uint16_t tag;        /* loop_req_set_tag() */
    uint8_t state;       /* enum req_state */
    uint8_t answer;      /* enum req_answer */
    uint8_t prefix[4];   /* big-endian length of the answer */
    bool framed;         /* the answer buffer holds its own prefix */
};

/* Bytes the answer puts on the wire (prefix included). */
static inline uint64_t req_wire_bytes(const struct loop_req *r)
{
    return (r->framed ? 0 : 4) + r->resp_bytes + r->ext_bytes;
}

/* ---- connections ------------------------------------------------------- */

enum conn_flag {
    CONN_RX_ARMED = 1 << 0,  /* a receive is in flight */
    CONN_RX_DIRECT = 1 << 1, /* ...straight into rx_req's frame */
    CONN_TX_ARMED = 1 << 2,  /* a sendmsg is in flight */
    CONN_CANCEL = 1 << 3,    /* a cancel is in flight */
    CONN_RX_STOP = 1 << 4,   /* read no more: drain answers, then close */
    CONN_CLOSING = 1 << 5,   /* tear down as soon as no op is in flight */
    CONN_DIRTY = 1 << 6,     /* on loop->dirty */
    CONN_MEMWAIT = 1 << 7,   /* on loop->memwait */
    CONN_RX_PAUSED = 1 << 8, /* not reading because of a bound */
    CONN_RECANCEL = 1 << 9,  /* cancel again when the current one is done */
    CONN_RX_MSHOT = 1 << 10, /* the armed receive is multishot */
    CONN_RX_EOF = 1 << 11,   /* peer sent FIN: serve what is parked, then stop */
    CONN_TX_POLL = 1 << 12,  /* ...the TX_ARMED op is a POLLOUT poll (splice hit EAGAIN) */
    CONN_PIPEWAIT = 1 << 13, /* on loop->pipewait */
};

/* A pipe a file part goes through: file -> pipe -> socket. Held by a
 * connection only while bytes sit in it; those bytes are the next ones of
 * the file part at the head of its queue. */
struct loop_pipe {
    struct loop_pipe *next_free;
    int rfd, wfd;
    uint32_t cap;   /* capacity (F_GETPIPE_SZ) */
    uint32_t bytes; /* spliced in, not yet out */
};

struct tx_batch {
    struct tx_batch *next_free;
    struct msghdr msg;
    struct iovec iov[LOOP_TX_IOV_MAX];
    uint64_t bytes;
};

struct conn {
    struct loop *loop;
    struct ring_op recv_op, send_op, cancel_op;
    struct loop_dl all, dirty, wait, pwait;
    struct loop_req *head, *tail; /* FIFO of complete requests */
    struct loop_req *rx_req;      /* frame being received */
    struct tx_batch *tx;          /* while a send is in flight */
    struct loop_pipe *pipe;       /* while a file part's bytes sit in it */
    uint8_t *stash;               /* received, not yet parsed (paused) */
    struct conn_tls *tls;         /* a TLS connection's state (net/conn_tls.c), or NULL */
    void *ctx;                    /* the caller's (loop_req_set_conn_ctx) */
    uint64_t id;
    uint64_t tx_queued_bytes; /* answers done and not yet sent */
    uint64_t tx_head_sent;    /* bytes of head's answer already sent */
    uint64_t rx_held_bytes;   /* frame bytes of live requests */
    uint32_t stash_cap, stash_off, stash_len;
    uint32_t req_count; /* FIFO + rx_req */
    int fd;
    int close_reason;
    uint16_t flags;
    uint8_t ops; /* ring ops in flight */
    uint8_t hdr_got;
    uint8_t hdr[4];
    uint8_t listener; /* index in loop->listeners */
};

/* Gathering an answer's pieces for sending (net/conn.c's fill_answer()). */
struct iov_fill {
    struct iovec *iov;
    size_t n;
    uint64_t skip;  /* bytes already sent, still to pass over */
    uint64_t bytes; /* gathered */
};

enum { FILL_DONE, FILL_FULL, FILL_FILE };

/* ---- net/loop_mem.c: buffers and fixed-size objects ----------------- */

/* A pool buffer of at least bytes (<= LOOP_FRAME_BYTES_CAP), or NULL when the
 * budget (cfg.mem_bytes_max) is spent — unless force — or malloc fails.
 * *cap_out gets its real size, to hand back to loop_mem_put(). */
void *loop_mem_get(struct loop *l, size_t bytes, bool force, size_t *cap_out);

/* Returns a buffer from loop_mem_get() and wakes connections waiting for
 * memory. */
void loop_mem_put(struct loop *l, void *p, size_t cap);

/* The real size loop_mem_get() gives for bytes (<= LOOP_FRAME_BYTES_CAP). */
size_t loop_mem_cap(size_t bytes);

/* Frees every cached buffer and slab. */
void loop_mem_fini(struct loop *l);

struct conn *loop_conn_get(struct loop *l);
void loop_conn_put(struct loop *l, struct conn *c);
struct loop_req *loop_req_get(struct loop *l);
void loop_req_put(struct loop *l, struct loop_req *r);
struct tx_batch *loop_tx_get(struct loop *l);
void loop_tx_put(struct loop *l, struct tx_batch *t);

/* An empty pipe (cached, or a new one of about cfg.pipe_bytes), or NULL
 * when pipe2 fails (-errno in *err). */
struct loop_pipe *loop_pipe_get(struct loop *l, int *err);
/* Takes back a pipe: cached when empty and the cache has room, else
 * closed. Wakes connections waiting for one. */
void loop_pipe_put(struct loop *l, struct loop_pipe *p);

/* ---- net/conn.c ------------------------------------------------------- */

/* Takes over fd (an accepted socket) as a new connection. Returns 0, or
 * -ENOMEM (fd closed). */
int conn_open(struct loop *l, int fd, uint8_t listener);

/* Puts c on loop->dirty (idempotent): conn_kick() runs before the next
 * wait. */
void conn_dirty(struct conn *c);

/* Moves c forward: sends finished answers, re-arms reading, closes. May free
 * c. Called only from loop_flush(). */
void conn_kick(struct conn *c);

/* Stops reading; c closes once its in-flight answers are sent. */
void conn_rx_stop(struct conn *c, int reason);

/* Tears c down now: cancels its ops, orphans requests held by the handler. */
void conn_abort(struct conn *c, int reason);

/* Frames the plaintext p[0..n) (as a receive brought it), parking what the
 * bounds leave. */
void conn_rx_input(struct conn *c, const uint8_t *p, size_t n);

/* Gathers r's answer into f: prefix, then its buffer with the ext parts
 * spliced in. FILL_FULL when the array filled up first; FILL_FILE at a file
 * part not wholly sent yet: *file is it, and f->skip its bytes already sent
 * when nothing was gathered before it. */
int fill_answer(struct iov_fill *f, struct loop_req *r, struct loop_ext **file);

/* Pops finished requests with nothing (left) to send from the head; an
 * ANS_CLOSE there closes c. */
void conn_pop_finished(struct conn *c);

/* sent bytes of the head answers are on their way: retire the answers they
 * finish. */
void conn_tx_consume(struct conn *c, uint64_t sent);

/* Whether a line about closing a connection may be logged now (at most
 * LOOP_SHED_LOG_PER_SEC a second); when it may, more[0..cap) says how many
 * were not logged before it. */
bool loop_close_log_turn(struct loop *l, char *more, size_t cap);

/* "a.b.c.d:port" (or "[v6]:port") of c's peer, or "?". */
void conn_peer_name(const struct conn *c, char *out, size_t cap);

/* ---- net/conn_tls.c: TLS connections (net/loop.h, "TLS") ------------- */

/* Makes c, just accepted, a TLS connection of ctx, handshaking. Returns 0
 * or -ENOMEM. */
int conn_tls_open(struct conn *c, struct ssl_ctx_st *ctx);

/* Frees c's TLS state (c is closing). */
void conn_tls_free(struct conn *c);

/* Ciphertext p[0..n) received on c: decrypted and framed as far as the
 * bounds allow, the rest kept. */
void conn_tls_input(struct conn *c, const uint8_t *p, size_t n);

/* Decrypts and frames what c holds while nothing is parked (resuming). */
void conn_tls_decrypt(struct conn *c);

/* c's send side: ciphertext out, then the next round of answers encrypted. */
void conn_tls_tx_pump(struct conn *c);

/* c's send completed with res. */
void conn_tls_send_done(struct conn *c, int res);

/* Whether c has sent everything, its close_notify included (queued now if
 * owed): it may close. */
bool conn_tls_drained(struct conn *c);

/* loop->handshake_timer's callback (arg: the loop): closes connections
 * whose handshake is older than cfg.tls_handshake_timeout_ms. */
void conn_tls_handshake_expire(struct loop_timer *t, void *arg);

/* The provided buffer bid goes back to the kernel. */
void loop_rxbuf_put(struct loop *l, uint16_t bid);

/* loop->partial_timer's callback (arg: the loop): closes the connections
 * whose frames have been incomplete for cfg.partial_timeout_ms, and arms
 * itself for the next one due. */
void conn_partial_expire(struct loop_timer *t, void *arg);

#endif
