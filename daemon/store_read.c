/*
 * store_read.c - sample reads: newest N of a sensor, time ranges of several
 * sensors merged in time order and streamed, and CSV export.
 *
 * Range reads keep one open cursor per sensor (each a primary-key range
 * scan, already in time order) and merge them with a binary heap, so memory
 * is O(number of sensors) however long the range; the whole read runs in one
 * read transaction, so it sees one consistent snapshot while the writer
 * keeps committing (WAL). A long read holds back WAL checkpoints; the WAL is
 * truncated again afterwards (journal_size_limit).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pdm_error.h"
#include "store_int.h"

static bool read_begin(struct store *s)
{
	if (s->in_txn)
		return false;
	sqlite3_stmt *st = store_stmt(s, ST_BEGIN_READ);
	if (!st || sqlite3_step(st) != SQLITE_DONE) {
		if (st)
			sqlite3_reset(st);
		return false;
	}
	sqlite3_reset(st);
	return true;
}

static void read_end(struct store *s, bool began)
{
	if (!began)
		return;
	sqlite3_stmt *st = store_stmt(s, ST_COMMIT);
	if (st) {
		sqlite3_step(st);
		sqlite3_reset(st);
	}
}

int store_read_latest(struct store *s, uint32_t sensor, size_t n, int64_t *ts, double *val,
		      uint8_t *q, size_t *got)
{
	if (!s || !got || (n && (!ts || !val)))
		return -EINVAL;
	*got = 0;
	if (n == 0 || sensor >= STORE_MAX_SENSOR_ID)
		return 0;
	sqlite3_stmt *st = store_stmt(s, ST_LATEST);
	if (!st)
		return -EIO;
	/* The quality lookup is a second statement: read both in one
	 * snapshot. */
	bool began = q ? read_begin(s) : false;
	sqlite3_bind_int64(st, 1, store_key(sensor, 0));
	sqlite3_bind_int64(st, 2, store_key(sensor + 1, 0));
	sqlite3_bind_int64(st, 3, n < INT64_MAX ? (int64_t)n : INT64_MAX);
	size_t k = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && k < n) {
		ts[k] = store_key_ts(sqlite3_column_int64(st, 0));
		val[k] = sqlite3_column_type(st, 1) == SQLITE_NULL ? NAN
								   : sqlite3_column_double(st, 1);
		k++;
	}
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		int e = store_fail(s, st, rc, "read latest");
		read_end(s, began);
		return e;
	}
	sqlite3_reset(st);
	/* Newest first from SQLite; callers want time order. */
	for (size_t i = 0, j = k ? k - 1 : 0; i < j; i++, j--) {
		int64_t t = ts[i];
		ts[i] = ts[j];
		ts[j] = t;
		double d = val[i];
		val[i] = val[j];
		val[j] = d;
	}
	if (q && k > 0) {
		memset(q, PDM_Q_GOOD, k);
		st = store_stmt(s, ST_QUALITY_RANGE);
		if (!st) {
			read_end(s, began);
			return -EIO;
		}
		sqlite3_bind_int64(st, 1, sensor);
		sqlite3_bind_int64(st, 2, ts[0]);
		sqlite3_bind_int64(st, 3, ts[k - 1]);
		size_t pos = 0;
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			int64_t t = sqlite3_column_int64(st, 0);
			while (pos < k && ts[pos] < t)
				pos++;
			if (pos < k && ts[pos] == t)
				q[pos] = (uint8_t)sqlite3_column_int(st, 1);
		}
		if (rc != SQLITE_DONE) {
			int e = store_fail(s, st, rc, "read quality");
			read_end(s, began);
			return e;
		}
		sqlite3_reset(st);
	}
	read_end(s, began);
	*got = k;
	return 0;
}

struct cursor {
	sqlite3_stmt *st;
	int64_t ts;
	double v;
	uint8_t q;
};

/* Row callback with the sensor's position in the caller's list. */
typedef int (*range_cb)(size_t idx, uint32_t sensor, int64_t ts, double v, uint8_t q, void *u);

