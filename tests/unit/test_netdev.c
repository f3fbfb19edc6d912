/* netdev against the real kernel, in a private network namespace the test
 * process unshares first: dummy (or bridge) and tun links, addresses, routes, rename,
 * MTU, up/down, move to another namespace, creation in another one,
 * deletion that returns at unregistration, errors for missing devices. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "netdev.h"
#include "nlerr.h"
#include "netns.h"

#include <netlink/errno.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static struct ipnet net(const char *s)
{
	struct ipnet n = { 0 };
	char buf[64], *slash;

	snprintf(buf, sizeof(buf), "%s", s);
	slash = strchr(buf, '/');
	assert_non_null(slash);
	*slash = '\0';
	n.prefixlen = (unsigned int)atoi(slash + 1);
	if (strchr(buf, ':')) {
		n.addr.family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, buf, n.addr.bytes), 1);
	} else {
		n.addr.family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, buf, n.addr.bytes + 12), 1);
	}
	return n;
}

static struct ipaddr addr(const char *s)
{
	char buf[64];

	snprintf(buf, sizeof(buf), "%s/%d", s, strchr(s, ':') ? 128 : 32);
	return net(buf).addr;
}

/* Output of a shell command run in our namespace (children inherit it). */
static char *sh(const char *cmd)
{
	static char out[8192];
	size_t n;
	FILE *f = popen(cmd, "r");

	assert_non_null(f);
	n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = '\0';
	pclose(f);
	return out;
}

static int count_links(void)
{
	return atoi(sh("ip -o link show | wc -l"));
}

/* "dummy" where the kernel has it; this machine's kernel lacks it, so
 * fall back to an empty bridge, which a bare IFLA_INFO_KIND creates too. */
static const char *kind = "dummy";

static int setup(void **state)
{
	int ret;

	if (unshare(CLONE_NEWNET) < 0) {
		fprintf(stderr, "unshare(CLONE_NEWNET): needs root\n");
		return -1;
	}
	ret = netdev_create("tprobe0", kind);
	if (ret == -EOPNOTSUPP) {
		kind = "bridge";
		ret = netdev_create("tprobe0", kind);
	}
	if (ret < 0)
		return -1;
	return netdev_delete("tprobe0");
}

static int teardown(void **state)
{
	/* Nothing but lo may remain. */
	return count_links() == 1 ? 0 : -1;
}

static void test_link_lifecycle(void **state)
{
	struct netdev_info info;
	int idx;

	assert_false(netdev_exists("tdummy0"));
	assert_int_equal(netdev_create("tdummy0", kind), 0);
	assert_true(netdev_exists("tdummy0"));
	idx = netdev_index("tdummy0");
	assert_true(idx > 0);
	assert_int_equal(netdev_create("tdummy0", kind), -EEXIST);

	assert_int_equal(netdev_get("tdummy0", &info), 0);
	assert_int_equal(info.ifindex, idx);
	assert_string_equal(info.kind, kind);
	assert_false(info.up);
	assert_int_equal(info.mtu, 1500);

	assert_int_equal(netdev_set_mtu("tdummy0", 1380), 0);
	assert_int_equal(netdev_set_up("tdummy0", true), 0);
	assert_int_equal(netdev_get("tdummy0", &info), 0);
	assert_int_equal(info.mtu, 1380);
	assert_true(info.up);
	assert_non_null(strstr(sh("ip -o link show tdummy0"), "mtu 1380"));
	assert_int_equal(netdev_set_up("tdummy0", false), 0);
	assert_int_equal(netdev_get("tdummy0", &info), 0);
	assert_false(info.up);

	assert_int_equal(netdev_rename("tdummy0", "trenamed0"), 0);
	assert_false(netdev_exists("tdummy0"));
	assert_int_equal(netdev_index("trenamed0"), idx);
	assert_int_equal(netdev_rename("trenamed0", "this-name-is-too-long"), -EINVAL);

	assert_int_equal(netdev_delete("trenamed0"), 0);
	assert_false(netdev_exists("trenamed0"));
	assert_int_equal(netdev_delete("trenamed0"), -ENODEV);

	/* Name, MTU and up in one request; a taken name changes no name. */
	assert_int_equal(netdev_create("tdummy1", kind), 0);
	assert_int_equal(netdev_create("ttaken0", kind), 0);
	assert_int_equal(netdev_rename_up("tdummy1", "ttaken0", 0), -EEXIST);
	assert_true(netdev_exists("tdummy1"));
	assert_int_equal(netdev_rename_up("tdummy1", "this-name-is-too-long", 0), -EINVAL);
	assert_int_equal(netdev_rename_up("tdummy1", "tup0", 1400), 0);
	assert_false(netdev_exists("tdummy1"));
	assert_int_equal(netdev_get("tup0", &info), 0);
	assert_int_equal(info.mtu, 1400);
	assert_true(info.up);
	assert_int_equal(netdev_rename_up("nope0", "tup1", 0), -ENODEV);
	assert_int_equal(netdev_delete("tup0"), 0);
	assert_int_equal(netdev_delete("ttaken0"), 0);
}

