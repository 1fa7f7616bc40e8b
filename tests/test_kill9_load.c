/*
 * kill -9 under load: the real nagared serves an
 * idempotent producer (acks=all) and a stream of offset commits; it is
 * killed with SIGKILL at random moments and started again on its data
 * directory. After every restart: every acknowledged record is there
 * exactly once (no record written twice, even when the producer retried
 * across the crash), and the committed offset never moved back past the
 * last acknowledged commit. Recovery time (spawn to listening) is logged.
 * NAGARE_KILL9_CYCLES sets the cycles (default 100).
 */
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client/nagare.h"
#include "tests/broker_support.h"

#define CYCLES_DEFAULT 100
#define IDS_MAX 400000
#define TOPIC "load"
#define PARTITIONS 2

static struct bk B;
static uint8_t acked[IDS_MAX]; /* 1: the record with this id was acknowledged */
static uint8_t seen[IDS_MAX];  /* times the record with this id was read */
static uint32_t next_id;
static int64_t commit_acked = -1; /* highest acknowledged committed offset */

static void setup(void) { bk_init(&B); }
static void teardown(void) { bk_fini(&B); }

TestSuite(kill9, .init = setup, .fini = teardown, .timeout = 900);

static void on_delivery(const struct nagare_delivery *d, void *opaque)
{
    (void)opaque;
    uint32_t id = (uint32_t)(uintptr_t)d->opaque;
    if (d->err == 0) {
        acked[id] = 1;
    }
}

static nagare_producer *producer(void)
{
    struct nagare_producer_config c;
    nagare_producer_config_default(&c);
    c.bootstrap = B.bootstrap;
    c.acks = -1;
    c.linger_ms = 1;
    c.request_timeout_ms = 2000;
    c.delivery_timeout_ms = 60000;
    c.on_delivery = on_delivery;
    nagare_producer *p;
    int rc = nagare_producer_new(&c, &p);
    cr_assert_eq(rc, 0, "producer: %s", nagare_strerror(rc));
    return p;
}

/* One OffsetCommit of `offset` for group g, partition 0; returns its error. */
static int commit(struct cl *c, int64_t offset)
{
    uint32_t corr = cl_next_corr(c);
    struct proto_enc e;
    struct proto_offset_commit_req req = {
        .group = proto_str_make("g"), .member_id = PROTO_STR_NULL, .generation = -1};
    proto_offset_commit_req_begin(&e, cl_wr(c), 0, corr, proto_str_make("kill9"), &req);
    proto_enc_topic(&e, proto_str_make(TOPIC));
    proto_offset_commit_req_partition(&e, &(struct proto_offset_commit_req_partition){0, offset});
    cr_assert_eq(proto_enc_end(&e), 0);
    if (cl_send_wr(c) != 0) {
        return -NG_EDISCONNECTED;
    }
    struct proto_resp_header h;
    struct rd body;
    int rc = cl_recv(c, &h, &body);
    if (rc != 0 || h.err != 0) {
        return rc != 0 ? rc : h.err;
    }
    struct proto_dec d;
    struct proto_topic t;
    struct proto_partition_result r = {.err = -NG_EPROTO};
    if (proto_offset_commit_resp_decode(&body, 0, &d) == 0 && proto_next_topic(&d, &t)) {
        (void)proto_next_partition_result(&d, &r);
    }
    return r.err;
}

static int64_t committed(struct cl *c)
{
    uint32_t corr = cl_next_corr(c);
    struct proto_enc e;
    proto_offset_fetch_req_begin(&e, cl_wr(c), 0, corr, proto_str_make("kill9"),
                                 proto_str_make("g"), false);
    proto_enc_topic(&e, proto_str_make(TOPIC));
    proto_enc_partition_index(&e, 0);
    cr_assert_eq(proto_enc_end(&e), 0);
    cr_assert_eq(cl_send_wr(c), 0);
    struct rd body;
    cl_expect(c, corr, &body);
    struct proto_dec d;
    struct proto_topic t;
    struct proto_partition_offset po = {.offset = -1};
    cr_assert_eq(proto_offset_fetch_resp_decode(&body, 0, &d), 0);
    cr_assert(proto_next_topic(&d, &t) && proto_next_partition_offset(&d, &po));
    return po.offset;
}

/* Waits until the killed broker's port can be bound again: io_uring tears
 * a dead process's ring down asynchronously, so its listening socket can
 * outlive it by a few milliseconds. */
