/*
 * test_detector.c - one asset's scoring pipeline with a real trained model:
 * normal data stays quiet, a shift raises an episode, and relearning (an
 * episode taken as normal) clears it at once, scores without alerts, counts
 * its windows as trainable and hands alerts back when it ends.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "alert.h"
#include "detector.h"
#include "nn.h"

#define NC 2
#define NW 16
#define HOP 4
#define STEP_MS 100
#define T0 1795839942100LL
#define PERIOD 40 /* samples */

/* What the hooks saw. */
static struct {
	char payload[2048];
	int raised, cleared, escalated;
	uint64_t last_seq;
	int64_t last_event_ts;
	enum det_state state;
	int states;
	int scored, scored_learning;
	/* on_sensor: missing/back calls, the last channel, whether missing, its
	 * last good; stuck/moving calls, the last one's channel, start, value */
	int sensor_calls;
	int sensor_c;
	bool sensor_missing;
	int64_t sensor_last_good;
	int still_calls;
	int still_c;
	bool still_stuck;
	int64_t still_since;
	double still_value;
} seen;

static void on_sensor(void *user, int c, enum det_sensor_event ev, int64_t since_ms,
		      double value, int64_t now_ms)
{
	(void)user;
	(void)now_ms;
	if (ev == DET_SENSOR_STUCK || ev == DET_SENSOR_MOVING) {
		seen.still_calls++;
		seen.still_c = c;
		seen.still_stuck = ev == DET_SENSOR_STUCK;
		seen.still_since = since_ms;
		seen.still_value = value;
		return;
	}
	seen.sensor_calls++;
	seen.sensor_c = c;
	seen.sensor_missing = ev == DET_SENSOR_MISSING;
	seen.sensor_last_good = since_ms;
}

static int on_alert(void *user, const struct alert_event *ev, const char *payload)
{
	(void)user;
	assert_non_null(strstr(payload, "\"asset\":\"pump\""));
	snprintf(seen.payload, sizeof(seen.payload), "%s", payload);
	seen.last_seq = ev->episode_seq;
	seen.last_event_ts = ev->ts_ms;
	if (ev->kind == ALERT_RAISED)
		seen.raised++;
	else if (ev->kind == ALERT_CLEARED)
		seen.cleared++;
	else if (ev->kind == ALERT_ESCALATED)
		seen.escalated++;
	return 0;
}

static void on_score(void *user, int64_t ts_ms, double score, const float *shares,
		     enum det_state st)
{
	(void)user;
	(void)ts_ms;
	(void)shares;
	assert_true(isfinite(score));
	seen.scored++;
	if (st == DET_LEARNING)
		seen.scored_learning++;
}

static void on_state(void *user, enum det_state st, double score, int64_t ts_ms)
{
	(void)user;
	(void)score;
	(void)ts_ms;
	seen.state = st;
	seen.states++;
}

/* The plant: two channels in quadrature; `shift` moves both off their range. */
static double signal(int c, long i, double shift)
{
	double ph = 2 * M_PI * (double)i / PERIOD;
	return (c == 0 ? 10.0 + 2.0 * sin(ph) : 50.0 + 5.0 * cos(ph)) + shift;
}

static struct nn_model *trained_model(double shift)
{
	const size_t N = 600;
	float *x = malloc(sizeof(float) * N * NC * NW);
	assert_non_null(x);
	for (size_t n = 0; n < N; n++)
		for (int c = 0; c < NC; c++)
			for (int t = 0; t < NW; t++)
				x[(n * NC + (size_t)c) * NW + (size_t)t] =
					(float)signal(c, (long)(n * 3 + (size_t)t), shift);
	struct nn_model *m = nn_model_new(NN_MLP_AE, NC, NW, 5);
	assert_non_null(m);
	struct nn_train_opts o;
	nn_train_opts_default(&o);
	o.epochs = 40;
	o.patience = 0;
	o.lr = 3e-3f;
	assert_int_equal(nn_train(m, x, N, &o, NULL), 0);
	free(x);
	return m;
}

