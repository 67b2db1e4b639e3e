/*
 * detector.c - per-asset scoring: windows in, scores, states and alerts out.
 */
#include "detector.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "nn.h"
#include "pdm_error.h"
#include "pdm_parse.h"

struct detector {
	struct detector_cfg cfg;
	struct detector_hooks hooks;
	void *user;
	struct window *win;
	struct alert_engine *alert;
	struct nn_model *model;
	uint32_t model_version;
	float *shares; /* (C) scratch for one window */
	float *value, *expected; /* (C) its means and the model's (alert contributors) */
	enum det_state state;
	bool state_published;
	double last_score;
	uint64_t trainable;
	/* Relearning (detector_relearn_start): scores without alerts, or only
	 * those far over the threshold (raise_at > 0: the first model's). */
	bool relearning;
	double relearn_raise_at;
	int relearn_over;  /* consecutive scores >= 1.0 */
	bool relearn_loud; /* raise_after of them since the model was installed */
	uint64_t relearn_scored; /* windows scored since the model was installed */
	int hook_rc;
	struct pdm_ratelimit rl;
	/* Sensors without a good sample for the no-data time, at the last
	 * advance, and what the newest window was (-1: none yet). */
	bool *missing, *was_missing; /* (C) */
	int64_t *last_good;          /* (C) */
	int n_missing;
	int last_status;
	/* Frozen sensors (detector_stuck): limits, flags, each run's start and
	 * value; the newest window the machine was off in (INT64_MIN: none). */
	int64_t *still_limit;       /* (C), 0: not checked */
	bool *stuck;                /* (C) */
	int64_t *stuck_since;       /* (C) */
	double *stuck_val;          /* (C) */
	int n_stuck;
	int64_t last_off_ms;
};

static const char *const state_names[] = {
	[DET_LEARNING] = "learning", [DET_NORMAL] = "normal", [DET_WARNING] = "warning",
	[DET_CRITICAL] = "critical", [DET_OFF] = "off",       [DET_NO_DATA] = "no_data",
};

const char *detector_state_name(enum det_state st)
{
	return (unsigned)st <= DET_NO_DATA ? state_names[st] : "?";
}

struct detector *detector_new(const struct detector_cfg *cfg, const struct detector_hooks *hooks,
			      void *user, const struct alert_persist *restored)
{
	struct detector *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->cfg = *cfg;
	d->hooks = *hooks;
	d->user = user;
	d->state = DET_LEARNING;
	d->last_score = NAN;
	d->rl = (struct pdm_ratelimit)PDM_RATELIMIT_INIT(60000, 3);
	d->win = window_new(&cfg->window);
	/* A state stored while the asset had more sensors may name channels it
	 * no longer has: the episode goes on, those contributors do not. */
	struct alert_persist r;
	if (restored) {
		r = *restored;
		int n = 0;
		for (int i = 0; i < r.n_peak_top; i++)
			if (r.peak_top[i].channel < cfg->window.C)
				r.peak_top[n++] = r.peak_top[i];
		r.n_peak_top = n;
	}
	d->alert = alert_new(&cfg->alert, restored ? &r : NULL);
	d->shares = calloc((size_t)cfg->window.C, sizeof(float));
	d->value = calloc((size_t)cfg->window.C, sizeof(float));
	d->expected = calloc((size_t)cfg->window.C, sizeof(float));
	d->missing = calloc((size_t)cfg->window.C, sizeof(bool));
	d->was_missing = calloc((size_t)cfg->window.C, sizeof(bool));
	d->last_good = calloc((size_t)cfg->window.C, sizeof(int64_t));
	d->last_status = -1;
	d->still_limit = calloc((size_t)cfg->window.C, sizeof(int64_t));
	d->stuck = calloc((size_t)cfg->window.C, sizeof(bool));
	d->stuck_since = calloc((size_t)cfg->window.C, sizeof(int64_t));
	d->stuck_val = calloc((size_t)cfg->window.C, sizeof(double));
	d->last_off_ms = INT64_MIN;
	if (!d->win || !d->alert || !d->shares || !d->value || !d->expected || !d->missing ||
	    !d->was_missing || !d->last_good || !d->still_limit || !d->stuck || !d->stuck_since ||
	    !d->stuck_val) {
		detector_free(d);
		return NULL;
	}
	return d;
}

