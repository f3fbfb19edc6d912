/*
 * wgcnictl: the operator's view of a wgcni cluster. Talks to the
 * cluster manager (nodes, node, delete-node) and to a node manager (peers,
 * allocations); status asks both.
 */
#include "ctl.h"
#include "log.h"
#include "opts.h"
#include "pjson.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#define CTL_MAX_TIMEOUT_S 3600

struct ctl_cmd {
	const char *name;
	const char *args;
	int min_args, max_args;
	int (*fn)(struct ctl *ctl, int argc, char **argv);
	const char *help;
};

static const struct ctl_cmd ctl_cmds[] = {
	{ "nodes", "", 0, 0, cmd_nodes, "list the nodes the cluster manager knows" },
	{ "node", "NAME", 1, 1, cmd_node, "show one node" },
	{ "delete-node", "NAME", 1, 1, cmd_delete_node,
	  "delete a node: frees its subnet, removes it from every peer list" },
	{ "peers", "", 0, 0, cmd_peers,
	  "the node manager's WireGuard peers: traffic and last handshake" },
	{ "allocations", "", 0, 0, cmd_allocations,
	  "container addresses handed out by the node manager" },
	{ "status", "", 0, 0, cmd_status,
	  "health: daemons reachable, node registered, peers handshaking, pool usage" },
	{ "external", "add NAME (--public-key KEY | --generate-key) [--location L]", 1, 2,
	  cmd_external, "register an external peer; prints its wg-quick configuration" },
	{ "external", "list | delete NAME", 1, 2, cmd_external,
	  "the external peers and their gateways; delete one" },
	{ "locations", "", 0, 0, cmd_locations, "the locations of the gateway nodes" },
};

enum {
	OPT_CLUSTER_MANAGER = 256,
	OPT_NODE_MANAGER,
	OPT_TOKEN_FILE,
	OPT_CA_FILE,
	OPT_TIMEOUT,
	OPT_PUBLIC_KEY,
	OPT_GENERATE_KEY,
	OPT_LOCATION,
	OPT_OUTPUT = 'o',
	OPT_HELP = 'h',
	OPT_VERSION = 'V',
};

static const struct option ctl_options[] = {
	{ "cluster-manager", required_argument, NULL, OPT_CLUSTER_MANAGER },
	{ "node-manager", required_argument, NULL, OPT_NODE_MANAGER },
	{ "token-file", required_argument, NULL, OPT_TOKEN_FILE },
	{ "ca-file", required_argument, NULL, OPT_CA_FILE },
	{ "output", required_argument, NULL, OPT_OUTPUT },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "public-key", required_argument, NULL, OPT_PUBLIC_KEY },
	{ "generate-key", no_argument, NULL, OPT_GENERATE_KEY },
	{ "location", required_argument, NULL, OPT_LOCATION },
	{ "help", no_argument, NULL, OPT_HELP },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ NULL, 0, NULL, 0 },
};

struct ctl_args {
	struct ctl *ctl;
	bool help, version;
};

void ctl_errorx(const char *fmt, ...)
{
	va_list ap;

	fputs(CTL_PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: " CTL_PROG " [OPTIONS] COMMAND [ARGS]\n"
		"\n"
		"Operator CLI of wgcni, the WireGuard CNI plugin suite.\n"
		"\n"
		"Commands:\n");
	for (size_t i = 0; i < sizeof(ctl_cmds) / sizeof(ctl_cmds[0]); i++) {
		char lhs[64];

		snprintf(lhs, sizeof(lhs), "%s %s", ctl_cmds[i].name, ctl_cmds[i].args);
		if (strlen(lhs) > 18)
			fprintf(f, "  %s\n  %-18s %s\n", lhs, "", ctl_cmds[i].help);
		else
			fprintf(f, "  %-18s %s\n", lhs, ctl_cmds[i].help);
	}
	fprintf(f,
		"\n"
		"Options (each also from the environment as WGCNI_<OPTION>, e.g.\n"
		"WGCNI_CLUSTER_MANAGER; the command line wins):\n"
		"  --cluster-manager URL[,URL..]  cluster manager API (default\n"
		"                          " CTL_DEFAULT_CLUSTER_MANAGER "); the next URL is\n"
		"                          used when one is unreachable\n"
		"  --node-manager URL      node manager API, unix:///path or http://host:port\n"
		"                          (default " CTL_DEFAULT_NODE_MANAGER ")\n"
		"  --token-file FILE       bearer token for the API calls\n"
		"  --ca-file FILE          trust the CA certificate(s) in this PEM file for\n"
		"                          https:// URLs instead of the system's\n"
		"  -o, --output FORMAT     table (default) or json (the API's JSON, for scripts)\n"
		"  --timeout SECONDS       per call (default 10)\n"
		"  -h, --help              this text\n"
		"  -V, --version           the version\n"
		"\n"
		"Exit status: 0 success, 1 error (daemon unreachable, unknown node,\n"
		"refused token, unhealthy status), 2 usage error.\n");
}

