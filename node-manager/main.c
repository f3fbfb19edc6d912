/*
 * wgcni-node-manager: runs the node's WireGuard interface, hands container
 * addresses out of the node subnet and keeps the node peers in sync with
 * the cluster manager. `wgcni-node-manager cleanup` removes what it created,
 * `plan` prints what a start would change, `rotate-key` asks the running
 * daemon for a new node key.
 */
#include "nm.h"

#include "log.h"
#include "netdev.h"
#include "opts.h"
#include "sys.h"
#include "wgcni/node/v1/node.pb-c.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NM_PROG "wgcni-node-manager"

enum {
	OPT_CLUSTER_MANAGER = 256,
	OPT_NODE_NAME,
	OPT_ENDPOINT,
	OPT_INTERFACE,
	OPT_LISTEN_PORT,
	OPT_SOCKET,
	OPT_LISTEN,
	OPT_METRICS_LISTEN,
	OPT_STATE_DIR,
	OPT_TOKEN_FILE,
	OPT_BACKEND,
	OPT_IMPL,
	OPT_MTU,
	OPT_MASQUERADE,
	OPT_NO_MASQUERADE,
	OPT_LOG_LEVEL,
	OPT_PSK_FILE,
	OPT_GATEWAY,
	OPT_LOCATION,
	OPT_PUBLIC_ENDPOINT,
	OPT_HELP = 'h',
	OPT_VERSION = 'V',
};

static const struct option nm_longopts[] = {
	{ "cluster-manager", required_argument, NULL, OPT_CLUSTER_MANAGER },
	{ "node-name", required_argument, NULL, OPT_NODE_NAME },
	{ "endpoint", required_argument, NULL, OPT_ENDPOINT },
	{ "interface", required_argument, NULL, OPT_INTERFACE },
	{ "listen-port", required_argument, NULL, OPT_LISTEN_PORT },
	{ "socket", required_argument, NULL, OPT_SOCKET },
	{ "listen", required_argument, NULL, OPT_LISTEN },
	{ "metrics-listen", required_argument, NULL, OPT_METRICS_LISTEN },
	{ "state-dir", required_argument, NULL, OPT_STATE_DIR },
	{ "token-file", required_argument, NULL, OPT_TOKEN_FILE },
	{ "backend", required_argument, NULL, OPT_BACKEND },
	{ "userspace-implementation", required_argument, NULL, OPT_IMPL },
	{ "mtu", required_argument, NULL, OPT_MTU },
	{ "masquerade", no_argument, NULL, OPT_MASQUERADE },
	{ "no-masquerade", no_argument, NULL, OPT_NO_MASQUERADE },
	{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
	{ "preshared-key-file", required_argument, NULL, OPT_PSK_FILE },
	{ "gateway", no_argument, NULL, OPT_GATEWAY },
	{ "location", required_argument, NULL, OPT_LOCATION },
	{ "public-endpoint", required_argument, NULL, OPT_PUBLIC_ENDPOINT },
	{ "help", no_argument, NULL, OPT_HELP },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ NULL, 0, NULL, 0 },
};

static const char nm_usage[] =
	"Usage: " NM_PROG " [OPTIONS] [run|plan|rotate-key|cleanup]\n"
	"\n"
	"Runs the node's WireGuard interface, gives containers addresses from the\n"
	"node subnet and keeps the other nodes as peers. `plan' prints every change\n"
	"a start would make (one line each) and changes nothing: exit 0 nothing to\n"
	"change, 2 changes, 1 error. `rotate-key' makes the running node manager\n"
	"(--socket) switch to a new node key. `cleanup' removes the interface,\n"
	"routes, firewall chains and socket it created.\n"
	"\n"
	"  --cluster-manager URL[,URL..]  cluster manager(s) (http://host:port); the\n"
	"                                 next is used when one is unreachable\n"
	"  --node-name NAME               node name (default: the hostname)\n"
	"  --endpoint HOST:PORT           underlay endpoint other nodes use\n"
	"  --interface NAME               node interface (default wgcni0)\n"
	"  --listen-port PORT             WireGuard port (default 51820)\n"
	"  --socket PATH                  local API socket\n"
	"                                 (default /run/wgcni/node-manager.sock)\n"
	"  --listen ADDR:PORT             also serve the local API on TCP\n"
	"  --metrics-listen ADDR:PORT     serve only /healthz and /metrics on TCP\n"
	"                                 (a Prometheus scrape address; no API)\n"
	"  --state-dir DIR                key and state (default /var/lib/wgcni/node)\n"
	"  --token-file FILE              bearer token for the cluster manager\n"
	"  --backend auto|kernel|userspace  WireGuard backend (default auto)\n"
	"  --userspace-implementation P   userspace WireGuard (default wireguard-go)\n"
	"  --mtu N                        interface MTU (default 1420)\n"
	"  --masquerade | --no-masquerade masquerade traffic leaving the cluster\n"
	"                                 (default on)\n"
	"  --preshared-key-file FILE      secret (0600, base64) every node shares:\n"
	"                                 a preshared key on every peering\n"
	"  --gateway                      accept external peers (wgcnictl external)\n"
	"  --location NAME                where this node is (gateway choice)\n"
	"  --public-endpoint HOST:PORT    what external peers dial (default --endpoint)\n"
	"  --log-level error|warn|info|debug\n"
	"  --help, --version\n"
	"\n"
	"Every option can also be set as WGCNI_<OPTION> (e.g. WGCNI_NODE_NAME).\n"
	"SIGTERM/SIGINT stop without touching the interface; SIGHUP re-reads the\n"
	"token file. While running, drift (a peer, route, address or firewall rule\n"
	"changed by hand) is repaired every 5 s.\n";

