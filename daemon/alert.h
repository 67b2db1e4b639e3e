/*
 * alert.h - the alert engine (SPEC section 3): threshold, hysteresis,
 * severity and episodes for one asset, and the JSON payloads it produces.
 *
 * Pure logic: no threads, no I/O, no clock. The daemon and `pdmd replay`
 * feed it one normalized score per scored window (1.0 = the model's
 * threshold) and get back at most one event. Windows that are not scored
 * (gap, off, warm-up, no model) are simply not passed in: the raise and
 * clear counters pause over them, they do not reset. docs/alerts.md has the
 * states and a worked timeline.
 */
#ifndef PDM_ALERT_H
#define PDM_ALERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct alert_cfg {
	int raise_after; /* consecutive scores >= 1.0 that raise, >= 1 */
	int clear_after; /* consecutive scores < 1.0 that clear, >= 1 */
	double critical; /* score at or above which the episode is critical, >= 1.0 */
};

enum alert_severity {
	ALERT_SEV_NONE = 0,
	ALERT_SEV_WARNING = 1,
	ALERT_SEV_CRITICAL = 2,
};

struct alert_contrib {
	int channel; /* index into the asset's sensors */
	float share; /* share of the window's reconstruction error, 0..1 */
	/* The window's mean of the sensor and of the model's reconstruction of
	 * it, in the sensor's units: "4.2 where 1.5 was expected" says which
	 * way it is wrong and by how much. NaN when not known. */
	float value, expected;
};

#define ALERT_TOP 3

/* Everything that must survive a restart. The daemon stores it (as JSON)
 * in the same transaction as each event it goes with; that keeps episode
 * numbers and open episodes right. Storing it after every scored window as
 * well also carries the raise/clear counters across a restart. */
struct alert_persist {
	uint64_t episode_seq; /* number of the last episode raised (0: none yet) */
	int severity;         /* enum alert_severity of the open episode; 0: none open */
	int64_t started_ms;   /* when the open episode was raised */
	double peak_score;    /* highest score of the open episode */
	int over;             /* consecutive scores >= 1.0 while no episode is open */
	int under;            /* consecutive scores < 1.0 while an episode is open */
	struct alert_contrib peak_top[ALERT_TOP]; /* contributors at peak_score */
	int n_peak_top;
};

enum alert_event_kind { ALERT_NONE, ALERT_RAISED, ALERT_ESCALATED, ALERT_CLEARED };

/* Why an episode was cleared: SCADA shows an episode that ended by itself
 * differently from one an engineer dismissed. */
enum alert_clear_reason {
	ALERT_CLEAR_RECOVERED,       /* clear_after windows under the threshold */
	ALERT_CLEAR_TAKEN_AS_NORMAL, /* pdmctl normal: the user took it as normal operation */
	ALERT_CLEAR_NO_MODEL,        /* no usable model left to score it (see the engine) */
};

struct alert_event {
	enum alert_event_kind kind;
	int severity;         /* raised/escalated: the new one; cleared: the episode's last */
	uint64_t episode_seq; /* the episode's number; id = "<asset>-<seq>" */
	int64_t ts_ms;        /* the window that caused the event */
	int64_t started_ms;   /* when the episode was raised */
	double score;         /* that window's score (cleared: the episode's peak) */
	struct alert_contrib top[ALERT_TOP]; /* largest shares first */
	int n_top;
	enum alert_clear_reason reason; /* cleared only */
};

struct alert_engine;

/* Creates an engine. `restored` (or NULL for a fresh asset) is what
 * alert_get_persist() returned before a restart: an open episode stays open
 * and is not raised again. Returns NULL on an invalid cfg or restored state
 * (logged) or out of memory. Free with alert_free(). */
struct alert_engine *alert_new(const struct alert_cfg *cfg, const struct alert_persist *restored);
/* Frees the engine; NULL is fine. */
void alert_free(struct alert_engine *a);

/* Replaces the thresholds (config reload); counters and any open episode
 * carry on. Returns 0 or -EINVAL (the old cfg stays). */
int alert_reconfigure(struct alert_engine *a, const struct alert_cfg *cfg);

/*
 * One scored window: ts_ms its time, score normalized (1.0 = threshold),
 * shares (C) each channel's share of the error, value and expected (C, or
 * NULL when not known) each channel's window mean and the model's
 * reconstruction of it (nn_score_means). Fills *ev (kind ALERT_NONE
 * if nothing happened) and returns 0; -EINVAL on bad arguments or
 * -PDM_ENONFINITE for a NaN/infinite score, leaving the state unchanged.
 * Rules: raise after raise_after consecutive scores >= 1.0 (critical if that
 * score >= critical, else warning); a warning episode escalates once, at the
 * first score >= critical; clear after clear_after consecutive scores < 1.0.
 * On ALERT_RAISED episode_seq becomes the persisted seq + 1: the caller must
 * store alert_get_persist() with the event.
 * Contributors: raised and escalated carry that window's top 3 shares;
 * cleared carries the peak window's, with the peak score, since that is
 * what explains the episode.
 */
