/*
 * broker/kgroup.h — a Kafka classic consumer group (JoinGroup, SyncGroup,
 * Heartbeat, LeaveGroup): the coordinator's membership state machine, with
 * no I/O of its own. Kafka's clients assign partitions themselves: the
 * group only runs the join barrier, picks a leader and a protocol, passes
 * the members' metadata to the leader and hands each member the part of
 * the leader's assignment that names it (docs/kafka.md, Consumer groups).
 *
 * Invariants:
 * - state is one of Kafka's: EMPTY (no members), PREPARING (a rebalance:
 *   the barrier waits for every member to join again), COMPLETING (joined:
 *   waiting for the leader's assignment), STABLE (assigned); the
 *   generation is bumped each time a barrier completes, and a member's
 *   request at another generation is refused (ILLEGAL_GENERATION).
 * - A held request (a JoinGroup waiting for the barrier, a SyncGroup
 *   waiting for the leader) belongs to exactly one member, and each is
 *   answered exactly once through the owner's callbacks: by the barrier
 *   completing, by the leader's SyncGroup, or with an error when its member
 *   is removed or a new rebalance starts. A member holding a request does
 *   not expire: it waits on the coordinator, not the other way round.
 * - Memory is bounded: at most KGROUP_MEMBERS_MAX members, each holding at
 *   most KGROUP_MEMBER_BYTES_MAX of metadata and assignment, copied in
 *   (request frames do not outlive their answers).
 * Threads: the owning worker's only. The callbacks run inside the call
 * that completes the request (kgroup_join(), kgroup_sync(), kgroup_leave(),
 * kgroup_tick(), kgroup_fini()); they must not call back into the group.
 */
#ifndef NAGARE_BROKER_KGROUP_H
#define NAGARE_BROKER_KGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/assert.h"

/* Limits. Names as Kafka bounds them in practice: a group id, member id
 * or protocol name is a short string (Kafka's are int16-length strings, but
 * its own member ids are a client id plus a UUID). 1,000 members: Kafka's
 * group.max.size is unbounded by default; one broker's group beyond this
 * is a configuration mistake. A member's metadata (its subscription, with
 * owned partitions for the cooperative assignor) and assignment: 256 KiB
 * covers thousands of topic-partitions; together at most 256 MiB per
 * group, bounded by the broker's memory budget long before. */
#define KGROUP_ID_BYTES_MAX 249
#define KGROUP_MEMBER_ID_BYTES_MAX 255
#define KGROUP_NAME_BYTES_MAX 255 /* protocol type and name, client id, host */
#define KGROUP_MEMBERS_MAX 1000u
#define KGROUP_PROTOCOLS_MAX 16u /* assignors one member offers */
#define KGROUP_MEMBER_BYTES_MAX (256u << 10)
/* A member's session and rebalance timeouts, as Kafka's broker bounds
 * them (group.min/max.session.timeout.ms defaults). */
#define KGROUP_SESSION_MS_MIN 6000u
#define KGROUP_SESSION_MS_MAX 1800000u

enum kgroup_state {
    KGROUP_EMPTY = 0,
    KGROUP_PREPARING,  /* Kafka's PreparingRebalance */
    KGROUP_COMPLETING, /* Kafka's CompletingRebalance (AwaitingSync) */
    KGROUP_STABLE,
};

/* A string in a request: ptr need not be NUL-terminated; len <= its bound. */
struct kgroup_str {
    const char *ptr;
    uint32_t len;
};

/* One assignor a member offers, in its order of preference. */
struct kgroup_protocol_in {
    struct kgroup_str name;
    const uint8_t *metadata;
    uint32_t metadata_len;
};

struct kgroup_join_req {
    struct kgroup_str member_id;   /* empty: a new member */
    struct kgroup_str instance_id; /* empty: a dynamic member (KIP-345) */
    struct kgroup_str client_id;
    struct kgroup_str client_host;
    struct kgroup_str protocol_type; /* "consumer" for consumers */
    const struct kgroup_protocol_in *protocols;
    uint32_t protocol_count; /* 1 .. KGROUP_PROTOCOLS_MAX */
    uint32_t session_ms;     /* KGROUP_SESSION_MS_MIN .. _MAX */
    uint32_t rebalance_ms;   /* >= 1 */
    bool member_id_required; /* JoinGroup v4+: a new member gets its id
                                  first, and joins again with it (KIP-394) */
};

struct kgroup_protocol {
    const char *name;        /* NUL-terminated, in the member's blob */
    const uint8_t *metadata; /* in the member's blob */
    uint32_t metadata_len;
};

