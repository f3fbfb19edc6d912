/*
 * wgcni: the CNI plugin. Thin: read the environment and stdin, pick the
 * command from a table, print the command's result or the CNI error.
 */
#include "cni.h"

#include "log.h"
#include "names.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Configurations carry a prevResult at most; anything bigger is not one. */
#define CNI_MAX_STDIN (4 * 1024 * 1024)

enum {
	NEED_CONTAINERID = 1U << 0,
	NEED_NETNS = 1U << 1,
	NEED_IFNAME = 1U << 2,
};

static int cmd_version(struct cni_ctx *ctx);

static const struct cni_cmd {
	const char *name;
	int (*run)(struct cni_ctx *ctx);
	unsigned int needs;
	enum cni_version min_version; /* the spec version that introduced it */
} cni_cmds[] = {
	{ "ADD", cni_cmd_add, NEED_CONTAINERID | NEED_NETNS | NEED_IFNAME, CNI_V030 },
	/* DEL: CNI_NETNS may be empty (containerd) or gone. */
	{ "DEL", cni_cmd_del, NEED_CONTAINERID | NEED_IFNAME, CNI_V030 },
	{ "CHECK", cni_cmd_check, NEED_CONTAINERID | NEED_NETNS | NEED_IFNAME, CNI_V040 },
	{ "STATUS", cni_cmd_status, 0, CNI_V110 },
	{ "GC", cni_cmd_gc, 0, CNI_V110 },
	{ "VERSION", cmd_version, 0, CNI_V030 },
};

static const struct cni_cmd *cni_cmd_find(const char *name)
{
	for (size_t i = 0; i < sizeof(cni_cmds) / sizeof(cni_cmds[0]); i++) {
		if (!strcmp(cni_cmds[i].name, name))
			return &cni_cmds[i];
	}
	return NULL;
}

static int cmd_version(struct cni_ctx *ctx)
{
	enum cni_version v = CNI_VERSION_LATEST;
	json_t *out;

	/* Answer in the runtime's version when we speak it. */
	if (ctx->requested_version)
		cni_version_parse(ctx->requested_version, &v);
	out = json_pack("{s:s, s:o}", "cniVersion", cni_version_name(v),
			"supportedVersions", cni_versions_json());
	if (!out)
		return cni_fail(&ctx->err, CNI_ERR_INTERNAL, -ENOMEM, "out of memory", NULL);
	ctx->output = out;
	return 0;
}

static int env_require(const char *name, const char **out, bool check_set,
		       struct cni_err *e)
{
	*out = getenv(name);
	if (check_set && (!*out || !**out))
		return cni_fail(e, CNI_ERR_INVALID_ENV, -EINVAL,
				"required environment variable missing", "%s", name);
	return 0;
}

static int env_parse(struct cni_env *env, unsigned int needs, struct cni_err *e)
{
	const char *why;
	int ret;

	ret = env_require("CNI_CONTAINERID", &env->containerid,
			  needs & NEED_CONTAINERID, e);
	if (ret)
		return ret;
	why = needs & NEED_CONTAINERID ? name_container_id_check(env->containerid) : NULL;
	if (why)
		return cni_fail(e, CNI_ERR_INVALID_ENV, -EINVAL, "invalid CNI_CONTAINERID",
				"`%.128s': %s", env->containerid, why);
	ret = env_require("CNI_NETNS", &env->netns, needs & NEED_NETNS, e);
	if (ret)
		return ret;
	if (!env->netns)
		env->netns = "";
	ret = env_require("CNI_IFNAME", &env->ifname, needs & NEED_IFNAME, e);
	if (ret)
		return ret;
	why = needs & NEED_IFNAME ? name_ifname_check(env->ifname) : NULL;
	if (why)
		return cni_fail(e, CNI_ERR_INVALID_ENV, -EINVAL, "invalid CNI_IFNAME",
				"`%.64s': not a valid Linux interface name: %s", env->ifname, why);
	env->args = getenv("CNI_ARGS");
	env->path = getenv("CNI_PATH");
	return 0;
}

static char *read_stdin(size_t *len, struct cni_err *e)
{
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap), *nbuf;
	ssize_t r;

	if (!buf)
		goto err_nomem;
	for (;;) {
		if (n == cap) {
			if (cap >= CNI_MAX_STDIN) {
				cni_fail(e, CNI_ERR_DECODE, -EFBIG,
					 "network configuration too large",
					 "more than %d bytes on stdin", CNI_MAX_STDIN);
				goto err_free;
			}
			cap *= 2;
			nbuf = realloc(buf, cap);
			if (!nbuf)
				goto err_nomem;
			buf = nbuf;
		}
		r = read(STDIN_FILENO, buf + n, cap - n);
		if (r == 0)
			break;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			cni_fail(e, CNI_ERR_IO, -errno, "cannot read network configuration",
				 "stdin: %s", strerror(errno));
			goto err_free;
		}
		n += (size_t)r;
	}
	*len = n;
	return buf;

err_nomem:
	cni_fail(e, CNI_ERR_INTERNAL, -ENOMEM, "out of memory", NULL);
err_free:
	free(buf);
	return NULL;
}

/*
 * Keep the real stdout for the answer only: move it to a close-on-exec
 * descriptor and put /dev/null on fd 1, so nothing we run (a daemonizing
 * wireguard-go above all) can hold the runtime's pipe open, and no stray
 * printf can corrupt the JSON.
 */
static int stdout_take(void)
{
	int out, null;

	out = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
	if (out < 0)
		return -errno;
	null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (null < 0 || dup2(null, STDOUT_FILENO) < 0) {
		int ret = -errno;
		if (null >= 0)
			close(null);
		close(out);
		return ret;
	}
	close(null);
	return out;
}

