/*
 * mb_collect.h - test side of the Modbus connector: a sample sink that
 * tests can wait on, and child processes (servers, socat) that announce
 * readiness.
 */
#ifndef PDM_MB_COLLECT_H
#define PDM_MB_COLLECT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "sample.h"

#define MB_COLLECT_MAX 64

struct mb_collect {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct pdm_sample last[MB_COLLECT_MAX];
	uint64_t n[MB_COLLECT_MAX][3]; /* per sensor, per quality */
	uint64_t batches;
	bool bad_id;                   /* a sensor id >= MB_COLLECT_MAX arrived */
};

void mb_collect_init(struct mb_collect *c);
void mb_collect_cleanup(struct mb_collect *c);
/* A pdm_sample_cb; user is a struct mb_collect. */
void mb_collect_cb(const struct pdm_sample *s, size_t n, void *user);
/* Waits until `sensor` has at least `count` samples of `quality`; returns
 * true if that happened within timeout_ms. */
bool mb_collect_wait(struct mb_collect *c, uint32_t sensor, int quality, uint64_t count,
		     int timeout_ms);
/* Snapshot of the count and of the last sample of a sensor. */
uint64_t mb_collect_count(struct mb_collect *c, uint32_t sensor, int quality);
struct pdm_sample mb_collect_last(struct mb_collect *c, uint32_t sensor);

/* Starts argv[0] (a path) with stdout on a pipe and waits up to
 * timeout_ms for a line starting with "ready". Returns the pid or -errno. */
pid_t mb_spawn_ready(char *const argv[], int timeout_ms);
/* Starts argv[0] without waiting. Returns the pid or -errno. */
pid_t mb_spawn(char *const argv[]);
/* Sends sig to the child, then reaps it. */
void mb_kill_wait(pid_t pid, int sig);

/* Captures log messages (through pdm_log_set_sink) so tests can check that
 * a failure was reported by name. */
void mb_logcap_start(void);
/* True if a captured message contains `needle`. */
bool mb_logcap_has(const char *needle);
void mb_logcap_stop(void);

#endif
