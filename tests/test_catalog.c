/* Contract tests for broker/catalog.h, against real directories in a
 * temporary data directory, with the ring's fault hook for failed writes
 * and fsyncs. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "base/log.h"
#include "base/ring.h"
#include "broker/catalog.h"

static char root[256]; /* the mkdtemp directory */
static char data[300]; /* root/data: the catalog's data dir */
static struct catalog cat;
static bool cat_open;

static const struct topic_config cfg_a = {
    .partitions = 3,
    .retention_ms = 86400000,
    .retention_bytes = -1,
    .segment_bytes = 1 << 20,
    .segment_ms = 3600000,
    .batch_bytes_max = 1 << 16,
};

static const struct topic_config cfg_b = {
    .partitions = PROTO_PARTITIONS_MAX,
    .retention_ms = -1,
    .retention_bytes = INT64_MAX,
    .segment_bytes = PART_SEGMENT_BYTES_MAX,
    .segment_ms = INT64_MAX,
    .batch_bytes_max = BATCH_BYTES_LIMIT,
};

static const struct topic_config cfg_min = {
    .partitions = 1,
    .retention_ms = 1,
    .retention_bytes = 1,
    .segment_bytes = PART_SEGMENT_BYTES_MIN,
    .segment_ms = 1,
    .batch_bytes_max = BATCH_HEADER_BYTES,
};

static void setup(void)
{
    log_set_level(LOG_OFF);
    ring_fault_clear();
    const char *tmp = getenv("TMPDIR");
    snprintf(root, sizeof(root), "%s/nagare-catalog-XXXXXX", tmp ? tmp : "/tmp");
    cr_assert_not_null(mkdtemp(root));
    snprintf(data, sizeof(data), "%s/data", root);
    cat_open = false;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void teardown(void)
{
    if (cat_open) {
        catalog_close(&cat);
    }
    ring_fault_clear();
    cr_assert_eq(nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS), 0);
}

TestSuite(catalog, .init = setup, .fini = teardown);

/* ---- helpers ---- */

static int reopen(void)
{
    if (cat_open) {
        catalog_close(&cat);
    }
    int rc = catalog_open(&cat, data);
    cat_open = rc == 0;
    return rc;
}

static void open_ok(void)
{
    int rc = reopen();
    cr_assert_eq(rc, 0, "open: %s", err_str(rc));
}

static void create_ok(const char *name, const struct topic_config *cfg)
{
    int rc = catalog_create(&cat, name, strlen(name), cfg);
    cr_assert_eq(rc, 0, "create %s: %s", name, err_str(rc));
}

static void path_of(char *buf, size_t cap, const char *rel)
{
    int n = snprintf(buf, cap, "%s/%s", data, rel);
    cr_assert(n > 0 && (size_t)n < cap);
}

static bool exists(const char *rel)
{
    char p[1024];
    path_of(p, sizeof(p), rel);
    struct stat st;
    return lstat(p, &st) == 0;
}

/* Entries in data/rel, not counting "." and "..". */
static int entries(const char *rel)
{
    char p[1024];
    path_of(p, sizeof(p), rel);
    DIR *d = opendir(p);
    cr_assert_not_null(d, "opendir %s", p);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    }
    closedir(d);
    return n;
}

static void make_dir(const char *rel)
{
    char p[1024];
    path_of(p, sizeof(p), rel);
    cr_assert_eq(mkdir(p, 0755), 0, "mkdir %s: %s", p, strerror(errno));
}

static void write_file(const char *rel, const void *bytes, size_t len)
{
    char p[1024];
    path_of(p, sizeof(p), rel);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert_geq(fd, 0, "open %s: %s", p, strerror(errno));
    cr_assert_eq(write(fd, bytes, len), (ssize_t)len);
    cr_assert_eq(close(fd), 0);
}

static size_t read_file(const char *rel, char *buf, size_t cap)
{
    char p[1024];
    path_of(p, sizeof(p), rel);
    int fd = open(p, O_RDONLY);
    cr_assert_geq(fd, 0, "open %s: %s", p, strerror(errno));
    ssize_t n = read(fd, buf, cap);
    cr_assert_geq(n, 0);
    cr_assert_eq(close(fd), 0);
    return (size_t)n;
}

static void assert_cfg_eq(const struct topic_config *x, const struct topic_config *y)
{
    cr_assert_eq(x->partitions, y->partitions);
    cr_assert_eq(x->retention_ms, y->retention_ms);
    cr_assert_eq(x->retention_bytes, y->retention_bytes);
    cr_assert_eq(x->segment_bytes, y->segment_bytes);
    cr_assert_eq(x->segment_ms, y->segment_ms);
    cr_assert_eq(x->batch_bytes_max, y->batch_bytes_max);
}

static void assert_topic(const char *name, const struct topic_config *cfg)
{
    const struct catalog_topic *t = catalog_find(&cat, name, strlen(name));
    cr_assert_not_null(t, "topic %s missing", name);
    cr_assert_str_eq(t->name, name);
    cr_assert_eq(t->name_len, strlen(name));
    assert_cfg_eq(&t->cfg, cfg);
}

