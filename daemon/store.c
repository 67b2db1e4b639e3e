/*
 * store.c - the SQLite store: schema and migrations, open/check/recover,
 * and everything except the sample writer path (store_write.c).
 *
 * Two connections per read-write handle: `db` for the caller's thread
 * (reads, sensors, kv, outbox, models) and `wdb` owned by sample writes
 * (the writer thread or store_append, serialised by wmu). Both run in WAL
 * mode so reads never wait for the writer; writes from the two connections
 * take SQLite's write lock in turn (busy_timeout). All statements are
 * prepared once (lazily) and reused.
 */
#include "store_int.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "pdm_error.h"
#include "pdm_time.h"

/* Schema versions; migrations[i] brings user_version i to i+1. Never edit a
 * released entry: append a new one. */
static const char *const migrations[] = {
	/* 0 -> 1: the first schema */
	"CREATE TABLE sensors("
	"  id INTEGER PRIMARY KEY,"
	"  name TEXT NOT NULL UNIQUE,"
	"  asset TEXT NOT NULL,"
	"  created_ms INTEGER NOT NULL);"
	/* One row per sample in a rowid table keyed by
	 * k = sensor << 42 | ts_ms (store_int.h): the key lives in the cell
	 * header as a varint instead of two record columns, which is what
	 * keeps a sample at about 23 bytes on disk. Rows cluster by (sensor,
	 * ts): the newest-N and range reads of a sensor are one key range, and
	 * evicting its oldest rows is a range delete. quality is stored only
	 * when not GOOD, in sample_quality (see store_write.c). */
	"CREATE TABLE samples("
	"  k INTEGER PRIMARY KEY,"
	"  value REAL);"
	"CREATE TABLE sample_quality("
	"  sensor INTEGER NOT NULL,"
	"  ts INTEGER NOT NULL,"
	"  quality INTEGER NOT NULL,"
	"  PRIMARY KEY(sensor, ts)) WITHOUT ROWID;"
	/* AUTOINCREMENT: ids are never reused even after every row was
	 * pruned, so a subscriber can rely on their order across restarts. */
	"CREATE TABLE outbox("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  topic TEXT NOT NULL,"
	"  payload TEXT NOT NULL,"
	"  created_ms INTEGER NOT NULL,"
	"  delivered_ms INTEGER);"
	"CREATE INDEX outbox_pending ON outbox(id) WHERE delivered_ms IS NULL;"
	"CREATE TABLE episodes("
	"  asset TEXT PRIMARY KEY,"
	"  seq INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE kv("
	"  key TEXT PRIMARY KEY,"
	"  value TEXT NOT NULL,"
	"  updated_ms INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE models("
	"  asset TEXT NOT NULL,"
	"  version INTEGER NOT NULL,"
	"  kind TEXT NOT NULL,"
	"  path TEXT NOT NULL,"
	"  trained_at_ms INTEGER NOT NULL,"
	"  windows INTEGER NOT NULL,"
	"  val_loss REAL,"
	"  threshold REAL,"
	"  PRIMARY KEY(asset, version)) WITHOUT ROWID;"
	/* A readable view for people using the sqlite3 shell. */
	"CREATE VIEW samples_v AS SELECT s.sensor, n.name, s.ts,"
	"  strftime('%Y-%m-%dT%H:%M:%fZ', s.ts / 1000.0, 'unixepoch') AS time,"
	"  s.value, coalesce(q.quality, 0) AS quality"
	"  FROM (SELECT k >> 42 AS sensor, k & 4398046511103 AS ts, value FROM samples) s"
	"  LEFT JOIN sensors n ON n.id = s.sensor"
	"  LEFT JOIN sample_quality q ON q.sensor = s.sensor AND q.ts = s.ts;",
};
#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

