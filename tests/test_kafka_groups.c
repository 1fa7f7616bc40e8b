/*
 * tests/test_kafka_groups.c — Kafka's group APIs on a real nagared's Kafka
 * listener (broker/kafka_groups.c): the join barrier, the leader's
 * assignment, heartbeats, commits and their reading back, listing and
 * describing, and one group per name whichever protocol its members speak.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "net/kafka/codec.h"
#include "net/kafka/errors.h"
#include "tests/broker_support.h"
#include "tests/kafka_client_support.h"

static struct bk B;

static void setup(void) { bk_init(&B); }

static void teardown(void)
{
    bk_stop(&B);
    bk_fini(&B);
}

TestSuite(kafka_groups, .init = setup, .fini = teardown, .timeout = 120);

#define TOPIC "events"
#define JOIN_V 4 /* the member id comes first (KIP-394) */
#define SESSION_MS 30000

struct kmember {
    struct kc c;
    char id[256];
    int32_t generation;
};

static struct kw_str str_of(const char *s) { return kw_str_make(s); }

static bool str_is(struct kw_str s, const char *c) { return kw_str_eq(s, c); }

static void copy_str(char *out, size_t cap, struct kw_str s)
{
    cr_assert(s.len >= 0 && (size_t)s.len < cap);
    memcpy(out, s.ptr, (size_t)s.len);
    out[s.len] = '\0';
}

static void join_send(struct kmember *m, const char *group, const char *metadata)
{
    struct kafka_join_group_request_protocol ps[2] = {
        {.name = str_of("range"),
         .metadata = {(const uint8_t *)metadata, (int32_t)strlen(metadata)}},
        {.name = str_of("roundrobin"),
         .metadata = {(const uint8_t *)metadata, (int32_t)strlen(metadata)}},
    };
    struct kafka_join_group_request r;
    kafka_join_group_request_init(&r);
    r.group_id = str_of(group);
    r.session_timeout_ms = SESSION_MS;
    r.rebalance_timeout_ms = 60000;
    r.member_id = str_of(m->id);
    r.protocol_type = str_of("consumer");
    r.protocols.items = ps;
    r.protocols.count = 2;
    kc_send(&m->c, KAFKA_API_JOIN_GROUP, JOIN_V, &kafka_join_group_request_msg, &r);
}

static void join_recv(struct kmember *m, struct kafka_join_group_response *out)
{
    cr_assert(kc_recv(&m->c, KAFKA_API_JOIN_GROUP, JOIN_V, &kafka_join_group_response_msg, out));
    if (out->error_code == KAFKA_ERR_NONE) {
        m->generation = out->generation_id;
    }
}

/* A new member of group: the broker gives it its id first. */
static void member_new(struct kmember *m, const char *group, const char *metadata)
{
    memset(m, 0, sizeof(*m));
    kc_connect(&m->c, B.kafka_port);
    struct kafka_join_group_response out;
    join_send(m, group, metadata);
    join_recv(m, &out);
    cr_assert_eq(out.error_code, KAFKA_ERR_MEMBER_ID_REQUIRED);
    cr_assert_gt(out.member_id.len, 0, "the id to join again with");
    copy_str(m->id, sizeof(m->id), out.member_id);
}

static void sync_send(struct kmember *m, const char *group,
                      const struct kafka_sync_group_request_assignment *as, int32_t n)
{
    struct kafka_sync_group_request r;
    kafka_sync_group_request_init(&r);
    r.group_id = str_of(group);
    r.generation_id = m->generation;
    r.member_id = str_of(m->id);
    r.assignments.items = (struct kafka_sync_group_request_assignment *)as;
    r.assignments.count = n;
    kc_send(&m->c, KAFKA_API_SYNC_GROUP, 2, &kafka_sync_group_request_msg, &r);
}

