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

#include "bench/session.h"

static int e2e(struct session *s, enum load_protocol p)
{
    struct load_cfg cfg;
    session_load_cfg(s, p, &cfg);
    cfg.stamp = true;
    cfg.consumers = s->o.consumers;
    cfg.from_end = true;
    cfg.consume_records = s->o.records;
    cfg.warmup_s = s->o.warmup_s;
    return session_phase(s, "e2e", &cfg);
}

int bench_e2e_main(int argc, char **argv) { return session_main(SESSION_E2E, argc, argv, e2e); }
