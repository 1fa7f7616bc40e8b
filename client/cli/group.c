/*
 * client/cli/group.c — `nagare group list|describe|reset-offsets|delete`:
 * the group admin calls of libnagare (nagare_groups_list,
 * nagare_group_describe, nagare_group_reset_offsets, nagare_group_delete),
 * one request each (reset-offsets: two when no --topic is given), every
 * one bounded by CLI_TIMEOUT_MS.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "base/assert.h"
#include "client/cli/cli.h"
#include "client/cli/timestamp.h"

static const char group_usage_text[] =
    "usage: nagare group list\n"
    "       nagare group describe GROUP\n"
    "       nagare group reset-offsets GROUP --to earliest|latest|OFFSET|TIME [--topic T]\n"
    "       nagare group delete GROUP\n"
    "\n"
    "  list           print every group with members or committed offsets:\n"
    "                 its id, kind and member count, sorted by id\n"
    "  describe       print a group's members with the partitions each holds,\n"
    "                 and per committed partition the committed offset, the log\n"
    "                 end, and the lag in records and in ms (now minus the\n"
    "                 timestamp of the next record to consume)\n"
    "  reset-offsets  set a group's committed offsets (the group must have no\n"
    "                 members) in every partition of --topic T, or of every\n"
    "                 topic it has committed offsets in:\n"
    "                   earliest  the oldest record kept\n"
    "                   latest    the end (only records written from now on)\n"
    "                   OFFSET    all digits: that offset (kept within the log)\n"
    "                   TIME      the first record with timestamp >= TIME:\n"
    "                             ISO-8601 with a zone, e.g. 2026-11-28T12:00:00Z,\n"
    "                             or @EPOCH-MS\n"
    "  delete         forget a group's committed offsets (no members allowed)\n"
    "\n"
    "options:\n" CLI_BROKER_HELP "  --help               print this help\n";

struct group_opts {
    const char *cmd; /* "group describe"..., for messages */
    const char *broker;
    const char *name;  /* the GROUP operand, or NULL */
    const char *topic; /* --topic, or NULL */
    const char *to;    /* --to, as given */
    enum nagare_reset_to to_kind;
    int64_t to_value;
    bool help;
};

static const struct option group_longopts[] = {
    {"broker", required_argument, NULL, 'b'},
    {"help", no_argument, NULL, 'h'},
    {"to", required_argument, NULL, 't'},
    {"topic", required_argument, NULL, 'T'},
    {NULL, 0, NULL, 0},
};

/* --to: earliest, latest, all digits (an offset), or a TIME. */
static int group_to_opt(struct group_opts *o, const char *s)
{
    o->to = s;
    if (strcmp(s, "earliest") == 0 || strcmp(s, "latest") == 0) {
        o->to_kind = s[0] == 'e' ? NAGARE_RESET_TO_EARLIEST : NAGARE_RESET_TO_LATEST;
        return 0;
    }
    if (s[0] != '\0' && s[strspn(s, "0123456789")] == '\0') {
        o->to_kind = NAGARE_RESET_TO_OFFSET;
        if (!cli_parse_i64(s, 0, INT64_MAX, &o->to_value)) {
            return cli_usage_error(o->cmd, "--to offset '%s' is too large", s);
        }
        return 0;
    }
    o->to_kind = NAGARE_RESET_TO_TIMESTAMP;
    if (cli_time_parse(s, &o->to_value) < 0 || o->to_value < 0) {
        return cli_usage_error(o->cmd,
                               "--to wants earliest, latest, an OFFSET, or a TIME "
                               "like 2026-11-28T12:00:00Z or @1795867200000, not '%s'",
                               s);
    }
    return 0;
}

static int group_option(void *opts, int ch, char **argv)
{
    struct group_opts *o = opts;
    switch (ch) {
    case 'b':
        return cli_broker_option(o->cmd, optarg, &o->broker);
    case 'h':
        o->help = true;
        return 0;
    case 't':
        return group_to_opt(o, optarg);
    case 'T':
        o->topic = optarg;
        return 0;
    default:
        return cli_bad_option(o->cmd, ch, argv);
    }
}

/* Parses argv (argv[0] the subcommand); wants_name: one GROUP operand.
 * Returns 0 or CLI_EXIT_USAGE (reported). */
static int group_parse(struct group_opts *o, int argc, char **argv, bool wants_name)
{
    int rc = cli_options(argc, argv, group_longopts, group_option, o);
    if (rc != 0) {
        return rc;
    }
    if (o->help) {
        return 0;
    }
    return cli_operand(o->cmd, argc, argv, wants_name, "GROUP", &o->name);
}

static const char *kind_name(int kind)
{
    return kind == NAGARE_GROUP_CONSUMER ? "consumer"
           : kind == NAGARE_GROUP_SHARE  ? "share"
                                         : "unknown";
}

/* ---- list ---- */

static int group_list(struct group_opts *o, nagare_admin *a)
{
    (void)o;
    const struct nagare_group_listing *g = NULL;
    size_t count = 0;
    int rc = nagare_groups_list(a, &g, &count);
    if (rc < 0) {
        return cli_fail(rc, "listing groups");
    }
    /* by id: the broker sends them sorted */
    printf("%-32s %-9s %7s\n", "group", "kind", "members");
    for (size_t i = 0; i < count; i++) {
        printf("%-32s %-9s %7" PRId32 "\n", g[i].group, kind_name(g[i].kind), g[i].member_count);
    }
    nagare_groups_free(a, g);
    return 0;
}

/* ---- describe ---- */

