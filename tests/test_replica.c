/*
 * Tests for broker/replica.h and broker/fetcher.h: brokers of a cluster
 * without etcd. Each test runs two or three struct servers in this process,
 * each on a thread of its own with its own data directory and an
 * ephemeral port, and hands them cluster views made here (what the cluster
 * session would hand them), posted to each loop. Clients speak raw frames
 * (tests/broker_support.h). Waits poll a condition with a generous bound:
 * they never depend on how fast the machine is.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/bytes.h"
#include "base/log.h"
#include "broker/server.h"
#include "broker/users.h"
#include "tests/auth_support.h"
#include "tests/broker_support.h"
#include "tests/etcd_support.h"

#define NODES_MAX 3
#define TOPIC "rt"
/* Bound on every wait for the cluster to settle: far above what it takes
 * on a busy machine; reached only when something is broken. */
#define SETTLE_MS 60000

struct node {
    int32_t id;
    char dir[64];
    struct broker_config cfg;
    struct server s;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool ready;
    int init_rc;
    bool running;
};

static struct node nodes[NODES_MAX];

/* Brokers started while set require logins, and log in to each other as
 * REPL_USER (broker/sasl_serve.h); the tests' clients log in as it too. */
static bool secured;
#define REPL_USER "repl"
#define REPL_PASSWORD "repl-secret"

static void node_secure(struct node *n)
{
    n->cfg.authentication = BROKER_AUTHENTICATION_REQUIRED;
    snprintf(n->cfg.inter_broker_user, sizeof(n->cfg.inter_broker_user), REPL_USER);
    snprintf(n->cfg.inter_broker_password_file, sizeof(n->cfg.inter_broker_password_file),
             "%s/repl-password", n->dir);
    FILE *f = fopen(n->cfg.inter_broker_password_file, "w");
    cr_assert_not_null(f);
    fprintf(f, REPL_PASSWORD "\n");
    cr_assert_eq(fclose(f), 0);
    int rc = users_add_offline(n->cfg.data_dir, REPL_USER, REPL_PASSWORD);
    cr_assert_eq(rc, 0, "%s", err_str(rc));
}

static void *node_main(void *arg)
{
    struct node *n = arg;
    int rc = server_init(&n->s, &n->cfg);
    pthread_mutex_lock(&n->mu);
    n->init_rc = rc;
    n->ready = true;
    pthread_cond_signal(&n->cv);
    pthread_mutex_unlock(&n->mu);
    if (rc == 0) {
        int rc_run = server_run(&n->s);
        int rc_fini = server_fini(&n->s);
        cr_assert_eq(rc_run, 0);
        cr_assert_eq(rc_fini, 0, "broker %d closing: %s", n->id, err_str(rc_fini));
    }
    return NULL;
}

/* Starts broker id in a fresh directory (or the one it had: restart);
 * with etcd endpoints it joins that cluster, else it waits for views
 * given by hand. lag_ms: its replica_lag_ms (0: the default). Returns at
 * once: node_wait_started() waits for its start to end. */
static void node_launch(struct node *n, int32_t id, const char *endpoints, uint32_t lag_ms)
{
    if (n->dir[0] == '\0') {
        snprintf(n->dir, sizeof(n->dir), "/tmp/ng-replica-XXXXXX");
        cr_assert_not_null(mkdtemp(n->dir));
    }
    n->id = id;
    broker_config_default(&n->cfg);
    snprintf(n->cfg.data_dir, sizeof(n->cfg.data_dir), "%s/data", n->dir);
    snprintf(n->cfg.listen_host, sizeof(n->cfg.listen_host), "127.0.0.1");
    n->cfg.listen_port = 0;
    n->cfg.kafka_listen_port = 0; /* ephemeral: tests run side by side */
    n->cfg.admin_listen_port = 0;
    n->cfg.broker_id = id;
    snprintf(n->cfg.etcd_endpoints, sizeof(n->cfg.etcd_endpoints), "%s", endpoints);
    n->cfg.replica_lag_ms = lag_ms != 0 ? lag_ms : n->cfg.replica_lag_ms;
    n->cfg.retention_check_ms = BROKER_RETENTION_CHECK_MS_MIN; /* topics here keep all but one */
    if (secured) {
        node_secure(n);
    }
    n->ready = false;
    pthread_mutex_init(&n->mu, NULL);
    pthread_cond_init(&n->cv, NULL);
    cr_assert_eq(pthread_create(&n->thread, NULL, node_main, n), 0);
}

/* Waits until n's start ended, which must have succeeded. */
static void node_wait_started(struct node *n)
{
    pthread_mutex_lock(&n->mu);
    while (!n->ready) {
        pthread_cond_wait(&n->cv, &n->mu);
    }
    pthread_mutex_unlock(&n->mu);
    cr_assert_eq(n->init_rc, 0, "broker %d: %s", n->id, err_str(n->init_rc));
    n->running = true;
}

static void node_start_cfg(struct node *n, int32_t id, const char *endpoints, uint32_t lag_ms)
{
    node_launch(n, id, endpoints, lag_ms);
    node_wait_started(n);
}

static void node_start_etcd(struct node *n, int32_t id, const char *endpoints)
{
    node_start_cfg(n, id, endpoints, 0);
}

static void node_start(struct node *n, int32_t id) { node_start_etcd(n, id, ""); }

static void node_stop(struct node *n)
{
    if (!n->running) {
        return;
    }
    server_stop_async(&n->s);
    pthread_join(n->thread, NULL);
    pthread_mutex_destroy(&n->mu);
    pthread_cond_destroy(&n->cv);
    n->running = false;
}

static void teardown(void)
{
    for (int i = 0; i < NODES_MAX; i++) {
        node_stop(&nodes[i]);
        if (nodes[i].dir[0] != '\0') {
            char cmd[128];
            snprintf(cmd, sizeof(cmd), "rm -rf %s", nodes[i].dir);
            cr_assert_eq(system(cmd), 0);
        }
    }
    memset(nodes, 0, sizeof(nodes));
    secured = false;
}

static void setup(void) { log_set_level(LOG_WARN); }

TestSuite(replica, .init = setup, .fini = teardown, .timeout = 300);

/* ---- running code on a broker's loop ---- */

struct on_loop {
    struct loop_msg m;
    void (*fn)(struct server *s, void *arg);
    void *arg;
    struct server *s;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
};

static void on_loop_run(struct loop_msg *m, void *arg)
{
    (void)arg;
    struct on_loop *o = container_of(m, struct on_loop, m);
    o->fn(o->s, o->arg);
    pthread_mutex_lock(&o->mu);
    o->done = true;
    pthread_cond_signal(&o->cv);
    pthread_mutex_unlock(&o->mu);
}

