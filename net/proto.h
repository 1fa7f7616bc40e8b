/*
 * net/proto.h — the binary wire protocol: frames and every message, in both
 * directions. docs/protocol.md is the byte-level spec this implements;
 * net/proto.def defines every body once, and the functions of the messages
 * it marks "gen" are generated from it (net/proto_gen.py) to the
 * declarations below.
 *
 * Decoding never allocates and never copies: decoded strings and byte arrays
 * (a produce request's batches, a fetch response's records) point into the
 * frame buffer and are valid as long as it is. A body decoder walks the
 * whole body first — every length against the bytes left and its limit,
 * every count against its limit, no trailing bytes — and returns 0 only for
 * a well-formed body; after that its iterators cannot fail. Encoders write
 * into a caller's struct wr, leaving placeholders for the frame length and
 * array counts that proto_enc_end() back-patches; a failed encode leaves the
 * writer as it was before the frame began.
 *
 * Nothing here has mutable global state: every function is reentrant, and
 * a struct proto_enc or proto_dec belongs to one thread at a time.
 */
#ifndef NAGARE_NET_PROTO_H
#define NAGARE_NET_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/assert.h"
#include "base/bytes.h"
#include "base/err.h"

/* ---- api keys ---- */

/* Keys 8, 9 and 19 are unassigned: proto_api_known() is false for them,
 * and for every key >= PROTO_API_COUNT. 10-18 are consumer groups, 20-22
 * share groups, 23-25 replication, 26-29 authentication and users, 30-32
 * ACLs. Never renumber. */
enum proto_api {
    PROTO_API_API_VERSIONS = 0,
    PROTO_API_METADATA = 1,
    PROTO_API_CREATE_TOPICS = 2,
    PROTO_API_DELETE_TOPICS = 3,
    PROTO_API_PRODUCE = 4,
    PROTO_API_FETCH = 5,
    PROTO_API_LIST_OFFSETS = 6,
    PROTO_API_INIT_PRODUCER_ID = 7,
    PROTO_API_JOIN_GROUP = 10,
    PROTO_API_HEARTBEAT = 11,
    PROTO_API_LEAVE_GROUP = 12,
    PROTO_API_OFFSET_COMMIT = 13,
    PROTO_API_OFFSET_FETCH = 14,
    PROTO_API_LIST_GROUPS = 15,
    PROTO_API_DESCRIBE_GROUP = 16,
    PROTO_API_DELETE_GROUP = 17,
    PROTO_API_RESET_OFFSETS = 18,
    PROTO_API_SHARE_FETCH = 20,
    PROTO_API_SHARE_ACK = 21,
    PROTO_API_DLQ_REDRIVE = 22,
    PROTO_API_REPLICA_FETCH = 23,           /* follower -> leader (docs/cluster.md) */
    PROTO_API_OFFSET_FOR_LEADER_EPOCH = 24, /* KIP-101/279 truncation point */
    PROTO_API_REASSIGN_PARTITIONS = 25,     /* move replicas (docs/cluster.md) */
    PROTO_API_SASL_HANDSHAKE = 26,          /* log in (docs/protocol.md, "Authentication") */
    PROTO_API_SASL_AUTHENTICATE = 27,
    PROTO_API_ALTER_USER = 28,     /* add, change or delete a user's credentials */
    PROTO_API_DESCRIBE_USERS = 29, /* list users and their mechanisms */
    PROTO_API_CREATE_ACLS = 30,    /* ACLs (docs/security.md, "Authorization") */
    PROTO_API_DESCRIBE_ACLS = 31,
    PROTO_API_DELETE_ACLS = 32,
    PROTO_API_COUNT, /* one past the highest key: sizes tables indexed by key */
};

/* ---- limits (docs/protocol.md, "Limits") ---- */

/* The u32 length that starts every frame. */
#define PROTO_FRAME_PREFIX_BYTES 4

/* Frame maxima bound the length field (the bytes after the prefix). The
 * default holds a 16 MiB batch for each of a few partitions with room to
 * spare; the limit keeps every length a positive i32 (byte arrays are i32)
 * and far from overflowing a size_t sum. Configured values lie in
 * [PROTO_FRAME_BYTES_MIN, PROTO_FRAME_BYTES_LIMIT]. */
#define PROTO_FRAME_BYTES_DEFAULT (64u * 1024 * 1024)
#define PROTO_FRAME_BYTES_MIN (64u * 1024)
#define PROTO_FRAME_BYTES_LIMIT (1024u * 1024 * 1024)

/* api key, api version, correlation id, client id length. */
#define PROTO_REQ_HEADER_BYTES_MIN 10
/* correlation id, error. */
#define PROTO_RESP_HEADER_BYTES 6

/* Longest string: a DNS host name is at most 253 bytes and a topic name
 * 249; 1 KiB leaves room for client ids and later group and member ids. */
#define PROTO_STRING_BYTES_MAX 1024
/* 249, as in Kafka: "<topic>-<partition>" stays a valid 255-byte file name. */
#define PROTO_TOPIC_NAME_BYTES_MAX 249
/* Topic names beginning with "__" are the brokers' own; this one holds the
 * committed offsets in a cluster, and the leader of its partition 0 is the
 * coordinator of every group (docs/cluster.md, section 5). */
#define PROTO_OFFSETS_TOPIC "__offsets"
/* Likewise the share groups' state in a cluster: the leader of its
 * partition 0 coordinates every share group (ShareFetch, ShareAck). */
#define PROTO_SHARE_STATE_TOPIC "__share_state"

/* Array counts. Topics per message (also the most a broker may hold, so a
 * Metadata response can list them all); partitions per topic (also the
 * most a topic may have); partitions summed over one Produce, Fetch or
 * ListOffsets message, so the broker can size per-request state up front;
 * api ranges in an ApiVersions response. */
#define PROTO_TOPICS_MAX 16384
#define PROTO_PARTITIONS_MAX 4096
#define PROTO_REQUEST_PARTITIONS_MAX 4096
#define PROTO_API_RANGES_MAX 48

/* ACLs in a CreateAcls request or a DescribeAcls / DeleteAcls answer:
 * as many as a broker keeps (broker/acl.h sizes its store by it). 4096
 * rules of about 600 bytes each is 2.4 MB at most, far past what a
 * cluster's operators write by hand or by tool. */
#define PROTO_ACLS_MAX 4096

/* Group ids as the broker accepts them: the same bound as a topic name (the
 * broker keeps both in the same fixed buffers). */
#define PROTO_GROUP_ID_BYTES_MAX 249
/* Member ids, NUL included, as the broker gives them out and both sides
 * keep them. A group member is "member-" and 16 hex digits (23 bytes); 48
 * leaves room without growing the broker's per-member state much, and a
 * longer id in a request is refused. A share member is a decimal u64: at
 * most 20 digits. */
#define PROTO_GROUP_MEMBER_ID_BYTES 48
#define PROTO_SHARE_MEMBER_ID_BYTES 24
/* Users in a DescribeUsers answer: as many as a broker keeps
 * (broker/users.h). A SASL message (SaslAuthenticate's bytes): 4 KiB, past
 * any SCRAM message (auth/scram.h, SCRAM_MSG_BYTES_MAX). */
#define PROTO_USERS_MAX 4096
#define PROTO_SASL_BYTES_MAX 4096

/* Groups in a ListGroups answer: as many as topics a broker may hold. */
#define PROTO_GROUPS_MAX 16384
/* Members in a DescribeGroup answer: a group's most (GROUP_MEMBERS_MAX in
 * broker/group_state.h, checked there). */
#define PROTO_GROUP_MEMBERS_MAX 1024
/* Ranges per partition in a ShareFetch answer (acquired) or a ShareAck
 * request (acks): at worst one per record in flight, and a share group
 * keeps at most 10000 records in flight per partition (broker/share_state.h). */
#define PROTO_SHARE_RANGES_MAX 16384
/* Records one ShareFetch acquires at most: a larger records_max acts as
 * this (the broker sizes its per-fetch scratch by it), and it is the most
 * a share group keeps in flight per partition (broker/share_state.h), so one
 * fetch can take a partition's whole window. */
#define PROTO_SHARE_FETCH_RECORDS_MAX 10000

/* Wire sizes, for sizing buffers before encoding: each is the codec's own
 * layout (docs/protocol.md; checked against the encoders in
 * tests/test_proto.c), never derived again elsewhere. */
/* A string: its i16 length, then its bytes. An error code: an i16. */
#define PROTO_STR_BYTES(len) (2 + (size_t)(len))
#define PROTO_ERR_BYTES 2
/* An entry of a topic array: its name and its i32 partition count. */
#define PROTO_TOPIC_BYTES(name_len) (PROTO_STR_BYTES(name_len) + 4)
#define PROTO_TOPIC_BYTES_MAX PROTO_TOPIC_BYTES(PROTO_TOPIC_NAME_BYTES_MAX)
/* The shared partition elements: an index; an index and error; an index,
 * offset and error (proto_enc_partition_index / _result / _offset). */
#define PROTO_PARTITION_INDEX_BYTES 4
#define PROTO_PARTITION_RESULT_BYTES 6
#define PROTO_PARTITION_OFFSET_BYTES 14
/* OffsetCommit request: a partition's index and offset. ListOffsets
 * request: a partition's index and timestamp. */
#define PROTO_COMMIT_PARTITION_BYTES 12
#define PROTO_LIST_OFFSETS_PARTITION_BYTES 12
/* DescribeGroup response: a member (its id, its topic count); a
 * partition's committed offset entry. ListGroups response: a group (its
 * id, kind, member count). */
#define PROTO_MEMBER_DESC_BYTES(id_len) (PROTO_STR_BYTES(id_len) + 4)
#define PROTO_OFFSET_DESC_BYTES 36
#define PROTO_GROUP_LISTING_BYTES(id_len) (PROTO_STR_BYTES(id_len) + 5)
/* Metadata response: a partition; a v1 topic's configuration (after the
 * topic's name and error, before its partitions). */
#define PROTO_METADATA_PARTITION_BYTES 22
#define PROTO_METADATA_TOPIC_CONFIG_BYTES 40
/* Fetch response: a partition before its records (index, error, two
 * offsets, from v1 the offset to resume at, records length). */
