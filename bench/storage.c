/*
 * bench/storage.c — nagare-bench storage.
 *
 * Phases, in the order they run (each write phase on a fresh partition
 * directory, deleted afterwards):
 *   warm-up        non-durable appends, untimed: faults in page-cache pages
 *                  and starts the kernel's io_uring workers, so every timed
 *                  phase meets the same memory (this VM hands freed memory
 *                  back to the host, and first touch is slow);
 *   append         non-durable appends, `inflight` in flight;
 *   read           part_read of everything `append` wrote, from offset 0;
 *   durable-group  durable appends from K appenders, one in flight each,
 *                  group commit on;
 *   durable-each   the same with group commit off: one fdatasync per batch.
 * The read runs right after `append` on its partition, before its dirty
 * pages could be written back: nothing else touches the disk meanwhile, and
 * deleting that partition before the durable phases drops its dirty pages,
 * so no background writeback competes with their fdatasyncs.
 *
 * Each slot (one append in flight) owns a copy of the batch built once up
 * front: part_append writes the base offset into the batch in place, and the
 * checksum does not cover it, so a slot re-appends its bytes unchanged.
 * Completion callbacks re-append, so the ring never runs dry.
 */
#include "bench/storage.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "base/ring.h"
#include "bench/args.h"
#include "bench/sample.h"
#include "storage/batch.h"
#include "storage/partition.h"

#define MIB (1024u * 1024u)

/* Appends in flight at most: the partition's default appends_inflight_max,
 * so no append is ever refused with -NG_EBUSY. */
#define ST_INFLIGHT_MAX 1024u
/* Ring entries: one write per slot plus a few index writes and syncs. */
#define ST_RING_ENTRIES 2048u
static_assert(ST_RING_ENTRIES >= ST_INFLIGHT_MAX + 64, "every slot's write fits the ring");
/* Smallest batch asked for: a header and one small record. */
#define ST_BATCH_BYTES_MIN 128u
/* A gap between two append completions this long counts as a stall (a
 * segment roll's fdatasync, say): far above one write or one fdatasync. */
#define ST_STALL_S 0.05
/* Progress lines: only for phases this long, this often. */
#define ST_PROGRESS_S 1.0

enum st_phase { PH_APPEND = 0, PH_READ, PH_GROUP, PH_EACH, PH_COUNT };

static const char *const st_phase_names[PH_COUNT] = {
    [PH_APPEND] = "append",
    [PH_READ] = "read",
    [PH_GROUP] = "durable-group",
    [PH_EACH] = "durable-each",
};

struct st_opts {
    const char *dir;       /* NULL: a fresh directory under /tmp */
    uint64_t mib;          /* data per phase */
    uint32_t batch_bytes;  /* batches are built up to this size */
    uint32_t record_bytes; /* value bytes per record (keys are null) */
    uint32_t appenders;    /* durable phases: concurrent appenders */
    uint32_t inflight;     /* append phase: appends in flight */
    uint64_t segment_mib;
    uint32_t batch_bytes_max; /* part_config.batch_bytes_max */
    uint32_t read_bytes;      /* bytes_max of each part_read */
    uint64_t warmup_mib;
    double each_seconds; /* durable-each stops issuing after this */
    uint32_t phases;     /* bit per enum st_phase to run */
    bool json;
};

struct st_result {
    bool ran;
    bool capped; /* stopped by time before mib */
    uint64_t bytes;
    uint64_t records;
    uint64_t batches;
    int64_t sync_rounds; /* fdatasync rounds that acknowledged appends; -1: n/a */
    int64_t rolls;       /* segments the phase rolled to; -1: n/a */
    double stall_max_s;  /* longest wait for an append's completion; -1: n/a */
    double stalled_s;    /* sum of the gaps >= ST_STALL_S */
    struct sample_delta cost;
};

struct st_run;

struct st_slot {
    struct part_append a; /* first: the callback gets &a */
    struct st_run *run;
};
static_assert(offsetof(struct st_slot, a) == 0, "a slot is found from its append");

/* One write phase in progress. */
struct st_run {
    struct part *part;
    bool durable;
    uint64_t batches_max;
    uint64_t issued;
    uint64_t completed;
    uint32_t active;   /* appends started whose callback has not run */
    double deadline_s; /* stop issuing at this monotonic time; 0: never */
    bool capped;
    int err;
    /* Sync rounds, counted from acknowledgements: a durable append completes
     * only when an fdatasync round finishes, the engine keeps at most one
     * round in flight, and the next round's fdatasync is submitted by the
     * next ring_run(); so each ring_run() that acknowledges appends finished
     * exactly one round. (Checked against the device's flush count: equal
     * on a quiet machine.) */
    uint64_t wave;       /* ring_run() calls so far */
    uint64_t wave_acked; /* the last one that acknowledged appends */
    uint64_t sync_rounds;
    double done_last_s; /* when the latest append completed */
    double stall_max_s; /* longest gap between completions */
    double stalled_s;   /* sum of the gaps >= ST_STALL_S */
};