static void test_missing_device(void **state)
{
	struct netdev_info info;
	struct ipnet a = net("10.1.0.1/24"), d = net("10.2.0.0/16");
	struct ipnet *list = NULL;
	size_t n = 0;

	assert_int_equal(netdev_index("nope0"), -ENODEV);
	assert_int_equal(netdev_delete("nope0"), -ENODEV);
	assert_int_equal(netdev_set_up("nope0", true), -ENODEV);
	assert_int_equal(netdev_set_mtu("nope0", 1400), -ENODEV);
	assert_int_equal(netdev_rename("nope0", "nope1"), -ENODEV);
	assert_int_equal(netdev_move_to_netns("nope0", 0), -ENODEV);
	assert_int_equal(netdev_get("nope0", &info), -ENODEV);
	assert_int_equal(netdev_addr_add("nope0", &a), -ENODEV);
	assert_int_equal(netdev_addr_del("nope0", &a), -ENODEV);
	assert_int_equal(netdev_addr_list("nope0", &list, &n), -ENODEV);
	assert_int_equal(netdev_route_add(&d, "nope0", NULL), -ENODEV);
	assert_int_equal(netdev_route_del(&d, "nope0"), -ENODEV);
	assert_int_equal(netdev_route_exists(&d, "nope0"), -ENODEV);
	assert_int_equal(netdev_index(""), -EINVAL);
	assert_int_equal(netdev_create("x", NULL), -EINVAL);
}

static void test_kind_wireguard_and_unknown(void **state)
{
	struct netdev_info info;
	int ret;

	assert_int_equal(netdev_create("tbogus0", "no-such-kind"), -EOPNOTSUPP);
	ret = netdev_create("twg0", "wireguard");
	/* This machine has no WireGuard module; a kernel that has one must
	 * report the kind back. */
	if (ret == 0) {
		assert_int_equal(netdev_get("twg0", &info), 0);
		assert_string_equal(info.kind, "wireguard");
		assert_int_equal(netdev_delete("twg0"), 0);
	} else {
		assert_int_equal(ret, -EOPNOTSUPP);
	}
}

static bool list_has(const struct ipnet *v, size_t n, const struct ipnet *want)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].addr.family == want->addr.family &&
		    v[i].prefixlen == want->prefixlen &&
		    !memcmp(v[i].addr.bytes, want->addr.bytes, 16))
			return true;
	return false;
}

static void test_addresses(void **state)
{
	struct ipnet a4 = net("10.100.3.1/24"), a6 = net("fd10:100:3::1/64");
	struct ipnet *list = NULL;
	size_t n = 0;

	assert_int_equal(netdev_create("taddr0", kind), 0);
	assert_int_equal(netdev_set_up("taddr0", true), 0);
	assert_int_equal(netdev_addr_add("taddr0", &a4), 0);
	assert_int_equal(netdev_addr_add("taddr0", &a6), 0);
	assert_int_equal(netdev_addr_add("taddr0", &a4), -EEXIST);
	assert_non_null(strstr(sh("ip -o addr show dev taddr0"), "inet 10.100.3.1/24"));
	assert_non_null(strstr(sh("ip -o addr show dev taddr0"), "inet6 fd10:100:3::1/64"));

	assert_int_equal(netdev_addr_list("taddr0", &list, &n), 0);
	assert_true(n >= 2);
	assert_true(list_has(list, n, &a4));
	assert_true(list_has(list, n, &a6));
	free(list);

	assert_int_equal(netdev_addr_del("taddr0", &a4), 0);
	assert_int_equal(netdev_addr_list("taddr0", &list, &n), 0);
	assert_false(list_has(list, n, &a4));
	assert_true(list_has(list, n, &a6));
	free(list);
	assert_int_equal(netdev_addr_del("taddr0", &a4), -EADDRNOTAVAIL);
	assert_int_equal(netdev_delete("taddr0"), 0);
}

