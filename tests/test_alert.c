/*
 * test_alert.c - the alert engine: hysteresis at its exact boundaries,
 * severity and escalation, contributors, persistence across a restart, and
 * the JSON payloads parsed back with cJSON.
 */
#include <cjson/cJSON.h>
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

#include "alert.h"
#include "pdm_error.h"

#define T0 1795839942123LL /* 2026-11-28T04:25:42.123Z */
#define HOP_MS 800

static const struct alert_cfg cfg_3_2 = { .raise_after = 3, .clear_after = 2, .critical = 2.0 };

static const float flat[4] = { 0.25f, 0.25f, 0.25f, 0.25f };

/* Steps one window with `shares` (C = 4) and returns the event kind. */
static enum alert_event_kind step(struct alert_engine *a, int i, double score, const float *shares,
				  struct alert_event *ev)
{
	assert_int_equal(
		alert_step(a, T0 + i * HOP_MS, score, shares ? shares : flat, NULL, NULL, 4, ev), 0);
	return ev->kind;
}

/* Raise needs exactly raise_after consecutive scores >= 1.0 (1.0 counts,
 * 0.999 does not and resets the run); clear needs exactly clear_after
 * consecutive scores < 1.0 (a score of 1.0 resets that run). */
static void test_hysteresis_boundaries(void **state)
{
	struct alert_engine *a = alert_new(&cfg_3_2, NULL);
	struct alert_event ev;
	int i = 0;
	(void)state;

	assert_non_null(a);
	assert_int_equal(step(a, i++, 0.999, NULL, &ev), ALERT_NONE);
	assert_int_equal(step(a, i++, 1.0, NULL, &ev), ALERT_NONE);
	assert_int_equal(step(a, i++, 1.0, NULL, &ev), ALERT_NONE);
	assert_int_equal(step(a, i++, 0.999, NULL, &ev), ALERT_NONE); /* run broken */
	assert_int_equal(step(a, i++, 1.0, NULL, &ev), ALERT_NONE);
	assert_int_equal(step(a, i++, 1.5, NULL, &ev), ALERT_NONE);
	assert_int_equal(alert_severity(a), ALERT_SEV_NONE);
	assert_int_equal(step(a, i, 1.25, NULL, &ev), ALERT_RAISED);
	assert_int_equal(ev.severity, ALERT_SEV_WARNING);
	assert_int_equal(ev.episode_seq, 1);
	assert_int_equal(ev.ts_ms, T0 + i * HOP_MS);
	assert_int_equal(ev.started_ms, T0 + i * HOP_MS);
	assert_true(ev.score == 1.25);
	assert_int_equal(alert_severity(a), ALERT_SEV_WARNING);
	i++;

	/* In the episode: more over-threshold windows change nothing. */
	assert_int_equal(step(a, i++, 1.9, NULL, &ev), ALERT_NONE);
	assert_int_equal(step(a, i++, 0.5, NULL, &ev), ALERT_NONE);
	assert_int_equal(step(a, i++, 1.0, NULL, &ev), ALERT_NONE); /* resets the clear run */
	assert_int_equal(step(a, i++, 0.999, NULL, &ev), ALERT_NONE);
	assert_int_equal(step(a, i, 0.2, NULL, &ev), ALERT_CLEARED);
	assert_int_equal(ev.episode_seq, 1);
	assert_int_equal(ev.severity, ALERT_SEV_WARNING);
	assert_int_equal(ev.ts_ms, T0 + i * HOP_MS);
	assert_int_equal(ev.started_ms, T0 + 6 * HOP_MS);
	assert_true(ev.score == 1.9); /* the episode's peak */
	assert_int_equal(alert_severity(a), ALERT_SEV_NONE);
	i++;

	/* A fresh episode needs a full run again, and gets the next number. */
	assert_int_equal(step(a, i++, 1.1, NULL, &ev), ALERT_NONE);
	assert_int_equal(step(a, i++, 1.1, NULL, &ev), ALERT_NONE);
	assert_int_equal(step(a, i++, 1.1, NULL, &ev), ALERT_RAISED);
	assert_int_equal(ev.episode_seq, 2);
	alert_free(a);

	/* raise_after = clear_after = 1: every crossing is an event. */
	struct alert_cfg c11 = { 1, 1, 3.0 };
	a = alert_new(&c11, NULL);
	assert_int_equal(step(a, 0, 1.0, NULL, &ev), ALERT_RAISED);
	assert_int_equal(step(a, 1, 0.0, NULL, &ev), ALERT_CLEARED);
	assert_int_equal(step(a, 2, 0.0, NULL, &ev), ALERT_NONE);
	assert_int_equal(step(a, 3, 7.0, NULL, &ev), ALERT_RAISED);
	assert_int_equal(ev.severity, ALERT_SEV_CRITICAL);
	assert_int_equal(ev.episode_seq, 2);
	alert_free(a);
}

/* A warning episode escalates once, at the first score >= critical (the
 * boundary itself counts); an episode raised critical never escalates. */
