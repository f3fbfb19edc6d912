#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "ipnet.h"

static struct ipaddr addr(const char *s)
{
	struct ipaddr a;

	assert_int_equal(ipaddr_parse(s, &a), 0);
	return a;
}

static struct ipnet net(const char *s)
{
	struct ipnet n;

	assert_int_equal(ipnet_parse(s, &n, true), 0);
	return n;
}

static void assert_addr(const struct ipaddr *a, const char *want)
{
	char buf[IPNET_STRLEN];

	assert_string_equal(ipaddr_format(a, buf), want);
}

static void assert_net(const struct ipnet *n, const char *want)
{
	char buf[IPNET_STRLEN];

	assert_string_equal(ipnet_format(n, buf), want);
}

static void test_addr_parse_format(void **state)
{
	static const char *const good[] = {
		"0.0.0.0", "10.1.2.3", "255.255.255.255", "::", "::1", "fd00::1",
		"2001:db8::ff00:42:8329", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
	};
	static const char *const bad[] = {
		"", "10.1.2", "10.1.2.256", "10.1.2.3 ", " 10.1.2.3", "1.2.3.4/32",
		"fd00:::1", "fd00::1::2", "hello", "10.0.0.01x", "[fd00::1]", "fd00::g",
	};
	struct ipaddr a;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		a = addr(good[i]);
		assert_addr(&a, good[i]);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(ipaddr_parse(bad[i], &a), -EINVAL);
	assert_int_equal(ipaddr_parse(NULL, &a), -EINVAL);

	a = addr("10.1.2.3");
	assert_int_equal(a.family, AF_INET);
	assert_int_equal(ipaddr_bits(&a), 32);
	assert_int_equal(a.bytes[12], 10);
	assert_int_equal(a.bytes[15], 3);
	for (int i = 0; i < 12; i++)
		assert_int_equal(a.bytes[i], 0);
	a = addr("fd00::1");
	assert_int_equal(a.family, AF_INET6);
	assert_int_equal(ipaddr_bits(&a), 128);
	assert_int_equal(a.bytes[0], 0xfd);
	assert_int_equal(a.bytes[15], 1);
	/* Canonical output. */
	a = addr("FD00:0:0::0001");
	assert_addr(&a, "fd00::1");
}

static void test_net_parse(void **state)
{
	struct ipnet n;

	n = net("10.0.0.0/16");
	assert_net(&n, "10.0.0.0/16");
	assert_int_equal(n.prefixlen, 16);
	n = net("0.0.0.0/0");
	assert_net(&n, "0.0.0.0/0");
	n = net("10.1.2.3/32");
	assert_net(&n, "10.1.2.3/32");
	n = net("fd10:100::/48");
	assert_net(&n, "fd10:100::/48");
	n = net("::/0");
	assert_net(&n, "::/0");
	n = net("fd00::1/128");
	assert_net(&n, "fd00::1/128");

	/* strict refuses host bits, non-strict zeroes them, host keeps them */
	assert_int_equal(ipnet_parse("10.0.0.1/16", &n, true), -EINVAL);
	assert_int_equal(ipnet_parse("10.0.255.0/17", &n, true), -EINVAL);
	assert_int_equal(ipnet_parse("10.0.0.1/16", &n, false), 0);
	assert_net(&n, "10.0.0.0/16");
	assert_int_equal(ipnet_parse("fd00::1/64", &n, true), -EINVAL);
	assert_int_equal(ipnet_parse("fd00::8000:0:0:1/65", &n, false), 0);
	assert_net(&n, "fd00::8000:0:0:0/65");
	assert_int_equal(ipnet_parse_host("10.100.3.1/24", &n), 0);
	assert_net(&n, "10.100.3.1/24");
	assert_int_equal(ipnet_parse_host("fd00::1/64", &n), 0);
	assert_net(&n, "fd00::1/64");

	static const char *const bad[] = {
		"10.0.0.0", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/+8",
		"10.0.0.0/8x", "10.0.0.0/ 8", "10.0.0.0/1234", "/8", "fd00::/129",
		"fd00::/64/64", "10.0.0/8", "hello/8", "10.0.0.0/08", "10.0.0.0/00",
		"fd00::/064",
		"fd00:1111:2222:3333:4444:5555:6666:7777/128ffffffffffffffffffffffffffffff",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(ipnet_parse(bad[i], &n, false), -EINVAL);
		assert_int_equal(ipnet_parse_host(bad[i], &n), -EINVAL);
	}
	assert_int_equal(ipnet_parse(NULL, &n, false), -EINVAL);
}

