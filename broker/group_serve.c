/*
 * broker/group_serve.c — the consumer-group apis (JoinGroup ... ResetOffsets):
 * the worker's table of groups with members (broker/group_state.h, no I/O) and
 * the committed offsets store (broker/offsets.h, durable).
 *
 * A group is in the table while it has members: the first join creates
 * it, and it is freed when its last member leaves or times out. Its
 * committed offsets stay in the offsets store either way, so ListGroups
 * and DescribeGroup show a group that has members or committed offsets.
 * group_state.h numbers members from its member_seq; each group starts that
 * sequence where the last freed group stopped (and the first one at the
 * wall clock << 20), so a member id of an earlier incarnation of a group
 * id, or of an earlier broker run, is never taken for a current member.
 *
 * Every write of offsets (OffsetCommit, DeleteGroup, ResetOffsets) is a
 * job: the request's partitions are judged, the accepted ones go to
 * offsets_commit(), and the answer is sent from its completion, once the
 * batch is fdatasync'd. Refused partitions are not written.
 *
 * In a cluster (docs/cluster.md, section 5) the coordinator of every group
 * is the leader of __offsets/0: the store serves from that partition's log
 * while this broker leads it (groups_coordinate()), and the group apis are
 * answered NG_ENOT_COORDINATOR elsewhere (groups_refuse()). When the
 * leadership ends, the table and the groups with members go: members find
 * the new coordinator and join it again.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "broker/kafka_serve.h"
#include "broker/server.h"

static_assert(GROUP_ID_BYTES_MAX == PROTO_GROUP_ID_BYTES_MAX, "one bound for group ids");
static_assert(GROUP_MEMBERS_MAX <= PROTO_GROUP_MEMBERS_MAX, "DescribeGroup lists every member");
static_assert(OFFSETS_COMMIT_ITEMS_MAX <= PROTO_REQUEST_PARTITIONS_MAX,
              "a reset answer lists every partition it wrote");
static_assert(GROUP_PARTITIONS_MAX <= PROTO_REQUEST_PARTITIONS_MAX,
              "a heartbeat answer lists a member's whole grant");
static_assert(PROTO_TOPIC_NAME_BYTES_MAX <= GROUP_ID_BYTES_MAX,
              "a topic name fits the groups' and offsets' name buffers");

/* Bytes of an answer's fixed parts: frame header, leading fields. */
#define ANSWER_SLACK_BYTES 128

/* ---- small helpers ---- */

static int64_t now_ms(const struct server *s) { return (int64_t)loop_now_ms(&s->loop); }

/* A topic's name as the broker knows it (valid while the handler runs) and
 * its partition count, or NULL: the topic held here, else, in a cluster,
 * the catalog's (a coordinator need not hold a replica of every topic). */
static const char *topic_known(struct server *s, struct proto_str name, int32_t *partitions)
{
    struct server_topic *t = server_topic_find(s, name);
    const struct cluster_topic *ct = t == NULL && s->view != NULL
                                         ? cluster_view_topic(s->view, name.ptr, (size_t)name.len)
                                         : NULL;
    *partitions = t != NULL ? t->cfg.partitions : ct != NULL ? ct->partitions : -1;
    return t != NULL ? t->name : ct != NULL ? ct->name : NULL;
}

static int32_t topic_partitions(void *arg, const char *topic)
{
    int32_t partitions;
    (void)topic_known(arg, proto_str_make(topic), &partitions);
    return partitions;
}

/* Copies a group id from the wire: 1..249 bytes of printable ASCII (they
 * go into logs and C strings). Returns 0 or -NG_EBADNAME. */
static int group_id_copy(struct proto_str id, char out[GROUP_ID_BYTES_MAX + 1])
{
    if (id.len <= 0 || id.len > GROUP_ID_BYTES_MAX) {
        return -NG_EBADNAME;
    }
    for (int32_t i = 0; i < id.len; i++) {
        if (id.ptr[i] < 0x20 || id.ptr[i] > 0x7e) {
            return -NG_EBADNAME;
        }
    }
    memcpy(out, id.ptr, (size_t)id.len);
    out[id.len] = '\0';
    return 0;
}

/* Copies a member id from the wire. Ids are the broker's: one that is too
 * long or holds a NUL cannot be a member's (-NG_EUNKNOWN_MEMBER). */
static int member_id_copy(struct proto_str id, char out[PROTO_GROUP_MEMBER_ID_BYTES])
{
    if (id.len < 0 || id.len >= PROTO_GROUP_MEMBER_ID_BYTES ||
        (id.len > 0 && memchr(id.ptr, '\0', (size_t)id.len) != NULL)) {
        return -NG_EUNKNOWN_MEMBER;
    }
    if (id.len > 0) {
        memcpy(out, id.ptr, (size_t)id.len);
    }
    out[id.len] = '\0';
    return 0;
}

/* A topic name from the wire as a C string, or false when it cannot be
 * one a topic or a committed offset has. */
static bool topic_copy(struct proto_str name, char out[PROTO_TOPIC_NAME_BYTES_MAX + 1])
{
    return name.len > 0 && proto_topic_name_valid(name.ptr, (size_t)name.len) &&
           proto_str_copy(name, out, PROTO_TOPIC_NAME_BYTES_MAX + 1) == 0;
}

static struct proto_str str_of(const char *s) { return proto_str_make(s); }

/* ---- the table of groups with members, sorted by id ---- */

