/*
 * client/cli/produce.c — `nagare produce TOPIC`: stdin, one record per line,
 * through one libnagare producer.
 *
 * The library does its I/O only inside its own calls, so this loop drives
 * it: nagare_send() for each line (on -NAGARE_EBUSY, poll and retry), a
 * poll now and then for delivery reports, a poll while stdin is quiet (the
 * idle hook of lines.h, so a typed line goes out after the linger time, not
 * after the next line), and nagare_producer_flush() at the end of input.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/assert.h"
#include "base/progress.h"
#include "client/cli/cli.h"
#include "client/cli/lines.h"

/* --header options one run may carry; each goes on every record. */
#define PRODUCE_HEADERS_MAX 64
/* Give up on a record after this long: bounds how long a vanished broker
 * can keep `nagare produce` waiting at the end of its input. */
#define PRODUCE_DELIVERY_TIMEOUT_MS 30000
/* Poll for delivery reports after this many sends. */
#define PRODUCE_POLL_EVERY 256
/* How long one idle round lets the producer wait for answers while stdin
 * is quiet: short, so a line arriving is read at once. */
#define PRODUCE_IDLE_POLL_MS 1
/* Individual failures printed; the summary counts the rest. */
#define PRODUCE_FAILURES_SHOWN 5
/* The delivery report's opaque carries the line number and the record's
 * bytes (at most LINES_BYTES_MAX, which fits these bits). */
#define PRODUCE_BYTES_BITS 21
static_assert((1u << PRODUCE_BYTES_BITS) > LINES_BYTES_MAX, "a line's size fits its bits");
static_assert(sizeof(uintptr_t) >= 8, "line number and size share a pointer");

static const char produce_usage_text[] =
    "usage: nagare produce TOPIC [options] < lines\n"
    "\n"
    "Sends stdin to TOPIC, one record per line (the '\\n' is not part of it; an\n"
    "empty line is a record with an empty value). A line may be up to 1048576\n"
    "bytes; a longer one is refused and counted as failed. Prints a summary on\n"
    "stderr at the end; exits 1 if any record failed.\n"
    "\n"
    "options:\n"
    "  --key-separator C    split each line at its first C into key and value\n"
    "                       (a line without C has a null key), e.g. ':' or $'\\t'\n"
    "  --partition P        send every record to partition P (default: by key\n"
    "                       hash; keyless records fill one partition per batch)\n"
    "  --acks 0|1|all       wait for no answer, for the write, or for fdatasync\n"
    "                       (default all)\n"
    "  --compression none|zstd   (default zstd, as libnagare's)\n"
    "  --header K=V         add header K with value V to every record; repeatable\n" CLI_BROKER_HELP
    "  --help               print this help\n";

struct produce_opts {
    const char *broker;
    const char *topic;
    int separator; /* -1: none */
    int32_t partition;
    int acks;
    enum nagare_compression compression;
    struct nagare_header headers[PRODUCE_HEADERS_MAX];
    size_t header_count;
    bool help;
};

struct produce_stats {
    const char *topic;
    uint64_t delivered;
    uint64_t delivered_bytes;
    uint64_t failed;
    struct progress progress; /* on a terminal, for input that is not typed */
};

static const struct option produce_longopts[] = {
    {"broker", required_argument, NULL, 'b'},        {"help", no_argument, NULL, 'h'},
    {"key-separator", required_argument, NULL, 'K'}, {"partition", required_argument, NULL, 'p'},
    {"acks", required_argument, NULL, 'a'},          {"compression", required_argument, NULL, 'z'},
    {"header", required_argument, NULL, 'H'},        {NULL, 0, NULL, 0},
};

/* ---- options ---- */

