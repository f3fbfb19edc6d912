/*
 * wgcni.node.v1.NodeService: what the CNI plugin and wgcnictl call on the
 * node manager's socket. Handlers run on the server's loop thread and take
 * nm->lock around state and interface changes (the sync thread shares both).
 * An answer is only given once its change is on disk.
 */
#include "nm.h"

#include "db.h"
#include "log.h"
#include "opts.h"
#include "wgcni/node/v1/node.pb-c.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *nm_str(const char *s)
{
	return s ? s : "";
}

static int nm_fail_errno(struct connect_call *call, int ret, const char *what)
{
	enum connect_code code = CONNECT_INTERNAL;

	if (ret == -ENOSPC)
		code = CONNECT_RESOURCE_EXHAUSTED;
	else if (ret == -EAGAIN || ret == -EBUSY)
		code = CONNECT_UNAVAILABLE;
	else if (ret == -EEXIST)
		code = CONNECT_ALREADY_EXISTS;
	return connect_fail(call, code, "%s: %s", what, strerror(-ret));
}

/* Validates containerId and ifname. False when they are bad, with the
 * error already answered and the handler's return value in *ret. */
static bool nm_attachment_ok(struct connect_call *call, const char *cid, const char *ifname,
			     int *ret)
{
	const char *why = name_container_id_check(cid);

	if (why) {
		*ret = connect_fail(call, CONNECT_INVALID_ARGUMENT, "invalid containerId `%.64s': %s",
				    nm_str(cid), why);
		return false;
	}
	why = name_ifname_check(ifname);
	if (why) {
		*ret = connect_fail(call, CONNECT_INVALID_ARGUMENT, "invalid ifname `%.32s': %s",
				    nm_str(ifname), why);
		return false;
	}
	return true;
}

static char **nm_addr_strings(struct connect_call *call, const struct nm_alloc *a)
{
	char **v = connect_call_alloc(call, (a->n_addrs + 1) * sizeof(*v));
	char buf[IPNET_STRLEN];

	if (!v)
		return NULL;
	for (size_t i = 0; i < a->n_addrs; i++) {
		v[i] = connect_call_strdup(call, ipnet_format(&a->addrs[i], buf));
		if (!v[i])
			return NULL;
	}
	return v;
}

static int nm_api_allocate_ip(struct connect_call *call, void *ctx)
{
	const Wgcni__Node__V1__AllocateIPRequest *req = (const void *)connect_call_request(call);
	Wgcni__Node__V1__AllocateIPResponse *resp;
	struct nm *nm = ctx;
	struct nm_alloc *a;
	struct ipaddr gw;
	char buf[IPNET_STRLEN];
	bool created = false;
	int ret;

	if (!nm_attachment_ok(call, req->container_id, req->ifname, &ret))
		return ret;
	if (strlen(nm_str(req->netns)) > NM_NETNS_MAX)
		return connect_fail(call, CONNECT_INVALID_ARGUMENT, "netns path longer than %d",
				    NM_NETNS_MAX);
	resp = connect_call_alloc(call, sizeof(*resp));
	if (!resp)
		return connect_fail(call, CONNECT_INTERNAL, "out of memory");
	wgcni__node__v1__allocate_ipresponse__init(resp);

	pthread_mutex_lock(&nm->lock);
	if (nm_iface_ensure(nm) < 0)
		log_warnx("node interface not restored; allocating anyway", "interface=%s",
			  nm->cfg.ifname);
	a = nm_state_find(nm, req->container_id, req->ifname);
	if (a) {
		ret = nm_state_update_netns(nm, a, nm_str(req->netns));
	} else {
		ret = nm_state_alloc(nm, req->container_id, req->ifname, nm_str(req->netns), &a);
		created = ret == 0;
	}
	if (ret < 0) {
		pthread_mutex_unlock(&nm->lock);
		if (ret == -ENOSPC)
			return connect_fail(call, CONNECT_RESOURCE_EXHAUSTED,
					    "address pool of node `%s' exhausted", nm->cfg.node_name);
		return nm_fail_errno(call, ret, "allocating address");
	}
	resp->n_addresses = a->n_addrs;
	resp->addresses = nm_addr_strings(call, a);
	ret = ipnet_first_host(&nm->subnets[0], &gw);
	resp->gateway = ret == 0 ? connect_call_strdup(call, ipaddr_format(&gw, buf)) : NULL;
	resp->mtu = nm->cfg.mtu;
	if (created)
		log_info("address allocated", "container=%s ifname=%s address=%s",
			 a->container_id, a->ifname, resp->addresses ? resp->addresses[0] : "");
	pthread_mutex_unlock(&nm->lock);
	if (!resp->addresses || !resp->gateway)
		return connect_fail(call, CONNECT_INTERNAL, "out of memory");
	return connect_reply(call, &resp->base);
}

