/*
 * net/kafka/codec.h — Kafka's requests and responses, for the APIs nagare
 * serves, decoded and encoded from one definition of each.
 *
 * net/kafka/messages.def defines each API once: its key, the versions
 * nagare defines and advertises, its flexible versions, and the fields of
 * its request and response (versions, nullable versions, tags, defaults),
 * in the terms of Kafka's own message definitions. net/kafka/gen.py turns
 * it at build time into net/kafka/messages.h (included at the end of this
 * header): a C struct per message and per nested struct, typed functions,
 * and descriptor tables that this file's one walker interprets to init,
 * decode and encode every message. The version checks, the table of APIs
 * (kafka_apis[], what ApiVersions advertises), the fuzz target and the
 * check of our definitions against Kafka's JSON (tests/kafka_defs_check.py)
 * all read the same definition. Adding an API or a version: docs/kafka.md.
 *
 * Generated names, for an API "Metadata" (Kafka's names in snake case):
 *   struct kafka_metadata_request, struct kafka_metadata_response;
 *   struct kafka_metadata_response_topic (a nested struct: Kafka's struct
 *     name, less a leading "MetadataResponse" or "Metadata");
 *   fields: int8_t..int64_t, bool, struct kw_uuid, struct kw_str,
 *     struct kw_bytes, struct kw_records (net/kafka/wire.h), a nested
 *     struct by value (tagged struct fields), and arrays as
 *     struct { T *items; int32_t count; } (count -1: null);
 *   void kafka_metadata_request_init(struct kafka_metadata_request *m);
 *   int kafka_metadata_request_decode(struct rd *r, int16_t version,
 *       struct kw_arena *a, struct kafka_metadata_request *out);
 *   int kafka_metadata_request_encode(struct kw_wr *w, int16_t version,
 *       const struct kafka_metadata_request *m);
 *   kafka_metadata_request_msg (its descriptor, for the generic calls);
 *   KAFKA_API_METADATA (its key, enum kafka_api_key).
 *
 * Init sets every field to its default (Kafka's: 0, false, "", empty
 * arrays, or the definition's default, e.g. -1 or null). Decode reads one
 * message body from r's position to its end: fields a version does not
 * have keep their defaults, tagged fields it does not know are skipped,
 * strings and byte arrays point into r's bytes and arrays into a's memory
 * (both must outlive *out). Encode writes the fields the version has (the
 * others are ignored, whatever their value) and a tagged field only when
 * it differs from its default.
 *
 * Frames: a request is a u32 length (net/loop.h frames it), a request
 * header (kafka_req_header_decode) and a body; a response the length, a
 * response header (kafka_resp_header_encode) and a body.
 *
 * Records not copied (a Fetch answer from segment files, as nagare's own
 * fetch does): set a partition's records to {.len = n, .external = true};
 * measure the answer with a kw_wr_measure() writer (its size without the
 * records, and its hole count); encode header and body into the answer
 * buffer with a kw_wr_make() writer given that many holes; then for each
 * hole, in order, splice its n bytes in at holes[i].at (net/loop.h's
 * loop_resp_file(req, ext, at), several parts at one `at` if the bytes span
 * segments) and respond with the first w.w.pos bytes: the frame's length
 * is w.w.pos + w.hole_bytes.
 *
 * Nothing here has mutable state: any thread; a cursor or arena belongs to
 * one thread at a time.
 */
#ifndef NAGARE_NET_KAFKA_CODEC_H
#define NAGARE_NET_KAFKA_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/assert.h"
#include "base/bytes.h"
#include "base/err.h"
#include "net/kafka/wire.h"

/* ---- descriptors (filled by the generated code) ---- */

enum kafka_type {
    KAFKA_T_BOOL,
    KAFKA_T_INT8,
    KAFKA_T_INT16,
    KAFKA_T_INT32,
    KAFKA_T_INT64,
    KAFKA_T_UUID,
    KAFKA_T_STRING,
    KAFKA_T_BYTES,
    KAFKA_T_RECORDS,
    KAFKA_T_STRUCT, /* a nested struct, by value */
    KAFKA_T_ARRAY,  /* of elem: any type above but records */
};

/* Versions from `min` to `max` inclusive; empty when min > max. */
struct kafka_versions {
    int16_t min;
    int16_t max;
};

struct kafka_struct;

struct kafka_field {
    const char *name;      /* the C member's name */
    uint32_t offset;       /* of the value; of `items` for an array */
    uint32_t count_offset; /* arrays: of `count` */
    uint8_t type;          /* enum kafka_type */
    uint8_t elem;          /* arrays: the element's type */
    bool default_null;     /* strings, bytes, records, arrays */
    struct kafka_versions versions;
    struct kafka_versions nullable; /* within versions; may be empty */
    int32_t tag;                    /* -1: not a tagged field */
    int64_t default_int;            /* integers and bools */
    const struct kafka_struct *sub; /* KAFKA_T_STRUCT, or an array of them */
};

struct kafka_struct {
    const char *name;  /* Kafka's */
    size_t size;       /* sizeof the C struct */
    uint32_t wire_min; /* shortest encoding, at any version: >= 1 for elements */
    uint32_t field_count;
    const struct kafka_field *fields; /* in wire order; tags increasing */
};

struct kafka_msg {
    const char *name; /* Kafka's: "MetadataRequest" */
    int16_t api_key;
    bool response;
    struct kafka_versions versions;
    int16_t flexible_min; /* INT16_MAX when no version is flexible */
    const struct kafka_struct *body;
};

/* One API as nagare serves it. ApiVersions advertises [versions.min,
 * versions.max] for every entry. sasl marks the login APIs, which a
 * connection may send before it has logged in (broker/sasl_serve.h). A
 * request below served_min is decoded but refused by its handler (Produce
 * v0-2, whose records are old message sets: advertised because
 * kafka-python 2.0 guesses the broker's release from the ranges). */
