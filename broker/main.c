/* nagared: parses the configuration, runs the server, stops on SIGINT or
 * SIGTERM after answering what is in flight and syncing every log. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "base/log.h"
#include "broker/config.h"
#include "broker/datadir_verify.h"
#include "broker/server.h"

#ifdef NAGARE_FAULTS
#include <stdlib.h>
#include <unistd.h>

#include "base/ring_sim.h"
#endif

static struct server server;

#ifdef NAGARE_FAULTS
/* nagared_sim only (a test build): with NAGARE_POWER_SIM in the
 * environment, every file write is recorded until an fsync makes it
 * durable (base/ring_sim.h; the stash is <data_dir>.power-sim, beside the
 * data directory), and SIGUSR2 cuts the power: from that moment nothing
 * more becomes durable and every file I/O fails, the server stops as a
 * dying machine would, the disk is rewritten to what the cut could have
 * left (unsynced writes torn, RING_SIM_TEAR, seeded by
 * NAGARE_POWER_SIM_SEED), and the process exits with status 137, as if
 * killed. NAGARE_POWER_SIM_NOSYNC makes fsyncs keep nothing (the tests'
 * proof that a cut loses what was not synced). */
static volatile sig_atomic_t power_cut;

static void on_power_cut(int sig)
{
    (void)sig;
    ring_sim_crash_now(); /* a flag: the completions that follow fail */
    power_cut = 1;
    server_stop_async(&server);
}

static int power_sim_start(const struct broker_config *cfg)
{
    if (getenv("NAGARE_POWER_SIM") == NULL) {
        return 0;
    }
    char stash[BROKER_DATA_DIR_BYTES + 16];
    snprintf(stash, sizeof(stash), "%s.power-sim", cfg->data_dir);
    int rc = ring_sim_enable(stash);
    if (rc != 0) {
        log_error("power-loss simulation: %s: %s", stash, err_str(rc));
        return rc;
    }
    ring_sim_set_nosync(getenv("NAGARE_POWER_SIM_NOSYNC") != NULL ? ~0u : 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_power_cut;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGUSR2, &sa, NULL) != 0) {
        return -errno;
    }
    log_info("power-loss simulation on (stash %s): SIGUSR2 cuts the power", stash);
    return 0;
}

static void power_sim_finish(void)
{
    if (!power_cut) {
        return;
    }
    const char *seed = getenv("NAGARE_POWER_SIM_SEED");
    int rc = ring_sim_power_cut(RING_SIM_TEAR, seed != NULL ? strtoull(seed, NULL, 10) : 1);
    struct ring_sim_stats st;
    ring_sim_stats(&st);
    log_warn("power cut: %llu unsynced writes undone, %llu torn, %llu kept, %llu directory "
             "changes undone (%s)",
             (unsigned long long)st.writes_dropped, (unsigned long long)st.writes_torn,
             (unsigned long long)st.writes_kept, (unsigned long long)st.dirents_undone,
             err_str(rc));
    _exit(rc == 0 ? 137 : 1);
}
#endif

static void on_signal(int sig)
{
    (void)sig;
    server_stop_async(&server); /* async-signal-safe */
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

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--verify") == 0) {
        return datadir_verify(argv[2], stdout); /* offline: no server */
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
    raise_fd_limit();
#ifdef NAGARE_FAULTS
    if (power_sim_start(&cfg) != 0) {
        return 1;
    }
#endif
    if (install_signals() != 0 || server_init(&server, &cfg) != 0) {
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