static bool nm_is_node_key(const struct nm *nm, const uint8_t *key)
{
	return !memcmp(key, nm->public_key, WG_KEY_LEN) || nm_state_find_peer(nm, key);
}

static int nm_api_register_key(struct connect_call *call, void *ctx)
{
	const Wgcni__Node__V1__RegisterKeyRequest *req = (const void *)connect_call_request(call);
	Wgcni__Node__V1__RegisterKeyResponse *resp;
	Wgcni__Node__V1__NodePeer *np;
	struct nm *nm = ctx;
	struct nm_alloc *a, *other;
	struct wg_peer probe = { 0 };
	uint8_t key[WG_KEY_LEN], old[WG_KEY_LEN];
	bool had_key, had_mesh;
	char err[256];
	int ret;

	if (!nm_attachment_ok(call, req->container_id, req->ifname, &ret))
		return ret;
	if (key_from_base64(key, nm_str(req->public_key), err, sizeof(err)) < 0)
		return connect_fail(call, CONNECT_INVALID_ARGUMENT, "invalid publicKey `%.64s': %s",
				    nm_str(req->public_key), err);
	if (key_is_zero(key))
		return connect_fail(call, CONNECT_INVALID_ARGUMENT, "invalid publicKey `%s': zero key",
				    req->public_key);
	if (strlen(nm_str(req->endpoint)) >= NM_ENDPOINT_MAX)
		return connect_fail(call, CONNECT_INVALID_ARGUMENT,
				    "invalid endpoint `%.64s...': longer than %d characters",
				    nm_str(req->endpoint), NM_ENDPOINT_MAX - 1);
	if (wg_peer_set_endpoint(&probe, nm_str(req->endpoint), err, sizeof(err)) < 0)
		return connect_fail(call, CONNECT_INVALID_ARGUMENT, "invalid endpoint `%.64s': %s",
				    nm_str(req->endpoint), err);
	resp = connect_call_alloc(call, sizeof(*resp));
	np = connect_call_alloc(call, sizeof(*np));
	if (!resp || !np)
		return connect_fail(call, CONNECT_INTERNAL, "out of memory");
	wgcni__node__v1__register_key_response__init(resp);
	wgcni__node__v1__node_peer__init(np);
	resp->node_peer = np;
	if (nm->has_psk) {
		uint8_t psk[WG_KEY_LEN];
		char b64[WG_KEY_B64_LEN + 1];

		nm_psk(nm, key, psk);
		key_to_base64(b64, psk);
		resp->preshared_key = connect_call_strdup(call, b64);
		key_wipe(psk, sizeof(psk));
		key_wipe(b64, sizeof(b64));
		if (!resp->preshared_key)
			return connect_fail(call, CONNECT_INTERNAL, "out of memory");
	}
	np->public_key = connect_call_strdup(call, nm->public_b64);
	np->endpoint = connect_call_printf(call, "127.0.0.1:%u", nm->cfg.listen_port);
	if (!np->public_key || !np->endpoint)
		return connect_fail(call, CONNECT_INTERNAL, "out of memory");

	pthread_mutex_lock(&nm->lock);
	a = nm_state_find(nm, req->container_id, req->ifname);
	if (!a) {
		pthread_mutex_unlock(&nm->lock);
		return connect_fail(call, CONNECT_NOT_FOUND,
				    "no allocation for container `%s' ifname `%s'",
				    req->container_id, req->ifname);
	}
	other = nm_state_find_key(nm, key);
	if ((other && other != a) || nm_is_node_key(nm, key)) {
		pthread_mutex_unlock(&nm->lock);
		return connect_fail(call, CONNECT_ALREADY_EXISTS,
				    "publicKey `%s' is already in use on node `%s'",
				    req->public_key, nm->cfg.node_name);
	}
	had_key = a->has_key;
	had_mesh = a->mesh;
	memcpy(old, a->public_key, WG_KEY_LEN);
	ret = nm_iface_ensure(nm);
	if (ret < 0)
		goto err_unlock;
	ret = db_begin(nm->db);
	if (ret < 0)
		goto err_unlock;
	ret = nm_state_store_key(nm, a, key, req->endpoint);
	if (ret < 0)
		goto err_rollback;
	if (had_mesh != req->container_mesh)
		ret = nm_state_store_mesh(nm, a, req->container_mesh);
	if (ret < 0)
		goto err_rollback;
	ret = nm_iface_container_peer(nm, a, key, req->endpoint, had_key ? old : NULL);
	if (ret < 0)
		goto err_rollback;
	ret = db_commit(nm->db);
	if (ret < 0)
		goto err_remove_peer;
	memcpy(a->public_key, key, WG_KEY_LEN);
	a->has_key = true;
	snprintf(a->endpoint, sizeof(a->endpoint), "%s", req->endpoint);
	log_info("container peer registered", "container=%s ifname=%s public_key=%s endpoint=%s"
		 " mesh=%s", a->container_id, a->ifname, req->public_key, req->endpoint,
		 req->container_mesh ? "yes" : "no");
	if (had_key && had_mesh && (!req->container_mesh || memcmp(old, key, WG_KEY_LEN)))
		nm_mesh_leave(nm, a, old);
	a->mesh = req->container_mesh;
	nm_mesh_join(nm, a);
	pthread_mutex_unlock(&nm->lock);
	return connect_reply(call, &resp->base);

err_remove_peer:
	nm_iface_peer_remove(nm, key);
	if (had_key)
		nm_iface_container_peer(nm, a, old, a->endpoint, NULL);
err_rollback:
	db_rollback(nm->db);
err_unlock:
	pthread_mutex_unlock(&nm->lock);
	return nm_fail_errno(call, ret, "registering container key");
}

