/*
 * pdm_parse.c - strict text-to-value parsers for config and payloads.
 */
#include "pdm_parse.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *skip_ws(const char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	return s;
}

static bool only_ws(const char *s)
{
	return *skip_ws(s) == '\0';
}

int pdm_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
	char *end;

	if (!s || only_ws(s))
		return -EINVAL;
	errno = 0;
	long long v = strtoll(s, &end, 0);
	if (errno == ERANGE)
		return -ERANGE;
	if (end == s || !only_ws(end))
		return -EINVAL;
	if (v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

int pdm_parse_double(const char *s, double *out)
{
	char *end;

	if (!s || only_ws(s))
		return -EINVAL;
	errno = 0;
	double v = strtod(s, &end);
	if (end == s || !only_ws(end))
		return -EINVAL;
	if (errno == ERANGE || !isfinite(v))
		return -ERANGE;
	*out = v;
	return 0;
}

int pdm_parse_bool(const char *s, bool *out)
{
	static const char *yes[] = { "1", "yes", "true", "on" };
	static const char *no[] = { "0", "no", "false", "off" };

	s = skip_ws(s);
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

int pdm_parse_duration_ms(const char *s, int64_t default_unit_ms, int64_t *out_ms)
{
	char *end;

	if (!s || only_ws(s))
		return -EINVAL;
	s = skip_ws(s);
	if (*s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	double v = strtod(s, &end);
	if (end == s || errno == ERANGE || !isfinite(v) || v < 0)
		return -EINVAL;
	while (*end == ' ')
		end++;
	int64_t unit;
	if (*end == '\0' || isspace((unsigned char)*end))
		unit = default_unit_ms;
	else if (strncmp(end, "ms", 2) == 0 && (end += 2))
		unit = 1;
	else if (*end == 's' && end++)
		unit = 1000;
	else if (*end == 'm' && end++)
		unit = 60000;
	else if (*end == 'h' && end++)
		unit = 3600000;
	else if (*end == 'd' && end++)
		unit = 86400000;
	else
		return -EINVAL;
	if (!only_ws(end))
		return -EINVAL;
	double ms = v * (double)unit;
	if (ms > 9.0e15)
		return -ERANGE;
	*out_ms = (int64_t)llround(ms);
	return 0;
}

void pdm_format_duration(int64_t ms, char *buf, unsigned len)
{
	static const struct {
		int64_t ms;
		const char *u;
	} units[] = { { 86400000, "d" }, { 3600000, "h" }, { 60000, "m" }, { 1000, "s" } };

	if (ms != 0) {
		for (size_t i = 0; i < 4; i++) {
			if (ms % units[i].ms == 0) {
				snprintf(buf, len, "%lld%s", (long long)(ms / units[i].ms), units[i].u);
				return;
			}
		}
	}
	snprintf(buf, len, "%lldms", (long long)ms);
}

const char *pdm_format_approx(int64_t ms, char *buf, unsigned len)
{
	double s = (double)(ms < 0 ? -(double)ms : (double)ms) / 1000.0;

	if (s >= 2 * 86400)
		snprintf(buf, len, "%.1f d", s / 86400);
	else if (s >= 3570)
		snprintf(buf, len, "%.1f h", s / 3600);
	else if (s >= 120)
		snprintf(buf, len, "%.1f min", s / 60);
	else
		snprintf(buf, len, "%.1f s", s);
	return buf;
}
