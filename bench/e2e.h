/*
 * bench/e2e.h — nagare-bench e2e: produce at a fixed rate while consuming; per-record latency
 * (options: nagare-bench e2e --help; shared machinery: bench/session.h).
 */
#ifndef NAGARE_BENCH_E2E_H
#define NAGARE_BENCH_E2E_H

/* argv[0] is "e2e". Returns the process exit status: 0, 1 when a run
 * failed, 2 for a usage error. */
int bench_e2e_main(int argc, char **argv);

#endif
