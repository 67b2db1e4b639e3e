/*
 * alert.c - alert engine: hysteresis over normalized scores, episodes with
 * numbers that survive restarts, contributors, and the JSON payloads.
 *
 * The engine's whole state is struct alert_persist, so a restart resumes
 * exactly where the last committed event left it: an open episode is never
 * raised twice, and numbers never repeat. JSON is built and parsed with
 * cJSON; numbers that SCADA reads are rounded to 3 decimals so payloads
 * do not carry float noise ("0.6200000047").
 */
#include "alert.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pdm_error.h"
#include "pdm_time.h"

struct alert_engine {
	struct alert_cfg cfg;
	struct alert_persist p;
	double raise_at; /* alert_set_raise_at; 1.0 normally */
};

/* Largest integer a JSON number (a double) carries exactly. */
#define JSON_INT_MAX 9007199254740992.0

static int cfg_check(const struct alert_cfg *c)
{
	if (c->raise_after < 1 || c->raise_after > 1000000) {
		LOG_E("alert: raise_after %d, expected 1..1000000", c->raise_after);
		return -EINVAL;
	}
	if (c->clear_after < 1 || c->clear_after > 1000000) {
		LOG_E("alert: clear_after %d, expected 1..1000000", c->clear_after);
		return -EINVAL;
	}
	if (!isfinite(c->critical) || c->critical < 1.0) {
		LOG_E("alert: critical %g, expected a number >= 1.0 (1.0 is the threshold)",
		      c->critical);
		return -EINVAL;
	}
	return 0;
}

static bool persist_valid(const struct alert_persist *p)
{
	if (p->severity < ALERT_SEV_NONE || p->severity > ALERT_SEV_CRITICAL)
		return false;
	if (p->over < 0 || p->under < 0 || p->n_peak_top < 0 || p->n_peak_top > ALERT_TOP)
		return false;
	if ((double)p->episode_seq > JSON_INT_MAX)
		return false;
	if (p->severity != ALERT_SEV_NONE && p->episode_seq == 0)
		return false;
	if (!isfinite(p->peak_score))
		return false;
	for (int i = 0; i < p->n_peak_top; i++)
		if (p->peak_top[i].channel < 0 || !isfinite(p->peak_top[i].share))
			return false;
	return true;
}

struct alert_engine *alert_new(const struct alert_cfg *cfg, const struct alert_persist *restored)
{
	if (!cfg || cfg_check(cfg) < 0)
		return NULL;
	if (restored && !persist_valid(restored)) {
		LOG_E("alert: restored state is inconsistent (severity %d, episode %llu)",
		      restored->severity, (unsigned long long)restored->episode_seq);
		return NULL;
	}
	struct alert_engine *a = calloc(1, sizeof(*a));

	if (!a) {
		LOG_E("alert: out of memory");
		return NULL;
	}
	a->cfg = *cfg;
	a->raise_at = 1.0;
	if (restored)
		a->p = *restored;
	/* Counters from a previous run refer to its state: only the one that
	 * matters in the current state is kept. */
	if (a->p.severity == ALERT_SEV_NONE)
		a->p.under = 0;
	else
		a->p.over = 0;
	return a;
}

void alert_free(struct alert_engine *a)
{
	free(a);
}

int alert_reconfigure(struct alert_engine *a, const struct alert_cfg *cfg)
{
	if (!a || !cfg || cfg_check(cfg) < 0)
		return -EINVAL;
	a->cfg = *cfg;
	return 0;
}

/* Top ALERT_TOP shares, largest first; ties go to the lower channel so the
 * order is deterministic. NaN and non-positive shares explain nothing and are
 * left out. */
static int top_shares(const float *shares, const float *value, const float *expected, int C,
		      struct alert_contrib *top)
{
	int n = 0;

	for (int c = 0; c < C; c++) {
		float s = shares[c];

		if (!(s > 0.0f) || !isfinite(s))
			continue;
		int pos = n < ALERT_TOP ? n : ALERT_TOP;

		while (pos > 0 && top[pos - 1].share < s)
			pos--;
		if (pos >= ALERT_TOP)
			continue;
		int last = n < ALERT_TOP ? n : ALERT_TOP - 1;

		for (int i = last; i > pos; i--)
			top[i] = top[i - 1];
		top[pos].channel = c;
		top[pos].share = s;
		top[pos].value = value ? value[c] : NAN;
		top[pos].expected = expected ? expected[c] : NAN;
		if (n < ALERT_TOP)
			n++;
	}
	return n;
}

/* The open episode's cleared event (its peak and the contributors then),
 * and the state back to no episode. */