/* Writes body + its checksum line into buf; returns the length. */
static size_t with_checksum(const char *body, char *buf, size_t cap)
{
    size_t n = strlen(body);
    int m = snprintf(buf, cap,
                     "%s"
                     "checksum = %016" PRIx64 "\n",
                     body, (uint64_t)XXH3_64bits(body, n));
    cr_assert(m > 0 && (size_t)m < cap);
    return (size_t)m;
}

static int decode_body(const char *body, struct catalog_topic *t, char *why, size_t cap)
{
    char buf[8192];
    size_t len = with_checksum(body, buf, sizeof(buf));
    return catalog_meta_decode(buf, len, t, why, cap);
}

#define GOOD_BODY                                                           \
    "version = 1\nname = orders\npartitions = 3\nretention_ms = 86400000\n" \
    "retention_bytes = -1\nsegment_bytes = 1048576\nsegment_ms = 3600000\n" \
    "batch_bytes_max = 65536\n"

/* ---- create, reopen, find ---- */

Test(catalog, create_then_reopen_keeps_every_topic_and_config)
{
    open_ok();
    cr_assert_eq(catalog_count(&cat), 0);
    create_ok("orders", &cfg_a);
    create_ok("a.b_c-D", &cfg_b);
    create_ok("z", &cfg_min);
    cr_assert_eq(catalog_count(&cat), 3);
    for (int round = 0; round < 2; round++) {
        assert_topic("orders", &cfg_a);
        assert_topic("a.b_c-D", &cfg_b);
        assert_topic("z", &cfg_min);
        cr_assert(exists("topics/orders/topic.meta"));
        cr_assert_eq(entries("topics/orders"), 1, "no partition dirs are made");
        cr_assert_eq(entries("trash"), 0);
        open_ok();
        cr_assert_eq(catalog_count(&cat), 3);
    }
}

Test(catalog, topics_come_in_name_order)
{
    open_ok();
    const char *names[] = {"m", "b", "zz", "B", "a", "ab", "a.", "_"};
    for (size_t i = 0; i < ARRAY_LEN(names); i++) {
        create_ok(names[i], &cfg_a);
    }
    const char *sorted[] = {"B", "_", "a", "a.", "ab", "b", "m", "zz"};
    for (int round = 0; round < 2; round++) {
        cr_assert_eq(catalog_count(&cat), ARRAY_LEN(sorted));
        for (uint32_t i = 0; i < ARRAY_LEN(sorted); i++) {
            cr_assert_str_eq(catalog_at(&cat, i)->name, sorted[i]);
        }
        open_ok();
    }
}

Test(catalog, find_takes_a_length_delimited_name)
{
    open_ok();
    create_ok("orders", &cfg_a);
    create_ok("order", &cfg_b);
    const char wire[] = "ordersXYZ"; /* not terminated after the name */
    const struct catalog_topic *t = catalog_find(&cat, wire, 6);
    cr_assert_not_null(t);
    cr_assert_str_eq(t->name, "orders");
    t = catalog_find(&cat, wire, 5);
    cr_assert_not_null(t);
    cr_assert_str_eq(t->name, "order");
    cr_assert_null(catalog_find(&cat, wire, 4));
    cr_assert_null(catalog_find(&cat, wire, 9));
    cr_assert_null(catalog_find(&cat, "", 0));
    cr_assert_null(catalog_find(&cat, "a/b", 3));
}

Test(catalog, topic_pointers_survive_other_creates_and_deletes)
{
    open_ok();
    create_ok("m", &cfg_a);
    const struct catalog_topic *m = catalog_find(&cat, "m", 1);
    create_ok("a", &cfg_b);
    create_ok("z", &cfg_b);
    cr_assert_eq(catalog_delete(&cat, "a", 1), 0);
    cr_assert_eq(catalog_find(&cat, "m", 1), m);
    cr_assert_str_eq(m->name, "m");
}

Test(catalog, duplicate_create_is_refused)
{
    open_ok();
    create_ok("orders", &cfg_a);
    cr_assert_eq(catalog_create(&cat, "orders", 6, &cfg_b), -NG_ETOPIC_EXISTS);
    assert_topic("orders", &cfg_a);
    cr_assert_eq(catalog_count(&cat), 1);
    open_ok();
    cr_assert_eq(catalog_create(&cat, "orders", 6, &cfg_b), -NG_ETOPIC_EXISTS);
    assert_topic("orders", &cfg_a);
}

