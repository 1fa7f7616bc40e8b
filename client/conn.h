/*
 * client/conn.h — libnagare's connection to the broker: one non-blocking TCP
 * socket with a send queue and pipelined requests matched to their answers
 * by correlation id.
 *
 * Invariants. The broker answers the requests of one connection in the
 * order it received them (docs/protocol.md), so requests waiting for an
 * answer form a FIFO and an answer whose correlation id is not the oldest
 * unanswered request's is a protocol violation that closes the connection.
 * A request that gets no answer (a Produce with acks=0) completes once its
 * last byte was handed to the kernel. Every request submitted completes
 * exactly once, through its callback: with its answer, or with an error
 * when the connection closes or a request outlives its timeout (which
 * closes the connection: the answers behind it cannot be trusted in order
 * any more). A frame may carry runs of the caller's bytes by reference
 * (conn_frame_commit_refs()): written in place, in order with the bytes
 * copied around them, never copied here, and never touched again once
 * the request completed. Memory is bounded: the copied bytes of the send
 * queue by tx_bytes_max (it holds at least one frame of the broker's
 * maximum), the references by pending_max frames of CONN_FRAME_REFS_MAX,
 * the receive buffer by one frame of resp_bytes_max plus a read window,
 * pending requests by pending_max. A large answer may be read instead
 * straight into a buffer of its request's owner (conn_frame_commit_sink()),
 * then rx holds nothing meanwhile.
 *
 * Threads: a struct client_conn belongs to one thread. Callbacks run from inside
 * conn_poll(), conn_pump(), conn_flush() and conn_close() on that thread
 * (never from conn_frame_commit*()); a callback may
 * submit new requests on the same connection (conn_frame_begin/commit) and
 * may close it, but must not call conn_poll() or conn_fini().
 */
#ifndef NAGARE_CLIENT_CONN_H
#define NAGARE_CLIENT_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base/bytes.h"
#include "auth/scram.h"
#include "base/clock.h"
#include "client/nagare.h"
#include "net/proto.h"

struct ssl_ctx_st; /* OpenSSL's SSL_CTX (net/tls.h) */
struct ssl_st;     /* SSL */

/* The client id every request libnagare sends carries. */
#define CONN_CLIENT_ID "libnagare"

/* Largest answer accepted by default: the broker's own frame default, which
 * holds a fetch of 16 MiB with one large batch past it many times over. */
#define CONN_RESP_BYTES_MAX_DEFAULT PROTO_FRAME_BYTES_DEFAULT
/* First size of the receive buffer; it grows to the largest frame seen. */
#define CONN_RX_BYTES_INITIAL (256u * 1024)
/* A read window past the frame being assembled, so one read() can bring in
 * several small answers. */
#define CONN_RX_WINDOW_BYTES (64u * 1024)
/* Host part of "host:port": a DNS name is at most 253 bytes. */
#define CONN_HOST_BYTES_MAX 256
/* A bootstrap list "host:port,host:port,...", NUL included: a few brokers'
 * addresses (their addresses are tried in turn, CONN_ADDRS_MAX in all). */
#define CONN_BOOTSTRAP_BYTES_MAX 1024
/* Addresses of a name tried in turn (IPv6 and IPv4 loopback, a few A
 * records); the rest are ignored. */
#define CONN_ADDRS_MAX 8
/* Upper bound on pending_max: far above any useful pipeline depth, and
 * below the broker's per-connection in-flight cap it backs off at. */
#define CONN_PENDING_LIMIT 4096

/* Called once per request: err 0 with the answer's body (a reader valid
 * only during the call; NULL for a request that gets no answer), or err < 0
 * (-NG_EDISCONNECTED, -NG_ETIMEOUT, -errno, or the answer's request-level
 * error) with body NULL. version is the api version the request was sent
 * with. */
typedef void (*conn_done_fn)(void *arg, int err, struct rd *body, uint16_t version);

/* Answers at least this large may be read straight into a buffer of the
 * request's owner (conn_frame_commit_sink()); smaller ones are not worth
 * it: the read window brings several of them in with one read(). */
#define CONN_SINK_BYTES_MIN CONN_RX_WINDOW_BYTES

/* Asked for the buffer the answer of a request is read into, once its
 * length is known: frame_bytes counts the whole frame, the 4-byte length
 * prefix included. Returns at least frame_bytes of memory the connection
 * may write until the request completes, or NULL to have the answer read
 * into the connection's own buffer as usual. The buffer stays the
 * caller's; when the answer completes the request, the body handed to its
 * conn_done_fn points into it (so it outlives the callback). Runs from
 * conn_poll() and conn_pump(), at most once per request. */