struct st_bench {
    struct st_opts o;
    char root[PATH_MAX]; /* holds one partition directory per phase */
    bool root_made;      /* ours: removed at the end */
    char dir[PATH_MAX];  /* the open partition's directory */
    struct part part;
    bool part_open;
    struct ring ring;
    bool ring_up;
    struct batch_zctx zctx;
    uint8_t *scratch;
    size_t scratch_bytes;
    uint8_t *batch; /* the batch as built */
    size_t batch_bytes;
    int32_t batch_records;
    uint8_t *slot_bufs; /* slot_count copies of batch */
    struct st_slot *slots;
    uint32_t slot_count;
    uint8_t *read_buf;
    size_t read_cap;
    struct sample_dev dev;
    bool progress; /* stderr is a terminal */
    struct st_result res[PH_COUNT];
};

static volatile sig_atomic_t st_stop;

static void st_on_signal(int sig)
{
    (void)sig;
    st_stop = 1;
}

/* ---- options ---- */

void bench_storage_usage(FILE *out)
{
    fprintf(out,
            "usage: nagare-bench storage [options]\n"
            "  --dir DIR            where the partitions go (default: a fresh\n"
            "                       /tmp/nagare-bench-XXXXXX, removed at the end)\n"
            "  --mib N              data per phase, MiB (2048)\n"
            "  --batch-bytes B      batch size (65536)\n"
            "  --record-bytes R     value bytes per record, null keys (1024)\n"
            "  --appenders K        durable phases: concurrent appenders (8)\n"
            "  --inflight N         append phase: appends in flight, K..%u (64)\n"
            "  --segment-mib N      segment size, MiB (1024)\n"
            "  --batch-bytes-max B  part_config.batch_bytes_max (engine default, 8 MiB)\n"
            "  --read-bytes B       bytes per part_read (1048576)\n"
            "  --warmup-mib N       untimed warm-up writes, MiB (1024; 0: none)\n"
            "  --each-seconds S     time cap of durable-each (10)\n"
            "  --phases LIST        comma-separated subset of append,read,durable-group,\n"
            "                       durable-each (all); read needs append\n"
            "  --json               print one JSON object instead of the table\n",
            ST_INFLIGHT_MAX);
}

static bool parse_seconds(const char *s, double *out)
{
    double v;
    if (!args_double(s, 0, 86400, &v) || v <= 0) {
        return false;
    }
    *out = v;
    return true;
}

static void opts_default(struct st_opts *o)
{
    struct part_config cfg;
    part_config_default(&cfg);
    *o = (struct st_opts){
        .mib = 2048,
        .batch_bytes = 65536,
        .record_bytes = 1024,
        .appenders = 8,
        .inflight = 64,
        .segment_mib = 1024,
        .batch_bytes_max = cfg.batch_bytes_max,
        .read_bytes = MIB,
        .warmup_mib = 1024,
        .each_seconds = 10,
        .phases = (1u << PH_COUNT) - 1,
    };
}

enum {
    OPT_DIR = 1,
    OPT_MIB,
    OPT_BATCH,
    OPT_RECORD,
    OPT_APPENDERS,
    OPT_INFLIGHT,
    OPT_SEGMENT,
    OPT_BATCH_MAX,
    OPT_READ,
    OPT_WARMUP,
    OPT_EACH,
    OPT_PHASES,
    OPT_JSON,
    OPT_HELP,
};

