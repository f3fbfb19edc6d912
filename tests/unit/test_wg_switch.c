/*
 * The backend switch (wg.c) against sockets in a private UAPI directory
 * (wg_uapi_set_dir), in a network namespace the test unshares first: which
 * backend each operation asks. No wireguard-go and no module needed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "wg.h"
#include "wg_uapi.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static char dir[64];

static int setup(void **state)
{
	if (unshare(CLONE_NEWNET) < 0) {
		fprintf(stderr, "unshare(CLONE_NEWNET): needs root\n");
		return -1;
	}
	snprintf(dir, sizeof(dir), "/tmp/wgsw-%d", (int)getpid());
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -1;
	wg_uapi_set_dir(dir);
	return 0;
}

static int teardown(void **state)
{
	char path[128];

	wg_uapi_set_dir(NULL);
	snprintf(path, sizeof(path), "%s/sw0.sock", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/sw1.sock", dir);
	unlink(path);
	return rmdir(dir);
}

/* A socket file for name; listening (nonblocking) or, with listening
 * false, stale: bound and closed, as a crashed daemon leaves it. */
static int bind_sock(const char *name, bool listening)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd;

	assert_int_equal(wg_uapi_sock_path(name, sun.sun_path, sizeof(sun.sun_path)), 0);
	unlink(sun.sun_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	if (!listening) {
		close(fd);
		return -1;
	}
	assert_int_equal(listen(fd, 4), 0);
	return fd;
}

/* wg_get_from(KERNEL) never asks a UAPI socket of that name (whose device
 * may be another namespace's); AUTO does. */
static void test_get_from(void **state)
{
	struct wg_device *d = NULL;
	int ls = bind_sock("sw0", true), c;

	assert_true(wg_get_from("sw0", WG_BACKEND_KERNEL, &d) < 0);
	assert_null(d);
	assert_int_equal(accept(ls, NULL, NULL), -1); /* nobody connected */
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(wg_get_from("sw0", (enum wg_backend)42, &d), -EINVAL);
	assert_int_equal(wg_get_from(NULL, WG_BACKEND_AUTO, &d), -EINVAL);
	assert_int_equal(wg_get_from("sw0", WG_BACKEND_AUTO, NULL), -EINVAL);
	/* The socket answers connections: the switch calls it userspace. */
	assert_int_equal(wg_backend_of("sw0"), WG_BACKEND_USERSPACE);
	c = accept(ls, NULL, NULL);
	assert_true(c >= 0);
	close(c);
	close(ls);
}

/* Delete goes to userspace for a stale socket too, and removes it; with no
 * socket and no link, to the kernel, which finds nothing. */
static void test_delete(void **state)
{
	struct stat st;
	char path[128];

	bind_sock("sw1", false);
	assert_int_equal(wg_uapi_has_socket("sw1"), 1);
	assert_int_equal(wg_backend_of("sw1"), -ENODEV);
	assert_int_equal(wg_delete("sw1"), 0);
	assert_int_equal(wg_uapi_sock_path("sw1", path, sizeof(path)), 0);
	assert_int_equal(lstat(path, &st), -1);
	assert_int_equal(wg_uapi_has_socket("sw1"), 0);
	assert_int_equal(wg_delete("sw1"), -ENODEV);
	assert_int_equal(wg_delete("a/b"), -EINVAL);
	assert_int_equal(wg_delete(""), -EINVAL);
	assert_int_equal(wg_delete(".."), -EINVAL);
	assert_int_equal(wg_uapi_has_socket("a/b"), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_get_from),
		cmocka_unit_test(test_delete),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
