/*
 * test_common.c - parsers, clocks and their step watch, the rate limiter and
 * broker URIs in common/.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "log.h"
#include "pdm_parse.h"
#include "pdm_time.h"
#include "pdm_hash.h"
#include "pdm_uri.h"

static void test_duration(void **state)
{
	int64_t ms;
	(void)state;

	assert_int_equal(pdm_parse_duration_ms("100ms", 1000, &ms), 0);
	assert_int_equal(ms, 100);
	assert_int_equal(pdm_parse_duration_ms("1.5s", 1000, &ms), 0);
	assert_int_equal(ms, 1500);
	assert_int_equal(pdm_parse_duration_ms("24h", 1000, &ms), 0);
	assert_int_equal(ms, 86400000);
	assert_int_equal(pdm_parse_duration_ms("7d", 1000, &ms), 0);
	assert_int_equal(ms, 7LL * 86400000);
	assert_int_equal(pdm_parse_duration_ms("5m", 1000, &ms), 0);
	assert_int_equal(ms, 300000);
	assert_int_equal(pdm_parse_duration_ms("3", 1000, &ms), 0);
	assert_int_equal(ms, 3000);
	/* Malformed input provokes -EINVAL, never a silent zero. */
	assert_int_equal(pdm_parse_duration_ms("", 1000, &ms), -EINVAL);
	assert_int_equal(pdm_parse_duration_ms("5 parsecs", 1000, &ms), -EINVAL);
	assert_int_equal(pdm_parse_duration_ms("-1s", 1000, &ms), -EINVAL);
	assert_int_equal(pdm_parse_duration_ms("1sx", 1000, &ms), -EINVAL);

	char buf[32];
	pdm_format_duration(86400000, buf, sizeof(buf));
	assert_string_equal(buf, "1d");
	pdm_format_duration(100, buf, sizeof(buf));
	assert_string_equal(buf, "100ms");
	pdm_format_duration(90000, buf, sizeof(buf));
	assert_string_equal(buf, "90s");

	/* for people: rounded, in the unit that reads best, sign dropped */
	assert_string_equal(pdm_format_approx(16000000, buf, sizeof(buf)), "4.4 h");
	assert_string_equal(pdm_format_approx(-18000200, buf, sizeof(buf)), "5.0 h");
	assert_string_equal(pdm_format_approx(90000, buf, sizeof(buf)), "90.0 s");
	assert_string_equal(pdm_format_approx(150000, buf, sizeof(buf)), "2.5 min");
	assert_string_equal(pdm_format_approx(86400000, buf, sizeof(buf)), "24.0 h");
	assert_string_equal(pdm_format_approx(7 * 86400000LL, buf, sizeof(buf)), "7.0 d");
	assert_string_equal(pdm_format_approx(0, buf, sizeof(buf)), "0.0 s");
}

