/*
 * The userspace implementation's process: start it for a name (create) and
 * stop it (delete). What it serves, the UAPI, is wg_uapi.c.
 */
#include "wg_uapi.h"
#include "sys.h"
#include "netdev.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WG_UAPI_CREATE_TIMEOUT_MS 5000
#define WG_UAPI_DELETE_WAIT_MS 3000

/* --- create ------------------------------------------------------------ */

/* impl itself when it has a '/', else the first executable in PATH. */
static int find_impl(const char *impl, char path[static PATH_MAX])
{
	const char *p, *env = getenv("PATH");
	size_t len;
	int n;

	if (!impl || !*impl)
		return -EINVAL;
	if (strchr(impl, '/')) {
		n = snprintf(path, PATH_MAX, "%s", impl);
		if (n < 0 || n >= PATH_MAX)
			return -ENAMETOOLONG;
		return access(path, X_OK) == 0 ? 0 : -ENOENT;
	}
	if (!env || !*env)
		env = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	for (p = env; *p; p += len + (p[len] == ':')) {
		struct stat st;

		len = strcspn(p, ":");
		n = snprintf(path, PATH_MAX, "%.*s/%s", (int)len, len ? p : ".", impl);
		if (n < 0 || n >= PATH_MAX)
			continue;
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0)
			return 0;
	}
	return -ENOENT;
}

/*
 * fork + exec impl with stdio on /dev/null: the daemon it leaves behind
 * must not hold a CNI runtime's pipe open (the runtime waits for our stdout
 * to close). It runs in the calling thread's namespace, which is where its
 * UDP socket will stay. setsid() so it is not killed with our process group.
 * Only async-signal-safe calls after fork(): the caller may have threads.
 */
