/* broker/admin.c — the request handlers other than produce and fetch. */
#include <errno.h>
#include <string.h>

#include "base/log.h"
#include "broker/server.h"

/* An answer never needs more than this per request byte plus a header:
 * every element of these requests costs at least half its answer. */
#define RESP_PER_REQ_BYTE 2
#define RESP_SLACK_BYTES 256

/* After a body decoder: answers its error (decode_rc), or opens an answer
 * buffer of cap bytes (0: sized from the request, RESP_PER_REQ_BYTE per
 * byte). Returns whether the handler goes on to fill the answer. */
static bool answer_begin(struct loop_req *req, const struct proto_req_header *h, int decode_rc,
                         size_t cap, struct wr *w)
{
    if (decode_rc != 0) {
        server_resp_error(req, h->correlation_id, decode_rc);
        return false;
    }
    if (cap == 0) {
        size_t len;
        (void)loop_req_frame(req, &len);
        cap = RESP_PER_REQ_BYTE * len + RESP_SLACK_BYTES;
    }
    return server_resp_begin(req, h->correlation_id, cap, w);
}

void handle_api_versions(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                         struct rd *body)
{
    int rc = proto_api_versions_req_decode(body, h->api_version);
    struct wr w;
    if (!answer_begin(req, h, rc, 1024, &w)) {
        return;
    }
    struct proto_api_versions_resp resp;
    proto_api_versions_fill(&resp, s->cfg.frame_bytes_max);
    uint32_t served = 0;
    for (uint32_t i = 0; i < resp.api_count; i++) {
        if (server_api_served(resp.apis[i].api_key)) {
            resp.apis[served++] = resp.apis[i];
        }
    }
    resp.api_count = served; /* what the codec knows and this broker serves */
    rc = proto_api_versions_resp_encode(&w, h->api_version, h->correlation_id, &resp);
    ASSERT(rc == 0); /* 32 ranges fit 1 KiB */
    server_resp_send(req, &w);
}

/* ---- Metadata ---- */

static size_t metadata_topic_bytes(const struct server_topic *t)
{
    return PROTO_TOPIC_BYTES(t->name_len) + PROTO_ERR_BYTES + PROTO_METADATA_TOPIC_CONFIG_BYTES +
           (size_t)t->cfg.partitions * PROTO_METADATA_PARTITION_BYTES;
}

/* Retention that is off is stored as -1 and sent as in CreateTopics: -2. */
static int64_t metadata_retention(int64_t v) { return v == -1 ? PROTO_CONFIG_UNLIMITED : v; }

static void metadata_topic(struct proto_enc *e, const struct server_topic *t)
{
    struct proto_topic_config cfg = {
        .partition_count = t->cfg.partitions,
        .retention_ms = metadata_retention(t->cfg.retention_ms),
        .retention_bytes = metadata_retention(t->cfg.retention_bytes),
        .segment_bytes = t->cfg.segment_bytes,
        .segment_ms = t->cfg.segment_ms,
        .batch_bytes_max = t->cfg.batch_bytes_max,
    };
    proto_metadata_resp_topic_config(
        e, (struct proto_str){.ptr = t->name, .len = (int32_t)t->name_len}, 0, &cfg);
    for (int32_t i = 0; i < t->cfg.partitions; i++) {
        const struct part *log = &t->parts[i].log;
        struct proto_metadata_partition mp = {
            .partition = i,
            .err = part_failed(log),
            .offset_earliest = part_offset_earliest(log),
            .offset_latest = part_offset_latest(log),
        };
        mp.err = mp.err != 0 ? -NG_EFAILED : 0;
        proto_metadata_resp_partition(e, &mp);
    }
}

