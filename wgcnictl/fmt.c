#include "fmt.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct fmt_table {
	size_t n_cols;
	char *header[FMT_TABLE_MAX_COLS];
	bool right[FMT_TABLE_MAX_COLS];
	char **cells; /* n_rows * n_cols */
	size_t n_rows, cap_rows;
};

struct fmt_table *fmt_table_new(const char *header, ...)
{
	struct fmt_table *t;
	const char *h;
	va_list ap;

	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	va_start(ap, header);
	for (h = header; h; h = va_arg(ap, const char *)) {
		if (t->n_cols == FMT_TABLE_MAX_COLS) {
			errno = E2BIG;
			goto err_free_table;
		}
		t->right[t->n_cols] = h[0] == '>';
		t->header[t->n_cols] = strdup(h + t->right[t->n_cols]);
		if (!t->header[t->n_cols]) {
			errno = ENOMEM;
			goto err_free_table;
		}
		t->n_cols++;
	}
	va_end(ap);
	return t;

err_free_table:
	va_end(ap);
	fmt_table_free(t);
	return NULL;
}

void fmt_table_free(struct fmt_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n_rows * t->n_cols; i++)
		free(t->cells[i]);
	for (size_t i = 0; i < t->n_cols; i++)
		free(t->header[i]);
	free(t->cells);
	free(t);
}

size_t fmt_table_rows(const struct fmt_table *t)
{
	return t->n_rows;
}

int fmt_table_add(struct fmt_table *t, ...)
{
	char **row;
	va_list ap;
	int ret = 0;

	if (t->n_rows == t->cap_rows) {
		size_t cap = t->cap_rows ? t->cap_rows * 2 : 16;
		char **cells = reallocarray(t->cells, cap * t->n_cols, sizeof(*cells));

		if (!cells)
			return -ENOMEM;
		t->cells = cells;
		t->cap_rows = cap;
	}
	row = t->cells + t->n_rows * t->n_cols;
	va_start(ap, t);
	for (size_t i = 0; i < t->n_cols; i++) {
		const char *s = va_arg(ap, const char *);

		row[i] = strdup(s && *s ? s : "-");
		if (!row[i])
			ret = -ENOMEM;
	}
	va_end(ap);
	if (ret) {
		for (size_t i = 0; i < t->n_cols; i++)
			free(row[i]);
		return ret;
	}
	t->n_rows++;
	return 0;
}

/* Two spaces between columns; the last column is not padded. */
static void fmt_table_print_row(const struct fmt_table *t, const size_t *width,
			    char *const *cells, FILE *f)
{
	for (size_t i = 0; i < t->n_cols; i++) {
		bool last = i + 1 == t->n_cols;
		int w = (int)width[i];

		if (t->right[i])
			fprintf(f, "%*s", w, cells[i]);
		else if (last)
			fputs(cells[i], f);
		else
			fprintf(f, "%-*s", w, cells[i]);
		fputs(last ? "\n" : "  ", f);
	}
}

int fmt_table_print(const struct fmt_table *t, FILE *f)
{
	size_t width[FMT_TABLE_MAX_COLS];

	for (size_t i = 0; i < t->n_cols; i++) {
		width[i] = strlen(t->header[i]);
		for (size_t r = 0; r < t->n_rows; r++) {
			size_t l = strlen(t->cells[r * t->n_cols + i]);

			if (l > width[i])
				width[i] = l;
		}
	}
	fmt_table_print_row(t, width, t->header, f);
	for (size_t r = 0; r < t->n_rows; r++)
		fmt_table_print_row(t, width, t->cells + r * t->n_cols, f);
	return ferror(f) ? -EIO : 0;
}

char *fmt_bytes(double bytes, char *out, size_t outlen)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB" };
	size_t u = 0;

	if (bytes < 1024) {
		snprintf(out, outlen, "%.0f B", bytes < 0 ? 0 : bytes);
		return out;
	}
	bytes /= 1024;
	while (bytes >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		bytes /= 1024;
		u++;
	}
	snprintf(out, outlen, "%.1f %s", bytes, units[u]);
	return out;
}

char *fmt_ago(time_t now, time_t t, char *out, size_t outlen)
{
	long long d;

	if (t == 0) {
		snprintf(out, outlen, "never");
		return out;
	}
	d = (long long)now - (long long)t;
	if (d < 0) /* clocks of two hosts disagree a little */
		d = 0;
	if (d < 120)
		snprintf(out, outlen, "%llds ago", d);
	else if (d < 2 * 3600)
		snprintf(out, outlen, "%lldm ago", d / 60);
	else if (d < 2 * 86400)
		snprintf(out, outlen, "%lldh ago", d / 3600);
	else
		snprintf(out, outlen, "%lldd ago", d / 86400);
	return out;
}

int fmt_parse_rfc3339(const char *s, time_t *t)
{
	struct tm tm = { 0 };
	const char *p;
	long off = 0;

	if (!s || !*s)
		return -EINVAL;
	p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!p)
		p = strptime(s, "%Y-%m-%d %H:%M:%S", &tm);
	if (!p)
		return -EINVAL;
	if (*p == '.' || *p == ',') {
		p++;
		if (!isdigit((unsigned char)*p))
			return -EINVAL;
		while (isdigit((unsigned char)*p))
			p++;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if ((*p == '+' || *p == '-') && isdigit((unsigned char)p[1]) &&
		   isdigit((unsigned char)p[2]) && p[3] == ':' &&
		   isdigit((unsigned char)p[4]) && isdigit((unsigned char)p[5])) {
		off = ((p[1] - '0') * 10 + (p[2] - '0')) * 3600 +
		      ((p[4] - '0') * 10 + (p[5] - '0')) * 60;
		if (*p == '-')
			off = -off;
		p += 6;
	} else {
		return -EINVAL;
	}
	if (*p)
		return -EINVAL;
	*t = timegm(&tm) - off;
	return 0;
}

char *fmt_join(char *const *v, size_t n, const char *sep, char *out, size_t outlen)
{
	size_t used = 0;

	if (!outlen)
		return out;
	out[0] = '\0';
	if (!n) {
		snprintf(out, outlen, "-");
		return out;
	}
	for (size_t i = 0; i < n && used < outlen; i++) {
		int w = snprintf(out + used, outlen - used, "%s%s", i ? sep : "", v[i]);

		if (w < 0)
			break;
		used += (size_t)w;
	}
	return out;
}
