/*
 * The node manager API for the plugin, over cni/nmhttp.c (Connect unary
 * calls, application/proto), errors mapped to CNI codes (nmclient.h).
 */
#include "nmclient.h"

#include "log.h"
#include "nmhttp.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NM_SERVICE "/wgcni.node.v1.NodeService/"

struct nmc {
	struct nmh *http;
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
	nm->http = nmh_new(url);
	if (!nm->http) {
		if (errno == EINVAL) {
			free(nm->url);
			free(nm);
			cni_fail(e, CNI_ERR_INVALID_CONFIG, -EINVAL, "invalid nodeManager URL",
				 "`%s': want unix:///path/to.sock or http://host:port", url);
			return NULL;
		}
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
	nmh_free(nm->http);
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

/* One POST: 0 with *resp, or -EREMOTEIO with *code and msg (a Connect
 * error), or another negative errno (no answer, or an undecodable one). */
static int nmc_post(struct nmc *nm, const char *path, const ProtobufCMessage *req,
		    const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
		    enum connect_code *code, char *msg, size_t msglen)
{
	size_t len = protobuf_c_message_get_packed_size(req), alen;
	uint8_t *body = malloc(len ? len : 1);
	int ret, status = 0;
	char *answer;

	if (!body)
		return -ENOMEM;
	protobuf_c_message_pack(req, body);
	ret = nmh_post(nm->http, path, CONNECT_CTYPE_PROTO, body, len, NMC_TIMEOUT_MS,
		       &status, &answer, &alen);
	free(body);
	if (ret) {
		snprintf(msg, msglen, "%s", strerror(-ret));
		return ret;
	}
	if (status != 200) {
		*code = connect_error_decode(answer, alen, status, msg, msglen);
		ret = -EREMOTEIO;
	} else {
		*resp = protobuf_c_message_unpack(resp_desc, NULL, alen, (const uint8_t *)answer);
		if (!*resp) {
			snprintf(msg, msglen, "cannot decode %s from the answer to %s",
				 resp_desc->name, path);
			ret = -EPROTO;
		}
	}
	free(answer);
	return ret;
}

int nmc_call(struct nmc *nm, const char *method, const ProtobufCMessage *req,
	    const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
	    enum connect_code tolerate, struct cni_err *e)
{
	enum connect_code code = CONNECT_INTERNAL;
	char path[128], msg[512] = "";
	int ret;

	*resp = NULL;
	snprintf(path, sizeof(path), NM_SERVICE "%s", method);
	ret = nmc_post(nm, path, req, resp_desc, resp, &code, msg, sizeof(msg));
	if (!ret)
		return 0;
	*resp = NULL;
	if (nmc_unreachable(ret)) {
		log_warnx("node manager unreachable", "method=%s url=%s err=%s",
			  method, nm->url, strerror(-ret));
		return cni_fail(e, CNI_ERR_TRY_AGAIN, ret, "node manager unreachable",
				"%s", nm->url);
	}
	/* It answered, but cannot serve now (e.g. still starting). */
	if (ret == -EREMOTEIO && code == CONNECT_UNAVAILABLE)
		return cni_fail(e, CNI_ERR_TRY_AGAIN, ret, "node manager unavailable",
				"%s: %s: %s", nm->url, method, msg);
	if (ret == -EREMOTEIO) {
		if (tolerate != CONNECT_OK && code == tolerate)
			return 1;
		return cni_fail(e, CNI_ERR_NODE_MANAGER, ret, "node manager refused the call",
				"%s: %s: %s", method, connect_code_name(code), msg);
	}
	return cni_fail(e, CNI_ERR_NODE_MANAGER, ret, "node manager call failed",
			"%s at %s: %s", method, nm->url, msg);
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