static void test_escalation_once(void **state)
{
	struct alert_engine *a = alert_new(&cfg_3_2, NULL);
	struct alert_event ev;
	const float sh[4] = { 0.1f, 0.2f, 0.6f, 0.1f };
	(void)state;

	for (int i = 0; i < 3; i++)
		step(a, i, 1.2, NULL, &ev);
	assert_int_equal(ev.kind, ALERT_RAISED);
	assert_int_equal(step(a, 3, 1.999, NULL, &ev), ALERT_NONE);
	assert_int_equal(step(a, 4, 2.0, sh, &ev), ALERT_ESCALATED);
	assert_int_equal(ev.severity, ALERT_SEV_CRITICAL);
	assert_int_equal(ev.episode_seq, 1);
	assert_int_equal(ev.started_ms, T0 + 2 * HOP_MS);
	assert_int_equal(ev.ts_ms, T0 + 4 * HOP_MS);
	assert_int_equal(ev.n_top, 3);
	assert_int_equal(ev.top[0].channel, 2);
	assert_int_equal(step(a, 5, 5.0, NULL, &ev), ALERT_NONE);
	assert_int_equal(step(a, 6, 0.5, NULL, &ev), ALERT_NONE);
	assert_int_equal(step(a, 7, 2.5, NULL, &ev), ALERT_NONE); /* still only once */
	assert_int_equal(step(a, 8, 0.5, NULL, &ev), ALERT_NONE);
	assert_int_equal(step(a, 9, 0.5, NULL, &ev), ALERT_CLEARED);
	assert_int_equal(ev.severity, ALERT_SEV_CRITICAL);
	assert_true(ev.score == 5.0);
	alert_free(a);

	a = alert_new(&cfg_3_2, NULL);
	step(a, 0, 3.0, NULL, &ev);
	step(a, 1, 1.0, NULL, &ev);
	assert_int_equal(step(a, 2, 2.0, NULL, &ev), ALERT_RAISED);
	assert_int_equal(ev.severity, ALERT_SEV_CRITICAL); /* by the raising score */
	assert_int_equal(step(a, 3, 9.0, NULL, &ev), ALERT_NONE);
	alert_free(a);
}

/* A raise level (the first model's learning): only scores at or over it
 * count toward raising; once open, the episode escalates and clears by the
 * usual rules (under 1.0, not under the level); a new level starts the
 * raise run over, and 1.0 (or less, or NaN) is the rule without one. */
static void test_raise_at(void **state)
{
	struct alert_engine *a = alert_new(&cfg_3_2, NULL);
	struct alert_event ev;
	int i = 0;
	(void)state;

	alert_set_raise_at(a, 10.0);
	for (int k = 0; k < 6; k++)
		assert_int_equal(step(a, i++, 9.99, NULL, &ev), ALERT_NONE);
	assert_int_equal(step(a, i++, 10.0, NULL, &ev), ALERT_NONE);
	assert_int_equal(step(a, i++, 50.0, NULL, &ev), ALERT_NONE);
	assert_int_equal(step(a, i++, 9.0, NULL, &ev), ALERT_NONE); /* run broken */
	assert_int_equal(step(a, i++, 12.0, NULL, &ev), ALERT_NONE);
	assert_int_equal(step(a, i++, 12.0, NULL, &ev), ALERT_NONE);
	assert_int_equal(step(a, i++, 12.0, NULL, &ev), ALERT_RAISED);
	assert_int_equal(ev.severity, ALERT_SEV_CRITICAL);
	/* 1.5 is under the level but over the threshold: the episode stays */
	for (int k = 0; k < 5; k++)
		assert_int_equal(step(a, i++, 1.5, NULL, &ev), ALERT_NONE);
	assert_int_equal(step(a, i++, 0.9, NULL, &ev), ALERT_NONE);
	assert_int_equal(step(a, i++, 0.9, NULL, &ev), ALERT_CLEARED);
	assert_true(ev.score == 12.0);

	/* a run toward the level starts over when the level changes */
	assert_int_equal(step(a, i++, 11.0, NULL, &ev), ALERT_NONE);
	assert_int_equal(step(a, i++, 11.0, NULL, &ev), ALERT_NONE);
	alert_set_raise_at(a, NAN);
	assert_int_equal(step(a, i++, 1.0, NULL, &ev), ALERT_NONE);
	assert_int_equal(step(a, i++, 1.0, NULL, &ev), ALERT_NONE);
	assert_int_equal(step(a, i++, 1.0, NULL, &ev), ALERT_RAISED);
	assert_int_equal(ev.severity, ALERT_SEV_WARNING);
	assert_int_equal(ev.episode_seq, 2);
	alert_free(a);
	alert_set_raise_at(NULL, 2.0);
}

/* alert_close ends the open episode whatever the scores: the cleared event
 * is the one alert_step would make (peak score and its contributors); with
 * none open it is ALERT_NONE and a raise run in progress starts over. */