/* Remove a's peer and forget a. Caller holds the lock. */
static int nm_release(struct nm *nm, struct nm_alloc *a)
{
	char cid[NM_ID_MAX + 1], ifname[IFNAMSIZ];
	int ret;

	if (a->has_key) {
		ret = nm_iface_peer_remove(nm, a->public_key);
		if (ret < 0)
			return ret;
	}
	if (a->has_key && a->mesh)
		nm_mesh_leave(nm, a, a->public_key);
	snprintf(cid, sizeof(cid), "%s", a->container_id);
	snprintf(ifname, sizeof(ifname), "%s", a->ifname);
	ret = nm_state_release(nm, a);
	if (ret == 0)
		log_info("allocation released", "container=%s ifname=%s", cid, ifname);
	return ret;
}

static int nm_api_release(struct connect_call *call, void *ctx)
{
	const Wgcni__Node__V1__ReleaseRequest *req = (const void *)connect_call_request(call);
	Wgcni__Node__V1__ReleaseResponse *resp;
	struct nm *nm = ctx;
	struct nm_alloc *a;
	int ret = 0;

	if (!nm_attachment_ok(call, req->container_id, req->ifname, &ret))
		return ret;
	resp = connect_call_alloc(call, sizeof(*resp));
	if (!resp)
		return connect_fail(call, CONNECT_INTERNAL, "out of memory");
	wgcni__node__v1__release_response__init(resp);
	pthread_mutex_lock(&nm->lock);
	a = nm_state_find(nm, req->container_id, req->ifname);
	if (a)
		ret = nm_release(nm, a);
	pthread_mutex_unlock(&nm->lock);
	if (ret < 0)
		return nm_fail_errno(call, ret, "releasing allocation");
	return connect_reply(call, &resp->base);
}

