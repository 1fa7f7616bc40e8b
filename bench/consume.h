/*
 * bench/consume.h — nagare-bench consume: replay N records from the start with K consumers
 * (options: nagare-bench consume --help; shared machinery: bench/session.h).
 */
#ifndef NAGARE_BENCH_CONSUME_H
#define NAGARE_BENCH_CONSUME_H

/* argv[0] is "consume". Returns the process exit status: 0, 1 when a run
 * failed, 2 for a usage error. */
int bench_consume_main(int argc, char **argv);

#endif
