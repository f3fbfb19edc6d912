/* The node's key pair, kept in state_dir/private.key. */
#include "nm.h"
#include "log.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

void nm_key_path(const struct nm *nm, char path[static PATH_MAX])
{
	snprintf(path, PATH_MAX, "%s/private.key", nm->cfg.state_dir);
}

int nm_key_load(struct nm *nm, bool create)
{
	char path[PATH_MAX];
	int ret;

	nm_key_path(nm, path);
	if (create)
		ret = key_load_or_create(path, nm->private_key);
	else
		ret = key_load(path, nm->private_key);
	if (ret == -ENOENT && !create)
		return ret; /* `plan' says it would create it */
	if (ret < 0) {
		log_error(create ? "loading private key failed" : "reading private key failed",
			  "path=%s err=%s", path, strerror(-ret));
		return ret;
	}
	return nm_key_set(nm, nm->private_key);
}

int nm_key_set(struct nm *nm, const uint8_t priv[static WG_KEY_LEN])
{
	int ret;

	if (priv != nm->private_key)
		memcpy(nm->private_key, priv, WG_KEY_LEN);
	ret = key_public_from_private(nm->public_key, nm->private_key);
	if (ret < 0)
		return ret;
	key_to_base64(nm->public_b64, nm->public_key);
	return 0;
}
