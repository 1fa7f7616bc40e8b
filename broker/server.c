#include "broker/server.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "base/clock.h"
#include "base/log.h"
#include "broker/acl_serve.h"
#include "broker/admin_http.h"
#include "broker/conn_auth.h"
#include "broker/fetcher.h"
#include "broker/forward.h"
#include "broker/kafka_serve.h"
#include "broker/sasl_serve.h"
#include "broker/names.h"

/* How often deleted topics are checked for idle partitions, and parked
 * fetches for a stop in progress. */
#define HOUSEKEEPING_MS 50

/* ---- the topic table, sorted by name ---- */

static const char *topic_name(const void *table, uint32_t i, size_t *len)
{
    const struct server_topic *t = ((struct server_topic *const *)table)[i];
    *len = t->name_len;
    return t->name;
}

/* Index of the first topic whose name is >= name; *found: it is name. */
static uint32_t topic_lower_bound(const struct server *s, const char *name, size_t len, bool *found)
{
    return names_lower_bound(s->topics, s->topic_count, topic_name, name, len, found);
}

struct server_topic *server_topic_find(struct server *s, struct proto_str name)
{
    bool found = false;
    uint32_t i = name.len > 0 ? topic_lower_bound(s, name.ptr, (size_t)name.len, &found) : 0;
    return found ? s->topics[i] : NULL;
}

static int topic_table_insert(struct server *s, struct server_topic *t)
{
    if (s->topic_count == s->topic_cap) {
        uint32_t cap = s->topic_cap ? s->topic_cap * 2 : 64;
        struct server_topic **grown = realloc(s->topics, cap * sizeof(*grown));
        if (grown == NULL) {
            return -ENOMEM;
        }
        s->topics = grown;
        s->topic_cap = cap;
    }
    bool found;
    uint32_t i = topic_lower_bound(s, t->name, t->name_len, &found);
    ASSERT(!found);
    memmove(s->topics + i + 1, s->topics + i, (s->topic_count - i) * sizeof(*s->topics));
    s->topics[i] = t;
    s->topic_count++;
    return 0;
}

static void topic_table_remove(struct server *s, struct server_topic *t)
{
    bool found;
    uint32_t i = topic_lower_bound(s, t->name, t->name_len, &found);
    ASSERT(found && s->topics[i] == t);
    memmove(s->topics + i, s->topics + i + 1, (s->topic_count - i - 1) * sizeof(*s->topics));
    s->topic_count--;
}

/* ---- partitions ---- */

static void bpart_watch(void *arg)
{
    struct bpart *bp = arg;
    park_wake(&bp->waiters, PARK_DATA);
}

/* The log's durable offset moved: a leader's high watermark may move, and
 * followers waiting at its end have batches to copy. */
static void bpart_durable_watch(void *arg)
{
    struct bpart *bp = arg;
    if (bp->rep.role != REPLICA_LEADER) {
        return; /* a single broker's parked consumers need not be walked */
    }
    replica_leader_update(bp);
    park_wake(&bp->waiters, PARK_REPLICA);
}

static int note_producer(void *arg, const struct batch_header *h)
{
    producers_record(arg, h, true);
    return 0;
}

int bpart_load_producers(struct bpart *bp)
{
    producers_clear(&bp->producers);
    uint32_t n = part_segment_count(&bp->log);
    struct part_segment seg;
    part_segment(&bp->log, n > 1 ? n - 2 : 0, &seg);
    int rc = part_for_each_batch_to(&bp->log, seg.offset_base, part_offset_written(&bp->log),
                                    note_producer, &bp->producers);
    return rc == -NG_ECORRUPT ? 0 : rc; /* damage it could not mark; logged */
}

/* A clustered broker's replica is not the only copy: a damaged range found
 * at open (after a crash, a torn write that later writes survived; or bad
 * bytes) would stay a hole that this replica, leading, could never serve.
 * The log is cut where the damage starts, and fetched again from the
 * leader (a restarted broker follows before it may lead). What is cut was
 * never acknowledged as durable by this replica when a crash tore it:
 * the high watermark is below every in-sync replica's durable offset. */
static int bpart_cut_damage(struct bpart *bp)
{
    int64_t from;
    if (!part_damage_first(&bp->log, &from)) {
        return 0;
    }
    int64_t end = part_offset_written(&bp->log);
    int rc = part_truncate(&bp->log, from);
    if (rc != 0) {
        log_error("topic %s partition %d: cutting its log at its damage (offset %" PRId64 "): %s",
                  bp->topic->name, bp->index, from, err_str(rc));
        return rc;
    }
    log_warn("topic %s partition %d: damaged from offset %" PRId64 ": log cut there (it ended at "
             "%" PRId64 "), to be fetched again from the leader",
             bp->topic->name, bp->index, part_offset_next(&bp->log), end);
    return 0;
}

/* Opens partition i of t and rebuilds its producers' recent batches. */
static int bpart_open(struct server *s, struct server_topic *t, int32_t i)
{
    struct bpart *bp = &t->parts[i];
    *bp = (struct bpart){.topic = t, .server = s, .index = i};
    const struct catalog_topic *ct = catalog_find(&s->catalog, t->name, t->name_len);
    ASSERT(ct != NULL);
    char dir[4352];
    int rc = catalog_partition_dir(&s->catalog, ct, i, dir, sizeof(dir));
    struct part_config base;
    struct part_config pc;
    broker_config_part(&s->cfg, &base);
    catalog_part_config(&t->cfg, &base, &pc);
    rc = rc == 0 ? part_open(&bp->log, dir, &pc, &s->env) : rc;
    if (rc != 0) {
        log_error("topic %s partition %d: %s", t->name, i, err_str(rc));
        return rc;
    }
    bp->open = true;
    rc = broker_config_clustered(&s->cfg) ? bpart_cut_damage(bp) : 0;
    if (rc != 0) {
        return rc;
    }
    rc = producers_init(&bp->producers, s->cfg.producer_ids_max);
    rc = rc == 0 ? bpart_load_producers(bp) : rc;
    if (rc == 0) {
        replica_init(bp, broker_config_clustered(&s->cfg));
        part_set_watch(&bp->log, bpart_watch, bp);
        part_set_durable_watch(&bp->log, bpart_durable_watch, bp);
    }
    return rc;
}

