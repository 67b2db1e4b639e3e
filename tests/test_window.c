/*
 * test_window.c - resampling onto the grid, window cutting, machine state,
 * late and overdue samples, silences, no_data, clock steps; and a long random stream
 * checked against a naive reference written from the rules alone.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "window.h"

/* ---- collecting emitted windows ---- */

struct rec {
	int64_t ts;
	enum window_status st;
	float *x; /* (C, W) */
};

struct coll {
	struct rec *r;
	size_t n, cap;
	int C, W;
	int stop_after; /* > 0: return 7 from the stop_after-th call */
	int calls;
};

static int collect(const float *x, int64_t ts_ms, enum window_status st, void *user)
{
	struct coll *co = user;

	if (co->n == co->cap) {
		co->cap = co->cap ? co->cap * 2 : 64;
		co->r = realloc(co->r, co->cap * sizeof(*co->r));
		assert_non_null(co->r);
	}
	struct rec *r = &co->r[co->n++];
	size_t sz = (size_t)co->C * (size_t)co->W;

	r->ts = ts_ms;
	r->st = st;
	r->x = malloc(sz * sizeof(float));
	assert_non_null(r->x);
	memcpy(r->x, x, sz * sizeof(float));
	co->calls++;
	if (co->stop_after > 0 && co->calls == co->stop_after)
		return 7;
	return 0;
}

static void coll_init(struct coll *co, int C, int W)
{
	memset(co, 0, sizeof(*co));
	co->C = C;
	co->W = W;
}

static void coll_free(struct coll *co)
{
	for (size_t i = 0; i < co->n; i++)
		free(co->r[i].x);
	free(co->r);
	memset(co, 0, sizeof(*co));
}

static struct window_cfg base_cfg(int C, int64_t I, int W, int hop, int hold)
{
	struct window_cfg c = {
		.C = C,
		.interval_ms = I,
		.W = W,
		.hop = hop,
		.hold = hold,
		.run_channel = -1,
		.run_op = WINDOW_OP_GT,
		.run_value = 0.0,
		.no_data_ms = 0,
	};
	return c;
}

/* Value of channel c at point j of a recorded window. */
static float xv(const struct coll *co, size_t i, int c, int j)
{
	return co->r[i].x[c * co->W + j];
}

static void assert_series(const struct coll *co, size_t i, int c, const float *want)
{
	for (int j = 0; j < co->W; j++) {
		float got = xv(co, i, c, j);

		if (isnan(want[j]))
			assert_true(isnan(got));
		else
			assert_true(got == want[j]);
	}
}

/* ---- fixed scenarios ---- */

/* Irregular timestamps on two channels: each grid point takes the last good
 * sample at or before it, held for at most `hold` intervals. */
static void test_resample_irregular(void **state)
{
	struct window_cfg cfg = base_cfg(2, 100, 4, 1, 2);
	struct window *w = window_new(&cfg);
	struct coll co;
	(void)state;

	assert_non_null(w);
	coll_init(&co, 2, 4);
	struct {
		int c;
		int64_t ts;
		double v;
	} s[] = {
		{ 1, 0, 10 },   { 0, 10, 1 },   { 0, 95, 2 },   { 0, 130, 3 },  { 1, 150, 20 },
		{ 1, 199, 21 }, { 1, 200, 22 }, { 0, 260, 4 },  { 0, 310, 5 },  { 1, 330, 23 },
		{ 1, 400, 24 }, { 0, 420, 6 },  { 1, 450, 25 },
	};
	for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++)
		assert_int_equal(window_push(w, s[i].c, s[i].ts, s[i].v, true), 0);

	/* Point 500 is not final yet: channel 0's newest is 420 and 450 - 200
	 * is not past it. Points 0..400 are. */
	assert_int_equal(window_advance(w, 450, collect, &co), 0);
	assert_int_equal(co.n, 2);
	assert_int_equal(co.r[0].ts, 300);
	assert_int_equal(co.r[0].st, WINDOW_GAP); /* channel 0 has nothing at t=0 */
	assert_series(&co, 0, 0, (float[]){ NAN, 2, 3, 4 });
	assert_series(&co, 0, 1, (float[]){ 10, 10, 22, 22 });
	assert_int_equal(co.r[1].ts, 400);
	assert_int_equal(co.r[1].st, WINDOW_OK);
	assert_series(&co, 1, 0, (float[]){ 2, 3, 4, 5 });
	assert_series(&co, 1, 1, (float[]){ 10, 22, 22, 24 });

	/* now - hold passes 500: final, with held values. */
	assert_int_equal(window_advance(w, 700, collect, &co), 0);
	assert_int_equal(co.n, 2);
	assert_int_equal(window_advance(w, 701, collect, &co), 0);
	assert_int_equal(co.n, 3);
	assert_int_equal(co.r[2].ts, 500);
	assert_series(&co, 2, 0, (float[]){ 3, 4, 5, 6 });
	assert_series(&co, 2, 1, (float[]){ 22, 22, 24, 25 });

	/* 600: both still held (ages 180, 150 <= 200); 700: both too old. */
	assert_int_equal(window_advance(w, 1000, collect, &co), 0);
	assert_int_equal(co.n, 5);
	assert_int_equal(co.r[3].st, WINDOW_OK);
	assert_series(&co, 3, 0, (float[]){ 4, 5, 6, 6 });
	assert_series(&co, 3, 1, (float[]){ 22, 24, 25, 25 });
	assert_int_equal(co.r[4].st, WINDOW_GAP);
	assert_series(&co, 4, 0, (float[]){ 5, 6, 6, NAN });
	assert_series(&co, 4, 1, (float[]){ 24, 25, 25, NAN });

	struct window_stats st;
	window_get_stats(w, &st);
	assert_int_equal(st.windows, 5);
	assert_int_equal(st.gaps, 2);
	assert_int_equal(st.points, 8);
	assert_int_equal(window_newest_ts(w), 450);
	coll_free(&co);
	window_free(w);
}

/* A value exactly hold intervals old is held; one millisecond more is a gap.
 * Bad quality is no value: it does not refresh the held one. */