static void test_cmp_add_offset(void **state)
{
	struct ipaddr a, b;
	uint64_t off;

	a = addr("10.0.0.1");
	b = addr("10.0.0.2");
	assert_true(ipaddr_cmp(&a, &b) < 0);
	assert_true(ipaddr_cmp(&b, &a) > 0);
	assert_false(ipaddr_equal(&a, &b));
	assert_int_equal(ipaddr_add(&a, 1), 0);
	assert_true(ipaddr_equal(&a, &b));
	/* family orders first */
	b = addr("::1");
	assert_int_not_equal(ipaddr_cmp(&a, &b), 0);
	assert_int_equal(ipaddr_offset(&a, &b, &off), -EINVAL);

	a = addr("10.0.0.255");
	assert_int_equal(ipaddr_add(&a, 1), 0);
	assert_addr(&a, "10.0.1.0");
	assert_int_equal(ipaddr_add(&a, 0x01000000), 0);
	assert_addr(&a, "11.0.1.0");
	a = addr("255.255.255.254");
	assert_int_equal(ipaddr_add(&a, 1), 0);
	assert_addr(&a, "255.255.255.255");
	assert_int_equal(ipaddr_add(&a, 1), -ERANGE);
	assert_addr(&a, "255.255.255.255");
	a = addr("0.0.0.0");
	assert_int_equal(ipaddr_add(&a, UINT64_MAX), -ERANGE);
	assert_int_equal(ipaddr_add(&a, UINT32_MAX), 0);
	assert_addr(&a, "255.255.255.255");

	/* carries across the 64-bit halves */
	a = addr("fd00::ffff:ffff:ffff:ffff");
	assert_int_equal(ipaddr_add(&a, 1), 0);
	assert_addr(&a, "fd00:0:0:1::");
	a = addr("fd00::");
	assert_int_equal(ipaddr_add(&a, UINT64_MAX), 0);
	assert_addr(&a, "fd00::ffff:ffff:ffff:ffff");
	a = addr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe");
	assert_int_equal(ipaddr_add(&a, 1), 0);
	assert_int_equal(ipaddr_add(&a, 1), -ERANGE);
	assert_addr(&a, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");

	a = addr("10.0.0.0");
	b = addr("10.0.3.7");
	assert_int_equal(ipaddr_offset(&a, &b, &off), 0);
	assert_int_equal(off, 3 * 256 + 7);
	assert_int_equal(ipaddr_offset(&b, &a, &off), -ERANGE);
	assert_int_equal(ipaddr_offset(&a, &a, &off), 0);
	assert_int_equal(off, 0);
	a = addr("fd00::ffff:ffff:ffff:fff0");
	b = addr("fd00:0:0:1::5");
	assert_int_equal(ipaddr_offset(&a, &b, &off), 0);
	assert_int_equal(off, 0x15);
	a = addr("fd00::");
	b = addr("fd00::ffff:ffff:ffff:ffff");
	assert_int_equal(ipaddr_offset(&a, &b, &off), 0);
	assert_true(off == UINT64_MAX);
	b = addr("fd00:0:0:1::");
	assert_int_equal(ipaddr_offset(&a, &b, &off), -ERANGE);
}

static void test_contains_overlaps(void **state)
{
	struct ipnet n16 = net("10.100.0.0/16"), n24 = net("10.100.3.0/24"),
		     other = net("10.101.0.0/16"), n6 = net("fd10:100::/48"),
		     n6c = net("fd10:100:0:3::/64"), all = net("0.0.0.0/0");
	struct ipaddr a;

	a = addr("10.100.3.7");
	assert_true(ipnet_contains(&n16, &a));
	assert_true(ipnet_contains(&n24, &a));
	assert_false(ipnet_contains(&other, &a));
	assert_true(ipnet_contains(&all, &a));
	a = addr("10.100.4.0");
	assert_false(ipnet_contains(&n24, &a));
	a = addr("10.100.2.255");
	assert_false(ipnet_contains(&n24, &a));
	/* IPv4 address never inside an IPv6 prefix, even ::/0 */
	struct ipnet v6all = net("::/0");
	a = addr("10.100.3.7");
	assert_false(ipnet_contains(&v6all, &a));
	a = addr("fd10:100:0:3::9");
	assert_true(ipnet_contains(&n6, &a));
	assert_true(ipnet_contains(&n6c, &a));
	assert_false(ipnet_contains(&n16, &a));
	/* odd prefix lengths */
	struct ipnet n17 = net("10.100.128.0/17");
	a = addr("10.100.127.255");
	assert_false(ipnet_contains(&n17, &a));
	a = addr("10.100.128.0");
	assert_true(ipnet_contains(&n17, &a));

	assert_true(ipnet_contains_net(&n16, &n24));
	assert_false(ipnet_contains_net(&n24, &n16));
	assert_true(ipnet_contains_net(&n16, &n16));
	assert_false(ipnet_contains_net(&n16, &other));
	assert_true(ipnet_contains_net(&n6, &n6c));
	assert_false(ipnet_contains_net(&n6, &n16));

	assert_true(ipnet_overlaps(&n16, &n24));
	assert_true(ipnet_overlaps(&n24, &n16));
	assert_false(ipnet_overlaps(&n16, &other));
	assert_true(ipnet_overlaps(&all, &other));
	assert_false(ipnet_overlaps(&n6, &n16));
	struct ipnet a15 = net("10.100.0.0/15");
	assert_true(ipnet_overlaps(&a15, &other));

	/* a hand-built prefix longer than its family reads no further than
	 * the 16 bytes (ASan would say) and acts as a full-length prefix */
	struct ipnet bogus = n24;
	bogus.prefixlen = 200;
	a = addr("10.100.3.0");
	assert_true(ipnet_contains(&bogus, &a));
	ipnet_mask(&bogus);
	assert_addr(&bogus.addr, "10.100.3.0");
	bogus.prefixlen = UINT32_MAX;
	assert_true(ipnet_contains(&bogus, &a));
	ipnet_mask(&bogus);
}

static void test_mask(void **state)
{
	struct ipnet n;

	assert_int_equal(ipnet_parse_host("10.100.3.77/23", &n), 0);
	ipnet_mask(&n);
	assert_net(&n, "10.100.2.0/23");
	assert_int_equal(ipnet_parse_host("fd00:1:2:3:4:5:6:7/63", &n), 0);
	ipnet_mask(&n);
	assert_net(&n, "fd00:1:2:2::/63");
	assert_int_equal(ipnet_parse_host("255.255.255.255/0", &n), 0);
	ipnet_mask(&n);
	assert_net(&n, "0.0.0.0/0");
	assert_int_equal(ipnet_parse_host("255.255.255.255/32", &n), 0);
	ipnet_mask(&n);
	assert_net(&n, "255.255.255.255/32");
}

static void test_children(void **state)
{
	struct ipnet p = net("10.100.0.0/16"), c;
	uint64_t idx;

	assert_int_equal(ipnet_child_count(&p, 24), 256);
	assert_int_equal(ipnet_child_count(&p, 16), 1);
	assert_int_equal(ipnet_child_count(&p, 32), 65536);
	assert_int_equal(ipnet_child_count(&p, 15), 0);
	assert_int_equal(ipnet_child_count(&p, 33), 0);
	assert_int_equal(ipnet_child(&p, 24, 0, &c), 0);
	assert_net(&c, "10.100.0.0/24");
	assert_int_equal(ipnet_child(&p, 24, 3, &c), 0);
	assert_net(&c, "10.100.3.0/24");
	assert_int_equal(ipnet_child(&p, 24, 255, &c), 0);
	assert_net(&c, "10.100.255.0/24");
	assert_int_equal(ipnet_child(&p, 24, 256, &c), -ERANGE);
	assert_int_equal(ipnet_child(&p, 15, 0, &c), -EINVAL);
	assert_int_equal(ipnet_child(&p, 33, 0, &c), -EINVAL);
	assert_int_equal(ipnet_child(&p, 32, 65535, &c), 0);
	assert_net(&c, "10.100.255.255/32");
	assert_int_equal(ipnet_child(&p, 26, 5, &c), 0);
	assert_net(&c, "10.100.1.64/26");

	for (uint64_t i = 0; i < 256; i += 17) {
		assert_int_equal(ipnet_child(&p, 24, i, &c), 0);
		assert_int_equal(ipnet_child_index(&p, &c, &idx), 0);
		assert_int_equal(idx, i);
	}
	c = net("10.100.7.0/24");
	assert_int_equal(ipnet_child_index(&p, &c, &idx), 0);
	assert_int_equal(idx, 7);
	c = net("10.101.7.0/24");
	assert_int_equal(ipnet_child_index(&p, &c, &idx), -EINVAL);
	c = net("10.0.0.0/8");
	assert_int_equal(ipnet_child_index(&p, &c, &idx), -EINVAL);
	assert_int_equal(ipnet_parse_host("10.100.7.1/24", &c), 0);
	assert_int_equal(ipnet_child_index(&p, &c, &idx), -EINVAL);
	c = net("fd00::/24");
	assert_int_equal(ipnet_child_index(&p, &c, &idx), -EINVAL);

	/* IPv6: beyond 64 bits of children */
	p = net("fd10:100::/48");
	assert_int_equal(ipnet_child_count(&p, 64), 65536);
	assert_true(ipnet_child_count(&p, 112) == UINT64_MAX);
	assert_true(ipnet_child_count(&p, 128) == UINT64_MAX);
	assert_int_equal(ipnet_child(&p, 64, 3, &c), 0);
	assert_net(&c, "fd10:100:0:3::/64");
	assert_int_equal(ipnet_child(&p, 64, 0xffff, &c), 0);
	assert_net(&c, "fd10:100:0:ffff::/64");
	assert_int_equal(ipnet_child(&p, 64, 0x10000, &c), -ERANGE);
	assert_int_equal(ipnet_child(&p, 128, 0x10001, &c), 0);
	assert_net(&c, "fd10:100::1:1/128");
	assert_int_equal(ipnet_child(&p, 96, (uint64_t)1 << 40, &c), 0);
	assert_net(&c, "fd10:100:0:100::/96");
	assert_int_equal(ipnet_child_index(&p, &c, &idx), 0);
	assert_true(idx == (uint64_t)1 << 40);
	c = net("fd10:100:0:ffff:ffff:ffff:ffff:ffff/128");
	assert_int_equal(ipnet_child_index(&p, &c, &idx), -ERANGE);
	c = net("fd10:100::ffff:ffff:ffff:ffff/128");
	assert_int_equal(ipnet_child_index(&p, &c, &idx), 0);
	assert_true(idx == UINT64_MAX);

	/* a child that is the parent itself */
	p = net("fd00::/120");
	assert_int_equal(ipnet_child(&p, 120, 0, &c), 0);
	assert_net(&c, "fd00::/120");
	assert_int_equal(ipnet_child(&p, 120, 1, &c), -ERANGE);
	p = net("::/0");
	assert_int_equal(ipnet_child(&p, 0, 0, &c), 0);
	assert_net(&c, "::/0");
	assert_int_equal(ipnet_child(&p, 1, 1, &c), 0);
	assert_net(&c, "8000::/1");

	/* a parent given with host bits still yields aligned children */
	assert_int_equal(ipnet_parse_host("10.100.3.1/16", &p), 0);
	assert_int_equal(ipnet_child(&p, 24, 2, &c), 0);
	assert_net(&c, "10.100.2.0/24");
}

static void test_first_host(void **state)
{
	struct ipnet n;
	struct ipaddr a;

	n = net("10.100.3.0/24");
	assert_int_equal(ipnet_first_host(&n, &a), 0);
	assert_addr(&a, "10.100.3.1");
	n = net("fd10:100:0:3::/64");
	assert_int_equal(ipnet_first_host(&n, &a), 0);
	assert_addr(&a, "fd10:100:0:3::1");
	n = net("10.0.0.0/31");
	assert_int_equal(ipnet_first_host(&n, &a), 0);
	assert_addr(&a, "10.0.0.1");
	n = net("10.0.0.4/32");
	assert_int_equal(ipnet_first_host(&n, &a), -ERANGE);
	n = net("fd00::4/128");
	assert_int_equal(ipnet_first_host(&n, &a), -ERANGE);
	assert_int_equal(ipnet_parse_host("10.100.3.9/24", &n), 0);
	assert_int_equal(ipnet_first_host(&n, &a), 0);
	assert_addr(&a, "10.100.3.1");
}

static void test_endpoint_good(void **state)
{
	static const struct {
		const char *in, *host;
		uint16_t port;
	} cases[] = {
		{ "192.0.2.11:51820", "192.0.2.11", 51820 },
		{ "[fd00::1]:51820", "fd00::1", 51820 },
		{ "[::]:1", "::", 1 },
		{ "node-1.example.org:65535", "node-1.example.org", 65535 },
		{ "localhost:8080", "localhost", 8080 },
		{ "a:00080", "a", 80 },
		{ "node1.k8s:51820", "node1.k8s", 51820 },
		{ "10.0.0.1a:1", "10.0.0.1a", 1 },
		{ "0.0.0.0:1", "0.0.0.0", 1 },
	};
	struct endpoint ep;
	char err[128];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		assert_int_equal(endpoint_parse(cases[i].in, &ep, err, sizeof(err)), 0);
		assert_string_equal(ep.host, cases[i].host);
		assert_int_equal(ep.port, cases[i].port);
		assert_string_equal(err, "");
	}
}

