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
    "            what was dead-lettered since the first.\n"
    "\n"
    "options:\n"
    "  --broker HOST:PORT   the broker (default " CLI_BROKER_DEFAULT ")\n"
    "  --help               print this help\n";

static const struct option dlq_longopts[] = {
    {"broker", required_argument, NULL, 'b'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Parses `redrive`'s options and operand. Returns 0 (*help set for
 * --help) or CLI_EXIT_USAGE (reported). */
static int dlq_parse(int argc, char **argv, const char **broker, const char **topic,
                     bool *help)
{
    int ch;
    optind = 0;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":h", dlq_longopts, NULL)) != -1) {
        if (ch == 'h') {
            *help = true;
        } else if (ch == 'b' && cli_broker_ok(optarg)) {
            *broker = optarg;
        } else if (ch == 'b') {
            return cli_usage_error("dlq redrive", "--broker wants HOST:PORT, not '%s'", optarg);
        } else {
            return cli_bad_option("dlq redrive", ch, argv);
        }
    }
    if (*help) {
        return 0;
    }
    if (optind >= argc) {
        return cli_usage_error("dlq redrive", "missing TOPIC.dlq");
    }
    if (optind + 1 < argc) {
        return cli_usage_error("dlq redrive", "unexpected argument '%s'", argv[optind + 1]);
    }
    *topic = argv[optind];
    return 0;
}

static int dlq_redrive(int argc, char **argv)
{
    const char *broker = CLI_BROKER_DEFAULT;
    const char *topic = NULL;
    bool help = false;
    int st = dlq_parse(argc, argv, &broker, &topic, &help);
    if (st != 0 || help) {
        if (help) {
            fputs(dlq_usage_text, stdout);
        }
        return st;
    }
    nagare_admin *a = NULL;
    int rc = nagare_admin_new(broker, DLQ_TIMEOUT_MS, &a);
    if (rc < 0) {
        return cli_fail(rc, "connecting to %s", broker);
    }
    int64_t n = 0;
    rc = nagare_dlq_redrive(a, topic, &n);
    nagare_admin_destroy(a);
    if (rc < 0) {
        return cli_fail(rc, "redriving %s", topic);
    }
    printf("redrove %" PRId64 " record%s from %s\n", n, n == 1 ? "" : "s", topic);
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
