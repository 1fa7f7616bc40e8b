/* The fault runs' safety checker (tests/checker.h). */
#include "tests/checker.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/file.h"
#include "client/msg.h"
#include "client/nagare.h"
#include "storage/batch.h"
#include "storage/partition.h"
#include "storage/segment.h"

void chk_init(struct checker *c, const char *topic, int32_t partitions)
{
    ASSERT(partitions >= 1 && partitions <= CHK_PARTITIONS_MAX);
    ASSERT(strlen(topic) < sizeof(c->topic));
    memset(c, 0, sizeof(*c));
    snprintf(c->topic, sizeof(c->topic), "%s", topic);
    c->partitions = partitions;
    ASSERT(pthread_mutex_init(&c->mu, NULL) == 0);
    for (int32_t p = 0; p < CHK_PARTITIONS_MAX; p++) {
        c->hw[p] = -1;
    }
    c->run_end_ms = -1;
}

void chk_fini(struct checker *c)
{
    if (c->partitions == 0) {
        return;
    }
    for (int32_t p = 0; p < CHK_PARTITIONS_MAX; p++) {
        free(c->acks[p]);
    }
    for (uint32_t i = 0; i < c->source_count; i++) {
        for (int32_t p = 0; p < CHK_PARTITIONS_MAX; p++) {
            free(c->sources[i]->logs[p].ids);
        }
        free(c->sources[i]);
    }
    pthread_mutex_destroy(&c->mu);
    memset(c, 0, sizeof(*c));
}

/* ---- values ---- */

size_t chk_value(char *buf, uint32_t producer, uint64_t seq)
{
    int n = snprintf(buf, CHK_VALUE_BYTES, "%" PRIu32 ":%" PRIu64, producer, seq);
    ASSERT(n > 0 && n < CHK_VALUE_BYTES);
    return (size_t)n;
}

/* Parses decimal digits at *at (at most max_digits, no sign, no leading
 * zero but "0" itself) into *out. Returns false when there are none. */
static bool parse_decimal(const char **at, const char *end, int max_digits, uint64_t *out)
{
    const char *s = *at;
    uint64_t v = 0;
    int n = 0;
    while (s < end && *s >= '0' && *s <= '9' && n < max_digits) {
        v = v * 10 + (uint64_t)(*s - '0');
        s++;
        n++;
    }
    if (n == 0 || (n > 1 && **at == '0')) {
        return false;
    }
    *at = s;
    *out = v;
    return true;
}

chk_id chk_parse(const void *value, ssize_t len)
{
    if (value == NULL || len <= 0 || len >= CHK_VALUE_BYTES) {
        return CHK_ID_FOREIGN;
    }
    const char *at = value;
    const char *end = at + len;
    uint64_t producer;
    uint64_t seq;
    if (!parse_decimal(&at, end, 5, &producer) || at == end || *at++ != ':' ||
        !parse_decimal(&at, end, 13, &seq) || at != end || producer >= CHK_PRODUCERS_MAX ||
        seq > CHK_SEQ_MAX) {
        return CHK_ID_FOREIGN;
    }
    return ((producer + 1) << CHK_SEQ_BITS) | seq;
}

static chk_id make_id(uint32_t producer, uint64_t seq)
{
    return ((uint64_t)(producer + 1) << CHK_SEQ_BITS) | seq;
}

/* ---- what producers did ---- */

