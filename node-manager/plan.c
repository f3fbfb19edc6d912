/*
 * `wgcni-node-manager plan': what a start would change, computed by the same
 * diff that start and the drift repair apply (iface.c, with a dry plan),
 * against what the cluster manager lists now. Nothing is written: the key
 * file and the state database are opened read only (the daemon may be
 * running; SQLite's WAL lets it go on writing), and the cluster manager is
 * only asked ListNodes, which changes nothing there.
 *
 * Also the drift repair thread: every NM_REPAIR_PERIOD_MS the running daemon
 * puts back what someone changed by hand (nm_iface_repair) and, with
 * containerMesh, converges the container interfaces' peers (nm_mesh_repair).
 */
#include "nm.h"

#include "log.h"
#include "wgcni/cluster/v1/cluster.pb-c.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NM_PLAN_CALL_TIMEOUT_MS 10000L

static const char nm_path_list_nodes[] = "/wgcni.cluster.v1.ClusterService/ListNodes";

int nm_plan_add(struct nm_plan *p, const char *fmt, ...)
{
	va_list ap;
	char *line;
	int len;

	if (!p)
		return 0;
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 16;
		char **lines = reallocarray(p->lines, cap, sizeof(*lines));

		if (!lines)
			return -ENOMEM;
		p->lines = lines;
		p->cap = cap;
	}
	va_start(ap, fmt);
	len = vasprintf(&line, fmt, ap);
	va_end(ap);
	if (len < 0)
		return -ENOMEM;
	p->lines[p->n++] = line;
	return 0;
}

void nm_plan_free(struct nm_plan *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++)
		free(p->lines[i]);
	free(p->lines);
	p->lines = NULL;
	p->n = p->cap = 0;
}

/* --- the plan subcommand --------------------------------------------------- */

static int nm_plan_nets(char **strs, size_t n, struct ipnet *out, size_t max, size_t *n_out)
{
	if (n > max)
		return -E2BIG;
	for (size_t i = 0; i < n; i++) {
		if (ipnet_parse(strs[i], &out[i], false) < 0)
			return -EPROTO;
		ipnet_mask(&out[i]);
	}
	*n_out = n;
	return 0;
}

static bool nm_plan_nets_same(const struct ipnet *a, size_t na, const struct ipnet *b,
			      size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (a[i].prefixlen != b[i].prefixlen || !ipaddr_equal(&a[i].addr, &b[i].addr))
			return false;
	return true;
}

/* Every other registered node as a peer, as ListPeers would list it. */
static int nm_plan_peers(const Wgcni__Cluster__V1__ListNodesResponse *r, const char *self,
			 struct nm_peer **out, size_t *n_out)
{
	struct nm_peer *peers;
	size_t n = 0;

	peers = calloc(r->n_nodes + 1, sizeof(*peers));
	if (!peers)
		return -ENOMEM;
	for (size_t i = 0; i < r->n_nodes; i++) {
		const Wgcni__Cluster__V1__Node *src = r->nodes[i];
		struct nm_peer *p = &peers[n];
		char why[128];

		if (!src->name || !strcmp(src->name, self) || !src->public_key ||
		    !src->public_key[0] ||
		    key_from_base64(p->public_key, src->public_key, why, sizeof(why)) < 0 ||
		    (src->endpoint && strlen(src->endpoint) >= sizeof(p->endpoint)))
			continue;
		snprintf(p->endpoint, sizeof(p->endpoint), "%s", src->endpoint ? src->endpoint : "");
		p->name = strdup(src->name);
		p->allowed = calloc(src->n_subnets + 1, sizeof(*p->allowed));
		if (!p->name || !p->allowed) {
			free(p->name);
			free(p->allowed);
			nm_peers_free(peers, n);
			return -ENOMEM;
		}
		if (nm_plan_nets(src->subnets, src->n_subnets, p->allowed, src->n_subnets,
				 &p->n_allowed) < 0) {
			free(p->name);
			free(p->allowed);
			memset(p, 0, sizeof(*p));
			continue;
		}
		n++;
	}
	*out = peers;
	*n_out = n;
	return 0;
}

/* The node's record at the cluster manager against ours: registration,
 * key, endpoint, subnet. The subnet taken when the state has none. */