static void print_assignment(const struct nagare_group_member *m)
{
    printf("%-32s", m->member_id);
    const char *topic = NULL;
    for (size_t k = 0; k < m->assignment_count; k++) {
        const struct nagare_topic_partition *tp = &m->assignment[k];
        if (topic != NULL && strcmp(topic, tp->topic) == 0) {
            printf(",%" PRId32, tp->partition);
        } else {
            printf(" %s:%" PRId32, tp->topic, tp->partition);
        }
        topic = tp->topic;
    }
    printf("%s\n", m->assignment_count == 0 ? " (none)" : "");
}

/* A lag figure: "-" when the broker could not tell. */
static void print_lag(int64_t v, int width)
{
    if (v < 0) {
        printf(" %*s", width, "-");
    } else {
        printf(" %*" PRId64, width, v);
    }
}

static void group_print(const struct nagare_group_info *g)
{
    printf("%-17s %s\n", "group", g->group);
    printf("%-17s %s\n", "kind", kind_name(g->kind));
    printf("%-17s %" PRId32 "\n", "generation", g->generation);
    printf("%-17s %zu\n", "members", g->member_count);
    if (g->member_count > 0) {
        printf("\n%-32s %s\n", "member", "partitions");
        for (size_t i = 0; i < g->member_count; i++) {
            print_assignment(&g->members[i]);
        }
    }
    printf("\n%-24s %9s %14s %14s %14s %12s\n", "topic", "partition", "committed", "end", "lag",
           "lag_ms");
    for (size_t i = 0; i < g->offset_count; i++) {
        const struct nagare_group_offset *o = &g->offsets[i];
        printf("%-24s %9" PRId32 " %14" PRId64, o->topic, o->partition, o->committed);
        print_lag(o->end, 14);
        print_lag(o->lag_records, 14);
        print_lag(o->lag_ms, 12);
        printf("\n");
    }
}

static int group_describe(struct group_opts *o, nagare_admin *a)
{
    const struct nagare_group_info *g = NULL;
    int rc = nagare_group_describe(a, o->name, &g);
    if (rc < 0) {
        return cli_fail(rc, "describing group %s", o->name);
    }
    group_print(g);
    nagare_group_info_free(a, g);
    return 0;
}

/* ---- reset-offsets, delete ---- */

static int group_reset(struct group_opts *o, nagare_admin *a)
{
    if (o->to == NULL) {
        return cli_usage_error(o->cmd, "missing --to earliest|latest|OFFSET|TIME");
    }
    const struct nagare_topic_partition *r = NULL;
    size_t n = 0;
    int rc = nagare_group_reset_offsets(a, o->name, o->topic, o->to_kind, o->to_value, &r, &n);
    if (rc < 0) {
        return cli_fail(rc, "resetting group %s%s%s", o->name, o->topic != NULL ? " on " : "",
                        o->topic != NULL ? o->topic : "");
    }
    printf("%-24s %9s %14s\n", "topic", "partition", "offset");
    int st = 0;
    for (size_t i = 0; i < n; i++) {
        if (r[i].err != 0) {
            st = st != 0 ? st
                         : cli_fail(r[i].err, "resetting group %s: %s partition %" PRId32, o->name,
                                    r[i].topic, r[i].partition);
            continue;
        }
        printf("%-24s %9" PRId32 " %14" PRId64 "\n", r[i].topic, r[i].partition, r[i].offset);
    }
    nagare_reset_free(a, r);
    return st;
}

static int group_delete(struct group_opts *o, nagare_admin *a)
{
    int rc = nagare_group_delete(a, o->name);
    if (rc < 0) {
        return cli_fail(rc, "deleting group %s", o->name);
    }
    printf("deleted group %s\n", o->name);
    return 0;
}

/* ---- dispatch ---- */

struct group_sub {
    const char *name;
    const char *cmd;
    bool wants_name;
    int (*run)(struct group_opts *o, nagare_admin *a);
};

static const struct group_sub group_subs[] = {
    {"list", "group list", false, group_list},
    {"describe", "group describe", true, group_describe},
    {"reset-offsets", "group reset-offsets", true, group_reset},
    {"delete", "group delete", true, group_delete},
};

static int group_run(const struct group_sub *sub, int argc, char **argv)
{
    struct group_opts o = {.cmd = sub->cmd, .broker = cli_broker_default()};
    int st = group_parse(&o, argc, argv, sub->wants_name);
    if (st != 0 || o.help) {
        if (o.help) {
            fputs(group_usage_text, stdout);
        }
        return st;
    }
    if ((o.to != NULL || o.topic != NULL) && sub->run != group_reset) {
        return cli_usage_error(o.cmd, "--to and --topic are for 'group reset-offsets'");
    }
    if (sub->run == group_reset && o.to == NULL) {
        return cli_usage_error(o.cmd, "missing --to earliest|latest|OFFSET|TIME");
    }
    nagare_admin *a = NULL;
    st = cli_admin_connect(o.broker, &a);
    if (st != 0) {
        return st;
    }
    st = sub->run(&o, a);
    nagare_admin_destroy(a);
    int rc = cli_flush_stdout();
    if (rc < 0 && st == 0) {
        st = rc == -EPIPE ? 0 : cli_fail(rc, "writing to stdout");
    }
    return st;
}

int cli_group_main(int argc, char **argv)
{
    if (argc < 2) {
        return cli_usage_error("group", "missing subcommand: list, describe, reset-offsets or "
                                        "delete");
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(group_usage_text, stdout);
        return 0;
    }
    for (size_t i = 0; i < ARRAY_LEN(group_subs); i++) {
        if (strcmp(argv[1], group_subs[i].name) == 0) {
            return group_run(&group_subs[i], argc - 1, argv + 1);
        }
    }
    return cli_usage_error("group",
                           "unknown subcommand '%s': list, describe, reset-offsets "
                           "or delete",
                           argv[1]);
}
