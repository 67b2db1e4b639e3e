/*
 * mqtt_parse.c - topic matching and payload decoding for MQTT sources.
 *
 * Everything here runs on bytes an outside party controls, so the order of
 * checks is deliberate: size first (cheap), then UTF-8 and nesting depth in
 * one linear pass, and only then cJSON, whose own recursion limit (1000) is
 * far too deep to be our only guard. Nothing here keeps state between calls.
 */
#include "mqtt_parse.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "pdm_time.h"

/* Longest text accepted as one number (value payloads, numeric strings). */
#define NUM_TEXT_MAX 64

static void say(char *why, size_t whylen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void say(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (!why || whylen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	/* reasons quote payload bytes and end up in the journal: no forged lines */
	for (char *p = why; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
}

int mqtt_format_parse(const char *s, enum mqtt_format *f)
{
	if (s && !strcmp(s, "json")) {
		*f = MQTT_FMT_JSON;
		return 0;
	}
	if (s && !strcmp(s, "value")) {
		*f = MQTT_FMT_VALUE;
		return 0;
	}
	return -EINVAL;
}

const char *mqtt_format_name(enum mqtt_format f)
{
	switch (f) {
	case MQTT_FMT_JSON:
		return "json";
	case MQTT_FMT_VALUE:
		return "value";
	}
	return "?";
}

bool mqtt_utf8_valid(const void *buf, size_t len)
{
	const unsigned char *p = buf;
	size_t i = 0;

	while (i < len) {
		unsigned c = p[i];
		size_t n;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF) {
			n = 1;
			cp = c & 0x1F;
		} else if (c >= 0xE0 && c <= 0xEF) {
			n = 2;
			cp = c & 0x0F;
		} else if (c >= 0xF0 && c <= 0xF4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false; /* continuation byte first, C0/C1 overlong, or > F4 */
		}
		if (len - i <= n)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((p[i + k] & 0xC0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + k] & 0x3F);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
		    (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		i += n + 1;
	}
	return true;
}

/* Deepest nesting of [ and { outside strings; stops counting past `limit`.
 * Returns -1 on a control character (JSON allows none but white space, and
 * cJSON would silently skip NUL and friends as if they were blanks). */
static int json_depth(const char *p, size_t len, int limit)
{
	int depth = 0, deepest = 0;
	bool in_str = false;

	for (size_t i = 0; i < len; i++) {
		char c = p[i];
		if ((unsigned char)c < 0x20 && c != ' ' && c != '\t' && c != '\n' && c != '\r')
			return -1;
		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = false;
			continue;
		}
		if (c == '"') {
			in_str = true;
		} else if (c == '{' || c == '[') {
			if (++depth > deepest)
				deepest = depth;
			if (deepest > limit)
				return deepest;
		} else if (c == '}' || c == ']') {
			depth--;
		}
	}
	return deepest;
}

bool mqtt_topic_matches(const char *filter, const char *topic)
{
	const char *f = filter, *t = topic;

	if (!f || !t)
		return false;
	if (*t == '$' && (*f == '+' || *f == '#'))
		return false;
	for (;;) {
		if (*f == '#')
			return true; /* also matches the parent level: "a/#" matches "a" */
		if (*f == '+') {
			while (*t && *t != '/')
				t++;
			f++;
		} else {
			while (*f && *f != '/' && *f == *t) {
				f++;
				t++;
			}
			if ((*f && *f != '/') || (*t && *t != '/'))
				return false;
		}
		/* both at end of a level */
		if (!*f && !*t)
			return true;
		if (*f == '/' && *t == '/') {
			f++;
			t++;
			continue;
		}
		/* topic ended where the filter goes on: only "/#" may follow */
		if (!*t && f[0] == '/' && f[1] == '#' && f[2] == '\0')
			return true;
		return false;
	}
}

int mqtt_filter_check(const char *filter)
{
	if (!filter || !*filter)
		return -EINVAL;
	for (const char *p = filter; *p; p++) {
		bool level_start = p == filter || p[-1] == '/';
		bool level_end = p[1] == '\0' || p[1] == '/';
		if (*p == '#' && !(level_start && p[1] == '\0'))
			return -EINVAL;
		if (*p == '+' && !(level_start && level_end))
			return -EINVAL;
	}
	return 0;
}

/* Parses a complete number from text of length len; NaN and Inf are
 * accepted (the caller marks them bad). Returns 0 or -EINVAL. */
static int parse_number_text(const char *s, size_t len, double *out)
{
	char buf[NUM_TEXT_MAX + 1];
	char *end;

	while (len > 0 && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')) {
		s++;
		len--;
	}
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r' ||
			   s[len - 1] == '\n'))
		len--;
	if (len == 0 || len > NUM_TEXT_MAX || memchr(s, '\0', len))
		return -EINVAL;
	memcpy(buf, s, len);
	buf[len] = '\0';
	/* strtod would also take hex floats; devices never send them on purpose */
	if (strchr(buf, 'x') || strchr(buf, 'X'))
		return -EINVAL;
	if (!strcmp(buf, "true")) {
		*out = 1.0;
		return 0;
	}
	if (!strcmp(buf, "false")) {
		*out = 0.0;
		return 0;
	}
	errno = 0;
	*out = strtod(buf, &end);
	if (end == buf || *end != '\0')
		return -EINVAL;
	return 0;
}

