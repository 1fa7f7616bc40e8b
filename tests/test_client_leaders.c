/*
 * tests/test_client_leaders.c — libnagare's producer and consumer send each
 * partition's requests to its leader (docs/cluster.md, section 6), against
 * two real nagared processes and a fake broker: a thread speaking the
 * protocol with net/proto's encoders that answers the bootstrap
 * connection's Metadata v2 (naming the real brokers as leaders) and, when
 * scripted, a Produce or a Fetch with NG_ENOT_LEADER once, moving the
 * leader in its next Metadata answer.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/nagare.h"
#include "net/proto.h"
#include "tests/broker_support.h"
#include "tests/client_support.h"

#define WAIT_MS 60000
#define TOPIC "t"
#define PARTS 2
#define FAKE_ID 9
#define HOLD_ID 7 /* a second fake, holding a produce */
#define FAKE_CONNS_MAX 8
#define FAKE_FRAME_BYTES_MAX (1u << 20)

static struct bk A; /* broker 1 */
static struct bk B; /* broker 2 */

static void setup(void)
{
    bk_init(&A);
    bk_init(&B);
}

static void teardown(void)
{
    bk_fini(&A);
    bk_fini(&B);
}

TestSuite(leaders, .init = setup, .fini = teardown, .timeout = 120);

/* ---- the fake broker ---- */

struct fake_broker_entry {
    int32_t id;
    uint16_t port;
};

struct fake {
    int listen_fd;
    uint16_t port;
    pthread_t thread;
    atomic_bool stop;
    pthread_mutex_t mu; /* guards the script below */
    struct fake_broker_entry brokers[3];
    int broker_count;
    int32_t leader[PARTS];
    int not_leader_left;         /* Produce answers NOT_LEADER this many times... */
    int32_t leader_after[PARTS]; /* ...then the leaders become these */
    int leaderless_left;         /* Metadata names no leader this many times */
    bool hold;                   /* Produce, Fetch: answered only once release is set */
    atomic_bool release;
    atomic_int produces;          /* Produce requests it got */
    atomic_int fetches;           /* Fetch requests it got */
    atomic_int metadatas;         /* Metadata requests it got */
    atomic_int produced_p0_after; /* produces for partition 0 after the move */
    int32_t leader_epoch;         /* Metadata names it for every partition (0: 1) */
    int serving_fd;               /* the connection whose request is being answered */
    atomic_int hung_up;           /* connections the client closed while a produce was held */
};

static bool read_full(int fd, uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t k = recv(fd, p, n, 0);
        if (k <= 0) {
            return false;
        }
        p += k;
        n -= (size_t)k;
    }
    return true;
}

static void write_full(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k <= 0) {
            return; /* the client went: nothing to answer */
        }
        p += k;
        n -= (size_t)k;
    }
}

static void fake_metadata(struct fake *f, const struct proto_req_header *h, struct rd *body,
                          struct wr *w)
{
    struct proto_dec d;
    ASSERT(proto_metadata_req_decode(body, h->api_version, &d) == 0);
    ASSERT(h->api_version == proto_api_version_max(PROTO_API_METADATA)); /* the client's newest */
    atomic_fetch_add(&f->metadatas, 1);
    struct proto_enc e;
    struct proto_metadata_resp m = {.host = proto_str_make("127.0.0.1"),
                                    .port = f->port,
                                    .broker_id = FAKE_ID,
                                    .controller_id = FAKE_ID};
    proto_metadata_resp_begin(&e, w, h->api_version, h->correlation_id, &m);
    pthread_mutex_lock(&f->mu);
    bool leaderless = f->leaderless_left > 0;
    int32_t epoch = f->leader_epoch > 0 ? f->leader_epoch : 1;
    f->leaderless_left -= leaderless ? 1 : 0;
    for (int i = 0; i < f->broker_count; i++) {
        proto_metadata_resp_broker(&e, &(struct proto_broker){.id = f->brokers[i].id,
                                                              .host = proto_str_make("127.0.0.1"),
                                                              .port = f->brokers[i].port});
    }
    struct proto_topic t;
    while (proto_next_topic(&d, &t)) {
        if (!proto_str_eq(t.name, TOPIC)) {
            proto_metadata_resp_topic(&e, t.name, -NG_EUNKNOWN_TOPIC);
            continue;
        }
        struct proto_topic_config cfg = {.partition_count = PARTS,
                                         .retention_ms = PROTO_CONFIG_UNLIMITED,
                                         .retention_bytes = PROTO_CONFIG_UNLIMITED,
                                         .segment_bytes = 1 << 30,
                                         .segment_ms = 1 << 30,
                                         .batch_bytes_max = 1 << 20};
        proto_metadata_resp_topic_config(&e, t.name, 0, &cfg);
        for (int32_t i = 0; i < PARTS; i++) {
            int32_t leader = leaderless ? -1 : f->leader[i];
            proto_metadata_resp_partition(
                &e, &(struct proto_metadata_partition){.partition = i,
                                                       .offset_earliest = -1,
                                                       .offset_latest = -1,
                                                       .leader = leader,
                                                       .leader_epoch = epoch,
                                                       .replica_count = 1,
                                                       .replicas = {f->leader[i]},
                                                       .isr_count = leaderless ? 0 : 1,
                                                       .isr = {leader}});
        }
    }
    pthread_mutex_unlock(&f->mu);
    ASSERT(proto_enc_end(&e) == 0);
}

