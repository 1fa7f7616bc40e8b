/*
 * broker/forward.c — batches written at their partition's leader
 * (broker/forward.h): routing by the cluster view, one link per leader
 * broker, each request built from every batch waiting for that broker.
 */
#include "broker/forward.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "broker/config.h"
#include "broker/peer.h"
#include "broker/server.h"

#define FORWARD_CLIENT_ID "nagared-forward"
/* A request frame's bytes (its length prefix not counted, as a frame
 * maximum does not count it) before its entries: the header with our
 * client id, acks (i16), timeout (i32), topic count (i32). */
#define FORWARD_REQ_HEAD_BYTES \
    (PROTO_REQ_HEADER_BYTES_MIN + sizeof(FORWARD_CLIENT_ID) - 1 + 2 + 4 + 4)
/* One batch's entry at most: its topic's (name, partition count), the
 * partition (i32) and the batch's length (i32), then the batch. */
#define FORWARD_ENTRY_BYTES(name_len, bytes) (PROTO_TOPIC_BYTES(name_len) + 4 + 4 + (bytes))
static_assert(FORWARD_REQ_HEAD_BYTES + FORWARD_ENTRY_BYTES(PROTO_TOPIC_NAME_BYTES_MAX, 0) <=
                  BROKER_PRODUCE_FRAME_OVERHEAD_BYTES,
              "a batch of batch_bytes_max fits any broker's request frame");

static_assert(BROKER_REDRIVE_RETRY_MS_DEFAULT + FORWARD_PRODUCE_TIMEOUT_MS + FORWARD_IO_MARGIN_MS <=
                  25000,
              "by default a redrive step answers within a client's request timeout (30 s)");

struct fwd_link {
    struct forwards *fw;
    struct fwd_link *next;
    struct peer link;
    uint32_t frame_max; /* the peer's request frame maximum; 0: ask first */
    uint32_t corr;
    bool asking;                     /* the request in flight is ApiVersions */
    struct forward_batch *sent_head; /* in the request in flight, in its order */
    struct forward_batch *sent_tail;
    int err_logged; /* the error last logged, so each is logged once */
};

struct forwards {
    struct server *s;
    struct fwd_link *links;
    struct forward_batch *head; /* waiting: to be routed and sent */
    struct forward_batch *tail;
    uint64_t bytes; /* of the batches held, waiting or in flight */
    struct loop_timer timer;
    bool stopping;
};

static void pump(struct forwards *fw);

static void on_timer(struct loop_timer *t, void *arg)
{
    (void)t;
    pump(arg);
}

/* ---- the batches ---- */

static void waiting_push(struct forwards *fw, struct forward_batch *fb)
{
    fb->next = NULL;
    if (fw->tail != NULL) {
        fw->tail->next = fb;
    } else {
        fw->head = fb;
    }
    fw->tail = fb;
}

static void finish(struct forwards *fw, struct forward_batch *fb, int rc)
{
    ASSERT(fw->bytes >= fb->bytes);
    fw->bytes -= fb->bytes;
    if (rc != 0) {
        log_warn("redrive: a batch of %zu bytes for %s/%d (leader %d): %s", fb->bytes, fb->topic,
                 fb->partition, fb->leader, err_str(rc));
    }
    fb->done(fb, rc);
}

/* Whether the batch goes again to whoever leads then: a Produce's retry
 * rule (proto_produce_retriable()), and what the link and the routing
 * add: no leader in the view yet (NG_ENOTFOUND), a TLS or protocol error
 * that ended the link (it is made again). */
static bool retriable(int rc)
{
    return proto_produce_retriable(rc) || rc == -NG_ENOTFOUND || rc == -NG_ETLS || rc == -NG_EPROTO;
}

/* fb failed with rc at its leader: routed again after the backoff, or
 * done when its time is up or rc is final. */
static void failed(struct forwards *fw, struct forward_batch *fb, int rc)
{
    int64_t now = (int64_t)loop_now_ms(&fw->s->loop);
    fb->last_err = rc;
    if (fw->stopping || !retriable(rc) || now >= fb->deadline_ms) {
        finish(fw, fb, rc);
        return;
    }
    fb->not_before_ms = now + FORWARD_BACKOFF_MS;
    waiting_push(fw, fb);
}

/* ---- links ---- */

static void link_failed_all(struct fwd_link *l, int rc)
{
    struct forward_batch *fb = l->sent_head;
    l->sent_head = l->sent_tail = NULL;
    while (fb != NULL) {
        struct forward_batch *next = fb->next;
        failed(l->fw, fb, rc);
        fb = next;
    }
}