static const char *const main_sql[ST__COUNT] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_BEGIN_READ] = "BEGIN",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_SENSOR_GET] = "SELECT id FROM sensors WHERE name = ?1",
	[ST_SENSOR_INS] = "INSERT INTO sensors(name, asset, created_ms) VALUES(?1, ?2, ?3)",
	[ST_SENSOR_NAME] = "SELECT name FROM sensors WHERE id = ?1",
	[ST_LATEST] = "SELECT k, value FROM samples WHERE k >= ?1 AND k < ?2 ORDER BY k DESC LIMIT ?3",
	[ST_QUALITY_RANGE] = "SELECT ts, quality FROM sample_quality WHERE sensor = ?1 AND ts >= ?2 "
			     "AND ts <= ?3 ORDER BY ts",
	[ST_KV_GET] = "SELECT value FROM kv WHERE key = ?1",
	[ST_KV_SET] = "INSERT INTO kv(key, value, updated_ms) VALUES(?1, ?2, ?3) ON CONFLICT(key) "
		      "DO UPDATE SET value = excluded.value, updated_ms = excluded.updated_ms",
	[ST_KV_DEL] = "DELETE FROM kv WHERE key = ?1",
	[ST_EPISODE_NEXT] = "INSERT INTO episodes(asset, seq) VALUES(?1, 1) ON CONFLICT(asset) "
			    "DO UPDATE SET seq = seq + 1 RETURNING seq",
	[ST_OUTBOX_ADD] = "INSERT INTO outbox(topic, payload, created_ms) VALUES(?1, ?2, ?3)",
	[ST_OUTBOX_PENDING] = "SELECT id, topic, payload, created_ms FROM outbox "
			      "WHERE delivered_ms IS NULL AND id > ?1 ORDER BY id LIMIT ?2",
	[ST_OUTBOX_MARK] = "UPDATE outbox SET delivered_ms = ?2 WHERE id = ?1 AND delivered_ms IS NULL",
	[ST_OUTBOX_EXISTS] = "SELECT 1 FROM outbox WHERE id = ?1",
	[ST_OUTBOX_PRUNE] = "DELETE FROM outbox WHERE delivered_ms IS NOT NULL AND id <= "
			    "(SELECT id FROM outbox WHERE delivered_ms IS NOT NULL "
			    "ORDER BY id DESC LIMIT 1 OFFSET ?1)",
	[ST_OUTBOX_COUNT] = "SELECT count(*) FROM outbox WHERE delivered_ms IS NULL",
	[ST_OUTBOX_LIST] = "SELECT id, topic, payload, created_ms, delivered_ms FROM outbox "
			   "WHERE created_ms >= ?1 ORDER BY id",
	[ST_MODEL_ADD] = "INSERT OR REPLACE INTO models(asset, version, kind, path, trained_at_ms, "
			 "windows, val_loss, threshold) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	[ST_MODEL_LIST] = "SELECT asset, version, kind, path, trained_at_ms, windows, val_loss, "
			  "threshold FROM models WHERE asset = ?1 ORDER BY version DESC LIMIT ?2",
	[ST_MODEL_PRUNE] = "DELETE FROM models WHERE asset = ?1 AND version NOT IN (SELECT version "
			   "FROM models WHERE asset = ?1 ORDER BY version DESC LIMIT ?2)",
};

#define OUTBOX_KEEP_DELIVERED 10000
#define OUTBOX_PRUNE_EVERY 256

static int outbox_prune(struct store *s);

void store_opts_default(struct store_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->retention_ms = 7LL * 24 * 3600 * 1000;
	o->max_samples = 10000000;
	o->synchronous = STORE_SYNC_NORMAL;
	o->queue_capacity = 65536;
	o->busy_timeout_ms = 5000;
	o->check = STORE_CHECK_QUICK;
	o->max_db_bytes = 0;
	o->cache_kib = 8192;
}

