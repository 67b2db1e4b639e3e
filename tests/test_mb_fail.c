/*
 * test_mb_fail.c - the Modbus poller when devices fail, against a server
 * in a child process (tests/helpers/mb_server_main.c) that is killed or
 * frozen like a real device:
 * - killed mid-run: its sensors go stale, the poller backs off, and after
 *   the server returns it recovers within one backoff period, while a
 *   second source on another connection keeps its full rate;
 * - frozen with SIGSTOP: requests time out (counted), the sensors are
 *   stale, the thread is not stuck and stop() returns promptly.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mb_collect.h"
#include "mb_conn.h"
#include "mb_server.h"
#include "pdm_time.h"
#include "test_broker.h"
#include "test_util.h"

static pid_t start_child(int port)
{
	const char *exe = getenv("PDM_MB_TEST_SERVER");
	char portbuf[16];

	if (!exe)
		return -ENOENT;
	snprintf(portbuf, sizeof(portbuf), "%d", port);
	char *argv[] = { (char *)exe, portbuf, "1", NULL };
	return mb_spawn_ready(argv, 10000);
}

static struct mb_point pt(uint32_t id, enum mb_kind k, uint16_t addr, enum mb_type t)
{
	return (struct mb_point){ .sensor = id, .name = "p", .kind = k, .address = addr,
				  .type = t, .order = MB_O_ABCD, .scale = 1.0 };
}

static bool wait_stats(struct mb_conn *c, bool (*pred)(const struct mb_stats *), int ms)
{
	struct mb_stats st;

	for (int i = 0; i < ms / 10; i++) {
		if (mb_conn_stats(c, 0, &st) == 0 && pred(&st))
			return true;
		test_sleep_ms(10);
	}
	return false;
}

static bool disconnected(const struct mb_stats *st)
{
	return !st->connected && st->errors >= 2;
}

static bool timed_out_twice(const struct mb_stats *st)
{
	return st->timeouts >= 2;
}

static void test_kill_recover(void **state)
{
	enum { POLL_A = 50, POLL_B = 20, BACKOFF_MAX = 300 };
	(void)state;

	int port = test_free_port();
	assert_true(port > 0);
	pid_t child = start_child(port);
	assert_true(child > 0);

	struct mb_server *srv_b = mb_server_start_tcp(0);
	assert_non_null(srv_b);
	mb_server_set_value(srv_b, 1, MB_K_HR, 5, 77, MB_T_UINT16, MB_O_ABCD);

	struct mb_point pa[] = { pt(0, MB_K_HR, 3, MB_T_UINT16), pt(1, MB_K_COIL, 1, MB_T_BOOL) };
	struct mb_point pb[] = { pt(2, MB_K_HR, 5, MB_T_UINT16) };
	struct mb_group ga = { .name = "a", .unit_id = 1, .poll_ms = POLL_A, .timeout_ms = 500,
			       .points = pa, .n_points = 2 };
	struct mb_group gb = { .name = "b", .unit_id = 1, .poll_ms = POLL_B, .timeout_ms = 500,
			       .points = pb, .n_points = 1 };
	struct mb_conn_cfg ca = { .name = "a", .transport = MB_TCP, .host = "127.0.0.1",
				  .port = port, .backoff_min_ms = 100,
				  .backoff_max_ms = BACKOFF_MAX, .groups = &ga, .n_groups = 1 };
	struct mb_conn_cfg cb = { .name = "b", .transport = MB_TCP, .host = "127.0.0.1",
				  .port = mb_server_port(srv_b), .groups = &gb, .n_groups = 1 };
	struct mb_collect col;
	mb_collect_init(&col);
	struct mb_conn *a = mb_conn_new(&ca, mb_collect_cb, &col);
	struct mb_conn *b = mb_conn_new(&cb, mb_collect_cb, &col);
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(mb_conn_start(a), 0);
	assert_int_equal(mb_conn_start(b), 0);
	assert_true(mb_collect_wait(&col, 0, PDM_Q_GOOD, 3, 5000));
	assert_true(mb_collect_wait(&col, 2, PDM_Q_GOOD, 3, 5000));
	assert_true(mb_collect_last(&col, 0).value == 1003.0);
	assert_true(mb_collect_last(&col, 1).value == 1.0);

	/* Kill the device. */
	uint64_t b0 = mb_collect_count(&col, 2, PDM_Q_GOOD);
	int64_t t0 = pdm_mono_ms();
	mb_kill_wait(child, SIGKILL);
	assert_true(mb_collect_wait(&col, 0, PDM_Q_STALE, 3, 5000));
	assert_true(mb_collect_wait(&col, 1, PDM_Q_STALE, 3, 5000));
	assert_true(wait_stats(a, disconnected, 5000));
	test_sleep_ms(1500); /* long enough for the backoff to reach its cap */
	uint64_t good_a = mb_collect_count(&col, 0, PDM_Q_GOOD);
	uint64_t b1 = mb_collect_count(&col, 2, PDM_Q_GOOD);
	int64_t outage = pdm_mono_ms() - t0;

	/* The other source kept its rate: at least half the polls its interval
	 * allows (a stall would give a handful). */
	printf("# source b: %llu polls in %lld ms of outage (interval %d ms)\n",
	       (unsigned long long)(b1 - b0), (long long)outage, POLL_B);
	assert_true((int64_t)(b1 - b0) * POLL_B * 2 >= outage);
	assert_int_equal(mb_collect_count(&col, 2, PDM_Q_STALE), 0);

	/* The device returns: data within one backoff period (plus a poll). */
	child = start_child(port);
	assert_true(child > 0);
	int64_t t_up = pdm_mono_ms();
	assert_true(mb_collect_wait(&col, 0, PDM_Q_GOOD, good_a + 1, 5000));
	int64_t recovery = pdm_mono_ms() - t_up;
	printf("# recovered %lld ms after the server returned (backoff cap %d ms)\n",
	       (long long)recovery, BACKOFF_MAX);
	assert_true(recovery <= BACKOFF_MAX + POLL_A + 500);

	struct mb_stats st;
	assert_int_equal(mb_conn_stats(a, 0, &st), 0);
	assert_int_equal(st.reconnects, 1);
	assert_true(st.connected);
	assert_true(st.errors >= 3);
	/* Backoff: far fewer connection attempts than polls during the outage. */
	assert_true((int64_t)st.errors * POLL_A < outage);
	assert_int_equal(mb_conn_stats(b, 0, &st), 0);
	assert_int_equal(st.errors, 0);
	assert_int_equal(st.reconnects, 0);

	mb_conn_free(a);
	mb_conn_free(b);
	mb_server_stop(srv_b);
	mb_kill_wait(child, SIGTERM);
	mb_collect_cleanup(&col);
}

