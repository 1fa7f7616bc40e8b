/*
 * client/cli/consume.c — `nagare consume TOPIC`: reads partitions through
 * one libnagare consumer (assigned partitions, no group) and prints each
 * record through a --format template or as JSON. With --group or --share
 * it reads as a group member instead (client/cli/consume_group.c); the
 * options are parsed here for both.
 *
 * The admin API names the topic's partitions (nagare_topics_describe());
 * where each starts and stops comes from its leader, through the consumer
 * (assigned at the end, then moved to its start by --from: ListOffsets at
 * the leader each time), because in a cluster the broker that described
 * the topic may follow the partition, and a follower's offsets lag its
 * leader's. Without --follow a partition is done once the consumer's
 * position reaches the end it had at start-up, so the command ends even
 * while producers keep writing.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/assert.h"
#include "client/cli/cli.h"
#include "client/cli/consume.h"
#include "client/cli/format.h"
#include "client/cli/timestamp.h"

/* How long one consumer poll waits when nothing is buffered; also how
 * quickly a signal is noticed. */
#define CONSUME_POLL_MS 200
/* A fetch long-polls 500 ms; a request still unanswered after this is the
 * library's to retry. */
#define CONSUME_REQUEST_TIMEOUT_MS 10000
/* Room for the "why" of a bad --format. */
#define CONSUME_WHY_BYTES 96

static const char consume_usage_text[] =
    "usage: nagare consume TOPIC [options]\n"
    "\n"
    "Prints TOPIC's records, by default each value on its own line. Without\n"
    "--follow it stops at the end of the partitions as they were when it\n"
    "started; with --follow it waits for new records until interrupted.\n"
    "\n"
    "options:\n"
    "  --partition P        read only partition P (default: all partitions)\n"
    "  --from WHERE         where to start in each partition (default beginning):\n"
    "                         beginning   the oldest record kept\n"
    "                         end         after the newest (only new records)\n"
    "                         OFFSET      all digits, e.g. 42: that offset (an\n"
    "                                     offset outside a partition's range starts\n"
    "                                     at its nearest end)\n"
    "                         TIME        the first record with timestamp >= TIME:\n"
    "                                     ISO-8601 with a zone, e.g.\n"
    "                                     2026-11-28T12:00:00Z,\n"
    "                                     2026-11-28T12:00:00.250+01:00,\n"
    "                                     or @EPOCH-MS, e.g. @1795867200000\n"
    "  --count N            exit after N records\n"
    "  --follow             keep waiting for new records (stop with Ctrl-C)\n"
    "  --group G            read as a member of consumer group G: the broker\n"
    "                       shares TOPIC's partitions among G's members, and each\n"
    "                       starts at G's committed offset (else at --from\n"
    "                       beginning|end); what is printed is committed. Without\n"
    "                       --follow it stops once the partitions it holds reach\n"
    "                       the end they had when it started (or when it got none\n"
    "                       within 15 s)\n"
    "  --share G            read as a member of share group G (a queue): each\n"
    "                       record goes to one member at a time; each one printed\n"
    "                       is accepted. Without --follow it stops when nothing\n"
    "                       has come for 1 s\n"
    "  --reject             with --share: reject every record printed instead (it\n"
    "                       goes to the dead-letter topic TOPIC.dlq)\n"
    "  --format FMT         print each record through FMT:\n"
    "                         %t topic  %p partition  %o offset\n"
    "                         %T timestamp (ms since the epoch)\n"
    "                         %k key  %v value (raw bytes; nothing when null)\n"
    "                         %h headers as k=v,k=v   %% a '%'\n"
    "                         \\n newline  \\t tab  \\\\ backslash\n"
    "                       (default '%v\\n'), e.g. --format '%p:%o %k=%v\\n'\n"
    "  --json               print one JSON object per line instead: topic,\n"
    "                       partition, offset, timestamp_ms, key, value (null when\n"
    "                       null) and headers [{\"key\":..,\"value\":..}]; bytes that\n"
    "                       are not UTF-8 appear as \\u00XX escapes\n" CLI_BROKER_HELP
    "  --help               print this help\n";

/* One partition being read. */
struct consume_part {
    int32_t partition;
    int64_t start; /* first offset to read */
    int64_t stop;  /* without --follow: done at this offset */
    bool done;
};

