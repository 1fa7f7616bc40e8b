/*
 * net/proto.c — the wire codec. Byte layouts: docs/protocol.md.
 *
 * Every body is defined once, in net/proto.def; net/proto_gen.py makes
 * from it, at build time, each body's schema at each version (a field list
 * that mirrors the tables in docs/protocol.md, included below as
 * proto_def.inc), the versions each api speaks, and the encoders and
 * decoders of the messages the def marks "gen" (included at the end as
 * proto_msgs.inc). This file holds what they run on (the walker, the
 * encoder and decoder cores) and the messages the def marks "hand".
 *
 * One walker checks a body against its schema (lengths, counts, limits,
 * trailing bytes) before any decoder hands out an item, so a handler never
 * acts on the first half of a malformed request. The typed iterators then
 * re-read the checked bytes field by field; a read that fails there means
 * schema and iterator disagree, a programmer error.
 */
#include "net/proto.h"

#include <stdint.h>

/* ---- schemas ---- */

enum pf_type {
    PF_END = 0,
    PF_I8,
    PF_I16,
    PF_ERR, /* u16 error code: 0 or >= NG_ERR_FIRST */
    PF_I32,
    PF_I64,
    PF_STR,    /* string, not null */
    PF_NSTR,   /* string, may be null */
    PF_BYTES,  /* byte array, not null */
    PF_ARRAY,  /* array, not null */
    PF_NARRAY, /* array, may be null */
};

enum pf_limit {
    LIM_NONE = 0,
    LIM_TOPICS,     /* PROTO_TOPICS_MAX */
    LIM_PARTS,      /* PROTO_PARTITIONS_MAX, summed into the request total */
    LIM_META_PARTS, /* PROTO_PARTITIONS_MAX, not summed */
    LIM_APIS,       /* PROTO_API_RANGES_MAX */
    LIM_GROUPS,     /* PROTO_GROUPS_MAX */
    LIM_MEMBERS,    /* PROTO_GROUP_MEMBERS_MAX */
    LIM_RANGES,     /* PROTO_SHARE_RANGES_MAX */
    LIM_BROKERS,    /* PROTO_BROKERS_MAX */
    LIM_REPLICAS,   /* PROTO_REPLICAS_MAX */
    LIM_ACLS,       /* PROTO_ACLS_MAX */
    LIM_USERS,      /* PROTO_USERS_MAX */
};

struct pfield {
    uint8_t type;
    uint8_t limit;
    const struct pfield *elem; /* arrays: the element's fields */
};

#define F(t)                   \
    {                          \
        PF_##t, LIM_NONE, NULL \
    }
#define ARR(lim, e)            \
    {                          \
        PF_ARRAY, LIM_##lim, e \
    }
#define NARR(lim, e)            \
    {                           \
        PF_NARRAY, LIM_##lim, e \
    }
#define END                    \
    {                          \
        PF_END, LIM_NONE, NULL \
    }

/* Smallest encoding of each type: lets a count be checked against the
 * bytes left before a single element is read. */
static const uint8_t pf_bytes_min[] = {
    [PF_END] = 0, [PF_I8] = 1,   [PF_I16] = 2,   [PF_ERR] = 2,   [PF_I32] = 4,    [PF_I64] = 8,
    [PF_STR] = 2, [PF_NSTR] = 2, [PF_BYTES] = 4, [PF_ARRAY] = 4, [PF_NARRAY] = 4,
};

/* How a body's outer array is laid out. */
enum shape {
    SHAPE_NONE = 0,            /* no outer topic array */
    SHAPE_NAMES,               /* topic names */
    SHAPE_TOPIC_PARTS,         /* name, partitions (counted in the request total) */
    SHAPE_TOPIC_ERR_PARTS,     /* name, error, partitions (Metadata response) */
    SHAPE_TOPIC_ERR_CFG_PARTS, /* name, error, config, partitions (Metadata v1) */
    SHAPE_CREATE,              /* CreateTopics request entries */
    SHAPE_RESULTS,             /* topic results */
    SHAPE_TOPIC_PARTS_ANY,     /* name, partitions (bounded per topic only) */
    SHAPE_GROUPS,              /* ListGroups entries */
    SHAPE_DESCRIBE,            /* DescribeGroup: members with topics, then topics */
    SHAPE_ACLS,                /* ACLs */
};

/* DescribeGroup sections, in order; Metadata v2's brokers before its
 * topics. */
enum section {
    SECTION_NONE = 0,
    SECTION_MEMBERS,
    SECTION_OFFSETS,
    SECTION_BROKERS,
};

struct msg {
    const struct pfield *body;
    const struct pfield *part; /* partition element, or NULL */
    uint8_t shape;
};

/* The layouts, versions and names of every api, from net/proto.def
 * (net/proto_gen.py). */
#include "net/proto_def.inc"

/* The wire sizes net/proto.h gives callers, held to the def's layouts. */
static_assert(PROTO_PARTITION_INDEX_BYTES == PART_INDEX_BYTES, "net/proto.def: part_index");
static_assert(PROTO_PARTITION_RESULT_BYTES == PART_RESULT_BYTES, "net/proto.def: part_result");
static_assert(PROTO_PARTITION_OFFSET_BYTES == PART_OFFSET_BYTES, "net/proto.def: part_offset");
static_assert(PROTO_OFFSET_DESC_BYTES == OFFSET_DESC_BYTES, "net/proto.def: offset_desc");
static_assert(PROTO_SHARE_ACQUIRED_BYTES == ACQUIRED_BYTES, "net/proto.def: acquired");
static_assert(PROTO_SHARE_ACK_RANGE_BYTES == ACK_BYTES, "net/proto.def: ack");

bool proto_api_known(uint16_t api_key)
{
    return api_key < PROTO_API_COUNT && msgs[api_key][0][0].body != NULL;
}

static const struct msg *msg_of(uint16_t api_key, uint16_t version, bool response)
{
    ASSERT(proto_api_known(api_key) && version <= api_version_max[api_key]);
    ASSERT(version < PROTO_VERSIONS);
    return &msgs[api_key][version][response ? 1 : 0];
}

/* ---- errors, apis, names ---- */

uint16_t proto_err_to_wire(int rc)
{
    ASSERT(rc <= 0);
    if (rc == 0) {
        return 0;
    }
    if (rc >= -(int)UINT16_MAX && -rc >= NG_ERR_FIRST) {
        return (uint16_t)-rc;
    }
    return NG_ESYSTEM;
}

int proto_err_from_wire(uint16_t code)
{
    if (code == 0) {
        return 0;
    }
    if (code < NG_ERR_FIRST) {
        return -NG_EPROTO;
    }
    return -(int)code;
}

bool proto_produce_retriable(int err)
{
    switch (err) {
    case -NG_EDISCONNECTED:
    case -NG_ETIMEOUT:
    case -NG_EBUSY:
    case -NG_EDISK_FULL:
    case -NG_ECLOSED:
    case -NG_EUNKNOWN_TOPIC:
    case -NG_ENOT_LEADER:
    case -NG_EFENCED_LEADER_EPOCH:
    case -NG_EUNKNOWN_LEADER_EPOCH:
    case -NG_ENOT_ENOUGH_REPLICAS:
        return true;
    default:
        return err < 0 && -err < NG_ERR_FIRST;
    }
}

const char *proto_api_name(uint16_t api_key)
{
    return proto_api_known(api_key) ? api_names[api_key] : "unknown";
}

int proto_api_check(uint16_t api_key, uint16_t api_version)
{
    if (!proto_api_known(api_key)) {
        return -NG_EUNKNOWN_API;
    }
    if (api_version > api_version_max[api_key]) {
        return -NG_EBADVERSION;
    }
    return 0;
}

uint16_t proto_api_version_max(uint16_t api_key)
{
    ASSERT(proto_api_known(api_key));
    return api_version_max[api_key];
}

int proto_str_copy(struct proto_str s, char *buf, size_t cap)
{
    ASSERT(buf != NULL || cap == 0);
    if (s.len < 0) {
        return -NG_EBADARG;
    }
    if ((size_t)s.len >= cap) {
        return -NG_ETOOBIG;
    }
    if (s.len > 0) {
        memcpy(buf, s.ptr, (size_t)s.len);
    }
    buf[s.len] = '\0';
    return 0;
}

static bool topic_char_valid(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

bool proto_topic_name_valid(const char *name, size_t len)
{
    if (name == NULL || len == 0 || len > PROTO_TOPIC_NAME_BYTES_MAX) {
        return false;
    }
    /* "." and ".." name directories that already exist in every directory. */
    if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.')) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!topic_char_valid(name[i])) {
            return false;
        }
    }
    return true;
}

/* ---- field readers (shared by the walker and the iterators) ---- */

static struct proto_str rd_str(struct rd *r, bool nullable)
{
    int16_t len = (int16_t)rd_be16(r);
    if (r->err != 0) {
        return PROTO_STR_NULL;
    }
    if (len == -1 && nullable) {
        return PROTO_STR_NULL;
    }
    if (len < 0 || len > PROTO_STRING_BYTES_MAX) {
        rd_fail(r, -NG_EBADLEN);
        return PROTO_STR_NULL;
    }
    const uint8_t *p = rd_take(r, (size_t)len);
    if (p == NULL) {
        return PROTO_STR_NULL;
    }
    return (struct proto_str){.ptr = (const char *)p, .len = len};
}

