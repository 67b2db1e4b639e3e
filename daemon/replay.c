/*
 * replay.c - backtest an asset over a CSV file with the daemon's own code.
 *
 * Two training modes, as an engineer would use them:
 *  - schedule (default): the asset's train_after / retrain / train_history
 *    applied in data time, so the output is what the service would really
 *    have published had it run over that period;
 *  - --train-rows N / --train-until T: train once on the rows before that
 *    point, then only score ("train on January, test on February").
 * Memory is bounded: on the schedule, usable windows are kept in a ring of
 * twice train_max_windows (newest first matter: train_history) and thinned
 * evenly at training time, like the service; for a single training they go
 * to a window_set, which thins as it fills so that a long training range
 * stays evenly covered from its first row to the cut.
 */
#include "replay.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "cfg.h"
#include "csv.h"
#include "detector.h"
#include "learn.h"
#include "log.h"
#include "nn.h"
#include "pdm_error.h"
#include "pdm_parse.h"
#include "pdm_time.h"
#include "trainer.h"

struct replay {
	const struct pdm_config *cfg;
	const struct cfg_asset *ac;
	const struct replay_opts *o;
	struct detector *det;
	int C, W;
	size_t wf;
	/* ring of usable windows (time order) */
	float *ring;
	int64_t *ring_ts;
	size_t ring_cap, ring_head, ring_len;
	bool frozen;            /* train-once mode: collection over */
	bool once;              /* train-once mode (--train-rows / --train-until) */
	struct window_set *once_set;
	uint64_t usable_total;
	int64_t last_train_ts;
	bool learning;          /* after the first model, as the daemon (learn.h) */
	struct learn_over over; /* what learning takes as normal, as the daemon says it */
	struct learn learn;
	uint32_t version;
	struct nn_model *current; /* borrowed from the detector for comparisons */
	FILE *alerts, *scores;
	const char *const *names; /* the sensors' short names */
	uint64_t sensor_events;   /* missing/back/stuck/moving, said on stderr */
	uint64_t n_alerts, n_windows, n_scored, trainings;
	double train_seconds;
	int hook_err;
};

static void ring_add(struct replay *r, const float *x, int64_t ts)
{
	size_t slot = (r->ring_head + r->ring_len) % r->ring_cap;

	if (r->ring_len == r->ring_cap) {
		slot = r->ring_head;
		r->ring_head = (r->ring_head + 1) % r->ring_cap;
	} else {
		r->ring_len++;
	}
	memcpy(r->ring + slot * r->wf, x, r->wf * sizeof(float));
	r->ring_ts[slot] = ts;
}

static void hook_window(void *user, const float *x, int64_t ts_ms, enum window_status st,
			bool in_episode)
{
	struct replay *r = user;

	r->n_windows++;
	if (st == WINDOW_OK && !in_episode && !r->frozen) {
		if (r->once) {
			if (window_set_add(r->once_set, x) < 0)
				r->hook_err = -ENOMEM;
		} else {
			ring_add(r, x, ts_ms);
		}
		r->usable_total++;
	}
	if (r->scores && (st != WINDOW_OK || !detector_has_model(r->det))) {
		const char *state = st == WINDOW_OFF || st == WINDOW_WARMUP ? "off"
				    : st == WINDOW_GAP			    ? "gap"
				    : detector_has_model(r->det)
					    ? detector_state_name(detector_state(r->det))
					    : "learning";
		fprintf(r->scores, "%lld,,%s", (long long)ts_ms, state);
		for (int c = 0; c < r->C; c++)
			fputc(',', r->scores);
		fputc('\n', r->scores);
	}
}

static void hook_score(void *user, int64_t ts_ms, double score, const float *shares,
		       enum det_state st)
{
	struct replay *r = user;

	r->n_scored++;
	/* an episode raised while learning is no part of what it learned */
	if (r->learning && st == DET_LEARNING) {
		int top = alert_top_channel(shares, r->C);
		learn_over_feed(&r->over, ts_ms, score, top >= 0 ? r->names[top] : NULL);
	}
	if (!r->scores)
		return;
	fprintf(r->scores, "%lld,%.6g,%s", (long long)ts_ms, score, detector_state_name(st));
	for (int c = 0; c < r->C; c++)
		fprintf(r->scores, ",%.4f", shares[c]);
	fputc('\n', r->scores);
}