/* Feeds samples [from, to) and advances the detector past them. */
static void feed(struct detector *d, long from, long to, double shift)
{
	for (long i = from; i < to; i++) {
		for (int c = 0; c < NC; c++)
			assert_int_equal(detector_push(d, c, T0 + i * STEP_MS, signal(c, i, shift),
						       true), 0);
		assert_int_equal(detector_advance(d, T0 + i * STEP_MS), 0);
	}
}

/* The asset both tests run: two sensors, raise after 3, clear after 5. */
static struct detector_cfg pump_cfg(void)
{
	static const char *const names[NC] = { "a", "b" };
	static const char *const units[NC] = { "mm/s", "" };
	return (struct detector_cfg){
		.asset = "pump",
		.host = "h",
		.channel_names = names,
		.channel_units = units,
		.window = { .C = NC, .interval_ms = STEP_MS, .W = NW, .hop = HOP, .hold = 2,
			    .run_channel = -1, .no_data_ms = 0 },
		.alert = { .raise_after = 3, .clear_after = 5, .critical = 2.0 },
	};
}

/* An episode restored from a run when the asset had more sensors: it goes
 * on and clears under its id; contributors name only sensors it has now
 * (the stored ones beyond them would index past the names). */
static void test_restored_episode_fewer_sensors(void **state)
{
	(void)state;
	struct detector_cfg cfg = pump_cfg();
	struct detector_hooks hooks = { .on_score = on_score, .on_alert = on_alert,
					.on_state = on_state };
	struct alert_persist r = {
		.episode_seq = 7, .severity = 2, .started_ms = T0 - 60000, .peak_score = 9.5,
		.peak_top = { { 5, 0.7f, 3.0f, 1.0f }, { 0, 0.2f, 12.5f, 10.0f } },
		.n_peak_top = 2,
	};
	memset(&seen, 0, sizeof(seen));
	struct detector *d = detector_new(&cfg, &hooks, NULL, &r);
	assert_non_null(d);
	assert_true(detector_in_episode(d));
	struct alert_persist p;
	detector_alert_persist(d, &p);
	assert_int_equal(p.n_peak_top, 1);
	assert_int_equal(p.peak_top[0].channel, 0);
	detector_set_model(d, trained_model(0.0), 1);
	feed(d, 0, 200, 0.0);
	assert_int_equal(seen.raised, 0);
	assert_int_equal(seen.cleared, 1);
	assert_int_equal(seen.last_seq, 7);
	assert_non_null(strstr(seen.payload, "\"contributors\":[{\"sensor\":\"a\",\"share\":0.2,"
					     "\"value\":12.5,\"expected\":10,\"unit\":\"mm/s\"}]"));
	detector_free(d);
}

/* A new pump detector with a model of the normal signal (v1), the hooks
 * counting into `seen`, which starts over. */
static struct detector *pump_detector(void)
{
	struct detector_cfg cfg = pump_cfg();
	struct detector_hooks hooks = { .on_score = on_score, .on_alert = on_alert,
					.on_state = on_state };
	memset(&seen, 0, sizeof(seen));
	struct detector *d = detector_new(&cfg, &hooks, NULL, NULL);
	assert_non_null(d);
	detector_set_model(d, trained_model(0.0), 1);
	return d;
}

