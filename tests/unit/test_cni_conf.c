/*
 * The CNI plugin's network configuration parser (cni/conf.c): what every
 * runtime writes on stdin. Each supported cniVersion, the defaults, each of
 * our fields with its bounds, the runtime-reserved keys, and the error code
 * and message of each way a configuration is refused.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cni.h"

static int parse(const char *s, struct cni_conf *c, struct cni_err *e)
{
	memset(e, 0, sizeof(*e));
	return cni_conf_parse(c, s, strlen(s), e);
}

/* s must be refused with code and ret, leaving c empty; details must
 * contain want when given. */
static void refused(const char *s, unsigned int code, int ret, const char *want)
{
	struct cni_conf c;
	struct cni_err e;

	assert_int_equal(parse(s, &c, &e), ret);
	assert_int_equal(e.code, code);
	assert_true(e.msg[0] != '\0');
	assert_null(c.root);
	assert_null(c.type);
	if (want && !strstr(e.details, want)) {
		print_error("details `%s' lack `%s' (input %s)\n", e.details, want, s);
		fail();
	}
}

static void accepted(const char *s, struct cni_conf *c)
{
	struct cni_err e;
	int ret = parse(s, c, &e);

	if (ret) {
		print_error("refused (%d, code %u: %s: %s): %s\n", ret, e.code, e.msg,
			    e.details, s);
		fail();
	}
	assert_int_equal(e.code, 0);
	assert_non_null(c->root);
}

static void test_versions(void **state)
{
	static const struct {
		const char *name;
		enum cni_version v;
	} versions[] = {
		{ "0.3.0", CNI_V030 }, { "0.3.1", CNI_V031 }, { "0.4.0", CNI_V040 },
		{ "1.0.0", CNI_V100 }, { "1.1.0", CNI_V110 },
	};
	char buf[256];

	for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
		struct cni_conf c;

		snprintf(buf, sizeof(buf),
			 "{\"cniVersion\": \"%s\", \"name\": \"wg-net\", \"type\": \"wgcni\"}",
			 versions[i].name);
		accepted(buf, &c);
		assert_int_equal(c.version, versions[i].v);
		assert_string_equal(cni_version_name(c.version), versions[i].name);
		assert_string_equal(c.name, "wg-net");
		assert_string_equal(c.type, "wgcni");
		/* The defaults. */
		assert_string_equal(c.node_manager, CNI_DEFAULT_NODE_MANAGER);
		assert_string_equal(c.impl, CNI_DEFAULT_IMPL);
		assert_int_equal(c.mtu, 0);
		assert_int_equal(c.backend, WG_BACKEND_AUTO);
		assert_false(c.backend_set);
		assert_false(c.container_mesh);
		assert_null(c.prev_result);
		assert_null(c.dns);
		assert_null(c.valid_attachments);
		cni_conf_free(&c);
		assert_null(c.root);
	}
}

static void test_unsupported_versions(void **state)
{
	refused("{\"name\": \"n\", \"type\": \"wgcni\"}", CNI_ERR_INCOMPATIBLE_VERSION,
		-EPROTONOSUPPORT, "no cniVersion");
	refused("{\"cniVersion\": \"0.2.0\", \"name\": \"n\", \"type\": \"wgcni\"}",
		CNI_ERR_INCOMPATIBLE_VERSION, -EPROTONOSUPPORT, "`0.2.0'");
	refused("{\"cniVersion\": \"0.1.0\", \"name\": \"n\", \"type\": \"wgcni\"}",
		CNI_ERR_INCOMPATIBLE_VERSION, -EPROTONOSUPPORT, "`0.1.0'");
	refused("{\"cniVersion\": \"1.2.0\", \"name\": \"n\", \"type\": \"wgcni\"}",
		CNI_ERR_INCOMPATIBLE_VERSION, -EPROTONOSUPPORT, "`1.2.0'");
	refused("{\"cniVersion\": \"1.0\", \"name\": \"n\", \"type\": \"wgcni\"}",
		CNI_ERR_INCOMPATIBLE_VERSION, -EPROTONOSUPPORT, NULL);
	refused("{\"cniVersion\": \"\", \"name\": \"n\", \"type\": \"wgcni\"}",
		CNI_ERR_INCOMPATIBLE_VERSION, -EPROTONOSUPPORT, NULL);
	/* The version is checked first: an unknown field does not hide it. */
	refused("{\"cniVersion\": \"9.9.9\", \"bogus\": 1, \"name\": \"n\", \"type\": \"wgcni\"}",
		CNI_ERR_INCOMPATIBLE_VERSION, -EPROTONOSUPPORT, NULL);
	refused("{\"cniVersion\": 1.0, \"name\": \"n\", \"type\": \"wgcni\"}", CNI_ERR_INVALID_CONFIG,
		-EINVAL, "`cniVersion' must be a string");
}