/* Answers the requests parked on a partition, then closes its log; its
 * appends must be done. */
static int bpart_close(struct bpart *bp)
{
    if (!bp->open) {
        return 0;
    }
    replica_fini(bp);
    park_abandon(&bp->waiters);
    int rc = part_drain(&bp->log);
    int rc2 = part_close(&bp->log);
    producers_fini(&bp->producers);
    bp->open = false;
    return rc != 0 ? rc : rc2;
}

static void topic_free(struct server_topic *t)
{
    free(t->parts);
    free(t);
}

/* Builds the running topic for a catalog entry and opens its partitions. */
static int topic_open(struct server *s, const struct catalog_topic *ct, struct server_topic **out)
{
    struct server_topic *t = calloc(1, sizeof(*t));
    struct bpart *parts = t ? calloc((size_t)ct->cfg.partitions, sizeof(*parts)) : NULL;
    if (parts == NULL) {
        free(t);
        return -ENOMEM;
    }
    t->name_len = strlen(ct->name);
    memcpy(t->name, ct->name, t->name_len + 1);
    t->cfg = ct->cfg;
    t->parts = parts;
    int rc = 0;
    for (int32_t i = 0; i < t->cfg.partitions && rc == 0; i++) {
        rc = bpart_open(s, t, i);
    }
    if (rc == 0) {
        rc = topic_table_insert(s, t);
    }
    if (rc != 0) {
        for (int32_t i = 0; i < t->cfg.partitions; i++) {
            (void)bpart_close(&t->parts[i]);
        }
        topic_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

/* ---- creating and deleting topics ---- */

int server_topic_create(struct server *s, struct proto_str name,
                        const struct topic_config *requested, struct server_topic **out)
{
    if (name.len <= 0 || !proto_topic_name_valid(name.ptr, (size_t)name.len)) {
        return -NG_EBADNAME;
    }
    if (server_topic_find(s, name) != NULL) {
        return -NG_ETOPIC_EXISTS;
    }
    if (s->topic_count >= PROTO_TOPICS_MAX) {
        return -NG_ETOOBIG;
    }
    struct topic_config defaults = {
        .partitions = s->cfg.default_partitions,
        .retention_ms = s->cfg.retention_ms,
        .retention_bytes = s->cfg.retention_bytes,
        .segment_bytes = s->cfg.segment_bytes,
        .segment_ms = s->cfg.segment_ms,
        .batch_bytes_max = s->cfg.batch_bytes_max,
    };
    struct topic_config cfg;
    int rc = catalog_resolve_config(requested, &defaults, &cfg);
    if (rc == 0 && cfg.batch_bytes_max > s->cfg.batch_bytes_max) {
        rc = -NG_EBADARG; /* the worker's scratch is sized for the broker's maximum */
    }
    rc = rc == 0 ? catalog_create(&s->catalog, name.ptr, (size_t)name.len, &cfg) : rc;
    if (rc != 0) {
        return rc;
    }
    const struct catalog_topic *ct = catalog_find(&s->catalog, name.ptr, (size_t)name.len);
    ASSERT(ct != NULL);
    rc = topic_open(s, ct, out);
    if (rc != 0 && catalog_delete(&s->catalog, name.ptr, (size_t)name.len) != 0) {
        log_error("topic %.*s: could not remove after a failed create", (int)name.len, name.ptr);
    }
    return rc;
}

int server_topic_delete(struct server *s, struct proto_str name)
{
    struct server_topic *t = server_topic_find(s, name);
    if (t == NULL) {
        return -NG_EUNKNOWN_TOPIC;
    }
    /* Renaming the directory away is the durable step; the open files stay
     * usable until the partitions close. */
    int rc = catalog_delete(&s->catalog, t->name, t->name_len);
    if (rc != 0) {
        return rc;
    }
    topic_table_remove(s, t);
    for (int32_t i = 0; i < t->cfg.partitions; i++) {
        part_set_watch(&t->parts[i].log, NULL, NULL);
        part_set_durable_watch(&t->parts[i].log, NULL, NULL);
        park_abandon(&t->parts[i].waiters);
        replica_fini(&t->parts[i]);
    }
    share_serve_topic_deleted(s, t->name, t->name_len);
    t->next_doomed = s->doomed;
    s->doomed = t;
    log_info("deleted topic %s", t->name);
    return 0;
}

static bool topic_idle(const struct server_topic *t)
{
    for (int32_t i = 0; i < t->cfg.partitions; i++) {
        if (!part_idle(&t->parts[i].log)) {
            return false;
        }
    }
    return true;
}

/* Closes deleted topics whose partitions have gone idle. */
static void reap_doomed(struct server *s)
{
    struct server_topic **link = &s->doomed;
    while (*link != NULL) {
        struct server_topic *t = *link;
        if (!topic_idle(t)) {
            link = &t->next_doomed;
            continue;
        }
        *link = t->next_doomed;
        for (int32_t i = 0; i < t->cfg.partitions; i++) {
            (void)bpart_close(&t->parts[i]); /* its files are gone already */
        }
        topic_free(t);
    }
}

/* Scrubs partitions round robin for one housekeeping tick's share of
 * scrub_bytes_per_sec: a partition that reaches its end passes the rest of
 * the budget on, so a tick never reads one partition twice. */
static void scrub(struct server *s)
{
    int64_t budget = s->cfg.scrub_bytes_per_sec * HOUSEKEEPING_MS / 1000;
    for (uint32_t visited = 0; budget > 0 && s->topic_count > 0 && visited < s->topic_count * 2;) {
        if (s->scrub_topic >= s->topic_count) {
            s->scrub_topic = 0;
        }
        struct server_topic *t = s->topics[s->scrub_topic];
        if (s->scrub_part >= t->cfg.partitions) {
            s->scrub_part = 0;
            s->scrub_topic++;
            visited++;
            continue;
        }
        size_t asked = (size_t)budget;
        size_t done = 0;
        int rc = part_scrub(&t->parts[s->scrub_part].log, s->scrub_buf, s->scrub_buf_bytes, asked,
                            &done);
        if (rc != 0 && rc != -NG_ECORRUPT) {
            log_warn("topic %s partition %d: scrub: %s", t->name, s->scrub_part, err_str(rc));
        }
        budget -= (int64_t)done;
        if (done < asked) { /* it reached its end: the next partition's turn */
            s->scrub_part++;
        }
    }
}

/* The leaders' in-sync sets, against the followers' last catch-up. */
static void check_isrs(struct server *s)
{
    int64_t now_ms = (int64_t)loop_now_ms(&s->loop);
    for (uint32_t i = 0; i < s->topic_count; i++) {
        for (int32_t p = 0; p < s->topics[i]->cfg.partitions; p++) {
            replica_check_isr(s, &s->topics[i]->parts[p], now_ms, s->cfg.replica_lag_ms);
        }
    }
}

/* (Re)builds the context followers fetch from their leaders with, in a
 * cluster whose nagare listeners speak TLS (this broker's config says for
 * all): the leader's certificate checked against tls_ca_file (the system's
 * CAs without one), this broker's own shown to a leader asking for one.
 * Fetchers already running keep theirs. Returns 0 or -NG_EBADARG. */
static int replica_tls_set(struct server *s)
{
    if (!broker_config_clustered(&s->cfg) || !s->cfg.listen_tls) {
        return 0;
    }
    struct tls_client_cfg tc = {.ca_file = s->cfg.tls_ca_file,
                                .cert_file = s->cfg.tls_cert_file,
                                .key_file = s->cfg.tls_key_file};
    SSL_CTX *ctx = NULL;
    char err[512];
    int rc = tls_client_ctx(&tc, &ctx, err, sizeof(err));
    if (rc != 0) {
        log_error("TLS to the leaders: %s", err);
        return rc;
    }
    SSL_CTX_free(s->replica_tls);
    s->replica_tls = ctx;
    return 0;
}

/* (Re)builds the TLS context from the configured files and gives it to the
 * TLS listeners (nagare's is listener 0, Kafka's KAFKA_LISTENER). On a
 * failure the listeners keep what they had. Returns 0 or -NG_EBADARG. */
static int tls_listeners_set(struct server *s, bool reload)
{
    if (!broker_config_tls(&s->cfg)) {
        return 0;
    }
    struct tls_server_cfg tc;
    broker_config_tls_server(&s->cfg, &tc);
    SSL_CTX *ctx = NULL;
    char err[512];
    int rc = tls_server_ctx(&tc, &ctx, err, sizeof(err));
    if (rc != 0) {
        log_error("TLS: %s%s", err, reload ? "; the listeners keep their certificate" : "");
        return rc;
    }
    if (reload) {
        log_info("TLS: certificate reloaded from %s; connections open keep theirs",
                 s->cfg.tls_cert_file);
    }
    if (s->cfg.listen_tls) {
        loop_listener_tls(&s->loop, 0, ctx);
    }
    if (s->cfg.kafka_listen_tls && broker_config_kafka(&s->cfg)) {
        loop_listener_tls(&s->loop, KAFKA_LISTENER, ctx);
    }
    SSL_CTX_free(ctx); /* the listeners hold their references */
    return replica_tls_set(s);
}

/* The admin listener's settings (broker/admin_http.h). */
static struct admin_http_cfg admin_cfg(const struct server *s)
{
    bool tls = s->cfg.admin_listen_tls;
    return (struct admin_http_cfg){
        .host = s->cfg.admin_listen_host,
        .port = s->cfg.admin_listen_port,
        .auth_required = s->cfg.authentication == BROKER_AUTHENTICATION_REQUIRED,
        .tls_cert_file = tls ? s->cfg.tls_cert_file : NULL,
        .tls_key_file = tls ? s->cfg.tls_key_file : NULL,
    };
}

/* SIGHUP for an HTTPS admin listener: its certificate and key again,
 * checked first with OpenSSL as the other listeners' are, so a pair that
 * does not load (or match) leaves it serving the old one. */
static void admin_tls_reload(struct server *s)
{
    if (s->admin == NULL || !s->cfg.admin_listen_tls) {
        return;
    }
    struct tls_server_cfg tc = {.cert_file = s->cfg.tls_cert_file,
                                .key_file = s->cfg.tls_key_file,
                                .client_auth = TLS_CLIENT_AUTH_NONE};
    SSL_CTX *ctx = NULL;
    char err[512];
    if (tls_server_ctx(&tc, &ctx, err, sizeof(err)) != 0) {
        log_error("admin listener TLS: %s; it keeps its certificate", err);
        return;
    }
    SSL_CTX_free(ctx);
    struct admin_http_cfg ac = admin_cfg(s);
    if (admin_http_reload(s, &ac, &s->admin) == 0) {
        log_info("admin listener TLS: certificate reloaded from %s (on the same port; its "
                 "open connections were closed)",
                 s->cfg.tls_cert_file);
    }
}

static void housekeeping(struct loop_timer *timer, void *arg)
{
    struct server *s = arg;
    reap_doomed(s);
    if (s->view != NULL && !s->loop.stopping) {
        check_isrs(s);
    }
    if (s->cfg.scrub_bytes_per_sec > 0 && !s->loop.stopping) {
        scrub(s);
    }
    if (s->tls_reload) {
        s->tls_reload = 0;
        (void)tls_listeners_set(s, true);
        admin_tls_reload(s);
    }
    groups_expire(s);
    kafka_groups_tick(s);
    share_serve_tick(s);
    if (s->loop.stopping) {
        /* Parked fetches and share fetches answer now rather than hold the
         * drain up. */
        for (uint32_t i = 0; i < s->topic_count; i++) {
            for (int32_t p = 0; p < s->topics[i]->cfg.partitions; p++) {
                park_abandon(&s->topics[i]->parts[p].waiters);
                replica_fini(&s->topics[i]->parts[p]);
            }
        }
    }
    loop_timer_arm(&s->loop, timer, HOUSEKEEPING_MS);
}

static void retention(struct loop_timer *timer, void *arg)
{
    struct server *s = arg;
    for (uint32_t i = 0; i < s->topic_count; i++) {
        struct server_topic *t = s->topics[i];
        for (int32_t p = 0; p < t->cfg.partitions; p++) {
            uint32_t deleted;
            int rc = part_retain(&t->parts[p].log, &deleted);
            if (rc != 0) {
                log_error("topic %s partition %d: retention: %s", t->name, p, err_str(rc));
            }
        }
    }
    loop_timer_arm(&s->loop, timer, s->cfg.retention_check_ms);
}

/* ---- a cluster's view ---- */

static bool holds_a_replica(const struct cluster_topic *ct, int32_t self)
{
    for (int32_t i = 0; i < ct->partitions; i++) {
        if (cluster_partition_has_replica(&ct->parts[i], self)) {
            return true;
        }
    }
    return false;
}

/* Creates locally a topic of the view this broker holds replicas of. */
static void view_topic_create(struct server *s, const struct cluster_topic *ct)
{
    struct topic_config cfg = {.partitions = ct->partitions,
                               .retention_ms = ct->cfg.retention_ms,
                               .retention_bytes = ct->cfg.retention_bytes,
                               .segment_bytes = ct->cfg.segment_bytes,
                               .segment_ms = ct->cfg.segment_ms,
                               .batch_bytes_max = ct->cfg.batch_bytes_max};
    struct server_topic *t;
    int rc = server_topic_create(s, proto_str_make(ct->name), &cfg, &t);
    if (rc != 0) {
        log_error("topic %s from the cluster: %s", ct->name, err_str(rc));
    }
}

/* Topics the last view had and this one has not were deleted in the
 * cluster: they go here too, and the share groups' state of them with
 * them, whether or not this broker held a replica. (A topic no view ever
 * named stays: a single broker's data directory that joins a cluster keeps
 * its topics.) */
static void delete_gone_topics(struct server *s, const struct cluster_view *view)
{
    for (uint32_t i = 0; s->view != NULL && i < s->view->topic_count; i++) {
        struct proto_str name = proto_str_make(s->view->topics[i].name);
        if (cluster_view_topic(view, name.ptr, name.len) != NULL) {
            continue;
        }
        if (server_topic_find(s, name) == NULL) {
            share_serve_topic_deleted(s, name.ptr, name.len);
            continue;
        }
        int rc = server_topic_delete(s, name);
        if (rc != 0) {
            log_error("topic %s, deleted in the cluster: %s", name.ptr, err_str(rc));
        }
    }
}

void server_apply_view(struct server *s, struct cluster_view *view)
{
    ASSERT(broker_config_clustered(&s->cfg)); /* a single broker takes no view */
    if (s->loop.stopping) {
        cluster_view_free(view); /* the partitions are closing */
        return;
    }
    cluster_view_check(view);
    delete_gone_topics(s, view);
    sasl_serve_apply_view(s, s->view, view);
    acl_serve_apply_view(s, s->view, view);
    cluster_view_free(s->view);
    s->view = view;
    for (uint32_t i = 0; i < view->topic_count; i++) {
        const struct cluster_topic *ct = &view->topics[i];
        if (holds_a_replica(ct, s->broker_id) &&
            server_topic_find(s, proto_str_make(ct->name)) == NULL) {
            view_topic_create(s, ct);
        }
    }
    for (uint32_t i = 0; i < s->topic_count; i++) {
        struct server_topic *t = s->topics[i];
        const struct cluster_topic *ct = cluster_view_topic(view, t->name, t->name_len);
        if (ct != NULL && ct->partitions != t->cfg.partitions) {
            log_error("topic %s: %d partitions here, %d in the cluster; serving none", t->name,
                      t->cfg.partitions, ct->partitions);
            ct = NULL;
        }
        for (int32_t p = 0; p < t->cfg.partitions; p++) {
            replica_apply(s, &t->parts[p], ct, ct != NULL ? &ct->parts[p] : NULL, s->broker_id,
                          view->fenced);
        }
    }
    groups_coordinate(s);
    share_serve_coordinate(s);
}

struct view_msg {
    struct loop_msg m;
    struct server *s;
    struct cluster_view *view;
};

static void on_view_msg(struct loop_msg *m, void *arg)
{
    (void)arg;
    struct view_msg *vm = container_of(m, struct view_msg, m);
    server_apply_view(vm->s, vm->view);
    free(vm);
}

int server_post_view(struct server *s, struct cluster_view *view)
{
    struct view_msg *vm = malloc(sizeof(*vm));
    if (vm == NULL) {
        cluster_view_free(view);
        return -ENOMEM;
    }
    *vm = (struct view_msg){.m = {.fn = on_view_msg}, .s = s, .view = view};
    loop_post(&s->loop, &vm->m);
    return 0;
}

/* ---- the cluster session (cluster/session.h) ---- */

/* On the cluster thread: the loop applies the view. */
static void session_view(void *arg, struct cluster_view *view)
{
    struct server *s = arg;
    if (server_post_view(s, view) != 0) {
        log_error("cluster: a view was lost: out of memory");
    }
}

/* A leader's ISR change on its way to etcd and back. */
struct isr_change {
    struct loop_msg m;
    struct server *s;
    char topic[PROTO_TOPIC_NAME_BYTES_MAX + 1];
    int32_t index;
    int32_t leader_epoch;
    uint8_t count;
    int32_t isr[CLUSTER_REPLICAS_MAX];
    int rc;
};

/* On the loop: etcd took the new ISR (the high watermark may use it from
 * now on, KIP-497), or refused it (the next view, or the next check,
 * decides again). */
static void isr_change_applied(struct loop_msg *m, void *arg)
{
    (void)arg;
    struct isr_change *c = container_of(m, struct isr_change, m);
    struct server_topic *t = server_topic_find(c->s, proto_str_make(c->topic));
    struct bpart *bp = t != NULL && c->index < t->cfg.partitions ? &t->parts[c->index] : NULL;
    if (bp != NULL && bp->rep.role == REPLICA_LEADER && bp->rep.leader_epoch == c->leader_epoch) {
        bp->rep.isr_changing = false;
        if (c->rc == 0) {
            bp->rep.isr_count = c->count;
            memcpy(bp->rep.isr, c->isr, c->count * sizeof(c->isr[0]));
            log_info("topic %s partition %d: ISR now has %u replicas", c->topic, c->index,
                     c->count);
            replica_leader_update(bp);
        } else if (c->rc != -NG_ECONFLICT) {
            log_warn("topic %s partition %d: ISR change: %s", c->topic, c->index, err_str(c->rc));
        }
    }
    free(c);
}

/* On the cluster thread. */
static void isr_change_done(void *arg, int rc)
{
    struct isr_change *c = arg;
    c->rc = rc;
    loop_post(&c->s->loop, &c->m);
}

static int session_alter_isr(struct server *s, struct bpart *bp, const int32_t *isr, uint8_t count)
{
    struct isr_change *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return -ENOMEM;
    }
    *c = (struct isr_change){.m = {.fn = isr_change_applied},
                             .s = s,
                             .index = bp->index,
                             .leader_epoch = bp->rep.leader_epoch,
                             .count = count};
    memcpy(c->topic, bp->topic->name, bp->topic->name_len + 1);
    memcpy(c->isr, isr, count * sizeof(isr[0]));
    int rc = cluster_session_alter_isr(s->session, c->topic, c->index, bp->rep.mod_revision,
                                       c->leader_epoch, c->isr, count, isr_change_done, c);
    if (rc != 0) {
        free(c);
    }
    return rc;
}

/* Joins the cluster when the config says so (after the loop listens: the
 * session advertises the bound port). */
static int start_session(struct server *s)
{
    if (!broker_config_clustered(&s->cfg) || s->cfg.etcd_endpoints[0] == '\0') {
        return 0;
    }
    struct cluster_session_config cc;
    broker_config_cluster(&s->cfg, s->port, s->kafka_port, &cc);
    int rc = cluster_session_start(&s->session, &cc, session_view, s);
    if (rc != 0) {
        log_error("cluster: broker %d could not join: %s", s->broker_id, err_str(rc));
        return rc;
    }
    s->alter_isr = session_alter_isr;
    log_info("cluster: broker %d joined as %s:%u", s->broker_id, cc.host, cc.port);
    return 0;
}

/* ---- answers ---- */

int server_resp_open(struct loop_req *req, size_t frame_cap, struct wr *w)
{
    uint8_t *buf;
    int rc = loop_resp_buf(req, frame_cap, &buf);
    if (rc == 0) {
        *w = wr_make(buf, frame_cap);
    }
    /* The loop's answer memory is spent (clients that do not read hold it):
     * a condition to retry, not a failure of the request. */
    return rc == -ENOMEM ? -NG_EBUSY : rc;
}

void server_resp_send(struct loop_req *req, struct wr *w)
{
    ASSERT(w->err == 0);
    loop_req_respond_frame(req, w->pos);
}

int server_wire_err(int rc) { return rc == -ENOSPC || rc == -EDQUOT ? -NG_EDISK_FULL : rc; }

void server_resp_error(struct loop_req *req, uint32_t correlation_id, int err)
{
    loop_req_set_tag(req, (uint16_t)(loop_req_tag(req) | METRICS_TAG_ERROR));
    if (err > -NG_ERR_FIRST) { /* the broker's own failure, not the request's */
        log_warn("connection %" PRIu64 ": request %u failed: %s", loop_req_conn_id(req),
                 correlation_id, err_str(err));
    }
    struct wr w;
    /* An error answer is tiny: within the loop's reserve, never refused. */
    int rc = server_resp_open(req, 64, &w);
    ASSERT(rc == 0);
    rc = proto_resp_error_encode(&w, correlation_id, err);
    ASSERT(rc == 0);
    server_resp_send(req, &w);
}

bool server_resp_begin(struct loop_req *req, uint32_t correlation_id, size_t frame_cap,
                       struct wr *w)
{
    int rc = server_resp_open(req, frame_cap, w);
    if (rc != 0) {
        server_resp_error(req, correlation_id, rc);
        return false;
    }
    return true;
}

void server_resp_end(struct loop_req *req, struct proto_enc *e, struct wr *w,
                     uint32_t correlation_id)
{
    int rc = proto_enc_end(e);
    if (rc != 0) {
        log_warn("%s answer: %s", proto_api_name(e->api_key), err_str(rc));
        server_resp_error(req, correlation_id, rc);
        return;
    }
    server_resp_send(req, w);
}

/* ---- requests ---- */

typedef void (*handler_fn)(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                           struct rd *body);

static const handler_fn handlers[PROTO_API_COUNT] = {
    [PROTO_API_API_VERSIONS] = handle_api_versions,
    [PROTO_API_METADATA] = handle_metadata,
    [PROTO_API_CREATE_TOPICS] = handle_create_topics,
    [PROTO_API_DELETE_TOPICS] = handle_delete_topics,
    [PROTO_API_PRODUCE] = handle_produce,
    [PROTO_API_FETCH] = handle_fetch,
    [PROTO_API_LIST_OFFSETS] = handle_list_offsets,
    [PROTO_API_INIT_PRODUCER_ID] = handle_init_producer_id,
    [PROTO_API_JOIN_GROUP] = handle_join_group,
    [PROTO_API_HEARTBEAT] = handle_heartbeat,
    [PROTO_API_LEAVE_GROUP] = handle_leave_group,
    [PROTO_API_OFFSET_COMMIT] = handle_offset_commit,
    [PROTO_API_OFFSET_FETCH] = handle_offset_fetch,
    [PROTO_API_LIST_GROUPS] = handle_list_groups,
    [PROTO_API_DESCRIBE_GROUP] = handle_describe_group,
    [PROTO_API_DELETE_GROUP] = handle_delete_group,
    [PROTO_API_RESET_OFFSETS] = handle_reset_offsets,
    [PROTO_API_SHARE_FETCH] = handle_share_fetch,
    [PROTO_API_SHARE_ACK] = handle_share_ack,
    [PROTO_API_DLQ_REDRIVE] = handle_dlq_redrive,
    [PROTO_API_REPLICA_FETCH] = handle_replica_fetch,
    [PROTO_API_OFFSET_FOR_LEADER_EPOCH] = handle_offset_for_leader_epoch,
    [PROTO_API_REASSIGN_PARTITIONS] = handle_reassign_partitions,
    [PROTO_API_CREATE_ACLS] = handle_create_acls,
    [PROTO_API_DESCRIBE_ACLS] = handle_describe_acls,
    [PROTO_API_DELETE_ACLS] = handle_delete_acls,
    [PROTO_API_SASL_HANDSHAKE] = handle_sasl_handshake,
    [PROTO_API_SASL_AUTHENTICATE] = handle_sasl_authenticate,
    [PROTO_API_ALTER_USER] = handle_alter_user,
    [PROTO_API_DESCRIBE_USERS] = handle_describe_users,
};

/* What each request needs of its principal (docs/security.md): checked
 * before its handler runs (acl_serve_check). */
#define NAMES(...)                          \
    {                                       \
        .kind = ACL_RULE_NAMES, __VA_ARGS__ \
    }
#define OP(x) PROTO_ACL_OP_##x
static const struct acl_rule rules[PROTO_API_COUNT] = {
    [PROTO_API_API_VERSIONS] = {.kind = ACL_RULE_OPEN},
    /* topics the asker may not describe are left out, or answered
     * NG_EUNAUTHORIZED when named (handle_metadata) */
    [PROTO_API_METADATA] = {.kind = ACL_RULE_HANDLER, .topic_op = OP(DESCRIBE)},
    [PROTO_API_CREATE_TOPICS] =
        NAMES(.cluster_op = OP(CREATE), .topic_op = OP(CREATE), .flags = ACL_RULE_OR_CLUSTER),
    [PROTO_API_DELETE_TOPICS] = NAMES(.topic_op = OP(DELETE)),
    /* cluster_action: a broker writing at a leader for a request it
     * authorized itself (broker/forward.h; docs/security.md) */
    [PROTO_API_PRODUCE] = NAMES(.cluster_op = OP(CLUSTER_ACTION), .topic_op = OP(WRITE),
                                .flags = ACL_RULE_OR_CLUSTER),
    [PROTO_API_FETCH] = NAMES(.topic_op = OP(READ)),
    [PROTO_API_LIST_OFFSETS] = NAMES(.topic_op = OP(DESCRIBE)),
    [PROTO_API_INIT_PRODUCER_ID] = NAMES(.cluster_op = OP(IDEMPOTENT_WRITE), .topic_op = OP(WRITE),
                                         .flags = ACL_RULE_ANY_TOPIC),
    [PROTO_API_JOIN_GROUP] = NAMES(.group_op = OP(READ), .topic_op = OP(DESCRIBE)),
    [PROTO_API_HEARTBEAT] = NAMES(.group_op = OP(READ)),
    [PROTO_API_LEAVE_GROUP] = NAMES(.group_op = OP(READ)),
    [PROTO_API_OFFSET_COMMIT] = NAMES(.group_op = OP(READ), .topic_op = OP(READ)),
    [PROTO_API_OFFSET_FETCH] = NAMES(.group_op = OP(DESCRIBE), .topic_op = OP(DESCRIBE)),
    [PROTO_API_LIST_GROUPS] = NAMES(.cluster_op = OP(DESCRIBE)),
    [PROTO_API_DESCRIBE_GROUP] = NAMES(.group_op = OP(DESCRIBE)),
    [PROTO_API_DELETE_GROUP] = NAMES(.group_op = OP(DELETE)),
    [PROTO_API_RESET_OFFSETS] = NAMES(.group_op = OP(READ), .topic_op = OP(READ)),
    [PROTO_API_SHARE_FETCH] = NAMES(.group_op = OP(READ), .topic_op = OP(READ)),
    [PROTO_API_SHARE_ACK] = NAMES(.group_op = OP(READ), .topic_op = OP(READ)),
    /* the dead-letter topic named: read from, and its records written back */
    [PROTO_API_DLQ_REDRIVE] = NAMES(.topic_op = OP(READ), .topic_op2 = OP(WRITE)),
    /* between brokers (docs/security.md: the brokers' principal) */
    [PROTO_API_REPLICA_FETCH] = NAMES(.cluster_op = OP(CLUSTER_ACTION)),
    [PROTO_API_OFFSET_FOR_LEADER_EPOCH] = NAMES(.cluster_op = OP(CLUSTER_ACTION)),
    [PROTO_API_REASSIGN_PARTITIONS] = NAMES(.cluster_op = OP(ALTER)),
    /* logging in is open to all (the authentication gate is before this);
     * users are the cluster's to change and describe */
    [PROTO_API_SASL_HANDSHAKE] = {.kind = ACL_RULE_OPEN},
    [PROTO_API_SASL_AUTHENTICATE] = {.kind = ACL_RULE_OPEN},
    [PROTO_API_ALTER_USER] = NAMES(.cluster_op = OP(ALTER)),
    [PROTO_API_DESCRIBE_USERS] = NAMES(.cluster_op = OP(DESCRIBE)),
    [PROTO_API_CREATE_ACLS] = NAMES(.cluster_op = OP(ALTER)),
    [PROTO_API_DESCRIBE_ACLS] = NAMES(.cluster_op = OP(DESCRIBE)),
    [PROTO_API_DELETE_ACLS] = NAMES(.cluster_op = OP(ALTER)),
};
#undef NAMES
#undef OP

bool server_api_served(uint16_t api_key)
{
    return api_key < PROTO_API_COUNT && handlers[api_key] != NULL;
}

const struct acl_rule *server_api_rule(uint16_t api_key)
{
    ASSERT(api_key < PROTO_API_COUNT);
    return &rules[api_key];
}

static void on_request(void *arg, struct loop_req *req)
{
    struct server *s = arg;
    conn_auth_tls(req);
    if (loop_req_listener(req) == KAFKA_LISTENER) {
        kafka_serve_request(s, req);
        return;
    }
    size_t len;
    const uint8_t *frame = loop_req_frame(req, &len);
    struct rd body = rd_make(frame, len);
    struct proto_req_header h;
    int rc = proto_req_header_decode(&body, &h);
    if (rc != 0 && len < PROTO_REQ_HEADER_BYTES_MIN) {
        log_debug("connection %" PRIu64 ": request too short; closing", loop_req_conn_id(req));
        loop_req_fail(req); /* no correlation id to answer with */
        return;
    }
    if (rc == 0 || rc == -NG_EBADVERSION) {
        if (h.api_key < PROTO_API_COUNT) {
            loop_req_set_tag(req, metrics_tag_nagare(h.api_key));
        }
    }
    if ((rc == 0 || rc == -NG_EBADVERSION) && !server_api_served(h.api_key)) {
        rc = -NG_EUNKNOWN_API; /* known to the codec, not served here */
    }
    /* who the client is, before what it may do */
    if (rc == 0 && !sasl_serve_admit(s, req, false, h.api_key, h.correlation_id)) {
        return;
    }
    if (rc == 0) {
        rc = acl_serve_check(s, req, &rules[h.api_key], &h, &body);
    }
    if (rc == 0 && groups_refuse(s, h.api_key)) {
        rc = -NG_ENOT_COORDINATOR;
    }
    if (rc != 0) {
        server_resp_error(req, h.correlation_id, rc);
        return;
    }
    handlers[h.api_key](s, req, &h, &body);
}

/* ---- lifecycle ---- */

/* Creates the data directory if needed and takes its lock, so two brokers
 * never share one. */
static int lock_data_dir(struct server *s)
{
    if (mkdir(s->cfg.data_dir, 0755) != 0 && errno != EEXIST) {
        int rc = -errno;
        log_error("data directory %s: %s", s->cfg.data_dir, err_str(rc));
        return rc;
    }
    char path[sizeof(s->cfg.data_dir) + 8];
    snprintf(path, sizeof(path), "%s/.lock", s->cfg.data_dir);
    s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (s->lock_fd < 0) {
        int rc = -errno;
        log_error("data directory %s: %s", s->cfg.data_dir, err_str(rc));
        return rc;
    }
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        int rc = -errno;
        log_error("data directory %s: %s", s->cfg.data_dir,
                  rc == -EWOULDBLOCK ? "in use by another nagared" : err_str(rc));
        return rc;
    }
    return 0;
}