/* Runs fn(s, arg) on n's loop thread and waits for it. */
static void on_loop(struct node *n, void (*fn)(struct server *s, void *arg), void *arg)
{
    struct on_loop o = {.m = {.fn = on_loop_run}, .fn = fn, .arg = arg, .s = &n->s};
    pthread_mutex_init(&o.mu, NULL);
    pthread_cond_init(&o.cv, NULL);
    loop_post(&n->s.loop, &o.m);
    pthread_mutex_lock(&o.mu);
    while (!o.done) {
        pthread_cond_wait(&o.cv, &o.mu);
    }
    pthread_mutex_unlock(&o.mu);
    pthread_mutex_destroy(&o.mu);
    pthread_cond_destroy(&o.cv);
}

/* A partition's marks and, when bytes is set, its whole log (every
 * written batch) copied out. */
struct part_state {
    int32_t partition; /* which one: in */
    bool exists;
    enum replica_role role;
    int64_t earliest;
    int64_t written;
    int64_t durable;
    int64_t latest; /* the high watermark readers see */
    uint8_t isr_count;
    uint8_t *bytes; /* malloc'd, when asked */
    size_t bytes_len;
    bool want_bytes;
};

static void read_state(struct server *s, void *arg)
{
    struct part_state *ps = arg;
    struct server_topic *t = server_topic_find(s, proto_str_make(TOPIC));
    ps->exists = t != NULL;
    if (t == NULL) {
        return;
    }
    struct bpart *bp = &t->parts[ps->partition];
    struct part *log = &bp->log;
    ps->role = bp->rep.role;
    ps->isr_count = bp->rep.isr_count;
    ps->earliest = part_offset_earliest(log);
    ps->written = part_offset_written(log);
    ps->durable = part_offset_durable(log);
    ps->latest = part_offset_latest(log);
    if (!ps->want_bytes) {
        return;
    }
    size_t cap = 4u << 20;
    ps->bytes = malloc(cap);
    cr_assert_not_null(ps->bytes);
    int64_t at = ps->earliest;
    while (at < ps->written) {
        struct part_read_result r;
        int rc = part_read_to(log, at, ps->written, ps->bytes + ps->bytes_len, cap - ps->bytes_len,
                              cap - ps->bytes_len, &r);
        cr_assert_eq(rc, 0, "read at %lld: %s", (long long)at, err_str(rc));
        cr_assert_gt(r.bytes, 0);
        size_t pos = ps->bytes_len;
        ps->bytes_len += r.bytes;
        while (pos < ps->bytes_len) {
            struct batch_header h;
            cr_assert_eq(
                batch_header_decode(ps->bytes + pos, ps->bytes_len - pos, BATCH_BYTES_LIMIT, &h),
                0);
            pos += batch_bytes(&h);
            at = batch_offset_last(&h) + 1;
        }
    }
}

static struct part_state state_of_part(struct node *n, int32_t partition, bool bytes)
{
    struct part_state ps = {.partition = partition, .want_bytes = bytes};
    on_loop(n, read_state, &ps);
    return ps;
}

static struct part_state state_of(struct node *n, bool bytes) { return state_of_part(n, 0, bytes); }

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until n's partition has written (and made durable) `written`. */
static void wait_written_part(struct node *n, int32_t partition, int64_t written)
{
    int64_t deadline = now_ms() + SETTLE_MS;
    struct part_state ps;
    do {
        ps = state_of_part(n, partition, false);
        if (ps.exists && ps.written == written && ps.durable == written) {
            return;
        }
        usleep(2000);
    } while (now_ms() < deadline);
    cr_assert_fail("broker %d partition %d: written %lld durable %lld, wanted %lld", n->id,
                   partition, (long long)ps.written, (long long)ps.durable, (long long)written);
}

static void wait_written(struct node *n, int64_t written) { wait_written_part(n, 0, written); }

/* Waits until n's high watermark is hw. */
static void wait_hw(struct node *n, int64_t hw)
{
    int64_t deadline = now_ms() + SETTLE_MS;
    struct part_state ps;
    do {
        ps = state_of(n, false);
        if (ps.exists && ps.latest == hw) {
            return;
        }
        usleep(2000);
    } while (now_ms() < deadline);
    cr_assert_fail("broker %d: high watermark %lld, wanted %lld", n->id, (long long)ps.latest,
                   (long long)hw);
}

/* ---- views ---- */

struct view_spec {
    int32_t leader;
    int32_t epoch;
    int32_t isr[NODES_MAX];
    uint8_t isr_count;
    int32_t replicas[NODES_MAX];
    uint8_t replica_count;
    int32_t min_insync;
    int64_t retention_bytes; /* 0: the broker's */
    int32_t partitions;      /* 0: one; partition i is led by the i-th replica after leader */
    int64_t reg_revision;    /* every registration's create revision */
    int64_t mod_revision;    /* every partition key's */
};

/* A view of the running brokers and one topic of one partition. */
static struct cluster_view *make_view(const struct view_spec *vs)
{
    struct cluster_view *v = calloc(1, sizeof(*v));
    cr_assert_not_null(v);
    v->revision = 1;
    v->controller = 1;
    v->brokers = calloc(NODES_MAX, sizeof(*v->brokers));
    for (int i = 0; i < NODES_MAX; i++) {
        if (nodes[i].running) {
            struct cluster_broker *b = &v->brokers[v->broker_count++];
            b->id = nodes[i].id;
            snprintf(b->host, sizeof(b->host), "127.0.0.1");
            b->port = nodes[i].s.port;
            b->reg_revision = vs->reg_revision;
        }
    }
    v->topics = calloc(1, sizeof(*v->topics));
    v->topic_count = 1;
    struct cluster_topic *t = &v->topics[0];
    snprintf(t->name, sizeof(t->name), TOPIC);
    t->partitions = vs->partitions > 0 ? vs->partitions : 1;
    t->replication_factor = (int16_t)vs->replica_count;
    /* The test batches are stamped in 1970: kept whatever their age. */
    t->cfg = (struct cluster_topic_config){
        .retention_ms = PROTO_CONFIG_UNLIMITED,
        .retention_bytes = vs->retention_bytes != 0 ? vs->retention_bytes : -1,
        .segment_bytes = vs->retention_bytes != 0 ? (int64_t)PART_SEGMENT_BYTES_MIN : -1,
        .segment_ms = -1,
        .batch_bytes_max = -1,
        .min_insync_replicas = vs->min_insync};
    t->parts = calloc((size_t)t->partitions, sizeof(*t->parts));
    for (int32_t i = 0; i < t->partitions; i++) {
        struct cluster_partition *p = &t->parts[i];
        p->index = i;
        p->leader = (vs->leader - 1 + i) % vs->replica_count + 1;
        p->leader_epoch = vs->epoch;
        p->mod_revision = vs->mod_revision;
        p->replica_count = vs->replica_count;
        memcpy(p->replicas, vs->replicas, sizeof(vs->replicas));
        p->isr_count = vs->isr_count;
        memcpy(p->isr, vs->isr, sizeof(vs->isr));
    }
    cluster_view_check(v);
    return v;
}

