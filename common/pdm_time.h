/*
 * pdm_time.h - clocks and time formats shared by every module.
 *
 * Deadlines use the monotonic clock (immune to NTP steps); sample and alert
 * timestamps are wall-clock epoch milliseconds.
 */
#ifndef PDM_TIME_H
#define PDM_TIME_H

#include <stddef.h>
#include <stdint.h>

int64_t pdm_mono_ms(void);
int64_t pdm_mono_us(void);
int64_t pdm_wall_ms(void);

/*
 * Notices steps of the wall clock (NTP or an operator setting the time, a
 * resume from suspend) by watching its offset from the monotonic clock.
 * Slewing moves the offset by well under a millisecond a second, so any
 * change beyond the threshold between two looks is a step. Zero-initialise.
 *
 * After a step, samples another thread stamped on the old clock may still be
 * on their way (a queue, a slow serial poll); for fence_ms the watch calls
 * fenced every sample stamped more than slack_ms before the step was seen,
 * or after now by more than slack_ms.
 */
struct pdm_clock_watch {
	int64_t offset_ms; /* wall - mono at the last look */
	int primed;
	int64_t fence_lo_ms, fence_until_mono;
};
#define PDM_CLOCK_STEP_MS 1000
#define PDM_CLOCK_FENCE_MS 10000
#define PDM_CLOCK_SLACK_MS 500

/* Returns how far the wall clock stepped since the last call (positive:
 * forward) if that is more than PDM_CLOCK_STEP_MS either way, else 0. The
 * first call only primes the watch. */
int64_t pdm_clock_watch(struct pdm_clock_watch *cw, int64_t wall_ms, int64_t mono_ms);

/* True for a sample stamped ts_ms on the clock before the last step. */
int pdm_clock_fenced(const struct pdm_clock_watch *cw, int64_t ts_ms, int64_t wall_ms,
		     int64_t mono_ms);

/*
 * How far behind the host's clock a device's samples arrive: the smallest
 * and the largest (receipt time - sample time) seen in the last minute, kept
 * in six buckets of ten seconds of the monotonic clock, so that a delivery
 * delayed once ages out within a minute and a device clock that drifts is
 * followed. The smallest is the device's clock offset (plus the quickest
 * delivery, negated: a device whose clock is behind shows a positive lag);
 * the largest adds the worst recent delivery delay, which is how long
 * windows on that device's clock must wait. Without samples for a minute the
 * last estimates stay. Zero-initialise.
 */
#define PDM_LAG_BUCKETS 6
#define PDM_LAG_BUCKET_MS 10000
struct pdm_lag {
	int64_t min_ms[PDM_LAG_BUCKETS], max_ms[PDM_LAG_BUCKETS];
	int64_t bucket[PDM_LAG_BUCKETS]; /* 1 + the bucket number each slot holds; 0 = empty */
	int64_t est_min_ms, est_max_ms;
	uint64_t samples;
};

/* Records one sample that arrived lag_ms after the time it carries. */
void pdm_lag_add(struct pdm_lag *l, int64_t lag_ms, int64_t mono_ms);

/* The current estimates into *min_ms and *max_ms (either may be NULL).
 * Returns 0, or -ENODATA (both 0) before the first sample. */
int pdm_lag_get(struct pdm_lag *l, int64_t mono_ms, int64_t *min_ms, int64_t *max_ms);

/* The host's clock stepped by step_ms (positive: forward): every lag seen
 * so far, measured on the old clock, moves by as much. */
void pdm_lag_shift(struct pdm_lag *l, int64_t step_ms);

/* Forgets the buckets (the device's clock stepped, by an amount only its
 * next samples tell); the next sample sets the estimates afresh. */
void pdm_lag_reset(struct pdm_lag *l);

/* Formats epoch ms as "2026-11-28T04:25:42.123Z" (24 chars + NUL).
 * buf must hold at least PDM_ISO8601_LEN bytes. Returns buf. */
#define PDM_ISO8601_LEN 32
char *pdm_iso8601(int64_t epoch_ms, char *buf, size_t len);

/* Parses ISO-8601 date-time ("2026-11-28T04:25:42.123Z", "+01:00" offsets,
 * a space instead of 'T', no zone meaning UTC) into epoch ms.
 * Returns 0 or -EINVAL. */
int pdm_parse_iso8601(const char *s, int64_t *epoch_ms);

#endif