static void close_episode(struct alert_persist *p, struct alert_event *ev)
{
	ev->kind = ALERT_CLEARED;
	ev->severity = p->severity;
	ev->episode_seq = p->episode_seq;
	ev->started_ms = p->started_ms;
	ev->score = p->peak_score;
	memcpy(ev->top, p->peak_top, sizeof(ev->top));
	ev->n_top = p->n_peak_top;
	p->severity = ALERT_SEV_NONE;
	p->started_ms = 0;
	p->peak_score = 0.0;
	p->n_peak_top = 0;
	memset(p->peak_top, 0, sizeof(p->peak_top));
	p->over = 0;
	p->under = 0;
	ev->reason = ALERT_CLEAR_RECOVERED;
}

int alert_top_channel(const float *shares, int C)
{
	struct alert_contrib top[ALERT_TOP];
	return top_shares(shares, NULL, NULL, C, top) > 0 ? top[0].channel : -1;
}

int alert_step(struct alert_engine *a, int64_t ts_ms, double score, const float *shares,
	       const float *value, const float *expected, int C, struct alert_event *ev)
{
	if (!a || !ev || C < 0 || (C > 0 && !shares))
		return -EINVAL;
	if (!isfinite(score))
		return -PDM_ENONFINITE;

	struct alert_persist *p = &a->p;
	struct alert_contrib top[ALERT_TOP];
	int n_top = top_shares(shares, value, expected, C, top);

	memset(ev, 0, sizeof(*ev));
	ev->kind = ALERT_NONE;
	ev->ts_ms = ts_ms;
	ev->score = score;

	if (p->severity == ALERT_SEV_NONE) {
		if (score < a->raise_at) {
			p->over = 0;
			return 0;
		}
		if (++p->over < a->cfg.raise_after)
			return 0;
		p->episode_seq++;
		p->severity = score >= a->cfg.critical ? ALERT_SEV_CRITICAL : ALERT_SEV_WARNING;
		p->started_ms = ts_ms;
		p->peak_score = score;
		memcpy(p->peak_top, top, sizeof(top));
		p->n_peak_top = n_top;
		p->over = 0;
		p->under = 0;
		ev->kind = ALERT_RAISED;
	} else if (score >= 1.0) {
		p->under = 0;
		if (score > p->peak_score) {
			p->peak_score = score;
			memcpy(p->peak_top, top, sizeof(top));
			p->n_peak_top = n_top;
		}
		if (p->severity != ALERT_SEV_WARNING || score < a->cfg.critical)
			return 0;
		p->severity = ALERT_SEV_CRITICAL;
		ev->kind = ALERT_ESCALATED;
	} else {
		if (++p->under < a->cfg.clear_after)
			return 0;
		close_episode(p, ev);
		return 0;
	}
	ev->severity = p->severity;
	ev->episode_seq = p->episode_seq;
	ev->started_ms = p->started_ms;
	memcpy(ev->top, top, sizeof(top));
	ev->n_top = n_top;
	return 0;
}

void alert_set_raise_at(struct alert_engine *a, double level)
{
	if (!a)
		return;
	level = isfinite(level) && level > 1.0 ? level : 1.0;
	if (level != a->raise_at)
		a->p.over = 0;
	a->raise_at = level;
}

int alert_close(struct alert_engine *a, int64_t ts_ms, struct alert_event *ev)
{
	if (!a || !ev)
		return -EINVAL;
	memset(ev, 0, sizeof(*ev));
	ev->kind = ALERT_NONE;
	ev->ts_ms = ts_ms;
	a->p.over = 0;
	if (a->p.severity != ALERT_SEV_NONE) {
		close_episode(&a->p, ev);
		ev->reason = ALERT_CLEAR_TAKEN_AS_NORMAL;
	}
	return 0;
}

void alert_get_persist(const struct alert_engine *a, struct alert_persist *p)
{
	if (a && p)
		*p = a->p;
}

int alert_severity(const struct alert_engine *a)
{
	return a ? a->p.severity : ALERT_SEV_NONE;
}

const char *alert_asset_state(bool no_data, bool off, bool has_model, int severity)
{
	if (no_data)
		return "no_data";
	if (off)
		return "off";
	if (!has_model)
		return "learning";
	if (severity == ALERT_SEV_CRITICAL)
		return "critical";
	if (severity == ALERT_SEV_WARNING)
		return "warning";
	return "normal";
}

