/*
 * wgcni-cluster-manager: hands each node a subnet of the cluster CIDR(s) and
 * distributes node public keys (wgcni.cluster.v1.ClusterService).
 */
#include "api.h"
#include "config.h"
#include "connect.h"
#include "key.h"
#include "log.h"
#include "migrate.h"
#include "opts.h"
#include "sys.h"
#include "rpc.h"
#include "state.h"
#include "store_etcd_keys.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/socket.h>

#define PROG "wgcni-cluster-manager"

enum {
	OPT_LISTEN = 256,
	OPT_STATE_DIR,
	OPT_CLUSTER_CIDR,
	OPT_NODE_PREFIX_LENGTH,
	OPT_NODE_PREFIX_LENGTH_V6,
	OPT_TOKEN_FILE,
	OPT_TLS_CERT,
	OPT_TLS_KEY,
	OPT_EXTERNAL_CIDR,
	OPT_NODE_TTL,
	OPT_DELETE_AFTER,
	OPT_LOG_LEVEL,
	OPT_DATASTORE,
	OPT_ETCD_ENDPOINTS,
	OPT_ETCD_PREFIX,
	OPT_ETCD_CA_FILE,
	OPT_ETCD_CERT_FILE,
	OPT_ETCD_KEY_FILE,
	OPT_HELP = 'h',
	OPT_VERSION = 'V',
};

static const struct option cm_options[] = {
	{ "listen", required_argument, NULL, OPT_LISTEN },
	{ "state-dir", required_argument, NULL, OPT_STATE_DIR },
	{ "cluster-cidr", required_argument, NULL, OPT_CLUSTER_CIDR },
	{ "node-prefix-length", required_argument, NULL, OPT_NODE_PREFIX_LENGTH },
	{ "node-prefix-length-v6", required_argument, NULL, OPT_NODE_PREFIX_LENGTH_V6 },
	{ "token-file", required_argument, NULL, OPT_TOKEN_FILE },
	{ "tls-cert", required_argument, NULL, OPT_TLS_CERT },
	{ "tls-key", required_argument, NULL, OPT_TLS_KEY },
	{ "external-cidr", required_argument, NULL, OPT_EXTERNAL_CIDR },
	{ "node-ttl", required_argument, NULL, OPT_NODE_TTL },
	{ "delete-after", required_argument, NULL, OPT_DELETE_AFTER },
	{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
	{ "datastore", required_argument, NULL, OPT_DATASTORE },
	{ "etcd-endpoints", required_argument, NULL, OPT_ETCD_ENDPOINTS },
	{ "etcd-prefix", required_argument, NULL, OPT_ETCD_PREFIX },
	{ "etcd-ca-file", required_argument, NULL, OPT_ETCD_CA_FILE },
	{ "etcd-cert-file", required_argument, NULL, OPT_ETCD_CERT_FILE },
	{ "etcd-key-file", required_argument, NULL, OPT_ETCD_KEY_FILE },
	{ "help", no_argument, NULL, OPT_HELP },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ NULL, 0, NULL, 0 },
};

struct cm_opts {
	const char *listen;
	const char *state_dir;
	const char *token_file;
	const char *tls_cert;
	const char *tls_key;
	struct cm_config cfg;
	bool cidr_given;
	bool childlen_given[CM_NFAM];
	uint64_t node_ttl_ms, delete_after_ms; /* 0: never */
	bool etcd; /* --datastore etcd */
	struct cm_etcd_opts eo;
	char etcd_prefix[256];
	enum log_level level;
	bool help, version;
};

static volatile sig_atomic_t cm_loop_stop, cm_terminate, cm_reload;

static void cm_on_signal(int sig)
{
	if (sig == SIGHUP)
		cm_reload = 1;
	else
		cm_terminate = 1;
	cm_loop_stop = 1;
}

