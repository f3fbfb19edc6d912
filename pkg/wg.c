/*
 * The one place that picks a backend, as wireguard-tools' ipc.c: each
 * operation goes to userspace (wg_uapi.c) if name's UAPI socket exists,
 * else to the kernel's generic netlink family (wg_genl.c). Nothing here
 * knows how either backend works.
 */
#include "wg.h"
#include "netdev.h"
#include "wg_genl.h"
#include "wg_uapi.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#define WG_DEFAULT_IMPL "wireguard-go"

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

/* In netns_fd, or ours for -1. Without the module the kernel refuses the
 * kind (-EOPNOTSUPP): no probe of the family first. */
static int create_kernel(const char *name, int netns_fd, unsigned int mtu)
{
	/* A userspace device of that name would answer in its place here;
	 * another namespace's link names are its own. */
	if (netns_fd < 0 && wg_uapi_exists(name))
		return -EEXIST;
	return wg_kernel_create_in(name, netns_fd, mtu);
}

int wg_create(const char *name, enum wg_backend backend, const char *impl)
{
	if (!name || !*name || strlen(name) >= IFNAMSIZ)
		return -EINVAL;
	switch (wg_backend_resolve(backend)) {
	case WG_BACKEND_KERNEL:
		return create_kernel(name, -1, 0);
	case WG_BACKEND_USERSPACE:
		return wg_uapi_create(name, impl && *impl ? impl : WG_DEFAULT_IMPL);
	default:
		return -EINVAL;
	}
}

int wg_create_kernel_in(const char *name, int netns_fd, unsigned int mtu)
{
	if (!name || !*name || strlen(name) >= IFNAMSIZ || netns_fd < 0)
		return -EINVAL;
	return create_kernel(name, netns_fd, mtu);
}

int wg_delete(const char *name)
{
	int ret;

	if (!name || !*name || strlen(name) >= IFNAMSIZ || strchr(name, '/'))
		return -EINVAL;
	/* Here a stale socket counts too: deleting removes it. */
	ret = wg_uapi_has_socket(name);
	if (ret < 0)
		return ret;
	return ret ? wg_uapi_delete(name) : wg_kernel_delete(name);
}

int wg_backend_of(const char *name)
{
	if (wg_uapi_exists(name))
		return WG_BACKEND_USERSPACE;
	if (wg_kernel_exists(name))
		return WG_BACKEND_KERNEL;
	return -ENODEV;
}

/* Without the kernel family a name that is no link (of any kind) is simply
 * absent. */
static int kernel_errno(const char *name, int ret)
{
	return ret == -EOPNOTSUPP && !netdev_exists(name) ? -ENODEV : ret;
}

int wg_socket_buffers(const char *name, int bytes)
{
	int ret;

	if (!name || bytes <= 0)
		return -EINVAL;
	ret = wg_uapi_socket_buffers(name, bytes);
	/* No socket answers: a kernel device (or none), nothing to size. */
	return ret == -ENODEV ? 0 : ret;
}

int wg_set(const struct wg_device *dev)
{
	if (!dev)
		return -EINVAL;
	if (wg_uapi_exists(dev->name))
		return wg_uapi_set(dev);
	return kernel_errno(dev->name, wg_kernel_set(dev));
}

int wg_get_from(const char *name, enum wg_backend backend, struct wg_device **dev)
{
	if (!name || !dev)
		return -EINVAL;
	switch (backend) {
	case WG_BACKEND_AUTO:
		if (wg_uapi_exists(name))
			return wg_uapi_get(name, dev);
		return kernel_errno(name, wg_kernel_get(name, dev));
	case WG_BACKEND_KERNEL:
		return kernel_errno(name, wg_kernel_get(name, dev));
	case WG_BACKEND_USERSPACE:
		return wg_uapi_get(name, dev);
	default:
		return -EINVAL;
	}
}

int wg_get(const char *name, struct wg_device **dev)
{
	return wg_get_from(name, WG_BACKEND_AUTO, dev);
}
