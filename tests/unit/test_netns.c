/* netns: switching the calling thread between namespaces it created itself
 * (the test first unshares a private one, so the host's is never touched). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "netns.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/if.h>
#include <linux/if_tun.h>

static ino_t cur_ino(void)
{
	struct stat st;

	assert_int_equal(stat("/proc/thread-self/ns/net", &st), 0);
	return st.st_ino;
}

static ino_t fd_ino(int fd)
{
	struct stat st;

	assert_int_equal(fstat(fd, &st), 0);
	return st.st_ino;
}

static int setup(void **state)
{
	if (unshare(CLONE_NEWNET) < 0) {
		fprintf(stderr, "unshare(CLONE_NEWNET): needs root\n");
		return -1;
	}
	return 0;
}

static void test_open_missing(void **state)
{
	assert_int_equal(netns_open("/run/netns/wgcni-does-not-exist-xyz"), -ENOENT);
	assert_int_equal(netns_open(""), -EINVAL);
	assert_int_equal(netns_open(NULL), -EINVAL);
	assert_int_equal(netns_enter(-1), -EBADF);
}

static void test_current_and_enter(void **state)
{
	int a, b, fd;
	ino_t ia, ib;

	a = netns_current();
	assert_true(a >= 0);
	assert_true(fcntl(a, F_GETFD) & FD_CLOEXEC);
	ia = fd_ino(a);
	assert_int_equal(ia, cur_ino());

	/* A second namespace, kept alive only by our fd. */
	assert_int_equal(unshare(CLONE_NEWNET), 0);
	b = netns_current();
	assert_true(b >= 0);
	ib = fd_ino(b);
	assert_int_not_equal(ia, ib);

	assert_int_equal(netns_enter(a), 0);
	assert_int_equal(cur_ino(), ia);
	assert_int_equal(netns_enter(b), 0);
	assert_int_equal(cur_ino(), ib);

	/* A tun link made in b is not visible from a. */
	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		struct ifreq ifr = { .ifr_flags = IFF_TUN | IFF_NO_PI };

		snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "nstest0");
		assert_int_equal(ioctl(fd, TUNSETIFF, &ifr), 0);
		assert_int_not_equal(if_nametoindex("nstest0"), 0);
		assert_int_equal(netns_enter(a), 0);
		assert_int_equal(if_nametoindex("nstest0"), 0);
		close(fd);
	}
	assert_int_equal(netns_enter(a), 0);
	close(b);
	close(a);
}

static void test_enter_path_restore(void **state)
{
	char path[64];
	int a, b, saved = -1;
	ino_t ia, ib;

	a = netns_current();
	assert_true(a >= 0);
	ia = fd_ino(a);
	assert_int_equal(unshare(CLONE_NEWNET), 0);
	b = netns_current();
	ib = fd_ino(b);
	assert_int_equal(netns_enter(a), 0);

	snprintf(path, sizeof(path), "/proc/self/fd/%d", b);
	assert_int_equal(netns_enter_path(path, &saved), 0);
	assert_true(saved >= 0);
	assert_int_equal(cur_ino(), ib);
	assert_int_equal(fd_ino(saved), ia);
	assert_int_equal(netns_restore(saved), 0);
	assert_int_equal(cur_ino(), ia);
	/* saved was closed by netns_restore */
	assert_int_equal(fcntl(saved, F_GETFD), -1);

	saved = -1;
	assert_int_equal(netns_enter_path("/nonexistent/ns", &saved), -ENOENT);
	assert_int_equal(saved, -1);
	assert_int_equal(cur_ino(), ia);
	close(b);
	close(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_missing),
		cmocka_unit_test(test_current_and_enter),
		cmocka_unit_test(test_enter_path_restore),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
