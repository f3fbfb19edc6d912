/*
 * ADD: attach a container.
 *
 *   kernel: AllocateIP first, for the MTU the device is born with
 *   create wgcXXXXXXXXXXXX so its UDP socket stays on the host: kernel
 *     directly in CNI_NETNS from the runtime's namespace (WireGuard keeps
 *     the namespace it was created from); userspace in the runtime's
 *     namespace                                             undo: delete link
 *   private key
 *   userspace: move into CNI_NETNS (in a child process: the kernel sleeps
 *     in an RCU barrier for ~20 ms), and meanwhile
 *     AllocateIP          -> addresses, gateway, MTU        undo: Release
 *     and, when the device has bound its UDP port already (wireguard-go
 *     does as it starts), the three steps below marked *
 *   rename to CNI_IFNAME, MTU (userspace), up: one request; addresses
 *   otherwise (kernel: it binds when up) read the port now, then
 * * userspace: size the UDP socket's buffers (wg_socket_buffers)
 * * RegisterKey(public key, 127.0.0.1:port, containerMesh) -> node peer
 *     (undone by Release; with containerMesh the node manager also peers
 *     the device with the node's other mesh containers)
 * * peer = node interface, AllowedIPs 0.0.0.0/0 and ::/0, keepalive 25 s
 *   default route(s) through CNI_IFNAME
 *
 * Any failure unwinds in reverse: the link is deleted wherever it is (which
 * also ends a userspace process), a stale UAPI socket removed, and the
 * allocation released, which drops the peer on the node as well.
 */
#include "cni.h"

#include "ipnet.h"
#include "key.h"
#include "log.h"
#include "netdev.h"
#include "nmclient.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ADD_MAX_ADDRS 4
/* A kernel device binds its port when it goes up: poll for it (one get
 * each, a fraction of a millisecond), for 5 s at most. */
#define ADD_PORT_POLL_MS 2
#define ADD_PORT_POLLS 2500
#define ADD_KEEPALIVE_S 25

struct add {
	struct cni_ctx *ctx;
	struct nmc *nm;
	struct cni_ns ns;
	struct cni_link link;
	Wgcni__Node__V1__GetNodeResponse *node;
	Wgcni__Node__V1__RegisterKeyResponse *reg;
	struct ipnet addrs[ADD_MAX_ADDRS];
	size_t n_addrs;
	struct ipaddr gateway;
	bool has_gateway;
	unsigned int mtu;
	uint8_t public_key[WG_KEY_LEN];
	uint16_t port;
	bool created;  /* the device exists, ours to delete */
	bool in_netns; /* the link is in the container (moved or born there) */
	bool renamed;  /* ... and carries CNI_IFNAME */
};

static int add_ifname_free(struct add *a)
{
	struct cni_err *e = &a->ctx->err;
	bool taken;
	int ret;

	ret = cni_ns_enter(&a->ns, e);
	if (ret)
		return ret;
	taken = netdev_exists(a->link.ifname);
	ret = cni_ns_leave(&a->ns, e);
	if (ret)
		return ret;
	if (taken)
		return cni_fail(e, CNI_ERR_EXISTS, -EEXIST,
				"interface already exists in the container",
				"CNI_IFNAME=%s in %s", a->link.ifname, a->ctx->env.netns);
	return 0;
}