static void test_malformed(void **state)
{
	refused("", CNI_ERR_DECODE, -EBADMSG, NULL);
	refused("{\"cniVersion\": \"1.0.0\", \"name\": \"n\", \"type\": \"wgcni\"", CNI_ERR_DECODE, -EBADMSG,
		"line 1");
	refused("[\"cniVersion\", \"1.0.0\"]", CNI_ERR_DECODE, -EBADMSG, "not a JSON object");
	refused("\"wgcni\"", CNI_ERR_DECODE, -EBADMSG, NULL);
	refused("null", CNI_ERR_DECODE, -EBADMSG, NULL);
	/* Two values for one key: which one a runtime meant is unknowable. */
	refused("{\"cniVersion\": \"1.0.0\", \"name\": \"n\", \"type\": \"wgcni\", \"mtu\": 1400, \"mtu\": 1300}",
		CNI_ERR_DECODE, -EBADMSG, NULL);
	refused("{\"cniVersion\": \"1.0.0\", \"name\": \"n\", \"type\": \"wgcni\"} trailing", CNI_ERR_DECODE,
		-EBADMSG, NULL);
}

static void test_length_is_honoured(void **state)
{
	static const char s[] = "{\"cniVersion\": \"1.0.0\", \"name\": \"n\", \"type\": \"wgcni\"}garbage";
	struct cni_conf c;
	struct cni_err e = { 0 };

	/* Only len bytes are read: no NUL terminator is needed or looked for. */
	assert_int_equal(cni_conf_parse(&c, s, strlen(s) - strlen("garbage"), &e), 0);
	assert_string_equal(c.type, "wgcni");
	cni_conf_free(&c);
	memset(&e, 0, sizeof(e));
	assert_int_equal(cni_conf_parse(&c, s, strlen(s) - strlen("garbage") - 1, &e),
			 -EBADMSG);
	assert_int_equal(e.code, CNI_ERR_DECODE);
}

static void test_all_fields(void **state)
{
	struct cni_conf c;

	accepted("{\"cniVersion\": \"1.1.0\", \"name\": \"wg.net_1-a\", \"type\": \"wgcni\","
		 " \"nodeManager\": \"http://10.0.0.1:8080\", \"mtu\": 1400,"
		 " \"backend\": \"kernel\", \"userspaceImplementation\": \"/usr/bin/wireguard-go\","
		 " \"containerMesh\": true, \"dns\": {\"nameservers\": [\"10.96.0.10\"]}}",
		 &c);
	assert_int_equal(c.version, CNI_V110);
	assert_string_equal(c.name, "wg.net_1-a");
	assert_string_equal(c.node_manager, "http://10.0.0.1:8080");
	assert_int_equal(c.mtu, 1400);
	assert_int_equal(c.backend, WG_BACKEND_KERNEL);
	assert_true(c.backend_set);
	assert_string_equal(c.impl, "/usr/bin/wireguard-go");
	assert_true(c.container_mesh);
	assert_ptr_equal(c.dns, json_object_get(c.root, "dns"));
	cni_conf_free(&c);
}