static void nothing(struct server *s, void *arg)
{
    (void)s;
    (void)arg;
}

/* Hands the view to n and waits until its loop has applied it (its
 * mailbox runs in order). */
static void give_view(struct node *n, const struct view_spec *vs)
{
    cr_assert_eq(server_post_view(&n->s, make_view(vs)), 0);
    on_loop(n, nothing, NULL);
}

static void give_all(const struct view_spec *vs)
{
    for (int i = 0; i < NODES_MAX; i++) {
        if (nodes[i].running) {
            give_view(&nodes[i], vs);
        }
    }
}

/* Starts brokers 1..count. */
static void start_nodes(int count)
{
    for (int i = 0; i < count; i++) {
        node_start(&nodes[i], i + 1);
    }
}

static struct view_spec spec(int32_t leader, int32_t epoch, int replicas, int min_insync)
{
    struct view_spec vs = {.leader = leader, .epoch = epoch, .min_insync = min_insync};
    for (int i = 0; i < replicas; i++) {
        vs.replicas[vs.replica_count++] = i + 1;
        vs.isr[vs.isr_count++] = i + 1;
    }
    return vs;
}

/* ---- producing ---- */

static uint8_t batch_buf[BT_BYTES_MAX];

/* Produces `batches` batches of 4 records (seeds from seed) to n;
 * asserts each gets err. Returns the offset after the last one written. */
static int64_t produce_part(struct node *n, int32_t partition, int batches, uint32_t seed,
                            int16_t acks, int err)
{
    struct cl c;
    cl_connect(&c, n->s.port, CL_TIMEOUT_MS_DEFAULT * 4);
    if (secured) {
        cr_assert_eq(au_login(&c, REPL_USER, REPL_PASSWORD, SCRAM_SHA_256, NULL), 0);
    }
    int64_t end = -1;
    for (int i = 0; i < batches; i++) {
        size_t len = bt_make(batch_buf, sizeof(batch_buf), 4, seed + (uint32_t)i, 1000, -1, 0, 0);
        int64_t offset = -1;
        int rc = rq_produce(&c, TOPIC, partition, batch_buf, len, acks, &offset);
        cr_assert_eq(rc, err, "broker %d batch %d: %s, wanted %s", n->id, i, err_str(rc),
                     err_str(err));
        end = rc == 0 ? offset + 4 : end;
    }
    cl_close(&c);
    return end;
}

/* Asserts that b holds exactly what a holds of the partition. */
static void assert_same_part(struct node *a, struct node *b, int32_t partition)
{
    struct part_state x = state_of_part(a, partition, true);
    struct part_state y = state_of_part(b, partition, true);
    cr_assert_eq(x.written, y.written, "broker %d ends at %lld, broker %d at %lld", a->id,
                 (long long)x.written, b->id, (long long)y.written);
    cr_assert_eq(x.bytes_len, y.bytes_len,
                 "broker %d: %zu bytes from %lld, broker %d: %zu from %lld", a->id, x.bytes_len,
                 (long long)x.earliest, b->id, y.bytes_len, (long long)y.earliest);
    cr_assert_eq(memcmp(x.bytes, y.bytes, x.bytes_len), 0, "brokers %d and %d differ", a->id,
                 b->id);
    free(x.bytes);
    free(y.bytes);
}

static int64_t produce(struct node *n, int batches, uint32_t seed, int16_t acks, int err)
{
    return produce_part(n, 0, batches, seed, acks, err);
}

static void assert_same_logs(struct node *a, struct node *b) { assert_same_part(a, b, 0); }

/* ---- tests ---- */

Test(replica, records_produced_to_the_leader_reach_the_followers_byte_for_byte)
{
    start_nodes(3);
    struct view_spec vs = spec(1, 1, 3, 2);
    give_all(&vs);
    int64_t end = produce(&nodes[0], 20, 100, PROTO_ACKS_ALL, 0);
    cr_assert_eq(end, 80);
    /* acks=all was answered: the high watermark passed every batch. */
    cr_assert_eq(state_of(&nodes[0], false).latest, 80);
    wait_written(&nodes[1], end);
    wait_written(&nodes[2], end);
    assert_same_logs(&nodes[0], &nodes[1]);
    assert_same_logs(&nodes[0], &nodes[2]);
    /* The followers learn the high watermark from their next fetch. */
    wait_hw(&nodes[1], end);
    wait_hw(&nodes[2], end);
}

/* Followers of a leader that requires logins log in with the inter-broker
 * credentials: acks=all is answered only once they have the batches. */
Test(replica, followers_log_in_to_a_leader_that_requires_it)
{
    secured = true;
    start_nodes(2);
    struct view_spec vs = spec(1, 1, 2, 2);
    give_all(&vs);
    int64_t end = produce(&nodes[0], 5, 300, PROTO_ACKS_ALL, 0);
    cr_assert_eq(end, 20);
    wait_written(&nodes[1], end);
    assert_same_logs(&nodes[0], &nodes[1]);
}

Test(replica, each_broker_leads_some_partitions_and_follows_the_others)
{
    start_nodes(3);
    struct view_spec vs = spec(1, 1, 3, 3);
    vs.partitions = 6; /* partition i led by broker i % 3 + 1 */
    give_all(&vs);
    int64_t end[6];
    for (int32_t i = 0; i < 6; i++) {
        end[i] = produce_part(&nodes[i % 3], i, 3 + i, 1400 + 10 * (uint32_t)i, PROTO_ACKS_ALL, 0);
        cr_assert_eq(end[i], 4 * (3 + i));
    }
    for (int32_t i = 0; i < 6; i++) {
        for (int n = 0; n < 3; n++) {
            wait_written_part(&nodes[n], i, end[i]);
            assert_same_part(&nodes[i % 3], &nodes[n], i);
        }
    }
}

