/*
 * detector.h - one asset's scoring pipeline: window -> model -> alert engine.
 *
 * The daemon's main loop and `pdmd replay` both drive this module, so a
 * backtest runs exactly the code the service runs. It is pure: no threads,
 * no I/O; what happens to windows, scores, alerts and state changes is up
 * to the caller's hooks. Time is whatever the caller says it is (wall
 * clock in the daemon, data time in replay).
 */
#ifndef PDM_DETECTOR_H
#define PDM_DETECTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alert.h"
#include "window.h"

struct nn_model;

enum det_state {
	DET_LEARNING,
	DET_NORMAL,
	DET_WARNING,
	DET_CRITICAL,
	DET_OFF,
	DET_NO_DATA,
};

/* "learning", "normal", "warning", "critical", "off", "no_data" (SPEC section 3). */
const char *detector_state_name(enum det_state st);

struct detector_cfg {
	const char *asset;
	const char *host;                  /* for alert payloads */
	const char *const *channel_names;  /* C short sensor names */
	const char *const *channel_units;  /* C units ("" for none), or NULL */
	struct window_cfg window;
	struct alert_cfg alert;
};

enum det_sensor_event {
	DET_SENSOR_MISSING,
	DET_SENSOR_BACK,
	DET_SENSOR_STUCK,
	DET_SENSOR_MOVING,
};

struct detector_hooks {
	/* Every window cut, scored or not; in_episode says whether an alert
	 * episode is open (training excludes those windows). May be NULL. */
	void (*on_window)(void *user, const float *x, int64_t ts_ms, enum window_status st,
			  bool in_episode);
	/* Every scored window; shares has C entries. May be NULL. */
	void (*on_score)(void *user, int64_t ts_ms, double score, const float *shares,
			 enum det_state st);
	/* An alert event and its JSON payload (SPEC section 3). The episode
	 * counter has advanced already on `raised`; the hook persists it. */
	int (*on_alert)(void *user, const struct alert_event *ev, const char *payload);
	/* The asset's state changed (score is NaN when there is none), or the
	 * sensors it misses did (detector_missing). */
	void (*on_state)(void *user, enum det_state st, double score, int64_t ts_ms);
	/* Channel c turned missing (no good sample for the no-data time, see
	 * detector_missing: since_ms is its newest good sample, INT64_MIN for
	 * none) or came back; or it froze (detector_stuck: its value has stood
	 * exactly at `value` since since_ms) or moves again. now_ms is the time
	 * of the check. May be NULL. */
	void (*on_sensor)(void *user, int c, enum det_sensor_event ev, int64_t since_ms,
			  double value, int64_t now_ms);
};

/* Copies what it needs from cfg except channel_names/units/asset/host, which must
 * outlive the detector. restored: alert state from a previous run or NULL. */
struct detector *detector_new(const struct detector_cfg *cfg, const struct detector_hooks *hooks,
			      void *user, const struct alert_persist *restored);
void detector_free(struct detector *d);

/* A sample for channel c (0-based, the asset's sensor order). Returns
 * window_push's result (-ESTALE: older than the channel's newest sample). */
int detector_push(struct detector *d, int channel, int64_t ts_ms, double value, bool good);

/* The newest sample time pushed on any channel; INT64_MIN before any. */
int64_t detector_newest_ts(const struct detector *d);

/* The channels whose good samples come further apart than their value is
 * held (every window has a gap then): how many, "flow (every 1.0 s, held
 * 0.3 s), ..." into list, and the widest spacing into *worst_ms. */
size_t detector_sparse_channels(const struct detector *d, char *list, size_t len,
				int64_t *worst_ms);

/* Each channel's hold in force, in ms (window_hold_ms: learned for a
 * sensor that reports regularly less often than its own hold), and one
 * learned before set again (window_set_hold_ms; ignored for a channel that
 * does not learn). */
int64_t detector_hold_ms(const struct detector *d, int channel);
void detector_set_hold_ms(struct detector *d, int channel, int64_t hold_ms);
/* How far apart the channel's good samples come (window_spacing_ms). */
int64_t detector_spacing_ms(const struct detector *d, int channel);
/* The stored text of learned holds, "name=ms name=ms" for the channels
 * whose hold is over base_ms (the configured one); parse sets hold_ms[c]
 * (C entries) to the stored value or -1. */
int detector_hold_format(char *buf, size_t len, const char *const *names, int C,
			 const int64_t *hold_ms, const int64_t *base_ms);
void detector_hold_parse(const char *text, const char *const *names, int C, int64_t *hold_ms);

/* Cuts every window complete at now_ms, scores it when a model is set,
 * runs the alert engine and the hooks. Returns 0 or the first hook error.
 *
 * A sensor without a good sample for the no-data time (window_missing) is
 * missing. The asset's state becomes no_data when every sensor is silent
 * that long, and also when a missing sensor keeps its windows from being
 * scored (they have gaps, and the machine runs, or its run_when sensor is
 * the one missing): a dead transmitter must not leave SCADA reading the
 * last "normal" for ever. */
