#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "key.h"

static void hex_to_key(uint8_t key[static WG_KEY_LEN], const char *hex)
{
	for (int i = 0; i < WG_KEY_LEN; i++) {
		unsigned int b;

		assert_int_equal(sscanf(hex + 2 * i, "%2x", &b), 1);
		key[i] = (uint8_t)b;
	}
}

/* BLAKE2b-256 keyed by the secret over the sorted keys (hashlib.blake2b
 * gives the reference: key=bytes(range(32)), message 0x01*32 + 0xff*32). */
static void test_psk_derive(void **state)
{
	uint8_t secret[WG_KEY_LEN], a[WG_KEY_LEN], b[WG_KEY_LEN], want[WG_KEY_LEN];
	uint8_t ab[WG_KEY_LEN], ba[WG_KEY_LEN];

	(void)state;
	for (int i = 0; i < WG_KEY_LEN; i++)
		secret[i] = (uint8_t)i;
	memset(a, 0xff, sizeof(a));
	memset(b, 0x01, sizeof(b));
	hex_to_key(want, "3f8ed549f8791ee93560ad664c566105cb98be0b38074c0da0c9549d5d3cb21b");
	assert_int_equal(key_psk_derive(ab, secret, a, b), 0);
	assert_int_equal(key_psk_derive(ba, secret, b, a), 0);
	assert_memory_equal(ab, want, WG_KEY_LEN);
	assert_memory_equal(ba, want, WG_KEY_LEN);
	secret[0] ^= 1;
	assert_int_equal(key_psk_derive(ab, secret, a, b), 0);
	assert_memory_not_equal(ab, want, WG_KEY_LEN);
}

static void test_generate(void **state)
{
	uint8_t a[WG_KEY_LEN], b[WG_KEY_LEN];

	assert_int_equal(key_init(), 0);
	assert_int_equal(key_init(), 0);
	for (int i = 0; i < 64; i++) {
		assert_int_equal(key_generate_private(a), 0);
		assert_int_equal(a[0] & 7, 0);
		assert_int_equal(a[31] & 0x80, 0);
		assert_int_equal(a[31] & 0x40, 0x40);
		assert_false(key_is_zero(a));
	}
	assert_int_equal(key_generate_private(b), 0);
	assert_memory_not_equal(a, b, WG_KEY_LEN);
	key_wipe(a, sizeof(a));
	assert_true(key_is_zero(a));
	key_wipe(NULL, 10);
}