static void test_relearn(void **state)
{
	(void)state;
	struct detector_cfg cfg = pump_cfg();
	struct detector_hooks hooks = { .on_score = on_score, .on_alert = on_alert,
					.on_state = on_state };
	struct detector *d = pump_detector();

	/* Normal running: scored, quiet. */
	feed(d, 0, 400, 0.0);
	assert_int_equal(seen.raised, 0);
	assert_int_equal(seen.state, DET_NORMAL);
	assert_true(seen.scored > 80);
	assert_false(detector_relearning(d));

	/* A state the model has not seen: an episode. */
	feed(d, 400, 500, 8.0);
	assert_int_equal(seen.raised, 1);
	assert_true(detector_in_episode(d));
	uint64_t trainable = detector_trainable_windows(d);
	assert_false(detector_relearn_loud(d)); /* only counted while relearning */

	/* Taken as normal: cleared now (same episode), state learning. */
	int64_t now = T0 + 500 * STEP_MS;
	assert_int_equal(detector_relearn_start(d, now, 0.0), 0);
	assert_int_equal(seen.cleared, 1);
	assert_int_equal(seen.last_seq, 1);
	assert_int_equal(seen.last_event_ts, now);
	assert_false(detector_in_episode(d));
	assert_true(detector_relearning(d));
	assert_int_equal(seen.state, DET_LEARNING);
	assert_int_equal(detector_state(d), DET_LEARNING);

	/* Still over the threshold: scored as learning, no alert, trainable,
	 * and loud (it would have raised). A new model quiets it. */
	int scored = seen.scored_learning;
	feed(d, 500, 600, 8.0);
	assert_int_equal(seen.raised, 1);
	assert_int_equal(seen.cleared, 1);
	assert_true(seen.scored_learning - scored >= 20);
	assert_true(detector_trainable_windows(d) >= trainable + 20);
	assert_true(detector_relearn_loud(d));
	assert_true(detector_last_score(d) >= 1.0);
	assert_true(detector_relearn_scored(d) >= 20);
	detector_set_model(d, trained_model(8.0), 2);
	assert_false(detector_relearn_loud(d));
	assert_int_equal(detector_relearn_scored(d), 0); /* counted per model */
	assert_int_equal(detector_state(d), DET_LEARNING); /* a model does not end it */
	scored = seen.scored_learning;
	feed(d, 600, 700, 8.0);
	assert_false(detector_relearn_loud(d));
	assert_int_equal(detector_relearn_scored(d), (uint64_t)(seen.scored_learning - scored));
	assert_true(detector_last_score(d) < 1.0);
	assert_int_equal(seen.state, DET_LEARNING);

	/* Relearning over: normal again, and a real change alerts. */
	int states = seen.states;
	detector_relearn_end(d);
	assert_false(detector_relearning(d));
	feed(d, 700, 720, 8.0);
	assert_int_equal(seen.state, DET_NORMAL);
	assert_true(seen.states > states);
	feed(d, 720, 820, 30.0);
	assert_int_equal(seen.raised, 2);
	assert_int_equal(seen.last_seq, 2);
	detector_relearn_end(d); /* not relearning: nothing */
	assert_true(detector_in_episode(d));

	/* Relearning with no episode open (after a restart): no event. */
	int cleared = seen.cleared;
	detector_free(d);
	d = detector_new(&cfg, &hooks, NULL, NULL);
	assert_non_null(d);
	assert_int_equal(detector_relearn_start(d, now, 0.0), 0);
	assert_int_equal(seen.cleared, cleared);
	detector_set_model(d, trained_model(0.0), 3);
	feed(d, 0, 100, 0.0);
	assert_int_equal(seen.state, DET_LEARNING);
	detector_free(d);
}

/* The first model's learning (raise_at > 0): scores over the threshold but
 * under raise_at times it are learned without an alert; far over it an
 * episode is raised, keeps its windows out of training, clears by the usual
 * rule (back to learning), and one open when learning starts again (a
 * restart) goes on. */
