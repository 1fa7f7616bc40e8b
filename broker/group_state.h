/*
 * broker/group_state.h — a pub/sub consumer group: its members, generations and
 * server-side assignment of partitions, with no I/O of its own.
 *
 * Invariants:
 * - Every partition of the group's topics is in at most one member's grant
 *   at a time, and a partition moves only after its old holder confirmed
 *   it let go (cooperative hand-over): the group first revokes it (the
 *   holder's next heartbeat answer omits it), and hands it to the new
 *   member only once the holder heartbeats again at that generation, or
 *   leaves, or times out.
 * - Assignment is sticky and balanced: a rebalance keeps each member's
 *   partitions up to its fair share (floor or ceil of partitions / members
 *   subscribed), and spreads the rest to the least loaded members.
 * - A member that sends no heartbeat for its session timeout is removed
 *   by group_expire(); its partitions are free at once (its commits are
 *   refused from then on, since it is unknown).
 * Threads: the owning worker's only.
 */
#ifndef NAGARE_BROKER_GROUP_STATE_H
#define NAGARE_BROKER_GROUP_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/assert.h"

/* Limits, each bounding the arrays below. A group's topics and partitions
 * bound its assignment arrays; 4096 partitions matches what one Fetch may
 * name (PROTO_REQUEST_PARTITIONS_MAX). */
#define GROUP_ID_BYTES_MAX 249
#define GROUP_MEMBER_ID_BYTES 48
#define GROUP_MEMBERS_MAX 1024
#define GROUP_TOPICS_MAX 64
#define GROUP_PARTITIONS_MAX 4096
#define GROUP_SESSION_MS_MIN 1000
#define GROUP_SESSION_MS_MAX 300000

struct group_tp {
    uint16_t topic; /* index into group.topics */
    int32_t partition;
};

struct group_member {
    char id[GROUP_MEMBER_ID_BYTES];
    uint64_t topics_mask; /* bit t: subscribes to group.topics[t] */
    uint32_t session_ms;
    int64_t deadline_ms;     /* last heartbeat + session */
    uint32_t answered_gen;   /* generation of the last grant sent to it */
    struct group_tp *target; /* what the assignment wants it to have */
    uint32_t target_count;
    struct group_tp *grant; /* what it may consume now (last answer) */
    uint32_t grant_count;
    struct group_tp *held; /* grant, plus what it was told to drop but
                                   has not confirmed dropping */
    uint32_t held_count;
};

struct group_topic {
    char name[GROUP_ID_BYTES_MAX + 1];
    int32_t partitions;
};

struct group {
    char id[GROUP_ID_BYTES_MAX + 1];
    uint32_t generation;          /* bumped by every membership change */
    struct group_member *members; /* sorted by id */
    uint32_t member_count;
    struct group_topic topics[GROUP_TOPICS_MAX];
    uint32_t topic_count;
    uint64_t member_seq; /* for new member ids */
};

/* Partitions of a topic, asked of the broker when a member subscribes and
 * when a rebalance runs: -1 when the topic does not exist (yet). */
typedef int32_t (*group_partitions_fn)(void *arg, const char *topic);

void group_init(struct group *g, const char *id, size_t id_len);
void group_fini(struct group *g);

/* Adds a member subscribing to topics (names; count <= GROUP_TOPICS_MAX),
 * or re-subscribes an existing one (member_id given), and rebalances.
 * A new member gets an id written to id_out. Returns 0, -NG_EUNKNOWN_MEMBER
 * for an id the group does not know, -NG_ETOOBIG past a limit,
 * -NG_EBADARG for a session timeout out of range. */
MUST_USE int group_join(struct group *g, const char *member_id, const char *const *topics,
                        uint32_t topic_count, uint32_t session_ms, int64_t now_ms,
                        group_partitions_fn partitions, void *arg,
                        char id_out[GROUP_MEMBER_ID_BYTES]);

/* A member's heartbeat: it works at generation `gen` (the last answer it
 * saw), so everything that answer omitted is dropped. Extends its session
 * and returns in *grant (valid until the next call on g) the partitions it
 * may consume now, and the current generation. Returns 0,
 * -NG_EUNKNOWN_MEMBER. */
MUST_USE int group_heartbeat(struct group *g, const char *member_id, uint32_t gen, int64_t now_ms,
                             const struct group_tp **grant, uint32_t *grant_count,
                             uint32_t *gen_out);

/* Removes a member and rebalances. Returns 0 or -NG_EUNKNOWN_MEMBER. */
MUST_USE int group_leave(struct group *g, const char *member_id, group_partitions_fn partitions,
                         void *arg);

/* Removes members whose session ran out; returns how many. */
uint32_t group_expire(struct group *g, int64_t now_ms, group_partitions_fn partitions, void *arg);

/* Recomputes the assignment (a topic gained partitions, say). */
void group_rebalance(struct group *g, group_partitions_fn partitions, void *arg);

/* May member commit an offset for (topic, partition)? It must be known,
 * commit at the generation of the last answer it was given (an older one
 * is stale: fenced), and still hold the partition: one in its grant, or
 * one it was told to drop but has not confirmed dropping, which nobody
 * else can have yet; so a member saves its progress on a revoked
 * partition before it lets go. Returns 0, -NG_EUNKNOWN_MEMBER,
 * -NG_EILLEGAL_GENERATION, -NG_EREBALANCE (not its partition). */
MUST_USE int group_check_commit(const struct group *g, const char *member_id, uint32_t gen,
                                const char *topic, int32_t partition);

/* The member with that id, or NULL. */
const struct group_member *group_member_find(const struct group *g, const char *member_id);

/* The index of topic in g->topics, or -1. */
int group_topic_index(const struct group *g, const char *topic);

#endif
