#include "cni.h"

#include "netns.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int cni_ns_open(struct cni_ns *ns, const char *path, struct cni_err *e)
{
	int ret;

	ns->host = ns->target = -1;
	ns->path = path;
	ret = netns_open(path);
	if (ret == -ENOENT)
		return cni_fail(e, CNI_ERR_UNKNOWN_CONTAINER, ret,
				"container network namespace does not exist", "CNI_NETNS=%s",
				path);
	if (ret < 0)
		return cni_fail(e, CNI_ERR_IO, ret, "cannot open container network namespace",
				"CNI_NETNS=%s: %s", path, strerror(-ret));
	ns->target = ret;
	ret = netns_current();
	if (ret < 0) {
		close(ns->target);
		ns->target = -1;
		return cni_fail(e, CNI_ERR_IO, ret, "cannot open the current network namespace",
				"%s", strerror(-ret));
	}
	ns->host = ret;
	return 0;
}

int cni_ns_enter(struct cni_ns *ns, struct cni_err *e)
{
	int ret = netns_enter(ns->target);

	if (ret == -EINVAL)
		return cni_fail(e, CNI_ERR_INVALID_ENV, ret,
				"CNI_NETNS is not a network namespace", "%s", ns->path);
	if (ret)
		return cni_fail(e, CNI_ERR_IO, ret, "cannot enter container network namespace",
				"%s: %s", ns->path, strerror(-ret));
	return 0;
}

int cni_ns_leave(struct cni_ns *ns, struct cni_err *e)
{
	int ret = netns_enter(ns->host);

	if (ret)
		return cni_fail(e, CNI_ERR_IO, ret, "cannot return to the runtime's network namespace",
				"%s", strerror(-ret));
	return 0;
}

void cni_ns_close(struct cni_ns *ns)
{
	if (!ns)
		return;
	if (ns->target >= 0)
		close(ns->target);
	if (ns->host >= 0)
		close(ns->host);
	ns->host = ns->target = -1;
}

int cni_ns_wg_set(struct cni_ns *ns, const struct wg_device *dev)
{
	struct cni_err ignore = { 0 };
	int ret, ret2;

	ret = cni_ns_enter(ns, &ignore);
	if (ret)
		return ret;
	ret = wg_set(dev);
	ret2 = cni_ns_leave(ns, &ignore);
	return ret ? ret : ret2;
}

int cni_link_wg_set(struct cni_link *l, struct wg_device *dev)
{
	if (l->backend == WG_BACKEND_USERSPACE) {
		snprintf(dev->name, sizeof(dev->name), "%s", l->tmp);
		return wg_set(dev);
	}
	snprintf(dev->name, sizeof(dev->name), "%s", l->ifname);
	return cni_ns_wg_set(l->ns, dev);
}

int cni_link_wg_get(struct cni_link *l, struct wg_device **dev)
{
	struct cni_err ignore = { 0 };
	int ret, ret2;

	*dev = NULL;
	if (l->backend == WG_BACKEND_USERSPACE)
		return wg_get(l->tmp, dev);
	ret = cni_ns_enter(l->ns, &ignore);
	if (ret)
		return ret;
	ret = wg_get(l->ifname, dev);
	ret2 = cni_ns_leave(l->ns, &ignore);
	if (!ret && ret2) {
		wg_device_free(*dev);
		*dev = NULL;
	}
	return ret ? ret : ret2;
}

void cni_sleep_ms(unsigned int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}
