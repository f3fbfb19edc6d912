/*
 * fw against the kernel's legacy xtables, in a private network namespace the
 * test process unshares first (tables are per namespace). The result is
 * read back with iptables-legacy / ip6tables-legacy run in that namespace.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "fw.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char *sh(const char *cmd)
{
	static char out[16384];
	size_t n;
	FILE *f = popen(cmd, "r");

	assert_non_null(f);
	n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = '\0';
	assert_int_equal(pclose(f), 0);
	return out;
}

static struct ipnet net(const char *s)
{
	struct ipnet n;

	assert_int_equal(ipnet_parse(s, &n, true), 0);
	return n;
}

static int setup(void **state)
{
	if (unshare(CLONE_NEWNET) < 0) {
		fprintf(stderr, "unshare(CLONE_NEWNET): needs root\n");
		return -1;
	}
	if (system("iptables-legacy -S >/dev/null 2>&1") != 0) {
		fprintf(stderr, "iptables-legacy missing\n");
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	/* Nothing of ours may be left in any table. */
	return fw_remove() == 0 && !strstr(sh("iptables-legacy-save; ip6tables-legacy-save"), "WGCNI") ? 0 : -1;
}

static const char filter4[] =
	"-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n"
	"-N WGCNI-FORWARD\n"
	"-A FORWARD -j WGCNI-FORWARD\n"
	"-A WGCNI-FORWARD -i wgcni0 -j ACCEPT\n"
	"-A WGCNI-FORWARD -o wgcni0 -j ACCEPT\n";
static const char nat4[] =
	"-P PREROUTING ACCEPT\n-P INPUT ACCEPT\n-P OUTPUT ACCEPT\n-P POSTROUTING ACCEPT\n"
	"-N WGCNI-POSTROUTING\n"
	"-A POSTROUTING -j WGCNI-POSTROUTING\n"
	"-A WGCNI-POSTROUTING -s 10.100.3.0/24 -d 10.100.0.0/16 -j RETURN\n"
	"-A WGCNI-POSTROUTING -s 10.100.3.0/24 -d 10.200.0.0/16 -j RETURN\n"
	"-A WGCNI-POSTROUTING -s 10.100.3.0/24 -o wgcni0 -j RETURN\n"
	"-A WGCNI-POSTROUTING -s 10.100.3.0/24 -j MASQUERADE\n";
static const char nat6[] =
	"-P PREROUTING ACCEPT\n-P INPUT ACCEPT\n-P OUTPUT ACCEPT\n-P POSTROUTING ACCEPT\n"
	"-N WGCNI-POSTROUTING\n"
	"-A POSTROUTING -j WGCNI-POSTROUTING\n"
	"-A WGCNI-POSTROUTING -s fd10:100:0:3::/64 -d fd10:100::/48 -j RETURN\n"
	"-A WGCNI-POSTROUTING -s fd10:100:0:3::/64 -o wgcni0 -j RETURN\n"
	"-A WGCNI-POSTROUTING -s fd10:100:0:3::/64 -j MASQUERADE\n";

static void config(struct fw_config *cfg, struct ipnet subs[2], struct ipnet cidrs[3])
{
	subs[0] = net("10.100.3.0/24");
	subs[1] = net("fd10:100:0:3::/64");
	cidrs[0] = net("10.100.0.0/16");
	cidrs[1] = net("fd10:100::/48");
	cidrs[2] = net("10.200.0.0/16");
	*cfg = (struct fw_config){
		.ifname = "wgcni0",
		.node_subnets = subs, .n_node_subnets = 2,
		.cluster_cidrs = cidrs, .n_cluster_cidrs = 3,
		.masquerade = true,
	};
}

static void test_remove_when_absent(void **state)
{
	assert_int_equal(fw_remove(), 0);
	assert_int_equal(fw_remove(), 0);
}

static void test_install_idempotent_remove(void **state)
{
	struct ipnet subs[2], cidrs[3];
	struct fw_config cfg;
	char before[16384];

	config(&cfg, subs, cidrs);
	assert_int_equal(fw_install(&cfg), 0);
	assert_string_equal(sh("iptables-legacy -S"), filter4);
	assert_string_equal(sh("iptables-legacy -t nat -S"), nat4);
	assert_string_equal(sh("ip6tables-legacy -t nat -S"), nat6);
	assert_non_null(strstr(sh("ip6tables-legacy -S"),
			       "-A FORWARD -j WGCNI-FORWARD\n"
			       "-A WGCNI-FORWARD -i wgcni0 -j ACCEPT\n"
			       "-A WGCNI-FORWARD -o wgcni0 -j ACCEPT\n"));

	/* Twice: same rules, one jump each. */
	snprintf(before, sizeof(before), "%s", sh("iptables-legacy-save | grep -v '^#'; "
						  "ip6tables-legacy-save | grep -v '^#'"));
	assert_int_equal(fw_install(&cfg), 0);
	assert_string_equal(sh("iptables-legacy-save | grep -v '^#'; "
			       "ip6tables-legacy-save | grep -v '^#'"), before);

	assert_int_equal(fw_remove(), 0);
	assert_null(strstr(sh("iptables-legacy-save; ip6tables-legacy-save"), "WGCNI"));
	assert_int_equal(fw_remove(), 0);
}