static void test_runtime_keys(void **state)
{
	struct cni_conf c;

	/* Reserved for runtimes: accepted (as objects) and otherwise ignored. */
	accepted("{\"cniVersion\": \"1.0.0\", \"name\": \"n\", \"type\": \"wgcni\","
		 " \"runtimeConfig\": {\"portMappings\": []}, \"args\": {\"cni\": {}},"
		 " \"capabilities\": {\"portMappings\": true},"
		 " \"cni.dev/something-else\": 42}",
		 &c);
	assert_string_equal(c.node_manager, CNI_DEFAULT_NODE_MANAGER);
	assert_null(c.valid_attachments);
	cni_conf_free(&c);

	refused("{\"cniVersion\": \"1.0.0\", \"name\": \"n\", \"type\": \"wgcni\", \"runtimeConfig\": []}",
		CNI_ERR_INVALID_CONFIG, -EINVAL, "`runtimeConfig' must be an object");
	refused("{\"cniVersion\": \"1.0.0\", \"name\": \"n\", \"type\": \"wgcni\", \"args\": \"x\"}",
		CNI_ERR_INVALID_CONFIG, -EINVAL, "`args' must be an object");
	refused("{\"cniVersion\": \"1.0.0\", \"name\": \"n\", \"type\": \"wgcni\", \"capabilities\": null}",
		CNI_ERR_INVALID_CONFIG, -EINVAL, "`capabilities' must be an object");
	refused("{\"cniVersion\": \"1.0.0\", \"name\": \"n\", \"type\": \"wgcni\", \"dns\": [\"1.1.1.1\"]}",
		CNI_ERR_INVALID_CONFIG, -EINVAL, "`dns' must be an object");
}

static void test_unknown_fields(void **state)
{
	refused("{\"cniVersion\": \"1.0.0\", \"name\": \"n\", \"type\": \"wgcni\", \"mtU\": 1400}",
		CNI_ERR_UNSUPPORTED_FIELD, -EINVAL, "`mtU'");
	refused("{\"cniVersion\": \"1.0.0\", \"name\": \"n\", \"type\": \"wgcni\", \"plugins\": []}",
		CNI_ERR_UNSUPPORTED_FIELD, -EINVAL, "`plugins'");
	refused("{\"cniVersion\": \"1.0.0\", \"name\": \"n\", \"type\": \"wgcni\","
		" \"ipam\": {\"type\": \"host-local\"}}",
		CNI_ERR_UNSUPPORTED_FIELD, -EINVAL, "node manager");
	/* "cni.dev" without the slash is not the reserved prefix. */
	refused("{\"cniVersion\": \"1.0.0\", \"name\": \"n\", \"type\": \"wgcni\", \"cni.devx\": 1}",
		CNI_ERR_UNSUPPORTED_FIELD, -EINVAL, NULL);
}

