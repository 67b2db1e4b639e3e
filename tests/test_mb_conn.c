/*
 * test_mb_conn.c - the Modbus poller against the in-process libmodbus
 * server: request merging (counted at the server), decoding of every type
 * and order, scale/offset and quality, exception isolation, counters, and
 * the probe table.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
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
#include "pdm_error.h"

struct fx {
	struct mb_server *srv;
	struct mb_collect col;
	struct mb_conn *conn;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	f->srv = mb_server_start_tcp(0);
	if (!f->srv) {
		free(f);
		return -1;
	}
	mb_collect_init(&f->col);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	mb_conn_free(f->conn);
	mb_server_stop(f->srv);
	mb_collect_cleanup(&f->col);
	free(f);
	return 0;
}

static struct mb_point pt(uint32_t id, enum mb_kind k, uint16_t addr, enum mb_type t,
			  enum mb_order o)
{
	return (struct mb_point){ .sensor = id, .name = "p", .kind = k, .address = addr,
				  .type = t, .order = o, .scale = 1.0 };
}

static struct mb_conn_cfg tcp_cfg(int port, const struct mb_group *g, size_t n)
{
	return (struct mb_conn_cfg){ .name = "plc", .transport = MB_TCP, .host = "127.0.0.1",
				     .port = port, .backoff_min_ms = 50, .backoff_max_ms = 200,
				     .groups = g, .n_groups = n };
}

static void test_names(void **state)
{
	enum mb_kind k;
	(void)state;

	assert_int_equal(mb_kind_parse("hr", &k), 0);
	assert_int_equal(k, MB_K_HR);
	assert_int_equal(mb_kind_parse("coil", &k), 0);
	assert_int_equal(k, MB_K_COIL);
	assert_int_equal(mb_kind_parse("di", &k), 0);
	assert_int_equal(k, MB_K_DI);
	assert_int_equal(mb_kind_parse("ir", &k), 0);
	assert_int_equal(k, MB_K_IR);
	assert_int_equal(mb_kind_parse("40001", &k), -EINVAL);
	uint16_t a;
	assert_int_equal(mb_register_parse("hr:100", &k, &a), 0);
	assert_int_equal(k, MB_K_HR);
	assert_int_equal(a, 100);
	assert_int_equal(mb_register_parse("di:0x1F", &k, &a), 0);
	assert_int_equal(k, MB_K_DI);
	assert_int_equal(a, 31);
	assert_int_equal(mb_register_parse("ir:65535", &k, &a), 0);
	assert_int_equal(a, 65535);
	assert_int_equal(mb_register_parse("ir:65536", &k, &a), -ERANGE);
	assert_int_equal(mb_register_parse("hr:0x10000", &k, &a), -ERANGE);
	assert_int_equal(mb_register_parse("hr:-1", &k, &a), -ERANGE);
	assert_int_equal(mb_register_parse("40001", &k, &a), -EINVAL);
	assert_int_equal(mb_register_parse("xx:1", &k, &a), -EINVAL);
	assert_int_equal(mb_register_parse("hr:", &k, &a), -EINVAL);
	assert_int_equal(mb_register_parse("hr:0x", &k, &a), -EINVAL);
	assert_int_equal(mb_register_parse("hr:12abc", &k, &a), -EINVAL);
	assert_string_equal(mb_exception_name(2), "illegal data address");
	assert_string_equal(mb_exception_name(1), "illegal function");
	assert_string_equal(mb_exception_name(11), "gateway target device failed to respond");
	assert_string_equal(mb_exception_name(9), "unknown exception");
}

/* Configurations a user can get wrong are refused up front. */
static void test_invalid_configs(void **state)
{
	struct fx *f = *state;
	struct mb_point p = pt(0, MB_K_HR, 0, MB_T_FLOAT32, MB_O_ABCD);
	struct mb_group g = { .name = "u", .unit_id = 1, .poll_ms = 100, .points = &p,
			      .n_points = 1 };
	struct mb_conn_cfg cfg = tcp_cfg(mb_server_port(f->srv), &g, 1);
	struct mb_conn *c;

	c = mb_conn_new(&cfg, mb_collect_cb, &f->col);
	assert_non_null(c);
	mb_conn_free(c);

	p.kind = MB_K_COIL; /* a coil is one bit, not a float */
	assert_null(mb_conn_new(&cfg, mb_collect_cb, &f->col));
	p = pt(0, MB_K_HR, 65534, MB_T_FLOAT64, MB_O_ABCD); /* runs past 65535 */
	assert_null(mb_conn_new(&cfg, mb_collect_cb, &f->col));
	p = pt(0, MB_K_HR, 0, MB_T_INT16, MB_O_ABCD);
	p.scale = 0.0;
	assert_null(mb_conn_new(&cfg, mb_collect_cb, &f->col));
	p.scale = 1.0;
	p.has_min = p.has_max = true;
	p.valid_min = 10;
	p.valid_max = 5;
	assert_null(mb_conn_new(&cfg, mb_collect_cb, &f->col));
	p.has_min = p.has_max = false;
	g.unit_id = 300;
	assert_null(mb_conn_new(&cfg, mb_collect_cb, &f->col));
	g.unit_id = 1;
	cfg.max_regs = 126;
	assert_null(mb_conn_new(&cfg, mb_collect_cb, &f->col));
	cfg.max_regs = 0;
	cfg.n_groups = 0;
	assert_null(mb_conn_new(&cfg, mb_collect_cb, &f->col));
	cfg.n_groups = 1;
	cfg.transport = MB_RTU;
	cfg.device = "/dev/null";
	cfg.baud = 9600;
	cfg.parity = 'X';
	cfg.data_bits = 8;
	cfg.stop_bits = 1;
	assert_null(mb_conn_new(&cfg, mb_collect_cb, &f->col));
	cfg.parity = 'E';
	g.unit_id = 0; /* 0 is broadcast on a serial line: no answers */
	assert_null(mb_conn_new(&cfg, mb_collect_cb, &f->col));
}

