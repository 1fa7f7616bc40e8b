/*
 * client/share.c — the share consumer (client/nagare.h, "share consumer"):
 * ShareFetch with long poll, records handed out with their delivery
 * counts, acknowledgements batched into ShareAck requests.
 *
 * Invariants.
 * - At most one ShareFetch and one ShareAck are in flight. A fetch goes out
 *   only once every record of the previous answer was returned (or
 *   released) and fewer than unacked_max records are held, asking for no
 *   more than the room left; so memory is one answer (a copy of it, cut
 *   into sections per partition) plus the held set.
 * - `held` is the set of records poll returned and nobody acknowledged yet
 *   (open addressing, linear probing, capacity a power of two at least
 *   twice unacked_max). nagare_share_ack() moves a record from it to
 *   `pending`; so a record is acknowledged at most once from here.
 * - `pending` holds acknowledgements not yet sent, as offset ranges: one
 *   record each from the application, whole ranges for what the consumer
 *   releases itself (acquired offsets the answer had no record for, and
 *   the unread rest of an answer on destroy). Sending sorts and coalesces
 *   them, and gives each coalesced range a partition entry of its own in
 *   the request (the broker answers one error per entry, the first refused
 *   range's), so every record's outcome is known exactly.
 * - Reading an answer walks each partition's batches in offset order with
 *   a cursor over its acquired ranges (ascending): a record inside a range
 *   is returned with that range's delivery count; acquired offsets without
 *   a record are released.
 * - Share requests go to the coordinator (docs/cluster.md, section 5): the
 *   leader of __share_state/0, found through the bootstrap connection or
 *   any broker an answer named (brokers_leader_lookup(); a single broker
 *   is its own). An answer NG_ENOT_COORDINATOR or a failed connection of
 *   the coordinator marks it lost; it is found again once no request is in
 *   flight, and fetching carries on there. What the old coordinator had
 *   handed out comes back when its locks end (at-least-once);
 *   acknowledgements it did not answer report the error.
 * - A coordinator that keeps a request unanswered for fetch_wait_max_ms
 *   plus stall_ms (paused, or cut off: its connection stays open) has
 *   another broker asked who leads __share_state/0, again every stall_ms
 *   while the wait lasts (client/brokers.h, "stalls"); an answer naming
 *   another broker makes that one the coordinator and gives the stalled
 *   connection up, so its requests fail as lost (a fetch's locks expire,
 *   acks report the error) and the next go to the new coordinator.
 * Threads: the consumer's. on_ack runs from connection callbacks, which
 * only happen inside poll, commit and destroy.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "client/brokers.h"
#include "client/conn.h"
#include "client/msg.h"
#include "client/nagare.h"
#include "storage/batch.h"

#define SHARE_TOPICS_LIMIT 64
#define SHARE_UNACKED_LIMIT (1u << 20)
/* stall_ms's default: as the producer's and the consumer's. */
#define STALL_MS_DEFAULT 2000
/* A topic that does not exist yet is looked for this often. */
#define META_RETRY_MS 2000
/* Request sizing: fixed parts, per topic, per partition entry. */
#define REQUEST_BYTES \
    (64 + 2 * PROTO_STR_BYTES(PROTO_GROUP_ID_BYTES_MAX) + PROTO_SHARE_MEMBER_ID_BYTES)

struct stopic {
    char name[PROTO_TOPIC_NAME_BYTES_MAX + 1];
    int32_t count; /* partitions; 0: not known yet */
};

/* A held record: polled, not acknowledged. */
struct hslot {
    int64_t offset;
    int32_t partition;
    uint16_t topic;
    bool used;
};

/* An acknowledgement (or the consumer's own release) of a range. */
struct sack {
    uint16_t topic;
    int32_t partition;
    int64_t first;
    int64_t last;
    int8_t type; /* PROTO_ACK_* */
    bool report; /* the application's: on_ack hears of it */
    int err;     /* its outcome */
};

struct srange {
    int64_t first;
    int64_t last;
    int16_t count;
};

/* One partition of the answer being read. */
struct ssection {
    uint16_t topic;
    int32_t partition;
    const uint8_t *records;
    uint32_t records_bytes;
    uint32_t range_first; /* into nagare_share_consumer.ranges */
    uint32_t range_count;
};

struct nagare_share_consumer {
    struct nagare_share_consumer_config cfg;
    char bootstrap[CONN_BOOTSTRAP_BYTES_MAX];
    struct brokers bs; /* the bootstrap connection, and the brokers answers named */
    struct batch_zctx zctx;
    uint8_t *zbuf;
    size_t zbuf_cap;
    struct cmsg msg;
    bool in_callback;
    /* subscription */
    bool subscribed;
    char group[PROTO_GROUP_ID_BYTES_MAX + 1];
    char member_id[PROTO_SHARE_MEMBER_ID_BYTES];
    struct stopic topics[SHARE_TOPICS_LIMIT];
    uint32_t topic_count;
    uint32_t part_total; /* partitions over the topics known */
    int64_t meta_due_ms; /* some topic not known yet: look again then */
    /* fetching */
    bool fetch_inflight;
    int64_t fetch_due_ms; /* backoff after a failed fetch */
    uint32_t fetch_backoff_ms;
    int err_pending; /* a fetch or partition error for poll to return */
    bool part_errs;  /* the last answer had partition errors */
    uint8_t *fbuf;   /* the answer being read (a copy) */
    size_t fbuf_cap;
    struct ssection *sections; /* part_total entries */
    uint32_t section_count;
    struct srange *ranges; /* records_max entries */
    uint32_t range_count;
    bool answer_ready;
    /* reading the answer */
    uint32_t cur_section;
    size_t cur_pos;     /* next batch in the section's records */
    uint32_t cur_range; /* absolute index into ranges */
    int64_t cur_offset; /* next acquired offset not yet returned */
    struct batch_reader br;
    bool br_open;
    /* held records */
    struct hslot *held;
    uint32_t held_cap; /* a power of two */
    uint32_t held_count;
    /* acknowledgements */
    struct sack *pending;
    uint32_t pending_count;
    uint32_t pending_cap;
    struct sack *sending; /* the ShareAck in flight: its items, sorted */
    uint32_t sending_count;
    uint32_t *entry_end; /* per request entry: one past its last item */
    uint32_t entry_count;
    bool ack_inflight;
    int ack_err_first; /* first record error since commit began */
    /* connection trouble: of the bootstrap connection */
    struct conn_redial redial;
    /* the coordinator */
    struct cbroker *coord;    /* where share requests go (cbroker_coordinate); NULL: to find */
    bool coord_lost;          /* an answer said it moved: found again before the next request */
    struct cbroker *fetch_to; /* where the fetch in flight went */
    struct cbroker *ack_to;   /* where the ShareAck in flight went */
    uint32_t stall_asks;      /* asks about a stalled coordinator sent: spread over brokers */
};

static struct proto_str str_of(const char *s) { return proto_str_make(s); }