static void test_type_and_name(void **state)
{
	char big[4200], buf[4400];

	refused("{\"cniVersion\": \"1.0.0\", \"name\": \"n\"}", CNI_ERR_INVALID_CONFIG, -EINVAL,
		"missing field `type'");
	/* The CNI spec requires a network name: refused up front, code 7. */
	refused("{\"cniVersion\": \"1.0.0\", \"type\": \"wgcni\"}", CNI_ERR_INVALID_CONFIG,
		-EINVAL, "missing field `name'");
	refused("{\"cniVersion\": \"1.0.0\", \"type\": \"wgcni\", \"name\": \"\"}",
		CNI_ERR_INVALID_CONFIG, -EINVAL, "is empty");
	refused("{\"cniVersion\": \"1.0.0\", \"type\": \"\"}", CNI_ERR_INVALID_CONFIG, -EINVAL,
		"`type'");
	refused("{\"cniVersion\": \"1.0.0\", \"type\": 7}", CNI_ERR_INVALID_CONFIG, -EINVAL,
		"`type' must be a string");
	/* jansson refuses an escaped NUL already (no JSON_ALLOW_NUL), so the
	 * parser's own check is a second line. */
	refused("{\"cniVersion\": \"1.0.0\", \"type\": \"wg\\u0000cni\"}", CNI_ERR_DECODE,
		-EBADMSG, NULL);
	memset(big, 'a', 4097);
	big[4097] = '\0';
	snprintf(buf, sizeof(buf), "{\"cniVersion\": \"1.0.0\", \"type\": \"%s\"}", big);
	refused(buf, CNI_ERR_INVALID_CONFIG, -EINVAL, "too long");

	refused("{\"cniVersion\": \"1.0.0\", \"name\": 1, \"type\": \"wgcni\"}",
		CNI_ERR_INVALID_CONFIG, -EINVAL, "`name' must be a string");
	refused("{\"cniVersion\": \"1.0.0\", \"name\": \"-net\", \"type\": \"wgcni\"}",
		CNI_ERR_INVALID_CONFIG, -EINVAL, "`-net'");
	refused("{\"cniVersion\": \"1.0.0\", \"name\": \"my net\", \"type\": \"wgcni\"}",
		CNI_ERR_INVALID_CONFIG, -EINVAL, NULL);
	refused("{\"cniVersion\": \"1.0.0\", \"name\": \"a/b\", \"type\": \"wgcni\"}",
		CNI_ERR_INVALID_CONFIG, -EINVAL, NULL);
	refused("{\"cniVersion\": \"1.0.0\", \"name\": \"\", \"type\": \"wgcni\"}",
		CNI_ERR_INVALID_CONFIG, -EINVAL, NULL);
}

static void test_node_manager(void **state)
{
	static const char *const good[] = {
		"unix:///run/wgcni/node-manager.sock",
		"unix:///s",
		"http://10.0.0.1:8080",
		"http://[fd00::1]:80",
		"http://host:8080/",
	};
	static const char *const bad[] = {
		"unix://relative.sock",
		"unix:///",
		"unix://",
		"ftp://host:21",
		"https://nm.example:443",
		"host:8080",
		"http://",
		"http://:80",
		"http:///path:80",
		"http://host",
		"http://host:",
		"http://host:port",
		"/run/wgcni/node-manager.sock",
	};
	char buf[512], path[200];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct cni_conf c;

		snprintf(buf, sizeof(buf),
			 "{\"cniVersion\": \"1.0.0\", \"name\": \"n\", \"type\": \"wgcni\", \"nodeManager\": \"%s\"}",
			 good[i]);
		accepted(buf, &c);
		assert_string_equal(c.node_manager, good[i]);
		cni_conf_free(&c);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(buf, sizeof(buf),
			 "{\"cniVersion\": \"1.0.0\", \"name\": \"n\", \"type\": \"wgcni\", \"nodeManager\": \"%s\"}",
			 bad[i]);
		refused(buf, CNI_ERR_INVALID_CONFIG, -EINVAL, bad[i]);
	}
	/* A unix socket path must fit sun_path (108 bytes with its NUL). */
	memset(path, 'p', sizeof(path));
	path[0] = '/';
	path[108] = '\0';
	snprintf(buf, sizeof(buf),
		 "{\"cniVersion\": \"1.0.0\", \"name\": \"n\", \"type\": \"wgcni\", \"nodeManager\": \"unix://%s\"}",
		 path);
	refused(buf, CNI_ERR_INVALID_CONFIG, -EINVAL, NULL);
	path[107] = '\0';
	snprintf(buf, sizeof(buf),
		 "{\"cniVersion\": \"1.0.0\", \"name\": \"n\", \"type\": \"wgcni\", \"nodeManager\": \"unix://%s\"}",
		 path);
	{
		struct cni_conf c;

		accepted(buf, &c);
		cni_conf_free(&c);
	}
	refused("{\"cniVersion\": \"1.0.0\", \"name\": \"n\", \"type\": \"wgcni\", \"nodeManager\": 8080}",
		CNI_ERR_INVALID_CONFIG, -EINVAL, "must be a string");
}