/* Points are merged into as few requests as the gap and size limits allow;
 * the server counts what actually went over the wire. */
static void test_merge(void **state)
{
	struct fx *f = *state;
	struct mb_point p[] = {
		pt(0, MB_K_HR, 20, MB_T_UINT16, MB_O_ABCD),
		pt(1, MB_K_HR, 0, MB_T_FLOAT32, MB_O_ABCD),
		pt(2, MB_K_HR, 2, MB_T_INT16, MB_O_ABCD),
		pt(3, MB_K_HR, 6, MB_T_INT16, MB_O_ABCD),
		pt(4, MB_K_HR, 200, MB_T_FLOAT64, MB_O_ABCD),
		pt(5, MB_K_IR, 0, MB_T_INT16, MB_O_ABCD),
		pt(6, MB_K_COIL, 0, MB_T_BOOL, MB_O_ABCD),
		pt(7, MB_K_COIL, 100, MB_T_BOOL, MB_O_ABCD),
		pt(8, MB_K_DI, 5, MB_T_BOOL, MB_O_ABCD),
		pt(9, MB_K_HR, 1, MB_T_UINT16, MB_O_ABCD), /* overlaps the float */
	};
	struct mb_group g = { .name = "u", .unit_id = 1, .poll_ms = 100000, .points = p,
			      .n_points = 10 };
	struct mb_conn_cfg cfg = tcp_cfg(mb_server_port(f->srv), &g, 1);
	struct mb_conn *c;

	mb_server_add_unit(f->srv, 1);
	/* Default gap 8: hr 0..6 and hr 20 together (gap 13 > 8: no), so
	 * hr{0..6}, hr{20}, hr{200..203}, ir{0}, coil{0..100}, di{5}. */
	c = mb_conn_new(&cfg, mb_collect_cb, &f->col);
	assert_non_null(c);
	assert_int_equal(mb_conn_requests_per_poll(c, 0), 6);
	mb_conn_free(c);

	cfg.max_gap = 16; /* now hr 0..20 is one request */
	c = mb_conn_new(&cfg, mb_collect_cb, &f->col);
	assert_int_equal(mb_conn_requests_per_poll(c, 0), 5);
	mb_conn_free(c);

	cfg.max_gap = -1; /* only touching registers: hr{0..2}, hr{6}, hr{20} ... */
	c = mb_conn_new(&cfg, mb_collect_cb, &f->col);
	assert_int_equal(mb_conn_requests_per_poll(c, 0), 8);
	mb_conn_free(c);

	cfg.max_gap = 0;
	cfg.max_regs = 2; /* a device that reads at most 2 registers at a time */
	cfg.max_bits = 8;
	c = mb_conn_new(&cfg, mb_collect_cb, &f->col);
	/* hr{0,1} hr{2} hr{6} hr{20} hr{200..203}? no: float64 needs 4 > 2 */
	assert_null(c);
	p[4].type = MB_T_FLOAT32;
	f->conn = mb_conn_new(&cfg, mb_collect_cb, &f->col);
	assert_non_null(f->conn);
	/* hr{0,1} hr{2} hr{6} hr{20} hr{200,201} ir{0} coil{0} coil{100} di{5} */
	int per_poll = mb_conn_requests_per_poll(f->conn, 0);
	assert_int_equal(per_poll, 9);

	/* One poll (the interval is long) must send exactly that many. */
	uint64_t before = mb_server_requests(f->srv);
	assert_int_equal(mb_conn_start(f->conn), 0);
	assert_true(mb_collect_wait(&f->col, 8, PDM_Q_GOOD, 1, 5000));
	mb_conn_stop(f->conn);
	assert_int_equal(mb_server_requests(f->srv) - before, (uint64_t)per_poll);
	struct mb_stats st;
	assert_int_equal(mb_conn_stats(f->conn, 0, &st), 0);
	assert_int_equal(st.requests, (uint64_t)per_poll);
	assert_int_equal(st.errors, 0);
	for (uint32_t i = 0; i < 10; i++)
		assert_int_equal(mb_collect_count(&f->col, i, PDM_Q_GOOD), 1);
}

