/*
 * test_store.c - the SQLite store: schema, sensors, appends and reads,
 * ring eviction by count and by age, file growth, the writer queue,
 * outbox/episodes/kv/models, corrupt-database recovery and disk full.
 *
 * Every test works on a fresh database in its own temporary directory and
 * checks results against the file itself (a second sqlite3 connection),
 * not only through the store's API.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"
#include "pdm_error.h"
#include "pdm_time.h"
#include "store.h"
#include "test_util.h"

struct fx {
	char dir[256];
	char path[300];
	struct store_opts o;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	if (!f || test_mkdtemp(f->dir, sizeof(f->dir)) < 0)
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/samples.db", f->dir);
	store_opts_default(&f->o);
	f->o.retention_ms = 0;
	f->o.max_samples = 0;
	pdm_log_level = LOG_ERR;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	test_rmtree(f->dir);
	free(f);
	return 0;
}

static struct store *open_ok(struct fx *f)
{
	char err[256] = "";
	struct store *s = store_open(f->path, &f->o, err, sizeof(err));
	if (!s)
		print_error("store_open: %s\n", err);
	assert_non_null(s);
	return s;
}

/* A one-number query on a separate connection to the same file. */
static int64_t sql_int(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int64_t v = -1;
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static char *sql_text(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	char *v = NULL;
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static long file_size(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

static struct pdm_sample smp(uint32_t sensor, int64_t ts, double v, uint8_t q)
{
	struct pdm_sample s = { .sensor = sensor, .ts_ms = ts, .value = v, .quality = q };
	return s;
}

/* A fresh file gets the current schema, WAL mode, and reopens cleanly. */
static void test_open_schema(void **state)
{
	struct fx *f = *state;
	struct store *s = open_ok(f);
	assert_null(store_moved_aside(s));
	store_close(s);
	assert_int_equal(sql_int(f->path, "PRAGMA user_version"), 1);
	char *jm = sql_text(f->path, "PRAGMA journal_mode");
	assert_string_equal(jm, "wal");
	free(jm);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM sqlite_master WHERE name IN "
					  "('samples','sensors','outbox','episodes','kv','models',"
					  "'sample_quality')"),
			 7);
	s = open_ok(f);
	store_close(s);
	store_close(NULL);
}

/* Unusable paths and arguments give NULL and a message, not a crash. */
static void test_open_errors(void **state)
{
	struct fx *f = *state;
	char err[256] = "";
	char path[400];
	snprintf(path, sizeof(path), "%s/no/such/dir/samples.db", f->dir);
	assert_null(store_open(path, &f->o, err, sizeof(err)));
	assert_non_null(strstr(err, path));
	assert_null(store_open("", NULL, err, sizeof(err)));
	assert_null(store_open(NULL, NULL, NULL, 0));
	/* Nothing was moved aside or created next to the missing dir. */
	assert_int_equal(file_size(f->path), -1);
}

/* A database from a newer pdmd is refused with a clear message, and left
 * alone (not moved aside: it is not corrupt). */
static void test_open_newer_schema(void **state)
{
	struct fx *f = *state;
	store_close(open_ok(f));
	sqlite3 *db;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version=99", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	char err[256] = "";
	assert_null(store_open(f->path, &f->o, err, sizeof(err)));
	assert_non_null(strstr(err, "newer"));
	assert_int_equal(sql_int(f->path, "PRAGMA user_version"), 99);
}

/* Sensor ids: get-or-create, distinct, stable across reopen; asset is
 * the part of the name before the first dot. */
static void test_sensor_ids(void **state)
{
	struct fx *f = *state;
	struct store *s = open_ok(f);
	uint32_t a, b, a2;
	assert_int_equal(store_sensor_id(s, "pump1.vib_x", &a), 0);
	assert_int_equal(store_sensor_id(s, "pump1.temp", &b), 0);
	assert_int_equal(store_sensor_id(s, "pump1.vib_x", &a2), 0);
	assert_int_equal(a, a2);
	assert_int_not_equal(a, b);
	assert_int_equal(store_sensor_id(s, "", &a2), -EINVAL);
	char name[64];
	assert_int_equal(store_sensor_name(s, b, name, sizeof(name)), 0);
	assert_string_equal(name, "pump1.temp");
	assert_int_equal(store_sensor_name(s, 9999, name, sizeof(name)), -ENOENT);
	store_close(s);
	s = open_ok(f);
	assert_int_equal(store_sensor_id(s, "pump1.temp", &a2), 0);
	assert_int_equal(a2, b);
	store_close(s);
	char *asset = sql_text(f->path, "SELECT asset FROM sensors WHERE name='pump1.temp'");
	assert_string_equal(asset, "pump1");
	free(asset);
}

/* Newest-N reads: time order, right values and qualities; duplicates
 * (in a batch and across batches, in and out of order) replace. */
static void test_append_read_latest(void **state)
{
	struct fx *f = *state;
	struct store *s = open_ok(f);
	struct pdm_sample v[200];
	for (int i = 0; i < 100; i++) {
		v[2 * i] = smp(1, 1000 + 10 * i, i * 0.5, PDM_Q_GOOD);
		v[2 * i + 1] = smp(2, 1000 + 10 * i, -i, PDM_Q_GOOD);
	}
	v[20] = smp(1, 1000 + 100, 7.25, PDM_Q_BAD); /* sensor 1, i = 10 */
	assert_int_equal(store_append(s, v, 200), 0);
	struct pdm_sample late[] = {
		smp(1, 1000 + 990, NAN, PDM_Q_STALE), /* replaces the newest of sensor 1 */
		smp(1, 1005, 1.0, PDM_Q_GOOD),        /* out of order, new */
		smp(1, 1000, 3.0, PDM_Q_GOOD),        /* replaces the oldest ... */
		smp(1, 1000, 4.0, PDM_Q_GOOD),        /* ... and the later one wins */
	};
	assert_int_equal(store_append(s, late, 4), 0);

	int64_t ts[128];
	double val[128];
	uint8_t q[128];
	size_t got = 0;
	assert_int_equal(store_read_latest(s, 1, 3, ts, val, q, &got), 0);
	assert_int_equal(got, 3);
	assert_int_equal(ts[0], 1970);
	assert_int_equal(ts[2], 1990);
	assert_true(val[1] == 98 * 0.5);
	assert_true(isnan(val[2]));
	assert_int_equal(q[2], PDM_Q_STALE);
	assert_int_equal(q[1], PDM_Q_GOOD);

	assert_int_equal(store_read_latest(s, 1, 128, ts, val, q, &got), 0);
	assert_int_equal(got, 101);
	assert_int_equal(ts[0], 1000);
	assert_true(val[0] == 4.0);
	assert_int_equal(ts[1], 1005);
	assert_int_equal(ts[11], 1100);
	assert_int_equal(q[11], PDM_Q_BAD);
	assert_true(val[11] == 7.25);
	for (size_t i = 1; i < got; i++)
		assert_true(ts[i] > ts[i - 1]);

	assert_int_equal(store_read_latest(s, 77, 8, ts, val, NULL, &got), 0);
	assert_int_equal(got, 0);
	assert_int_equal(store_read_latest(s, UINT32_MAX, 8, ts, val, NULL, &got), 0);
	assert_int_equal(got, 0);
	struct store_stats st;
	store_stats(s, &st);
	assert_int_equal(st.samples_kept, 201);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM samples"), 201);
	/* Invalid samples are refused whole. */
	struct pdm_sample badid = smp(0, 1, 1, 0);
	assert_int_equal(store_append(s, &badid, 1), -EINVAL);
	struct pdm_sample badts = smp(1, -1, 1, 0);
	assert_int_equal(store_append(s, &badts, 1), -EINVAL);
	store_close(s);
}

struct rows {
	size_t n, stop_at;
	uint32_t sensor[64];
	int64_t ts[64];
	double v[64];
};

static int collect(uint32_t sensor, int64_t ts, double v, uint8_t q, void *user)
{
	(void)q;
	struct rows *r = user;
	if (r->stop_at && r->n == r->stop_at)
		return 42;
	assert_true(r->n < 64);
	r->sensor[r->n] = sensor;
	r->ts[r->n] = ts;
	r->v[r->n] = v;
	r->n++;
	return 0;
}

/* Range reads merge several sensors in time order (ties in the caller's
 * sensor order), honour [t0, t1), and stop when the callback says so. */
static void test_read_range(void **state)
{
	struct fx *f = *state;
	struct store *s = open_ok(f);
	struct pdm_sample v[] = {
		smp(1, 100, 1, 0), smp(1, 200, 2, 0), smp(1, 300, 3, 0),
		smp(2, 150, 10, 0), smp(2, 200, 20, 0), smp(2, 400, 40, 0),
		smp(3, 100, 99, 0), /* not asked for */
	};
	assert_int_equal(store_append(s, v, 7), 0);
	uint32_t sensors[] = { 2, 1 };
	struct rows r = { 0 };
	assert_int_equal(store_read_range(s, sensors, 2, 100, 400, collect, &r), 0);
	static const int64_t ets[] = { 100, 150, 200, 200, 300 };
	static const uint32_t esn[] = { 1, 2, 2, 1, 1 };
	assert_int_equal(r.n, 5);
	for (size_t i = 0; i < 5; i++) {
		assert_int_equal(r.ts[i], ets[i]);
		assert_int_equal(r.sensor[i], esn[i]);
	}
	struct rows r2 = { .stop_at = 2 };
	assert_int_equal(store_read_range(s, sensors, 2, 0, 1000, collect, &r2), 42);
	struct rows r3 = { 0 };
	assert_int_equal(store_read_range(s, sensors, 2, 500, 600, collect, &r3), 0);
	assert_int_equal(r3.n, 0);
	store_close(s);
}

/* CSV: header of names, one line per timestamp, empty cells where a
 * sensor has no GOOD value; exact round-trippable numbers. */
static void test_export_csv(void **state)
{
	struct fx *f = *state;
	struct store *s = open_ok(f);
	uint32_t a, b;
	assert_int_equal(store_sensor_id(s, "fan.rpm", &a), 0);
	assert_int_equal(store_sensor_id(s, "fan.\"t,c\"", &b), 0);
	struct pdm_sample v[] = {
		smp(a, 1000, 1500, 0), smp(b, 1000, 0.1, 0),
		smp(a, 1100, 1501.5, 0),
		smp(b, 1200, 99, PDM_Q_BAD),
	};
	assert_int_equal(store_append(s, v, 4), 0);
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	uint32_t ids[] = { a, b };
	assert_int_equal(store_export_csv(s, ids, 2, 0, 5000, out), 0);
	fclose(out);
	assert_string_equal(buf, "ts_ms,fan.rpm,\"fan.\"\"t,c\"\"\"\n"
				 "1000,1500,0.1\n"
				 "1100,1501.5,\n"
				 "1200,,\n");
	free(buf);
	store_close(s);
}

/* The writer thread: submitted samples are committed by flush; a batch
 * bigger than the queue is refused and counted; after close, submit is
 * refused. */
static void test_writer_queue(void **state)
{
	struct fx *f = *state;
	f->o.queue_capacity = 256;
	struct store *s = open_ok(f);
	struct pdm_sample v[300];
	for (int i = 0; i < 300; i++)
		v[i] = smp(1 + i % 3, 10000 + i, i, 0);
	assert_int_equal(store_submit(s, v, 10), -ENOTCONN);
	assert_int_equal(store_writer_start(s), 0);
	assert_int_equal(store_writer_start(s), -EALREADY);
	for (int i = 0; i < 200; i += 20)
		assert_int_equal(store_submit(s, v + i, 20), 0);
	assert_int_equal(store_submit(s, v, 257), -EAGAIN);
	assert_int_equal(store_flush(s, 10000), 0);
	struct store_stats st;
	store_stats(s, &st);
	assert_int_equal(st.appended, 200);
	assert_int_equal(st.dropped_full, 257);
	assert_int_equal(st.queue_len, 0);
	assert_int_equal(st.samples_kept, 200);
	assert_true(st.commits >= 1);
	/* Close drains what is still queued. */
	assert_int_equal(store_submit(s, v + 200, 100), 0);
	store_close(s);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM samples"), 300);
}

/* The count cap: after every commit at most max_samples rows, and the
 * rows evicted are the globally oldest even when sensors run at very
 * different rates. */
static void test_evict_count(void **state)
{
	struct fx *f = *state;
	f->o.max_samples = 1000;
	struct store *s = open_ok(f);
	/* sensor 1 at 100 ms, sensors 2..4 at 1 s */
	struct pdm_sample v[130];
	int64_t t = 1000000;
	for (int b = 0; b < 100; b++) {
		size_t n = 0;
		for (int k = 0; k < 10; k++, t += 100) {
			v[n++] = smp(1, t, (double)t, 0);
			if (t % 1000 == 0)
				for (uint32_t sn = 2; sn <= 4; sn++)
					v[n++] = smp(sn, t, (double)t, 0);
		}
		assert_int_equal(store_append(s, v, n), 0);
		int64_t cnt = sql_int(f->path, "SELECT count(*) FROM samples");
		assert_true(cnt <= 1000);
		struct store_stats st;
		store_stats(s, &st);
		assert_int_equal(st.samples_kept, cnt);
	}
	int64_t cnt = sql_int(f->path, "SELECT count(*) FROM samples");
	assert_true(cnt >= 1000 - 1000 / 128 - 13);
	/* Global oldest-first: every sensor keeps (about) the same time span. */
	int64_t newest = t - 100;
	for (uint32_t sn = 1; sn <= 4; sn++) {
		char sql[96];
		snprintf(sql, sizeof(sql), "SELECT min(ts) FROM samples_v WHERE sensor=%u", sn);
		int64_t mn = sql_int(f->path, sql);
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM samples_v WHERE sensor=%u", sn);
		int64_t c = sql_int(f->path, sql);
		/* 1.3 samples per 100 ms overall: ~770 ticks of 100 ms kept. */
		assert_true(newest - mn > 70000 && newest - mn < 80000);
		/* No holes: the kept rows are the newest contiguous run. */
		int64_t step = sn == 1 ? 100 : 1000;
		assert_int_equal(c, (newest - newest % step - mn) / step + 1);
	}
	struct store_stats st;
	store_stats(s, &st);
	assert_int_equal(st.appended, (uint64_t)st.samples_kept + st.evicted);
	store_close(s);
	/* Reopen rebuilds the ring state from the file and keeps the cap. */
	s = open_ok(f);
	struct pdm_sample one = smp(2, t + 1000, 1, 0);
	assert_int_equal(store_append(s, &one, 1), 0);
	assert_true(sql_int(f->path, "SELECT count(*) FROM samples") <= 1000);
	store_close(s);
}

/* Retention by age, on append and on an idle writer. */
static void test_evict_age(void **state)
{
	struct fx *f = *state;
	f->o.retention_ms = 60000;
	struct store *s = open_ok(f);
	int64_t now = pdm_wall_ms();
	struct pdm_sample v[240];
	for (int i = 0; i < 120; i++) {
		v[2 * i] = smp(1, now - 120000 + 1000 * i, i, i % 2 ? PDM_Q_BAD : 0);
		v[2 * i + 1] = smp(2, now - 120000 + 1000 * i, i, 0);
	}
	assert_int_equal(store_append(s, v, 240), 0);
	char sql[128];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM samples_v WHERE ts < %lld",
		 (long long)(now - 60000));
	assert_int_equal(sql_int(f->path, sql), 0);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM samples_v WHERE ts >= %lld",
		 (long long)(now - 59000));
	assert_int_equal(sql_int(f->path, sql), 2 * 59);
	/* Quality rows go with their samples. */
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM sample_quality WHERE ts < %lld",
		 (long long)(now - 60000));
	assert_int_equal(sql_int(f->path, sql), 0);
	store_close(s);

	/* Idle: nothing is appended, old samples still go. */
	f->o.retention_ms = 1500;
	s = open_ok(f);
	assert_int_equal(store_writer_start(s), 0);
	now = pdm_wall_ms();
	struct pdm_sample w[] = { smp(3, now - 1000, 1, 0), smp(3, now + 60000, 2, 0) };
	assert_int_equal(store_submit(s, w, 2), 0);
	assert_int_equal(store_flush(s, 5000), 0);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM samples_v WHERE sensor=3"), 2);
	int64_t cnt = 2;
	for (int i = 0; i < 60 && cnt == 2; i++) {
		test_sleep_ms(100);
		cnt = sql_int(f->path, "SELECT count(*) FROM samples_v WHERE sensor=3");
	}
	assert_int_equal(cnt, 1);
	store_close(s);
}

