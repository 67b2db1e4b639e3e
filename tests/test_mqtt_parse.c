/*
 * test_mqtt_parse.c - the pure MQTT payload parser and topic matcher:
 * every format, dot paths, timestamp forms, and every rejection reason.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mqtt_parse.h"

#define RECV_MS INT64_C(1795003600000) /* 2026-11-18T12:06:40Z */

static const struct mqtt_field json_fields[] = {
	{ .path = "temp", .sensor = 1 },
	{ .path = "process.flow", .sensor = 2, .has_min = true, .valid_min = 0, .has_max = true, .valid_max = 100 },
	{ .path = "axes.1", .sensor = 3 },
	{ .path = "running", .sensor = 4 },
};

static struct mqtt_sub_cfg json_sub(const char *ts_field)
{
	struct mqtt_sub_cfg s = {
		.name = "feed", .filter = "plant/+/telemetry", .qos = 1, .format = MQTT_FMT_JSON,
		.ts_field = ts_field, .fields = json_fields, .n_fields = 4,
	};
	return s;
}

static int parse(const struct mqtt_sub_cfg *s, const char *topic, const char *payload, struct pdm_sample *out,
		 size_t max, char *why)
{
	return mqtt_parse_payload(s, topic, payload, strlen(payload), RECV_MS, out, max, why, 128);
}

/* All fields present: values, sensors, receive time, qualities. */
static void test_json_fields(void **state)
{
	(void)state;
	struct mqtt_sub_cfg s = json_sub(NULL);
	struct pdm_sample o[8];
	char why[128];
	int n = parse(&s, "plant/p1/telemetry",
		      "{\"temp\": 41.5, \"process\": {\"flow\": 12.25, \"other\": [1,2]}, "
		      "\"axes\": [0.1, 0.2, 0.3], \"running\": true}",
		      o, 8, why);
	assert_int_equal(n, 4);
	assert_string_equal(why, "");
	assert_int_equal(o[0].sensor, 1);
	assert_true(o[0].value == 41.5);
	assert_int_equal(o[1].sensor, 2);
	assert_true(o[1].value == 12.25);
	assert_int_equal(o[2].sensor, 3);
	assert_true(o[2].value == 0.2);
	assert_int_equal(o[3].sensor, 4);
	assert_true(o[3].value == 1.0);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(o[i].ts_ms, RECV_MS);
		assert_int_equal(o[i].quality, PDM_Q_GOOD);
	}
}

/* Missing fields are skipped, numeric strings accepted, out of range and
 * overflowing numbers marked bad. */
static void test_json_partial_and_quality(void **state)
{
	(void)state;
	struct mqtt_sub_cfg s = json_sub(NULL);
	struct pdm_sample o[8];
	char why[128];
	int n = parse(&s, "t", "{\"temp\": \"  17.5 \", \"process\": {\"flow\": 150}}", o, 8, why);
	assert_int_equal(n, 2);
	assert_true(o[0].value == 17.5);
	assert_int_equal(o[0].quality, PDM_Q_GOOD);
	assert_int_equal(o[1].sensor, 2);
	assert_int_equal(o[1].quality, PDM_Q_BAD);

	n = parse(&s, "t", "{\"process\": {\"flow\": -0.5}}", o, 8, why);
	assert_int_equal(n, 1);
	assert_int_equal(o[0].quality, PDM_Q_BAD);

	n = parse(&s, "t", "{\"temp\": 1e999}", o, 8, why);
	assert_int_equal(n, 1);
	assert_false(isfinite(o[0].value));
	assert_int_equal(o[0].quality, PDM_Q_BAD);

	n = parse(&s, "t", "{\"temp\": \"NaN\"}", o, 8, why);
	assert_int_equal(n, 1);
	assert_int_equal(o[0].quality, PDM_Q_BAD);

	/* none of ours present: not an error, just nothing */
	n = parse(&s, "t", "{\"humidity\": 3}", o, 8, why);
	assert_int_equal(n, 0);
	assert_string_equal(why, "");

	/* out buffer smaller than the field count */
	n = parse(&s, "t", "{\"temp\": 1, \"axes\": [1, 2], \"running\": false}", o, 2, why);
	assert_int_equal(n, 2);
}

/* Wrongly typed fields: skipped and reported; all wrong => -EPROTOTYPE. */
static void test_json_wrong_type(void **state)
{
	(void)state;
	struct mqtt_sub_cfg s = json_sub(NULL);
	struct pdm_sample o[8];
	char why[128];
	int n = parse(&s, "t", "{\"temp\": \"hot\", \"running\": false}", o, 8, why);
	assert_int_equal(n, 1);
	assert_int_equal(o[0].sensor, 4);
	assert_true(o[0].value == 0.0);
	assert_non_null(strstr(why, "temp"));

	n = parse(&s, "t", "{\"temp\": {\"x\": 1}, \"process\": {\"flow\": [1]}}", o, 8, why);
	assert_int_equal(n, -EPROTOTYPE);
	assert_non_null(strstr(why, "not a number"));

	/* null is a gateway's "no reading": a bad sample (the sensor has no
	 * value now), not a malformed field */
	n = parse(&s, "t", "{\"temp\": 21.5, \"process\": {\"flow\": null}}", o, 8, why);
	assert_int_equal(n, 2);
	assert_string_equal(why, "");
	for (int i = 0; i < 2; i++) {
		if (isnan(o[i].value))
			assert_int_equal(o[i].quality, PDM_Q_BAD);
		else
			assert_int_equal(o[i].quality, PDM_Q_GOOD);
	}
	assert_true(isnan(o[0].value) != isnan(o[1].value));

	n = parse(&s, "t", "[1, 2, 3]", o, 8, why);
	assert_int_equal(n, -EPROTOTYPE);
	n = parse(&s, "t", "42", o, 8, why);
	assert_int_equal(n, -EPROTOTYPE);
	n = parse(&s, "t", "{\"temp\": \"0x10\"}", o, 8, why);
	assert_int_equal(n, -EPROTOTYPE);
}

