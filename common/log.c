/* log: leveled logging to stderr or syslog, see log.h. */
#include "log.h"
#include "buf.h"
#include "clock.h"

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
		uint64_t now = clock_real_ns();
		time_t sec = (time_t)(now / 1000000000u);
		struct tm tm;

		gmtime_r(&sec, &tm);
		fprintf(stderr, "%02d:%02d:%02d.%03u seglamfs %s: %s\n", tm.tm_hour, tm.tm_min,
			tm.tm_sec, (unsigned)(now / 1000000u % 1000u), names[level],
			buf_str(&line));
	}
	buf_free(&line);
}

void log_emergency(const char *msg)
{
	if (log_syslog)
		syslog(LOG_CRIT, "%s", msg);
	else
		fprintf(stderr, "seglamfs error: %s\n", msg);
}
