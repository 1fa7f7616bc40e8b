/* Integration tests of share groups against the real nagared: competing
 * consumers on one partition (every record accepted exactly once, no
 * record leased twice at once), lock expiry and long polls, the in-flight
 * window, dead letters (max deliveries and reject) with their headers,
 * redrive (and a second one adding nothing), and share state surviving a
 * kill -9. Raw frames through the codec, over tests/broker_support.h. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/broker_support.h"

#define CID proto_str_make("share-it")
#define RANGES_MAX 1024
#define HEADERS_MAX 16

static struct bk B;
static uint8_t batch[BT_BYTES_MAX];
static struct batch_zctx Z; /* find_record() reads zstd batches with it */

static void setup(void) { bk_init(&B); }
static void teardown(void)
{
    bk_fini(&B);
    batch_zctx_fini(&Z);
}

TestSuite(share, .init = setup, .fini = teardown, .timeout = 180);

/* ---- the share apis as a test drives them ---- */

struct range {
    int64_t first;
    int64_t last;
    int16_t delivery_count;
};

/* One partition of a ShareFetch answer; records is a malloc'd copy. */
struct sfetched {
    int err; /* the body's */
    char member[64];
    int part_err;
    struct range ranges[RANGES_MAX];
    uint32_t range_count;
    uint8_t *records;
    size_t records_bytes;
};

static void sfetched_free(struct sfetched *f)
{
    free(f->records);
    f->records = NULL;
}

static uint32_t sfetch_send(struct cl *c, const char *group, const char *member, const char *topic,
                            int32_t partition, int32_t wait_ms, int32_t records_max)
{
    uint32_t corr = cl_next_corr(c);
    struct proto_enc e;
    struct proto_share_fetch_req req = {proto_str_make(group), proto_str_make(member), wait_ms,
                                        records_max};
    proto_share_fetch_req_begin(&e, cl_wr(c), 0, corr, CID, &req);
    proto_enc_topic(&e, proto_str_make(topic));
    proto_enc_partition_index(&e, partition);
    cr_assert_eq(proto_enc_end(&e), 0);
    cr_assert_eq(cl_send_wr(c), 0);
    return corr;
}

static void sfetch_recv(struct cl *c, uint32_t corr, struct sfetched *out)
{
    struct rd body;
    cl_expect(c, corr, &body);
    struct proto_share_fetch_resp head;
    struct proto_dec d;
    cr_assert_eq(proto_share_fetch_resp_decode(&body, 0, &head, &d), 0);
    *out = (struct sfetched){.err = head.err};
    cr_assert_eq(proto_str_copy(head.member_id, out->member, sizeof(out->member)), 0);
    struct proto_topic t;
    if (head.err != 0) {
        cr_assert_not(proto_next_topic(&d, &t), "no topics with a request-wide error");
        return;
    }
    cr_assert(proto_next_topic(&d, &t));
    struct proto_share_fetch_resp_partition p;
    cr_assert(proto_share_fetch_resp_next_partition(&d, &p));
    out->part_err = p.err;
    cr_assert_leq(p.acquired_count, RANGES_MAX);
    for (uint32_t i = 0; i < p.acquired_count; i++) {
        struct proto_share_acquired a;
        proto_share_fetch_acquired(&p, i, &a);
        out->ranges[i] = (struct range){a.first, a.last, a.delivery_count};
    }
    out->range_count = p.acquired_count;
    out->records = malloc(p.records_bytes + 1);
    cr_assert_not_null(out->records);
    memcpy(out->records, p.records, p.records_bytes);
    out->records_bytes = p.records_bytes;
    cr_assert_not(proto_share_fetch_resp_next_partition(&d, &p));
    cr_assert_not(proto_next_topic(&d, &t));
}

/* ShareFetch of one partition; member "" makes a new member. */
static void sfetch(struct cl *c, const char *group, const char *member, const char *topic,
                   int32_t partition, int32_t wait_ms, int32_t records_max, struct sfetched *out)
{
    sfetch_recv(c, sfetch_send(c, group, member, topic, partition, wait_ms, records_max), out);
}

/* ShareAck of ranges of one partition, all of one type; returns its error. */
static int sack(struct cl *c, const char *group, const char *member, const char *topic,
                int32_t partition, const struct range *ranges, uint32_t n, int8_t type)
{
    struct proto_share_ack acks[RANGES_MAX];
    cr_assert_leq(n, RANGES_MAX);
    for (uint32_t i = 0; i < n; i++) {
        acks[i] = (struct proto_share_ack){ranges[i].first, ranges[i].last, type};
    }
    uint32_t corr = cl_next_corr(c);
    struct proto_enc e;
    struct proto_share_ack_req req = {proto_str_make(group), proto_str_make(member)};
    proto_share_ack_req_begin(&e, cl_wr(c), 0, corr, CID, &req);
    proto_enc_topic(&e, proto_str_make(topic));
    proto_share_ack_req_partition(&e, &(struct proto_share_ack_req_partition){
                                          .partition = partition, .ack_count = n, .acks = acks});
    cr_assert_eq(proto_enc_end(&e), 0);
    cr_assert_eq(cl_send_wr(c), 0);
    struct rd body;
    cl_expect(c, corr, &body);
    struct proto_dec d;
    cr_assert_eq(proto_share_ack_resp_decode(&body, 0, &d), 0);
    struct proto_topic t;
    struct proto_partition_result r;
    cr_assert(proto_next_topic(&d, &t));
    cr_assert(proto_next_partition_result(&d, &r));
    cr_assert_eq(r.partition, partition);
    return r.err;
}

/* Acks one offset. */
static int sack1(struct cl *c, const char *group, const char *member, const char *topic,
                 int64_t offset, int8_t type)
{
    struct range r = {offset, offset, 0};
    return sack(c, group, member, topic, 0, &r, 1, type);
}

/* DlqRedrive at version (records_max from v1); returns the error, *out
 * the answer. */
static int redrive_version(struct cl *c, uint16_t version, const char *topic, int32_t records_max,
                           struct proto_dlq_redrive_resp *out)
{
    uint32_t corr = cl_next_corr(c);
    struct proto_dlq_redrive_req req = {proto_str_make(topic), records_max};
    cr_assert_eq(proto_dlq_redrive_req_encode(cl_wr(c), version, corr, CID, &req), 0);
    cr_assert_eq(cl_send_wr(c), 0);
    struct rd body;
    cl_expect(c, corr, &body);
    cr_assert_eq(proto_dlq_redrive_resp_decode(&body, version, out), 0);
    return out->err;
}

/* DlqRedrive v0 (all at once); returns the error, *records_out the count. */
static int redrive(struct cl *c, const char *topic, int64_t *records_out)
{
    struct proto_dlq_redrive_resp out;
    int rc = redrive_version(c, 0, topic, PROTO_REDRIVE_RECORDS_ALL, &out);
    *records_out = out.records;
    return rc;
}

/* ---- records ---- */

/* A record as a test looks at it: copies of its key, value and headers. */
struct rec {
    int64_t offset;
    char key[64];
    char value[1024];
    uint32_t header_count;
    char hkey[HEADERS_MAX][64];
    char hvalue[HEADERS_MAX][256];
};

/* Copies up to cap - 1 bytes (a longer value is cut: tests compare prefixes). */
static void copy_bytes(char *out, size_t cap, const uint8_t *p, int32_t len)
{
    size_t n = len < 0 ? 0 : (size_t)len;
    n = n < cap - 1 ? n : cap - 1;
    if (n > 0) {
        memcpy(out, p, n);
    }
    out[n] = '\0';
}

/* Decompresses zstd batches for find_record(). */
static uint8_t zout[2 * BT_BYTES_MAX];

