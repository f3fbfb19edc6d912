#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "prom.h"

static void test_families_and_labels(void **state)
{
	struct prom *p = prom_new();
	const char *text;
	size_t len = 0;

	assert_non_null(p);
	assert_int_equal(prom_family(p, "wgcni_nodes", PROM_GAUGE, "Registered nodes."), 0);
	assert_int_equal(prom_sample(p, 3, NULL), 0);
	assert_int_equal(prom_family(p, "wgcni_subnets", PROM_GAUGE, "Subnets by state."), 0);
	assert_int_equal(prom_sample(p, 2, "state", "used", NULL), 0);
	assert_int_equal(prom_sample(p, 254, "state", "free", NULL), 0);
	assert_int_equal(prom_family(p, "wgcni_api_requests_total", PROM_COUNTER,
				     "API calls."), 0);
	assert_int_equal(prom_sample(p, 7, "method", "ListPeers", "code", "ok", NULL), 0);
	text = prom_text(p, &len);
	assert_non_null(text);
	assert_string_equal(text,
		"# HELP wgcni_nodes Registered nodes.\n"
		"# TYPE wgcni_nodes gauge\n"
		"wgcni_nodes 3\n"
		"# HELP wgcni_subnets Subnets by state.\n"
		"# TYPE wgcni_subnets gauge\n"
		"wgcni_subnets{state=\"used\"} 2\n"
		"wgcni_subnets{state=\"free\"} 254\n"
		"# HELP wgcni_api_requests_total API calls.\n"
		"# TYPE wgcni_api_requests_total counter\n"
		"wgcni_api_requests_total{method=\"ListPeers\",code=\"ok\"} 7\n");
	assert_int_equal(len, strlen(text));
	prom_free(p);
}

static void test_family_once(void **state)
{
	struct prom *p = prom_new();

	assert_int_equal(prom_family(p, "a", PROM_GAUGE, "A."), 0);
	assert_int_equal(prom_sample(p, 1, NULL), 0);
	/* The same family again right away: no second HELP/TYPE. */
	assert_int_equal(prom_family(p, "a", PROM_GAUGE, "A."), 0);
	assert_int_equal(prom_sample(p, 2, "x", "y", NULL), 0);
	assert_int_equal(prom_family(p, "b", PROM_GAUGE, "B."), 0);
	/* Splitting family "a" in two would be invalid exposition. */
	assert_int_equal(prom_family(p, "a", PROM_GAUGE, "A."), -EEXIST);
	assert_string_equal(prom_text(p, NULL),
		"# HELP a A.\n# TYPE a gauge\na 1\na{x=\"y\"} 2\n"
		"# HELP b B.\n# TYPE b gauge\n");
	prom_free(p);
}

static void test_escaping(void **state)
{
	struct prom *p = prom_new();
	char out[64];

	assert_int_equal(prom_family(p, "m", PROM_GAUGE, "back\\slash\nnew \"q\""), 0);
	assert_int_equal(prom_sample(p, 1, "v", "a\\b\"c\nd", NULL), 0);
	assert_string_equal(prom_text(p, NULL),
		"# HELP m back\\\\slash\\nnew \"q\"\n# TYPE m gauge\n"
		"m{v=\"a\\\\b\\\"c\\nd\"} 1\n");
	prom_free(p);

	assert_non_null(prom_escape_label("a\\b\"c\nd", out, sizeof(out)));
	assert_string_equal(out, "a\\\\b\\\"c\\nd");
	assert_null(prom_escape_label("a\"", out, 3));
	assert_non_null(prom_escape_label("a\"", out, 4));
	assert_string_equal(out, "a\\\"");
	assert_null(prom_escape_label("abc", out, 3));
	assert_non_null(prom_escape_label("", out, 1));
	assert_string_equal(out, "");
}

static void test_values(void **state)
{
	struct prom *p = prom_new();

	assert_int_equal(prom_family(p, "v", PROM_GAUGE, "Values."), 0);
	assert_int_equal(prom_sample(p, INFINITY, "k", "pinf", NULL), 0);
	assert_int_equal(prom_sample(p, -INFINITY, "k", "ninf", NULL), 0);
	assert_int_equal(prom_sample(p, NAN, "k", "nan", NULL), 0);
	assert_int_equal(prom_sample(p, 0.5, "k", "half", NULL), 0);
	assert_int_equal(prom_sample(p, 0.1, "k", "tenth", NULL), 0);
	assert_int_equal(prom_sample(p, -42, "k", "neg", NULL), 0);
	assert_int_equal(prom_sample(p, 0, "k", "zero", NULL), 0);
	assert_int_equal(prom_sample(p, 1e20, "k", "big", NULL), 0);
	assert_int_equal(prom_sample(p, 1700000000, "k", "ts", NULL), 0);
	assert_int_equal(prom_sample(p, 18446744073709551616.0, "k", "u64", NULL), 0);
	assert_string_equal(prom_text(p, NULL),
		"# HELP v Values.\n# TYPE v gauge\n"
		"v{k=\"pinf\"} +Inf\n"
		"v{k=\"ninf\"} -Inf\n"
		"v{k=\"nan\"} NaN\n"
		"v{k=\"half\"} 0.5\n"
		"v{k=\"tenth\"} 0.1\n"
		"v{k=\"neg\"} -42\n"
		"v{k=\"zero\"} 0\n"
		"v{k=\"big\"} 1e+20\n"
		"v{k=\"ts\"} 1700000000\n"
		"v{k=\"u64\"} 1.8446744073709552e+19\n");
	prom_free(p);
}

static void test_invalid(void **state)
{
	struct prom *p = prom_new();
	size_t len = 99;

	assert_string_equal(prom_text(p, &len), "");
	assert_int_equal(len, 0);
	/* A sample needs a family. */
	assert_int_equal(prom_sample(p, 1, NULL), -EINVAL);
	assert_int_equal(prom_family(p, "1bad", PROM_GAUGE, "x"), -EINVAL);
	assert_int_equal(prom_family(p, "bad-name", PROM_GAUGE, "x"), -EINVAL);
	assert_int_equal(prom_family(p, "", PROM_GAUGE, "x"), -EINVAL);
	assert_int_equal(prom_family(p, "ok:name_1", PROM_COUNTER, NULL), 0);
	/* Bad label names write nothing. */
	assert_int_equal(prom_sample(p, 1, "a:b", "v", NULL), -EINVAL);
	assert_int_equal(prom_sample(p, 1, "9a", "v", NULL), -EINVAL);
	assert_int_equal(prom_sample(p, 1, "a", "v", "b", NULL, NULL), -EINVAL);
	assert_string_equal(prom_text(p, NULL),
		"# HELP ok:name_1 \n# TYPE ok:name_1 counter\n");
	prom_free(p);
	prom_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_families_and_labels),
		cmocka_unit_test(test_family_once),
		cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_invalid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