/* The scripted NOT_LEADER answer went out: once the count is spent, the
 * leaders move (before the client can read the answer). */
static void fake_refused(struct fake *f)
{
    pthread_mutex_lock(&f->mu);
    if (f->not_leader_left > 0 && --f->not_leader_left == 0) {
        memcpy(f->leader, f->leader_after, sizeof(f->leader));
    }
    pthread_mutex_unlock(&f->mu);
}

/* A fake that holds (f->hold) answers nothing until released, stopped,
 * or the client hangs up (it gave the request up). */
static void fake_hold(struct fake *f)
{
    while (f->hold && !atomic_load(&f->release) && !atomic_load(&f->stop)) {
        struct pollfd pf = {.fd = f->serving_fd, .events = POLLRDHUP};
        if (poll(&pf, 1, 0) > 0 && (pf.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0) {
            atomic_fetch_add(&f->hung_up, 1);
            return;
        }
        usleep(1000); /* this fake's one connection waits with it */
    }
}

/* Every partition of a Fetch is refused with NOT_LEADER (held first when
 * the fake holds). */
static void fake_fetch(struct fake *f, const struct proto_req_header *h, struct rd *body,
                       struct wr *w)
{
    struct proto_fetch_req req;
    struct proto_dec d;
    ASSERT(proto_fetch_req_decode(body, h->api_version, &req, &d) == 0);
    atomic_fetch_add(&f->fetches, 1);
    fake_hold(f);
    struct proto_enc e;
    proto_fetch_resp_begin(&e, w, h->api_version, h->correlation_id);
    struct proto_topic t;
    while (proto_next_topic(&d, &t)) {
        proto_enc_topic(&e, t.name);
        struct proto_fetch_req_partition p;
        while (proto_fetch_req_next_partition(&d, &p)) {
            proto_fetch_resp_partition(
                &e, &(struct proto_fetch_resp_partition){.partition = p.partition,
                                                         .err = -NG_ENOT_LEADER,
                                                         .offset_earliest = -1,
                                                         .offset_latest = -1,
                                                         .offset_resume = -1});
        }
    }
    ASSERT(proto_enc_end(&e) == 0);
    fake_refused(f);
}

/* Every partition of a Produce is refused with NOT_LEADER (nothing is
 * written anywhere). */
static void fake_produce(struct fake *f, const struct proto_req_header *h, struct rd *body,
                         struct wr *w)
{
    struct proto_produce_req req;
    struct proto_dec d;
    ASSERT(proto_produce_req_decode(body, h->api_version, &req, &d) == 0);
    atomic_fetch_add(&f->produces, 1);
    fake_hold(f);
    struct proto_enc e;
    proto_produce_resp_begin(&e, w, h->api_version, h->correlation_id);
    struct proto_topic t;
    while (proto_next_topic(&d, &t)) {
        proto_enc_topic(&e, t.name);
        struct proto_produce_req_partition p;
        while (proto_produce_req_next_partition(&d, &p)) {
            proto_produce_resp_partition(
                &e, &(struct proto_produce_resp_partition){
                        .partition = p.partition, .err = -NG_ENOT_LEADER, .offset_base = -1});
        }
    }
    ASSERT(proto_enc_end(&e) == 0);
    fake_refused(f);
}

/* Answers one request frame; false when the client has gone. */
static bool fake_serve(struct fake *f, int fd, uint8_t *frame, uint8_t *out)
{
    uint8_t prefix[4];
    uint32_t len;
    if (!read_full(fd, prefix, 4) ||
        proto_request_frame_len(prefix, FAKE_FRAME_BYTES_MAX, &len) != 0 ||
        !read_full(fd, frame, len)) {
        return false;
    }
    struct rd r = rd_make(frame, len);
    struct proto_req_header h;
    int rc = proto_req_header_decode(&r, &h);
    struct wr w = wr_make(out, FAKE_FRAME_BYTES_MAX);
    f->serving_fd = fd;
    if (rc != 0 || (h.api_key != PROTO_API_API_VERSIONS && h.api_key != PROTO_API_METADATA &&
                    h.api_key != PROTO_API_INIT_PRODUCER_ID && h.api_key != PROTO_API_PRODUCE &&
                    h.api_key != PROTO_API_FETCH)) {
        ASSERT(proto_resp_error_encode(&w, h.correlation_id, -NG_EUNKNOWN_API) == 0);
    } else if (h.api_key == PROTO_API_API_VERSIONS) {
        struct proto_api_versions_resp v;
        proto_api_versions_fill(&v, FAKE_FRAME_BYTES_MAX);
        ASSERT(proto_api_versions_resp_encode(&w, h.api_version, h.correlation_id, &v) == 0);
    } else if (h.api_key == PROTO_API_INIT_PRODUCER_ID) {
        struct proto_init_producer_id_resp ip = {.producer_id = 4242, .producer_epoch = 0};
        ASSERT(proto_init_producer_id_resp_encode(&w, h.api_version, h.correlation_id, &ip) == 0);
    } else if (h.api_key == PROTO_API_METADATA) {
        fake_metadata(f, &h, &r, &w);
    } else if (h.api_key == PROTO_API_FETCH) {
        fake_fetch(f, &h, &r, &w);
    } else {
        fake_produce(f, &h, &r, &w);
    }
    write_full(fd, out, w.pos);
    return true;
}

static void *fake_run(void *arg)
{
    struct fake *f = arg;
    struct pollfd pfds[1 + FAKE_CONNS_MAX];
    int conns = 0;
    uint8_t *frame = malloc(FAKE_FRAME_BYTES_MAX);
    uint8_t *out = malloc(FAKE_FRAME_BYTES_MAX);
    ASSERT(frame != NULL && out != NULL);
    pfds[0] = (struct pollfd){.fd = f->listen_fd, .events = POLLIN};
    while (!atomic_load(&f->stop)) {
        if (poll(pfds, (nfds_t)(1 + conns), 20) <= 0) {
            continue;
        }
        for (int i = conns; i >= 1; i--) {
            if (pfds[i].revents != 0 && !fake_serve(f, pfds[i].fd, frame, out)) {
                close(pfds[i].fd);
                pfds[i] = pfds[conns--];
            }
        }
        if ((pfds[0].revents & POLLIN) != 0 && conns < FAKE_CONNS_MAX) {
            int fd = accept(f->listen_fd, NULL, NULL);
            if (fd >= 0) {
                pfds[++conns] = (struct pollfd){.fd = fd, .events = POLLIN};
            }
        }
    }
    for (int i = 1; i <= conns; i++) {
        close(pfds[i].fd);
    }
    free(frame);
    free(out);
    return NULL;
}

static void fake_start(struct fake *f)
{
    f->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(f->listen_fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(f->listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t sl = sizeof(sa);
    cr_assert_eq(getsockname(f->listen_fd, (struct sockaddr *)&sa, &sl), 0);
    f->port = ntohs(sa.sin_port);
    cr_assert_eq(listen(f->listen_fd, 8), 0);
    cr_assert_eq(pthread_mutex_init(&f->mu, NULL), 0);
    f->brokers[f->broker_count++] = (struct fake_broker_entry){FAKE_ID, f->port};
    cr_assert_eq(pthread_create(&f->thread, NULL, fake_run, f), 0);
}

static void fake_stop(struct fake *f)
{
    atomic_store(&f->stop, true);
    pthread_join(f->thread, NULL);
    close(f->listen_fd);
    pthread_mutex_destroy(&f->mu);
}

/* ---- the clients' side ---- */

static void fake_bootstrap(const struct fake *f, char *out, size_t cap)
{
    snprintf(out, cap, "127.0.0.1:%u", f->port);
}

#define RECORDS 20

struct seen {
    uint32_t reports[PARTS][RECORDS];
    int64_t offset[PARTS][RECORDS];
    uint32_t failed;
    int first_err;
};

static void on_delivery(const struct nagare_delivery *d, void *opaque)
{
    struct seen *s = opaque;
    uintptr_t tag = (uintptr_t)d->opaque; /* partition * RECORDS + index */
    uint32_t part = (uint32_t)(tag / RECORDS);
    uint32_t i = (uint32_t)(tag % RECORDS);
    s->reports[part][i]++;
    s->offset[part][i] = d->offset;
    if (d->err != 0 && s->failed++ == 0) {
        s->first_err = d->err;
    }
}

/* Produces RECORDS records to each partition in parts through bootstrap,
 * each reported once without error at its own offset. */
static void produce_through(const char *bootstrap, const int32_t *parts, int part_count,
                            struct seen *s)
{
    struct nagare_producer_config c;
    nagare_producer_config_default(&c);
    c.bootstrap = bootstrap;
    c.on_delivery = on_delivery;
    c.opaque = s;
    c.retry_backoff_ms = 10;
    nagare_producer *p;
    int rc = nagare_producer_new(&c, &p);
    cr_assert_eq(rc, 0, "producer: %s", nagare_strerror(rc));
    for (int k = 0; k < part_count; k++) {
        for (uint32_t i = 0; i < RECORDS; i++) {
            char value[32];
            int n = snprintf(value, sizeof(value), "p%d-%u", parts[k], i);
            struct nagare_record r = {.topic = TOPIC,
                                      .partition = parts[k],
                                      .key_len = -1,
                                      .value = value,
                                      .value_len = n,
                                      .opaque = (void *)(uintptr_t)(parts[k] * RECORDS + i)};
            cr_assert_eq(nagare_send(p, &r), 0);
        }
    }
    rc = nagare_producer_flush(p, WAIT_MS);
    cr_assert_eq(rc, 0, "flush: %s", nagare_strerror(rc));
    cr_assert_eq(s->failed, 0, "failed reports, first: %s", nagare_strerror(s->first_err));
    for (int k = 0; k < part_count; k++) {
        for (uint32_t i = 0; i < RECORDS; i++) {
            cr_assert_eq(s->reports[parts[k]][i], 1, "record %u of %d reported once", i, parts[k]);
            cr_assert_eq(s->offset[parts[k]][i], i, "record %u of %d at its offset", i, parts[k]);
        }
    }
    nagare_producer_destroy(p);
}

static int64_t log_end(const struct bk *b, int32_t partition)
{
    nagare_admin *a = cs_admin(b);
    int64_t end = -1;
    cr_assert_eq(nagare_offset_lookup(a, TOPIC, partition, NAGARE_OFFSET_END, &end), 0);
    nagare_admin_destroy(a);
    return end;
}

/* Reads the partitions parts of TOPIC through bootstrap from offset 0:
 * exactly RECORDS records of each, "p<partition>-<i>" in order, and
 * nothing more. */
static void expect_records_via(const char *bootstrap, const int32_t *parts, int part_count)
{
    struct nagare_consumer_config cc;
    nagare_consumer_config_default(&cc);
    cc.bootstrap = bootstrap;
    cc.fetch_wait_max_ms = 50;
    nagare_consumer *k;
    int rc = nagare_consumer_new(&cc, &k);
    cr_assert_eq(rc, 0, "consumer: %s", nagare_strerror(rc));
    for (int j = 0; j < part_count; j++) {
        rc = nagare_consumer_assign(k, TOPIC, parts[j], 0);
        cr_assert_eq(rc, 0, "assign: %s", nagare_strerror(rc));
    }
    uint32_t next[PARTS] = {0};
    /* A bound only for a failing run to end with a message; it never
     * comes near on a working one. */
    int64_t give_up = clock_mono_ms() + WAIT_MS;
    for (uint32_t got = 0; got < (uint32_t)part_count * RECORDS;) {
        const struct nagare_message *m = NULL;
        cr_assert_lt(clock_mono_ms(), give_up, "%u of %d records read", got, part_count * RECORDS);
        rc = nagare_consumer_poll(k, 1000, &m);
        cr_assert_geq(rc, 0, "poll: %s", nagare_strerror(rc));
        if (rc == 0) {
            continue;
        }
        cr_assert(m->partition >= 0 && m->partition < PARTS);
        uint32_t i = next[m->partition]++;
        char want[32];
        int n = snprintf(want, sizeof(want), "p%d-%u", m->partition, i);
        cr_assert_eq(m->offset, i, "partition %d in order, each record once", m->partition);
        cr_assert_eq(m->value_len, n);
        cr_assert_eq(memcmp(m->value, want, (size_t)n), 0);
        got++;
    }
    for (int j = 0; j < part_count; j++) {
        int64_t end = -1;
        cr_assert_eq(nagare_consumer_position(k, TOPIC, parts[j], &end), 0);
        cr_assert_eq(end, RECORDS);
    }
    nagare_consumer_destroy(k);
}

static void expect_records(const struct bk *b, int32_t partition)
{
    expect_records_via(b->bootstrap, &partition, 1);
}

/* RECORDS records to partition of b's TOPIC, b alone (a single broker). */
static void produce_direct(struct bk *b, int32_t partition)
{
    struct seen s = {0};
    produce_through(b->bootstrap, &partition, 1, &s);
}

Test(leaders, each_partition_goes_to_its_leader)
{
    bk_start(&A);
    bk_start(&B);
    cs_create_topic(&A, TOPIC, PARTS);
    cs_create_topic(&B, TOPIC, PARTS);
    struct fake f = {.leader = {1, 2}};
    fake_start(&f);
    f.brokers[f.broker_count++] = (struct fake_broker_entry){1, A.port};
    f.brokers[f.broker_count++] = (struct fake_broker_entry){2, B.port};
    struct seen s = {0};
    char bootstrap[32];
    fake_bootstrap(&f, bootstrap, sizeof(bootstrap));
    produce_through(bootstrap, (const int32_t[]){0, 1}, 2, &s);
    cr_assert_eq(atomic_load(&f.produces), 0, "no produce went to the bootstrap broker");
    cr_assert_eq(log_end(&A, 0), RECORDS, "partition 0 on its leader, broker 1");
    cr_assert_eq(log_end(&A, 1), 0);
    cr_assert_eq(log_end(&B, 1), RECORDS, "partition 1 on its leader, broker 2");
    cr_assert_eq(log_end(&B, 0), 0);
    expect_records(&A, 0);
    expect_records(&B, 1);
    fake_stop(&f);
    bk_stop(&A);
    bk_stop(&B);
}

Test(leaders, not_leader_refreshes_metadata_and_delivers_once_at_the_new_leader)
{
    bk_start(&A);
    cs_create_topic(&A, TOPIC, PARTS);
    /* Partition 0 is led by the fake itself (the bootstrap connection is
     * broker 9): its first produce is refused, and the leader moves to 1. */
    struct fake f = {.leader = {FAKE_ID, 1}, .not_leader_left = 1, .leader_after = {1, 1}};
    fake_start(&f);
    f.brokers[f.broker_count++] = (struct fake_broker_entry){1, A.port};
    struct seen s = {0};
    char bootstrap[32];
    fake_bootstrap(&f, bootstrap, sizeof(bootstrap));
    produce_through(bootstrap, (const int32_t[]){0}, 1, &s);
    cr_assert_eq(atomic_load(&f.produces), 1, "refused once, then sent to the new leader (%d)",
                 atomic_load(&f.produces));
    cr_assert_geq(atomic_load(&f.metadatas), 2, "metadata asked again after NOT_LEADER");
    cr_assert_eq(log_end(&A, 0), RECORDS, "every record written once");
    expect_records(&A, 0);
    fake_stop(&f);
    bk_stop(&A);
}

Test(leaders, a_consumer_fetches_each_partition_from_its_leader)
{
    bk_start(&A);
    bk_start(&B);
    cs_create_topic(&A, TOPIC, PARTS);
    cs_create_topic(&B, TOPIC, PARTS);
    produce_direct(&A, 0);
    produce_direct(&B, 1);
    struct fake f = {.leader = {1, 2}};
    fake_start(&f);
    f.brokers[f.broker_count++] = (struct fake_broker_entry){1, A.port};
    f.brokers[f.broker_count++] = (struct fake_broker_entry){2, B.port};
    char bootstrap[32];
    fake_bootstrap(&f, bootstrap, sizeof(bootstrap));
    expect_records_via(bootstrap, (const int32_t[]){0, 1}, 2);
    cr_assert_eq(atomic_load(&f.fetches), 0, "no fetch went to the bootstrap broker");
    fake_stop(&f);
    bk_stop(&A);
    bk_stop(&B);
}

Test(leaders, a_consumer_told_not_leader_reads_on_at_the_new_leader)
{
    bk_start(&A);
    cs_create_topic(&A, TOPIC, PARTS);
    produce_direct(&A, 0);
    struct fake f = {.leader = {FAKE_ID, 1}, .not_leader_left = 1, .leader_after = {1, 1}};
    fake_start(&f);
    f.brokers[f.broker_count++] = (struct fake_broker_entry){1, A.port};
    char bootstrap[32];
    fake_bootstrap(&f, bootstrap, sizeof(bootstrap));
    expect_records_via(bootstrap, (const int32_t[]){0}, 1);
    cr_assert_eq(atomic_load(&f.fetches), 1, "refused once, then fetched at the new leader (%d)",
                 atomic_load(&f.fetches));
    cr_assert_geq(atomic_load(&f.metadatas), 2, "metadata asked again after NOT_LEADER");
    fake_stop(&f);
    bk_stop(&A);
}

/* A leader change under way: the first Metadata answers name no leader.
 * Looking up the end of the partition waits for one instead of failing. */
Test(leaders, a_consumer_looks_up_an_offset_again_while_a_partition_has_no_leader)
{
    bk_start(&A);
    cs_create_topic(&A, TOPIC, PARTS);
    produce_direct(&A, 0);
    struct fake f = {.leader = {1, 1}, .leaderless_left = 3};
    fake_start(&f);
    f.brokers[f.broker_count++] = (struct fake_broker_entry){1, A.port};
    char bootstrap[32];
    fake_bootstrap(&f, bootstrap, sizeof(bootstrap));
    struct nagare_consumer_config cc;
    nagare_consumer_config_default(&cc);
    cc.bootstrap = bootstrap;
    nagare_consumer *k;
    cr_assert_eq(nagare_consumer_new(&cc, &k), 0);
    int rc = nagare_consumer_assign(k, TOPIC, 0, NAGARE_OFFSET_END);
    cr_assert_eq(rc, 0, "assign at the end: %s", nagare_strerror(rc));
    int64_t end = -1;
    cr_assert_eq(nagare_consumer_position(k, TOPIC, 0, &end), 0);
    cr_assert_eq(end, RECORDS, "the end, from the leader once there was one");
    cr_assert_geq(atomic_load(&f.metadatas), 4, "asked until a leader was named (%d)",
                  atomic_load(&f.metadatas));
    nagare_consumer_destroy(k);
    fake_stop(&f);
    bk_stop(&A);
}

/* An idempotent producer's batches of a partition all go to one broker: a
 * batch out at the old leader when the leader moves (here held there until
 * the move is known, then refused NOT_LEADER) is sent again to the new
 * leader before anything newer, which the new leader could not otherwise
 * put in order (it took the newer records first, the retry's sequence was
 * then out of order, and the producer renumbered it after them). */
Test(leaders, batches_out_at_an_old_leader_come_back_before_newer_ones_go_to_the_new)
{
    bk_start(&A);
    cs_create_topic(&A, TOPIC, PARTS);
    struct fake hold = {.hold = true};
    fake_start(&hold);
    /* Partition 0 at the holding fake, partition 1 at the bootstrap fake,
     * which refuses it once and then names broker 1 leader of both. */
    struct fake f = {.leader = {HOLD_ID, FAKE_ID}, .not_leader_left = 1, .leader_after = {1, 1}};
    fake_start(&f);
    f.brokers[f.broker_count++] = (struct fake_broker_entry){1, A.port};
    f.brokers[f.broker_count++] = (struct fake_broker_entry){HOLD_ID, hold.port};
    char bootstrap[32];
    fake_bootstrap(&f, bootstrap, sizeof(bootstrap));
    struct seen s = {0};
    struct nagare_producer_config c;
    nagare_producer_config_default(&c);
    c.bootstrap = bootstrap;
    c.on_delivery = on_delivery;
    c.opaque = &s;
    c.retry_backoff_ms = 10;
    c.linger_ms = 0;
    nagare_producer *p;
    cr_assert_eq(nagare_producer_new(&c, &p), 0);
    char value[32];
    struct nagare_record r = {.topic = TOPIC, .key_len = -1, .value = value};
#define SEND(part, i)                                                                  \
    do {                                                                               \
        r.partition = (part);                                                          \
        r.value_len = snprintf(value, sizeof(value), "p%d-%u", (part), (unsigned)(i)); \
        r.opaque = (void *)(uintptr_t)((part)*RECORDS + (i));                          \
        cr_assert_eq(nagare_send(p, &r), 0);                                           \
    } while (0)
    int64_t give_up = clock_mono_ms() + WAIT_MS;
    SEND(0, 0);
    while (atomic_load(&hold.produces) == 0) { /* out at the old leader, unanswered */
        cr_assert_lt(clock_mono_ms(), give_up, "the first batch never reached its leader");
        (void)nagare_producer_poll(p, 10);
    }
    SEND(1, 0); /* refused: the metadata asked again moves both partitions to broker 1 */
    while (s.reports[1][0] == 0) {
        cr_assert_lt(clock_mono_ms(), give_up, "partition 1 never reached its new leader");
        (void)nagare_producer_poll(p, 10);
    }
    for (uint32_t i = 1; i < RECORDS; i++) {
        SEND(0, i);
    }
    /* Time for newer batches to reach broker 1 if they were going to: the
     * test cannot fail for want of it, only miss the bug. */
    for (int i = 0; i < 100 && log_end(&A, 0) == 0; i++) {
        (void)nagare_producer_poll(p, 10);
    }
    atomic_store(&hold.release, true);
    int rc = nagare_producer_flush(p, WAIT_MS);
    cr_assert_eq(rc, 0, "flush: %s", nagare_strerror(rc));
    cr_assert_eq(s.failed, 0, "failed reports, first: %s", nagare_strerror(s.first_err));
    nagare_producer_destroy(p);
#undef SEND
    expect_records(&A, 0); /* each once, in the order sent */
    fake_stop(&f);
    fake_stop(&hold);
    bk_stop(&A);
}

/* ---- a leader that stalls (client/producer.c, "stalls") ---- */

/* Waits until the holding fake f saw the client hang up (its thread looks
 * every millisecond). */
static void await_hang_up(struct fake *f)
{
    int64_t give_up = clock_mono_ms() + WAIT_MS;
    while (atomic_load(&f->hung_up) == 0) {
        cr_assert_lt(clock_mono_ms(), give_up, "the stalled connection was not given up");
        usleep(1000);
    }
}

/* Partition 0 led by a fake that holds every produce unanswered (a leader
 * paused with its connection open), the bootstrap fake naming it; the
 * producer's stall check every 100 ms, its request timeout far beyond the
 * test's bound. RECORDS records are sent to partition 0 and the holding
 * fake has the first of them. */
struct stall_run {
    struct fake hold;
    struct fake f;
    struct seen s;
    nagare_producer *p;
};

static void stall_start(struct stall_run *t)
{
    bk_start(&A);
    cs_create_topic(&A, TOPIC, PARTS);
    t->hold = (struct fake){.hold = true};
    fake_start(&t->hold);
    t->f = (struct fake){.leader = {HOLD_ID, 1}};
    fake_start(&t->f);
    t->f.brokers[t->f.broker_count++] = (struct fake_broker_entry){1, A.port};
    t->f.brokers[t->f.broker_count++] = (struct fake_broker_entry){HOLD_ID, t->hold.port};
    char bootstrap[32];
    fake_bootstrap(&t->f, bootstrap, sizeof(bootstrap));
    struct nagare_producer_config c;
    nagare_producer_config_default(&c);
    c.bootstrap = bootstrap;
    c.on_delivery = on_delivery;
    c.opaque = &t->s;
    c.retry_backoff_ms = 10;
    c.stall_ms = 100;
    c.request_timeout_ms = 4 * WAIT_MS; /* never the way out here */
    c.delivery_timeout_ms = 8 * WAIT_MS;
    cr_assert_eq(nagare_producer_new(&c, &t->p), 0);
    for (uint32_t i = 0; i < RECORDS; i++) {
        char value[32];
        int n = snprintf(value, sizeof(value), "p0-%u", i);
        struct nagare_record r = {.topic = TOPIC,
                                  .partition = 0,
                                  .key_len = -1,
                                  .value = value,
                                  .value_len = n,
                                  .opaque = (void *)(uintptr_t)i};
        cr_assert_eq(nagare_send(t->p, &r), 0);
    }
    int64_t give_up = clock_mono_ms() + WAIT_MS;
    while (atomic_load(&t->hold.produces) == 0) {
        cr_assert_lt(clock_mono_ms(), give_up, "the first batch never reached its leader");
        (void)nagare_producer_poll(t->p, 10);
    }
}

/* Flushes, and expects every record reported once, written once in order
 * on broker 1, and the held connection given up (hung_up) or not. */
static void stall_finish(struct stall_run *t, bool hung_up)
{
    int rc = nagare_producer_flush(t->p, WAIT_MS);
    cr_assert_eq(rc, 0, "flush: %s", nagare_strerror(rc));
    cr_assert_eq(t->s.failed, 0, "failed reports, first: %s", nagare_strerror(t->s.first_err));
    for (uint32_t i = 0; i < RECORDS; i++) {
        cr_assert_eq(t->s.reports[0][i], 1, "record %u reported once", i);
        cr_assert_eq(t->s.offset[0][i], i, "record %u at its offset", i);
    }
    if (hung_up) {
        await_hang_up(&t->hold); /* before the producer closes every connection */
    }
    cr_assert_eq(atomic_load(&t->hold.hung_up), hung_up ? 1 : 0);
    nagare_producer_destroy(t->p);
    expect_records(&A, 0);
    fake_stop(&t->f);
    fake_stop(&t->hold);
    bk_stop(&A);
}

/* Another broker names a newer leader while the old one still holds the
 * batch: the producer gives the old connection up and delivers at the new
 * leader, without an answer from the old one or a request timeout. */
Test(leaders, a_produce_held_by_a_stalled_leader_moves_to_a_newer_leader)
{
    struct stall_run t = {0};
    stall_start(&t);
    pthread_mutex_lock(&t.f.mu);
    t.f.leader[0] = 1;
    t.f.leader_epoch = 2;
    pthread_mutex_unlock(&t.f.mu);
    stall_finish(&t, true); /* the holding fake answers nothing before the hang-up */
    cr_assert_eq(atomic_load(&t.hold.produces), 1, "nothing sent to the old leader again");
}

/* A leader that is only slow is waited for: while every answer still
 * names it, asking again and again moves nothing. Released, it refuses
 * the batch (NOT_LEADER) and the producer goes on at broker 1. */
Test(leaders, a_slow_leader_still_named_is_waited_for)
{
    struct stall_run t = {0};
    stall_start(&t);
    int asked = atomic_load(&t.f.metadatas);
    int64_t give_up = clock_mono_ms() + WAIT_MS;
    while (atomic_load(&t.f.metadatas) < asked + 3) {
        cr_assert_lt(clock_mono_ms(), give_up, "the stall never had the leader asked about");
        (void)nagare_producer_poll(t.p, 10);
    }
    cr_assert_eq(atomic_load(&t.hold.hung_up), 0, "the slow leader's connection kept");
    cr_assert_eq(atomic_load(&t.hold.produces), 1);
    for (uint32_t i = 0; i < RECORDS; i++) {
        cr_assert_eq(t.s.reports[0][i], 0, "nothing reported while the leader holds it");
    }
    pthread_mutex_lock(&t.f.mu);
    t.f.leader[0] = 1;
    pthread_mutex_unlock(&t.f.mu);
    atomic_store(&t.hold.release, true);
    stall_finish(&t, false); /* answered, not given up */
}

/* A fetch held by a stalled leader: once another broker names a newer
 * leader, the consumer gives the held connection up and reads every
 * record, in order, at the new leader, without the request timeout. */
Test(leaders, a_fetch_held_by_a_stalled_leader_moves_to_a_newer_leader)
{
    bk_start(&A);
    cs_create_topic(&A, TOPIC, PARTS);
    produce_direct(&A, 0);
    struct fake hold = {.hold = true};
    fake_start(&hold);
    struct fake f = {.leader = {HOLD_ID, 1}};
    fake_start(&f);
    f.brokers[f.broker_count++] = (struct fake_broker_entry){1, A.port};
    f.brokers[f.broker_count++] = (struct fake_broker_entry){HOLD_ID, hold.port};
    char bootstrap[32];
    fake_bootstrap(&f, bootstrap, sizeof(bootstrap));
    struct nagare_consumer_config cc;
    nagare_consumer_config_default(&cc);
    cc.bootstrap = bootstrap;
    cc.fetch_wait_max_ms = 50;
    cc.stall_ms = 100;
    cc.request_timeout_ms = 4 * WAIT_MS; /* never the way out here */
    nagare_consumer *k;
    cr_assert_eq(nagare_consumer_new(&cc, &k), 0);
    cr_assert_eq(nagare_consumer_assign(k, TOPIC, 0, 0), 0);
    int64_t give_up = clock_mono_ms() + WAIT_MS;
    while (atomic_load(&hold.fetches) == 0) {
        const struct nagare_message *m = NULL;
        cr_assert_lt(clock_mono_ms(), give_up, "no fetch reached the first leader");
        cr_assert_eq(nagare_consumer_poll(k, 10, &m), 0, "nothing read from the holding leader");
    }
    pthread_mutex_lock(&f.mu);
    f.leader[0] = 1;
    f.leader_epoch = 2;
    pthread_mutex_unlock(&f.mu);
    for (uint32_t got = 0; got < RECORDS;) {
        const struct nagare_message *m = NULL;
        cr_assert_lt(clock_mono_ms(), give_up, "%u of %d records read", got, RECORDS);
        int rc = nagare_consumer_poll(k, 100, &m);
        cr_assert_geq(rc, 0, "poll: %s", nagare_strerror(rc));
        if (rc == 1) {
            char want[32];
            int n = snprintf(want, sizeof(want), "p0-%u", got);
            cr_assert_eq(m->offset, got, "in order, each record once");
            cr_assert_eq(m->value_len, n);
            cr_assert_eq(memcmp(m->value, want, (size_t)n), 0);
            got++;
        }
    }
    await_hang_up(&hold);
    cr_assert_eq(atomic_load(&hold.fetches), 1, "nothing fetched from the old leader again");
    nagare_consumer_destroy(k);
    fake_stop(&f);
    fake_stop(&hold);
    bk_stop(&A);
}
