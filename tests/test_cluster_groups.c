/*
 * tests/test_cluster_groups.c — consumer groups in a cluster of three
 * brokers (docs/cluster.md, section 5): the coordinator of a group is the
 * leader of __offsets/0, other brokers answer NOT_COORDINATOR, and a
 * group's commits survive kill -9 of its coordinator. Skipped, saying why,
 * when the machine cannot run a cluster (cs_need_cluster()).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <poll.h>

#include "base/clock.h"
#include "base/err.h"
#include "net/proto.h"
#include "client/nagare.h"
#include "tests/broker_support.h"
#include "tests/cluster_support.h"

#define TOPIC "g"
#define GROUP "gc"
#define RECORDS 100
#define COMMITTED 40
/* Bounds that only turn a hang into a failure. */
#define SETUP_TIMEOUT_MS 60000
#define READ_TIMEOUT_MS 120000

static struct cluster C;
/* What the rebalance callback saw: the start offset of the last
 * assignment of the partition, and the offsets read since (reset there). */
static int64_t assigned_at = -1;
static bool seen[RECORDS + 10];

static void on_rebalance(nagare_consumer *c, const struct nagare_topic_partition *revoked,
                         size_t revoked_count, const struct nagare_topic_partition *assigned,
                         size_t assigned_count, void *opaque)
{
    (void)c;
    (void)revoked;
    (void)revoked_count;
    (void)opaque;
    if (assigned_count > 0) {
        assigned_at = assigned[0].offset;
        memset(seen, 0, sizeof(seen));
    }
}

static void teardown(void) { cs_fini(&C); }

/* A cluster of three brokers (replication factor 3, min in-sync 2, and
 * setting, when not NULL) and the topic TOPIC (one partition) on it. */
static void cluster_up_with(const char *setting)
{
    cs_need_cluster();
    cs_init(&C, 3);
    cs_set(&C, "default_replication_factor=3");
    cs_set(&C, "min_insync_replicas=2");
    if (setting != NULL) {
        cs_set(&C, setting);
    }
    cs_start(&C);
    struct nagare_topic_config cfg;
    nagare_topic_config_default(&cfg);
    cfg.partitions = 1;
    cs_topic_create(&C, C.bootstrap, TOPIC, &cfg, NULL, SETUP_TIMEOUT_MS);
}

static void cluster_up(void) { cluster_up_with(NULL); }

/* Writes values from..to-1 (their decimal text), acks=all. */
static void produce(int from, int to)
{
    struct nagare_producer_config cfg;
    nagare_producer_config_default(&cfg);
    cfg.bootstrap = C.bootstrap;
    nagare_producer *p;
    cr_assert_eq(nagare_producer_new(&cfg, &p), 0);
    for (int i = from; i < to; i++) {
        char v[16];
        int n = snprintf(v, sizeof(v), "%d", i);
        struct nagare_record r = {
            .topic = TOPIC, .partition = 0, .key_len = -1, .value = v, .value_len = n};
        cr_assert_eq(nagare_send(p, &r), 0);
    }
    int rc = nagare_producer_flush(p, READ_TIMEOUT_MS);
    cr_assert_eq(rc, 0, "flush: %s", nagare_strerror(rc));
    nagare_producer_destroy(p);
}

/* What the async commits' reports said: how many came, and the last
 * one's error and offset. */
static int commit_reports;
static int commit_err_last;
static int64_t commit_offset_last = -1;

static void on_commit(nagare_consumer *c, int err, const struct nagare_topic_partition *offsets,
                      size_t count, void *opaque)
{
    (void)c;
    (void)opaque;
    commit_reports++;
    commit_err_last = err;
    commit_offset_last = count > 0 ? offsets[0].offset : -1;
}

/* A member with request_timeout_ms (0: the default). */
static nagare_consumer *member_new_timeout(uint32_t request_timeout_ms)
{
    struct nagare_consumer_config cfg;
    nagare_consumer_config_default(&cfg);
    cfg.bootstrap = C.bootstrap;
    if (request_timeout_ms > 0) {
        cfg.request_timeout_ms = request_timeout_ms;
    }
    cfg.on_commit = on_commit;
    cfg.auto_commit = false;
    cfg.session_timeout_ms = 6000;
    cfg.on_rebalance = on_rebalance;
    nagare_consumer *c;
    cr_assert_eq(nagare_consumer_new(&cfg, &c), 0);
    const char *topics[] = {TOPIC};
    int rc = nagare_consumer_subscribe(c, GROUP, topics, 1);
    if (rc != 0) {
        cs_print_logs(&C, "no join");
    }
    cr_assert_eq(rc, 0, "subscribe: %s", nagare_strerror(rc));
    return c;
}

