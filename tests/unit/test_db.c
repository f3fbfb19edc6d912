#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "db.h"

static char tmpdir[64];
static char path[PATH_MAX];

static int setup_dir(void **state)
{
	strcpy(tmpdir, "/tmp/test_db.XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(path, sizeof(path), "%s/state.db", tmpdir);
	return 0;
}

static int teardown_dir(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static long query_long(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	long v;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = (long)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static void query_text(sqlite3 *db, const char *sql, const char *want)
{
	sqlite3_stmt *st;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), want);
	sqlite3_finalize(st);
}

static const char *const v2[] = {
	"CREATE TABLE nodes (name TEXT PRIMARY KEY, subnet TEXT NOT NULL UNIQUE)",
	"CREATE TABLE peers (node TEXT NOT NULL REFERENCES nodes(name) ON DELETE CASCADE,"
	" key TEXT NOT NULL)",
};

static const char *const v3[] = {
	"CREATE TABLE nodes (name TEXT PRIMARY KEY, subnet TEXT NOT NULL UNIQUE)",
	"CREATE TABLE peers (node TEXT NOT NULL REFERENCES nodes(name) ON DELETE CASCADE,"
	" key TEXT NOT NULL)",
	"ALTER TABLE nodes ADD COLUMN endpoint TEXT;"
	"CREATE INDEX peers_node ON peers(node)",
};

static void test_open_settings(void **state)
{
	char err[256] = "";
	sqlite3 *db = db_open(path, v2, 2, err, sizeof(err));

	assert_non_null(db);
	assert_string_equal(err, "");
	query_text(db, "PRAGMA journal_mode", "wal");
	assert_int_equal(query_long(db, "PRAGMA synchronous"), 2); /* FULL */
	assert_int_equal(query_long(db, "PRAGMA foreign_keys"), 1);
	assert_int_equal(query_long(db, "PRAGMA busy_timeout"), 5000);
	assert_int_equal(query_long(db, "PRAGMA user_version"), 2);
	assert_int_equal(query_long(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table'"), 2);

	/* foreign keys enforced, constraint -> -EEXIST */
	assert_int_equal(db_exec(db, "INSERT INTO peers VALUES ('ghost', 'k')"), -EEXIST);
	assert_int_equal(db_exec(db, "INSERT INTO nodes VALUES ('n1', '10.100.0.0/24')"), 0);
	assert_int_equal(db_exec(db, "INSERT INTO nodes VALUES ('n2', '10.100.0.0/24')"), -EEXIST);
	assert_int_equal(db_exec(db, "INSERT INTO peers VALUES ('n1', 'k')"), 0);
	assert_int_equal(db_exec(db, "DELETE FROM nodes WHERE name = 'n1'"), 0);
	assert_int_equal(query_long(db, "SELECT count(*) FROM peers"), 0);
	assert_int_equal(db_exec(db, "SELEKT 1"), -EIO);
	db_close(db);
	db_close(NULL);
}

static void test_migrations(void **state)
{
	char err[256] = "";
	sqlite3 *db;

	db = db_open(path, v2, 2, err, sizeof(err));
	assert_non_null(db);
	assert_int_equal(db_exec(db, "INSERT INTO nodes VALUES ('n1', '10.100.0.0/24')"), 0);
	db_close(db);

	/* same schema again: nothing re-run (CREATE TABLE would fail) */
	db = db_open(path, v2, 2, err, sizeof(err));
	assert_non_null(db);
	assert_int_equal(query_long(db, "SELECT count(*) FROM nodes"), 1);
	db_close(db);

	/* upgrade runs only the new step, data kept */
	db = db_open(path, v3, 3, err, sizeof(err));
	assert_non_null(db);
	assert_int_equal(query_long(db, "PRAGMA user_version"), 3);
	assert_int_equal(db_exec(db, "UPDATE nodes SET endpoint = '192.0.2.1:51820'"), 0);
	query_text(db, "SELECT endpoint FROM nodes", "192.0.2.1:51820");
	db_close(db);

	/* an older program refuses the newer database and leaves it alone */
	errno = 0;
	db = db_open(path, v2, 2, err, sizeof(err));
	assert_null(db);
	assert_int_equal(errno, EPROTO);
	assert_string_equal(err, "database schema version 3 is newer than this program knows (2)");
	db = db_open(path, v3, 3, err, sizeof(err));
	assert_non_null(db);
	assert_int_equal(query_long(db, "SELECT count(*) FROM nodes"), 1);
	db_close(db);
}

static void test_failed_migration_rolls_back(void **state)
{
	static const char *const broken[] = {
		"CREATE TABLE a (x INTEGER)",
		"CREATE TABLE b (y INTEGER); INSERT INTO nope VALUES (1)",
	};
	char err[256] = "";
	sqlite3 *db;

	errno = 0;
	db = db_open(path, broken, 2, err, sizeof(err));
	assert_null(db);
	assert_int_equal(errno, EIO);
	assert_string_equal(err, "schema migration 1 -> 2 failed: no such table: nope");

	/* nothing of it stayed: not even the first step */
	db = db_open(path, NULL, 0, err, sizeof(err));
	assert_non_null(db);
	assert_int_equal(query_long(db, "PRAGMA user_version"), 0);
	assert_int_equal(query_long(db, "SELECT count(*) FROM sqlite_master"), 0);
	db_close(db);

	/* and the good schema can still be applied */
	db = db_open(path, v2, 2, err, sizeof(err));
	assert_non_null(db);
	assert_int_equal(query_long(db, "PRAGMA user_version"), 2);
	db_close(db);
}

static void test_transactions(void **state)
{
	char err[256];
	sqlite3 *db = db_open(path, v2, 2, err, sizeof(err)), *db2;

	assert_non_null(db);
	assert_int_equal(db_rollback(db), 0); /* nothing open: quiet */
	assert_int_equal(db_begin(db), 0);
	assert_int_equal(db_exec(db, "INSERT INTO nodes VALUES ('n1', 's1')"), 0);
	assert_int_equal(db_rollback(db), 0);
	assert_int_equal(query_long(db, "SELECT count(*) FROM nodes"), 0);
	assert_int_equal(db_begin(db), 0);
	assert_int_equal(db_exec(db, "INSERT INTO nodes VALUES ('n1', 's1')"), 0);
	assert_int_equal(db_commit(db), 0);
	assert_int_equal(query_long(db, "SELECT count(*) FROM nodes"), 1);
	assert_int_equal(db_commit(db), -EIO); /* no transaction */

	/* a second writer waits, then gets -EBUSY */
	db2 = db_open(path, v2, 2, err, sizeof(err));
	assert_non_null(db2);
	assert_int_equal(sqlite3_busy_timeout(db2, 50), SQLITE_OK);
	assert_int_equal(db_begin(db), 0);
	assert_int_equal(db_begin(db2), -EBUSY);
	/* WAL: readers are not blocked by the writer */
	assert_int_equal(query_long(db2, "SELECT count(*) FROM nodes"), 1);
	assert_int_equal(db_commit(db), 0);
	assert_int_equal(db_begin(db2), 0);
	assert_int_equal(db_commit(db2), 0);
	db_close(db2);
	db_close(db);
}

/* A committed transaction survives the process being killed right after. */
static void test_kill9(void **state)
{
	char err[256];
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		sqlite3 *db = db_open(path, v2, 2, err, sizeof(err));

		if (!db || db_begin(db) || db_exec(db, "INSERT INTO nodes VALUES ('n1', 's1')") ||
		    db_commit(db))
			_exit(1);
		/* open, uncommitted: must vanish */
		if (db_begin(db) || db_exec(db, "INSERT INTO nodes VALUES ('n2', 's2')"))
			_exit(1);
		raise(SIGKILL);
		_exit(1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

	sqlite3 *db = db_open(path, v2, 2, err, sizeof(err));
	assert_non_null(db);
	query_text(db, "SELECT group_concat(name) FROM nodes", "n1");
	db_close(db);
}

static void test_open_errors(void **state)
{
	char err[256], p[PATH_MAX];

	errno = 0;
	assert_null(db_open("", v2, 2, err, sizeof(err)));
	assert_int_equal(errno, EINVAL);
	assert_string_equal(err, "database path is empty");
	assert_null(db_open(NULL, v2, 2, NULL, 0));

	snprintf(p, sizeof(p), "%s/missing/state.db", tmpdir);
	errno = 0;
	assert_null(db_open(p, v2, 2, err, sizeof(err)));
	assert_int_equal(errno, ENOENT);
	assert_non_null(strstr(err, "cannot open database"));
	assert_non_null(strstr(err, p));

	/* not a database */
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("this is not an sqlite database, just some text that is long enough\n", f);
	fclose(f);
	errno = 0;
	assert_null(db_open(path, v2, 2, err, sizeof(err)));
	assert_int_equal(errno, EIO);
}

static void test_errno_map(void **state)
{
	assert_int_equal(db_errno(SQLITE_OK), 0);
	assert_int_equal(db_errno(SQLITE_ROW), 0);
	assert_int_equal(db_errno(SQLITE_DONE), 0);
	assert_int_equal(db_errno(SQLITE_BUSY), -EBUSY);
	assert_int_equal(db_errno(SQLITE_BUSY_SNAPSHOT), -EBUSY);
	assert_int_equal(db_errno(SQLITE_LOCKED), -EBUSY);
	assert_int_equal(db_errno(SQLITE_CONSTRAINT), -EEXIST);
	assert_int_equal(db_errno(SQLITE_CONSTRAINT_UNIQUE), -EEXIST);
	assert_int_equal(db_errno(SQLITE_CONSTRAINT_FOREIGNKEY), -EEXIST);
	assert_int_equal(db_errno(SQLITE_NOMEM), -ENOMEM);
	assert_int_equal(db_errno(SQLITE_FULL), -ENOSPC);
	assert_int_equal(db_errno(SQLITE_IOERR), -EIO);
	assert_int_equal(db_errno(SQLITE_IOERR_FSYNC), -EIO);
	assert_int_equal(db_errno(SQLITE_CORRUPT), -EIO);
	assert_int_equal(db_errno(SQLITE_ERROR), -EIO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_settings, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_migrations, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_failed_migration_rolls_back, setup_dir,
						teardown_dir),
		cmocka_unit_test_setup_teardown(test_transactions, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_kill9, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_open_errors, setup_dir, teardown_dir),
		cmocka_unit_test(test_errno_map),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
