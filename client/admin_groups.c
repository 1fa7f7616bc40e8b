/*
 * client/admin_groups.c — the admin client's group calls: ListGroups,
 * DescribeGroup, DeleteGroup, ResetOffsets (after an OffsetFetch of every
 * committed topic when no topic is named) and DlqRedrive, each one request
 * bounded by the client's timeout (admin_int.h).
 *
 * As with nagare_topics_describe(), an answer is copied into one
 * allocation (structs first, then the strings they point to), counted in a
 * first walk of the decoded body and filled in a second, so each *_free()
 * is a single free().
 */
#include <errno.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "client/admin_int.h"
#include "client/conn.h"
#include "client/nagare.h"

/* A request naming a group (or a topic) and little else. */
#define NAME_REQUEST_BYTES (64 + PROTO_STRING_BYTES_MAX)

static struct proto_str str_of(const char *s) { return proto_str_make(s); }

static bool group_ok(const char *g)
{
    size_t n = g != NULL ? strnlen(g, PROTO_GROUP_ID_BYTES_MAX + 1) : 0;
    for (size_t i = 0; i < n; i++) {
        if (g[i] < 0x20 || g[i] > 0x7e) {
            return false;
        }
    }
    return n > 0 && n <= PROTO_GROUP_ID_BYTES_MAX;
}

static bool topic_ok(const char *t)
{
    return t != NULL && proto_topic_name_valid(t, strnlen(t, PROTO_TOPIC_NAME_BYTES_MAX + 1));
}

/* The broker does not list the api: it does not serve it. */
static int api_err(int rc) { return rc == -NG_EBADVERSION ? -NG_EUNKNOWN_API : rc; }

/* Copies a wire string after the structs of a block. */
static const char *str_put(char **names, struct proto_str s)
{
    char *at = *names;
    if (s.len > 0) {
        memcpy(at, s.ptr, (size_t)s.len);
    }
    at[s.len > 0 ? s.len : 0] = '\0';
    *names += (s.len > 0 ? s.len : 0) + 1;
    return at;
}

static size_t str_bytes(struct proto_str s) { return (size_t)(s.len > 0 ? s.len : 0) + 1; }

/* ---- ListGroups ---- */

/* The groups listed so far: one block, as the file's top says. */
struct list_groups {
    struct nagare_group_listing *groups;
    size_t count;
    int kind; /* what an answer adds: its groups of this kind; -1: all */
};

static int list_groups_encode(void *arg, struct wr *w, uint32_t corr, uint16_t version)
{
    (void)arg;
    return proto_list_groups_req_encode(w, version, corr, str_of(CONN_CLIENT_ID));
}

static bool list_groups_takes(const struct list_groups *lg, const struct proto_group_listing *g)
{
    return lg->kind < 0 || g->kind == lg->kind;
}

/* Adds an answer's groups (of lg->kind) to those listed so far. */
static int list_groups_decode(void *arg, struct rd *body, uint16_t version)
{
    struct list_groups *lg = arg;
    struct proto_dec d;
    if (proto_list_groups_resp_decode(body, version, &d) != 0) {
        return -NG_EPROTO;
    }
    size_t count = lg->count;
    size_t names = 0;
    for (size_t i = 0; i < lg->count; i++) {
        names += strlen(lg->groups[i].group) + 1;
    }
    struct proto_dec walk = d;
    struct proto_group_listing g;
    while (proto_list_groups_resp_next(&walk, &g)) {
        if (list_groups_takes(lg, &g)) {
            count++;
            names += str_bytes(g.group);
        }
    }
    uint8_t *block = malloc(count * sizeof(*lg->groups) + names + 1);
    if (block == NULL) {
        return -ENOMEM;
    }
    struct nagare_group_listing *groups = (struct nagare_group_listing *)block;
    char *at = (char *)(groups + count);
    size_t n = 0;
    for (; n < lg->count; n++) {
        groups[n] = lg->groups[n];
        groups[n].group = str_put(&at, str_of(lg->groups[n].group));
    }
    while (proto_list_groups_resp_next(&d, &g)) {
        if (list_groups_takes(lg, &g)) {
            groups[n++] = (struct nagare_group_listing){
                .group = str_put(&at, g.group), .kind = g.kind, .member_count = g.member_count};
        }
    }
    ASSERT(n == count);
    free(lg->groups);
    lg->groups = groups;
    lg->count = count;
    return 0;
}