static nagare_consumer *member_new(void) { return member_new_timeout(0); }

/* Polls until offset `until` - 1 was returned; marks each offset seen.
 * Returns the first offset returned. */
static int64_t read_to(nagare_consumer *c, int64_t until)
{
    int64_t first = -1;
    int64_t deadline = clock_mono_ms() + READ_TIMEOUT_MS;
    while (!seen[until - 1]) {
        const struct nagare_message *m;
        int rc = nagare_consumer_poll(c, 200, &m);
        if (rc == 1) {
            cr_assert_lt(m->offset, RECORDS + 10);
            first = first < 0 ? m->offset : first;
            seen[m->offset] = true;
        }
        if (clock_mono_ms() >= deadline) {
            cs_print_logs(&C, "not read back");
            cr_assert_fail("offset %lld not read", (long long)until - 1);
        }
    }
    return first;
}

static int coordinator_index(void) { return cs_leader_index(C.bootstrap, PROTO_OFFSETS_TOPIC, 0); }

/* Commits synchronously, retrying while the group moves to its new
 * coordinator (the member joins there again first). */
static void commit_at(nagare_consumer *c)
{
    int64_t deadline = clock_mono_ms() + READ_TIMEOUT_MS;
    for (;;) {
        int rc = nagare_consumer_commit(c, false);
        if (rc == 0) {
            return;
        }
        cr_assert_lt(clock_mono_ms(), deadline, "commit: %s", nagare_strerror(rc));
        const struct nagare_message *m;
        if (nagare_consumer_poll(c, 200, &m) == 1) { /* rejoining: read again */
            seen[m->offset] = true;
        }
    }
}

Test(cluster_groups, commits_survive_kill9_of_the_coordinator, .fini = teardown, .timeout = 600)
{
    cluster_up();
    produce(0, RECORDS);
    nagare_consumer *c = member_new();
    cr_assert_eq(read_to(c, COMMITTED), 0);
    cr_assert_eq(assigned_at, 0);
    /* Where poll got to is what is committed: seek there first. */
    cr_assert_eq(nagare_consumer_seek(c, TOPIC, 0, COMMITTED), 0);
    int rc = nagare_consumer_commit(c, false);
    cr_assert_eq(rc, 0, "commit: %s", nagare_strerror(rc));
    int k = coordinator_index();
    cr_assert_geq(k, 0, "no leader of __offsets/0");
    cs_broker_kill(&C, (size_t)k);
    assigned_at = -1;

    /* The member finds the new coordinator, which does not know it: it
     * joins there again and is assigned the partition at the committed
     * offset, and reads on from there: nothing is skipped. */
    int64_t deadline = clock_mono_ms() + READ_TIMEOUT_MS;
    while (assigned_at < 0 || !seen[RECORDS - 1]) {
        const struct nagare_message *m;
        if (nagare_consumer_poll(c, 200, &m) == 1) {
            seen[m->offset] = true;
        }
        if (clock_mono_ms() >= deadline) {
            cs_print_logs(&C, "no new assignment");
            cr_assert_fail("no new assignment (%lld)", (long long)assigned_at);
        }
    }
    cr_assert_eq(assigned_at, COMMITTED);
    for (int i = COMMITTED; i < RECORDS; i++) {
        cr_assert(seen[i], "offset %d skipped", i);
    }
    cr_assert_eq(nagare_consumer_seek(c, TOPIC, 0, RECORDS), 0);
    commit_at(c);
    nagare_consumer_destroy(c);
    cr_assert_neq(coordinator_index(), k, "the dead broker still coordinates");

    /* A new member starts from what the new coordinator holds. */
    produce(RECORDS, RECORDS + 10);
    nagare_consumer *d = member_new();
    int64_t first = read_to(d, RECORDS + 10);
    if (first != RECORDS) {
        cs_print_logs(&C, "the new member did not start at the last commit");
    }
    cr_assert_eq(first, RECORDS, "the new member started at %lld", (long long)first);
    cr_assert_eq(assigned_at, RECORDS);
    nagare_consumer_destroy(d);
}