static void sync_recv(struct kmember *m, const char *want)
{
    struct kafka_sync_group_response out;
    cr_assert(kc_recv(&m->c, KAFKA_API_SYNC_GROUP, 2, &kafka_sync_group_response_msg, &out));
    cr_assert_eq(out.error_code, KAFKA_ERR_NONE);
    cr_assert_eq(out.assignment.len, (int32_t)strlen(want));
    cr_assert_eq(memcmp(out.assignment.ptr, want, strlen(want)), 0);
}

/* A new member of group alone: joined and given assignment by itself. */
static void member_alone(struct kmember *m, const char *group, const char *metadata,
                         const char *assignment)
{
    member_new(m, group, metadata);
    join_send(m, group, metadata);
    struct kafka_join_group_response j;
    join_recv(m, &j);
    cr_assert_eq(j.error_code, KAFKA_ERR_NONE);
    struct kafka_sync_group_request_assignment as = {
        .member_id = str_of(m->id),
        .assignment = {(const uint8_t *)assignment, (int32_t)strlen(assignment)}};
    sync_send(m, group, &as, 1);
    sync_recv(m, assignment);
}

static int16_t heartbeat(struct kmember *m, const char *group)
{
    struct kafka_heartbeat_request r;
    kafka_heartbeat_request_init(&r);
    r.group_id = str_of(group);
    r.generation_id = m->generation;
    r.member_id = str_of(m->id);
    struct kafka_heartbeat_response out;
    kc_call(&m->c, KAFKA_API_HEARTBEAT, 2, &kafka_heartbeat_request_msg, &r,
            &kafka_heartbeat_response_msg, &out);
    return out.error_code;
}

/* OffsetCommit v2 of one partition; its error. */
static int16_t commit(struct kc *c, const char *group, int32_t generation, const char *member,
                      const char *topic, int32_t partition, int64_t offset)
{
    struct kafka_offset_commit_request_partition p = {.partition_index = partition,
                                                      .committed_offset = offset,
                                                      .committed_leader_epoch = -1,
                                                      .committed_metadata = str_of("")};
    struct kafka_offset_commit_request_topic t = {.name = str_of(topic), .partitions = {&p, 1}};
    struct kafka_offset_commit_request r;
    kafka_offset_commit_request_init(&r);
    r.group_id = str_of(group);
    r.generation_id_or_member_epoch = generation;
    r.member_id = str_of(member);
    r.topics.items = &t;
    r.topics.count = 1;
    struct kafka_offset_commit_response out;
    kc_call(c, KAFKA_API_OFFSET_COMMIT, 2, &kafka_offset_commit_request_msg, &r,
            &kafka_offset_commit_response_msg, &out);
    cr_assert_eq(out.topics.count, 1);
    cr_assert(str_is(out.topics.items[0].name, topic));
    cr_assert_eq(out.topics.items[0].partitions.count, 1);
    cr_assert_eq(out.topics.items[0].partitions.items[0].partition_index, partition);
    return out.topics.items[0].partitions.items[0].error_code;
}

/* OffsetFetch v1 of partitions 0 and 1 of topic: their offsets. */
static void fetch_offsets(struct kc *c, const char *group, const char *topic, int64_t out2[2])
{
    int32_t parts[2] = {0, 1};
    struct kafka_offset_fetch_request_topic t = {.name = str_of(topic),
                                                 .partition_indexes = {parts, 2}};
    struct kafka_offset_fetch_request r;
    kafka_offset_fetch_request_init(&r);
    r.group_id = str_of(group);
    r.topics.items = &t;
    r.topics.count = 1;
    struct kafka_offset_fetch_response out;
    kc_call(c, KAFKA_API_OFFSET_FETCH, 1, &kafka_offset_fetch_request_msg, &r,
            &kafka_offset_fetch_response_msg, &out);
    cr_assert_eq(out.topics.count, 1);
    cr_assert_eq(out.topics.items[0].partitions.count, 2);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(out.topics.items[0].partitions.items[i].partition_index, i);
        cr_assert_eq(out.topics.items[0].partitions.items[i].error_code, KAFKA_ERR_NONE);
        out2[i] = out.topics.items[0].partitions.items[i].committed_offset;
    }
}

static void topic_create(void)
{
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(rq_create(&c, TOPIC, 2), 0);
    cl_close(&c);
}

