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

extern char **environ;

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

/* The environment plus WG_PROCESS_FOREGROUND=1 (any earlier value
 * dropped), built before fork(): the child may only make async-signal-safe
 * calls. Freed with free() (one block: the array, then nothing else: the
 * strings are environ's own). */
static char **foreground_env(void)
{
	static char fg[] = "WG_PROCESS_FOREGROUND=1";
	size_t n = 0, k = 0;
	char **env;

	while (environ && environ[n])
		n++;
	env = calloc(n + 2, sizeof(*env));
	if (!env)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "WG_PROCESS_FOREGROUND=", 22))
			env[k++] = environ[i];
	env[k++] = fg;
	env[k] = NULL;
	return env;
}

/* stdio on /dev/null: the daemon must not hold a CNI runtime's pipe open
 * (the runtime waits for our stdout to close); no other descriptor but
 * keep; setsid() so it is not killed with our process group; "/" so it
 * pins no directory of the caller's (a runtime's bundle may go away).
 * After fork(), async-signal-safe calls only. */
static void child_setup(int keep)
{
	int fd = open("/dev/null", O_RDWR);

	if (fd < 0 || dup2(fd, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
		_exit(127);
	if (fd > 2 && fd != keep)
		close(fd);
	if (keep >= 0 && keep != 3) {
		if (dup3(keep, 3, O_CLOEXEC) < 0)
			_exit(127);
		keep = 3;
	}
	close_range(keep >= 0 ? 4 : 3, ~0U, 0);
	setsid();
	if (chdir("/") < 0)
		_exit(127);
}

/*
 * The caller asked for the foreground (WG_PROCESS_FOREGROUND=1 in its own
 * environment): fork + exec impl, which stays the caller's child.
 */
static pid_t spawn_child(const char *path, const char *impl, const char *name)
{
	char *const argv[] = { (char *)impl, (char *)name, NULL };
	pid_t pid = fork();

	if (pid != 0)
		return pid < 0 ? -errno : pid;
	child_setup(-1);
	execv(path, argv);
	_exit(127);
}

/*
 * Otherwise: impl runs in the foreground (WG_PROCESS_FOREGROUND=1: no
 * re-executed daemon, one runtime start instead of two) as an orphan of a
 * double fork, so no caller ever has to reap it. The intermediate process
 * writes the daemon's PID into a close-on-exec pipe and exits; the daemon
 * writes errno there only if its exec fails, so end-of-file means it runs.
 * *pidfd: a pidfd of the daemon (or -1 where pidfds are missing).
 */
static int spawn_daemon(const char *path, const char *impl, const char *name, int *pidfd)
{
	char *const argv[] = { (char *)impl, (char *)name, NULL };
	int p[2], ret, err = 0, status;
	char **env = foreground_env();
	pid_t mid, pid = -1;
	ssize_t n;

	*pidfd = -1;
	if (!env)
		return -ENOMEM;
	if (pipe2(p, O_CLOEXEC) < 0) {
		ret = -errno;
		goto out_env;
	}
	mid = fork();
	if (mid < 0) {
		ret = -errno;
		goto out_pipe;
	}
	if (mid == 0) {
		child_setup(p[1]);
		pid = fork();
		if (pid == 0) {
			execve(path, argv, env);
			err = errno;
			(void)!write(3, &err, sizeof(err));
			_exit(127);
		}
		(void)!write(3, &pid, sizeof(pid));
		_exit(pid < 0 ? 126 : 0);
	}
	close(p[1]);
	p[1] = -1;
	while (waitpid(mid, &status, 0) < 0 && errno == EINTR)
		;
	ret = -EIO;
	n = read(p[0], &pid, sizeof(pid));
	if (n != sizeof(pid) || pid <= 0)
		goto out_pipe;
	/* Pin the daemon before anything else can happen to it. */
	*pidfd = pidfd_open(pid, 0);
	do
		n = read(p[0], &err, sizeof(err));
	while (n < 0 && errno == EINTR);
	if (n > 0) {
		ret = -ENOEXEC;
		goto out_pipe;
	}
	ret = pid;
out_pipe:
	if (ret < 0 && *pidfd >= 0) {
		close(*pidfd);
		*pidfd = -1;
	}
	close(p[0]);
	if (p[1] >= 0)
		close(p[1]);
out_env:
	free(env);
	return ret;
}

/* Caller-owned foreground child: the former behaviour, polled. */
static int create_child(const char *name, const char *path, const char *impl)
{
	int64_t deadline = sys_now_ms() + WG_UAPI_CREATE_TIMEOUT_MS;
	int ret, status;
	pid_t pid;

	ret = (int)spawn_child(path, impl, name);
	if (ret < 0)
		return ret;
	pid = ret;
	for (;;) {
		ret = waitpid(pid, &status, WNOHANG);
		if (ret == pid)
			return WIFEXITED(status) && WEXITSTATUS(status) == 127 ? -ENOEXEC : -EIO;
		if (wg_uapi_ready(name, deadline - sys_now_ms()) == 0)
			return 0;
		if (sys_now_ms() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			netdev_delete(name);
			return -ETIMEDOUT;
		}
		poll(NULL, 0, 5);
	}
}

/*
 * How often the wait for the daemon's socket looks (a connect() that fails
 * with ENOENT costs microseconds). Not inotify: closing an inotify
 * descriptor that holds a watch waits for an SRCU grace period, measured
 * here at up to 25 ms, longer than the whole wait.
 */
#define WG_UAPI_CREATE_POLL_MS 1

int wg_uapi_create(const char *name, const char *impl)
{
	const char *fg = getenv("WG_PROCESS_FOREGROUND");
	struct pollfd pfd = { .fd = -1, .events = POLLIN };
	char path[PATH_MAX];
	bool exited = false;
	int64_t deadline;
	pid_t pid;
	int ret;

	ret = wg_uapi_check_name(name);
	if (ret < 0)
		return ret;
	if (wg_uapi_exists(name) || netdev_exists(name))
		return -EEXIST;
	ret = find_impl(impl, path);
	if (ret < 0)
		return ret;
	/* In the foreground (the caller's own WG_PROCESS_FOREGROUND=1) the
	 * implementation is the caller's child, as it asked for. */
	if (fg && !strcmp(fg, "1"))
		return create_child(name, path, impl);

	deadline = sys_now_ms() + WG_UAPI_CREATE_TIMEOUT_MS;
	ret = spawn_daemon(path, impl, name, &pfd.fd);
	if (ret < 0)
		goto out;
	pid = ret;
	for (;;) {
		/* Ready once the daemon answers a request (the socket alone may
		 * accept before the implementation serves it). */
		if (wg_uapi_ready(name, deadline - sys_now_ms()) == 0) {
			ret = 0;
			break;
		}
		/* Exited: fine only with a daemon of its own behind the socket
		 * (an implementation that daemonizes by itself leaves its socket
		 * before its first process exits). */
		if (exited || (pfd.fd < 0 && kill(pid, 0) < 0 && errno == ESRCH)) {
			ret = wg_uapi_ready(name, deadline - sys_now_ms()) == 0 ? 0 : -EIO;
			break;
		}
		if (sys_now_ms() > deadline) {
			if (pfd.fd < 0 || pidfd_send_signal(pfd.fd, SIGKILL, NULL, 0) < 0)
				kill(pid, SIGKILL);
			/* A daemon that never answered: the link is ours (none
			 * existed before), and deleting it ends the daemon. */
			netdev_delete(name);
			ret = -ETIMEDOUT;
			break;
		}
		/* Until the daemon exits (its pidfd), or the next look. */
		if (pfd.fd >= 0) {
			if (poll(&pfd, 1, WG_UAPI_CREATE_POLL_MS) > 0)
				exited = true;
		} else {
			poll(NULL, 0, WG_UAPI_CREATE_POLL_MS);
		}
	}
out:
	if (pfd.fd >= 0)
		close(pfd.fd);
	return ret;
}

/* --- delete ------------------------------------------------------------- */

/*
 * The daemon removes its socket first thing on the way out, within a few
 * milliseconds of losing its TUN: look every millisecond (a refused
 * connect, microseconds). No inotify: closing an inotify descriptor waits
 * for an SRCU grace period, longer than the whole wait usually is.
 */
static bool wait_uapi_gone(const char *name)
{
	int64_t deadline = sys_now_ms() + WG_UAPI_DELETE_WAIT_MS;

	while (wg_uapi_exists(name)) {
		if (sys_now_ms() > deadline)
			return false;
		poll(NULL, 0, 1);
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

/* --- socket buffers ------------------------------------------------------ */

/* A UDP socket (of either family) behind fd. */
static bool is_udp(int fd)
{
	int domain, type;
	socklen_t len = sizeof(int);

	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0)
		return false;
	len = sizeof(int);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
		return false;
	return (domain == AF_INET || domain == AF_INET6) && type == SOCK_DGRAM;
}

/* The FORCE options pass net.core.[rw]mem_max with CAP_NET_ADMIN; without
 * it the plain ones get what the limit allows. */
static int set_buffers(int fd, int bytes)
{
	static const int opts[][2] = {
		{ SO_RCVBUFFORCE, SO_RCVBUF },
		{ SO_SNDBUFFORCE, SO_SNDBUF },
	};

	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		if (setsockopt(fd, SOL_SOCKET, opts[i][0], &bytes, sizeof(bytes)) == 0)
			continue;
		if (setsockopt(fd, SOL_SOCKET, opts[i][1], &bytes, sizeof(bytes)) < 0)
			return -errno;
	}
	return 0;
}

/*
 * Each UDP socket of the daemon is borrowed with pidfd_getfd(2) (the same
 * socket, so the sizes stick after our copy is closed) and resized.
 */
int wg_uapi_socket_buffers(const char *name, int bytes)
{
	char dir[64], path[320], target[64], pidbuf[16];
	int ret, pidfd, fd, n_udp = 0;
	struct dirent *de;
	pid_t pid;
	ssize_t n;
	DIR *d;

	ret = wg_uapi_listener_pid(name, &pid);
	if (ret < 0)
		return ret;
	snprintf(pidbuf, sizeof(pidbuf), "%d", (int)pid);
	/* The listener must be the daemon itself (WG_PROCESS_FOREGROUND, as
	 * wg_create starts it), not an exited parent whose PID was reused. */
	pidfd = pidfd_open(pid, 0);
	if (pidfd < 0)
		return -errno;
	if (!holds_tun(pidbuf)) {
		ret = -ESRCH;
		goto out_pidfd;
	}
	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	d = opendir(dir);
	if (!d) {
		ret = -errno;
		goto out_pidfd;
	}
	while (ret == 0 && (de = readdir(d))) {
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		n = readlink(path, target, sizeof(target) - 1);
		if (n <= 0)
			continue;
		target[n] = '\0';
		if (strncmp(target, "socket:", 7))
			continue;
		fd = pidfd_getfd(pidfd, atoi(de->d_name), 0);
		if (fd < 0) {
			/* Closed meanwhile: not a socket of ours any more. */
			if (errno != EBADF)
				ret = -errno;
			continue;
		}
		if (is_udp(fd)) {
			ret = set_buffers(fd, bytes);
			n_udp++;
		}
		close(fd);
	}
	closedir(d);
	if (ret == 0 && n_udp == 0)
		ret = -ENOENT;
out_pidfd:
	close(pidfd);
	return ret;
}
