/*
 * The userspace backend against the real wireguard-go, in a private network
 * namespace the test process unshares first. Two devices peer over loopback
 * so handshakes and counters are real. Device names carry the PID (UAPI
 * sockets are global in /var/run/wireguard); everything is deleted in the
 * teardowns, which also check that nothing is left.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>

#include "netdev.h"
#include "netns.h"
#include "wg.h"
#include "wg_genl.h"
#include "wg_uapi.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char name1[IFNAMSIZ], name2[IFNAMSIZ], name3[IFNAMSIZ];

static void keypair(uint8_t priv[WG_KEY_LEN], uint8_t pub[WG_KEY_LEN])
{
	randombytes_buf(priv, WG_KEY_LEN);
	priv[0] &= 248;
	priv[31] = (priv[31] & 127) | 64;
	assert_int_equal(crypto_scalarmult_base(pub, priv), 0);
}

static struct ipnet net(const char *s)
{
	struct ipnet n;

	assert_int_equal(ipnet_parse(s, &n, false), 0);
	return n;
}

static void endpoint4(struct wg_peer *p, uint16_t port)
{
	p->endpoint.addr4.sin_family = AF_INET;
	p->endpoint.addr4.sin_port = htons(port);
	p->endpoint.addr4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	p->flags |= WGPEER_HAS_ENDPOINT;
}

static const struct wg_peer *find_peer(const struct wg_device *d, const uint8_t *pub)
{
	for (size_t i = 0; i < d->n_peers; i++)
		if (!memcmp(d->peers[i].public_key, pub, WG_KEY_LEN))
			return &d->peers[i];
	return NULL;
}

static bool has_ip(const struct wg_peer *p, const char *s)
{
	struct ipnet n = net(s);

	for (size_t i = 0; i < p->n_allowedips; i++)
		if (p->allowedips[i].prefixlen == n.prefixlen &&
		    ipaddr_equal(&p->allowedips[i].addr, &n.addr))
			return true;
	return false;
}

static bool sock_file_exists(const char *name)
{
	char path[108];
	struct stat st;

	assert_int_equal(wg_uapi_sock_path(name, path, sizeof(path)), 0);
	return lstat(path, &st) == 0;
}

/* The process holding name's TUN, found through /proc/PID/fdinfo ("iff:"
 * names the tun device), independently of how wg.c finds it. */
static pid_t server_pid(const char *name)
{
	char path[600], line[128], want[64];
	struct dirent *p, *f;
	pid_t found = 0;
	DIR *proc, *fds;
	FILE *fi;

	snprintf(want, sizeof(want), "iff:\t%s\n", name);
	proc = opendir("/proc");
	assert_non_null(proc);
	while (!found && (p = readdir(proc))) {
		if (!atoi(p->d_name))
			continue;
		snprintf(path, sizeof(path), "/proc/%s/fdinfo", p->d_name);
		fds = opendir(path);
		if (!fds)
			continue;
		while (!found && (f = readdir(fds))) {
			snprintf(path, sizeof(path), "/proc/%s/fdinfo/%s", p->d_name, f->d_name);
			fi = fopen(path, "r");
			if (!fi)
				continue;
			while (fgets(line, sizeof(line), fi))
				if (!strcmp(line, want))
					found = atoi(p->d_name);
			fclose(fi);
		}
		closedir(fds);
	}
	closedir(proc);
	return found;
}

static bool wait_pid_gone(pid_t pid)
{
	for (int i = 0; i < 200; i++) {
		if (kill(pid, 0) < 0 && errno == ESRCH)
			return true;
		poll(NULL, 0, 10);
	}
	return false;
}

static void cleanup_all(void)
{
	wg_delete(name1);
	wg_delete(name2);
	wg_delete(name3);
}

static int setup(void **state)
{
	int pid = getpid() % 100000;

	if (unshare(CLONE_NEWNET) < 0) {
		fprintf(stderr, "unshare(CLONE_NEWNET): needs root\n");
		return -1;
	}
	if (sodium_init() < 0 || netdev_set_up("lo", true) < 0)
		return -1;
	snprintf(name1, sizeof(name1), "wgu%da", pid);
	snprintf(name2, sizeof(name2), "wgu%db", pid);
	snprintf(name3, sizeof(name3), "wgu%dc", pid);
	cleanup_all();
	return 0;
}