static int apply_option(int val, const char *arg, void *vctx, char *err, size_t errlen)
{
	struct ctl_args *a = vctx;
	struct ctl *ctl = a->ctl;
	unsigned long v;

	switch (val) {
	case OPT_CLUSTER_MANAGER:
		ctl->cm_url = arg;
		ctl->cm_explicit = true;
		return 0;
	case OPT_NODE_MANAGER:
		ctl->nm_url = arg;
		return 0;
	case OPT_TOKEN_FILE:
		ctl->token_file = arg;
		return 0;
	case OPT_CA_FILE:
		ctl->ca_file = arg;
		return 0;
	case OPT_OUTPUT:
		if (!strcmp(arg, "table")) {
			ctl->output = CTL_OUTPUT_TABLE;
		} else if (!strcmp(arg, "json")) {
			ctl->output = CTL_OUTPUT_JSON;
		} else {
			snprintf(err, errlen, "unknown output format `%s' (table or json)", arg);
			return -EINVAL;
		}
		return 0;
	case OPT_TIMEOUT:
		if (opts_parse_ulong(arg, 1, CTL_MAX_TIMEOUT_S, &v)) {
			snprintf(err, errlen, "invalid timeout `%s' (seconds, 1..%d)", arg,
				 CTL_MAX_TIMEOUT_S);
			return -EINVAL;
		}
		ctl->timeout_ms = v * 1000;
		return 0;
	case OPT_PUBLIC_KEY:
		ctl->ext_public_key = arg;
		return 0;
	case OPT_GENERATE_KEY:
		ctl->ext_generate = true;
		return 0;
	case OPT_LOCATION:
		ctl->ext_location = arg;
		return 0;
	case OPT_HELP:
		a->help = true;
		return 0;
	case OPT_VERSION:
		a->version = true;
		return 0;
	default:
		snprintf(err, errlen, "unknown option");
		return -EINVAL;
	}
}

const char *ctl_daemon_name(enum ctl_daemon d)
{
	return d == CTL_CLUSTER_MANAGER ? "cluster manager" : "node manager";
}

const char *ctl_url(const struct ctl *ctl, enum ctl_daemon d)
{
	const struct rpc_client *c = d == CTL_CLUSTER_MANAGER ? ctl->cm : ctl->nm;

	/* Of a list, the one that answered last (or was tried last). */
	if (c)
		return rpc_client_url(c);
	return d == CTL_CLUSTER_MANAGER ? ctl->cm_url : ctl->nm_url;
}

static int ctl_load_token(struct ctl *ctl, char *why, size_t whylen)
{
	if (!ctl->token_file || ctl->token)
		return 0;
	ctl->token = rpc_read_token_file(ctl->token_file);
	if (!ctl->token) {
		int ret = -errno;

		snprintf(why, whylen, "cannot read token file `%s': %s", ctl->token_file,
			 ret == -EINVAL ? "empty token" : strerror(-ret));
		return ret;
	}
	return 0;
}

