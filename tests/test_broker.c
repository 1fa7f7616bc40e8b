/* Integration tests: the real nagared on an ephemeral port with a temporary
 * data directory, driven over raw frames (tests/broker_support.h). Each test
 * stops its broker with SIGTERM and requires exit status 0 and a log free of
 * sanitizer reports; the suite's .fini kills whatever a failed test left. */
#include <criterion/criterion.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/broker_support.h"

/* Record timestamps: a fixed epoch, so time lookups are exact. */
#define T0 1700000000000LL

static struct bk B;
static uint8_t batch[BT_BYTES_MAX];

static void setup(void) { bk_init(&B); }
static void teardown(void) { bk_fini(&B); }

TestSuite(broker, .init = setup, .fini = teardown, .timeout = 60);

static bool path_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static bool topic_dir_exists(const char *topic)
{
    char path[BK_PATH_BYTES + 300];
    snprintf(path, sizeof(path), "%s/topics/%s", B.data_dir, topic);
    return path_exists(path);
}

/* A produced batch remembered for checking what fetch gives back. */
struct sent {
    uint8_t *bytes;
    size_t len;
    int64_t offset;
};

static struct sent produce_ok(struct cl *c, const char *topic, int32_t partition, uint32_t records,
                              uint32_t seed, int16_t acks)
{
    size_t len = bt_make(batch, sizeof(batch), records, seed, T0 + seed * 1000, -1, 0, -1);
    struct sent s = {.bytes = malloc(len), .len = len};
    cr_assert_not_null(s.bytes);
    memcpy(s.bytes, batch, len);
    int rc = rq_produce(c, topic, partition, batch, len, acks, &s.offset);
    cr_assert_eq(rc, 0, "produce to %s/%d: %s", topic, partition, err_str(rc));
    return s;
}

/* Fetches partition from `from` and checks it holds exactly these batches. */
static void expect_batches(struct cl *c, const char *topic, int32_t partition, int64_t from,
                           const struct sent *s, size_t count)
{
    struct fetched f;
    rq_fetch(c, topic, partition, from, &f);
    cr_assert_eq(f.err, 0, "fetch %s/%d: %s", topic, partition, err_str(f.err));
    cr_assert_eq(bt_count(f.records, f.records_bytes), count, "%s/%d: batch count", topic,
                 partition);
    for (size_t i = 0; i < count; i++) {
        const uint8_t *got;
        size_t got_len;
        cr_assert(bt_at(f.records, f.records_bytes, i, &got, &got_len));
        bt_assert_same(got, got_len, s[i].bytes, s[i].len, s[i].offset);
    }
    rq_fetched_free(&f);
}

static void free_sent(struct sent *s, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free(s[i].bytes);
    }
}

/* ---- produce and fetch ---- */

Test(broker, produce_fetch_round_trip_across_partitions)
{
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, "orders", 3), 0);
    struct sent s[3][2];
    for (int32_t p = 0; p < 3; p++) {
        s[p][0] = produce_ok(&c, "orders", p, 2 + (uint32_t)p, 10 + (uint32_t)p, 1);
        s[p][1] = produce_ok(&c, "orders", p, 4, 20 + (uint32_t)p, 1);
        cr_assert_eq(s[p][0].offset, 0, "each partition numbers from 0");
        cr_assert_eq(s[p][1].offset, 2 + p, "offsets continue within a partition");
    }
    for (int32_t p = 0; p < 3; p++) {
        expect_batches(&c, "orders", p, 0, s[p], 2);
        expect_batches(&c, "orders", p, s[p][1].offset, &s[p][1], 1);
        /* An offset inside a batch gets that whole batch. */
        expect_batches(&c, "orders", p, 1, s[p], 2);
        cr_assert_eq(rq_latest(&c, "orders", p), 6 + p);
    }
    for (int32_t p = 0; p < 3; p++) {
        free_sent(s[p], 2);
    }
    cl_close(&c);
    bk_stop(&B);
}

Test(broker, offsets_continue_across_produces_and_connections)
{
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, "seq", 1), 0);
    struct sent s[6];
    for (uint32_t i = 0; i < 5; i++) {
        s[i] = produce_ok(&c, "seq", 0, 3, i, 1);
        cr_assert_eq(s[i].offset, 3 * (int64_t)i);
    }
    cl_close(&c);
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    s[5] = produce_ok(&c, "seq", 0, 1, 5, 1);
    cr_assert_eq(s[5].offset, 15);
    cr_assert_eq(rq_latest(&c, "seq", 0), 16);
    expect_batches(&c, "seq", 0, 0, s, 6);
    free_sent(s, 6);
    cl_close(&c);
    bk_stop(&B);
}

/* ---- long poll ---- */

Test(broker, long_poll_wakes_when_data_arrives)
{
    bk_start(&B);
    struct cl waiter;
    struct cl producer;
    cl_connect(&waiter, B.port, 30000);
    cl_connect(&producer, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&producer, "lp", 2), 0);
    int64_t t0 = clock_mono_ms();
    uint32_t corr = rq_fetch_send(&waiter, "lp", 1, 0, 20000, 1);
    usleep(200 * 1000); /* let it park; if it has not, it answers with data at once */
    struct sent s = produce_ok(&producer, "lp", 1, 3, 7, 1);
    struct fetched f;
    rq_fetch_recv(&waiter, corr, &f);
    int64_t elapsed = clock_mono_ms() - t0;
    cr_assert_eq(f.err, 0, "%s", err_str(f.err));
    cr_assert_eq(bt_count(f.records, f.records_bytes), 1, "the long poll carries the data");
    bt_assert_same(f.records, f.records_bytes, s.bytes, s.len, 0);
    cr_assert_eq(f.offset_latest, 3);
    cr_assert_lt(elapsed, 10000, "answered after %lld ms: the wait ran out, no wake-up",
                 (long long)elapsed);
    rq_fetched_free(&f);
    free_sent(&s, 1);
    cl_close(&waiter);
    cl_close(&producer);
    bk_stop(&B);
}

Test(broker, long_poll_times_out_empty)
{
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, "quiet", 1), 0);
    int64_t t0 = clock_mono_ms();
    struct fetched f;
    rq_fetch_recv(&c, rq_fetch_send(&c, "quiet", 0, 0, 300, 1), &f);
    int64_t elapsed = clock_mono_ms() - t0;
    cr_assert_eq(f.err, 0, "%s", err_str(f.err));
    cr_assert_eq(f.records_bytes, 0);
    cr_assert_eq(f.offset_latest, 0);
    cr_assert_geq(elapsed, 250, "answered after %lld ms, before its wait", (long long)elapsed);
    cr_assert_lt(elapsed, 5000, "answered after %lld ms", (long long)elapsed);
    /* The connection serves on after the timeout. */
    rq_ping(&c);
    rq_fetched_free(&f);
    cl_close(&c);
    bk_stop(&B);
}

/* ---- acks ---- */

Test(broker, acks_zero_gets_no_answer_and_writes)
{
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, "fire", 1), 0);
    struct sent s[3];
    for (uint32_t i = 0; i < 3; i++) {
        size_t len = bt_make(batch, sizeof(batch), 2, i, T0, -1, 0, -1);
        s[i] = (struct sent){.bytes = malloc(len), .len = len, .offset = 2 * (int64_t)i};
        memcpy(s[i].bytes, batch, len);
        (void)rq_produce_send(&c, "fire", 0, batch, len, PROTO_ACKS_NONE);
    }
    /* The next frame on the connection must be the ping's answer. */
    rq_ping(&c);
    cr_assert_eq(rq_latest(&c, "fire", 0), 6);
    expect_batches(&c, "fire", 0, 0, s, 3);
    free_sent(s, 3);
    cl_close(&c);
    bk_stop(&B);
}