/* Finds the record at offset in whole batches; false when none holds it. */
static bool find_record(const uint8_t *buf, size_t len, int64_t offset, struct rec *out)
{
    const uint8_t *b;
    size_t bytes;
    for (size_t i = 0; bt_at(buf, len, i, &b, &bytes); i++) {
        struct batch_reader br;
        if (Z.dctx == NULL) {
            cr_assert_eq(batch_zctx_init(&Z, BT_BYTES_MAX, 1), 0);
        }
        cr_assert_eq(batch_reader_open(&br, b, bytes, BATCH_BYTES_LIMIT, &Z, zout, sizeof(zout)),
                     0);
        struct batch_record r;
        while (batch_reader_next(&br, &r) == 1) {
            if (r.offset != offset) {
                continue;
            }
            *out = (struct rec){.offset = offset};
            copy_bytes(out->key, sizeof(out->key), r.key, r.key_len);
            copy_bytes(out->value, sizeof(out->value), r.value, r.value_len);
            struct batch_kv kv;
            while (batch_record_next_header(&r, &kv) == 1) {
                cr_assert_lt(out->header_count, HEADERS_MAX);
                uint32_t h = out->header_count++;
                copy_bytes(out->hkey[h], sizeof(out->hkey[h]), kv.key, kv.key_len);
                copy_bytes(out->hvalue[h], sizeof(out->hvalue[h]), kv.value, kv.value_len);
            }
            return true;
        }
    }
    return false;
}

/* The value of header key, or NULL. */
static const char *header(const struct rec *r, const char *key)
{
    for (uint32_t i = 0; i < r->header_count; i++) {
        if (strcmp(r->hkey[i], key) == 0) {
            return r->hvalue[i];
        }
    }
    return NULL;
}

/* Produces `records` records seeded seed (keys "k<seed>-<i>"), acks all. */
static int64_t produce(struct cl *c, const char *topic, uint32_t records, uint32_t seed)
{
    size_t len = bt_make(batch, sizeof(batch), records, seed, 1700000000000LL, -1, 0, -1);
    int64_t base = -1;
    cr_assert_eq(rq_produce(c, topic, 0, batch, len, PROTO_ACKS_ALL, &base), 0);
    return base;
}

/* Produces one record with key, value and one header "h" = "v". */
static int64_t produce_one(struct cl *c, const char *topic, const char *key, const char *value)
{
    struct batch_builder b;
    batch_builder_init(&b, batch, sizeof(batch), BATCH_CODEC_NONE, -1, 0, -1);
    struct batch_kv kv = {(const uint8_t *)"h", 1, (const uint8_t *)"v", 1};
    cr_assert_eq(batch_builder_add(&b, 1700000000000LL, key, (int32_t)strlen(key), value,
                                   (int32_t)strlen(value), &kv, 1),
                 0);
    size_t len = 0;
    cr_assert_eq(batch_builder_finish(&b, NULL, &len), 0);
    int64_t base = -1;
    cr_assert_eq(rq_produce(c, topic, 0, batch, len, PROTO_ACKS_ALL, &base), 0);
    return base;
}

/* Checks every acquired offset is in the fetched batches. */
static void assert_covered(const struct sfetched *f)
{
    for (uint32_t i = 0; i < f->range_count; i++) {
        for (int64_t o = f->ranges[i].first; o <= f->ranges[i].last; o++) {
            struct rec r;
            cr_assert(find_record(f->records, f->records_bytes, o, &r), "offset %lld sent",
                      (long long)o);
        }
    }
}

static uint32_t range_records(const struct sfetched *f)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < f->range_count; i++) {
        n += (uint32_t)(f->ranges[i].last - f->ranges[i].first + 1);
    }
    return n;
}

/* ---- competing consumers ---- */

#define CONSUMERS 4
#define RECORDS 600

struct consumer {
    struct cl c;
    char member[64];
    struct range held[RANGES_MAX];
    uint32_t held_count;
    uint32_t accepted;
    uint32_t released;
};

/* Deterministic choices. */
static uint32_t next_rand(uint64_t *x)
{
    *x = *x * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(*x >> 33);
}

/* Consumer k fetches; every offset it gets must be free (leased by no one)
 * and not accepted yet, and its key the one produced there. */
static void fetch_step(struct consumer *cs, uint32_t k, int *lease, const int *accepted)
{
    struct consumer *me = &cs[k];
    struct sfetched f;
    sfetch(&me->c, "workers", me->member, "jobs", 0, 0, 1 + (int32_t)(k * 5), &f);
    cr_assert_eq(f.err, 0);
    cr_assert_eq(f.part_err, 0);
    strcpy(me->member, f.member);
    assert_covered(&f);
    for (uint32_t i = 0; i < f.range_count; i++) {
        for (int64_t o = f.ranges[i].first; o <= f.ranges[i].last; o++) {
            cr_assert_eq(lease[o], -1, "offset %lld leased by %d and %u at once", (long long)o,
                         lease[o], k);
            cr_assert_eq(accepted[o], 0, "offset %lld handed out after its accept", (long long)o);
            lease[o] = (int)k;
            struct rec r;
            cr_assert(find_record(f.records, f.records_bytes, o, &r));
            char want[32];
            snprintf(want, sizeof(want), "k%u-%lld", 7u, (long long)o);
            cr_assert_str_eq(r.key, want);
        }
        cr_assert_lt(me->held_count, RANGES_MAX);
        me->held[me->held_count++] = f.ranges[i];
    }
    sfetched_free(&f);
}

/* Consumer k acks what it holds: mostly accepts, sometimes releases a
 * range that has not been delivered often (it comes back to someone). */
static void ack_step(struct consumer *cs, uint32_t k, int *lease, int *accepted, uint64_t *rnd)
{
    struct consumer *me = &cs[k];
    for (uint32_t i = 0; i < me->held_count; i++) {
        const struct range *r = &me->held[i];
        bool release = r->delivery_count < 3 && next_rand(rnd) % 5 == 0;
        for (int64_t o = r->first; o <= r->last; o++) {
            lease[o] = -1; /* before the answer: a release is at once others' */
        }
        int err = sack(&me->c, "workers", me->member, "jobs", 0, r, 1,
                       release ? PROTO_ACK_RELEASE : PROTO_ACK_ACCEPT);
        cr_assert_eq(err, 0, "ack %lld..%lld: %s", (long long)r->first, (long long)r->last,
                     err_str(err));
        for (int64_t o = r->first; o <= r->last && !release; o++) {
            accepted[o]++;
        }
        *(release ? &me->released : &me->accepted) += (uint32_t)(r->last - r->first + 1);
    }
    me->held_count = 0;
}