#define PROTO_FETCH_RESP_PARTITION_BYTES(version) ((version) >= 1 ? 34 : 26)
/* ShareFetch response: a partition before its ranges and records (index,
 * error, range count, records length); one acquired range. */
#define PROTO_SHARE_FETCH_RESP_PARTITION_BYTES 14
#define PROTO_SHARE_ACQUIRED_BYTES 18
/* ShareAck request: a partition entry before its ranges (index, range
 * count); one range (first, last, type). ShareAck response: a partition
 * result per entry (PROTO_PARTITION_RESULT_BYTES). */
#define PROTO_SHARE_ACK_PARTITION_BYTES 8
#define PROTO_SHARE_ACK_RANGE_BYTES 17
/* ReplicaFetch request: a partition (index, leader epoch, fetch offset,
 * durable offset). Response: a partition before its records
 * (index, error, high watermark, log start, records length).
 * OffsetForLeaderEpoch request: a partition (index, current leader epoch,
 * leader epoch); response: a partition (index, error, epoch, end offset). */
#define PROTO_REPLICA_FETCH_REQ_PARTITION_BYTES 24
#define PROTO_REPLICA_FETCH_RESP_PARTITION_BYTES 26
#define PROTO_EPOCH_REQ_PARTITION_BYTES 12
#define PROTO_EPOCH_RESP_PARTITION_BYTES 18

/* ---- a cluster (Metadata v2, CreateTopics v1; docs/cluster.md) ---- */

/* Brokers in a Metadata v2 answer: as many as a cluster may have
 * (CLUSTER_BROKERS_MAX, checked against it in broker/admin.c). */
#define PROTO_BROKERS_MAX 1024
/* Replicas (and in-sync replicas) of one partition in a Metadata v2 answer:
 * the replication factor's limit (CLUSTER_REPLICAS_MAX, 7) with room for a
 * later raise; decoders copy them into fixed arrays of this size. */
#define PROTO_REPLICAS_MAX 16
/* Metadata v2 response: one broker (id, host, port); a partition with n
 * replicas and m in sync (v1's fields, leader, leader epoch, two arrays);
 * what v2 adds before the topics (answering broker's id, controller id,
 * broker count). */
#define PROTO_BROKER_BYTES(host_len) (4 + PROTO_STR_BYTES(host_len) + 2)
#define PROTO_METADATA_PARTITION_V2_BYTES(n, m) \
    (PROTO_METADATA_PARTITION_BYTES + 16 + 4 * ((size_t)(n) + (size_t)(m)))
#define PROTO_METADATA_V2_HEAD_BYTES 12
/* Metadata v3: v2's partition and the target replicas of a reassignment in
 * progress (t of them, 0 when none). */
#define PROTO_METADATA_PARTITION_V3_BYTES(n, m, t) \
    (PROTO_METADATA_PARTITION_V2_BYTES(n, m) + 4 + 4 * (size_t)(t))
/* ReassignPartitions request: a partition with n target replicas (index,
 * then the id array). Response: a partition result per entry
 * (PROTO_PARTITION_RESULT_BYTES). */
#define PROTO_REASSIGN_PARTITION_BYTES(n) (4 + 4 + 4 * (size_t)(n))

static_assert(PROTO_REPLICAS_MAX <= UINT8_MAX, "replica counts are kept in a u8");

static_assert(PROTO_FRAME_BYTES_MIN <= PROTO_FRAME_BYTES_DEFAULT &&
                  PROTO_FRAME_BYTES_DEFAULT <= PROTO_FRAME_BYTES_LIMIT,
              "frame byte limits out of order");
static_assert(PROTO_FRAME_BYTES_LIMIT <= INT32_MAX, "lengths must fit an i32");
static_assert(PROTO_STRING_BYTES_MAX <= INT16_MAX, "strings have i16 lengths");
static_assert(PROTO_TOPIC_NAME_BYTES_MAX <= PROTO_STRING_BYTES_MAX, "a topic name is a string");
static_assert(PROTO_API_COUNT <= PROTO_API_RANGES_MAX, "ApiVersions must list every api");
static_assert(PROTO_GROUP_ID_BYTES_MAX <= PROTO_STRING_BYTES_MAX, "a group id is a string");
static_assert(sizeof("member-0123456789abcdef") <= PROTO_GROUP_MEMBER_ID_BYTES,
              "a group member id the broker gives fits");
static_assert(sizeof("18446744073709551615") <= PROTO_SHARE_MEMBER_ID_BYTES,
              "a share member id (a decimal u64) fits");
static_assert(PROTO_SHARE_FETCH_RECORDS_MAX <= PROTO_SHARE_RANGES_MAX,
              "one fetch's acquired ranges fit a partition's answer");

/* ---- field values ---- */

#define PROTO_ACKS_NONE 0   /* no response frame at all */
#define PROTO_ACKS_LEADER 1 /* answered once written to the log file */
#define PROTO_ACKS_ALL (-1) /* answered once fdatasync'd */

#define PROTO_TIMESTAMP_EARLIEST (-2) /* ListOffsets: the log start offset */
#define PROTO_TIMESTAMP_LATEST (-1)   /* ListOffsets: the log end offset */

#define PROTO_CONFIG_DEFAULT (-1)   /* CreateTopics: use the broker's default */
#define PROTO_BROKER_NONE (-1)      /* Metadata v2: no leader, no controller */
#define PROTO_CONFIG_UNLIMITED (-2) /* CreateTopics retention: keep forever */

#define PROTO_GROUP_KIND_CONSUMER 0 /* ListGroups, DescribeGroup: pub/sub */
#define PROTO_GROUP_KIND_SHARE 1    /* queue semantics */

#define PROTO_RESET_EARLIEST 0  /* ResetOffsets: the log start */
#define PROTO_RESET_LATEST 1    /* the log end */
#define PROTO_RESET_OFFSET 2    /* value, within [log start, log end] */
#define PROTO_RESET_TIMESTAMP 3 /* first record with timestamp >= value */

#define PROTO_ACK_ACCEPT 0  /* ShareAck: processed, never delivered again */
#define PROTO_ACK_RELEASE 1 /* give back for redelivery */
#define PROTO_ACK_REJECT 2  /* unprocessable: to the dead-letter topic */

/* ---- errors ---- */

/* The wire carries an error as a u16: 0 for none, else the NG_E* value.
 * -errno and anything else without a wire code become NG_ESYSTEM.
 * Precondition: rc <= 0. Any thread. */
uint16_t proto_err_to_wire(int rc);

/* The inverse: 0, or -code. Codes 1..4095 are not defined (they would
 * collide with errno) and come back as -NG_EPROTO; decoders refuse them
 * before this is reached. Codes past NG_ERR_LAST (from a newer peer) are
 * kept; err_str() calls them unknown. Any thread. */
int proto_err_from_wire(uint16_t code);

/* Whether a Produce that failed with err may be sent again (to whoever
 * leads the partition then): the connection was lost or timed out (the
 * records may or may not be in: idempotence tells), the broker was busy,
 * closing or out of disk, or leadership is moving (not the leader, a
 * stale or unknown epoch, too few in sync, a topic not yet known there).
 * -errno from the socket counts as a lost connection. Any thread. */
bool proto_produce_retriable(int err);

/* ---- apis and versions ---- */

/* "Produce", "Fetch"...; "unknown" for keys not known. Static string. */
const char *proto_api_name(uint16_t api_key);

/* True when this codec has the layouts of api_key: below PROTO_API_COUNT
 * and not an unassigned key (8, 9, 19). Whether a broker serves it is
 * another matter: ApiVersions says. */
bool proto_api_known(uint16_t api_key);

/* 0 when this codec speaks api_key at api_version, -NG_EUNKNOWN_API for a
 * key it does not know, -NG_EBADVERSION for a version it does not know. */
MUST_USE int proto_api_check(uint16_t api_key, uint16_t api_version);

/* Highest version of api_key this codec speaks. Precondition:
 * proto_api_known(api_key). */
uint16_t proto_api_version_max(uint16_t api_key);

/* ---- strings and topic names ---- */

/* A string on the wire. Decoded, ptr points into the frame (not
 * NUL-terminated) and is valid as long as the frame buffer; len -1 is the
 * null string (ptr NULL), len 0 the empty one. */
struct proto_str {
    const char *ptr;
    int32_t len;
};

#define PROTO_STR_NULL ((struct proto_str){.ptr = NULL, .len = -1})

/* A proto_str over a NUL-terminated string (NULL gives the null string).
 * The result borrows s. */
static inline struct proto_str proto_str_make(const char *s)
{
    if (s == NULL) {
        return PROTO_STR_NULL;
    }
    size_t n = strlen(s);
    return (struct proto_str){.ptr = s, .len = n > INT32_MAX ? INT32_MAX : (int32_t)n};
}

/* True when s is not null and holds exactly the bytes of cstr. */
static inline bool proto_str_eq(struct proto_str s, const char *cstr)
{
    size_t n = strlen(cstr);
    return s.len >= 0 && (size_t)s.len == n && (n == 0 || memcmp(s.ptr, cstr, n) == 0);
}

/* Copies s into buf as a NUL-terminated string. Returns 0, -NG_EBADARG for
 * the null string, -NG_ETOOBIG when it needs more than cap bytes. */
MUST_USE int proto_str_copy(struct proto_str s, char *buf, size_t cap);

/* True when name[0..len) is a valid topic name: 1..249 bytes of ASCII
 * letters, digits, '.', '_' and '-', and not "." or "..". Broker and client
 * check it before a name becomes a directory or goes on the wire; a bad
 * name is answered with NG_EBADNAME. Decoders do not check it (a bad name
 * gets a per-topic error, not a refused request). Any thread. */
bool proto_topic_name_valid(const char *name, size_t len);

/* ---- frames ---- */

/* Reads the 4-byte prefix of a request frame and checks its length before
 * anything is allocated for the frame: on 0, *len_out is the number of
 * bytes that follow (the header and body), in
 * [PROTO_REQ_HEADER_BYTES_MIN, frame_bytes_max]. Returns -NG_ETOOBIG when
 * the length exceeds frame_bytes_max (refuse and close the connection),
 * -NG_EBADLEN when it is too short to hold a request header.
 * Precondition: frame_bytes_max <= PROTO_FRAME_BYTES_LIMIT. */