Test(broker, acks_one_and_all_are_answered_and_kept)
{
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, "durable", 1), 0);
    struct sent s[4];
    s[0] = produce_ok(&c, "durable", 0, 3, 1, PROTO_ACKS_LEADER);
    s[1] = produce_ok(&c, "durable", 0, 2, 2, PROTO_ACKS_ALL);
    s[2] = produce_ok(&c, "durable", 0, 1, 3, PROTO_ACKS_ALL);
    cr_assert_eq(s[1].offset, 3);
    cr_assert_eq(s[2].offset, 5);
    expect_batches(&c, "durable", 0, 0, s, 3);
    cl_close(&c);
    /* acks=all data survives a kill -9 and the recovery after it. */
    cr_assert_eq(kill(B.pid, SIGKILL), 0);
    int status;
    cr_assert(bk_wait(B.pid, 5000, &status));
    B.pid = 0;
    bk_start(&B);
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    expect_batches(&c, "durable", 0, 0, s, 3);
    s[3] = produce_ok(&c, "durable", 0, 1, 4, PROTO_ACKS_ALL);
    cr_assert_eq(s[3].offset, 6);
    free_sent(s, 4);
    cl_close(&c);
    bk_stop(&B);
}

/* ---- idempotent produce ---- */

static int produce_seq_acks(struct cl *c, const char *topic, int32_t partition, int64_t pid,
                            int16_t epoch, int32_t seq, uint32_t records, int16_t acks,
                            int64_t *offset)
{
    size_t len = bt_make(batch, sizeof(batch), records, (uint32_t)seq, T0, pid, epoch, seq);
    return rq_produce(c, topic, partition, batch, len, acks, offset);
}

static int produce_seq(struct cl *c, const char *topic, int32_t partition, int64_t pid,
                       int16_t epoch, int32_t seq, uint32_t records, int64_t *offset)
{
    return produce_seq_acks(c, topic, partition, pid, epoch, seq, records, PROTO_ACKS_LEADER,
                            offset);
}

Test(broker, idempotent_duplicate_answered_with_first_offset)
{
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, "idem", 1), 0);
    int16_t epoch;
    int64_t pid = rq_init_producer_id(&c, &epoch);
    int16_t epoch2;
    int64_t pid2 = rq_init_producer_id(&c, &epoch2);
    cr_assert_geq(pid, 0);
    cr_assert_eq(epoch, 0);
    cr_assert_neq(pid, pid2, "every InitProducerId hands out a new id");
    struct sent plain = produce_ok(&c, "idem", 0, 2, 99, 1);
    int64_t off;
    int64_t again;
    cr_assert_eq(produce_seq(&c, "idem", 0, pid, 0, 0, 3, &off), 0);
    cr_assert_eq(off, 2);
    cr_assert_eq(produce_seq(&c, "idem", 0, pid, 0, 0, 3, &again), 0, "a duplicate is a success");
    cr_assert_eq(again, 2, "a duplicate gets its first offset");
    cr_assert_eq(rq_latest(&c, "idem", 0), 5, "a duplicate is not written again");
    cr_assert_eq(produce_seq(&c, "idem", 0, pid, 0, 3, 2, &off), 0);
    cr_assert_eq(off, 5);
    cr_assert_eq(produce_seq(&c, "idem", 0, pid, 0, 0, 3, &again), 0);
    cr_assert_eq(again, 2, "an older batch still recent is recognised");
    /* Another producer's sequences are its own. */
    cr_assert_eq(produce_seq(&c, "idem", 0, pid2, 0, 0, 1, &off), 0);
    cr_assert_eq(off, 7);
    cr_assert_eq(rq_latest(&c, "idem", 0), 8);
    struct fetched f;
    rq_fetch(&c, "idem", 0, 0, &f);
    cr_assert_eq(bt_count(f.records, f.records_bytes), 4, "each batch written once");
    rq_fetched_free(&f);
    free_sent(&plain, 1);
    cl_close(&c);
    bk_stop(&B);
}

/* A retry of a batch older than the five the broker remembers of its
 * producer (a request the producer gave up on that the broker still
 * carried out, then more batches): it went in before them, sequences
 * being taken only in order, so it is answered as written, with no
 * offset (-1), and not written again; with acks=1 and acks=all alike. */
Test(broker, idempotent_retry_older_than_remembered_is_written_without_offset)
{
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, "old", 1), 0);
    int16_t epoch;
    int64_t pid = rq_init_producer_id(&c, &epoch);
    int64_t off;
    for (int32_t seq = 0; seq < 7; seq++) {
        cr_assert_eq(produce_seq_acks(&c, "old", 0, pid, epoch, seq, 1, PROTO_ACKS_ALL, &off), 0);
        cr_assert_eq(off, seq);
    }
    cr_assert_eq(produce_seq(&c, "old", 0, pid, epoch, 0, 1, &off), 0, "written before");
    cr_assert_eq(off, -1, "where is not known");
    cr_assert_eq(produce_seq_acks(&c, "old", 0, pid, epoch, 1, 1, PROTO_ACKS_ALL, &off), 0);
    cr_assert_eq(off, -1);
    cr_assert_eq(rq_latest(&c, "old", 0), 7, "nothing written twice");
    cr_assert_eq(produce_seq(&c, "old", 0, pid, epoch, 7, 1, &off), 0, "the next follows");
    cr_assert_eq(off, 7);
    cl_close(&c);
    bk_stop(&B);
}

Test(broker, sequence_gap_and_old_epoch_refused)
{
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, "gap", 1), 0);
    int16_t epoch;
    int64_t pid = rq_init_producer_id(&c, &epoch);
    int64_t off;
    cr_assert_eq(produce_seq(&c, "gap", 0, pid, 0, 0, 3, &off), 0);
    int rc = produce_seq(&c, "gap", 0, pid, 0, 10, 1, &off);
    cr_assert_eq(rc, -NG_EOUT_OF_ORDER, "a gap: %s", err_str(rc));
    cr_assert_eq(off, -1);
    cr_assert_eq(rq_latest(&c, "gap", 0), 3, "nothing of a refused batch is written");
    cr_assert_eq(produce_seq(&c, "gap", 0, pid, 0, 3, 1, &off), 0, "the next sequence goes on");
    cr_assert_eq(off, 3);
    cr_assert_eq(produce_seq(&c, "gap", 0, pid, 1, 0, 1, &off), 0, "a new epoch starts afresh");
    rc = produce_seq(&c, "gap", 0, pid, 0, 4, 1, &off);
    cr_assert_eq(rc, -NG_EPRODUCER_FENCED, "an old epoch: %s", err_str(rc));
    cr_assert_eq(rq_latest(&c, "gap", 0), 5);
    cl_close(&c);
    bk_stop(&B);
}

/* ---- restart and shutdown ---- */

