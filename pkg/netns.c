/*
 * Network namespace switching, as iproute2's netns_switch(): open the
 * namespace file, setns() the calling thread into it. Only the network
 * namespace changes; we need no private /sys because we never read it.
 */
#include "netns.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

int netns_open(const char *path)
{
	int fd;

	if (!path || !*path)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	return fd;
}

int netns_current(void)
{
	/* thread-self: setns() moves only this thread, so /proc/self (the
	 * thread group leader) could name another namespace. */
	int fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	return fd;
}

int netns_enter(int fd)
{
	if (fd < 0)
		return -EBADF;
	if (setns(fd, CLONE_NEWNET) < 0)
		return -errno;
	return 0;
}

int netns_enter_path(const char *path, int *saved)
{
	int ret, fd, cur;

	if (!saved)
		return -EINVAL;
	ret = netns_open(path);
	if (ret < 0)
		return ret;
	fd = ret;

	ret = netns_current();
	if (ret < 0)
		goto err_close_fd;
	cur = ret;

	ret = netns_enter(fd);
	if (ret < 0)
		goto err_close_cur;

	close(fd);
	*saved = cur;
	return 0;

err_close_cur:
	close(cur);
err_close_fd:
	close(fd);
	return ret;
}

int netns_restore(int saved)
{
	int ret = netns_enter(saved);

	if (saved >= 0)
		close(saved);
	return ret;
}