static void test_hold_boundary_and_bad_quality(void **state)
{
	struct window_cfg cfg = base_cfg(1, 100, 1, 1, 2);
	struct window *w = window_new(&cfg);
	struct coll co;
	(void)state;

	coll_init(&co, 1, 1);
	assert_int_equal(window_push(w, 0, 100, 5.0, true), 0);
	assert_int_equal(window_push(w, 0, 250, 99.0, false), 0);     /* bad: ignored */
	assert_int_equal(window_push(w, 0, 260, NAN, true), 0);       /* non-finite: bad */
	assert_int_equal(window_push(w, 0, 270, 1e300, true), 0);     /* beyond float: bad */
	assert_int_equal(window_advance(w, 1000, collect, &co), 0);
	/* points 100, 200, 300 held (age 0, 100, 200); 400.. gaps */
	assert_true(co.n >= 4);
	assert_int_equal(co.r[0].ts, 100);
	assert_true(xv(&co, 0, 0, 0) == 5.0f);
	assert_true(xv(&co, 1, 0, 0) == 5.0f);
	assert_true(xv(&co, 2, 0, 0) == 5.0f);
	assert_int_equal(co.r[2].st, WINDOW_OK);
	assert_true(isnan(xv(&co, 3, 0, 0)));
	assert_int_equal(co.r[3].st, WINDOW_GAP);
	coll_free(&co);
	window_free(w);

	/* hold = 0: only a sample exactly on the grid point counts. */
	cfg = base_cfg(1, 100, 1, 1, 0);
	w = window_new(&cfg);
	coll_init(&co, 1, 1);
	assert_int_equal(window_push(w, 0, 100, 1.0, true), 0);
	assert_int_equal(window_push(w, 0, 150, 2.0, true), 0);
	assert_int_equal(window_push(w, 0, 300, 3.0, true), 0);
	assert_int_equal(window_advance(w, 300, collect, &co), 0);
	assert_int_equal(co.n, 2); /* 100 and 200; 300 needs now > 300 */
	assert_true(xv(&co, 0, 0, 0) == 1.0f);
	assert_true(isnan(xv(&co, 1, 0, 0)));
	assert_int_equal(window_advance(w, 301, collect, &co), 0);
	assert_int_equal(co.n, 3);
	assert_true(xv(&co, 2, 0, 0) == 3.0f);
	coll_free(&co);
	window_free(w);
}

/* How far apart a channel's good samples come: unknown before nine
 * spacings, then their median (a stop does not count); bad samples and
 * repeats of a time do not count; a restart keeps it (it belongs to the
 * sensor, not the clock). */
static void test_spacing(void **state)
{
	struct window_cfg cfg = base_cfg(2, 100, 4, 1, 3);
	struct window *w = window_new(&cfg);
	(void)state;

	assert_int_equal(window_spacing_ms(w, 0), -1);
	for (int i = 0; i <= 9; i++) {
		assert_int_equal(window_push(w, 0, 1000 * i, 1.0, true), 0);
		assert_int_equal(window_push(w, 0, 1000 * i, 2.0, true), 0); /* same time */
		assert_int_equal(window_push(w, 0, 1000 * i + 500, 9.0, false), 0); /* bad */
		assert_int_equal(window_push(w, 1, 100 * i, 1.0, true), 0);
		if (i < 9)
			assert_int_equal(window_spacing_ms(w, 0), -1);
	}
	assert_int_equal(window_spacing_ms(w, 0), 1000);
	assert_int_equal(window_spacing_ms(w, 1), 100);
	/* an 8 h stop, then samples every 100 ms again: the stop is one of
	 * nine, and the median is the running rate at once */
	int64_t t = 9000 + 8 * 3600 * 1000LL;
	for (int i = 0; i < 5; i++)
		assert_int_equal(window_push(w, 1, t + 100 * i, 1.0, true), 0);
	assert_int_equal(window_spacing_ms(w, 1), 100);
	/* faster now: the median follows once five of the nine are fast */
	for (int i = 1; i <= 6; i++)
		assert_int_equal(window_push(w, 0, 10000 + 100 * i, 1.0, true), 0);
	assert_int_equal(window_spacing_ms(w, 0), 100);
	window_restart(w, 20000);
	assert_int_equal(window_spacing_ms(w, 0), 100);
	assert_int_equal(window_spacing_ms(w, 2), -1);
	assert_int_equal(window_spacing_ms(NULL, 0), -1);
	window_free(w);
}

/* A channel with a hold of its own (a sensor that reports on change): its
 * value counts that long, while points still become final after the
 * asset's hold (the window does not wait for it). */
static void test_channel_hold(void **state)
{
	const int64_t holds[2] = { 100, 1000 };
	struct window_cfg cfg = base_cfg(2, 100, 1, 1, 1);
	cfg.channel_hold_ms = holds;
	struct window *w = window_new(&cfg);
	struct coll co;
	(void)state;

	assert_non_null(w);
	assert_int_equal(window_hold_ms(w, 0), 100);
	assert_int_equal(window_hold_ms(w, 1), 1000);
	assert_int_equal(window_hold_ms(w, 2), -1);
	coll_init(&co, 2, 1);
	assert_int_equal(window_push(w, 1, 0, 7.0, true), 0); /* once, then silent */
	for (int i = 0; i <= 15; i++)
		assert_int_equal(window_push(w, 0, 100 * i, (double)i, true), 0);
	/* final up to now - the asset's hold (100 ms), not channel 1's 1 s */
	assert_int_equal(window_advance(w, 1650, collect, &co), 0);
	assert_int_equal(co.n, 16); /* points 0 .. 1500 */
	for (size_t i = 0; i < co.n; i++) {
		assert_int_equal(co.r[i].ts, (int64_t)i * 100);
		assert_true(xv(&co, i, 0, 0) == (float)i);
		if (i <= 10) { /* 0 .. 1000 ms: channel 1's value still counts */
			assert_true(xv(&co, i, 1, 0) == 7.0f);
			assert_int_equal(co.r[i].st, WINDOW_OK);
		} else {
			assert_true(isnan(xv(&co, i, 1, 0)));
			assert_int_equal(co.r[i].st, WINDOW_GAP);
		}
	}
	coll_free(&co);
	window_free(w);

	const int64_t bad[2] = { 100, -1 };
	cfg.channel_hold_ms = bad;
	assert_null(window_new(&cfg));
}

/*
 * A channel that reports regularly less often than its hold (every second on
 * a 100 ms grid with hold 3) learns its hold once nine spacings agree:
 * 1.5 s, and its windows stop having gaps. Irregular spacings (a device that
 * reports on change) teach nothing; a device that reports often again brings
 * the hold back; the maximum caps it; a channel without one never learns.
 */
