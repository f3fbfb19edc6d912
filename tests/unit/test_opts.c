#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "opts.h"

enum { OPT_CIDR = 256, OPT_MASQ, OPT_NO_MASQ, OPT_PORT, OPT_VERBOSE };

struct cfg {
	char listen[64];
	char cidrs[8][64];
	int n_cidrs;
	int masq; /* -1 unset */
	int port;
	int help;
	int verbose; /* count */
	char verbose_arg[16];
	int flagged;
	char order[64]; /* trace of applied options */
};

static int flag_target;

static const struct option longopts[] = {
	{ "listen", required_argument, NULL, 'l' },
	{ "cluster-cidr", required_argument, NULL, OPT_CIDR },
	{ "masquerade", no_argument, NULL, OPT_MASQ },
	{ "no-masquerade", no_argument, NULL, OPT_NO_MASQ },
	{ "listen-port", required_argument, NULL, OPT_PORT },
	{ "help", no_argument, NULL, 'h' },
	{ "verbose", optional_argument, NULL, OPT_VERBOSE },
	{ "flagged", no_argument, &flag_target, 7 },
	{ NULL, 0, NULL, 0 },
};

static int apply(int val, const char *arg, void *ctx, char *err, size_t errlen)
{
	struct cfg *c = ctx;
	size_t n = strlen(c->order);
	char *end;
	long port;

	switch (val) {
	case 'l':
		snprintf(c->listen, sizeof(c->listen), "%s", arg);
		break;
	case OPT_CIDR:
		if (c->n_cidrs == 8)
			return -E2BIG;
		snprintf(c->cidrs[c->n_cidrs++], sizeof(c->cidrs[0]), "%s", arg);
		break;
	case OPT_MASQ:
		assert_null(arg);
		c->masq = 1;
		break;
	case OPT_NO_MASQ:
		assert_null(arg);
		c->masq = 0;
		break;
	case OPT_PORT:
		errno = 0;
		port = strtol(arg, &end, 10);
		if (*end || port < 1 || port > 65535) {
			snprintf(err, errlen, "listen port \"%s\" out of range 1-65535", arg);
			return -EINVAL;
		}
		c->port = (int)port;
		break;
	case 'h':
		c->help = 1;
		break;
	case OPT_VERBOSE:
		c->verbose++;
		snprintf(c->verbose_arg, sizeof(c->verbose_arg), "%s", arg ? arg : "(null)");
		break;
	case 'q':
		return -EPERM; /* refuses without a message */
	default:
		fail_msg("unexpected option value %d", val);
	}
	if (n + 1 < sizeof(c->order))
		c->order[n] = val < 256 ? (char)val : (char)('0' + val - 256);
	return 0;
}

static const char *const env_vars[] = {
	"WGCNI_LISTEN", "WGCNI_CLUSTER_CIDR", "WGCNI_MASQUERADE", "WGCNI_NO_MASQUERADE",
	"WGCNI_LISTEN_PORT", "WGCNI_HELP", "WGCNI_VERBOSE", "WGCNI_FLAGGED",
};

static int clear_env(void **state)
{
	for (size_t i = 0; i < sizeof(env_vars) / sizeof(env_vars[0]); i++)
		unsetenv(env_vars[i]);
	flag_target = 0;
	return 0;
}

static void cfg_init(struct cfg *c)
{
	memset(c, 0, sizeof(*c));
	c->masq = -1;
}

/* argv built from a NULL-terminated list; getopt permutes it, so copy. */
#define ARGV(...)                                                             \
	char *argv[] = { "prog", __VA_ARGS__, NULL };                         \
	int argc = (int)(sizeof(argv) / sizeof(argv[0])) - 1

