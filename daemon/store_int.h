/*
 * store_int.h - what store.c, store_write.c and store_read.c share. Not a
 * public header: the daemon includes store.h only.
 */
#ifndef PDM_STORE_INT_H
#define PDM_STORE_INT_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>

#include "log.h"
#include "store.h"

/* Sensor ids index an array in the writer; ids come from the sensors
 * table and are small and dense. */
#define STORE_MAX_SENSOR_ID (1u << 20)

/* Sample key: sensor << 42 | ts_ms. 42 bits of milliseconds reach the
 * year 2109; 20 bits of sensor id keep the key below 2^62. */
#define STORE_TS_BITS 42
#define STORE_TS_LIMIT ((int64_t)1 << STORE_TS_BITS)
static inline int64_t store_key(uint32_t sensor, int64_t ts)
{
	return ((int64_t)sensor << STORE_TS_BITS) | ts;
}
static inline int64_t store_key_ts(int64_t k)
{
	return k & (STORE_TS_LIMIT - 1);
}

enum store_stmt {
	ST_BEGIN,
	ST_BEGIN_READ,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_SENSOR_GET,
	ST_SENSOR_INS,
	ST_SENSOR_NAME,
	ST_LATEST,
	ST_QUALITY_RANGE,
	ST_KV_GET,
	ST_KV_SET,
	ST_KV_DEL,
	ST_EPISODE_NEXT,
	ST_OUTBOX_ADD,
	ST_OUTBOX_PENDING,
	ST_OUTBOX_MARK,
	ST_OUTBOX_EXISTS,
	ST_OUTBOX_PRUNE,
	ST_OUTBOX_COUNT,
	ST_OUTBOX_LIST,
	ST_MODEL_ADD,
	ST_MODEL_LIST,
	ST_MODEL_PRUNE,
	ST__COUNT
};

enum store_wstmt {
	WS_BEGIN,
	WS_COMMIT,
	WS_ROLLBACK,
	WS_INSERT,
	WS_EXISTS,
	WS_Q_SET,
	WS_Q_DEL,
	WS_DEL_RANGE,
	WS_Q_DEL_RANGE,
	WS_MIN_TS,
	WS__COUNT
};

/* What the writer knows about one sensor's rows, kept in memory so that
 * eviction needs no counting queries. */
struct store_sensor_state {
	int64_t count;  /* rows in samples */
	int64_t min_ts; /* oldest ts (valid when count > 0) */
	int64_t max_ts; /* newest ts (valid when count > 0) */
	int64_t nq;     /* rows in sample_quality */
};

struct store {
	char *path;
	char *moved_aside;
	struct store_opts o;
	bool readonly;
	bool in_txn;
	unsigned marks_since_prune;

	sqlite3 *db; /* the caller's thread */
	sqlite3_stmt *st[ST__COUNT];

	/* Sample writes: wdb, ws[], sensor states, kept, batch buffers. */
	pthread_mutex_t wmu;
	sqlite3 *wdb;
	sqlite3_stmt *ws[WS__COUNT];
	struct store_sensor_state *sens, *sens_saved;
	size_t nsens;
	int64_t kept;
	int64_t next_age_ms;
	struct pdm_sample *batch, *tmp;
	size_t batch_cap;
	struct pdm_ratelimit rl_err;

	/* Queue and statistics: qmu. */
	pthread_mutex_t qmu;
	pthread_cond_t qcv;    /* writer waits for work */
	pthread_cond_t donecv; /* store_flush waits for progress */
	struct pdm_sample *q;
	size_t qhead, qlen;
	uint64_t submitted, done;
	bool running, stopping;
	pthread_t thread;
	struct store_stats stats;
	struct pdm_ratelimit rl_full;
};

/* store_sql.c */
int store_sqlite_err(int rc);
int store_exec(sqlite3 *db, const char *sql);
/* Runs a one-value query; returns the SQLite code. */
int store_query_int(sqlite3 *db, const char *sql, int64_t *v);
int store_set_page_limit(sqlite3 *db, int64_t max_bytes);

/* store.c */
sqlite3_stmt *store_stmt(struct store *s, enum store_stmt id);
int store_fail(struct store *s, sqlite3_stmt *st, int rc, const char *what);

/* store_write.c */
int store_writer_init(struct store *s); /* SQLite code */
void store_writer_stop(struct store *s);
void store_writer_cleanup(struct store *s);

#endif
