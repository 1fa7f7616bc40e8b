/*
 * client/producer.c — the producer's life cycle and its poll loop: connect,
 * InitProducerId, metadata for the topics it writes to (and each
 * partition's leader: Metadata v2), reconnecting with backoff, delivery
 * reports. The send path is accum.c, requests sender.c.
 *
 * Metadata and InitProducerId go to the bootstrap connection; produce
 * requests to each partition's leader (client/brokers.h), whose connection
 * is opened once it leads a partition with records. A broker that speaks
 * Metadata before v2 leads everything it has. A leader that keeps a
 * produce unanswered for stall_ms has another broker asked who leads
 * ("stalls" below).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client/producer_int.h"

/* Answers to a producer are small (partition results, metadata of the
 * topics it writes to); this bounds what it reads. */
#define PRODUCER_RESP_BYTES_MAX (4u << 20)
/* Send queue: a few requests of full batches; raised to one broker frame. */
#define PRODUCER_TX_BYTES_MAX (16u << 20)
/* Requests besides produce ones: a Metadata and a probe. */
#define PRODUCER_PENDING_EXTRA 4
/* stall_ms's default: a paused leader's successor comes once its etcd
 * lease runs out (about 6 s, docs/cluster.md), so asking every 2 s finds
 * it within 2 s of its election, far sooner than the request timeout
 * (30 s); one Metadata request per stalled broker every 2 s costs the
 * cluster nothing. */
#define STALL_MS_DEFAULT 2000
/* Limits on configuration values, each with its reason. */
#define BATCH_BYTES_MIN 1024u         /* room for a header and a few records */
#define INFLIGHT_MAX_LIMIT 1024u      /* far beyond any useful pipeline */
#define HEADERS_PER_RECORD_MAX 65535u /* a header count is a varint; keep it sane */

void nagare_producer_config_default(struct nagare_producer_config *c)
{
    *c = (struct nagare_producer_config){
        .bootstrap = "127.0.0.1:7420",
        .acks = -1,
        .compression = NAGARE_COMPRESSION_ZSTD,
        .zstd_level = 3,
        .batch_bytes = 64 * 1024,
        .linger_ms = 5,
        .idempotent = true,
        .delivery_timeout_ms = 120000,
        .request_timeout_ms = 30000,
        .stall_ms = STALL_MS_DEFAULT,
        .retry_backoff_ms = 100,
        .inflight_max = 5,
        .buffer_bytes_max = 64u << 20,
    };
}

static int config_check(const struct nagare_producer_config *c)
{
    bool ok =
        c->bootstrap != NULL && (c->acks == 0 || c->acks == 1 || c->acks == -1) &&
        (c->compression == NAGARE_COMPRESSION_NONE || c->compression == NAGARE_COMPRESSION_ZSTD) &&
        c->zstd_level >= -7 && c->zstd_level <= 22 && c->batch_bytes >= BATCH_BYTES_MIN &&
        c->batch_bytes <= BATCH_BYTES_LIMIT && c->buffer_bytes_max >= c->batch_bytes &&
        c->delivery_timeout_ms > 0 && c->request_timeout_ms > 0 &&
        c->request_timeout_ms <= INT32_MAX && c->retry_backoff_ms > 0 && c->inflight_max > 0 &&
        c->inflight_max <= INFLIGHT_MAX_LIMIT;
    return ok ? 0 : -NG_EBADARG;
}

/* ---- InitProducerId ---- */

static int init_pid_encode(void *arg, struct wr *w, uint32_t corr, uint16_t version)
{
    (void)arg;
    return proto_init_producer_id_req_encode(w, version, corr, proto_str_make(CONN_CLIENT_ID));
}

static int init_pid_decode(void *arg, struct rd *body, uint16_t version)
{
    struct nagare_producer *p = arg;
    struct proto_init_producer_id_resp r;
    int rc = proto_init_producer_id_resp_decode(body, version, &r);
    if (rc != 0) {
        return -NG_EPROTO;
    }
    if (r.producer_id < 0 || r.producer_epoch < 0) {
        return -NG_EPROTO;
    }
    p->producer_id = r.producer_id;
    p->producer_epoch = r.producer_epoch;
    return 0;
}

/* ---- create, destroy ---- */