static void test_learning_raises_far_over(void **state)
{
	(void)state;
	/* how far over the threshold two offsets score */
	struct detector *d = pump_detector();
	feed(d, 0, 200, 8.0);
	double s8 = detector_last_score(d);
	feed(d, 200, 400, 30.0);
	double s30 = detector_last_score(d);
	detector_free(d);
	assert_true(s8 > 1.0);
	assert_true(s30 > 3.0 * s8);
	double level = 2.0 * s8;

	d = pump_detector();
	int64_t now = T0;
	assert_int_equal(detector_relearn_start(d, now, level), 0);
	assert_int_equal(detector_state(d), DET_LEARNING);
	feed(d, 0, 200, 0.0);
	feed(d, 200, 300, 8.0);
	assert_int_equal(seen.raised, 0);
	assert_true(detector_relearn_loud(d));
	assert_int_equal(seen.state, DET_LEARNING);
	uint64_t trainable = detector_trainable_windows(d);
	int learning = seen.scored_learning;
	feed(d, 300, 400, 30.0);
	assert_int_equal(seen.raised, 1);
	assert_true(detector_in_episode(d));
	assert_int_equal(seen.state, DET_CRITICAL);
	/* Of its 25 windows, only those that straddle the change (4) and the
	 * few over the level up to the one that raised are trained on. */
	assert_true(detector_trainable_windows(d) <= trainable + 6);
	assert_true(seen.scored_learning <= learning + 6);
	feed(d, 400, 500, 0.0);
	assert_int_equal(seen.cleared, 1);
	assert_int_equal(seen.state, DET_LEARNING);
	assert_true(detector_relearning(d));

	/* Raised again, then learning starts again (as after a restart): the
	 * episode goes on; learning's end leaves it open, and it clears. */
	feed(d, 500, 600, 30.0);
	assert_int_equal(seen.raised, 2);
	assert_int_equal(detector_relearn_start(d, T0 + 600 * STEP_MS, level), 0);
	assert_int_equal(seen.cleared, 1);
	assert_true(detector_in_episode(d));
	assert_int_equal(detector_state(d), DET_CRITICAL);
	detector_relearn_end(d);
	assert_int_equal(detector_state(d), DET_CRITICAL);
	feed(d, 600, 700, 0.0);
	assert_int_equal(seen.cleared, 2);
	assert_int_equal(seen.state, DET_NORMAL);
	/* alerts on: over the threshold is enough again */
	feed(d, 700, 800, 8.0);
	assert_int_equal(seen.raised, 3);
	detector_free(d);

	/* Taken as normal while learning (started again with 0): cleared at
	 * once, and the same state, still far over, raises nothing more. */
	d = pump_detector();
	assert_int_equal(detector_relearn_start(d, T0, level), 0);
	feed(d, 0, 200, 30.0);
	assert_int_equal(seen.raised, 1);
	assert_int_equal(detector_relearn_start(d, T0 + 200 * STEP_MS, 0.0), 0);
	assert_int_equal(seen.cleared, 1);
	assert_false(detector_in_episode(d));
	assert_int_equal(detector_state(d), DET_LEARNING);
	feed(d, 200, 400, 30.0);
	assert_int_equal(seen.raised, 1);
	assert_int_equal(seen.state, DET_LEARNING);
	detector_free(d);
}

/* Samples [from, to) of the channels set in `mask` (bit c), advancing after each. */
static void feed_some(struct detector *d, long from, long to, unsigned mask, double c0)
{
	for (long i = from; i < to; i++) {
		for (int c = 0; c < NC; c++)
			if (mask & (1u << c))
				assert_int_equal(detector_push(d, c, T0 + i * STEP_MS,
							       c == 0 && !isnan(c0) ? c0
										    : signal(c, i, 0),
							       true),
						 0);
		assert_int_equal(detector_advance(d, T0 + i * STEP_MS), 0);
	}
}

static struct detector_hooks all_hooks(void)
{
	return (struct detector_hooks){ .on_score = on_score, .on_alert = on_alert,
					.on_state = on_state, .on_sensor = on_sensor };
}

/* A detector with a model over 20 s of normal running (hooks seen afresh). */
static struct detector *running_normally(const struct detector_cfg *cfg,
					 const struct detector_hooks *hooks)
{
	memset(&seen, 0, sizeof(seen));
	struct detector *d = detector_new(cfg, hooks, NULL, NULL);
	assert_non_null(d);
	detector_set_model(d, trained_model(0.0), 1);
	feed(d, 0, 200, 0.0);
	assert_int_equal(seen.state, DET_NORMAL);
	return d;
}

/* pump_cfg running while a > 5, no data after 2 s (20 samples). */
static struct detector_cfg running_cfg(void)
{
	struct detector_cfg cfg = pump_cfg();
	cfg.window.no_data_ms = 2000;
	cfg.window.run_channel = 0;
	cfg.window.run_op = WINDOW_OP_GT;
	cfg.window.run_value = 5.0;
	return cfg;
}