int chk_sent(struct checker *c, uint32_t producer, uint64_t seq)
{
    if (producer >= CHK_PRODUCERS_MAX || seq > CHK_SEQ_MAX) {
        return -NG_EBADARG;
    }
    pthread_mutex_lock(&c->mu);
    int rc = seq == c->sent[producer] ? 0 : -NG_EBADARG;
    c->sent[producer] += rc == 0;
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int chk_acked(struct checker *c, int32_t partition, int64_t offset, chk_id id, int64_t at_ms)
{
    if (partition < 0 || partition >= c->partitions || offset < -1 || id <= CHK_ID_FOREIGN) {
        return -NG_EBADARG;
    }
    pthread_mutex_lock(&c->mu);
    int rc =
        chk_id_producer(id) < CHK_PRODUCERS_MAX && chk_id_seq(id) < c->sent[chk_id_producer(id)]
            ? 0
            : -NG_EBADARG;
    if (rc == 0 && c->ack_count[partition] == c->ack_cap[partition]) {
        size_t cap = c->ack_cap[partition] ? 2 * c->ack_cap[partition] : 1024;
        struct chk_ack *grown = realloc(c->acks[partition], cap * sizeof(*grown));
        ASSERT(grown != NULL);
        c->acks[partition] = grown;
        c->ack_cap[partition] = cap;
    }
    if (rc == 0) {
        c->acks[partition][c->ack_count[partition]++] =
            (struct chk_ack){.offset = offset, .id = id, .at_ms = at_ms};
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

void chk_delivery_failed(struct checker *c)
{
    pthread_mutex_lock(&c->mu);
    c->delivery_failed++;
    pthread_mutex_unlock(&c->mu);
}

uint64_t chk_acked_count_partition(struct checker *c, int32_t partition)
{
    ASSERT(partition >= 0 && partition < c->partitions);
    pthread_mutex_lock(&c->mu);
    uint64_t n = c->ack_count[partition];
    pthread_mutex_unlock(&c->mu);
    return n;
}

int64_t chk_acked_offset_max(struct checker *c, int32_t partition)
{
    ASSERT(partition >= 0 && partition < c->partitions);
    pthread_mutex_lock(&c->mu);
    int64_t max = -1;
    for (size_t i = 0; i < c->ack_count[partition]; i++) {
        max = c->acks[partition][i].offset > max ? c->acks[partition][i].offset : max;
    }
    pthread_mutex_unlock(&c->mu);
    return max;
}

uint64_t chk_acked_count(struct checker *c)
{
    pthread_mutex_lock(&c->mu);
    uint64_t n = 0;
    for (int32_t p = 0; p < c->partitions; p++) {
        n += c->ack_count[p];
    }
    pthread_mutex_unlock(&c->mu);
    return n;
}

/* ---- faults ---- */

void chk_fault_at(struct checker *c, const char *name, int64_t begin_ms, int64_t end_ms)
{
    ASSERT(c->fault_count < CHK_FAULTS_MAX);
    struct chk_fault *f = &c->faults[c->fault_count++];
    snprintf(f->name, sizeof(f->name), "%s", name);
    f->begin_ms = begin_ms;
    f->end_ms = end_ms;
}

void chk_fault_begin(struct checker *c, const char *name)
{
    chk_fault_end(c);
    chk_fault_at(c, name, clock_mono_ms(), -1);
}

void chk_fault_end(struct checker *c)
{
    if (c->fault_count > 0 && c->faults[c->fault_count - 1].end_ms < 0) {
        c->faults[c->fault_count - 1].end_ms = clock_mono_ms();
    }
}

void chk_run_end_at(struct checker *c, int64_t at_ms) { c->run_end_ms = at_ms; }

void chk_run_end(struct checker *c)
{
    chk_fault_end(c);
    chk_run_end_at(c, clock_mono_ms());
}

/* ---- reads ---- */

struct chk_source *chk_source_add(struct checker *c, const char *name, enum chk_source_kind kind)
{
    if (c->source_count == CHK_SOURCES_MAX) {
        return NULL;
    }
    struct chk_source *s = calloc(1, sizeof(*s));
    ASSERT(s != NULL);
    snprintf(s->name, sizeof(s->name), "%s", name);
    s->kind = kind;
    c->sources[c->source_count++] = s;
    return s;
}

/* Makes l hold offset: grows it to either side, new slots absent. */
static int log_reach(struct chk_log *l, int64_t offset)
{
    if (l->ids == NULL) {
        l->start = offset;
        l->end = offset;
    }
    int64_t start = offset < l->start ? offset : l->start;
    int64_t end = offset >= l->end ? offset + 1 : l->end;
    size_t need = (size_t)(end - start);
    size_t shift = (size_t)(l->start - start);
    if (need > l->cap || shift > 0) {
        size_t cap = l->cap > 0 ? l->cap : 1024;
        while (cap < need) {
            cap *= 2;
        }
        chk_id *ids = calloc(cap, sizeof(*ids));
        if (ids == NULL) {
            return -ENOMEM;
        }
        if (l->ids != NULL) {
            memcpy(ids + shift, l->ids, (size_t)(l->end - l->start) * sizeof(*ids));
        }
        free(l->ids);
        l->ids = ids;
        l->cap = cap;
    }
    l->start = start;
    l->end = end;
    return 0;
}

static chk_id log_at(const struct chk_log *l, int64_t offset)
{
    return l->ids != NULL && offset >= l->start && offset < l->end ? l->ids[offset - l->start]
                                                                   : CHK_ID_ABSENT;
}

int chk_observe(struct checker *c, struct chk_source *s, int32_t partition, int64_t offset,
                chk_id id)
{
    if (partition < 0 || partition >= c->partitions || offset < 0 || id == CHK_ID_ABSENT) {
        return -NG_EBADARG;
    }
    struct chk_log *l = &s->logs[partition];
    int rc = log_reach(l, offset);
    if (rc != 0) {
        return rc;
    }
    chk_id *slot = &l->ids[offset - l->start];
    if (*slot == CHK_ID_ABSENT) {
        *slot = id;
    } else if (*slot != id && s->conflict_count++ == 0) {
        /* The first value stays; the verdict counts the offset as two values. */
        s->conflict_first = (struct chk_conflict){partition, offset, *slot, id};
    }
    s->records++;
    return 0;
}

/* A replica read's buffers: one batch, and its records decompressed. */
struct replica_read {
    struct checker *c;
    struct chk_source *s; /* NULL: only find the end */
    int32_t partition;
    int64_t end; /* one past the last good batch read */
    uint32_t batch_bytes_max;
    uint8_t *batch;
    size_t batch_cap;
    struct batch_zctx z;
    uint8_t *zbuf;
    size_t zbuf_cap;
};

/* Reads the batch at pos of fd (size bytes) expected to start at expect
 * into rr->batch: 0 with *h when it is whole and checks, else why not. */
static int replica_batch_at(struct replica_read *rr, int fd, uint64_t size, uint64_t pos,
                            int64_t expect, struct batch_header *h)
{
    if (size - pos < BATCH_HEADER_BYTES) {
        return -NG_ETRUNCATED;
    }
    int rc = file_pread_all(fd, rr->batch, BATCH_HEADER_BYTES, pos);
    rc = rc == 0 ? batch_header_decode(rr->batch, BATCH_HEADER_BYTES, rr->batch_bytes_max, h) : rc;
    if (rc == 0 && h->offset_base != expect) {
        rc = -NG_EDISCONTINUITY;
    }
    if (rc == 0 && batch_bytes(h) > size - pos) {
        rc = -NG_ETRUNCATED;
    }
    rc = rc == 0 ? file_pread_all(fd, rr->batch, batch_bytes(h), pos) : rc;
    return rc == 0 ? batch_validate(rr->batch, batch_bytes(h), rr->batch_bytes_max, h) : rc;
}

/* Observes every record of the batch in rr->batch. */
static int replica_records(struct replica_read *rr, const struct batch_header *h)
{
    struct batch_reader br;
    int rc = msg_batch_open(&br, rr->batch, batch_bytes(h), &rr->z, &rr->zbuf, &rr->zbuf_cap);
    struct batch_record rec;
    while (rc == 0 && (rc = batch_reader_next(&br, &rec)) == 1) {
        rc = chk_observe(rr->c, rr->s, rr->partition, rec.offset,
                         chk_parse(rec.value, rec.value_len));
    }
    return rc;
}

/* Reads one segment's log: batches from its start until the file ends or
 * a batch does not check (counted: recovery would cut it or step over it). */
static int replica_segment(struct replica_read *rr, int dirfd, int64_t base)
{
    char name[SEG_NAME_BYTES];
    seg_name(name, base, "log");
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        int rc = -errno;
        if (fd >= 0) {
            close(fd);
        }
        return rc;
    }
    uint64_t size = (uint64_t)st.st_size;
    uint64_t pos = 0;
    int64_t expect = base;
    int rc = 0;
    while (rc == 0 && pos < size) {
        struct batch_header h;
        rc = replica_batch_at(rr, fd, size, pos, expect, &h);
        if (rc <= -NG_ERR_FIRST) {
            if (rr->s != NULL) {
                rr->s->bad_batches++;
            }
            rc = 0;
            break;
        }
        if (rc == 0) {
            rc = rr->s != NULL ? replica_records(rr, &h) : 0;
            pos += batch_bytes(&h);
            expect = batch_offset_last(&h) + 1;
            rr->end = expect;
        }
    }
    close(fd);
    return rc;
}

/* Walks every segment of the replica in dir (missing: empty). */
static int replica_walk(struct replica_read *rr, const char *dir)
{
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        return errno == ENOENT ? 0 : -errno;
    }
    struct part_config pc;
    part_config_default(&pc);
    rr->batch_bytes_max = pc.batch_bytes_max;
    rr->batch_cap = pc.batch_bytes_max;
    rr->zbuf_cap = pc.batch_bytes_max;
    rr->batch = malloc(rr->batch_cap);
    rr->zbuf = malloc(rr->zbuf_cap);
    int rc = rr->batch == NULL || rr->zbuf == NULL ? -ENOMEM : 0;
    rc = rc == 0 ? batch_zctx_init(&rr->z, pc.batch_bytes_max, 0) : rc;
    int64_t *bases = NULL;
    uint32_t count = 0;
    rc = rc == 0 ? seg_list(dirfd, &bases, &count) : rc;
    for (uint32_t i = 0; rc == 0 && i < count; i++) {
        rc = replica_segment(rr, dirfd, bases[i]);
    }
    free(bases);
    batch_zctx_fini(&rr->z);
    free(rr->zbuf);
    free(rr->batch);
    close(dirfd);
    return rc;
}

int chk_read_replica(struct checker *c, struct chk_source *s, int32_t partition, const char *dir)
{
    if (partition < 0 || partition >= c->partitions) {
        return -NG_EBADARG;
    }
    struct replica_read rr = {.c = c, .s = s, .partition = partition};
    return replica_walk(&rr, dir);
}

int chk_replica_end(const char *dir, int64_t *end_out)
{
    struct replica_read rr = {.partition = -1};
    int rc = replica_walk(&rr, dir);
    *end_out = rr.end;
    return rc;
}

int chk_read_replica_dir(struct checker *c, struct chk_source *s, const char *data_dir)
{
    int rc = 0;
    for (int32_t p = 0; rc == 0 && p < c->partitions; p++) {
        char dir[512];
        int n = snprintf(dir, sizeof(dir), "%s/topics/%s/%" PRId32, data_dir, c->topic, p);
        rc = n > 0 && (size_t)n < sizeof(dir) ? chk_read_replica(c, s, p, dir) : -NG_ETOOBIG;
    }
    return rc;
}

/* Assigns every partition at its end to learn it (the high watermark the
 * partition's leader gives), then moves each to its start. */
static int consumer_ends(struct checker *c, nagare_consumer *k, int64_t *ends)
{
    int rc = 0;
    for (int32_t p = 0; rc == 0 && p < c->partitions; p++) {
        rc = nagare_consumer_assign(k, c->topic, p, NAGARE_OFFSET_END);
        rc = rc == 0 ? nagare_consumer_position(k, c->topic, p, &ends[p]) : rc;
        rc = rc == 0 ? nagare_consumer_seek(k, c->topic, p, NAGARE_OFFSET_BEGINNING) : rc;
    }
    return rc;
}

/* Where a consumer read stopped short with rc: each partition's position
 * in its range, and its error. */
static void print_read_stop(const struct checker *c, nagare_consumer *k, const int64_t *starts,
                            const int64_t *next, const int64_t *ends, int rc)
{
    const struct nagare_topic_partition *tp = NULL;
    size_t n = 0;
    if (nagare_consumer_assignment(k, &tp, &n) != 0) {
        n = 0;
    }
    for (int32_t p = 0; p < c->partitions; p++) {
        int err = 0;
        for (size_t i = 0; i < n; i++) {
            err = tp[i].partition == p ? tp[i].err : err;
        }
        fprintf(stderr,
                "consumer read (%s): partition %" PRId32 " at %" PRId64 " of [%" PRId64 ", %" PRId64
                "): %s\n",
                nagare_strerror(rc), p, next[p], starts[p], ends[p],
                err != 0 ? nagare_strerror(err) : "no error");
    }
}

int chk_read_consumer(struct checker *c, struct chk_source *s, const char *bootstrap,
                      int timeout_ms)
{
    struct nagare_consumer_config cfg;
    nagare_consumer_config_default(&cfg);
    cfg.bootstrap = bootstrap;
    cfg.fetch_wait_max_ms = 100;
    nagare_consumer *k;
    int rc = nagare_consumer_new(&cfg, &k);
    if (rc != 0) {
        return rc;
    }
    int64_t ends[CHK_PARTITIONS_MAX];
    int64_t starts[CHK_PARTITIONS_MAX];
    int64_t next[CHK_PARTITIONS_MAX];
    rc = consumer_ends(c, k, ends);
    for (int32_t p = 0; rc == 0 && p < c->partitions; p++) {
        rc = nagare_consumer_position(k, c->topic, p, &starts[p]);
        next[p] = starts[p];
    }
    int64_t deadline = clock_mono_ms() + timeout_ms;
    int32_t done = 0;
    while (rc == 0 && done < c->partitions) {
        if (clock_mono_ms() >= deadline) {
            rc = -NAGARE_ETIMEOUT;
            break;
        }
        const struct nagare_message *m;
        int got = nagare_consumer_poll(k, 100, &m);
        if (got == 1) {
            rc = chk_observe(c, s, m->partition, m->offset, chk_parse(m->value, m->value_len));
            next[m->partition] = m->offset + 1;
        } else if (got < 0 && got != -NAGARE_EDISCONNECTED) {
            rc = got;
        }
        done = 0;
        for (int32_t p = 0; p < c->partitions; p++) {
            done += next[p] >= ends[p];
        }
    }
    if (rc != 0 && done < c->partitions) {
        print_read_stop(c, k, starts, next, ends, rc);
    }
    for (int32_t p = 0; rc == 0 && p < c->partitions; p++) {
        /* The consumer covers [start, end) even where it read nothing. */
        if (starts[p] < ends[p]) {
            rc = log_reach(&s->logs[p], starts[p]);
            rc = rc == 0 ? log_reach(&s->logs[p], ends[p] - 1) : rc;
        }
        if (c->hw[p] < 0) {
            c->hw[p] = ends[p];
        }
    }
    s->complete = rc == 0;
    nagare_consumer_destroy(k);
    return rc;
}

void chk_set_hw(struct checker *c, int32_t partition, int64_t hw)
{
    ASSERT(partition >= 0 && partition < c->partitions);
    c->hw[partition] = hw;
}

/* ---- verdict ---- */

static void id_text(char *buf, size_t cap, chk_id id)
{
    if (id == CHK_ID_ABSENT) {
        snprintf(buf, cap, "nothing");
    } else if (id == CHK_ID_FOREIGN) {
        snprintf(buf, cap, "a foreign value");
    } else {
        snprintf(buf, cap, "%" PRIu32 ":%" PRIu64, chk_id_producer(id), chk_id_seq(id));
    }
}

__attribute__((format(printf, 2, 3))) static void problem(struct chk_problem *pb, const char *fmt,
                                                          ...)
{
    if (pb->count < CHK_EXAMPLES_MAX) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(pb->examples[pb->count], sizeof(pb->examples[0]), fmt, ap);
        va_end(ap);
    }
    pb->count++;
}