void detector_free(struct detector *d)
{
	if (!d)
		return;
	window_free(d->win);
	alert_free(d->alert);
	nn_model_free(d->model);
	free(d->shares);
	free(d->value);
	free(d->expected);
	free(d->missing);
	free(d->was_missing);
	free(d->last_good);
	free(d->still_limit);
	free(d->stuck);
	free(d->stuck_since);
	free(d->stuck_val);
	free(d);
}

int detector_push(struct detector *d, int channel, int64_t ts_ms, double value, bool good)
{
	if (channel < 0 || channel >= d->cfg.window.C)
		return -EINVAL;
	return window_push(d->win, channel, ts_ms, value, good);
}

static void set_state(struct detector *d, enum det_state st, double score, int64_t ts_ms)
{
	if (st == d->state && d->state_published)
		return;
	d->state = st;
	d->state_published = true;
	if (d->hooks.on_state)
		d->hooks.on_state(d->user, st, score, ts_ms);
}

static enum det_state severity_state(int severity)
{
	return severity >= 2 ? DET_CRITICAL : severity == 1 ? DET_WARNING : DET_NORMAL;
}

static int emit_alert(struct detector *d, const struct alert_event *ev)
{
	struct nn_model_info info;

	nn_model_info(d->model, &info);
	char *payload = alert_format_json(ev, d->cfg.asset, d->cfg.channel_names,
					  d->cfg.channel_units, d->stuck,
					  nn_kind_name(info.kind), d->model_version, d->cfg.host);
	if (!payload)
		return -ENOMEM;
	int rc = d->hooks.on_alert ? d->hooks.on_alert(d->user, ev, payload) : 0;
	free(payload);
	return rc;
}

static bool run_missing(const struct detector *d)
{
	int rc = d->cfg.window.run_channel;
	return rc >= 0 && rc < d->cfg.window.C && d->missing[rc];
}

static int on_window(const float *x, int64_t ts_ms, enum window_status st, void *user)
{
	struct detector *d = user;
	bool in_episode = detector_in_episode(d);

	if (d->hooks.on_window)
		d->hooks.on_window(d->user, x, ts_ms, st, in_episode);
	if (st == WINDOW_OK && !in_episode)
		d->trainable++;
	d->last_status = (int)st;
	if (st == WINDOW_OFF || st == WINDOW_WARMUP) {
		d->last_off_ms = ts_ms;
		/* Off for want of the run_when sensor is not known to be off. */
		if (!run_missing(d))
			set_state(d, DET_OFF, NAN, ts_ms);
		return 0;
	}
	if (st != WINDOW_OK)
		return 0; /* a gap: neither scored nor counted toward raise/clear */
	if (!d->model) {
		set_state(d, DET_LEARNING, NAN, ts_ms);
		return 0;
	}

	float score;
	int rc = nn_score_means(d->model, x, 1, &score, d->shares, d->value, d->expected);
	if (rc < 0) {
		/* NaN/Inf inputs never reach a model; the window is skipped. */
		LOG_RL(&d->rl, LOG_WARNING, "detector[%s]: window at %lld not scored: %s",
		       d->cfg.asset, (long long)ts_ms, pdm_strerror(rc));
		return 0;
	}
	d->last_score = score;
	if (d->relearning) {
		d->relearn_scored++;
		if (score < 1.0f)
			d->relearn_over = 0;
		else if (++d->relearn_over >= d->cfg.alert.raise_after)
			d->relearn_loud = true;
		if (!(d->relearn_raise_at > 0)) {
			if (d->hooks.on_score)
				d->hooks.on_score(d->user, ts_ms, score, d->shares, DET_LEARNING);
			set_state(d, DET_LEARNING, score, ts_ms);
			return 0;
		}
	}

	struct alert_event ev;
	alert_step(d->alert, ts_ms, score, d->shares, d->value, d->expected, d->cfg.window.C, &ev);
	if (ev.kind != ALERT_NONE) {
		rc = emit_alert(d, &ev);
		if (rc < 0 && d->hook_rc == 0)
			d->hook_rc = rc;
	}
	struct alert_persist p;
	alert_get_persist(d->alert, &p);
	enum det_state st_now = d->relearning && p.severity == ALERT_SEV_NONE
					? DET_LEARNING
					: severity_state(p.severity);
	if (d->hooks.on_score)
		d->hooks.on_score(d->user, ts_ms, score, d->shares, st_now);
	set_state(d, st_now, score, ts_ms);
	return 0;
}

