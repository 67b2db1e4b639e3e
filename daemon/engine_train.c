/*
 * engine_train.c - when the service's assets train, and what a new model
 * changes: the first model, scheduled retrains (skipped while an episode
 * that lasted a whole period stays open), requested ones, and learning
 * (learn.h) after the first model or an episode taken as normal. The main
 * loop calls it each tick and when the trainer thread has results.
 */
#include "engine_int.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "detector.h"
#include "learn.h"
#include "log.h"
#include "models.h"
#include "nn.h"
#include "notify.h"
#include "pdm_error.h"
#include "pdm_time.h"
#include "store.h"
#include "trainer.h"

void engine_fill_window_cfg(const struct cfg_asset *ac, struct window_cfg *w)
{
	memset(w, 0, sizeof(*w));
	w->C = (int)ac->n_sensors;
	w->interval_ms = ac->sample_interval_ms;
	w->W = ac->window;
	w->hop = ac->hop;
	w->hold = ac->hold;
	/* into the configuration, which outlives the trainer's jobs (a reload
	 * stops the trainer before it frees the old one) */
	w->channel_hold_ms = ac->hold_ms;
	w->channel_hold_max_ms = ac->hold_max_ms;
	w->run_channel = -1;
	if (ac->has_run_when) {
		for (size_t c = 0; c < ac->n_sensors; c++)
			if (ac->sensors[c] == ac->run_sensor)
				w->run_channel = (int)c;
		w->run_op = (int)ac->run_op;
		w->run_value = ac->run_value;
	}
	w->no_data_ms = ac->no_data_after_ms;
}

static void set_model_json(struct asset_rt *a, struct nn_model *m)
{
	struct nn_model_info info;
	char ts[PDM_ISO8601_LEN];

	nn_model_info(m, &info);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "asset", a->cfg->name);
	cJSON_AddStringToObject(o, "kind", nn_kind_name(info.kind));
	cJSON_AddNumberToObject(o, "version", info.version);
	cJSON_AddStringToObject(o, "trained_at", pdm_iso8601(info.trained_at_ms, ts, sizeof(ts)));
	cJSON_AddNumberToObject(o, "windows", (double)info.train_windows);
	cJSON_AddNumberToObject(o, "validation_loss", info.val_loss);
	cJSON_AddNumberToObject(o, "threshold", info.threshold);
	cJSON_AddNumberToObject(o, "channels", info.C);
	cJSON_AddNumberToObject(o, "window", info.W);
	free(a->model_json);
	a->model_json = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	a->trained_at_ms = info.trained_at_ms;
	/* A model trained while the clock ran ahead would put off the next
	 * retrain until that time comes again. */
	int64_t now = pdm_wall_ms();
	a->retrain_base_ms = info.trained_at_ms < now ? info.trained_at_ms : now;
}

void engine_install_model(struct asset_rt *a, struct nn_model *m, uint32_t version)
{
	set_model_json(a, m);
	detector_set_model(a->det, m, version);
	/* published by the main loop right after (flush_retained) */
	a->model_dirty = true;
}

