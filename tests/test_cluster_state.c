/* tests/test_cluster_state.c — cluster/state.h's records and view lookups,
 * and cluster/controller.h's decisions over hand-built views (no etcd). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "cluster/controller.h"
#include "cluster/mirror.h"
#include "cluster/state.h"

#define J(s) s, strlen(s)

/* ---- records ---- */

Test(cluster_records, broker_round_trips)
{
    struct cluster_broker b = {.id = 3, .port = 7421, .incarnation = 1733000000123};
    strcpy(b.host, "127.0.0.3");
    char buf[512];
    int n = cluster_broker_encode(&b, buf, sizeof(buf));
    cr_assert_gt(n, 0);
    cr_assert_eq((size_t)n, strlen(buf));
    struct cluster_broker got;
    cr_assert_eq(cluster_broker_decode(buf, (size_t)n, &got), 0);
    cr_assert_eq(got.id, 3);
    cr_assert_str_eq(got.host, "127.0.0.3");
    cr_assert_eq(got.port, 7421);
    cr_assert_eq(got.incarnation, 1733000000123);
    cr_assert_eq(got.kafka_port, 0, "no Kafka listener: no Kafka address");
    b.kafka_port = 9093;
    strcpy(b.kafka_host, "kafka.example");
    n = cluster_broker_encode(&b, buf, sizeof(buf));
    cr_assert_gt(n, 0);
    cr_assert_eq(cluster_broker_decode(buf, (size_t)n, &got), 0);
    cr_assert_str_eq(got.kafka_host, "kafka.example");
    cr_assert_eq(got.kafka_port, 9093);
}

Test(cluster_records, broker_refuses_bad_fields)
{
    static const char *bad[] = {
        "",
        "[]",
        "{\"id\":1,\"host\":\"h\",\"port\":1}",                    /* no incarnation */
        "{\"id\":-1,\"host\":\"h\",\"port\":1,\"incarnation\":0}", /* id below 0 */
        "{\"id\":1000001,\"host\":\"h\",\"port\":1,\"incarnation\":0}",
        "{\"id\":1,\"host\":\"h\",\"port\":0,\"incarnation\":0}", /* port 0 */
        "{\"id\":1,\"host\":\"h\",\"port\":65536,\"incarnation\":0}",
        "{\"id\":1,\"host\":\"\",\"port\":1,\"incarnation\":0}",    /* empty host */
        "{\"id\":1,\"host\":\"a b\",\"port\":1,\"incarnation\":0}", /* blank in host */
        "{\"id\":1,\"host\":\"a\\u0000b\",\"port\":1,\"incarnation\":0}",
        "{\"id\":1.5,\"host\":\"h\",\"port\":1,\"incarnation\":0}", /* not an integer */
        "{\"id\":\"1\",\"host\":\"h\",\"port\":1,\"incarnation\":0}",
        "{\"id\":1,\"id\":2,\"host\":\"h\",\"port\":1,\"incarnation\":0}", /* duplicate */
        "{\"id\":1,\"host\":\"h\",\"port\":1,\"incarnation\":0} x",        /* trailing bytes */
        "{\"id\":1,\"host\":\"h\",\"port\":1,\"incarnation\":0,\"kafka_port\":9}", /* no host */
        "{\"id\":1,\"host\":\"h\",\"port\":1,\"incarnation\":0,\"kafka_host\":\"k\"}",
        "{\"id\":1,\"host\":\"h\",\"port\":1,\"incarnation\":0,\"kafka_host\":\"k\","
        "\"kafka_port\":0}",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        struct cluster_broker b = {.id = 77};
        cr_assert_eq(cluster_broker_decode(J(bad[i]), &b), -NG_EPROTO, "%s", bad[i]);
        cr_assert_eq(b.id, 77, "unchanged on error: %s", bad[i]);
    }
    char host[CLUSTER_HOST_BYTES + 64];
    int n = snprintf(host, sizeof(host), "{\"id\":1,\"port\":1,\"incarnation\":0,\"host\":\"");
    memset(host + n, 'h', CLUSTER_HOST_BYTES);
    strcpy(host + n + CLUSTER_HOST_BYTES, "\"}");
    struct cluster_broker b;
    cr_assert_eq(cluster_broker_decode(J(host), &b), -NG_EPROTO, "a host of 256 bytes");
}

Test(cluster_records, broker_ignores_unknown_fields)
{
    struct cluster_broker b;
    cr_assert_eq(
        cluster_broker_decode(
            J("{\"id\":2,\"host\":\"h\",\"port\":9,\"incarnation\":5,\"rack\":\"r1\"}"), &b),
        0);
    cr_assert_eq(b.id, 2);
}

