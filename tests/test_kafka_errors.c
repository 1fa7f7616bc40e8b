/*
 * tests/test_kafka_errors.c — net/kafka/errors.h: nagare's codes as the
 * Kafka codes whose client handling is right for them.
 */
#include <criterion/criterion.h>
#include <errno.h>

#include "base/err.h"
#include "net/kafka/errors.h"

Test(kafka_errors, retriable_conditions_map_to_codes_kafka_clients_retry)
{
    cr_assert_eq(kafka_err_from(0), KAFKA_ERR_NONE);
    cr_assert_eq(kafka_err_from(-NG_ENOT_LEADER), KAFKA_ERR_NOT_LEADER_OR_FOLLOWER);
    cr_assert_eq(kafka_err_from(-NG_ENOT_ENOUGH_REPLICAS), KAFKA_ERR_NOT_ENOUGH_REPLICAS);
    cr_assert_eq(kafka_err_from(-NG_ETIMEOUT), KAFKA_ERR_REQUEST_TIMED_OUT);
    cr_assert_eq(kafka_err_from(-NG_EDISK_FULL), KAFKA_ERR_KAFKA_STORAGE_ERROR);
    cr_assert_eq(kafka_err_from(-NG_ENOT_COORDINATOR), KAFKA_ERR_NOT_COORDINATOR);
    cr_assert_eq(kafka_err_from(-NG_EREBALANCE), KAFKA_ERR_REBALANCE_IN_PROGRESS);
    cr_assert_eq(kafka_err_from(-NG_EMEMBER_ID_REQUIRED), KAFKA_ERR_MEMBER_ID_REQUIRED);
}

Test(kafka_errors, bad_input_maps_to_codes_kafka_clients_do_not_retry)
{
    cr_assert_eq(kafka_err_from(-NG_ECHECKSUM), KAFKA_ERR_CORRUPT_MESSAGE);
    cr_assert_eq(kafka_err_from(-NG_EBADCODEC), KAFKA_ERR_UNSUPPORTED_COMPRESSION_TYPE);
    cr_assert_eq(kafka_err_from(-NG_ETOOBIG), KAFKA_ERR_MESSAGE_TOO_LARGE);
    cr_assert_eq(kafka_err_from(-NG_EBADNAME), KAFKA_ERR_INVALID_TOPIC);
    cr_assert_eq(kafka_err_from(-NG_EOUT_OF_ORDER), KAFKA_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
}

Test(kafka_errors, every_code_maps_to_a_kafka_code)
{
    for (int c = NG_ERR_FIRST + 1; c < NG_ERR_LAST; c++) {
        int16_t k = kafka_err_from(-c);
        cr_assert(k == KAFKA_ERR_UNKNOWN_SERVER || (k > 0 && k < 200), "%d -> %d", c, k);
    }
    cr_assert_eq(kafka_err_from(-EIO), KAFKA_ERR_UNKNOWN_SERVER, "a system error on the broker");
}
