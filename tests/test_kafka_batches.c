/*
 * tests/test_kafka_batches.c — batches built by an independent Kafka encoder
 * (kafka-python's record batch builder, through tests/kafka_batches.py) in
 * each codec are produced through nagare's protocol to the real nagared,
 * fetched back byte for byte (the broker stamps only the base offset; the
 * leader epoch it stamps is the 0 the encoder wrote; the CRC is the
 * encoder's), and libnagare's consumer reads their records exactly: keys,
 * values, headers and timestamps, nulls and empties apart.
 *
 * $KAFKA_BATCHES is the generator; it runs under $PYTHON (Debian's
 * /usr/bin/python3, where python3-kafka and the codec modules live).
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/client_support.h"

#define TOPIC "kafka-batches"
#define LINE_BYTES 65536
#define WAIT_MS 30000

static const char *const codec_names[] = {"none", "gzip", "snappy", "lz4", "zstd"};

static struct bk B;

static void setup(void)
{
    bk_init(&B);
    bk_start(&B);
}

static void teardown(void) { bk_fini(&B); }

TestSuite(kafka_batches, .init = setup, .fini = teardown, .timeout = 300);

/* Runs the generator into B's directory. */
static void generate(void)
{
    const char *python = getenv("PYTHON");
    const char *script = getenv("KAFKA_BATCHES");
    cr_assert(python != NULL && script != NULL, "set PYTHON and KAFKA_BATCHES");
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "'%s' '%s' '%s'", python, script, B.root);
    cr_assert_eq(system(cmd), 0, "%s failed", cmd);
}

static char *gen_path(char *out, size_t cap, const char *codec, const char *ext)
{
    snprintf(out, cap, "%s/%s.%s", B.root, codec, ext);
    return out;
}

/* Decodes a field of the .records file: hex, "-" null, "=" empty. Returns
 * the length (-1 for null); the bytes go to out. */
static ssize_t unhex(const char *s, uint8_t *out, size_t cap)
{
    if (strcmp(s, "-") == 0) {
        return -1;
    }
    if (strcmp(s, "=") == 0) {
        return 0;
    }
    size_t n = strlen(s) / 2;
    cr_assert_leq(n, cap);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        cr_assert_eq(sscanf(s + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
    return (ssize_t)n;
}

static void check_bytes(const void *got, ssize_t got_len, const char *want_hex, const char *what,
                        int64_t offset)
{
    static uint8_t want[LINE_BYTES];
    ssize_t want_len = unhex(want_hex, want, sizeof(want));
    cr_assert_eq(got_len, want_len, "offset %lld: %s length %zd, wanted %zd", (long long)offset,
                 what, got_len, want_len);
    if (want_len > 0) {
        cr_assert_eq(memcmp(got, want, (size_t)want_len), 0, "offset %lld: %s differs",
                     (long long)offset, what);
    }
}

/* One record of the consumer against one line of the .records file. */
static void check_record(const struct nagare_message *m, char *line, int64_t offset_base)
{
    char *save = NULL;
    long long delta = strtoll(strtok_r(line, " \n", &save), NULL, 10);
    long long ts = strtoll(strtok_r(NULL, " \n", &save), NULL, 10);
    cr_assert_eq(m->offset, offset_base + delta);
    cr_assert_eq(m->timestamp_ms, ts, "offset %lld: timestamp", (long long)m->offset);
    check_bytes(m->key, m->key_len, strtok_r(NULL, " \n", &save), "key", m->offset);
    check_bytes(m->value, m->value_len, strtok_r(NULL, " \n", &save), "value", m->offset);
    size_t headers = (size_t)strtoul(strtok_r(NULL, " \n", &save), NULL, 10);
    cr_assert_eq(m->header_count, headers, "offset %lld: header count", (long long)m->offset);
    for (size_t i = 0; i < headers; i++) {
        struct nagare_header h;
        nagare_message_header(m, i, &h);
        check_bytes(h.key, (ssize_t)h.key_len, strtok_r(NULL, " \n", &save), "header key",
                    m->offset);
        check_bytes(h.value, h.value_len, strtok_r(NULL, " \n", &save), "header value", m->offset);
    }
}

Test(kafka_batches, stored_and_served_byte_for_byte_and_read_exactly_by_libnagare)
{
    generate();
    struct cl c;
    cl_connect(&c, B.port, WAIT_MS);
    cr_assert_eq(rq_create(&c, TOPIC, 1), 0);
    int64_t bases[ARRAY_LEN(codec_names)];
    for (size_t k = 0; k < ARRAY_LEN(codec_names); k++) {
        char path[BK_PATH_BYTES + 32];
        size_t len = 0;
        uint8_t *sent =
            (uint8_t *)bk_read_file(gen_path(path, sizeof(path), codec_names[k], "batch"), &len);
        cr_assert_not_null(sent);
        struct batch_header h;
        cr_assert_eq(batch_validate(sent, len, BATCH_BYTES_LIMIT, &h), 0,
                     "%s: nagare takes kafka-python's batch", codec_names[k]);
        cr_assert_eq(batch_codec(&h), (enum batch_codec)k);
        cr_assert_eq(rq_produce(&c, TOPIC, 0, sent, len, -1, &bases[k]), 0, "%s: produce",
                     codec_names[k]);
        struct fetched f;
        rq_fetch(&c, TOPIC, 0, bases[k], &f);
        cr_assert_eq(f.err, 0);
        const uint8_t *got;
        size_t got_bytes;
        cr_assert(bt_at(f.records, f.records_bytes, 0, &got, &got_bytes));
        cr_assert_eq(got_bytes, len, "%s: size", codec_names[k]);
        cr_assert_eq((int64_t)get_be64(got + BATCH_OFF_OFFSET_BASE), bases[k]);
        cr_assert_eq(
            memcmp(got + BATCH_OFF_LENGTH, sent + BATCH_OFF_LENGTH, len - BATCH_OFF_LENGTH), 0,
            "%s: fetched bytes differ from kafka-python's (leader epoch 0 both)", codec_names[k]);
        cr_assert_eq(get_be32(got + BATCH_OFF_CHECKSUM), get_be32(sent + BATCH_OFF_CHECKSUM));
        cr_assert_eq(get_be32(got + BATCH_OFF_CHECKSUM), batch_checksum(got, got_bytes),
                     "%s: the encoder's CRC is nagare's CRC-32C", codec_names[k]);
        rq_fetched_free(&f);
        free(sent);
    }
    cl_close(&c);

    struct nagare_consumer_config cfg;
    nagare_consumer_config_default(&cfg);
    cfg.bootstrap = B.bootstrap;
    nagare_consumer *k = NULL;
    cr_assert_eq(nagare_consumer_new(&cfg, &k), 0);
    cr_assert_eq(nagare_consumer_assign(k, TOPIC, 0, 0), 0);
    for (size_t codec = 0; codec < ARRAY_LEN(codec_names); codec++) {
        char path[BK_PATH_BYTES + 32];
        FILE *want = fopen(gen_path(path, sizeof(path), codec_names[codec], "records"), "r");
        cr_assert_not_null(want);
        static char line[LINE_BYTES];
        while (fgets(line, sizeof(line), want) != NULL) {
            const struct nagare_message *m = NULL;
            int rc = nagare_consumer_poll(k, WAIT_MS, &m);
            cr_assert_eq(rc, 1, "%s: poll: %d %s", codec_names[codec], rc,
                         rc < 0 ? nagare_strerror(rc) : "nothing came");
            check_record(m, line, bases[codec]);
        }
        fclose(want);
    }
    nagare_consumer_destroy(k);
}