Test(share, four_consumers_on_one_partition_accept_each_record_exactly_once)
{
    bk_start(&B);
    struct consumer cs[CONSUMERS] = {0};
    for (uint32_t k = 0; k < CONSUMERS; k++) {
        cl_connect(&cs[k].c, B.port, CL_TIMEOUT_MS_DEFAULT);
    }
    cr_assert_eq(rq_create(&cs[0].c, "jobs", 1), 0);
    for (int64_t at = 0; at < RECORDS; at += 40) {
        /* 40 records a batch, keyed by their offsets: "k7-<offset>" */
        struct batch_builder b;
        batch_builder_init(&b, batch, sizeof(batch), BATCH_CODEC_NONE, -1, 0, -1);
        for (int64_t i = at; i < at + 40; i++) {
            char key[32];
            int kl = snprintf(key, sizeof(key), "k7-%lld", (long long)i);
            cr_assert_eq(batch_builder_add(&b, 1700000000000LL + i, key, kl, "v", 1, NULL, 0), 0);
        }
        size_t bytes = 0;
        cr_assert_eq(batch_builder_finish(&b, NULL, &bytes), 0);
        int64_t base;
        cr_assert_eq(rq_produce(&cs[0].c, "jobs", 0, batch, bytes, PROTO_ACKS_ALL, &base), 0);
        cr_assert_eq(base, at);
    }
    int lease[RECORDS];
    int accepted[RECORDS] = {0};
    for (int i = 0; i < RECORDS; i++) {
        lease[i] = -1;
    }
    uint64_t rnd = 42;
    uint32_t done = 0;
    for (int step = 0; step < 20000 && done < RECORDS; step++) {
        uint32_t k = next_rand(&rnd) % CONSUMERS;
        if (cs[k].held_count > 0 && next_rand(&rnd) % 2 == 0) {
            ack_step(cs, k, lease, accepted, &rnd);
        } else {
            fetch_step(cs, k, lease, accepted);
        }
        done = 0;
        for (int i = 0; i < RECORDS; i++) {
            done += accepted[i] == 1;
            cr_assert_leq(accepted[i], 1, "offset %d accepted twice", i);
        }
    }
    cr_assert_eq(done, RECORDS, "every record accepted");
    for (uint32_t k = 0; k < CONSUMERS; k++) {
        cr_assert_gt(cs[k].accepted, 0, "consumer %u took part", k);
        cr_assert_gt(cs[k].released, 0, "consumer %u released some", k);
    }
    /* Nothing is left to hand out, to anyone. */
    for (uint32_t k = 0; k < CONSUMERS; k++) {
        struct sfetched f;
        sfetch(&cs[k].c, "workers", cs[k].member, "jobs", 0, 0, 100, &f);
        cr_assert_eq(f.err, 0);
        cr_assert_eq(f.range_count, 0);
        cr_assert_eq(f.records_bytes, 0);
        sfetched_free(&f);
        cl_close(&cs[k].c);
    }
    bk_stop(&B);
}

/* ---- locks, long polls, the window ---- */

Test(share, records_of_a_consumer_that_stops_acking_go_to_others_when_the_lock_expires)
{
    bk_set(&B, "share_lock_ms=1000");
    bk_start(&B);
    struct cl a;
    struct cl b;
    cl_connect(&a, B.port, CL_TIMEOUT_MS_DEFAULT);
    cl_connect(&b, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&a, "t", 1), 0);
    produce(&a, "t", 10, 1);
    struct sfetched fa;
    sfetch(&a, "g", "", "t", 0, 0, 100, &fa);
    cr_assert_eq(fa.range_count, 1);
    cr_assert_eq(fa.ranges[0].first, 0);
    cr_assert_eq(fa.ranges[0].last, 9);
    cr_assert_eq(fa.ranges[0].delivery_count, 1);
    assert_covered(&fa);
    /* b waits: a's records come to it once their lock has expired. */
    int64_t t0 = clock_mono_ms();
    struct sfetched fb;
    sfetch(&b, "g", "", "t", 0, 5000, 100, &fb);
    int64_t waited = clock_mono_ms() - t0;
    cr_assert_geq(waited, 800, "answered after %lld ms, before the lock ran out",
                  (long long)waited);
    cr_assert_lt(waited, 4000, "the expiry woke the long poll");
    cr_assert_str_neq(fb.member, fa.member);
    cr_assert_eq(fb.range_count, 1);
    cr_assert_eq(fb.ranges[0].first, 0);
    cr_assert_eq(fb.ranges[0].last, 9);
    cr_assert_eq(fb.ranges[0].delivery_count, 2);
    assert_covered(&fb);
    /* a's late acknowledgement is refused; b's is taken. */
    cr_assert_eq(sack(&a, "g", fa.member, "t", 0, fa.ranges, 1, PROTO_ACK_ACCEPT),
                 -NG_ENOT_ACQUIRED);
    cr_assert_eq(sack(&b, "g", fb.member, "t", 0, fb.ranges, 1, PROTO_ACK_ACCEPT), 0);
    /* A long poll is woken by new data... */
    uint32_t corr = sfetch_send(&a, "g", fa.member, "t", 0, 5000, 100);
    usleep(100 * 1000);
    cr_assert_eq(produce(&b, "t", 1, 2), 10);
    struct sfetched f;
    sfetch_recv(&a, corr, &f);
    cr_assert_eq(f.range_count, 1);
    cr_assert_eq(f.ranges[0].first, 10);
    sfetched_free(&f);
    /* ... and by a release. */
    corr = sfetch_send(&b, "g", fb.member, "t", 0, 5000, 100);
    usleep(100 * 1000);
    cr_assert_eq(sack1(&a, "g", fa.member, "t", 10, PROTO_ACK_RELEASE), 0);
    sfetch_recv(&b, corr, &f);
    cr_assert_eq(f.range_count, 1);
    cr_assert_eq(f.ranges[0].first, 10);
    cr_assert_eq(f.ranges[0].delivery_count, 2);
    sfetched_free(&f);
    /* Nothing free: the wait runs out, empty. */
    t0 = clock_mono_ms();
    sfetch(&a, "g", fa.member, "t", 0, 300, 100, &f);
    cr_assert_geq(clock_mono_ms() - t0, 250);
    cr_assert_eq(f.err, 0);
    cr_assert_eq(f.range_count, 0);
    sfetched_free(&f);
    /* A parked share fetch does not hold a stop up. */
    (void)sfetch_send(&a, "g", fa.member, "t", 0, 10000, 100);
    usleep(100 * 1000);
    sfetched_free(&fa);
    sfetched_free(&fb);
    bk_stop(&B);
    cl_close(&a);
    cl_close(&b);
}

Test(share, the_in_flight_window_stops_new_offsets_until_acks_advance_it)
{
    bk_set(&B, "share_inflight_max=10");
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, "t", 1), 0);
    produce(&c, "t", 30, 1);
    struct sfetched a;
    sfetch(&c, "g", "", "t", 0, 0, 100, &a);
    cr_assert_eq(range_records(&a), 10, "one window");
    cr_assert_eq(a.ranges[0].first, 0);
    struct sfetched b;
    sfetch(&c, "g", "", "t", 0, 0, 100, &b);
    cr_assert_eq(b.range_count, 0, "the window is full");
    struct range tail = {5, 9, 1};
    cr_assert_eq(sack(&c, "g", a.member, "t", 0, &tail, 1, PROTO_ACK_ACCEPT), 0);
    sfetched_free(&b);
    sfetch(&c, "g", b.member, "t", 0, 0, 100, &b);
    cr_assert_eq(b.range_count, 0, "offset 0 still holds the window's start");
    struct range head = {0, 4, 1};
    cr_assert_eq(sack(&c, "g", a.member, "t", 0, &head, 1, PROTO_ACK_ACCEPT), 0);
    sfetched_free(&b);
    sfetch(&c, "g", b.member, "t", 0, 0, 100, &b);
    cr_assert_eq(b.range_count, 1);
    cr_assert_eq(b.ranges[0].first, 10);
    cr_assert_eq(b.ranges[0].last, 19);
    sfetched_free(&a);
    sfetched_free(&b);
    cl_close(&c);
    bk_stop(&B);
}

/* ---- dead letters and redrive ---- */

/* Fetches topic from offset until a batch comes (the topic may not exist
 * yet: it is created on demand), within 5 s. */
static void fetch_until(struct cl *c, const char *topic, int64_t offset, struct fetched *out)
{
    int64_t until = clock_mono_ms() + 5000;
    for (;;) {
        rq_fetch(c, topic, 0, offset, out);
        if (out->err == 0 && out->records_bytes > 0) {
            return;
        }
        rq_fetched_free(out);
        cr_assert_lt(clock_mono_ms(), until, "nothing at %s offset %lld", topic, (long long)offset);
        usleep(20 * 1000);
    }
}

