/*
 * client/cli/main.c — `nagare`, the command-line tool: picks a command and
 * hands it the rest of the command line. Each command lives in its own file
 * (topic.c, produce.c, consume.c, group.c, dlq.c) and returns the exit
 * status (cli.h).
 */
#include <stdio.h>
#include <string.h>

#include "base/assert.h"
#include "client/cli/cli.h"

static const struct cli_cmd cli_cmds[] = {
    {"topic", cli_topic_main, "create, list, describe and delete topics"},
    {"produce", cli_produce_main, "send stdin to a topic, one record per line"},
    {"consume", cli_consume_main, "print a topic's records, from any offset or time, or as a "
                                  "group member"},
    {"group", cli_group_main, "list, describe, reset and delete consumer groups"},
    {"dlq", cli_dlq_main, "redrive a dead-letter topic's records to their source"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: nagare COMMAND [options]    (nagare COMMAND --help for its options)\n"
                 "\ncommands:\n");
    for (size_t i = 0; i < ARRAY_LEN(cli_cmds); i++) {
        fprintf(out, "  %-9s %s\n", cli_cmds[i].name, cli_cmds[i].summary);
    }
    fprintf(out, "\nEvery command takes --broker HOST:PORT (default %s) and --help.\n"
                 "Exit status: 0 done, 1 failed (one line on stderr says why), 2 bad usage.\n",
            CLI_BROKER_DEFAULT);
}

static bool is_help(const char *s)
{
    return strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0 || strcmp(s, "help") == 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "nagare: missing command: topic, produce, consume, group or dlq "
                        "(try 'nagare --help')\n");
        return CLI_EXIT_USAGE;
    }
    if (is_help(argv[1])) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("nagare %s\n", nagare_version());
        return CLI_EXIT_OK;
    }
    int rc = cli_signals_install();
    if (rc < 0) {
        return cli_fail(rc, "installing signal handlers");
    }
    for (size_t i = 0; i < ARRAY_LEN(cli_cmds); i++) {
        if (strcmp(argv[1], cli_cmds[i].name) == 0) {
            return cli_cmds[i].run(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "nagare: unknown command '%s' (try 'nagare --help')\n", argv[1]);
    return CLI_EXIT_USAGE;
}
