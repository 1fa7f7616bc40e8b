/* client/brokers.c — a client's connections to a cluster's brokers. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ssl.h>

#include "client/brokers.h"

static struct cbroker *entry_new(struct brokers *bs, const char *address, int32_t id)
{
    if (bs->count == BROKERS_CONNS_MAX) {
        return NULL;
    }
    struct cbroker *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        return NULL;
    }
    struct conn_config cc = bs->cfg;
    cc.bootstrap = address;
    if (conn_init(&b->conn, &cc) != 0) {
        conn_fini(&b->conn);
        free(b);
        return NULL;
    }
    b->id = id;
    bs->all[bs->count++] = b;
    return b;
}

int brokers_init(struct brokers *bs, const struct conn_config *cfg)
{
    ASSERT(bs != NULL && cfg != NULL);
    *bs = (struct brokers){.cfg = *cfg};
    bs->cfg.bootstrap = NULL;
    bs->cfg.tls = NULL;
    bs->cfg.tls_server_name = bs->tls_server_name;
    const char *name = cfg->tls_server_name != NULL ? cfg->tls_server_name : "";
    if (conn_bootstrap_check(cfg->bootstrap) < 1 || strlen(name) >= sizeof(bs->tls_server_name)) {
        return -NG_EBADARG;
    }
    strcpy(bs->tls_server_name, name);
    if (cfg->tls != NULL) {
        SSL_CTX_up_ref(cfg->tls);
        bs->cfg.tls = cfg->tls;
    }
    bs->boot = entry_new(bs, cfg->bootstrap, BROKER_ID_UNKNOWN);
    return bs->boot != NULL ? 0 : -ENOMEM;
}

void brokers_fini(struct brokers *bs)
{
    /* Every connection closes before any is freed: the callbacks of the
     * requests failed meanwhile may look at (or submit to) the others. */
    brokers_close_all(bs, -NG_ECLOSED);
    for (uint32_t i = 0; i < bs->count; i++) {
        conn_fini(&bs->all[i]->conn);
        free(bs->all[i]);
    }
    bs->count = 0;
    bs->boot = NULL;
    explicit_bzero(&bs->cfg.login, sizeof(bs->cfg.login));
    SSL_CTX_free(bs->cfg.tls);
    bs->cfg.tls = NULL;
}

struct cbroker *brokers_find(struct brokers *bs, int32_t id)
{
    for (uint32_t i = 0; id != BROKER_ID_UNKNOWN && i < bs->count; i++) {
        if (bs->all[i]->id == id) {
            return bs->all[i];
        }
    }
    return NULL;
}

struct cbroker *brokers_meta(struct brokers *bs)
{
    if (conn_ready(&bs->boot->conn)) {
        return bs->boot;
    }
    for (uint32_t i = 0; i < bs->count; i++) {
        struct cbroker *b = bs->all[i];
        if (b != bs->boot && b->id != BROKER_ID_UNKNOWN && conn_ready(&b->conn)) {
            return b;
        }
    }
    return NULL;
}

/* Whether o is a broker an answer named, other than b. */
static bool other_named(const struct cbroker *o, const struct cbroker *b)
{
    return o != b && o->id != BROKER_ID_UNKNOWN && o->id != b->id;
}

struct cbroker *brokers_meta_other(struct brokers *bs, const struct cbroker *b, uint32_t from)
{
    struct cbroker *busy = NULL;
    for (uint32_t k = 0; k < bs->count; k++) {
        struct cbroker *o = bs->all[(from + k) % bs->count];
        if (!other_named(o, b) || !conn_ready(&o->conn)) {
            continue;
        }
        if (conn_pending_count(&o->conn) == 0) {
            return o;
        }
        busy = busy != NULL ? busy : o;
    }
    return busy;
}

struct cbroker *brokers_other_down(struct brokers *bs, const struct cbroker *b)
{
    for (uint32_t i = 0; i < bs->count; i++) {
        struct cbroker *o = bs->all[i];
        if (other_named(o, b) && o->conn.state == CONN_DOWN) {
            return o;
        }
    }
    return NULL;
}