static void test_mtu(void **state)
{
	static const struct {
		const char *v;
		unsigned int want; /* 0: refused */
		int ret;
	} cases[] = {
		{ "576", 576, 0 },     { "1420", 1420, 0 },     { "65535", 65535, 0 },
		{ "575", 0, -ERANGE }, { "0", 0, -ERANGE },      { "-1400", 0, -ERANGE },
		{ "65536", 0, -ERANGE }, { "4294968716", 0, -ERANGE },
		{ "1400.0", 0, -EINVAL }, { "\"1400\"", 0, -EINVAL }, { "true", 0, -EINVAL },
		{ "null", 0, -EINVAL },
	};
	char buf[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cni_conf c;

		snprintf(buf, sizeof(buf),
			 "{\"cniVersion\": \"1.0.0\", \"name\": \"n\", \"type\": \"wgcni\", \"mtu\": %s}", cases[i].v);
		if (cases[i].want) {
			accepted(buf, &c);
			assert_int_equal(c.mtu, cases[i].want);
			cni_conf_free(&c);
		} else {
			refused(buf, CNI_ERR_INVALID_CONFIG, cases[i].ret,
				cases[i].ret == -ERANGE ? "outside 576..65535" : "an integer");
		}
	}
}

static void test_backend(void **state)
{
	static const struct {
		const char *name;
		enum wg_backend b;
	} good[] = {
		{ "auto", WG_BACKEND_AUTO },
		{ "kernel", WG_BACKEND_KERNEL },
		{ "userspace", WG_BACKEND_USERSPACE },
	};
	char buf[256];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct cni_conf c;

		snprintf(buf, sizeof(buf),
			 "{\"cniVersion\": \"1.0.0\", \"name\": \"n\", \"type\": \"wgcni\", \"backend\": \"%s\"}",
			 good[i].name);
		accepted(buf, &c);
		assert_int_equal(c.backend, good[i].b);
		assert_true(c.backend_set);
		cni_conf_free(&c);
	}
	refused("{\"cniVersion\": \"1.0.0\", \"name\": \"n\", \"type\": \"wgcni\", \"backend\": \"wireguard-go\"}",
		CNI_ERR_INVALID_CONFIG, -EINVAL, "`wireguard-go'");
	refused("{\"cniVersion\": \"1.0.0\", \"name\": \"n\", \"type\": \"wgcni\", \"backend\": \"Kernel\"}",
		CNI_ERR_INVALID_CONFIG, -EINVAL, NULL);
	refused("{\"cniVersion\": \"1.0.0\", \"name\": \"n\", \"type\": \"wgcni\", \"backend\": \"\"}",
		CNI_ERR_INVALID_CONFIG, -EINVAL, NULL);
	refused("{\"cniVersion\": \"1.0.0\", \"name\": \"n\", \"type\": \"wgcni\", \"backend\": 1}",
		CNI_ERR_INVALID_CONFIG, -EINVAL, "must be a string");
	refused("{\"cniVersion\": \"1.0.0\", \"name\": \"n\", \"type\": \"wgcni\","
		" \"userspaceImplementation\": \"\"}",
		CNI_ERR_INVALID_CONFIG, -EINVAL, NULL);
	refused("{\"cniVersion\": \"1.0.0\", \"name\": \"n\", \"type\": \"wgcni\","
		" \"userspaceImplementation\": [\"/bin/wg-go\"]}",
		CNI_ERR_INVALID_CONFIG, -EINVAL, "must be a string");
}