/* A non-null byte array; *len_out its length. */
static const uint8_t *rd_bytes(struct rd *r, uint32_t *len_out)
{
    *len_out = 0;
    int32_t len = (int32_t)rd_be32(r);
    if (r->err != 0) {
        return NULL;
    }
    if (len < 0) {
        rd_fail(r, -NG_EBADLEN);
        return NULL;
    }
    const uint8_t *p = rd_take(r, (size_t)len);
    if (p != NULL) {
        *len_out = (uint32_t)len;
    }
    return p;
}

/* An error code field: 0 or an NG_E* value; 1..4095 are not codes. */
static int rd_err_code(struct rd *r)
{
    uint16_t code = rd_be16(r);
    if (code != 0 && code < NG_ERR_FIRST) {
        rd_fail(r, -NG_EBADARG);
        return 0;
    }
    return proto_err_from_wire(code);
}

/* ---- the walker ---- */

static int32_t limit_count(uint8_t limit)
{
    switch (limit) {
    case LIM_TOPICS:
        return PROTO_TOPICS_MAX;
    case LIM_PARTS:
    case LIM_META_PARTS:
        return PROTO_PARTITIONS_MAX;
    case LIM_APIS:
        return PROTO_API_RANGES_MAX;
    case LIM_GROUPS:
        return PROTO_GROUPS_MAX;
    case LIM_MEMBERS:
        return PROTO_GROUP_MEMBERS_MAX;
    case LIM_RANGES:
        return PROTO_SHARE_RANGES_MAX;
    case LIM_BROKERS:
        return PROTO_BROKERS_MAX;
    case LIM_REPLICAS:
        return PROTO_REPLICAS_MAX;
    case LIM_ACLS:
        return PROTO_ACLS_MAX;
    case LIM_USERS:
        return PROTO_USERS_MAX;
    default:
        UNREACHABLE();
    }
}

static size_t schema_bytes_min(const struct pfield *s)
{
    size_t n = 0;
    for (; s->type != PF_END; s++) {
        n += pf_bytes_min[s->type];
    }
    return n;
}

/* Reads an array count and checks it: -1 only where null is allowed (0
 * elements follow), else 0..limit, no more elements than the bytes left
 * can hold, partitions within the request total. */
static int32_t walk_count(struct rd *r, const struct pfield *f, uint32_t *parts_total)
{
    int32_t n = (int32_t)rd_be32(r);
    if (r->err != 0) {
        return 0;
    }
    if (n == -1 && f->type == PF_NARRAY) {
        return 0;
    }
    if (n < 0 || n > limit_count(f->limit)) {
        rd_fail(r, -NG_EBADCOUNT);
        return 0;
    }
    if ((size_t)n * schema_bytes_min(f->elem) > rd_left(r)) {
        rd_fail(r, -NG_ETRUNCATED);
        return 0;
    }
    if (f->limit == LIM_PARTS) {
        *parts_total += (uint32_t)n;
        if (*parts_total > PROTO_REQUEST_PARTITIONS_MAX) {
            rd_fail(r, -NG_EBADCOUNT);
            return 0;
        }
    }
    return n;
}

static void walk(struct rd *r, const struct pfield *s, uint32_t *parts_total);

/* Checks the field f at r, moving past it. */
static void walk_field(struct rd *r, const struct pfield *f, uint32_t *parts_total)
{
    uint32_t unused;
    switch (f->type) {
    case PF_I8:
        (void)rd_take(r, 1);
        break;
    case PF_I16:
        (void)rd_take(r, 2);
        break;
    case PF_ERR:
        (void)rd_err_code(r);
        break;
    case PF_I32:
        (void)rd_take(r, 4);
        break;
    case PF_I64:
        (void)rd_take(r, 8);
        break;
    case PF_STR:
    case PF_NSTR:
        (void)rd_str(r, f->type == PF_NSTR);
        break;
    case PF_BYTES:
        (void)rd_bytes(r, &unused);
        break;
    case PF_ARRAY:
    case PF_NARRAY: {
        int32_t n = walk_count(r, f, parts_total);
        for (int32_t i = 0; i < n && r->err == 0; i++) {
            walk(r, f->elem, parts_total);
        }
        break;
    }
    default:
        UNREACHABLE();
    }
}

/* Checks the fields of s at r, moving past them. Recursion depth is the
 * schemas' nesting (at most 4), not anything read from the wire. */
static void walk(struct rd *r, const struct pfield *s, uint32_t *parts_total)
{
    for (; s->type != PF_END && r->err == 0; s++) {
        walk_field(r, s, parts_total);
    }
}

/* Checks a whole body against its schema; body itself is not moved.
 * *parts_total: the elements of its LIM_PARTS arrays. */
static int body_check(const struct rd *body, const struct pfield *s, uint32_t *parts_total)
{
    struct rd r = *body;
    *parts_total = 0;
    walk(&r, s, parts_total);
    if (r.err != 0) {
        return r.err;
    }
    if (rd_left(&r) != 0) {
        return -NG_EBADLEN; /* trailing bytes: not this version's layout */
    }
    return 0;
}

/* ---- frames and headers ---- */

static int frame_len(const uint8_t *prefix, uint32_t frame_bytes_max, uint32_t len_min,
                     uint32_t *len_out)
{
    ASSERT(prefix != NULL && len_out != NULL);
    ASSERT(frame_bytes_max <= PROTO_FRAME_BYTES_LIMIT);
    uint32_t len = get_be32(prefix);
    if (len > frame_bytes_max) {
        return -NG_ETOOBIG;
    }
    if (len < len_min) {
        return -NG_EBADLEN;
    }
    *len_out = len;
    return 0;
}

int proto_request_frame_len(const uint8_t prefix[PROTO_FRAME_PREFIX_BYTES],
                            uint32_t frame_bytes_max, uint32_t *len_out)
{
    return frame_len(prefix, frame_bytes_max, PROTO_REQ_HEADER_BYTES_MIN, len_out);
}

int proto_response_frame_len(const uint8_t prefix[PROTO_FRAME_PREFIX_BYTES],
                             uint32_t frame_bytes_max, uint32_t *len_out)
{
    return frame_len(prefix, frame_bytes_max, PROTO_RESP_HEADER_BYTES, len_out);
}

int proto_req_header_decode(struct rd *r, struct proto_req_header *h)
{
    ASSERT(r != NULL && h != NULL);
    *h = (struct proto_req_header){.client_id = PROTO_STR_NULL};
    h->api_key = rd_be16(r);
    h->api_version = rd_be16(r);
    h->correlation_id = rd_be32(r);
    h->client_id = rd_str(r, true);
    if (r->err != 0) {
        return r->err;
    }
    return proto_api_check(h->api_key, h->api_version);
}

int proto_resp_header_decode(struct rd *r, struct proto_resp_header *h)
{
    ASSERT(r != NULL && h != NULL);
    *h = (struct proto_resp_header){0};
    h->correlation_id = rd_be32(r);
    h->err = rd_err_code(r);
    if (r->err != 0) {
        return r->err;
    }
    if (h->err != 0 && rd_left(r) != 0) {
        return -NG_EBADLEN;
    }
    return 0;
}

/* ---- encoder core ---- */

#define NO_MARK SIZE_MAX

static void enc_fail(struct proto_enc *e, int err)
{
    if (e->err == 0) {
        e->err = err;
    }
}

static void enc_patch32(struct proto_enc *e, size_t at, uint32_t v)
{
    if (e->w->err == 0) {
        put_be32(e->w->ptr + at, v);
    }
}

static void enc_str(struct proto_enc *e, struct proto_str s, bool nullable)
{
    if (s.len == -1 && nullable) {
        wr_be16(e->w, UINT16_MAX); /* i16 -1 */
        return;
    }
    if (s.len < 0 || s.len > PROTO_STRING_BYTES_MAX || (s.len > 0 && s.ptr == NULL)) {
        enc_fail(e, -NG_EBADLEN);
        return;
    }
    wr_be16(e->w, (uint16_t)s.len);
    wr_bytes(e->w, s.ptr, (size_t)s.len);
}

static void enc_bytes(struct proto_enc *e, const uint8_t *p, uint32_t len)
{
    if (len > INT32_MAX || (len > 0 && p == NULL)) {
        enc_fail(e, -NG_EBADLEN);
        return;
    }
    wr_be32(e->w, len);
    wr_bytes(e->w, p, len);
}

static void enc_err(struct proto_enc *e, int err) { wr_be16(e->w, proto_err_to_wire(err)); }

static void enc_frame_begin(struct proto_enc *e, struct wr *w, uint16_t api_key, uint16_t version,
                            bool response)
{
    ASSERT(e != NULL && w != NULL && w->err == 0);
    ASSERT(api_key < PROTO_API_COUNT && version <= api_version_max[api_key]);
    const struct msg *m = msg_of(api_key, version, response);
    *e = (struct proto_enc){
        .w = w,
        .api_key = api_key,
        .api_version = version,
        .response = response,
        .shape = m->shape,
        .frame_at = w->pos,
        .topics_at = NO_MARK,
        .parts_at = NO_MARK,
        .records_at = NO_MARK,
        .members_at = NO_MARK,
        .part_schema = m->part,
    };
    wr_be32(w, 0); /* frame length, patched by proto_enc_end() */
}

