/*
 * bench/main.c — nagare-bench: picks a subcommand and hands it the rest of
 * the command line. Each subcommand lives in its own file (bench/storage.c,
 * ...) and returns the process exit status.
 */
#include <stdio.h>
#include <string.h>

#include "bench/checksum.h"
#include "bench/consume.h"
#include "bench/e2e.h"
#include "bench/failover.h"
#include "bench/produce.h"
#include "bench/storage.h"
#include "client/nagare.h"

struct bench_cmd {
    const char *name;
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand */
    const char *summary;
};

static const struct bench_cmd bench_cmds[] = {
    {"produce", bench_produce_main,
     "N records of S bytes over P partitions from K producers: records/s, MB/s, "
     "send-to-ack latency"},
    {"consume", bench_consume_main,
     "replay N records from the start with K consumers (filling the topic first)"},
    {"e2e", bench_e2e_main,
     "a fixed rate produced while consuming: latency from intended send to receipt"},
    {"failover", bench_failover_main,
     "a cluster: kill -9 a partition's leader under acks=all writes, N rounds; the time "
     "to the first write acknowledged by its successor"},
    {"storage", bench_storage_main,
     "partition log on local disk: appends, durable appends (group commit vs one "
     "fdatasync each), read-back"},
    {"checksum", bench_checksum_main,
     "the batch checksum, CRC-32C, against XXH3-64 on one core (no I/O)"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: nagare-bench <command> [options]\n"
                 "       nagare-bench <command> --help\n"
                 "       nagare-bench --version\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(bench_cmds) / sizeof(bench_cmds[0]); i++) {
        fprintf(out, "  %-10s %s\n", bench_cmds[i].name, bench_cmds[i].summary);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("nagare-bench %s\n", nagare_version());
        return 0;
    }
    for (size_t i = 0; i < sizeof(bench_cmds) / sizeof(bench_cmds[0]); i++) {
        if (strcmp(argv[1], bench_cmds[i].name) == 0) {
            return bench_cmds[i].run(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "nagare-bench: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