static void test_prev_result(void **state)
{
	struct cni_conf c;

	accepted("{\"cniVersion\": \"1.0.0\", \"name\": \"n\", \"type\": \"wgcni\","
		 " \"prevResult\": {\"cniVersion\": \"1.0.0\","
		 " \"interfaces\": [{\"name\": \"eth0\"}], \"ips\": [], \"routes\": null,"
		 " \"dns\": {}}}",
		 &c);
	assert_non_null(c.prev_result);
	assert_ptr_equal(c.prev_result, json_object_get(c.root, "prevResult"));
	cni_conf_free(&c);

	accepted("{\"cniVersion\": \"0.4.0\", \"name\": \"n\", \"type\": \"wgcni\", \"prevResult\": {}}", &c);
	assert_true(json_is_object(c.prev_result));
	cni_conf_free(&c);

	refused("{\"cniVersion\": \"1.0.0\", \"name\": \"n\", \"type\": \"wgcni\", \"prevResult\": []}",
		CNI_ERR_INVALID_CONFIG, -EINVAL, "`prevResult' must be an object");
	refused("{\"cniVersion\": \"1.0.0\", \"name\": \"n\", \"type\": \"wgcni\","
		" \"prevResult\": {\"interfaces\": {\"name\": \"eth0\"}}}",
		CNI_ERR_INVALID_CONFIG, -EINVAL, "`interfaces' must be an array");
	refused("{\"cniVersion\": \"1.0.0\", \"name\": \"n\", \"type\": \"wgcni\", \"prevResult\": {\"ips\": \"x\"}}",
		CNI_ERR_INVALID_CONFIG, -EINVAL, "`ips' must be an array");
	refused("{\"cniVersion\": \"1.0.0\", \"name\": \"n\", \"type\": \"wgcni\", \"prevResult\": {\"routes\": 1}}",
		CNI_ERR_INVALID_CONFIG, -EINVAL, "`routes' must be an array");
}

static void test_attachments(void **state)
{
	struct cni_conf c;

	accepted("{\"cniVersion\": \"1.1.0\", \"name\": \"n\", \"type\": \"wgcni\","
		 " \"cni.dev/valid-attachments\": [{\"containerID\": \"c1\", \"ifname\": \"eth0\"}]}",
		 &c);
	assert_ptr_equal(c.valid_attachments,
			 json_object_get(c.root, "cni.dev/valid-attachments"));
	cni_conf_free(&c);

	accepted("{\"cniVersion\": \"1.1.0\", \"name\": \"n\", \"type\": \"wgcni\", \"cni.dev/attachments\": []}",
		 &c);
	assert_ptr_equal(c.valid_attachments, json_object_get(c.root, "cni.dev/attachments"));
	cni_conf_free(&c);

	/* The spec's name wins over the older one, in either order. */
	accepted("{\"cniVersion\": \"1.1.0\", \"name\": \"n\", \"type\": \"wgcni\","
		 " \"cni.dev/attachments\": [], \"cni.dev/valid-attachments\": []}",
		 &c);
	assert_ptr_equal(c.valid_attachments,
			 json_object_get(c.root, "cni.dev/valid-attachments"));
	cni_conf_free(&c);
	accepted("{\"cniVersion\": \"1.1.0\", \"name\": \"n\", \"type\": \"wgcni\","
		 " \"cni.dev/valid-attachments\": [], \"cni.dev/attachments\": []}",
		 &c);
	assert_ptr_equal(c.valid_attachments,
			 json_object_get(c.root, "cni.dev/valid-attachments"));
	cni_conf_free(&c);

	refused("{\"cniVersion\": \"1.1.0\", \"name\": \"n\", \"type\": \"wgcni\", \"cni.dev/valid-attachments\": {}}",
		CNI_ERR_INVALID_CONFIG, -EINVAL, "must be an array");
	refused("{\"cniVersion\": \"1.1.0\", \"name\": \"n\", \"type\": \"wgcni\","
		" \"cni.dev/valid-attachments\": [{\"containerID\": \"c1\", \"ifname\": \"eth0\"},"
		" {\"containerID\": \"c2\"}]}",
		CNI_ERR_INVALID_CONFIG, -EINVAL, "[1]");
	refused("{\"cniVersion\": \"1.1.0\", \"name\": \"n\", \"type\": \"wgcni\","
		" \"cni.dev/attachments\": [{\"containerID\": 1, \"ifname\": \"eth0\"}]}",
		CNI_ERR_INVALID_CONFIG, -EINVAL, "[0]");
	refused("{\"cniVersion\": \"1.1.0\", \"name\": \"n\", \"type\": \"wgcni\", \"cni.dev/attachments\": [\"c1\"]}",
		CNI_ERR_INVALID_CONFIG, -EINVAL, NULL);
}

