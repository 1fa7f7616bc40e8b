/*
 * The fault runs' checker (tests/checker.h) must be able to fail: each
 * kind of problem it judges is made here on purpose and must be reported,
 * on reads it makes up and on one real nagared whose log is changed behind
 * its back while it is stopped. A clean run must pass.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "base/file.h"
#include "storage/batch.h"
#include "storage/segment.h"
#include "tests/broker_support.h"
#include "tests/checker.h"
#include "tests/client_support.h"

#define TOPIC "chk"
#define PARTITIONS 2
#define PRODUCERS 2
#define RECORDS 300 /* per producer */
#define READ_TIMEOUT_MS 60000

static struct bk B;
static struct checker C;

static void setup(void)
{
    bk_init(&B);
    chk_init(&C, TOPIC, PARTITIONS);
}

static void teardown(void)
{
    chk_fini(&C);
    bk_fini(&B);
}

TestSuite(checker, .init = setup, .fini = teardown, .timeout = 300);

static chk_id id_of(uint32_t producer, uint64_t seq)
{
    char v[CHK_VALUE_BYTES];
    size_t n = chk_value(v, producer, seq);
    return chk_parse(v, (ssize_t)n);
}

/* ---- on made-up reads ---- */

Test(checker, parses_only_its_own_values)
{
    char v[CHK_VALUE_BYTES];
    size_t n = chk_value(v, 7, 123456789);
    cr_assert_str_eq(v, "7:123456789");
    chk_id id = chk_parse(v, (ssize_t)n);
    cr_assert_eq(chk_id_producer(id), 7);
    cr_assert_eq(chk_id_seq(id), 123456789);
    const char *foreign[] = {
        "", "7", "7:", ":1", "7:1x", "07:1", "7:01", "-1:2", "7 :1", "99999:1", "1:99999999999999"};
    for (size_t i = 0; i < sizeof(foreign) / sizeof(foreign[0]); i++) {
        cr_assert_eq(chk_parse(foreign[i], (ssize_t)strlen(foreign[i])), CHK_ID_FOREIGN, "%s",
                     foreign[i]);
    }
    cr_assert_eq(chk_parse(NULL, -1), CHK_ID_FOREIGN);
}

/* Producer 0 sent seqs 0..5 (even to partition 0, odd to 1), all acked
 * at offsets seq / 2; one consumer read them as acknowledged. */
static struct chk_source *clean_history(void)
{
    for (uint64_t seq = 0; seq < 6; seq++) {
        cr_assert_eq(chk_sent(&C, 0, seq), 0);
        cr_assert_eq(chk_acked(&C, (int32_t)(seq % 2), (int64_t)seq / 2, id_of(0, seq), 0), 0);
    }
    struct chk_source *s = chk_source_add(&C, "consumer", CHK_CONSUMER);
    for (uint64_t seq = 0; seq < 6; seq++) {
        cr_assert_eq(chk_observe(&C, s, (int32_t)(seq % 2), (int64_t)seq / 2, id_of(0, seq)), 0);
    }
    s->complete = true;
    return s;
}

static void verify(struct chk_result *r)
{
    chk_verify(&C, r);
    chk_print(&C, r, stderr);
}

Test(checker, passes_a_clean_history)
{
    clean_history();
    struct chk_result r;
    verify(&r);
    cr_assert(r.ok);
    cr_assert_eq(r.sent, 6);
    cr_assert_eq(r.acked, 6);
    cr_assert_eq(r.read, 6);
}

Test(checker, refuses_an_ack_of_what_was_never_sent)
{
    cr_assert_eq(chk_sent(&C, 0, 1), -NG_EBADARG, "seqs are sent in order from 0");
    cr_assert_eq(chk_sent(&C, 0, 0), 0);
    cr_assert_eq(chk_acked(&C, 0, 0, id_of(0, 1), 0), -NG_EBADARG);
    cr_assert_eq(chk_acked(&C, 0, 0, id_of(1, 0), 0), -NG_EBADARG);
    cr_assert_eq(chk_acked(&C, PARTITIONS, 0, id_of(0, 0), 0), -NG_EBADARG);
    cr_assert_eq(chk_acked(&C, 0, 0, id_of(0, 0), 0), 0);
}