MUST_USE int proto_request_frame_len(const uint8_t prefix[PROTO_FRAME_PREFIX_BYTES],
                                     uint32_t frame_bytes_max, uint32_t *len_out);

/* The same for a response frame: length in
 * [PROTO_RESP_HEADER_BYTES, frame_bytes_max]. */
MUST_USE int proto_response_frame_len(const uint8_t prefix[PROTO_FRAME_PREFIX_BYTES],
                                      uint32_t frame_bytes_max, uint32_t *len_out);

struct proto_req_header {
    uint16_t api_key;
    uint16_t api_version;
    uint32_t correlation_id;
    struct proto_str client_id; /* may be null; points into the frame */
};

/* Decodes a request header from r, a reader over the bytes after the
 * prefix (the whole frame, in memory), leaving r at the body. Returns 0;
 * -NG_ETRUNCATED or -NG_EBADLEN for a malformed header; -NG_EUNKNOWN_API or
 * -NG_EBADVERSION when the api is not served, with *h filled and r at the
 * body, so the caller can answer with proto_resp_error_encode(). Whenever r
 * holds at least 8 bytes (any frame that passed proto_request_frame_len()),
 * h->api_key, api_version and correlation_id are set even on error. */
MUST_USE int proto_req_header_decode(struct rd *r, struct proto_req_header *h);

struct proto_resp_header {
    uint32_t correlation_id;
    int err; /* request-level error: 0, or a negative NG_E* code */
};

/* Decodes a response header from r (the bytes after the prefix), leaving r
 * at the body. A response with a request-level error has no body. Returns 0
 * (check h->err, then decode the body if it is 0), -NG_ETRUNCATED,
 * -NG_EBADARG for an error code 1..4095, -NG_EBADLEN when an error
 * response carries body bytes. */
MUST_USE int proto_resp_header_decode(struct rd *r, struct proto_resp_header *h);

/* Writes a whole response frame that carries only a request-level error
 * (err < 0): the answer to an unknown api, a bad version or a malformed
 * body. Returns 0 or -NG_ENOSPACE (w unchanged). */
MUST_USE int proto_resp_error_encode(struct wr *w, uint32_t correlation_id, int err);

/* ---- encoding ---- */

/* An encoder writes one frame into w. Begin it with a proto_<api>_<req|resp>
 * _begin() (or use a one-shot *_encode()), add topics and partitions in
 * order, then call proto_enc_end(). Between begin and end, w belongs to the
 * encoder (except while a Fetch response partition is open, see below).
 * Arguments passed to encoder functions are copied; they need to live only
 * during the call. Calling functions for another message, or a partition
 * before its topic, is a programmer error (asserted). Operating errors — a
 * string over PROTO_STRING_BYTES_MAX or null where not allowed, a count over
 * its limit, a full buffer — stick and are returned by proto_enc_end().
 * Fields are private. */
struct proto_enc {
    struct wr *w;
    int err;
    uint16_t api_key;
    uint16_t api_version;
    bool response;
    uint8_t shape;           /* how topics are laid out */
    size_t frame_at;         /* offset in w of the frame length */
    size_t topics_at;        /* offset of the outer count, or SIZE_MAX */
    size_t parts_at;         /* offset of the open partition count, or SIZE_MAX */
    size_t records_at;       /* Fetch, ShareFetch: open records length, or SIZE_MAX */
    size_t members_at;       /* DescribeGroup members, Metadata v2 brokers: count, or SIZE_MAX */
    const void *part_schema; /* the partition element being written */
    int32_t topic_count;
    int32_t part_count;
    int32_t member_count;
    uint32_t part_total;
    uint8_t section;          /* DescribeGroup: members, then offsets; Metadata v2: brokers */
    uint64_t spliced_records; /* bytes spliced into the open records field */
    uint64_t spliced_total;   /* bytes spliced into the frame */
};

/* Back-patches the counts and the frame length and finishes the frame.
 * Returns 0 with w->pos just past the frame, or the first error:
 * -NG_ENOSPACE (w too small), -NG_EBADLEN (a string or byte array too long
 * or null where not allowed), -NG_EBADCOUNT (a count over its limit),
 * -NG_ETOOBIG (frame over PROTO_FRAME_BYTES_LIMIT); then w->pos is back
 * where the frame began and w->err is 0, as if nothing had been written.
 * Size w to the peer's frame maximum to keep frames within it. */
MUST_USE int proto_enc_end(struct proto_enc *e);

/* Bytes of the frame written so far, prefix included (spliced bytes too). */
static inline size_t proto_enc_frame_bytes(const struct proto_enc *e)
{
    return e->w->pos - e->frame_at + (size_t)e->spliced_total;
}

/* Adds a topic to a Metadata, DeleteTopics or JoinGroup request (a name
 * alone), or opens a topic whose partitions follow, in every other message
 * with topics and partitions (in DescribeGroup: within the member last
 * added, or in its offsets). name must not be null. */
void proto_enc_topic(struct proto_enc *e, struct proto_str name);

/* Partition elements shared by several messages; each asserts that the
 * message being written has that element.
 * - a bare partition index: Heartbeat response, OffsetFetch, ResetOffsets
 *   and ShareFetch requests, DescribeGroup member assignments;
 * - partition and error: OffsetCommit and ShareAck responses;
 * - partition, offset and error: OffsetFetch and ResetOffsets responses. */
struct proto_partition_result {
    int32_t partition;
    int err;
};

struct proto_partition_offset {
    int32_t partition;
    int64_t offset; /* -1: none */
    int err;
};

void proto_enc_partition_index(struct proto_enc *e, int32_t partition);
void proto_enc_partition_result(struct proto_enc *e, const struct proto_partition_result *r);
void proto_enc_partition_offset(struct proto_enc *e, const struct proto_partition_offset *p);

/* ---- decoding ---- */

/* Iterates the arrays of a decoded body. Fields are private except these:
 * topic_count is the number of elements in the body's outer array (topics,
 * topic results, ListGroups' groups, DescribeGroup's members), -1 for a
 * Metadata or OffsetFetch request asking for all topics; partition_count
 * is the total of its partition arrays that count toward
 * PROTO_REQUEST_PARTITIONS_MAX (all but Metadata's and the all-partition
 * listings of OffsetFetch and DescribeGroup): in a Produce, Fetch,
 * ListOffsets, OffsetCommit, ShareFetch or ShareAck request, how many
 * partitions the iterators give over all its topics.
 * After the body decoder returned 0 the next functions cannot fail: they
 * return true with an item, false past the last. Pointers in items are
 * valid as long as the frame buffer. */
struct proto_dec {
    struct rd rd;
    const void *part_schema;
    uint16_t api_key;
    uint16_t api_version;
    bool response;
    uint8_t shape;
    uint8_t section; /* DescribeGroup: members, then offsets */
    int32_t topic_count;
    uint32_t partition_count;
    int32_t topics_left;
    int32_t parts_left;
    int32_t members_left; /* DescribeGroup */
};

/* A topic's configuration as Metadata v1 carries it, after the topic's
 * error. Retention limits that are off are PROTO_CONFIG_UNLIMITED (-2), as
 * in CreateTopics. All zero for a topic with an error, and in v0. */
struct proto_topic_config {
    int32_t partition_count;
    int64_t retention_ms;
    int64_t retention_bytes;
    int64_t segment_bytes;
    int64_t segment_ms;
    int32_t batch_bytes_max;
};

struct proto_topic {
    struct proto_str name;            /* never null */
    int err;                          /* Metadata response only; 0 elsewhere */
    int32_t partition_count;          /* 0 where a topic has no partition array */
    struct proto_topic_config config; /* Metadata response v1 only; else zero */
};

/* Next topic of any message with a topic array (in DescribeGroup: of the
 * current member's assignment, or of its offsets). Partitions of the
 * previous topic that were not read are skipped. */
bool proto_next_topic(struct proto_dec *d, struct proto_topic *t);

/* Next partition of the current topic, for the shared partition elements
 * (see proto_enc_partition_index); each asserts the message has it. */
bool proto_next_partition_index(struct proto_dec *d, int32_t *partition);
bool proto_next_partition_result(struct proto_dec *d, struct proto_partition_result *r);
bool proto_next_partition_offset(struct proto_dec *d, struct proto_partition_offset *p);

/* ---- authentication values (docs/protocol.md, "Authentication") ---- */

#define PROTO_USER_UPSERT 0 /* AlterUser: set the user's credential of one mechanism */
#define PROTO_USER_DELETE 1 /* AlterUser: drop one mechanism's, or all (PROTO_MECH_ALL) */
#define PROTO_MECH_ALL (-1) /* AlterUser delete: every mechanism of the user */

/*
 * ---- messages ----
 *
 * For each message: the fields it carries, an encoder, a decoder. Every
 * *_begin() starts a frame in w (precondition: w->err == 0, version <=
 * proto_api_version_max()); finish it with proto_enc_end(). Every *_decode()
 * takes the body reader left by proto_req_header_decode() or
 * proto_resp_header_decode() (response decoders: precondition h.err == 0),
 * and the header's api version; on 0 the whole body has been checked and
 * consumed. Decoders return 0, -NG_EBADVERSION, -NG_ETRUNCATED (a length or
 * count past the end), -NG_EBADLEN (string or byte array length < -1, -1
 * where null is not allowed, over its limit; or trailing bytes),
 * -NG_EBADCOUNT (count < 0, or over its limit), -NG_EBADARG (an error code
 * 1..4095, or a field value noted below).
 */

/* ApiVersions: empty request. The response lists, per api, the versions
 * the broker speaks, and the broker's request frame maximum. */
struct proto_api_range {
    uint16_t api_key;
    uint16_t version_min;
    uint16_t version_max;
};

struct proto_api_versions_resp {
    uint32_t frame_bytes_max;
    uint32_t api_count; /* <= PROTO_API_RANGES_MAX */
    struct proto_api_range apis[PROTO_API_RANGES_MAX];
};

MUST_USE int proto_api_versions_req_encode(struct wr *w, uint16_t version, uint32_t correlation_id,
                                           struct proto_str client_id);
MUST_USE int proto_api_versions_req_decode(struct rd *body, uint16_t version);

