#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static enum log_level log_level_min = LOG_INFO;
static enum log_format log_format = LOG_FORMAT_TEXT;

void log_set_level(enum log_level level) { log_level_min = level; }

void log_set_format(enum log_format format) { log_format = format; }

/* msg as the inside of a JSON string into out[0..cap), cut before an
 * escape that does not fit. Returns the bytes written. */
static size_t json_escape(const char *msg, char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)msg; *p != '\0'; p++) {
        char esc[7];
        size_t len = 0;
        if (*p == '"' || *p == '\\') {
            esc[len++] = '\\';
            esc[len++] = (char)*p;
        } else if (*p == '\n') {
            esc[len++] = '\\';
            esc[len++] = 'n';
        } else if (*p == '\t') {
            esc[len++] = '\\';
            esc[len++] = 't';
        } else if (*p < 0x20 || *p == 0x7f) {
            esc[len++] = '\\';
            esc[len++] = 'u';
            esc[len++] = '0';
            esc[len++] = '0';
            esc[len++] = hex[*p >> 4];
            esc[len++] = hex[*p & 15];
        } else {
            esc[len++] = (char)*p;
        }
        if (n + len > cap) {
            break;
        }
        for (size_t i = 0; i < len; i++) {
            out[n++] = esc[i];
        }
    }
    /* a cut in the middle of a UTF-8 sequence would not be valid JSON text:
     * drop its lead and continuation bytes */
    size_t end = n;
    while (end > 0 && ((unsigned char)out[end - 1] & 0xc0) == 0x80) {
        end--;
    }
    if (end > 0 && ((unsigned char)out[end - 1] & 0xc0) == 0xc0) {
        unsigned char lead = (unsigned char)out[end - 1];
        size_t want = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
        if (n - (end - 1) < want) {
            n = end - 1;
        }
    }
    return n;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    static const char *const json_names[] = {"debug", "info", "warn", "error"};
    if (level < log_level_min || level >= LOG_OFF) {
        return;
    }
    char msg[LOG_LINE_BYTES];
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (m < 0) {
        msg[0] = '\0';
    }
    char line[LOG_LINE_BYTES];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char when[64];
    snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    size_t len;
    if (log_format == LOG_FORMAT_JSON) {
        int n = snprintf(line, sizeof(line), "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":\"", when,
                         json_names[level]);
        len = (size_t)n + json_escape(msg, line + n, sizeof(line) - (size_t)n - 3);
        line[len++] = '"';
        line[len++] = '}';
    } else {
        int n = snprintf(line, sizeof(line), "%s %-5s %s", when, names[level], msg);
        len = n < 0 ? 0 : (size_t)n > sizeof(line) - 2 ? sizeof(line) - 2 : (size_t)n;
    }
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w; /* nowhere to report a failed log write */
}