Test(checker, reports_a_record_missing_from_the_reads_as_lost)
{
    struct chk_source *s = clean_history();
    s->logs[1].ids[2] = CHK_ID_ABSENT; /* partition 1, offset 2: seq 5 */
    struct chk_result r;
    verify(&r);
    cr_assert_not(r.ok);
    cr_assert_eq(r.lost.count, 1);
    cr_assert(strstr(r.lost.examples[0], "p1@2") != NULL, "%s", r.lost.examples[0]);
}

/* An ack with no offset (-1) passes when the record is read anywhere in
 * its partition, and counts as lost when a whole consumer read lacks it. */
Test(checker, an_ack_with_no_offset_must_be_read_somewhere)
{
    struct chk_source *s = clean_history();
    cr_assert_eq(chk_sent(&C, 0, 6), 0);
    cr_assert_eq(chk_acked(&C, 0, -1, id_of(0, 6), 0), 0);
    cr_assert_eq(chk_acked(&C, 0, -2, id_of(0, 6), 0), -NG_EBADARG);
    cr_assert_eq(chk_observe(&C, s, 0, 3, id_of(0, 6)), 0);
    struct chk_result r;
    verify(&r);
    cr_assert(r.ok);

    s->logs[0].ids[3] = CHK_ID_ABSENT;
    verify(&r);
    cr_assert_not(r.ok);
    cr_assert_eq(r.lost.count, 1);
    cr_assert(strstr(r.lost.examples[0], "0:6 acknowledged with no offset") != NULL, "%s",
              r.lost.examples[0]);
}

Test(checker, reports_two_values_of_an_offset_across_reads)
{
    clean_history();
    cr_assert_eq(chk_sent(&C, 1, 0), 0);
    struct chk_source *part = chk_source_add(&C, "a read cut short", CHK_CONSUMER);
    cr_assert_eq(chk_observe(&C, part, 0, 1, id_of(1, 0)), 0); /* was 0:2 */
    struct chk_result r;
    verify(&r);
    cr_assert_not(r.ok);
    cr_assert_eq(r.two_values.count, 1);
    cr_assert_eq(r.lost.count, 0, "a read that did not reach its end proves no loss");

    struct chk_source *again = chk_source_add(&C, "consumer again", CHK_CONSUMER);
    for (uint64_t seq = 0; seq < 6; seq++) {
        chk_id id = seq == 2 ? id_of(1, 0) : id_of(0, seq);
        cr_assert_eq(chk_observe(&C, again, (int32_t)(seq % 2), (int64_t)seq / 2, id), 0);
    }
    again->complete = true;
    verify(&r);
    cr_assert_eq(r.two_values.count, 1);
    cr_assert_eq(r.lost.count, 1, "a whole read contradicts the acknowledgement");
}

Test(checker, reports_an_ack_past_a_whole_reads_end_as_lost)
{
    struct chk_source *s = clean_history();
    struct chk_source *rep = chk_source_add(&C, "replica", CHK_REPLICA);
    cr_assert_eq(chk_observe(&C, rep, 1, 2, id_of(0, 5)), 0);
    s->logs[1].end = 2; /* the consumer's end: offset 2 is past it */
    struct chk_result r;
    verify(&r);
    cr_assert_eq(r.lost.count, 1, "the replica holds it, but readers never see it");
    cr_assert(strstr(r.lost.examples[0], "p1@2") != NULL, "%s", r.lost.examples[0]);
}

Test(checker, reports_two_values_read_by_one_source)
{
    struct chk_source *s = clean_history();
    cr_assert_eq(chk_sent(&C, 1, 0), 0);
    cr_assert_eq(chk_observe(&C, s, 0, 2, id_of(1, 0)), 0); /* was 0:4 */
    struct chk_result r;
    verify(&r);
    cr_assert_eq(r.two_values.count, 1);
    cr_assert_eq(r.lost.count, 0, "the first read is kept");
}

