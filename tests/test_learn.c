/*
 * test_learn.c - the learning schedule: retrains as learning's age grows by
 * half (never closer than LEARN_MIN_MS), a quiet model learned after half
 * of what learning had seen when it came (counting only the time it
 * scored: not while the machine is stopped), a loud one retrained instead,
 * the deadline whatever the scores, the least time a first model's learning
 * lasts, and a clock step that keeps every elapsed time. The cases are the ones the daemon and replay meet: a first
 * model of 60 s of data, an episode taken as normal.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "learn.h"

#define T0 1795839942123LL /* 2026-11-28T04:25:42.123Z */
#define S 1000LL

/* The machine runs and is scored all the time: the model has scored since
 * it came. */
static int64_t running(const struct learn *l, int64_t t)
{
	return l->model_ms > 0 && t > l->model_ms ? t - l->model_ms : 0;
}

static enum learn_step step(const struct learn *l, int64_t t, bool loud)
{
	return learn_step(l, t, loud, running(l, t));
}

/* The first time in [from, to) at which learn_step says `want`, or -1. */
static int64_t first_step(const struct learn *l, int64_t from, int64_t to, bool loud,
			  enum learn_step want)
{
	for (int64_t t = from; t < to; t += 100)
		if (step(l, t, loud) == want)
			return t;
	return -1;
}

/* A first model on 60 s of data, quiet from its start: learned after 30 s,
 * not before, and no retrain meanwhile. */
static void test_first_model_quiet(void **state)
{
	struct learn l;
	(void)state;

	learn_start_first(&l, T0, 60 * S, 3600 * S, 0);
	assert_int_equal(l.mark_ms, T0 - 60 * S);
	assert_int_equal(l.until_ms, T0 + 3600 * S);
	assert_int_equal(l.fit_ms, T0);
	assert_int_equal(l.model_ms, T0);
	assert_int_equal(first_step(&l, T0, T0 + 3600 * S, false, LEARN_RETRAIN), -1);
	assert_int_equal(first_step(&l, T0, T0 + 3600 * S, false, LEARN_DONE), T0 + 30 * S);
	assert_int_equal(step(&l, T0 + 30 * S - 1, false), LEARN_WAIT);
}

/* The same model loud: retrained once learning's age has grown by half
 * (60 s -> 90 s), then at 135 s of age, each training seeing half again
 * as much; a new model quiet for half its age has learned. */
static void test_loud_retrains(void **state)
{
	struct learn l;
	(void)state;

	learn_start_first(&l, T0, 60 * S, 3600 * S, 0);
	int64_t t1 = first_step(&l, T0, T0 + 3600 * S, true, LEARN_RETRAIN);
	assert_int_equal(t1, T0 + 30 * S);
	learn_fitted(&l, t1);
	assert_int_equal(step(&l, t1, true), LEARN_WAIT);
	int64_t t2 = first_step(&l, t1, T0 + 3600 * S, true, LEARN_RETRAIN);
	assert_int_equal(t2, T0 + 75 * S); /* age 90 s -> 135 s */
	learn_fitted(&l, t2);
	learn_installed(&l, t2 + 5 * S); /* 140 s of age when it came */
	assert_int_equal(first_step(&l, t2 + 5 * S, T0 + 3600 * S, false, LEARN_DONE),
			 t2 + 5 * S + 70 * S);
	/* Loud again: the next retrain counts from the last training. */
	assert_int_equal(first_step(&l, t2 + 5 * S, T0 + 3600 * S, true, LEARN_RETRAIN),
			 T0 + 75 * S + 67500); /* age 135 s -> 202.5 s */
}

/* Trainings at least LEARN_MIN_MS apart, and a quiet time of at least that:
 * an episode taken as normal at once (learning's age 0). */
static void test_minimum_spacing(void **state)
{
	struct learn l;
	(void)state;

	learn_start(&l, T0, 3600 * S);
	assert_int_equal(step(&l, T0, true), LEARN_WAIT);
	assert_int_equal(first_step(&l, T0, T0 + 60 * S, true, LEARN_RETRAIN), T0 + LEARN_MIN_MS);
	learn_fitted(&l, T0 + LEARN_MIN_MS);
	assert_int_equal(first_step(&l, T0 + LEARN_MIN_MS, T0 + 60 * S, true, LEARN_RETRAIN),
			 T0 + 2 * LEARN_MIN_MS);
	learn_installed(&l, T0 + 11 * S);
	/* half of 11 s is less than the minimum */
	assert_int_equal(first_step(&l, T0 + 11 * S, T0 + 60 * S, false, LEARN_DONE),
			 T0 + 11 * S + LEARN_MIN_MS);
	/* No model installed yet: quiet scores do not end learning. */
	struct learn fresh;
	learn_start(&fresh, T0, 3600 * S);
	assert_int_equal(first_step(&fresh, T0, T0 + 120 * S, false, LEARN_DONE), -1);
}

/* A machine stopped (or a source silent) right after the model: time
 * passes, nothing is scored, nothing is learned; once it runs again the
 * quiet time counts. */
