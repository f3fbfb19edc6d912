/*
 * Building and freeing devices and peers, whatever the backend (as
 * wireguard-tools' containers.h beside its ipc.c).
 */
#include "wg.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

void wg_peer_clear(struct wg_peer *peer)
{
	if (!peer)
		return;
	free(peer->allowedips);
	sodium_memzero(peer, sizeof(*peer));
}

void wg_device_free(struct wg_device *dev)
{
	size_t i;

	if (!dev)
		return;
	for (i = 0; i < dev->n_peers; i++)
		wg_peer_clear(&dev->peers[i]);
	free(dev->peers);
	sodium_memzero(dev, sizeof(*dev));
	free(dev);
}

int wg_peer_add_allowedip(struct wg_peer *peer, const struct ipnet *net)
{
	struct ipnet *v;

	if (!peer || !net || (net->addr.family != AF_INET && net->addr.family != AF_INET6) ||
	    net->prefixlen > ipaddr_bits(&net->addr))
		return -EINVAL;
	/* Grow geometrically; an array the caller sized (cap 0) is full, and
	 * no array has no room (a struct copied and emptied keeps a stale cap). */
	if (!peer->allowedips)
		peer->cap_allowedips = 0;
	if (peer->n_allowedips >= peer->cap_allowedips) {
		size_t cap = peer->n_allowedips < 4 ? 8 : peer->n_allowedips * 2;

		v = reallocarray(peer->allowedips, cap, sizeof(*v));
		if (!v)
			return -ENOMEM;
		peer->allowedips = v;
		peer->cap_allowedips = cap;
	}
	peer->allowedips[peer->n_allowedips++] = *net;
	return 0;
}

struct wg_peer *wg_device_add_peer(struct wg_device *dev)
{
	struct wg_peer *peers, *p;

	if (!dev->peers)
		dev->cap_peers = 0;
	if (dev->n_peers >= dev->cap_peers) {
		size_t cap = dev->n_peers < 4 ? 8 : dev->n_peers * 2;

		peers = reallocarray(dev->peers, cap, sizeof(*peers));
		if (!peers) {
			errno = ENOMEM;
			return NULL;
		}
		dev->peers = peers;
		dev->cap_peers = cap;
	}
	p = &dev->peers[dev->n_peers++];
	memset(p, 0, sizeof(*p));
	return p;
}

int wg_peer_set_endpoint(struct wg_peer *peer, const char *hostport, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	struct endpoint ep;
	socklen_t len = 0;
	int ret;

	if (!peer) {
		if (err)
			snprintf(err, errlen, "no peer for endpoint `%s'", hostport ? hostport : "");
		return -EINVAL;
	}
	ret = endpoint_parse(hostport, &ep, err, errlen);
	if (ret < 0)
		return ret;
	/* Whatever the lookup said (no such host, try again), the endpoint
	 * is unusable now: callers answer that as an invalid argument. */
	ret = endpoint_to_sockaddr(&ep, &ss, &len);
	if (ret < 0) {
		if (err)
			snprintf(err, errlen, "cannot resolve endpoint `%s'", hostport);
		return -EINVAL;
	}
	if (len > sizeof(peer->endpoint)) {
		if (err)
			snprintf(err, errlen, "endpoint `%s' resolves to an unknown address family",
				 hostport);
		return -EINVAL;
	}
	memset(&peer->endpoint, 0, sizeof(peer->endpoint));
	memcpy(&peer->endpoint, &ss, len);
	peer->flags |= WGPEER_HAS_ENDPOINT;
	return 0;
}