/* l's connection failed before a Produce went (its ApiVersions): the
 * batches waiting for l's broker count it as their try. */
static void link_failed_waiting(struct fwd_link *l, int rc)
{
    int64_t now = (int64_t)loop_now_ms(&l->fw->s->loop);
    for (struct forward_batch *fb = l->fw->head; fb != NULL; fb = fb->next) {
        if (fb->leader == l->link.broker_id) {
            fb->last_err = rc;
            fb->not_before_ms = now >= fb->deadline_ms ? now : now + FORWARD_BACKOFF_MS;
        }
    }
}

static void note_error(struct fwd_link *l, int rc)
{
    if (rc != l->err_logged) {
        log_warn("redrive: forwarding to broker %d (%s:%u): %s", l->link.broker_id, l->link.host,
                 l->link.port, err_str(rc));
        l->err_logged = rc;
    }
}

/* The Produce answer: one entry per batch sent, in the request's order. */
static void apply_produce(struct fwd_link *l, struct rd *body)
{
    struct proto_dec d;
    int rc = proto_produce_resp_decode(body, 0, &d);
    struct forward_batch *fb = l->sent_head;
    l->sent_head = l->sent_tail = NULL;
    struct proto_topic t;
    while (rc == 0 && fb != NULL && proto_next_topic(&d, &t)) {
        struct proto_produce_resp_partition p;
        while (fb != NULL && proto_produce_resp_next_partition(&d, &p)) {
            struct forward_batch *next = fb->next;
            int err = p.partition != fb->partition ? -NG_EPROTO : p.err;
            if (err != 0) {
                note_error(l, err);
                failed(l->fw, fb, err);
            } else {
                finish(l->fw, fb, 0);
            }
            fb = next;
        }
    }
    while (fb != NULL) { /* the answer is short: not answered */
        struct forward_batch *next = fb->next;
        note_error(l, rc != 0 ? rc : -NG_EPROTO);
        failed(l->fw, fb, rc != 0 ? rc : -NG_EPROTO);
        fb = next;
    }
}

static void on_answer(struct peer *p, uint8_t *frame, struct rd *body, int rc)
{
    struct fwd_link *l = container_of(p, struct fwd_link, link);
    if (rc != 0) {
        l->frame_max = 0; /* the connection is made again: ask again */
        note_error(l, rc);
        /* The asker is told in the protocol's words: the leader did not
         * answer in time, or could not be reached (the log has why). */
        if (rc > -NG_ERR_FIRST) {
            rc = rc == -EAGAIN || rc == -ETIMEDOUT || rc == -EINPROGRESS ? -NG_ETIMEOUT
                                                                         : -NG_EDISCONNECTED;
        }
        link_failed_all(l, rc);
        if (l->asking) {
            link_failed_waiting(l, rc);
        }
    } else if (l->asking) {
        struct proto_api_versions_resp v;
        rc = proto_api_versions_resp_decode(body, 0, &v);
        l->frame_max = rc == 0 ? v.frame_bytes_max : 0;
        if (rc != 0) {
            note_error(l, rc);
            link_failed_waiting(l, rc);
        }
    } else {
        l->err_logged = 0;
        apply_produce(l, body);
    }
    l->asking = false;
    free(frame);
    pump(l->fw);
}

static void forwards_free_if_done(struct forwards *fw)
{
    if (fw->stopping && fw->links == NULL) {
        fw->s->forwards = NULL;
        free(fw);
    }
}

static void on_link_exit(struct peer *p)
{
    struct fwd_link *l = container_of(p, struct fwd_link, link);
    struct forwards *fw = l->fw;
    struct fwd_link **at = &fw->links;
    while (*at != l) {
        at = &(*at)->next;
    }
    *at = l->next;
    peer_fini(&l->link);
    free(l);
    forwards_free_if_done(fw);
}

/* The link to broker id where the view has it, made when there is none;
 * NULL when the view lists no such broker or it cannot be made. */
