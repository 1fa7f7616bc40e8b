/* Integration tests for libnagare (client/nagare.h), all against the real
 * nagared on an ephemeral port (tests/broker_support.h): producer, consumer
 * and admin client, retries across a broker restart, a broker that cannot
 * be reached. */
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "client/nagare.h"
#include "tests/broker_support.h"

/* Record timestamps: a fixed epoch, so time lookups are exact. */
#define T0 1700000000000LL
#define WAIT_MS 30000

static struct bk B;
static char bootstrap[64];

static void setup(void) { bk_init(&B); }
static void teardown(void) { bk_fini(&B); }

TestSuite(client, .init = setup, .fini = teardown, .timeout = 240);

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void start(void)
{
    bk_start(&B);
    snprintf(bootstrap, sizeof(bootstrap), "127.0.0.1:%u", B.port);
}

static nagare_admin *admin(void)
{
    nagare_admin *a;
    int rc = nagare_admin_new(bootstrap, 10000, &a);
    cr_assert_eq(rc, 0, "admin: %s", nagare_strerror(rc));
    return a;
}

static void create_topic(const char *name, int32_t partitions)
{
    nagare_admin *a = admin();
    struct nagare_topic_config c;
    nagare_topic_config_default(&c);
    c.partitions = partitions;
    int rc = nagare_topic_create(a, name, &c);
    cr_assert_eq(rc, 0, "create %s: %s", name, nagare_strerror(rc));
    nagare_admin_destroy(a);
}

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
    int32_t *partition;  /* by record index */
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
    c.bootstrap = bootstrap;
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
    c.bootstrap = bootstrap;
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
    snprintf(bootstrap, sizeof(bootstrap), "127.0.0.1:%u", closed_port());
    struct nagare_producer_config pc;
    nagare_producer_config_default(&pc);
    pc.bootstrap = bootstrap;
    pc.request_timeout_ms = 2000;
    nagare_producer *p = (nagare_producer *)1;
    int64_t t = mono_ms();
    int rc = nagare_producer_new(&pc, &p);
    cr_assert_eq(rc, -ECONNREFUSED, "producer: %s", nagare_strerror(rc));
    cr_assert_null(p);
    cr_assert_str_eq(nagare_strerror(rc), strerror(ECONNREFUSED));

    struct nagare_consumer_config cc;
    nagare_consumer_config_default(&cc);
    cc.bootstrap = bootstrap;
    nagare_consumer *k;
    cr_assert_eq(nagare_consumer_new(&cc, &k), -ECONNREFUSED);
    nagare_admin *a;
    cr_assert_eq(nagare_admin_new(bootstrap, 2000, &a), -ECONNREFUSED);
    cr_assert_lt(mono_ms() - t, 2000, "refused connections fail at once");

    /* Something that accepts and never answers: the handshake times out. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(listen(fd, 4), 0);
    socklen_t len = sizeof(sa);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    snprintf(bootstrap, sizeof(bootstrap), "127.0.0.1:%u", ntohs(sa.sin_port));
    pc.request_timeout_ms = 500;
    t = mono_ms();
    rc = nagare_producer_new(&pc, &p);
    int64_t took = mono_ms() - t;
    cr_assert_eq(rc, -NAGARE_ETIMEOUT, "silent broker: %s", nagare_strerror(rc));
    cr_assert(took >= 450 && took < 1500, "took %lld ms", (long long)took);
    cr_assert_eq(nagare_admin_new(bootstrap, 300, &a), -NAGARE_ETIMEOUT);
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
        struct nagare_record rec = {
            .topic = topic, .partition = NAGARE_PARTITION_ANY, .key = key,
            .key_len = key_of(i, key), .value = value, .value_len = (ssize_t)value_of(seed, i, value),
            .timestamp_ms = T0 + i, .opaque = (void *)(uintptr_t)i};
        send_record(p, &rec);
    }
}

Test(client, keyed_records_round_trip_over_four_partitions)
{
    start();
    create_topic("keyed", 4);
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
