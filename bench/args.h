/*
 * bench/args.h — command-line numbers for the bench programs: the whole
 * string must be the number, within [lo, hi]. On failure *out is left as
 * it was, so a caller can report the option and its default.
 */
#ifndef NAGARE_BENCH_ARGS_H
#define NAGARE_BENCH_ARGS_H

#include <stdbool.h>
#include <stdint.h>

/* Decimal, no sign. */
bool args_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out);
bool args_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out);

/* strtod's forms; NaN is refused by the bounds. */
bool args_double(const char *s, double lo, double hi, double *out);

#endif