static struct fwd_link *link_of(struct forwards *fw, int32_t id)
{
    const struct cluster_broker *b =
        fw->s->view != NULL ? cluster_view_broker(fw->s->view, id) : NULL;
    if (b == NULL) {
        return NULL;
    }
    for (struct fwd_link *l = fw->links; l != NULL; l = l->next) {
        if (!l->link.stopping && peer_is(&l->link, b)) {
            return l;
        }
    }
    struct fwd_link *l = calloc(1, sizeof(*l));
    int rc = l == NULL ? -ENOMEM
                       : peer_start(&l->link, fw->s, b, "redrive",
                                    FORWARD_PRODUCE_TIMEOUT_MS + FORWARD_IO_MARGIN_MS, on_answer,
                                    on_link_exit);
    if (rc != 0) {
        log_error("redrive: a link to broker %d: %s", id, err_str(rc));
        free(l);
        return NULL;
    }
    l->fw = fw;
    l->next = fw->links;
    fw->links = l;
    log_info("redrive: forwarding to broker %d at %s:%u%s", b->id, b->host, b->port,
             l->link.tls != NULL ? " over TLS" : "");
    return l;
}

/* ---- requests ---- */

static uint32_t request_max(const struct fwd_link *l)
{
    uint32_t ours = l->fw->s->cfg.frame_bytes_max;
    return l->frame_max < ours ? l->frame_max : ours;
}

static void send_versions(struct fwd_link *l)
{
    size_t need = 64 + sizeof(FORWARD_CLIENT_ID); /* the header and an empty body */
    uint8_t *buf = malloc(need);
    struct wr w = wr_make(buf, need);
    int rc = buf == NULL ? -ENOMEM
                         : proto_api_versions_req_encode(&w, 0, ++l->corr,
                                                         proto_str_make(FORWARD_CLIENT_ID));
    if (rc != 0) {
        free(buf);
        note_error(l, rc);
        return;
    }
    l->asking = true;
    peer_send(&l->link, buf, w.pos, l->corr);
}

/* Takes from the waiting list, in order, the batches due for l's broker
 * that fit one request, onto l's sent list; their bytes in *bytes_out. */
static uint32_t take_batches(struct fwd_link *l, int64_t now, size_t *bytes_out)
{
    struct forwards *fw = l->fw;
    size_t max = request_max(l);
    size_t bytes = FORWARD_REQ_HEAD_BYTES;
    uint32_t n = 0;
    struct forward_batch **at = &fw->head;
    struct forward_batch *prev = NULL;
    while (*at != NULL && n < PROTO_REQUEST_PARTITIONS_MAX) {
        struct forward_batch *fb = *at;
        size_t entry = FORWARD_ENTRY_BYTES(fb->topic_len, fb->bytes);
        if (fb->leader == l->link.broker_id && FORWARD_REQ_HEAD_BYTES + entry > max) {
            fb->last_err = -NG_ETOOBIG; /* the peer takes no request this large: ends */
            fb->deadline_ms = now;
        }
        if (fb->leader != l->link.broker_id || fb->not_before_ms > now || bytes + entry > max) {
            prev = fb;
            at = &fb->next;
            continue;
        }
        *at = fb->next;
        if (fw->tail == fb) {
            fw->tail = prev;
        }
        fb->next = NULL;
        if (l->sent_tail != NULL) {
            l->sent_tail->next = fb;
        } else {
            l->sent_head = fb;
        }
        l->sent_tail = fb;
        bytes += entry;
        n++;
    }
    *bytes_out = bytes;
    return n;
}

/* Sends l's next request: ApiVersions on a new connection, else a Produce
 * of every batch due there that fits. */
static void link_next(struct fwd_link *l, int64_t now)
{
    if (l->link.inflight || l->link.stopping) {
        return;
    }
    if (l->frame_max == 0) {
        send_versions(l);
        return;
    }
    size_t bytes;
    if (take_batches(l, now, &bytes) == 0) {
        return;
    }
    uint8_t *buf = malloc(PROTO_FRAME_PREFIX_BYTES + bytes);
    if (buf == NULL) {
        link_failed_all(l, -ENOMEM);
        return;
    }
    struct wr w = wr_make(buf, PROTO_FRAME_PREFIX_BYTES + bytes);
    struct proto_enc e;
    struct proto_produce_req q = {.acks = PROTO_ACKS_ALL, .timeout_ms = FORWARD_PRODUCE_TIMEOUT_MS};
    proto_produce_req_begin(&e, &w, 0, ++l->corr, proto_str_make(FORWARD_CLIENT_ID), &q);
    const char *topic = NULL;
    for (struct forward_batch *fb = l->sent_head; fb != NULL; fb = fb->next) {
        if (topic == NULL || strcmp(topic, fb->topic) != 0) {
            topic = fb->topic;
            proto_enc_topic(&e,
                            (struct proto_str){.ptr = fb->topic, .len = (int32_t)fb->topic_len});
        }
        struct proto_produce_req_partition p = {
            .partition = fb->partition, .records = fb->batch, .records_bytes = (uint32_t)fb->bytes};
        proto_produce_req_partition(&e, &p);
    }
    int rc = proto_enc_end(&e);
    if (rc != 0) {
        free(buf);
        link_failed_all(l, rc);
        return;
    }
    peer_send(&l->link, buf, w.pos, l->corr);
}