static int teardown_each(void **state)
{
	cleanup_all();
	return 0;
}

static int teardown(void **state)
{
	cleanup_all();
	/* Nothing may be left: no socket, no link, no process holding our TUN. */
	if (sock_file_exists(name1) || sock_file_exists(name2) || sock_file_exists(name3) ||
	    netdev_exists(name1) || netdev_exists(name2) || netdev_exists(name3) ||
	    server_pid(name1) || server_pid(name2) || server_pid(name3))
		return -1;
	return 0;
}

static void test_missing_impl(void **state)
{
	assert_int_equal(wg_uapi_create(name1, "wgcni-no-such-implementation"), -ENOENT);
	assert_int_equal(wg_create(name1, WG_BACKEND_USERSPACE, "/nonexistent/wireguard-go"),
			 -ENOENT);
	assert_false(wg_uapi_exists(name1));
	assert_false(netdev_exists(name1));
	assert_int_equal(wg_uapi_create("bad/name", "wireguard-go"), -EINVAL);
	assert_int_equal(wg_uapi_create("much-too-long-name", "wireguard-go"), -EINVAL);
}

/* An implementation that fails, or never opens its socket. */
static void test_create_bad_impl(void **state)
{
	char path[64];
	long t0;
	FILE *f;

	snprintf(path, sizeof(path), "/tmp/wgu-impl-%d", getpid());
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("#!/bin/sh\nexit 1\n", f);
	fclose(f);
	assert_int_equal(chmod(path, 0700), 0);
	assert_int_equal(wg_uapi_create(name1, path), -EIO);

	f = fopen(path, "w");
	assert_non_null(f);
	fputs("#!/bin/sh\nexec sleep 30\n", f);
	fclose(f);
	t0 = time(NULL);
	assert_int_equal(wg_uapi_create(name1, path), -ETIMEDOUT);
	assert_true(time(NULL) - t0 >= 4);
	/* The stuck child was killed and reaped: no child is left. */
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
	unlink(path);
}

static void test_create_duplicate_delete(void **state)
{
	struct netdev_info info;
	pid_t pid;

	assert_int_equal(wg_backend_of(name1), -ENODEV);
	assert_int_equal(wg_delete(name1), -ENODEV);
	assert_int_equal(wg_create(name1, WG_BACKEND_USERSPACE, NULL), 0);
	assert_true(wg_uapi_exists(name1));
	assert_int_equal(wg_backend_of(name1), WG_BACKEND_USERSPACE);
	assert_int_equal(netdev_get(name1, &info), 0);
	assert_string_equal(info.kind, "tun");
	assert_int_equal(wg_uapi_create(name1, "wireguard-go"), -EEXIST);
	assert_int_equal(wg_create(name1, WG_BACKEND_USERSPACE, "wireguard-go"), -EEXIST);

	pid = server_pid(name1);
	assert_true(pid > 0);
	assert_int_equal(wg_delete(name1), 0);
	assert_false(wg_uapi_exists(name1));
	assert_false(sock_file_exists(name1));
	assert_false(netdev_exists(name1));
	assert_true(wait_pid_gone(pid));
	assert_int_equal(wg_delete(name1), -ENODEV);
	assert_int_equal(wg_backend_of(name1), -ENODEV);
}

/* A link of that name without a socket also blocks creation. */
static void test_create_over_link(void **state)
{
	assert_int_equal(netdev_create(name3, "bridge"), 0);
	assert_int_equal(wg_uapi_create(name3, "wireguard-go"), -EEXIST);
	assert_int_equal(netdev_delete(name3), 0);
}

/* The daemon must not hold our stdout/stderr: a runtime waits for the
 * plugin's stdout to close. */
