/* client/calls.c — one-request-one-answer helpers (calls.h). */
#include "client/calls.h"

#include <stddef.h>
#include <string.h>

#include "base/assert.h"

/* A request naming one topic: header, counts, the name, a partition. */
#define ONE_TOPIC_REQUEST_BYTES (64 + PROTO_TOPIC_NAME_BYTES_MAX)

static struct proto_str str_of(const char *s) { return proto_str_make(s); }

/* ---- ListOffsets ---- */

struct list_offset {
    const char *topic;
    int32_t partition;
    int64_t timestamp_ms;
    int64_t offset;
};

static int list_offset_encode(void *arg, struct wr *w, uint32_t corr, uint16_t version)
{
    const struct list_offset *lo = arg;
    struct proto_enc e;
    proto_list_offsets_req_begin(&e, w, version, corr, str_of(CONN_CLIENT_ID));
    proto_enc_topic(&e, str_of(lo->topic));
    proto_list_offsets_req_partition(
        &e, &(struct proto_list_offsets_req_partition){.partition = lo->partition,
                                                       .timestamp_ms = lo->timestamp_ms});
    return proto_enc_end(&e);
}

static int list_offset_decode(void *arg, struct rd *body, uint16_t version)
{
    struct list_offset *lo = arg;
    struct proto_dec d;
    if (proto_list_offsets_resp_decode(body, version, &d) != 0) {
        return -NG_EPROTO;
    }
    struct proto_topic t;
    struct proto_list_offsets_resp_partition p;
    if (!proto_next_topic(&d, &t) || !proto_str_eq(t.name, lo->topic) ||
        !proto_list_offsets_resp_next_partition(&d, &p) || p.partition != lo->partition) {
        return -NG_EPROTO;
    }
    if (p.err != 0) {
        return p.err;
    }
    if (p.offset < 0) {
        return -NG_EPROTO;
    }
    lo->offset = p.offset;
    return 0;
}

int calls_list_offset(struct client_conn *c, const char *topic, int32_t partition,
                      int64_t timestamp_ms, int64_t deadline_ms, const struct conn_watch *watch,
                      int64_t *offset_out)
{
    struct list_offset lo = {
        .topic = topic, .partition = partition, .timestamp_ms = timestamp_ms, .offset = -1};
    int rc = conn_call_watched(c, PROTO_API_LIST_OFFSETS, ONE_TOPIC_REQUEST_BYTES,
                               list_offset_encode, list_offset_decode, &lo, deadline_ms, watch);
    if (rc == 0) {
        *offset_out = lo.offset;
    }
    return rc;
}

/* ---- Metadata of one topic ---- */

/* The encoder of every Metadata call here: arg is a struct whose first
 * member is the topic's name. */
static int one_topic_encode(void *arg, struct wr *w, uint32_t corr, uint16_t version)
{
    const char *const *topic = arg;
    struct proto_enc e;
    proto_metadata_req_begin(&e, w, version, corr, str_of(CONN_CLIENT_ID), false);
    proto_enc_topic(&e, str_of(*topic));
    return proto_enc_end(&e);
}

struct one_topic {
    const char *topic; /* first: one_topic_encode() */
    int32_t count;
    bool led; /* every partition listed has a leader (before v2: a single broker) */
};
static_assert(offsetof(struct one_topic, topic) == 0, "one_topic_encode() reads the topic first");

static int one_topic_decode(void *arg, struct rd *body, uint16_t version)
{
    struct one_topic *ot = arg;
    struct proto_metadata_resp m;
    struct proto_dec d;
    struct proto_topic t;
    if (proto_metadata_resp_decode(body, version, &m, &d) != 0 || !proto_next_topic(&d, &t) ||
        !proto_str_eq(t.name, ot->topic)) {
        return -NG_EPROTO;
    }
    if (t.err != 0) {
        return t.err;
    }
    ot->count = t.partition_count;
    ot->led = true;
    struct proto_metadata_partition mp;
    while (proto_metadata_resp_next_partition(&d, &mp)) {
        ot->led = ot->led && (version < 2 || mp.leader >= 0);
    }
    return ot->count > 0 ? 0 : -NG_EPROTO;
}

int calls_topic_led(struct client_conn *c, const char *topic, int64_t deadline_ms, bool *led_out)
{
    struct one_topic ot = {.topic = topic};
    int rc = conn_call(c, PROTO_API_METADATA, ONE_TOPIC_REQUEST_BYTES, one_topic_encode,
                       one_topic_decode, &ot, deadline_ms);
    *led_out = rc == 0 && ot.led;
    return rc == -NG_EUNKNOWN_TOPIC ? 0 : rc;
}