/*
 * One step of a field path: "name", "3" (an array index), or
 * "name[key=value]": the member `name`, an array, and in it the first object
 * whose member `key` is the string (or number) `value` (gateways that send
 * a list of tags, {"values":[{"id":"Line1.Pump.Temp","v":41.2}, ...]}).
 * The value may contain dots. Returns the rest of the path after the step
 * (past its '.'), or NULL when the path is malformed.
 */
struct step {
	char name[256];
	bool select;
	char key[128], value[256];
};

static const char *path_step(const char *path, struct step *st)
{
	size_t n = strcspn(path, ".[");
	if (n >= sizeof(st->name))
		return NULL;
	memcpy(st->name, path, n);
	st->name[n] = '\0';
	path += n;
	st->select = *path == '[';
	if (st->select) {
		const char *eq = strchr(path, '='), *close = strchr(path, ']');
		if (!eq || !close || eq > close || eq == path + 1 || n == 0)
			return NULL;
		size_t kl = (size_t)(eq - path - 1), vl = (size_t)(close - eq - 1);
		if (kl >= sizeof(st->key) || vl >= sizeof(st->value) || vl == 0)
			return NULL;
		memcpy(st->key, path + 1, kl);
		st->key[kl] = '\0';
		memcpy(st->value, eq + 1, vl);
		st->value[vl] = '\0';
		path = close + 1;
	} else if (n == 0) {
		return NULL;
	}
	if (*path == '.') {
		if (!path[1])
			return NULL;
		return path + 1;
	}
	return *path ? NULL : path;
}

int mqtt_field_check(const char *path)
{
	struct step st;
	if (!path || !*path)
		return -EINVAL;
	while (*path)
		if (!(path = path_step(path, &st)))
			return -EINVAL;
	return 0;
}

/* The first object of array `arr` whose member `key` is `value`. */
static const cJSON *select_item(const cJSON *arr, const char *key, const char *value)
{
	const cJSON *it;
	cJSON_ArrayForEach(it, arr) {
		const cJSON *m = cJSON_IsObject(it) ? cJSON_GetObjectItemCaseSensitive(it, key) : NULL;
		if (cJSON_IsString(m) && m->valuestring && strcmp(m->valuestring, value) == 0)
			return it;
		double d;
		if (cJSON_IsNumber(m) && parse_number_text(value, strlen(value), &d) == 0 &&
		    m->valuedouble == d)
			return it;
	}
	return NULL;
}

/* Follows a field path through objects, arrays by decimal index, and
 * arrays of tag objects by a [key=value] selector (path_step). */
static const cJSON *json_path(const cJSON *root, const char *path)
{
	const cJSON *cur = root;
	struct step st;

	while (cur && *path) {
		if (!(path = path_step(path, &st)))
			return NULL;
		if (cJSON_IsObject(cur)) {
			cur = cJSON_GetObjectItemCaseSensitive(cur, st.name);
		} else if (cJSON_IsArray(cur) && !st.select) {
			char *end;
			long idx = strtol(st.name, &end, 10);
			if (*end || idx < 0 || st.name[0] < '0' || st.name[0] > '9')
				return NULL;
			cur = cJSON_GetArrayItem(cur, (int)idx);
		} else {
			return NULL;
		}
		if (st.select)
			cur = cJSON_IsArray(cur) ? select_item(cur, st.key, st.value) : NULL;
	}
	return cur;
}