static int api_err(int rc) { return rc == -NG_EBADVERSION ? -NG_EUNKNOWN_API : rc; }

static int64_t deadline_of(const nagare_share_consumer *sc)
{
    return clock_mono_ms() + sc->cfg.request_timeout_ms + sc->cfg.fetch_wait_max_ms;
}

/* ---- the coordinator ---- */

static struct client_conn *boot_conn(nagare_share_consumer *sc) { return &sc->bs.boot->conn; }

/* True when err, the outcome of a request to `at` (NULL: none was sent),
 * says the coordinator moved, or may have (its connection failed): noted
 * when `at` is still the coordinator known (not one a stall answer
 * replaced already), and acted on before the next request (not here: a
 * connection callback must not close its own connection). */
static bool coord_moved(nagare_share_consumer *sc, const struct cbroker *at, int err)
{
    bool moved = err == -NG_ENOT_COORDINATOR || err == -NG_EDISCONNECTED || err == -NG_ETIMEOUT;
    sc->coord_lost |= moved && at != NULL && at == sc->coord;
    return moved;
}

/* The coordinator: the leader of __share_state/0, asked of the bootstrap
 * broker or another up (brokers_leader_lookup()); a broker that knows no
 * such topic is its own (a single broker). Returns 0 with sc->coord set,
 * -NG_ENOT_COORDINATOR (none now), or the call's error. */
static int coord_find(nagare_share_consumer *sc)
{
    struct cbroker *leader = NULL;
    int rc = brokers_leader_lookup(&sc->bs, PROTO_SHARE_STATE_TOPIC, 0, sc->cfg.stall_ms,
                                   deadline_of(sc), &leader);
    if (rc == -NG_EUNKNOWN_TOPIC) {
        struct cbroker *on = brokers_meta(&sc->bs);
        leader = on != NULL ? on : sc->bs.boot;
        rc = 0;
    }
    if (rc == 0 && leader == NULL) {
        rc = -NG_ENOT_COORDINATOR; /* no leader now: try later */
    }
    cbroker_coordinate(&sc->coord, rc == 0 ? leader : NULL);
    return rc;
}

/* Connects to coordinator b, giving it up once another broker names
 * another coordinator (a paused broker's kernel accepts the connection,
 * and the handshake never ends). Returns as conn_wait_up_watched(). */
static int coord_wait_up(nagare_share_consumer *sc, struct cbroker *b)
{
    int64_t deadline = deadline_of(sc);
    struct brokers_watch w;
    const struct conn_watch *watch =
        brokers_watch_init(&w, &sc->bs, b, PROTO_SHARE_STATE_TOPIC, 0, sc->cfg.stall_ms, deadline);
    return conn_wait_up_watched(&b->conn, deadline, watch);
}

/* The coordinator, found first when not known or lost (synchronous calls:
 * Metadata, and a connect to it unless it is the bootstrap connection,
 * which poll redials). Returns 0 with *out, or the lookup's or connect's
 * error (-NG_ENOT_COORDINATOR: none now) with *out NULL. Not while a
 * request is in flight at the coordinator it replaces. */
static int coord_get(nagare_share_consumer *sc, struct cbroker **out)
{
    *out = NULL;
    if (sc->coord_lost) {
        sc->coord_lost = false;
        cbroker_coordinate(&sc->coord, NULL);
    }
    int rc = sc->coord != NULL ? 0 : coord_find(sc);
    struct cbroker *b = sc->coord;
    if (rc == 0 && b != sc->bs.boot && b->conn.state != CONN_UP) {
        rc = coord_wait_up(sc, b);
        if (rc != 0) {
            cbroker_coordinate(&sc->coord, NULL); /* found again next time */
        }
    }
    *out = rc == 0 ? sc->coord : NULL;
    return rc;
}

/* conn_poll_many() of every broker's connection. */
static int conns_poll(nagare_share_consumer *sc, int timeout_ms)
{
    return brokers_poll(&sc->bs, timeout_ms);
}

/* ---- stalls: a coordinator paused or cut off ---- */

struct stall_ask {
    nagare_share_consumer *sc;
    struct cbroker *on;
};

/* The answer to an ask about a stalled coordinator: a leader of
 * __share_state/0 other than the coordinator, while the coordinator still
 * keeps a request stalled, becomes the coordinator; the stalled one's
 * connection is given up at the next pass (brokers_stall_drops()). */
static void stall_done(void *arg, int err, struct rd *body, uint16_t version)
{
    struct stall_ask ask = *(struct stall_ask *)arg;
    free(arg);
    nagare_share_consumer *sc = ask.sc;
    struct proto_metadata_resp m;
    struct proto_dec d;
    struct proto_topic t;
    if (err != 0 || version < 2 || proto_metadata_resp_decode(body, version, &m, &d) != 0) {
        return; /* asked again after stall_ms while the wait lasts */
    }
    brokers_update(&sc->bs, ask.on, &m);
    if (!proto_next_topic(&d, &t) || t.err != 0 || !proto_str_eq(t.name, PROTO_SHARE_STATE_TOPIC)) {
        return;
    }
    struct proto_metadata_partition mp;
    struct cbroker *b = NULL;
    while (proto_metadata_resp_next_partition(&d, &mp)) {
        b = mp.partition == 0 ? brokers_find(&sc->bs, mp.leader) : b;
    }
    struct cbroker *x = sc->coord;
    if (b != NULL && x != NULL && x != b &&
        brokers_stalled(x, sc->cfg.stall_ms, sc->cfg.fetch_wait_max_ms, clock_mono_ms())) {
        x->stall_drop = true;
        cbroker_coordinate(&sc->coord, b);
        (void)brokers_connect(b, clock_mono_ms(), CONN_BACKOFF_MS_FIRST);
    }
}

/* Asks a broker other than the stalled coordinator who leads
 * __share_state/0. */
static void stall_ask(nagare_share_consumer *sc, struct cbroker *stalled, int64_t now_ms)
{
    struct cbroker *on =
        brokers_stall_peer(&sc->bs, stalled, sc->stall_asks, now_ms, CONN_BACKOFF_MS_FIRST);
    if (on == NULL) {
        return;
    }
    uint16_t version = conn_version(&on->conn, PROTO_API_METADATA);
    struct stall_ask *ask = malloc(sizeof(*ask));
    struct wr w;
    uint32_t corr;
    if (version < 2 || version == UINT16_MAX || ask == NULL ||
        conn_frame_begin(&on->conn, 64 + PROTO_TOPIC_NAME_BYTES_MAX, &w, &corr) != 0) {
        free(ask);
        brokers_stall_asked(stalled, now_ms, CONN_BACKOFF_MS_FIRST); /* soon again */
        return;
    }
    *ask = (struct stall_ask){.sc = sc, .on = on};
    struct proto_enc e;
    proto_metadata_req_begin(&e, &w, version, corr, str_of(CONN_CLIENT_ID), false);
    proto_enc_topic(&e, str_of(PROTO_SHARE_STATE_TOPIC));
    int rc = proto_enc_end(&e);
    ASSERT(rc == 0); /* sized for one topic */
    conn_frame_commit(&on->conn, &w, corr, PROTO_API_METADATA, version, false,
                      sc->cfg.request_timeout_ms, stall_done, ask);
    sc->stall_asks++;
    brokers_stall_asked(stalled, now_ms, sc->cfg.stall_ms);
}

