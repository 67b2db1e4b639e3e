/*
 * engine.c - the service: connectors -> ingest queue -> store + detectors
 * -> alert outbox -> MQTT publisher, and the trainer on its own thread.
 *
 * Everything here runs on the main thread; see engine.h for the threads
 * around it. A reload (SIGHUP) parses the new configuration first and
 * rebuilds the pipeline only if it is valid; otherwise the old one keeps
 * running untouched.
 */
#include "engine.h"
#include "engine_int.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "cfg.h"
#include "detector.h"
#include "episodes.h"
#include "ingest.h"
#include "log.h"
#include "mb_conn.h"
#include "models.h"
#include "mqtt_client.h"
#include "nn.h"
#include "notify.h"
#include "pdm_parse.h"
#include "pdm_config.h"
#include "pdm_error.h"
#include "pdm_hash.h"
#include "pdm_time.h"
#include "store.h"
#include "trainer.h"

#define TICK_MS 50
#define STATUS_FILE_MS 5000
/* The clock state of the source feeding the asset's channel c. */
static struct src_clock *channel_clock(const struct engine *e, const struct asset_rt *a, size_t c)
{
	return &e->srcs[e->cfg->sensors[a->cfg->sensors[c]].source];
}

/* ---- MQTT callbacks (paho's thread): into the mailbox ------------------ */

static void post_event(struct engine *e, enum mq_event_kind k, uint64_t tag, int rc)
{
	bool wake = false;

	pthread_mutex_lock(&e->ev_lock);
	if (e->n_events < EVENT_CAP) {
		e->events[e->n_events++] = (struct mq_event){ k, tag, rc };
		wake = e->n_events == 1;
	} else {
		/* Lost acknowledgements only delay delivery: undelivered rows are
		 * sent again on the next connection. */
		e->events_lost++;
	}
	pthread_mutex_unlock(&e->ev_lock);
	if (wake) {
		uint64_t one = 1;
		ssize_t w = write(e->ev_fd, &one, sizeof(one));
		(void)w;
	}
}

static void on_connection(bool up, void *user)
{
	post_event(user, up ? MQ_UP : MQ_DOWN, 0, 0);
}

static void on_delivered(uint64_t tag, int rc, void *user)
{
	if (tag != 0)
		post_event(user, MQ_DELIVERED, tag, rc);
}

/* ---- publishing ---------------------------------------------------------- */

/* Returns false if the message could not be handed to the client (not
 * connected, or every publish slot taken by alerts in flight): the caller
 * keeps it dirty and flush_retained() sends it once a slot is free. */
static bool publish_retained(struct engine *e, const char *topic, const char *json)
{
	if (!json)
		return true;
	if (!e->connected)
		return false;
	int rc = mqtt_publish(e->mq[0], topic, json, strlen(json), 1, true, 0);
	if (rc < 0)
		LOG_D("publish: %s: %s", topic, pdm_strerror(rc));
	return rc == 0;
}

/* Outbox rows the pump looks at per pass, from the oldest undelivered. */
#define PUMP_LOOKAHEAD 256

struct pump_ctx {
	struct engine *e;
	int max;
	/* Topics with an alert in flight or held back in this pass. */
	uint64_t busy[PUMP_LOOKAHEAD];
	int n_busy;
};

static int flying_index(const struct engine *e, int64_t id)
{
	for (int i = 0; i < e->inflight; i++)
		if (e->flying[i] == id)
			return i;
	return -1;
}

/* Marks the topic busy; returns whether it already was. */
static bool topic_busy(struct pump_ctx *c, uint64_t h)
{
	for (int i = 0; i < c->n_busy; i++)
		if (c->busy[i] == h)
			return true;
	if (c->n_busy < PUMP_LOOKAHEAD)
		c->busy[c->n_busy++] = h;
	return false;
}

static int pump_row(const struct store_outbox_row *r, void *user)
{
	struct pump_ctx *c = user;
	struct engine *e = c->e;

	/* One alert per topic (per asset) in flight: when paho fails one, it
	 * is sent again before anything after it on its topic was sent, so
	 * subscribers see each asset's events in order even across broker
	 * restarts. Rows still in flight are paho's (it resends them itself). */
	/* Topics are told apart by hash: two that collide are merely sent
	 * one at a time. */
	bool busy = topic_busy(c, pdm_fnv1a(PDM_FNV1A_INIT, r->topic, strlen(r->topic)));
	if (busy || flying_index(e, r->id) >= 0)
		return 0;
	if (e->inflight >= c->max)
		return 1;
	int rc = mqtt_publish(e->mq[0], r->topic, r->payload, strlen(r->payload),
			      e->cfg->mqtt.qos, false, (uint64_t)r->id);
	if (rc < 0)
		return 1; /* not connected or no slot: the next pass tries again */
	e->flying[e->inflight++] = r->id;
	return 0;
}

/* Sends undelivered alerts, oldest first: at most max_inflight unacknowledged
 * in all and one per topic. */
static void pump_outbox(struct engine *e)
{
	int max = e->cfg->mqtt.max_inflight > 0 ? e->cfg->mqtt.max_inflight : 20;

	if (max > FLYING_CAP)
		max = FLYING_CAP;
	if (!e->connected || e->inflight >= max)
		return;
	struct pump_ctx c = { .e = e, .max = max };
	int rc = store_outbox_pending(e->store, 0, PUMP_LOOKAHEAD, pump_row, &c);
	if (rc < 0)
		LOG_E("outbox: cannot read pending alerts: %s", pdm_strerror(rc));
}

static bool publish_status_online(struct engine *e)
{
	char ts[PDM_ISO8601_LEN];
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "status", "online");
	cJSON_AddStringToObject(o, "host", e->cfg->daemon.host);
	cJSON_AddStringToObject(o, "version", PDM_VERSION);
	cJSON_AddStringToObject(o, "started", pdm_iso8601(e->started_ms, ts, sizeof(ts)));
	cJSON_AddNumberToObject(o, "assets", (double)e->n_assets);
	char *s = cJSON_PrintUnformatted(o);
	bool ok = publish_retained(e, e->status_topic, s);
	free(s);
	cJSON_Delete(o);
	return ok;
}

/* Sends the retained messages (status, each asset's state and model) that
 * changed, or were refused, since they were last handed to the client.
 * Called before the alert pump, so that they get the next free slot. */
static void flush_retained(struct engine *e)
{
	if (!e->connected)
		return;
	if (e->status_dirty)
		e->status_dirty = !publish_status_online(e);
	for (size_t i = 0; i < e->n_assets; i++) {
		struct asset_rt *a = &e->assets[i];
		if (a->state_dirty)
			a->state_dirty = !publish_retained(e, a->state_topic, a->state_json);
		if (a->model_dirty)
			a->model_dirty = !publish_retained(e, a->model_topic, a->model_json);
	}
}

static void on_connected(struct engine *e)
{
	e->connected = true;
	/* The pump starts from the first undelivered alert: what paho still
	 * holds from the old connection it resends itself (persistent
	 * session); the rest (refused, or from before a restart) goes again
	 * under the same ids. */
	/* A broker that drops us right after each connect (another client with
	 * our client id) would log this and the loss below every few seconds. */
	LOG_RL(&e->conn_rl, LOG_INFO, "mqtt: connected to %s", e->cfg->mqtt.uri);
	/* The broker may have lost the retained messages: all of them again. */
	e->status_dirty = true;
	for (size_t i = 0; i < e->n_assets; i++)
		e->assets[i].state_dirty = e->assets[i].model_dirty = true;
	flush_retained(e);
	pump_outbox(e);
}

static void drain_events(struct engine *e)
{
	struct mq_event ev[256];
	size_t n;

	do {
		pthread_mutex_lock(&e->ev_lock);
		n = e->n_events < 256 ? e->n_events : 256;
		memcpy(ev, e->events, n * sizeof(*ev));
		memmove(e->events, e->events + n, (e->n_events - n) * sizeof(*ev));
		e->n_events -= n;
		if (e->n_events == 0) {
			uint64_t v;
			ssize_t r = read(e->ev_fd, &v, sizeof(v));
			(void)r;
		}
		pthread_mutex_unlock(&e->ev_lock);
		for (size_t i = 0; i < n; i++) {
			switch (ev[i].kind) {
			case MQ_UP:
				on_connected(e);
				break;
			case MQ_DOWN:
				if (e->connected)
					LOG_RL(&e->conn_rl, LOG_WARNING,
					       "mqtt: lost the broker %s; alerts wait in the outbox",
					       e->cfg->mqtt.uri);
				e->connected = false;
				break;
			case MQ_DELIVERED: {
				int k = flying_index(e, (int64_t)ev[i].tag);
				if (k >= 0)
					e->flying[k] = e->flying[--e->inflight];
				/* Not acknowledged: the row stays pending and the
				 * pump sends it again, first on its topic. */
				if (ev[i].rc == 0) {
					int rc = store_outbox_mark_delivered(e->store, (int64_t)ev[i].tag);
					if (rc < 0)
						LOG_E("outbox: cannot mark alert %llu delivered: %s",
						      (unsigned long long)ev[i].tag, pdm_strerror(rc));
				}
				break;
			}
			}
		}
	} while (n == 256);
	flush_retained(e);
	pump_outbox(e);
}