static void test_stopped_machine(void **state)
{
	struct learn l;
	(void)state;

	learn_start_first(&l, T0, 60 * S, 3600 * S, 0);
	for (int64_t t = T0; t < T0 + 3600 * S; t += S)
		assert_int_equal(learn_step(&l, t, false, 0), LEARN_WAIT);
	assert_int_equal(learn_step(&l, T0 + 3600 * S, false, 0), LEARN_EXPIRED);
	/* back after 20 min: learned after 30 s of scores */
	assert_int_equal(learn_step(&l, T0 + 1200 * S, false, 29 * S), LEARN_WAIT);
	assert_int_equal(learn_step(&l, T0 + 1200 * S, false, 30 * S), LEARN_DONE);
}

/* The deadline ends learning whatever the scores: loud, quiet but not long
 * enough, or no model at all. */
static void test_deadline(void **state)
{
	struct learn l;
	(void)state;

	learn_start(&l, T0, 600 * S);
	/* no model installed while learning: train (as after pdmctl normal) */
	assert_int_equal(step(&l, T0 + 600 * S - 1, false), LEARN_RETRAIN);
	assert_int_equal(step(&l, T0 + 600 * S, false), LEARN_EXPIRED);
	learn_installed(&l, T0 + 500 * S);
	assert_int_equal(step(&l, T0 + 600 * S, true), LEARN_EXPIRED);
	assert_int_equal(step(&l, T0 + 599 * S, false), LEARN_WAIT);
	assert_int_equal(step(&l, T0 + 600 * S, false), LEARN_EXPIRED);
	/* no overflow with a deadline out of reach */
	learn_start(&l, T0, INT64_MAX);
	assert_int_equal(l.until_ms, INT64_MAX);
	assert_int_equal(step(&l, INT64_MAX / 4, true), LEARN_RETRAIN);
}

/* learn_min: a first model quiet from its start has not learned before its
 * data spans the minimum, however long it was quiet; loud, it retrains as
 * without one. A minimum beyond the deadline moves the deadline. */
static void test_minimum_time(void **state)
{
	struct learn l;
	(void)state;

	learn_start_first(&l, T0, 60 * S, 3600 * S, 600 * S);
	assert_int_equal(l.min_ms, T0 + 540 * S);
	assert_int_equal(l.until_ms, T0 + 3600 * S);
	assert_int_equal(first_step(&l, T0, T0 + 3600 * S, false, LEARN_RETRAIN), -1);
	assert_int_equal(first_step(&l, T0, T0 + 3600 * S, false, LEARN_DONE), T0 + 540 * S);
	/* quiet long enough, but not yet the minimum; then the minimum, but
	 * too little scored (a stopped machine) */
	assert_int_equal(learn_step(&l, T0 + 539 * S, false, 500 * S), LEARN_WAIT);
	assert_int_equal(learn_step(&l, T0 + 540 * S, false, 29 * S), LEARN_WAIT);
	assert_int_equal(learn_step(&l, T0 + 540 * S, false, 30 * S), LEARN_DONE);
	/* loud: the same retrains as without a minimum */
	struct learn m;
	learn_start_first(&m, T0, 60 * S, 3600 * S, 0);
	for (int64_t t = T0; t < T0 + 600 * S; t += S)
		assert_int_equal(step(&l, t, true), step(&m, t, true));
	/* a minimum past learn_for: learning lasts until it, not past it */
	learn_start_first(&l, T0, 60 * S, 3600 * S, 7200 * S);
	assert_int_equal(l.until_ms, T0 + 7140 * S);
	assert_int_equal(step(&l, T0 + 7140 * S - 1, false), LEARN_WAIT);
	assert_int_equal(step(&l, T0 + 7140 * S, false), LEARN_DONE);
	assert_int_equal(step(&l, T0 + 7140 * S, true), LEARN_EXPIRED);
	/* set after a restart (learn_start, then the minimum from the config) */
	learn_start(&l, T0 - 60 * S, 3660 * S);
	learn_set_min(&l, 600 * S);
	learn_installed(&l, T0);
	assert_int_equal(first_step(&l, T0, T0 + 3600 * S, false, LEARN_DONE), T0 + 540 * S);
	/* none when relearning an episode: quiet for the minimum quiet time */
	learn_start(&l, T0, 3600 * S);
	assert_int_equal(l.min_ms, T0);
	learn_installed(&l, T0);
	assert_int_equal(first_step(&l, T0, T0 + 3600 * S, false, LEARN_DONE), T0 + LEARN_MIN_MS);
}

/* A clock step moves every mark: what was due stays due, what was not
 * stays not, on the new clock; an unbounded deadline stays unbounded. */