/* A JSON leaf as a number: number, numeric string or boolean. */
static int json_number(const cJSON *v, double *out)
{
	/* A gateway's "no reading" (a cut wire, a device offline): a sample of
	 * bad quality, which tells that the sensor has no value now, rather
	 * than a malformed field logged every message. */
	if (cJSON_IsNull(v)) {
		*out = NAN;
		return 0;
	}
	if (cJSON_IsNumber(v)) {
		*out = v->valuedouble;
		return 0;
	}
	if (cJSON_IsBool(v)) {
		*out = cJSON_IsTrue(v) ? 1.0 : 0.0;
		return 0;
	}
	if (cJSON_IsString(v) && v->valuestring)
		return parse_number_text(v->valuestring, strlen(v->valuestring), out);
	return -EPROTOTYPE;
}

/* Epoch in s, ms, us or ns, told apart by magnitude: 1e11 s is the year
 * 5138, 1e11 ms is 1973, so the bands do not overlap for plausible dates. */
static int epoch_to_ms(double v, int64_t *ms)
{
	double a = fabs(v);

	if (!isfinite(v))
		return -ERANGE;
	if (a < 1e11)
		v *= 1000.0;
	else if (a < 1e14)
		; /* already ms */
	else if (a < 1e17)
		v /= 1000.0;
	else
		v /= 1e6;
	if (v < (double)MQTT_TS_MIN_MS || v >= (double)MQTT_TS_MAX_MS)
		return -ERANGE;
	*ms = llround(v);
	return 0;
}

static int json_timestamp(const cJSON *root, const char *field, int64_t *ms, char *why, size_t whylen)
{
	const cJSON *v = json_path(root, field);
	double num;
	int rc;

	if (!v) {
		say(why, whylen, "timestamp field '%s' missing", field);
		return -EBADMSG;
	}
	if (cJSON_IsNumber(v)) {
		rc = epoch_to_ms(v->valuedouble, ms);
	} else if (cJSON_IsString(v) && v->valuestring) {
		if (parse_number_text(v->valuestring, strlen(v->valuestring), &num) == 0)
			rc = epoch_to_ms(num, ms);
		else if (pdm_parse_iso8601(v->valuestring, ms) == 0)
			rc = (*ms >= MQTT_TS_MIN_MS && *ms < MQTT_TS_MAX_MS) ? 0 : -ERANGE;
		else {
			say(why, whylen, "timestamp field '%s': '%.40s' is not epoch or ISO-8601", field,
			    v->valuestring);
			return -EPROTOTYPE;
		}
	} else {
		say(why, whylen, "timestamp field '%s' is not a number or string", field);
		return -EPROTOTYPE;
	}
	if (rc < 0)
		say(why, whylen, "timestamp field '%s' outside 2000..2100", field);
	return rc;
}

static void fill(struct pdm_sample *o, const struct mqtt_field *f, int64_t ts, double v)
{
	o->sensor = f->sensor;
	o->ts_ms = ts;
	o->value = v;
	o->quality = PDM_Q_GOOD;
	if (!isfinite(v) || (f->has_min && v < f->valid_min) || (f->has_max && v > f->valid_max))
		o->quality = PDM_Q_BAD;
}