static void submit_training(struct engine *e, struct asset_rt *a, const char *why)
{
	struct train_job *j = calloc(1, sizeof(*j));
	/* Training reaches up to the asset's clock (a device's, maybe hours
	 * off the host's): the newest samples it has. */
	int64_t wall = pdm_wall_ms(), now = asset_now(a, wall);

	if (!j)
		return;
	j->asset_index = a->index;
	j->asset = strdup(a->cfg->name);
	j->store_path = strdup(e->store_path);
	j->state_dir = strdup(e->cfg->daemon.state_dir);
	j->sensor_ids = malloc(a->cfg->n_sensors * sizeof(uint32_t));
	j->episodes = malloc(EPISODES_MAX * sizeof(struct train_episode));
	if (!j->asset || !j->store_path || !j->state_dir || !j->sensor_ids || !j->episodes) {
		train_job_free(j);
		return;
	}
	memcpy(j->sensor_ids, a->store_ids, a->cfg->n_sensors * sizeof(uint32_t));
	/* What the current limits call stuck is no evidence of how long the
	 * sensor may stand still. */
	j->still_cap_ms = malloc(a->cfg->n_sensors * sizeof(int64_t));
	if (j->still_cap_ms)
		memcpy(j->still_cap_ms, detector_still_limits(a->det),
		       a->cfg->n_sensors * sizeof(int64_t));
	engine_fill_window_cfg(a->cfg, &j->window);
	/* The holds learned live: the history it reads came at the same rate,
	 * and its oldest samples must not be gaps while the trainer's window
	 * learns them again. */
	j->hold_ms = malloc(a->cfg->n_sensors * sizeof(int64_t));
	for (size_t c = 0; j->hold_ms && c < a->cfg->n_sensors; c++)
		j->hold_ms[c] = detector_hold_ms(a->det, (int)c);
	trainer_params_from_cfg(a->cfg, (int)a->cfg->n_sensors, &j->params);
	j->t0_ms = now - a->cfg->train_history_ms;
	j->t1_ms = now;
	a->training_since_ms = a->retrain_since_ms;
	a->retrain_since_ms = 0;
	if (a->training_since_ms > 0) {
		/* The user vouches for everything from then on (maintenance, a
		 * new process): an open episode must not keep the machine's new
		 * normal out of its model, and the model it flags is the one
		 * being replaced, so the loss comparison does not apply. The
		 * time was given on the host's clock; windows are on the asset's. */
		int64_t since = a->training_since_ms - (wall - now);
		if (since > j->t0_ms)
			j->t0_ms = since;
		for (size_t i = 0; i < a->n_episodes; i++) {
			struct train_episode ep = a->episodes[i].span;
			if (ep.start_ms >= since || a->episodes[i].normal)
				continue;
			if (ep.end_ms > since)
				ep.end_ms = since;
			j->episodes[j->n_episodes++] = ep;
		}
		j->params.promote_margin = 1e30;
	} else {
		for (size_t i = 0; i < a->n_episodes; i++)
			if (!a->episodes[i].normal)
				j->episodes[j->n_episodes++] = a->episodes[i].span;
	}
	if (a->learning)
		learn_fitted(&a->learn, now);
	j->current_version = detector_model_version(a->det);
	j->new_version = j->current_version + 1;
	uint32_t versions[1];
	if (models_list(e->cfg->daemon.state_dir, a->cfg->name, versions, 1) == 1 &&
	    versions[0] >= j->new_version)
		j->new_version = versions[0] + 1;
	j->keep_models = e->cfg->daemon.keep_models;
	/* Make sure what the detector has seen is in the store before reading it. */
	store_flush(e->store, 2000);
	if (trainer_submit(e->trainer, j) == 0) {
		LOG_I("trainer[%s]: training started (%s)", a->cfg->name, why);
		notify_status("training %s", a->cfg->name);
	}
}

/*
 * Training leaves the windows of alert episodes out. An episode open for a
 * whole retrain period leaves a scheduled retrain only the data the current
 * model saw (less of it, as history ages out): it is skipped, and the log
 * says once per episode how to tell pdmd the episode is normal operation,
 * or to train on the machine's new normal when the change is for good
 * (maintenance, another process). An episode marked normal is training data,
 * so its retrains go on.
 */
