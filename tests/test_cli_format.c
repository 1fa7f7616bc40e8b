/* The nagare tool's pure helpers: --from TIME parsing (client/cli/timestamp.h),
 * --format templates and JSON (client/cli/format.h), bounded stdin lines
 * (client/cli/lines.h). The commands themselves are tested end to end by
 * tests/test_cli.sh. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/cli/format.h"
#include "client/cli/lines.h"
#include "client/cli/timestamp.h"

/* ---- TIME ---- */

static int64_t parse_ok(const char *s)
{
    int64_t ms = -1;
    cr_assert_eq(cli_time_parse(s, &ms), 0, "'%s' should parse", s);
    return ms;
}

static void parse_bad(const char *s)
{
    int64_t ms = 12345;
    cr_assert_eq(cli_time_parse(s, &ms), -NAGARE_EBADARG, "'%s' should be refused", s);
    cr_assert_eq(ms, 12345, "a refused TIME leaves the output alone");
}

Test(cli_time, parses_utc_with_and_without_fraction)
{
    cr_assert_eq(parse_ok("2026-11-28T12:00:00Z"), 1795867200000);
    cr_assert_eq(parse_ok("2026-11-28T12:00:00.250Z"), 1795867200250);
    cr_assert_eq(parse_ok("2026-11-28T12:00:00.2Z"), 1795867200200);
    cr_assert_eq(parse_ok("2026-11-28T12:00:00,25Z"), 1795867200250);
    cr_assert_eq(parse_ok("2026-11-28T12:00:00.123456789Z"), 1795867200123);
    cr_assert_eq(parse_ok("2026-11-28t12:00:00z"), 1795867200000);
    cr_assert_eq(parse_ok("2026-11-28 12:00:00Z"), 1795867200000);
}

Test(cli_time, applies_zone_offsets)
{
    cr_assert_eq(parse_ok("2026-11-28T13:00:00+01:00"), 1795867200000);
    cr_assert_eq(parse_ok("2026-11-28T13:30:00+0130"), 1795867200000);
    cr_assert_eq(parse_ok("2026-11-28T07:00:00.500-05:00"), 1795867200500);
    cr_assert_eq(parse_ok("1970-01-01T01:00:00+01:00"), 0);
}

Test(cli_time, knows_the_calendar)
{
    cr_assert_eq(parse_ok("1970-01-01T00:00:00Z"), 0);
    cr_assert_eq(parse_ok("2024-02-29T00:00:00Z"), 1709164800000);
    cr_assert_eq(parse_ok("2000-03-01T00:00:00Z"), 951868800000);
    cr_assert_eq(parse_ok("9999-12-31T23:59:59Z"), 253402300799000);
    parse_bad("2026-02-29T00:00:00Z");
    parse_bad("1900-02-29T00:00:00Z");
    parse_bad("2026-04-31T00:00:00Z");
    parse_bad("2026-00-10T00:00:00Z");
    parse_bad("2026-13-10T00:00:00Z");
    parse_bad("2026-01-00T00:00:00Z");
}

Test(cli_time, parses_epoch_ms)
{
    cr_assert_eq(parse_ok("@0"), 0);
    cr_assert_eq(parse_ok("@1795867200000"), 1795867200000);
    parse_bad("@");
    parse_bad("@-1");
    parse_bad("@12x");
    parse_bad("@ 12");
    parse_bad("@99999999999999999999");
}

Test(cli_time, refuses_other_shapes)
{
    parse_bad("");
    parse_bad("2026-11-28T12:00:00"); /* no zone: refused, not guessed */
    parse_bad("2026-11-28");
    parse_bad("2026-11-28T12:00Z");
    parse_bad("2026-11-28T24:00:00Z");
    parse_bad("2026-11-28T12:60:00Z");
    parse_bad("2026-11-28T12:00:60Z");
    parse_bad("2026-11-28T12:00:00.Z");
    parse_bad("2026-11-28T12:00:00.1234567890Z");
    parse_bad("2026-11-28T12:00:00+24:00");
    parse_bad("2026-11-28T12:00:00+01:60");
    parse_bad("2026-11-28T12:00:00+1");
    parse_bad("2026-11-28T12:00:00Zjunk");
    parse_bad("26-11-28T12:00:00Z");
    parse_bad("1969-12-31T23:59:59Z"); /* before the epoch */
    parse_bad("1970-01-01T00:30:00+01:00");
}

