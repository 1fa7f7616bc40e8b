/*
 * net/kafka/errors.h — nagare's error codes as Kafka's clients know them.
 *
 * Every answer on the Kafka listener carries Kafka's int16 error codes
 * (Kafka's protocol guide, "Error Codes"), which each client library maps
 * to retriable or not: the mapping below picks, for each nagare code, the
 * Kafka code whose handling is right for it (a full disk is
 * KAFKA_STORAGE_ERROR, retried; a bad batch CORRUPT_MESSAGE, not). Codes
 * a request kind gives a narrower meaning (a bad session timeout in
 * JoinGroup) are mapped by its handler before this default.
 * Pure functions: any thread.
 */
#ifndef NAGARE_NET_KAFKA_ERRORS_H
#define NAGARE_NET_KAFKA_ERRORS_H

#include <stdint.h>

/* Kafka's error codes that nagare sends (the values are Kafka's). */
enum kafka_err {
    KAFKA_ERR_UNKNOWN_SERVER = -1,
    KAFKA_ERR_NONE = 0,
    KAFKA_ERR_OFFSET_OUT_OF_RANGE = 1,
    KAFKA_ERR_CORRUPT_MESSAGE = 2,
    KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION = 3,
    KAFKA_ERR_LEADER_NOT_AVAILABLE = 5,
    KAFKA_ERR_NOT_LEADER_OR_FOLLOWER = 6,
    KAFKA_ERR_REQUEST_TIMED_OUT = 7,
    KAFKA_ERR_REPLICA_NOT_AVAILABLE = 9,
    KAFKA_ERR_MESSAGE_TOO_LARGE = 10,
    KAFKA_ERR_NETWORK_EXCEPTION = 13,
    KAFKA_ERR_COORDINATOR_NOT_AVAILABLE = 15,
    KAFKA_ERR_NOT_COORDINATOR = 16,
    KAFKA_ERR_INVALID_TOPIC = 17,
    KAFKA_ERR_RECORD_LIST_TOO_LARGE = 18,
    KAFKA_ERR_NOT_ENOUGH_REPLICAS = 19,
    KAFKA_ERR_INVALID_REQUIRED_ACKS = 21,
    KAFKA_ERR_ILLEGAL_GENERATION = 22,
    KAFKA_ERR_INCONSISTENT_GROUP_PROTOCOL = 23,
    KAFKA_ERR_INVALID_GROUP_ID = 24,
    KAFKA_ERR_UNKNOWN_MEMBER_ID = 25,
    KAFKA_ERR_INVALID_SESSION_TIMEOUT = 26,
    KAFKA_ERR_REBALANCE_IN_PROGRESS = 27,
    KAFKA_ERR_UNSUPPORTED_SASL_MECHANISM = 33,
    KAFKA_ERR_ILLEGAL_SASL_STATE = 34,
    KAFKA_ERR_UNSUPPORTED_VERSION = 35,
    KAFKA_ERR_TOPIC_ALREADY_EXISTS = 36,
    KAFKA_ERR_INVALID_PARTITIONS = 37,
    KAFKA_ERR_INVALID_REPLICATION_FACTOR = 38,
    KAFKA_ERR_INVALID_CONFIG = 40,
    KAFKA_ERR_NOT_CONTROLLER = 41,
    KAFKA_ERR_INVALID_REQUEST = 42,
    KAFKA_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER = 45,
    KAFKA_ERR_DUPLICATE_SEQUENCE_NUMBER = 46,
    KAFKA_ERR_INVALID_PRODUCER_EPOCH = 47,
    KAFKA_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53,
    KAFKA_ERR_KAFKA_STORAGE_ERROR = 56,
    KAFKA_ERR_SASL_AUTHENTICATION_FAILED = 58,
    KAFKA_ERR_UNKNOWN_PRODUCER_ID = 59,
    KAFKA_ERR_NON_EMPTY_GROUP = 68,
    KAFKA_ERR_GROUP_ID_NOT_FOUND = 69,
    KAFKA_ERR_FETCH_SESSION_ID_NOT_FOUND = 70,
    KAFKA_ERR_FENCED_LEADER_EPOCH = 74,
    KAFKA_ERR_UNKNOWN_LEADER_EPOCH = 75,
    KAFKA_ERR_UNSUPPORTED_COMPRESSION_TYPE = 76,
    KAFKA_ERR_MEMBER_ID_REQUIRED = 79,
    KAFKA_ERR_GROUP_MAX_SIZE_REACHED = 81,
    KAFKA_ERR_FENCED_INSTANCE_ID = 82,
    KAFKA_ERR_INVALID_RECORD = 87,
    KAFKA_ERR_PRODUCER_FENCED = 90,
    KAFKA_ERR_UNKNOWN_TOPIC_ID = 100,
};

/* The Kafka code for rc (0, -errno or -NG_E*): KAFKA_ERR_NONE for 0,
 * KAFKA_ERR_UNKNOWN_SERVER for what Kafka has no better word for (a
 * system error on the broker, a code this table does not know). */
int16_t kafka_err_from(int rc);

#endif