/* A broker that does not lead __offsets/0 answers the group apis
 * NOT_COORDINATOR (DescribeGroup here; ListGroups is answered by either
 * coordinator, test_cluster_share.c); the admin calls find the coordinator
 * through any broker. */
Test(cluster_groups, a_broker_not_coordinator_answers_so, .fini = teardown, .timeout = 300)
{
    cluster_up();
    nagare_consumer *c = member_new(); /* makes __offsets, finds its leader */
    nagare_consumer_destroy(c);
    int k = coordinator_index();
    cr_assert_geq(k, 0);
    for (size_t i = 0; i < 3; i++) {
        struct cl raw;
        cl_connect_host(&raw, C.b[i].host, C.b[i].port, 10000);
        uint32_t corr = cl_next_corr(&raw);
        cr_assert_eq(proto_describe_group_req_encode(cl_wr(&raw), 0, corr, proto_str_make("t"),
                                                     proto_str_make(GROUP)),
                     0);
        cr_assert_eq(cl_send_wr(&raw), 0);
        struct proto_resp_header h;
        struct rd body;
        cr_assert_eq(cl_recv(&raw, &h, &body), 0);
        cl_close(&raw);
        cr_assert_eq(h.err, (int)i == k ? 0 : -NG_ENOT_COORDINATOR, "broker %zu: %s", i,
                     err_str(h.err));

        nagare_admin *a;
        cr_assert_eq(nagare_admin_new(C.b[i].bootstrap, 5000, &a), 0);
        const struct nagare_group_listing *groups;
        size_t n = 0;
        int rc = nagare_groups_list(a, &groups, &n);
        cr_assert_eq(rc, 0, "list through broker %zu: %s", i, nagare_strerror(rc));
        nagare_groups_free(a, groups);
        /* the group left and never committed: the coordinator knows it not */
        const struct nagare_group_info *info;
        rc = nagare_group_describe(a, GROUP, &info);
        cr_assert_eq(rc, -NAGARE_ENOTFOUND, "describe through broker %zu: %s", i,
                     nagare_strerror(rc));
        nagare_admin_destroy(a);
    }
}

/* A commit at a coordinator that holds no replica of the topic: it knows
 * the topic from the cluster's catalog. "solo" (one partition, one
 * replica) lands on broker 1, as __offsets/0's preferred leader does;
 * broker 1 dies, and the new coordinator holds nothing of "solo". */
Test(cluster_groups, a_coordinator_without_the_topic_takes_its_commits, .fini = teardown,
     .timeout = 300)
{
    cluster_up();
    nagare_admin *a;
    cr_assert_eq(nagare_admin_new(C.bootstrap, 5000, &a), 0);
    struct nagare_topic_config cfg;
    nagare_topic_config_default(&cfg);
    cfg.partitions = 1;
    cfg.replication_factor = 1;
    int rc = nagare_topic_create(a, "solo", &cfg);
    cr_assert_eq(rc, 0, "create solo: %s", nagare_strerror(rc));
    nagare_admin_destroy(a);
    nagare_consumer *c = member_new(); /* makes __offsets */
    nagare_consumer_destroy(c);
    cs_broker_kill(&C, 0);
    int64_t deadline = clock_mono_ms() + READ_TIMEOUT_MS;
    int k;
    while ((k = coordinator_index()) <= 0) {
        cr_assert_lt(clock_mono_ms(), deadline, "no new coordinator");
        (void)poll(NULL, 0, 200);
    }
    /* an outside commit (null member id): the group has no members */
    struct cl raw;
    cl_connect_host(&raw, C.b[k].host, C.b[k].port, 10000);
    uint32_t corr = cl_next_corr(&raw);
    struct proto_enc e;
    struct proto_offset_commit_req req = {
        .group = proto_str_make(GROUP), .member_id = {.ptr = NULL, .len = -1}, .generation = -1};
    proto_offset_commit_req_begin(&e, cl_wr(&raw), 0, corr, proto_str_make("t"), &req);
    proto_enc_topic(&e, proto_str_make("solo"));
    proto_offset_commit_req_partition(
        &e, &(struct proto_offset_commit_req_partition){.partition = 0, .offset = 5});
    cr_assert_eq(proto_enc_end(&e), 0);
    cr_assert_eq(cl_send_wr(&raw), 0);
    struct proto_resp_header h;
    struct rd body;
    cr_assert_eq(cl_recv(&raw, &h, &body), 0);
    cr_assert_eq(h.err, 0, "%s", err_str(h.err));
    struct proto_dec d;
    cr_assert_eq(proto_offset_commit_resp_decode(&body, 0, &d), 0);
    struct proto_topic t;
    struct proto_partition_result r;
    cr_assert(proto_next_topic(&d, &t));
    cr_assert(proto_next_partition_result(&d, &r));
    cr_assert_eq(r.err, 0, "commit of solo/0 at broker %d: %s", k + 1, err_str(r.err));
    cl_close(&raw);
}