Test(broker, restart_keeps_topics_data_and_producer_state)
{
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, "keep", 2), 0);
    cr_assert_eq(rq_create(&c, "other", 1), 0);
    struct sent s[2] = {produce_ok(&c, "keep", 0, 3, 1, 1), produce_ok(&c, "keep", 0, 2, 2, 1)};
    int16_t epoch;
    int64_t pid = rq_init_producer_id(&c, &epoch);
    int64_t off0;
    int64_t off1;
    cr_assert_eq(produce_seq(&c, "keep", 1, pid, 0, 0, 3, &off0), 0);
    cr_assert_eq(produce_seq(&c, "keep", 1, pid, 0, 3, 2, &off1), 0);
    cl_close(&c);
    bk_stop(&B);

    bk_start(&B);
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    struct md m;
    rq_metadata(&c, NULL, &m);
    const struct md_topic *keep = md_find(&m, "keep");
    cr_assert_not_null(keep, "topic gone after a restart");
    cr_assert_not_null(md_find(&m, "other"));
    cr_assert_eq(keep->partition_count, 2);
    cr_assert_eq(keep->parts[0].offset_latest, 5);
    cr_assert_eq(keep->parts[1].offset_latest, 5);
    expect_batches(&c, "keep", 0, 0, s, 2);
    int64_t again;
    cr_assert_eq(produce_seq(&c, "keep", 1, pid, 0, 3, 2, &again), 0);
    cr_assert_eq(again, off1, "the duplicate is still recognised after a restart");
    cr_assert_eq(produce_seq(&c, "keep", 1, pid, 0, 0, 3, &again), 0);
    cr_assert_eq(again, off0);
    cr_assert_eq(rq_latest(&c, "keep", 1), 5);
    int rc = produce_seq(&c, "keep", 1, pid, 0, 9, 1, &again);
    cr_assert_eq(rc, -NG_EOUT_OF_ORDER, "%s", err_str(rc));
    cr_assert_eq(produce_seq(&c, "keep", 1, pid, 0, 5, 1, &again), 0);
    cr_assert_eq(again, 5);
    int64_t pid_new = rq_init_producer_id(&c, &epoch);
    cr_assert_neq(pid_new, pid, "producer ids are not handed out twice across restarts");
    free_sent(s, 2);
    cl_close(&c);
    bk_stop(&B);
}

Test(broker, sigterm_answers_parked_fetch_and_exits_zero)
{
    bk_start(&B);
    struct cl c;
    struct cl idle;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cl_connect(&idle, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, "bye", 1), 0);
    rq_ping(&idle);
    uint32_t corr = rq_fetch_send(&c, "bye", 0, 0, 20000, 1);
    usleep(100 * 1000);
    int64_t t0 = clock_mono_ms();
    cr_assert_eq(kill(B.pid, SIGTERM), 0);
    struct fetched f;
    rq_fetch_recv(&c, corr, &f);
    cr_assert_lt(clock_mono_ms() - t0, 10000, "a stop answers parked fetches");
    cr_assert_eq(f.records_bytes, 0);
    rq_fetched_free(&f);
    struct proto_resp_header h;
    struct rd body;
    cr_assert_eq(cl_recv(&idle, &h, &body), -NG_EDISCONNECTED, "idle connections are closed");
    bk_stop(&B);
    cl_close(&c);
    cl_close(&idle);
}

/* ---- ListOffsets, Metadata, DeleteTopics ---- */

/* Batch b of the "times" topic holds records stamped T0 + 1000 b + i, i < 5. */
static void produce_timed(struct cl *c)
{
    cr_assert_eq(rq_create(c, "times", 1), 0);
    for (uint32_t b = 0; b < 3; b++) {
        size_t len = bt_make(batch, sizeof(batch), 5, b, T0 + 1000 * b, -1, 0, -1);
        int64_t off;
        cr_assert_eq(rq_produce(c, "times", 0, batch, len, 1, &off), 0);
    }
}

struct time_case {
    int64_t ts_in;
    int64_t offset;
    int64_t ts_out; /* the found record's timestamp */
};

static void check_times(struct cl *c, const struct time_case *cases, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        int64_t off;
        int64_t ts;
        int rc = rq_list_offset(c, "times", 0, cases[i].ts_in, &off, &ts);
        cr_assert_eq(rc, 0, "ts %lld: %s", (long long)cases[i].ts_in, err_str(rc));
        cr_assert_eq(off, cases[i].offset, "ts %lld: offset %lld, expected %lld",
                     (long long)cases[i].ts_in, (long long)off, (long long)cases[i].offset);
        cr_assert_eq(ts, cases[i].ts_out, "ts %lld: found timestamp %lld, expected %lld",
                     (long long)cases[i].ts_in, (long long)ts, (long long)cases[i].ts_out);
    }
}

Test(broker, list_offsets_earliest_latest_and_by_time)
{
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    produce_timed(&c);
    const struct time_case cases[] = {
        {PROTO_TIMESTAMP_EARLIEST, 0, -1},
        {PROTO_TIMESTAMP_LATEST, 15, -1},
        {T0, 0, T0},
        {T0 + 3, 3, T0 + 3},
        {T0 + 1002, 7, T0 + 1002},
        {T0 + 2004, 14, T0 + 2004},
        {T0 + 9999, 15, -1},
    };
    check_times(&c, cases, sizeof(cases) / sizeof(cases[0]));
    /* Between records: the offset of the next one. */
    int64_t off;
    int64_t ts;
    cr_assert_eq(rq_list_offset(&c, "times", 0, T0 + 1500, &off, &ts), 0);
    cr_assert_eq(off, 10);
    cr_assert_eq(rq_list_offset(&c, "times", 0, 0, &off, &ts), 0);
    cr_assert_eq(off, 0);
    cr_assert_eq(rq_list_offset(&c, "times", 0, -7, &off, &ts), -NG_EBADARG);
    cr_assert_eq(rq_list_offset(&c, "times", 3, -1, &off, &ts), -NG_EUNKNOWN_TOPIC);
    cr_assert_eq(rq_list_offset(&c, "nope", 0, -1, &off, &ts), -NG_EUNKNOWN_TOPIC);
    cl_close(&c);
    bk_stop(&B);
}

/* ListOffsets answers the found record's timestamp, not the requested one. */
Test(broker, list_offsets_reports_the_found_records_timestamp)
{
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    produce_timed(&c);
    const struct time_case cases[] = {
        {0, 0, T0},
        {T0 + 1500, 10, T0 + 2000},
        {T0 + 1005, 10, T0 + 2000},
    };
    check_times(&c, cases, sizeof(cases) / sizeof(cases[0]));
    cl_close(&c);
    bk_stop(&B);
}

Test(broker, metadata_lists_topics_with_offsets)
{
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, "alpha", 2), 0);
    cr_assert_eq(rq_create(&c, "beta", 1), 0);
    cr_assert_eq(rq_create(&c, "alpha", 2), -NG_ETOPIC_EXISTS);
    struct sent s = produce_ok(&c, "alpha", 1, 3, 1, 1);
    struct md m;
    rq_metadata(&c, NULL, &m);
    cr_assert_eq(m.topic_count, 2);
    cr_assert_str_eq(m.host, "127.0.0.1");
    cr_assert_eq(m.port, B.port);
    const struct md_topic *a = md_find(&m, "alpha");
    cr_assert_not_null(a);
    cr_assert_eq(a->err, 0);
    cr_assert_eq(a->partition_count, 2);
    for (int32_t p = 0; p < 2; p++) {
        cr_assert_eq(a->parts[p].partition, p);
        cr_assert_eq(a->parts[p].err, 0);
        cr_assert_eq(a->parts[p].offset_earliest, 0);
        cr_assert_eq(a->parts[p].offset_latest, p == 1 ? 3 : 0);
    }
    const char *const names[] = {"beta", "nope", "alpha", NULL};
    rq_metadata(&c, names, &m);
    cr_assert_eq(m.topic_count, 3);
    cr_assert_str_eq(m.topics[0].name, "beta", "answers in request order");
    cr_assert_eq(m.topics[0].partition_count, 1);
    cr_assert_str_eq(m.topics[1].name, "nope");
    cr_assert_eq(m.topics[1].err, -NG_EUNKNOWN_TOPIC);
    cr_assert_eq(m.topics[1].partition_count, 0);
    cr_assert_str_eq(m.topics[2].name, "alpha");
    cr_assert_eq(m.topics[2].parts[1].offset_latest, 3);
    cr_assert_not(topic_dir_exists("nope"), "Metadata never creates topics");
    free_sent(&s, 1);
    cl_close(&c);
    bk_stop(&B);
}

