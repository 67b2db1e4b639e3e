/*
 * store_sql.c - the small SQLite helpers the store's files share: error
 * codes, one-shot statements and the page limit. Below store.c and
 * store_write.c, so that neither needs the other for them.
 */
#include "store_int.h"

#include <errno.h>
#include <stdio.h>

#include "log.h"
#include "pdm_error.h"

int store_sqlite_err(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW:
		return 0;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return -PDM_ECORRUPT;
	case SQLITE_CANTOPEN:
		return -ENOENT;
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	case SQLITE_TOOBIG:
		return -E2BIG;
	case SQLITE_RANGE:
	case SQLITE_MISUSE:
		return -EINVAL;
	default:
		return -EIO;
	}
}

int store_exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		LOG_D("store: \"%.60s\": %s", sql, msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return rc;
	}
	return SQLITE_OK;
}

int store_query_int(sqlite3 *db, const char *sql, int64_t *v)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			*v = sqlite3_column_int64(st, 0);
			rc = SQLITE_OK;
		} else if (rc == SQLITE_DONE) {
			rc = SQLITE_ERROR;
		}
	}
	sqlite3_finalize(st);
	return rc;
}

int store_set_page_limit(sqlite3 *db, int64_t max_bytes)
{
	int64_t psz = 4096;
	if (store_query_int(db, "PRAGMA page_size", &psz) != SQLITE_OK || psz <= 0)
		psz = 4096;
	/* SQLite's own maximum when there is no limit. */
	int64_t pages = max_bytes > 0 ? max_bytes / psz : 4294967294LL;
	if (pages < 1)
		pages = 1;
	char sql[64];
	snprintf(sql, sizeof(sql), "PRAGMA max_page_count=%lld", (long long)pages);
	int64_t got;
	return store_query_int(db, sql, &got);
}