static void test_hung_server(void **state)
{
	enum { TIMEOUT = 200 };
	(void)state;

	int port = test_free_port();
	assert_true(port > 0);
	pid_t child = start_child(port);
	assert_true(child > 0);

	struct mb_point p[] = { pt(0, MB_K_IR, 7, MB_T_UINT16), pt(1, MB_K_DI, 3, MB_T_BOOL) };
	struct mb_group g = { .name = "h", .unit_id = 1, .poll_ms = 50, .timeout_ms = TIMEOUT,
			      .points = p, .n_points = 2 };
	struct mb_conn_cfg cfg = { .name = "h", .transport = MB_TCP, .host = "127.0.0.1",
				   .port = port, .backoff_min_ms = 100, .backoff_max_ms = 300,
				   .groups = &g, .n_groups = 1 };
	struct mb_collect col;
	mb_collect_init(&col);
	struct mb_conn *c = mb_conn_new(&cfg, mb_collect_cb, &col);
	assert_non_null(c);
	assert_int_equal(mb_conn_start(c), 0);
	assert_true(mb_collect_wait(&col, 0, PDM_Q_GOOD, 2, 5000));
	assert_true(mb_collect_last(&col, 0).value == 2007.0);
	assert_true(mb_collect_last(&col, 1).value == 1.0);

	/* Freeze the device: the kernel still accepts connections, nobody answers. */
	mb_logcap_start();
	kill(child, SIGSTOP);
	assert_true(wait_stats(c, timed_out_twice, 10000));
	assert_true(mb_collect_wait(&col, 0, PDM_Q_STALE, 2, 5000));
	assert_true(mb_collect_wait(&col, 1, PDM_Q_STALE, 2, 5000));
	struct mb_stats st;
	assert_int_equal(mb_conn_stats(c, 0, &st), 0);
	assert_true(st.errors >= st.timeouts);
	/* The slow poll is reported as an overrun of its interval. */
	assert_true(mb_logcap_has("modbus[h]: poll overran its 50 ms interval"));
	assert_true(mb_logcap_has("timed out"));
	mb_logcap_stop();

	/* Not stuck: stop returns in about one request timeout. */
	int64_t t0 = pdm_mono_ms();
	mb_conn_stop(c);
	int64_t took = pdm_mono_ms() - t0;
	printf("# stop took %lld ms with a frozen peer (timeout %d ms)\n", (long long)took,
	       TIMEOUT);
	assert_true(took <= 2 * TIMEOUT + 1000);
	uint64_t after = mb_collect_count(&col, 0, PDM_Q_STALE);
	test_sleep_ms(100);
	assert_int_equal(mb_collect_count(&col, 0, PDM_Q_STALE), after); /* no callbacks */

	mb_conn_free(c);
	mb_collect_cleanup(&col);
	mb_kill_wait(child, SIGKILL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kill_recover),
		cmocka_unit_test(test_hung_server),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