/* Gives up a connection a stall answer replaced, and asks about the
 * coordinator when it keeps a request waiting past the long poll plus
 * stall_ms. Returns when it is due next. */
static int64_t stall_check(nagare_share_consumer *sc, int64_t now_ms)
{
    brokers_stall_drops(&sc->bs); /* its requests fail; the next go to the new one */
    struct cbroker *b = sc->coord;
    if (sc->cfg.stall_ms == 0 || b == NULL) {
        return INT64_MAX;
    }
    int64_t due = brokers_stall_due(b, sc->cfg.stall_ms, sc->cfg.fetch_wait_max_ms);
    if (now_ms >= due) {
        stall_ask(sc, b, now_ms);
        due = brokers_stall_due(b, sc->cfg.stall_ms, sc->cfg.fetch_wait_max_ms);
    }
    return due;
}

/* ---- the held set ---- */

static uint32_t held_hash(uint16_t topic, int32_t partition, int64_t offset)
{
    uint64_t h = (uint64_t)offset * 0x9E3779B97F4A7C15ull;
    h ^= ((uint64_t)topic << 32 | (uint32_t)partition) * 0xC2B2AE3D27D4EB4Full;
    return (uint32_t)(h >> 32);
}

static struct hslot *held_slot(nagare_share_consumer *sc, uint16_t topic, int32_t partition,
                               int64_t offset)
{
    uint32_t mask = sc->held_cap - 1;
    for (uint32_t i = held_hash(topic, partition, offset) & mask;; i = (i + 1) & mask) {
        struct hslot *s = &sc->held[i];
        if (!s->used || (s->offset == offset && s->partition == partition && s->topic == topic)) {
            return s;
        }
    }
}

static void held_add(nagare_share_consumer *sc, uint16_t topic, int32_t partition, int64_t offset)
{
    ASSERT(sc->held_count < sc->cfg.unacked_max); /* next_record() checks */
    struct hslot *s = held_slot(sc, topic, partition, offset);
    if (!s->used) {
        *s = (struct hslot){.offset = offset, .partition = partition, .topic = topic, .used = true};
        sc->held_count++;
    }
}

/* Removes a record (backward-shift deletion keeps probes unbroken).
 * Returns whether it was held. */
static bool held_remove(nagare_share_consumer *sc, uint16_t topic, int32_t partition,
                        int64_t offset)
{
    struct hslot *s = held_slot(sc, topic, partition, offset);
    if (!s->used) {
        return false;
    }
    uint32_t mask = sc->held_cap - 1;
    uint32_t hole = (uint32_t)(s - sc->held);
    for (uint32_t i = (hole + 1) & mask; sc->held[i].used; i = (i + 1) & mask) {
        const struct hslot *n = &sc->held[i];
        uint32_t home = held_hash(n->topic, n->partition, n->offset) & mask;
        /* n may fill the hole unless its home lies cyclically in (hole, i] */
        bool stays = hole <= i ? (home > hole && home <= i) : (home > hole || home <= i);
        if (!stays) {
            sc->held[hole] = *n;
            hole = i;
        }
    }
    sc->held[hole].used = false;
    sc->held_count--;
    return true;
}

/* ---- pending acknowledgements ---- */

static int pending_add(nagare_share_consumer *sc, uint16_t topic, int32_t partition, int64_t first,
                       int64_t last, int8_t type, bool report)
{
    if (sc->pending_count == sc->pending_cap) {
        return -NG_EBUSY;
    }
    sc->pending[sc->pending_count++] = (struct sack){.topic = topic,
                                                     .partition = partition,
                                                     .first = first,
                                                     .last = last,
                                                     .type = type,
                                                     .report = report};
    return 0;
}

/* The consumer's own release of acquired offsets nobody will see. When the
 * queue is full the locks just expire (the records come back later). */
static void release_quietly(nagare_share_consumer *sc, uint16_t topic, int32_t partition,
                            int64_t first, int64_t last)
{
    if (first <= last) {
        (void)pending_add(sc, topic, partition, first, last, PROTO_ACK_RELEASE, false);
    }
}

/* ---- ShareFetch ---- */

struct fetch_ctx {
    nagare_share_consumer *sc;
    int32_t records_max;
    int32_t wait_ms;
};

static int fetch_encode(void *arg, struct wr *w, uint32_t corr, uint16_t version)
{
    const struct fetch_ctx *fc = arg;
    const nagare_share_consumer *sc = fc->sc;
    struct proto_enc e;
    struct proto_share_fetch_req req = {.group = str_of(sc->group),
                                        .member_id = str_of(sc->member_id),
                                        .wait_max_ms = fc->wait_ms,
                                        .records_max = fc->records_max};
    proto_share_fetch_req_begin(&e, w, version, corr, str_of(CONN_CLIENT_ID), &req);
    for (uint32_t t = 0; t < sc->topic_count; t++) {
        if (sc->topics[t].count == 0) {
            continue;
        }
        proto_enc_topic(&e, str_of(sc->topics[t].name));
        for (int32_t p = 0; p < sc->topics[t].count; p++) {
            proto_enc_partition_index(&e, p);
        }
    }
    return proto_enc_end(&e);
}

static size_t fetch_bytes(const nagare_share_consumer *sc)
{
    return REQUEST_BYTES + (size_t)sc->topic_count * PROTO_TOPIC_BYTES_MAX +
           (size_t)sc->part_total * PROTO_PARTITION_INDEX_BYTES;
}

/* Copies a partition's acquired ranges (ascending, as the broker sends
 * them; out of order ones are dropped: their locks expire). */
static int section_ranges(nagare_share_consumer *sc,
                          const struct proto_share_fetch_resp_partition *p, struct ssection *sec)
{
    sec->range_first = sc->range_count;
    for (uint32_t i = 0; i < p->acquired_count; i++) {
        struct proto_share_acquired a;
        proto_share_fetch_acquired(p, i, &a);
        if (sc->range_count == sc->cfg.records_max) {
            return -NG_EPROTO; /* more ranges than records asked for */
        }
        bool ordered = sec->range_count == 0 || a.first > sc->ranges[sc->range_count - 1].last;
        if (a.first < 0 || a.last < a.first || !ordered) {
            continue;
        }
        sc->ranges[sc->range_count++] = (struct srange){a.first, a.last, a.delivery_count};
        sec->range_count++;
    }
    return 0;
}

/* Walks an answer (decoded from our copy): the member id, then each
 * partition against the request's order. */