static int64_t ts_of(const char *ts_field, const char *payload, int *rc)
{
	struct mqtt_sub_cfg s = json_sub(ts_field);
	struct pdm_sample o[8];
	char why[128];
	*rc = parse(&s, "t", payload, o, 8, why);
	return *rc > 0 ? o[0].ts_ms : -1;
}

/* Timestamps: s, fractional s, ms, us, ns, numeric string, ISO-8601 with
 * zones, nested path; absurd and wrongly typed ones refused. */
static void test_json_timestamps(void **state)
{
	(void)state;
	int rc;
	const int64_t want = INT64_C(1795000000000); /* 2026-11-18T11:06:40Z */

	assert_int_equal(ts_of("ts", "{\"ts\": 1795000000, \"temp\": 1}", &rc), want);
	assert_int_equal(ts_of("ts", "{\"ts\": 1795000000.25, \"temp\": 1}", &rc), want + 250);
	assert_int_equal(ts_of("ts", "{\"ts\": 1795000000123, \"temp\": 1}", &rc), want + 123);
	assert_int_equal(ts_of("ts", "{\"ts\": 1795000000123456, \"temp\": 1}", &rc), want + 123);
	assert_int_equal(ts_of("ts", "{\"ts\": 1795000000123456789, \"temp\": 1}", &rc), want + 123);
	assert_int_equal(ts_of("ts", "{\"ts\": \"1795000000123\", \"temp\": 1}", &rc), want + 123);
	assert_int_equal(ts_of("ts", "{\"ts\": \"2026-11-18T11:06:40.5Z\", \"temp\": 1}", &rc), want + 500);
	assert_int_equal(ts_of("ts", "{\"ts\": \"2026-11-18T12:06:40+01:00\", \"temp\": 1}", &rc), want);
	assert_int_equal(ts_of("meta.time", "{\"meta\": {\"time\": 1795000000}, \"temp\": 1}", &rc), want);

	ts_of("ts", "{\"temp\": 1}", &rc);
	assert_int_equal(rc, -EBADMSG);
	ts_of("ts", "{\"ts\": 12, \"temp\": 1}", &rc);
	assert_int_equal(rc, -ERANGE);
	ts_of("ts", "{\"ts\": -1795000000, \"temp\": 1}", &rc);
	assert_int_equal(rc, -ERANGE);
	ts_of("ts", "{\"ts\": \"2150-01-01T00:00:00Z\", \"temp\": 1}", &rc);
	assert_int_equal(rc, -ERANGE);
	/* A day ahead of the receive time at most (a gateway 14 h ahead, the
	 * farthest zone, still passes; one in the year 2090 does not). */
	assert_int_equal(ts_of("ts", "{\"ts\": \"2026-11-19T02:06:40Z\", \"temp\": 1}", &rc),
			 RECV_MS + 14 * 3600000);
	assert_int_equal(ts_of("ts", "{\"ts\": 1795090000, \"temp\": 1}", &rc), RECV_MS + 86400000);
	ts_of("ts", "{\"ts\": 1795090001, \"temp\": 1}", &rc);
	assert_int_equal(rc, -ERANGE);
	ts_of("ts", "{\"ts\": \"2090-01-01T00:00:00Z\", \"temp\": 1}", &rc);
	assert_int_equal(rc, -ERANGE);
	ts_of("ts", "{\"ts\": \"yesterday\", \"temp\": 1}", &rc);
	assert_int_equal(rc, -EPROTOTYPE);
	ts_of("ts", "{\"ts\": true, \"temp\": 1}", &rc);
	assert_int_equal(rc, -EPROTOTYPE);
}

