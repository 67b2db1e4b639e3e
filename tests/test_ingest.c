/*
 * test_ingest.c - the ingest queue: ordering, the full-queue policy, the
 * eventfd wake-up, and several producer threads against one consumer.
 */
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ingest.h"

static int readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	return poll(&p, 1, 0) == 1;
}

static void test_order_and_full_policy(void **state)
{
	struct ingest *q = ingest_new(4);
	struct pdm_sample in[6], out[8];
	struct ingest_stats st;
	(void)state;

	assert_non_null(q);
	assert_false(readable(ingest_fd(q)));
	for (int i = 0; i < 6; i++)
		in[i] = (struct pdm_sample){ .sensor = (uint32_t)i, .ts_ms = i, .value = i };
	/* Provoke overflow: 6 into a queue of 4 keeps the first 4, counts 2. */
	assert_int_equal(ingest_push(q, in, 6), 4);
	assert_true(readable(ingest_fd(q)));
	ingest_stats(q, &st);
	assert_int_equal(st.dropped, 2);
	assert_int_equal(st.len, 4);
	assert_int_equal(ingest_pop(q, out, 3), 3);
	assert_true(readable(ingest_fd(q)));
	assert_int_equal(out[0].sensor, 0);
	assert_int_equal(out[2].sensor, 2);
	/* Wrap around the ring. */
	assert_int_equal(ingest_push(q, in + 4, 2), 2);
	assert_int_equal(ingest_pop(q, out, 8), 3);
	assert_int_equal(out[0].sensor, 3);
	assert_int_equal(out[1].sensor, 4);
	assert_int_equal(out[2].sensor, 5);
	assert_false(readable(ingest_fd(q)));
	ingest_free(q);
	ingest_free(NULL);
}

#define PRODUCERS 4
#define PER_PRODUCER 20000

static void *producer(void *arg)
{
	struct ingest *q = arg;
	static _Atomic uint32_t next_id;
	uint32_t id = next_id++;
	struct pdm_sample batch[10];

	for (int i = 0; i < PER_PRODUCER; i += 10) {
		for (int k = 0; k < 10; k++)
			batch[k] = (struct pdm_sample){ .sensor = id, .ts_ms = i + k };
		size_t done = 0;
		while (done < 10)
			done += ingest_push(q, batch + done, 10 - done);
	}
	return NULL;
}

static void test_many_producers(void **state)
{
	struct ingest *q = ingest_new(256);
	pthread_t th[PRODUCERS];
	int64_t last[PRODUCERS];
	size_t total = 0;
	struct pdm_sample out[64];
	(void)state;

	for (int i = 0; i < PRODUCERS; i++) {
		last[i] = -1;
		pthread_create(&th[i], NULL, producer, q);
	}
	while (total < (size_t)PRODUCERS * PER_PRODUCER) {
		struct pollfd p = { .fd = ingest_fd(q), .events = POLLIN };
		poll(&p, 1, 1000);
		size_t n = ingest_pop(q, out, 64);
		for (size_t i = 0; i < n; i++) {
			/* Each producer's samples arrive in its order, none twice. */
			assert_true(out[i].sensor < PRODUCERS);
			assert_int_equal(out[i].ts_ms, last[out[i].sensor] + 1);
			last[out[i].sensor] = out[i].ts_ms;
		}
		total += n;
	}
	for (int i = 0; i < PRODUCERS; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(ingest_pop(q, out, 64), 0);
	ingest_free(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order_and_full_policy),
		cmocka_unit_test(test_many_producers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