static int add_allocate(struct add *a)
{
	Wgcni__Node__V1__AllocateIPRequest req = WGCNI__NODE__V1__ALLOCATE_IPREQUEST__INIT;
	Wgcni__Node__V1__AllocateIPResponse *resp;
	struct cni_err *e = &a->ctx->err;
	ProtobufCMessage *out;
	int ret;

	req.container_id = (char *)a->ctx->env.containerid;
	req.ifname = (char *)a->ctx->env.ifname;
	req.netns = (char *)a->ctx->env.netns;
	ret = nmc_call(a->nm, "AllocateIP", &req.base,
		      &wgcni__node__v1__allocate_ipresponse__descriptor, &out, CONNECT_OK, e);
	if (ret)
		return ret;
	resp = (Wgcni__Node__V1__AllocateIPResponse *)out;

	/* From here the allocation exists: the caller releases it on error. */
	ret = -EPROTO;
	if (resp->n_addresses == 0 || resp->n_addresses > ADD_MAX_ADDRS) {
		cni_fail(e, CNI_ERR_NODE_MANAGER, ret, "node manager sent an invalid allocation",
			 "AllocateIP: %zu addresses", resp->n_addresses);
		goto out_free;
	}
	for (size_t i = 0; i < resp->n_addresses; i++) {
		if (ipnet_parse_host(resp->addresses[i], &a->addrs[i])) {
			cni_fail(e, CNI_ERR_NODE_MANAGER, ret,
				 "node manager sent an invalid address",
				 "AllocateIP: `%.64s'", resp->addresses[i]);
			goto out_free;
		}
	}
	a->n_addrs = resp->n_addresses;
	if (resp->gateway && *resp->gateway) {
		if (ipaddr_parse(resp->gateway, &a->gateway)) {
			cni_fail(e, CNI_ERR_NODE_MANAGER, ret,
				 "node manager sent an invalid gateway",
				 "AllocateIP: `%.64s'", resp->gateway);
			goto out_free;
		}
		a->has_gateway = true;
	}
	a->mtu = a->ctx->conf.mtu ? a->ctx->conf.mtu :
		 resp->mtu ? resp->mtu :
		 a->node->node->mtu ? a->node->node->mtu : CNI_DEFAULT_MTU;
	ret = 0;
out_free:
	protobuf_c_message_free_unpacked(out, NULL);
	return ret;
}

static int add_release(struct add *a)
{
	Wgcni__Node__V1__ReleaseRequest req = WGCNI__NODE__V1__RELEASE_REQUEST__INIT;
	struct cni_err ignore = { 0 };
	ProtobufCMessage *out;
	int ret;

	req.container_id = (char *)a->ctx->env.containerid;
	req.ifname = (char *)a->ctx->env.ifname;
	ret = nmc_call(a->nm, "Release", &req.base,
		      &wgcni__node__v1__release_response__descriptor, &out,
		      CONNECT_NOT_FOUND, &ignore);
	if (ret < 0)
		log_warnx("cannot release the allocation while undoing ADD",
			  "container=%s ifname=%s msg=%s details=%s",
			  a->ctx->env.containerid, a->ctx->env.ifname, ignore.msg,
			  ignore.details);
	if (!ret)
		protobuf_c_message_free_unpacked(out, NULL);
	return ret < 0 ? ret : 0;
}

/* Config wins; else what the node runs; else auto. */
static void add_backend(struct add *a)
{
	const char *nb = a->node->node->backend;
	enum wg_backend b = WG_BACKEND_AUTO, node = WG_BACKEND_AUTO;

	if (nb && *nb && wg_backend_parse(nb, &node))
		node = WG_BACKEND_AUTO;
	b = a->ctx->conf.backend_set ? a->ctx->conf.backend : node;
	/* auto, on a node whose manager runs the kernel backend: the module
	 * is there (generic netlink families are not per namespace), which
	 * is all the probe would find out. */
	if (b == WG_BACKEND_AUTO && node == WG_BACKEND_KERNEL)
		b = WG_BACKEND_KERNEL;
	a->link.backend = wg_backend_resolve(b);
}

static int add_create(struct add *a)
{
	bool kernel = a->link.backend == WG_BACKEND_KERNEL;
	struct cni_err *e = &a->ctx->err;
	const char *impl = a->ctx->conf.impl;
	int ret;

	/* One container's device carries one container's traffic: a Go
	 * runtime on one processor serves it, and many such devices on few
	 * cores then cost less (bench/datapath.sh: 108 -> 137 Mbit/s across
	 * nodes on 2 cores). A GOMAXPROCS from the runtime wins. */
	if (a->link.backend == WG_BACKEND_USERSPACE && setenv("GOMAXPROCS", "1", 0) < 0)
		return cni_fail(e, CNI_ERR_INTERNAL, -errno, "cannot set GOMAXPROCS", NULL);
	/* Kernel: born in the container with its MTU, by a request from the
	 * runtime's namespace, which keeps its UDP socket (no move; the
	 * temporary name still: older kernels (6.1) look a new link's name up
	 * in the requester's namespace, where CNI_IFNAME is likely taken);
	 * userspace: on the host, moved once it runs. */
	if (kernel)
		ret = wg_create_kernel_in(a->link.tmp, a->ns.target, a->mtu);
	else
		ret = wg_create(a->link.tmp, a->link.backend, impl);
	switch (ret) {
	case 0:
		a->created = true;
		a->in_netns = kernel;
		return 0;
	case -EEXIST:
		return cni_fail(e, CNI_ERR_EXISTS, ret, "WireGuard device already exists",
				"%s (left from an earlier ADD of %s? DEL removes it)",
				a->link.tmp, a->ctx->env.containerid);
	case -ENOENT:
		return cni_fail(e, CNI_ERR_INVALID_CONFIG, ret,
				"userspace WireGuard implementation not found",
				"userspaceImplementation `%s'", impl);
	case -EOPNOTSUPP:
		return cni_fail(e, CNI_ERR_INVALID_CONFIG, ret,
				"kernel WireGuard is not available", "backend %s for %s",
				wg_backend_name(a->link.backend), a->link.tmp);
	default:
		return cni_fail(e, CNI_ERR_INTERNAL, ret, "cannot create WireGuard device",
				"%s (%s backend): %s", a->link.tmp,
				wg_backend_name(a->link.backend), strerror(-ret));
	}
}