static Wgcni__Node__V1__Allocation *nm_alloc_msg(struct connect_call *call,
						 const struct nm_alloc *a)
{
	Wgcni__Node__V1__Allocation *m = connect_call_alloc(call, sizeof(*m));
	char b64[WG_KEY_B64_LEN + 1] = "";

	if (!m)
		return NULL;
	wgcni__node__v1__allocation__init(m);
	if (a->has_key)
		key_to_base64(b64, a->public_key);
	m->container_id = connect_call_strdup(call, a->container_id);
	m->ifname = connect_call_strdup(call, a->ifname);
	m->netns = connect_call_strdup(call, a->netns);
	m->public_key = connect_call_strdup(call, b64);
	m->endpoint = connect_call_strdup(call, a->endpoint);
	m->container_mesh = a->mesh;
	m->n_addresses = a->n_addrs;
	m->addresses = nm_addr_strings(call, a);
	if (!m->container_id || !m->ifname || !m->netns || !m->public_key || !m->endpoint ||
	    !m->addresses)
		return NULL;
	return m;
}

static int nm_api_list_allocations(struct connect_call *call, void *ctx)
{
	Wgcni__Node__V1__ListAllocationsResponse *resp;
	struct nm *nm = ctx;
	bool oom = false;

	resp = connect_call_alloc(call, sizeof(*resp));
	if (!resp)
		return connect_fail(call, CONNECT_INTERNAL, "out of memory");
	wgcni__node__v1__list_allocations_response__init(resp);
	pthread_mutex_lock(&nm->lock);
	resp->allocations = connect_call_alloc(call, (nm->n_allocs + 1) * sizeof(*resp->allocations));
	oom = !resp->allocations;
	for (size_t i = 0; !oom && i < nm->n_allocs; i++) {
		resp->allocations[i] = nm_alloc_msg(call, &nm->allocs[i]);
		oom = !resp->allocations[i];
		resp->n_allocations++;
	}
	pthread_mutex_unlock(&nm->lock);
	if (oom)
		return connect_fail(call, CONNECT_INTERNAL, "out of memory");
	return connect_reply(call, &resp->base);
}

static char **nm_net_strings(struct connect_call *call, const struct ipnet *nets, size_t n,
			     bool first_host)
{
	char **v = connect_call_alloc(call, (n + 1) * sizeof(*v));
	char buf[IPNET_STRLEN];

	if (!v)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		struct ipnet host = nets[i];

		if (first_host && ipnet_first_host(&nets[i], &host.addr) < 0)
			return NULL;
		v[i] = connect_call_strdup(call, ipnet_format(&host, buf));
		if (!v[i])
			return NULL;
	}
	return v;
}

/* --cluster-manager as the node manager splits it (opts_split: on commas,
 * trimmed, empty items dropped), in the order given. NULL on ENOMEM. */
static char **nm_cm_strings(struct connect_call *call, const char *list, size_t *n)
{
	char **split, **v;
	size_t len = 0;

	*n = 0;
	split = opts_split(list);
	if (!split)
		return NULL;
	while (split[len])
		len++;
	v = connect_call_alloc(call, (len + 1) * sizeof(*v));
	for (size_t i = 0; v && i < len; i++) {
		v[i] = connect_call_strdup(call, split[i]);
		if (!v[i])
			v = NULL;
	}
	opts_strv_free(split);
	if (v)
		*n = len;
	return v;
}