/* ---- detector hooks ------------------------------------------------------ */

static void save_episodes(struct asset_rt *a)
{
	if (episodes_save(a->e->store, a->cfg->name, a->episodes, a->n_episodes) < 0)
		LOG_W("detector[%s]: cannot save the episode list", a->cfg->name);
}

static void load_episodes(struct asset_rt *a)
{
	int rc = episodes_load(a->e->store, a->cfg->name, a->episodes, EPISODES_MAX, &a->n_episodes);
	if (rc != 0)
		LOG_W("detector[%s]: the saved list of alert episodes cannot be read whole (%s); training may "
		      "take in data of an episode it should leave out: `pdmctl retrain %s --since TIME` "
		      "trains on data from a time you know was normal",
		      a->cfg->name, rc == -EINVAL ? "not a JSON list" : rc < 0 ? pdm_strerror(rc) : "entries skipped",
		      a->cfg->name);
}

/* The episode the user means by seq (and, for lists saved before seq was
 * kept, by its start); NULL when it is no longer in the list. */
static struct episode *find_episode(struct asset_rt *a, uint64_t seq, int64_t started_ms)
{
	int i = episodes_find(a->episodes, a->n_episodes, seq, started_ms);
	return i < 0 ? NULL : &a->episodes[i];
}


static int hook_alert(void *user, const struct alert_event *ev, const char *payload)
{
	struct asset_rt *a = user;
	struct engine *e = a->e;
	struct alert_persist p;
	int64_t id;

	detector_alert_persist(a->det, &p);
	char *persist = alert_persist_to_json(&p);
	if (!persist)
		return -ENOMEM;
	/* The episode counter, the engine state and the outbox row commit
	 * together: after a crash either all of them are there or none. */
	int rc = store_alert_commit(e->store, a->cfg->name, "alert", persist, a->alert_topic,
				    payload, &id);
	free(persist);
	if (rc < 0) {
		LOG_E("alert[%s]: cannot store the %s event: %s", a->cfg->name,
		      ev->kind == ALERT_RAISED ? "raised" : ev->kind == ALERT_CLEARED ? "cleared" : "escalated",
		      pdm_strerror(rc));
		return rc;
	}
	a->alerts++;
	a->last_alert_ms = ev->ts_ms;
	alert_episode_id(a->cfg->name, ev->episode_seq, a->last_alert_id, sizeof(a->last_alert_id));
	if (ev->kind == ALERT_RAISED) {
		episodes_add(a->episodes, &a->n_episodes, EPISODES_MAX,
			     (struct episode){
				     .span = { ev->started_ms, INT64_MAX },
				     .seq = ev->episode_seq,
			     });
		save_episodes(a);
	} else if (ev->kind == ALERT_CLEARED && engine_open_episode(a)) {
		engine_open_episode(a)->span.end_ms = ev->ts_ms;
		save_episodes(a);
	}
	LOG_I("alert[%s]: %s", a->cfg->name, payload);
	pump_outbox(e);
	return 0;
}

/* Scores are history too: pdmctl plots them beside the sensors. */
static void hook_score(void *user, int64_t ts_ms, double score, const float *shares,
		       enum det_state st)
{
	struct asset_rt *a = user;
	struct pdm_sample s = { a->score_id, ts_ms, score, PDM_Q_GOOD };

	store_submit(a->e->store, &s, 1);
	if (st == DET_LEARNING && a->learning && a->relearn_since_ms == 0) {
		int top = alert_top_channel(shares, (int)a->cfg->n_sensors);
		learn_over_feed(&a->live_over, ts_ms, score, top >= 0 ? a->channel_names[top] : NULL);
	}
}

static void hook_state(void *user, enum det_state st, double score, int64_t ts_ms)
{
	struct asset_rt *a = user;

	const bool *miss, *stuck;
	int n = 0, ns = 0;
	(void)detector_missing(a->det, &miss, NULL);
	(void)detector_stuck(a->det, &stuck, NULL, NULL);
	const char **names = malloc((a->cfg->n_sensors + 1) * sizeof(*names));
	const char **frozen = malloc((a->cfg->n_sensors + 1) * sizeof(*frozen));

	for (size_t c = 0; names && frozen && c < a->cfg->n_sensors; c++) {
		if (miss[c])
			names[n++] = a->channel_names[c];
		if (stuck[c])
			frozen[ns++] = a->channel_names[c];
	}
	free(a->state_json);
	a->state_json = alert_format_state_json(a->cfg->name, detector_state_name(st), score,
						detector_model_version(a->det), ts_ms, names, n,
						frozen, ns);
	free(names);
	free(frozen);
	/* A run_when sensor hovering at its limit flips off/normal every
	 * window, for days: every change is published, the log keeps a few. */
	LOG_RL(&a->state_rl, LOG_INFO, "asset[%s]: state %s", a->cfg->name,
	       detector_state_name(st));
	a->state_dirty = !publish_retained(a->e, a->state_topic, a->state_json);
}


/* A sensor of the asset went missing or came back, froze or moves again.
 * Once per change: a missing sensor stays so until it sends again, a frozen
 * one until its value moves. */
static void hook_sensor(void *user, int c, enum det_sensor_event ev, int64_t last_good_ms,
			double value, int64_t now_ms)
{
	struct asset_rt *a = user;
	const char *name = a->channel_names[c];
	char ts[PDM_ISO8601_LEN], ago[32];
	struct pdm_ratelimit *rl = &a->sensor_rl;

	switch (ev) {
	case DET_SENSOR_BACK:
		LOG_RL(rl, LOG_INFO, "asset %s: sensor %s sends good values again", a->cfg->name,
		       name);
		return;
	case DET_SENSOR_MOVING:
		LOG_RL(rl, LOG_INFO, "asset %s: sensor %s moves again (its value had stood at %g "
		       "since %s)", a->cfg->name, name, value,
		       pdm_iso8601(asset_to_host(a, last_good_ms), ts, sizeof(ts)));
		return;
	case DET_SENSOR_STUCK: {
		char limit[32];
		const int64_t *lim = detector_still_limits(a->det);
		pdm_format_approx(now_ms - last_good_ms, ago, sizeof(ago));
		pdm_format_approx(lim[c], limit, sizeof(limit));
		LOG_RL(rl, LOG_WARNING, "asset %s: sensor %s has read exactly %g for %s (since %s), "
		       "longer than its training history allows a running machine (%s): a frozen "
		       "transmitter, or a PLC or gateway repeating its last value. Check it; the "
		       "asset's state names it as stuck until its value moves",
		       a->cfg->name, name, value, ago,
		       pdm_iso8601(asset_to_host(a, last_good_ms), ts, sizeof(ts)), limit);
		return;
	}
	case DET_SENSOR_MISSING:
		break;
	}
	if (last_good_ms == INT64_MIN) {
		pdm_format_duration(a->cfg->no_data_after_ms, ago, sizeof(ago));
		LOG_RL(rl, LOG_WARNING, "asset %s: sensor %s has sent no good value in the %s since "
		       "the asset's data began: windows with its gaps are not scored, and the "
		       "asset's state names it as missing. Check the device, its address or topic "
		       "and what it sends ('pdmd probe' for Modbus)", a->cfg->name, name, ago);
		return;
	}
	const struct cfg_sensor *se = &a->e->cfg->sensors[a->cfg->sensors[c]];
	if (a->own_clock && cfg_sensor_device_time(a->e->cfg, se) &&
	    a->mixed_lag_ms > a->cfg->no_data_after_ms) {
		/* a device clock far behind, not a dead sensor: its samples
		 * come, stamped too long ago for the windows */
		pdm_format_approx(a->mixed_lag_ms, ago, sizeof(ago));
		LOG_RL(rl, LOG_WARNING, "asset %s: sensor %s counts as missing: its device stamps "
		       "its samples about %s behind this host's clock, too far for the windows "
		       "(see the device clock warning). Set that device's clock right, or drop "
		       "the timestamp key so that its samples are stamped on receipt",
		       a->cfg->name, name, ago);
		return;
	}
	pdm_format_approx(now_ms - last_good_ms, ago, sizeof(ago));
	LOG_RL(rl, LOG_WARNING, "asset %s: sensor %s has sent no good value for %s (last at %s): "
	       "windows with its gaps are not scored, and the asset's state names it as "
	       "missing. Check the transmitter, its wiring and the device it reports through",
	       a->cfg->name, name, ago,
	       pdm_iso8601(asset_to_host(a, last_good_ms), ts, sizeof(ts)));
}

/* ---- samples ---------------------------------------------------------------- */

