/*
 * store_write.c - the sample writer: bounded queue, one writer thread,
 * batched transactions, and ring eviction by age and by count.
 *
 * Design constraints:
 * - One connection (wdb) writes samples; a batch is one transaction, so a
 *   commit either holds the whole batch or none of it, whatever kills us.
 * - Batches are sorted by (sensor, ts) before inserting: consecutive
 *   inserts then land in the same b-tree leaf, which is what makes us
 *   faster than inserting in arrival order.
 * - Eviction never counts rows in SQL: the writer keeps each sensor's row
 *   count and oldest/newest ts in memory (loaded once at open), estimates
 *   the cut-off time that removes enough of the globally oldest rows and
 *   deletes per sensor by primary-key range. With a cap it evicts down to
 *   cap - cap/128, so deletes come in runs rather than with every batch;
 *   the committed row count never exceeds the cap.
 * - The queue is bounded; when it is full store_submit refuses the whole
 *   batch, counts it and logs (rate-limited). A batch that fails to commit
 *   (disk full, I/O error) is counted as lost, logged, and the writer backs
 *   off (100 ms doubling to 5 s) before the next one, so it resumes by
 *   itself once space returns.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pdm_error.h"
#include "pdm_time.h"
#include "store_int.h"

#define WRITER_BATCH_MAX 8192
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define AGE_EVICT_EVERY_MS 1000

static const char *const writer_sql[WS__COUNT] = {
	[WS_BEGIN] = "BEGIN IMMEDIATE",
	[WS_COMMIT] = "COMMIT",
	[WS_ROLLBACK] = "ROLLBACK",
	[WS_INSERT] = "INSERT OR REPLACE INTO samples(k, value) VALUES(?1, ?2)",
	[WS_EXISTS] = "SELECT 1 FROM samples WHERE k = ?1",
	[WS_Q_SET] = "INSERT OR REPLACE INTO sample_quality(sensor, ts, quality) VALUES(?1, ?2, ?3)",
	[WS_Q_DEL] = "DELETE FROM sample_quality WHERE sensor = ?1 AND ts = ?2",
	[WS_DEL_RANGE] = "DELETE FROM samples WHERE k >= ?1 AND k < ?2",
	[WS_Q_DEL_RANGE] = "DELETE FROM sample_quality WHERE sensor = ?1 AND ts < ?2",
	[WS_MIN_TS] = "SELECT k FROM samples WHERE k >= ?1 AND k < ?2 ORDER BY k LIMIT 1",
};

struct batch_result {
	uint64_t appended, evicted;
	int err;
};

static int ensure_sensors(struct store *s, uint32_t max_id)
{
	if (max_id < s->nsens)
		return 0;
	size_t n = s->nsens ? s->nsens : 64;
	while (n <= max_id)
		n *= 2;
	struct store_sensor_state *a = realloc(s->sens, n * sizeof(*a));
	if (!a)
		return -ENOMEM;
	s->sens = a;
	struct store_sensor_state *b = realloc(s->sens_saved, n * sizeof(*b));
	if (!b)
		return -ENOMEM;
	s->sens_saved = b;
	memset(s->sens + s->nsens, 0, (n - s->nsens) * sizeof(*a));
	s->nsens = n;
	return 0;
}

int store_writer_init(struct store *s)
{
	int rc;
	for (size_t i = 0; i < WS__COUNT; i++) {
		rc = sqlite3_prepare_v3(s->wdb, writer_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->ws[i],
					NULL);
		if (rc != SQLITE_OK)
			return rc;
	}
	/* One scan at open; afterwards the writer keeps these up to date. */
	sqlite3_stmt *st = NULL;
	rc = sqlite3_prepare_v2(s->wdb,
				"SELECT k >> 42, count(*), min(k & 4398046511103), max(k & 4398046511103) "
				"FROM samples GROUP BY 1",
				-1, &st, NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0);
		if (id < 0 || id >= STORE_MAX_SENSOR_ID)
			continue;
		if (ensure_sensors(s, (uint32_t)id) < 0) {
			rc = SQLITE_NOMEM;
			break;
		}
		struct store_sensor_state *ss = &s->sens[id];
		ss->count = sqlite3_column_int64(st, 1);
		ss->min_ts = sqlite3_column_int64(st, 2);
		ss->max_ts = sqlite3_column_int64(st, 3);
		s->kept += ss->count;
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE && rc != SQLITE_OK)
		return rc;
	st = NULL;
	rc = sqlite3_prepare_v2(s->wdb, "SELECT sensor, count(*) FROM sample_quality GROUP BY sensor",
				-1, &st, NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0);
		if (id >= 0 && (size_t)id < s->nsens)
			s->sens[id].nq = sqlite3_column_int64(st, 1);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE && rc != SQLITE_OK)
		return rc;
	s->stats.samples_kept = s->kept;
	return SQLITE_OK;
}

