/* Integration tests for libnagare (client/nagare.h), all against the real
 * nagared on an ephemeral port (tests/broker_support.h): producer, consumer
 * and admin client, retries across a broker restart, a broker that cannot
 * be reached. */
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "client/conn.h"
#include "client/nagare.h"
#include "tests/broker_support.h"
#include "tests/client_support.h"

/* Record timestamps: a fixed epoch, so time lookups are exact. */
#define T0 1700000000000LL
#define WAIT_MS 30000

static struct bk B;

static void setup(void) { bk_init(&B); }
static void teardown(void) { bk_fini(&B); }

TestSuite(client, .init = setup, .fini = teardown, .timeout = 240);

/* ---- the records of a test: value i is derived from i and a seed ---- */

#define VALUE_BYTES_MAX 300

static size_t value_of(uint32_t seed, uint32_t i, uint8_t *out)
{
    size_t n = 8 + (i * 7919u + seed) % (VALUE_BYTES_MAX - 8);
    put_be32(out, seed);
    put_be32(out + 4, i);
    for (size_t k = 8; k < n; k++) {
        out[k] = (uint8_t)(i * 31 + k * 17 + seed);
    }
    return n;
}

static uint32_t value_index(const struct nagare_message *m)
{
    cr_assert_geq(m->value_len, 8);
    return get_be32((const uint8_t *)m->value + 4);
}

static void value_check(const struct nagare_message *m, uint32_t seed)
{
    uint8_t want[VALUE_BYTES_MAX];
    uint32_t i = value_index(m);
    size_t n = value_of(seed, i, want);
    cr_assert_eq((size_t)m->value_len, n, "record %u: value length", i);
    cr_assert_eq(memcmp(m->value, want, n), 0, "record %u: value bytes", i);
}

/* ---- delivery reports ---- */

struct reports {
    uint32_t count;
    uint32_t failed;
    int first_err;
    int32_t *partition; /* by record index */
    int64_t *offset;
    uint32_t *delivered; /* reports per record */
    uint32_t records;
};

static void reports_init(struct reports *r, uint32_t records)
{
    *r = (struct reports){.records = records};
    r->partition = calloc(records, sizeof(*r->partition));
    r->offset = calloc(records, sizeof(*r->offset));
    r->delivered = calloc(records, sizeof(*r->delivered));
    cr_assert(r->partition && r->offset && r->delivered);
}

static void reports_fini(struct reports *r)
{
    free(r->partition);
    free(r->offset);
    free(r->delivered);
}

static void on_delivery(const struct nagare_delivery *d, void *opaque)
{
    struct reports *r = opaque;
    uint32_t i = (uint32_t)(uintptr_t)d->opaque;
    r->count++;
    if (d->err != 0) {
        r->failed++;
        r->first_err = r->first_err != 0 ? r->first_err : d->err;
    }
    if (i < r->records) {
        r->delivered[i]++;
        r->partition[i] = d->partition;
        r->offset[i] = d->offset;
    }
}

static nagare_producer *producer(struct reports *r, void (*tune)(struct nagare_producer_config *))
{
    struct nagare_producer_config c;
    nagare_producer_config_default(&c);
    c.bootstrap = B.bootstrap;
    c.on_delivery = on_delivery;
    c.opaque = r;
    if (tune != NULL) {
        tune(&c);
    }
    nagare_producer *p;
    int rc = nagare_producer_new(&c, &p);
    cr_assert_eq(rc, 0, "producer: %s", nagare_strerror(rc));
    return p;
}

/* Sends, polling while the buffer is full. */
static void send_record(nagare_producer *p, const struct nagare_record *rec)
{
    for (;;) {
        int rc = nagare_send(p, rec);
        if (rc != -NAGARE_EBUSY) {
            cr_assert_eq(rc, 0, "send: %s", nagare_strerror(rc));
            return;
        }
        rc = nagare_producer_poll(p, 100);
        cr_assert_geq(rc, 0, "poll: %s", nagare_strerror(rc));
    }
}

static void flush_ok(nagare_producer *p, struct reports *r, uint32_t expect)
{
    int rc = nagare_producer_flush(p, 60000);
    cr_assert_eq(rc, 0, "flush: %s", nagare_strerror(rc));
    cr_assert_eq(nagare_producer_outstanding(p), 0);
    cr_assert_eq(r->count, expect, "reports");
    cr_assert_eq(r->failed, 0, "failed reports, first: %s", nagare_strerror(r->first_err));
}

static nagare_consumer *consumer(enum nagare_offset_reset reset)
{
    struct nagare_consumer_config c;
    nagare_consumer_config_default(&c);
    c.bootstrap = B.bootstrap;
    c.reset = reset;
    nagare_consumer *k;
    int rc = nagare_consumer_new(&c, &k);
    cr_assert_eq(rc, 0, "consumer: %s", nagare_strerror(rc));
    return k;
}

static const struct nagare_message *next_msg(nagare_consumer *k)
{
    const struct nagare_message *m = NULL;
    int rc = nagare_consumer_poll(k, WAIT_MS, &m);
    cr_assert_eq(rc, 1, "poll: %d %s", rc, rc < 0 ? nagare_strerror(rc) : "nothing came");
    return m;
}

static void assign_ok(nagare_consumer *k, const char *topic, int32_t partition, int64_t offset)
{
    int rc = nagare_consumer_assign(k, topic, partition, offset);
    cr_assert_eq(rc, 0, "assign %s/%d: %s", topic, partition, nagare_strerror(rc));
}

/* ---- unreachable broker ---- */

/* A port nothing listens on: bound, then closed. */
static uint16_t closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t len = sizeof(sa);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

Test(client, unreachable_broker_fails_fast_with_a_clear_error)
{
    snprintf(B.bootstrap, sizeof(B.bootstrap), "127.0.0.1:%u", closed_port());
    struct nagare_producer_config pc;
    nagare_producer_config_default(&pc);
    pc.bootstrap = B.bootstrap;
    pc.request_timeout_ms = 60000; /* "at once" is far from it, on any machine */
    nagare_producer *p = (nagare_producer *)1;
    int64_t t = clock_mono_ms();
    int rc = nagare_producer_new(&pc, &p);
    cr_assert_eq(rc, -ECONNREFUSED, "producer: %s", nagare_strerror(rc));
    cr_assert_null(p);
    cr_assert_str_eq(nagare_strerror(rc), strerror(ECONNREFUSED));

    struct nagare_consumer_config cc;
    nagare_consumer_config_default(&cc);
    cc.bootstrap = B.bootstrap;
    nagare_consumer *k;
    cr_assert_eq(nagare_consumer_new(&cc, &k), -ECONNREFUSED);
    nagare_admin *a;
    cr_assert_eq(nagare_admin_new(B.bootstrap, 60000, &a), -ECONNREFUSED);
    cr_assert_lt(clock_mono_ms() - t, 30000,
                 "refused connections fail at once, not at the timeout");

    /* Something that accepts and never answers: the handshake times out. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(listen(fd, 4), 0);
    socklen_t len = sizeof(sa);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    snprintf(B.bootstrap, sizeof(B.bootstrap), "127.0.0.1:%u", ntohs(sa.sin_port));
    pc.request_timeout_ms = 500;
    t = clock_mono_ms();
    rc = nagare_producer_new(&pc, &p);
    int64_t took = clock_mono_ms() - t;
    cr_assert_eq(rc, -NAGARE_ETIMEOUT, "silent broker: %s", nagare_strerror(rc));
    cr_assert(took >= 450, "not before its timeout: took %lld ms", (long long)took);
    cr_assert_eq(nagare_admin_new(B.bootstrap, 300, &a), -NAGARE_ETIMEOUT);
    close(fd);

    /* A bad address is refused before anything is tried. */
    pc.bootstrap = "no-port-here";
    cr_assert_eq(nagare_producer_new(&pc, &p), -NAGARE_EBADARG);
}

/* ---- 100,000 keyed records over 4 partitions ---- */

#define KEYED_RECORDS 100000
#define KEYED_KEYS 1000

static int key_of(uint32_t i, char *out) { return sprintf(out, "key-%u", i % KEYED_KEYS); }

static void produce_keyed(nagare_producer *p, const char *topic, uint32_t seed, uint32_t count)
{
    uint8_t value[VALUE_BYTES_MAX];
    char key[32];
    for (uint32_t i = 0; i < count; i++) {
        struct nagare_record rec = {.topic = topic,
                                    .partition = NAGARE_PARTITION_ANY,
                                    .key = key,
                                    .key_len = key_of(i, key),
                                    .value = value,
                                    .value_len = (ssize_t)value_of(seed, i, value),
                                    .timestamp_ms = T0 + i,
                                    .opaque = (void *)(uintptr_t)i};
        send_record(p, &rec);
    }
}

Test(client, keyed_records_round_trip_over_four_partitions)
{
    bk_start(&B);
    cs_create_topic(&B, "keyed", 4);
    struct reports r;
    reports_init(&r, KEYED_RECORDS);
    nagare_producer *p = producer(&r, NULL);
    produce_keyed(p, "keyed", 7, KEYED_RECORDS);
    flush_ok(p, &r, KEYED_RECORDS);
    nagare_producer_destroy(p);

    /* Same key, same partition: XXH3-64(key) mod 4. */
    int32_t key_part[KEYED_KEYS];
    for (uint32_t k = 0; k < KEYED_KEYS; k++) {
        char key[32];
        int n = sprintf(key, "key-%u", k);
        key_part[k] = (int32_t)(XXH3_64bits(key, (size_t)n) % 4);
    }
    uint32_t per_part[4] = {0};
    for (uint32_t i = 0; i < KEYED_RECORDS; i++) {
        cr_assert_eq(r.delivered[i], 1);
        cr_assert_eq(r.partition[i], key_part[i % KEYED_KEYS], "record %u", i);
        per_part[r.partition[i]]++;
    }
    for (int k = 0; k < 4; k++) {
        cr_assert_gt(per_part[k], KEYED_RECORDS / 8, "partition %d is used", k);
    }

    nagare_consumer *c = consumer(NAGARE_RESET_EARLIEST);
    for (int32_t k = 0; k < 4; k++) {
        assign_ok(c, "keyed", k, NAGARE_OFFSET_BEGINNING);
    }
    uint8_t *seen = calloc(KEYED_RECORDS, 1);
    int64_t last_index[4] = {-1, -1, -1, -1};
    int64_t next_offset[4] = {0};
    for (uint32_t n = 0; n < KEYED_RECORDS; n++) {
        const struct nagare_message *m = next_msg(c);
        cr_assert_str_eq(m->topic, "keyed");
        uint32_t i = value_index(m);
        cr_assert_lt(i, KEYED_RECORDS);
        cr_assert_eq(seen[i], 0, "record %u twice", i);
        seen[i] = 1;
        value_check(m, 7);
        char key[32];
        int kn = key_of(i, key);
        cr_assert_eq(m->key_len, kn);
        cr_assert_eq(memcmp(m->key, key, (size_t)kn), 0);
        cr_assert_eq(m->partition, r.partition[i]);
        cr_assert_eq(m->offset, r.offset[i], "record %u: offset as reported", i);
        cr_assert_eq(m->offset, next_offset[m->partition], "offsets in order, no gap");
        next_offset[m->partition]++;
        cr_assert_gt((int64_t)i, last_index[m->partition], "partition order kept");
        last_index[m->partition] = i;
        cr_assert_eq(m->timestamp_ms, T0 + i);
        cr_assert_eq(m->header_count, 0);
    }
    const struct nagare_message *m;
    cr_assert_eq(nagare_consumer_poll(c, 200, &m), 0, "nothing more");
    free(seen);
    nagare_consumer_destroy(c);
    reports_fini(&r);
    bk_stop(&B);
}

/* ---- replay ---- */

#define REPLAY_RECORDS 3000

