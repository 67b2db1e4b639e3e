/*
 * test_mb_peers.c - the Modbus poller against independent peers:
 * - python3-pymodbus's TCP server, whose registers are encoded by Python's
 *   struct module (tests/peers/pymodbus_server.py): every type in every
 *   word order must decode exactly;
 * - an RTU line through a socat pty pair, with a libmodbus RTU server
 *   answering two unit ids on the one bus, and a third unit id that never
 *   answers: the two are decoded, the silent one is stale.
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
#include <unistd.h>

#include <cmocka.h>

#include "mb_collect.h"
#include "mb_conn.h"
#include "mb_server.h"
#include "test_broker.h"
#include "test_util.h"

static struct mb_point pt(uint32_t id, enum mb_kind k, uint16_t addr, enum mb_type t,
			  enum mb_order o)
{
	return (struct mb_point){ .sensor = id, .name = "p", .kind = k, .address = addr,
				  .type = t, .order = o, .scale = 1.0 };
}

static void test_pymodbus(void **state)
{
	static const enum mb_order orders[] = { MB_O_ABCD, MB_O_CDAB, MB_O_BADC, MB_O_DCBA };
	const char *root = getenv("PDM_SOURCE_ROOT");
	char script[1024], portbuf[16];
	struct mb_point p[60];
	double want[60];
	int want_q[60];
	size_t n = 0;
	(void)state;

	assert_non_null(root);
	snprintf(script, sizeof(script), "%s/tests/peers/pymodbus_server.py", root);
	int port = test_free_port();
	assert_true(port > 0);
	snprintf(portbuf, sizeof(portbuf), "%d", port);
	char *argv[] = { "/usr/bin/python3", script, "--port", portbuf, NULL };
	pid_t pid = mb_spawn_ready(argv, 20000);
	assert_true(pid > 0);
	assert_int_equal(test_wait_port(port, 20000), 0);

#define ADD(k, a, t, o, v, q) \
	do { \
		p[n] = pt((uint32_t)n, (k), (a), (t), (o)); \
		want[n] = (v); \
		want_q[n] = (q); \
		n++; \
	} while (0)
	for (int i = 0; i < 4; i++) {
		ADD(MB_K_HR, (uint16_t)(0 + 2 * i), MB_T_FLOAT32, orders[i], -1234.5, PDM_Q_GOOD);
		ADD(MB_K_HR, (uint16_t)(10 + 4 * i), MB_T_FLOAT64, orders[i], M_PI, PDM_Q_GOOD);
		ADD(MB_K_HR, (uint16_t)(30 + 2 * i), MB_T_INT32, orders[i], -123456789.0,
		    PDM_Q_GOOD);
		ADD(MB_K_HR, (uint16_t)(40 + 2 * i), MB_T_UINT32, orders[i], 4000000000.0,
		    PDM_Q_GOOD);
		ADD(MB_K_HR, (uint16_t)(50 + 4 * i), MB_T_INT64, orders[i], -1234567890123.0,
		    PDM_Q_GOOD);
		ADD(MB_K_HR, (uint16_t)(70 + 4 * i), MB_T_UINT64, orders[i],
		    (double)12345678901234567ULL, PDM_Q_GOOD);
	}
	size_t scaled = n;
	ADD(MB_K_HR, 90, MB_T_INT16, MB_O_ABCD, -1234 * 0.1, PDM_Q_GOOD);
	p[scaled].scale = 0.1;
	ADD(MB_K_HR, 91, MB_T_UINT16, MB_O_ABCD, 65000.0, PDM_Q_GOOD);
	size_t nan_i = n;
	ADD(MB_K_HR, 92, MB_T_FLOAT32, MB_O_ABCD, 0, PDM_Q_BAD);
	size_t ir_i = n;
	ADD(MB_K_IR, 0, MB_T_INT16, MB_O_ABCD, 25.0, PDM_Q_GOOD);
	p[ir_i].scale = 0.01;
	ADD(MB_K_IR, 1, MB_T_UINT16, MB_O_ABCD, 40000.0, PDM_Q_GOOD);
	static const int coils[8] = { 1, 0, 1, 1, 0, 0, 1, 0 };
	static const int dis[8] = { 0, 1, 1, 0, 1, 0, 0, 1 };
	for (int i = 0; i < 8; i++)
		ADD(MB_K_COIL, (uint16_t)i, MB_T_BOOL, MB_O_ABCD, coils[i], PDM_Q_GOOD);
	for (int i = 0; i < 8; i++)
		ADD(MB_K_DI, (uint16_t)i, MB_T_BOOL, MB_O_ABCD, dis[i], PDM_Q_GOOD);
#undef ADD

	struct mb_group g = { .name = "py", .unit_id = 1, .poll_ms = 50, .timeout_ms = 2000,
			      .points = p, .n_points = n };
	struct mb_conn_cfg cfg = { .name = "py", .transport = MB_TCP, .host = "127.0.0.1",
				   .port = port, .groups = &g, .n_groups = 1 };
	struct mb_collect col;
	mb_collect_init(&col);
	struct mb_conn *c = mb_conn_new(&cfg, mb_collect_cb, &col);
	assert_non_null(c);
	/* Merged: hr 0..92 in one request, ir, coils, discrete inputs. */
	assert_int_equal(mb_conn_requests_per_poll(c, 0), 4);
	assert_int_equal(mb_conn_start(c), 0);
	assert_true(mb_collect_wait(&col, (uint32_t)(n - 1), PDM_Q_GOOD, 2, 20000));
	mb_conn_stop(c);

	for (size_t i = 0; i < n; i++) {
		struct pdm_sample s = mb_collect_last(&col, (uint32_t)i);
		if (s.quality != want_q[i] || (i != nan_i && s.value != want[i]) ||
		    (i == nan_i && !isnan(s.value)))
			fail_msg("sensor %zu (%s @%u, %s): got %.17g q%d, want %.17g q%d", i,
				 mb_type_name(p[i].type), p[i].address,
				 mb_order_name(p[i].order), s.value, s.quality, want[i],
				 want_q[i]);
	}
	struct mb_stats st;
	assert_int_equal(mb_conn_stats(c, 0, &st), 0);
	assert_int_equal(st.errors, 0);
	assert_true(st.requests >= 8);
	mb_conn_free(c);
	mb_collect_cleanup(&col);
	mb_kill_wait(pid, SIGTERM);
}