/* Connection settings shared by both connections. */
static int configure(sqlite3 *db, const struct store_opts *o, bool readonly)
{
	char sql[96];
	sqlite3_busy_timeout(db, o->busy_timeout_ms);
	sqlite3_extended_result_codes(db, 1);
	int rc;
	if (!readonly) {
		sqlite3_stmt *st = NULL;
		rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
		if (rc == SQLITE_OK) {
			rc = sqlite3_step(st);
			if (rc == SQLITE_ROW) {
				const char *m = (const char *)sqlite3_column_text(st, 0);
				rc = m && strcmp(m, "wal") == 0 ? SQLITE_OK : SQLITE_CANTOPEN;
			}
		}
		sqlite3_finalize(st);
		if (rc != SQLITE_OK)
			return rc;
	}
	static const char *const sync_names[] = { "OFF", "NORMAL", "FULL" };
	int sy = o->synchronous >= 0 && o->synchronous <= 2 ? o->synchronous : 1;
	snprintf(sql, sizeof(sql), "PRAGMA synchronous=%s", sync_names[sy]);
	if ((rc = store_exec(db, sql)) != SQLITE_OK)
		return rc;
	snprintf(sql, sizeof(sql), "PRAGMA cache_size=-%d", o->cache_kib > 0 ? o->cache_kib : 2000);
	if ((rc = store_exec(db, sql)) != SQLITE_OK)
		return rc;
	/* The WAL file is truncated back to this after a checkpoint, so a
	 * burst (or a long training read) does not leave it large forever. */
	if ((rc = store_exec(db, "PRAGMA journal_size_limit=16777216")) != SQLITE_OK)
		return rc;
	if ((rc = store_exec(db, "PRAGMA temp_store=MEMORY")) != SQLITE_OK)
		return rc;
	if (!readonly && o->max_db_bytes > 0 &&
	    (rc = store_set_page_limit(db, o->max_db_bytes)) != SQLITE_OK)
		return rc;
	return SQLITE_OK;
}

/* Returns SQLITE_OK, SQLITE_CORRUPT when the check reported problems, or
 * the error that stopped it. */