typedef uint8_t *(*conn_sink_fn)(void *arg, size_t frame_bytes);

enum conn_state {
    CONN_DOWN = 0,   /* no socket */
    CONN_CONNECTING, /* non-blocking connect() in progress */
    CONN_TLS,        /* TLS handshake in progress (cfg.tls) */
    CONN_HANDSHAKE,  /* ApiVersions sent, answer awaited */
    CONN_LOGIN,      /* logging in (SaslHandshake, SaslAuthenticate) */
    CONN_UP,         /* ready for requests */
};

/* Who a connection logs in as: a copy (conn_login_make()); user "" for
 * nobody. */
struct conn_login {
    char user[SCRAM_USER_BYTES_MAX + 1];
    char password[SCRAM_PASSWORD_BYTES_MAX + 1];
    uint8_t mech; /* enum scram_mech */
};

/* Fills out from the public form (user NULL: nobody; mechanism NULL:
 * SCRAM-SHA-256). Returns 0, or -NG_EBADARG (a user name scram_user_valid()
 * refuses, a password missing, empty or too long, a mechanism not known).
 * Pure. */
MUST_USE int conn_login_make(struct conn_login *out, const char *user, const char *password,
                             const char *mechanism);

struct conn_config {
    const char *bootstrap;       /* "host:port[,host:port...]"; copied by conn_init() */
    uint32_t request_timeout_ms; /* also bounds a connect and its handshake */
    uint32_t resp_bytes_max;     /* largest answer frame accepted */
    size_t tx_bytes_max;         /* send queue bound (raised to one broker frame) */
    uint32_t pending_max;        /* requests submitted and not completed */
    struct conn_login login;     /* logged in after ApiVersions (user "": not) */
    /* TLS (conn_tls_ctx()): NULL for plaintext. conn_init() takes a
     * reference. server_name: what the broker's certificate must name
     * (copied); NULL or "": the host of the address dialled. */
    struct ssl_ctx_st *tls;
    const char *tls_server_name;
};

/* Sets cc's TLS fields as t asks (nothing when t is NULL or not enabled):
 * a new client context, read from t's files now, and t's server name
 * (used only by the conn_init() or brokers_init() that follows). Returns
 * 0, or -NG_EBADARG when a file does not load. The caller drops cc->tls
 * with conn_config_tls_done() once those inits took their references. */
MUST_USE int conn_config_tls(struct conn_config *cc, const struct nagare_tls *t);
void conn_config_tls_done(struct conn_config *cc);

/* Most bytes of requests one SSL_write encrypts (4 records): queued bytes
 * are gathered into a buffer of this size, which stays whole until
 * OpenSSL took all of it. */
#define CONN_TLS_WBUF_BYTES (64u << 10)

/* A run of bytes a frame carries by reference (conn_frame_commit_refs()):
 * written from where it lies instead of being copied into the send queue.
 * at: where it goes, as a count of the bytes of the frame's writer before
 * it. */
struct conn_ref {
    size_t at;
    const uint8_t *ptr;
    size_t len;
};

/* Most references one frame may carry: one per partition of a request. */
#define CONN_FRAME_REFS_MAX PROTO_REQUEST_PARTITIONS_MAX

/* A reference queued for writing, placed by its position in the stream of
 * bytes queued (c->tx_queued_total's count). */
struct conn_txref {
    uint64_t at;
    const uint8_t *ptr;
    size_t len;
};

struct conn_pending {
    uint32_t corr;
    uint16_t api_key;
    uint16_t version;
    bool noreply;         /* completes when written */
    bool done;            /* completed, waiting to leave the FIFO */
    uint64_t tx_end;      /* c->tx_queued_total just after its frame */
    int64_t deadline_ms;  /* monotonic */
    int64_t submitted_ms; /* monotonic: when it was committed */
    conn_done_fn fn;
    conn_sink_fn sink; /* NULL: the answer is read into rx */
    void *arg;
};