static bool wait_file(const char *path, int ms)
{
	for (int i = 0; i < ms / 10; i++) {
		if (access(path, F_OK) == 0)
			return true;
		test_sleep_ms(10);
	}
	return false;
}

static void test_rtu_two_units(void **state)
{
	char dir[256], a[300], b[300], la[320], lb[320];
	(void)state;

	assert_int_equal(test_mkdtemp(dir, sizeof(dir)), 0);
	snprintf(a, sizeof(a), "%s/srv", dir);
	snprintf(b, sizeof(b), "%s/cli", dir);
	snprintf(la, sizeof(la), "pty,raw,echo=0,link=%s", a);
	snprintf(lb, sizeof(lb), "pty,raw,echo=0,link=%s", b);
	char *argv[] = { "/usr/bin/socat", la, lb, NULL };
	pid_t socat = mb_spawn(argv);
	assert_true(socat > 0);
	assert_true(wait_file(a, 5000));
	assert_true(wait_file(b, 5000));

	struct mb_server *srv = mb_server_start_rtu(a, 115200);
	assert_non_null(srv);
	mb_server_set_value(srv, 1, MB_K_HR, 0, 21.5, MB_T_FLOAT32, MB_O_CDAB);
	mb_server_set_value(srv, 1, MB_K_IR, 4, -7, MB_T_INT16, MB_O_ABCD);
	mb_server_set_value(srv, 2, MB_K_HR, 0, 99.25, MB_T_FLOAT64, MB_O_DCBA);
	uint8_t on = 1;
	mb_server_set_bits(srv, 2, MB_K_COIL, 3, &on, 1);

	struct mb_point u1[] = { pt(0, MB_K_HR, 0, MB_T_FLOAT32, MB_O_CDAB),
				 pt(1, MB_K_IR, 4, MB_T_INT16, MB_O_ABCD) };
	struct mb_point u2[] = { pt(2, MB_K_HR, 0, MB_T_FLOAT64, MB_O_DCBA),
				 pt(3, MB_K_COIL, 3, MB_T_BOOL, MB_O_ABCD) };
	struct mb_point u3[] = { pt(4, MB_K_HR, 0, MB_T_UINT16, MB_O_ABCD) };
	struct mb_group g[] = {
		{ .name = "unit1", .unit_id = 1, .poll_ms = 50, .timeout_ms = 300, .points = u1,
		  .n_points = 2 },
		{ .name = "unit2", .unit_id = 2, .poll_ms = 50, .timeout_ms = 300, .points = u2,
		  .n_points = 2 },
		{ .name = "unit3", .unit_id = 3, .poll_ms = 50, .timeout_ms = 100, .points = u3,
		  .n_points = 1 },
	};
	struct mb_conn_cfg cfg = { .name = "bus", .transport = MB_RTU, .device = b,
				   .baud = 115200, .parity = 'N', .data_bits = 8,
				   .stop_bits = 1, .backoff_min_ms = 200, .backoff_max_ms = 1000,
				   .groups = g, .n_groups = 3 };
	struct mb_collect col;
	mb_collect_init(&col);
	struct mb_conn *c = mb_conn_new(&cfg, mb_collect_cb, &col);
	assert_non_null(c);
	assert_int_equal(mb_conn_start(c), 0);
	assert_true(mb_collect_wait(&col, 4, PDM_Q_STALE, 2, 10000));
	assert_true(mb_collect_wait(&col, 0, PDM_Q_GOOD, 5, 10000));
	assert_true(mb_collect_wait(&col, 2, PDM_Q_GOOD, 5, 10000));
	mb_conn_stop(c);

	assert_true(mb_collect_last(&col, 0).value == 21.5);
	assert_true(mb_collect_last(&col, 1).value == -7.0);
	assert_true(mb_collect_last(&col, 2).value == 99.25);
	assert_true(mb_collect_last(&col, 3).value == 1.0);
	/* The silent unit never poisoned its neighbours. */
	assert_int_equal(mb_collect_count(&col, 0, PDM_Q_STALE), 0);
	assert_int_equal(mb_collect_count(&col, 2, PDM_Q_STALE), 0);
	assert_int_equal(mb_collect_count(&col, 4, PDM_Q_GOOD), 0);
	struct mb_stats st;
	assert_int_equal(mb_conn_stats(c, 2, &st), 0);
	assert_true(st.timeouts >= 1);
	assert_int_equal(st.reconnects, 0);
	assert_int_equal(mb_conn_stats(c, 0, &st), 0);
	assert_int_equal(st.errors, 0);
	assert_true(st.requests >= 10);

	/* The probe on the same bus: both units decoded, the silent one named. */
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	assert_non_null(out);
	assert_int_equal(mb_probe(&cfg, out), -ETIMEDOUT);
	fclose(out);
	assert_non_null(strstr(buf, "modbus-rtu"));
	assert_non_null(strstr(buf, "unit 1 (unit1)"));
	assert_non_null(strstr(buf, "unit 2 (unit2)"));
	assert_non_null(strstr(buf, "21.5"));
	assert_non_null(strstr(buf, "99.25"));
	assert_non_null(strstr(buf, "unit 3 (unit3)"));
	assert_non_null(strstr(buf, "error: Connection timed out"));
	free(buf);

	mb_conn_free(c);
	mb_collect_cleanup(&col);
	mb_server_stop(srv);
	mb_kill_wait(socat, SIGTERM);
	test_rmtree(dir);
}

