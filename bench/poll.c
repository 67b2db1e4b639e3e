/*
 * poll.c - RW-POLL through our Modbus connector: 10 holding registers at
 * address 0 (ten uint16 sensors, merged into one request), poll interval 0
 * (back to back), against a server on 127.0.0.1. Counts completed polls
 * (sample batches) after 200 warm-up ones and checks the values (1000 +
 * address, as /work/shared/bench/poll/modbus_server.c serves them).
 *
 * usage: bench_poll PORT [N=20000] [LABEL=ours]
 * prints: poll_<label>_rt_per_s
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "log.h"
#include "mb_conn.h"
#include "pdm_time.h"

#define WARMUP 200

struct run {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	long polls, target, bad;
	int64_t t0_us, t1_us;
};

static void on_samples(const struct pdm_sample *s, size_t n, void *user)
{
	struct run *r = user;

	pthread_mutex_lock(&r->mu);
	for (size_t i = 0; i < n; i++)
		if (s[i].quality != PDM_Q_GOOD || s[i].value != 1000.0 + s[i].sensor)
			r->bad++;
	r->polls++;
	if (r->polls == WARMUP)
		r->t0_us = pdm_mono_us();
	if (r->polls == WARMUP + r->target) {
		r->t1_us = pdm_mono_us();
		pthread_cond_signal(&r->cv);
	}
	pthread_mutex_unlock(&r->mu);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PORT [N] [LABEL]\n", argv[0]);
		return 2;
	}
	int port = (int)strtol(argv[1], NULL, 10);
	long n = argc > 2 ? strtol(argv[2], NULL, 10) : 20000;
	const char *label = argc > 3 ? argv[3] : "ours";
	struct run r = { .target = n };
	struct mb_point p[10];

	if (n <= 0)
		return 2;
	pdm_log_level = LOG_WARNING;
	pthread_mutex_init(&r.mu, NULL);
	pthread_cond_init(&r.cv, NULL);
	for (int i = 0; i < 10; i++)
		p[i] = (struct mb_point){ .sensor = (uint32_t)i, .name = "r", .kind = MB_K_HR,
					  .address = (uint16_t)i, .type = MB_T_UINT16,
					  .order = MB_O_ABCD, .scale = 1.0 };
	struct mb_group g = { .name = "bench", .unit_id = 1, .poll_ms = 0, .timeout_ms = 2000,
			      .points = p, .n_points = 10 };
	struct mb_conn_cfg cfg = { .name = "bench", .transport = MB_TCP, .host = "127.0.0.1",
				   .port = port, .groups = &g, .n_groups = 1 };
	struct mb_conn *c = mb_conn_new(&cfg, on_samples, &r);
	if (!c || mb_conn_requests_per_poll(c, 0) != 1 || mb_conn_start(c) < 0)
		return 1;

	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 120;
	pthread_mutex_lock(&r.mu);
	while (r.t1_us == 0)
		if (pthread_cond_timedwait(&r.cv, &r.mu, &dl) == ETIMEDOUT)
			break;
	int64_t dt = r.t1_us - r.t0_us;
	long bad = r.bad;
	pthread_mutex_unlock(&r.mu);
	mb_conn_free(c);
	if (r.t1_us == 0 || dt <= 0) {
		fprintf(stderr, "%s: did not finish %ld polls\n", argv[0], n);
		return 1;
	}
	printf("poll_%s_rt_per_s %.0f rt/s\n", label, (double)n * 1e6 / (double)dt);
	if (bad)
		fprintf(stderr, "%ld bad samples\n", bad);
	return bad ? 1 : 0;
}
