/*
 * The names that cross a boundary between our programs, each checked by one
 * function that both sides use, so a name one side accepts is never refused
 * later by the other:
 *   container ID  (CNI_CONTAINERID, and the node manager's allocation key):
 *                 starts with a letter or digit, then letters, digits, '_',
 *                 '.', '-', at most NAME_CONTAINER_ID_MAX bytes (the CNI
 *                 spec's pattern; runtimes use 64 hex digits);
 *   network name  (the conflist's "name"): the same rule as a container ID;
 *   interface     (CNI_IFNAME, --interface): as the kernel's dev_valid_name():
 *                 1..15 bytes, not "." or "..", no '/', ':' or white space;
 *   node name     (--node-name, nodeName): 1..253 letters, digits, '.', '_'
 *                 or '-' (a DNS name, as Kubernetes node names are).
 * Each *_check returns NULL when the name is valid, else why it is not.
 */
#ifndef WGCNI_NAMES_H
#define WGCNI_NAMES_H

#include <stdbool.h>

#define NAME_CONTAINER_ID_MAX 256
#define NAME_NODE_MAX 253

const char *name_container_id_check(const char *s);
const char *name_ifname_check(const char *s);
const char *name_node_check(const char *s);
/*
 * The WireGuard device of container attachment (containerid, ifname):
 * "wgc" + 12 hex digits of a hash of both. The plugin creates it under this
 * name (and, userspace, its control socket keeps it); the node manager finds
 * it by the same name to rotate the node key. 0 or negative errno.
 */
int name_wg_device(const char *containerid, const char *ifname, char out[static 16]);

static inline bool name_container_id_valid(const char *s)
{
	return !name_container_id_check(s);
}

static inline bool name_ifname_valid(const char *s)
{
	return !name_ifname_check(s);
}

static inline bool name_node_valid(const char *s)
{
	return !name_node_check(s);
}

#endif
