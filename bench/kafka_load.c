/*
 * bench/kafka_load.c — load.c's Kafka-protocol clients on librdkafka (see
 * kafka_load.h).
 */
#include "bench/kafka_load.h"

#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench/kafka_direct.h"
#include "client/nagare.h"

/* Records a consumer takes from librdkafka's queue per call. */
#define KLOAD_CONSUME_BATCH 1024
/* librdkafka's bounds on the queue (queue.buffering.max.*). */
#define KLOAD_QUEUE_MESSAGES_MAX 10000000u
#define KLOAD_QUEUE_KBYTES_MAX 2147483647u
#define KLOAD_ERRSTR_BYTES 512
/* The consumer group librdkafka needs for its consumer queue; it never
 * joins it (partitions are assigned) and commits nothing. */
#define KLOAD_GROUP "nagare-bench"

struct kload_producer {
    struct kdirect_producer *direct; /* LOAD_KAFKA_DIRECT; else librdkafka's: */
    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt;
    load_delivered_fn *on_delivered;
    void *opaque;
};

struct kload_consumer {
    struct kdirect *direct; /* LOAD_KAFKA_DIRECT; else librdkafka's: */
    rd_kafka_t *rk;
    rd_kafka_queue_t *queue;
    rd_kafka_message_t *batch[KLOAD_CONSUME_BATCH];
    size_t count; /* batch[next..count) are still to be handed out */
    size_t next;
};

const char *kload_version(void) { return rd_kafka_version_str(); }

static int conf_set(rd_kafka_conf_t *conf, const char *name, const char *value)
{
    char errstr[KLOAD_ERRSTR_BYTES];
    if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "nagare-bench: librdkafka %s=%s: %s\n", name, value, errstr);
        return -NAGARE_EBADARG;
    }
    return 0;
}

static int conf_set_u64(rd_kafka_conf_t *conf, const char *name, uint64_t v)
{
    char text[24];
    snprintf(text, sizeof(text), "%llu", (unsigned long long)v);
    return conf_set(conf, name, text);
}

/* librdkafka's TLS settings for --tls (nothing when it is off). */
static int conf_tls(rd_kafka_conf_t *conf, const struct nagare_tls *t)
{
    if (t == NULL || !t->enabled) {
        return 0;
    }
    int rc = conf_set(conf, "security.protocol", "ssl");
    rc = rc == 0 && t->ca_file != NULL ? conf_set(conf, "ssl.ca.location", t->ca_file) : rc;
    rc = rc == 0 && t->cert_file != NULL ? conf_set(conf, "ssl.certificate.location", t->cert_file)
                                         : rc;
    rc = rc == 0 && t->key_file != NULL ? conf_set(conf, "ssl.key.location", t->key_file) : rc;
    return rc;
}

static rd_kafka_t *client_new(rd_kafka_type_t type, rd_kafka_conf_t *conf)
{
    char errstr[KLOAD_ERRSTR_BYTES];
    rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        fprintf(stderr, "nagare-bench: librdkafka: %s\n", errstr);
        rd_kafka_conf_destroy(conf); /* rd_kafka_new owns it only on success */
    }
    return rk;
}

static int from_rdkafka(rd_kafka_resp_err_t err, const char *what)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR_NO_ERROR:
        return 0;
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
        return -NAGARE_EBUSY;
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
        return -NAGARE_ETIMEOUT;
    default:
        fprintf(stderr, "nagare-bench: librdkafka %s: %s\n", what, rd_kafka_err2str(err));
        return -EIO;
    }
}

/* ---- producer ---- */

static void on_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    struct kload_producer *p = opaque;
    int err = m->err == RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : from_rdkafka(m->err, "delivery");
    p->on_delivered(p->opaque, err, (uint64_t)(uintptr_t)m->_private);
}