static void push_every(struct window *w, int c, int64_t *t, int64_t step, int n)
{
	for (int i = 0; i < n; i++, *t += step)
		assert_int_equal(window_push(w, c, *t, (double)(*t % 7000), true), 0);
}

static void test_learned_hold(void **state)
{
	const int64_t max[3] = { 3600000, 3600000, 0 };
	struct window_cfg cfg = base_cfg(3, 100, 4, 1, 3);
	cfg.channel_hold_max_ms = max;
	struct window *w = window_new(&cfg);
	struct coll co;
	(void)state;

	assert_non_null(w);
	coll_init(&co, 3, 4);
	int64_t t0 = 0, t1 = 0, t2 = 0;
	/* channel 0 every 100 ms; 1 and 2 every second */
	for (int s = 0; s < 9; s++) {
		push_every(w, 1, &t1, 1000, 1);
		push_every(w, 2, &t2, 1000, 1);
		push_every(w, 0, &t0, 100, 10);
	}
	assert_int_equal(window_hold_ms(w, 1), 300); /* eight spacings yet */
	push_every(w, 1, &t1, 1000, 1);
	push_every(w, 2, &t2, 1000, 1);
	assert_int_equal(window_hold_ms(w, 1), 1500);
	assert_int_equal(window_hold_ms(w, 2), 300); /* no maximum: not learned */
	push_every(w, 0, &t0, 100, 10);
	assert_int_equal(window_advance(w, t0 - 100, collect, &co), 0);
	assert_true(co.n > 0);
	/* the newest windows: channel 1 held, channel 2 a gap */
	const struct rec *r = &co.r[co.n - 1];
	assert_int_equal(r->st, WINDOW_GAP);
	assert_false(isnan(xv(&co, co.n - 1, 1, 3)));
	assert_true(isnan(xv(&co, co.n - 1, 2, 3)));
	coll_free(&co);

	/* back to every 100 ms: the configured hold once the spacings agree */
	push_every(w, 1, &t1, 100, 8);
	assert_int_equal(window_hold_ms(w, 1), 1500);
	push_every(w, 1, &t1, 100, 2);
	assert_int_equal(window_hold_ms(w, 1), 300);
	/* 0.5 s and 2 s in turn: too irregular to learn from */
	for (int i = 0; i < 12; i++)
		push_every(w, 1, &t1, i % 2 ? 2000 : 500, 1);
	assert_int_equal(window_hold_ms(w, 1), 300);
	/* every 3 s, then 3.1 s: the longer of them, half again, on the grid */
	push_every(w, 1, &t1, 3000, 9);
	assert_int_equal(window_hold_ms(w, 1), 4500);
	push_every(w, 1, &t1, 3050, 3);
	assert_int_equal(window_hold_ms(w, 1), 4600);
	/* kept through a long silence (one spacing of nine) */
	push_every(w, 1, &t1, 3600000 * 2, 1);
	assert_int_equal(window_hold_ms(w, 1), 4600);
	/* set again (a restart): clamped to the channel's own hold and its maximum */
	assert_int_equal(window_set_hold_ms(w, 0, 60000), 0);
	assert_int_equal(window_hold_ms(w, 0), 60000);
	assert_int_equal(window_set_hold_ms(w, 0, 7200000), 0);
	assert_int_equal(window_hold_ms(w, 0), 3600000);
	assert_int_equal(window_set_hold_ms(w, 0, 10), 0);
	assert_int_equal(window_hold_ms(w, 0), 300);
	assert_int_equal(window_set_hold_ms(w, 2, 60000), -EINVAL);
	assert_int_equal(window_set_hold_ms(w, 3, 60000), -EINVAL);
	window_free(w);

	/* the widest spacing window_push takes (from -2^61 to 2^61) after
	 * eight of 1 s: no overflow (UBSan), one outlier among nine ignored */
	const int64_t big[3] = { INT64_MAX / 4, INT64_MAX / 4, INT64_MAX / 4 };
	cfg.channel_hold_max_ms = big;
	w = window_new(&cfg);
	const int64_t lim = INT64_C(1) << 61;
	for (int k = 0; k < 9; k++)
		assert_int_equal(window_push(w, 1, -lim + 1000 * k, 1.0, true), 0);
	assert_int_equal(window_push(w, 1, lim, 2.0, true), 0);
	assert_int_equal(window_hold_ms(w, 1), 1500);
	window_free(w);

	/* every 10 s under a maximum of 5 s: 5 s */
	const int64_t small[3] = { 5000, 5000, 5000 };
	cfg.channel_hold_max_ms = small;
	w = window_new(&cfg);
	t1 = 0;
	push_every(w, 1, &t1, 10000, 10);
	assert_int_equal(window_hold_ms(w, 1), 5000);
	window_free(w);

	const int64_t bad[3] = { 0, -1, 0 };
	cfg.channel_hold_max_ms = bad;
	assert_null(window_new(&cfg));
}

/* Windows end only on multiples of hop (in grid points since the epoch), so
 * two objects started at different times cut identical windows. */
static void test_hop_alignment(void **state)
{
	struct window_cfg cfg = base_cfg(1, 10, 5, 3, 1);
	struct window *a = window_new(&cfg), *b = window_new(&cfg);
	struct coll ca, cb;
	(void)state;

	coll_init(&ca, 1, 5);
	coll_init(&cb, 1, 5);
	for (int64_t ts = 1234; ts < 3000; ts += 10) {
		assert_int_equal(window_push(a, 0, ts, (double)ts, true), 0);
		assert_int_equal(window_advance(a, ts, collect, &ca), 0);
		if (ts >= 1504) {
			assert_int_equal(window_push(b, 0, ts, (double)ts, true), 0);
			assert_int_equal(window_advance(b, ts, collect, &cb), 0);
		}
	}
	/* Grid starts at 1240; first complete window ends at 1280; first
	 * multiple of 3 points at or after it is 1290. */
	assert_true(ca.n > 10);
	assert_int_equal(ca.r[0].ts, 1290);
	for (size_t i = 0; i < ca.n; i++) {
		assert_int_equal((ca.r[i].ts / 10) % 3, 0);
		assert_int_equal(ca.r[i].st, WINDOW_OK);
		for (int j = 0; j < 5; j++) /* value at t is the sample at t - 6 */
			assert_true(xv(&ca, i, 0, j) == (float)(ca.r[i].ts - 10 * (4 - j) - 6));
	}
	assert_true(cb.n > 10);
	size_t off = 0;
	while (off < ca.n && ca.r[off].ts != cb.r[0].ts)
		off++;
	assert_true(off < ca.n);
	assert_int_equal(ca.n - off, cb.n);
	for (size_t i = 0; i < cb.n; i++) {
		assert_int_equal(ca.r[off + i].ts, cb.r[i].ts);
		assert_memory_equal(ca.r[off + i].x, cb.r[i].x, 5 * sizeof(float));
	}
	coll_free(&ca);
	coll_free(&cb);
	window_free(a);
	window_free(b);
}