/*
 * The wall clock stamps Modbus samples and MQTT samples without a time field,
 * and it is the windows' "now". Set back by an hour, it would make every new
 * sample older than the last one seen, and the windows would drop them all
 * for an hour; set forward, it would turn the jump into gaps and no_data.
 * So a step restarts the window of every asset with such sensors, and their
 * samples stamped on the old clock are kept from the new windows for a while
 * (they are still stored). Devices that stamp their own samples did not
 * step: their assets carry on untouched.
 */
static void watch_clock(struct engine *e, int64_t wall, int64_t mono)
{
	int64_t step = pdm_clock_watch(&e->clock, wall, mono);

	if (step == 0)
		return;
	e->clock_steps++;
	e->last_step_ms = step;
	for (size_t i = 0; i < e->n_assets; i++) {
		struct asset_rt *a = &e->assets[i];
		/* Schedules keep their elapsed time: set back an hour, the
		 * retrain period would last an hour longer, and relearning too
		 * (alerts off). */
		a->retrain_base_ms += step;
		if (!a->own_clock)
			continue;
		detector_clock_step(a->det, asset_now(a, wall));
		engine_learning_shift(a, step);
	}
	/* Every device's lag seen so far was measured on the old clock. */
	for (size_t i = 0; i < e->cfg->n_sources; i++)
		pdm_lag_shift(&e->srcs[i].lag, step);
	LOG_RL(&e->clock_rl, LOG_WARNING,
	       "daemon: the system clock was set %s by %.3f s; the windows of assets polled "
	       "or stamped on receipt start over (scores resume one window length from now); "
	       "samples stamped before the change are stored but not scored. NTP slewing "
	       "instead of stepping avoids this",
	       step < 0 ? "back" : "forward", (double)(step < 0 ? -step : step) / 1000.0);
}

#define DEVICE_STEP_MS 5000 /* only late samples this long: the devices' clock went back */

/*
 * The same blind spot as a step of the host's clock, for an asset on its
 * devices' clock: a device whose clock is set back (a gateway told to send
 * UTC instead of a local time ahead of it) makes every new sample older
 * than the last one received, for as long as the step. Samples that all
 * come late for DEVICE_STEP_MS, none accepted in between, cannot be a
 * delayed delivery (live ones would be accepted among them): the window
 * starts over on the new clock. Returns true when it did; the caller pushes
 * the sample again.
 */
static bool device_clock_back(struct engine *e, struct asset_rt *a, int rc, int64_t ts,
			      int64_t mono)
{
	if (rc != -ESTALE) {
		if (rc == 0)
			a->late_since_mono = 0;
		return false;
	}
	if (a->late_since_mono == 0) {
		a->late_since_mono = mono;
		return false;
	}
	if (mono - a->late_since_mono < DEVICE_STEP_MS)
		return false;
	a->late_since_mono = 0;
	int64_t back = detector_newest_ts(a->det) - ts;
	detector_clock_step(a->det, ts);
	for (size_t c = 0; c < a->cfg->n_sensors; c++)
		pdm_lag_reset(&channel_clock(e, a, c)->lag);
	LOG_W("asset %s: its devices' clock went back by about %.1f s (their samples have all "
	      "been older than the newest one received for %d s); its window starts over on "
	      "the new clock (scores resume one window length from now)",
	      a->cfg->name, (double)back / 1000.0, DEVICE_STEP_MS / 1000);
	return true;
}

static void drain_ingest(struct engine *e)
{
	size_t n;

	for (;;) {
		/* One reading of the clocks per batch serves the step watch and
		 * the fence. */
		int64_t wall = pdm_wall_ms(), mono = pdm_mono_ms();
		watch_clock(e, wall, mono);
		if ((n = ingest_pop(e->ingest, e->pop_buf, e->pop_cap)) == 0)
			break;
		for (size_t i = 0; i < n; i++) {
			struct pdm_sample *s = &e->pop_buf[i];
			if (s->sensor >= e->cfg->n_sensors)
				continue;
			const struct sensor_map *m = &e->smap[s->sensor];
			struct asset_rt *a = &e->assets[m->asset];
			if (m->own_clock && pdm_clock_fenced(&e->clock, s->ts_ms, wall, mono)) {
				e->fenced++;
			} else {
				bool good = s->quality == PDM_Q_GOOD;
				int rc = detector_push(a->det, m->channel, s->ts_ms, s->value, good);
				if (!a->own_clock && device_clock_back(e, a, rc, s->ts_ms, mono))
					detector_push(a->det, m->channel, s->ts_ms, s->value, good);
			}
			if (!m->own_clock && s->quality != PDM_Q_STALE)
				pdm_lag_add(&e->srcs[m->source].lag, wall - s->ts_ms, mono);
			s->sensor = m->store_id;
		}
		/* Stale markers carry no value; they are not history. */
		size_t k = 0;
		for (size_t i = 0; i < n; i++)
			if (e->pop_buf[i].quality != PDM_Q_STALE)
				e->pop_buf[k++] = e->pop_buf[i];
		if (k > 0)
			store_submit(e->store, e->pop_buf, k);
	}
}

/* ---- device clocks --------------------------------------------------------------- */

#define CLOCK_WARN_MS 5000         /* a device clock this far off is worth a warning */
#define CLOCK_WARN_AFTER_MS 15000  /* ... once it has been off this long */
#define CLOCK_REWARN_MS (600 * 1000)

/*
 * An asset whose samples all carry their devices' time runs on the devices'
 * clock: its windows, no_data and training reach up to the host's time minus
 * the largest lag of its sources, so a gateway stamping local time without a
 * zone (hours behind) or a device whose clock is off is scored as if it were
 * right, instead of every sample arriving after its window was closed.
 *
 * An asset that mixes them with host-stamped samples stays on the host's
 * clock, but its windows wait for the devices' samples as long as they lag
 * (up to MIXED_WAIT_MAX_MS): otherwise a gateway a second behind, or an MQTT
 * path a second slow, leaves a gap in every window and the asset is never
 * scored. The devices' samples sit where their stamps put them, as they do
 * in the stored history the models train on.
 */
static void refresh_clocks(struct engine *e, int64_t mono)
{
	for (size_t i = 0; i < e->cfg->n_sources; i++) {
		struct src_clock *sc = &e->srcs[i];
		int64_t lo, hi;
		if (sc->device && pdm_lag_get(&sc->lag, mono, &lo, &hi) == 0) {
			sc->offset_ms = -lo;
			sc->max_lag_ms = hi;
		}
	}
	for (size_t i = 0; i < e->n_assets; i++) {
		struct asset_rt *a = &e->assets[i];
		int64_t lag = 0;
		size_t src = 0;
		bool any = false;
		for (size_t c = 0; c < a->cfg->n_sensors; c++) {
			const struct src_clock *sc = channel_clock(e, a, c);
			/* a source may stamp some of its values only (a time of their own) */
			bool device = !e->smap[a->cfg->sensors[c]].own_clock;
			if (device && sc->lag.samples > 0 && (!any || sc->max_lag_ms > lag)) {
				lag = sc->max_lag_ms;
				src = e->cfg->sensors[a->cfg->sensors[c]].source;
				any = true;
			}
		}
		if (!a->own_clock) {
			a->clock_lag_ms = lag;
			continue;
		}
		a->mixed_lag_ms = any ? lag : 0;
		a->mixed_lag_src = src;
	}
}

/* Names the assets that read source i: those on its clock, and those that
 * mix it with the host's. */
static void clock_assets(const struct engine *e, size_t src, char *on, size_t on_len, char *mixed,
			 size_t mixed_len)
{
	size_t no = 0, nm = 0;

	on[0] = mixed[0] = '\0';
	for (size_t i = 0; i < e->n_assets; i++) {
		const struct asset_rt *a = &e->assets[i];
		bool reads = false;
		for (size_t c = 0; c < a->cfg->n_sensors && !reads; c++)
			reads = channel_clock(e, a, c) == &e->srcs[src];
		if (!reads)
			continue;
		if (a->own_clock && nm < mixed_len)
			nm += (size_t)snprintf(mixed + nm, mixed_len - nm, "%s%s", nm ? ", " : "",
					       a->cfg->name);
		else if (!a->own_clock && no < on_len)
			no += (size_t)snprintf(on + no, on_len - no, "%s%s", no ? ", " : "",
					       a->cfg->name);
	}
}

/* Longer than the lag estimate remembers a backlog delivered at once after
 * a reconnect. */
#define MIXED_WARN_AFTER_MS (PDM_LAG_BUCKETS * PDM_LAG_BUCKET_MS + 30000)

/*
 * An asset that mixes host- and device-stamped samples, whose devices' ones
 * come later than its windows wait: every window has a gap and none is
 * scored. Said once it has lasted MIXED_WARN_AFTER_MS, again every ten
 * minutes while it lasts.
 */
