/*
 * log: the single logging entry point of the daemon.
 *
 * Messages go to stderr (foreground) or syslog (daemonized), with a level.
 * Error messages follow the house form "thing: what failed: cause (fix)".
 */
#ifndef SEGLAM_LOG_H
#define SEGLAM_LOG_H

enum log_level { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

void log_set_level(enum log_level level);
void log_use_syslog(int on);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* One error line that allocates nothing (out of memory, about to abort). */
void log_emergency(const char *msg);

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
