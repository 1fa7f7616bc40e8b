/* net/kafka/errors.c — nagare's error codes as Kafka's (net/kafka/errors.h). */
#include "net/kafka/errors.h"

#include "base/err.h"

int16_t kafka_err_from(int rc)
{
    switch (rc) {
    case 0:
        return KAFKA_ERR_NONE;
    /* a request or batch the broker cannot take as it is: not retried */
    case -NG_ETRUNCATED:
    case -NG_EBADVARINT:
    case -NG_EBADLEN:
    case -NG_EBADCOUNT:
    case -NG_ECHECKSUM:
    case -NG_EBADDELTA:
    case -NG_EDECOMPRESS:
        return KAFKA_ERR_CORRUPT_MESSAGE;
    case -NG_EBADVERSION:
        return KAFKA_ERR_UNSUPPORTED_VERSION;
    case -NG_EBADCODEC:
        return KAFKA_ERR_UNSUPPORTED_COMPRESSION_TYPE;
    case -NG_ETOOBIG:
        return KAFKA_ERR_MESSAGE_TOO_LARGE;
    case -NG_EBADARG:
    case -NG_EPROTO:
        return KAFKA_ERR_INVALID_REQUEST;
    case -NG_ETRANSACTIONAL:
        return KAFKA_ERR_INVALID_RECORD;
    case -NG_EBADNAME:
        return KAFKA_ERR_INVALID_TOPIC;
    case -NG_EOFFSET_RANGE:
        return KAFKA_ERR_OFFSET_OUT_OF_RANGE;
    case -NG_EUNKNOWN_TOPIC:
    case -NG_ENOTFOUND:
        return KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION;
    case -NG_ETOPIC_EXISTS:
        return KAFKA_ERR_TOPIC_ALREADY_EXISTS;
    /* idempotent producers (Kafka's own meanings) */
    case -NG_EDUPLICATE:
        return KAFKA_ERR_DUPLICATE_SEQUENCE_NUMBER;
    case -NG_EOUT_OF_ORDER:
        return KAFKA_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER;
    case -NG_EPRODUCER_FENCED:
        return KAFKA_ERR_INVALID_PRODUCER_EPOCH;
    /* the broker cannot now: retried by the client */
    case -NG_ETIMEOUT:
        return KAFKA_ERR_REQUEST_TIMED_OUT;
    case -NG_EBUSY:
    case -NG_ECLOSED:
    case -NG_ECLUSTER_UNAVAILABLE:
        return KAFKA_ERR_LEADER_NOT_AVAILABLE;
    case -NG_EDISK_FULL:
    case -NG_EFAILED:
    case -NG_ECORRUPT:
    case -NG_EDISCONTINUITY:
        return KAFKA_ERR_KAFKA_STORAGE_ERROR;
    /* replication */
    case -NG_ENOT_LEADER:
    case -NG_ENO_REPLICA:
        return KAFKA_ERR_NOT_LEADER_OR_FOLLOWER;
    case -NG_ENOT_ENOUGH_REPLICAS:
        return KAFKA_ERR_NOT_ENOUGH_REPLICAS;
    case -NG_EFENCED_LEADER_EPOCH:
        return KAFKA_ERR_FENCED_LEADER_EPOCH;
    case -NG_EUNKNOWN_LEADER_EPOCH:
        return KAFKA_ERR_UNKNOWN_LEADER_EPOCH;
    case -NG_ENOT_CONTROLLER:
        return KAFKA_ERR_NOT_CONTROLLER;
    case -NG_ENOT_CLUSTERED:
        return KAFKA_ERR_INVALID_REPLICATION_FACTOR;
    /* groups */
    case -NG_ENOT_COORDINATOR:
        return KAFKA_ERR_NOT_COORDINATOR;
    case -NG_EREBALANCE:
        return KAFKA_ERR_REBALANCE_IN_PROGRESS;
    case -NG_EILLEGAL_GENERATION:
        return KAFKA_ERR_ILLEGAL_GENERATION;
    case -NG_EUNKNOWN_MEMBER:
        return KAFKA_ERR_UNKNOWN_MEMBER_ID;
    case -NG_EGROUP_NOT_EMPTY:
        return KAFKA_ERR_NON_EMPTY_GROUP;
    case -NG_EMEMBER_ID_REQUIRED:
        return KAFKA_ERR_MEMBER_ID_REQUIRED;
    case -NG_EFENCED_INSTANCE:
        return KAFKA_ERR_FENCED_INSTANCE_ID;
    case -NG_EINCONSISTENT_PROTOCOL:
        return KAFKA_ERR_INCONSISTENT_GROUP_PROTOCOL;
    case -NG_EGROUP_FULL:
        return KAFKA_ERR_GROUP_MAX_SIZE_REACHED;
    case -NG_EUNAUTHORIZED: /* in a per-topic field; group and cluster refusals are
                             * answered by their handlers (acl_serve_kafka) */
        return KAFKA_ERR_TOPIC_AUTHORIZATION_FAILED;
    /* logging in (broker/sasl_serve.h) */
    case -NG_EAUTH:
    case -NG_EAUTH_REQUIRED:
    case -NG_EAUTH_THROTTLED:
        return KAFKA_ERR_SASL_AUTHENTICATION_FAILED;
    case -NG_EMECHANISM:
        return KAFKA_ERR_UNSUPPORTED_SASL_MECHANISM;
    default:
        return KAFKA_ERR_UNKNOWN_SERVER;
    }
}