int detector_advance(struct detector *d, int64_t now_ms);

/* The channels missing at the last detector_advance: how many; C flags into
 * *missing and each channel's newest good sample time (INT64_MIN: none) into
 * *last_good_ms, each when not NULL (valid until the next advance). */
int detector_missing(const struct detector *d, const bool **missing,
		     const int64_t **last_good_ms);

/*
 * Frozen sensors. A channel whose good samples have had exactly the same
 * value (window_still_ms) for longer than its limit, counting only the time
 * the machine ran, is stuck: the state payload names it, and on_sensor says
 * so once each way. Its windows are scored as before (a frozen value the
 * process has left behind shows in the score and its shares too).
 * detector_still_limit turns what the training history showed, the longest
 * still run and the span of the samples, into a channel's limit: 0 (never
 * stuck) for a sensor that stood still for half of its history or more (a
 * set point, a status word), else three times its longest run, a minute at
 * least. detector_set_still_limits takes C limits (NULL: none).
 */
int64_t detector_still_limit(int64_t longest_ms, int64_t span_ms);
/* A sensor's limit: its stuck_after when set (>= 0; 0: never), else
 * detector_still_limit of its measurement, -1 when it has none (longest < 0). */
int64_t detector_sensor_still_limit(int64_t stuck_after_ms, int64_t longest_ms, int64_t span_ms);
/* The measurement as the store keeps it: "NAME=LONGEST_MS:SPAN_MS ..." for the
 * C channels named names (snprintf's return), and back: -1 in longest and span
 * for a channel the text does not name (a sensor added since). */
int detector_still_format(char *buf, size_t len, const char *const *names, int C,
			  const int64_t *longest, const int64_t *span);
void detector_still_parse(const char *text, const char *const *names, int C, int64_t *longest,
			  int64_t *span);
void detector_set_still_limits(struct detector *d, const int64_t *limit_ms);
/* The channels stuck at the last advance: how many; C flags into *stuck, the
 * start of each one's still run into *since_ms and its value into *value,
 * each when not NULL (valid until the next advance). */
int detector_stuck(const struct detector *d, const bool **stuck, const int64_t **since_ms,
		   const double **value);
/* The limits set (C entries, 0: not checked). */
const int64_t *detector_still_limits(const struct detector *d);
/* detector_sensor_still_limit of everything pushed so far
 * (window_longest_still_ms) with the channels' stuck_after (C entries): what
 * `pdmd replay` sets when it trains, as the trainer measures history. */
void detector_still_limits_from_data(struct detector *d, const int64_t *stuck_after_ms);

/* The clock the samples are stamped with stepped to now_ms: the window
 * starts over (window_restart); the model and any open episode stay. */
void detector_clock_step(struct detector *d, int64_t now_ms);

/* The window's counters (late samples, restarts...). */
void detector_window_stats(const struct detector *d, struct window_stats *st);

/* Installs a model (the detector takes ownership; the previous one is freed).
 * kind is the model's kind name for alert payloads. */
void detector_set_model(struct detector *d, struct nn_model *m, uint32_t version);
/*
 * Relearning: the user took the open episode as normal operation (a state
 * the model has not seen). The episode is cleared now (its cleared event
 * goes through on_alert), and until detector_relearn_end the windows are
 * scored but raise nothing: the state is "learning" and they are trainable,
 * so the caller can retrain until a model knows the new state. Returns 0
 * or the on_alert hook's error.
 * With raise_at > 0 (the first model's learning, which has no episode to
 * take as normal) an open episode goes on, and scores at least raise_at
 * times the threshold still raise one (alert_set_raise_at): a state that
 * far from the model's data is more likely a fault than an operating
 * point, and an episode keeps its windows out of learning's trainings.
 * Called again with 0 (the user took such an episode as normal), it is
 * cleared and learning goes on without alerts.
 */
int detector_relearn_start(struct detector *d, int64_t ts_ms, double raise_at);
void detector_relearn_end(struct detector *d);
bool detector_relearning(const struct detector *d);
/* While relearning: raise_after consecutive scores >= 1.0 came since the
 * model was installed (it would have raised an alert). */
bool detector_relearn_loud(const struct detector *d);
/* While relearning: windows scored since the model was installed (none
 * while the machine is off or silent). */
uint64_t detector_relearn_scored(const struct detector *d);

uint32_t detector_model_version(const struct detector *d);
bool detector_has_model(const struct detector *d);

enum det_state detector_state(const struct detector *d);
double detector_last_score(const struct detector *d);
bool detector_in_episode(const struct detector *d);
/* Windows cut so far that a model may train on (running, complete, no episode). */
uint64_t detector_trainable_windows(const struct detector *d);
void detector_alert_persist(const struct detector *d, struct alert_persist *p);

#endif
