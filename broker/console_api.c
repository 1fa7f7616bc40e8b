/*
 * broker/console_api.c — the web console's JSON (broker/console_api.h), on
 * jansson.
 */
#include "broker/console_api.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/err.h"
#include "broker/kafka_serve.h"
#include "broker/kgroup.h"
#include "broker/metrics.h"
#include "broker/server.h"
#include "broker/share_serve.h"
#include "storage/batch.h"

/* ---- the query ---- */

/* A whole decimal number in [min, max] into *out. */
static bool parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    if (s == NULL || *s == '\0') {
        return false;
    }
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max) {
        return false;
    }
    *out = v;
    return true;
}

int console_query_parse(struct console_query *q, const char *topic, const char *partition,
                        const char *offset, const char *time, const char *limit, char *why,
                        size_t cap)
{
    *q = (struct console_query){.offset = -1, .time_ms = -1, .limit = 50};
    size_t n = topic != NULL ? strlen(topic) : 0;
    if (n == 0 || n > PROTO_TOPIC_NAME_BYTES_MAX) {
        snprintf(why, cap, "topic: give a topic name");
        return -NG_EBADARG;
    }
    memcpy(q->topic, topic, n + 1);
    int64_t v = 0;
    if (partition != NULL) {
        if (!parse_i64(partition, 0, PROTO_PARTITIONS_MAX - 1, &v)) {
            snprintf(why, cap, "partition: a number from 0");
            return -NG_EBADARG;
        }
        q->partition = (int32_t)v;
    }
    if (offset != NULL && time != NULL) {
        snprintf(why, cap, "give offset or time, not both");
        return -NG_EBADARG;
    }
    if (offset != NULL && !parse_i64(offset, 0, INT64_MAX, &q->offset)) {
        snprintf(why, cap, "offset: a number from 0");
        return -NG_EBADARG;
    }
    if (time != NULL && !parse_i64(time, 0, INT64_MAX, &q->time_ms)) {
        snprintf(why, cap, "time: milliseconds since 1970");
        return -NG_EBADARG;
    }
    if (limit != NULL) {
        if (!parse_i64(limit, 1, CONSOLE_RECORDS_MAX, &v)) {
            snprintf(why, cap, "limit: 1 to %u", CONSOLE_RECORDS_MAX);
            return -NG_EBADARG;
        }
        q->limit = (uint32_t)v;
    }
    return 0;
}

/* ---- helpers ---- */

/* jansson's setters return -1 only when out of memory; every object here
 * is checked once, at the end (json_dumps of an incomplete tree would
 * still be JSON, so a failed set marks the answer failed instead). */
struct out {
    bool oom;
};

static void set(struct out *o, json_t *obj, const char *key, json_t *v)
{
    if (v == NULL || json_object_set_new(obj, key, v) != 0) {
        o->oom = true;
    }
}

static void push(struct out *o, json_t *arr, json_t *v)
{
    if (v == NULL || json_array_append_new(arr, v) != 0) {
        o->oom = true;
    }
}

static json_t *int_array(struct out *o, const int32_t *v, uint32_t n)
{
    json_t *a = json_array();
    for (uint32_t i = 0; a != NULL && i < n; i++) {
        push(o, a, json_integer(v[i]));
    }
    return a;
}

/* bytes as a JSON string when they are UTF-8, else as lowercase hex; cut
 * at CONSOLE_FIELD_BYTES (*cut says so). */
static json_t *bytes_value(const uint8_t *p, int32_t len, const char **encoding, bool *cut)
{
    size_t n = (size_t)len;
    *cut = n > CONSOLE_FIELD_BYTES;
    n = *cut ? CONSOLE_FIELD_BYTES : n;
    json_t *s = json_stringn((const char *)p, n); /* NULL: not UTF-8 */
    if (s == NULL && *cut) {
        /* the cut may split a character: try without its last bytes */
        for (size_t back = 1; s == NULL && back < 4 && back < n; back++) {
            s = json_stringn((const char *)p, n - back);
        }
    }
    if (s != NULL) {
        *encoding = "text";
        return s;
    }
    static const char hex[] = "0123456789abcdef";
    char *h = malloc(2 * n + 1);
    if (h == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        h[2 * i] = hex[p[i] >> 4];
        h[2 * i + 1] = hex[p[i] & 15];
    }
    s = json_stringn(h, 2 * n);
    free(h);
    *encoding = "hex";
    return s;
}

