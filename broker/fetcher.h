/*
 * broker/fetcher.h — a follower's copy of its leaders' logs (docs/cluster.md,
 * section 4): one fetcher per leader broker, for every partition this
 * broker follows there.
 *
 * A fetcher is two halves. Its transport thread owns one blocking TCP
 * connection to the leader and only moves frames: a request the loop
 * built goes out, the answer's frame comes back to the loop (loop_post),
 * or the error that ended the connection (the next request reconnects,
 * after a backoff). Everything else happens on the loop: the requests are
 * built from the partitions' state, and the answers applied to them. So
 * one request is in flight per leader at a time, and each round trip
 * carries every partition followed there: the ~80 us of waking the other
 * thread is paid per round, not per batch. On a broker whose own nagare
 * listener is TLS (listen_tls), the connection is TLS too: the leader's
 * certificate checked against tls_ca_file and its advertised host, and
 * this broker's certificate shown when the leader asks for one.
 *
 * A round: a partition that has just become follower (or whose fetch was
 * past the leader's end) first asks OffsetForLeaderEpoch for its last
 * epoch and truncates its log to the answer (KIP-279: never to its own
 * high watermark); then its last batch is compared with the leader's at
 * that offset (its ReplicaFetch starts at that batch's base): a batch the
 * leader does not hold as it is (same offsets, epoch, checksum) is cut and
 * the one before compared, for a tail written at an epoch the leader still
 * holds is invisible to epochs. Then ReplicaFetch for all, each partition
 * reporting its log end and its durable offset. The batches that come back are appended
 * as they are (part_append with a->replica, durable) and fed to the
 * partition's producer state; the next ReplicaFetch goes once they are
 * all durable, so the durable offset it reports is the log end and the
 * leader's high watermark can pass them at once. A partition behind the
 * leader's log start starts its log afresh there (part_reset).
 *
 * Invariants: a partition is attached to at most one fetcher (rep.fetcher)
 * and only while it follows at the epoch it was attached at; an answer is
 * applied only to partitions still attached that were in its request at
 * the same epoch. A fetcher is freed once its thread has ended and no
 * append of its answers is in flight.
 * Threads: every function here is the worker's (the loop's).
 */
#ifndef NAGARE_BROKER_FETCHER_H
#define NAGARE_BROKER_FETCHER_H

#include <stdint.h>

#include "base/assert.h"

struct server;
struct bpart;

/* How long a follower's fetch may wait at the leader for new batches: an
 * idle partition costs two round trips a second, and a new batch is
 * shipped as soon as the leader has it. */
#define FETCHER_WAIT_MS 500
/* Record bytes asked per partition and per answer. */
#define FETCHER_BYTES_MAX (8u << 20)
/* After an error (connection refused or lost, a partition fenced or not
 * led there), the next round waits this long. */
#define FETCHER_BACKOFF_MS 100
/* A connection that gives no answer for the wait and this long more is
 * closed and made again. */
#define FETCHER_IO_TIMEOUT_MS 10000

/* Attaches bp (a follower of leader_id at its rep.leader_epoch) to the
 * fetcher of leader_id, making one (and its thread) when there is none.
 * The leader's address comes from the server's view; a leader the view
 * does not list as live is fetched from once a view does. Logs what
 * fails (the partition then waits for the next view). */
void fetcher_attach(struct server *s, struct bpart *bp, int32_t leader_id);

/* Detaches bp from its fetcher: no answer in flight touches it after
 * this. A fetcher left with no partitions is stopped. */
void fetcher_detach(struct bpart *bp);

/* Stops every fetcher and waits for their threads (each is woken from its
 * socket at once). Before the partitions close; their appends in flight
 * finish with the partitions' drain. */
void fetchers_stop(struct server *s);

#endif
