/*
 * wgcnictl's pure formatting and parsing code, in wgcnictl/fmt.c and
 * wgcnictl/promtext.c: human units, relative times, RFC 3339 timestamps, aligned
 * tables and the Prometheus text reader.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fmt.h"
#include "promtext.h"

/* --- fmt_bytes --- */

static const char *bytes(double b)
{
	static char out[32];

	return fmt_bytes(b, out, sizeof(out));
}

static void test_bytes(void **state)
{
	assert_string_equal(bytes(0), "0 B");
	assert_string_equal(bytes(1), "1 B");
	assert_string_equal(bytes(1023), "1023 B");
	assert_string_equal(bytes(1024), "1.0 KiB");
	assert_string_equal(bytes(1536), "1.5 KiB");
	assert_string_equal(bytes(1024 * 1024 - 1), "1024.0 KiB");
	assert_string_equal(bytes(1024 * 1024), "1.0 MiB");
	assert_string_equal(bytes(12.0 * 1024 * 1024), "12.0 MiB");
	assert_string_equal(bytes(3.25 * 1024 * 1024 * 1024), "3.2 GiB");
	assert_string_equal(bytes(2.0 * 1024 * 1024 * 1024 * 1024), "2.0 TiB");
	assert_string_equal(bytes(5.0 * 1024 * 1024 * 1024 * 1024 * 1024), "5.0 PiB");
	/* Past the last unit the number grows instead of running off the table. */
	assert_string_equal(bytes(2048.0 * 1024 * 1024 * 1024 * 1024 * 1024), "2048.0 PiB");
	/* A counter that went backwards is not shown as negative. */
	assert_string_equal(bytes(-5), "0 B");
}

static void test_bytes_truncates(void **state)
{
	char out[4];

	memset(out, 'x', sizeof(out));
	assert_ptr_equal(fmt_bytes(1536, out, sizeof(out)), out);
	assert_string_equal(out, "1.5");
}

/* --- fmt_ago --- */

static const char *ago(time_t now, time_t t)
{
	static char out[32];

	return fmt_ago(now, t, out, sizeof(out));
}

static void test_ago(void **state)
{
	const time_t now = 1800000000;

	assert_string_equal(ago(now, 0), "never");
	assert_string_equal(ago(now, now), "0s ago");
	assert_string_equal(ago(now, now - 1), "1s ago");
	/* Seconds up to two minutes, so "1m" never hides 119 s. */
	assert_string_equal(ago(now, now - 119), "119s ago");
	assert_string_equal(ago(now, now - 120), "2m ago");
	assert_string_equal(ago(now, now - 179), "2m ago");
	assert_string_equal(ago(now, now - 180), "3m ago");
	assert_string_equal(ago(now, now - (2 * 3600 - 1)), "119m ago");
	assert_string_equal(ago(now, now - 2 * 3600), "2h ago");
	assert_string_equal(ago(now, now - (2 * 86400 - 1)), "47h ago");
	assert_string_equal(ago(now, now - 2 * 86400), "2d ago");
	assert_string_equal(ago(now, now - 400 * 86400), "400d ago");
	/* A peer whose clock runs a little ahead. */
	assert_string_equal(ago(now, now + 30), "0s ago");
}

/* --- fmt_parse_rfc3339 --- */

static void test_rfc3339(void **state)
{
	/* 2026-11-22T22:05:25Z */
	const time_t base = 1795385125;
	time_t t = 0;

	assert_int_equal(fmt_parse_rfc3339("2026-11-22T22:05:25Z", &t), 0);
	assert_int_equal(t, base);
	assert_int_equal(fmt_parse_rfc3339("2026-11-22T22:05:25z", &t), 0);
	assert_int_equal(t, base);
	assert_int_equal(fmt_parse_rfc3339("2026-11-22T22:05:25.123456789Z", &t), 0);
	assert_int_equal(t, base);
	assert_int_equal(fmt_parse_rfc3339("2026-11-22 22:05:25Z", &t), 0);
	assert_int_equal(t, base);
	assert_int_equal(fmt_parse_rfc3339("2026-11-23T00:05:25+02:00", &t), 0);
	assert_int_equal(t, base);
	assert_int_equal(fmt_parse_rfc3339("2026-11-22T16:35:25-05:30", &t), 0);
	assert_int_equal(t, base);
	assert_int_equal(fmt_parse_rfc3339("1970-01-01T00:00:00Z", &t), 0);
	assert_int_equal(t, 0);
}