struct nm_opts {
	struct nm_config cfg;
	enum log_level level;
	bool help, version;
};

static volatile sig_atomic_t nm_stop_flag;
static volatile sig_atomic_t nm_reload_flag;
/* Static, not on main's stack: if the sync thread is still in a long poll
 * at exit, what it uses stays reachable. */
static struct nm nm_daemon;

static int nm_apply(int val, const char *arg, void *ctx, char *err, size_t errlen)
{
	struct nm_opts *o = ctx;
	struct nm_config *c = &o->cfg;
	unsigned long v;

	switch (val) {
	case OPT_CLUSTER_MANAGER: c->cluster_manager = arg; break;
	case OPT_NODE_NAME:
		if (!name_node_valid(arg)) {
			snprintf(err, errlen, "invalid --node-name `%.64s': %s", arg,
				 name_node_check(arg));
			return -EINVAL;
		}
		snprintf(c->node_name, sizeof(c->node_name), "%s", arg);
		break;
	case OPT_ENDPOINT: c->endpoint = arg; break;
	case OPT_INTERFACE:
		if (!name_ifname_valid(arg))
			goto bad;
		c->ifname = arg;
		break;
	case OPT_LISTEN_PORT:
		if (opts_parse_ulong(arg, 1, 65535, &v) < 0)
			goto bad;
		c->listen_port = (uint16_t)v;
		break;
	case OPT_SOCKET: c->socket_path = arg; break;
	case OPT_LISTEN: c->listen = arg; break;
	case OPT_METRICS_LISTEN: c->metrics_listen = arg; break;
	case OPT_STATE_DIR: c->state_dir = arg; break;
	case OPT_TOKEN_FILE: c->token_file = arg; break;
	case OPT_BACKEND:
		if (wg_backend_parse(arg, &c->backend) < 0)
			goto bad;
		break;
	case OPT_IMPL: c->impl = arg; break;
	case OPT_MTU:
		if (opts_parse_ulong(arg, 576, 65535, &v) < 0)
			goto bad;
		c->mtu = (unsigned int)v;
		break;
	case OPT_PSK_FILE: c->psk_file = arg; break;
	case OPT_GATEWAY: c->gateway = true; break;
	case OPT_LOCATION:
		if (!name_node_valid(arg)) {
			snprintf(err, errlen, "invalid --location `%.64s': %s", arg,
				 name_node_check(arg));
			return -EINVAL;
		}
		c->location = arg;
		break;
	case OPT_PUBLIC_ENDPOINT:
		if (endpoint_parse(arg, &(struct endpoint){ 0 }, err, errlen) < 0)
			goto bad;
		c->public_endpoint = arg;
		break;
	case OPT_MASQUERADE: c->masquerade = true; break;
	case OPT_NO_MASQUERADE: c->masquerade = false; break;
	case OPT_LOG_LEVEL:
		if (log_level_parse(arg, &o->level) < 0)
			goto bad;
		break;
	case OPT_HELP: o->help = true; break;
	case OPT_VERSION: o->version = true; break;
	default:
		snprintf(err, errlen, "unknown option");
		return -EINVAL;
	}
	return 0;
bad:
	for (const struct option *lo = nm_longopts; lo->name; lo++)
		if (lo->val == val) {
			snprintf(err, errlen, "invalid value for --%s: `%s'", lo->name, arg);
			return -EINVAL;
		}
	snprintf(err, errlen, "invalid value `%s'", arg);
	return -EINVAL;
}

