/*
 * log.c - stderr logger with syslog priority prefixes and rate limiting.
 *
 * Writes one line per message with a single write(2) so lines from several
 * threads never interleave. No allocation: messages are formatted into a
 * stack buffer and truncated if longer.
 */
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "pdm_time.h"

int pdm_log_level = LOG_INFO;

static pdm_log_sink_fn log_sink;
static void *log_sink_user;
static pthread_mutex_t log_sink_lock = PTHREAD_MUTEX_INITIALIZER;

static const struct {
	const char *name;
	int prio;
} log_levels[] = {
	{ "error", LOG_ERR },
	{ "warning", LOG_WARNING },
	{ "info", LOG_INFO },
	{ "debug", LOG_DEBUG },
};

int pdm_log_level_parse(const char *name, int *prio)
{
	for (size_t i = 0; i < sizeof(log_levels) / sizeof(log_levels[0]); i++) {
		if (strcmp(name, log_levels[i].name) == 0) {
			*prio = log_levels[i].prio;
			return 0;
		}
	}
	return -EINVAL;
}

const char *pdm_log_level_name(int prio)
{
	for (size_t i = 0; i < sizeof(log_levels) / sizeof(log_levels[0]); i++)
		if (log_levels[i].prio == prio)
			return log_levels[i].name;
	return prio < LOG_ERR ? "error" : "debug";
}

void pdm_log_set_sink(pdm_log_sink_fn fn, void *user)
{
	pthread_mutex_lock(&log_sink_lock);
	log_sink = fn;
	log_sink_user = user;
	pthread_mutex_unlock(&log_sink_lock);
}

void pdm_log(int prio, const char *fmt, ...)
{
	char line[1024];
	int saved_errno = errno;
	int n = snprintf(line, sizeof(line), "<%d>", prio);
	int body = n;
	va_list ap;

	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n += m;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	line[n] = '\0';
	/* A failed write to stderr has nowhere to be reported. */
	ssize_t w = write(STDERR_FILENO, line, (size_t)n);
	(void)w;

	pthread_mutex_lock(&log_sink_lock);
	if (log_sink) {
		line[n - 1] = '\0';
		log_sink(prio, line + body, log_sink_user);
	}
	pthread_mutex_unlock(&log_sink_lock);
	errno = saved_errno;
}

bool pdm_ratelimit_ok(struct pdm_ratelimit *rl)
{
	int64_t now = pdm_mono_ms();

	if (rl->window_start_ms == 0 || now - rl->window_start_ms >= (int64_t)rl->interval_ms) {
		if (rl->suppressed > 0)
			pdm_log(LOG_WARNING, "log: %llu similar messages suppressed",
				(unsigned long long)rl->suppressed);
		rl->window_start_ms = now;
		rl->printed = 0;
		rl->suppressed = 0;
	}
	if (rl->printed < rl->burst) {
		rl->printed++;
		return true;
	}
	rl->suppressed++;
	return false;
}