/* run_when speed > 100: off while stopped, warm-up until the window holds
 * only running points, then scored again; a gap on the run channel is off. */
static void test_run_when(void **state)
{
	struct window_cfg cfg = base_cfg(2, 100, 4, 1, 1);
	struct coll co;
	(void)state;

	cfg.run_channel = 1;
	cfg.run_op = WINDOW_OP_GT;
	cfg.run_value = 100;
	struct window *w = window_new(&cfg);
	coll_init(&co, 2, 4);
	for (int k = 0; k <= 20; k++) {
		double speed = (k >= 6 && k <= 8) ? 0 : (k == 10 ? 100 : 1500);
		assert_int_equal(window_push(w, 0, k * 100, 1.0, true), 0);
		if (k < 15 || k > 16) /* run channel silent: a gap at 16 */
			assert_int_equal(window_push(w, 1, k * 100, speed, true), 0);
	}
	assert_int_equal(window_advance(w, 2000, collect, &co), 0);
	/* Windows end at k = 3..19 (k = 20 is not final: now - hold = 1900). */
	assert_int_equal(co.n, 17);
	enum window_status want[] = {
		/* 3 */ WINDOW_OK,     WINDOW_OK,     WINDOW_OK,  WINDOW_OFF,    WINDOW_OFF,
		/* 8 */ WINDOW_OFF,    WINDOW_WARMUP, WINDOW_OFF, WINDOW_WARMUP, WINDOW_WARMUP,
		/* 13 */ WINDOW_WARMUP, WINDOW_OK,     WINDOW_OK, WINDOW_OFF,    WINDOW_GAP,
		/* 18 */ WINDOW_GAP,    WINDOW_GAP,
	};
	for (size_t i = 0; i < co.n; i++) {
		assert_int_equal(co.r[i].ts, (int64_t)(i + 3) * 100);
		assert_int_equal(co.r[i].st, want[i]);
	}
	struct window_stats st;
	window_get_stats(w, &st);
	assert_int_equal(st.off, 5);
	assert_int_equal(st.warmup, 4);
	assert_int_equal(st.gaps, 3);
	coll_free(&co);
	window_free(w);
}

/* Out-of-order samples are dropped and counted; an equal timestamp is not
 * late (the later value wins). */
static void test_late_samples(void **state)
{
	struct window_cfg cfg = base_cfg(1, 100, 1, 1, 0);
	struct window *w = window_new(&cfg);
	struct coll co;
	(void)state;

	coll_init(&co, 1, 1);
	assert_int_equal(window_push(w, 0, 100, 1.0, true), 0);
	assert_int_equal(window_push(w, 0, 200, 2.0, true), 0);
	assert_int_equal(window_push(w, 0, 150, 9.0, true), -ESTALE);
	assert_int_equal(window_push(w, 0, 199, 9.0, false), -ESTALE);
	assert_int_equal(window_push(w, 0, 200, 3.0, true), 0);
	assert_int_equal(window_push(w, 1, 300, 3.0, true), -EINVAL);
	assert_int_equal(window_push(w, -1, 300, 3.0, true), -EINVAL);
	assert_int_equal(window_advance(w, 201, collect, &co), 0);
	assert_int_equal(co.n, 2);
	assert_true(xv(&co, 1, 0, 0) == 3.0f);
	struct window_stats st;
	window_get_stats(w, &st);
	assert_int_equal(st.late_samples, 2);
	coll_free(&co);
	window_free(w);
}

/* A point becomes final when every channel has a newer sample, or once
 * now - t > hold * interval; a sample arriving after its point is final is
 * still held for later points. */
static void test_finality_and_overdue(void **state)
{
	struct window_cfg cfg = base_cfg(2, 100, 1, 1, 3);
	struct window *w = window_new(&cfg);
	struct coll co;
	struct window_stats st;
	(void)state;

	coll_init(&co, 2, 1);
	for (int k = 0; k <= 5; k++) {
		assert_int_equal(window_push(w, 0, k * 100, k, true), 0);
		assert_int_equal(window_push(w, 1, k * 100 + 1, 10 * k, true), 0);
	}
	/* Every channel is past 0..400 (channel 0 newest = 500): final even
	 * though now is early. */
	assert_int_equal(window_advance(w, 0, collect, &co), 0);
	window_get_stats(w, &st);
	assert_int_equal(st.points, 5);
	assert_int_equal(co.n, 5);
	assert_true(isnan(xv(&co, 0, 1, 0))); /* channel 1 starts at 1 */

	/* Channel 1 goes quiet after 501; channel 0 keeps going to 1000.
	 * 500 is final (channel 1 has 501); later points only by timeout:
	 * t < now - 300. */
	for (int k = 6; k <= 10; k++)
		assert_int_equal(window_push(w, 0, k * 100, k, true), 0);
	assert_int_equal(window_advance(w, 900, collect, &co), 0);
	window_get_stats(w, &st);
	assert_int_equal(st.points, 6);
	assert_int_equal(window_advance(w, 901, collect, &co), 0);
	window_get_stats(w, &st);
	assert_int_equal(st.points, 7);
	assert_true(xv(&co, 5, 1, 0) == 40.0f); /* 500: the sample at 401 */
	assert_true(xv(&co, 6, 1, 0) == 50.0f); /* 600: 501 held, age 99 */

	/* Channel 1's sample for 590 arrives after 600 was cut: overdue, but
	 * it is the held value at 700. */
	assert_int_equal(window_push(w, 1, 590, 59, true), 0);
	window_get_stats(w, &st);
	assert_int_equal(st.overdue_samples, 1);
	assert_int_equal(window_advance(w, 1100, collect, &co), 0);
	assert_int_equal(co.n, 8);
	assert_true(xv(&co, 7, 1, 0) == 59.0f);
	coll_free(&co);
	window_free(w);
}