/* RFC 7748 section 6.1 test vectors. */
static void test_public_vectors(void **state)
{
	uint8_t priv[WG_KEY_LEN], pub[WG_KEY_LEN], want[WG_KEY_LEN];

	hex_to_key(priv, "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
	hex_to_key(want, "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
	assert_int_equal(key_public_from_private(pub, priv), 0);
	assert_memory_equal(pub, want, WG_KEY_LEN);
	hex_to_key(priv, "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
	hex_to_key(want, "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
	assert_int_equal(key_public_from_private(pub, priv), 0);
	assert_memory_equal(pub, want, WG_KEY_LEN);
}

static void test_base64(void **state)
{
	uint8_t key[WG_KEY_LEN], back[WG_KEY_LEN];
	char b64[WG_KEY_B64_LEN + 1], err[128];

	/* What `wg pubkey` prints for the RFC 7748 Alice key. */
	hex_to_key(key, "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
	key_to_base64(b64, key);
	assert_string_equal(b64, "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=");
	assert_int_equal(key_from_base64(back, b64, err, sizeof(err)), 0);
	assert_memory_equal(back, key, WG_KEY_LEN);
	assert_true(key_is_valid_base64(b64));

	memset(key, 0, sizeof(key));
	key_to_base64(b64, key);
	assert_string_equal(b64, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
	assert_true(key_is_zero(key));
	memset(key, 0xff, sizeof(key));
	key_to_base64(b64, key);
	assert_string_equal(b64, "//////////////////////////////////////////8=");
	assert_int_equal(key_from_base64(back, b64, NULL, 0), 0);
	assert_memory_equal(back, key, WG_KEY_LEN);
	assert_false(key_is_zero(key));

	for (int i = 0; i < 32; i++) {
		assert_int_equal(key_generate_private(key), 0);
		key_to_base64(b64, key);
		assert_int_equal(strlen(b64), WG_KEY_B64_LEN);
		assert_int_equal(b64[43], '=');
		assert_int_equal(key_from_base64(back, b64, NULL, 0), 0);
		assert_memory_equal(back, key, WG_KEY_LEN);
	}
}

static void test_base64_errors(void **state)
{
	static const struct {
		const char *in, *err;
	} cases[] = {
		{ "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo",
		  "key must be 44 base64 characters, got 43" },
		{ "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo==",
		  "key must be 44 base64 characters, got 45" },
		{ "", "key must be 44 base64 characters, got 0" },
		{ "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTQ==",
		  "key decodes to 31 bytes, want 32" },
		{ "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmoA",
		  "key decodes to 33 bytes, want 32" },
		{ "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066Spjqqb*mo=",
		  "key is not valid base64" },
		{ "hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo=",
		  "key is not valid base64" },
		{ "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo ",
		  "key is not valid base64" },
		{ "=SDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=",
		  "key is not valid base64" },
		/* bytes with the high bit set (libsodium 1.0.18 lets some pass) */
		{ "hSDwCYkwp1R0\x9f" "33ctD73Wg2/Og0mOBr066SpjqqbTmo=",
		  "key is not valid base64" },
		{ "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTm\xc3\xa9",
		  "key is not valid base64" },
		{ "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066Spjqq=Tmo=",
		  "key is not valid base64" },
		/* padding bits must be zero, here and below */
		{ "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTm==",
		  "key is not valid base64" },
		/* last character carries bits beyond the 32nd byte */
		{ "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmp=",
		  "key is not valid base64" },
	};
	uint8_t key[WG_KEY_LEN], zero[WG_KEY_LEN] = { 0 };
	char err[128];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(key, 0, sizeof(key));
		err[0] = '\0';
		assert_int_equal(key_from_base64(key, cases[i].in, err, sizeof(err)), -EINVAL);
		assert_string_equal(err, cases[i].err);
		assert_memory_equal(key, zero, WG_KEY_LEN);
		assert_false(key_is_valid_base64(cases[i].in));
	}
	assert_int_equal(key_from_base64(key, NULL, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "key is missing");
	assert_false(key_is_valid_base64(NULL));
}

static char tmpdir[64];

static int setup_dir(void **state)
{
	strcpy(tmpdir, "/tmp/test_key.XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *path, const char *content, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static void test_load_or_create(void **state)
{
	uint8_t a[WG_KEY_LEN], b[WG_KEY_LEN];
	char path[PATH_MAX], content[128], b64[WG_KEY_B64_LEN + 1];
	struct stat st;
	mode_t old;
	int fd;

	snprintf(path, sizeof(path), "%s/private.key", tmpdir);
	/* a permissive umask must not widen the file */
	old = umask(0);
	assert_int_equal(key_load_or_create(path, a), 0);
	umask(old);
	assert_false(key_is_zero(a));
	assert_int_equal(a[0] & 7, 0);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(count_entries(tmpdir), 1);

	/* content is what wg genkey writes: base64 and a newline */
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	memset(content, 0, sizeof(content));
	assert_int_equal(read(fd, content, sizeof(content) - 1), WG_KEY_B64_LEN + 1);
	close(fd);
	key_to_base64(b64, a);
	assert_int_equal(content[WG_KEY_B64_LEN], '\n');
	content[WG_KEY_B64_LEN] = '\0';
	assert_string_equal(content, b64);

	/* loading again gives the same key */
	assert_int_equal(key_load_or_create(path, b), 0);
	assert_memory_equal(a, b, WG_KEY_LEN);

	/* group or other readable: refused, and the file left alone */
	assert_int_equal(chmod(path, 0640), 0);
	assert_int_equal(key_load_or_create(path, b), -EPERM);
	assert_true(key_is_zero(b));
	assert_int_equal(chmod(path, 0604), 0);
	assert_int_equal(key_load_or_create(path, b), -EPERM);
	assert_int_equal(chmod(path, 0602), 0);
	assert_int_equal(key_load_or_create(path, b), -EPERM);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0602);
	assert_int_equal(chmod(path, 0400), 0);
	assert_int_equal(key_load_or_create(path, b), 0);
	assert_memory_equal(a, b, WG_KEY_LEN);
	key_wipe(a, sizeof(a));
	key_wipe(b, sizeof(b));
}

static void test_load_existing(void **state)
{
	uint8_t k[WG_KEY_LEN], pub[WG_KEY_LEN], want[WG_KEY_LEN];
	char path[PATH_MAX], link_path[PATH_MAX], b64[WG_KEY_B64_LEN + 1];

	/* a key written by someone else (as `wg genkey > file` would) */
	snprintf(path, sizeof(path), "%s/given.key", tmpdir);
	hex_to_key(want, "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
	key_to_base64(b64, want);
	char line[64];
	snprintf(line, sizeof(line), "%s\n", b64);
	write_file(path, line, 0600);
	assert_int_equal(key_load_or_create(path, k), 0);
	assert_memory_equal(k, want, WG_KEY_LEN);
	assert_int_equal(key_public_from_private(pub, k), 0);
	key_to_base64(b64, pub);
	assert_string_equal(b64, "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=");
	/* without the newline, with CRLF */
	snprintf(line, sizeof(line), "%s", "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=");
	write_file(path, line, 0600);
	assert_int_equal(key_load_or_create(path, k), 0);
	assert_memory_equal(k, want, WG_KEY_LEN);
	write_file(path, "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=\r\n", 0600);
	assert_int_equal(key_load_or_create(path, k), 0);
	assert_memory_equal(k, want, WG_KEY_LEN);

	/* corrupt content is -EINVAL, never replaced by a fresh key */
	write_file(path, "not a key\n", 0600);
	assert_int_equal(key_load_or_create(path, k), -EINVAL);
	write_file(path, "", 0600);
	assert_int_equal(key_load_or_create(path, k), -EINVAL);
	write_file(path, "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=\nextra stuff here\n", 0600);
	assert_int_equal(key_load_or_create(path, k), -EINVAL);
	char big[4096];
	memset(big, 'A', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	write_file(path, big, 0600);
	assert_int_equal(key_load_or_create(path, k), -EINVAL);

	/* symlinks are not followed, directories are not keys */
	snprintf(link_path, sizeof(link_path), "%s/link.key", tmpdir);
	assert_int_equal(symlink(path, link_path), 0);
	assert_int_equal(key_load_or_create(link_path, k), -ELOOP);
	assert_int_equal(key_load_or_create(tmpdir, k), -EINVAL);

	/* missing directory */
	snprintf(path, sizeof(path), "%s/nodir/private.key", tmpdir);
	assert_int_equal(key_load_or_create(path, k), -ENOENT);
	assert_int_equal(key_load_or_create("", k), -EINVAL);
	assert_int_equal(key_load_or_create(NULL, k), -EINVAL);
}

/* Several processes starting at once agree on one key. */
static void test_race(void **state)
{
	enum { N = 6 };
	char path[PATH_MAX], got[N][WG_KEY_B64_LEN + 1];
	int fds[N][2];
	pid_t pids[N];

	snprintf(path, sizeof(path), "%s/race.key", tmpdir);
	for (int i = 0; i < N; i++) {
		assert_int_equal(pipe(fds[i]), 0);
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			uint8_t k[WG_KEY_LEN], pub[WG_KEY_LEN];
			char b64[WG_KEY_B64_LEN + 1] = "";

			if (key_load_or_create(path, k) == 0 &&
			    key_public_from_private(pub, k) == 0)
				key_to_base64(b64, pub);
			if (write(fds[i][1], b64, sizeof(b64)) != sizeof(b64))
				_exit(2);
			_exit(0);
		}
		close(fds[i][1]);
	}
	for (int i = 0; i < N; i++) {
		int status;

		assert_int_equal(read(fds[i][0], got[i], sizeof(got[i])), sizeof(got[i]));
		close(fds[i][0]);
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		assert_int_equal(strlen(got[i]), WG_KEY_B64_LEN);
		assert_string_equal(got[i], got[0]);
	}
	/* no temporaries left behind: race.key and nothing else new */
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "test -z \"$(ls '%s' | grep tmp)\"", tmpdir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_generate),
		cmocka_unit_test(test_psk_derive),
		cmocka_unit_test(test_public_vectors),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_base64_errors),
		cmocka_unit_test_setup_teardown(test_load_or_create, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_load_existing, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_race, setup_dir, teardown_dir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