static void test_stdio_detached(void **state)
{
	int p[2], saved_out, saved_err;
	struct pollfd pfd;
	char c;

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	fflush(stdout);
	fflush(stderr);
	saved_out = dup(1);
	saved_err = dup(2);
	assert_true(saved_out >= 0 && saved_err >= 0);
	assert_int_equal(dup2(p[1], 1), 1); /* dup2 clears CLOEXEC: inheritable */
	assert_int_equal(dup2(p[1], 2), 2);
	close(p[1]);
	int ret = wg_uapi_create(name1, "wireguard-go");
	dup2(saved_out, 1);
	dup2(saved_err, 2);
	close(saved_out);
	close(saved_err);
	assert_int_equal(ret, 0);

	pfd = (struct pollfd){ .fd = p[0], .events = POLLIN };
	assert_int_equal(poll(&pfd, 1, 3000), 1);
	assert_int_equal(read(p[0], &c, 1), 0); /* EOF: no writer left */
	close(p[0]);
	assert_int_equal(wg_delete(name1), 0);
}

static void test_set_get_incremental(void **state)
{
	uint8_t priv1[WG_KEY_LEN], pub1[WG_KEY_LEN], priv2[WG_KEY_LEN], pub2[WG_KEY_LEN];
	uint8_t privx[WG_KEY_LEN], pubx[WG_KEY_LEN], privy[WG_KEY_LEN], puby[WG_KEY_LEN];
	uint8_t psk[WG_KEY_LEN];
	struct wg_peer p1 = { 0 }, p2 = { 0 }, px = { 0 }, py = { 0 }, peers[2];
	struct wg_device d1 = { 0 }, d2 = { 0 }, *g = NULL;
	const struct wg_peer *gp;
	struct ipnet ip, a;
	struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons(9) };
	uint64_t rx, tx;
	time_t hs;
	int i, udp;

	keypair(priv1, pub1);
	keypair(priv2, pub2);
	keypair(privx, pubx);
	keypair(privy, puby);
	randombytes_buf(psk, sizeof(psk));

	assert_int_equal(wg_create(name1, WG_BACKEND_USERSPACE, "wireguard-go"), 0);
	assert_int_equal(wg_create(name2, WG_BACKEND_USERSPACE, "wireguard-go"), 0);

	/* d1: private key, port, fwmark, peers 2 (loopback endpoint) and x. */
	memcpy(p2.public_key, pub2, WG_KEY_LEN);
	memcpy(p2.preshared_key, psk, WG_KEY_LEN);
	p2.flags = WGPEER_HAS_PRESHARED_KEY;
	endpoint4(&p2, 47002);
	ip = net("10.77.0.2/32");
	assert_int_equal(wg_peer_add_allowedip(&p2, &ip), 0);
	memcpy(px.public_key, pubx, WG_KEY_LEN);
	px.flags = WGPEER_HAS_KEEPALIVE;
	px.keepalive = 0;
	ip = net("10.88.0.0/24");
	assert_int_equal(wg_peer_add_allowedip(&px, &ip), 0);
	ip = net("fd88::/64");
	assert_int_equal(wg_peer_add_allowedip(&px, &ip), 0);
	peers[0] = p2;
	peers[1] = px;
	snprintf(d1.name, sizeof(d1.name), "%s", name1);
	memcpy(d1.private_key, priv1, WG_KEY_LEN);
	d1.listen_port = 47001;
	d1.fwmark = 0x42;
	d1.flags = WGDEVICE_HAS_PRIVATE_KEY | WGDEVICE_HAS_LISTEN_PORT | WGDEVICE_HAS_FWMARK |
		   WGDEVICE_REPLACE_PEERS;
	d1.peers = peers;
	d1.n_peers = 2;
	assert_int_equal(wg_set(&d1), 0);

	/* d2: the mirror image. */
	memcpy(p1.public_key, pub1, WG_KEY_LEN);
	memcpy(p1.preshared_key, psk, WG_KEY_LEN);
	p1.flags = WGPEER_HAS_PRESHARED_KEY;
	endpoint4(&p1, 47001);
	ip = net("10.77.0.1/32");
	assert_int_equal(wg_peer_add_allowedip(&p1, &ip), 0);
	snprintf(d2.name, sizeof(d2.name), "%s", name2);
	memcpy(d2.private_key, priv2, WG_KEY_LEN);
	d2.listen_port = 47002;
	d2.flags = WGDEVICE_HAS_PRIVATE_KEY | WGDEVICE_HAS_LISTEN_PORT;
	d2.peers = &p1;
	d2.n_peers = 1;
	assert_int_equal(wg_set(&d2), 0);

	/* Read back everything. */
	assert_int_equal(wg_get(name1, &g), 0);
	assert_string_equal(g->name, name1);
	assert_true(g->ifindex > 0);
	assert_true(g->flags & WGDEVICE_HAS_PRIVATE_KEY);
	assert_memory_equal(g->private_key, priv1, WG_KEY_LEN);
	assert_true(g->flags & WGDEVICE_HAS_PUBLIC_KEY);
	assert_memory_equal(g->public_key, pub1, WG_KEY_LEN);
	assert_int_equal(g->listen_port, 47001);
	assert_int_equal(g->fwmark, 0x42);
	assert_int_equal(g->n_peers, 2);
	gp = find_peer(g, pub2);
	assert_non_null(gp);
	assert_true(gp->flags & WGPEER_HAS_PRESHARED_KEY);
	assert_memory_equal(gp->preshared_key, psk, WG_KEY_LEN);
	assert_true(gp->flags & WGPEER_HAS_ENDPOINT);
	assert_int_equal(gp->endpoint.addr.sa_family, AF_INET);
	assert_int_equal(ntohs(gp->endpoint.addr4.sin_port), 47002);
	assert_int_equal(ntohl(gp->endpoint.addr4.sin_addr.s_addr), INADDR_LOOPBACK);
	assert_int_equal(gp->n_allowedips, 1);
	assert_true(has_ip(gp, "10.77.0.2/32"));
	gp = find_peer(g, pubx);
	assert_non_null(gp);
	assert_false(gp->flags & WGPEER_HAS_ENDPOINT);
	assert_int_equal(gp->n_allowedips, 2);
	assert_true(has_ip(gp, "10.88.0.0/24"));
	assert_true(has_ip(gp, "fd88::/64"));
	wg_device_free(g);
	g = NULL;

	/* Traffic: d1 -> 10.77.0.2 makes d1 handshake with d2 over loopback. */
	a = net("10.77.0.1/24");
	assert_int_equal(netdev_addr_add(name1, &a), 0);
	assert_int_equal(netdev_set_up(name1, true), 0);
	assert_int_equal(netdev_set_up(name2, true), 0);
	udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(udp >= 0);
	inet_pton(AF_INET, "10.77.0.2", &dst.sin_addr);
	for (i = 0, hs = 0; i < 100 && !hs; i++) {
		sendto(udp, "x", 1, 0, (struct sockaddr *)&dst, sizeof(dst));
		poll(NULL, 0, 50);
		assert_int_equal(wg_get(name1, &g), 0);
		gp = find_peer(g, pub2);
		assert_non_null(gp);
		hs = gp->last_handshake.tv_sec;
		wg_device_free(g);
		g = NULL;
	}
	close(udp);
	assert_true(hs > 0);
	assert_int_equal(wg_get(name1, &g), 0);
	gp = find_peer(g, pub2);
	rx = gp->rx_bytes;
	tx = gp->tx_bytes;
	assert_true(rx > 0);
	assert_true(tx > 0);
	assert_true(gp->last_handshake.tv_sec > 1700000000);
	wg_device_free(g);

	/* Add y alone (no REPLACE_PEERS): 2 keeps its counters, x stays. */
	memcpy(py.public_key, puby, WG_KEY_LEN);
	ip = net("10.66.0.0/16");
	assert_int_equal(wg_peer_add_allowedip(&py, &ip), 0);
	d1.flags = 0;
	d1.peers = &py;
	d1.n_peers = 1;
	assert_int_equal(wg_set(&d1), 0);
	assert_int_equal(wg_get(name1, &g), 0);
	assert_int_equal(g->n_peers, 3);
	assert_non_null(find_peer(g, puby));
	assert_non_null(find_peer(g, pubx));
	gp = find_peer(g, pub2);
	assert_non_null(gp);
	assert_true(gp->rx_bytes >= rx && gp->tx_bytes >= tx);
	assert_int_equal(gp->last_handshake.tv_sec, hs);
	wg_device_free(g);

	/* Remove y: the others untouched. */
	py.flags = WGPEER_REMOVE_ME;
	assert_int_equal(wg_set(&d1), 0);
	assert_int_equal(wg_get(name1, &g), 0);
	assert_int_equal(g->n_peers, 2);
	assert_null(find_peer(g, puby));
	gp = find_peer(g, pub2);
	assert_non_null(gp);
	assert_true(gp->rx_bytes >= rx && gp->tx_bytes >= tx);
	wg_device_free(g);

	/* Allowed IPs of x: added to, then replaced. */
	wg_peer_clear(&px);
	memcpy(px.public_key, pubx, WG_KEY_LEN);
	ip = net("10.98.0.0/24");
	assert_int_equal(wg_peer_add_allowedip(&px, &ip), 0);
	d1.peers = &px;
	assert_int_equal(wg_set(&d1), 0);
	assert_int_equal(wg_get(name1, &g), 0);
	gp = find_peer(g, pubx);
	assert_int_equal(gp->n_allowedips, 3);
	assert_true(has_ip(gp, "10.98.0.0/24"));
	assert_true(has_ip(gp, "10.88.0.0/24"));
	wg_device_free(g);

	wg_peer_clear(&px);
	memcpy(px.public_key, pubx, WG_KEY_LEN);
	px.flags = WGPEER_REPLACE_ALLOWEDIPS;
	ip = net("10.99.0.0/16");
	assert_int_equal(wg_peer_add_allowedip(&px, &ip), 0);
	ip = net("fd99::/64");
	assert_int_equal(wg_peer_add_allowedip(&px, &ip), 0);
	assert_int_equal(wg_set(&d1), 0);
	assert_int_equal(wg_get(name1, &g), 0);
	gp = find_peer(g, pubx);
	assert_int_equal(gp->n_allowedips, 2);
	assert_true(has_ip(gp, "10.99.0.0/16"));
	assert_true(has_ip(gp, "fd99::/64"));
	assert_false(has_ip(gp, "10.88.0.0/24"));
	assert_non_null(find_peer(g, pub2));
	wg_device_free(g);

	/* UPDATE_ONLY does not create a peer. */
	wg_peer_clear(&py);
	memcpy(py.public_key, puby, WG_KEY_LEN);
	py.flags = WGPEER_UPDATE_ONLY;
	d1.peers = &py;
	assert_int_equal(wg_set(&d1), 0);
	assert_int_equal(wg_get(name1, &g), 0);
	assert_null(find_peer(g, puby));
	wg_device_free(g);

	/* REPLACE_PEERS with x only drops 2. */
	px.flags = 0;
	d1.flags = WGDEVICE_REPLACE_PEERS;
	d1.peers = &px;
	assert_int_equal(wg_set(&d1), 0);
	assert_int_equal(wg_get(name1, &g), 0);
	assert_int_equal(g->n_peers, 1);
	assert_non_null(find_peer(g, pubx));
	assert_null(find_peer(g, pub2));
	wg_device_free(g);

	/* An error answer: d2 cannot take d1's port (errno=N -> -N). */
	d2.flags = WGDEVICE_HAS_LISTEN_PORT;
	d2.listen_port = 47001;
	d2.n_peers = 0;
	assert_int_equal(wg_set(&d2), -EADDRINUSE);

	wg_peer_clear(&p1);
	wg_peer_clear(&p2);
	wg_peer_clear(&px);
	wg_peer_clear(&py);
	assert_int_equal(wg_delete(name1), 0);
	assert_int_equal(wg_delete(name2), 0);
	assert_int_equal(wg_get(name1, &g), -ENODEV);
}

