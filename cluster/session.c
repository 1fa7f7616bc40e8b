/* cluster/session.c — the cluster thread: lease and registration, the
 * mirror of the prefix kept by a watch, views handed to the broker, the
 * controller campaign and its passes, and the broker's queued requests.
 * docs/cluster.md, section 3. */
#include "cluster/session.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "cluster/controller.h"
#include "cluster/mirror.h"

/* How long the thread waits on the watch before it looks at its queue, its
 * lease and the stop flag again: the most a request or a stop waits. */
#define SESSION_POLL_MS 100
/* After an etcd call failed, before the same thing is tried again. */
#define SESSION_RETRY_MS 500
/* At start, how long etcd may be unavailable (a member down, its leader
 * being elected) before the broker gives up joining: Kafka's broker waits
 * zookeeper.connection.timeout.ms, 18 s, for ZooKeeper. */
#define SESSION_START_UNAVAILABLE_MS 30000
/* Partitions written per transaction when a topic is created: a compare and
 * a put each, within etcd's limit of operations per transaction. */
#define SESSION_CREATE_CHUNK (ETCD_TXN_OPS_MAX / 2)

#define KEY_BYTES (ETCD_KEY_BYTES_MAX + 1)
#define RECORD_BYTES \
    1024 /* every record fits: the longest, a broker's, is a 255-byte host and four numbers */

enum req_kind {
    REQ_CREATE,
    REQ_DELETE,
    REQ_ALTER_ISR,
    REQ_REASSIGN,
    REQ_USER_PUT,
    REQ_USER_DELETE,
    REQ_ACL_PUT,
    REQ_ACL_DELETE
};

struct req {
    enum req_kind kind;
    char topic[PROTO_TOPIC_NAME_BYTES_MAX + 1];
    int32_t index;      /* alter_isr, reassign */
    int32_t partitions; /* create */
    int16_t replication_factor;
    struct cluster_topic_config cfg;
    int64_t mod_revision; /* alter_isr */
    int32_t leader_epoch;
    uint8_t count; /* ids: the ISR or the target replicas */
    int32_t ids[CLUSTER_REPLICAS_MAX];
    /* user_put, user_delete ("" mechanism: all of the user's) */
    char user[CLUSTER_USER_BYTES];
    char mechanism[CLUSTER_MECHANISM_BYTES];
    char value[CLUSTER_USER_VALUE_BYTES];
    /* acl_put, acl_delete: malloc'd, freed once done has run */
    struct cluster_acl_rec *acls;
    uint32_t acl_count;
    cluster_done_fn *done;
    void *arg;
};

struct cluster_session {
    struct cluster_session_config cfg;
    struct etcd_config ecfg; /* endpoints point into cfg */
    struct etcd *etcd;
    struct etcd_watch *watch; /* NULL until the prefix is read */
    cluster_view_fn *view_fn;
    void *view_arg;
    char prefix[CLUSTER_NAME_BYTES + 2]; /* "/<cluster_name>/" */
    pthread_t thread;

    pthread_mutex_t mu; /* guards stop and the queue */
    bool stop;
    struct req queue[CLUSTER_SESSION_QUEUE_MAX];
    uint32_t queue_head, queue_count;

    /* the cluster thread's (and start's, before it runs) */
    int64_t lease;             /* 0: none, registration lost */
    int64_t incarnation;       /* wall ms at start */
    int64_t reg_revision;      /* mod_revision of brokers/<id> as this session wrote it */
    int64_t keepalive_ok_ms;   /* when the last answered keep-alive was sent */
    int64_t keepalive_next_ms; /* when the next is due (also: the next registration try) */
    bool fenced;
    bool fenced_told; /* fenced as the last view delivered said */
    struct mirror mirror;
    bool need_read; /* the mirror must be read whole (start, compaction, a lost watch) */
    bool have_read; /* it was, once: views may be built */
    bool changed;   /* the mirror changed since the last view */

    bool controller; /* this session holds the controller key */
    int64_t ctl_epoch;
    char ctl_value[64];
    size_t ctl_value_len;
    int64_t ctl_revision;     /* mod_revision of the controller key it wrote */
    int64_t pending_revision; /* a write of its own the mirror has not seen yet */
    bool campaign_lost;       /* lost a campaign: not again until the mirror changes */
    bool ctl_retry;           /* a pass met an etcd error: run one again */
    int64_t prefer_next_ms;
};

/* ---- small helpers ---- */

static uint32_t keepalive_ms(const struct cluster_session *s)
{
    return CLUSTER_KEEPALIVE_S(s->cfg.lease_ttl_s) * 1000u;
}

__attribute__((format(printf, 3, 4))) static void key_of(const struct cluster_session *s,
                                                         char key[KEY_BYTES], const char *fmt, ...)
{
    size_t n = strlen(s->prefix);
    memcpy(key, s->prefix, n);
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(key + n, KEY_BYTES - n, fmt, ap);
    va_end(ap);
    /* prefix (65) + "partitions/" + a topic name (249) + "/" + an index */
    ASSERT(len > 0 && (size_t)len < KEY_BYTES - n);
}