static const struct option st_longopts[] = {
    {"dir", required_argument, NULL, OPT_DIR},
    {"mib", required_argument, NULL, OPT_MIB},
    {"batch-bytes", required_argument, NULL, OPT_BATCH},
    {"record-bytes", required_argument, NULL, OPT_RECORD},
    {"appenders", required_argument, NULL, OPT_APPENDERS},
    {"inflight", required_argument, NULL, OPT_INFLIGHT},
    {"segment-mib", required_argument, NULL, OPT_SEGMENT},
    {"batch-bytes-max", required_argument, NULL, OPT_BATCH_MAX},
    {"read-bytes", required_argument, NULL, OPT_READ},
    {"warmup-mib", required_argument, NULL, OPT_WARMUP},
    {"each-seconds", required_argument, NULL, OPT_EACH},
    {"phases", required_argument, NULL, OPT_PHASES},
    {"json", no_argument, NULL, OPT_JSON},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static const char *opt_name(int opt)
{
    for (const struct option *lo = st_longopts; lo->name != NULL; lo++) {
        if (lo->val == opt) {
            return lo->name;
        }
    }
    return "?";
}

/* "append,read,...": a bit per phase named; false on an unknown name. */
static bool parse_phases(const char *arg, uint32_t *out)
{
    *out = 0;
    const char *p = arg;
    while (*p != '\0') {
        size_t len = strcspn(p, ",");
        int ph = 0;
        while (ph < PH_COUNT &&
               (strlen(st_phase_names[ph]) != len || strncmp(p, st_phase_names[ph], len) != 0)) {
            ph++;
        }
        if (ph == PH_COUNT) {
            return false;
        }
        *out |= 1u << ph;
        p += len + (p[len] == ',');
    }
    return *out != 0;
}

/* Applies one option; false when its value is out of range. */
static bool opt_apply(struct st_opts *o, int opt, const char *arg)
{
    switch (opt) {
    case OPT_DIR:
        o->dir = arg;
        return strlen(arg) > 0 && strlen(arg) < PATH_MAX - 64;
    case OPT_MIB:
        return args_u64(arg, 1, 1u << 20, &o->mib);
    case OPT_BATCH:
        return args_u32(arg, ST_BATCH_BYTES_MIN, BATCH_BYTES_LIMIT, &o->batch_bytes);
    case OPT_RECORD:
        return args_u32(arg, 0, BATCH_BYTES_LIMIT, &o->record_bytes);
    case OPT_APPENDERS:
        return args_u32(arg, 1, ST_INFLIGHT_MAX, &o->appenders);
    case OPT_INFLIGHT:
        return args_u32(arg, 1, ST_INFLIGHT_MAX, &o->inflight);
    case OPT_SEGMENT:
        return args_u64(arg, 1, PART_SEGMENT_BYTES_MAX / MIB, &o->segment_mib);
    case OPT_BATCH_MAX:
        return args_u32(arg, ST_BATCH_BYTES_MIN, BATCH_BYTES_LIMIT, &o->batch_bytes_max);
    case OPT_READ:
        return args_u32(arg, 1, BATCH_BYTES_LIMIT, &o->read_bytes);
    case OPT_WARMUP:
        return args_u64(arg, 0, 1u << 20, &o->warmup_mib);
    case OPT_EACH:
        return parse_seconds(arg, &o->each_seconds);
    case OPT_PHASES:
        return parse_phases(arg, &o->phases);
    case OPT_JSON:
        o->json = true;
        return true;
    default:
        return false;
    }
}

/* Returns 0, 1 for --help (printed), or 2 after printing a usage error. */
static int opts_parse(struct st_opts *o, int argc, char **argv)
{
    opts_default(o);
    optind = 1;
    int opt;
    while ((opt = getopt_long(argc, argv, "h", st_longopts, NULL)) != -1) {
        if (opt == OPT_HELP || opt == 'h') {
            bench_storage_usage(stdout);
            return 1;
        }
        if (opt == '?' || !opt_apply(o, opt, optarg)) {
            if (opt != '?') {
                fprintf(stderr, "nagare-bench storage: bad value '%s' for --%s\n", optarg,
                        opt_name(opt));
            }
            bench_storage_usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "nagare-bench storage: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (o->inflight < o->appenders || o->batch_bytes > o->batch_bytes_max ||
        (uint64_t)o->batch_bytes > o->segment_mib * MIB ||
        ((o->phases & (1u << PH_READ)) && !(o->phases & (1u << PH_APPEND)))) {
        fprintf(stderr, "nagare-bench storage: need appenders <= inflight, batch-bytes <= "
                        "batch-bytes-max and <= the segment size, and append with read\n");
        return 2;
    }
    return 0;
}

/* ---- set-up: every buffer once, touched ---- */

/* Builds the one batch every append reuses: null keys, values of
 * record_bytes pseudo-random bytes, as many records as fit batch_bytes. */
static int st_build_batch(struct st_bench *b)
{
    uint8_t *value = b->read_buf; /* free until the read phase */
    uint32_t x = 2463534242u;
    for (uint32_t i = 0; i < b->o.record_bytes; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        value[i] = (uint8_t)x;
    }
    struct batch_builder bb;
    batch_builder_init(&bb, b->batch, b->o.batch_bytes, BATCH_CODEC_NONE, -1, 0, -1);
    int64_t ts = clock_wall_ms();
    int rc;
    while ((rc = batch_builder_add(&bb, ts, NULL, -1, value, (int32_t)b->o.record_bytes, NULL,
                                   0)) == 0) {
    }
    if (rc != -NG_ENOSPACE) {
        return rc;
    }
    b->batch_records = bb.record_count;
    if (bb.record_count == 0) {
        return -NG_ETOOBIG; /* not even one record fits */
    }
    return batch_builder_finish(&bb, NULL, &b->batch_bytes);
}

static void st_slots_init(struct st_bench *b)
{
    for (uint32_t i = 0; i < b->slot_count; i++) {
        uint8_t *buf = b->slot_bufs + (size_t)i * b->batch_bytes;
        memcpy(buf, b->batch, b->batch_bytes);
        b->slots[i] = (struct st_slot){.a = {.batch = buf, .bytes = b->batch_bytes}};
    }
}

static int st_alloc(struct st_bench *b)
{
    b->slot_count = b->o.inflight;
    b->scratch_bytes = PART_SCRATCH_BYTES(b->o.batch_bytes_max);
    b->read_cap = b->o.read_bytes > b->o.batch_bytes ? b->o.read_bytes : b->o.batch_bytes;
    if (b->read_cap < b->o.record_bytes) {
        b->read_cap = b->o.record_bytes;
    }
    b->scratch = malloc(b->scratch_bytes);
    b->batch = malloc(b->o.batch_bytes);
    b->slot_bufs = malloc((size_t)b->slot_count * b->o.batch_bytes);
    b->slots = calloc(b->slot_count, sizeof(*b->slots));
    b->read_buf = malloc(b->read_cap);
    if (!b->scratch || !b->batch || !b->slot_bufs || !b->slots || !b->read_buf) {
        return -ENOMEM;
    }
    /* First touch is slow on this VM: pay it here, not in a phase. */
    memset(b->scratch, 0, b->scratch_bytes);
    memset(b->batch, 0, b->o.batch_bytes);
    memset(b->slot_bufs, 0, (size_t)b->slot_count * b->o.batch_bytes);
    memset(b->read_buf, 0, b->read_cap);
    int rc = batch_zctx_init(&b->zctx, b->o.batch_bytes_max, 0);
    rc = rc == 0 ? st_build_batch(b) : rc;
    if (rc == 0) {
        st_slots_init(b);
    }
    return rc;
}

static int st_make_root(struct st_bench *b)
{
    if (b->o.dir == NULL) {
        snprintf(b->root, sizeof(b->root), "/tmp/nagare-bench-XXXXXX");
        if (mkdtemp(b->root) == NULL) {
            return -errno;
        }
        b->root_made = true;
        return 0;
    }
    int n = snprintf(b->root, sizeof(b->root), "%s", b->o.dir);
    if (n < 0 || (size_t)n >= sizeof(b->root)) {
        return -ENAMETOOLONG;
    }
    if (mkdir(b->root, 0755) == 0) {
        b->root_made = true;
    } else if (errno != EEXIST) {
        return -errno;
    }
    return 0;
}

static int st_setup(struct st_bench *b)
{
    log_set_level(LOG_WARN);
    int rc = st_make_root(b);
    rc = rc == 0 ? sample_dev_find(&b->dev, b->root) : rc;
    rc = rc == 0 ? st_alloc(b) : rc;
    rc = rc == 0 ? ring_init(&b->ring, ST_RING_ENTRIES) : rc;
    b->ring_up = rc == 0;
    b->progress = isatty(STDERR_FILENO) == 1;
    return rc;
}

/* ---- partitions ---- */

static int st_part_open(struct st_bench *b, const char *name, bool group_commit)
{
    ASSERT(!b->part_open);
    int n = snprintf(b->dir, sizeof(b->dir), "%s/%s", b->root, name);
    if (n < 0 || (size_t)n >= sizeof(b->dir)) {
        return -ENAMETOOLONG;
    }
    if (mkdir(b->dir, 0755) != 0) {
        int rc = -errno;
        fprintf(stderr, "nagare-bench storage: mkdir %s: %s\n", b->dir, err_str(rc));
        return rc;
    }
    struct part_config cfg;
    part_config_default(&cfg);
    cfg.segment_bytes = b->o.segment_mib * MIB;
    cfg.batch_bytes_max = b->o.batch_bytes_max;
    cfg.group_commit = group_commit;
    struct part_env env = {.ring = &b->ring,
                           .scratch = b->scratch,
                           .scratch_bytes = b->scratch_bytes,
                           .zctx = &b->zctx,
                           .now_ms = clock_wall_ms};
    int rc = part_open(&b->part, b->dir, &cfg, &env);
    b->part_open = rc == 0;
    return rc;
}

/* Empties every file of the partition directory: what a non-durable phase
 * left dirty in the page cache is dropped instead of written back, so
 * part_close() has nothing to sync and no writeback disturbs the next
 * phase. */
static int st_empty_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        return -errno;
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        int fd = openat(dirfd(d), e->d_name, O_WRONLY | O_TRUNC | O_CLOEXEC);
        if (fd < 0 || close(fd) != 0 || unlinkat(dirfd(d), e->d_name, 0) != 0) {
            rc = -errno;
        }
    }
    closedir(d);
    return rc;
}