int kload_producer_new(const struct load_cfg *cfg, load_delivered_fn *on_delivered, void *opaque,
                       struct kload_producer **out)
{
    *out = NULL;
    struct kload_producer *p = calloc(1, sizeof(*p));
    if (p != NULL && cfg->kafka_client == LOAD_KAFKA_DIRECT) {
        int rc = kdirect_producer_new(cfg, on_delivered, opaque, &p->direct);
        if (rc != 0) {
            free(p);
            return rc;
        }
        *out = p;
        return 0;
    }
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (p == NULL || conf == NULL) {
        free(p);
        if (conf != NULL) {
            rd_kafka_conf_destroy(conf);
        }
        return -ENOMEM;
    }
    p->on_delivered = on_delivered;
    p->opaque = opaque;
    size_t buffer = cfg->buffer_bytes_max > 0 ? cfg->buffer_bytes_max : 64u << 20;
    uint64_t kb = buffer / 1024 < KLOAD_QUEUE_KBYTES_MAX ? buffer / 1024 : KLOAD_QUEUE_KBYTES_MAX;
    uint64_t msgs = buffer / (cfg->record_bytes + 1u);
    msgs = msgs < 1000 ? 1000 : msgs > KLOAD_QUEUE_MESSAGES_MAX ? KLOAD_QUEUE_MESSAGES_MAX : msgs;
    const char *acks = cfg->acks < 0 ? "all" : cfg->acks == 0 ? "0" : "1";
    const char *codec = cfg->compression == NAGARE_COMPRESSION_ZSTD ? "zstd" : "none";
    int rc = conf_set(conf, "bootstrap.servers", cfg->bootstrap);
    rc = rc == 0 ? conf_tls(conf, cfg->tls) : rc;
    rc = rc == 0 ? conf_set(conf, "acks", acks) : rc;
    rc = rc == 0 ? conf_set(conf, "enable.idempotence", cfg->idempotent ? "true" : "false") : rc;
    rc = rc == 0 ? conf_set(conf, "compression.codec", codec) : rc;
    rc = rc == 0 ? conf_set_u64(conf, "batch.size", cfg->batch_bytes) : rc;
    rc = rc == 0 ? conf_set_u64(conf, "linger.ms", cfg->linger_ms) : rc;
    rc = rc == 0 ? conf_set_u64(conf, "max.in.flight.requests.per.connection", cfg->inflight) : rc;
    rc = rc == 0 ? conf_set_u64(conf, "queue.buffering.max.kbytes", kb) : rc;
    rc = rc == 0 ? conf_set_u64(conf, "queue.buffering.max.messages", msgs) : rc;
    if (rc != 0) {
        rd_kafka_conf_destroy(conf);
        free(p);
        return rc;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_dr);
    rd_kafka_conf_set_opaque(conf, p);
    p->rk = client_new(RD_KAFKA_PRODUCER, conf);
    p->rkt = p->rk != NULL ? rd_kafka_topic_new(p->rk, cfg->topic, NULL) : NULL;
    if (p->rkt == NULL) {
        kload_producer_destroy(p);
        return -EIO;
    }
    *out = p;
    return 0;
}

void kload_producer_destroy(struct kload_producer *p)
{
    if (p == NULL) {
        return;
    }
    kdirect_producer_destroy(p->direct);
    if (p->rkt != NULL) {
        rd_kafka_topic_destroy(p->rkt);
    }
    if (p->rk != NULL) {
        rd_kafka_destroy(p->rk);
    }
    free(p);
}

int kload_send(struct kload_producer *p, const void *value, size_t len, uint64_t at)
{
    if (p->direct != NULL) {
        return kdirect_send(p->direct, value, len, at);
    }
    int rc = rd_kafka_produce(p->rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, (void *)value,
                              len, NULL, 0, (void *)(uintptr_t)at);
    return rc == 0 ? 0 : from_rdkafka(rd_kafka_last_error(), "produce");
}

int kload_producer_poll(struct kload_producer *p, int timeout_ms)
{
    if (p->direct != NULL) {
        return kdirect_producer_poll(p->direct, timeout_ms);
    }
    (void)rd_kafka_poll(p->rk, timeout_ms);
    return 0;
}

int kload_producer_flush(struct kload_producer *p, int timeout_ms)
{
    if (p->direct != NULL) {
        return kdirect_producer_flush(p->direct, timeout_ms);
    }
    return from_rdkafka(rd_kafka_flush(p->rk, timeout_ms), "flush");
}

/* ---- consumer ---- */

