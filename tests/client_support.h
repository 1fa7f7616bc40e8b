/*
 * tests/client_support.h — for suites that drive the real nagared through
 * libnagare (on top of tests/broker_support.h, which runs the broker).
 * Everything here asserts with criterion: call it from the test's thread.
 */
#ifndef NAGARE_TESTS_CLIENT_SUPPORT_H
#define NAGARE_TESTS_CLIENT_SUPPORT_H

#include <stdint.h>

#include "client/nagare.h"
#include "tests/broker_support.h"

/* An admin client of b's running broker (nagare_admin_destroy() it). */
nagare_admin *cs_admin(const struct bk *b);

/* Creates topic name with partitions partitions and the defaults. */
void cs_create_topic(const struct bk *b, const char *name, int32_t partitions);
/* Creates topic name of one partition with replication_factor copies;
 * returns nagare_topic_create()'s result. */
int cs_topic_create_rf(nagare_admin *a, const char *name, int16_t replication_factor);

#endif