/* Broken JSON, deep nesting, invalid UTF-8, oversize, empty payload. */
static void test_rejections(void **state)
{
	(void)state;
	struct mqtt_sub_cfg s = json_sub(NULL);
	struct pdm_sample o[8];
	char why[128];

	assert_int_equal(parse(&s, "t", "{\"temp\": 1", o, 8, why), -EBADMSG);
	assert_int_equal(parse(&s, "t", "{\"temp\": 1}}", o, 8, why), -EBADMSG);
	assert_int_equal(parse(&s, "t", "temp=1", o, 8, why), -EBADMSG);

	/* nesting: the limit itself is fine, one more is refused before cJSON */
	char *deep = malloc(64 * 1024);
	assert_non_null(deep);
	for (int depth = MQTT_JSON_MAX_DEPTH; depth <= MQTT_JSON_MAX_DEPTH + 1; depth++) {
		size_t at = 0;
		at += (size_t)sprintf(deep + at, "{\"temp\": 5, ");
		for (int k = 1; k < depth; k++)
			at += (size_t)sprintf(deep + at, "\"a\": {");
		at += (size_t)sprintf(deep + at, "\"b\": 1");
		for (int k = 0; k < depth; k++)
			deep[at++] = '}';
		deep[at] = '\0';
		int rc = parse(&s, "t", deep, o, 8, why);
		assert_int_equal(rc, depth <= MQTT_JSON_MAX_DEPTH ? 1 : -EBADMSG);
	}
	/* brackets inside strings do not count as nesting */
	assert_int_equal(parse(&s, "t", "{\"temp\": 2, \"s\": \"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\"{{{{\"}", o, 8,
			       why), 1);
	/* 100,000 levels: must neither crash nor recurse */
	memset(deep, '[', 64 * 1024 - 1);
	deep[64 * 1024 - 1] = '\0';
	assert_int_equal(parse(&s, "t", deep, o, 8, why), -EBADMSG);
	free(deep);

	/* invalid UTF-8: stray continuation, overlong, surrogate, truncated */
	const char *bad_utf8[] = { "{\"temp\": \x80}", "{\"t\xC0\xAF\": 1}", "{\"\xED\xA0\x80\": 1}",
				   "{\"temp\": 1, \"x\": \"\xE2\x82\"}", "\xFF\xFE{}" };
	for (size_t i = 0; i < sizeof(bad_utf8) / sizeof(bad_utf8[0]); i++)
		assert_int_equal(parse(&s, "t", bad_utf8[i], o, 8, why), -EILSEQ);
	/* a UTF-8 byte order mark before the JSON is skipped (by cJSON) */
	assert_int_equal(parse(&s, "t", "\xEF\xBB\xBF{\"temp\": 4}", o, 8, why), 1);
	assert_true(o[0].value == 4);
	/* valid multi-byte text is fine */
	assert_int_equal(parse(&s, "t", "{\"temp\": 3, \"unit\": \"\xC2\xB0""C \xE2\x82\xAC \xF0\x9F\x94\xA5\"}", o, 8,
			       why), 1);
	/* binary with NUL bytes */
	const char bin[] = { '{', 0, 1, 2, '}' };
	assert_int_equal(mqtt_parse_payload(&s, "t", bin, sizeof(bin), RECV_MS, o, 8, why, 128), -EBADMSG);

	/* size limit: default 64 KiB, and a configured one */
	size_t big = MQTT_DEFAULT_MAX_PAYLOAD + 1;
	char *huge = malloc(big);
	assert_non_null(huge);
	memset(huge, ' ', big);
	huge[0] = '{';
	memcpy(huge + 1, "\"temp\": 1}", 10);
	assert_int_equal(mqtt_parse_payload(&s, "t", huge, big, RECV_MS, o, 8, why, 128), -E2BIG);
	assert_non_null(strstr(why, "65536"));
	assert_int_equal(mqtt_parse_payload(&s, "t", huge, big - 1, RECV_MS, o, 8, why, 128), 1);
	s.max_payload = 100;
	assert_int_equal(mqtt_parse_payload(&s, "t", huge, 101, RECV_MS, o, 8, why, 128), -E2BIG);
	free(huge);

	/* empty payload (a cleared retained message) is no sample and no error */
	assert_int_equal(parse(&s, "t", "", o, 8, why), 0);
	/* bad arguments */
	assert_int_equal(mqtt_parse_payload(NULL, "t", "1", 1, RECV_MS, o, 8, why, 128), -EINVAL);
	assert_int_equal(mqtt_parse_payload(&s, NULL, "1", 1, RECV_MS, o, 8, why, 128), -EINVAL);
}

/* A batch: an array of objects, each read as a message; samples in time
 * order whatever the batch's order; unreadable objects skipped and said;
 * the batch fails only if none could be read; cut where `max` ends. */