struct consume_run {
    const struct consume_opts *o;
    struct fmt fmt;
    struct consume_part *parts;
    size_t part_count;
    size_t parts_left; /* not yet done (without --follow) */
    int64_t printed;
    nagare_consumer *c;
};

static const struct option consume_longopts[] = {
    {"broker", required_argument, NULL, 'b'},    {"help", no_argument, NULL, 'h'},
    {"partition", required_argument, NULL, 'p'}, {"from", required_argument, NULL, 'f'},
    {"count", required_argument, NULL, 'c'},     {"follow", no_argument, NULL, 'F'},
    {"format", required_argument, NULL, 'o'},    {"json", no_argument, NULL, 'j'},
    {"group", required_argument, NULL, 'g'},     {"share", required_argument, NULL, 's'},
    {"reject", no_argument, NULL, 'R'},          {NULL, 0, NULL, 0},
};

/* ---- options ---- */

/* --from: beginning, end, all digits (an offset), or a TIME. */
static int consume_from_opt(struct consume_opts *o, const char *s)
{
    o->from_given = true;
    if (strcmp(s, "beginning") == 0 || strcmp(s, "end") == 0) {
        o->from = s[0] == 'b' ? FROM_BEGINNING : FROM_END;
        return 0;
    }
    if (s[strspn(s, "0123456789")] == '\0' && s[0] != '\0') {
        o->from = FROM_OFFSET;
        if (!cli_parse_i64(s, 0, INT64_MAX, &o->from_value)) {
            return cli_usage_error("consume", "--from offset '%s' is too large", s);
        }
        return 0;
    }
    o->from = FROM_TIME;
    if (cli_time_parse(s, &o->from_value) < 0) {
        return cli_usage_error("consume",
                               "--from wants beginning, end, an OFFSET, or a TIME "
                               "like 2026-11-28T12:00:00Z or @1795867200000, not '%s'",
                               s);
    }
    return 0;
}

static int consume_option(void *opts, int ch, char **argv)
{
    struct consume_opts *o = opts;
    int64_t v;
    switch (ch) {
    case 'b':
        return cli_broker_option("consume", optarg, &o->broker);
    case 'h':
        o->help = true;
        return 0;
    case 'p':
        if (!cli_parse_i64(optarg, 0, INT32_MAX, &v)) {
            return cli_usage_error("consume", "--partition wants a number >= 0, not '%s'", optarg);
        }
        o->partition = (int32_t)v;
        return 0;
    case 'f':
        return consume_from_opt(o, optarg);
    case 'c':
        if (!cli_parse_i64(optarg, 1, INT64_MAX, &o->count)) {
            return cli_usage_error("consume", "--count wants a number >= 1, not '%s'", optarg);
        }
        return 0;
    case 'F':
        o->follow = true;
        return 0;
    case 'o':
        o->format = optarg;
        return 0;
    case 'j':
        o->json = true;
        return 0;
    case 'g':
    case 's':
        if (optarg[0] == '\0') {
            return cli_usage_error("consume", "--%s wants a group id",
                                   ch == 'g' ? "group" : "share");
        }
        *(ch == 'g' ? &o->group : &o->share) = optarg;
        return 0;
    case 'R':
        o->reject = true;
        return 0;
    default:
        return cli_bad_option("consume", ch, argv);
    }
}

/* The group options' combinations (client/cli/consume.h). */
static int consume_check_groups(const struct consume_opts *o)
{
    if (o->group != NULL && o->share != NULL) {
        return cli_usage_error("consume", "--group and --share exclude each other");
    }
    if (o->reject && o->share == NULL) {
        return cli_usage_error("consume", "--reject needs --share");
    }
    bool grouped = o->group != NULL || o->share != NULL;
    if (grouped && o->partition >= 0) {
        return cli_usage_error("consume",
                               "--partition does not go with --%s: the group "
                               "decides",
                               o->group != NULL ? "group" : "share");
    }
    if (o->share != NULL && o->from_given) {
        return cli_usage_error("consume", "--from does not go with --share: a share group "
                                          "starts at the beginning");
    }
    if (o->group != NULL && (o->from == FROM_OFFSET || o->from == FROM_TIME)) {
        return cli_usage_error("consume", "with --group, --from takes beginning or end (where "
                                          "partitions without a committed offset start)");
    }
    return 0;
}