static void enc_req_begin(struct proto_enc *e, struct wr *w, uint16_t api_key, uint16_t version,
                          uint32_t correlation_id, struct proto_str client_id)
{
    enc_frame_begin(e, w, api_key, version, false);
    wr_be16(w, api_key);
    wr_be16(w, version);
    wr_be32(w, correlation_id);
    enc_str(e, client_id, true);
}

static void enc_resp_begin(struct proto_enc *e, struct wr *w, uint16_t api_key, uint16_t version,
                           uint32_t correlation_id)
{
    enc_frame_begin(e, w, api_key, version, true);
    wr_be32(w, correlation_id);
    wr_be16(w, 0); /* request-level error: none */
}

static void enc_check(const struct proto_enc *e, uint16_t api_key, bool response)
{
    ASSERT(e->api_key == api_key && e->response == response);
}

/* Opens the topic array: a count placeholder. */
static void enc_topics_open(struct proto_enc *e)
{
    e->topics_at = e->w->pos;
    e->topic_count = 0;
    wr_be32(e->w, 0);
}

static void enc_parts_close(struct proto_enc *e)
{
    if (e->parts_at != NO_MARK) {
        enc_patch32(e, e->parts_at, (uint32_t)e->part_count);
        e->parts_at = NO_MARK;
    }
}

/* Starts the next element of the outer array, of at most max. */
static void enc_outer_add(struct proto_enc *e, int32_t max)
{
    ASSERT(e->topics_at != NO_MARK); /* open, and not a null array */
    ASSERT(e->records_at == NO_MARK);
    enc_parts_close(e);
    if (e->topic_count == max) {
        enc_fail(e, -NG_EBADCOUNT);
        return;
    }
    e->topic_count++;
}

/* Starts the next topic of the outer array. */
static void enc_topic_add(struct proto_enc *e) { enc_outer_add(e, PROTO_TOPICS_MAX); }

static void enc_parts_open(struct proto_enc *e)
{
    e->parts_at = e->w->pos;
    e->part_count = 0;
    wr_be32(e->w, 0);
}

/* Starts the next partition of the open topic. */
static void enc_part_add(struct proto_enc *e)
{
    ASSERT(e->parts_at != NO_MARK); /* a topic is open */
    ASSERT(e->records_at == NO_MARK);
    if (e->part_count == PROTO_PARTITIONS_MAX) {
        enc_fail(e, -NG_EBADCOUNT);
        return;
    }
    e->part_count++;
    if (e->shape == SHAPE_TOPIC_PARTS) {
        if (e->part_total == PROTO_REQUEST_PARTITIONS_MAX) {
            enc_fail(e, -NG_EBADCOUNT);
            return;
        }
        e->part_total++;
    }
}

/* A records byte array the caller fills in place: its length is a
 * placeholder until enc_records_close(). */
static void enc_records_open(struct proto_enc *e)
{
    e->records_at = e->w->pos;
    wr_be32(e->w, 0);
}

static void enc_records_close(struct proto_enc *e)
{
    ASSERT(e->records_at != NO_MARK);
    struct wr *w = e->w;
    if (w->err == 0) {
        ASSERT(w->pos >= e->records_at + 4); /* trimmed below the records */
        uint64_t n = w->pos - e->records_at - 4 + e->spliced_records;
        if (n > INT32_MAX) {
            enc_fail(e, -NG_EBADLEN);
        } else {
            enc_patch32(e, e->records_at, (uint32_t)n);
        }
    }
    e->records_at = NO_MARK;
    e->spliced_records = 0;
}

static void enc_describe_offsets(struct proto_enc *e);
static void enc_metadata_brokers_close(struct proto_enc *e);

int proto_enc_end(struct proto_enc *e)
{
    ASSERT(e != NULL && e->w != NULL);
    ASSERT(e->records_at == NO_MARK); /* Fetch partition left open */
    struct wr *w = e->w;
    if (e->shape == SHAPE_DESCRIBE && e->section == SECTION_MEMBERS) {
        enc_describe_offsets(e); /* an empty offsets array */
    }
    if (e->section == SECTION_BROKERS) {
        enc_metadata_brokers_close(e); /* and an empty topic array */
    }
    enc_parts_close(e);
    if (e->topics_at != NO_MARK) {
        enc_patch32(e, e->topics_at, (uint32_t)e->topic_count);
        e->topics_at = NO_MARK;
    }
    int rc = e->err != 0 ? e->err : w->err;
    uint64_t frame = w->pos - e->frame_at - PROTO_FRAME_PREFIX_BYTES + e->spliced_total;
    if (rc == 0 && frame > PROTO_FRAME_BYTES_LIMIT) {
        rc = -NG_ETOOBIG;
    }
    if (rc != 0) {
        /* As if the frame had never been started. */
        w->pos = e->frame_at;
        w->err = 0;
        e->err = rc;
        return rc;
    }
    put_be32(w->ptr + e->frame_at, (uint32_t)frame);
    return 0;
}

void proto_enc_topic(struct proto_enc *e, struct proto_str name)
{
    ASSERT(e->shape == SHAPE_NAMES || e->shape == SHAPE_TOPIC_PARTS ||
           e->shape == SHAPE_TOPIC_PARTS_ANY || e->shape == SHAPE_DESCRIBE);
    enc_topic_add(e);
    enc_str(e, name, false);
    if (e->shape != SHAPE_NAMES) {
        enc_parts_open(e);
    }
}

/* Starts a partition whose element is `schema`. */
static void enc_part_of(struct proto_enc *e, const struct pfield *schema)
{
    ASSERT(e->part_schema == schema);
    enc_part_add(e);
}

void proto_enc_partition_index(struct proto_enc *e, int32_t partition)
{
    enc_part_of(e, s_part_index);
    wr_be32(e->w, (uint32_t)partition);
}

void proto_enc_partition_result(struct proto_enc *e, const struct proto_partition_result *r)
{
    enc_part_of(e, s_part_result);
    wr_be32(e->w, (uint32_t)r->partition);
    enc_err(e, r->err);
}

void proto_enc_partition_offset(struct proto_enc *e, const struct proto_partition_offset *p)
{
    enc_part_of(e, s_part_offset);
    wr_be32(e->w, (uint32_t)p->partition);
    wr_be64(e->w, (uint64_t)p->offset);
    enc_err(e, p->err);
}

int proto_resp_error_encode(struct wr *w, uint32_t correlation_id, int err)
{
    ASSERT(w != NULL && w->err == 0 && err < 0);
    if (w->cap - w->pos < PROTO_FRAME_PREFIX_BYTES + PROTO_RESP_HEADER_BYTES) {
        return -NG_ENOSPACE;
    }
    wr_be32(w, PROTO_RESP_HEADER_BYTES);
    wr_be32(w, correlation_id);
    wr_be16(w, proto_err_to_wire(err));
    return 0;
}

/* ---- decoder core ---- */

/* Checks body against the message's schema and readies d at its start. */
static int dec_open(struct rd *body, uint16_t api_key, uint16_t version, bool response,
                    struct proto_dec *d)
{
    ASSERT(body != NULL && d != NULL);
    ASSERT(api_key < PROTO_API_COUNT);
    if (body->err != 0) {
        return body->err;
    }
    if (version > api_version_max[api_key]) {
        return -NG_EBADVERSION;
    }
    const struct msg *m = msg_of(api_key, version, response);
    uint32_t parts_total;
    int rc = body_check(body, m->body, &parts_total);
    if (rc != 0) {
        return rc;
    }
    *d = (struct proto_dec){
        .rd = *body,
        .partition_count = parts_total,
        .part_schema = m->part,
        .api_key = api_key,
        .api_version = version,
        .response = response,
        .shape = m->shape,
        .section = m->shape == SHAPE_DESCRIBE ? SECTION_MEMBERS : SECTION_NONE,
    };
    body->pos = body->len; /* consumed: the iterators own the rest */
    return 0;
}

/* Reads the outer array's count, after the body's leading fields. */
static void dec_topics_open(struct proto_dec *d)
{
    d->topic_count = (int32_t)rd_be32(&d->rd);
    d->topics_left = d->topic_count < 0 ? 0 : d->topic_count;
    ASSERT(d->rd.err == 0);
}

static void dec_check(const struct proto_dec *d, uint16_t api_key, bool response)
{
    ASSERT(d->api_key == api_key && d->response == response);
}

/* Counts down the next partition of the current topic. */
static bool dec_part_next(struct proto_dec *d, uint16_t api_key, bool response)
{
    dec_check(d, api_key, response);
    if (d->parts_left == 0) {
        return false;
    }
    d->parts_left--;
    return true;
}

