/*
 * learn.c - the learning schedule (see learn.h).
 */
#include "learn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pdm_parse.h"
#include "pdm_time.h"

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

void learn_over_init(struct learn_over *o, int raise_after, int clear_after)
{
	memset(o, 0, sizeof(*o));
	o->raise_after = raise_after > 0 ? raise_after : 1;
	o->clear_after = clear_after > 0 ? clear_after : 1;
}

/* The stretch ended: counted, and kept when among the highest. */
static void close_stretch(struct learn_over *o)
{
	const struct learn_stretch st = o->cur;
	size_t i;

	o->open = false;
	o->n++;
	o->total_ms += st.end_ms - st.start_ms;
	for (i = 0; i < o->shown && o->top[i].peak >= st.peak; i++)
		;
	if (i >= LEARN_OVER_SHOWN)
		return;
	if (o->shown < LEARN_OVER_SHOWN)
		o->shown++;
	memmove(&o->top[i + 1], &o->top[i], (o->shown - 1 - i) * sizeof(o->top[0]));
	o->top[i] = st;
}

static void set_sensor(struct learn_stretch *st, const char *sensor)
{
	snprintf(st->sensor, sizeof(st->sensor), "%s", sensor ? sensor : "");
}

void learn_over_feed(struct learn_over *o, int64_t ts_ms, double score, const char *sensor)
{
	if (score >= 1.0) {
		if (o->over++ == 0)
			o->first_over_ms = ts_ms;
		o->under = 0;
		if (!o->open && o->over >= o->raise_after) {
			o->open = true;
			o->cur = (struct learn_stretch){ o->first_over_ms, ts_ms, score, "" };
			set_sensor(&o->cur, sensor);
		}
		if (o->open) {
			o->cur.end_ms = ts_ms;
			if (score > o->cur.peak) {
				o->cur.peak = score;
				set_sensor(&o->cur, sensor);
			}
		}
		return;
	}
	o->over = 0;
	if (o->open && ++o->under >= o->clear_after)
		close_stretch(o);
}

void learn_over_end(struct learn_over *o)
{
	if (o->open)
		close_stretch(o);
	o->over = o->under = 0;
}

int learn_over_format(const struct learn_over *o, char *buf, size_t len)
{
	size_t n = (size_t)snprintf(buf, len, "%llu %lld", (unsigned long long)o->n,
				    (long long)o->total_ms);
	for (size_t i = 0; i < o->shown && n < len; i++)
		n += (size_t)snprintf(buf + n, len - n, " %lld:%lld:%.4g%s%s",
				      (long long)o->top[i].start_ms, (long long)o->top[i].end_ms,
				      o->top[i].peak, o->top[i].sensor[0] ? ":" : "",
				      o->top[i].sensor);
	return (int)n;
}

int learn_over_parse(const char *text, struct learn_over *o)
{
	unsigned long long n;
	long long total;
	int used;

	learn_over_init(o, 1, 1);
	if (!text || sscanf(text, "%llu %lld%n", &n, &total, &used) != 2)
		return -EINVAL;
	for (const char *p = text + used; o->shown < LEARN_OVER_SHOWN;) {
		long long a, b;
		double peak;
		int k;
		if (sscanf(p, " %lld:%lld:%lf%n", &a, &b, &peak, &k) != 3)
			break;
		struct learn_stretch *st = &o->top[o->shown++];
		*st = (struct learn_stretch){ a, b, peak, "" };
		p += k;
		if (*p == ':') { /* the sensor's name: no blanks (cfg's valid_name) */
			size_t l = strcspn(++p, " ");
			snprintf(st->sensor, sizeof(st->sensor), "%.*s", (int)l, p);
			p += l;
		}
	}
	o->n = n;
	o->total_ms = total;
	return 0;
}

void learn_over_describe(const struct learn_over *o, char *buf, size_t len)
{
	char total[32];
	size_t n;

	pdm_format_approx(o->total_ms, total, sizeof(total));
	n = (size_t)snprintf(buf, len, "%llu %s (%s in all); the highest:",
			     (unsigned long long)o->n, o->n == 1 ? "time" : "times", total);
	for (size_t i = 0; i < o->shown && n < len; i++) {
		char ts[PDM_ISO8601_LEN], dur[32];
		pdm_iso8601(o->top[i].start_ms, ts, sizeof(ts));
		pdm_format_approx(o->top[i].end_ms - o->top[i].start_ms, dur, sizeof(dur));
		char who[96] = "";
		if (o->top[i].sensor[0])
			snprintf(who, sizeof(who), ", %s first", o->top[i].sensor);
		n += (size_t)snprintf(buf + n, len - n, "%s %s for %s (peak %.3g%s)", i ? ";" : "", ts,
				      dur, o->top[i].peak, who);
	}
}

void learn_over_name(struct learn_over *o, const struct learn_over *known)
{
	for (size_t i = 0; i < o->shown; i++)
		for (size_t k = 0; !o->top[i].sensor[0] && k < known->shown; k++)
			if (known->top[k].start_ms == o->top[i].start_ms)
				set_sensor(&o->top[i], known->top[k].sensor);
}
