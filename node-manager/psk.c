/*
 * Preshared keys (--preshared-key-file): one secret shared by every node,
 * and per peering a key derived from it and the two public keys (key.c),
 * so both ends of a node-to-node or container-to-node peering agree on it
 * without it ever crossing the network. Nodes holding another secret derive
 * other keys and never complete a handshake with us.
 */
#include "nm.h"

#include "log.h"

#include <errno.h>
#include <string.h>

int nm_psk_load(struct nm *nm)
{
	const char *why;
	int ret;

	nm->has_psk = false;
	if (!nm->cfg.psk_file)
		return 0;
	ret = key_load(nm->cfg.psk_file, nm->psk_secret);
	if (ret == 0) {
		nm->has_psk = true;
		return 0;
	}
	if (ret == -EPERM)
		why = "mode looser than 0600 (chmod 600 it)";
	else if (ret == -EINVAL)
		why = "not 44 characters of base64 decoding to 32 bytes (wg genpsk makes one)";
	else
		why = strerror(-ret);
	log_error("loading --preshared-key-file failed", "path=%s reason=%s",
		  nm->cfg.psk_file, why);
	return ret;
}

void nm_psk_wipe(struct nm *nm)
{
	key_wipe(nm->psk_secret, sizeof(nm->psk_secret));
	nm->has_psk = false;
}

bool nm_psk(const struct nm *nm, const uint8_t peer_key[static WG_KEY_LEN],
	    uint8_t psk[static WG_KEY_LEN])
{
	if (nm->has_psk &&
	    key_psk_derive(psk, nm->psk_secret, nm->public_key, peer_key) == 0)
		return true;
	key_wipe(psk, WG_KEY_LEN);
	return false;
}