/* A cluster whose group coordinator leads no partition of TOPIC: TOPIC's
 * partition 0, which starts on the same broker as __offsets/0 (as every
 * partition 0 does), is moved to be led by another. So only the group's
 * requests wait at the coordinator when it is paused, not a fetch (whose
 * stall path gives up the same connection). Returns the coordinator's
 * index, and the two other brokers' addresses in live. */
static int cluster_up_coordinator_apart(char live[CS_BOOTSTRAP_BYTES])
{
    /* The move below ends with a preferred-leader election: every second
     * rather than every 30 s. */
    cluster_up_with("preferred_leader_check_ms=1000");
    nagare_consumer_destroy(member_new()); /* makes __offsets */
    int k = coordinator_index();
    cr_assert_geq(k, 0, "no leader of __offsets/0");
    nagare_admin *a;
    cr_assert_eq(nagare_admin_new(C.bootstrap, 30000, &a), 0);
    int32_t replicas[3] = {(k + 1) % 3 + 1, (k + 2) % 3 + 1, k + 1};
    int32_t partition = 0;
    int rc = nagare_partitions_reassign(a, TOPIC, &partition, 1, replicas, 3, NULL);
    cr_assert_eq(rc, 0, "reassign: %s", nagare_strerror(rc));
    nagare_admin_destroy(a);
    int64_t deadline = clock_mono_ms() + READ_TIMEOUT_MS;
    while (cs_leader_index(C.bootstrap, TOPIC, 0) != replicas[0] - 1 || coordinator_index() != k) {
        if (clock_mono_ms() >= deadline) {
            cs_print_logs(&C, "the partition did not move");
            cr_assert_fail("%s/0 led by %d, wanted %d (coordinator %d)", TOPIC,
                           cs_leader_index(C.bootstrap, TOPIC, 0) + 1, replicas[0],
                           coordinator_index() + 1);
        }
        (void)poll(NULL, 0, 200);
    }
    cs_bootstrap_without(&C, (size_t)k, live);
    return k;
}

/* The committed offset of GROUP on TOPIC/0 as the brokers of bootstrap
 * say: -1 when none. */
static int64_t committed_via(const char *bootstrap)
{
    nagare_admin *a;
    cr_assert_eq(nagare_admin_new(bootstrap, 10000, &a), 0);
    const struct nagare_group_info *info;
    int rc = nagare_group_describe(a, GROUP, &info);
    cr_assert_eq(rc, 0, "describe: %s", nagare_strerror(rc));
    int64_t committed = info->offset_count == 1 ? info->offsets[0].committed : -1;
    nagare_group_info_free(a, info);
    nagare_admin_destroy(a);
    return committed;
}

/* A member (request timeout 120 s) that read TOPIC to its end and
 * committed COMMITTED at coordinator k. */
static nagare_consumer *member_committed(int k)
{
    produce(0, RECORDS);
    nagare_consumer *c = member_new_timeout(120000);
    cr_assert_eq(read_to(c, COMMITTED), 0);
    cr_assert_eq(nagare_consumer_seek(c, TOPIC, 0, COMMITTED), 0);
    int rc = nagare_consumer_commit(c, false);
    cr_assert_eq(rc, 0, "commit: %s", nagare_strerror(rc));
    cr_assert_eq(coordinator_index(), k, "the coordinator moved meanwhile");
    return c;
}

