/*
 * bench/kafka_direct.h — a Kafka-protocol consumer and producer built on
 * nagare's own Kafka codec (net/kafka/codec.h) and batch reader and builder
 * (storage/batch.h), for `nagare-bench produce|consume --protocol
 * kafka|both --kafka-client direct`: they use the Kafka listener the way
 * libnagare's clients use nagare's protocol, so the two protocols are
 * compared with the same client work (librdkafka's single broker thread,
 * which decodes every record into a queued object, is the limit of a
 * librdkafka replay on two cores; its producer's CPU, of produce runs with
 * batches under its 1 MB default).
 *
 * The consumer does what libnagare's consumer does: the partitions assigned are shared
 * out over up to fetches_inflight Fetch requests (v11, no fetch session)
 * on one connection, each answer's next offsets are known from its batch
 * headers, so that share's next fetch goes out before its records are
 * read; every batch's checksum is checked as it is opened (batch_reader_
 * open()), records before the offset asked are skipped. One broker: every
 * partition must be led by the one at cfg->bootstrap (a partition error
 * ends the run, naming it). Records are handed out one at a time, valid
 * until the next poll. Bounded: one request and one answer buffer of
 * fetch_bytes_max plus headroom, one decode arena. One thread.
 *
 * The producer: records go into batches of batch_bytes (the batch builder,
 * zstd when asked), one open batch at a time, the partitions taken in turn
 * per batch (keyless records, sticky per batch as libnagare's and
 * librdkafka's partitioners are); a full batch is sent at once in a
 * Produce request (v8) with the other full ones, one batch per partition
 * per request, at most `inflight` requests in flight on one connection;
 * idempotent (InitProducerId, a sequence per partition) when asked. There
 * is no linger: a batch goes when full, or at a flush, which suits
 * throughput runs and not fixed-rate ones (e2e keeps to librdkafka). Every
 * record's delivery is reported with the send time it was given. A pool of
 * 1 + (inflight + 1) x partitions batches bounds its memory; a send with
 * every batch taken gets -NAGARE_EBUSY (poll, then send again).
 */
#ifndef NAGARE_BENCH_KAFKA_DIRECT_H
#define NAGARE_BENCH_KAFKA_DIRECT_H

#include <stddef.h>
#include <stdint.h>

#include "base/assert.h"
#include "bench/load.h"

struct kdirect;

/* Connects to cfg->bootstrap and asks where to start (ListOffsets: the
 * earliest, or the latest when cfg->from_end) for partitions first,
 * first + step, ... below cfg->partitions of cfg->topic. Returns 0 or
 * -errno / -EIO (printed). */
MUST_USE int kdirect_new(const struct load_cfg *cfg, int32_t first, int32_t step,
                         struct kdirect **out);
void kdirect_destroy(struct kdirect *d);

/* The next record's value: 1 with *value and *len, 0 when none came
 * within timeout_ms, or an error (printed). */
MUST_USE int kdirect_poll(struct kdirect *d, int timeout_ms, const void **value, size_t *len);

struct kdirect_producer;

/* Connects to cfg->bootstrap, and asks for a producer id when
 * cfg->idempotent. on_delivered runs from poll and flush, on the calling
 * thread. Returns 0 or -errno / -EIO (printed). */
MUST_USE int kdirect_producer_new(const struct load_cfg *cfg, load_delivered_fn *on_delivered,
                                  void *opaque, struct kdirect_producer **out);
void kdirect_producer_destroy(struct kdirect_producer *p);

/* Adds one record (value copied) to the open batch. 0, -NAGARE_EBUSY (every
 * batch taken: poll, then again), or an error (printed). */
MUST_USE int kdirect_send(struct kdirect_producer *p, const void *value, size_t len, uint64_t at);

/* Reads the answers that come within timeout_ms, reporting their records,
 * and sends the batches that are full. 0 or an error. */
MUST_USE int kdirect_producer_poll(struct kdirect_producer *p, int timeout_ms);

/* Sends the open batch too and waits up to timeout_ms for every answer. 0,
 * -NAGARE_ETIMEOUT with records outstanding, or an error. */
MUST_USE int kdirect_producer_flush(struct kdirect_producer *p, int timeout_ms);

#endif