/* ---- templates ---- */

struct capture {
    char *buf;
    size_t len;
    FILE *f;
};

static void cap_open(struct capture *c)
{
    memset(c, 0, sizeof(*c));
    c->f = open_memstream(&c->buf, &c->len);
    cr_assert_not_null(c->f);
}

static char *cap_close(struct capture *c)
{
    cr_assert_eq(fclose(c->f), 0);
    return c->buf;
}

static struct nagare_message msg(const char *key, ssize_t key_len, const char *value,
                                 ssize_t value_len)
{
    return (struct nagare_message){
        .topic = "orders",
        .partition = 3,
        .offset = 42,
        .timestamp_ms = 1795867200000,
        .key = key,
        .key_len = key_len,
        .value = value,
        .value_len = value_len,
    };
}

static char *render(const char *spec, const struct nagare_message *m)
{
    struct fmt f;
    char why[96];
    cr_assert_eq(fmt_compile(&f, spec, why, sizeof(why)), 0, "'%s': %s", spec, why);
    struct capture c;
    cap_open(&c);
    struct fmt_out out = {.f = c.f};
    fmt_print(&out, &f, m);
    cr_assert_eq(out.err, 0);
    return cap_close(&c);
}

Test(cli_format, default_prints_the_value_on_its_own_line)
{
    struct nagare_message m = msg("k", 1, "hello", 5);
    char *s = render(FMT_DEFAULT, &m);
    cr_assert_str_eq(s, "hello\n");
    free(s);
}

Test(cli_format, fills_every_placeholder)
{
    struct nagare_message m = msg("user-1", 6, "clicked", 7);
    char *s = render("%t/%p@%o %T %k=%v [%h] 100%%\\t\\\\x\\n", &m);
    cr_assert_str_eq(s, "orders/3@42 1795867200000 user-1=clicked [] 100%\t\\x\n");
    free(s);
}

Test(cli_format, null_key_and_value_print_nothing)
{
    struct nagare_message m = msg(NULL, -1, NULL, -1);
    char *s = render("<%k><%v>", &m);
    cr_assert_str_eq(s, "<><>");
    free(s);
}

Test(cli_format, values_are_raw_bytes)
{
    struct nagare_message m = msg("a\0b", 3, "x\ny\0z", 5);
    struct fmt f;
    char why[96];
    cr_assert_eq(fmt_compile(&f, "%k|%v", why, sizeof(why)), 0);
    struct capture c;
    cap_open(&c);
    struct fmt_out out = {.f = c.f};
    fmt_print(&out, &f, &m);
    size_t len;
    cr_assert_eq(fflush(c.f), 0);
    len = c.len;
    char *s = cap_close(&c);
    cr_assert_eq(len, 9);
    cr_assert_eq(memcmp(s, "a\0b|x\ny\0z", 9), 0);
    free(s);
}

static void compile_bad(const char *spec, const char *why_part)
{
    struct fmt f;
    char why[96];
    cr_assert_eq(fmt_compile(&f, spec, why, sizeof(why)), -NAGARE_EBADARG, "'%s'", spec);
    cr_assert_not_null(strstr(why, why_part), "'%s': why '%s' lacks '%s'", spec, why, why_part);
}

Test(cli_format, refuses_unknown_placeholders_and_escapes)
{
    compile_bad("%x", "unknown placeholder '%x'");
    compile_bad("a\\qb", "unknown escape '\\q'");
    compile_bad("value %", "lone '%'");
    compile_bad("value \\", "lone '\\'");
}

