/*
 * STATUS and GC (CNI 1.1.0): both are about the node manager.
 */
#include "cni.h"

#include "log.h"
#include "nmclient.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Ready when the node manager answers GetNode; else 50, the spec's
 * "plugin not available" (no new ADDs until it recovers). */
int cni_cmd_status(struct cni_ctx *ctx)
{
	Wgcni__Node__V1__GetNodeResponse *node = NULL;
	struct cni_err why = { 0 };
	struct nmc *nm;
	int ret;

	nm = nmc_open(ctx->conf.node_manager, &ctx->err);
	if (!nm)
		return -EINVAL;
	ret = nmc_get_node(nm, &node, &why);
	/* why.details is the URL itself when the node manager is unreachable. */
	if (ret) {
		bool more = why.details[0] && strcmp(why.details, nmc_url(nm));

		cni_fail(&ctx->err, CNI_ERR_UNAVAILABLE, ret, "node manager unavailable",
			 "%s: %s%s%s%s", nmc_url(nm), why.msg, more ? " (" : "",
			 more ? why.details : "", more ? ")" : "");
	} else
		protobuf_c_message_free_unpacked(&node->base, NULL);
	nmc_close(nm);
	return ret;
}

/*
 * GC: the node manager releases every allocation not in the valid list
 * (dropping their peers). A released attachment's temporary device or
 * stale UAPI socket left on the host goes too.
 */
int cni_cmd_gc(struct cni_ctx *ctx)
{
	Wgcni__Node__V1__GCRequest req = WGCNI__NODE__V1__GCREQUEST__INIT;
	Wgcni__Node__V1__Attachment *atts = NULL, **ptrs = NULL;
	Wgcni__Node__V1__GCResponse *resp;
	json_t *list = ctx->conf.valid_attachments, *v;
	ProtobufCMessage *out;
	struct nmc *nm = NULL;
	char tmp[IFNAMSIZ];
	size_t n, i;
	int ret;

	/* Without the list every allocation would look stale: refuse. */
	if (!list)
		return cni_fail(&ctx->err, CNI_ERR_INVALID_CONFIG, -EINVAL,
				"GC needs the list of valid attachments",
				"missing `cni.dev/valid-attachments'");
	n = json_array_size(list);
	ret = -ENOMEM;
	atts = calloc(n ? n : 1, sizeof(*atts));
	ptrs = calloc(n ? n : 1, sizeof(*ptrs));
	if (!atts || !ptrs) {
		cni_fail(&ctx->err, CNI_ERR_INTERNAL, ret, "out of memory", NULL);
		goto out_free;
	}
	json_array_foreach(list, i, v) {
		wgcni__node__v1__attachment__init(&atts[i]);
		atts[i].container_id = (char *)json_string_value(json_object_get(v, "containerID"));
		atts[i].ifname = (char *)json_string_value(json_object_get(v, "ifname"));
		ptrs[i] = &atts[i];
	}
	req.n_valid_attachments = n;
	req.valid_attachments = ptrs;

	ret = -EINVAL;
	nm = nmc_open(ctx->conf.node_manager, &ctx->err);
	if (!nm)
		goto out_free;
	ret = nmc_call(nm, "GC", &req.base, &wgcni__node__v1__gcresponse__descriptor, &out,
		      CONNECT_OK, &ctx->err);
	if (ret)
		goto out_free;
	resp = (Wgcni__Node__V1__GCResponse *)out;
	for (i = 0; i < resp->n_released; i++) {
		const Wgcni__Node__V1__Attachment *r = resp->released[i];

		if (!r || !r->container_id || !r->ifname)
			continue;
		log_info("released stale attachment", "container=%s ifname=%s",
			 r->container_id, r->ifname);
		if (cni_tmp_ifname(r->container_id, r->ifname, tmp))
			continue;
		ret = wg_delete(tmp);
		if (ret && ret != -ENODEV)
			log_warnx("cannot delete a stale WireGuard device", "name=%s err=%s",
				  tmp, strerror(-ret));
	}
	ret = 0;
	protobuf_c_message_free_unpacked(out, NULL);
out_free:
	nmc_close(nm);
	free(ptrs);
	free(atts);
	return ret;
}