static void test_shift(void **state)
{
	struct learn l, m;
	(void)state;

	learn_start_first(&l, T0, 60 * S, 3600 * S, 600 * S);
	m = l;
	const int64_t dstep = -3600 * S;
	learn_shift(&m, dstep);
	for (int64_t dt = 0; dt < 4000 * S; dt += 7 * S)
		for (int loud = 0; loud < 2; loud++)
			assert_int_equal(step(&l, T0 + dt, loud),
					 step(&m, T0 + dt + dstep, loud));
	learn_start(&l, T0, INT64_MAX);
	learn_shift(&l, dstep);
	assert_int_equal(l.until_ms, INT64_MAX);
	assert_int_equal(l.fit_ms, 0);
	assert_int_equal(l.model_ms, 0);
}

/*
 * What learning took as normal: stretches raised after raise_after (3)
 * scores over 1.0 and cleared after clear_after (2) under it, as the alert
 * engine would; one dip under the threshold does not end a stretch; the
 * highest three kept, highest first; an open one counted at the end; the
 * stored text read back; the sentence for the log.
 */
static void feed(struct learn_over *o, int64_t *t, const double *sc, size_t n)
{
	for (size_t i = 0; i < n; i++, *t += S)
		learn_over_feed(o, *t, sc[i], sc[i] >= 4 ? "vib" : NULL);
}

static void test_over(void **state)
{
	(void)state;
	struct learn_over o, back;
	int64_t t = T0;
	char buf[512];

	learn_over_init(&o, 3, 2);
	const double two[] = { 1.5, 1.2, 0.5, 0.4 }; /* two over: not raised */
	feed(&o, &t, two, 4);
	assert_int_equal(o.n, 0);
	const double a[] = { 1.1, 1.3, 2.0, 0.9, 1.8, 0.5, 0.5 }; /* T0+4s .. 8s, one dip */
	feed(&o, &t, a, 7);
	assert_int_equal(o.n, 1);
	assert_int_equal(o.top[0].start_ms, T0 + 4 * S);
	assert_int_equal(o.top[0].end_ms, T0 + 8 * S);
	assert_true(o.top[0].peak == 2.0);
	const double b[] = { 5, 5, 5, 0, 0 };      /* peak 5 */
	const double c[] = { 1.2, 1.2, 1.2, 0, 0 }; /* lowest: dropped from the three */
	const double d[] = { 3, 3, 3, 3, 0, 0 };   /* peak 3, 3 s */
	feed(&o, &t, b, 5);
	feed(&o, &t, c, 5);
	feed(&o, &t, d, 6);
	const double e[] = { 4, 4, 4, 4 }; /* open at the end */
	feed(&o, &t, e, 4);
	assert_int_equal(o.n, 4);
	learn_over_end(&o);
	assert_int_equal(o.n, 5);
	assert_int_equal(o.shown, 3);
	assert_true(o.top[0].peak == 5 && o.top[1].peak == 4 && o.top[2].peak == 3);
	assert_int_equal(o.top[1].end_ms - o.top[1].start_ms, 3 * S);
	/* 4 + 2 + 2 + 3 + 3 s from the first score over to the last */
	assert_int_equal(o.total_ms, 14 * S);

	learn_over_format(&o, buf, sizeof(buf));
	assert_int_equal(learn_over_parse(buf, &back), 0);
	assert_int_equal(back.n, 5);
	assert_int_equal(back.total_ms, 14 * S);
	assert_int_equal(back.shown, 3);
	assert_memory_equal(&back.top[1], &o.top[1], sizeof(o.top[1]));
	assert_string_equal(back.top[0].sensor, "vib");
	assert_string_equal(back.top[2].sensor, "");
	assert_int_equal(learn_over_parse("x", &back), -EINVAL);
	assert_int_equal(back.n, 0);
	assert_int_equal(learn_over_parse(NULL, &back), -EINVAL);

	learn_over_describe(&o, buf, sizeof(buf));
	assert_string_equal(buf, "5 times (14.0 s in all); the highest: 2026-11-28T04:25:53.123Z for "
				 "2.0 s (peak 5, vib first); 2026-11-28T04:26:09.123Z for 3.0 s "
				 "(peak 4, vib first); 2026-11-28T04:26:03.123Z for 3.0 s (peak 3)");

	/* the same scores read back without their sensors: named from the
	 * stretches seen live, by their start */
	struct learn_over st;
	learn_over_init(&st, 3, 2);
	const double *all[] = { two, a, b, c, d, e };
	const size_t len[] = { 4, 7, 5, 5, 6, 4 };
	t = T0;
	for (size_t k = 0; k < 6; k++)
		for (size_t i = 0; i < len[k]; i++, t += S)
			learn_over_feed(&st, t, all[k][i], NULL);
	learn_over_end(&st);
	assert_string_equal(st.top[0].sensor, "");
	learn_over_name(&st, &o);
	assert_string_equal(st.top[0].sensor, "vib");
	assert_string_equal(st.top[1].sensor, "vib");
	assert_string_equal(st.top[2].sensor, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_first_model_quiet), cmocka_unit_test(test_loud_retrains),
		cmocka_unit_test(test_minimum_spacing),   cmocka_unit_test(test_stopped_machine),
		cmocka_unit_test(test_deadline),
		cmocka_unit_test(test_minimum_time),
		cmocka_unit_test(test_shift),
		cmocka_unit_test(test_over),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