static void assert_dead_letter(struct cl *c, int64_t dlq_offset, const char *key, const char *value,
                               int64_t offset, const char *count, const char *reason)
{
    struct fetched f;
    fetch_until(c, "orders.dlq", dlq_offset, &f);
    struct rec r;
    cr_assert(find_record(f.records, f.records_bytes, dlq_offset, &r));
    cr_assert_str_eq(r.key, key);
    cr_assert_str_eq(r.value, value);
    cr_assert_str_eq(header(&r, "h"), "v", "the original headers are kept");
    cr_assert_str_eq(header(&r, "nagare.dlq.topic"), "orders");
    cr_assert_str_eq(header(&r, "nagare.dlq.partition"), "0");
    char want[32];
    snprintf(want, sizeof(want), "%lld", (long long)offset);
    cr_assert_str_eq(header(&r, "nagare.dlq.offset"), want);
    cr_assert_str_eq(header(&r, "nagare.dlq.delivery-count"), count);
    cr_assert_str_eq(header(&r, "nagare.dlq.reason"), reason);
    cr_assert_eq(r.header_count, 6);
    rq_fetched_free(&f);
}

/* Offsets 0..2; 1 is released until it has been delivered 5 times. */
static void release_until_dead(struct cl *c, char member[64])
{
    for (int16_t delivery = 1; delivery <= 5; delivery++) {
        struct sfetched f;
        sfetch(c, "g", member, "orders", 0, 0, 10, &f);
        strcpy(member, f.member);
        assert_covered(&f);
        if (delivery == 1) {
            cr_assert_eq(f.range_count, 1);
            cr_assert_eq(f.ranges[0].last, 2);
            cr_assert_eq(sack1(c, "g", member, "orders", 0, PROTO_ACK_ACCEPT), 0);
            cr_assert_eq(sack1(c, "g", member, "orders", 2, PROTO_ACK_ACCEPT), 0);
        } else {
            cr_assert_eq(f.range_count, 1);
            cr_assert_eq(f.ranges[0].first, 1);
            cr_assert_eq(f.ranges[0].last, 1);
        }
        cr_assert_eq(f.ranges[0].delivery_count, delivery);
        cr_assert_eq(sack1(c, "g", member, "orders", 1, PROTO_ACK_RELEASE), 0);
        sfetched_free(&f);
    }
}

Test(share, poison_records_are_dead_lettered_with_headers_and_redriven_once)
{
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, "orders", 1), 0);
    cr_assert_eq(produce_one(&c, "orders", "key-0", "value-0"), 0);
    cr_assert_eq(produce_one(&c, "orders", "key-1", "poison"), 1);
    cr_assert_eq(produce_one(&c, "orders", "key-2", "value-2"), 2);
    char member[64] = "";
    release_until_dead(&c, member);
    assert_dead_letter(&c, 0, "key-1", "poison", 1, "5", "max deliveries");
    struct sfetched f;
    sfetch(&c, "g", member, "orders", 0, 0, 10, &f);
    cr_assert_eq(f.range_count, 0, "a dead letter is not delivered again");
    sfetched_free(&f);
    /* A reject sends it at once. */
    cr_assert_eq(produce_one(&c, "orders", "key-3", "rejected"), 3);
    sfetch(&c, "g", member, "orders", 0, 0, 10, &f);
    cr_assert_eq(f.range_count, 1);
    cr_assert_eq(f.ranges[0].first, 3);
    cr_assert_eq(sack1(&c, "g", member, "orders", 3, PROTO_ACK_REJECT), 0);
    sfetched_free(&f);
    assert_dead_letter(&c, 1, "key-3", "rejected", 3, "1", "rejected");
    /* Redrive republishes both to the source, without the nagare.dlq.* headers. */
    int64_t n = -1;
    cr_assert_eq(redrive(&c, "orders.dlq", &n), 0);
    cr_assert_eq(n, 2);
    cr_assert_eq(rq_latest(&c, "orders", 0), 6);
    struct fetched back;
    rq_fetch(&c, "orders", 0, 4, &back);
    struct rec r;
    cr_assert(find_record(back.records, back.records_bytes, 4, &r));
    cr_assert_str_eq(r.key, "key-1");
    cr_assert_str_eq(r.value, "poison");
    cr_assert_eq(r.header_count, 1);
    cr_assert_str_eq(header(&r, "h"), "v");
    cr_assert(find_record(back.records, back.records_bytes, 5, &r));
    cr_assert_str_eq(r.key, "key-3");
    rq_fetched_free(&back);
    /* A second redrive adds nothing. */
    cr_assert_eq(redrive(&c, "orders.dlq", &n), 0);
    cr_assert_eq(n, 0);
    cr_assert_eq(rq_latest(&c, "orders", 0), 6);
    /* The share group gets them as new records. */
    sfetch(&c, "g", member, "orders", 0, 0, 10, &f);
    cr_assert_eq(f.range_count, 1);
    cr_assert_eq(f.ranges[0].first, 4);
    cr_assert_eq(f.ranges[0].last, 5);
    cr_assert_eq(f.ranges[0].delivery_count, 1);
    sfetched_free(&f);
    cr_assert_eq(redrive(&c, "orders", &n), -NG_EBADARG);
    cr_assert_eq(redrive(&c, "nope.dlq", &n), -NG_EUNKNOWN_TOPIC);
    cr_assert_eq(redrive(&c, "bad name.dlq", &n), -NG_EBADNAME);
    cl_close(&c);
    bk_stop(&B);
}

Test(share, dead_letters_and_redrive_marks_survive_a_restart)
{
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, "orders", 1), 0);
    cr_assert_eq(produce_one(&c, "orders", "key-0", "value-0"), 0);
    struct sfetched f;
    sfetch(&c, "g", "", "orders", 0, 0, 10, &f);
    cr_assert_eq(sack1(&c, "g", f.member, "orders", 0, PROTO_ACK_REJECT), 0);
    sfetched_free(&f);
    struct fetched d;
    fetch_until(&c, "orders.dlq", 0, &d);
    rq_fetched_free(&d);
    int64_t n = -1;
    cr_assert_eq(redrive(&c, "orders.dlq", &n), 0);
    cr_assert_eq(n, 1);
    cl_close(&c);
    bk_stop(&B);
    bk_start(&B);
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(redrive(&c, "orders.dlq", &n), 0);
    cr_assert_eq(n, 0, "the mark survived");
    cr_assert_eq(rq_latest(&c, "orders.dlq", 0), 1, "the dead letter was not copied again");
    sfetch(&c, "g", "", "orders", 0, 0, 10, &f);
    cr_assert_eq(f.range_count, 1, "only the redriven record");
    cr_assert_eq(f.ranges[0].first, 1);
    sfetched_free(&f);
    cl_close(&c);
    bk_stop(&B);
}

/* Appends n dead letters of orders/0 to partition p of orders.dlq as one
 * batch, keys "k<first>".., as a share group's copies carry them. */
static void produce_dead(struct cl *c, int32_t p, int first, int n)
{
    struct batch_builder b;
    batch_builder_init(&b, batch, sizeof(batch), BATCH_CODEC_NONE, -1, 0, -1);
    struct batch_kv kv[2] = {
        {(const uint8_t *)"nagare.dlq.topic", 16, (const uint8_t *)"orders", 6},
        {(const uint8_t *)"nagare.dlq.partition", 20, (const uint8_t *)"0", 1},
    };
    for (int i = first; i < first + n; i++) {
        char key[16];
        int len = snprintf(key, sizeof(key), "k%d", i);
        cr_assert_eq(batch_builder_add(&b, 1700000000000LL, key, len, "dead", 4, kv, 2), 0);
    }
    size_t len = 0;
    cr_assert_eq(batch_builder_finish(&b, NULL, &len), 0);
    int64_t base = -1;
    cr_assert_eq(rq_produce(c, "orders.dlq", p, batch, len, PROTO_ACKS_ALL, &base), 0);
}