/* Under the temporary name: userspace in the runtime's namespace, kernel
 * in the container's (genetlink finds a device in the sender's namespace). */
static int add_set_key(struct add *a)
{
	struct wg_device dev = { 0 };
	int ret;

	/* No listen port: a new device has 0 (any); setting it again would
	 * make wireguard-go, bound as it starts, bind anew. */
	snprintf(dev.name, sizeof(dev.name), "%s", a->link.tmp);
	dev.flags = WGDEVICE_HAS_PRIVATE_KEY;
	ret = key_generate_private(dev.private_key);
	if (ret)
		goto out;
	ret = key_public_from_private(a->public_key, dev.private_key);
	if (ret)
		goto out;
	ret = a->in_netns ? cni_ns_wg_set(&a->ns, &dev) : wg_set(&dev);
out:
	key_wipe(dev.private_key, sizeof(dev.private_key));
	if (ret)
		return cni_fail(&a->ctx->err, CNI_ERR_INTERNAL, ret,
				"cannot set the WireGuard private key", "%s: %s",
				a->link.tmp, strerror(-ret));
	return 0;
}

/* In a child (cni_bg_start): the move waits for an RCU barrier in the
 * kernel, the caller meanwhile asks for the allocation. */
static int add_move_bg(void *arg)
{
	struct add *a = arg;

	return netdev_move_to_netns(a->link.tmp, a->ns.target);
}

static int add_move_wait(struct add *a, struct cni_bg *bg)
{
	int ret = cni_bg_wait(bg);

	/* Also after a failure: the undo then looks for the temporary name
	 * in the container as well, which is ours either way. */
	a->in_netns = true;
	if (ret)
		return cni_fail(&a->ctx->err, CNI_ERR_INTERNAL, ret,
				"cannot move the interface into the container",
				"%s to %s: %s", a->link.tmp, a->ctx->env.netns, strerror(-ret));
	return 0;
}

static int add_configure_in_netns(struct add *a)
{
	struct cni_err *e = &a->ctx->err;
	const char *ifname = a->link.ifname;
	char buf[IPNET_STRLEN];
	int ret, ret2;

	ret = cni_ns_enter(&a->ns, e);
	if (ret)
		return ret;
	/* One request: name, MTU (a kernel device was born with it), up. */
	ret = netdev_rename_up(a->link.tmp, ifname,
			       a->link.backend == WG_BACKEND_KERNEL ? 0 : a->mtu);
	if (ret == -EEXIST) {
		cni_fail(e, CNI_ERR_EXISTS, ret, "interface already exists in the container",
			 "CNI_IFNAME=%s in %s", ifname, a->ctx->env.netns);
		goto out_leave;
	}
	/* Renamed before a later step failed: the undo must look for it there. */
	a->renamed = ret == 0 || !netdev_exists(a->link.tmp);
	if (ret) {
		cni_fail(e, CNI_ERR_INTERNAL, ret, "cannot rename the interface and bring it up",
			 "%s to %s mtu %u: %s", a->link.tmp, ifname, a->mtu, strerror(-ret));
		goto out_leave;
	}
	for (size_t i = 0; i < a->n_addrs; i++) {
		ret = netdev_addr_add(ifname, &a->addrs[i]);
		if (ret) {
			cni_fail(e, CNI_ERR_INTERNAL, ret, "cannot add the address",
				 "%s to %s: %s", ipnet_format(&a->addrs[i], buf), ifname,
				 strerror(-ret));
			goto out_leave;
		}
	}
out_leave:
	ret2 = cni_ns_leave(&a->ns, e);
	return ret ? ret : ret2;
}