Test(kafka_groups, the_coordinator_is_this_brokers_kafka_listener)
{
    bk_start(&B);
    struct kc c;
    kc_connect(&c, B.kafka_port);
    struct kafka_find_coordinator_request r;
    kafka_find_coordinator_request_init(&r);
    r.key = str_of("g");
    struct kafka_find_coordinator_response out;
    kc_call(&c, KAFKA_API_FIND_COORDINATOR, 2, &kafka_find_coordinator_request_msg, &r,
            &kafka_find_coordinator_response_msg, &out);
    cr_assert_eq(out.error_code, KAFKA_ERR_NONE);
    cr_assert_eq(out.node_id, 0);
    cr_assert(str_is(out.host, "127.0.0.1"));
    cr_assert_eq(out.port, B.kafka_port);
    struct kw_str keys[2] = {str_of("a"), str_of("b")};
    r.coordinator_keys.items = keys;
    r.coordinator_keys.count = 2;
    kc_call(&c, KAFKA_API_FIND_COORDINATOR, 4, &kafka_find_coordinator_request_msg, &r,
            &kafka_find_coordinator_response_msg, &out);
    cr_assert_eq(out.coordinators.count, 2, "one answer per key (v4)");
    cr_assert(str_is(out.coordinators.items[1].key, "b"));
    cr_assert_eq(out.coordinators.items[1].port, B.kafka_port);
    kc_close(&c);
}

Test(kafka_groups, two_members_join_and_each_gets_its_part_of_the_leaders_assignment)
{
    bk_start(&B);
    topic_create();
    struct kmember a, b;
    member_new(&a, "g1", "meta-a");
    member_new(&b, "g1", "meta-b");
    /* Both join; the barrier answers both once both are in. */
    join_send(&a, "g1", "meta-a");
    join_send(&b, "g1", "meta-b");
    struct kafka_join_group_response ja, jb;
    join_recv(&a, &ja);
    cr_assert_eq(ja.error_code, KAFKA_ERR_NONE);
    cr_assert_eq(ja.generation_id, 1);
    cr_assert(str_is(ja.protocol_name, "range"));
    cr_assert(str_is(ja.leader, a.id), "the first to join leads");
    cr_assert_eq(ja.members.count, 2, "the leader gets every member's metadata");
    bool saw_b = false;
    for (int32_t i = 0; i < ja.members.count; i++) {
        if (str_is(ja.members.items[i].member_id, b.id)) {
            saw_b = ja.members.items[i].metadata.len == 6 &&
                    memcmp(ja.members.items[i].metadata.ptr, "meta-b", 6) == 0;
        }
    }
    cr_assert(saw_b, "B's metadata for the chosen assignor");
    join_recv(&b, &jb);
    cr_assert_eq(jb.error_code, KAFKA_ERR_NONE);
    cr_assert_eq(jb.generation_id, 1);
    cr_assert_eq(jb.members.count, 0, "a follower gets no member list");

    sync_send(&b, "g1", NULL, 0);
    struct kafka_sync_group_request_assignment as[2] = {
        {.member_id = str_of(a.id), .assignment = {(const uint8_t *)"part-0", 6}},
        {.member_id = str_of(b.id), .assignment = {(const uint8_t *)"part-1", 6}},
    };
    sync_send(&a, "g1", as, 2);
    sync_recv(&a, "part-0");
    sync_recv(&b, "part-1");
    cr_assert_eq(heartbeat(&a, "g1"), KAFKA_ERR_NONE);
    cr_assert_eq(heartbeat(&b, "g1"), KAFKA_ERR_NONE);

    /* B leaves: A learns of the rebalance from its next heartbeat. */
    struct kafka_leave_group_request lr;
    kafka_leave_group_request_init(&lr);
    lr.group_id = str_of("g1");
    lr.member_id = str_of(b.id);
    struct kafka_leave_group_response lo;
    kc_call(&b.c, KAFKA_API_LEAVE_GROUP, 1, &kafka_leave_group_request_msg, &lr,
            &kafka_leave_group_response_msg, &lo);
    cr_assert_eq(lo.error_code, KAFKA_ERR_NONE);
    cr_assert_eq(heartbeat(&a, "g1"), KAFKA_ERR_REBALANCE_IN_PROGRESS);
    join_send(&a, "g1", "meta-a");
    join_recv(&a, &ja);
    cr_assert_eq(ja.generation_id, 2);
    cr_assert_eq(ja.members.count, 1);
    kc_close(&a.c);
    kc_close(&b.c);
}