struct kgroup_member {
    char id[KGROUP_MEMBER_ID_BYTES_MAX + 1];
    char instance_id[KGROUP_MEMBER_ID_BYTES_MAX + 1]; /* "" when dynamic */
    char client_id[KGROUP_NAME_BYTES_MAX + 1];
    char client_host[KGROUP_NAME_BYTES_MAX + 1];
    struct kgroup_protocol protocols[KGROUP_PROTOCOLS_MAX];
    uint32_t protocol_count;
    uint8_t *blob; /* owned: the protocols' names and metadata */
    uint32_t session_ms;
    uint32_t rebalance_ms;
    int64_t deadline_ms; /* session: its last request + session_ms */
    uint8_t *assignment; /* owned; from the leader's SyncGroup */
    uint32_t assignment_len;
    void *join_waiter; /* a held JoinGroup, or NULL */
    void *sync_waiter; /* a held SyncGroup, or NULL */
};

struct kgroup_pending {
    char id[KGROUP_MEMBER_ID_BYTES_MAX + 1];
    int64_t deadline_ms;
};

/* What a JoinGroup is answered with when the barrier completes. The
 * member list (each member's id, instance id and metadata for the chosen
 * protocol: kgroup_member_metadata()) goes to the leader only. Valid
 * during the callback. */
struct kgroup_join_answer {
    int32_t generation;
    const char *protocol_type;
    const char *protocol_name;
    const char *leader_id;
    const char *member_id;
    const struct kgroup_member *members; /* NULL for a follower */
    uint32_t member_count;
};

struct kgroup_ops {
    /* The JoinGroup held as waiter is answered: err 0 with *a, or
     * -NG_EUNKNOWN_MEMBER (its member was removed: a session that ran out
     * while the barrier waited, a leave), -NG_EFENCED_INSTANCE (another
     * member took its instance id), -NG_ECLOSED (the group is dropped). */
    void (*join_done)(void *arg, void *waiter, int err, const struct kgroup_join_answer *a);
    /* The SyncGroup held as waiter is answered: err 0 with the member's
     * assignment (len 0: the leader gave it nothing), or
     * -NG_EREBALANCE (a new rebalance began), -NG_EUNKNOWN_MEMBER,
     * -NG_EFENCED_INSTANCE, -NG_ECLOSED. assignment valid during the call. */
    void (*sync_done)(void *arg, void *waiter, int err, const uint8_t *assignment, uint32_t len);
};

struct kgroup {
    char id[KGROUP_ID_BYTES_MAX + 1];
    enum kgroup_state state;
    int32_t generation;
    char protocol_type[KGROUP_NAME_BYTES_MAX + 1]; /* "" while EMPTY */
    char protocol_name[KGROUP_NAME_BYTES_MAX + 1]; /* chosen at the barrier */
    char leader_id[KGROUP_MEMBER_ID_BYTES_MAX + 1];
    struct kgroup_member *members; /* array of member_cap, the first member_count
                                      used, in the order they first joined */
    uint32_t member_count;
    uint32_t member_cap;
    /* Ids given to new members (KIP-394) that have not joined with them
     * yet: not members (the barrier does not wait for them), but counted
     * against KGROUP_MEMBERS_MAX; each lapses after its session. */
    struct kgroup_pending *pending;
    uint32_t pending_count;
    uint32_t pending_cap;
    uint64_t member_seq;       /* for new member ids */
    int64_t barrier_ms;        /* PREPARING: the rebalance timeout runs out */
    int64_t delay_ms;          /* PREPARING from EMPTY: not complete before */
    uint32_t initial_delay_ms; /* Kafka's group.initial.rebalance.delay.ms */
    const struct kgroup_ops *ops;
    void *arg;
};

/* Initialises g, an EMPTY group at generation 0. id_len <=
 * KGROUP_ID_BYTES_MAX. initial_delay_ms: how long the first rebalance of
 * an empty group waits for more members (each new one during it extends
 * it, up to the rebalance timeout), as Kafka's
 * group.initial.rebalance.delay.ms (3000 there; 0: none). seq_start seeds
 * member ids: pass the clock's milliseconds << 20 so that ids given by an
 * earlier coordinator of the group are never given again. */
void kgroup_init(struct kgroup *g, const char *id, size_t id_len, uint32_t initial_delay_ms,
                 uint64_t seq_start, const struct kgroup_ops *ops, void *arg);

/* Answers every held request -NG_ECLOSED and frees everything. */
void kgroup_fini(struct kgroup *g);

/* A JoinGroup. Returns:
 * - 0: held; waiter is answered through ops->join_done, perhaps before
 *   this returns (the last member the barrier waited for);
 * - -NG_EMEMBER_ID_REQUIRED: a new member asked with member_id_required;
 *   its id is in id_out, and it has its session time to join with it;
 * - -NG_EUNKNOWN_MEMBER: a member id the group does not know;
 * - -NG_EFENCED_INSTANCE: the instance id belongs to another member id;
 * - -NG_EINCONSISTENT_PROTOCOL: another protocol type than the group's,
 *   or no assignor in common with its members;
 * - -NG_EGROUP_FULL: KGROUP_MEMBERS_MAX members, or the member's metadata
 *   over KGROUP_MEMBER_BYTES_MAX;
 * - -ENOMEM.
 * A JoinGroup of a member that already holds one replaces it: the older
 * one is answered -NG_EREBALANCE (its client gave it up when it sent the
 * newer one). The same for a SyncGroup.
 * Preconditions: the lengths within their bounds, protocol_count >= 1,
 * session_ms in range, rebalance_ms >= 1, waiter not NULL. */