static int nm_api_get_node(struct connect_call *call, void *ctx)
{
	Wgcni__Node__V1__GetNodeResponse *resp;
	Wgcni__Node__V1__Node *node;
	struct nm *nm = ctx;
	char **hosts;
	char *address = NULL;

	resp = connect_call_alloc(call, sizeof(*resp));
	node = connect_call_alloc(call, sizeof(*node));
	if (!resp || !node)
		return connect_fail(call, CONNECT_INTERNAL, "out of memory");
	wgcni__node__v1__get_node_response__init(resp);
	wgcni__node__v1__node__init(node);
	resp->node = node;
	pthread_mutex_lock(&nm->lock);
	node->name = connect_call_strdup(call, nm->cfg.node_name);
	node->n_subnets = nm->n_subnets;
	node->subnets = nm_net_strings(call, nm->subnets, nm->n_subnets, false);
	node->public_key = connect_call_strdup(call, nm->public_b64);
	node->endpoint = connect_call_strdup(call, nm->cfg.endpoint);
	hosts = nm_net_strings(call, nm->subnets, nm->n_subnets, true);
	if (hosts) {
		address = connect_call_strdup(call, "");
		for (size_t i = 0; address && i < nm->n_subnets; i++)
			address = connect_call_printf(call, "%s%s%s", address, i ? "," : "",
						      hosts[i]);
	}
	node->address = address;
	node->interface = connect_call_strdup(call, nm->cfg.ifname);
	node->mtu = nm->cfg.mtu;
	node->backend = connect_call_strdup(call, wg_backend_name(nm->backend));
	node->listen_port = nm->cfg.listen_port;
	node->n_cluster_cidrs = nm->n_cidrs;
	node->cluster_cidrs = nm_net_strings(call, nm->cidrs, nm->n_cidrs, false);
	node->cluster_managers = nm_cm_strings(call, nm->cfg.cluster_manager,
					       &node->n_cluster_managers);
	pthread_mutex_unlock(&nm->lock);
	if (!node->name || !node->subnets || !node->public_key || !node->endpoint ||
	    !node->address || !node->interface || !node->backend || !node->cluster_cidrs ||
	    !node->cluster_managers)
		return connect_fail(call, CONNECT_INTERNAL, "out of memory");
	return connect_reply(call, &resp->base);
}

static bool nm_attachment_listed(const Wgcni__Node__V1__GCRequest *req, const struct nm_alloc *a)
{
	for (size_t i = 0; i < req->n_valid_attachments; i++) {
		const Wgcni__Node__V1__Attachment *v = req->valid_attachments[i];

		if (v && !strcmp(nm_str(v->container_id), a->container_id) &&
		    !strcmp(nm_str(v->ifname), a->ifname))
			return true;
	}
	return false;
}

static int nm_api_gc(struct connect_call *call, void *ctx)
{
	const Wgcni__Node__V1__GCRequest *req = (const void *)connect_call_request(call);
	Wgcni__Node__V1__GCResponse *resp;
	struct nm *nm = ctx;
	int ret = 0;

	resp = connect_call_alloc(call, sizeof(*resp));
	if (!resp)
		return connect_fail(call, CONNECT_INTERNAL, "out of memory");
	wgcni__node__v1__gcresponse__init(resp);
	pthread_mutex_lock(&nm->lock);
	resp->released = connect_call_alloc(call, (nm->n_allocs + 1) * sizeof(*resp->released));
	if (!resp->released)
		ret = -ENOMEM;
	for (size_t i = nm->n_allocs; ret == 0 && i-- > 0;) {
		struct nm_alloc *a = &nm->allocs[i];
		Wgcni__Node__V1__Attachment *m;

		if (nm_attachment_listed(req, a))
			continue;
		m = connect_call_alloc(call, sizeof(*m));
		if (!m) {
			ret = -ENOMEM;
			break;
		}
		wgcni__node__v1__attachment__init(m);
		m->container_id = connect_call_strdup(call, a->container_id);
		m->ifname = connect_call_strdup(call, a->ifname);
		if (!m->container_id || !m->ifname) {
			ret = -ENOMEM;
			break;
		}
		ret = nm_release(nm, a);
		if (ret == 0)
			resp->released[resp->n_released++] = m;
	}
	pthread_mutex_unlock(&nm->lock);
	if (ret < 0)
		return nm_fail_errno(call, ret, "garbage collecting allocations");
	return connect_reply(call, &resp->base);
}

