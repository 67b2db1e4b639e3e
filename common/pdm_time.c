/*
 * pdm_time.c - monotonic and wall clocks, ISO-8601 formatting and parsing.
 */
#include "pdm_time.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t pdm_mono_ms(void)
{
	return clock_ns(CLOCK_MONOTONIC) / 1000000;
}

int64_t pdm_mono_us(void)
{
	return clock_ns(CLOCK_MONOTONIC) / 1000;
}

int64_t pdm_wall_ms(void)
{
	return clock_ns(CLOCK_REALTIME) / 1000000;
}

int64_t pdm_clock_watch(struct pdm_clock_watch *cw, int64_t wall_ms, int64_t mono_ms)
{
	int64_t off = wall_ms - mono_ms, step = off - cw->offset_ms;

	cw->offset_ms = off;
	if (!cw->primed) {
		cw->primed = 1;
		return 0;
	}
	/* Following the offset even below the threshold keeps a slow slew
	 * from adding up to a false step. */
	if (step <= PDM_CLOCK_STEP_MS && step >= -PDM_CLOCK_STEP_MS)
		return 0;
	cw->fence_lo_ms = wall_ms - PDM_CLOCK_SLACK_MS;
	cw->fence_until_mono = mono_ms + PDM_CLOCK_FENCE_MS;
	return step;
}

int pdm_clock_fenced(const struct pdm_clock_watch *cw, int64_t ts_ms, int64_t wall_ms,
		     int64_t mono_ms)
{
	if (mono_ms >= cw->fence_until_mono)
		return 0;
	return ts_ms < cw->fence_lo_ms || ts_ms > wall_ms + PDM_CLOCK_SLACK_MS;
}

void pdm_lag_add(struct pdm_lag *l, int64_t lag_ms, int64_t mono_ms)
{
	int64_t b = mono_ms / PDM_LAG_BUCKET_MS + 1;
	int i = (int)(b % PDM_LAG_BUCKETS);

	if (l->bucket[i] != b) {
		l->bucket[i] = b;
		l->min_ms[i] = l->max_ms[i] = lag_ms;
	} else if (lag_ms > l->max_ms[i]) {
		l->max_ms[i] = lag_ms;
	} else if (lag_ms < l->min_ms[i]) {
		l->min_ms[i] = lag_ms;
	}
	l->samples++;
}

int pdm_lag_get(struct pdm_lag *l, int64_t mono_ms, int64_t *min_ms, int64_t *max_ms)
{
	int64_t b = mono_ms / PDM_LAG_BUCKET_MS + 1, lo = INT64_MAX, hi = INT64_MIN;

	for (int i = 0; i < PDM_LAG_BUCKETS; i++) {
		if (l->bucket[i] == 0 || l->bucket[i] <= b - PDM_LAG_BUCKETS)
			continue;
		if (l->min_ms[i] < lo)
			lo = l->min_ms[i];
		if (l->max_ms[i] > hi)
			hi = l->max_ms[i];
	}
	if (hi != INT64_MIN) {
		l->est_min_ms = lo;
		l->est_max_ms = hi;
	}
	if (min_ms)
		*min_ms = l->est_min_ms;
	if (max_ms)
		*max_ms = l->est_max_ms;
	return l->samples > 0 ? 0 : -ENODATA;
}

void pdm_lag_shift(struct pdm_lag *l, int64_t step_ms)
{
	for (int i = 0; i < PDM_LAG_BUCKETS; i++) {
		l->min_ms[i] += step_ms;
		l->max_ms[i] += step_ms;
	}
	l->est_min_ms += step_ms;
	l->est_max_ms += step_ms;
}

void pdm_lag_reset(struct pdm_lag *l)
{
	for (int i = 0; i < PDM_LAG_BUCKETS; i++)
		l->bucket[i] = 0;
}

char *pdm_iso8601(int64_t epoch_ms, char *buf, size_t len)
{
	int64_t secs = epoch_ms / 1000;
	int ms = (int)(epoch_ms % 1000);
	struct tm tm;

	if (ms < 0) {
		ms += 1000;
		secs -= 1;
	}
	time_t t = (time_t)secs;
	gmtime_r(&t, &tm);
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
	return buf;
}

/* Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's
 * algorithm); avoids timegm's dependence on the TZ environment. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	const int64_t era = (y >= 0 ? y : y - 399) / 400;
	const unsigned yoe = (unsigned)(y - era * 400);
	const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static int days_in_month(int y, int m)
{
	static const int days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : days[m - 1];
}

static int parse_digits(const char **p, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*p)[i]))
			return -EINVAL;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*out = v;
	return 0;
}

int pdm_parse_iso8601(const char *s, int64_t *epoch_ms)
{
	int Y, M, D, h = 0, mi = 0, sec = 0, frac_ms = 0;
	const char *p = s;

	while (isspace((unsigned char)*p))
		p++;
	if (parse_digits(&p, 4, &Y) || *p++ != '-' || parse_digits(&p, 2, &M) || *p++ != '-' ||
	    parse_digits(&p, 2, &D))
		return -EINVAL;
	if (M < 1 || M > 12 || D < 1 || D > days_in_month(Y, M))
		return -EINVAL;
	if (*p == 'T' || *p == 't' || *p == ' ') {
		p++;
		if (parse_digits(&p, 2, &h) || *p++ != ':' || parse_digits(&p, 2, &mi))
			return -EINVAL;
		if (*p == ':') {
			p++;
			if (parse_digits(&p, 2, &sec))
				return -EINVAL;
			if (*p == '.' || *p == ',') {
				p++;
				int scale = 100, digits = 0;
				while (isdigit((unsigned char)*p)) {
					if (digits < 3)
						frac_ms += (*p - '0') * scale;
					scale /= 10;
					digits++;
					p++;
				}
				if (digits == 0)
					return -EINVAL;
			}
		}
		if (h > 23 || mi > 59 || sec > 60)
			return -EINVAL;
	}
	int64_t offset_min = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p++ == '-' ? -1 : 1, oh, om = 0;
		if (parse_digits(&p, 2, &oh))
			return -EINVAL;
		if (*p == ':')
			p++;
		if (isdigit((unsigned char)*p) && parse_digits(&p, 2, &om))
			return -EINVAL;
		if (oh > 23 || om > 59)
			return -EINVAL;
		offset_min = sign * (oh * 60 + om);
	}
	while (isspace((unsigned char)*p))
		p++;
	if (*p != '\0')
		return -EINVAL;
	int64_t days = days_from_civil(Y, (unsigned)M, (unsigned)D);
	int64_t secs = days * 86400 + h * 3600 + mi * 60 + sec - offset_min * 60;
	*epoch_ms = secs * 1000 + frac_ms;
	return 0;
}