int alert_step(struct alert_engine *a, int64_t ts_ms, double score, const float *shares /* (C) */,
	       const float *value, const float *expected, int C, struct alert_event *ev);

/* The channel with the largest share, ranked as contributors are (ties to
 * the lower channel; NaN and non-positive shares explain nothing), or -1
 * when none does. */
int alert_top_channel(const float *shares, int C);

/* While no episode is open, only scores >= level count toward raising one
 * (level < 1 or NaN: 1.0, the rule above); an open episode still clears
 * under 1.0. The first model's learning raises only on scores far over its
 * threshold (learn.h). A new level starts the raise count over. */
void alert_set_raise_at(struct alert_engine *a, double level);

/* Ends the open episode now, whatever the scores (the user took it as
 * normal operation): *ev is its cleared event, as alert_step makes it but
 * with reason ALERT_CLEAR_TAKEN_AS_NORMAL, or ALERT_NONE when none is open; the raise counter starts over either way.
 * Returns 0 or -EINVAL. */
int alert_close(struct alert_engine *a, int64_t ts_ms, struct alert_event *ev);

/* Copies the engine's state into *p (to store with the event). */
void alert_get_persist(const struct alert_engine *a, struct alert_persist *p);

/* Current severity (enum alert_severity): the daemon's state is "normal",
 * "warning" or "critical" from it. */
int alert_severity(const struct alert_engine *a);

/*
 * The asset's published state (docs/alerts.md section 2), first match wins:
 * "no_data" (window_no_data), "off" (the last window was WINDOW_OFF),
 * "learning" (no model yet), "critical" / "warning" (open episode's
 * severity), else "normal". Daemon and replay both use it so they agree.
 * Returns a static string.
 */
const char *alert_asset_state(bool no_data, bool off, bool has_model, int severity);

/* "none", "warning", "critical". */
const char *alert_severity_name(int severity);
/* "recovered", "taken_as_normal", "no_model". */
const char *alert_clear_reason_name(enum alert_clear_reason r);
/* "none", "raised", "escalated", "cleared". */
const char *alert_event_name(enum alert_event_kind kind);

/* Persist struct as JSON text (malloc'd, caller frees) or NULL on OOM. */
char *alert_persist_to_json(const struct alert_persist *p);
/* Parses what alert_persist_to_json wrote into *p. Unknown keys are ignored
 * (a newer version may add some). Returns 0, or -PDM_ECORRUPT if the text
 * is not such an object or a value is out of range (*p then untouched). */
int alert_persist_from_json(const char *s, struct alert_persist *p);

/* The episode id of the payloads, "<asset>-<seq>", into buf; snprintf's
 * result (>= len: it did not fit). */
int alert_episode_id(const char *asset, uint64_t seq, char *buf, size_t len);

struct cJSON;

/* The open episode of p, if any, as obj's "episode": {"id","severity",
 * "started","peak_score","contributors"}, the last as in the payload (for
 * status.json). Nothing added when none is open. 0, -EINVAL or -ENOMEM. */
int alert_add_open_episode(struct cJSON *obj, const char *asset, const struct alert_persist *p,
			   const char *const *channel_names, const char *const *channel_units);

/*
 * The alert payload of SPEC section 3, one JSON object:
 * {"schema":1,"id":"<asset>-<seq>","asset","event","severity","ts","started",
 *  "score","threshold":1.0,"model":{"kind","version"},
 *  "contributors":[{"sensor","share","value","expected","unit"}...],"host"}
 * and, for cleared only, "reason": "recovered", "taken_as_normal" or
 * "no_model" (alert_clear_reason_name).
 * ts and started in ISO-8601 UTC with milliseconds; score and shares rounded
 * to 3 decimals, value and expected to 5 significant digits (each left out
 * when not known, unit when empty or with neither). channel_names maps
 * ev->top[i].channel to sensor names (it must cover every channel named
 * there), channel_units (or NULL) to their units. A contributor whose
 * channel is flagged in stuck (C flags, or NULL) gets "stuck": true: its
 * transmitter froze (detector_stuck), and it may be what is wrong. host may
 * be NULL (then null). Returns malloc'd text, or NULL on bad arguments or OOM.
 */
char *alert_format_json(const struct alert_event *ev, const char *asset,
			const char *const *channel_names, const char *const *channel_units,
			const bool *stuck, const char *model_kind, uint32_t model_version,
			const char *host);

/*
 * The retained state payload:
 * {"asset","state","score","model_version","ts"}; state is one of learning,
 * normal, warning, critical, off, no_data; score NaN -> null, else rounded
 * to 3 decimals; model_version 0 (no model yet) -> null. When some of the
 * asset's sensors are missing (n_missing > 0: missing names them), a
 * "missing" array of their names follows, and a "stuck" array of those
 * that froze (n_stuck > 0): which transmitter to check. Malloc'd, or NULL.
 */
char *alert_format_state_json(const char *asset, const char *state, double score,
			      uint32_t model_version, int64_t ts_ms,
			      const char *const *missing, int n_missing,
			      const char *const *stuck, int n_stuck);

#endif
