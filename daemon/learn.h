/*
 * learn.h - when an asset that is learning retrains, and when it has learned.
 *
 * An asset learns, scored but raising no alert, in two cases: after its
 * first model (a model of train_after windows has seen minutes of the
 * machine, and a machine still warming, or moving between its operating
 * points, would look faulty to it), and after the user took an open
 * episode as normal operation (pdmctl normal: a state the model has not
 * seen, often still moving). One rule serves both, so the daemon and
 * `pdmd replay` take the same decisions: the asset retrains each time
 * learning's age has grown by half since the last training, and it has learned
 * once a model installed while learning scores under its threshold (never
 * raise_after windows over it) for half as long as learning had lasted
 * when the model came, counting only the time it scored: a machine stopped
 * or a source silent proves nothing. Past a deadline alerts are on again whatever the
 * scores: what keeps moving that long may be a fault after all.
 *
 * The first model's learning also lasts at least a given time from its data's
 * start: a plant's conditions come round once a day (the ambient, the
 * shifts), and a model quiet through a morning still alarms on the warmer
 * afternoon it has never seen.
 *
 * Pure: times are the caller's (the asset's clock in the daemon, data time
 * in replay).
 */
#ifndef PDM_LEARN_H
#define PDM_LEARN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Between two trainings, and the least quiet time that counts as learned. */
#define LEARN_MIN_MS 10000LL

struct learn {
	int64_t mark_ms;  /* learning's age counts from here */
	int64_t until_ms; /* alerts are on again then, whatever the scores */
	int64_t fit_ms;   /* the last training while learning; 0: none yet */
	int64_t model_ms; /* the last model installed while learning; 0: none yet */
	int64_t min_ms;   /* not learned before this, however quiet */
};

enum learn_step {
	LEARN_WAIT,    /* go on scoring */
	LEARN_RETRAIN, /* train now (the caller then calls learn_fitted) */
	LEARN_DONE,    /* learned: alerts are on again */
	LEARN_EXPIRED, /* the deadline passed: alerts are on again */
};

/* Learning from mark_ms for at most max_ms. */
void learn_start(struct learn *l, int64_t mark_ms, int64_t max_ms);

/* Learning after a first model installed at t, trained on span_ms of data
 * (train_after windows on the grid): its age counts from the data's start;
 * it lasts at least min_ms from there, and ends max_ms after the model at
 * the latest (or at that minimum, when it is later). */
void learn_start_first(struct learn *l, int64_t t, int64_t span_ms, int64_t max_ms,
		       int64_t min_ms);

/* Not learned before min_ms from the mark; the deadline moves there when it
 * came sooner. */
void learn_set_min(struct learn *l, int64_t min_ms);

/* The scored time a quiet model installed while learning needs to have
 * learned: half of what learning had seen when it came, LEARN_MIN_MS at
 * least. */
int64_t learn_quiet_needed(const struct learn *l);

/* What to do at time t. The current model, installed while learning, has
 * scored scored_ms of running (scored windows x hop x sample interval);
 * loud: raise_after consecutive windows of it were over its threshold. */
enum learn_step learn_step(const struct learn *l, int64_t t, bool loud, int64_t scored_ms);

/* A training started at t / a model was installed at t. */
void learn_fitted(struct learn *l, int64_t t);
void learn_installed(struct learn *l, int64_t t);

/* The clock the times are on stepped by step ms: elapsed times are kept. */
void learn_shift(struct learn *l, int64_t step);

/*
 * What learning took as normal. A fault that comes while the first model's
 * machine is being learned becomes normal to the models trained after it;
 * no rule can tell it from an operating point the first model had not seen,
 * so the user is told instead: the stretches of learning's scores (each over
 * the threshold of the model then) that the alert engine would have raised
 * and cleared (raise_after scores >= 1.0 in a row, clear_after under it),
 * how many, how long in all, and the highest three.
 */
#define LEARN_OVER_SHOWN 3

struct learn_stretch {
	int64_t start_ms, end_ms; /* the first and last score over the threshold */
	double peak;
	char sensor[64]; /* the largest share at the peak; "" when not known */
};

struct learn_over {
	int raise_after, clear_after;
	int over, under;       /* consecutive scores over / under */
	int64_t first_over_ms; /* of the current run over */
	bool open;
	struct learn_stretch cur;
	uint64_t n;       /* stretches in all */
	int64_t total_ms; /* their time in all, first to last score over */
	size_t shown;     /* of top: the highest peaks, highest first */
	struct learn_stretch top[LEARN_OVER_SHOWN];
};

void learn_over_init(struct learn_over *o, int raise_after, int clear_after);
/* One score (1.0 = the threshold of the model that scored it), in time
 * order, and the sensor with the largest share of its error (NULL: not
 * known, as for scores read back from the store). */
void learn_over_feed(struct learn_over *o, int64_t ts_ms, double score, const char *sensor);
/* Names the stretches of o whose sensor is not known from those of known,
 * the same stretches seen live (same start): the daemon reads the scores
 * back from the store, which keeps no shares, and saw them as they came
 * unless it restarted meanwhile. */
void learn_over_name(struct learn_over *o, const struct learn_over *known);
/* The scores ended: a stretch still open counts up to its last score over. */
void learn_over_end(struct learn_over *o);
/* The stored text ("N TOTAL_MS START:END:PEAK[:SENSOR] ...") and back; parse returns
 * 0 or -EINVAL (o then holds no stretch). */
int learn_over_format(const struct learn_over *o, char *buf, size_t len);
/* "2 times (5.5 min in all); the highest: 2026-12-05T10:02:11.200Z for
 * 4.0 min (peak 3.21, vibration_rms first); ..." for the log and pdmctl. */
void learn_over_describe(const struct learn_over *o, char *buf, size_t len);
int learn_over_parse(const char *text, struct learn_over *o);

#endif