void store_writer_cleanup(struct store *s)
{
	for (size_t i = 0; i < WS__COUNT; i++) {
		sqlite3_finalize(s->ws[i]);
		s->ws[i] = NULL;
	}
	free(s->sens);
	s->sens = NULL;
	free(s->sens_saved);
	s->sens_saved = NULL;
	s->nsens = 0;
	free(s->batch);
	s->batch = NULL;
	free(s->tmp);
	s->tmp = NULL;
	free(s->q);
	s->q = NULL;
}

/* Stable merge sort by (sensor, ts): for equal keys the later sample must
 * stay later, because it replaces the earlier one. */
static bool sample_less(const struct pdm_sample *a, const struct pdm_sample *b)
{
	return a->sensor < b->sensor || (a->sensor == b->sensor && a->ts_ms < b->ts_ms);
}

static void sort_samples(struct pdm_sample *v, struct pdm_sample *tmp, size_t n)
{
	/* Arrival order is usually tick-major, i.e. short sorted runs per
	 * sensor: a bottom-up merge sort does not care. */
	for (size_t w = 1; w < n; w *= 2) {
		for (size_t lo = 0; lo < n; lo += 2 * w) {
			size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
			size_t i = lo, j = mid, k = lo;
			if (mid >= hi || !sample_less(&v[mid], &v[mid - 1])) {
				memcpy(tmp + lo, v + lo, (hi - lo) * sizeof(*v));
				continue;
			}
			while (i < mid && j < hi)
				tmp[k++] = sample_less(&v[j], &v[i]) ? v[j++] : v[i++];
			while (i < mid)
				tmp[k++] = v[i++];
			while (j < hi)
				tmp[k++] = v[j++];
		}
		memcpy(v, tmp, n * sizeof(*v));
	}
}