static struct cluster_topic topic_of(int32_t partitions, int16_t rf)
{
    return (struct cluster_topic){
        .partitions = partitions,
        .replication_factor = rf,
        .cfg = {.retention_ms = -2,
                .retention_bytes = -1,
                .segment_bytes = 1 << 20,
                .segment_ms = -1,
                .batch_bytes_max = 65536,
                .min_insync_replicas = 2,
                .unclean_leader_election = true},
    };
}

Test(cluster_records, topic_round_trips)
{
    struct cluster_topic t = topic_of(12, 3);
    char buf[512];
    int n = cluster_topic_encode(&t, buf, sizeof(buf));
    cr_assert_gt(n, 0);
    struct cluster_topic got = {.mod_revision = 99};
    strcpy(got.name, "kept");
    cr_assert_eq(cluster_topic_decode(buf, (size_t)n, &got), 0);
    cr_assert_eq(got.partitions, 12);
    cr_assert_eq(got.replication_factor, 3);
    cr_assert_eq(got.cfg.retention_ms, -2);
    cr_assert_eq(got.cfg.retention_bytes, -1);
    cr_assert_eq(got.cfg.segment_bytes, 1 << 20);
    cr_assert_eq(got.cfg.segment_ms, -1);
    cr_assert_eq(got.cfg.batch_bytes_max, 65536);
    cr_assert_eq(got.cfg.min_insync_replicas, 2);
    cr_assert(got.cfg.unclean_leader_election);
    cr_assert_str_eq(got.name, "kept", "the name comes from the key");
    cr_assert_eq(got.mod_revision, 99);
}

Test(cluster_records, topic_refuses_bad_fields)
{
#define GOOD_CFG                                                                          \
    "{\"retention_ms\":-1,\"retention_bytes\":-1,\"segment_bytes\":-1,\"segment_ms\":-1," \
    "\"batch_bytes_max\":-1,\"min_insync_replicas\":-1}"
    struct cluster_topic t;
    cr_assert_eq(
        cluster_topic_decode(J("{\"partitions\":1,\"replication_factor\":1,\"config\":" GOOD_CFG
                               ",\"unclean_leader_election\":false}"),
                             &t),
        0);
    static const char *bad[] = {
        "{\"partitions\":0,\"replication_factor\":1,\"config\":" GOOD_CFG
        ",\"unclean_leader_election\":false}",
        "{\"partitions\":4097,\"replication_factor\":1,\"config\":" GOOD_CFG
        ",\"unclean_leader_election\":false}",
        "{\"partitions\":1,\"replication_factor\":8,\"config\":" GOOD_CFG
        ",\"unclean_leader_election\":false}",
        "{\"partitions\":1,\"replication_factor\":0,\"config\":" GOOD_CFG
        ",\"unclean_leader_election\":false}",
        "{\"partitions\":1,\"replication_factor\":1,\"config\":" GOOD_CFG
        ",\"unclean_leader_election\":0}",
        "{\"partitions\":1,\"replication_factor\":1,\"config\":" GOOD_CFG "}",
        "{\"partitions\":1,\"replication_factor\":1,\"config\":[" GOOD_CFG
        "],\"unclean_leader_election\":false}",
    };
#undef GOOD_CFG
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        cr_assert_eq(cluster_topic_decode(J(bad[i]), &t), -NG_EPROTO, "%s", bad[i]);
    }
    static const char *bad_cfg[] = {
        "\"retention_ms\":0,\"retention_bytes\":-1,\"segment_bytes\":-1,\"segment_ms\":-1,"
        "\"batch_bytes_max\":-1,\"min_insync_replicas\":-1",
        "\"retention_ms\":-3,\"retention_bytes\":-1,\"segment_bytes\":-1,\"segment_ms\":-1,"
        "\"batch_bytes_max\":-1,\"min_insync_replicas\":-1",
        "\"retention_ms\":-1,\"retention_bytes\":-1,\"segment_bytes\":-2,\"segment_ms\":-1,"
        "\"batch_bytes_max\":-1,\"min_insync_replicas\":-1", /* -2 is for retention only */
        "\"retention_ms\":-1,\"retention_bytes\":-1,\"segment_bytes\":-1,\"segment_ms\":-1,"
        "\"batch_bytes_max\":2147483648,\"min_insync_replicas\":-1",
        "\"retention_ms\":-1,\"retention_bytes\":-1,\"segment_bytes\":-1,\"segment_ms\":-1,"
        "\"batch_bytes_max\":-1,\"min_insync_replicas\":2", /* above the factor of 1 */
        "\"retention_ms\":-1,\"retention_bytes\":-1,\"segment_bytes\":-1,\"segment_ms\":-1,"
        "\"batch_bytes_max\":-1", /* one missing */
    };
    for (size_t i = 0; i < ARRAY_LEN(bad_cfg); i++) {
        char text[512];
        snprintf(text, sizeof(text),
                 "{\"partitions\":1,\"replication_factor\":1,\"config\":{%s},"
                 "\"unclean_leader_election\":false}",
                 bad_cfg[i]);
        cr_assert_eq(cluster_topic_decode(J(text), &t), -NG_EPROTO, "%s", text);
    }
}