/* A v1 redrive of at most records_max; checks what it answers. */
static void redrive_step(struct cl *c, int32_t records_max, int64_t records, int64_t remaining)
{
    struct proto_dlq_redrive_resp out;
    cr_assert_eq(redrive_version(c, 1, "orders.dlq", records_max, &out), 0);
    cr_assert_eq(out.records, records, "limit %d: %lld republished", records_max,
                 (long long)out.records);
    cr_assert_eq(out.read, records, "nothing skipped");
    cr_assert_eq(out.remaining, remaining, "limit %d: %lld remain", records_max,
                 (long long)out.remaining);
}

Test(share, a_redrive_in_bounded_requests_republishes_each_record_once_across_a_restart)
{
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, "orders", 1), 0);
    cr_assert_eq(rq_create(&c, "orders.dlq", 2), 0);
    produce_dead(&c, 0, 0, 5); /* offsets 0-4 */
    produce_dead(&c, 0, 5, 3); /* 5-7 */
    produce_dead(&c, 1, 8, 2); /* partition 1: 0-1 */
    /* A step stops inside a batch; the next resumes there. */
    redrive_step(&c, 3, 3, 7);
    cr_assert_eq(rq_latest(&c, "orders", 0), 3);
    redrive_step(&c, 4, 4, 3);
    cl_close(&c);
    bk_stop(&B);
    /* The marks are durable: after a restart the next step goes on from
     * them, across into the next partition. */
    bk_start(&B);
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    redrive_step(&c, 2, 2, 1);
    redrive_step(&c, 100, 1, 0);
    redrive_step(&c, 100, 0, 0);
    int64_t n = -1;
    cr_assert_eq(redrive(&c, "orders.dlq", &n), 0);
    cr_assert_eq(n, 0, "v0 starts at the same marks");
    /* A step of no records is refused (the request, not its body). */
    uint32_t corr = cl_next_corr(&c);
    struct proto_dlq_redrive_req none = {proto_str_make("orders.dlq"), 0};
    cr_assert_eq(proto_dlq_redrive_req_encode(cl_wr(&c), 1, corr, CID, &none), 0);
    cr_assert_eq(cl_send_wr(&c), 0);
    struct proto_resp_header h;
    struct rd body;
    cr_assert_eq(cl_recv(&c, &h, &body), 0);
    cr_assert_eq(h.correlation_id, corr);
    cr_assert_eq(h.err, -NG_EBADARG);
    /* Each dead letter came back once, in order. */
    cr_assert_eq(rq_latest(&c, "orders", 0), 10);
    struct fetched back;
    rq_fetch(&c, "orders", 0, 0, &back);
    for (int i = 0; i < 10; i++) {
        struct rec r;
        char key[16];
        snprintf(key, sizeof(key), "k%d", i);
        cr_assert(find_record(back.records, back.records_bytes, i, &r), "offset %d", i);
        cr_assert_str_eq(r.key, key);
        cr_assert_eq(r.header_count, 0, "without the nagare.dlq.* headers");
    }
    rq_fetched_free(&back);
    cl_close(&c);
    bk_stop(&B);
}

/* ---- restart ---- */

static void kill_broker(void)
{
    cr_assert_eq(kill(B.pid, SIGKILL), 0);
    int status;
    cr_assert(bk_wait(B.pid, BK_STOP_TIMEOUT_MS, &status));
    B.pid = 0;
}

Test(share, share_state_survives_a_kill)
{
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, "t", 1), 0);
    produce(&c, "t", 20, 3);
    struct sfetched f;
    sfetch(&c, "g", "", "t", 0, 0, 20, &f);
    cr_assert_eq(range_records(&f), 20);
    struct range accepted = {0, 9, 1};
    struct range released = {10, 11, 1};
    cr_assert_eq(sack(&c, "g", f.member, "t", 0, &accepted, 1, PROTO_ACK_ACCEPT), 0);
    cr_assert_eq(sack(&c, "g", f.member, "t", 0, &released, 1, PROTO_ACK_RELEASE), 0);
    cl_close(&c);
    kill_broker(); /* the acks were answered: they are durable */
    bk_start(&B);
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    struct sfetched g;
    sfetch(&c, "g", "", "t", 0, 0, 100, &g);
    cr_assert_eq(g.range_count, 2);
    cr_assert_eq(g.ranges[0].first, 10);
    cr_assert_eq(g.ranges[0].last, 11);
    cr_assert_eq(g.ranges[0].delivery_count, 2, "the release was counted");
    cr_assert_eq(g.ranges[1].first, 12);
    cr_assert_eq(g.ranges[1].last, 19);
    cr_assert_eq(g.ranges[1].delivery_count, 1, "a lock in flight is not persisted");
    assert_covered(&g);
    /* The old member holds nothing now. */
    cr_assert_eq(sack1(&c, "g", f.member, "t", 12, PROTO_ACK_ACCEPT), -NG_ENOT_ACQUIRED);
    cr_assert_eq(sack(&c, "g", g.member, "t", 0, g.ranges, g.range_count, PROTO_ACK_ACCEPT), 0);
    cl_close(&c);
    bk_stop(&B); /* and a clean restart keeps it too */
    bk_start(&B);
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    struct sfetched h;
    sfetch(&c, "g", "", "t", 0, 0, 100, &h);
    cr_assert_eq(h.range_count, 0, "nothing accepted comes back");
    sfetched_free(&f);
    sfetched_free(&g);
    sfetched_free(&h);
    cl_close(&c);
    bk_stop(&B);
}

/* Bytes of the share state log's segments, and whether its first one is
 * still there. */
static uint64_t state_log_bytes(bool *first_kept)
{
    char path[BK_PATH_BYTES + 64];
    snprintf(path, sizeof(path), "%s/groups/share-state", B.data_dir);
    DIR *d = opendir(path);
    cr_assert_not_null(d);
    uint64_t total = 0;
    *first_kept = false;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n < 4 || strcmp(e->d_name + n - 4, ".log") != 0) {
            continue;
        }
        *first_kept = *first_kept || strcmp(e->d_name, "00000000000000000000.log") == 0;
        struct stat st;
        cr_assert_eq(fstatat(dirfd(d), e->d_name, &st, 0), 0);
        total += (uint64_t)st.st_size;
    }
    closedir(d);
    return total;
}

Test(share, the_state_log_is_compacted_and_replays_to_the_same_state)
{
    bk_set(&B, "internal_segment_bytes=4096");
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, "t", 1), 0);
    enum { ACCEPTED = 1500, RELEASED = 10, TOTAL = 1600 };
    produce(&c, "t", TOTAL, 5);
    char member[64] = "";
    for (int64_t i = 0; i < ACCEPTED; i++) { /* one state record each */
        struct sfetched f;
        sfetch(&c, "g", member, "t", 0, 0, 1, &f);
        cr_assert_eq(f.range_count, 1);
        cr_assert_eq(f.ranges[0].first, i);
        snprintf(member, sizeof(member), "%s", f.member);
        cr_assert_eq(sack1(&c, "g", member, "t", i, PROTO_ACK_ACCEPT), 0);
        sfetched_free(&f);
        if (i % 100 == 99) {
            usleep(60 * 1000); /* a housekeeping tick, where compaction runs */
        }
    }
    struct sfetched f;
    sfetch(&c, "g", member, "t", 0, 0, RELEASED, &f);
    cr_assert_eq(f.range_count, 1);
    cr_assert_eq(f.ranges[0].first, ACCEPTED);
    cr_assert_eq(f.ranges[0].last, ACCEPTED + RELEASED - 1);
    cr_assert_eq(sack(&c, "g", member, "t", 0, f.ranges, 1, PROTO_ACK_RELEASE), 0);
    sfetched_free(&f);
    usleep(200 * 1000);
    bool first_kept;
    uint64_t bytes = state_log_bytes(&first_kept);
    cr_assert_not(first_kept, "compaction deleted the oldest segments");
    cr_assert_lt(bytes, 8 * 4096, "the state log stays a few segments long: %lu bytes",
                 (unsigned long)bytes);
    cl_close(&c);
    bk_stop(&B);
    bk_start(&B);
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    struct sfetched g;
    sfetch(&c, "g", "", "t", 0, 0, 1000, &g);
    cr_assert_eq(g.range_count, 2);
    cr_assert_eq(g.ranges[0].first, ACCEPTED);
    cr_assert_eq(g.ranges[0].last, ACCEPTED + RELEASED - 1);
    cr_assert_eq(g.ranges[0].delivery_count, 2, "the releases were kept");
    cr_assert_eq(g.ranges[1].first, ACCEPTED + RELEASED);
    cr_assert_eq(g.ranges[1].last, TOTAL - 1);
    cr_assert_eq(g.ranges[1].delivery_count, 1);
    sfetched_free(&g);
    cl_close(&c);
    bk_stop(&B);
}

