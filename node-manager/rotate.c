/*
 * Node key rotation (RotateKey). The order keeps traffic flowing:
 *
 *   1. the new key into the key file (atomic rename: a crash leaves the old
 *      or the new key, and a start registers whichever it finds);
 *   2. the node interface switches to it. WireGuard drops the current
 *      sending keys, so the next packet to every peer waits for a handshake
 *      (queued, not lost); receiving on the old sessions goes on;
 *   3. RegisterKey at the cluster manager: each other node's peer long poll
 *      answers within milliseconds and replaces our old key with the new one.
 *      A new peer there gets its persistent keepalive turned on, which sends
 *      at once, so that node initiates the handshake with our new key and
 *      the packets queued on both sides flow. Registering before step 2
 *      would let those initiations reach the old key and fail, and
 *      WireGuard would retry only after 5 s;
 *   4. every container interface on this node replaces its node peer (old
 *      key) by the same peer with the new key; its keepalive, turned on for
 *      the new peer, handshakes at once as well.
 *
 * Should RegisterKey fail, the sync thread registers the new key on its
 * next round (nm->registered is cleared).
 */
#include "nm.h"

#include "log.h"
#include "netns.h"
#include "wgcni/cluster/v1/cluster.pb-c.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NM_ROTATE_CALL_TIMEOUT_MS 5000L

int nm_container_device(const struct nm_alloc *a, char out[static IFNAMSIZ])
{
	return name_wg_device(a->container_id, a->ifname, out);
}

/* In the container's interface (dev, in the current namespace): the peer
 * with old_key becomes one with new_key, all else kept. 0 also when the
 * interface has no such peer (already rotated). */
static int nm_rotate_peer_in(const char *dev, const uint8_t old_key[static WG_KEY_LEN],
			     const uint8_t new_key[static WG_KEY_LEN], const uint8_t *psk)
{
	struct wg_device *cur = NULL;
	struct wg_peer peers[2];
	struct wg_device d = { .peers = peers, .n_peers = 2 };
	const struct wg_peer *old = NULL;
	int ret;

	memset(peers, 0, sizeof(peers));
	ret = wg_get(dev, &cur);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < cur->n_peers && !old; i++)
		if (!memcmp(cur->peers[i].public_key, old_key, WG_KEY_LEN))
			old = &cur->peers[i];
	if (!old)
		goto out;
	snprintf(d.name, sizeof(d.name), "%s", dev);
	memcpy(peers[0].public_key, old_key, WG_KEY_LEN);
	peers[0].flags = WGPEER_REMOVE_ME;
	memcpy(peers[1].public_key, new_key, WG_KEY_LEN);
	peers[1].flags = WGPEER_REPLACE_ALLOWEDIPS | WGPEER_HAS_KEEPALIVE;
	peers[1].keepalive = old->keepalive;
	if (psk) {
		memcpy(peers[1].preshared_key, psk, WG_KEY_LEN);
		peers[1].flags |= WGPEER_HAS_PRESHARED_KEY;
	}
	if (old->endpoint.addr.sa_family == AF_INET || old->endpoint.addr.sa_family == AF_INET6) {
		peers[1].endpoint = old->endpoint;
		peers[1].flags |= WGPEER_HAS_ENDPOINT;
	}
	for (size_t i = 0; ret == 0 && i < old->n_allowedips; i++)
		ret = wg_peer_add_allowedip(&peers[1], &old->allowedips[i]);
	if (ret == 0)
		ret = wg_set(&d);
	wg_peer_clear(&peers[1]);
out:
	wg_device_free(cur);
	return ret;
}

int nm_container_do(const struct nm_alloc *a, nm_container_fn fn, void *arg)
{
	char dev[IFNAMSIZ];
	int ret, ret2, saved;

	ret = nm_container_device(a, dev);
	if (ret < 0)
		return ret;
	/* Userspace: the control socket keeps the device's host-side name
	 * wherever the link went. Kernel: the link has that name here until
	 * the plugin moves it, and is a->ifname inside the container's
	 * namespace after. */
	if (wg_backend_of(dev) >= 0)
		return fn(dev, arg);
	if (!a->netns || !a->netns[0])
		return -ENOENT;
	ret = netns_enter_path(a->netns, &saved);
	if (ret < 0)
		return ret;
	ret = fn(a->ifname, arg);
	ret2 = netns_restore(saved);
	return ret ? ret : ret2;
}

struct nm_rotate_arg {
	const uint8_t *old_key, *new_key, *psk;
};

static int nm_rotate_fn(const char *dev, void *arg)
{
	const struct nm_rotate_arg *r = arg;

	return nm_rotate_peer_in(dev, r->old_key, r->new_key, r->psk);
}