static int answer(struct out *o, json_t *root, int status, char **out, size_t *len)
{
    char *text = !o->oom && root != NULL ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    if (text == NULL) {
        return -ENOMEM;
    }
    *out = text;
    *len = strlen(text);
    return status;
}

static int error(const char *why, int status, char **out, size_t *len)
{
    struct out o = {0};
    json_t *root = json_object();
    if (root != NULL) {
        set(&o, root, "error", json_string(why));
    }
    return answer(&o, root, status, out, len);
}

/* ---- /api/cluster ---- */

static int api_cluster(struct server *s, char **out, size_t *len)
{
    struct out o = {0};
    json_t *root = json_object();
    json_t *brokers = json_array();
    if (root == NULL || brokers == NULL) {
        json_decref(root);
        json_decref(brokers);
        return -ENOMEM;
    }
    bool clustered = broker_config_clustered(&s->cfg);
    set(&o, root, "broker_id", json_integer(s->broker_id));
    set(&o, root, "version", json_string(broker_config_version()));
    set(&o, root, "clustered", json_boolean(clustered));
    set(&o, root, "controller", json_integer(s->view != NULL ? s->view->controller : -1));
    if (s->view != NULL) {
        for (uint32_t i = 0; i < s->view->broker_count; i++) {
            const struct cluster_broker *b = &s->view->brokers[i];
            json_t *jb = json_object();
            push(&o, brokers, jb);
            if (jb != NULL) {
                set(&o, jb, "id", json_integer(b->id));
                set(&o, jb, "host", json_string(b->host));
                set(&o, jb, "port", json_integer(b->port));
                set(&o, jb, "kafka_port", json_integer(b->kafka_port));
            }
        }
    } else {
        json_t *jb = json_object();
        push(&o, brokers, jb);
        if (jb != NULL) {
            set(&o, jb, "id", json_integer(s->broker_id));
            set(&o, jb, "host", json_string(s->cfg.listen_host));
            set(&o, jb, "port", json_integer(s->port));
            set(&o, jb, "kafka_port", json_integer(s->kafka_port));
        }
    }
    set(&o, root, "brokers", brokers);
    return answer(&o, root, 200, out, len);
}

/* ---- /api/topics ---- */

static json_t *partition_json(struct out *o, const struct bpart *bp)
{
    json_t *p = json_object();
    if (p == NULL) {
        o->oom = true;
        return NULL;
    }
    const struct replica *r = &bp->rep;
    bool single = r->role == REPLICA_SINGLE;
    int32_t self = bp->server->broker_id;
    set(o, p, "partition", json_integer(bp->index));
    set(o, p, "leader", json_integer(single ? self : r->leader));
    int32_t ids[CLUSTER_REPLICAS_MAX];
    for (uint8_t i = 0; i < r->replica_count; i++) {
        ids[i] = r->peers[i].id;
    }
    set(o, p, "replicas", single ? int_array(o, &self, 1) : int_array(o, ids, r->replica_count));
    set(o, p, "isr", single ? int_array(o, &self, 1) : int_array(o, r->isr, r->isr_count));
    set(o, p, "log_start", json_integer(part_offset_earliest(&bp->log)));
    set(o, p, "log_end", json_integer(part_offset_next(&bp->log)));
    set(o, p, "high_watermark", json_integer(part_offset_latest(&bp->log)));
    set(o, p, "size_bytes", json_integer((json_int_t)part_bytes(&bp->log)));
    set(o, p, "segments", json_integer(part_segment_count(&bp->log)));
    set(o, p, "records_in", json_integer((json_int_t)bp->counters.records_in));
    set(o, p, "bytes_in", json_integer((json_int_t)bp->counters.bytes_in));
    set(o, p, "bytes_out", json_integer((json_int_t)bp->counters.bytes_out));
    set(o, p, "records_out", json_integer((json_int_t)bp->counters.records_out));
    return p;
}