static int producer_open(struct nagare_producer *p)
{
    struct conn_config cc = {
        .bootstrap = p->cfg.bootstrap,
        .request_timeout_ms = p->cfg.request_timeout_ms,
        .resp_bytes_max = PRODUCER_RESP_BYTES_MAX,
        .tx_bytes_max = PRODUCER_TX_BYTES_MAX,
        .pending_max = p->cfg.inflight_max + PRODUCER_PENDING_EXTRA,
    };
    const struct nagare_login *l = &p->cfg.login;
    int rc = conn_login_make(&cc.login, l->user, l->password, l->mechanism);
    p->cfg.login = (struct nagare_login){0}; /* the caller's strings: copied, not kept */
    rc = rc == 0 ? conn_config_tls(&cc, &p->cfg.tls) : rc;
    rc = rc == 0 ? brokers_init(&p->brokers, &cc) : rc;
    conn_config_tls_done(&cc);
    explicit_bzero(&cc.login, sizeof(cc.login));
    if (rc != 0) {
        return rc;
    }
    if (p->cfg.compression == NAGARE_COMPRESSION_ZSTD) {
        rc = batch_zctx_init(&p->zctx, p->grown_buf_bytes, p->cfg.zstd_level);
        if (rc != 0) {
            return rc;
        }
    }
    struct client_conn *boot = &p->brokers.boot->conn;
    rc = conn_wait_up(boot, (int)p->cfg.request_timeout_ms);
    if (rc != 0) {
        return rc;
    }
    if (p->cfg.idempotent) {
        rc = conn_call(boot, PROTO_API_INIT_PRODUCER_ID, 128, init_pid_encode, init_pid_decode, p,
                       clock_mono_ms() + p->cfg.request_timeout_ms);
    }
    return rc;
}

static void producer_free(struct nagare_producer *p)
{
    brokers_fini(&p->brokers);
    accum_free_all(p);
    sender_free(p);
    batch_zctx_fini(&p->zctx);
    free(p);
}