static void nm_on_signal(int sig)
{
	if (sig == SIGHUP)
		nm_reload_flag = 1;
	else
		nm_stop_flag = 1;
}

static int nm_signals(void)
{
	struct sigaction sa = { .sa_handler = nm_on_signal };

	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0 ||
	    sigaction(SIGHUP, &sa, NULL) < 0)
		return -errno;
	sa.sa_handler = SIG_IGN;
	if (sigaction(SIGPIPE, &sa, NULL) < 0)
		return -errno;
	return 0;
}

static int nm_load_key(struct nm *nm)
{
	int ret;

	ret = key_init();
	if (ret < 0)
		return ret;
	ret = sys_mkdir_p(nm->cfg.state_dir, 0700);
	if (ret < 0) {
		log_error("creating state directory failed", "path=%s err=%s",
			  nm->cfg.state_dir, strerror(-ret));
		return ret;
	}
	return nm_key_load(nm, true);
}

/* Without a stored subnet nothing can be served: wait for the cluster
 * manager, backing off. */
static int nm_first_registration(struct nm *nm)
{
	struct rpc_client *rpc = NULL;
	unsigned int backoff = 250;
	int ret = -EAGAIN;

	while (!nm_stop_flag) {
		if (!rpc || nm_reload_flag) {
			nm_reload_flag = 0;
			rpc_client_free(rpc);
			rpc = nm_sync_client(nm, 5000);
		}
		if (rpc) {
			ret = nm_sync_register(nm, rpc);
			if (ret == 0)
				break;
		}
		nm->sync_errors++;
		log_warnx("waiting for the cluster manager", "url=%s retry_ms=%u",
			  nm->cfg.cluster_manager, backoff);
		nm_sleep(nm, backoff);
		backoff = backoff * 2 > 30000 ? 30000 : backoff * 2;
	}
	rpc_client_free(rpc);
	return nm_stop_flag ? -EINTR : ret;
}

static struct connect_server *nm_serve(struct nm *nm)
{
	const struct connect_server_config scfg = {
		.methods = nm_api_methods,
		.n_methods = nm_api_n_methods,
		.ctx = nm,
		.metrics = nm_api_metrics,
		.healthz = nm_api_healthz,
	};
	struct connect_server *srv;
	int ret;

	srv = connect_server_new(&scfg);
	if (!srv) {
		log_warn("creating API server failed", NULL);
		return NULL;
	}
	ret = sys_mkdir_parent(nm->cfg.socket_path, 0755);
	if (ret == 0)
		ret = connect_server_listen_unix(srv, nm->cfg.socket_path, 0600);
	if (ret < 0) {
		log_error("listening on socket failed", "path=%s err=%s",
			  nm->cfg.socket_path, strerror(-ret));
		goto err_free;
	}
	if (nm->cfg.listen) {
		ret = connect_server_listen_tcp(srv, nm->cfg.listen);
		if (ret < 0) {
			log_error("listening on TCP failed", "listen=%s err=%s",
				  nm->cfg.listen, strerror(-ret));
			goto err_free;
		}
		/* The local API has no authentication of its own (the unix
		 * socket is 0600): anyone reaching this address can Release or
		 * GC every container. */
		if (strncmp(nm->cfg.listen, "127.", 4) && strncmp(nm->cfg.listen, "[::1]:", 6))
			log_warnx("--listen is not a loopback address: the node API is unauthenticated",
				  "listen=%s", nm->cfg.listen);
	}
	if (nm->cfg.metrics_listen) {
		ret = connect_server_listen_metrics(srv, nm->cfg.metrics_listen);
		if (ret < 0) {
			log_error("listening for metrics failed", "metrics_listen=%s err=%s",
				  nm->cfg.metrics_listen, strerror(-ret));
			goto err_free;
		}
	}
	return srv;

err_free:
	connect_server_free(srv);
	return NULL;
}