static int produce_header_opt(struct produce_opts *o, const char *kv)
{
    const char *eq = strchr(kv, '=');
    if (eq == NULL || eq == kv) {
        return cli_usage_error("produce", "--header wants KEY=VALUE, not '%s'", kv);
    }
    if (o->header_count >= PRODUCE_HEADERS_MAX) {
        return cli_usage_error("produce", "at most %d --header options", PRODUCE_HEADERS_MAX);
    }
    o->headers[o->header_count++] = (struct nagare_header){
        .key = kv,
        .key_len = (size_t)(eq - kv),
        .value = eq + 1,
        .value_len = (ssize_t)strlen(eq + 1),
    };
    return 0;
}

static int produce_mode_opt(struct produce_opts *o, int ch, const char *arg)
{
    if (ch == 'a') {
        bool ok = strcmp(arg, "0") == 0 || strcmp(arg, "1") == 0 || strcmp(arg, "all") == 0;
        if (!ok) {
            return cli_usage_error("produce", "--acks wants 0, 1 or all, not '%s'", arg);
        }
        o->acks = strcmp(arg, "all") == 0 ? -1 : arg[0] - '0';
        return 0;
    }
    if (strcmp(arg, "none") == 0 || strcmp(arg, "zstd") == 0) {
        o->compression = arg[0] == 'z' ? NAGARE_COMPRESSION_ZSTD : NAGARE_COMPRESSION_NONE;
        return 0;
    }
    return cli_usage_error("produce", "--compression wants none or zstd, not '%s'", arg);
}

static int produce_option(void *opts, int ch, char **argv)
{
    struct produce_opts *o = opts;
    int64_t v;
    switch (ch) {
    case 'b':
        return cli_broker_option("produce", optarg, &o->broker);
    case 'h':
        o->help = true;
        return 0;
    case 'K':
        if (strlen(optarg) != 1) {
            return cli_usage_error("produce", "--key-separator wants one character, not '%s'",
                                   optarg);
        }
        o->separator = (unsigned char)optarg[0];
        return 0;
    case 'p':
        if (!cli_parse_i64(optarg, 0, INT32_MAX, &v)) {
            return cli_usage_error("produce", "--partition wants a number >= 0, not '%s'", optarg);
        }
        o->partition = (int32_t)v;
        return 0;
    case 'a':
    case 'z':
        return produce_mode_opt(o, ch, optarg);
    case 'H':
        return produce_header_opt(o, optarg);
    default:
        return cli_bad_option("produce", ch, argv);
    }
}

static int produce_parse(struct produce_opts *o, int argc, char **argv)
{
    int rc = cli_options(argc, argv, produce_longopts, produce_option, o);
    if (rc != 0) {
        return rc;
    }
    if (o->help) {
        return 0;
    }
    return cli_operand("produce", argc, argv, true, "TOPIC", &o->topic);
}

/* ---- delivery ---- */

static void produce_note_failure(struct produce_stats *st, uint64_t line_no, int err)
{
    st->failed++;
    progress_clear(&st->progress);
    if (st->failed <= PRODUCE_FAILURES_SHOWN) {
        fprintf(stderr, "nagare: produce %s: line %" PRIu64 ": %s\n", st->topic, line_no,
                nagare_strerror(err));
    }
    if (st->failed == PRODUCE_FAILURES_SHOWN + 1) {
        fprintf(stderr, "nagare: produce %s: more failures; only counting them now\n", st->topic);
    }
}

static void produce_on_delivery(const struct nagare_delivery *d, void *opaque)
{
    struct produce_stats *st = opaque;
    uintptr_t tag = (uintptr_t)d->opaque;
    uint64_t line_no = tag >> PRODUCE_BYTES_BITS;
    if (d->err != 0) {
        produce_note_failure(st, line_no, d->err < 0 ? d->err : -d->err);
        return;
    }
    st->delivered++;
    st->delivered_bytes += tag & ((1u << PRODUCE_BYTES_BITS) - 1);
}

/* The broker refused a batch with an error the library retries (a full
 * disk, say): said at once, not only when the records run out of time. */
