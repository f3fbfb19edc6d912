#include "db.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

int db_errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return 0;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_FULL:
		return -ENOSPC;
	default:
		return -EIO;
	}
}

int db_exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		log_debug("sqlite statement failed", "err=%s code=%d",
			  msg ? msg : sqlite3_errstr(rc), rc);
		sqlite3_free(msg);
	}
	return db_errno(rc);
}

int db_begin(sqlite3 *db)
{
	return db_exec(db, "BEGIN IMMEDIATE");
}

int db_commit(sqlite3 *db)
{
	return db_exec(db, "COMMIT");
}

int db_rollback(sqlite3 *db)
{
	/* Nothing to undo when no transaction is open (SQLite may already have
	 * rolled back on its own after an error). */
	if (sqlite3_get_autocommit(db))
		return 0;
	return db_errno(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL));
}

/* A PRAGMA that answers with one value (journal_mode, user_version). */
static int pragma_get(sqlite3 *db, const char *sql, char *out, size_t outlen)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return db_errno(rc);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const unsigned char *v = sqlite3_column_text(st, 0);

		snprintf(out, outlen, "%s", v ? (const char *)v : "");
		rc = SQLITE_OK;
	} else if (rc == SQLITE_DONE)
		rc = SQLITE_ERROR;
	sqlite3_finalize(st);
	return db_errno(rc);
}

static int migrate(sqlite3 *db, const char *const *migrations, size_t n,
		   char *err, size_t errlen)
{
	char buf[32], sql[64], *msg = NULL;
	long version;
	int ret, rc;

	ret = db_begin(db);
	if (ret < 0) {
		snprintf(err, errlen, "cannot start the schema transaction: %s",
			 sqlite3_errmsg(db));
		return ret;
	}
	ret = pragma_get(db, "PRAGMA user_version", buf, sizeof(buf));
	if (ret < 0) {
		snprintf(err, errlen, "cannot read the schema version: %s", sqlite3_errmsg(db));
		goto err_rollback;
	}
	version = strtol(buf, NULL, 10);
	ret = -EPROTO;
	if (version < 0 || (size_t)version > n) {
		snprintf(err, errlen,
			 "database schema version %ld is newer than this program knows (%zu)",
			 version, n);
		goto err_rollback;
	}
	for (size_t i = (size_t)version; i < n; i++) {
		rc = sqlite3_exec(db, migrations[i], NULL, NULL, &msg);
		if (rc != SQLITE_OK) {
			ret = db_errno(rc);
			if (ret == 0 || ret == -EEXIST)
				ret = -EIO;
			snprintf(err, errlen, "schema migration %zu -> %zu failed: %s", i,
				 i + 1, msg ? msg : sqlite3_errstr(rc));
			sqlite3_free(msg);
			goto err_rollback;
		}
	}
	if ((size_t)version < n) {
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %zu", n);
		ret = db_exec(db, sql);
		if (ret < 0) {
			snprintf(err, errlen, "cannot set the schema version: %s",
				 sqlite3_errmsg(db));
			goto err_rollback;
		}
	}
	ret = db_commit(db);
	if (ret < 0) {
		snprintf(err, errlen, "cannot commit the schema: %s", sqlite3_errmsg(db));
		goto err_rollback;
	}
	return 0;

err_rollback:
	db_rollback(db);
	return ret;
}

sqlite3 *db_open(const char *path, const char *const *migrations,
		 size_t n_migrations, char *err, size_t errlen)
{
	static const char *const setup[] = {
		"PRAGMA synchronous = FULL",
		"PRAGMA foreign_keys = ON",
	};
	sqlite3 *db = NULL;
	char scratch[1], mode[16] = "";
	int ret, rc;

	if (!err) {
		err = scratch;
		errlen = sizeof(scratch);
	}
	if (!path || !*path) {
		snprintf(err, errlen, "database path is empty");
		errno = EINVAL;
		return NULL;
	}
	rc = sqlite3_open_v2(path, &db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				     SQLITE_OPEN_FULLMUTEX | SQLITE_OPEN_NOFOLLOW,
			     NULL);
	if (rc != SQLITE_OK) {
		/* CANTOPEN says little; the OS error says why. */
		ret = db ? -sqlite3_system_errno(db) : 0;
		if (ret == 0)
			ret = rc == SQLITE_NOMEM ? -ENOMEM : db_errno(rc);
		snprintf(err, errlen, "cannot open database \"%s\": %s", path,
			 db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		goto err_close;
	}
	ret = db_errno(sqlite3_busy_timeout(db, 5000));
	if (ret < 0) {
		snprintf(err, errlen, "cannot set busy timeout on \"%s\"", path);
		goto err_close;
	}
	/* WAL keeps readers off the writer's back; a database that cannot
	 * switch (e.g. on a filesystem without shared memory) is an error
	 * rather than a silent fallback to another journal. */
	ret = pragma_get(db, "PRAGMA journal_mode = WAL", mode, sizeof(mode));
	if (ret < 0) {
		snprintf(err, errlen, "cannot enable WAL on \"%s\": %s", path,
			 sqlite3_errmsg(db));
		goto err_close;
	}
	ret = -EIO;
	if (strcmp(mode, "wal")) {
		snprintf(err, errlen, "cannot enable WAL on \"%s\": journal mode stays \"%s\"",
			 path, mode);
		goto err_close;
	}
	for (size_t i = 0; i < sizeof(setup) / sizeof(setup[0]); i++) {
		ret = db_exec(db, setup[i]);
		if (ret < 0) {
			snprintf(err, errlen, "\"%s\" on \"%s\" failed: %s", setup[i],
				 path, sqlite3_errmsg(db));
			goto err_close;
		}
	}
	ret = migrate(db, migrations, n_migrations, err, errlen);
	if (ret < 0)
		goto err_close;
	return db;

err_close:
	sqlite3_close_v2(db);
	errno = -ret;
	return NULL;
}

void db_close(sqlite3 *db)
{
	if (!db)
		return;
	sqlite3_close_v2(db);
}