static void test_endpoint_bad(void **state)
{
	static const struct {
		const char *in, *err;
	} cases[] = {
		{ "x", "endpoint \"x\" has no port" },
		{ "x:", "endpoint \"x:\" has no port" },
		{ "[fd00::1]", "endpoint \"[fd00::1]\" has no port" },
		{ "[fd00::1]:", "endpoint \"[fd00::1]:\" has no port" },
		{ "1.2.3.4:0", "endpoint \"1.2.3.4:0\": port 0 out of range 1-65535" },
		{ "1.2.3.4:65536", "endpoint \"1.2.3.4:65536\": port 65536 out of range 1-65535" },
		{ "1.2.3.4:99999999999999999999", "endpoint \"1.2.3.4:99999999999999999999\": port 99999999999999999999 out of range 1-65535" },
		{ "1.2.3.4:-1", "endpoint \"1.2.3.4:-1\": port \"-1\" is not a number" },
		{ "1.2.3.4:51820x", "endpoint \"1.2.3.4:51820x\": port \"51820x\" is not a number" },
		{ "1.2.3.4: 5", "endpoint \"1.2.3.4: 5\": port \" 5\" is not a number" },
		{ "fd00::1:51820",
		  "endpoint \"fd00::1:51820\": an IPv6 address needs brackets, as in [fd00::1]:51820" },
		{ "[fd00::1:51820", "endpoint \"[fd00::1:51820\" has no closing ']'" },
		{ "[10.0.0.1]:5", "endpoint \"[10.0.0.1]:5\": \"10.0.0.1\" is not an IPv6 address" },
		{ "[fd00::1]x:5", "endpoint \"[fd00::1]x:5\" has junk after ']'" },
		{ ":5", "endpoint \":5\": host \"\" is not an IPv4 address or host name" },
		{ "ho_st:5", "endpoint \"ho_st:5\": host \"ho_st\" is not an IPv4 address or host name" },
		{ "a..b:5", "endpoint \"a..b:5\": host \"a..b\" is not an IPv4 address or host name" },
		{ "-a:5", "endpoint \"-a:5\": host \"-a\" is not an IPv4 address or host name" },
		{ "a b:5", "endpoint \"a b:5\": host \"a b\" is not an IPv4 address or host name" },
		{ "10.0.0.256:5", "endpoint \"10.0.0.256:5\": host \"10.0.0.256\" is not an IPv4 address or host name" },
		{ "10.0.0:5", "endpoint \"10.0.0:5\": host \"10.0.0\" is not an IPv4 address or host name" },
		{ "12345:5", "endpoint \"12345:5\": host \"12345\" is not an IPv4 address or host name" },
		{ "", "endpoint is empty" },
	};
	struct endpoint ep = { .host = "untouched", .port = 7 };
	char err[160];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		assert_int_equal(endpoint_parse(cases[i].in, &ep, err, sizeof(err)), -EINVAL);
		assert_string_equal(err, cases[i].err);
		assert_string_equal(ep.host, "untouched");
		assert_int_equal(ep.port, 7);
	}
	assert_int_equal(endpoint_parse(NULL, &ep, err, sizeof(err)), -EINVAL);
	/* err is optional, and a short buffer is truncated, not overrun */
	assert_int_equal(endpoint_parse("x", &ep, NULL, 0), -EINVAL);
	assert_int_equal(endpoint_parse("x", &ep, err, 5), -EINVAL);
	assert_string_equal(err, "endp");

	char longhost[400];
	memset(longhost, 'a', sizeof(longhost));
	strcpy(longhost + 300, ":5");
	assert_int_equal(endpoint_parse(longhost, &ep, err, sizeof(err)), -EINVAL);
	/* 254-character host name: one over the limit */
	memset(longhost, 'a', sizeof(longhost));
	for (int i = 50; i < 254; i += 50)
		longhost[i] = '.';
	strcpy(longhost + 254, ":5");
	assert_int_equal(endpoint_parse(longhost, &ep, err, sizeof(err)), -EINVAL);
	longhost[253] = ':';
	strcpy(longhost + 253, ":5");
	assert_int_equal(endpoint_parse(longhost, &ep, err, sizeof(err)), 0);
	assert_int_equal(strlen(ep.host), 253);
	/* a 64-character label is too long */
	memset(longhost, 'b', 64);
	strcpy(longhost + 64, ":5");
	assert_int_equal(endpoint_parse(longhost, &ep, err, sizeof(err)), -EINVAL);
	strcpy(longhost + 63, ":5");
	assert_int_equal(endpoint_parse(longhost, &ep, err, sizeof(err)), 0);
}

