/*
 * broker/power_sim.h — a power cut of a running broker, for tests:
 * nagared_sim only (nagared built with NAGARE_FAULTS and base/ring_sim.c).
 *
 * With NAGARE_POWER_SIM in the environment, every file write is recorded
 * until an fsync makes it durable (base/ring_sim.h; the stash is
 * <data_dir>.power-sim, beside the data directory), and SIGUSR2 cuts the
 * power: from that moment nothing more becomes durable and every file I/O
 * fails, the server stops as a dying machine would, the disk is rewritten
 * to what the cut could have left (unsynced writes torn or undone,
 * RING_SIM_TEAR, seeded by NAGARE_POWER_SIM_SEED), and the process exits
 * with status 137, as if killed. NAGARE_POWER_SIM_NOSYNC makes fsyncs keep
 * nothing: the tests' proof that a cut loses what was not synced
 * (tests/cluster_support.h). Main thread only.
 */
#ifndef NAGARE_BROKER_POWER_SIM_H
#define NAGARE_BROKER_POWER_SIM_H

#ifndef NAGARE_FAULTS
#error "broker/power_sim.h is for the test build nagared_sim (NAGARE_FAULTS) only"
#endif

#include "broker/server.h"

/* Turns the simulation on when NAGARE_POWER_SIM is set (else does
 * nothing) and makes SIGUSR2 stop s with a power cut. Call before
 * server_init(). Returns 0, or ring_sim_enable()'s -errno (logged). */
MUST_USE int power_sim_start(const char *data_dir, struct server *s);

/* After server_fini() (or a failed server_init(): a cut during the start
 * fails it, and is a cut all the same): when SIGUSR2 cut the power, rewrites the disk as
 * the cut leaves it and exits the process (137; 1 when the rewrite
 * failed). Otherwise returns. */
void power_sim_finish(void);

#endif