/* Writing ten times the cap leaves the file within 20% of its size at
 * one cap: freed pages are reused, the file stops growing. Sizes are
 * taken after close, when the WAL has been checkpointed into the file. */
static void test_file_stops_growing(void **state)
{
	struct fx *f = *state;
	f->o.max_samples = 20000;
	struct pdm_sample v[1000];
	long size1 = -1;
	for (int64_t i = 0; i < 10 * 20000;) {
		struct store *s = open_ok(f);
		int64_t end = i == 0 ? 20000 : 10 * 20000;
		for (; i < end; i += 1000) {
			for (int k = 0; k < 1000; k++)
				v[k] = smp(1 + (uint32_t)((i + k) % 16),
					   1000000 + 100 * ((i + k) / 16), (double)k * 0.37, 0);
			assert_int_equal(store_append(s, v, 1000), 0);
		}
		store_close(s);
		if (size1 < 0)
			size1 = file_size(f->path);
	}
	long size10 = file_size(f->path);
	assert_true(size1 > 0);
	print_message("# size at 1x cap %ld, at 10x cap %ld\n", size1, size10);
	assert_true(size10 <= size1 + size1 / 5);
	assert_true(sql_int(f->path, "SELECT count(*) FROM samples") <= 20000);
}

static int outbox_collect(const struct store_outbox_row *r, void *user)
{
	struct rows *rs = user;
	rs->ts[rs->n] = r->id;
	rs->v[rs->n] = atof(r->payload);
	assert_string_equal(r->topic, "pdm/alerts/pump1");
	assert_true(r->created_ms > 0);
	rs->n++;
	return 0;
}

