/*
 * External peers: external add|list|delete, locations.
 *
 * `external add' prints the wg-quick configuration of the external machine.
 * With --public-key the machine keeps its own key and the PrivateKey line is
 * left for its owner to fill; with --generate-key the pair is made here and
 * the private key goes to stdout only, never to the cluster manager.
 */
#include "ctl.h"
#include "key.h"
#include "pjson.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CM_SERVICE "wgcni.cluster.v1.ClusterService"

/* "a,b" -> "a, b" (wg-quick's list style). */
static void ext_list_str(const char *s, char *out, size_t outlen)
{
	size_t k = 0;

	for (; s && *s && k + 3 < outlen; s++) {
		out[k++] = *s;
		if (*s == ',')
			out[k++] = ' ';
	}
	out[k] = '\0';
}

static void ext_print_config(const Wgcni__Cluster__V1__ExternalPeer *e, const char *priv)
{
	const Wgcni__Cluster__V1__Gateway *g = e->gateway;
	char addrs[256], allowed[1024];

	ext_list_str(e->address, addrs, sizeof(addrs));
	fmt_join(g->allowed_ips, g->n_allowed_ips, ", ", allowed, sizeof(allowed));
	printf("# wgcni external peer %s through gateway %s%s%s\n"
	       "[Interface]\n"
	       "Address = %s\n"
	       "PrivateKey = %s\n"
	       "\n"
	       "[Peer]\n"
	       "PublicKey = %s\n"
	       "Endpoint = %s\n"
	       "AllowedIPs = %s\n"
	       "PersistentKeepalive = 25\n",
	       e->name, g->name, *e->location ? ", location " : "", e->location, addrs,
	       priv ? priv : "", g->public_key, g->endpoint, allowed);
}

static int ext_add(struct ctl *ctl, const char *name)
{
	Wgcni__Cluster__V1__RegisterExternalPeerRequest req =
		WGCNI__CLUSTER__V1__REGISTER_EXTERNAL_PEER_REQUEST__INIT;
	Wgcni__Cluster__V1__RegisterExternalPeerResponse *resp = NULL;
	uint8_t priv[WG_KEY_LEN], pub[WG_KEY_LEN];
	char priv_b64[WG_KEY_B64_LEN + 1] = "", pub_b64[WG_KEY_B64_LEN + 1];
	char why[128];
	int ret = CTL_USAGE;

	if (!!ctl->ext_public_key == ctl->ext_generate) {
		ctl_errorx("external add: give exactly one of --public-key KEY and --generate-key");
		return CTL_USAGE;
	}
	if (ctl->ext_public_key) {
		if (key_from_base64(pub, ctl->ext_public_key, why, sizeof(why))) {
			ctl_errorx("external add: invalid --public-key `%.64s': %s",
				   ctl->ext_public_key, why);
			return CTL_USAGE;
		}
	} else if (key_generate_private(priv) || key_public_from_private(pub, priv)) {
		ctl_errorx("external add: generating a key pair failed");
		ret = CTL_ERR;
		goto out;
	}
	key_to_base64(pub_b64, pub);
	req.name = (char *)name;
	req.public_key = pub_b64;
	req.location = (char *)(ctl->ext_location ? ctl->ext_location : "");
	ret = CTL_ERR;
	if (ctl_call(ctl, CTL_CLUSTER_MANAGER, CM_SERVICE, "RegisterExternalPeer", &req.base,
		     &wgcni__cluster__v1__register_external_peer_response__descriptor,
		     (ProtobufCMessage **)&resp, NULL, NULL, 0))
		goto out;
	if (!resp->external_peer || !resp->external_peer->gateway) {
		ctl_errorx("RegisterExternalPeer: the cluster manager sent no gateway");
		goto out_free;
	}
	if (ctl->ext_generate)
		key_to_base64(priv_b64, priv);
	if (ctl->output == CTL_OUTPUT_JSON) {
		json_t *j = pjson_encode(&resp->external_peer->base);

		if (j && ctl->ext_generate &&
		    json_object_set_new(j, "privateKey", json_string(priv_b64))) {
			json_decref(j);
			j = NULL;
		}
		ret = ctl_print_json(j);
	} else {
		ext_print_config(resp->external_peer, ctl->ext_generate ? priv_b64 : NULL);
		ret = CTL_OK;
	}
out_free:
	protobuf_c_message_free_unpacked(&resp->base, NULL);
out:
	key_wipe(priv, sizeof(priv));
	key_wipe(priv_b64, sizeof(priv_b64));
	return ret;
}

