/*
 * client/cli/topic.c — `nagare topic create|list|describe|delete|reassign`:
 * the admin calls of libnagare (nagare_topic_create, nagare_topics_describe,
 * nagare_topic_delete, nagare_partitions_reassign), one request each (two
 * for reassign --all-partitions: the partition count first), every one
 * bounded by CLI_TIMEOUT_MS.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "base/assert.h"
#include "client/cli/cli.h"

/* The wire's "keep forever" in a retention field (nagare.h). */
#define TOPIC_FOREVER (-2)
/* Most partitions a topic may have (docs/protocol.md, PROTO_PARTITIONS_MAX). */
#define TOPIC_PARTITIONS_MAX 4096
/* Most copies of a partition (docs/protocol.md, CreateTopics v1). */
#define TOPIC_REPLICATION_FACTOR_MAX NAGARE_REPLICAS_MAX

static const char topic_usage_text[] =
    "usage: nagare topic create NAME --partitions N [--replication-factor R]\n"
    "                           [--retention-ms MS] [--retention-bytes B]\n"
    "                           [--unclean-leader-election]\n"
    "       nagare topic list\n"
    "       nagare topic describe NAME\n"
    "       nagare topic delete NAME\n"
    "       nagare topic reassign NAME (--partition I | --all-partitions)\n"
    "                             --replicas ID,ID...\n"
    "\n"
    "  create    make a topic of N partitions (1..4096), each with R copies on\n"
    "            different brokers (1..7; a cluster is needed past 1).\n"
    "            --retention-ms and --retention-bytes take a positive number or\n"
    "            'forever'; left out, the broker's defaults apply.\n"
    "            --unclean-leader-election (a cluster only) lets a replica out\n"
    "            of sync lead when no in-sync one is left: the partition keeps\n"
    "            serving, but acknowledged records may be lost.\n"
    "  reassign  move partition I (or every partition) onto the brokers listed\n"
    "            (1..7 distinct ids of live brokers, the first the preferred\n"
    "            leader). A cluster only. The command returns once the cluster\n"
    "            has the request; the controller then adds the new replicas,\n"
    "            waits until they are in sync and drops the others. 'nagare\n"
    "            cluster describe' shows the move until it is done.\n"
    "  list      print every topic's name, one per line, sorted\n"
    "  describe  print a topic's config and, per partition, its earliest and\n"
    "            latest offsets (latest is the offset the next record will get)\n"
    "  delete    delete a topic and all its records\n"
    "\n"
    "options:\n" CLI_BROKER_HELP "  --help               print this help\n";

struct topic_opts {
    const char *cmd; /* "topic create"..., for messages */
    const char *broker;
    const char *name;     /* the NAME operand, or NULL */
    int64_t partitions;   /* -1: not given */
    int64_t retention_ms; /* -1: the broker's default */
    int64_t retention_bytes;
    int64_t replication_factor; /* -1: the broker's default */
    bool unclean;
    bool create_opts;     /* any create-only option given */
    int64_t partition;    /* reassign: -1 not given */
    bool all_partitions;  /* reassign */
    size_t replica_count; /* reassign: 0 not given */
    int32_t replicas[NAGARE_REPLICAS_MAX];
    bool reassign_opts; /* any reassign-only option given */
    bool help;
};

static const struct option topic_longopts[] = {
    {"broker", required_argument, NULL, 'b'},
    {"help", no_argument, NULL, 'h'},
    {"partitions", required_argument, NULL, 'p'},
    {"retention-ms", required_argument, NULL, 'r'},
    {"retention-bytes", required_argument, NULL, 'B'},
    {"replication-factor", required_argument, NULL, 'R'},
    {"unclean-leader-election", no_argument, NULL, 'U'},
    {"partition", required_argument, NULL, 'P'},
    {"all-partitions", no_argument, NULL, 'A'},
    {"replicas", required_argument, NULL, 'L'},
    {NULL, 0, NULL, 0},
};