static void produce_plain(nagare_producer *p, const char *topic, int32_t partition, uint32_t seed,
                          uint32_t from, uint32_t count)
{
    uint8_t value[VALUE_BYTES_MAX];
    for (uint32_t i = from; i < from + count; i++) {
        struct nagare_record rec = {.topic = topic,
                                    .partition = partition,
                                    .key_len = -1,
                                    .value = value,
                                    .value_len = (ssize_t)value_of(seed, i, value),
                                    .timestamp_ms = T0 + 10 * (int64_t)i,
                                    .opaque = (void *)(uintptr_t)i};
        send_record(p, &rec);
    }
}

/* Produces count plain records (produce_plain from 0) to topic's partition
 * with a producer of its own, flushed and checked: every record reported
 * delivered. */
static void produce_flushed(const char *topic, int32_t partition, uint32_t seed, uint32_t count,
                            void (*tune)(struct nagare_producer_config *))
{
    struct reports r;
    reports_init(&r, count);
    nagare_producer *p = producer(&r, tune);
    produce_plain(p, topic, partition, seed, 0, count);
    flush_ok(p, &r, count);
    nagare_producer_destroy(p);
    reports_fini(&r);
}

static void expect_from(nagare_consumer *c, uint32_t first, uint32_t count, uint32_t seed)
{
    for (uint32_t i = first; i < first + count; i++) {
        const struct nagare_message *m = next_msg(c);
        cr_assert_eq(value_index(m), i, "expected record %u", i);
        cr_assert_eq(m->offset, (int64_t)i);
        cr_assert_eq(m->timestamp_ms, T0 + 10 * (int64_t)i);
        value_check(m, seed);
    }
}

Test(client, replay_from_the_middle_by_offset_and_by_timestamp)
{
    bk_start(&B);
    cs_create_topic(&B, "replay", 1);
    struct reports r;
    reports_init(&r, REPLAY_RECORDS);
    nagare_producer *p = producer(&r, NULL);
    /* Several flushes: many batches, so lookups land inside and between them. */
    for (uint32_t k = 0; k < 10; k++) {
        produce_plain(p, "replay", 0, 3, k * 300, 300);
        cr_assert_eq(nagare_producer_flush(p, 30000), 0);
    }
    flush_ok(p, &r, REPLAY_RECORDS);
    nagare_producer_destroy(p);

    nagare_consumer *c = consumer(NAGARE_RESET_EARLIEST);
    assign_ok(c, "replay", 0, 1234);
    expect_from(c, 1234, 10, 3);
    int64_t pos;
    cr_assert_eq(nagare_consumer_position(c, "replay", 0, &pos), 0);
    cr_assert_eq(pos, 1244);

    cr_assert_eq(nagare_consumer_seek(c, "replay", 0, 1500), 0);
    expect_from(c, 1500, 100, 3);
    /* By time: record i has timestamp T0 + 10 i; T0 + 10 * 2222 - 5 finds 2222. */
    cr_assert_eq(nagare_consumer_seek_time(c, "replay", 0, T0 + 10 * 2222 - 5), 0);
    expect_from(c, 2222, 50, 3);
    cr_assert_eq(nagare_consumer_seek_time(c, "replay", 0, T0 + 10 * 700), 0);
    expect_from(c, 700, 5, 3);
    cr_assert_eq(nagare_consumer_seek(c, "replay", 0, NAGARE_OFFSET_BEGINNING), 0);
    expect_from(c, 0, 5, 3);
    /* Past the last timestamp: the end, where nothing is yet. */
    cr_assert_eq(nagare_consumer_seek_time(c, "replay", 0, T0 + 10 * REPLAY_RECORDS), 0);
    cr_assert_eq(nagare_consumer_position(c, "replay", 0, &pos), 0);
    cr_assert_eq(pos, REPLAY_RECORDS);
    const struct nagare_message *m;
    cr_assert_eq(nagare_consumer_poll(c, 300, &m), 0);
    cr_assert_eq(nagare_consumer_seek(c, "replay", 0, NAGARE_OFFSET_END), 0);
    cr_assert_eq(nagare_consumer_poll(c, 300, &m), 0);
    cr_assert_eq(nagare_consumer_seek(c, "nope", 0, 0), -NAGARE_ENOTFOUND);

    /* The same lookups through the admin client. */
    nagare_admin *a = cs_admin(&B);
    int64_t off;
    cr_assert_eq(nagare_offset_lookup(a, "replay", 0, T0 + 10 * 2222, &off), 0);
    cr_assert_eq(off, 2222);
    cr_assert_eq(nagare_offset_lookup(a, "replay", 0, NAGARE_OFFSET_BEGINNING, &off), 0);
    cr_assert_eq(off, 0);
    cr_assert_eq(nagare_offset_lookup(a, "replay", 0, NAGARE_OFFSET_END, &off), 0);
    cr_assert_eq(off, REPLAY_RECORDS);
    cr_assert_eq(nagare_offset_lookup(a, "replay", 5, 0, &off), -NAGARE_EUNKNOWN_TOPIC);
    nagare_admin_destroy(a);

    /* A live consumer sees new records arrive (long poll). */
    p = producer(&r, NULL);
    produce_plain(p, "replay", 0, 3, REPLAY_RECORDS, 1);
    cr_assert_eq(nagare_producer_flush(p, 30000), 0);
    nagare_producer_destroy(p);
    expect_from(c, REPLAY_RECORDS, 1, 3);
    nagare_consumer_destroy(c);
    reports_fini(&r);
    bk_stop(&B);
}

/* ---- idempotent retries across a broker restart ---- */

#define RESTART_RECORDS 40000

static void tune_restart(struct nagare_producer_config *c)
{
    c->request_timeout_ms = 5000;
    c->delivery_timeout_ms = 60000;
    c->linger_ms = 2;
    c->batch_bytes = 16 * 1024; /* many batches in flight when the broker dies */
}

/* Consumes count records of `partitions` partitions and checks that each
 * index in [0, count) came exactly once. */
static void expect_exactly_once(const char *topic, int32_t partitions, uint32_t count,
                                uint32_t seed)
{
    nagare_consumer *c = consumer(NAGARE_RESET_EARLIEST);
    for (int32_t k = 0; k < partitions; k++) {
        assign_ok(c, topic, k, NAGARE_OFFSET_BEGINNING);
    }
    uint8_t *seen = calloc(count, 1);
    for (uint32_t n = 0; n < count; n++) {
        const struct nagare_message *m = next_msg(c);
        uint32_t i = value_index(m);
        cr_assert_lt(i, count);
        cr_assert_eq(seen[i], 0, "record %u twice (offset %lld)", i, (long long)m->offset);
        seen[i] = 1;
        value_check(m, seed);
    }
    const struct nagare_message *m;
    int rc = nagare_consumer_poll(c, 500, &m);
    cr_assert_eq(rc, 0, "a record past the %u sent: %u", count, rc == 1 ? value_index(m) : 0);
    free(seen);
    nagare_consumer_destroy(c);
}

static void restart_run(int down_ms, bool after)
{
    bk_start(&B);
    cs_create_topic(&B, "restart", 3);
    struct reports r;
    reports_init(&r, RESTART_RECORDS);
    nagare_producer *p = producer(&r, tune_restart);
    produce_keyed(p, "restart", 11, RESTART_RECORDS / 2);
    if (after) {
        cr_assert_eq(nagare_producer_flush(p, 30000), 0);
    } else {
        /* Let some batches go out: they are in flight (or written, not
         * yet answered) when the broker dies. */
        cr_assert_geq(nagare_producer_poll(p, 0), 0);
        cr_assert_gt(nagare_producer_outstanding(p), 0, "records in flight or queued");
    }
    bk_kill_restart(&B, down_ms);
    uint8_t value[VALUE_BYTES_MAX];
    char key[32];
    for (uint32_t i = RESTART_RECORDS / 2; i < RESTART_RECORDS; i++) {
        struct nagare_record rec = {.topic = "restart",
                                    .partition = NAGARE_PARTITION_ANY,
                                    .key = key,
                                    .key_len = key_of(i, key),
                                    .value = value,
                                    .value_len = (ssize_t)value_of(11, i, value),
                                    .opaque = (void *)(uintptr_t)i};
        send_record(p, &rec);
    }
    flush_ok(p, &r, RESTART_RECORDS);
    for (uint32_t i = 0; i < RESTART_RECORDS; i++) {
        cr_assert_eq(r.delivered[i], 1, "record %u: %u reports", i, r.delivered[i]);
    }
    nagare_producer_destroy(p);
    expect_exactly_once("restart", 3, RESTART_RECORDS, 11);
    reports_fini(&r);
    bk_stop(&B);
}

Test(client, idempotent_retries_across_a_broker_kill_write_each_record_once)
{
    restart_run(300, false);
}

Test(client, idempotent_retries_after_a_restart_between_flushes) { restart_run(50, true); }

/* ---- a proxy that can swallow the broker's answers ---- */

/* Forwards one connection at a time between the client and the broker.
 * With `drop` set, the broker's answers are read and thrown away: requests
 * reach the broker and are written, their answers never arrive, the client
 * times out, reconnects and sends the same batches again. */
struct proxy {
    int listen_fd;
    uint16_t port;
    uint16_t target;
    pthread_t thread;
    atomic_bool drop;
    atomic_bool stop;
    atomic_ulong dropped_bytes;
    atomic_uint accepted;
};

static int proxy_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Moves what is readable on from to to (or drops it). False at EOF/error. */
static bool proxy_pump(struct proxy *px, int from, int to, bool drop)
{
    uint8_t buf[65536];
    ssize_t n = read(from, buf, sizeof(buf));
    if (n <= 0) {
        return false;
    }
    if (drop) {
        atomic_fetch_add(&px->dropped_bytes, (unsigned long)n);
        return true;
    }
    for (ssize_t at = 0; at < n;) {
        ssize_t k = send(to, buf + at, (size_t)(n - at), MSG_NOSIGNAL);
        if (k <= 0) {
            return false;
        }
        at += k;
    }
    return true;
}

static void proxy_session(struct proxy *px, int client)
{
    int broker = proxy_connect(px->target);
    while (broker >= 0 && !atomic_load(&px->stop)) {
        struct pollfd fds[3] = {{.fd = client, .events = POLLIN},
                                {.fd = broker, .events = POLLIN},
                                {.fd = px->listen_fd, .events = POLLIN}};
        if (poll(fds, 3, 50) < 0) {
            break;
        }
        if (fds[2].revents != 0) {
            break; /* the client gave up on this connection and made another */
        }
        if (fds[0].revents != 0 && !proxy_pump(px, client, broker, false)) {
            break;
        }
        if (fds[1].revents != 0 && !proxy_pump(px, broker, client, atomic_load(&px->drop))) {
            break;
        }
    }
    if (broker >= 0) {
        close(broker);
    }
    close(client);
}

static void *proxy_main(void *arg)
{
    struct proxy *px = arg;
    while (!atomic_load(&px->stop)) {
        struct pollfd pfd = {.fd = px->listen_fd, .events = POLLIN};
        if (poll(&pfd, 1, 50) <= 0) {
            continue;
        }
        int client = accept(px->listen_fd, NULL, NULL);
        if (client >= 0) {
            atomic_fetch_add(&px->accepted, 1);
            proxy_session(px, client);
        }
    }
    return NULL;
}