static int fetch_parse(nagare_share_consumer *sc, struct rd *body, uint16_t version)
{
    struct proto_share_fetch_resp r;
    struct proto_dec d;
    if (proto_share_fetch_resp_decode(body, version, &r, &d) != 0) {
        return -NG_EPROTO;
    }
    if (r.err != 0) {
        return r.err;
    }
    if (sc->member_id[0] == '\0' &&
        (r.member_id.len <= 0 ||
         proto_str_copy(r.member_id, sc->member_id, sizeof(sc->member_id)) != 0)) {
        return -NG_EPROTO;
    }
    sc->section_count = 0;
    sc->range_count = 0;
    sc->part_errs = false;
    uint32_t t = 0;
    struct proto_topic tp;
    while (proto_next_topic(&d, &tp)) {
        while (t < sc->topic_count && sc->topics[t].count == 0) {
            t++;
        }
        if (t == sc->topic_count || !proto_str_eq(tp.name, sc->topics[t].name)) {
            return -NG_EPROTO;
        }
        struct proto_share_fetch_resp_partition p;
        while (proto_share_fetch_resp_next_partition(&d, &p)) {
            if (p.partition < 0 || p.partition >= sc->topics[t].count ||
                sc->section_count == sc->part_total) {
                return -NG_EPROTO;
            }
            if (p.err != 0) {
                sc->err_pending = sc->err_pending != 0 ? sc->err_pending : p.err;
                sc->part_errs = true;
            }
            struct ssection *sec = &sc->sections[sc->section_count];
            *sec = (struct ssection){.topic = (uint16_t)t,
                                     .partition = p.partition,
                                     .records = p.records,
                                     .records_bytes = p.records_bytes};
            int rc = section_ranges(sc, &p, sec);
            if (rc != 0) {
                return rc;
            }
            sc->section_count += sec->range_count > 0 ? 1 : 0;
        }
        t++;
    }
    return 0;
}

static void read_reset(nagare_share_consumer *sc)
{
    sc->cur_section = 0;
    sc->cur_pos = 0;
    sc->br_open = false;
    sc->cur_range = sc->section_count > 0 ? sc->sections[0].range_first : 0;
    sc->cur_offset = sc->section_count > 0 ? sc->ranges[sc->cur_range].first : 0;
}

static void fetch_failed(nagare_share_consumer *sc, struct cbroker *at, int err)
{
    sc->fetch_due_ms = clock_mono_ms() + conn_backoff_next(&sc->fetch_backoff_ms);
    if (err == -NG_EUNKNOWN_MEMBER) {
        sc->member_id[0] = '\0'; /* a new member next time */
    } else if (err == -NG_EPROTO) {
        conn_close(&at->conn, err);
    } else if (!coord_moved(sc, at, err) && err != -NG_EBUSY && err != -NG_ECLOSED) {
        sc->err_pending = sc->err_pending != 0 ? sc->err_pending : err;
    }
}

/* Connection callback: copies the answer and cuts it into sections. */
static void fetch_done(void *arg, int err, struct rd *body, uint16_t version)
{
    nagare_share_consumer *sc = arg;
    ASSERT(sc->fetch_inflight && !sc->answer_ready && sc->fetch_to != NULL);
    sc->fetch_inflight = false;
    struct cbroker *at = sc->fetch_to;
    sc->fetch_to = NULL;
    size_t len = err == 0 ? body->len - body->pos : 0;
    if (err == 0 && len > sc->fbuf_cap) {
        uint8_t *b = realloc(sc->fbuf, len);
        err = b == NULL ? -ENOMEM : 0;
        if (b != NULL) {
            sc->fbuf = b;
            sc->fbuf_cap = len;
        }
    }
    if (err == 0) {
        memcpy(sc->fbuf, body->ptr + body->pos, len);
        struct rd copy = rd_make(sc->fbuf, len);
        err = fetch_parse(sc, &copy, version);
    }
    if (err != 0) {
        /* What it acquired (if anything) comes back when the locks expire. */
        sc->section_count = 0;
        fetch_failed(sc, at, err);
        return;
    }
    if (sc->part_errs) {
        /* such an answer comes at once: do not spin on it */
        sc->fetch_due_ms = clock_mono_ms() + conn_backoff_next(&sc->fetch_backoff_ms);
    } else {
        sc->fetch_backoff_ms = 0;
    }
    read_reset(sc);
    sc->answer_ready = sc->section_count > 0;
}

/* Sends a ShareFetch when one may go. */
static void fetch_send(nagare_share_consumer *sc, int64_t now)
{
    uint32_t room = sc->cfg.unacked_max - sc->held_count;
    struct cbroker *to = sc->coord;
    struct client_conn *gc = to != NULL ? &to->conn : NULL;
    if (sc->fetch_inflight || sc->answer_ready || room == 0 || sc->part_total == 0 ||
        now < sc->fetch_due_ms || sc->coord_lost || gc == NULL || !conn_ready(gc)) {
        return;
    }
    uint16_t version = conn_version(gc, PROTO_API_SHARE_FETCH);
    struct fetch_ctx fc = {.sc = sc,
                           .records_max =
                               (int32_t)(room < sc->cfg.records_max ? room : sc->cfg.records_max),
                           .wait_ms = (int32_t)sc->cfg.fetch_wait_max_ms};
    struct wr w;
    uint32_t corr;
    if (version == UINT16_MAX || conn_frame_begin(gc, fetch_bytes(sc), &w, &corr) != 0 ||
        fetch_encode(&fc, &w, corr, version) != 0) {
        sc->fetch_due_ms = now + conn_backoff_next(&sc->fetch_backoff_ms);
        return;
    }
    conn_frame_commit(gc, &w, corr, PROTO_API_SHARE_FETCH, version, false,
                      sc->cfg.request_timeout_ms + sc->cfg.fetch_wait_max_ms, fetch_done, sc);
    sc->fetch_inflight = true;
    sc->fetch_to = to;
}

/* ---- reading the answer ---- */

static const struct ssection *cur_sec(const nagare_share_consumer *sc)
{
    return &sc->sections[sc->cur_section];
}

static uint32_t sec_range_end(const struct ssection *sec)
{
    return sec->range_first + sec->range_count;
}

/* Moves the range cursor up to offset o, releasing acquired offsets below
 * o that had no record. */
static void ranges_skip_to(nagare_share_consumer *sc, int64_t o)
{
    const struct ssection *sec = cur_sec(sc);
    while (sc->cur_range < sec_range_end(sec) && sc->ranges[sc->cur_range].last < o) {
        release_quietly(sc, sec->topic, sec->partition, sc->cur_offset,
                        sc->ranges[sc->cur_range].last);
        sc->cur_range++;
        if (sc->cur_range < sec_range_end(sec)) {
            sc->cur_offset = sc->ranges[sc->cur_range].first;
        }
    }
    if (sc->cur_range < sec_range_end(sec) && o > sc->cur_offset &&
        o >= sc->ranges[sc->cur_range].first) {
        release_quietly(sc, sec->topic, sec->partition, sc->cur_offset, o - 1);
        sc->cur_offset = o;
    }
}

/* Done with the current section (read, or its bytes are bad): what is
 * left of its ranges is released; on to the next. */