static bool skip_retrain(struct asset_rt *a, int64_t now)
{
	const struct episode *ep = engine_open_episode(a);
	if (!ep || ep->normal)
		return false;
	int64_t start = ep->span.start_ms;
	if (asset_now(a, now) - start < a->cfg->retrain_ms)
		return false;
	a->retrain_base_ms = now;
	if (a->skip_told_ms == start) {
		LOG_D("trainer[%s]: scheduled retrain skipped (alert episode still open)",
		      a->cfg->name);
		return true;
	}
	a->skip_told_ms = start;
	char ts[PDM_ISO8601_LEN];
	pdm_iso8601(start, ts, sizeof(ts));
	LOG_W("trainer[%s]: scheduled retrains skipped while the alert raised at %s lasts: "
	      "training leaves alert episodes out, so they would learn nothing new. If it is "
	      "normal operation (a state the model has not seen), say so: pdmctl normal %s-%llu "
	      "(its data becomes training data, the older data is kept). If the machine runs "
	      "this way for good (maintenance, a new process), train on its new normal only: "
	      "pdmctl retrain --since %s %s (or the time of the change)",
	      a->cfg->name, ts, a->cfg->name, (unsigned long long)ep->seq, ts, a->cfg->name);
	return true;
}

/* Learning survives a restart: the key "relearn/ASSET" holds
 * "EPISODE_START MARK UNTIL", EPISODE_START 0 for the first model's learning
 * (older daemons wrote the first two, for relearning only). */
static void save_learning(struct asset_rt *a)
{
	char key[300], val[96];

	snprintf(key, sizeof(key), "relearn/%s", a->cfg->name);
	snprintf(val, sizeof(val), "%lld %lld %lld", (long long)a->relearn_since_ms,
		 (long long)a->learn.mark_ms, (long long)a->learn.until_ms);
	int rc = a->learning ? store_kv_set(a->e->store, key, val) : store_kv_del(a->e->store, key);
	if (rc < 0 && rc != -ENOENT)
		LOG_W("detector[%s]: cannot save the learning state: %s", a->cfg->name,
		      pdm_strerror(rc));
}

/*
 * Relearning an episode taken as normal (pdmctl normal): the new state is
 * often still moving - a pump at a new speed warms or cools for minutes,
 * further than a model trained on its first seconds knows - so one retrain
 * is not enough; learn.h has the rule. Its age counts from when the user
 * took the episode as normal (the first training has all of the episode,
 * however long it was open), at most relearn_for.
 */

/*
 * What the training history said of each sensor standing still, as
 * "still/ASSET" (detector_still_format: the measurement, not the limit, so
 * that the rule can change). By name: a sensor added since is not checked
 * until the next training measures it, unless its stuck_after says.
 */
static void apply_still(struct asset_rt *a, const int64_t *longest, const int64_t *span)
{
	int64_t *lim = calloc(a->cfg->n_sensors + 1, sizeof(*lim));
	if (!lim)
		return;
	for (size_t c = 0; c < a->cfg->n_sensors; c++)
		lim[c] = detector_sensor_still_limit(a->cfg->stuck_after_ms[c], longest[c], span[c]);
	detector_set_still_limits(a->det, lim);
	free(lim);
}

static void save_still(struct asset_rt *a, const struct train_result *r)
{
	char key[300];
	size_t cap = 64 + a->cfg->n_sensors * 320;
	char *val = malloc(cap);

	if (!val || r->n_still != (int)a->cfg->n_sensors) {
		free(val);
		return;
	}
	detector_still_format(val, cap, a->channel_names, r->n_still,
			      r->still_ms, r->still_span_ms);
	snprintf(key, sizeof(key), "still/%s", a->cfg->name);
	int rc = store_kv_set(a->e->store, key, val);
	if (rc < 0)
		LOG_W("detector[%s]: cannot save how long its sensors stand still: %s",
		      a->cfg->name, pdm_strerror(rc));
	apply_still(a, r->still_ms, r->still_span_ms);
	free(val);
}

