#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"

static void test_append(void **state)
{
	struct buf b = { 0 };
	char chunk[1000];

	memset(chunk, 'x', sizeof(chunk));
	for (int i = 0; i < 100; i++)
		assert_int_equal(buf_append(&b, chunk, sizeof(chunk)), 0);
	assert_int_equal(b.len, 100000);
	assert_true(b.cap >= b.len + 1 && b.cap < 2 * (b.len + 1) + 4096);
	assert_int_equal(b.data[b.len], '\0');
	assert_int_equal(buf_append(&b, "", 0), 0);
	assert_false(b.too_big);
	buf_free(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	buf_free(&b);
	buf_free(NULL);
}

static void test_bound(void **state)
{
	struct buf b = { .max = 10 };

	assert_int_equal(buf_append(&b, "0123456789", 10), 0);
	assert_int_equal(buf_append(&b, "a", 1), -E2BIG);
	assert_true(b.too_big);
	assert_int_equal(b.len, 10);
	assert_string_equal(b.data, "0123456789");
	buf_free(&b);
}

static void test_curl_write(void **state)
{
	struct buf b = { .max = 8 };
	char in[] = "abcdefgh";

	assert_int_equal(buf_curl_write(in, 2, 2, &b), 4);
	assert_int_equal(buf_curl_write(in, 1, 4, &b), 4);
	assert_string_equal(b.data, "abcdabcd");
	assert_int_equal(buf_curl_write(in, 1, 1, &b), 0); /* aborts the transfer */
	assert_true(b.too_big);
	assert_int_equal(buf_curl_write(in, (size_t)-1, 2, &b), 0); /* overflow */
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_append),
		cmocka_unit_test(test_bound),
		cmocka_unit_test(test_curl_write),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