static void test_rfc3339_rejects(void **state)
{
	static const char *const bad[] = {
		"",
		"2026-11-22",
		"2026-11-22T22:05:25",       /* no zone */
		"2026-11-22T22:05:25.Z",     /* fraction without digits */
		"2026-11-22T22:05:25+0200",  /* offset without colon */
		"2026-11-22T22:05:25+02",
		"2026-11-22T22:05:25Zjunk",
		"2026-11-22T22:05:25Z ",
		"yesterday",
	};
	time_t t = 42;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (fmt_parse_rfc3339(bad[i], &t) != -EINVAL)
			fail_msg("fmt_parse_rfc3339 accepted `%s'", bad[i]);
		assert_int_equal(t, 42);
	}
	assert_int_equal(fmt_parse_rfc3339(NULL, &t), -EINVAL);
}

/* --- fmt_join --- */

static void test_join(void **state)
{
	char *v[] = { "10.100.3.0/24", "fd10:100:0:3::/64", "x" };
	char out[64], tiny[8];

	assert_string_equal(fmt_join(v, 0, ",", out, sizeof(out)), "-");
	assert_string_equal(fmt_join(v, 1, ",", out, sizeof(out)), "10.100.3.0/24");
	assert_string_equal(fmt_join(v, 2, ", ", out, sizeof(out)),
			    "10.100.3.0/24, fd10:100:0:3::/64");
	assert_string_equal(fmt_join(v, 3, "|", out, sizeof(out)),
			    "10.100.3.0/24|fd10:100:0:3::/64|x");
	/* Too small: cut, terminated, never past the end. */
	assert_string_equal(fmt_join(v, 3, ",", tiny, sizeof(tiny)), "10.100.");
	memset(tiny, 'x', sizeof(tiny));
	assert_ptr_equal(fmt_join(v, 3, ",", tiny, 0), tiny);
	assert_int_equal(tiny[0], 'x');
}

/* --- tables --- */

/* fmt_table_print into a string (malloc'd). */
static char *render(const struct fmt_table *t)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	assert_int_equal(fmt_table_print(t, f), 0);
	assert_int_equal(fclose(f), 0);
	return buf;
}

static void test_table_alignment(void **state)
{
	struct fmt_table *t = fmt_table_new("NAME", ">RX", "KIND", NULL);
	char *s;

	assert_non_null(t);
	assert_int_equal(fmt_table_rows(t), 0);
	assert_int_equal(fmt_table_add(t, "node-a", "1.5 KiB", "node"), 0);
	assert_int_equal(fmt_table_add(t, "c", "0 B", "container"), 0);
	assert_int_equal(fmt_table_rows(t), 2);
	s = render(t);
	/* Two spaces between columns, '>' right-aligns, the last column is
	 * not padded (no trailing blanks). */
	assert_string_equal(s,
			    "NAME         RX  KIND\n"
			    "node-a  1.5 KiB  node\n"
			    "c           0 B  container\n");
	free(s);
	fmt_table_free(t);
}

static void test_table_empty_cells(void **state)
{
	struct fmt_table *t = fmt_table_new("A", "B", NULL);
	char *s;

	assert_non_null(t);
	assert_int_equal(fmt_table_add(t, NULL, ""), 0);
	assert_int_equal(fmt_table_add(t, "wide cell", "x"), 0);
	s = render(t);
	assert_string_equal(s,
			    "A          B\n"
			    "-          -\n"
			    "wide cell  x\n");
	free(s);
	fmt_table_free(t);
}