/* A silence emits windows until one holds only gaps, then nothing until data
 * resumes, however long it lasts. */
static void test_silence(void **state)
{
	struct window_cfg cfg = base_cfg(1, 10, 4, 1, 0);
	struct window *w = window_new(&cfg);
	struct coll co;
	struct window_stats st;
	(void)state;

	coll_init(&co, 1, 4);
	for (int64_t ts = 0; ts <= 100; ts += 10) {
		assert_int_equal(window_push(w, 0, ts, 1.0, true), 0);
		assert_int_equal(window_advance(w, ts, collect, &co), 0);
	}
	/* A month of silence, seen by the daemon's timer. */
	for (int64_t now = 1000; now <= 30LL * 86400000; now += 3600000)
		assert_int_equal(window_advance(w, now, collect, &co), 0);
	assert_int_equal(co.r[co.n - 1].ts, 140); /* points 110..140: all gaps */
	assert_int_equal(co.r[co.n - 1].st, WINDOW_GAP);
	size_t before = co.n;
	int64_t resume = 30LL * 86400000 + 10;
	for (int64_t ts = resume; ts <= resume + 100; ts += 10) {
		assert_int_equal(window_push(w, 0, ts, 2.0, true), 0);
		assert_int_equal(window_advance(w, ts, collect, &co), 0);
	}
	assert_int_equal(co.r[before].ts, resume);
	assert_int_equal(co.r[before].st, WINDOW_GAP);
	assert_true(xv(&co, before, 0, 3) == 2.0f);
	assert_int_equal(co.r[co.n - 1].st, WINDOW_OK);
	window_get_stats(w, &st);
	assert_int_equal(st.silent_windows, (uint64_t)((resume - 10) / 10 - 15 + 1));
	assert_int_equal(st.points, (uint64_t)(resume + 90) / 10 + 1);
	coll_free(&co);
	window_free(w);
}

/* no_data: no good sample for longer than no_data_ms, counted from the
 * newest good sample, or before any from the first sample or advance. */
static void test_no_data(void **state)
{
	struct window_cfg cfg = base_cfg(2, 100, 4, 1, 2);
	(void)state;

	cfg.no_data_ms = 1000;
	struct window *w = window_new(&cfg);
	assert_false(window_no_data(w, 1000000));
	assert_int_equal(window_push(w, 1, 5000, 1.0, true), 0);
	assert_false(window_no_data(w, 6000));
	assert_true(window_no_data(w, 6001));
	assert_int_equal(window_push(w, 0, 7000, 1.0, false), 0);
	assert_true(window_no_data(w, 7000)); /* stale samples are not data */
	assert_int_equal(window_push(w, 0, 7001, 1.0, true), 0);
	assert_false(window_no_data(w, 7001));
	window_free(w);

	w = window_new(&cfg);
	assert_int_equal(window_advance(w, 100, NULL, NULL), 0);
	assert_false(window_no_data(w, 1100));
	assert_true(window_no_data(w, 1101));
	window_free(w);

	/* First advanced on the host's clock, then fed by a device whose clock
	 * is far behind it (and advanced on that clock): the newest sample
	 * counts, not the first advance. */
	w = window_new(&cfg);
	assert_int_equal(window_advance(w, 1000000, NULL, NULL), 0);
	assert_int_equal(window_push(w, 0, 5000, 1.0, true), 0);
	assert_false(window_no_data(w, 6000));
	assert_true(window_no_data(w, 6001));
	window_free(w);

	cfg.no_data_ms = 0;
	w = window_new(&cfg);
	assert_int_equal(window_advance(w, 100, NULL, NULL), 0);
	assert_false(window_no_data(w, 1LL << 40));
	window_free(w);
}

/* Per channel: missing once its newest good sample (or, with none, the
 * window's start) is older than the limit, or than its own hold when that is
 * longer; bad samples do not count; a restart starts the count over. */
static void test_missing(void **state)
{
	struct window_cfg cfg = base_cfg(3, 100, 4, 1, 2);
	const int64_t hold[3] = { 200, 200, 5000 };
	bool miss[3];
	int64_t good[3];
	(void)state;

	cfg.channel_hold_ms = hold;
	struct window *w = window_new(&cfg);
	assert_int_equal(window_missing(w, 1000000, 1000, miss, good), 0); /* no data yet */
	assert_int_equal(window_push(w, 0, 5000, 1.0, true), 0);
	assert_int_equal(window_push(w, 2, 5000, 1.0, true), 0);
	assert_int_equal(window_missing(w, 6000, 1000, miss, good), 0);
	assert_int_equal(good[0], 5000);
	assert_int_equal(good[1], INT64_MIN);
	/* 1 never sent: counted from the first sample; 0 and 2 just past the limit,
	 * but 2 holds its value for 5 s */
	assert_int_equal(window_missing(w, 6001, 1000, miss, good), 2);
	assert_true(miss[0]);
	assert_true(miss[1]);
	assert_false(miss[2]);
	assert_int_equal(window_missing(w, 10000, 1000, miss, NULL), 2);
	assert_int_equal(window_missing(w, 10001, 1000, miss, NULL), 3);
	assert_int_equal(window_push(w, 0, 10001, 1.0, false), 0); /* bad: still missing */
	assert_int_equal(window_missing(w, 10001, 1000, miss, NULL), 3);
	assert_int_equal(window_push(w, 0, 10002, 1.0, true), 0);
	assert_int_equal(window_missing(w, 10002, 1000, miss, good), 2);
	assert_false(miss[0]);
	assert_int_equal(good[0], 10002);
	assert_int_equal(window_missing(w, 10002, 0, miss, NULL), 0); /* no limit */
	/* A restart: everything counts from it. */
	window_restart(w, 20000);
	assert_int_equal(window_missing(w, 21000, 1000, miss, good), 0);
	assert_int_equal(good[0], INT64_MIN);
	assert_int_equal(window_missing(w, 21001, 1000, miss, NULL), 2);
	window_free(w);
}

/* Runs of exactly equal good samples: how long the newest has lasted, the
 * longest seen; bad samples do not break one, a silence longer than the
 * hold does, and any other value does. */
