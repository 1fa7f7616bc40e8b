/*
 * bench/produce.c — nagare-bench produce: an untimed warm-up into a scratch
 * topic, then N records from K producer threads, as fast as they go or at
 * a fixed rate. Latency: from the send (or its intended time, at a fixed
 * rate) to the delivery report.
 */
#include "bench/produce.h"

#include "bench/session.h"

static int produce(struct session *s, enum load_protocol p)
{
    struct load_cfg cfg;
    session_load_cfg(s, p, &cfg);
    return session_phase(s, "produce", &cfg);
}

int bench_produce_main(int argc, char **argv)
{
    return session_main(SESSION_PRODUCE, argc, argv, produce);
}
