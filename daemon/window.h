/*
 * window.h - resampling of an asset's channels onto a fixed time grid, and
 * the sliding windows that the detector scores and the trainer learns from.
 *
 * Pure logic: no threads, no I/O, no clock. Everything depends only on the
 * sample timestamps and the `now_ms` values the caller passes in, so the
 * daemon's main loop, `pdmd replay` and the trainer cut identical windows
 * from identical data.
 *
 * Grid: points at t = k * interval_ms (k an integer). A channel's value at a
 * point is its last good sample at or before t, if that sample is at most
 * hold * interval_ms old; otherwise the channel has a gap there. Windows are
 * W consecutive points; one is emitted at every point whose index k is a
 * multiple of hop, so window boundaries do not depend on when the daemon
 * started.
 *
 * Training: there is no separate batch cutter. The trainer feeds stored
 * samples, merged in time order, through a fresh window object with
 * window_push() and calls window_advance() with the newest timestamp pushed
 * (every sample or every few hundred samples); that cuts exactly the windows
 * scoring would have cut. Several million samples per second on one core.
 */
#ifndef PDM_WINDOW_H
#define PDM_WINDOW_H

#include <stdbool.h>
#include <stdint.h>

/* Comparison of run_when ("speed > 100"). */
enum window_op {
	WINDOW_OP_GT, /* >  */
	WINDOW_OP_GE, /* >= */
	WINDOW_OP_LT, /* <  */
	WINDOW_OP_LE, /* <= */
	WINDOW_OP_EQ, /* == */
	WINDOW_OP_NE, /* != */
};

/* Parses the operator token (">", ">=", "<", "<=", "==", "!=") into *op.
 * Returns 0 or -EINVAL. */
int window_op_parse(const char *s, enum window_op *op);
/* The operator's text (">=" ...), or "?" for an unknown value. */
const char *window_op_name(enum window_op op);

struct window_cfg {
	int C;               /* channels (the asset's sensors, in order), 1..WINDOW_MAX_C */
	int64_t interval_ms; /* grid step (sample_interval), > 0 */
	int W;               /* window length in grid points, 1..WINDOW_MAX_W */
	int hop;             /* points between emitted windows, 1..WINDOW_MAX_W */
	int hold;            /* a value is held for at most hold intervals, >= 0 */
	/* NULL, or C times in ms: how long each channel's value is held
	 * instead (a sensor that reports rarely or only on change). A point
	 * is final after hold intervals all the same. Copied by window_new. */
	const int64_t *channel_hold_ms;
	/* NULL, or C times in ms: up to how long each channel's hold may be
	 * learned. A device that reports regularly but less often than its
	 * value is held (an MQTT transmitter every 5 s on a 1 s grid) would
	 * leave a gap in every window; once nine of its spacings agree (within
	 * a factor of two), its hold becomes 1.5 times their longest, on the
	 * grid, never under its own hold nor over this. At or under the
	 * channel's hold: not learned. Copied by window_new. */
	const int64_t *channel_hold_max_ms;
	int run_channel;     /* -1, or the channel whose value decides running / off */
	enum window_op run_op;
	double run_value;    /* running iff value(run_channel) run_op run_value */
	int64_t no_data_ms;  /* no good sample on any channel for longer -> no data; <= 0: never */
};

#define WINDOW_MAX_C 1024
#define WINDOW_MAX_W 65536

enum window_status {
	WINDOW_OK,     /* every point running, no gap: score it, train on it */
	WINDOW_GAP,    /* some channel has a gap at some point (last point running) */
	WINDOW_OFF,    /* the machine is off at the window's last point */
	WINDOW_WARMUP, /* running at the end, but off somewhere inside (just restarted) */
};

/* "ok", "gap", "off", "warmup". */
const char *window_status_name(enum window_status st);

struct window;

/* Validates cfg and creates a window with no data. Returns NULL on an
 * invalid cfg (logged, naming the bad field) or out of memory. The caller
 * frees it with window_free(). */
struct window *window_new(const struct window_cfg *cfg);
/* Frees the window; NULL is fine. */
void window_free(struct window *w);

/*
 * Adds one sample of `channel` (0..C-1) taken at ts_ms. good = false (bad or
 * stale quality, a non-finite value or one beyond float range) means "no value": it moves the
 * channel's time forward but is never held, so it can create a gap.
 * Samples of one channel must come in time order; one older than the
 * channel's newest sample is dropped. Returns
 *   0          accepted;
 *   -ESTALE    dropped: older than the channel's newest sample (stats.late_samples);
 *   -ERANGE    dropped: its time is absurd (beyond +-2^61 ms), or its channel
 *              already has 65536 grid points pending beyond the finalized grid
 *              (stats.future_samples; its clock is wrong, or window_advance is
 *              not being called);
 *   -EINVAL    channel out of range.
 * A sample whose grid point is already final (it came after the allowance)
 * is still used as the held value for later points (stats.overdue_samples).
 */
int window_push(struct window *w, int channel, int64_t ts_ms, double value, bool good);

/*
 * Called for each emitted window. x is (C, W) channels-first: x[c * W + j]
 * is channel c at point j, oldest first; a gap is NaN. ts_ms is the time of
 * the window's last grid point. x is only valid during the call. A non-zero
 * return stops window_advance, which returns that value; the window is
 * counted as emitted and the next call continues after it.
 */