static void check_mixed_waits(struct engine *e, int64_t mono)
{
	for (size_t i = 0; i < e->n_assets; i++) {
		struct asset_rt *a = &e->assets[i];
		if (!a->own_clock || a->mixed_lag_ms <= MIXED_WAIT_MAX_MS) {
			a->mixed_over_since_mono = 0;
			continue;
		}
		if (a->mixed_over_since_mono == 0)
			a->mixed_over_since_mono = mono;
		if (mono - a->mixed_over_since_mono < MIXED_WARN_AFTER_MS ||
		    (a->mixed_warned_mono && mono - a->mixed_warned_mono < CLOCK_REWARN_MS))
			continue;
		a->mixed_warned_mono = mono;
		char amount[32];
		const char *src = e->cfg->sources[a->mixed_lag_src].name;
		LOG_W("asset %s: the samples of source %s arrive up to %s after the time they carry; "
		      "its windows, which line them up with samples stamped on receipt, wait %d s "
		      "at most, so they have gaps and are not scored. Set the device's clock right "
		      "(NTP), or have them stamped on receipt (no timestamp = in [source %s])",
		      a->cfg->name, src, pdm_format_approx(a->mixed_lag_ms, amount, sizeof(amount)),
		      MIXED_WAIT_MAX_MS / 1000, src);
	}
}

/*
 * A device clock off by more than a few seconds is a fault of its own, and
 * one the user can fix: say which source, by how much, and the likely cause
 * (an offset of whole quarter hours is a time zone). Once it has lasted
 * CLOCK_WARN_AFTER_MS (a backlog delivered after a reconnect is not an
 * offset), again when it changes, at most every ten minutes.
 */
static void check_device_clocks(struct engine *e, int64_t mono)
{
	for (size_t i = 0; i < e->cfg->n_sources; i++) {
		struct src_clock *sc = &e->srcs[i];
		const char *name = e->cfg->sources[i].name;
		if (!sc->device || sc->lag.samples == 0)
			continue;
		int64_t off = sc->offset_ms, aoff = off < 0 ? -off : off;
		if (aoff <= CLOCK_WARN_MS) {
			sc->off_since_mono = 0;
			if (sc->warned && aoff <= CLOCK_WARN_MS / 2) {
				sc->warned = false;
				LOG_I("source %s: its clock agrees with this host's again (%+lld ms)",
				      name, (long long)off);
			}
			continue;
		}
		if (sc->off_since_mono == 0)
			sc->off_since_mono = mono;
		int64_t change = off - sc->warned_offset_ms;
		if (mono - sc->off_since_mono < CLOCK_WARN_AFTER_MS ||
		    (sc->warned && ((change < 0 ? -change : change) <= CLOCK_WARN_MS + aoff / 10 ||
				    mono - sc->warned_mono < CLOCK_REWARN_MS)))
			continue;
		char amount[32], on[256], mixed[256];
		int64_t quarter = 15 * 60 * 1000, rem = aoff % quarter;
		bool zone = aoff >= quarter - 120000 && (rem <= 120000 || rem >= quarter - 120000);
		pdm_format_approx(off, amount, sizeof(amount));
		clock_assets(e, i, on, sizeof(on), mixed, sizeof(mixed));
		LOG_W("source %s: its samples are stamped %s %s this host's clock (%+.1f s)%s%s%s%s%s",
		      name, amount, off < 0 ? "behind" : "ahead of", (double)off / 1000.0,
		      zone ? ", a whole number of quarter hours: likely local time sent without "
			     "its zone (read as UTC); add the zone to the timestamps or send UTC"
			   : ": the device's clock or this host's is wrong; set both from NTP",
		      on[0] ? ". Assets on that clock (their alert and state times too): " : "", on,
		      mixed[0] ? ". Assets that mix them with host-stamped samples see them "
				 "that far off: "
			       : "",
		      mixed);
		sc->warned = true;
		sc->warned_offset_ms = off;
		sc->warned_mono = mono;
	}
	check_mixed_waits(e, mono);
}

#define SPARSE_CHECK_MS 60000

/*
 * Holds learned from how often sensors report (window_cfg's
 * channel_hold_max_ms) are kept in the store as "hold/ASSET": after a
 * restart a sensor that reports once a minute must not cut a gap into
 * every window until nine of its samples came again, and training reads
 * its history with the hold it had. Only holds over the configured one
 * are stored.
 */
static void load_holds(struct asset_rt *a)
{
	char key[300], *v = NULL;
	size_t C = a->cfg->n_sensors;
	int64_t *h = malloc((C + 1) * sizeof(*h));

	snprintf(key, sizeof(key), "hold/%s", a->cfg->name);
	if (h && store_kv_get(a->e->store, key, &v) == 0) {
		detector_hold_parse(v, a->channel_names, (int)C, h);
		for (size_t c = 0; c < C; c++)
			if (h[c] > 0)
				detector_set_hold_ms(a->det, (int)c, h[c]);
	}
	char list[1024] = "";
	size_t n = 0;
	for (size_t c = 0; c < C; c++) {
		a->hold_saved_ms[c] = detector_hold_ms(a->det, (int)c);
		if (a->hold_saved_ms[c] > a->cfg->hold_ms[c] && n < sizeof(list)) {
			char held[32];
			pdm_format_duration(a->hold_saved_ms[c], held, sizeof(held));
			n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%s %s", n ? ", " : "",
					      a->channel_names[c], held);
		}
	}
	if (list[0])
		LOG_I("asset %s: holds learned before, in force until its sensors report otherwise: "
		      "%s", a->cfg->name, list);
	free(v);
	free(h);
}

/* Appends "name HOLD (every SPACING, was HOLD)" to a list of the log's. */
static void hold_item(char *buf, size_t len, const char *name, int64_t spacing, int64_t hold,
		      int64_t was)
{
	size_t n = strlen(buf);
	char every[32], held[32], before[32];

	if (n + 1 >= len)
		return;
	pdm_format_approx(spacing, every, sizeof(every));
	pdm_format_duration(hold, held, sizeof(held));
	pdm_format_duration(was, before, sizeof(before));
	snprintf(buf + n, len - n, "%s%s %s (every %s, was %s)", n ? ", " : "", name, held, every,
		 before);
}

/* Learned holds that changed: said in the log (a change comes with a
 * device's reporting rate, not with every sample: one line per asset and
 * check at most) and saved. */
static void check_holds(struct asset_rt *a)
{
	const struct cfg_asset *ac = a->cfg;
	size_t C = ac->n_sensors;
	bool changed = false;
	char up[1024] = "", down[1024] = "";

	for (size_t c = 0; c < C; c++) {
		int64_t h = detector_hold_ms(a->det, (int)c), was = a->hold_saved_ms[c];
		if (h == was)
			continue;
		changed = true;
		a->hold_saved_ms[c] = h;
		hold_item(h > ac->hold_ms[c] ? up : down, sizeof(up), a->channel_names[c],
			  detector_spacing_ms(a->det, (int)c), h, was);
	}
	if (up[0])
		LOG_I("asset %s: holds learned for sensors that report less often than their value "
		      "was held (a hold in a [sensor] section sets one instead): %s",
		      ac->name, up);
	if (down[0])
		LOG_I("asset %s: sensors that report often again, back to their configured holds: "
		      "%s", ac->name, down);
	if (!changed)
		return;
	char key[300], *val = malloc(C * 160 + 1);
	if (!val)
		return;
	detector_hold_format(val, C * 160 + 1, a->channel_names, (int)C, a->hold_saved_ms,
			     ac->hold_ms);
	snprintf(key, sizeof(key), "hold/%s", ac->name);
	int rc = store_kv_set(a->e->store, key, val);
	if (rc < 0)
		LOG_W("asset %s: cannot save the holds learned for its sensors: %s (they are "
		      "learned again after a restart)", ac->name, pdm_strerror(rc));
	free(val);
}

/*
 * A sensor that reports less often than its asset holds a value (an MQTT
 * device publishing once a second, or only on change, on a grid of 100 ms
 * with hold = 3) leaves a gap in every window: the asset is never trained
 * or scored, and without this it would sit in learning or off forever with
 * nothing in the log. Once a minute per asset: if no window was usable
 * while some were cut, name the sensors whose samples come further apart
 * than their value is held, and the hold that would do. Again every ten
 * minutes while it lasts.
 */
