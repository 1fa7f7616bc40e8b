/*
 * broker/datadir_verify.h — `nagared --verify DIR`: checks a data directory
 * offline, with no broker running on it, and reports every problem.
 *
 * It reads everything and changes nothing: every topic's topic.meta (with
 * the catalog's own parser and checksum), every partition's segments and
 * indexes (storage/verify.h: every bad batch, not only the first), and the
 * broker's internal logs (group offsets, share-group state).
 */
#ifndef NAGARE_BROKER_DATADIR_VERIFY_H
#define NAGARE_BROKER_DATADIR_VERIFY_H

#include <stdio.h>

/* Verifies data_dir, printing one line per problem and a summary to out.
 * Returns the process exit status: 0 when everything is sound, 1 when
 * problems were found, 2 when the directory could not be read. */
int datadir_verify(const char *data_dir, FILE *out);

#endif
