/*
 * net/loop.h — the broker's event loop: listen, accept, framed requests in,
 * responses out, timers, shutdown. Everything goes through the worker's
 * base/ring.h ring (kind RING_NET), which the storage engine shares.
 *
 * Invariants. A struct loop belongs to the thread that called loop_init(); only
 * loop_post() and loop_stop_async() may be called from elsewhere. Requests on
 * one connection are answered in the order they arrived, whatever order their
 * handlers finish in. Every buffer the loop holds is bounded by a limit below
 * (LOOP_* and struct loop_cfg): a connection that reaches a bound stops being
 * read from until it drains — no new receive is armed, so the kernel's socket
 * buffer and then TCP push back on the client; what a receive armed before
 * still brings (at most rx_mshot_bytes + one buffer) is parked, not framed.
 * An idle connection costs one struct conn (about 230 bytes) and one armed
 * receive that holds no buffer. File parts of answers are bounded by count
 * (cfg.file_parts_max), and a connection holds a pipe only while spliced
 * bytes wait in it for room in its socket. A peer's EOF ends reading only after every
 * request already received has been answered (half-close works).
 *
 * Framing: a request or response frame is a u32 big-endian length followed by
 * that many bytes. A request longer than cfg.frame_bytes_max is refused before
 * anything is allocated for it: the connection stops reading, sends the
 * answers it owes, and closes.
 *
 * Frames being received (partial frames: length prefix in, body not all
 * there) never hold memory for bytes that have not arrived: a frame's
 * buffer starts at cfg.conn_partial_bytes (or the whole frame when it
 * arrives at once) and grows, at least doubling, to what has arrived,
 * waiting in the kernel included. Together they stay within
 * cfg.partial_bytes_max: a frame that would pass it closes the connections
 * whose frames began longest ago. A frame still incomplete after
 * cfg.partial_timeout_ms closes its connection. Either way the connection
 * reads no more and closes once the answers it is owed are sent; each is
 * logged and counted (struct loop_stats). So what a few connections claim
 * never holds back new clients or complete requests.
 *
 * Requests. For each complete frame the loop calls cfg.on_request with a
 * struct loop_req (a pending-response slot). The handler, then or any number
 * of loop iterations later, completes it exactly once with loop_req_respond(),
 * loop_req_noreply() or loop_req_fail(). The frame bytes stay valid and
 * unmoved until that call, even if the connection closes meanwhile (the slot
 * is then orphaned: completing it just frees it).
 *
 * Receive path: ring-provided buffers (one buffer group per loop) shared by
 * all connections, copied into a per-request buffer from a size-classed pool
 * and returned to the kernel at once; the body of a large frame is received
 * straight into its request buffer. That buffer grows as the body arrives
 * (above), each growth copying what it holds: a frame whose bytes keep
 * coming is sized for all that has arrived at once, so a fast client's
 * frame grows about once and copies at most conn_partial_bytes; one that
 * trickles in copies less than twice its length in all. Multishot receive
 * is used with a per-arm byte cap (sqe->optlen, Linux >= 6.17) so that a connection that must stop
 * reading holds at most cap + one buffer of overshoot; on older kernels the
 * loop falls back to one-shot receives (same bound, one buffer).
 *
 * TLS (net/conn_tls.c). A listener given a TLS context (loop_listener_tls())
 * serves TLS 1.2 and 1.3 through OpenSSL on memory buffers, without ever
 * blocking the loop: received ciphertext goes into the connection's read
 * buffer, SSL_read hands plaintext to the framing above (no direct
 * receives), and answers, file parts included (read with pread: no
 * splice), are encrypted at most LOOP_TLS_TX_ROUND_BYTES at a time and sent
 * once the previous round's ciphertext is out. Decryption stops while
 * parked bytes wait, so a paused TLS connection holds what a plain one
 * does plus the ciphertext its last receive brought; ciphertext held in
 * OpenSSL's buffers counts in mem_bytes_live. A handshake not finished
 * within cfg.tls_handshake_timeout_ms closes its connection; one that fails
 * (plaintext on a TLS port, TLS 1.1, an untrusted client certificate) sends
 * OpenSSL's alert and closes at once.
 */
#ifndef NAGARE_NET_LOOP_H
#define NAGARE_NET_LOOP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/assert.h"
#include "base/ring.h"

/* ---- Limits: every maximum of the network layer, in one place ----------
 *
 * Defaults are what loop_cfg_default() fills in; caps are hard limits that
 * loop_init() enforces on any configuration. */

