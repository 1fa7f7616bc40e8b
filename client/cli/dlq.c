/*
 * client/cli/dlq.c — `nagare dlq redrive TOPIC.dlq`: republishes a
 * dead-letter topic's records to their source topics (nagare_dlq_redrive),
 * one request.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <string.h>

#include "client/cli/cli.h"

/* A redrive republishes the dead-letter topic in durable chunks before it
 * answers: give a large one time (connecting still fails at once on a
 * refused connection). */
#define DLQ_TIMEOUT_MS 60000

static const char dlq_usage_text[] =
    "usage: nagare dlq redrive TOPIC.dlq\n"
    "\n"
    "  redrive   republish the records of dead-letter topic TOPIC.dlq to the\n"
    "            topic and partition each came from (new records there: a share\n"
    "            group delivers them again). A second redrive republishes only\n"
    "            what was dead-lettered since the first. A dead-letter topic\n"
    "            not made yet (nothing was dead-lettered) redrives 0 records.\n"
    "\n"
    "options:\n" CLI_BROKER_HELP "  --help               print this help\n";

static const struct option dlq_longopts[] = {
    {"broker", required_argument, NULL, 'b'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

struct dlq_opts {
    const char *broker;
    const char *topic;
    bool help;
};

static int dlq_option(void *opts, int ch, char **argv)
{
    struct dlq_opts *o = opts;
    if (ch == 'h') {
        o->help = true;
        return 0;
    }
    if (ch == 'b') {
        return cli_broker_option("dlq redrive", optarg, &o->broker);
    }
    return cli_bad_option("dlq redrive", ch, argv);
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

static int dlq_redrive(int argc, char **argv)
{
    struct dlq_opts o = {.broker = cli_broker_default()};
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
    int64_t n = 0;
    rc = nagare_dlq_redrive(a, topic, &n);
    bool none_yet = rc == -NAGARE_EUNKNOWN_TOPIC && cli_dlq_not_yet(a, topic);
    nagare_admin_destroy(a);
    if (rc < 0 && !none_yet) {
        return cli_fail(rc, "redriving %s", topic);
    }
    printf("redrove %" PRId64 " record%s from %s%s\n", n, n == 1 ? "" : "s", topic,
           none_yet ? ": no dead letters yet" : "");
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