static struct cluster_partition part_of(int32_t leader, const int32_t *replicas, uint8_t rn,
                                        const int32_t *isr, uint8_t in)
{
    struct cluster_partition p = {.leader = leader,
                                  .leader_epoch = 4,
                                  .replica_count = rn,
                                  .isr_count = in,
                                  .controller_epoch = 7,
                                  .mod_revision = 50};
    memcpy(p.replicas, replicas, rn * sizeof(int32_t));
    memcpy(p.isr, isr, in * sizeof(int32_t));
    return p;
}

Test(cluster_records, partition_round_trips)
{
    struct cluster_partition p = part_of(2, (int32_t[]){1, 2, 3}, 3, (int32_t[]){2, 3}, 2);
    char buf[512];
    int n = cluster_partition_encode(&p, buf, sizeof(buf));
    cr_assert_gt(n, 0);
    cr_assert_str_eq(buf, "{\"replicas\":[1,2,3],\"leader\":2,\"leader_epoch\":4,\"isr\":[2,3],"
                          "\"controller_epoch\":7}");
    struct cluster_partition got = {.index = 5, .mod_revision = 61};
    cr_assert_eq(cluster_partition_decode(buf, (size_t)n, &got), 0);
    cr_assert_eq(got.index, 5, "the index comes from the key");
    cr_assert_eq(got.mod_revision, 61, "the revision from etcd");
    cr_assert_eq(got.leader, 2);
    cr_assert_eq(got.leader_epoch, 4);
    cr_assert_eq(got.replica_count, 3);
    cr_assert_eq(got.isr_count, 2);
    cr_assert_eq(got.isr[1], 3);
    cr_assert_eq(got.controller_epoch, 7);
}

Test(cluster_records, partition_refuses_broken_invariants)
{
    static const char *bad[] = {
        "{\"replicas\":[],\"leader\":-1,\"leader_epoch\":0,\"isr\":[],\"controller_epoch\":1}",
        "{\"replicas\":[1,1],\"leader\":1,\"leader_epoch\":0,\"isr\":[1],\"controller_epoch\":1}",
        "{\"replicas\":[1,2],\"leader\":1,\"leader_epoch\":0,\"isr\":[1,3],\"controller_epoch\":1}",
        "{\"replicas\":[1,2],\"leader\":2,\"leader_epoch\":0,\"isr\":[1],\"controller_epoch\":1}",
        "{\"replicas\":[1,2],\"leader\":1,\"leader_epoch\":0,\"isr\":[1,1],\"controller_epoch\":1}",
        "{\"replicas\":[1,2],\"leader\":1,\"leader_epoch\":-1,\"isr\":[1],\"controller_epoch\":1}",
        "{\"replicas\":[1,2],\"leader\":-2,\"leader_epoch\":0,\"isr\":[1],\"controller_epoch\":1}",
        "{\"replicas\":[1,2,3,4,5,6,7,8],\"leader\":1,\"leader_epoch\":0,\"isr\":[1],"
        "\"controller_epoch\":1}",
        "{\"replicas\":[1,2],\"leader\":1,\"leader_epoch\":0,\"isr\":[1]}",
        "{\"replicas\":[1,\"2\"],\"leader\":1,\"leader_epoch\":0,\"isr\":[1],\"controller_epoch\":"
        "1}",
        "{\"replicas\":[1,-2],\"leader\":1,\"leader_epoch\":0,\"isr\":[1],\"controller_epoch\":1}",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        struct cluster_partition p = {.leader = 42};
        cr_assert_eq(cluster_partition_decode(J(bad[i]), &p), -NG_EPROTO, "%s", bad[i]);
        cr_assert_eq(p.leader, 42);
    }
    struct cluster_partition p;
    cr_assert_eq(cluster_partition_decode(
                     J("{\"replicas\":[1,2],\"leader\":-1,\"leader_epoch\":3,\"isr\":[1],"
                       "\"controller_epoch\":1}"),
                     &p),
                 0, "leaderless with an ISR kept");
}