static void produce_on_error(const struct nagare_producer_error *e, void *opaque)
{
    struct produce_stats *st = opaque;
    progress_clear(&st->progress);
    fprintf(stderr, "nagare: produce %s: partition %" PRId32 ": %s (retrying for up to %d s)\n",
            st->topic, e->partition, nagare_strerror(e->err), PRODUCE_DELIVERY_TIMEOUT_MS / 1000);
}

/* lines.h's idle hook: while stdin is quiet, let the producer send what
 * lingers and read answers. */
static int produce_idle(void *arg)
{
    nagare_producer *p = arg;
    if (nagare_producer_outstanding(p) == 0) {
        return 1;
    }
    /* 1 ms, not 0: libnagare's poll(0) sends but does not read answers. */
    int rc = nagare_producer_poll(p, PRODUCE_IDLE_POLL_MS);
    return rc < 0 ? rc : 0;
}

/* ---- the loop ---- */

struct produce_run {
    const struct produce_opts *o;
    nagare_producer *p;
    struct produce_stats st;
    uint64_t sent;
    uint64_t read_bytes; /* of stdin, newlines included */
    int fatal;           /* the error that stopped the run, or 0 */
    const char *fatal_what;
};

/* Sends one line as a record. Returns 0, or a negative error that stops the
 * run (anything but a record too big, which only fails that record). */
static int produce_line(struct produce_run *r, const char *line, size_t len, uint64_t line_no)
{
    const struct produce_opts *o = r->o;
    const char *sep = o->separator >= 0 ? memchr(line, o->separator, len) : NULL;
    size_t key_len = sep != NULL ? (size_t)(sep - line) : 0;
    struct nagare_record rec = {
        .topic = o->topic,
        .partition = o->partition,
        .key = sep != NULL ? line : NULL,
        .key_len = sep != NULL ? (ssize_t)key_len : -1,
        .value = sep != NULL ? sep + 1 : line,
        .value_len = sep != NULL ? (ssize_t)(len - key_len - 1) : (ssize_t)len,
        .headers = o->header_count > 0 ? o->headers : NULL,
        .header_count = o->header_count,
        .opaque = (void *)(uintptr_t)(line_no << PRODUCE_BYTES_BITS | (len - (sep != NULL))),
    };
    for (;;) {
        int rc = nagare_send(r->p, &rec);
        if (rc == 0) {
            break;
        }
        if (rc == -NAGARE_ETOOBIG) {
            produce_note_failure(&r->st, line_no, rc);
            return 0;
        }
        if (rc != -NAGARE_EBUSY) {
            return rc;
        }
        rc = nagare_producer_poll(r->p, 100); /* the buffer is full: make room */
        if (rc < 0) {
            return rc;
        }
    }
    r->sent++;
    int rc = r->sent % PRODUCE_POLL_EVERY == 0 ? nagare_producer_poll(r->p, 0) : 0;
    return rc < 0 ? rc : 0;
}

/* Reads stdin to its end (or a signal) and sends every line. */
static void produce_read_all(struct produce_run *r, struct lines *in)
{
    while (!cli_stop) {
        const char *line;
        size_t len;
        int rc = lines_next(in, &line, &len);
        if (rc == 0 || (rc == -EINTR && cli_stop)) {
            return;
        }
        if (rc == -EINTR) {
            continue;
        }
        if (rc == -NAGARE_ETOOBIG) {
            produce_note_failure(&r->st, in->line_no, rc);
            continue;
        }
        if (rc < 0) {
            r->fatal = rc;
            r->fatal_what = "reading stdin";
            return;
        }
        rc = produce_line(r, line, len, in->line_no);
        if (rc < 0) {
            r->fatal = rc;
            r->fatal_what = "sending";
            return;
        }
        r->read_bytes += len + 1;
        progress_update(&r->st.progress, r->read_bytes, r->st.delivered);
    }
}