Test(replica, high_watermark_stops_at_the_slowest_isr_member)
{
    /* Broker 3 is in the ISR but never runs: it never reports a durable
     * offset, so the high watermark cannot pass what it holds (nothing). */
    start_nodes(2);
    struct view_spec vs = spec(1, 1, 3, 2);
    give_all(&vs);
    int64_t end = produce(&nodes[0], 5, 200, PROTO_ACKS_LEADER, 0);
    wait_written(&nodes[1], end);
    cr_assert_eq(state_of(&nodes[0], false).latest, 0, "held by broker 3");
    struct cl c;
    cl_connect(&c, nodes[0].s.port, CL_TIMEOUT_MS_DEFAULT);
    struct fetched f;
    rq_fetch(&c, TOPIC, 0, 0, &f);
    cr_assert_eq(f.err, 0);
    cr_assert_eq(f.records_bytes, 0, "a consumer sees nothing above the high watermark");
    cr_assert_eq(f.offset_latest, 0);
    rq_fetched_free(&f);
    /* etcd took broker 3 out of the ISR: the high watermark follows the
     * two that hold everything. */
    vs.isr_count = 2;
    give_all(&vs);
    wait_hw(&nodes[0], end);
    rq_fetch(&c, TOPIC, 0, 0, &f);
    cr_assert_eq(f.err, 0);
    cr_assert_eq(bt_count(f.records, f.records_bytes), 5);
    rq_fetched_free(&f);
    cl_close(&c);
}

Test(replica, acks_all_below_min_insync_is_refused_and_appends_nothing)
{
    start_nodes(3);
    struct view_spec vs = spec(1, 1, 3, 2);
    vs.isr_count = 1; /* the leader alone */
    give_all(&vs);
    (void)produce(&nodes[0], 1, 300, PROTO_ACKS_ALL, -NG_ENOT_ENOUGH_REPLICAS);
    cr_assert_eq(state_of(&nodes[0], false).written, 0, "nothing was appended");
    /* acks=1 does not wait for the ISR. */
    cr_assert_eq(produce(&nodes[0], 1, 301, PROTO_ACKS_LEADER, 0), 4);
}

/* Sends batch_buf[0..len) as an acks=all produce with timeout_ms; returns
 * its correlation id (read the answer with rq_produce_recv()). */
static uint32_t produce_send_batch(struct cl *c, size_t len, int32_t timeout_ms)
{
    struct proto_enc e;
    uint32_t corr = cl_next_corr(c);
    struct proto_produce_req q = {.acks = PROTO_ACKS_ALL, .timeout_ms = timeout_ms};
    proto_produce_req_begin(&e, cl_wr(c), 0, corr, PROTO_STR_NULL, &q);
    proto_enc_topic(&e, proto_str_make(TOPIC));
    proto_produce_req_partition(&e,
                                &(struct proto_produce_req_partition){0, batch_buf, (uint32_t)len});
    cr_assert_eq(proto_enc_end(&e), 0);
    cr_assert_eq(cl_send_wr(c), 0);
    return corr;
}

/* Sends one acks=all batch made from seed (no producer id). */
static uint32_t produce_send(struct cl *c, uint32_t seed, int32_t timeout_ms)
{
    return produce_send_batch(c, bt_make(batch_buf, sizeof(batch_buf), 4, seed, 1000, -1, 0, 0),
                              timeout_ms);
}

Test(replica, acks_all_waiting_for_the_high_watermark_is_answered_when_its_wait_ends)
{
    /* Broker 2 is in the ISR and never runs: nothing passes the HW. */
    start_nodes(1);
    struct view_spec vs = spec(1, 1, 2, 2);
    give_all(&vs);
    struct cl c;
    cl_connect(&c, nodes[0].s.port, CL_TIMEOUT_MS_DEFAULT * 4);
    int64_t offset;
    /* Its time runs out with the ISR big enough: a timeout. */
    uint32_t corr = produce_send(&c, 1200, 100);
    cr_assert_eq(rq_produce_recv(&c, corr, &offset), -NG_ETIMEOUT);
    /* The ISR shrinks below min_insync under a waiting batch: the HW
     * passes it, on fewer replicas than acks=all asks. */
    corr = produce_send(&c, 1201, 600000);
    wait_written(&nodes[0], 8);
    vs.isr_count = 1;
    give_all(&vs);
    cr_assert_eq(rq_produce_recv(&c, corr, &offset), -NG_ENOT_ENOUGH_REPLICAS);
    /* Leadership moves under a waiting batch. */
    vs.isr_count = 2;
    give_all(&vs);
    corr = produce_send(&c, 1202, 600000);
    wait_written(&nodes[0], 12);
    struct view_spec vs2 = spec(2, 2, 2, 2);
    give_all(&vs2);
    cr_assert_eq(rq_produce_recv(&c, corr, &offset), -NG_ENOT_LEADER);
    cl_close(&c);
}

Test(replica, an_acks_all_retry_the_log_holds_waits_for_the_high_watermark_as_its_original)
{
    /* Broker 2 is in the ISR and never runs: nothing passes the HW. */
    start_nodes(1);
    struct view_spec vs = spec(1, 1, 2, 2);
    give_all(&vs);
    struct cl c;
    cl_connect(&c, nodes[0].s.port, CL_TIMEOUT_MS_DEFAULT * 4);
    int16_t pepoch;
    int64_t pid = rq_init_producer_id(&c, &pepoch);
    size_t len = bt_make(batch_buf, sizeof(batch_buf), 4, 1250, 1000, pid, pepoch, 0);
    int64_t offset;
    uint32_t corr = produce_send_batch(&c, len, 100);
    cr_assert_eq(rq_produce_recv(&c, corr, &offset), -NG_ETIMEOUT);
    /* The retry is a duplicate of a batch the log holds but the HW has not
     * passed: answering it at once would acknowledge an unreplicated record. */
    len = bt_make(batch_buf, sizeof(batch_buf), 4, 1250, 1000, pid, pepoch, 0);
    corr = produce_send_batch(&c, len, 100);
    cr_assert_eq(rq_produce_recv(&c, corr, &offset), -NG_ETIMEOUT);
    cr_assert_eq(state_of(&nodes[0], false).written, 4, "written once");
    cl_close(&c);
}

Test(replica, a_restarted_broker_serves_nothing_until_a_view_says_what_it_leads)
{
    start_nodes(1);
    struct view_spec vs = spec(1, 1, 1, 1);
    give_all(&vs);
    cr_assert_eq(produce(&nodes[0], 1, 1260, PROTO_ACKS_ALL, 0), 4);
    node_stop(&nodes[0]);
    /* Back with its log and no view yet: the cluster may have moved its
     * partitions while it was away, so it leads nothing. */
    node_start(&nodes[0], 1);
    produce(&nodes[0], 1, 1261, PROTO_ACKS_ALL, -NG_ENOT_LEADER);
    give_all(&vs);
    cr_assert_eq(produce(&nodes[0], 1, 1262, PROTO_ACKS_ALL, 0), 8);
}

/* A view naming this broker leader under a registration newer than the
 * partition's last change (it restarted, or lost its lease, since it was
 * elected): it leads nothing until a view elects it at a new epoch. */
