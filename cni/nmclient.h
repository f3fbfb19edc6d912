/*
 * The plugin's side of the node manager API (wgcni.node.v1.NodeService),
 * with every failure mapped to a CNI error in one place:
 *   unreachable (no socket, refused, timeout)
 *        -> 11 "node manager unreachable", details = the URL, so the runtime
 *           retries later;
 *   the Connect error `unavailable` -> 11 "node manager unavailable";
 *   any other Connect error -> 101, details = Connect code and message;
 *   an undecodable answer -> 101.
 */
#ifndef WGCNI_CNI_NMCLIENT_H
#define WGCNI_CNI_NMCLIENT_H

#include "cni.h"
#include "connect_proto.h"
#include "wgcni/node/v1/node.pb-c.h"

#include <protobuf-c/protobuf-c.h>

/* Per call: connect + answer. ADD makes a handful of calls. */
#define NMC_TIMEOUT_MS 10000

struct nmc;

/* NULL with e set (7 for a URL the RPC client refuses). */
struct nmc *nmc_open(const char *url, struct cni_err *e);
void nmc_close(struct nmc *nm);
const char *nmc_url(const struct nmc *nm);

/*
 * Call method ("AllocateIP") with req; *resp (free with
 * protobuf_c_message_free_unpacked(*resp, NULL)) on success. Returns 0; or
 * 1, e untouched and *resp NULL, when the node manager answered the Connect
 * error `tolerate` (e.g. CONNECT_NOT_FOUND for an idempotent Release;
 * CONNECT_OK tolerates nothing); or a negative errno with e set.
 */
int nmc_call(struct nmc *nm, const char *method, const ProtobufCMessage *req,
	    const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
	    enum connect_code tolerate, struct cni_err *e);

/* GetNode, the node as a convenience. *node_resp frees it. */
int nmc_get_node(struct nmc *nm, Wgcni__Node__V1__GetNodeResponse **resp,
		struct cni_err *e);

#endif