static void sleep_ms(uint32_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static bool stopping(struct cluster_session *s)
{
    pthread_mutex_lock(&s->mu);
    bool stop = s->stop;
    pthread_mutex_unlock(&s->mu);
    return stop;
}

/* ---- configuration (the rest is in session_config.c) ---- */

static bool config_ok(const struct cluster_session_config *c)
{
    size_t host = strnlen(c->host, CLUSTER_HOST_BYTES);
    return c->broker_id >= 0 && c->broker_id <= CLUSTER_BROKER_ID_MAX && host > 0 &&
           host < CLUSTER_HOST_BYTES && c->port != 0 && c->endpoint_count >= 1 &&
           c->endpoint_count <= ETCD_ENDPOINTS_MAX && cluster_name_ok(c->cluster_name) &&
           c->lease_ttl_s >= CLUSTER_LEASE_TTL_S_MIN && c->lease_ttl_s <= CLUSTER_LEASE_TTL_S_MAX &&
           c->preferred_leader_check_ms >= CLUSTER_PREFERRED_LEADER_CHECK_MS_MIN;
}

/* ---- lease and registration ---- */

/* Grants a lease and creates brokers/<id> under it, unless a live broker
 * holds the id (-EEXIST; *same_address when it registered this broker's
 * own host and port, which only its previous life can have done: this one
 * holds the port). */
static int session_register(struct cluster_session *s, bool *same_address)
{
    int64_t sent = clock_mono_ms(), lease = 0;
    int rc = etcd_lease_grant(s->etcd, s->cfg.lease_ttl_s, &lease);
    if (rc != 0) {
        return rc;
    }
    struct cluster_broker me = {.id = s->cfg.broker_id,
                                .port = s->cfg.port,
                                .incarnation = s->incarnation,
                                .kafka_port = s->cfg.kafka_port};
    memcpy(me.host, s->cfg.host, strlen(s->cfg.host) + 1);
    memcpy(me.kafka_host, s->cfg.kafka_host,
           strnlen(s->cfg.kafka_host, CLUSTER_HOST_BYTES - 1) + 1);
    char key[KEY_BYTES], value[RECORD_BYTES];
    key_of(s, key, "brokers/%d", (int)me.id);
    int len = cluster_broker_encode(&me, value, sizeof(value));
    ASSERT(len > 0); /* a host of 255 bytes and four numbers fit */
    const struct etcd_cmp cmp = {
        .key = key, .target = ETCD_CMP_CREATE_REVISION, .result = ETCD_CMP_EQUAL, .number = 0};
    const struct etcd_op put = {
        .kind = ETCD_OP_PUT, .key = key, .value = value, .value_len = (size_t)len, .lease = lease};
    const struct etcd_op get = {.kind = ETCD_OP_GET, .key = key};
    const struct etcd_txn txn = {.cmps = &cmp,
                                 .cmp_count = 1,
                                 .success = &put,
                                 .success_count = 1,
                                 .failure = &get,
                                 .failure_count = 1};
    bool ok = false;
    int64_t revision = 0;
    struct etcd_kvs held = {0};
    rc = etcd_txn(s->etcd, &txn, &ok, &revision, &held);
    if (rc == 0 && !ok) {
        struct cluster_broker other = {0};
        bool known = held.count == 1 &&
                     cluster_broker_decode(held.kvs[0].value, held.kvs[0].value_len, &other) == 0;
        *same_address = known && other.port == me.port && strcmp(other.host, me.host) == 0;
        if (!*same_address) {
            log_error("cluster: broker id %d is held by a live broker (%s:%u); not registering",
                      (int)me.id, known ? other.host : "?", known ? (unsigned)other.port : 0u);
        }
        rc = -EEXIST;
    }
    etcd_kvs_free(&held);
    if (rc != 0) {
        if (etcd_lease_revoke(s->etcd, lease) != 0) {
            log_warn("cluster: could not revoke lease %lld; it expires by itself",
                     (long long)lease);
        }
        return rc;
    }
    s->lease = lease;
    s->reg_revision = revision;
    s->keepalive_ok_ms = sent;
    s->keepalive_next_ms = sent + keepalive_ms(s);
    log_info("cluster: broker %d registered as %s:%u (lease %lld)", (int)me.id, me.host,
             (unsigned)me.port, (long long)lease);
    return 0;
}

/* Keeps the lease alive, fences the broker when it cannot be sure of it
 * and registers again once it is lost. */
static void lease_tend(struct cluster_session *s)
{
    int64_t now = clock_mono_ms();
    if (s->lease != 0 && now >= s->keepalive_next_ms) {
        int rc = etcd_lease_keepalive(s->etcd, s->lease, NULL);
        if (rc == 0) {
            s->keepalive_ok_ms = now;
            s->keepalive_next_ms = now + keepalive_ms(s);
        } else if (rc == -NG_ENOTFOUND) {
            log_warn("cluster: lease %lld expired; broker %d is fenced until it registers again",
                     (long long)s->lease, (int)s->cfg.broker_id);
            s->lease = 0;
            s->keepalive_next_ms = now;
        } else {
            s->keepalive_next_ms = now + SESSION_RETRY_MS;
        }
    }
    /* Registers again only once the broker has been told it is fenced:
     * its partitions may have moved while it had no lease. */
    if (s->lease == 0 && s->fenced_told && clock_mono_ms() >= s->keepalive_next_ms) {
        bool same = false;
        int rc = session_register(s, &same);
        if (rc != 0) {
            s->keepalive_next_ms = clock_mono_ms() + SESSION_RETRY_MS;
        }
    }
}

/* Fenced once the lease might have run out at etcd before the broker hears
 * of it (a keep-alive's slack before its TTL), and after a new
 * registration until the mirror has caught up with it: the views before it
 * may name this broker leader of partitions that moved. */
static void fence_update(struct cluster_session *s)
{
    uint32_t safe_ms = s->cfg.lease_ttl_s * 1000u - keepalive_ms(s);
    bool fenced = s->lease == 0 || clock_mono_ms() - s->keepalive_ok_ms > (int64_t)safe_ms ||
                  s->mirror.revision < s->reg_revision;
    if (fenced && !s->fenced) {
        log_warn("cluster: broker %d fenced: its registration is not known to hold",
                 (int)s->cfg.broker_id);
    }
    s->fenced = fenced;
    /* A fenced controller makes no decision (publish() asks !fenced), but
     * it is controller again once unfenced under the same lease: its key
     * lives as long as that lease. */
    if (s->lease == 0) {
        s->controller = false;
    }
}

/* ---- the mirror: read whole, then watched ---- */

static const char *strip_prefix(const struct cluster_session *s, const char *key)
{
    size_t n = strlen(s->prefix);
    return strncmp(key, s->prefix, n) == 0 ? key + n : NULL;
}

static int read_all(struct cluster_session *s)
{
    char end[KEY_BYTES];
    etcd_prefix_end(s->prefix, end);
    struct etcd_kvs kvs = {0};
    int rc = etcd_range(s->etcd, s->prefix, end, &kvs);
    if (rc != 0) {
        log_warn("cluster: reading %s failed: %s", s->prefix, err_str(rc));
        return rc;
    }
    mirror_clear(&s->mirror);
    for (size_t i = 0; i < kvs.count && rc == 0; i++) {
        const struct etcd_kv *kv = &kvs.kvs[i];
        const char *key = strip_prefix(s, kv->key);
        if (key != NULL) {
            rc = mirror_put(&s->mirror, key, kv->value, kv->value_len, kv->create_revision,
                            kv->mod_revision);
        }
    }
    s->mirror.revision = kvs.revision;
    etcd_kvs_free(&kvs);
    if (s->watch != NULL) {
        etcd_watch_close(s->watch);
        s->watch = NULL;
    }
    rc = rc ? rc : etcd_watch_open(&s->watch, &s->ecfg, s->prefix, end, s->mirror.revision + 1);
    if (rc != 0) {
        log_warn("cluster: watching %s failed: %s", s->prefix, err_str(rc));
        return rc;
    }
    s->need_read = false;
    s->have_read = true;
    s->changed = true;
    s->campaign_lost = false;
    return 0;
}

static void apply_events(struct cluster_session *s, const struct etcd_events *ev)
{
    for (size_t i = 0; i < ev->count; i++) {
        const struct etcd_kv *kv = &ev->events[i].kv;
        const char *key = strip_prefix(s, kv->key);
        if (key == NULL) {
            continue;
        }
        if (ev->events[i].kind == ETCD_EVENT_DELETE) {
            mirror_delete(&s->mirror, key, kv->mod_revision);
        } else if (mirror_put(&s->mirror, key, kv->value, kv->value_len, kv->create_revision,
                              kv->mod_revision) != 0) {
            s->need_read = true; /* out of memory: start again from a full read */
        }
        s->changed = true;
        s->campaign_lost = false;
    }
}

static void watch_wait(struct cluster_session *s, uint32_t wait_ms)
{
    if (s->watch == NULL) {
        sleep_ms(wait_ms);
        return;
    }
    struct etcd_events ev = {0};
    int rc = etcd_watch_next(s->watch, wait_ms, &ev);
    if (rc == 0) {
        apply_events(s, &ev);
    } else {
        if (rc != -NG_EOFFSET_RANGE) {
            log_warn("cluster: the watch on %s failed: %s", s->prefix, err_str(rc));
            sleep_ms(SESSION_RETRY_MS);
        }
        s->need_read = true;
    }
    etcd_events_free(&ev);
}

/* ---- the controller ---- */

/* Campaigns when there is no controller: creates the controller key under
 * the lease and bumps controller_epoch, both only if nobody did first. */
static void campaign(struct cluster_session *s)
{
    if (s->fenced || s->controller || s->campaign_lost ||
        mirror_get(&s->mirror, "controller") != NULL) {
        return;
    }
    const struct mirror_kv *e = mirror_get(&s->mirror, "controller_epoch");
    int64_t epoch = 0;
    if (e != NULL && cluster_epoch_decode(e->value, e->value_len, &epoch) != 0) {
        log_warn("cluster: controller_epoch holds a bad record; counting from its revision");
        epoch = e->mod_revision;
    }
    char ckey[KEY_BYTES], ekey[KEY_BYTES], evalue[64];
    key_of(s, ckey, "controller");
    key_of(s, ekey, "controller_epoch");
    int clen =
        cluster_controller_encode(s->cfg.broker_id, epoch + 1, s->ctl_value, sizeof(s->ctl_value));
    int elen = cluster_epoch_encode(epoch + 1, evalue, sizeof(evalue));
    ASSERT(clen > 0 && elen > 0);
    const struct etcd_cmp cmps[] = {
        {.key = ckey, .target = ETCD_CMP_CREATE_REVISION, .result = ETCD_CMP_EQUAL, .number = 0},
        {.key = ekey,
         .target = ETCD_CMP_MOD_REVISION,
         .result = ETCD_CMP_EQUAL,
         .number = e != NULL ? e->mod_revision : 0},
    };
    const struct etcd_op puts[] = {
        {.kind = ETCD_OP_PUT,
         .key = ckey,
         .value = s->ctl_value,
         .value_len = (size_t)clen,
         .lease = s->lease},
        {.kind = ETCD_OP_PUT, .key = ekey, .value = evalue, .value_len = (size_t)elen},
    };
    const struct etcd_txn txn = {.cmps = cmps, .cmp_count = 2, .success = puts, .success_count = 2};
    bool ok = false;
    int64_t revision = 0;
    int rc = etcd_txn(s->etcd, &txn, &ok, &revision, NULL);
    if (rc != 0 || !ok) {
        s->campaign_lost = true; /* try again when the mirror changes */
        return;
    }
    s->controller = true;
    s->ctl_epoch = epoch + 1;
    s->ctl_value_len = (size_t)clen;
    s->ctl_revision = revision;
    s->pending_revision = revision;
    s->prefer_next_ms = clock_mono_ms() + s->cfg.preferred_leader_check_ms;
    log_info("cluster: broker %d is the controller, epoch %lld", (int)s->cfg.broker_id,
             (long long)s->ctl_epoch);
}

/* Still the controller, as far as the mirror knows? */
static void controller_check(struct cluster_session *s)
{
    if (!s->controller || s->mirror.revision < s->ctl_revision) {
        return;
    }
    const struct mirror_kv *c = mirror_get(&s->mirror, "controller");
    if (c == NULL || c->mod_revision != s->ctl_revision) {
        log_warn("cluster: broker %d is no longer the controller (epoch %lld)",
                 (int)s->cfg.broker_id, (long long)s->ctl_epoch);
        s->controller = false;
    }
}

static void log_partition(const char *what, const char *topic, const struct cluster_partition *p)
{
    char isr[CLUSTER_REPLICAS_MAX * 12 + 1] = "";
    size_t n = 0;
    for (uint8_t i = 0; i < p->isr_count; i++) {
        n += (size_t)snprintf(isr + n, sizeof(isr) - n, "%s%d", i ? "," : "", (int)p->isr[i]);
    }
    log_info("cluster: %s %s/%d: leader %d, leader epoch %d, isr [%s]", what, topic, (int)p->index,
             (int)p->leader, (int)p->leader_epoch, isr);
}

/* Writes one decision; false when this session is no longer the
 * controller (the pass stops). */
static bool ctl_commit(struct cluster_session *s, const char *what, const char *topic,
                       struct cluster_partition *next, const struct etcd_op *extra,
                       size_t extra_count)
{
    char key[KEY_BYTES], ckey[KEY_BYTES];
    key_of(s, key, "partitions/%s/%d", topic, (int)next->index);
    key_of(s, ckey, "controller");
    const struct controller_ident me = {.key = ckey,
                                        .value = s->ctl_value,
                                        .value_len = s->ctl_value_len,
                                        .mod_revision = s->ctl_revision};
    next->controller_epoch = s->ctl_epoch;
    int64_t revision = 0;
    int rc = controller_commit(s->etcd, &me, key, next, extra, extra_count, &revision);
    if (rc == 0) {
        if (revision > s->pending_revision) {
            s->pending_revision = revision;
        }
        log_partition(what, topic, next);
        return true;
    }
    if (rc == -NG_ENOT_CONTROLLER) {
        log_warn("cluster: broker %d was replaced as controller (epoch %lld)",
                 (int)s->cfg.broker_id, (long long)s->ctl_epoch);
        s->controller = false;
        return false;
    }
    if (rc != -NG_ECONFLICT) { /* a conflict: the watch brings the state that won */
        log_warn("cluster: %s %s/%d failed: %s", what, topic, (int)next->index, err_str(rc));
        s->ctl_retry = true;
    }
    return true;
}

/* A reassignment of t/p, if one is asked for; *acted when it wrote. */
static bool ctl_reassign(struct cluster_session *s, const struct cluster_view *v,
                         const struct cluster_topic *t, const struct cluster_partition *p,
                         bool *acted)
{
    char rel[KEY_BYTES], key[KEY_BYTES];
    snprintf(rel, sizeof(rel), "reassign/%s/%d", t->name, (int)p->index);
    const struct mirror_kv *kv = mirror_get(&s->mirror, rel);
    if (kv == NULL) {
        return true;
    }
    key_of(s, key, "%s", rel);
    const struct etcd_op drop = {.kind = ETCD_OP_DELETE, .key = key};
    struct cluster_reassign r;
    struct cluster_partition next;
    enum controller_reassign_step step = CONTROLLER_REASSIGN_INVALID;
    if (cluster_reassign_decode(kv->value, kv->value_len, &r) == 0) {
        step = controller_reassign(v, p, r.replicas, r.replica_count, &next);
    }
    *acted = step != CONTROLLER_REASSIGN_WAIT;
    switch (step) {
    case CONTROLLER_REASSIGN_WAIT:
        return true;
    case CONTROLLER_REASSIGN_EXPAND:
        return ctl_commit(s, "reassignment adds replicas to", t->name, &next, NULL, 0);
    case CONTROLLER_REASSIGN_FINISH:
        return ctl_commit(s, "reassignment done for", t->name, &next, &drop, 1);
    case CONTROLLER_REASSIGN_DONE:
        next = *p;
        return ctl_commit(s, "reassignment already done for", t->name, &next, &drop, 1);
    case CONTROLLER_REASSIGN_INVALID:
        break;
    }
    log_warn("cluster: dropping reassignment %s: bad record or more than %d replicas at once", rel,
             CLUSTER_REPLICAS_MAX);
    next = *p;
    return ctl_commit(s, "reassignment dropped for", t->name, &next, &drop, 1);
}

/* Creates the partition keys of a topic whose creator stopped half-way. */
static bool ctl_complete_topics(struct cluster_session *s, const struct cluster_view *v)
{
    for (size_t i = mirror_lower_bound(&s->mirror, "topics/");
         mirror_has_prefix(&s->mirror, i, "topics/"); i++) {
        const struct mirror_kv *kv = &s->mirror.kvs[i];
        const char *name = kv->key + strlen("topics/");
        struct cluster_topic t = {0};
        if (cluster_view_topic(v, name, strlen(name)) != NULL ||
            !proto_topic_name_valid(name, strlen(name)) ||
            cluster_topic_decode(kv->value, kv->value_len, &t) != 0) {
            continue;
        }
        for (int32_t j = 0; j < t.partitions; j++) {
            char rel[KEY_BYTES];
            snprintf(rel, sizeof(rel), "partitions/%s/%d", name, (int)j);
            int32_t replicas[CLUSTER_REPLICAS_MAX];
            if (mirror_get(&s->mirror, rel) != NULL ||
                controller_place(v, j, t.replication_factor, replicas) != 0) {
                continue;
            }
            struct cluster_partition next;
            controller_new_partition(j, replicas, (uint8_t)t.replication_factor, s->ctl_epoch,
                                     &next);
            if (!ctl_commit(s, "created", name, &next, NULL, 0)) {
                return false;
            }
        }
    }
    return true;
}

/* One pass over every partition of v: elections first, then
 * reassignments, then (when due) preferred leaders. */
static void controller_pass(struct cluster_session *s, const struct cluster_view *v)
{
    int64_t now = clock_mono_ms();
    bool prefer = now >= s->prefer_next_ms;
    if (prefer) {
        s->prefer_next_ms = now + s->cfg.preferred_leader_check_ms;
    }
    s->ctl_retry = false;
    for (uint32_t i = 0; i < v->topic_count; i++) {
        const struct cluster_topic *t = &v->topics[i];
        for (int32_t j = 0; j < t->partitions; j++) {
            const struct cluster_partition *p = &t->parts[j];
            struct cluster_partition next;
            bool unclean = false, go = true;
            if (controller_elect(v, t, p, &next, &unclean)) {
                if (unclean) {
                    log_warn("cluster: UNCLEAN leader election for %s/%d: broker %d was not in "
                             "sync; records acknowledged before may be lost",
                             t->name, (int)j, (int)next.leader);
                }
                go = ctl_commit(s, "new leader for", t->name, &next, NULL, 0);
            } else {
                bool acted = false;
                go = ctl_reassign(s, v, t, p, &acted);
                if (go && !acted && prefer && controller_prefer(v, p, &next)) {
                    go = ctl_commit(s, "preferred leader back for", t->name, &next, NULL, 0);
                }
            }
            if (!go) {
                return;
            }
        }
    }
    ctl_complete_topics(s, v);
}

/* ---- requests ---- */

static int txn_simple(struct cluster_session *s, const struct etcd_cmp *cmps, size_t cmp_count,
                      const struct etcd_op *ops, size_t op_count, bool *ok, int64_t *revision)
{
    const struct etcd_txn txn = {
        .cmps = cmps, .cmp_count = cmp_count, .success = ops, .success_count = op_count};
    return etcd_txn(s->etcd, &txn, ok, revision, NULL);
}

/* Puts the partition keys [first, first+count) of a topic created at
 * topic_revision, each only if absent (the controller may have made it). */
static int create_chunk(struct cluster_session *s, const struct req *r, int64_t topic_revision,
                        const struct cluster_partition *parts, int32_t first, int32_t count)
{
    static_assert(1 + SESSION_CREATE_CHUNK <= ETCD_TXN_OPS_MAX, "a chunk's compares fit");
    char tkey[KEY_BYTES], keys[SESSION_CREATE_CHUNK][KEY_BYTES];
    char values[SESSION_CREATE_CHUNK][RECORD_BYTES];
    struct etcd_cmp cmps[1 + SESSION_CREATE_CHUNK];
    struct etcd_op ops[SESSION_CREATE_CHUNK];
    key_of(s, tkey, "topics/%s", r->topic);
    cmps[0] = (struct etcd_cmp){.key = tkey,
                                .target = ETCD_CMP_MOD_REVISION,
                                .result = ETCD_CMP_EQUAL,
                                .number = topic_revision};
    for (int32_t i = 0; i < count; i++) {
        key_of(s, keys[i], "partitions/%s/%d", r->topic, (int)(first + i));
        int len = cluster_partition_encode(&parts[first + i], values[i], RECORD_BYTES);
        ASSERT(len > 0);
        cmps[1 + i] = (struct etcd_cmp){.key = keys[i],
                                        .target = ETCD_CMP_CREATE_REVISION,
                                        .result = ETCD_CMP_EQUAL,
                                        .number = 0};
        ops[i] = (struct etcd_op){
            .kind = ETCD_OP_PUT, .key = keys[i], .value = values[i], .value_len = (size_t)len};
    }
    bool ok = false;
    int rc = txn_simple(s, cmps, 1 + (size_t)count, ops, (size_t)count, &ok, NULL);
    if (rc != 0 || ok || count == 1) {
        return rc;
    }
    /* Some exist already: one at a time, each only if still absent. */
    for (int32_t i = 0; i < count && rc == 0; i++) {
        const struct etcd_cmp one[] = {cmps[0], cmps[1 + i]};
        rc = txn_simple(s, one, 2, &ops[i], 1, &ok, NULL);
    }
    return rc;
}

static int do_create(struct cluster_session *s, const struct req *r)
{
    struct cluster_view *v = NULL;
    int rc = mirror_view(&s->mirror, &v);
    if (rc != 0) {
        return rc;
    }
    struct cluster_partition *parts = calloc((size_t)r->partitions, sizeof(*parts));
    for (int32_t i = 0; parts != NULL && rc == 0 && i < r->partitions; i++) {
        int32_t replicas[CLUSTER_REPLICAS_MAX];
        rc = controller_place(v, i, r->replication_factor, replicas);
        if (rc == 0) {
            controller_new_partition(i, replicas, (uint8_t)r->replication_factor,
                                     v->controller_epoch, &parts[i]);
        }
    }
    cluster_view_free(v);
    if (parts == NULL || rc != 0) {
        free(parts);
        return parts == NULL ? -ENOMEM : rc;
    }
    /* The topic record first, alone and only if absent: it decides whether
     * the topic exists; the partitions follow in chunks. */
    const struct cluster_topic t = {
        .partitions = r->partitions, .replication_factor = r->replication_factor, .cfg = r->cfg};
    char tkey[KEY_BYTES], tvalue[RECORD_BYTES];
    key_of(s, tkey, "topics/%s", r->topic);
    int len = cluster_topic_encode(&t, tvalue, sizeof(tvalue));
    ASSERT(len > 0); /* six numbers and a flag */
    const struct etcd_cmp absent = {
        .key = tkey, .target = ETCD_CMP_CREATE_REVISION, .result = ETCD_CMP_EQUAL, .number = 0};
    const struct etcd_op put = {
        .kind = ETCD_OP_PUT, .key = tkey, .value = tvalue, .value_len = (size_t)len};
    bool ok = false;
    int64_t revision = 0;
    rc = txn_simple(s, &absent, 1, &put, 1, &ok, &revision);
    rc = rc ? rc : ok ? 0 : -NG_ETOPIC_EXISTS;
    for (int32_t i = 0; rc == 0 && i < r->partitions; i += SESSION_CREATE_CHUNK) {
        int32_t n =
            r->partitions - i < SESSION_CREATE_CHUNK ? r->partitions - i : SESSION_CREATE_CHUNK;
        rc = create_chunk(s, r, revision, parts, i, n);
    }
    free(parts);
    if (rc == 0) {
        log_info("cluster: topic %s created: %d partitions, replication factor %d", r->topic,
                 (int)r->partitions, (int)r->replication_factor);
    }
    return rc;
}

static int do_delete(struct cluster_session *s, const struct req *r)
{
    char tkey[KEY_BYTES], pkey[KEY_BYTES], rkey[KEY_BYTES];
    key_of(s, tkey, "topics/%s", r->topic);
    key_of(s, pkey, "partitions/%s/", r->topic);
    key_of(s, rkey, "reassign/%s/", r->topic);
    const struct etcd_cmp exists = {
        .key = tkey, .target = ETCD_CMP_CREATE_REVISION, .result = ETCD_CMP_GREATER, .number = 0};
    const struct etcd_op ops[] = {
        {.kind = ETCD_OP_DELETE, .key = tkey},
        {.kind = ETCD_OP_DELETE_PREFIX, .key = pkey},
        {.kind = ETCD_OP_DELETE_PREFIX, .key = rkey},
    };
    bool ok = false;
    int rc = txn_simple(s, &exists, 1, ops, ARRAY_LEN(ops), &ok, NULL);
    if (rc == 0 && !ok) {
        return -NG_EUNKNOWN_TOPIC;
    }
    if (rc == 0) {
        log_info("cluster: topic %s deleted", r->topic);
    }
    return rc;
}

/* The partition r names, decoded from the mirror. */
static int mirror_partition(struct cluster_session *s, const struct req *r,
                            struct cluster_partition *p)
{
    char rel[KEY_BYTES];
    snprintf(rel, sizeof(rel), "partitions/%s/%d", r->topic, (int)r->index);
    const struct mirror_kv *kv = mirror_get(&s->mirror, rel);
    if (kv == NULL) {
        return -NG_EUNKNOWN_TOPIC;
    }
    *p = (struct cluster_partition){.index = r->index, .mod_revision = kv->mod_revision};
    return cluster_partition_decode(kv->value, kv->value_len, p);
}

static int do_alter_isr(struct cluster_session *s, const struct req *r)
{
    struct cluster_partition p;
    int rc = mirror_partition(s, r, &p);
    if (rc != 0) {
        return rc;
    }
    if (s->fenced) {
        return -NG_ENOT_LEADER;
    }
    if (p.mod_revision != r->mod_revision) {
        return -NG_ECONFLICT;
    }
    if (p.leader_epoch != r->leader_epoch) {
        return -NG_EFENCED_LEADER_EPOCH;
    }
    if (p.leader != s->cfg.broker_id) {
        return -NG_ENOT_LEADER;
    }
    rc = controller_isr_check(&p, s->cfg.broker_id, r->ids, r->count);
    if (rc != 0) {
        return rc;
    }
    memcpy(p.isr, r->ids, r->count * sizeof(*r->ids));
    p.isr_count = r->count;
    char key[KEY_BYTES], bkey[KEY_BYTES], value[RECORD_BYTES];
    key_of(s, key, "partitions/%s/%d", r->topic, (int)r->index);
    key_of(s, bkey, "brokers/%d", (int)s->cfg.broker_id);
    int len = cluster_partition_encode(&p, value, sizeof(value));
    ASSERT(len > 0);
    /* The key unmoved, and this broker's registration the one it made: a
     * broker whose lease ended changes nothing. */
    const struct etcd_cmp cmps[] = {
        {.key = key,
         .target = ETCD_CMP_MOD_REVISION,
         .result = ETCD_CMP_EQUAL,
         .number = r->mod_revision},
        {.key = bkey,
         .target = ETCD_CMP_MOD_REVISION,
         .result = ETCD_CMP_EQUAL,
         .number = s->reg_revision},
    };
    const struct etcd_op put = {
        .kind = ETCD_OP_PUT, .key = key, .value = value, .value_len = (size_t)len};
    const struct etcd_op get = {.kind = ETCD_OP_GET, .key = bkey};
    const struct etcd_txn txn = {.cmps = cmps,
                                 .cmp_count = 2,
                                 .success = &put,
                                 .success_count = 1,
                                 .failure = &get,
                                 .failure_count = 1};
    bool ok = false;
    struct etcd_kvs got = {0};
    rc = etcd_txn(s->etcd, &txn, &ok, NULL, &got);
    if (rc == 0 && !ok) {
        bool registered = got.count == 1 && got.kvs[0].mod_revision == s->reg_revision;
        rc = registered ? -NG_ECONFLICT : -NG_ENOT_LEADER;
    }
    etcd_kvs_free(&got);
    return rc;
}

static int do_reassign(struct cluster_session *s, const struct req *r)
{
    struct cluster_partition p;
    int rc = mirror_partition(s, r, &p);
    if (rc != 0) {
        return rc;
    }
    uint8_t added = 0;
    for (uint8_t i = 0; i < r->count; i++) {
        char rel[KEY_BYTES];
        snprintf(rel, sizeof(rel), "brokers/%d", (int)r->ids[i]);
        if (mirror_get(&s->mirror, rel) == NULL) {
            return -NG_EBADARG; /* not a live broker */
        }
        added += !cluster_partition_has_replica(&p, r->ids[i]);
    }
    if (p.replica_count + added > CLUSTER_REPLICAS_MAX) {
        return -NG_EBADARG;
    }
    struct cluster_reassign ra = {.replica_count = r->count};
    memcpy(ra.replicas, r->ids, r->count * sizeof(*r->ids));
    char key[KEY_BYTES], pkey[KEY_BYTES], value[RECORD_BYTES];
    key_of(s, key, "reassign/%s/%d", r->topic, (int)r->index);
    key_of(s, pkey, "partitions/%s/%d", r->topic, (int)r->index);
    int len = cluster_reassign_encode(&ra, value, sizeof(value));
    ASSERT(len > 0);
    const struct etcd_cmp exists = {
        .key = pkey, .target = ETCD_CMP_CREATE_REVISION, .result = ETCD_CMP_GREATER, .number = 0};
    const struct etcd_op put = {
        .kind = ETCD_OP_PUT, .key = key, .value = value, .value_len = (size_t)len};
    bool ok = false;
    rc = txn_simple(s, &exists, 1, &put, 1, &ok, NULL);
    return rc == 0 && !ok ? -NG_EUNKNOWN_TOPIC : rc;
}

static int do_user_put(struct cluster_session *s, const struct req *r)
{
    char key[KEY_BYTES];
    key_of(s, key, "users/%s/%s", r->user, r->mechanism);
    const struct etcd_op put = {
        .kind = ETCD_OP_PUT, .key = key, .value = r->value, .value_len = strlen(r->value)};
    bool ok = false;
    int rc = txn_simple(s, NULL, 0, &put, 1, &ok, NULL);
    if (rc == 0) {
        log_info("cluster: user %s: %s credential set", r->user, r->mechanism);
    }
    return rc;
}

/* Deletes users/<user>/<mechanism>, or every users/<user>/ key; what the
 * mirror does not hold is -NG_ENOTFOUND (etcd is asked when it does). */
static int do_user_delete(struct cluster_session *s, const struct req *r)
{
    char rel[KEY_BYTES], key[KEY_BYTES];
    bool all = r->mechanism[0] == '\0';
    snprintf(rel, sizeof(rel), "users/%s/%s", r->user, r->mechanism);
    bool known = all ? mirror_has_prefix(&s->mirror, mirror_lower_bound(&s->mirror, rel), rel)
                     : mirror_get(&s->mirror, rel) != NULL;
    if (!known) {
        return -NG_ENOTFOUND;
    }
    key_of(s, key, "%s", rel);
    const struct etcd_op del = {.kind = all ? ETCD_OP_DELETE_PREFIX : ETCD_OP_DELETE, .key = key};
    bool ok = false;
    int rc = txn_simple(s, NULL, 0, &del, 1, &ok, NULL);
    if (rc == 0) {
        log_info("cluster: user %s: %s deleted", r->user, all ? "every credential" : r->mechanism);
    }
    return rc;
}

/* The ACL records of r in transactions of ETCD_TXN_OPS_MAX: puts, or
 * deletes of the keys the mirror holds. */
static int do_acls(struct cluster_session *s, const struct req *r)
{
    bool put = r->kind == REQ_ACL_PUT;
    char(*keys)[KEY_BYTES] = malloc(ETCD_TXN_OPS_MAX * sizeof(*keys));
    if (keys == NULL) {
        return -NG_ECLUSTER_UNAVAILABLE; /* as any failure to reach etcd: try again */
    }
    struct etcd_op ops[ETCD_TXN_OPS_MAX];
    int rc = 0;
    uint32_t done = 0;
    for (uint32_t i = 0; i < r->acl_count && rc == 0;) {
        size_t n = 0;
        for (; i < r->acl_count && n < ETCD_TXN_OPS_MAX; i++) {
            const struct cluster_acl_rec *a = &r->acls[i];
            char rel[KEY_BYTES];
            snprintf(rel, sizeof(rel), "acls/%s", a->key);
            if (!put && mirror_get(&s->mirror, rel) == NULL) {
                continue;
            }
            key_of(s, keys[n], "%s", rel);
            ops[n] = put ? (struct etcd_op){.kind = ETCD_OP_PUT,
                                            .key = keys[n],
                                            .value = (const char *)a->value,
                                            .value_len = a->value_len}
                         : (struct etcd_op){.kind = ETCD_OP_DELETE, .key = keys[n]};
            n++;
        }
        bool ok = false;
        rc = n > 0 ? txn_simple(s, NULL, 0, ops, n, &ok, NULL) : 0;
        done += rc == 0 ? (uint32_t)n : 0;
    }
    free(keys);
    if (rc == 0) {
        log_info("cluster: %u ACLs %s", done, put ? "put" : "deleted");
    }
    return rc;
}

static int serve(struct cluster_session *s, const struct req *r)
{
    switch (r->kind) {
    case REQ_CREATE:
        return do_create(s, r);
    case REQ_DELETE:
        return do_delete(s, r);
    case REQ_ALTER_ISR:
        return do_alter_isr(s, r);
    case REQ_REASSIGN:
        return do_reassign(s, r);
    case REQ_USER_PUT:
        return do_user_put(s, r);
    case REQ_USER_DELETE:
        return do_user_delete(s, r);
    case REQ_ACL_PUT:
    case REQ_ACL_DELETE:
        return do_acls(s, r);
    }
    UNREACHABLE();
}

/* Takes the oldest queued request into *r; false when there is none. */
static bool dequeue(struct cluster_session *s, struct req *r)
{
    pthread_mutex_lock(&s->mu);
    bool any = s->queue_count > 0;
    if (any) {
        *r = s->queue[s->queue_head];
        s->queue_head = (s->queue_head + 1) % CLUSTER_SESSION_QUEUE_MAX;
        s->queue_count--;
    }
    pthread_mutex_unlock(&s->mu);
    return any;
}

static void serve_queue(struct cluster_session *s)
{
    struct req r;
    while (dequeue(s, &r)) {
        r.done(r.arg, serve(s, &r));
        free(r.acls);
    }
}

/* ---- views ---- */

/* Builds a view when the mirror or the fencing changed, or the controller
 * has work; runs the controller's pass on it, then hands it over. */
static void publish(struct cluster_session *s)
{
    fence_update(s);
    bool tell = s->changed || s->fenced != s->fenced_told;
    bool ctl = s->controller && !s->fenced && s->mirror.revision >= s->pending_revision &&
               (s->changed || s->ctl_retry || clock_mono_ms() >= s->prefer_next_ms);
    if ((!tell && !ctl) || !s->have_read) {
        return;
    }
    struct cluster_view *v = NULL;
    if (mirror_view(&s->mirror, &v) != 0) {
        log_warn("cluster: no memory for a view; trying again");
        return;
    }
    v->fenced = s->fenced;
    if (ctl) {
        controller_pass(s, v);
    }
    if (!tell) {
        cluster_view_free(v);
        return;
    }
    s->changed = false;
    s->fenced_told = v->fenced;
    s->view_fn(s->view_arg, v);
}

/* ---- the thread ---- */

static void *session_main(void *arg)
{
    struct cluster_session *s = arg;
    while (!stopping(s)) {
        lease_tend(s);
        if (s->need_read && read_all(s) != 0) {
            publish(s); /* a fencing is told even while etcd is away */
            sleep_ms(SESSION_RETRY_MS);
            continue;
        }
        controller_check(s);
        serve_queue(s);
        campaign(s);
        publish(s);
        int64_t until_keepalive = s->keepalive_next_ms - clock_mono_ms();
        uint32_t wait = until_keepalive < 1                 ? 1
                        : until_keepalive < SESSION_POLL_MS ? (uint32_t)until_keepalive
                                                            : SESSION_POLL_MS;
        watch_wait(s, wait);
    }
    struct req r;
    while (dequeue(s, &r)) {
        r.done(r.arg, -NG_ECLOSED);
        free(r.acls);
    }
    return NULL;
}

/* Registers, waiting out the lease of this broker's previous life (a
 * restart after a crash, within the TTL) but not another broker's, and
 * etcd while it is unavailable, up to SESSION_START_UNAVAILABLE_MS. A new
 * etcd leader gives every lease a whole TTL again, and its election may
 * end after this broker last saw etcd unavailable, so a previous life's
 * lease is waited for two TTLs past the start, and two TTLs past the last
 * time etcd was unavailable (a lease nobody keeps alive ends within that;
 * only a second broker with this one's id and address could outlast it). */
static int register_at_start(struct cluster_session *s)
{
    int64_t start = clock_mono_ms();
    int64_t ttl_ms = s->cfg.lease_ttl_s * 1000 + SESSION_RETRY_MS;
    int64_t life_end = start + 2 * ttl_ms;
    int64_t etcd_end = start + SESSION_START_UNAVAILABLE_MS;
    for (;;) {
        bool same = false;
        int rc = session_register(s, &same);
        int64_t now = clock_mono_ms();
        if (rc == -NG_ECLUSTER_UNAVAILABLE && now + 2 * ttl_ms > life_end) {
            life_end = now + 2 * ttl_ms;
        }
        if (rc == -EEXIST && same && now < life_end) {
            log_info("cluster: broker %d: waiting for the lease of its previous life to end",
                     (int)s->cfg.broker_id);
        } else if (rc == -NG_ECLUSTER_UNAVAILABLE && now < etcd_end) {
            log_warn("cluster: broker %d: etcd is unavailable; trying again for %" PRId64 " s",
                     (int)s->cfg.broker_id, (etcd_end - now + 999) / 1000);
        } else {
            return rc;
        }
        sleep_ms(SESSION_RETRY_MS);
    }
}

int cluster_session_start(struct cluster_session **out, const struct cluster_session_config *cfg,
                          cluster_view_fn *view_fn, void *arg)
{
    ASSERT(out != NULL && cfg != NULL && view_fn != NULL);
    if (!config_ok(cfg)) {
        return -NG_EBADARG;
    }
    struct cluster_session *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return -ENOMEM;
    }
    s->cfg = *cfg;
    for (uint32_t i = 0; i < cfg->endpoint_count; i++) {
        s->ecfg.endpoints[i] = s->cfg.endpoints[i];
    }
    s->ecfg.endpoint_count = cfg->endpoint_count;
    /* Half a keep-alive interval per call, so a keep-alive retried after a
     * failure still lands before the broker must fence itself. */
    s->ecfg.timeout_ms = keepalive_ms(s) / 2;
    snprintf(s->prefix, sizeof(s->prefix), "/%s/", cfg->cluster_name);
    s->view_fn = view_fn;
    s->view_arg = arg;
    s->incarnation = clock_wall_ms();
    s->need_read = true;
    mirror_init(&s->mirror);
    int rc = etcd_open(&s->etcd, &s->ecfg);
    if (rc != 0) {
        free(s);
        return rc;
    }
    rc = register_at_start(s);
    if (rc == 0) {
        rc = -pthread_mutex_init(&s->mu, NULL);
        if (rc == 0) {
            rc = -pthread_create(&s->thread, NULL, session_main, s);
            if (rc != 0) {
                pthread_mutex_destroy(&s->mu);
            }
        }
        if (rc != 0 && etcd_lease_revoke(s->etcd, s->lease) != 0) {
            log_warn("cluster: could not revoke lease %lld", (long long)s->lease);
        }
    }
    if (rc != 0) {
        etcd_close(s->etcd);
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

static void session_end(struct cluster_session *s, bool revoke)
{
    if (s == NULL) {
        return;
    }
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_mutex_unlock(&s->mu);
    int rc = pthread_join(s->thread, NULL);
    ASSERT(rc == 0);
    if (revoke && s->lease != 0 && etcd_lease_revoke(s->etcd, s->lease) != 0) {
        log_warn("cluster: could not revoke lease %lld; it expires by itself", (long long)s->lease);
    }
    if (s->watch != NULL) {
        etcd_watch_close(s->watch);
    }
    etcd_close(s->etcd);
    mirror_clear(&s->mirror);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

void cluster_session_stop(struct cluster_session *s) { session_end(s, true); }

void cluster_session_vanish(struct cluster_session *s) { session_end(s, false); }

/* ---- queueing ---- */

static int enqueue(struct cluster_session *s, const struct req *r)
{
    ASSERT(r->done != NULL);
    pthread_mutex_lock(&s->mu);
    int rc = s->stop ? -NG_ECLOSED : s->queue_count == CLUSTER_SESSION_QUEUE_MAX ? -NG_EBUSY : 0;
    if (rc == 0) {
        uint32_t tail = (s->queue_head + s->queue_count) % CLUSTER_SESSION_QUEUE_MAX;
        s->queue[tail] = *r;
        s->queue_count++;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* Fills r's topic from name when it is a valid topic name. */
static int req_topic(struct req *r, const char *name)
{
    size_t n = strnlen(name, PROTO_TOPIC_NAME_BYTES_MAX + 1);
    if (!proto_topic_name_valid(name, n)) {
        return -NG_EBADARG;
    }
    memcpy(r->topic, name, n + 1);
    return 0;
}

int cluster_session_create_topic(struct cluster_session *s, const char *name, int32_t partitions,
                                 int16_t replication_factor, const struct cluster_topic_config *cfg,
                                 cluster_done_fn *done, void *arg)
{
    struct req r = {.kind = REQ_CREATE,
                    .partitions = partitions,
                    .replication_factor = replication_factor,
                    .cfg = *cfg,
                    .done = done,
                    .arg = arg};
    const struct cluster_topic t = {
        .partitions = partitions, .replication_factor = replication_factor, .cfg = *cfg};
    if (req_topic(&r, name) != 0 || !cluster_topic_ok(&t)) {
        return -NG_EBADARG;
    }
    return enqueue(s, &r);
}

int cluster_session_delete_topic(struct cluster_session *s, const char *name, cluster_done_fn *done,
                                 void *arg)
{
    struct req r = {.kind = REQ_DELETE, .done = done, .arg = arg};
    int rc = req_topic(&r, name);
    return rc ? rc : enqueue(s, &r);
}

/* A request naming a partition and 1..CLUSTER_REPLICAS_MAX broker ids. */
static int req_partition(struct req *r, const char *topic, int32_t index, const int32_t *ids,
                         uint8_t count)
{
    if (req_topic(r, topic) != 0 || index < 0 || index >= PROTO_PARTITIONS_MAX || count < 1 ||
        count > CLUSTER_REPLICAS_MAX) {
        return -NG_EBADARG;
    }
    for (uint8_t i = 0; i < count; i++) {
        if (ids[i] < 0 || ids[i] > CLUSTER_BROKER_ID_MAX) {
            return -NG_EBADARG;
        }
        for (uint8_t j = 0; j < i; j++) {
            if (ids[i] == ids[j]) {
                return -NG_EBADARG;
            }
        }
    }
    r->index = index;
    r->count = count;
    memcpy(r->ids, ids, count * sizeof(*ids));
    return 0;
}

int cluster_session_alter_isr(struct cluster_session *s, const char *topic, int32_t index,
                              int64_t mod_revision, int32_t leader_epoch, const int32_t *isr,
                              uint8_t count, cluster_done_fn *done, void *arg)
{
    struct req r = {.kind = REQ_ALTER_ISR,
                    .mod_revision = mod_revision,
                    .leader_epoch = leader_epoch,
                    .done = done,
                    .arg = arg};
    int rc = req_partition(&r, topic, index, isr, count);
    return rc ? rc : enqueue(s, &r);
}

int cluster_session_reassign(struct cluster_session *s, const char *topic, int32_t index,
                             const int32_t *replicas, uint8_t count, cluster_done_fn *done,
                             void *arg)
{
    struct req r = {.kind = REQ_REASSIGN, .done = done, .arg = arg};
    int rc = req_partition(&r, topic, index, replicas, count);
    return rc ? rc : enqueue(s, &r);
}

/* Fills r's user and mechanism: names without '/' that fit. */
static int req_user(struct req *r, const char *user, const char *mechanism)
{
    size_t ul = strnlen(user, sizeof(r->user));
    size_t ml = strnlen(mechanism, sizeof(r->mechanism));
    if (ul == 0 || ul == sizeof(r->user) || ml == sizeof(r->mechanism) ||
        memchr(user, '/', ul) != NULL || memchr(mechanism, '/', ml) != NULL) {
        return -NG_EBADARG;
    }
    memcpy(r->user, user, ul + 1);
    memcpy(r->mechanism, mechanism, ml + 1);
    return 0;
}

int cluster_session_put_user(struct cluster_session *s, const char *user, const char *mechanism,
                             const char *value, cluster_done_fn *done, void *arg)
{
    struct req r = {.kind = REQ_USER_PUT, .done = done, .arg = arg};
    size_t vl = strnlen(value, sizeof(r.value));
    if (mechanism[0] == '\0' || vl == 0 || vl == sizeof(r.value) ||
        req_user(&r, user, mechanism) != 0) {
        return -NG_EBADARG;
    }
    memcpy(r.value, value, vl + 1);
    return enqueue(s, &r);
}

int cluster_session_delete_user(struct cluster_session *s, const char *user, const char *mechanism,
                                cluster_done_fn *done, void *arg)
{
    struct req r = {.kind = REQ_USER_DELETE, .done = done, .arg = arg};
    int rc = req_user(&r, user, mechanism != NULL ? mechanism : "");
    return rc ? rc : enqueue(s, &r);
}

/* Queues an ACL request over recs[0..n), checked. */
static int acls_enqueue(struct cluster_session *s, enum req_kind kind, struct cluster_acl_rec *recs,
                        uint32_t n, cluster_done_fn *done, void *arg)
{
    if (n == 0 || n > CLUSTER_ACLS_MAX) {
        return -NG_EBADARG;
    }
    for (uint32_t i = 0; i < n; i++) {
        size_t kl = strnlen(recs[i].key, sizeof(recs[i].key));
        if (kl == 0 || kl == sizeof(recs[i].key) || memchr(recs[i].key, '/', kl) != NULL ||
            (kind == REQ_ACL_PUT &&
             (recs[i].value_len == 0 || recs[i].value_len > sizeof(recs[i].value)))) {
            return -NG_EBADARG;
        }
    }
    struct req r = {.kind = kind, .acls = recs, .acl_count = n, .done = done, .arg = arg};
    return enqueue(s, &r);
}

int cluster_session_put_acls(struct cluster_session *s, struct cluster_acl_rec *recs, uint32_t n,
                             cluster_done_fn *done, void *arg)
{
    return acls_enqueue(s, REQ_ACL_PUT, recs, n, done, arg);
}

int cluster_session_delete_acls(struct cluster_session *s, struct cluster_acl_rec *recs, uint32_t n,
                                cluster_done_fn *done, void *arg)
{
    return acls_enqueue(s, REQ_ACL_DELETE, recs, n, done, arg);
}