/* Fills resp with every api and version this codec speaks. */
void proto_api_versions_fill(struct proto_api_versions_resp *resp, uint32_t frame_bytes_max);
/* One-shot: returns as proto_enc_end(); -NG_EBADCOUNT for api_count over
 * PROTO_API_RANGES_MAX. */
MUST_USE int proto_api_versions_resp_encode(struct wr *w, uint16_t version, uint32_t correlation_id,
                                            const struct proto_api_versions_resp *resp);
MUST_USE int proto_api_versions_resp_decode(struct rd *body, uint16_t version,
                                            struct proto_api_versions_resp *out);

/* Metadata. Request: topic names, or all topics (a null array). Response:
 * the broker's address, then per topic an error (v1: then its
 * configuration) and per partition an error and the earliest and latest
 * offsets. Iterate the request with proto_next_topic() (d.topic_count -1:
 * all topics); the response with proto_next_topic() (t.err is the topic's
 * error, t.config its v1 configuration), then
 * proto_metadata_resp_next_partition(). Versions 0, 1 and 2 have the same
 * request.
 *
 * v2 (a cluster) adds, before the topics, the answering broker's id, the
 * controller's id and every live broker (id, host, port); and per
 * partition its leader, leader epoch, replicas and in-sync replicas.
 * Encode: _begin(), then _broker() for each broker, then the topics (the
 * first topic, or proto_enc_end(), closes the broker array). Decode:
 * _decode() fills broker_id, controller_id and broker_count and leaves a
 * cursor over the brokers in *out, read with _next_broker() at any time
 * while the frame lives (independently of the topics).
 *
 * v3 adds per partition, after the in-sync replicas, the target replicas
 * of a reassignment in progress (an empty array when none). */
struct proto_metadata_resp {
    struct proto_str host; /* the answering broker's advertised address */
    uint16_t port;
    int32_t broker_id;     /* v2: the answering broker's id */
    int32_t controller_id; /* v2: PROTO_BROKER_NONE while there is none */
    int32_t broker_count;  /* decoded v2: brokers listed (0 in v0, v1) */
    struct rd brokers;     /* decoded: private cursor for _next_broker() */
    int32_t brokers_left;  /* private */
};

struct proto_broker {
    int32_t id;
    struct proto_str host; /* not null */
    uint16_t port;
};

struct proto_metadata_partition {
    int32_t partition;
    int err;
    int64_t offset_earliest; /* log start offset */
    int64_t offset_latest;   /* log end offset: the next offset written */
    /* v2; decoded v0 and v1: leader and epoch PROTO_BROKER_NONE, no replicas */
    int32_t leader; /* broker id, or PROTO_BROKER_NONE */
    int32_t leader_epoch;
    uint8_t replica_count;                /* <= PROTO_REPLICAS_MAX (encoders refuse more) */
    int32_t replicas[PROTO_REPLICAS_MAX]; /* the first is the preferred leader */
    uint8_t isr_count;                    /* <= PROTO_REPLICAS_MAX */
    int32_t isr[PROTO_REPLICAS_MAX];
    /* v3; decoded v0-v2: none. A reassignment in progress moves the
     * partition onto these replicas (the first the preferred leader); while
     * it runs, replicas holds them and the old ones together. */
    uint8_t target_count; /* 0: no reassignment in progress */
    int32_t target[PROTO_REPLICAS_MAX];
};

/* topics_all: send a null array; no proto_enc_topic() may follow. */
void proto_metadata_req_begin(struct proto_enc *e, struct wr *w, uint16_t version,
                              uint32_t correlation_id, struct proto_str client_id, bool topics_all);
MUST_USE int proto_metadata_req_decode(struct rd *body, uint16_t version, struct proto_dec *d);

void proto_metadata_resp_begin(struct proto_enc *e, struct wr *w, uint16_t version,
                               uint32_t correlation_id, const struct proto_metadata_resp *m);
/* Adds a topic; in v1 its configuration is written as all zeros (for a
 * topic with an error). */
void proto_metadata_resp_topic(struct proto_enc *e, struct proto_str name, int err);
/* Adds a topic with its configuration; v0 leaves the configuration out. */
void proto_metadata_resp_topic_config(struct proto_enc *e, struct proto_str name, int err,
                                      const struct proto_topic_config *cfg);
/* v2 writes the leader, epoch, replicas and ISR too (a count over
 * PROTO_REPLICAS_MAX fails with -NG_EBADCOUNT), v3 the target replicas
 * as well; v0 and v1 leave them out. */
void proto_metadata_resp_partition(struct proto_enc *e, const struct proto_metadata_partition *p);
MUST_USE int proto_metadata_resp_decode(struct rd *body, uint16_t version,
                                        struct proto_metadata_resp *out, struct proto_dec *d);
bool proto_metadata_resp_next_partition(struct proto_dec *d, struct proto_metadata_partition *p);
/* v2: adds a broker, after _begin() and before the first topic (at most
 * PROTO_BROKERS_MAX: past it the encode fails with -NG_EBADCOUNT). */
void proto_metadata_resp_broker(struct proto_enc *e, const struct proto_broker *b);
/* Next broker of a decoded answer (m from proto_metadata_resp_decode()):
 * true with *b, false past the last (at once for v0 and v1). */
bool proto_metadata_resp_next_broker(struct proto_metadata_resp *m, struct proto_broker *b);

/* CreateTopics. Request: per topic a name, a partition count and config;
 * -1 (PROTO_CONFIG_DEFAULT) takes the broker's default, -2
 * (PROTO_CONFIG_UNLIMITED) turns a retention limit off. v1 adds a
 * replication factor (v0 has none: decoded, it is PROTO_CONFIG_DEFAULT;
 * encoded, it is left out). v2 adds, after the replication factor, an i8
 * unclean_leader_election: 1 lets an out-of-sync replica lead when no
 * in-sync one is left (a cluster only; docs/cluster.md), 0 not (v0, v1:
 * decoded 0; encoded, it is left out). The decoder checks structure only;
 * the broker answers a bad name or value (an unclean flag other than 0 or
 * 1) per topic. The response (also DeleteTopics'): per topic its name and
 * error. */
struct proto_create_topic {
    struct proto_str name;
    int32_t partition_count;
    int64_t retention_ms;
    int64_t retention_bytes;
    int64_t segment_bytes;
    int32_t batch_bytes_max;
    int16_t replication_factor;     /* v1: copies of each partition; -1 the default */
    int8_t unclean_leader_election; /* v2: 0 or 1 (others are refused) */
};

struct proto_topic_result {
    struct proto_str name;
    int err;
};

void proto_create_topics_req_begin(struct proto_enc *e, struct wr *w, uint16_t version,
                                   uint32_t correlation_id, struct proto_str client_id);
void proto_create_topics_req_topic(struct proto_enc *e, const struct proto_create_topic *t);
MUST_USE int proto_create_topics_req_decode(struct rd *body, uint16_t version, struct proto_dec *d);
bool proto_create_topics_req_next(struct proto_dec *d, struct proto_create_topic *t);

void proto_create_topics_resp_begin(struct proto_enc *e, struct wr *w, uint16_t version,
                                    uint32_t correlation_id);
MUST_USE int proto_create_topics_resp_decode(struct rd *body, uint16_t version,
                                             struct proto_dec *d);

/* Adds / reads one topic result of a CreateTopics or DeleteTopics response. */
void proto_enc_topic_result(struct proto_enc *e, const struct proto_topic_result *r);
bool proto_next_topic_result(struct proto_dec *d, struct proto_topic_result *r);

/* DeleteTopics. Request: names (proto_enc_topic / proto_next_topic).
 * Response: topic results, as CreateTopics. */
void proto_delete_topics_req_begin(struct proto_enc *e, struct wr *w, uint16_t version,
                                   uint32_t correlation_id, struct proto_str client_id);
MUST_USE int proto_delete_topics_req_decode(struct rd *body, uint16_t version, struct proto_dec *d);
void proto_delete_topics_resp_begin(struct proto_enc *e, struct wr *w, uint16_t version,
                                    uint32_t correlation_id);
MUST_USE int proto_delete_topics_resp_decode(struct rd *body, uint16_t version,
                                             struct proto_dec *d);

/* Produce. Request: acks and a timeout, then per topic, per partition, one
 * record batch as stored (storage/batch.h), never null; the broker
 * validates it. The decoder refuses acks other than 0, 1, -1 and a negative
 * timeout (-NG_EBADARG). acks 0 gets no response frame at all. Response:
 * per partition an error and the base offset given to the batch. */
struct proto_produce_req {
    int16_t acks; /* PROTO_ACKS_* */
    int32_t timeout_ms;
};

struct proto_produce_req_partition {
    int32_t partition;
    const uint8_t *records; /* one batch; into the frame */
    uint32_t records_bytes;
};

struct proto_produce_resp_partition {
    int32_t partition;
    int err;
    int64_t offset_base; /* -1 with an error */
};

void proto_produce_req_begin(struct proto_enc *e, struct wr *w, uint16_t version,
                             uint32_t correlation_id, struct proto_str client_id,
                             const struct proto_produce_req *req);
void proto_produce_req_partition(struct proto_enc *e, const struct proto_produce_req_partition *p);
MUST_USE int proto_produce_req_decode(struct rd *body, uint16_t version,
                                      struct proto_produce_req *out, struct proto_dec *d);
bool proto_produce_req_next_partition(struct proto_dec *d, struct proto_produce_req_partition *p);

void proto_produce_resp_begin(struct proto_enc *e, struct wr *w, uint16_t version,
                              uint32_t correlation_id);
void proto_produce_resp_partition(struct proto_enc *e,
                                  const struct proto_produce_resp_partition *p);
MUST_USE int proto_produce_resp_decode(struct rd *body, uint16_t version, struct proto_dec *d);
bool proto_produce_resp_next_partition(struct proto_dec *d, struct proto_produce_resp_partition *p);

/* Fetch. Request: long-poll limits, then per partition the first offset
 * wanted and a byte limit. The decoder refuses negative wait_max_ms,
 * bytes_min or bytes_max (-NG_EBADARG). Response: per partition an error,
 * the earliest and latest offsets, (v1) where reading resumes past a
 * damaged range, and whole record batches concatenated in one byte array
 * (possibly empty, never null). */