void handle_metadata(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                     struct rd *body)
{
    struct proto_dec d;
    int rc = proto_metadata_req_decode(body, h->api_version, &d);
    if (rc != 0) {
        server_resp_error(req, h->correlation_id, rc);
        return;
    }
    size_t cap = RESP_SLACK_BYTES + sizeof(s->cfg.listen_host);
    struct proto_dec count = d;
    struct proto_topic t;
    if (d.topic_count < 0) {
        for (uint32_t i = 0; i < s->topic_count; i++) {
            cap += metadata_topic_bytes(s->topics[i]);
        }
    }
    while (d.topic_count >= 0 && proto_next_topic(&count, &t)) {
        struct server_topic *st = server_topic_find(s, t.name);
        cap += st ? metadata_topic_bytes(st)
                  : PROTO_TOPIC_BYTES(t.name.len) + PROTO_ERR_BYTES +
                        PROTO_METADATA_TOPIC_CONFIG_BYTES;
    }
    struct wr w;
    if (!answer_begin(req, h, 0, cap, &w)) {
        return;
    }
    struct proto_enc e;
    struct proto_metadata_resp m = {.host = proto_str_make(s->cfg.listen_host), .port = s->port};
    proto_metadata_resp_begin(&e, &w, h->api_version, h->correlation_id, &m);
    if (d.topic_count < 0) {
        for (uint32_t i = 0; i < s->topic_count; i++) {
            metadata_topic(&e, s->topics[i]);
        }
    }
    while (d.topic_count >= 0 && proto_next_topic(&d, &t)) {
        struct server_topic *st = server_topic_find(s, t.name);
        if (st != NULL) {
            metadata_topic(&e, st);
        } else {
            proto_metadata_resp_topic(&e, t.name, -NG_EUNKNOWN_TOPIC);
        }
    }
    server_resp_end(req, &e, &w, h->correlation_id);
}

/* ---- CreateTopics, DeleteTopics ---- */

void handle_create_topics(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                          struct rd *body)
{
    struct proto_dec d;
    int rc = proto_create_topics_req_decode(body, h->api_version, &d);
    struct wr w;
    if (!answer_begin(req, h, rc, 0, &w)) {
        return;
    }
    struct proto_enc e;
    proto_create_topics_resp_begin(&e, &w, h->api_version, h->correlation_id);
    struct proto_create_topic ct;
    while (proto_create_topics_req_next(&d, &ct)) {
        struct topic_config requested = {
            .partitions = ct.partition_count,
            .retention_ms = ct.retention_ms,
            .retention_bytes = ct.retention_bytes,
            .segment_bytes = ct.segment_bytes,
            .segment_ms = PROTO_CONFIG_DEFAULT,
            .batch_bytes_max = ct.batch_bytes_max,
        };
        struct server_topic *t;
        struct proto_topic_result r = {.name = ct.name};
        r.err = server_topic_create(s, ct.name, &requested, &t);
        if (r.err != 0 && r.err != -NG_ETOPIC_EXISTS) {
            log_warn("create topic %.*s: %s", (int)ct.name.len, ct.name.ptr, err_str(r.err));
        }
        proto_enc_topic_result(&e, &r);
    }
    server_resp_end(req, &e, &w, h->correlation_id);
}

void handle_delete_topics(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                          struct rd *body)
{
    struct proto_dec d;
    int rc = proto_delete_topics_req_decode(body, h->api_version, &d);
    struct wr w;
    if (!answer_begin(req, h, rc, 0, &w)) {
        return;
    }
    struct proto_enc e;
    proto_delete_topics_resp_begin(&e, &w, h->api_version, h->correlation_id);
    struct proto_topic t;
    while (proto_next_topic(&d, &t)) {
        struct proto_topic_result r = {.name = t.name, .err = server_topic_delete(s, t.name)};
        proto_enc_topic_result(&e, &r);
    }
    server_resp_end(req, &e, &w, h->correlation_id);
}

/* ---- ListOffsets ---- */

static void list_offset(struct server_topic *t, const struct proto_list_offsets_req_partition *in,
                        struct proto_list_offsets_resp_partition *out)
{
    *out = (struct proto_list_offsets_resp_partition){
        .partition = in->partition, .timestamp_ms = -1, .offset = -1};
    if (t == NULL || in->partition < 0 || in->partition >= t->cfg.partitions) {
        out->err = -NG_EUNKNOWN_TOPIC;
        return;
    }
    struct part *log = &t->parts[in->partition].log;
    out->err = replica_serving(&t->parts[in->partition]);
    if (out->err != 0) {
        return; /* a follower's offsets are not the partition's */
    }
    if (in->timestamp_ms == PROTO_TIMESTAMP_EARLIEST) {
        out->offset = part_offset_earliest(log);
    } else if (in->timestamp_ms == PROTO_TIMESTAMP_LATEST) {
        out->offset = part_offset_latest(log);
    } else if (in->timestamp_ms < 0) {
        out->err = -NG_EBADARG;
    } else {
        /* The found record's offset and timestamp; when no record is that
         * late, the log end with timestamp -1 (docs/protocol.md). */
        int rc = part_offset_for_time(log, in->timestamp_ms, &out->offset, &out->timestamp_ms);
        if (rc == -NG_ENOTFOUND) {
            out->offset = part_offset_latest(log);
            out->timestamp_ms = -1;
        } else if (rc != 0) {
            out->err = rc;
        }
    }
}