static int consume_parse(struct consume_opts *o, int argc, char **argv)
{
    int rc = cli_options(argc, argv, consume_longopts, consume_option, o);
    if (rc != 0) {
        return rc;
    }
    if (o->help) {
        return 0;
    }
    if (o->json && o->format != NULL) {
        return cli_usage_error("consume", "--json and --format exclude each other");
    }
    rc = consume_check_groups(o);
    return rc != 0 ? rc : cli_operand("consume", argc, argv, true, "TOPIC", &o->topic);
}

/* ---- where each partition starts and stops ---- */

/* Fills r->parts from the topic's description (their offsets come later,
 * consume_bounds()). Returns 0 or the exit status of a reported failure. */
static int consume_plan(struct consume_run *r, const struct nagare_topic_info *t)
{
    const struct consume_opts *o = r->o;
    r->parts = calloc(t->partition_count > 0 ? t->partition_count : 1, sizeof(*r->parts));
    if (r->parts == NULL) {
        return cli_fail(-ENOMEM, "consume %s", o->topic);
    }
    for (size_t i = 0; i < t->partition_count; i++) {
        const struct nagare_partition_info *p = &t->partitions[i];
        if (o->partition >= 0 && p->partition != o->partition) {
            continue;
        }
        if (p->err != 0) {
            return cli_fail(p->err < 0 ? p->err : -p->err, "consume %s: partition %" PRId32,
                            o->topic, p->partition);
        }
        r->parts[r->part_count++] = (struct consume_part){.partition = p->partition};
    }
    if (r->part_count == 0) {
        return cli_failf("consume %s: no partition %" PRId32 " (the topic has %zu)", o->topic,
                         o->partition, t->partition_count);
    }
    return 0;
}

/* A dead-letter topic not made yet: nothing to read, said on stderr (stdout
 * is the records'). Following it fails: there is no topic to follow until
 * the first dead letter makes it. */
static int consume_no_dead_letters(const struct consume_run *r)
{
    if (r->o->follow) {
        return cli_failf("consume %s: no dead letters yet, so nothing to follow (the first one "
                         "makes the topic)",
                         r->o->topic);
    }
    fprintf(stderr, "nagare: %s: no dead letters yet\n", r->o->topic);
    return CLI_EXIT_OK;
}

/* Asks the broker about the topic and plans the partitions; a dead-letter
 * topic not made yet has none. */
static int consume_describe(struct consume_run *r)
{
    nagare_admin *a = NULL;
    int st = cli_admin_connect(r->o->broker, &a);
    if (st != 0) {
        return st;
    }
    const struct nagare_topic_info *t = NULL;
    int rc = cli_topic_describe(a, r->o->topic, &t);
    if (rc == -NAGARE_EUNKNOWN_TOPIC && cli_dlq_not_yet(a, r->o->topic)) {
        st = consume_no_dead_letters(r);
    } else if (rc < 0) {
        st = cli_fail(rc, "consume %s", r->o->topic);
    } else {
        st = consume_plan(r, &t[0]);
    }
    if (t != NULL) {
        nagare_topics_free(a, t);
    }
    nagare_admin_destroy(a);
    return st;
}

/* ---- reading ---- */

/* Moves partition cp (assigned, at its end) to where --from says. */
static int consume_seek_start(struct consume_run *r, const struct consume_part *cp)
{
    const struct consume_opts *o = r->o;
    int64_t earliest = 0;
    int rc = 0;
    switch (o->from) {
    case FROM_BEGINNING:
        return nagare_consumer_seek(r->c, o->topic, cp->partition, NAGARE_OFFSET_BEGINNING);
    case FROM_END:
        return 0;
    case FROM_OFFSET:
        /* Within [log start, end]: the log start first. */
        rc = nagare_consumer_seek(r->c, o->topic, cp->partition, NAGARE_OFFSET_BEGINNING);
        rc = rc == 0 ? nagare_consumer_position(r->c, o->topic, cp->partition, &earliest) : rc;
        if (rc == 0 && o->from_value > earliest) {
            rc = nagare_consumer_seek(r->c, o->topic, cp->partition,
                                      o->from_value < cp->stop ? o->from_value : cp->stop);
        }
        return rc;
    case FROM_TIME: /* no record that late: the end */
        return nagare_consumer_seek_time(r->c, o->topic, cp->partition, o->from_value);
    }
    UNREACHABLE();
}

