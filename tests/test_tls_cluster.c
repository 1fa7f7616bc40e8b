/*
 * tests/test_tls_cluster.c — three brokers replicating over TLS (broker/
 * fetcher.h): every nagare listener TLS and requiring client certificates,
 * so a follower fetches only by showing its own certificate and checking
 * the leader's. Acks=all records are answered only once the in-sync
 * followers hold them, and read back whole. Skipped where a cluster cannot
 * run (tests/cluster_support.h).
 */
#include <criterion/criterion.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "client/nagare.h"
#include "tests/broker_support.h"
#include "tests/cluster_support.h"

#define TOPIC "tls-replicated"
#define RECORDS 200
/* Bounds that only turn a hang into a failure. */
#define SETUP_TIMEOUT_MS 60000
#define WAIT_MS 120000

static struct cluster C;
static char set_cert[CS_ROOT_BYTES + 64], set_key[CS_ROOT_BYTES + 64], set_ca[CS_ROOT_BYTES + 64];
static char ca[CS_ROOT_BYTES + 16], cert[CS_ROOT_BYTES + 16], key[CS_ROOT_BYTES + 16];

static void teardown(void) { cs_fini(&C); }

TestSuite(tls_cluster, .fini = teardown, .timeout = 900);

static struct nagare_tls client_tls(void)
{
    return (struct nagare_tls){.enabled = true, .ca_file = ca, .cert_file = cert, .key_file = key};
}

/* Certificates for every broker's address, readable by the brokers' users. */
static void make_certs(void)
{
    const char *script = getenv("NAGARE_TLS_CERTS");
    cr_assert(script != NULL, "set NAGARE_TLS_CERTS to tests/tls_certs.sh");
    char cmd[2048], out[256];
    int n =
        snprintf(cmd, sizeof(cmd), "mkdir -p '%s/tls' && sh '%s' '%s/tls'", C.root, script, C.root);
    for (size_t i = 0; i < C.broker_count; i++) {
        n += snprintf(cmd + n, sizeof(cmd) - (size_t)n, " %s", C.b[i].host);
    }
    snprintf(cmd + n, sizeof(cmd) - (size_t)n, " && chmod -R a+rX '%s/tls'", C.root);
    cr_assert_eq(bk_run(cmd, out, sizeof(out)), 0, "making certificates");
    snprintf(set_cert, sizeof(set_cert), "tls_cert_file=%s/tls/server.pem", C.root);
    snprintf(set_key, sizeof(set_key), "tls_key_file=%s/tls/server.key", C.root);
    snprintf(set_ca, sizeof(set_ca), "tls_ca_file=%s/tls/ca.pem", C.root);
    snprintf(ca, sizeof(ca), "%s/tls/ca.pem", C.root);
    snprintf(cert, sizeof(cert), "%s/tls/client.pem", C.root);
    snprintf(key, sizeof(key), "%s/tls/client.key", C.root);
}

static void create_topic(void)
{
    struct nagare_tls t = client_tls();
    struct nagare_topic_config cfg;
    nagare_topic_config_default(&cfg);
    cfg.partitions = 3;
    cs_topic_create(&C, C.bootstrap, TOPIC, &cfg, &t, SETUP_TIMEOUT_MS);
}

struct reports {
    uint32_t ok, failed;
    int first_err;
};

static void on_delivery(const struct nagare_delivery *d, void *opaque)
{
    struct reports *r = opaque;
    if (d->err == 0) {
        r->ok++;
    } else {
        r->failed++;
        r->first_err = r->first_err != 0 ? r->first_err : d->err;
    }
}

static void log_has(size_t i, const char *what)
{
    size_t len;
    char *log = bk_read_file(C.b[i].log_path, &len);
    bool hit = strstr(log, what) != NULL;
    free(log);
    if (!hit) {
        cs_print_logs(&C, what);
    }
    cr_assert(hit, "broker %zu's log lacks \"%s\"", i, what);
}