/* Drops the open partition and its directory, then syncs the filesystem so
 * the next phase starts on a quiet device. */
static int st_part_discard(struct st_bench *b)
{
    if (!b->part_open) {
        return 0;
    }
    int rc = part_drain(&b->part);
    int rc_files = st_empty_files(b->dir);
    int rc_close = part_close(&b->part);
    b->part_open = false;
    rc = rc != 0 ? rc : rc_files != 0 ? rc_files : rc_close;
    if (rmdir(b->dir) != 0 && rc == 0) {
        rc = -errno;
    }
    int fd = open(b->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        if (syncfs(fd) != 0 && rc == 0) {
            rc = -errno;
        }
        close(fd);
    } else if (rc == 0) {
        rc = -errno;
    }
    return rc;
}

/* ---- write phases ---- */

static void st_issue(struct st_run *run, struct st_slot *s);

static void st_append_done(struct part_append *a, int rc)
{
    struct st_slot *s = (struct st_slot *)a;
    struct st_run *run = s->run;
    ASSERT(run->active > 0);
    run->active--;
    if (rc != 0) {
        run->err = run->err != 0 ? run->err : rc;
        return;
    }
    run->completed++;
    double now = sample_now_s();
    double gap = now - run->done_last_s;
    run->stall_max_s = gap > run->stall_max_s ? gap : run->stall_max_s;
    run->stalled_s += gap >= ST_STALL_S ? gap : 0;
    run->done_last_s = now;
    if (run->durable && run->wave_acked != run->wave) {
        run->wave_acked = run->wave;
        run->sync_rounds++;
    }
    st_issue(run, s);
}