/* Every type in every order, with scale/offset and quality rules. */
#define ADD(...) \
	do { \
		p[n] = pt((uint32_t)n, __VA_ARGS__); \
		n++; \
	} while (0)

static void test_decode_all(void **state)
{
	struct fx *f = *state;
	static const enum mb_type types[] = { MB_T_INT32, MB_T_UINT32, MB_T_FLOAT32,
					      MB_T_INT64, MB_T_UINT64, MB_T_FLOAT64 };
	static const double vals[] = { -123456789.0, 4000000000.0, -1234.5,
				       -1234567890123.0, 12345678901234567.0, 3.141592653589793 };
	struct mb_point p[40];
	size_t n = 0;
	uint16_t addr = 0;

	for (size_t t = 0; t < 6; t++) {
		for (int o = 0; o < 4; o++) {
			p[n] = pt((uint32_t)n, MB_K_HR, addr, types[t], (enum mb_order)o);
			mb_server_set_value(f->srv, 1, MB_K_HR, addr, vals[t], types[t],
					    (enum mb_order)o);
			addr = (uint16_t)(addr + mb_type_words(types[t]));
			n++;
		}
	}
	size_t base = n; /* 24 */
	/* scaled int16 in an input register: -1234 * 0.1 + 5 */
	p[n] = pt((uint32_t)n, MB_K_IR, 7, MB_T_INT16, MB_O_ABCD);
	p[n].scale = 0.1;
	p[n].offset = 5;
	mb_server_set_value(f->srv, 1, MB_K_IR, 7, -1234, MB_T_INT16, MB_O_ABCD);
	n++;
	ADD(MB_K_IR, 8, MB_T_UINT16, MB_O_ABCD);
	mb_server_set_value(f->srv, 1, MB_K_IR, 8, 65000, MB_T_UINT16, MB_O_ABCD);
	/* NaN float: bad quality */
	ADD(MB_K_HR, 300, MB_T_FLOAT32, MB_O_CDAB);
	mb_server_set_value(f->srv, 1, MB_K_HR, 300, NAN, MB_T_FLOAT32, MB_O_CDAB);
	/* +Inf double: bad */
	ADD(MB_K_HR, 302, MB_T_FLOAT64, MB_O_DCBA);
	mb_server_set_value(f->srv, 1, MB_K_HR, 302, INFINITY, MB_T_FLOAT64, MB_O_DCBA);
	/* 150 outside valid_max 100: bad; 50 inside: good */
	p[n] = pt((uint32_t)n, MB_K_HR, 310, MB_T_INT16, MB_O_ABCD);
	p[n].has_max = true;
	p[n].valid_max = 100;
	mb_server_set_value(f->srv, 1, MB_K_HR, 310, 150, MB_T_INT16, MB_O_ABCD);
	n++;
	p[n] = pt((uint32_t)n, MB_K_HR, 311, MB_T_INT16, MB_O_ABCD);
	p[n].has_min = p[n].has_max = true;
	p[n].valid_min = -100;
	p[n].valid_max = 100;
	mb_server_set_value(f->srv, 1, MB_K_HR, 311, 50, MB_T_INT16, MB_O_ABCD);
	n++;
	/* a register read as bool, coils, discrete inputs */
	ADD(MB_K_HR, 312, MB_T_BOOL, MB_O_ABCD);
	mb_server_set_value(f->srv, 1, MB_K_HR, 312, 7, MB_T_UINT16, MB_O_ABCD);
	uint8_t coils[3] = { 1, 0, 1 }, dis[2] = { 0, 1 };
	mb_server_set_bits(f->srv, 1, MB_K_COIL, 10, coils, 3);
	mb_server_set_bits(f->srv, 1, MB_K_DI, 20, dis, 2);
	ADD(MB_K_COIL, 10, MB_T_BOOL, MB_O_ABCD);
	ADD(MB_K_COIL, 11, MB_T_BOOL, MB_O_ABCD);
	ADD(MB_K_COIL, 12, MB_T_BOOL, MB_O_ABCD);
	ADD(MB_K_DI, 20, MB_T_BOOL, MB_O_ABCD);
	ADD(MB_K_DI, 21, MB_T_BOOL, MB_O_ABCD);

	struct mb_group g = { .name = "u", .unit_id = 1, .poll_ms = 50, .points = p,
			      .n_points = n };
	struct mb_conn_cfg cfg = tcp_cfg(mb_server_port(f->srv), &g, 1);
	f->conn = mb_conn_new(&cfg, mb_collect_cb, &f->col);
	assert_non_null(f->conn);
	assert_int_equal(mb_conn_start(f->conn), 0);
	assert_true(mb_collect_wait(&f->col, (uint32_t)(n - 1), PDM_Q_GOOD, 1, 5000));

	for (size_t i = 0; i < 24; i++) {
		struct pdm_sample s = mb_collect_last(&f->col, (uint32_t)i);
		double want = vals[i / 4];
		if (types[i / 4] == MB_T_FLOAT32)
			want = (double)(float)want;
		assert_int_equal(s.quality, PDM_Q_GOOD);
		assert_true(s.value == want);
		assert_true(s.ts_ms > 0);
	}
	struct pdm_sample s = mb_collect_last(&f->col, (uint32_t)base);
	assert_int_equal(s.quality, PDM_Q_GOOD);
	assert_true(fabs(s.value - (-1234 * 0.1 + 5)) < 1e-9);
	assert_true(mb_collect_last(&f->col, (uint32_t)base + 1).value == 65000.0);
	assert_int_equal(mb_collect_last(&f->col, (uint32_t)base + 2).quality, PDM_Q_BAD);
	assert_int_equal(mb_collect_last(&f->col, (uint32_t)base + 3).quality, PDM_Q_BAD);
	s = mb_collect_last(&f->col, (uint32_t)base + 4);
	assert_int_equal(s.quality, PDM_Q_BAD);
	assert_true(s.value == 150.0);
	assert_int_equal(mb_collect_last(&f->col, (uint32_t)base + 5).quality, PDM_Q_GOOD);
	assert_true(mb_collect_last(&f->col, (uint32_t)base + 6).value == 1.0);
	assert_true(mb_collect_last(&f->col, (uint32_t)base + 7).value == 1.0);
	assert_true(mb_collect_last(&f->col, (uint32_t)base + 8).value == 0.0);
	assert_true(mb_collect_last(&f->col, (uint32_t)base + 9).value == 1.0);
	assert_true(mb_collect_last(&f->col, (uint32_t)base + 10).value == 0.0);
	assert_true(mb_collect_last(&f->col, (uint32_t)base + 11).value == 1.0);

	/* A value changed at the server shows up in a later poll. */
	mb_server_set_value(f->srv, 1, MB_K_HR, 311, -42, MB_T_INT16, MB_O_ABCD);
	uint64_t seen = mb_collect_count(&f->col, (uint32_t)base + 5, PDM_Q_GOOD);
	assert_true(mb_collect_wait(&f->col, (uint32_t)base + 5, PDM_Q_GOOD, seen + 2, 5000));
	assert_true(mb_collect_last(&f->col, (uint32_t)base + 5).value == -42.0);
	assert_false(f->col.bad_id);
}