static int api_topics(struct server *s, char **out, size_t *len)
{
    struct out o = {0};
    json_t *root = json_object();
    json_t *topics = json_array();
    uint32_t shown = 0;
    for (uint32_t i = 0; topics != NULL && i < s->topic_count; i++) {
        const struct server_topic *tp = s->topics[i];
        json_t *t = json_object();
        json_t *parts = json_array();
        push(&o, topics, t);
        if (t == NULL || parts == NULL) {
            json_decref(parts);
            continue;
        }
        set(&o, t, "name", json_string(tp->name));
        set(&o, t, "internal", json_boolean(tp->name[0] == '_' && tp->name[1] == '_'));
        set(&o, t, "retention_ms", json_integer(tp->cfg.retention_ms));
        set(&o, t, "retention_bytes", json_integer(tp->cfg.retention_bytes));
        for (int32_t p = 0; p < tp->cfg.partitions && shown < METRICS_PARTITIONS_MAX; p++) {
            if (tp->parts[p].open) {
                push(&o, parts, partition_json(&o, &tp->parts[p]));
                shown++;
            }
        }
        set(&o, t, "partitions", parts);
    }
    if (root == NULL || topics == NULL) {
        json_decref(root);
        json_decref(topics);
        return -ENOMEM;
    }
    set(&o, root, "topics", topics);
    return answer(&o, root, 200, out, len);
}

/* ---- /api/groups ---- */

static const struct group *group_with_members(const struct server *s, const char *id)
{
    for (uint32_t i = 0; i < s->group_count; i++) {
        if (strcmp(s->groups[i]->id, id) == 0) {
            return s->groups[i];
        }
    }
    return NULL;
}

/* Where kafka_assigned() adds a member's partitions. */
struct held {
    struct out *o;
    json_t *list;
    bool bad; /* a topic name that is not UTF-8 (a client's bytes): left out */
};

static void kafka_assigned(void *arg, const char *topic, size_t len, int32_t partition)
{
    struct held *h = arg;
    json_t *name = json_stringn(topic, len);
    if (name == NULL) {
        h->bad = true;
        return;
    }
    json_t *tp = json_object();
    push(h->o, h->list, tp);
    if (tp == NULL) {
        json_decref(name);
        return;
    }
    set(h->o, tp, "topic", name);
    set(h->o, tp, "partition", json_integer(partition));
}

/* A Kafka group's members: ids, client ids, hosts, and the partitions the
 * group leader assigned each (read from its assignment when the group
 * speaks Kafka's consumer protocol; "assignment": "unreadable" when those
 * bytes do not parse, "other protocol" for another protocol type). */
static void kafka_members(struct out *o, json_t *members, const struct kgroup *kg)
{
    bool consumer = kg != NULL && strcmp(kg->protocol_type, KGROUP_CONSUMER_PROTOCOL) == 0;
    for (uint32_t m = 0; kg != NULL && m < kg->member_count; m++) {
        const struct kgroup_member *km = &kg->members[m];
        json_t *jm = json_object();
        json_t *list = json_array();
        push(o, members, jm);
        if (jm == NULL || list == NULL) {
            json_decref(list);
            continue;
        }
        set(o, jm, "id", json_string(km->id));
        set(o, jm, "protocol", json_string("kafka"));
        set(o, jm, "client_id", json_string(km->client_id));
        set(o, jm, "host", json_string(km->client_host));
        struct held h = {.o = o, .list = list};
        if (!consumer) {
            set(o, jm, "assignment", json_string(kg->protocol_type[0] ? "other protocol" : "none"));
        } else if ((km->assignment_len > 0 &&
                    kgroup_assignment_each(km->assignment, km->assignment_len, kafka_assigned,
                                           &h) != 0) ||
                   h.bad) {
            set(o, jm, "assignment", json_string("unreadable"));
        }
        set(o, jm, "partitions", list);
    }
}