static void test_command_line(void **state)
{
	ARGV("--listen", "0.0.0.0:8080", "--cluster-cidr=10.100.0.0/16", "--masquerade",
	     "--cluster-cidr", "fd10:100::/48", "-h", "--listen-port", "51820");
	struct cfg c;
	char err[128] = "x";

	cfg_init(&c);
	assert_int_equal(opts_parse(argc, argv, "hl:", longopts, apply, &c, err, sizeof(err)),
			 argc);
	assert_string_equal(err, "");
	assert_string_equal(c.listen, "0.0.0.0:8080");
	assert_int_equal(c.n_cidrs, 2);
	assert_string_equal(c.cidrs[0], "10.100.0.0/16");
	assert_string_equal(c.cidrs[1], "fd10:100::/48");
	assert_int_equal(c.masq, 1);
	assert_int_equal(c.help, 1);
	assert_int_equal(c.port, 51820);
	assert_string_equal(c.order, "l010h3");
}

static void test_operands(void **state)
{
	struct cfg c;
	char err[128];

	{
		/* GNU permutation: options after the operand still count */
		ARGV("nodes", "-l", "x:1", "extra");
		cfg_init(&c);
		int idx = opts_parse(argc, argv, "hl:", longopts, apply, &c, err, sizeof(err));
		assert_int_equal(idx, 3);
		assert_string_equal(argv[idx], "nodes");
		assert_string_equal(argv[idx + 1], "extra");
		assert_string_equal(c.listen, "x:1");
	}
	{
		/* '+': stop at the first operand (subcommand with own options) */
		ARGV("-h", "node", "--listen", "y:1");
		cfg_init(&c);
		int idx = opts_parse(argc, argv, "+hl:", longopts, apply, &c, err, sizeof(err));
		assert_int_equal(idx, 2);
		assert_string_equal(argv[idx], "node");
		assert_string_equal(c.listen, "");
		assert_int_equal(c.help, 1);
	}
	{
		ARGV("-l", "a:1", "--", "--help");
		cfg_init(&c);
		int idx = opts_parse(argc, argv, "hl:", longopts, apply, &c, err, sizeof(err));
		assert_int_equal(idx, 4);
		assert_string_equal(argv[idx], "--help");
		assert_int_equal(c.help, 0);
	}
	{
		char *argv[] = { "prog", NULL };
		cfg_init(&c);
		assert_int_equal(opts_parse(1, argv, "hl:", longopts, apply, &c, err, sizeof(err)), 1);
	}
	{
		/* attached short value, unique abbreviation of a long option */
		ARGV("-lhost:9", "--cluster=10.0.0.0/8");
		cfg_init(&c);
		assert_int_equal(opts_parse(argc, argv, "hl:", longopts, apply, &c, err, sizeof(err)),
				 3);
		assert_string_equal(c.listen, "host:9");
		assert_string_equal(c.cidrs[0], "10.0.0.0/8");
	}
}

static void test_env(void **state)
{
	struct cfg c;
	char err[128];

	setenv("WGCNI_LISTEN", "127.0.0.1:5242", 1);
	setenv("WGCNI_CLUSTER_CIDR", "10.100.0.0/16,fd10:100::/48", 1);
	setenv("WGCNI_MASQUERADE", "true", 1);
	setenv("WGCNI_LISTEN_PORT", "51821", 1);
	{
		ARGV("x");
		cfg_init(&c);
		assert_int_equal(opts_parse(argc, argv, "hl:", longopts, apply, &c, err, sizeof(err)),
				 1);
		assert_string_equal(c.listen, "127.0.0.1:5242");
		/* a repeatable option arrives as one value; the caller splits */
		assert_int_equal(c.n_cidrs, 1);
		assert_string_equal(c.cidrs[0], "10.100.0.0/16,fd10:100::/48");
		assert_int_equal(c.masq, 1);
		assert_int_equal(c.port, 51821);
	}
	{
		/* command line wins: env applied first, command line after */
		ARGV("--listen", "0.0.0.0:1", "--no-masquerade");
		cfg_init(&c);
		assert_int_equal(opts_parse(argc, argv, "hl:", longopts, apply, &c, err, sizeof(err)),
				 argc);
		assert_string_equal(c.listen, "0.0.0.0:1");
		assert_int_equal(c.masq, 0);
		assert_int_equal(c.port, 51821);
		/* env order (longopts order), then command line order */
		assert_string_equal(c.order, "l013l2");
	}
}