void engine_load_still(struct asset_rt *a)
{
	char key[300], *s = NULL;
	size_t C = a->cfg->n_sensors;
	int64_t *longest = malloc((C + 1) * sizeof(*longest)), *span = malloc((C + 1) * sizeof(*span));

	snprintf(key, sizeof(key), "still/%s", a->cfg->name);
	if (longest && span) {
		/* Without a measurement yet, only the limits the configuration sets. */
		if (store_kv_get(a->e->store, key, &s) < 0)
			s = NULL;
		detector_still_parse(s, a->channel_names, (int)C, longest, span);
		apply_still(a, longest, span);
	}
	free(s);
	free(longest);
	free(span);
}

void engine_load_learning(struct asset_rt *a)
{
	char key[300], *s = NULL;

	snprintf(key, sizeof(key), "relearn/%s", a->cfg->name);
	if (store_kv_get(a->e->store, key, &s) < 0)
		return;
	long long since = 0, mark = 0, until = 0;
	int n = sscanf(s, "%lld %lld %lld", &since, &mark, &until);
	free(s);
	int64_t now = asset_now(a, pdm_wall_ms());
	char ts[PDM_ISO8601_LEN];
	if (n < 1 || since < 0 ||
	    (since == 0 && (n < 3 || !detector_has_model(a->det) || a->cfg->learn_for_ms <= 0))) {
		/* Not learning; or the first model's learning without the model
		 * (its files deleted: the next model starts it again), or with
		 * learn_for set to 0 since. */
		a->learning = false;
		save_learning(a);
		return;
	}
	a->learning = true;
	a->relearn_since_ms = since;
	if (n < 2 || mark < since)
		mark = since;
	learn_start(&a->learn, mark, a->cfg->relearn_for_ms);
	if (n == 3)
		a->learn.until_ms = until;
	if (since == 0)
		learn_set_min(&a->learn, a->cfg->learn_min_ms);
	/* An episode restored open while relearning is cleared again (its
	 * cleared event was not stored before the stop); one the first model's
	 * learning raised goes on. */
	(void)detector_relearn_start(a->det, now, since == 0 ? a->cfg->learn_alert_over : 0.0);
	if (since > 0) {
		LOG_I("asset[%s]: relearning the episode raised at %s, taken as normal, without "
		      "alerts", a->cfg->name, pdm_iso8601(since, ts, sizeof(ts)));
		return;
	}
	/* The model loaded is the one learning had: its quiet time starts now. */
	learn_installed(&a->learn, now);
	pdm_iso8601(asset_to_host(a, a->learn.until_ms), ts, sizeof(ts));
	if (a->learn.min_ms > now) {
		char tm[PDM_ISO8601_LEN];
		LOG_I("asset[%s]: learning its first model's machine without alerts (not before "
		      "%s, at most until %s)", a->cfg->name,
		      pdm_iso8601(asset_to_host(a, a->learn.min_ms), tm, sizeof(tm)), ts);
	} else {
		LOG_I("asset[%s]: learning its first model's machine without alerts (at most "
		      "until %s)", a->cfg->name, ts);
	}
}

static void learning_end(struct asset_rt *a)
{
	detector_relearn_end(a->det);
	a->learning = false;
	a->relearn_since_ms = 0;
	save_learning(a);
}

/* pdmctl normal took the open episode that began at since as normal
 * operation, at mark on the asset's clock: relearning starts. */
void engine_relearn_start(struct asset_rt *a, int64_t since, int64_t mark)
{
	(void)detector_relearn_start(a->det, mark, 0.0);
	a->learning = true;
	a->relearn_since_ms = since;
	learn_start(&a->learn, mark, a->cfg->relearn_for_ms);
	save_learning(a);
}

/* The asset's clock stepped: learning keeps its elapsed times. */
void engine_learning_shift(struct asset_rt *a, int64_t step)
{
	if (!a->learning)
		return;
	learn_shift(&a->learn, step);
	save_learning(a);
}

/*
 * A first model has seen train_after windows: minutes of a machine that may
 * still be warming, or that has not yet run at all its operating points.
 * Unless learn_for is 0 the asset learns on (learn.h): its age counts from
 * the start of the first model's data (train_after windows back on the
 * grid), so the model has learned once quiet for half that span, and alerts
 * are on again learn_for after the model at the latest.
 */