static pid_t spawn(const char *path, const char *impl, const char *name)
{
	char *const argv[] = { (char *)impl, (char *)name, NULL };
	pid_t pid;
	int fd;

	pid = fork();
	if (pid != 0)
		return pid < 0 ? -errno : pid;
	fd = open("/dev/null", O_RDWR);
	if (fd < 0)
		_exit(127);
	if (dup2(fd, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
		_exit(127);
	if (fd > 2)
		close(fd);
	close_range(3, ~0U, 0);
	setsid();
	/* Pin no directory of the caller's (a runtime's bundle may go away). */
	if (chdir("/") < 0)
		_exit(127);
	execv(path, argv);
	_exit(127);
}

/* Block until process pid exits (an event through its pidfd, not a poll
 * loop) or ms pass; the caller reaps it. Falls back to returning at once
 * where pidfds are missing (the caller's loop then polls). */
static void wait_exit(pid_t pid, long ms)
{
	struct pollfd pfd = { .events = POLLIN };

	pfd.fd = pidfd_open(pid, 0);
	if (pfd.fd < 0)
		return;
	poll(&pfd, 1, (int)ms);
	close(pfd.fd);
}

int wg_uapi_create(const char *name, const char *impl)
{
	char path[PATH_MAX];
	int64_t deadline;
	const char *fg = getenv("WG_PROCESS_FOREGROUND");
	/* In the foreground (WG_PROCESS_FOREGROUND=1) the implementation never
	 * exits: the caller then owns it as a child, as it asked for. */
	bool reaped = false, foreground = fg && !strcmp(fg, "1");
	pid_t pid;
	int ret, status;

	ret = wg_uapi_check_name(name);
	if (ret < 0)
		return ret;
	if (wg_uapi_exists(name) || netdev_exists(name))
		return -EEXIST;
	ret = find_impl(impl, path);
	if (ret < 0)
		return ret;
	ret = (int)spawn(path, impl, name);
	if (ret < 0)
		return ret;
	pid = ret;

	/* wireguard-go creates the TUN and the socket, hands both to a
	 * re-executed daemon and exits: reap it, and wait for the socket. */
	deadline = sys_now_ms() + WG_UAPI_CREATE_TIMEOUT_MS;
	if (!foreground)
		wait_exit(pid, WG_UAPI_CREATE_TIMEOUT_MS);
	for (;;) {
		if (!reaped) {
			ret = waitpid(pid, &status, WNOHANG);
			if (ret == pid) {
				reaped = true;
				/* Exited without a daemon behind it. */
				if ((!WIFEXITED(status) || WEXITSTATUS(status) != 0) &&
				    !wg_uapi_exists(name))
					return WIFEXITED(status) && WEXITSTATUS(status) == 127 ?
						-ENOEXEC : -EIO;
			}
		}
		/* Ready once the daemon answers a request (the socket alone
		 * accepts as soon as the parent bound it, before the daemon has
		 * taken over the TUN: a link moved away in that window kills
		 * it) and the intermediate process is reaped, so a long-running
		 * caller keeps no zombie. */
		if ((reaped || foreground) && wg_uapi_ready(name, deadline - sys_now_ms()) == 0)
			break;
		if (sys_now_ms() > deadline) {
			if (!reaped) {
				kill(pid, SIGKILL);
				waitpid(pid, NULL, 0);
			}
			/* A daemon that never answered: the link is ours (none
			 * existed before), and deleting it ends the daemon. */
			netdev_delete(name);
			return -ETIMEDOUT;
		}
		poll(NULL, 0, 5);
	}
	return 0;
}

/* --- delete ------------------------------------------------------------- */

static bool wait_uapi_gone(const char *name)
{
	int64_t deadline = sys_now_ms() + WG_UAPI_DELETE_WAIT_MS;

	while (wg_uapi_exists(name)) {
		if (sys_now_ms() > deadline)
			return false;
		poll(NULL, 0, 20);
	}
	return true;
}

static bool holds_tun(const char *pid)
{
	char dir[300], path[600], target[32];
	struct dirent *de;
	bool found = false;
	ssize_t n;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%s/fd", pid);
	d = opendir(dir);
	if (!d)
		return false;
	while (!found && (de = readdir(d))) {
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		n = readlink(path, target, sizeof(target) - 1);
		if (n > 0) {
			target[n] = '\0';
			found = !strcmp(target, "/dev/net/tun");
		}
	}
	closedir(d);
	return found;
}

/*
 * The process serving name's UAPI socket: its command line is exactly
 * "<impl> <name>" and it holds a TUN. (SO_PEERCRED cannot tell: it names
 * the process that called listen(), wireguard-go's parent, which exited.)
 * 0, -ESRCH if none, -EBUSY if more than one matches.
 */
static int uapi_daemon_pid(const char *name, pid_t *out)
{
	char path[300], cmd[512];
	struct dirent *de;
	int fd, found = 0;
	size_t l0;
	ssize_t n;
	pid_t pid;
	DIR *d;

	d = opendir("/proc");
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		if (de->d_name[strspn(de->d_name, "0123456789")] || !*de->d_name)
			continue;
		snprintf(path, sizeof(path), "/proc/%s/cmdline", de->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, cmd, sizeof(cmd) - 1);
		close(fd);
		if (n <= 0)
			continue;
		cmd[n] = '\0';
		/* argv[0] NUL argv[1] NUL, nothing after */
		l0 = strlen(cmd);
		if (l0 + 1 >= (size_t)n || strcmp(cmd + l0 + 1, name) ||
		    l0 + 1 + strlen(name) + 1 != (size_t)n || !holds_tun(de->d_name))
			continue;
		pid = (pid_t)atoi(de->d_name);
		if (found++ == 0)
			*out = pid;
	}
	closedir(d);
	return found == 1 ? 0 : found ? -EBUSY : -ESRCH;
}

int wg_uapi_delete(const char *name)
{
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	bool existed = false;
	struct stat st;
	pid_t pid = 0;
	int ret;

	ret = wg_uapi_sock_path(name, path, sizeof(path));
	if (ret < 0)
		return ret;

	/* Deleting the link ends a userspace implementation too: its TUN
	 * goes away and it removes its socket on the way out. */
	ret = netdev_delete(name);
	if (ret == 0)
		existed = true;
	else if (ret != -ENODEV)
		return ret;

	if (wg_uapi_exists(name) && !(existed && wait_uapi_gone(name))) {
		/* The link lives in another namespace (or its deletion was not
		 * noticed): stop the process that serves the socket. */
		ret = uapi_daemon_pid(name, &pid);
		if (ret == 0 && kill(pid, SIGTERM) < 0)
			ret = -errno;
		if (ret < 0)
			return ret;
		existed = true;
		if (!wait_uapi_gone(name))
			return -ETIMEDOUT;
	}
	/* A socket nobody answers on is stale (the process died). */
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
		if (unlink(path) < 0 && errno != ENOENT)
			return -errno;
		existed = true;
	}
	return existed ? 0 : -ENODEV;
}
