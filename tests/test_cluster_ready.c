/*
 * /readyz of a clustered broker (docs/operations.md, broker/metrics.h's
 * metrics_ready()), against one nagared and 3 etcd members of the cluster
 * harness: ready once it holds its registration and knows the leader of
 * every partition it holds; 503 while etcd is gone (its registration is not
 * sure) and 200 again when etcd is back; 503 "starting" at once while a
 * start waits for etcd to join the cluster, 200 once it has joined; and,
 * with two brokers, 503 while a partition it holds has no leader (its
 * only in-sync replica down), 200 once that replica is back and leads.
 *
 * Every wait is for a condition (the answer wanted), bounded only so that
 * a hang fails the test.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "base/clock.h"
#include "client/nagare.h"
#include "tests/cluster_support.h"

/* A ready or fenced state comes within a lease's time (6 s) and a view's
 * delivery; a sanitized build on a busy machine gets room. */
#define WAIT_MS 60000
/* One HTTP exchange; the broker answers /readyz from its loop within 5 s
 * (ADMIN_HTTP_LOOP_WAIT_MS). */
#define HTTP_TIMEOUT_S 10

static struct cluster C;

static void setup(void)
{
    cs_need_cluster();
    cs_init(&C, 1);
    cs_start(&C);
}

static void setup_two(void)
{
    cs_need_cluster();
    cs_init(&C, 2);
    cs_start(&C);
}

static void teardown(void) { cs_fini(&C); }

TestSuite(cluster_ready, .init = setup, .fini = teardown, .timeout = 600);

/* GET path from broker i's admin listener: the status (0 when no answer
 * came), the body in body[0..cap). */
static int http_get_at(size_t i, const char *path, char *body, size_t cap)
{
    const struct cs_broker *b = &C.b[i];
    cr_assert_gt(b->admin_port, 0, "no admin port in broker %d's log", b->id);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct timeval tv = {.tv_sec = HTTP_TIMEOUT_S};
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(b->admin_port)};
    cr_assert_eq(inet_pton(AF_INET, b->host, &sa.sin_addr), 1);
    body[0] = '\0';
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return 0;
    }
    char req[256];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
                     path, b->host);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return 0;
    }
    static char resp[1 << 20]; /* a whole /metrics */
    size_t got = 0;
    ssize_t r;
    while (got + 1 < sizeof(resp) && (r = read(fd, resp + got, sizeof(resp) - 1 - got)) > 0) {
        got += (size_t)r;
    }
    close(fd);
    resp[got] = '\0';
    int status = 0;
    if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1) {
        return 0;
    }
    const char *start = strstr(resp, "\r\n\r\n");
    snprintf(body, cap, "%s", start != NULL ? start + 4 : "");
    return status;
}

static int http_get(const char *path, char *body, size_t cap)
{
    return http_get_at(0, path, body, cap);
}

/* Waits until path of broker i answers status with a body containing
 * text. */
static void wait_answer_at(size_t i, const char *path, int status, const char *text)
{
    static char body[1 << 20];
    int got = 0;
    int64_t deadline = clock_mono_ms() + WAIT_MS;
    while (clock_mono_ms() < deadline) {
        got = http_get_at(i, path, body, sizeof(body));
        if (got == status && strstr(body, text) != NULL) {
            return;
        }
        usleep(100 * 1000);
    }
    cs_print_logs(&C, "readyz");
    const char *near = strstr(body, "orders");
    cr_assert_fail("broker %zu %s: wanted %d \"%s\", last got %d \"%.300s\" (at orders: %.600s)", i,
                   path, status, text, got, body, near != NULL ? near : "-");
}

static void wait_answer(const char *path, int status, const char *text)
{
    wait_answer_at(0, path, status, text);
}

/* Creates topic name with one partition of `copies` replicas. */
static void create_topic_rf(const char *name, int16_t copies)
{
    nagare_admin *a = NULL;
    cr_assert_eq(nagare_admin_new(C.bootstrap, 30000, &a), 0);
    struct nagare_topic_config cfg;
    nagare_topic_config_default(&cfg);
    cfg.partitions = 1;
    cfg.replication_factor = copies;
    int rc = nagare_topic_create(a, name, &cfg);
    cr_assert_eq(rc, 0, "create %s: %s", name, nagare_strerror(rc));
    nagare_admin_destroy(a);
}

/* On broker 0, the only one. */
static void create_topic(const char *name) { create_topic_rf(name, 1); }

Test(cluster_ready, not_ready_without_etcd_ready_again_with_it)
{
    create_topic("orders");
    wait_answer("/readyz", 200, "ready");
    /* etcd gone: the lease cannot be kept alive, the registration is not
     * sure, and the broker says so. */
    ets_stop_all(&C.etcd);
    wait_answer("/readyz", 503, "registration in etcd is not sure");
    wait_answer("/healthz", 200, "ok");
    ets_restart_all(&C.etcd);
    wait_answer("/readyz", 200, "ready");
}

Test(cluster_ready, a_start_waiting_for_etcd_is_not_ready_until_it_joined)
{
    create_topic("orders");
    wait_answer("/readyz", 200, "ready");
    cs_broker_stop(&C, 0);
    ets_stop_all(&C.etcd);
    /* The listeners open before the broker joins the cluster (it waits up
     * to 30 s for etcd): the admin listener answers, not ready. */
    cs_broker_start(&C, 0);
    char body[512];
    int64_t before = clock_mono_ms();
    cr_assert_eq(http_get("/readyz", body, sizeof(body)), 503, "%s", body);
    cr_assert_not_null(strstr(body, "starting"), "%s", body);
    cr_assert_lt(clock_mono_ms() - before, 4000, "answered at once, not after the loop's wait");
    ets_restart_all(&C.etcd);
    wait_answer("/readyz", 200, "ready");
}

TestSuite(cluster_ready_two, .init = setup_two, .fini = teardown, .timeout = 600);

Test(cluster_ready_two, not_ready_while_a_partition_it_holds_has_no_leader)
{
    create_topic_rf("orders", 2);
    wait_answer_at(0, "/readyz", 200, "ready");
    wait_answer_at(1, "/readyz", 200, "ready");
    /* Broker 1 (index 0) goes: broker 2 leads alone, its in-sync set
     * shrinks to itself. */
    cs_broker_stop(&C, 0);
    wait_answer_at(1, "/metrics", 200,
                   "nagare_partition_in_sync_replicas{topic=\"orders\",partition=\"0\"} 1\n");
    /* Then broker 2 goes, and broker 1 comes back: out of sync, it may not
     * lead (no unclean election), so the partition has no leader. */
    cs_broker_stop(&C, 1);
    cs_broker_start(&C, 0);
    wait_answer_at(0, "/readyz", 503, "topic orders partition 0 has no leader\n");
    /* Broker 2 back: it leads again, and broker 1 knows it. */
    cs_broker_start(&C, 1);
    wait_answer_at(0, "/readyz", 200, "ready");
}