/* Bits of a status word: each point reads 0 or 1 (then scale and offset),
 * from 16-bit registers and from a word-swapped 32-bit value alike. */
static void test_bits(void **state)
{
	struct fx *f = *state;
	struct mb_point p[6];
	static const uint8_t bit[6] = { 3, 4, 5, 15, 20, 0 };
	for (int i = 0; i < 6; i++) {
		p[i] = pt((uint32_t)i, i < 3 ? MB_K_HR : MB_K_IR, 0, MB_T_UINT16, MB_O_ABCD);
		p[i].has_bit = true;
		p[i].bit = bit[i];
	}
	p[2].scale = 100; /* bit 5 of 0x0028: 1, scaled */
	p[3].type = MB_T_INT16; /* the sign bit of -2 */
	p[3].address = 5;
	p[4].type = MB_T_UINT32; /* bit 20 of 0x00100001 sent cdab */
	p[4].order = MB_O_CDAB;
	p[4].address = 6;
	p[5].type = MB_T_UINT32;
	p[5].order = MB_O_CDAB;
	p[5].address = 6;
	mb_server_set_value(f->srv, 1, MB_K_HR, 0, 0x0028, MB_T_UINT16, MB_O_ABCD);
	mb_server_set_value(f->srv, 1, MB_K_IR, 5, -2, MB_T_INT16, MB_O_ABCD);
	mb_server_set_value(f->srv, 1, MB_K_IR, 6, (double)0x00100001u, MB_T_UINT32, MB_O_CDAB);

	struct mb_group g = { .name = "u", .unit_id = 1, .poll_ms = 50, .points = p,
			      .n_points = 6 };
	struct mb_conn_cfg cfg = tcp_cfg(mb_server_port(f->srv), &g, 1);
	f->conn = mb_conn_new(&cfg, mb_collect_cb, &f->col);
	assert_non_null(f->conn);
	assert_int_equal(mb_conn_start(f->conn), 0);
	for (uint32_t i = 0; i < 6; i++)
		assert_true(mb_collect_wait(&f->col, i, PDM_Q_GOOD, 1, 5000));
	static const double want[6] = { 1, 0, 100, 1, 1, 1 };
	for (uint32_t i = 0; i < 6; i++) {
		struct pdm_sample s = mb_collect_last(&f->col, i);
		if (s.value != want[i])
			fail_msg("bit %u: %g, want %g", bit[i], s.value, want[i]);
	}
	/* the word changes at the server: the bit follows */
	mb_server_set_value(f->srv, 1, MB_K_HR, 0, 0x0010, MB_T_UINT16, MB_O_ABCD);
	uint64_t seen = mb_collect_count(&f->col, 1, PDM_Q_GOOD);
	assert_true(mb_collect_wait(&f->col, 1, PDM_Q_GOOD, seen + 2, 5000));
	assert_true(mb_collect_last(&f->col, 0).value == 0.0);
	assert_true(mb_collect_last(&f->col, 1).value == 1.0);
	mb_conn_free(f->conn);
	f->conn = NULL;

	/* Not of a float, a bool, a coil, nor past the value's width. */
	struct mb_point q = pt(0, MB_K_HR, 0, MB_T_FLOAT32, MB_O_ABCD);
	q.has_bit = true;
	g.points = &q;
	g.n_points = 1;
	assert_null(mb_conn_new(&cfg, mb_collect_cb, &f->col));
	q.type = MB_T_BOOL;
	assert_null(mb_conn_new(&cfg, mb_collect_cb, &f->col));
	q.kind = MB_K_COIL;
	assert_null(mb_conn_new(&cfg, mb_collect_cb, &f->col));
	q = pt(0, MB_K_HR, 0, MB_T_UINT16, MB_O_ABCD);
	q.has_bit = true;
	q.bit = 16;
	assert_null(mb_conn_new(&cfg, mb_collect_cb, &f->col));
	q.type = MB_T_INT32;
	struct mb_conn *c = mb_conn_new(&cfg, mb_collect_cb, &f->col);
	assert_non_null(c);
	mb_conn_free(c);
}