static void test_close(void **state)
{
	struct alert_engine *a = alert_new(&cfg_3_2, NULL);
	struct alert_event ev;
	const float sh[4] = { 0.1f, 0.7f, 0.1f, 0.1f };
	struct alert_persist p;
	(void)state;

	step(a, 0, 1.2, NULL, &ev);
	step(a, 1, 1.2, NULL, &ev);
	assert_int_equal(alert_close(a, T0 + 2 * HOP_MS, &ev), 0);
	assert_int_equal(ev.kind, ALERT_NONE);
	assert_int_equal(step(a, 3, 1.2, NULL, &ev), ALERT_NONE); /* the run started over */
	assert_int_equal(step(a, 4, 1.2, NULL, &ev), ALERT_NONE);
	assert_int_equal(step(a, 5, 3.5, sh, &ev), ALERT_RAISED);
	assert_int_equal(step(a, 6, 9.0, NULL, &ev), ALERT_NONE);
	assert_int_equal(alert_close(a, T0 + 7 * HOP_MS, &ev), 0);
	assert_int_equal(ev.kind, ALERT_CLEARED);
	assert_int_equal(ev.episode_seq, 1);
	assert_int_equal(ev.severity, ALERT_SEV_CRITICAL);
	assert_int_equal(ev.ts_ms, T0 + 7 * HOP_MS);
	assert_int_equal(ev.started_ms, T0 + 5 * HOP_MS);
	assert_true(ev.score == 9.0);
	assert_int_equal(ev.n_top, 3); /* the peak window's top three */
	assert_int_equal(ev.reason, ALERT_CLEAR_TAKEN_AS_NORMAL);
	alert_get_persist(a, &p);
	assert_int_equal(p.severity, ALERT_SEV_NONE);
	assert_int_equal(p.episode_seq, 1);
	assert_int_equal(p.over + p.under, 0);
	/* Closed twice: nothing more; the next episode is number 2. */
	assert_int_equal(alert_close(a, T0 + 8 * HOP_MS, &ev), 0);
	assert_int_equal(ev.kind, ALERT_NONE);
	for (int i = 9; i < 12; i++)
		step(a, i, 1.5, NULL, &ev);
	assert_int_equal(ev.kind, ALERT_RAISED);
	assert_int_equal(ev.episode_seq, 2);
	assert_int_equal(alert_close(NULL, T0, &ev), -EINVAL);
	assert_int_equal(alert_close(a, T0, NULL), -EINVAL);
	alert_free(a);
}

/* Contributors: largest shares first, ties to the lower channel, NaN and
 * zero shares left out; raised carries the raising window's, cleared the
 * peak window's. */
static void test_contributors(void **state)
{
	struct alert_cfg c = { 1, 1, 10.0 };
	struct alert_engine *a = alert_new(&c, NULL);
	struct alert_event ev;
	const float s7[7] = { 0.1f, 0.3f, 0.2f, 0.3f, NAN, 0.0f, 0.1f };
	(void)state;

	assert_int_equal(alert_step(a, T0, 2.0, s7, NULL, NULL, 7, &ev), 0);
	assert_int_equal(ev.kind, ALERT_RAISED);
	assert_int_equal(ev.n_top, 3);
	assert_int_equal(ev.top[0].channel, 1);
	assert_int_equal(ev.top[1].channel, 3);
	assert_int_equal(ev.top[2].channel, 2);
	assert_true(ev.top[0].share == 0.3f);
	assert_true(ev.top[2].share == 0.2f);

	/* Peak window at 4.0: channel 5 dominates; a later window with the
	 * same score does not replace it (the first peak explains it). */
	const float peak[7] = { 0.05f, 0.05f, 0.05f, 0.05f, 0.0f, 0.7f, 0.1f };
	const float later[7] = { 0.9f, 0.1f, 0, 0, 0, 0, 0 };
	assert_int_equal(alert_step(a, T0 + 1, 4.0, peak, NULL, NULL, 7, &ev), 0);
	assert_int_equal(alert_step(a, T0 + 2, 4.0, later, NULL, NULL, 7, &ev), 0);
	assert_int_equal(alert_step(a, T0 + 3, 0.1, later, NULL, NULL, 7, &ev), 0);
	assert_int_equal(ev.kind, ALERT_CLEARED);
	assert_true(ev.score == 4.0);
	assert_int_equal(ev.n_top, 3);
	assert_int_equal(ev.top[0].channel, 5);
	assert_int_equal(ev.top[1].channel, 6);
	assert_int_equal(ev.top[2].channel, 0);

	/* Fewer channels than 3, and a window explaining nothing. */
	const float two[2] = { 0.4f, 0.6f };
	const float zero[2] = { 0, 0 };
	assert_int_equal(alert_step(a, T0 + 4, 2.0, two, NULL, NULL, 2, &ev), 0);
	assert_int_equal(ev.n_top, 2);
	assert_int_equal(ev.top[0].channel, 1);
	assert_int_equal(alert_step(a, T0 + 5, 0.5, zero, NULL, NULL, 2, &ev), 0);
	assert_int_equal(alert_step(a, T0 + 6, 2.0, zero, NULL, NULL, 2, &ev), 0);
	assert_int_equal(ev.kind, ALERT_RAISED);
	assert_int_equal(ev.n_top, 0);
	alert_free(a);
}

static void assert_persist_equal(const struct alert_persist *x, const struct alert_persist *y)
{
	assert_int_equal(x->episode_seq, y->episode_seq);
	assert_int_equal(x->severity, y->severity);
	assert_int_equal(x->started_ms, y->started_ms);
	assert_true(x->peak_score == y->peak_score);
	assert_int_equal(x->over, y->over);
	assert_int_equal(x->under, y->under);
	assert_int_equal(x->n_peak_top, y->n_peak_top);
	for (int i = 0; i < x->n_peak_top; i++) {
		assert_int_equal(x->peak_top[i].channel, y->peak_top[i].channel);
		assert_true(x->peak_top[i].share == y->peak_top[i].share);
		/* NaN (not known) survives as NaN */
		const float v[2] = { x->peak_top[i].value, x->peak_top[i].expected };
		const float w[2] = { y->peak_top[i].value, y->peak_top[i].expected };
		for (int k = 0; k < 2; k++)
			assert_true(v[k] == w[k] || (isnan(v[k]) && isnan(w[k])));
	}
}