/* Largest request frame (bytes after the 4-byte prefix): room for a produce
 * request carrying many 1 MiB batches. A large default costs nothing up
 * front: what incomplete frames may hold is bounded apart (partial_bytes_max). */
#define LOOP_FRAME_BYTES_MAX_DEFAULT (64u << 20)
/* Hard cap on any frame, request or response. The prefix could say 4 GiB;
 * 1 GiB keeps every length a positive int (sqe len, cqe res). */
#define LOOP_FRAME_BYTES_CAP (1u << 30)

/* Open connections per loop: room above the 10,000 idle connections a broker
 * holds while serving the others (tests/test_robust.c); each costs ~210
 * bytes here plus the kernel's socket (a few KiB) and one fd. */
#define LOOP_CONN_MAX_DEFAULT 16384u

/* Requests per connection received and not yet answered (handed to the
 * handler, or answered and not yet sent). Kafka clients default to 5 in
 * flight; 64 lets a pipelining producer keep group commit busy. A slot is
 * ~140 bytes, taken from a pool only while the request lives. */
#define LOOP_CONN_INFLIGHT_MAX_DEFAULT 64u
#define LOOP_CONN_INFLIGHT_CAP 4096u

/* Request bytes one connection may hold (frames whose handlers have not
 * completed). Reading stops before a frame that would pass it, except that a
 * connection holding nothing may always take one frame up to the max. */
#define LOOP_CONN_RX_BYTES_MAX_DEFAULT (64ull << 20)

/* Answer bytes one connection may have queued and unsent. At or above it the
 * connection stops being read from (a client that does not read its answers).
 * Checked before each new request, so it can be passed by the answers to
 * requests already in flight: at most inflight_max answers. */
#define LOOP_CONN_TX_BYTES_MAX_DEFAULT (16ull << 20)

/* Request and answer buffers of all connections of a loop together (live plus
 * cached for reuse). A request that would pass it waits, with its connection
 * paused, until memory comes back. 1 GiB: a 24 GiB machine, two workers, and
 * room for the page cache the logs live in. */
#define LOOP_MEM_BYTES_MAX_DEFAULT (1ull << 30)

/* Buffers of all frames being received in a loop together (partial frames,
 * above). 256 MiB: a quarter of mem_bytes_max, so incomplete frames can
 * never take the memory complete requests and their answers need; room for
 * four frames of the default maximum arriving at once, or 256 produce
 * requests of 1 MiB, or 4,096 connections stalled after their length
 * prefix (conn_partial_bytes each). Past it the oldest are shed, never new
 * ones refused. At least twice frame_bytes_max (one frame of the
 * maximum always fits, rounded up in the pool); at most mem_bytes_max. */
#define LOOP_PARTIAL_BYTES_MAX_DEFAULT (256ull << 20)
static_assert(LOOP_PARTIAL_BYTES_MAX_DEFAULT >= 2ull * LOOP_FRAME_BYTES_MAX_DEFAULT &&
                  LOOP_PARTIAL_BYTES_MAX_DEFAULT <= LOOP_MEM_BYTES_MAX_DEFAULT / 4,
              "the default holds a maximum frame and leaves most memory to complete requests");

/* What one connection's frame being received may hold before its bytes
 * arrive: its buffer starts this big (smaller frames at their size) and
 * then grows with what has arrived. Per connection, a partial frame thus
 * holds at most max(this, 2 x (its bytes received + rx_buf_bytes)), never
 * more than its own length rounded up to a power of two. 64 KiB: one multishot receive's worth (what typically
 * arrives with the length prefix), so frames up to it are never grown;
 * 4,096 connections stalled after their prefix fill partial_bytes_max. */
#define LOOP_CONN_PARTIAL_BYTES_DEFAULT (64u << 10)

/* A frame still incomplete this long after its length prefix arrived
 * closes its connection. 30 s: Kafka's request.timeout.ms default, after
 * which the client has given the request up anyway; a 64 MiB frame needs
 * only about 2 MB/s to make it. */
#define LOOP_PARTIAL_TIMEOUT_MS_DEFAULT 30000u

/* A TLS handshake not finished this long after the connection was
 * accepted closes it. 10 s: a handshake is two round trips; this leaves
 * room for a slow link and a busy client, while a client that connects and
 * never speaks (or trickles a ClientHello) holds its few KiB only that long. */
