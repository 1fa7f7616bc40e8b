/*
 * client/cli/consume_group.c — `nagare consume TOPIC --group G` (a member
 * of consumer group G: libnagare's subscribe, poll, commit) and `nagare
 * consume TOPIC --share G` (a member of share group G: share poll, one
 * acknowledgement per record).
 *
 * Invariants. Nothing is committed or acknowledged before it was written
 * to stdout: the group member commits (auto-commit off) only right after
 * stdout was flushed, and the share member keeps the records it printed
 * in a bounded list that is flushed, then acknowledged, before any poll
 * that could send acknowledgements. So a record counts as consumed only
 * once it reached the reader (at least once: a crash in between prints it
 * again). The topic is described first, so a missing one fails at once.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "base/assert.h"
#include "client/cli/cli.h"
#include "client/cli/consume.h"

/* How long one poll waits when nothing is buffered; also how quickly a
 * signal is noticed. */
#define GROUP_POLL_MS 200
#define GROUP_REQUEST_TIMEOUT_MS 10000
/* Without --follow: a member that got no partition gives up after this
 * (the group's others hold them all); a share member stops when nothing
 * came for SHARE_IDLE_MS. */
#define GROUP_NONE_MS 15000
#define SHARE_IDLE_MS 1000
/* Commit no more often than this while records keep coming. */
#define GROUP_COMMIT_MS 1000
/* Records printed and not yet acknowledged, at most. */
#define SHARE_PRINTED_MAX 512
/* Most partitions the end-at-start table tracks (the protocol's limit). */
#define GROUP_PARTS_MAX 4096

struct grun {
    const struct consume_opts *o;
    const struct fmt *f;
    int64_t *stop; /* per partition: the log end when it started */
    size_t part_count;
    int64_t printed;
    int64_t started_ms;
    int64_t committed_ms;   /* last commit (group) */
    int64_t last_record_ms; /* share: when a record last came */
    nagare_consumer *c;
    nagare_share_consumer *sc;
    int64_t acks[SHARE_PRINTED_MAX]; /* share: offsets printed, by partition below */
    int32_t ack_parts[SHARE_PRINTED_MAX];
    size_t ack_count;
};

/* The topic's partitions and their ends now. */
static int grun_describe(struct grun *r)
{
    nagare_admin *a = NULL;
    int st = cli_admin_connect(r->o->broker, &a);
    if (st != 0) {
        return st;
    }
    const struct nagare_topic_info *t = NULL;
    int rc = cli_topic_describe(a, r->o->topic, &t);
    if (rc == 0 && t[0].partition_count > GROUP_PARTS_MAX) {
        rc = -NAGARE_ETOOBIG;
    }
    r->stop = rc == 0 ? calloc(t[0].partition_count + 1, sizeof(*r->stop)) : NULL;
    rc = rc == 0 && r->stop == NULL ? -ENOMEM : rc;
    for (size_t i = 0; rc == 0 && i < t[0].partition_count; i++) {
        const struct nagare_partition_info *p = &t[0].partitions[i];
        if (p->partition >= 0 && (size_t)p->partition < t[0].partition_count) {
            r->stop[p->partition] = p->offset_latest;
        }
    }
    r->part_count = rc == 0 ? t[0].partition_count : 0;
    st = rc < 0 ? cli_fail(rc, "consume %s", r->o->topic) : 0;
    if (t != NULL) {
        nagare_topics_free(a, t);
    }
    nagare_admin_destroy(a);
    return st;
}

static int grun_print(struct grun *r, const struct nagare_message *m)
{
    struct fmt_out out = {.f = stdout};
    if (r->o->json) {
        fmt_print_json(&out, m);
    } else {
        fmt_print(&out, r->f, m);
    }
    r->printed++;
    return out.err;
}

static bool grun_more(const struct grun *r)
{
    return !cli_stop && !(r->o->count > 0 && r->printed >= r->o->count);
}

/* ---- --group ---- */

/* Without --follow: done once every partition it holds reached its end
 * at start, or when it got none for GROUP_NONE_MS. */