/* Worker resources: ring, compression contexts, scratch sized for the
 * largest batch any topic allows and for the offsets store's log. */
static int worker_resources(struct server *s)
{
    uint32_t batch_max = (uint32_t)s->cfg.batch_bytes_max;
    for (uint32_t i = 0; i < catalog_count(&s->catalog); i++) {
        uint32_t b = (uint32_t)catalog_at(&s->catalog, i)->cfg.batch_bytes_max;
        batch_max = b > batch_max ? b : batch_max;
    }
    s->cfg.batch_bytes_max = (int32_t)batch_max;
    s->scratch_bytes = PART_SCRATCH_BYTES(batch_max);
    if (s->scratch_bytes < OFFSETS_SCRATCH_BYTES) {
        s->scratch_bytes = OFFSETS_SCRATCH_BYTES;
    }
    s->scratch = malloc(s->scratch_bytes);
    s->scrub_buf_bytes = batch_max;
    s->scrub_buf = malloc(s->scrub_buf_bytes);
    if (s->scratch == NULL || s->scrub_buf == NULL) {
        return -ENOMEM;
    }
    int rc = batch_zctx_init(&s->zctx, batch_max, 1);
    if (rc != 0) {
        return rc;
    }
    s->env = (struct part_env){.ring = &s->ring,
                               .scratch = s->scratch,
                               .scratch_bytes = s->scratch_bytes,
                               .zctx = &s->zctx,
                               .now_ms = clock_wall_ms};
    return 0;
}