Test(share, a_topic_deleted_and_created_again_starts_its_share_state_afresh)
{
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, "t", 1), 0);
    produce(&c, "t", 20, 3);
    struct sfetched f;
    sfetch(&c, "g", "", "t", 0, 0, 10, &f);
    cr_assert_eq(sack(&c, "g", f.member, "t", 0, f.ranges, f.range_count, PROTO_ACK_ACCEPT), 0);
    sfetched_free(&f);
    cr_assert_eq(rq_delete(&c, "t"), 0);
    cr_assert_eq(rq_create(&c, "t", 1), 0);
    produce(&c, "t", 5, 4);
    sfetch(&c, "g", "", "t", 0, 0, 100, &f);
    cr_assert_eq(f.range_count, 1);
    cr_assert_eq(f.ranges[0].first, 0, "the old topic's acks do not apply");
    cr_assert_eq(f.ranges[0].last, 4);
    cr_assert_eq(f.ranges[0].delivery_count, 1);
    cr_assert_eq(sack(&c, "g", f.member, "t", 0, f.ranges, 1, PROTO_ACK_ACCEPT), 0);
    sfetched_free(&f);
    cl_close(&c);
    bk_stop(&B); /* the replay must not bring the old state back */
    bk_start(&B);
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    produce(&c, "t", 3, 5);
    sfetch(&c, "g", "", "t", 0, 0, 100, &f);
    cr_assert_eq(f.range_count, 1);
    cr_assert_eq(f.ranges[0].first, 5, "the new topic's acks were kept");
    cr_assert_eq(f.ranges[0].last, 7);
    sfetched_free(&f);
    cl_close(&c);
    bk_stop(&B);
}

/* ---- refusals ---- */

Test(share, api_versions_lists_the_share_apis)
{
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    uint32_t corr = rq_api_versions_send(&c);
    struct rd body;
    cl_expect(&c, corr, &body);
    struct proto_api_versions_resp v;
    cr_assert_eq(proto_api_versions_resp_decode(&body, 0, &v), 0);
    bool listed[PROTO_API_COUNT] = {false};
    for (uint32_t i = 0; i < v.api_count; i++) {
        listed[v.apis[i].api_key] = true;
    }
    cr_assert(listed[PROTO_API_SHARE_FETCH]);
    cr_assert(listed[PROTO_API_SHARE_ACK]);
    cr_assert(listed[PROTO_API_DLQ_REDRIVE]);
    cl_close(&c);
    bk_stop(&B);
}

Test(share, refuses_bad_groups_members_topics_and_acks)
{
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, "t", 1), 0);
    produce(&c, "t", 3, 1);
    struct sfetched f;
    sfetch(&c, "", "", "t", 0, 0, 10, &f);
    cr_assert_eq(f.err, -NG_EBADNAME);
    sfetch(&c, "g\x01", "", "t", 0, 0, 10, &f);
    cr_assert_eq(f.err, -NG_EBADNAME);
    sfetch(&c, "g", "12x", "t", 0, 0, 10, &f);
    cr_assert_eq(f.err, -NG_EUNKNOWN_MEMBER);
    sfetch(&c, "g", "99999999999999999999", "t", 0, 0, 10, &f);
    cr_assert_eq(f.err, -NG_EUNKNOWN_MEMBER, "an id never handed out");
    int64_t t0 = clock_mono_ms();
    sfetch(&c, "g", "", "nope", 0, 5000, 10, &f);
    cr_assert_eq(f.err, 0);
    cr_assert_eq(f.part_err, -NG_EUNKNOWN_TOPIC);
    cr_assert_lt(clock_mono_ms() - t0, 2000, "an error is answered at once");
    sfetched_free(&f);
    /* records_max 0: a member id, nothing acquired, at once. */
    struct sfetched b;
    sfetch(&c, "g", "", "t", 0, 5000, 0, &b);
    cr_assert_eq(b.err, 0);
    cr_assert_neq(b.member[0], '\0');
    cr_assert_eq(b.range_count, 0);
    struct sfetched a;
    sfetch(&c, "g", "", "t", 0, 0, 2, &a);
    cr_assert_eq(range_records(&a), 2);
    cr_assert_str_neq(a.member, b.member);
    cr_assert_eq(sack1(&c, "g", b.member, "t", 0, PROTO_ACK_ACCEPT), -NG_ENOT_ACQUIRED, "not b's");
    cr_assert_eq(sack1(&c, "g", a.member, "t", 2, PROTO_ACK_ACCEPT), -NG_ENOT_ACQUIRED);
    cr_assert_eq(sack1(&c, "g", a.member, "t", 7, PROTO_ACK_ACCEPT), -NG_ENOT_ACQUIRED);
    cr_assert_eq(sack1(&c, "other", a.member, "t", 0, PROTO_ACK_ACCEPT), -NG_ENOT_ACQUIRED);
    cr_assert_eq(sack1(&c, "g", a.member, "nope", 0, PROTO_ACK_ACCEPT), -NG_EUNKNOWN_TOPIC);
    cr_assert_eq(sack1(&c, "g", "abc", "t", 0, PROTO_ACK_ACCEPT), -NG_EUNKNOWN_MEMBER);
    cr_assert_eq(sack1(&c, "", a.member, "t", 0, PROTO_ACK_ACCEPT), -NG_EBADNAME);
    struct range backwards = {1, 0, 0};
    cr_assert_eq(sack(&c, "g", a.member, "t", 0, &backwards, 1, PROTO_ACK_ACCEPT), -NG_EBADARG);
    /* Ranges apply one by one: the first refusal is the partition's error. */
    struct range two[2] = {{0, 0, 0}, {2, 2, 0}};
    cr_assert_eq(sack(&c, "g", a.member, "t", 0, two, 2, PROTO_ACK_ACCEPT), -NG_ENOT_ACQUIRED);
    cr_assert_eq(sack1(&c, "g", a.member, "t", 0, PROTO_ACK_ACCEPT), -NG_ENOT_ACQUIRED,
                 "offset 0 was accepted by the first range");
    cr_assert_eq(sack1(&c, "g", a.member, "t", 1, PROTO_ACK_ACCEPT), 0);
    sfetched_free(&a);
    sfetched_free(&b);
    cl_close(&c);
    bk_stop(&B);
}

/* ---- more shapes ---- */