/* When the oldest request watched on b went out (brokers.h, "stalls"), or
 * INT64_MAX when none is. A leader being connected again after its
 * requests timed out keeps the owner's batches waiting too. */
static int64_t watched_since(const struct cbroker *b)
{
    bool watched =
        b->requests > 0 || b->coordinates > 0 || (b->leads > 0 && b->conn.state != CONN_UP);
    return watched ? conn_silent_since_ms(&b->conn) : INT64_MAX;
}

bool brokers_stalled(const struct cbroker *b, uint32_t stall_ms, uint32_t wait_ms, int64_t now_ms)
{
    int64_t since = watched_since(b);
    return since != INT64_MAX && now_ms - since >= (int64_t)wait_ms + (int64_t)stall_ms;
}

void brokers_stall_drops(struct brokers *bs)
{
    for (uint32_t i = 0; i < bs->count; i++) {
        struct cbroker *b = bs->all[i];
        if (b->stall_drop) {
            b->stall_drop = false;
            conn_close(&b->conn, -NG_EDISCONNECTED);
        }
    }
}

int64_t brokers_stall_due(const struct cbroker *b, uint32_t stall_ms, uint32_t wait_ms)
{
    ASSERT(stall_ms > 0);
    int64_t since = watched_since(b);
    if (since == INT64_MAX) {
        return INT64_MAX;
    }
    int64_t due = since + (int64_t)wait_ms + (int64_t)stall_ms;
    return due > b->stall_next_ms ? due : b->stall_next_ms;
}

struct cbroker *brokers_stall_peer(struct brokers *bs, struct cbroker *b, uint32_t from,
                                   int64_t now_ms, uint32_t backoff_ms)
{
    struct cbroker *on = brokers_meta_other(bs, b, from);
    if (on == NULL) {
        struct cbroker *down = brokers_other_down(bs, b);
        if (down != NULL) {
            (void)brokers_connect(down, now_ms, backoff_ms);
        }
        b->stall_next_ms = now_ms + backoff_ms;
    }
    return on;
}

void brokers_stall_asked(struct cbroker *b, int64_t now_ms, uint32_t stall_ms)
{
    b->stall_next_ms = now_ms + stall_ms;
}

bool brokers_meta_fallback(const struct brokers *bs, const struct cbroker *b)
{
    const struct cbroker *boot = bs->boot;
    return b != boot && b->id != BROKER_ID_UNKNOWN && boot->conn.state == CONN_DOWN;
}

void brokers_update(struct brokers *bs, struct cbroker *on, struct proto_metadata_resp *m)
{
    struct cbroker *known = brokers_find(bs, m->broker_id);
    if (known != on) {
        on->id = known == NULL ? m->broker_id : BROKER_ID_UNKNOWN;
    }
    struct proto_broker b;
    while (proto_metadata_resp_next_broker(m, &b)) {
        if (brokers_find(bs, b.id) != NULL || b.id == BROKER_ID_UNKNOWN) {
            continue;
        }
        /* "host:port", an IPv6 host in brackets (conn_parse_address()). */
        char address[CONN_HOST_BYTES_MAX + 16];
        bool v6 = memchr(b.host.ptr, ':', (size_t)b.host.len) != NULL;
        int n = snprintf(address, sizeof(address), v6 ? "[%.*s]:%u" : "%.*s:%u", (int)b.host.len,
                         b.host.ptr, b.port);
        if (n > 0 && (size_t)n < sizeof(address)) {
            (void)entry_new(bs, address, b.id); /* NULL: skipped */
        }
    }
}

/* ---- who leads one partition (a synchronous Metadata call) ---- */

struct leader_call {
    struct brokers *bs;
    struct cbroker *on; /* the broker asked */
    const char *topic;  /* NULL: none, only the brokers */
    int32_t partition;
    int32_t count;          /* the topic's partitions */
    struct cbroker *leader; /* the partition's; NULL: none now */
};