static void test_persist_json(void **state)
{
	struct alert_persist p = {
		.episode_seq = 4503599627370497ULL, /* 2^52 + 1: exact in a double */
		.severity = 2,
		.started_ms = T0,
		.peak_score = 3.0625,
		.over = 0,
		.under = 7,
		.peak_top = { { 3, 0.625f, 4.25f, 1.5f }, { 0, 0.1f, -273.125f, NAN },
			      { 11, 1e-7f, NAN, NAN } },
		.n_peak_top = 3,
	}, q;
	(void)state;

	char *s = alert_persist_to_json(&p);
	assert_non_null(s);
	memset(&q, 0xa5, sizeof(q));
	assert_int_equal(alert_persist_from_json(s, &q), 0);
	assert_persist_equal(&p, &q);
	free(s);

	/* Unknown keys are fine; missing peak_top means none. */
	assert_int_equal(alert_persist_from_json("{\"episode_seq\":3,\"severity\":0,\"started_ms\":0,"
						 "\"peak_score\":0,\"over\":2,\"under\":0,\"x\":1}",
						 &q),
			 0);
	assert_int_equal(q.episode_seq, 3);
	assert_int_equal(q.over, 2);
	assert_int_equal(q.n_peak_top, 0);
	/* A state stored before values were kept: contributors without them. */
	assert_int_equal(alert_persist_from_json("{\"episode_seq\":3,\"severity\":1,"
						 "\"started_ms\":0,\"peak_score\":2,\"over\":0,"
						 "\"under\":0,\"peak_top\":[{\"channel\":1,"
						 "\"share\":0.5}]}",
						 &q),
			 0);
	assert_int_equal(q.n_peak_top, 1);
	assert_true(isnan(q.peak_top[0].value) && isnan(q.peak_top[0].expected));

	/* Each of these is refused and leaves *p alone. */
	const char *bad[] = {
		"",
		"[]",
		"{\"episode_seq\":3}",
		"{\"episode_seq\":3,\"severity\":3,\"started_ms\":0,\"peak_score\":0,\"over\":0,"
		"\"under\":0}",
		"{\"episode_seq\":3.5,\"severity\":0,\"started_ms\":0,\"peak_score\":0,\"over\":0,"
		"\"under\":0}",
		"{\"episode_seq\":-1,\"severity\":0,\"started_ms\":0,\"peak_score\":0,\"over\":0,"
		"\"under\":0}",
		"{\"episode_seq\":0,\"severity\":1,\"started_ms\":0,\"peak_score\":0,\"over\":0,"
		"\"under\":0}",
		"{\"episode_seq\":3,\"severity\":0,\"started_ms\":0,\"peak_score\":0,\"over\":-2,"
		"\"under\":0}",
		"{\"episode_seq\":3,\"severity\":0,\"started_ms\":0,\"peak_score\":\"big\",\"over\":0,"
		"\"under\":0}",
		"{\"episode_seq\":3,\"severity\":1,\"started_ms\":0,\"peak_score\":2,\"over\":0,"
		"\"under\":0,\"peak_top\":[{\"channel\":1,\"share\":0.5},{\"channel\":2,\"share\":0.1},"
		"{\"channel\":3,\"share\":0.1},{\"channel\":4,\"share\":0.1}]}",
		"{\"episode_seq\":3,\"severity\":1,\"started_ms\":0,\"peak_score\":2,\"over\":0,"
		"\"under\":0,\"peak_top\":[{\"channel\":-1,\"share\":0.5}]}",
		"{\"episode_seq\":3,\"severity\":1,",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memcpy(&q, &p, sizeof(q));
		assert_int_equal(alert_persist_from_json(bad[i], &q), -PDM_ECORRUPT);
		assert_persist_equal(&p, &q);
	}
}

/* kill -9 and restart in the middle of an episode: the restored engine
 * neither raises it again nor reuses its number, and clears it. */