/* "4,2,3": 1..NAGARE_REPLICAS_MAX distinct broker ids (non-negative
 * i32s). Returns 0 or CLI_EXIT_USAGE (reported). */
static int parse_replicas(struct topic_opts *o, const char *arg)
{
    o->replica_count = 0;
    const char *s = arg;
    for (;;) {
        const char *comma = strchr(s, ',');
        size_t n = comma != NULL ? (size_t)(comma - s) : strlen(s);
        char one[16];
        int64_t id;
        if (n == 0 || n >= sizeof(one)) {
            return cli_usage_error(o->cmd, "--replicas wants broker ids like 4,2,3, not '%s'", arg);
        }
        memcpy(one, s, n);
        one[n] = '\0';
        if (!cli_parse_i64(one, 0, INT32_MAX, &id)) { /* the broker judges the range */
            return cli_usage_error(o->cmd, "--replicas: '%s' is not a broker id", one);
        }
        for (size_t i = 0; i < o->replica_count; i++) {
            if (o->replicas[i] == id) {
                return cli_usage_error(o->cmd, "--replicas names broker %s twice", one);
            }
        }
        if (o->replica_count == NAGARE_REPLICAS_MAX) {
            return cli_usage_error(o->cmd, "--replicas takes at most %d brokers",
                                   NAGARE_REPLICAS_MAX);
        }
        o->replicas[o->replica_count++] = (int32_t)id;
        if (comma == NULL) {
            return 0;
        }
        s = comma + 1;
    }
}

/* A retention value: a positive integer or "forever". */
static bool parse_retention(const char *s, int64_t *out)
{
    if (strcmp(s, "forever") == 0) {
        *out = TOPIC_FOREVER;
        return true;
    }
    return cli_parse_i64(s, 1, INT64_MAX, out);
}

static int topic_option(void *opts, int ch, char **argv)
{
    struct topic_opts *o = opts;
    switch (ch) {
    case 'b':
        return cli_broker_option(o->cmd, optarg, &o->broker);
    case 'h':
        o->help = true;
        return 0;
    case 'p':
        o->create_opts = true;
        if (!cli_parse_i64(optarg, 1, TOPIC_PARTITIONS_MAX, &o->partitions)) {
            return cli_usage_error(o->cmd, "--partitions wants 1..%d, not '%s'",
                                   TOPIC_PARTITIONS_MAX, optarg);
        }
        return 0;
    case 'R':
        o->create_opts = true;
        if (!cli_parse_i64(optarg, 1, TOPIC_REPLICATION_FACTOR_MAX, &o->replication_factor)) {
            return cli_usage_error(o->cmd, "--replication-factor wants 1..%d, not '%s'",
                                   TOPIC_REPLICATION_FACTOR_MAX, optarg);
        }
        return 0;
    case 'U':
        o->create_opts = true;
        o->unclean = true;
        return 0;
    case 'P':
        o->reassign_opts = true;
        if (!cli_parse_i64(optarg, 0, TOPIC_PARTITIONS_MAX - 1, &o->partition)) {
            return cli_usage_error(o->cmd, "--partition wants 0..%d, not '%s'",
                                   TOPIC_PARTITIONS_MAX - 1, optarg);
        }
        return 0;
    case 'A':
        o->reassign_opts = true;
        o->all_partitions = true;
        return 0;
    case 'L':
        o->reassign_opts = true;
        return parse_replicas(o, optarg);
    case 'r':
    case 'B':
        o->create_opts = true;
        if (!parse_retention(optarg, ch == 'r' ? &o->retention_ms : &o->retention_bytes)) {
            return cli_usage_error(o->cmd,
                                   "--retention-%s wants a positive number or "
                                   "'forever', not '%s'",
                                   ch == 'r' ? "ms" : "bytes", optarg);
        }
        return 0;
    default:
        return cli_bad_option(o->cmd, ch, argv);
    }
}