Test(broker, metadata_v2_names_a_single_broker_leader_of_everything)
{
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, "alpha", 2), 0);
    struct sent s = produce_ok(&c, "alpha", 1, 3, 1, 1);
    struct md m;
    rq_metadata_version(&c, 2, NULL, &m);
    cr_assert_eq(m.broker_id, 0);
    cr_assert_eq(m.controller_id, 0);
    cr_assert_eq(m.broker_count, 1);
    cr_assert_eq(m.brokers[0].id, 0);
    cr_assert_str_eq(m.brokers[0].host, "127.0.0.1");
    cr_assert_eq(m.brokers[0].port, B.port);
    const struct md_topic *a = md_find(&m, "alpha");
    cr_assert_not_null(a);
    cr_assert_eq(a->partition_count, 2);
    for (int32_t p = 0; p < 2; p++) {
        const struct proto_metadata_partition *mp = &a->parts[p];
        cr_assert_eq(mp->offset_latest, p == 1 ? 3 : 0);
        cr_assert_eq(mp->leader, 0);
        cr_assert_eq(mp->leader_epoch, 0);
        cr_assert_eq(mp->replica_count, 1);
        cr_assert_eq(mp->replicas[0], 0);
        cr_assert_eq(mp->isr_count, 1);
        cr_assert_eq(mp->isr[0], 0);
    }
    const char *const names[] = {"nope", NULL};
    rq_metadata_version(&c, 2, names, &m);
    cr_assert_eq(m.topic_count, 1);
    cr_assert_eq(m.topics[0].err, -NG_EUNKNOWN_TOPIC);
    cr_assert_eq(m.broker_count, 1);
    free_sent(&s, 1);
    cl_close(&c);
    bk_stop(&B);
}

Test(broker, create_topics_v1_refuses_replication_on_a_single_broker)
{
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    struct proto_create_topic t = {.name = proto_str_make("r3"),
                                   .partition_count = 1,
                                   .retention_ms = PROTO_CONFIG_DEFAULT,
                                   .retention_bytes = PROTO_CONFIG_DEFAULT,
                                   .segment_bytes = PROTO_CONFIG_DEFAULT,
                                   .batch_bytes_max = PROTO_CONFIG_DEFAULT,
                                   .replication_factor = 3};
    cr_assert_eq(rq_create_version(&c, 1, &t), -NG_ENOT_ENOUGH_REPLICAS);
    cr_assert_not(topic_dir_exists("r3"), "nothing was created");
    t.replication_factor = 0;
    cr_assert_eq(rq_create_version(&c, 1, &t), -NG_EBADARG);
    t.replication_factor = -2;
    cr_assert_eq(rq_create_version(&c, 1, &t), -NG_EBADARG);
    t.replication_factor = 1;
    cr_assert_eq(rq_create_version(&c, 1, &t), 0);
    t.name = proto_str_make("rdefault");
    t.replication_factor = PROTO_CONFIG_DEFAULT;
    cr_assert_eq(rq_create_version(&c, 1, &t), 0);
    struct md m;
    rq_metadata_version(&c, 2, NULL, &m);
    cr_assert_eq(m.topic_count, 2);
    cr_assert_eq(md_find(&m, "r3")->parts[0].replica_count, 1);
    cl_close(&c);
    bk_stop(&B);
}

Test(broker, delete_topic_then_metadata_says_unknown)
{
    bk_set(&B, "auto_create_topics=false");
    bk_start(&B);
    struct cl c;
    struct cl waiter;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cl_connect(&waiter, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, "doomed", 2), 0);
    cr_assert_eq(rq_create(&c, "stays", 1), 0);
    struct sent s = produce_ok(&c, "doomed", 0, 3, 1, 1);
    cr_assert(topic_dir_exists("doomed"));
    uint32_t corr = rq_fetch_send(&waiter, "doomed", 1, 0, 20000, 1);
    usleep(100 * 1000);
    cr_assert_eq(rq_delete(&c, "doomed"), 0);
    struct fetched f;
    int64_t t0 = clock_mono_ms();
    rq_fetch_recv(&waiter, corr, &f);
    cr_assert_lt(clock_mono_ms() - t0, 10000, "a fetch parked on a deleted topic is answered");
    rq_fetched_free(&f);
    const char *const names[] = {"doomed", NULL};
    struct md m;
    rq_metadata(&c, names, &m);
    cr_assert_eq(m.topics[0].err, -NG_EUNKNOWN_TOPIC);
    rq_metadata(&c, NULL, &m);
    cr_assert_null(md_find(&m, "doomed"));
    cr_assert_not_null(md_find(&m, "stays"));
    rq_fetch(&c, "doomed", 0, 0, &f);
    cr_assert_eq(f.err, -NG_EUNKNOWN_TOPIC);
    rq_fetched_free(&f);
    int64_t off;
    cr_assert_eq(rq_produce(&c, "doomed", 0, s.bytes, s.len, 1, &off), -NG_EUNKNOWN_TOPIC);
    cr_assert_eq(rq_delete(&c, "doomed"), -NG_EUNKNOWN_TOPIC);
    cr_assert_not(topic_dir_exists("doomed"), "the topic's directory is gone");
    cl_close(&c);
    cl_close(&waiter);
    bk_stop(&B);
    /* Still gone after a restart; the name can be used again, from 0. */
    bk_start(&B);
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    rq_metadata(&c, names, &m);
    cr_assert_eq(m.topics[0].err, -NG_EUNKNOWN_TOPIC);
    cr_assert_eq(rq_create(&c, "doomed", 1), 0);
    cr_assert_eq(rq_latest(&c, "doomed", 0), 0);
    free_sent(&s, 1);
    cl_close(&c);
    bk_stop(&B);
}

Test(broker, fetch_out_of_range_carries_earliest_and_latest)
{
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, "range", 1), 0);
    struct sent s = produce_ok(&c, "range", 0, 5, 1, 1);
    const int64_t bad[] = {6, 1000, -1};
    for (size_t i = 0; i < 3; i++) {
        struct fetched f;
        rq_fetch(&c, "range", 0, bad[i], &f);
        cr_assert_eq(f.err, -NG_EOFFSET_RANGE, "offset %lld: %s", (long long)bad[i],
                     err_str(f.err));
        cr_assert_eq(f.offset_earliest, 0);
        cr_assert_eq(f.offset_latest, 5);
        cr_assert_eq(f.records_bytes, 0);
        rq_fetched_free(&f);
    }
    /* Out of range is news: a long poll does not wait for it. */
    int64_t t0 = clock_mono_ms();
    struct fetched f;
    rq_fetch_recv(&c, rq_fetch_send(&c, "range", 0, 9, 20000, 1), &f);
    cr_assert_eq(f.err, -NG_EOFFSET_RANGE);
    cr_assert_lt(clock_mono_ms() - t0, 10000);
    rq_fetched_free(&f);
    /* The log end is not out of range: nothing there yet. */
    rq_fetch(&c, "range", 0, 5, &f);
    cr_assert_eq(f.err, 0);
    cr_assert_eq(f.records_bytes, 0);
    rq_fetched_free(&f);
    rq_fetch(&c, "range", 4, 0, &f);
    cr_assert_eq(f.err, -NG_EUNKNOWN_TOPIC, "no such partition");
    rq_fetched_free(&f);
    free_sent(&s, 1);
    cl_close(&c);
    bk_stop(&B);
}