static void test_json_batch(void **state)
{
	(void)state;
	struct mqtt_sub_cfg s = json_sub("ts");
	struct pdm_sample o[16];
	char why[128];

	/* newest first, as some gateways send them */
	int n = parse(&s, "t",
		      "[{\"ts\": 1795003600300, \"temp\": 3, \"running\": 1},"
		      " {\"ts\": 1795003600200, \"temp\": 2, \"running\": 1},"
		      " {\"ts\": 1795003600100, \"temp\": 1, \"running\": 0}]",
		      o, 16, why);
	assert_int_equal(n, 6);
	assert_string_equal(why, "");
	for (int i = 0; i < 6; i++) {
		assert_int_equal(o[i].ts_ms, 1795003600100 + 100 * (i / 2));
		assert_int_equal(o[i].sensor, i % 2 ? 4 : 1);
		assert_int_equal(o[i].quality, PDM_Q_GOOD);
	}
	assert_true(o[0].value == 1 && o[2].value == 2 && o[4].value == 3);
	assert_true(o[1].value == 0 && o[3].value == 1);

	/* one object without its time, one not an object: skipped, said */
	n = parse(&s, "t",
		  "[{\"ts\": 1795003600100, \"temp\": 1}, {\"temp\": 2}, 7,"
		  " {\"ts\": 1795003600300, \"temp\": 3}]",
		  o, 16, why);
	assert_int_equal(n, 2);
	assert_true(o[0].value == 1 && o[1].value == 3);
	assert_non_null(strstr(why, "2 of 4 objects unusable"));
	assert_non_null(strstr(why, "object 1: timestamp field 'ts' missing"));

	/* none readable: the first object's error */
	assert_int_equal(parse(&s, "t", "[{\"temp\": 2}, {\"temp\": 3}]", o, 16, why), -EBADMSG);
	assert_non_null(strstr(why, "2 of 2 objects unusable"));
	assert_int_equal(parse(&s, "t", "[1, 2]", o, 16, why), -EPROTOTYPE);
	assert_int_equal(parse(&s, "t", "[{\"ts\": 1795003600100, \"temp\": \"hot\"}]", o, 16, why),
			 -EPROTOTYPE);
	assert_non_null(strstr(why, "field 'temp' is not a number"));
	/* an empty batch is no sample and no error */
	assert_int_equal(parse(&s, "t", "[]", o, 16, why), 0);
	assert_string_equal(why, "");
	/* a time out of range in one object */
	n = parse(&s, "t", "[{\"ts\": 100, \"temp\": 1}, {\"ts\": 1795003600100, \"temp\": 2}]", o,
		  16, why);
	assert_int_equal(n, 1);
	assert_non_null(strstr(why, "outside 2000..2100"));

	/* cut where the caller's room ends: an object is read only while all
	 * 4 fields would fit */
	n = parse(&s, "t",
		  "[{\"ts\": 1795003600100, \"temp\": 1}, {\"ts\": 1795003600200, \"temp\": 2},"
		  " {\"ts\": 1795003600300, \"temp\": 3}]",
		  o, 5, why);
	assert_int_equal(n, 2);
	assert_non_null(strstr(why, "batch of 3 objects: the first 2 used"));

	/* without a timestamp field every object is stamped on receipt */
	s = json_sub(NULL);
	n = parse(&s, "t", "[{\"temp\": 1}, {\"temp\": 2}]", o, 16, why);
	assert_int_equal(n, 2);
	assert_int_equal(o[0].ts_ms, RECV_MS);
	assert_int_equal(o[1].ts_ms, RECV_MS);
	/* neither an object nor an array */
	assert_int_equal(parse(&s, "t", "42", o, 16, why), -EPROTOTYPE);
	assert_non_null(strstr(why, "not an object"));
}

/* Values with times of their own (a tag list's per-tag "t"): each sample at
 * its value's time, the message's where it has none, in time order; a
 * value whose time is unusable is dropped and said. */
static void test_json_value_times(void **state)
{
	(void)state;
	static const struct mqtt_field tf[] = {
		{ .path = "values[id=A].v", .sensor = 1, .ts_path = "values[id=A].t" },
		{ .path = "values[id=B].v", .sensor = 2, .ts_path = "values[id=B].t" },
		{ .path = "values[id=C].v", .sensor = 3, .ts_path = "values[id=C].t" },
		{ .path = "values[id=D].v", .sensor = 4 },
	};
	struct mqtt_sub_cfg s = {
		.name = "kep", .filter = "iot/#", .qos = 1, .format = MQTT_FMT_JSON,
		.ts_field = "timestamp", .fields = tf, .n_fields = 4,
	};
	struct pdm_sample o[8];
	char why[128];
	int n = parse(&s, "iot/x",
		      "{\"timestamp\": 1795003599000, \"values\": ["
		      "{\"id\": \"A\", \"v\": 1, \"t\": 1795003598500},"
		      "{\"id\": \"B\", \"v\": 2, \"t\": \"2026-11-18T12:06:37.250Z\"},"
		      "{\"id\": \"C\", \"v\": 3},"
		      "{\"id\": \"D\", \"v\": 4, \"t\": 1}]}",
		      o, 8, why);
	assert_int_equal(n, 4);
	assert_string_equal(why, "");
	/* B (12:06:37.250), A (.598500), then C and D at the message's time */
	assert_int_equal(o[0].sensor, 2);
	assert_int_equal(o[0].ts_ms, INT64_C(1795003597250));
	assert_int_equal(o[1].sensor, 1);
	assert_int_equal(o[1].ts_ms, INT64_C(1795003598500));
	assert_int_equal(o[2].sensor, 3);
	assert_int_equal(o[2].ts_ms, INT64_C(1795003599000));
	assert_int_equal(o[3].sensor, 4); /* its "t" is not its time: no ts_path */
	assert_int_equal(o[3].ts_ms, INT64_C(1795003599000));

	/* Unusable times: absurd, not a time, two days ahead. The rest is used. */
	n = parse(&s, "iot/x",
		  "{\"timestamp\": 1795003599000, \"values\": ["
		  "{\"id\": \"A\", \"v\": 1, \"t\": 5},"
		  "{\"id\": \"B\", \"v\": 2, \"t\": \"yesterday\"},"
		  "{\"id\": \"C\", \"v\": 3, \"t\": 1795176400000},"
		  "{\"id\": \"D\", \"v\": 4}]}",
		  o, 8, why);
	assert_int_equal(n, 1);
	assert_int_equal(o[0].sensor, 4);
	assert_non_null(strstr(why, "field 'values[id=A].t' and others is not a usable time"));
	/* without a message time: the receive time where a value has none */
	s.ts_field = NULL;
	n = parse(&s, "iot/x",
		  "{\"values\": [{\"id\": \"C\", \"v\": 3}, "
		  "{\"id\": \"A\", \"v\": 1, \"t\": 1795003598500}]}",
		  o, 8, why);
	assert_int_equal(n, 2);
	assert_int_equal(o[0].sensor, 1);
	assert_int_equal(o[0].ts_ms, INT64_C(1795003598500));
	assert_int_equal(o[1].ts_ms, RECV_MS);
	/* in a batch, each object's values at their own times, all in order */
	s.ts_field = "timestamp";
	n = parse(&s, "iot/x",
		  "[{\"timestamp\": 1795003599000, \"values\": [{\"id\": \"A\", \"v\": 1, "
		  "\"t\": 1795003598000}]}, {\"timestamp\": 1795003598800, \"values\": "
		  "[{\"id\": \"A\", \"v\": 2, \"t\": 1795003597000}, {\"id\": \"D\", "
		  "\"v\": 5}]}]",
		  o, 8, why);
	assert_int_equal(n, 3);
	assert_true(o[0].value == 2 && o[0].ts_ms == INT64_C(1795003597000));
	assert_true(o[1].value == 1 && o[1].ts_ms == INT64_C(1795003598000));
	assert_true(o[2].value == 5 && o[2].ts_ms == INT64_C(1795003598800));
}

