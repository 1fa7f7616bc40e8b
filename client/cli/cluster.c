/*
 * client/cli/cluster.c — `nagare cluster describe`: the brokers, the
 * controller and each partition's leader, leader epoch, replicas and
 * in-sync replicas (nagare_cluster_describe), one request. Partitions with
 * fewer replicas in sync than they have, or no leader, are flagged as
 * under-replicated.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <string.h>

#include "client/cli/cli.h"

static const char cluster_usage_text[] =
    "usage: nagare cluster describe\n"
    "\n"
    "  describe  print the live brokers, the controller, and per partition its\n"
    "            leader, leader epoch, replicas and in-sync replicas (ISR);\n"
    "            partitions with replicas out of sync, or no leader, are marked\n"
    "            UNDER-REPLICATED and counted at the end. A partition being\n"
    "            moved ('nagare topic reassign') shows 'reassigning to' its\n"
    "            target replicas; until the move is done its replicas are the\n"
    "            target and the old ones together. A single broker shows\n"
    "            itself as broker 0, leader of everything.\n"
    "\n"
    "options:\n" CLI_BROKER_HELP "  --help               print this help\n";

static const struct option cluster_longopts[] = {
    {"broker", required_argument, NULL, 'b'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

struct cluster_opts {
    const char *broker;
    bool help;
};

static int cluster_option(void *opts, int ch, char **argv)
{
    struct cluster_opts *o = opts;
    if (ch == 'h') {
        o->help = true;
        return 0;
    }
    if (ch == 'b') {
        return cli_broker_option("cluster describe", optarg, &o->broker);
    }
    return cli_bad_option("cluster describe", ch, argv);
}

/* "1,2,3" into buf (cap bytes); "-" for none. */
static const char *ids_str(const int32_t *ids, size_t n, char *buf, size_t cap)
{
    size_t at = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && at < cap; i++) {
        int w = snprintf(buf + at, cap - at, "%s%" PRId32, i > 0 ? "," : "", ids[i]);
        at += w > 0 ? (size_t)w : 0;
    }
    return n == 0 ? "-" : buf;
}

static void cluster_print(const struct nagare_cluster_info *c)
{
    printf("%-10s %s\n", "brokers", c->broker_count == 0 ? "none" : "");
    for (size_t i = 0; i < c->broker_count; i++) {
        const struct nagare_broker_info *b = &c->brokers[i];
        printf("  %-8" PRId32 " %s:%u%s\n", b->id, b->host, b->port,
               b->id == c->controller ? "  (controller)" : "");
    }
    if (c->controller < 0) {
        printf("%-10s none\n", "controller");
    } else {
        printf("%-10s %" PRId32 "\n", "controller", c->controller);
    }
    printf("\n%-24s %9s %7s %6s %-16s %-16s\n", "topic", "partition", "leader", "epoch", "replicas",
           "isr");
    size_t under = 0;
    size_t moving = 0;
    char rbuf[128];
    char ibuf[128];
    char tbuf[128];
    for (size_t i = 0; i < c->partition_count; i++) {
        const struct nagare_partition_replicas *p = &c->partitions[i];
        under += p->under_replicated ? 1 : 0;
        moving += p->target_count > 0 ? 1 : 0;
        char leader[16];
        snprintf(leader, sizeof(leader), "%" PRId32, p->leader);
        printf("%-24s %9" PRId32 " %7s %6" PRId32 " %-16s %-16s%s%s%s\n", p->topic, p->partition,
               p->leader < 0 ? "none" : leader, p->leader_epoch,
               ids_str(p->replicas, p->replica_count, rbuf, sizeof(rbuf)),
               ids_str(p->isr, p->isr_count, ibuf, sizeof(ibuf)),
               p->under_replicated ? "  UNDER-REPLICATED" : "",
               p->target_count > 0 ? "  reassigning to " : "",
               p->target_count > 0 ? ids_str(p->target, p->target_count, tbuf, sizeof(tbuf)) : "");
    }
    printf("\n%zu partition%s, %zu under-replicated, %zu being reassigned\n", c->partition_count,
           c->partition_count == 1 ? "" : "s", under, moving);
}

static int cluster_describe(int argc, char **argv)
{
    struct cluster_opts o = {.broker = cli_broker_default()};
    const char *none;
    int st = cli_options(argc, argv, cluster_longopts, cluster_option, &o);
    st = st == 0 && !o.help ? cli_operand("cluster describe", argc, argv, false, NULL, &none) : st;
    if (st != 0 || o.help) {
        if (o.help) {
            fputs(cluster_usage_text, stdout);
        }
        return st;
    }
    nagare_admin *a = NULL;
    st = cli_admin_connect(o.broker, &a);
    if (st != 0) {
        return st;
    }
    const struct nagare_cluster_info *c = NULL;
    int rc = nagare_cluster_describe(a, &c);
    if (rc < 0) {
        nagare_admin_destroy(a);
        return cli_fail(rc, "describing the cluster");
    }
    cluster_print(c);
    nagare_cluster_info_free(a, c);
    nagare_admin_destroy(a);
    rc = cli_flush_stdout();
    return rc < 0 && rc != -EPIPE ? cli_fail(rc, "writing to stdout") : 0;
}

int cli_cluster_main(int argc, char **argv)
{
    if (argc < 2) {
        return cli_usage_error("cluster", "missing subcommand: describe");
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(cluster_usage_text, stdout);
        return 0;
    }
    if (strcmp(argv[1], "describe") == 0) {
        return cluster_describe(argc - 1, argv + 1);
    }
    return cli_usage_error("cluster", "unknown subcommand '%s': describe", argv[1]);
}