static void learning_first(struct asset_rt *a, int64_t t)
{
	const struct cfg_asset *ac = a->cfg;
	char ts[PDM_ISO8601_LEN];

	if (ac->learn_for_ms <= 0 || a->learning)
		return;
	int64_t span = cfg_asset_windows_ms(ac, ac->train_after);
	learn_start_first(&a->learn, t, span, ac->learn_for_ms, ac->learn_min_ms);
	a->learning = true;
	a->relearn_since_ms = 0;
	(void)detector_relearn_start(a->det, t, ac->learn_alert_over);
	save_learning(a);
	pdm_iso8601(asset_to_host(a, a->learn.until_ms), ts, sizeof(ts));
	if (a->learn.min_ms > t) {
		char tm[PDM_ISO8601_LEN];
		LOG_I("asset[%s]: first model: learning without alerts until a model scores under "
		      "its threshold for %.0f s, not before %s (learn_min), at most until %s",
		      ac->name, (double)learn_quiet_needed(&a->learn) / 1000.0,
		      pdm_iso8601(asset_to_host(a, a->learn.min_ms), tm, sizeof(tm)), ts);
	} else {
		LOG_I("asset[%s]: first model: learning without alerts until a model scores under "
		      "its threshold for %.0f s (at most until %s)", ac->name,
		      (double)learn_quiet_needed(&a->learn) / 1000.0, ts);
	}
}

struct over_read {
	struct learn_over *o;
	const struct asset_rt *a;
};

static int over_row(uint32_t sensor, int64_t ts_ms, double value, uint8_t quality, void *user)
{
	const struct over_read *r = user;
	(void)sensor;
	if (quality != PDM_Q_GOOD || !isfinite(value))
		return 0;
	/* an episode raised while learning (learn_alert_over) was not learned */
	for (size_t i = 0; i < r->a->n_episodes; i++) {
		const struct episode *ep = &r->a->episodes[i];
		if (!ep->normal && ts_ms >= ep->span.start_ms && ts_ms <= ep->span.end_ms)
			return 0;
	}
	learn_over_feed(r->o, ts_ms, value, NULL);
	return 0;
}

/*
 * The first model's learning is over: what it took as normal (learn.h,
 * learn_over), from the scores stored since learning began, said in the
 * log and kept in the store ("learned/ASSET": the end, then
 * learn_over_format's text) for pdmctl status. Read through a reader of its
 * own, as the trainer does, once per learning.
 */
static void learning_report(struct asset_rt *a, int64_t t)
{
	struct learn_over o;
	char err[256] = "", since[PDM_ISO8601_LEN];

	learn_over_init(&o, a->cfg->raise_after, a->cfg->clear_after);
	pdm_iso8601(a->learn.mark_ms, since, sizeof(since));
	struct store *rd = store_open_reader(a->e->store_path, err, sizeof(err));
	struct over_read ctx = { &o, a };
	int rc = rd ? store_read_range(rd, &a->score_id, 1, a->learn.mark_ms, t + 1, over_row, &ctx)
		    : -EIO;
	store_close(rd);
	if (rc < 0) {
		LOG_W("asset[%s]: cannot read its scores since %s to say what learning took as "
		      "normal: %s ('pdmctl plot %s --since %s' shows them)", a->cfg->name, since,
		      rd ? pdm_strerror(rc) : err, a->cfg->name, since);
		return;
	}
	learn_over_end(&o);
	/* the store keeps no shares: the sensors as the scores came */
	learn_over_end(&a->live_over);
	learn_over_name(&o, &a->live_over);
	learn_over_init(&a->live_over, a->cfg->raise_after, a->cfg->clear_after);
	char key[300], val[512];
	int n = snprintf(val, sizeof(val), "%lld %lld ", (long long)t, (long long)a->learn.mark_ms);
	learn_over_format(&o, val + n, sizeof(val) - (size_t)n);
	snprintf(key, sizeof(key), "learned/%s", a->cfg->name);
	rc = store_kv_set(a->e->store, key, val);
	if (rc < 0)
		LOG_W("asset[%s]: cannot save what learning took as normal: %s", a->cfg->name,
		      pdm_strerror(rc));
	if (o.n == 0) {
		LOG_I("asset[%s]: while learning (since %s) its score never stayed over the "
		      "threshold", a->cfg->name, since);
		return;
	}
	char told[800];
	learn_over_describe(&o, told, sizeof(told));
	/* A warning: a fault among these is what nothing alerts on from now on. */
	LOG_W("asset[%s]: while learning (since %s) its score stayed over the threshold of the "
	      "model then %s, now normal to its models. A new operating point looks like this, "
	      "and so does a fault: 'pdmctl plot %s --since %s' shows them; 'pdmctl retrain "
	      "--since TIME %s' trains again on what came after a fault", a->cfg->name, since, told,
	      a->cfg->name, since, a->cfg->name);
}