static void proxy_start(struct proxy *px, uint16_t target)
{
    memset(px, 0, sizeof(*px));
    px->target = target;
    px->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(px->listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(listen(px->listen_fd, 8), 0);
    socklen_t len = sizeof(sa);
    cr_assert_eq(getsockname(px->listen_fd, (struct sockaddr *)&sa, &len), 0);
    px->port = ntohs(sa.sin_port);
    cr_assert_eq(pthread_create(&px->thread, NULL, proxy_main, px), 0);
}

static void proxy_stop(struct proxy *px)
{
    atomic_store(&px->stop, true);
    pthread_join(px->thread, NULL);
    close(px->listen_fd);
}

/* The sum of the log end offsets of a topic's partitions. */
static int64_t log_end_total(const char *topic)
{
    nagare_admin *a = cs_admin(&B);
    const struct nagare_topic_info *t;
    size_t n;
    int rc = nagare_topics_describe(a, topic, &t, &n);
    cr_assert_eq(rc, 0, "describe: %s", nagare_strerror(rc));
    int64_t total = 0;
    for (size_t k = 0; k < t->partition_count; k++) {
        total += t->partitions[k].offset_latest;
    }
    nagare_topics_free(a, t);
    nagare_admin_destroy(a);
    return total;
}

static void tune_proxy(struct nagare_producer_config *c)
{
    c->request_timeout_ms = 1000;
    c->batch_bytes = 8 * 1024;
    c->linger_ms = 1;
}

Test(client, batches_written_but_unanswered_are_resent_and_not_duplicated)
{
    bk_start(&B);
    cs_create_topic(&B, "dup", 2);
    struct proxy px;
    proxy_start(&px, B.port);
    char direct[64];
    memcpy(direct, B.bootstrap, sizeof(direct));
    snprintf(B.bootstrap, sizeof(B.bootstrap), "127.0.0.1:%u", px.port);
    struct reports r;
    reports_init(&r, 5000);
    nagare_producer *p = producer(&r, tune_proxy);
    memcpy(B.bootstrap, direct, sizeof(direct));

    /* Metadata first (its answer must get through), then answers vanish. */
    produce_keyed(p, "dup", 5, 1);
    cr_assert_eq(nagare_producer_flush(p, 10000), 0);
    atomic_store(&px.drop, true);
    uint8_t value[VALUE_BYTES_MAX];
    char key[32];
    for (uint32_t i = 1; i < 5000; i++) {
        struct nagare_record rec = {.topic = "dup",
                                    .partition = NAGARE_PARTITION_ANY,
                                    .key = key,
                                    .key_len = key_of(i, key),
                                    .value = value,
                                    .value_len = (ssize_t)value_of(5, i, value),
                                    .opaque = (void *)(uintptr_t)i};
        send_record(p, &rec);
    }
    /* Poll until the broker stops growing the log: every request that went
     * out is written, no answer came back. */
    int64_t written = -1;
    for (int stable = 0; stable < 3;) {
        cr_assert_geq(nagare_producer_poll(p, 150), 0);
        int64_t now = log_end_total("dup");
        stable = now == written && now > 1 ? stable + 1 : 0;
        written = now;
    }
    cr_assert_eq(r.count, 1, "no answer got through");
    cr_assert_gt(atomic_load(&px.dropped_bytes), 0);
    cr_assert_lt(written, 5000, "the pipeline is bounded");

    atomic_store(&px.drop, false);
    flush_ok(p, &r, 5000);
    cr_assert_geq(atomic_load(&px.accepted), 2, "the producer reconnected");
    nagare_producer_destroy(p);
    proxy_stop(&px);

    /* The resent batches were answered with their first offsets. */
    cr_assert_eq(log_end_total("dup"), 5000, "nothing written twice");
    nagare_consumer *c = consumer(NAGARE_RESET_EARLIEST);
    assign_ok(c, "dup", 0, NAGARE_OFFSET_BEGINNING);
    assign_ok(c, "dup", 1, NAGARE_OFFSET_BEGINNING);
    for (uint32_t n = 0; n < 5000; n++) {
        const struct nagare_message *m = next_msg(c);
        uint32_t i = value_index(m);
        cr_assert_eq(r.partition[i], m->partition);
        cr_assert_eq(r.offset[i], m->offset, "record %u: reported offset", i);
    }
    nagare_consumer_destroy(c);
    reports_fini(&r);
    bk_stop(&B);
}

/* ---- acks ---- */

static int acks_now;

static void tune_acks(struct nagare_producer_config *c) { c->acks = acks_now; }

Test(client, acks_none_leader_and_all_each_deliver)
{
    bk_start(&B);
    const int acks[] = {0, 1, -1};
    const char *topics[] = {"acks0", "acks1", "acksall"};
    for (int k = 0; k < 3; k++) {
        cs_create_topic(&B, topics[k], 1);
        struct reports r;
        reports_init(&r, 2000);
        acks_now = acks[k];
        nagare_producer *p = producer(&r, tune_acks);
        produce_plain(p, topics[k], 0, 21, 0, 2000);
        flush_ok(p, &r, 2000);
        for (uint32_t i = 0; i < 2000; i++) {
            /* acks=0: written to the socket is all that is known. */
            cr_assert_eq(r.offset[i], acks[k] == 0 ? -1 : (int64_t)i, "acks %d record %u", acks[k],
                         i);
        }
        nagare_producer_destroy(p);
        nagare_consumer *c = consumer(NAGARE_RESET_EARLIEST);
        assign_ok(c, topics[k], 0, NAGARE_OFFSET_BEGINNING);
        expect_from(c, 0, 2000, 21);
        nagare_consumer_destroy(c);
        reports_fini(&r);
    }
    bk_stop(&B);
}

/* ---- compression ---- */

static void tune_zstd(struct nagare_producer_config *c)
{
    c->compression = NAGARE_COMPRESSION_ZSTD;
    c->linger_ms = 20;
}

/* The codec of the first batch the broker stored in partition 0 of topic. */
static unsigned first_batch_codec(const char *topic)
{
    struct cl raw;
    cl_connect(&raw, B.port, 10000);
    struct fetched f;
    rq_fetch(&raw, topic, 0, 0, &f);
    cr_assert_eq(f.err, 0);
    const uint8_t *b;
    size_t len;
    cr_assert(bt_at(f.records, f.records_bytes, 0, &b, &len));
    struct batch_header h;
    cr_assert_eq(batch_header_decode(b, len, BATCH_BYTES_LIMIT, &h), 0);
    rq_fetched_free(&f);
    cl_close(&raw);
    return batch_codec(&h);
}

Test(client, zstd_batches_are_compressed_and_read_back)
{
    bk_start(&B);
    cs_create_topic(&B, "zstd", 1);
    produce_flushed("zstd", 0, 9, 20000, tune_zstd);

    /* On the broker the batches are zstd and smaller than their records:
     * the builder keeps zstd only when it made the records smaller. */
    cr_assert_eq(first_batch_codec("zstd"), BATCH_CODEC_ZSTD);

    nagare_consumer *c = consumer(NAGARE_RESET_EARLIEST);
    assign_ok(c, "zstd", 0, NAGARE_OFFSET_BEGINNING);
    expect_from(c, 0, 20000, 9);
    /* A seek into the middle of a compressed batch skips its first records. */
    cr_assert_eq(nagare_consumer_seek(c, "zstd", 0, 12345), 0);
    expect_from(c, 12345, 10, 9);
    nagare_consumer_destroy(c);
    bk_stop(&B);
}

static void tune_default_codec(struct nagare_producer_config *c) { c->linger_ms = 20; }

static void tune_no_codec(struct nagare_producer_config *c)
{
    c->compression = NAGARE_COMPRESSION_NONE;
    c->linger_ms = 20;
}

/* libnagare writes zstd unless told otherwise (issue 12); NONE still sends
 * the records as they are. */
Test(client, zstd_is_the_default_and_none_still_sends_records_as_they_are)
{
    struct nagare_producer_config d;
    nagare_producer_config_default(&d);
    cr_assert_eq(d.compression, NAGARE_COMPRESSION_ZSTD);
    static const struct {
        const char *topic;
        void (*tune)(struct nagare_producer_config *);
        unsigned codec;
    } cases[] = {{"dflt", tune_default_codec, BATCH_CODEC_ZSTD},
                 {"none", tune_no_codec, BATCH_CODEC_NONE}};
    bk_start(&B);
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        cs_create_topic(&B, cases[i].topic, 1);
        produce_flushed(cases[i].topic, 0, 9, 2000, cases[i].tune);
        cr_assert_eq(first_batch_codec(cases[i].topic), cases[i].codec, "%s", cases[i].topic);
        nagare_consumer *c = consumer(NAGARE_RESET_EARLIEST);
        assign_ok(c, cases[i].topic, 0, NAGARE_OFFSET_BEGINNING);
        expect_from(c, 0, 2000, 9);
        nagare_consumer_destroy(c);
    }
    bk_stop(&B);
}

/* ---- headers, null keys and values ---- */

static void header_is(const struct nagare_message *m, size_t i, const char *key, const char *value,
                      ssize_t value_len)
{
    struct nagare_header h;
    nagare_message_header(m, i, &h);
    cr_assert_eq(h.key_len, strlen(key));
    cr_assert_eq(memcmp(h.key, key, h.key_len), 0);
    if (value == NULL) {
        cr_assert_eq(h.value_len, -1, "header %zu null", i);
        return;
    }
    cr_assert_eq(h.value_len, value_len);
    cr_assert_eq(memcmp(h.value, value, (size_t)h.value_len), 0);
}

Test(client, headers_and_null_keys_and_values_round_trip)
{
    bk_start(&B);
    cs_create_topic(&B, "hdr", 1);
    struct reports r;
    reports_init(&r, 8);
    nagare_producer *p = producer(&r, tune_zstd);
    const struct nagare_header hs[] = {
        {.key = "trace", .key_len = 5, .value = "abc123", .value_len = 6},
        {.key = "none", .key_len = 4, .value = NULL, .value_len = -1},
        {.key = "", .key_len = 0, .value = "", .value_len = 0},
        {.key = "bin", .key_len = 3, .value = "\0\1\2", .value_len = 3},
    };
    struct nagare_record recs[] = {
        {.topic = "hdr", .key = NULL, .key_len = -1, .value = "v0", .value_len = 2},
        {.topic = "hdr", .key = "k1", .key_len = 2, .value = NULL, .value_len = -1},
        {.topic = "hdr", .key = NULL, .key_len = -1, .value = NULL, .value_len = -1},
        {.topic = "hdr", .key = "", .key_len = 0, .value = "", .value_len = 0},
        {.topic = "hdr",
         .key = "k4",
         .key_len = 2,
         .value = "v4",
         .value_len = 2,
         .headers = hs,
         .header_count = 4},
        {.topic = "hdr",
         .key = NULL,
         .key_len = -1,
         .value = "v5",
         .value_len = 2,
         .headers = hs + 1,
         .header_count = 1},
    };
    for (size_t i = 0; i < 6; i++) {
        recs[i].partition = 0;
        recs[i].timestamp_ms = T0 + (int64_t)i;
        recs[i].opaque = (void *)(uintptr_t)i;
        send_record(p, &recs[i]);
    }
    flush_ok(p, &r, 6);
    nagare_producer_destroy(p);

    nagare_consumer *c = consumer(NAGARE_RESET_EARLIEST);
    assign_ok(c, "hdr", 0, NAGARE_OFFSET_BEGINNING);
    for (size_t i = 0; i < 6; i++) {
        const struct nagare_message *m = next_msg(c);
        cr_assert_eq(m->offset, (int64_t)i);
        cr_assert_eq(m->timestamp_ms, T0 + (int64_t)i);
        cr_assert_eq(m->key_len, recs[i].key_len, "record %zu key length", i);
        cr_assert_eq(m->value_len, recs[i].value_len, "record %zu value length", i);
        if (m->key_len > 0) {
            cr_assert_eq(memcmp(m->key, recs[i].key, (size_t)m->key_len), 0);
        }
        if (m->value_len > 0) {
            cr_assert_eq(memcmp(m->value, recs[i].value, (size_t)m->value_len), 0);
        }
        cr_assert_eq(m->header_count, recs[i].header_count);
        if (i == 4) {
            header_is(m, 0, "trace", "abc123", 6);
            header_is(m, 1, "none", NULL, -1);
            header_is(m, 2, "", "", 0);
            header_is(m, 3, "bin", "\0\1\2", 3);
        } else if (i == 5) {
            header_is(m, 0, "none", NULL, -1);
        }
    }
    nagare_consumer_destroy(c);
    reports_fini(&r);
    bk_stop(&B);
}

/* ---- admin ---- */