typedef int (*window_emit_fn)(const float *x /* (C, W) */, int64_t ts_ms,
			      enum window_status st, void *user);

/*
 * Finalizes grid points and emits every complete, hop-aligned window among
 * them, oldest first. now_ms is data time: the newest sample time pushed
 * (replay, training) or the wall clock minus a latency allowance (daemon).
 * A point t is final once every channel has a sample newer than t, or once
 * now_ms - t > hold * interval_ms (channels without a value then have a
 * gap). A window is complete once all its W points are final and came after
 * the first sample. While every channel is a gap (a silence), windows are
 * emitted until one holds only gaps; after that nothing is emitted until data
 * resumes (stats.silent_windows counts what was skipped), so a week without
 * data costs nothing. Returns 0 or the emit callback's non-zero value.
 */
int window_advance(struct window *w, int64_t now_ms, window_emit_fn emit, void *user);

/*
 * The clock the samples were stamped with stepped (the daemon's wall clock
 * was set back or forward): forgets every pending sample, the grid and the
 * finalized points, and starts over with the next sample, as if the window
 * were new. Without it a clock set back by an hour would make every sample
 * "late" for an hour, and one set forward would finalize its whole jump as
 * gaps. The next window comes W points after data resumes. no_data counts
 * from now_ms (the new clock). Counters are kept (stats.restarts counts).
 */
void window_restart(struct window *w, int64_t now_ms);

/* True if no good sample on any channel has been seen for longer than
 * no_data_ms before now_ms: counting from the newest good sample (even one
 * older than the first window_advance call: a device's clock may be behind
 * the host's) or, before any, from the first sample or window_advance call,
 * whichever came first. False before either, or when no_data_ms <= 0. */
bool window_no_data(const struct window *w, int64_t now_ms);

/*
 * The channels that have had no good sample for longer than after_ms (or
 * their own hold, when that is longer) at now_ms, counting from their newest
 * good sample or, for one that never had any, from the window's first
 * sample or advance: a dead transmitter, a register that keeps failing, a
 * field a gateway stopped sending. Sets missing[c] (C entries) and returns
 * how many; 0 before any data or when after_ms <= 0. The newest good sample
 * of each channel goes to last_good_ms[c] when it is not NULL (TS_NONE,
 * INT64_MIN, for none).
 */
int window_missing(const struct window *w, int64_t now_ms, int64_t after_ms, bool *missing,
		   int64_t *last_good_ms);

/*
 * Frozen sensors. A transmitter that froze (or a PLC or gateway that keeps
 * sending the last value it had) repeats its value to the bit, while a live
 * one moves, if only by its noise. window_still_ms: how long the channel's
 * newest good samples have had exactly the same value, from the first of
 * them to the newest (0 without two; a silence longer than the channel's
 * hold ends such a run); the run's first sample time into *since_ms and the
 * value into *value, each when not NULL. window_longest_still_ms: the
 * longest such run of everything pushed (the trainer reads it over the
 * history it trains on), and into *span_ms, when not NULL, the time from
 * the channel's first good sample to its newest.
 */
int64_t window_still_ms(const struct window *w, int channel, int64_t *since_ms, double *value);
int64_t window_longest_still_ms(const struct window *w, int channel, int64_t *span_ms);
/* Runs longer than cap_ms (> 0) are left out of the longest: a sensor that
 * was stuck (longer than the limit in force) must not teach the next
 * training that standing still that long is normal. 0: no cap. */
void window_set_still_cap(struct window *w, int channel, int64_t cap_ms);

/* How long the channel's value is held, in ms, learned or not (-1 for no
 * such channel). */
int64_t window_hold_ms(const struct window *w, int channel);
/* Sets a learning channel's hold (one learned before, kept across a
 * restart of the daemon; the trainer's window starts from the live one's),
 * within its own hold and its maximum. Returns 0, or -EINVAL for a channel
 * out of range or one that does not learn. */
int window_set_hold_ms(struct window *w, int channel, int64_t hold_ms);

/* How far apart the channel's good samples come, in ms: the median of the
 * last nine spacings (one long silence does not move it), or -1 before
 * nine. */
int64_t window_spacing_ms(const struct window *w, int channel);

/* Newest sample timestamp pushed on any channel (accepted samples only), or
 * INT64_MIN before the first one. Replay uses it as now_ms. */
int64_t window_newest_ts(const struct window *w);

struct window_stats {
	uint64_t windows;         /* windows emitted, any status */
	uint64_t gaps;            /* of which WINDOW_GAP */
	uint64_t off;             /* of which WINDOW_OFF */
	uint64_t warmup;          /* of which WINDOW_WARMUP */
	uint64_t late_samples;    /* dropped: older than the channel's newest sample */
	uint64_t future_samples;  /* dropped: too far ahead of the finalized grid */
	uint64_t overdue_samples; /* arrived after their grid point was final */
	uint64_t points;          /* grid points finalized */
	uint64_t silent_windows;  /* hop points skipped during a silence */
	uint64_t restarts;        /* window_restart calls */
};

/* Copies the counters (cumulative since window_new) into *st. */
void window_get_stats(const struct window *w, struct window_stats *st);

#endif