static int leader_encode(void *arg, struct wr *w, uint32_t corr, uint16_t version)
{
    const struct leader_call *lc = arg;
    struct proto_enc e;
    proto_metadata_req_begin(&e, w, version, corr, proto_str_make(CONN_CLIENT_ID), false);
    if (lc->topic != NULL) {
        proto_enc_topic(&e, proto_str_make(lc->topic));
    }
    return proto_enc_end(&e);
}

static int leader_decode(void *arg, struct rd *body, uint16_t version)
{
    struct leader_call *lc = arg;
    struct proto_metadata_resp m;
    struct proto_dec d;
    struct proto_topic t;
    if (proto_metadata_resp_decode(body, version, &m, &d) != 0) {
        return -NG_EPROTO;
    }
    if (lc->topic == NULL) {
        if (version >= 2) {
            brokers_update(lc->bs, lc->on, &m);
        }
        return 0;
    }
    if (!proto_next_topic(&d, &t) || !proto_str_eq(t.name, lc->topic)) {
        return -NG_EPROTO;
    }
    if (t.err != 0) {
        return t.err;
    }
    if (version >= 2) {
        brokers_update(lc->bs, lc->on, &m);
    }
    lc->count = t.partition_count; /* the partitions the topic has */
    lc->leader = version >= 2 ? NULL : lc->bs->boot;
    struct proto_metadata_partition mp;
    while (proto_metadata_resp_next_partition(&d, &mp)) {
        if (version >= 2 && mp.partition == lc->partition) {
            lc->leader = brokers_find(lc->bs, mp.leader);
        }
    }
    return 0;
}

/* brokers_leader_lookup() of broker on, checked on by watch (NULL: not);
 * topic NULL: only the brokers. */
static int leader_lookup_on(struct brokers *bs, struct cbroker *on, const char *topic,
                            int32_t partition, int64_t deadline_ms, const struct conn_watch *watch,
                            struct leader_call *lc)
{
    *lc = (struct leader_call){.bs = bs, .on = on, .topic = topic, .partition = partition};
    int rc = conn_call_watched(&on->conn, PROTO_API_METADATA, 64 + PROTO_TOPIC_NAME_BYTES_MAX,
                               leader_encode, leader_decode, lc, deadline_ms, watch);
    if (rc == 0 && topic != NULL && partition >= lc->count) {
        rc = -NG_EUNKNOWN_TOPIC;
    }
    lc->leader = rc == 0 ? lc->leader : NULL;
    return rc;
}

/* The broker to ask for metadata: brokers_meta(), else the bootstrap one
 * (connected by the call). */
static struct cbroker *meta_or_boot(struct brokers *bs)
{
    struct cbroker *on = brokers_meta(bs);
    return on != NULL ? on : bs->boot;
}

int brokers_topic_lookup(struct brokers *bs, const char *topic, int32_t partition,
                         uint32_t stall_ms, int64_t deadline_ms, struct cbroker **leader_out,
                         int32_t *count_out)
{
    ASSERT(topic != NULL);
    for (;;) {
        /* Any broker answers it: one that stalls is given up once another
         * answers, and the lookup made there (brokers_watch_init()). */
        struct cbroker *on = meta_or_boot(bs);
        struct brokers_watch w;
        const struct conn_watch *watch =
            brokers_watch_init(&w, bs, on, NULL, 0, stall_ms, deadline_ms);
        struct leader_call lc;
        int rc = leader_lookup_on(bs, on, topic, partition, deadline_ms, watch, &lc);
        if (rc != -NG_EDISCONNECTED || watch == NULL || clock_mono_ms() >= deadline_ms) {
            *leader_out = lc.leader;
            *count_out = rc == 0 ? lc.count : 0;
            return rc;
        }
    }
}

int brokers_leader_lookup(struct brokers *bs, const char *topic, int32_t partition,
                          uint32_t stall_ms, int64_t deadline_ms, struct cbroker **leader_out)
{
    int32_t count;
    return brokers_topic_lookup(bs, topic, partition, stall_ms, deadline_ms, leader_out, &count);
}

int brokers_refresh(struct brokers *bs, int64_t deadline_ms)
{
    struct leader_call lc;
    return leader_lookup_on(bs, meta_or_boot(bs), NULL, 0, deadline_ms, NULL, &lc);
}