static bool lists_share_groups(const struct list_groups *lg)
{
    for (size_t i = 0; i < lg->count; i++) {
        if (lg->groups[i].kind == PROTO_GROUP_KIND_SHARE) {
            return true;
        }
    }
    return false;
}

int nagare_groups_list(nagare_admin *a, const struct nagare_group_listing **out, size_t *count_out)
{
    ASSERT(a != NULL && out != NULL && count_out != NULL);
    /* In a cluster each coordinator lists its own kind (broker/group_serve.c,
     * handle_list_groups): the consumer groups' lists the share groups too
     * only when it coordinates them as well; else they come from theirs. */
    struct list_groups lg = {.kind = -1};
    int rc = admin_group_call(a, PROTO_API_LIST_GROUPS, NAME_REQUEST_BYTES, list_groups_encode,
                              list_groups_decode, &lg);
    if (rc == 0 && !lists_share_groups(&lg) && admin_coordinators_apart(a)) {
        lg.kind = PROTO_GROUP_KIND_SHARE;
        rc = admin_coordinator_call(a, ADMIN_COORD_SHARE, PROTO_API_LIST_GROUPS, NAME_REQUEST_BYTES,
                                    list_groups_encode, list_groups_decode, &lg);
    }
    if (rc != 0) {
        free(lg.groups);
        return api_err(rc);
    }
    *out = lg.groups;
    *count_out = lg.count;
    return 0;
}

void nagare_groups_free(nagare_admin *a, const struct nagare_group_listing *groups)
{
    (void)a;
    free((void *)groups);
}

/* ---- DescribeGroup ---- */

struct describe_group {
    const char *group;
    struct nagare_group_info *info;
};

/* What the answer needs in one block. */
struct dg_counts {
    size_t members;
    size_t assigned; /* partitions over every member's assignment */
    size_t offsets;
    size_t names; /* string bytes, NULs included */
};

static int describe_group_encode(void *arg, struct wr *w, uint32_t corr, uint16_t version)
{
    const struct describe_group *dg = arg;
    return proto_describe_group_req_encode(w, version, corr, str_of(CONN_CLIENT_ID),
                                           str_of(dg->group));
}

static void dg_count(struct proto_dec d, struct dg_counts *n)
{
    struct proto_group_member_desc m;
    while (proto_describe_group_resp_next_member(&d, &m)) {
        n->members++;
        n->names += str_bytes(m.member_id);
        struct proto_topic t;
        while (proto_next_topic(&d, &t)) {
            n->names += str_bytes(t.name);
            int32_t p;
            while (proto_next_partition_index(&d, &p)) {
                n->assigned++;
            }
        }
    }
    proto_describe_group_resp_seek_offsets(&d);
    struct proto_topic t;
    while (proto_next_topic(&d, &t)) {
        n->names += str_bytes(t.name);
        struct proto_group_offset_desc o;
        while (proto_describe_group_resp_next_offset(&d, &o)) {
            n->offsets++;
        }
    }
}

/* Second walk: fills the block laid out from the counts. */
static void dg_fill(struct proto_dec d, struct nagare_group_info *info, char *names)
{
    struct nagare_group_member *members = (struct nagare_group_member *)info->members;
    struct nagare_group_offset *offsets = (struct nagare_group_offset *)info->offsets;
    struct nagare_topic_partition *tp =
        (struct nagare_topic_partition *)(offsets + info->offset_count);
    struct proto_group_member_desc m;
    for (size_t i = 0; proto_describe_group_resp_next_member(&d, &m); i++) {
        members[i] = (struct nagare_group_member){.member_id = str_put(&names, m.member_id),
                                                  .assignment = tp};
        struct proto_topic t;
        while (proto_next_topic(&d, &t)) {
            const char *topic = str_put(&names, t.name);
            int32_t p;
            while (proto_next_partition_index(&d, &p)) {
                *tp++ =
                    (struct nagare_topic_partition){.topic = topic, .partition = p, .offset = -1};
                members[i].assignment_count++;
            }
        }
    }
    proto_describe_group_resp_seek_offsets(&d);
    struct proto_topic t;
    while (proto_next_topic(&d, &t)) {
        const char *topic = str_put(&names, t.name);
        struct proto_group_offset_desc o;
        while (proto_describe_group_resp_next_offset(&d, &o)) {
            *offsets++ = (struct nagare_group_offset){.topic = topic,
                                                      .partition = o.partition,
                                                      .committed = o.committed,
                                                      .end = o.end,
                                                      .lag_records = o.lag_records,
                                                      .lag_ms = o.lag_ms};
        }
    }
}

