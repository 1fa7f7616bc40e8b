/* A damaged batch on the real nagared's disk (tests/broker_support.h):
 * 20,001 records produced over 41 batches, the broker stopped, a byte
 * flipped in one batch, the broker started again. The log end stays, every
 * record outside the damaged batch is served, the damaged range is named
 * in the log, by a fetch's NG_ECORRUPT and by libnagare's
 * nagare_consumer_corrupt_end(), and a consumer seeks past it. A torn tail
 * (a last batch cut short, as a crash leaves it) is still cut. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client/nagare.h"
#include "tests/broker_support.h"
#include "tests/sys_support.h"

#define BATCHES 41
#define RECORDS_PER_BATCH 500
#define RECORDS_TOTAL 20001 /* 40 batches of 500, then one of 1 */
#define WAIT_MS 30000
#define POSITIONS_MAX 256

static struct bk B;

static void setup(void) { bk_init(&B); }
static void teardown(void) { bk_fini(&B); }

TestSuite(damage, .init = setup, .fini = teardown, .timeout = 300);

static uint8_t batch[BT_BYTES_MAX];

/* Produces batches [from, from + count) of the scheme above (seed = batch
 * number), acks=all, each at its expected offset. */
static void produce(struct cl *c, const char *topic, uint32_t from, uint32_t count)
{
    for (uint32_t i = from; i < from + count; i++) {
        uint32_t records = i < BATCHES - 1 ? RECORDS_PER_BATCH : 1;
        size_t len = bt_make(batch, sizeof(batch), records, i, 1000, -1, 0, -1);
        int64_t off;
        cr_assert_eq(rq_produce(c, topic, 0, batch, len, PROTO_ACKS_ALL, &off), 0);
        cr_assert_eq(off, (int64_t)i * RECORDS_PER_BATCH);
    }
}

/* Starts the broker, creates topic and produces every batch; stops. */
static void make_topic(const char *topic)
{
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, topic, 1), 0);
    produce(&c, topic, 0, BATCHES);
    cl_close(&c);
    bk_stop(&B);
}

/* The path of the log of topic's partition 0 whose base offset is base. */
static void log_path(char *out, size_t cap, const char *topic, int64_t base)
{
    snprintf(out, cap, "%s/topics/%s/0/%020lld.log", B.data_dir, topic, (long long)base);
}

/* The base offsets of topic's segments, ascending. */
static uint32_t segments(const char *topic, int64_t *bases, uint32_t cap)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/topics/%s/0", B.data_dir, topic);
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    uint32_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len == 24 && strcmp(e->d_name + 20, ".log") == 0) {
            cr_assert_lt(n, cap);
            bases[n++] = strtoll(e->d_name, NULL, 10);
        }
    }
    closedir(d);
    for (uint32_t i = 1; i < n; i++) { /* insertion sort: a handful */
        for (uint32_t k = i; k > 0 && bases[k - 1] > bases[k]; k--) {
            int64_t t = bases[k];
            bases[k] = bases[k - 1];
            bases[k - 1] = t;
        }
    }
    return n;
}

/* The file positions and base offsets of the batches of a sound log. */
static uint32_t batch_positions(const char *path, off_t *pos, int64_t *base)
{
    size_t len;
    uint8_t *bytes = (uint8_t *)bk_read_file(path, &len);
    cr_assert_not_null(bytes);
    uint32_t n = 0;
    for (size_t at = 0; at < len;) {
        struct batch_header h;
        cr_assert_eq(batch_header_decode(bytes + at, len - at, BATCH_BYTES_LIMIT, &h), 0);
        cr_assert_lt(n, POSITIONS_MAX);
        pos[n] = (off_t)at;
        base[n++] = h.offset_base;
        at += batch_bytes(&h);
    }
    free(bytes);
    return n;
}

/* Fetches at offset: err, and the base offset of the first batch (-1). */
static int fetch_at(struct cl *c, const char *topic, int64_t offset, int64_t *base_out)
{
    struct fetched f;
    rq_fetch(c, topic, 0, offset, &f);
    *base_out = -1;
    const uint8_t *b;
    size_t bytes;
    if (f.err == 0 && bt_at(f.records, f.records_bytes, 0, &b, &bytes)) {
        *base_out = (int64_t)get_be64(b);
    }
    int err = f.err;
    rq_fetched_free(&f);
    return err;
}