static void test_still(void **state)
{
	struct window_cfg cfg = base_cfg(2, 100, 4, 1, 3);
	int64_t since = 0, span = -1;
	double v = 0;
	(void)state;

	struct window *w = window_new(&cfg);
	assert_int_equal(window_still_ms(w, 0, &since, &v), 0);
	assert_int_equal(window_longest_still_ms(w, 0, &span), 0);
	assert_int_equal(span, 0);
	/* 1.0 from 1000 to 1500, then 2.0 */
	for (int64_t t = 1000; t <= 1500; t += 100)
		assert_int_equal(window_push(w, 0, t, 1.0, true), 0);
	assert_int_equal(window_still_ms(w, 0, &since, &v), 500);
	assert_int_equal(since, 1000);
	assert_true(v == 1.0);
	assert_int_equal(window_push(w, 0, 1550, 7.0, false), 0); /* bad: ignored */
	assert_int_equal(window_push(w, 0, 1600, 1.0, true), 0);
	assert_int_equal(window_still_ms(w, 0, NULL, NULL), 600);
	assert_int_equal(window_push(w, 0, 1700, 2.0, true), 0);
	assert_int_equal(window_still_ms(w, 0, &since, NULL), 0);
	assert_int_equal(since, 1700);
	assert_int_equal(window_longest_still_ms(w, 0, &span), 600);
	assert_int_equal(span, 700);
	/* the same value after a silence longer than the hold (300 ms): a new run */
	assert_int_equal(window_push(w, 0, 2100, 2.0, true), 0);
	assert_int_equal(window_still_ms(w, 0, &since, NULL), 0);
	assert_int_equal(since, 2100);
	assert_int_equal(window_push(w, 0, 2400, 2.0, true), 0); /* exactly the hold: goes on */
	assert_int_equal(window_still_ms(w, 0, NULL, NULL), 300);
	/* a value that moves by its noise never stands still */
	for (int i = 0; i < 50; i++)
		assert_int_equal(window_push(w, 1, 1000 + 100 * i, 5.0 + 1e-9 * (i % 7), true), 0);
	assert_int_equal(window_longest_still_ms(w, 1, &span), 0);
	assert_int_equal(span, 4900);
	/* a restart ends the run, the longest is kept */
	window_restart(w, 5000);
	assert_int_equal(window_still_ms(w, 0, NULL, NULL), 0);
	assert_int_equal(window_longest_still_ms(w, 0, NULL), 600);
	/* capped at 1 s: a 2 s run (a sensor that was stuck) is left out,
	 * while it lasts and after it ended; a 0.8 s one counts */
	window_set_still_cap(w, 0, 1000);
	for (int64_t t = 6000; t <= 8000; t += 100)
		assert_int_equal(window_push(w, 0, t, 3.0, true), 0);
	assert_int_equal(window_still_ms(w, 0, NULL, NULL), 2000); /* still told as it is */
	assert_int_equal(window_longest_still_ms(w, 0, NULL), 600);
	for (int64_t t = 8100; t <= 8900; t += 100)
		assert_int_equal(window_push(w, 0, t, 4.0, true), 0);
	assert_int_equal(window_longest_still_ms(w, 0, NULL), 800);
	assert_int_equal(window_push(w, 0, 9000, 5.0, true), 0);
	assert_int_equal(window_longest_still_ms(w, 0, NULL), 800);
	window_free(w);
}

/* Pushes n points of both channels at t0 + 100 * (1..n), value = point
 * number + base, and advances to the last one. */
static void push_run(struct window *w, struct coll *co, int64_t t0, int n, float base)
{
	for (int i = 1; i <= n; i++) {
		assert_int_equal(window_push(w, 0, t0 + 100 * i, base + (float)i, true), 0);
		assert_int_equal(window_push(w, 1, t0 + 100 * i, -(base + (float)i), true), 0);
	}
	assert_int_equal(window_advance(w, t0 + 100 * n, collect, co), 0);
}

/* The clock stamping the samples is set back an hour, then forward two:
 * after window_restart the window takes the new clock's samples at once
 * and cuts clean windows W points later, with nothing of the old clock in
 * them and no gap windows for the jump. */
static void test_clock_step(void **state)
{
	struct window_cfg cfg = base_cfg(2, 100, 4, 1, 2);
	struct coll co;
	struct window_stats st;
	(void)state;

	cfg.no_data_ms = 1000;
	struct window *w = window_new(&cfg);
	coll_init(&co, 2, 4);
	const int64_t t0 = 100000000, back = t0 - 3600000, fwd = back + 7200000;

	push_run(w, &co, t0, 10, 0.0f);
	/* The last point waits for a newer sample or the hold. */
	assert_int_equal(co.n, 6);
	/* Set back: without a restart every new sample is late. */
	assert_int_equal(window_push(w, 0, back + 100, 1.0, true), -ESTALE);
	window_restart(w, back);
	assert_false(window_no_data(w, back + 1000));
	assert_true(window_no_data(w, back + 1001));
	push_run(w, &co, back, 10, 100.0f);
	assert_int_equal(co.n, 12);
	assert_int_equal(co.r[6].ts, back + 400);
	assert_int_equal(co.r[6].st, WINDOW_OK);
	const float want[4] = { 101, 102, 103, 104 }, want_neg[4] = { -101, -102, -103, -104 };
	assert_series(&co, 6, 0, want);
	assert_series(&co, 6, 1, want_neg);

	/* Set forward: the jump is neither gap windows nor no_data. */
	window_restart(w, fwd);
	assert_false(window_no_data(w, fwd + 500));
	assert_int_equal(window_advance(w, fwd + 100, collect, &co), 0);
	assert_int_equal(co.n, 12);
	push_run(w, &co, fwd, 6, 200.0f);
	assert_int_equal(co.n, 14);
	for (size_t i = 12; i < co.n; i++)
		assert_int_equal(co.r[i].st, WINDOW_OK);
	assert_int_equal(co.r[12].ts, fwd + 400);

	window_get_stats(w, &st);
	assert_int_equal(st.restarts, 2);
	assert_int_equal(st.late_samples, 1);
	assert_int_equal(st.gaps, 0);
	window_restart(NULL, 0);
	coll_free(&co);
	window_free(w);
}

