/*
 * tests/kafka_support.h — random Kafka messages and their deep comparison,
 * for any message net/kafka/codec.h defines, driven by its descriptors:
 * the codec tests' round trips and the fuzz target's re-encoding.
 */
#ifndef NAGARE_TESTS_KAFKA_SUPPORT_H
#define NAGARE_TESTS_KAFKA_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/kafka/codec.h"

/* Sets *m (a msg->body struct) to its defaults, then gives every field
 * version has a value drawn from *seed (which moves on): edge integers
 * among random ones, strings of 0 to 200 bytes, null only where the
 * version allows it, arrays of up to 3 elements (nested ones included),
 * tagged fields at their default or not. Fields the version lacks keep
 * their defaults. Arrays come from a (ASSERTs it has room: 64 KiB is
 * plenty); strings and bytes point into static memory. */
void ks_fill(const struct kafka_msg *msg, int16_t version, uint64_t *seed, struct kw_arena *a,
             void *m);

/* Whether the msg->body structs at x and y hold the same values: strings,
 * bytes and records by content (and null alike), arrays element by
 * element. When they differ and why is not NULL, names the first field
 * that does in why[0..why_len). */
bool ks_equal(const struct kafka_msg *msg, const void *x, const void *y, char *why, size_t why_len);

#endif