Test(catalog, bad_names_are_refused_before_the_file_system)
{
    open_ok();
    char long_name[251];
    memset(long_name, 'x', 250);
    long_name[250] = '\0';
    const char *bad[] = {"",    long_name, "/",     "..",  ".",           "a b", " ",
                         "a/b", "../x",    "tab\t", "nul", "caf\xc3\xa9", "a*",  "a\\b"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        size_t len = i == 10 ? 4 : strlen(bad[i]); /* "nul" plus its NUL byte */
        cr_assert_eq(catalog_create(&cat, bad[i], len, &cfg_a), -NG_EBADNAME, "name %zu", i);
        cr_assert_eq(catalog_delete(&cat, bad[i], len), -NG_EBADNAME, "name %zu", i);
    }
    cr_assert_eq(entries("topics"), 0);
    cr_assert_eq(entries("trash"), 0);
    cr_assert_eq(catalog_count(&cat), 0);
    long_name[249] = '\0'; /* 249 bytes: the longest allowed */
    create_ok(long_name, &cfg_a);
    open_ok();
    assert_topic(long_name, &cfg_a);
}

Test(catalog, create_refuses_an_unresolved_or_bad_config)
{
    open_ok();
    struct topic_config c = cfg_a;
    c.partitions = PROTO_CONFIG_DEFAULT;
    cr_assert_eq(catalog_create(&cat, "t", 1, &c), -NG_EBADARG);
    c = cfg_a;
    c.retention_ms = 0;
    cr_assert_eq(catalog_create(&cat, "t", 1, &c), -NG_EBADARG);
    c = cfg_a;
    c.batch_bytes_max = BATCH_HEADER_BYTES - 1;
    cr_assert_eq(catalog_create(&cat, "t", 1, &c), -NG_EBADARG);
    cr_assert_eq(entries("topics"), 0);
    cr_assert_eq(entries("trash"), 0);
}

Test(catalog, open_creates_the_data_dir_and_its_subdirs)
{
    cr_assert(!exists(""));
    open_ok();
    cr_assert(exists("topics"));
    cr_assert(exists("trash"));
    catalog_close(&cat);
    cat_open = false;
    char deep[400];
    snprintf(deep, sizeof(deep), "%s/missing/data", root);
    cr_assert_eq(catalog_open(&cat, deep), -ENOENT);
}

/* ---- delete ---- */

Test(catalog, delete_then_reopen_is_gone_with_its_directory)
{
    open_ok();
    create_ok("orders", &cfg_a);
    create_ok("keep", &cfg_b);
    /* Partition data as the broker would leave it. */
    const struct catalog_topic *t = catalog_find(&cat, "orders", 6);
    for (int32_t p = 0; p < t->cfg.partitions; p++) {
        char dir[1024];
        cr_assert_eq(catalog_partition_dir(&cat, t, p, dir, sizeof(dir)), 0);
        cr_assert_eq(mkdir(dir, 0755), 0);
        char file[1100];
        snprintf(file, sizeof(file), "%s/00000000000000000000.log", dir);
        int fd = open(file, O_WRONLY | O_CREAT, 0644);
        cr_assert_geq(fd, 0);
        cr_assert_eq(write(fd, "data", 4), 4);
        cr_assert_eq(close(fd), 0);
    }
    cr_assert_eq(catalog_delete(&cat, "orders", 6), 0);
    cr_assert_null(catalog_find(&cat, "orders", 6));
    cr_assert_eq(catalog_count(&cat), 1);
    cr_assert(!exists("topics/orders"));
    cr_assert_eq(entries("trash"), 0);
    cr_assert_eq(catalog_delete(&cat, "orders", 6), -NG_EUNKNOWN_TOPIC);
    open_ok();
    cr_assert_null(catalog_find(&cat, "orders", 6));
    assert_topic("keep", &cfg_b);
    cr_assert_eq(catalog_count(&cat), 1);
    create_ok("orders", &cfg_b); /* the name is free again */
    assert_topic("orders", &cfg_b);
}

Test(catalog, delete_of_an_unknown_topic_is_refused)
{
    open_ok();
    cr_assert_eq(catalog_delete(&cat, "nope", 4), -NG_EUNKNOWN_TOPIC);
    create_ok("nope2", &cfg_a);
    cr_assert_eq(catalog_delete(&cat, "nope", 4), -NG_EUNKNOWN_TOPIC);
    cr_assert_eq(catalog_count(&cat), 1);
}

/* ---- recovery on open ---- */

Test(catalog, trash_is_emptied_on_open)
{
    open_ok();
    create_ok("orders", &cfg_a);
    catalog_close(&cat);
    cat_open = false;
    /* A deletion interrupted after its rename: a whole topic in trash/. */
    char src[1024], dst[1024];
    path_of(src, sizeof(src), "topics/orders");
    path_of(dst, sizeof(dst), "trash/del.1.0");
    cr_assert_eq(rename(src, dst), 0);
    make_dir("trash/del.1.0/0");
    write_file("trash/del.1.0/0/00000000000000000000.log", "x", 1);
    make_dir("trash/new.1.1");
    write_file("trash/new.1.1/topic.meta", "half", 4);
    write_file("trash/stray-file", "x", 1);
    open_ok();
    cr_assert_eq(entries("trash"), 0);
    cr_assert_eq(catalog_count(&cat), 0);
}

