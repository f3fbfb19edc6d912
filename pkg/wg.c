/*
 * The one place that picks a backend, as wireguard-tools' ipc.c: a name
 * whose UAPI socket answers is userspace (wg_uapi.c), anything else is the
 * kernel's generic netlink family (wg_genl.c).
 */
#include "wg.h"
#include "netdev.h"
#include "wg_uapi.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define WG_DEFAULT_IMPL "wireguard-go"
#define WG_DELETE_WAIT_MS 3000

static const struct {
	const char *name;
	enum wg_backend backend;
} backends[] = {
	{ "auto", WG_BACKEND_AUTO },
	{ "kernel", WG_BACKEND_KERNEL },
	{ "userspace", WG_BACKEND_USERSPACE },
};

int wg_backend_parse(const char *s, enum wg_backend *out)
{
	size_t i;

	for (i = 0; s && i < sizeof(backends) / sizeof(backends[0]); i++) {
		if (!strcmp(s, backends[i].name)) {
			*out = backends[i].backend;
			return 0;
		}
	}
	return -EINVAL;
}

const char *wg_backend_name(enum wg_backend b)
{
	size_t i;

	for (i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (backends[i].backend == b)
			return backends[i].name;
	return "unknown";
}

enum wg_backend wg_backend_resolve(enum wg_backend requested)
{
	if (requested != WG_BACKEND_AUTO)
		return requested;
	return wg_kernel_family_available() > 0 ? WG_BACKEND_KERNEL : WG_BACKEND_USERSPACE;
}

int wg_create(const char *name, enum wg_backend backend, const char *impl)
{
	if (!name || !*name || strlen(name) >= IFNAMSIZ)
		return -EINVAL;
	switch (wg_backend_resolve(backend)) {
	case WG_BACKEND_KERNEL:
		if (wg_uapi_exists(name))
			return -EEXIST;
		if (wg_kernel_family_available() <= 0)
			return -EOPNOTSUPP;
		return wg_kernel_create(name);
	case WG_BACKEND_USERSPACE:
		return wg_uapi_create(name, impl && *impl ? impl : WG_DEFAULT_IMPL);
	default:
		return -EINVAL;
	}
}

int wg_backend_of(const char *name)
{
	struct netdev_info info;

	if (wg_uapi_exists(name))
		return WG_BACKEND_USERSPACE;
	if (netdev_get(name, &info) == 0 && !strcmp(info.kind, "wireguard"))
		return WG_BACKEND_KERNEL;
	return -ENODEV;
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static bool wait_uapi_gone(const char *name)
{
	long deadline = now_ms() + WG_DELETE_WAIT_MS;

	while (wg_uapi_exists(name)) {
		if (now_ms() > deadline)
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

int wg_delete(const char *name)
{
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	bool existed = false;
	struct stat st;
	pid_t pid = 0;
	int ret;

	if (!name || !*name || strlen(name) >= IFNAMSIZ || strchr(name, '/'))
		return -EINVAL;
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

/* Without the kernel family a name that is no link is simply absent. */
static int kernel_errno(const char *name, int ret)
{
	return ret == -EOPNOTSUPP && !netdev_exists(name) ? -ENODEV : ret;
}

int wg_set(const struct wg_device *dev)
{
	if (!dev)
		return -EINVAL;
	if (wg_uapi_exists(dev->name))
		return wg_uapi_set(dev);
	return kernel_errno(dev->name, wg_kernel_set(dev));
}

int wg_get(const char *name, struct wg_device **dev)
{
	if (!name || !dev)
		return -EINVAL;
	if (wg_uapi_exists(name))
		return wg_uapi_get(name, dev);
	return kernel_errno(name, wg_kernel_get(name, dev));
}

void wg_peer_clear(struct wg_peer *peer)
{
	if (!peer)
		return;
	free(peer->allowedips);
	sodium_memzero(peer, sizeof(*peer));
}

void wg_device_free(struct wg_device *dev)
{
	size_t i;

	if (!dev)
		return;
	for (i = 0; i < dev->n_peers; i++)
		wg_peer_clear(&dev->peers[i]);
	free(dev->peers);
	sodium_memzero(dev, sizeof(*dev));
	free(dev);
}

int wg_peer_add_allowedip(struct wg_peer *peer, const struct ipnet *net)
{
	struct ipnet *v;

	if (!peer || !net || (net->addr.family != AF_INET && net->addr.family != AF_INET6) ||
	    net->prefixlen > ipaddr_bits(&net->addr))
		return -EINVAL;
	/* Grow geometrically; an array the caller sized (cap 0) is full, and
	 * no array has no room (a struct copied and emptied keeps a stale cap). */
	if (!peer->allowedips)
		peer->cap_allowedips = 0;
	if (peer->n_allowedips >= peer->cap_allowedips) {
		size_t cap = peer->n_allowedips < 4 ? 8 : peer->n_allowedips * 2;

		v = reallocarray(peer->allowedips, cap, sizeof(*v));
		if (!v)
			return -ENOMEM;
		peer->allowedips = v;
		peer->cap_allowedips = cap;
	}
	peer->allowedips[peer->n_allowedips++] = *net;
	return 0;
}

struct wg_peer *wg_device_add_peer(struct wg_device *dev)
{
	struct wg_peer *peers, *p;

	if (!dev->peers)
		dev->cap_peers = 0;
	if (dev->n_peers >= dev->cap_peers) {
		size_t cap = dev->n_peers < 4 ? 8 : dev->n_peers * 2;

		peers = reallocarray(dev->peers, cap, sizeof(*peers));
		if (!peers) {
			errno = ENOMEM;
			return NULL;
		}
		dev->peers = peers;
		dev->cap_peers = cap;
	}
	p = &dev->peers[dev->n_peers++];
	memset(p, 0, sizeof(*p));
	return p;
}
