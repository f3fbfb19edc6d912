#include "prom.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The exposition is built as one growing text buffer. Families must be
 * contiguous in the 0.0.4 format, so the names already written are kept to
 * refuse a family that would be split in two.
 */
struct prom {
	char *buf;
	size_t len, cap;
	bool failed; /* an allocation failed: the text is incomplete */
	char **names;
	size_t n_names;
};

struct prom *prom_new(void)
{
	return calloc(1, sizeof(struct prom));
}

void prom_free(struct prom *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n_names; i++)
		free(p->names[i]);
	free(p->names);
	free(p->buf);
	free(p);
}

static int prom_reserve(struct prom *p, size_t more)
{
	size_t cap;
	char *buf;

	if (p->failed)
		return -ENOMEM;
	if (p->len + more + 1 <= p->cap)
		return 0;
	cap = p->cap ? p->cap : 1024;
	while (cap < p->len + more + 1)
		cap *= 2;
	buf = realloc(p->buf, cap);
	if (!buf) {
		p->failed = true;
		return -ENOMEM;
	}
	p->buf = buf;
	p->cap = cap;
	return 0;
}

static int prom_put(struct prom *p, const char *s, size_t n)
{
	int ret = prom_reserve(p, n);

	if (ret < 0)
		return ret;
	memcpy(p->buf + p->len, s, n);
	p->len += n;
	p->buf[p->len] = '\0';
	return 0;
}

static int prom_puts(struct prom *p, const char *s)
{
	return prom_put(p, s, strlen(s));
}

/* HELP text escapes backslash and newline; label values also the quote. */
static int prom_put_escaped(struct prom *p, const char *s, bool quote)
{
	int ret = 0;

	for (; *s && ret == 0; s++) {
		if (*s == '\\')
			ret = prom_put(p, "\\\\", 2);
		else if (*s == '\n')
			ret = prom_put(p, "\\n", 2);
		else if (*s == '"' && quote)
			ret = prom_put(p, "\\\"", 2);
		else
			ret = prom_put(p, s, 1);
	}
	return ret;
}

static bool prom_valid_name(const char *name, bool metric)
{
	const char *s = name;

	if (!name || !*name)
		return false;
	for (; *s; s++) {
		bool alpha = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
			     *s == '_' || (metric && *s == ':');
		bool digit = *s >= '0' && *s <= '9';

		if (!alpha && !(digit && s != name))
			return false;
	}
	return true;
}

static const char *prom_current(const struct prom *p)
{
	return p->n_names ? p->names[p->n_names - 1] : NULL;
}

int prom_family(struct prom *p, const char *name, enum prom_type type,
		const char *help)
{
	static const char *const type_names[] = {
		[PROM_COUNTER] = "counter",
		[PROM_GAUGE] = "gauge",
	};
	char **names, *copy;
	int ret;

	ret = -EINVAL;
	if (!p || !prom_valid_name(name, true) ||
	    (unsigned int)type >= sizeof(type_names) / sizeof(type_names[0]))
		return ret;
	if (p->failed)
		return -ENOMEM;
	/* Re-opening the family just written is harmless: more samples follow. */
	if (prom_current(p) && !strcmp(prom_current(p), name))
		return 0;
	ret = -EEXIST;
	for (size_t i = 0; i < p->n_names; i++)
		if (!strcmp(p->names[i], name))
			return ret;

	ret = -ENOMEM;
	copy = strdup(name);
	if (!copy)
		goto err_fail;
	names = reallocarray(p->names, p->n_names + 1, sizeof(*names));
	if (!names)
		goto err_free_copy;
	p->names = names;
	p->names[p->n_names++] = copy;

	ret = prom_puts(p, "# HELP ");
	if (!ret)
		ret = prom_puts(p, name);
	if (!ret)
		ret = prom_puts(p, " ");
	if (!ret)
		ret = prom_put_escaped(p, help ? help : "", false);
	if (!ret)
		ret = prom_puts(p, "\n# TYPE ");
	if (!ret)
		ret = prom_puts(p, name);
	if (!ret)
		ret = prom_puts(p, " ");
	if (!ret)
		ret = prom_puts(p, type_names[type]);
	if (!ret)
		ret = prom_puts(p, "\n");
	return ret;

err_free_copy:
	free(copy);
err_fail:
	p->failed = true;
	return ret;
}

/* Go's strconv.FormatFloat(v, 'g', -1, 64) spelling, as Prometheus writes it:
 * the shortest text that reads back to the same double. */
static void prom_format_value(double v, char *out, size_t outlen)
{
	if (isnan(v)) {
		snprintf(out, outlen, "NaN");
		return;
	}
	if (isinf(v)) {
		snprintf(out, outlen, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	if (v == 0) {
		snprintf(out, outlen, signbit(v) ? "-0" : "0");
		return;
	}
	if (v == trunc(v) && fabs(v) < 1e15) {
		snprintf(out, outlen, "%.0f", v);
		return;
	}
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(out, outlen, "%.*g", prec, v);
		if (strtod(out, NULL) == v)
			return;
	}
}

int prom_sample(struct prom *p, double value, ...)
{
	const char *name, *label, *lvalue;
	char num[40];
	va_list ap;
	size_t start;
	int ret, n = 0;

	ret = -EINVAL;
	if (!p || !(name = prom_current(p)))
		return ret;
	if (p->failed)
		return -ENOMEM;

	/* Validate every label first so a bad call writes nothing. */
	va_start(ap, value);
	while ((label = va_arg(ap, const char *))) {
		lvalue = va_arg(ap, const char *);
		if (!prom_valid_name(label, false) || !lvalue) {
			va_end(ap);
			return ret;
		}
	}
	va_end(ap);

	start = p->len;
	ret = prom_puts(p, name);
	va_start(ap, value);
	while (!ret && (label = va_arg(ap, const char *))) {
		lvalue = va_arg(ap, const char *);
		ret = prom_puts(p, n++ ? "," : "{");
		if (!ret)
			ret = prom_puts(p, label);
		if (!ret)
			ret = prom_puts(p, "=\"");
		if (!ret)
			ret = prom_put_escaped(p, lvalue, true);
		if (!ret)
			ret = prom_puts(p, "\"");
	}
	va_end(ap);
	if (!ret && n)
		ret = prom_puts(p, "}");
	prom_format_value(value, num, sizeof(num));
	if (!ret)
		ret = prom_puts(p, " ");
	if (!ret)
		ret = prom_puts(p, num);
	if (!ret)
		ret = prom_puts(p, "\n");
	if (ret && p->buf && start <= p->len) {
		p->len = start;
		p->buf[start] = '\0';
	}
	return ret;
}

const char *prom_text(const struct prom *p, size_t *len)
{
	if (!p || p->failed)
		return NULL;
	if (len)
		*len = p->len;
	return p->buf ? p->buf : "";
}

char *prom_escape_label(const char *value, char *out, size_t outlen)
{
	size_t o = 0;

	for (const char *s = value; *s; s++) {
		const char *rep = NULL;
		size_t n;

		if (*s == '\\')
			rep = "\\\\";
		else if (*s == '"')
			rep = "\\\"";
		else if (*s == '\n')
			rep = "\\n";
		n = rep ? 2 : 1;
		if (o + n >= outlen)
			return NULL;
		if (rep)
			memcpy(out + o, rep, 2);
		else
			out[o] = *s;
		o += n;
	}
	if (o >= outlen)
		return NULL;
	out[o] = '\0';
	return out;
}