Test(cli_format, bounds_the_template)
{
    char spec[FMT_LITERAL_BYTES_MAX + 2];
    memset(spec, 'a', sizeof(spec) - 1);
    spec[sizeof(spec) - 1] = '\0';
    compile_bad(spec, "longer than");
    spec[FMT_LITERAL_BYTES_MAX] = '\0';
    struct fmt f;
    char why[96];
    cr_assert_eq(fmt_compile(&f, spec, why, sizeof(why)), 0, "exactly the maximum fits");
    char many[2 * FMT_PIECES_MAX + 3];
    for (size_t i = 0; i + 1 < sizeof(many); i += 2) {
        memcpy(many + i, "%v", 2);
    }
    many[sizeof(many) - 1] = '\0';
    compile_bad(many, "pieces");
}

/* ---- JSON ---- */

static char *json_of(const void *p, size_t n)
{
    struct capture c;
    cap_open(&c);
    struct fmt_out out = {.f = c.f};
    fmt_json_string(&out, p, n);
    cr_assert_eq(out.err, 0);
    return cap_close(&c);
}

Test(cli_json, escapes_what_json_needs)
{
    char *s = json_of("a\"b\\c\n\r\t\x01\x1f\x7f", 11);
    cr_assert_str_eq(s, "\"a\\\"b\\\\c\\n\\r\\t\\u0001\\u001f\\u007f\"");
    free(s);
    s = json_of("nul\0here", 8);
    cr_assert_str_eq(s, "\"nul\\u0000here\"");
    free(s);
}

Test(cli_json, keeps_valid_utf8_and_escapes_other_bytes)
{
    char *s = json_of("caf\xc3\xa9 \xe6\xb5\x81 \xf0\x9f\x8c\x8a", 14);
    cr_assert_str_eq(s, "\"caf\xc3\xa9 \xe6\xb5\x81 \xf0\x9f\x8c\x8a\"");
    free(s);
    /* A lone continuation byte, a truncated sequence, an overlong '/', a
     * surrogate, past U+10FFFF. */
    s = json_of("\x80|\xc3|\xc0\xaf|\xed\xa0\x80|\xf4\x90\x80\x80", 15);
    cr_assert_str_eq(s, "\"\\u0080|\\u00c3|\\u00c0\\u00af|\\u00ed\\u00a0\\u0080|"
                        "\\u00f4\\u0090\\u0080\\u0080\"");
    free(s);
}

Test(cli_json, prints_a_record_as_one_object)
{
    struct nagare_message m = msg("k\"1", 3, "\xff", 1);
    struct capture c;
    cap_open(&c);
    struct fmt_out out = {.f = c.f};
    fmt_print_json(&out, &m);
    cr_assert_eq(out.err, 0);
    char *s = cap_close(&c);
    cr_assert_str_eq(s, "{\"topic\":\"orders\",\"partition\":3,\"offset\":42,"
                        "\"timestamp_ms\":1795867200000,\"key\":\"k\\\"1\","
                        "\"value\":\"\\u00ff\",\"headers\":[]}\n");
    free(s);
    m = msg(NULL, -1, NULL, -1);
    cap_open(&c);
    out = (struct fmt_out){.f = c.f};
    fmt_print_json(&out, &m);
    s = cap_close(&c);
    cr_assert_not_null(strstr(s, "\"key\":null,\"value\":null,"));
    free(s);
}

Test(cli_format, keeps_the_first_write_error)
{
    FILE *f = fopen("/dev/full", "w");
    cr_assert_not_null(f);
    cr_assert_eq(setvbuf(f, NULL, _IONBF, 0), 0);
    struct fmt_out out = {.f = f};
    struct nagare_message m = msg("k", 1, "v", 1);
    fmt_print_json(&out, &m);
    cr_assert_eq(out.err, -ENOSPC);
    fclose(f);
}

/* ---- lines ---- */

/* A file descriptor reading these bytes, then EOF (a temporary file, so
 * any size works without a writer thread). */
