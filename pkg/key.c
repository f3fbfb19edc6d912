#include "key.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

int key_init(void)
{
	/* sodium_init() is itself idempotent and thread-safe: 0 first time,
	 * 1 after, -1 on failure. */
	return sodium_init() < 0 ? -EIO : 0;
}

int key_generate_private(uint8_t priv[static WG_KEY_LEN])
{
	int ret = key_init();

	if (ret < 0)
		return ret;
	randombytes_buf(priv, WG_KEY_LEN);
	/* Curve25519 clamping, as wg genkey does. */
	priv[0] &= 248;
	priv[31] = (priv[31] & 127) | 64;
	return 0;
}

int key_public_from_private(uint8_t pub[static WG_KEY_LEN],
			    const uint8_t priv[static WG_KEY_LEN])
{
	int ret = key_init();

	if (ret < 0)
		return ret;
	if (crypto_scalarmult_base(pub, priv) != 0)
		return -EINVAL;
	return 0;
}

void key_to_base64(char b64[static WG_KEY_B64_LEN + 1],
		   const uint8_t key[static WG_KEY_LEN])
{
	sodium_bin2base64(b64, WG_KEY_B64_LEN + 1, key, WG_KEY_LEN,
			  sodium_base64_VARIANT_ORIGINAL);
}

/*
 * libsodium 1.0.18's decoder takes some bytes with the high bit set for
 * alphabet characters, so check the alphabet first: every character in
 * A-Z a-z 0-9 + / or a trailing '='. No early exit, no lookup table: the
 * time taken does not depend on the key.
 */
static bool alphabet_ok(const char *b64, size_t len)
{
	unsigned int bad = 0, pad = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned int c = (unsigned char)b64[i];
		unsigned int ok = (c - 'A' < 26u) | (c - 'a' < 26u) | (c - '0' < 10u) |
				  (c == '+') | (c == '/');

		/* '=' only as padding: once seen, nothing else may follow */
		bad |= pad & (c != '=');
		pad |= c == '=';
		bad |= !ok & (c != '=');
	}
	return !bad;
}

int key_from_base64(uint8_t key[static WG_KEY_LEN], const char *b64,
		    char *err, size_t errlen)
{
	/* 44 characters without padding would decode to 33 bytes: leave room
	 * to report it rather than fail on the buffer size. */
	uint8_t buf[WG_KEY_LEN + 2];
	size_t len, binlen = 0;
	char scratch[1];
	int ret = -EINVAL;

	if (!err) {
		err = scratch;
		errlen = sizeof(scratch);
	}
	if (!b64) {
		snprintf(err, errlen, "key is missing");
		return -EINVAL;
	}
	len = strlen(b64);
	if (len != WG_KEY_B64_LEN) {
		snprintf(err, errlen, "key must be %d base64 characters, got %zu",
			 WG_KEY_B64_LEN, len);
		return -EINVAL;
	}
	if (!alphabet_ok(b64, len) ||
	    sodium_base642bin(buf, sizeof(buf), b64, len, NULL, &binlen, NULL,
			      sodium_base64_VARIANT_ORIGINAL) != 0) {
		snprintf(err, errlen, "key is not valid base64");
		goto out_wipe;
	}
	if (binlen != WG_KEY_LEN) {
		snprintf(err, errlen, "key decodes to %zu bytes, want %d", binlen,
			 WG_KEY_LEN);
		goto out_wipe;
	}
	memcpy(key, buf, WG_KEY_LEN);
	ret = 0;
out_wipe:
	sodium_memzero(buf, sizeof(buf));
	return ret;
}

bool key_is_valid_base64(const char *b64)
{
	uint8_t key[WG_KEY_LEN];
	bool ok = key_from_base64(key, b64, NULL, 0) == 0;

	sodium_memzero(key, sizeof(key));
	return ok;
}

bool key_is_zero(const uint8_t key[static WG_KEY_LEN])
{
	return sodium_is_zero(key, WG_KEY_LEN) == 1;
}

void key_wipe(void *buf, size_t len)
{
	if (buf)
		sodium_memzero(buf, len);
}

static int read_key_file(const char *path, uint8_t priv[static WG_KEY_LEN])
{
	/* base64, optional trailing whitespace (wg genkey adds "\n"); anything
	 * longer than this is not a key file. */
	char buf[WG_KEY_B64_LEN + 8];
	size_t len = 0;
	struct stat st;
	ssize_t n;
	int fd, ret;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		goto out_close;
	}
	ret = -EINVAL;
	if (!S_ISREG(st.st_mode))
		goto out_close;
	/* A private key others can read is a leaked key: refuse it rather
	 * than silently tighten it. */
	ret = -EPERM;
	if (st.st_mode & (S_IRWXG | S_IRWXO))
		goto out_close;
	while (len < sizeof(buf)) {
		n = read(fd, buf + len, sizeof(buf) - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			goto out_wipe;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	ret = -EINVAL;
	if (len == sizeof(buf))
		goto out_wipe;
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' ||
			   buf[len - 1] == ' ' || buf[len - 1] == '\t'))
		len--;
	buf[len] = '\0';
	ret = key_from_base64(priv, buf, NULL, 0);
