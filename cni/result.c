/*
 * The ADD result, in the configuration's cniVersion:
 *   0.3.0, 0.3.1, 0.4.0: ips[] carry "version": "4" | "6";
 *   1.0.0: no "version";
 *   1.1.0: interfaces[] also carry "mtu".
 * The interface has no hardware address; we report the zero MAC because
 * podman refuses a sandbox interface without one. Chained after another
 * plugin, its prevResult is kept and our interface, addresses and routes are
 * appended with indices into the combined interfaces[].
 */
#include "cni.h"

#include "ipnet.h"

#include <errno.h>
#include <sys/socket.h>

static json_t *result_array(json_t *res, const char *key)
{
	json_t *a = json_object_get(res, key);

	if (json_is_array(a))
		return a;
	a = json_array();
	if (!a || json_object_set_new(res, key, a))
		return NULL;
	return a;
}

int cni_result_build(const struct cni_conf *conf, const struct cni_env *env,
		     unsigned int mtu, const struct ipnet *addrs, size_t n_addrs,
		     const struct ipaddr *gateway, json_t **out, struct cni_err *e)
{
	static const char *const defaults[] = { "0.0.0.0/0", "::/0" };
	json_t *res, *ifaces, *ips, *routes, *iface, *ip;
	char buf[IPNET_STRLEN];
	bool family_seen[2] = { false, false };
	size_t idx;
	int ret = -ENOMEM;

	res = conf->prev_result ? json_deep_copy(conf->prev_result) : json_object();
	if (!res)
		goto err;
	if (json_object_set_new(res, "cniVersion", json_string(cni_version_name(conf->version))))
		goto err_free_res;
	ifaces = result_array(res, "interfaces");
	ips = result_array(res, "ips");
	routes = result_array(res, "routes");
	if (!ifaces || !ips || !routes)
		goto err_free_res;

	idx = json_array_size(ifaces);
	iface = json_pack("{s:s, s:s, s:s}", "name", env->ifname, "mac", CNI_ZERO_MAC,
			  "sandbox", env->netns);
	if (!iface)
		goto err_free_res;
	if (conf->version >= CNI_V110)
		json_object_set_new(iface, "mtu", json_integer(mtu));
	if (json_array_append_new(ifaces, iface))
		goto err_free_res;

	for (size_t i = 0; i < n_addrs; i++) {
		bool v6 = addrs[i].addr.family == AF_INET6;

		ip = json_pack("{s:s, s:I}", "address", ipnet_format(&addrs[i], buf),
			       "interface", (json_int_t)idx);
		if (!ip)
			goto err_free_res;
		if (conf->version < CNI_V100)
			json_object_set_new(ip, "version", json_string(v6 ? "6" : "4"));
		if (gateway && gateway->family == addrs[i].addr.family)
			json_object_set_new(ip, "gateway",
					    json_string(ipaddr_format(gateway, buf)));
		if (json_array_append_new(ips, ip))
			goto err_free_res;
		family_seen[v6] = true;
	}
	for (size_t f = 0; f < 2; f++) {
		if (family_seen[f] &&
		    json_array_append_new(routes, json_pack("{s:s}", "dst", defaults[f])))
			goto err_free_res;
	}
	if (conf->dns && !json_object_get(res, "dns") &&
	    json_object_set_new(res, "dns", json_deep_copy(conf->dns)))
		goto err_free_res;
	*out = res;
	return 0;

err_free_res:
	json_decref(res);
err:
	return cni_fail(e, CNI_ERR_INTERNAL, ret, "cannot build the result", "out of memory");
}