#define LOOP_TLS_HANDSHAKE_TIMEOUT_MS_DEFAULT 10000u

/* Plaintext a TLS connection encrypts per round (its ciphertext is sent
 * before the next round): what one TLS connection holds of answers in
 * encrypted form, besides what tx_bytes_max bounds. 256 KiB: 16 records,
 * one send buffer of this class. */
#define LOOP_TLS_TX_ROUND_BYTES (256u << 10)

/* The loop's one buffer SSL_read decrypts into and file parts are read
 * into for encryption: a few TLS records' worth (a record is <= 16 KiB). */
#define LOOP_TLS_SCRATCH_BYTES (64u << 10)

/* Lines a loop logs per second about connections it sheds (partial frames
 * over their bound or their time); the rest are counted in the next line
 * and in struct loop_stats. */
#define LOOP_SHED_LOG_PER_SEC 10u

/* An answer buffer this small ignores mem_bytes_max, so a handler can always
 * send an error answer. Bounded by conn_max * inflight_max of them. */
#define LOOP_RESP_RESERVE_BYTES 4096u

/* Provided receive buffers: rx_buf_count buffers of rx_buf_bytes, fixed at
 * loop_init (8 MiB by default, outside mem_bytes_max). A buffer is copied
 * from and handed back to the kernel as soon as its completion is handled,
 * so the ring only runs dry if more receives than rx_buf_count complete in
 * one batch; they then finish with -ENOBUFS and are re-armed. 16 KiB: one
 * completion carries many small pipelined requests; bigger bodies skip these
 * buffers and go straight to their request buffer. */
#define LOOP_RX_BUF_BYTES_DEFAULT (16u << 10)
#define LOOP_RX_BUF_COUNT_DEFAULT 512u
#define LOOP_RX_BUF_COUNT_CAP 32768u /* io_uring's buffer ring maximum */

/* Bytes one multishot receive may deliver before it must be re-armed (0: use
 * one-shot receives). It bounds what a connection that has to stop reading
 * can still receive: cap + one buffer, kept in its stash. */
#define LOOP_RX_MSHOT_BYTES_DEFAULT (64u << 10)

/* iovecs gathered into one sendmsg: answers queued on a connection go out
 * together, up to this many pieces (an answer is 2 + 2 per external part). */
#define LOOP_TX_IOV_MAX 64

/* File parts (loop_resp_file) alive at once in a loop. Each holds its
 * caller's descriptor (a dup of a segment file, say) until it is sent, and a
 * connection sending one may hold a pipe (two more): 1,024 of them keep a
 * flood of fetches that clients never read within a few thousand
 * descriptors. Past it loop_resp_file() refuses and the caller copies the
 * bytes into the answer instead, under mem_bytes_max. loop_init() lowers
 * it to an eighth of the process's descriptor limit (RLIMIT_NOFILE, at
 * least 16), so that parts and their pipes cannot take the descriptors a
 * segment roll or an accept needs. */
#define LOOP_FILE_PARTS_MAX_DEFAULT 1024u
#define LOOP_FILE_PARTS_FD_SHARE 8u

/* Capacity asked of each pipe a file part is spliced through (F_SETPIPE_SZ;
 * the kernel's default, 64 KiB, is kept when it refuses): one pair of
 * splices moves at most this. 256 KiB: 4 pairs per MiB sent, and 256 pipes
 * fit an unprivileged user's fs.pipe-user-pages-soft (64 MiB). */
#define LOOP_PIPE_BYTES_DEFAULT (256u << 10)
#define LOOP_PIPE_BYTES_MIN 4096u
#define LOOP_PIPE_BYTES_CAP (16u << 20)

/* Empty pipes kept for the next file part rather than closed. A
 * connection holds a pipe only while bytes sit in it (its socket is full),
 * so a few serve every connection that is sending. */
#define LOOP_PIPE_CACHE 16u

/* After pipe2 fails (EMFILE, ENFILE), connections waiting for a pipe try
 * again this long after, or as soon as any pipe is let go. */
#define LOOP_PIPE_RETRY_MS 100u

/* Spliced bytes one connection sends per kick before the others get their
 * turn (a consumer that keeps up would otherwise keep the loop). */
#define LOOP_SPLICE_BYTES_PER_KICK (4u << 20)

