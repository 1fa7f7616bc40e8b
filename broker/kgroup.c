/*
 * broker/kgroup.c — Kafka's classic group membership (broker/kgroup.h).
 *
 * The rules follow Kafka's group coordinator (KIP-62 rebalance timeouts,
 * KIP-134 initial delay, KIP-345 static members, KIP-394 member ids
 * given before the first join): a change of membership or of a member's
 * assignors starts a rebalance; the barrier completes when every member
 * has joined again, or at the rebalance timeout without those that did
 * not; the leader assigns through its SyncGroup.
 */
#include "broker/kgroup.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/bytes.h"
#include "base/err.h"

/* ---- strings ---- */

static bool str_is(struct kgroup_str a, const char *b)
{
    size_t n = strlen(b);
    return a.len == n && (n == 0 || memcmp(a.ptr, b, n) == 0);
}

static void str_put(char *dst, size_t cap, struct kgroup_str s)
{
    ASSERT(s.len < cap);
    if (s.len > 0) {
        memcpy(dst, s.ptr, s.len);
    }
    dst[s.len] = '\0';
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* ---- members ---- */

static struct kgroup_member *member_find(struct kgroup *g, struct kgroup_str id)
{
    for (uint32_t i = 0; id.len > 0 && i < g->member_count; i++) {
        if (str_is(id, g->members[i].id)) {
            return &g->members[i];
        }
    }
    return NULL;
}

static struct kgroup_member *member_by_instance(struct kgroup *g, struct kgroup_str instance)
{
    for (uint32_t i = 0; instance.len > 0 && i < g->member_count; i++) {
        if (str_is(instance, g->members[i].instance_id)) {
            return &g->members[i];
        }
    }
    return NULL;
}

/* The member named by id, checked against the instance id the request
 * gives (KIP-345): 0 with *out, -NG_EUNKNOWN_MEMBER, -NG_EFENCED_INSTANCE
 * (the instance belongs to another member id: this one was replaced). */
static int member_lookup(struct kgroup *g, struct kgroup_str id, struct kgroup_str instance,
                         struct kgroup_member **out)
{
    struct kgroup_member *by_instance = member_by_instance(g, instance);
    struct kgroup_member *m = member_find(g, id);
    if (by_instance != NULL && by_instance != m) {
        return -NG_EFENCED_INSTANCE;
    }
    if (m == NULL) {
        return -NG_EUNKNOWN_MEMBER;
    }
    *out = m;
    return 0;
}

static bool is_leader(const struct kgroup *g, const struct kgroup_member *m)
{
    return strcmp(g->leader_id, m->id) == 0;
}

static void answer_join(struct kgroup *g, struct kgroup_member *m, int err,
                        const struct kgroup_join_answer *a)
{
    void *w = m->join_waiter;
    if (w != NULL) {
        m->join_waiter = NULL;
        g->ops->join_done(g->arg, w, err, a);
    }
}

static void answer_sync(struct kgroup *g, struct kgroup_member *m, int err)
{
    void *w = m->sync_waiter;
    if (w != NULL) {
        m->sync_waiter = NULL;
        g->ops->sync_done(g->arg, w, err, err == 0 ? m->assignment : NULL,
                          err == 0 ? m->assignment_len : 0);
    }
}

/* Removes members[i], answering what it holds with err. Later members
 * keep their order (the first joined leads when the leader goes). */
static void member_remove(struct kgroup *g, uint32_t i, int err)
{
    ASSERT(i < g->member_count);
    struct kgroup_member *m = &g->members[i];
    answer_join(g, m, err, NULL);
    answer_sync(g, m, err);
    if (is_leader(g, m)) {
        g->leader_id[0] = '\0';
    }
    free(m->blob);
    free(m->assignment);
    memmove(m, m + 1, (g->member_count - i - 1) * sizeof(*m));
    g->member_count--;
}

static void pending_remove(struct kgroup *g, uint32_t i)
{
    ASSERT(i < g->pending_count);
    g->pending[i] = g->pending[--g->pending_count];
}

static int pending_find(const struct kgroup *g, struct kgroup_str id)
{
    for (uint32_t i = 0; i < g->pending_count; i++) {
        if (str_is(id, g->pending[i].id)) {
            return (int)i;
        }
    }
    return -1;
}

/* A new member id: the client id (cut to leave room) and a sequence
 * number, as Kafka's are the client id and a UUID. */
static void id_new(struct kgroup *g, struct kgroup_str client_id,
                   char out[KGROUP_MEMBER_ID_BYTES_MAX + 1])
{
    enum { SUFFIX_BYTES = 1 + 16 };
    uint32_t keep = client_id.len < KGROUP_MEMBER_ID_BYTES_MAX - SUFFIX_BYTES
                        ? client_id.len
                        : KGROUP_MEMBER_ID_BYTES_MAX - SUFFIX_BYTES;
    int n = snprintf(out, KGROUP_MEMBER_ID_BYTES_MAX + 1, "%.*s-%016llx", (int)keep,
                     keep > 0 ? client_id.ptr : "", (unsigned long long)++g->member_seq);
    ASSERT(n > 0 && n <= KGROUP_MEMBER_ID_BYTES_MAX);
}

/* Room for one more member or pending id; false at KGROUP_MEMBERS_MAX. */
static bool room(const struct kgroup *g)
{
    return g->member_count + g->pending_count < KGROUP_MEMBERS_MAX;
}

/* The array v (count used of *cap elements of elem bytes) with room for
 * one more: v itself, or moved to a larger block (doubling, up to
 * KGROUP_MEMBERS_MAX, which room() keeps count below); NULL when memory
 * ran out, v unchanged. */
static void *reserve(void *v, uint32_t count, uint32_t *cap, size_t elem)
{
    ASSERT(count < KGROUP_MEMBERS_MAX);
    if (count < *cap) {
        return v;
    }
    uint32_t next = *cap == 0 ? 4 : *cap * 2;
    next = next < KGROUP_MEMBERS_MAX ? next : KGROUP_MEMBERS_MAX;
    void *grown = realloc(v, next * elem);
    if (grown != NULL) {
        *cap = next;
    }
    return grown;
}

static int members_reserve(struct kgroup *g)
{
    struct kgroup_member *v =
        reserve(g->members, g->member_count, &g->member_cap, sizeof(*g->members));
    if (v == NULL) {
        return -ENOMEM;
    }
    g->members = v;
    return 0;
}

static int pending_add(struct kgroup *g, const char *id, int64_t deadline_ms)
{
    struct kgroup_pending *v =
        reserve(g->pending, g->pending_count, &g->pending_cap, sizeof(*g->pending));
    if (v == NULL) {
        return -ENOMEM;
    }
    g->pending = v;
    struct kgroup_pending *p = &g->pending[g->pending_count++];
    memcpy(p->id, id, strlen(id) + 1);
    p->deadline_ms = deadline_ms;
    return 0;
}

/* ---- assignors ---- */

static bool offers(const struct kgroup_member *m, const char *name)
{
    for (uint32_t i = 0; i < m->protocol_count; i++) {
        if (strcmp(m->protocols[i].name, name) == 0) {
            return true;
        }
    }
    return false;
}

/* Whether a join may enter: the group's protocol type, and at least one
 * assignor that every other member offers too (Kafka's
 * supportsProtocols). Checked against the members other than self. */
static bool protocols_fit(const struct kgroup *g, const struct kgroup_join_req *r,
                          const struct kgroup_member *self)
{
    bool others = g->member_count > (self != NULL ? 1u : 0u);
    if (!others) {
        return r->protocol_type.len > 0;
    }
    if (!str_is(r->protocol_type, g->protocol_type)) {
        return false;
    }
    for (uint32_t k = 0; k < r->protocol_count; k++) {
        char name[KGROUP_NAME_BYTES_MAX + 1];
        str_put(name, sizeof(name), r->protocols[k].name);
        bool all = true;
        for (uint32_t i = 0; i < g->member_count && all; i++) {
            all = &g->members[i] == self || offers(&g->members[i], name);
        }
        if (all) {
            return true;
        }
    }
    return false;
}

/* The assignor for the generation: among those every member offers, the
 * one most members prefer (each votes for its first such one); a tie
 * goes to the first member's preference. At least one exists
 * (protocols_fit() let every member in). */
static const char *protocol_choose(const struct kgroup *g)
{
    const struct kgroup_member *first = &g->members[0];
    const char *best = NULL;
    uint32_t best_votes = 0;
    for (uint32_t k = 0; k < first->protocol_count; k++) {
        const char *name = first->protocols[k].name;
        bool all = true;
        for (uint32_t i = 1; i < g->member_count && all; i++) {
            all = offers(&g->members[i], name);
        }
        if (!all) {
            continue;
        }
        uint32_t votes = 0;
        for (uint32_t i = 0; i < g->member_count; i++) {
            const struct kgroup_member *m = &g->members[i];
            for (uint32_t j = 0; j < m->protocol_count; j++) {
                const char *pick = m->protocols[j].name;
                bool candidate = true;
                for (uint32_t o = 0; o < g->member_count && candidate; o++) {
                    candidate = offers(&g->members[o], pick);
                }
                if (candidate) {
                    votes += strcmp(pick, name) == 0;
                    break;
                }
            }
        }
        if (best == NULL || votes > best_votes) {
            best = name;
            best_votes = votes;
        }
    }
    ASSERT(best != NULL);
    return best;
}

/* Copies the join's assignors into one blob owned by m. Returns 0,
 * -NG_EGROUP_FULL past KGROUP_MEMBER_BYTES_MAX, -ENOMEM. */
static int protocols_set(struct kgroup_member *m, const struct kgroup_join_req *r)
{
    size_t bytes = 0;
    for (uint32_t k = 0; k < r->protocol_count; k++) {
        bytes += r->protocols[k].name.len + 1 + r->protocols[k].metadata_len;
    }
    if (bytes > KGROUP_MEMBER_BYTES_MAX) {
        return -NG_EGROUP_FULL;
    }
    uint8_t *blob = malloc(bytes);
    if (blob == NULL) {
        return -ENOMEM;
    }
    free(m->blob);
    m->blob = blob;
    m->protocol_count = r->protocol_count;
    size_t at = 0;
    for (uint32_t k = 0; k < r->protocol_count; k++) {
        const struct kgroup_protocol_in *in = &r->protocols[k];
        char *name = (char *)blob + at;
        str_put(name, in->name.len + 1, in->name);
        at += in->name.len + 1;
        if (in->metadata_len > 0) {
            memcpy(blob + at, in->metadata, in->metadata_len);
        }
        m->protocols[k] = (struct kgroup_protocol){
            .name = name, .metadata = blob + at, .metadata_len = in->metadata_len};
        at += in->metadata_len;
    }
    return 0;
}

/* Whether the join offers the same assignors, with the same metadata, in
 * the same order as m does (Kafka's MemberMetadata.matches). */
static bool protocols_same(const struct kgroup_member *m, const struct kgroup_join_req *r)
{
    if (m->protocol_count != r->protocol_count) {
        return false;
    }
    for (uint32_t k = 0; k < r->protocol_count; k++) {
        const struct kgroup_protocol_in *in = &r->protocols[k];
        const struct kgroup_protocol *p = &m->protocols[k];
        if (!str_is(in->name, p->name) || in->metadata_len != p->metadata_len ||
            (in->metadata_len > 0 && memcmp(in->metadata, p->metadata, in->metadata_len) != 0)) {
            return false;
        }
    }
    return true;
}

/* ---- the barrier ---- */

static void join_answer_one(struct kgroup *g, struct kgroup_member *m)
{
    bool leader = is_leader(g, m);
    struct kgroup_join_answer a = {.generation = g->generation,
                                   .protocol_type = g->protocol_type,
                                   .protocol_name = g->protocol_name,
                                   .leader_id = g->leader_id,
                                   .member_id = m->id,
                                   .members = leader ? g->members : NULL,
                                   .member_count = leader ? g->member_count : 0};
    answer_join(g, m, 0, &a);
}

/* A rebalance begins: held SyncGroups learn of it, and the barrier waits
 * for every member up to the longest rebalance timeout among them (from
 * EMPTY, first for the initial delay). */
static void rebalance_begin(struct kgroup *g, int64_t now_ms)
{
    if (g->state == KGROUP_PREPARING) {
        return;
    }
    bool from_empty = g->state == KGROUP_EMPTY;
    g->state = KGROUP_PREPARING;
    uint32_t longest = 0;
    for (uint32_t i = 0; i < g->member_count; i++) {
        struct kgroup_member *m = &g->members[i];
        answer_sync(g, m, -NG_EREBALANCE);
        longest = m->rebalance_ms > longest ? m->rebalance_ms : longest;
    }
    g->barrier_ms = now_ms + longest;
    g->delay_ms = from_empty ? min64(now_ms + g->initial_delay_ms, g->barrier_ms) : now_ms;
}

static bool all_joined(const struct kgroup *g)
{
    for (uint32_t i = 0; i < g->member_count; i++) {
        if (g->members[i].join_waiter == NULL) {
            return false;
        }
    }
    return true;
}

/* Completes the barrier when it may: past the initial delay, and every
 * member in or the rebalance timeout out (those not in are removed). */
static void barrier_try(struct kgroup *g, int64_t now_ms)
{
    if (g->state != KGROUP_PREPARING || now_ms < g->delay_ms ||
        (!all_joined(g) && now_ms < g->barrier_ms)) {
        return;
    }
    for (uint32_t i = g->member_count; i-- > 0;) {
        if (g->members[i].join_waiter == NULL) {
            member_remove(g, i, -NG_EUNKNOWN_MEMBER); /* holds nothing: no answer */
        }
    }
    g->generation++;
    if (g->member_count == 0) {
        g->state = KGROUP_EMPTY;
        g->protocol_type[0] = '\0';
        g->protocol_name[0] = '\0';
        g->leader_id[0] = '\0';
        return;
    }
    const char *name = protocol_choose(g);
    memmove(g->protocol_name, name, strlen(name) + 1);
    if (g->leader_id[0] == '\0') {
        memcpy(g->leader_id, g->members[0].id, sizeof(g->leader_id));
    }
    g->state = KGROUP_COMPLETING;
    for (uint32_t i = 0; i < g->member_count; i++) {
        struct kgroup_member *m = &g->members[i];
        free(m->assignment);
        m->assignment = NULL;
        m->assignment_len = 0;
        m->deadline_ms = now_ms + m->session_ms;
        join_answer_one(g, m);
    }
}

/* ---- lifetime ---- */

void kgroup_init(struct kgroup *g, const char *id, size_t id_len, uint32_t initial_delay_ms,
                 uint64_t seq_start, const struct kgroup_ops *ops, void *arg)
{
    ASSERT(id_len <= KGROUP_ID_BYTES_MAX && ops != NULL && ops->join_done != NULL &&
           ops->sync_done != NULL);
    memset(g, 0, sizeof(*g));
    memcpy(g->id, id, id_len);
    g->state = KGROUP_EMPTY;
    g->initial_delay_ms = initial_delay_ms;
    g->member_seq = seq_start;
    g->ops = ops;
    g->arg = arg;
}

void kgroup_fini(struct kgroup *g)
{
    while (g->member_count > 0) {
        member_remove(g, g->member_count - 1, -NG_ECLOSED);
    }
    free(g->members);
    free(g->pending);
    memset(g, 0, sizeof(*g));
}

/* ---- requests ---- */

/* Fills a member from a join (its blob set by protocols_set()). */
static void member_fill(struct kgroup_member *m, const struct kgroup_join_req *r, int64_t now_ms)
{
    str_put(m->instance_id, sizeof(m->instance_id), r->instance_id);
    str_put(m->client_id, sizeof(m->client_id), r->client_id);
    str_put(m->client_host, sizeof(m->client_host), r->client_host);
    m->session_ms = r->session_ms;
    m->rebalance_ms = r->rebalance_ms;
    m->deadline_ms = now_ms + r->session_ms;
}

/* Adds a member with id, holding waiter. */
static int member_add(struct kgroup *g, const char *id, const struct kgroup_join_req *r,
                      int64_t now_ms, void *waiter)
{
    int rc = members_reserve(g);
    if (rc != 0) {
        return rc;
    }
    struct kgroup_member *m = &g->members[g->member_count];
    memset(m, 0, sizeof(*m));
    rc = protocols_set(m, r);
    if (rc != 0) {
        return rc;
    }
    memcpy(m->id, id, strlen(id) + 1);
    member_fill(m, r, now_ms);
    m->join_waiter = waiter;
    g->member_count++;
    if (g->member_count == 1) {
        str_put(g->protocol_type, sizeof(g->protocol_type), r->protocol_type);
    }
    bool delaying = g->state == KGROUP_PREPARING && now_ms < g->delay_ms;
    rebalance_begin(g, now_ms);
    if (delaying) { /* a new member during the initial delay extends it */
        g->delay_ms = min64(now_ms + g->initial_delay_ms, g->barrier_ms);
    }
    barrier_try(g, now_ms);
    return 0;
}

/* A join of a member the group has. */
static int member_rejoin(struct kgroup *g, struct kgroup_member *m, const struct kgroup_join_req *r,
                         int64_t now_ms, void *waiter)
{
    bool same = protocols_same(m, r);
    if (!same) {
        int rc = protocols_set(m, r);
        if (rc != 0) {
            return rc;
        }
    }
    member_fill(m, r, now_ms);
    if (g->member_count == 1) { /* alone, it may change the group's type */
        str_put(g->protocol_type, sizeof(g->protocol_type), r->protocol_type);
    }
    answer_join(g, m, -NG_EREBALANCE, NULL); /* an older join its client gave up */
    m->join_waiter = waiter;
    if (same && g->state != KGROUP_PREPARING && !(g->state == KGROUP_STABLE && is_leader(g, m))) {
        /* Nothing changed: it lost the answer, or (a follower) checks in. */
        join_answer_one(g, m);
        return 0;
    }
    rebalance_begin(g, now_ms);
    barrier_try(g, now_ms);
    return 0;
}

int kgroup_join(struct kgroup *g, int64_t now_ms, const struct kgroup_join_req *r, void *waiter,
                char id_out[KGROUP_MEMBER_ID_BYTES_MAX + 1])
{
    ASSERT(r->member_id.len <= KGROUP_MEMBER_ID_BYTES_MAX &&
           r->instance_id.len <= KGROUP_MEMBER_ID_BYTES_MAX &&
           r->client_id.len <= KGROUP_NAME_BYTES_MAX &&
           r->client_host.len <= KGROUP_NAME_BYTES_MAX &&
           r->protocol_type.len <= KGROUP_NAME_BYTES_MAX);
    ASSERT(r->protocol_count >= 1 && r->protocol_count <= KGROUP_PROTOCOLS_MAX);
    ASSERT(r->session_ms >= KGROUP_SESSION_MS_MIN && r->session_ms <= KGROUP_SESSION_MS_MAX);
    ASSERT(r->rebalance_ms >= 1 && waiter != NULL);
    for (uint32_t k = 0; k < r->protocol_count; k++) {
        ASSERT(r->protocols[k].name.len <= KGROUP_NAME_BYTES_MAX);
    }
    struct kgroup_member *m = NULL;
    if (r->member_id.len > 0) {
        int p = pending_find(g, r->member_id);
        if (p < 0) {
            int rc = member_lookup(g, r->member_id, r->instance_id, &m);
            if (rc != 0) {
                return rc;
            }
        }
        if (!protocols_fit(g, r, m)) {
            return -NG_EINCONSISTENT_PROTOCOL;
        }
        if (m != NULL) {
            return member_rejoin(g, m, r, now_ms, waiter);
        }
        memcpy(id_out, g->pending[p].id, sizeof(g->pending[p].id));
        pending_remove(g, (uint32_t)p);
        return member_add(g, id_out, r, now_ms, waiter);
    }
    struct kgroup_member *stat = member_by_instance(g, r->instance_id);
    if (!protocols_fit(g, r, stat)) {
        return -NG_EINCONSISTENT_PROTOCOL;
    }
    id_new(g, r->client_id, id_out);
    if (stat != NULL) {
        /* A static member back under a new id (a restart): the old id is
         * fenced, and the member keeps its place (KIP-345). */
        answer_join(g, stat, -NG_EFENCED_INSTANCE, NULL);
        answer_sync(g, stat, -NG_EFENCED_INSTANCE);
        bool leader = is_leader(g, stat);
        memcpy(stat->id, id_out, strlen(id_out) + 1);
        if (leader) {
            memcpy(g->leader_id, stat->id, sizeof(g->leader_id));
        }
        return member_rejoin(g, stat, r, now_ms, waiter);
    }
    if (!room(g)) {
        return -NG_EGROUP_FULL;
    }
    if (r->member_id_required && r->instance_id.len == 0) {
        int rc = pending_add(g, id_out, now_ms + r->session_ms);
        return rc != 0 ? rc : -NG_EMEMBER_ID_REQUIRED;
    }
    return member_add(g, id_out, r, now_ms, waiter);
}

/* Takes the leader's assignments: every member's is replaced (a member
 * the leader does not name gets none). All or nothing. */
static int assignments_take(struct kgroup *g, const struct kgroup_assignment_in *as, uint32_t count)
{
    for (uint32_t k = 0; k < count; k++) {
        if (as[k].assignment_len > KGROUP_MEMBER_BYTES_MAX) {
            return -NG_EGROUP_FULL;
        }
    }
    uint8_t **copies = calloc(g->member_count, sizeof(*copies));
    uint32_t *lens = calloc(g->member_count, sizeof(*lens));
    int rc = copies != NULL && lens != NULL ? 0 : -ENOMEM;
    for (uint32_t k = 0; rc == 0 && k < count; k++) {
        struct kgroup_member *m = member_find(g, as[k].member_id);
        if (m == NULL || as[k].assignment_len == 0) {
            continue; /* not a member (any more): ignored, as Kafka does */
        }
        uint32_t i = (uint32_t)(m - g->members);
        free(copies[i]); /* named twice: the last one counts */
        copies[i] = malloc(as[k].assignment_len);
        if (copies[i] == NULL) {
            rc = -ENOMEM;
            break;
        }
        memcpy(copies[i], as[k].assignment, as[k].assignment_len);
        lens[i] = as[k].assignment_len;
    }
    for (uint32_t i = 0; i < g->member_count && copies != NULL; i++) {
        if (rc == 0) {
            free(g->members[i].assignment);
            g->members[i].assignment = copies[i];
            g->members[i].assignment_len = lens[i];
        } else {
            free(copies[i]);
        }
    }
    free(copies);
    free(lens);
    return rc;
}

/* A member's request at generation: 0 with *out when the member is known
 * at the group's generation (its session extended), else member_lookup()'s
 * error or -NG_EILLEGAL_GENERATION. */
static int member_checks_in(struct kgroup *g, int64_t now_ms, struct kgroup_str member_id,
                            struct kgroup_str instance_id, int32_t generation,
                            struct kgroup_member **out)
{
    int rc = member_lookup(g, member_id, instance_id, out);
    if (rc != 0) {
        return rc;
    }
    if (generation != g->generation) {
        return -NG_EILLEGAL_GENERATION;
    }
    (*out)->deadline_ms = now_ms + (*out)->session_ms;
    return 0;
}

int kgroup_sync(struct kgroup *g, int64_t now_ms, struct kgroup_str member_id,
                struct kgroup_str instance_id, int32_t generation, struct kgroup_str protocol_type,
                struct kgroup_str protocol_name, const struct kgroup_assignment_in *assignments,
                uint32_t assignment_count, void *waiter)
{
    ASSERT(waiter != NULL);
    struct kgroup_member *m;
    int rc = member_checks_in(g, now_ms, member_id, instance_id, generation, &m);
    if (rc != 0) {
        return rc;
    }
    if ((protocol_type.len > 0 && !str_is(protocol_type, g->protocol_type)) ||
        (protocol_name.len > 0 && !str_is(protocol_name, g->protocol_name))) {
        return -NG_EINCONSISTENT_PROTOCOL;
    }
    if (g->state == KGROUP_PREPARING) {
        return -NG_EREBALANCE;
    }
    ASSERT(g->state == KGROUP_COMPLETING || g->state == KGROUP_STABLE);
    if (g->state == KGROUP_COMPLETING && is_leader(g, m)) {
        rc = assignments_take(g, assignments, assignment_count);
        if (rc != 0) {
            return rc;
        }
        g->state = KGROUP_STABLE;
    }
    answer_sync(g, m, -NG_EREBALANCE); /* an older sync its client gave up */
    m->sync_waiter = waiter;
    if (g->state == KGROUP_STABLE) {
        for (uint32_t i = 0; i < g->member_count; i++) {
            answer_sync(g, &g->members[i], 0);
        }
    }
    return 0;
}

int kgroup_heartbeat(struct kgroup *g, int64_t now_ms, struct kgroup_str member_id,
                     struct kgroup_str instance_id, int32_t generation)
{
    struct kgroup_member *m;
    int rc = member_checks_in(g, now_ms, member_id, instance_id, generation, &m);
    return rc == 0 && g->state == KGROUP_PREPARING ? -NG_EREBALANCE : rc;
}

int kgroup_commit_check(struct kgroup *g, int64_t now_ms, struct kgroup_str member_id,
                        struct kgroup_str instance_id, int32_t generation)
{
    if (generation < 0 && g->state == KGROUP_EMPTY) {
        return 0;
    }
    if (g->state == KGROUP_COMPLETING) {
        return -NG_EREBALANCE;
    }
    struct kgroup_member *m;
    return member_checks_in(g, now_ms, member_id, instance_id, generation, &m);
}

int kgroup_leave(struct kgroup *g, int64_t now_ms, struct kgroup_str member_id,
                 struct kgroup_str instance_id)
{
    struct kgroup_member *m = NULL;
    int rc = 0;
    if (member_id.len > 0) {
        rc = member_lookup(g, member_id, instance_id, &m);
    } else {
        m = member_by_instance(g, instance_id);
        rc = m != NULL ? 0 : -NG_EUNKNOWN_MEMBER;
    }
    if (rc != 0) {
        return rc;
    }
    member_remove(g, (uint32_t)(m - g->members), -NG_EUNKNOWN_MEMBER);
    rebalance_begin(g, now_ms);
    barrier_try(g, now_ms);
    return 0;
}

int64_t kgroup_tick(struct kgroup *g, int64_t now_ms)
{
    for (uint32_t i = g->pending_count; i-- > 0;) {
        if (g->pending[i].deadline_ms <= now_ms) {
            pending_remove(g, i);
        }
    }
    bool removed = false;
    for (uint32_t i = g->member_count; i-- > 0;) {
        const struct kgroup_member *m = &g->members[i];
        if (m->deadline_ms <= now_ms && m->join_waiter == NULL && m->sync_waiter == NULL) {
            member_remove(g, i, -NG_EUNKNOWN_MEMBER);
            removed = true;
        }
    }
    if (removed) {
        rebalance_begin(g, now_ms);
    }
    barrier_try(g, now_ms);
    int64_t next = INT64_MAX;
    for (uint32_t i = 0; i < g->pending_count; i++) {
        next = min64(next, g->pending[i].deadline_ms);
    }
    for (uint32_t i = 0; i < g->member_count; i++) {
        const struct kgroup_member *m = &g->members[i];
        if (m->join_waiter == NULL && m->sync_waiter == NULL) {
            next = min64(next, m->deadline_ms);
        }
    }
    if (g->state == KGROUP_PREPARING) {
        next = min64(next, now_ms < g->delay_ms ? g->delay_ms : g->barrier_ms);
    }
    return next;
}

const char *kgroup_state_name(enum kgroup_state s)
{
    switch (s) {
    case KGROUP_EMPTY:
        return "Empty";
    case KGROUP_PREPARING:
        return "PreparingRebalance";
    case KGROUP_COMPLETING:
        return "CompletingRebalance";
    case KGROUP_STABLE:
        return "Stable";
    }
    UNREACHABLE();
}

const uint8_t *kgroup_member_metadata(const struct kgroup_member *m, const char *name,
                                      uint32_t *len_out)
{
    for (uint32_t i = 0; i < m->protocol_count; i++) {
        if (strcmp(m->protocols[i].name, name) == 0) {
            *len_out = m->protocols[i].metadata_len;
            return m->protocols[i].metadata;
        }
    }
    *len_out = 0;
    return NULL;
}

int kgroup_assignment_each(const uint8_t *p, uint32_t len, kgroup_assigned_fn *fn, void *arg)
{
    ASSERT(p != NULL || len == 0);
    struct rd r = rd_make(p, len);
    int16_t version = (int16_t)rd_be16(&r);
    int32_t topics = (int32_t)rd_be32(&r);
    if (r.err != 0) {
        return r.err;
    }
    if (version < 0 || topics < 0) {
        return -NG_EBADCOUNT;
    }
    for (int32_t t = 0; t < topics; t++) {
        int16_t name_len = (int16_t)rd_be16(&r);
        if (r.err == 0 && name_len < 0) {
            return -NG_EBADLEN;
        }
        const uint8_t *name = rd_take(&r, (size_t)(name_len > 0 ? name_len : 0));
        int32_t parts = (int32_t)rd_be32(&r);
        if (r.err != 0) {
            return r.err;
        }
        if (parts < 0) {
            return -NG_EBADCOUNT;
        }
        if ((size_t)parts > rd_left(&r) / 4) {
            return -NG_ETRUNCATED;
        }
        for (int32_t i = 0; i < parts; i++) {
            fn(arg, (const char *)name, (size_t)name_len, (int32_t)rd_be32(&r));
        }
    }
    return 0;
}