static int describe_group_decode(void *arg, struct rd *body, uint16_t version)
{
    struct describe_group *dg = arg;
    struct proto_describe_group_resp r;
    struct proto_dec d;
    if (proto_describe_group_resp_decode(body, version, &r, &d) != 0) {
        return -NG_EPROTO;
    }
    if (r.err != 0) {
        return r.err;
    }
    struct dg_counts n = {.names = strlen(dg->group) + 1};
    dg_count(d, &n);
    static_assert(alignof(struct nagare_group_member) <= alignof(struct nagare_group_info) &&
                      alignof(struct nagare_group_offset) <= alignof(struct nagare_group_member) &&
                      alignof(struct nagare_topic_partition) <= alignof(struct nagare_group_offset),
                  "one block holds the arrays back to back");
    size_t bytes = sizeof(struct nagare_group_info) +
                   n.members * sizeof(struct nagare_group_member) +
                   n.offsets * sizeof(struct nagare_group_offset) +
                   n.assigned * sizeof(struct nagare_topic_partition) + n.names;
    uint8_t *block = calloc(1, bytes);
    if (block == NULL) {
        return -ENOMEM;
    }
    struct nagare_group_info *info = (struct nagare_group_info *)block;
    struct nagare_group_member *members = (struct nagare_group_member *)(info + 1);
    struct nagare_group_offset *offsets = (struct nagare_group_offset *)(members + n.members);
    char *names = (char *)block + bytes - n.names;
    *info = (struct nagare_group_info){.kind = r.kind,
                                       .generation = r.generation,
                                       .member_count = n.members,
                                       .members = members,
                                       .offset_count = n.offsets,
                                       .offsets = offsets};
    info->group = str_put(&names, str_of(dg->group));
    dg_fill(d, info, names);
    dg->info = info;
    return 0;
}

int nagare_group_describe(nagare_admin *a, const char *group, const struct nagare_group_info **out)
{
    ASSERT(a != NULL && out != NULL);
    if (!group_ok(group)) {
        return -NG_EBADNAME;
    }
    struct describe_group dg = {.group = group};
    int rc = admin_group_call(a, PROTO_API_DESCRIBE_GROUP, NAME_REQUEST_BYTES,
                              describe_group_encode, describe_group_decode, &dg);
    if (rc != 0) {
        return api_err(rc);
    }
    *out = dg.info;
    return 0;
}

void nagare_group_info_free(nagare_admin *a, const struct nagare_group_info *info)
{
    (void)a;
    free((void *)info);
}

/* ---- DeleteGroup ---- */

static int delete_group_encode(void *arg, struct wr *w, uint32_t corr, uint16_t version)
{
    return proto_delete_group_req_encode(w, version, corr, str_of(CONN_CLIENT_ID), str_of(arg));
}

static int delete_group_decode(void *arg, struct rd *body, uint16_t version)
{
    (void)arg;
    int err = 0;
    if (proto_delete_group_resp_decode(body, version, &err) != 0) {
        return -NG_EPROTO;
    }
    return err;
}

int nagare_group_delete(nagare_admin *a, const char *group)
{
    ASSERT(a != NULL);
    if (!group_ok(group)) {
        return -NG_EBADNAME;
    }
    int rc = admin_group_call(a, PROTO_API_DELETE_GROUP, NAME_REQUEST_BYTES, delete_group_encode,
                              delete_group_decode, (void *)group);
    return api_err(rc);
}

/* ---- ResetOffsets ---- */

/* Topic names: the one given, or every topic the group committed in. */
struct topic_names {
    const char *group;
    char *names; /* count NUL-terminated names back to back */
    size_t count;
    size_t bytes;
};

static int committed_topics_encode(void *arg, struct wr *w, uint32_t corr, uint16_t version)
{
    const struct topic_names *tn = arg;
    struct proto_enc e;
    proto_offset_fetch_req_begin(&e, w, version, corr, str_of(CONN_CLIENT_ID), str_of(tn->group),
                                 true);
    return proto_enc_end(&e);
}