const char *alert_severity_name(int severity)
{
	switch (severity) {
	case ALERT_SEV_NONE:
		return "none";
	case ALERT_SEV_WARNING:
		return "warning";
	case ALERT_SEV_CRITICAL:
		return "critical";
	default:
		return "?";
	}
}

const char *alert_clear_reason_name(enum alert_clear_reason r)
{
	switch (r) {
	case ALERT_CLEAR_RECOVERED:
		return "recovered";
	case ALERT_CLEAR_TAKEN_AS_NORMAL:
		return "taken_as_normal";
	case ALERT_CLEAR_NO_MODEL:
		return "no_model";
	}
	return "?";
}

const char *alert_event_name(enum alert_event_kind kind)
{
	switch (kind) {
	case ALERT_NONE:
		return "none";
	case ALERT_RAISED:
		return "raised";
	case ALERT_ESCALATED:
		return "escalated";
	case ALERT_CLEARED:
		return "cleared";
	}
	return "?";
}

static double round3(double v)
{
	return round(v * 1000.0) / 1000.0;
}

/* cJSON reports allocation failure through NULL returns; the helpers below
 * let a builder check once at the end instead of after every call. */
static void add_num(cJSON *o, const char *k, double v, bool *ok)
{
	if (!cJSON_AddNumberToObject(o, k, v))
		*ok = false;
}

/* A sensor value, when known: JSON has no NaN, so an unknown one is left out. */
static void add_finite(cJSON *o, const char *k, double v, bool *ok)
{
	if (isfinite(v))
		add_num(o, k, v, ok);
}

/* A float-born value printed to 5 significant digits: 4.2123 mm/s, not
 * 4.2123456001281738. */
static double round_sig5(double v)
{
	if (v == 0.0 || !isfinite(v))
		return v;
	double mag = pow(10.0, 4 - (int)floor(log10(fabs(v))));
	double r = round(v * mag) / mag;
	return isfinite(r) ? r : v;
}

/* An optional finite number of a stored object; NaN when absent. */
static float get_opt_float(const cJSON *obj, const char *key)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
	return cJSON_IsNumber(it) && isfinite(it->valuedouble) ? (float)it->valuedouble : NAN;
}

static void add_str(cJSON *o, const char *k, const char *v, bool *ok)
{
	if (!(v ? cJSON_AddStringToObject(o, k, v) : cJSON_AddNullToObject(o, k)))
		*ok = false;
}

static char *print_free(cJSON *root, bool ok)
{
	char *s = ok ? cJSON_PrintUnformatted(root) : NULL;

	cJSON_Delete(root);
	if (!s)
		LOG_E("alert: out of memory building JSON");
	return s;
}

char *alert_persist_to_json(const struct alert_persist *p)
{
	if (!p)
		return NULL;
	cJSON *root = cJSON_CreateObject();
	bool ok = root != NULL;

	if (!ok)
		return print_free(root, false);
	add_num(root, "episode_seq", (double)p->episode_seq, &ok);
	add_num(root, "severity", p->severity, &ok);
	add_num(root, "started_ms", (double)p->started_ms, &ok);
	add_num(root, "peak_score", p->peak_score, &ok);
	add_num(root, "over", p->over, &ok);
	add_num(root, "under", p->under, &ok);
	cJSON *arr = cJSON_AddArrayToObject(root, "peak_top");
	if (!arr)
		ok = false;
	for (int i = 0; arr && i < p->n_peak_top && i < ALERT_TOP; i++) {
		cJSON *c = cJSON_CreateObject();

		if (!c || !cJSON_AddItemToArray(arr, c)) {
			cJSON_Delete(c);
			ok = false;
			break;
		}
		add_num(c, "channel", p->peak_top[i].channel, &ok);
		add_num(c, "share", p->peak_top[i].share, &ok);
		add_finite(c, "value", p->peak_top[i].value, &ok);
		add_finite(c, "expected", p->peak_top[i].expected, &ok);
	}
	return print_free(root, ok);
}

