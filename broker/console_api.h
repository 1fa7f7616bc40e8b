/*
 * broker/console_api.h — the JSON the web console reads (docs/operations.md,
 * "The web console"), served by the HTTP admin listener under /api/.
 *
 *   /api/cluster       this broker, its version, the cluster's brokers and
 *                      controller
 *   /api/topics        every topic with its partitions: leader, replicas,
 *                      in-sync set, offsets, size, bytes in and out
 *   /api/groups        consumer groups: members (nagare's protocol) and,
 *                      per partition, committed offset and lag
 *   /api/share-groups  share groups per partition: window, records in
 *                      flight, waiting, dead
 *   /api/records       records of one partition (struct console_query):
 *                      offset, timestamp, key and value (as text when they
 *                      are UTF-8, else hex), headers
 *
 * Rendered on the loop thread (broker/admin_http.h posts it there), with
 * the same bounds as the metrics (METRICS_*_MAX) and, for records,
 * CONSOLE_RECORDS_MAX records of at most CONSOLE_READ_BYTES of batches.
 */
#ifndef NAGARE_BROKER_CONSOLE_API_H
#define NAGARE_BROKER_CONSOLE_API_H

#include <stddef.h>
#include <stdint.h>

#include "base/assert.h"
#include "net/proto.h"

struct server;

/* Records one /api/records answer carries at most, and the batch bytes it
 * reads for them; a key or value is shown up to CONSOLE_FIELD_BYTES. */
#define CONSOLE_RECORDS_MAX 500u
#define CONSOLE_READ_BYTES (4u << 20)
#define CONSOLE_FIELD_BYTES 4096u

/* The query of /api/records, parsed on the HTTP thread. */
struct console_query {
    char topic[PROTO_TOPIC_NAME_BYTES_MAX + 1];
    int32_t partition;
    int64_t offset;  /* -1: from time_ms, or from the start */
    int64_t time_ms; /* -1: not by time */
    uint32_t limit;  /* 1..CONSOLE_RECORDS_MAX */
};

/* Parses /api/records's arguments (each NULL when absent): topic (needed),
 * partition (default 0), offset or time (ms since the epoch), limit
 * (default 50). Returns 0, or -NG_EBADARG with why[0..cap) filled. */
MUST_USE int console_query_parse(struct console_query *q, const char *topic, const char *partition,
                                 const char *offset, const char *time, const char *limit, char *why,
                                 size_t cap);

/* Renders path's JSON ("/api/...") into a malloc'd buffer. Returns an HTTP
 * status with *out and *len set (a JSON object {"error": "..."} for 400 and
 * 404), or -ENOMEM with nothing set. q is /api/records's query (NULL for
 * the others). Loop thread. */
int console_api(struct server *s, const char *path, const struct console_query *q, char **out,
                size_t *len);

#endif
