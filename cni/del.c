/*
 * DEL: best effort and idempotent. Whatever is already gone is fine: an
 * empty CNI_NETNS (containerd), a deleted namespace, a missing interface,
 * an unknown allocation. Only an unreachable node manager fails (code 11):
 * the allocation and the node's peer would otherwise leak, and the runtime
 * retries DEL on error.
 */
#include "cni.h"

#include "key.h"
#include "log.h"
#include "netdev.h"
#include "nmclient.h"
#include "wg.h"

#include <errno.h>
#include <sodium.h>
#include <stdbool.h>
#include <string.h>

/*
 * A kernel WireGuard link whose public key is pub: the one ADD made. Asked
 * of the kernel only: the UAPI socket directory is global, so a userspace
 * device elsewhere may be named as the container's interface.
 */
static bool del_link_has_key(const char *ifname, const uint8_t pub[static WG_KEY_LEN])
{
	struct wg_device *dev = NULL;
	bool same;

	if (wg_get_from(ifname, WG_BACKEND_KERNEL, &dev) < 0)
		return false;
	same = !sodium_memcmp(dev->public_key, pub, WG_KEY_LEN);
	wg_device_free(dev);
	return same;
}

/*
 * Our interface in the container at netns, if the namespace and the link
 * exist: its deletion asked for (netdev_unregister_start), *u to wait on.
 * With pub, only a kernel WireGuard link with that public key: the path
 * then comes from the node manager's record, and a /proc/PID path may
 * meanwhile name another process's namespace.
 */
static void del_container_link_start(struct cni_ctx *ctx, const char *netns,
				     const uint8_t *pub, struct netdev_unreg *u)
{
	struct cni_err ignore = { 0 };
	struct netdev_info info;
	struct cni_ns ns;
	int ret;

	*u = NETDEV_UNREG_NONE;
	if (!netns || !netns[0])
		return;
	ret = cni_ns_open(&ns, netns, &ignore);
	if (ret) {
		if (ret != -ENOENT)
			log_warnx("cannot open the container namespace", "netns=%s err=%s",
				  netns, strerror(-ret));
		return;
	}
	if (cni_ns_enter(&ns, &ignore))
		goto out_close;
	ret = netdev_get(ctx->env.ifname, &info);
	if (!ret && pub && (strcmp(info.kind, "wireguard") ||
			    !del_link_has_key(ctx->env.ifname, pub)))
		ret = -ENODEV;
	if (!ret) {
		/* Only what ADD makes: a WireGuard link or wireguard-go's TUN. */
		if (!strcmp(info.kind, "wireguard") || !strcmp(info.kind, "tun"))
			netdev_unregister_start(ctx->env.ifname, u);
		else
			log_warnx("not deleting an interface wgcni did not make",
				  "ifname=%s kind=%s", ctx->env.ifname, info.kind);
	}
	cni_ns_leave(&ns, &ignore);
out_close:
	cni_ns_close(&ns);
}

static void del_container_link_wait(struct cni_ctx *ctx, struct netdev_unreg *u)
{
	int ret = netdev_unregister_wait(u);

	if (ret && ret != -ENODEV)
		log_warnx("cannot delete the container interface", "ifname=%s err=%s",
			  ctx->env.ifname, strerror(-ret));
}

/*
 * An empty CNI_NETNS (containerd 1.6 on DEL): a wireguard-go TUN goes with
 * its process (wg_delete of the temporary name below), but a kernel link
 * stays in a namespace that outlived the container. Use the namespace the
 * node manager recorded at ADD, if it still exists. Best effort.
 */
static void del_recorded_link(struct cni_ctx *ctx, struct nmc *nm)
{
	Wgcni__Node__V1__ListAllocationsRequest req = WGCNI__NODE__V1__LIST_ALLOCATIONS_REQUEST__INIT;
	Wgcni__Node__V1__ListAllocationsResponse *resp;
	struct cni_err ignore = { 0 };
	struct netdev_unreg u;
	uint8_t pub[WG_KEY_LEN];
	ProtobufCMessage *out;

	if (nmc_call(nm, "ListAllocations", &req.base,
		    &wgcni__node__v1__list_allocations_response__descriptor, &out,
		    CONNECT_OK, &ignore))
		return;
	resp = (Wgcni__Node__V1__ListAllocationsResponse *)out;
	for (size_t i = 0; i < resp->n_allocations; i++) {
		const Wgcni__Node__V1__Allocation *a = resp->allocations[i];

		if (strcmp(a->container_id, ctx->env.containerid) ||
		    strcmp(a->ifname, ctx->env.ifname))
			continue;
		if (a->netns[0] && !key_from_base64(pub, a->public_key, NULL, 0)) {
			del_container_link_start(ctx, a->netns, pub, &u);
			del_container_link_wait(ctx, &u);
		}
		break;
	}
	protobuf_c_message_free_unpacked(out, NULL);
}

int cni_cmd_del(struct cni_ctx *ctx)
{
	Wgcni__Node__V1__ReleaseRequest req = WGCNI__NODE__V1__RELEASE_REQUEST__INIT;
	struct cni_err *e = &ctx->err;
	ProtobufCMessage *out;
	struct netdev_unreg u = NETDEV_UNREG_NONE;
	char tmp[IFNAMSIZ];
	struct nmc *nm;
	int ret, ret2;

	nm = nmc_open(ctx->conf.node_manager, e);
	if (!nm)
		return -EINVAL;

	/* The container's link is asked to go, and Release runs while the
	 * kernel unregisters it; with an empty CNI_NETNS the node manager's
	 * record says where it is, which Release would drop: first that,
	 * then Release. */
	if (ctx->env.netns[0])
		del_container_link_start(ctx, ctx->env.netns, NULL, &u);
	else
		del_recorded_link(ctx, nm);

	/* Release also removes the container's peer from the node interface. */
	req.container_id = (char *)ctx->env.containerid;
	req.ifname = (char *)ctx->env.ifname;
	ret = nmc_call(nm, "Release", &req.base, &wgcni__node__v1__release_response__descriptor,
		      &out, CONNECT_NOT_FOUND, e);
	if (!ret)
		protobuf_c_message_free_unpacked(out, NULL);
	del_container_link_wait(ctx, &u);

	/* A link that never left the host (ADD died midway), or the stale
	 * UAPI socket of a userspace process that is gone: after the
	 * container's link, whose end also ends that process. */
	ret2 = cni_tmp_ifname(ctx->env.containerid, ctx->env.ifname, tmp);
	if (!ret2) {
		ret2 = wg_delete(tmp);
		if (ret2 && ret2 != -ENODEV)
			log_warnx("cannot delete the temporary WireGuard device",
				  "name=%s err=%s", tmp, strerror(-ret2));
	}
	nmc_close(nm);
	return ret < 0 ? ret : 0;
}