bool proto_next_topic(struct proto_dec *d, struct proto_topic *t)
{
    ASSERT(d != NULL && t != NULL);
    ASSERT(d->shape == SHAPE_NAMES || d->shape == SHAPE_TOPIC_PARTS ||
           d->shape == SHAPE_TOPIC_ERR_PARTS || d->shape == SHAPE_TOPIC_ERR_CFG_PARTS ||
           d->shape == SHAPE_TOPIC_PARTS_ANY || d->shape == SHAPE_DESCRIBE);
    uint32_t unused = 0;
    for (; d->parts_left > 0; d->parts_left--) {
        walk(&d->rd, d->part_schema, &unused);
    }
    if (d->topics_left == 0) {
        return false;
    }
    d->topics_left--;
    *t = (struct proto_topic){0};
    t->name = rd_str(&d->rd, false);
    if (d->shape == SHAPE_TOPIC_ERR_PARTS || d->shape == SHAPE_TOPIC_ERR_CFG_PARTS) {
        t->err = rd_err_code(&d->rd);
    }
    if (d->shape == SHAPE_TOPIC_ERR_CFG_PARTS) {
        t->config.partition_count = (int32_t)rd_be32(&d->rd);
        t->config.retention_ms = (int64_t)rd_be64(&d->rd);
        t->config.retention_bytes = (int64_t)rd_be64(&d->rd);
        t->config.segment_bytes = (int64_t)rd_be64(&d->rd);
        t->config.segment_ms = (int64_t)rd_be64(&d->rd);
        t->config.batch_bytes_max = (int32_t)rd_be32(&d->rd);
    }
    if (d->shape != SHAPE_NAMES) {
        t->partition_count = (int32_t)rd_be32(&d->rd);
    }
    d->parts_left = t->partition_count;
    ASSERT(d->rd.err == 0);
    return true;
}

/* ---- ApiVersions ---- */

void proto_api_versions_fill(struct proto_api_versions_resp *resp, uint32_t frame_bytes_max)
{
    ASSERT(resp != NULL);
    *resp = (struct proto_api_versions_resp){.frame_bytes_max = frame_bytes_max};
    for (uint16_t k = 0; k < PROTO_API_COUNT; k++) {
        if (proto_api_known(k)) {
            resp->apis[resp->api_count++] = (struct proto_api_range){
                .api_key = k, .version_min = 0, .version_max = api_version_max[k]};
        }
    }
}

int proto_api_versions_resp_encode(struct wr *w, uint16_t version, uint32_t correlation_id,
                                   const struct proto_api_versions_resp *resp)
{
    ASSERT(resp != NULL);
    struct proto_enc e;
    enc_resp_begin(&e, w, PROTO_API_API_VERSIONS, version, correlation_id);
    wr_be32(w, resp->frame_bytes_max);
    if (resp->api_count > PROTO_API_RANGES_MAX) {
        enc_fail(&e, -NG_EBADCOUNT);
    } else {
        wr_be32(w, resp->api_count);
        for (uint32_t i = 0; i < resp->api_count; i++) {
            wr_be16(w, resp->apis[i].api_key);
            wr_be16(w, resp->apis[i].version_min);
            wr_be16(w, resp->apis[i].version_max);
        }
    }
    return proto_enc_end(&e);
}

int proto_api_versions_resp_decode(struct rd *body, uint16_t version,
                                   struct proto_api_versions_resp *out)
{
    ASSERT(out != NULL);
    struct proto_dec d;
    int rc = dec_open(body, PROTO_API_API_VERSIONS, version, true, &d);
    if (rc != 0) {
        return rc;
    }
    *out = (struct proto_api_versions_resp){0};
    out->frame_bytes_max = rd_be32(&d.rd);
    out->api_count = rd_be32(&d.rd); /* <= PROTO_API_RANGES_MAX: checked */
    for (uint32_t i = 0; i < out->api_count; i++) {
        out->apis[i].api_key = rd_be16(&d.rd);
        out->apis[i].version_min = rd_be16(&d.rd);
        out->apis[i].version_max = rd_be16(&d.rd);
    }
    ASSERT(d.rd.err == 0);
    return 0;
}

/* ---- Metadata v2's additions (a cluster) ---- */

/* After the host and port: the answering broker's id, the controller's,
 * and the broker array's count, patched when the first topic comes. */
static void enc_metadata_brokers_open(struct proto_enc *e, const struct proto_metadata_resp *m)
{
    wr_be32(e->w, (uint32_t)m->broker_id);
    wr_be32(e->w, (uint32_t)m->controller_id);
    e->members_at = e->w->pos;
    e->member_count = 0;
    wr_be32(e->w, 0);
    e->section = SECTION_BROKERS;
}

static void enc_metadata_brokers_close(struct proto_enc *e)
{
    ASSERT(e->section == SECTION_BROKERS);
    enc_patch32(e, e->members_at, (uint32_t)e->member_count);
    e->members_at = NO_MARK;
    e->section = SECTION_NONE;
    enc_topics_open(e);
}

void proto_metadata_resp_broker(struct proto_enc *e, const struct proto_broker *b)
{
    enc_check(e, PROTO_API_METADATA, true);
    ASSERT(e->section == SECTION_BROKERS); /* v2, before the first topic */
    if (e->member_count == PROTO_BROKERS_MAX) {
        enc_fail(e, -NG_EBADCOUNT);
        return;
    }
    e->member_count++;
    wr_be32(e->w, (uint32_t)b->id);
    enc_str(e, b->host, false);
    wr_be16(e->w, b->port);
}

static void enc_broker_ids(struct proto_enc *e, const int32_t *ids, uint8_t count)
{
    if (count > PROTO_REPLICAS_MAX) {
        enc_fail(e, -NG_EBADCOUNT);
        return;
    }
    wr_be32(e->w, count);
    for (uint8_t i = 0; i < count; i++) {
        wr_be32(e->w, (uint32_t)ids[i]);
    }
}

static void enc_metadata_partition_v2(struct proto_enc *e, const struct proto_metadata_partition *p)
{
    wr_be32(e->w, (uint32_t)p->leader);
    wr_be32(e->w, (uint32_t)p->leader_epoch);
    enc_broker_ids(e, p->replicas, p->replica_count);
    enc_broker_ids(e, p->isr, p->isr_count);
    if (e->api_version >= 3) {
        enc_broker_ids(e, p->target, p->target_count);
    }
}

/* Reads the ids and the broker count and keeps a cursor over the brokers
 * in out, leaving d->rd past them. The walker checked them all. */
static void dec_metadata_brokers(struct proto_dec *d, struct proto_metadata_resp *out)
{
    out->broker_id = (int32_t)rd_be32(&d->rd);
    out->controller_id = (int32_t)rd_be32(&d->rd);
    out->broker_count = (int32_t)rd_be32(&d->rd);
    out->brokers_left = out->broker_count;
    out->brokers = d->rd;
    uint32_t unused = 0;
    for (int32_t i = 0; i < out->broker_count; i++) {
        walk(&d->rd, s_broker, &unused);
    }
    ASSERT(d->rd.err == 0);
}

bool proto_metadata_resp_next_broker(struct proto_metadata_resp *m, struct proto_broker *b)
{
    ASSERT(m != NULL && b != NULL);
    if (m->brokers_left <= 0) {
        return false;
    }
    m->brokers_left--;
    b->id = (int32_t)rd_be32(&m->brokers);
    b->host = rd_str(&m->brokers, false);
    b->port = rd_be16(&m->brokers);
    ASSERT(m->brokers.err == 0);
    return true;
}

/* Reads a replica id array; its count is within PROTO_REPLICAS_MAX
 * (checked by the walker). */
static uint8_t dec_broker_ids(struct rd *r, int32_t *ids)
{
    uint32_t n = rd_be32(r);
    ASSERT(n <= PROTO_REPLICAS_MAX);
    for (uint32_t i = 0; i < n; i++) {
        ids[i] = (int32_t)rd_be32(r);
    }
    return (uint8_t)n;
}

static void dec_metadata_partition_v2(struct proto_dec *d, struct proto_metadata_partition *p)
{
    p->leader = (int32_t)rd_be32(&d->rd);
    p->leader_epoch = (int32_t)rd_be32(&d->rd);
    p->replica_count = dec_broker_ids(&d->rd, p->replicas);
    p->isr_count = dec_broker_ids(&d->rd, p->isr);
    if (d->api_version >= 3) {
        p->target_count = dec_broker_ids(&d->rd, p->target);
    }
}

/* ---- Metadata ---- */

void proto_metadata_resp_begin(struct proto_enc *e, struct wr *w, uint16_t version,
                               uint32_t correlation_id, const struct proto_metadata_resp *m)
{
    ASSERT(m != NULL);
    enc_resp_begin(e, w, PROTO_API_METADATA, version, correlation_id);
    enc_str(e, m->host, false);
    wr_be16(w, m->port);
    if (version >= 2) {
        enc_metadata_brokers_open(e, m);
    } else {
        enc_topics_open(e);
    }
}

void proto_metadata_resp_topic_config(struct proto_enc *e, struct proto_str name, int err,
                                      const struct proto_topic_config *cfg)
{
    ASSERT(cfg != NULL);
    enc_check(e, PROTO_API_METADATA, true);
    if (e->section == SECTION_BROKERS) {
        enc_metadata_brokers_close(e);
    }
    enc_topic_add(e);
    enc_str(e, name, false);
    enc_err(e, err);
    if (e->shape == SHAPE_TOPIC_ERR_CFG_PARTS) {
        wr_be32(e->w, (uint32_t)cfg->partition_count);
        wr_be64(e->w, (uint64_t)cfg->retention_ms);
        wr_be64(e->w, (uint64_t)cfg->retention_bytes);
        wr_be64(e->w, (uint64_t)cfg->segment_bytes);
        wr_be64(e->w, (uint64_t)cfg->segment_ms);
        wr_be32(e->w, (uint32_t)cfg->batch_bytes_max);
    }
    enc_parts_open(e);
}