static int nm_cmd_run(struct nm_opts *o)
{
	struct nm *nm = &nm_daemon;
	struct nm_plan plan = { .dry = false };
	char err[512] = "";
	bool joined = true;
	int ret;

	nm->cfg = o->cfg;
	nm->stop = &nm_stop_flag;
	nm->reload = &nm_reload_flag;
	if (!nm->cfg.cluster_manager || !nm->cfg.endpoint) {
		log_error("--cluster-manager and --endpoint are required", NULL);
		return 2;
	}
	if (endpoint_parse(nm->cfg.endpoint, &(struct endpoint){ 0 }, err, sizeof(err)) < 0) {
		log_error("invalid --endpoint", "endpoint=%s reason=%s", nm->cfg.endpoint,
			  err);
		return 2;
	}
	ret = pthread_mutex_init(&nm->lock, NULL);
	if (ret)
		return 1;
	ret = nm_signals();
	if (ret < 0)
		goto err_destroy_lock;
	ret = nm_load_key(nm);
	if (ret == 0)
		ret = nm_psk_load(nm);
	if (ret < 0)
		goto err_wipe_key;
	ret = nm_state_open(nm, err, sizeof(err));
	if (ret < 0) {
		log_error("opening state failed", "err=%s", err);
		goto err_wipe_key;
	}
	log_info("starting", "node=%s interface=%s public_key=%s version=%s",
		 nm->cfg.node_name, nm->cfg.ifname, nm->public_b64, WGCNI_VERSION);
	if (nm->n_subnets) {
		char buf[IPNET_STRLEN];

		log_info("using the stored subnet and peers; registering in the background",
			 "subnet=%s peers=%zu allocations=%zu", ipnet_format(&nm->subnets[0], buf),
			 nm->n_peers, nm->n_allocs);
	} else {
		ret = nm_first_registration(nm);
		if (ret == -EINTR) {
			ret = 0;
			goto err_close_state;
		}
		if (ret < 0)
			goto err_close_state;
	}
	ret = nm_iface_setup(nm, &plan);
	pthread_mutex_lock(&nm->lock);
	if (ret == 0)
		ret = nm_iface_reconcile_peers(nm, nm->peers, nm->n_peers, false, &plan);
	pthread_mutex_unlock(&nm->lock);
	for (size_t i = 0; i < plan.n; i++)
		log_info("start: changed", "change=%s", plan.lines[i]);
	nm_plan_free(&plan);
	if (ret < 0)
		goto err_close_state;
	nm->srv = nm_serve(nm);
	if (!nm->srv) {
		ret = -EIO;
		goto err_close_state;
	}
	ret = nm_sync_start(nm);
	if (ret < 0)
		goto err_free_server;
	ret = nm_repair_start(nm);
	if (ret < 0)
		log_error("starting drift repair failed", "err=%s", strerror(-ret));
	log_info("ready", "socket=%s listen=%s", nm->cfg.socket_path,
		 nm->cfg.listen ? nm->cfg.listen : "");
	ret = connect_server_run(nm->srv, &nm_stop_flag);
	if (ret < 0)
		log_error("API server failed", "err=%s", strerror(-ret));
	nm_stop_flag = 1;
	log_info("stopping; the interface keeps running", "interface=%s", nm->cfg.ifname);
	nm_repair_stop(nm);

	/* The sync thread's call in flight is cancelled; libcurl notices
	 * within about a second. */
	joined = nm_sync_stop(nm, 5000);
	if (!joined) {
		/* Should it still not have ended, hold the lock for good so it
		 * cannot touch the interface or the state while we exit. */
		pthread_mutex_lock(&nm->lock);
		log_info("exiting during a long poll to the cluster manager", NULL);
	}
err_free_server:
	connect_server_free(nm->srv);
	nm->srv = NULL;
	if (unlink(nm->cfg.socket_path) < 0 && errno != ENOENT)
		log_warn("removing socket failed", "path=%s", nm->cfg.socket_path);
err_close_state:
	/* A sync thread still running may yet touch the state: leave it to exit. */
	if (joined) {
		nm_state_close(nm);
		nm_exts_free(nm->exts, nm->n_exts);
		nm->exts = NULL;
		nm->n_exts = 0;
		free(nm->xroutes);
		nm->xroutes = NULL;
	}
err_wipe_key:
	nm_psk_wipe(nm);
	key_wipe(nm->private_key, sizeof(nm->private_key));
err_destroy_lock:
	if (joined)
		pthread_mutex_destroy(&nm->lock);
	return ret < 0 ? 1 : 0;
}

static int nm_cmd_cleanup(struct nm_opts *o)
{
	struct nm *nm = &nm_daemon;
	struct ipnet cidrs[NM_MAX_CIDRS];
	size_t n_cidrs = 0;
	char path[PATH_MAX], err[512];
	int ret;

	nm->cfg = o->cfg;
	snprintf(path, sizeof(path), "%s/node.db", nm->cfg.state_dir);
	if (access(path, F_OK) == 0 && nm_state_open(nm, err, sizeof(err)) == 0) {
		n_cidrs = nm->n_cidrs;
		memcpy(cidrs, nm->cidrs, n_cidrs * sizeof(*cidrs));
		nm_state_close(nm);
	}
	ret = nm_iface_cleanup(&nm->cfg, cidrs, n_cidrs);
	if (ret == 0)
		log_info("cleanup done", "interface=%s", nm->cfg.ifname);
	return ret < 0 ? 1 : 0;
}

