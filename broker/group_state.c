#include "broker/group_state.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"

void group_init(struct group *g, const char *id, size_t id_len)
{
    ASSERT(id_len <= GROUP_ID_BYTES_MAX);
    memset(g, 0, sizeof(*g));
    memcpy(g->id, id, id_len);
}

static void member_free(struct group_member *m)
{
    free(m->target);
    free(m->grant);
    free(m->held);
}

void group_fini(struct group *g)
{
    for (uint32_t i = 0; i < g->member_count; i++) {
        member_free(&g->members[i]);
    }
    free(g->members);
    memset(g, 0, sizeof(*g));
}

static int member_index(const struct group *g, const char *id)
{
    uint32_t lo = 0;
    uint32_t hi = g->member_count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = strcmp(g->members[mid].id, id);
        if (c == 0) {
            return (int)mid;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return -1;
}

const struct group_member *group_member_find(const struct group *g, const char *member_id)
{
    int i = member_index(g, member_id);
    return i < 0 ? NULL : &g->members[i];
}

int group_topic_index(const struct group *g, const char *topic)
{
    for (uint32_t t = 0; t < g->topic_count; t++) {
        if (strcmp(g->topics[t].name, topic) == 0) {
            return (int)t;
        }
    }
    return -1;
}

static bool tp_eq(struct group_tp a, struct group_tp b)
{
    return a.topic == b.topic && a.partition == b.partition;
}

static bool tp_in(const struct group_tp *list, uint32_t n, struct group_tp tp)
{
    for (uint32_t i = 0; i < n; i++) {
        if (tp_eq(list[i], tp)) {
            return true;
        }
    }
    return false;
}

/* ---- assignment ---- */

/* Total partitions of the subscribed topics, after asking their counts. */
static uint32_t refresh_topics(struct group *g, group_partitions_fn partitions, void *arg,
                               uint32_t first[GROUP_TOPICS_MAX])
{
    uint32_t total = 0;
    for (uint32_t t = 0; t < g->topic_count; t++) {
        int32_t n = partitions(arg, g->topics[t].name);
        n = n < 0 ? 0 : n;
        if (total + (uint32_t)n > GROUP_PARTITIONS_MAX) {
            n = (int32_t)(GROUP_PARTITIONS_MAX - total); /* documented bound */
        }
        g->topics[t].partitions = n;
        first[t] = total;
        total += (uint32_t)n;
    }
    return total;
}

static bool tp_valid(const struct group *g, const struct group_member *m, struct group_tp tp)
{
    return tp.topic < g->topic_count && (m->topics_mask >> tp.topic & 1) != 0 &&
           tp.partition >= 0 && tp.partition < g->topics[tp.topic].partitions;
}

/* Fair shares: floor(total / n), and one more for the `total % n` members
 * keeping the most (the fewest moves). */
static void quotas(const struct group *g, const uint32_t *kept, uint32_t total, uint32_t *quota)
{
    uint32_t n = g->member_count;
    uint32_t extra = total % n;
    for (uint32_t i = 0; i < n; i++) {
        quota[i] = total / n;
    }
    for (uint32_t k = 0; k < extra; k++) {
        int best = -1;
        for (uint32_t i = 0; i < n; i++) {
            if (quota[i] == total / n && (best < 0 || kept[i] > kept[best])) {
                best = (int)i;
            }
        }
        quota[best]++;
    }
}

/* The eligible member with the fewest partitions, preferring those under
 * quota; -1 when nobody subscribes to the topic. */
static int least_loaded(const struct group *g, const uint32_t *count, const uint32_t *quota,
                        uint16_t topic)
{
    int best = -1;
    for (uint32_t i = 0; i < g->member_count; i++) {
        if ((g->members[i].topics_mask >> topic & 1) == 0) {
            continue;
        }
        bool under = count[i] < quota[i];
        bool best_under = best >= 0 && count[best] < quota[best];
        if (best < 0 || (under && !best_under) || (under == best_under && count[i] < count[best])) {
            best = (int)i;
        }
    }
    return best;
}

/* Scratch for one rebalance, over the `total` partitions of the group's
 * topics in (topic, partition) order: owner[k] is a member index or -1. */
struct plan {
    uint32_t first[GROUP_TOPICS_MAX]; /* index of each topic's partition 0 */
    uint32_t total;
    int32_t *owner;
    uint32_t *count;
    uint32_t *quota;
};

static uint32_t plan_slot(const struct plan *pl, struct group_tp tp)
{
    return pl->first[tp.topic] + (uint32_t)tp.partition;
}

/* Each member keeps its valid partitions up to its fair share. */
static void keep_sticky(const struct group *g, struct plan *pl)
{
    for (uint32_t i = 0; i < g->member_count; i++) {
        const struct group_member *m = &g->members[i];
        for (uint32_t k = 0; k < m->target_count; k++) {
            pl->count[i] += tp_valid(g, m, m->target[k]);
        }
    }
    quotas(g, pl->count, pl->total, pl->quota);
    memset(pl->count, 0, g->member_count * sizeof(*pl->count));
    for (uint32_t i = 0; i < g->member_count; i++) {
        const struct group_member *m = &g->members[i];
        for (uint32_t k = 0; k < m->target_count && pl->count[i] < pl->quota[i]; k++) {
            struct group_tp tp = m->target[k];
            if (tp_valid(g, m, tp) && pl->owner[plan_slot(pl, tp)] < 0) {
                pl->owner[plan_slot(pl, tp)] = (int32_t)i;
                pl->count[i]++;
            }
        }
    }
}

/* Every partition left goes to the least loaded member subscribing to it. */
static void spread_rest(const struct group *g, struct plan *pl)
{
    for (uint16_t t = 0; t < g->topic_count; t++) {
        for (int32_t p = 0; p < g->topics[t].partitions; p++) {
            uint32_t k = plan_slot(pl, (struct group_tp){.topic = t, .partition = p});
            int who = pl->owner[k] < 0 ? least_loaded(g, pl->count, pl->quota, t) : -1;
            if (who >= 0) {
                pl->owner[k] = who;
                pl->count[who]++;
            }
        }
    }
}

static void write_targets(struct group *g, const struct plan *pl)
{
    for (uint32_t i = 0; i < g->member_count; i++) {
        struct group_member *m = &g->members[i];
        free(m->target);
        m->target = malloc((pl->count[i] + 1) * sizeof(*m->target));
        ASSERT(m->target != NULL); /* bounded by GROUP_PARTITIONS_MAX */
        m->target_count = 0;
        for (uint16_t t = 0; t < g->topic_count; t++) {
            for (int32_t p = 0; p < g->topics[t].partitions; p++) {
                struct group_tp tp = {.topic = t, .partition = p};
                if (pl->owner[plan_slot(pl, tp)] == (int32_t)i) {
                    m->target[m->target_count++] = tp;
                }
            }
        }
        ASSERT(m->target_count == pl->count[i]);
    }
}

void group_rebalance(struct group *g, group_partitions_fn partitions, void *arg)
{
    g->generation++;
    if (g->member_count == 0) {
        return;
    }
    struct plan pl = {0};
    pl.total = refresh_topics(g, partitions, arg, pl.first);
    pl.owner = malloc((pl.total + 1) * sizeof(*pl.owner));
    pl.count = calloc(g->member_count, sizeof(*pl.count));
    pl.quota = calloc(g->member_count, sizeof(*pl.quota));
    ASSERT(pl.owner && pl.count && pl.quota); /* bounded by the GROUP_* limits */
    for (uint32_t k = 0; k < pl.total; k++) {
        pl.owner[k] = -1;
    }
    keep_sticky(g, &pl);
    spread_rest(g, &pl);
    write_targets(g, &pl);
    free(pl.owner);
    free(pl.count);
    free(pl.quota);
}

/* ---- membership ---- */

/* Checks a subscription before anything changes: names, and room for the
 * topics the group does not have yet. */
static int subscribe_check(const struct group *g, const char *const *topics, uint32_t topic_count)
{
    uint32_t unknown = 0;
    for (uint32_t i = 0; i < topic_count; i++) {
        size_t len = strlen(topics[i]);
        if (len == 0 || len > GROUP_ID_BYTES_MAX) {
            return -NG_EBADNAME;
        }
        unknown += group_topic_index(g, topics[i]) < 0;
    }
    return g->topic_count + unknown > GROUP_TOPICS_MAX ? -NG_ETOOBIG : 0;
}

static void subscribe(struct group *g, struct group_member *m, const char *const *topics,
                      uint32_t topic_count)
{
    uint64_t mask = 0;
    for (uint32_t i = 0; i < topic_count; i++) {
        int t = group_topic_index(g, topics[i]);
        if (t < 0) {
            ASSERT(g->topic_count < GROUP_TOPICS_MAX); /* subscribe_check() */
            t = (int)g->topic_count++;
            memcpy(g->topics[t].name, topics[i], strlen(topics[i]) + 1);
            g->topics[t].partitions = 0;
        }
        mask |= 1ull << t;
    }
    m->topics_mask = mask;
}

static int member_add(struct group *g, char id_out[GROUP_MEMBER_ID_BYTES])
{
    if (g->member_count == GROUP_MEMBERS_MAX) {
        return -NG_ETOOBIG;
    }
    struct group_member *grown = realloc(g->members, (g->member_count + 1) * sizeof(*grown));
    if (grown == NULL) {
        return -ENOMEM;
    }
    g->members = grown;
    /* Ids grow with the sequence, so appending keeps them sorted. */
    snprintf(id_out, GROUP_MEMBER_ID_BYTES, "member-%016" PRIx64, ++g->member_seq);
    struct group_member *m = &g->members[g->member_count++];
    memset(m, 0, sizeof(*m));
    memcpy(m->id, id_out, GROUP_MEMBER_ID_BYTES);
    return 0;
}

int group_join(struct group *g, const char *member_id, const char *const *topics,
               uint32_t topic_count, uint32_t session_ms, int64_t now_ms,
               group_partitions_fn partitions, void *arg, char id_out[GROUP_MEMBER_ID_BYTES])
{
    if (session_ms < GROUP_SESSION_MS_MIN || session_ms > GROUP_SESSION_MS_MAX ||
        topic_count == 0 || topic_count > GROUP_TOPICS_MAX) {
        return -NG_EBADARG;
    }
    int rc = subscribe_check(g, topics, topic_count);
    if (rc != 0) {
        return rc;
    }
    int i;
    if (member_id != NULL && member_id[0] != '\0') {
        i = member_index(g, member_id);
        if (i < 0) {
            return -NG_EUNKNOWN_MEMBER;
        }
        memcpy(id_out, g->members[i].id, GROUP_MEMBER_ID_BYTES);
    } else {
        rc = member_add(g, id_out);
        if (rc != 0) {
            return rc;
        }
        i = (int)g->member_count - 1;
    }
    struct group_member *m = &g->members[i];
    subscribe(g, m, topics, topic_count);
    m->session_ms = session_ms;
    m->deadline_ms = now_ms + session_ms;
    group_rebalance(g, partitions, arg);
    return 0;
}

static int list_set(struct group_tp **list, uint32_t *count, const struct group_tp *src, uint32_t n)
{
    struct group_tp *fresh = realloc(*list, (n + 1) * sizeof(*fresh));
    if (fresh == NULL) {
        return -ENOMEM;
    }
    memmove(fresh, src == *list ? fresh : src, n * sizeof(*fresh));
    *list = fresh;
    *count = n;
    return 0;
}

static bool held_by_other(const struct group *g, const struct group_member *self,
                          struct group_tp tp)
{
    for (uint32_t i = 0; i < g->member_count; i++) {
        const struct group_member *o = &g->members[i];
        if (o != self && tp_in(o->held, o->held_count, tp)) {
            return true;
        }
    }
    return false;
}

int group_heartbeat(struct group *g, const char *member_id, uint32_t gen, int64_t now_ms,
                    const struct group_tp **grant, uint32_t *grant_count, uint32_t *gen_out)
{
    int i = member_index(g, member_id);
    if (i < 0) {
        return -NG_EUNKNOWN_MEMBER;
    }
    struct group_member *m = &g->members[i];
    m->deadline_ms = now_ms + m->session_ms;
    if (gen == m->answered_gen) { /* it has seen its last grant: the rest is dropped */
        int rc = list_set(&m->held, &m->held_count, m->grant, m->grant_count);
        if (rc != 0) {
            return rc;
        }
    }
    struct group_tp fresh[GROUP_PARTITIONS_MAX];
    uint32_t n = 0;
    for (uint32_t k = 0; k < m->target_count; k++) {
        if (!held_by_other(g, m, m->target[k])) {
            fresh[n++] = m->target[k];
        }
    }
    int rc = list_set(&m->grant, &m->grant_count, fresh, n);
    for (uint32_t k = 0; rc == 0 && k < n; k++) { /* held from now on */
        if (!tp_in(m->held, m->held_count, fresh[k])) {
            struct group_tp *held = realloc(m->held, (m->held_count + 1) * sizeof(*held));
            rc = held == NULL ? -ENOMEM : 0;
            if (held != NULL) {
                held[m->held_count++] = fresh[k];
                m->held = held;
            }
        }
    }
    m->answered_gen = g->generation;
    *grant = m->grant;
    *grant_count = m->grant_count;
    *gen_out = g->generation;
    return rc;
}

static void member_remove(struct group *g, int i)
{
    member_free(&g->members[i]);
    memmove(&g->members[i], &g->members[i + 1],
            (g->member_count - (uint32_t)i - 1) * sizeof(*g->members));
    g->member_count--;
}

int group_leave(struct group *g, const char *member_id, group_partitions_fn partitions, void *arg)
{
    int i = member_index(g, member_id);
    if (i < 0) {
        return -NG_EUNKNOWN_MEMBER;
    }
    member_remove(g, i);
    group_rebalance(g, partitions, arg);
    return 0;
}

uint32_t group_expire(struct group *g, int64_t now_ms, group_partitions_fn partitions, void *arg)
{
    uint32_t removed = 0;
    for (uint32_t i = 0; i < g->member_count;) {
        if (g->members[i].deadline_ms < now_ms) {
            member_remove(g, (int)i);
            removed++;
        } else {
            i++;
        }
    }
    bool grown = false;
    for (uint32_t t = 0; t < g->topic_count; t++) {
        grown |= partitions(arg, g->topics[t].name) != g->topics[t].partitions;
    }
    if (removed > 0 || (grown && g->member_count > 0)) {
        group_rebalance(g, partitions, arg);
    }
    return removed;
}

int group_check_commit(const struct group *g, const char *member_id, uint32_t gen,
                       const char *topic, int32_t partition)
{
    const struct group_member *m = group_member_find(g, member_id);
    if (m == NULL) {
        return -NG_EUNKNOWN_MEMBER;
    }
    if (gen != m->answered_gen) {
        return -NG_EILLEGAL_GENERATION; /* from before its latest answer */
    }
    int t = group_topic_index(g, topic);
    struct group_tp tp = {.topic = (uint16_t)(t < 0 ? 0 : t), .partition = partition};
    return t >= 0 && tp_in(m->held, m->held_count, tp) ? 0 : -NG_EREBALANCE;
}