struct proto_fetch_req {
    int32_t wait_max_ms;
    int32_t bytes_min;
    int32_t bytes_max;
};

struct proto_fetch_req_partition {
    int32_t partition;
    int64_t offset;
    int32_t bytes_max;
};

struct proto_fetch_resp_partition {
    int32_t partition;
    int err;
    int64_t offset_earliest;
    int64_t offset_latest;  /* the high watermark: next offset written */
    const uint8_t *records; /* whole batches; into the frame */
    uint32_t records_bytes;
    int64_t offset_resume; /* v1: with -NG_ECORRUPT, the first offset past the
                               damaged range holding the fetch offset, -1 when
                               not known; -1 otherwise. Decoded v0: -1 */
};

void proto_fetch_req_begin(struct proto_enc *e, struct wr *w, uint16_t version,
                           uint32_t correlation_id, struct proto_str client_id,
                           const struct proto_fetch_req *req);
void proto_fetch_req_partition(struct proto_enc *e, const struct proto_fetch_req_partition *p);
MUST_USE int proto_fetch_req_decode(struct rd *body, uint16_t version, struct proto_fetch_req *out,
                                    struct proto_dec *d);
bool proto_fetch_req_next_partition(struct proto_dec *d, struct proto_fetch_req_partition *p);

void proto_fetch_resp_begin(struct proto_enc *e, struct wr *w, uint16_t version,
                            uint32_t correlation_id);
/* Adds a partition, copying p->records_bytes bytes from p->records. */
void proto_fetch_resp_partition(struct proto_enc *e, const struct proto_fetch_resp_partition *p);
/* Zero-copy form: writes the partition's fields and a placeholder records
 * length (p->records is ignored). Until proto_fetch_resp_partition_end()
 * the caller appends the batches to e->w itself: wr_bytes(), or wr_take()
 * and fill in place (a read from the log straight into the buffer). It may
 * move e->w->pos back to trim bytes it reserved but did not fill, never
 * below where the records began. */
void proto_fetch_resp_partition_begin(struct proto_enc *e,
                                      const struct proto_fetch_resp_partition *p);
/* Back-patches the records length from e->w->pos (plus what
 * proto_fetch_resp_spliced() declared). This, _fail() and _spliced() also
 * serve a ReplicaFetch response's open partition. */
void proto_fetch_resp_partition_end(struct proto_enc *e);
/* Between _partition_begin() and _end(), before any record: sets the open
 * partition's error (err < 0) and, from v1, its offset_resume after all
 * (a read found damage only while the answer was being built; a
 * ReplicaFetch partition has no offset_resume). */
void proto_fetch_resp_partition_fail(struct proto_enc *e, int err, int64_t offset_resume);
/* Between _partition_begin() and _end(): n record bytes that the caller
 * splices into the frame at e->w->pos without writing them to e->w (a file
 * part of the answer: net/loop.h, loop_resp_file). They count in the
 * records length and in the frame length proto_enc_end() writes. */
void proto_fetch_resp_spliced(struct proto_enc *e, uint64_t n);
MUST_USE int proto_fetch_resp_decode(struct rd *body, uint16_t version, struct proto_dec *d);
bool proto_fetch_resp_next_partition(struct proto_dec *d, struct proto_fetch_resp_partition *p);

/* ListOffsets. Request: per partition a timestamp: -2 earliest, -1 latest,
 * else the first offset with a timestamp >= it. Response: per partition an
 * error, the offset and its timestamp (-1 for earliest/latest, and when no
 * record is that recent: then the offset is the log end). */
struct proto_list_offsets_req_partition {
    int32_t partition;
    int64_t timestamp_ms;
};

struct proto_list_offsets_resp_partition {
    int32_t partition;
    int err;
    int64_t timestamp_ms;
    int64_t offset;
};

void proto_list_offsets_req_begin(struct proto_enc *e, struct wr *w, uint16_t version,
                                  uint32_t correlation_id, struct proto_str client_id);
void proto_list_offsets_req_partition(struct proto_enc *e,
                                      const struct proto_list_offsets_req_partition *p);
MUST_USE int proto_list_offsets_req_decode(struct rd *body, uint16_t version, struct proto_dec *d);
bool proto_list_offsets_req_next_partition(struct proto_dec *d,
                                           struct proto_list_offsets_req_partition *p);

void proto_list_offsets_resp_begin(struct proto_enc *e, struct wr *w, uint16_t version,
                                   uint32_t correlation_id);
void proto_list_offsets_resp_partition(struct proto_enc *e,
                                       const struct proto_list_offsets_resp_partition *p);
MUST_USE int proto_list_offsets_resp_decode(struct rd *body, uint16_t version, struct proto_dec *d);
bool proto_list_offsets_resp_next_partition(struct proto_dec *d,
                                            struct proto_list_offsets_resp_partition *p);

/* InitProducerId: empty request; the response carries a new producer id
 * and its epoch for idempotent produce. */
struct proto_init_producer_id_resp {
    int64_t producer_id;
    int16_t producer_epoch;
};

MUST_USE int proto_init_producer_id_req_encode(struct wr *w, uint16_t version,
                                               uint32_t correlation_id, struct proto_str client_id);
MUST_USE int proto_init_producer_id_req_decode(struct rd *body, uint16_t version);
MUST_USE int proto_init_producer_id_resp_encode(struct wr *w, uint16_t version,
                                                uint32_t correlation_id,
                                                const struct proto_init_producer_id_resp *r);
MUST_USE int proto_init_producer_id_resp_decode(struct rd *body, uint16_t version,
                                                struct proto_init_producer_id_resp *out);

/*
 * ---- consumer groups (keys 10-18) ----
 *
 * Group ids are strings (not null); the broker checks them
 * (docs/protocol.md, "Group ids"), not the decoders. Member ids are the
 * broker's: a new member sends a null or empty id and gets one.
 */

/* JoinGroup. Request: group, member id (null or empty: a new member),
 * session timeout, and the topics subscribed (names: proto_enc_topic /
 * proto_next_topic). The decoder refuses a negative session timeout
 * (-NG_EBADARG). Response: an error, the member's id and the group's
 * generation after the join (with an error: as the broker sends them,
 * an empty id and -1). */
struct proto_join_group_req {
    struct proto_str group;
    struct proto_str member_id; /* may be null */
    int32_t session_timeout_ms;
};

struct proto_join_group_resp {
    int err;
    struct proto_str member_id;
    int32_t generation;
};

void proto_join_group_req_begin(struct proto_enc *e, struct wr *w, uint16_t version,
                                uint32_t correlation_id, struct proto_str client_id,
                                const struct proto_join_group_req *req);
MUST_USE int proto_join_group_req_decode(struct rd *body, uint16_t version,
                                         struct proto_join_group_req *out, struct proto_dec *d);
MUST_USE int proto_join_group_resp_encode(struct wr *w, uint16_t version, uint32_t correlation_id,
                                          const struct proto_join_group_resp *r);
MUST_USE int proto_join_group_resp_decode(struct rd *body, uint16_t version,
                                          struct proto_join_group_resp *out);

/* Heartbeat. Request: group, member id, the last generation the member
 * saw. Response: an error, the current generation, whether the member's
 * grant still differs from its target (heartbeat again soon), and the
 * grant: per topic the partitions it may consume now (proto_enc_topic +
 * proto_enc_partition_index; proto_next_topic +
 * proto_next_partition_index). The decoder refuses a rebalancing byte other
 * than 0 or 1 (-NG_EBADARG). */
struct proto_heartbeat_req {
    struct proto_str group;
    struct proto_str member_id;
    int32_t generation;
};

struct proto_heartbeat_resp {
    int err;
    int32_t generation;
    bool rebalancing;
};

MUST_USE int proto_heartbeat_req_encode(struct wr *w, uint16_t version, uint32_t correlation_id,
                                        struct proto_str client_id,
                                        const struct proto_heartbeat_req *r);
MUST_USE int proto_heartbeat_req_decode(struct rd *body, uint16_t version,
                                        struct proto_heartbeat_req *out);
void proto_heartbeat_resp_begin(struct proto_enc *e, struct wr *w, uint16_t version,
                                uint32_t correlation_id, const struct proto_heartbeat_resp *r);
MUST_USE int proto_heartbeat_resp_decode(struct rd *body, uint16_t version,
                                         struct proto_heartbeat_resp *out, struct proto_dec *d);

/* LeaveGroup. Request: group and member id. Response: an error. */
struct proto_leave_group_req {
    struct proto_str group;
    struct proto_str member_id;
};

MUST_USE int proto_leave_group_req_encode(struct wr *w, uint16_t version, uint32_t correlation_id,
                                          struct proto_str client_id,
                                          const struct proto_leave_group_req *r);
MUST_USE int proto_leave_group_req_decode(struct rd *body, uint16_t version,
                                          struct proto_leave_group_req *out);
MUST_USE int proto_leave_group_resp_encode(struct wr *w, uint16_t version, uint32_t correlation_id,
                                           int err);
MUST_USE int proto_leave_group_resp_decode(struct rd *body, uint16_t version, int *err_out);

/* OffsetCommit. Request: group, member id (null: a commit from outside the
 * group), generation, then per topic, per partition the offset to commit.
 * Response: per topic, per partition an error (proto_enc_partition_result
 * / proto_next_partition_result). */
struct proto_offset_commit_req {
    struct proto_str group;
    struct proto_str member_id; /* may be null */
    int32_t generation;
};

struct proto_offset_commit_req_partition {
    int32_t partition;
    int64_t offset;
};

void proto_offset_commit_req_begin(struct proto_enc *e, struct wr *w, uint16_t version,
                                   uint32_t correlation_id, struct proto_str client_id,
                                   const struct proto_offset_commit_req *req);
void proto_offset_commit_req_partition(struct proto_enc *e,
                                       const struct proto_offset_commit_req_partition *p);
MUST_USE int proto_offset_commit_req_decode(struct rd *body, uint16_t version,
                                            struct proto_offset_commit_req *out,
                                            struct proto_dec *d);
bool proto_offset_commit_req_next_partition(struct proto_dec *d,
                                            struct proto_offset_commit_req_partition *p);
void proto_offset_commit_resp_begin(struct proto_enc *e, struct wr *w, uint16_t version,
                                    uint32_t correlation_id);