/*
 * One dead transmitter among live ones: every window has a gap and none is
 * scored. Before, the state stayed at its last "normal" for ever; now it is
 * no_data once the sensor has sent nothing good for the no-data time, the
 * state names the sensor (on_state again when the set changes) and
 * on_sensor says so once each way.
 */
static void test_missing_sensor(void **state)
{
	(void)state;
	struct detector_cfg cfg = pump_cfg();
	cfg.window.no_data_ms = 2000; /* 20 samples */
	struct detector_hooks hooks = all_hooks();
	const bool *miss;
	const int64_t *good;

	struct detector *d = running_normally(&cfg, &hooks);
	assert_int_equal(detector_missing(d, NULL, NULL), 0);
	assert_int_equal(seen.sensor_calls, 0);

	/* b goes silent at sample 200; a goes on. Up to the no-data time the
	 * state stays (gaps are not scored), then no_data naming b. */
	feed_some(d, 200, 220, 1u, NAN);
	assert_int_equal(seen.state, DET_NORMAL);
	assert_int_equal(seen.sensor_calls, 0);
	feed_some(d, 220, 223, 1u, NAN);
	assert_int_equal(seen.state, DET_NO_DATA);
	assert_int_equal(seen.sensor_calls, 1);
	assert_int_equal(seen.sensor_c, 1);
	assert_true(seen.sensor_missing);
	assert_int_equal(seen.sensor_last_good, T0 + 199 * STEP_MS);
	assert_int_equal(detector_missing(d, &miss, &good), 1);
	assert_false(miss[0]);
	assert_true(miss[1]);
	assert_int_equal(good[1], T0 + 199 * STEP_MS);
	int states = seen.states, scored = seen.scored;
	feed_some(d, 223, 400, 1u, NAN);
	assert_int_equal(seen.states, states); /* said once */
	assert_int_equal(seen.sensor_calls, 1);
	assert_int_equal(seen.scored, scored);

	/* a dies too: the set changed, the state (still no_data) is said again. */
	feed_some(d, 400, 430, 0u, NAN);
	assert_int_equal(detector_missing(d, &miss, NULL), 2);
	assert_int_equal(seen.state, DET_NO_DATA);
	assert_int_equal(seen.states, states + 1);
	assert_int_equal(seen.sensor_calls, 2);
	assert_int_equal(seen.sensor_c, 0);

	/* Both back: no longer missing at once, scored and normal a window later. */
	feed(d, 430, 460, 0.0);
	assert_int_equal(detector_missing(d, NULL, NULL), 0);
	assert_int_equal(seen.sensor_calls, 4);
	assert_false(seen.sensor_missing);
	assert_int_equal(seen.state, DET_NORMAL);
	assert_true(seen.scored > scored);
	detector_free(d);

	/* A sensor that never sent anything counts from the first sample. */
	memset(&seen, 0, sizeof(seen));
	d = detector_new(&cfg, &hooks, NULL, NULL);
	assert_non_null(d);
	feed_some(d, 0, 21, 1u, NAN);
	assert_int_equal(seen.sensor_calls, 0);
	feed_some(d, 21, 40, 1u, NAN);
	assert_int_equal(seen.sensor_calls, 1);
	assert_int_equal(seen.sensor_last_good, INT64_MIN);
	assert_int_equal(seen.state, DET_NO_DATA);
	detector_free(d);
}

/*
 * With run_when: a machine that is off is off, even with another sensor
 * missing (nothing would be scored anyway; the state still names it, and
 * does not flip between off and no_data). A missing run_when sensor means
 * the machine's state is unknown: no_data, not off.
 */
