/*
 * client/cli/cli.h — what the `nagare` command-line tool's commands share:
 * exit statuses, the one-line error reports, strict number parsing and the
 * stop flag set by SIGINT/SIGTERM.
 *
 * Invariants. The tool speaks to the broker only through the public API
 * (client/nagare.h). Every command returns its exit status: 0 done, 1 an
 * operational error (reported as one line "nagare: <what>: <why>" on
 * stderr), 2 a usage error (one line naming the mistake). Nothing here
 * allocates; everything runs on the main thread.
 */
#ifndef NAGARE_CLI_H
#define NAGARE_CLI_H

#include <signal.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "base/clock.h"
#include "client/nagare.h"

enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAIL = 1,
    CLI_EXIT_USAGE = 2,
};

#define CLI_BROKER_DEFAULT "127.0.0.1:7420"
/* A --broker list as libnagare takes it (its bootstrap lists are shorter
 * than 1 KiB), NUL included. */
#define CLI_BROKER_BYTES_MAX 1024
/* The environment variable that names the broker when no --broker does. */
#define CLI_BROKER_ENV "NAGARE_BROKER"
/* --broker's line in every command's --help. */
#define CLI_BROKER_HELP                                                                \
    "  --broker HOST:PORT   the broker, or a list HOST:PORT,HOST:PORT tried in turn\n" \
    "                       (default: $" CLI_BROKER_ENV ", else " CLI_BROKER_DEFAULT ")\n"

/* TLS to the broker: options any command takes, before or after the
 * command's name (main() takes them out of argv first), and environment
 * variables for when they are not given. A CA or a client certificate
 * implies --tls. */
#define CLI_TLS_HELP                                                                     \
    "  --tls                speak TLS to the broker ($NAGARE_TLS=1), verifying its\n"    \
    "                       certificate against the system's CAs or --tls-ca\n"          \
    "  --tls-ca FILE        PEM CAs the broker's certificate must chain to\n"            \
    "                       ($NAGARE_TLS_CA)\n"                                          \
    "  --tls-cert FILE      PEM client certificate, for mutual TLS ($NAGARE_TLS_CERT)\n" \
    "  --tls-key FILE       its private key, if not in --tls-cert ($NAGARE_TLS_KEY)\n"

/* Takes the TLS options out of argv (anywhere after argv[0], up to a
 * "--"), compacting it and updating *argc, and settles the TLS settings
 * from them and the environment. Returns 0, or CLI_EXIT_USAGE after
 * reporting an option without its value. */
int cli_tls_options(int *argc, char **argv);

/* The TLS settings every connection uses (enabled false: plaintext). */
const struct nagare_tls *cli_tls(void);

/* How long connecting and each admin request may take. Short, so that an
 * unreachable broker fails the command within a few seconds instead of
 * after the library's 30 s default. */
#define CLI_TIMEOUT_MS 5000

/* Set by SIGINT and SIGTERM once cli_signals_install() ran; commands check
 * it between steps and finish cleanly (a consumer stops, a producer stops
 * reading stdin and flushes what it has). */
extern volatile sig_atomic_t cli_stop;

/* Installs the SIGINT/SIGTERM handlers (without SA_RESTART, so a blocked
 * read() returns EINTR) and ignores SIGPIPE, so that a closed stdout shows
 * up as EPIPE from a write. Returns 0 or -errno. */
int cli_signals_install(void);