/* The offsets [lo, hi) some ack or source of partition p holds. */
static void partition_range(const struct checker *c, int32_t p, int64_t *lo, int64_t *hi)
{
    *lo = INT64_MAX;
    *hi = 0;
    for (size_t i = 0; i < c->ack_count[p]; i++) {
        if (c->acks[p][i].offset < 0) {
            continue; /* acknowledged with no offset */
        }
        *lo = c->acks[p][i].offset < *lo ? c->acks[p][i].offset : *lo;
        *hi = c->acks[p][i].offset + 1 > *hi ? c->acks[p][i].offset + 1 : *hi;
    }
    for (uint32_t i = 0; i < c->source_count; i++) {
        const struct chk_log *l = &c->sources[i]->logs[p];
        if (l->ids != NULL) {
            *lo = l->start < *lo ? l->start : *lo;
            *hi = l->end > *hi ? l->end : *hi;
        }
    }
    *lo = *lo > *hi ? *hi : *lo;
}

/* Per partition: the acknowledged value of each offset in [lo, hi). */
struct part_view {
    int32_t p;
    int64_t lo;
    int64_t hi;
    int64_t hw; /* replicas count below it; -1: everywhere */
    chk_id *acked;
};

static bool log_has(const struct chk_log *l, chk_id id)
{
    for (int64_t o = l->start; l->ids != NULL && o < l->end; o++) {
        if (l->ids[o - l->start] == id) {
            return true;
        }
    }
    return false;
}

