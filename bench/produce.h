/*
 * bench/produce.h — nagare-bench produce: N records of S bytes over P partitions from K producers
 * (options: nagare-bench produce --help; shared machinery: bench/session.h).
 */
#ifndef NAGARE_BENCH_PRODUCE_H
#define NAGARE_BENCH_PRODUCE_H

/* argv[0] is "produce". Returns the process exit status: 0, 1 when a run
 * failed, 2 for a usage error. */
int bench_produce_main(int argc, char **argv);

#endif