static bool starts_with_ci(const char *s, const char *prefix)
{
	return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

/* The next entry of a comma-separated list at *p, blanks around it left
 * out: its start, its length in *len (0 for an empty entry); NULL after the
 * last. */
static const char *list_next(const char **p, size_t *len)
{
	const char *s = *p;
	if (!s)
		return NULL;
	s += strspn(s, " \t");
	size_t n = strcspn(s, ",");
	size_t m = n;
	while (m > 0 && (s[m - 1] == ' ' || s[m - 1] == '\t'))
		m--;
	*len = m;
	*p = s[n] == ',' ? s + n + 1 : NULL;
	return s;
}

/* Whether the list "192, 216" or "GOOD, OK" holds the flag q (a number or
 * a text; a boolean is the text true / false). */
static bool list_has(const char *list, const cJSON *q)
{
	char text[64];
	bool is_num = cJSON_IsNumber(q);
	if (cJSON_IsString(q) && q->valuestring)
		snprintf(text, sizeof(text), "%s", q->valuestring);
	else if (cJSON_IsBool(q))
		snprintf(text, sizeof(text), "%s", cJSON_IsTrue(q) ? "true" : "false");
	else if (!is_num)
		return false;
	const char *p = list, *e;
	size_t m;
	while ((e = list_next(&p, &m))) {
		if (m == 0)
			continue;
		char tok[64];
		snprintf(tok, sizeof(tok), "%.*s", (int)(m < 63 ? m : 63), e);
		if (is_num) {
			char *end;
			double d = strtod(tok, &end);
			if (*end == '\0' && d == q->valuedouble)
				return true;
		} else if (!strcasecmp(tok, text)) {
			return true;
		}
	}
	return false;
}

/*
 * Whether a quality flag says the value is not to be trusted. A missing
 * flag never does (OPC UA leaves out a Good StatusCode). Without a rule:
 * false, "false", and text starting with "bad" or "uncertain" (OPC UA's
 * symbols: Bad_SensorFailure, UncertainLastUsableValue) do; numbers do
 * not, since 0 is good to OPC UA and bad to OPC DA: quality_good says which.
 */
static bool flag_bad(const cJSON *q, const char *good)
{
	if (!q)
		return false;
	if (good && !strcmp(good, "opc-ua")) {
		/* the non-reversible JSON encoding: {"Code": N, "Symbol": "Bad..."};
		 * an object with neither says nothing */
		if (cJSON_IsObject(q)) {
			const cJSON *code = cJSON_GetObjectItemCaseSensitive(q, "Code");
			q = code ? code : cJSON_GetObjectItemCaseSensitive(q, "Symbol");
			if (!q)
				return false;
		}
		if (cJSON_IsNumber(q))
			return q->valuedouble < 0 || q->valuedouble >= 1073741824.0; /* 0x40000000 */
	} else if (good && !strcmp(good, "opc-da")) {
		if (cJSON_IsNumber(q)) {
			double d = q->valuedouble;
			return !(d >= 0 && d <= 65535 && ((unsigned)d & 0xC0u) == 0xC0u);
		}
	} else if (good) {
		return !list_has(good, q);
	}
	if (cJSON_IsFalse(q))
		return true;
	if (cJSON_IsString(q) && q->valuestring)
		return !strcasecmp(q->valuestring, "false") || starts_with_ci(q->valuestring, "bad") ||
		       starts_with_ci(q->valuestring, "uncertain");
	/* opc-ua / opc-da with a flag that is not a number: the text rule */
	return false;
}

int mqtt_quality_check(const char *good)
{
	if (!good || !strcmp(good, "opc-ua") || !strcmp(good, "opc-da"))
		return 0;
	const char *p = good;
	size_t m;
	while (list_next(&p, &m))
		if (m == 0 || m > 63)
			return -EINVAL; /* an empty entry: ",," or a comma at an end */
	return 0;
}

static int by_time(const void *a, const void *b)
{
	const struct pdm_sample *x = a, *y = b;
	if (x->ts_ms != y->ts_ms)
		return x->ts_ms < y->ts_ms ? -1 : 1;
	return x->sensor < y->sensor ? -1 : x->sensor > y->sensor;
}

/* What one object's fields did not give: counted across a batch. */
struct skipped {
	size_t wrong;            /* fields that are not numbers */
	const char *first_wrong; /* the first such field's path */
	bool first_is_time;      /* ... a value's own time, unreadable or absurd */
};

static void say_skipped(const struct skipped *sk, char *why, size_t whylen)
{
	say(why, whylen, "field '%s'%s %s", sk->first_wrong, sk->wrong > 1 ? " and others" : "",
	    sk->first_is_time ? "is not a usable time" : "is not a number");
}

/*
 * The samples of one JSON object: the message itself, or one object of a
 * batch. Returns how many (up to max), or a negative code with why.
 */
static int parse_object(const struct mqtt_sub_cfg *s, const cJSON *obj, int64_t recv_ms,
			struct pdm_sample *out, size_t max, struct skipped *sk, char *why,
			size_t whylen)
{
	int64_t ts = recv_ms;
	if (s->ts_field) {
		int rc = json_timestamp(obj, s->ts_field, &ts, why, whylen);
		if (rc < 0)
			return rc;
		if (ts - recv_ms > MQTT_TS_MAX_AHEAD_MS) {
			say(why, whylen,
			    "timestamp field '%s' is %.1f h ahead of this host's clock (more than "
			    "a day: no time zone is)", s->ts_field, (double)(ts - recv_ms) / 3.6e6);
			return -ERANGE;
		}
	}
	size_t n = 0;
	bool own_times = false;
	for (size_t i = 0; i < s->n_fields && n < max; i++) {
		const struct mqtt_field *f = &s->fields[i];
		const cJSON *v = f->path ? json_path(obj, f->path) : NULL;
		double num;
		if (!v)
			continue; /* messages on a wildcard filter often carry a subset */
		if (json_number(v, &num) < 0) {
			if (!sk->wrong++)
				sk->first_wrong = f->path;
			continue;
		}
		int64_t fts = ts;
		if (f->ts_path && json_path(obj, f->ts_path)) {
			char tmp[8];
			if (json_timestamp(obj, f->ts_path, &fts, tmp, sizeof(tmp)) < 0 ||
			    fts - recv_ms > MQTT_TS_MAX_AHEAD_MS) {
				/* a value at an unknown time is no sample */
				if (!sk->wrong++) {
					sk->first_wrong = f->ts_path;
					sk->first_is_time = true;
				}
				continue;
			}
			own_times = true;
		}
		fill(&out[n], f, fts, num);
		if (f->quality_path && flag_bad(json_path(obj, f->quality_path), f->quality_good))
			out[n].quality = PDM_Q_BAD;
		n++;
	}
	/* values with times of their own come out in time order, as a batch's */
	if (own_times && n > 1)
		qsort(out, n, sizeof(*out), by_time);
	return (int)n;
}

/*
 * A batch: a JSON array of objects, each read like a message of its own
 * (gateways that buffer a second of readings send them so, some newest
 * first). The samples come out in time order, since a sensor's samples
 * older than its last one would be dropped as late. Objects that cannot be
 * read are skipped and said in why; the batch fails only if none could.
 */
static int parse_batch(const struct mqtt_sub_cfg *s, const cJSON *root, int64_t recv_ms,
		       struct pdm_sample *out, size_t max, struct skipped *sk, char *why, size_t whylen)
{
	size_t items = (size_t)cJSON_GetArraySize(root), idx = 0, n = 0, bad = 0, first_bad = 0;
	size_t used = 0;
	int bad_rc = 0;
	char item_why[120] = "";
	const cJSON *it;

	cJSON_ArrayForEach(it, root) {
		size_t at = idx++;
		if (n + s->n_fields > max)
			break;
		used++;
		int k;
		char this_why[120] = "";
		if (!cJSON_IsObject(it)) {
			snprintf(this_why, sizeof(this_why), "not an object");
			k = -EPROTOTYPE;
		} else {
			k = parse_object(s, it, recv_ms, out + n, max - n, sk, this_why,
					 sizeof(this_why));
		}
		if (k < 0) {
			if (!bad++) {
				bad_rc = k;
				first_bad = at;
				memcpy(item_why, this_why, sizeof(item_why));
			}
			continue;
		}
		n += (size_t)k;
	}
	if (n > 1)
		qsort(out, n, sizeof(*out), by_time);
	if (bad) {
		char tmp[160];
		snprintf(tmp, sizeof(tmp), "batch: %zu of %zu objects unusable (object %zu: %s)", bad,
			 items, first_bad, item_why);
		say(why, whylen, "%s", tmp);
		if (n == 0 && used == bad)
			return bad_rc;
	} else if (used < items) {
		say(why, whylen, "batch of %zu objects: the first %zu used (at most %zu samples "
			"per message)", items, used, max);
	}
	return (int)n;
}

static int parse_json(const struct mqtt_sub_cfg *s, const char *payload, size_t len, int64_t recv_ms,
		      struct pdm_sample *out, size_t max, char *why, size_t whylen)
{
	int depth = json_depth(payload, len, MQTT_JSON_MAX_DEPTH);
	if (depth < 0) {
		say(why, whylen, "control character in JSON");
		return -EBADMSG;
	}
	if (depth > MQTT_JSON_MAX_DEPTH) {
		say(why, whylen, "JSON nested deeper than %d", MQTT_JSON_MAX_DEPTH);
		return -EBADMSG;
	}
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(payload, len, &end, false);
	if (!root) {
		say(why, whylen, "not valid JSON");
		return -EBADMSG;
	}
	int rc = 0;
	/* cJSON stops after the first value; anything but white space after it
	 * means the message is not the one JSON document we expect */
	for (const char *p = end; p && p < payload + len; p++) {
		if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') {
			say(why, whylen, "trailing data after the JSON value");
			rc = -EBADMSG;
			goto out;
		}
	}
	struct skipped sk = { 0, NULL, false };
	if (cJSON_IsArray(root)) {
		rc = parse_batch(s, root, recv_ms, out, max, &sk, why, whylen);
		/* the batch's own reason first; else the fields' */
		if (rc >= 0 && sk.wrong && !(why && whylen && why[0]))
			say_skipped(&sk, why, whylen);
		if (rc == 0 && sk.wrong && cJSON_GetArraySize(root) > 0)
			rc = -EPROTOTYPE;
		goto out;
	}
	if (!cJSON_IsObject(root)) {
		say(why, whylen, "JSON payload is not an object (nor an array of objects)");
		rc = -EPROTOTYPE;
		goto out;
	}
	rc = parse_object(s, root, recv_ms, out, max, &sk, why, whylen);
	if (rc < 0)
		goto out;
	if (sk.wrong) {
		say_skipped(&sk, why, whylen);
		if (rc == 0)
			rc = -EPROTOTYPE;
	}
out:
	cJSON_Delete(root);
	return rc;
}

