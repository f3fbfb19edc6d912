/*
 * The kernel backend (wg_genl.c): its entry points, for wg.c (which picks
 * the backend) and the unit tests, and the internals the unit tests call
 * without a kernel: building WG_CMD_SET_DEVICE messages and parsing
 * WG_CMD_GET_DEVICE replies. The public face is wg.h; nothing outside pkg/
 * includes this.
 *
 * A device too large for one message is split as wireguard-tools' ipc-linux.h
 * does: device attributes (and WGDEVICE_F_REPLACE_PEERS) only in the first
 * message; a peer whose allowed IPs do not fit continues in the next message
 * under its public key again, without WGPEER_F_REPLACE_ALLOWEDIPS, preshared
 * key, endpoint or keepalive (those went with the first part). A dump reply
 * splits the same way; the parser merges a peer continued in the next message.
 */
#ifndef WGCNI_WG_GENL_H
#define WGCNI_WG_GENL_H

#include "wg.h"

#include <stdbool.h>
#include <stddef.h>

struct nl_msg;

/* 1 if the generic netlink family "wireguard" resolves, 0 if not, or a
 * negative errno when netlink itself fails. */
int wg_kernel_family_available(void);
/* True if name is a link of kind "wireguard" in the current namespace. */
bool wg_kernel_exists(const char *name);
/* In the namespace netns_fd (-1: ours), by a request from ours; mtu as
 * netdev_create_in. */
int wg_kernel_create_in(const char *name, int netns_fd, unsigned int mtu);
/* Delete link name, whatever its kind (a TUN whose userspace process left
 * no socket goes too, as it always has). 0 or -ENODEV. */
int wg_kernel_delete(const char *name);
/* -EOPNOTSUPP without the module (wg.c turns that into -ENODEV for a name
 * that is no link), -ENODEV for no such device. */
int wg_kernel_set(const struct wg_device *dev);
int wg_kernel_get(const char *name, struct wg_device **dev);

/* What wireguard-tools sizes its messages to: a page, at most 8 KiB. */
size_t wg_genl_msg_size(void);

/*
 * Build the SET_DEVICE messages for dev, each at most msg_size bytes, for the
 * generic netlink family id family. *msgs is a malloc'd array of *n messages;
 * free it with wg_genl_msgs_free (which wipes them: they hold keys).
 * -EMSGSIZE if msg_size cannot hold even one allowed IP.
 */
int wg_genl_build_set(const struct wg_device *dev, int family, size_t msg_size,
		      struct nl_msg ***msgs, size_t *n);
void wg_genl_msgs_free(struct nl_msg **msgs, size_t n);

/*
 * Parse one GET_DEVICE reply message into dev, appending peers; a peer whose
 * public key equals the last one parsed continues it. Every length is
 * checked. 0 or -EPROTO (malformed), -ENOMEM.
 */
int wg_genl_parse_device(struct nl_msg *msg, struct wg_device *dev);

#endif