/* Fields are private to conn.c except where noted. */
struct client_conn {
    int fd;
    enum conn_state state; /* readable by users */
    int err_last;          /* why it last went down (0: never); readable */
    uint64_t generation;   /* bumped by every close; readable */
    /* When the oldest request pending at a close for a timeout was
     * submitted, if the broker has answered nothing since (monotonic ms;
     * INT64_MAX: none): conn_silent_since_ms() carries it over a
     * reconnect. */
    int64_t silent_since_ms;
    char bootstrap[CONN_BOOTSTRAP_BYTES_MAX]; /* the address list, as given */
    struct conn_config cfg;
    int64_t connect_deadline_ms;
    /* the resolved addresses, tried in order until one connects */
    struct sockaddr_storage addrs[CONN_ADDRS_MAX];
    uint32_t addr_lens[CONN_ADDRS_MAX];
    int addr_families[CONN_ADDRS_MAX];
    uint8_t addr_entry[CONN_ADDRS_MAX]; /* which bootstrap entry each came from */
    uint32_t addr_count;
    uint32_t addr_next;
    /* TLS (cfg.tls): the session on fd, and request bytes gathered for
     * SSL_write: [0, tls_wpend) of tls_wbuf, handed to OpenSSL again as
     * they are until it takes them (then the send queue moves on) */
    struct ssl_st *ssl;
    uint8_t *tls_wbuf;
    size_t tls_wpend;
    bool tls_want_write; /* the handshake waits for room in the socket */
    char tls_server_name[CONN_HOST_BYTES_MAX];
    /* send queue: the bytes queued and not yet written are
     * [tx_sent_total, tx_queued_total) of the stream; those copied in are
     * [tx_head, tx_len) of tx, the others are the references
     * txrefs[txref_head, txref_len), in stream order, interleaved with them
     * by their positions. */
    uint8_t *tx;
    size_t tx_cap;
    size_t tx_head;
    size_t tx_len;
    uint64_t tx_queued_total;
    uint64_t tx_sent_total;
    struct conn_txref *txrefs;
    uint32_t txref_cap;
    uint32_t txref_head;
    uint32_t txref_len;
    /* receive buffer: rx[0, rx_len) read, not yet dispatched */
    uint8_t *rx;
    size_t rx_cap;
    size_t rx_len;
    /* an answer being read straight into its request's buffer (sink):
     * bytes [0, sink_len) make the frame, [0, sink_got) have come. While
     * sink is set, rx holds nothing and reads stop at the frame's end. */
    uint8_t *sink;
    size_t sink_len;
    size_t sink_got;
    /* requests not yet completed, oldest first (ring) */
    struct conn_pending *pend;
    uint32_t pend_head;
    uint32_t pend_count;
    uint32_t corr_next;
    /* from the handshake; readable once CONN_UP */
    uint32_t peer_frame_bytes_max;         /* largest request the broker takes */
    uint16_t api_version[PROTO_API_COUNT]; /* version to send; UINT16_MAX: none */
    int broken;                            /* a write failed: close at next poll */
    struct scram_client *scram;            /* a login's state while CONN_LOGIN */
};

/* Splits "host:port" (or "[v6]:port") into its parts. Returns 0 or
 * -NG_EBADARG. Pure. */
int conn_parse_address(const char *address, char *host, size_t host_cap, char *port,
                       size_t port_cap);

/* Checks a bootstrap list: one or more "host:port" (conn_parse_address())
 * separated by commas, shorter than CONN_BOOTSTRAP_BYTES_MAX. Returns how
 * many addresses it names, or -NG_EBADARG. Pure. */
int conn_bootstrap_check(const char *list);

/* Address i (< conn_bootstrap_check(list)) of a checked list, split into
 * its parts. Returns 0 or -NG_EBADARG. Pure. */
int conn_bootstrap_at(const char *list, int i, char *host, size_t host_cap, char *port,
                      size_t port_cap);

/* Readies c from cfg: copies the address list, allocates the buffers;
 * opens no socket. A connect tries every address of the list in turn (in
 * list order, each name's addresses as the resolver gives them). Returns
 * 0, -NG_EBADARG (bad address or limits), -ENOMEM. */
MUST_USE int conn_init(struct client_conn *c, const struct conn_config *cfg);

/* Closes the socket (failing pending requests with -NG_ECLOSED) and frees
 * everything. Harmless on a zeroed or already finished conn. */
void conn_fini(struct client_conn *c);

/* Starts connecting when down: resolves the address (getaddrinfo: blocking
 * for names that are not numeric), starts a non-blocking connect. Progress
 * is made by conn_poll(). Returns 0 (connecting, or already connected) or
 * the failure (-errno, -NG_ENOTFOUND for a name that does not resolve). */
MUST_USE int conn_connect_start(struct client_conn *c);

/* Backoff between tries (reconnects, failed requests): the first step,
 * doubling up to the last. Short enough that a broker back from a restart
 * is found within a second; long enough not to spin on one that is not. */
#define CONN_BACKOFF_MS_FIRST 100
#define CONN_BACKOFF_MS_MAX 1000

/* The next step of the backoff *b (0: no try failed yet), stored back in
 * *b and returned. Pure. */