/* Starts the slot's next append, unless the phase is over. */
static void st_issue(struct st_run *run, struct st_slot *s)
{
    if (run->err != 0 || run->issued >= run->batches_max || st_stop) {
        return;
    }
    if (run->deadline_s > 0 && sample_now_s() >= run->deadline_s) {
        run->capped = true;
        return;
    }
    s->run = run;
    s->a.durable = run->durable;
    s->a.done = st_append_done;
    int rc = part_append(run->part, &s->a);
    if (rc != 0) {
        run->err = rc;
        return;
    }
    run->issued++;
    run->active++;
}

static void st_progress(struct st_bench *b, const char *name, uint64_t bytes, double t0,
                        double *shown)
{
    double now = sample_now_s();
    if (!b->progress || now - t0 < ST_PROGRESS_S || now - *shown < ST_PROGRESS_S) {
        return;
    }
    *shown = now;
    fprintf(stderr, "\r%-14s %8.0f MiB %6.1f s", name, (double)bytes / MIB, now - t0);
}

static void st_progress_end(const struct st_bench *b, double shown)
{
    if (b->progress && shown > 0) {
        fprintf(stderr, "\r\033[K");
    }
}

/* Runs the ring until every slot is idle, then drains the partition. */
static int st_run_until_idle(struct st_bench *b, struct st_run *run, const char *name, double t0)
{
    double shown = 0;
    while (run->active > 0) {
        run->wave++;
        int rc = ring_run(&b->ring, -1);
        if (rc < 0 && rc != -EINTR) {
            return rc;
        }
        st_progress(b, name, run->completed * b->batch_bytes, t0, &shown);
    }
    st_progress_end(b, shown);
    int rc = part_drain(&b->part);
    return run->err != 0 ? run->err : rc;
}

/* Segments rolled in a fresh partition directory: its `<base>.log` files
 * (docs/storage-format.md) but the first. -1 when it cannot be listed. */
static int64_t st_count_rolls(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        return -1;
    }
    int64_t logs = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        logs += len > 4 && strcmp(e->d_name + len - 4, ".log") == 0;
    }
    closedir(d);
    return logs > 0 ? logs - 1 : 0;
}

/* One write phase on a fresh partition, left open for the caller. */
static int st_write(struct st_bench *b, const char *name, bool durable, bool group_commit,
                    uint32_t slots, double seconds_max, uint64_t mib, struct st_result *res)
{
    ASSERT(slots >= 1 && slots <= b->slot_count);
    int rc = st_part_open(b, name, group_commit);
    if (rc != 0) {
        return rc;
    }
    uint64_t batches = mib * MIB / b->batch_bytes;
    struct st_run run = {
        .part = &b->part, .durable = durable, .batches_max = batches > 0 ? batches : 1};
    struct sample before;
    struct sample after;
    sample_take(&before, &b->dev);
    run.deadline_s = seconds_max > 0 ? before.wall_s + seconds_max : 0;
    run.done_last_s = before.wall_s;
    for (uint32_t i = 0; i < slots; i++) {
        st_issue(&run, &b->slots[i]);
    }
    rc = st_run_until_idle(b, &run, name, before.wall_s);
    sample_take(&after, &b->dev);
    *res = (struct st_result){.ran = true,
                              .capped = run.capped,
                              .bytes = run.completed * b->batch_bytes,
                              .records = run.completed * (uint64_t)b->batch_records,
                              .batches = run.completed,
                              .sync_rounds = durable ? (int64_t)run.sync_rounds : -1,
                              .rolls = st_count_rolls(b->dir),
                              .stall_max_s = run.stall_max_s,
                              .stalled_s = run.stalled_s};
    sample_diff(&before, &after, &res->cost);
    return rc;
}

/* ---- the read phase ---- */