static int nm_api_rotate_key(struct connect_call *call, void *ctx)
{
	Wgcni__Node__V1__RotateKeyResponse *resp;
	struct nm *nm = ctx;
	char old[WG_KEY_B64_LEN + 1] = "", err[512] = "";
	int ret;

	resp = connect_call_alloc(call, sizeof(*resp));
	if (!resp)
		return connect_fail(call, CONNECT_INTERNAL, "out of memory");
	wgcni__node__v1__rotate_key_response__init(resp);
	ret = nm_rotate_key(nm, old, err, sizeof(err));
	if (ret < 0)
		return connect_fail(call, ret == -EAGAIN ? CONNECT_UNAVAILABLE : CONNECT_INTERNAL,
				    "rotating the node key failed: %s", err);
	pthread_mutex_lock(&nm->lock);
	resp->public_key = connect_call_strdup(call, nm->public_b64);
	pthread_mutex_unlock(&nm->lock);
	resp->previous_public_key = connect_call_strdup(call, old);
	if (!resp->public_key || !resp->previous_public_key)
		return connect_fail(call, CONNECT_INTERNAL, "out of memory");
	return connect_reply(call, &resp->base);
}

#define NM_METHOD(name, req, resp, fn)                                         \
	{                                                                      \
		.path = "/wgcni.node.v1.NodeService/" name,                    \
		.input = &wgcni__node__v1__##req##__descriptor,                \
		.output = &wgcni__node__v1__##resp##__descriptor,              \
		.handler = fn,                                                 \
	}

const struct connect_method nm_api_methods[] = {
	NM_METHOD("AllocateIP", allocate_iprequest, allocate_ipresponse, nm_api_allocate_ip),
	NM_METHOD("RegisterKey", register_key_request, register_key_response, nm_api_register_key),
	NM_METHOD("Release", release_request, release_response, nm_api_release),
	NM_METHOD("ListAllocations", list_allocations_request, list_allocations_response,
		  nm_api_list_allocations),
	NM_METHOD("GetNode", get_node_request, get_node_response, nm_api_get_node),
	NM_METHOD("GC", gcrequest, gcresponse, nm_api_gc),
	NM_METHOD("RotateKey", rotate_key_request, rotate_key_response, nm_api_rotate_key),
};
const size_t nm_api_n_methods = sizeof(nm_api_methods) / sizeof(nm_api_methods[0]);

/* Name of a peer for the metrics: node name or containerId/ifname. */
static const char *nm_peer_name(struct nm *nm, const uint8_t *key, char *buf, size_t len,
				bool *container)
{
	const struct nm_alloc *a = nm_state_find_key(nm, key);
	const struct nm_peer *p;

	*container = a != NULL;
	if (a) {
		snprintf(buf, len, "%s/%s", a->container_id, a->ifname);
		return buf;
	}
	p = nm_state_find_peer(nm, key);
	if (p)
		return p->name;
	return nm_ext_find(nm, key) ? nm_ext_find(nm, key)->name : "";
}