static bool disconnected(struct mb_conn *c, int ms)
{
	struct mb_stats st;

	for (int i = 0; i < ms / 10; i++) {
		if (mb_conn_stats(c, 0, &st) == 0 && !st.connected && st.errors > 0)
			return true;
		test_sleep_ms(10);
	}
	return false;
}

/* The serial line goes away (a USB adapter unplugged: socat killed) and
 * comes back under the same name: stale, then recovery by reopening. */
static void test_rtu_unplugged(void **state)
{
	char dir[256], a[300], b[300], la[320], lb[320];
	(void)state;

	assert_int_equal(test_mkdtemp(dir, sizeof(dir)), 0);
	snprintf(a, sizeof(a), "%s/srv", dir);
	snprintf(b, sizeof(b), "%s/cli", dir);
	snprintf(la, sizeof(la), "pty,raw,echo=0,link=%s", a);
	snprintf(lb, sizeof(lb), "pty,raw,echo=0,link=%s", b);
	char *argv[] = { "/usr/bin/socat", la, lb, NULL };
	pid_t socat = mb_spawn(argv);
	assert_true(socat > 0);
	assert_true(wait_file(a, 5000));
	assert_true(wait_file(b, 5000));
	struct mb_server *srv = mb_server_start_rtu(a, 38400);
	assert_non_null(srv);
	mb_server_set_value(srv, 5, MB_K_HR, 2, 4321, MB_T_UINT32, MB_O_CDAB);

	struct mb_point p = pt(0, MB_K_HR, 2, MB_T_UINT32, MB_O_CDAB);
	struct mb_group g = { .name = "u5", .unit_id = 5, .poll_ms = 50, .timeout_ms = 200,
			      .points = &p, .n_points = 1 };
	struct mb_conn_cfg cfg = { .name = "usb0", .transport = MB_RTU, .device = b,
				   .baud = 38400, .parity = 'N', .data_bits = 8,
				   .stop_bits = 1, .backoff_min_ms = 100, .backoff_max_ms = 300,
				   .groups = &g, .n_groups = 1 };
	struct mb_collect col;
	mb_collect_init(&col);
	struct mb_conn *c = mb_conn_new(&cfg, mb_collect_cb, &col);
	assert_non_null(c);
	assert_int_equal(mb_conn_start(c), 0);
	assert_true(mb_collect_wait(&col, 0, PDM_Q_GOOD, 3, 10000));
	assert_true(mb_collect_last(&col, 0).value == 4321.0);

	mb_kill_wait(socat, SIGTERM);
	mb_server_stop(srv);
	assert_true(mb_collect_wait(&col, 0, PDM_Q_STALE, 3, 10000));
	assert_true(disconnected(c, 10000));

	socat = mb_spawn(argv);
	assert_true(socat > 0);
	test_sleep_ms(100);
	assert_true(wait_file(a, 5000));
	srv = mb_server_start_rtu(a, 38400);
	assert_non_null(srv);
	mb_server_set_value(srv, 5, MB_K_HR, 2, 8765, MB_T_UINT32, MB_O_CDAB);
	uint64_t good = mb_collect_count(&col, 0, PDM_Q_GOOD);
	assert_true(mb_collect_wait(&col, 0, PDM_Q_GOOD, good + 2, 10000));
	assert_true(mb_collect_last(&col, 0).value == 8765.0);
	struct mb_stats st;
	assert_int_equal(mb_conn_stats(c, 0, &st), 0);
	assert_true(st.reconnects >= 1);
	assert_true(st.connected);

	mb_conn_free(c);
	mb_collect_cleanup(&col);
	mb_server_stop(srv);
	mb_kill_wait(socat, SIGTERM);
	test_rmtree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pymodbus),
		cmocka_unit_test(test_rtu_two_units),
		cmocka_unit_test(test_rtu_unplugged),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
