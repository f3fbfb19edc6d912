/*
 * The node manager and the cluster manager: AllocateSubnet + RegisterKey,
 * then WatchPeers long polls for ever. A delta (peers added or changed,
 * names removed) is applied as exactly those peer changes, never as a
 * replacement of the list; a full answer (first round, or a revision the
 * cluster manager cannot serve a delta from) is diffed against what the
 * interface holds. A failed round keeps the last known peers on the
 * interface (tunnels keep running while the cluster manager is away) and
 * backs off exponentially, capped; the revision only moves once a round's
 * changes are applied, so a failed one is fetched again.
 *
 * --cluster-manager may list several URLs: every call fails over to the
 * next when one is unreachable (rpc.h), and a long poll that breaks is sent
 * again to the next with the same since_revision. Cluster managers sharing
 * one datastore have the same revisions, so the poll continues where it
 * was; one that cannot serve that revision answers full, which is diffed.
 */
#include "nm.h"

#include "log.h"
#include "opts.h"
#include "wgcni/cluster/v1/cluster.pb-c.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NM_WAIT_SECONDS 30
#define NM_POLL_TIMEOUT_MS ((NM_WAIT_SECONDS + 10) * 1000L)
#define NM_CALL_TIMEOUT_MS 5000L
#define NM_BACKOFF_MIN_MS 250U
#define NM_BACKOFF_MAX_MS 30000U

static const char nm_path_allocate_subnet[] = "/wgcni.cluster.v1.ClusterService/AllocateSubnet";
static const char nm_path_register_key[] = "/wgcni.cluster.v1.ClusterService/RegisterKey";
static const char nm_path_watch_peers[] = "/wgcni.cluster.v1.ClusterService/WatchPeers";

void nm_sleep(struct nm *nm, unsigned int ms)
{
	struct timespec ts = { 0, 50 * 1000 * 1000 };

	for (unsigned int slept = 0; slept < ms && !*nm->stop; slept += 50)
		nanosleep(&ts, NULL);
}

static void nm_sync_switched(void *arg, const char *from, const char *to)
{
	log_info("cluster manager switched", "from=%s to=%s", from, to);
}

/* A client for --cluster-manager, a comma-separated list: the calls fail
 * over between its URLs (rpc.h), a long poll with its revision. */
struct rpc_client *nm_sync_client(const struct nm *nm, long timeout_ms)
{
	struct rpc_client *c = NULL;
	char *token = NULL, **urls;
	size_t n = 0;
	int saved;

	urls = opts_split(nm->cfg.cluster_manager);
	if (!urls) {
		log_warnx("cluster manager client failed: out of memory", NULL);
		errno = ENOMEM;
		return NULL;
	}
	while (urls[n])
		n++;

	if (nm->cfg.token_file) {
		token = rpc_read_token_file(nm->cfg.token_file);
		if (!token) {
			saved = errno;
			log_warn("reading token file failed", "path=%s", nm->cfg.token_file);
			opts_strv_free(urls);
			errno = saved;
			return NULL;
		}
	}
	if (n)
		c = rpc_client_new_list((const char *const *)urls, n, token, timeout_ms);
	else
		errno = EINVAL; /* only commas and blanks */
	saved = errno;
	opts_strv_free(urls);
	if (token) {
		key_wipe(token, strlen(token));
		free(token);
	}
	errno = saved;
	if (!c)
		log_warn("cluster manager client failed", "url=%s", nm->cfg.cluster_manager);
	else
		rpc_client_on_switch(c, nm_sync_switched, NULL);
	return c;
}

static int nm_parse_nets(char **strs, size_t n, struct ipnet *out, size_t max,
			 size_t *n_out, const char *what)
{
	if (n > max) {
		log_error("cluster manager sent too many prefixes", "what=%s count=%zu", what, n);
		return -E2BIG;
	}
	for (size_t i = 0; i < n; i++) {
		if (ipnet_parse(strs[i], &out[i], true) < 0) {
			log_error("cluster manager sent an invalid prefix", "what=%s cidr=%s",
				  what, strs[i]);
			return -EPROTO;
		}
	}
	*n_out = n;
	return 0;
}

