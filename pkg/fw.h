/*
 * Firewall through libiptc (legacy xtables tables, the ones libiptc speaks),
 * only in chains wgcni owns, each jumped to once from a built-in chain:
 *   filter FORWARD     -> WGCNI-FORWARD      (accept to/from the node interface)
 *   nat    POSTROUTING -> WGCNI-POSTROUTING  (masquerade node subnet -> outside
 *                                             the cluster CIDRs, if enabled)
 * IPv4 through libip4tc, IPv6 through libip6tc. Commits hold the xtables
 * lock (/run/xtables.lock, as iptables does). Installing is idempotent: the
 * chains are flushed and refilled, the jumps added only when missing.
 */
#ifndef WGCNI_FW_H
#define WGCNI_FW_H

#include "ipnet.h"

#include <stdbool.h>
#include <stddef.h>

#define FW_CHAIN_FORWARD "WGCNI-FORWARD"
#define FW_CHAIN_POSTROUTING "WGCNI-POSTROUTING"

struct fw_config {
	const char *ifname;               /* node interface */
	const struct ipnet *node_subnets; /* one per family */
	size_t n_node_subnets;
	const struct ipnet *cluster_cidrs;
	size_t n_cluster_cidrs;
	bool masquerade;
};

/*
 * The tables are the legacy ones: inspect with `iptables-legacy -S` /
 * `iptables-legacy-save` (and ip6tables-legacy), not iptables-nft.
 * Errors: -EINVAL (config), -ETIMEDOUT (xtables lock busy for 10 s),
 * -ENOPROTOOPT/-ENOENT when the kernel has no ip_tables (module not
 * loadable; logged with libiptc's message), other negative errno.
 * IPv6 tables failing is an error only when the config has IPv6 prefixes.
 */
int fw_install(const struct fw_config *cfg);
/*
 * What fw_install would change, without changing anything (no lock, no
 * commit): 0 when everything is in place, 1 when install would change
 * something (what then names the first difference), negative errno.
 */
int fw_check(const struct fw_config *cfg, char *what, size_t len);
/* Remove jumps and chains of both families; 0 when already gone. */
int fw_remove(void);

#endif