void handle_list_offsets(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                         struct rd *body)
{
    struct proto_dec d;
    int rc = proto_list_offsets_req_decode(body, h->api_version, &d);
    struct wr w;
    if (!answer_begin(req, h, rc, 0, &w)) {
        return;
    }
    struct proto_enc e;
    proto_list_offsets_resp_begin(&e, &w, h->api_version, h->correlation_id);
    struct proto_topic t;
    while (proto_next_topic(&d, &t)) {
        struct server_topic *st = server_topic_find(s, t.name);
        proto_enc_topic(&e, t.name);
        struct proto_list_offsets_req_partition in;
        while (proto_list_offsets_req_next_partition(&d, &in)) {
            struct proto_list_offsets_resp_partition out;
            list_offset(st, &in, &out);
            proto_list_offsets_resp_partition(&e, &out);
        }
    }
    server_resp_end(req, &e, &w, h->correlation_id);
}

/* ---- OffsetForLeaderEpoch ---- */

/* KIP-279's answer for one partition. */
static void epoch_end(struct server_topic *t, const struct proto_epoch_req_partition *in,
                      struct proto_epoch_resp_partition *out)
{
    *out = (struct proto_epoch_resp_partition){
        .partition = in->partition, .leader_epoch = -1, .end_offset = -1};
    if (t == NULL || in->partition < 0 || in->partition >= t->cfg.partitions) {
        out->err = -NG_EUNKNOWN_TOPIC;
        return;
    }
    struct bpart *bp = &t->parts[in->partition];
    out->err = replica_check_epoch(bp, -1, in->current_leader_epoch);
    if (out->err == 0) {
        out->err = part_epoch_end_offset(&bp->log, in->leader_epoch, &out->leader_epoch,
                                         &out->end_offset);
    }
    if (out->err != 0) {
        out->leader_epoch = -1;
        out->end_offset = -1;
    }
}

void handle_offset_for_leader_epoch(struct server *s, struct loop_req *req,
                                    const struct proto_req_header *h, struct rd *body)
{
    struct proto_dec d;
    int rc = proto_epoch_req_decode(body, h->api_version, &d);
    struct wr w;
    /* An answer partition is 18 bytes for the request's 12, and the topic
     * names are the same: twice the request bounds it. */
    if (!answer_begin(req, h, rc, 0, &w)) {
        return;
    }
    struct proto_enc e;
    proto_epoch_resp_begin(&e, &w, h->api_version, h->correlation_id);
    struct proto_topic t;
    while (proto_next_topic(&d, &t)) {
        struct server_topic *st = server_topic_find(s, t.name);
        proto_enc_topic(&e, t.name);
        struct proto_epoch_req_partition in;
        while (proto_epoch_req_next_partition(&d, &in)) {
            struct proto_epoch_resp_partition out;
            epoch_end(st, &in, &out);
            proto_epoch_resp_partition(&e, &out);
        }
    }
    server_resp_end(req, &e, &w, h->correlation_id);
}

/* ---- InitProducerId ---- */

void handle_init_producer_id(struct server *s, struct loop_req *req,
                             const struct proto_req_header *h, struct rd *body)
{
    int rc = proto_init_producer_id_req_decode(body, h->api_version);
    struct proto_init_producer_id_resp r = {.producer_epoch = 0};
    /* Taking an id may reserve a block on disk: a full disk is said as such. */
    rc = rc == 0 ? server_wire_err(producer_ids_take(&s->producer_ids, &r.producer_id)) : rc;
    struct wr w;
    if (!answer_begin(req, h, rc, 64, &w)) {
        return;
    }
    rc = proto_init_producer_id_resp_encode(&w, h->api_version, h->correlation_id, &r);
    ASSERT(rc == 0);
    server_resp_send(req, &w);
}