Test(share, expired_locks_past_the_maximum_dead_letter_compressed_records)
{
    bk_set(&B, "share_lock_ms=200");
    bk_set(&B, "share_delivery_max=2");
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, "z", 1), 0);
    struct batch_zctx z;
    cr_assert_eq(batch_zctx_init(&z, BT_BYTES_MAX, 1), 0);
    size_t len = bt_make_sized(batch, sizeof(batch), 3, 500, 9, BATCH_CODEC_ZSTD, &z);
    batch_zctx_fini(&z);
    int64_t base = -1;
    cr_assert_eq(rq_produce(&c, "z", 0, batch, len, PROTO_ACKS_ALL, &base), 0);
    char member[64] = "";
    for (int16_t delivery = 1; delivery <= 2; delivery++) {
        struct sfetched f;
        sfetch(&c, "g", member, "z", 0, 2000, 10, &f);
        strcpy(member, f.member);
        cr_assert_eq(f.range_count, 1);
        cr_assert_eq(f.ranges[0].last, 2);
        cr_assert_eq(f.ranges[0].delivery_count, delivery);
        assert_covered(&f);
        sfetched_free(&f);
        /* no ack: the lock runs out */
    }
    struct fetched d;
    fetch_until(&c, "z.dlq", 0, &d);
    struct fetched src;
    rq_fetch(&c, "z", 0, 0, &src);
    for (int64_t o = 0; o < 3; o++) {
        struct rec dead;
        struct rec orig;
        int64_t until = clock_mono_ms() + 5000;
        while (!find_record(d.records, d.records_bytes, o, &dead)) {
            cr_assert_lt(clock_mono_ms(), until, "dead letter %lld", (long long)o);
            rq_fetched_free(&d);
            fetch_until(&c, "z.dlq", 0, &d);
        }
        cr_assert(find_record(src.records, src.records_bytes, o, &orig));
        cr_assert_str_eq(dead.key, orig.key);
        cr_assert_str_eq(dead.value, orig.value);
        cr_assert_str_eq(header(&dead, "nagare.dlq.reason"), "max deliveries");
        cr_assert_str_eq(header(&dead, "nagare.dlq.delivery-count"), "2");
    }
    rq_fetched_free(&d);
    rq_fetched_free(&src);
    struct sfetched f;
    sfetch(&c, "g", member, "z", 0, 500, 10, &f);
    cr_assert_eq(f.range_count, 0, "dead letters are not delivered again");
    sfetched_free(&f);
    cl_close(&c);
    bk_stop(&B);
}

Test(share, one_fetch_spans_partitions_and_an_answer_stays_within_the_frame)
{
    bk_set(&B, "frame_bytes_max=65536");
    bk_set(&B, "batch_bytes_max=32768");
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, "big", 1), 0);
    for (uint32_t i = 0; i < 4; i++) {
        size_t len = bt_make_sized(batch, sizeof(batch), 1, 25000, i, BATCH_CODEC_NONE, NULL);
        int64_t base;
        cr_assert_eq(rq_produce(&c, "big", 0, batch, len, PROTO_ACKS_ALL, &base), 0);
    }
    /* Two 25 KB batches fit a 64 KiB answer: the other two records are
     * given back at once. */
    struct sfetched a;
    sfetch(&c, "g", "", "big", 0, 0, 4, &a);
    cr_assert_eq(range_records(&a), 2);
    cr_assert_eq(a.ranges[0].first, 0);
    cr_assert_eq(bt_count(a.records, a.records_bytes), 2);
    assert_covered(&a);
    struct sfetched b;
    sfetch(&c, "g", "", "big", 0, 0, 4, &b);
    cr_assert_eq(range_records(&b), 2);
    cr_assert_eq(b.ranges[0].first, 2);
    cr_assert_eq(b.ranges[0].delivery_count, 2, "the delivery left out was counted");
    sfetched_free(&a);
    sfetched_free(&b);
    cl_close(&c);
    bk_stop(&B);
}

/* ShareFetch of partitions 0..n-1 of topic; fills per-partition counts. */
static void sfetch_parts(struct cl *c, const char *topic, int32_t n, int32_t records_max,
                         uint32_t *records_out)
{
    uint32_t corr = cl_next_corr(c);
    struct proto_enc e;
    struct proto_share_fetch_req req = {proto_str_make("g"), proto_str_make(""), 0, records_max};
    proto_share_fetch_req_begin(&e, cl_wr(c), 0, corr, CID, &req);
    proto_enc_topic(&e, proto_str_make(topic));
    for (int32_t p = 0; p < n; p++) {
        proto_enc_partition_index(&e, p);
    }
    cr_assert_eq(proto_enc_end(&e), 0);
    cr_assert_eq(cl_send_wr(c), 0);
    struct rd body;
    cl_expect(c, corr, &body);
    struct proto_share_fetch_resp head;
    struct proto_dec d;
    cr_assert_eq(proto_share_fetch_resp_decode(&body, 0, &head, &d), 0);
    cr_assert_eq(head.err, 0);
    struct proto_topic t;
    cr_assert(proto_next_topic(&d, &t));
    struct proto_share_fetch_resp_partition p;
    for (int32_t i = 0; i < n; i++) {
        cr_assert(proto_share_fetch_resp_next_partition(&d, &p));
        cr_assert_eq(p.partition, i);
        cr_assert_eq(p.err, 0);
        records_out[i] = 0;
        for (uint32_t k = 0; k < p.acquired_count; k++) {
            struct proto_share_acquired a;
            proto_share_fetch_acquired(&p, k, &a);
            records_out[i] += (uint32_t)(a.last - a.first + 1);
        }
    }
}

Test(share, records_max_counts_over_every_partition_of_a_fetch)
{
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, "m", 3), 0);
    for (int32_t p = 0; p < 3; p++) {
        size_t len = bt_make(batch, sizeof(batch), 5, (uint32_t)p, 1700000000000LL, -1, 0, -1);
        int64_t base;
        cr_assert_eq(rq_produce(&c, "m", p, batch, len, PROTO_ACKS_ALL, &base), 0);
    }
    uint32_t got[3];
    sfetch_parts(&c, "m", 3, 12, got);
    cr_assert_eq(got[0], 5);
    cr_assert_eq(got[1], 5);
    cr_assert_eq(got[2], 2, "records_max is for the whole fetch");
    sfetch_parts(&c, "m", 3, 100, got);
    cr_assert_eq(got[0] + got[1] + got[2], 3);
    cl_close(&c);
    bk_stop(&B);
}

Test(share, a_parked_share_fetch_answers_when_its_topic_is_deleted)
{
    bk_start(&B);
    struct cl a;
    struct cl b;
    cl_connect(&a, B.port, CL_TIMEOUT_MS_DEFAULT);
    cl_connect(&b, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&a, "gone", 1), 0);
    int64_t t0 = clock_mono_ms();
    uint32_t corr = sfetch_send(&a, "g", "", "gone", 0, 10000, 10);
    usleep(100 * 1000);
    cr_assert_eq(rq_delete(&b, "gone"), 0);
    struct sfetched f;
    sfetch_recv(&a, corr, &f);
    cr_assert_lt(clock_mono_ms() - t0, 5000);
    cr_assert_eq(f.err, 0);
    cr_assert_eq(f.range_count, 0);
    sfetched_free(&f);
    cl_close(&a);
    cl_close(&b);
    bk_stop(&B);
}

/* Whether ListGroups names the share group: a share fetch that was read
 * and tried (it opened its share part) is listed, parked or not. */
static bool share_group_listed(struct cl *c, const char *group)
{
    uint32_t corr = cl_next_corr(c);
    cr_assert_eq(proto_list_groups_req_encode(cl_wr(c), 0, corr, proto_str_make("t")), 0);
    cr_assert_eq(cl_send_wr(c), 0);
    struct rd body;
    cl_expect(c, corr, &body);
    struct proto_dec d;
    cr_assert_eq(proto_list_groups_resp_decode(&body, 0, &d), 0);
    struct proto_group_listing g;
    bool found = false;
    while (proto_list_groups_resp_next(&d, &g)) {
        found |= proto_str_eq(g.group, group) && g.kind == PROTO_GROUP_KIND_SHARE;
    }
    return found;
}