uint32_t conn_backoff_next(uint32_t *b);

/* Reconnecting a conn that went down, for the loop of its owner (a
 * consumer, a share consumer). Zeroed: up, or never tried. */
struct conn_redial {
    int64_t at_ms;         /* the next try may start then (monotonic) */
    uint32_t backoff_ms;   /* the current step (conn_backoff_next) */
    int64_t down_since_ms; /* 0: up, or not yet seen down */
};

/* Call from the owner's loop. While c is CONN_DOWN, starts a connect once
 * r->at_ms has come (then waits a backoff step before the next try, whether
 * the start failed at once or the connect fails later); once c is up,
 * resets r. Returns -NG_EDISCONNECTED when c has stayed down for timeout_ms
 * (once per such period, for the owner to report), else 0. */
MUST_USE int conn_redial(struct client_conn *c, struct conn_redial *r, int64_t now_ms,
                         uint32_t timeout_ms);

/* Connects (if down) and waits for the handshake, at most timeout_ms.
 * Returns 0 once up, -NG_ETIMEOUT, or why connecting failed (-ECONNREFUSED,
 * -NG_ENOTFOUND, -NG_EDISCONNECTED, -NG_EPROTO...). */
MUST_USE int conn_wait_up(struct client_conn *c, int timeout_ms);

/* Waits up to timeout_ms (-1: no limit, 0: not at all) for the socket, then
 * writes what it can, reads and dispatches answers, and enforces request
 * timeouts. Returns 0, or -errno when poll() itself failed; connection
 * failures are reported to the requests, c->state and c->err_last. A down
 * connection just sleeps for timeout_ms. */
MUST_USE int conn_poll(struct client_conn *c, int timeout_ms);

/* Most connections one conn_poll_many() waits on: the brokers of a
 * cluster one client talks to at once (client/brokers.h). */
#define CONN_POLL_MANY_MAX 64

/* conn_poll() over n connections at once (n <= CONN_POLL_MANY_MAX): waits
 * for any of them (at most timeout_ms, never past a request's deadline),
 * then does each one's work. Returns 0 or -errno from poll(). */
MUST_USE int conn_poll_many(struct client_conn *const *cs, uint32_t n, int timeout_ms);

/* Writes queued bytes without waiting. */
void conn_flush(struct client_conn *c);

/* Reads and dispatches the answers that have arrived and writes queued
 * bytes, without waiting and without poll(): for a caller busy with other
 * work who wants the peer's answers off the socket meanwhile (so the peer
 * is not held up by a full socket buffer). A no-op unless CONN_UP. */
void conn_pump(struct client_conn *c);

/* Closes the socket; pending requests complete with err (in order). */
void conn_close(struct client_conn *c, int err);

/* True when a request may be submitted now: up, and fewer than pending_max
 * pending. */
bool conn_ready(const struct client_conn *c);

/* Version to use for api_key, or UINT16_MAX when the broker does not speak
 * it. Precondition: CONN_UP. */
uint16_t conn_version(const struct client_conn *c, uint16_t api_key);

/* Bytes of request frame the broker accepts (prefix included). */
size_t conn_frame_bytes_max(const struct client_conn *c);

/* Starts a request: returns a writer over the free send-queue space (at
 * least `need` bytes, compacting or growing the queue within its bound)
 * and the correlation id to encode. Returns 0, or -NG_EBUSY when that much
 * room cannot be made now (poll, then retry), -NG_ETOOBIG when need is over
 * what a frame may be. Precondition: conn_ready(). */
MUST_USE int conn_frame_begin(struct client_conn *c, size_t need, struct wr *w, uint32_t *corr_out);

/* conn_frame_begin() for a frame that will also carry up to ref_count
 * references (conn_frame_commit_refs()) of ref_bytes in all: need is the
 * bytes written into w; room for ref_count references is made too.
 * Returns 0, -NG_EBUSY, -NG_ETOOBIG (need + ref_bytes over what a frame may
 * be), -ENOMEM. Precondition: conn_ready(), ref_count <=
 * CONN_FRAME_REFS_MAX. */
MUST_USE int conn_frame_begin_refs(struct client_conn *c, size_t need, size_t ref_bytes,
                                   uint32_t ref_count, struct wr *w, uint32_t *corr_out);

/* Submits the one frame encoded into w (from conn_frame_begin(), finished
 * with proto_enc_end() returning 0) and tries to write it at once.
 * timeout_ms bounds the wait for its answer (or its write, for noreply).
 * fn(arg, ...) runs exactly once, later (never from inside this call). */