/* An ack with no offset: read by some source, and by every whole consumer
 * read. */
static void judge_ack_anywhere(const struct checker *c, const struct part_view *v,
                               const struct chk_ack *k, struct chk_result *out)
{
    bool shown = false;
    const char *missed = NULL;
    for (uint32_t j = 0; j < c->source_count; j++) {
        const struct chk_source *s = c->sources[j];
        bool has = log_has(&s->logs[v->p], k->id);
        shown |= has;
        if (s->kind == CHK_CONSUMER && s->complete && !has && missed == NULL) {
            missed = s->name;
        }
    }
    if (!shown || missed != NULL) {
        char a[32];
        id_text(a, sizeof(a), k->id);
        problem(&out->lost, "p%" PRId32 ": %s acknowledged with no offset; %s%s", v->p, a,
                shown ? "not read by " : "no read shows it", shown ? missed : "");
    }
}

static void judge_acks(const struct checker *c, struct part_view *v, struct chk_result *out)
{
    char a[32];
    char b[32];
    for (size_t i = 0; i < c->ack_count[v->p]; i++) {
        const struct chk_ack *k = &c->acks[v->p][i];
        if (k->offset < 0) {
            judge_ack_anywhere(c, v, k, out);
            continue;
        }
        chk_id *slot = &v->acked[k->offset - v->lo];
        if (*slot != CHK_ID_ABSENT && *slot != k->id) {
            id_text(a, sizeof(a), *slot);
            id_text(b, sizeof(b), k->id);
            problem(&out->two_values, "p%" PRId32 "@%" PRId64 ": acknowledged as %s and as %s",
                    v->p, k->offset, a, b);
        }
        *slot = *slot == CHK_ID_ABSENT ? k->id : *slot;
        bool shown = false;
        const char *contradicted = NULL;
        chk_id other = CHK_ID_ABSENT;
        for (uint32_t j = 0; j < c->source_count; j++) {
            const struct chk_source *s = c->sources[j];
            const struct chk_log *l = &s->logs[v->p];
            chk_id got = log_at(l, k->offset);
            shown |= got == k->id;
            /* A whole consumer read must show it: below its end (the high
             * watermark), at its offset. */
            if (s->kind == CHK_CONSUMER && s->complete && got != k->id && contradicted == NULL &&
                (l->ids == NULL || k->offset >= l->start)) {
                contradicted = s->name;
                other = got;
            }
        }
        if (!shown || contradicted != NULL) {
            id_text(a, sizeof(a), k->id);
            id_text(b, sizeof(b), other);
            problem(&out->lost, "p%" PRId32 "@%" PRId64 ": %s acknowledged; %s%s%s", v->p,
                    k->offset, a, shown ? contradicted : "no read shows it", shown ? " read " : "",
                    shown ? b : "");
        }
    }
}