static void check_sparse(struct engine *e, int64_t mono)
{
	for (size_t i = 0; i < e->n_assets; i++) {
		struct asset_rt *a = &e->assets[i];
		const struct cfg_asset *ac = a->cfg;
		if (a->sparse_check_mono != 0 && mono - a->sparse_check_mono < SPARSE_CHECK_MS)
			continue;
		check_holds(a);
		struct window_stats ws;
		detector_window_stats(a->det, &ws);
		uint64_t ok = ws.windows - ws.gaps - ws.off - ws.warmup;
		bool none = a->sparse_check_mono != 0 && ok == a->sparse_ok_mark &&
			    ws.windows > a->sparse_win_mark;
		a->sparse_check_mono = mono;
		a->sparse_ok_mark = ok;
		a->sparse_win_mark = ws.windows;
		if (!none || (a->sparse_warned_mono && mono - a->sparse_warned_mono < CLOCK_REWARN_MS))
			continue;
		int64_t worst;
		char list[512], need[32];
		size_t nsparse = detector_sparse_channels(a->det, list, sizeof(list), &worst);
		if (nsparse == 0)
			continue;
		a->sparse_warned_mono = mono;
		pdm_format_duration(cfg_asset_hold_for(ac, worst), need, sizeof(need));
		LOG_W("asset %s: no window could be scored or trained on in the last minute: %s %s "
		      "%s less often than %s value is held, so every window has a gap. Set hold = %s "
		      "in %s [sensor] %s (how long a value counts), or have the device send more "
		      "often",
		      ac->name, nsparse == 1 ? "sensor" : "sensors", list,
		      nsparse == 1 ? "reports" : "report", nsparse == 1 ? "its" : "their", need,
		      nsparse == 1 ? "its" : "their", nsparse == 1 ? "section" : "sections");
	}
}

/* Takes a request file of pdmctl's: its first line (without the newline,
 * "" if none) into line, and the file deleted, which tells pdmctl it was
 * taken. False when there is none (or it cannot be deleted: taking it
 * again every second would repeat it). */
static bool take_request(const char *path, char *line, size_t len)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	if (!fgets(line, (int)len, f))
		line[0] = '\0';
	fclose(f);
	if (unlink(path) < 0)
		return false;
	line[strcspn(line, "\r\n")] = '\0';
	return true;
}

/* The user says alert episode ASSET-SEQ was normal operation (a state the
 * model had not seen, not a fault): its windows become training data, the
 * older data stays, and the asset retrains now. An open episode is cleared
 * at once and the asset relearns (learning_due) without raising alerts. */
static void mark_normal(struct asset_rt *a, uint64_t seq, int64_t started_ms)
{
	char ts[PDM_ISO8601_LEN];
	struct episode *ep = find_episode(a, seq, started_ms);

	if (!ep) {
		LOG_I("control: alert episode %s-%llu is not among the %d newest of %s, whose data "
		      "training leaves out: its data is training data already",
		      a->cfg->name, (unsigned long long)seq, EPISODES_MAX, a->cfg->name);
		return;
	}
	pdm_iso8601(ep->span.start_ms, ts, sizeof(ts));
	bool open = ep->span.end_ms == INT64_MAX, again = ep->normal;
	ep->normal = true;
	if (ep->seq == 0)
		ep->seq = seq;
	save_episodes(a);
	a->retrain_requested = true;
	/* Raised while the first model's machine is learned (learn_alert_over):
	 * learning goes on, now with the episode's data, and without alerts,
	 * as the state the user vouched for may still be that far over the
	 * threshold until a model has learned it. */
	bool first = a->learning && a->relearn_since_ms == 0;
	if (open && detector_has_model(a->det)) {
		/* The cleared event closes the episode's span (hook_alert). If it
		 * cannot be stored (logged there), relearning still starts, and
		 * after a restart relearning clears the episode again. */
		int64_t now = asset_now(a, pdm_wall_ms());
		if (first)
			(void)detector_relearn_start(a->det, now, 0.0);
		else
			engine_relearn_start(a, ep->span.start_ms, now);
	}
	LOG_I("control: alert episode %s-%llu (raised %s, %s) %s normal operation: its data is "
	      "training data from now on; retraining %s%s",
	      a->cfg->name, (unsigned long long)seq, ts, open ? "still open" : "cleared",
	      again ? "was marked" : "marked", a->cfg->name,
	      !open ? ""
	      : first ? ", which goes on learning its first model's machine without alerts"
		      : ", which relearns without alerts until a model knows the new state");
}

/* pdmctl normal ID creates STATE_DIR/control/normal.ID holding one line
 * "ASSET SEQ STARTED_MS". */
static void check_normal_requests(struct engine *e)
{
	char dir[4096], path[4400];

	snprintf(dir, sizeof(dir), "%s/control", e->cfg->daemon.state_dir);
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, "normal.", 7) != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		char line[256], name[128];
		if (!take_request(path, line, sizeof(line)))
			continue;
		unsigned long long seq;
		long long started;
		if (sscanf(line, "%127s %llu %lld", name, &seq, &started) != 3 || seq == 0) {
			LOG_W("control: %s: unreadable request \"%.60s\"; ignored (pdmctl normal "
			      "writes these)", path, line);
			continue;
		}
		struct asset_rt *a = NULL;
		for (size_t i = 0; i < e->n_assets && !a; i++)
			if (strcmp(e->assets[i].cfg->name, name) == 0)
				a = &e->assets[i];
		if (!a) {
			LOG_W("control: %s: no asset \"%s\" in the configuration; ignored", path, name);
			continue;
		}
		mark_normal(a, seq, started);
	}
	closedir(d);
}

/* pdmctl asks for a retrain by creating STATE_DIR/control/retrain.ASSET,
 * empty or with one line "since_ms N" (pdmctl retrain --since). */
static void check_control(struct engine *e)
{
	char path[4096];

	for (size_t i = 0; i < e->n_assets; i++) {
		struct asset_rt *a = &e->assets[i];
		snprintf(path, sizeof(path), "%s/control/retrain.%s", e->cfg->daemon.state_dir,
			 a->cfg->name);
		char line[128];
		if (!take_request(path, line, sizeof(line)))
			continue;
		long long since = 0;
		char ts[PDM_ISO8601_LEN];
		if (line[0] && (sscanf(line, "since_ms %lld", &since) != 1 || since <= 0)) {
			LOG_W("control: %s: unreadable request \"%.40s\"; retraining %s as usual",
			      path, line, a->cfg->name);
			since = 0;
		}
		a->retrain_requested = true;
		a->retrain_since_ms = since;
		if (since > 0)
			LOG_I("control: retrain of %s on the data since %s requested, all of it "
			      "taken as normal", a->cfg->name, pdm_iso8601(since, ts, sizeof(ts)));
		else
			LOG_I("control: retrain of %s requested", a->cfg->name);
	}
	check_normal_requests(e);
}

/* ---- building and tearing down -------------------------------------------------- */

int engine_check_dims(int kind, int C, int W, char *err, size_t len)
{
	return nn_check_dims((enum nn_kind)kind, C, W, err, len);
}

void engine_mb_point(const struct pdm_config *cfg, size_t q, struct mb_point *p)
{
	const struct cfg_sensor *se = &cfg->sensors[q];

	*p = (struct mb_point){
		.sensor = (uint32_t)q,
		.name = se->name,
		.kind = (enum mb_kind)se->reg_kind,
		.address = (uint16_t)se->address,
		.type = (enum mb_type)se->type,
		.order = (enum mb_order)se->order,
		.scale = se->scale,
		.offset = se->offset,
		.has_min = se->has_min,
		.has_max = se->has_max,
		.valid_min = se->valid_min,
		.valid_max = se->valid_max,
		.has_bit = se->has_bit,
		.bit = (uint8_t)(se->has_bit ? se->bit : 0),
	};
}

void engine_mb_conn_cfg(const struct cfg_source *s, struct mb_conn_cfg *cc)
{
	*cc = (struct mb_conn_cfg){
		.name = s->type == CFG_SRC_MODBUS_RTU ? s->device : s->name,
		.transport = s->type == CFG_SRC_MODBUS_RTU ? MB_RTU : MB_TCP,
		.host = s->host,
		.port = s->port,
		.device = s->device,
		.baud = s->baud,
		.parity = s->parity,
		.data_bits = s->data_bits,
		.stop_bits = s->stop_bits,
		.max_regs = s->max_registers,
		.max_bits = s->max_bits,
		.max_gap = s->max_gap,
		.backoff_min_ms = 500,
		.backoff_max_ms = s->backoff_max_ms,
	};
}