static void section_next(nagare_share_consumer *sc)
{
    ranges_skip_to(sc, INT64_MAX);
    sc->br_open = false;
    sc->cur_pos = 0;
    if (++sc->cur_section == sc->section_count) {
        sc->answer_ready = false;
        return;
    }
    sc->cur_range = cur_sec(sc)->range_first;
    sc->cur_offset = sc->ranges[sc->cur_range].first;
}

/* Opens the section's next batch that reaches the acquired offsets.
 * Returns 1, 0 at the section's end, -NG_ECORRUPT, -ENOMEM. */
static int batch_next(nagare_share_consumer *sc)
{
    const struct ssection *sec = cur_sec(sc);
    while (sc->cur_pos < sec->records_bytes) {
        const uint8_t *at = sec->records + sc->cur_pos;
        size_t left = sec->records_bytes - sc->cur_pos;
        struct batch_header h;
        if (batch_header_decode(at, left, BATCH_BYTES_LIMIT, &h) != 0 || batch_bytes(&h) > left) {
            return -NG_ECORRUPT;
        }
        sc->cur_pos += batch_bytes(&h);
        if (batch_offset_last(&h) < sc->cur_offset) {
            continue;
        }
        int rc = msg_batch_open(&sc->br, at, batch_bytes(&h), &sc->zctx, &sc->zbuf, &sc->zbuf_cap);
        if (rc != 0) {
            return rc == -ENOMEM ? rc : -NG_ECORRUPT;
        }
        sc->br_open = true;
        return 1;
    }
    return 0;
}

/* Whether the record at o is acquired (the cursor moved to it). */
static bool acquired(nagare_share_consumer *sc, int64_t o)
{
    ranges_skip_to(sc, o);
    const struct ssection *sec = cur_sec(sc);
    return sc->cur_range < sec_range_end(sec) && o >= sc->cur_offset;
}

static void answer_release_rest(nagare_share_consumer *sc);

/* The next acquired record: 1 with sc->msg, 0 when the answer is read, or
 * an error (the section concerned is released). */
static int next_record(nagare_share_consumer *sc)
{
    while (sc->answer_ready) {
        int rc = sc->br_open ? 1 : batch_next(sc);
        if (rc == 0) {
            section_next(sc);
            continue;
        }
        struct batch_record rec;
        rc = rc == 1 ? batch_reader_next(&sc->br, &rec) : rc;
        if (rc == 0) {
            sc->br_open = false;
            continue;
        }
        if (rc == 1 && !acquired(sc, rec.offset)) {
            continue;
        }
        if (rc == 1 && sc->held_count == sc->cfg.unacked_max) {
            answer_release_rest(sc); /* more than asked for: a broker's mistake */
            return 0;
        }
        const struct ssection *sec = cur_sec(sc);
        rc = rc == 1 ? cmsg_fill(&sc->msg, sc->topics[sec->topic].name, sec->partition, &rec) : rc;
        if (rc != 0) {
            section_next(sc);
            return rc == -ENOMEM ? rc : -NG_ECORRUPT;
        }
        sc->msg.pub.delivery_count = sc->ranges[sc->cur_range].count;
        sc->cur_offset = rec.offset + 1;
        held_add(sc, sec->topic, sec->partition, rec.offset);
        return 1;
    }
    return 0;
}

/* Releases what the answer acquired and poll has not returned. */
static void answer_release_rest(nagare_share_consumer *sc)
{
    while (sc->answer_ready) {
        section_next(sc);
    }
}

/* ---- ShareAck ---- */

static int sack_cmp(const void *a, const void *b)
{
    const struct sack *x = a;
    const struct sack *y = b;
    if (x->topic != y->topic) {
        return x->topic < y->topic ? -1 : 1;
    }
    if (x->partition != y->partition) {
        return x->partition < y->partition ? -1 : 1;
    }
    return (x->first > y->first) - (x->first < y->first);
}

static bool sack_joins(const struct sack *prev, const struct sack *next)
{
    return prev->topic == next->topic && prev->partition == next->partition &&
           prev->type == next->type && prev->last + 1 == next->first;
}

/* Moves pending acknowledgements into the request, sorted and cut into
 * entries of adjacent ranges of one type, at most
 * PROTO_REQUEST_PARTITIONS_MAX entries; the rest stays pending. */
static void acks_take(nagare_share_consumer *sc)
{
    qsort(sc->pending, sc->pending_count, sizeof(*sc->pending), sack_cmp);
    uint32_t n = 0;
    sc->entry_count = 0;
    while (n < sc->pending_count) {
        bool joins = n > 0 && sack_joins(&sc->pending[n - 1], &sc->pending[n]);
        if (!joins && sc->entry_count == PROTO_REQUEST_PARTITIONS_MAX) {
            break;
        }
        if (!joins) {
            sc->entry_count++;
        }
        sc->entry_end[sc->entry_count - 1] = ++n;
    }
    memcpy(sc->sending, sc->pending, n * sizeof(*sc->pending));
    sc->sending_count = n;
    memmove(sc->pending, sc->pending + n, (sc->pending_count - n) * sizeof(*sc->pending));
    sc->pending_count -= n;
}

static int acks_encode(void *arg, struct wr *w, uint32_t corr, uint16_t version)
{
    const nagare_share_consumer *sc = arg;
    struct proto_enc e;
    struct proto_share_ack_req req = {.group = str_of(sc->group),
                                      .member_id = str_of(sc->member_id)};
    proto_share_ack_req_begin(&e, w, version, corr, str_of(CONN_CLIENT_ID), &req);
    uint32_t first = 0;
    for (uint32_t k = 0; k < sc->entry_count; k++) {
        const struct sack *a = &sc->sending[first];
        const struct sack *z = &sc->sending[sc->entry_end[k] - 1];
        if (k == 0 || a->topic != sc->sending[first - 1].topic) {
            proto_enc_topic(&e, str_of(sc->topics[a->topic].name));
        }
        struct proto_share_ack range = {.first = a->first, .last = z->last, .type = a->type};
        proto_share_ack_req_partition(
            &e, &(struct proto_share_ack_req_partition){
                    .partition = a->partition, .ack_count = 1, .acks = &range});
        first = sc->entry_end[k];
    }
    return proto_enc_end(&e);
}

/* Per-entry errors, in request order, into the items. */
static int acks_decode(nagare_share_consumer *sc, struct rd *body, uint16_t version)
{
    struct proto_dec d;
    if (proto_share_ack_resp_decode(body, version, &d) != 0) {
        return -NG_EPROTO;
    }
    uint32_t k = 0;
    struct proto_topic t;
    while (proto_next_topic(&d, &t)) {
        struct proto_partition_result r;
        while (proto_next_partition_result(&d, &r)) {
            uint32_t first = k == 0 ? 0 : sc->entry_end[k - 1];
            if (k == sc->entry_count || r.partition != sc->sending[first].partition) {
                return -NG_EPROTO;
            }
            for (uint32_t i = first; i < sc->entry_end[k]; i++) {
                sc->sending[i].err = r.err;
            }
            k++;
        }
    }
    return k == sc->entry_count ? 0 : -NG_EPROTO;
}