Test(catalog, interrupted_create_leftovers_are_cleaned)
{
    open_ok();
    create_ok("whole", &cfg_a);
    catalog_close(&cat);
    cat_open = false;
    make_dir("topics/half");
    write_file("topics/half/topic.meta.tmp", "version = 1\n", 12);
    make_dir("topics/empty");
    write_file("topics/whole/topic.meta.tmp", "junk", 4);
    open_ok();
    cr_assert_eq(catalog_count(&cat), 1);
    assert_topic("whole", &cfg_a);
    cr_assert(!exists("topics/half"));
    cr_assert(!exists("topics/empty"));
    cr_assert(!exists("topics/whole/topic.meta.tmp"));
    cr_assert(exists("topics/whole/topic.meta"));
    create_ok("half", &cfg_b);
    open_ok();
    assert_topic("half", &cfg_b);
}

Test(catalog, a_topic_dir_without_meta_but_with_data_fails_open)
{
    open_ok();
    catalog_close(&cat);
    cat_open = false;
    make_dir("topics/orders");
    make_dir("topics/orders/0");
    cr_assert_eq(reopen(), -NG_ECORRUPT);
    cr_assert(exists("topics/orders/0"), "data is never removed on a guess");
}

Test(catalog, unexpected_entries_in_topics_fail_open)
{
    open_ok();
    catalog_close(&cat);
    cat_open = false;
    make_dir("topics/bad name");
    cr_assert_eq(reopen(), -NG_ECORRUPT);
    char p[1024];
    path_of(p, sizeof(p), "topics/bad name");
    cr_assert_eq(rmdir(p), 0);
    write_file("topics/plainfile", "x", 1);
    cr_assert_eq(reopen(), -NG_ECORRUPT);
    cr_assert(exists("topics/plainfile"));
}

static void damage_and_expect_corrupt(const char *meta, size_t len)
{
    write_file("topics/orders/topic.meta", meta, len);
    int rc = reopen();
    cr_assert_eq(rc, -NG_ECORRUPT, "len %zu: %s", len, err_str(rc));
}

Test(catalog, every_flipped_byte_of_topic_meta_fails_open)
{
    open_ok();
    create_ok("orders", &cfg_a);
    catalog_close(&cat);
    cat_open = false;
    char meta[CATALOG_META_BYTES_MAX];
    size_t len = read_file("topics/orders/topic.meta", meta, sizeof(meta));
    cr_assert_gt(len, 100);
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            meta[i] ^= (char)(1 << bit);
            damage_and_expect_corrupt(meta, len);
            meta[i] ^= (char)(1 << bit);
        }
    }
    write_file("topics/orders/topic.meta", meta, len);
    open_ok();
    assert_topic("orders", &cfg_a);
}

Test(catalog, every_truncation_of_topic_meta_fails_open)
{
    open_ok();
    create_ok("orders", &cfg_b);
    catalog_close(&cat);
    cat_open = false;
    char meta[CATALOG_META_BYTES_MAX];
    size_t len = read_file("topics/orders/topic.meta", meta, sizeof(meta));
    for (size_t cut = 0; cut < len; cut++) {
        damage_and_expect_corrupt(meta, cut);
    }
    /* Bytes appended after the checksum line are damage too. */
    memcpy(meta + len, "x\n", 2);
    damage_and_expect_corrupt(meta, len + 2);
    write_file("topics/orders/topic.meta", meta, len);
    open_ok();
    assert_topic("orders", &cfg_b);
}

Test(catalog, a_meta_naming_another_topic_fails_open)
{
    open_ok();
    create_ok("orders", &cfg_a);
    catalog_close(&cat);
    cat_open = false;
    char src[1024], dst[1024];
    path_of(src, sizeof(src), "topics/orders");
    path_of(dst, sizeof(dst), "topics/orderz");
    cr_assert_eq(rename(src, dst), 0);
    cr_assert_eq(reopen(), -NG_ECORRUPT);
}

Test(catalog, an_oversized_meta_fails_open)
{
    open_ok();
    create_ok("orders", &cfg_a);
    catalog_close(&cat);
    cat_open = false;
    static char big[CATALOG_META_BYTES_MAX + 100];
    memset(big, '\n', sizeof(big));
    damage_and_expect_corrupt(big, sizeof(big));
}

/* ---- the topic.meta codec ---- */

Test(catalog, meta_round_trips_at_the_limits)
{
    char name[PROTO_TOPIC_NAME_BYTES_MAX + 1];
    memset(name, 'n', PROTO_TOPIC_NAME_BYTES_MAX);
    name[PROTO_TOPIC_NAME_BYTES_MAX] = '\0';
    const struct topic_config *cfgs[] = {&cfg_a, &cfg_b, &cfg_min};
    for (size_t i = 0; i < ARRAY_LEN(cfgs); i++) {
        char buf[CATALOG_META_BYTES_MAX];
        size_t len = 0;
        cr_assert_eq(catalog_meta_encode(name, sizeof(name) - 1, cfgs[i], buf, sizeof(buf), &len),
                     0);
        struct catalog_topic t;
        char why[256] = "";
        cr_assert_eq(catalog_meta_decode(buf, len, &t, why, sizeof(why)), 0, "%s", why);
        cr_assert_str_eq(t.name, name);
        assert_cfg_eq(&t.cfg, cfgs[i]);
    }
    char small[64];
    size_t len = 0;
    cr_assert_eq(catalog_meta_encode("t", 1, &cfg_a, small, sizeof(small), &len), -NG_ENOSPACE);
}