/* Assigns partition cp and sets where it stops (its leader's end now) and
 * starts; done at once when there is nothing between. */
static int consume_bounds(struct consume_run *r, struct consume_part *cp)
{
    const char *topic = r->o->topic;
    int rc = nagare_consumer_assign(r->c, topic, cp->partition, NAGARE_OFFSET_END);
    rc = rc == 0 ? nagare_consumer_position(r->c, topic, cp->partition, &cp->stop) : rc;
    rc = rc == 0 ? consume_seek_start(r, cp) : rc;
    rc = rc == 0 ? nagare_consumer_position(r->c, topic, cp->partition, &cp->start) : rc;
    if (rc == 0) {
        cp->done = !r->o->follow && cp->start >= cp->stop;
        r->parts_left += !cp->done;
    }
    return rc;
}

static int consume_connect(struct consume_run *r)
{
    struct nagare_consumer_config cc;
    nagare_consumer_config_default(&cc);
    cc.tls = *cli_tls();
    cc.bootstrap = r->o->broker;
    cc.login = cli_login();
    cc.reset = NAGARE_RESET_EARLIEST; /* records deleted under us: go on after them */
    cc.request_timeout_ms = CONSUME_REQUEST_TIMEOUT_MS;
    int rc = nagare_consumer_new(&cc, &r->c);
    if (rc < 0) {
        return cli_fail(rc, "connecting to %s", r->o->broker);
    }
    for (size_t i = 0; i < r->part_count; i++) {
        rc = consume_bounds(r, &r->parts[i]);
        if (rc < 0) {
            return cli_fail(rc, "consume %s: finding partition %" PRId32 "'s start and end",
                            r->o->topic, r->parts[i].partition);
        }
    }
    return 0;
}

static struct consume_part *consume_find(struct consume_run *r, int32_t partition)
{
    for (size_t i = 0; i < r->part_count; i++) {
        if (r->parts[i].partition == partition) {
            return &r->parts[i];
        }
    }
    return NULL;
}

static void consume_mark_done(struct consume_run *r, struct consume_part *cp)
{
    if (!r->o->follow && !cp->done) {
        cp->done = true;
        r->parts_left--;
    }
}

/* Prints m unless it is past its partition's stop. Returns 0 or -errno of
 * the failed write. */
static int consume_message(struct consume_run *r, const struct nagare_message *m)
{
    struct consume_part *cp = consume_find(r, m->partition);
    if (cp == NULL || cp->done) {
        return 0;
    }
    if (!r->o->follow && m->offset >= cp->stop) {
        consume_mark_done(r, cp);
        return 0;
    }
    struct fmt_out out = {.f = stdout};
    if (r->o->json) {
        fmt_print_json(&out, m);
    } else {
        fmt_print(&out, &r->fmt, m);
    }
    r->printed++;
    if (!r->o->follow && m->offset + 1 >= cp->stop) {
        consume_mark_done(r, cp);
    }
    return out.err;
}

/* Nothing buffered: a partition whose position passed its stop is done
 * (its last records were deleted by retention, say). */
static int consume_check_positions(struct consume_run *r)
{
    for (size_t i = 0; i < r->part_count && !r->o->follow; i++) {
        struct consume_part *cp = &r->parts[i];
        int64_t pos = 0;
        if (cp->done) {
            continue;
        }
        int rc = nagare_consumer_position(r->c, r->o->topic, cp->partition, &pos);
        if (rc < 0) {
            return rc;
        }
        if (pos >= cp->stop) {
            consume_mark_done(r, cp);
        }
    }
    return 0;
}

static bool consume_more(const struct consume_run *r)
{
    bool counted_out = r->o->count > 0 && r->printed >= r->o->count;
    return !cli_stop && !counted_out && (r->o->follow || r->parts_left > 0);
}

/* The next record, flushing stdout first whenever none is waiting. Returns
 * 1 with *m, 0 for none yet, or a negative error; *what names the step. */
