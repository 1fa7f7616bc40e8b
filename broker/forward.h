/*
 * broker/forward.h — batches written at the leader of their partition
 * when another broker leads it (a cluster's DlqRedrive, broker/dlq.c;
 * docs/cluster.md, section 5). The forwarder sends them as nagare Produce
 * requests, acks=all, over one link per leader broker (broker/peer.h):
 * each request carries every batch waiting for that broker, in the order
 * they were handed over, up to the peer's request frame maximum (asked
 * with ApiVersions on each new connection) and PROTO_REQUEST_PARTITIONS_MAX
 * entries. A batch is done once that leader answered it: appended and
 * passed by its high watermark with enough in-sync replicas (rc 0), or
 * failed for good.
 *
 * The leader is the one the cluster view names when the batch is routed.
 * A batch refused for a reason a leader change explains (not the leader,
 * a stale or unknown epoch, too few in-sync replicas, a timeout, a lost
 * connection, no leader or no such topic in the view yet) is routed
 * again, to whichever broker the view then names, every
 * FORWARD_BACKOFF_MS, until redrive_retry_ms after it was handed over:
 * then it is done with the last error. A request whose answer was lost
 * may have been written: a retry writes it again (at-least-once, as
 * DlqRedrive documents). Other errors (not authorized, a batch the
 * leader refuses) end it at once.
 *
 * The leader's broker sees this broker's principal (the brokers'): the
 * Produce is allowed by WRITE on the topic or by cluster_action on the
 * cluster (docs/security.md, "Brokers in a cluster"); the caller has
 * checked its own asker's WRITE.
 *
 * Bounds: at most FORWARD_BYTES_MAX of batches held at once (more is
 * refused with NG_EBUSY at forward_send()), one request in flight per
 * leader broker.
 * Threads: every function here is the worker's (the loop's).
 */
#ifndef NAGARE_BROKER_FORWARD_H
#define NAGARE_BROKER_FORWARD_H

#include <stddef.h>
#include <stdint.h>

#include "base/assert.h"
#include "net/proto.h"

struct server;
struct forward_batch;

/* Bytes of batches the forwarder holds at once: the redrives running at
 * once (REDRIVES_MAX, 16) each with one chunk of about 1 MiB out, with
 * room to spare. */
#define FORWARD_BYTES_MAX (64u << 20)
/* The Produce's timeout at the leader (how long it may wait for its high
 * watermark), and how long a link waits past it before it gives the
 * connection up. */
#define FORWARD_PRODUCE_TIMEOUT_MS 5000
#define FORWARD_IO_MARGIN_MS 5000
/* Routing again after a failure: this often, for redrive_retry_ms in all
 * (broker/config.h: a leader's lease and an election, with room). A batch
 * sent just before the end may take a request's whole time more: 25 s in
 * all by default, within a client's request timeout (30 s by default), so
 * a redrive step answers before its asker gives up. */
#define FORWARD_BACKOFF_MS 200

typedef void forward_done_fn(struct forward_batch *fb, int rc);

struct forward_batch {
    /* the caller's, set before forward_send() and kept until done runs */
    char topic[PROTO_TOPIC_NAME_BYTES_MAX + 1];
    size_t topic_len;
    int32_t partition;
    const uint8_t *batch; /* one whole batch (storage/batch.h) */
    size_t bytes;
    forward_done_fn *done; /* on the loop; the forwarder holds nothing of fb after */
    /* the forwarder's */
    struct forward_batch *next;
    int64_t deadline_ms;   /* loop clock: done with last_err past it */
    int64_t not_before_ms; /* loop clock: routed again from then on */
    int32_t leader;        /* the broker it goes (went) to */
    int last_err;
};

/* Hands fb over: done(fb, rc) runs later, on the loop, never from within
 * this call. Returns 0, or -NG_EBUSY (FORWARD_BYTES_MAX held already),
 * -NG_ETOOBIG (fb cannot fit any request), -ENOMEM, -NG_ECLOSED (the
 * broker is stopping): fb is then not taken. Pre: a clustered broker. */
MUST_USE int forward_send(struct server *s, struct forward_batch *fb);

/* Stops every link and waits for their threads; the batches held are done
 * with -NG_ECLOSED. Before the partitions close. */
void forwarders_stop(struct server *s);

#endif
