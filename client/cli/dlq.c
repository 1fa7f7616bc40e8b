/*
 * client/cli/dlq.c — `nagare dlq redrive TOPIC.dlq`: republishes a
 * dead-letter topic's records to their source topics in bounded steps
 * (nagare_dlq_redrive_step), each resuming at the marks the one before
 * committed, with a progress line on a terminal.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include "base/progress.h"
#include "client/cli/cli.h"

/* A step republishes its records in durable chunks before it answers:
 * give a large one time (connecting still fails at once on a refused
 * connection). */
#define DLQ_TIMEOUT_MS 60000
/* Dead letters one step reads unless --step-records says otherwise: a few
 * seconds' work at most, so the progress line moves and an interrupt
 * stops soon. */
#define DLQ_STEP_RECORDS_DEFAULT 10000

static const char dlq_usage_text[] =
    "usage: nagare dlq redrive TOPIC.dlq [options]\n"
    "\n"
    "  redrive   republish the records of dead-letter topic TOPIC.dlq to the\n"
    "            topic and partition each came from (new records there: a share\n"
    "            group delivers them again). A second redrive republishes only\n"
    "            what was dead-lettered since the first. A dead-letter topic\n"
    "            not made yet (nothing was dead-lettered) redrives 0 records.\n"
    "            It goes in steps, each committed before the next: an\n"
    "            interrupted redrive (Ctrl-C, a broker restart) resumes where\n"
    "            it stopped when run again, republishing nothing twice. On a\n"
    "            terminal, stderr shows its progress.\n"
    "\n"
    "options:\n"
    "  --step-records N     dead letters read per request (default 10000)\n" CLI_BROKER_HELP
    "  --help               print this help\n";

static const struct option dlq_longopts[] = {
    {"broker", required_argument, NULL, 'b'},
    {"step-records", required_argument, NULL, 's'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

struct dlq_opts {
    const char *broker;
    const char *topic;
    int32_t step_records;
    bool help;
};

static int dlq_option(void *opts, int ch, char **argv)
{
    struct dlq_opts *o = opts;
    int64_t v;
    switch (ch) {
    case 'h':
        o->help = true;
        return 0;
    case 'b':
        return cli_broker_option("dlq redrive", optarg, &o->broker);
    case 's':
        if (!cli_parse_i64(optarg, 1, INT32_MAX, &v)) {
            return cli_usage_error("dlq redrive", "--step-records wants a number >= 1, not '%s'",
                                   optarg);
        }
        o->step_records = (int32_t)v;
        return 0;
    default:
        return cli_bad_option("dlq redrive", ch, argv);
    }
}

/* Parses `redrive`'s options and operand. Returns 0 (o->help set for
 * --help) or CLI_EXIT_USAGE (reported). */
static int dlq_parse(struct dlq_opts *o, int argc, char **argv)
{
    int rc = cli_options(argc, argv, dlq_longopts, dlq_option, o);
    if (rc != 0 || o->help) {
        return rc;
    }
    return cli_operand("dlq redrive", argc, argv, true, "TOPIC.dlq", &o->topic);
}

/* What the steps did. */
struct dlq_run {
    int64_t records; /* republished */
    int64_t read;
    int64_t remaining; /* after the last step */
    bool stopped;      /* by a signal, with some left */
};

/* Steps until what there was at the first step is read (dead letters
 * arriving meanwhile wait for the next redrive, as
 * nagare_dlq_redrive() does), showing progress. Returns 0 or the step's
 * error (r says what the steps before it did). */
static int dlq_steps(nagare_admin *a, const struct dlq_opts *o, struct dlq_run *r)
{
    struct progress progress;
    int64_t total = -1;
    struct nagare_redrive_step st;
    int rc;
    do {
        rc = nagare_dlq_redrive_step(a, o->topic, o->step_records, &st);
        if (rc != 0) {
            break;
        }
        r->records += st.records;
        r->read += st.read;
        r->remaining = st.remaining;
        if (total < 0) {
            total = st.read + st.remaining;
            progress_start_items(&progress, STDERR_FILENO, false, "redriving", "records",
                                 (uint64_t)total);
        }
        progress_update(&progress, 0, (uint64_t)r->read);
        r->stopped = cli_stop && st.remaining > 0;
    } while (st.remaining > 0 && r->read < total && st.read > 0 && !cli_stop);
    if (total >= 0) {
        progress_clear(&progress);
    }
    return rc;
}

static int dlq_redrive(int argc, char **argv)
{
    struct dlq_opts o = {.broker = cli_broker_default(), .step_records = DLQ_STEP_RECORDS_DEFAULT};
    int st = dlq_parse(&o, argc, argv);
    if (st != 0 || o.help) {
        if (o.help) {
            fputs(dlq_usage_text, stdout);
        }
        return st;
    }
    const char *broker = o.broker;
    const char *topic = o.topic;
    nagare_admin *a = NULL;
    struct nagare_login login = cli_login();
    int rc = nagare_admin_new_secure(broker, DLQ_TIMEOUT_MS, &login, cli_tls(), &a);
    if (rc < 0) {
        return cli_fail(rc, "connecting to %s", broker);
    }
    struct dlq_run run = {0};
    rc = dlq_steps(a, &o, &run);
    bool none_yet = rc == -NAGARE_EUNKNOWN_TOPIC && cli_dlq_not_yet(a, topic);
    nagare_admin_destroy(a);
    if (rc < 0 && !none_yet) {
        return run.records > 0
                   ? cli_fail(rc, "redriving %s (after %" PRId64 " records)", topic, run.records)
                   : cli_fail(rc, "redriving %s", topic);
    }
    int64_t n = run.records;
    printf("redrove %" PRId64 " record%s from %s%s", n, n == 1 ? "" : "s", topic,
           none_yet ? ": no dead letters yet" : "");
    if (run.stopped) {
        printf(": stopped, %" PRId64 " left (run it again to go on)", run.remaining);
    }
    putchar('\n');
    rc = cli_flush_stdout();
    return rc < 0 && rc != -EPIPE ? cli_fail(rc, "writing to stdout") : 0;
}
int cli_dlq_main(int argc, char **argv)
{
    if (argc < 2) {
        return cli_usage_error("dlq", "missing subcommand: redrive");
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(dlq_usage_text, stdout);
        return 0;
    }
    if (strcmp(argv[1], "redrive") == 0) {
        return dlq_redrive(argc - 1, argv + 1);
    }
    return cli_usage_error("dlq", "unknown subcommand '%s': redrive", argv[1]);
}