static int deliver_cb(const struct store_outbox_row *r, void *user)
{
	struct store **s = user;
	return store_outbox_mark_delivered(*s, r->id);
}

/* Outbox: in order, mark delivered (idempotent), after_id/limit, and it
 * survives a reopen. */
static void test_outbox(void **state)
{
	struct fx *f = *state;
	struct store *s = open_ok(f);
	int64_t id[4];
	for (int i = 0; i < 4; i++) {
		char p[16];
		snprintf(p, sizeof(p), "%d", i);
		assert_int_equal(store_outbox_add(s, "pdm/alerts/pump1", p, &id[i]), 0);
	}
	assert_true(id[0] < id[1] && id[1] < id[2] && id[2] < id[3]);
	assert_int_equal(store_outbox_mark_delivered(s, id[1]), 0);
	assert_int_equal(store_outbox_mark_delivered(s, id[1]), 0);
	assert_int_equal(store_outbox_mark_delivered(s, id[3] + 100), -ENOENT);
	store_close(s);

	s = open_ok(f);
	struct rows r = { 0 };
	assert_int_equal(store_outbox_pending(s, 0, 0, outbox_collect, &r), 0);
	assert_int_equal(r.n, 3);
	assert_int_equal(r.ts[0], id[0]);
	assert_int_equal(r.ts[1], id[2]);
	assert_int_equal(r.ts[2], id[3]);
	assert_true(r.v[1] == 2);
	struct rows r2 = { 0 };
	assert_int_equal(store_outbox_pending(s, id[0], 1, outbox_collect, &r2), 0);
	assert_int_equal(r2.n, 1);
	assert_int_equal(r2.ts[0], id[2]);
	int64_t pending;
	assert_int_equal(store_outbox_count(s, &pending), 0);
	assert_int_equal(pending, 3);
	/* Ids are not reused even when every row is gone. */
	for (int i = 0; i < 4; i++)
		assert_int_equal(store_outbox_mark_delivered(s, id[i]), 0);
	assert_int_equal(store_outbox_count(s, &pending), 0);
	assert_int_equal(pending, 0);
	int64_t nid;
	assert_int_equal(store_outbox_add(s, "pdm/alerts/pump1", "9", &nid), 0);
	assert_true(nid > id[3]);
	/* The publisher's loop: deliver from inside the iteration. */
	assert_int_equal(store_outbox_add(s, "pdm/alerts/pump1", "10", NULL), 0);
	struct store *sp = s;
	assert_int_equal(store_outbox_pending(s, 0, 0, deliver_cb, &sp), 0);
	assert_int_equal(store_outbox_count(s, &pending), 0);
	assert_int_equal(pending, 0);
	store_close(s);
}