static int check_db(sqlite3 *db, int level, char *first, size_t len)
{
	if (level == STORE_CHECK_NONE)
		return SQLITE_OK;
	sqlite3_stmt *st = NULL;
	const char *sql = level == STORE_CHECK_FULL ? "PRAGMA integrity_check(20)"
						    : "PRAGMA quick_check(20)";
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return rc;
	bool ok = true;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *m = (const char *)sqlite3_column_text(st, 0);
		if (!m || strcmp(m, "ok") != 0) {
			if (ok)
				snprintf(first, len, "%s", m ? m : "?");
			ok = false;
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return rc;
	return ok ? SQLITE_OK : SQLITE_CORRUPT;
}

static int migrate(sqlite3 *db, char *err, size_t errlen)
{
	int64_t ver = 0;
	int rc = store_query_int(db, "PRAGMA user_version", &ver);
	if (rc != SQLITE_OK)
		return rc;
	if (ver > SCHEMA_VERSION) {
		snprintf(err, errlen,
			 "database schema version %lld is newer than this pdmd understands (%d); "
			 "upgrade pdmd or move the database away",
			 (long long)ver, SCHEMA_VERSION);
		return SQLITE_MISMATCH;
	}
	if (ver == SCHEMA_VERSION)
		return SQLITE_OK;
	if ((rc = store_exec(db, "BEGIN IMMEDIATE")) != SQLITE_OK)
		return rc;
	/* Re-read under the write lock: another process may have migrated. */
	if ((rc = store_query_int(db, "PRAGMA user_version", &ver)) != SQLITE_OK)
		goto fail;
	for (int64_t v = ver; v < SCHEMA_VERSION; v++) {
		if ((rc = store_exec(db, migrations[v])) != SQLITE_OK)
			goto fail;
		char sql[48];
		snprintf(sql, sizeof(sql), "PRAGMA user_version=%lld", (long long)(v + 1));
		if ((rc = store_exec(db, sql)) != SQLITE_OK)
			goto fail;
	}
	if ((rc = store_exec(db, "COMMIT")) != SQLITE_OK)
		goto fail;
	if (ver > 0)
		LOG_I("store: migrated schema from version %lld to %d", (long long)ver, SCHEMA_VERSION);
	return SQLITE_OK;
fail:
	snprintf(err, errlen, "schema migration to version %d failed: %s", SCHEMA_VERSION,
		 sqlite3_errmsg(db));
	store_exec(db, "ROLLBACK");
	return rc;
}

static bool is_corrupt(int rc)
{
	return (rc & 0xff) == SQLITE_CORRUPT || (rc & 0xff) == SQLITE_NOTADB;
}

static int rename_if_exists(const char *from, const char *to)
{
	if (rename(from, to) == 0 || errno == ENOENT)
		return 0;
	return -errno;
}

/* Moves path (and its -wal/-shm) to path.corrupt-<UTC time>[-N]. */
static int move_aside(struct store *s, const char *path)
{
	char stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	size_t len = strlen(path) + 64;
	char *dst = malloc(len), *from = malloc(len), *to = malloc(len);
	int rc = -ENOMEM;
	if (!dst || !from || !to)
		goto out;
	struct stat sb;
	snprintf(dst, len, "%s.corrupt-%s", path, stamp);
	for (int n = 1; lstat(dst, &sb) == 0 && n < 1000; n++)
		snprintf(dst, len, "%s.corrupt-%s-%d", path, stamp, n);
	if (rename(path, dst) != 0) {
		rc = -errno;
		goto out;
	}
	static const char *const sfx[] = { "-wal", "-shm" };
	for (size_t i = 0; i < 2; i++) {
		snprintf(from, len, "%s%s", path, sfx[i]);
		snprintf(to, len, "%s%s", dst, sfx[i]);
		if ((rc = rename_if_exists(from, to)) < 0)
			goto out;
	}
	free(s->moved_aside);
	s->moved_aside = dst;
	dst = NULL;
	rc = 0;
out:
	free(dst);
	free(from);
	free(to);
	return rc;
}

static void close_db(sqlite3 **db)
{
	if (*db && sqlite3_close(*db) != SQLITE_OK)
		LOG_W("store: close: %s", sqlite3_errmsg(*db));
	*db = NULL;
}

/* Opens, configures, checks and migrates the main connection. */
static int open_main(struct store *s, char *why, size_t whylen, char *err, size_t errlen)
{
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
	int rc = sqlite3_open_v2(s->path, &s->db, flags, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "cannot open %s: %s", s->path,
			 s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
		return rc;
	}
	if ((rc = configure(s->db, &s->o, false)) != SQLITE_OK) {
		snprintf(why, whylen, "%s", sqlite3_errmsg(s->db));
		snprintf(err, errlen, "cannot set up %s: %s", s->path, why);
		return rc;
	}
	if ((rc = check_db(s->db, s->o.check, why, whylen)) != SQLITE_OK) {
		if (!is_corrupt(rc) || !why[0])
			snprintf(why, whylen, "%s", sqlite3_errmsg(s->db));
		/* The check's report is multi-line; keep the log line one. */
		for (char *p = why; *p; p++)
			if (*p == '\n')
				*p = ' ';
		snprintf(err, errlen, "integrity check of %s failed: %s", s->path, why);
		return rc;
	}
	if ((rc = migrate(s->db, err, errlen)) != SQLITE_OK) {
		snprintf(why, whylen, "%s", sqlite3_errmsg(s->db));
		return rc;
	}
	return SQLITE_OK;
}

static struct store *store_alloc(const char *path, const struct store_opts *o)
{
	struct store *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->path = strdup(path);
	if (!s->path) {
		free(s);
		return NULL;
	}
	if (o)
		s->o = *o;
	else
		store_opts_default(&s->o);
	if (s->o.queue_capacity == 0)
		s->o.queue_capacity = 1;
	pthread_mutex_init(&s->qmu, NULL);
	pthread_mutex_init(&s->wmu, NULL);
	/* Timed waits use the monotonic clock: a wall-clock step must not
	 * stretch or cut short a flush timeout. */
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->qcv, &ca);
	pthread_cond_init(&s->donecv, &ca);
	pthread_condattr_destroy(&ca);
	s->rl_full = (struct pdm_ratelimit)PDM_RATELIMIT_INIT(10000, 1);
	s->rl_err = (struct pdm_ratelimit)PDM_RATELIMIT_INIT(10000, 3);
	return s;
}