static int consume_next(struct consume_run *r, const struct nagare_message **m, const char **what)
{
    int rc = nagare_consumer_poll(r->c, 0, m);
    if (rc != 0) {
        *what = "fetching";
        return rc;
    }
    *what = "writing to stdout";
    rc = cli_flush_stdout();
    if (rc == 0) {
        *what = "checking positions";
        rc = consume_check_positions(r);
    }
    if (rc == 0 && consume_more(r)) {
        *what = "fetching";
        rc = nagare_consumer_poll(r->c, CONSUME_POLL_MS, m);
    }
    return rc;
}

/* After poll's -NAGARE_ECORRUPT: names the partition, the offsets it could
 * not read and, when the broker reported a damaged range, where reading
 * resumes past it (its records are lost). Returns the exit status. */
static int consume_corrupt(const struct consume_run *r)
{
    const struct nagare_topic_partition *tp;
    size_t n = 0;
    if (nagare_consumer_assignment(r->c, &tp, &n) != 0) {
        n = 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (tp[i].err != -NAGARE_ECORRUPT) {
            continue;
        }
        int64_t end;
        if (nagare_consumer_corrupt_end(r->c, r->o->topic, tp[i].partition, &end) != 0) {
            return cli_fail(-NAGARE_ECORRUPT,
                            "consume %s: partition %" PRId32 " at offset %" PRId64, r->o->topic,
                            tp[i].partition, tp[i].offset);
        }
        return cli_failf("consume %s: partition %" PRId32 ": offsets [%" PRId64 ", %" PRId64
                         ") are damaged on the broker and lost (%s); to read on past them: "
                         "--partition %" PRId32 " --from %" PRId64,
                         r->o->topic, tp[i].partition, tp[i].offset, end,
                         nagare_strerror(-NAGARE_ECORRUPT), tp[i].partition, end);
    }
    return cli_fail(-NAGARE_ECORRUPT, "consume %s: fetching", r->o->topic);
}

/* Reads until done. Returns the exit status. */
static int consume_loop(struct consume_run *r)
{
    const char *what = "fetching";
    int rc = 0;
    while (consume_more(r) && rc >= 0) {
        const struct nagare_message *m = NULL;
        rc = consume_next(r, &m, &what);
        if (rc == -EINTR) {
            rc = 0;
        } else if (rc > 0) {
            what = "writing to stdout";
            rc = consume_message(r, m);
        }
    }
    if (rc >= 0) {
        what = "writing to stdout";
        rc = cli_flush_stdout();
    }
    if (rc == -EPIPE) {
        return CLI_EXIT_OK; /* the reader has had enough (| head) */
    }
    if (rc == -NAGARE_ECORRUPT) {
        return consume_corrupt(r);
    }
    return rc < 0 ? cli_fail(rc, "consume %s: %s", r->o->topic, what) : CLI_EXIT_OK;
}

int cli_consume_main(int argc, char **argv)
{
    struct consume_opts o = {.broker = cli_broker_default(), .partition = -1};
    int st = consume_parse(&o, argc, argv);
    if (st != 0 || o.help) {
        if (o.help) {
            fputs(consume_usage_text, stdout);
        }
        return st;
    }
    struct consume_run r = {.o = &o};
    char why[CONSUME_WHY_BYTES];
    if (fmt_compile(&r.fmt, o.format != NULL ? o.format : FMT_DEFAULT, why, sizeof(why)) < 0) {
        return cli_usage_error("consume", "bad --format: %s", why);
    }
    if (!isatty(STDOUT_FILENO) && setvbuf(stdout, NULL, _IOFBF, 1u << 16) != 0) {
        return cli_fail(-ENOMEM, "consume %s: buffering stdout", o.topic);
    }
    if (o.group != NULL || o.share != NULL) {
        return cli_consume_grouped(&o, &r.fmt);
    }
    st = consume_describe(&r);
    if (st == 0 && r.part_count > 0) { /* none: a dead-letter topic not made yet */
        st = consume_connect(&r);
    }
    if (st == 0) {
        st = consume_loop(&r);
    }
    if (r.c != NULL) {
        nagare_consumer_destroy(r.c);
    }
    free(r.parts);
    return st;
}