MUST_USE int proto_offset_commit_resp_decode(struct rd *body, uint16_t version,
                                             struct proto_dec *d);

/* OffsetFetch. Request: group, then per topic the partitions wanted
 * (proto_enc_partition_index), or a null topic array for every committed
 * partition (topics_all; d.topic_count -1). Response: per topic, per
 * partition the committed offset (-1: none) and an error
 * (proto_enc_partition_offset / proto_next_partition_offset); partitions
 * are bounded per topic only, not summed over the message. */
void proto_offset_fetch_req_begin(struct proto_enc *e, struct wr *w, uint16_t version,
                                  uint32_t correlation_id, struct proto_str client_id,
                                  struct proto_str group, bool topics_all);
MUST_USE int proto_offset_fetch_req_decode(struct rd *body, uint16_t version,
                                           struct proto_str *group_out, struct proto_dec *d);
void proto_offset_fetch_resp_begin(struct proto_enc *e, struct wr *w, uint16_t version,
                                   uint32_t correlation_id);
MUST_USE int proto_offset_fetch_resp_decode(struct rd *body, uint16_t version, struct proto_dec *d);

/* ListGroups. Empty request. Response: per group its id, kind
 * (PROTO_GROUP_KIND_*; a newer broker may send others) and member count. */
struct proto_group_listing {
    struct proto_str group;
    int8_t kind;
    int32_t member_count;
};

MUST_USE int proto_list_groups_req_encode(struct wr *w, uint16_t version, uint32_t correlation_id,
                                          struct proto_str client_id);
MUST_USE int proto_list_groups_req_decode(struct rd *body, uint16_t version);
void proto_list_groups_resp_begin(struct proto_enc *e, struct wr *w, uint16_t version,
                                  uint32_t correlation_id);
void proto_list_groups_resp_group(struct proto_enc *e, const struct proto_group_listing *g);
MUST_USE int proto_list_groups_resp_decode(struct rd *body, uint16_t version, struct proto_dec *d);
bool proto_list_groups_resp_next(struct proto_dec *d, struct proto_group_listing *g);

/* DescribeGroup. Request: group. Response: an error, the kind and
 * generation, then two arrays. Members: per member its id and its
 * assignment, per topic the partitions. Offsets: per topic, per committed
 * partition the committed offset, log end offset, and the lag in records
 * and in ms. Encode: _begin, then per member _member() followed by its
 * topics (proto_enc_topic + proto_enc_partition_index), then _offsets()
 * (implied by proto_enc_end() when left out) followed by its topics
 * (proto_enc_topic + _offset()). Decode: _decode, then
 * _next_member() with proto_next_topic + proto_next_partition_index for
 * its assignment; then _seek_offsets() (which skips members not read) and
 * proto_next_topic + _next_offset(). d.topic_count is the member count
 * until _seek_offsets(), then the offsets' topic count. Partitions are bounded
 * per topic, not summed. */
struct proto_describe_group_resp {
    int err;
    int8_t kind;
    int32_t generation;
};

struct proto_group_member_desc {
    struct proto_str member_id;
    int32_t topic_count; /* topics in its assignment */
};

struct proto_group_offset_desc {
    int32_t partition;
    int64_t committed;
    int64_t end; /* log end offset; -1 when the topic is gone */
    int64_t lag_records;
    int64_t lag_ms;
};

MUST_USE int proto_describe_group_req_encode(struct wr *w, uint16_t version,
                                             uint32_t correlation_id, struct proto_str client_id,
                                             struct proto_str group);
MUST_USE int proto_describe_group_req_decode(struct rd *body, uint16_t version,
                                             struct proto_str *group_out);
void proto_describe_group_resp_begin(struct proto_enc *e, struct wr *w, uint16_t version,
                                     uint32_t correlation_id,
                                     const struct proto_describe_group_resp *r);
void proto_describe_group_resp_member(struct proto_enc *e, struct proto_str member_id);
void proto_describe_group_resp_offsets(struct proto_enc *e);
void proto_describe_group_resp_offset(struct proto_enc *e, const struct proto_group_offset_desc *o);
MUST_USE int proto_describe_group_resp_decode(struct rd *body, uint16_t version,
                                              struct proto_describe_group_resp *out,
                                              struct proto_dec *d);
bool proto_describe_group_resp_next_member(struct proto_dec *d, struct proto_group_member_desc *m);
void proto_describe_group_resp_seek_offsets(struct proto_dec *d);
bool proto_describe_group_resp_next_offset(struct proto_dec *d, struct proto_group_offset_desc *o);

/* DeleteGroup. Request: group. Response: an error. */
MUST_USE int proto_delete_group_req_encode(struct wr *w, uint16_t version, uint32_t correlation_id,
                                           struct proto_str client_id, struct proto_str group);
MUST_USE int proto_delete_group_req_decode(struct rd *body, uint16_t version,
                                           struct proto_str *group_out);
MUST_USE int proto_delete_group_resp_encode(struct wr *w, uint16_t version, uint32_t correlation_id,
                                            int err);
MUST_USE int proto_delete_group_resp_decode(struct rd *body, uint16_t version, int *err_out);

/* ResetOffsets. Request: group, target (PROTO_RESET_*) and its value, then
 * per topic the partitions (an empty list: every partition of the topic).
 * The decoder refuses an unknown target, and a negative value for
 * PROTO_RESET_OFFSET and PROTO_RESET_TIMESTAMP (-NG_EBADARG). Response: an
 * error, then per topic, per partition the offset now committed and an
 * error (proto_enc_partition_offset / proto_next_partition_offset). */
struct proto_reset_offsets_req {
    struct proto_str group;
    int8_t to;     /* PROTO_RESET_* */
    int64_t value; /* the offset or timestamp; ignored for earliest, latest */
};

void proto_reset_offsets_req_begin(struct proto_enc *e, struct wr *w, uint16_t version,
                                   uint32_t correlation_id, struct proto_str client_id,
                                   const struct proto_reset_offsets_req *req);
MUST_USE int proto_reset_offsets_req_decode(struct rd *body, uint16_t version,
                                            struct proto_reset_offsets_req *out,
                                            struct proto_dec *d);
void proto_reset_offsets_resp_begin(struct proto_enc *e, struct wr *w, uint16_t version,
                                    uint32_t correlation_id, int err);
MUST_USE int proto_reset_offsets_resp_decode(struct rd *body, uint16_t version, int *err_out,
                                             struct proto_dec *d);

/*
 * ---- share groups (keys 20-22) ----
 */

/* ShareFetch. Request: group, member id (empty: a new member, the broker
 * assigns one), long-poll wait, the most records wanted, then per topic
 * the partitions (proto_enc_partition_index). The decoder refuses a
 * negative wait_max_ms or records_max (-NG_EBADARG). Response: an error,
 * the member's id, then per topic, per partition an error, the ranges
 * acquired with their delivery counts, and whole batches covering them. */
struct proto_share_fetch_req {
    struct proto_str group;
    struct proto_str member_id;
    int32_t wait_max_ms;
    int32_t records_max;
};

struct proto_share_fetch_resp {
    int err;
    struct proto_str member_id;
};

struct proto_share_acquired {
    int64_t first;
    int64_t last;
    int16_t delivery_count;
};

/* A partition of a ShareFetch response. Encoders read acquired_count
 * ranges from `acquired`; decoders set `acquired_wire` (the ranges as sent,
 * read them with proto_share_fetch_acquired()) and leave `acquired` NULL. */
struct proto_share_fetch_resp_partition {
    int32_t partition;
    int err;
    uint32_t acquired_count; /* <= PROTO_SHARE_RANGES_MAX */
    const struct proto_share_acquired *acquired;
    const uint8_t *acquired_wire;
    const uint8_t *records; /* whole batches; into the frame */
    uint32_t records_bytes;
};

void proto_share_fetch_req_begin(struct proto_enc *e, struct wr *w, uint16_t version,
                                 uint32_t correlation_id, struct proto_str client_id,
                                 const struct proto_share_fetch_req *req);
MUST_USE int proto_share_fetch_req_decode(struct rd *body, uint16_t version,
                                          struct proto_share_fetch_req *out, struct proto_dec *d);
void proto_share_fetch_resp_begin(struct proto_enc *e, struct wr *w, uint16_t version,
                                  uint32_t correlation_id, const struct proto_share_fetch_resp *r);
/* Adds a partition, copying p->records_bytes bytes from p->records. */
void proto_share_fetch_resp_partition(struct proto_enc *e,
                                      const struct proto_share_fetch_resp_partition *p);
/* Zero-copy form, as proto_fetch_resp_partition_begin(): writes the
 * partition's fields and acquired ranges and a placeholder records length
 * (p->records is ignored); the caller appends the batches to e->w, then
 * _end() back-patches the length. */
void proto_share_fetch_resp_partition_begin(struct proto_enc *e,
                                            const struct proto_share_fetch_resp_partition *p);
void proto_share_fetch_resp_partition_end(struct proto_enc *e);
MUST_USE int proto_share_fetch_resp_decode(struct rd *body, uint16_t version,
                                           struct proto_share_fetch_resp *out, struct proto_dec *d);
bool proto_share_fetch_resp_next_partition(struct proto_dec *d,
                                           struct proto_share_fetch_resp_partition *p);
/* Range i (< p->acquired_count) of a decoded partition. */
void proto_share_fetch_acquired(const struct proto_share_fetch_resp_partition *p, uint32_t i,
                                struct proto_share_acquired *out);

/* ShareAck. Request: group, member id, then per topic, per partition the
 * acknowledged ranges with their type (PROTO_ACK_*). The decoder checks
 * every range's type and refuses an unknown one (-NG_EBADARG); the broker
 * judges the offsets. Response: per topic, per partition an error
 * (proto_enc_partition_result / proto_next_partition_result). */
struct proto_share_ack_req {
    struct proto_str group;
    struct proto_str member_id;
};

struct proto_share_ack {
    int64_t first;
    int64_t last;
    int8_t type; /* PROTO_ACK_* */
};

/* A partition of a ShareAck request: encoders read ack_count ranges from
 * `acks`; decoders set `acks_wire` (read with proto_share_ack_at()). */