/* Walks the whole batches part_read returned: they must continue from
 * *offset; moves *offset past them and counts them. */
static int st_walk_read(struct st_bench *b, size_t len, int64_t *offset, struct st_result *res)
{
    size_t k = 0;
    while (k < len) {
        struct batch_header h;
        int rc = batch_header_decode(b->read_buf + k, len - k, b->o.batch_bytes_max, &h);
        if (rc != 0) {
            return rc;
        }
        if (h.offset_base != *offset || batch_bytes(&h) > len - k) {
            return -NG_EDISCONTINUITY;
        }
        k += batch_bytes(&h);
        *offset = batch_offset_last(&h) + 1;
        res->records += (uint64_t)h.record_count;
        res->batches++;
    }
    return 0;
}

/* Reads the open partition from its start to its high watermark. */
static int st_read(struct st_bench *b, struct st_result *res)
{
    *res = (struct st_result){.ran = true, .sync_rounds = -1, .rolls = -1, .stall_max_s = -1};
    struct sample before;
    struct sample after;
    sample_take(&before, &b->dev);
    int64_t offset = part_offset_earliest(&b->part);
    int64_t end = part_offset_latest(&b->part);
    double shown = 0;
    int rc = 0;
    while (rc == 0 && offset < end && !st_stop) {
        struct part_read_result r;
        rc = part_read(&b->part, offset, b->read_buf, b->read_cap, b->o.read_bytes, &r);
        if (rc == 0 && r.bytes == 0) {
            rc = -NG_ETRUNCATED; /* no progress below the high watermark */
        }
        if (rc == 0) {
            res->bytes += r.bytes;
            rc = st_walk_read(b, r.bytes, &offset, res);
        }
        st_progress(b, st_phase_names[PH_READ], res->bytes, before.wall_s, &shown);
    }
    st_progress_end(b, shown);
    sample_take(&after, &b->dev);
    sample_diff(&before, &after, &res->cost);
    if (rc != 0) {
        fprintf(stderr, "nagare-bench storage: read at offset %" PRId64 ": %s\n", offset,
                err_str(rc));
    }
    return rc;
}

/* ---- the report ---- */

static double st_mb_s(const struct st_result *r)
{
    return r->cost.wall_s > 0 ? (double)r->bytes / 1e6 / r->cost.wall_s : 0;
}

static double st_rec_s(const struct st_result *r)
{
    return r->cost.wall_s > 0 ? (double)r->records / r->cost.wall_s : 0;
}

/* CPU time per wall second: the bench thread (part_* calls and their
 * syscalls: reads, ring submission), and every other thread of the process
 * (io_uring's io-wq workers: buffered writes, fdatasync). 1 = one core. */
static double st_main_frac(const struct st_result *r)
{
    return r->cost.wall_s > 0 ? r->cost.thread_s / r->cost.wall_s : 0;
}

static double st_io_frac(const struct st_result *r)
{
    double io_s = r->cost.user_s + r->cost.sys_s - r->cost.thread_s;
    return r->cost.wall_s > 0 && io_s > 0 ? io_s / r->cost.wall_s : 0;
}

static double st_group_ratio(const struct st_bench *b)
{
    double each = st_mb_s(&b->res[PH_EACH]);
    return each > 0 ? st_mb_s(&b->res[PH_GROUP]) / each : 0;
}

/* What a phase's CPU figures say limited it. A thread busy >= 80% of the
 * wall time is the limit; otherwise the phase waited, on the device for the
 * durable ones. The machine's figure only warns that other work shared the
 * two CPUs. */
static const char *st_verdict(const struct st_result *r, enum st_phase ph)
{
    if (st_main_frac(r) >= 0.8) {
        return "CPU: the bench thread (part_* calls and their syscalls)";
    }
    if (st_io_frac(r) >= 0.8) {
        return "CPU: io_uring workers (copies into the page cache)";
    }
    if (r->stalled_s >= 0.2 * r->cost.wall_s) {
        return r->rolls > 0 ? "waits: appends held by segment rolls (stalls)"
                            : "waits: appends stalled";
    }
    if (r->cost.machine_busy >= 0.9) {
        return "waits; other work kept the machine's CPUs busy";
    }
    if (ph == PH_GROUP || ph == PH_EACH) {
        return "waits on fdatasync (the device)";
    }
    return "waits (no CPU saturated)";
}

static void st_fmt_count(char *out, size_t cap, int64_t v)
{
    if (v < 0) {
        snprintf(out, cap, "-");
    } else {
        snprintf(out, cap, "%" PRId64, v);
    }
}