/* A server answering "illegal data address" for one sensor: only that
 * sensor is stale, the others stay good, the connection stays up, and the
 * exception is counted by code. */
static void test_exception_isolated(void **state)
{
	struct fx *f = *state;
	struct mb_point p[] = {
		pt(0, MB_K_HR, 0, MB_T_UINT16, MB_O_ABCD),
		pt(1, MB_K_HR, 50, MB_T_UINT16, MB_O_ABCD),
		pt(2, MB_K_HR, 100, MB_T_UINT16, MB_O_ABCD),
		pt(3, MB_K_COIL, 0, MB_T_BOOL, MB_O_ABCD),
	};
	struct mb_group g = { .name = "u", .unit_id = 1, .poll_ms = 20, .points = p,
			      .n_points = 4 };
	struct mb_conn_cfg cfg = tcp_cfg(mb_server_port(f->srv), &g, 1);

	mb_server_set_value(f->srv, 1, MB_K_HR, 0, 11, MB_T_UINT16, MB_O_ABCD);
	mb_server_set_value(f->srv, 1, MB_K_HR, 100, 33, MB_T_UINT16, MB_O_ABCD);
	assert_int_equal(mb_server_set_exception(f->srv, 1, MB_K_HR, 50, 2), 0);
	mb_logcap_start();
	f->conn = mb_conn_new(&cfg, mb_collect_cb, &f->col);
	assert_non_null(f->conn);
	assert_int_equal(mb_conn_start(f->conn), 0);
	assert_true(mb_collect_wait(&f->col, 1, PDM_Q_STALE, 3, 5000));
	assert_true(mb_collect_wait(&f->col, 2, PDM_Q_GOOD, 3, 5000));

	struct mb_stats st;
	assert_int_equal(mb_conn_stats(f->conn, 0, &st), 0);
	assert_true(st.connected);
	assert_true(st.exceptions >= 3);
	assert_int_equal(st.exc_by_code[2], st.exceptions);
	assert_int_equal(st.reconnects, 0);
	assert_int_equal(st.timeouts, 0);
	assert_int_equal(mb_collect_count(&f->col, 1, PDM_Q_GOOD), 0);
	assert_int_equal(mb_collect_count(&f->col, 0, PDM_Q_STALE), 0);
	assert_int_equal(mb_collect_count(&f->col, 2, PDM_Q_STALE), 0);
	assert_int_equal(mb_collect_count(&f->col, 3, PDM_Q_STALE), 0);
	assert_true(isnan(mb_collect_last(&f->col, 1).value));
	assert_true(mb_collect_last(&f->col, 0).value == 11.0);
	/* Logged by name, and only a few times however often it happens. */
	assert_true(mb_logcap_has("modbus[u]: unit 1 read hr 50..50: exception 2 "
				  "(illegal data address)"));
	mb_logcap_stop();

	/* The device is fixed: the sensor comes back without a reconnect. */
	assert_int_equal(mb_server_set_exception(f->srv, 1, MB_K_HR, 50, 0), 0);
	assert_true(mb_collect_wait(&f->col, 1, PDM_Q_GOOD, 2, 5000));
	assert_int_equal(mb_conn_stats(f->conn, 0, &st), 0);
	assert_int_equal(st.reconnects, 0);
	assert_true(st.last_success_ms > 0);
	assert_true(st.latency_max_ms >= st.latency_avg_ms);
	assert_true(st.latency_avg_ms > 0);
}

