/*
 * bench/consume.c — nagare-bench consume: replay N records from the start
 * of the topic with K consumer threads (consumer k is assigned partitions
 * k, k+K, ...). A topic holding fewer than N records is filled first (the
 * "fill" phase, produced with the producer options and reported), so one
 * command measures a replay against a freshly spawned broker too. With
 * both protocols, every round replays the same N records through each.
 */
#include "bench/consume.h"

#include "bench/session.h"

/* Fills the topic up to o.records when it holds fewer, through nagare's
 * own protocol whichever the replay uses (the fill is not the figure). */
static int fill(struct session *s)
{
    uint64_t have = 0;
    int rc = session_topic_records(s, &have);
    if (rc != 0 || have >= s->o.records) {
        return rc;
    }
    struct load_cfg cfg;
    session_load_cfg(s, LOAD_NAGARE, &cfg);
    cfg.records = s->o.records - have;
    cfg.rate = 0;
    cfg.label = "fill";
    return session_phase(s, "fill", &cfg);
}

/* Fills the topic to o.records when it holds fewer, then replays them. */
static int consume(struct session *s, enum load_protocol p)
{
    int rc = fill(s);
    if (rc != 0 || load_interrupted()) {
        return rc;
    }
    struct load_cfg cfg;
    session_load_cfg(s, p, &cfg);
    cfg.records = 0;
    cfg.consumers = s->o.consumers;
    cfg.consume_records = s->o.records;
    return session_phase(s, "consume", &cfg);
}

int bench_consume_main(int argc, char **argv)
{
    return session_main(SESSION_CONSUME, argc, argv, consume);
}
