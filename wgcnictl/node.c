/*
 * Commands against a node manager: peers and allocations. The peer view is
 * built from what the node manager publishes, nothing private: GetNode,
 * ListAllocations (which container owns which key) and the per-peer series
 * of its /metrics (wgcni_peer_rx_bytes, wgcni_peer_tx_bytes,
 * wgcni_peer_last_handshake_seconds, labelled peer=<public key>, name=...).
 */
#include "ctl.h"
#include "pjson.h"
#include "wgcni/node/v1/node.pb-c.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NM_SERVICE "wgcni.node.v1.NodeService"

typedef Wgcni__Node__V1__GetNodeResponse GetNodeResp;
typedef Wgcni__Node__V1__ListAllocationsResponse ListAllocResp;
typedef Wgcni__Node__V1__Allocation Alloc;

static bool is_peer_series(const char *name)
{
	return !strcmp(name, "wgcni_peer_rx_bytes") || !strcmp(name, "wgcni_peer_tx_bytes") ||
	       !strcmp(name, "wgcni_peer_last_handshake_seconds");
}

/* The public key of a peer series, or NULL for another series. */
static const char *series_peer(const struct promtext_series *s)
{
	return is_peer_series(s->name) ? promtext_label(s, "peer") : NULL;
}

static int key_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int peer_key_cmp(const void *key, const void *peer)
{
	return strcmp(key, ((const struct ctl_peer *)peer)->public_key);
}

/*
 * One peer per distinct public key among the allocations and the peer
 * series, sorted by key, so that view_peer finds each in O(log n): a node
 * of a large cluster has a peer per other node and three series for each.
 */