/* kafka_group_initial_delay_ms = 0: the first member is answered on its
 * own, before the second comes (whose join was sent after the first one's:
 * the broker reads them in that order), and the second's join makes the
 * next generation. With the default 3 s both land in generation 1 (the
 * test above). */
Test(kafka_groups, with_no_initial_delay_the_first_member_is_answered_alone)
{
    bk_set(&B, "kafka_group_initial_delay_ms=0");
    bk_start(&B);
    topic_create();
    struct kmember a, b;
    member_new(&a, "g0", "meta-a");
    join_send(&a, "g0", "meta-a");
    member_new(&b, "g0", "meta-b");
    join_send(&b, "g0", "meta-b");
    struct kafka_join_group_response ja, jb;
    join_recv(&a, &ja);
    cr_assert_eq(ja.error_code, KAFKA_ERR_NONE);
    cr_assert_eq(ja.generation_id, 1);
    cr_assert_eq(ja.members.count, 1, "answered before B joined");
    /* B's join opened the next rebalance: A joins it again, and both are in */
    join_send(&a, "g0", "meta-a");
    join_recv(&a, &ja);
    join_recv(&b, &jb);
    cr_assert_eq(ja.error_code, KAFKA_ERR_NONE);
    cr_assert_eq(jb.error_code, KAFKA_ERR_NONE);
    cr_assert_eq(ja.generation_id, 2);
    cr_assert_eq(jb.generation_id, 2);
    cr_assert_eq(ja.members.count, 2);
    kc_close(&a.c);
    kc_close(&b.c);
}

Test(kafka_groups, members_commit_at_their_generation_and_read_their_offsets_back)
{
    bk_start(&B);
    topic_create();
    struct kmember a;
    member_alone(&a, "g2", "m", "all");

    cr_assert_eq(commit(&a.c, "g2", a.generation, a.id, TOPIC, 0, 42), KAFKA_ERR_NONE);
    cr_assert_eq(commit(&a.c, "g2", a.generation + 1, a.id, TOPIC, 1, 7),
                 KAFKA_ERR_ILLEGAL_GENERATION);
    cr_assert_eq(commit(&a.c, "g2", -1, "", TOPIC, 1, 7), KAFKA_ERR_UNKNOWN_MEMBER_ID,
                 "not from outside a group with members");
    cr_assert_eq(commit(&a.c, "g2", a.generation, a.id, TOPIC, 9, 7),
                 KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION);
    int64_t offs[2];
    fetch_offsets(&a.c, "g2", TOPIC, offs);
    cr_assert_eq(offs[0], 42);
    cr_assert_eq(offs[1], -1, "nothing committed");

    /* The offsets survive a restart, and a group with no members takes
     * commits from outside it (Kafka's tools, simple consumers). */
    kc_close(&a.c);
    bk_stop(&B);
    bk_start(&B);
    struct kc c;
    kc_connect(&c, B.kafka_port);
    fetch_offsets(&c, "g2", TOPIC, offs);
    cr_assert_eq(offs[0], 42);
    cr_assert_eq(commit(&c, "g2", -1, "", TOPIC, 1, 5), KAFKA_ERR_NONE);
    fetch_offsets(&c, "g2", TOPIC, offs);
    cr_assert_eq(offs[1], 5);
    kc_close(&c);
}

/* Kafka takes a negative offset in a commit: KafkaJS's admin resetOffsets
 * commits -2 (earliest) or -1 (latest) for a group with no members, and
 * its consumer's seek() commits the offset sought, -2 or -1 too. */