static void st_print_row(const struct st_bench *b, enum st_phase ph)
{
    const struct st_result *r = &b->res[ph];
    char syncs[24];
    char rolls[24];
    char flushes[24];
    char written[24];
    char stall[24];
    st_fmt_count(stall, sizeof(stall),
                 r->stall_max_s < 0 ? -1 : (int64_t)(r->stall_max_s * 1000 + 0.5));
    st_fmt_count(syncs, sizeof(syncs), r->sync_rounds);
    st_fmt_count(rolls, sizeof(rolls), r->rolls);
    st_fmt_count(flushes, sizeof(flushes), r->cost.dev_flushes);
    st_fmt_count(written, sizeof(written),
                 r->cost.dev_write_bytes < 0 ? -1 : r->cost.dev_write_bytes / 1000000);
    printf("%-14s %7.1f %7.3f %7.1f %10.0f %6s %5s %6s %6s %6s %5.0f %5.0f %5.0f%s\n",
           st_phase_names[ph], (double)r->bytes / MIB, r->cost.wall_s, st_mb_s(r), st_rec_s(r),
           syncs, rolls, stall, flushes, written, 100 * st_main_frac(r), 100 * st_io_frac(r),
           100 * r->cost.machine_busy, r->capped ? "  (time cap)" : "");
}

static void st_print_header(const struct st_bench *b)
{
    const struct st_opts *o = &b->o;
    printf("nagare-bench storage: %" PRIu64 " MiB per phase in batches of %zu bytes "
           "(%d records of %u value bytes, null keys)\n"
           "  %u durable appenders, %u non-durable appends in flight, segments of %" PRIu64
           " MiB,\n  batch_bytes_max %u, reads of %u bytes, warm-up %" PRIu64 " MiB, dir %s\n\n",
           o->mib, b->batch_bytes, b->batch_records, o->record_bytes, o->appenders, o->inflight,
           o->segment_mib, o->batch_bytes_max, o->read_bytes, o->warmup_mib, b->root);
    printf("%-14s %7s %7s %7s %10s %6s %5s %6s %6s %6s %5s %5s %5s\n", "phase", "MiB", "seconds",
           "MB/s", "records/s", "fsyncs", "rolls", "stall", "flush", "MB-w", "main%", "io%",
           "box%");
}

static void st_print_table(const struct st_bench *b)
{
    st_print_header(b);
    for (int ph = 0; ph < PH_COUNT; ph++) {
        if (b->res[ph].ran) {
            st_print_row(b, (enum st_phase)ph);
        }
    }
    printf("\nMB = 10^6 bytes. fsyncs: fdatasync rounds that acknowledged appends. rolls: "
           "segments rolled.\nstall: longest gap between two append completions, ms. flush, "
           "MB-w: the device's\nflush requests and MB written (whole machine). main%%, io%%: "
           "CPU of the bench thread and of\nio_uring's workers, 100 = one core; box%%: all "
           "CPUs of the machine, 100 = every one busy.\n");
    if (b->res[PH_GROUP].ran && b->res[PH_EACH].ran) {
        printf("group commit: durable-group / durable-each = %.1fx\n", st_group_ratio(b));
    }
    for (int ph = 0; ph < PH_COUNT; ph++) {
        const struct st_result *r = &b->res[ph];
        if (r->ran) {
            printf("cpu %-14s %5.2f s in %5.2f s (user %.2f, sys %.2f; bench thread %.2f), "
                   "stalled %.2f s: %s\n",
                   st_phase_names[ph], r->cost.user_s + r->cost.sys_s, r->cost.wall_s,
                   r->cost.user_s, r->cost.sys_s, r->cost.thread_s, r->stalled_s,
                   st_verdict(r, (enum st_phase)ph));
        }
    }
}

/* Prints s as a JSON string (paths: quotes, backslashes, control bytes). */
static void st_json_str(const char *s)
{
    putchar('"');
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            printf("\\%c", c);
        } else if (c < 0x20) {
            printf("\\u%04x", c);
        } else {
            putchar(c);
        }
    }
    putchar('"');
}

static void st_json_phase(const struct st_bench *b, enum st_phase ph, bool first)
{
    const struct st_result *r = &b->res[ph];
    printf("%s{\"phase\":\"%s\",\"bytes\":%" PRIu64 ",\"records\":%" PRIu64 ",\"batches\":%" PRIu64
           ",\"seconds\":%.6f,\"mb_per_s\":%.1f,"
           "\"records_per_s\":%.0f,\"capped\":%s,\"fsyncs\":%" PRId64 ",\"dev_flushes\":%" PRId64
           ",\"dev_write_bytes\":%" PRId64 ",\"rolls\":%" PRId64
           ",\"stall_max_s\":%.6f,\"stalled_s\":%.6f"
           ",\"user_s\":%.3f,\"sys_s\":%.3f,\"thread_s\":%.3f,\"machine_busy\":%.3f}",
           first ? "" : ",", st_phase_names[ph], r->bytes, r->records, r->batches, r->cost.wall_s,
           st_mb_s(r), st_rec_s(r), r->capped ? "true" : "false", r->sync_rounds,
           r->cost.dev_flushes, r->cost.dev_write_bytes, r->rolls, r->stall_max_s, r->stalled_s,
           r->cost.user_s, r->cost.sys_s, r->cost.thread_s, r->cost.machine_busy);
}