static void nm_log_rpc(const char *what, int ret, const struct rpc_error *err)
{
	log_warnx(what, "err=%s code=%s message=%s", strerror(-ret),
		  connect_code_name(err->code), err->message);
}

/* Take the AllocateSubnet answer: the first one is stored. A later,
 * different one (the node was deleted at the cluster manager and came back)
 * is refused with -ESTALE, so the node never registers a key for a subnet
 * it does not use: containers hold addresses of the stored one. Changed
 * cluster CIDRs are stored and routed. */
static int nm_take_subnets(struct nm *nm, const Wgcni__Cluster__V1__AllocateSubnetResponse *r)
{
	struct ipnet subnets[NM_MAX_FAMILIES], cidrs[NM_MAX_CIDRS];
	size_t n_subnets = 0, n_cidrs = 0;
	int ret;

	ret = nm_parse_nets(r->subnets, r->n_subnets, subnets, NM_MAX_FAMILIES, &n_subnets,
			    "subnet");
	if (ret < 0)
		return ret;
	ret = nm_parse_nets(r->cluster_cidrs, r->n_cluster_cidrs, cidrs, NM_MAX_CIDRS,
			    &n_cidrs, "cluster-cidr");
	if (ret < 0)
		return ret;
	if (!n_subnets) {
		log_error("cluster manager sent no subnet", "node=%s", nm->cfg.node_name);
		return -EPROTO;
	}

	pthread_mutex_lock(&nm->lock);
	if (!nm->n_subnets) {
		char buf[IPNET_STRLEN];

		ret = nm_state_set_subnets(nm, subnets, n_subnets, cidrs, n_cidrs);
		if (ret == 0)
			log_info("subnet allocated", "node=%s subnet=%s", nm->cfg.node_name,
				 ipnet_format(&subnets[0], buf));
	} else if (!ipnet_set_equal(subnets, n_subnets, nm->subnets, nm->n_subnets)) {
		char have[IPNET_STRLEN], got[IPNET_STRLEN];

		log_error("cluster manager answers a different subnet; not registering (run"
			  " `cleanup' and remove the state directory to take the new one)",
			  "stored=%s answered=%s", ipnet_format(&nm->subnets[0], have),
			  ipnet_format(&subnets[0], got));
		ret = -ESTALE;
	}
	if (ret == 0 && !ipnet_set_equal(cidrs, n_cidrs, nm->cidrs, nm->n_cidrs)) {
		ret = nm_state_set_cidrs(nm, cidrs, n_cidrs);
		if (ret == 0 && nm->iface_ready)
			ret = nm_iface_add_routes(nm);
	}
	pthread_mutex_unlock(&nm->lock);
	return ret;
}

void nm_sync_fill_register(const struct nm *nm, Wgcni__Cluster__V1__RegisterKeyRequest *r)
{
	r->node_name = (char *)nm->cfg.node_name;
	r->public_key = (char *)nm->public_b64;
	r->endpoint = (char *)nm->cfg.endpoint;
	r->gateway = nm->cfg.gateway;
	r->location = (char *)(nm->cfg.location ? nm->cfg.location : "");
	r->public_endpoint = (char *)(nm->cfg.public_endpoint ? nm->cfg.public_endpoint :
				      nm->cfg.endpoint);
}

