/*
 * wgcni, the CNI plugin: shared types of its commands.
 *
 * Contract (CNI spec 0.3.0 .. 1.1.0): the runtime passes the
 * command and the attachment in CNI_* environment variables and the network
 * configuration on stdin; the plugin prints exactly one JSON document on
 * stdout (a result, a VERSION answer, or an error object) and diagnostics on
 * stderr only. An error exits non-zero.
 */
#ifndef WGCNI_CNI_H
#define WGCNI_CNI_H

#include "wg.h"

#include <jansson.h>
#include <sys/types.h>
#include <stdbool.h>
#include <stddef.h>

#define CNI_DEFAULT_NODE_MANAGER "unix:///run/wgcni/node-manager.sock"
#define CNI_DEFAULT_IMPL "wireguard-go"
#define CNI_DEFAULT_MTU 1420
#define CNI_ZERO_MAC "00:00:00:00:00:00"

/* Error codes: 0-99 are the spec's well-known ones, 100+ are ours. */
enum cni_code {
	CNI_ERR_INCOMPATIBLE_VERSION = 1,
	CNI_ERR_UNSUPPORTED_FIELD = 2,
	CNI_ERR_UNKNOWN_CONTAINER = 3,
	CNI_ERR_INVALID_ENV = 4,
	CNI_ERR_IO = 5,
	CNI_ERR_DECODE = 6,
	CNI_ERR_INVALID_CONFIG = 7,
	CNI_ERR_TRY_AGAIN = 11,
	CNI_ERR_UNAVAILABLE = 50,
	/* CNI_IFNAME (or our temporary device name) is already taken. */
	CNI_ERR_EXISTS = 100,
	/* The node manager answered, but refused the call. */
	CNI_ERR_NODE_MANAGER = 101,
	/* CHECK found the attachment differing from what ADD made. */
	CNI_ERR_CHECK = 102,
	/* Anything else (netlink, WireGuard configuration); libcni's ErrInternal. */
	CNI_ERR_INTERNAL = 999,
};

struct cni_err {
	unsigned int code; /* 0 until the first error */
	char msg[256];
	char details[1024];
};

/*
 * Record an error (only the first one counts: later ones are usually its
 * consequences, e.g. during unwinding) and return ret, a negative errno, so
 * callers can write `return cni_fail(e, 7, -EINVAL, "...", "`%s'", s);`.
 */
int cni_fail(struct cni_err *e, unsigned int code, int ret, const char *msg,
	     const char *detailsfmt, ...) __attribute__((format(printf, 5, 6)));

enum cni_version {
	CNI_V030 = 0,
	CNI_V031,
	CNI_V040,
	CNI_V100,
	CNI_V110,
	CNI_VERSION_COUNT,
};
#define CNI_VERSION_LATEST CNI_V110

/* "1.0.0" -> CNI_V100; -EINVAL if not supported. */
int cni_version_parse(const char *s, enum cni_version *out);
const char *cni_version_name(enum cni_version v);
/* JSON array of every supported version (new reference). */
json_t *cni_versions_json(void);

struct cni_env {
	const char *command;
	const char *containerid;
	const char *netns;  /* may be "" for DEL */
	const char *ifname;
	const char *args;
	const char *path;
};

struct cni_conf {
	json_t *root; /* the whole configuration, owned */
	enum cni_version version;
	const char *name; /* borrowed from root; may be NULL */
	const char *type;
	const char *node_manager;
	unsigned int mtu; /* 0: what the node manager reports */
	enum wg_backend backend;
	bool backend_set;
	const char *impl;
	bool container_mesh; /* "containerMesh": peer with the node's other containers */
	json_t *prev_result;       /* borrowed; NULL when absent */
	json_t *dns;               /* borrowed; NULL when absent */
	json_t *valid_attachments; /* borrowed; NULL when absent */
};

/*
 * Parse the configuration strictly. Codes: 6 malformed JSON, 1 unsupported
 * cniVersion, 2 unknown field, 7 invalid value. On success conf owns a
 * reference to the parsed root; release with cni_conf_free.
 */
int cni_conf_parse(struct cni_conf *conf, const char *buf, size_t len,
		   struct cni_err *e);