Test(replica, a_leader_registered_again_since_its_election_waits_for_a_new_one)
{
    start_nodes(1);
    struct view_spec vs = spec(1, 1, 1, 1);
    vs.reg_revision = 4;
    vs.mod_revision = 5;
    give_all(&vs);
    cr_assert_eq(produce(&nodes[0], 1, 1270, PROTO_ACKS_ALL, 0), 4);
    vs.reg_revision = 6; /* registered again */
    give_all(&vs);
    produce(&nodes[0], 1, 1271, PROTO_ACKS_ALL, -NG_ENOT_LEADER);
    vs.epoch = 2; /* elected anew */
    vs.mod_revision = 7;
    give_all(&vs);
    cr_assert_eq(produce(&nodes[0], 1, 1272, PROTO_ACKS_ALL, 0), 8);
}

/* A replica that finds damage in its log when it opens (after a crash, a
 * torn batch that later writes survived) cuts its log there and fetches
 * the rest again from the leader: kept, the damaged range would be a hole
 * it could never serve if it led. */
Test(replica, a_replica_cuts_its_log_where_damage_is_found_at_open_and_fetches_it_again)
{
    start_nodes(2);
    struct view_spec vs = spec(1, 1, 2, 1);
    give_all(&vs);
    int64_t end = produce(&nodes[0], 4, 1270, PROTO_ACKS_ALL, 0);
    wait_written(&nodes[1], end);
    node_stop(&nodes[1]);
    /* The third batch's length made impossible, in broker 2's copy. */
    char path[sizeof(nodes[1].dir) + 64];
    snprintf(path, sizeof(path), "%s/data/topics/" TOPIC "/0/00000000000000000000.log",
             nodes[1].dir);
    FILE *f = fopen(path, "r+b");
    cr_assert_not_null(f, "%s", path);
    uint8_t head[12];
    long pos = 0;
    for (int k = 0; k < 2; k++) {
        cr_assert_eq(fseek(f, pos, SEEK_SET), 0);
        cr_assert_eq(fread(head, 1, sizeof(head), f), sizeof(head));
        pos += 12 + (long)get_be32(head + 8);
    }
    cr_assert_eq(fseek(f, pos, SEEK_SET), 0);
    cr_assert_eq(fread(head, 1, sizeof(head), f), sizeof(head));
    int64_t damaged = (int64_t)get_be64(head);
    put_be32(head + 8, 0x7fffffffu);
    cr_assert_eq(fseek(f, pos, SEEK_SET), 0);
    cr_assert_eq(fwrite(head, 1, sizeof(head), f), sizeof(head));
    cr_assert_eq(fclose(f), 0);
    node_start(&nodes[1], 2);
    struct part_state ps = state_of(&nodes[1], false);
    cr_assert_eq(ps.written, damaged, "cut where the damage starts: %lld, not %lld",
                 (long long)ps.written, (long long)damaged);
    give_all(&vs);
    wait_written(&nodes[1], end);
    assert_same_logs(&nodes[0], &nodes[1]);
}

Test(replica, a_follower_refuses_produce_fetch_and_list_offsets_with_not_leader)
{
    start_nodes(2);
    struct view_spec vs = spec(1, 1, 2, 1);
    give_all(&vs);
    (void)produce(&nodes[1], 1, 400, PROTO_ACKS_LEADER, -NG_ENOT_LEADER);
    (void)produce(&nodes[1], 1, 401, PROTO_ACKS_ALL, -NG_ENOT_LEADER);
    struct cl c;
    cl_connect(&c, nodes[1].s.port, CL_TIMEOUT_MS_DEFAULT);
    struct fetched f;
    rq_fetch(&c, TOPIC, 0, 0, &f);
    cr_assert_eq(f.err, -NG_ENOT_LEADER);
    rq_fetched_free(&f);
    int64_t offset;
    int64_t ts;
    cr_assert_eq(rq_list_offset(&c, TOPIC, 0, PROTO_TIMESTAMP_LATEST, &offset, &ts),
                 -NG_ENOT_LEADER);
    cl_close(&c);
    /* The leader takes them. */
    cr_assert_eq(produce(&nodes[0], 1, 402, PROTO_ACKS_ALL, 0), 4);
}

/* Sends a ReplicaFetch of the partition as broker replica_id at epoch;
 * returns the partition's error. */
static int replica_fetch(struct node *n, int32_t replica_id, int32_t epoch)
{
    struct cl c;
    cl_connect(&c, n->s.port, CL_TIMEOUT_MS_DEFAULT);
    struct wr *w = cl_wr(&c);
    struct proto_enc e;
    uint32_t corr = cl_next_corr(&c);
    struct proto_replica_fetch_req q = {.replica_id = replica_id, .bytes_max = 1 << 20};
    proto_replica_fetch_req_begin(&e, w, 0, corr, PROTO_STR_NULL, &q);
    proto_enc_topic(&e, proto_str_make(TOPIC));
    proto_replica_fetch_req_partition(
        &e, &(struct proto_replica_fetch_req_partition){.partition = 0, .leader_epoch = epoch});
    cr_assert_eq(proto_enc_end(&e), 0);
    cr_assert_eq(cl_send_wr(&c), 0);
    struct rd body;
    cl_expect(&c, corr, &body);
    struct proto_dec d;
    cr_assert_eq(proto_replica_fetch_resp_decode(&body, 0, &d), 0);
    struct proto_topic t;
    struct proto_replica_fetch_resp_partition p;
    cr_assert(proto_next_topic(&d, &t));
    cr_assert(proto_replica_fetch_resp_next_partition(&d, &p));
    cl_close(&c);
    return p.err;
}

Test(replica, a_replica_fetch_with_another_epoch_is_fenced)
{
    start_nodes(2);
    struct view_spec vs = spec(1, 5, 2, 1);
    give_all(&vs);
    cr_assert_eq(replica_fetch(&nodes[0], 2, 4), -NG_EFENCED_LEADER_EPOCH);
    cr_assert_eq(replica_fetch(&nodes[0], 2, 6), -NG_EUNKNOWN_LEADER_EPOCH);
    cr_assert_eq(replica_fetch(&nodes[0], 3, 5), -NG_EBADARG, "broker 3 is not a replica");
    cr_assert_eq(replica_fetch(&nodes[1], 1, 5), -NG_ENOT_LEADER);
    cr_assert_eq(replica_fetch(&nodes[0], 2, 5), 0);
}