struct list_rows {
	int n;
	int64_t id[8], delivered[8];
	char payload[8][16];
};

static int list_collect(const struct store_outbox_row *r, void *user)
{
	struct list_rows *l = user;
	assert_true(l->n < 8);
	l->id[l->n] = r->id;
	l->delivered[l->n] = r->delivered_ms;
	snprintf(l->payload[l->n], sizeof(l->payload[0]), "%s", r->payload);
	l->n++;
	return strcmp(r->payload, "stop") == 0 ? 7 : 0;
}

/* The listing shows delivered and pending rows in id order, filtered by
 * creation time, from a read-only handle too; a callback's stop value is
 * returned. */
static void test_outbox_list(void **state)
{
	struct fx *f = *state;
	struct store *s = open_ok(f);
	int64_t id[3];
	assert_int_equal(store_outbox_add(s, "pdm/alerts/a", "0", &id[0]), 0);
	assert_int_equal(store_outbox_add(s, "pdm/alerts/a", "1", &id[1]), 0);
	assert_int_equal(store_outbox_add(s, "pdm/alerts/b", "2", &id[2]), 0);
	assert_int_equal(store_outbox_mark_delivered(s, id[1]), 0);
	struct list_rows l = { 0 };
	assert_int_equal(store_outbox_list(s, 0, list_collect, &l), 0);
	assert_int_equal(l.n, 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(l.id[i], id[i]);
	assert_int_equal(l.delivered[0], 0);
	assert_true(l.delivered[1] > 0);
	assert_int_equal(l.delivered[2], 0);
	assert_string_equal(l.payload[2], "2");
	/* Nothing was created in the future. */
	struct list_rows none = { 0 };
	assert_int_equal(store_outbox_list(s, pdm_wall_ms() + 3600000, list_collect, &none), 0);
	assert_int_equal(none.n, 0);
	assert_int_equal(store_outbox_add(s, "pdm/alerts/b", "stop", NULL), 0);
	store_close(s);

	char err[256];
	struct store *r = store_open_reader(f->path, err, sizeof(err));
	assert_non_null(r);
	struct list_rows l2 = { 0 };
	assert_int_equal(store_outbox_list(r, 0, list_collect, &l2), 7);
	assert_int_equal(l2.n, 4);
	assert_string_equal(l2.payload[3], "stop");
	assert_int_equal(store_outbox_list(NULL, 0, list_collect, &l2), -EINVAL);
	store_close(r);
}

/* Delivered rows are pruned down to the newest 10,000; pending rows are
 * never pruned. */
static void test_outbox_prune(void **state)
{
	struct fx *f = *state;
	struct store *s = open_ok(f);
	int64_t first = 0, id = 0;
	assert_int_equal(store_outbox_add(s, "t", "kept pending", &first), 0);
	assert_int_equal(store_txn_begin(s), 0);
	for (int i = 0; i < 10300; i++)
		assert_int_equal(store_outbox_add(s, "t", "x", &id), 0);
	assert_int_equal(store_txn_commit(s), 0);
	assert_int_equal(store_txn_begin(s), 0);
	for (int64_t i = first + 1; i <= id; i++)
		assert_int_equal(store_outbox_mark_delivered(s, i), 0);
	assert_int_equal(store_txn_commit(s), 0);
	int64_t total = sql_int(f->path, "SELECT count(*) FROM outbox");
	assert_true(total <= 10000 + 256 + 1);
	assert_true(total > 10000);
	int64_t pending;
	assert_int_equal(store_outbox_count(s, &pending), 0);
	assert_int_equal(pending, 1);
	store_close(s);
}

/* The prune counter restarts with every open, so a daemon that restarts
 * (or reloads) more often than it delivers 256 alerts would never prune:
 * opening for writing prunes too, keeping the newest 10,000 delivered rows
 * and every pending one. A reader handle leaves the file alone. */
static void test_outbox_prune_on_open(void **state)
{
	struct fx *f = *state;
	struct store *s = open_ok(f);
	int64_t first = 0, id = 0;
	assert_int_equal(store_outbox_add(s, "t", "kept pending", &first), 0);
	assert_int_equal(store_txn_begin(s), 0);
	for (int i = 0; i < 10200; i++)
		assert_int_equal(store_outbox_add(s, "t", "x", &id), 0);
	assert_int_equal(store_txn_commit(s), 0);
	store_close(s);
	/* Delivered behind the store's back, as by earlier runs that each
	 * delivered fewer than 256: no periodic prune has run. */
	char sql[128];
	snprintf(sql, sizeof(sql), "UPDATE outbox SET delivered_ms = 1 WHERE id > %lld",
		 (long long)first);
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM outbox"), 10201);

	char err[256];
	struct store *r = store_open_reader(f->path, err, sizeof(err));
	assert_non_null(r);
	store_close(r);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM outbox"), 10201);

	s = open_ok(f);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM outbox "
					  "WHERE delivered_ms IS NOT NULL"), 10000);
	/* the newest ones stay */
	assert_int_equal(sql_int(f->path, "SELECT min(id) FROM outbox "
					  "WHERE delivered_ms IS NOT NULL"), id - 9999);
	int64_t pending;
	assert_int_equal(store_outbox_count(s, &pending), 0);
	assert_int_equal(pending, 1);
	store_close(s);
}