/* Parses argv (argv[0] the subcommand); wants_name: one NAME operand.
 * Returns 0 or CLI_EXIT_USAGE (reported). */
static int topic_parse(struct topic_opts *o, int argc, char **argv, bool wants_name)
{
    int rc = cli_options(argc, argv, topic_longopts, topic_option, o);
    if (rc != 0) {
        return rc;
    }
    if (o->help) {
        return 0;
    }
    return cli_operand(o->cmd, argc, argv, wants_name, "topic NAME", &o->name);
}

/* ---- create ---- */

static int topic_create(struct topic_opts *o)
{
    if (o->partitions < 0) {
        return cli_usage_error(o->cmd, "missing --partitions N");
    }
    nagare_admin *a = NULL;
    int st = cli_admin_connect(o->broker, &a);
    if (st != 0) {
        return st;
    }
    struct nagare_topic_config c;
    nagare_topic_config_default(&c);
    c.partitions = (int32_t)o->partitions;
    c.retention_ms = o->retention_ms;
    c.retention_bytes = o->retention_bytes;
    c.replication_factor = (int16_t)o->replication_factor;
    c.unclean_leader_election = o->unclean;
    int rc = nagare_topic_create(a, o->name, &c);
    nagare_admin_destroy(a);
    if (rc == -NAGARE_ENOT_CLUSTERED) {
        return cli_failf("creating topic %s: --unclean-leader-election needs a cluster (a single "
                         "broker has no leader election)",
                         o->name);
    }
    if (rc == -NAGARE_ENOT_ENOUGH_REPLICAS) {
        return cli_failf("creating topic %s: replication factor %" PRId64
                         " needs a cluster of at least %" PRId64 " live brokers",
                         o->name, o->replication_factor, o->replication_factor);
    }
    if (rc < 0) {
        return cli_fail(rc, "creating topic %s", o->name);
    }
    printf("created topic %s with %" PRId64 " partition%s\n", o->name, o->partitions,
           o->partitions == 1 ? "" : "s");
    return 0;
}

/* ---- delete ---- */

static int topic_delete(struct topic_opts *o)
{
    nagare_admin *a = NULL;
    int st = cli_admin_connect(o->broker, &a);
    if (st != 0) {
        return st;
    }
    int rc = nagare_topic_delete(a, o->name);
    nagare_admin_destroy(a);
    if (rc < 0) {
        return cli_fail(rc, "deleting topic %s", o->name);
    }
    printf("deleted topic %s\n", o->name);
    return 0;
}

/* ---- list ---- */