/* A device that refuses reads touching an unmapped register between two
 * sensors: the merged read is split, the sensors around the hole are good,
 * and a sensor on a bad address itself stays stale. */
static void test_split_on_hole(void **state)
{
	struct fx *f = *state;
	struct mb_point p[] = {
		pt(0, MB_K_HR, 0, MB_T_UINT16, MB_O_ABCD),
		pt(1, MB_K_HR, 2, MB_T_UINT16, MB_O_ABCD),
		pt(2, MB_K_HR, 4, MB_T_INT32, MB_O_CDAB),
		pt(3, MB_K_HR, 8, MB_T_UINT16, MB_O_ABCD),
	};
	struct mb_group g = { .name = "u", .unit_id = 1, .poll_ms = 20, .points = p,
			      .n_points = 4 };
	struct mb_conn_cfg cfg = tcp_cfg(mb_server_port(f->srv), &g, 1);

	mb_server_set_value(f->srv, 1, MB_K_HR, 0, 10, MB_T_UINT16, MB_O_ABCD);
	mb_server_set_value(f->srv, 1, MB_K_HR, 2, 12, MB_T_UINT16, MB_O_ABCD);
	mb_server_set_value(f->srv, 1, MB_K_HR, 4, -70000, MB_T_INT32, MB_O_CDAB);
	mb_server_set_value(f->srv, 1, MB_K_HR, 8, 18, MB_T_UINT16, MB_O_ABCD);
	mb_server_set_exception(f->srv, 1, MB_K_HR, 3, 2); /* the hole */
	mb_server_set_exception(f->srv, 1, MB_K_HR, 8, 2); /* a wrong address */
	f->conn = mb_conn_new(&cfg, mb_collect_cb, &f->col);
	assert_non_null(f->conn);
	assert_int_equal(mb_conn_requests_per_poll(f->conn, 0), 1);
	assert_int_equal(mb_conn_start(f->conn), 0);
	assert_true(mb_collect_wait(&f->col, 3, PDM_Q_STALE, 3, 5000));
	assert_true(mb_collect_wait(&f->col, 2, PDM_Q_GOOD, 3, 5000));
	mb_conn_stop(f->conn);

	assert_int_equal(mb_collect_count(&f->col, 0, PDM_Q_STALE), 0);
	assert_int_equal(mb_collect_count(&f->col, 1, PDM_Q_STALE), 0);
	assert_int_equal(mb_collect_count(&f->col, 2, PDM_Q_STALE), 0);
	assert_int_equal(mb_collect_count(&f->col, 3, PDM_Q_GOOD), 0);
	assert_true(mb_collect_last(&f->col, 0).value == 10.0);
	assert_true(mb_collect_last(&f->col, 1).value == 12.0);
	assert_true(mb_collect_last(&f->col, 2).value == -70000.0);
	struct mb_stats st;
	assert_int_equal(mb_conn_stats(f->conn, 0, &st), 0);
	assert_true(st.connected == false); /* stopped */
	assert_int_equal(st.exc_by_code[2], st.exceptions);
	/* the refused merged read once, then one per poll for the bad address */
	uint64_t polls = mb_collect_count(&f->col, 3, PDM_Q_STALE);
	assert_int_equal(st.exceptions, polls + 1);
	assert_int_equal(st.requests, 1 + polls * 4);
}