/* The quality of one sample: the flag at "q" read with rule `good`. */
static int quality_of(const char *good, const char *flag)
{
	const struct mqtt_field qf[] = {
		{ .path = "v", .sensor = 1, .quality_path = "q", .quality_good = good },
	};
	struct mqtt_sub_cfg s = {
		.name = "q", .filter = "q/#", .qos = 1, .format = MQTT_FMT_JSON,
		.fields = qf, .n_fields = 1,
	};
	char payload[200], why[128];
	struct pdm_sample o[2];
	if (flag)
		snprintf(payload, sizeof(payload), "{\"v\": 1.5, \"q\": %s}", flag);
	else
		snprintf(payload, sizeof(payload), "{\"v\": 1.5}");
	assert_int_equal(parse(&s, "q/x", payload, o, 2, why), 1);
	assert_true(o[0].value == 1.5);
	return o[0].quality;
}

/* Quality flags as gateways send them: booleans and words by default,
 * OPC UA StatusCodes, OPC DA (and Sparkplug) codes, or a list of the good
 * values. A missing flag is good under every rule. */
static void test_quality_codes(void **state)
{
	(void)state;
	static const struct {
		const char *good, *flag;
		int want;
	} c[] = {
		{ NULL, NULL, PDM_Q_GOOD },
		{ NULL, "true", PDM_Q_GOOD },
		{ NULL, "false", PDM_Q_BAD },
		{ NULL, "\"false\"", PDM_Q_BAD },
		{ NULL, "\"Good\"", PDM_Q_GOOD },
		{ NULL, "\"BAD\"", PDM_Q_BAD },
		{ NULL, "\"Bad_SensorFailure\"", PDM_Q_BAD },
		{ NULL, "\"UncertainLastUsableValue\"", PDM_Q_BAD },
		{ NULL, "0", PDM_Q_GOOD }, /* numbers: only with a rule */
		{ NULL, "192", PDM_Q_GOOD },
		{ "opc-ua", NULL, PDM_Q_GOOD },
		{ "opc-ua", "0", PDM_Q_GOOD },
		{ "opc-ua", "9830400", PDM_Q_GOOD },     /* 0x00960000 Good_LocalOverride */
		{ "opc-ua", "1083310080", PDM_Q_BAD },   /* 0x40920000 Uncertain_... */
		{ "opc-ua", "2156134400", PDM_Q_BAD },   /* 0x80840000 Bad_SensorFailure */
		{ "opc-ua", "{\"Code\": 2156134400, \"Symbol\": \"BadSensorFailure\"}", PDM_Q_BAD },
		{ "opc-ua", "{\"Code\": 0}", PDM_Q_GOOD },
		{ "opc-ua", "{\"Symbol\": \"BadSensorFailure\"}", PDM_Q_BAD },
		{ "opc-ua", "\"Good\"", PDM_Q_GOOD },
		{ "opc-ua", "-1", PDM_Q_BAD },
		{ "opc-da", "192", PDM_Q_GOOD },
		{ "opc-da", "216", PDM_Q_GOOD }, /* good, local override */
		{ "opc-da", "0", PDM_Q_BAD },
		{ "opc-da", "24", PDM_Q_BAD },  /* bad, comm failure */
		{ "opc-da", "64", PDM_Q_BAD },  /* uncertain */
		{ "opc-da", "1e9", PDM_Q_BAD },
		{ "opc-da", "false", PDM_Q_BAD },
		{ "192, 216", "192", PDM_Q_GOOD },
		{ "192, 216", "216", PDM_Q_GOOD },
		{ "192, 216", "\"216\"", PDM_Q_GOOD },
		{ "192, 216", "0", PDM_Q_BAD },
		{ "192, 216", "true", PDM_Q_BAD },
		{ "GOOD, ok ", "\"good\"", PDM_Q_GOOD },
		{ "GOOD, ok ", "\"OK\"", PDM_Q_GOOD },
		{ "GOOD, ok ", "\"Good_LocalOverride\"", PDM_Q_BAD },
		{ "GOOD, ok ", "[1]", PDM_Q_BAD },
		{ "0xC0", "192", PDM_Q_GOOD },
		{ "true", "true", PDM_Q_GOOD },
		{ "true", "false", PDM_Q_BAD },
		{ "1", NULL, PDM_Q_GOOD },
	};
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		int q = quality_of(c[i].good, c[i].flag);
		if (q != c[i].want)
			fail_msg("quality_good %s, flag %s: %d, want %d", c[i].good ? c[i].good : "-",
				 c[i].flag ? c[i].flag : "-", q, c[i].want);
	}
	assert_int_equal(mqtt_quality_check(NULL), 0);
	assert_int_equal(mqtt_quality_check("opc-ua"), 0);
	assert_int_equal(mqtt_quality_check("opc-da"), 0);
	assert_int_equal(mqtt_quality_check("192, 216"), 0);
	assert_int_equal(mqtt_quality_check(" GOOD "), 0);
	assert_int_equal(mqtt_quality_check(""), -EINVAL);
	assert_int_equal(mqtt_quality_check("192,"), -EINVAL);
	assert_int_equal(mqtt_quality_check("192, , 216"), -EINVAL);
	assert_int_equal(mqtt_quality_check(",192"), -EINVAL);
	assert_int_equal(mqtt_quality_check("   "), -EINVAL);
}