static int ext_list(struct ctl *ctl)
{
	Wgcni__Cluster__V1__ListExternalPeersRequest req =
		WGCNI__CLUSTER__V1__LIST_EXTERNAL_PEERS_REQUEST__INIT;
	Wgcni__Cluster__V1__ListExternalPeersResponse *resp = NULL;
	struct fmt_table *t;
	int ret = CTL_ERR;

	if (ctl_call(ctl, CTL_CLUSTER_MANAGER, CM_SERVICE, "ListExternalPeers", &req.base,
		     &wgcni__cluster__v1__list_external_peers_response__descriptor,
		     (ProtobufCMessage **)&resp, NULL, NULL, 0))
		return CTL_ERR;
	if (ctl->output == CTL_OUTPUT_JSON) {
		ret = ctl_print_message(&resp->base);
		goto out;
	}
	t = fmt_table_new("NAME", "ADDRESS", "GATEWAY", "LOCATION", "ENDPOINT", "PUBLIC KEY",
			  NULL);
	ret = t ? 0 : -ENOMEM;
	for (size_t i = 0; i < resp->n_external_peers && !ret; i++) {
		const Wgcni__Cluster__V1__ExternalPeer *e = resp->external_peers[i];
		const Wgcni__Cluster__V1__Gateway *g = e->gateway;

		ret = fmt_table_add(t, e->name, e->address, g ? g->name : "-",
				    *e->location ? e->location : "-", g ? g->endpoint : "-",
				    e->public_key);
	}
	ret = ctl_print_table(t, ret, "external peers");
out:
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return ret;
}

static int ext_delete(struct ctl *ctl, const char *name)
{
	Wgcni__Cluster__V1__DeleteExternalPeerRequest req =
		WGCNI__CLUSTER__V1__DELETE_EXTERNAL_PEER_REQUEST__INIT;
	Wgcni__Cluster__V1__DeleteExternalPeerResponse *resp = NULL;
	struct rpc_error err;
	char why[1024];
	int ret;

	req.name = (char *)name;
	ctl->quiet = true;
	ret = ctl_call(ctl, CTL_CLUSTER_MANAGER, CM_SERVICE, "DeleteExternalPeer", &req.base,
		       &wgcni__cluster__v1__delete_external_peer_response__descriptor,
		       (ProtobufCMessage **)&resp, &err, why, sizeof(why));
	ctl->quiet = false;
	if (ret == -EREMOTEIO && err.code == CONNECT_NOT_FOUND) {
		ctl_errorx("external peer `%s' not found on the cluster manager at `%s'", name,
			   ctl->cm_url);
		return CTL_ERR;
	}
	if (ret) {
		ctl_errorx("DeleteExternalPeer `%s': %s", name, why);
		return CTL_ERR;
	}
	if (ctl->output == CTL_OUTPUT_JSON)
		ret = ctl_print_message(&resp->base);
	else
		printf("external peer `%s' deleted\n", name);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return ret;
}

int cmd_external(struct ctl *ctl, int argc, char **argv)
{
	if (!strcmp(argv[0], "add") && argc == 2)
		return ext_add(ctl, argv[1]);
	if (!strcmp(argv[0], "list") && argc == 1)
		return ext_list(ctl);
	if (!strcmp(argv[0], "delete") && argc == 2)
		return ext_delete(ctl, argv[1]);
	ctl_errorx("usage: " CTL_PROG " external add NAME (--public-key KEY | --generate-key)"
		   " [--location L] | external list | external delete NAME");
	return CTL_USAGE;
}

int cmd_locations(struct ctl *ctl, int argc, char **argv)
{
	Wgcni__Cluster__V1__ListLocationsRequest req =
		WGCNI__CLUSTER__V1__LIST_LOCATIONS_REQUEST__INIT;
	Wgcni__Cluster__V1__ListLocationsResponse *resp = NULL;
	struct fmt_table *t;
	int ret;

	if (ctl_call(ctl, CTL_CLUSTER_MANAGER, CM_SERVICE, "ListLocations", &req.base,
		     &wgcni__cluster__v1__list_locations_response__descriptor,
		     (ProtobufCMessage **)&resp, NULL, NULL, 0))
		return CTL_ERR;
	if (ctl->output == CTL_OUTPUT_JSON) {
		ret = ctl_print_message(&resp->base);
		goto out;
	}
	t = fmt_table_new("LOCATION", NULL);
	ret = t ? 0 : -ENOMEM;
	for (size_t i = 0; i < resp->n_locations && !ret; i++)
		ret = fmt_table_add(t, resp->locations[i]);
	ret = ctl_print_table(t, ret, "locations");
out:
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return ret;
}
