/*
 * window.c - per-asset resampling onto a fixed grid and sliding windows.
 *
 * Design: samples are not kept. Each channel keeps, per grid cell
 * (t(k-1), t(k)] beyond the finalization frontier (next_k), only the last
 * good sample in it, in a small FIFO; when point k is finalized the cell's
 * sample becomes the channel's held value, whose age decides value or gap.
 * That makes push O(1), finalization O(C) per point, and memory bounded: the
 * FIFOs stay a few cells long in normal operation and are capped, plus a
 * ring of the last W finalized rows. Windows are built from the row ring
 * channels-first only when one is emitted. Silences (every channel a gap)
 * are skipped in one step, so a week-long hole in the data costs nothing.
 *
 * Everything is a function of sample timestamps and the caller's now_ms;
 * nothing reads a clock, so replay and training reproduce the daemon's
 * windows exactly.
 */
#include "window.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define TS_NONE INT64_MIN

/* Pending cells per channel: the FIFO starts small and doubles up to this
 * cap (a channel that many grid points ahead of the others is broken). */
#define QUEUE_MIN 16
#define QUEUE_MAX 65536

struct wcell {
	int64_t k;  /* grid point whose cell (t(k-1), t(k)] holds ts */
	int64_t ts; /* last good sample in that cell */
	double val;
};

#define SPACINGS 9

struct wchan {
	int64_t last_ts; /* newest sample of any quality */
	int64_t held_ts; /* last good sample at or before the last final point */
	double held_val;
	int64_t hold_ms; /* how long its value is held */
	int64_t base_hold_ms, max_hold_ms; /* hold_ms is learned within these */
	/* How far apart good samples come (the last SPACINGS, their median: one
	 * long silence, a stop, does not count): a sensor that reports less
	 * often than its value is held leaves every window with a gap, and
	 * says so through window_spacing_ms. */
	int64_t good_ts;
	int64_t spacing[SPACINGS];
	uint32_t spacings;
	struct wcell *q; /* FIFO of cells with a good sample, k >= next_k, k ascending */
	uint32_t cap, head, n;
	/* The run of good samples with exactly the same value that the newest
	 * one ends (a frozen transmitter repeats its value to the bit), from
	 * the first sample of the run to the last; the longest ever seen. */
	double run_val;
	int64_t run_start, run_last; /* TS_NONE: no run */
	int64_t longest_still_ms;    /* of the runs ended, up to still_cap_ms */
	int64_t still_cap_ms;        /* > 0: longer runs are not counted */
	int64_t first_good_ts;       /* the first good sample ever */
};

struct window {
	struct window_cfg cfg;
	int64_t hold_ms;
	struct wchan *ch;    /* (C) */
	float *rows;         /* (W, C) ring of final points, slot = k mod W */
	float *x;            /* (C, W) emission buffer */

	bool started;
	int64_t next_k;      /* first grid point not yet final */
	int64_t epoch_ms;    /* first sample or first advance; TS_NONE before */
	int64_t newest_ts;   /* newest accepted sample, any channel, any quality */
	int64_t newest_good; /* newest good sample on any channel */
	int64_t n_final;     /* points finalized since the first sample */
	int64_t last_gap_k;  /* newest final point with a gap on some channel */
	int64_t last_off_k;  /* newest final point where the machine was off */
	int64_t silent_run;  /* consecutive final points that were gaps on every channel */
	struct window_stats st;
};

static const char *const op_names[] = {
	[WINDOW_OP_GT] = ">", [WINDOW_OP_GE] = ">=", [WINDOW_OP_LT] = "<",
	[WINDOW_OP_LE] = "<=", [WINDOW_OP_EQ] = "==", [WINDOW_OP_NE] = "!=",
};

