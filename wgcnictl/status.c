/*
 * status: one line per check, exit 1 when any fails.
 *   node manager     reachable (GetNode, ListAllocations, /metrics)
 *   cluster manager  reachable (/healthz), each of them: --cluster-manager's
 *                    URLs (comma separated) when given, else the ones the
 *                    node manager uses (GetNode), else the default
 *   registered       the cluster manager lists this node with its key
 *   peers            every other node handshook within CTL_HANDSHAKE_STALE_S
 *   pool             container addresses used/free
 */
#include "ctl.h"
#include "opts.h"
#include "wgcni/node/v1/node.pb-c.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum check_state { CHECK_OK, CHECK_WARN, CHECK_FAIL, CHECK_SKIP };

static const char *const check_names[] = {
	[CHECK_OK] = "ok", [CHECK_WARN] = "warn", [CHECK_FAIL] = "FAIL", [CHECK_SKIP] = "-",
};
static const char *const check_json[] = {
	[CHECK_OK] = "ok", [CHECK_WARN] = "warn", [CHECK_FAIL] = "fail", [CHECK_SKIP] = "skipped",
};

struct check {
	const char *name;
	enum check_state state;
	char detail[1024];
};

enum { C_NODE_MANAGER, C_CLUSTER_MANAGER, C_REGISTERED, C_PEERS, C_POOL, C_COUNT };

struct status {
	struct check c[C_COUNT];
	json_t *extra; /* numbers for -o json */
	bool nomem;    /* building extra failed */
};

static void set_number(struct status *st, const char *key, double v)
{
	if (json_object_set_new(st->extra, key, json_integer((json_int_t)v)))
		st->nomem = true;
}