/* Reads an integral number in [lo, hi] from obj[key]. */
static bool get_int(const cJSON *obj, const char *key, double lo, double hi, double *out)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (!cJSON_IsNumber(it))
		return false;
	double v = it->valuedouble;

	if (!isfinite(v) || v != floor(v) || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

int alert_persist_from_json(const char *s, struct alert_persist *p)
{
	if (!s || !p)
		return -EINVAL;
	cJSON *root = cJSON_Parse(s);
	struct alert_persist q;
	double seq, sev, started, over, under;
	int rc = -PDM_ECORRUPT;

	memset(&q, 0, sizeof(q));
	if (!cJSON_IsObject(root))
		goto out;
	if (!get_int(root, "episode_seq", 0, JSON_INT_MAX, &seq) ||
	    !get_int(root, "severity", 0, 2, &sev) ||
	    !get_int(root, "started_ms", -JSON_INT_MAX, JSON_INT_MAX, &started) ||
	    !get_int(root, "over", 0, 1e9, &over) || !get_int(root, "under", 0, 1e9, &under))
		goto out;
	const cJSON *peak = cJSON_GetObjectItemCaseSensitive(root, "peak_score");
	if (!cJSON_IsNumber(peak) || !isfinite(peak->valuedouble))
		goto out;
	q.episode_seq = (uint64_t)seq;
	q.severity = (int)sev;
	q.started_ms = (int64_t)started;
	q.peak_score = peak->valuedouble;
	q.over = (int)over;
	q.under = (int)under;

	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "peak_top");
	if (arr) {
		const cJSON *it;

		if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) > ALERT_TOP)
			goto out;
		cJSON_ArrayForEach(it, arr)
		{
			double ch;
			const cJSON *sh = cJSON_GetObjectItemCaseSensitive(it, "share");

			if (!get_int(it, "channel", 0, 1e9, &ch) || !cJSON_IsNumber(sh) ||
			    !isfinite(sh->valuedouble))
				goto out;
			q.peak_top[q.n_peak_top].channel = (int)ch;
			q.peak_top[q.n_peak_top].share = (float)sh->valuedouble;
			/* absent in states stored before values were kept */
			q.peak_top[q.n_peak_top].value = get_opt_float(it, "value");
			q.peak_top[q.n_peak_top].expected = get_opt_float(it, "expected");
			q.n_peak_top++;
		}
	}
	if (!persist_valid(&q))
		goto out;
	*p = q;
	rc = 0;
out:
	cJSON_Delete(root);
	return rc;
}

int alert_episode_id(const char *asset, uint64_t seq, char *buf, size_t len)
{
	return snprintf(buf, len, "%s-%llu", asset, (unsigned long long)seq);
}

/* Appends contributors to the JSON array arr as the payload has them. */
static int add_contributors(cJSON *arr, const struct alert_contrib *top, int n,
			    const char *const *channel_names, const char *const *channel_units,
			    const bool *stuck)
{
	bool ok = true;

	if (!arr || n < 0 || n > ALERT_TOP || (n > 0 && (!top || !channel_names)))
		return -EINVAL;
	for (int i = 0; i < n; i++) {
		const struct alert_contrib *t = &top[i];
		if (t->channel < 0 || !channel_names[t->channel])
			return -EINVAL;
		cJSON *c = cJSON_CreateObject();
		if (!c || !cJSON_AddItemToArray(arr, c)) {
			cJSON_Delete(c);
			return -ENOMEM;
		}
		add_str(c, "sensor", channel_names[t->channel], &ok);
		add_num(c, "share", round3(t->share), &ok);
		add_finite(c, "value", round_sig5(t->value), &ok);
		add_finite(c, "expected", round_sig5(t->expected), &ok);
		const char *unit = channel_units ? channel_units[t->channel] : NULL;
		if (unit && unit[0] && (isfinite(t->value) || isfinite(t->expected)))
			add_str(c, "unit", unit, &ok);
		/* the sensor, not the machine, may be what is wrong */
		if (stuck && stuck[t->channel])
			ok = ok && cJSON_AddBoolToObject(c, "stuck", true);
	}
	return ok ? 0 : -ENOMEM;
}