/* Whether source s's value at o counts for the two-values check. */
static bool counts_at(const struct chk_source *s, const struct part_view *v, int64_t o)
{
    return s->kind == CHK_CONSUMER || v->hw < 0 || o < v->hw;
}

static void judge_two_values(const struct checker *c, const struct part_view *v,
                             struct chk_result *out)
{
    for (int64_t o = v->lo; o < v->hi; o++) {
        chk_id first = v->acked[o - v->lo];
        const char *first_by = "the acknowledgement";
        for (uint32_t j = 0; j < c->source_count; j++) {
            const struct chk_source *s = c->sources[j];
            chk_id got = counts_at(s, v, o) ? log_at(&s->logs[v->p], o) : CHK_ID_ABSENT;
            if (got == CHK_ID_ABSENT || got == first) {
                continue;
            }
            if (first == CHK_ID_ABSENT) {
                first = got;
                first_by = s->name;
                continue;
            }
            char a[32];
            char b[32];
            id_text(a, sizeof(a), first);
            id_text(b, sizeof(b), got);
            problem(&out->two_values, "p%" PRId32 "@%" PRId64 ": %s by %s, %s by %s", v->p, o, a,
                    first_by, b, s->name);
            break;
        }
    }
}

static int cmp_id(const void *a, const void *b)
{
    chk_id x = *(const chk_id *)a;
    chk_id y = *(const chk_id *)b;
    return x < y ? -1 : x > y;
}