/* Tells on_ack about each record of the request, and puts back what the
 * broker did not apply because it was busy. */
static void acks_report(nagare_share_consumer *sc)
{
    for (uint32_t i = 0; i < sc->sending_count; i++) {
        struct sack *a = &sc->sending[i];
        if (a->err == -NG_EBUSY &&
            pending_add(sc, a->topic, a->partition, a->first, a->last, a->type, a->report) == 0) {
            continue; /* nothing applied: sent again */
        }
        if (!a->report) {
            continue;
        }
        sc->ack_err_first = sc->ack_err_first != 0 ? sc->ack_err_first : a->err;
        if (sc->cfg.on_ack != NULL) {
            struct nagare_ack_report r = {.topic = sc->topics[a->topic].name,
                                          .partition = a->partition,
                                          .offset = a->first,
                                          .type = a->type,
                                          .err = a->err};
            bool nested = sc->in_callback;
            sc->in_callback = true;
            sc->cfg.on_ack(sc, &r, sc->cfg.opaque);
            sc->in_callback = nested;
        }
    }
    sc->sending_count = 0;
    sc->entry_count = 0;
}

static void acks_done(void *arg, int err, struct rd *body, uint16_t version)
{
    nagare_share_consumer *sc = arg;
    ASSERT(sc->ack_inflight && sc->ack_to != NULL);
    sc->ack_inflight = false;
    err = err == 0 ? acks_decode(sc, body, version) : err;
    (void)coord_moved(sc, sc->ack_to, err);
    sc->ack_to = NULL;
    if (err != 0) {
        for (uint32_t i = 0; i < sc->sending_count; i++) {
            sc->sending[i].err = err;
        }
    }
    acks_report(sc);
}

/* Sends pending acknowledgements when none are in flight. */
static void acks_send(nagare_share_consumer *sc)
{
    struct cbroker *to = sc->coord;
    struct client_conn *gc = to != NULL ? &to->conn : NULL;
    if (sc->ack_inflight || sc->pending_count == 0 || sc->member_id[0] == '\0' || sc->coord_lost ||
        gc == NULL || !conn_ready(gc)) {
        return;
    }
    uint16_t version = conn_version(gc, PROTO_API_SHARE_ACK);
    if (version == UINT16_MAX) {
        return;
    }
    acks_take(sc);
    struct wr w;
    uint32_t corr;
    size_t need = REQUEST_BYTES + (size_t)sc->entry_count *
                                      (PROTO_TOPIC_BYTES_MAX + PROTO_SHARE_ACK_PARTITION_BYTES +
                                       PROTO_SHARE_ACK_RANGE_BYTES);
    int rc = conn_frame_begin(gc, need, &w, &corr);
    rc = rc == 0 ? acks_encode(sc, &w, corr, version) : rc;
    if (rc != 0) {
        /* back to pending, tried again by the next poll */
        memcpy(sc->pending + sc->pending_count, sc->sending,
               sc->sending_count * sizeof(*sc->sending));
        sc->pending_count += sc->sending_count;
        sc->sending_count = 0;
        return;
    }
    conn_frame_commit(gc, &w, corr, PROTO_API_SHARE_ACK, version, false,
                      sc->cfg.request_timeout_ms + sc->cfg.fetch_wait_max_ms, acks_done, sc);
    sc->ack_inflight = true;
    sc->ack_to = to;
}

/* ---- connection upkeep ---- */

/* Looks up the partition counts of topics not known yet. */
static int topics_lookup(nagare_share_consumer *sc)
{
    sc->meta_due_ms = INT64_MAX;
    for (uint32_t t = 0; t < sc->topic_count; t++) {
        if (sc->topics[t].count > 0) {
            continue;
        }
        int32_t count = 0;
        struct cbroker *leader;
        int rc = brokers_topic_lookup(&sc->bs, sc->topics[t].name, 0, sc->cfg.stall_ms,
                                      deadline_of(sc), &leader, &count);
        if (rc == 0 && sc->part_total + (uint32_t)count > PROTO_REQUEST_PARTITIONS_MAX) {
            rc = -NG_ETOOBIG;
        }
        if (rc == -NG_EUNKNOWN_TOPIC) {
            sc->meta_due_ms = clock_mono_ms() + META_RETRY_MS;
            continue;
        }
        if (rc != 0) {
            sc->meta_due_ms = clock_mono_ms() + META_RETRY_MS;
            return rc;
        }
        sc->topics[t].count = count;
        sc->part_total += (uint32_t)count;
    }
    return 0;
}

/* ---- the public calls ---- */

void nagare_share_consumer_config_default(struct nagare_share_consumer_config *c)
{
    *c = (struct nagare_share_consumer_config){
        .bootstrap = "127.0.0.1:7420",
        .fetch_wait_max_ms = 500,
        .records_max = 500,
        .unacked_max = 10000,
        .request_timeout_ms = 30000,
        .stall_ms = STALL_MS_DEFAULT,
        .close_ack = NAGARE_ACK_ACCEPT,
    };
}

static int config_check(const struct nagare_share_consumer_config *c)
{
    bool ok = c->bootstrap != NULL && strlen(c->bootstrap) < CONN_BOOTSTRAP_BYTES_MAX &&
              c->fetch_wait_max_ms <= INT32_MAX && c->records_max > 0 &&
              c->records_max <= PROTO_SHARE_FETCH_RECORDS_MAX && c->unacked_max > 0 &&
              c->unacked_max <= SHARE_UNACKED_LIMIT && c->request_timeout_ms > 0 &&
              c->request_timeout_ms <= INT32_MAX && c->stall_ms <= INT32_MAX &&
              (c->close_ack == NAGARE_ACK_NONE || c->close_ack == NAGARE_ACK_ACCEPT ||
               c->close_ack == NAGARE_ACK_RELEASE);
    return ok ? 0 : -NG_EBADARG;
}

static void share_free(nagare_share_consumer *sc)
{
    brokers_fini(&sc->bs); /* completes requests in flight */
    batch_zctx_fini(&sc->zctx);
    cmsg_fini(&sc->msg);
    free(sc->zbuf);
    free(sc->fbuf);
    free(sc->sections);
    free(sc->ranges);
    free(sc->held);
    free(sc->pending);
    free(sc->sending);
    free(sc->entry_end);
    free(sc);
}