/* The emit callback can stop advance; the next call resumes after it. */
static void test_emit_stop(void **state)
{
	struct window_cfg cfg = base_cfg(1, 10, 2, 1, 1);
	struct window *w = window_new(&cfg);
	struct coll co;
	(void)state;

	coll_init(&co, 1, 2);
	co.stop_after = 3;
	for (int64_t ts = 0; ts <= 100; ts += 10)
		assert_int_equal(window_push(w, 0, ts, (double)ts, true), 0);
	assert_int_equal(window_advance(w, 100, collect, &co), 7);
	assert_int_equal(co.n, 3);
	assert_int_equal(window_advance(w, 100, collect, &co), 0);
	assert_int_equal(co.n, 9); /* windows ending 10..90 */
	for (size_t i = 0; i < co.n; i++)
		assert_int_equal(co.r[i].ts, (int64_t)(i + 1) * 10);
	coll_free(&co);
	window_free(w);
}

static void test_bad_input(void **state)
{
	struct window_cfg ok = base_cfg(2, 100, 8, 2, 3), c;
	(void)state;

	c = ok, c.C = 0;
	assert_null(window_new(&c));
	c = ok, c.interval_ms = 0;
	assert_null(window_new(&c));
	c = ok, c.W = 0;
	assert_null(window_new(&c));
	c = ok, c.hop = 0;
	assert_null(window_new(&c));
	c = ok, c.hold = -1;
	assert_null(window_new(&c));
	c = ok, c.run_channel = 2;
	assert_null(window_new(&c));
	c = ok, c.run_channel = 0, c.run_op = (enum window_op)17;
	assert_null(window_new(&c));
	c = ok, c.run_channel = 0, c.run_value = NAN;
	assert_null(window_new(&c));
	assert_null(window_new(NULL));
	window_free(NULL);

	struct window *w = window_new(&ok);
	assert_non_null(w);
	assert_int_equal(window_push(w, 0, INT64_MAX, 1.0, true), -ERANGE);
	assert_int_equal(window_push(w, 0, 1000, 1.0, true), 0);
	assert_int_equal(window_push(w, 0, INT64_MAX / 2, 1.0, true), -ERANGE);
	/* A far-future now must not hang or overflow: the silence is skipped. */
	assert_int_equal(window_advance(w, INT64_MAX, NULL, NULL), 0);
	struct window_stats st;
	window_get_stats(w, &st);
	assert_int_equal(st.future_samples, 2);
	window_free(w);

	/* Memory is bounded: a channel running far ahead of a silent one, with
	 * nobody calling window_advance, is cut off at 65536 pending points. */
	w = window_new(&ok);
	for (int i = 0; i < 65536; i++)
		assert_int_equal(window_push(w, 0, 100LL * i, 1.0, true), 0);
	assert_int_equal(window_push(w, 0, 100LL * 65536, 1.0, true), -ERANGE);
	assert_int_equal(window_push(w, 0, 100LL * 65537, 1.0, false), 0); /* no value: no cell */
	assert_int_equal(window_advance(w, 100LL * 70000, NULL, NULL), 0);
	assert_int_equal(window_push(w, 0, 100LL * 70001, 1.0, true), 0);
	window_get_stats(w, &st);
	assert_int_equal(st.future_samples, 1);
	assert_int_equal(st.points, 70000 - 3);
	window_free(w);

	enum window_op op;
	const char *ops[] = { ">", ">=", "<", "<=", "==", "!=" };
	for (int i = 0; i < 6; i++) {
		assert_int_equal(window_op_parse(ops[i], &op), 0);
		assert_int_equal(op, i);
		assert_string_equal(window_op_name(op), ops[i]);
	}
	assert_int_equal(window_op_parse("=>", &op), -EINVAL);
	assert_int_equal(window_op_parse("", &op), -EINVAL);
	assert_string_equal(window_status_name(WINDOW_WARMUP), "warmup");
}

/* ---- random stream against a naive reference ---- */

static uint64_t rng_state;

static uint32_t rnd(void)
{
	/* xorshift64*: reproducible across libcs, unlike rand(). */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 2685821657736338717ULL) >> 32);
}

static int rnd_in(int lo, int hi)
{
	return lo + (int)(rnd() % (uint32_t)(hi - lo + 1));
}

struct ev {
	int c;
	int64_t ts;
	double v;
	bool good;
};