static int group_done(struct grun *r, bool *done)
{
    *done = false;
    if (r->o->follow) {
        return 0;
    }
    const struct nagare_topic_partition *v;
    size_t n = 0;
    int rc = nagare_consumer_assignment(r->c, &v, &n);
    if (rc < 0) {
        return rc;
    }
    if (n == 0) {
        *done = clock_mono_ms() - r->started_ms >= GROUP_NONE_MS;
        return 0;
    }
    bool all = true;
    for (size_t i = 0; i < n && all; i++) {
        int32_t p = v[i].partition;
        all = p >= 0 && (size_t)p < r->part_count && v[i].offset >= r->stop[p];
    }
    *done = all;
    return 0;
}

/* Flushes stdout, then commits what was printed (async while running,
 * at most every GROUP_COMMIT_MS; sync at the end). */
static int group_flush_commit(struct grun *r, bool final, const char **what)
{
    *what = "writing to stdout";
    int rc = cli_flush_stdout();
    if (rc < 0) {
        return rc;
    }
    int64_t now = clock_mono_ms();
    if (!final && now - r->committed_ms < GROUP_COMMIT_MS) {
        return 0;
    }
    r->committed_ms = now;
    *what = "committing offsets";
    rc = nagare_consumer_commit(r->c, !final);
    /* A busy connection or a rebalance under way: the next commit covers it. */
    return !final && (rc == -NAGARE_EBUSY || rc == -NAGARE_EREBALANCE ||
                      rc == -NAGARE_EUNKNOWN_MEMBER)
               ? 0
               : rc;
}

static int group_step(struct grun *r, const char **what, bool *done)
{
    const struct nagare_message *m = NULL;
    *what = "fetching";
    int rc = nagare_consumer_poll(r->c, 0, &m);
    if (rc == 0) {
        rc = group_flush_commit(r, false, what);
        rc = rc == 0 ? group_done(r, done) : rc;
        if (rc == 0 && !*done) {
            *what = "fetching";
            rc = nagare_consumer_poll(r->c, GROUP_POLL_MS, &m);
        }
    }
    if (rc > 0) {
        *what = "writing to stdout";
        bool at_end = m->partition >= 0 && (size_t)m->partition < r->part_count &&
                      m->offset + 1 >= r->stop[m->partition];
        rc = grun_print(r, m);
        /* records keep coming while producers write: check at each end */
        rc = rc == 0 && at_end ? group_done(r, done) : rc;
    }
    return rc == -EINTR ? 0 : rc;
}

static int group_connect(struct grun *r)
{
    struct nagare_consumer_config cc;
    nagare_consumer_config_default(&cc);
    cc.tls = *cli_tls();
    cc.bootstrap = r->o->broker;
    cc.login = cli_login();
    cc.reset = r->o->from == FROM_END ? NAGARE_RESET_LATEST : NAGARE_RESET_EARLIEST;
    cc.request_timeout_ms = GROUP_REQUEST_TIMEOUT_MS;
    cc.auto_commit = false; /* committed here, after stdout was flushed */
    int rc = nagare_consumer_new(&cc, &r->c);
    if (rc < 0) {
        return cli_fail(rc, "connecting to %s", r->o->broker);
    }
    const char *topics[] = {r->o->topic};
    rc = nagare_consumer_subscribe(r->c, r->o->group, topics, 1);
    if (rc < 0) {
        return cli_fail(rc, "consume %s: joining group %s", r->o->topic, r->o->group);
    }
    return 0;
}

static int group_run(struct grun *r)
{
    int st = group_connect(r);
    const char *what = "fetching";
    int rc = 0;
    for (bool done = false; st == 0 && rc >= 0 && !done && grun_more(r);) {
        rc = group_step(r, &what, &done);
    }
    if (st == 0 && rc >= 0) {
        rc = group_flush_commit(r, true, &what);
    }
    if (st == 0 && rc == -EPIPE) {
        st = CLI_EXIT_OK; /* the reader has had enough (| head): nothing more committed */
    } else if (st == 0 && rc < 0) {
        st = cli_fail(rc, "consume %s --group %s: %s", r->o->topic, r->o->group, what);
    }
    nagare_consumer_destroy(r->c); /* leaves the group */
    return st;
}

/* ---- --share ---- */