static int open_topics(struct server *s)
{
    for (uint32_t i = 0; i < catalog_count(&s->catalog); i++) {
        struct server_topic *t;
        int rc = topic_open(s, catalog_at(&s->catalog, i), &t);
        if (rc != 0) {
            return rc;
        }
    }
    log_info("opened %u topics from %s", s->topic_count, s->cfg.data_dir);
    return 0;
}

static void on_done(void *arg, uint16_t tag, uint64_t handler_ns, bool failed)
{
    struct server *s = arg;
    metrics_request_done(&s->metrics, tag, handler_ns, failed);
}

static void on_close(void *arg, uint64_t conn_id, void *ctx, int reason)
{
    (void)arg;
    (void)conn_id;
    (void)reason;
    conn_auth_release(ctx);
}

static int start_loop(struct server *s)
{
    struct loop_cfg lc;
    loop_cfg_default(&lc);
    lc.frame_bytes_max = s->cfg.frame_bytes_max;
    lc.conn_max = s->cfg.conn_max;
    lc.conn_inflight_max = s->cfg.conn_inflight_max;
    lc.mem_bytes_max = (uint64_t)s->cfg.mem_bytes_max;
    lc.partial_bytes_max = (uint64_t)s->cfg.partial_bytes_max;
    lc.partial_timeout_ms = s->cfg.partial_timeout_ms;
    lc.tls_handshake_timeout_ms = s->cfg.tls_handshake_timeout_ms;
    lc.on_request = on_request;
    lc.on_close = on_close;
    lc.on_done = on_done;
    lc.arg = s;
    int rc = loop_init(&s->loop, &s->ring, &lc);
    if (rc != 0) {
        log_error("event loop: %s", err_str(rc));
        return rc;
    }
    s->loop_ready = true;
    rc = loop_listen(&s->loop, s->cfg.listen_host, s->cfg.listen_port, &s->port);
    if (rc != 0) {
        log_error("listen on %s:%u: %s", s->cfg.listen_host, s->cfg.listen_port, err_str(rc));
        return rc;
    }
    if (broker_config_kafka(&s->cfg)) {
        rc = loop_listen(&s->loop, s->cfg.kafka_listen_host, s->cfg.kafka_listen_port,
                         &s->kafka_port);
        if (rc != 0) {
            log_error("Kafka listener on %s:%u: %s (kafka_listen = off turns it off)",
                      s->cfg.kafka_listen_host, s->cfg.kafka_listen_port, err_str(rc));
            return rc;
        }
        log_info("Kafka clients served on %s:%u%s", s->cfg.kafka_listen_host, s->kafka_port,
                 s->cfg.kafka_listen_tls ? " over TLS" : "");
    }
    rc = tls_listeners_set(s, false);
    if (rc != 0) {
        return rc;
    }
    if (broker_config_tls(&s->cfg)) {
        char why[192];
        (void)tls_ktls_probe(why, sizeof(why));
        log_info("TLS via OpenSSL, copy path: %s; client certificates %s", why,
                 tls_client_auth_names[s->cfg.tls_client_auth]);
    }
    if (broker_config_admin(&s->cfg)) {
        struct admin_http_cfg ac = admin_cfg(s);
        bool tls = ac.tls_cert_file != NULL;
        rc = admin_http_start(s, &ac, &s->admin_port, &s->admin);
        if (rc != 0) {
            log_error("HTTP admin listener on %s:%u: %s (admin_listen = off turns it off)",
                      s->cfg.admin_listen_host, s->cfg.admin_listen_port, err_str(rc));
            return rc;
        }
        log_info("HTTP admin (metrics, health) served on %s:%u%s%s", s->cfg.admin_listen_host,
                 s->admin_port, tls ? " over TLS" : "",
                 ac.auth_required ? ", logins required but for /healthz and /readyz" : "");
    }
    loop_timer_init(&s->retention_timer, retention, s);
    loop_timer_arm(&s->loop, &s->retention_timer, s->cfg.retention_check_ms);
    loop_timer_init(&s->reap_timer, housekeeping, s);
    loop_timer_arm(&s->loop, &s->reap_timer, HOUSEKEEPING_MS);
    log_info("nagared listening on %s:%u%s, data in %s", s->cfg.listen_host, s->port,
             s->cfg.listen_tls ? " over TLS" : "", s->cfg.data_dir);
    return 0;
}

