/*
 * DEL: best effort and idempotent. Whatever is already gone is fine: an
 * empty CNI_NETNS (containerd), a deleted namespace, a missing interface,
 * an unknown allocation. Only an unreachable node manager fails (code 11):
 * the allocation and the node's peer would otherwise leak, and the runtime
 * retries DEL on error.
 */
#include "cni.h"

#include "log.h"
#include "netdev.h"
#include "nm.h"

#include <errno.h>
#include <string.h>

/* Our interface in the container, if the namespace and the link exist. */
static void del_container_link(struct cni_ctx *ctx)
{
	struct cni_err ignore = { 0 };
	struct netdev_info info;
	struct cni_ns ns;
	int ret;

	if (!ctx->env.netns[0])
		return;
	ret = cni_ns_open(&ns, ctx->env.netns, &ignore);
	if (ret) {
		if (ret != -ENOENT)
			log_warnx("cannot open the container namespace", "netns=%s err=\"%s\"",
				  ctx->env.netns, strerror(-ret));
		return;
	}
	if (cni_ns_enter(&ns, &ignore))
		goto out_close;
	ret = netdev_get(ctx->env.ifname, &info);
	if (!ret) {
		/* Only what ADD makes: a WireGuard link or wireguard-go's TUN. */
		if (!strcmp(info.kind, "wireguard") || !strcmp(info.kind, "tun")) {
			ret = netdev_delete(ctx->env.ifname);
			if (ret && ret != -ENODEV)
				log_warnx("cannot delete the container interface",
					  "ifname=%s err=\"%s\"", ctx->env.ifname, strerror(-ret));
		} else {
			log_warnx("not deleting an interface wgcni did not make",
				  "ifname=%s kind=%s", ctx->env.ifname, info.kind);
		}
	}
	cni_ns_leave(&ns, &ignore);
out_close:
	cni_ns_close(&ns);
}

int cni_cmd_del(struct cni_ctx *ctx)
{
	Wgcni__Node__V1__ReleaseRequest req = WGCNI__NODE__V1__RELEASE_REQUEST__INIT;
	struct cni_err *e = &ctx->err;
	ProtobufCMessage *out;
	char tmp[IFNAMSIZ];
	struct nm *nm;
	int ret;

	nm = nm_open(ctx->conf.node_manager, e);
	if (!nm)
		return -EINVAL;

	del_container_link(ctx);
	/* A link that never left the host (ADD died midway), or the stale
	 * UAPI socket of a userspace process that is gone. */
	ret = cni_tmp_ifname(ctx->env.containerid, ctx->env.ifname, tmp);
	if (!ret) {
		ret = wg_delete(tmp);
		if (ret && ret != -ENODEV)
			log_warnx("cannot delete the temporary WireGuard device",
				  "name=%s err=\"%s\"", tmp, strerror(-ret));
	}

	/* Release also removes the container's peer from the node interface. */
	req.container_id = (char *)ctx->env.containerid;
	req.ifname = (char *)ctx->env.ifname;
	ret = nm_call(nm, "Release", &req.base, &wgcni__node__v1__release_response__descriptor,
		      &out, CONNECT_NOT_FOUND, e);
	if (!ret)
		protobuf_c_message_free_unpacked(out, NULL);
	nm_close(nm);
	return ret < 0 ? ret : 0;
}