void proto_metadata_resp_topic(struct proto_enc *e, struct proto_str name, int err)
{
    static const struct proto_topic_config none;
    proto_metadata_resp_topic_config(e, name, err, &none);
}

void proto_metadata_resp_partition(struct proto_enc *e, const struct proto_metadata_partition *p)
{
    enc_check(e, PROTO_API_METADATA, true);
    enc_part_add(e);
    wr_be32(e->w, (uint32_t)p->partition);
    enc_err(e, p->err);
    wr_be64(e->w, (uint64_t)p->offset_earliest);
    wr_be64(e->w, (uint64_t)p->offset_latest);
    if (e->api_version >= 2) {
        enc_metadata_partition_v2(e, p);
    }
}

int proto_metadata_resp_decode(struct rd *body, uint16_t version, struct proto_metadata_resp *out,
                               struct proto_dec *d)
{
    ASSERT(out != NULL);
    int rc = dec_open(body, PROTO_API_METADATA, version, true, d);
    if (rc != 0) {
        return rc;
    }
    *out = (struct proto_metadata_resp){.broker_id = PROTO_BROKER_NONE,
                                        .controller_id = PROTO_BROKER_NONE};
    out->host = rd_str(&d->rd, false);
    out->port = rd_be16(&d->rd);
    if (version >= 2) {
        dec_metadata_brokers(d, out);
    }
    dec_topics_open(d);
    return 0;
}

bool proto_metadata_resp_next_partition(struct proto_dec *d, struct proto_metadata_partition *p)
{
    if (!dec_part_next(d, PROTO_API_METADATA, true)) {
        return false;
    }
    *p = (struct proto_metadata_partition){.leader = PROTO_BROKER_NONE,
                                           .leader_epoch = PROTO_BROKER_NONE};
    p->partition = (int32_t)rd_be32(&d->rd);
    p->err = rd_err_code(&d->rd);
    p->offset_earliest = (int64_t)rd_be64(&d->rd);
    p->offset_latest = (int64_t)rd_be64(&d->rd);
    if (d->api_version >= 2) {
        dec_metadata_partition_v2(d, p);
    }
    ASSERT(d->rd.err == 0);
    return true;
}

/* ---- topic results (CreateTopics, DeleteTopics responses) ---- */

void proto_enc_topic_result(struct proto_enc *e, const struct proto_topic_result *r)
{
    ASSERT(e->shape == SHAPE_RESULTS);
    enc_topic_add(e);
    enc_str(e, r->name, false);
    enc_err(e, r->err);
}

bool proto_next_topic_result(struct proto_dec *d, struct proto_topic_result *r)
{
    ASSERT(d->shape == SHAPE_RESULTS);
    if (d->topics_left == 0) {
        return false;
    }
    d->topics_left--;
    r->name = rd_str(&d->rd, false);
    r->err = rd_err_code(&d->rd);
    ASSERT(d->rd.err == 0);
    return true;
}

/* ---- Fetch ---- */

void proto_fetch_resp_begin(struct proto_enc *e, struct wr *w, uint16_t version,
                            uint32_t correlation_id)
{
    enc_resp_begin(e, w, PROTO_API_FETCH, version, correlation_id);
    enc_topics_open(e);
}

void proto_fetch_resp_partition_begin(struct proto_enc *e,
                                      const struct proto_fetch_resp_partition *p)
{
    enc_check(e, PROTO_API_FETCH, true);
    enc_part_add(e);
    wr_be32(e->w, (uint32_t)p->partition);
    enc_err(e, p->err);
    wr_be64(e->w, (uint64_t)p->offset_earliest);
    wr_be64(e->w, (uint64_t)p->offset_latest);
    if (e->api_version >= 1) {
        wr_be64(e->w, (uint64_t)p->offset_resume);
    }
    enc_records_open(e); /* patched by _partition_end() */
}

/* A Fetch or ReplicaFetch response: the messages whose partitions carry
 * records written in place. */
static void enc_check_records(const struct proto_enc *e)
{
    ASSERT(e->response && (e->api_key == PROTO_API_FETCH || e->api_key == PROTO_API_REPLICA_FETCH));
}

void proto_fetch_resp_partition_end(struct proto_enc *e)
{
    enc_check_records(e);
    enc_records_close(e);
}

void proto_fetch_resp_partition_fail(struct proto_enc *e, int err, int64_t offset_resume)
{
    enc_check_records(e);
    ASSERT(err < 0 && e->records_at != NO_MARK && e->spliced_records == 0);
    ASSERT(e->w->err != 0 || e->w->pos == e->records_at + 4); /* no records yet */
    if (e->w->err != 0) {
        return;
    }
    /* Back from the records length: offset_resume (Fetch v1), two offsets,
     * error. */
    bool resume = e->api_key == PROTO_API_FETCH && e->api_version >= 1;
    size_t resume_at = e->records_at - 8;
    size_t err_at = e->records_at - (resume ? 8 : 0) - 16 - 2;
    put_be16(e->w->ptr + err_at, proto_err_to_wire(err));
    if (resume) {
        put_be64(e->w->ptr + resume_at, (uint64_t)offset_resume);
    }
}

void proto_fetch_resp_spliced(struct proto_enc *e, uint64_t n)
{
    enc_check_records(e);
    ASSERT(e->records_at != NO_MARK);
    e->spliced_records += n;
    e->spliced_total += n;
}

void proto_fetch_resp_partition(struct proto_enc *e, const struct proto_fetch_resp_partition *p)
{
    ASSERT(p->records != NULL || p->records_bytes == 0);
    proto_fetch_resp_partition_begin(e, p);
    wr_bytes(e->w, p->records, p->records_bytes);
    proto_fetch_resp_partition_end(e);
}

int proto_fetch_resp_decode(struct rd *body, uint16_t version, struct proto_dec *d)
{
    int rc = dec_open(body, PROTO_API_FETCH, version, true, d);
    if (rc == 0) {
        dec_topics_open(d);
    }
    return rc;
}

bool proto_fetch_resp_next_partition(struct proto_dec *d, struct proto_fetch_resp_partition *p)
{
    if (!dec_part_next(d, PROTO_API_FETCH, true)) {
        return false;
    }
    p->partition = (int32_t)rd_be32(&d->rd);
    p->err = rd_err_code(&d->rd);
    p->offset_earliest = (int64_t)rd_be64(&d->rd);
    p->offset_latest = (int64_t)rd_be64(&d->rd);
    p->offset_resume = d->api_version >= 1 ? (int64_t)rd_be64(&d->rd) : -1;
    p->records = rd_bytes(&d->rd, &p->records_bytes);
    ASSERT(d->rd.err == 0);
    return true;
}

/* ---- shared partition elements ---- */

/* Counts down the next partition of the current topic, whose element must
 * be `schema`. */
static bool dec_part_of(struct proto_dec *d, const struct pfield *schema)
{
    ASSERT(d->part_schema == schema);
    if (d->parts_left == 0) {
        return false;
    }
    d->parts_left--;
    return true;
}

bool proto_next_partition_index(struct proto_dec *d, int32_t *partition)
{
    if (!dec_part_of(d, s_part_index)) {
        return false;
    }
    *partition = (int32_t)rd_be32(&d->rd);
    ASSERT(d->rd.err == 0);
    return true;
}

bool proto_next_partition_result(struct proto_dec *d, struct proto_partition_result *r)
{
    if (!dec_part_of(d, s_part_result)) {
        return false;
    }
    r->partition = (int32_t)rd_be32(&d->rd);
    r->err = rd_err_code(&d->rd);
    ASSERT(d->rd.err == 0);
    return true;
}

bool proto_next_partition_offset(struct proto_dec *d, struct proto_partition_offset *p)
{
    if (!dec_part_of(d, s_part_offset)) {
        return false;
    }
    p->partition = (int32_t)rd_be32(&d->rd);
    p->offset = (int64_t)rd_be64(&d->rd);
    p->err = rd_err_code(&d->rd);
    ASSERT(d->rd.err == 0);
    return true;
}

/* ---- bodies that are a topic array ---- */

/* A response whose body is a topic array, opened. */
static void enc_topics_resp_begin(struct proto_enc *e, struct wr *w, uint16_t api_key,
                                  uint16_t version, uint32_t correlation_id)
{
    enc_resp_begin(e, w, api_key, version, correlation_id);
    enc_topics_open(e);
}

static int dec_topics_body(struct rd *body, uint16_t api_key, uint16_t version, bool response,
                           struct proto_dec *d)
{
    int rc = dec_open(body, api_key, version, response, d);
    if (rc == 0) {
        dec_topics_open(d);
    }
    return rc;
}

/* ---- DescribeGroup ---- */

void proto_describe_group_resp_begin(struct proto_enc *e, struct wr *w, uint16_t version,
                                     uint32_t correlation_id,
                                     const struct proto_describe_group_resp *r)
{
    ASSERT(r != NULL);
    enc_resp_begin(e, w, PROTO_API_DESCRIBE_GROUP, version, correlation_id);
    enc_err(e, r->err);
    wr_u8(w, (uint8_t)r->kind);
    wr_be32(w, (uint32_t)r->generation);
    e->members_at = w->pos;
    wr_be32(w, 0); /* members, patched by enc_describe_offsets() */
    e->section = SECTION_MEMBERS;
}