/* The link lives in another namespace (a container's): wg_delete still
 * ends the process through its socket. */
static void test_delete_moved(void **state)
{
	int here, there;
	pid_t pid;

	assert_int_equal(wg_create(name3, WG_BACKEND_USERSPACE, "wireguard-go"), 0);
	here = netns_current();
	assert_true(here >= 0);
	assert_int_equal(unshare(CLONE_NEWNET), 0);
	there = netns_current();
	assert_int_equal(netns_enter(here), 0);
	assert_int_equal(netdev_move_to_netns(name3, there), 0);
	assert_false(netdev_exists(name3));
	assert_true(wg_uapi_exists(name3));
	assert_int_equal(wg_backend_of(name3), WG_BACKEND_USERSPACE);
	pid = server_pid(name3);
	assert_true(pid > 0);

	assert_int_equal(wg_delete(name3), 0);
	assert_false(wg_uapi_exists(name3));
	assert_false(sock_file_exists(name3));
	assert_true(wait_pid_gone(pid));
	close(there);
	close(here);
}

/* A socket file nobody serves (the process died) is removed. */
static void test_stale_socket(void **state)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd;

	assert_int_equal(wg_uapi_sock_path(name3, sun.sun_path, sizeof(sun.sun_path)), 0);
	mkdir("/var/run/wireguard", 0755);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(fd);
	assert_true(sock_file_exists(name3));
	assert_false(wg_uapi_exists(name3));
	assert_int_equal(wg_backend_of(name3), -ENODEV);
	assert_int_equal(wg_delete(name3), 0);
	assert_false(sock_file_exists(name3));
	assert_int_equal(wg_delete(name3), -ENODEV);
}

