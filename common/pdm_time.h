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

/* Formats epoch ms as "2026-11-28T04:25:42.123Z" (24 chars + NUL).
 * buf must hold at least PDM_ISO8601_LEN bytes. Returns buf. */
#define PDM_ISO8601_LEN 32
char *pdm_iso8601(int64_t epoch_ms, char *buf, size_t len);

/* Parses ISO-8601 date-time ("2026-11-28T04:25:42.123Z", "+01:00" offsets,
 * a space instead of 'T', no zone meaning UTC) into epoch ms.
 * Returns 0 or -EINVAL. */
int pdm_parse_iso8601(const char *s, int64_t *epoch_ms);

#endif