static int start_modbus(struct engine *e)
{
	const struct pdm_config *cfg = e->cfg;
	size_t ns = cfg->n_sources;
	bool *done = calloc(ns ? ns : 1, sizeof(bool));
	struct mb_point *points = calloc(cfg->n_sensors ? cfg->n_sensors : 1, sizeof(*points));
	struct mb_group *groups = calloc(ns ? ns : 1, sizeof(*groups));
	int rc = 0;

	e->mb = calloc(ns ? ns : 1, sizeof(*e->mb));
	e->mb_gname = calloc(ns ? ns : 1, sizeof(*e->mb_gname));
	e->mb_gstart = calloc(ns ? ns : 1, sizeof(*e->mb_gstart));
	size_t n_gname = 0;
	if (!done || !points || !groups || !e->mb || !e->mb_gname || !e->mb_gstart) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < ns; i++) {
		const struct cfg_source *s = &cfg->sources[i];
		if (done[i] || s->type == CFG_SRC_MQTT)
			continue;
		/* One connection per TCP source; one per serial device, shared by
		 * every unit id on that bus. */
		size_t ng = 0, np = 0;
		for (size_t k = i; k < ns; k++) {
			const struct cfg_source *t = &cfg->sources[k];
			if (done[k] || t->type != s->type)
				continue;
			if (k != i && (s->type == CFG_SRC_MODBUS_TCP || strcmp(t->device, s->device) != 0))
				continue;
			done[k] = true;
			size_t first = np;
			for (size_t q = 0; q < cfg->n_sensors; q++) {
				const struct cfg_sensor *se = &cfg->sensors[q];
				if (se->source != k)
					continue;
				engine_mb_point(cfg, q, &points[np++]);
			}
			groups[ng++] = (struct mb_group){
				.name = t->name,
				.unit_id = t->unit,
				.poll_ms = t->poll_ms,
				.timeout_ms = t->timeout_ms,
				.points = points + first,
				.n_points = np - first,
			};
		}
		struct mb_conn_cfg cc;
		engine_mb_conn_cfg(s, &cc);
		cc.groups = groups;
		cc.n_groups = ng;
		struct mb_conn *c = mb_conn_new(&cc, ingest_sample_cb, e->ingest);
		if (!c || mb_conn_start(c) < 0) {
			LOG_E("modbus[%s]: cannot start the poller", cc.name);
			mb_conn_free(c);
			rc = -EIO;
			goto out;
		}
		e->mb_gstart[e->n_mb] = n_gname;
		for (size_t g = 0; g < ng; g++)
			e->mb_gname[n_gname++] = groups[g].name;
		e->mb[e->n_mb++] = c;
	}
out:
	free(done);
	free(points);
	free(groups);
	return rc;
}

static struct mqtt_client *get_mqtt(struct engine *e, const char *uri, const char *suffix)
{
	for (size_t i = 0; i < e->n_mq; i++)
		if (strcmp(e->mq_uri[i], uri) == 0)
			return e->mq[i];
	char id[256];
	bool main_client = e->n_mq == 0;
	snprintf(id, sizeof(id), "%s%s%s", e->cfg->mqtt.client_id, main_client ? "" : "-",
		 main_client ? "" : suffix);
	struct mqtt_client_cfg cc = {
		.uri = uri,
		.client_id = id,
		.username = e->cfg->mqtt.username && e->cfg->mqtt.username[0] ? e->cfg->mqtt.username : NULL,
		.password = e->password,
		.ca_file = e->cfg->mqtt.ca_file && e->cfg->mqtt.ca_file[0] ? e->cfg->mqtt.ca_file : NULL,
		.cert_file = e->cfg->mqtt.cert_file && e->cfg->mqtt.cert_file[0] ? e->cfg->mqtt.cert_file : NULL,
		.key_file = e->cfg->mqtt.key_file && e->cfg->mqtt.key_file[0] ? e->cfg->mqtt.key_file : NULL,
		.keepalive_s = (int)(e->cfg->mqtt.keepalive_ms / 1000),
		.clean_session = false,
		.max_inflight = e->cfg->mqtt.max_inflight,
		.backoff_min_ms = 500,
		.backoff_max_ms = 30000,
		.will_topic = main_client ? e->status_topic : NULL,
		.will_payload = main_client ? e->will_payload : NULL,
		.will_qos = 1,
		.will_retained = true,
	};
	struct mqtt_callbacks cb = {
		.on_connection = main_client ? on_connection : NULL,
		.on_delivered = main_client ? on_delivered : NULL,
	};
	struct mqtt_client *c = mqtt_client_new(&cc, &cb, e);
	if (!c)
		return NULL;
	e->mq = realloc(e->mq, (e->n_mq + 1) * sizeof(*e->mq));
	e->mq_uri = realloc(e->mq_uri, (e->n_mq + 1) * sizeof(*e->mq_uri));
	if (!e->mq || !e->mq_uri)
		abort();
	e->mq[e->n_mq] = c;
	e->mq_uri[e->n_mq] = strdup(uri);
	e->n_mq++;
	return c;
}

static int start_mqtt(struct engine *e)
{
	const struct pdm_config *cfg = e->cfg;

	if (!get_mqtt(e, cfg->mqtt.uri, ""))
		return -EIO;
	for (size_t i = 0; i < cfg->n_sources; i++) {
		const struct cfg_source *s = &cfg->sources[i];
		if (s->type != CFG_SRC_MQTT)
			continue;
		const char *uri = s->uri && s->uri[0] ? s->uri : cfg->mqtt.uri;
		struct mqtt_client *c = get_mqtt(e, uri, s->name);
		if (!c)
			return -EIO;
		size_t nf = 0;
		struct mqtt_field *fields = calloc(cfg->n_sensors ? cfg->n_sensors : 1, sizeof(*fields));
		if (!fields)
			return -ENOMEM;
		for (size_t q = 0; q < cfg->n_sensors; q++) {
			const struct cfg_sensor *se = &cfg->sensors[q];
			if (se->source != i)
				continue;
			fields[nf++] = (struct mqtt_field){
				.path = se->field && se->field[0] ? se->field : se->short_name,
				.quality_path = se->quality_field && se->quality_field[0]
							? se->quality_field
							: NULL,
				.quality_good = se->quality_good && se->quality_good[0]
							? se->quality_good
							: NULL,
				.ts_path = se->timestamp && se->timestamp[0] ? se->timestamp : NULL,
				.sensor = (uint32_t)q,
				.has_min = se->has_min,
				.has_max = se->has_max,
				.valid_min = se->valid_min,
				.valid_max = se->valid_max,
			};
		}
		struct mqtt_sub_cfg sc = {
			.name = s->name,
			.filter = s->topic,
			.qos = s->qos,
			.format = s->format == 1 ? MQTT_FMT_VALUE : MQTT_FMT_JSON,
			.ts_field = s->timestamp && s->timestamp[0] ? s->timestamp : NULL,
			.fields = fields,
			.n_fields = nf,
			.max_payload = (size_t)cfg->mqtt.max_payload,
		};
		int rc = mqtt_client_add_sub(c, &sc, ingest_sample_cb, e->ingest);
		free(fields);
		if (rc < 0) {
			LOG_E("mqtt[%s]: cannot subscribe to %s: %s", s->name, s->topic, pdm_strerror(rc));
			return rc;
		}
	}
	for (size_t i = 0; i < e->n_mq; i++) {
		int rc = mqtt_client_start(e->mq[i]);
		if (rc < 0) {
			LOG_E("mqtt: cannot start the client for %s: %s", e->mq_uri[i], pdm_strerror(rc));
			return rc;
		}
	}
	return 0;
}

/* ---- an episode left open without a model (fault injection, issue 9) ---- */

/* An episode restored from the store is cleared only by scoring. With no
 * usable model (every file corrupt or of another shape) it would stay open
 * for ever, and since training skips windows inside episodes the asset would
 * never train again. So it is closed here with a "cleared" event (same id, in
 * order through the outbox) committed together with the closed alert state;
 * *rp becomes that state. */
static int close_orphan_episode(struct engine *e, struct asset_rt *a, struct alert_persist *rp)
{
	const struct cfg_asset *ac = a->cfg;
	int64_t now = pdm_wall_ms();
	struct alert_event ev = {
		.kind = ALERT_CLEARED,
		.severity = rp->severity,
		.episode_seq = rp->episode_seq,
		.ts_ms = now,
		.started_ms = rp->started_ms,
		.score = rp->peak_score,
		.reason = ALERT_CLEAR_NO_MODEL,
	};
	char *payload = alert_format_json(&ev, ac->name, a->channel_names, a->channel_units, NULL,
					  nn_kind_name((enum nn_kind)ac->model), 0, e->cfg->daemon.host);
	rp->severity = 0;
	rp->over = rp->under = 0;
	char *persist = alert_persist_to_json(rp);
	int64_t id;
	int rc = payload && persist ? store_alert_commit(e->store, ac->name, "alert", persist,
							 a->alert_topic, payload, &id)
				    : -ENOMEM;
	free(payload);
	free(persist);
	if (rc < 0) {
		LOG_E("alert[%s]: cannot close episode %s-%llu: %s", ac->name, ac->name,
		      (unsigned long long)rp->episode_seq, pdm_strerror(rc));
		return rc;
	}
	LOG_W("alert[%s]: no usable model: episode %s-%llu closed (cleared) so that the asset "
	      "can train again", ac->name, ac->name, (unsigned long long)rp->episode_seq);
	if (engine_open_episode(a)) {
		engine_open_episode(a)->span.end_ms = now;
		save_episodes(a);
	}
	return 0;
}