out_wipe:
	sodium_memzero(buf, sizeof(buf));
out_close:
	close(fd);
	return ret;
}

static int write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int fsync_parent(const char *path)
{
	char copy[PATH_MAX];
	int fd, ret = 0;

	if (strlen(path) >= sizeof(copy))
		return -ENAMETOOLONG;
	strcpy(copy, path);
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

/*
 * Write a fresh key to a temporary, fsync it, then move it into place. Without
 * replace nothing is replaced: if another process created the file meanwhile,
 * -EEXIST tells the caller to load that one instead, so two racing starters
 * end up with the same key. With replace (rotation) the rename swaps the old
 * key out atomically: a crash leaves either the old or the new one.
 */
static int create_key_file(const char *path, uint8_t priv[static WG_KEY_LEN], bool replace)
{
	char tmp[PATH_MAX], b64[WG_KEY_B64_LEN + 2];
	uint32_t rnd;
	int fd = -1, ret;

	for (int tries = 0;; tries++) {
		rnd = randombytes_random();
		ret = -ENAMETOOLONG;
		if (snprintf(tmp, sizeof(tmp), "%s.tmp.%08x", path, rnd) >= (int)sizeof(tmp))
			return ret;
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0)
			break;
		ret = -errno;
		if (ret != -EEXIST || tries == 8)
			return ret;
	}
	if (fchmod(fd, 0600) < 0) {
		ret = -errno;
		goto err_unlink;
	}
	ret = key_generate_private(priv);
	if (ret < 0)
		goto err_unlink;
	key_to_base64(b64, priv);
	b64[WG_KEY_B64_LEN] = '\n';
	b64[WG_KEY_B64_LEN + 1] = '\0';
	ret = write_all(fd, b64, WG_KEY_B64_LEN + 1);
	sodium_memzero(b64, sizeof(b64));
	if (ret < 0)
		goto err_wipe;
	if (fsync(fd) < 0) {
		ret = -errno;
		goto err_wipe;
	}
	if (close(fd) < 0) {
		ret = -errno;
		fd = -1;
		goto err_wipe;
	}
	fd = -1;
	if (replace) {
		if (rename(tmp, path) < 0) {
			ret = -errno;
			goto err_wipe;
		}
	} else if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) < 0) {
		ret = -errno;
		/* Filesystems without RENAME_NOREPLACE: link() also refuses to
		 * replace an existing file. */
		if (ret == -EINVAL || ret == -ENOSYS) {
			ret = link(tmp, path) < 0 ? -errno : 0;
			unlink(tmp);
		}
		if (ret < 0)
			goto err_wipe;
	}
	ret = fsync_parent(path);
	if (ret < 0)
		goto err_wipe_final;
	return 0;

err_wipe_final:
	/* Leave the renamed file: it is complete, only its directory entry
	 * may not be durable yet. */
	sodium_memzero(priv, WG_KEY_LEN);
	return ret;
err_wipe:
	sodium_memzero(priv, WG_KEY_LEN);
err_unlink:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return ret;
}

enum key_how { KEY_READ, KEY_READ_OR_CREATE, KEY_REPLACE };

static int key_file(const char *path, uint8_t priv[static WG_KEY_LEN], enum key_how how)
{
	int ret;

	if (!path || !*path)
		return -EINVAL;
	ret = key_init();
	if (ret < 0)
		return ret;
	/* create_key_file wipes priv itself when it fails. */
	if (how == KEY_REPLACE)
		return create_key_file(path, priv, true);
	ret = read_key_file(path, priv);
	if (ret == -ENOENT && how == KEY_READ_OR_CREATE) {
		ret = create_key_file(path, priv, false);
		if (ret == -EEXIST)
			ret = read_key_file(path, priv);
	}
	if (ret < 0)
		sodium_memzero(priv, WG_KEY_LEN);
	return ret;
}

int key_load_or_create(const char *path, uint8_t priv[static WG_KEY_LEN])
{
	return key_file(path, priv, KEY_READ_OR_CREATE);
}

int key_load(const char *path, uint8_t priv[static WG_KEY_LEN])
{
	return key_file(path, priv, KEY_READ);
}

int key_psk_derive(uint8_t psk[static WG_KEY_LEN], const uint8_t secret[static WG_KEY_LEN],
		   const uint8_t a[static WG_KEY_LEN], const uint8_t b[static WG_KEY_LEN])
{
	uint8_t msg[2 * WG_KEY_LEN];
	bool a_first = memcmp(a, b, WG_KEY_LEN) <= 0; /* public keys: no timing concern */
	int ret = key_init();

	if (ret < 0)
		return ret;
	memcpy(msg, a_first ? a : b, WG_KEY_LEN);
	memcpy(msg + WG_KEY_LEN, a_first ? b : a, WG_KEY_LEN);
	ret = crypto_generichash(psk, WG_KEY_LEN, msg, sizeof(msg), secret, WG_KEY_LEN) ? -EIO : 0;
	sodium_memzero(msg, sizeof(msg));
	if (ret < 0)
		sodium_memzero(psk, WG_KEY_LEN);
	return ret;
}

int key_replace(const char *path, uint8_t priv[static WG_KEY_LEN])
{
	return key_file(path, priv, KEY_REPLACE);
}
