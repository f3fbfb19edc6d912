/*
 * SQLite glue shared by the daemons: open with WAL and synchronous=FULL (an
 * answer is only given after its transaction is on disk, so kill -9 loses
 * nothing answered), foreign keys on, a busy timeout, and schema migrations
 * by PRAGMA user_version inside one transaction. The one place SQLITE_*
 * codes become errno values.
 */
#ifndef WGCNI_DB_H
#define WGCNI_DB_H

#include <sqlite3.h>
#include <stddef.h>

/*
 * migrations[i] upgrades user_version i to i+1. A database newer than
 * n_migrations is refused (-EPROTO). Returns the handle or NULL with errno
 * set and a message in err.
 */
sqlite3 *db_open(const char *path, const char *const *migrations,
		 size_t n_migrations, char *err, size_t errlen);
void db_close(sqlite3 *db);

/* SQLITE_* -> 0 / negative errno (BUSY/LOCKED -> -EBUSY, CONSTRAINT ->
 * -EEXIST, NOMEM -> -ENOMEM, FULL -> -ENOSPC, others -> -EIO). */
int db_errno(int sqlite_rc);

int db_exec(sqlite3 *db, const char *sql);
int db_begin(sqlite3 *db);    /* BEGIN IMMEDIATE */
int db_commit(sqlite3 *db);
int db_rollback(sqlite3 *db); /* never fails loudly; for unwinding */

#endif
