/*
 * bench/e2e.c — nagare-bench e2e: K producers at a fixed total rate while
 * K' consumers, assigned from the log end before the first send, read
 * every record. Each value starts with its intended send time
 * (CLOCK_MONOTONIC ns: producers and consumers share the process, so one
 * clock); a record's latency runs from that time to the consumer's
 * receipt, so a stall delays every record scheduled behind it and shows
 * (coordinated omission). The first --warmup-seconds are not counted.
 */
#include "bench/e2e.h"

#include <stdio.h>

#include "bench/session.h"

int bench_e2e_main(int argc, char **argv)
{
    struct session s;
    int rc = session_parse(&s, SESSION_E2E, argc, argv);
    if (rc != 0) {
        return rc == 1 ? 0 : 2;
    }
    rc = session_open(&s);
    rc = rc == 0 ? session_warmup(&s) : rc;
    if (rc == 0) {
        struct load_cfg cfg;
        session_load_cfg(&s, &cfg);
        cfg.stamp = true;
        cfg.consumers = s.o.consumers;
        cfg.from_end = true;
        cfg.consume_records = s.o.records;
        cfg.warmup_s = s.o.warmup_s;
        rc = session_phase(&s, "e2e", &cfg);
        session_report(&s, stdout);
    }
    int rc_close = session_close(&s);
    return rc == 0 && rc_close == 0 ? 0 : 1;
}