/* One command of the tool: argv[0] is the command's own name. */
struct cli_cmd {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

/* The commands (client/cli/topic.c, produce.c, consume.c, group.c, dlq.c,
 * cluster.c, acl.c). */
int cli_topic_main(int argc, char **argv);
int cli_produce_main(int argc, char **argv);
int cli_consume_main(int argc, char **argv);
int cli_group_main(int argc, char **argv);
int cli_dlq_main(int argc, char **argv);
int cli_cluster_main(int argc, char **argv);
int cli_acl_main(int argc, char **argv);
int cli_user_main(int argc, char **argv);

/* Prints "nagare: <cmd>: <message> (try 'nagare <cmd> --help')" on stderr.
 * Returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints "nagare: <what>: <nagare_strerror(rc)>" on stderr, what formatted
 * from fmt. Returns CLI_EXIT_FAIL. */
int cli_fail(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints "nagare: <message>" on stderr. Returns CLI_EXIT_FAIL. */
int cli_failf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The usage error for the option getopt_long() just refused: ch is what it
 * returned (':' for a missing argument, '?' for an unknown option). */
int cli_bad_option(const char *cmd, int ch, char **argv);

/* One option getopt_long() returned (ch, with optarg) applied to opts.
 * Returns 0 or CLI_EXIT_USAGE (reported). */
typedef int (*cli_option_fn)(void *opts, int ch, char **argv);

/* Runs getopt_long() over argv (argv[0] the subcommand) from the start,
 * GNU-style (operands may come between options), handing each option to
 * each(opts, ...); stops at its first nonzero return, which it returns.
 * Options take no short forms but -h. Afterwards optind is at the first
 * operand. */
int cli_options(int argc, char **argv, const struct option *longopts, cli_option_fn each,
                void *opts);

/* After getopt_long: the operands left in argv[optind..argc). Takes exactly
 * one into *out when wants_one (else none, *out NULL). Returns 0 or
 * CLI_EXIT_USAGE (reported: "missing <what>" or the unexpected operand). */
int cli_operand(const char *cmd, int argc, char **argv, bool wants_one, const char *what,
                const char **out);

/* Parses a whole decimal integer in [lo, hi]: optional '-' only when lo < 0,
 * digits only, no blanks. Returns true with *out. */
bool cli_parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out);

/* --broker's value: *out = arg when it looks like HOST:PORT with a
 * non-empty host and a port in 1..65535 (the library resolves the host),
 * or a comma list of them.
 * Returns 0 or CLI_EXIT_USAGE (reported for cmd). */
int cli_broker_option(const char *cmd, const char *arg, const char **out);

/* Sets the broker the commands use when their own --broker does not say:
 * option (a --broker given before the command) when not NULL, else
 * $NAGARE_BROKER when set and not empty, else CLI_BROKER_DEFAULT. Called by
 * main() before the command runs. Returns 0 or CLI_EXIT_USAGE (reported:
 * the value that is not HOST:PORT, and where it came from). */
int cli_broker_default_set(const char *option);

/* The broker cli_broker_default_set() chose (CLI_BROKER_DEFAULT before it
 * ran): the initial value of each command's --broker. Points into argv,
 * the environment or static storage; valid for the process's life. */
const char *cli_broker_default(void);

/* Logging in (docs/security.md): the user from --user before the command,
 * else $NAGARE_USER; its password from $NAGARE_PASSWORD, else asked on the
 * terminal (never a command-line argument: other users of the machine can
 * read those). */
#define CLI_USER_ENV "NAGARE_USER"
#define CLI_PASSWORD_ENV "NAGARE_PASSWORD"

/* Sets who every command logs in as: user (NULL: $NAGARE_USER; neither:
 * nobody) with mechanism (NULL: SCRAM-SHA-256), reading the password.
 * Called by main() before the command runs. Returns 0 or CLI_EXIT_USAGE
 * (reported: no password to be had). */
int cli_login_set(const char *user, const char *mechanism);

/* Who to log in as, for a client's config (user NULL: nobody). Its strings
 * live as long as the process. */
struct nagare_login cli_login(void);

/* Connects an admin client to broker with CLI_TIMEOUT_MS per call, logged
 * in as cli_login() says. Returns
 * 0 with *out, or reports "nagare: connecting to BROKER: why" and returns
 * CLI_EXIT_FAIL. */
int cli_admin_connect(const char *broker, nagare_admin **out);

/* Describes one topic: 0 with *out (free it with nagare_topics_free()), or
 * the error: the call's, -NAGARE_EUNKNOWN_TOPIC when the broker has no such
 * topic, or the topic's own (then *out is NULL). */
int cli_topic_describe(nagare_admin *a, const char *topic, const struct nagare_topic_info **out);

/* The dead-letter topics' suffix: "<topic>.dlq" holds topic's dead letters
 * (the broker makes it with the first one). */
#define CLI_DLQ_SUFFIX ".dlq"

/* Whether topic, which the broker does not have, names the dead-letter
 * topic of a topic it has: "<source>.dlq" with source a topic. Then it
 * reads as empty (nothing was dead-lettered yet), not as an unknown topic.
 * Asks the broker through a (one describe). */
bool cli_dlq_not_yet(nagare_admin *a, const char *topic);

/* Flushes stdout. Returns 0, or -errno of the failed write (-EPIPE when the
 * reader went away). */
int cli_flush_stdout(void);

#endif
