/*
 * WireGuard keys (Curve25519, 32 bytes) and their base64 form: exactly 44
 * characters, standard alphabet, one '=' of padding, decoding to exactly 32
 * bytes. Callers wipe private keys with key_wipe() when done.
 */
#ifndef WGCNI_KEY_H
#define WGCNI_KEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WG_KEY_LEN 32
#define WG_KEY_B64_LEN 44 /* without the terminating NUL */

/* sodium_init() once; 0 or -EIO. Safe to call many times and from threads. */
int key_init(void);
/* Fresh private key (clamped as wg genkey does). 0 or negative errno. */
int key_generate_private(uint8_t priv[static WG_KEY_LEN]);
/* 0 or negative errno. */
int key_public_from_private(uint8_t pub[static WG_KEY_LEN],
			    const uint8_t priv[static WG_KEY_LEN]);
/* b64 must hold WG_KEY_B64_LEN + 1 bytes. */
void key_to_base64(char b64[static WG_KEY_B64_LEN + 1],
		   const uint8_t key[static WG_KEY_LEN]);
/* 0, or -EINVAL with a reason in err (if non-NULL): wrong length, not
 * base64, wrong decoded length. Constant time over the key bytes. */
int key_from_base64(uint8_t key[static WG_KEY_LEN], const char *b64,
		    char *err, size_t errlen);
bool key_is_valid_base64(const char *b64);
bool key_is_zero(const uint8_t key[static WG_KEY_LEN]);
void key_wipe(void *buf, size_t len);

/*
 * Private key file: load it, or create it (mode 0600, O_EXCL, fsync'd,
 * written to a temporary and renamed) when it does not exist. Refuses a file
 * readable by group or others (-EPERM). 0 or negative errno.
 */
int key_load_or_create(const char *path, uint8_t priv[static WG_KEY_LEN]);
/* Load an existing key file only (-ENOENT when there is none). */
int key_load(const char *path, uint8_t priv[static WG_KEY_LEN]);
/* Rotation: a fresh key into priv and atomically over the file (same checks
 * and modes as creating it). On error the file keeps the old key. */
int key_replace(const char *path, uint8_t priv[static WG_KEY_LEN]);

/*
 * Preshared key of the peering between a and b (public keys):
 * BLAKE2b-256(key = secret, message = a and b sorted bytewise, concatenated),
 * so both ends derive the same key. The caller wipes psk. 0 or -EIO.
 */
int key_psk_derive(uint8_t psk[static WG_KEY_LEN], const uint8_t secret[static WG_KEY_LEN],
		   const uint8_t a[static WG_KEY_LEN], const uint8_t b[static WG_KEY_LEN]);

#endif
