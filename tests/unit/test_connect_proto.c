/* What the Connect client and server share (pkg/connect_proto.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "connect_proto.h"

static void test_codes(void **state)
{
	assert_string_equal(connect_code_name(CONNECT_FAILED_PRECONDITION), "failed_precondition");
	assert_int_equal(connect_code_http_status(CONNECT_FAILED_PRECONDITION), 412);
	assert_int_equal(connect_code_http_status(CONNECT_RESOURCE_EXHAUSTED), 429);
	assert_int_equal(connect_code_http_status(CONNECT_ALREADY_EXISTS), 409);
	assert_int_equal(connect_code_http_status(CONNECT_UNAVAILABLE), 503);
	assert_int_equal(connect_code_from_name("already_exists"), CONNECT_ALREADY_EXISTS);
	assert_int_equal(connect_code_from_name("bogus"), CONNECT_INTERNAL);
	assert_int_equal(connect_code_from_name(NULL), CONNECT_INTERNAL);
	for (int i = 0; i < CONNECT_CODE_COUNT; i++)
		assert_int_equal(connect_code_from_name(connect_code_name((enum connect_code)i)), i);
}

static void test_code_out_of_range(void **state)
{
	assert_string_equal(connect_code_name(CONNECT_CODE_COUNT), "unknown");
	assert_string_equal(connect_code_name((enum connect_code)-1), "unknown");
	assert_int_equal(connect_code_http_status(CONNECT_CODE_COUNT), 500);
}

static void test_code_from_http_status(void **state)
{
	assert_int_equal(connect_code_from_http_status(400), CONNECT_INVALID_ARGUMENT);
	assert_int_equal(connect_code_from_http_status(401), CONNECT_UNAUTHENTICATED);
	/* two codes share 404: the first, not_found, is the one meant */
	assert_int_equal(connect_code_from_http_status(404), CONNECT_NOT_FOUND);
	assert_int_equal(connect_code_from_http_status(503), CONNECT_UNAVAILABLE);
	/* 200 is no error; statuses no code has */
	assert_int_equal(connect_code_from_http_status(200), CONNECT_INTERNAL);
	assert_int_equal(connect_code_from_http_status(418), CONNECT_INTERNAL);
	assert_int_equal(connect_code_from_http_status(0), CONNECT_INTERNAL);
	for (int i = 1; i < CONNECT_CODE_COUNT; i++)
		if (i != CONNECT_UNIMPLEMENTED)
			assert_int_equal(connect_code_from_http_status(
				connect_code_http_status((enum connect_code)i)), i);
}

static void test_encoding_parse(void **state)
{
	static const struct {
		const char *ctype;
		int enc;
	} cases[] = {
		{ "application/proto", CONNECT_ENC_PROTO },
		{ "application/json", CONNECT_ENC_JSON },
		{ "application/json; charset=utf-8", CONNECT_ENC_JSON },
		{ " \tApplication/JSON", CONNECT_ENC_JSON },
		{ "application/proto\t;x=y", CONNECT_ENC_PROTO },
		{ "application/jsonx", -1 },
		{ "application/jso", -1 },
		{ "text/plain", -1 },
		{ "", -1 },
		{ ";application/json", -1 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		print_message("%s\n", cases[i].ctype);
		assert_int_equal(connect_encoding_parse(cases[i].ctype), cases[i].enc);
	}
	assert_int_equal(connect_encoding_parse(NULL), -1);
}

static void test_timeout_parse(void **state)
{
	static const char *const bad[] = { "", "-1", "+5", " 5", "5 ", "1.5", "0x10",
					   "12345678901" };
	uint64_t ms = 7;

	assert_int_equal(connect_timeout_parse("0", &ms), 0);
	assert_int_equal(ms, 0);
	assert_int_equal(connect_timeout_parse("1500", &ms), 0);
	assert_int_equal(ms, 1500);
	assert_int_equal(connect_timeout_parse("9999999999", &ms), 0);
	assert_int_equal(ms, 9999999999ULL);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ms = 7;
		assert_int_equal(connect_timeout_parse(bad[i], &ms), -EINVAL);
		assert_int_equal(ms, 7);
	}
	assert_int_equal(connect_timeout_parse(NULL, &ms), -EINVAL);
}

static void test_error_body(void **state)
{
	char *body = connect_error_encode(CONNECT_NOT_FOUND, "node \"x\" not found");
	char msg[64];

	assert_non_null(body);
	assert_string_equal(body, "{\"code\":\"not_found\",\"message\":\"node \\\"x\\\" not found\"}");
	/* the body's code wins over the status's */
	assert_int_equal(connect_error_decode(body, strlen(body), 500, msg, sizeof(msg)),
			 CONNECT_NOT_FOUND);
	assert_string_equal(msg, "node \"x\" not found");
	/* cut to the buffer, never past it */
	assert_int_equal(connect_error_decode(body, strlen(body), 404, msg, 5), CONNECT_NOT_FOUND);
	assert_string_equal(msg, "node");
	free(body);
	/* not UTF-8: no body, the status alone tells */
	assert_null(connect_error_encode(CONNECT_INTERNAL, "\xff"));
}

static void test_error_decode_fallbacks(void **state)
{
	static const struct {
		const char *body;
		int status;
		enum connect_code code;
		const char *msg;
	} cases[] = {
		{ "", 429, CONNECT_RESOURCE_EXHAUSTED, "no error message" },
		{ "<html>bad gateway</html>", 503, CONNECT_UNAVAILABLE, "no error message" },
		{ "{\"message\":\"m\"}", 412, CONNECT_FAILED_PRECONDITION, "m" },
		{ "{\"code\":\"bogus\",\"message\":\"m\"}", 400, CONNECT_INTERNAL, "m" },
		{ "{\"code\":7,\"message\":\"m\"}", 401, CONNECT_UNAUTHENTICATED,
		  "no error message" },
		{ "{\"code\":\"already_exists\"}", 418, CONNECT_ALREADY_EXISTS,
		  "no error message" },
		{ "[]", 418, CONNECT_INTERNAL, "no error message" },
	};
	char msg[64];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		print_message("%s\n", cases[i].body);
		assert_int_equal(connect_error_decode(cases[i].body, strlen(cases[i].body),
						      cases[i].status, msg, sizeof(msg)),
				 cases[i].code);
		assert_string_equal(msg, cases[i].msg);
	}
	/* no message buffer: only the code */
	assert_int_equal(connect_error_decode("{}", 2, 404, NULL, 0), CONNECT_NOT_FOUND);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_codes),
		cmocka_unit_test(test_code_out_of_range),
		cmocka_unit_test(test_code_from_http_status),
		cmocka_unit_test(test_encoding_parse),
		cmocka_unit_test(test_timeout_parse),
		cmocka_unit_test(test_error_body),
		cmocka_unit_test(test_error_decode_fallbacks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