/* The members of the group named id, of either protocol (a name is one
 * group whichever protocol its members speak). */
static json_t *members_json(struct out *o, const struct server *s, const char *id)
{
    const struct group *g = group_with_members(s, id);
    json_t *members = json_array();
    if (members != NULL && g == NULL && s->kafka_groups != NULL) {
        kafka_members(o, members, kafka_groups_find(s, id));
    }
    for (uint32_t m = 0; members != NULL && g != NULL && m < g->member_count; m++) {
        const struct group_member *gm = &g->members[m];
        json_t *jm = json_object();
        json_t *held = json_array();
        push(o, members, jm);
        if (jm == NULL || held == NULL) {
            json_decref(held);
            continue;
        }
        set(o, jm, "id", json_string(gm->id));
        set(o, jm, "protocol", json_string("nagare"));
        for (uint32_t k = 0; k < gm->grant_count; k++) {
            json_t *tp = json_object();
            push(o, held, tp);
            if (tp != NULL) {
                set(o, tp, "topic", json_string(g->topics[gm->grant[k].topic].name));
                set(o, tp, "partition", json_integer(gm->grant[k].partition));
            }
        }
        set(o, jm, "partitions", held);
    }
    return members;
}

/* Adds group id (which has members) to groups unless its committed offsets
 * listed it already. */
static void unlisted_group(struct out *o, json_t *groups, const struct server *s, const char *id,
                           bool serving)
{
    if (serving && offsets_group_find(&s->offsets, id) != NULL) {
        return;
    }
    json_t *jg = json_object();
    push(o, groups, jg);
    if (jg != NULL) {
        set(o, jg, "group", json_string(id));
        set(o, jg, "members", members_json(o, s, id));
        set(o, jg, "offsets", json_array());
    }
}

static int api_groups(struct server *s, char **out, size_t *len)
{
    struct out o = {0};
    json_t *root = json_object();
    json_t *groups = json_array();
    if (root == NULL || groups == NULL) {
        json_decref(root);
        json_decref(groups);
        return -ENOMEM;
    }
    bool serving = s->offsets_ready && s->offsets.open;
    int64_t now_ms = clock_wall_ms();
    uint32_t rows = 0;
    uint32_t reads_left = METRICS_LAG_READS_MAX;
    for (uint32_t g = 0; serving && g < s->offsets.count; g++) {
        const struct offsets_group *grp = &s->offsets.groups[g];
        json_t *jg = json_object();
        json_t *offsets = json_array();
        push(&o, groups, jg);
        if (jg == NULL || offsets == NULL) {
            json_decref(offsets);
            continue;
        }
        set(&o, jg, "group", json_string(grp->id));
        set(&o, jg, "members", members_json(&o, s, grp->id));
        for (uint32_t i = 0; i < grp->count && rows < METRICS_GROUP_PARTITIONS_MAX; i++, rows++) {
            struct offsets_entry *e = &grp->entries[i];
            int64_t records, ms;
            bool found;
            metrics_group_lag(s, e, now_ms, &reads_left, &records, &ms, &found);
            json_t *je = json_object();
            push(&o, offsets, je);
            if (je == NULL) {
                continue;
            }
            set(&o, je, "topic", json_string(e->topic));
            set(&o, je, "partition", json_integer(e->partition));
            set(&o, je, "committed", json_integer(e->offset));
            set(&o, je, "commit_ms", json_integer(e->commit_ms));
            set(&o, je, "lag", found ? json_integer(records) : json_null());
            set(&o, je, "lag_ms", found ? json_integer(ms) : json_null());
        }
        set(&o, jg, "offsets", offsets);
    }
    /* groups with members and no offset committed yet, of either protocol */
    for (uint32_t i = 0; i < s->group_count; i++) {
        unlisted_group(&o, groups, s, s->groups[i]->id, serving);
    }
    const struct kgroup *kg;
    for (uint32_t i = 0; (kg = kafka_groups_at(s, i)) != NULL; i++) {
        unlisted_group(&o, groups, s, kg->id, serving);
    }
    set(&o, root, "groups", groups);
    return answer(&o, root, 200, out, len);
}