static int hook_alert(void *user, const struct alert_event *ev, const char *payload)
{
	struct replay *r = user;

	(void)ev;
	r->n_alerts++;
	if (r->alerts && fprintf(r->alerts, "%s\n", payload) < 0)
		return -EIO;
	return 0;
}

#define SENSOR_EVENTS_SHOWN 50

/* A sensor missing or back, stuck or moving (detector_missing, detector_stuck),
 * as the daemon's state would have named it: said on stderr, the first
 * SENSOR_EVENTS_SHOWN of them, and counted in the summary. */
static void hook_sensor(void *user, int c, enum det_sensor_event ev, int64_t since_ms,
			double value, int64_t now_ms)
{
	struct replay *r = user;
	char ts[PDM_ISO8601_LEN], from[PDM_ISO8601_LEN];

	if (r->sensor_events++ >= SENSOR_EVENTS_SHOWN)
		return;
	pdm_iso8601(now_ms, ts, sizeof(ts));
	if (since_ms != INT64_MIN)
		pdm_iso8601(since_ms, from, sizeof(from));
	else
		snprintf(from, sizeof(from), "its first row");
	switch (ev) {
	case DET_SENSOR_MISSING:
		fprintf(stderr, "replay: %s: sensor %s missing: no good value since %s (not scored)\n",
			ts, r->names[c], from);
		break;
	case DET_SENSOR_BACK:
		fprintf(stderr, "replay: %s: sensor %s has good values again\n", ts, r->names[c]);
		break;
	case DET_SENSOR_STUCK:
		fprintf(stderr, "replay: %s: sensor %s stuck: exactly %g since %s\n", ts,
			r->names[c], value, from);
		break;
	case DET_SENSOR_MOVING:
		fprintf(stderr, "replay: %s: sensor %s moves again\n", ts, r->names[c]);
		break;
	}
}

/* Trains on the usable windows within train_history before `now`. */
static int train_now(struct replay *r, int64_t now)
{
	size_t n = 0;
	int64_t from = now - r->ac->train_history_ms;
	size_t avail = r->once ? window_set_count(r->once_set) : r->ring_len;
	float *x = malloc((avail ? avail : 1) * r->wf * sizeof(float));

	if (!x)
		return -ENOMEM;
	if (r->once) {
		n = avail;
		memcpy(x, window_set_data(r->once_set), n * r->wf * sizeof(float));
	}
	for (size_t i = 0; !r->once && i < r->ring_len; i++) {
		size_t slot = (r->ring_head + i) % r->ring_cap;
		if (r->ring_ts[slot] < from)
			continue;
		memcpy(x + n * r->wf, r->ring + slot * r->wf, r->wf * sizeof(float));
		n++;
	}
	/* Even thinning down to train_max_windows, time order kept. */
	size_t max = (size_t)r->ac->train_max_windows;
	size_t seen = r->once ? window_set_seen(r->once_set) : n;
	if (n > max) {
		for (size_t i = 0; i < max; i++) {
			size_t src = (size_t)((double)i * (double)n / (double)max);
			memmove(x + i * r->wf, x + src * r->wf, r->wf * sizeof(float));
		}
		n = max;
	}
	struct train_params p;
	trainer_params_from_cfg(r->ac, r->C, &p);
	p.max_windows = max;
	p.min_windows = r->frozen ? 10 : (size_t)r->ac->train_after;

	struct nn_model *fresh = NULL;
	struct train_outcome out;
	int rc = trainer_fit(&p, x, n, seen, r->current, &fresh, &out);
	free(x);
	r->train_seconds += out.seconds;
	r->last_train_ts = now;
	r->trainings++;
	char ts[PDM_ISO8601_LEN];
	pdm_iso8601(now, ts, sizeof(ts));
	if (r->learning)
		learn_fitted(&r->learn, now);
	if (out.status == TRAIN_PROMOTED) {
		bool first = !detector_has_model(r->det);
		r->version++;
		nn_model_set_meta(fresh, r->version, now);
		r->current = fresh;
		detector_set_model(r->det, fresh, r->version);
		detector_still_limits_from_data(r->det, r->ac->stuck_after_ms);
		if (r->learning) {
			learn_installed(&r->learn, now);
		} else if (first && !r->once && r->ac->learn_for_ms > 0) {
			learn_start_first(&r->learn, now,
					  cfg_asset_windows_ms(r->ac, r->ac->train_after),
					  r->ac->learn_for_ms, r->ac->learn_min_ms);
			r->learning = true;
			learn_over_init(&r->over, r->ac->raise_after, r->ac->clear_after);
			(void)detector_relearn_start(r->det, now, r->ac->learn_alert_over);
		}
		fprintf(stderr, "replay: %s: model v%u trained (%s, %.2f s)\n", ts, r->version,
			out.reason, out.seconds);
	} else {
		fprintf(stderr, "replay: %s: training %s: %s\n", ts,
			trainer_status_name(out.status), out.reason);
	}
	return rc;
}