static void test_routes(void **state)
{
	struct ipnet a4 = net("10.9.0.1/24"), cidr = net("10.100.0.0/16");
	struct ipnet via_dst = net("10.30.0.0/16"), dflt = net("0.0.0.0/0");
	struct ipnet v6 = net("fd10:100::/48"), dflt6 = net("::/0");
	struct ipaddr gw = addr("10.9.0.254");

	assert_int_equal(netdev_create("troute0", kind), 0);
	assert_int_equal(netdev_create("troute1", kind), 0);
	assert_int_equal(netdev_set_up("troute0", true), 0);
	assert_int_equal(netdev_set_up("troute1", true), 0);
	assert_int_equal(netdev_addr_add("troute0", &a4), 0);

	assert_int_equal(netdev_route_exists(&cidr, "troute0"), 0);
	assert_int_equal(netdev_route_add(&cidr, "troute0", NULL), 0);
	assert_int_equal(netdev_route_exists(&cidr, "troute0"), 1);
	assert_int_equal(netdev_route_exists(&cidr, "troute1"), 0);
	assert_non_null(strstr(sh("ip -o route show 10.100.0.0/16"), "dev troute0"));
	/* Replace: the same destination moves to the other link. */
	assert_int_equal(netdev_route_add(&cidr, "troute1", NULL), 0);
	assert_int_equal(netdev_route_exists(&cidr, "troute1"), 1);
	assert_int_equal(netdev_route_exists(&cidr, "troute0"), 0);

	assert_int_equal(netdev_route_add(&via_dst, "troute0", &gw), 0);
	assert_int_equal(netdev_route_exists(&via_dst, "troute0"), 1);
	assert_non_null(strstr(sh("ip -o route show 10.30.0.0/16"), "via 10.9.0.254 dev troute0"));

	assert_int_equal(netdev_route_add(&dflt, "troute1", NULL), 0);
	assert_int_equal(netdev_route_exists(&dflt, "troute1"), 1);
	assert_non_null(strstr(sh("ip -o route show default"), "default dev troute1"));

	assert_int_equal(netdev_route_add(&v6, "troute1", NULL), 0);
	assert_int_equal(netdev_route_add(&dflt6, "troute1", NULL), 0);
	assert_int_equal(netdev_route_exists(&v6, "troute1"), 1);
	assert_int_equal(netdev_route_exists(&dflt6, "troute1"), 1);
	assert_non_null(strstr(sh("ip -6 -o route show default"), "default dev troute1"));

	assert_int_equal(netdev_route_del(&via_dst, "troute0"), 0);
	assert_int_equal(netdev_route_exists(&via_dst, "troute0"), 0);
	assert_int_equal(netdev_route_del(&via_dst, "troute0"), -ENOENT);
	assert_int_equal(netdev_route_del(&cidr, "troute1"), 0);
	assert_int_equal(netdev_route_del(&dflt, "troute1"), 0);
	assert_int_equal(netdev_route_exists(&dflt, "troute1"), 0);
	assert_int_equal(netdev_route_del(&v6, "troute1"), 0);
	assert_int_equal(netdev_route_exists(&v6, "troute1"), 0);
	assert_string_equal(sh("ip -o route show 10.100.0.0/16"), "");

	assert_int_equal(netdev_delete("troute0"), 0);
	assert_int_equal(netdev_delete("troute1"), 0);
}

/* A tun link, as wireguard-go makes (bridges cannot change namespace);
 * returns the fd that keeps it alive, or -1 when there is no /dev/net/tun. */
static int tun_open(const char *name)
{
	struct ifreq ifr = { .ifr_flags = IFF_TUN | IFF_NO_PI };
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return -1;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	assert_int_equal(ioctl(fd, TUNSETIFF, &ifr), 0);
	return fd;
}

static void test_kind_tun(void **state)
{
	struct netdev_info info;
	int fd = tun_open("ttun0");

	if (fd < 0)
		skip();
	assert_int_equal(netdev_get("ttun0", &info), 0);
	assert_string_equal(info.kind, "tun");
	close(fd);
	assert_false(netdev_exists("ttun0"));
}

/* Our namespace and a new one, both open; we stay in ours. */
static void other_netns(int *here, int *there)
{
	*here = netns_current();
	assert_true(*here >= 0);
	assert_int_equal(unshare(CLONE_NEWNET), 0);
	*there = netns_current();
	assert_true(*there >= 0);
	assert_int_equal(netns_enter(*here), 0);
}

static void test_move_to_netns(void **state)
{
	struct netdev_info info;
	int here, there, saved, tun;

	tun = tun_open("tmove0");
	if (tun < 0)
		skip();
	other_netns(&here, &there);

	assert_int_equal(netdev_move_to_netns("tmove0", there), 0);
	assert_false(netdev_exists("tmove0"));

	saved = netns_current();
	assert_int_equal(netns_enter(there), 0);
	assert_true(netdev_exists("tmove0"));
	assert_int_equal(netdev_rename("tmove0", "eth0"), 0);
	assert_int_equal(netdev_set_up("eth0", true), 0);
	assert_int_equal(netdev_get("eth0", &info), 0);
	assert_true(info.up);
	assert_string_equal(info.kind, "tun");
	assert_int_equal(netdev_delete("eth0"), 0);
	assert_false(netdev_exists("eth0"));
	assert_int_equal(netns_restore(saved), 0);
	assert_false(netdev_exists("eth0"));

	close(tun);
	close(there);
	close(here);
}

