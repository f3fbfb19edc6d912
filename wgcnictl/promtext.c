#include "promtext.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static bool name_start(char c, bool colon)
{
	return isalpha((unsigned char)c) || c == '_' || (colon && c == ':');
}

static bool name_char(char c, bool colon)
{
	return name_start(c, colon) || isdigit((unsigned char)c);
}

static void series_clear(struct promtext_series *s)
{
	free(s->name);
	for (size_t i = 0; i < s->n_labels; i++) {
		free(s->labels[i].name);
		free(s->labels[i].value);
	}
	free(s->labels);
	memset(s, 0, sizeof(*s));
}

void promtext_free(struct promtext *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		series_clear(&s->series[i]);
	free(s->series);
	s->series = NULL;
	s->n = 0;
}

const char *promtext_label(const struct promtext_series *s, const char *name)
{
	for (size_t i = 0; i < s->n_labels; i++)
		if (!strcmp(s->labels[i].name, name))
			return s->labels[i].value;
	return NULL;
}

/* A label value after the opening quote: unescape into a new string. */
static char *parse_label_value(const char **pp, const char *end)
{
	const char *p = *pp;
	char *v, *o;

	v = malloc((size_t)(end - p) + 1);
	if (!v)
		return NULL;
	for (o = v; p < end && *p != '"'; p++) {
		if (*p == '\\') {
			if (++p == end)
				break;
			switch (*p) {
			case '\\': *o++ = '\\'; break;
			case '"': *o++ = '"'; break;
			case 'n': *o++ = '\n'; break;
			default: free(v); errno = EINVAL; return NULL;
			}
		} else {
			*o++ = *p;
		}
	}
	if (p == end) {
		free(v);
		errno = EINVAL;
		return NULL;
	}
	*o = '\0';
	*pp = p + 1;
	return v;
}

static int parse_value(const char *p, const char *end, double *value)
{
	char buf[64], *e;
	size_t len = (size_t)(end - p);

	if (!len || len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, p, len);
	buf[len] = '\0';
	if (!strcmp(buf, "+Inf") || !strcmp(buf, "Inf")) {
		*value = INFINITY;
		return 0;
	}
	if (!strcmp(buf, "-Inf")) {
		*value = -INFINITY;
		return 0;
	}
	if (!strcmp(buf, "NaN")) {
		*value = NAN;
		return 0;
	}
	errno = 0;
	*value = strtod(buf, &e);
	if (e == buf || *e)
		return -EINVAL;
	/* Overflow is an error; underflow (1e-400) is a number close to 0, as
	 * Prometheus' own parser reads it. */
	if (errno == ERANGE && fabs(*value) > 1.0)
		return -EINVAL;
	return 0;
}

static int parse_line(const char *p, const char *end, struct promtext_series *s)
{
	const char *q;
	int ret;

	ret = -EINVAL;
	if (!name_start(*p, true))
		return ret;
	for (q = p; q < end && name_char(*q, true); q++)
		;
	s->name = strndup(p, (size_t)(q - p));
	if (!s->name)
		return -ENOMEM;
	p = q;
	if (p < end && *p == '{') {
		p++;
		while (p < end && *p != '}') {
			struct promtext_label *l;

			if (s->n_labels == PROMTEXT_MAX_LABELS)
				return -EINVAL;
			l = reallocarray(s->labels, s->n_labels + 1, sizeof(*l));
			if (!l)
				return -ENOMEM;
			s->labels = l;
			l = &s->labels[s->n_labels];
			memset(l, 0, sizeof(*l));
			if (!name_start(*p, false))
				return -EINVAL;
			for (q = p; q < end && name_char(*q, false); q++)
				;
			l->name = strndup(p, (size_t)(q - p));
			s->n_labels++;
			if (!l->name)
				return -ENOMEM;
			p = q;
			if (p + 1 >= end || p[0] != '=' || p[1] != '"')
				return -EINVAL;
			p += 2;
			l->value = parse_label_value(&p, end);
			if (!l->value)
				return -errno;
			if (p < end && *p == ',')
				p++;
			else if (p < end && *p != '}')
				return -EINVAL;
		}
		if (p == end)
			return -EINVAL;
		p++;
	}
	if (p == end || (*p != ' ' && *p != '\t'))
		return -EINVAL;
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	for (q = p; q < end && *q != ' ' && *q != '\t'; q++)
		;
	ret = parse_value(p, q, &s->value);
	if (ret)
		return ret;
	/* Optional timestamp: an integer (milliseconds). */
	while (q < end && (*q == ' ' || *q == '\t'))
		q++;
	if (q < end) {
		if (*q == '-')
			q++;
		if (q == end)
			return -EINVAL;
		for (; q < end; q++)
			if (!isdigit((unsigned char)*q))
				return -EINVAL;
	}
	return 0;
}

int promtext_parse(const char *text, size_t len, struct promtext *out,
		       size_t *line)
{
	const char *p = text, *end = text + len;
	size_t cap = 0;
	int ret = 0;

	memset(out, 0, sizeof(*out));
	*line = 0;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end;
		const char *s = p;
		struct promtext_series series = { 0 };

		++*line;
		p = nl ? nl + 1 : end;
		if ((size_t)(eol - s) > PROMTEXT_MAX_LINE) {
			ret = -EINVAL;
			goto err_free_samples;
		}
		while (s < eol && (*s == ' ' || *s == '\t'))
			s++;
		while (eol > s && (eol[-1] == ' ' || eol[-1] == '\t' || eol[-1] == '\r'))
			eol--;
		if (s == eol || *s == '#')
			continue;
		ret = parse_line(s, eol, &series);
		if (ret) {
			series_clear(&series);
			goto err_free_samples;
		}
		if (out->n == cap) {
			size_t ncap = cap ? cap * 2 : 32;
			struct promtext_series *ns = reallocarray(out->series, ncap, sizeof(*ns));

			if (!ns) {
				series_clear(&series);
				ret = -ENOMEM;
				goto err_free_samples;
			}
			out->series = ns;
			cap = ncap;
		}
		out->series[out->n++] = series;
	}
	return 0;

err_free_samples:
	promtext_free(out);
	return ret;
}