static void st_print_json(const struct st_bench *b)
{
    const struct st_opts *o = &b->o;
    printf("{\"bench\":\"storage\",\"dir\":");
    st_json_str(b->root);
    printf(",\"mib\":%" PRIu64 ",\"batch_bytes\":%zu,\"records_per_batch\":%d,"
           "\"record_bytes\":%u,\"appenders\":%u,\"inflight\":%u,\"segment_mib\":%" PRIu64
           ",\"batch_bytes_max\":%u,\"read_bytes\":%u,\"each_seconds\":%.1f,\"warmup_mib\":%" PRIu64
           ",\"phases\":[",
           o->mib, b->batch_bytes, b->batch_records, o->record_bytes, o->appenders, o->inflight,
           o->segment_mib, o->batch_bytes_max, o->read_bytes, o->each_seconds, o->warmup_mib);
    bool first = true;
    for (int ph = 0; ph < PH_COUNT; ph++) {
        if (b->res[ph].ran) {
            st_json_phase(b, (enum st_phase)ph, first);
            first = false;
        }
    }
    printf("],\"group_commit_ratio\":%.2f}\n", st_group_ratio(b));
}

/* ---- the run ---- */

static bool st_want(const struct st_bench *b, enum st_phase ph)
{
    return (b->o.phases & (1u << ph)) != 0 && !st_stop;
}

static int st_phases(struct st_bench *b)
{
    struct st_result warm;
    const struct st_opts *o = &b->o;
    int rc = 0;
    if (o->warmup_mib > 0) {
        rc = st_write(b, "warmup", false, true, b->slot_count, 0, o->warmup_mib, &warm);
        rc = rc == 0 ? st_part_discard(b) : rc;
    }
    if (rc == 0 && st_want(b, PH_APPEND)) {
        rc = st_write(b, "append", false, true, b->slot_count, 0, o->mib, &b->res[PH_APPEND]);
        rc = rc == 0 && st_want(b, PH_READ) ? st_read(b, &b->res[PH_READ]) : rc;
        rc = rc == 0 ? st_part_discard(b) : rc;
    }
    if (rc == 0 && st_want(b, PH_GROUP)) {
        rc = st_write(b, "durable-group", true, true, o->appenders, 0, o->mib, &b->res[PH_GROUP]);
        rc = rc == 0 ? st_part_discard(b) : rc;
    }
    if (rc == 0 && st_want(b, PH_EACH)) {
        rc = st_write(b, "durable-each", true, false, o->appenders, o->each_seconds, o->mib,
                      &b->res[PH_EACH]);
        rc = rc == 0 ? st_part_discard(b) : rc;
    }
    return rc;
}

static void st_teardown(struct st_bench *b)
{
    if (b->part_open) {
        int rc = st_part_discard(b);
        if (rc != 0) {
            fprintf(stderr, "nagare-bench storage: removing %s: %s\n", b->dir, err_str(rc));
        }
    }
    if (b->root_made && rmdir(b->root) != 0) {
        fprintf(stderr, "nagare-bench storage: rmdir %s: %s\n", b->root, strerror(errno));
    }
    if (b->ring_up) {
        ring_fini(&b->ring);
    }
    batch_zctx_fini(&b->zctx);
    free(b->scratch);
    free(b->batch);
    free(b->slot_bufs);
    free(b->slots);
    free(b->read_buf);
}

static void st_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = st_on_signal; /* no SA_RESTART: a wait returns -EINTR */
    sigemptyset(&sa.sa_mask);
    int rc = sigaction(SIGINT, &sa, NULL);
    rc |= sigaction(SIGTERM, &sa, NULL);
    ASSERT(rc == 0); /* valid signals and handler */
}

int bench_storage_main(int argc, char **argv)
{
    static struct st_bench bench; /* large; one per process */
    struct st_bench *b = &bench;
    memset(b, 0, sizeof(*b));
    int rc = opts_parse(&b->o, argc, argv);
    if (rc != 0) {
        return rc == 1 ? 0 : 2;
    }
    st_stop = 0;
    st_signals();
    rc = st_setup(b);
    if (rc != 0) {
        fprintf(stderr, "nagare-bench storage: set-up: %s\n", err_str(rc));
    } else {
        rc = st_phases(b);
        if (rc != 0) {
            fprintf(stderr, "nagare-bench storage: %s: %s\n", b->dir, err_str(rc));
        }
    }
    st_teardown(b);
    if (rc != 0) {
        return 1;
    }
    if (b->o.json) {
        st_print_json(b);
    } else {
        st_print_table(b);
    }
    if (st_stop) {
        fprintf(stderr, "nagare-bench storage: interrupted; the phases shown are partial\n");
        return 130;
    }
    return 0;
}