Test(kafka_groups, a_negative_commit_is_taken_and_reads_back_as_none)
{
    bk_start(&B);
    topic_create();
    struct kc c;
    kc_connect(&c, B.kafka_port);
    cr_assert_eq(commit(&c, "reset", -1, "", TOPIC, 0, 13), KAFKA_ERR_NONE);
    cr_assert_eq(commit(&c, "reset", -1, "", TOPIC, 1, 4), KAFKA_ERR_NONE);
    cr_assert_eq(commit(&c, "reset", -1, "", TOPIC, 0, -2), KAFKA_ERR_NONE, "earliest");
    int64_t offs[2];
    fetch_offsets(&c, "reset", TOPIC, offs);
    cr_assert_eq(offs[0], -1, "none: the client resets by its own policy");
    cr_assert_eq(offs[1], 4);

    /* A member's, at its generation, too; and it outlives a restart. */
    struct kmember a;
    member_alone(&a, "reset", "m", "all");
    cr_assert_eq(commit(&a.c, "reset", a.generation, a.id, TOPIC, 1, -1), KAFKA_ERR_NONE, "latest");
    kc_close(&a.c);
    kc_close(&c);
    bk_stop(&B);
    bk_start(&B);
    kc_connect(&c, B.kafka_port);
    fetch_offsets(&c, "reset", TOPIC, offs);
    cr_assert_eq(offs[0], -1);
    cr_assert_eq(offs[1], -1);
    kc_close(&c);
}

Test(kafka_groups, groups_are_listed_and_described_with_their_members)
{
    bk_start(&B);
    topic_create();
    struct kmember a;
    member_alone(&a, "g3", "sub", "asg");
    cr_assert_eq(commit(&a.c, "g3", a.generation, a.id, TOPIC, 0, 1), KAFKA_ERR_NONE);
    cr_assert_eq(commit(&a.c, "idle", -1, "", TOPIC, 0, 3), KAFKA_ERR_NONE);

    struct kafka_list_groups_request lr;
    kafka_list_groups_request_init(&lr);
    struct kafka_list_groups_response lo;
    kc_call(&a.c, KAFKA_API_LIST_GROUPS, 4, &kafka_list_groups_request_msg, &lr,
            &kafka_list_groups_response_msg, &lo);
    cr_assert_eq(lo.error_code, KAFKA_ERR_NONE);
    int found = 0;
    for (int32_t i = 0; i < lo.groups.count; i++) {
        const struct kafka_list_groups_response_listed_group *g = &lo.groups.items[i];
        if (str_is(g->group_id, "g3")) {
            cr_assert(str_is(g->protocol_type, "consumer"));
            cr_assert(str_is(g->group_state, "Stable"));
            found++;
        }
        if (str_is(g->group_id, "idle")) {
            cr_assert(str_is(g->group_state, "Empty"), "offsets only");
            found++;
        }
    }
    cr_assert_eq(found, 2);

    struct kw_str names[2] = {str_of("g3"), str_of("nobody")};
    struct kafka_describe_groups_request dr;
    kafka_describe_groups_request_init(&dr);
    dr.groups.items = names;
    dr.groups.count = 2;
    struct kafka_describe_groups_response d;
    kc_call(&a.c, KAFKA_API_DESCRIBE_GROUPS, 4, &kafka_describe_groups_request_msg, &dr,
            &kafka_describe_groups_response_msg, &d);
    cr_assert_eq(d.groups.count, 2);
    const struct kafka_describe_groups_response_described_group *g = &d.groups.items[0];
    cr_assert_eq(g->error_code, KAFKA_ERR_NONE);
    cr_assert(str_is(g->group_state, "Stable"));
    cr_assert(str_is(g->protocol_data, "range"));
    cr_assert_eq(g->members.count, 1);
    cr_assert(str_is(g->members.items[0].member_id, a.id));
    cr_assert(str_is(g->members.items[0].client_id, "nagare-test"));
    cr_assert(str_is(g->members.items[0].client_host, "/127.0.0.1"));
    cr_assert_eq(g->members.items[0].member_assignment.len, 3);
    cr_assert(str_is(d.groups.items[1].group_state, "Dead"), "Kafka's word for no such group");
    kc_close(&a.c);
}