int server_init(struct server *s, const struct broker_config *cfg)
{
    memset(s, 0, sizeof(*s));
    s->cfg = *cfg;
    s->broker_id = broker_config_clustered(cfg) ? cfg->broker_id : 0;
    s->lock_fd = -1;
    s->producer_ids.dirfd = -1;
    s->acls.dirfd = -1;
    int rc = lock_data_dir(s);
    if (rc == 0) {
        rc = catalog_open(&s->catalog, s->cfg.data_dir);
        s->catalog_ready = rc == 0;
        if (rc != 0) {
            log_error("topic catalog in %s: %s", s->cfg.data_dir, err_str(rc));
        }
    }
    rc = rc == 0 ? acl_serve_open(s) : rc;
    if (rc == 0) {
        rc = producer_ids_open(&s->producer_ids, s->cfg.data_dir);
        if (rc != 0) {
            log_error("%s/producer-ids: %s", s->cfg.data_dir, err_str(rc));
        }
    }
    if (rc == 0) {
        rc = ring_init(&s->ring, 4096);
        s->ring_ready = rc == 0;
        if (rc != 0) {
            log_error("io_uring: %s", err_str(rc));
        }
    }
    rc = rc == 0 ? sasl_serve_open(s) : rc;
    rc = rc == 0 ? worker_resources(s) : rc;
    /* What opens now may upgrade format-1 segments: shown on a terminal
     * as one running total, erased before the listening line. */
    progress_start(&s->upgrade_progress, STDERR_FILENO, false, "upgrading to batch format 2",
                   "segments", 0);
    s->env.upgrade_progress = &s->upgrade_progress;
    rc = rc == 0 ? open_topics(s) : rc;
    rc = rc == 0 ? groups_open(s) : rc;
    rc = rc == 0 ? share_serve_open(s) : rc;
    rc = rc == 0 && broker_config_kafka(&s->cfg) ? kafka_serve_open(s) : rc;
    rc = rc == 0 ? kafka_groups_open(s) : rc;
    progress_clear(&s->upgrade_progress);
    s->env.upgrade_progress = NULL; /* later opens (a new topic) have nothing to upgrade */
    rc = rc == 0 ? start_loop(s) : rc;
    rc = rc == 0 ? start_session(s) : rc;
    if (rc != 0) {
        int rc_fini = server_fini(s);
        (void)rc_fini; /* the first error is the one to report */
    }
    return rc;
}