static int64_t floordiv(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static bool ref_run_ok(enum window_op op, double v, double r)
{
	switch (op) {
	case WINDOW_OP_GT:
		return v > r;
	case WINDOW_OP_GE:
		return v >= r;
	case WINDOW_OP_LT:
		return v < r;
	case WINDOW_OP_LE:
		return v <= r;
	case WINDOW_OP_EQ:
		return v == r;
	case WINDOW_OP_NE:
		return v != r;
	}
	return false;
}

static void random_round(unsigned seed)
{
	rng_state = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)seed * 0x100000001B3ULL);
	const int64_t intervals[] = { 10, 100, 250, 1000 };
	struct window_cfg cfg = base_cfg(rnd_in(1, 4), intervals[rnd() % 4], rnd_in(1, 12),
					 rnd_in(1, 6), rnd_in(0, 4));
	const int C = cfg.C, W = cfg.W;
	const int64_t I = cfg.interval_ms, hold_ms = (int64_t)cfg.hold * I;

	if (rnd() % 3) {
		cfg.run_channel = rnd_in(0, C - 1);
		cfg.run_op = (enum window_op)rnd_in(0, 5);
		cfg.run_value = rnd_in(1, 3);
	}

	/* Per channel: irregular sampling (0.2 to 2 intervals apart), bad
	 * values, dropouts, and shared silences longer than a window. */
	const int64_t t0 = (int64_t)rnd_in(0, 100000) * 7 + 1795839942123LL;
	const int64_t span = 1500 * I;
	size_t cap = 0, n = 0;
	struct ev *evs = NULL;
	int64_t sil_a = t0 + span / 3, sil_b = sil_a + (int64_t)(W + cfg.hold + rnd_in(2, 400)) * I;

	for (int c = 0; c < C; c++) {
		int64_t ts = t0 + rnd_in(0, (int)I);
		int regime = rnd_in(0, 5);

		while (ts < t0 + span) {
			if (ts < sil_a || ts >= sil_b) {
				if (n == cap) {
					cap = cap ? cap * 2 : 4096;
					evs = realloc(evs, cap * sizeof(*evs));
					assert_non_null(evs);
				}
				if (rnd() % 50 == 0)
					regime = rnd_in(0, 5);
				evs[n].c = c;
				evs[n].ts = ts;
				evs[n].v = rnd() % 4 ? regime : rnd_in(0, 5) + 0.25;
				evs[n].good = rnd() % 20 != 0;
				n++;
			}
			int64_t step = rnd_in((int)(I / 5), (int)(2 * I));
			if (rnd() % 100 == 0)
				step += (int64_t)rnd_in(1, 3 * (cfg.hold + 2)) * I;
			ts += step < 1 ? 1 : step;
		}
	}
	/* Arrival order: time order across channels (ties by channel). */
	for (size_t i = 1; i < n; i++) {
		struct ev e = evs[i];
		size_t j = i;
		while (j > 0 && (evs[j - 1].ts > e.ts ||
				 (evs[j - 1].ts == e.ts && evs[j - 1].c > e.c))) {
			evs[j] = evs[j - 1];
			j--;
		}
		evs[j] = e;
	}

	/* Feed it, with late duplicates sprinkled in and advance called at
	 * random moments with a random allowance. */
	struct window *w = window_new(&cfg);
	struct coll co;
	int64_t *last = calloc((size_t)C, sizeof(int64_t));
	bool *acc = calloc(n, sizeof(bool));
	uint64_t late = 0;

	assert_non_null(w);
	assert_non_null(last);
	assert_non_null(acc);
	coll_init(&co, C, W);
	for (int c = 0; c < C; c++)
		last[c] = INT64_MIN;
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(window_push(w, evs[i].c, evs[i].ts, evs[i].v, evs[i].good), 0);
		acc[i] = true;
		last[evs[i].c] = evs[i].ts;
		if (rnd() % 30 == 0) {
			int64_t lts = evs[i].ts - rnd_in(1, (int)(3 * I));
			assert_int_equal(window_push(w, evs[i].c, lts, 1e6, true), -ESTALE);
			late++;
		}
		if (rnd() % 4 == 0) {
			int64_t now = window_newest_ts(w) - rnd_in(0, (int)(3 * I));
			assert_int_equal(window_advance(w, now, collect, &co), 0);
		}
	}
	const int64_t now_end = window_newest_ts(w) + (cfg.hold + 3) * I;
	assert_int_equal(window_advance(w, now_end, collect, &co), 0);

	/* Reference: straight from the rules, one point at a time. */
	const int64_t k0 = -floordiv(-evs[0].ts, I);
	const int64_t k_end = floordiv(now_end - hold_ms - 1, I);
	const size_t npts = (size_t)(k_end - k0 + 1);
	float *val = malloc(npts * (size_t)C * sizeof(float));
	bool *all_gap = calloc(npts, sizeof(bool)), *any_gap = calloc(npts, sizeof(bool));
	bool *off = calloc(npts, sizeof(bool));
	assert_non_null(val);
	for (int c = 0; c < C; c++) {
		size_t p = 0;
		int64_t held_ts = INT64_MIN;
		double held = 0;

		for (size_t i = 0; i < npts; i++) {
			int64_t t = (k0 + (int64_t)i) * I;

			for (; p < n && evs[p].ts <= t; p++) {
				if (evs[p].c == c && acc[p] && evs[p].good) {
					held_ts = evs[p].ts;
					held = evs[p].v;
				}
			}
			bool has = held_ts != INT64_MIN && t - held_ts <= hold_ms;
			val[i * (size_t)C + (size_t)c] = has ? (float)held : NAN;
			if (c == cfg.run_channel)
				off[i] = !has || !ref_run_ok(cfg.run_op, held, cfg.run_value);
		}
	}
	for (size_t i = 0; i < npts; i++) {
		all_gap[i] = true;
		for (int c = 0; c < C; c++) {
			if (isnan(val[i * (size_t)C + (size_t)c]))
				any_gap[i] = true;
			else
				all_gap[i] = false;
		}
	}

	size_t ri = 0;
	uint64_t silent = 0;
	for (size_t i = (size_t)W - 1; i < npts; i++) {
		int64_t k = k0 + (int64_t)i;

		if (((k % cfg.hop) + cfg.hop) % cfg.hop != 0)
			continue;
		bool skip = i >= (size_t)W;
		for (size_t j = i - (size_t)W + (skip ? 0 : 1); skip && j <= i; j++)
			skip = all_gap[j];
		if (skip) {
			silent++;
			continue;
		}
		enum window_status st = WINDOW_OK;
		bool g = false, o = false;
		for (size_t j = i + 1 - (size_t)W; j <= i; j++) {
			g |= any_gap[j];
			o |= off[j];
		}
		if (off[i])
			st = WINDOW_OFF;
		else if (g)
			st = WINDOW_GAP;
		else if (o)
			st = WINDOW_WARMUP;

		assert_true(ri < co.n);
		assert_int_equal(co.r[ri].ts, k * I);
		assert_int_equal(co.r[ri].st, st);
		for (int c = 0; c < C; c++) {
			for (int j = 0; j < W; j++) {
				float want = val[(i + 1 - (size_t)W + (size_t)j) * (size_t)C + (size_t)c];
				float got = xv(&co, ri, c, j);
				if (isnan(want))
					assert_true(isnan(got));
				else
					assert_true(got == want);
			}
		}
		ri++;
	}
	assert_int_equal(ri, co.n);

	struct window_stats st;
	window_get_stats(w, &st);
	assert_int_equal(st.late_samples, late);
	assert_int_equal(st.overdue_samples, 0);
	assert_int_equal(st.silent_windows, silent);
	assert_int_equal(st.windows, co.n);
	assert_int_equal(st.points, npts);

	free(val);
	free(all_gap);
	free(any_gap);
	free(off);
	free(last);
	free(acc);
	free(evs);
	coll_free(&co);
	window_free(w);
}

static void test_random_vs_reference(void **state)
{
	(void)state;
	for (unsigned seed = 1; seed <= 40; seed++)
		random_round(seed);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_resample_irregular),
		cmocka_unit_test(test_hold_boundary_and_bad_quality),
		cmocka_unit_test(test_spacing),
		cmocka_unit_test(test_channel_hold),
		cmocka_unit_test(test_learned_hold),
		cmocka_unit_test(test_hop_alignment),
		cmocka_unit_test(test_run_when),
		cmocka_unit_test(test_late_samples),
		cmocka_unit_test(test_finality_and_overdue),
		cmocka_unit_test(test_silence),
		cmocka_unit_test(test_no_data),
		cmocka_unit_test(test_missing),
		cmocka_unit_test(test_still),
		cmocka_unit_test(test_clock_step),
		cmocka_unit_test(test_emit_stop),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_random_vs_reference),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