/* A list of tags (an OPC gateway's payload): fields pick an object by a
 * member's value, whose dots are part of the value. */
static void test_json_tag_list(void **state)
{
	(void)state;
	static const struct mqtt_field tf[] = {
		{ .path = "values[id=Channel1.Pump.Temp].v", .sensor = 1,
		  .quality_path = "values[id=Channel1.Pump.Temp].q" },
		{ .path = "values[id=Channel1.Pump.Flow].v", .sensor = 2,
		  .quality_path = "values[id=Channel1.Pump.Flow].q" },
		{ .path = "values[id=Channel1.Pump.Gone].v", .sensor = 3 },
		{ .path = "tags[n=7].val.0", .sensor = 4 },
	};
	struct mqtt_sub_cfg s = {
		.name = "kep", .filter = "iot/#", .qos = 1, .format = MQTT_FMT_JSON,
		.ts_field = "timestamp", .fields = tf, .n_fields = 4,
	};
	struct pdm_sample o[8];
	char why[128];
	int n = parse(&s, "iot/line1",
		      "{\"timestamp\": 1795003600100, \"values\": ["
		      "{\"id\": \"Channel1.Pump.Flow\", \"v\": 80.5, \"q\": true},"
		      "{\"id\": \"Channel1.Pump.Temp\", \"v\": \"41.25\", \"q\": true},"
		      "{\"id\": \"Channel1.Pump.Temp\", \"v\": 99}],"
		      " \"tags\": [{\"n\": 6, \"val\": [1]}, {\"n\": 7, \"val\": [2, 3]}]}",
		      o, 8, why);
	assert_int_equal(n, 3);
	assert_string_equal(why, "");
	assert_int_equal(o[0].sensor, 1);
	assert_true(o[0].value == 41.25); /* the first match */
	assert_int_equal(o[1].sensor, 2);
	assert_true(o[1].value == 80.5);
	assert_int_equal(o[2].sensor, 4); /* selected by a number */
	assert_true(o[2].value == 2);
	assert_int_equal(o[0].ts_ms, 1795003600100);
	assert_int_equal(o[0].quality, PDM_Q_GOOD);
	assert_int_equal(o[1].quality, PDM_Q_GOOD);
	/* the gateway's quality flag: false or "bad" -> a bad sample; missing,
	 * true or a number -> good */
	static const struct { const char *q; uint8_t want; } flags[] = {
		{ "false", PDM_Q_BAD }, { "\"Bad\"", PDM_Q_BAD }, { "\"false\"", PDM_Q_BAD },
		{ "true", PDM_Q_GOOD }, { "0", PDM_Q_GOOD }, { "\"good\"", PDM_Q_GOOD },
	};
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		char msg[256];
		snprintf(msg, sizeof(msg),
			 "{\"timestamp\": 1795003600100, \"values\": [{\"id\": "
			 "\"Channel1.Pump.Flow\", \"v\": 0, \"q\": %s}]}", flags[i].q);
		assert_int_equal(parse(&s, "iot/line1", msg, o, 8, why), 1);
		assert_int_equal(o[0].sensor, 2);
		assert_int_equal(o[0].quality, flags[i].want);
	}
	/* "values" not a list: nothing selected */
	assert_int_equal(parse(&s, "iot/line1", "{\"timestamp\": 1795003600100, \"values\": 3}", o,
			       8, why), 0);

	assert_int_equal(mqtt_field_check("values[id=Channel1.Pump.Temp].v"), 0);
	assert_int_equal(mqtt_field_check("a.b.0"), 0);
	assert_int_equal(mqtt_field_check("x[k=v]"), 0);
	const char *bad[] = { "", "a..b", ".a", "a.", "[id=x].v", "values[id].v", "values[=x]",
			      "values[id=]", "values[id=x", "values[id=x]v", "values[id=x]." };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (mqtt_field_check(bad[i]) == 0)
			fail_msg("'%s' accepted", bad[i]);
}

