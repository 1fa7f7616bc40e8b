/*
 * bench/kafka_direct.h — a Kafka-protocol consumer built on nagare's own
 * Kafka codec (net/kafka/codec.h) and batch reader (storage/batch.h), for
 * `nagare-bench consume --protocol kafka|both --kafka-client direct`: it
 * reads the Kafka listener the way libnagare's consumer reads nagare's
 * protocol, so the two protocols are compared with the same client work
 * (librdkafka's single broker thread, which decodes every record into a
 * queued object, is the limit of a librdkafka replay on two cores).
 *
 * What it does, as libnagare's consumer: the partitions assigned are shared
 * out over up to fetches_inflight Fetch requests (v11, no fetch session)
 * on one connection, each answer's next offsets are known from its batch
 * headers, so that share's next fetch goes out before its records are
 * read; every batch's checksum is checked as it is opened (batch_reader_
 * open()), records before the offset asked are skipped. One broker: every
 * partition must be led by the one at cfg->bootstrap (a partition error
 * ends the run, naming it). Records are handed out one at a time, valid
 * until the next poll. Bounded: one request and one answer buffer of
 * fetch_bytes_max plus headroom, one decode arena. One thread.
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

#endif