/* Closes the open member's assignment: its last topic, then its topics. */
static void enc_member_close(struct proto_enc *e)
{
    enc_parts_close(e);
    if (e->topics_at != NO_MARK) {
        enc_patch32(e, e->topics_at, (uint32_t)e->topic_count);
        e->topics_at = NO_MARK;
    }
}

void proto_describe_group_resp_member(struct proto_enc *e, struct proto_str member_id)
{
    enc_check(e, PROTO_API_DESCRIBE_GROUP, true);
    ASSERT(e->section == SECTION_MEMBERS);
    enc_member_close(e);
    if (e->member_count == PROTO_GROUP_MEMBERS_MAX) {
        enc_fail(e, -NG_EBADCOUNT);
    } else {
        e->member_count++;
    }
    enc_str(e, member_id, false);
    enc_topics_open(e);
}

static void enc_describe_offsets(struct proto_enc *e)
{
    ASSERT(e->section == SECTION_MEMBERS);
    enc_member_close(e);
    enc_patch32(e, e->members_at, (uint32_t)e->member_count);
    e->members_at = NO_MARK;
    e->section = SECTION_OFFSETS;
    e->part_schema = s_offset_desc;
    enc_topics_open(e);
}

void proto_describe_group_resp_offsets(struct proto_enc *e)
{
    enc_check(e, PROTO_API_DESCRIBE_GROUP, true);
    enc_describe_offsets(e);
}

void proto_describe_group_resp_offset(struct proto_enc *e, const struct proto_group_offset_desc *o)
{
    enc_check(e, PROTO_API_DESCRIBE_GROUP, true);
    enc_part_of(e, s_offset_desc);
    wr_be32(e->w, (uint32_t)o->partition);
    wr_be64(e->w, (uint64_t)o->committed);
    wr_be64(e->w, (uint64_t)o->end);
    wr_be64(e->w, (uint64_t)o->lag_records);
    wr_be64(e->w, (uint64_t)o->lag_ms);
}

int proto_describe_group_resp_decode(struct rd *body, uint16_t version,
                                     struct proto_describe_group_resp *out, struct proto_dec *d)
{
    ASSERT(out != NULL);
    int rc = dec_open(body, PROTO_API_DESCRIBE_GROUP, version, true, d);
    if (rc != 0) {
        return rc;
    }
    out->err = rd_err_code(&d->rd);
    out->kind = (int8_t)rd_u8(&d->rd);
    out->generation = (int32_t)rd_be32(&d->rd);
    d->topic_count = (int32_t)rd_be32(&d->rd);
    d->members_left = d->topic_count;
    ASSERT(d->rd.err == 0);
    return 0;
}

/* Skips what is left of the current member's assignment. */
static void dec_member_skip(struct proto_dec *d)
{
    uint32_t unused = 0;
    for (; d->parts_left > 0; d->parts_left--) {
        walk(&d->rd, d->part_schema, &unused);
    }
    for (; d->topics_left > 0; d->topics_left--) {
        walk(&d->rd, s_index_topic_any, &unused);
    }
}

bool proto_describe_group_resp_next_member(struct proto_dec *d, struct proto_group_member_desc *m)
{
    dec_check(d, PROTO_API_DESCRIBE_GROUP, true);
    ASSERT(d->section == SECTION_MEMBERS);
    dec_member_skip(d);
    if (d->members_left == 0) {
        return false;
    }
    d->members_left--;
    m->member_id = rd_str(&d->rd, false);
    m->topic_count = (int32_t)rd_be32(&d->rd);
    d->topics_left = m->topic_count;
    ASSERT(d->rd.err == 0);
    return true;
}

void proto_describe_group_resp_seek_offsets(struct proto_dec *d)
{
    dec_check(d, PROTO_API_DESCRIBE_GROUP, true);
    ASSERT(d->section == SECTION_MEMBERS);
    dec_member_skip(d);
    uint32_t unused = 0;
    for (; d->members_left > 0; d->members_left--) {
        walk(&d->rd, s_member_desc, &unused);
    }
    d->section = SECTION_OFFSETS;
    d->part_schema = s_offset_desc;
    dec_topics_open(d);
}

bool proto_describe_group_resp_next_offset(struct proto_dec *d, struct proto_group_offset_desc *o)
{
    dec_check(d, PROTO_API_DESCRIBE_GROUP, true);
    if (!dec_part_of(d, s_offset_desc)) {
        return false;
    }
    o->partition = (int32_t)rd_be32(&d->rd);
    o->committed = (int64_t)rd_be64(&d->rd);
    o->end = (int64_t)rd_be64(&d->rd);
    o->lag_records = (int64_t)rd_be64(&d->rd);
    o->lag_ms = (int64_t)rd_be64(&d->rd);
    ASSERT(d->rd.err == 0);
    return true;
}

/* ---- ResetOffsets ---- */

/* ResetOffsets: a known mode, and a value >= 0 where the mode reads it
 * (net/proto.def: "check reset_offsets_valid"). */
static bool reset_offsets_valid(const struct proto_reset_offsets_req *r)
{
    if (r->to < PROTO_RESET_EARLIEST || r->to > PROTO_RESET_TIMESTAMP) {
        return false;
    }
    bool valued = r->to == PROTO_RESET_OFFSET || r->to == PROTO_RESET_TIMESTAMP;
    return !valued || r->value >= 0;
}

/* ---- ShareFetch ---- */

void proto_share_fetch_resp_begin(struct proto_enc *e, struct wr *w, uint16_t version,
                                  uint32_t correlation_id, const struct proto_share_fetch_resp *r)
{
    ASSERT(r != NULL);
    enc_resp_begin(e, w, PROTO_API_SHARE_FETCH, version, correlation_id);
    enc_err(e, r->err);
    enc_str(e, r->member_id, false);
    enc_topics_open(e);
}

void proto_share_fetch_resp_partition_begin(struct proto_enc *e,
                                            const struct proto_share_fetch_resp_partition *p)
{
    enc_check(e, PROTO_API_SHARE_FETCH, true);
    ASSERT(p->acquired != NULL || p->acquired_count == 0);
    enc_part_add(e);
    wr_be32(e->w, (uint32_t)p->partition);
    enc_err(e, p->err);
    uint32_t n = p->acquired_count;
    if (n > PROTO_SHARE_RANGES_MAX) {
        enc_fail(e, -NG_EBADCOUNT);
        n = 0;
    }
    wr_be32(e->w, n);
    for (uint32_t i = 0; i < n; i++) {
        wr_be64(e->w, (uint64_t)p->acquired[i].first);
        wr_be64(e->w, (uint64_t)p->acquired[i].last);
        wr_be16(e->w, (uint16_t)p->acquired[i].delivery_count);
    }
    enc_records_open(e); /* patched by _partition_end() */
}

void proto_share_fetch_resp_partition_end(struct proto_enc *e)
{
    enc_check(e, PROTO_API_SHARE_FETCH, true);
    enc_records_close(e);
}

void proto_share_fetch_resp_partition(struct proto_enc *e,
                                      const struct proto_share_fetch_resp_partition *p)
{
    ASSERT(p->records != NULL || p->records_bytes == 0);
    proto_share_fetch_resp_partition_begin(e, p);
    wr_bytes(e->w, p->records, p->records_bytes);
    proto_share_fetch_resp_partition_end(e);
}

int proto_share_fetch_resp_decode(struct rd *body, uint16_t version,
                                  struct proto_share_fetch_resp *out, struct proto_dec *d)
{
    ASSERT(out != NULL);
    int rc = dec_open(body, PROTO_API_SHARE_FETCH, version, true, d);
    if (rc != 0) {
        return rc;
    }
    out->err = rd_err_code(&d->rd);
    out->member_id = rd_str(&d->rd, false);
    dec_topics_open(d);
    return 0;
}

bool proto_share_fetch_resp_next_partition(struct proto_dec *d,
                                           struct proto_share_fetch_resp_partition *p)
{
    if (!dec_part_next(d, PROTO_API_SHARE_FETCH, true)) {
        return false;
    }
    *p = (struct proto_share_fetch_resp_partition){0};
    p->partition = (int32_t)rd_be32(&d->rd);
    p->err = rd_err_code(&d->rd);
    p->acquired_count = rd_be32(&d->rd); /* <= PROTO_SHARE_RANGES_MAX: checked */
    p->acquired_wire = rd_take(&d->rd, (size_t)p->acquired_count * ACQUIRED_BYTES);
    p->records = rd_bytes(&d->rd, &p->records_bytes);
    ASSERT(d->rd.err == 0);
    return true;
}

void proto_share_fetch_acquired(const struct proto_share_fetch_resp_partition *p, uint32_t i,
                                struct proto_share_acquired *out)
{
    ASSERT(p->acquired_wire != NULL && i < p->acquired_count);
    const uint8_t *q = p->acquired_wire + (size_t)i * ACQUIRED_BYTES;
    out->first = (int64_t)get_be64(q);
    out->last = (int64_t)get_be64(q + 8);
    out->delivery_count = (int16_t)get_be16(q + 16);
}

/* ---- ShareAck ---- */

void proto_share_ack_req_begin(struct proto_enc *e, struct wr *w, uint16_t version,
                               uint32_t correlation_id, struct proto_str client_id,
                               const struct proto_share_ack_req *req)
{
    ASSERT(req != NULL);
    enc_req_begin(e, w, PROTO_API_SHARE_ACK, version, correlation_id, client_id);
    enc_str(e, req->group, false);
    enc_str(e, req->member_id, false);
    enc_topics_open(e);
}