static int print_json(int fd, json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(4) | JSON_PRESERVE_ORDER);
	size_t len, off = 0;
	ssize_t r;
	int ret = 0;

	if (!s)
		return -ENOMEM;
	len = strlen(s);
	while (off < len) {
		r = write(fd, s + off, len - off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			break;
		}
		off += (size_t)r;
	}
	if (!ret && write(fd, "\n", 1) != 1)
		ret = -EIO;
	free(s);
	return ret;
}

static int print_error(int fd, const char *version, const struct cni_err *e)
{
	json_t *j;
	int ret;

	j = json_pack("{s:s, s:i, s:s}", "cniVersion", version, "code", (int)e->code,
		      "msg", e->msg);
	if (!j)
		return -ENOMEM;
	if (e->details[0])
		json_object_set_new(j, "details", json_string(e->details));
	ret = print_json(fd, j);
	json_decref(j);
	return ret;
}

/* The error object, in the configuration's version when we speak it. */
static void report_error(int out, const char *version, struct cni_ctx *ctx, int ret)
{
	enum cni_version v = CNI_VERSION_LATEST;

	if (!ctx->err.code)
		cni_fail(&ctx->err, CNI_ERR_INTERNAL, ret, "internal error", "%s",
			 strerror(ret < 0 ? -ret : EIO));
	if (version)
		cni_version_parse(version, &v);
	log_warnx("failed", "cmd=%s code=%u error=%s details=%s",
		  ctx->env.command ? ctx->env.command : "", ctx->err.code, ctx->err.msg,
		  ctx->err.details);
	if (print_error(out, cni_version_name(v), &ctx->err))
		log_warnx("cannot write the error", NULL);
}

static void usage(FILE *f)
{
	fprintf(f,
		"wgcni %s: WireGuard CNI plugin (CNI spec 0.3.0-1.1.0)\n"
		"Run by a container runtime: CNI_COMMAND=ADD|DEL|CHECK|STATUS|GC|VERSION,\n"
		"CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME in the environment, the network\n"
		"configuration on stdin, the result on stdout. WGCNI_LOG_LEVEL=debug for\n"
		"diagnostics on stderr.\n", WGCNI_VERSION);
}

int main(int argc, char **argv)
{
	struct cni_ctx ctx = { 0 };
	const struct cni_cmd *cmd;
	enum log_level level = LOG_LEVEL_WARN;
	const char *lvl = getenv("WGCNI_LOG_LEVEL");
	const char *err_version = NULL;
	json_t *peek = NULL;
	char *in = NULL;
	size_t inlen = 0;
	int out, ret;

	/* A runtime passes no arguments; these are for people. */
	if (argc > 1 && (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V"))) {
		printf("wgcni %s\n", WGCNI_VERSION);
		return 0;
	}
	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		usage(stdout);
		return 0;
	}
	if (argc > 1) {
		usage(stderr);
		return 2;
	}
	if (lvl)
		log_level_parse(lvl, &level);
	log_init("wgcni", level);
	out = stdout_take();
	if (out < 0) {
		log_warnx("cannot set up stdout", "err=%s", strerror(-out));
		return 1;
	}

	ctx.env.command = getenv("CNI_COMMAND");
	if (!ctx.env.command || !*ctx.env.command) {
		ret = cni_fail(&ctx.err, CNI_ERR_INVALID_ENV, -EINVAL,
			       "required environment variable missing", "CNI_COMMAND");
		goto fail;
	}
	cmd = cni_cmd_find(ctx.env.command);
	if (!cmd) {
		ret = cni_fail(&ctx.err, CNI_ERR_INVALID_ENV, -EINVAL, "unknown CNI_COMMAND",
			       "`%.32s': want ADD, DEL, CHECK, STATUS, GC or VERSION",
			       ctx.env.command);
		goto fail;
	}

	in = read_stdin(&inlen, &ctx.err);
	if (!in) {
		ret = -EIO;
		goto fail;
	}
	cni_conf_peek_version(in, inlen, &err_version, &peek);
	ctx.requested_version = err_version;

	if (cmd->run != cmd_version) {
		ret = cni_conf_parse(&ctx.conf, in, inlen, &ctx.err);
		if (ret)
			goto fail;
		if (ctx.conf.version < cmd->min_version) {
			ret = cni_fail(&ctx.err, CNI_ERR_INCOMPATIBLE_VERSION, -EPROTONOSUPPORT,
				       "incompatible CNI versions",
				       "%s needs cniVersion %s or later, config is %s",
				       cmd->name, cni_version_name(cmd->min_version),
				       cni_version_name(ctx.conf.version));
			goto fail;
		}
		ret = env_parse(&ctx.env, cmd->needs, &ctx.err);
		if (ret)
			goto fail;
	}

	log_debug("command", "cmd=%s container=%s ifname=%s netns=%s", cmd->name,
		  ctx.env.containerid ? ctx.env.containerid : "",
		  ctx.env.ifname ? ctx.env.ifname : "", ctx.env.netns ? ctx.env.netns : "");
	ret = cmd->run(&ctx);
	if (ret)
		goto fail;
	if (ctx.output && print_json(out, ctx.output)) {
		log_warnx("cannot write the result", "cmd=%s", cmd->name);
		ret = 1;
	}
	goto out_free;

fail:
	report_error(out, err_version, &ctx, ret);
	ret = 1;
out_free:
	json_decref(ctx.output);
	cni_conf_free(&ctx.conf);
	json_decref(peek);
	free(in);
	close(out);
	return ret ? 1 : 0;
}