static int wstep(struct store *s, enum store_wstmt id)
{
	sqlite3_stmt *st = s->ws[id];
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

/* Deletes sensor id's rows older than cutoff. */
static int delete_before(struct store *s, uint32_t id, int64_t cutoff, uint64_t *evicted)
{
	struct store_sensor_state *ss = &s->sens[id];
	sqlite3_stmt *st = s->ws[WS_DEL_RANGE];
	sqlite3_bind_int64(st, 1, store_key(id, 0));
	sqlite3_bind_int64(st, 2, store_key(id, cutoff < 0 ? 0 : cutoff));
	int rc = wstep(s, WS_DEL_RANGE);
	if (rc != SQLITE_OK)
		return rc;
	int64_t d = sqlite3_changes(s->wdb);
	if (ss->nq > 0) {
		st = s->ws[WS_Q_DEL_RANGE];
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_int64(st, 2, cutoff);
		if ((rc = wstep(s, WS_Q_DEL_RANGE)) != SQLITE_OK)
			return rc;
		ss->nq -= sqlite3_changes(s->wdb);
		if (ss->nq < 0)
			ss->nq = 0;
	}
	ss->count -= d;
	s->kept -= d;
	*evicted += (uint64_t)d;
	if (ss->count <= 0) {
		ss->count = 0;
		return SQLITE_OK;
	}
	st = s->ws[WS_MIN_TS];
	sqlite3_bind_int64(st, 1, store_key(id, 0));
	sqlite3_bind_int64(st, 2, store_key(id + 1, 0));
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		ss->min_ts = store_key_ts(sqlite3_column_int64(st, 0));
		rc = SQLITE_OK;
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Estimated rows older than t, assuming each sensor's rows are spread
 * evenly between its oldest and newest timestamps. */
static double rows_before(const struct store *s, int64_t t)
{
	double sum = 0;
	for (size_t i = 0; i < s->nsens; i++) {
		const struct store_sensor_state *ss = &s->sens[i];
		if (ss->count == 0 || t <= ss->min_ts)
			continue;
		if (t > ss->max_ts)
			sum += (double)ss->count;
		else
			sum += (double)ss->count * (double)(t - ss->min_ts) /
			       (double)(ss->max_ts - ss->min_ts + 1);
	}
	return sum;
}

static int evict_count(struct store *s, uint64_t *evicted)
{
	int64_t cap = s->o.max_samples;
	int64_t target = cap - cap / 128;
	for (int iter = 0; s->kept > cap && iter < 10000; iter++) {
		int64_t lo = INT64_MAX, hi = INT64_MIN;
		for (size_t i = 0; i < s->nsens; i++) {
			if (s->sens[i].count == 0)
				continue;
			if (s->sens[i].min_ts < lo)
				lo = s->sens[i].min_ts;
			if (s->sens[i].max_ts > hi)
				hi = s->sens[i].max_ts;
		}
		if (lo > hi)
			break;
		/* Smallest t whose estimate reaches the excess; at least
		 * lo + 1 so every round deletes the globally oldest rows. */
		double need = (double)(s->kept - target);
		int64_t a = lo + 1, b = hi + 1;
		while (a < b) {
			int64_t m = a + (b - a) / 2;
			if (rows_before(s, m) >= need)
				b = m;
			else
				a = m + 1;
		}
		for (size_t i = 0; i < s->nsens; i++) {
			if (s->sens[i].count == 0 || s->sens[i].min_ts >= a)
				continue;
			int rc = delete_before(s, (uint32_t)i, a, evicted);
			if (rc != SQLITE_OK)
				return rc;
		}
	}
	return SQLITE_OK;
}

static int evict_age(struct store *s, int64_t now, uint64_t *evicted)
{
	int64_t cutoff = now - s->o.retention_ms;
	s->next_age_ms = now + AGE_EVICT_EVERY_MS;
	for (size_t i = 0; i < s->nsens; i++) {
		if (s->sens[i].count == 0 || s->sens[i].min_ts >= cutoff)
			continue;
		int rc = delete_before(s, (uint32_t)i, cutoff, evicted);
		if (rc != SQLITE_OK)
			return rc;
	}
	return SQLITE_OK;
}

static bool age_due(const struct store *s, int64_t now)
{
	return s->o.retention_ms > 0 && now >= s->next_age_ms;
}

/* Whether an idle pass would delete anything; if not, it skips the empty
 * transaction and looks again in a second. */
static bool age_work(struct store *s, int64_t now)
{
	int64_t cutoff = now - s->o.retention_ms;
	for (size_t i = 0; i < s->nsens; i++)
		if (s->sens[i].count > 0 && s->sens[i].min_ts < cutoff)
			return true;
	s->next_age_ms = now + AGE_EVICT_EVERY_MS;
	return false;
}

static int insert_one(struct store *s, const struct pdm_sample *p)
{
	struct store_sensor_state *ss = &s->sens[p->sensor];
	bool existed = false;
	int rc;
	if (ss->count > 0 && p->ts_ms <= ss->max_ts) {
		/* Out of order or a repeat: the only case that can replace a
		 * row, so the only case that pays for the lookup. */
		sqlite3_stmt *st = s->ws[WS_EXISTS];
		sqlite3_bind_int64(st, 1, store_key(p->sensor, p->ts_ms));
		rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_ROW && rc != SQLITE_DONE)
			return rc;
		existed = rc == SQLITE_ROW;
	}
	sqlite3_stmt *st = s->ws[WS_INSERT];
	sqlite3_bind_int64(st, 1, store_key(p->sensor, p->ts_ms));
	if (isfinite(p->value))
		sqlite3_bind_double(st, 2, p->value);
	else
		sqlite3_bind_null(st, 2);
	if ((rc = wstep(s, WS_INSERT)) != SQLITE_OK)
		return rc;
	if (p->quality != PDM_Q_GOOD) {
		st = s->ws[WS_Q_SET];
		sqlite3_bind_int64(st, 1, p->sensor);
		sqlite3_bind_int64(st, 2, p->ts_ms);
		sqlite3_bind_int(st, 3, p->quality);
		if ((rc = wstep(s, WS_Q_SET)) != SQLITE_OK)
			return rc;
		ss->nq++;
	} else if (existed && ss->nq > 0) {
		st = s->ws[WS_Q_DEL];
		sqlite3_bind_int64(st, 1, p->sensor);
		sqlite3_bind_int64(st, 2, p->ts_ms);
		if ((rc = wstep(s, WS_Q_DEL)) != SQLITE_OK)
			return rc;
		ss->nq -= sqlite3_changes(s->wdb);
	}
	if (!existed) {
		if (ss->count == 0) {
			ss->min_ts = ss->max_ts = p->ts_ms;
		} else {
			if (p->ts_ms < ss->min_ts)
				ss->min_ts = p->ts_ms;
			if (p->ts_ms > ss->max_ts)
				ss->max_ts = p->ts_ms;
		}
		ss->count++;
		s->kept++;
	}
	return SQLITE_OK;
}

/*
 * Writes v[0..n) (sorted here, hence not const) and evicts, in one
 * transaction. Called with wmu held. n may be 0 for an eviction-only pass.
 */
static struct batch_result write_locked(struct store *s, struct pdm_sample *v,
					struct pdm_sample *tmp, size_t n)
{
	struct batch_result r = { 0, 0, 0 };
	uint32_t max_id = 0;
	for (size_t i = 0; i < n; i++)
		if (v[i].sensor > max_id)
			max_id = v[i].sensor;
	if ((r.err = ensure_sensors(s, max_id)) < 0)
		return r;
	sort_samples(v, tmp, n);
	memcpy(s->sens_saved, s->sens, s->nsens * sizeof(*s->sens));
	int64_t kept_saved = s->kept, next_age_saved = s->next_age_ms;

	int rc = wstep(s, WS_BEGIN);
	if (rc != SQLITE_OK)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		/* Within a batch the later of two equal keys wins. */
		if (i + 1 < n && v[i + 1].sensor == v[i].sensor && v[i + 1].ts_ms == v[i].ts_ms)
			continue;
		if ((rc = insert_one(s, &v[i])) != SQLITE_OK)
			goto fail;
		r.appended++;
	}
	int64_t now = pdm_wall_ms();
	if (age_due(s, now) && (rc = evict_age(s, now, &r.evicted)) != SQLITE_OK)
		goto fail;
	if (s->o.max_samples > 0 && s->kept > s->o.max_samples &&
	    (rc = evict_count(s, &r.evicted)) != SQLITE_OK)
		goto fail;
	if ((rc = wstep(s, WS_COMMIT)) != SQLITE_OK)
		goto fail;
	return r;
fail:
	r.err = store_sqlite_err(rc);
	if (r.err == 0)
		r.err = -EIO;
	LOG_RL(&s->rl_err, LOG_ERR, "store[%s]: writing %zu samples failed: %s%s", s->path, n,
	       sqlite3_errmsg(s->wdb),
	       r.err == -ENOSPC ? " (disk or max_db_bytes full: free space; writing resumes "
				  "by itself)"
				: "");
	if (!sqlite3_get_autocommit(s->wdb))
		wstep(s, WS_ROLLBACK);
	memcpy(s->sens, s->sens_saved, s->nsens * sizeof(*s->sens));
	s->kept = kept_saved;
	s->next_age_ms = next_age_saved;
	r.appended = r.evicted = 0;
	return r;
}