Test(checker, reports_a_value_never_sent)
{
    struct chk_source *s = clean_history();
    cr_assert_eq(chk_observe(&C, s, 0, 3, CHK_ID_FOREIGN), 0);
    cr_assert_eq(chk_observe(&C, s, 0, 4, id_of(0, 6)), 0); /* seq 6 was never sent */
    cr_assert_eq(chk_observe(&C, s, 0, 5, id_of(3, 0)), 0); /* producer 3 sent nothing */
    cr_assert_eq(chk_sent(&C, 0, 6), 0);
    cr_assert_eq(chk_sent(&C, 0, 7), 0);
    cr_assert_eq(chk_observe(&C, s, 0, 6, id_of(0, 7)), 0); /* seq 7 goes to partition 1 */
    struct chk_result r;
    verify(&r);
    cr_assert_eq(r.never_sent.count, 3, "seq 6 was sent by then: %s", r.never_sent.examples[0]);
    cr_assert_not(r.ok);
}

Test(checker, reports_duplicates_and_broken_order)
{
    struct chk_source *s = clean_history();
    cr_assert_eq(chk_observe(&C, s, 0, 3, id_of(0, 2)), 0); /* 0:2 again, after 0:4 */
    struct chk_result r;
    verify(&r);
    cr_assert_eq(r.duplicated.count, 1);
    cr_assert_eq(r.order_broken.count, 1);
    cr_assert_eq(r.lost.count, 0);
    cr_assert_not(r.ok);
}

Test(checker, reports_a_replica_that_differs_below_the_high_watermark)
{
    clean_history();
    struct chk_source *rep = chk_source_add(&C, "replica", CHK_REPLICA);
    for (uint64_t seq = 0; seq < 6; seq += 2) {
        cr_assert_eq(chk_observe(&C, rep, 0, (int64_t)seq / 2, id_of(0, seq)), 0);
    }
    cr_assert_eq(chk_observe(&C, rep, 1, 0, id_of(0, 1)), 0); /* short: offsets 1, 2 missing */
    chk_set_hw(&C, 0, 3);
    chk_set_hw(&C, 1, 3);
    struct chk_result r;
    verify(&r);
    cr_assert_eq(r.replica_diverged.count, 2);
    cr_assert_eq(r.lost.count, 0);

    /* Past the high watermark a replica may hold anything. */
    chk_set_hw(&C, 1, 1);
    cr_assert_eq(chk_observe(&C, rep, 1, 1, CHK_ID_FOREIGN), 0);
    verify(&r);
    cr_assert_eq(r.replica_diverged.count, 0);
    cr_assert_eq(r.two_values.count, 0);
    cr_assert_eq(r.never_sent.count, 1, "a foreign value is still one never sent");
}

Test(checker, measures_the_longest_time_without_an_ack_per_fault)
{
    /* The same times on each partition. */
    int64_t at[] = {100, 200, 900, 1000, 1100, 2500};
    for (int32_t p = 0; p < PARTITIONS; p++) {
        for (uint64_t i = 0; i < 6; i++) {
            uint64_t seq = (uint64_t)p * 6 + i;
            cr_assert_eq(chk_sent(&C, 0, seq), 0);
            cr_assert_eq(chk_acked(&C, p, (int64_t)i, id_of(0, seq), at[i]), 0);
        }
    }
    chk_fault_at(&C, "a", 150, 400);   /* acks at 200, 900: longest 700 */
    chk_fault_at(&C, "b", 1000, 1200); /* acks at 1100, then none until 2000 */
    chk_run_end_at(&C, 2000);
    struct chk_result r;
    chk_verify(&C, &r);
    cr_assert_eq(r.fault_count, 2);
    cr_assert_str_eq(r.faults[0].name, "a");
    cr_assert_eq(r.faults[0].duration_ms, 250);
    cr_assert_eq(r.faults[0].unavailable_ms, 700);
    cr_assert_eq(r.faults[0].unavailable_from_ms, 50, "from the ack at 200");
    cr_assert_eq(r.faults[1].unavailable_ms, 900);
    cr_assert_eq(r.unavailable_ms_max, 900);
}

/* A partition without acknowledgements is unavailable though the other
 * partition's writes go on: the figure is the worst partition's. */