/* A raise is one transaction: rolled back, it leaves no episode number,
 * state or outbox row behind; committed, all three are there. Episode
 * numbers continue after a reopen. */
static void test_alert_txn_episodes(void **state)
{
	struct fx *f = *state;
	struct store *s = open_ok(f);
	uint64_t seq;
	assert_int_equal(store_txn_begin(s), 0);
	assert_int_equal(store_txn_begin(s), -EALREADY);
	assert_int_equal(store_episode_next(s, "pump1", &seq), 0);
	assert_int_equal(seq, 1);
	assert_int_equal(store_kv_set(s, "pump1/state", "warning"), 0);
	assert_int_equal(store_outbox_add(s, "a", "raised pump1-1", NULL), 0);
	store_txn_rollback(s);
	char *v = NULL;
	assert_int_equal(store_kv_get(s, "pump1/state", &v), -ENOENT);
	int64_t pending;
	assert_int_equal(store_outbox_count(s, &pending), 0);
	assert_int_equal(pending, 0);

	assert_int_equal(store_txn_begin(s), 0);
	assert_int_equal(store_episode_next(s, "pump1", &seq), 0);
	assert_int_equal(seq, 1);
	assert_int_equal(store_alert_commit(s, "pump1", "state", "warning", "a", "raised pump1-1",
					    NULL),
			 0);
	assert_int_equal(store_txn_commit(s), 0);
	assert_int_equal(store_episode_next(s, "pump1", &seq), 0);
	assert_int_equal(seq, 2);
	assert_int_equal(store_episode_next(s, "fan2", &seq), 0);
	assert_int_equal(seq, 1);
	int64_t oid;
	assert_int_equal(store_alert_commit(s, "pump1", "state", "normal", "a", "cleared", &oid), 0);
	assert_true(oid > 0);
	store_close(s);

	s = open_ok(f);
	assert_int_equal(store_episode_next(s, "pump1", &seq), 0);
	assert_int_equal(seq, 3);
	assert_int_equal(store_kv_get(s, "pump1/state", &v), 0);
	assert_string_equal(v, "normal");
	free(v);
	assert_int_equal(store_outbox_count(s, &pending), 0);
	assert_int_equal(pending, 2);
	store_close(s);
}