static void test_missing_run_sensor(void **state)
{
	(void)state;
	struct detector_cfg cfg = running_cfg();
	struct detector_hooks hooks = all_hooks();
	const bool *miss;

	struct detector *d = running_normally(&cfg, &hooks);

	/* Stopped (a = 0) and b silent: off throughout, b named once. */
	feed_some(d, 200, 300, 1u, 0.0);
	assert_int_equal(seen.state, DET_OFF);
	assert_int_equal(detector_missing(d, &miss, NULL), 1);
	assert_true(miss[1]);
	int states = seen.states;
	feed_some(d, 300, 400, 1u, 0.0);
	assert_int_equal(seen.states, states);
	assert_int_equal(seen.state, DET_OFF);

	/* Both back and running; then the run_when sensor dies: no_data. */
	feed(d, 400, 500, 0.0);
	assert_int_equal(seen.state, DET_NORMAL);
	feed_some(d, 500, 600, 2u, NAN);
	assert_int_equal(seen.state, DET_NO_DATA);
	assert_int_equal(detector_missing(d, &miss, NULL), 1);
	assert_true(miss[0]);
	states = seen.states;
	feed_some(d, 600, 700, 2u, NAN);
	assert_int_equal(seen.states, states); /* no flapping with off */
	detector_free(d);
}

/* The limit rule: three times the longest still run, a minute at least; a
 * sensor that stood still for half its history or more is not checked. */
static void test_still_limit(void **state)
{
	(void)state;
	assert_int_equal(detector_still_limit(0, 3600000), 60000);
	assert_int_equal(detector_still_limit(10000, 3600000), 60000);
	assert_int_equal(detector_still_limit(100000, 3600000), 300000);
	assert_int_equal(detector_still_limit(1799999, 3600000), 3 * 1799999LL);
	assert_int_equal(detector_still_limit(1800000, 3600000), 0);
	assert_int_equal(detector_still_limit(0, 0), 0);
}

/* The stored texts of the still measurements and of learned holds: what
 * the engine saves, replay and pdmctl read back; sensors no longer
 * configured and entries that do not parse are skipped. */
static void test_stored_texts(void **state)
{
	(void)state;
	const char *names[3] = { "flow", "temp", "vib" };
	const int64_t longest[3] = { 1000, -1, 60000 }, span[3] = { 3600000, -1, 7200000 };
	int64_t l[3], sp[3], h[3];
	char buf[256];

	detector_still_format(buf, sizeof(buf), names, 3, longest, span);
	assert_string_equal(buf, "flow=1000:3600000 temp=-1:-1 vib=60000:7200000");
	detector_still_parse("gone=5:6 vib=60000:7200000  flow=1000:3600000 temp=x", names, 3, l,
			     sp);
	assert_int_equal(l[0], 1000);
	assert_int_equal(sp[0], 3600000);
	assert_int_equal(l[1], -1);
	assert_int_equal(l[2], 60000);
	assert_int_equal(sp[2], 7200000);

	const int64_t hold[3] = { 300, 7500, 1500 }, base[3] = { 300, 300, 2000 };
	detector_hold_format(buf, sizeof(buf), names, 3, hold, base);
	assert_string_equal(buf, "temp=7500"); /* only what is over the configured hold */
	detector_hold_parse("flowx=9 temp=7500 vib=0 flow=", names, 3, h);
	assert_int_equal(h[0], -1);
	assert_int_equal(h[1], 7500);
	assert_int_equal(h[2], -1);
	detector_hold_parse(NULL, names, 3, h);
	assert_int_equal(h[1], -1);
}

/*
 * A frozen transmitter: b repeats its last value exactly while a moves.
 * Stuck once the run passes the limit, counting only running time; said
 * once, named by the state (republished), and moving again when b does. A
 * run that began while the machine was off counts from the start.
 */