/* Flushes stdout, then acknowledges what was printed. */
static int share_ack_printed(struct grun *r, const char **what)
{
    *what = "writing to stdout";
    int rc = cli_flush_stdout();
    enum nagare_ack_type type = r->o->reject ? NAGARE_ACK_REJECT : NAGARE_ACK_ACCEPT;
    for (size_t i = 0; rc == 0 && i < r->ack_count; i++) {
        *what = "acknowledging";
        rc = nagare_share_ack_offset(r->sc, r->o->topic, r->ack_parts[i], r->acks[i], type);
    }
    if (rc == 0) {
        r->ack_count = 0;
    }
    return rc;
}

static int share_step(struct grun *r, const char **what, bool *done)
{
    const struct nagare_message *m = NULL;
    *what = "fetching";
    int rc = r->ack_count < SHARE_PRINTED_MAX ? nagare_share_poll(r->sc, 0, &m) : 0;
    if (rc == 0) {
        rc = share_ack_printed(r, what);
        *done = rc == 0 && !r->o->follow && clock_mono_ms() - r->last_record_ms >= SHARE_IDLE_MS;
        if (rc == 0 && !*done) {
            *what = "fetching";
            rc = nagare_share_poll(r->sc, GROUP_POLL_MS, &m);
        }
    }
    if (rc > 0) {
        r->last_record_ms = clock_mono_ms();
        *what = "writing to stdout";
        r->acks[r->ack_count] = m->offset;
        r->ack_parts[r->ack_count++] = m->partition;
        rc = grun_print(r, m);
    }
    return rc == -EINTR ? 0 : rc;
}

static int share_connect(struct grun *r)
{
    struct nagare_share_consumer_config c;
    nagare_share_consumer_config_default(&c);
    c.tls = *cli_tls();
    c.bootstrap = r->o->broker;
    c.login = cli_login();
    c.request_timeout_ms = GROUP_REQUEST_TIMEOUT_MS;
    c.fetch_wait_max_ms = GROUP_POLL_MS;
    /* Acquire no more than asked for: the rest would be released, which
     * counts as a delivery. */
    if (r->o->count > 0 && r->o->count < (int64_t)c.records_max) {
        c.records_max = (uint32_t)r->o->count;
    }
    c.close_ack = NAGARE_ACK_RELEASE; /* only what reached stdout is accepted */
    int rc = nagare_share_consumer_new(&c, &r->sc);
    if (rc < 0) {
        return cli_fail(rc, "connecting to %s", r->o->broker);
    }
    const char *topics[] = {r->o->topic};
    rc = nagare_share_subscribe(r->sc, r->o->share, topics, 1);
    if (rc < 0) {
        return cli_fail(rc, "consume %s: joining share group %s", r->o->topic, r->o->share);
    }
    return 0;
}

static int share_run(struct grun *r)
{
    int st = share_connect(r);
    const char *what = "fetching";
    int rc = 0;
    r->last_record_ms = clock_mono_ms();
    for (bool done = false; st == 0 && rc >= 0 && !done && grun_more(r);) {
        rc = share_step(r, &what, &done);
    }
    if (st == 0 && rc >= 0) {
        rc = share_ack_printed(r, &what);
    }
    if (st == 0 && rc >= 0) {
        what = "acknowledging";
        rc = nagare_share_commit(r->sc);
    }
    if (st == 0 && rc == -EPIPE) {
        st = CLI_EXIT_OK; /* unacknowledged records are released by destroy */
    } else if (st == 0 && rc < 0) {
        st = cli_fail(rc, "consume %s --share %s: %s", r->o->topic, r->o->share, what);
    }
    nagare_share_consumer_destroy(r->sc);
    return st;
}

int cli_consume_grouped(const struct consume_opts *o, const struct fmt *f)
{
    ASSERT((o->group != NULL) != (o->share != NULL));
    struct grun *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        return cli_fail(-ENOMEM, "consume %s", o->topic);
    }
    *r = (struct grun){.o = o, .f = f, .started_ms = clock_mono_ms()};
    int st = grun_describe(r);
    if (st == 0) {
        st = o->group != NULL ? group_run(r) : share_run(r);
    }
    free(r->stop);
    free(r);
    return st;
}