static void cm_usage(FILE *f)
{
	fprintf(f,
		"Usage: " PROG " [OPTIONS]\n"
		"\n"
		"Hands each node a subnet of the cluster CIDR(s) and distributes node\n"
		"WireGuard public keys (Connect API wgcni.cluster.v1.ClusterService).\n"
		"\n"
		"Options (each also from the environment, e.g. WGCNI_STATE_DIR):\n"
		"  --listen IP:PORT              API address, [v6]:PORT for IPv6 (default 0.0.0.0:8080)\n"
		"  --state-dir DIR               state, SQLite cluster.db (default /var/lib/wgcni/cluster)\n"
		"  --datastore sqlite|etcd       where the state lives (default sqlite, in --state-dir);\n"
		"                                etcd: any number of cluster managers share it, all active\n"
		"  --etcd-endpoints URLS         etcd client URLs, comma-separated\n"
		"                                (e.g. http://10.0.0.1:2379,http://10.0.0.2:2379)\n"
		"  --etcd-prefix PREFIX          keys under PREFIX (default /wgcni)\n"
		"  --etcd-ca-file FILE           trust this CA for etcd's https endpoints\n"
		"  --etcd-cert-file FILE --etcd-key-file FILE  client certificate for etcd\n"
		"  --cluster-cidr CIDR           cluster CIDR, at most one IPv4 and one IPv6;\n"
		"                                repeat or separate by commas (default 10.100.0.0/16)\n"
		"  --node-prefix-length N        prefix length of IPv4 node subnets (default 24)\n"
		"  --node-prefix-length-v6 N     prefix length of IPv6 node subnets (default 64)\n"
		"  --token-file FILE             require \"Authorization: Bearer <token>\" (first line\n"
		"                                of FILE; re-read on SIGHUP); /healthz and /metrics stay open\n"
		"  --tls-cert FILE --tls-key FILE  serve HTTPS with this PEM certificate (chain)\n"
		"                                and private key (read at start)\n"
		"  --external-cidr CIDR          addresses for external peers (wgcnictl external),\n"
		"                                one /32 or /128 each (repeatable, IPv4 and IPv6)\n"
		"  --node-ttl DURATION           a node not seen (no call) for longer is stale: out\n"
		"                                of every peer list, subnet kept, live again on its\n"
		"                                next call (e.g. 10m; default 0, never). Long polls\n"
		"                                wait at most half of it\n"
		"  --delete-after DURATION       delete a node stale for that long, freeing its\n"
		"                                subnet (default 0, never)\n"
		"  --log-level LEVEL             error, warn, info (default) or debug\n"
		"  -h, --help                    this text\n"
		"  -V, --version                 print the version\n"
		"\n"
		"Signals: SIGTERM/SIGINT stop cleanly; SIGHUP re-reads the token file.\n");
}

static int cm_apply(int val, const char *arg, void *ctx, char *err, size_t errlen)
{
	struct cm_opts *o = ctx;

	switch (val) {
	case OPT_LISTEN: {
		struct endpoint ep;
		struct ipaddr a;
		char why[128];

		if (endpoint_parse(arg, &ep, why, sizeof(why))) {
			snprintf(err, errlen, "--listen: invalid address `%s': %s", arg, why);
			return -EINVAL;
		}
		/* The server binds what it is given, it resolves no names. */
		if (ipaddr_parse(ep.host, &a)) {
			snprintf(err, errlen, "--listen: invalid address `%s': the host must be "
				 "an IP address, as in 0.0.0.0:8080 or [::]:8080", arg);
			return -EINVAL;
		}
		o->listen = arg;
		return 0;
	}
	case OPT_STATE_DIR:
		o->state_dir = arg;
		return 0;
	case OPT_CLUSTER_CIDR:
		return cm_config_cidrs(&o->cfg, &o->cidr_given, arg, err, errlen);
	case OPT_NODE_PREFIX_LENGTH:
		o->childlen_given[CM_V4] = true;
		return cm_config_prefix_length(&o->cfg, CM_V4, arg, err, errlen);
	case OPT_NODE_PREFIX_LENGTH_V6:
		o->childlen_given[CM_V6] = true;
		return cm_config_prefix_length(&o->cfg, CM_V6, arg, err, errlen);
	case OPT_TOKEN_FILE:
		o->token_file = arg;
		return 0;
	case OPT_TLS_CERT:
		o->tls_cert = arg;
		return 0;
	case OPT_TLS_KEY:
		o->tls_key = arg;
		return 0;
	case OPT_EXTERNAL_CIDR:
		return cm_config_external_cidrs(&o->cfg, arg, err, errlen);
	case OPT_NODE_TTL:
	case OPT_DELETE_AFTER: {
		const char *name = val == OPT_NODE_TTL ? "--node-ttl" : "--delete-after";
		uint64_t *out = val == OPT_NODE_TTL ? &o->node_ttl_ms : &o->delete_after_ms;

		if (opts_parse_duration(arg, out)) {
			snprintf(err, errlen, "%s: invalid duration `%s' (want e.g. 0, 30s, 10m, "
				 "1h30m)", name, arg);
			return -EINVAL;
		}
		return 0;
	}
	case OPT_DATASTORE:
		if (strcmp(arg, "sqlite") && strcmp(arg, "etcd")) {
			snprintf(err, errlen, "--datastore: unknown datastore `%s' (sqlite, etcd)",
				 arg);
			return -EINVAL;
		}
		o->etcd = !strcmp(arg, "etcd");
		return 0;
	case OPT_ETCD_ENDPOINTS:
		o->eo.endpoints = arg;
		return 0;
	case OPT_ETCD_PREFIX:
		o->eo.prefix = o->etcd_prefix;
		return cm_config_etcd_prefix(arg, o->etcd_prefix, sizeof(o->etcd_prefix), err,
					     errlen);
	case OPT_ETCD_CA_FILE:
		o->eo.ca_file = arg;
		return 0;
	case OPT_ETCD_CERT_FILE:
		o->eo.cert_file = arg;
		return 0;
	case OPT_ETCD_KEY_FILE:
		o->eo.key_file = arg;
		return 0;
	case OPT_LOG_LEVEL:
		if (log_level_parse(arg, &o->level)) {
			snprintf(err, errlen, "--log-level: unknown level `%s' "
				 "(error, warn, info, debug)", arg);
			return -EINVAL;
		}
		return 0;
	case OPT_HELP:
		o->help = true;
		return 0;
	case OPT_VERSION:
		o->version = true;
		return 0;
	}
	snprintf(err, errlen, "unknown option");
	return -EINVAL;
}

