/*
 * The userspace backend: the cross-platform UAPI of wireguard-go and friends
 * over <dir>/<name>.sock (wg_uapi.c), and the implementation's process
 * (wg_uapi_proc.c). Its entry points are for wg.c (which picks the backend)
 * and the unit tests; the public face is wg.h, and nothing outside pkg/
 * includes this.
 */
#ifndef WGCNI_WG_UAPI_H
#define WGCNI_WG_UAPI_H

#include "wg.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Directory of UAPI sockets; tests may point it elsewhere (NULL = default
 * /var/run/wireguard). */
void wg_uapi_set_dir(const char *dir);
/* 0 if name can name a socket (<IFNAMSIZ, no '/', not "." or ".."), else
 * -EINVAL. */
int wg_uapi_check_name(const char *name);
/* Path of name's UAPI socket (<dir>/<name>.sock) into buf. 0, -EINVAL for
 * a bad name, -ENAMETOOLONG. */
int wg_uapi_sock_path(const char *name, char *buf, size_t len);
/* True if something accepts a connection on name's socket. */
bool wg_uapi_exists(const char *name);
/* 1 if name's socket file exists, answered or stale (its process died),
 * else 0; -EINVAL or -ENAMETOOLONG as wg_uapi_sock_path. */
int wg_uapi_has_socket(const char *name);
/* The process that listens on name's socket (SO_PEERCRED: with an
 * implementation that daemonizes itself, its first process, gone). */
int wg_uapi_listener_pid(const char *name, pid_t *pid);
/* See wg_socket_buffers. */
int wg_uapi_socket_buffers(const char *name, int bytes);
/* 0 once name's daemon answers get=1 with errno=0, within ms. */
int wg_uapi_ready(const char *name, long ms);

/* Start impl for name and wait for its socket (see wg_create). */
int wg_uapi_create(const char *name, const char *impl);
/*
 * Delete name's link (this ends the process: its TUN goes, and it removes
 * its socket on the way out); if the link is in another namespace, stop the
 * process serving the socket; remove a stale socket. -ENODEV if nothing
 * existed.
 */
int wg_uapi_delete(const char *name);
int wg_uapi_set(const struct wg_device *dev);
int wg_uapi_get(const char *name, struct wg_device **dev);

#endif
