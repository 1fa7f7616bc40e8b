/*
 * tests/test_log.c — base/log.h: text and JSON lines, levels, escaping and
 * cutting that keep a JSON line valid.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"

/* Runs log_msg(level, "%s", msg) with stderr on a pipe; returns what was
 * written (static, NUL-terminated). */
static const char *logged(enum log_level level, const char *msg)
{
    static char out[4 * LOG_LINE_BYTES];
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    int saved = dup(STDERR_FILENO);
    cr_assert_geq(saved, 0);
    cr_assert_eq(dup2(fds[1], STDERR_FILENO), STDERR_FILENO);
    log_msg(level, "%s", msg);
    cr_assert_eq(dup2(saved, STDERR_FILENO), STDERR_FILENO);
    close(saved);
    close(fds[1]);
    ssize_t n = read(fds[0], out, sizeof(out) - 1);
    close(fds[0]);
    out[n > 0 ? n : 0] = '\0';
    return out;
}

static void teardown(void)
{
    log_set_format(LOG_FORMAT_TEXT);
    log_set_level(LOG_INFO);
}

TestSuite(log, .fini = teardown);

Test(log, text_lines_carry_time_level_and_message)
{
    const char *line = logged(LOG_WARN, "disk nearly full");
    cr_assert_eq(strlen(line), 24 + 7 + 16 + 1, "%s", line);
    cr_assert(line[4] == '-' && line[10] == 'T' && line[23] == 'Z', "%s", line);
    cr_assert_str_eq(line + 24, " WARN  disk nearly full\n");
    cr_assert_str_eq(logged(LOG_DEBUG, "hidden"), "", "below the level: dropped");
}

Test(log, json_lines_are_one_object_each_with_the_message_escaped)
{
    log_set_format(LOG_FORMAT_JSON);
    const char *line = logged(LOG_INFO, "a \"quoted\" \\path\\\tand\na\x01 byte");
    cr_assert(strncmp(line, "{\"time\":\"", 9) == 0, "%s", line);
    const char *rest = strstr(line, "Z\",\"level\":\"info\",\"msg\":\"");
    cr_assert_not_null(rest, "%s", line);
    cr_assert_str_eq(rest + 25, "a \\\"quoted\\\" \\\\path\\\\\\tand\\na\\u0001 byte\"}\n");
}

/* quotes (escaped to two bytes each), then three-byte characters: more,
 * escaped, than a line holds. Three counts of quotes cut the characters at
 * each of their bytes. */
static void cut_case(size_t quotes_in)
{
    char msg[LOG_LINE_BYTES - 24];
    size_t n = 0;
    while (n < quotes_in) {
        msg[n++] = '"';
    }
    while (n + 3 < sizeof(msg)) {
        memcpy(msg + n, "\xe6\xb5\x81", 3); /* 流 */
        n += 3;
    }
    msg[n] = '\0';
    const char *line = logged(LOG_ERROR, msg);
    size_t len = strlen(line);
    cr_assert_leq(len, LOG_LINE_BYTES);
    cr_assert_str_eq(line + len - 3, "\"}\n", "closed: %s", line + len - 20);
    const char *m = strstr(line, "\"msg\":\"") + 7;
    size_t body = (size_t)(line + len - 3 - m);
    size_t quotes = 0;
    while (quotes * 2 + 1 < body && m[quotes * 2] == '\\' && m[quotes * 2 + 1] == '"') {
        quotes++;
    }
    cr_assert_eq(quotes, quotes_in, "every quote whole, escaped");
    cr_assert_eq((body - quotes * 2) % 3, 0, "only whole characters after them");
    cr_assert_gt(body, LOG_LINE_BYTES - 100, "cut near the bound, not before");
}

Test(log, a_long_json_line_is_cut_to_its_bound_and_stays_valid)
{
    log_set_format(LOG_FORMAT_JSON);
    cut_case(300);
    cut_case(301);
    cut_case(302);
}
