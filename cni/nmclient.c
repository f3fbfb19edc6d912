#include "nmclient.h"

#include "log.h"
#include "rpc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NM_SERVICE "/wgcni.node.v1.NodeService/"

struct nmc {
	struct rpc_client *rpc;
	char *url;
};

struct nmc *nmc_open(const char *url, struct cni_err *e)
{
	struct nmc *nm;

	nm = calloc(1, sizeof(*nm));
	if (!nm)
		goto err;
	nm->url = strdup(url);
	if (!nm->url)
		goto err_free_nm;
	nm->rpc = rpc_client_new(url, NULL, NMC_TIMEOUT_MS);
	if (!nm->rpc) {
		if (errno == EINVAL)
			cni_fail(e, CNI_ERR_INVALID_CONFIG, -EINVAL,
				 "invalid nodeManager URL", "`%s'", url);
		goto err_free_url;
	}
	return nm;

err_free_url:
	free(nm->url);
err_free_nm:
	free(nm);
err:
	cni_fail(e, CNI_ERR_INTERNAL, -ENOMEM, "cannot create node manager client",
		 "%s: %s", url, strerror(errno));
	return NULL;
}

void nmc_close(struct nmc *nm)
{
	if (!nm)
		return;
	rpc_client_free(nm->rpc);
	free(nm->url);
	free(nm);
}

const char *nmc_url(const struct nmc *nm)
{
	return nm->url;
}

static bool nmc_unreachable(int ret)
{
	switch (ret) {
	case -ECONNREFUSED:
	case -ETIMEDOUT:
	case -EHOSTUNREACH:
	case -ENOENT:
	case -ECONNRESET:
	case -ENETUNREACH:
		return true;
	default:
		return false;
	}
}

int nmc_call(struct nmc *nm, const char *method, const ProtobufCMessage *req,
	    const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
	    enum connect_code tolerate, struct cni_err *e)
{
	struct rpc_error rerr = { 0 };
	char path[128];
	int ret;

	*resp = NULL;
	snprintf(path, sizeof(path), NM_SERVICE "%s", method);
	ret = rpc_call(nm->rpc, path, req, resp_desc, resp, 0, &rerr);
	if (!ret)
		return 0;
	*resp = NULL;
	if (nmc_unreachable(ret)) {
		log_warnx("node manager unreachable", "method=%s url=%s err=%s detail=%s",
			  method, nm->url, strerror(-ret), rerr.message);
		return cni_fail(e, CNI_ERR_TRY_AGAIN, ret, "node manager unreachable",
				"%s", nm->url);
	}
	/* It answered, but cannot serve now (e.g. still starting). */
	if (ret == -EREMOTEIO && rerr.code == CONNECT_UNAVAILABLE)
		return cni_fail(e, CNI_ERR_TRY_AGAIN, ret, "node manager unavailable",
				"%s: %s: %s", nm->url, method, rerr.message);
	if (ret == -EREMOTEIO) {
		if (tolerate != CONNECT_OK && rerr.code == tolerate)
			return 1;
		return cni_fail(e, CNI_ERR_NODE_MANAGER, ret, "node manager refused the call",
				"%s: %s: %s", method, connect_code_name(rerr.code),
				rerr.message);
	}
	return cni_fail(e, CNI_ERR_NODE_MANAGER, ret, "node manager call failed",
			"%s at %s: %s", method, nm->url, strerror(-ret));
}

int nmc_get_node(struct nmc *nm, Wgcni__Node__V1__GetNodeResponse **resp,
		struct cni_err *e)
{
	Wgcni__Node__V1__GetNodeRequest req = WGCNI__NODE__V1__GET_NODE_REQUEST__INIT;
	ProtobufCMessage *out;
	int ret;

	ret = nmc_call(nm, "GetNode", &req.base,
		      &wgcni__node__v1__get_node_response__descriptor, &out,
		      CONNECT_OK, e);
	if (ret)
		return ret;
	*resp = (Wgcni__Node__V1__GetNodeResponse *)out;
	if (!(*resp)->node) {
		protobuf_c_message_free_unpacked(out, NULL);
		*resp = NULL;
		return cni_fail(e, CNI_ERR_NODE_MANAGER, -EPROTO,
				"node manager sent no node", "GetNode at %s", nm->url);
	}
	return 0;
}
