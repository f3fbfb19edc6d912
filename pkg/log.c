#include "log.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
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

/*
 * A %s value is quoted when logfmt needs it: empty, or holding a space, '=',
 * '"', '\\' or a control character. Call sites write key=%s and never quote
 * themselves, so every value is quoted and escaped the same way.
 */
static bool log_needs_quotes(const char *v)
{
	if (!*v)
		return true;
	for (; *v; v++) {
		unsigned char c = (unsigned char)*v;

		if (c <= ' ' || c == '=' || c == '"' || c == '\\' || c == 0x7f)
			return true;
	}
	return false;
}

/*
 * Expand kvfmt into dst, one conversion at a time, so that a string
 * argument can be quoted and escaped on its own. Each conversion is handed
 * to snprintf with exactly its argument; the format attribute on the
 * public functions has already checked the types.
 */
static void log_format_kv(char *dst, size_t cap, size_t *n, const char *kvfmt, va_list ap)
	LOG_PRINTF(4, 0);

/* spec is one conversion cut from kvfmt, which the compiler checked. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"

static void log_format_kv(char *dst, size_t cap, size_t *n, const char *kvfmt, va_list ap)
{
	char spec[32], val[512];
	const char *p = kvfmt;

	while (*p) {
		const char *q = strchr(p, '%');
		size_t lit = q ? (size_t)(q - p) : strlen(p);
		int width = 0, prec = 0, nstar = 0, longs = 0;
		char len = 0, conv;
		size_t k = 0;

		if (lit) {
			char chunk[256];

			while (lit) {
				size_t m = lit < sizeof(chunk) - 1 ? lit : sizeof(chunk) - 1;

				memcpy(chunk, p, m);
				chunk[m] = '\0';
				log_append(dst, cap, n, chunk, 0);
				p += m;
				lit -= m;
			}
		}
		if (!q)
			break;
		/* %[flags][width][.precision][length]conversion */
		spec[k++] = *p++;
		while (*p && strchr("-+ #0", *p) && k < sizeof(spec) - 4)
			spec[k++] = *p++;
		for (int part = 0; part < 2; part++) {
			if (part && *p == '.')
				spec[k++] = *p++;
			else if (part)
				break;
			if (*p == '*') {
				int v = va_arg(ap, int);

				if (part)
					prec = v;
				else
					width = v;
				nstar |= 1 << part;
				spec[k++] = *p++;
			}
			while (*p >= '0' && *p <= '9' && k < sizeof(spec) - 4)
				spec[k++] = *p++;
		}
		while (*p && strchr("hlLqjzt", *p) && k < sizeof(spec) - 2) {
			len = *p;
			longs += *p == 'l';
			spec[k++] = *p++;
		}
		conv = *p;
		if (!conv)
			break;
		spec[k++] = *p++;
		spec[k] = '\0';

#define LOG_CONV(type)                                                          \
	do {                                                                    \
		type v_ = va_arg(ap, type);                                     \
		if (nstar == 3)                                                 \
			snprintf(val, sizeof(val), spec, width, prec, v_);      \
		else if (nstar)                                                 \
			snprintf(val, sizeof(val), spec, nstar == 1 ? width : prec, v_); \
		else                                                            \
			snprintf(val, sizeof(val), spec, v_);                   \
	} while (0)

		switch (conv) {
		case 's': {
			LOG_CONV(const char *);
			if (log_needs_quotes(val)) {
				log_append(dst, cap, n, "\"", 0);
				log_append(dst, cap, n, val, 1);
				log_append(dst, cap, n, "\"", 0);
			} else
				log_append(dst, cap, n, val, 0);
			continue;
		}
		case 'd': case 'i': case 'u': case 'x': case 'X': case 'o': case 'c':
			if (len == 'z')
				LOG_CONV(size_t);
			else if (len == 'j')
				LOG_CONV(intmax_t);
			else if (len == 't')
				LOG_CONV(ptrdiff_t);
			else if (longs >= 2 || len == 'q')
				LOG_CONV(long long);
			else if (longs == 1)
				LOG_CONV(long);
			else
				LOG_CONV(int);
			break;
		case 'e': case 'E': case 'f': case 'F': case 'g': case 'G': case 'a': case 'A':
			if (len == 'L')
				LOG_CONV(long double);
			else
				LOG_CONV(double);
			break;
		case 'p':
			LOG_CONV(void *);
			break;
		case '%':
			strcpy(val, "%");
			break;
		default: /* not a conversion printf knows: stop, as printf would */
			return;
		}
#undef LOG_CONV
		log_append(dst, cap, n, val, 0);
	}
}

#pragma GCC diagnostic pop

/* One fputs per line so concurrent threads never interleave within a line. */
static void log_emit(enum log_level level, const char *err, const char *msg,
		     const char *kvfmt, va_list ap) LOG_PRINTF(4, 0);

static void log_emit(enum log_level level, const char *err, const char *msg,
		     const char *kvfmt, va_list ap)
{
	/* Content stops at body, leaving room for the closing quotes, prog=
	 * (program names are short) and the newline. */
	char ts[32], line[2048];
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
		log_append(line, sizeof(line), &n, " ", 0);
		log_format_kv(line, body, &n, kvfmt, ap);
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