static int nm_plan_node(struct nm *nm, const Wgcni__Cluster__V1__ListNodesResponse *r,
			bool have_key, struct nm_plan *plan)
{
	const Wgcni__Cluster__V1__Node *self = NULL;
	struct ipnet subnets[NM_MAX_FAMILIES];
	size_t n_subnets = 0;
	char buf[IPNET_STRLEN], have[IPNET_STRLEN];
	int ret;

	for (size_t i = 0; i < r->n_nodes && !self; i++)
		if (r->nodes[i]->name && !strcmp(r->nodes[i]->name, nm->cfg.node_name))
			self = r->nodes[i];
	if (!self) {
		ret = nm_plan_add(plan, "cluster: register node %s (AllocateSubnet: %s)",
				  nm->cfg.node_name,
				  nm->n_subnets ? "the cluster manager does not know it"
						: "would be allocated a subnet");
		if (ret == 0)
			ret = nm_plan_add(plan, "cluster: register key %s endpoint %s",
					  have_key ? nm->public_b64 : "(new)", nm->cfg.endpoint);
		return ret;
	}
	if (!have_key || !self->public_key || strcmp(self->public_key, nm->public_b64))
		ret = nm_plan_add(plan, "cluster: register key %s endpoint %s (registered: %s)",
				  have_key ? nm->public_b64 : "(new)", nm->cfg.endpoint,
				  self->public_key && self->public_key[0] ? self->public_key
									  : "none");
	else if (!self->endpoint || strcmp(self->endpoint, nm->cfg.endpoint))
		ret = nm_plan_add(plan, "cluster: register endpoint %s (registered: %s)",
				  nm->cfg.endpoint, self->endpoint ? self->endpoint : "none");
	else
		ret = 0;
	if (ret < 0)
		return ret;
	ret = nm_plan_nets(self->subnets, self->n_subnets, subnets, NM_MAX_FAMILIES,
			   &n_subnets);
	if (ret < 0 || !n_subnets) {
		log_error("the cluster manager lists no valid subnet for this node",
			  "node=%s", nm->cfg.node_name);
		return ret < 0 ? ret : -EPROTO;
	}
	if (!nm->n_subnets) {
		memcpy(nm->subnets, subnets, n_subnets * sizeof(*subnets));
		nm->n_subnets = n_subnets;
		return nm_plan_add(plan, "state: store subnet %s", ipnet_format(&subnets[0], buf));
	}
	if (!nm_plan_nets_same(subnets, n_subnets, nm->subnets, nm->n_subnets)) {
		log_error("cluster manager answers a different subnet; a start would not register",
			  "stored=%s answered=%s", ipnet_format(&nm->subnets[0], have),
			  ipnet_format(&subnets[0], buf));
		return -ESTALE;
	}
	return 0;
}

static int nm_plan_key(struct nm *nm, bool *have_key, struct nm_plan *plan)
{
	char path[PATH_MAX];
	int ret;

	*have_key = false;
	ret = nm_key_load(nm, false);
	if (ret == -ENOENT) {
		nm_key_path(nm, path);
		return nm_plan_add(plan, "state: create private key %s", path);
	}
	if (ret < 0)
		return ret;
	*have_key = true;
	return 0;
}

static int nm_plan_state(struct nm *nm, struct nm_plan *plan)
{
	char path[PATH_MAX], err[512] = "";
	int ret;

	snprintf(path, sizeof(path), "%s/node.db", nm->cfg.state_dir);
	if (access(path, F_OK) < 0) {
		if (errno != ENOENT)
			return -errno;
		return nm_plan_add(plan, "state: create %s", path);
	}
	ret = nm_state_open_readonly(nm, err, sizeof(err));
	if (ret < 0)
		log_error("opening state failed", "err=%s", err);
	return ret;
}

static int nm_plan_cluster(struct nm *nm, bool have_key, struct nm_plan *plan,
			   struct nm_peer **peers, size_t *n_peers)
{
	Wgcni__Cluster__V1__ListNodesRequest req = WGCNI__CLUSTER__V1__LIST_NODES_REQUEST__INIT;
	ProtobufCMessage *resp = NULL;
	struct rpc_error err = { 0 };
	struct rpc_client *rpc;
	int ret;