Test(checker, acks_on_another_partition_do_not_hide_a_stopped_one)
{
    for (uint64_t seq = 0; seq < 6; seq++) {
        cr_assert_eq(chk_sent(&C, 0, seq), 0);
    }
    int64_t at[] = {100, 300, 500, 700, 900, 1500};
    int32_t part[] = {0, 1, 1, 1, 1, 0};
    int64_t next[PARTITIONS] = {0};
    for (uint64_t seq = 0; seq < 6; seq++) {
        int32_t p = part[seq];
        cr_assert_eq(chk_acked(&C, p, next[p]++, id_of(0, seq), at[seq]), 0);
    }
    chk_fault_at(&C, "leader killed", 200, 400); /* partition 0: nothing until 1500 */
    chk_run_end_at(&C, 2000);
    struct chk_result r;
    chk_verify(&C, &r);
    cr_assert_eq(r.fault_count, 1);
    cr_assert_eq(r.faults[0].unavailable_ms, 1300,
                 "partition 0 from 200 to 1500, not 200 (partition 1)");
    cr_assert_eq(r.faults[0].unavailable_partition, 0);
    cr_assert_eq(r.faults[0].unavailable_from_ms, 0, "from the fault's start");
    cr_assert_eq(r.unavailable_ms_max, 1300);
}

/* ---- on a real broker ---- */

/* Starts B, creates the topic, and has PRODUCERS producers write RECORDS
 * records each, all acknowledged. */
static void produce_all(bool compress)
{
    bk_start(&B);
    cs_create_topic(&B, TOPIC, PARTITIONS);
    struct chk_producers_config cfg;
    chk_producers_config_default(&cfg);
    cfg.bootstrap = B.bootstrap;
    cfg.producers = PRODUCERS;
    cfg.records_max = RECORDS;
    cfg.compress = compress;
    struct chk_producers ps;
    cr_assert_eq(chk_producers_start(&ps, &C, &cfg), 0);
    int rc = chk_producers_join(&ps);
    cr_assert_eq(rc, 0, "producers: %s", err_str(rc));
    cr_assert_eq(chk_acked_count(&C), PRODUCERS * RECORDS);
}

static void read_consumer(const char *name)
{
    struct chk_source *s = chk_source_add(&C, name, CHK_CONSUMER);
    int rc = chk_read_consumer(&C, s, B.bootstrap, READ_TIMEOUT_MS);
    cr_assert_eq(rc, 0, "consumer read: %s", err_str(rc));
}

static void read_replica(const char *name, const char *data_dir)
{
    struct chk_source *s = chk_source_add(&C, name, CHK_REPLICA);
    int rc = chk_read_replica_dir(&C, s, data_dir);
    cr_assert_eq(rc, 0, "replica read: %s", err_str(rc));
}

/* The path of partition p's first segment log in B's data directory. */
static void segment_path(char *buf, size_t cap, int32_t p)
{
    char name[SEG_NAME_BYTES];
    seg_name(name, 0, "log");
    snprintf(buf, cap, "%s/topics/%s/%d/%s", B.data_dir, TOPIC, p, name);
}

Test(checker, passes_a_clean_run_on_a_broker)
{
    produce_all(true);
    read_consumer("consumer");
    bk_stop(&B);
    read_replica("broker log", B.data_dir);
    struct chk_result r;
    verify(&r);
    cr_assert(r.ok);
    cr_assert_eq(r.acked, PRODUCERS * RECORDS);
    cr_assert_eq(r.read, 2 * PRODUCERS * RECORDS, "every record read twice");
}

Test(checker, reports_records_cut_from_a_stopped_brokers_log_as_lost)
{
    produce_all(false);
    bk_stop(&B);
    char path[512];
    segment_path(path, sizeof(path), 0);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(truncate(path, st.st_size - 1), 0, "the last batch torn");
    read_replica("broker log", B.data_dir);
    bk_start(&B); /* recovery cuts the torn batch */
    read_consumer("consumer");
    bk_stop(&B);
    struct chk_result r;
    verify(&r);
    cr_assert_not(r.ok);
    cr_assert_geq(r.lost.count, 1);
    cr_assert_eq(C.sources[0]->bad_batches, 1);
    cr_assert_eq(r.two_values.count + r.never_sent.count + r.duplicated.count, 0);
}