static int committed_topics_decode(void *arg, struct rd *body, uint16_t version)
{
    struct topic_names *tn = arg;
    struct proto_dec d;
    if (proto_offset_fetch_resp_decode(body, version, &d) != 0) {
        return -NG_EPROTO;
    }
    struct proto_dec walk = d;
    struct proto_topic t;
    size_t bytes = 0;
    while (proto_next_topic(&walk, &t)) {
        bytes += str_bytes(t.name);
    }
    tn->names = malloc(bytes + 1);
    if (tn->names == NULL) {
        return -ENOMEM;
    }
    char *at = tn->names;
    while (proto_next_topic(&d, &t)) {
        (void)str_put(&at, t.name);
        tn->count++;
    }
    tn->bytes = bytes;
    return 0;
}

struct reset {
    const char *group;
    const struct topic_names *topics;
    int8_t to;
    int64_t value;
    struct nagare_topic_partition *results;
    size_t count;
};

static int reset_encode(void *arg, struct wr *w, uint32_t corr, uint16_t version)
{
    const struct reset *rs = arg;
    struct proto_enc e;
    struct proto_reset_offsets_req req = {
        .group = str_of(rs->group), .to = rs->to, .value = rs->value};
    proto_reset_offsets_req_begin(&e, w, version, corr, str_of(CONN_CLIENT_ID), &req);
    const char *name = rs->topics->names;
    for (size_t i = 0; i < rs->topics->count; i++) {
        proto_enc_topic(&e, str_of(name)); /* no partitions: every one */
        name += strlen(name) + 1;
    }
    return proto_enc_end(&e);
}

static int reset_decode(void *arg, struct rd *body, uint16_t version)
{
    struct reset *rs = arg;
    struct proto_dec d;
    int err = 0;
    if (proto_reset_offsets_resp_decode(body, version, &err, &d) != 0) {
        return -NG_EPROTO;
    }
    if (err != 0) {
        return err;
    }
    size_t count = 0;
    size_t names = 0;
    struct proto_dec walk = d;
    struct proto_topic t;
    struct proto_partition_offset po;
    while (proto_next_topic(&walk, &t)) {
        names += str_bytes(t.name);
        while (proto_next_partition_offset(&walk, &po)) {
            count++;
        }
    }
    uint8_t *block = malloc(count * sizeof(*rs->results) + names + 1);
    if (block == NULL) {
        return -ENOMEM;
    }
    rs->results = (struct nagare_topic_partition *)block;
    char *at = (char *)(rs->results + count);
    for (size_t i = 0; proto_next_topic(&d, &t);) {
        const char *topic = str_put(&at, t.name);
        while (proto_next_partition_offset(&d, &po)) {
            rs->results[i++] = (struct nagare_topic_partition){
                .topic = topic, .partition = po.partition, .offset = po.offset, .err = po.err};
        }
    }
    rs->count = count;
    return 0;
}

/* The topics to reset: topic, or those the group has committed offsets in. */
static int reset_topics(nagare_admin *a, const char *group, const char *topic,
                        struct topic_names *tn)
{
    *tn = (struct topic_names){.group = group};
    if (topic != NULL) {
        tn->bytes = strlen(topic) + 1;
        tn->names = malloc(tn->bytes);
        if (tn->names == NULL) {
            return -ENOMEM;
        }
        memcpy(tn->names, topic, tn->bytes);
        tn->count = 1;
        return 0;
    }
    int rc = admin_group_call(a, PROTO_API_OFFSET_FETCH, NAME_REQUEST_BYTES,
                              committed_topics_encode, committed_topics_decode, tn);
    return rc != 0 ? api_err(rc) : tn->count == 0 ? -NG_ENOTFOUND : 0;
}

/* A named topic the broker does not have comes back as partition -1. */
static int reset_check_named(const struct reset *rs, const char *topic)
{
    if (topic != NULL && rs->count == 1 && rs->results[0].partition < 0) {
        return rs->results[0].err != 0 ? rs->results[0].err : -NG_EUNKNOWN_TOPIC;
    }
    return 0;
}