static void test_env_bool(void **state)
{
	static const struct {
		const char *v;
		int masq;
	} cases[] = {
		{ "1", 1 }, { "true", 1 }, { "yes", 1 }, { "TRUE", 1 }, { "Yes", 1 },
		{ "0", -1 }, { "false", -1 }, { "no", -1 }, { "", -1 }, { "NO", -1 },
	};
	struct cfg c;
	char err[160];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ARGV("x");
		setenv("WGCNI_MASQUERADE", cases[i].v, 1);
		cfg_init(&c);
		assert_int_equal(opts_parse(argc, argv, "", longopts, apply, &c, err, sizeof(err)), 1);
		assert_int_equal(c.masq, cases[i].masq);
	}
	{
		ARGV("x");
		setenv("WGCNI_MASQUERADE", "maybe", 1);
		cfg_init(&c);
		assert_int_equal(opts_parse(argc, argv, "", longopts, apply, &c, err, sizeof(err)), -1);
		assert_string_equal(err,
			"WGCNI_MASQUERADE must be 1, true, yes, 0, false or no, got \"maybe\"");
		unsetenv("WGCNI_MASQUERADE");
	}
	{
		/* every option, --help included, as the spec says */
		ARGV("x");
		setenv("WGCNI_HELP", "1", 1);
		cfg_init(&c);
		assert_int_equal(opts_parse(argc, argv, "", longopts, apply, &c, err, sizeof(err)), 1);
		assert_int_equal(c.help, 1);
		unsetenv("WGCNI_HELP");
	}
	{
		/* an option with a flag pointer is set the same way from env */
		ARGV("x");
		setenv("WGCNI_FLAGGED", "1", 1);
		cfg_init(&c);
		assert_int_equal(opts_parse(argc, argv, "", longopts, apply, &c, err, sizeof(err)), 1);
		assert_int_equal(flag_target, 7);
		unsetenv("WGCNI_FLAGGED");
		flag_target = 0;
	}
	{
		ARGV("--flagged");
		cfg_init(&c);
		assert_int_equal(opts_parse(argc, argv, "", longopts, apply, &c, err, sizeof(err)), 2);
		assert_int_equal(flag_target, 7);
		assert_string_equal(c.order, "");
	}
	{
		/* empty value for an option with an argument counts as unset;
		 * optional arguments arrive as NULL when empty */
		ARGV("x");
		setenv("WGCNI_LISTEN", "", 1);
		setenv("WGCNI_VERBOSE", "", 1);
		cfg_init(&c);
		assert_int_equal(opts_parse(argc, argv, "", longopts, apply, &c, err, sizeof(err)), 1);
		assert_string_equal(c.listen, "");
		assert_int_equal(c.verbose, 1);
		assert_string_equal(c.verbose_arg, "(null)");
		setenv("WGCNI_VERBOSE", "2", 1);
		cfg_init(&c);
		assert_int_equal(opts_parse(argc, argv, "", longopts, apply, &c, err, sizeof(err)), 1);
		assert_string_equal(c.verbose_arg, "2");
	}
}