static void set(struct check *c, enum check_state s, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set(struct check *c, enum check_state s, const char *fmt, ...)
{
	va_list ap;

	c->state = s;
	va_start(ap, fmt);
	vsnprintf(c->detail, sizeof(c->detail), fmt, ap);
	va_end(ap);
}

static char **strv_dup(const char *const *src, size_t n)
{
	char **v = calloc(n + 1, sizeof(*v));

	for (size_t i = 0; v && i < n; i++) {
		v[i] = strdup(src[i]);
		if (!v[i]) {
			opts_strv_free(v);
			v = NULL;
		}
	}
	return v;
}

/* The cluster managers to check, a NULL-terminated list (opts_strv_free):
 * --cluster-manager (comma separated) when given; else those the node
 * manager uses; else the default. NULL on ENOMEM. */
static char **cm_urls_get(const struct ctl *ctl, const Wgcni__Node__V1__Node *self)
{
	char **v;

	if (!ctl->cm_explicit && self && self->n_cluster_managers)
		return strv_dup((const char *const *)self->cluster_managers,
				self->n_cluster_managers);
	v = opts_split(ctl->cm_url);
	if (v && !v[0]) {
		/* Only commas and blanks: checked as given, the client names it invalid. */
		opts_strv_free(v);
		v = strv_dup(&ctl->cm_url, 1);
	}
	return v;
}

/* Point the cluster manager client at url (the next call makes it). */
static void use_cluster_manager(struct ctl *ctl, const char *url)
{
	rpc_client_free(ctl->cm);
	ctl->cm = NULL;
	ctl->cm_url = url;
}

static void append(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void append(char *buf, size_t len, const char *fmt, ...)
{
	size_t used = strlen(buf);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf + used, len - used, fmt, ap);
	va_end(ap);
}

/* GET /healthz from each of urls (NULL-terminated); leaves the client on
 * the first healthy one (for `registered'), else on the first. */
static void check_cluster_manager(struct ctl *ctl, struct status *st, char *const *urls)
{
	char detail[sizeof(st->c[0].detail)] = "", why[512];
	json_t *list = json_array();
	size_t n, healthy = 0, first = 0;
	enum check_state state;

	for (n = 0; urls[n]; n++) {
		char *body = NULL;
		bool ok;
		int status;

		use_cluster_manager(ctl, urls[n]);
		ok = !ctl_get(ctl, CTL_CLUSTER_MANAGER, "/healthz", &body, &status, why,
			      sizeof(why));
		free(body);
		if (ok && !healthy++)
			first = n;
		append(detail, sizeof(detail), "%s%s%s", n ? "; " : "", ok ? urls[n] : why,
		       ok ? " healthy" : "");
		if (!list || json_array_append_new(list, json_pack("{s:s, s:b}", "url", urls[n],
								   "healthy", ok)))
			st->nomem = true;
	}
	if (json_object_set_new(st->extra, "clusterManagers", list))
		st->nomem = true;
	/* One reachable is enough for the node (it fails over); not all of
	 * them is worth a warning. */
	state = healthy == n ? CHECK_OK : healthy ? CHECK_WARN : CHECK_FAIL;
	if (n > 1) {
		set(&st->c[C_CLUSTER_MANAGER], state, "%zu/%zu healthy: %s", healthy, n, detail);
		use_cluster_manager(ctl, urls[first]);
	} else {
		set(&st->c[C_CLUSTER_MANAGER], state, "%s", detail);
	}
}

static void check_registered(struct ctl *ctl, struct status *st,
			     const Wgcni__Node__V1__Node *self)
{
	Wgcni__Cluster__V1__ListNodesResponse *resp;
	struct check *c = &st->c[C_REGISTERED];
	const Wgcni__Cluster__V1__Node *n;
	char why[512];

	if (!self) {
		set(c, CHECK_SKIP, "node manager unreachable");
		return;
	}
	if (st->c[C_CLUSTER_MANAGER].state == CHECK_FAIL) {
		set(c, CHECK_SKIP, "cluster manager unreachable");
		return;
	}
	if (ctl_list_nodes(ctl, &resp, why, sizeof(why))) {
		set(c, CHECK_FAIL, "ListNodes: %s", why);
		return;
	}
	n = ctl_find_node(resp, self->name);
	if (!n)
		set(c, CHECK_FAIL, "node `%s' is unknown to the cluster manager", self->name);
	else if (strcmp(n->public_key, self->public_key))
		set(c, CHECK_FAIL, "node `%s' is registered with key %s, the node has %s",
		    self->name, *n->public_key ? n->public_key : "(none)", self->public_key);
	else if (strcmp(n->endpoint, self->endpoint))
		set(c, CHECK_FAIL, "node `%s' is registered with endpoint %s, the node has %s",
		    self->name, *n->endpoint ? n->endpoint : "(none)", self->endpoint);
	else
		set(c, CHECK_OK, "node `%s' registered, endpoint %s", n->name, n->endpoint);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
}

static void check_peers(struct ctl *ctl, struct status *st, const struct ctl_node_view *v)
{
	size_t nodes = 0, fresh = 0, containers = 0;
	const char *stale = NULL;

	for (size_t i = 0; i < v->n_peers; i++) {
		const struct ctl_peer *p = &v->peers[i];

		if (p->container) {
			containers++;
			continue;
		}
		nodes++;
		if (p->last_handshake > 0 &&
		    (double)ctl->now - p->last_handshake <= CTL_HANDSHAKE_STALE_S)
			fresh++;
		else if (!stale)
			stale = p->name ? p->name : p->public_key;
	}
	set_number(st, "nodePeers", (double)nodes);
	set_number(st, "nodePeersHandshaking", (double)fresh);
	set_number(st, "containerPeers", (double)containers);
	if (!nodes)
		set(&st->c[C_PEERS], CHECK_OK, "no other nodes, %zu container%s", containers,
		    containers == 1 ? "" : "s");
	else
		set(&st->c[C_PEERS], fresh == nodes ? CHECK_OK : CHECK_FAIL,
		    "%zu/%zu nodes handshaking (within %ds)%s%s%s, %zu container%s", fresh,
		    nodes, CTL_HANDSHAKE_STALE_S, stale ? "; not: `" : "", stale ? stale : "",
		    stale ? "'" : "", containers, containers == 1 ? "" : "s");
}

static void check_pool(struct status *st, const struct ctl_node_view *v)
{
	double total = v->pool_used + v->pool_free;

	if (!v->has_pool) {
		set(&st->c[C_POOL], CHECK_WARN, "no wgcni_pool_addresses in the node's metrics");
		return;
	}
	set_number(st, "poolUsed", v->pool_used);
	set_number(st, "poolFree", v->pool_free);
	set(&st->c[C_POOL], v->pool_free > 0 ? CHECK_OK : CHECK_FAIL,
	    "%.0f used, %.0f free (%.0f%% used)", v->pool_used, v->pool_free,
	    total > 0 ? 100.0 * v->pool_used / total : 0.0);
}

static int print_status(const struct ctl *ctl, struct status *st, bool ok)
{
	struct fmt_table *t;
	json_t *root, *checks;
	int ret;

	if (ctl->output == CTL_OUTPUT_JSON) {
		root = json_object();
		checks = json_object();
		ret = !root || !checks || st->nomem ||
		      json_object_set_new(root, "ok", json_boolean(ok));
		for (int i = 0; i < C_COUNT && !ret; i++)
			ret = json_object_set_new(checks, st->c[i].name,
						  json_pack("{s:s, s:s}", "state",
							    check_json[st->c[i].state],
							    "detail", st->c[i].detail));
		if (!ret)
			ret = json_object_set(root, "checks", checks) ||
			      json_object_update(root, st->extra);
		json_decref(checks);
		if (ret) {
			json_decref(root);
			root = NULL; /* ctl_print_json(NULL) reports out of memory */
		}
		return ctl_print_json(root);
	}
	t = fmt_table_new("CHECK", "STATE", "DETAIL", NULL);
	ret = t ? 0 : -ENOMEM;
	for (int i = 0; i < C_COUNT && !ret; i++)
		ret = fmt_table_add(t, st->c[i].name, check_names[st->c[i].state], st->c[i].detail);
	return ctl_print_table(t, ret, "status");
}

int cmd_status(struct ctl *ctl, int argc, char **argv)
{
	struct status st = {
		.c = {
			[C_NODE_MANAGER] = { .name = "node manager" },
			[C_CLUSTER_MANAGER] = { .name = "cluster manager" },
			[C_REGISTERED] = { .name = "registered" },
			[C_PEERS] = { .name = "peers" },
			[C_POOL] = { .name = "pool" },
		},
	};
	const Wgcni__Node__V1__GetNodeResponse *gn = NULL;
	const char *cm_url = ctl->cm_url;
	char **urls = NULL;
	struct ctl_node_view v;
	bool have_view, ok = true;
	char why[1024];
	int ret;

	st.extra = json_object();
	if (!st.extra)
		return ctl_print_json(NULL);
	ctl->quiet = true;
	have_view = !ctl_node_view_load(ctl, &v, why, sizeof(why));
	if (have_view) {
		gn = v.node;
		set(&st.c[C_NODE_MANAGER], CHECK_OK, "node `%s', interface %s (%s), %s",
		    gn->node->name, gn->node->interface, gn->node->backend,
		    *gn->node->address ? gn->node->address : "no address yet");
	} else {
		set(&st.c[C_NODE_MANAGER], CHECK_FAIL, "%s", why);
	}
	urls = cm_urls_get(ctl, gn ? gn->node : NULL);
	if (!urls) {
		ctl->quiet = false;
		ctl_errorx("status: out of memory");
		ret = CTL_ERR;
		goto out;
	}
	check_cluster_manager(ctl, &st, urls);
	check_registered(ctl, &st, gn ? gn->node : NULL);
	if (have_view) {
		check_peers(ctl, &st, &v);
		check_pool(&st, &v);
	} else {
		set(&st.c[C_PEERS], CHECK_SKIP, "node manager unreachable");
		set(&st.c[C_POOL], CHECK_SKIP, "node manager unreachable");
	}
	ctl->quiet = false;
	for (int i = 0; i < C_COUNT; i++)
		if (st.c[i].state == CHECK_FAIL)
			ok = false;
	ret = print_status(ctl, &st, ok);
	if (ret == CTL_OK && !ok)
		ret = CTL_ERR;
out:
	/* The URLs are freed: the client made for them goes too. */
	use_cluster_manager(ctl, cm_url);
	opts_strv_free(urls);
	json_decref(st.extra);
	if (have_view)
		ctl_node_view_free(&v);
	return ret;
}