/* The last level of a topic ("plant/pump/temp" -> "temp"). */
static const char *last_level(const char *topic)
{
	const char *slash = strrchr(topic, '/');
	return slash ? slash + 1 : topic;
}

static int parse_value(const struct mqtt_sub_cfg *s, const char *topic, const char *payload, size_t len,
		       int64_t recv_ms, struct pdm_sample *out, size_t max, char *why, size_t whylen)
{
	const struct mqtt_field *f = NULL;

	if (s->n_fields == 1 && !s->fields[0].path) {
		f = &s->fields[0];
	} else {
		const char *last = last_level(topic);
		for (size_t i = 0; i < s->n_fields && !f; i++)
			if (s->fields[i].path && !strcmp(s->fields[i].path, topic))
				f = &s->fields[i];
		for (size_t i = 0; i < s->n_fields && !f; i++)
			if (s->fields[i].path && !strcmp(s->fields[i].path, last))
				f = &s->fields[i];
	}
	if (!f || max == 0)
		return 0;
	double v;
	if (parse_number_text(payload, len, &v) < 0) {
		say(why, whylen, "payload '%.*s%s' is not a number", (int)(len < 40 ? len : 40), payload,
		    len > 40 ? "..." : "");
		return -EPROTOTYPE;
	}
	fill(&out[0], f, recv_ms, v);
	return 1;
}

int mqtt_parse_payload(const struct mqtt_sub_cfg *s, const char *topic, const void *payload, size_t len,
		       int64_t recv_ms, struct pdm_sample *out, size_t max, char *why, size_t whylen)
{
	size_t limit;

	if (why && whylen)
		why[0] = '\0';
	if (!s || !topic || (!payload && len) || (!out && max)) {
		say(why, whylen, "invalid arguments");
		return -EINVAL;
	}
	limit = s->max_payload ? s->max_payload : MQTT_DEFAULT_MAX_PAYLOAD;
	if (len > limit) {
		say(why, whylen, "payload of %zu bytes exceeds the limit of %zu", len, limit);
		return -E2BIG;
	}
	if (len == 0)
		return 0;
	if (!mqtt_utf8_valid(payload, len)) {
		say(why, whylen, "payload of %zu bytes is not UTF-8 text", len);
		return -EILSEQ;
	}
	switch (s->format) {
	case MQTT_FMT_JSON:
		return parse_json(s, payload, len, recv_ms, out, max, why, whylen);
	case MQTT_FMT_VALUE:
		return parse_value(s, topic, payload, len, recv_ms, out, max, why, whylen);
	}
	say(why, whylen, "unknown format");
	return -EINVAL;
}