/* Checks that only make sense once every option is known. */
static int cm_validate(struct cm_opts *o, char *err, size_t errlen)
{
	int ret = cm_config_check(&o->cfg, err, errlen);

	if (ret)
		return ret;
	/* Long polls wait half the ttl: under a second they would spin. */
	if (o->node_ttl_ms && o->node_ttl_ms < 1000) {
		snprintf(err, errlen, "--node-ttl: %llums is too short (0 or at least 1s)",
			 (unsigned long long)o->node_ttl_ms);
		return -EINVAL;
	}
	for (size_t i = 0; i < o->cfg.n_external; i++) {
		const struct ipnet *e = &o->cfg.external[i];
		char b1[IPNET_STRLEN], b2[IPNET_STRLEN];

		for (int f = 0; f < CM_NFAM; f++)
			if (o->cfg.has_cidr[f] && ipnet_overlaps(e, &o->cfg.cidr[f])) {
				snprintf(err, errlen, "--external-cidr `%s' overlaps cluster CIDR `%s'",
					 ipnet_format(e, b1), ipnet_format(&o->cfg.cidr[f], b2));
				return -EINVAL;
			}
		for (size_t j = 0; j < i; j++)
			if (ipnet_overlaps(e, &o->cfg.external[j])) {
				snprintf(err, errlen, "--external-cidr `%s' overlaps `%s'",
					 ipnet_format(e, b1), ipnet_format(&o->cfg.external[j], b2));
				return -EINVAL;
			}
	}
	if (o->etcd) {
		if (!o->eo.endpoints || !o->eo.endpoints[0]) {
			snprintf(err, errlen, "--datastore etcd needs --etcd-endpoints");
			return -EINVAL;
		}
		if (!!o->eo.cert_file != !!o->eo.key_file) {
			snprintf(err, errlen, "--etcd-cert-file and --etcd-key-file go together");
			return -EINVAL;
		}
	} else if (o->eo.endpoints || o->eo.ca_file || o->eo.cert_file || o->eo.key_file) {
		snprintf(err, errlen, "--etcd-* options need --datastore etcd");
		return -EINVAL;
	}
	if (!!o->tls_cert != !!o->tls_key) {
		snprintf(err, errlen, "--tls-cert and --tls-key go together");
		return -EINVAL;
	}
	return 0;
}

/* Token file contents (first line), or NULL without a token file. The caller
 * wipes and frees it. */
static int cm_read_token(const char *path, char **token)
{
	*token = NULL;
	if (!path)
		return 0;
	*token = rpc_read_token_file(path);
	return *token ? 0 : -errno;
}

static void cm_free_token(char *token)
{
	if (!token)
		return;
	key_wipe(token, strlen(token));
	free(token);
}

