/*
 * wgcnictl internals. One struct ctl carries the options and the clients
 * (created on first use, so a command talks only to the daemon it needs).
 * Commands print their result on stdout and one `wgcnictl: ...' line on
 * stderr for an error; they return CTL_OK, CTL_ERR (exit 1) or CTL_USAGE
 * (exit 2).
 */
#ifndef WGCNICTL_CTL_H
#define WGCNICTL_CTL_H

#include "fmt.h"
#include "promtext.h"
#include "rpc.h"
#include "wgcni/cluster/v1/cluster.pb-c.h"

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <time.h>

#define CTL_PROG "wgcnictl"
#define CTL_DEFAULT_NODE_MANAGER "unix:///run/wgcni/node-manager.sock"
#define CTL_DEFAULT_CLUSTER_MANAGER "http://127.0.0.1:8080"
/* WireGuard rekeys every 2 minutes and gives up on a session after 3: a
 * handshake older than that means the tunnel is down. */
#define CTL_HANDSHAKE_STALE_S 180

enum { CTL_OK = 0, CTL_ERR = 1, CTL_USAGE = 2 };

enum ctl_output { CTL_OUTPUT_TABLE, CTL_OUTPUT_JSON };

enum ctl_daemon { CTL_CLUSTER_MANAGER, CTL_NODE_MANAGER };

struct ctl {
	const char *cm_url;
	const char *nm_url;
	bool cm_explicit; /* given on the command line or in the environment */
	const char *token_file;
	const char *ca_file; /* PEM CA(s) trusted for https:// instead of the system's */
	enum ctl_output output;
	long timeout_ms;
	time_t now;
	char *token;
	struct rpc_client *cm, *nm;
	/* Print errors (false while `status' probes). */
	bool quiet;
	/* external add: --public-key KEY | --generate-key, --location L */
	const char *ext_public_key;
	bool ext_generate;
	const char *ext_location;
};

const char *ctl_url(const struct ctl *ctl, enum ctl_daemon d);
const char *ctl_daemon_name(enum ctl_daemon d);

/*
 * Call d's "/<service>/<method>" and unpack into *resp. On failure prints
 * one line naming the call, the daemon and the reason (unless ctl->quiet,
 * then the reason goes into why) and returns the negative errno of
 * rpc_call; err (may be NULL) receives the Connect error.
 */
int ctl_call(struct ctl *ctl, enum ctl_daemon d, const char *service,
	     const char *method, const ProtobufCMessage *req,
	     const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
	     struct rpc_error *err, char *why, size_t whylen);

/* GET path from d (body malloc'd, NUL-terminated). Same error reporting. */
int ctl_get(struct ctl *ctl, enum ctl_daemon d, const char *path, char **body,
	    int *status, char *why, size_t whylen);

void ctl_errorx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print j (a reference is taken over: j is decref'd) as indented JSON. */
int ctl_print_json(json_t *j);
/* pjson_encode(msg) printed as above. */
int ctl_print_message(const ProtobufCMessage *msg);
/* Prints t on stdout and frees it. t NULL or err non-zero (building the
 * table failed, -ENOMEM) prints "listing <what>: out of memory" instead.
 * CTL_OK or CTL_ERR. */
int ctl_print_table(struct fmt_table *t, int err, const char *what);

/* --- node.c: what a node manager shows of its node --- */

struct ctl_peer {
	const char *public_key; /* borrowed from the view's sources */
	const char *name;
	bool container;
	const void *alloc; /* Wgcni__Node__V1__Allocation *, for containers */
	bool has_stats;
	double rx_bytes, tx_bytes;
	double last_handshake; /* UNIX time, 0 = never */
};

struct ctl_node_view {
	void *node;        /* Wgcni__Node__V1__GetNodeResponse * */
	void *allocations; /* Wgcni__Node__V1__ListAllocationsResponse * */
	struct promtext metrics;
	struct ctl_peer *peers;
	size_t n_peers;
	double pool_used, pool_free;
	bool has_pool;
};

/* GetNode + ListAllocations + GET /metrics from the node manager. 0, or
 * negative errno with the reason printed (or in why when ctl->quiet). */
int ctl_node_view_load(struct ctl *ctl, struct ctl_node_view *v, char *why, size_t whylen);
void ctl_node_view_free(struct ctl_node_view *v);

/* --- cluster.c: the cluster manager's node list --- */

/* ListNodes; *resp is NULL on failure. Errors as ctl_call. */
int ctl_list_nodes(struct ctl *ctl, Wgcni__Cluster__V1__ListNodesResponse **resp,
		   char *why, size_t whylen);
/* The node called name in nodes (may be NULL), or NULL. */
const Wgcni__Cluster__V1__Node *
ctl_find_node(const Wgcni__Cluster__V1__ListNodesResponse *nodes, const char *name);

/* --- the commands --- */

int cmd_nodes(struct ctl *ctl, int argc, char **argv);
int cmd_node(struct ctl *ctl, int argc, char **argv);
int cmd_delete_node(struct ctl *ctl, int argc, char **argv);
int cmd_peers(struct ctl *ctl, int argc, char **argv);
int cmd_allocations(struct ctl *ctl, int argc, char **argv);
int cmd_status(struct ctl *ctl, int argc, char **argv);
/* external.c */
int cmd_external(struct ctl *ctl, int argc, char **argv);
int cmd_locations(struct ctl *ctl, int argc, char **argv);

#endif