/* The port the device bound (in the runtime's namespace): 1 once known. */
static int add_port_bound(struct add *a, int *err)
{
	struct wg_device *dev = NULL;

	*err = cni_link_wg_get(&a->link, &dev);
	if (!*err && dev->listen_port)
		a->port = dev->listen_port;
	wg_device_free(dev);
	return a->port != 0;
}

/* A kernel device binds when it goes up, so does a wireguard-go that waits
 * for its TUN: poll for it. */
static int add_wait_port(struct add *a)
{
	int ret = 0;

	for (int i = 0; i < ADD_PORT_POLLS && !add_port_bound(a, &ret); i++)
		cni_sleep_ms(ADD_PORT_POLL_MS);
	if (a->port)
		return 0;
	return cni_fail(&a->ctx->err, CNI_ERR_INTERNAL, ret ? ret : -ETIMEDOUT,
			"WireGuard device bound no UDP port", "%s (%s): %s", a->link.tmp,
			a->link.ifname, ret ? strerror(-ret) : "no port after 5 s");
}

/* Userspace: the device's UDP socket takes the container's whole traffic
 * from the node; with wireguard-go's default buffers it drops at load (see
 * wg_socket_buffers). Best effort: a device with small buffers works. */
static int add_socket_buffers(struct add *a)
{
	int ret;

	if (a->link.backend != WG_BACKEND_USERSPACE)
		return 0;
	ret = wg_socket_buffers(a->link.tmp, WG_SOCKET_BUFFER);
	if (ret)
		log_debug("cannot size the device's UDP socket buffers", "device=%s err=%s",
			  a->link.tmp, strerror(-ret));
	return 0;
}

static int add_register(struct add *a)
{
	Wgcni__Node__V1__RegisterKeyRequest req = WGCNI__NODE__V1__REGISTER_KEY_REQUEST__INIT;
	char pub[WG_KEY_B64_LEN + 1], endpoint[32];
	struct cni_err *e = &a->ctx->err;
	ProtobufCMessage *out;
	int ret;

	key_to_base64(pub, a->public_key);
	snprintf(endpoint, sizeof(endpoint), "127.0.0.1:%u", a->port);
	req.container_id = (char *)a->ctx->env.containerid;
	req.ifname = (char *)a->ctx->env.ifname;
	req.public_key = pub;
	req.endpoint = endpoint;
	req.container_mesh = a->ctx->conf.container_mesh;
	ret = nmc_call(a->nm, "RegisterKey", &req.base,
		      &wgcni__node__v1__register_key_response__descriptor, &out, CONNECT_OK, e);
	if (ret)
		return ret;
	a->reg = (Wgcni__Node__V1__RegisterKeyResponse *)out;
	if (!a->reg->node_peer || !a->reg->node_peer->public_key ||
	    !a->reg->node_peer->endpoint)
		return cni_fail(e, CNI_ERR_NODE_MANAGER, -EPROTO,
				"node manager sent no node peer", "RegisterKey for %s",
				a->ctx->env.containerid);
	return 0;
}