char *alert_format_json(const struct alert_event *ev, const char *asset,
			const char *const *channel_names, const char *const *channel_units,
			const bool *stuck, const char *model_kind, uint32_t model_version,
			const char *host)
{
	if (!ev || !asset || !model_kind || (ev->n_top > 0 && !channel_names) ||
	    ev->n_top < 0 || ev->n_top > ALERT_TOP)
		return NULL;
	if (ev->kind != ALERT_RAISED && ev->kind != ALERT_ESCALATED && ev->kind != ALERT_CLEARED)
		return NULL;
	if (ev->severity != ALERT_SEV_WARNING && ev->severity != ALERT_SEV_CRITICAL)
		return NULL;
	for (int i = 0; i < ev->n_top; i++)
		if (ev->top[i].channel < 0 || !channel_names[ev->top[i].channel])
			return NULL;

	char id[256], ts[PDM_ISO8601_LEN], started[PDM_ISO8601_LEN];
	int n = alert_episode_id(asset, ev->episode_seq, id, sizeof(id));

	if (n < 0 || (size_t)n >= sizeof(id))
		return NULL;
	pdm_iso8601(ev->ts_ms, ts, sizeof(ts));
	pdm_iso8601(ev->started_ms, started, sizeof(started));

	cJSON *root = cJSON_CreateObject();
	bool ok = root != NULL;

	if (!ok)
		return print_free(root, false);
	add_num(root, "schema", 1, &ok);
	add_str(root, "id", id, &ok);
	add_str(root, "asset", asset, &ok);
	add_str(root, "event", alert_event_name(ev->kind), &ok);
	add_str(root, "severity", alert_severity_name(ev->severity), &ok);
	add_str(root, "ts", ts, &ok);
	add_str(root, "started", started, &ok);
	add_num(root, "score", round3(ev->score), &ok);
	add_num(root, "threshold", 1.0, &ok);

	cJSON *model = cJSON_AddObjectToObject(root, "model");
	if (model) {
		add_str(model, "kind", model_kind, &ok);
		add_num(model, "version", model_version, &ok);
	} else {
		ok = false;
	}

	cJSON *arr = cJSON_AddArrayToObject(root, "contributors");
	if (!arr || add_contributors(arr, ev->top, ev->n_top, channel_names, channel_units, stuck) < 0)
		ok = false;
	add_str(root, "host", host, &ok);
	if (ev->kind == ALERT_CLEARED)
		add_str(root, "reason", alert_clear_reason_name(ev->reason), &ok);
	return print_free(root, ok);
}

int alert_add_open_episode(cJSON *obj, const char *asset, const struct alert_persist *p,
			   const char *const *channel_names, const char *const *channel_units)
{
	char id[256], started[PDM_ISO8601_LEN];
	bool ok = true;

	if (!obj || !asset || !p)
		return -EINVAL;
	if (p->severity == ALERT_SEV_NONE)
		return 0;
	int n = alert_episode_id(asset, p->episode_seq, id, sizeof(id));
	if (n < 0 || (size_t)n >= sizeof(id))
		return -EINVAL;
	cJSON *ep = cJSON_AddObjectToObject(obj, "episode");
	if (!ep)
		return -ENOMEM;
	add_str(ep, "id", id, &ok);
	add_str(ep, "severity", alert_severity_name(p->severity), &ok);
	add_str(ep, "started", pdm_iso8601(p->started_ms, started, sizeof(started)), &ok);
	add_num(ep, "peak_score", round3(p->peak_score), &ok);
	cJSON *arr = cJSON_AddArrayToObject(ep, "contributors");
	if (!arr)
		return -ENOMEM;
	int rc = add_contributors(arr, p->peak_top, p->n_peak_top, channel_names, channel_units,
				  NULL);
	return rc < 0 ? rc : ok ? 0 : -ENOMEM;
}

/* key: [names...], only when there are any. */
static void add_names(cJSON *root, const char *key, const char *const *names, int n, bool *ok)
{
	if (n <= 0 || !names || !*ok)
		return;
	cJSON *arr = cJSON_AddArrayToObject(root, key);
	*ok = arr != NULL;
	for (int i = 0; *ok && i < n; i++) {
		cJSON *s = cJSON_CreateString(names[i] ? names[i] : "");
		*ok = s && cJSON_AddItemToArray(arr, s);
		if (!*ok)
			cJSON_Delete(s);
	}
}

char *alert_format_state_json(const char *asset, const char *state, double score,
			      uint32_t model_version, int64_t ts_ms,
			      const char *const *missing, int n_missing,
			      const char *const *stuck, int n_stuck)
{
	static const char *const states[] = { "learning", "normal", "warning",
					      "critical", "off",    "no_data" };
	bool known = false;

	if (!asset || !state)
		return NULL;
	for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
		if (strcmp(state, states[i]) == 0)
			known = true;
	if (!known)
		return NULL;

	char ts[PDM_ISO8601_LEN];
	cJSON *root = cJSON_CreateObject();
	bool ok = root != NULL;

	if (!ok)
		return print_free(root, false);
	pdm_iso8601(ts_ms, ts, sizeof(ts));
	add_str(root, "asset", asset, &ok);
	add_str(root, "state", state, &ok);
	if (isfinite(score))
		add_num(root, "score", round3(score), &ok);
	else
		add_str(root, "score", NULL, &ok);
	if (model_version)
		add_num(root, "model_version", model_version, &ok);
	else
		add_str(root, "model_version", NULL, &ok);
	add_str(root, "ts", ts, &ok);
	add_names(root, "missing", missing, n_missing, &ok);
	add_names(root, "stuck", stuck, n_stuck, &ok);
	return print_free(root, ok);
}
