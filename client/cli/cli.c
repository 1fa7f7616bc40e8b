/* What the nagare tool's commands share (client/cli/cli.h). */
#include "client/cli/cli.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>

#include "base/assert.h"

volatile sig_atomic_t cli_stop;

static void cli_on_signal(int sig)
{
    (void)sig;
    cli_stop = 1;
}

int cli_signals_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = cli_on_signal;
    if (sigemptyset(&sa.sa_mask) != 0 || sigaction(SIGINT, &sa, NULL) != 0 ||
        sigaction(SIGTERM, &sa, NULL) != 0) {
        return -errno;
    }
    struct sigaction ign;
    memset(&ign, 0, sizeof(ign));
    ign.sa_handler = SIG_IGN;
    if (sigemptyset(&ign.sa_mask) != 0 || sigaction(SIGPIPE, &ign, NULL) != 0) {
        return -errno;
    }
    return 0;
}

int cli_operand(const char *cmd, int argc, char **argv, bool wants_one, const char *what,
                const char **out)
{
    int operands = argc - optind;
    if (wants_one && operands == 0) {
        return cli_usage_error(cmd, "missing %s", what);
    }
    if (operands > (wants_one ? 1 : 0)) {
        return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind + (wants_one ? 1 : 0)]);
    }
    *out = wants_one ? argv[optind] : NULL;
    return 0;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "nagare: %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (try 'nagare %s --help')\n", cmd);
    va_end(ap);
    return CLI_EXIT_USAGE;
}

int cli_fail(int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("nagare: ", stderr);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, ": %s\n", nagare_strerror(rc));
    va_end(ap);
    return CLI_EXIT_FAIL;
}

int cli_failf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("nagare: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return CLI_EXIT_FAIL;
}

int cli_options(int argc, char **argv, const struct option *longopts, cli_option_fn each,
                void *opts)
{
    int ch;
    optind = 0; /* GNU: start over, permuting operands after options */
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        int rc = each(opts, ch, argv);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

int cli_bad_option(const char *cmd, int ch, char **argv)
{
    /* getopt_long() has already stepped past the offending word. */
    const char *word = optind > 0 ? argv[optind - 1] : "?";
    if (ch == ':') {
        return cli_usage_error(cmd, "option '%s' needs a value", word);
    }
    if (optopt != 0 && strncmp(word, "--", 2) != 0) {
        return cli_usage_error(cmd, "unknown option '-%c'", optopt);
    }
    return cli_usage_error(cmd, "unknown or ambiguous option '%s'", word);
}

bool cli_parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    ASSERT(s != NULL && lo <= hi);
    const char *digits = s[0] == '-' && lo < 0 ? s + 1 : s;
    if (!isdigit((unsigned char)digits[0])) {
        return false;
    }
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
        return false;
    }
    *out = v;
    return true;
}

/* One HOST:PORT, n bytes at s. */
static bool address_ok(const char *s, size_t n)
{
    char one[CLI_BROKER_BYTES_MAX];
    if (n == 0 || n >= sizeof(one)) {
        return false;
    }
    memcpy(one, s, n);
    one[n] = '\0';
    const char *colon = strrchr(one, ':');
    int64_t port;
    return colon != NULL && colon != one && cli_parse_i64(colon + 1, 1, 65535, &port);
}

/* HOST:PORT, or a comma list of them. */
static bool broker_ok(const char *s)
{
    if (strlen(s) >= CLI_BROKER_BYTES_MAX) {
        return false;
    }
    for (;;) {
        const char *comma = strchr(s, ',');
        size_t n = comma != NULL ? (size_t)(comma - s) : strlen(s);
        if (!address_ok(s, n)) {
            return false;
        }
        if (comma == NULL) {
            return true;
        }
        s = comma + 1;
    }
}

int cli_broker_option(const char *cmd, const char *arg, const char **out)
{
    if (!broker_ok(arg)) {
        return cli_usage_error(cmd, "--broker wants HOST:PORT[,HOST:PORT...], not '%s'", arg);
    }
    *out = arg;
    return 0;
}

static const char *cli_broker = CLI_BROKER_DEFAULT;

int cli_broker_default_set(const char *option)
{
    const char *env = getenv(CLI_BROKER_ENV);
    const char *from = option != NULL ? "--broker" : CLI_BROKER_ENV;
    const char *value = option != NULL ? option : env != NULL && env[0] != '\0' ? env : NULL;
    if (value == NULL) {
        return 0;
    }
    if (!broker_ok(value)) {
        fprintf(stderr,
                "nagare: %s wants HOST:PORT[,HOST:PORT...], not '%s' (try 'nagare --help')\n", from,
                value);
        return CLI_EXIT_USAGE;
    }
    cli_broker = value;
    return 0;
}

const char *cli_broker_default(void) { return cli_broker; }

/* Who the commands log in as (cli_login_set()); user NULL: nobody. */
static struct nagare_login cli_login_as;
static char cli_password[1024 + 2];

/* Reads a password from the terminal, echo off. Returns 0 or -errno. */
static int password_prompt(const char *user)
{
    FILE *tty = fopen("/dev/tty", "r+");
    if (tty == NULL) {
        return -errno;
    }
    fprintf(tty, "password for %s: ", user);
    fflush(tty);
    struct termios was, quiet;
    bool echo_off = tcgetattr(fileno(tty), &was) == 0;
    if (echo_off) {
        quiet = was;
        quiet.c_lflag &= (tcflag_t)~ECHO;
        (void)tcsetattr(fileno(tty), TCSAFLUSH, &quiet);
    }
    int rc = fgets(cli_password, sizeof(cli_password), tty) != NULL ? 0 : -EIO;
    if (echo_off) {
        (void)tcsetattr(fileno(tty), TCSAFLUSH, &was);
    }
    fputc('\n', tty);
    fclose(tty);
    cli_password[strcspn(cli_password, "\r\n")] = '\0';
    return rc;
}

