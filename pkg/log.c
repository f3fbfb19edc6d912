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

/*
 * Append src to dst[*n..cap) for a logfmt line. quoted: inside "...", so
 * '"' and '\\' are escaped too. Control characters always become escapes,
 * so a message can never split the line. Truncates quietly.
 */
static void log_append(char *dst, size_t cap, size_t *n, const char *src, int quoted)
{
	static const char hex[] = "0123456789abcdef";

	for (; *src && *n + 5 < cap; src++) {
		unsigned char c = (unsigned char)*src;

		if (c == '\n' || c == '\r' || c == '\t') {
			dst[(*n)++] = '\\';
			dst[(*n)++] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
		} else if (c < 0x20 || c == 0x7f) {
			dst[(*n)++] = '\\';
			dst[(*n)++] = 'x';
			dst[(*n)++] = hex[c >> 4];
			dst[(*n)++] = hex[c & 15];
		} else if (quoted && (c == '"' || c == '\\')) {
			dst[(*n)++] = '\\';
			dst[(*n)++] = (char)c;
		} else
			dst[(*n)++] = (char)c;
	}
	dst[*n] = '\0';
}

/* One fputs per line so concurrent threads never interleave within a line. */
static void log_emit(enum log_level level, const char *err, const char *msg,
		     const char *kvfmt, va_list ap)
{
	/* Content stops at body, leaving room for the closing quotes, prog=
	 * (program names are short) and the newline. */
	char ts[32], kv[1024], line[2048];
	const size_t body = sizeof(line) - 80;
	struct tm tm;
	time_t now;
	size_t n;

	if (level > log_threshold)
		return;
	now = time(NULL);
	gmtime_r(&now, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	n = (size_t)snprintf(line, sizeof(line), "ts=%s level=%s", ts,
			     log_names[level]);
	log_append(line, sizeof(line), &n, " msg=\"", 0);
	log_append(line, body, &n, msg ? msg : "", 1);
	log_append(line, sizeof(line), &n, "\"", 0);
	if (kvfmt) {
		vsnprintf(kv, sizeof(kv), kvfmt, ap);
		log_append(line, sizeof(line), &n, " ", 0);
		log_append(line, body, &n, kv, 0);
	}
	if (err) {
		log_append(line, sizeof(line), &n, " err=\"", 0);
		log_append(line, body, &n, err, 1);
		log_append(line, sizeof(line), &n, "\"", 0);
	}
	/* Last, so every line reads as log.h shows: ts, level, msg, pairs. */
	if (log_prog) {
		log_append(line, sizeof(line), &n, " prog=", 0);
		log_append(line, sizeof(line), &n, log_prog, 0);
	}
	line[n++] = '\n';
	line[n] = '\0';
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