/* Sends a share fetch for group on topic/0 that parks (the topic is
 * empty), and returns once the broker holds it. */
static uint32_t sfetch_parked(struct cl *c, struct cl *watcher, const char *group,
                              const char *topic)
{
    uint32_t corr = sfetch_send(c, group, "", topic, 0, 600000, 10);
    while (!share_group_listed(watcher, group)) {
        usleep(10 * 1000);
    }
    return corr;
}

/* A parked share fetch answers when the broker stops, as a parked fetch
 * does (test_broker.c): both are on one list per partition (broker/park.h). */
Test(share, a_parked_share_fetch_answers_when_the_broker_stops)
{
    bk_start(&B);
    struct cl a;
    struct cl c;
    cl_connect(&a, B.port, CL_TIMEOUT_MS_DEFAULT);
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, "bye", 1), 0);
    uint32_t corr = sfetch_parked(&a, &c, "g", "bye");
    cr_assert_eq(kill(B.pid, SIGTERM), 0);
    struct sfetched f;
    sfetch_recv(&a, corr, &f);
    cr_assert_eq(f.err, 0);
    cr_assert_eq(f.range_count, 0);
    sfetched_free(&f);
    cl_close(&a);
    cl_close(&c);
    bk_stop(&B); /* it exits cleanly */
}

/* A fetch and a share fetch parked on one partition both answer when its
 * topic is deleted. */
Test(share, a_deleted_topic_answers_its_parked_fetches_of_both_kinds)
{
    bk_start(&B);
    struct cl a;
    struct cl b;
    struct cl c;
    cl_connect(&a, B.port, CL_TIMEOUT_MS_DEFAULT);
    cl_connect(&b, B.port, CL_TIMEOUT_MS_DEFAULT);
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, "gone", 1), 0);
    uint32_t corr_fetch = rq_fetch_send(&b, "gone", 0, 0, 600000, 1);
    uint32_t corr_share = sfetch_parked(&a, &c, "g", "gone");
    cr_assert_eq(rq_delete(&c, "gone"), 0);
    struct sfetched f;
    sfetch_recv(&a, corr_share, &f);
    cr_assert_eq(f.range_count, 0);
    sfetched_free(&f);
    struct fetched d;
    rq_fetch_recv(&b, corr_fetch, &d); /* parked or, if read after the delete, refused */
    cr_assert_eq(d.records_bytes, 0);
    rq_fetched_free(&d);
    cl_close(&a);
    cl_close(&b);
    cl_close(&c);
    bk_stop(&B);
}

/* Rejects the one record of topic and checks it lands in dlq. */
static void reject_into(struct cl *c, const char *topic, const char *dlq)
{
    cr_assert_eq(rq_create(c, topic, 1), 0);
    cr_assert_eq(produce_one(c, topic, "k", "v"), 0);
    struct sfetched f;
    sfetch(c, "g", "", topic, 0, 0, 1, &f);
    cr_assert_eq(f.range_count, 1);
    cr_assert_eq(sack1(c, "g", f.member, topic, 0, PROTO_ACK_REJECT), 0);
    struct fetched d;
    fetch_until(c, dlq, 0, &d);
    struct rec r;
    cr_assert(find_record(d.records, d.records_bytes, 0, &r));
    cr_assert_str_eq(header(&r, "nagare.dlq.topic"), topic, "the header names the whole topic");
    rq_fetched_free(&d);
    sfetched_free(&f);
}

Test(share, dead_letter_topic_names_stay_within_the_limit)
{
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    char topic[PROTO_TOPIC_NAME_BYTES_MAX + 1];
    char dlq[PROTO_TOPIC_NAME_BYTES_MAX + 1];
    /* 249 bytes: cut to 245, then ".dlq". */
    memset(topic, 'b', 249);
    topic[249] = '\0';
    memset(dlq, 'b', 245);
    strcpy(dlq + 245, ".dlq");
    reject_into(&c, topic, dlq);
    /* 249 bytes ending in ".dlq": the cut name would be itself, so 244. */
    memset(topic, 'a', 245);
    strcpy(topic + 245, ".dlq");
    memset(dlq, 'a', 244);
    strcpy(dlq + 244, ".dlq");
    reject_into(&c, topic, dlq);
    cl_close(&c);
    bk_stop(&B);
}

Test(share, parked_consumers_woken_by_one_produce_split_the_records)
{
    bk_start(&B);
    struct cl cs[CONSUMERS];
    char members[CONSUMERS][64] = {"", "", "", ""};
    struct cl p;
    cl_connect(&p, B.port, CL_TIMEOUT_MS_DEFAULT);
    for (uint32_t k = 0; k < CONSUMERS; k++) {
        cl_connect(&cs[k], B.port, CL_TIMEOUT_MS_DEFAULT);
    }
    cr_assert_eq(rq_create(&p, "w", 1), 0);
    int owner[100];
    for (int i = 0; i < 100; i++) {
        owner[i] = -1;
    }
    for (uint32_t round = 0; round < 10; round++) {
        uint32_t corr[CONSUMERS];
        for (uint32_t k = 0; k < CONSUMERS; k++) {
            corr[k] = sfetch_send(&cs[k], "g", members[k], "w", 0, 3000, 3);
        }
        usleep(50 * 1000); /* all four parked */
        produce(&p, "w", 10, round);
        uint32_t got = 0;
        for (uint32_t k = 0; k < CONSUMERS; k++) {
            struct sfetched f;
            sfetch_recv(&cs[k], corr[k], &f);
            cr_assert_eq(f.err, 0);
            strcpy(members[k], f.member);
            assert_covered(&f);
            for (uint32_t i = 0; i < f.range_count; i++) {
                for (int64_t o = f.ranges[i].first; o <= f.ranges[i].last; o++) {
                    cr_assert_eq(owner[o], -1, "offset %lld handed out twice", (long long)o);
                    owner[o] = (int)k;
                }
            }
            got += range_records(&f);
            if (f.range_count > 0) {
                cr_assert_eq(sack(&cs[k], "g", members[k], "w", 0, f.ranges, f.range_count,
                                  PROTO_ACK_ACCEPT),
                             0);
            }
            sfetched_free(&f);
        }
        cr_assert_eq(got, 10, "round %u: the four woken fetches took every new record", round);
    }
    for (int i = 0; i < 100; i++) {
        cr_assert_neq(owner[i], -1);
    }
    for (uint32_t k = 0; k < CONSUMERS; k++) {
        cl_close(&cs[k]);
    }
    cl_close(&p);
    bk_stop(&B);
}

/* ListGroups names share groups too, once each, with their kind. */
Test(share, list_groups_names_share_groups_once)
{
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, "q", 2), 0);
    produce(&c, "q", 4, 1);
    for (int32_t p = 0; p < 2; p++) { /* two parts of one share group */
        struct sfetched f;
        sfetch(&c, "workers", "", "q", p, 0, 10, &f);
        cr_assert_eq(f.err, 0);
        sfetched_free(&f);
    }
    uint32_t corr = cl_next_corr(&c);
    cr_assert_eq(proto_list_groups_req_encode(cl_wr(&c), 0, corr, proto_str_make("t")), 0);
    cr_assert_eq(cl_send_wr(&c), 0);
    struct rd body;
    cl_expect(&c, corr, &body);
    struct proto_dec d;
    cr_assert_eq(proto_list_groups_resp_decode(&body, 0, &d), 0);
    struct proto_group_listing g;
    int found = 0;
    while (proto_list_groups_resp_next(&d, &g)) {
        if (proto_str_eq(g.group, "workers")) {
            found++;
            cr_assert_eq(g.kind, PROTO_GROUP_KIND_SHARE);
        }
    }
    cr_assert_eq(found, 1);
    cl_close(&c);
    bk_stop(&B);
}
