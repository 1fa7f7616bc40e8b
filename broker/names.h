/*
 * broker/names.h — the order of the broker's tables sorted by topic name
 * (the catalog's and the server's): bytewise, a name before the names it
 * is a prefix of. A table says how to read its i-th name with a
 * names_at_fn.
 */
#ifndef NAGARE_BROKER_NAMES_H
#define NAGARE_BROKER_NAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* <0, 0 or >0 as a[0..a_len) sorts before, with or after b[0..b_len). */
int names_cmp(const char *a, size_t a_len, const char *b, size_t b_len);

/* The name of table's entry i, and its length. */
typedef const char *(*names_at_fn)(const void *table, uint32_t i, size_t *len);

/* In a table of count entries sorted by names_cmp: the index of the first
 * entry whose name is >= name[0..len) (count when there is none), and
 * whether that entry's name is name exactly. */
uint32_t names_lower_bound(const void *table, uint32_t count, names_at_fn name_at, const char *name,
                           size_t len, bool *found);

#endif