/* Reads the partition from offset 0 to end with libnagare: every offset
 * outside [bad, bad_end) once, in order; at bad, -NAGARE_ECORRUPT once,
 * nagare_consumer_corrupt_end() gives bad_end, and a seek there reads on. */
static void consume_around(const char *topic, int64_t bad, int64_t bad_end, int64_t end)
{
    struct nagare_consumer_config cc;
    nagare_consumer_config_default(&cc);
    cc.bootstrap = B.bootstrap;
    nagare_consumer *k;
    cr_assert_eq(nagare_consumer_new(&cc, &k), 0);
    cr_assert_eq(nagare_consumer_assign(k, topic, 0, 0), 0);
    int64_t next = 0;
    bool reported = false;
    while (next < end) {
        const struct nagare_message *m;
        int rc = nagare_consumer_poll(k, WAIT_MS, &m);
        if (rc == -NAGARE_ECORRUPT) {
            cr_assert_not(reported, "reported once");
            reported = true;
            cr_assert_eq(next, bad, "the error comes where the damage begins");
            int64_t resume;
            cr_assert_eq(nagare_consumer_corrupt_end(k, topic, 0, &resume), 0);
            cr_assert_eq(resume, bad_end);
            cr_assert_eq(nagare_consumer_seek(k, topic, 0, resume), 0);
            next = resume;
            continue;
        }
        cr_assert_eq(rc, 1, "poll at %lld: %d %s", (long long)next, rc,
                     rc < 0 ? nagare_strerror(rc) : "nothing came");
        cr_assert_eq(m->offset, next);
        next++;
    }
    cr_assert(reported, "the damaged range was reported");
    int64_t resume;
    cr_assert_eq(nagare_consumer_corrupt_end(k, topic, 0, &resume), -NAGARE_ENOTFOUND,
                 "no range once past it");
    nagare_consumer_destroy(k);
}

static bool log_says(const char *what)
{
    size_t len;
    char *text = bk_read_file(B.log_path, &len);
    bool found = text != NULL && strstr(text, what) != NULL;
    free(text);
    return found;
}

/* Makes topic, flips a byte in the records of batch 20 of its active
 * segment (offsets [10000, 10500)) and starts the broker on it. base gets
 * each batch's base offset. */
static void damage_batch_20(const char *topic, int64_t base[POSITIONS_MAX])
{
    make_topic(topic);
    char path[512];
    log_path(path, sizeof(path), topic, 0);
    off_t pos[POSITIONS_MAX];
    cr_assert_eq(batch_positions(path, pos, base), BATCHES);
    flip_byte(path, pos[20] + 1000, 0x5a);
    bk_start(&B);
}

Test(damage, a_flipped_byte_in_the_active_segment_loses_only_its_batch)
{
    int64_t base[POSITIONS_MAX];
    damage_batch_20("a", base);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    int64_t latest;
    int64_t ts;
    cr_assert_eq(rq_list_offset(&c, "a", 0, -1, &latest, &ts), 0);
    cr_assert_eq(latest, RECORDS_TOTAL, "the log end stays");
    for (uint32_t i = 0; i < BATCHES; i++) {
        int64_t first;
        int err = fetch_at(&c, "a", base[i], &first);
        cr_assert_eq(err, i == 20 ? -NG_ECORRUPT : 0, "batch %u: %s", i, err_str(err));
        cr_assert_eq(first, i == 20 ? -1 : base[i], "batch %u", i);
    }
    cl_close(&c);
    cr_assert(log_says("damaged range: offsets [10000, 10500)"), "named in the log");
    consume_around("a", 10000, 10500, RECORDS_TOTAL);
    bk_stop(&B);
}