struct store *store_open(const char *path, const struct store_opts *o, char *err, size_t errlen)
{
	char why[256] = "", dummy[8];
	if (!err || errlen == 0) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	err[0] = '\0';
	if (!path || !path[0]) {
		snprintf(err, errlen, "no database path");
		return NULL;
	}
	struct store *s = store_alloc(path, o);
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	int rc = open_main(s, why, sizeof(why), err, errlen);
	if (is_corrupt(rc)) {
		close_db(&s->db);
		int mr = move_aside(s, path);
		if (mr < 0) {
			snprintf(err, errlen, "%s is corrupt (%s) and could not be moved aside: %s", path,
				 why, pdm_strerror(mr));
			goto fail;
		}
		LOG_E("store: %s is corrupt (%s); moved it to %s and started a fresh database; "
		      "samples, alerts owed and models registered before are in the old file",
		      path, why, s->moved_aside);
		err[0] = '\0';
		rc = open_main(s, why, sizeof(why), err, errlen);
	}
	if (rc != SQLITE_OK)
		goto fail;

	rc = sqlite3_open_v2(path, &s->wdb, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc == SQLITE_OK)
		rc = configure(s->wdb, &s->o, false);
	if (rc == SQLITE_OK)
		rc = store_writer_init(s);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "cannot open the writer connection to %s: %s", path,
			 s->wdb ? sqlite3_errmsg(s->wdb) : sqlite3_errstr(rc));
		goto fail;
	}
	/* The prune counter starts at zero with every open (each restart and
	 * reload), so with few alerts the periodic prune might never come:
	 * prune once here too. */
	(void)outbox_prune(s);
	return s;
fail:
	store_close(s);
	return NULL;
}

struct store *store_open_reader(const char *path, char *err, size_t errlen)
{
	char dummy[8];
	if (!err || errlen == 0) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	err[0] = '\0';
	if (!path) {
		snprintf(err, errlen, "no database path");
		return NULL;
	}
	struct store *s = store_alloc(path, NULL);
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->readonly = true;
	int rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc == SQLITE_OK)
		rc = configure(s->db, &s->o, true);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "cannot open %s for reading: %s", path,
			 s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
		store_close(s);
		return NULL;
	}
	return s;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	store_writer_stop(s);
	for (size_t i = 0; i < ST__COUNT; i++) {
		sqlite3_finalize(s->st[i]);
		s->st[i] = NULL;
	}
	store_writer_cleanup(s);
	close_db(&s->wdb);
	close_db(&s->db);
	pthread_cond_destroy(&s->donecv);
	pthread_cond_destroy(&s->qcv);
	pthread_mutex_destroy(&s->wmu);
	pthread_mutex_destroy(&s->qmu);
	free(s->moved_aside);
	free(s->path);
	free(s);
}

const char *store_moved_aside(const struct store *s)
{
	return s ? s->moved_aside : NULL;
}

/* The cached statement `id` of the main connection, reset and unbound. */
sqlite3_stmt *store_stmt(struct store *s, enum store_stmt id)
{
	if (!s->st[id]) {
		int rc = sqlite3_prepare_v3(s->db, main_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
					    &s->st[id], NULL);
		if (rc != SQLITE_OK) {
			LOG_E("store: cannot prepare \"%.40s\": %s", main_sql[id], sqlite3_errmsg(s->db));
			s->st[id] = NULL;
			return NULL;
		}
	}
	return s->st[id];
}