/* Folds a batch result into the statistics; qmu held. */
static void account(struct store *s, const struct batch_result *r, size_t n)
{
	if (r->err < 0) {
		s->stats.write_errors++;
		s->stats.dropped_error += n;
		s->stats.last_error = r->err;
	} else {
		s->stats.appended += r->appended;
		s->stats.evicted += r->evicted;
		s->stats.commits++;
	}
}

static int validate(const struct pdm_sample *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].sensor == 0 || v[i].sensor >= STORE_MAX_SENSOR_ID || v[i].quality > 2 ||
		    v[i].ts_ms < 0 || v[i].ts_ms >= STORE_TS_LIMIT)
			return -EINVAL;
	return 0;
}

int store_append(struct store *s, const struct pdm_sample *v, size_t n)
{
	if (!s || (!v && n) || s->readonly)
		return -EINVAL;
	if (n == 0)
		return 0;
	if (validate(v, n) < 0)
		return -EINVAL;
	struct pdm_sample *copy = malloc(2 * n * sizeof(*copy));
	if (!copy)
		return -ENOMEM;
	memcpy(copy, v, n * sizeof(*v));
	pthread_mutex_lock(&s->wmu);
	struct batch_result r = write_locked(s, copy, copy + n, n);
	int64_t kept = s->kept;
	pthread_mutex_unlock(&s->wmu);
	free(copy);
	pthread_mutex_lock(&s->qmu);
	account(s, &r, n);
	if (r.err == 0)
		s->stats.samples_kept = kept;
	pthread_mutex_unlock(&s->qmu);
	return r.err;
}