Test(cluster_records, controller_epoch_and_reassign_round_trip)
{
    char buf[128];
    int n = cluster_controller_encode(4, 9, buf, sizeof(buf));
    cr_assert_str_eq(buf, "{\"broker\":4,\"epoch\":9}");
    int32_t broker = 0;
    int64_t epoch = 0;
    cr_assert_eq(cluster_controller_decode(buf, (size_t)n, &broker, &epoch), 0);
    cr_assert(broker == 4 && epoch == 9);
    cr_assert_eq(cluster_controller_decode(J("{\"broker\":4,\"epoch\":0}"), &broker, &epoch),
                 -NG_EPROTO);
    n = cluster_epoch_encode(12, buf, sizeof(buf));
    cr_assert_eq(cluster_epoch_decode(buf, (size_t)n, &epoch), 0);
    cr_assert_eq(epoch, 12);
    cr_assert_eq(cluster_epoch_decode(J("{\"epoch\":\"12\"}"), &epoch), -NG_EPROTO);
    struct cluster_reassign r = {.replica_count = 2, .replicas = {5, 1}}, got;
    n = cluster_reassign_encode(&r, buf, sizeof(buf));
    cr_assert_str_eq(buf, "{\"replicas\":[5,1]}");
    cr_assert_eq(cluster_reassign_decode(buf, (size_t)n, &got), 0);
    cr_assert(got.replica_count == 2 && got.replicas[0] == 5 && got.replicas[1] == 1);
    cr_assert_eq(cluster_reassign_decode(J("{\"replicas\":[5,5]}"), &got), -NG_EPROTO);
    cr_assert_eq(cluster_reassign_decode(J("{\"replicas\":[]}"), &got), -NG_EPROTO);
}

Test(cluster_records, encoders_say_when_the_buffer_is_short)
{
    struct cluster_partition p = part_of(1, (int32_t[]){1, 2, 3}, 3, (int32_t[]){1, 2, 3}, 3);
    char buf[512];
    int n = cluster_partition_encode(&p, buf, sizeof(buf));
    cr_assert_gt(n, 0);
    cr_assert_eq(cluster_partition_encode(&p, buf, (size_t)n), -NG_ENOSPACE, "no room for NUL");
    cr_assert_eq(cluster_partition_encode(&p, buf, (size_t)n + 1), n);
}

/* ---- hand-built views ---- */

/* A view of live brokers ids[count) and one topic "t" of the given
 * partitions. */
static struct cluster_view *view_of(const int32_t *ids, uint32_t count,
                                    const struct cluster_partition *parts, int32_t nparts,
                                    bool unclean)
{
    struct cluster_view *v = calloc(1, sizeof(*v));
    v->brokers = calloc(count + 1, sizeof(*v->brokers));
    for (uint32_t i = 0; i < count; i++) {
        v->brokers[i] = (struct cluster_broker){.id = ids[i], .port = 1};
        strcpy(v->brokers[i].host, "127.0.0.1");
    }
    v->broker_count = count;
    v->controller = count > 0 ? ids[0] : -1;
    if (nparts > 0) {
        v->topics = calloc(1, sizeof(*v->topics));
        v->topic_count = 1;
        v->topics[0] = topic_of(nparts, 3);
        v->topics[0].cfg.unclean_leader_election = unclean;
        strcpy(v->topics[0].name, "t");
        v->topics[0].parts = calloc((size_t)nparts, sizeof(*parts));
        memcpy(v->topics[0].parts, parts, (size_t)nparts * sizeof(*parts));
    }
    cluster_view_check(v);
    return v;
}

Test(cluster_view, lookups_find_what_is_there)
{
    struct cluster_partition p = part_of(1, (int32_t[]){1, 2}, 2, (int32_t[]){1, 2}, 2);
    struct cluster_view *v = view_of((int32_t[]){1, 2, 5}, 3, &p, 1, false);
    cr_assert_not_null(cluster_view_broker(v, 5));
    cr_assert_null(cluster_view_broker(v, 3));
    cr_assert_not_null(cluster_view_partition(v, "t", 1, 0));
    cr_assert_null(cluster_view_partition(v, "t", 1, 1));
    cr_assert_null(cluster_view_partition(v, "tt", 2, 0));
    cluster_view_free(v);
}

/* ---- controller decisions ---- */

