/* nagared: parses the configuration, runs the server, stops on SIGINT or
 * SIGTERM after answering what is in flight and syncing every log; SIGHUP
 * rereads the TLS certificate files. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "base/log.h"
#include "broker/config.h"
#include "broker/datadir_verify.h"
#include "broker/server.h"
#include "broker/users.h"

#ifdef NAGARE_FAULTS
#include "broker/power_sim.h" /* nagared_sim: power cuts for tests */
#endif

static struct server server;

static void on_signal(int sig)
{
    (void)sig;
    server_stop_async(&server); /* async-signal-safe */
}

static void on_hangup(int sig)
{
    (void)sig;
    server_tls_reload_async(&server); /* async-signal-safe */
}

static int install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0) {
        return -1;
    }
    sa.sa_handler = on_hangup;
    if (sigaction(SIGHUP, &sa, NULL) != 0) {
        return -1;
    }
    signal(SIGPIPE, SIG_IGN); /* a peer gone is an error return, not a death */
    return 0;
}

/* Raises the descriptor limit to its hard maximum: every connection, every
 * segment's three files and every pipe of a fetch sent from the files is a
 * descriptor, and a segment roll that finds none fails its log. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max) {
        return;
    }
    rlim_t was = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        log_warn("descriptor limit stays %llu: %s", (unsigned long long)was, strerror(errno));
        return;
    }
    log_info("descriptor limit raised from %llu to %llu", (unsigned long long)was,
             (unsigned long long)rl.rlim_cur);
}

/* nagared --add-user NAME DATA_DIR: the password from $NAGARE_PASSWORD, else
 * the first line of standard input (never the command line, which other
 * users of the machine can read). Offline: no broker running on DATA_DIR. */
static int add_user(const char *name, const char *data_dir)
{
    static char line[SCRAM_PASSWORD_BYTES_MAX + 2];
    const char *pw = getenv("NAGARE_PASSWORD");
    if (pw == NULL) {
        if (fgets(line, sizeof(line), stdin) == NULL) {
            fprintf(stderr, "nagared: --add-user: no password (set NAGARE_PASSWORD or give it on "
                            "standard input)\n");
            return 2;
        }
        line[strcspn(line, "\r\n")] = '\0';
        pw = line;
    }
    int rc = users_add_offline(data_dir, name, pw);
    explicit_bzero(line, sizeof(line));
    if (rc != 0) {
        fprintf(stderr, "nagared: --add-user %s: %s\n", name,
                rc == -EWOULDBLOCK ? "a broker is running on this data directory: use "
                                     "`nagare user add` against it"
                                   : err_str(rc));
        return 1;
    }
    printf("user %s added to %s (SCRAM-SHA-256, SCRAM-SHA-512)\n", name, data_dir);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--verify") == 0) {
        return datadir_verify(argv[2], stdout); /* offline: no server */
    }
    if (argc == 4 && strcmp(argv[1], "--add-user") == 0) {
        return add_user(argv[2], argv[3]); /* offline: no server */
    }
    static struct broker_config cfg;
    char err[512];
    int rc = broker_config_parse_args(&cfg, argc, argv, err, sizeof(err));
    if (rc == BROKER_ARGS_EXIT_OK) {
        return 0;
    }
    if (rc != BROKER_ARGS_RUN) {
        fprintf(stderr, "nagared: %s\n", err);
        return 2;
    }
    log_set_level(cfg.log_level);
    log_set_format(cfg.log_format);
    raise_fd_limit();
#ifdef NAGARE_FAULTS
    if (power_sim_start(cfg.data_dir, &server) != 0) {
        return 1;
    }
#endif
    if (install_signals() != 0 || server_init(&server, &cfg) != 0) {
#ifdef NAGARE_FAULTS
        power_sim_finish(); /* a power cut during the start failed it: a cut all the same */
#endif
        return 1; /* server_init logged why */
    }
    rc = server_run(&server);
    if (rc != 0) {
        log_error("event loop failed: %s", err_str(rc));
    }
    int rc_close = server_fini(&server);
#ifdef NAGARE_FAULTS
    power_sim_finish();
#endif
    if (rc == 0 && rc_close == 0) {
        log_info("nagared stopped cleanly");
        return 0;
    }
    return 1;
}