static void test_errors(void **state)
{
	static const struct {
		const char *args[3];
		const char *err;
	} cases[] = {
		{ { "--bogus" }, "unknown option '--bogus'" },
		{ { "--bogus=1" }, "unknown option '--bogus'" },
		{ { "-x" }, "unknown option '-x'" },
		{ { "-hx" }, "unknown option '-x'" },
		{ { "--listen" }, "option '--listen' needs a value" },
		{ { "-h", "-l" }, "option '-l' needs a value" },
		{ { "--help=yes" }, "option '--help' takes no value" },
		{ { "--masquerade=1" }, "option '--masquerade' takes no value" },
		{ { "--listen-port", "0" }, "listen port \"0\" out of range 1-65535" },
		{ { "--listen-port=70000" }, "listen port \"70000\" out of range 1-65535" },
		{ { "-q" }, "invalid value for -q: \"\"" },
	};
	char err[160];
	struct cfg c;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *argv[5] = { "prog" };
		int argc = 1;

		for (int j = 0; j < 3 && cases[i].args[j]; j++)
			argv[argc++] = (char *)cases[i].args[j];
		cfg_init(&c);
		err[0] = '\0';
		assert_int_equal(opts_parse(argc, argv, "hl:q", longopts, apply, &c, err,
					    sizeof(err)), -1);
		assert_string_equal(err, cases[i].err);
	}
	/* an env value the callback refuses names the variable */
	setenv("WGCNI_LISTEN_PORT", "abc", 1);
	{
		ARGV("x");
		cfg_init(&c);
		assert_int_equal(opts_parse(argc, argv, "", longopts, apply, &c, err, sizeof(err)), -1);
		assert_string_equal(err, "listen port \"abc\" out of range 1-65535");
	}
	unsetenv("WGCNI_LISTEN_PORT");
	/* no err buffer: still fails cleanly */
	{
		ARGV("--bogus");
		cfg_init(&c);
		assert_int_equal(opts_parse(argc, argv, "", longopts, apply, &c, NULL, 0), -1);
	}
}

/* Parsing twice in one process (as tests and re-exec'd daemons do) starts
 * from scratch each time. */
static void test_twice(void **state)
{
	struct cfg c;
	char err[128];

	for (int round = 0; round < 3; round++) {
		ARGV("-h", "--listen", "a:1", "rest");
		cfg_init(&c);
		assert_int_equal(opts_parse(argc, argv, "hl:", longopts, apply, &c, err, sizeof(err)),
				 4);
		assert_int_equal(c.help, 1);
		assert_string_equal(c.listen, "a:1");
	}
	{
		/* after an error halfway through a group, the next parse is clean */
		ARGV("-hx");
		cfg_init(&c);
		assert_int_equal(opts_parse(argc, argv, "hl:", longopts, apply, &c, err, sizeof(err)),
				 -1);
	}
	{
		ARGV("-l", "b:2");
		cfg_init(&c);
		assert_int_equal(opts_parse(argc, argv, "hl:", longopts, apply, &c, err, sizeof(err)),
				 3);
		assert_string_equal(c.listen, "b:2");
		assert_int_equal(c.help, 0);
	}
}

static void test_env_name(void **state)
{
	char buf[64];

	opts_env_name("cluster-cidr", buf, sizeof(buf));
	assert_string_equal(buf, "WGCNI_CLUSTER_CIDR");
	opts_env_name("node-prefix-length-v6", buf, sizeof(buf));
	assert_string_equal(buf, "WGCNI_NODE_PREFIX_LENGTH_V6");
	opts_env_name("mtu", buf, sizeof(buf));
	assert_string_equal(buf, "WGCNI_MTU");
	opts_env_name("listen-port", buf, 10);
	assert_string_equal(buf, "WGCNI_LIS");
	opts_env_name("x", buf, 1);
	assert_string_equal(buf, "");
}

static void test_split(void **state)
{
	char **v = opts_split("10.100.0.0/16, fd10:100::/48 ,,  ,x");

	assert_non_null(v);
	assert_string_equal(v[0], "10.100.0.0/16");
	assert_string_equal(v[1], "fd10:100::/48");
	assert_string_equal(v[2], "x");
	assert_null(v[3]);
	opts_strv_free(v);

	v = opts_split("");
	assert_non_null(v);
	assert_null(v[0]);
	opts_strv_free(v);
	v = opts_split(NULL);
	assert_non_null(v);
	assert_null(v[0]);
	opts_strv_free(v);
	v = opts_split(",,,");
	assert_non_null(v);
	assert_null(v[0]);
	opts_strv_free(v);
	v = opts_split("one");
	assert_non_null(v);
	assert_string_equal(v[0], "one");
	assert_null(v[1]);
	opts_strv_free(v);
	opts_strv_free(NULL);
}