static void test_first_error_counts(void **state)
{
	struct cni_conf c;
	struct cni_err e;

	/* An earlier error is kept: cni_fail records only the first one. */
	memset(&e, 0, sizeof(e));
	cni_fail(&e, CNI_ERR_INVALID_ENV, -EINVAL, "earlier", NULL);
	assert_int_equal(cni_conf_parse(&c, "{", 1, &e), -EBADMSG);
	assert_int_equal(e.code, CNI_ERR_INVALID_ENV);
	assert_string_equal(e.msg, "earlier");
	assert_null(c.root);
}

static void test_free_and_peek(void **state)
{
	static const char s[] = "{\"cniVersion\": \"0.4.0\", \"bogus\": true}";
	const char *v;
	json_t *root;

	cni_conf_free(NULL);

	/* VERSION reads cniVersion from anything that decodes. */
	cni_conf_peek_version(s, strlen(s), &v, &root);
	assert_non_null(root);
	assert_string_equal(v, "0.4.0");
	json_decref(root);
	cni_conf_peek_version("{\"cniVersion\": 4}", strlen("{\"cniVersion\": 4}"), &v, &root);
	assert_null(v);
	json_decref(root);
	cni_conf_peek_version("not json", strlen("not json"), &v, &root);
	assert_null(v);
	assert_null(root);
	cni_conf_peek_version("[]", 2, &v, &root);
	assert_null(v);
	json_decref(root);
}

/* containerMesh: a JSON boolean, default false; anything else is code 7. */
static void test_container_mesh(void **state)
{
	static const char *const bad[] = { "1", "0", "\"true\"", "null", "[]", "{}" };
	char buf[256];
	struct cni_conf c;

	accepted("{\"cniVersion\": \"1.0.0\", \"name\": \"n\", \"type\": \"wgcni\","
		 " \"containerMesh\": true}", &c);
	assert_true(c.container_mesh);
	cni_conf_free(&c);
	accepted("{\"cniVersion\": \"1.0.0\", \"name\": \"n\", \"type\": \"wgcni\","
		 " \"containerMesh\": false}", &c);
	assert_false(c.container_mesh);
	cni_conf_free(&c);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(buf, sizeof(buf),
			 "{\"cniVersion\": \"1.0.0\", \"name\": \"n\", \"type\": \"wgcni\","
			 " \"containerMesh\": %s}", bad[i]);
		refused(buf, CNI_ERR_INVALID_CONFIG, -EINVAL, "`containerMesh' must be true or false");
	}
	refused("{\"cniVersion\": \"1.0.0\", \"name\": \"n\", \"type\": \"wgcni\","
		" \"containerMesh\": true, \"containerMesh\": false}", CNI_ERR_DECODE, -EBADMSG,
		NULL);
	/* The name is exact, as every field's. */
	refused("{\"cniVersion\": \"1.0.0\", \"name\": \"n\", \"type\": \"wgcni\","
		" \"containermesh\": true}", CNI_ERR_UNSUPPORTED_FIELD, -EINVAL, "`containermesh'");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_versions),
		cmocka_unit_test(test_unsupported_versions),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_length_is_honoured),
		cmocka_unit_test(test_all_fields),
		cmocka_unit_test(test_runtime_keys),
		cmocka_unit_test(test_unknown_fields),
		cmocka_unit_test(test_type_and_name),
		cmocka_unit_test(test_node_manager),
		cmocka_unit_test(test_mtu),
		cmocka_unit_test(test_backend),
		cmocka_unit_test(test_container_mesh),
		cmocka_unit_test(test_prev_result),
		cmocka_unit_test(test_attachments),
		cmocka_unit_test(test_first_error_counts),
		cmocka_unit_test(test_free_and_peek),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