static void test_backend_names(void **state)
{
	enum wg_backend b;

	assert_int_equal(wg_backend_parse("auto", &b), 0);
	assert_int_equal(b, WG_BACKEND_AUTO);
	assert_int_equal(wg_backend_parse("kernel", &b), 0);
	assert_int_equal(b, WG_BACKEND_KERNEL);
	assert_int_equal(wg_backend_parse("userspace", &b), 0);
	assert_int_equal(b, WG_BACKEND_USERSPACE);
	assert_int_equal(wg_backend_parse("Kernel", &b), -EINVAL);
	assert_string_equal(wg_backend_name(WG_BACKEND_USERSPACE), "userspace");
	assert_string_equal(wg_backend_name(WG_BACKEND_KERNEL), "kernel");
	/* No module here: auto is userspace, and kernel creation refuses. */
	assert_int_equal(wg_backend_resolve(WG_BACKEND_AUTO),
			 wg_kernel_family_available() > 0 ? WG_BACKEND_KERNEL
							  : WG_BACKEND_USERSPACE);
	assert_int_equal(wg_backend_resolve(WG_BACKEND_KERNEL), WG_BACKEND_KERNEL);
	if (wg_kernel_family_available() == 0)
		assert_int_equal(wg_create(name3, WG_BACKEND_KERNEL, NULL), -EOPNOTSUPP);
}

