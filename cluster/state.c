/* cluster/state.c — the cluster view's lookups and invariants. The JSON
 * record codecs are in state_json.c. */
#include "cluster/state.h"

#include <stdlib.h>
#include <string.h>

void cluster_view_free(struct cluster_view *v)
{
    if (v == NULL)
        return;
    for (uint32_t i = 0; i < v->topic_count; i++)
        free(v->topics[i].parts);
    free(v->topics);
    free(v->brokers);
    free(v->user_creds);
    free(v->acl_recs);
    free(v);
}

static bool ids_has(const int32_t *ids, uint8_t count, int32_t id)
{
    for (uint8_t i = 0; i < count; i++)
        if (ids[i] == id)
            return true;
    return false;
}

bool cluster_partition_in_isr(const struct cluster_partition *p, int32_t broker_id)
{
    return ids_has(p->isr, p->isr_count, broker_id);
}

bool cluster_partition_has_replica(const struct cluster_partition *p, int32_t broker_id)
{
    return ids_has(p->replicas, p->replica_count, broker_id);
}

static void partition_check(const struct cluster_partition *p, int32_t index)
{
    ASSERT(p->index == index);
    ASSERT(p->replica_count >= 1 && p->replica_count <= CLUSTER_REPLICAS_MAX);
    ASSERT(p->isr_count <= p->replica_count);
    for (uint8_t i = 0; i < p->replica_count; i++)
        ASSERT(!ids_has(p->replicas, i, p->replicas[i]));
    for (uint8_t i = 0; i < p->isr_count; i++) {
        ASSERT(!ids_has(p->isr, i, p->isr[i]));
        ASSERT(cluster_partition_has_replica(p, p->isr[i]));
    }
    ASSERT(p->leader == CLUSTER_LEADER_NONE || cluster_partition_in_isr(p, p->leader));
}

void cluster_view_check(const struct cluster_view *v)
{
    ASSERT(v->broker_count <= CLUSTER_BROKERS_MAX);
    for (uint32_t i = 1; i < v->broker_count; i++)
        ASSERT(v->brokers[i - 1].id < v->brokers[i].id);
    for (uint32_t i = 0; i < v->topic_count; i++) {
        const struct cluster_topic *t = &v->topics[i];
        ASSERT(i == 0 || strcmp(v->topics[i - 1].name, t->name) < 0);
        ASSERT(t->partitions >= 1 && t->parts != NULL);
        for (int32_t j = 0; j < t->partitions; j++)
            partition_check(&t->parts[j], j);
    }
}

const struct cluster_broker *cluster_view_broker(const struct cluster_view *v, int32_t id)
{
    uint32_t lo = 0, hi = v->broker_count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (v->brokers[mid].id == id)
            return &v->brokers[mid];
        if (v->brokers[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

bool cluster_partition_leader_holds(const struct cluster_view *v, const struct cluster_partition *p)
{
    const struct cluster_broker *b =
        p->leader != CLUSTER_LEADER_NONE ? cluster_view_broker(v, p->leader) : NULL;
    return b != NULL && b->reg_revision <= p->mod_revision;
}

/* Orders a topic name against a length-delimited one, as strcmp would. */
static int name_cmp(const char *name, const char *other, size_t other_len)
{
    size_t len = strlen(name);
    int c = memcmp(name, other, len < other_len ? len : other_len);
    if (c != 0)
        return c;
    return len < other_len ? -1 : len > other_len ? 1 : 0;
}

const struct cluster_topic *cluster_view_topic(const struct cluster_view *v, const char *name,
                                               size_t name_len)
{
    uint32_t lo = 0, hi = v->topic_count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = name_cmp(v->topics[mid].name, name, name_len);
        if (c == 0)
            return &v->topics[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const struct cluster_partition *cluster_view_partition(const struct cluster_view *v,
                                                       const char *topic, size_t topic_len,
                                                       int32_t index)
{
    const struct cluster_topic *t = cluster_view_topic(v, topic, topic_len);
    if (t == NULL || index < 0 || index >= t->partitions)
        return NULL;
    return &t->parts[index];
}
