/*
 * mqtt_parse.h - turn MQTT messages into samples, without any network code.
 *
 * A subscription ([source] of type mqtt) names a topic filter, a payload
 * format and the fields that feed sensors. This module matches topics
 * against filters and decodes payloads; it is pure (no paho, no threads,
 * no allocation visible to the caller) so it can be unit-tested and fuzzed
 * on its own. mqtt_client.c feeds it every received message.
 *
 * Formats:
 *   json   one JSON object; each field is a dot path ("process.flow",
 *          "axes.0" indexes arrays) to a number, a numeric string or a
 *          boolean (1/0). An optional timestamp field holds epoch seconds,
 *          milliseconds, microseconds or nanoseconds (told apart by
 *          magnitude), or an ISO-8601 string; without it the receive time
 *          is used.
 *   value  the payload is one number (surrounding white space allowed);
 *          the field is chosen by topic: a field's path equal to the whole
 *          topic or to its last level, or the single field with path NULL.
 *
 * Hostile input is expected: sizes, UTF-8 and JSON nesting depth are
 * checked before anything is parsed.
 */
#ifndef MQTT_PARSE_H
#define MQTT_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sample.h"

/* Default limit on payload size when mqtt_sub_cfg.max_payload is 0. */
#define MQTT_DEFAULT_MAX_PAYLOAD (64u * 1024u)
/* Deepest JSON nesting accepted (objects and arrays together). */
#define MQTT_JSON_MAX_DEPTH 32
/* Objects of one batch (a JSON array of objects) a client makes room for:
 * a second of readings at 1 kHz. */
#define MQTT_BATCH_MAX 1024
/* Timestamps outside [2000-01-01, 2100-01-01) are refused as absurd. */
#define MQTT_TS_MIN_MS INT64_C(946684800000)
#define MQTT_TS_MAX_MS INT64_C(4102444800000)
/* ... and so are those more than a day ahead of the receive time: no time
 * zone is, and one such sample would hold its sensor's window in the
 * future, every later sample "late", the asset unscored. */
#define MQTT_TS_MAX_AHEAD_MS INT64_C(86400000)

struct mqtt_field {
	const char *path; /* JSON dot path, or (format value) topic / last level */
	/* JSON path of the value's quality flag, or NULL: false, "false", or
	 * text starting with "bad" or "uncertain" there makes the sample
	 * PDM_Q_BAD (an OPC gateway's "q"); a missing flag leaves it good */
	const char *quality_path;
	/* What a good flag is, NULL for the rule above (numbers good):
	 * "opc-ua" (a StatusCode, good when its severity bits are 00; also as
	 * {"Code": N}), "opc-da" (good when bits 0xC0 are set: 192, 216), or a
	 * comma-separated list of the numbers and texts that are good (texts
	 * without regard to case); checked by mqtt_quality_check */
	const char *quality_good;
	/* JSON path of this value's own time (a tag list's per-tag "t"), or
	 * NULL: the message's. Where it is missing the message's time counts. */
	const char *ts_path;
	uint32_t sensor;  /* daemon-assigned sensor id */
	bool has_min, has_max;
	double valid_min, valid_max; /* outside => PDM_Q_BAD */
};

enum mqtt_format {
	MQTT_FMT_JSON,
	MQTT_FMT_VALUE,
};

struct mqtt_sub_cfg {
	const char *name;   /* the [source] name, for logs and counters */
	const char *filter; /* topic filter, + and # allowed */
	int qos;
	enum mqtt_format format;
	const char *ts_field; /* JSON field with the timestamp, or NULL = receive time */
	const struct mqtt_field *fields;
	size_t n_fields;
	/* format=value: a field's `path` is matched against the topic (exact
	 * topic, or the last topic level); a sub with exactly one field and
	 * path NULL takes every message on the filter. */
	size_t max_payload; /* 0 = MQTT_DEFAULT_MAX_PAYLOAD */
};

/* Config names: "json" / "value". parse returns 0 or -EINVAL. */
int mqtt_format_parse(const char *s, enum mqtt_format *f);
const char *mqtt_format_name(enum mqtt_format f);

/*
 * Error codes of mqtt_parse_payload(), one per counter in mqtt_stats:
 *   -E2BIG      oversized (longer than max_payload)
 *   -EILSEQ     not valid UTF-8
 *   -EBADMSG    malformed: not JSON, nested too deep, timestamp missing
 *   -EPROTOTYPE wrong type: not an object (or array of objects) / not a number
 *               where one is needed
 *   -ERANGE     the timestamp is absurd (before 2000, after 2100, or more
 *               than MQTT_TS_MAX_AHEAD_MS after recv_ms)
 *   -EINVAL     bad arguments (a programming error)
 */

/*
 * Decodes one message. `topic` is NUL-terminated; `payload` need not be.
 * recv_ms is the wall-clock receive time, used when the message carries no
 * timestamp. Fills up to `max` samples; values that are NaN/Inf or outside
 * a field's valid range come out with quality PDM_Q_BAD. A JSON payload is
 * one object, or a batch: an array of objects each read as a message of its
 * own, its samples returned in time order; objects that cannot be read are
 * skipped (said in `why`), and the batch fails only if none could.
 *
 * Returns the number of samples (0 when no configured field is in the
 * message, or the payload is empty, e.g. a cleared retained message), or a
 * negative code above with a short reason in `why` (never containing more
 * than 40 bytes of the payload). On success `why` is empty, unless fields
 * were skipped because of their type: then it says which, and the caller
 * counts a wrong-typed payload although some samples came out.
 */
int mqtt_parse_payload(const struct mqtt_sub_cfg *s, const char *topic, const void *payload,
		       size_t len, int64_t recv_ms, struct pdm_sample *out, size_t max, char *why,
		       size_t whylen);

/* Checks a JSON field path: dot-separated member names and array indexes,
 * a step may select from an array of objects by a member's value:
 * "values[id=Line1.Pump.Temp].v". Returns 0 or -EINVAL. */
int mqtt_field_check(const char *path);

/* Checks a quality_good setting (see struct mqtt_field). Returns 0 or
 * -EINVAL. */
int mqtt_quality_check(const char *good);

/* True if `topic` matches the MQTT filter (`+` one level, `#` the rest);
 * topics starting with '$' do not match filters starting with a wildcard
 * (MQTT 3.1.1 section 4.7.2). */
bool mqtt_topic_matches(const char *filter, const char *topic);

/* Checks a filter's syntax ('#' only last and alone in its level, '+' alone
 * in its level, not empty). Returns 0 or -EINVAL. */
int mqtt_filter_check(const char *filter);

/* True if buf[0..len) is well-formed UTF-8 (no overlongs, no surrogates,
 * nothing above U+10FFFF). */
bool mqtt_utf8_valid(const void *buf, size_t len);

#endif