static uint32_t group_lower_bound(const struct server *s, const char *id)
{
    uint32_t lo = 0;
    uint32_t hi = s->group_count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (strcmp(s->groups[mid]->id, id) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

static struct group *group_find(struct server *s, const char *id)
{
    uint32_t i = group_lower_bound(s, id);
    return i < s->group_count && strcmp(s->groups[i]->id, id) == 0 ? s->groups[i] : NULL;
}

bool groups_active(const struct server *s, const char *id)
{
    uint32_t i = group_lower_bound(s, id);
    return i < s->group_count && strcmp(s->groups[i]->id, id) == 0; /* kept while it has members */
}

/* Adds an empty group; -NG_ETOOBIG past SERVER_GROUPS_MAX. */
static int group_create(struct server *s, const char *id, struct group **out)
{
    if (s->group_count == SERVER_GROUPS_MAX) {
        return -NG_ETOOBIG;
    }
    if (s->groups == NULL) {
        s->groups = calloc(SERVER_GROUPS_MAX, sizeof(*s->groups));
    }
    struct group *g = malloc(sizeof(*g));
    if (g == NULL || s->groups == NULL) {
        free(g);
        return -ENOMEM;
    }
    group_init(g, id, strlen(id));
    g->member_seq = s->group_member_seq;
    uint32_t i = group_lower_bound(s, id);
    memmove(&s->groups[i + 1], &s->groups[i], (s->group_count - i) * sizeof(*s->groups));
    s->groups[i] = g;
    s->group_count++;
    *out = g;
    return 0;
}

/* Frees g when it has no members left. */
static void group_drop_if_empty(struct server *s, struct group *g)
{
    if (g->member_count > 0) {
        return;
    }
    uint32_t i = group_lower_bound(s, g->id);
    ASSERT(i < s->group_count && s->groups[i] == g);
    memmove(&s->groups[i], &s->groups[i + 1], (s->group_count - i - 1) * sizeof(*s->groups));
    s->group_count--;
    if (g->member_seq > s->group_member_seq) {
        s->group_member_seq = g->member_seq; /* the next incarnation goes on from here */
    }
    if (g->generation > 0) { /* not a group whose first join failed */
        log_info("group %s: no members left", g->id);
    }
    group_fini(g);
    free(g);
}

/* ---- lifecycle ---- */

int groups_open(struct server *s)
{
    ASSERT(s->scratch_bytes >= OFFSETS_SCRATCH_BYTES);
    s->group_member_seq = (uint64_t)s->env.now_ms() << 20;
    char dir[sizeof(s->cfg.data_dir) + 32];
    snprintf(dir, sizeof(dir), "%s/groups", s->cfg.data_dir);
    int rc = 0;
    if (mkdir(dir, 0755) == 0) {
        /* The new directory's entry must be durable before anything in it. */
        int fd = open(s->cfg.data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        rc = fd < 0 ? -errno : ring_fsync(&s->ring, RING_DIR_SYNC, fd, false);
        if (fd >= 0) {
            close(fd);
        }
    } else if (errno != EEXIST) {
        rc = -errno;
    }
    if (rc == 0 && broker_config_clustered(&s->cfg)) {
        /* The store opens on __offsets/0 once this broker leads it; the
         * directory holds the share-state log. */
        s->offsets_ready = true;
        return 0;
    }
    snprintf(dir, sizeof(dir), "%s/groups/offsets", s->cfg.data_dir);
    uint64_t segment_bytes = (uint64_t)s->cfg.internal_segment_bytes;
    rc = rc == 0 ? offsets_open(&s->offsets, dir, &s->env, segment_bytes) : rc;
    if (rc != 0) {
        log_error("group offsets in %s: %s", dir, err_str(rc));
        return rc;
    }
    s->offsets_ready = true;
    log_info("group offsets: %u groups with committed offsets", s->offsets.count);
    return 0;
}

/* Frees every group with members (their members are forgotten). */
static void groups_free_all(struct server *s)
{
    for (uint32_t i = 0; i < s->group_count; i++) {
        if (s->groups[i]->member_seq > s->group_member_seq) {
            s->group_member_seq = s->groups[i]->member_seq;
        }
        group_fini(s->groups[i]);
        free(s->groups[i]);
    }
    free(s->groups);
    s->groups = NULL;
    s->group_count = 0;
}

int groups_close(struct server *s)
{
    int rc = 0;
    if (s->offsets_ready) {
        rc = offsets_close(&s->offsets);
        s->offsets_ready = false;
    }
    groups_free_all(s);
    return rc;
}

/* ---- a cluster: the coordinator is the leader of __offsets/0 ---- */

static struct bpart *offsets_bpart(struct server *s)
{
    struct server_topic *t = server_topic_find(s, str_of(PROTO_OFFSETS_TOPIC));
    return t != NULL ? &t->parts[0] : NULL;
}

/* On the cluster thread: the creation's outcome (the view brings the
 * topic; the creation logged its name). */
static void topic_created(void *arg, int rc)
{
    (void)arg;
    if (rc != 0 && rc != -NG_ETOPIC_EXISTS) {
        log_warn("creating a topic: %s", err_str(rc));
    }
}

void groups_topic_ensure(struct server *s, const char *name, const struct cluster_topic_config *cfg,
                         int64_t *asked_ms)
{
    int64_t now = now_ms(s);
    if (s->session == NULL || s->view == NULL || s->view->fenced ||
        cluster_view_topic(s->view, name, strlen(name)) != NULL ||
        (*asked_ms != 0 && now - *asked_ms < GROUPS_OFFSETS_CREATE_MS)) {
        return;
    }
    *asked_ms = now;
    int32_t live = (int32_t)s->view->broker_count;
    int32_t factor =
        s->cfg.default_replication_factor < live ? s->cfg.default_replication_factor : live;
    factor = factor > 0 ? factor : 1;
    struct cluster_topic_config c = *cfg;
    c.min_insync_replicas =
        s->cfg.min_insync_replicas < factor ? s->cfg.min_insync_replicas : factor;
    int rc =
        cluster_session_create_topic(s->session, name, 1, (int16_t)factor, &c, topic_created, NULL);
    if (rc != 0) {
        log_warn("creating topic %s: %s", name, err_str(rc));
    } else {
        log_info("creating topic %s (replication factor %d, min in-sync %d)", name, factor,
                 c.min_insync_replicas);
    }
}

void groups_internal_topic_ensure(struct server *s, const char *name, int32_t batch_bytes_max,
                                  int64_t *asked_ms)
{
    /* never retained away: the latest commit of a partition, a share
     * group's state, may be old */
    const struct cluster_topic_config cfg = {.retention_ms = -1,
                                             .retention_bytes = -1,
                                             .segment_bytes = s->cfg.internal_segment_bytes,
                                             .segment_ms = PROTO_CONFIG_DEFAULT,
                                             .batch_bytes_max = batch_bytes_max};
    groups_topic_ensure(s, name, &cfg, asked_ms);
}

int groups_leader_writable(const struct bpart *bp)
{
    int rc = replica_serving(bp);
    return rc != 0 ? rc : replica_check_acks_all(bp);
}

static int repl_check(void *arg) { return groups_leader_writable(arg); }

static void repl_wait(void *arg, struct replica_wait *w, int64_t end)
{
    replica_wait_add(arg, w, end);
}

void groups_coordinate(struct server *s)
{
    if (s->view == NULL || !s->offsets_ready || s->loop.stopping) {
        return;
    }
    struct offsets *o = &s->offsets;
    struct bpart *bp = offsets_bpart(s);
    bool lead = bp != NULL && bp->rep.role == REPLICA_LEADER;
    if (o->attached &&
        (!lead || o->repl.arg != bp || s->coordinator_epoch != bp->rep.leader_epoch)) {
        log_info("group coordinator: no longer (leader epoch %d); %u groups with members dropped",
                 s->coordinator_epoch, s->group_count);
        offsets_detach(o);
        groups_free_all(s);
    }
    /* The follower's last appends must be in the log replayed: wait until
     * none is in flight (the next view or housekeeping comes back). */
    struct offsets_repl repl = {.arg = bp, .check = repl_check, .wait = repl_wait};
    if (lead && !o->attached && part_offset_written(&bp->log) == part_offset_next(&bp->log) &&
        offsets_attach(o, &bp->log, (uint64_t)bp->topic->cfg.segment_bytes, &repl, &s->env) == 0) {
        s->coordinator_epoch = bp->rep.leader_epoch;
        log_info("group coordinator at leader epoch %d: %u groups with committed offsets",
                 s->coordinator_epoch, o->count);
    }
}

/* Which coordinator serves an api in a cluster: the one place that says
 * it. DlqRedrive writes its marks in the offsets store (broker/dlq.c). */
enum coordinator {
    COORDINATOR_NONE,    /* any broker */
    COORDINATOR_OFFSETS, /* the leader of __offsets/0 */
    COORDINATOR_SHARE,   /* the leader of __share_state/0 */
};

static enum coordinator coordinator_of(uint16_t api_key)
{
    if (api_key == PROTO_API_LIST_GROUPS) {
        return COORDINATOR_NONE; /* either coordinator lists its own */
    }
    if (api_key >= PROTO_API_JOIN_GROUP && api_key <= PROTO_API_RESET_OFFSETS) {
        return COORDINATOR_OFFSETS;
    }
    switch (api_key) {
    case PROTO_API_SHARE_FETCH:
    case PROTO_API_SHARE_ACK:
        return COORDINATOR_SHARE;
    case PROTO_API_DLQ_REDRIVE:
        return COORDINATOR_OFFSETS;
    default:
        return COORDINATOR_NONE;
    }
}

bool groups_refuse(struct server *s, uint16_t api_key)
{
    if (!broker_config_clustered(&s->cfg)) {
        return false;
    }
    switch (coordinator_of(api_key)) {
    case COORDINATOR_OFFSETS:
        if (s->offsets.open) {
            return false;
        }
        groups_internal_topic_ensure(s, PROTO_OFFSETS_TOPIC, OFFSETS_BATCH_MAX,
                                     &s->offsets_create_ms);
        return true;
    case COORDINATOR_SHARE:
        return share_serve_refuse(s);
    default:
        return false;
    }
}

/* Logs the members of g whose session has run out by now. */
static void log_expired(const struct group *g, int64_t now)
{
    for (uint32_t i = 0; i < g->member_count; i++) {
        const struct group_member *m = &g->members[i];
        if (m->deadline_ms < now) {
            log_info("group %s: member %s timed out (no heartbeat for %u ms)", g->id, m->id,
                     m->session_ms);
        }
    }
}

void groups_expire(struct server *s)
{
    groups_coordinate(s); /* an attach put off by appends in flight */
    int64_t now = now_ms(s);
    if (now - s->groups_checked_ms < SERVER_GROUPS_EXPIRE_MS) {
        return;
    }
    s->groups_checked_ms = now;
    for (uint32_t i = 0; i < s->group_count;) {
        struct group *g = s->groups[i];
        log_expired(g, now);
        uint32_t removed = group_expire(g, now, topic_partitions, s);
        if (removed > 0) {
            log_info("group %s: generation %u, %u members", g->id, g->generation, g->member_count);
        }
        if (g->member_count == 0) {
            group_drop_if_empty(s, g); /* the next group moved to i */
        } else {
            i++;
        }
    }
}

/* ---- JoinGroup ---- */

/* Joins in->member_id (or a new member) to the group; *member_out and
 * *gen_out on 0. */
static int join(struct server *s, const struct proto_join_group_req *in, struct proto_dec d,
                char member_out[PROTO_GROUP_MEMBER_ID_BYTES], int32_t *gen_out)
{
    char id[GROUP_ID_BYTES_MAX + 1];
    char member[PROTO_GROUP_MEMBER_ID_BYTES];
    char names[GROUP_TOPICS_MAX][PROTO_TOPIC_NAME_BYTES_MAX + 1];
    const char *topics[GROUP_TOPICS_MAX];
    int rc = group_id_copy(in->group, id);
    if (rc == 0 && kafka_groups_active(s, id)) {
        rc = -NG_EINCONSISTENT_PROTOCOL; /* Kafka's clients hold it: one group, one protocol */
    }
    bool fresh = in->member_id.len <= 0;
    rc = rc == 0 && !fresh ? member_id_copy(in->member_id, member) : rc;
    if (rc == 0 && (d.topic_count <= 0 || d.topic_count > GROUP_TOPICS_MAX)) {
        rc = d.topic_count <= 0 ? -NG_EBADARG : -NG_ETOOBIG;
    }
    struct proto_topic t;
    for (uint32_t n = 0; rc == 0 && proto_next_topic(&d, &t); n++) {
        rc = topic_copy(t.name, names[n]) ? 0 : -NG_EBADNAME;
        topics[n] = names[n];
    }
    if (rc != 0) {
        return rc;
    }
    struct group *g = group_find(s, id);
    bool created = false;
    if (g == NULL && !fresh) {
        return -NG_EUNKNOWN_MEMBER; /* its group is gone, and it with it */
    }
    if (g == NULL) {
        rc = group_create(s, id, &g);
        created = rc == 0;
    }
    rc = rc == 0 ? group_join(g, fresh ? NULL : member, topics, (uint32_t)d.topic_count,
                              (uint32_t)in->session_timeout_ms, now_ms(s), topic_partitions, s,
                              member_out)
                 : rc;
    if (rc == 0) {
        *gen_out = (int32_t)g->generation;
        log_info("group %s: member %s joined, generation %u, %u members", id, member_out,
                 g->generation, g->member_count);
    } else if (created) {
        group_drop_if_empty(s, g);
    }
    return rc;
}

void handle_join_group(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                       struct rd *body)
{
    struct proto_join_group_req in;
    struct proto_dec d;
    int rc = proto_join_group_req_decode(body, h->api_version, &in, &d);
    struct wr w;
    if (rc != 0) {
        server_resp_error(req, h->correlation_id, rc);
        return;
    }
    char member[PROTO_GROUP_MEMBER_ID_BYTES] = "";
    struct proto_join_group_resp out = {.generation = -1};
    out.err = join(s, &in, d, member, &out.generation);
    out.member_id = str_of(out.err == 0 ? member : "");
    if (!server_resp_begin(req, h->correlation_id, ANSWER_SLACK_BYTES, &w)) {
        return;
    }
    rc = proto_join_group_resp_encode(&w, h->api_version, h->correlation_id, &out);
    ASSERT(rc == 0); /* a member id fits the slack */
    server_resp_send(req, &w);
}

/* ---- Heartbeat, LeaveGroup ---- */

/* Finds the group and member a request names: 0, -NG_EBADNAME,
 * -NG_EUNKNOWN_MEMBER (no such group: it has no members). */
static int member_lookup(struct server *s, struct proto_str group, struct proto_str member_id,
                         struct group **g_out, char member[PROTO_GROUP_MEMBER_ID_BYTES])
{
    char id[GROUP_ID_BYTES_MAX + 1];
    int rc = group_id_copy(group, id);
    rc = rc == 0 ? member_id_copy(member_id, member) : rc;
    *g_out = rc == 0 ? group_find(s, id) : NULL;
    return rc == 0 && *g_out == NULL ? -NG_EUNKNOWN_MEMBER : rc;
}

/* Writes a grant grouped by topic, in the group's topic order. */
static void encode_grant(struct proto_enc *e, const struct group *g, const struct group_tp *grant,
                         uint32_t count)
{
    for (uint16_t t = 0; t < g->topic_count; t++) {
        bool open = false;
        for (uint32_t k = 0; k < count; k++) {
            if (grant[k].topic != t) {
                continue;
            }
            if (!open) {
                proto_enc_topic(e, str_of(g->topics[t].name));
                open = true;
            }
            proto_enc_partition_index(e, grant[k].partition);
        }
    }
}

void handle_heartbeat(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                      struct rd *body)
{
    struct proto_heartbeat_req in;
    int rc = proto_heartbeat_req_decode(body, h->api_version, &in);
    struct wr w;
    if (rc != 0) {
        server_resp_error(req, h->correlation_id, rc);
        return;
    }
    struct group *g;
    char member[PROTO_GROUP_MEMBER_ID_BYTES];
    const struct group_tp *grant = NULL;
    uint32_t count = 0;
    uint32_t gen = 0;
    struct proto_heartbeat_resp out = {.generation = -1};
    out.err = member_lookup(s, in.group, in.member_id, &g, member);
    if (out.err == 0) {
        out.err =
            group_heartbeat(g, member, (uint32_t)in.generation, now_ms(s), &grant, &count, &gen);
    }
    if (out.err == 0) {
        /* The grant is the target less what others still hold. */
        const struct group_member *m = group_member_find(g, member);
        out.generation = (int32_t)gen;
        out.rebalancing = count != m->target_count;
    } else {
        count = 0;
    }
    size_t topics = out.err == 0 ? g->topic_count : 0;
    if (!server_resp_begin(req, h->correlation_id,
                           ANSWER_SLACK_BYTES + topics * PROTO_TOPIC_BYTES_MAX +
                               (size_t)count * PROTO_PARTITION_INDEX_BYTES,
                           &w)) {
        return;
    }
    struct proto_enc e;
    proto_heartbeat_resp_begin(&e, &w, h->api_version, h->correlation_id, &out);
    if (count > 0) {
        encode_grant(&e, g, grant, count);
    }
    server_resp_end(req, &e, &w, h->correlation_id);
}

void handle_leave_group(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                        struct rd *body)
{
    struct proto_leave_group_req in;
    int rc = proto_leave_group_req_decode(body, h->api_version, &in);
    struct wr w;
    if (rc != 0) {
        server_resp_error(req, h->correlation_id, rc);
        return;
    }
    struct group *g;
    char member[PROTO_GROUP_MEMBER_ID_BYTES];
    rc = member_lookup(s, in.group, in.member_id, &g, member);
    rc = rc == 0 ? group_leave(g, member, topic_partitions, s) : rc;
    if (rc == 0) {
        log_info("group %s: member %s left, generation %u, %u members", g->id, member,
                 g->generation, g->member_count);
        group_drop_if_empty(s, g);
    }
    if (!server_resp_begin(req, h->correlation_id, ANSWER_SLACK_BYTES, &w)) {
        return;
    }
    rc = proto_leave_group_resp_encode(&w, h->api_version, h->correlation_id, rc);
    ASSERT(rc == 0);
    server_resp_send(req, &w);
}

/* ---- offset writes: commit, delete, reset ---- */

/* One partition of a write request, as it will be answered. */
struct job_part {
    struct proto_str topic; /* into the request frame */
    const char *name;       /* the topic's own, while the handler runs */
    int32_t partition;
    int64_t offset; /* the offset written (-1 with an error) */
    int err;
    bool written; /* its item went to offsets_commit() */
};

/* A durable write of offsets in flight. Owns itself until answered. */
struct offsets_job {
    struct offsets_commit c; /* first: job_done() gets the job from it */
    struct server *s;
    struct loop_req *req;
    uint32_t correlation_id;
    uint16_t version;
    uint16_t api_key;
    int err; /* DeleteGroup, ResetOffsets: the answer's error */
    char group[GROUP_ID_BYTES_MAX + 1];
    uint32_t part_count;
    struct job_part parts[];
};
static_assert(offsetof(struct offsets_job, c) == 0, "job_done() casts back");

static struct offsets_job *job_new(struct server *s, struct loop_req *req,
                                   const struct proto_req_header *h, uint32_t part_count)
{
    struct offsets_job *j = calloc(1, sizeof(*j) + part_count * sizeof(j->parts[0]));
    if (j != NULL) {
        j->s = s;
        j->req = req;
        j->correlation_id = h->correlation_id;
        j->version = h->api_version;
        j->api_key = h->api_key;
        j->part_count = part_count;
    }
    return j;
}

/* Answers a commit or reset: the partitions, grouped by topic as asked. */
static void job_answer_parts(struct offsets_job *j)
{
    size_t cap = ANSWER_SLACK_BYTES;
    for (uint32_t i = 0; i < j->part_count; i++) {
        cap += 14 + 6 + (size_t)j->parts[i].topic.len;
    }
    struct wr w;
    if (!server_resp_begin(j->req, j->correlation_id, cap, &w)) {
        return;
    }
    struct proto_enc e;
    bool commit = j->api_key == PROTO_API_OFFSET_COMMIT;
    if (commit) {
        proto_offset_commit_resp_begin(&e, &w, j->version, j->correlation_id);
    } else {
        proto_reset_offsets_resp_begin(&e, &w, j->version, j->correlation_id, j->err);
    }
    for (uint32_t i = 0; i < j->part_count; i++) {
        const struct job_part *p = &j->parts[i];
        if (i == 0 || p->topic.ptr != j->parts[i - 1].topic.ptr) {
            proto_enc_topic(&e, p->topic);
        }
        if (commit) {
            proto_enc_partition_result(&e, &(struct proto_partition_result){p->partition, p->err});
        } else {
            proto_enc_partition_offset(&e, &(struct proto_partition_offset){
                                               p->partition, p->err == 0 ? p->offset : -1, p->err});
        }
    }
    server_resp_end(j->req, &e, &w, j->correlation_id);
}

static void job_answer(struct offsets_job *j)
{
    if (j->api_key == PROTO_API_DELETE_GROUP) {
        struct wr w;
        if (server_resp_begin(j->req, j->correlation_id, ANSWER_SLACK_BYTES, &w)) {
            int rc = proto_delete_group_resp_encode(&w, j->version, j->correlation_id, j->err);
            ASSERT(rc == 0);
            server_resp_send(j->req, &w);
        }
    } else {
        job_answer_parts(j);
    }
    free(j);
}

static void job_done(struct offsets_commit *c, int rc);

/* Starts writing the job's partitions marked written; answers at once
 * when there are none, or when the write cannot start. */
static void job_start(struct offsets_job *j)
{
    struct offsets_item *items = malloc((j->part_count + 1) * sizeof(*items));
    uint32_t n = 0;
    int rc = items == NULL ? -ENOMEM : 0;
    for (uint32_t i = 0; rc == 0 && i < j->part_count; i++) {
        const struct job_part *p = &j->parts[i];
        if (p->written) {
            items[n++] = (struct offsets_item){p->name, p->partition, p->offset};
        }
    }
    /* offsets_commit() copies the names: the topics may go after this. */
    if (rc == 0 && n > 0) {
        rc = offsets_commit(&j->s->offsets, &j->c, j->group, items, n, job_done, j);
    }
    free(items);
    if (rc != 0 || n == 0) {
        job_done(&j->c, rc); /* nothing in flight: finish now */
    }
}

static void job_done(struct offsets_commit *c, int rc)
{
    struct offsets_job *j = (struct offsets_job *)c; /* c is its first member */
    if (rc != 0) {
        log_error("group %s: %s of offsets: %s", j->group, proto_api_name(j->api_key), err_str(rc));
    }
    for (uint32_t i = 0; rc != 0 && i < j->part_count; i++) {
        if (j->parts[i].written) {
            j->parts[i].err = rc; /* not durable: maybe not written */
        }
    }
    job_answer(j);
}

/* ---- OffsetCommit ---- */

/* Who is committing: a member of g at a generation, or (outside) no one. */
struct committer {
    int err; /* a bad group id or member id: every partition's */
    const struct group *g;
    bool outside;
    char member[PROTO_GROUP_MEMBER_ID_BYTES];
    uint32_t generation;
};

/* May c commit offset for partition of topic name (NULL: unknown), which
 * has partitions? 0 or the partition's error. */
static int commit_check(const struct committer *c, const char *name, int32_t partitions,
                        int32_t partition, int64_t offset)
{
    if (c->err != 0) {
        return c->err;
    }
    if (name == NULL || partition < 0 || partition >= partitions) {
        return -NG_EUNKNOWN_TOPIC;
    }
    if (offset < 0) {
        return -NG_EBADARG;
    }
    if (c->outside) {
        return c->g != NULL ? -NG_EGROUP_NOT_EMPTY : 0; /* groups in the table have members */
    }
    if (c->g == NULL) {
        return -NG_EUNKNOWN_MEMBER;
    }
    return group_check_commit(c->g, c->member, c->generation, name, partition);
}

void handle_offset_commit(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                          struct rd *body)
{
    struct proto_offset_commit_req in;
    struct proto_dec d;
    int rc = proto_offset_commit_req_decode(body, h->api_version, &in, &d);
    struct offsets_job *j = rc == 0 ? job_new(s, req, h, d.partition_count) : NULL;
    if (j == NULL) {
        server_resp_error(req, h->correlation_id, rc != 0 ? rc : -ENOMEM);
        return;
    }
    struct committer c = {.outside = in.member_id.len < 0, .generation = (uint32_t)in.generation};
    c.err = group_id_copy(in.group, j->group);
    c.err = c.err == 0 && !c.outside ? member_id_copy(in.member_id, c.member) : c.err;
    c.g = c.err == 0 ? group_find(s, j->group) : NULL;
    struct proto_topic t;
    uint32_t i = 0;
    while (proto_next_topic(&d, &t)) {
        int32_t partitions;
        const char *name = topic_known(s, t.name, &partitions);
        struct proto_offset_commit_req_partition p;
        while (proto_offset_commit_req_next_partition(&d, &p)) {
            struct job_part *jp = &j->parts[i++];
            *jp = (struct job_part){.topic = t.name, .partition = p.partition, .offset = p.offset};
            jp->err = commit_check(&c, name, partitions, p.partition, p.offset);
            jp->name = name;
            jp->written = jp->err == 0;
        }
    }
    ASSERT(i == j->part_count);
    job_start(j);
}

/* ---- OffsetFetch ---- */

static int entry_cmp(const void *a, const void *b)
{
    const struct offsets_entry *x = *(const struct offsets_entry *const *)a;
    const struct offsets_entry *y = *(const struct offsets_entry *const *)b;
    int c = strcmp(x->topic, y->topic);
    return c != 0 ? c : (x->partition > y->partition) - (x->partition < y->partition);
}

/* The group's committed offsets sorted by topic and partition (free() it),
 * or NULL with *count_out 0 when it has none (or memory ran out). */
static const struct offsets_entry **entries_sorted(const struct offsets_group *og,
                                                   uint32_t *count_out)
{
    *count_out = 0;
    if (og == NULL || og->count == 0) {
        return NULL;
    }
    const struct offsets_entry **v = malloc(og->count * sizeof(*v));
    if (v == NULL) {
        return NULL;
    }
    for (uint32_t i = 0; i < og->count; i++) {
        v[i] = &og->entries[i];
    }
    qsort(v, og->count, sizeof(*v), entry_cmp);
    *count_out = og->count;
    return v;
}

/* Every committed partition of the group (a null topic array). */
static void offset_fetch_all(struct loop_req *req, const struct proto_req_header *h,
                             const struct offsets_group *og)
{
    uint32_t n;
    const struct offsets_entry **v = entries_sorted(og, &n);
    struct wr w;
    if (!server_resp_begin(req, h->correlation_id,
                           ANSWER_SLACK_BYTES +
                               (size_t)n * (PROTO_PARTITION_OFFSET_BYTES + PROTO_TOPIC_BYTES_MAX),
                           &w)) {
        free(v);
        return;
    }
    struct proto_enc e;
    proto_offset_fetch_resp_begin(&e, &w, h->api_version, h->correlation_id);
    for (uint32_t i = 0; i < n; i++) {
        if (i == 0 || strcmp(v[i]->topic, v[i - 1]->topic) != 0) {
            proto_enc_topic(&e, str_of(v[i]->topic));
        }
        proto_enc_partition_offset(
            &e, &(struct proto_partition_offset){v[i]->partition, v[i]->offset, 0});
    }
    free(v);
    server_resp_end(req, &e, &w, h->correlation_id);
}

void handle_offset_fetch(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                         struct rd *body)
{
    struct proto_str group;
    struct proto_dec d;
    int rc = proto_offset_fetch_req_decode(body, h->api_version, &group, &d);
    if (rc != 0) {
        server_resp_error(req, h->correlation_id, rc);
        return;
    }
    char id[GROUP_ID_BYTES_MAX + 1];
    int gerr = group_id_copy(group, id);
    if (d.topic_count < 0) {
        offset_fetch_all(req, h, gerr == 0 ? offsets_group_find(&s->offsets, id) : NULL);
        return;
    }
    size_t cap = ANSWER_SLACK_BYTES;
    struct proto_dec count = d;
    struct proto_topic t;
    int32_t p;
    while (proto_next_topic(&count, &t)) {
        cap += 6 + (size_t)t.name.len + (size_t)t.partition_count * 14;
    }
    struct wr w;
    if (!server_resp_begin(req, h->correlation_id, cap, &w)) {
        return;
    }
    struct proto_enc e;
    proto_offset_fetch_resp_begin(&e, &w, h->api_version, h->correlation_id);
    while (proto_next_topic(&d, &t)) {
        char topic[PROTO_TOPIC_NAME_BYTES_MAX + 1];
        bool named = topic_copy(t.name, topic);
        proto_enc_topic(&e, t.name);
        while (proto_next_partition_index(&d, &p)) {
            struct proto_partition_offset out = {.partition = p, .offset = -1, .err = gerr};
            if (gerr == 0 && named && offsets_get(&s->offsets, id, topic, p, &out.offset) != 0) {
                out.offset = -1; /* nothing committed */
            }
            proto_enc_partition_offset(&e, &out);
        }
    }
    server_resp_end(req, &e, &w, h->correlation_id);
}

/* ---- ListGroups ---- */

void handle_list_groups(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                        struct rd *body)
{
    /* In a cluster the consumer groups are listed by the offsets
     * coordinator and the share groups by the share coordinator (the
     * client asks both, client/admin_groups.c); a broker that is neither
     * says so, and the client looks again. A single broker is both. */
    bool consumer_here = !groups_refuse(s, PROTO_API_JOIN_GROUP);
    int rc = proto_list_groups_req_decode(body, h->api_version);
    rc = rc == 0 && !consumer_here && !share_serve_lists(s) ? -NG_ENOT_COORDINATOR : rc;
    if (rc != 0) {
        server_resp_error(req, h->correlation_id, rc);
        return;
    }
    size_t per = PROTO_GROUP_LISTING_BYTES(GROUP_ID_BYTES_MAX);
    size_t share_groups = share_serve_groups_bound(s); /* 0 unless coordinating */
    uint32_t group_count = consumer_here ? s->group_count : 0;
    uint32_t offsets_count = consumer_here ? s->offsets.count : 0;
    struct wr w;
    if (!server_resp_begin(
            req, h->correlation_id,
            ANSWER_SLACK_BYTES + (group_count + (size_t)offsets_count + share_groups) * per, &w)) {
        return;
    }
    struct proto_enc e;
    proto_list_groups_resp_begin(&e, &w, h->api_version, h->correlation_id);
    /* Both lists are sorted by id: merge them, one entry per group. */
    uint32_t i = 0;
    uint32_t k = 0;
    uint32_t listed = 0;
    while (i < group_count || k < offsets_count) {
        const struct offsets_group *og = k < offsets_count ? &s->offsets.groups[k] : NULL;
        const struct group *g = i < group_count ? s->groups[i] : NULL;
        int c = g == NULL ? 1 : og == NULL ? -1 : strcmp(g->id, og->id);
        if (c >= 0) {
            k++;
        }
        if (c <= 0) {
            i++;
        }
        if (c > 0 && og->count == 0) {
            continue; /* deleted: no members, no offsets */
        }
        if (listed++ == PROTO_GROUPS_MAX) {
            log_warn("ListGroups: more than %d groups; the answer lists the first",
                     PROTO_GROUPS_MAX);
            break;
        }
        struct proto_group_listing l = {.group = str_of(c > 0 ? og->id : g->id),
                                        .kind = PROTO_GROUP_KIND_CONSUMER,
                                        .member_count = c > 0 ? 0 : (int32_t)g->member_count};
        proto_list_groups_resp_group(&e, &l);
    }
    /* Share members hold no session, so no member count is known. */
    uint32_t cursor = 0;
    struct proto_str id;
    while (listed < PROTO_GROUPS_MAX && share_serve_groups_next(s, &cursor, &id)) {
        listed++;
        struct proto_group_listing l = {.group = id, .kind = PROTO_GROUP_KIND_SHARE};
        proto_list_groups_resp_group(&e, &l);
    }
    server_resp_end(req, &e, &w, h->correlation_id);
}

/* ---- DescribeGroup ---- */

/* Reads the timestamps of records a lag needs: one batch at a time, so a
 * buffer for the largest batch the broker accepts and its records. */
struct lag_buf {
    uint8_t *batch;
    size_t batch_cap;
    uint8_t *records;
    size_t records_cap;
};

/* The timestamp of the record at offset in log. */
static int record_timestamp(struct server *s, struct part *log, int64_t offset, struct lag_buf *b,
                            int64_t *ts_out)
{
    if (b->batch == NULL) {
        b->batch_cap = (size_t)s->cfg.batch_bytes_max; /* >= every topic's */
        b->records_cap = b->batch_cap + 65536;
        b->batch = malloc(b->batch_cap + b->records_cap);
        if (b->batch == NULL) {
            return -ENOMEM;
        }
        b->records = b->batch + b->batch_cap;
    }
    struct part_read_result r;
    int rc = part_read(log, offset, b->batch, b->batch_cap, 1, &r); /* the first batch */
    struct batch_reader br;
    rc = rc == 0 && r.bytes == 0 ? -NG_ENOTFOUND : rc;
    rc = rc == 0 ? batch_reader_open(&br, b->batch, r.bytes, b->batch_cap, &s->zctx, b->records,
                                     b->records_cap)
                 : rc;
    struct batch_record rec;
    while (rc == 0 && (rc = batch_reader_next(&br, &rec)) == 1) {
        if (rec.offset >= offset) {
            *ts_out = rec.timestamp_ms;
            return 0;
        }
        rc = 0;
    }
    return rc < 0 ? rc : -NG_ENOTFOUND;
}

/* A committed offset, its partition's end and the lag: in records, and in
 * ms since the next record to consume was written (0 when caught up). A
 * topic or partition gone gives end and lags -1. */
static void describe_offset(struct server *s, const struct offsets_entry *en, struct lag_buf *b,
                            struct proto_group_offset_desc *o)
{
    *o = (struct proto_group_offset_desc){.partition = en->partition,
                                          .committed = en->offset,
                                          .end = -1,
                                          .lag_records = -1,
                                          .lag_ms = -1};
    struct server_topic *st = server_topic_find(s, str_of(en->topic));
    if (st == NULL || en->partition < 0 || en->partition >= st->cfg.partitions) {
        return;
    }
    struct part *log = &st->parts[en->partition].log;
    o->end = part_offset_latest(log);
    o->lag_records = o->end > en->offset ? o->end - en->offset : 0;
    o->lag_ms = 0;
    if (o->lag_records == 0) {
        return;
    }
    /* Records below the log start are gone: the next one is the first. */
    int64_t next = en->offset > part_offset_earliest(log) ? en->offset : part_offset_earliest(log);
    int64_t ts = 0;
    int rc = record_timestamp(s, log, next, b, &ts);
    if (rc != 0) {
        log_warn("group describe: %s/%d at %lld: %s", st->name, en->partition, (long long)next,
                 err_str(rc));
        o->lag_ms = -1;
        return;
    }
    int64_t now = s->env.now_ms();
    o->lag_ms = now > ts ? now - ts : 0;
}

/* Bytes a DescribeGroup answer may take. */
static size_t describe_cap(const struct group *g, uint32_t entries)
{
    size_t cap =
        ANSWER_SLACK_BYTES + (size_t)entries * (PROTO_OFFSET_DESC_BYTES + PROTO_TOPIC_BYTES_MAX);
    for (uint32_t i = 0; g != NULL && i < g->member_count; i++) {
        const struct group_member *m = &g->members[i];
        cap += PROTO_MEMBER_DESC_BYTES(PROTO_GROUP_MEMBER_ID_BYTES) +
               (size_t)m->grant_count * (PROTO_PARTITION_INDEX_BYTES + PROTO_TOPIC_BYTES_MAX);
    }
    return cap;
}

static void describe_members(struct proto_enc *e, const struct group *g)
{
    for (uint32_t i = 0; g != NULL && i < g->member_count; i++) {
        const struct group_member *m = &g->members[i];
        proto_describe_group_resp_member(e, str_of(m->id));
        encode_grant(e, g, m->grant, m->grant_count);
    }
}

void handle_describe_group(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                           struct rd *body)
{
    struct proto_str group;
    int rc = proto_describe_group_req_decode(body, h->api_version, &group);
    if (rc != 0) {
        server_resp_error(req, h->correlation_id, rc);
        return;
    }
    char id[GROUP_ID_BYTES_MAX + 1];
    struct proto_describe_group_resp out = {.kind = PROTO_GROUP_KIND_CONSUMER};
    out.err = group_id_copy(group, id);
    const struct group *g = out.err == 0 ? group_find(s, id) : NULL;
    uint32_t n = 0;
    const struct offsets_entry **v =
        entries_sorted(out.err == 0 ? offsets_group_find(&s->offsets, id) : NULL, &n);
    if (out.err == 0 && g == NULL && n == 0) {
        out.err = -NG_ENOTFOUND; /* no members, no offsets */
    }
    out.generation = g != NULL ? (int32_t)g->generation : out.err == 0 ? 0 : -1;
    struct wr w;
    if (!server_resp_begin(req, h->correlation_id, describe_cap(g, n), &w)) {
        free(v);
        return;
    }
    struct proto_enc e;
    proto_describe_group_resp_begin(&e, &w, h->api_version, h->correlation_id, &out);
    describe_members(&e, g);
    proto_describe_group_resp_offsets(&e);
    struct lag_buf b = {0};
    for (uint32_t i = 0; i < n; i++) {
        if (i == 0 || strcmp(v[i]->topic, v[i - 1]->topic) != 0) {
            proto_enc_topic(&e, str_of(v[i]->topic));
        }
        struct proto_group_offset_desc o;
        describe_offset(s, v[i], &b, &o);
        proto_describe_group_resp_offset(&e, &o);
    }
    free(b.batch);
    free(v);
    server_resp_end(req, &e, &w, h->correlation_id);
}

/* ---- DeleteGroup ---- */

/* ---- deleting a group (DeleteGroup; Kafka's DeleteGroups) ---- */

/* Forgetting a group's offsets, chunk by chunk. Owns itself until done. */
struct group_delete {
    struct offsets_commit c; /* first: delete_done() gets it from c */
    struct server *s;
    char group[GROUP_ID_BYTES_MAX + 1];
    groups_delete_fn done;
    void *arg;
};
static_assert(offsetof(struct group_delete, c) == 0, "delete_done() casts back");

static void delete_done(struct offsets_commit *c, int rc);

/* Forgets the next chunk of d's group's offsets: 1 when a write started,
 * 0 when none are left, or the write's error. */
static int delete_next(struct group_delete *d)
{
    const struct offsets_group *og = offsets_group_find(&d->s->offsets, d->group);
    uint32_t n = og != NULL ? og->count : 0;
    n = n < OFFSETS_COMMIT_ITEMS_MAX ? n : OFFSETS_COMMIT_ITEMS_MAX;
    if (n == 0) {
        return 0;
    }
    struct offsets_item *items = malloc(n * sizeof(*items));
    if (items == NULL) {
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < n; i++) {
        items[i] = (struct offsets_item){og->entries[i].topic, og->entries[i].partition, -1};
    }
    int rc = offsets_commit(&d->s->offsets, &d->c, d->group, items, n, delete_done, NULL);
    free(items);
    return rc == 0 ? 1 : rc;
}

static void delete_done(struct offsets_commit *c, int rc)
{
    struct group_delete *d = (struct group_delete *)c;
    rc = rc == 0 ? delete_next(d) : rc; /* the next chunk, until none is left */
    if (rc == 1) {
        return;
    }
    if (rc == 0) {
        log_info("group %s: deleted", d->group);
    } else {
        log_error("group %s: deleting its offsets: %s", d->group, err_str(rc));
    }
    d->done(d->arg, rc);
    free(d);
}

int groups_delete(struct server *s, const char *group, groups_delete_fn done, void *arg)
{
    if (groups_active(s, group) || kafka_groups_active(s, group)) {
        return -NG_EGROUP_NOT_EMPTY;
    }
    const struct offsets_group *og = offsets_group_find(&s->offsets, group);
    if (og == NULL || og->count == 0) {
        return -NG_ENOTFOUND;
    }
    struct group_delete *d = calloc(1, sizeof(*d));
    if (d == NULL) {
        return -ENOMEM;
    }
    *d = (struct group_delete){.s = s, .done = done, .arg = arg};
    memcpy(d->group, group, strlen(group) + 1);
    int rc = delete_next(d);
    if (rc != 1) {
        free(d);
        return rc != 0 ? rc : -NG_ENOTFOUND;
    }
    return 0;
}

static void delete_answer(void *arg, int rc)
{
    struct offsets_job *j = arg;
    j->err = rc;
    job_answer(j);
}

void handle_delete_group(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                         struct rd *body)
{
    struct proto_str group;
    int rc = proto_delete_group_req_decode(body, h->api_version, &group);
    struct offsets_job *j = rc == 0 ? job_new(s, req, h, 0) : NULL;
    if (j == NULL) {
        server_resp_error(req, h->correlation_id, rc != 0 ? rc : -ENOMEM);
        return;
    }
    j->err = group_id_copy(group, j->group);
    j->err = j->err == 0 ? groups_delete(s, j->group, delete_answer, j) : j->err;
    if (j->err != 0) {
        job_answer(j); /* else by delete_answer() once durable */
    }
}

/* ---- ResetOffsets ---- */

/* Partitions a reset writes: those listed, or every partition of a topic
 * given with none (one error entry for a topic that does not exist). */
static uint64_t count_reset_parts(struct server *s, struct proto_dec d)
{
    uint64_t n = 0;
    struct proto_topic t;
    while (proto_next_topic(&d, &t)) {
        const struct server_topic *st = server_topic_find(s, t.name);
        if (t.partition_count > 0) {
            n += (uint32_t)t.partition_count;
        } else {
            n += st != NULL ? (uint32_t)st->cfg.partitions : 1;
        }
    }
    return n;
}

/* Where a reset puts one partition; jp->err says when it cannot. */
static void reset_part(struct server_topic *st, const struct proto_reset_offsets_req *in,
                       struct job_part *jp)
{
    if (st == NULL || jp->partition < 0 || jp->partition >= st->cfg.partitions) {
        jp->err = -NG_EUNKNOWN_TOPIC;
        return;
    }
    struct part *log = &st->parts[jp->partition].log;
    int64_t earliest = part_offset_earliest(log);
    int64_t latest = part_offset_latest(log);
    switch (in->to) {
    case PROTO_RESET_EARLIEST:
        jp->offset = earliest;
        break;
    case PROTO_RESET_LATEST:
        jp->offset = latest;
        break;
    case PROTO_RESET_OFFSET: /* kept within what the log holds */
        jp->offset = in->value < earliest ? earliest : in->value > latest ? latest : in->value;
        break;
    default:
        ASSERT(in->to == PROTO_RESET_TIMESTAMP); /* the decoder refuses others */
        jp->err = part_offset_for_time(log, in->value, &jp->offset, NULL);
        if (jp->err == -NG_ENOTFOUND) {
            jp->offset = latest; /* no record that recent: the end */
            jp->err = 0;
        }
        break;
    }
    jp->written = jp->err == 0;
}

static void reset_fill(struct server *s, struct offsets_job *j,
                       const struct proto_reset_offsets_req *in, struct proto_dec d)
{
    struct proto_topic t;
    uint32_t i = 0;
    while (proto_next_topic(&d, &t)) {
        struct server_topic *st = server_topic_find(s, t.name);
        int32_t count = t.partition_count > 0 ? t.partition_count
                        : st != NULL          ? st->cfg.partitions
                                              : 1;
        for (int32_t k = 0; k < count; k++) {
            int32_t p = -1;
            if (t.partition_count > 0) {
                bool more = proto_next_partition_index(&d, &p);
                ASSERT(more);
            } else if (st != NULL) {
                p = k;
            }
            struct job_part *jp = &j->parts[i++];
            *jp = (struct job_part){.topic = t.name,
                                    .partition = p,
                                    .offset = -1,
                                    .name = st != NULL ? st->name : NULL};
            reset_part(st, in, jp);
        }
    }
    ASSERT(i == j->part_count);
}

void handle_reset_offsets(struct server *s, struct loop_req *req, const struct proto_req_header *h,
                          struct rd *body)
{
    struct proto_reset_offsets_req in;
    struct proto_dec d;
    int rc = proto_reset_offsets_req_decode(body, h->api_version, &in, &d);
    uint64_t count = rc == 0 ? count_reset_parts(s, d) : 0;
    /* One durable commit holds them all; a bigger reset is refused before
     * anything is sized for it. */
    bool too_many = count > OFFSETS_COMMIT_ITEMS_MAX;
    struct offsets_job *j = rc == 0 ? job_new(s, req, h, too_many ? 0 : (uint32_t)count) : NULL;
    if (j == NULL) {
        server_resp_error(req, h->correlation_id, rc != 0 ? rc : -ENOMEM);
        return;
    }
    j->err = group_id_copy(in.group, j->group);
    if (j->err == 0 && group_find(s, j->group) != NULL) {
        j->err = -NG_EGROUP_NOT_EMPTY;
    }
    j->err = j->err == 0 && too_many ? -NG_ETOOBIG : j->err;
    if (j->err != 0) {
        j->part_count = 0; /* the answer lists no partitions */
        job_answer(j);
        return;
    }
    reset_fill(s, j, &in, d);
    job_start(j);
}
