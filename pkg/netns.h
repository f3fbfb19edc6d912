/*
 * Network namespaces: enter one by path and come back, as iproute2's
 * netns_switch does. setns() changes only the calling thread.
 */
#ifndef WGCNI_NETNS_H
#define WGCNI_NETNS_H

/* fd of the namespace at path (/run/netns/x, /proc/PID/ns/net), O_CLOEXEC,
 * or negative errno (-ENOENT when it does not exist). */
int netns_open(const char *path);
/* fd of the calling thread's current namespace, or negative errno. */
int netns_current(void);
/* Switch the calling thread to fd. 0 or negative errno. */
int netns_enter(int fd);
/* Enter the namespace at path, returning in *saved an fd to the previous
 * one for netns_restore. 0 or negative errno. */
int netns_enter_path(const char *path, int *saved);
/* Go back to saved and close it. 0 or negative errno. */
int netns_restore(int saved);

#endif
