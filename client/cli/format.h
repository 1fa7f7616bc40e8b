/*
 * client/cli/format.h — how `nagare consume` prints a record: through a
 * --format template compiled once at start-up, or as one JSON object per
 * line.
 *
 * Invariants. A compiled template is a list of pieces, each a placeholder
 * or a run of literal bytes held in the template itself; it has fixed
 * bounds (FMT_PIECES_MAX, FMT_LITERAL_BYTES_MAX), so printing allocates
 * nothing. Output goes through a writer with a sticky error: after the first
 * failed write nothing more is written and the error is kept for the caller
 * to check once per record.
 */
#ifndef NAGARE_CLI_FORMAT_H
#define NAGARE_CLI_FORMAT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "client/nagare.h"

/* A template longer than this is refused: far more than any record layout
 * needs, small enough to live on the stack. */
#define FMT_LITERAL_BYTES_MAX 1024
#define FMT_PIECES_MAX 256

/* The default --format: each value on its own line. */
#define FMT_DEFAULT "%v\\n"

enum fmt_kind {
    FMT_LITERAL,
    FMT_TOPIC,     /* %t */
    FMT_PARTITION, /* %p */
    FMT_OFFSET,    /* %o */
    FMT_TIMESTAMP, /* %T milliseconds since the epoch */
    FMT_KEY,       /* %k raw bytes; nothing for a null key */
    FMT_VALUE,     /* %v raw bytes; nothing for a null value */
    FMT_HEADERS,   /* %h k=v,k=v (a null value: just k) */
};

struct fmt_piece {
    enum fmt_kind kind;
    uint32_t literal_pos; /* FMT_LITERAL: its bytes in fmt.literal */
    uint32_t literal_len;
};

struct fmt {
    struct fmt_piece pieces[FMT_PIECES_MAX];
    size_t piece_count;
    char literal[FMT_LITERAL_BYTES_MAX];
    size_t literal_len;
};

/* A writer over a stdio stream with a sticky error (-errno, or 0). */
struct fmt_out {
    FILE *f;
    int err;
};

/* Compiles spec: placeholders %t %p %o %T %k %v %h %%, escapes \n \t \\.
 * Returns 0, or -NAGARE_EBADARG with a short reason written to why (a
 * buffer of why_bytes, NUL-terminated). */
int fmt_compile(struct fmt *f, const char *spec, char *why, size_t why_bytes);

/* Writes m through the template. Errors stay in o->err. */
void fmt_print(struct fmt_out *o, const struct fmt *f, const struct nagare_message *m);

/* Writes m as one JSON object and a newline:
 * {"topic":..,"partition":..,"offset":..,"timestamp_ms":..,"key":..,"value":..,
 *  "headers":[{"key":..,"value":..},...]}. A null key or value is null.
 * Strings are the bytes as they are where they are valid UTF-8; other bytes
 * and control characters become \u00XX escapes. Errors stay in o->err. */
void fmt_print_json(struct fmt_out *o, const struct nagare_message *m);

/* Writes n bytes as a JSON string with its quotes (exposed for tests and
 * for headers). */
void fmt_json_string(struct fmt_out *o, const void *p, size_t n);

#endif