static bool check_missing(struct detector *d, int64_t now_ms);
static bool check_stuck(struct detector *d, int64_t now_ms);

int detector_advance(struct detector *d, int64_t now_ms)
{
	d->hook_rc = 0;
	int rc = window_advance(d->win, now_ms, on_window, d);
	if (rc < 0)
		return rc;
	bool changed = check_missing(d, now_ms);
	changed |= check_stuck(d, now_ms);
	enum det_state before = d->state;
	bool published = d->state_published;
	if (window_no_data(d->win, now_ms))
		set_state(d, DET_NO_DATA, NAN, now_ms);
	else if (d->n_missing > 0 && (d->last_status == WINDOW_GAP || run_missing(d)))
		set_state(d, DET_NO_DATA, NAN, now_ms);
	/* The same state, other sensors missing: the state names them. */
	if (changed && published && d->state == before && d->hooks.on_state)
		d->hooks.on_state(d->user, d->state,
				  d->state == DET_OFF || d->state == DET_NO_DATA ? NAN
										  : d->last_score,
				  now_ms);
	return d->hook_rc;
}

/* Which sensors are missing now; each change goes to on_sensor. True when
 * the set changed. */
static bool check_missing(struct detector *d, int64_t now_ms)
{
	int C = d->cfg.window.C;
	bool changed = false;

	memcpy(d->was_missing, d->missing, (size_t)C * sizeof(bool));
	d->n_missing = window_missing(d->win, now_ms, d->cfg.window.no_data_ms, d->missing,
				      d->last_good);
	for (int c = 0; c < C; c++) {
		if (d->missing[c] == d->was_missing[c])
			continue;
		changed = true;
		if (d->hooks.on_sensor)
			d->hooks.on_sensor(d->user, c,
					   d->missing[c] ? DET_SENSOR_MISSING : DET_SENSOR_BACK,
					   d->last_good[c], NAN, now_ms);
	}
	return changed;
}

#define STILL_FLOOR_MS 60000LL

int64_t detector_still_limit(int64_t longest_ms, int64_t span_ms)
{
	if (span_ms <= 0 || longest_ms < 0 || longest_ms >= span_ms / 2)
		return 0;
	return 3 * longest_ms > STILL_FLOOR_MS ? 3 * longest_ms : STILL_FLOOR_MS;
}

/* limit <= 0: not checked. replay measures on this window: a run longer than
 * the limit (stuck) is no evidence of how long the sensor may stand still. */
static void set_still_limit(struct detector *d, int c, int64_t limit)
{
	d->still_limit[c] = limit > 0 ? limit : 0;
	window_set_still_cap(d->win, c, d->still_limit[c]);
}

void detector_set_still_limits(struct detector *d, const int64_t *limit_ms)
{
	for (int c = 0; c < d->cfg.window.C; c++)
		set_still_limit(d, c, limit_ms ? limit_ms[c] : 0);
}

const int64_t *detector_still_limits(const struct detector *d)
{
	return d->still_limit;
}

int64_t detector_sensor_still_limit(int64_t stuck_after_ms, int64_t longest_ms, int64_t span_ms)
{
	if (stuck_after_ms >= 0)
		return stuck_after_ms;
	return longest_ms >= 0 ? detector_still_limit(longest_ms, span_ms) : -1;
}

int detector_still_format(char *buf, size_t len, const char *const *names, int C,
			  const int64_t *longest, const int64_t *span)
{
	size_t n = 0;

	if (len)
		buf[0] = '\0';
	for (int c = 0; c < C && n < len; c++)
		n += (size_t)snprintf(buf + n, len - n, "%s%s=%lld:%lld", c ? " " : "", names[c],
				      (long long)longest[c], (long long)span[c]);
	return (int)n;
}

/*
 * The stored "name=VALUE name=VALUE" lists (still/ASSET, hold/ASSET): calls
 * fn with each entry's channel (by name; names never hold '=' or blanks,
 * cfg's valid_name) and the text after its '='. Entries of sensors no
 * longer configured are skipped.
 */
static void parse_named(const char *text, const char *const *names, int C,
			void (*fn)(int c, const char *value, void *user), void *user)
{
	for (const char *p = text; p && *p;) {
		size_t tl = strcspn(p, " ");
		const char *eq = memchr(p, '=', tl);
		for (int c = 0; eq && c < C; c++)
			if (strlen(names[c]) == (size_t)(eq - p) &&
			    !strncmp(names[c], p, (size_t)(eq - p)))
				fn(c, eq + 1, user);
		p += tl;
		p += strspn(p, " ");
	}
}