static int add_set_peer(struct add *a)
{
	const Wgcni__Node__V1__NodePeer *np = a->reg->node_peer;
	struct cni_err *e = &a->ctx->err;
	struct wg_device dev = { 0 };
	struct wg_peer peer = { 0 };
	struct ipnet any;
	char why[128];
	int ret;

	ret = key_from_base64(peer.public_key, np->public_key, why, sizeof(why));
	if (ret) {
		cni_fail(e, CNI_ERR_NODE_MANAGER, ret, "node manager sent an invalid public key",
			 "`%.64s': %s", np->public_key, why);
		goto out;
	}
	ret = wg_peer_set_endpoint(&peer, np->endpoint, why, sizeof(why));
	if (ret) {
		cni_fail(e, CNI_ERR_NODE_MANAGER, ret, "node manager sent an invalid endpoint",
			 "`%.64s'", np->endpoint);
		goto out;
	}
	/* A keepalive goes out as soon as it is set, so the container's
	 * session with the node is handshaken during ADD, before the first
	 * packet of the container: without it, two fresh containers talking
	 * at once could make the node and a container initiate at the same
	 * moment, lose one initiation to WireGuard's flood protection and
	 * stall for the 5 s retry. */
	peer.keepalive = ADD_KEEPALIVE_S;
	peer.flags = WGPEER_HAS_ENDPOINT | WGPEER_REPLACE_ALLOWEDIPS | WGPEER_HAS_KEEPALIVE;
	if (a->reg->preshared_key && a->reg->preshared_key[0]) {
		ret = key_from_base64(peer.preshared_key, a->reg->preshared_key, why, sizeof(why));
		/* Wiped in the answer as soon as it is decoded. */
		key_wipe(a->reg->preshared_key, strlen(a->reg->preshared_key));
		if (ret) {
			cni_fail(e, CNI_ERR_NODE_MANAGER, ret,
				 "node manager sent an invalid preshared key", "%s", why);
			goto out;
		}
		peer.flags |= WGPEER_HAS_PRESHARED_KEY;
	}
	ret = ipnet_parse("0.0.0.0/0", &any, true);
	if (!ret)
		ret = wg_peer_add_allowedip(&peer, &any);
	if (!ret)
		ret = ipnet_parse("::/0", &any, true);
	if (!ret)
		ret = wg_peer_add_allowedip(&peer, &any);
	if (ret) {
		cni_fail(e, CNI_ERR_INTERNAL, ret, "cannot build the peer", "%s", strerror(-ret));
		goto out;
	}
	/* Incremental, not REPLACE_PEERS: the device is new, and with
	 * containerMesh the node manager has already given it its peers for
	 * the other containers of this node (during RegisterKey). */
	dev.peers = &peer;
	dev.n_peers = 1;
	ret = cni_link_wg_set(&a->link, &dev);
	if (ret)
		cni_fail(e, CNI_ERR_INTERNAL, ret, "cannot configure the node peer",
			 "%s (%s) peer %s endpoint %s: %s", a->link.tmp, a->link.ifname,
			 np->public_key, np->endpoint, strerror(-ret));
out:
	wg_peer_clear(&peer);
	return ret;
}

static int add_routes(struct add *a)
{
	struct cni_err *e = &a->ctx->err;
	bool done[2] = { false, false };
	struct ipnet dst;
	char buf[IPNET_STRLEN];
	int ret, ret2;

	ret = cni_ns_enter(&a->ns, e);
	if (ret)
		return ret;
	for (size_t i = 0; i < a->n_addrs && !ret; i++) {
		bool v6 = a->addrs[i].addr.family == AF_INET6;

		if (done[v6])
			continue;
		done[v6] = true;
		ret = ipnet_parse(v6 ? "::/0" : "0.0.0.0/0", &dst, true);
		if (!ret)
			ret = netdev_route_add(&dst, a->link.ifname, NULL);
		if (ret)
			cni_fail(e, CNI_ERR_INTERNAL, ret, "cannot add the default route",
				 "%s dev %s: %s", ipnet_format(&dst, buf), a->link.ifname,
				 strerror(-ret));
	}
	ret2 = cni_ns_leave(&a->ns, e);
	return ret ? ret : ret2;
}

/* Undo the link wherever it is; best effort, the first error is already set. */
static void add_delete_link(struct add *a)
{
	struct cni_err ignore = { 0 };
	int ret;

	if (a->in_netns && !cni_ns_enter(&a->ns, &ignore)) {
		ret = netdev_delete(a->renamed ? a->link.ifname : a->link.tmp);
		if (ret && ret != -ENODEV)
			log_warnx("cannot delete the container interface while undoing ADD",
				  "ifname=%s err=%s",
				  a->renamed ? a->link.ifname : a->link.tmp, strerror(-ret));
		cni_ns_leave(&a->ns, &ignore);
	}
	/* In the host: the link if it never moved, else a stale UAPI socket. */
	ret = wg_delete(a->link.tmp);
	if (ret && ret != -ENODEV)
		log_warnx("cannot delete the WireGuard device while undoing ADD",
			  "name=%s err=%s", a->link.tmp, strerror(-ret));
}

/* Once the device has its port, in order; any failure deletes the link. */
static int (*const add_peer_steps[])(struct add *a) = {
	add_socket_buffers, add_register, add_set_peer,
};

#define ADD_STEPS(steps) (steps), sizeof(steps) / sizeof((steps)[0])

