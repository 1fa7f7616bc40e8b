/*
 * broker/metrics.h — what the HTTP admin listener reports (issue 16): the
 * broker's metrics in Prometheus's text format (version 0.0.4), and
 * whether it is ready to serve.
 *
 * Counting happens where the work is, on the loop thread, into plain
 * fields (no atomics, no locks): requests by protocol and api through the
 * loop's on_done (tags below), records and bytes per partition in the
 * produce and fetch paths (struct bpart_counters), syncs in the ring
 * (struct ring_kind_stats). Rendering also runs on the loop thread
 * (broker/admin_http.h posts it there), reading those fields and the
 * state beside them: offsets and sizes of every partition, connections and
 * memory of the loop, committed offsets and the lag behind them, the
 * replication state and the cluster view.
 *
 * docs/operations.md lists every metric with what it means.
 */
#ifndef NAGARE_BROKER_METRICS_H
#define NAGARE_BROKER_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/assert.h"
#include "base/histo.h"
#include "net/kafka/codec.h"
#include "net/proto.h"

struct server;

/* A request's loop tag (loop_req_set_tag): which protocol and api, and
 * whether it was answered with a request-level error. 0: not known (a
 * frame too short to name its api). */
#define METRICS_TAG_KAFKA 0x4000u
#define METRICS_TAG_ERROR 0x8000u
#define METRICS_TAG_API_MASK 0x3fffu
static_assert(PROTO_API_COUNT < METRICS_TAG_API_MASK && KAFKA_API_COUNT < METRICS_TAG_API_MASK,
              "every api fits a tag");

static inline uint16_t metrics_tag_nagare(uint16_t api_key)
{
    ASSERT(api_key < PROTO_API_COUNT);
    return (uint16_t)(1u + api_key);
}

static inline uint16_t metrics_tag_kafka(const struct kafka_api *api)
{
    return (uint16_t)(METRICS_TAG_KAFKA | (1u + (uint32_t)(api - kafka_apis)));
}

/* Requests of one api. */
struct metrics_api {
    uint64_t requests; /* completed */
    uint64_t errors;   /* answered with a request-level error, or failed (closed) */
    struct histo latency;
};

/* The broker's request counters (in struct server). */
struct server_metrics {
    struct metrics_api nagare[PROTO_API_COUNT];
    struct metrics_api kafka[KAFKA_API_COUNT];
    uint64_t untagged;  /* requests too short to name an api */
    uint64_t lag_reads; /* batch headers read for group lag ages */
};

/* Counts a completed request (the loop's on_done). */
void metrics_request_done(struct server_metrics *m, uint16_t tag, uint64_t handler_ns, bool failed);

/* Most partitions, and most group partitions, rendered: past them the
 * rest are left out (and counted in nagare_metrics_truncated). A scrape
 * of the largest broker stays a few MiB. */
#define METRICS_PARTITIONS_MAX 20000u
#define METRICS_GROUP_PARTITIONS_MAX 20000u

/* Renders every metric of s into a malloc'd buffer: 0 with *out (the
 * caller frees it) and *len, or -ENOMEM. Loop thread. */
MUST_USE int metrics_render(struct server *s, char **out, size_t *len);

/* The age of a group's first record not consumed comes from the log (the
 * first timestamp of the batch holding the committed offset: one blocking
 * header read on the loop), remembered with the offsets entry: read again
 * only when the committed offset moved or METRICS_LAG_MEMO_MS passed (a
 * log made again under the same name, a follower's cut), and at most
 * METRICS_LAG_READS_MAX times per render, so a scrape of 20,000 group
 * partitions renders from memory but for what changed. Rows past the
 * budget show the age last read (older, so larger, when the offset moved
 * since: an alert errs on the safe side) until a later render reads it. */
#define METRICS_LAG_MEMO_MS 30000
#define METRICS_LAG_READS_MAX 256u

/* How far a group's committed offset e is behind: *records to the high
 * watermark, and *ms the age of the first record not consumed (its batch's
 * first timestamp; 0 when caught up), through e's memo (above), a read
 * taken from *reads_left when one is needed and *reads_left > 0 (counted
 * in s->metrics.lag_reads). *found false (both 0) when the topic or
 * partition is not held here. Loop thread. */
struct offsets_entry;
void metrics_group_lag(struct server *s, struct offsets_entry *e, int64_t now_ms,
                       uint32_t *reads_left, int64_t *records, int64_t *ms, bool *found);

/* Whether s is ready to serve: its data directory and stores are open, and
 * in a cluster it holds its registration (a view that does not fence it)
 * and knows a leader for each partition it holds. Returns true, or false
 * with why[0..cap) saying what is missing. Loop thread. */
bool metrics_ready(const struct server *s, char *why, size_t cap);

#endif