int nm_sync_register(struct nm *nm, struct rpc_client *rpc)
{
	Wgcni__Cluster__V1__AllocateSubnetRequest areq = WGCNI__CLUSTER__V1__ALLOCATE_SUBNET_REQUEST__INIT;
	Wgcni__Cluster__V1__RegisterKeyRequest rreq = WGCNI__CLUSTER__V1__REGISTER_KEY_REQUEST__INIT;
	ProtobufCMessage *resp = NULL;
	struct rpc_error err = { 0 };
	int ret;

	if (!rpc)
		return -EINVAL;
	areq.node_name = nm->cfg.node_name;
	ret = rpc_call(rpc, nm_path_allocate_subnet, &areq.base,
		       &wgcni__cluster__v1__allocate_subnet_response__descriptor, &resp,
		       NM_CALL_TIMEOUT_MS, &err);
	if (ret < 0) {
		nm_log_rpc("AllocateSubnet failed", ret, &err);
		return ret;
	}
	ret = nm_take_subnets(nm, (const Wgcni__Cluster__V1__AllocateSubnetResponse *)resp);
	protobuf_c_message_free_unpacked(resp, NULL);
	resp = NULL;
	if (ret < 0)
		return ret;

	nm_sync_fill_register(nm, &rreq);
	ret = rpc_call(rpc, nm_path_register_key, &rreq.base,
		       &wgcni__cluster__v1__register_key_response__descriptor, &resp,
		       NM_CALL_TIMEOUT_MS, &err);
	if (ret < 0) {
		nm_log_rpc("RegisterKey failed", ret, &err);
		return ret;
	}
	protobuf_c_message_free_unpacked(resp, NULL);
	nm->registered = true;
	log_info("registered with the cluster manager", "node=%s public_key=%s endpoint=%s",
		 nm->cfg.node_name, nm->public_b64, nm->cfg.endpoint);
	return 0;
}

/* Peers of the answer into our form; invalid ones are skipped. */
static int nm_peers_from(Wgcni__Cluster__V1__Peer *const *srcs, size_t n_srcs,
			 struct nm_peer **out, size_t *n_out)
{
	struct nm_peer *peers;
	size_t n = 0;

	peers = calloc(n_srcs + 1, sizeof(*peers));
	if (!peers)
		return -ENOMEM;
	for (size_t i = 0; i < n_srcs; i++) {
		const Wgcni__Cluster__V1__Peer *src = srcs[i];
		struct nm_peer *p = &peers[n];
		char err[128];
		bool ok = true;

		if (!src->public_key || key_from_base64(p->public_key, src->public_key, err,
							 sizeof(err)) < 0) {
			log_warnx("peer without a valid key skipped", "name=%s",
				  src->name ? src->name : "");
			continue;
		}
		if (src->endpoint && strlen(src->endpoint) >= sizeof(p->endpoint))
			continue;
		snprintf(p->endpoint, sizeof(p->endpoint), "%s", src->endpoint ? src->endpoint : "");
		p->allowed = calloc(src->n_allowed_ips + 1, sizeof(*p->allowed));
		p->name = strdup(src->name ? src->name : "");
		if (!p->allowed || !p->name) {
			free(p->allowed);
			free(p->name);
			nm_peers_free(peers, n);
			return -ENOMEM;
		}
		for (size_t j = 0; j < src->n_allowed_ips; j++) {
			if (ipnet_parse(src->allowed_ips[j], &p->allowed[p->n_allowed], false) < 0) {
				log_warnx("peer with an invalid AllowedIP skipped",
					  "name=%s allowed_ip=%s", p->name,
					  src->allowed_ips[j]);
				ok = false;
				break;
			}
			ipnet_mask(&p->allowed[p->n_allowed++]);
		}
		if (!ok) {
			free(p->allowed);
			free(p->name);
			memset(p, 0, sizeof(*p));
			continue;
		}
		n++;
	}
	*out = peers;
	*n_out = n;
	return 0;
}

static void nm_sync_error(struct nm *nm)
{
	pthread_mutex_lock(&nm->lock);
	nm->sync_errors++;
	pthread_mutex_unlock(&nm->lock);
}