Test(tls_cluster, three_brokers_replicate_over_tls_with_client_certificates)
{
    cs_need_cluster();
    cs_init(&C, 3);
    make_certs();
    cs_set(&C, "listen_tls=true");
    cs_set(&C, set_cert);
    cs_set(&C, set_key);
    cs_set(&C, set_ca);
    cs_set(&C, "tls_client_auth=required");
    cs_set(&C, "default_replication_factor=3");
    cs_set(&C, "min_insync_replicas=3"); /* every acks=all answer waits for both followers */
    cs_start(&C);
    create_topic();

    struct nagare_producer_config pc;
    nagare_producer_config_default(&pc);
    pc.bootstrap = C.bootstrap;
    pc.acks = -1;
    pc.tls = client_tls();
    struct reports r = {0};
    pc.on_delivery = on_delivery;
    pc.opaque = &r;
    nagare_producer *p;
    int rc = nagare_producer_new(&pc, &p);
    cr_assert_eq(rc, 0, "producer: %s", nagare_strerror(rc));
    char val[64];
    for (int i = 0; i < RECORDS; i++) {
        int n = snprintf(val, sizeof(val), "record-%d", i);
        struct nagare_record rec = {
            .topic = TOPIC, .partition = i % 3, .key_len = -1, .value = val, .value_len = n};
        while ((rc = nagare_send(p, &rec)) == -NAGARE_EBUSY) {
            cr_assert_geq(nagare_producer_poll(p, 100), 0);
        }
        cr_assert_eq(rc, 0);
    }
    rc = nagare_producer_flush(p, WAIT_MS);
    if (rc != 0 || r.failed != 0) {
        cs_print_logs(&C, "acks=all over TLS");
    }
    cr_assert_eq(rc, 0, "flush: %s", nagare_strerror(rc));
    cr_assert_eq(r.failed, 0, "first: %s", nagare_strerror(r.first_err));
    cr_assert_eq(r.ok, RECORDS);
    nagare_producer_destroy(p);

    struct nagare_consumer_config cc;
    nagare_consumer_config_default(&cc);
    cc.bootstrap = C.bootstrap;
    cc.tls = client_tls();
    nagare_consumer *k;
    rc = nagare_consumer_new(&cc, &k);
    cr_assert_eq(rc, 0, "consumer: %s", nagare_strerror(rc));
    for (int32_t part = 0; part < 3; part++) {
        cr_assert_eq(nagare_consumer_assign(k, TOPIC, part, NAGARE_OFFSET_BEGINNING), 0);
    }
    static bool seen[RECORDS];
    for (int got = 0; got < RECORDS; got++) {
        const struct nagare_message *m = NULL;
        rc = nagare_consumer_poll(k, WAIT_MS, &m);
        cr_assert_eq(rc, 1, "poll: %d %s", rc, rc < 0 ? nagare_strerror(rc) : "nothing came");
        int i = -1;
        cr_assert_eq(sscanf((const char *)m->value, "record-%d", &i), 1);
        cr_assert(i >= 0 && i < RECORDS && !seen[i], "record %d twice or unknown", i);
        seen[i] = true;
    }
    nagare_consumer_destroy(k);
    /* each broker leads a partition and follows the others there, over TLS */
    for (size_t i = 0; i < C.broker_count; i++) {
        log_has(i, "over TLS, data in");
        size_t len;
        char *log = bk_read_file(C.b[i].log_path, &len);
        const char *line = strstr(log, "following broker");
        const char *end = line != NULL ? strchr(line, '\n') : NULL;
        cr_assert(end != NULL && end - line > 9 && memcmp(end - 9, " over TLS", 9) == 0,
                  "broker %zu does not follow over TLS", i);
        cr_assert(strstr(log, "handshake failed") == NULL, "broker %zu refused a handshake", i);
        free(log);
    }
    cs_stop_brokers(&C);
}
