/*
 * client/cli/timestamp.h — the TIME argument of `nagare consume --from`.
 *
 * Accepted forms (documented in the consume help):
 *   @<epoch-ms>                       milliseconds since 1970-01-01T00:00:00Z
 *   YYYY-MM-DDTHH:MM:SS[.frac]ZONE    ISO-8601; 'T' may be 't' or a blank;
 *                                     frac is 1..9 digits (cut to
 *                                     milliseconds); ZONE is 'Z' or +HH:MM,
 *                                     -HH:MM, +HHMM, -HHMM. A time without a
 *                                     zone is refused rather than guessed.
 * Pure functions; any thread.
 */
#ifndef NAGARE_CLI_TIMESTAMP_H
#define NAGARE_CLI_TIMESTAMP_H

#include <stdint.h>

/* Parses s. Returns 0 with *ms_out (>= 0), or -NAGARE_EBADARG for anything
 * else: another shape, a field out of range (month 13, February 30, hour
 * 24, second 60), or a time before the epoch. */
int cli_time_parse(const char *s, int64_t *ms_out);

#endif