/* Value format: chosen by full topic or last level, or the catch-all field. */
static void test_value_format(void **state)
{
	(void)state;
	const struct mqtt_field fields[] = {
		{ .path = "plant/pump-a/temp", .sensor = 10 },
		{ .path = "speed", .sensor = 11, .has_max = true, .valid_max = 3000 },
	};
	struct mqtt_sub_cfg s = { .name = "v", .filter = "plant/#", .qos = 1, .format = MQTT_FMT_VALUE,
				  .fields = fields, .n_fields = 2 };
	struct pdm_sample o[2];
	char why[128];

	assert_int_equal(parse(&s, "plant/pump-a/temp", " 42.5\n", o, 2, why), 1);
	assert_int_equal(o[0].sensor, 10);
	assert_true(o[0].value == 42.5);
	assert_int_equal(o[0].ts_ms, RECV_MS);
	assert_int_equal(o[0].quality, PDM_Q_GOOD);

	assert_int_equal(parse(&s, "plant/pump-b/speed", "1480", o, 2, why), 1);
	assert_int_equal(o[0].sensor, 11);
	assert_int_equal(parse(&s, "plant/pump-b/speed", "-4e3", o, 2, why), 1);
	assert_int_equal(o[0].quality, PDM_Q_GOOD);
	assert_int_equal(parse(&s, "plant/pump-b/speed", "3001", o, 2, why), 1);
	assert_int_equal(o[0].quality, PDM_Q_BAD);
	assert_int_equal(parse(&s, "plant/pump-b/speed", "inf", o, 2, why), 1);
	assert_int_equal(o[0].quality, PDM_Q_BAD);
	assert_int_equal(parse(&s, "plant/pump-b/speed", "true", o, 2, why), 1);
	assert_true(o[0].value == 1.0);

	/* not ours: a topic no field names */
	assert_int_equal(parse(&s, "plant/pump-a/pressure", "3", o, 2, why), 0);
	/* "plant/pump-a/temp" is a full-topic path: it must not match another pump */
	assert_int_equal(parse(&s, "plant/pump-b/temp", "3", o, 2, why), 0);

	assert_int_equal(parse(&s, "plant/x/speed", "12 rpm", o, 2, why), -EPROTOTYPE);
	assert_non_null(strstr(why, "12 rpm"));
	assert_int_equal(parse(&s, "plant/x/speed", "{\"v\": 1}", o, 2, why), -EPROTOTYPE);
	assert_int_equal(parse(&s, "plant/x/speed", "1,5", o, 2, why), -EPROTOTYPE);
	/* a reason quoting the payload cannot forge log lines */
	assert_int_equal(parse(&s, "plant/x/speed", "1\n<3>fake: alarm\r", o, 2, why), -EPROTOTYPE);
	assert_null(strchr(why, '\n'));
	assert_null(strchr(why, '\r'));
	assert_non_null(strstr(why, "1?<3>fake"));
	const char nul_value[] = { '1', '2', 0, 'x' };
	assert_int_equal(mqtt_parse_payload(&s, "plant/x/speed", nul_value, sizeof(nul_value), RECV_MS, o, 2, why,
					    sizeof(why)),
			 -EPROTOTYPE);
	char longnum[200];
	memset(longnum, '1', sizeof(longnum) - 1);
	longnum[sizeof(longnum) - 1] = '\0';
	assert_int_equal(parse(&s, "plant/x/speed", longnum, o, 2, why), -EPROTOTYPE);
	assert_true(strlen(why) < 100); /* the payload is quoted only in part */

	/* a single field without path takes everything on the filter */
	const struct mqtt_field any = { .path = NULL, .sensor = 12 };
	struct mqtt_sub_cfg s1 = { .name = "v1", .filter = "x/+", .format = MQTT_FMT_VALUE, .fields = &any,
				   .n_fields = 1 };
	assert_int_equal(parse(&s1, "x/whatever", "7", o, 2, why), 1);
	assert_int_equal(o[0].sensor, 12);
}

static void test_topic_match(void **state)
{
	(void)state;
	struct {
		const char *f, *t;
		bool m;
	} cases[] = {
		{ "a/b/c", "a/b/c", true },     { "a/b/c", "a/b/cd", false },  { "a/b/c", "a/b", false },
		{ "a/b", "a/b/c", false },      { "a/+/c", "a/x/c", true },    { "a/+/c", "a/x/y/c", false },
		{ "a/+", "a/", true },          { "+/+", "/x", true },         { "+", "a", true },
		{ "+", "a/b", false },          { "a/#", "a", true },          { "a/#", "a/b/c", true },
		{ "a/#", "ab", false },         { "#", "a/b", true },          { "#", "$SYS/x", false },
		{ "+/x", "$SYS/x", false },     { "$SYS/#", "$SYS/x", true },  { "a/+/#", "a/b", true },
		{ "plant/+/telemetry", "plant/pump-c/telemetry", true },
		{ "plant/+/telemetry", "plant/pump-c/status", false },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (mqtt_topic_matches(cases[i].f, cases[i].t) != cases[i].m)
			fail_msg("filter '%s' topic '%s' should %smatch", cases[i].f, cases[i].t,
				 cases[i].m ? "" : "not ");
	}
	assert_int_equal(mqtt_filter_check("a/+/b/#"), 0);
	assert_int_equal(mqtt_filter_check("#"), 0);
	assert_int_equal(mqtt_filter_check("a/#/b"), -EINVAL);
	assert_int_equal(mqtt_filter_check("a/b#"), -EINVAL);
	assert_int_equal(mqtt_filter_check("a/b+/c"), -EINVAL);
	assert_int_equal(mqtt_filter_check(""), -EINVAL);
	assert_int_equal(mqtt_filter_check(NULL), -EINVAL);
}