/* Rewrites the first record value `from` in partition p's first segment
 * to `to` (same length), resealing its batch's checksum: a change the
 * broker cannot see. */
static void rewrite_value(int32_t p, const char *from, const char *to)
{
    cr_assert_eq(strlen(from), strlen(to));
    char path[512];
    segment_path(path, sizeof(path), p);
    size_t len;
    char *text = bk_read_file(path, &len);
    uint8_t *log = (uint8_t *)text;
    size_t pos = 0;
    bool done = false;
    while (!done && len - pos >= BATCH_HEADER_BYTES) {
        struct batch_header h;
        cr_assert_eq(batch_header_decode(log + pos, len - pos, BATCH_BYTES_LIMIT, &h), 0);
        size_t n = batch_bytes(&h);
        uint8_t *hit =
            memmem(log + pos + BATCH_HEADER_BYTES, n - BATCH_HEADER_BYTES, from, strlen(from));
        if (hit != NULL) {
            memcpy(hit, to, strlen(to));
            batch_seal(log + pos, n);
            done = true;
        }
        pos += n;
    }
    cr_assert(done, "no value %s in %s", from, path);
    int fd = open(path, O_WRONLY);
    cr_assert_geq(fd, 0);
    cr_assert_eq(pwrite(fd, log, len, 0), (ssize_t)len);
    close(fd);
    free(text);
}

Test(checker, reports_a_value_changed_behind_a_brokers_back_as_two_values)
{
    produce_all(false);
    read_consumer("consumer before");
    bk_stop(&B);
    rewrite_value(0, "0:42", "1:42"); /* seq 42 goes to partition 0 */
    read_replica("broker log", B.data_dir);
    bk_start(&B);
    read_consumer("consumer after");
    bk_stop(&B);
    struct chk_result r;
    verify(&r);
    cr_assert_not(r.ok);
    cr_assert_geq(r.two_values.count, 1);
    cr_assert_geq(r.lost.count, 1, "the second consumer contradicts the acknowledgement");
    cr_assert_geq(r.duplicated.count, 1, "1:42 is in the log twice now");
}

Test(checker, reports_a_record_its_producers_never_sent)
{
    produce_all(false);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    uint8_t batch[4096];
    size_t n = bt_make(batch, sizeof(batch), 3, 77, 0, -1, 0, -1);
    int64_t offset;
    cr_assert_eq(rq_produce(&c, TOPIC, 1, batch, n, -1, &offset), 0);
    cl_close(&c);
    read_consumer("consumer");
    bk_stop(&B);
    read_replica("broker log", B.data_dir);
    struct chk_result r;
    verify(&r);
    cr_assert_not(r.ok);
    cr_assert_eq(r.never_sent.count, 6, "3 records, each read by 2 sources");
    cr_assert_eq(r.lost.count + r.two_values.count + r.duplicated.count, 0);
}

Test(checker, reports_a_replica_short_of_the_high_watermark)
{
    produce_all(false);
    read_consumer("consumer");
    bk_stop(&B);
    read_replica("broker log", B.data_dir);
    /* A second replica: a copy of the data directory, cut. */
    char copy[300];
    char cmd[1024];
    char out[256];
    snprintf(copy, sizeof(copy), "%s/copy", B.root);
    snprintf(cmd, sizeof(cmd), "cp -a '%s' '%s'", B.data_dir, copy);
    cr_assert_eq(bk_run(cmd, out, sizeof(out)), 0);
    char name[SEG_NAME_BYTES];
    seg_name(name, 0, "log");
    char path[600];
    snprintf(path, sizeof(path), "%s/topics/%s/1/%s", copy, TOPIC, name);
    cr_assert_eq(truncate(path, 0), 0);
    read_replica("copy", copy);
    struct chk_result r;
    verify(&r);
    cr_assert_not(r.ok);
    cr_assert_eq(r.replica_diverged.count, (uint64_t)C.hw[1]);
    cr_assert_eq(r.lost.count, 0);
}