/* The stored peer named name, or NULL (names sorted, pointing at peers). */
static const struct nm_peer *nm_by_name(const struct nm_peer *const *by_name, size_t n,
					const char *name)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(by_name[mid]->name, name);

		if (!c)
			return by_name[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static int nm_peer_name_cmp(const void *a, const void *b)
{
	return strcmp((*(const struct nm_peer *const *)a)->name,
		      (*(const struct nm_peer *const *)b)->name);
}

/* The stored node peers, by name. */
static const struct nm_peer **nm_peers_by_name(const struct nm *nm)
{
	const struct nm_peer **by = calloc(nm->n_peers + 1, sizeof(*by));

	if (!by)
		return NULL;
	for (size_t i = 0; i < nm->n_peers; i++)
		by[i] = &nm->peers[i];
	if (nm->n_peers > 1)
		qsort(by, nm->n_peers, sizeof(*by), nm_peer_name_cmp);
	return by;
}

/* Appends to d the wg_set entry that makes p a node peer. */
static int nm_delta_set(const struct nm *nm, struct wg_device *d, const struct nm_peer *p)
{
	struct wg_peer *w = &d->peers[d->n_peers];
	char err[256];
	int ret;

	memset(w, 0, sizeof(*w));
	memcpy(w->public_key, p->public_key, WG_KEY_LEN);
	w->flags = WGPEER_REPLACE_ALLOWEDIPS | WGPEER_HAS_KEEPALIVE;
	w->keepalive = NM_NODE_KEEPALIVE;
	if (nm_psk(nm, p->public_key, w->preshared_key))
		w->flags |= WGPEER_HAS_PRESHARED_KEY;
	if (p->endpoint[0] && wg_peer_set_endpoint(w, p->endpoint, err, sizeof(err)) < 0)
		log_warnx("peer endpoint unusable", "endpoint=%s reason=%s", p->endpoint,
			  err);
	for (size_t i = 0; i < p->n_allowed; i++) {
		ret = wg_peer_add_allowedip(w, &p->allowed[i]);
		if (ret < 0) {
			wg_peer_clear(w);
			return ret;
		}
	}
	d->n_peers++;
	return 0;
}

static void nm_delta_remove(struct wg_device *d, const uint8_t *key)
{
	struct wg_peer *w = &d->peers[d->n_peers++];

	memset(w, 0, sizeof(*w));
	memcpy(w->public_key, key, WG_KEY_LEN);
	w->flags = WGPEER_REMOVE_ME;
}

/*
 * A delta: the changed peers (ownership taken) and removed names onto the
 * interface as exactly those changes, then into the stored list as exactly
 * those rows (nm_state_change_peers). The interface goes first: a kill in
 * between leaves the old list stored, which the restart puts back and the
 * first (full) answer then corrects. Called with nm->lock held.
 */
static int nm_apply_delta(struct nm *nm, struct nm_peer *changed, size_t n_changed,
			  char **removed, size_t n_removed, size_t *n_set)
{
	const struct nm_peer **by = NULL;
	struct wg_device d = { 0 };
	uint8_t (*gone)[WG_KEY_LEN] = NULL;
	size_t n_gone = 0;
	int ret = -ENOMEM;

	by = nm_peers_by_name(nm);
	gone = calloc(n_changed + n_removed + 1, sizeof(*gone));
	d.peers = calloc(n_removed + 2 * n_changed + 1, sizeof(*d.peers));
	if (!by || !gone || !d.peers)
		goto out;
	snprintf(d.name, sizeof(d.name), "%s", nm->cfg.ifname);
	for (size_t i = 0; i < n_removed; i++) {
		const struct nm_peer *old = nm_by_name(by, nm->n_peers, removed[i]);

		if (!old)
			continue;
		memcpy(gone[n_gone++], old->public_key, WG_KEY_LEN);
		if (memcmp(old->public_key, nm->public_key, WG_KEY_LEN) &&
		    !nm_state_find_key(nm, old->public_key))
			nm_delta_remove(&d, old->public_key);
	}
	for (size_t i = 0; i < n_changed; i++) {
		const struct nm_peer *p = &changed[i];
		const struct nm_peer *old = nm_by_name(by, nm->n_peers, p->name);

		/* A new key for the node: its old peer goes. */
		if (old && memcmp(old->public_key, p->public_key, WG_KEY_LEN)) {
			memcpy(gone[n_gone++], old->public_key, WG_KEY_LEN);
			if (memcmp(old->public_key, nm->public_key, WG_KEY_LEN) &&
			    !nm_state_find_key(nm, old->public_key))
				nm_delta_remove(&d, old->public_key);
		}
		if (!memcmp(p->public_key, nm->public_key, WG_KEY_LEN))
			continue; /* ourselves */
		if (nm_state_find_key(nm, p->public_key) || nm_ext_find(nm, p->public_key)) {
			log_warnx("node peer has a container's or external peer's key, skipped",
				  "name=%s", p->name);
			continue;
		}
		ret = nm_delta_set(nm, &d, p);
		if (ret < 0)
			goto out;
	}
	ret = 0;
	if (d.n_peers) {
		ret = wg_set(&d);
		if (ret < 0) {
			log_error("configuring peers failed", "interface=%s peers=%zu err=%s",
				  nm->cfg.ifname, d.n_peers, strerror(-ret));
			goto out;
		}
	}
	*n_set = d.n_peers;
	ret = nm_state_change_peers(nm, changed, n_changed,
				    (const uint8_t (*)[WG_KEY_LEN])gone, n_gone); /* takes changed */
	changed = NULL;
	n_changed = 0;
out:
	nm_peers_free(changed, n_changed);
	for (size_t i = 0; i < d.n_peers; i++)
		wg_peer_clear(&d.peers[i]);
	free(d.peers);
	free(gone);
	free(by);
	return ret;
}

/* The answer may hold ourselves: never stored, never a peer (as ListPeers
 * answered before). */
static void nm_drop_self(const struct nm *nm, struct nm_peer *peers, size_t *n)
{
	size_t k = 0;

	for (size_t i = 0; i < *n; i++) {
		if (!strcmp(peers[i].name, nm->cfg.node_name) ||
		    !memcmp(peers[i].public_key, nm->public_key, WG_KEY_LEN)) {
			free(peers[i].name);
			free(peers[i].allowed);
			continue;
		}
		peers[k++] = peers[i];
	}
	*n = k;
}

static bool nm_self_in(const struct nm *nm, const Wgcni__Cluster__V1__WatchPeersResponse *r)
{
	for (size_t i = 0; i < r->n_peers; i++)
		if (r->peers[i]->name && !strcmp(r->peers[i]->name, nm->cfg.node_name))
			return true;
	return false;
}

/* One WatchPeers round: wait for a change, apply it. */
static int nm_sync_round(struct nm *nm, struct rpc_client *rpc, uint64_t *revision)
{
	Wgcni__Cluster__V1__WatchPeersRequest req = WGCNI__CLUSTER__V1__WATCH_PEERS_REQUEST__INIT;
	Wgcni__Cluster__V1__WatchPeersResponse *r;
	ProtobufCMessage *resp = NULL;
	struct rpc_error err = { 0 };
	struct nm_peer *peers = NULL;
	size_t n = 0, changed = 0;
	int ret;

	req.node_name = nm->cfg.node_name;
	req.since_revision = *revision;
	req.wait_seconds = NM_WAIT_SECONDS;
	ret = rpc_call(rpc, nm_path_watch_peers, &req.base,
		       &wgcni__cluster__v1__watch_peers_response__descriptor, &resp,
		       NM_POLL_TIMEOUT_MS, &err);
	if (ret < 0) {
		nm_log_rpc("WatchPeers failed", ret, &err);
		if (ret == -EREMOTEIO && err.code == CONNECT_NOT_FOUND)
			nm->registered = false; /* deleted or forgotten: register again */
		return ret;
	}
	if (*nm->stop)
		goto out; /* shutting down: leave the interface as it is */
	r = (Wgcni__Cluster__V1__WatchPeersResponse *)resp;
	ret = -EPROTO;
	if (r->full && r->n_removed) {
		log_error("cluster manager sent a full answer with removals", NULL);
		goto out;
	}
	if (r->revision == *revision && !r->n_peers && !r->n_removed && !r->full)
		goto ok; /* the wait ended without a change */
	/* A gateway's own entry changed (its allowedIps carry its external
	 * peers) or the whole set came: its external peers first, so the
	 * full diff below keeps them. */
	if (nm->cfg.gateway && (r->full || nm_self_in(nm, r))) {
		ret = nm_ext_fetch(nm, rpc);
		if (ret < 0)
			goto out;
	}
	ret = nm_peers_from(r->peers, r->n_peers, &peers, &n);
	if (ret < 0)
		goto out;
	nm_drop_self(nm, peers, &n);

	pthread_mutex_lock(&nm->lock);
	ret = nm_iface_ensure(nm);
	if (ret == 0 && r->full) {
		ret = nm_iface_apply_node_peers(nm, peers, n, &changed);
		nm_peers_sort(peers, n);
		if (ret == 0 && !nm_state_peers_same(nm, peers, n))
			ret = nm_state_replace_peers(nm, peers, n); /* takes peers */
		else
			nm_peers_free(peers, n);
	} else if (ret == 0) {
		ret = nm_apply_delta(nm, peers, n, r->removed, r->n_removed,
				     &changed); /* takes peers */
	} else {
		nm_peers_free(peers, n);
	}
	if (ret == 0)
		ret = nm_routes_sync(nm, false);
	pthread_mutex_unlock(&nm->lock);
	if (ret < 0)
		goto out;
	log_info("node peers synced", "revision=%llu full=%s peers=%zu removed=%zu changed=%zu",
		 (unsigned long long)r->revision, r->full ? "true" : "false", n,
		 r->n_removed, changed);
ok:
	*revision = r->revision;
	ret = 0;
out:
	protobuf_c_message_free_unpacked(resp, NULL);
	return ret;
}

/* Replace the published client (freeing the old one) and return the new. */
static struct rpc_client *nm_sync_publish(struct nm *nm, struct rpc_client *old,
					  struct rpc_client *new)
{
	pthread_mutex_lock(&nm->sync_rpc_lock);
	nm->sync_rpc = new;
	rpc_client_free(old);
	pthread_mutex_unlock(&nm->sync_rpc_lock);
	return new;
}

static void *nm_sync_main(void *arg)
{
	struct nm *nm = arg;
	struct rpc_client *rpc;
	unsigned int backoff = NM_BACKOFF_MIN_MS;
	uint64_t revision = 0;
	int ret;

	rpc = nm_sync_publish(nm, NULL, nm_sync_client(nm, NM_POLL_TIMEOUT_MS));
	while (!*nm->stop) {
		if (*nm->reload || !rpc) {
			*nm->reload = 0;
			rpc = nm_sync_publish(nm, rpc, nm_sync_client(nm, NM_POLL_TIMEOUT_MS));
			if (rpc)
				log_info("cluster manager client reloaded", "url=%s",
					 nm->cfg.cluster_manager);
		}
		if (!nm->registered)
			ret = nm_sync_register(nm, rpc);
		else
			ret = nm_sync_round(nm, rpc, &revision);
		if (*nm->stop)
			break;
		if (ret < 0) {
			nm_sync_error(nm);
			nm_sleep(nm, backoff);
			backoff = backoff * 2 > NM_BACKOFF_MAX_MS ? NM_BACKOFF_MAX_MS : backoff * 2;
			continue;
		}
		backoff = NM_BACKOFF_MIN_MS;
	}
	nm_sync_publish(nm, rpc, NULL);
	__atomic_store_n(&nm->sync_done, 1, __ATOMIC_RELEASE);
	return NULL;
}

int nm_sync_start(struct nm *nm)
{
	int ret;

	nm->sync_done = 0;
	nm->sync_rpc = NULL;
	ret = -pthread_mutex_init(&nm->sync_rpc_lock, NULL);
	if (ret < 0)
		return ret;
	ret = -pthread_create(&nm->sync_thread, NULL, nm_sync_main, nm);
	if (ret < 0) {
		pthread_mutex_destroy(&nm->sync_rpc_lock);
		return ret;
	}
	nm->sync_started = true;
	return 0;
}

bool nm_sync_stop(struct nm *nm, unsigned int timeout_ms)
{
	struct timespec ts = { 0, 20 * 1000 * 1000 };

	if (!nm->sync_started)
		return true;
	/* A long poll may be waiting up to NM_POLL_TIMEOUT_MS: cut it short. */
	pthread_mutex_lock(&nm->sync_rpc_lock);
	rpc_client_cancel(nm->sync_rpc);
	pthread_mutex_unlock(&nm->sync_rpc_lock);
	for (unsigned int t = 0; t < timeout_ms; t += 20) {
		if (__atomic_load_n(&nm->sync_done, __ATOMIC_ACQUIRE)) {
			pthread_join(nm->sync_thread, NULL);
			pthread_mutex_destroy(&nm->sync_rpc_lock);
			nm->sync_started = false;
			return true;
		}
		nanosleep(&ts, NULL);
	}
	return false;
}