static int view_make_peers(struct ctl_node_view *v)
{
	const ListAllocResp *la = v->allocations;
	const char **keys;
	size_t n = 0;

	keys = calloc(la->n_allocations + v->metrics.n + 1, sizeof(*keys));
	if (!keys)
		return -ENOMEM;
	for (size_t i = 0; i < la->n_allocations; i++)
		if (la->allocations[i]->public_key && *la->allocations[i]->public_key)
			keys[n++] = la->allocations[i]->public_key;
	for (size_t i = 0; i < v->metrics.n; i++)
		if ((keys[n] = series_peer(&v->metrics.series[i])))
			n++;
	qsort(keys, n, sizeof(*keys), key_cmp);
	v->peers = calloc(n + 1, sizeof(*v->peers));
	if (!v->peers) {
		free(keys);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		if (!v->n_peers || strcmp(v->peers[v->n_peers - 1].public_key, keys[i]))
			v->peers[v->n_peers++].public_key = keys[i];
	free(keys);
	return 0;
}

static struct ctl_peer *view_peer(struct ctl_node_view *v, const char *key)
{
	return bsearch(key, v->peers, v->n_peers, sizeof(*v->peers), peer_key_cmp);
}

static int view_add_metrics(struct ctl_node_view *v)
{
	for (size_t i = 0; i < v->metrics.n; i++) {
		const struct promtext_series *s = &v->metrics.series[i];
		const char *key = series_peer(s);
		struct ctl_peer *p;

		if (!strcmp(s->name, "wgcni_pool_addresses")) {
			const char *state = promtext_label(s, "state");

			if (state && !strcmp(state, "used"))
				v->pool_used += s->value;
			else if (state && !strcmp(state, "free"))
				v->pool_free += s->value;
			v->has_pool = true;
			continue;
		}
		if (!key)
			continue;
		p = view_peer(v, key);
		if (!p)
			return -ENOENT; /* not from view_make_peers: cannot be */
		if (!p->name)
			p->name = promtext_label(s, "name");
		p->has_stats = true;
		if (!strcmp(s->name, "wgcni_peer_rx_bytes"))
			p->rx_bytes = s->value;
		else if (!strcmp(s->name, "wgcni_peer_tx_bytes"))
			p->tx_bytes = s->value;
		else
			p->last_handshake = isfinite(s->value) && s->value > 0 ? s->value : 0;
	}
	return 0;
}

/* Containers are the peers whose key an allocation holds; a container with
 * a key but no series yet is listed too (configured, no stats). */
static int view_add_allocations(struct ctl_node_view *v)
{
	const ListAllocResp *la = v->allocations;

	for (size_t i = 0; i < la->n_allocations; i++) {
		const Alloc *a = la->allocations[i];
		struct ctl_peer *p;

		if (!a->public_key || !*a->public_key)
			continue;
		p = view_peer(v, a->public_key);
		if (!p)
			return -ENOENT;
		p->container = true;
		p->alloc = a;
	}
	return 0;
}

void ctl_node_view_free(struct ctl_node_view *v)
{
	if (!v)
		return;
	free(v->peers);
	promtext_free(&v->metrics);
	if (v->allocations)
		protobuf_c_message_free_unpacked(v->allocations, NULL);
	if (v->node)
		protobuf_c_message_free_unpacked(v->node, NULL);
	memset(v, 0, sizeof(*v));
}

int ctl_node_view_load(struct ctl *ctl, struct ctl_node_view *v, char *why, size_t whylen)
{
	Wgcni__Node__V1__GetNodeRequest gn = WGCNI__NODE__V1__GET_NODE_REQUEST__INIT;
	Wgcni__Node__V1__ListAllocationsRequest la =
		WGCNI__NODE__V1__LIST_ALLOCATIONS_REQUEST__INIT;
	char *text = NULL;
	size_t line;
	int ret, status;

	memset(v, 0, sizeof(*v));
	ret = ctl_call(ctl, CTL_NODE_MANAGER, NM_SERVICE, "GetNode", &gn.base,
		       &wgcni__node__v1__get_node_response__descriptor,
		       (ProtobufCMessage **)&v->node, NULL, why, whylen);
	if (ret)
		goto err;
	ret = ctl_call(ctl, CTL_NODE_MANAGER, NM_SERVICE, "ListAllocations", &la.base,
		       &wgcni__node__v1__list_allocations_response__descriptor,
		       (ProtobufCMessage **)&v->allocations, NULL, why, whylen);
	if (ret)
		goto err;
	ret = ctl_get(ctl, CTL_NODE_MANAGER, "/metrics", &text, &status, why, whylen);
	if (ret)
		goto err;
	ret = promtext_parse(text, strlen(text), &v->metrics, &line);
	free(text);
	if (ret) {
		snprintf(why, whylen, "the node manager's /metrics does not parse (line %zu)",
			 line);
		if (!ctl->quiet)
			ctl_errorx("%s", why);
		goto err;
	}
	ret = view_make_peers(v);
	if (!ret)
		ret = view_add_allocations(v);
	if (!ret)
		ret = view_add_metrics(v);
	if (ret) {
		snprintf(why, whylen, "building the peer list: %s", strerror(-ret));
		if (!ctl->quiet)
			ctl_errorx("%s", why);
		goto err;
	}
	return 0;

err:
	ctl_node_view_free(v);
	return ret;
}

/* Nodes first, then containers, each by name. */
static int peer_cmp(const void *a, const void *b)
{
	const struct ctl_peer *x = a, *y = b;

	if (x->container != y->container)
		return x->container ? 1 : -1;
	return strcmp(x->name ? x->name : "", y->name ? y->name : "");
}

static int node_key_cmp(const void *a, const void *b)
{
	const Wgcni__Cluster__V1__Node *const *x = a, *const *y = b;

	return strcmp((*x)->public_key, (*y)->public_key);
}

static int key_node_cmp(const void *key, const void *node)
{
	return strcmp(key, (*(const Wgcni__Cluster__V1__Node *const *)node)->public_key);
}

/* The other nodes as the cluster manager lists them, when asked for with
 * --cluster-manager: their subnets and endpoints, sorted by public key.
 * Optional, so quiet. */
static Wgcni__Cluster__V1__ListNodesResponse *cluster_nodes(struct ctl *ctl)
{
	Wgcni__Cluster__V1__ListNodesResponse *resp;
	char why[512];
	bool quiet = ctl->quiet;

	if (!ctl->cm_explicit)
		return NULL;
	ctl->quiet = true;
	if (ctl_list_nodes(ctl, &resp, why, sizeof(why)))
		fprintf(stderr, CTL_PROG ": warning: node details unavailable: %s\n", why);
	else
		qsort(resp->nodes, resp->n_nodes, sizeof(*resp->nodes), node_key_cmp);
	ctl->quiet = quiet;
	return resp;
}

/* nodes->nodes must be sorted by public key (node_key_cmp). */
static const Wgcni__Cluster__V1__Node *
cluster_node(const Wgcni__Cluster__V1__ListNodesResponse *nodes, const char *key)
{
	Wgcni__Cluster__V1__Node **n;

	if (!nodes)
		return NULL;
	n = bsearch(key, nodes->nodes, nodes->n_nodes, sizeof(*nodes->nodes), key_node_cmp);
	return n ? *n : NULL;
}

static json_t *peer_json(const struct ctl_peer *p, const Wgcni__Cluster__V1__Node *cn)
{
	const Alloc *a = p->alloc;
	json_t *j = json_object();
	int ret = 0;

	if (!j)
		return NULL;
	if (p->name)
		ret |= json_object_set_new(j, "name", json_string(p->name));
	ret |= json_object_set_new(j, "kind", json_string(p->container ? "container" : "node"));
	ret |= json_object_set_new(j, "publicKey", json_string(p->public_key));
	if (a) {
		ret |= json_object_set_new(j, "allocation", pjson_encode(&a->base));
	}
	if (cn)
		ret |= json_object_set_new(j, "node", pjson_encode(&cn->base));
	if (p->has_stats) {
		ret |= json_object_set_new(j, "rxBytes", json_integer((json_int_t)p->rx_bytes));
		ret |= json_object_set_new(j, "txBytes", json_integer((json_int_t)p->tx_bytes));
		ret |= json_object_set_new(j, "lastHandshakeSeconds",
					   json_integer((json_int_t)p->last_handshake));
	}
	if (ret) {
		json_decref(j);
		return NULL;
	}
	return j;
}

static int peers_json(const struct ctl_node_view *v,
		      const Wgcni__Cluster__V1__ListNodesResponse *nodes)
{
	const GetNodeResp *gn = v->node;
	json_t *root = json_object(), *arr = json_array();

	if (!root || !arr)
		goto err_nomem;
	if (json_object_set_new(root, "node", pjson_encode(&gn->node->base)))
		goto err_nomem;
	for (size_t i = 0; i < v->n_peers; i++) {
		json_t *pj = peer_json(&v->peers[i], cluster_node(nodes, v->peers[i].public_key));

		if (!pj || json_array_append_new(arr, pj))
			goto err_nomem;
	}
	if (json_object_set(root, "peers", arr))
		goto err_nomem;
	json_decref(arr);
	return ctl_print_json(root);

err_nomem:
	json_decref(arr);
	json_decref(root);
	ctl_errorx("encoding JSON: out of memory");
	return CTL_ERR;
}

int cmd_peers(struct ctl *ctl, int argc, char **argv)
{
	Wgcni__Cluster__V1__ListNodesResponse *nodes = NULL;
	struct ctl_node_view v;
	struct fmt_table *t;
	char why[1024];
	int ret;

	ret = CTL_ERR;
	if (ctl_node_view_load(ctl, &v, why, sizeof(why)))
		goto out;
	qsort(v.peers, v.n_peers, sizeof(*v.peers), peer_cmp);
	nodes = cluster_nodes(ctl);
	if (ctl->output == CTL_OUTPUT_JSON) {
		ret = peers_json(&v, nodes);
		goto out_free;
	}
	t = fmt_table_new("NAME", "KIND", "ALLOWED IPS", "ENDPOINT", ">RX", ">TX", "HANDSHAKE",
			  "PUBLIC KEY", NULL);
	ret = t ? 0 : -ENOMEM;
	for (size_t i = 0; i < v.n_peers && !ret; i++) {
		const struct ctl_peer *p = &v.peers[i];
		const Wgcni__Cluster__V1__Node *cn = cluster_node(nodes, p->public_key);
		const Alloc *a = p->alloc;
		char allowed[512] = "", rx[32] = "", tx[32] = "", hs[32] = "", cname[64];
		const char *endpoint = NULL, *name = p->name;

		if (a) {
			fmt_join(a->addresses, a->n_addresses, ",", allowed, sizeof(allowed));
			endpoint = a->endpoint;
			/* The short container ID, as in `allocations'. */
			snprintf(cname, sizeof(cname), "%.12s/%s", a->container_id, a->ifname);
			name = cname;
		} else if (cn) {
			fmt_join(cn->subnets, cn->n_subnets, ",", allowed, sizeof(allowed));
			endpoint = cn->endpoint;
			if (!name)
				name = cn->name;
		}
		if (p->has_stats) {
			fmt_bytes(p->rx_bytes, rx, sizeof(rx));
			fmt_bytes(p->tx_bytes, tx, sizeof(tx));
			fmt_ago(ctl->now, (time_t)p->last_handshake, hs, sizeof(hs));
		}
		ret = fmt_table_add(t, name, p->container ? "container" : "node", allowed,
				    endpoint, rx, tx, hs, p->public_key);
	}
	ret = ctl_print_table(t, ret, "peers");
out_free:
	if (nodes)
		protobuf_c_message_free_unpacked(&nodes->base, NULL);
	ctl_node_view_free(&v);
out:
	return ret;
}

int cmd_allocations(struct ctl *ctl, int argc, char **argv)
{
	Wgcni__Node__V1__ListAllocationsRequest req =
		WGCNI__NODE__V1__LIST_ALLOCATIONS_REQUEST__INIT;
	ListAllocResp *resp = NULL;
	struct fmt_table *t;
	int ret;

	ret = CTL_ERR;
	if (ctl_call(ctl, CTL_NODE_MANAGER, NM_SERVICE, "ListAllocations", &req.base,
		     &wgcni__node__v1__list_allocations_response__descriptor,
		     (ProtobufCMessage **)&resp, NULL, NULL, 0))
		goto out;
	if (ctl->output == CTL_OUTPUT_JSON) {
		ret = ctl_print_message(&resp->base);
		goto out_free_resp;
	}
	t = fmt_table_new("CONTAINER", "IFNAME", "ADDRESSES", "NETNS", "PUBLIC KEY", NULL);
	ret = t ? 0 : -ENOMEM;
	for (size_t i = 0; i < resp->n_allocations && !ret; i++) {
		const Alloc *a = resp->allocations[i];
		char id[13], addrs[512];

		/* 12 characters identify a container, as docker and podman show them. */
		snprintf(id, sizeof(id), "%s", a->container_id);
		fmt_join(a->addresses, a->n_addresses, ",", addrs, sizeof(addrs));
		ret = fmt_table_add(t, id, a->ifname, addrs, a->netns, a->public_key);
	}
	ret = ctl_print_table(t, ret, "allocations");
out_free_resp:
	protobuf_c_message_free_unpacked(&resp->base, NULL);
out:
	return ret;
}
