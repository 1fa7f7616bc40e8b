/*
 * client/cli/user.c — `nagare user add|delete|list`: the users who may log
 * in (nagare_user_set, nagare_user_delete, nagare_users_list). The new
 * user's password comes from $NAGARE_USER_PASSWORD or the first line of
 * standard input, never from the command line.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "client/cli/cli.h"

/* The environment variable holding the password `user add` sets (apart
 * from $NAGARE_PASSWORD, which is the password this tool logs in with). */
#define USER_PASSWORD_ENV "NAGARE_USER_PASSWORD"
/* A password's longest line: libnagare takes 1024 bytes. */
#define USER_PASSWORD_BYTES_MAX 1024

static const char user_usage_text[] =
    "usage: nagare user add NAME [--mechanism M] [--iterations N]\n"
    "       nagare user delete NAME [--mechanism M]\n"
    "       nagare user list\n"
    "\n"
    "  add       add user NAME, or give it a new password: the password from\n"
    "            $" USER_PASSWORD_ENV ", else the first line of standard input.\n"
    "            The broker keeps a SCRAM credential of it, never the password.\n"
    "  delete    delete user NAME (its connections stay logged in until they close)\n"
    "  list      list the users and the mechanisms each can log in with\n"
    "\n"
    "options:\n"
    "  --mechanism M        SCRAM-SHA-256 or SCRAM-SHA-512 (default: both)\n"
    "  --iterations N       PBKDF2 iterations of the credential, 4096..16384\n"
    "                       (default 4096)\n" CLI_BROKER_HELP
    "  --help               print this help\n"
    "\n"
    "Users may be added while the broker does not require logins; the first\n"
    "user of a broker that does: nagared --add-user NAME DATA_DIR (offline).\n";

static const struct option user_longopts[] = {
    {"broker", required_argument, NULL, 'b'},
    {"mechanism", required_argument, NULL, 'm'},
    {"iterations", required_argument, NULL, 'i'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

struct user_opts {
    const char *cmd; /* "user add"... */
    const char *broker;
    const char *mechanism; /* NULL: both */
    uint32_t iterations;   /* 0: the library's default */
    const char *name;
    bool help;
};

static int user_option(void *opts, int ch, char **argv)
{
    struct user_opts *o = opts;
    int64_t v = 0;
    switch (ch) {
    case 'h':
        o->help = true;
        return 0;
    case 'b':
        return cli_broker_option(o->cmd, optarg, &o->broker);
    case 'm':
        if (strcmp(optarg, "SCRAM-SHA-256") != 0 && strcmp(optarg, "SCRAM-SHA-512") != 0) {
            return cli_usage_error(o->cmd, "--mechanism wants SCRAM-SHA-256 or SCRAM-SHA-512");
        }
        o->mechanism = optarg;
        return 0;
    case 'i':
        if (!cli_parse_i64(optarg, 4096, 16384, &v)) {
            return cli_usage_error(o->cmd, "--iterations wants 4096..16384, not '%s'", optarg);
        }
        o->iterations = (uint32_t)v;
        return 0;
    default:
        return cli_bad_option(o->cmd, ch, argv);
    }
}

/* The new user's password: $NAGARE_USER_PASSWORD or stdin's first line. */
static int new_password(char *buf, size_t cap)
{
    const char *env = getenv(USER_PASSWORD_ENV);
    if (env != NULL) {
        if (strlen(env) >= cap) {
            return -NAGARE_EBADARG;
        }
        strcpy(buf, env);
        return 0;
    }
    if (fgets(buf, (int)cap, stdin) == NULL) {
        return -EIO;
    }
    buf[strcspn(buf, "\r\n")] = '\0';
    return buf[0] != '\0' ? 0 : -NAGARE_EBADARG;
}

static int user_run(struct user_opts *o, char sub)
{
    static char pw[USER_PASSWORD_BYTES_MAX + 2];
    if (sub == 'a' && new_password(pw, sizeof(pw)) != 0) {
        return cli_failf("user add %s: no password: set $%s or give it as standard input's "
                         "first line (1 to %d bytes)",
                         o->name, USER_PASSWORD_ENV, USER_PASSWORD_BYTES_MAX);
    }
    nagare_admin *a = NULL;
    int st = cli_admin_connect(o->broker, &a);
    if (st != 0) {
        return st;
    }
    int rc = 0;
    if (sub == 'a') {
        rc = nagare_user_set(a, o->name, pw, o->mechanism, o->iterations);
        explicit_bzero(pw, sizeof(pw));
    } else if (sub == 'd') {
        rc = nagare_user_delete(a, o->name, o->mechanism);
    } else {
        const struct nagare_user_info *u = NULL;
        size_t n = 0;
        rc = nagare_users_list(a, &u, &n);
        for (size_t i = 0; rc == 0 && i < n; i++) {
            printf("%s\t%s%s%s\n", u[i].user, u[i].scram_sha_256 ? "SCRAM-SHA-256" : "",
                   u[i].scram_sha_256 && u[i].scram_sha_512 ? "," : "",
                   u[i].scram_sha_512 ? "SCRAM-SHA-512" : "");
        }
        if (rc == 0) {
            nagare_users_free(u);
        }
    }
    nagare_admin_destroy(a);
    if (rc < 0) {
        return o->name != NULL ? cli_fail(rc, "%s %s", o->cmd, o->name)
                               : cli_fail(rc, "%s", o->cmd);
    }
    if (sub != 'l') {
        printf("%s %s\n", sub == 'a' ? "set user" : "deleted user", o->name);
    }
    rc = cli_flush_stdout();
    return rc < 0 && rc != -EPIPE ? cli_fail(rc, "writing to stdout") : 0;
}

int cli_user_main(int argc, char **argv)
{
    if (argc < 2) {
        return cli_usage_error("user", "missing subcommand: add, delete or list");
    }
    const char *sub = argv[1];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 || strcmp(sub, "help") == 0) {
        fputs(user_usage_text, stdout);
        return 0;
    }
    static const char *const cmds[] = {"user add", "user delete", "user list"};
    int which = strcmp(sub, "add") == 0      ? 0
                : strcmp(sub, "delete") == 0 ? 1
                : strcmp(sub, "list") == 0   ? 2
                                             : -1;
    if (which < 0) {
        return cli_usage_error("user", "unknown subcommand '%s': add, delete or list", sub);
    }
    struct user_opts o = {.cmd = cmds[which], .broker = cli_broker_default()};
    int st = cli_options(argc - 1, argv + 1, user_longopts, user_option, &o);
    if (st == 0 && !o.help) {
        st = cli_operand(o.cmd, argc - 1, argv + 1, which < 2, "NAME", &o.name);
    }
    if (st == 0 && which == 2 && o.mechanism != NULL) {
        st = cli_usage_error(o.cmd, "--mechanism is for add and delete");
    }
    if (st != 0 || o.help) {
        if (o.help) {
            fputs(user_usage_text, stdout);
        }
        return st;
    }
    return user_run(&o, which == 0 ? 'a' : which == 1 ? 'd' : 'l');
}