/* Born in another namespace by a request from ours, as the plugin makes a
 * kernel WireGuard link in the container: nothing here, no move. */
static void test_create_in(void **state)
{
	struct netdev_info info;
	int here, there, saved;

	other_netns(&here, &there);

	assert_int_equal(netdev_create_in("tborn0", kind, there, 1380), 0);
	assert_false(netdev_exists("tborn0"));
	assert_int_equal(netdev_create_in("tborn0", kind, there, 0), -EEXIST);
	assert_int_equal(netdev_create_in("tborn0", "", there, 0), -EINVAL);
	assert_int_equal(netdev_create_in("tborn1", kind, there, 0), 0);

	saved = netns_current();
	assert_int_equal(netns_enter(there), 0);
	/* Born with its MTU, in one request. */
	assert_int_equal(netdev_get("tborn0", &info), 0);
	assert_int_equal(info.mtu, 1380);
	assert_false(info.up);
	assert_int_equal(netdev_get("tborn1", &info), 0);
	assert_int_equal(info.mtu, 1500);
	assert_int_equal(netdev_delete("tborn1"), 0);
	assert_int_equal(netdev_delete("tborn0"), 0);
	assert_int_equal(netns_restore(saved), 0);
	close(there);
	close(here);
}

/* Gone from the namespace when it returns, addresses and routes with it;
 * the kernel's freeing is left to netdev_unregister's child. */
static void test_unregister(void **state)
{
	struct ipnet a = net("10.77.0.1/24");
	char buf[16];
	int tun;

	assert_int_equal(netdev_create("tunreg0", kind), 0);
	assert_int_equal(netdev_addr_add("tunreg0", &a), 0);
	assert_int_equal(netdev_set_up("tunreg0", true), 0);
	assert_non_null(strstr(sh("ip -o addr show"), "10.77.0.1/24"));
	assert_int_equal(netdev_unregister("tunreg0"), 0);
	assert_false(netdev_exists("tunreg0"));
	assert_null(strstr(sh("ip -o addr show"), "10.77.0.1"));
	assert_null(strstr(sh("ip route show"), "10.77.0.0/24"));
	assert_int_equal(netdev_unregister("tunreg0"), -ENODEV);
	assert_int_equal(netdev_unregister("this-name-is-too-long"), -EINVAL);

	/* A TUN whose owner still holds it: the owner's descriptor dies. */
	tun = tun_open("tunreg1");
	if (tun < 0)
		skip();
	assert_int_equal(netdev_unregister("tunreg1"), 0);
	assert_false(netdev_exists("tunreg1"));
	assert_true(read(tun, buf, sizeof(buf)) < 0);
	close(tun);
}

static void test_forwarding(void **state)
{
	assert_string_equal(sh("cat /proc/sys/net/ipv4/ip_forward"), "0\n");
	assert_int_equal(netdev_enable_forwarding(AF_INET), 0);
	assert_string_equal(sh("cat /proc/sys/net/ipv4/ip_forward"), "1\n");
	assert_int_equal(netdev_enable_forwarding(AF_INET6), 0);
	assert_string_equal(sh("cat /proc/sys/net/ipv6/conf/all/forwarding"), "1\n");
	assert_int_equal(netdev_enable_forwarding(AF_UNIX), -EAFNOSUPPORT);
}

static void test_errno_map(void **state)
{
	assert_int_equal(nlerr_errno(0), 0);
	assert_int_equal(nlerr_errno(-NLE_EXIST), -EEXIST);
	assert_int_equal(nlerr_errno(NLE_NODEV), -ENODEV);
	assert_int_equal(nlerr_errno(-NLE_OPNOTSUPP), -EOPNOTSUPP);
	assert_int_equal(nlerr_errno(-9999), -EIO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_link_lifecycle),
		cmocka_unit_test(test_missing_device),
		cmocka_unit_test(test_kind_wireguard_and_unknown),
		cmocka_unit_test(test_kind_tun),
		cmocka_unit_test(test_addresses),
		cmocka_unit_test(test_routes),
		cmocka_unit_test(test_move_to_netns),
		cmocka_unit_test(test_create_in),
		cmocka_unit_test(test_unregister),
		cmocka_unit_test(test_forwarding),
		cmocka_unit_test(test_errno_map),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
