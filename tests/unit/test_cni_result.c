/*
 * The CNI plugin's ADD result (cni/result.c) in each supported cniVersion:
 * ips[].version only before 1.0.0, interfaces[].mtu only in 1.1.0, the zero
 * MAC, the gateway on its own family, one default route per family, and a
 * chained prevResult kept (not modified) with our entries appended at the
 * right interface index.
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
#include "ipnet.h"

static const struct cni_env env = {
	.command = "ADD",
	.containerid = "c1",
	.netns = "/var/run/netns/c1",
	.ifname = "eth0",
};

static void conf_of(const char *s, struct cni_conf *c)
{
	struct cni_err e = { 0 };

	assert_int_equal(cni_conf_parse(c, s, strlen(s), &e), 0);
}

static json_t *build(const struct cni_conf *c, unsigned int mtu, bool v4, bool v6,
		     const char *gateway)
{
	struct ipnet addrs[2];
	struct ipaddr gw;
	struct cni_err e = { 0 };
	json_t *res = NULL;
	size_t n = 0;

	if (v4)
		assert_int_equal(ipnet_parse_host("10.100.3.7/32", &addrs[n++]), 0);
	if (v6)
		assert_int_equal(ipnet_parse_host("fd00:100:3::7/128", &addrs[n++]), 0);
	if (gateway)
		assert_int_equal(ipaddr_parse(gateway, &gw), 0);
	assert_int_equal(cni_result_build(c, &env, mtu, addrs, n, gateway ? &gw : NULL, &res,
					  &e),
			 0);
	assert_int_equal(e.code, 0);
	assert_non_null(res);
	return res;
}

static const char *str(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	assert_true(json_is_string(v));
	return json_string_value(v);
}

static json_t *arr(json_t *o, const char *key, size_t want)
{
	json_t *a = json_object_get(o, key);

	assert_true(json_is_array(a));
	assert_int_equal(json_array_size(a), want);
	return a;
}

static void test_each_version(void **state)
{
	static const struct {
		const char *name;
		bool ip_version, mtu;
	} versions[] = {
		{ "0.3.0", true, false }, { "0.3.1", true, false }, { "0.4.0", true, false },
		{ "1.0.0", false, false }, { "1.1.0", false, true },
	};
	char buf[128];

	for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
		struct cni_conf c;
		json_t *res, *iface, *ip4, *ip6, *routes;

		snprintf(buf, sizeof(buf), "{\"cniVersion\": \"%s\", \"name\": \"n\", \"type\": \"wgcni\"}",
			 versions[i].name);
		conf_of(buf, &c);
		res = build(&c, 1380, true, true, "10.100.3.1");
		assert_string_equal(str(res, "cniVersion"), versions[i].name);

		iface = json_array_get(arr(res, "interfaces", 1), 0);
		assert_string_equal(str(iface, "name"), "eth0");
		assert_string_equal(str(iface, "mac"), "00:00:00:00:00:00");
		assert_string_equal(str(iface, "sandbox"), "/var/run/netns/c1");
		if (versions[i].mtu)
			assert_int_equal(json_integer_value(json_object_get(iface, "mtu")), 1380);
		else
			assert_null(json_object_get(iface, "mtu"));

		ip4 = json_array_get(arr(res, "ips", 2), 0);
		ip6 = json_array_get(arr(res, "ips", 2), 1);
		assert_string_equal(str(ip4, "address"), "10.100.3.7/32");
		assert_string_equal(str(ip6, "address"), "fd00:100:3::7/128");
		assert_int_equal(json_integer_value(json_object_get(ip4, "interface")), 0);
		assert_int_equal(json_integer_value(json_object_get(ip6, "interface")), 0);
		if (versions[i].ip_version) {
			assert_string_equal(str(ip4, "version"), "4");
			assert_string_equal(str(ip6, "version"), "6");
		} else {
			assert_null(json_object_get(ip4, "version"));
			assert_null(json_object_get(ip6, "version"));
		}
		/* The gateway goes only with the address of its family. */
		assert_string_equal(str(ip4, "gateway"), "10.100.3.1");
		assert_null(json_object_get(ip6, "gateway"));

		routes = arr(res, "routes", 2);
		assert_string_equal(str(json_array_get(routes, 0), "dst"), "0.0.0.0/0");
		assert_string_equal(str(json_array_get(routes, 1), "dst"), "::/0");
		assert_null(json_object_get(res, "dns"));
		json_decref(res);
		cni_conf_free(&c);
	}
}

static void test_single_family(void **state)
{
	struct cni_conf c;
	json_t *res, *ip;

	conf_of("{\"cniVersion\": \"1.0.0\", \"name\": \"n\", \"type\": \"wgcni\"}", &c);
	res = build(&c, 1420, true, false, NULL);
	ip = json_array_get(arr(res, "ips", 1), 0);
	assert_string_equal(str(ip, "address"), "10.100.3.7/32");
	assert_null(json_object_get(ip, "gateway"));
	assert_string_equal(str(json_array_get(arr(res, "routes", 1), 0), "dst"), "0.0.0.0/0");
	json_decref(res);

	res = build(&c, 1420, false, true, "fd00:100:3::1");
	ip = json_array_get(arr(res, "ips", 1), 0);
	assert_string_equal(str(ip, "address"), "fd00:100:3::7/128");
	assert_string_equal(str(ip, "gateway"), "fd00:100:3::1");
	assert_string_equal(str(json_array_get(arr(res, "routes", 1), 0), "dst"), "::/0");
	json_decref(res);

	/* No address: the interface alone, and no route. */
	res = build(&c, 1420, false, false, NULL);
	arr(res, "interfaces", 1);
	arr(res, "ips", 0);
	arr(res, "routes", 0);
	json_decref(res);
	cni_conf_free(&c);
}

