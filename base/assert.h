/*
 * base/assert.h — always-on assertions.
 *
 * ASSERT() is for programmer errors only: a broken invariant, a violated
 * precondition. It is never compiled out (it does not look at NDEBUG), it
 * prints file, line and the failed expression to stderr, then aborts.
 * Operating errors (bad bytes from a peer, disk full) are returned, never
 * asserted.
 */
#ifndef NAGARE_BASE_ASSERT_H
#define NAGARE_BASE_ASSERT_H

#include <assert.h> /* static_assert */
#include <stddef.h> /* offsetof */

_Noreturn void base_assert_fail(const char *expr, const char *file, int line, const char *func);

#define ASSERT(expr)                                               \
    do {                                                           \
        if (__builtin_expect(!(expr), 0)) {                        \
            base_assert_fail(#expr, __FILE__, __LINE__, __func__); \
        }                                                          \
    } while (0)

/* Marks a place control must never reach. */
#define UNREACHABLE() base_assert_fail("unreachable", __FILE__, __LINE__, __func__)

/* Results of functions carrying this attribute must be looked at. */
#define MUST_USE __attribute__((warn_unused_result))

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* The struct of type holding member at ptr (a callback's embedded link or
 * waiter back to its request). */
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#endif