/* The fixed-size tables, sized from the configuration. */
static int share_alloc(nagare_share_consumer *sc)
{
    const struct nagare_share_consumer_config *c = &sc->cfg;
    sc->held_cap = 1;
    while (sc->held_cap < 2 * c->unacked_max) {
        sc->held_cap *= 2;
    }
    /* the application's acks (at most the held records), the consumer's own
     * releases of one answer (at most a range and a gap per record), slack */
    sc->pending_cap = c->unacked_max + 2 * c->records_max + 64;
    sc->held = calloc(sc->held_cap, sizeof(*sc->held));
    sc->pending = calloc(sc->pending_cap, sizeof(*sc->pending));
    sc->sending = calloc(sc->pending_cap, sizeof(*sc->sending));
    sc->entry_end = calloc(PROTO_REQUEST_PARTITIONS_MAX, sizeof(*sc->entry_end));
    sc->sections = calloc(PROTO_REQUEST_PARTITIONS_MAX, sizeof(*sc->sections));
    sc->ranges = calloc(c->records_max, sizeof(*sc->ranges));
    sc->zbuf_cap = MSG_ZBUF_BYTES_INITIAL;
    sc->zbuf = malloc(sc->zbuf_cap);
    bool ok = sc->held != NULL && sc->pending != NULL && sc->sending != NULL &&
              sc->entry_end != NULL && sc->sections != NULL && sc->ranges != NULL &&
              sc->zbuf != NULL;
    return ok ? 0 : -ENOMEM;
}

int nagare_share_consumer_new(const struct nagare_share_consumer_config *c,
                              nagare_share_consumer **out)
{
    if (c == NULL || out == NULL || config_check(c) != 0) {
        return -NG_EBADARG;
    }
    *out = NULL;
    nagare_share_consumer *sc = calloc(1, sizeof(*sc));
    if (sc == NULL) {
        return -ENOMEM;
    }
    sc->cfg = *c;
    strcpy(sc->bootstrap, c->bootstrap);
    sc->cfg.bootstrap = sc->bootstrap;
    struct conn_config cc = {.bootstrap = sc->bootstrap,
                             .request_timeout_ms = c->request_timeout_ms,
                             .resp_bytes_max = PROTO_FRAME_BYTES_DEFAULT,
                             .tx_bytes_max = 1u << 20,
                             .pending_max = 8};
    int rc = conn_login_make(&cc.login, c->login.user, c->login.password, c->login.mechanism);
    sc->cfg.login = (struct nagare_login){0}; /* the caller's strings: copied, not kept */
    rc = rc == 0 ? conn_config_tls(&cc, &c->tls) : rc;
    if (rc != 0) {
        explicit_bzero(&cc.login, sizeof(cc.login));
        conn_config_tls_done(&cc);
        free(sc); /* holds nothing yet */
        return rc;
    }
    rc = brokers_init(&sc->bs, &cc);
    conn_config_tls_done(&cc);
    explicit_bzero(&cc.login, sizeof(cc.login));
    rc = rc == 0 ? batch_zctx_init(&sc->zctx, BATCH_HEADER_BYTES, 0) : rc;
    rc = rc == 0 ? share_alloc(sc) : rc;
    rc = rc == 0 ? conn_wait_up(boot_conn(sc), (int)c->request_timeout_ms) : rc;
    if (rc != 0) {
        share_free(sc);
        return rc;
    }
    *out = sc;
    return 0;
}

static bool group_id_ok(const char *id)
{
    size_t n = id != NULL ? strnlen(id, PROTO_GROUP_ID_BYTES_MAX + 1) : 0;
    for (size_t i = 0; i < n; i++) {
        if (id[i] < 0x20 || id[i] > 0x7e) {
            return false;
        }
    }
    return n > 0 && n <= PROTO_GROUP_ID_BYTES_MAX;
}

static int subscribe_args(nagare_share_consumer *sc, const char *group, const char *const *topics,
                          size_t topic_count)
{
    if (sc->subscribed || sc->in_callback || topics == NULL || topic_count == 0 ||
        topic_count > SHARE_TOPICS_LIMIT) {
        return -NG_EBADARG;
    }
    if (!group_id_ok(group)) {
        return -NG_EBADNAME;
    }
    for (size_t i = 0; i < topic_count; i++) {
        if (topics[i] == NULL ||
            !proto_topic_name_valid(topics[i],
                                    strnlen(topics[i], PROTO_TOPIC_NAME_BYTES_MAX + 1))) {
            return -NG_EBADNAME;
        }
    }
    return 0;
}

static int id_decode(void *arg, struct rd *body, uint16_t version)
{
    struct fetch_ctx *fc = arg;
    nagare_share_consumer *sc = fc->sc;
    int rc = fetch_parse(sc, body, version); /* records_max 0: no records */
    rc = rc == 0 ? sc->err_pending : rc;
    sc->err_pending = 0;
    sc->section_count = 0;
    sc->range_count = 0;
    return rc;
}

/* ShareFetch of nothing at the coordinator: checks the group and the
 * partitions, and gets the member id. While the coordinator moves (or a
 * cluster makes __share_state first) it is looked for again until the
 * deadline: the request takes nothing, so it may be sent again. */
static int member_id_fetch(nagare_share_consumer *sc)
{
    struct fetch_ctx fc = {.sc = sc, .records_max = 0, .wait_ms = 0};
    int64_t deadline = deadline_of(sc);
    uint32_t backoff_ms = 0;
    for (;;) {
        struct cbroker *at;
        int rc = coord_get(sc, &at);
        if (rc == 0) {
            /* A coordinator that stalls is given up once another is named. */
            struct brokers_watch w;
            const struct conn_watch *watch = brokers_watch_init(
                &w, &sc->bs, at, PROTO_SHARE_STATE_TOPIC, 0, sc->cfg.stall_ms, deadline);
            rc = conn_call_watched(&at->conn, PROTO_API_SHARE_FETCH, fetch_bytes(sc), fetch_encode,
                                   id_decode, &fc, deadline, watch);
        }
        if (!coord_moved(sc, at, rc) || clock_mono_ms() >= deadline) {
            return api_err(rc);
        }
        (void)poll(NULL, 0, (int)conn_backoff_next(&backoff_ms));
    }
}

int nagare_share_subscribe(nagare_share_consumer *sc, const char *group, const char *const *topics,
                           size_t topic_count)
{
    ASSERT(sc != NULL);
    int rc = subscribe_args(sc, group, topics, topic_count);
    if (rc != 0) {
        return rc;
    }
    strcpy(sc->group, group);
    sc->topic_count = 0;
    sc->part_total = 0;
    for (size_t i = 0; i < topic_count; i++) {
        bool dup = false;
        for (uint32_t t = 0; t < sc->topic_count && !dup; t++) {
            dup = strcmp(sc->topics[t].name, topics[i]) == 0;
        }
        if (!dup) {
            strcpy(sc->topics[sc->topic_count].name, topics[i]);
            sc->topics[sc->topic_count++].count = 0;
        }
    }
    rc = topics_lookup(sc);
    rc = rc == 0 ? member_id_fetch(sc) : rc;
    if (rc != 0) {
        sc->member_id[0] = '\0';
        return rc;
    }
    sc->subscribed = true;
    return 0;
}

/* A fetch or partition error not yet returned by poll. */
static int take_error(nagare_share_consumer *sc)
{
    int rc = sc->err_pending;
    sc->err_pending = 0;
    return rc;
}

