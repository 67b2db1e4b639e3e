/*
 * learn.c - the learning schedule (see learn.h).
 */
#include "learn.h"

static int64_t sat_add(int64_t a, int64_t b)
{
	return b > INT64_MAX - a ? INT64_MAX : a + b;
}

void learn_start(struct learn *l, int64_t mark_ms, int64_t max_ms)
{
	l->mark_ms = mark_ms;
	l->until_ms = sat_add(mark_ms, max_ms);
	l->fit_ms = 0;
	l->model_ms = 0;
	l->min_ms = mark_ms;
}

void learn_set_min(struct learn *l, int64_t min_ms)
{
	l->min_ms = sat_add(l->mark_ms, min_ms > 0 ? min_ms : 0);
	if (l->until_ms < l->min_ms)
		l->until_ms = l->min_ms;
}

void learn_start_first(struct learn *l, int64_t t, int64_t span_ms, int64_t max_ms,
		       int64_t min_ms)
{
	learn_start(l, t - span_ms, sat_add(span_ms, max_ms));
	learn_set_min(l, min_ms);
	l->fit_ms = t;
	l->model_ms = t;
}

int64_t learn_quiet_needed(const struct learn *l)
{
	/* rounded up: 2 x quiet >= the age the model came at */
	int64_t half = (l->model_ms - l->mark_ms + 1) / 2;
	return half > LEARN_MIN_MS ? half : LEARN_MIN_MS;
}

enum learn_step learn_step(const struct learn *l, int64_t t, bool loud, int64_t scored_ms)
{
	if (l->model_ms > 0 && !loud) {
		/* A quiet model has learned once it has been quiet for half of
		 * what learning had seen when it came: a state that comes back
		 * within that time was still moving. */
		if (scored_ms >= learn_quiet_needed(l) && t >= l->min_ms)
			return LEARN_DONE;
		return t >= l->until_ms ? LEARN_EXPIRED : LEARN_WAIT;
	}
	if (t >= l->until_ms)
		return LEARN_EXPIRED;
	/* A training each time learning's age has grown by half since the
	 * last one: a drift is followed in ever longer steps, and an asset
	 * that never settles does not keep the trainer busy. */
	int64_t last = l->fit_ms > l->mark_ms ? l->fit_ms : l->mark_ms;
	return t - last >= LEARN_MIN_MS && 2 * (t - last) >= last - l->mark_ms ? LEARN_RETRAIN
									      : LEARN_WAIT;
}

void learn_fitted(struct learn *l, int64_t t)
{
	l->fit_ms = t;
}

void learn_installed(struct learn *l, int64_t t)
{
	l->model_ms = t;
}

void learn_shift(struct learn *l, int64_t step)
{
	l->mark_ms += step;
	if (l->until_ms != INT64_MAX)
		l->until_ms += step;
	if (l->min_ms != INT64_MAX)
		l->min_ms += step;
	if (l->fit_ms > 0)
		l->fit_ms += step;
	if (l->model_ms > 0)
		l->model_ms += step;
}
