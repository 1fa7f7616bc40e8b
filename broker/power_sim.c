/* A power cut of a running broker, for tests (broker/power_sim.h). */
#include "broker/power_sim.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "base/log.h"
#include "base/ring_sim.h"
#include "broker/config.h"

static struct server *cut_server;
static volatile sig_atomic_t power_cut;

static void on_power_cut(int sig)
{
    (void)sig;
    ring_sim_crash_now(); /* a flag: the completions that follow fail */
    power_cut = 1;
    server_crash_async(cut_server); /* async-signal-safe; etcd sees no goodbye */
}

int power_sim_start(const char *data_dir, struct server *s)
{
    if (getenv("NAGARE_POWER_SIM") == NULL) {
        return 0;
    }
    char stash[BROKER_DATA_DIR_BYTES + 16];
    snprintf(stash, sizeof(stash), "%s.power-sim", data_dir);
    int rc = ring_sim_enable(stash);
    if (rc != 0) {
        log_error("power-loss simulation: %s: %s", stash, err_str(rc));
        return rc;
    }
    ring_sim_set_nosync(getenv("NAGARE_POWER_SIM_NOSYNC") != NULL ? ~0u : 0);
    cut_server = s;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_power_cut;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGUSR2, &sa, NULL) != 0) {
        rc = -errno;
        log_error("power-loss simulation: sigaction: %s", err_str(rc));
        return rc;
    }
    log_info("power-loss simulation on (stash %s): SIGUSR2 cuts the power", stash);
    return 0;
}

void power_sim_finish(void)
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