static void test_restart_continues_episode(void **state)
{
	struct alert_persist prev = { 0 }, p;
	struct alert_event ev;
	(void)state;

	prev.episode_seq = 41;
	struct alert_engine *a = alert_new(&cfg_3_2, &prev);
	const float sh[4] = { 0.7f, 0.1f, 0.1f, 0.1f };
	for (int i = 0; i < 3; i++)
		step(a, i, 2.5, sh, &ev);
	assert_int_equal(ev.kind, ALERT_RAISED);
	assert_int_equal(ev.episode_seq, 42);
	step(a, 3, 0.5, NULL, &ev); /* one under: the clear run has begun */
	alert_get_persist(a, &p);
	char *s = alert_persist_to_json(&p);
	alert_free(a);

	struct alert_persist r;
	assert_int_equal(alert_persist_from_json(s, &r), 0);
	free(s);
	a = alert_new(&cfg_3_2, &r);
	assert_non_null(a);
	assert_int_equal(alert_severity(a), ALERT_SEV_CRITICAL);
	for (int i = 4; i < 10; i++) /* over threshold, below the 2.5 peak */
		assert_int_equal(step(a, i, 2.2, NULL, &ev), ALERT_NONE);
	assert_int_equal(step(a, 10, 0.5, NULL, &ev), ALERT_NONE);
	assert_int_equal(step(a, 11, 0.5, NULL, &ev), ALERT_CLEARED);
	assert_int_equal(ev.episode_seq, 42);
	assert_int_equal(ev.started_ms, T0 + 2 * HOP_MS);
	assert_int_equal(ev.top[0].channel, 0); /* the peak came before the restart */
	alert_free(a);

	/* A raise count in progress survives too: two over before, one after. */
	memset(&r, 0, sizeof(r));
	r.episode_seq = 42;
	r.over = 2;
	a = alert_new(&cfg_3_2, &r);
	assert_int_equal(step(a, 20, 1.5, NULL, &ev), ALERT_RAISED);
	assert_int_equal(ev.episode_seq, 43);
	alert_get_persist(a, &p);
	assert_int_equal(p.episode_seq, 43);
	alert_free(a);
}

/* Bad arguments are refused without touching the state. */
static void test_bad_input(void **state)
{
	struct alert_event ev;
	struct alert_cfg c;
	(void)state;

	c = cfg_3_2, c.raise_after = 0;
	assert_null(alert_new(&c, NULL));
	c = cfg_3_2, c.clear_after = 0;
	assert_null(alert_new(&c, NULL));
	c = cfg_3_2, c.critical = 0.5;
	assert_null(alert_new(&c, NULL));
	c = cfg_3_2, c.critical = NAN;
	assert_null(alert_new(&c, NULL));
	assert_null(alert_new(NULL, NULL));
	struct alert_persist bad = { .severity = 5 };
	assert_null(alert_new(&cfg_3_2, &bad));
	alert_free(NULL);

	struct alert_engine *a = alert_new(&cfg_3_2, NULL);
	step(a, 0, 1.5, NULL, &ev);
	step(a, 1, 1.5, NULL, &ev);
	assert_int_equal(alert_step(a, T0, NAN, flat, NULL, NULL, 4, &ev), -PDM_ENONFINITE);
	assert_int_equal(alert_step(a, T0, INFINITY, flat, NULL, NULL, 4, &ev), -PDM_ENONFINITE);
	assert_int_equal(alert_step(a, T0, 1.0, NULL, NULL, NULL, 4, &ev), -EINVAL);
	assert_int_equal(alert_step(a, T0, 1.0, flat, NULL, NULL, 4, NULL), -EINVAL);
	assert_int_equal(step(a, 2, 1.5, NULL, &ev), ALERT_RAISED); /* the run of 2 survived */

	/* Reload with a higher critical: the open episode carries on. */
	c = cfg_3_2, c.critical = 4.0;
	assert_int_equal(alert_reconfigure(a, &c), 0);
	c.clear_after = 0;
	assert_int_equal(alert_reconfigure(a, &c), -EINVAL);
	assert_int_equal(step(a, 3, 3.0, NULL, &ev), ALERT_NONE);
	assert_int_equal(step(a, 4, 4.0, NULL, &ev), ALERT_ESCALATED);
	alert_free(a);
}

static int count_of(const char *s, const char *needle)
{
	int n = 0;
	for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle))
		n++;
	return n;
}

static void assert_keys(const cJSON *o, const char *const *keys, size_t n)
{
	const cJSON *it = o->child;

	for (size_t i = 0; i < n; i++, it = it->next) {
		assert_non_null(it);
		assert_string_equal(it->string, keys[i]);
	}
	assert_null(it);
}

static const cJSON *get(const cJSON *o, const char *k)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, k);

	assert_non_null(it);
	return it;
}