static int input_of(const void *p, size_t n)
{
    FILE *f = tmpfile();
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(p, 1, n, f), n);
    cr_assert_eq(fflush(f), 0);
    int fd = dup(fileno(f));
    cr_assert_geq(fd, 0);
    fclose(f);
    cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
    return fd;
}

static void expect_line(struct lines *l, const void *want, size_t want_len)
{
    const char *line;
    size_t len;
    cr_assert_eq(lines_next(l, &line, &len), 1);
    cr_assert_eq(len, want_len);
    cr_assert_eq(memcmp(line, want, len), 0);
}

static void expect_end(struct lines *l)
{
    const char *line;
    size_t len;
    cr_assert_eq(lines_next(l, &line, &len), 0);
    cr_assert_eq(lines_next(l, &line, &len), 0, "the end stays the end");
}

Test(cli_lines, splits_at_newlines_only)
{
    static const char in[] = "a\nbb\r\n\nn\0ul\nlast";
    int fd = input_of(in, sizeof(in) - 1);
    struct lines l;
    cr_assert_eq(lines_init(&l, fd, NULL, NULL), 0);
    expect_line(&l, "a", 1);
    expect_line(&l, "bb\r", 3);
    expect_line(&l, "", 0);
    expect_line(&l, "n\0ul", 4);
    expect_line(&l, "last", 4);
    cr_assert_eq(l.line_no, 5);
    expect_end(&l);
    lines_fini(&l);
    close(fd);
}

Test(cli_lines, empty_input_has_no_lines)
{
    int fd = input_of("", 0);
    struct lines l;
    cr_assert_eq(lines_init(&l, fd, NULL, NULL), 0);
    expect_end(&l);
    lines_fini(&l);
    close(fd);
}

/* Lines of LINES_BYTES_MAX (taken) and one byte more (refused, skipped),
 * with and without a newline, found in one read or across several. */
Test(cli_lines, refuses_a_line_past_the_maximum_and_goes_on)
{
    size_t max = LINES_BYTES_MAX;
    size_t n = 4 * max + 64;
    char *in = malloc(n);
    cr_assert_not_null(in);
    size_t pos = 0;
    memset(in + pos, 'a', max);
    pos += max;
    in[pos++] = '\n';
    memset(in + pos, 'b', max + 1);
    pos += max + 1;
    in[pos++] = '\n';
    memcpy(in + pos, "ok\n", 3);
    pos += 3;
    memset(in + pos, 'c', max + 1);
    pos += max + 1;
    int fd = input_of(in, pos);
    struct lines l;
    cr_assert_eq(lines_init(&l, fd, NULL, NULL), 0);
    const char *line;
    size_t len;
    cr_assert_eq(lines_next(&l, &line, &len), 1);
    cr_assert_eq(len, max);
    cr_assert_eq(lines_next(&l, &line, &len), -NAGARE_ETOOBIG);
    cr_assert_eq(l.line_no, 2);
    expect_line(&l, "ok", 2);
    cr_assert_eq(l.line_no, 3);
    cr_assert_eq(lines_next(&l, &line, &len), -NAGARE_ETOOBIG);
    cr_assert_eq(l.line_no, 4);
    expect_end(&l);
    lines_fini(&l);
    close(fd);
    free(in);
}

static int idle_calls;

static int count_idle(void *arg)
{
    (void)arg;
    idle_calls++;
    return idle_calls < 3 ? 0 : -ECANCELED;
}

Test(cli_lines, runs_the_idle_hook_while_stdin_is_quiet)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    cr_assert_eq(write(p[1], "x\n", 2), 2);
    struct lines l;
    cr_assert_eq(lines_init(&l, p[0], count_idle, NULL), 0);
    expect_line(&l, "x", 1);
    const char *line;
    size_t len;
    cr_assert_eq(lines_next(&l, &line, &len), -ECANCELED, "the hook's error comes back");
    cr_assert_eq(idle_calls, 3);
    close(p[1]);
    idle_calls = 0;
    expect_end(&l);
    lines_fini(&l);
    close(p[0]);
}