static int nm_metrics_peers(struct prom *p, struct nm *nm, const struct wg_device *dev)
{
	static const struct {
		const char *name, *help;
	} fams[] = {
		{ "wgcni_peer_rx_bytes", "Bytes received from the peer." },
		{ "wgcni_peer_tx_bytes", "Bytes sent to the peer." },
		{ "wgcni_peer_last_handshake_seconds",
		  "Unix time of the peer's last handshake (0: never)." },
	};
	char b64[WG_KEY_B64_LEN + 1], name[NM_ID_MAX + IFNAMSIZ + 2];
	int ret = 0;

	for (size_t f = 0; f < sizeof(fams) / sizeof(fams[0]); f++) {
		ret |= prom_family(p, fams[f].name, f == 2 ? PROM_GAUGE : PROM_COUNTER,
				   fams[f].help);
		for (size_t i = 0; dev && i < dev->n_peers; i++) {
			const struct wg_peer *peer = &dev->peers[i];
			const char *pname;
			bool container;
			double v;

			key_to_base64(b64, peer->public_key);
			pname = nm_peer_name(nm, peer->public_key, name, sizeof(name), &container);
			v = f == 0 ? (double)peer->rx_bytes :
			    f == 1 ? (double)peer->tx_bytes :
				     (double)peer->last_handshake.tv_sec +
					     peer->last_handshake.tv_nsec / 1e9;
			ret |= prom_sample(p, v, "peer", b64, "name", pname, (const char *)NULL);
		}
	}
	return ret;
}

int nm_api_metrics(struct prom *p, void *ctx)
{
	struct nm *nm = ctx;
	struct wg_device *dev = NULL;
	size_t n_node = 0, n_container = 0, n_external = 0;
	char name[NM_ID_MAX + IFNAMSIZ + 2];
	int ret = 0;

	pthread_mutex_lock(&nm->lock);
	if (nm->iface_ready && wg_get(nm->cfg.ifname, &dev) < 0) {
		log_warnx("metrics: reading the node interface failed", "interface=%s",
			  nm->cfg.ifname);
		dev = NULL;
	}
	for (size_t i = 0; dev && i < dev->n_peers; i++) {
		bool container;

		nm_peer_name(nm, dev->peers[i].public_key, name, sizeof(name), &container);
		if (container)
			n_container++;
		else if (nm_ext_find(nm, dev->peers[i].public_key))
			n_external++;
		else
			n_node++;
	}
	ret |= prom_family(p, "wgcni_peers", PROM_GAUGE, "Peers on the node interface by kind.");
	ret |= prom_sample(p, (double)n_node, "kind", "node", (const char *)NULL);
	ret |= prom_sample(p, (double)n_container, "kind", "container", (const char *)NULL);
	ret |= prom_sample(p, (double)n_external, "kind", "external", (const char *)NULL);
	ret |= prom_family(p, "wgcni_allocations", PROM_GAUGE, "Container allocations.");
	ret |= prom_sample(p, (double)nm->n_allocs, (const char *)NULL);
	ret |= prom_family(p, "wgcni_pool_addresses", PROM_GAUGE,
			   "Container addresses of the node subnets by state.");
	ret |= prom_sample(p, (double)nm_state_pool_used(nm), "state", "used", (const char *)NULL);
	ret |= prom_sample(p, (double)nm_state_pool_free(nm), "state", "free", (const char *)NULL);
	ret |= nm_metrics_peers(p, nm, dev);
	ret |= prom_family(p, "wgcni_sync_errors_total", PROM_COUNTER,
			   "Failed rounds with the cluster manager.");
	ret |= prom_sample(p, (double)nm->sync_errors, (const char *)NULL);
	ret |= prom_family(p, "wgcni_drift_repairs_total", PROM_COUNTER,
			   "Changes made by hand that the drift repair put back.");
	ret |= prom_sample(p, (double)nm->repairs, (const char *)NULL);
	ret |= prom_family(p, "wgcni_key_rotations_total", PROM_COUNTER,
			   "Node key rotations (RotateKey).");
	ret |= prom_sample(p, (double)nm->rotations, (const char *)NULL);
	pthread_mutex_unlock(&nm->lock);
	wg_device_free(dev);
	return ret < 0 ? -ENOMEM : 0;
}

int nm_api_healthz(void *ctx)
{
	struct nm *nm = ctx;
	bool ready;

	pthread_mutex_lock(&nm->lock);
	ready = nm->iface_ready;
	pthread_mutex_unlock(&nm->lock);
	return ready ? 0 : -EAGAIN;
}