Test(replica, a_follower_with_a_divergent_tail_truncates_to_the_leaders_epoch_end)
{
    start_nodes(2);
    /* Epoch 1: broker 1 leads, both hold two batches. */
    struct view_spec vs = spec(1, 1, 2, 2);
    give_all(&vs);
    int64_t common = produce(&nodes[0], 2, 500, PROTO_ACKS_ALL, 0);
    wait_written(&nodes[1], common);
    /* Epoch 2, seen by broker 2 alone: it leads and writes three batches
     * that broker 1 never gets. */
    struct view_spec vs2 = spec(2, 2, 2, 1);
    vs2.isr[0] = 2;
    vs2.isr_count = 1;
    give_view(&nodes[1], &vs2);
    int64_t diverged = produce(&nodes[1], 3, 600, PROTO_ACKS_LEADER, 0);
    cr_assert_eq(diverged, common + 12);
    wait_written(&nodes[1], diverged);
    /* Epoch 3: broker 1 leads again (from its ISR of epoch 1) and writes
     * one batch; broker 2 follows, asks where epoch 2 ends at the leader
     * (it never saw it: epoch 1 ends at `common`) and cuts its tail. */
    struct view_spec vs3 = spec(1, 3, 2, 1);
    vs3.isr[0] = 1;
    vs3.isr_count = 1;
    give_view(&nodes[0], &vs3);
    int64_t end = produce(&nodes[0], 1, 700, PROTO_ACKS_LEADER, 0);
    cr_assert_eq(end, common + 4, "the new leader goes on from its own end");
    give_view(&nodes[1], &vs3);
    wait_written(&nodes[1], end);
    assert_same_logs(&nodes[0], &nodes[1]);
}

/* Produces one 4-record batch of producer pid at sequence seq to n;
 * returns the broker's verdict. */
static int produce_seq(struct node *n, int64_t pid, int16_t pepoch, int32_t seq, uint32_t seed)
{
    struct cl c;
    cl_connect(&c, n->s.port, CL_TIMEOUT_MS_DEFAULT);
    size_t len = bt_make(batch_buf, sizeof(batch_buf), 4, seed, 1000, pid, pepoch, seq);
    int64_t offset;
    int rc = rq_produce(&c, TOPIC, 0, batch_buf, len, PROTO_ACKS_LEADER, &offset);
    cl_close(&c);
    return rc;
}

Test(replica, a_follower_that_cuts_its_log_keeps_its_producers_last_sequences_before_the_cut)
{
    start_nodes(2);
    struct view_spec vs = spec(1, 1, 2, 2);
    give_all(&vs);
    struct cl c;
    cl_connect(&c, nodes[0].s.port, CL_TIMEOUT_MS_DEFAULT);
    int16_t pepoch;
    int64_t pid = rq_init_producer_id(&c, &pepoch);
    cl_close(&c);
    /* Epoch 1: sequences 0-3, on both. */
    cr_assert_eq(produce_seq(&nodes[0], pid, pepoch, 0, 520), 0);
    wait_written(&nodes[1], 4);
    /* Epoch 2, seen by broker 2 alone: more batches of the producer than
     * a producer state keeps, which broker 1 never gets. */
    struct view_spec vs2 = spec(2, 2, 2, 1);
    vs2.isr[0] = 2;
    vs2.isr_count = 1;
    give_view(&nodes[1], &vs2);
    for (int32_t i = 1; i <= PRODUCER_BATCHES_KEPT + 1; i++) {
        cr_assert_eq(produce_seq(&nodes[1], pid, pepoch, 4 * i, 620 + (uint32_t)i), 0);
    }
    /* Epoch 3: broker 1 leads from its epoch-1 log; broker 2 follows and
     * cuts every batch of epoch 2. */
    struct view_spec vs3 = spec(1, 3, 2, 1);
    vs3.isr_count = 1;
    give_all(&vs3);
    cr_assert_eq(produce(&nodes[0], 1, 720, PROTO_ACKS_LEADER, 0), 8);
    wait_written(&nodes[1], 8);
    assert_same_logs(&nodes[0], &nodes[1]);
    /* Epoch 4: broker 2 leads. The producer's last sequence it holds is 3:
     * a batch from sequence 28 leaves a gap, one from 4 follows. */
    struct view_spec vs4 = spec(2, 4, 2, 1);
    give_all(&vs4);
    cr_assert_eq(produce_seq(&nodes[1], pid, pepoch, 4 * (PRODUCER_BATCHES_KEPT + 2), 820),
                 -NG_EOUT_OF_ORDER);
    cr_assert_eq(produce_seq(&nodes[1], pid, pepoch, 4, 821), 0);
}

Test(replica, a_follower_cuts_where_its_epochs_leave_the_leaders)
{
    start_nodes(2);
    struct view_spec vs = spec(1, 1, 2, 2);
    give_all(&vs);
    int64_t common = produce(&nodes[0], 2, 510, PROTO_ACKS_ALL, 0);
    wait_written(&nodes[1], common);
    /* Epoch 2, seen by broker 1 alone: it writes two batches alone. */
    struct view_spec vs2 = spec(1, 2, 2, 1);
    vs2.isr_count = 1;
    give_view(&nodes[0], &vs2);
    int64_t leader_end = produce(&nodes[0], 2, 610, PROTO_ACKS_LEADER, 0);
    /* Epoch 3, seen by broker 2 alone: it writes three others. */
    struct view_spec vs3 = spec(2, 3, 2, 1);
    vs3.isr[0] = 2;
    vs3.isr_count = 1;
    give_view(&nodes[1], &vs3);
    int64_t diverged = produce(&nodes[1], 3, 710, PROTO_ACKS_LEADER, 0);
    cr_assert_gt(diverged, leader_end);
    wait_written(&nodes[1], diverged);
    /* Epoch 4: broker 1 leads. Broker 2 asks about its epoch 3; the
     * leader's largest epoch <= 3 is 2, ending at its log end. Broker 2
     * has no epoch 2: its epoch 1 ends at `common`, past which all it
     * holds is epoch 3's, which the leader never had. */
    struct view_spec vs4 = spec(1, 4, 2, 1);
    vs4.isr_count = 1;
    give_all(&vs4);
    wait_written(&nodes[1], leader_end);
    assert_same_logs(&nodes[0], &nodes[1]);
}

/* Produces one batch of `records` records (seed) to n with acks=1;
 * returns the offset after it. */
static int64_t produce_records(struct node *n, uint32_t records, uint32_t seed)
{
    struct cl c;
    cl_connect(&c, n->s.port, CL_TIMEOUT_MS_DEFAULT);
    size_t len = bt_make(batch_buf, sizeof(batch_buf), records, seed, 1000, -1, 0, 0);
    int64_t offset = -1;
    int rc = rq_produce(&c, TOPIC, 0, batch_buf, len, PROTO_ACKS_LEADER, &offset);
    cl_close(&c);
    cr_assert_eq(rc, 0, "broker %d: %s", n->id, err_str(rc));
    return offset + records;
}

/* A tail written at the leader's own epoch that the leader no longer has
 * (a leader that lost its unsynced writes in a power cut and went on at
 * the same epoch, as one could before it was elected anew on its return):
 * OffsetForLeaderEpoch cannot see it, since both logs hold that epoch past
 * the follower's end. Here broker 2 alone sees itself lead at epoch 1 and
 * writes a batch of 4 records past the common part; broker 1, still
 * leading epoch 1, writes two of 3 records there. Broker 2 follows again:
 * its end (common + 4) falls inside the leader's second batch, which its
 * log could never continue. It compares its last batch with the leader's
 * at that offset, finds them different, cuts it and fetches the leader's. */
