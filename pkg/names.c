#include "names.h"
#include "key.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>

#include <net/if.h>
#include <string.h>

static bool name_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

const char *name_container_id_check(const char *s)
{
	size_t len = s ? strlen(s) : 0;

	if (!len)
		return "must not be empty";
	if (len > NAME_CONTAINER_ID_MAX)
		return "longer than 256 characters";
	if (!name_alnum(s[0]))
		return "must start with a letter or a digit";
	for (size_t i = 1; i < len; i++)
		if (!name_alnum(s[i]) && s[i] != '_' && s[i] != '.' && s[i] != '-')
			return "only letters, digits, '_', '.' and '-' are allowed";
	return NULL;
}

const char *name_ifname_check(const char *s)
{
	size_t len = s ? strlen(s) : 0;

	if (!len)
		return "must not be empty";
	if (len >= IFNAMSIZ)
		return "longer than 15 characters";
	if (!strcmp(s, ".") || !strcmp(s, ".."))
		return "must not be \".\" or \"..\"";
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '/' || c == ':' || c <= ' ' || c >= 0x7f)
			return "no '/', ':', white space or control characters";
	}
	return NULL;
}

const char *name_node_check(const char *s)
{
	size_t len = s ? strlen(s) : 0;

	if (!len)
		return "must not be empty";
	if (len > NAME_NODE_MAX)
		return "longer than 253 characters";
	for (size_t i = 0; i < len; i++)
		if (!name_alnum(s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
			return "only letters, digits, '.', '_' and '-' are allowed";
	return NULL;
}

int name_wg_device(const char *containerid, const char *ifname, char out[static 16])
{
	uint8_t hash[crypto_generichash_BYTES_MIN];
	crypto_generichash_state st;

	if (key_init())
		return -EIO;
	/* The NUL separates the two, so ("ab","c") and ("a","bc") differ. */
	if (crypto_generichash_init(&st, NULL, 0, sizeof(hash)) ||
	    crypto_generichash_update(&st, (const uint8_t *)containerid,
				      strlen(containerid) + 1) ||
	    crypto_generichash_update(&st, (const uint8_t *)ifname, strlen(ifname)) ||
	    crypto_generichash_final(&st, hash, sizeof(hash)))
		return -EIO;
	snprintf(out, 16, "wgc%02x%02x%02x%02x%02x%02x", hash[0], hash[1], hash[2], hash[3],
		 hash[4], hash[5]);
	return 0;
}