/* The broker leading fb's partition in the view (-1: none known now). */
static int32_t leader_of(const struct server *s, const struct forward_batch *fb)
{
    const struct cluster_partition *p =
        s->view != NULL ? cluster_view_partition(s->view, fb->topic, fb->topic_len, fb->partition)
                        : NULL;
    return p != NULL ? p->leader : -1;
}

/* Routes the waiting batches that are due, ends those whose time is up,
 * sends on every idle link, and comes back while any wait. */
static void pump(struct forwards *fw)
{
    struct server *s = fw->s;
    int64_t now = (int64_t)loop_now_ms(&s->loop);
    struct forward_batch *fb = fw->head;
    fw->head = fw->tail = NULL;
    while (fb != NULL) {
        struct forward_batch *next = fb->next;
        bool due = fb->not_before_ms <= now;
        fb->leader = due ? leader_of(s, fb) : fb->leader;
        if (due && fb->last_err != 0 && (now >= fb->deadline_ms || !retriable(fb->last_err))) {
            finish(fw, fb, fb->last_err); /* tried, and its time is up */
        } else if (due && (fb->leader < 0 || link_of(fw, fb->leader) == NULL)) {
            fb->last_err = -NG_ENOT_LEADER; /* none known, or not live: the next view */
            fb->not_before_ms = now >= fb->deadline_ms ? now : now + FORWARD_BACKOFF_MS;
            waiting_push(fw, fb);
        } else {
            waiting_push(fw, fb);
        }
        fb = next;
    }
    for (struct fwd_link *l = fw->links; l != NULL; l = l->next) {
        /* A link idle to a broker gone from the view (or moved) ends. */
        const struct cluster_broker *b =
            s->view != NULL ? cluster_view_broker(s->view, l->link.broker_id) : NULL;
        if (!l->link.inflight && (b == NULL || !peer_is(&l->link, b))) {
            peer_stop(&l->link);
        }
        link_next(l, now);
    }
    if (fw->head != NULL && !fw->stopping) {
        loop_timer_arm(&s->loop, &fw->timer, FORWARD_BACKOFF_MS);
    }
}

int forward_send(struct server *s, struct forward_batch *fb)
{
    ASSERT(broker_config_clustered(&s->cfg) && fb->done != NULL && fb->topic_len > 0);
    if (s->loop.stopping) {
        return -NG_ECLOSED;
    }
    if (FORWARD_REQ_HEAD_BYTES + FORWARD_ENTRY_BYTES(fb->topic_len, fb->bytes) >
        s->cfg.frame_bytes_max) {
        return -NG_ETOOBIG;
    }
    struct forwards *fw = s->forwards;
    if (fw == NULL) {
        fw = calloc(1, sizeof(*fw));
        if (fw == NULL) {
            return -ENOMEM;
        }
        fw->s = s;
        loop_timer_init(&fw->timer, on_timer, fw);
        s->forwards = fw;
    }
    if (fw->bytes + fb->bytes > FORWARD_BYTES_MAX) {
        return -NG_EBUSY;
    }
    int64_t now = (int64_t)loop_now_ms(&s->loop);
    fb->deadline_ms = now + (int64_t)s->cfg.redrive_retry_ms;
    fb->not_before_ms = now;
    fb->leader = -1;
    fb->last_err = 0;
    fw->bytes += fb->bytes;
    waiting_push(fw, fb);
    loop_timer_arm(&s->loop, &fw->timer, 0); /* routed in the next iteration */
    return 0;
}

void forwarders_stop(struct server *s)
{
    struct forwards *fw = s->forwards;
    if (fw == NULL) {
        return;
    }
    fw->stopping = true;
    (void)loop_timer_cancel(&s->loop, &fw->timer);
    for (struct fwd_link *l = fw->links; l != NULL; l = l->next) {
        peer_stop(&l->link);
        peer_join(&l->link);
        link_failed_all(l, -NG_ECLOSED); /* no answer comes now */
    }
    struct forward_batch *fb = fw->head;
    fw->head = fw->tail = NULL;
    while (fb != NULL) {
        struct forward_batch *next = fb->next;
        finish(fw, fb, -NG_ECLOSED);
        fb = next;
    }
    forwards_free_if_done(fw);
}