Test(controller, places_round_robin_from_the_index)
{
    struct cluster_view *v = view_of((int32_t[]){1, 2, 3, 4}, 4, NULL, 0, false);
    int32_t r[CLUSTER_REPLICAS_MAX];
    cr_assert_eq(controller_place(v, 0, 3, r), 0);
    cr_assert(r[0] == 1 && r[1] == 2 && r[2] == 3);
    cr_assert_eq(controller_place(v, 1, 3, r), 0);
    cr_assert(r[0] == 2 && r[1] == 3 && r[2] == 4);
    cr_assert_eq(controller_place(v, 3, 3, r), 0);
    cr_assert(r[0] == 4 && r[1] == 1 && r[2] == 2, "wraps round");
    cr_assert_eq(controller_place(v, 5, 4, r), 0);
    cr_assert(r[0] == 2 && r[3] == 1);
    cr_assert_eq(controller_place(v, 0, 5, r), -NG_ENOT_ENOUGH_REPLICAS);
    /* leaders spread: each broker leads one of four partitions */
    int led[5] = {0};
    for (int32_t i = 0; i < 4; i++) {
        cr_assert_eq(controller_place(v, i, 2, r), 0);
        led[r[0]]++;
    }
    cr_assert(led[1] == 1 && led[2] == 1 && led[3] == 1 && led[4] == 1);
    cluster_view_free(v);
}

Test(controller, new_partition_leads_with_the_first_replica)
{
    struct cluster_partition p;
    controller_new_partition(2, (int32_t[]){3, 1, 2}, 3, 7, &p);
    cr_assert(p.index == 2 && p.leader == 3 && p.leader_epoch == 0 && p.isr_count == 3 &&
              p.controller_epoch == 7 && p.mod_revision == 0);
}

Test(controller, elects_the_first_live_in_sync_replica)
{
    /* replicas 1,2,3; ISR 1,3 (2 lagging); leader 1 died */
    struct cluster_partition p = part_of(1, (int32_t[]){1, 2, 3}, 3, (int32_t[]){1, 3}, 2);
    struct cluster_view *v = view_of((int32_t[]){2, 3}, 2, &p, 1, false);
    struct cluster_partition out;
    bool unclean = true;
    cr_assert(controller_elect(v, &v->topics[0], &p, &out, &unclean));
    cr_assert_not(unclean);
    cr_assert_eq(out.leader, 3, "2 is live but not in sync");
    cr_assert_eq(out.leader_epoch, 5);
    cr_assert_eq(out.isr_count, 1, "the dead broker left the ISR");
    cr_assert_eq(out.isr[0], 3);
    cr_assert_eq(out.replica_count, 3, "replicas unchanged");
    cr_assert_eq(out.mod_revision, 50, "compared against the state read");
    cluster_view_free(v);
}

Test(controller, leaves_a_live_leader_alone)
{
    struct cluster_partition p = part_of(2, (int32_t[]){1, 2, 3}, 3, (int32_t[]){1, 2}, 2);
    struct cluster_view *v = view_of((int32_t[]){2, 3}, 2, &p, 1, false);
    struct cluster_partition out;
    bool unclean;
    cr_assert_not(controller_elect(v, &v->topics[0], &p, &out, &unclean));
    cluster_view_free(v);
}

/* A leader registered again after the partition last changed (a restart
 * within its lease: the old registration's end and the new one in one
 * view) is elected anew, at a new epoch, and does not lead before. */
Test(controller, elects_anew_a_leader_registered_again_since)
{
    struct cluster_partition p = part_of(1, (int32_t[]){1, 2, 3}, 3, (int32_t[]){1, 2, 3}, 3);
    struct cluster_view *v = view_of((int32_t[]){1, 2, 3}, 3, &p, 1, false);
    v->brokers[0].reg_revision = p.mod_revision; /* registered no later: holds */
    cr_assert(cluster_partition_leader_holds(v, &p));
    struct cluster_partition out;
    bool unclean;
    cr_assert_not(controller_elect(v, &v->topics[0], &p, &out, &unclean));
    v->brokers[0].reg_revision = p.mod_revision + 10;
    cr_assert_not(cluster_partition_leader_holds(v, &p));
    cr_assert(controller_elect(v, &v->topics[0], &p, &out, &unclean));
    cr_assert_not(unclean);
    cr_assert_eq(out.leader, 1, "still the first live in-sync replica");
    cr_assert_eq(out.leader_epoch, p.leader_epoch + 1, "at a new epoch");
    cr_assert_eq(out.isr_count, 3);
    /* once written (a newer revision than the registration), it holds */
    out.mod_revision = p.mod_revision + 11;
    cr_assert(cluster_partition_leader_holds(v, &out));
    cr_assert_not(controller_elect(v, &v->topics[0], &out, &p, &unclean));
    cluster_view_free(v);
}