/* ---- /api/share-groups ---- */

static int api_share_groups(struct server *s, char **out, size_t *len)
{
    struct out o = {0};
    json_t *root = json_object();
    json_t *parts = json_array();
    if (root == NULL || parts == NULL) {
        json_decref(root);
        json_decref(parts);
        return -ENOMEM;
    }
    const struct queue *q = s->queue;
    uint32_t n = q != NULL && q->reg_ready && q->served != NULL ? q->reg.count : 0;
    n = n < METRICS_GROUP_PARTITIONS_MAX ? n : METRICS_GROUP_PARTITIONS_MAX;
    for (uint32_t i = 0; i < n; i++) {
        const struct share_part *sp = q->reg.parts[i];
        json_t *jp = json_object();
        push(&o, parts, jp);
        if (jp == NULL) {
            continue;
        }
        set(&o, jp, "group", json_string(sp->group));
        set(&o, jp, "topic", json_string(sp->topic));
        set(&o, jp, "partition", json_integer(sp->partition));
        set(&o, jp, "start", json_integer(share_part_start(sp)));
        set(&o, jp, "end", json_integer(share_part_end(sp)));
        set(&o, jp, "acquired", json_integer(share_part_count(sp, SHARE_ACQUIRED)));
        set(&o, jp, "available", json_integer(share_part_count(sp, SHARE_AVAILABLE)));
        set(&o, jp, "dead_letter_pending", json_integer(share_part_count(sp, SHARE_DEADLETTER)));
        set(&o, jp, "archived", json_integer(share_part_count(sp, SHARE_ARCHIVED)));
    }
    set(&o, root, "share_groups", parts);
    return answer(&o, root, 200, out, len);
}

/* ---- /api/records ---- */

static json_t *record_json(struct out *o, struct batch_record *rec)
{
    json_t *r = json_object();
    if (r == NULL) {
        o->oom = true;
        return NULL;
    }
    set(o, r, "offset", json_integer(rec->offset));
    set(o, r, "timestamp", json_integer(rec->timestamp_ms));
    const char *enc = "text";
    bool cut = false;
    set(o, r, "key",
        rec->key_len < 0 ? json_null() : bytes_value(rec->key, rec->key_len, &enc, &cut));
    set(o, r, "key_encoding", json_string(enc));
    enc = "text";
    set(o, r, "value",
        rec->value_len < 0 ? json_null() : bytes_value(rec->value, rec->value_len, &enc, &cut));
    set(o, r, "value_encoding", json_string(enc));
    set(o, r, "value_bytes", json_integer(rec->value_len));
    set(o, r, "value_cut", json_boolean(cut));
    json_t *headers = json_array();
    struct batch_kv kv;
    int rc;
    while (headers != NULL && (rc = batch_record_next_header(rec, &kv)) == 1) {
        json_t *h = json_object();
        push(o, headers, h);
        if (h != NULL) {
            bool hcut;
            const char *kenc, *venc = "text";
            set(o, h, "key", bytes_value(kv.key, kv.key_len, &kenc, &hcut));
            set(o, h, "value",
                kv.value_len < 0 ? json_null() : bytes_value(kv.value, kv.value_len, &venc, &hcut));
            set(o, h, "value_encoding", json_string(venc));
        }
    }
    set(o, r, "headers", headers);
    return r;
}

