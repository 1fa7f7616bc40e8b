/*
 * base/log.h — one line per event on stderr: UTC time, level, message;
 * as text ("2026-12-07T02:01:13.123Z INFO  message") or as a JSON object per
 * line ({"time":"2026-12-07T02:01:13.123Z","level":"info","msg":"message"},
 * the message escaped as JSON strings are), for log collectors.
 *
 * Lines are written with a single write(2) so lines from different threads
 * never interleave; a message too long for LOG_LINE_BYTES is cut (whole
 * characters and escapes: a JSON line stays valid). Messages below the
 * process-wide level are dropped.
 */
#ifndef NAGARE_BASE_LOG_H
#define NAGARE_BASE_LOG_H

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_OFF };

enum log_format { LOG_FORMAT_TEXT = 0, LOG_FORMAT_JSON };

/* The longest line written, newline included. */
#define LOG_LINE_BYTES 1024

/* Sets the lowest level printed (default LOG_INFO). Call before threads start. */
void log_set_level(enum log_level level);

/* Sets the lines' format (default LOG_FORMAT_TEXT). Call before threads start. */
void log_set_format(enum log_format format);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