/* --- the wire format, against a scripted peer --------------------------------
 * Malformed answers cannot be had from wireguard-go; a child process plays
 * the daemon on a socket in a private directory (wg_uapi_set_dir) and
 * reports the request it received. */

struct fake {
	char dir[64];
	pid_t pid;
	int req; /* read end: the request the fake received */
};

static void fake_start(struct fake *f, const char *answer)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int ls, p[2];

	snprintf(f->dir, sizeof(f->dir), "/tmp/wgu-fake-%d", getpid());
	mkdir(f->dir, 0700);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/fake0.sock", f->dir);
	unlink(sun.sun_path);
	ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(ls >= 0);
	assert_int_equal(bind(ls, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(ls, 4), 0);
	assert_int_equal(pipe(p), 0);
	f->pid = fork();
	assert_true(f->pid >= 0);
	if (f->pid == 0) {
		char buf[8192];
		size_t n = 0;
		ssize_t r;
		int c;

		close(p[0]);
		/* wg_uapi_exists probes connect and close first: serve the
		 * connection that sends a request. */
		for (;;) {
			c = accept(ls, NULL, NULL);
			if (c < 0)
				_exit(1);
			n = 0;
			while (n < sizeof(buf) && (r = read(c, buf + n, sizeof(buf) - n)) > 0) {
				n += (size_t)r;
				if (n >= 2 && !memcmp(buf + n - 2, "\n\n", 2))
					break;
			}
			if (n)
				break;
			close(c);
		}
		if (write(p[1], buf, n) != (ssize_t)n || write(c, answer, strlen(answer)) < 0)
			_exit(1);
		close(c);
		_exit(0);
	}
	close(p[1]);
	close(ls);
	f->req = p[0];
	wg_uapi_set_dir(f->dir);
}