/* Kernel socket buffers of accepted connections (SO_RCVBUF / SO_SNDBUF, set
 * on the listener and inherited), like Kafka's socket.*.buffer.bytes. 0, the
 * default, leaves them to the kernel's autotuning (up to tcp_rmem/tcp_wmem
 * max), which is what fast clients want; a fixed size also fixes how much a
 * client that stops reading can park in the kernel beyond our own bounds. */
#define LOOP_SOCK_BUF_BYTES_DEFAULT 0u

/* On loop_stop(), connections get this long to finish in-flight requests and
 * flush answers before they are cut. */
#define LOOP_DRAIN_TIMEOUT_MS_DEFAULT 10000u

/* After accept fails (EMFILE, ENFILE, ENOMEM), wait this long before trying
 * again rather than spinning. */
#define LOOP_ACCEPT_RETRY_MS 100u

/* Listening sockets per loop: nagare's protocol and Kafka's today, room for
 * TLS variants of both. A connection knows which one accepted it
 * (loop_req_listener()), so one loop serves every protocol. */
#define LOOP_LISTENERS_MAX 4u

/* The provided-buffer group id the loop registers on its ring. Anything else
 * that registers a buffer ring on the same ring must use another id. */
#define LOOP_BUF_GROUP 0x4e4cu

/* ---- Types ---------------------------------------------------------------- */

struct loop;
struct loop_req; /* opaque: a request and its pending response */

/* Called on the loop thread with each complete request. The handler must
 * complete req exactly once (now or later) with loop_req_respond(),
 * loop_req_noreply() or loop_req_fail(). */
typedef void (*loop_request_fn)(void *arg, struct loop_req *req);

/* Called on the loop thread after a connection is gone (optional). ctx: what
 * loop_req_set_conn_ctx() last kept with it (NULL if nothing), now the
 * callback's to release. reason: 0 for an orderly close (peer EOF,
 * loop_stop), else -errno or -NG_E* (e.g. -NG_ETOOBIG for an oversized
 * frame, -ECONNRESET). */
typedef void (*loop_close_fn)(void *arg, uint64_t conn_id, void *ctx, int reason);

/* Called on the loop thread when the handler completes a request (respond,
 * noreply or fail; optional): tag is what loop_req_set_tag() named it (0 if
 * nothing), handler_ns the time from handing it to the handler to then,
 * failed whether it was loop_req_fail(). For counting requests by kind. */
typedef void (*loop_done_fn)(void *arg, uint16_t tag, uint64_t handler_ns, bool failed);

struct loop_cfg {
    uint32_t frame_bytes_max;   /* 1 .. LOOP_FRAME_BYTES_CAP */
    uint32_t conn_max;          /* >= 1 */
    uint32_t conn_inflight_max; /* 1 .. LOOP_CONN_INFLIGHT_CAP */
    uint64_t conn_rx_bytes_max;
    uint64_t conn_tx_bytes_max;
    uint64_t mem_bytes_max;      /* >= 2 x frame_bytes_max */
    uint64_t partial_bytes_max;  /* 2 x frame_bytes_max .. mem_bytes_max */
    uint32_t conn_partial_bytes; /* 1 .. LOOP_FRAME_BYTES_CAP */
    uint32_t partial_timeout_ms; /* >= 1 */
    uint32_t rx_buf_bytes;       /* 512 .. 1 MiB */
    uint32_t rx_buf_count;       /* power of two, 1 .. LOOP_RX_BUF_COUNT_CAP */
    uint32_t rx_mshot_bytes;     /* 0: one-shot receives */
    uint32_t sock_rcvbuf_bytes;  /* 0: kernel autotuning */
    uint32_t sock_sndbuf_bytes;  /* 0: kernel autotuning */
    uint32_t drain_timeout_ms;
    uint32_t file_parts_max;           /* >= 1 */
    uint32_t pipe_bytes;               /* LOOP_PIPE_BYTES_MIN .. LOOP_PIPE_BYTES_CAP */
    uint32_t tls_handshake_timeout_ms; /* >= 1 */
    loop_request_fn on_request;        /* required */
    loop_close_fn on_close;            /* optional */
    loop_done_fn on_done;              /* optional */
    void *arg;                         /* passed to both */
};

/* Fills cfg with the defaults above and no callbacks. */
void loop_cfg_default(struct loop_cfg *cfg);

/* A timer, embedded in its owner. Initialise with loop_timer_init(); the
 * fields are the loop's. */