Test(damage, nagare_consume_names_the_damaged_range_and_where_to_resume)
{
    const char *nagare = getenv("NAGARE");
    cr_assert(nagare != NULL, "set NAGARE to the nagare binary");
    int64_t base[POSITIONS_MAX];
    damage_batch_20("c", base);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "'%s' consume c --broker %s --from beginning 2>&1 >/dev/null",
             nagare, B.bootstrap);
    static char said[4096];
    cr_assert_neq(bk_run(cmd, said, sizeof(said)), 0, "a failure: %s", said);
    cr_assert_not_null(strstr(said, "offsets [10000, 10500)"), "the range: %s", said);
    cr_assert_not_null(strstr(said, "--partition 0 --from 10500"), "where to resume: %s", said);
    snprintf(cmd, sizeof(cmd),
             "'%s' consume c --broker %s --partition 0 --from 10500 "
             "--format '%%o\\n'",
             nagare, B.bootstrap);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    long next = 10500; /* the rest, from where it said, in order */
    long offset;
    while (fscanf(p, "%ld", &offset) == 1) {
        cr_assert_eq(offset, next);
        next++;
    }
    cr_assert_eq(pclose(p), 0);
    cr_assert_eq(next, RECORDS_TOTAL);
    bk_stop(&B);
}

Test(damage, a_flipped_byte_in_a_sealed_segment_loses_only_its_batch)
{
    bk_set(&B, "segment_bytes=256k");
    make_topic("s");
    int64_t bases[64];
    uint32_t n = segments("s", bases, 64);
    cr_assert_geq(n, 4, "the layout this test needs");
    char path[512];
    log_path(path, sizeof(path), "s", bases[1]);
    off_t pos[POSITIONS_MAX];
    int64_t base[POSITIONS_MAX];
    uint32_t count = batch_positions(path, pos, base);
    cr_assert_geq(count, 3);
    int64_t bad = base[count / 2];
    flip_byte(path, pos[count / 2] + 2000, 0x5a);
    static char out[16384];
    char range[64];
    snprintf(range, sizeof(range), "(offsets [%lld, %lld))", (long long)bad,
             (long long)bad + RECORDS_PER_BATCH);
    cr_assert_eq(bk_verify(&B, out, sizeof(out)), 1, "%s", out);
    cr_assert_not_null(strstr(out, range), "--verify names the range: %s", out);

    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    /* Records produced after the damage, into a later segment. */
    size_t len = bt_make(batch, sizeof(batch), 100, 99, 1000, -1, 0, -1);
    int64_t off;
    cr_assert_eq(rq_produce(&c, "s", 0, batch, len, PROTO_ACKS_ALL, &off), 0);
    cr_assert_eq(off, RECORDS_TOTAL);
    int64_t first;
    cr_assert_eq(fetch_at(&c, "s", bad, &first), -NG_ECORRUPT);
    cr_assert_eq(fetch_at(&c, "s", bad + RECORDS_PER_BATCH, &first), 0, "--from past it");
    cr_assert_eq(first, bad + RECORDS_PER_BATCH);
    cr_assert_eq(fetch_at(&c, "s", bases[n - 1], &first), 0, "a later segment");
    cr_assert_eq(fetch_at(&c, "s", RECORDS_TOTAL, &first), 0, "records produced since");
    cr_assert_eq(first, RECORDS_TOTAL);
    cl_close(&c);
    consume_around("s", bad, bad + RECORDS_PER_BATCH, RECORDS_TOTAL + 100);
    bk_stop(&B);
}

Test(damage, damage_then_a_torn_tail_keeps_the_batches_between_and_cuts_the_tail)
{
    make_topic("t");
    char path[512];
    log_path(path, sizeof(path), "t", 0);
    off_t pos[POSITIONS_MAX];
    int64_t base[POSITIONS_MAX];
    cr_assert_eq(batch_positions(path, pos, base), BATCHES);
    flip_byte(path, pos[10] + 3000, 0x5a);
    cr_assert_eq(truncate(path, pos[39] + 5000), 0); /* batch 39 torn, 40 gone */
    bk_start(&B);
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    int64_t latest;
    int64_t ts;
    cr_assert_eq(rq_list_offset(&c, "t", 0, -1, &latest, &ts), 0);
    cr_assert_eq(latest, base[39], "the torn tail is cut");
    int64_t first;
    cr_assert_eq(fetch_at(&c, "t", base[10], &first), -NG_ECORRUPT);
    cr_assert_eq(fetch_at(&c, "t", base[38], &first), 0, "the batches between are kept");
    cr_assert_eq(first, base[38]);
    /* The log goes on where the cut left it. */
    produce(&c, "t", 39, 2);
    cl_close(&c);
    consume_around("t", base[10], base[11], RECORDS_TOTAL);
    bk_stop(&B);
}