/* Logs a failed statement once with SQLite's detail and maps the code. */
int store_fail(struct store *s, sqlite3_stmt *st, int rc, const char *what)
{
	int err = store_sqlite_err(rc);
	if (err == 0)
		err = -EIO;
	LOG_E("store[%s]: %s: %s", s->path, what, sqlite3_errmsg(s->db));
	if (st) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
	}
	return err;
}

/* Steps a write statement to completion and resets it. */
static int step_done(struct store *s, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return store_fail(s, st, rc, what);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return 0;
}

/* --- sensors ------------------------------------------------------------ */

int store_sensor_id(struct store *s, const char *name, uint32_t *id)
{
	if (!s || !name || !name[0] || !id)
		return -EINVAL;
	sqlite3_stmt *st = store_stmt(s, ST_SENSOR_GET);
	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*id = (uint32_t)sqlite3_column_int64(st, 0);
		sqlite3_reset(st);
		return 0;
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return store_fail(s, st, rc, "sensor lookup");
	if (s->readonly)
		return -ENOENT;
	st = store_stmt(s, ST_SENSOR_INS);
	if (!st)
		return -EIO;
	const char *dot = strchr(name, '.');
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, name, dot ? (int)(dot - name) : -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, pdm_wall_ms());
	int e = step_done(s, st, "sensor insert");
	if (e < 0)
		return e;
	int64_t rid = sqlite3_last_insert_rowid(s->db);
	if (rid <= 0 || rid > STORE_MAX_SENSOR_ID) {
		LOG_E("store: sensor id %lld for %s is out of range", (long long)rid, name);
		return -ERANGE;
	}
	*id = (uint32_t)rid;
	return 0;
}

int store_sensor_name(struct store *s, uint32_t id, char *buf, size_t len)
{
	if (!s || !buf || len == 0)
		return -EINVAL;
	sqlite3_stmt *st = store_stmt(s, ST_SENSOR_NAME);
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		snprintf(buf, len, "%s", (const char *)sqlite3_column_text(st, 0));
		sqlite3_reset(st);
		return 0;
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? -ENOENT : store_fail(s, st, rc, "sensor name");
}

/* --- transactions, episodes, outbox, kv --------------------------------- */

int store_txn_begin(struct store *s)
{
	if (!s)
		return -EINVAL;
	if (s->in_txn)
		return -EALREADY;
	sqlite3_stmt *st = store_stmt(s, ST_BEGIN);
	if (!st)
		return -EIO;
	int e = step_done(s, st, "begin");
	if (e == 0)
		s->in_txn = true;
	return e;
}

int store_txn_commit(struct store *s)
{
	if (!s || !s->in_txn)
		return -EINVAL;
	sqlite3_stmt *st = store_stmt(s, ST_COMMIT);
	if (!st)
		return -EIO;
	int e = step_done(s, st, "commit");
	if (e < 0) {
		/* A failed COMMIT leaves the transaction open: undo it so the
		 * handle is usable and nothing half-done survives. */
		store_txn_rollback(s);
		return e;
	}
	s->in_txn = false;
	return 0;
}

void store_txn_rollback(struct store *s)
{
	if (!s || !s->in_txn)
		return;
	s->in_txn = false;
	if (sqlite3_get_autocommit(s->db))
		return; /* SQLite already rolled back (e.g. after SQLITE_FULL) */
	sqlite3_stmt *st = store_stmt(s, ST_ROLLBACK);
	if (st)
		step_done(s, st, "rollback");
}

int store_episode_next(struct store *s, const char *asset, uint64_t *seq)
{
	if (!s || !asset || !seq)
		return -EINVAL;
	sqlite3_stmt *st = store_stmt(s, ST_EPISODE_NEXT);
	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, asset, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW)
		return store_fail(s, st, rc, "episode counter");
	*seq = (uint64_t)sqlite3_column_int64(st, 0);
	/* Step to the end so the statement finishes its write. */
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return store_fail(s, st, rc, "episode counter");
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return 0;
}

