#include "opts.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void opts_env_name(const char *longname, char *out, size_t outlen)
{
	size_t n;

	if (!outlen)
		return;
	n = (size_t)snprintf(out, outlen, "WGCNI_");
	for (; *longname && n + 1 < outlen; longname++, n++)
		out[n] = *longname == '-' ? '_' : (char)toupper((unsigned char)*longname);
	if (n < outlen)
		out[n] = '\0';
}

/* 1 applied, 0 ignored, -1 not a boolean. */
static int env_bool(const char *v)
{
	static const char *const yes[] = { "1", "true", "yes" };
	static const char *const no[] = { "", "0", "false", "no" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		if (!strcasecmp(v, yes[i]))
			return 1;
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		if (!strcasecmp(v, no[i]))
			return 0;
	return -1;
}

/* Run the callback; make sure a refusal always carries a message. */
static int apply_one(opts_apply_fn apply, int val, const char *arg, void *ctx,
		     const char *what, char *err, size_t errlen)
{
	int ret;

	err[0] = '\0';
	ret = apply(val, arg, ctx, err, errlen);
	if (ret < 0 && !err[0])
		snprintf(err, errlen, "invalid value for %s: \"%s\"", what, arg ? arg : "");
	return ret;
}

static int apply_env(const struct option *longopts, opts_apply_fn apply, void *ctx,
		     char *err, size_t errlen)
{
	char name[128];

	for (const struct option *o = longopts; o && o->name; o++) {
		const char *v;
		const char *arg;

		opts_env_name(o->name, name, sizeof(name));
		v = getenv(name);
		if (!v)
			continue;
		if (o->has_arg == no_argument) {
			int b = env_bool(v);

			if (b < 0) {
				snprintf(err, errlen,
					 "%s must be 1, true, yes, 0, false or no, got \"%s\"",
					 name, v);
				return -EINVAL;
			}
			if (!b)
				continue;
			arg = NULL;
		} else if (o->has_arg == required_argument) {
			/* an empty value counts as unset */
			if (!*v)
				continue;
			arg = v;
		} else
			arg = *v ? v : NULL;
		if (o->flag) {
			*o->flag = o->val;
			continue;
		}
		if (apply_one(apply, o->val, arg, ctx, name, err, errlen) < 0)
			return -EINVAL;
	}
	return 0;
}

/* "--name=value" -> "--name" for messages. */
static void option_word(const char *arg, char *out, size_t outlen)
{
	size_t n = strcspn(arg, "=");

	snprintf(out, outlen, "%.*s", (int)n, arg);
}

int opts_parse(int argc, char **argv, const char *shortopts,
	       const struct option *longopts, opts_apply_fn apply, void *ctx,
	       char *err, size_t errlen)
{
	char scratch[1], word[128];
	int c, longindex, ret = -1;
	const char *prev;
	char *optstring;
	size_t n = 0;

	if (!err || !errlen) {
		err = scratch;
		errlen = sizeof(scratch);
	}
	err[0] = '\0';
	if (!shortopts)
		shortopts = "";
	/* A leading ':' (after any '+'/'-' mode character) makes getopt tell
	 * a missing value (':') from an unknown option ('?'). */
	optstring = malloc(strlen(shortopts) + 2);
	if (!optstring) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (*shortopts == '+' || *shortopts == '-')
		optstring[n++] = *shortopts++;
	optstring[n++] = ':';
	if (*shortopts == ':')
		shortopts++;
	strcpy(optstring + n, shortopts);

	if (apply_env(longopts, apply, ctx, err, errlen) < 0)
		goto out_free;

	/* optind = 0 also resets glibc's internal state, so parsing twice in
	 * one process (tests) starts afresh. */
	optind = 0;
	opterr = 0;
	for (;;) {
		longindex = -1;
		c = getopt_long(argc, argv, optstring, longopts, &longindex);
		if (c == -1)
			break;
		prev = optind > 0 && optind - 1 < argc ? argv[optind - 1] : "";
		if (c == 0)
			continue; /* flag set by getopt itself */
		if (c == '?') {
			option_word(prev, word, sizeof(word));
			if (!strncmp(prev, "--", 2) && optopt && strchr(prev, '='))
				snprintf(err, errlen, "option '%s' takes no value", word);
			else if (!strncmp(prev, "--", 2))
				snprintf(err, errlen, "unknown option '%s'", word);
			else
				snprintf(err, errlen, "unknown option '-%c'", optopt);
			goto out_free;
		}
		if (c == ':') {
			option_word(prev, word, sizeof(word));
			if (!strncmp(prev, "--", 2))
				snprintf(err, errlen, "option '%s' needs a value", word);
			else
				snprintf(err, errlen, "option '-%c' needs a value", optopt);
			goto out_free;
		}
		if (longindex >= 0)
			snprintf(word, sizeof(word), "--%s", longopts[longindex].name);
		else
			snprintf(word, sizeof(word), "-%c", c);
		if (apply_one(apply, c, optarg, ctx, word, err, errlen) < 0)
			goto out_free;
	}
	ret = optind;
out_free:
	free(optstring);
	return ret;
}

char **opts_split(const char *s)
{
	char **v;
	size_t n = 0, items = 1;

	for (const char *p = s; p && *p; p++)
		items += *p == ',';
	v = calloc(items + 1, sizeof(*v));
	if (!v)
		return NULL;
	while (s && *s) {
		const char *end = s + strcspn(s, ","), *a = s, *b = end;

		while (a < b && isspace((unsigned char)*a))
			a++;
		while (b > a && isspace((unsigned char)b[-1]))
			b--;
		if (b > a) {
			v[n] = strndup(a, (size_t)(b - a));
			if (!v[n]) {
				opts_strv_free(v);
				errno = ENOMEM;
				return NULL;
			}
			n++;
		}
		s = *end ? end + 1 : end;
	}
	return v;
}

void opts_strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

int opts_parse_ulong(const char *arg, unsigned long min, unsigned long max,
		     unsigned long *out)
{
	unsigned long v;
	char *end;

	if (!arg || *arg < '0' || *arg > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(arg, &end, 10);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

int opts_parse_duration(const char *arg, uint64_t *ms)
{
	static const struct {
		const char *unit;
		uint64_t ms;
	} units[] = {
		{ "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 }, { "d", 86400000 },
	};
	const char *p = arg;
	uint64_t total = 0;

	if (!arg || *arg < '0' || *arg > '9')
		return -EINVAL;
	/* Bare digits are seconds. */
	if (!arg[strspn(arg, "0123456789")]) {
		unsigned long long v;
		char *end;

		errno = 0;
		v = strtoull(arg, &end, 10);
		if (errno || v > UINT64_MAX / 1000)
			return -ERANGE;
		*ms = v * 1000;
		return 0;
	}
	while (*p) {
		uint64_t v = 0, mul = 0;
		size_t len = 0;

		if (*p < '0' || *p > '9')
			return -EINVAL;
		for (; *p >= '0' && *p <= '9'; p++) {
			if (v > (UINT64_MAX - 9) / 10)
				return -ERANGE;
			v = v * 10 + (uint64_t)(*p - '0');
		}
		/* The longest unit that matches: "ms" before "m". */
		for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
			size_t l = strlen(units[i].unit);

			if (!strncmp(p, units[i].unit, l) && l > len) {
				len = l;
				mul = units[i].ms;
			}
		}
		if (!mul)
			return -EINVAL;
		p += len;
		if (v > UINT64_MAX / mul || total > UINT64_MAX - v * mul)
			return -ERANGE;
		total += v * mul;
	}
	*ms = total;
	return 0;
}