Test(catalog, meta_text_is_human_readable)
{
    char buf[CATALOG_META_BYTES_MAX];
    size_t len = 0;
    cr_assert_eq(catalog_meta_encode("orders", 6, &cfg_a, buf, sizeof(buf), &len), 0);
    char expect[1024];
    size_t elen = with_checksum(GOOD_BODY, expect, sizeof(expect));
    cr_assert_eq(len, elen);
    cr_assert_eq(memcmp(buf, expect, len), 0, "%.*s", (int)len, buf);
}

Test(catalog, meta_decoder_refuses_bad_contents_with_a_good_checksum)
{
    struct catalog_topic t;
    char why[256];
    cr_assert_eq(decode_body(GOOD_BODY, &t, why, sizeof(why)), 0);
    const char *bad[] = {
        /* version not first, unknown version, bad shape */
        "name = orders\nversion = 1\npartitions = 3\nretention_ms = 1\nretention_bytes = -1\n"
        "segment_bytes = 1048576\nsegment_ms = 1\nbatch_bytes_max = 65536\n",
        "version = 2\nname = orders\npartitions = 3\nretention_ms = 1\nretention_bytes = -1\n"
        "segment_bytes = 1048576\nsegment_ms = 1\nbatch_bytes_max = 65536\n",
        "version=1\nname = orders\npartitions = 3\nretention_ms = 1\nretention_bytes = -1\n"
        "segment_bytes = 1048576\nsegment_ms = 1\nbatch_bytes_max = 65536\n",
        /* unknown, missing, repeated keys */
        GOOD_BODY "colour = blue\n",
        "version = 1\nname = orders\npartitions = 3\nretention_ms = 1\nretention_bytes = -1\n"
        "segment_bytes = 1048576\nsegment_ms = 1\n",
        GOOD_BODY "partitions = 3\n",
        /* values: out of range, not decimal, leading zero, overflow, bad name */
        "version = 1\nname = orders\npartitions = 0\nretention_ms = 1\nretention_bytes = -1\n"
        "segment_bytes = 1048576\nsegment_ms = 1\nbatch_bytes_max = 65536\n",
        "version = 1\nname = orders\npartitions = 4097\nretention_ms = 1\nretention_bytes = -1\n"
        "segment_bytes = 1048576\nsegment_ms = 1\nbatch_bytes_max = 65536\n",
        "version = 1\nname = orders\npartitions = 3\nretention_ms = -2\nretention_bytes = -1\n"
        "segment_bytes = 1048576\nsegment_ms = 1\nbatch_bytes_max = 65536\n",
        "version = 1\nname = orders\npartitions = 3\nretention_ms = 0\nretention_bytes = -1\n"
        "segment_bytes = 1048576\nsegment_ms = 1\nbatch_bytes_max = 65536\n",
        "version = 1\nname = orders\npartitions = 3\nretention_ms = 1\nretention_bytes = -1\n"
        "segment_bytes = 4095\nsegment_ms = 1\nbatch_bytes_max = 65536\n",
        "version = 1\nname = orders\npartitions = 3\nretention_ms = 1\nretention_bytes = -1\n"
        "segment_bytes = 1048576\nsegment_ms = -1\nbatch_bytes_max = 65536\n",
        "version = 1\nname = orders\npartitions = 3\nretention_ms = 1\nretention_bytes = -1\n"
        "segment_bytes = 1048576\nsegment_ms = 1\nbatch_bytes_max = 268435457\n",
        "version = 1\nname = orders\npartitions = 3x\nretention_ms = 1\nretention_bytes = -1\n"
        "segment_bytes = 1048576\nsegment_ms = 1\nbatch_bytes_max = 65536\n",
        "version = 1\nname = orders\npartitions = 03\nretention_ms = 1\nretention_bytes = -1\n"
        "segment_bytes = 1048576\nsegment_ms = 1\nbatch_bytes_max = 65536\n",
        "version = 1\nname = orders\npartitions = 3\nretention_ms = 9223372036854775808\n"
        "retention_bytes = -1\nsegment_bytes = 1048576\nsegment_ms = 1\nbatch_bytes_max = 65536\n",
        "version = 1\nname = orders\npartitions = 3\nretention_ms = -0\nretention_bytes = -1\n"
        "segment_bytes = 1048576\nsegment_ms = 1\nbatch_bytes_max = 65536\n",
        "version = 1\nname = ..\npartitions = 3\nretention_ms = 1\nretention_bytes = -1\n"
        "segment_bytes = 1048576\nsegment_ms = 1\nbatch_bytes_max = 65536\n",
        "version = 1\nname = \npartitions = 3\nretention_ms = 1\nretention_bytes = -1\n"
        "segment_bytes = 1048576\nsegment_ms = 1\nbatch_bytes_max = 65536\n",
        "version = 1\r\nname = orders\npartitions = 3\nretention_ms = 1\nretention_bytes = -1\n"
        "segment_bytes = 1048576\nsegment_ms = 1\nbatch_bytes_max = 65536\n",
        GOOD_BODY "\n",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        why[0] = '\0';
        cr_assert_eq(decode_body(bad[i], &t, why, sizeof(why)), -NG_ECORRUPT, "case %zu", i);
        cr_assert_neq(why[0], '\0', "case %zu gives a reason", i);
    }
}