/* ---- auto-creation ---- */

Test(broker, produce_to_missing_topic_refused_without_auto_create)
{
    bk_set(&B, "auto_create_topics=false");
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    size_t len = bt_make(batch, sizeof(batch), 2, 1, T0, -1, 0, -1);
    int64_t off;
    int rc = rq_produce(&c, "missing", 0, batch, len, 1, &off);
    cr_assert_eq(rc, -NG_EUNKNOWN_TOPIC, "%s", err_str(rc));
    cr_assert_eq(off, -1);
    const char *const names[] = {"missing", NULL};
    struct md m;
    rq_metadata(&c, names, &m);
    cr_assert_eq(m.topics[0].err, -NG_EUNKNOWN_TOPIC);
    cr_assert_not(topic_dir_exists("missing"));
    cl_close(&c);
    bk_stop(&B);
}

Test(broker, produce_auto_creates_topic_by_default)
{
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    struct sent s = produce_ok(&c, "fresh", 0, 4, 1, 1);
    cr_assert_eq(s.offset, 0);
    const char *const names[] = {"fresh", NULL};
    struct md m;
    rq_metadata(&c, names, &m);
    cr_assert_eq(m.topics[0].err, 0);
    cr_assert_eq(m.topics[0].partition_count, 1, "default_partitions is 1");
    cr_assert_eq(m.topics[0].parts[0].offset_latest, 4);
    expect_batches(&c, "fresh", 0, 0, &s, 1);
    free_sent(&s, 1);
    cl_close(&c);
    bk_stop(&B);
    /* The created topic is a real one: it is back after a restart. */
    bk_start(&B);
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_latest(&c, "fresh", 0), 4);
    cl_close(&c);
    bk_stop(&B);
}

Test(broker, auto_create_uses_default_partitions)
{
    bk_set(&B, "default_partitions=3");
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    struct sent s = produce_ok(&c, "wide", 2, 1, 1, 1);
    const char *const names[] = {"wide", NULL};
    struct md m;
    rq_metadata(&c, names, &m);
    cr_assert_eq(m.topics[0].partition_count, 3);
    cr_assert_eq(m.topics[0].parts[2].offset_latest, 1);
    free_sent(&s, 1);
    cl_close(&c);
    bk_stop(&B);
}

/* ---- start-up failures ---- */

/* Runs nagared with args to its exit; returns the log's lines with level
 * ERROR, counted in *errors, and asserts a non-zero exit. */
static char *run_failing(const char *const *args, const char *log_path, int *errors)
{
    pid_t pid = bk_spawn(args, log_path);
    int status;
    if (!bk_wait(pid, BK_START_TIMEOUT_MS, &status)) {
        (void)kill(pid, SIGKILL);
        (void)waitpid(pid, &status, 0);
        bk_print_tail(log_path, "expected a failed start");
        cr_assert_fail("nagared did not exit");
    }
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) != 0, "exit %#x, expected failure", status);
    char *text = bk_read_file(log_path, NULL);
    *errors = 0;
    for (const char *p = strstr(text, " ERROR "); p != NULL; p = strstr(p + 1, " ERROR ")) {
        (*errors)++;
    }
    bk_assert_log_clean(log_path, 0);
    return text;
}

Test(broker, port_in_use_exits_nonzero_with_one_line)
{
    bk_start(&B);
    char listen[32];
    char dir2[BK_PATH_BYTES + 8];
    char log2[BK_PATH_BYTES + 8];
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", B.port);
    snprintf(dir2, sizeof(dir2), "%s/data2", B.root);
    snprintf(log2, sizeof(log2), "%s/second.log", B.root);
    const char *args[] = {"--listen",
                          listen,
                          "--kafka-listen",
                          "127.0.0.1:0",
                          "--admin-listen",
                          "127.0.0.1:0",
                          "--data-dir",
                          dir2,
                          NULL};
    int errors;
    char *text = run_failing(args, log2, &errors);
    cr_assert_eq(errors, 1, "one clear line, got:\n%s", text);
    cr_assert_not_null(strstr(text, listen), "the line names the address:\n%s", text);
    cr_assert_not_null(strstr(text, "in use"), "the line says why:\n%s", text);
    free(text);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    rq_ping(&c);
    cl_close(&c);
    bk_stop(&B);
}

Test(broker, data_dir_in_use_by_another_broker_refused)
{
    bk_start(&B);
    char log2[BK_PATH_BYTES + 8];
    snprintf(log2, sizeof(log2), "%s/second.log", B.root);
    const char *args[] = {"--listen",    "127.0.0.1:0",    "--kafka-listen",
                          "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
                          "--data-dir",  B.data_dir,       NULL};
    int errors;
    char *text = run_failing(args, log2, &errors);
    cr_assert_eq(errors, 1, "one clear line, got:\n%s", text);
    cr_assert_not_null(strstr(text, B.data_dir), "the line names the directory:\n%s", text);
    free(text);
    bk_stop(&B);
}

Test(broker, data_dir_that_is_a_file_exits_nonzero_with_one_line)
{
    char file[BK_PATH_BYTES + 8];
    char log[BK_PATH_BYTES + 8];
    snprintf(file, sizeof(file), "%s/plain-file", B.root);
    snprintf(log, sizeof(log), "%s/file.log", B.root);
    FILE *f = fopen(file, "w");
    cr_assert_not_null(f);
    fputs("not a directory\n", f);
    fclose(f);
    const char *args[] = {"--listen",
                          "127.0.0.1:0",
                          "--kafka-listen",
                          "127.0.0.1:0",
                          "--admin-listen",
                          "127.0.0.1:0",
                          "--data-dir",
                          file,
                          NULL};
    int errors;
    char *text = run_failing(args, log, &errors);
    cr_assert_eq(errors, 1, "one clear line, got:\n%s", text);
    cr_assert_not_null(strstr(text, file), "the line names the path:\n%s", text);
    cr_assert_not_null(strstr(text, "Not a directory"), "the line says why:\n%s", text);
    free(text);
}

/* ---- many partitions in one request, byte limits ---- */