int nagare_producer_new(const struct nagare_producer_config *c, nagare_producer **out)
{
    if (c == NULL || out == NULL || config_check(c) != 0) {
        return -NG_EBADARG;
    }
    *out = NULL;
    struct nagare_producer *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return -ENOMEM;
    }
    p->cfg = *c;
    size_t n = strlen(c->bootstrap);
    if (n >= sizeof(p->bootstrap)) {
        free(p);
        return -NG_EBADARG;
    }
    memcpy(p->bootstrap, c->bootstrap, n + 1);
    p->cfg.bootstrap = p->bootstrap;
    p->producer_id = -1;
    p->pool_buf_bytes = c->batch_bytes;
    /* Growth stops at the broker's default largest batch too (a topic's
     * own limit is applied as a batch grows). */
    size_t grown = c->batch_bytes * BATCH_GROWTH_MAX;
    grown = grown < TOPIC_BATCH_BYTES_DEFAULT ? grown : TOPIC_BATCH_BYTES_DEFAULT;
    p->grown_buf_bytes = grown > c->batch_bytes ? grown : c->batch_bytes;
    p->rng = (uint64_t)clock_wall_ms() * 0x9e3779b97f4a7c15ull | 1;
    int rc = producer_open(p);
    if (rc != 0) {
        producer_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

/* ---- metadata ---- */

void producer_want_metadata(struct nagare_producer *p, struct ptopic *t)
{
    (void)p;
    if (!t->meta_inflight) {
        t->meta_wanted = true;
    }
}

static void meta_topic_missing(struct nagare_producer *p, struct ptopic *t, int err);

/* A Metadata answer names b (NULL: none known) leader of pp, at an epoch
 * not older than pp knew. When pp's batches are out at another broker
 * that has kept a request unanswered for stall_ms, that broker no longer
 * leads pp and may never answer (paused or cut off: see "stalls" below):
 * its connection is given up at the next pass. */
static void stall_drop_if(struct nagare_producer *p, const struct ppart *pp,
                          const struct cbroker *b)
{
    struct cbroker *x = pp->inflight_to;
    if (p->cfg.stall_ms > 0 && b != NULL && pp->inflight > 0 && x != b &&
        brokers_stalled(x, p->cfg.stall_ms, 0, clock_mono_ms())) {
        x->stall_drop = true;
    }
}

/* Each partition's leader from the answer's partitions (v2), or the
 * bootstrap broker for all of them (before v2: a single broker). A
 * partition without a leader, or led by a broker not connectable, waits
 * for the next refresh, which is asked for. */
static void meta_leaders(struct nagare_producer *p, struct ptopic *t, struct proto_dec *d,
                         uint16_t version)
{
    if (version < 2) {
        for (int32_t k = 0; k < t->parts_len; k++) {
            cbroker_lead(&t->parts[k].leader, p->brokers.boot);
        }
        return;
    }
    bool leaderless = false;
    struct proto_metadata_partition mp;
    while (proto_metadata_resp_next_partition(d, &mp)) {
        if (mp.partition < 0 || mp.partition >= t->parts_len) {
            continue;
        }
        struct cbroker *b = brokers_find(&p->brokers, mp.leader);
        struct ppart *pp = &t->parts[mp.partition];
        if (mp.leader_epoch >= pp->leader_epoch) {
            stall_drop_if(p, pp, b);
        }
        if (b != NULL && b != pp->inflight_to && pp->inflight == 0) {
            /* A new leader, not the broker the last batches went to (and
             * failed at, if they did): it is tried at once rather than
             * after the backoff earned at the old one (Kafka's KIP-951). */
            pp->backoff_until_ms = 0;
            pp->backoff_ms = 0;
        }
        cbroker_lead(&pp->leader, b);
        pp->leader_epoch = mp.leader_epoch;
        leaderless = leaderless || b == NULL;
    }
    if (leaderless) {
        producer_want_metadata(p, t);
    }
}

/* Records one topic of a Metadata answer. */
static void meta_topic(struct nagare_producer *p, const struct proto_topic *pt, int32_t parts,
                       struct proto_dec *d, uint16_t version)
{
    struct ptopic *t = NULL;
    for (uint32_t i = 0; i < p->topic_slots && t == NULL; i++) {
        struct ptopic *c = p->topics[i];
        if (c != NULL && c->meta_inflight && proto_str_eq(pt->name, c->name)) {
            t = c;
        }
    }
    if (t == NULL) {
        return; /* not one we asked about: ignore */
    }
    t->meta_inflight = false;
    if (pt->err != 0) {
        meta_topic_missing(p, t, pt->err);
        return;
    }
    uint32_t bbm = pt->config.batch_bytes_max > 0 ? (uint32_t)pt->config.batch_bytes_max
                                                  : TOPIC_BATCH_BYTES_DEFAULT;
    if (parts < 1 || parts > PROTO_PARTITIONS_MAX || accum_topic_known(p, t, parts, bbm) != 0) {
        meta_topic_missing(p, t, parts < 1 ? -NG_EPROTO : -ENOMEM);
        return;
    }
    meta_leaders(p, t, d, version);
}

static void meta_done(void *arg, int err, struct rd *body, uint16_t version)
{
    struct nagare_producer *p = arg;
    p->meta_inflight = false;
    struct proto_metadata_resp m;
    struct proto_dec d;
    if (err == 0 && proto_metadata_resp_decode(body, version, &m, &d) == 0) {
        /* Brokers first: the partitions name their leaders by id. */
        if (version >= 2) {
            brokers_update(&p->brokers, p->meta_on, &m);
        }
        struct proto_topic t;
        while (proto_next_topic(&d, &t)) {
            int32_t parts = version >= 1 ? t.config.partition_count : t.partition_count;
            meta_topic(p, &t, parts, &d, version);
        }
    }
    /* Topics the answer did not settle are asked about again. */
    for (uint32_t i = 0; i < p->topic_slots; i++) {
        struct ptopic *t = p->topics[i];
        if (t != NULL && t->meta_inflight) {
            t->meta_inflight = false;
            t->meta_wanted = true;
        }
    }
}

static void metadata_send(struct nagare_producer *p)
{
    struct wr w;
    uint32_t corr;
    size_t need = 64;
    for (uint32_t i = 0; i < p->topic_slots; i++) {
        struct ptopic *t = p->topics[i];
        need += t != NULL && t->meta_wanted && !t->probing ? t->name_len + 2 : 0;
    }
    struct cbroker *on = brokers_meta(&p->brokers);
    if (on == NULL || conn_frame_begin(&on->conn, need, &w, &corr) != 0) {
        return;
    }
    uint16_t version = conn_version(&on->conn, PROTO_API_METADATA);
    struct proto_enc e;
    proto_metadata_req_begin(&e, &w, version, corr, proto_str_make(CONN_CLIENT_ID), false);
    for (uint32_t i = 0; i < p->topic_slots; i++) {
        struct ptopic *t = p->topics[i];
        if (t != NULL && t->meta_wanted && !t->probing) {
            proto_enc_topic(&e, (struct proto_str){.ptr = t->name, .len = (int32_t)t->name_len});
            t->meta_wanted = false;
            t->meta_inflight = true;
        }
    }
    int rc = proto_enc_end(&e);
    ASSERT(rc == 0);
    conn_frame_commit(&on->conn, &w, corr, PROTO_API_METADATA, version, false,
                      p->cfg.request_timeout_ms, meta_done, p);
    p->meta_inflight = true;
    p->meta_on = on;
    /* Refreshes (a leader moved) go at most once per retry backoff. */
    p->meta_next_ms = clock_mono_ms() + p->cfg.retry_backoff_ms;
}

static bool metadata_wanted(const struct nagare_producer *p)
{
    for (uint32_t i = 0; i < p->topic_slots; i++) {
        if (p->topics[i] != NULL && p->topics[i]->meta_wanted && !p->topics[i]->probing) {
            return true;
        }
    }
    return false;
}

/* ---- stalls: a leader paused or cut off ---- */

/* A paused broker's kernel keeps its connections open, and one cut off
 * loses packets silently: either way its requests get no answer until
 * request_timeout_ms, while the cluster elects a successor once its lease
 * runs out (docs/cluster.md, section 6). So a broker keeping a produce
 * request unanswered for stall_ms has another broker asked for metadata
 * of the topics it leads partitions of, again every stall_ms while the
 * wait lasts. Only an answer (this one or any other) naming another
 * leader, at an epoch not older than known, for a partition whose batches
 * wait at a stalled broker gives that connection up (stall_drop_if(); a
 * slow leader still named is waited for): its requests fail as for a lost
 * connection, and their batches go in order to the new leader. */
struct stall_ask {
    struct nagare_producer *p;
    struct cbroker *on; /* asked */
};

/* Whether t has a partition led by b or with batches out at b. */
static bool topic_on(const struct ptopic *t, const struct cbroker *b)
{
    for (int32_t k = 0; t->state == PT_KNOWN && k < t->parts_len; k++) {
        const struct ppart *pp = &t->parts[k];
        if (pp->leader == b || (pp->inflight > 0 && pp->inflight_to == b)) {
            return true;
        }
    }
    return false;
}

/* Takes the leaders of one topic of a stall answer that are not older
 * than those known. */
static void stall_leaders(struct nagare_producer *p, struct ptopic *t, struct proto_dec *d)
{
    struct proto_metadata_partition mp;
    while (proto_metadata_resp_next_partition(d, &mp)) {
        if (mp.partition < 0 || mp.partition >= t->parts_len) {
            continue;
        }
        struct ppart *pp = &t->parts[mp.partition];
        struct cbroker *b = brokers_find(&p->brokers, mp.leader);
        if (b == NULL || mp.leader_epoch < pp->leader_epoch) {
            continue; /* an answer older than what is known */
        }
        stall_drop_if(p, pp, b);
        cbroker_lead(&pp->leader, b);
        pp->leader_epoch = mp.leader_epoch;
    }
}

static void stall_done(void *arg, int err, struct rd *body, uint16_t version)
{
    struct stall_ask ask = *(struct stall_ask *)arg;
    free(arg);
    struct nagare_producer *p = ask.p;
    struct proto_metadata_resp m;
    struct proto_dec d;
    if (err != 0 || version < 2 || proto_metadata_resp_decode(body, version, &m, &d) != 0) {
        return; /* asked again after stall_ms while the wait lasts */
    }
    brokers_update(&p->brokers, ask.on, &m);
    struct proto_topic pt;
    while (proto_next_topic(&d, &pt)) {
        for (uint32_t i = 0; pt.err == 0 && i < p->topic_slots; i++) {
            struct ptopic *t = p->topics[i];
            int32_t parts = pt.config.partition_count;
            if (t != NULL && t->state == PT_KNOWN && parts == t->partition_count &&
                proto_str_eq(pt.name, t->name)) {
                stall_leaders(p, t, &d);
                break;
            }
        }
    }
}

/* Asks a broker other than `stalled` for the metadata of the topics it
 * leads partitions of (none up: one down is dialled, and the ask waits a
 * backoff step). */
static void stall_ask(struct nagare_producer *p, struct cbroker *stalled, int64_t now_ms)
{
    struct cbroker *on =
        brokers_stall_peer(&p->brokers, stalled, p->stall_asks, now_ms, p->cfg.retry_backoff_ms);
    if (on == NULL) {
        return;
    }
    uint16_t version = conn_version(&on->conn, PROTO_API_METADATA);
    size_t need = 64;
    for (uint32_t i = 0; i < p->topic_slots; i++) {
        struct ptopic *t = p->topics[i];
        need += t != NULL && topic_on(t, stalled) ? t->name_len + 2 : 0;
    }
    struct stall_ask *ask = malloc(sizeof(*ask));
    struct wr w;
    uint32_t corr;
    if (version < 2 || ask == NULL || conn_frame_begin(&on->conn, need, &w, &corr) != 0) {
        free(ask);
        brokers_stall_asked(stalled, now_ms, p->cfg.retry_backoff_ms); /* soon again */
        return;
    }
    *ask = (struct stall_ask){.p = p, .on = on};
    struct proto_enc e;
    proto_metadata_req_begin(&e, &w, version, corr, proto_str_make(CONN_CLIENT_ID), false);
    for (uint32_t i = 0; i < p->topic_slots; i++) {
        struct ptopic *t = p->topics[i];
        if (t != NULL && topic_on(t, stalled)) {
            proto_enc_topic(&e, (struct proto_str){.ptr = t->name, .len = (int32_t)t->name_len});
        }
    }
    int rc = proto_enc_end(&e);
    ASSERT(rc == 0);
    conn_frame_commit(&on->conn, &w, corr, PROTO_API_METADATA, version, false,
                      p->cfg.request_timeout_ms, stall_done, ask);
    p->stall_asks++;
    brokers_stall_asked(stalled, now_ms, p->cfg.stall_ms);
}

/* Asks about every broker that has kept a produce request unanswered for
 * stall_ms, about each at most once per stall_ms (or per retry_backoff_ms
 * while no other broker could be asked), and gives up the connection an answer
 * showed led no more. Returns when it is due next. */
static int64_t stall_check(struct nagare_producer *p, int64_t now_ms)
{
    brokers_stall_drops(&p->brokers); /* their batches retry at the new leaders */
    int64_t next = INT64_MAX;
    for (uint32_t i = 0; p->cfg.stall_ms > 0 && i < p->brokers.count; i++) {
        struct cbroker *b = p->brokers.all[i];
        int64_t due = brokers_stall_due(b, p->cfg.stall_ms, 0);
        if (now_ms >= due) {
            stall_ask(p, b, now_ms);
            due = brokers_stall_due(b, p->cfg.stall_ms, 0);
        }
        next = due < next ? due : next;
    }
    return next;
}

/* ---- probe: letting the broker create a topic ---- */

/* Metadata never creates topics; a Produce naming one does, when the broker
 * allows it (auto_create_topics). The probe is a Produce to partition -1:
 * the broker creates the topic, then refuses that partition, writing
 * nothing. Metadata is asked again after its answer. */
struct probe {
    struct nagare_producer *p;
    struct ptopic *t;
};

static void probe_done(void *arg, int err, struct rd *body, uint16_t version)
{
    (void)body;
    (void)version;
    struct probe *pr = arg;
    pr->t->probing = false;
    /* Answered (the partition's error is expected): the broker had its
     * chance. Lost with the connection: probe again. */
    pr->t->probed = err == 0 || -err >= NG_ERR_FIRST;
    producer_want_metadata(pr->p, pr->t);
    free(pr);
}

static int probe_send(struct nagare_producer *p, struct ptopic *t)
{
    uint8_t batch[BATCH_HEADER_BYTES + 16];
    struct batch_builder b;
    batch_builder_init(&b, batch, sizeof(batch), BATCH_CODEC_NONE, -1, 0, -1);
    size_t bytes;
    int rc = batch_builder_add(&b, clock_wall_ms(), NULL, -1, NULL, -1, NULL, 0);
    rc = rc == 0 ? batch_builder_finish(&b, NULL, &bytes) : rc;
    ASSERT(rc == 0);
    struct probe *pr = malloc(sizeof(*pr));
    struct wr w;
    uint32_t corr;
    struct client_conn *boot = &p->brokers.boot->conn;
    if (pr == NULL || conn_frame_begin(boot, 128 + t->name_len + bytes, &w, &corr) != 0) {
        free(pr);
        return -NG_EBUSY;
    }
    *pr = (struct probe){.p = p, .t = t};
    uint16_t version = conn_version(boot, PROTO_API_PRODUCE);
    struct proto_enc e;
    struct proto_produce_req req = {.acks = PROTO_ACKS_LEADER, .timeout_ms = 0};
    proto_produce_req_begin(&e, &w, version, corr, proto_str_make(CONN_CLIENT_ID), &req);
    proto_enc_topic(&e, (struct proto_str){.ptr = t->name, .len = (int32_t)t->name_len});
    proto_produce_req_partition(
        &e, &(struct proto_produce_req_partition){
                .partition = -1, .records = batch, .records_bytes = (uint32_t)bytes});
    rc = proto_enc_end(&e);
    ASSERT(rc == 0);
    t->probing = true; /* metadata is asked again after the probe's answer */
    conn_frame_commit(boot, &w, corr, PROTO_API_PRODUCE, version, false, p->cfg.request_timeout_ms,
                      probe_done, pr);
    return 0;
}

static bool topic_has_records(const struct ptopic *t)
{
    if (t->hold.count > 0) {
        return true;
    }
    for (int32_t k = 0; k < t->parts_len; k++) {
        if (t->parts[k].open != NULL || t->parts[k].head != NULL) {
            return true;
        }
    }
    return false;
}

static void meta_topic_missing(struct nagare_producer *p, struct ptopic *t, int err)
{
    if (err == -NG_EUNKNOWN_TOPIC && !t->probed && topic_has_records(t) &&
        conn_ready(&p->brokers.boot->conn) && probe_send(p, t) == 0) {
        return;
    }
    t->state = PT_MISSING;
    t->missing_until_ms = clock_mono_ms() + TOPIC_MISSING_MS;
    accum_topic_fail(p, t, err);
}

/* ---- reports ---- */

static void report(struct nagare_producer *p, const struct ptopic *t, int32_t partition,
                   int64_t offset, int err, void *opaque)
{
    if (p->cfg.on_delivery != NULL) {
        struct nagare_delivery d = {.topic = t->name,
                                    .partition = partition,
                                    .offset = err == 0 ? offset : -1,
                                    .err = err,
                                    .opaque = opaque};
        p->cfg.on_delivery(&d, p->cfg.opaque);
    }
}

/* Runs the error callbacks of the broker errors queued, then the delivery
 * callbacks of every outcome known. Returns how many reports. */
static int run_reports(struct nagare_producer *p)
{
    int n = 0;
    p->in_callback = true;
    /* Errors first: the cause is told before the failures it may bring. */
    for (uint32_t i = 0; i < p->error_count; i++) {
        const struct perror *e = &p->errors[i];
        struct nagare_producer_error pe = {
            .topic = e->topic->name, .partition = e->partition, .err = e->err};
        p->cfg.on_error(&pe, p->cfg.opaque);
    }
    p->error_count = 0;
    for (uint32_t i = 0; i < p->failed_count; i++) {
        struct pfailed f = p->failed[i];
        p->outstanding--;
        n++;
        report(p, f.topic, f.partition, -1, f.err, f.opaque);
    }
    p->failed_count = 0;
    while (p->done_head != NULL) {
        struct pbatch *b = p->done_head;
        p->done_head = b->next;
        if (p->done_head == NULL) {
            p->done_tail = NULL;
        }
        ASSERT(p->outstanding >= (size_t)b->record_count);
        p->outstanding -= (size_t)b->record_count;
        n += b->record_count;
        for (int32_t i = 0; i < b->record_count; i++) {
            int64_t offset = b->offset_base >= 0 ? b->offset_base + i : -1;
            report(p, b->topic, b->partition, offset, b->err, b->opaques[i]);
        }
        accum_release(p, b);
    }
    p->in_callback = false;
    return n;
}

/* ---- the poll loop ---- */

/* Fails every record not yet reported, except those in flight (their
 * answers or the connection's close settle them). */
static void fail_all(struct nagare_producer *p, int err)
{
    for (uint32_t i = 0; i < p->topic_slots; i++) {
        if (p->topics[i] != NULL) {
            accum_topic_fail(p, p->topics[i], err);
        }
    }
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* A leader whose last dial failed may have died: metadata is asked again
 * for the topics it leads partitions of (rate limited, meta_next_ms), as
 * Kafka's clients do on a failed connection, so that its partitions move
 * once the cluster names a new leader. Without it only the connection's
 * loss asked, once, while the dead broker's lease still named it. */
static void leader_unreachable(struct nagare_producer *p, const struct cbroker *b)
{
    for (uint32_t i = 0; i < p->topic_slots; i++) {
        struct ptopic *t = p->topics[i];
        for (int32_t k = 0; t != NULL && k < t->parts_len; k++) {
            if (t->parts[k].leader == b) {
                producer_want_metadata(p, t);
                break;
            }
        }
    }
}

/* Keeps the connections up, reconnecting with backoff while there is
 * work: the bootstrap one for metadata, a leader's for its partitions. */
static int64_t keep_connected(struct nagare_producer *p, int64_t now_ms)
{
    int64_t next = INT64_MAX;
    for (uint32_t i = 0; i < p->brokers.count; i++) {
        struct cbroker *b = p->brokers.all[i];
        bool boot = b == p->brokers.boot;
        bool work =
            p->outstanding > 0 && (boot || b->leads > 0 || brokers_meta_fallback(&p->brokers, b));
        if (b->leads > 0 && b->conn.state == CONN_DOWN && b->redial_backoff_ms > 0) {
            leader_unreachable(p, b); /* dialled since it was last up, and down */
        }
        if (b->conn.state == CONN_UP || work || (boot && metadata_wanted(p))) {
            next = min64(next, brokers_connect(b, now_ms, p->cfg.retry_backoff_ms));
        }
    }
    return next;
}

/* One pass of everything time or state driven. Returns when the next
 * pass is due (monotonic ms). */
static int64_t maintain(struct nagare_producer *p, int64_t now_ms)
{
    int64_t next = accum_linger(p, now_ms);
    next = min64(next, sender_timers(p, now_ms));
    next = min64(next, keep_connected(p, now_ms));
    next = min64(next, stall_check(p, now_ms));
    if (!p->meta_inflight && metadata_wanted(p)) {
        if (now_ms < p->meta_next_ms) {
            next = min64(next, p->meta_next_ms);
        } else if (brokers_meta(&p->brokers) != NULL) {
            metadata_send(p);
        }
    }
    if (p->fatal == 0) {
        sender_drain(p, now_ms);
    } else {
        fail_all(p, p->fatal);
    }
    return min64(next, brokers_next_deadline(&p->brokers));
}

int nagare_producer_poll(nagare_producer *p, int timeout_ms)
{
    ASSERT(p != NULL);
    if (p->in_callback) {
        return -NG_EBADARG; /* not from inside a delivery callback */
    }
    int64_t start = clock_mono_ms();
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : start + timeout_ms;
    int total = 0;
    bool polled = false; /* timeout 0 still reads what has arrived, once */
    for (;;) {
        int64_t now = clock_mono_ms();
        int64_t next = maintain(p, now);
        total += run_reports(p);
        if (total > 0 || (now >= deadline && polled) || (timeout_ms < 0 && p->outstanding == 0)) {
            break;
        }
        int64_t until = min64(deadline, next);
        int64_t wait = until > now ? until - now : 0;
        int rc = brokers_poll(&p->brokers, (int)min64(wait, INT32_MAX));
        if (rc != 0) {
            return rc;
        }
        polled = true;
    }
    if (total == 0 && p->fatal != 0) {
        return p->fatal;
    }
    return total;
}

int nagare_producer_flush(nagare_producer *p, int timeout_ms)
{
    ASSERT(p != NULL);
    if (p->in_callback) {
        return -NG_EBADARG;
    }
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : clock_mono_ms() + timeout_ms;
    p->flushing = true;
    while (p->outstanding > 0) {
        int64_t left = deadline - clock_mono_ms();
        if (left <= 0) {
            break;
        }
        int rc = nagare_producer_poll(p, (int)min64(left, 100));
        if (rc < 0 && rc != p->fatal) {
            p->flushing = false;
            return rc;
        }
    }
    p->flushing = false;
    return p->outstanding == 0 ? 0 : -NG_ETIMEOUT;
}

size_t nagare_producer_outstanding(const nagare_producer *p)
{
    ASSERT(p != NULL);
    return p->outstanding;
}

void nagare_producer_destroy(nagare_producer *p)
{
    if (p == NULL) {
        return;
    }
    ASSERT(!p->in_callback);
    p->closing = true;
    brokers_close_all(&p->brokers, -NG_ECLOSED); /* batches in flight fail with them */
    fail_all(p, -NG_ECLOSED);
    (void)run_reports(p);
    ASSERT(p->outstanding == 0);
    producer_free(p);
}

/* ---- send ---- */

static int record_check(const struct nagare_record *r)
{
    if (r->topic == NULL || r->partition < NAGARE_PARTITION_ANY || r->key_len < -1 ||
        r->value_len < -1 || (r->key_len > 0 && r->key == NULL) ||
        (r->value_len > 0 && r->value == NULL) || (r->header_count > 0 && r->headers == NULL)) {
        return -NG_EBADARG;
    }
    if (r->key_len > INT32_MAX || r->value_len > INT32_MAX ||
        r->header_count > HEADERS_PER_RECORD_MAX) {
        return -NG_ETOOBIG;
    }
    return 0;
}

/* Checks the record's topic name; *len_out gets its length. The name of
 * the topic last sent to is taken as it is (*last_out): only a valid name
 * ever gets a topic entry, so it was checked when first seen. Checking
 * every record's name again was a tenth of the producer's time with
 * records of 100 bytes. */
static int topic_check(const struct nagare_producer *p, const char *name, size_t *len_out,
                       struct ptopic **last_out)
{
    size_t len = strnlen(name, PROTO_TOPIC_NAME_BYTES_MAX + 1);
    struct ptopic *last = p->last_topic;
    *len_out = len;
    *last_out = NULL;
    if (last != NULL && last->name_len == len && memcmp(last->name, name, len) == 0) {
        *last_out = last;
        return 0;
    }
    return proto_topic_name_valid(name, len) ? 0 : -NG_EBADNAME;
}

/* Copies the record's headers into p->kv (batch_kv form). */
static int headers_convert(struct nagare_producer *p, const struct nagare_record *r)
{
    if (r->header_count > p->kv_cap) {
        struct batch_kv *kv = realloc(p->kv, r->header_count * sizeof(*kv));
        if (kv == NULL) {
            return -ENOMEM;
        }
        p->kv = kv;
        p->kv_cap = (uint32_t)r->header_count;
    }
    for (size_t i = 0; i < r->header_count; i++) {
        const struct nagare_header *h = &r->headers[i];
        if (h->key_len > INT32_MAX || h->value_len < -1 || h->value_len > INT32_MAX ||
            (h->key_len > 0 && h->key == NULL) || (h->value_len > 0 && h->value == NULL)) {
            return -NG_EBADARG;
        }
        p->kv[i] = (struct batch_kv){.key = (const uint8_t *)h->key,
                                     .key_len = (int32_t)h->key_len,
                                     .value = h->value,
                                     .value_len = (int32_t)h->value_len};
    }
    return 0;
}

/* The topic entry for a send (last: the one topic_check() found, or NULL),
 * or an error when it is known to be missing. */
static int send_topic(struct nagare_producer *p, const char *name, size_t len, struct ptopic *last,
                      struct ptopic **out)
{
    struct ptopic *t = last != NULL ? last : accum_topic(p, name, len);
    if (t == NULL) {
        return -ENOMEM;
    }
    if (t->state == PT_MISSING) {
        if (clock_mono_ms() < t->missing_until_ms) {
            return -NG_EUNKNOWN_TOPIC;
        }
        t->state = PT_UNKNOWN; /* ask again: it may have been created since */
        t->probed = false;
        producer_want_metadata(p, t);
    }
    *out = t;
    return 0;
}

int nagare_send(nagare_producer *p, const struct nagare_record *r)
{
    ASSERT(p != NULL && r != NULL);
    if (p->fatal != 0) {
        return p->fatal;
    }
    struct ptopic *t;
    struct ptopic *last;
    size_t name_len;
    int rc = record_check(r);
    rc = rc == 0 ? topic_check(p, r->topic, &name_len, &last) : rc;
    rc = rc == 0 ? headers_convert(p, r) : rc;
    rc = rc == 0 ? send_topic(p, r->topic, name_len, last, &t) : rc;
    if (rc != 0) {
        return rc;
    }
    int64_t ts = r->timestamp_ms != 0 ? r->timestamp_ms : clock_wall_ms();
    int32_t klen = r->key_len < 0 ? -1 : (int32_t)r->key_len;
    int32_t vlen = r->value_len < 0 ? -1 : (int32_t)r->value_len;
    uint64_t closed_before = p->batches_closed;
    if (t->state == PT_KNOWN) {
        rc = accum_append(p, t, r->partition, ts, r->key, klen, r->value, vlen, p->kv,
                          (uint32_t)r->header_count, r->opaque, false);
    } else {
        rc = accum_hold(p, t, r->partition, ts, r->key, klen, r->value, vlen, p->kv,
                        (uint32_t)r->header_count, r->opaque);
    }
    if (rc != 0) {
        return rc;
    }
    p->outstanding++;
    /* A batch that filled up goes out now; new topics are asked about
     * (refreshes of known ones wait for the poll: they are rate limited). */
    if (t->meta_wanted && t->state != PT_KNOWN && brokers_meta(&p->brokers) != NULL &&
        !p->meta_inflight) {
        metadata_send(p);
    }
    if (p->batches_closed != closed_before && p->fatal == 0 && !p->in_callback) {
        sender_drain(p, clock_mono_ms());
    }
    return 0;
}