struct proto_share_ack_req_partition {
    int32_t partition;
    uint32_t ack_count; /* <= PROTO_SHARE_RANGES_MAX */
    const struct proto_share_ack *acks;
    const uint8_t *acks_wire;
};

void proto_share_ack_req_begin(struct proto_enc *e, struct wr *w, uint16_t version,
                               uint32_t correlation_id, struct proto_str client_id,
                               const struct proto_share_ack_req *req);
void proto_share_ack_req_partition(struct proto_enc *e,
                                   const struct proto_share_ack_req_partition *p);
MUST_USE int proto_share_ack_req_decode(struct rd *body, uint16_t version,
                                        struct proto_share_ack_req *out, struct proto_dec *d);
bool proto_share_ack_req_next_partition(struct proto_dec *d,
                                        struct proto_share_ack_req_partition *p);
/* Range i (< p->ack_count) of a decoded partition. */
void proto_share_ack_at(const struct proto_share_ack_req_partition *p, uint32_t i,
                        struct proto_share_ack *out);
void proto_share_ack_resp_begin(struct proto_enc *e, struct wr *w, uint16_t version,
                                uint32_t correlation_id);
MUST_USE int proto_share_ack_resp_decode(struct rd *body, uint16_t version, struct proto_dec *d);

/* DlqRedrive. Request: a dead-letter topic's name; v1 adds records_max,
 * the most dead letters the request reads (> 0; else -NG_EBADARG at
 * decode), so that a client drives a long redrive in bounded requests,
 * each resuming at the marks the one before committed. v0 decodes
 * records_max as PROTO_REDRIVE_RECORDS_ALL. Response: an error and how
 * many records were republished to their source topics; v1 adds how many
 * dead letters the request read (republished or skipped) and how many
 * remain past the marks (v0 decodes them as -1 and 0: a v0 request
 * redrives everything, its reader takes records as read). */
#define PROTO_REDRIVE_RECORDS_ALL INT32_MAX
struct proto_dlq_redrive_req {
    struct proto_str topic;
    int32_t records_max;
};
struct proto_dlq_redrive_resp {
    int err;
    int64_t records;
    int64_t read;      /* v1 */
    int64_t remaining; /* v1 */
};

MUST_USE int proto_dlq_redrive_req_encode(struct wr *w, uint16_t version, uint32_t correlation_id,
                                          struct proto_str client_id,
                                          const struct proto_dlq_redrive_req *req);
MUST_USE int proto_dlq_redrive_req_decode(struct rd *body, uint16_t version,
                                          struct proto_dlq_redrive_req *out);
MUST_USE int proto_dlq_redrive_resp_encode(struct wr *w, uint16_t version, uint32_t correlation_id,
                                           const struct proto_dlq_redrive_resp *r);
MUST_USE int proto_dlq_redrive_resp_decode(struct rd *body, uint16_t version,
                                           struct proto_dlq_redrive_resp *out);

/*
 * ---- replication (keys 23-24, docs/cluster.md) ----
 */

/* ReplicaFetch: a follower's fetch from the leader. Request: the
 * follower's broker id and the long-poll limits of Fetch, then per
 * partition the leader epoch the follower knows, the offset to read from
 * (its log end), its durable offset (everything below is fdatasync'd) and
 * its log start. The decoder refuses a negative replica_id, wait_max_ms,
 * bytes_min or bytes_max (-NG_EBADARG). Response: per partition an error,
 * the leader's high watermark and log start, and whole record batches as
 * stored (possibly empty, never null). Encode the response as Fetch's
 * zero-copy form: _partition_begin(), the batches appended to e->w or
 * declared with proto_fetch_resp_spliced(), proto_fetch_resp_partition_end()
 * (proto_fetch_resp_partition_fail() sets a late error). */
struct proto_replica_fetch_req {
    int32_t replica_id;
    int32_t wait_max_ms;
    int32_t bytes_min;
    int32_t bytes_max; /* per partition and over the whole answer */
};

struct proto_replica_fetch_req_partition {
    int32_t partition;
    int32_t leader_epoch;
    int64_t fetch_offset;
    int64_t durable_offset;
};

struct proto_replica_fetch_resp_partition {
    int32_t partition;
    int err;
    int64_t high_watermark;
    int64_t log_start;
    const uint8_t *records; /* whole batches; into the frame */
    uint32_t records_bytes;
};

void proto_replica_fetch_req_begin(struct proto_enc *e, struct wr *w, uint16_t version,
                                   uint32_t correlation_id, struct proto_str client_id,
                                   const struct proto_replica_fetch_req *req);
void proto_replica_fetch_req_partition(struct proto_enc *e,
                                       const struct proto_replica_fetch_req_partition *p);
MUST_USE int proto_replica_fetch_req_decode(struct rd *body, uint16_t version,
                                            struct proto_replica_fetch_req *out,
                                            struct proto_dec *d);
bool proto_replica_fetch_req_next_partition(struct proto_dec *d,
                                            struct proto_replica_fetch_req_partition *p);
void proto_replica_fetch_resp_begin(struct proto_enc *e, struct wr *w, uint16_t version,
                                    uint32_t correlation_id);
/* Zero-copy form (p->records is ignored): see above. */
void proto_replica_fetch_resp_partition_begin(struct proto_enc *e,
                                              const struct proto_replica_fetch_resp_partition *p);
/* Adds a partition, copying p->records_bytes bytes from p->records. */
void proto_replica_fetch_resp_partition(struct proto_enc *e,
                                        const struct proto_replica_fetch_resp_partition *p);
MUST_USE int proto_replica_fetch_resp_decode(struct rd *body, uint16_t version,
                                             struct proto_dec *d);
bool proto_replica_fetch_resp_next_partition(struct proto_dec *d,
                                             struct proto_replica_fetch_resp_partition *p);

/* OffsetForLeaderEpoch (KIP-101, KIP-279): where a leader's log ends for
 * an epoch. Request: per partition the leader epoch the asker knows
 * (fenced as ReplicaFetch is) and the epoch it asks about. Response: per
 * partition an error, the largest epoch <= the one asked that the leader
 * has, and the end offset of that epoch (the start of the next, or the
 * log end); -1 and -1 when the leader has no epoch that old. */
struct proto_epoch_req_partition {
    int32_t partition;
    int32_t current_leader_epoch;
    int32_t leader_epoch;
};

struct proto_epoch_resp_partition {
    int32_t partition;
    int err;
    int32_t leader_epoch;
    int64_t end_offset;
};

void proto_epoch_req_begin(struct proto_enc *e, struct wr *w, uint16_t version,
                           uint32_t correlation_id, struct proto_str client_id);
void proto_epoch_req_partition(struct proto_enc *e, const struct proto_epoch_req_partition *p);
MUST_USE int proto_epoch_req_decode(struct rd *body, uint16_t version, struct proto_dec *d);
bool proto_epoch_req_next_partition(struct proto_dec *d, struct proto_epoch_req_partition *p);
void proto_epoch_resp_begin(struct proto_enc *e, struct wr *w, uint16_t version,
                            uint32_t correlation_id);
void proto_epoch_resp_partition(struct proto_enc *e, const struct proto_epoch_resp_partition *p);
MUST_USE int proto_epoch_resp_decode(struct rd *body, uint16_t version, struct proto_dec *d);
bool proto_epoch_resp_next_partition(struct proto_dec *d, struct proto_epoch_resp_partition *p);

/* ReassignPartitions: an operator's move of partitions onto other
 * brokers (docs/cluster.md, section 3). Request: per topic, per partition
 * the target replicas, the first of them the preferred leader. The decoder
 * checks structure only (at most PROTO_REPLICAS_MAX ids per partition);
 * the broker judges the ids. Response: per topic, per partition an error
 * (proto_enc_partition_result / proto_next_partition_result): 0 once etcd
 * holds the request (the move then runs; Metadata v3 shows it until done). */
struct proto_reassign_partition {
    int32_t partition;
    uint8_t replica_count; /* <= PROTO_REPLICAS_MAX (encoders refuse more) */
    int32_t replicas[PROTO_REPLICAS_MAX];
};

void proto_reassign_req_begin(struct proto_enc *e, struct wr *w, uint16_t version,
                              uint32_t correlation_id, struct proto_str client_id);
void proto_reassign_req_partition(struct proto_enc *e, const struct proto_reassign_partition *p);
MUST_USE int proto_reassign_req_decode(struct rd *body, uint16_t version, struct proto_dec *d);
bool proto_reassign_req_next_partition(struct proto_dec *d, struct proto_reassign_partition *p);
void proto_reassign_resp_begin(struct proto_enc *e, struct wr *w, uint16_t version,
                               uint32_t correlation_id);
MUST_USE int proto_reassign_resp_decode(struct rd *body, uint16_t version, struct proto_dec *d);

/* ---- ACLs (docs/security.md, "Authorization"; docs/protocol.md) ----
 *
 * An ACL in Kafka's shape: a resource (type, name, and how the name
 * matches), a principal ("User:alice", or "User:*" for any), a host (an
 * address, or "*"), an operation and allow or deny. The numeric codes are
 * Kafka's (org.apache.kafka.common.acl and .resource), the same on both
 * protocols and in the broker's ACL file. The ANY codes (and MATCH, for
 * the pattern) are for filters only: DescribeAcls and DeleteAcls match an
 * ACL when every field of the filter is ANY, a null string, or the ACL's
 * value (MATCH: every ACL that would apply to the filter's name). */
enum proto_acl_resource {
    PROTO_ACL_RESOURCE_ANY = 1,
    PROTO_ACL_RESOURCE_TOPIC = 2,
    PROTO_ACL_RESOURCE_GROUP = 3,
    PROTO_ACL_RESOURCE_CLUSTER = 4,
};

enum proto_acl_pattern {
    PROTO_ACL_PATTERN_ANY = 1,
    PROTO_ACL_PATTERN_MATCH = 2,
    PROTO_ACL_PATTERN_LITERAL = 3,  /* the name itself; "*" is every name */
    PROTO_ACL_PATTERN_PREFIXED = 4, /* every name that starts with it */
};

