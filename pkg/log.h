/*
 * Logging to stderr, one line per event, logfmt:
 *   ts=2026-11-22T22:05:25Z level=info msg="node registered" name=n1 endpoint=192.0.2.1:51820
 *
 * Every function takes a fixed message and an optional printf format for the
 * key=value pairs that follow it (NULL for none). log_warn() appends
 * err="<strerror(errno)>". Secrets are never passed here.
 */
#ifndef WGCNI_LOG_H
#define WGCNI_LOG_H

enum log_level {
	LOG_LEVEL_ERROR = 0,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
};

#define LOG_PRINTF(a, b) __attribute__((format(printf, a, b)))

void log_init(const char *progname, enum log_level level);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* "error", "warn", "info", "debug" → 0 and *level set, else -EINVAL. */
int log_level_parse(const char *name, enum log_level *level);

void log_error(const char *msg, const char *kvfmt, ...) LOG_PRINTF(2, 3);
void log_warn(const char *msg, const char *kvfmt, ...) LOG_PRINTF(2, 3);
void log_warnx(const char *msg, const char *kvfmt, ...) LOG_PRINTF(2, 3);
void log_info(const char *msg, const char *kvfmt, ...) LOG_PRINTF(2, 3);
void log_debug(const char *msg, const char *kvfmt, ...) LOG_PRINTF(2, 3);

#endif