Test(client, admin_creates_describes_lists_and_deletes_topics)
{
    bk_start(&B);
    nagare_admin *a = cs_admin(&B);
    struct nagare_topic_config c;
    nagare_topic_config_default(&c);
    c.partitions = 3;
    c.retention_ms = 3600000;
    c.retention_bytes = -2;
    c.segment_bytes = 1 << 20;
    c.batch_bytes_max = 1 << 20;
    cr_assert_eq(nagare_topic_create(a, "orders", &c), 0);
    cr_assert_eq(nagare_topic_create(a, "orders", &c), -NAGARE_ETOPIC_EXISTS);
    nagare_topic_config_default(&c);
    cr_assert_eq(nagare_topic_create(a, "plain", &c), 0);
    cr_assert_eq(nagare_topic_create(a, "bad/name", &c), -NAGARE_EBADNAME);
    c.partitions = 0;
    cr_assert_eq(nagare_topic_create(a, "zero", &c), -NAGARE_EBADARG);

    produce_flushed("orders", 2, 1, 30, NULL);

    const struct nagare_topic_info *t;
    size_t n;
    cr_assert_eq(nagare_topics_describe(a, "orders", &t, &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(t->name, "orders");
    cr_assert_eq(t->err, 0);
    cr_assert_eq(t->config.partitions, 3);
    cr_assert_eq(t->config.retention_ms, 3600000);
    cr_assert_eq(t->config.retention_bytes, -2, "no size limit");
    cr_assert_eq(t->config.segment_bytes, 1 << 20);
    cr_assert_eq(t->config.batch_bytes_max, 1 << 20);
    cr_assert_gt(t->segment_ms, 0);
    cr_assert_eq(t->partition_count, 3);
    for (int32_t k = 0; k < 3; k++) {
        cr_assert_eq(t->partitions[k].partition, k);
        cr_assert_eq(t->partitions[k].err, 0);
        cr_assert_eq(t->partitions[k].offset_earliest, 0);
        cr_assert_eq(t->partitions[k].offset_latest, k == 2 ? 30 : 0);
    }
    nagare_topics_free(a, t);

    cr_assert_eq(nagare_topics_describe(a, NULL, &t, &n), 0);
    cr_assert_eq(n, 2);
    bool seen_orders = false;
    bool seen_plain = false;
    for (size_t i = 0; i < n; i++) {
        seen_orders |= strcmp(t[i].name, "orders") == 0 && t[i].partition_count == 3;
        seen_plain |= strcmp(t[i].name, "plain") == 0 && t[i].partition_count >= 1 &&
                      t[i].config.retention_ms != 0;
    }
    cr_assert(seen_orders && seen_plain);
    nagare_topics_free(a, t);

    cr_assert_eq(nagare_topic_delete(a, "orders"), 0);
    cr_assert_eq(nagare_topic_delete(a, "orders"), -NAGARE_EUNKNOWN_TOPIC);
    cr_assert_eq(nagare_topics_describe(a, "orders", &t, &n), -NAGARE_EUNKNOWN_TOPIC);
    cr_assert_eq(nagare_topics_describe(a, NULL, &t, &n), 0);
    cr_assert_eq(n, 1);
    nagare_topics_free(a, t);
    nagare_admin_destroy(a);
    bk_stop(&B);
}

/* ---- topics the producer has not seen ---- */

Test(client, producing_to_a_new_topic_creates_it_when_the_broker_allows)
{
    bk_start(&B);
    struct reports r;
    reports_init(&r, 500);
    nagare_producer *p = producer(&r, NULL);
    produce_keyed(p, "fresh", 4, 500);
    flush_ok(p, &r, 500);
    nagare_producer_destroy(p);
    expect_exactly_once("fresh", 1, 500, 4);
    reports_fini(&r);
    bk_stop(&B);
}

Test(client, producing_to_a_missing_topic_fails_when_the_broker_will_not_create_it)
{
    bk_set(&B, "auto_create_topics=false");
    bk_start(&B);
    cs_create_topic(&B, "there", 1);
    struct reports r;
    reports_init(&r, 100);
    nagare_producer *p = producer(&r, NULL);
    produce_plain(p, "missing", NAGARE_PARTITION_ANY, 1, 0, 10);
    produce_plain(p, "there", 0, 1, 10, 10);
    cr_assert_eq(nagare_producer_flush(p, 10000), 0);
    cr_assert_eq(r.count, 20);
    cr_assert_eq(r.failed, 10, "the missing topic's records fail");
    cr_assert_eq(r.first_err, -NAGARE_EUNKNOWN_TOPIC);
    for (uint32_t i = 10; i < 20; i++) {
        cr_assert_eq(r.offset[i], i - 10);
    }
    /* Now known to be missing: refused at once. */
    struct nagare_record rec = {.topic = "missing",
                                .partition = NAGARE_PARTITION_ANY,
                                .key_len = -1,
                                .value = "x",
                                .value_len = 1};
    cr_assert_eq(nagare_send(p, &rec), -NAGARE_EUNKNOWN_TOPIC);
    rec.topic = "there";
    rec.partition = 1;
    cr_assert_eq(nagare_send(p, &rec), -NAGARE_EUNKNOWN_TOPIC, "partition past the count");
    rec.topic = "no/slash";
    cr_assert_eq(nagare_send(p, &rec), -NAGARE_EBADNAME);
    nagare_producer_destroy(p);
    reports_fini(&r);
    bk_stop(&B);
}

/* ---- offsets out of range ---- */

Test(client, out_of_range_offsets_follow_the_reset_policy)
{
    bk_start(&B);
    cs_create_topic(&B, "range", 1);
    produce_flushed("range", 0, 2, 100, NULL);

    nagare_consumer *c = consumer(NAGARE_RESET_ERROR);
    assign_ok(c, "range", 0, 5000);
    const struct nagare_message *m;
    cr_assert_eq(nagare_consumer_poll(c, WAIT_MS, &m), -NAGARE_EOFFSET_RANGE);
    cr_assert_eq(nagare_consumer_poll(c, 100, &m), 0, "reported once, then paused");
    cr_assert_eq(nagare_consumer_seek(c, "range", 0, 98), 0);
    expect_from(c, 98, 2, 2);
    nagare_consumer_destroy(c);

    c = consumer(NAGARE_RESET_EARLIEST);
    assign_ok(c, "range", 0, 5000);
    expect_from(c, 0, 3, 2);
    nagare_consumer_destroy(c);

    c = consumer(NAGARE_RESET_LATEST);
    assign_ok(c, "range", 0, 5000);
    cr_assert_eq(nagare_consumer_poll(c, 500, &m), 0);
    int64_t pos;
    cr_assert_eq(nagare_consumer_position(c, "range", 0, &pos), 0);
    cr_assert_eq(pos, 100);
    cr_assert_eq(nagare_consumer_assign(c, "range", 1, 0), -NAGARE_EUNKNOWN_TOPIC);
    cr_assert_eq(nagare_consumer_assign(c, "nope", 0, 0), -NAGARE_EUNKNOWN_TOPIC);
    cr_assert_eq(nagare_consumer_assign(c, "range", 0, 0), -NAGARE_EBADARG, "twice");
    nagare_consumer_destroy(c);
    bk_stop(&B);
}

/* ---- record sizes ---- */

static void tune_small_batches(struct nagare_producer_config *c) { c->batch_bytes = 4096; }

Test(client, records_larger_than_a_batch_go_alone_and_too_large_are_refused)
{
    bk_start(&B);
    nagare_admin *a = cs_admin(&B);
    struct nagare_topic_config tc;
    nagare_topic_config_default(&tc);
    tc.partitions = 1;
    tc.batch_bytes_max = 256 * 1024;
    cr_assert_eq(nagare_topic_create(a, "big", &tc), 0);
    nagare_admin_destroy(a);

    struct reports r;
    reports_init(&r, 10);
    nagare_producer *p = producer(&r, tune_small_batches);
    size_t sizes[] = {10, 100000, 20, 200000, 5000};
    uint8_t *value = malloc(300000);
    for (size_t i = 0; i < 300000; i++) {
        value[i] = (uint8_t)(i * 7);
    }
    for (uint32_t i = 0; i < 5; i++) {
        struct nagare_record rec = {.topic = "big",
                                    .partition = 0,
                                    .key_len = -1,
                                    .value = value,
                                    .value_len = (ssize_t)sizes[i],
                                    .opaque = (void *)(uintptr_t)i};
        send_record(p, &rec);
    }
    cr_assert_eq(nagare_producer_flush(p, 10000), 0);
    struct nagare_record huge = {
        .topic = "big", .partition = 0, .key_len = -1, .value = value, .value_len = 300000};
    cr_assert_eq(nagare_send(p, &huge), -NAGARE_ETOOBIG, "over the topic's batch_bytes_max");
    flush_ok(p, &r, 5);
    nagare_producer_destroy(p);

    nagare_consumer *c = consumer(NAGARE_RESET_EARLIEST);
    assign_ok(c, "big", 0, 0);
    for (uint32_t i = 0; i < 5; i++) {
        const struct nagare_message *m = next_msg(c);
        cr_assert_eq((size_t)m->value_len, sizes[i]);
        cr_assert_eq(memcmp(m->value, value, sizes[i]), 0);
    }
    free(value);
    nagare_consumer_destroy(c);
    reports_fini(&r);
    bk_stop(&B);
}

/* ---- the consumer across a broker restart ---- */

Test(client, consumer_resumes_after_the_broker_restarts)
{
    bk_start(&B);
    cs_create_topic(&B, "resume", 1);
    struct reports r;
    reports_init(&r, 2000);
    nagare_producer *p = producer(&r, NULL);
    produce_plain(p, "resume", 0, 6, 0, 1000);
    cr_assert_eq(nagare_producer_flush(p, 10000), 0);

    nagare_consumer *c = consumer(NAGARE_RESET_ERROR);
    assign_ok(c, "resume", 0, 0);
    expect_from(c, 0, 1000, 6);
    bk_kill_restart(&B, 200);
    produce_plain(p, "resume", 0, 6, 1000, 1000);
    flush_ok(p, &r, 2000);
    expect_from(c, 1000, 1000, 6);
    nagare_producer_destroy(p);
    nagare_consumer_destroy(c);
    reports_fini(&r);
    bk_stop(&B);
}

/* ---- a broker that goes away for good ---- */

static void tune_grow(struct nagare_producer_config *c)
{
    c->batch_bytes = 1024;
    c->linger_ms = 600000; /* batches close when full or flushed, never by time */
    c->inflight_max = 1;
    c->acks = 1;
}

/* Record counts of the batches of topic/partition from offset 0, in order;
 * returns how many. */
static size_t batch_counts(const char *topic, int32_t partition, int32_t *counts, size_t cap)
{
    struct cl raw;
    cl_connect(&raw, B.port, 10000);
    struct fetched f;
    rq_fetch(&raw, topic, partition, 0, &f);
    cr_assert_eq(f.err, 0);
    const uint8_t *b;
    size_t len;
    size_t n = 0;
    for (; bt_at(f.records, f.records_bytes, n, &b, &len); n++) {
        cr_assert_lt(n, cap);
        counts[n] = (int32_t)get_be32(b + BATCH_OFF_RECORD_COUNT);
    }
    rq_fetched_free(&f);
    cl_close(&raw);
    return n;
}

/* While its partition cannot send (the one request allowed is in flight:
 * the producer reads no answer before the flush), a full batch takes
 * batch_bytes more at a time instead of closing to wait, and goes as one
 * batch once the partition can send. */
Test(client, a_full_batch_grows_while_its_partition_cannot_send_and_goes_as_one)
{
    bk_start(&B);
    cs_create_topic(&B, "grow", 1);
    struct reports r;
    reports_init(&r, 61);
    nagare_producer *p = producer(&r, tune_grow);
    produce_plain(p, "grow", 0, 5, 0, 1); /* the topic is known from here on */
    flush_ok(p, &r, 1);
    produce_plain(p, "grow", 0, 5, 1, 60); /* ~9 KiB: 9 times batch_bytes */
    flush_ok(p, &r, 61);
    for (uint32_t i = 0; i < 61; i++) {
        cr_assert_eq(r.offset[i], i, "record %u in order, once", i);
    }
    nagare_producer_destroy(p);
    reports_fini(&r);
    int32_t counts[64];
    size_t n = batch_counts("grow", 0, counts, 64);
    /* The first record alone; the first full batch, sent at once; the
     * rest, grown, in one batch. */
    cr_assert_eq(n, 3, "batches: %zu", n);
    cr_assert_eq(counts[0], 1);
    cr_assert_eq(counts[0] + counts[1] + counts[2], 61);
    cr_assert_gt(counts[2], 5 * counts[1], "the last batch grew: %d records after %d", counts[2],
                 counts[1]);
}

static void tune_grow_small_buffer(struct nagare_producer_config *c)
{
    tune_grow(c);
    c->buffer_bytes_max = 64 * 1024; /* 4 grown batches of 16 KiB */
}

/* A batch grows while others that grew wait in the queue: the grown
 * buffers of open batches are bounded (half the buffer), not all bytes
 * used, which a producer whose pipeline is full fills with its queue.
 * Here a grown batch of 16 KiB waits behind the one request allowed, and
 * the next one grows too, though 1 KiB + 16 KiB + 1 KiB in use plus a
 * grown buffer of 16 KiB is more than half the 64 KiB buffer. */
Test(client, a_batch_grows_while_a_grown_one_waits_in_the_queue)
{
    bk_start(&B);
    cs_create_topic(&B, "queued", 1);
    struct reports r;
    reports_init(&r, 181);
    nagare_producer *p = producer(&r, tune_grow_small_buffer);
    produce_plain(p, "queued", 0, 5, 0, 1);
    flush_ok(p, &r, 1);
    produce_plain(p, "queued", 0, 5, 1, 180); /* ~27 KiB; no poll */
    flush_ok(p, &r, 181);
    for (uint32_t i = 0; i < 181; i++) {
        cr_assert_eq(r.offset[i], i, "record %u in order, once", i);
    }
    nagare_producer_destroy(p);
    reports_fini(&r);
    int32_t counts[64];
    size_t n = batch_counts("queued", 0, counts, 64);
    /* The first record; the first full batch, sent at once; one grown to
     * 16 KiB, full; the rest, grown too. */
    cr_assert_eq(n, 4, "batches: %zu", n);
    cr_assert_eq(counts[0] + counts[1] + counts[2] + counts[3], 181);
    cr_assert_gt(counts[3], 2 * counts[1], "the last batch grew: %d records after %d", counts[3],
                 counts[1]);
}

/* Sends keyless records of 20 value bytes (~28 in a batch: about 36 fill
 * batch_bytes of 1 KiB, about 580 a grown batch of 16 KiB), opaques from
 * 1 to count; no poll between them. */
static void send_keyless(nagare_producer *p, const char *topic, uint32_t count)
{
    char value[20] = "keyless record value";
    for (uint32_t i = 1; i <= count; i++) {
        struct nagare_record rec = {.topic = topic,
                                    .partition = NAGARE_PARTITION_ANY,
                                    .key_len = -1,
                                    .value = value,
                                    .value_len = sizeof(value),
                                    .opaque = (void *)(uintptr_t)i};
        send_record(p, &rec);
    }
}

/* Keyless records move to another partition once one took what a batch
 * grows to (16 times batch_bytes): a growing batch does not pull in every
 * record for good. Here each visit fills one grown batch, about 580
 * records (the one request allowed stays out: batches close only full);
 * a run of 5000 in one partition needs 9 visits in a row, 8 picks in a
 * row of the same one of 8 partitions (8^-8 each time, about 20 times
 * here). */
Test(client, keyless_records_move_on_while_batches_grow)
{
    enum { N = 12000 };
    bk_start(&B);
    cs_create_topic(&B, "spread", 8);
    struct reports r;
    reports_init(&r, N + 1);
    nagare_producer *p = producer(&r, tune_grow);
    produce_plain(p, "spread", 0, 6, 0, 1);
    flush_ok(p, &r, 1);
    /* No poll: the one request allowed stays in flight, the others grow. */
    send_keyless(p, "spread", N);
    flush_ok(p, &r, N + 1);
    uint32_t run = 1;
    uint32_t longest = 1;
    for (uint32_t i = 2; i <= N; i++) {
        run = r.partition[i] == r.partition[i - 1] ? run + 1 : 1;
        longest = run > longest ? run : longest;
    }
    cr_assert_lt(longest, 5000, "%u records in a row went to one partition", longest);
    nagare_producer_destroy(p);
    reports_fini(&r);
}

/* While the pipeline is full, keyless records fill one growing batch at a
 * time: they stay with their partition until it took what a batch grows
 * to, rather than move on after each batch_bytes and leave a slice in
 * every partition's batch (8 batches of ~125 records for the 1000 here,
 * 28 visits of ~36 records). And the record that finds a batch full and
 * moves them on goes with them, not alone into a new batch of the
 * partition they leave (here ~36 records, then ~580, then the rest). */
Test(client, keyless_records_fill_one_growing_batch_at_a_time)
{
    enum { N = 1000, PARTS = 8 };
    bk_start(&B);
    cs_create_topic(&B, "fill", PARTS);
    struct reports r;
    reports_init(&r, N + 1);
    nagare_producer *p = producer(&r, tune_grow);
    produce_plain(p, "fill", 0, 6, 0, 1);
    flush_ok(p, &r, 1);
    send_keyless(p, "fill", N); /* no poll: the one request allowed stays out */
    flush_ok(p, &r, N + 1);
    nagare_producer_destroy(p);
    reports_fini(&r);
    int32_t total = 0;
    int32_t largest = 0;
    uint32_t alone = 0;
    for (int32_t k = 0; k < PARTS; k++) {
        int32_t counts[64];
        size_t n = batch_counts("fill", k, counts, 64);
        for (size_t i = 0; i < n; i++) {
            total += counts[i];
            largest = counts[i] > largest ? counts[i] : largest;
            alone += counts[i] == 1 && !(k == 0 && i == 0) ? 1 : 0; /* but the first record */
        }
    }
    cr_assert_eq(total, N + 1);
    cr_assert_gt(largest, 500, "a grown batch took one visit's records: %d", largest);
    cr_assert_eq(alone, 0, "%u batches of one record", alone);
}

static void tune_linger0(struct nagare_producer_config *c)
{
    tune_grow(c);
    c->linger_ms = 0;
}

/* A batch past its linger whose partition cannot send (the one request
 * allowed is out to a broker that stopped) stays open and takes the
 * records that come meanwhile, rather than close to wait in the queue:
 * the records sent while it waits go as one batch. */
Test(client, a_batch_past_its_linger_keeps_taking_records_while_its_partition_cannot_send)
{
    bk_start(&B);
    cs_create_topic(&B, "linger", 1);
    struct reports r;
    reports_init(&r, 21);
    nagare_producer *p = producer(&r, tune_linger0);
    produce_plain(p, "linger", 0, 5, 0, 1);
    flush_ok(p, &r, 1);
    cr_assert_eq(kill(B.pid, SIGSTOP), 0);
    /* ~150 bytes each: the first batch_bytes goes out at once, the rest
     * waits in an open batch. */
    produce_plain(p, "linger", 0, 5, 1, 10);
    cr_assert_eq(nagare_producer_poll(p, 0), 0); /* its linger (0) ran out */
    produce_plain(p, "linger", 0, 5, 11, 10);
    cr_assert_eq(kill(B.pid, SIGCONT), 0);
    flush_ok(p, &r, 21);
    for (uint32_t i = 0; i < 21; i++) {
        cr_assert_eq(r.offset[i], i, "record %u in order, once", i);
    }
    nagare_producer_destroy(p);
    reports_fini(&r);
    int32_t counts[8];
    size_t n = batch_counts("linger", 0, counts, 8);
    /* The first record; the first full batch, sent at once; the rest, in
     * one batch though its linger ran out halfway. */
    cr_assert_eq(n, 3, "batches: %zu", n);
    cr_assert_eq(counts[0], 1);
    cr_assert_eq(counts[0] + counts[1] + counts[2], 21);
    cr_assert_gt(counts[2], 10, "the last batch took records past its linger: %d", counts[2]);
}

static void tune_short(struct nagare_producer_config *c)
{
    c->delivery_timeout_ms = 1500;
    c->request_timeout_ms = 500;
}

Test(client, records_fail_with_a_timeout_when_the_broker_stays_away)
{
    bk_start(&B);
    cs_create_topic(&B, "gone", 1);
    struct reports r;
    reports_init(&r, 200);
    nagare_producer *p = producer(&r, tune_short);
    produce_plain(p, "gone", 0, 1, 0, 100);
    flush_ok(p, &r, 100);
    bk_stop(&B);

    produce_plain(p, "gone", 0, 1, 100, 100);
    produce_plain(p, "unseen", NAGARE_PARTITION_ANY, 1, 0, 1); /* held: no metadata */
    cr_assert_eq(nagare_producer_flush(p, 300), -NAGARE_ETIMEOUT);
    cr_assert_eq(nagare_producer_outstanding(p), 101);
    int64_t t = clock_mono_ms();
    cr_assert_eq(nagare_producer_flush(p, 10000), 0, "every record gets its report");
    cr_assert_lt(clock_mono_ms() - t, 5000);
    cr_assert_eq(r.count, 201);
    cr_assert_eq(r.failed, 101);
    cr_assert_eq(r.first_err, -NAGARE_ETIMEOUT);
    nagare_producer_destroy(p);

    /* The consumer says so too, after its request timeout. */
    struct nagare_consumer_config cc;
    nagare_consumer_config_default(&cc);
    cc.bootstrap = B.bootstrap;
    cc.request_timeout_ms = 500;
    bk_start(&B); /* the same data: "gone" is still there */
    nagare_consumer *c;
    cr_assert_eq(nagare_consumer_new(&cc, &c), 0);
    assign_ok(c, "gone", 0, 0);
    bk_stop(&B);
    const struct nagare_message *m;
    int rc = 0;
    t = clock_mono_ms();
    while (rc == 0 && clock_mono_ms() - t < 5000) {
        rc = nagare_consumer_poll(c, 100, &m);
    }
    cr_assert_eq(rc, -NAGARE_EDISCONNECTED, "poll: %s", nagare_strerror(rc));
    nagare_consumer_destroy(c);
    reports_fini(&r);
}

/* ---- addresses ---- */

Test(client, bootstrap_addresses_are_parsed_strictly)
{
    char host[CONN_HOST_BYTES_MAX];
    char port[8];
    cr_assert_eq(conn_parse_address("127.0.0.1:7420", host, sizeof(host), port, sizeof(port)), 0);
    cr_assert_str_eq(host, "127.0.0.1");
    cr_assert_str_eq(port, "7420");
    cr_assert_eq(conn_parse_address("[::1]:9", host, sizeof(host), port, sizeof(port)), 0);
    cr_assert_str_eq(host, "::1");
    cr_assert_str_eq(port, "9");
    cr_assert_eq(conn_parse_address("broker.example:65535", host, sizeof(host), port, sizeof(port)),
                 0);
    const char *bad[] = {"",       "7420",       "host:",    ":7420",   "::1:7420",
                         "host:0", "host:65536", "host:12a", "host:-1", "host:123456",
                         "[]:1",   "[::1]",      NULL};
    for (size_t i = 0; bad[i] != NULL; i++) {
        cr_assert_eq(conn_parse_address(bad[i], host, sizeof(host), port, sizeof(port)),
                     -NAGARE_EBADARG, "%s", bad[i]);
    }
    char longname[400];
    memset(longname, 'a', sizeof(longname));
    strcpy(longname + 300, ":1");
    cr_assert_eq(conn_parse_address(longname, host, sizeof(host), port, sizeof(port)),
                 -NAGARE_EBADARG);
    cr_assert_eq(conn_parse_address(NULL, host, sizeof(host), port, sizeof(port)), -NAGARE_EBADARG);
}

Test(client, bootstrap_lists_are_checked_and_split)
{
    char host[CONN_HOST_BYTES_MAX];
    char port[8];
    cr_assert_eq(conn_bootstrap_check("127.0.0.1:7420"), 1);
    cr_assert_eq(conn_bootstrap_check("a:1,[::1]:2,b.example:3"), 3);
    cr_assert_eq(
        conn_bootstrap_at("a:1,[::1]:2,b.example:3", 1, host, sizeof(host), port, sizeof(port)), 0);
    cr_assert_str_eq(host, "::1");
    cr_assert_str_eq(port, "2");
    cr_assert_eq(
        conn_bootstrap_at("a:1,[::1]:2,b.example:3", 2, host, sizeof(host), port, sizeof(port)), 0);
    cr_assert_str_eq(host, "b.example");
    cr_assert_eq(conn_bootstrap_at("a:1", 1, host, sizeof(host), port, sizeof(port)),
                 -NAGARE_EBADARG);
    const char *bad[] = {"", ",", "a:1,", ",a:1", "a:1,,b:2", "a:1,b", "a:1;b:2", NULL};
    for (size_t i = 0; bad[i] != NULL; i++) {
        cr_assert_eq(conn_bootstrap_check(bad[i]), -NAGARE_EBADARG, "%s", bad[i]);
    }
    char longlist[CONN_BOOTSTRAP_BYTES_MAX + 8];
    size_t at = 0;
    while (at + 8 < sizeof(longlist)) {
        at += (size_t)snprintf(longlist + at, sizeof(longlist) - at, "%sh:1", at ? "," : "");
    }
    cr_assert_eq(conn_bootstrap_check(longlist), -NAGARE_EBADARG);
    cr_assert_eq(conn_bootstrap_check(NULL), -NAGARE_EBADARG);
}

Test(client, a_bootstrap_list_is_tried_in_turn)
{
    bk_start(&B);
    uint16_t dead = closed_port();
    char list[128];
    snprintf(list, sizeof(list), "127.0.0.1:%u,127.0.0.1:%u", dead, B.port);
    nagare_admin *a = NULL;
    cr_assert_eq(nagare_admin_new(list, WAIT_MS, &a), 0);
    cr_assert_eq(cs_topic_create_rf(a, "listed", 1), 0);
    nagare_admin_destroy(a);
    snprintf(list, sizeof(list), "127.0.0.1:%u", dead);
    cr_assert_eq(nagare_admin_new(list, WAIT_MS, &a), -ECONNREFUSED);
    bk_stop(&B);
}

Test(client, cluster_describe_of_a_single_broker)
{
    bk_start(&B);
    nagare_admin *a = cs_admin(&B);
    cr_assert_eq(cs_topic_create_rf(a, "two", 2), -NAGARE_ENOT_ENOUGH_REPLICAS);
    cr_assert_eq(cs_topic_create_rf(a, "one", 1), 0);
    struct nagare_topic_config c;
    nagare_topic_config_default(&c);
    c.partitions = 3;
    cr_assert_eq(nagare_topic_create(a, "dflt", &c), 0);
    const struct nagare_cluster_info *ci = NULL;
    cr_assert_eq(nagare_cluster_describe(a, &ci), 0);
    cr_assert_eq(ci->controller, 0);
    cr_assert_eq(ci->broker_count, 1);
    cr_assert_eq(ci->brokers[0].id, 0);
    cr_assert_str_eq(ci->brokers[0].host, "127.0.0.1");
    cr_assert_eq(ci->brokers[0].port, B.port);
    cr_assert_eq(ci->partition_count, 4);
    for (size_t i = 0; i < ci->partition_count; i++) {
        const struct nagare_partition_replicas *p = &ci->partitions[i];
        cr_assert(strcmp(p->topic, "one") == 0 || strcmp(p->topic, "dflt") == 0);
        cr_assert_eq(p->err, 0);
        cr_assert_eq(p->leader, 0);
        cr_assert_eq(p->leader_epoch, 0);
        cr_assert_eq(p->replica_count, 1);
        cr_assert_eq(p->replicas[0], 0);
        cr_assert_eq(p->isr_count, 1);
        cr_assert_eq(p->isr[0], 0);
        cr_assert_not(p->under_replicated);
    }
    nagare_cluster_info_free(a, ci);
    const struct nagare_topic_info *t;
    size_t n;
    cr_assert_eq(nagare_topics_describe(a, "dflt", &t, &n), 0);
    cr_assert_eq(t[0].config.replication_factor, 1);
    nagare_topics_free(a, t);
    nagare_admin_destroy(a);
    bk_stop(&B);
}

Test(client, a_host_name_is_resolved)
{
    bk_start(&B);
    snprintf(B.bootstrap, sizeof(B.bootstrap), "localhost:%u", B.port);
    nagare_admin *a = cs_admin(&B);
    const struct nagare_topic_info *t;
    size_t n;
    cr_assert_eq(nagare_topics_describe(a, NULL, &t, &n), 0);
    cr_assert_eq(n, 0);
    nagare_topics_free(a, t);
    nagare_admin_destroy(a);
    bk_stop(&B);
}

/* poll(p, 0) must read answers that have arrived, not only send: a program
 * that never blocks (the CLI reading a terminal) still gets its reports. */
Test(client, poll_without_waiting_reads_answers)
{
    bk_start(&B);
    cs_create_topic(&B, "nowait", 1);
    struct reports r;
    reports_init(&r, 1);
    nagare_producer *p = producer(&r, NULL);
    struct nagare_record rec = {
        .topic = "nowait", .partition = 0, .key_len = -1, .value = "v", .value_len = 1};
    send_record(p, &rec);
    int64_t give_up = clock_mono_ms() + 10000;
    while (r.count == 0 && clock_mono_ms() < give_up) {
        cr_assert_geq(nagare_producer_poll(p, 0), 0);
        struct timespec ts = {.tv_nsec = 1000000};
        nanosleep(&ts, NULL);
    }
    cr_assert_eq(r.count, 1, "the report came through poll(0) alone");
    cr_assert_eq(r.failed, 0);
    nagare_producer_destroy(p);
    reports_fini(&r);
}

/* ---- several fetches in flight ---- */

#define PIPE_RECORDS 20000

/* A partition whose answers wait to be read cannot take a fetch; a long
 * poll sent without it would hold back its next records until another
 * partition got one, or for the whole long poll (a 501 ms record in the
 * e2e benchmark). The long poll waits for it instead: here the wait is
 * ten minutes, and the second record must come all the same. */
Test(client, a_long_poll_waits_for_a_partition_whose_answer_is_being_read)
{
    bk_set(&B, "fetch_wait_max_ms=600000");
    bk_start(&B);
    cs_create_topic(&B, "tail", 2);
    struct reports r;
    reports_init(&r, 2);
    nagare_producer *p = producer(&r, NULL);
    struct nagare_consumer_config cc;
    nagare_consumer_config_default(&cc);
    cc.bootstrap = B.bootstrap;
    cc.fetches_inflight = 1;
    cc.fetch_wait_max_ms = 600000;
    nagare_consumer *c;
    cr_assert_eq(nagare_consumer_new(&cc, &c), 0);
    assign_ok(c, "tail", 0, 0);
    assign_ok(c, "tail", 1, 0);
    produce_plain(p, "tail", 0, 3, 0, 1);
    flush_ok(p, &r, 1);
    const struct nagare_message *m = next_msg(c); /* its answer is being read */
    cr_assert_eq(m->partition, 0);
    cr_assert_eq(m->offset, 0);
    produce_plain(p, "tail", 0, 3, 1, 1);
    flush_ok(p, &r, 2);
    m = next_msg(c);
    cr_assert_eq(m->partition, 0);
    cr_assert_eq(m->offset, 1);
    nagare_consumer_destroy(c);
    nagare_producer_destroy(p);
    reports_fini(&r);
}

static nagare_consumer *consumer_pipelined(uint32_t fetches, uint32_t partition_bytes)
{
    struct nagare_consumer_config c;
    nagare_consumer_config_default(&c);
    c.bootstrap = B.bootstrap;
    c.reset = NAGARE_RESET_ERROR;
    c.fetches_inflight = fetches;
    /* A few batches per partition per fetch: many answers, each asked for
     * while earlier ones are still being read. */
    c.partition_fetch_bytes_max = partition_bytes;
    c.fetch_bytes_max = 2 * partition_bytes;
    c.fetch_wait_max_ms = 100;
    nagare_consumer *k;
    int rc = nagare_consumer_new(&c, &k);
    cr_assert_eq(rc, 0, "consumer: %s", nagare_strerror(rc));
    return k;
}

/* Reads count records of topic's partitions: each partition's offsets
 * must run 0, 1, 2... (in order, no gap, no duplicate), each record index
 * come once, and nothing come after. */
static void expect_in_order(nagare_consumer *c, int32_t partitions, uint32_t count, uint32_t seed)
{
    uint8_t *seen = calloc(count, 1);
    int64_t next[4] = {0};
    cr_assert_leq(partitions, 4);
    for (uint32_t n = 0; n < count; n++) {
        const struct nagare_message *m = next_msg(c);
        cr_assert_lt(m->partition, partitions);
        cr_assert_eq(m->offset, next[m->partition], "partition %d: offset %lld, expected %lld",
                     m->partition, (long long)m->offset, (long long)next[m->partition]);
        next[m->partition]++;
        uint32_t i = value_index(m);
        cr_assert_lt(i, count);
        cr_assert_eq(seen[i], 0, "record %u twice", i);
        seen[i] = 1;
        value_check(m, seed);
    }
    const struct nagare_message *m;
    cr_assert_eq(nagare_consumer_poll(c, 300, &m), 0, "nothing more");
    free(seen);
}

Test(client, pipelined_fetches_keep_order_with_no_gap_or_duplicate_over_one_and_four_partitions)
{
    bk_start(&B);
    cs_create_topic(&B, "pipe1", 1);
    cs_create_topic(&B, "pipe4", 4);
    struct reports r;
    reports_init(&r, PIPE_RECORDS);
    nagare_producer *p = producer(&r, tune_small_batches); /* ~4 KiB batches */
    produce_plain(p, "pipe1", 0, 21, 0, PIPE_RECORDS);
    produce_keyed(p, "pipe4", 22, PIPE_RECORDS);
    cr_assert_eq(nagare_producer_flush(p, 60000), 0);
    nagare_producer_destroy(p);
    reports_fini(&r);

    uint32_t fetches[] = {1, 2, 3, 8};
    uint32_t part_bytes[] = {8192, 65536};
    for (size_t f = 0; f < sizeof(fetches) / sizeof(fetches[0]); f++) {
        for (size_t b = 0; b < 2; b++) {
            nagare_consumer *c = consumer_pipelined(fetches[f], part_bytes[b]);
            assign_ok(c, "pipe1", 0, 0);
            expect_in_order(c, 1, PIPE_RECORDS, 21);
            nagare_consumer_destroy(c);

            c = consumer_pipelined(fetches[f], part_bytes[b]);
            for (int32_t k = 0; k < 4; k++) {
                assign_ok(c, "pipe4", k, 0);
            }
            expect_in_order(c, 4, PIPE_RECORDS, 22);
            nagare_consumer_destroy(c);
        }
    }
    bk_stop(&B);
}

/* Reads one record of partition `partition` of a 4-partition topic while
 * keeping the others' order: next[] holds each partition's next offset. */
static const struct nagare_message *next_of(nagare_consumer *c, int64_t next[4])
{
    const struct nagare_message *m = next_msg(c);
    cr_assert_eq(m->offset, next[m->partition], "partition %d: offset %lld, expected %lld",
                 m->partition, (long long)m->offset, (long long)next[m->partition]);
    next[m->partition]++;
    return m;
}

Test(client, a_seek_while_fetches_are_in_flight_drops_their_answers)
{
    bk_start(&B);
    cs_create_topic(&B, "pseek1", 1);
    cs_create_topic(&B, "pseek4", 4);
    struct reports r;
    reports_init(&r, PIPE_RECORDS);
    nagare_producer *p = producer(&r, tune_small_batches);
    produce_plain(p, "pseek1", 0, 23, 0, PIPE_RECORDS);
    produce_plain(p, "pseek4", 0, 24, 0, PIPE_RECORDS / 4);
    produce_plain(p, "pseek4", 1, 24, 0, PIPE_RECORDS / 4);
    produce_plain(p, "pseek4", 2, 24, 0, PIPE_RECORDS / 4);
    produce_plain(p, "pseek4", 3, 24, 0, PIPE_RECORDS / 4);
    cr_assert_eq(nagare_producer_flush(p, 60000), 0);
    nagare_producer_destroy(p);
    reports_fini(&r);

    /* One partition: every seek lands where it asked, whatever was in
     * flight or buffered, and reading goes on in order from there. */
    nagare_consumer *c = consumer_pipelined(4, 8192);
    assign_ok(c, "pseek1", 0, 0);
    uint32_t rnd = 12345;
    for (int round = 0; round < 300; round++) {
        rnd = rnd * 1103515245u + 12345u;
        uint32_t to = (rnd >> 8) % PIPE_RECORDS;
        cr_assert_eq(nagare_consumer_seek(c, "pseek1", 0, to), 0);
        if (round % 7 == 3) {
            continue; /* two seeks in a row */
        }
        uint32_t n = 1 + (rnd >> 20) % 200;
        n = to + n > PIPE_RECORDS ? PIPE_RECORDS - to : n;
        expect_from(c, to, n, 23);
        int64_t pos;
        cr_assert_eq(nagare_consumer_position(c, "pseek1", 0, &pos), 0);
        cr_assert_eq(pos, (int64_t)(to + n));
    }
    nagare_consumer_destroy(c);

    /* Four partitions: seeking one leaves the others' order alone. */
    c = consumer_pipelined(3, 8192);
    for (int32_t k = 0; k < 4; k++) {
        assign_ok(c, "pseek4", k, 0);
    }
    int64_t next[4] = {0};
    for (int round = 0; round < 100; round++) {
        for (int k = 0; k < 50; k++) {
            const struct nagare_message *m = next_of(c, next);
            cr_assert_eq((int64_t)value_index(m), m->offset);
            value_check(m, 24);
        }
        rnd = rnd * 1103515245u + 12345u;
        int32_t part = (int32_t)((rnd >> 4) % 4);
        int64_t to = (int64_t)((rnd >> 8) % (PIPE_RECORDS / 4 - 100));
        cr_assert_eq(nagare_consumer_seek(c, "pseek4", part, to), 0);
        next[part] = to;
    }
    nagare_consumer_destroy(c);
    bk_stop(&B);
}

/* ---- a corrupt batch from the broker ---- */

/* A fake broker on a thread: ApiVersions and Metadata (topic "bad", one
 * partition), and Fetch answered with `records` for any offset before
 * records_end, nothing after. It asserts nothing (criterion asserts from
 * the test's thread only): any surprise closes the connection. */
struct fake {
    int lfd;
    uint16_t port;
    pthread_t th;
    const uint8_t *records;
    size_t records_bytes;
    int64_t records_end;
    int err_after;    /* a fetch past records_end gets it (0: nothing) */
    size_t cut_bytes; /* the next answer with records stops after this
                                 many bytes and the connection closes (0: no) */
    uint8_t *tx;
    uint8_t *rx;
};

#define FAKE_FRAME_BYTES (1u << 20)

static bool fake_read(int fd, uint8_t *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t k = recv(fd, buf + got, n - got, 0);
        if (k <= 0) {
            return false;
        }
        got += (size_t)k;
    }
    return true;
}

/* Encodes the answer to the request in rx (len bytes) into w. */
static bool fake_answer(struct fake *f, uint8_t *rx, uint32_t len, struct wr *w)
{
    struct rd body = rd_make(rx, len);
    struct proto_req_header h;
    if (proto_req_header_decode(&body, &h) != 0) {
        return false;
    }
    struct proto_enc e;
    if (h.api_key == PROTO_API_API_VERSIONS) {
        struct proto_api_versions_resp v;
        proto_api_versions_fill(&v, FAKE_FRAME_BYTES);
        return proto_api_versions_resp_encode(w, h.api_version, h.correlation_id, &v) == 0;
    }
    if (h.api_key == PROTO_API_METADATA) {
        struct proto_metadata_resp m = {.host = proto_str_make("127.0.0.1"), .port = f->port};
        proto_metadata_resp_begin(&e, w, h.api_version, h.correlation_id, &m);
        proto_metadata_resp_topic(&e, proto_str_make("bad"), 0);
        proto_metadata_resp_partition(
            &e, &(struct proto_metadata_partition){.offset_latest = f->records_end});
        return proto_enc_end(&e) == 0;
    }
    if (h.api_key != PROTO_API_FETCH) {
        return false;
    }
    struct proto_fetch_req req;
    struct proto_dec d;
    struct proto_topic t;
    struct proto_fetch_req_partition fp;
    if (proto_fetch_req_decode(&body, h.api_version, &req, &d) != 0 || !proto_next_topic(&d, &t) ||
        !proto_fetch_req_next_partition(&d, &fp)) {
        return false;
    }
    bool some = fp.offset < f->records_end;
    proto_fetch_resp_begin(&e, w, h.api_version, h.correlation_id);
    proto_enc_topic(&e, proto_str_make("bad"));
    proto_fetch_resp_partition(&e, &(struct proto_fetch_resp_partition){
                                       .partition = 0,
                                       .err = some ? 0 : f->err_after,
                                       .offset_latest = f->records_end,
                                       .records = f->records,
                                       .records_bytes = some ? (uint32_t)f->records_bytes : 0});
    if (!some && f->err_after == 0) {
        usleep(20000); /* a long poll that finds nothing */
    }
    return proto_enc_end(&e) == 0;
}

static void *fake_run(void *arg)
{
    struct fake *f = arg;
    int fd;
    while ((fd = accept(f->lfd, NULL, NULL)) >= 0) {
        uint8_t prefix[PROTO_FRAME_PREFIX_BYTES];
        uint32_t len;
        while (fake_read(fd, prefix, sizeof(prefix)) &&
               proto_request_frame_len(prefix, FAKE_FRAME_BYTES, &len) == 0 &&
               fake_read(fd, f->rx, len)) {
            struct wr w = wr_make(f->tx, FAKE_FRAME_BYTES);
            if (!fake_answer(f, f->rx, len, &w)) {
                break;
            }
            size_t n = w.pos;
            bool cut = f->cut_bytes > 0 && n > f->cut_bytes;
            n = cut ? f->cut_bytes : n;
            if (send(fd, f->tx, n, MSG_NOSIGNAL) != (ssize_t)n || cut) {
                f->cut_bytes = 0;
                break;
            }
        }
        close(fd);
    }
    return NULL;
}

static void fake_start(struct fake *f)
{
    f->tx = malloc(FAKE_FRAME_BYTES);
    f->rx = malloc(FAKE_FRAME_BYTES);
    cr_assert(f->tx != NULL && f->rx != NULL);
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(listen(f->lfd, 4), 0);
    socklen_t len = sizeof(sa);
    cr_assert_eq(getsockname(f->lfd, (struct sockaddr *)&sa, &len), 0);
    f->port = ntohs(sa.sin_port);
    snprintf(B.bootstrap, sizeof(B.bootstrap), "127.0.0.1:%u", f->port);
    cr_assert_eq(pthread_create(&f->th, NULL, fake_run, f), 0);
}

static void fake_stop(struct fake *f)
{
    shutdown(f->lfd, SHUT_RDWR); /* accept() returns */
    cr_assert_eq(pthread_join(f->th, NULL), 0);
    close(f->lfd);
    free(f->tx);
    free(f->rx);
}

/* Three batches of 10 records, offsets 0..29; the one at `bad` corrupted
 * by flipping the byte at `at` bytes from its start (from its end when
 * negative). Returns the bytes. */
static size_t bad_batches(uint8_t *buf, size_t cap, int bad, long at)
{
    size_t len = 0;
    for (int k = 0; k < 3; k++) {
        size_t n = bt_make(buf + len, cap - len, 10, 31, T0, -1, 0, -1);
        batch_set_offset_base(buf + len, 10 * k);
        if (k == bad) {
            buf[len + (at >= 0 ? (size_t)at : n - (size_t)-at)] ^= 0x40;
        }
        len += n;
    }
    return len;
}

Test(client, an_answer_cut_off_while_read_into_its_buffer_is_fetched_again)
{
    /* Four batches of 30 records of 1000 bytes: an answer of about 120 KiB,
     * read straight into the consumer's buffer; the fake broker closes the
     * connection 70,000 bytes into it. */
    static uint8_t buf[256 * 1024];
    size_t len = 0;
    for (int k = 0; k < 4; k++) {
        size_t n =
            bt_make_sized(buf + len, sizeof(buf) - len, 30, 1000, 41, BATCH_CODEC_NONE, NULL);
        batch_set_offset_base(buf + len, 30 * k);
        len += n;
    }
    cr_assert_gt(len, 100000);
    struct fake f = {.records = buf, .records_bytes = len, .records_end = 120, .cut_bytes = 70000};
    fake_start(&f);
    struct nagare_consumer_config cc;
    nagare_consumer_config_default(&cc);
    cc.bootstrap = B.bootstrap;
    cc.request_timeout_ms = 5000;
    nagare_consumer *c;
    cr_assert_eq(nagare_consumer_new(&cc, &c), 0);
    assign_ok(c, "bad", 0, 0);
    for (int64_t o = 0; o < 120; o++) {
        const struct nagare_message *m = next_msg(c);
        cr_assert_eq(m->offset, o);
        cr_assert_eq(m->value_len, 1000);
    }
    cr_assert_eq(f.cut_bytes, 0, "the answer was cut");
    nagare_consumer_destroy(c);
    fake_stop(&f);
}

/* The records before the bad batch come, then -NAGARE_ECORRUPT once; the
 * partition pauses there (its error and position in the assignment) until
 * a seek. */
static void expect_corrupt_at(nagare_consumer *c, int64_t first_bad)
{
    for (int64_t o = 0; o < first_bad; o++) {
        const struct nagare_message *m = next_msg(c);
        cr_assert_eq(m->offset, o);
    }
    const struct nagare_message *m;
    int rc = nagare_consumer_poll(c, WAIT_MS, &m);
    cr_assert_eq(rc, -NAGARE_ECORRUPT, "poll: %d %s", rc, nagare_strerror(rc));
    cr_assert_str_eq(nagare_strerror(rc), "corrupt data: checksum or structure is wrong");
    cr_assert_eq(nagare_consumer_poll(c, 200, &m), 0, "reported once, then paused");
    const struct nagare_topic_partition *tp;
    size_t count;
    cr_assert_eq(nagare_consumer_assignment(c, &tp, &count), 0);
    cr_assert_eq(count, 1);
    cr_assert_eq(tp[0].err, -NAGARE_ECORRUPT);
    cr_assert_eq(tp[0].offset, first_bad);
}

Test(client, a_corrupt_batch_is_reported_after_the_records_before_it)
{
    static uint8_t buf[64 * 1024];
    struct fake f = {0};
    fake_start(&f);
    f.records = buf;
    f.records_end = 30;
    /* A flipped bit in a record of the second batch: its checksum. */
    f.records_bytes = bad_batches(buf, sizeof(buf), 1, -5);
    nagare_consumer *c = consumer_pipelined(2, 65536);
    assign_ok(c, "bad", 0, 0);
    expect_corrupt_at(c, 10);
    /* A seek past it reads on. */
    cr_assert_eq(nagare_consumer_seek(c, "bad", 0, 20), 0);
    for (int64_t o = 20; o < 30; o++) {
        cr_assert_eq(next_msg(c)->offset, o);
    }
    nagare_consumer_destroy(c);

    /* A broken length in the first batch's header: nothing before it. */
    f.records_bytes = bad_batches(buf, sizeof(buf), 0, BATCH_OFF_LENGTH);
    c = consumer_pipelined(2, 65536);
    assign_ok(c, "bad", 0, 0);
    expect_corrupt_at(c, 0);
    nagare_consumer_destroy(c);

    /* A broken length in the third: the first two come first. */
    f.records_bytes = bad_batches(buf, sizeof(buf), 2, BATCH_OFF_LENGTH + 1);
    c = consumer_pipelined(2, 65536);
    assign_ok(c, "bad", 0, 0);
    expect_corrupt_at(c, 20);
    nagare_consumer_destroy(c);

    /* Sound batches, then the broker's own -NAGARE_ECORRUPT for what
     * follows: it comes after the records fetched before it, though its
     * answer comes while they are still buffered. */
    f.records_bytes = bad_batches(buf, sizeof(buf), -1, 0);
    f.err_after = -NAGARE_ECORRUPT;
    c = consumer_pipelined(2, 65536);
    assign_ok(c, "bad", 0, 0);
    expect_corrupt_at(c, 30);
    nagare_consumer_destroy(c);
    fake_stop(&f);
}

/* ---- a caught-up partition among partitions being replayed ---- */

Test(client, caught_up_partitions_do_not_hold_up_the_replay_of_the_others)
{
    bk_start(&B);
    cs_create_topic(&B, "lag", 4);
    struct reports r;
    reports_init(&r, PIPE_RECORDS);
    nagare_producer *p = producer(&r, tune_small_batches);
    /* Two partitions read at once, then caught up; two replayed: once
     * their answers fill what the consumer buffers, nothing is in flight
     * and only the caught-up ones could take a fetch. */
    for (int32_t k = 0; k < 4; k++) {
        produce_plain(p, "lag", k, 25, 0, k < 2 ? 10 : PIPE_RECORDS / 4);
    }
    cr_assert_eq(nagare_producer_flush(p, 60000), 0);
    nagare_producer_destroy(p);
    reports_fini(&r);

    /* A long poll parked for the caught-up partitions would hold up the
     * answers of every fetch sent after it, for its whole wait each time. */
    struct nagare_consumer_config cc;
    nagare_consumer_config_default(&cc);
    cc.bootstrap = B.bootstrap;
    cc.fetch_wait_max_ms = 5000;
    cc.partition_fetch_bytes_max = 8192; /* many fetches per partition */
    nagare_consumer *c;
    cr_assert_eq(nagare_consumer_new(&cc, &c), 0);
    for (int32_t k = 0; k < 4; k++) {
        assign_ok(c, "lag", k, 0);
    }
    int64_t next[4] = {0};
    int64_t t = clock_mono_ms();
    for (uint32_t n = 0; n < 2 * 10 + 2 * (PIPE_RECORDS / 4); n++) {
        const struct nagare_message *m = next_of(c, next);
        value_check(m, 25);
    }
    int64_t took = clock_mono_ms() - t;
    cr_assert_lt(took, 4000, "the replay took %lld ms: held up by long polls", (long long)took);
    nagare_consumer_destroy(c);
    bk_stop(&B);
}

/* ---- linger: each open batch on its own clock ---- */

#define LINGER_MS 1000

struct timed_reports {
    struct reports r;
    int64_t at_ms[64]; /* when each record's report ran */
};

static void on_delivery_timed(const struct nagare_delivery *d, void *opaque)
{
    struct timed_reports *tr = opaque;
    uint32_t i = (uint32_t)(uintptr_t)d->opaque;
    if (i < 64) {
        tr->at_ms[i] = clock_mono_ms();
    }
    on_delivery(d, &tr->r);
}

static void tune_linger(struct nagare_producer_config *c)
{
    c->linger_ms = LINGER_MS;
    c->batch_bytes = 4096;
    c->on_delivery = on_delivery_timed;
}

static void send_one_to(nagare_producer *p, const char *topic, int32_t partition, uint32_t i,
                        size_t value_bytes)
{
    uint8_t value[2048];
    cr_assert_leq(value_bytes, sizeof(value));
    memset(value, (int)i, value_bytes);
    struct nagare_record rec = {.topic = topic,
                                .partition = partition,
                                .key_len = -1,
                                .value = value,
                                .value_len = (ssize_t)value_bytes,
                                .opaque = (void *)(uintptr_t)i};
    send_record(p, &rec);
}

/* Records 0 (partition 0) and 1 (partition 1) wait in open batches that
 * opened LINGER_MS / 2 apart; partition 2 fills batches between them, the
 * last left open. No flush: the poll alone closes each batch when its own
 * linger has passed, not before, and not all at once with the first. */
Test(client, linger_closes_each_open_batch_when_its_own_time_comes)
{
    bk_start(&B);
    cs_create_topic(&B, "linger", 3);
    struct timed_reports tr = {0};
    reports_init(&tr.r, 64);
    nagare_producer *p = producer((struct reports *)&tr, tune_linger);
    int64_t sent0 = clock_mono_ms();
    send_one_to(p, "linger", 0, 0, 10);
    cr_assert_geq(nagare_producer_poll(p, LINGER_MS / 2), 0);
    int64_t sent1 = clock_mono_ms();
    send_one_to(p, "linger", 1, 1, 10);
    int64_t sent_fill = clock_mono_ms();
    for (uint32_t i = 2; i < 12; i++) {
        send_one_to(p, "linger", 2, i, 1500); /* two a batch: four close full */
    }
    int64_t give_up = clock_mono_ms() + WAIT_MS;
    while (tr.r.count < 12 && clock_mono_ms() < give_up) {
        cr_assert_geq(nagare_producer_poll(p, 50), 0);
    }
    cr_assert_eq(tr.r.count, 12, "every record reported without a flush");
    cr_assert_eq(tr.r.failed, 0);
    cr_assert_geq(tr.at_ms[0] - sent0, LINGER_MS, "record 0 waited its linger");
    cr_assert_geq(tr.at_ms[1] - sent1, LINGER_MS, "record 1 waited its own linger");
    cr_assert_geq(tr.at_ms[1], tr.at_ms[0]);
    /* Full batches go at once; the last, half full, waits its linger. */
    cr_assert_lt(tr.at_ms[2] - sent_fill, LINGER_MS, "a full batch does not linger");
    cr_assert_geq(tr.at_ms[11] - sent_fill, LINGER_MS, "the open rest lingers");
    nagare_producer_destroy(p);
    reports_fini(&tr.r);
}

static void tune_linger_long(struct nagare_producer_config *c) { c->linger_ms = 600000; }

/* A flush closes every open batch at once, however long their linger. */
Test(client, flush_sends_every_open_batch_without_waiting_for_linger)
{
    bk_start(&B);
    cs_create_topic(&B, "flushall", 50);
    struct reports r;
    reports_init(&r, 100);
    nagare_producer *p = producer(&r, tune_linger_long);
    for (uint32_t i = 0; i < 100; i++) {
        send_one_to(p, "flushall", (int32_t)(i % 50), i, 10);
    }
    cr_assert_eq(nagare_producer_poll(p, 200), 0, "nothing goes before its linger");
    flush_ok(p, &r, 100); /* within its 60 s, a tenth of the linger */
    for (uint32_t i = 0; i < 100; i++) {
        cr_assert_eq(r.partition[i], (int32_t)(i % 50));
        cr_assert_eq(r.offset[i], (int64_t)(i / 50), "record %u", i);
    }
    nagare_producer_destroy(p);
    reports_fini(&r);
}

static void tune_retry_timeout(struct nagare_producer_config *c)
{
    c->delivery_timeout_ms = 1500;
    c->request_timeout_ms = 300;
    c->retry_backoff_ms = 50;
    c->linger_ms = 0;
}

/* The broker stops answering (SIGSTOP): each request times out, its batch
 * comes back for a retry with backoff, and is tried again until its
 * delivery timeout, which fails it then, not later, though it was in
 * flight (out of the timer walk's sight) when the walk last ran. */
Test(client, a_batch_back_for_retries_fails_at_its_delivery_timeout)
{
    bk_start(&B);
    cs_create_topic(&B, "stalled", 2);
    struct reports r;
    reports_init(&r, 4);
    nagare_producer *p = producer(&r, tune_retry_timeout);
    send_one_to(p, "stalled", 0, 0, 10);
    flush_ok(p, &r, 1);
    cr_assert_eq(kill(B.pid, SIGSTOP), 0);
    int64_t t = clock_mono_ms();
    send_one_to(p, "stalled", 1, 1, 10);
    int rc = nagare_producer_flush(p, 10000);
    int64_t took = clock_mono_ms() - t;
    cr_assert_eq(kill(B.pid, SIGCONT), 0);
    cr_assert_eq(rc, 0, "flush: %s", nagare_strerror(rc));
    cr_assert_eq(r.count, 2);
    cr_assert_eq(r.failed, 1);
    cr_assert_eq(r.first_err, -NAGARE_ETIMEOUT);
    cr_assert_geq(took, 1500 - 50, "not before its delivery timeout: %lld ms", (long long)took);
    cr_assert_lt(took, 1500 + 300 + 1500, "soon after it: %lld ms", (long long)took);
    nagare_producer_destroy(p);
    reports_fini(&r);
}

static void tune_retry_timeout_one(struct nagare_producer_config *c)
{
    tune_retry_timeout(c);
    c->inflight_max = 1;
}

/* Batches past their linger that stay open while their partition cannot
 * send (the broker stopped answering) still fail at their delivery
 * timeout. */
Test(client, records_held_past_their_linger_fail_at_their_delivery_timeout)
{
    bk_start(&B);
    cs_create_topic(&B, "held", 1);
    struct reports r;
    reports_init(&r, 4);
    nagare_producer *p = producer(&r, tune_retry_timeout_one);
    send_one_to(p, "held", 0, 0, 10);
    flush_ok(p, &r, 1);
    cr_assert_eq(kill(B.pid, SIGSTOP), 0);
    send_one_to(p, "held", 0, 1, 10);
    cr_assert_eq(nagare_producer_poll(p, 0), 0); /* goes out: the slot is free */
    send_one_to(p, "held", 0, 2, 10);
    cr_assert_eq(nagare_producer_poll(p, 0), 0); /* past its linger, held */
    send_one_to(p, "held", 0, 3, 10);
    int rc = nagare_producer_flush(p, 20000);
    cr_assert_eq(kill(B.pid, SIGCONT), 0);
    cr_assert_eq(rc, 0, "flush: %s", nagare_strerror(rc));
    cr_assert_eq(r.count, 4);
    cr_assert_eq(r.failed, 3);
    cr_assert_eq(r.first_err, -NAGARE_ETIMEOUT);
    nagare_producer_destroy(p);
    reports_fini(&r);
}

/* A send checks its topic name unless it is the name last sent to (only
 * valid names ever get a topic entry): names that extend, shorten or
 * resemble the last one are still checked. */
Test(client, topic_names_are_checked_unless_last_sent_to)
{
    bk_start(&B);
    cs_create_topic(&B, "named", 1);
    struct reports r;
    reports_init(&r, 4);
    nagare_producer *p = producer(&r, NULL);
    struct nagare_record rec = {.topic = "named",
                                .partition = 0,
                                .key_len = -1,
                                .value = "x",
                                .value_len = 1,
                                .opaque = (void *)(uintptr_t)0};
    cr_assert_eq(nagare_send(p, &rec), 0);
    const char *bad[] = {"named/", "named\n", "name\x01", "..", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rec.topic = bad[i];
        cr_assert_eq(nagare_send(p, &rec), -NAGARE_EBADNAME, "name %zu", i);
    }
    char longest[PROTO_TOPIC_NAME_BYTES_MAX + 2];
    memset(longest, 'n', sizeof(longest) - 1);
    longest[sizeof(longest) - 1] = '\0';
    memcpy(longest, "named", 5);
    rec.topic = longest;
    cr_assert_eq(nagare_send(p, &rec), -NAGARE_EBADNAME, "one byte too long");
    rec.topic = "named";
    rec.opaque = (void *)(uintptr_t)1;
    cr_assert_eq(nagare_send(p, &rec), 0);
    flush_ok(p, &r, 2);
    nagare_producer_destroy(p);
    reports_fini(&r);
    bk_stop(&B);
}