/* Learning ended at t (learned, or its time is over): the first model's
 * learning says what it took as normal. */
static void learning_over(struct asset_rt *a, int64_t t)
{
	if (a->relearn_since_ms == 0)
		learning_report(a, t);
	learning_end(a);
}

/* Whether the learning asset retrains now; ends learning when it is over. */
static bool learning_due(struct asset_rt *a, int64_t now)
{
	if (!a->learning)
		return false;
	const char *what = a->relearn_since_ms > 0 ? "relearned" : "learned";
	bool loud = detector_relearn_loud(a->det);
	int64_t t = asset_now(a, now);
	/* Set at a restart before the devices' clock lag was measured, these
	 * may lie ahead of the asset's clock: the quiet time would never start. */
	if (a->learn.model_ms > t)
		a->learn.model_ms = t;
	if (a->learn.fit_ms > t)
		a->learn.fit_ms = t;
	int64_t scored = cfg_asset_windows_ms(a->cfg, (int64_t)detector_relearn_scored(a->det));
	switch (learn_step(&a->learn, t, loud, scored)) {
	case LEARN_RETRAIN:
		return true;
	case LEARN_DONE:
		LOG_I("asset[%s]: %s: model v%u has scored under its threshold for %.0f s; alerts "
		      "are on again", a->cfg->name, what, detector_model_version(a->det),
		      (double)scored / 1000.0);
		learning_over(a, t);
		return false;
	case LEARN_EXPIRED:
		if (loud)
			LOG_W("asset[%s]: still over its threshold after %s for %lld min; alerts "
			      "are on again (a state that keeps moving this long may be a fault; "
			      "'pdmctl plot %s' shows it)", a->cfg->name,
			      a->relearn_since_ms > 0 ? "relearning" : "learning",
			      (long long)((t - a->learn.mark_ms) / 60000),
			      a->cfg->name);
		else
			LOG_I("asset[%s]: learning time is over (model v%u quiet so far); alerts are "
			      "on again", a->cfg->name, detector_model_version(a->det));
		learning_over(a, t);
		return false;
	case LEARN_WAIT:
		break;
	}
	return false;
}

void engine_schedule_training(struct engine *e, int64_t now)
{
	for (size_t i = 0; i < e->n_assets; i++) {
		struct asset_rt *a = &e->assets[i];
		if (trainer_busy(e->trainer, i))
			continue;
		uint64_t seen = detector_trainable_windows(a->det) - a->trainable_mark;
		if (a->retrain_requested) {
			a->retrain_requested = false;
			submit_training(e, a, "requested");
		} else if (!detector_has_model(a->det)) {
			if (seen >= a->windows_needed)
				submit_training(e, a, "first model");
		} else if (a->learning) {
			/* learning has its own schedule */
			if (learning_due(a, now))
				submit_training(e, a, a->relearn_since_ms > 0
							      ? "relearning an episode taken as normal"
							      : "learning");
		} else if (a->cfg->retrain_ms > 0 && now - a->retrain_base_ms >= a->cfg->retrain_ms) {
			if (!skip_retrain(a, now))
				submit_training(e, a, "scheduled retrain");
		}
	}
}