static void test_kv(void **state)
{
	struct fx *f = *state;
	struct store *s = open_ok(f);
	char *v = NULL;
	assert_int_equal(store_kv_get(s, "k", &v), -ENOENT);
	assert_int_equal(store_kv_set(s, "k", "1"), 0);
	assert_int_equal(store_kv_set(s, "k", "two"), 0);
	assert_int_equal(store_kv_get(s, "k", &v), 0);
	assert_string_equal(v, "two");
	free(v);
	assert_int_equal(store_kv_del(s, "k"), 0);
	assert_int_equal(store_kv_del(s, "k"), -ENOENT);
	assert_int_equal(store_kv_get(s, "k", &v), -ENOENT);
	assert_int_equal(store_kv_set(s, NULL, "x"), -EINVAL);
	store_close(s);
}

struct mlist {
	int n;
	uint32_t ver[8];
	char kind[8][8];
	double thr[8];
};

static int model_cb(const struct store_model *m, void *user)
{
	struct mlist *l = user;
	assert_string_equal(m->asset, "pump1");
	l->ver[l->n] = m->version;
	snprintf(l->kind[l->n], sizeof(l->kind[0]), "%s", m->kind);
	l->thr[l->n] = m->threshold;
	l->n++;
	return 0;
}

static void test_models(void **state)
{
	struct fx *f = *state;
	struct store *s = open_ok(f);
	struct store_model m = { .asset = "pump1", .version = 1, .kind = "mlp",
				 .path = "/var/lib/pdmd/models/pump1-1.pdm",
				 .trained_at_ms = 1700000000000, .windows = 20000,
				 .val_loss = 0.01, .threshold = 0.5 };
	assert_int_equal(store_model_add(s, &m), 0);
	m.version = 3;
	m.kind = "cnn";
	assert_int_equal(store_model_add(s, &m), 0);
	m.version = 2;
	assert_int_equal(store_model_add(s, &m), 0);
	m.threshold = 0.75; /* replace version 2 */
	assert_int_equal(store_model_add(s, &m), 0);
	m.asset = "fan";
	assert_int_equal(store_model_add(s, &m), 0);
	struct mlist l = { 0 };
	assert_int_equal(store_model_list(s, "pump1", 0, model_cb, &l), 0);
	assert_int_equal(l.n, 3);
	assert_int_equal(l.ver[0], 3);
	assert_int_equal(l.ver[1], 2);
	assert_int_equal(l.ver[2], 1);
	assert_true(l.thr[1] == 0.75);
	assert_string_equal(l.kind[2], "mlp");
	struct mlist l2 = { 0 };
	assert_int_equal(store_model_list(s, "pump1", 1, model_cb, &l2), 0);
	assert_int_equal(l2.n, 1);
	/* Pruned to the newest two: version 1 goes. */
	assert_int_equal(store_model_prune(s, "pump1", 2), 0);
	struct mlist l3 = { 0 };
	assert_int_equal(store_model_list(s, "pump1", 0, model_cb, &l3), 0);
	assert_int_equal(l3.n, 2);
	assert_int_equal(l3.ver[0], 3);
	assert_int_equal(l3.ver[1], 2);
	assert_int_equal(store_model_prune(s, "pump1", 0), -EINVAL);
	store_close(s);
}