struct loop_timer;
typedef void (*loop_timer_fn)(struct loop_timer *t, void *arg);
struct loop_timer {
    struct loop_timer *child, *next, *prev; /* pairing heap */
    uint64_t deadline_ns;
    loop_timer_fn fn;
    void *arg;
    bool armed;
};

/* A message for loop_post(), embedded in its owner. */
struct loop_msg;
typedef void (*loop_msg_fn)(struct loop_msg *m, void *arg);
struct loop_msg {
    struct loop_msg *next; /* the loop's */
    loop_msg_fn fn;
    void *arg;
};

/* Caller-owned bytes spliced into a response without copying: a memory
 * part (ptr, len: loop_resp_ext) or a file part (len bytes of fd from off:
 * loop_resp_file, e.g. record batches straight from a segment file, which
 * go file -> pipe -> socket with splice(2) and never pass through user
 * memory). Set those fields and release; the rest is the loop's. release
 * runs exactly once on the loop thread when the loop no longer needs the
 * bytes (sent, or the connection is gone); it must not call loop_req_* on
 * the request it belonged to. A file part's fd must stay open, and its
 * bytes unchanged, until then (a dup of the file is the simple way: the
 * file may then be closed or unlinked meanwhile). */
struct loop_ext;
typedef void (*loop_ext_release_fn)(struct loop_ext *ext);
struct loop_ext {
    const void *ptr; /* memory part */
    size_t len;
    int fd;                      /* file part */
    uint64_t off;                /* file part */
    loop_ext_release_fn release; /* may be NULL */
    struct loop_ext *next;       /* the loop's */
    size_t at;                   /* the loop's */
    bool file;                   /* the loop's */
};

/* Counters, read with loop_stats() on the loop thread. */
struct loop_stats {
    uint64_t conns; /* open now */
    uint64_t conns_accepted;
    uint64_t conns_refused; /* over conn_max, or arrived while stopping */
    uint64_t accept_errors;
    uint64_t frames_in;      /* requests handed to the handler */
    uint64_t frames_refused; /* oversized length: connection closed */
    uint64_t resps_out;      /* answers fully sent */
    uint64_t reqs_live;      /* slots not yet freed (incl. orphans) */
    uint64_t rx_bytes;       /* received from sockets */
    uint64_t tx_bytes;       /* sent to sockets */
    uint64_t rx_pauses;      /* times a connection stopped being read */
    uint64_t rx_nobufs;      /* receives that found no provided buffer */
    uint64_t mem_bytes_live; /* request + answer + stash buffers in use */
    uint64_t mem_bytes_cached;
    uint64_t mem_bytes_peak;
    uint64_t mem_waits;        /* times a request waited for memory */
    uint64_t partial_frames;   /* frames being received now (prefix in, body not) */
    uint64_t partial_bytes;    /* their buffers (of mem_bytes_live) */
    uint64_t partial_shed;     /* connections closed: partial frames over partial_bytes_max */
    uint64_t partial_timeouts; /* connections closed: a frame incomplete past its time */
    uint64_t file_parts_live;  /* file parts not yet released */
    uint64_t pipes_live;       /* pipes open (held or cached) */
    uint64_t pipes_cached;     /* empty pipes kept for reuse */
    uint64_t pipe_waits;       /* times a connection found no pipe */
    uint64_t tx_spliced_bytes; /* of tx_bytes, sent from files by splice */
    uint64_t tls_conns;        /* TLS connections open now */
    uint64_t tls_handshakes;   /* TLS handshakes completed */
    uint64_t tls_failures;     /* TLS connections closed by a TLS error (bad handshake, ...) */
    uint64_t tls_handshake_timeouts; /* closed: handshake past tls_handshake_timeout_ms */
    uint64_t tls_bytes;              /* ciphertext in OpenSSL's buffers (of mem_bytes_live) */
    bool rx_multishot;               /* multishot receive in use */
};

/* ---- The loop (fields private; embedded by the caller) ---------------- */

#define LOOP_POOL_CLASSES 23 /* 256 B .. 1 GiB, powers of two */

struct loop_dl {
    struct loop_dl *prev, *next;
};

struct loop_slab;  /* internal */
struct ssl_ctx_st; /* OpenSSL's SSL_CTX (net/tls.h) */
struct loop_pipe;  /* internal */

/* One listening socket and its multishot accept (fields private). */
struct loop_listener {
    struct loop *loop;
    int fd; /* -1 once closed */
    struct ring_op accept_op, accept_cancel_op;
    bool armed, cancelling;
    struct loop_timer retry;
    struct ssl_ctx_st *tls; /* NULL: plaintext; else new connections' context (a reference) */
};

