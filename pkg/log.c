#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum log_level log_threshold = LOG_LEVEL_INFO;
static const char *log_prog;

static const char *const log_names[] = {
	[LOG_LEVEL_ERROR] = "error",
	[LOG_LEVEL_WARN] = "warn",
	[LOG_LEVEL_INFO] = "info",
	[LOG_LEVEL_DEBUG] = "debug",
};

void log_init(const char *progname, enum log_level level)
{
	log_prog = progname;
	log_threshold = level;
}

void log_set_level(enum log_level level)
{
	log_threshold = level;
}

enum log_level log_get_level(void)
{
	return log_threshold;
}

int log_level_parse(const char *name, enum log_level *level)
{
	for (size_t i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++) {
		if (name && !strcmp(name, log_names[i])) {
			*level = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

/* One fprintf per line so concurrent threads never interleave within a line. */
static void log_emit(enum log_level level, const char *err, const char *msg,
		     const char *kvfmt, va_list ap)
{
	char ts[32], kv[1024] = "", line[1400];
	struct tm tm;
	time_t now;

	if (level > log_threshold)
		return;
	now = time(NULL);
	gmtime_r(&now, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (kvfmt) {
		kv[0] = ' ';
		vsnprintf(kv + 1, sizeof(kv) - 1, kvfmt, ap);
	}
	snprintf(line, sizeof(line), "ts=%s level=%s%s%s msg=\"%s\"%s%s%s%s\n",
		 ts, log_names[level], log_prog ? " prog=" : "",
		 log_prog ? log_prog : "", msg, kv, err ? " err=\"" : "",
		 err ? err : "", err ? "\"" : "");
	fputs(line, stderr);
}

#define LOG_FN(name, level, witherr)                                     \
	void name(const char *msg, const char *kvfmt, ...)                 \
	{                                                                  \
		int saved = errno;                                         \
		va_list ap;                                                \
		va_start(ap, kvfmt);                                       \
		log_emit(level, witherr ? strerror(saved) : NULL, msg,     \
			 kvfmt, ap);                                       \
		va_end(ap);                                                \
		errno = saved;                                             \
	}

LOG_FN(log_error, LOG_LEVEL_ERROR, 0)
LOG_FN(log_warn, LOG_LEVEL_WARN, 1)
LOG_FN(log_warnx, LOG_LEVEL_WARN, 0)
LOG_FN(log_info, LOG_LEVEL_INFO, 0)
LOG_FN(log_debug, LOG_LEVEL_DEBUG, 0)