/* For VERSION: only cniVersion, if any, matters. Never fails. */
void cni_conf_peek_version(const char *buf, size_t len, const char **version_out,
			   json_t **root_out);
void cni_conf_free(struct cni_conf *conf);

struct cni_ctx {
	struct cni_env env;
	struct cni_conf conf;
	struct cni_err err;
	json_t *output; /* printed on success when non-NULL */
	const char *requested_version; /* VERSION: what the runtime sent */
};

/* Commands (cmd_*.c). Return 0 or a negative errno with ctx->err set. */
int cni_cmd_add(struct cni_ctx *ctx);
int cni_cmd_del(struct cni_ctx *ctx);
int cni_cmd_check(struct cni_ctx *ctx);
int cni_cmd_status(struct cni_ctx *ctx);
int cni_cmd_gc(struct cni_ctx *ctx);

/*
 * The temporary name of the container's WireGuard device while it is in the
 * runtime's namespace: "wgc" + 12 hex characters of BLAKE2b(containerID NUL
 * ifname). Stable, so DEL and CHECK find a userspace device's UAPI socket,
 * which keeps this name after the link is moved and renamed. 0 or -EIO.
 */
int cni_tmp_ifname(const char *containerid, const char *ifname,
		   char out[static IFNAMSIZ]);

/* Validators for CNI_IFNAME and CNI_CONTAINERID. */

/*
 * The container's namespace, and the way back to the runtime's (host)
 * namespace. setns() moves only the calling thread; the plugin has one.
 */
struct cni_ns {
	int host;   /* -1 when closed */
	int target; /* -1 when closed */
	const char *path; /* borrowed: CNI_NETNS */
};

/*
 * Open path (CNI_NETNS) and the current namespace. A missing path is
 * -ENOENT with code 3 (the container does not exist); other failures 5.
 */
int cni_ns_open(struct cni_ns *ns, const char *path, struct cni_err *e);
/* Switch the thread into the container (enter) or back (leave). */
int cni_ns_enter(struct cni_ns *ns, struct cni_err *e);
int cni_ns_leave(struct cni_ns *ns, struct cni_err *e);
/* wg_set of dev, named already, from inside ns (genetlink finds a kernel
 * device in the sender's namespace). */
int cni_ns_wg_set(struct cni_ns *ns, const struct wg_device *dev);
void cni_ns_close(struct cni_ns *ns);

/*
 * A container's WireGuard device after the move: a userspace device is
 * reached through its UAPI socket, which keeps the temporary name, from
 * the host; a kernel device by its link name inside the container.
 */
struct cni_link {
	struct cni_ns *ns;
	enum wg_backend backend; /* KERNEL or USERSPACE */
	char tmp[IFNAMSIZ];
	const char *ifname;
};
/* dev->name is set here. 0 or negative errno (no CNI error set). */
int cni_link_wg_set(struct cni_link *l, struct wg_device *dev);
int cni_link_wg_get(struct cni_link *l, struct wg_device **dev);

/* Milliseconds of sleep, for bounded polling. */
void cni_sleep_ms(unsigned int ms);

/*
 * fn(arg) in a child process while the caller goes on (bg.c): for a kernel
 * operation that sleeps, a link's move to another namespace (it waits for
 * an RCU barrier, ~20 ms measured here), while the caller talks to the
 * node manager (DEL's deletion has its own child: netdev_unregister). The
 * child runs fn and _exit()s: fn must not touch stdout or the caller's
 * connections. Without a child (fork failed) fn runs right away. Always
 * cni_bg_wait() after a start.
 */
struct cni_bg {
	pid_t pid; /* 0: fn already ran, ret holds its result */
	int ret;
};
void cni_bg_start(struct cni_bg *bg, int (*fn)(void *arg), void *arg);
/* fn's result: 0 or a negative errno. */
int cni_bg_wait(struct cni_bg *bg);

/* Build the ADD result (result.c): prevResult kept and extended. */
struct ipnet;
struct ipaddr;
int cni_result_build(const struct cni_conf *conf, const struct cni_env *env,
		     unsigned int mtu, const struct ipnet *addrs, size_t n_addrs,
		     const struct ipaddr *gateway, json_t **out, struct cni_err *e);

#endif