/* Reinstall with another config replaces the chain contents. */
static void test_reconfigure(void **state)
{
	struct ipnet subs[2], cidrs[3];
	struct fw_config cfg;

	config(&cfg, subs, cidrs);
	assert_int_equal(fw_install(&cfg), 0);
	cfg.masquerade = false;
	cfg.ifname = "wgcni1";
	cfg.n_node_subnets = 1; /* IPv4 only */
	cfg.n_cluster_cidrs = 1;
	assert_int_equal(fw_install(&cfg), 0);
	assert_string_equal(sh("iptables-legacy -t nat -S WGCNI-POSTROUTING"),
			    "-N WGCNI-POSTROUTING\n"
			    "-A WGCNI-POSTROUTING -s 10.100.3.0/24 -d 10.100.0.0/16 -j RETURN\n");
	assert_string_equal(sh("iptables-legacy -S WGCNI-FORWARD"),
			    "-N WGCNI-FORWARD\n"
			    "-A WGCNI-FORWARD -i wgcni1 -j ACCEPT\n"
			    "-A WGCNI-FORWARD -o wgcni1 -j ACCEPT\n");
	assert_string_equal(sh("iptables-legacy -S FORWARD | grep -c WGCNI-FORWARD"), "1\n");
	assert_string_equal(sh("iptables-legacy -t nat -S POSTROUTING | grep -c WGCNI"), "1\n");
	/* No IPv6 in the config: the IPv6 nat chain holds nothing. */
	assert_string_equal(sh("ip6tables-legacy -t nat -S WGCNI-POSTROUTING"),
			    "-N WGCNI-POSTROUTING\n");
	assert_int_equal(fw_remove(), 0);
}

/* Others' rules stay; ours go first in the built-in chains. */
static void test_foreign_rules_untouched(void **state)
{
	struct ipnet subs[2], cidrs[3];
	struct fw_config cfg;

	sh("iptables-legacy -A FORWARD -s 192.0.2.0/24 -j DROP && "
	   "iptables-legacy -t nat -A POSTROUTING -o eth9 -j MASQUERADE && "
	   "iptables-legacy -N OTHER");
	config(&cfg, subs, cidrs);
	assert_int_equal(fw_install(&cfg), 0);
	assert_string_equal(sh("iptables-legacy -S FORWARD"),
			    "-P FORWARD ACCEPT\n"
			    "-A FORWARD -j WGCNI-FORWARD\n"
			    "-A FORWARD -s 192.0.2.0/24 -j DROP\n");
	assert_int_equal(fw_remove(), 0);
	assert_string_equal(sh("iptables-legacy -S FORWARD"),
			    "-P FORWARD ACCEPT\n-A FORWARD -s 192.0.2.0/24 -j DROP\n");
	assert_string_equal(sh("iptables-legacy -t nat -S POSTROUTING"),
			    "-P POSTROUTING ACCEPT\n-A POSTROUTING -o eth9 -j MASQUERADE\n");
	assert_non_null(strstr(sh("iptables-legacy -S"), "-N OTHER\n"));
	sh("iptables-legacy -F FORWARD && iptables-legacy -t nat -F POSTROUTING && "
	   "iptables-legacy -X OTHER");
}

static void test_invalid_config(void **state)
{
	struct ipnet subs[2], cidrs[3];
	struct fw_config cfg;

	assert_int_equal(fw_install(NULL), -EINVAL);
	config(&cfg, subs, cidrs);
	cfg.ifname = "";
	assert_int_equal(fw_install(&cfg), -EINVAL);
	cfg.ifname = "an-interface-name-too-long";
	assert_int_equal(fw_install(&cfg), -EINVAL);
	config(&cfg, subs, cidrs);
	subs[0].prefixlen = 33;
	assert_int_equal(fw_install(&cfg), -EINVAL);
	assert_null(strstr(sh("iptables-legacy-save"), "WGCNI"));
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* fw_install waits for the xtables lock another process holds. */
static void test_waits_for_lock(void **state)
{
	struct ipnet subs[2], cidrs[3];
	struct fw_config cfg;
	int p[2], status;
	long start;
	pid_t pid;
	char c;

	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open("/run/xtables.lock", O_CREAT | O_RDWR, 0600);

		if (fd < 0 || flock(fd, LOCK_EX) < 0)
			_exit(1);
		if (write(p[1], "x", 1) != 1)
			_exit(1);
		usleep(400 * 1000); /* the hold time under test, not a readiness wait */
		_exit(0);
	}
	close(p[1]);
	assert_int_equal(read(p[0], &c, 1), 1); /* the child holds the lock now */
	close(p[0]);
	config(&cfg, subs, cidrs);
	start = now_ms();
	assert_int_equal(fw_install(&cfg), 0);
	assert_true(now_ms() - start >= 300);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(fw_remove(), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_remove_when_absent),
		cmocka_unit_test(test_install_idempotent_remove),
		cmocka_unit_test(test_reconfigure),
		cmocka_unit_test(test_foreign_rules_untouched),
		cmocka_unit_test(test_invalid_config),
		cmocka_unit_test(test_waits_for_lock),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