void proto_share_ack_req_partition(struct proto_enc *e,
                                   const struct proto_share_ack_req_partition *p)
{
    enc_check(e, PROTO_API_SHARE_ACK, false);
    ASSERT(p->acks != NULL || p->ack_count == 0);
    enc_part_add(e);
    wr_be32(e->w, (uint32_t)p->partition);
    uint32_t n = p->ack_count;
    if (n > PROTO_SHARE_RANGES_MAX) {
        enc_fail(e, -NG_EBADCOUNT);
        n = 0;
    }
    wr_be32(e->w, n);
    for (uint32_t i = 0; i < n; i++) {
        wr_be64(e->w, (uint64_t)p->acks[i].first);
        wr_be64(e->w, (uint64_t)p->acks[i].last);
        wr_u8(e->w, (uint8_t)p->acks[i].type);
    }
}

bool proto_share_ack_req_next_partition(struct proto_dec *d,
                                        struct proto_share_ack_req_partition *p)
{
    if (!dec_part_next(d, PROTO_API_SHARE_ACK, false)) {
        return false;
    }
    *p = (struct proto_share_ack_req_partition){0};
    p->partition = (int32_t)rd_be32(&d->rd);
    p->ack_count = rd_be32(&d->rd); /* <= PROTO_SHARE_RANGES_MAX: checked */
    p->acks_wire = rd_take(&d->rd, (size_t)p->ack_count * ACK_BYTES);
    ASSERT(d->rd.err == 0);
    return true;
}

void proto_share_ack_at(const struct proto_share_ack_req_partition *p, uint32_t i,
                        struct proto_share_ack *out)
{
    ASSERT(p->acks_wire != NULL && i < p->ack_count);
    const uint8_t *q = p->acks_wire + (size_t)i * ACK_BYTES;
    out->first = (int64_t)get_be64(q);
    out->last = (int64_t)get_be64(q + 8);
    out->type = (int8_t)q[16];
}

/* True when every ack of the (checked) body has a known type. */
static bool share_ack_types_known(struct proto_dec d)
{
    struct proto_topic t;
    struct proto_share_ack_req_partition p;
    while (proto_next_topic(&d, &t)) {
        while (proto_share_ack_req_next_partition(&d, &p)) {
            for (uint32_t i = 0; i < p.ack_count; i++) {
                struct proto_share_ack a;
                proto_share_ack_at(&p, i, &a);
                if (a.type < PROTO_ACK_ACCEPT || a.type > PROTO_ACK_REJECT) {
                    return false;
                }
            }
        }
    }
    return true;
}

int proto_share_ack_req_decode(struct rd *body, uint16_t version, struct proto_share_ack_req *out,
                               struct proto_dec *d)
{
    ASSERT(out != NULL);
    int rc = dec_open(body, PROTO_API_SHARE_ACK, version, false, d);
    if (rc != 0) {
        return rc;
    }
    out->group = rd_str(&d->rd, false);
    out->member_id = rd_str(&d->rd, false);
    dec_topics_open(d);
    return share_ack_types_known(*d) ? 0 : -NG_EBADARG;
}

/* ---- ReplicaFetch ---- */

void proto_replica_fetch_resp_begin(struct proto_enc *e, struct wr *w, uint16_t version,
                                    uint32_t correlation_id)
{
    enc_resp_begin(e, w, PROTO_API_REPLICA_FETCH, version, correlation_id);
    enc_topics_open(e);
}

void proto_replica_fetch_resp_partition_begin(struct proto_enc *e,
                                              const struct proto_replica_fetch_resp_partition *p)
{
    enc_check(e, PROTO_API_REPLICA_FETCH, true);
    enc_part_add(e);
    wr_be32(e->w, (uint32_t)p->partition);
    enc_err(e, p->err);
    wr_be64(e->w, (uint64_t)p->high_watermark);
    wr_be64(e->w, (uint64_t)p->log_start);
    enc_records_open(e); /* patched by proto_fetch_resp_partition_end() */
}

void proto_replica_fetch_resp_partition(struct proto_enc *e,
                                        const struct proto_replica_fetch_resp_partition *p)
{
    ASSERT(p->records != NULL || p->records_bytes == 0);
    proto_replica_fetch_resp_partition_begin(e, p);
    wr_bytes(e->w, p->records, p->records_bytes);
    proto_fetch_resp_partition_end(e);
}

int proto_replica_fetch_resp_decode(struct rd *body, uint16_t version, struct proto_dec *d)
{
    int rc = dec_open(body, PROTO_API_REPLICA_FETCH, version, true, d);
    if (rc == 0) {
        dec_topics_open(d);
    }
    return rc;
}

bool proto_replica_fetch_resp_next_partition(struct proto_dec *d,
                                             struct proto_replica_fetch_resp_partition *p)
{
    if (!dec_part_next(d, PROTO_API_REPLICA_FETCH, true)) {
        return false;
    }
    p->partition = (int32_t)rd_be32(&d->rd);
    p->err = rd_err_code(&d->rd);
    p->high_watermark = (int64_t)rd_be64(&d->rd);
    p->log_start = (int64_t)rd_be64(&d->rd);
    p->records = rd_bytes(&d->rd, &p->records_bytes);
    ASSERT(d->rd.err == 0);
    return true;
}

/* ---- ACLs ---- */

struct acl_word {
    int8_t code;
    const char *name;
};

static const struct acl_word acl_resources[] = {
    {PROTO_ACL_RESOURCE_ANY, "any"},
    {PROTO_ACL_RESOURCE_TOPIC, "topic"},
    {PROTO_ACL_RESOURCE_GROUP, "group"},
    {PROTO_ACL_RESOURCE_CLUSTER, "cluster"},
    {0, NULL},
};
static const struct acl_word acl_patterns[] = {
    {PROTO_ACL_PATTERN_ANY, "any"},
    {PROTO_ACL_PATTERN_MATCH, "match"},
    {PROTO_ACL_PATTERN_LITERAL, "literal"},
    {PROTO_ACL_PATTERN_PREFIXED, "prefixed"},
    {0, NULL},
};
static const struct acl_word acl_ops[] = {
    {PROTO_ACL_OP_ANY, "any"},
    {PROTO_ACL_OP_ALL, "all"},
    {PROTO_ACL_OP_READ, "read"},
    {PROTO_ACL_OP_WRITE, "write"},
    {PROTO_ACL_OP_CREATE, "create"},
    {PROTO_ACL_OP_DELETE, "delete"},
    {PROTO_ACL_OP_ALTER, "alter"},
    {PROTO_ACL_OP_DESCRIBE, "describe"},
    {PROTO_ACL_OP_CLUSTER_ACTION, "cluster_action"},
    {PROTO_ACL_OP_DESCRIBE_CONFIGS, "describe_configs"},
    {PROTO_ACL_OP_ALTER_CONFIGS, "alter_configs"},
    {PROTO_ACL_OP_IDEMPOTENT_WRITE, "idempotent_write"},
    {0, NULL},
};
static const struct acl_word acl_permissions[] = {
    {PROTO_ACL_PERMISSION_ANY, "any"},
    {PROTO_ACL_PERMISSION_DENY, "deny"},
    {PROTO_ACL_PERMISSION_ALLOW, "allow"},
    {0, NULL},
};

static const struct acl_word *acl_words(enum proto_acl_vocab vocab)
{
    switch (vocab) {
    case PROTO_ACL_VOCAB_RESOURCE:
        return acl_resources;
    case PROTO_ACL_VOCAB_PATTERN:
        return acl_patterns;
    case PROTO_ACL_VOCAB_OP:
        return acl_ops;
    case PROTO_ACL_VOCAB_PERMISSION:
        return acl_permissions;
    }
    UNREACHABLE();
}

const char *proto_acl_name(enum proto_acl_vocab vocab, int8_t code)
{
    for (const struct acl_word *w = acl_words(vocab); w->name != NULL; w++) {
        if (w->code == code) {
            return w->name;
        }
    }
    return NULL;
}

static char acl_fold(char c)
{
    if (c >= 'A' && c <= 'Z') {
        return (char)(c - 'A' + 'a');
    }
    return c == '-' ? '_' : c;
}

int8_t proto_acl_code(enum proto_acl_vocab vocab, const char *name, size_t len)
{
    ASSERT(name != NULL || len == 0);
    for (const struct acl_word *w = acl_words(vocab); w->name != NULL; w++) {
        size_t i = 0;
        while (i < len && w->name[i] != '\0' && acl_fold(name[i]) == w->name[i]) {
            i++;
        }
        if (i == len && w->name[i] == '\0') {
            return w->code;
        }
    }
    return 0;
}

static void enc_acl_fields(struct proto_enc *e, const struct proto_acl *a, bool nullable)
{
    wr_u8(e->w, (uint8_t)a->resource_type);
    wr_u8(e->w, (uint8_t)a->pattern_type);
    enc_str(e, a->name, nullable);
    enc_str(e, a->principal, nullable);
    enc_str(e, a->host, nullable);
    wr_u8(e->w, (uint8_t)a->operation);
    wr_u8(e->w, (uint8_t)a->permission);
}

