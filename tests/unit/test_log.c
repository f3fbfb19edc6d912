#include <errno.h>
#include <inttypes.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"

/* stderr goes to a temporary file for the duration of each test. */
static FILE *capture;
static int saved_stderr = -1;
static char captured[8192];

static int start_capture(void **state)
{
	fflush(stderr);
	capture = tmpfile();
	if (!capture)
		return -1;
	saved_stderr = dup(STDERR_FILENO);
	if (saved_stderr < 0 || dup2(fileno(capture), STDERR_FILENO) < 0)
		return -1;
	log_init("test", LOG_LEVEL_INFO);
	return 0;
}

/* Everything logged since the last call. */
static const char *take(void)
{
	size_t n;

	fflush(stderr);
	rewind(capture);
	n = fread(captured, 1, sizeof(captured) - 1, capture);
	captured[n] = '\0';
	assert_int_equal(ftruncate(fileno(capture), 0), 0);
	rewind(capture);
	return captured;
}

static int stop_capture(void **state)
{
	/* cmocka reports failures on stderr: pass on what a failing test
	 * left in the capture. */
	take();
	dup2(saved_stderr, STDERR_FILENO);
	if (captured[0])
		fprintf(stderr, "%s", captured);
	close(saved_stderr);
	fclose(capture);
	log_init(NULL, LOG_LEVEL_INFO);
	return 0;
}

static void assert_matches(const char *s, const char *re)
{
	regex_t rx;
	int rc;

	assert_int_equal(regcomp(&rx, re, REG_EXTENDED | REG_NOSUB), 0);
	rc = regexec(&rx, s, 0, NULL, 0);
	regfree(&rx);
	if (rc)
		fail_msg("\"%s\" does not match /%s/", s, re);
}

#define TS "ts=[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z"

static void test_line_shape(void **state)
{
	log_info("node registered", "name=%s endpoint=%s", "n1", "192.0.2.1:51820");
	assert_matches(take(), "^" TS " level=info msg=\"node registered\""
			       " name=n1 endpoint=192\\.0\\.2\\.1:51820 prog=test\n$");
	log_error("boom", NULL);
	assert_matches(take(), "^" TS " level=error msg=\"boom\" prog=test\n$");
	log_warnx("careful", "n=%d", 3);
	assert_matches(take(), "^" TS " level=warn msg=\"careful\" n=3 prog=test\n$");

	/* no program name: the field is left out */
	log_init(NULL, LOG_LEVEL_INFO);
	log_info("plain", NULL);
	assert_matches(take(), "^" TS " level=info msg=\"plain\"\n$");
}

static void test_warn_errno(void **state)
{
	errno = ENOENT;
	log_warn("cannot open key", "path=%s", "/x");
	assert_int_equal(errno, ENOENT); /* preserved for the caller */
	assert_matches(take(), "^" TS " level=warn msg=\"cannot open key\" path=/x"
			       " err=\"No such file or directory\" prog=test\n$");
	errno = EACCES;
	log_info("no errno here", NULL);
	assert_int_equal(errno, EACCES);
	assert_null(strstr(take(), "err="));
}

static void test_levels(void **state)
{
	enum log_level l;

	log_set_level(LOG_LEVEL_WARN);
	assert_int_equal(log_get_level(), LOG_LEVEL_WARN);
	log_debug("d", NULL);
	log_info("i", NULL);
	assert_string_equal(take(), "");
	log_warnx("w", NULL);
	log_error("e", NULL);
	const char *out = take();
	assert_non_null(strstr(out, "level=warn msg=\"w\" prog=test\n"));
	assert_non_null(strstr(out, "level=error msg=\"e\" prog=test\n"));
	int lines = 0;
	for (const char *p = out; *p; p++)
		lines += *p == '\n';
	assert_int_equal(lines, 2);

	log_set_level(LOG_LEVEL_ERROR);
	log_warn("w", NULL);
	assert_string_equal(take(), "");
	log_set_level(LOG_LEVEL_DEBUG);
	log_debug("d", "k=v");
	assert_matches(take(), "^" TS " level=debug msg=\"d\" k=v prog=test\n$");

	static const char *const names[] = { "error", "warn", "info", "debug" };
	for (int i = 0; i < 4; i++) {
		assert_int_equal(log_level_parse(names[i], &l), 0);
		assert_int_equal(l, i);
	}
	l = LOG_LEVEL_INFO;
	assert_int_equal(log_level_parse("verbose", &l), -EINVAL);
	assert_int_equal(log_level_parse("INFO", &l), -EINVAL);
	assert_int_equal(log_level_parse("", &l), -EINVAL);
	assert_int_equal(log_level_parse(NULL, &l), -EINVAL);
	assert_int_equal(l, LOG_LEVEL_INFO);
}

/* A message can never break the one-line-per-event rule or the quoting. */
static void test_escaping(void **state)
{
	char big[4000];

	log_info("say \"hi\"\nnext line\\", "k=\"a\nb\"");
	assert_matches(take(), "^" TS " level=info msg=\"say \\\\\"hi\\\\\"\\\\nnext"
			       " line\\\\\\\\\" k=\"a\\\\nb\" prog=test\n$");
	log_info("bell\a", NULL);
	assert_matches(take(), "msg=\"bell\\\\x07\" prog=test\n$");

	memset(big, 'm', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	errno = EIO;
	log_warn(big, "k=%s", big);
	const char *out = take();
	assert_int_equal(strchr(out, '\n') - out + 1, (long)strlen(out));
	assert_matches(out, "^" TS " level=warn msg=\"m+\" ");
	assert_matches(out, "\" prog=test\n$");
}

/* The logger quotes a %s value itself, exactly when logfmt needs it. */
static void test_value_quoting(void **state)
{
	log_info("q", "plain=%s space=%s empty=%s eq=%s quote=%s", "n1", "a b", "",
		 "k=v", "say \"hi\"");
	assert_matches(take(), "^" TS " level=info msg=\"q\" plain=n1 space=\"a b\""
			       " empty=\"\" eq=\"k=v\" quote=\"say \\\\\"hi\\\\\"\" prog=test\n$");
	log_info("ctl", "v=%s back=%s", "a\nb", "c:\\d");
	assert_matches(take(), "v=\"a\\\\nb\" back=\"c:\\\\\\\\d\" prog=test\n$");
	/* numbers, widths, precisions and %% go through as printf makes them */
	log_info("n", "a=%d b=%u c=%zu d=%lld e=%x f=%5.2f g=%.*s h=%*d pct=100%%", -3, 4u,
		 (size_t)5, (long long)-6, 255, 1.5, 3, "abcdef", 3, 7);
	assert_matches(take(), " a=-3 b=4 c=5 d=-6 e=ff f= 1.50 g=abc h=  7 pct=100% prog=test\n$");
	log_info("z", "i64=%" PRIu64 " p=%s", (uint64_t)18446744073709551615u, "x y");
	assert_matches(take(), " i64=18446744073709551615 p=\"x y\" prog=test\n$");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_line_shape, start_capture, stop_capture),
		cmocka_unit_test_setup_teardown(test_warn_errno, start_capture, stop_capture),
		cmocka_unit_test_setup_teardown(test_levels, start_capture, stop_capture),
		cmocka_unit_test_setup_teardown(test_escaping, start_capture, stop_capture),
		cmocka_unit_test_setup_teardown(test_value_quoting, start_capture, stop_capture),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