/* Brokers 1 and 2 share a common part at epoch 1, led by broker 1; then
 * broker 2 alone is shown a view where it leads epoch 1 too, so that both
 * write their own tails at that epoch. Returns the common part's end;
 * *vs the view where broker 1 leads. */
static int64_t both_lead_one_epoch(struct view_spec *vs, uint32_t seq)
{
    start_nodes(2);
    *vs = spec(1, 1, 2, 1);
    give_all(vs);
    int64_t common = produce(&nodes[0], 2, seq, PROTO_ACKS_ALL, 0);
    wait_written(&nodes[1], common);
    struct view_spec alone = spec(2, 1, 2, 1);
    alone.isr[0] = 2;
    alone.isr_count = 1;
    give_view(&nodes[1], &alone);
    return common;
}

/* Broker 2 follows broker 1 again (view vs): it must end with broker 1's
 * log to end, byte for byte. */
static void follows_again(const struct view_spec *vs, int64_t end)
{
    give_view(&nodes[1], vs);
    wait_written(&nodes[1], end);
    assert_same_logs(&nodes[0], &nodes[1]);
}

Test(replica, a_follower_whose_tail_diverges_within_the_leaders_epoch_cuts_it)
{
    struct view_spec vs;
    int64_t common = both_lead_one_epoch(&vs, 1400);
    cr_assert_eq(produce_records(&nodes[1], 4, 1410), common + 4);
    cr_assert_eq(produce_records(&nodes[0], 3, 1420), common + 3);
    follows_again(&vs, produce_records(&nodes[0], 3, 1421));
}

/* The same, but the diverging batches end where the leader's do (4
 * records each): no offset gives it away, only the batches' bytes. Broker
 * 2 must not keep its two batches as if they were the leader's: it cuts
 * them one round each, back to the common part, where they agree. */
Test(replica, a_follower_whose_tail_differs_from_the_leaders_at_the_same_offsets_cuts_it)
{
    struct view_spec vs;
    int64_t common = both_lead_one_epoch(&vs, 1500);
    cr_assert_eq(produce_records(&nodes[1], 4, 1510), common + 4);
    cr_assert_eq(produce_records(&nodes[1], 4, 1511), common + 8);
    cr_assert_eq(produce_records(&nodes[0], 4, 1520), common + 4);
    cr_assert_eq(produce_records(&nodes[0], 4, 1521), common + 8);
    follows_again(&vs, produce_records(&nodes[0], 4, 1522));
}

Test(replica, a_follower_behind_the_leaders_log_start_starts_its_log_there)
{
    start_nodes(1);
    struct view_spec vs = spec(1, 1, 2, 1);
    vs.isr_count = 1;
    vs.retention_bytes = PART_SEGMENT_BYTES_MIN;
    give_all(&vs);
    /* Small segments, a log kept under one: retention drops the first. */
    int64_t end = produce(&nodes[0], 40, 1300, PROTO_ACKS_LEADER, 0);
    int64_t deadline = now_ms() + SETTLE_MS;
    while (state_of(&nodes[0], false).earliest == 0 && now_ms() < deadline) {
        usleep(10000);
    }
    int64_t start = state_of(&nodes[0], false).earliest;
    cr_assert_gt(start, 0);
    /* A new replica has nothing: offset 0 is below the leader's start. */
    node_start(&nodes[1], 2);
    give_all(&vs);
    wait_written(&nodes[1], end);
    struct part_state ps = state_of(&nodes[1], false);
    cr_assert_geq(ps.earliest, start, "it starts where the leader's log did");
    cr_assert_lt(ps.earliest, end);
}

Test(replica, idempotent_producer_state_is_carried_to_a_follower_that_becomes_leader)
{
    start_nodes(2);
    struct view_spec vs = spec(1, 1, 2, 2);
    give_all(&vs);
    struct cl c;
    cl_connect(&c, nodes[0].s.port, CL_TIMEOUT_MS_DEFAULT);
    int16_t pepoch;
    int64_t pid = rq_init_producer_id(&c, &pepoch);
    size_t len = bt_make(batch_buf, sizeof(batch_buf), 4, 800, 1000, pid, pepoch, 0);
    int64_t first = -1;
    cr_assert_eq(rq_produce(&c, TOPIC, 0, batch_buf, len, PROTO_ACKS_ALL, &first), 0);
    cl_close(&c);
    wait_written(&nodes[1], first + 4);
    /* Broker 2 takes over; the producer retries the batch it sent. */
    struct view_spec vs2 = spec(2, 2, 2, 2);
    give_all(&vs2);
    cl_connect(&c, nodes[1].s.port, CL_TIMEOUT_MS_DEFAULT);
    len = bt_make(batch_buf, sizeof(batch_buf), 4, 800, 1000, pid, pepoch, 0);
    int64_t again = -1;
    cr_assert_eq(rq_produce(&c, TOPIC, 0, batch_buf, len, PROTO_ACKS_ALL, &again), 0);
    cr_assert_eq(again, first, "answered as the duplicate it is");
    cr_assert_eq(state_of(&nodes[1], false).written, first + 4, "written once");
    /* A gap in its sequence is refused, the next one taken. */
    len = bt_make(batch_buf, sizeof(batch_buf), 4, 801, 1000, pid, pepoch, 8);
    cr_assert_eq(rq_produce(&c, TOPIC, 0, batch_buf, len, PROTO_ACKS_ALL, &again),
                 -NG_EOUT_OF_ORDER);
    len = bt_make(batch_buf, sizeof(batch_buf), 4, 802, 1000, pid, pepoch, 4);
    cr_assert_eq(rq_produce(&c, TOPIC, 0, batch_buf, len, PROTO_ACKS_ALL, &again), 0);
    cr_assert_eq(again, first + 4);
    cl_close(&c);
}

Test(replica, brokers_of_a_cluster_never_give_the_same_producer_id)
{
    start_nodes(2);
    int64_t ids[2][3];
    for (int n = 0; n < 2; n++) {
        struct cl c;
        cl_connect(&c, nodes[n].s.port, CL_TIMEOUT_MS_DEFAULT);
        for (int i = 0; i < 3; i++) {
            int16_t epoch;
            ids[n][i] = rq_init_producer_id(&c, &epoch);
            cr_assert_geq(ids[n][i], 0);
        }
        cl_close(&c);
    }
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 3; j++) {
            cr_assert_neq(ids[0][i], ids[1][j], "id %lld given by both", (long long)ids[0][i]);
        }
    }
}

/* ---- with etcd: the session's views and requests ---- */

