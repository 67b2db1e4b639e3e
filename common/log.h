/*
 * log.h - one logger for every part of pdmd.
 *
 * Messages go to stderr with a "<N>" syslog priority prefix so that journald
 * files them at the right level when pdmd runs under systemd. Messages name
 * the module and the object ("modbus[plc1]: ..."). Identical messages that
 * repeat quickly are rate-limited by pdm_log_ratelimited().
 */
#ifndef PDM_LOG_H
#define PDM_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include <syslog.h>

/* Current threshold; messages with a larger (less severe) priority are dropped. */
extern int pdm_log_level;

/* Parses "error", "warning", "info" or "debug" into a syslog priority.
 * Returns 0 and sets *prio, or -EINVAL. */
int pdm_log_level_parse(const char *name, int *prio);
const char *pdm_log_level_name(int prio);

/* Optional extra sink (e.g. the MQTT status topic); called with the
 * formatted message after it has been written to stderr. Pass NULL to remove. */
typedef void (*pdm_log_sink_fn)(int prio, const char *msg, void *user);
void pdm_log_set_sink(pdm_log_sink_fn fn, void *user);

void pdm_log(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Rate limiting for messages that an outside party can trigger at will
 * (malformed payloads, a flapping device). One state per call site: at most
 * `burst` messages per `interval_ms`; when the window reopens, one line says
 * how many were suppressed.
 */
struct pdm_ratelimit {
	int64_t window_start_ms;
	uint32_t interval_ms;
	uint32_t burst;
	uint32_t printed;
	uint64_t suppressed;
};
#define PDM_RATELIMIT_INIT(interval, n) { 0, (interval), (n), 0, 0 }

/* Returns true if a message may be printed now; thread-safe per state is
 * NOT guaranteed: keep one state per thread or per object. */
bool pdm_ratelimit_ok(struct pdm_ratelimit *rl);

#define PDM_LOG_IF(prio, ...) \
	do { \
		if ((prio) <= pdm_log_level) \
			pdm_log((prio), __VA_ARGS__); \
	} while (0)

#define LOG_E(...) PDM_LOG_IF(LOG_ERR, __VA_ARGS__)
#define LOG_W(...) PDM_LOG_IF(LOG_WARNING, __VA_ARGS__)
#define LOG_I(...) PDM_LOG_IF(LOG_INFO, __VA_ARGS__)
#define LOG_D(...) PDM_LOG_IF(LOG_DEBUG, __VA_ARGS__)

/* Log through a rate limiter declared by the caller. */
#define LOG_RL(rl, prio, ...) \
	do { \
		if ((prio) <= pdm_log_level && pdm_ratelimit_ok(rl)) \
			pdm_log((prio), __VA_ARGS__); \
	} while (0)

#endif