/* ---- a synchronous call watched for stalls ---- */

static int ms_left(int64_t deadline_ms, int64_t cap_ms)
{
    int64_t left = deadline_ms - clock_mono_ms();
    left = left < cap_ms ? left : cap_ms;
    return left > 0 ? (int)left : 0;
}

/* conn_watch.fn: asks a broker other than the one called (connecting one
 * when none is up, for at most a period); true once it answers as w says
 * gives the called one up. */
static bool watch_check(void *arg)
{
    struct brokers_watch *w = arg;
    struct cbroker *on = brokers_meta_other(w->bs, w->b, w->asks++);
    if (on == NULL) {
        on = brokers_other_down(w->bs, w->b);
        if (on == NULL || conn_wait_up(&on->conn, ms_left(w->deadline_ms, w->cw.period_ms)) != 0) {
            return false; /* asked again after a period */
        }
    }
    struct leader_call lc;
    int rc = leader_lookup_on(w->bs, on, w->topic, w->partition, w->deadline_ms, NULL, &lc);
    return rc == 0 && (w->topic == NULL || (lc.leader != NULL && lc.leader != w->b));
}

const struct conn_watch *brokers_watch_init(struct brokers_watch *w, struct brokers *bs,
                                            struct cbroker *b, const char *topic, int32_t partition,
                                            uint32_t stall_ms, int64_t deadline_ms)
{
    *w = (struct brokers_watch){.cw = {.period_ms = stall_ms, .fn = watch_check, .arg = w},
                                .bs = bs,
                                .b = b,
                                .topic = topic,
                                .partition = partition,
                                .deadline_ms = deadline_ms};
    return stall_ms > 0 ? &w->cw : NULL;
}

void cbroker_lead(struct cbroker **slot, struct cbroker *b)
{
    if (*slot != NULL) {
        ASSERT((*slot)->leads > 0);
        (*slot)->leads--;
    }
    *slot = b;
    if (b != NULL) {
        b->leads++;
    }
}

void cbroker_coordinate(struct cbroker **slot, struct cbroker *b)
{
    if (*slot != NULL) {
        ASSERT((*slot)->coordinates > 0);
        (*slot)->coordinates--;
    }
    *slot = b;
    if (b != NULL) {
        b->coordinates++;
    }
}

int64_t brokers_connect(struct cbroker *b, int64_t now_ms, uint32_t backoff_first_ms)
{
    if (b->conn.state == CONN_UP) {
        b->redial_backoff_ms = 0;
        return INT64_MAX;
    }
    if (b->conn.state != CONN_DOWN) {
        return INT64_MAX; /* connecting: the poll progresses it */
    }
    if (now_ms < b->redial_at_ms) {
        return b->redial_at_ms;
    }
    uint32_t next = b->redial_backoff_ms == 0 ? backoff_first_ms : b->redial_backoff_ms * 2;
    b->redial_backoff_ms = next < CONN_BACKOFF_MS_MAX ? next : CONN_BACKOFF_MS_MAX;
    b->redial_at_ms = now_ms + b->redial_backoff_ms;
    if (conn_connect_start(&b->conn) != 0) {
        return b->redial_at_ms; /* refused at once: after the backoff */
    }
    return INT64_MAX;
}

int brokers_poll(struct brokers *bs, int timeout_ms)
{
    struct client_conn *cs[BROKERS_CONNS_MAX];
    for (uint32_t i = 0; i < bs->count; i++) {
        cs[i] = &bs->all[i]->conn;
    }
    return conn_poll_many(cs, bs->count, timeout_ms);
}

int64_t brokers_next_deadline(const struct brokers *bs)
{
    int64_t d = INT64_MAX;
    for (uint32_t i = 0; i < bs->count; i++) {
        int64_t one = conn_next_deadline(&bs->all[i]->conn);
        d = one < d ? one : d;
    }
    return d;
}

void brokers_close_all(struct brokers *bs, int err)
{
    for (uint32_t i = 0; i < bs->count; i++) {
        conn_close(&bs->all[i]->conn, err);
    }
}