static void rd_acl_fields(struct rd *r, struct proto_acl *a, bool nullable)
{
    a->resource_type = (int8_t)rd_u8(r);
    a->pattern_type = (int8_t)rd_u8(r);
    a->name = rd_str(r, nullable);
    a->principal = rd_str(r, nullable);
    a->host = rd_str(r, nullable);
    a->operation = (int8_t)rd_u8(r);
    a->permission = (int8_t)rd_u8(r);
}

void proto_enc_acl(struct proto_enc *e, const struct proto_acl *a)
{
    ASSERT(a != NULL && e->shape == SHAPE_ACLS);
    ASSERT(e->topics_at != NO_MARK);
    if (e->topic_count == PROTO_ACLS_MAX) {
        enc_fail(e, -NG_EBADCOUNT);
        return;
    }
    e->topic_count++;
    enc_acl_fields(e, a, false);
}

bool proto_next_acl(struct proto_dec *d, struct proto_acl *a)
{
    ASSERT(d != NULL && a != NULL && d->shape == SHAPE_ACLS);
    if (d->topics_left == 0) {
        return false;
    }
    d->topics_left--;
    rd_acl_fields(&d->rd, a, false);
    ASSERT(d->rd.err == 0);
    return true;
}

void proto_create_acls_req_begin(struct proto_enc *e, struct wr *w, uint16_t version,
                                 uint32_t correlation_id, struct proto_str client_id)
{
    enc_req_begin(e, w, PROTO_API_CREATE_ACLS, version, correlation_id, client_id);
    enc_topics_open(e);
}

int proto_create_acls_req_decode(struct rd *body, uint16_t version, struct proto_dec *d)
{
    return dec_topics_body(body, PROTO_API_CREATE_ACLS, version, false, d);
}

static void acl_filter_api_check(uint16_t api_key)
{
    ASSERT(api_key == PROTO_API_DESCRIBE_ACLS || api_key == PROTO_API_DELETE_ACLS);
}

int proto_acl_filter_req_encode(struct wr *w, uint16_t api_key, uint16_t version,
                                uint32_t correlation_id, struct proto_str client_id,
                                const struct proto_acl *filter)
{
    acl_filter_api_check(api_key);
    ASSERT(filter != NULL);
    struct proto_enc e;
    enc_req_begin(&e, w, api_key, version, correlation_id, client_id);
    enc_acl_fields(&e, filter, true);
    return proto_enc_end(&e);
}

int proto_acl_filter_req_decode(struct rd *body, uint16_t api_key, uint16_t version,
                                struct proto_acl *filter_out)
{
    acl_filter_api_check(api_key);
    ASSERT(filter_out != NULL);
    struct proto_dec d;
    int rc = dec_open(body, api_key, version, false, &d);
    if (rc == 0) {
        rd_acl_fields(&d.rd, filter_out, true);
        ASSERT(d.rd.err == 0);
    }
    return rc;
}

void proto_acl_list_resp_begin(struct proto_enc *e, struct wr *w, uint16_t api_key,
                               uint16_t version, uint32_t correlation_id)
{
    acl_filter_api_check(api_key);
    enc_topics_resp_begin(e, w, api_key, version, correlation_id);
}

int proto_acl_list_resp_decode(struct rd *body, uint16_t api_key, uint16_t version,
                               struct proto_dec *d)
{
    acl_filter_api_check(api_key);
    return dec_topics_body(body, api_key, version, true, d);
}

/* ---- what a request names ---- */

/* Whether f is a request's topic array: topics whose entries start with
 * the topic's name. */
static bool is_topic_array(const struct pfield *f)
{
    return (f->type == PF_ARRAY || f->type == PF_NARRAY) && f->limit == LIM_TOPICS &&
           f->elem[0].type == PF_STR;
}

int proto_req_names(const struct rd *body, uint16_t api_key, uint16_t version, proto_name_fn *fn,
                    void *arg)
{
    ASSERT(body != NULL && fn != NULL);
    struct proto_dec d;
    struct rd r = *body;
    int rc = dec_open(&r, api_key, version, false, &d);
    if (rc != 0) {
        return rc;
    }
    uint32_t unused = 0;
    for (const struct pfield *f = msg_of(api_key, version, false)->body; f->type != PF_END; f++) {
        if (f == msg_of(api_key, version, false)->body && req_first_name[api_key] != 0) {
            ASSERT(f->type == PF_STR);
            rc = fn(arg, (enum proto_name_kind)req_first_name[api_key], rd_str(&d.rd, false));
        } else if (is_topic_array(f)) {
            int32_t n = (int32_t)rd_be32(&d.rd);
            for (int32_t i = 0; i < n && rc == 0; i++) {
                rc = fn(arg, PROTO_NAME_TOPIC, rd_str(&d.rd, false));
                walk(&d.rd, f->elem + 1, &unused);
            }
        } else {
            walk_field(&d.rd, f, &unused);
        }
        ASSERT(d.rd.err == 0); /* checked by dec_open() */
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* ---- SaslAuthenticate ---- */

/* Reads a checked byte array, refused past PROTO_SASL_BYTES_MAX. */
static bool dec_sasl_bytes(struct rd *r, struct proto_sasl_bytes *out)
{
    out->bytes = rd_bytes(r, &out->len);
    ASSERT(r->err == 0);
    return out->len <= PROTO_SASL_BYTES_MAX;
}

int proto_sasl_authenticate_req_encode(struct wr *w, uint16_t version, uint32_t correlation_id,
                                       struct proto_str client_id, const struct proto_sasl_bytes *r)
{
    ASSERT(r != NULL);
    struct proto_enc e;
    enc_req_begin(&e, w, PROTO_API_SASL_AUTHENTICATE, version, correlation_id, client_id);
    enc_bytes(&e, r->bytes, r->len);
    return proto_enc_end(&e);
}

int proto_sasl_authenticate_req_decode(struct rd *body, uint16_t version,
                                       struct proto_sasl_bytes *out)
{
    ASSERT(out != NULL);
    struct proto_dec d;
    int rc = dec_open(body, PROTO_API_SASL_AUTHENTICATE, version, false, &d);
    if (rc != 0) {
        return rc;
    }
    out->err = 0;
    return dec_sasl_bytes(&d.rd, out) ? 0 : -NG_EBADLEN;
}

int proto_sasl_authenticate_resp_encode(struct wr *w, uint16_t version, uint32_t correlation_id,
                                        const struct proto_sasl_bytes *r)
{
    ASSERT(r != NULL);
    struct proto_enc e;
    enc_resp_begin(&e, w, PROTO_API_SASL_AUTHENTICATE, version, correlation_id);
    enc_err(&e, r->err);
    enc_bytes(&e, r->bytes, r->len);
    return proto_enc_end(&e);
}

int proto_sasl_authenticate_resp_decode(struct rd *body, uint16_t version,
                                        struct proto_sasl_bytes *out)
{
    ASSERT(out != NULL);
    struct proto_dec d;
    int rc = dec_open(body, PROTO_API_SASL_AUTHENTICATE, version, true, &d);
    if (rc != 0) {
        return rc;
    }
    out->err = rd_err_code(&d.rd);
    return dec_sasl_bytes(&d.rd, out) ? 0 : -NG_EBADLEN;
}

/* ---- AlterUser ---- */

int proto_alter_user_req_encode(struct wr *w, uint16_t version, uint32_t correlation_id,
                                struct proto_str client_id, const struct proto_alter_user_req *r)
{
    ASSERT(r != NULL);
    struct proto_enc e;
    enc_req_begin(&e, w, PROTO_API_ALTER_USER, version, correlation_id, client_id);
    wr_u8(w, (uint8_t)r->op);
    enc_str(&e, r->user, false);
    wr_u8(w, (uint8_t)r->mechanism);
    wr_be32(w, (uint32_t)r->iterations);
    enc_bytes(&e, r->salt.bytes, r->salt.len);
    enc_bytes(&e, r->stored_key.bytes, r->stored_key.len);
    enc_bytes(&e, r->server_key.bytes, r->server_key.len);
    return proto_enc_end(&e);
}

int proto_alter_user_req_decode(struct rd *body, uint16_t version, struct proto_alter_user_req *out)
{
    ASSERT(out != NULL);
    struct proto_dec d;
    int rc = dec_open(body, PROTO_API_ALTER_USER, version, false, &d);
    if (rc != 0) {
        return rc;
    }
    out->op = (int8_t)rd_u8(&d.rd);
    out->user = rd_str(&d.rd, false);
    out->mechanism = (int8_t)rd_u8(&d.rd);
    out->iterations = (int32_t)rd_be32(&d.rd);
    bool ok = dec_sasl_bytes(&d.rd, &out->salt);
    ok = dec_sasl_bytes(&d.rd, &out->stored_key) && ok;
    ok = dec_sasl_bytes(&d.rd, &out->server_key) && ok;
    if (!ok) {
        return -NG_EBADLEN;
    }
    bool op_ok = out->op == PROTO_USER_UPSERT || out->op == PROTO_USER_DELETE;
    bool mech_ok = out->mechanism == 0 || out->mechanism == 1 ||
                   (out->op == PROTO_USER_DELETE && out->mechanism == PROTO_MECH_ALL);
    return op_ok && mech_ok ? 0 : -NG_EBADARG;
}

/* The messages net/proto.def marks "gen" (net/proto_gen.py). */
#include "net/proto_msgs.inc"