static void test_sockaddr(void **state)
{
	struct sockaddr_storage ss;
	struct endpoint ep;
	socklen_t len = 0;
	char buf[IPNET_STRLEN];

	assert_int_equal(endpoint_parse("192.0.2.11:51820", &ep, NULL, 0), 0);
	assert_int_equal(endpoint_to_sockaddr(&ep, &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(len, sizeof(struct sockaddr_in));
	assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 51820);
	assert_string_equal(sockaddr_format((struct sockaddr *)&ss, buf), "192.0.2.11:51820");

	assert_int_equal(endpoint_parse("[fd00::1]:51820", &ep, NULL, 0), 0);
	assert_int_equal(endpoint_to_sockaddr(&ep, &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(len, sizeof(struct sockaddr_in6));
	assert_string_equal(sockaddr_format((struct sockaddr *)&ss, buf), "[fd00::1]:51820");

	/* /etc/hosts knows localhost; no DNS involved */
	assert_int_equal(endpoint_parse("localhost:1", &ep, NULL, 0), 0);
	assert_int_equal(endpoint_to_sockaddr(&ep, &ss, &len), 0);
	assert_true(ss.ss_family == AF_INET || ss.ss_family == AF_INET6);
	assert_true(strstr(sockaddr_format((struct sockaddr *)&ss, buf), ":1") != NULL);

	ep.port = 0;
	assert_int_equal(endpoint_to_sockaddr(&ep, &ss, &len), -EINVAL);

	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNIX;
	assert_string_equal(sockaddr_format((struct sockaddr *)&ss, buf), "unknown");
	assert_string_equal(sockaddr_format(NULL, buf), "unknown");
}

/*
 * Parser properties over random strings from the characters that matter
 * (the libFuzzer harness's checks, run deterministically): whatever parses
 * formats back to something that parses to the same value, and every
 * refusal says why.
 */
static uint64_t prng = 0x2545f4914f6cdd1dULL;

static unsigned int next_rand(void)
{
	prng ^= prng << 13;
	prng ^= prng >> 7;
	prng ^= prng << 17;
	return (unsigned int)(prng >> 11);
}

static void test_parse_properties(void **state)
{
	static const char *const tokens[] = {
		"0", "1", "10", "255", "256", "07", "fd00", "FFFF", "a", "b-c", "::", ":",
		".", ".", ":", "/", "24", "64", "128", "33", "[", "]", "51820", "65536",
		"-", " ", "x",
	};
	char s[80], buf[IPNET_STRLEN], again[300], err[256];
	unsigned int accepted = 0;

	for (int iter = 0; iter < 100000; iter++) {
		size_t n_tok = next_rand() % 12, len = 0;
		struct ipnet n, n2;
		struct ipaddr a, a2;
		struct endpoint ep, ep2;

		s[0] = '\0';
		for (size_t i = 0; i < n_tok; i++) {
			const char *t = tokens[next_rand() % (sizeof(tokens) / sizeof(tokens[0]))];

			if (len + strlen(t) >= sizeof(s))
				break;
			strcpy(s + len, t);
			len += strlen(t);
		}
		if (ipaddr_parse(s, &a) == 0) {
			assert_int_equal(ipaddr_parse(ipaddr_format(&a, buf), &a2), 0);
			assert_true(ipaddr_equal(&a, &a2));
			accepted++;
		}
		if (ipnet_parse(s, &n, false) == 0) {
			assert_int_equal(ipnet_parse(ipnet_format(&n, buf), &n2, true), 0);
			assert_true(ipaddr_equal(&n.addr, &n2.addr));
			assert_int_equal(n.prefixlen, n2.prefixlen);
			accepted++;
		}
		err[0] = '\0';
		if (endpoint_parse(s, &ep, err, sizeof(err)) == 0) {
			snprintf(again, sizeof(again), strchr(ep.host, ':') ? "[%s]:%u" : "%s:%u",
				 ep.host, ep.port);
			assert_int_equal(endpoint_parse(again, &ep2, err, sizeof(err)), 0);
			assert_string_equal(ep.host, ep2.host);
			assert_int_equal(ep.port, ep2.port);
			assert_true(ep.port >= 1);
			accepted++;
		} else
			assert_true(strncmp(err, "endpoint ", 9) == 0);
	}
	/* the alphabet does reach the accepting paths */
	printf("parse properties: %u accepted\n", accepted);
	assert_true(accepted > 1000);
}

static void test_set_equal(void **state)
{
	struct ipnet a[3] = { net("10.0.0.0/24"), net("fd00::/64"), net("10.0.1.0/24") };
	struct ipnet b[3] = { net("10.0.1.0/24"), net("10.0.0.0/24"), net("fd00::/64") };
	struct ipnet c[3] = { net("10.0.1.0/24"), net("10.0.0.0/25"), net("fd00::/64") };
	struct ipnet d[3] = { net("10.0.0.0/24"), net("10.0.0.0/24"), net("fd00::/64") };

	assert_true(ipnet_set_equal(a, 3, b, 3));
	assert_true(ipnet_set_equal(a, 0, b, 0));
	assert_false(ipnet_set_equal(a, 3, b, 2));
	assert_false(ipnet_set_equal(a, 3, c, 3)); /* another prefix length */
	assert_false(ipnet_set_equal(a, 3, d, 3)); /* a repeat is not the missing one */
	assert_false(ipnet_set_equal(d, 3, a, 3));
	assert_true(ipnet_set_contains(a, 3, &b[0]));
	assert_false(ipnet_set_contains(a, 3, &c[1]));
	assert_false(ipnet_set_contains(a, 0, &a[0]));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addr_parse_format),
		cmocka_unit_test(test_net_parse),
		cmocka_unit_test(test_cmp_add_offset),
		cmocka_unit_test(test_contains_overlaps),
		cmocka_unit_test(test_mask),
		cmocka_unit_test(test_children),
		cmocka_unit_test(test_first_host),
		cmocka_unit_test(test_endpoint_good),
		cmocka_unit_test(test_endpoint_bad),
		cmocka_unit_test(test_sockaddr),
		cmocka_unit_test(test_parse_properties),
		cmocka_unit_test(test_set_equal),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
