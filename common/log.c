/* log.c - one log for the whole program: stderr or syslog. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "hs.h"

static int log_to_stderr = 1;
static enum hs_log_level log_level = HS_LOG_INFO;
static const char *log_ident = "hamnsync";

void
hs_log_init(const char *ident, int to_stderr, enum hs_log_level level)
{
	const char *dbg = getenv("HAMNSYNC_DEBUG");

	log_ident = ident;
	log_to_stderr = to_stderr;
	log_level = level;
	if (dbg != NULL && strcmp(dbg, "1") == 0)
		log_level = HS_LOG_DEBUG;
	if (!to_stderr)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

static void
log_emit(enum hs_log_level lvl, int with_errno, int saved, const char *fmt,
         va_list ap)
{
	static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
	char msg[1024];
	int n;

	if (lvl > log_level)
		return;
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (n < 0)
		return;
	if (with_errno && (size_t)n < sizeof(msg))
		snprintf(msg + n, sizeof(msg) - (size_t)n, ": %s",
		         strerror(saved));
	if (log_to_stderr) {
		struct timespec ts;
		struct tm tm;
		char when[32];

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(when, sizeof(when), "%H:%M:%S", &tm);
		fprintf(stderr, "%s.%03ld %s[%d]: %s\n", when,
		        ts.tv_nsec / 1000000, log_ident, (int)getpid(), msg);
	} else
		syslog(prio[lvl], "%s", msg);
}

#define LOG_FN(name, lvl, with_errno)                                          \
	void name(const char *fmt, ...)                                        \
	{                                                                      \
		int saved = errno;                                             \
		va_list ap;                                                    \
		va_start(ap, fmt);                                             \
		log_emit(lvl, with_errno, saved, fmt, ap);                     \
		va_end(ap);                                                    \
		errno = saved;                                                 \
	}

LOG_FN(hs_log_err, HS_LOG_ERR, 1)
LOG_FN(hs_log_errx, HS_LOG_ERR, 0)
LOG_FN(hs_log_warn, HS_LOG_WARN, 1)
LOG_FN(hs_log_warnx, HS_LOG_WARN, 0)
LOG_FN(hs_log_info, HS_LOG_INFO, 0)
LOG_FN(hs_log_debug, HS_LOG_DEBUG, 0)