static int setup_assets(struct engine *e)
{
	const struct pdm_config *cfg = e->cfg;

	e->n_assets = cfg->n_assets;
	e->assets = calloc(cfg->n_assets ? cfg->n_assets : 1, sizeof(*e->assets));
	e->smap = calloc(cfg->n_sensors ? cfg->n_sensors : 1, sizeof(*e->smap));
	e->srcs = calloc(cfg->n_sources ? cfg->n_sources : 1, sizeof(*e->srcs));
	if (!e->assets || !e->smap || !e->srcs)
		return -ENOMEM;
	for (size_t i = 0; i < cfg->n_sensors; i++)
		e->smap[i].asset = -1;
	for (size_t i = 0; i < cfg->n_assets; i++) {
		const struct cfg_asset *ac = &cfg->assets[i];
		struct asset_rt *a = &e->assets[i];
		a->e = e;
		a->state_rl = (struct pdm_ratelimit)PDM_RATELIMIT_INIT(600000, 20);
		/* a sensor that flaps at its limit: every change is in the
		 * state, the log keeps a few */
		a->sensor_rl = (struct pdm_ratelimit)PDM_RATELIMIT_INIT(600000, 20);
		a->cfg = ac;
		a->index = i;
		a->windows_needed = (size_t)ac->train_after;
		learn_over_init(&a->live_over, ac->raise_after, ac->clear_after);
		a->channel_names = calloc(ac->n_sensors, sizeof(char *));
		a->channel_units = calloc(ac->n_sensors, sizeof(char *));
		a->store_ids = calloc(ac->n_sensors, sizeof(uint32_t));
		a->hold_saved_ms = calloc(ac->n_sensors, sizeof(int64_t));
		if (!a->channel_names || !a->channel_units || !a->store_ids || !a->hold_saved_ms)
			return -ENOMEM;
		for (size_t c = 0; c < ac->n_sensors; c++) {
			const struct cfg_sensor *se = &cfg->sensors[ac->sensors[c]];
			a->channel_names[c] = se->short_name;
			a->channel_units[c] = se->unit ? se->unit : "";
			int rc = store_sensor_id(e->store, se->name, &a->store_ids[c]);
			if (rc < 0) {
				LOG_E("store: cannot register sensor %s: %s", se->name, pdm_strerror(rc));
				return rc;
			}
			bool own = !cfg_sensor_device_time(cfg, se);
			e->smap[ac->sensors[c]] = (struct sensor_map){ (int)i, (int)c, a->store_ids[c],
								       own, se->source };
			e->srcs[se->source].device |= !own;
			a->own_clock |= own;
		}
		char score_name[300];
		snprintf(score_name, sizeof(score_name), "%s/score", ac->name);
		int rc = store_sensor_id(e->store, score_name, &a->score_id);
		if (rc < 0)
			return rc;
		snprintf(a->state_topic, sizeof(a->state_topic), "%s/state/%s", cfg->mqtt.topic_prefix,
			 ac->name);
		snprintf(a->alert_topic, sizeof(a->alert_topic), "%s/alerts/%s", cfg->mqtt.topic_prefix,
			 ac->name);
		snprintf(a->model_topic, sizeof(a->model_topic), "%s/models/%s", cfg->mqtt.topic_prefix,
			 ac->name);

		struct alert_persist restored, *rp = NULL;
		char key[300], *val = NULL;
		snprintf(key, sizeof(key), "%s/alert", ac->name);
		if (store_kv_get(e->store, key, &val) == 0 && alert_persist_from_json(val, &restored) == 0)
			rp = &restored;
		free(val);
		struct detector_cfg dc = {
			.asset = ac->name,
			.host = cfg->daemon.host,
			.channel_names = a->channel_names,
			.channel_units = a->channel_units,
		};
		engine_fill_window_cfg(ac, &dc.window);
		dc.alert = (struct alert_cfg){ ac->raise_after, ac->clear_after, ac->critical };
		struct detector_hooks hooks = {
			.on_score = hook_score,
			.on_alert = hook_alert,
			.on_state = hook_state,
			.on_sensor = hook_sensor,
		};
		a->det = detector_new(&dc, &hooks, a, rp);
		if (!a->det)
			return -ENOMEM;
		load_episodes(a);
		if (rp && engine_open_episode(a) && engine_open_episode(a)->seq == 0)
			engine_open_episode(a)->seq = rp->episode_seq;

		struct nn_model *m = NULL;
		uint32_t version = 0;
		if (models_load_newest(cfg->daemon.state_dir, ac->name, &m, &version) == 0) {
			struct nn_model_info info;
			nn_model_info(m, &info);
			if (info.C != (int)ac->n_sensors || info.W != ac->window ||
			    (int)info.kind != ac->model) {
				LOG_W("models[%s]: v%u was trained for another shape (%s C=%d W=%d); "
				      "training a new one", ac->name, version, nn_kind_name(info.kind),
				      info.C, info.W);
				nn_model_free(m);
				/* Keep numbering: the next model gets a higher version. */
				detector_set_model(a->det, NULL, version);
			} else {
				LOG_I("models[%s]: loaded v%u", ac->name, version);
				engine_install_model(a, m, version);
			}
		}
		if (!detector_has_model(a->det) && rp && rp->severity > 0) {
			rc = close_orphan_episode(e, a, rp);
			if (rc < 0)
				return rc;
			detector_free(a->det);
			a->det = detector_new(&dc, &hooks, a, rp);
			if (!a->det)
				return -ENOMEM;
			detector_set_model(a->det, NULL, version);
		}
		/* After the model: an episode still open is cleared with it. */
		engine_load_learning(a);
		engine_load_still(a);
		load_holds(a);
		/* Initial retained state: learning until a model exists; with one,
		 * the severity of an episode still open from before a restart (a
		 * crash mid-episode must not publish "normal"). */
		hook_state(a, detector_state(a->det), NAN, pdm_wall_ms());
	}
	return 0;
}

static void teardown(struct engine *e)
{
	/* Order: stop producers, drain what they produced into the store,
	 * then say goodbye on MQTT and close the store last. */
	for (size_t i = 0; i < e->n_mb; i++)
		mb_conn_stop(e->mb[i]);
	for (size_t i = 1; i < e->n_mq; i++)
		mqtt_client_stop(e->mq[i], 1000);
	if (e->ingest && e->store)
		drain_ingest(e);
	if (e->n_mq > 0) {
		if (e->connected) {
			char payload[256];
			snprintf(payload, sizeof(payload), "{\"status\":\"offline\",\"host\":\"%s\"}",
				 e->cfg->daemon.host);
			mqtt_publish(e->mq[0], e->status_topic, payload, strlen(payload), 1, true, 0);
		}
		mqtt_client_stop(e->mq[0], 2000);
	}
	for (size_t i = 0; i < e->n_mb; i++)
		mb_conn_free(e->mb[i]);
	free(e->mb);
	e->mb = NULL;
	free(e->mb_gname);
	e->mb_gname = NULL;
	free(e->mb_gstart);
	e->mb_gstart = NULL;
	e->n_mb = 0;
	for (size_t i = 0; i < e->n_mq; i++) {
		mqtt_client_free(e->mq[i]);
		free(e->mq_uri[i]);
	}
	free(e->mq);
	free(e->mq_uri);
	e->mq = NULL;
	e->mq_uri = NULL;
	e->n_mq = 0;
	e->connected = false;
	for (size_t i = 0; i < e->n_assets; i++) {
		struct asset_rt *a = &e->assets[i];
		detector_free(a->det);
		free(a->channel_names);
		free(a->channel_units);
		free(a->store_ids);
		free(a->hold_saved_ms);
		free(a->state_json);
		free(a->model_json);
	}
	free(e->assets);
	e->assets = NULL;
	e->n_assets = 0;
	free(e->smap);
	e->smap = NULL;
	free(e->srcs);
	e->srcs = NULL;
	if (e->store) {
		store_flush(e->store, 3000);
		store_close(e->store);
		e->store = NULL;
	}
	ingest_free(e->ingest);
	e->ingest = NULL;
	if (e->password) {
		explicit_bzero(e->password, strlen(e->password));
		free(e->password);
		e->password = NULL;
	}
}

