/*
 * fuzz_mqtt.c - libFuzzer harness for the MQTT payload parser
 * (connectors/mqtt_parse.c).
 *
 * Each input is one message payload, decoded the ways a broker message can
 * reach mqtt_parse_payload(): as JSON with plantsim's telemetry fields and an
 * epoch/ISO "ts" field, as JSON with nested and array paths and no timestamp,
 * under a tiny payload limit and sample cap, and as a plain number on three
 * topics of a format = value source. The input's first two lines are also
 * used as a topic filter and a topic, matched against a reference matcher.
 *
 * Besides the sanitizers it checks the parser's promises: only the
 * documented codes, never more samples than asked, one sample per field at
 * most (per object of a batch, whose samples come in time order), timestamps inside 2000..2100 (or the receive time), quality BAD
 * exactly for non-finite or out-of-range values, reasons without control
 * characters, -EILSEQ exactly for invalid UTF-8.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RECV_MS INT64_C(1700000000000)
#define MAX_OUT 16

static const struct mqtt_field plant_fields[] = {
	{ .path = "speed", .sensor = 1, .has_min = true, .valid_min = 0 },
	{ .path = "process.flow", .sensor = 2, .has_min = true, .has_max = true,
	  .valid_min = 0, .valid_max = 500 },
	{ .path = "process.pressure", .sensor = 3 },
	{ .path = "current", .sensor = 4, .has_max = true, .valid_max = 1e6 },
	{ .path = "vibration_rms", .sensor = 5 },
	{ .path = "bearing_temp", .sensor = 6, .has_min = true, .has_max = true,
	  .valid_min = -40, .valid_max = 200 },
	{ .path = "motor_temp", .sensor = 7 },
};

static const struct mqtt_field nested_fields[] = {
	{ .path = "axes.0", .sensor = 11 },
	{ .path = "axes.2", .sensor = 12 },
	{ .path = "a.b.c.d", .sensor = 13 },
	{ .path = "m.0.v", .sensor = 14 },
	{ .path = "values[id=a.b].v", .sensor = 24, .quality_path = "values[id=a.b].q" },
	{ .path = "q.v", .sensor = 25, .quality_path = "q.q", .quality_good = "opc-ua" },
	{ .path = "q.w", .sensor = 26, .quality_path = "q.q", .quality_good = "opc-da" },
	{ .path = "q.x", .sensor = 27, .quality_path = "q.q", .quality_good = "192, GOOD,,  " },
	{ .path = "values[id=t].v", .sensor = 28, .ts_path = "values[id=t].t" },
	{ .path = "ts", .sensor = 15 },
	{ .path = "on", .sensor = 16 },
	{ .path = "s", .sensor = 17, .has_min = true, .valid_min = -1 },
	{ .path = "", .sensor = 18 },
	{ .path = "a..b", .sensor = 19 },
	{ .path = "x.99999999999999999999", .sensor = 20 },
};

static const struct mqtt_field value_fields[] = {
	{ .path = "temp", .sensor = 21, .has_max = true, .valid_max = 150 },
	{ .path = "plant/pump-a/flow", .sensor = 22 },
	{ .path = "pressure", .sensor = 23 },
};

static const struct mqtt_field any_field[] = {
	{ .path = NULL, .sensor = 31, .has_min = true, .has_max = true, .valid_min = -1e3,
	  .valid_max = 1e3 },
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const struct mqtt_sub_cfg subs[] = {
	{ .name = "plant", .filter = "plant/+/telemetry", .format = MQTT_FMT_JSON,
	  .ts_field = "ts", .fields = plant_fields, .n_fields = N(plant_fields) },
	{ .name = "nested", .filter = "#", .format = MQTT_FMT_JSON, .ts_field = NULL,
	  .fields = nested_fields, .n_fields = N(nested_fields) },
	{ .name = "meta", .filter = "#", .format = MQTT_FMT_JSON, .ts_field = "meta.time",
	  .fields = nested_fields, .n_fields = N(nested_fields), .max_payload = 64 },
	{ .name = "value", .filter = "plant/#", .format = MQTT_FMT_VALUE,
	  .fields = value_fields, .n_fields = N(value_fields) },
	{ .name = "any", .filter = "plant/+/x", .format = MQTT_FMT_VALUE, .fields = any_field,
	  .n_fields = 1, .max_payload = 16 },
};

static const char *const topics[] = { "plant/pump-a/temp", "plant/pump-a/flow", "temp" };

/* Unicode 3.9 table 3-7, written out independently of mqtt_utf8_valid(). */
static bool utf8_ref(const uint8_t *p, size_t len)
{
	size_t i = 0;
	while (i < len) {
		uint8_t c = p[i];
		uint8_t lo = 0x80, hi = 0xBF;
		size_t n;
		if (c <= 0x7F) {
			i++;
			continue;
		} else if (c >= 0xC2 && c <= 0xDF) {
			n = 1;
		} else if (c == 0xE0) {
			n = 2, lo = 0xA0;
		} else if (c == 0xED) {
			n = 2, hi = 0x9F;
		} else if (c >= 0xE1 && c <= 0xEF) {
			n = 2;
		} else if (c == 0xF0) {
			n = 3, lo = 0x90;
		} else if (c == 0xF4) {
			n = 3, hi = 0x8F;
		} else if (c >= 0xF1 && c <= 0xF3) {
			n = 3;
		} else {
			return false;
		}
		if (len - i <= n || p[i + 1] < lo || p[i + 1] > hi)
			return false;
		for (size_t k = 2; k <= n; k++)
			if (p[i + k] < 0x80 || p[i + k] > 0xBF)
				return false;
		i += n + 1;
	}
	return true;
}