/* The group coordinator SIGSTOPped (issue 13): its connections stay open
 * and it answers nothing, while the cluster makes another broker leader of
 * __offsets/0 once its lease runs out. TOPIC is led elsewhere
 * (cluster_up_coordinator_apart()). The member, whose requests would wait for
 * their timeout (120 s here), asks another broker who leads __offsets/0
 * once the coordinator has kept a heartbeat stall_ms past the long poll,
 * leaves the paused broker when the answer names another, joins at the
 * new coordinator and commits there, all before the paused broker
 * resumes. The commit is then read back from the new coordinator through
 * the two live brokers. */
Test(cluster_groups, a_paused_coordinator_is_left_for_its_successor, .fini = teardown,
     .timeout = 600)
{
    char live[CS_BOOTSTRAP_BYTES];
    int k = cluster_up_coordinator_apart(live);
    nagare_consumer *c = member_committed(k);
    cs_broker_pause(&C, (size_t)k);
    assigned_at = -1;

    /* Far below the request timeout: only leaving the paused broker makes it. */
    int64_t deadline = clock_mono_ms() + 60000;
    int rc;
    int sent = commit_reports;
    int64_t send_due = 0;
    while (commit_err_last != 0 || commit_offset_last != RECORDS) {
        const struct nagare_message *m;
        if (nagare_consumer_poll(c, 200, &m) == 1) {
            seen[m->offset] = true;
        }
        int64_t now = clock_mono_ms();
        if (assigned_at >= 0 && seen[RECORDS - 1] && sent == commit_reports && now >= send_due) {
            cr_assert_eq(nagare_consumer_seek(c, TOPIC, 0, RECORDS), 0);
            rc = nagare_consumer_commit(c, true);
            cr_assert_eq(rc, 0, "async commit: %s", nagare_strerror(rc));
            sent = commit_reports + 1;
            send_due = now + 500;
        }
        if (now >= deadline) {
            cs_print_logs(&C, "no commit at a new coordinator");
            cr_assert_fail("no commit of %d at a new coordinator in 60000 ms with the "
                           "coordinator, broker %d, paused (assigned at %lld, last report %s)",
                           RECORDS, k + 1, (long long)assigned_at,
                           nagare_strerror(commit_err_last));
        }
    }
    cr_assert_eq(assigned_at, COMMITTED);
    cr_assert(cs_broker_alive(&C, (size_t)k) && C.b[k].paused);
    int now_k = cs_leader_index(live, PROTO_OFFSETS_TOPIC, 0);
    cr_assert(now_k >= 0 && now_k != k, "coordinator %d, the paused one %d", now_k, k);
    cr_assert_eq(committed_via(live), RECORDS);
    cs_broker_resume(&C, (size_t)k);
    nagare_consumer_destroy(c);
}

/* As above, with a synchronous commit sent to the paused coordinator: it
 * returns -NAGARE_EDISCONNECTED once another broker names the new
 * coordinator (not after its 120 s timeout), and the member, joined there
 * again, commits there synchronously, all within 60 s. */
Test(cluster_groups, a_sync_commit_at_a_paused_coordinator_moves_on, .fini = teardown,
     .timeout = 600)
{
    char live[CS_BOOTSTRAP_BYTES];
    int k = cluster_up_coordinator_apart(live);
    nagare_consumer *c = member_committed(k);
    cs_broker_pause(&C, (size_t)k);
    assigned_at = -1;

    int64_t deadline = clock_mono_ms() + 60000;
    cr_assert_eq(nagare_consumer_seek(c, TOPIC, 0, RECORDS), 0);
    int rc = nagare_consumer_commit(c, false);
    cr_assert_eq(rc, -NAGARE_EDISCONNECTED, "commit at the paused coordinator: %s",
                 nagare_strerror(rc));
    cr_assert_lt(clock_mono_ms(), deadline, "the commit returned after 60000 ms");
    while (assigned_at < 0 || !seen[RECORDS - 1]) {
        const struct nagare_message *m;
        if (nagare_consumer_poll(c, 200, &m) == 1) {
            seen[m->offset] = true;
        }
        if (clock_mono_ms() >= deadline) {
            cs_print_logs(&C, "no new assignment");
            cr_assert_fail("not assigned again in 60000 ms with the coordinator, broker %d, "
                           "paused (assigned at %lld)",
                           k + 1, (long long)assigned_at);
        }
    }
    cr_assert_eq(assigned_at, COMMITTED);
    rc = nagare_consumer_commit(c, false);
    cr_assert_eq(rc, 0, "commit at the new coordinator: %s", nagare_strerror(rc));
    cr_assert_lt(clock_mono_ms(), deadline, "committed after 60000 ms");
    cr_assert(cs_broker_alive(&C, (size_t)k) && C.b[k].paused);
    cr_assert_eq(committed_via(live), RECORDS);
    cs_broker_resume(&C, (size_t)k);
    nagare_consumer_destroy(c);
}