static struct connect_server *cm_server_new(struct cm_api *api, const char *token,
					    const struct cm_opts *o)
{
	const struct connect_server_config cfg = {
		.methods = cm_api_methods,
		.n_methods = cm_api_n_methods,
		.ctx = api,
		.token = token,
		.metrics = cm_api_metrics,
		.healthz = cm_api_healthz,
		.after_run = cm_api_after_run,
	};
	struct connect_server *srv;
	int ret;

	srv = connect_server_new(&cfg);
	if (!srv) {
		log_warn("cannot create the API server", NULL);
		return NULL;
	}
	if (o->tls_cert)
		ret = connect_server_listen_tls(srv, o->listen, o->tls_cert, o->tls_key);
	else
		ret = connect_server_listen_tcp(srv, o->listen);
	if (ret == -ENOTSUP)
		log_error("TLS not supported in this build (libmicrohttpd without TLS)",
			  "tls_cert=%s", o->tls_cert);
	else if (ret && o->tls_cert) {
		errno = -ret;
		log_warn("cannot listen with TLS", "listen=%s tls_cert=%s tls_key=%s",
			 o->listen, o->tls_cert, o->tls_key);
	} else if (ret) {
		errno = -ret;
		log_warn("cannot listen", "listen=%s", o->listen);
	}
	if (ret) {
		connect_server_free(srv);
		errno = -ret;
		return NULL;
	}
	return srv;
}

/*
 * SIGHUP: re-read the token file. Called between runs of the server loop, so
 * the token can be swapped in place; waiting long polls stay. A file that
 * cannot be read keeps the old token (an open API would be worse).
 */
static void cm_reload_token(struct cm_api *api, const struct cm_opts *o, char **token)
{
	char *fresh;
	int ret;

	if (!o->token_file) {
		log_info("SIGHUP: no token file to reload", NULL);
		return;
	}
	ret = cm_read_token(o->token_file, &fresh);
	if (ret) {
		errno = -ret;
		log_warn("SIGHUP: cannot read the token file; keeping the old token",
			 "token_file=%s", o->token_file);
		return;
	}
	if (!strcmp(fresh, *token)) {
		cm_free_token(fresh);
		log_info("SIGHUP: token unchanged", "token_file=%s", o->token_file);
		return;
	}
	ret = connect_server_set_token(api->srv, fresh);
	if (ret) {
		errno = -ret;
		log_warn("SIGHUP: cannot set the new token; keeping the old one",
			 "token_file=%s", o->token_file);
		cm_free_token(fresh);
		return;
	}
	cm_free_token(*token);
	*token = fresh;
	log_info("SIGHUP: token reloaded", "token_file=%s", o->token_file);
}

/* Appends ",item" (no comma first) to out[*n..outlen), cut quietly. */
static void cm_list_add(char *out, size_t outlen, size_t *n, const char *item)
{
	int w;

	if (*n >= outlen)
		return;
	w = snprintf(out + *n, outlen - *n, "%s%s", *n ? "," : "", item);
	*n = w < 0 ? outlen : *n + (size_t)w;
}

/* The one start-up line: version and everything that shapes the answers. */
static void cm_log_started(const struct cm_opts *o, const struct cm_api *api, bool token)
{
	char cidrs[2 * IPNET_STRLEN + 2] = "", lens[16] = "";
	char external[CM_MAX_EXTERNAL * (IPNET_STRLEN + 1)] = "-";
	char buf[IPNET_STRLEN];
	size_t nc = 0, nl = 0, ne = 0, nodes;

	for (int f = 0; f < CM_NFAM; f++) {
		if (!o->cfg.has_cidr[f])
			continue;
		cm_list_add(cidrs, sizeof(cidrs), &nc, ipnet_format(&o->cfg.cidr[f], buf));
		snprintf(buf, sizeof(buf), "%u", o->cfg.childlen[f]);
		cm_list_add(lens, sizeof(lens), &nl, buf);
	}
	for (size_t i = 0; i < o->cfg.n_external; i++)
		cm_list_add(external, sizeof(external), &ne, ipnet_format(&o->cfg.external[i], buf));
	cm_state_nodes(api->st, &nodes);
	log_info("started", "version=%s listen=%s tls=%s token=%s datastore=%s state_dir=%s "
		 "cluster_cidrs=%s node_prefix_lengths=%s external_cidrs=%s nodes=%zu "
		 "stale_nodes=%zu node_ttl_ms=%llu delete_after_ms=%llu revision=%llu",
		 WGCNI_VERSION, o->listen, o->tls_cert ? "yes" : "no",
		 token ? "yes" : "no", cm_state_store(api->st), o->etcd ? "-" : o->state_dir, cidrs, lens, external, nodes,
		 cm_state_stale_count(api->st), (unsigned long long)o->node_ttl_ms,
		 (unsigned long long)o->delete_after_ms,
		 (unsigned long long)cm_state_revision(api->st));
}