static int cmp_topic_name(const void *a, const void *b)
{
    const struct nagare_topic_info *const *x = a;
    const struct nagare_topic_info *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

static int topic_print_names(const struct nagare_topic_info *t, size_t count)
{
    const struct nagare_topic_info **sorted = calloc(count > 0 ? count : 1, sizeof(*sorted));
    if (sorted == NULL) {
        return cli_fail(-ENOMEM, "listing topics");
    }
    for (size_t i = 0; i < count; i++) {
        sorted[i] = &t[i];
    }
    if (count > 1) {
        qsort(sorted, count, sizeof(*sorted), cmp_topic_name);
    }
    for (size_t i = 0; i < count; i++) {
        printf("%s\n", sorted[i]->name);
    }
    free(sorted);
    return 0;
}

static int topic_list(struct topic_opts *o)
{
    nagare_admin *a = NULL;
    int st = cli_admin_connect(o->broker, &a);
    if (st != 0) {
        return st;
    }
    const struct nagare_topic_info *t = NULL;
    size_t count = 0;
    int rc = nagare_topics_describe(a, NULL, &t, &count);
    if (rc < 0) {
        nagare_admin_destroy(a);
        return cli_fail(rc, "listing topics");
    }
    st = topic_print_names(t, count);
    nagare_topics_free(a, t);
    nagare_admin_destroy(a);
    return st;
}

/* ---- describe ---- */

/* A config value as the broker holds it: -1 its default, -2 forever. */
static void print_config(const char *key, int64_t v)
{
    if (v == TOPIC_FOREVER) {
        printf("%-17s forever\n", key);
    } else if (v < 0) {
        printf("%-17s broker default\n", key);
    } else {
        printf("%-17s %" PRId64 "\n", key, v);
    }
}

static void topic_print(const struct nagare_topic_info *t)
{
    printf("%-17s %s\n", "topic", t->name);
    printf("%-17s %zu\n", "partitions", t->partition_count);
    if (t->config.replication_factor > 0) {
        printf("%-17s %d\n", "replication", t->config.replication_factor);
    }
    print_config("retention_ms", t->config.retention_ms);
    print_config("retention_bytes", t->config.retention_bytes);
    print_config("segment_bytes", t->config.segment_bytes);
    print_config("batch_bytes_max", t->config.batch_bytes_max);
    printf("\n%-9s %14s %14s %14s\n", "partition", "earliest", "latest", "records");
    for (size_t i = 0; i < t->partition_count; i++) {
        const struct nagare_partition_info *p = &t->partitions[i];
        if (p->err != 0) {
            printf("%-9" PRId32 " error: %s\n", p->partition,
                   nagare_strerror(p->err < 0 ? p->err : -p->err));
            continue;
        }
        printf("%-9" PRId32 " %14" PRId64 " %14" PRId64 " %14" PRId64 "\n", p->partition,
               p->offset_earliest, p->offset_latest, p->offset_latest - p->offset_earliest);
    }
}

static int topic_describe(struct topic_opts *o)
{
    nagare_admin *a = NULL;
    int st = cli_admin_connect(o->broker, &a);
    if (st != 0) {
        return st;
    }
    const struct nagare_topic_info *t = NULL;
    int rc = cli_topic_describe(a, o->name, &t);
    if (rc < 0) {
        st = cli_fail(rc, "describing topic %s", o->name);
    } else {
        topic_print(&t[0]);
    }
    if (t != NULL) {
        nagare_topics_free(a, t);
    }
    nagare_admin_destroy(a);
    return st;
}

/* ---- reassign ---- */

/* The partitions to move: --partition's, or 0..N-1 of the topic. Returns
 * their count (0 after reporting a failure in *st). */
static size_t reassign_partitions(struct topic_opts *o, nagare_admin *a, int32_t *parts, int *st)
{
    if (!o->all_partitions) {
        parts[0] = (int32_t)o->partition;
        return 1;
    }
    const struct nagare_topic_info *t = NULL;
    int rc = cli_topic_describe(a, o->name, &t);
    if (rc < 0) {
        *st = cli_fail(rc, "reassigning topic %s", o->name);
        return 0;
    }
    size_t n = t[0].partition_count;
    nagare_topics_free(a, t);
    for (size_t i = 0; i < n; i++) {
        parts[i] = (int32_t)i;
    }
    return n;
}

#define CLI_STR_(x) #x
#define CLI_STR(x) CLI_STR_(x)

/* What a refused partition's error means here. */
static const char *reassign_why(int err)
{
    switch (err) {
    case -NAGARE_EUNKNOWN_TOPIC:
        return "no such topic or partition";
    case -NAGARE_EBADARG:
        return "a broker listed is not live, or old and new replicas together would be more "
               "than " CLI_STR(NAGARE_REPLICAS_MAX);
    default:
        return nagare_strerror(err);
    }
}

static int topic_reassign(struct topic_opts *o)
{
    if (o->partition < 0 && !o->all_partitions) {
        return cli_usage_error(o->cmd, "missing --partition I or --all-partitions");
    }
    if (o->partition >= 0 && o->all_partitions) {
        return cli_usage_error(o->cmd, "--partition and --all-partitions exclude each other");
    }
    if (o->replica_count == 0) {
        return cli_usage_error(o->cmd, "missing --replicas ID,ID...");
    }
    nagare_admin *a = NULL;
    int st = cli_admin_connect(o->broker, &a);
    if (st != 0) {
        return st;
    }
    static int32_t parts[TOPIC_PARTITIONS_MAX];
    static int errs[TOPIC_PARTITIONS_MAX];
    size_t n = reassign_partitions(o, a, parts, &st);
    int rc = n > 0 ? nagare_partitions_reassign(a, o->name, parts, n, o->replicas, o->replica_count,
                                                errs)
                   : 0;
    nagare_admin_destroy(a);
    if (n == 0) {
        return st;
    }
    if (rc == -NAGARE_ENOT_CLUSTERED) {
        return cli_failf("reassigning topic %s: this broker runs alone; reassignment needs a "
                         "cluster (docs/cluster.md)",
                         o->name);
    }
    bool refused = false; /* some partition's own answer */
    for (size_t i = 0; i < n; i++) {
        refused = refused || errs[i] != 0;
    }
    if (rc < 0 && !refused) {
        return cli_fail(rc, "reassigning topic %s", o->name); /* the request's own error */
    }
    for (size_t i = 0; i < n; i++) {
        if (errs[i] != 0) {
            st = cli_failf("reassigning %s partition %" PRId32 ": %s", o->name, parts[i],
                           reassign_why(errs[i]));
        } else {
            printf("reassigning %s partition %" PRId32 "\n", o->name, parts[i]);
        }
    }
    return st;
}

/* ---- dispatch ---- */

struct topic_sub {
    const char *name;
    const char *cmd;
    bool wants_name;
    int (*run)(struct topic_opts *o);
};

static const struct topic_sub topic_subs[] = {
    {"create", "topic create", true, topic_create},
    {"list", "topic list", false, topic_list},
    {"describe", "topic describe", true, topic_describe},
    {"delete", "topic delete", true, topic_delete},
    {"reassign", "topic reassign", true, topic_reassign},
};

static int topic_run(const struct topic_sub *sub, int argc, char **argv)
{
    struct topic_opts o = {
        .cmd = sub->cmd,
        .broker = cli_broker_default(),
        .partitions = -1,
        .retention_ms = -1,
        .retention_bytes = -1,
        .replication_factor = -1,
        .partition = -1,
    };
    int st = topic_parse(&o, argc, argv, sub->wants_name);
    if (st != 0) {
        return st;
    }
    if (o.help) {
        fputs(topic_usage_text, stdout);
        return 0;
    }
    if (o.create_opts && sub->run != topic_create) {
        return cli_usage_error(o.cmd, "--partitions, --replication-factor, --retention-* and "
                                      "--unclean-leader-election are for 'topic create'");
    }
    if (o.reassign_opts && sub->run != topic_reassign) {
        return cli_usage_error(o.cmd, "--partition, --all-partitions and --replicas are for "
                                      "'topic reassign'");
    }
    st = sub->run(&o);
    int rc = cli_flush_stdout();
    if (rc < 0 && st == 0) {
        st = rc == -EPIPE ? 0 : cli_fail(rc, "writing to stdout");
    }
    return st;
}

int cli_topic_main(int argc, char **argv)
{
    if (argc < 2) {
        return cli_usage_error("topic",
                               "missing subcommand: create, list, describe, delete or reassign");
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(topic_usage_text, stdout);
        return 0;
    }
    for (size_t i = 0; i < ARRAY_LEN(topic_subs); i++) {
        if (strcmp(argv[1], topic_subs[i].name) == 0) {
            return topic_run(&topic_subs[i], argc - 1, argv + 1);
        }
    }
    return cli_usage_error(
        "topic", "unknown subcommand '%s': create, list, describe, delete or reassign", argv[1]);
}