static void fill_some(struct fx *f, int n)
{
	struct store *s = open_ok(f);
	struct pdm_sample v[1000];
	for (int b = 0; b < n; b += 1000) {
		for (int k = 0; k < 1000; k++)
			v[k] = smp(1 + k % 4, 1000 + b + k, k * 1.5, 0);
		assert_int_equal(store_append(s, v, 1000), 0);
	}
	store_close(s);
}

static void assert_moved_aside(struct fx *f, struct store *s, long old_size)
{
	const char *aside = store_moved_aside(s);
	assert_non_null(aside);
	char prefix[400];
	snprintf(prefix, sizeof(prefix), "%s.corrupt-", f->path);
	assert_memory_equal(aside, prefix, strlen(prefix));
	assert_int_equal(file_size(aside), old_size);
	/* The fresh database works. */
	struct pdm_sample one = smp(1, 5, 5, 0);
	assert_int_equal(store_append(s, &one, 1), 0);
	int64_t ts[2];
	double v[2];
	size_t got;
	assert_int_equal(store_read_latest(s, 1, 2, ts, v, NULL, &got), 0);
	assert_int_equal(got, 1);
}

/* Damaged b-tree pages: the integrity check catches it, the file is moved
 * aside (not deleted) and a fresh database is opened. */
static void test_corrupt_pages(void **state)
{
	struct fx *f = *state;
	f->o.check = STORE_CHECK_FULL;
	fill_some(f, 20000);
	long size = file_size(f->path);
	assert_true(size > 16 * 4096);
	FILE *fp = fopen(f->path, "r+b");
	assert_non_null(fp);
	char junk[4096];
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (char)(i * 7 + 13);
	for (long page = 4; page < size / 4096; page += 3) {
		assert_int_equal(fseek(fp, page * 4096 + 100, SEEK_SET), 0);
		assert_int_equal(fwrite(junk, 1, 1000, fp), 1000);
	}
	fclose(fp);
	struct store *s = open_ok(f);
	assert_moved_aside(f, s, size);
	store_close(s);
}

/* A file that is not a database at all is moved aside too. */
static void test_corrupt_not_a_db(void **state)
{
	struct fx *f = *state;
	char text[8192];
	memset(text, 'x', sizeof(text) - 1);
	text[sizeof(text) - 1] = '\0';
	assert_int_equal(test_write_file(f->dir, "samples.db", text), 0);
	struct store *s = open_ok(f);
	assert_moved_aside(f, s, (long)sizeof(text) - 1);
	store_close(s);
}

/* A reader handle sees what the writer handle committed; it cannot create
 * sensors or write. */
static void test_reader_handle(void **state)
{
	struct fx *f = *state;
	struct store *s = open_ok(f);
	uint32_t id;
	assert_int_equal(store_sensor_id(s, "a.b", &id), 0);
	assert_int_equal(store_writer_start(s), 0);
	struct pdm_sample v[] = { smp(id, 10, 1, 0), smp(id, 20, 2, 0) };
	assert_int_equal(store_submit(s, v, 2), 0);
	assert_int_equal(store_flush(s, 5000), 0);
	char err[128];
	struct store *r = store_open_reader(f->path, err, sizeof(err));
	assert_non_null(r);
	uint32_t rid;
	assert_int_equal(store_sensor_id(r, "a.b", &rid), 0);
	assert_int_equal(rid, id);
	assert_int_equal(store_sensor_id(r, "a.c", &rid), -ENOENT);
	struct rows rows = { 0 };
	assert_int_equal(store_read_range(r, &id, 1, 0, 100, collect, &rows), 0);
	assert_int_equal(rows.n, 2);
	assert_int_equal(store_kv_set(r, "k", "v"), -EROFS);
	assert_int_equal(store_writer_start(r), -EINVAL);
	store_close(r);
	store_close(s);
	assert_null(store_open_reader("/nonexistent/dir/x.db", err, sizeof(err)));
}

struct reader_arg {
	const char *path;
	uint32_t ids[2];
	atomic_int stop;
	atomic_int rounds;
	int errors;
	int64_t rows;
};

struct order_check {
	int64_t last_ts, n;
	int bad;
};