int main(int argc, char **argv)
{
	struct cm_opts o = {
		.listen = "0.0.0.0:8080",
		.state_dir = "/var/lib/wgcni/cluster",
		.cfg = { .childlen = { 24, 64 } },
		.level = LOG_LEVEL_INFO,
		.eo = { .prefix = CM_ETCD_PREFIX_DEFAULT },
	};
	struct cm_api api = { 0 };
	struct sigaction sa;
	char err[512], *token = NULL;
	int ret, idx;

	if (argc > 1 && !strcmp(argv[1], "migrate"))
		return cm_migrate_main(argc - 1, argv + 1);
	/* Whatever the umask we were started with, the state is ours alone:
	 * the directory 0700, the database (and SQLite's -wal and -shm, which
	 * take its mode) and the lock file 0600. */
	umask(077);
	o.cfg.has_cidr[CM_V4] = !ipnet_parse("10.100.0.0/16", &o.cfg.cidr[CM_V4], true);

	idx = opts_parse(argc, argv, "hV", cm_options, cm_apply, &o, err, sizeof(err));
	if (idx < 0) {
		fprintf(stderr, PROG ": %s (see --help)\n", err);
		return 2;
	}
	if (o.help) {
		cm_usage(stdout);
		return 0;
	}
	if (o.version) {
		printf(PROG " %s\n", WGCNI_VERSION);
		return 0;
	}
	if (idx < argc) {
		fprintf(stderr, PROG ": unexpected argument `%s' (see --help)\n", argv[idx]);
		return 2;
	}
	if (cm_validate(&o, err, sizeof(err))) {
		fprintf(stderr, PROG ": %s\n", err);
		return 2;
	}
	log_init(PROG, o.level);

	ret = key_init();
	if (ret) {
		log_error("libsodium initialisation failed", NULL);
		goto err;
	}
	ret = cm_read_token(o.token_file, &token);
	if (ret) {
		errno = -ret;
		log_warn("cannot read the token file", "token_file=%s", o.token_file);
		goto err;
	}
	if (!token)
		log_warnx("no --token-file: the API accepts calls from anyone who can reach it",
			  "listen=%s", o.listen);
	if (o.etcd) {
		api.st = cm_state_open_etcd(&o.eo, &o.cfg, err, sizeof(err));
		if (!api.st) {
			ret = -errno;
			log_error("cannot open the state", "datastore=etcd etcd_endpoints=%s "
				  "etcd_prefix=%s err=%s", o.eo.endpoints, o.eo.prefix, err);
			goto err_free_token;
		}
	} else {
		ret = sys_mkdir_p(o.state_dir, 0700);
		if (ret) {
			errno = -ret;
			log_warn("cannot create the state directory", "state_dir=%s",
				 o.state_dir);
			goto err_free_token;
		}
		api.st = cm_state_open(o.state_dir, &o.cfg, err, sizeof(err));
		if (!api.st) {
			ret = -errno;
			log_error("cannot open the state", "state_dir=%s err=%s", o.state_dir,
				  err);
			goto err_free_token;
		}
	}
	cm_state_set_expiry(api.st, o.node_ttl_ms, o.delete_after_ms);
	api.srv = cm_server_new(&api, token, &o);
	if (!api.srv) {
		ret = errno ? -errno : -EIO;
		goto err_close_state;
	}
	if (cm_state_event_fd(api.st) >= 0) {
		ret = connect_server_add_fd(api.srv, cm_state_event_fd(api.st),
					    cm_api_store_event, &api);
		if (ret) {
			errno = -ret;
			log_warn("cannot follow the datastore", NULL);
			connect_server_free(api.srv);
			goto err_close_state;
		}
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = cm_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	cm_log_started(&o, &api, token != NULL);

	for (;;) {
		ret = connect_server_run(api.srv, &cm_loop_stop);
		if (ret) {
			errno = -ret;
			log_warn("API server failed", NULL);
			break;
		}
		if (cm_terminate)
			break;
		cm_loop_stop = cm_terminate;
		if (cm_reload) {
			cm_reload = 0;
			cm_reload_token(&api, &o, &token);
		}
	}
	if (!ret)
		log_info("shutting down", NULL);

	connect_server_free(api.srv);
	cm_api_release(&api);
err_close_state:
	cm_state_close(api.st);
err_free_token:
	cm_free_token(token);
err:
	return ret ? 1 : 0;
}