/* An unknown unit behind a TCP gateway answers exception 11. */
static void test_gateway_unit(void **state)
{
	struct fx *f = *state;
	struct mb_point p1 = pt(0, MB_K_HR, 0, MB_T_UINT16, MB_O_ABCD);
	struct mb_point p2 = pt(1, MB_K_HR, 0, MB_T_UINT16, MB_O_ABCD);
	struct mb_group g[] = {
		{ .name = "good", .unit_id = 1, .poll_ms = 20, .points = &p1, .n_points = 1 },
		{ .name = "gone", .unit_id = 9, .poll_ms = 20, .points = &p2, .n_points = 1 },
	};
	struct mb_conn_cfg cfg = tcp_cfg(mb_server_port(f->srv), g, 2);

	mb_server_add_unit(f->srv, 1);
	f->conn = mb_conn_new(&cfg, mb_collect_cb, &f->col);
	assert_int_equal(mb_conn_start(f->conn), 0);
	assert_true(mb_collect_wait(&f->col, 1, PDM_Q_STALE, 3, 5000));
	assert_true(mb_collect_wait(&f->col, 0, PDM_Q_GOOD, 3, 5000));
	struct mb_stats st;
	assert_int_equal(mb_conn_stats(f->conn, 1, &st), 0);
	assert_true(st.exc_by_code[11] >= 3);
	assert_int_equal(mb_conn_stats(f->conn, 0, &st), 0);
	assert_int_equal(st.exceptions, 0);
	assert_int_equal(mb_conn_stats(f->conn, 2, &st), -EINVAL);
}

