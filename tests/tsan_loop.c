/*
 * The event loop's cross-thread entry points under ThreadSanitizer:
 * loop_post() from other threads while the loop runs,
 * and loop_stop_async(). A plain program, not a criterion suite: criterion's
 * process isolation cannot start under TSan. Exits 0 when every message ran
 * on the loop thread and the loop stopped; TSan fails it on any data race.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/ring.h"
#include "net/loop.h"

enum { POSTERS = 4, MESSAGES = 5000 };

static struct loop loop;
static pthread_t loop_thread;
static atomic_bool loop_ready;
static uint64_t ran; /* touched on the loop thread only */

static void on_message(struct loop_msg *m, void *arg)
{
    (void)arg;
    if (!pthread_equal(pthread_self(), loop_thread)) {
        fprintf(stderr, "tsan_loop: a message ran off the loop thread\n");
        abort();
    }
    ran++;
    free(m);
}

static void on_request(void *arg, struct loop_req *req)
{
    (void)arg;
    loop_req_fail(req); /* no client connects */
}

static void *run_loop(void *arg)
{
    (void)arg;
    struct ring ring;
    struct loop_cfg cfg;
    loop_cfg_default(&cfg);
    cfg.on_request = on_request;
    if (ring_init(&ring, 64) != 0 || loop_init(&loop, &ring, &cfg) != 0 ||
        loop_listen(&loop, "127.0.0.1", 0, NULL) != 0) {
        fprintf(stderr, "tsan_loop: cannot start the loop\n");
        exit(1);
    }
    atomic_store(&loop_ready, true);
    if (loop_run(&loop) != 0) {
        exit(1);
    }
    loop_fini(&loop); /* runs messages still queued */
    ring_fini(&ring);
    return NULL;
}

static void *post(void *arg)
{
    (void)arg;
    for (int i = 0; i < MESSAGES; i++) {
        struct loop_msg *m = malloc(sizeof(*m));
        if (m == NULL) {
            abort();
        }
        *m = (struct loop_msg){.fn = on_message};
        loop_post(&loop, m);
    }
    return NULL;
}

int main(void)
{
    if (pthread_create(&loop_thread, NULL, run_loop, NULL) != 0) {
        return 1;
    }
    while (!atomic_load(&loop_ready)) {
        sched_yield();
    }
    pthread_t posters[POSTERS];
    for (int i = 0; i < POSTERS; i++) {
        if (pthread_create(&posters[i], NULL, post, NULL) != 0) {
            return 1;
        }
    }
    for (int i = 0; i < POSTERS; i++) {
        pthread_join(posters[i], NULL);
    }
    loop_stop_async(&loop);
    pthread_join(loop_thread, NULL);
    if (ran != (uint64_t)POSTERS * MESSAGES) {
        fprintf(stderr, "tsan_loop: %llu of %d messages ran\n", (unsigned long long)ran,
                POSTERS * MESSAGES);
        return 1;
    }
    printf("tsan_loop: %llu messages posted from %d threads ran on the loop thread; stopped\n",
           (unsigned long long)ran, POSTERS);
    return 0;
}