static struct rpc_client *ctl_client(struct ctl *ctl, enum ctl_daemon d, char *why,
				     size_t whylen)
{
	struct rpc_client **c = d == CTL_CLUSTER_MANAGER ? &ctl->cm : &ctl->nm;
	int ret;

	char **urls;
	size_t n = 0;

	if (*c)
		return *c;
	if (ctl_load_token(ctl, why, whylen))
		return NULL;
	/* A comma-separated list fails over between its URLs (rpc.h). */
	urls = opts_split(ctl_url(ctl, d));
	if (!urls) {
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	while (urls[n])
		n++;
	if (n)
		*c = rpc_client_new_list((const char *const *)urls, n, ctl->token,
					 ctl->timeout_ms);
	else
		errno = EINVAL;
	ret = errno;
	opts_strv_free(urls);
	errno = ret;
	if (!*c) {
		snprintf(why, whylen, "invalid %s URL `%s': %s", ctl_daemon_name(d),
			 ctl_url(ctl, d),
			 errno == EINVAL ? "expected http://, https:// or unix:///path"
					 : strerror(errno));
		return NULL;
	}
	ret = ctl->ca_file ? rpc_client_set_ca_file(*c, ctl->ca_file) : 0;
	if (ret) {
		snprintf(why, whylen, "cannot use CA file `%s': %s", ctl->ca_file,
			 strerror(-ret));
		rpc_client_free(*c);
		*c = NULL;
	}
	return *c;
}

/* Why a call got no answer from d (ret from rpc_call or rpc_get). */
static void transport_reason(const struct ctl *ctl, enum ctl_daemon d, int ret, char *out,
			     size_t outlen)
{
	/* As configured: of a list, none answered. */
	const char *url = d == CTL_CLUSTER_MANAGER ? ctl->cm_url : ctl->nm_url;

	if (ret == -EKEYREJECTED)
		snprintf(out, outlen, "the %s at `%s' has a certificate no trusted CA signed "
			 "(see --ca-file)", ctl_daemon_name(d), url);
	else
		snprintf(out, outlen, "cannot reach the %s at `%s': %s", ctl_daemon_name(d),
			 url, strerror(-ret));
}

int ctl_call(struct ctl *ctl, enum ctl_daemon d, const char *service,
	     const char *method, const ProtobufCMessage *req,
	     const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
	     struct rpc_error *err, char *why, size_t whylen)
{
	struct rpc_error e = { 0 };
	char path[256], reason[1024];
	struct rpc_client *c;
	int ret;

	c = ctl_client(ctl, d, reason, sizeof(reason));
	if (!c) {
		ret = -EINVAL;
		goto out;
	}
	snprintf(path, sizeof(path), "/%s/%s", service, method);
	ret = rpc_call(c, path, req, resp_desc, resp, 0, &e);
	if (!ret)
		return 0;
	if (ret == -EREMOTEIO)
		snprintf(reason, sizeof(reason), "%s at `%s': %s: %s%s", ctl_daemon_name(d),
			 ctl_url(ctl, d), connect_code_name(e.code), e.message,
			 e.code == CONNECT_UNAUTHENTICATED ? " (check --token-file)" : "");
	else if (ret == -EPROTO)
		snprintf(reason, sizeof(reason), "%s at `%s' sent an answer that does not decode",
			 ctl_daemon_name(d), ctl_url(ctl, d));
	else
		transport_reason(ctl, d, ret, reason, sizeof(reason));
out:
	if (err)
		*err = e;
	if (why)
		snprintf(why, whylen, "%s", reason);
	if (!ctl->quiet)
		ctl_errorx("%s: %s", method, reason);
	return ret;
}

int ctl_get(struct ctl *ctl, enum ctl_daemon d, const char *path, char **body,
	    int *status, char *why, size_t whylen)
{
	char reason[1024];
	struct rpc_client *c;
	char *buf = NULL, *nb;
	size_t len = 0;
	int ret;

	*body = NULL;
	*status = 0;
	c = ctl_client(ctl, d, reason, sizeof(reason));
	if (!c) {
		ret = -EINVAL;
		goto err;
	}
	ret = rpc_get(c, path, &buf, &len, status);
	if (ret) {
		transport_reason(ctl, d, ret, reason, sizeof(reason));
		goto err;
	}
	if (*status != 200) {
		ret = -EREMOTEIO;
		snprintf(reason, sizeof(reason), "%s at `%s' answered GET %s with HTTP %d",
			 ctl_daemon_name(d), ctl_url(ctl, d), path, *status);
		goto err_free_buf;
	}
	/* rpc_get's body need not be NUL-terminated. */
	nb = realloc(buf, len + 1);
	if (!nb) {
		ret = -ENOMEM;
		snprintf(reason, sizeof(reason), "out of memory");
		goto err_free_buf;
	}
	nb[len] = '\0';
	*body = nb;
	return 0;

err_free_buf:
	free(buf);
err:
	if (why)
		snprintf(why, whylen, "%s", reason);
	if (!ctl->quiet)
		ctl_errorx("GET %s: %s", path, reason);
	return ret;
}

int ctl_print_json(json_t *j)
{
	int ret;

	if (!j) {
		ctl_errorx("encoding JSON: out of memory");
		return CTL_ERR;
	}
	ret = json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(j);
	if (ret || fputc('\n', stdout) == EOF) {
		ctl_errorx("writing JSON to stdout failed");
		return CTL_ERR;
	}
	return CTL_OK;
}

int ctl_print_message(const ProtobufCMessage *msg)
{
	return ctl_print_json(pjson_encode(msg));
}

int ctl_print_table(struct fmt_table *t, int err, const char *what)
{
	int ret = CTL_OK;

	if (!t || err) {
		ctl_errorx("listing %s: %s", what, strerror(err ? -err : ENOMEM));
		ret = CTL_ERR;
	} else if (fmt_table_print(t, stdout)) {
		ctl_errorx("listing %s: writing to stdout failed", what);
		ret = CTL_ERR;
	}
	fmt_table_free(t);
	return ret;
}

static const struct ctl_cmd *find_cmd(const char *name)
{
	for (size_t i = 0; i < sizeof(ctl_cmds) / sizeof(ctl_cmds[0]); i++)
		if (!strcmp(ctl_cmds[i].name, name))
			return &ctl_cmds[i];
	return NULL;
}

int main(int argc, char **argv)
{
	struct ctl ctl = {
		.cm_url = CTL_DEFAULT_CLUSTER_MANAGER,
		.nm_url = CTL_DEFAULT_NODE_MANAGER,
		.output = CTL_OUTPUT_TABLE,
		.timeout_ms = 10000,
	};
	struct ctl_args a = { .ctl = &ctl };
	const struct ctl_cmd *cmd;
	char err[512];
	int first, nargs, ret;

	/* The library's warnings would be a second line next to ours. */
	log_init(CTL_PROG, LOG_LEVEL_ERROR);
	first = opts_parse(argc, argv, "o:hV", ctl_options, apply_option, &a, err,
			   sizeof(err));
	if (first < 0) {
		ctl_errorx("%s", err);
		fprintf(stderr, "Try `" CTL_PROG " --help'.\n");
		return CTL_USAGE;
	}
	if (a.help) {
		usage(stdout);
		return CTL_OK;
	}
	if (a.version) {
		printf(CTL_PROG " %s\n", WGCNI_VERSION);
		return CTL_OK;
	}
	if (first >= argc) {
		ctl_errorx("no command given");
		fprintf(stderr, "Try `" CTL_PROG " --help'.\n");
		return CTL_USAGE;
	}
	cmd = find_cmd(argv[first]);
	if (!cmd) {
		ctl_errorx("unknown command `%s'", argv[first]);
		fprintf(stderr, "Try `" CTL_PROG " --help'.\n");
		return CTL_USAGE;
	}
	nargs = argc - first - 1;
	if (nargs < cmd->min_args || nargs > cmd->max_args) {
		ctl_errorx("usage: " CTL_PROG " %s %s", cmd->name, cmd->args);
		return CTL_USAGE;
	}
	ctl.now = time(NULL);
	ret = cmd->fn(&ctl, nargs, argv + first + 1);
	rpc_client_free(ctl.cm);
	rpc_client_free(ctl.nm);
	if (ctl.token) {
		sodium_memzero(ctl.token, strlen(ctl.token));
		free(ctl.token);
	}
	if (fflush(stdout) == EOF && ret == CTL_OK) {
		ctl_errorx("writing to stdout failed");
		ret = CTL_ERR;
	}
	return ret;
}