/* ?1 sensor, ?2/?3 the key range of [t0, t1). */
static const char range_sql[] =
	"SELECT s.k, s.value, coalesce(q.quality, 0) FROM samples s "
	"LEFT JOIN sample_quality q ON q.sensor = ?1 AND q.ts = (s.k & 4398046511103) "
	"WHERE s.k >= ?2 AND s.k < ?3 ORDER BY s.k";

/* Advances cursor c; returns SQLITE_ROW, SQLITE_DONE or an error. */
static int cursor_next(struct cursor *c)
{
	int rc = sqlite3_step(c->st);
	if (rc == SQLITE_ROW) {
		c->ts = store_key_ts(sqlite3_column_int64(c->st, 0));
		c->v = sqlite3_column_type(c->st, 1) == SQLITE_NULL ? NAN
								    : sqlite3_column_double(c->st, 1);
		c->q = (uint8_t)sqlite3_column_int(c->st, 2);
	}
	return rc;
}

static bool heap_less(const struct cursor *c, size_t a, size_t b)
{
	return c[a].ts < c[b].ts || (c[a].ts == c[b].ts && a < b);
}

static void heap_down(const struct cursor *c, size_t *h, size_t n, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < n && heap_less(c, h[l], h[m]))
			m = l;
		if (r < n && heap_less(c, h[r], h[m]))
			m = r;
		if (m == i)
			return;
		size_t t = h[i];
		h[i] = h[m];
		h[m] = t;
		i = m;
	}
}

static int range_merge(struct store *s, const uint32_t *sensors, size_t ns, int64_t t0, int64_t t1,
		       range_cb cb, void *user)
{
	if (!s || (!sensors && ns) || !cb)
		return -EINVAL;
	if (t0 < 0)
		t0 = 0;
	if (t1 > STORE_TS_LIMIT)
		t1 = STORE_TS_LIMIT;
	if (ns == 0 || t0 >= t1)
		return 0;
	struct cursor *c = calloc(ns, sizeof(*c));
	size_t *h = calloc(ns, sizeof(*h));
	int ret = 0, rc = SQLITE_OK;
	bool began = false;
	if (!c || !h) {
		ret = -ENOMEM;
		goto out;
	}
	began = read_begin(s);
	size_t nh = 0;
	for (size_t i = 0; i < ns; i++) {
		rc = sqlite3_prepare_v2(s->db, range_sql, -1, &c[i].st, NULL);
		if (rc != SQLITE_OK)
			goto sqlfail;
		if (sensors[i] >= STORE_MAX_SENSOR_ID)
			continue;
		sqlite3_bind_int64(c[i].st, 1, sensors[i]);
		sqlite3_bind_int64(c[i].st, 2, store_key(sensors[i], t0));
		sqlite3_bind_int64(c[i].st, 3, store_key(sensors[i], t1));
		rc = cursor_next(&c[i]);
		if (rc == SQLITE_ROW)
			h[nh++] = i;
		else if (rc != SQLITE_DONE)
			goto sqlfail;
	}
	for (size_t i = nh / 2; i-- > 0;)
		heap_down(c, h, nh, i);
	while (nh > 0) {
		size_t i = h[0];
		if ((ret = cb(i, sensors[i], c[i].ts, c[i].v, c[i].q, user)) != 0)
			goto out;
		rc = cursor_next(&c[i]);
		if (rc == SQLITE_DONE)
			h[0] = h[--nh];
		else if (rc != SQLITE_ROW)
			goto sqlfail;
		heap_down(c, h, nh, 0);
	}
	goto out;
sqlfail:
	ret = store_fail(s, NULL, rc, "range read");
out:
	if (c)
		for (size_t i = 0; i < ns; i++)
			sqlite3_finalize(c[i].st);
	read_end(s, began);
	free(c);
	free(h);
	return ret;
}

struct public_cb {
	store_row_cb cb;
	void *user;
};

static int call_public(size_t idx, uint32_t sensor, int64_t ts, double v, uint8_t q, void *u)
{
	(void)idx;
	struct public_cb *p = u;
	return p->cb(sensor, ts, v, q, p->user);
}

