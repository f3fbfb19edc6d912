/*
 * WireGuard device control, one interface over two backends, as
 * wireguard-tools' ipc.c: the kernel's generic netlink family "wireguard"
 * (wg_genl.c) and the cross-platform userspace API of wireguard-go and
 * friends over /var/run/wireguard/<name>.sock (wg_uapi.c). wg.c is the one
 * place that picks between them: a name with a UAPI socket is userspace,
 * anything else kernel. The backends' own entry points are in wg_genl.h and
 * wg_uapi.h, for wg.c and the backends' unit tests only.
 *
 * wg_set() is incremental by default: only the peers listed are touched;
 * a peer with WGPEER_REMOVE_ME is removed; WGDEVICE_REPLACE_PEERS drops every
 * peer not listed; WGPEER_REPLACE_ALLOWEDIPS replaces one peer's AllowedIPs.
 */
#ifndef WGCNI_WG_H
#define WGCNI_WG_H

#include "ipnet.h"
#include "key.h"

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

enum wg_backend {
	WG_BACKEND_AUTO = 0,
	WG_BACKEND_KERNEL,
	WG_BACKEND_USERSPACE,
};

enum {
	WGPEER_REMOVE_ME = 1U << 0,
	WGPEER_REPLACE_ALLOWEDIPS = 1U << 1,
	WGPEER_HAS_PRESHARED_KEY = 1U << 2,
	WGPEER_HAS_KEEPALIVE = 1U << 3,
	WGPEER_HAS_ENDPOINT = 1U << 4,
	WGPEER_UPDATE_ONLY = 1U << 5, /* only change a peer that exists */
};

enum {
	WGDEVICE_REPLACE_PEERS = 1U << 0,
	WGDEVICE_HAS_PRIVATE_KEY = 1U << 1,
	WGDEVICE_HAS_PUBLIC_KEY = 1U << 2,
	WGDEVICE_HAS_LISTEN_PORT = 1U << 3,
	WGDEVICE_HAS_FWMARK = 1U << 4,
};

struct wg_peer {
	uint32_t flags;
	uint8_t public_key[WG_KEY_LEN];
	uint8_t preshared_key[WG_KEY_LEN];
	union {
		struct sockaddr addr;
		struct sockaddr_in addr4;
		struct sockaddr_in6 addr6;
	} endpoint;
	uint16_t keepalive; /* seconds, 0 = off */
	struct ipnet *allowedips;
	size_t n_allowedips;
	/* Room in allowedips when it grew by wg_peer_add_allowedip; 0 means
	 * exactly n_allowedips (an array the caller sized). */
	size_t cap_allowedips;
	/* get only */
	struct timespec last_handshake;
	uint64_t rx_bytes, tx_bytes;
};

struct wg_device {
	char name[IFNAMSIZ];
	uint32_t ifindex;
	uint32_t flags;
	uint8_t private_key[WG_KEY_LEN]; /* wiped by wg_device_free */
	uint8_t public_key[WG_KEY_LEN];
	uint16_t listen_port;
	uint32_t fwmark;
	struct wg_peer *peers;
	size_t n_peers;
	size_t cap_peers; /* as cap_allowedips, for wg_device_add_peer */
};

int wg_backend_parse(const char *s, enum wg_backend *out); /* auto|kernel|userspace */
const char *wg_backend_name(enum wg_backend b);
/* auto -> kernel when the generic netlink family "wireguard" resolves in
 * the current namespace (or the module can be created), else userspace. */
enum wg_backend wg_backend_resolve(enum wg_backend requested);

/*
 * Create device name in the calling thread's namespace. Userspace: start
 * impl ("wireguard-go") with stdio on /dev/null, wait (bounded, 5 s) for its
 * UAPI socket. -EEXIST if a link or socket of that name exists; -ENOENT if
 * impl is not found; -EOPNOTSUPP for kernel without the module.
 */
int wg_create(const char *name, enum wg_backend backend, const char *impl);
/*
 * Kernel only: create name directly in the namespace netns_fd, from the
 * calling thread's namespace, which WireGuard keeps as the one its UDP
 * socket lives in (the device's creating namespace, as after a move, but
 * without the move's rcu_barrier()), with MTU mtu (0: WireGuard's 1420).
 * The name must be free in the calling thread's namespace as well (kernels
 * such as 6.1 look it up there). Errors as wg_create.
 */
int wg_create_kernel_in(const char *name, int netns_fd, unsigned int mtu);
/* Delete the link (this also ends a userspace process) and, for userspace,
 * the stale socket. -ENODEV if nothing existed. */
int wg_delete(const char *name);
/* Which backend serves name: KERNEL, USERSPACE, or -ENODEV. */
int wg_backend_of(const char *name);

/*
 * Size the UDP socket buffers of name's userspace implementation (bytes
 * each way; its sockets exist once the device is up, and a new bind, on a
 * listen-port change or down and up, starts from the defaults again).
 * wireguard-go 0.0.20220316 sets none of its own (later releases set 7 MiB,
 * WG_SOCKET_BUFFER), so at full load its sockets drop. Kernel devices: 0,
 * nothing to do. -ENOENT if the daemon holds no UDP socket yet, -EPERM
 * without the right to borrow its descriptors (pidfd_getfd(2)).
 */
#define WG_SOCKET_BUFFER (7 << 20)
int wg_socket_buffers(const char *name, int bytes);

int wg_set(const struct wg_device *dev);
/* Full device with peers; free with wg_device_free. */
int wg_get(const char *name, struct wg_device **dev);
/*
 * As wg_get, from the given backend only (AUTO: as wg_get). The UAPI socket
 * directory is global while link names are per namespace: a caller that
 * knows name is a kernel link in its namespace asks for KERNEL, lest another
 * namespace's userspace device of the same name answer.
 */
int wg_get_from(const char *name, enum wg_backend backend, struct wg_device **dev);
void wg_device_free(struct wg_device *dev);

/* Peer helpers for building devices. */
int wg_peer_add_allowedip(struct wg_peer *peer, const struct ipnet *net);
/* Append a zeroed peer to a heap-allocated device (arrays grow
 * geometrically, so n appends cost O(n)); NULL with errno = ENOMEM. */
struct wg_peer *wg_device_add_peer(struct wg_device *dev);
void wg_peer_clear(struct wg_peer *peer); /* frees allowedips */
/*
 * Parse hostport ("host:port" or "[v6]:port", see endpoint_parse), resolve
 * it (a host name by getaddrinfo) and set it as peer's endpoint with
 * WGPEER_HAS_ENDPOINT. 0 or -EINVAL with the reason in err; peer is
 * unchanged on error.
 */
int wg_peer_set_endpoint(struct wg_peer *peer, const char *hostport, char *err, size_t errlen);

#endif