static void test_utf8_and_names(void **state)
{
	(void)state;
	enum mqtt_format fmt = MQTT_FMT_VALUE;
	assert_int_equal(mqtt_format_parse("json", &fmt), 0);
	assert_int_equal(fmt, MQTT_FMT_JSON);
	assert_int_equal(mqtt_format_parse("value", &fmt), 0);
	assert_int_equal(fmt, MQTT_FMT_VALUE);
	assert_int_equal(mqtt_format_parse("JSON ", &fmt), -EINVAL);
	assert_int_equal(mqtt_format_parse(NULL, &fmt), -EINVAL);
	assert_string_equal(mqtt_format_name(MQTT_FMT_JSON), "json");
	assert_string_equal(mqtt_format_name(MQTT_FMT_VALUE), "value");

	assert_true(mqtt_utf8_valid("plain", 5));
	assert_true(mqtt_utf8_valid("\xF4\x8F\xBF\xBF", 4));  /* U+10FFFF */
	assert_false(mqtt_utf8_valid("\xF4\x90\x80\x80", 4)); /* above U+10FFFF */
	assert_false(mqtt_utf8_valid("\xE0\x80\xAF", 3));     /* overlong */
	assert_false(mqtt_utf8_valid("\xF0\x80\x80\xAF", 4)); /* overlong */
	assert_false(mqtt_utf8_valid("\xC3", 1));             /* truncated */
}

/* Deterministic mutation of valid payloads (flips, inserts, deletes,
 * truncation, splices of JSON tokens): the parser must return a known code
 * or a sample count within bounds, never crash or read out of bounds (the
 * payload lives in an exactly-sized heap buffer so ASan sees overreads). */
static void test_mutated_payloads(void **state)
{
	(void)state;
	static const char *seeds[] = {
		"{\"ts\": 1795000000123, \"temp\": 41.5, \"process\": {\"flow\": 12.25}, \"axes\": [1, 2, 3], \"running\": true}",
		"{\"ts\": \"2026-11-18T11:06:40.5+01:00\", \"temp\": \"17.5\"}",
		"{\"process\": {\"flow\": -1e308}, \"s\": \"\\u00e9\\\"\\\\\", \"n\": null}",
		"-12.5e-3",
	};
	static const char *tokens[] = { "{", "}", "[", "]", "\"", "\\", ":", ",", "1e999", "\xC3\xA9", "\xF0\x9F\x94",
					"\x00", "nan", "true", "\"ts\":", "{\"a\":" };
	struct mqtt_sub_cfg js = json_sub("ts");
	struct mqtt_sub_cfg jn = json_sub(NULL);
	const struct mqtt_field any = { .path = NULL, .sensor = 12 };
	struct mqtt_sub_cfg vs = { .name = "v", .filter = "#", .format = MQTT_FMT_VALUE, .fields = &any, .n_fields = 1 };
	const struct mqtt_sub_cfg *subs[] = { &js, &jn, &vs };
	struct pdm_sample o[4];
	char why[64];
	char work[512];
	uint64_t rng = 0x9E3779B97F4A7C15u;
	unsigned counts[6] = { 0 };

	for (int iter = 0; iter < 60000; iter++) {
		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		const char *seed = seeds[rng % 4];
		size_t len = strlen(seed);
		memcpy(work, seed, len);
		int edits = 1 + (int)((rng >> 8) % 4);
		for (int e = 0; e < edits; e++) {
			rng ^= rng << 13;
			rng ^= rng >> 7;
			rng ^= rng << 17;
			size_t at = len ? (size_t)((rng >> 16) % len) : 0;
			switch ((rng >> 40) % 4) {
			case 0: /* flip a byte */
				if (len)
					work[at] = (char)(rng >> 48);
				break;
			case 1: /* delete a byte */
				if (len) {
					memmove(work + at, work + at + 1, len - at - 1);
					len--;
				}
				break;
			case 2: { /* insert a token */
				const char *t = tokens[(rng >> 52) % 16];
				size_t tl = strlen(t) ? strlen(t) : 1;
				if (len + tl < sizeof(work)) {
					memmove(work + at + tl, work + at, len - at);
					memcpy(work + at, t, tl);
					len += tl;
				}
				break;
			}
			default: /* truncate */
				len = at;
				break;
			}
		}
		char *heap = malloc(len ? len : 1);
		assert_non_null(heap);
		memcpy(heap, work, len);
		const struct mqtt_sub_cfg *sub = subs[iter % 3];
		int rc = mqtt_parse_payload(sub, "plant/p/temp", heap, len, RECV_MS, o, 4, why, sizeof(why));
		free(heap);
		assert_true(strlen(why) < sizeof(why));
		switch (rc) {
		case -EBADMSG: counts[0]++; break;
		case -EPROTOTYPE: counts[1]++; break;
		case -EILSEQ: counts[2]++; break;
		case -ERANGE: counts[3]++; break;
		default:
			assert_true(rc >= 0 && rc <= 4);
			counts[rc > 0 ? 4 : 5]++;
			for (int k = 0; k < rc; k++)
				assert_true(o[k].quality == PDM_Q_GOOD || o[k].quality == PDM_Q_BAD);
		}
	}
	/* the mutations reached every outcome, so the loop tested something */
	for (int k = 0; k < 6; k++)
		assert_true(counts[k] > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_fields),
		cmocka_unit_test(test_json_partial_and_quality),
		cmocka_unit_test(test_json_wrong_type),
		cmocka_unit_test(test_json_timestamps),
		cmocka_unit_test(test_rejections),
		cmocka_unit_test(test_json_batch),
		cmocka_unit_test(test_json_tag_list),
		cmocka_unit_test(test_quality_codes),
		cmocka_unit_test(test_json_value_times),
		cmocka_unit_test(test_value_format),
		cmocka_unit_test(test_topic_match),
		cmocka_unit_test(test_utf8_and_names),
		cmocka_unit_test(test_mutated_payloads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
