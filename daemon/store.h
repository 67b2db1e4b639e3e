/*
 * store.h - pdmd's persistent state in one SQLite database (WAL mode).
 *
 * Holds the sample ring buffer (bounded by age and by count), the sensor
 * name -> id table, the alert outbox, per-asset episode counters, a small
 * key/value table for persisted per-asset state, and the model registry.
 *
 * Threads: samples are appended by ONE writer thread owned by the store and
 * fed through a bounded queue (store_submit, callable from any thread). All
 * other calls on a handle (reads, sensor ids, kv, outbox, models, the txn
 * calls) must come from one thread at a time - normally the daemon's main
 * thread. Another thread that wants to read (the trainer) opens its own
 * handle with store_open_reader(); WAL lets it read beside the writer.
 *
 * Durability (see docs/storage.md): with synchronous=NORMAL (default) a
 * process crash or kill -9 loses nothing that was committed; a power cut
 * may lose the last commits since the WAL was last synced, never the
 * database's consistency. synchronous=FULL also survives a power cut
 * without losing a commit. Samples still in the queue are not committed:
 * store_flush() waits for them.
 *
 * Errors: calls return 0 or a negative errno-style code (-ENOSPC disk or
 * max_db_bytes full, -EBUSY locked beyond busy_timeout, -EROFS read-only
 * handle, -PDM_ECORRUPT, -EIO). SQLite's own message is logged here, once;
 * callers decide what to do and need not log the detail again.
 */
#ifndef PDM_STORE_H
#define PDM_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sample.h"

struct store;

enum store_sync {
	STORE_SYNC_OFF = 0,    /* fastest; a power cut can corrupt the database */
	STORE_SYNC_NORMAL = 1, /* a power cut can lose the newest commits */
	STORE_SYNC_FULL = 2,   /* every commit reaches the disk before returning */
};

enum store_check {
	STORE_CHECK_NONE = 0,
	STORE_CHECK_QUICK = 1, /* PRAGMA quick_check: every page and record */
	STORE_CHECK_FULL = 2,  /* PRAGMA integrity_check: also index consistency */
};

struct store_opts {
	int64_t retention_ms;   /* samples older than now - retention are evicted; 0 = no age limit */
	int64_t max_samples;    /* hard cap on samples kept (ring size); 0 = no cap */
	int synchronous;        /* enum store_sync */
	size_t queue_capacity;  /* samples the writer queue holds */
	int busy_timeout_ms;    /* wait this long for another connection's lock */
	int check;              /* enum store_check, run on open */
	int64_t max_db_bytes;   /* refuse to grow the database beyond this; 0 = no limit */
	int cache_kib;          /* page cache per connection */
};

/* Defaults: retention 7 d, max_samples 10,000,000, NORMAL, queue 65,536,
 * busy timeout 5 s, quick check, no size limit, 8 MiB cache. */
void store_opts_default(struct store_opts *o);

/*
 * Opens (creating or migrating) the database at `path`; `o` may be NULL for
 * defaults. Runs the integrity check; a file that fails it (or is not a
 * database) is renamed to "<path>.corrupt-<UTC timestamp>" together with its
 * -wal/-shm files, the error is logged with the new name, and a fresh
 * database is created. Returns NULL with a message in err on failure.
 */
struct store *store_open(const char *path, const struct store_opts *o, char *err, size_t errlen);

/* Opens a read-only handle for another thread (no writer, no check).
 * Returns NULL with a message in err on failure. */
struct store *store_open_reader(const char *path, char *err, size_t errlen);

/* Stops the writer after it has committed everything queued, then closes.
 * Accepts NULL. */
void store_close(struct store *s);

/* Path of the file a corrupt database was moved to by store_open, or NULL
 * if the database opened cleanly. Valid until store_close. */
const char *store_moved_aside(const struct store *s);

/* Gets or creates the id of sensor `name` ("asset.sensor"; the part before
 * the first '.' is recorded as the asset). Ids are stable forever. */
int store_sensor_id(struct store *s, const char *name, uint32_t *id);
/* Copies the name of sensor `id` into buf; -ENOENT if unknown. */
int store_sensor_name(struct store *s, uint32_t id, char *buf, size_t len);

/* --- samples: writer thread ------------------------------------------ */

/* Starts the writer thread; -EALREADY if running. */
int store_writer_start(struct store *s);

/*
 * Queues n samples for the writer; never blocks. All or nothing: when the
 * queue cannot take all n, none are queued, they are counted in
 * stats.dropped_full, a rate-limited warning is logged and -EAGAIN is
 * returned. -ENOTCONN if the writer is not running. Thread-safe.
 */
int store_submit(struct store *s, const struct pdm_sample *v, size_t n);

/* Waits until every sample submitted before the call is committed (or
 * dropped by a write error). 0, -ETIMEDOUT, or -ENOTCONN. Thread-safe. */
int store_flush(struct store *s, int timeout_ms);

/* Appends n samples synchronously in one transaction, evicting as the
 * writer does (for tools, replay and tests; do not mix with a running
 * writer from another thread of the same handle - it is serialised, but
 * slower). A sample with the same sensor and ts_ms as a stored one
 * replaces it. Returns 0 or a negative code (-ENOSPC when the disk or
 * max_db_bytes is full; nothing of the batch is stored then). */
int store_append(struct store *s, const struct pdm_sample *v, size_t n);

/* Changes the database size limit at run time (0 = none). */
int store_set_max_db_bytes(struct store *s, int64_t bytes);