/* Shows progress on stderr when it is a terminal and stdin is not (a file
 * or a pipe: input that takes a while, not lines being typed); a file's
 * size gives a percentage. */
static void produce_progress_start(struct produce_run *r)
{
    struct stat sb;
    off_t at = lseek(STDIN_FILENO, 0, SEEK_CUR);
    uint64_t total =
        fstat(STDIN_FILENO, &sb) == 0 && S_ISREG(sb.st_mode) && at >= 0 && sb.st_size > at
            ? (uint64_t)(sb.st_size - at)
            : 0;
    progress_start(&r->st.progress, isatty(STDIN_FILENO) ? -1 : STDERR_FILENO, false, "producing",
                   "records delivered", total);
}

static void produce_summary(const struct produce_run *r, int64_t elapsed_ms)
{
    const struct produce_stats *st = &r->st;
    fprintf(stderr,
            "nagare: produce %s: %" PRIu64 " record%s (%" PRIu64 " byte%s) delivered in "
            "%" PRId64 ".%03" PRId64 " s, %" PRIu64 " failed\n",
            r->o->topic, st->delivered, st->delivered == 1 ? "" : "s", st->delivered_bytes,
            st->delivered_bytes == 1 ? "" : "s", elapsed_ms / 1000, elapsed_ms % 1000, st->failed);
}

/* Runs the producer over stdin; r->o and r->p are set. Destroys the
 * producer. Returns the exit status. */
static int produce_run(struct produce_run *r)
{
    const char *topic = r->o->topic;
    struct lines in;
    if (lines_init(&in, STDIN_FILENO, produce_idle, r->p) < 0) {
        nagare_producer_destroy(r->p);
        return cli_fail(-ENOMEM, "produce %s", topic);
    }
    int64_t t0 = clock_mono_ms();
    produce_progress_start(r);
    produce_read_all(r, &in);
    lines_fini(&in);
    progress_clear(&r->st.progress);
    if (r->fatal != 0) {
        fprintf(stderr, "nagare: produce %s: %s: %s\n", topic, r->fatal_what,
                nagare_strerror(r->fatal));
    }
    int rc = nagare_producer_flush(r->p, PRODUCE_DELIVERY_TIMEOUT_MS + CLI_TIMEOUT_MS);
    if (rc < 0) {
        fprintf(stderr, "nagare: produce %s: flushing: %s\n", topic, nagare_strerror(rc));
    }
    /* Records still outstanding are reported failed (counted) by destroy. */
    nagare_producer_destroy(r->p);
    r->p = NULL;
    produce_summary(r, clock_mono_ms() - t0);
    bool ok = r->fatal == 0 && rc == 0 && r->st.failed == 0;
    return ok ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

int cli_produce_main(int argc, char **argv)
{
    struct nagare_producer_config c;
    nagare_producer_config_default(&c);
    c.tls = *cli_tls();
    struct produce_opts o = {
        .broker = cli_broker_default(),
        .separator = -1,
        .partition = NAGARE_PARTITION_ANY,
        .acks = -1,
        .compression = c.compression,
    };
    int st = produce_parse(&o, argc, argv);
    if (st != 0 || o.help) {
        if (o.help) {
            fputs(produce_usage_text, stdout);
        }
        return st;
    }
    struct produce_run r = {.o = &o, .st = {.topic = o.topic}};
    c.bootstrap = o.broker;
    c.login = cli_login();
    c.acks = o.acks;
    c.compression = o.compression;
    c.request_timeout_ms = CLI_TIMEOUT_MS;
    c.delivery_timeout_ms = PRODUCE_DELIVERY_TIMEOUT_MS;
    c.on_delivery = produce_on_delivery;
    c.on_error = produce_on_error;
    c.opaque = &r.st;
    int rc = nagare_producer_new(&c, &r.p);
    if (rc < 0) {
        return cli_fail(rc, "connecting to %s", o.broker);
    }
    return produce_run(&r);
}