/* Requests that may go now, and topics to look for again. */
static int share_upkeep(nagare_share_consumer *sc, int64_t now)
{
    int rc = conn_redial(boot_conn(sc), &sc->redial, now, sc->cfg.request_timeout_ms);
    bool meta_up = brokers_meta(&sc->bs) != NULL;
    if (rc == 0 && now >= sc->meta_due_ms && meta_up) {
        rc = topics_lookup(sc);
    }
    /* Looked up through the bootstrap connection once it is up (conn_redial()
     * brings it back, trying the bootstrap list, without blocking poll), or
     * through another broker that is up. */
    struct cbroker *gc;
    if (rc == 0 && now >= sc->fetch_due_ms && !sc->fetch_inflight && !sc->ack_inflight && meta_up &&
        coord_get(sc, &gc) != 0) {
        /* none now: look again later */
        sc->fetch_due_ms = clock_mono_ms() + conn_backoff_next(&sc->fetch_backoff_ms);
    }
    acks_send(sc);
    fetch_send(sc, now);
    return rc;
}

int nagare_share_poll(nagare_share_consumer *sc, int timeout_ms, const struct nagare_message **out)
{
    ASSERT(sc != NULL && out != NULL);
    if (!sc->subscribed || sc->in_callback) {
        return -NG_EBADARG;
    }
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : clock_mono_ms() + timeout_ms;
    for (;;) {
        int rc = next_record(sc);
        if (rc == 1) {
            *out = &sc->msg.pub;
            return 1;
        }
        rc = rc == 0 ? take_error(sc) : rc;
        int64_t now = clock_mono_ms();
        rc = rc == 0 ? share_upkeep(sc, now) : rc;
        if (rc != 0) {
            return rc;
        }
        int64_t stall_at = stall_check(sc, now);
        if (sc->answer_ready) {
            continue; /* a fetch answered meanwhile */
        }
        if (now >= deadline) {
            return 0;
        }
        int64_t until = deadline;
        until = sc->fetch_due_ms > now && sc->fetch_due_ms < until ? sc->fetch_due_ms : until;
        until = sc->meta_due_ms < until ? sc->meta_due_ms : until;
        until = boot_conn(sc)->state == CONN_DOWN && sc->redial.at_ms < until ? sc->redial.at_ms
                                                                              : until;
        until = stall_at < until ? stall_at : until;
        int64_t wait = until > now ? until - now : 0;
        rc = conns_poll(sc, (int)(wait < INT32_MAX ? wait : INT32_MAX));
        if (rc != 0) {
            return rc;
        }
    }
}

static int ack_check(nagare_share_consumer *sc, const char *topic, int32_t partition, int type,
                     uint16_t *topic_out)
{
    if (type != NAGARE_ACK_ACCEPT && type != NAGARE_ACK_RELEASE && type != NAGARE_ACK_REJECT) {
        return -NG_EBADARG;
    }
    for (uint32_t t = 0; topic != NULL && t < sc->topic_count; t++) {
        /* a message's topic points at ours: compare the pointer first */
        if (sc->topics[t].name == topic || strcmp(sc->topics[t].name, topic) == 0) {
            *topic_out = (uint16_t)t;
            return partition >= 0 ? 0 : -NG_ENOT_ACQUIRED;
        }
    }
    return -NG_ENOT_ACQUIRED;
}

int nagare_share_ack_offset(nagare_share_consumer *sc, const char *topic, int32_t partition,
                            int64_t offset, enum nagare_ack_type type)
{
    ASSERT(sc != NULL);
    uint16_t t = 0;
    int rc = ack_check(sc, topic, partition, (int)type, &t);
    if (rc != 0) {
        return rc;
    }
    if (sc->pending_count == sc->pending_cap) {
        return -NG_EBUSY;
    }
    if (!held_remove(sc, t, partition, offset)) {
        return -NG_ENOT_ACQUIRED;
    }
    rc = pending_add(sc, t, partition, offset, offset, (int8_t)type, true);
    ASSERT(rc == 0); /* room checked above */
    return 0;
}

int nagare_share_ack(nagare_share_consumer *sc, const struct nagare_message *m,
                     enum nagare_ack_type type)
{
    ASSERT(sc != NULL && m != NULL);
    return nagare_share_ack_offset(sc, m->topic, m->partition, m->offset, type);
}

/* Sends every pending acknowledgement and waits for the answers. */
static int acks_flush(nagare_share_consumer *sc)
{
    int64_t deadline = deadline_of(sc);
    while (sc->pending_count > 0 || sc->ack_inflight) {
        int64_t left = deadline - clock_mono_ms();
        if (left <= 0) {
            return -NG_ETIMEOUT;
        }
        if (!sc->ack_inflight) {
            struct cbroker *gc;
            int rc = coord_get(sc, &gc);
            rc = rc == 0 && gc->conn.state != CONN_UP ? coord_wait_up(sc, gc) : rc;
            if (rc == -NG_EDISCONNECTED && coord_moved(sc, gc, rc)) {
                continue; /* given up for another coordinator: found again */
            }
            if (rc != 0) {
                return rc;
            }
        }
        acks_send(sc);
        int64_t now = clock_mono_ms();
        int64_t until = stall_check(sc, now); /* a coordinator that stalls is left */
        int64_t wait = until - now < left ? until - now : left;
        int rc = conns_poll(sc, (int)(wait < 0 ? 0 : wait < 100 ? wait : 100));
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

int nagare_share_commit(nagare_share_consumer *sc)
{
    ASSERT(sc != NULL);
    if (sc->in_callback) {
        return -NG_EBADARG;
    }
    sc->ack_err_first = 0;
    int rc = acks_flush(sc);
    return rc != 0 ? rc : sc->ack_err_first;
}

/* Records polled and not acknowledged get close_ack. */
static void held_close(nagare_share_consumer *sc)
{
    for (uint32_t i = 0; i < sc->held_cap && sc->cfg.close_ack != NAGARE_ACK_NONE; i++) {
        const struct hslot *h = &sc->held[i];
        if (h->used && pending_add(sc, h->topic, h->partition, h->offset, h->offset,
                                   (int8_t)sc->cfg.close_ack, true) != 0) {
            break; /* no room: the rest go back when their locks expire */
        }
    }
}

void nagare_share_consumer_destroy(nagare_share_consumer *sc)
{
    if (sc == NULL) {
        return;
    }
    ASSERT(!sc->in_callback);
    if (sc->subscribed && sc->coord != NULL && sc->coord->conn.state == CONN_UP) {
        /* A fetch in flight acquires records: wait for it, to release them. */
        int64_t deadline = deadline_of(sc);
        while (sc->fetch_inflight && clock_mono_ms() < deadline) {
            (void)stall_check(sc, clock_mono_ms()); /* a stalled coordinator's is given up */
            if (conns_poll(sc, 100) != 0) {
                break;
            }
        }
        answer_release_rest(sc);
        held_close(sc);
        /* Unanswered ones are not lost: their locks expire. */
        int rc = acks_flush(sc);
        (void)rc;
    }
    share_free(sc);
}