static void test_numbers(void **state)
{
	int64_t v;
	double d;
	bool b;
	(void)state;

	assert_int_equal(pdm_parse_i64("42", 0, 100, &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(pdm_parse_i64("101", 0, 100, &v), -ERANGE);
	assert_int_equal(pdm_parse_i64("4x", 0, 100, &v), -EINVAL);
	assert_int_equal(pdm_parse_i64("", 0, 100, &v), -EINVAL);
	assert_int_equal(pdm_parse_double("-2.5e1", &d), 0);
	assert_true(d == -25.0);
	assert_int_equal(pdm_parse_double("nan", &d), -ERANGE);
	assert_int_equal(pdm_parse_double("1e999", &d), -ERANGE);
	assert_int_equal(pdm_parse_bool("Yes", &b), 0);
	assert_true(b);
	assert_int_equal(pdm_parse_bool("off", &b), 0);
	assert_false(b);
	assert_int_equal(pdm_parse_bool("maybe", &b), -EINVAL);
}

static void test_iso8601(void **state)
{
	int64_t ms;
	char buf[PDM_ISO8601_LEN];
	(void)state;

	assert_int_equal(pdm_parse_iso8601("2026-11-28T04:25:42.123Z", &ms), 0);
	assert_int_equal(ms, 1795839942123LL);
	assert_string_equal(pdm_iso8601(ms, buf, sizeof(buf)), "2026-11-28T04:25:42.123Z");
	/* No zone means UTC; offsets are applied. */
	assert_int_equal(pdm_parse_iso8601("2026-11-28 04:25:42", &ms), 0);
	assert_int_equal(ms, 1795839942000LL);
	assert_int_equal(pdm_parse_iso8601("2026-11-28T05:25:42+01:00", &ms), 0);
	assert_int_equal(ms, 1795839942000LL);
	assert_int_equal(pdm_parse_iso8601("1970-01-01", &ms), 0);
	assert_int_equal(ms, 0);
	assert_int_equal(pdm_parse_iso8601("2026-13-01", &ms), -EINVAL);
	assert_int_equal(pdm_parse_iso8601("yesterday", &ms), -EINVAL);
	assert_int_equal(pdm_parse_iso8601("2026-11-28T04:25:42Zjunk", &ms), -EINVAL);
}

/* Reads the lag estimates into lo/hi; returns pdm_lag_get's result. */
static int lag_at(struct pdm_lag *l, int64_t mono, int64_t *lo, int64_t *hi)
{
	return pdm_lag_get(l, mono, lo, hi);
}

/* A device clock 5 h behind the host, delivery delays of a few ms, one
 * delivery held up half a minute, then the host's clock set back. */
static void test_lag(void **state)
{
	struct pdm_lag l = { 0 };
	int64_t lo, hi;
	const int64_t off = 5 * 3600 * 1000;
	(void)state;

	assert_int_equal(lag_at(&l, 1000, &lo, &hi), -ENODATA);
	assert_int_equal(lo, 0);
	assert_int_equal(hi, 0);
	int64_t mono = 1000;
	for (int i = 0; i < 600; i++, mono += 100)
		pdm_lag_add(&l, off + 2 + i % 7, mono);
	assert_int_equal(lag_at(&l, mono, &lo, &hi), 0);
	assert_int_equal(lo, off + 2);
	assert_int_equal(hi, off + 8);
	/* One sample delivered 30 s late: the largest lag shows it for a
	 * minute at most, the smallest (the clock offset) never. */
	pdm_lag_add(&l, off + 30000, mono);
	int64_t late_at = mono;
	for (; mono < late_at + 80000; mono += 100) {
		pdm_lag_add(&l, off + 3, mono);
		assert_int_equal(lag_at(&l, mono, &lo, &hi), 0);
		if (mono - late_at < 50000) {
			assert_int_equal(lo, off + 2);
			assert_int_equal(hi, off + 30000);
		}
		if (mono - late_at >= 70000) {
			assert_int_equal(lo, off + 3);
			assert_int_equal(hi, off + 3);
		}
	}
	/* Silence: the last estimates stay. */
	mono += 600000;
	assert_int_equal(lag_at(&l, mono, &lo, &hi), 0);
	assert_int_equal(lo, off + 3);
	assert_int_equal(hi, off + 3);
	/* The host's clock set back 10 min: every lag seen moves with it,
	 * the held estimates too, before any new sample. */
	pdm_lag_shift(&l, -600000);
	assert_int_equal(lag_at(&l, mono, &lo, &hi), 0);
	assert_int_equal(lo, off - 600000 + 3);
	assert_int_equal(hi, off - 600000 + 3);
	pdm_lag_add(&l, off - 600000 + 4, mono);
	pdm_lag_add(&l, off - 600000 + 2, mono);
	pdm_lag_shift(&l, 600000);
	assert_int_equal(lag_at(&l, mono, &lo, &hi), 0);
	assert_int_equal(lo, off + 2);
	assert_int_equal(hi, off + 4);
	/* The device's clock set back an hour: the next sample sets the
	 * estimates afresh, not the extremes of old and new. */
	pdm_lag_reset(&l);
	pdm_lag_add(&l, off + 3600000 + 5, mono);
	assert_int_equal(lag_at(&l, mono, &lo, &hi), 0);
	assert_int_equal(lo, off + 3600000 + 5);
	assert_int_equal(hi, off + 3600000 + 5);
	/* A device ahead of the host: negative lags. */
	struct pdm_lag a = { 0 };
	pdm_lag_add(&a, -3600000 + 5, 0);
	pdm_lag_add(&a, -3600000 + 1, 0);
	assert_int_equal(lag_at(&a, 0, &lo, &hi), 0);
	assert_int_equal(lo, -3600000 + 1);
	assert_int_equal(hi, -3600000 + 5);
	assert_int_equal(lag_at(&a, 0, NULL, NULL), 0);
}

static void test_clock_watch(void **state)
{
	struct pdm_clock_watch cw = { 0 };
	(void)state;

	/* The first look primes; a wall clock that keeps pace is no step,
	 * and nothing is fenced. */
	assert_int_equal(pdm_clock_watch(&cw, 1000000, 50), 0);
	assert_int_equal(pdm_clock_watch(&cw, 1000100, 150), 0);
	assert_false(pdm_clock_fenced(&cw, 1000100, 1000100, 150));
	assert_false(pdm_clock_fenced(&cw, 0, 1000100, 150));
	/* NTP's slew (0.5 ms/s at most) over an hour stays below the
	 * threshold because every look follows it. */
	int64_t wall = 1000100, mono = 150;
	for (int i = 0; i < 3600; i++) {
		wall += 1000 + (i % 2);
		mono += 1000;
		assert_int_equal(pdm_clock_watch(&cw, wall, mono), 0);
	}
	/* Set back ten minutes: reported once. */
	mono += 100;
	wall += 100 - 600000;
	assert_int_equal(pdm_clock_watch(&cw, wall, mono), -600000);
	/* For the fence's time, samples stamped on the old clock are fenced
	 * (ahead of now), the new clock's are not, however late they come. */
	assert_true(pdm_clock_fenced(&cw, wall + 600000 - 50, wall + 20, mono + 20));
	assert_false(pdm_clock_fenced(&cw, wall + 10, wall + 20, mono + 20));
	assert_false(pdm_clock_fenced(&cw, wall - PDM_CLOCK_SLACK_MS, wall + 3000, mono + 3000));
	assert_true(pdm_clock_fenced(&cw, wall - PDM_CLOCK_SLACK_MS - 1, wall + 3000, mono + 3000));
	assert_false(pdm_clock_fenced(&cw, wall + 600000 - 50, wall + PDM_CLOCK_FENCE_MS,
				      mono + PDM_CLOCK_FENCE_MS));
	mono += 100;
	wall += 100;
	assert_int_equal(pdm_clock_watch(&cw, wall, mono), 0);
	/* Set forward an hour: the old clock's samples are now the old ones. */
	wall += 3600000;
	assert_int_equal(pdm_clock_watch(&cw, wall, mono), 3600000);
	assert_true(pdm_clock_fenced(&cw, wall - 3600000 - 10, wall + 5, mono + 5));
	assert_false(pdm_clock_fenced(&cw, wall - 10, wall + 5, mono + 5));
	/* At the threshold is not yet a step. */
	wall += PDM_CLOCK_STEP_MS;
	assert_int_equal(pdm_clock_watch(&cw, wall, mono), 0);
	wall -= PDM_CLOCK_STEP_MS + 1;
	assert_int_equal(pdm_clock_watch(&cw, wall, mono), -PDM_CLOCK_STEP_MS - 1);
}

static void test_ratelimit(void **state)
{
	struct pdm_ratelimit rl = PDM_RATELIMIT_INIT(60000, 3);
	int ok = 0;
	(void)state;

	for (int i = 0; i < 100; i++)
		ok += pdm_ratelimit_ok(&rl);
	assert_int_equal(ok, 3);
	assert_int_equal(rl.suppressed, 97);
}

static void test_log_level(void **state)
{
	int prio;
	(void)state;

	assert_int_equal(pdm_log_level_parse("warning", &prio), 0);
	assert_int_equal(prio, LOG_WARNING);
	assert_int_equal(pdm_log_level_parse("loud", &prio), -EINVAL);
	assert_string_equal(pdm_log_level_name(LOG_DEBUG), "debug");
}

/* The published FNV-1a 64 test vectors, and hashing in pieces. */
static void test_fnv1a(void **state)
{
	(void)state;
	assert_true(pdm_fnv1a(PDM_FNV1A_INIT, NULL, 0) == UINT64_C(0xcbf29ce484222325));
	assert_true(pdm_fnv1a(PDM_FNV1A_INIT, "a", 1) == UINT64_C(0xaf63dc4c8601ec8c));
	assert_true(pdm_fnv1a(PDM_FNV1A_INIT, "foobar", 6) == UINT64_C(0x85944171f73967e8));
	assert_true(pdm_fnv1a(pdm_fnv1a(PDM_FNV1A_INIT, "foo", 3), "bar", 3) ==
		    UINT64_C(0x85944171f73967e8));
}

static void test_uri(void **state)
{
	size_t start = 0, at = 0;
	(void)state;
	assert_int_equal(pdm_uri_kind("tcp://127.0.0.1:1883"), PDM_URI_TCP);
	assert_int_equal(pdm_uri_kind("mqtt://b"), PDM_URI_TCP);
	assert_int_equal(pdm_uri_kind("ssl://b:8883"), PDM_URI_TLS);
	assert_int_equal(pdm_uri_kind("mqtts://[::1]:8883"), PDM_URI_TLS);
	assert_int_equal(pdm_uri_kind("tcp://"), -EINVAL);
	assert_int_equal(pdm_uri_kind("tcp://a b"), -EINVAL);
	assert_int_equal(pdm_uri_kind("ws://b:9001"), -EINVAL);
	assert_int_equal(pdm_uri_kind("wss://b"), -EINVAL);
	assert_int_equal(pdm_uri_kind("TCP://b"), -EINVAL);
	assert_int_equal(pdm_uri_kind("b:1883"), -EINVAL);
	assert_int_equal(pdm_uri_kind(NULL), -EINVAL);

	assert_int_equal(pdm_uri_userinfo("tcp://b:1883", &start, &at), 0);
	assert_int_equal(pdm_uri_userinfo("no scheme@b", NULL, NULL), 0);
	assert_int_equal(pdm_uri_userinfo("tcp://b:80/path@x", NULL, NULL), 0);
	assert_int_equal(pdm_uri_userinfo("tcp://b:80?q=@x", NULL, NULL), 0);
	assert_int_equal(pdm_uri_userinfo("tcp://u:p@b:1883", &start, &at), 1);
	assert_int_equal(start, 6);
	assert_int_equal(at, 9);
	/* a password holding '@': the last one before the host ends it */
	assert_int_equal(pdm_uri_userinfo("ssl://u:p@ss@b/x@y", &start, &at), 1);
	assert_int_equal(start, 6);
	assert_int_equal(at, 12);
	assert_int_equal(pdm_uri_userinfo("tcp://@b", NULL, &at), 1);
	assert_int_equal(at, 6);
	assert_int_equal(pdm_uri_userinfo(NULL, NULL, NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_duration),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_iso8601),
		cmocka_unit_test(test_clock_watch),
		cmocka_unit_test(test_lag),
		cmocka_unit_test(test_ratelimit),
		cmocka_unit_test(test_log_level),
		cmocka_unit_test(test_uri),
		cmocka_unit_test(test_fnv1a),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