struct store_stats {
	uint64_t appended;      /* samples committed */
	uint64_t dropped_full;  /* refused by store_submit: queue full */
	uint64_t dropped_error; /* lost because their batch failed to commit */
	uint64_t evicted;       /* samples deleted by retention or the cap */
	uint64_t commits;
	uint64_t write_errors;  /* failed batches */
	int last_error;         /* negative code of the last failed batch, 0 if none */
	size_t queue_len;
	int64_t samples_kept;
	int64_t sqlite_bytes; /* held by SQLite (every connection of the process) */
};
/* Thread-safe snapshot. */
void store_stats(struct store *s, struct store_stats *st);

/* --- samples: reads --------------------------------------------------- */

/* The newest (up to) n samples of `sensor`, oldest first, into ts/val/q
 * (each of n elements; q may be NULL). *got = how many. A STALE sample's
 * value is NaN. */
int store_read_latest(struct store *s, uint32_t sensor, size_t n, int64_t *ts, double *val,
		      uint8_t *q, size_t *got);

/* Row callback: return 0 to continue, anything else stops the read and is
 * returned by the reader. */
typedef int (*store_row_cb)(uint32_t sensor, int64_t ts_ms, double value, uint8_t quality,
			    void *user);

/* Streams every sample of the ns sensors with t0 <= ts < t1 in time order
 * (ties by position in `sensors`) to cb, holding one row per sensor in
 * memory. Runs in one read transaction (a consistent snapshot). */
int store_read_range(struct store *s, const uint32_t *sensors, size_t ns, int64_t t0, int64_t t1,
		     store_row_cb cb, void *user);

/* Writes CSV: header "ts_ms,<sensor name>..." then one line per distinct
 * timestamp with each sensor's value at that instant, empty where a sensor
 * has no GOOD sample at it (the format `pdmd replay --csv` reads). */
int store_export_csv(struct store *s, const uint32_t *sensors, size_t ns, int64_t t0, int64_t t1,
		     FILE *out);

/* --- transactions, alerts, episodes, outbox, kv ----------------------- */

/* Groups the calls below into one transaction (not nestable). An alert
 * "raise" is: begin, episode_next, kv_set(state), outbox_add, commit - so
 * the episode number, the asset's state and the message SCADA is owed are
 * stored together or not at all. */
int store_txn_begin(struct store *s);
int store_txn_commit(struct store *s);
void store_txn_rollback(struct store *s);

/* Increments and returns the asset's episode counter (first is 1). Unique
 * and increasing across restarts. */
int store_episode_next(struct store *s, const char *asset, uint64_t *seq);

/* Queues a message for publishing; *id (may be NULL) is its position. */
int store_outbox_add(struct store *s, const char *topic, const char *payload, int64_t *id);

/* One transaction: kv[asset "/" state_key] = state_value (skipped when
 * state_key is NULL) and the outbox row. Inside a transaction opened with
 * store_txn_begin it joins that one; on failure the caller then rolls
 * back. */
int store_alert_commit(struct store *s, const char *asset, const char *state_key,
		       const char *state_value, const char *topic, const char *payload,
		       int64_t *outbox_id);

struct store_outbox_row {
	int64_t id;
	const char *topic;   /* valid during the callback only */
	const char *payload;
	int64_t created_ms;
	int64_t delivered_ms; /* 0 = not delivered yet (store_outbox_list only) */
};
/* Calls cb for up to `limit` (0 = all) undelivered rows with id >
 * after_id, in id order. cb may call store_outbox_mark_delivered. A
 * non-zero cb return stops and is returned. */
int store_outbox_pending(struct store *s, int64_t after_id, size_t limit,
			 int (*cb)(const struct store_outbox_row *r, void *user), void *user);
/* Marks a row delivered (idempotent); -ENOENT if no such row. Old
 * delivered rows are pruned (the newest 10,000 are kept for inspection). */
int store_outbox_mark_delivered(struct store *s, int64_t id);
/* Calls cb for every row, delivered or pending, created at or after
 * since_ms, in id order (for pdmctl: what was sent and what SCADA is still
 * owed). A non-zero cb return stops and is returned. Runs in one read
 * snapshot. */
int store_outbox_list(struct store *s, int64_t since_ms,
		      int (*cb)(const struct store_outbox_row *r, void *user), void *user);
/* Number of undelivered rows. */
int store_outbox_count(struct store *s, int64_t *pending);

/* *value is malloc'd, caller frees; -ENOENT when the key is absent. */
int store_kv_get(struct store *s, const char *key, char **value);
int store_kv_set(struct store *s, const char *key, const char *value);
int store_kv_del(struct store *s, const char *key);

/* --- model registry --------------------------------------------------- */

struct store_model {
	const char *asset;
	uint32_t version;
	const char *kind;   /* "mlp", "cnn" */
	const char *path;
	int64_t trained_at_ms;
	uint64_t windows;   /* training windows used */
	double val_loss;
	double threshold;
};
/* Records a model; replaces an existing (asset, version). */
int store_model_add(struct store *s, const struct store_model *m);
/* Keeps the rows of the asset's newest `keep` versions only, as the trainer
 * keeps their files (a row a retrain would otherwise add for ever). */
int store_model_prune(struct store *s, const char *asset, int keep);
/* Calls cb for the asset's models, newest version first, at most limit
 * (0 = all); strings valid during the callback only. */
int store_model_list(struct store *s, const char *asset, size_t limit,
		     int (*cb)(const struct store_model *m, void *user), void *user);

#endif