Test(controller, leaves_a_partition_leaderless_without_a_live_in_sync_replica)
{
    struct cluster_partition p = part_of(1, (int32_t[]){1, 2, 3}, 3, (int32_t[]){1}, 1);
    struct cluster_view *v = view_of((int32_t[]){2, 3}, 2, &p, 1, false);
    struct cluster_partition out;
    bool unclean;
    cr_assert(controller_elect(v, &v->topics[0], &p, &out, &unclean));
    cr_assert_not(unclean);
    cr_assert_eq(out.leader, CLUSTER_LEADER_NONE);
    cr_assert_eq(out.leader_epoch, 5, "the dead leader is fenced");
    cr_assert(out.isr_count == 1 && out.isr[0] == 1, "the ISR names whom to wait for");
    /* and stays leaderless, without a new epoch each pass */
    struct cluster_partition again;
    cr_assert_not(controller_elect(v, &v->topics[0], &out, &again, &unclean));
    cluster_view_free(v);
    /* until the in-sync replica returns */
    v = view_of((int32_t[]){1, 2, 3}, 3, &out, 1, false);
    cr_assert(controller_elect(v, &v->topics[0], &out, &again, &unclean));
    cr_assert(again.leader == 1 && again.leader_epoch == 6);
    cluster_view_free(v);
}

Test(controller, elects_unclean_only_when_the_topic_allows)
{
    struct cluster_partition p = part_of(1, (int32_t[]){1, 2, 3}, 3, (int32_t[]){1}, 1);
    struct cluster_view *v = view_of((int32_t[]){3, 2}, 0, &p, 1, true);
    struct cluster_partition out;
    bool unclean = false;
    cr_assert(controller_elect(v, &v->topics[0], &p, &out, &unclean), "nobody live: leaderless");
    cr_assert(!unclean && out.leader == CLUSTER_LEADER_NONE);
    cluster_view_free(v);
    v = view_of((int32_t[]){2, 3}, 2, &p, 1, true);
    cr_assert(controller_elect(v, &v->topics[0], &p, &out, &unclean));
    cr_assert(unclean);
    cr_assert_eq(out.leader, 2, "the first live replica");
    cr_assert(out.isr_count == 1 && out.isr[0] == 2, "alone in the ISR");
    cr_assert_eq(out.leader_epoch, 5);
    cluster_view_free(v);
}

Test(controller, gives_leadership_back_to_the_preferred_replica)
{
    struct cluster_partition p = part_of(2, (int32_t[]){1, 2, 3}, 3, (int32_t[]){2, 3, 1}, 3);
    struct cluster_view *v = view_of((int32_t[]){1, 2, 3}, 3, &p, 1, false);
    struct cluster_partition out;
    cr_assert(controller_prefer(v, &p, &out));
    cr_assert(out.leader == 1 && out.leader_epoch == 5 && out.isr_count == 3);
    cluster_view_free(v);
    /* not while it is out of sync, or dead, or already leading */
    struct cluster_partition lag = part_of(2, (int32_t[]){1, 2, 3}, 3, (int32_t[]){2, 3}, 2);
    v = view_of((int32_t[]){1, 2, 3}, 3, &lag, 1, false);
    cr_assert_not(controller_prefer(v, &lag, &out));
    cluster_view_free(v);
    v = view_of((int32_t[]){2, 3}, 2, &p, 1, false);
    cr_assert_not(controller_prefer(v, &p, &out));
    cluster_view_free(v);
    struct cluster_partition led = part_of(1, (int32_t[]){1, 2, 3}, 3, (int32_t[]){1}, 1);
    v = view_of((int32_t[]){1, 2, 3}, 3, &led, 1, false);
    cr_assert_not(controller_prefer(v, &led, &out));
    cluster_view_free(v);
}