Test(broker, produce_partitions_of_one_request_succeed_or_fail_independently)
{
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, "multi", 3), 0);
    static uint8_t b[4][4096];
    size_t len[4];
    for (uint32_t i = 0; i < 4; i++) {
        len[i] = bt_make(b[i], sizeof(b[i]), 2 + i, i, T0, -1, 0, -1);
    }
    b[1][len[1] - 1] ^= 1; /* bad checksum */
    const int32_t parts[] = {0, 1, 2, 0, 7};
    const uint32_t which[] = {0, 1, 2, 3, 0};
    struct proto_enc e;
    uint32_t corr = cl_next_corr(&c);
    struct proto_produce_req req = {.acks = 1, .timeout_ms = 1000};
    proto_produce_req_begin(&e, cl_wr(&c), 0, corr, PROTO_STR_NULL, &req);
    proto_enc_topic(&e, proto_str_make("multi"));
    for (size_t i = 0; i < 5; i++) {
        struct proto_produce_req_partition p = {.partition = parts[i],
                                                .records = b[which[i]],
                                                .records_bytes = (uint32_t)len[which[i]]};
        proto_produce_req_partition(&e, &p);
    }
    cr_assert_eq(proto_enc_end(&e), 0);
    cr_assert_eq(cl_send_wr(&c), 0);
    struct rd body;
    struct proto_dec d;
    cl_expect(&c, corr, &body);
    cr_assert_eq(proto_produce_resp_decode(&body, 0, &d), 0);
    struct proto_topic t;
    cr_assert(proto_next_topic(&d, &t));
    cr_assert_eq(t.partition_count, 5);
    const int errs[] = {0, -NG_ECHECKSUM, 0, 0, -NG_EUNKNOWN_TOPIC};
    const int64_t offsets[] = {0, -1, 0, 2, -1};
    for (size_t i = 0; i < 5; i++) {
        struct proto_produce_resp_partition p;
        cr_assert(proto_produce_resp_next_partition(&d, &p));
        cr_assert_eq(p.partition, parts[i], "answers in request order");
        cr_assert_eq(p.err, errs[i], "entry %zu: %s", i, err_str(p.err));
        cr_assert_eq(p.offset_base, offsets[i], "entry %zu", i);
    }
    cr_assert_eq(rq_latest(&c, "multi", 0), 2 + 5);
    cr_assert_eq(rq_latest(&c, "multi", 1), 0, "the bad batch wrote nothing");
    cr_assert_eq(rq_latest(&c, "multi", 2), 4);
    cl_close(&c);
    bk_stop(&B);
}

/* Fetches one partition with these limits; returns the batch count. */
static size_t fetch_limited(struct cl *c, const char *topic, int32_t part_bytes_max,
                            int32_t req_bytes_max, int32_t wait_ms, int *err)
{
    struct proto_enc e;
    uint32_t corr = cl_next_corr(c);
    struct proto_fetch_req req = {
        .wait_max_ms = wait_ms, .bytes_min = wait_ms > 0 ? 1 : 0, .bytes_max = req_bytes_max};
    proto_fetch_req_begin(&e, cl_wr(c), 0, corr, PROTO_STR_NULL, &req);
    proto_enc_topic(&e, proto_str_make(topic));
    struct proto_fetch_req_partition p = {.partition = 0, .offset = 0, .bytes_max = part_bytes_max};
    proto_fetch_req_partition(&e, &p);
    cr_assert_eq(proto_enc_end(&e), 0);
    cr_assert_eq(cl_send_wr(c), 0);
    struct fetched f;
    rq_fetch_recv(c, corr, &f);
    size_t n = bt_count(f.records, f.records_bytes);
    *err = f.err;
    rq_fetched_free(&f);
    return n;
}

Test(broker, fetch_byte_limits_send_whole_batches)
{
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, "lim", 1), 0);
    struct sent s[5];
    for (uint32_t i = 0; i < 5; i++) {
        s[i] = produce_ok(&c, "lim", 0, 3, i, 1);
    }
    int32_t one = (int32_t)s[0].len;
    int err;
    cr_assert_eq(fetch_limited(&c, "lim", 1, 1 << 20, 0, &err), 1, "a first batch goes whole");
    cr_assert_eq(err, 0);
    cr_assert_eq(fetch_limited(&c, "lim", 1 << 20, 1, 0, &err), 1, "also past the request's limit");
    cr_assert_eq(fetch_limited(&c, "lim", 2 * one, 1 << 20, 0, &err), 2);
    cr_assert_eq(fetch_limited(&c, "lim", 2 * one + one / 2, 1 << 20, 0, &err), 2,
                 "further batches only while they fit");
    cr_assert_eq(fetch_limited(&c, "lim", 1 << 20, 3 * one, 0, &err), 3);
    cr_assert_eq(fetch_limited(&c, "lim", 1 << 20, 1 << 20, 0, &err), 5);
    free_sent(s, 5);
    cl_close(&c);
    bk_stop(&B);
}

Test(broker, fetch_negative_partition_limit_is_that_partitions_error)
{
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, "neg", 1), 0);
    struct sent s = produce_ok(&c, "neg", 0, 3, 1, 1);
    /* docs/protocol.md: "< 0 is NG_EBADARG for this partition"; at once,
     * also in a long poll. */
    for (int32_t wait = 0; wait <= 20000; wait += 20000) {
        int err;
        int64_t t0 = clock_mono_ms();
        cr_assert_eq(fetch_limited(&c, "neg", -1, 1 << 20, wait, &err), 0);
        cr_assert_eq(err, -NG_EBADARG, "wait %d: %s", wait, err_str(err));
        cr_assert_lt(clock_mono_ms() - t0, 10000);
    }
    free_sent(&s, 1);
    cl_close(&c);
    bk_stop(&B);
}

/* ---- long poll: many waiters, bytes_min, vanished clients ---- */

/* True when fd has something to read within ms. */
static bool readable_within(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, ms) == 1;
}

Test(broker, long_poll_wakes_every_waiter)
{
    bk_start(&B);
    struct cl w[3];
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, "fan", 1), 0);
    uint32_t corr[3];
    for (size_t i = 0; i < 3; i++) {
        cl_connect(&w[i], B.port, 30000);
        corr[i] = rq_fetch_send(&w[i], "fan", 0, 0, 20000, 1);
    }
    usleep(200 * 1000);
    struct sent s = produce_ok(&c, "fan", 0, 2, 1, 1);
    int64_t t0 = clock_mono_ms();
    for (size_t i = 0; i < 3; i++) {
        struct fetched f;
        rq_fetch_recv(&w[i], corr[i], &f);
        cr_assert_eq(bt_count(f.records, f.records_bytes), 1, "waiter %zu", i);
        bt_assert_same(f.records, f.records_bytes, s.bytes, s.len, 0);
        rq_fetched_free(&f);
        cl_close(&w[i]);
    }
    cr_assert_lt(clock_mono_ms() - t0, 10000);
    free_sent(&s, 1);
    cl_close(&c);
    bk_stop(&B);
}

Test(broker, long_poll_waits_for_bytes_min)
{
    bk_start(&B);
    struct cl c;
    struct cl w;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cl_connect(&w, B.port, 30000);
    cr_assert_eq(rq_create(&c, "minb", 1), 0);
    size_t one = bt_make(batch, sizeof(batch), 3, 0, T0, -1, 0, -1);
    uint32_t corr = rq_fetch_send(&w, "minb", 0, 0, 20000, (int32_t)(one + one / 2));
    struct sent s[2];
    s[0] = produce_ok(&c, "minb", 0, 3, 0, 1);
    cr_assert_not(readable_within(w.fd, 300), "answered before bytes_min was there");
    s[1] = produce_ok(&c, "minb", 0, 3, 1, 1);
    cr_assert(readable_within(w.fd, 10000), "not answered once bytes_min was there");
    struct fetched f;
    rq_fetch_recv(&w, corr, &f);
    cr_assert_eq(bt_count(f.records, f.records_bytes), 2);
    rq_fetched_free(&f);
    free_sent(s, 2);
    cl_close(&w);
    cl_close(&c);
    bk_stop(&B);
}

