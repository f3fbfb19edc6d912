/*
 * The cluster configuration flags the daemon and `migrate` share: cluster
 * CIDRs, node prefix lengths, the etcd prefix. Each function writes a
 * message for the user into err on failure.
 */
#ifndef WGCNI_CM_CONFIG_H
#define WGCNI_CM_CONFIG_H

#include "state.h"

#include <stdbool.h>
#include <stddef.h>

/* --cluster-cidr ARG (comma-separated CIDRs, at most one per family): the
 * first call replaces the default (*given tells). 0 or -EINVAL/-ENOMEM. */
int cm_config_cidrs(struct cm_config *cfg, bool *given, const char *arg, char *err,
		    size_t errlen);
/* --external-cidr ARG (comma-separated, repeatable): appended. */
int cm_config_external_cidrs(struct cm_config *cfg, const char *arg, char *err, size_t errlen);
/* --node-prefix-length(-v6) ARG for family f. */
int cm_config_prefix_length(struct cm_config *cfg, enum cm_family f, const char *arg, char *err,
			    size_t errlen);
/* Every family's subnets fit its CIDR, with a first host address for the
 * node's interface. */
int cm_config_check(const struct cm_config *cfg, char *err, size_t errlen);
/* --etcd-prefix ARG into out: starts with '/', trailing slashes dropped
 * ("/": the root, ""). 0 or -EINVAL. */
int cm_config_etcd_prefix(const char *arg, char *out, size_t outlen, char *err, size_t errlen);

/* P/config's value (store_etcd_keys.h), compact JSON in a fixed order:
 * {"clusterCidrs":[..],"nodePrefixLength":N,"nodePrefixLengthV6":M,
 * "externalCidrs":[..]}. Malloc'd, NULL with errno (ENOMEM). */
char *cm_config_etcd_json(const struct cm_config *cfg);

#endif