/* The alert payload has exactly SPEC section 3's fields, in that order. */
static void test_alert_payload(void **state)
{
	struct alert_cfg c = { 1, 1, 3.0 };
	struct alert_engine *a = alert_new(&c, NULL);
	struct alert_event ev;
	const float sh[4] = { 0.2f, 0.62f, 0.0005f, 0.1779f };
	const char *const names[] = { "flow", "vibration_rms", "speed", "bearing_temp" };
	(void)state;

	assert_int_equal(alert_step(a, T0, 3.14159, sh, NULL, NULL, 4, &ev), 0);
	assert_int_equal(ev.kind, ALERT_RAISED);
	char *s = alert_format_json(&ev, "pump-a", names, NULL, NULL, "conv_ae", 3, "edge-01");
	assert_non_null(s);
	cJSON *o = cJSON_Parse(s);
	assert_non_null(o);
	const char *const keys[] = { "schema", "id",    "asset",     "event", "severity",
				     "ts",     "started", "score",   "threshold", "model",
				     "contributors", "host" };
	assert_keys(o, keys, sizeof(keys) / sizeof(keys[0]));
	assert_true(get(o, "schema")->valuedouble == 1);
	assert_string_equal(get(o, "id")->valuestring, "pump-a-1");
	assert_string_equal(get(o, "asset")->valuestring, "pump-a");
	assert_string_equal(get(o, "event")->valuestring, "raised");
	assert_string_equal(get(o, "severity")->valuestring, "critical");
	assert_string_equal(get(o, "ts")->valuestring, "2026-11-28T04:25:42.123Z");
	assert_string_equal(get(o, "started")->valuestring, "2026-11-28T04:25:42.123Z");
	assert_true(get(o, "score")->valuedouble == 3.142);
	assert_true(get(o, "threshold")->valuedouble == 1.0);
	const cJSON *m = get(o, "model");
	assert_string_equal(get(m, "kind")->valuestring, "conv_ae");
	assert_true(get(m, "version")->valuedouble == 3);
	const cJSON *cs = get(o, "contributors");
	assert_int_equal(cJSON_GetArraySize(cs), 3);
	const char *want_name[] = { "vibration_rms", "flow", "bearing_temp" };
	const double want_share[] = { 0.62, 0.2, 0.178 };
	for (int i = 0; i < 3; i++) {
		const cJSON *e = cJSON_GetArrayItem(cs, i);
		const char *const ck[] = { "sensor", "share" };
		assert_keys(e, ck, 2);
		assert_string_equal(get(e, "sensor")->valuestring, want_name[i]);
		assert_true(get(e, "share")->valuedouble == want_share[i]);
	}
	assert_string_equal(get(o, "host")->valuestring, "edge-01");
	/* Rounded numbers print short, not as float noise. */
	assert_non_null(strstr(s, "\"share\":0.62}"));
	assert_non_null(strstr(s, "\"score\":3.142,"));
	cJSON_Delete(o);
	free(s);

	/* Cleared: the episode's number and start, host unknown -> null. */
	assert_int_equal(alert_step(a, T0 + 1500, 0.2, sh, NULL, NULL, 4, &ev), 0);
	assert_int_equal(ev.kind, ALERT_CLEARED);
	s = alert_format_json(&ev, "pump-a", names, NULL, NULL, "mlp_ae", 7, NULL);
	o = cJSON_Parse(s);
	assert_non_null(o);
	assert_string_equal(get(o, "event")->valuestring, "cleared");
	assert_string_equal(get(o, "id")->valuestring, "pump-a-1");
	assert_string_equal(get(o, "ts")->valuestring, "2026-11-28T04:25:43.623Z");
	assert_string_equal(get(o, "started")->valuestring, "2026-11-28T04:25:42.123Z");
	assert_true(cJSON_IsNull(get(o, "host")));
	assert_string_equal(get(o, "reason")->valuestring, "recovered");
	cJSON_Delete(o);
	free(s);
	/* An episode ended otherwise says so. */
	ev.reason = ALERT_CLEAR_TAKEN_AS_NORMAL;
	s = alert_format_json(&ev, "pump-a", names, NULL, NULL, "mlp_ae", 7, NULL);
	assert_non_null(strstr(s, "\"reason\":\"taken_as_normal\""));
	free(s);
	ev.reason = ALERT_CLEAR_NO_MODEL;
	s = alert_format_json(&ev, "pump-a", names, NULL, NULL, "mlp_ae", 7, NULL);
	assert_non_null(strstr(s, "\"reason\":\"no_model\""));
	free(s);

	/* With the window's values and the model's: each contributor says how
	 * far off it is and which way, in its unit (none for a sensor without
	 * one); 5 significant digits. */
	alert_free(a);
	a = alert_new(&c, NULL);
	const float val[4] = { 80.123456f, 4.2123456f, 1480.0f, 41.5f };
	const float exp_[4] = { 115.87654f, 1.5f, 1479.5f, NAN };
	const char *const units[] = { "m3/h", "mm/s", "rpm", "" };
	assert_int_equal(alert_step(a, T0, 3.5, sh, val, exp_, 4, &ev), 0);
	assert_int_equal(ev.kind, ALERT_RAISED);
	s = alert_format_json(&ev, "pump-a", names, units, NULL, "conv_ae", 3, "edge-01");
	assert_non_null(s);
	assert_non_null(strstr(s, "\"contributors\":[{\"sensor\":\"vibration_rms\",\"share\":0.62,"
				  "\"value\":4.2123,\"expected\":1.5,\"unit\":\"mm/s\"},"
				  "{\"sensor\":\"flow\",\"share\":0.2,\"value\":80.123,"
				  "\"expected\":115.88,\"unit\":\"m3/h\"},"
				  "{\"sensor\":\"bearing_temp\",\"share\":0.178,\"value\":41.5}]"));
	free(s);
	/* A frozen transmitter among them is marked: the sensor may be what is wrong. */
	const bool frozen[4] = { false, true, false, false };
	s = alert_format_json(&ev, "pump-a", names, units, frozen, "conv_ae", 3, "edge-01");
	assert_non_null(strstr(s, "{\"sensor\":\"vibration_rms\",\"share\":0.62,"
				  "\"value\":4.2123,\"expected\":1.5,\"unit\":\"mm/s\",\"stuck\":true},"
				  "{\"sensor\":\"flow\",\"share\":0.2,\"value\":80.123,"
				  "\"expected\":115.88,\"unit\":\"m3/h\"}"));
	assert_int_equal(count_of(s, "\"stuck\""), 1);
	free(s);
	/* The peak's values go with the cleared event, also across a restart. */
	const float val2[4] = { 70.0f, 9.75f, 1480.0f, 41.5f };
	assert_int_equal(alert_step(a, T0 + 800, 5.0, sh, val2, exp_, 4, &ev), 0);
	struct alert_persist pp;
	alert_get_persist(a, &pp);
	char *js = alert_persist_to_json(&pp);
	assert_non_null(js);
	alert_free(a);
	assert_int_equal(alert_persist_from_json(js, &pp), 0);
	free(js);
	a = alert_new(&c, &pp);
	assert_non_null(a);
	assert_int_equal(alert_step(a, T0 + 1600, 0.1, sh, val, exp_, 4, &ev), 0);
	assert_int_equal(ev.kind, ALERT_CLEARED);
	s = alert_format_json(&ev, "pump-a", names, units, NULL, "conv_ae", 3, "edge-01");
	assert_non_null(strstr(s, "{\"sensor\":\"vibration_rms\",\"share\":0.62,\"value\":9.75,"
				  "\"expected\":1.5,\"unit\":\"mm/s\"}"));
	assert_non_null(strstr(s, "\"score\":5,"));
	free(s);

	/* Nothing to publish for ALERT_NONE or bad arguments. */
	ev.kind = ALERT_NONE;
	assert_null(alert_format_json(&ev, "pump-a", names, NULL, NULL, "mlp_ae", 7, NULL));
	ev.kind = ALERT_RAISED;
	assert_null(alert_format_json(&ev, NULL, names, NULL, NULL, "mlp_ae", 7, NULL));
	assert_null(alert_format_json(&ev, "pump-a", NULL, NULL, NULL, "mlp_ae", 7, NULL));
	alert_free(a);
}