/* The request the fake saw; waits for it to finish. */
static char *fake_finish(struct fake *f)
{
	static char req[8192];
	ssize_t n, total = 0;
	char path[128];
	int status;

	while ((n = read(f->req, req + total, sizeof(req) - 1 - (size_t)total)) > 0)
		total += n;
	req[total] = '\0';
	close(f->req);
	assert_int_equal(waitpid(f->pid, &status, 0), f->pid);
	wg_uapi_set_dir(NULL);
	snprintf(path, sizeof(path), "%s/fake0.sock", f->dir);
	unlink(path);
	rmdir(f->dir);
	return req;
}

static int fake_get(const char *answer, struct wg_device **dev)
{
	struct fake f;
	int ret;

	fake_start(&f, answer);
	ret = wg_uapi_get("fake0", dev);
	assert_string_equal(fake_finish(&f), "get=1\n\n");
	return ret;
}

static void test_wire_set_request(void **state)
{
	struct wg_device d = { .name = "fake0" };
	struct wg_peer p[2] = { 0 };
	struct ipnet ip;
	struct fake f;
	char *req;

	memset(d.private_key, 0xab, WG_KEY_LEN);
	d.listen_port = 51820;
	d.fwmark = 7;
	d.flags = WGDEVICE_HAS_PRIVATE_KEY | WGDEVICE_HAS_LISTEN_PORT | WGDEVICE_HAS_FWMARK |
		  WGDEVICE_REPLACE_PEERS;
	memset(p[0].public_key, 0x01, WG_KEY_LEN);
	memset(p[0].preshared_key, 0x02, WG_KEY_LEN);
	p[0].flags = WGPEER_HAS_PRESHARED_KEY | WGPEER_HAS_KEEPALIVE | WGPEER_HAS_ENDPOINT |
		     WGPEER_REPLACE_ALLOWEDIPS | WGPEER_UPDATE_ONLY;
	p[0].keepalive = 25;
	p[0].endpoint.addr6.sin6_family = AF_INET6;
	p[0].endpoint.addr6.sin6_port = htons(51821);
	inet_pton(AF_INET6, "fd00::1", &p[0].endpoint.addr6.sin6_addr);
	ip = net("10.1.0.0/16");
	assert_int_equal(wg_peer_add_allowedip(&p[0], &ip), 0);
	ip = net("fd01::/64");
	assert_int_equal(wg_peer_add_allowedip(&p[0], &ip), 0);
	memset(p[1].public_key, 0xff, WG_KEY_LEN);
	p[1].flags = WGPEER_REMOVE_ME;
	d.peers = p;
	d.n_peers = 2;

	fake_start(&f, "errno=0\n\n");
	assert_int_equal(wg_uapi_set(&d), 0);
	req = fake_finish(&f);
	assert_string_equal(req,
		"set=1\n"
		"private_key=abababababababababababababababababababababababababababababababab\n"
		"listen_port=51820\n"
		"fwmark=7\n"
		"replace_peers=true\n"
		"public_key=0101010101010101010101010101010101010101010101010101010101010101\n"
		"update_only=true\n"
		"preshared_key=0202020202020202020202020202020202020202020202020202020202020202\n"
		"endpoint=[fd00::1]:51821\n"
		"persistent_keepalive_interval=25\n"
		"replace_allowed_ips=true\n"
		"allowed_ip=10.1.0.0/16\n"
		"allowed_ip=fd01::/64\n"
		"public_key=ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\n"
		"remove=true\n"
		"\n");

	/* errno answers, both signs (older wireguard-go wrote negatives). */
	fake_start(&f, "errno=22\n\n");
	assert_int_equal(wg_uapi_set(&d), -EINVAL);
	fake_finish(&f);
	fake_start(&f, "errno=-98\n\n");
	assert_int_equal(wg_uapi_set(&d), -EADDRINUSE);
	fake_finish(&f);
	fake_start(&f, "\n");
	assert_int_equal(wg_uapi_set(&d), -EPROTO);
	fake_finish(&f);
	wg_peer_clear(&p[0]);
}

