#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "sys.h"

static void test_now_ms(void **state)
{
	uint64_t a = sys_now_ms(), b;
	struct timespec d = { 0, 20 * 1000 * 1000 };

	nanosleep(&d, NULL);
	b = sys_now_ms();
	assert_true(b >= a + 20);
	assert_true(b < a + 5000);
}

static void test_mkdir_p(void **state)
{
	char root[] = "/tmp/wgcni-sys-XXXXXX", path[256], file[256];
	struct stat st;

	assert_non_null(mkdtemp(root));
	snprintf(path, sizeof(path), "%s/a/b/c", root);
	assert_int_equal(sys_mkdir_p(path, 0700), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);
	/* exactly the mode asked for, whatever the umask */
	mode_t old = umask(0077);
	snprintf(path, sizeof(path), "%s/open/dir", root);
	assert_int_equal(sys_mkdir_p(path, 0755), 0);
	umask(old);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0755);
	assert_int_equal(sys_mkdir_p(path, 0700), 0); /* exists: fine */

	snprintf(file, sizeof(file), "%s/x/y/node.sock", root);
	assert_int_equal(sys_mkdir_parent(file, 0755), 0);
	snprintf(path, sizeof(path), "%s/x/y", root);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(sys_mkdir_parent("relative.sock", 0755), 0);

	/* a file in the way */
	snprintf(file, sizeof(file), "%s/f", root);
	FILE *f = fopen(file, "w");
	assert_non_null(f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/f/sub", root);
	assert_int_equal(sys_mkdir_p(path, 0700), -ENOTDIR);
	assert_int_equal(sys_mkdir_p("", 0700), -EINVAL);

	snprintf(path, sizeof(path), "rm -rf '%s'", root);
	assert_int_equal(system(path), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_now_ms),
		cmocka_unit_test(test_mkdir_p),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