int window_op_parse(const char *s, enum window_op *op)
{
	if (!s || !op)
		return -EINVAL;
	for (int i = 0; i < (int)(sizeof(op_names) / sizeof(op_names[0])); i++) {
		if (strcmp(s, op_names[i]) == 0) {
			*op = (enum window_op)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *window_op_name(enum window_op op)
{
	if ((int)op < 0 || (int)op >= (int)(sizeof(op_names) / sizeof(op_names[0])))
		return "?";
	return op_names[op];
}

const char *window_status_name(enum window_status st)
{
	switch (st) {
	case WINDOW_OK:
		return "ok";
	case WINDOW_GAP:
		return "gap";
	case WINDOW_OFF:
		return "off";
	case WINDOW_WARMUP:
		return "warmup";
	}
	return "?";
}

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;

	if ((a % b != 0) && ((a < 0) != (b < 0)))
		q--;
	return q;
}

static int64_t floor_mod(int64_t a, int64_t b)
{
	int64_t r = a % b;

	return r < 0 ? r + b : r;
}

/* Index of the cell (t(k-1), t(k)] that holds ts: the first grid point at
 * or after ts. */
static int64_t cell_of(const struct window *w, int64_t ts)
{
	return -floor_div(-ts, w->cfg.interval_ms);
}

static bool run_ok(enum window_op op, double v, double ref)
{
	switch (op) {
	case WINDOW_OP_GT:
		return v > ref;
	case WINDOW_OP_GE:
		return v >= ref;
	case WINDOW_OP_LT:
		return v < ref;
	case WINDOW_OP_LE:
		return v <= ref;
	case WINDOW_OP_EQ:
		return v == ref;
	case WINDOW_OP_NE:
		return v != ref;
	}
	return false;
}

static int cfg_check(const struct window_cfg *c)
{
	if (c->C < 1 || c->C > WINDOW_MAX_C) {
		LOG_E("window: %d channels, expected 1..%d", c->C, WINDOW_MAX_C);
		return -EINVAL;
	}
	/* Bounded so that hold * interval and grid arithmetic on epoch
	 * milliseconds cannot overflow. */
	if (c->interval_ms < 1 || c->interval_ms > 86400000LL * 365) {
		LOG_E("window: sample interval %lld ms, expected 1 ms..1 year",
		      (long long)c->interval_ms);
		return -EINVAL;
	}
	if (c->W < 1 || c->W > WINDOW_MAX_W) {
		LOG_E("window: window of %d points, expected 1..%d", c->W, WINDOW_MAX_W);
		return -EINVAL;
	}
	if (c->hop < 1 || c->hop > WINDOW_MAX_W) {
		LOG_E("window: hop of %d points, expected 1..%d", c->hop, WINDOW_MAX_W);
		return -EINVAL;
	}
	if (c->hold < 0 || c->hold > 1000000 || (int64_t)c->hold * c->interval_ms > INT64_MAX / 4) {
		LOG_E("window: hold of %d intervals out of range", c->hold);
		return -EINVAL;
	}
	for (int i = 0; c->channel_hold_ms && i < c->C; i++) {
		if (c->channel_hold_ms[i] < 0 || c->channel_hold_ms[i] > INT64_MAX / 4) {
			LOG_E("window: hold of channel %d out of range", i);
			return -EINVAL;
		}
	}
	for (int i = 0; c->channel_hold_max_ms && i < c->C; i++) {
		if (c->channel_hold_max_ms[i] < 0 || c->channel_hold_max_ms[i] > INT64_MAX / 4) {
			LOG_E("window: maximum hold of channel %d out of range", i);
			return -EINVAL;
		}
	}
	if (c->run_channel < -1 || c->run_channel >= c->C) {
		LOG_E("window: run channel %d, expected -1..%d", c->run_channel, c->C - 1);
		return -EINVAL;
	}
	if (c->run_channel >= 0) {
		if (strcmp(window_op_name(c->run_op), "?") == 0) {
			LOG_E("window: unknown run_when operator %d", (int)c->run_op);
			return -EINVAL;
		}
		if (!isfinite(c->run_value)) {
			LOG_E("window: run_when value must be a finite number");
			return -EINVAL;
		}
	}
	return 0;
}

/* The run's length, when it counts toward the longest (not beyond the cap). */
static int64_t run_counted(const struct wchan *ch)
{
	if (ch->run_start == TS_NONE)
		return 0;
	int64_t len = ch->run_last - ch->run_start;
	return ch->still_cap_ms > 0 && len > ch->still_cap_ms ? 0 : len;
}

/* The run is over: it counts toward the longest. */
static void end_run(struct wchan *ch)
{
	if (run_counted(ch) > ch->longest_still_ms)
		ch->longest_still_ms = run_counted(ch);
	ch->run_start = ch->run_last = TS_NONE;
}

/* No sample seen, nothing pending, nothing final (the queues keep their
 * memory). */
static void clear_data(struct window *w)
{
	for (int c = 0; c < w->cfg.C; c++) {
		struct wchan *ch = &w->ch[c];

		ch->last_ts = TS_NONE;
		ch->held_ts = TS_NONE;
		ch->good_ts = TS_NONE;
		ch->head = ch->n = 0;
		end_run(ch);
	}
	for (size_t i = 0; i < (size_t)w->cfg.W * (size_t)w->cfg.C; i++)
		w->rows[i] = NAN;
	w->started = false;
	w->next_k = 0;
	w->newest_ts = TS_NONE;
	w->newest_good = TS_NONE;
	w->n_final = 0;
	w->last_gap_k = INT64_MIN;
	w->last_off_k = INT64_MIN;
	w->silent_run = 0;
}

struct window *window_new(const struct window_cfg *cfg)
{
	struct window *w = NULL;

	if (!cfg || cfg_check(cfg) < 0)
		return NULL;
	w = calloc(1, sizeof(*w));
	if (!w)
		goto fail;
	w->cfg = *cfg;
	w->hold_ms = (int64_t)cfg->hold * cfg->interval_ms;

	size_t C = (size_t)cfg->C, W = (size_t)cfg->W;
	w->ch = calloc(C, sizeof(*w->ch));
	w->rows = calloc(W * C, sizeof(*w->rows));
	w->x = calloc(W * C, sizeof(*w->x));
	if (!w->ch || !w->rows || !w->x)
		goto fail;

	for (size_t c = 0; c < C; c++) {
		w->ch[c].q = calloc(QUEUE_MIN, sizeof(*w->ch[c].q));
		if (!w->ch[c].q)
			goto fail;
		w->ch[c].cap = QUEUE_MIN;
		w->ch[c].hold_ms = cfg->channel_hold_ms ? cfg->channel_hold_ms[c] : w->hold_ms;
		w->ch[c].base_hold_ms = w->ch[c].hold_ms;
		w->ch[c].max_hold_ms = cfg->channel_hold_max_ms ? cfg->channel_hold_max_ms[c] : 0;
		w->ch[c].first_good_ts = TS_NONE;
	}
	/* the caller's arrays are not kept */
	w->cfg.channel_hold_ms = NULL;
	w->cfg.channel_hold_max_ms = NULL;
	clear_data(w);
	w->epoch_ms = TS_NONE;
	return w;

fail:
	LOG_E("window: out of memory for %d channels x %d points", cfg->C, cfg->W);
	window_free(w);
	return NULL;
}

void window_free(struct window *w)
{
	if (!w)
		return;
	for (int c = 0; w->ch && c < w->cfg.C; c++)
		free(w->ch[c].q);
	free(w->ch);
	free(w->rows);
	free(w->x);
	free(w);
}

static struct wcell *q_at(const struct wchan *ch, uint32_t i)
{
	return &ch->q[(ch->head + i) & (ch->cap - 1)];
}

/* Makes room for one more cell; false if the channel is at the cap. */
static bool q_reserve(struct wchan *ch)
{
	if (ch->n < ch->cap)
		return true;
	if (ch->cap >= QUEUE_MAX)
		return false;
	struct wcell *nq = malloc(2 * (size_t)ch->cap * sizeof(*nq));

	if (!nq)
		return false;
	for (uint32_t i = 0; i < ch->n; i++)
		nq[i] = *q_at(ch, i);
	free(ch->q);
	ch->q = nq;
	ch->head = 0;
	ch->cap *= 2;
	return true;
}

/* The channel's last nine spacings, shortest first. */
static void sorted_spacings(const struct wchan *ch, int64_t *s)
{
	memcpy(s, ch->spacing, SPACINGS * sizeof(*s));
	for (int i = 1; i < SPACINGS; i++) /* nine: insertion sort */
		for (int j = i; j > 0 && s[j - 1] > s[j]; j--) {
			int64_t t = s[j];
			s[j] = s[j - 1];
			s[j - 1] = t;
		}
}

/*
 * The channel's hold, learned from how far apart its samples come (see
 * window_cfg.channel_hold_max_ms). The second shortest and second longest
 * of the last nine spacings must agree within a factor of two: a device
 * that reports only on change, or a link that drops a sample now and then,
 * keeps the hold it has (the daemon's log names a sensor that reports
 * less often than its hold all the same). Half again the longer of the
 * two, on the grid, covers the device's jitter; a device that comes back
 * to reporting often brings its hold back down as well.
 */
static void learn_hold(const struct window *w, struct wchan *ch)
{
	int64_t s[SPACINGS], i = w->cfg.interval_ms;

	if (ch->hold_ms == ch->base_hold_ms) {
		/* A longer hold needs the second shortest spacing over a third of
		 * the hold: a sensor that reports often but missed a sample (a bad
		 * one between) is told without sorting. */
		int short_ones = 0;
		for (int k = 0; k < SPACINGS; k++)
			short_ones += ch->spacing[k] <= ch->base_hold_ms / 3;
		if (short_ones >= 2)
			return;
	}
	sorted_spacings(ch, s);
	int64_t lo = s[1], hi = s[SPACINGS - 2];
	if (lo <= 0 || hi - lo > lo) /* hi > 2 lo, without overflow */
		return;
	/* spacings stay far under 2^62 (window_push's time limit) */
	int64_t want = hi >= ch->max_hold_ms ? ch->max_hold_ms : (hi * 3 / 2 + i - 1) / i * i;
	if (want > ch->max_hold_ms)
		want = ch->max_hold_ms;
	if (want < ch->base_hold_ms)
		want = ch->base_hold_ms;
	ch->hold_ms = want;
}

/* A good sample newer than the channel's newest: extends the run of equal
 * values or starts one. A silence longer than the value is held ends a run:
 * a PLC back after an outage with the value it had is no frozen sensor. */
static void track_run(struct wchan *ch, int64_t ts_ms, double value)
{
	if (ch->first_good_ts == TS_NONE)
		ch->first_good_ts = ts_ms;
	if (ch->run_start != TS_NONE && value == ch->run_val && ts_ms - ch->run_last <= ch->hold_ms) {
		ch->run_last = ts_ms;
		return;
	}
	end_run(ch);
	ch->run_val = value;
	ch->run_start = ch->run_last = ts_ms;
}

int window_push(struct window *w, int channel, int64_t ts_ms, double value, bool good)
{
	if (!w || channel < 0 || channel >= w->cfg.C)
		return -EINVAL;
	/* Timestamps this far out are garbage, and would overflow grid math. */
	if (ts_ms < -(INT64_C(1) << 61) || ts_ms > (INT64_C(1) << 61)) {
		w->st.future_samples++;
		return -ERANGE;
	}
	struct wchan *ch = &w->ch[channel];

	if (ts_ms < ch->last_ts) {
		w->st.late_samples++;
		return -ESTALE;
	}
	if (good && !(isfinite(value) && fabs(value) <= FLT_MAX))
		good = false;

	int64_t k = cell_of(w, ts_ms);
	bool append = false;

	if (!w->started) {
		w->started = true;
		w->next_k = k;
		if (w->epoch_ms == TS_NONE)
			w->epoch_ms = ts_ms;
	}
	if (good && k >= w->next_k) {
		append = ch->n == 0 || q_at(ch, ch->n - 1)->k != k;
		if (append && !q_reserve(ch)) {
			w->st.future_samples++;
			return -ERANGE;
		}
	}

	ch->last_ts = ts_ms;
	if (ts_ms > w->newest_ts)
		w->newest_ts = ts_ms;
	if (k < w->next_k)
		w->st.overdue_samples++;
	if (!good)
		return 0;

	if (ts_ms > w->newest_good)
		w->newest_good = ts_ms;
	if (ch->good_ts != TS_NONE && ts_ms > ch->good_ts) {
		ch->spacing[ch->spacings % SPACINGS] = ts_ms - ch->good_ts;
		/* the count only tells "nine seen" and the next slot: keep it small */
		ch->spacings = ch->spacings < 2 * SPACINGS ? ch->spacings + 1
							   : SPACINGS + (ch->spacings + 1) % SPACINGS;
		/* only a channel that reports less often than it is held, or one
		 * whose hold was raised, sorts its spacings */
		int64_t sp = ts_ms - ch->good_ts;
		if (ch->max_hold_ms > ch->base_hold_ms && ch->spacings >= SPACINGS &&
		    (sp > ch->hold_ms * 2 / 3 || ch->hold_ms > ch->base_hold_ms))
			learn_hold(w, ch);
	}
	if (ts_ms > ch->good_ts || ch->good_ts == TS_NONE) {
		track_run(ch, ts_ms, value);
		ch->good_ts = ts_ms;
	}
	if (k < w->next_k) {
		/* Its point is final already; it can still be held for later
		 * ones. Nothing of this channel is pending: that would be a
		 * newer sample, and this one would have been dropped as late. */
		ch->held_ts = ts_ms;
		ch->held_val = value;
		return 0;
	}
	/* A later sample in the same cell replaces the earlier one: only the
	 * last value at or before a grid point matters. */
	if (append)
		ch->n++;
	struct wcell *cell = q_at(ch, ch->n - 1);

	cell->k = k;
	cell->ts = ts_ms;
	cell->val = value;
	return 0;
}

/* Number of multiples of hop in [a, b]. */
static int64_t hop_points(int64_t a, int64_t b, int64_t hop)
{
	if (b < a)
		return 0;
	return floor_div(b, hop) - floor_div(a - 1, hop);
}

/* Last point of the run from k on where every channel is surely a gap: its
 * held value is too old at k and its next pending cell (if any) comes later.
 * Returns k - 1 if point k itself may have a value. */
static int64_t silent_until(const struct window *w, int64_t k)
{
	int64_t t = k * w->cfg.interval_ms, end = INT64_MAX;

	for (int c = 0; c < w->cfg.C; c++) {
		const struct wchan *ch = &w->ch[c];

		if (ch->held_ts != TS_NONE && t - ch->held_ts <= ch->hold_ms)
			return k - 1;
		if (ch->n > 0) {
			int64_t hk = q_at(ch, 0)->k;

			if (hk - 1 < end)
				end = hk - 1;
		}
	}
	return end;
}

static enum window_status status_at(const struct window *w, int64_t k, bool off)
{
	int64_t first = k - w->cfg.W + 1;

	if (off)
		return WINDOW_OFF;
	if (w->last_gap_k >= first)
		return WINDOW_GAP;
	if (w->last_off_k >= first)
		return WINDOW_WARMUP;
	return WINDOW_OK;
}

static void build_x(struct window *w, int64_t k)
{
	const int C = w->cfg.C, W = w->cfg.W;
	int64_t slot = floor_mod(k - W + 1, W);

	for (int j = 0; j < W; j++) {
		const float *row = w->rows + slot * C;

		for (int c = 0; c < C; c++)
			w->x[(size_t)c * (size_t)W + (size_t)j] = row[c];
		if (++slot == W)
			slot = 0;
	}
}

/* Finalizes point k = next_k into the row ring. Returns whether the point
 * is a gap on every channel; *off says whether the machine was off. */
static bool finalize_point(struct window *w, bool *off)
{
	const int C = w->cfg.C, run = w->cfg.run_channel;
	const int64_t k = w->next_k, t = k * w->cfg.interval_ms;
	float *row = w->rows + floor_mod(k, w->cfg.W) * C;
	bool any_gap = false, all_gap = true;

	*off = false;
	for (int c = 0; c < C; c++) {
		struct wchan *ch = &w->ch[c];

		if (ch->n > 0 && ch->q[ch->head].k == k) {
			const struct wcell *cell = &ch->q[ch->head];

			ch->held_ts = cell->ts;
			ch->held_val = cell->val;
			ch->head = (ch->head + 1) & (ch->cap - 1);
			ch->n--;
		}
		if (ch->held_ts != TS_NONE && t - ch->held_ts <= ch->hold_ms) {
			row[c] = (float)ch->held_val;
			all_gap = false;
			if (c == run)
				*off = !run_ok(w->cfg.run_op, ch->held_val, w->cfg.run_value);
		} else {
			row[c] = NAN;
			any_gap = true;
			if (c == run)
				*off = true;
		}
	}
	if (any_gap)
		w->last_gap_k = k;
	if (*off)
		w->last_off_k = k;
	w->n_final++;
	w->st.points++;
	w->next_k = k + 1;
	return all_gap;
}

int window_advance(struct window *w, int64_t now_ms, window_emit_fn emit, void *user)
{
	if (!w)
		return -EINVAL;
	/* Keeps t - ts arithmetic far from overflow whatever the caller's
	 * clock says; samples are limited to +-2^61 by window_push. */
	if (now_ms > (INT64_C(1) << 62))
		now_ms = INT64_C(1) << 62;
	if (now_ms < -(INT64_C(1) << 62))
		now_ms = -(INT64_C(1) << 62);
	if (w->epoch_ms == TS_NONE)
		w->epoch_ms = now_ms;
	if (!w->started)
		return 0;

	const int64_t I = w->cfg.interval_ms, W = w->cfg.W, hop = w->cfg.hop;

	/* Point t is final if t < the newest sample of every channel, or
	 * t < now - hold: so every k <= k_max is. */
	int64_t frontier = INT64_MAX;
	for (int c = 0; c < w->cfg.C; c++)
		if (w->ch[c].last_ts < frontier)
			frontier = w->ch[c].last_ts;
	int64_t limit = now_ms - w->hold_ms;
	if (frontier > limit)
		limit = frontier;
	int64_t k_max = floor_div(limit - 1, I);

	while (w->next_k <= k_max) {
		const int64_t k = w->next_k;

		if (w->silent_run >= W) {
			int64_t end = silent_until(w, k);

			if (end > k_max)
				end = k_max;
			if (end >= k) {
				/* Every window ending in [k, end] holds only
				 * gaps, like the one before it: skip them. The
				 * row ring is all gaps already. */
				int64_t n = end - k + 1;

				w->st.silent_windows += (uint64_t)hop_points(k, end, hop);
				w->st.points += (uint64_t)n;
				w->n_final += n;
				w->silent_run += n;
				w->last_gap_k = end;
				if (w->cfg.run_channel >= 0)
					w->last_off_k = end;
				w->next_k = end + 1;
				continue;
			}
		}

		bool off;
		bool was_silent = w->silent_run >= W;
		bool all_gap = finalize_point(w, &off);

		w->silent_run = all_gap ? w->silent_run + 1 : 0;
		if (w->n_final < W || floor_mod(k, hop) != 0)
			continue;
		if (all_gap && was_silent) {
			w->st.silent_windows++;
			continue;
		}
		enum window_status st = status_at(w, k, off);

		w->st.windows++;
		switch (st) {
		case WINDOW_GAP:
			w->st.gaps++;
			break;
		case WINDOW_OFF:
			w->st.off++;
			break;
		case WINDOW_WARMUP:
			w->st.warmup++;
			break;
		case WINDOW_OK:
			break;
		}
		if (!emit)
			continue;
		build_x(w, k);
		int rc = emit(w->x, k * I, st, user);
		if (rc != 0)
			return rc;
	}
	return 0;
}

void window_restart(struct window *w, int64_t now_ms)
{
	if (!w)
		return;
	clear_data(w);
	w->epoch_ms = now_ms;
	w->st.restarts++;
}

bool window_no_data(const struct window *w, int64_t now_ms)
{
	if (!w || w->cfg.no_data_ms <= 0)
		return false;
	/* The newest good sample, even one older than the first advance: the
	 * clock of a device that stamps its own samples may be hours behind
	 * the one the window was first advanced with. */
	int64_t ref = w->newest_good != TS_NONE ? w->newest_good : w->epoch_ms;

	if (ref == TS_NONE)
		return false;
	return now_ms - ref > w->cfg.no_data_ms;
}

int64_t window_still_ms(const struct window *w, int channel, int64_t *since_ms, double *value)
{
	if (!w || channel < 0 || channel >= w->cfg.C)
		return 0;
	const struct wchan *ch = &w->ch[channel];
	if (ch->run_start == TS_NONE)
		return 0;
	if (since_ms)
		*since_ms = ch->run_start;
	if (value)
		*value = ch->run_val;
	return ch->run_last - ch->run_start;
}

int64_t window_longest_still_ms(const struct window *w, int channel, int64_t *span_ms)
{
	if (!w || channel < 0 || channel >= w->cfg.C)
		return 0;
	const struct wchan *ch = &w->ch[channel];
	if (span_ms)
		*span_ms = ch->first_good_ts == TS_NONE || ch->good_ts == TS_NONE
				   ? 0
				   : ch->good_ts - ch->first_good_ts;
	return run_counted(ch) > ch->longest_still_ms ? run_counted(ch) : ch->longest_still_ms;
}

void window_set_still_cap(struct window *w, int channel, int64_t cap_ms)
{
	if (w && channel >= 0 && channel < w->cfg.C)
		w->ch[channel].still_cap_ms = cap_ms > 0 ? cap_ms : 0;
}

int window_missing(const struct window *w, int64_t now_ms, int64_t after_ms, bool *missing,
		   int64_t *last_good_ms)
{
	int n = 0;

	if (!w || !missing)
		return 0;
	for (int c = 0; c < w->cfg.C; c++) {
		const struct wchan *ch = &w->ch[c];
		int64_t ref = ch->good_ts != TS_NONE ? ch->good_ts : w->epoch_ms;
		int64_t limit = after_ms > ch->hold_ms ? after_ms : ch->hold_ms;

		missing[c] = after_ms > 0 && ref != TS_NONE && now_ms - ref > limit;
		if (last_good_ms)
			last_good_ms[c] = ch->good_ts;
		n += missing[c];
	}
	return n;
}

int64_t window_hold_ms(const struct window *w, int channel)
{
	if (!w || channel < 0 || channel >= w->cfg.C)
		return -1;
	return w->ch[channel].hold_ms;
}

int window_set_hold_ms(struct window *w, int channel, int64_t hold_ms)
{
	if (!w || channel < 0 || channel >= w->cfg.C)
		return -EINVAL;
	struct wchan *ch = &w->ch[channel];
	if (ch->max_hold_ms <= ch->base_hold_ms)
		return -EINVAL;
	ch->hold_ms = hold_ms < ch->base_hold_ms ? ch->base_hold_ms
		      : hold_ms > ch->max_hold_ms ? ch->max_hold_ms
						  : hold_ms;
	return 0;
}

int64_t window_spacing_ms(const struct window *w, int channel)
{
	if (!w || channel < 0 || channel >= w->cfg.C || w->ch[channel].spacings < SPACINGS)
		return -1;
	int64_t s[SPACINGS];
	sorted_spacings(&w->ch[channel], s);
	return s[SPACINGS / 2];
}

int64_t window_newest_ts(const struct window *w)
{
	return w ? w->newest_ts : TS_NONE;
}

void window_get_stats(const struct window *w, struct window_stats *st)
{
	if (!w || !st)
		return;
	*st = w->st;
}