int nagare_group_reset_offsets(nagare_admin *a, const char *group, const char *topic,
                               enum nagare_reset_to to, int64_t value,
                               const struct nagare_topic_partition **out, size_t *count_out)
{
    ASSERT(a != NULL);
    if (!group_ok(group) || (topic != NULL && !topic_ok(topic))) {
        return -NG_EBADNAME;
    }
    bool valued = to == NAGARE_RESET_TO_OFFSET || to == NAGARE_RESET_TO_TIMESTAMP;
    if ((int)to < NAGARE_RESET_TO_EARLIEST || to > NAGARE_RESET_TO_TIMESTAMP ||
        (valued && value < 0)) {
        return -NG_EBADARG;
    }
    struct topic_names tn;
    int rc = reset_topics(a, group, topic, &tn);
    struct reset rs = {
        .group = group, .topics = &tn, .to = (int8_t)to, .value = valued ? value : 0};
    if (rc == 0) {
        /* a group, the target, and up to PROTO_TOPICS_MAX topics without
         * partitions (what OffsetFetch of the group may list) */
        size_t need = NAME_REQUEST_BYTES + tn.count * PROTO_TOPIC_BYTES_MAX;
        rc = api_err(
            admin_group_call(a, PROTO_API_RESET_OFFSETS, need, reset_encode, reset_decode, &rs));
    }
    free(tn.names);
    rc = rc == 0 ? reset_check_named(&rs, topic) : rc;
    if (rc != 0 || out == NULL) {
        free(rs.results);
        return rc;
    }
    *out = rs.results;
    if (count_out != NULL) {
        *count_out = rs.count;
    }
    return 0;
}

void nagare_reset_free(nagare_admin *a, const struct nagare_topic_partition *results)
{
    (void)a;
    free((void *)results);
}

/* ---- DlqRedrive ---- */

/* Dead letters one request of nagare_dlq_redrive() reads: its answer comes
 * after about this many records are republished and fdatasync'd, well
 * within a client's timeout. */
#define REDRIVE_STEP_RECORDS 10000

struct redrive {
    const char *topic;
    int32_t records_max;
    struct nagare_redrive_step out;
};

static int redrive_encode(void *arg, struct wr *w, uint32_t corr, uint16_t version)
{
    const struct redrive *rq = arg;
    struct proto_dlq_redrive_req req = {.topic = str_of(rq->topic), .records_max = rq->records_max};
    return proto_dlq_redrive_req_encode(w, version, corr, str_of(CONN_CLIENT_ID), &req);
}

static int redrive_decode(void *arg, struct rd *body, uint16_t version)
{
    struct redrive *rq = arg;
    struct proto_dlq_redrive_resp r;
    if (proto_dlq_redrive_resp_decode(body, version, &r) != 0 ||
        (r.err == 0 &&
         (r.records < 0 || (version >= 1 && (r.read < r.records || r.remaining < 0))))) {
        return -NG_EPROTO;
    }
    if (version < 1) { /* one request did it all */
        r.read = r.records;
        r.remaining = 0;
    }
    rq->out = (struct nagare_redrive_step){
        .records = r.records, .read = r.read, .remaining = r.remaining};
    return r.err;
}

int nagare_dlq_redrive_step(nagare_admin *a, const char *dlq_topic, int32_t records_max,
                            struct nagare_redrive_step *out)
{
    ASSERT(a != NULL && out != NULL);
    if (!topic_ok(dlq_topic)) {
        return -NG_EBADNAME;
    }
    if (records_max <= 0) {
        return -NG_EBADARG;
    }
    struct redrive rq = {.topic = dlq_topic, .records_max = records_max};
    int rc = admin_group_call(a, PROTO_API_DLQ_REDRIVE, NAME_REQUEST_BYTES, redrive_encode,
                              redrive_decode, &rq);
    if (rc == 0) {
        *out = rq.out;
    }
    return api_err(rc);
}

int nagare_dlq_redrive(nagare_admin *a, const char *dlq_topic, int64_t *records_out)
{
    ASSERT(a != NULL && records_out != NULL);
    int64_t records = 0;
    int64_t read = 0;
    int64_t total = -1; /* what there was to read after the first step */
    struct nagare_redrive_step st;
    do {
        int rc = nagare_dlq_redrive_step(a, dlq_topic, REDRIVE_STEP_RECORDS, &st);
        if (rc != 0) {
            return rc;
        }
        records += st.records;
        read += st.read;
        total = total < 0 ? st.read + st.remaining : total;
        /* Stops at what there was when it began, as one request does:
         * records dead-lettered meanwhile (some perhaps redriven ones
         * failing again) wait for the next redrive. */
    } while (st.remaining > 0 && read < total && st.read > 0);
    *records_out = records;
    return 0;
}