Test(broker, parked_fetch_of_a_closed_connection_is_dropped)
{
    bk_start(&B);
    struct cl c;
    struct cl w;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, "gone", 1), 0);
    for (int round = 0; round < 3; round++) {
        cl_connect(&w, B.port, CL_TIMEOUT_MS_DEFAULT);
        (void)rq_fetch_send(&w, "gone", 0, rq_latest(&c, "gone", 0), round == 2 ? 300 : 20000, 1);
        usleep(100 * 1000);
        cl_close(&w);
        usleep(100 * 1000);
        struct sent s = produce_ok(&c, "gone", 0, 1, (uint32_t)round, 1);
        free_sent(&s, 1);
    }
    usleep(400 * 1000); /* the last one's timer fires after its connection went */
    cr_assert(bk_alive(&B));
    rq_ping(&c);
    cl_close(&c);
    bk_stop(&B);
}

/* ---- segments, retention, big and compressed batches ---- */

Test(broker, segments_roll_and_retention_moves_the_log_start)
{
    bk_set(&B, "segment_bytes=4096");
    bk_set(&B, "retention_bytes=8192");
    bk_set(&B, "retention_check_ms=100");
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, "roll", 1), 0);
    enum { N = 60 };
    static struct sent s[N];
    for (uint32_t i = 0; i < N; i++) {
        s[i] = produce_ok(&c, "roll", 0, 5, i, 1); /* ~400 bytes a batch */
    }
    int64_t earliest = 0;
    int64_t ts;
    int64_t deadline = clock_mono_ms() + 5000;
    while (earliest == 0 && clock_mono_ms() < deadline) {
        usleep(50 * 1000);
        cr_assert_eq(rq_list_offset(&c, "roll", 0, PROTO_TIMESTAMP_EARLIEST, &earliest, &ts), 0);
    }
    cr_assert_gt(earliest, 0, "retention deleted no segment");
    cr_assert_eq(earliest % 5, 0, "a log starts at a batch");
    struct fetched f;
    rq_fetch(&c, "roll", 0, 0, &f);
    cr_assert_eq(f.err, -NG_EOFFSET_RANGE);
    cr_assert_eq(f.offset_earliest, earliest);
    cr_assert_eq(f.offset_latest, 5 * N);
    rq_fetched_free(&f);
    struct md m;
    rq_metadata(&c, NULL, &m);
    cr_assert_eq(md_find(&m, "roll")->parts[0].offset_earliest, earliest);
    size_t first = (size_t)(earliest / 5);
    expect_batches(&c, "roll", 0, earliest, &s[first], N - first);
    cl_close(&c);
    bk_stop(&B);
    bk_start(&B);
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_list_offset(&c, "roll", 0, PROTO_TIMESTAMP_EARLIEST, &earliest, &ts), 0);
    first = (size_t)(earliest / 5);
    expect_batches(&c, "roll", 0, earliest, &s[first], N - first);
    cr_assert_eq(rq_latest(&c, "roll", 0), 5 * N);
    free_sent(s, N);
    cl_close(&c);
    bk_stop(&B);
}

Test(broker, big_and_compressed_batches_round_trip)
{
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, "big", 1), 0);
    static uint8_t big[5u << 20];
    struct batch_zctx z = {0};
    cr_assert_eq(batch_zctx_init(&z, sizeof(big), 1), 0);
    struct sent s[2];
    size_t len = bt_make_sized(big, sizeof(big), 4, 1u << 20, 1, BATCH_CODEC_NONE, NULL);
    cr_assert_gt(len, 4u << 20);
    s[0] = (struct sent){.bytes = malloc(len), .len = len};
    memcpy(s[0].bytes, big, len);
    cr_assert_eq(rq_produce(&c, "big", 0, big, len, PROTO_ACKS_ALL, &s[0].offset), 0);
    /* Repetitive values: zstd makes the batch smaller, and it is kept so. */
    len = bt_make_sized(big, sizeof(big), 50, 4000, 2, BATCH_CODEC_ZSTD, &z);
    cr_assert_eq(get_be16(big + BATCH_OFF_ATTRIBUTES) & BATCH_ATTR_CODEC_MASK, BATCH_CODEC_ZSTD);
    s[1] = (struct sent){.bytes = malloc(len), .len = len};
    memcpy(s[1].bytes, big, len);
    cr_assert_eq(rq_produce(&c, "big", 0, big, len, 1, &s[1].offset), 0);
    cr_assert_eq(s[1].offset, 4);
    /* The first batch is over the fetch's 4 MiB partition limit: it comes
     * whole and alone. */
    expect_batches(&c, "big", 0, 0, s, 1);
    expect_batches(&c, "big", 0, 4, &s[1], 1);
    batch_zctx_fini(&z);
    free_sent(s, 2);
    cl_close(&c);
    bk_stop(&B);
}

Test(broker, batch_over_the_topic_maximum_refused)
{
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    struct proto_create_topic t = {.name = proto_str_make("small"),
                                   .partition_count = 1,
                                   .retention_ms = PROTO_CONFIG_DEFAULT,
                                   .retention_bytes = PROTO_CONFIG_DEFAULT,
                                   .segment_bytes = PROTO_CONFIG_DEFAULT,
                                   .batch_bytes_max = 65536};
    cr_assert_eq(rq_create_cfg(&c, &t), 0);
    size_t len = bt_make_sized(batch, sizeof(batch), 2, 40000, 1, BATCH_CODEC_NONE, NULL);
    int64_t off;
    int rc = rq_produce(&c, "small", 0, batch, len, 1, &off);
    cr_assert_eq(rc, -NG_ETOOBIG, "%s", err_str(rc));
    cr_assert_eq(rq_latest(&c, "small", 0), 0);
    len = bt_make_sized(batch, sizeof(batch), 1, 40000, 1, BATCH_CODEC_NONE, NULL);
    cr_assert_eq(rq_produce(&c, "small", 0, batch, len, 1, &off), 0);
    cl_close(&c);
    bk_stop(&B);
}

Test(broker, create_topics_refuses_bad_config)
{
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    struct proto_create_topic good = {.name = proto_str_make("cfg"),
                                      .partition_count = 1,
                                      .retention_ms = PROTO_CONFIG_DEFAULT,
                                      .retention_bytes = PROTO_CONFIG_DEFAULT,
                                      .segment_bytes = PROTO_CONFIG_DEFAULT,
                                      .batch_bytes_max = PROTO_CONFIG_DEFAULT};
    struct proto_create_topic bad[8];
    for (size_t i = 0; i < 8; i++) {
        bad[i] = good;
    }
    bad[0].partition_count = 0;
    bad[1].partition_count = -5;
    bad[2].partition_count = PROTO_PARTITIONS_MAX + 1;
    bad[3].retention_ms = 0;
    bad[4].retention_bytes = -3;
    bad[5].segment_bytes = 100;
    bad[6].batch_bytes_max = 10;
    bad[7].batch_bytes_max = 512 << 20; /* over the broker's maximum */
    for (size_t i = 0; i < 8; i++) {
        int rc = rq_create_cfg(&c, &bad[i]);
        cr_assert_eq(rc, -NG_EBADARG, "case %zu: %s", i, err_str(rc));
    }
    cr_assert_not(topic_dir_exists("cfg"));
    good.retention_ms = PROTO_CONFIG_UNLIMITED;
    good.retention_bytes = PROTO_CONFIG_UNLIMITED;
    cr_assert_eq(rq_create_cfg(&c, &good), 0);
    cl_close(&c);
    bk_stop(&B);
}

/* ---- fetch answers spliced from the segment files ---- */