enum proto_acl_op {
    PROTO_ACL_OP_ANY = 1,
    PROTO_ACL_OP_ALL = 2,
    PROTO_ACL_OP_READ = 3,
    PROTO_ACL_OP_WRITE = 4,
    PROTO_ACL_OP_CREATE = 5,
    PROTO_ACL_OP_DELETE = 6,
    PROTO_ACL_OP_ALTER = 7,
    PROTO_ACL_OP_DESCRIBE = 8,
    PROTO_ACL_OP_CLUSTER_ACTION = 9,
    PROTO_ACL_OP_DESCRIBE_CONFIGS = 10,
    PROTO_ACL_OP_ALTER_CONFIGS = 11,
    PROTO_ACL_OP_IDEMPOTENT_WRITE = 12,
};

enum proto_acl_permission {
    PROTO_ACL_PERMISSION_ANY = 1,
    PROTO_ACL_PERMISSION_DENY = 2,
    PROTO_ACL_PERMISSION_ALLOW = 3,
};

/* The cluster resource's one name (Kafka's), and the literal name and
 * principal that match every one. */
#define PROTO_ACL_CLUSTER_NAME "kafka-cluster"
#define PROTO_ACL_WILDCARD "*"
#define PROTO_ACL_ANY_USER "User:*"

/* The four code sets, for proto_acl_name() and proto_acl_code(). */
enum proto_acl_vocab {
    PROTO_ACL_VOCAB_RESOURCE,
    PROTO_ACL_VOCAB_PATTERN,
    PROTO_ACL_VOCAB_OP,
    PROTO_ACL_VOCAB_PERMISSION,
};

/* The lower-case name of code in vocab ("topic", "prefixed", "read",
 * "allow", "any"...), or NULL for a code it does not have. Static. */
const char *proto_acl_name(enum proto_acl_vocab vocab, int8_t code);

/* The code named name[0..len) in vocab (case-insensitive; '-' and '_'
 * alike: "describe-configs"), or 0 for no such name. */
int8_t proto_acl_code(enum proto_acl_vocab vocab, const char *name, size_t len);

/* One ACL, or one filter. Strings point into the frame when decoded; a
 * filter's may be null (any). */
struct proto_acl {
    int8_t resource_type; /* enum proto_acl_resource */
    int8_t pattern_type;  /* enum proto_acl_pattern */
    struct proto_str name;
    struct proto_str principal;
    struct proto_str host;
    int8_t operation;  /* enum proto_acl_op */
    int8_t permission; /* enum proto_acl_permission */
};

/* Wire size of an ACL: four i8 codes and three strings. */
#define PROTO_ACL_BYTES(name_len, principal_len, host_len) \
    (4 + PROTO_STR_BYTES(name_len) + PROTO_STR_BYTES(principal_len) + PROTO_STR_BYTES(host_len))

/* CreateAcls (30): request, the ACLs to add (all or none: the broker
 * checks each, then stores them together); response, one error (0: all
 * added, and in the broker's file). DescribeAcls (31): request, a filter;
 * response, every ACL it matches. DeleteAcls (32): request, a filter;
 * response, every ACL it matched, now deleted. Codes and strings are
 * checked for structure only (the broker judges values). Encode an ACL
 * array with proto_enc_acl() after the _begin(); decode one with
 * proto_next_acl(). */
void proto_create_acls_req_begin(struct proto_enc *e, struct wr *w, uint16_t version,
                                 uint32_t correlation_id, struct proto_str client_id);
MUST_USE int proto_create_acls_req_decode(struct rd *body, uint16_t version, struct proto_dec *d);
MUST_USE int proto_create_acls_resp_encode(struct wr *w, uint16_t version, uint32_t correlation_id,
                                           int err);
MUST_USE int proto_create_acls_resp_decode(struct rd *body, uint16_t version, int *err_out);

/* api_key: PROTO_API_DESCRIBE_ACLS or PROTO_API_DELETE_ACLS. Strings of
 * the filter may be null. */
MUST_USE int proto_acl_filter_req_encode(struct wr *w, uint16_t api_key, uint16_t version,
                                         uint32_t correlation_id, struct proto_str client_id,
                                         const struct proto_acl *filter);
MUST_USE int proto_acl_filter_req_decode(struct rd *body, uint16_t api_key, uint16_t version,
                                         struct proto_acl *filter_out);
void proto_acl_list_resp_begin(struct proto_enc *e, struct wr *w, uint16_t api_key,
                               uint16_t version, uint32_t correlation_id);
MUST_USE int proto_acl_list_resp_decode(struct rd *body, uint16_t api_key, uint16_t version,
                                        struct proto_dec *d);

/* Adds an ACL to a CreateAcls request or a DescribeAcls / DeleteAcls
 * answer (its strings must not be null). */
void proto_enc_acl(struct proto_enc *e, const struct proto_acl *a);
/* The next ACL of a decoded CreateAcls request or DescribeAcls /
 * DeleteAcls answer; d->topic_count is how many. */
bool proto_next_acl(struct proto_dec *d, struct proto_acl *a);

/* ---- what a request names, for authorization ---- */

enum proto_name_kind {
    PROTO_NAME_GROUP = 1,
    PROTO_NAME_TOPIC = 2,
};

/* Called for each name; a non-zero return stops the walk and is returned. */
typedef int proto_name_fn(void *arg, enum proto_name_kind kind, struct proto_str name);

/* Calls fn with the group id a request acts on (the group APIs' bodies
 * start with it), with the topic a DlqRedrive names, and with every topic
 * of its topic array (none for a Metadata or OffsetFetch request asking
 * for all), after checking the whole body as its decoder does. body is not
 * moved. Returns 0, the decoder's error, or fn's. Any thread. */
MUST_USE int proto_req_names(const struct rd *body, uint16_t api_key, uint16_t version,
                             proto_name_fn *fn, void *arg);
/* SaslHandshake. Request: a SASL mechanism's name ("SCRAM-SHA-256").
 * Response: an error (NG_EMECHANISM when the broker does not offer it;
 * NG_EBADARG when the connection is logged in or mid-exchange) and the
 * mechanisms it offers, comma-separated. */
struct proto_sasl_handshake_resp {
    int err;
    struct proto_str mechanisms;
};

MUST_USE int proto_sasl_handshake_req_encode(struct wr *w, uint16_t version,
                                             uint32_t correlation_id, struct proto_str client_id,
                                             struct proto_str mechanism);
MUST_USE int proto_sasl_handshake_req_decode(struct rd *body, uint16_t version,
                                             struct proto_str *mechanism_out);
MUST_USE int proto_sasl_handshake_resp_encode(struct wr *w, uint16_t version,
                                              uint32_t correlation_id,
                                              const struct proto_sasl_handshake_resp *r);
MUST_USE int proto_sasl_handshake_resp_decode(struct rd *body, uint16_t version,
                                              struct proto_sasl_handshake_resp *out);

/* SaslAuthenticate: one message of the mechanism's exchange each way.
 * Request: the client's bytes. Response: an error (NG_EAUTH for a failed
 * login, whatever failed; NG_EAUTH_THROTTLED) and the server's bytes
 * (none with an error). Decoded bytes point into the frame; a decoder
 * refuses more than PROTO_SASL_BYTES_MAX with -NG_EBADLEN. */
struct proto_sasl_bytes {
    int err; /* responses only */
    const uint8_t *bytes;
    uint32_t len;
};

MUST_USE int proto_sasl_authenticate_req_encode(struct wr *w, uint16_t version,
                                                uint32_t correlation_id, struct proto_str client_id,
                                                const struct proto_sasl_bytes *r);
MUST_USE int proto_sasl_authenticate_req_decode(struct rd *body, uint16_t version,
                                                struct proto_sasl_bytes *out);
MUST_USE int proto_sasl_authenticate_resp_encode(struct wr *w, uint16_t version,
                                                 uint32_t correlation_id,
                                                 const struct proto_sasl_bytes *r);
MUST_USE int proto_sasl_authenticate_resp_decode(struct rd *body, uint16_t version,
                                                 struct proto_sasl_bytes *out);

/* AlterUser. Request: op (PROTO_USER_UPSERT or _DELETE), the user, a
 * mechanism (its wire number: 0 SCRAM-SHA-256, 1 SCRAM-SHA-512; for a
 * delete also PROTO_MECH_ALL), then for an upsert the credential the client
 * derived (iterations, salt, StoredKey, ServerKey: never the password;
 * empty and 0 for a delete). Response: an error (NG_ENOTFOUND: no such
 * user or mechanism to delete; NG_EBADARG: a field out of its range). The
 * decoder refuses an op or mechanism outside those values with
 * -NG_EBADARG; lengths are the handler's to check. */
struct proto_alter_user_req {
    int8_t op;
    int8_t mechanism;
    int32_t iterations;
    struct proto_str user;
    struct proto_sasl_bytes salt, stored_key, server_key; /* err unused */
};

MUST_USE int proto_alter_user_req_encode(struct wr *w, uint16_t version, uint32_t correlation_id,
                                         struct proto_str client_id,
                                         const struct proto_alter_user_req *r);
MUST_USE int proto_alter_user_req_decode(struct rd *body, uint16_t version,
                                         struct proto_alter_user_req *out);
MUST_USE int proto_alter_user_resp_encode(struct wr *w, uint16_t version, uint32_t correlation_id,
                                          int err);
MUST_USE int proto_alter_user_resp_decode(struct rd *body, uint16_t version, int *err_out);

/* DescribeUsers. Empty request. Response: per user (at most
 * PROTO_USERS_MAX) its name and the mechanisms it has a credential of
 * (bit 1 << mechanism number). Never a key or a salt. Encode: _begin(),
 * _user() per user, proto_enc_end(); decode, then _next(). */
struct proto_user_listing {
    struct proto_str user;
    uint8_t mechanisms;
};

MUST_USE int proto_describe_users_req_encode(struct wr *w, uint16_t version,
                                             uint32_t correlation_id, struct proto_str client_id);
MUST_USE int proto_describe_users_req_decode(struct rd *body, uint16_t version);
void proto_describe_users_resp_begin(struct proto_enc *e, struct wr *w, uint16_t version,
                                     uint32_t correlation_id);
void proto_describe_users_resp_user(struct proto_enc *e, const struct proto_user_listing *u);
MUST_USE int proto_describe_users_resp_decode(struct rd *body, uint16_t version,
                                              struct proto_dec *d);
bool proto_describe_users_resp_next(struct proto_dec *d, struct proto_user_listing *u);

#endif