static void test_dns_from_conf(void **state)
{
	struct cni_conf c;
	json_t *res, *dns;

	conf_of("{\"cniVersion\": \"1.1.0\", \"name\": \"n\", \"type\": \"wgcni\","
		" \"dns\": {\"nameservers\": [\"10.96.0.10\"], \"search\": [\"svc\"]}}",
		&c);
	res = build(&c, 1420, true, true, NULL);
	dns = json_object_get(res, "dns");
	assert_true(json_is_object(dns));
	assert_true(json_equal(dns, c.dns));
	/* A copy: the result can be changed without changing the configuration. */
	assert_ptr_not_equal(dns, c.dns);
	json_decref(res);
	cni_conf_free(&c);
}

static void test_prev_result(void **state)
{
	static const char s[] =
		"{\"cniVersion\": \"1.1.0\", \"name\": \"n\", \"type\": \"wgcni\","
		" \"dns\": {\"nameservers\": [\"10.96.0.10\"]},"
		" \"prevResult\": {\"cniVersion\": \"1.1.0\","
		"  \"interfaces\": [{\"name\": \"veth0\", \"mac\": \"02:00:00:00:00:01\"},"
		"                  {\"name\": \"eth1\", \"sandbox\": \"/var/run/netns/c1\"}],"
		"  \"ips\": [{\"address\": \"192.168.1.2/24\", \"interface\": 1}],"
		"  \"routes\": [{\"dst\": \"192.168.0.0/16\"}],"
		"  \"dns\": {\"nameservers\": [\"192.168.0.53\"]},"
		"  \"extra\": \"kept\"}}";
	struct cni_conf c;
	json_t *res, *ifaces, *ips, *routes, *before;

	conf_of(s, &c);
	before = json_deep_copy(c.prev_result);
	assert_non_null(before);
	res = build(&c, 1400, true, true, "10.100.3.1");

	ifaces = arr(res, "interfaces", 3);
	assert_string_equal(str(json_array_get(ifaces, 0), "name"), "veth0");
	assert_string_equal(str(json_array_get(ifaces, 1), "name"), "eth1");
	assert_string_equal(str(json_array_get(ifaces, 2), "name"), "eth0");
	assert_string_equal(str(json_array_get(ifaces, 2), "mac"), "00:00:00:00:00:00");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(ifaces, 2), "mtu")),
			 1400);

	ips = arr(res, "ips", 3);
	assert_string_equal(str(json_array_get(ips, 0), "address"), "192.168.1.2/24");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(ips, 0), "interface")),
			 1);
	/* Ours point at our interface, the third. */
	assert_string_equal(str(json_array_get(ips, 1), "address"), "10.100.3.7/32");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(ips, 1), "interface")),
			 2);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(ips, 2), "interface")),
			 2);

	routes = arr(res, "routes", 3);
	assert_string_equal(str(json_array_get(routes, 0), "dst"), "192.168.0.0/16");
	assert_string_equal(str(json_array_get(routes, 1), "dst"), "0.0.0.0/0");
	assert_string_equal(str(json_array_get(routes, 2), "dst"), "::/0");

	/* The previous plugin's DNS and other keys win over ours and are kept. */
	assert_string_equal(json_string_value(json_array_get(
				    json_object_get(json_object_get(res, "dns"), "nameservers"), 0)),
			    "192.168.0.53");
	assert_string_equal(str(res, "extra"), "kept");
	/* The configuration's prevResult itself is untouched. */
	assert_true(json_equal(before, c.prev_result));
	json_decref(before);
	json_decref(res);
	cni_conf_free(&c);
}

static void test_prev_result_version_converted(void **state)
{
	struct cni_conf c;
	json_t *res, *ip;

	/* The result is in the configuration's version, whatever prevResult says. */
	conf_of("{\"cniVersion\": \"0.4.0\", \"name\": \"n\", \"type\": \"wgcni\","
		" \"prevResult\": {\"cniVersion\": \"0.3.1\", \"interfaces\": null}}",
		&c);
	res = build(&c, 1420, false, true, NULL);
	assert_string_equal(str(res, "cniVersion"), "0.4.0");
	arr(res, "interfaces", 1);
	ip = json_array_get(arr(res, "ips", 1), 0);
	assert_string_equal(str(ip, "version"), "6");
	assert_int_equal(json_integer_value(json_object_get(ip, "interface")), 0);
	assert_null(json_object_get(json_array_get(arr(res, "interfaces", 1), 0), "mtu"));
	json_decref(res);
	cni_conf_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_each_version),
		cmocka_unit_test(test_single_family),
		cmocka_unit_test(test_dns_from_conf),
		cmocka_unit_test(test_prev_result),
		cmocka_unit_test(test_prev_result_version_converted),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