static int nm_cmd_plan(struct nm_opts *o)
{
	struct nm *nm = &nm_daemon;

	nm->cfg = o->cfg;
	nm->stop = &nm_stop_flag;
	nm->reload = &nm_reload_flag;
	return nm_plan_run(nm);
}

static int nm_cmd_rotate_key(struct nm_opts *o)
{
	Wgcni__Node__V1__RotateKeyRequest req = WGCNI__NODE__V1__ROTATE_KEY_REQUEST__INIT;
	Wgcni__Node__V1__RotateKeyResponse *r;
	ProtobufCMessage *resp = NULL;
	struct rpc_error err = { 0 };
	struct rpc_client *rpc;
	char url[PATH_MAX + 16];
	int ret;

	snprintf(url, sizeof(url), "unix://%s", o->cfg.socket_path);
	rpc = rpc_client_new(url, NULL, 30000);
	if (!rpc) {
		log_error("node manager client failed", "socket=%s", o->cfg.socket_path);
		return 1;
	}
	ret = rpc_call(rpc, "/wgcni.node.v1.NodeService/RotateKey", &req.base,
		       &wgcni__node__v1__rotate_key_response__descriptor, &resp, 30000, &err);
	if (ret < 0) {
		fprintf(stderr, "%s: rotate-key failed: %s%s%s\n", NM_PROG, strerror(-ret),
			err.message[0] ? ": " : "", err.message);
	} else {
		r = (Wgcni__Node__V1__RotateKeyResponse *)resp;
		printf("public key %s (was %s)\n", r->public_key, r->previous_public_key);
		protobuf_c_message_free_unpacked(resp, NULL);
	}
	rpc_client_free(rpc);
	return ret < 0 ? 1 : 0;
}

static const struct {
	const char *name;
	int (*fn)(struct nm_opts *o);
} nm_commands[] = {
	{ "run", nm_cmd_run },
	{ "plan", nm_cmd_plan },
	{ "rotate-key", nm_cmd_rotate_key },
	{ "cleanup", nm_cmd_cleanup },
};

int main(int argc, char **argv)
{
	struct nm_opts o = {
		.cfg = {
			.ifname = "wgcni0",
			.listen_port = 51820,
			.socket_path = "/run/wgcni/node-manager.sock",
			.state_dir = "/var/lib/wgcni/node",
			.backend = WG_BACKEND_AUTO,
			.impl = "wireguard-go",
			.mtu = 1420,
			.masquerade = true,
		},
		.level = LOG_LEVEL_INFO,
	};
	const char *cmd = "run";
	char err[512] = "";
	int idx;

	/* Whatever the umask we were started with, what we create is ours
	 * alone: the state directory 0700, node.db (and SQLite's -wal and
	 * -shm, which take the database's mode) and private.key 0600. The
	 * socket and its directory get their modes explicitly. */
	umask(077);
	if (gethostname(o.cfg.node_name, sizeof(o.cfg.node_name) - 1) < 0)
		o.cfg.node_name[0] = '\0';
	idx = opts_parse(argc, argv, "hV", nm_longopts, nm_apply, &o, err, sizeof(err));
	if (idx < 0) {
		fprintf(stderr, "%s: %s\nTry '%s --help'.\n", NM_PROG, err, NM_PROG);
		return 2;
	}
	if (o.help) {
		fputs(nm_usage, stdout);
		return 0;
	}
	if (o.version) {
		printf("%s %s\n", NM_PROG, WGCNI_VERSION);
		return 0;
	}
	if (idx < argc)
		cmd = argv[idx++];
	if (idx < argc) {
		fprintf(stderr, "%s: unexpected argument `%s'\n", NM_PROG, argv[idx]);
		return 2;
	}
	log_init(NM_PROG, o.level);
	if (!o.cfg.node_name[0]) {
		fprintf(stderr, "%s: no --node-name and no hostname\n", NM_PROG);
		return 2;
	}
	for (size_t i = 0; i < sizeof(nm_commands) / sizeof(nm_commands[0]); i++)
		if (!strcmp(cmd, nm_commands[i].name))
			return nm_commands[i].fn(&o);
	fprintf(stderr, "%s: unknown command `%s'\n%s", NM_PROG, cmd, nm_usage);
	return 2;
}