struct still_parsed {
	int64_t *longest, *span;
};

static void still_entry(int c, const char *value, void *user)
{
	struct still_parsed *sp = user;
	long long l, s;
	if (sscanf(value, "%lld:%lld", &l, &s) == 2) {
		sp->longest[c] = l;
		sp->span[c] = s;
	}
}

void detector_still_parse(const char *text, const char *const *names, int C, int64_t *longest,
			  int64_t *span)
{
	struct still_parsed sp = { longest, span };
	for (int c = 0; c < C; c++)
		longest[c] = span[c] = -1;
	parse_named(text, names, C, still_entry, &sp);
}

void detector_still_limits_from_data(struct detector *d, const int64_t *stuck_after_ms)
{
	for (int c = 0; c < d->cfg.window.C; c++) {
		int64_t span = 0, longest = window_longest_still_ms(d->win, c, &span);
		set_still_limit(d, c, detector_sensor_still_limit(
					      stuck_after_ms ? stuck_after_ms[c] : -1, longest, span));
	}
}

/*
 * Which channels are stuck now; each change goes to on_sensor. Only running
 * time counts (a stopped pump's flow reads 0 for hours, and a temperature at
 * ambient moves a first step only a while after the start), and a missing
 * channel is no frozen one. A channel stuck when the machine stopped is
 * still stuck after the start while the same run goes on. While the machine
 * is off nothing changes. True when the set changed.
 */
static bool check_stuck(struct detector *d, int64_t now_ms)
{
	bool changed = false;

	if (d->last_status == WINDOW_OFF || d->last_status == WINDOW_WARMUP)
		return false;
	d->n_stuck = 0;
	for (int c = 0; c < d->cfg.window.C; c++) {
		bool now = false;
		int64_t since = 0;
		double val = 0;
		int64_t still = window_still_ms(d->win, c, &since, &val);
		if (d->still_limit[c] > 0 && still > 0 && !d->missing[c]) {
			int64_t from = since > d->last_off_ms ? since : d->last_off_ms;
			now = (d->stuck[c] && d->stuck_since[c] == since) ||
			      since + still - from > d->still_limit[c];
		}
		if (now != d->stuck[c]) {
			changed = true;
			d->stuck[c] = now;
			if (now) {
				d->stuck_since[c] = since;
				d->stuck_val[c] = val;
			}
			/* a stuck sensor that fell silent does not move: missing says it */
			if (d->hooks.on_sensor && !d->missing[c])
				d->hooks.on_sensor(d->user, c,
						   now ? DET_SENSOR_STUCK : DET_SENSOR_MOVING, since,
						   val, now_ms);
		}
		d->n_stuck += d->stuck[c];
	}
	return changed;
}

int detector_stuck(const struct detector *d, const bool **stuck, const int64_t **since_ms,
		   const double **value)
{
	if (stuck)
		*stuck = d->stuck;
	if (since_ms)
		*since_ms = d->stuck_since;
	if (value)
		*value = d->stuck_val;
	return d->n_stuck;
}

int detector_missing(const struct detector *d, const bool **missing,
		     const int64_t **last_good_ms)
{
	if (missing)
		*missing = d->missing;
	if (last_good_ms)
		*last_good_ms = d->last_good;
	return d->n_missing;
}

int64_t detector_newest_ts(const struct detector *d)
{
	return window_newest_ts(d->win);
}

int64_t detector_hold_ms(const struct detector *d, int channel)
{
	return window_hold_ms(d->win, channel);
}

void detector_set_hold_ms(struct detector *d, int channel, int64_t hold_ms)
{
	(void)window_set_hold_ms(d->win, channel, hold_ms);
}

int64_t detector_spacing_ms(const struct detector *d, int channel)
{
	return window_spacing_ms(d->win, channel);
}

int detector_hold_format(char *buf, size_t len, const char *const *names, int C,
			 const int64_t *hold_ms, const int64_t *base_ms)
{
	size_t n = 0;

	if (len)
		buf[0] = '\0';
	for (int c = 0; c < C && n < len; c++)
		if (hold_ms[c] > base_ms[c])
			n += (size_t)snprintf(buf + n, len - n, "%s%s=%lld", n ? " " : "", names[c],
					      (long long)hold_ms[c]);
	return (int)n;
}