static void test_table_header_only(void **state)
{
	struct fmt_table *t = fmt_table_new("CONTAINER", ">N", NULL);
	char *s;

	assert_non_null(t);
	s = render(t);
	assert_string_equal(s, "CONTAINER  N\n");
	free(s);
	fmt_table_free(t);
	fmt_table_free(NULL);
}

static void test_table_too_wide(void **state)
{
	struct fmt_table *t;

	t = fmt_table_new("1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13",
			  "14", "15", "16", NULL);
	assert_non_null(t);
	fmt_table_free(t);
	/* A seventeenth column is refused, not silently dropped. */
	errno = 0;
	t = fmt_table_new("1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13",
			  "14", "15", "16", "17", NULL);
	assert_null(t);
	assert_int_equal(errno, E2BIG);
}

static void test_table_many_rows(void **state)
{
	struct fmt_table *t = fmt_table_new(">I", "V", NULL);
	char num[16], *s, *line;
	size_t lines = 0;

	assert_non_null(t);
	/* Past the first growth of the row array. */
	for (int i = 0; i < 100; i++) {
		snprintf(num, sizeof(num), "%d", i);
		assert_int_equal(fmt_table_add(t, num, i % 2 ? "odd" : "even"), 0);
	}
	assert_int_equal(fmt_table_rows(t), 100);
	s = render(t);
	for (line = s; (line = strchr(line, '\n')); line++)
		lines++;
	assert_int_equal(lines, 101);
	assert_non_null(strstr(s, "\n 0  even\n"));
	assert_non_null(strstr(s, "\n99  odd\n"));
	free(s);
	fmt_table_free(t);
}

/* --- Prometheus text --- */

static int parse(const char *text, struct promtext *s, size_t *line)
{
	return promtext_parse(text, strlen(text), s, line);
}

static void test_prom_basic(void **state)
{
	const char *text =
		"# HELP wgcni_peers WireGuard peers by kind.\n"
		"# TYPE wgcni_peers gauge\n"
		"wgcni_peers{kind=\"node\"} 2\n"
		"wgcni_peers{kind=\"container\"} 3\n"
		"\n"
		"   # an indented comment\n"
		"wgcni_sync_errors_total 0\n"
		"wgcni_peer_rx_bytes{peer=\"abc=\",name=\"n2\"} 1.5e3 1700000000000\n";
	struct promtext s;
	size_t line;

	assert_int_equal(parse(text, &s, &line), 0);
	assert_int_equal(s.n, 4);
	assert_string_equal(s.series[0].name, "wgcni_peers");
	assert_int_equal(s.series[0].n_labels, 1);
	assert_string_equal(promtext_label(&s.series[0], "kind"), "node");
	assert_true(s.series[0].value == 2);
	assert_string_equal(promtext_label(&s.series[1], "kind"), "container");
	assert_string_equal(s.series[2].name, "wgcni_sync_errors_total");
	assert_int_equal(s.series[2].n_labels, 0);
	assert_null(promtext_label(&s.series[2], "kind"));
	assert_string_equal(promtext_label(&s.series[3], "peer"), "abc=");
	assert_string_equal(promtext_label(&s.series[3], "name"), "n2");
	assert_null(promtext_label(&s.series[3], "nam"));
	assert_true(s.series[3].value == 1500);
	promtext_free(&s);
	assert_null(s.series);
	assert_int_equal(s.n, 0);
	promtext_free(NULL);
}

