/*
 * bench/kafka_load.h — the producer and the consumer that load.c runs when
 * a load goes through the broker's Kafka listener (LOAD_KAFKA): librdkafka
 * (Debian's librdkafka-dev), configured like libnagare's clients from the
 * same struct load_cfg, so a figure compares the two protocols and not two
 * settings; or, with cfg->kafka_client LOAD_KAFKA_DIRECT, the clients of
 * bench/kafka_direct.h.
 *
 * What maps to what: batch_bytes -> batch.size, linger_ms -> linger.ms,
 * inflight -> max.in.flight.requests.per.connection, buffer_bytes_max ->
 * queue.buffering.max.kbytes, acks, idempotence and compression as named;
 * the consumer is assigned its partitions (no group join, no commits) from
 * the beginning or the end, fetch sizes as given or librdkafka's defaults.
 * Records go round-robin over the partitions with null keys, as libnagare's
 * NAGARE_PARTITION_ANY does (librdkafka's sticky partitioner for null keys).
 *
 * Errors: the functions return 0 or a negative NAGARE_E* code, as libnagare
 * does, so load.c handles both alike: -NAGARE_EBUSY when the producer's
 * queue is full (poll, then send again), -NAGARE_ETIMEOUT when a flush or
 * poll slice ended with records outstanding, -EIO for anything
 * librdkafka reports (its text goes to stderr). Each handle belongs to one
 * thread.
 */
#ifndef NAGARE_BENCH_KAFKA_LOAD_H
#define NAGARE_BENCH_KAFKA_LOAD_H

#include <stddef.h>
#include <stdint.h>

#include "base/assert.h"
#include "bench/load.h"

struct kload_producer;
struct kload_consumer;

/* librdkafka's version, for reports ("2.0.2"). */
const char *kload_version(void);

/* A producer to cfg->bootstrap (the Kafka listener) for cfg->topic. */
/* on_delivered runs from kload_producer_poll() / _flush(), on the calling
 * thread, once per record. */
MUST_USE int kload_producer_new(const struct load_cfg *cfg, load_delivered_fn *on_delivered,
                                void *opaque, struct kload_producer **out);
void kload_producer_destroy(struct kload_producer *p);

/* Queues one record (value copied) to any partition; at comes back in its
 * delivery report. 0, or -NAGARE_EBUSY when the queue is full. */
MUST_USE int kload_send(struct kload_producer *p, const void *value, size_t len, uint64_t at);

/* Serves delivery reports for up to timeout_ms. 0 or an error. */
MUST_USE int kload_producer_poll(struct kload_producer *p, int timeout_ms);

/* Waits up to timeout_ms for every queued record's report. 0, or
 * -NAGARE_ETIMEOUT with records still outstanding. */
MUST_USE int kload_producer_flush(struct kload_producer *p, int timeout_ms);

/* A consumer assigned partitions first, first + step, ... below
 * cfg->partitions of cfg->topic, from the end when cfg->from_end, else
 * from the beginning. */
MUST_USE int kload_consumer_new(const struct load_cfg *cfg, int32_t first, int32_t step,
                                struct kload_consumer **out);
void kload_consumer_destroy(struct kload_consumer *c);

/* The next record's value, valid until the next call: 1 with *value and
 * *len set, 0 when none came within timeout_ms, or an error. */
MUST_USE int kload_consumer_poll(struct kload_consumer *c, int timeout_ms, const void **value,
                                 size_t *len);

#endif