int store_outbox_add(struct store *s, const char *topic, const char *payload, int64_t *id)
{
	if (!s || !topic || !payload)
		return -EINVAL;
	sqlite3_stmt *st = store_stmt(s, ST_OUTBOX_ADD);
	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, topic, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, payload, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, pdm_wall_ms());
	int e = step_done(s, st, "outbox add");
	if (e == 0 && id)
		*id = sqlite3_last_insert_rowid(s->db);
	return e;
}

int store_alert_commit(struct store *s, const char *asset, const char *state_key,
		       const char *state_value, const char *topic, const char *payload,
		       int64_t *outbox_id)
{
	if (!s || !asset || !topic || !payload || (state_key && !state_value))
		return -EINVAL;
	bool own = !s->in_txn;
	int e = own ? store_txn_begin(s) : 0;
	if (e < 0)
		return e;
	if (state_key) {
		size_t len = strlen(asset) + strlen(state_key) + 2;
		char *key = malloc(len);
		if (!key) {
			e = -ENOMEM;
			goto fail;
		}
		snprintf(key, len, "%s/%s", asset, state_key);
		e = store_kv_set(s, key, state_value);
		free(key);
		if (e < 0)
			goto fail;
	}
	if ((e = store_outbox_add(s, topic, payload, outbox_id)) < 0)
		goto fail;
	return own ? store_txn_commit(s) : 0;
fail:
	if (own)
		store_txn_rollback(s);
	return e;
}

int store_outbox_pending(struct store *s, int64_t after_id, size_t limit,
			 int (*cb)(const struct store_outbox_row *r, void *user), void *user)
{
	if (!s || !cb)
		return -EINVAL;
	sqlite3_stmt *st = store_stmt(s, ST_OUTBOX_PENDING);
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, after_id);
	sqlite3_bind_int64(st, 2, limit > 0 && limit < INT64_MAX ? (int64_t)limit : -1);
	int rc, ret = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_outbox_row r = {
			.id = sqlite3_column_int64(st, 0),
			.topic = (const char *)sqlite3_column_text(st, 1),
			.payload = (const char *)sqlite3_column_text(st, 2),
			.created_ms = sqlite3_column_int64(st, 3),
		};
		if ((ret = cb(&r, user)) != 0)
			break;
	}
	if (ret == 0 && rc != SQLITE_DONE)
		return store_fail(s, st, rc, "outbox read");
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return ret;
}

/* Deletes delivered rows but the newest OUTBOX_KEEP_DELIVERED. */
static int outbox_prune(struct store *s)
{
	s->marks_since_prune = 0;
	sqlite3_stmt *st = store_stmt(s, ST_OUTBOX_PRUNE);
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, OUTBOX_KEEP_DELIVERED);
	/* Housekeeping: a failure is logged, and neither undoes a mark nor
	 * fails an open. */
	(void)step_done(s, st, "outbox prune");
	return 0;
}

int store_outbox_mark_delivered(struct store *s, int64_t id)
{
	if (!s)
		return -EINVAL;
	sqlite3_stmt *st = store_stmt(s, ST_OUTBOX_MARK);
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, pdm_wall_ms());
	int e = step_done(s, st, "outbox mark delivered");
	if (e < 0)
		return e;
	if (sqlite3_changes(s->db) == 0) {
		st = store_stmt(s, ST_OUTBOX_EXISTS);
		if (!st)
			return -EIO;
		sqlite3_bind_int64(st, 1, id);
		int rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc == SQLITE_DONE)
			return -ENOENT;
		if (rc != SQLITE_ROW)
			return store_fail(s, st, rc, "outbox lookup");
		return 0;
	}
	if (++s->marks_since_prune >= OUTBOX_PRUNE_EVERY)
		return outbox_prune(s);
	return 0;
}