/* What one source read of one partition: never sent, duplicated, out of
 * order, and its own conflicting reads. */
static void judge_source(const struct checker *c, const struct chk_source *s, int32_t p,
                         struct chk_result *out)
{
    const struct chk_log *l = &s->logs[p];
    size_t n = l->ids != NULL ? (size_t)(l->end - l->start) : 0;
    chk_id *sorted = malloc((n + 1) * sizeof(*sorted));
    ASSERT(sorted != NULL);
    size_t m = 0;
    int64_t last[CHK_PRODUCERS_MAX];
    for (uint32_t i = 0; i < CHK_PRODUCERS_MAX; i++) {
        last[i] = -1;
    }
    char a[32];
    for (size_t i = 0; i < n; i++) {
        chk_id id = l->ids[i];
        int64_t o = l->start + (int64_t)i;
        if (id == CHK_ID_ABSENT) {
            continue;
        }
        uint32_t producer = chk_id_producer(id);
        uint64_t seq = chk_id_seq(id);
        if (id == CHK_ID_FOREIGN || producer >= CHK_PRODUCERS_MAX || seq >= c->sent[producer] ||
            (int32_t)(seq % (uint64_t)c->partitions) != p) {
            id_text(a, sizeof(a), id);
            problem(&out->never_sent, "p%" PRId32 "@%" PRId64 ": %s read by %s", p, o, a, s->name);
            continue;
        }
        if ((int64_t)seq < last[producer]) {
            problem(&out->order_broken,
                    "p%" PRId32 "@%" PRId64 ": %" PRIu32 ":%" PRIu64 " after %" PRIu32 ":%" PRId64
                    " in %s",
                    p, o, producer, seq, producer, last[producer], s->name);
        }
        last[producer] = (int64_t)seq > last[producer] ? (int64_t)seq : last[producer];
        sorted[m++] = id;
    }
    qsort(sorted, m, sizeof(*sorted), cmp_id);
    for (size_t i = 1; i < m; i++) {
        if (sorted[i] == sorted[i - 1]) {
            id_text(a, sizeof(a), sorted[i]);
            problem(&out->duplicated, "p%" PRId32 ": %s twice in %s", p, a, s->name);
        }
    }
    free(sorted);
}

/* The reference value of offset o for the replica check: a consumer's,
 * else the acknowledgement's. */
static chk_id reference_at(const struct checker *c, const struct part_view *v, int64_t o)
{
    for (uint32_t j = 0; j < c->source_count; j++) {
        const struct chk_log *l = &c->sources[j]->logs[v->p];
        if (c->sources[j]->kind == CHK_CONSUMER && l->ids != NULL && o >= l->start && o < l->end) {
            return l->ids[o - l->start];
        }
    }
    return o >= v->lo && o < v->hi ? v->acked[o - v->lo] : CHK_ID_ABSENT;
}