Test(controller, reassigns_in_steps)
{
    /* 1,2,3 led by 1 -> 2,3,4 */
    struct cluster_partition p = part_of(1, (int32_t[]){1, 2, 3}, 3, (int32_t[]){1, 2, 3}, 3);
    struct cluster_view *v = view_of((int32_t[]){1, 2, 3, 4}, 4, &p, 1, false);
    const int32_t target[] = {2, 3, 4};
    struct cluster_partition out;
    cr_assert_eq(controller_reassign(v, &p, target, 3, &out), CONTROLLER_REASSIGN_EXPAND);
    cr_assert_eq(out.replica_count, 4);
    cr_assert(out.replicas[0] == 2 && out.replicas[1] == 3 && out.replicas[2] == 4 &&
              out.replicas[3] == 1);
    cr_assert(out.leader == 1 && out.leader_epoch == 4 && out.isr_count == 3,
              "adding replicas changes no leader and no ISR");
    struct cluster_partition expanded = out;
    cr_assert_eq(controller_reassign(v, &expanded, target, 3, &out), CONTROLLER_REASSIGN_WAIT);
    /* the leader puts 4 in sync */
    expanded.isr[expanded.isr_count++] = 4;
    cr_assert_eq(controller_reassign(v, &expanded, target, 3, &out), CONTROLLER_REASSIGN_FINISH);
    cr_assert(out.replica_count == 3 && out.replicas[0] == 2 && out.replicas[2] == 4);
    cr_assert_eq(out.isr_count, 3, "1 left the ISR with the replicas");
    cr_assert(!cluster_partition_in_isr(&out, 1));
    cr_assert_eq(out.leader, 2, "leadership moved into the new set");
    cr_assert_eq(out.leader_epoch, 5);
    cr_assert_eq(controller_reassign(v, &out, target, 3, &out), CONTROLLER_REASSIGN_DONE);
    cluster_view_free(v);
}

Test(controller, refuses_a_reassignment_past_the_replica_limit)
{
    struct cluster_partition p = part_of(1, (int32_t[]){1, 2, 3, 4}, 4, (int32_t[]){1, 2, 3, 4}, 4);
    struct cluster_view *v = view_of((int32_t[]){1, 2, 3, 4, 5, 6, 7, 8}, 8, &p, 1, false);
    struct cluster_partition out;
    cr_assert_eq(controller_reassign(v, &p, (int32_t[]){5, 6, 7, 8}, 4, &out),
                 CONTROLLER_REASSIGN_INVALID);
    cluster_view_free(v);
}

Test(controller, checks_an_isr_change)
{
    struct cluster_partition p = part_of(1, (int32_t[]){1, 2, 3}, 3, (int32_t[]){1, 2, 3}, 3);
    cr_assert_eq(controller_isr_check(&p, 1, (int32_t[]){1, 3}, 2), 0);
    cr_assert_eq(controller_isr_check(&p, 1, (int32_t[]){1}, 1), 0);
    cr_assert_eq(controller_isr_check(&p, 1, (int32_t[]){2, 3}, 2), -NG_EBADARG, "no leader");
    cr_assert_eq(controller_isr_check(&p, 1, (int32_t[]){1, 4}, 2), -NG_EBADARG, "not a replica");
    cr_assert_eq(controller_isr_check(&p, 1, (int32_t[]){1, 1}, 2), -NG_EBADARG, "twice");
    cr_assert_eq(controller_isr_check(&p, 1, (int32_t[]){1}, 0), -NG_EBADARG, "empty");
}

/* ---- the session's mirror and the views built from it ---- */

static void put(struct mirror *m, const char *key, const char *value, int64_t revision)
{
    cr_assert_eq(mirror_put(m, key, value, strlen(value), revision, revision), 0);
}

static struct cluster_view *view_from(const struct mirror *m)
{
    struct cluster_view *v = NULL;
    cr_assert_eq(mirror_view(m, &v), 0);
    return v;
}

#define TOPIC_1P                                                                  \
    "{\"partitions\":2,\"replication_factor\":1,\"config\":{\"retention_ms\":-1," \
    "\"retention_bytes\":-1,\"segment_bytes\":-1,\"segment_ms\":-1,"              \
    "\"batch_bytes_max\":-1,\"min_insync_replicas\":-1},"                         \
    "\"unclean_leader_election\":false}"
#define PART_OF_2 \
    "{\"replicas\":[2],\"leader\":2,\"leader_epoch\":0,\"isr\":[2],\"controller_epoch\":1}"