	rpc = nm_sync_client(nm, NM_PLAN_CALL_TIMEOUT_MS);
	if (!rpc)
		return -errno ? -errno : -EINVAL;
	ret = rpc_call(rpc, nm_path_list_nodes, &req.base,
		       &wgcni__cluster__v1__list_nodes_response__descriptor, &resp,
		       NM_PLAN_CALL_TIMEOUT_MS, &err);
	if (ret < 0) {
		log_error("ListNodes failed", "url=%s err=%s message=%s",
			  nm->cfg.cluster_manager, strerror(-ret), err.message);
		goto out;
	}
	/* A gateway's external peers are wanted peers, not ones to remove
	 * (the interface is not touched: iface_ready is false here). */
	if (nm->cfg.gateway)
		ret = nm_ext_fetch(nm, rpc);
	if (ret == 0)
		ret = nm_plan_node(nm, (Wgcni__Cluster__V1__ListNodesResponse *)resp, have_key,
				   plan);
	if (ret == 0)
		ret = nm_plan_peers((Wgcni__Cluster__V1__ListNodesResponse *)resp,
				    nm->cfg.node_name, peers, n_peers);
out:
	protobuf_c_message_free_unpacked(resp, NULL);
	rpc_client_free(rpc);
	return ret;
}

int nm_plan_run(struct nm *nm)
{
	struct nm_plan plan = { .dry = true };
	struct nm_peer *peers = NULL;
	size_t n_peers = 0;
	bool have_key;
	int ret;

	if (!nm->cfg.cluster_manager || !nm->cfg.endpoint) {
		log_error("--cluster-manager and --endpoint are required", NULL);
		return 1;
	}
	ret = nm_plan_key(nm, &have_key, &plan);
	if (ret == 0)
		ret = nm_psk_load(nm);
	if (ret == 0)
		ret = nm_plan_state(nm, &plan);
	if (ret == 0)
		ret = nm_plan_cluster(nm, have_key, &plan, &peers, &n_peers);
	if (ret == 0 && !nm->n_subnets)
		ret = nm_plan_add(&plan, "interface %s: set up once the subnet is allocated",
				  nm->cfg.ifname);
	else if (ret == 0) {
		if (!nm->db && !nm->n_cidrs)
			ret = nm_plan_add(&plan, "routes: the cluster CIDRs come with the subnet"
					  " allocation");
		if (ret == 0)
			ret = nm_iface_setup(nm, &plan);
		if (ret == 0)
			ret = nm_iface_reconcile_peers(nm, peers, n_peers, true, &plan);
	}
	if (ret == 0) {
		for (size_t i = 0; i < plan.n; i++)
			printf("%s\n", plan.lines[i]);
		if (!plan.n)
			printf("nothing to change\n");
		fflush(stdout);
	} else {
		log_error("plan failed", "err=%s", strerror(-ret));
	}
	ret = ret < 0 ? 1 : plan.n ? 2 : 0;
	nm_peers_free(peers, n_peers);
	nm_plan_free(&plan);
	nm_state_close(nm);
	nm_exts_free(nm->exts, nm->n_exts);
	nm->exts = NULL;
	nm->n_exts = 0;
	nm_psk_wipe(nm);
	key_wipe(nm->private_key, sizeof(nm->private_key));
	return ret;
}

/* --- drift repair -------------------------------------------------------- */

static void *nm_repair_main(void *arg)
{
	struct nm *nm = arg;
	int ret, ret2;

	for (;;) {
		nm_sleep(nm, NM_REPAIR_PERIOD_MS);
		if (*nm->stop)
			break;
		pthread_mutex_lock(&nm->lock);
		ret = nm_iface_repair(nm);
		ret2 = nm_mesh_repair(nm);
		pthread_mutex_unlock(&nm->lock);
		if (ret < 0)
			log_warnx("drift repair failed", "interface=%s err=%s", nm->cfg.ifname,
				  strerror(-ret));
		if (ret2 < 0)
			log_warnx("container mesh repair failed", "err=%s", strerror(-ret2));
	}
	return NULL;
}

int nm_repair_start(struct nm *nm)
{
	int ret = -pthread_create(&nm->repair_thread, NULL, nm_repair_main, nm);

	if (ret == 0)
		nm->repair_started = true;
	return ret;
}

/* After *nm->stop is set: the thread ends within one pass. */
void nm_repair_stop(struct nm *nm)
{
	if (!nm->repair_started)
		return;
	pthread_join(nm->repair_thread, NULL);
	nm->repair_started = false;
}