static int check_order(uint32_t sensor, int64_t ts, double v, uint8_t q, void *user)
{
	(void)sensor;
	(void)q;
	struct order_check *c = user;
	if (ts < c->last_ts || v != (double)ts)
		c->bad++;
	c->last_ts = ts;
	c->n++;
	return 0;
}

static void *reader_main(void *p)
{
	struct reader_arg *a = p;
	char err[128];
	struct store *r = store_open_reader(a->path, err, sizeof(err));
	if (!r) {
		a->errors++;
		return NULL;
	}
	while (!a->stop) {
		struct order_check c = { INT64_MIN, 0, 0 };
		if (store_read_range(r, a->ids, 2, 0, INT64_MAX, check_order, &c) != 0 || c.bad)
			a->errors++;
		int64_t ts[16];
		double v[16];
		size_t got;
		if (store_read_latest(r, a->ids[0], 16, ts, v, NULL, &got) != 0)
			a->errors++;
		a->rows += c.n;
		a->rounds++;
	}
	store_close(r);
	return NULL;
}

/* A reader handle in another thread reads consistent, ordered snapshots
 * while the writer thread commits, and never fails with "busy". */
static void test_reader_beside_writer(void **state)
{
	struct fx *f = *state;
	f->o.max_samples = 5000;
	struct store *s = open_ok(f);
	struct reader_arg a = { .path = f->path };
	assert_int_equal(store_sensor_id(s, "m.a", &a.ids[0]), 0);
	assert_int_equal(store_sensor_id(s, "m.b", &a.ids[1]), 0);
	assert_int_equal(store_writer_start(s), 0);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, reader_main, &a), 0);
	struct pdm_sample v[100];
	int64_t t = 1000;
	for (int b = 0; b < 200; b++) {
		for (int k = 0; k < 100; k++, t++)
			v[k] = smp(a.ids[k % 2], t, (double)t, 0);
		while (store_submit(s, v, 100) == -EAGAIN)
			test_sleep_ms(1);
		if (b % 20 == 0)
			test_sleep_ms(5);
	}
	assert_int_equal(store_flush(s, 10000), 0);
	while (a.rounds < 5)
		test_sleep_ms(5);
	a.stop = 1;
	pthread_join(th, NULL);
	print_message("# reader: %d rounds, %lld rows\n", atomic_load(&a.rounds),
		      (long long)a.rows);
	assert_int_equal(a.errors, 0);
	assert_true(a.rounds >= 5);
	store_close(s);
}

/* Disk full (max_db_bytes): a clear -ENOSPC, nothing half-written, the
 * database stays intact, and writing resumes once there is room. */
static void test_disk_full(void **state)
{
	struct fx *f = *state;
	f->o.max_db_bytes = 256 * 1024;
	struct store *s = open_ok(f);
	struct pdm_sample v[500];
	int64_t t = 0, stored = 0;
	int e = 0;
	for (int b = 0; b < 200 && e == 0; b++) {
		for (int k = 0; k < 500; k++, t++)
			v[k] = smp(1 + (uint32_t)(t % 8), 1000 + t, (double)t, 0);
		e = store_append(s, v, 500);
		if (e == 0)
			stored += 500;
	}
	assert_int_equal(e, -ENOSPC);
	assert_true(stored > 0);
	struct store_stats st;
	store_stats(s, &st);
	assert_int_equal(st.last_error, -ENOSPC);
	assert_int_equal(st.dropped_error, 500);
	assert_int_equal(st.samples_kept, stored);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM samples"), stored);
	char *ic = sql_text(f->path, "PRAGMA integrity_check");
	assert_string_equal(ic, "ok");
	free(ic);
	/* The writer thread hits the same wall, counts and carries on. */
	assert_int_equal(store_writer_start(s), 0);
	assert_int_equal(store_submit(s, v, 500), 0);
	assert_int_equal(store_flush(s, 5000), 0);
	store_stats(s, &st);
	assert_int_equal(st.write_errors, 2);
	/* Space returns. */
	assert_int_equal(store_set_max_db_bytes(s, 0), 0);
	for (int k = 0; k < 500; k++, t++)
		v[k] = smp(1 + (uint32_t)(t % 8), 1000 + t, (double)t, 0);
	int ok = -1;
	for (int i = 0; i < 100 && ok != 0; i++) {
		ok = store_submit(s, v, 500);
		if (ok != 0)
			test_sleep_ms(50);
	}
	assert_int_equal(ok, 0);
	assert_int_equal(store_flush(s, 10000), 0);
	store_stats(s, &st);
	assert_int_equal(st.samples_kept, stored + 500);
	store_close(s);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM samples"), stored + 500);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_schema, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_newer_schema, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sensor_ids, setup, teardown),
		cmocka_unit_test_setup_teardown(test_append_read_latest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_export_csv, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_queue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_evict_count, setup, teardown),
		cmocka_unit_test_setup_teardown(test_evict_age, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_stops_growing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outbox, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outbox_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outbox_prune, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outbox_prune_on_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_alert_txn_episodes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kv, setup, teardown),
		cmocka_unit_test_setup_teardown(test_models, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_pages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_not_a_db, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reader_handle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reader_beside_writer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disk_full, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