static void maybe_train(struct replay *r, int64_t now, int64_t row)
{
	const struct replay_opts *o = r->o;

	if (o->train_rows > 0 || o->train_until_ms != INT64_MIN) {
		if (r->frozen)
			return;
		bool cut = (o->train_rows > 0 && row >= o->train_rows) ||
			   (o->train_until_ms != INT64_MIN && now >= o->train_until_ms);
		if (cut) {
			r->frozen = true;
			train_now(r, now);
		}
		return;
	}
	if (!detector_has_model(r->det)) {
		if (r->usable_total >= (uint64_t)r->ac->train_after &&
		    (r->last_train_ts == INT64_MIN ||
		     now - r->last_train_ts >= cfg_asset_windows_ms(r->ac, 100)))
			train_now(r, now);
	} else if (r->learning) {
		char ts[PDM_ISO8601_LEN];
		int64_t scored = cfg_asset_windows_ms(r->ac, (int64_t)detector_relearn_scored(r->det));
		switch (learn_step(&r->learn, now, detector_relearn_loud(r->det), scored)) {
		case LEARN_RETRAIN:
			train_now(r, now);
			break;
		case LEARN_DONE:
		case LEARN_EXPIRED:
			r->learning = false;
			detector_relearn_end(r->det);
			fprintf(stderr, "replay: %s: learning over, alerts on (model v%u)\n",
				pdm_iso8601(now, ts, sizeof(ts)), r->version);
			learn_over_end(&r->over);
			if (r->over.n > 0) {
				char told[800];
				learn_over_describe(&r->over, told, sizeof(told));
				fprintf(stderr, "replay: %s: while learning its score stayed over the "
					"threshold of the model then %s, now normal to its models\n",
					ts, told);
			}
			break;
		case LEARN_WAIT:
			break;
		}
	} else if (r->ac->retrain_ms > 0 && now - r->last_train_ts >= r->ac->retrain_ms) {
		train_now(r, now);
	}
}

