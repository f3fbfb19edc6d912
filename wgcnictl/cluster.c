/* Commands against the cluster manager: nodes, node NAME, delete-node NAME. */
#include "ctl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CM_SERVICE "wgcni.cluster.v1.ClusterService"

int ctl_list_nodes(struct ctl *ctl, Wgcni__Cluster__V1__ListNodesResponse **resp,
		   char *why, size_t whylen)
{
	Wgcni__Cluster__V1__ListNodesRequest req = WGCNI__CLUSTER__V1__LIST_NODES_REQUEST__INIT;

	*resp = NULL;
	return ctl_call(ctl, CTL_CLUSTER_MANAGER, CM_SERVICE, "ListNodes", &req.base,
			&wgcni__cluster__v1__list_nodes_response__descriptor,
			(ProtobufCMessage **)resp, NULL, why, whylen);
}

const Wgcni__Cluster__V1__Node *
ctl_find_node(const Wgcni__Cluster__V1__ListNodesResponse *nodes, const char *name)
{
	for (size_t i = 0; nodes && i < nodes->n_nodes; i++)
		if (!strcmp(nodes->nodes[i]->name, name))
			return nodes->nodes[i];
	return NULL;
}

static void last_seen(const struct ctl *ctl, const char *s, char *out, size_t outlen)
{
	time_t t;

	if (!s || !*s)
		snprintf(out, outlen, "never");
	else if (fmt_parse_rfc3339(s, &t))
		snprintf(out, outlen, "%s", s); /* show what we cannot read */
	else
		fmt_ago(ctl->now, t, out, outlen);
}

int cmd_nodes(struct ctl *ctl, int argc, char **argv)
{
	Wgcni__Cluster__V1__ListNodesResponse *resp = NULL;
	struct fmt_table *t;
	int ret;

	ret = CTL_ERR;
	if (ctl_list_nodes(ctl, &resp, NULL, 0))
		goto out;
	if (ctl->output == CTL_OUTPUT_JSON) {
		ret = ctl_print_message(&resp->base);
		goto out_free_resp;
	}
	t = fmt_table_new("NAME", "SUBNETS", "ENDPOINT", "ADDRESS", "LAST SEEN", "STALE",
			  "PUBLIC KEY", NULL);
	ret = t ? 0 : -ENOMEM;
	for (size_t i = 0; i < resp->n_nodes && !ret; i++) {
		const Wgcni__Cluster__V1__Node *n = resp->nodes[i];
		char subnets[512], seen[64];

		fmt_join(n->subnets, n->n_subnets, ",", subnets, sizeof(subnets));
		last_seen(ctl, n->last_seen, seen, sizeof(seen));
		ret = fmt_table_add(t, n->name, subnets, n->endpoint, n->address, seen,
				    n->stale ? "yes" : "no", n->public_key);
	}
	ret = ctl_print_table(t, ret, "nodes");
out_free_resp:
	protobuf_c_message_free_unpacked(&resp->base, NULL);
out:
	return ret;
}

int cmd_node(struct ctl *ctl, int argc, char **argv)
{
	Wgcni__Cluster__V1__ListNodesResponse *resp = NULL;
	const Wgcni__Cluster__V1__Node *n;
	char subnets[512], seen[64];
	int ret;

	ret = CTL_ERR;
	if (ctl_list_nodes(ctl, &resp, NULL, 0))
		goto out;
	n = ctl_find_node(resp, argv[0]);
	if (!n) {
		ctl_errorx("node `%s' not found on the cluster manager at `%s'", argv[0],
			   ctl_url(ctl, CTL_CLUSTER_MANAGER));
		goto out_free_resp;
	}
	if (ctl->output == CTL_OUTPUT_JSON) {
		ret = ctl_print_message(&n->base);
		goto out_free_resp;
	}
	fmt_join(n->subnets, n->n_subnets, ", ", subnets, sizeof(subnets));
	last_seen(ctl, n->last_seen, seen, sizeof(seen));
	printf("Name:        %s\n"
	       "Subnets:     %s\n"
	       "Address:     %s\n"
	       "Endpoint:    %s\n"
	       "Public key:  %s\n"
	       "Last seen:   %s%s%s%s\n"
	       "Stale:       %s\n",
	       n->name, subnets, *n->address ? n->address : "-",
	       *n->endpoint ? n->endpoint : "- (not registered)",
	       *n->public_key ? n->public_key : "- (not registered)", seen,
	       *n->last_seen ? " (" : "", n->last_seen, *n->last_seen ? ")" : "",
	       n->stale ? "yes (out of every peer list until it calls again)" : "no");
	ret = CTL_OK;
out_free_resp:
	protobuf_c_message_free_unpacked(&resp->base, NULL);
out:
	return ret;
}

int cmd_delete_node(struct ctl *ctl, int argc, char **argv)
{
	Wgcni__Cluster__V1__DeleteNodeRequest req = WGCNI__CLUSTER__V1__DELETE_NODE_REQUEST__INIT;
	Wgcni__Cluster__V1__DeleteNodeResponse *resp = NULL;
	struct rpc_error err;
	char why[1024];
	int ret;

	req.node_name = argv[0];
	ctl->quiet = true;
	ret = ctl_call(ctl, CTL_CLUSTER_MANAGER, CM_SERVICE, "DeleteNode", &req.base,
		       &wgcni__cluster__v1__delete_node_response__descriptor,
		       (ProtobufCMessage **)&resp, &err, why, sizeof(why));
	ctl->quiet = false;
	if (ret == -EREMOTEIO && err.code == CONNECT_NOT_FOUND) {
		ctl_errorx("node `%s' not found on the cluster manager at `%s'", argv[0],
			   ctl_url(ctl, CTL_CLUSTER_MANAGER));
		return CTL_ERR;
	}
	if (ret) {
		ctl_errorx("DeleteNode `%s': %s", argv[0], why);
		return CTL_ERR;
	}
	if (ctl->output == CTL_OUTPUT_JSON)
		ret = ctl_print_message(&resp->base);
	else
		printf("node `%s' deleted\n", argv[0]);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return ret;
}