static void wait_port_free(uint16_t port)
{
    for (int i = 0; i < 500; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons(port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int rc = bind(fd, (struct sockaddr *)&a, sizeof(a));
        close(fd);
        if (rc == 0) {
            return;
        }
        usleep(10000);
    }
    cr_assert_fail("port %u still taken 5 s after the broker died", port);
}

/* Produces and commits for about ms, then sends one more commit without
 * waiting for it and kills the broker: records are in flight too. */
static void load_then_kill(nagare_producer *p, int cycle, int ms)
{
    struct cl c;
    cl_connect(&c, B.port, 5000);
    int64_t until = clock_mono_ms() + ms;
    int64_t offset = (int64_t)cycle * 100000;
    while (clock_mono_ms() < until) {
        for (int i = 0; i < 6 && next_id < IDS_MAX; i++) {
            char value[16];
            int len = snprintf(value, sizeof(value), "%u", next_id);
            struct nagare_record r = {.topic = TOPIC,
                                      .partition = NAGARE_PARTITION_ANY,
                                      .key_len = -1,
                                      .value = value,
                                      .value_len = len,
                                      .opaque = (void *)(uintptr_t)next_id};
            if (nagare_send(p, &r) == 0) {
                next_id++;
            }
        }
        cr_assert_geq(nagare_producer_poll(p, 0), 0);
        if (commit(&c, ++offset) == 0 && offset > commit_acked) {
            commit_acked = offset;
        }
    }
    /* and one whose answer never comes */
    uint32_t corr = cl_next_corr(&c);
    struct proto_enc e;
    struct proto_offset_commit_req req = {
        .group = proto_str_make("g"), .member_id = PROTO_STR_NULL, .generation = -1};
    proto_offset_commit_req_begin(&e, cl_wr(&c), 0, corr, proto_str_make("kill9"), &req);
    proto_enc_topic(&e, proto_str_make(TOPIC));
    proto_offset_commit_req_partition(&e,
                                      &(struct proto_offset_commit_req_partition){0, offset + 1});
    cr_assert_eq(proto_enc_end(&e), 0);
    (void)cl_send_wr(&c);
    cr_assert_eq(kill(B.pid, SIGKILL), 0);
    int status;
    cr_assert_eq(waitpid(B.pid, &status, 0), B.pid);
    B.pid = 0;
    cl_close(&c);
    wait_port_free(B.port);
}

/* Reads every record of the topic and checks each acknowledged one is there
 * exactly once and nothing is there twice. */
static void check_records(int cycle)
{
    memset(seen, 0, sizeof(seen));
    struct nagare_consumer_config cc;
    nagare_consumer_config_default(&cc);
    cc.bootstrap = B.bootstrap;
    cc.fetch_wait_max_ms = 0;
    nagare_consumer *k;
    cr_assert_eq(nagare_consumer_new(&cc, &k), 0);
    nagare_admin *a;
    cr_assert_eq(nagare_admin_new(B.bootstrap, 5000, &a), 0);
    uint64_t total = 0;
    for (int32_t part = 0; part < PARTITIONS; part++) {
        int64_t end;
        cr_assert_eq(nagare_offset_lookup(a, TOPIC, part, NAGARE_OFFSET_END, &end), 0);
        total += (uint64_t)end;
        cr_assert_eq(nagare_consumer_assign(k, TOPIC, part, NAGARE_OFFSET_BEGINNING), 0);
    }
    for (uint64_t n = 0; n < total; n++) {
        const struct nagare_message *m;
        cr_assert_eq(nagare_consumer_poll(k, 10000, &m), 1, "cycle %d: record %llu of %llu", cycle,
                     (unsigned long long)n, (unsigned long long)total);
        char text[16] = {0};
        memcpy(text, m->value, (size_t)m->value_len < 15 ? (size_t)m->value_len : 15);
        uint32_t id = (uint32_t)strtoul(text, NULL, 10);
        cr_assert_lt(id, next_id);
        cr_assert_eq(++seen[id], 1, "cycle %d: record %u written twice", cycle, id);
    }
    for (uint32_t id = 0; id < next_id; id++) {
        cr_assert(!acked[id] || seen[id] == 1, "cycle %d: acknowledged record %u lost", cycle, id);
    }
    nagare_admin_destroy(a);
    nagare_consumer_destroy(k);
}

Test(kill9, nothing_acknowledged_is_lost_and_commits_never_go_back)
{
    const char *env = getenv("NAGARE_KILL9_CYCLES");
    int cycles = env ? atoi(env) : CYCLES_DEFAULT;
    unsigned seed = (unsigned)time(NULL);
    srand(seed);
    bk_start(&B);
    snprintf(B.listen_same, sizeof(B.listen_same), "listen=127.0.0.1:%u", B.port);
    bk_set(&B, B.listen_same); /* every restart below keeps the port */
    struct cl c;
    cl_connect(&c, B.port, 5000);
    cr_assert_eq(rq_create(&c, TOPIC, PARTITIONS), 0);
    cl_close(&c);
    int64_t recovery_max = 0;
    int64_t recovery_total = 0;
    for (int cycle = 1; cycle <= cycles; cycle++) {
        nagare_producer *p = producer();
        load_then_kill(p, cycle, 20 + rand() % 200);
        int64_t t0 = clock_mono_ms();
        bk_start(&B);
        int64_t recovery = clock_mono_ms() - t0;
        recovery_total += recovery;
        recovery_max = recovery > recovery_max ? recovery : recovery_max;
        cr_assert_eq(nagare_producer_flush(p, 60000), 0, "cycle %d: flush", cycle);
        nagare_producer_destroy(p);
        check_records(cycle);
        cl_connect(&c, B.port, 5000);
        int64_t now = committed(&c);
        cl_close(&c);
        cr_assert_geq(now, commit_acked, "cycle %d: committed offset went back", cycle);
    }
    cr_log_info("kill -9 under load: %d cycles (seed %u), %u records sent, recovery avg %lld ms, "
                "max %lld ms",
                cycles, seed, next_id, (long long)(recovery_total / cycles),
                (long long)recovery_max);
    bk_stop(&B);
}
