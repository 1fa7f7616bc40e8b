/*
 * client/cli/consume.h — `nagare consume`'s options, shared by consume.c
 * (reading assigned partitions, and the option parsing) and
 * consume_group.c (reading as a member of a consumer group, --group, or of
 * a share group, --share).
 *
 * Invariants. consume_parse() has checked the combinations before either
 * runs: --group and --share exclude each other and --partition; --group
 * takes --from beginning|end only (the reset policy for partitions the
 * group never committed); --share takes no --from; --reject needs --share.
 */
#ifndef NAGARE_CLI_CONSUME_H
#define NAGARE_CLI_CONSUME_H

#include <stdbool.h>
#include <stdint.h>

#include "client/cli/format.h"

enum from_kind { FROM_BEGINNING, FROM_END, FROM_OFFSET, FROM_TIME };

struct consume_opts {
    const char *broker;
    const char *topic;
    int32_t partition; /* -1: all */
    enum from_kind from;
    bool from_given;
    int64_t from_value; /* FROM_OFFSET: the offset; FROM_TIME: ms */
    int64_t count;      /* 0: no limit */
    bool follow;
    bool json;
    const char *format; /* NULL: FMT_DEFAULT */
    const char *group;  /* --group G: a consumer group member */
    const char *share;  /* --share G: a share group member */
    bool reject;        /* --share: reject every record instead of accepting */
    bool help;
};

/* Runs `consume --group` or `consume --share` to the end; f is the
 * compiled --format. Returns the exit status (failures reported). */
int cli_consume_grouped(const struct consume_opts *o, const struct fmt *f);

#endif