/* The container's peering has a new preshared key too (it hashes the node
 * key): both ends get it, the node interface's peer first. */
static int nm_rotate_container(struct nm *nm, const struct nm_alloc *a, const uint8_t *old_key,
			       const uint8_t *new_key)
{
	uint8_t psk[WG_KEY_LEN];
	struct nm_rotate_arg r = { .old_key = old_key, .new_key = new_key };
	int ret = 0;

	if (nm_psk(nm, a->public_key, psk)) {
		r.psk = psk;
		ret = nm_iface_container_peer(nm, a, a->public_key, a->endpoint, NULL);
	}
	if (ret == 0)
		ret = nm_container_do(a, nm_rotate_fn, &r);
	key_wipe(psk, sizeof(psk));
	return ret;
}

static int nm_rotate_register(struct nm *nm, char *err, size_t errlen)
{
	Wgcni__Cluster__V1__RegisterKeyRequest req = WGCNI__CLUSTER__V1__REGISTER_KEY_REQUEST__INIT;
	ProtobufCMessage *resp = NULL;
	struct rpc_error rerr = { 0 };
	struct rpc_client *rpc;
	int ret;

	rpc = nm_sync_client(nm, NM_ROTATE_CALL_TIMEOUT_MS);
	if (!rpc) {
		snprintf(err, errlen, "no cluster manager client");
		return -EINVAL;
	}
	nm_sync_fill_register(nm, &req);
	ret = rpc_call(rpc, "/wgcni.cluster.v1.ClusterService/RegisterKey", &req.base,
		       &wgcni__cluster__v1__register_key_response__descriptor, &resp,
		       NM_ROTATE_CALL_TIMEOUT_MS, &rerr);
	if (ret < 0)
		snprintf(err, errlen, "RegisterKey at the cluster manager failed: %s: %s",
			 strerror(-ret), rerr.message);
	protobuf_c_message_free_unpacked(resp, NULL);
	rpc_client_free(rpc);
	return ret;
}

int nm_rotate_key(struct nm *nm, char old_b64[static WG_KEY_B64_LEN + 1], char *err,
		  size_t errlen)
{
	uint8_t priv[WG_KEY_LEN], old_pub[WG_KEY_LEN];
	struct wg_device d = { .flags = WGDEVICE_HAS_PRIVATE_KEY };
	char path[PATH_MAX];
	size_t failed = 0;
	int ret;

	pthread_mutex_lock(&nm->lock);
	ret = -EAGAIN;
	if (!nm->iface_ready) {
		snprintf(err, errlen, "the node interface is not set up yet");
		goto out_unlock;
	}
	nm_key_path(nm, path);
	ret = key_replace(path, priv);
	if (ret < 0) {
		snprintf(err, errlen, "writing the new key to `%s' failed: %s", path,
			 strerror(-ret));
		goto out_unlock;
	}
	snprintf(d.name, sizeof(d.name), "%s", nm->cfg.ifname);
	memcpy(d.private_key, priv, WG_KEY_LEN);
	ret = wg_set(&d);
	if (ret < 0) {
		/* The file has the new key: the next start uses it. */
		snprintf(err, errlen, "setting the new key on %s failed: %s (the next start uses"
			 " it)", nm->cfg.ifname, strerror(-ret));
		goto out_unlock;
	}
	memcpy(old_pub, nm->public_key, WG_KEY_LEN);
	memcpy(old_b64, nm->public_b64, WG_KEY_B64_LEN + 1);
	ret = nm_key_set(nm, priv);
	if (ret < 0)
		goto out_unlock;

	ret = nm_rotate_register(nm, err, errlen);
	if (ret < 0)
		nm->registered = false; /* the sync thread registers it */

	for (size_t i = 0; i < nm->n_allocs; i++) {
		const struct nm_alloc *a = &nm->allocs[i];
		int r;

		if (!a->has_key)
			continue;
		r = nm_rotate_container(nm, a, old_pub, nm->public_key);
		if (r < 0) {
			failed++;
			log_warnx("container peer keeps the old node key", "container=%s ifname=%s"
				  " err=%s", a->container_id, a->ifname, strerror(-r));
		}
	}
	nm->rotations++;
	log_info("node key rotated", "old_public_key=%s public_key=%s registered=%s"
		 " containers=%zu failed=%zu", old_b64, nm->public_b64, ret < 0 ? "no" : "yes",
		 nm->n_allocs, failed);
	if (ret == 0 && failed) {
		snprintf(err, errlen, "%zu container interfaces keep the old node key", failed);
		ret = -EIO;
	}
out_unlock:
	pthread_mutex_unlock(&nm->lock);
	key_wipe(priv, sizeof(priv));
	key_wipe(d.private_key, sizeof(d.private_key));
	return ret;
}
