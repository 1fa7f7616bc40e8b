/*
 * broker/park.h — long-poll parking: requests waiting for a partition to
 * have something for them. Fetch (broker/fetch.c) and ShareFetch
 * (broker/share_serve.c) both park through it, on the one list each partition
 * holds (struct bpart's waiters), so a partition that gets data wakes
 * every kind of waiter and a partition that goes away answers every kind.
 *
 * Invariants:
 * - A waiter (struct park_waiter) is on a list once per link it parked
 *   there: one link per partition a request names, so a request naming a
 *   partition twice is on its list twice. park_remove() takes one link
 *   off; a waiter leaves every list before it is freed.
 * - park_wake() calls each waiter of the list that waits for the event at
 *   most once per call, in list order, even when a waiter leaves (answers) during its own call;
 *   a wake acts on its own waiter only and may not wake the same list
 *   again from inside.
 * - park_abandon() calls abandon until the list is empty: an abandon must
 *   take every link of its waiter off that list (it answers, whatever it
 *   has), else the broker stops on an assertion rather than loop.
 * Threads: the worker's that owns the partition, like struct bpart.
 * Memory: links and waiters live in the request that parks (its frame of
 * partitions); the module allocates nothing.
 */
#ifndef NAGARE_BROKER_PARK_H
#define NAGARE_BROKER_PARK_H

#include <stdbool.h>

struct park_waiter;

/* Woken: its partition may have news. Returns true when the waiter left
 * every list (it answered; it may be freed already), false when it stays
 * parked with every link where it was. It acts on its own waiter only. */
typedef bool (*park_wake_fn)(struct park_waiter *w);
/* Abandoned: its partition is going away or the broker is stopping. It
 * answers with what it has and leaves every list (it may be freed). */
typedef void (*park_abandon_fn)(struct park_waiter *w);

/* What a wake is about; a waiter is woken only for what it waits for. */
enum park_event {
    PARK_DATA = 1u << 0,  /* records were appended to the partition */
    PARK_FREED = 1u << 1, /* records of a share window are available again */
    PARK_REPLICA = 1u << 2, /* the leader's log grew durably: followers may copy */
};

struct park_waiter {
    park_wake_fn wake;
    park_abandon_fn abandon;
    unsigned events; /* enum park_event bits it is woken for */
    bool pending;    /* park_wake() has yet to call it (park.c) */
};

struct park_link {
    struct park_link *prev;
    struct park_link *next;
    struct park_waiter *w;
    struct park_list *list;
    bool linked;
};

/* The waiters of one partition. Zeroed is empty. */
struct park_list {
    struct park_link *head;
    bool waking; /* inside park_wake() */
};

/* Sets what w is woken for (events: enum park_event bits, not 0) and its
 * callbacks (both required). Before its first park_add(). */
void park_waiter_init(struct park_waiter *w, unsigned events, park_wake_fn wake,
                      park_abandon_fn abandon);

/* Puts w on list through l (which must not be linked: unlinked or
 * zeroed). l stays owned by the caller; it must stay where it is until
 * park_remove(l). */
void park_add(struct park_list *list, struct park_link *l, struct park_waiter *w);

/* Takes l off its list; harmless when l is not linked. */
void park_remove(struct park_link *l);

/* True when l is on a list. */
bool park_linked(const struct park_link *l);

/* True when nobody waits on list. */
bool park_empty(const struct park_list *list);

/* Calls wake once for each waiter on list at the call that waits for one
 * of events (waiters added during it are not called). Not from inside a
 * wake of the same list. */
void park_wake(struct park_list *list, unsigned events);

/* Calls abandon for the first waiter until list is empty. Each abandon
 * must take its waiter's links off list (asserted). */
void park_abandon(struct park_list *list);

#endif