/* Admin calls with the broker they would ask SIGSTOPped (issue 13): the
 * admin client is given only the group coordinator's address, learns the
 * other brokers when made, and its timeout is 120 s. With that broker
 * paused, a topic description (any broker answers it) comes from another
 * broker once the paused one has kept it stall_ms; TOPIC's end offset
 * (ListOffsets, which the partition's leader answers: the paused broker
 * led it) from the new leader; and a group's description and the group
 * listing (its coordinator answers them) from the new coordinator once
 * another broker names it: each well within 60 s, the broker still
 * paused. */
Test(cluster_groups, admin_reads_leave_a_paused_broker, .fini = teardown, .timeout = 600)
{
    cluster_up();
    produce(0, RECORDS);
    nagare_consumer *c = member_new();
    cr_assert_eq(read_to(c, COMMITTED), 0);
    cr_assert_eq(nagare_consumer_seek(c, TOPIC, 0, COMMITTED), 0);
    int rc = nagare_consumer_commit(c, false);
    cr_assert_eq(rc, 0, "commit: %s", nagare_strerror(rc));
    nagare_consumer_destroy(c);
    int k = coordinator_index();
    cr_assert_geq(k, 0, "no leader of __offsets/0");
    nagare_admin *a;
    cr_assert_eq(nagare_admin_new(C.b[k].bootstrap, 120000, &a), 0);
    cs_broker_pause(&C, (size_t)k);

    int64_t deadline = clock_mono_ms() + 60000;
    const struct nagare_topic_info *topics;
    size_t n = 0;
    rc = nagare_topics_describe(a, TOPIC, &topics, &n);
    cr_assert_eq(rc, 0, "describe %s: %s", TOPIC, nagare_strerror(rc));
    cr_assert_eq(n, 1);
    cr_assert_eq(topics[0].partition_count, 1);
    nagare_topics_free(a, topics);
    cr_assert_lt(clock_mono_ms(), deadline, "the topic described after 60000 ms");
    /* TOPIC/0 was led by the paused broker too (placed with __offsets/0):
     * its end, from the new leader. */
    int64_t end = -1;
    rc = nagare_offset_lookup(a, TOPIC, 0, NAGARE_OFFSET_END, &end);
    cr_assert_eq(rc, 0, "offset lookup: %s", nagare_strerror(rc));
    cr_assert_eq(end, RECORDS);

    const struct nagare_group_info *info;
    rc = nagare_group_describe(a, GROUP, &info);
    if (rc != 0) {
        cs_print_logs(&C, "no group description");
    }
    cr_assert_eq(rc, 0, "describe %s: %s", GROUP, nagare_strerror(rc));
    cr_assert_eq(info->offset_count, 1);
    cr_assert_eq(info->offsets[0].committed, COMMITTED);
    nagare_group_info_free(a, info);
    const struct nagare_group_listing *groups;
    rc = nagare_groups_list(a, &groups, &n);
    cr_assert_eq(rc, 0, "list: %s", nagare_strerror(rc));
    bool listed = false;
    for (size_t i = 0; i < n; i++) {
        listed = listed || strcmp(groups[i].group, GROUP) == 0;
    }
    nagare_groups_free(a, groups);
    cr_assert(listed, "%s not listed", GROUP);
    cr_assert_lt(clock_mono_ms(), deadline, "the group described after 60000 ms");
    cr_assert(cs_broker_alive(&C, (size_t)k) && C.b[k].paused);
    nagare_admin_destroy(a);
    cs_broker_resume(&C, (size_t)k);
}