static void test_prom_escapes(void **state)
{
	const char *text = "m{a=\"back\\\\slash\",b=\"say \\\"hi\\\"\",c=\"two\\nlines\",d=\"\"} 1\n";
	struct promtext s;
	size_t line;

	assert_int_equal(parse(text, &s, &line), 0);
	assert_int_equal(s.n, 1);
	assert_string_equal(promtext_label(&s.series[0], "a"), "back\\slash");
	assert_string_equal(promtext_label(&s.series[0], "b"), "say \"hi\"");
	assert_string_equal(promtext_label(&s.series[0], "c"), "two\nlines");
	assert_string_equal(promtext_label(&s.series[0], "d"), "");
	promtext_free(&s);
}

static void test_prom_values(void **state)
{
	const char *text =
		"a +Inf\n"
		"b -Inf\n"
		"c NaN\n"
		"d -0.5\n"
		"e 1e-400\n"          /* underflows to 0: still a number */
		"f{} 7\n"             /* an empty label set */
		"g{x=\"1\",} 8\n"     /* a trailing comma, as Prometheus allows */
		"ns:rule_name 9\n"    /* recording-rule names carry colons */
		"h\t10\t-3\r\n"       /* tabs, negative timestamp, CRLF */
		"i 11";               /* no final newline */
	struct promtext s;
	size_t line;

	assert_int_equal(parse(text, &s, &line), 0);
	assert_int_equal(s.n, 10);
	assert_true(isinf(s.series[0].value) && s.series[0].value > 0);
	assert_true(isinf(s.series[1].value) && s.series[1].value < 0);
	assert_true(isnan(s.series[2].value));
	assert_true(s.series[3].value == -0.5);
	assert_true(s.series[4].value >= 0 && s.series[4].value < 1e-300);
	assert_int_equal(s.series[5].n_labels, 0);
	assert_true(s.series[5].value == 7);
	assert_string_equal(promtext_label(&s.series[6], "x"), "1");
	assert_string_equal(s.series[7].name, "ns:rule_name");
	assert_string_equal(s.series[8].name, "h");
	assert_true(s.series[8].value == 10);
	assert_string_equal(s.series[9].name, "i");
	assert_true(s.series[9].value == 11);
	promtext_free(&s);
}

static void test_prom_empty(void **state)
{
	struct promtext s;
	size_t line = 99;

	assert_int_equal(promtext_parse("", 0, &s, &line), 0);
	assert_int_equal(s.n, 0);
	assert_int_equal(line, 0);
	assert_int_equal(parse("# only comments\n\n# TYPE x gauge\n", &s, &line), 0);
	assert_int_equal(s.n, 0);
	assert_int_equal(line, 3);
	promtext_free(&s);
}

/* Each malformed sample is an error naming its line; nothing leaks. */
static void test_prom_rejects(void **state)
{
	static const char *const bad[] = {
		"9metric 1",                   /* name starts with a digit */
		"metric",                      /* no value */
		"metric ",                     /* no value after the blank */
		"metric{a=\"1\" 1",            /* no closing brace */
		"metric{a=\"1} 1",             /* unterminated value */
		"metric{a=1} 1",               /* unquoted value */
		"metric{a} 1",                 /* no '=' */
		"metric{=\"1\"} 1",            /* no label name */
		"metric{a:b=\"1\"} 1",         /* colon in a label name */
		"metric{a=\"1\"b=\"2\"} 1",    /* no comma */
		"metric{a=\"\\t\"} 1",         /* unknown escape */
		"metric{a=\"x\\",              /* escape at the end */
		"metric{a=\"1\"}1",            /* no blank before the value */
		"metric one",                  /* not a number */
		"metric 1x",                   /* trailing junk in the number */
		"metric 1e999",                /* overflows a double */
		"metric 1 12ab",               /* bad timestamp */
		"metric 1 -",                  /* bare minus as timestamp */
		"metric 1 2 3",                /* too many fields */
	};
	struct promtext s;
	char text[256];
	size_t line;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		/* Two good lines before it: the error must name line 3. */
		snprintf(text, sizeof(text), "ok 1\n# c\n%s\nok 2\n", bad[i]);
		if (parse(text, &s, &line) != -EINVAL)
			fail_msg("accepted `%s'", bad[i]);
		assert_int_equal(line, 3);
		assert_null(s.series);
		assert_int_equal(s.n, 0);
	}
}