int store_set_max_db_bytes(struct store *s, int64_t bytes)
{
	if (!s || s->readonly || bytes < 0)
		return -EINVAL;
	pthread_mutex_lock(&s->wmu);
	int rc = store_set_page_limit(s->wdb, bytes);
	pthread_mutex_unlock(&s->wmu);
	if (rc == SQLITE_OK)
		rc = store_set_page_limit(s->db, bytes);
	if (rc == SQLITE_OK)
		s->o.max_db_bytes = bytes;
	return store_sqlite_err(rc);
}

static void deadline_after(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static void *writer_main(void *arg)
{
	struct store *s = arg;
	size_t cap = s->o.queue_capacity;
	int backoff = 0;
	pthread_setname_np(pthread_self(), "pdm-store");
	pthread_mutex_lock(&s->qmu);
	for (;;) {
		if (s->qlen == 0 && !s->stopping) {
			struct timespec dl;
			deadline_after(&dl, AGE_EVICT_EVERY_MS);
			while (s->qlen == 0 && !s->stopping)
				if (pthread_cond_timedwait(&s->qcv, &s->qmu, &dl) == ETIMEDOUT)
					break;
		}
		if (s->qlen == 0 && s->stopping)
			break;
		size_t n = s->qlen < s->batch_cap ? s->qlen : s->batch_cap;
		size_t first = cap - s->qhead < n ? cap - s->qhead : n;
		memcpy(s->batch, s->q + s->qhead, first * sizeof(*s->q));
		memcpy(s->batch + first, s->q, (n - first) * sizeof(*s->q));
		s->qhead = (s->qhead + n) % cap;
		s->qlen -= n;
		pthread_mutex_unlock(&s->qmu);

		struct batch_result r = { 0, 0, 0 };
		bool wrote = false;
		pthread_mutex_lock(&s->wmu);
		/* An idle store still ages out old samples. */
		int64_t now = pdm_wall_ms();
		if (n > 0 || (age_due(s, now) && age_work(s, now))) {
			r = write_locked(s, s->batch, s->tmp, n);
			wrote = true;
		}
		int64_t kept = s->kept;
		pthread_mutex_unlock(&s->wmu);

		pthread_mutex_lock(&s->qmu);
		s->done += n;
		if (wrote)
			account(s, &r, n);
		s->stats.samples_kept = kept;
		pthread_cond_broadcast(&s->donecv);
		if (r.err < 0 && !s->stopping) {
			backoff = backoff ? backoff * 2 : BACKOFF_MIN_MS;
			if (backoff > BACKOFF_MAX_MS)
				backoff = BACKOFF_MAX_MS;
			struct timespec dl;
			deadline_after(&dl, backoff);
			while (!s->stopping)
				if (pthread_cond_timedwait(&s->qcv, &s->qmu, &dl) == ETIMEDOUT)
					break;
		} else if (r.err == 0 && wrote) {
			backoff = 0;
		}
	}
	pthread_mutex_unlock(&s->qmu);
	return NULL;
}

int store_writer_start(struct store *s)
{
	if (!s || s->readonly)
		return -EINVAL;
	pthread_mutex_lock(&s->qmu);
	bool running = s->running;
	pthread_mutex_unlock(&s->qmu);
	if (running)
		return -EALREADY;
	s->batch_cap = WRITER_BATCH_MAX;
	if (!s->q)
		s->q = malloc(s->o.queue_capacity * sizeof(*s->q));
	if (!s->batch)
		s->batch = malloc(s->batch_cap * sizeof(*s->batch));
	if (!s->tmp)
		s->tmp = malloc(s->batch_cap * sizeof(*s->tmp));
	if (!s->q || !s->batch || !s->tmp)
		return -ENOMEM;
	s->qhead = s->qlen = 0;
	s->stopping = false;
	int e = pthread_create(&s->thread, NULL, writer_main, s);
	if (e != 0) {
		LOG_E("store: cannot start the writer thread: %s", strerror(e));
		return -e;
	}
	pthread_mutex_lock(&s->qmu);
	s->running = true;
	pthread_mutex_unlock(&s->qmu);
	return 0;
}

void store_writer_stop(struct store *s)
{
	pthread_mutex_lock(&s->qmu);
	if (!s->running) {
		pthread_mutex_unlock(&s->qmu);
		return;
	}
	s->stopping = true;
	pthread_cond_broadcast(&s->qcv);
	pthread_mutex_unlock(&s->qmu);
	pthread_join(s->thread, NULL);
	pthread_mutex_lock(&s->qmu);
	s->running = false;
	s->stopping = false;
	pthread_cond_broadcast(&s->donecv);
	pthread_mutex_unlock(&s->qmu);
}

int store_submit(struct store *s, const struct pdm_sample *v, size_t n)
{
	if (!s || (!v && n))
		return -EINVAL;
	if (n == 0)
		return 0;
	if (validate(v, n) < 0)
		return -EINVAL;
	size_t cap = s->o.queue_capacity;
	pthread_mutex_lock(&s->qmu);
	if (!s->running || s->stopping) {
		pthread_mutex_unlock(&s->qmu);
		return -ENOTCONN;
	}
	if (n > cap - s->qlen) {
		s->stats.dropped_full += n;
		uint64_t total = s->stats.dropped_full;
		LOG_RL(&s->rl_full, LOG_WARNING,
		       "store[%s]: writer queue full (%zu samples): dropped %zu, %llu in all; "
		       "the disk is too slow or the store is failing (see errors above)",
		       s->path, cap, n, (unsigned long long)total);
		pthread_mutex_unlock(&s->qmu);
		return -EAGAIN;
	}
	size_t tail = (s->qhead + s->qlen) % cap;
	size_t first = cap - tail < n ? cap - tail : n;
	memcpy(s->q + tail, v, first * sizeof(*v));
	memcpy(s->q, v + first, (n - first) * sizeof(*v));
	s->qlen += n;
	s->submitted += n;
	pthread_cond_signal(&s->qcv);
	pthread_mutex_unlock(&s->qmu);
	return 0;
}

int store_flush(struct store *s, int timeout_ms)
{
	if (!s)
		return -EINVAL;
	struct timespec dl;
	deadline_after(&dl, timeout_ms < 0 ? 0 : timeout_ms);
	int ret = 0;
	pthread_mutex_lock(&s->qmu);
	uint64_t target = s->submitted;
	while (s->done < target) {
		if (!s->running) {
			ret = -ENOTCONN;
			break;
		}
		if (pthread_cond_timedwait(&s->donecv, &s->qmu, &dl) == ETIMEDOUT &&
		    s->done < target) {
			ret = -ETIMEDOUT;
			break;
		}
	}
	pthread_mutex_unlock(&s->qmu);
	return ret;
}

void store_stats(struct store *s, struct store_stats *st)
{
	if (!s || !st)
		return;
	pthread_mutex_lock(&s->qmu);
	*st = s->stats;
	st->queue_len = s->qlen;
	pthread_mutex_unlock(&s->qmu);
	st->sqlite_bytes = sqlite3_memory_used();
}