static int api_records(struct server *s, const struct console_query *q, char **out, size_t *len)
{
    struct server_topic *tp =
        server_topic_find(s, (struct proto_str){q->topic, (int32_t)strlen(q->topic)});
    if (tp == NULL || q->partition >= tp->cfg.partitions || !tp->parts[q->partition].open) {
        return error("no such topic or partition here", 404, out, len);
    }
    struct bpart *bp = &tp->parts[q->partition];
    int64_t start = part_offset_earliest(&bp->log);
    int64_t end = part_offset_latest(&bp->log);
    int64_t from = q->offset >= 0 ? q->offset : start;
    if (q->time_ms >= 0) {
        int rc = part_offset_for_time(&bp->log, q->time_ms, &from, NULL);
        from = rc == 0 ? from : end; /* no record that late: none to show */
    }
    from = from < start ? start : from;
    struct out o = {0};
    json_t *root = json_object();
    json_t *records = json_array();
    if (root == NULL || records == NULL) {
        json_decref(root);
        json_decref(records);
        return -ENOMEM;
    }
    set(&o, root, "topic", json_string(tp->name));
    set(&o, root, "partition", json_integer(q->partition));
    set(&o, root, "log_start", json_integer(start));
    set(&o, root, "high_watermark", json_integer(end));
    uint8_t *buf = from < end ? malloc(CONSOLE_READ_BYTES) : NULL;
    struct part_read_result r = {0};
    int rc = from < end
                 ? (buf != NULL
                        ? part_read(&bp->log, from, buf, CONSOLE_READ_BYTES, CONSOLE_READ_BYTES, &r)
                        : -ENOMEM)
                 : 0;
    if (rc == -NG_ETOOBIG) {
        set(&o, root, "error", json_string("its next batch is larger than the console reads"));
    } else if (rc != 0) {
        set(&o, root, "error", json_string(err_str(rc)));
    }
    int64_t next = from;
    uint32_t shown = 0;
    size_t pos = 0;
    size_t batch_max = (size_t)tp->cfg.batch_bytes_max;
    while (rc == 0 && pos < r.bytes && shown < q->limit) {
        struct batch_reader br;
        struct batch_header h;
        int hrc = batch_header_decode(buf + pos, r.bytes - pos, batch_max, &h);
        if (hrc != 0 || batch_bytes(&h) > r.bytes - pos ||
            batch_reader_open(&br, buf + pos, batch_bytes(&h), batch_max, &s->zctx, s->scratch,
                              s->scratch_bytes) != 0) {
            set(&o, root, "error", json_string("a batch that does not decode"));
            break;
        }
        struct batch_record rec;
        while (shown < q->limit && batch_reader_next(&br, &rec) == 1) {
            if (rec.offset < from) {
                continue; /* before the offset asked, in the same batch */
            }
            push(&o, records, record_json(&o, &rec));
            shown++;
            next = rec.offset + 1;
        }
        pos += batch_bytes(&h);
    }
    free(buf);
    set(&o, root, "records", records);
    set(&o, root, "next_offset", json_integer(next));
    return answer(&o, root, 200, out, len);
}

int console_api(struct server *s, const char *path, const struct console_query *q, char **out,
                size_t *len)
{
    if (strcmp(path, "/api/cluster") == 0) {
        return api_cluster(s, out, len);
    }
    if (strcmp(path, "/api/topics") == 0) {
        return api_topics(s, out, len);
    }
    if (strcmp(path, "/api/groups") == 0) {
        return api_groups(s, out, len);
    }
    if (strcmp(path, "/api/share-groups") == 0) {
        return api_share_groups(s, out, len);
    }
    if (strcmp(path, "/api/records") == 0 && q != NULL) {
        return api_records(s, q, out, len);
    }
    return error("no such endpoint: /api/cluster, /api/topics, /api/groups, /api/share-groups, "
                 "/api/records",
                 404, out, len);
}