/* Fetches from the batch at index `from` (and from inside it) and checks
 * the answer holds exactly the batches produced from there. */
static void expect_every_start(struct cl *c, const char *topic, const struct sent *s, size_t n)
{
    for (size_t i = 0; i < n; i += 3) {
        size_t until = n - i;
        expect_batches(c, topic, 0, s[i].offset, &s[i], until);
        expect_batches(c, topic, 0, s[i].offset + 1, &s[i], until);
    }
    struct fetched f;
    rq_fetch(c, topic, 0, s[n - 1].offset + 8, &f); /* the high watermark */
    cr_assert_eq(f.err, 0);
    cr_assert_eq(f.records_bytes, 0);
    rq_fetched_free(&f);
}

Test(broker, fetches_across_segments_are_byte_identical_before_and_after_restart)
{
    bk_set(&B, "segment_bytes=16384");
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, "zc", 1), 0);
    enum { N = 60 };
    static struct sent s[N];
    for (uint32_t i = 0; i < N; i++) {
        s[i] = produce_ok(&c, "zc", 0, 8, i, 1);
    }
    expect_every_start(&c, "zc", s, N); /* file parts: this process wrote it all */
    cl_close(&c);
    bk_stop(&B);
    /* Reopened, the sealed segments are copied (and checked) first, then
     * sent as file parts; either way the same bytes. */
    bk_start(&B);
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    expect_every_start(&c, "zc", s, N);
    expect_every_start(&c, "zc", s, N);
    free_sent(s, N);
    cl_close(&c);
    bk_stop(&B);
}

/* Sends a Fetch of partition 0 from offset with room for everything. */
static uint32_t fetch_all_send(struct cl *c, const char *topic, int64_t offset)
{
    struct proto_enc e;
    uint32_t corr = cl_next_corr(c);
    struct proto_fetch_req req = {.bytes_max = 48 << 20};
    proto_fetch_req_begin(&e, cl_wr(c), 0, corr, PROTO_STR_NULL, &req);
    proto_enc_topic(&e, proto_str_make(topic));
    struct proto_fetch_req_partition p = {.partition = 0, .offset = offset, .bytes_max = 48 << 20};
    proto_fetch_req_partition(&e, &p);
    cr_assert_eq(proto_enc_end(&e), 0);
    cr_assert_eq(cl_send_wr(c), 0);
    return corr;
}

Test(broker, segments_deleted_while_their_answer_is_sent_are_sent_whole, .timeout = 120)
{
    bk_set(&B, "segment_bytes=1048576");
    bk_set(&B, "retention_bytes=8388608");
    bk_set(&B, "retention_check_ms=100");
    bk_start(&B);
    struct cl c;
    struct cl slow;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cl_connect(&slow, B.port, 60000);
    int small = 16 << 10;
    cr_assert_eq(setsockopt(slow.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
    cr_assert_eq(rq_create(&c, "gone", 1), 0);
    enum { N = 256 }; /* 64 KiB batches: 16 MiB, 16 segments */
    static struct sent s[N];
    for (uint32_t i = 0; i < N; i++) {
        size_t len = bt_make_sized(batch, sizeof(batch), 64, 1000, i, BATCH_CODEC_NONE, NULL);
        s[i] = (struct sent){.bytes = malloc(len), .len = len};
        memcpy(s[i].bytes, batch, len);
        cr_assert_eq(rq_produce(&c, "gone", 0, batch, len, 1, &s[i].offset), 0);
    }
    int64_t earliest;
    int64_t ts;
    cr_assert_eq(rq_list_offset(&c, "gone", 0, PROTO_TIMESTAMP_EARLIEST, &earliest, &ts), 0);
    size_t first = 0;
    while (s[first].offset < earliest) {
        first++;
    }
    /* The slow client asks for everything and does not read yet. */
    uint32_t corr = fetch_all_send(&slow, "gone", earliest);
    usleep(200 * 1000);
    /* Retention deletes the segments it is being sent from... */
    for (uint32_t i = 0; i < 64; i++) {
        size_t len =
            bt_make_sized(batch, sizeof(batch), 64, 1000, 1000 + i, BATCH_CODEC_NONE, NULL);
        int64_t off;
        cr_assert_eq(rq_produce(&c, "gone", 0, batch, len, 1, &off), 0);
    }
    int64_t now_earliest = earliest;
    int64_t deadline = clock_mono_ms() + 10000;
    while (now_earliest == earliest && clock_mono_ms() < deadline) {
        usleep(50 * 1000);
        cr_assert_eq(rq_list_offset(&c, "gone", 0, PROTO_TIMESTAMP_EARLIEST, &now_earliest, &ts),
                     0);
    }
    cr_assert_gt(now_earliest, earliest, "retention deleted no segment");
    /* ...and then the topic goes altogether. */
    cr_assert_eq(rq_delete(&c, "gone"), 0);
    usleep(200 * 1000); /* housekeeping closes its partitions */
    cr_assert(!topic_dir_exists("gone"));
    struct fetched f;
    rq_fetch_recv(&slow, corr, &f);
    cr_assert_eq(f.err, 0);
    cr_assert_eq(bt_count(f.records, f.records_bytes), N - first);
    for (size_t i = first; i < N; i++) {
        const uint8_t *got;
        size_t got_len;
        cr_assert(bt_at(f.records, f.records_bytes, i - first, &got, &got_len));
        bt_assert_same(got, got_len, s[i].bytes, s[i].len, s[i].offset);
    }
    rq_fetched_free(&f);
    free_sent(s, N);
    cl_close(&slow);
    cl_close(&c);
    bk_stop(&B);
}

Test(broker, many_connections_fetching_at_once_get_the_same_bytes, .timeout = 120)
{
    bk_set(&B, "segment_bytes=262144");
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, "many", 1), 0);
    enum { N = 24, CONNS = 32, EACH = 2 };
    static struct sent s[N];
    for (uint32_t i = 0; i < N; i++) {
        size_t len = bt_make_sized(batch, sizeof(batch), 64, 1000, i, BATCH_CODEC_NONE, NULL);
        s[i] = (struct sent){.bytes = malloc(len), .len = len};
        memcpy(s[i].bytes, batch, len);
        cr_assert_eq(rq_produce(&c, "many", 0, batch, len, 1, &s[i].offset), 0);
    }
    static struct cl conns[CONNS];
    uint32_t corr[CONNS][EACH];
    for (int k = 0; k < CONNS; k++) {
        cl_connect(&conns[k], B.port, CL_TIMEOUT_MS_DEFAULT);
        for (int j = 0; j < EACH; j++) {
            corr[k][j] = fetch_all_send(&conns[k], "many", s[(k + j) % N].offset);
        }
    }
    for (int k = 0; k < CONNS; k++) {
        for (int j = 0; j < EACH; j++) {
            size_t from = (size_t)(k + j) % N;
            struct fetched f;
            rq_fetch_recv(&conns[k], corr[k][j], &f);
            cr_assert_eq(f.err, 0);
            cr_assert_eq(bt_count(f.records, f.records_bytes), N - from);
            for (size_t i = from; i < N; i++) {
                const uint8_t *got;
                size_t got_len;
                cr_assert(bt_at(f.records, f.records_bytes, i - from, &got, &got_len));
                bt_assert_same(got, got_len, s[i].bytes, s[i].len, s[i].offset);
            }
            rq_fetched_free(&f);
        }
        cl_close(&conns[k]);
    }
    free_sent(s, N);
    cl_close(&c);
    bk_stop(&B);
}
