#include "base/err.h"

#include <string.h>

static const char *const ng_err_text[] = {
    [NG_ETRUNCATED - NG_ERR_FIRST] = "input truncated: shorter than its header or lengths say",
    [NG_EBADVARINT - NG_ERR_FIRST] = "malformed varint (longer than 10 bytes)",
    [NG_ENOSPACE - NG_ERR_FIRST] = "encoder buffer too small",
    [NG_EBADLEN - NG_ERR_FIRST] = "length field out of bounds",
    [NG_EBADCOUNT - NG_ERR_FIRST] = "count negative or not matching the contents",
    [NG_ECHECKSUM - NG_ERR_FIRST] = "checksum mismatch",
    [NG_EBADVERSION - NG_ERR_FIRST] = "unsupported format or api version",
    [NG_EBADCODEC - NG_ERR_FIRST] = "unknown compression codec",
    [NG_EDECOMPRESS - NG_ERR_FIRST] = "compressed data does not decompress",
    [NG_EBADDELTA - NG_ERR_FIRST] = "record offset deltas not consecutive",
    [NG_ETOOBIG - NG_ERR_FIRST] = "larger than the configured maximum",
    [NG_EBADARG - NG_ERR_FIRST] = "invalid argument or field value",
    [NG_EOFFSET_RANGE - NG_ERR_FIRST] = "offset out of range",
    [NG_EFAILED - NG_ERR_FIRST] = "log failed after an I/O error; writes refused",
    [NG_ECORRUPT - NG_ERR_FIRST] = "corrupt data: checksum or structure is wrong",
    [NG_EBUSY - NG_ERR_FIRST] = "queue full; retry later",
    [NG_ECLOSED - NG_ERR_FIRST] = "closed",
    [NG_ENOTFOUND - NG_ERR_FIRST] = "not found",
    [NG_EDISCONTINUITY - NG_ERR_FIRST] = "batch offsets do not continue the log",
    [NG_EUNKNOWN_API - NG_ERR_FIRST] = "unknown api key",
    [NG_EUNKNOWN_TOPIC - NG_ERR_FIRST] = "unknown topic or partition",
    [NG_ETOPIC_EXISTS - NG_ERR_FIRST] = "topic already exists",
    [NG_EBADNAME - NG_ERR_FIRST] = "invalid name",
    [NG_EDUPLICATE - NG_ERR_FIRST] = "duplicate sequence number",
    [NG_EOUT_OF_ORDER - NG_ERR_FIRST] = "out of order sequence number",
    [NG_EPRODUCER_FENCED - NG_ERR_FIRST] = "producer fenced by a newer epoch",
    [NG_ETIMEOUT - NG_ERR_FIRST] = "timed out",
    [NG_ENOT_COORDINATOR - NG_ERR_FIRST] = "not the coordinator",
    [NG_EREBALANCE - NG_ERR_FIRST] = "group rebalance in progress",
    [NG_EILLEGAL_GENERATION - NG_ERR_FIRST] = "stale group generation",
    [NG_EUNKNOWN_MEMBER - NG_ERR_FIRST] = "unknown group member",
    [NG_EGROUP_NOT_EMPTY - NG_ERR_FIRST] = "group is not empty",
    [NG_EDISCONNECTED - NG_ERR_FIRST] = "disconnected",
    [NG_EPROTO - NG_ERR_FIRST] = "protocol violation by peer",
    [NG_ESYSTEM - NG_ERR_FIRST] = "system error on the peer (see its log)",
    [NG_ENOT_ACQUIRED - NG_ERR_FIRST] = "records not acquired by this member, or their lock ended",
    [NG_EDISK_FULL - NG_ERR_FIRST] = "the broker's disk is full; retry later",
    [NG_ETRANSACTIONAL - NG_ERR_FIRST] = "transactional and control batches are not supported",
    [NG_ENOT_LEADER - NG_ERR_FIRST] = "this broker does not lead the partition",
    [NG_ENOT_ENOUGH_REPLICAS - NG_ERR_FIRST] = "not enough in-sync replicas to accept the write",
    [NG_EFENCED_LEADER_EPOCH - NG_ERR_FIRST] = "the leader epoch is stale (fenced)",
    [NG_EUNKNOWN_LEADER_EPOCH - NG_ERR_FIRST] = "the leader epoch is newer than this broker knows",
    [NG_ENOT_CONTROLLER - NG_ERR_FIRST] = "not the controller (its epoch moved on)",
    [NG_ECONFLICT - NG_ERR_FIRST] = "the cluster state changed meanwhile; re-read and retry",
    [NG_ECLUSTER_UNAVAILABLE - NG_ERR_FIRST] = "the cluster's state store (etcd) is unavailable",
    [NG_ENOT_CLUSTERED - NG_ERR_FIRST] = "this broker runs alone; the request needs a cluster",
    [NG_ENO_REPLICA - NG_ERR_FIRST] = "this broker holds no replica of the partition",
    [NG_EMEMBER_ID_REQUIRED - NG_ERR_FIRST] = "join the group again with the member id given",
    [NG_EFENCED_INSTANCE - NG_ERR_FIRST] = "another member joined with this group instance id",
    [NG_EINCONSISTENT_PROTOCOL - NG_ERR_FIRST] =
        "the group's members use another protocol, or no assignor in common",
    [NG_EGROUP_FULL - NG_ERR_FIRST] = "the group has as many members (or bytes) as it may",
    [NG_EUNAUTHORIZED - NG_ERR_FIRST] =
        "not authorized: no ACL allows this principal the operation, or one denies it",
    [NG_EAUTH - NG_ERR_FIRST] = "authentication failed: unknown user or wrong password",
    [NG_EAUTH_REQUIRED - NG_ERR_FIRST] = "the broker requires authentication: log in first",
    [NG_EAUTH_THROTTLED - NG_ERR_FIRST] =
        "too many failed logins from this address; logins refused for a while",
    [NG_EMECHANISM - NG_ERR_FIRST] = "SASL mechanism not enabled on the broker",
    [NG_ETLS - NG_ERR_FIRST] = "the TLS handshake failed (a certificate not trusted or not for "
                               "this host, or TLS refused)",
};

const char *err_str(int rc)
{
    if (rc == 0) {
        return "success";
    }
    int code = rc < 0 ? -rc : rc;
    if (code >= NG_ERR_FIRST && code < NG_ERR_LAST) {
        const char *s = ng_err_text[code - NG_ERR_FIRST];
        return s ? s : "unknown nagare error";
    }
    if (code < NG_ERR_FIRST) {
        return strerror(code); /* glibc: thread-safe for known codes */
    }
    return "unknown error";
}
