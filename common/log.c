/* log: leveled logging to stderr or syslog, see log.h. */
#include "log.h"
#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>
#include <time.h>

static enum log_level log_level = LOG_LVL_INFO;
static int log_syslog;

void log_set_level(enum log_level level)
{
	log_level = level;
}

void log_use_syslog(int on)
{
	log_syslog = on;
	if (on)
		openlog("seglamfs", LOG_PID, LOG_DAEMON);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const char *const names[] = {"error", "warning", "info", "debug"};
	static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
	struct buf line = BUF_INIT;
	va_list ap;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	buf_vprintf(&line, fmt, ap);
	va_end(ap);
	if (log_syslog) {
		syslog(prio[level], "%s", buf_str(&line));
	} else {
		/* One fprintf per line so concurrent threads do not interleave. */
		struct timespec ts;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		fprintf(stderr, "%02d:%02d:%02d.%03ld seglamfs %s: %s\n", tm.tm_hour, tm.tm_min,
			tm.tm_sec, ts.tv_nsec / 1000000, names[level], buf_str(&line));
	}
	buf_free(&line);
}