Test(kafka_groups, one_group_name_is_one_group_whichever_protocol_its_members_speak)
{
    bk_start(&B);
    topic_create();
    struct kmember a;
    member_alone(&a, "shared", "m", "all");
    /* A nagare consumer joining the same group is refused. */
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    uint32_t corr = cl_next_corr(&c);
    struct proto_enc e;
    struct proto_join_group_req req = {proto_str_make("shared"), proto_str_make(""), 10000};
    proto_join_group_req_begin(&e, cl_wr(&c), 0, corr, proto_str_make("t"), &req);
    proto_enc_topic(&e, proto_str_make(TOPIC));
    cr_assert_eq(proto_enc_end(&e), 0);
    cr_assert_eq(cl_send_wr(&c), 0);
    struct proto_resp_header h;
    struct rd body;
    cr_assert_eq(cl_recv(&c, &h, &body), 0);
    struct proto_join_group_resp out;
    cr_assert_eq(proto_join_group_resp_decode(&body, 0, &out), 0);
    cr_assert_eq(out.err, -NG_EINCONSISTENT_PROTOCOL);
    cl_close(&c);
    kc_close(&a.c);
}

Test(kafka_groups, an_empty_group_is_deleted_with_its_offsets_and_one_with_members_is_not)
{
    bk_start(&B);
    topic_create();
    struct kmember a;
    member_alone(&a, "busy", "m", "all");
    cr_assert_eq(commit(&a.c, "done", -1, "", TOPIC, 0, 11), KAFKA_ERR_NONE);
    cr_assert_eq(commit(&a.c, "done", -1, "", TOPIC, 1, 12), KAFKA_ERR_NONE);

    struct kw_str names[3] = {str_of("done"), str_of("busy"), str_of("never")};
    struct kafka_delete_groups_request r;
    kafka_delete_groups_request_init(&r);
    r.groups_names.items = names;
    r.groups_names.count = 3;
    struct kafka_delete_groups_response out;
    kc_call(&a.c, KAFKA_API_DELETE_GROUPS, 1, &kafka_delete_groups_request_msg, &r,
            &kafka_delete_groups_response_msg, &out);
    cr_assert_eq(out.results.count, 3);
    cr_assert(str_is(out.results.items[0].group_id, "done"));
    cr_assert_eq(out.results.items[0].error_code, KAFKA_ERR_NONE);
    cr_assert_eq(out.results.items[1].error_code, KAFKA_ERR_NON_EMPTY_GROUP);
    cr_assert_eq(out.results.items[2].error_code, KAFKA_ERR_GROUP_ID_NOT_FOUND);
    int64_t offs[2];
    fetch_offsets(&a.c, "done", TOPIC, offs);
    cr_assert_eq(offs[0], -1, "its offsets are gone");
    cr_assert_eq(offs[1], -1);

    /* And so is the group: not listed, described as Kafka's no such group. */
    struct kafka_list_groups_request lr;
    kafka_list_groups_request_init(&lr);
    struct kafka_list_groups_response lo;
    kc_call(&a.c, KAFKA_API_LIST_GROUPS, 4, &kafka_list_groups_request_msg, &lr,
            &kafka_list_groups_response_msg, &lo);
    for (int32_t i = 0; i < lo.groups.count; i++) {
        cr_assert(!str_is(lo.groups.items[i].group_id, "done"), "a deleted group listed");
    }
    struct kafka_describe_groups_request dr;
    kafka_describe_groups_request_init(&dr);
    dr.groups.items = names;
    dr.groups.count = 1;
    struct kafka_describe_groups_response d;
    kc_call(&a.c, KAFKA_API_DESCRIBE_GROUPS, 4, &kafka_describe_groups_request_msg, &dr,
            &kafka_describe_groups_response_msg, &d);
    cr_assert_eq(d.groups.count, 1);
    cr_assert(str_is(d.groups.items[0].group_state, "Dead"));
    kc_close(&a.c);
}