int server_run(struct server *s) { return loop_run(&s->loop); }

void server_stop_async(struct server *s) { loop_stop_async(&s->loop); }

void server_tls_reload_async(struct server *s) { s->tls_reload = 1; }

void server_crash_async(struct server *s)
{
    s->crashed = 1;
    loop_stop_async(&s->loop);
}

int server_fini(struct server *s)
{
    int rc = 0;
    admin_http_stop(s->admin); /* first: it reads what the rest closes */
    s->admin = NULL;
    /* No view comes after this; requests queued to it answer (-NG_ECLOSED)
     * through the mailbox, which loop_fini() runs. */
    if (s->crashed) {
        cluster_session_vanish(s->session);
    } else {
        cluster_session_stop(s->session);
    }
    s->session = NULL;
    s->alter_isr = NULL;
    fetchers_stop(s);   /* before the partitions they append to close */
    forwarders_stop(s); /* their redrives end before the offsets store detaches */
    SSL_CTX_free(s->replica_tls);
    s->replica_tls = NULL;
    offsets_detach(&s->offsets); /* a coordinator's store: before __offsets/0 closes */
    for (uint32_t i = 0; i < s->topic_count; i++) {
        struct server_topic *t = s->topics[i];
        for (int32_t p = 0; p < t->cfg.partitions; p++) {
            int rc2 = bpart_close(&t->parts[p]);
            rc = rc != 0 ? rc : rc2;
        }
        topic_free(t);
    }
    s->topic_count = 0;
    while (s->doomed != NULL) {
        struct server_topic *t = s->doomed;
        s->doomed = t->next_doomed;
        for (int32_t p = 0; p < t->cfg.partitions; p++) {
            (void)bpart_close(&t->parts[p]); /* drains; its files are gone already */
        }
        topic_free(t);
    }
    free(s->topics);
    cluster_view_free(s->view);
    s->view = NULL;
    /* Offset writes in flight answer their requests: before the loop goes. */
    kafka_groups_close(s); /* its held answers go before the loop does */
    int rc_groups = groups_close(s);
    rc = rc != 0 ? rc : rc_groups;
    int rc_queue = share_serve_close(s);
    rc = rc != 0 ? rc : rc_queue;
    if (s->loop_ready) {
        (void)loop_timer_cancel(&s->loop, &s->retention_timer);
        (void)loop_timer_cancel(&s->loop, &s->reap_timer);
        loop_fini(&s->loop);
    }
    if (s->catalog_ready) {
        catalog_close(&s->catalog);
    }
    producer_ids_close(&s->producer_ids);
    acl_serve_close(s);
    batch_zctx_fini(&s->zctx);
    free(s->scratch);
    free(s->scrub_buf);
    kafka_serve_close(s);
    sasl_serve_close(s);
    if (s->ring_ready) {
        ring_fini(&s->ring);
    }
    if (s->lock_fd >= 0) {
        close(s->lock_fd);
    }
    return rc;
}
