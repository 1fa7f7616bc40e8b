/*
 * bench/produce.c — nagare-bench produce: an untimed warm-up into a scratch
 * topic, then N records from K producer threads, as fast as they go or at
 * a fixed rate. Latency: from the send (or its intended time, at a fixed
 * rate) to the delivery report.
 */
#include "bench/produce.h"

#include <stdio.h>

#include "bench/session.h"

int bench_produce_main(int argc, char **argv)
{
    struct session s;
    int rc = session_parse(&s, SESSION_PRODUCE, argc, argv);
    if (rc != 0) {
        return rc == 1 ? 0 : 2;
    }
    rc = session_open(&s);
    rc = rc == 0 ? session_warmup(&s) : rc;
    if (rc == 0) {
        struct load_cfg cfg;
        session_load_cfg(&s, &cfg);
        rc = session_phase(&s, "produce", &cfg);
        session_report(&s, stdout);
    }
    int rc_close = session_close(&s);
    return rc == 0 && rc_close == 0 ? 0 : 1;
}