struct loop {
    struct ring *ring;
    struct loop_cfg cfg;
    uint64_t now_ns;

    /* listeners, numbered in the order loop_listen() opened them */
    struct loop_listener listeners[LOOP_LISTENERS_MAX];
    uint32_t listener_count;

    /* provided receive buffers */
    struct io_uring_buf_ring *br;
    size_t br_bytes;
    uint8_t *rx_bufs;
    bool br_registered;
    bool rx_mshot;

    /* connections */
    struct loop_dl conns;    /* all open */
    struct loop_dl dirty;    /* need a kick before the next wait */
    struct loop_dl memwait;  /* waiting for pool memory */
    struct loop_dl partials; /* frames being received, oldest first */
    struct loop_timer partial_timer;
    struct loop_dl handshakes; /* TLS connections handshaking, oldest first */
    struct loop_timer handshake_timer;
    uint8_t *tls_scratch; /* LOOP_TLS_SCRATCH_BYTES, made on first use */
    uint64_t conn_seq;

    /* what loop_stats does not show: the shed log's rate limit */
    uint64_t shed_log_sec;     /* the second its lines count against */
    uint32_t shed_log_lines;   /* lines logged in it */
    uint64_t shed_log_skipped; /* sheds not logged since the last line */

    /* pools */
    void *pool_free[LOOP_POOL_CLASSES];
    uint64_t pool_cached[LOOP_POOL_CLASSES];
    void *conn_free, *req_free, *tx_free, *pipe_obj_free; /* fixed-size free lists */
    struct loop_slab *slabs;

    /* pipes for file parts */
    struct loop_pipe *pipes; /* cached, empty */
    struct loop_dl pipewait; /* connections waiting for a pipe */
    struct loop_timer pipe_retry;

    /* timers */
    struct loop_timer *timers; /* pairing heap root */

    /* cross-thread mailbox and stop */
    int efd;
    uint64_t efd_val;
    struct ring_op efd_op, efd_cancel_op;
    bool efd_armed, efd_cancelling;
    pthread_mutex_t mbox_lock;
    struct loop_msg *mbox_head, *mbox_tail;
    atomic_bool stop_requested;
    atomic_int stop_writers; /* loop_stop_async() calls inside their write */

    /* shutdown */
    bool stopping, stopped;
    struct loop_timer drain_timer;

    struct loop_stats stats;
};

/* ---- Lifetime ------------------------------------------------------------ */

/* Initialises l in place on ring r (owned by the caller, initialised by this
 * thread, outliving l) with a copy of cfg. Registers the provided buffer ring
 * (LOOP_BUF_GROUP) on r and arms the mailbox. Sets SIGPIPE to be ignored
 * when it has its default action (file parts are spliced to sockets, and
 * splice has no MSG_NOSIGNAL). Returns 0, -NG_EBADARG for a
 * configuration out of range, or -errno (-ENOMEM, eventfd or buffer ring
 * registration failure); on failure l holds nothing. Loop thread: the caller
 * becomes it. */
MUST_USE int loop_init(struct loop *l, struct ring *r, const struct loop_cfg *cfg);

/* Listens on host:port (a numeric address or a name; port 0 picks a free one)
 * and starts accepting through the ring (multishot accept). *port_out, when
 * not NULL, receives the bound port. Listeners are numbered 0, 1, ... in the
 * order their loop_listen() succeeded; loop_req_listener() tells a request's.
 * Returns 0, -NG_EBADARG when host does not resolve, or -errno
 * (-EADDRINUSE, -EACCES, ...). Preconditions: fewer than LOOP_LISTENERS_MAX
 * listeners, not stopping. Loop thread. */
MUST_USE int loop_listen(struct loop *l, const char *host, uint16_t port, uint16_t *port_out);

/* Makes listener (numbered as loop_listen() says) serve TLS with ctx, or
 * plaintext with NULL, from its next accepted connection on: the loop takes
 * a reference to ctx (the caller keeps its own) and drops the one it held.
 * Connections already open keep the context they began with, so calling it
 * again with a new context reloads certificates without a restart. Loop
 * thread. */
void loop_listener_tls(struct loop *l, uint32_t listener, struct ssl_ctx_st *ctx);