static void check_why(const char *why, size_t whylen)
{
	if (!memchr(why, '\0', whylen))
		abort();
	for (const char *p = why; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			abort();
}

static void run(const struct mqtt_sub_cfg *s, const char *topic, const uint8_t *data, size_t size,
		size_t max)
{
	struct pdm_sample out[MAX_OUT];
	char why[128];
	size_t limit = s->max_payload ? s->max_payload : MQTT_DEFAULT_MAX_PAYLOAD;

	memset(why, 'x', sizeof(why));
	int rc = mqtt_parse_payload(s, topic, data, size, RECV_MS, out, max, why, sizeof(why));
	check_why(why, sizeof(why));
	if (size > limit) {
		if (rc != -E2BIG)
			abort();
		return;
	}
	if (size > 0 && (rc == -EILSEQ) != !utf8_ref(data, size))
		abort();
	if (rc < 0) {
		if (rc != -EBADMSG && rc != -EPROTOTYPE && rc != -ERANGE && rc != -EILSEQ)
			abort();
		if (!why[0])
			abort();
		return;
	}
	if ((size_t)rc > max)
		abort();
	/* A JSON batch (an array of objects) gives a field once per object, in
	 * time order; a single object once. */
	size_t at = size >= 3 && !memcmp(data, "\xEF\xBB\xBF", 3) ? 3 : 0; /* a BOM */
	while (at < size && (data[at] == ' ' || data[at] == '\t' || data[at] == '\r' ||
			     data[at] == '\n'))
		at++;
	bool batch = s->format == MQTT_FMT_JSON && at < size && data[at] == '[';
	uint64_t seen = 0;
	for (int i = 0; i < rc; i++) {
		const struct mqtt_field *f = NULL;
		for (size_t k = 0; k < s->n_fields; k++)
			if (s->fields[k].sensor == out[i].sensor)
				f = &s->fields[k];
		if (!f || (!batch && (seen & (UINT64_C(1) << out[i].sensor))))
			abort();
		if (batch && i > 0 && out[i].ts_ms < out[i - 1].ts_ms)
			abort();
		seen |= UINT64_C(1) << out[i].sensor;
		/* a value with a time of its own: a sane one, and the samples in
		 * time order (the message's time is RECV_MS here) */
		bool own = f->ts_path && out[i].ts_ms != RECV_MS && !s->ts_field;
		if (own && (out[i].ts_ms < MQTT_TS_MIN_MS ||
			    out[i].ts_ms > RECV_MS + MQTT_TS_MAX_AHEAD_MS))
			abort();
		if (s->ts_field ? out[i].ts_ms < MQTT_TS_MIN_MS || out[i].ts_ms >= MQTT_TS_MAX_MS
				: out[i].ts_ms != RECV_MS && !own)
			abort();
		if (own)
			for (int k = 1; k < rc; k++)
				if (out[k].ts_ms < out[k - 1].ts_ms)
					abort();
		double v = out[i].value;
		bool bad = !isfinite(v) || (f->has_min && v < f->valid_min) ||
			   (f->has_max && v > f->valid_max);
		/* a quality flag may make a valid value bad, never the reverse */
		if (out[i].quality != PDM_Q_BAD && out[i].quality != PDM_Q_GOOD)
			abort();
		if (bad ? out[i].quality != PDM_Q_BAD
			: out[i].quality == PDM_Q_BAD && !f->quality_path)
			abort();
	}
}

/* Level by level, as MQTT 3.1.1 section 4.7 words it. */
static bool match_ref(const char *f, const char *t)
{
	if (t[0] == '$' && (f[0] == '+' || f[0] == '#'))
		return false;
	for (;;) {
		size_t fl = strcspn(f, "/"), tl = strcspn(t, "/");
		if (fl == 1 && f[0] == '#')
			return true;
		if (!(fl == 1 && f[0] == '+') && (fl != tl || memcmp(f, t, fl)))
			return false;
		f += fl;
		t += tl;
		if (!*f && !*t)
			return true;
		if (!*f)
			return false;
		f++; /* past '/' */
		if (!*t)
			return !strcmp(f, "#"); /* "a/#" matches "a" */
		t++;
	}
}

static void topics_check(const uint8_t *data, size_t size)
{
	char filter[128], topic[128];
	const uint8_t *nl = memchr(data, '\n', size);
	if (!nl || memchr(data, '\0', size))
		return;
	size_t fl = (size_t)(nl - data), rest = size - fl - 1;
	const uint8_t *t = nl + 1, *nl2 = memchr(t, '\n', rest);
	size_t tl = nl2 ? (size_t)(nl2 - t) : rest;
	if (fl >= sizeof(filter) || tl >= sizeof(topic))
		return;
	memcpy(filter, data, fl);
	filter[fl] = '\0';
	memcpy(topic, t, tl);
	topic[tl] = '\0';
	bool ok = mqtt_filter_check(filter) == 0;
	bool matches = mqtt_topic_matches(filter, topic);
	/* a topic never holds wildcards, and is never empty */
	if (!ok || !tl || strpbrk(topic, "+#"))
		return;
	if (matches != match_ref(filter, topic))
		abort();
	if (strcmp(filter, topic) == 0 && !matches)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	for (size_t i = 0; i < N(subs); i++) {
		if (subs[i].format == MQTT_FMT_VALUE) {
			for (size_t k = 0; k < N(topics); k++)
				run(&subs[i], topics[k], data, size, k == 2 ? 0 : 1);
		} else {
			run(&subs[i], "plant/pump-a/telemetry", data, size, MAX_OUT);
			run(&subs[i], "plant/pump-a/telemetry", data, size, 2);
		}
	}
	topics_check(data, size);
	return 0;
}