void conn_frame_commit(struct client_conn *c, const struct wr *w, uint32_t corr, uint16_t api_key,
                       uint16_t version, bool noreply, uint32_t timeout_ms, conn_done_fn fn,
                       void *arg);

/* conn_frame_commit() for a frame from conn_frame_begin_refs() whose bytes
 * are w's with refs[0, ref_count) inserted (at nondecreasing, at most
 * w->pos; at most the ref_count that begin was given): its length prefix
 * must count them. The referenced bytes are written with a gather write,
 * never copied by this module; the caller keeps them unchanged and alive
 * until fn has run. An answer always comes after the whole frame was
 * written (a broker answering earlier breaks the protocol: the connection
 * closes), and a close drops every reference, so once fn runs nothing
 * here points at them any more. */
void conn_frame_commit_refs(struct client_conn *c, const struct wr *w, const struct conn_ref *refs,
                            uint32_t ref_count, uint32_t corr, uint16_t api_key, uint16_t version,
                            bool noreply, uint32_t timeout_ms, conn_done_fn fn, void *arg);

/* conn_frame_commit() for a request with an answer that may be read straight into a
 * buffer sink(arg, ...) gives (see conn_sink_fn), with no copy. */
void conn_frame_commit_sink(struct client_conn *c, const struct wr *w, uint32_t corr,
                            uint16_t api_key, uint16_t version, uint32_t timeout_ms,
                            conn_done_fn fn, conn_sink_fn sink, void *arg);

/* Requests submitted and not yet completed. */
static inline uint32_t conn_pending_count(const struct client_conn *c) { return c->pend_count; }

/* The earliest deadline among pending requests and a connect in progress
 * (monotonic ms), or INT64_MAX. */
int64_t conn_next_deadline(const struct client_conn *c);

/* When the oldest request not yet completed was submitted (monotonic ms),
 * or INT64_MAX when none is pending. Pure. */
int64_t conn_oldest_pending_ms(const struct client_conn *c);

/* How long the broker has kept the owner waiting, since it answers in
 * order (the stall checks, client/brokers.h): when a request was
 * submitted that it has not answered, nor answered anything after,
 * counted across a reconnect that a request timeout forced (a paused or
 * cut-off broker's requests time out, and its kernel takes the new
 * connection, which then waits for the handshake's answer); INT64_MAX
 * when none is pending and c is up, or it has answered since. Pure. */
int64_t conn_silent_since_ms(const struct client_conn *c);

/* ---- synchronous calls ---- */

/* Decodes an answer body inside the done callback of conn_call(). */
typedef int (*conn_decode_fn)(void *arg, struct rd *body, uint16_t version);

/* Encodes a request: w from conn_frame_begin(), the version to use.
 * Returns proto_enc_end()'s result. */
typedef int (*conn_encode_fn)(void *arg, struct wr *w, uint32_t corr, uint16_t version);

/* Sends one request and waits for its answer, at most until deadline_ms
 * (monotonic), connecting first when down; other requests' callbacks run
 * meanwhile. Returns decode()'s result, -NG_ETIMEOUT, -NG_EBADVERSION (the
 * broker does not speak api_key), or the request's error. */
MUST_USE int conn_call(struct client_conn *c, uint16_t api_key, size_t need, conn_encode_fn encode,
                       conn_decode_fn decode, void *arg, int64_t deadline_ms);

/* A check on a synchronous call while its answer is awaited: fn(arg) runs
 * once the request has waited period_ms (> 0), then every period_ms while
 * the wait lasts; true gives the call's connection up (client/brokers.h,
 * brokers_watch_init(): a broker paused or cut off). fn may make calls on
 * other connections, not on the call's own. */
struct conn_watch {
    uint32_t period_ms;
    bool (*fn)(void *arg);
    void *arg;
};

/* conn_wait_up() until deadline_ms (monotonic), checked on by watch
 * meanwhile (NULL: none). Returns 0 once up, -NG_ETIMEOUT (the connect
 * given up), -NG_EDISCONNECTED (the watch gave it up), or why connecting
 * failed. */
MUST_USE int conn_wait_up_watched(struct client_conn *c, int64_t deadline_ms,
                                  const struct conn_watch *watch);

/* conn_call() checked on by watch (NULL: none, as conn_call()). A
 * connection the check gives up is closed: the call returns
 * -NG_EDISCONNECTED, as its other requests complete. */
MUST_USE int conn_call_watched(struct client_conn *c, uint16_t api_key, size_t need,
                               conn_encode_fn encode, conn_decode_fn decode, void *arg,
                               int64_t deadline_ms, const struct conn_watch *watch);

#endif
