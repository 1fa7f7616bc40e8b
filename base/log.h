/*
 * base/log.h — one line per event on stderr: UTC time, level, message.
 *
 * Lines are written with a single write(2) so lines from different threads
 * never interleave. Messages below the process-wide level are dropped.
 */
#ifndef NAGARE_BASE_LOG_H
#define NAGARE_BASE_LOG_H

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_OFF };

/* Sets the lowest level printed (default LOG_INFO). Call before threads start. */
void log_set_level(enum log_level level);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