static void count_brokers(struct server *s, void *arg)
{
    *(uint32_t *)arg = s->view != NULL && !s->view->fenced ? s->view->broker_count : 0;
}

static void wait_brokers(struct node *n, uint32_t count)
{
    int64_t deadline = now_ms() + SETTLE_MS;
    uint32_t seen = 0;
    while (now_ms() < deadline) {
        on_loop(n, count_brokers, &seen);
        if (seen == count) {
            return;
        }
        usleep(10000);
    }
    cr_assert_fail("broker %d sees %u live brokers, wanted %u", n->id, seen, count);
}

/* The node that leads the partition once the view reaches them all. */
static struct node *wait_leader(int count)
{
    int64_t deadline = now_ms() + SETTLE_MS;
    while (now_ms() < deadline) {
        int leaders = 0;
        int followers = 0;
        struct node *leader = NULL;
        for (int i = 0; i < count; i++) {
            struct part_state ps = state_of(&nodes[i], false);
            leaders += ps.exists && ps.role == REPLICA_LEADER;
            followers += ps.exists && ps.role == REPLICA_FOLLOWER;
            leader = ps.exists && ps.role == REPLICA_LEADER ? &nodes[i] : leader;
        }
        if (leaders == 1 && followers == count - 1) {
            return leader;
        }
        usleep(10000);
    }
    cr_assert_fail("no single leader of %s", TOPIC);
    return NULL;
}

Test(replica, brokers_joined_through_etcd_create_a_topic_and_replicate_it)
{
    struct ets e;
    ets_start(&e, 1);
    for (int i = 0; i < 3; i++) {
        node_start_etcd(&nodes[i], i + 1, e.m[0].client_url);
    }
    for (int i = 0; i < 3; i++) {
        wait_brokers(&nodes[i], 3);
    }
    struct cl c;
    cl_connect(&c, nodes[1].s.port, CL_TIMEOUT_MS_DEFAULT * 4);
    struct proto_create_topic t = {.name = proto_str_make(TOPIC),
                                   .partition_count = 1,
                                   .retention_ms = PROTO_CONFIG_UNLIMITED,
                                   .retention_bytes = PROTO_CONFIG_DEFAULT,
                                   .segment_bytes = PROTO_CONFIG_DEFAULT,
                                   .batch_bytes_max = PROTO_CONFIG_DEFAULT,
                                   .replication_factor = 3};
    cr_assert_eq(rq_create_version(&c, 1, &t), 0);
    cr_assert_eq(rq_create_version(&c, 1, &t), -NG_ETOPIC_EXISTS);
    cl_close(&c);
    struct node *leader = wait_leader(3);
    int64_t end = produce(leader, 10, 900, PROTO_ACKS_ALL, 0);
    for (int i = 0; i < 3; i++) {
        wait_written(&nodes[i], end);
        assert_same_logs(leader, &nodes[i]);
    }
    /* Deleted in the cluster: gone from every broker. */
    cl_connect(&c, nodes[2].s.port, CL_TIMEOUT_MS_DEFAULT * 4);
    cr_assert_eq(rq_delete(&c, TOPIC), 0);
    cl_close(&c);
    for (int i = 0; i < 3; i++) {
        int64_t deadline = now_ms() + SETTLE_MS;
        while (state_of(&nodes[i], false).exists && now_ms() < deadline) {
            usleep(10000);
        }
        cr_assert_not(state_of(&nodes[i], false).exists, "broker %d still has it", i + 1);
    }
    for (int i = 0; i < 3; i++) {
        node_stop(&nodes[i]);
    }
    ets_fini(&e);
}

/* A broker that starts while etcd is down (restarting, electing a leader)
 * waits for it and joins, instead of giving up at its first try. */
Test(replica, a_broker_started_while_etcd_is_down_joins_once_it_is_back)
{
    struct ets e;
    ets_start(&e, 1);
    ets_stop(&e, 0, SIGKILL);
    node_launch(&nodes[0], 1, e.m[0].client_url, 0);
    usleep(1500 * 1000); /* only so that the broker meets etcd down first */
    ets_restart(&e, 0);
    node_wait_started(&nodes[0]); /* fails the test if it gave up */
    wait_brokers(&nodes[0], 1);
    node_stop(&nodes[0]);
    ets_fini(&e);
}

/* Waits until n leads the partition with an ISR of isr_count. */
static void wait_isr(struct node *n, uint8_t isr_count)
{
    int64_t deadline = now_ms() + SETTLE_MS;
    struct part_state ps;
    do {
        ps = state_of(n, false);
        if (ps.exists && ps.role == REPLICA_LEADER && ps.isr_count == isr_count) {
            return;
        }
        usleep(10000);
    } while (now_ms() < deadline);
    cr_assert_fail("broker %d: role %d, ISR of %u, wanted %u", n->id, ps.role, ps.isr_count,
                   isr_count);
}

Test(replica, a_leader_takes_a_silent_follower_out_of_the_isr_and_back_once_caught_up)
{
    struct ets e;
    ets_start(&e, 1);
    for (int i = 0; i < 3; i++) {
        node_start_cfg(&nodes[i], i + 1, e.m[0].client_url, 1000);
    }
    for (int i = 0; i < 3; i++) {
        wait_brokers(&nodes[i], 3);
    }
    struct cl c;
    cl_connect(&c, nodes[0].s.port, CL_TIMEOUT_MS_DEFAULT * 4);
    struct proto_create_topic t = {.name = proto_str_make(TOPIC),
                                   .partition_count = 1,
                                   .retention_ms = PROTO_CONFIG_UNLIMITED,
                                   .retention_bytes = PROTO_CONFIG_DEFAULT,
                                   .segment_bytes = PROTO_CONFIG_DEFAULT,
                                   .batch_bytes_max = PROTO_CONFIG_DEFAULT,
                                   .replication_factor = 3};
    cr_assert_eq(rq_create_version(&c, 1, &t), 0);
    cl_close(&c);
    struct node *leader = wait_leader(3);
    struct node *follower = &nodes[leader == &nodes[2] ? 1 : 2];
    int64_t end = produce(leader, 2, 1000, PROTO_ACKS_ALL, 0);
    /* A follower goes quiet: the leader drops it from the ISR through
     * etcd, and acks=all goes on with the two left (min_insync 2). */
    node_stop(follower);
    wait_isr(leader, 2);
    end = produce(leader, 3, 1100, PROTO_ACKS_ALL, 0);
    /* It comes back, catches up, and is taken back. */
    node_start_cfg(follower, follower->id, e.m[0].client_url, 1000);
    wait_written(follower, end);
    wait_isr(leader, 3);
    assert_same_logs(leader, follower);
    for (int i = 0; i < 3; i++) {
        node_stop(&nodes[i]);
    }
    ets_fini(&e);
}