void engine_handle_train_results(struct engine *e)
{
	struct train_result *r;

	while ((r = trainer_poll(e->trainer)) != NULL) {
		if (r->asset_index >= e->n_assets) {
			free(r);
			continue;
		}
		struct asset_rt *a = &e->assets[r->asset_index];
		const struct train_outcome *o = &r->outcome;
		/* Whatever the outcome, the next scheduled try is a retrain
		 * period away (a promoted model resets it to its own time):
		 * retrying on the next tick would read the whole history every
		 * second. */
		a->retrain_base_ms = pdm_wall_ms();
		switch (o->status) {
		case TRAIN_PROMOTED: {
			char path[4096], err[256] = "";
			struct nn_model *m = NULL;
			models_path(e->cfg->daemon.state_dir, a->cfg->name, r->version, path,
				    sizeof(path));
			if (nn_model_load(path, &m, err, sizeof(err)) < 0) {
				LOG_E("trainer[%s]: new model %s does not load back (%s); keeping "
				      "the current one", a->cfg->name, path, err);
				break;
			}
			struct nn_model_info info;
			nn_model_info(m, &info);
			struct store_model sm = {
				.asset = a->cfg->name,
				.version = r->version,
				.kind = nn_kind_name(info.kind),
				.path = path,
				.trained_at_ms = info.trained_at_ms,
				.windows = o->windows,
				.val_loss = info.val_loss,
				.threshold = info.threshold,
			};
			store_model_add(e->store, &sm);
			store_model_prune(e->store, a->cfg->name, e->cfg->daemon.keep_models);
			bool first = !detector_has_model(a->det);
			engine_install_model(a, m, r->version);
			save_still(a, r);
			if (a->learning)
				learn_installed(&a->learn, asset_now(a, pdm_wall_ms()));
			else if (first)
				learning_first(a, asset_now(a, pdm_wall_ms()));
			LOG_I("trainer[%s]: model v%u in use (%s, %.1f s)", a->cfg->name, r->version,
			      o->reason, o->seconds);
			break;
		}
		case TRAIN_REFUSED:
			LOG_W("trainer[%s]: new model refused: %s; the current model stays",
			      a->cfg->name, o->reason);
			break;
		case TRAIN_NOT_ENOUGH:
			if (a->training_since_ms > 0) {
				char ts[PDM_ISO8601_LEN];
				LOG_W("trainer[%s]: the retrain on the data since %s was not done: %s; "
				      "ask again later or from an earlier time",
				      a->cfg->name, pdm_iso8601(a->training_since_ms, ts, sizeof(ts)),
				      o->reason);
				break;
			}
			/* Wait for what is missing rather than retrying every tick. */
			a->trainable_mark = detector_trainable_windows(a->det);
			a->windows_needed = (size_t)a->cfg->train_after > o->windows
						    ? (size_t)a->cfg->train_after - o->windows
						    : 1;
			LOG_I("trainer[%s]: not trained yet: %s", a->cfg->name, o->reason);
			break;
		case TRAIN_FAILED:
			a->trainable_mark = detector_trainable_windows(a->det);
			a->windows_needed = (size_t)a->cfg->train_after;
			LOG_E("trainer[%s]: %s", a->cfg->name, o->reason);
			break;
		}
		if (!detector_has_model(a->det) && o->status != TRAIN_NOT_ENOUGH)
			a->trained_at_ms = 0;
		notify_status("running: %zu assets", e->n_assets);
		free(r);
	}
}