struct kafka_api {
    int16_t key;
    const char *name; /* Kafka's: "Metadata" */
    struct kafka_versions versions;
    int16_t flexible_min;
    int16_t served_min;
    bool sasl;
    const struct kafka_msg *request;
    const struct kafka_msg *response;
};

/* Bytes in C of one array element of type t (a KAFKA_T_*; sub: the
 * element's struct, for KAFKA_T_STRUCT). */
size_t kafka_elem_size(uint8_t t, const struct kafka_struct *sub);

/* ---- the table of APIs ---- */

/* kafka_apis[KAFKA_API_COUNT], ascending by key; generated. */
extern const struct kafka_api kafka_apis[];

/* The API with that key, or NULL when nagare defines none. */
const struct kafka_api *kafka_api_find(int16_t key);

/* Whether version is in api's range. */
bool kafka_api_version_ok(const struct kafka_api *api, int16_t version);

/* Whether version uses the flexible forms (compact lengths, tags). */
bool kafka_msg_flexible(const struct kafka_msg *msg, int16_t version);

/* ---- headers ---- */

/* A request header (Kafka's v1: key, version, correlation id, client id;
 * v2 adds tagged fields, for the flexible versions of each API). */
struct kafka_req_header {
    int16_t api_key;
    int16_t api_version;
    int32_t correlation_id;
    struct kw_str client_id; /* null allowed; points into the frame */
};

/* The smallest request header: key, version, correlation id, client id
 * length. A frame shorter than it cannot be answered. */
#define KAFKA_REQ_HEADER_BYTES_MIN 10

/* Reads a request header from the start of a frame (after its length
 * prefix), leaving r at the body. Returns 0 (*api_out the API); or, with
 * *h filled as far as read and r not at the body:
 *   -NG_EUNKNOWN_API  no such API (Kafka closes the connection);
 *   -NG_EBADVERSION   api_version outside the API's range (*api_out set):
 *                     ApiVersions is answered in its v0 form, with the
 *                     ranges, as KIP-511 asks; any other API's connection
 *                     is closed, as Kafka does;
 *   -NG_ETRUNCATED, -NG_EBADLEN, -NG_EBADVARINT, -NG_EBADARG  malformed.
 * *h's correlation_id is valid whenever r had at least 8 bytes. */
MUST_USE int kafka_req_header_decode(struct rd *r, struct kafka_req_header *h,
                                     const struct kafka_api **api_out);

/* Writes a request header (v2 when h's API and version are flexible).
 * Precondition: kafka_api_version_ok() for them. */
void kafka_req_header_encode(struct kw_wr *w, const struct kafka_req_header *h);

/* Writes the response header for an answer to (api_key, version): v1
 * (correlation id, empty tagged fields) for flexible versions, else v0;
 * always v0 for ApiVersions (KIP-511: a client that does not know the
 * broker's versions must be able to read the answer). Precondition:
 * api_key is defined. */
void kafka_resp_header_encode(struct kw_wr *w, int16_t api_key, int16_t version,
                              int32_t correlation_id);

/* Reads a response header as kafka_resp_header_encode() writes it. Returns
 * 0, or the reader's error. */
MUST_USE int kafka_resp_header_decode(struct rd *r, int16_t api_key, int16_t version,
                                      int32_t *correlation_id);

/* ---- messages, generically (the typed functions call these) ---- */

/* Sets every field of *m (a msg->body struct) to its default. */
void kafka_init(const struct kafka_msg *msg, void *m);

/* Sets every field of the struct s describes, at p, to its default. */
void kafka_struct_init(const struct kafka_struct *s, void *p);

/* Decodes msg at version from r's position to its end into *out (a
 * msg->body struct). Returns 0, or (left in r->err as well, but
 * -NG_EBADVERSION):
 *   r's error        when r had failed already;
 *   -NG_EBADVERSION  version outside msg's range (nothing read);
 *   -NG_ETRUNCATED   the bytes end before a field, a length or a count
 *                    says;
 *   -NG_EBADLEN      a length out of bounds (a string past 32767 bytes, a
 *                    null where the version allows none, a tagged field
 *                    not filling its size), or bytes left after the
 *                    message;
 *   -NG_EBADCOUNT    an array count below -1, or null where not allowed;
 *   -NG_EBADVARINT   a varint past 5 bytes or 32 bits;
 *   -NG_EBADARG      tagged fields out of order;
 *   -NG_ETOOBIG      a out of memory (never, with kw_arena_bytes() of the
 *                    bytes decoded below KW_ARENA_BYTES_MAX).
 * On error *out is partly filled and must not be used. */
MUST_USE int kafka_decode(const struct kafka_msg *msg, struct rd *r, int16_t version,
                          struct kw_arena *a, void *out);

/* Encodes *m (a msg->body struct) at version. Returns 0, or (w as it was
 * before the call):
 *   w's error        when w had failed already (a header that did not fit:
 *                    check once, after the body);
 *   -NG_EBADVERSION  version outside msg's range;
 *   -NG_ENOSPACE     w's buffer or hole array is full;
 *   -NG_EBADARG      a value the version cannot carry: null where it allows
 *                    none, a string past 32767 bytes.
 * In measuring mode (kw_wr_measure()) w.w.pos grows by the bytes written
 * and hole_count, hole_bytes by the holes. Preconditions: counts >= -1,
 * items not NULL when count > 0, external records not null. */
MUST_USE int kafka_encode(const struct kafka_msg *msg, struct kw_wr *w, int16_t version,
                          const void *m);

#include "net/kafka/messages.h" /* generated from net/kafka/messages.def */

#endif
