/*
 * broker/park.c — long-poll parking (broker/park.h).
 *
 * park_wake() marks the waiters on the list that wait for the event
 * pending, then walks the list
 * calling each pending waiter once. A waiter that answers takes its links
 * off the list (possibly the next link too, when its request names the
 * partition twice) and may be freed, so the walk starts over from the head
 * then; the pending marks keep anyone from being called twice.
 */
#include "broker/park.h"

#include <stddef.h>

#include "base/assert.h"

void park_waiter_init(struct park_waiter *w, unsigned events, park_wake_fn wake,
                      park_abandon_fn abandon)
{
    ASSERT(wake != NULL && abandon != NULL && events != 0);
    *w = (struct park_waiter){.wake = wake, .abandon = abandon, .events = events};
}

void park_add(struct park_list *list, struct park_link *l, struct park_waiter *w)
{
    ASSERT(!l->linked && w->wake != NULL);
    *l = (struct park_link){.w = w, .list = list, .next = list->head, .linked = true};
    if (list->head != NULL) {
        list->head->prev = l;
    }
    list->head = l;
}

void park_remove(struct park_link *l)
{
    if (!l->linked) {
        return;
    }
    if (l->prev != NULL) {
        l->prev->next = l->next;
    } else {
        l->list->head = l->next;
    }
    if (l->next != NULL) {
        l->next->prev = l->prev;
    }
    *l = (struct park_link){0};
}

bool park_linked(const struct park_link *l) { return l->linked; }

bool park_empty(const struct park_list *list) { return list->head == NULL; }

void park_wake(struct park_list *list, unsigned events)
{
    ASSERT(!list->waking);
    list->waking = true;
    for (struct park_link *l = list->head; l != NULL; l = l->next) {
        l->w->pending = (l->w->events & events) != 0;
    }
    struct park_link *l = list->head;
    while (l != NULL) {
        struct park_waiter *w = l->w;
        if (!w->pending) {
            l = l->next;
            continue;
        }
        w->pending = false;
        /* l is gone with its waiter when it left: start over then */
        l = w->wake(w) ? list->head : l->next;
    }
    list->waking = false;
}

void park_abandon(struct park_list *list)
{
    ASSERT(!list->waking);
    while (list->head != NULL) {
        struct park_waiter *w = list->head->w;
        w->abandon(w);
        for (struct park_link *l = list->head; l != NULL; l = l->next) {
            ASSERT(l->w != w); /* an abandoned waiter leaves the list */
        }
    }
}