static void judge_replicas(const struct checker *c, const struct part_view *v,
                           struct chk_result *out)
{
    for (uint32_t j = 0; v->hw >= 0 && j < c->source_count; j++) {
        const struct chk_source *s = c->sources[j];
        const struct chk_log *l = &s->logs[v->p];
        if (s->kind != CHK_REPLICA) {
            continue;
        }
        for (int64_t o = l->ids != NULL ? l->start : v->lo; o < v->hw; o++) {
            chk_id got = log_at(l, o);
            chk_id want = reference_at(c, v, o);
            if (got == CHK_ID_ABSENT || (want != CHK_ID_ABSENT && got != want)) {
                char a[32];
                char b[32];
                id_text(a, sizeof(a), got);
                id_text(b, sizeof(b), want);
                problem(&out->replica_diverged,
                        "p%" PRId32 "@%" PRId64 " (below the high watermark %" PRId64
                        "): %s holds %s, not %s",
                        v->p, o, v->hw, s->name, a, b);
            }
        }
    }
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a;
    int64_t y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* The longest stretch in [begin, end) without one of the sorted times[n];
 * *from_out: where it began. */
static int64_t longest_gap(const int64_t *times, size_t n, int64_t begin, int64_t end,
                           int64_t *from_out)
{
    int64_t prev = begin;
    int64_t gap = 0;
    *from_out = begin;
    for (size_t i = 0; i < n && times[i] <= end; i++) {
        if (times[i] > begin) {
            if (times[i] - prev > gap) {
                gap = times[i] - prev;
                *from_out = prev;
            }
            prev = times[i];
        }
    }
    if (end - prev > gap) {
        gap = end - prev;
        *from_out = prev;
    }
    return gap;
}

/* Each fault's longest stretch without an acknowledged write to one
 * partition, the worst partition's: acknowledgements elsewhere do not
 * hide a partition without a leader. */
static void judge_availability(const struct checker *c, struct chk_result *out)
{
    size_t n_max = 0;
    for (int32_t p = 0; p < c->partitions; p++) {
        n_max = c->ack_count[p] > n_max ? c->ack_count[p] : n_max;
    }
    int64_t *times = malloc((n_max + 1) * sizeof(*times));
    ASSERT(times != NULL);
    int64_t run_end = c->run_end_ms >= 0 ? c->run_end_ms : clock_mono_ms();
    out->fault_count = c->fault_count;
    for (uint32_t f = 0; f < c->fault_count; f++) {
        const struct chk_fault *ft = &c->faults[f];
        struct chk_fault_figure *fig = &out->faults[f];
        snprintf(fig->name, sizeof(fig->name), "%s", ft->name);
        int64_t window_end = f + 1 < c->fault_count ? c->faults[f + 1].begin_ms : run_end;
        fig->duration_ms = (ft->end_ms >= 0 ? ft->end_ms : window_end) - ft->begin_ms;
        fig->unavailable_ms = 0;
    }
    for (int32_t p = 0; p < c->partitions; p++) {
        size_t n = c->ack_count[p];
        for (size_t i = 0; i < n; i++) {
            times[i] = c->acks[p][i].at_ms;
        }
        qsort(times, n, sizeof(*times), cmp_i64);
        for (uint32_t f = 0; f < c->fault_count; f++) {
            int64_t begin = c->faults[f].begin_ms;
            int64_t window_end = f + 1 < c->fault_count ? c->faults[f + 1].begin_ms : run_end;
            int64_t from;
            int64_t gap = longest_gap(times, n, begin, window_end, &from);
            struct chk_fault_figure *fig = &out->faults[f];
            if (gap > fig->unavailable_ms) {
                fig->unavailable_ms = gap;
                fig->unavailable_partition = p;
                fig->unavailable_from_ms = from - begin;
            }
        }
    }
    for (uint32_t f = 0; f < c->fault_count; f++) {
        int64_t gap = out->faults[f].unavailable_ms;
        out->unavailable_ms_max = gap > out->unavailable_ms_max ? gap : out->unavailable_ms_max;
    }
    free(times);
}

void chk_verify(struct checker *c, struct chk_result *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&c->mu);
    for (uint32_t i = 0; i < CHK_PRODUCERS_MAX; i++) {
        out->sent += c->sent[i];
    }
    out->delivery_failed = c->delivery_failed;
    for (int32_t p = 0; p < c->partitions; p++) {
        out->acked += c->ack_count[p];
        struct part_view v = {.p = p, .hw = c->hw[p]};
        partition_range(c, p, &v.lo, &v.hi);
        v.acked = calloc((size_t)(v.hi - v.lo) + 1, sizeof(*v.acked));
        ASSERT(v.acked != NULL);
        judge_acks(c, &v, out);
        judge_two_values(c, &v, out);
        for (uint32_t j = 0; j < c->source_count; j++) {
            judge_source(c, c->sources[j], p, out);
        }
        judge_replicas(c, &v, out);
        free(v.acked);
    }
    for (uint32_t j = 0; j < c->source_count; j++) {
        const struct chk_source *s = c->sources[j];
        out->read += s->records;
        if (s->conflict_count > 0) {
            const struct chk_conflict *x = &s->conflict_first;
            char a[32];
            char b[32];
            id_text(a, sizeof(a), x->first);
            id_text(b, sizeof(b), x->second);
            problem(&out->two_values, "p%" PRId32 "@%" PRId64 ": %s read %s, then %s", x->partition,
                    x->offset, s->name, a, b);
            out->two_values.count += s->conflict_count - 1;
        }
    }
    judge_availability(c, out);
    pthread_mutex_unlock(&c->mu);
    out->ok = out->lost.count == 0 && out->two_values.count == 0 && out->never_sent.count == 0 &&
              out->duplicated.count == 0 && out->order_broken.count == 0 &&
              out->replica_diverged.count == 0;
}

static void print_problem(FILE *f, const char *what, const struct chk_problem *pb)
{
    fprintf(f, "  %-18s %" PRIu64 "\n", what, pb->count);
    for (uint64_t i = 0; i < pb->count && i < CHK_EXAMPLES_MAX; i++) {
        fprintf(f, "      %s\n", pb->examples[i]);
    }
}

void chk_print(const struct checker *c, const struct chk_result *r, FILE *f)
{
    fprintf(f,
            "checker: topic %s, %" PRId32 " partitions: %s\n"
            "  sent %" PRIu64 ", acknowledged %" PRIu64 ", failed reports %" PRIu64
            ", records read %" PRIu64 " from %" PRIu32 " sources\n",
            c->topic, c->partitions, r->ok ? "OK" : "PROBLEMS FOUND", r->sent, r->acked,
            r->delivery_failed, r->read, c->source_count);
    for (uint32_t j = 0; j < c->source_count; j++) {
        const struct chk_source *s = c->sources[j];
        fprintf(f, "    %-24s %s, %" PRIu64 " records, %" PRIu64 " bad batches\n", s->name,
                s->kind == CHK_REPLICA ? "replica log" : "consumer", s->records, s->bad_batches);
    }
    print_problem(f, "lost", &r->lost);
    print_problem(f, "two values", &r->two_values);
    print_problem(f, "never sent", &r->never_sent);
    print_problem(f, "duplicated", &r->duplicated);
    print_problem(f, "order broken", &r->order_broken);
    print_problem(f, "replica diverged", &r->replica_diverged);
    for (uint32_t i = 0; i < r->fault_count; i++) {
        const struct chk_fault_figure *fig = &r->faults[i];
        fprintf(f,
                "  fault %-28s lasted %6" PRId64 " ms, longest without an ack %6" PRId64
                " ms (partition %" PRId32 ", from +%" PRId64 " ms)\n",
                fig->name, fig->duration_ms, fig->unavailable_ms, fig->unavailable_partition,
                fig->unavailable_from_ms);
    }
}