int store_outbox_count(struct store *s, int64_t *pending)
{
	if (!s || !pending)
		return -EINVAL;
	sqlite3_stmt *st = store_stmt(s, ST_OUTBOX_COUNT);
	if (!st)
		return -EIO;
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW)
		return store_fail(s, st, rc, "outbox count");
	*pending = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return 0;
}

int store_kv_get(struct store *s, const char *key, char **value)
{
	if (!s || !key || !value)
		return -EINVAL;
	sqlite3_stmt *st = store_stmt(s, ST_KV_GET);
	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		sqlite3_reset(st);
		return -ENOENT;
	}
	if (rc != SQLITE_ROW)
		return store_fail(s, st, rc, "kv get");
	const char *v = (const char *)sqlite3_column_text(st, 0);
	*value = strdup(v ? v : "");
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return *value ? 0 : -ENOMEM;
}

int store_kv_set(struct store *s, const char *key, const char *value)
{
	if (!s || !key || !value)
		return -EINVAL;
	sqlite3_stmt *st = store_stmt(s, ST_KV_SET);
	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, pdm_wall_ms());
	return step_done(s, st, "kv set");
}

int store_kv_del(struct store *s, const char *key)
{
	if (!s || !key)
		return -EINVAL;
	sqlite3_stmt *st = store_stmt(s, ST_KV_DEL);
	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	int e = step_done(s, st, "kv delete");
	if (e == 0 && sqlite3_changes(s->db) == 0)
		return -ENOENT;
	return e;
}

/* --- models --------------------------------------------------------------- */

int store_model_add(struct store *s, const struct store_model *m)
{
	if (!s || !m || !m->asset || !m->kind || !m->path)
		return -EINVAL;
	sqlite3_stmt *st = store_stmt(s, ST_MODEL_ADD);
	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, m->asset, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, m->version);
	sqlite3_bind_text(st, 3, m->kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, m->path, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, m->trained_at_ms);
	sqlite3_bind_int64(st, 6, (int64_t)m->windows);
	sqlite3_bind_double(st, 7, m->val_loss);
	sqlite3_bind_double(st, 8, m->threshold);
	return step_done(s, st, "model add");
}

int store_model_prune(struct store *s, const char *asset, int keep)
{
	if (!s || !asset || keep < 1)
		return -EINVAL;
	sqlite3_stmt *st = store_stmt(s, ST_MODEL_PRUNE);
	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, asset, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, keep);
	return step_done(s, st, "model prune");
}

static double column_double_or_nan(sqlite3_stmt *st, int col)
{
	return sqlite3_column_type(st, col) == SQLITE_NULL ? NAN : sqlite3_column_double(st, col);
}

int store_model_list(struct store *s, const char *asset, size_t limit,
		     int (*cb)(const struct store_model *m, void *user), void *user)
{
	if (!s || !asset || !cb)
		return -EINVAL;
	sqlite3_stmt *st = store_stmt(s, ST_MODEL_LIST);
	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, asset, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, limit > 0 && limit < INT64_MAX ? (int64_t)limit : -1);
	int rc, ret = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_model m = {
			.asset = (const char *)sqlite3_column_text(st, 0),
			.version = (uint32_t)sqlite3_column_int64(st, 1),
			.kind = (const char *)sqlite3_column_text(st, 2),
			.path = (const char *)sqlite3_column_text(st, 3),
			.trained_at_ms = sqlite3_column_int64(st, 4),
			.windows = (uint64_t)sqlite3_column_int64(st, 5),
			.val_loss = column_double_or_nan(st, 6),
			.threshold = column_double_or_nan(st, 7),
		};
		if ((ret = cb(&m, user)) != 0)
			break;
	}
	if (ret == 0 && rc != SQLITE_DONE)
		return store_fail(s, st, rc, "model list");
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return ret;
}