/* JoinGroup v7 of a static member (group.instance.id), alone in group. */
static void static_join(struct kmember *m, const char *group, const char *instance,
                        struct kafka_join_group_response *out)
{
    struct kafka_join_group_request_protocol p = {.name = str_of("range"),
                                                  .metadata = {(const uint8_t *)"m", 1}};
    struct kafka_join_group_request r;
    kafka_join_group_request_init(&r);
    r.group_id = str_of(group);
    r.session_timeout_ms = SESSION_MS;
    r.rebalance_timeout_ms = 60000;
    r.member_id = str_of(m->id);
    r.group_instance_id = str_of(instance);
    r.protocol_type = str_of("consumer");
    r.protocols.items = &p;
    r.protocols.count = 1;
    kc_call(&m->c, KAFKA_API_JOIN_GROUP, 7, &kafka_join_group_request_msg, &r,
            &kafka_join_group_response_msg, out);
    if (out->error_code == KAFKA_ERR_NONE) {
        copy_str(m->id, sizeof(m->id), out->member_id);
        m->generation = out->generation_id;
    }
}

Test(kafka_groups, a_static_member_back_under_a_new_id_fences_its_old_one)
{
    bk_start(&B);
    topic_create();
    struct kmember a = {0};
    kc_connect(&a.c, B.kafka_port);
    struct kafka_join_group_response ja;
    static_join(&a, "static", "instance-1", &ja);
    cr_assert_eq(ja.error_code, KAFKA_ERR_NONE, "a static member is given its id at once");
    cr_assert(str_is(ja.protocol_type, "consumer"), "v7 names the protocol type");
    cr_assert_eq(ja.members.count, 1);
    cr_assert(str_is(ja.members.items[0].group_instance_id, "instance-1"));
    char old_id[sizeof(a.id)];
    strcpy(old_id, a.id);

    /* Restarted: a new connection, no member id, the same instance. */
    struct kmember again = {0};
    kc_connect(&again.c, B.kafka_port);
    static_join(&again, "static", "instance-1", &ja);
    cr_assert_eq(ja.error_code, KAFKA_ERR_NONE);
    cr_assert_str_neq(again.id, old_id);

    struct kafka_heartbeat_request hr;
    kafka_heartbeat_request_init(&hr);
    hr.group_id = str_of("static");
    hr.generation_id = a.generation;
    hr.member_id = str_of(old_id);
    hr.group_instance_id = str_of("instance-1");
    struct kafka_heartbeat_response ho;
    kc_call(&a.c, KAFKA_API_HEARTBEAT, 3, &kafka_heartbeat_request_msg, &hr,
            &kafka_heartbeat_response_msg, &ho);
    cr_assert_eq(ho.error_code, KAFKA_ERR_FENCED_INSTANCE_ID);

    /* v3+ leaves a batch, each member answered on its own. */
    struct kafka_leave_group_request_member_identity ms[2] = {
        {.member_id = str_of(""), .group_instance_id = str_of("instance-1")},
        {.member_id = str_of("nobody"), .group_instance_id = KW_STR_NULL},
    };
    struct kafka_leave_group_request lr;
    kafka_leave_group_request_init(&lr);
    lr.group_id = str_of("static");
    lr.members.items = ms;
    lr.members.count = 2;
    struct kafka_leave_group_response lo;
    kc_call(&again.c, KAFKA_API_LEAVE_GROUP, 3, &kafka_leave_group_request_msg, &lr,
            &kafka_leave_group_response_msg, &lo);
    cr_assert_eq(lo.error_code, KAFKA_ERR_NONE);
    cr_assert_eq(lo.members.count, 2);
    cr_assert_eq(lo.members.items[0].error_code, KAFKA_ERR_NONE, "left by its instance id");
    cr_assert_eq(lo.members.items[1].error_code, KAFKA_ERR_UNKNOWN_MEMBER_ID);
    kc_close(&a.c);
    kc_close(&again.c);
}