static void test_wire_get_parse(void **state)
{
	struct wg_device *d = NULL;
	char longline[1200];

	assert_int_equal(fake_get(
		"private_key=0000000000000000000000000000000000000000000000000000000000000000\n"
		"listen_port=4242\n"
		"something_new=1\n"
		"public_key=0101010101010101010101010101010101010101010101010101010101010101\n"
		"endpoint=192.0.2.1:51820\n"
		"last_handshake_time_sec=1763850000\n"
		"last_handshake_time_nsec=5\n"
		"rx_bytes=18446744073709551615\n"
		"tx_bytes=7\n"
		"persistent_keepalive_interval=0\n"
		"allowed_ip=10.0.0.0/8\n"
		"protocol_version=1\n"
		"public_key=0202020202020202020202020202020202020202020202020202020202020202\n"
		"endpoint=[fd00::2]:1\n"
		"errno=0\n\n", &d), 0);
	assert_non_null(d);
	assert_false(d->flags & WGDEVICE_HAS_PRIVATE_KEY); /* all zero: none */
	assert_int_equal(d->listen_port, 4242);
	assert_int_equal(d->n_peers, 2);
	assert_int_equal(d->peers[0].rx_bytes, UINT64_MAX);
	assert_int_equal(d->peers[0].tx_bytes, 7);
	assert_int_equal(d->peers[0].last_handshake.tv_sec, 1763850000);
	assert_int_equal(d->peers[0].last_handshake.tv_nsec, 5);
	assert_int_equal(d->peers[0].n_allowedips, 1);
	assert_int_equal(d->peers[0].endpoint.addr.sa_family, AF_INET);
	assert_int_equal(d->peers[1].endpoint.addr.sa_family, AF_INET6);
	assert_int_equal(ntohs(d->peers[1].endpoint.addr6.sin6_port), 1);
	wg_device_free(d);

	d = NULL;
	assert_int_equal(fake_get("listen_port=1\nerrno=19\n\n", &d), -ENODEV);
	assert_null(d);
	assert_int_equal(fake_get("listen_port=1\n\n", &d), -EPROTO); /* no errno */
	assert_int_equal(fake_get("listen_port=1\n", &d), -EPROTO);     /* EOF */
	assert_int_equal(fake_get("listen_port=65536\nerrno=0\n\n", &d), -EPROTO);
	assert_int_equal(fake_get("public_key=0101\nerrno=0\n\n", &d), -EPROTO);
	assert_int_equal(fake_get("public_key=zz01010101010101010101010101010101010101010101010101010101010101\n"
				  "errno=0\n\n", &d), -EPROTO);
	assert_int_equal(fake_get("public_key=0101010101010101010101010101010101010101010101010101010101010101\n"
				  "allowed_ip=10.0.0.0/33\nerrno=0\n\n", &d), -EPROTO);
	assert_int_equal(fake_get("public_key=0101010101010101010101010101010101010101010101010101010101010101\n"
				  "last_handshake_time_nsec=1000000000\nerrno=0\n\n", &d), -EPROTO);
	assert_int_equal(fake_get("no equals sign\nerrno=0\n\n", &d), -EPROTO);
	memset(longline, 'a', sizeof(longline) - 3);
	memcpy(longline + sizeof(longline) - 3, "\n\n", 3);
	assert_int_equal(fake_get(longline, &d), -EPROTO);
	assert_null(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_missing_impl, teardown_each),
		cmocka_unit_test_teardown(test_create_bad_impl, teardown_each),
		cmocka_unit_test_teardown(test_create_duplicate_delete, teardown_each),
		cmocka_unit_test_teardown(test_create_over_link, teardown_each),
		cmocka_unit_test_teardown(test_stdio_detached, teardown_each),
		cmocka_unit_test_teardown(test_set_get_incremental, teardown_each),
		cmocka_unit_test_teardown(test_delete_moved, teardown_each),
		cmocka_unit_test_teardown(test_stale_socket, teardown_each),
		cmocka_unit_test_teardown(test_backend_names, teardown_each),
		cmocka_unit_test(test_wire_set_request),
		cmocka_unit_test(test_wire_get_parse),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