static void test_stuck_sensor(void **state)
{
	(void)state;
	struct detector_cfg cfg = running_cfg();
	struct detector_hooks hooks = all_hooks();
	const int64_t limits[NC] = { 0, 3000 }; /* 30 samples */
	const bool *stuck;
	const int64_t *since;
	const double *value;

	struct detector *d = running_normally(&cfg, &hooks);
	detector_set_still_limits(d, limits);
	assert_int_equal(detector_still_limits(d)[1], 3000);
	assert_int_equal(detector_stuck(d, NULL, NULL, NULL), 0);

	/* b frozen at its value of sample 199 from sample 200 on. */
	double frozen = signal(1, 199, 0.0);
	for (long i = 200; i < 260; i++) {
		assert_int_equal(detector_push(d, 0, T0 + i * STEP_MS, signal(0, i, 0.0), true), 0);
		assert_int_equal(detector_push(d, 1, T0 + i * STEP_MS, frozen, true), 0);
		assert_int_equal(detector_advance(d, T0 + i * STEP_MS), 0);
		/* the run began at 199: stuck once it spans more than 3 s */
		if (i <= 229)
			assert_int_equal(detector_stuck(d, NULL, NULL, NULL), 0);
		if (i == 229)
			assert_int_equal(seen.still_calls, 0);
	}
	assert_int_equal(detector_stuck(d, &stuck, &since, &value), 1);
	assert_false(stuck[0]);
	assert_true(stuck[1]);
	assert_int_equal(since[1], T0 + 199 * STEP_MS);
	assert_true(value[1] == frozen);
	assert_int_equal(seen.still_calls, 1);
	assert_true(seen.still_stuck);
	assert_int_equal(seen.still_c, 1);
	/* scored as before: the model sees b fall out of step with a (this
	 * one alarms; the state names b as stuck either way) */
	assert_true(seen.scored > 0);

	/* b moves: no longer stuck at once. */
	feed(d, 260, 280, 0.0);
	assert_int_equal(detector_stuck(d, NULL, NULL, NULL), 0);
	assert_int_equal(seen.still_calls, 2);
	assert_false(seen.still_stuck);

	/* Stopped (a = 0) with b still for 10 s: off time does not count. */
	double parked = 42.0;
	for (long i = 280; i < 380; i++) {
		assert_int_equal(detector_push(d, 0, T0 + i * STEP_MS, 0.0, true), 0);
		assert_int_equal(detector_push(d, 1, T0 + i * STEP_MS, parked, true), 0);
		assert_int_equal(detector_advance(d, T0 + i * STEP_MS), 0);
	}
	assert_int_equal(detector_stuck(d, NULL, NULL, NULL), 0);
	/* Running again, b still parked: stuck only 3 s into the running. */
	int calls = seen.still_calls;
	for (long i = 380; i < 480; i++) {
		assert_int_equal(detector_push(d, 0, T0 + i * STEP_MS, signal(0, i, 0.0), true), 0);
		assert_int_equal(detector_push(d, 1, T0 + i * STEP_MS, parked, true), 0);
		assert_int_equal(detector_advance(d, T0 + i * STEP_MS), 0);
		if (i < 400)
			assert_int_equal(seen.still_calls, calls);
	}
	assert_int_equal(seen.still_calls, calls + 1);
	assert_true(seen.still_stuck);
	assert_true(seen.still_value == parked);

	/* Stuck, then silent: missing, without a word of moving. */
	calls = seen.still_calls;
	int sensor_calls = seen.sensor_calls;
	feed_some(d, 480, 520, 1u, NAN);
	assert_int_equal(detector_stuck(d, NULL, NULL, NULL), 0);
	assert_int_equal(seen.still_calls, calls);
	assert_int_equal(seen.sensor_calls, sensor_calls + 1);
	assert_true(seen.sensor_missing);

	/* Limits off: nothing is stuck. */
	detector_set_still_limits(d, NULL);
	feed(d, 520, 600, 0.0);
	assert_int_equal(detector_stuck(d, NULL, NULL, NULL), 0);
	detector_free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_relearn),
		cmocka_unit_test(test_learning_raises_far_over),
		cmocka_unit_test(test_restored_episode_fewer_sensors),
		cmocka_unit_test(test_missing_sensor),
		cmocka_unit_test(test_missing_run_sensor),
		cmocka_unit_test(test_still_limit),
		cmocka_unit_test(test_stored_texts),
		cmocka_unit_test(test_stuck_sensor),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
