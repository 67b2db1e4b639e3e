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

/* Formats epoch ms as "2026-11-28T04:25:42.123Z" (24 chars + NUL).
 * buf must hold at least PDM_ISO8601_LEN bytes. Returns buf. */
#define PDM_ISO8601_LEN 32
char *pdm_iso8601(int64_t epoch_ms, char *buf, size_t len);

/* Parses ISO-8601 date-time ("2026-11-28T04:25:42.123Z", "+01:00" offsets,
 * a space instead of 'T', no zone meaning UTC) into epoch ms.
 * Returns 0 or -EINVAL. */
int pdm_parse_iso8601(const char *s, int64_t *epoch_ms);

#endif
