/*
 * sample.h - what every connector hands to the daemon.
 *
 * Connectors run their own threads and call a pdm_sample_cb with batches of
 * samples; the callback must not block for long (the daemon's callback
 * pushes onto a bounded queue and returns). Sensor ids are assigned by the
 * daemon when it builds a connector's configuration.
 */
#ifndef PDM_SAMPLE_H
#define PDM_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

enum pdm_quality {
	PDM_Q_GOOD = 0,  /* a value read from the device */
	PDM_Q_BAD = 1,   /* read, but NaN/Inf or outside valid_min/valid_max */
	PDM_Q_STALE = 2, /* the source failed: no fresh value (value is NaN) */
};

struct pdm_sample {
	uint32_t sensor; /* daemon-assigned sensor id */
	int64_t ts_ms;   /* wall-clock epoch milliseconds */
	double value;
	uint8_t quality; /* enum pdm_quality */
};

/* Called from a connector thread with n >= 1 samples; `s` is only valid
 * during the call. */
typedef void (*pdm_sample_cb)(const struct pdm_sample *s, size_t n, void *user);

#endif
