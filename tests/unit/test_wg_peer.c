/*
 * wg_peer_set_endpoint: one parse, resolve and copy for every caller (the
 * userspace backend's get parser, the CNI plugin's node peer, the node
 * manager's peers). No network: numeric hosts resolve without a lookup and
 * "localhost" comes from /etc/hosts.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "wg.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

static void test_endpoint_v4_v6(void **state)
{
	struct wg_peer p;
	char err[128];
	struct in6_addr want6;

	memset(&p, 0, sizeof(p));
	p.flags = WGPEER_HAS_KEEPALIVE;
	assert_int_equal(wg_peer_set_endpoint(&p, "192.0.2.7:51820", err, sizeof(err)), 0);
	assert_int_equal(p.flags, WGPEER_HAS_KEEPALIVE | WGPEER_HAS_ENDPOINT);
	assert_int_equal(p.endpoint.addr4.sin_family, AF_INET);
	assert_int_equal(ntohs(p.endpoint.addr4.sin_port), 51820);
	assert_int_equal(ntohl(p.endpoint.addr4.sin_addr.s_addr), 0xc0000207u);

	/* A v6 endpoint replaces a v4 one whole: no bytes of the old remain. */
	memset(&p.endpoint, 0xee, sizeof(p.endpoint));
	assert_int_equal(wg_peer_set_endpoint(&p, "[fd00::1]:1", err, sizeof(err)), 0);
	assert_int_equal(p.endpoint.addr6.sin6_family, AF_INET6);
	assert_int_equal(ntohs(p.endpoint.addr6.sin6_port), 1);
	assert_int_equal(inet_pton(AF_INET6, "fd00::1", &want6), 1);
	assert_memory_equal(&p.endpoint.addr6.sin6_addr, &want6, sizeof(want6));
	assert_int_equal(p.endpoint.addr6.sin6_scope_id, 0);
	assert_int_equal(p.endpoint.addr6.sin6_flowinfo, 0);

	assert_int_equal(wg_peer_set_endpoint(&p, "localhost:7", NULL, 0), 0);
	assert_true(p.endpoint.addr.sa_family == AF_INET ||
		    p.endpoint.addr.sa_family == AF_INET6);
}

static void test_endpoint_bad(void **state)
{
	static const char *const bad[] = {
		"", "x", "1.2.3.4:0", "1.2.3.4:65536", "fd00::1:5", "[10.0.0.1]:5", "a b:5",
	};
	struct wg_peer p, before;
	char err[128];

	memset(&p, 0, sizeof(p));
	assert_int_equal(wg_peer_set_endpoint(&p, "192.0.2.7:51820", NULL, 0), 0);
	before = p;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(wg_peer_set_endpoint(&p, bad[i], err, sizeof(err)), -EINVAL);
		/* endpoint_parse's reason, quoting the input */
		assert_true(strncmp(err, "endpoint ", 9) == 0);
		assert_memory_equal(&p, &before, sizeof(p));
	}
	assert_int_equal(wg_peer_set_endpoint(&p, NULL, err, sizeof(err)), -EINVAL);
	assert_int_equal(wg_peer_set_endpoint(NULL, "192.0.2.7:1", err, sizeof(err)), -EINVAL);
	/* err is optional, and a short one is truncated */
	assert_int_equal(wg_peer_set_endpoint(&p, "x", NULL, 0), -EINVAL);
	assert_int_equal(wg_peer_set_endpoint(&p, "x", err, 5), -EINVAL);
	assert_string_equal(err, "endp");
	assert_memory_equal(&p, &before, sizeof(p));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_endpoint_v4_v6),
		cmocka_unit_test(test_endpoint_bad),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