static void test_prom_label_limit(void **state)
{
	char text[2048];
	struct promtext s;
	size_t off, line;

	/* 32 labels are fine, 33 are not. */
	for (int labels = 32; labels <= 33; labels++) {
		off = (size_t)snprintf(text, sizeof(text), "m{");
		for (int i = 0; i < labels; i++)
			off += (size_t)snprintf(text + off, sizeof(text) - off, "%sl%d=\"%d\"",
						i ? "," : "", i, i);
		snprintf(text + off, sizeof(text) - off, "} 1\n");
		if (labels == 32) {
			assert_int_equal(parse(text, &s, &line), 0);
			assert_int_equal(s.series[0].n_labels, 32);
			assert_string_equal(promtext_label(&s.series[0], "l31"), "31");
			promtext_free(&s);
		} else {
			assert_int_equal(parse(text, &s, &line), -EINVAL);
			assert_int_equal(line, 1);
		}
	}
}

static void test_prom_long_line(void **state)
{
	size_t len = PROMTEXT_MAX_LINE + 16;
	char *text = malloc(len + 1);
	struct promtext s;
	size_t line;

	assert_non_null(text);
	/* A valid sample whose label value makes the line too long. */
	memcpy(text, "m{a=\"", 5);
	memset(text + 5, 'x', len - 5);
	memcpy(text + len - 5, "\"} 1\n", 5);
	text[len] = '\0';
	assert_int_equal(promtext_parse(text, len, &s, &line), -EINVAL);
	assert_int_equal(line, 1);
	free(text);
}

/* The length is honoured: nothing past len is read, even without a NUL. */
static void test_prom_length_bound(void **state)
{
	const char text[] = { 'a', ' ', '1', '\n', 'b', ' ', '2' };
	struct promtext s;
	size_t line;

	assert_int_equal(promtext_parse(text, 4, &s, &line), 0);
	assert_int_equal(s.n, 1);
	promtext_free(&s);
	assert_int_equal(promtext_parse(text, sizeof(text), &s, &line), 0);
	assert_int_equal(s.n, 2);
	assert_true(s.series[1].value == 2);
	promtext_free(&s);
}

static void test_prom_many(void **state)
{
	/* Past the first growth of the series array. */
	size_t cap = 100 * 32, off = 0, line;
	char *text = malloc(cap);
	struct promtext s;

	assert_non_null(text);
	for (int i = 0; i < 100; i++)
		off += (size_t)snprintf(text + off, cap - off, "m{i=\"%d\"} %d\n", i, i);
	assert_int_equal(promtext_parse(text, off, &s, &line), 0);
	assert_int_equal(s.n, 100);
	assert_string_equal(promtext_label(&s.series[99], "i"), "99");
	assert_true(s.series[99].value == 99);
	promtext_free(&s);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bytes),
		cmocka_unit_test(test_bytes_truncates),
		cmocka_unit_test(test_ago),
		cmocka_unit_test(test_rfc3339),
		cmocka_unit_test(test_rfc3339_rejects),
		cmocka_unit_test(test_join),
		cmocka_unit_test(test_table_alignment),
		cmocka_unit_test(test_table_empty_cells),
		cmocka_unit_test(test_table_header_only),
		cmocka_unit_test(test_table_too_wide),
		cmocka_unit_test(test_table_many_rows),
		cmocka_unit_test(test_prom_basic),
		cmocka_unit_test(test_prom_escapes),
		cmocka_unit_test(test_prom_values),
		cmocka_unit_test(test_prom_empty),
		cmocka_unit_test(test_prom_rejects),
		cmocka_unit_test(test_prom_label_limit),
		cmocka_unit_test(test_prom_long_line),
		cmocka_unit_test(test_prom_length_bound),
		cmocka_unit_test(test_prom_many),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