static void test_parse_ulong(void **state)
{
	unsigned long v = 42;

	assert_int_equal(opts_parse_ulong("0", 0, 10, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(opts_parse_ulong("10", 0, 10, &v), 0);
	assert_int_equal(v, 10);
	v = 42;
	assert_int_equal(opts_parse_ulong("11", 0, 10, &v), -EINVAL);
	assert_int_equal(opts_parse_ulong("0", 1, 10, &v), -EINVAL);
	assert_int_equal(opts_parse_ulong("-1", 0, 10, &v), -EINVAL);
	assert_int_equal(opts_parse_ulong("+1", 0, 10, &v), -EINVAL);
	assert_int_equal(opts_parse_ulong(" 1", 0, 10, &v), -EINVAL);
	assert_int_equal(opts_parse_ulong("1 ", 0, 10, &v), -EINVAL);
	assert_int_equal(opts_parse_ulong("1x", 0, 10, &v), -EINVAL);
	assert_int_equal(opts_parse_ulong("", 0, 10, &v), -EINVAL);
	assert_int_equal(opts_parse_ulong(NULL, 0, 10, &v), -EINVAL);
	assert_int_equal(opts_parse_ulong("99999999999999999999999", 0, ~0UL, &v), -EINVAL);
	assert_int_equal(v, 42); /* untouched on every failure */
}

static void test_parse_duration(void **state)
{
	uint64_t ms = 42;

	assert_int_equal(opts_parse_duration("0", &ms), 0);
	assert_int_equal(ms, 0);
	assert_int_equal(opts_parse_duration("30s", &ms), 0);
	assert_int_equal(ms, 30000);
	assert_int_equal(opts_parse_duration("10m", &ms), 0);
	assert_int_equal(ms, 600000);
	assert_int_equal(opts_parse_duration("1h", &ms), 0);
	assert_int_equal(ms, 3600000);
	assert_int_equal(opts_parse_duration("2d", &ms), 0);
	assert_int_equal(ms, 172800000);
	assert_int_equal(opts_parse_duration("1h30m", &ms), 0);
	assert_int_equal(ms, 5400000);
	assert_int_equal(opts_parse_duration("500ms", &ms), 0);
	assert_int_equal(ms, 500);
	assert_int_equal(opts_parse_duration("1m500ms", &ms), 0);
	assert_int_equal(ms, 60500);
	assert_int_equal(opts_parse_duration("45", &ms), 0);
	assert_int_equal(ms, 45000);
	assert_int_equal(opts_parse_duration("0s", &ms), 0);
	assert_int_equal(ms, 0);
	ms = 42;
	assert_int_equal(opts_parse_duration("", &ms), -EINVAL);
	assert_int_equal(opts_parse_duration(NULL, &ms), -EINVAL);
	assert_int_equal(opts_parse_duration("m", &ms), -EINVAL);
	assert_int_equal(opts_parse_duration("10x", &ms), -EINVAL);
	assert_int_equal(opts_parse_duration("10 m", &ms), -EINVAL);
	assert_int_equal(opts_parse_duration(" 10m", &ms), -EINVAL);
	assert_int_equal(opts_parse_duration("10m ", &ms), -EINVAL);
	assert_int_equal(opts_parse_duration("-1s", &ms), -EINVAL);
	assert_int_equal(opts_parse_duration("1h30", &ms), -EINVAL);
	assert_int_equal(opts_parse_duration("1.5h", &ms), -EINVAL);
	assert_int_equal(opts_parse_duration("10M", &ms), -EINVAL);
	assert_int_equal(opts_parse_duration("99999999999999999999d", &ms), -ERANGE);
	assert_int_equal(opts_parse_duration("999999999999999d", &ms), -ERANGE);
	assert_int_equal(opts_parse_duration("99999999999999999999", &ms), -ERANGE);
	assert_int_equal(ms, 42); /* untouched on every failure */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_command_line, clear_env),
		cmocka_unit_test_setup(test_operands, clear_env),
		cmocka_unit_test_setup(test_env, clear_env),
		cmocka_unit_test_setup(test_env_bool, clear_env),
		cmocka_unit_test_setup(test_errors, clear_env),
		cmocka_unit_test_setup(test_twice, clear_env),
		cmocka_unit_test(test_env_name),
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_parse_ulong),
		cmocka_unit_test(test_parse_duration),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