/* steps in order, up to the first failure. */
static int add_run(struct add *a, int (*const *steps)(struct add *a), size_t n)
{
	int ret = 0;

	for (size_t i = 0; !ret && i < n; i++)
		ret = steps[i](a);
	return ret;
}

static int add_peer(struct add *a)
{
	return add_run(a, ADD_STEPS(add_peer_steps));
}

/*
 * Kernel: AllocateIP first, for the MTU the device is born with in the
 * container; then the key, name and up, addresses, the port it bound,
 * RegisterKey, the node peer, routes.
 */
static int (*const add_kernel_steps[])(struct add *a) = {
	add_allocate, add_create, add_set_key, add_configure_in_netns, add_wait_port, add_peer,
	add_routes,
};

static int add_attach_kernel(struct add *a)
{
	return add_run(a, ADD_STEPS(add_kernel_steps));
}

/*
 * Userspace: the device starts on the host and moves into the container.
 * The move sleeps in the kernel (an RCU barrier, ~20 ms): AllocateIP
 * meanwhile, and when the device already has its port (wireguard-go
 * 0.0.20220316 binds as it starts, its TUN still down) RegisterKey and the
 * node peer as well, all of which go through the UAPI socket and the node
 * manager, not the TUN.
 */
static int add_attach_userspace(struct add *a)
{
	struct cni_bg bg;
	int ret, ret2;
	bool early;

	ret = add_create(a);
	if (!ret)
		ret = add_set_key(a);
	if (ret)
		return ret;
	early = add_port_bound(a, &ret);
	cni_bg_start(&bg, add_move_bg, a);
	ret = add_allocate(a);
	if (!ret && early)
		ret = add_peer(a);
	ret2 = add_move_wait(a, &bg);
	if (ret || ret2)
		return ret ? ret : ret2;
	ret = add_configure_in_netns(a);
	if (!ret && !early)
		ret = add_wait_port(a);
	if (!ret && !early)
		ret = add_peer(a);
	if (!ret)
		ret = add_routes(a);
	return ret;
}

int cni_cmd_add(struct cni_ctx *ctx)
{
	struct add a = { .ctx = ctx };
	struct cni_err *e = &ctx->err;
	int ret;

	a.ns.host = a.ns.target = -1;
	a.link.ns = &a.ns;
	a.link.ifname = ctx->env.ifname;
	ret = key_init();
	if (ret) {
		cni_fail(e, CNI_ERR_INTERNAL, ret, "cannot initialise libsodium", NULL);
		goto out;
	}
	ret = cni_tmp_ifname(ctx->env.containerid, ctx->env.ifname, a.link.tmp);
	if (ret) {
		cni_fail(e, CNI_ERR_INTERNAL, ret, "cannot derive the device name", NULL);
		goto out;
	}
	a.nm = nmc_open(ctx->conf.node_manager, e);
	if (!a.nm) {
		ret = -EINVAL;
		goto out;
	}
	ret = cni_ns_open(&a.ns, ctx->env.netns, e);
	if (ret)
		goto out;
	ret = add_ifname_free(&a);
	if (ret)
		goto out;
	ret = nmc_get_node(a.nm, &a.node, e);
	if (ret)
		goto out;

	add_backend(&a);
	ret = a.link.backend == WG_BACKEND_KERNEL ? add_attach_kernel(&a) : add_attach_userspace(&a);
	/* A device that existed before is not ours to delete (DEL of the
	 * attachment that made it removes it); any other failure may have
	 * left a half started process or link behind. */
	if (ret == -EEXIST && !a.created)
		goto err_release;
	if (ret)
		goto err_delete_link;
	ret = cni_result_build(&ctx->conf, &ctx->env, a.mtu, a.addrs, a.n_addrs,
			       a.has_gateway ? &a.gateway : NULL, &ctx->output, e);
	if (ret)
		goto err_delete_link;
	log_info("attached", "container=%s ifname=%s device=%s backend=%s port=%u",
		 ctx->env.containerid, ctx->env.ifname, a.link.tmp,
		 wg_backend_name(a.link.backend), a.port);
	goto out;

err_delete_link:
	add_delete_link(&a);
err_release:
	add_release(&a);
out:
	if (a.reg)
		protobuf_c_message_free_unpacked(&a.reg->base, NULL);
	if (a.node)
		protobuf_c_message_free_unpacked(&a.node->base, NULL);
	cni_ns_close(&a.ns);
	nmc_close(a.nm);
	return ret;
}