int store_read_range(struct store *s, const uint32_t *sensors, size_t ns, int64_t t0, int64_t t1,
		     store_row_cb cb, void *user)
{
	if (!cb)
		return -EINVAL;
	struct public_cb p = { cb, user };
	return range_merge(s, sensors, ns, t0, t1, call_public, &p);
}

/* --- CSV ---------------------------------------------------------------- */

struct csv_state {
	FILE *out;
	size_t ns;
	double *vals;
	int64_t ts;
	bool pending;
};

static void csv_field(FILE *out, const char *f)
{
	if (!strpbrk(f, ",\"\r\n")) {
		fputs(f, out);
		return;
	}
	fputc('"', out);
	for (; *f; f++) {
		if (*f == '"')
			fputc('"', out);
		fputc(*f, out);
	}
	fputc('"', out);
}

static void csv_number(FILE *out, double v)
{
	char buf[40];
	/* Shortest of %.15g / %.17g that reads back as the same double. */
	snprintf(buf, sizeof(buf), "%.15g", v);
	if (strtod(buf, NULL) != v)
		snprintf(buf, sizeof(buf), "%.17g", v);
	fputs(buf, out);
}

static int csv_emit(struct csv_state *cs)
{
	fprintf(cs->out, "%lld", (long long)cs->ts);
	for (size_t i = 0; i < cs->ns; i++) {
		fputc(',', cs->out);
		if (!isnan(cs->vals[i]))
			csv_number(cs->out, cs->vals[i]);
		cs->vals[i] = NAN;
	}
	fputc('\n', cs->out);
	cs->pending = false;
	return ferror(cs->out) ? -EIO : 0;
}

static int csv_row(size_t idx, uint32_t sensor, int64_t ts, double v, uint8_t q, void *u)
{
	(void)sensor;
	struct csv_state *cs = u;
	if (cs->pending && ts != cs->ts) {
		int e = csv_emit(cs);
		if (e < 0)
			return e;
	}
	cs->ts = ts;
	cs->pending = true;
	cs->vals[idx] = q == PDM_Q_GOOD ? v : NAN;
	return 0;
}

int store_export_csv(struct store *s, const uint32_t *sensors, size_t ns, int64_t t0, int64_t t1,
		     FILE *out)
{
	if (!s || !out || (!sensors && ns))
		return -EINVAL;
	struct csv_state cs = { .out = out, .ns = ns };
	cs.vals = malloc((ns ? ns : 1) * sizeof(double));
	if (!cs.vals)
		return -ENOMEM;
	for (size_t i = 0; i < ns; i++)
		cs.vals[i] = NAN;
	int e = 0;
	fputs("ts_ms", out);
	for (size_t i = 0; i < ns; i++) {
		char name[256];
		e = store_sensor_name(s, sensors[i], name, sizeof(name));
		if (e < 0)
			goto out;
		fputc(',', out);
		csv_field(out, name);
	}
	fputc('\n', out);
	e = range_merge(s, sensors, ns, t0, t1, csv_row, &cs);
	if (e == 0 && cs.pending)
		e = csv_emit(&cs);
	if (e == 0 && (fflush(out) != 0 || ferror(out)))
		e = -EIO;
out:
	free(cs.vals);
	return e;
}

int store_outbox_list(struct store *s, int64_t since_ms,
		      int (*cb)(const struct store_outbox_row *r, void *user), void *user)
{
	if (!s || !cb)
		return -EINVAL;
	sqlite3_stmt *st = store_stmt(s, ST_OUTBOX_LIST);
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, since_ms);
	int rc, ret = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_outbox_row r = {
			.id = sqlite3_column_int64(st, 0),
			.topic = (const char *)sqlite3_column_text(st, 1),
			.payload = (const char *)sqlite3_column_text(st, 2),
			.created_ms = sqlite3_column_int64(st, 3),
			.delivered_ms = sqlite3_column_type(st, 4) == SQLITE_NULL
						? 0
						: sqlite3_column_int64(st, 4),
		};
		if ((ret = cb(&r, user)) != 0)
			break;
	}
	if (ret == 0 && rc != SQLITE_DONE)
		return store_fail(s, st, rc, "outbox list");
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return ret;
}