static int setup(struct engine *e)
{
	struct pdm_config *cfg = e->cfg;
	char err[512] = "";
	int rc;

	pdm_log_level = cfg->daemon.log_level;
	if (mkdir(cfg->daemon.state_dir, 0750) < 0 && errno != EEXIST) {
		LOG_E("daemon: cannot create state_dir %s: %s", cfg->daemon.state_dir, strerror(errno));
		return -errno;
	}
	snprintf(e->status_topic, sizeof(e->status_topic), "%s/status", cfg->mqtt.topic_prefix);
	snprintf(e->will_payload, sizeof(e->will_payload), "{\"status\":\"offline\",\"host\":\"%s\"}",
		 cfg->daemon.host);
	if (cfg->mqtt.password_file && cfg->mqtt.password_file[0]) {
		char pw[MQTT_PASSWORD_MAX + 1];
		/* It logs each failure itself, with the fix. */
		rc = mqtt_read_password_file(cfg->mqtt.password_file, pw, sizeof(pw));
		if (rc < 0)
			return rc;
		e->password = strdup(pw);
		explicit_bzero(pw, sizeof(pw));
	}
	if (cfg->storage.file && cfg->storage.file[0])
		snprintf(e->store_path, sizeof(e->store_path), "%s", cfg->storage.file);
	else
		snprintf(e->store_path, sizeof(e->store_path), "%s/samples.db", cfg->daemon.state_dir);
	struct store_opts so;
	store_opts_default(&so);
	so.retention_ms = cfg->storage.retention_ms;
	so.max_samples = cfg->storage.max_samples;
	so.synchronous = cfg->storage.synchronous;
	e->store = store_open(e->store_path, &so, err, sizeof(err));
	if (!e->store) {
		LOG_E("store: %s: %s", e->store_path, err);
		return -EIO;
	}
	rc = store_writer_start(e->store);
	if (rc < 0) {
		LOG_E("store: cannot start the writer: %s", pdm_strerror(rc));
		return rc;
	}
	e->ingest = ingest_new((size_t)cfg->storage.queue);
	if (!e->ingest)
		return -ENOMEM;
	rc = setup_assets(e);
	if (rc < 0)
		return rc;
	rc = start_mqtt(e);
	if (rc < 0)
		return rc;
	rc = start_modbus(e);
	if (rc < 0)
		return rc;
	return 0;
}

/*
 * Blocks the signals the main loop reads from its signalfd (and returns
 * them in mask). Called before any thread exists: threads inherit the mask,
 * and a process signal goes to any thread that does not block it, where
 * SIGHUP/SIGTERM would kill the process instead of reaching the signalfd.
 */
static void block_signals(sigset_t *mask)
{
	sigemptyset(mask);
	sigaddset(mask, SIGTERM);
	sigaddset(mask, SIGINT);
	sigaddset(mask, SIGHUP);
	pthread_sigmask(SIG_BLOCK, mask, NULL);
}

struct engine *engine_new(struct pdm_config *cfg)
{
	struct engine *e = calloc(1, sizeof(*e));

	if (!e) {
		cfg_free(cfg);
		return NULL;
	}
	e->cfg = cfg;
	e->epfd = e->sfd = e->tfd = e->ev_fd = -1;
	e->started_ms = pdm_wall_ms();
	e->clock_rl = (struct pdm_ratelimit)PDM_RATELIMIT_INIT(60000, 3);
	e->conn_rl = (struct pdm_ratelimit)PDM_RATELIMIT_INIT(600000, 20);
	sigset_t mask;
	block_signals(&mask);
	pthread_mutex_init(&e->ev_lock, NULL);
	e->pop_cap = 4096;
	e->pop_buf = malloc(e->pop_cap * sizeof(*e->pop_buf));
	e->ev_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	/* Training never competes with itself: one BLAS thread on a small box.
	 * This also stops OpenBLAS's pool, whose threads started before main()
	 * with every signal unblocked. */
	nn_set_threads(1);
	e->trainer = trainer_new();
	if (!e->pop_buf || e->ev_fd < 0 || !e->trainer || setup(e) < 0) {
		engine_free(e);
		return NULL;
	}
	return e;
}

void engine_free(struct engine *e)
{
	if (!e)
		return;
	trainer_free(e->trainer);
	teardown(e);
	if (e->epfd >= 0)
		close(e->epfd);
	if (e->sfd >= 0)
		close(e->sfd);
	if (e->tfd >= 0)
		close(e->tfd);
	if (e->ev_fd >= 0)
		close(e->ev_fd);
	pthread_mutex_destroy(&e->ev_lock);
	free(e->pop_buf);
	cfg_free(e->cfg);
	free(e);
}

/* ---- the loop ------------------------------------------------------------------ */

static int epoll_add(int epfd, int fd, uint32_t tag)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = tag };
	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

enum { FD_SIGNAL, FD_TIMER, FD_INGEST, FD_MQTT, FD_TRAINER };

static void reload(struct engine *e)
{
	notify_reloading();
	LOG_I("daemon: reloading the configuration from %s", e->cfg->dir);
	struct pdm_config *fresh = cfg_load(e->cfg->dir, stderr);
	if (!fresh) {
		LOG_E("daemon: new configuration in %s is invalid; keeping the running one",
		      e->cfg->dir);
		notify_ready();
		return;
	}
	epoll_ctl(e->epfd, EPOLL_CTL_DEL, ingest_fd(e->ingest), NULL);
	trainer_free(e->trainer);
	teardown(e);
	cfg_free(e->cfg);
	e->cfg = fresh;
	e->trainer = trainer_new();
	if (!e->trainer || setup(e) < 0) {
		LOG_E("daemon: the new configuration could not be started; stopping");
		e->stop = true;
		e->exit_code = 1;
		return;
	}
	epoll_ctl(e->epfd, EPOLL_CTL_DEL, trainer_fd(e->trainer), NULL);
	epoll_add(e->epfd, ingest_fd(e->ingest), FD_INGEST);
	epoll_add(e->epfd, trainer_fd(e->trainer), FD_TRAINER);
	LOG_I("daemon: configuration reloaded");
	notify_ready();
}

static void on_signal(struct engine *e)
{
	struct signalfd_siginfo si;

	while (read(e->sfd, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			LOG_I("daemon: %s received, stopping", si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
			e->stop = true;
			break;
		case SIGHUP:
			reload(e);
			break;
		default:
			break;
		}
	}
}

static void on_tick(struct engine *e)
{
	uint64_t expirations;
	ssize_t r = read(e->tfd, &expirations, sizeof(expirations));
	(void)r;
	/* The clock is read after drain_ingest has looked for a step: a
	 * window restarted for a step back must never see the old clock. It
	 * is watched once more, for a step since: an asset on its devices'
	 * clock advanced with the new wall clock but lags measured on the
	 * old one would decide minutes of points it has no samples for yet. */
	drain_ingest(e);
	int64_t now = pdm_wall_ms(), mono = pdm_mono_ms();
	watch_clock(e, now, mono);
	refresh_clocks(e, mono);
	for (size_t i = 0; i < e->n_assets; i++)
		detector_advance(e->assets[i].det, asset_now(&e->assets[i], now));
	if (mono - e->last_control_ms >= 1000) {
		e->last_control_ms = mono;
		check_device_clocks(e, mono);
		check_sparse(e, mono);
		check_control(e);
		engine_schedule_training(e, now);
		flush_retained(e);
		pump_outbox(e);
	}
	if (mono - e->last_status_ms >= STATUS_FILE_MS) {
		e->last_status_ms = mono;
		engine_write_status(e, now);
	}
	/* The watchdog is fed only while the worker threads are alive. */
	if (e->wd_usec > 0 && mono - e->last_wd_ms >= (int64_t)(e->wd_usec / 2000) &&
	    trainer_alive(e->trainer)) {
		e->last_wd_ms = mono;
		notify_watchdog();
	}
}

int engine_run(struct engine *e)
{
	sigset_t mask;

	block_signals(&mask);
	e->sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	e->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	e->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (e->sfd < 0 || e->tfd < 0 || e->epfd < 0) {
		LOG_E("daemon: cannot set up the main loop: %s", strerror(errno));
		return 1;
	}
	struct itimerspec its = { .it_interval = { 0, TICK_MS * 1000000L },
				  .it_value = { 0, TICK_MS * 1000000L } };
	timerfd_settime(e->tfd, 0, &its, NULL);
	if (epoll_add(e->epfd, e->sfd, FD_SIGNAL) < 0 || epoll_add(e->epfd, e->tfd, FD_TIMER) < 0 ||
	    epoll_add(e->epfd, ingest_fd(e->ingest), FD_INGEST) < 0 ||
	    epoll_add(e->epfd, e->ev_fd, FD_MQTT) < 0 ||
	    epoll_add(e->epfd, trainer_fd(e->trainer), FD_TRAINER) < 0) {
		LOG_E("daemon: cannot set up the main loop: %s", strerror(errno));
		return 1;
	}
	e->wd_usec = notify_watchdog_usec();
	notify_ready();
	notify_status("running: %zu assets", e->n_assets);
	LOG_I("daemon: running with %zu assets, %zu sensors, state in %s", e->n_assets,
	      e->cfg->n_sensors, e->cfg->daemon.state_dir);

	while (!e->stop) {
		struct epoll_event evs[8];
		int n = epoll_wait(e->epfd, evs, 8, 1000);
		if (n < 0 && errno != EINTR) {
			LOG_E("daemon: epoll_wait: %s", strerror(errno));
			break;
		}
		for (int i = 0; i < n && !e->stop; i++) {
			switch (evs[i].data.u32) {
			case FD_SIGNAL:
				on_signal(e);
				break;
			case FD_TIMER:
				on_tick(e);
				break;
			case FD_INGEST:
				drain_ingest(e);
				break;
			case FD_MQTT:
				drain_events(e);
				break;
			case FD_TRAINER:
				engine_handle_train_results(e);
				flush_retained(e);
				break;
			}
		}
	}
	notify_stopping();
	LOG_I("daemon: stopping");
	return e->exit_code;
}