Test(catalog, meta_decoder_bounds_line_length)
{
    static char body[CATALOG_META_BYTES_MAX];
    /* A name line one byte over the bound (the name itself is too long too,
     * but the line bound is checked first). */
    char name[CATALOG_META_LINE_BYTES_MAX];
    memset(name, 'n', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    snprintf(body, sizeof(body), "version = 1\nname = %s\n", name);
    struct catalog_topic t;
    char why[256];
    cr_assert_eq(decode_body(body, &t, why, sizeof(why)), -NG_ECORRUPT);
    cr_assert(strstr(why, "longer") != NULL, "%s", why);
}

Test(catalog, meta_decoder_refuses_a_bad_checksum_line)
{
    char buf[1024];
    size_t len = with_checksum(GOOD_BODY, buf, sizeof(buf));
    struct catalog_topic t;
    char why[256];
    /* Upper-case hex is not what the encoder writes. */
    char *hex = strstr(buf, "checksum = ") + strlen("checksum = ");
    for (int i = 0; i < 16; i++) {
        if (hex[i] >= 'a' && hex[i] <= 'f') {
            hex[i] = (char)(hex[i] - 'a' + 'A');
            cr_assert_eq(catalog_meta_decode(buf, len, &t, why, sizeof(why)), -NG_ECORRUPT);
            hex[i] = (char)(hex[i] - 'A' + 'a');
        }
    }
    cr_assert_eq(catalog_meta_decode(buf, len, &t, why, sizeof(why)), 0);
    /* No checksum line at all. */
    cr_assert_eq(catalog_meta_decode(GOOD_BODY, strlen(GOOD_BODY), &t, why, sizeof(why)),
                 -NG_ECORRUPT);
    cr_assert_eq(catalog_meta_decode(buf, 0, &t, why, sizeof(why)), -NG_ECORRUPT);
    /* A zero-capacity reason buffer is allowed. */
    cr_assert_eq(catalog_meta_decode(buf, len - 1, &t, NULL, 0), -NG_ECORRUPT);
}

/* ---- configuration ---- */

static const struct topic_config defaults = {
    .partitions = 2,
    .retention_ms = 604800000,
    .retention_bytes = -1,
    .segment_bytes = 1 << 30,
    .segment_ms = 604800000,
    .batch_bytes_max = 8 << 20,
};

static const struct topic_config all_default = {
    .partitions = PROTO_CONFIG_DEFAULT,
    .retention_ms = PROTO_CONFIG_DEFAULT,
    .retention_bytes = PROTO_CONFIG_DEFAULT,
    .segment_bytes = PROTO_CONFIG_DEFAULT,
    .segment_ms = PROTO_CONFIG_DEFAULT,
    .batch_bytes_max = PROTO_CONFIG_DEFAULT,
};

Test(catalog, resolve_takes_defaults_and_unlimited)
{
    struct topic_config out;
    cr_assert_eq(catalog_resolve_config(&all_default, &defaults, &out), 0);
    assert_cfg_eq(&out, &defaults);
    struct topic_config req = all_default;
    req.retention_ms = PROTO_CONFIG_UNLIMITED;
    req.retention_bytes = PROTO_CONFIG_UNLIMITED;
    req.partitions = 7;
    cr_assert_eq(catalog_resolve_config(&req, &defaults, &out), 0);
    cr_assert_eq(out.retention_ms, -1);
    cr_assert_eq(out.retention_bytes, -1);
    cr_assert_eq(out.partitions, 7);
    cr_assert_eq(out.segment_bytes, defaults.segment_bytes);
    /* Explicit values pass through; out may alias the request. */
    req = cfg_b;
    req.retention_ms = PROTO_CONFIG_UNLIMITED;
    cr_assert_eq(catalog_resolve_config(&req, &defaults, &req), 0);
    assert_cfg_eq(&req, &cfg_b);
    /* In a request -1 is "the default", not "keep forever" as when stored. */
    req = cfg_b;
    cr_assert_eq(catalog_resolve_config(&req, &defaults, &out), 0);
    cr_assert_eq(out.retention_ms, defaults.retention_ms);
    req = cfg_min;
    cr_assert_eq(catalog_resolve_config(&req, &defaults, &out), 0);
    assert_cfg_eq(&out, &cfg_min);
    /* A default of -1 retention means keep forever. */
    struct topic_config d = defaults;
    d.retention_ms = -1;
    cr_assert_eq(catalog_resolve_config(&all_default, &d, &out), 0);
    cr_assert_eq(out.retention_ms, -1);
}

static void expect_bad(void (*set)(struct topic_config *), const char *what)
{
    struct topic_config req = all_default;
    set(&req);
    struct topic_config out;
    cr_assert_eq(catalog_resolve_config(&req, &defaults, &out), -NG_EBADARG, "%s", what);
}

static void part_zero(struct topic_config *c) { c->partitions = 0; }
static void part_over(struct topic_config *c) { c->partitions = PROTO_PARTITIONS_MAX + 1; }
static void part_unlimited(struct topic_config *c) { c->partitions = PROTO_CONFIG_UNLIMITED; }
static void ret_ms_zero(struct topic_config *c) { c->retention_ms = 0; }
static void ret_ms_minus3(struct topic_config *c) { c->retention_ms = -3; }
static void ret_bytes_zero(struct topic_config *c) { c->retention_bytes = 0; }
static void ret_bytes_min(struct topic_config *c) { c->retention_bytes = INT64_MIN; }
static void seg_small(struct topic_config *c) { c->segment_bytes = PART_SEGMENT_BYTES_MIN - 1; }
static void seg_big(struct topic_config *c)
{
    c->segment_bytes = (int64_t)PART_SEGMENT_BYTES_MAX + 1;
}
static void seg_unlimited(struct topic_config *c) { c->segment_bytes = PROTO_CONFIG_UNLIMITED; }
static void seg_ms_zero(struct topic_config *c) { c->segment_ms = 0; }
static void seg_ms_unlimited(struct topic_config *c) { c->segment_ms = PROTO_CONFIG_UNLIMITED; }
static void batch_small(struct topic_config *c) { c->batch_bytes_max = BATCH_HEADER_BYTES - 1; }
static void batch_big(struct topic_config *c)
{
    c->batch_bytes_max = (int32_t)BATCH_BYTES_LIMIT + 1;
}
static void batch_unlimited(struct topic_config *c) { c->batch_bytes_max = PROTO_CONFIG_UNLIMITED; }

Test(catalog, resolve_refuses_out_of_range_values)
{
    expect_bad(part_zero, "partitions 0");
    expect_bad(part_over, "partitions 4097");
    expect_bad(part_unlimited, "partitions -2");
    expect_bad(ret_ms_zero, "retention_ms 0");
    expect_bad(ret_ms_minus3, "retention_ms -3");
    expect_bad(ret_bytes_zero, "retention_bytes 0");
    expect_bad(ret_bytes_min, "retention_bytes INT64_MIN");
    expect_bad(seg_small, "segment_bytes below min");
    expect_bad(seg_big, "segment_bytes above max");
    expect_bad(seg_unlimited, "segment_bytes -2");
    expect_bad(seg_ms_zero, "segment_ms 0");
    expect_bad(seg_ms_unlimited, "segment_ms -2");
    expect_bad(batch_small, "batch_bytes_max below header");
    expect_bad(batch_big, "batch_bytes_max above limit");
    expect_bad(batch_unlimited, "batch_bytes_max -2");
    cr_assert_eq(catalog_config_check(&defaults), 0);
    cr_assert_eq(catalog_config_check(&all_default), -NG_EBADARG);
}

Test(catalog, part_config_takes_the_topic_fields)
{
    struct part_config base = {
        .segment_bytes = 1,
        .segment_ms = 2,
        .index_interval_bytes = 4096,
        .batch_bytes_max = 3,
        .retention_ms = 4,
        .retention_bytes = 5,
        .appends_inflight_max = 77,
        .group_commit = false,
    };
    struct part_config pc;
    catalog_part_config(&cfg_a, &base, &pc);
    cr_assert_eq(pc.segment_bytes, (uint64_t)cfg_a.segment_bytes);
    cr_assert_eq(pc.segment_ms, cfg_a.segment_ms);
    cr_assert_eq(pc.batch_bytes_max, (uint32_t)cfg_a.batch_bytes_max);
    cr_assert_eq(pc.retention_ms, cfg_a.retention_ms);
    cr_assert_eq(pc.retention_bytes, cfg_a.retention_bytes);
    cr_assert_eq(pc.index_interval_bytes, 4096);
    cr_assert_eq(pc.appends_inflight_max, 77);
    cr_assert_eq(pc.group_commit, false);
}

Test(catalog, partition_dir_is_under_the_topic)
{
    open_ok();
    create_ok("orders", &cfg_a);
    const struct catalog_topic *t = catalog_find(&cat, "orders", 6);
    char buf[1024];
    cr_assert_eq(catalog_partition_dir(&cat, t, 2, buf, sizeof(buf)), 0);
    char expect[1024];
    snprintf(expect, sizeof(expect), "%s/topics/orders/2", data);
    cr_assert_str_eq(buf, expect);
    size_t need = strlen(expect) + 1;
    cr_assert_eq(catalog_partition_dir(&cat, t, 2, buf, need), 0);
    cr_assert_eq(catalog_partition_dir(&cat, t, 2, buf, need - 1), -NG_ETOOBIG);
    cr_assert_str_eq(buf, "");
}

/* ---- failure injection ---- */

/* After a failed create: nothing in memory, on disk, or after reopen. */
static void assert_no_trace(const char *name)
{
    cr_assert_null(catalog_find(&cat, name, strlen(name)));
    cr_assert(!exists("topics/orders"));
    cr_assert_eq(entries("trash"), 0);
    open_ok();
    cr_assert_null(catalog_find(&cat, name, strlen(name)));
    cr_assert_eq(entries("topics"), 1); /* "keep" only */
    cr_assert_eq(entries("trash"), 0);
}

static void fail_create(enum ring_kind kind, uint64_t nth, int res, bool fails_catalog)
{
    open_ok();
    create_ok("keep", &cfg_a);
    ring_fault_clear();
    ring_fault_arm(kind, nth, res, false);
    int rc = catalog_create(&cat, "orders", 6, &cfg_b);
    cr_assert_eq(rc, res, "create: %s", err_str(rc));
    cr_assert_eq(ring_fault_injected(), 1);
    cr_assert_eq(catalog_failed(&cat) != 0, fails_catalog);
    if (fails_catalog) {
        cr_assert_eq(catalog_create(&cat, "other", 5, &cfg_a), -NG_EFAILED);
        cr_assert_eq(catalog_delete(&cat, "keep", 4), -NG_EFAILED);
    } else {
        /* The catalog is as it was: the next create works. */
        create_ok("other", &cfg_a);
        cr_assert_eq(catalog_delete(&cat, "other", 5), 0);
    }
    assert_topic("keep", &cfg_a);
    assert_no_trace("orders");
    create_ok("orders", &cfg_b); /* a reopened catalog works */
    open_ok();
    assert_topic("orders", &cfg_b);
}

Test(catalog, failed_meta_fsync_fails_create_cleanly)
{
    fail_create(RING_META_SYNC, 1, -EIO, false);
}

Test(catalog, failed_meta_write_fails_create_cleanly)
{
    fail_create(RING_META_WRITE, 1, -ENOSPC, false);
}

Test(catalog, failed_topic_dir_fsync_fails_create_cleanly)
{
    fail_create(RING_DIR_SYNC, 1, -EIO, false);
}

Test(catalog, failed_topics_fsync_after_rename_fails_the_catalog)
{
    fail_create(RING_DIR_SYNC, 2, -EIO, true);
}

Test(catalog, failed_trash_fsync_after_rename_fails_the_catalog)
{
    fail_create(RING_DIR_SYNC, 3, -EIO, true);
}

Test(catalog, a_short_meta_write_is_completed)
{
    open_ok();
    ring_fault_arm(RING_META_WRITE, 1, RING_FAULT_SHORT, false);
    create_ok("orders", &cfg_a);
    cr_assert_eq(ring_fault_injected(), 1);
    cr_assert_eq(ring_fault_seen(RING_META_WRITE), 2, "the rest was written");
    open_ok();
    assert_topic("orders", &cfg_a);
}

Test(catalog, create_syncs_meta_and_both_directories)
{
    open_ok();
    ring_fault_clear();
    create_ok("orders", &cfg_a);
    cr_assert_eq(ring_fault_seen(RING_META_WRITE), 1);
    cr_assert_eq(ring_fault_seen(RING_META_SYNC), 1);
    cr_assert_eq(ring_fault_seen(RING_DIR_SYNC), 3); /* staged dir, topics/, trash/ */
    ring_fault_clear();
    cr_assert_eq(catalog_delete(&cat, "orders", 6), 0);
    cr_assert_eq(ring_fault_seen(RING_DIR_SYNC), 2); /* topics/, trash/ */
    cr_assert_eq(ring_fault_seen(RING_META_WRITE), 0);
}

Test(catalog, failed_fsync_in_delete_fails_the_catalog)
{
    for (uint64_t nth = 1; nth <= 2; nth++) {
        open_ok();
        create_ok("orders", &cfg_a);
        create_ok("keep", &cfg_b);
        ring_fault_clear();
        ring_fault_arm(RING_DIR_SYNC, nth, -EIO, false);
        cr_assert_eq(catalog_delete(&cat, "orders", 6), -EIO);
        cr_assert_neq(catalog_failed(&cat), 0);
        cr_assert_null(catalog_find(&cat, "orders", 6), "gone from topics/: gone here");
        cr_assert_eq(entries("trash"), 1, "files kept until the next open");
        cr_assert_eq(catalog_delete(&cat, "keep", 4), -NG_EFAILED);
        cr_assert_eq(catalog_create(&cat, "new", 3, &cfg_a), -NG_EFAILED);
        open_ok();
        cr_assert_eq(catalog_failed(&cat), 0);
        cr_assert_null(catalog_find(&cat, "orders", 6));
        assert_topic("keep", &cfg_b);
        cr_assert_eq(entries("trash"), 0);
        cr_assert_eq(catalog_delete(&cat, "keep", 4), 0);
    }
}