/* Runs the loop until loop_stop() has finished: every connection closed, the
 * listener closed. Requests orphaned by a cut connection may still be held by
 * handlers then. Returns 0, or -errno when the ring fails. Loop thread. */
MUST_USE int loop_run(struct loop *l);

/* One iteration: fires due timers, sends and re-arms what is pending, waits
 * up to timeout_ms (-1: until something happens or a timer is due) for ring
 * completions and handles them. For callers that drive the ring themselves.
 * Returns 0 or -errno from the ring. Loop thread. */
MUST_USE int loop_run_once(struct loop *l, int timeout_ms);

/* Starts an orderly shutdown: stop accepting, stop reading, let in-flight
 * requests finish and their answers go out, then close each connection; after
 * cfg.drain_timeout_ms the rest are cut. Idempotent. Loop thread (a handler or
 * timer may call it). */
void loop_stop(struct loop *l);

/* loop_stop() from any thread, or from a signal handler (async-signal-safe:
 * atomics and a write to an eventfd). Only the first call wakes the loop;
 * loop_fini() waits for a call still writing, so its eventfd is never
 * written after it was closed. Calls after loop_fini() are not allowed. */
void loop_stop_async(struct loop *l);

/* Releases everything l holds and unregisters its buffer ring. If l is not
 * stopped yet, stops it and runs the ring until it is (any other op's
 * callbacks may run meanwhile). Runs messages still in the mailbox.
 * Preconditions: no request slot still held by a handler (stats.reqs_live ==
 * 0: a handler waiting on storage must finish first — keep calling
 * loop_run_once(), which works after the stop too); no caller timer armed.
 * Loop thread. */
void loop_fini(struct loop *l);

/* Copies the counters into *out. Loop thread. */
void loop_stats(struct loop *l, struct loop_stats *out);

/* ---- Time and timers ---------------------------------------------------- */

/* CLOCK_MONOTONIC in milliseconds, as of the current iteration. Loop thread. */
uint64_t loop_now_ms(const struct loop *l);

/* Prepares t to call fn(t, arg) on the loop thread when it fires. t is
 * caller-owned and must stay valid while armed. */
void loop_timer_init(struct loop_timer *t, loop_timer_fn fn, void *arg);

/* Arms t to fire once, delay_ms from now (0: in the next iteration); re-arming
 * an armed timer moves it. Never fails. Loop thread; fn may arm or cancel any
 * timer, including t. */
void loop_timer_arm(struct loop *l, struct loop_timer *t, uint64_t delay_ms);

/* Disarms t; returns whether it was armed. Loop thread. */
bool loop_timer_cancel(struct loop *l, struct loop_timer *t);

static inline bool loop_timer_armed(const struct loop_timer *t) { return t->armed; }

/* ---- Cross-thread --------------------------------------------------------- */

/* Queues m to run m->fn(m, m->arg) on l's thread soon. Any thread. m is owned
 * by the loop from now until fn is called; set fn and arg first. Posts made
 * close together share one wakeup. Messages still queued when the loop stops
 * run in loop_fini(). */
void loop_post(struct loop *l, struct loop_msg *m);

/* ---- Requests ------------------------------------------------------------- *
 * All loop thread. req is valid from the on_request call until the call that
 * completes it (respond, noreply or fail); using it afterwards is a bug. */

/* The request frame (the bytes after the length prefix); *len_out gets its
 * length (0 allowed, then the pointer is still not NULL). Valid until req is
 * completed, connection closed or not. */
const uint8_t *loop_req_frame(const struct loop_req *req, size_t *len_out);

/* A number naming the connection req came on, unique within the loop. */
uint64_t loop_req_conn_id(const struct loop_req *req);

/* The peer's address of req's connection, numeric ("127.0.0.1", "::1"),
 * into out[0..cap). Returns 0, or -ENOTCONN when the connection is gone,
 * or getpeername's -errno. */
MUST_USE int loop_req_peer(const struct loop_req *req, char *out, size_t cap);

/* The listener that accepted req's connection (numbered as loop_listen()
 * says). */
uint32_t loop_req_listener(const struct loop_req *req);

/* Whether req's connection is a TLS one (false once it is gone). */
bool loop_req_tls(const struct loop_req *req);

/* The subject of the client certificate req's connection showed and the
 * listener's CA verified (RFC 2253, net/tls.h's tls_peer_subject()), into
 * out[0..cap). Returns 0, -ENOENT when there is none (no TLS, no
 * certificate asked for or shown), -NG_ETOOBIG when it does not fit, or
 * -ENOTCONN when the connection is gone. */