static void test_state_payload(void **state)
{
	(void)state;
	char *s = alert_format_state_json("pump-a", "learning", NAN, 0, T0, NULL, 0, NULL, 0);
	assert_non_null(s);
	cJSON *o = cJSON_Parse(s);
	const char *const keys[] = { "asset", "state", "score", "model_version", "ts" };
	assert_keys(o, keys, 5);
	assert_string_equal(get(o, "asset")->valuestring, "pump-a");
	assert_string_equal(get(o, "state")->valuestring, "learning");
	assert_true(cJSON_IsNull(get(o, "score")));
	assert_true(cJSON_IsNull(get(o, "model_version")));
	assert_string_equal(get(o, "ts")->valuestring, "2026-11-28T04:25:42.123Z");
	cJSON_Delete(o);
	free(s);

	s = alert_format_state_json("pump-a", "warning", 1.23456, 12, T0, NULL, 0, NULL, 0);
	o = cJSON_Parse(s);
	assert_true(get(o, "score")->valuedouble == 1.235);
	assert_true(get(o, "model_version")->valuedouble == 12);
	cJSON_Delete(o);
	free(s);

	const char *ok[] = { "normal", "critical", "off", "no_data" };
	for (int i = 0; i < 4; i++) {
		s = alert_format_state_json("p", ok[i], 0.5, 1, T0, NULL, 0, NULL, 0);
		assert_non_null(s);
		free(s);
	}
	assert_null(alert_format_state_json("pump-a", "broken", 0.5, 1, T0, NULL, 0, NULL, 0));

	/* Missing sensors are named; none: no key (the payload SPEC gives). */
	const char *gone[] = { "bearing_temp", "flow" };
	s = alert_format_state_json("pump-a", "no_data", NAN, 3, T0, gone, 2, NULL, 0);
	o = cJSON_Parse(s);
	const char *const keys6[] = { "asset", "state", "score", "model_version", "ts", "missing" };
	assert_keys(o, keys6, 6);
	const cJSON *m = get(o, "missing");
	assert_int_equal(cJSON_GetArraySize(m), 2);
	assert_string_equal(cJSON_GetArrayItem(m, 0)->valuestring, "bearing_temp");
	assert_string_equal(cJSON_GetArrayItem(m, 1)->valuestring, "flow");
	cJSON_Delete(o);
	free(s);
	const char *frozen[] = { "vibration_rms" };
	s = alert_format_state_json("pump-a", "normal", 0.5, 3, T0, gone, 1, frozen, 1);
	o = cJSON_Parse(s);
	const char *const keys7[] = { "asset", "state", "score", "model_version", "ts", "missing",
				       "stuck" };
	assert_keys(o, keys7, 7);
	assert_int_equal(cJSON_GetArraySize(get(o, "missing")), 1);
	assert_string_equal(cJSON_GetArrayItem(get(o, "stuck"), 0)->valuestring, "vibration_rms");
	cJSON_Delete(o);
	free(s);

	/* The state follows the documented precedence. */
	assert_string_equal(alert_asset_state(true, true, true, ALERT_SEV_CRITICAL), "no_data");
	assert_string_equal(alert_asset_state(false, true, true, ALERT_SEV_CRITICAL), "off");
	assert_string_equal(alert_asset_state(false, false, false, ALERT_SEV_NONE), "learning");
	assert_string_equal(alert_asset_state(false, false, true, ALERT_SEV_CRITICAL), "critical");
	assert_string_equal(alert_asset_state(false, false, true, ALERT_SEV_WARNING), "warning");
	assert_string_equal(alert_asset_state(false, false, true, ALERT_SEV_NONE), "normal");
	assert_null(alert_format_state_json(NULL, "normal", 0.5, 1, T0, NULL, 0, NULL, 0));
}

