/*
 * base/err.h — the project's error codes.
 *
 * Every fallible function returns 0 or a negative code: -errno for system
 * failures, or -NG_E* for nagare's own. The NG_E* values start at 4096, past
 * the kernel's largest errno (MAX_ERRNO is 4095), so the two ranges never
 * collide. err_str() names any of them. The numeric values are part of the
 * wire protocol (docs/protocol.md): never renumber, only append.
 */
#ifndef NAGARE_BASE_ERR_H
#define NAGARE_BASE_ERR_H

enum ng_err {
    NG_ERR_FIRST = 4096,
    /* decoding */
    NG_ETRUNCATED = 4096,  /* input ends before its header or lengths say */
    NG_EBADVARINT = 4097,  /* a varint longer than 10 bytes */
    NG_ENOSPACE = 4098,    /* an encoder ran out of its buffer */
    NG_EBADLEN = 4099,     /* a length field out of bounds */
    NG_EBADCOUNT = 4100,   /* a count negative, or not what was found */
    NG_ECHECKSUM = 4101,   /* checksum does not match the bytes */
    NG_EBADVERSION = 4102, /* unknown format or api version */
    NG_EBADCODEC = 4103,   /* unknown compression codec */
    NG_EDECOMPRESS = 4104, /* compressed bytes do not decompress */
    NG_EBADDELTA = 4105,   /* record offset deltas are not 0..count-1 */
    NG_ETOOBIG = 4106,     /* larger than the configured maximum */
    NG_EBADARG = 4107,     /* an argument or field with a value not allowed */
    /* storage */
    NG_EOFFSET_RANGE = 4120,  /* offset below the log start or past the end */
    NG_EFAILED = 4121,        /* the log failed an fsync or write; no more writes */
    NG_ECORRUPT = 4122,       /* bad bytes on disk (log, index, metadata) */
    NG_EBUSY = 4123,          /* a bounded queue is full; try again later */
    NG_ECLOSED = 4124,        /* the object is closing or closed */
    NG_ENOTFOUND = 4125,      /* no such item (e.g. no offset for a timestamp) */
    NG_EDISCONTINUITY = 4126, /* batch offsets do not continue the log */
    /* protocol and broker */
    NG_EUNKNOWN_API = 4140,        /* api key not served */
    NG_EUNKNOWN_TOPIC = 4141,      /* no such topic or partition */
    NG_ETOPIC_EXISTS = 4142,       /* topic already exists */
    NG_EBADNAME = 4143,            /* topic or group name not allowed */
    NG_EDUPLICATE = 4144,          /* idempotent duplicate (answered with offset) */
    NG_EOUT_OF_ORDER = 4145,       /* producer sequence gap */
    NG_EPRODUCER_FENCED = 4146,    /* stale producer epoch */
    NG_ETIMEOUT = 4147,            /* a wait ran out */
    NG_ENOT_COORDINATOR = 4148,    /* reserved for groups */
    NG_EREBALANCE = 4149,          /* group is rebalancing */
    NG_EILLEGAL_GENERATION = 4150, /* stale group generation */
    NG_EUNKNOWN_MEMBER = 4151,     /* member not in group */
    NG_EGROUP_NOT_EMPTY = 4152,    /* operation needs an empty group */
    NG_EDISCONNECTED = 4153,       /* peer closed or unreachable */
    NG_EPROTO = 4154,              /* peer broke the protocol */
    NG_ESYSTEM = 4155,             /* a system call failed on the peer (errno) */
    NG_ENOT_ACQUIRED = 4156,       /* share ack for records this member does not hold */
    NG_EDISK_FULL = 4157,          /* the broker's disk is full: retry later */
    NG_ETRANSACTIONAL = 4158,      /* a transactional or control batch: no transactions yet */
    /* replication (docs/cluster.md) */
    NG_ENOT_LEADER = 4159,           /* this broker does not lead the partition: refresh metadata */
    NG_ENOT_ENOUGH_REPLICAS = 4160,  /* fewer in-sync replicas than min_insync_replicas */
    NG_EFENCED_LEADER_EPOCH = 4161,  /* the request's leader epoch is older than the broker's */
    NG_EUNKNOWN_LEADER_EPOCH = 4162, /* the request's leader epoch is newer than the broker's */
    NG_ENOT_CONTROLLER = 4163,       /* the controller moved or its epoch changed: fenced */
    NG_ECONFLICT = 4164,             /* a compare-and-swap lost: the state changed, re-read it */
    NG_ECLUSTER_UNAVAILABLE = 4165,  /* etcd cannot be reached or has no quorum; retry later */
    NG_ENOT_CLUSTERED = 4166,        /* the request needs a cluster; this broker runs alone */
    NG_ENO_REPLICA = 4167,           /* this broker holds no replica of the partition */
    /* Kafka's classic consumer groups (broker/kgroup.h) */
    NG_EMEMBER_ID_REQUIRED = 4168,    /* a new member: join again with the id given (KIP-394) */
    NG_EFENCED_INSTANCE = 4169,       /* another member took this static instance id */
    NG_EINCONSISTENT_PROTOCOL = 4170, /* the group's members speak another protocol */
    NG_EGROUP_FULL = 4171,            /* the group has its maximum of members or bytes */
    /* authentication (auth/scram.h, broker/sasl_serve.h) */
    NG_EAUTH = 4172,           /* login failed: unknown user or wrong password (one answer) */
    NG_EAUTH_REQUIRED = 4173,  /* the broker requires a login before this request */
    NG_EAUTH_THROTTLED = 4174, /* too many failed logins from this address for now */
    NG_EMECHANISM = 4175,      /* SASL mechanism not enabled on the broker */
    /* authorization (broker/acl.h); 4172-4179 are left to authentication */
    NG_EUNAUTHORIZED = 4180, /* the principal may not do this (no ACL allows it, or one denies) */
    /* TLS (net/tls.h) */
    NG_ETLS = 4185, /* the TLS handshake failed: certificate not trusted or not the host's */
    NG_ERR_LAST
};

/* Names rc (0, -errno or -NG_E*) in a short sentence. Never NULL; the string
 * is static. Any thread. */
const char *err_str(int rc);

#endif