int kload_consumer_new(const struct load_cfg *cfg, int32_t first, int32_t step,
                       struct kload_consumer **out)
{
    ASSERT(first >= 0 && step > 0);
    *out = NULL;
    struct kload_consumer *c = calloc(1, sizeof(*c));
    if (c != NULL && cfg->kafka_client == LOAD_KAFKA_DIRECT) {
        int rc = kdirect_new(cfg, first, step, &c->direct);
        if (rc != 0) {
            free(c);
            return rc;
        }
        *out = c;
        return 0;
    }
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (c == NULL || conf == NULL) {
        free(c);
        if (conf != NULL) {
            rd_kafka_conf_destroy(conf);
        }
        return -ENOMEM;
    }
    int rc = conf_set(conf, "bootstrap.servers", cfg->bootstrap);
    rc = rc == 0 ? conf_tls(conf, cfg->tls) : rc;
    rc = rc == 0 ? conf_set(conf, "group.id", KLOAD_GROUP) : rc;
    rc = rc == 0 ? conf_set(conf, "enable.auto.commit", "false") : rc;
    rc = rc == 0 ? conf_set(conf, "enable.auto.offset.store", "false") : rc;
    /* sizes not given: librdkafka's defaults */
    if (rc == 0 && cfg->fetch_bytes_max > 0) {
        rc = conf_set_u64(conf, "fetch.max.bytes", cfg->fetch_bytes_max);
    }
    if (rc == 0 && cfg->partition_fetch_bytes_max > 0) {
        rc = conf_set_u64(conf, "max.partition.fetch.bytes", cfg->partition_fetch_bytes_max);
    }
    if (rc != 0) {
        rd_kafka_conf_destroy(conf);
        free(c);
        return rc;
    }
    c->rk = client_new(RD_KAFKA_CONSUMER, conf);
    if (c->rk == NULL) {
        free(c);
        return -EIO;
    }
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
    int64_t from = cfg->from_end ? RD_KAFKA_OFFSET_END : RD_KAFKA_OFFSET_BEGINNING;
    for (int32_t i = first; i < cfg->partitions; i += step) {
        rd_kafka_topic_partition_list_add(parts, cfg->topic, i)->offset = from;
    }
    rc = from_rdkafka(rd_kafka_poll_set_consumer(c->rk), "consumer queue");
    rc = rc == 0 ? from_rdkafka(rd_kafka_assign(c->rk, parts), "assign") : rc;
    rd_kafka_topic_partition_list_destroy(parts);
    c->queue = rc == 0 ? rd_kafka_queue_get_consumer(c->rk) : NULL;
    if (c->queue == NULL) {
        kload_consumer_destroy(c);
        return rc != 0 ? rc : -EIO;
    }
    *out = c;
    return 0;
}

static void batch_release(struct kload_consumer *c)
{
    for (size_t i = 0; i < c->count; i++) {
        rd_kafka_message_destroy(c->batch[i]);
    }
    c->count = 0;
    c->next = 0;
}

void kload_consumer_destroy(struct kload_consumer *c)
{
    if (c == NULL) {
        return;
    }
    kdirect_destroy(c->direct);
    batch_release(c);
    if (c->queue != NULL) {
        rd_kafka_queue_destroy(c->queue);
    }
    if (c->rk != NULL) {
        (void)rd_kafka_consumer_close(c->rk);
        rd_kafka_destroy(c->rk);
    }
    free(c);
}

int kload_consumer_poll(struct kload_consumer *c, int timeout_ms, const void **value, size_t *len)
{
    if (c->direct != NULL) {
        return kdirect_poll(c->direct, timeout_ms, value, len);
    }
    if (c->next == c->count) {
        batch_release(c);
        ssize_t n =
            rd_kafka_consume_batch_queue(c->queue, timeout_ms, c->batch, KLOAD_CONSUME_BATCH);
        if (n < 0) {
            return from_rdkafka(rd_kafka_last_error(), "consume");
        }
        c->count = (size_t)n;
        if (n == 0) {
            return 0;
        }
    }
    const rd_kafka_message_t *m = c->batch[c->next++];
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "nagare-bench: librdkafka consume: %s\n", rd_kafka_message_errstr(m));
        return -EIO;
    }
    *value = m->payload;
    *len = m->len;
    return 1;
}