/* ---- random stream against a naive reference, with restarts ---- */

static uint64_t rng_state;

static uint32_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 2685821657736338717ULL) >> 32);
}

struct ref_ev {
	enum alert_event_kind kind;
	int severity;
	uint64_t seq;
	int idx;
};

/*
 * The rules restated over the whole history: an episode opens at window i
 * if the last raise_after scored windows since the previous event that
 * closed one are all >= 1.0; it closes at i if the last clear_after scored
 * windows since it opened (or since the last window >= 1.0) are all < 1.0.
 */
static int reference(const double *sc, const bool *scored, int n, const struct alert_cfg *c,
		     struct ref_ev *out)
{
	int m = 0, sev = 0, since = 0;
	uint64_t seq = 0;
	int *idx = malloc(sizeof(int) * (size_t)n), ni = 0;

	assert_non_null(idx);
	for (int i = 0; i < n; i++) {
		if (!scored[i])
			continue;
		idx[ni++] = i;
		int run = 0;
		if (sev == 0) {
			for (int j = ni - 1; j >= since && sc[idx[j]] >= 1.0; j--)
				run++;
			if (run >= c->raise_after) {
				sev = sc[i] >= c->critical ? 2 : 1;
				out[m++] = (struct ref_ev){ ALERT_RAISED, sev, ++seq, i };
				since = ni;
			}
		} else {
			for (int j = ni - 1; j >= since && sc[idx[j]] < 1.0; j--)
				run++;
			if (sev == 1 && sc[i] >= c->critical) {
				sev = 2;
				out[m++] = (struct ref_ev){ ALERT_ESCALATED, sev, seq, i };
			} else if (run >= c->clear_after) {
				out[m++] = (struct ref_ev){ ALERT_CLEARED, sev, seq, i };
				sev = 0;
				since = ni;
			}
		}
	}
	free(idx);
	return m;
}

static void test_random_vs_reference(void **state)
{
	enum { N = 3000 };
	static double sc[N];
	static bool scored[N];
	static struct ref_ev want[N];
	(void)state;

	for (unsigned seed = 1; seed <= 30; seed++) {
		rng_state = 0x9E3779B97F4A7C15ULL * seed + 1;
		struct alert_cfg c = { 1 + (int)(rnd() % 5), 1 + (int)(rnd() % 6),
				       1.0 + (rnd() % 4) * 0.5 };
		/* Regimes of normal, marginal and faulty scores, so every
		 * boundary case comes up; now and then unscored windows. */
		double level = 0.5;
		for (int i = 0; i < N; i++) {
			if (rnd() % 40 == 0)
				level = (double)(rnd() % 5) * 0.5;
			sc[i] = level + ((int)(rnd() % 9) - 4) * 0.125;
			if (sc[i] < 0)
				sc[i] = 0;
			scored[i] = rnd() % 10 != 0;
		}
		int m = reference(sc, scored, N, &c, want), got = 0;

		struct alert_persist p = { .episode_seq = 0 };
		struct alert_engine *a = alert_new(&c, NULL);
		for (int i = 0; i < N; i++) {
			if (rnd() % 97 == 0) {
				/* Restart through the stored JSON. */
				alert_get_persist(a, &p);
				char *js = alert_persist_to_json(&p);
				alert_free(a);
				assert_int_equal(alert_persist_from_json(js, &p), 0);
				free(js);
				a = alert_new(&c, &p);
				assert_non_null(a);
			}
			if (!scored[i])
				continue;
			struct alert_event ev;
			assert_int_equal(alert_step(a, T0 + i, sc[i], flat, NULL, NULL, 4, &ev), 0);
			if (ev.kind == ALERT_NONE)
				continue;
			assert_true(got < m);
			assert_int_equal(ev.kind, want[got].kind);
			assert_int_equal(ev.severity, want[got].severity);
			assert_int_equal(ev.episode_seq, want[got].seq);
			assert_int_equal(ev.ts_ms, T0 + want[got].idx);
			got++;
		}
		assert_int_equal(got, m);
		assert_true(m > 10);
		alert_free(a);
	}
}

/* The first contributor alone (what the learning report names): the same
 * ranking, ties to the lower channel, nothing when no share explains. */
static void test_top_channel(void **state)
{
	(void)state;
	const float a[4] = { 0.1f, 0.4f, 0.4f, 0.1f };
	const float b[3] = { NAN, 0.0f, 0.2f };
	const float z[3] = { 0.0f, -1.0f, NAN };
	assert_int_equal(alert_top_channel(a, 4), 1);
	assert_int_equal(alert_top_channel(b, 3), 2);
	assert_int_equal(alert_top_channel(z, 3), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hysteresis_boundaries),
		cmocka_unit_test(test_escalation_once),
		cmocka_unit_test(test_raise_at),
		cmocka_unit_test(test_close),
		cmocka_unit_test(test_contributors),
		cmocka_unit_test(test_persist_json),
		cmocka_unit_test(test_restart_continues_episode),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_alert_payload),
		cmocka_unit_test(test_state_payload),
		cmocka_unit_test(test_random_vs_reference),
		cmocka_unit_test(test_top_channel),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