Test(mirror, keeps_keys_sorted_and_replaces_in_place)
{
    struct mirror m;
    mirror_init(&m);
    put(&m, "b", "1", 5);
    put(&m, "a", "2", 6);
    put(&m, "c", "3", 7);
    put(&m, "b", "4", 8);
    cr_assert_eq(m.count, 3);
    cr_assert_str_eq(m.kvs[0].key, "a");
    cr_assert_str_eq(m.kvs[1].value, "4");
    cr_assert_eq(m.kvs[1].mod_revision, 8);
    cr_assert_eq(m.revision, 8);
    mirror_delete(&m, "a", 9);
    mirror_delete(&m, "zz", 10);
    cr_assert_eq(m.count, 2);
    cr_assert_null(mirror_get(&m, "a"));
    cr_assert_not_null(mirror_get(&m, "c"));
    cr_assert_eq(m.revision, 10);
    cr_assert_eq(mirror_lower_bound(&m, "bb"), 1);
    cr_assert(mirror_has_prefix(&m, 1, "c"));
    cr_assert_not(mirror_has_prefix(&m, 2, "c"), "past the end");
    mirror_clear(&m);
    cr_assert_eq(m.count, 0);
}

Test(mirror, view_skips_bad_records_and_topics_not_yet_whole)
{
    struct mirror m;
    mirror_init(&m);
    put(&m, "brokers/10", "{\"id\":10,\"host\":\"h\",\"port\":1,\"incarnation\":1}", 2);
    put(&m, "brokers/2", "{\"id\":2,\"host\":\"h\",\"port\":1,\"incarnation\":1}", 3);
    put(&m, "brokers/3", "{\"id\":4,\"host\":\"h\",\"port\":1,\"incarnation\":1}", 4);
    put(&m, "brokers/5", "not json", 5);
    put(&m, "brokers/06", "{\"id\":6,\"host\":\"h\",\"port\":1,\"incarnation\":1}", 6);
    put(&m, "controller", "{\"broker\":2,\"epoch\":3}", 7);
    put(&m, "controller_epoch", "{\"epoch\":3}", 7);
    put(&m, "topics/half", TOPIC_1P, 8);
    put(&m, "partitions/half/0", PART_OF_2, 8);
    put(&m, "topics/whole", TOPIC_1P, 9);
    put(&m, "partitions/whole/0", PART_OF_2, 9);
    put(&m, "partitions/whole/1", PART_OF_2, 10);
    put(&m, "partitions/whole/2", PART_OF_2, 10); /* past its count: ignored */
    put(&m, "topics/bad..part", TOPIC_1P, 11);
    put(&m, "topics/bad.part", TOPIC_1P, 11);
    put(&m, "partitions/bad.part/0", PART_OF_2, 11);
    put(&m, "partitions/bad.part/1", "{\"replicas\":[2],\"leader\":3}", 11);
    struct cluster_view *v = view_from(&m);
    cr_assert_eq(v->revision, 11);
    cr_assert_eq(v->broker_count, 2, "ids 2 and 10; 3 names 4, 5 is no record, 06 no id");
    cr_assert(v->brokers[0].id == 2 && v->brokers[1].id == 10, "sorted by id, not by key");
    cr_assert(v->brokers[0].reg_revision == 3 && v->brokers[1].reg_revision == 2,
              "each registration's create revision");
    cr_assert_eq(v->controller, 2);
    cr_assert_eq(v->controller_epoch, 3);
    cr_assert_eq(v->topic_count, 1, "only the whole topic");
    cr_assert_str_eq(v->topics[0].name, "whole");
    cr_assert_eq(v->topics[0].parts[1].mod_revision, 10);
    cr_assert_eq(v->topics[0].parts[1].index, 1);
    cr_assert_not(v->fenced);
    cluster_view_free(v);
    put(&m, "partitions/half/1", PART_OF_2, 12);
    mirror_delete(&m, "controller", 13);
    v = view_from(&m);
    cr_assert_eq(v->topic_count, 2, "half is whole now");
    cr_assert_eq(v->controller, -1);
    cr_assert_eq(v->controller_epoch, 3, "the epoch outlives its controller");
    cluster_view_free(v);
    mirror_clear(&m);
}

Test(mirror, parses_ids_and_indexes_strictly)
{
    int32_t v = -1;
    cr_assert_eq(mirror_parse_index("0", 10, &v), 0);
    cr_assert_eq(v, 0);
    cr_assert_eq(mirror_parse_index("10", 10, &v), 0);
    cr_assert_eq(v, 10);
    cr_assert_eq(mirror_parse_index("11", 10, &v), -NG_EBADARG);
    cr_assert_eq(mirror_parse_index("01", 10, &v), -NG_EBADARG);
    cr_assert_eq(mirror_parse_index("-1", 10, &v), -NG_EBADARG);
    cr_assert_eq(mirror_parse_index("", 10, &v), -NG_EBADARG);
    cr_assert_eq(mirror_parse_index("1x", 10, &v), -NG_EBADARG);
    cr_assert_eq(mirror_parse_index("99999999999", INT32_MAX, &v), -NG_EBADARG);
}
