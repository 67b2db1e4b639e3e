/*
 * pdm_parse.h - strict parsing of numbers, durations and sizes from text.
 *
 * Every parser rejects trailing garbage, empty input and out-of-range values
 * (no atoi). They return 0 on success or -EINVAL / -ERANGE.
 */
#ifndef PDM_PARSE_H
#define PDM_PARSE_H

#include <stdbool.h>
#include <stdint.h>

int pdm_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);
int pdm_parse_double(const char *s, double *out);
int pdm_parse_bool(const char *s, bool *out);

/* "100ms", "1s", "5m", "24h", "7d"; a bare number is seconds unless
 * default_unit_ms says otherwise. Fractions allowed ("1.5s"). */
int pdm_parse_duration_ms(const char *s, int64_t default_unit_ms, int64_t *out_ms);

/* Formats a duration with the largest exact unit ("100ms", "24h"). */
void pdm_format_duration(int64_t ms, char *buf, unsigned len);

/* A duration for people, rounded ("4.4 h", "12.3 s", "2.5 d"; the sign
 * dropped). Returns buf. */
const char *pdm_format_approx(int64_t ms, char *buf, unsigned len);

#endif