MUST_USE int loop_req_tls_peer(const struct loop_req *req, char *out, size_t cap);

/* A pointer the caller keeps with req's connection, e.g. who the peer has
 * proven to be: NULL until loop_req_set_conn_ctx() sets it, and NULL once
 * the connection is gone (req orphaned). Handed to cfg.on_close when the
 * connection closes, which must then release it; a loop without on_close
 * may only keep NULL. */
void *loop_req_conn_ctx(const struct loop_req *req);

/* Sets req's connection's pointer (above). The connection must still be
 * open: call it from on_request, or after checking loop_req_conn_ctx's
 * connection is there with loop_req_connected(). */
void loop_req_set_conn_ctx(struct loop_req *req, void *ctx);

/* Names req's kind for cfg.on_done (e.g. its protocol and api), and
 * what it was last named (0 until then). */
void loop_req_set_tag(struct loop_req *req, uint16_t tag);
uint16_t loop_req_tag(const struct loop_req *req);

/* Whether req's connection is still open (req not orphaned). */
bool loop_req_connected(const struct loop_req *req);

/* fn(req, arg) is called once if the connection is torn down while the
 * handler holds req (reset, error, drain timeout), so a long wait can end
 * early. The handler must still complete req (it may do so inside fn). */
void loop_req_on_abort(struct loop_req *req, void (*fn)(struct loop_req *, void *), void *arg);

/* Gives the answer buffer for req, room for cap bytes of payload (the loop
 * adds the length prefix). Called again, it moves to a buffer of the new cap
 * keeping the first min(old, new) bytes. The buffer belongs to req: valid
 * until req is completed. Returns 0 and *out, -NG_ETOOBIG when cap exceeds
 * LOOP_FRAME_BYTES_CAP, or -ENOMEM when the loop's memory budget is spent
 * (never for cap <= LOOP_RESP_RESERVE_BYTES). */
MUST_USE int loop_resp_buf(struct loop_req *req, size_t cap, uint8_t **out);

/* Splices ext's bytes into the answer at offset `at` of the answer buffer
 * (the bytes before `at` go first). Calls must come in non-decreasing `at`
 * order, each at <= the final length. ext is the loop's until its release
 * runs. */
void loop_resp_ext(struct loop_req *req, struct loop_ext *ext, size_t at);

/* Splices the file part ext (fd, off, len, release set by the caller) into
 * the answer at offset `at`, with loop_resp_ext()'s ordering rule. Returns
 * 0 (ext is the loop's until its release runs), or -NG_EBUSY when
 * cfg.file_parts_max parts are alive: ext is not taken, and the caller
 * sends the bytes another way. The frame's length is promised before the
 * bytes are read: if the file cannot give them (shorter than off + len, a
 * read error), the connection is closed. */
MUST_USE int loop_resp_file(struct loop_req *req, struct loop_ext *ext, size_t at);

/* File parts loop_resp_file() would still take now. */
uint32_t loop_resp_file_room(const struct loop_req *req);

/* Completes req with an answer: the first len bytes of the answer buffer (0
 * when there is none) with the ext parts spliced in. The frame is freed now;
 * the answer goes out after all earlier answers on the connection. */
void loop_req_respond(struct loop_req *req, size_t len);

/* Like loop_req_respond(), for an answer buffer that already holds one
 * whole frame, its u32 length prefix included (what the net/proto.h
 * encoders write): the first len bytes go out as they are, with the ext
 * parts spliced in. Precondition: the prefix says len - 4 plus the ext
 * parts' bytes. */
void loop_req_respond_frame(struct loop_req *req, size_t len);

/* Completes req with no answer (acks=0 produce). Later answers do not wait
 * for it. */
void loop_req_noreply(struct loop_req *req);

/* Stops reading req's connection: no request after req is handed over, and
 * the connection closes (reason to cfg.on_close) once the answers it owes,
 * req's among them, are sent. For an answer the connection must not outlive
 * (a request refused before the client logged in). Call it before
 * completing req; nothing when the connection is gone. */
void loop_req_close_after(struct loop_req *req, int reason);

/* Completes req by closing its connection once every earlier answer is sent
 * (a malformed request the protocol cannot answer). Later requests on the
 * connection are dropped (their slots orphaned). */
void loop_req_fail(struct loop_req *req);

#endif