static void hold_entry(int c, const char *value, void *user)
{
	long long h;
	if (sscanf(value, "%lld", &h) == 1 && h > 0)
		((int64_t *)user)[c] = h;
}

void detector_hold_parse(const char *text, const char *const *names, int C, int64_t *hold_ms)
{
	for (int c = 0; c < C; c++)
		hold_ms[c] = -1;
	parse_named(text, names, C, hold_entry, hold_ms);
}

size_t detector_sparse_channels(const struct detector *d, char *list, size_t len,
				int64_t *worst_ms)
{
	size_t n = 0, count = 0;
	char every[32], held[32];

	if (len)
		list[0] = '\0';
	*worst_ms = 0;
	for (int c = 0; c < d->cfg.window.C; c++) {
		int64_t sp = window_spacing_ms(d->win, c), hold = window_hold_ms(d->win, c);
		if (sp <= hold)
			continue;
		count++;
		if (sp > *worst_ms)
			*worst_ms = sp;
		if (n < len)
			n += (size_t)snprintf(list + n, len - n, "%s%s (every %s, held %s)",
					      n ? ", " : "", d->cfg.channel_names[c],
					      pdm_format_approx(sp, every, sizeof(every)),
					      pdm_format_approx(hold, held, sizeof(held)));
	}
	return count;
}

void detector_clock_step(struct detector *d, int64_t now_ms)
{
	window_restart(d->win, now_ms);
}

void detector_window_stats(const struct detector *d, struct window_stats *st)
{
	window_get_stats(d->win, st);
}

/* What relearning counts is per model: a new model, or relearning anew,
 * starts over. */
static void relearn_counters_reset(struct detector *d)
{
	d->relearn_over = 0;
	d->relearn_loud = false;
	d->relearn_scored = 0;
}

void detector_set_model(struct detector *d, struct nn_model *m, uint32_t version)
{
	nn_model_free(d->model);
	d->model = m;
	d->model_version = version;
	relearn_counters_reset(d);
	if (m && d->state == DET_LEARNING && !d->relearning) {
		struct alert_persist p;
		alert_get_persist(d->alert, &p);
		d->state = severity_state(p.severity);
		d->state_published = false;
	}
}

int detector_relearn_start(struct detector *d, int64_t ts_ms, double raise_at)
{
	struct alert_event ev;
	int rc = 0;

	d->relearning = true;
	d->relearn_raise_at = raise_at > 0 ? raise_at : 0.0;
	relearn_counters_reset(d);
	if (d->relearn_raise_at > 0) {
		/* An episode open now was raised that far over the threshold
		 * (restored after a restart): it goes on. */
		alert_set_raise_at(d->alert, d->relearn_raise_at);
		if (!detector_in_episode(d))
			set_state(d, DET_LEARNING, d->last_score, ts_ms);
		return 0;
	}
	alert_set_raise_at(d->alert, 1.0);
	alert_close(d->alert, ts_ms, &ev);
	if (ev.kind == ALERT_CLEARED && d->model)
		rc = emit_alert(d, &ev);
	set_state(d, DET_LEARNING, d->last_score, ts_ms);
	return rc;
}

void detector_relearn_end(struct detector *d)
{
	if (!d->relearning)
		return;
	d->relearning = false;
	d->relearn_raise_at = 0.0;
	alert_set_raise_at(d->alert, 1.0);
	d->relearn_over = 0;
	if (d->model && d->state == DET_LEARNING) {
		d->state = DET_NORMAL;
		d->state_published = false;
	}
}

bool detector_relearning(const struct detector *d)
{
	return d->relearning;
}

bool detector_relearn_loud(const struct detector *d)
{
	return d->relearn_loud;
}

uint64_t detector_relearn_scored(const struct detector *d)
{
	return d->relearn_scored;
}

uint32_t detector_model_version(const struct detector *d)
{
	return d->model_version;
}

bool detector_has_model(const struct detector *d)
{
	return d->model != NULL;
}

enum det_state detector_state(const struct detector *d)
{
	return d->state;
}

double detector_last_score(const struct detector *d)
{
	return d->last_score;
}

bool detector_in_episode(const struct detector *d)
{
	struct alert_persist p;

	alert_get_persist(d->alert, &p);
	return p.severity > 0;
}

uint64_t detector_trainable_windows(const struct detector *d)
{
	return d->trainable;
}

void detector_alert_persist(const struct detector *d, struct alert_persist *p)
{
	alert_get_persist(d->alert, p);
}