/* ---- producers ---- */

void chk_producers_config_default(struct chk_producers_config *cfg)
{
    *cfg = (struct chk_producers_config){.producers = 1,
                                         .outstanding_max = 64,
                                         .delivery_timeout_ms = 120000,
                                         .request_timeout_ms = 5000};
}

static void on_delivery(const struct nagare_delivery *d, void *opaque)
{
    struct chk_producer_ctx *x = opaque;
    chk_id id = make_id(x->index, (uint64_t)(uintptr_t)d->opaque);
    if (d->err == 0) {
        int rc = chk_acked(x->ps->c, d->partition, d->offset, id, clock_mono_ms());
        ASSERT(rc == 0);
    } else {
        chk_delivery_failed(x->ps->c);
    }
}

/* Sends seq (already noted as sent) until the producer takes it. */
static int send_one(struct chk_producers *ps, nagare_producer *np, uint32_t index, uint64_t seq)
{
    char value[CHK_VALUE_BYTES];
    size_t len = chk_value(value, index, seq);
    struct nagare_record r = {.topic = ps->c->topic,
                              .partition = (int32_t)(seq % (uint64_t)ps->c->partitions),
                              .key_len = -1,
                              .value = value,
                              .value_len = (ssize_t)len,
                              .opaque = (void *)(uintptr_t)seq};
    for (;;) {
        int rc = nagare_send(np, &r);
        if (rc != -NAGARE_EBUSY) {
            return rc;
        }
        rc = nagare_producer_poll(np, 50);
        if (rc < 0) {
            return rc;
        }
    }
}

static void *producer_main(void *arg)
{
    struct chk_producer_ctx *x = arg;
    struct chk_producers *ps = x->ps;
    struct nagare_producer_config pc;
    nagare_producer_config_default(&pc);
    pc.bootstrap = ps->cfg.bootstrap;
    pc.acks = -1;
    pc.idempotent = true;
    pc.linger_ms = 2;
    pc.compression = ps->cfg.compress ? NAGARE_COMPRESSION_ZSTD : NAGARE_COMPRESSION_NONE;
    pc.delivery_timeout_ms = ps->cfg.delivery_timeout_ms;
    pc.request_timeout_ms = ps->cfg.request_timeout_ms;
    pc.on_delivery = on_delivery;
    pc.opaque = x;
    nagare_producer *np;
    int rc = nagare_producer_new(&pc, &np);
    if (rc != 0) {
        ps->errors[x->index] = rc;
        return NULL;
    }
    uint64_t seq = 0;
    while (rc == 0 && !__atomic_load_n(&ps->stop, __ATOMIC_ACQUIRE) &&
           (ps->cfg.records_max == 0 || seq < ps->cfg.records_max)) {
        if (nagare_producer_outstanding(np) >= ps->cfg.outstanding_max) {
            rc = nagare_producer_poll(np, 50);
            rc = rc < 0 ? rc : 0;
            continue;
        }
        rc = chk_sent(ps->c, x->index, seq);
        rc = rc == 0 ? send_one(ps, np, x->index, seq) : rc;
        seq++;
        int polled = rc == 0 ? nagare_producer_poll(np, 0) : 0;
        rc = polled < 0 ? polled : rc;
    }
    int flushed = nagare_producer_flush(np, (int)ps->cfg.delivery_timeout_ms);
    ps->errors[x->index] = rc != 0 ? rc : flushed;
    nagare_producer_destroy(np);
    return NULL;
}

int chk_producers_start(struct chk_producers *ps, struct checker *c,
                        const struct chk_producers_config *cfg)
{
    ASSERT(cfg->producers >= 1 && cfg->producers <= CHK_PRODUCERS_MAX);
    ASSERT(cfg->bootstrap != NULL && cfg->outstanding_max > 0);
    memset(ps, 0, sizeof(*ps));
    ps->c = c;
    ps->cfg = *cfg;
    for (uint32_t i = 0; i < cfg->producers; i++) {
        ps->ctx[i] = (struct chk_producer_ctx){.ps = ps, .index = i};
        int rc = pthread_create(&ps->threads[i], NULL, producer_main, &ps->ctx[i]);
        if (rc != 0) {
            return -rc;
        }
        ps->started++;
    }
    return 0;
}

int chk_producers_join(struct chk_producers *ps)
{
    int rc = 0;
    for (uint32_t i = 0; i < ps->started; i++) {
        pthread_join(ps->threads[i], NULL);
        rc = rc == 0 ? ps->errors[i] : rc;
    }
    ps->started = 0;
    return rc;
}

int chk_producers_stop(struct chk_producers *ps)
{
    __atomic_store_n(&ps->stop, true, __ATOMIC_RELEASE);
    return chk_producers_join(ps);
}
