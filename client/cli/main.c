/*
 * client/cli/main.c — `nagare`, the command-line tool: picks a command and
 * hands it the rest of the command line. Each command lives in its own file
 * (topic.c, produce.c, consume.c, group.c, dlq.c, cluster.c) and returns the exit
 * status (cli.h).
 */
#include <stdio.h>
#include <string.h>

#include "base/assert.h"
#include "client/cli/cli.h"

static const struct cli_cmd cli_cmds[] = {
    {"topic", cli_topic_main, "create, list, describe and delete topics"},
    {"produce", cli_produce_main, "send stdin to a topic, one record per line"},
    {"consume", cli_consume_main,
     "print a topic's records, from any offset or time, or as a "
     "group member"},
    {"group", cli_group_main, "list, describe, reset and delete consumer groups"},
    {"dlq", cli_dlq_main, "redrive a dead-letter topic's records to their source"},
    {"cluster", cli_cluster_main, "describe the brokers, leaders and in-sync replicas"},
    {"acl", cli_acl_main, "add, list and delete the broker's ACLs"},
    {"user", cli_user_main, "add, delete and list the users who may log in"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: nagare [--broker HOST:PORT] [--user NAME] COMMAND [options]"
                 "    (nagare COMMAND --help for its options)\n"
                 "\ncommands:\n");
    for (size_t i = 0; i < ARRAY_LEN(cli_cmds); i++) {
        fprintf(out, "  %-9s %s\n", cli_cmds[i].name, cli_cmds[i].summary);
    }
    fprintf(out,
            "\nEvery command takes --broker HOST:PORT and --help, before the command or\n"
            "after it. The broker: the --broker given, else $%s, else %s.\n"
            "--user NAME (else $%s) logs in as NAME, with the password from $%s\n"
            "or asked for on the terminal; --sasl-mechanism SCRAM-SHA-512 instead of\n"
            "SCRAM-SHA-256.\n"
            "Every command also takes, anywhere:\n" CLI_TLS_HELP
            "Exit status: 0 done, 1 failed (one line on stderr says why), 2 bad usage.\n",
            CLI_BROKER_ENV, CLI_BROKER_DEFAULT, CLI_USER_ENV, CLI_PASSWORD_ENV);
}

static bool is_help(const char *s)
{
    return strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0 || strcmp(s, "help") == 0;
}

/* What may come before the command: --broker HOST:PORT (or
 * --broker=HOST:PORT), --user NAME, --sasl-mechanism NAME, --help and
 * --version. */
struct main_opts {
    const char *broker; /* NULL: none given */
    const char *user;   /* NULL: none given */
    const char *mechanism;
    bool help;
    bool version;
};

/* Reads the options before the command into o. Returns the command's index
 * in argv (argc when there is none), or -1 after reporting a bad option. */
static int main_options(int argc, char **argv, struct main_opts *o)
{
    int i = 1;
    for (; i < argc && (argv[i][0] == '-' || strcmp(argv[i], "help") == 0); i++) {
        const char *arg = argv[i];
        if (is_help(arg)) {
            o->help = true;
        } else if (strcmp(arg, "--version") == 0) {
            o->version = true;
        } else if (strncmp(arg, "--broker=", strlen("--broker=")) == 0) {
            o->broker = arg + strlen("--broker=");
        } else if (strcmp(arg, "--broker") == 0 && i + 1 < argc) {
            o->broker = argv[++i];
        } else if (strcmp(arg, "--user") == 0 && i + 1 < argc) {
            o->user = argv[++i];
        } else if (strcmp(arg, "--sasl-mechanism") == 0 && i + 1 < argc) {
            o->mechanism = argv[++i];
        } else {
            bool valued = strcmp(arg, "--broker") == 0 || strcmp(arg, "--user") == 0 ||
                          strcmp(arg, "--sasl-mechanism") == 0;
            fprintf(stderr, "nagare: %s '%s' (try 'nagare --help')\n",
                    valued ? "a value is missing after" : "unknown option", arg);
            return -1;
        }
    }
    return i;
}

static const struct cli_cmd *command(const char *name)
{
    for (size_t i = 0; i < ARRAY_LEN(cli_cmds); i++) {
        if (strcmp(name, cli_cmds[i].name) == 0) {
            return &cli_cmds[i];
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (cli_tls_options(&argc, argv) != 0) {
        return CLI_EXIT_USAGE;
    }
    struct main_opts o = {0};
    int at = main_options(argc, argv, &o);
    if (at < 0) {
        return CLI_EXIT_USAGE;
    }
    if (o.version) {
        printf("nagare %s\n", nagare_version());
        return CLI_EXIT_OK;
    }
    if (o.help && at == argc) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    if (at == argc) {
        fprintf(stderr, "nagare: missing command: topic, produce, consume, group, dlq, cluster "
                        "or user "
                        "(try 'nagare --help')\n");
        return CLI_EXIT_USAGE;
    }
    const struct cli_cmd *cmd = command(argv[at]);
    if (cmd == NULL) {
        fprintf(stderr, "nagare: unknown command '%s' (try 'nagare --help')\n", argv[at]);
        return CLI_EXIT_USAGE;
    }
    if (o.help) { /* nagare --help COMMAND ...: the command's own help */
        char *help_argv[] = {argv[at], "--help", NULL};
        return cmd->run(2, help_argv);
    }
    int st = cli_broker_default_set(o.broker);
    st = st == 0 ? cli_login_set(o.user, o.mechanism) : st;
    if (st != 0) {
        return st;
    }
    int rc = cli_signals_install();
    if (rc < 0) {
        return cli_fail(rc, "installing signal handlers");
    }
    return cmd->run(argc - at, argv + at);
}