int replay_run(const struct pdm_config *cfg, const struct replay_opts *o)
{
	struct replay r = { .cfg = cfg, .o = o, .last_train_ts = INT64_MIN };
	char err[1024] = "";
	const char **columns = NULL, **names = NULL, **units = NULL;
	struct csv_reader *csv = NULL;
	double *vals = NULL;
	int ret = EX_SOFTWARE;

	r.ac = cfg_find_asset(cfg, o->asset);
	if (!r.ac) {
		fprintf(stderr, "pdmd replay: no asset '%s' in the configuration\n", o->asset);
		return EX_USAGE;
	}
	r.C = (int)r.ac->n_sensors;
	r.W = r.ac->window;
	r.wf = (size_t)r.C * (size_t)r.W;
	columns = calloc((size_t)r.C, sizeof(char *));
	names = calloc((size_t)r.C, sizeof(char *));
	units = calloc((size_t)r.C, sizeof(char *));
	vals = calloc((size_t)r.C, sizeof(double));
	r.once = o->train_rows > 0 || o->train_until_ms != INT64_MIN;
	if (r.once) {
		r.once_set = window_set_new(r.wf, (size_t)r.ac->train_max_windows);
	} else {
		r.ring_cap = (size_t)r.ac->train_max_windows * 2;
		r.ring = malloc(r.ring_cap * r.wf * sizeof(float));
		r.ring_ts = malloc(r.ring_cap * sizeof(int64_t));
	}
	if (!columns || !names || !units || !vals || (r.once ? !r.once_set : !r.ring || !r.ring_ts)) {
		fprintf(stderr, "pdmd replay: out of memory\n");
		goto out;
	}
	for (int c = 0; c < r.C; c++) {
		const struct cfg_sensor *se = &cfg->sensors[r.ac->sensors[c]];
		columns[c] = se->column && se->column[0] ? se->column : se->short_name;
		names[c] = se->short_name;
		units[c] = se->unit ? se->unit : "";
	}
	csv = csv_open(o->csv, o->time_column, columns, (size_t)r.C, err, sizeof(err));
	if (!csv) {
		fprintf(stderr, "%s\n", err);
		ret = EX_DATAERR;
		goto out;
	}
	if (o->alerts_path && !(r.alerts = fopen(o->alerts_path, "w"))) {
		fprintf(stderr, "pdmd replay: %s: %s\n", o->alerts_path, strerror(errno));
		ret = EX_CANTCREAT;
		goto out;
	}
	if (o->scores_path) {
		if (!(r.scores = fopen(o->scores_path, "w"))) {
			fprintf(stderr, "pdmd replay: %s: %s\n", o->scores_path, strerror(errno));
			ret = EX_CANTCREAT;
			goto out;
		}
		fputs("ts_ms,score,state", r.scores);
		for (int c = 0; c < r.C; c++)
			fprintf(r.scores, ",%s", names[c]);
		fputc('\n', r.scores);
	}

	struct detector_cfg dc = {
		.asset = r.ac->name,
		.host = cfg->daemon.host,
		.channel_names = names,
		.channel_units = units,
		.window = {
			.C = r.C,
			.interval_ms = r.ac->sample_interval_ms,
			.W = r.ac->window,
			.hop = r.ac->hop,
			.hold = r.ac->hold,
			.channel_hold_ms = r.ac->hold_ms,
			.channel_hold_max_ms = r.ac->hold_max_ms,
			.run_channel = -1,
			.no_data_ms = r.ac->no_data_after_ms,
		},
		.alert = { r.ac->raise_after, r.ac->clear_after, r.ac->critical },
	};
	if (r.ac->has_run_when) {
		for (int c = 0; c < r.C; c++)
			if (r.ac->sensors[c] == r.ac->run_sensor)
				dc.window.run_channel = c;
		dc.window.run_op = (int)r.ac->run_op;
		dc.window.run_value = r.ac->run_value;
	}
	struct detector_hooks hooks = {
		.on_window = hook_window,
		.on_score = hook_score,
		.on_alert = hook_alert,
		.on_sensor = hook_sensor,
	};
	r.names = names;
	r.det = detector_new(&dc, &hooks, &r, NULL);
	if (!r.det)
		goto out;

	bool progress = o->progress > 0 || (o->progress < 0 && isatty(STDERR_FILENO));
	int64_t t_start = pdm_mono_ms(), last_progress = t_start, row = 0, ts = 0, last_ts = 0;
	int rc;
	while ((rc = csv_next(csv, &ts, vals, err, sizeof(err))) > 0) {
		maybe_train(&r, ts, row);
		for (int c = 0; c < r.C; c++)
			if (!isnan(vals[c]))
				detector_push(r.det, c, ts, vals[c], isfinite(vals[c]));
		detector_advance(r.det, ts);
		last_ts = ts;
		row++;
		if (progress && (row & 1023) == 0 && pdm_mono_ms() - last_progress > 500) {
			last_progress = pdm_mono_ms();
			fprintf(stderr, "\rreplay: %lld rows, %llu alerts", (long long)row,
				(unsigned long long)r.n_alerts);
		}
	}
	if (r.hook_err < 0) {
		fprintf(stderr, "pdmd replay: %s\n", pdm_strerror(r.hook_err));
		goto out;
	}
	if (rc < 0) {
		fprintf(stderr, "%s%s\n", progress ? "\n" : "", err);
		ret = EX_DATAERR;
		goto out;
	}
	/* Flush the last grid points. */
	detector_advance(r.det, last_ts + r.ac->sample_interval_ms * (r.ac->hold + 1));
	if (!detector_has_model(r.det) && (o->train_rows > 0 || o->train_until_ms != INT64_MIN) &&
	    !r.frozen) {
		r.frozen = true;
		train_now(&r, last_ts);
	}
	if (o->model_out && r.current) {
		rc = nn_model_save(r.current, o->model_out);
		if (rc < 0)
			fprintf(stderr, "pdmd replay: %s: %s\n", o->model_out, pdm_strerror(rc));
	}
	double secs = (double)(pdm_mono_ms() - t_start) / 1000.0;
	fprintf(stderr,
		"%sreplay: %s: %lld rows, %llu windows (%llu scored), %llu alerts, %llu trainings "
		"(%.2f s), %.2f s total, %.0f rows/s\n",
		progress ? "\n" : "", r.ac->name, (long long)row, (unsigned long long)r.n_windows,
		(unsigned long long)r.n_scored, (unsigned long long)r.n_alerts,
		(unsigned long long)r.trainings, r.train_seconds, secs,
		secs > 0 ? (double)row / secs : 0.0);
	if (r.sensor_events > SENSOR_EVENTS_SHOWN)
		fprintf(stderr, "replay: %s: %llu sensor events in all, the first %d shown\n",
			r.ac->name, (unsigned long long)r.sensor_events, SENSOR_EVENTS_SHOWN);
	/* Columns further apart than the asset's grid holds a value: held as
	 * long as the daemon would have learned to hold them. */
	char held[512] = "";
	size_t hn = 0;
	int nheld = 0;
	for (int c = 0; c < r.C && hn < sizeof(held); c++) {
		int64_t h = detector_hold_ms(r.det, c);
		if (h <= r.ac->hold_ms[c])
			continue;
		char every[32], hs[32];
		nheld++;
		hn += (size_t)snprintf(held + hn, sizeof(held) - hn, "%s%s %s (every %s)",
				       hn ? ", " : "", names[c],
				       pdm_format_approx(h, hs, sizeof(hs)),
				       pdm_format_approx(detector_spacing_ms(r.det, c), every,
							 sizeof(every)));
	}
	if (nheld > 0)
		fprintf(stderr, "replay: %s: held longer, as their values come further apart than "
			"the asset's hold: %s%s\n", r.ac->name, held,
			nheld == r.C ? "; every column does: a sample_interval near the data's "
				       "spacing fits it better"
				     : "");
	/* Nothing usable at all: say why when it is the data's spacing. */
	char list[512], need[32];
	int64_t worst;
	if (r.usable_total == 0 && r.n_windows > 0 &&
	    detector_sparse_channels(r.det, list, sizeof(list), &worst) > 0) {
		pdm_format_duration(cfg_asset_hold_for(r.ac, worst), need, sizeof(need));
		fprintf(stderr,
			"replay: %s: no window was usable: column(s) %s have values further apart "
			"than they are held, so every window has a gap; set hold = %s in their "
			"[sensor] sections, or a sample_interval near the data's\n",
			r.ac->name, list, need);
	}
	ret = EX_OK;
out:
	if (r.alerts && fclose(r.alerts) != 0 && ret == EX_OK)
		ret = EX_IOERR;
	if (r.scores && fclose(r.scores) != 0 && ret == EX_OK)
		ret = EX_IOERR;
	detector_free(r.det);
	csv_close(csv);
	free(columns);
	free(names);
	free(units);
	free(vals);
	free(r.ring);
	free(r.ring_ts);
	window_set_free(r.once_set);
	return ret;
}