MUST_USE int kgroup_join(struct kgroup *g, int64_t now_ms, const struct kgroup_join_req *r,
                         void *waiter, char id_out[KGROUP_MEMBER_ID_BYTES_MAX + 1]);

/* One member's share of a SyncGroup's assignment (the leader's). */
struct kgroup_assignment_in {
    struct kgroup_str member_id;
    const uint8_t *assignment;
    uint32_t assignment_len;
};

/* A SyncGroup. Returns 0: held, answered through ops->sync_done (at once
 * when the group is STABLE or this is the leader's); or -NG_EUNKNOWN_MEMBER,
 * -NG_EFENCED_INSTANCE, -NG_EILLEGAL_GENERATION, -NG_EREBALANCE (the group
 * is PREPARING), -NG_EINCONSISTENT_PROTOCOL (protocol type or name given
 * and not the group's), -NG_EGROUP_FULL (an assignment over
 * KGROUP_MEMBER_BYTES_MAX), -ENOMEM. The leader's assignments are taken
 * only from the leader (others' are ignored, as Kafka does). */
MUST_USE int kgroup_sync(struct kgroup *g, int64_t now_ms, struct kgroup_str member_id,
                         struct kgroup_str instance_id, int32_t generation,
                         struct kgroup_str protocol_type, struct kgroup_str protocol_name,
                         const struct kgroup_assignment_in *assignments, uint32_t assignment_count,
                         void *waiter);

/* A Heartbeat: extends the member's session. Returns 0,
 * -NG_EUNKNOWN_MEMBER, -NG_EFENCED_INSTANCE, -NG_EILLEGAL_GENERATION, or
 * -NG_EREBALANCE (PREPARING: the member must join again). */
MUST_USE int kgroup_heartbeat(struct kgroup *g, int64_t now_ms, struct kgroup_str member_id,
                              struct kgroup_str instance_id, int32_t generation);

/* May an OffsetCommit at generation from member_id go, as Kafka's
 * coordinator decides for a classic group: a commit from outside the
 * group (generation < 0) only while it is EMPTY; else the member must be
 * known at the group's generation, and not while the group waits for its
 * leader's assignment. Extends the member's session. Returns 0,
 * -NG_EUNKNOWN_MEMBER, -NG_EFENCED_INSTANCE, -NG_EILLEGAL_GENERATION,
 * -NG_EREBALANCE (COMPLETING). */
MUST_USE int kgroup_commit_check(struct kgroup *g, int64_t now_ms, struct kgroup_str member_id,
                                 struct kgroup_str instance_id, int32_t generation);

/* A member leaves (LeaveGroup): by member id, or by instance id alone
 * (member_id empty; LeaveGroup v3+ for static members). Starts a
 * rebalance when members remain. Returns 0, -NG_EUNKNOWN_MEMBER,
 * -NG_EFENCED_INSTANCE. */
MUST_USE int kgroup_leave(struct kgroup *g, int64_t now_ms, struct kgroup_str member_id,
                          struct kgroup_str instance_id);

/* Time: removes members whose session ran out (and pending ones not
 * joined in theirs), completes a barrier whose rebalance timeout ran out
 * (removing the members that did not join again) or whose initial delay
 * ended with everyone in. Returns when it is next due (INT64_MAX: not). */
int64_t kgroup_tick(struct kgroup *g, int64_t now_ms);

/* Kafka's name of a state ("Empty", "PreparingRebalance",
 * "CompletingRebalance", "Stable"), as DescribeGroups and ListGroups
 * give it. */
const char *kgroup_state_name(enum kgroup_state s);

/* m's metadata for the assignor name (NULL when it offers none by that
 * name); *len_out its length. Valid until the member's next join. */
const uint8_t *kgroup_member_metadata(const struct kgroup_member *m, const char *name,
                                      uint32_t *len_out);

/* The partitions in a member's assignment of Kafka's consumer protocol
 * (protocol type KGROUP_CONSUMER_PROTOCOL): the bytes its group leader
 * wrote, ConsumerProtocolAssignment v0-3 (an i16 version, then [topic
 * (i16-length string), [partition i32]], then user data, not read). fn
 * gets each partition in order, its topic pointing into p (len bytes, not
 * NUL-terminated). Every length and count is checked against the bytes
 * left. Returns 0; -NG_ETRUNCATED, -NG_EBADLEN (a negative string length)
 * or -NG_EBADCOUNT (a negative version or count): fn was called for what
 * came before. len 0 (the leader gave nothing) is -NG_ETRUNCATED. Any
 * thread. */
#define KGROUP_CONSUMER_PROTOCOL "consumer"
typedef void kgroup_assigned_fn(void *arg, const char *topic, size_t len, int32_t partition);
MUST_USE int kgroup_assignment_each(const uint8_t *p, uint32_t len, kgroup_assigned_fn *fn,
                                    void *arg);

#endif