int cli_login_set(const char *user, const char *mechanism)
{
    user = user != NULL ? user : getenv(CLI_USER_ENV);
    if (user == NULL || user[0] == '\0') {
        return 0;
    }
    const char *pw = getenv(CLI_PASSWORD_ENV);
    if (pw == NULL) {
        int rc = password_prompt(user);
        if (rc < 0) {
            fprintf(stderr, "nagare: no password for %s: set $%s or run on a terminal\n", user,
                    CLI_PASSWORD_ENV);
            return CLI_EXIT_USAGE;
        }
        pw = cli_password;
    }
    cli_login_as = (struct nagare_login){.user = user, .password = pw, .mechanism = mechanism};
    return 0;
}

struct nagare_login cli_login(void) { return cli_login_as; }

static struct nagare_tls cli_tls_cfg;

const struct nagare_tls *cli_tls(void) { return &cli_tls_cfg; }

/* The value of TLS option name at argv[*i] ("--name=V" or "--name V"),
 * or NULL when argv[*i] is not it; *missing when its value is. */
static const char *tls_option(char **argv, int argc, int *i, const char *name, bool *missing)
{
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0) {
        return NULL;
    }
    if (argv[*i][n] == '=') {
        return argv[*i] + n + 1;
    }
    if (argv[*i][n] != '\0') {
        return NULL;
    }
    if (*i + 1 >= argc) {
        *missing = true;
        return NULL;
    }
    return argv[++*i];
}

static const char *env_nonempty(const char *name)
{
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

int cli_tls_options(int *argc, char **argv)
{
    struct nagare_tls *t = &cli_tls_cfg;
    const char *on = env_nonempty("NAGARE_TLS");
    t->enabled = on != NULL && strcmp(on, "0") != 0;
    t->ca_file = env_nonempty("NAGARE_TLS_CA");
    t->cert_file = env_nonempty("NAGARE_TLS_CERT");
    t->key_file = env_nonempty("NAGARE_TLS_KEY");
    int out = 1;
    bool rest = false; /* after "--": operands only */
    for (int i = 1; i < *argc; i++) {
        bool missing = false;
        const char *v = NULL;
        if (rest || argv[i][0] != '-') {
            argv[out++] = argv[i];
        } else if (strcmp(argv[i], "--") == 0) {
            rest = true;
            argv[out++] = argv[i];
        } else if (strcmp(argv[i], "--tls") == 0) {
            t->enabled = true;
        } else if ((v = tls_option(argv, *argc, &i, "--tls-ca", &missing)) != NULL) {
            t->ca_file = v;
        } else if ((v = tls_option(argv, *argc, &i, "--tls-cert", &missing)) != NULL) {
            t->cert_file = v;
        } else if ((v = tls_option(argv, *argc, &i, "--tls-key", &missing)) != NULL) {
            t->key_file = v;
        } else if (missing) {
            fprintf(stderr, "nagare: a value is missing after '%s' (try 'nagare --help')\n",
                    argv[i]);
            return CLI_EXIT_USAGE;
        } else {
            argv[out++] = argv[i];
        }
    }
    argv[out] = NULL;
    *argc = out;
    t->enabled = t->enabled || t->ca_file != NULL || t->cert_file != NULL;
    return 0;
}

int cli_admin_connect(const char *broker, nagare_admin **out)
{
    struct nagare_login login = cli_login();
    int rc = nagare_admin_new_secure(broker, CLI_TIMEOUT_MS, &login, cli_tls(), out);
    if (rc < 0) {
        return cli_fail(rc, "connecting to %s", broker);
    }
    return 0;
}

int cli_topic_describe(nagare_admin *a, const char *topic, const struct nagare_topic_info **out)
{
    size_t count = 0;
    *out = NULL;
    int rc = nagare_topics_describe(a, topic, out, &count);
    if (rc == 0 && count == 0) {
        rc = -NAGARE_EUNKNOWN_TOPIC;
    } else if (rc == 0 && (*out)[0].err != 0) {
        rc = (*out)[0].err < 0 ? (*out)[0].err : -(*out)[0].err;
    }
    if (rc != 0 && *out != NULL) {
        nagare_topics_free(a, *out);
        *out = NULL;
    }
    return rc;
}

bool cli_dlq_not_yet(nagare_admin *a, const char *topic)
{
    /* Topic names are at most 249 bytes (docs/protocol.md): a longer
     * source is no topic. */
    char source[256];
    size_t len = strlen(topic);
    size_t suffix = strlen(CLI_DLQ_SUFFIX);
    if (len <= suffix || len - suffix >= sizeof(source) ||
        strcmp(topic + len - suffix, CLI_DLQ_SUFFIX) != 0) {
        return false;
    }
    memcpy(source, topic, len - suffix);
    source[len - suffix] = '\0';
    const struct nagare_topic_info *t = NULL;
    int rc = cli_topic_describe(a, source, &t);
    if (t != NULL) {
        nagare_topics_free(a, t);
    }
    return rc == 0;
}

int cli_flush_stdout(void)
{
    errno = 0;
    if (fflush(stdout) != 0 || ferror(stdout)) {
        return errno != 0 ? -errno : -EIO;
    }
    return 0;
}