static void test_probe(void **state)
{
	struct fx *f = *state;
	struct mb_point p[] = {
		pt(0, MB_K_HR, 0, MB_T_FLOAT32, MB_O_ABCD),
		pt(1, MB_K_HR, 4, MB_T_FLOAT64, MB_O_CDAB),
		pt(2, MB_K_IR, 3, MB_T_INT16, MB_O_ABCD),
		pt(3, MB_K_HR, 50, MB_T_UINT16, MB_O_ABCD),
		pt(4, MB_K_COIL, 1, MB_T_BOOL, MB_O_ABCD),
		pt(5, MB_K_HR, 10, MB_T_UINT64, MB_O_ABCD),
	};
	p[0].name = "pump.vibration";
	p[3].name = "pump.missing";
	struct mb_group g = { .name = "plc1", .unit_id = 1, .poll_ms = 100, .points = p,
			      .n_points = 6 };
	struct mb_conn_cfg cfg = tcp_cfg(mb_server_port(f->srv), &g, 1);
	char *buf = NULL;
	size_t len = 0;

	mb_server_set_value(f->srv, 1, MB_K_HR, 0, 123.456, MB_T_FLOAT32, MB_O_ABCD);
	mb_server_set_value(f->srv, 1, MB_K_HR, 4, 2.5, MB_T_FLOAT64, MB_O_CDAB);
	/* uint64 0x0102030405060708 at hr 10: printed exactly, not rounded */
	uint16_t big[4] = { 0x0102, 0x0304, 0x0506, 0x0708 };
	mb_server_set_regs(f->srv, 1, MB_K_HR, 10, big, 4);
	mb_server_set_value(f->srv, 1, MB_K_IR, 3, -2, MB_T_INT16, MB_O_ABCD);
	uint8_t one = 1;
	mb_server_set_bits(f->srv, 1, MB_K_COIL, 1, &one, 1);
	mb_server_set_exception(f->srv, 1, MB_K_HR, 50, 2);

	FILE *out = open_memstream(&buf, &len);
	assert_non_null(out);
	assert_int_equal(mb_probe(&cfg, out), -PDM_EMODBUS_EXC);
	fclose(out);
	/* Show the table in the test log, as TAP comments. */
	char *copy = strdup(buf);
	for (char *line = strtok(copy, "\n"); line; line = strtok(NULL, "\n"))
		printf("# %s\n", line);
	free(copy);
	/* raw words, the value, and the word-order table */
	assert_non_null(strstr(buf, "pump.vibration"));
	assert_non_null(strstr(buf, "42f6 e979"));
	assert_non_null(strstr(buf, "123.456001"));
	assert_non_null(strstr(buf, "cdab"));
	assert_non_null(strstr(buf, "float64"));
	assert_non_null(strstr(buf, " 2.5"));
	assert_non_null(strstr(buf, "fffe"));
	assert_non_null(strstr(buf, "65534"));
	assert_non_null(strstr(buf, "exception 2 (illegal data address)"));
	assert_non_null(strstr(buf, "0102 0304 0506 0708"));
	assert_non_null(strstr(buf, "72623859790382856")); /* exact 0x0102030405060708 */
	free(buf);

	/* A peer that is not there: an error, not a hang. */
	cfg.port = mb_server_port(f->srv);
	mb_server_stop(f->srv);
	f->srv = NULL;
	buf = NULL;
	out = open_memstream(&buf, &len);
	assert_true(mb_probe(&cfg, out) < 0);
	fclose(out);
	assert_non_null(strstr(buf, "cannot connect"));
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test_setup_teardown(test_invalid_configs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_merge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_decode_all, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exception_isolated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_split_on_hole, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gateway_unit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_probe, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
