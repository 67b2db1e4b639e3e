/*
 * test_plantsim.c - the plant simulator as its users see it: a child
 * process whose registers are read with libmodbus as a client, whose MQTT
 * telemetry arrives at a real mosquitto, and whose --print lines are the
 * ground truth both must match.
 *
 * The register map below is written out again on purpose (from
 * docs/simulator.md) rather than taken from plantsim's own table, so a
 * change to the map that the documentation does not follow fails here.
 */
#include <MQTTAsync.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <modbus.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <dirent.h>
#include <ini.h>

#include "mb_decode.h"
#include "pdm_time.h"
#include "test_broker.h"
#include "test_util.h"

#define START_TS 1700000000000LL

/* ---- the documented register map ---- */

static const struct {
	const char *sensor;
	int offset;
	enum mb_type type;
	enum mb_order order;
	double scale;
} regmap[] = {
	{ "vibration_rms", 0, MB_T_FLOAT32, MB_O_ABCD, 1.0 },
	{ "flow", 2, MB_T_FLOAT32, MB_O_ABCD, 1.0 },
	{ "pressure", 4, MB_T_FLOAT32, MB_O_CDAB, 1.0 },
	{ "current", 6, MB_T_FLOAT32, MB_O_CDAB, 1.0 },
	{ "speed", 8, MB_T_UINT16, MB_O_ABCD, 1.0 },
	{ "bearing_temp", 9, MB_T_INT16, MB_O_ABCD, 0.1 },
	{ "motor_temp", 10, MB_T_INT16, MB_O_ABCD, 0.1 },
};
#define NREG (sizeof(regmap) / sizeof(regmap[0]))
#define BLOCK 14
#define STATUS_OFF 11
#define HEARTBEAT_OFF 12

/* ---- plantsim as a child process ---- */

struct child {
	pid_t pid;
	int in_fd;     /* its stdin */
	int out_fd;    /* its stdout */
	char *buf;
	size_t len, cap, scanned;
	cJSON **lines; /* parsed --print lines, in order */
	size_t nlines, linecap;
	int modbus_port;
	bool raw;      /* keep the text only, parse nothing */
};

/* Children and brokers still running when a test fails (cmocka leaves the
 * test by longjmp, its stack gone) are stopped by the teardown from these
 * copies, so nothing outlives the test program. */
#define MAX_LIVE 8
static pid_t live_pids[MAX_LIVE];
static struct test_broker live_brokers[MAX_LIVE];

static void track_pid(pid_t pid, bool add)
{
	for (int i = 0; i < MAX_LIVE; i++) {
		if (live_pids[i] == (add ? 0 : pid)) {
			live_pids[i] = add ? pid : 0;
			return;
		}
	}
}

/* Remembers the broker's current state (add) or forgets it, by directory. */
static void track_broker(const struct test_broker *b, const char *dir, bool add)
{
	for (int i = 0; i < MAX_LIVE; i++) {
		if (strcmp(live_brokers[i].dir, add ? "" : dir) == 0 ||
		    (add && strcmp(live_brokers[i].dir, dir) == 0)) {
			if (add)
				live_brokers[i] = *b;
			else
				memset(&live_brokers[i], 0, sizeof(live_brokers[i]));
			return;
		}
	}
}

static int teardown_live(void **state)
{
	(void)state;
	for (int i = 0; i < MAX_LIVE; i++) {
		if (live_pids[i] > 0) {
			kill(live_pids[i], SIGKILL);
			waitpid(live_pids[i], NULL, 0);
			live_pids[i] = 0;
		}
		if (live_brokers[i].dir[0]) {
			test_broker_stop(&live_brokers[i]);
			memset(&live_brokers[i], 0, sizeof(live_brokers[i]));
		}
	}
	return 0;
}

static int broker_start(struct test_broker *b)
{
	int rc = test_broker_start(b);
	if (b->dir[0])
		track_broker(b, b->dir, true);
	return rc;
}

static int broker_restart(struct test_broker *b)
{
	int rc = test_broker_restart(b);
	track_broker(b, b->dir, true);
	return rc;
}

static void broker_kill(struct test_broker *b)
{
	test_broker_kill(b);
	track_broker(b, b->dir, true);
}

static void broker_stop(struct test_broker *b)
{
	track_broker(b, b->dir, false);
	test_broker_stop(b);
}

static const char *plantsim_path(void)
{
	const char *p = getenv("PLANTSIM");
	return p ? p : "./tools/plantsim";
}

static int child_start(struct child *c, const char *const *args)
{
	const char *argv[40];
	int in[2], out[2], n = 0;

	memset(c, 0, sizeof(*c));
	argv[n++] = plantsim_path();
	for (; args[n - 1] && n < 39; n++)
		argv[n] = args[n - 1];
	argv[n] = NULL;
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0)
		return -errno;
	c->pid = fork();
	if (c->pid < 0)
		return -errno;
	if (c->pid == 0) {
		dup2(in[0], STDIN_FILENO);
		dup2(out[1], STDOUT_FILENO);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	c->in_fd = in[1];
	c->out_fd = out[0];
	fcntl(c->out_fd, F_SETFL, O_NONBLOCK);
	track_pid(c->pid, true);
	return 0;
}

/* Reads what is available (waiting up to timeout_ms for something) and
 * parses complete lines. Returns 0, or -EPIPE at end of output. */
static int child_pump(struct child *c, int timeout_ms)
{
	struct pollfd pfd = { .fd = c->out_fd, .events = POLLIN };
	int eof = 0;

	if (c->out_fd < 0)
		return -EPIPE;
	if (poll(&pfd, 1, timeout_ms) <= 0)
		return 0;
	for (;;) {
		if (c->cap - c->len < 65536) {
			c->cap = c->cap ? c->cap * 2 : 1 << 20;
			c->buf = realloc(c->buf, c->cap);
			assert_non_null(c->buf);
		}
		ssize_t n = read(c->out_fd, c->buf + c->len, c->cap - c->len - 1);
		if (n > 0) {
			c->len += (size_t)n;
			continue;
		}
		if (n == 0)
			eof = 1;
		break;
	}
	c->buf[c->len] = '\0';
	char *nl;
	while ((nl = memchr(c->buf + c->scanned, '\n', c->len - c->scanned)) != NULL) {
		*nl = '\0';
		const char *line = c->buf + c->scanned;
		if (c->raw) {
			/* run_capture compares the text as a whole. */
		} else if (strncmp(line, "modbus_port ", 12) == 0) {
			assert_int_equal(c->nlines, 0);
			c->modbus_port = atoi(line + 12);
		} else {
			cJSON *j = cJSON_Parse(line);
			if (!j)
				fail_msg("plantsim printed a line that is not JSON: %s", line);
			if (c->nlines == c->linecap) {
				c->linecap = c->linecap ? c->linecap * 2 : 1024;
				c->lines = realloc(c->lines, c->linecap * sizeof(*c->lines));
				assert_non_null(c->lines);
			}
			c->lines[c->nlines++] = j;
		}
		*nl = '\n';
		c->scanned = (size_t)(nl - c->buf) + 1;
	}
	if (eof) {
		close(c->out_fd);
		c->out_fd = -1;
		return -EPIPE;
	}
	return 0;
}

/* Reads until the child closes stdout; fails after timeout_ms. */
static void child_drain(struct child *c, int timeout_ms)
{
	int64_t end = pdm_mono_ms() + timeout_ms;
	while (child_pump(c, 50) == 0)
		if (pdm_mono_ms() > end)
			fail_msg("plantsim did not finish within %d ms", timeout_ms);
}

static void child_send(struct child *c, const char *text)
{
	assert_int_equal(write(c->in_fd, text, strlen(text)), (ssize_t)strlen(text));
}

/* Waits for the child to exit; returns its exit status or 128+signal. */
static int child_wait(struct child *c, int timeout_ms)
{
	int status;

	for (int t = 0; t < timeout_ms; t += 10) {
		child_pump(c, 0);
		pid_t r = waitpid(c->pid, &status, WNOHANG);
		if (r == c->pid) {
			track_pid(c->pid, false);
			c->pid = 0;
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		}
		test_sleep_ms(10);
	}
	kill(c->pid, SIGKILL);
	waitpid(c->pid, &status, 0);
	track_pid(c->pid, false);
	c->pid = 0;
	return -ETIMEDOUT;
}

static void child_free(struct child *c)
{
	if (c->pid > 0) {
		track_pid(c->pid, false);
		kill(c->pid, SIGKILL);
		waitpid(c->pid, NULL, 0);
	}
	if (c->in_fd > 0)
		close(c->in_fd);
	if (c->out_fd > 0)
		close(c->out_fd);
	for (size_t i = 0; i < c->nlines; i++)
		cJSON_Delete(c->lines[i]);
	free(c->lines);
	free(c->buf);
	memset(c, 0, sizeof(*c));
}

static int child_wait_port(struct child *c)
{
	for (int t = 0; t < 100 && c->modbus_port == 0; t++)
		if (child_pump(c, 50) < 0)
			break;
	return c->modbus_port;
}

static const char *line_asset(const cJSON *j)
{
	return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "asset"));
}

static double num(const cJSON *j, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
	if (cJSON_IsNull(v))
		return NAN; /* no reading: a broken transmitter */
	if (!cJSON_IsNumber(v))
		fail_msg("field '%s' missing or not a number", key);
	return v->valuedouble;
}

/* The printed line of `asset` for `tick`, waiting for it to appear. */
static const cJSON *wait_line(struct child *c, const char *asset, double tick, int timeout_ms)
{
	int64_t end = pdm_mono_ms() + timeout_ms;
	size_t from = 0;

	for (;;) {
		for (size_t i = c->nlines; i-- > from;) {
			const cJSON *j = c->lines[i];
			if (strcmp(line_asset(j), asset) == 0 && num(j, "tick") == tick)
				return j;
		}
		from = c->nlines;
		if (pdm_mono_ms() > end || child_pump(c, 20) < 0)
			return NULL;
	}
}

/* Values of one sensor of one asset, in tick order. */
static double *series(const struct child *c, const char *asset, const char *sensor, size_t *n)
{
	double *v = calloc(c->nlines + 1, sizeof(*v));
	*n = 0;
	for (size_t i = 0; i < c->nlines; i++)
		if (strcmp(line_asset(c->lines[i]), asset) == 0)
			v[(*n)++] = num(c->lines[i], sensor);
	return v;
}

static double mean(const double *v, size_t from, size_t to)
{
	double s = 0;
	for (size_t i = from; i < to; i++)
		s += v[i];
	return s / (double)(to - from);
}

/* Standard deviation of tick-to-tick changes: noise, without the regimes. */
static double diff_std(const double *v, size_t from, size_t to)
{
	double s = 0, s2 = 0;
	size_t n = 0;
	for (size_t i = from + 1; i < to; i++, n++) {
		double d = v[i] - v[i - 1];
		s += d;
		s2 += d * d;
	}
	return sqrt(s2 / (double)n - (s / (double)n) * (s / (double)n));
}

/* ---- Modbus: registers decode to the printed values ---- */

/* Decodes by hand rather than with connectors/mb_decode, so that a word
 * order mistake made symmetrically in encoder and decoder still fails. */
static double decode_reg(const uint16_t *r, enum mb_type type, enum mb_order order)
{
	uint32_t u;
	float f;

	switch (type) {
	case MB_T_INT16:
		return (double)(int16_t)r[0];
	case MB_T_UINT16:
		return (double)r[0];
	case MB_T_FLOAT32:
		assert_true(order == MB_O_ABCD || order == MB_O_CDAB);
		u = order == MB_O_ABCD ? ((uint32_t)r[0] << 16 | r[1]) : ((uint32_t)r[1] << 16 | r[0]);
		memcpy(&f, &u, sizeof(f));
		return (double)f;
	case MB_T_UINT32:
		return (double)((uint32_t)r[0] << 16 | r[1]);
	default:
		fail_msg("the map uses no type %d", (int)type);
	}
	return NAN;
}

static void decode_block(const uint16_t *regs, double *out)
{
	for (size_t k = 0; k < NREG; k++)
		out[k] = decode_reg(regs + regmap[k].offset, regmap[k].type, regmap[k].order) *
			 regmap[k].scale;
}

static void check_block(struct child *c, const char *asset, const uint16_t *regs)
{
	double v[NREG], tick;

	decode_block(regs, v);
	tick = decode_reg(regs + HEARTBEAT_OFF, MB_T_UINT32, MB_O_ABCD);
	const cJSON *line = wait_line(c, asset, tick, 5000);
	if (!line)
		fail_msg("%s: no printed line for tick %.0f seen in the registers", asset, tick);
	for (size_t k = 0; k < NREG; k++) {
		if (v[k] != num(line, regmap[k].sensor))
			fail_msg("%s tick %.0f: %s decodes to %.9g, printed %.9g", asset, tick,
				 regmap[k].sensor, v[k], num(line, regmap[k].sensor));
	}
	bool running = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(line, "running"));
	assert_int_equal(regs[STATUS_OFF] & 1, running ? 1 : 0);
}

static void test_registers_match_print(void **state)
{
	struct child c;
	const char *args[] = { "--modbus-port", "0", "--print", "--rate", "20", "--seed", "5",
			       "--log-level", "warning", NULL };
	modbus_t *mb[3] = { NULL };
	uint16_t regs[BLOCK];
	(void)state;

	assert_int_equal(child_start(&c, args), 0);
	int port = child_wait_port(&c);
	assert_true(port > 0);

	/* Several clients at once, interleaved: the server multiplexes them. */
	for (int i = 0; i < 3; i++) {
		mb[i] = modbus_new_tcp("127.0.0.1", port);
		assert_non_null(mb[i]);
		modbus_set_slave(mb[i], 1);
		assert_int_equal(modbus_connect(mb[i]), 0);
	}
	double last_tick = -1;
	for (int round = 0; round < 15; round++) {
		for (int i = 0; i < 3; i++) {
			int asset = (round + i) % 2;
			const char *name = asset ? "pump-b" : "pump-a";
			if (i == 2)
				assert_int_equal(modbus_read_input_registers(mb[i], 100 * asset, BLOCK,
									     regs), BLOCK);
			else
				assert_int_equal(modbus_read_registers(mb[i], 100 * asset, BLOCK, regs),
						 BLOCK);
			check_block(&c, name, regs);
			double tick = decode_reg(regs + HEARTBEAT_OFF, MB_T_UINT32, MB_O_ABCD);
			assert_true(tick >= 0);
			last_tick = tick;
		}
		test_sleep_ms(37);
	}
	/* The registers follow the simulation, not one frozen snapshot. */
	assert_true(last_tick >= 10);

	/* Read-only device; past the last block is an illegal address. */
	errno = 0;
	assert_int_equal(modbus_write_register(mb[0], 0, 1), -1);
	assert_int_equal(errno, EMBXILFUN);
	errno = 0;
	assert_int_equal(modbus_read_registers(mb[0], 100 + BLOCK - 1, 2, regs), -1);
	assert_int_equal(errno, EMBXILADD);
	/* The connection survives the exceptions. */
	assert_int_equal(modbus_read_registers(mb[0], 0, BLOCK, regs), BLOCK);
	check_block(&c, "pump-a", regs);

	/* SIGTERM with clients still connected: a clean exit. */
	kill(c.pid, SIGTERM);
	assert_int_equal(child_wait(&c, 5000), 0);
	for (int i = 0; i < 3; i++) {
		modbus_close(mb[i]);
		modbus_free(mb[i]);
	}
	child_free(&c);
}

/* ---- determinism ---- */

static char *run_capture(const char *const *args)
{
	struct child c;
	assert_int_equal(child_start(&c, args), 0);
	c.raw = true;
	close(c.in_fd);
	c.in_fd = -1;
	child_drain(&c, 20000);
	assert_int_equal(child_wait(&c, 5000), 0);
	/* Skip the port line: the port differs from run to run. */
	char *start = c.buf;
	if (strncmp(start, "modbus_port ", 12) == 0) {
		start = strchr(c.buf, '\n');
		assert_non_null(start);
		start++;
	}
	char *copy = strdup(start);
	child_free(&c);
	return copy;
}

static void test_same_seed_same_output(void **state)
{
	const char *rt[] = { "--modbus-port", "0", "--print", "--rate", "50", "--duration", "1",
			     "--seed", "42", "--start-ts", "1700000000000", "--log-level",
			     "warning", NULL };
	const char *fast[] = { "--modbus-port", "0", "--print", "--rate", "50", "--duration", "1",
			       "--seed", "42", "--start-ts", "1700000000000", "--fast",
			       "--log-level", "warning", NULL };
	const char *other[] = { "--modbus-port", "0", "--print", "--rate", "50", "--duration",
				"1", "--seed", "43", "--start-ts", "1700000000000", "--fast",
				"--log-level", "warning", NULL };
	(void)state;

	char *a = run_capture(rt), *b = run_capture(rt), *f = run_capture(fast);
	char *o = run_capture(other);

	assert_string_equal(a, b);
	/* Pacing does not change the values: --fast reproduces a real-time run. */
	assert_string_equal(a, f);
	assert_string_not_equal(a, o);

	/* 50 ticks x 3 assets, timestamps from --start-ts every 20 ms. */
	size_t n = 0;
	for (char *p = a; (p = strchr(p, '\n')); p++)
		n++;
	assert_int_equal(n, 150);
	cJSON *first = cJSON_ParseWithOpts(a, NULL, 0);
	assert_non_null(first);
	assert_true(num(first, "ts") == (double)START_TS);
	cJSON_Delete(first);
	char *last = a + strlen(a) - 1;
	while (last > a && last[-1] != '\n')
		last--;
	cJSON *lj = cJSON_Parse(last);
	assert_non_null(lj);
	assert_true(num(lj, "ts") == (double)(START_TS + 49 * 20));
	assert_true(num(lj, "tick") == 49);
	cJSON_Delete(lj);

	/* --csv carries the same values as --print, one asset, in pdmd replay's form. */
	const char *csv[] = { "--csv", "pump-b", "--rate", "50", "--duration", "1", "--seed", "42",
			      "--start-ts", "1700000000000", "--fast", "--log-level", "warning",
			      NULL };
	char *text = run_capture(csv);
	char *save = NULL, *row = strtok_r(text, "\n", &save);
	assert_string_equal(row, "ts_ms,speed,flow,pressure,current,vibration_rms,bearing_temp,"
				 "motor_temp");
	const char *cols[] = { "speed", "flow", "pressure", "current", "vibration_rms",
			       "bearing_temp", "motor_temp" };
	int rows = 0;
	for (char *p = a; (row = strtok_r(NULL, "\n", &save)) != NULL; rows++) {
		cJSON *j = NULL;
		/* The next printed pump-b line. */
		while (!j) {
			char *nl = strchr(p, '\n');
			assert_non_null(nl);
			*nl = '\0';
			j = cJSON_Parse(p);
			assert_non_null(j);
			p = nl + 1;
			if (strcmp(line_asset(j), "pump-b") != 0) {
				cJSON_Delete(j);
				j = NULL;
			}
		}
		char *end;
		assert_true(strtod(row, &end) == num(j, "ts"));
		for (size_t k = 0; k < 7; k++) {
			assert_int_equal(*end, ',');
			double v = strtod(end + 1, &end);
			assert_true(v == num(j, cols[k]));
		}
		assert_int_equal(*end, '\0');
		cJSON_Delete(j);
	}
	assert_int_equal(rows, 50);
	free(text);
	free(a);
	free(b);
	free(f);
	free(o);
}

/* ---- faults change statistics the right way ---- */

static void run_fast(struct child *c, const char *scenario_path)
{
	const char *base[] = { "--modbus-port", "0", "--print", "--rate", "10", "--duration",
			       "240", "--seed", "9", "--fast", "--no-stops", "--log-level", "warning",
			       NULL, NULL, NULL };
	if (scenario_path) {
		base[13] = "--scenario";
		base[14] = scenario_path;
	}
	assert_int_equal(child_start(c, base), 0);
	close(c->in_fd);
	c->in_fd = -1;
	child_drain(c, 30000);
	assert_int_equal(child_wait(c, 5000), 0);
	assert_int_equal(c->nlines, 3 * 2400);
}

static void test_fault_statistics(void **state)
{
	char dir[256], path[300];
	struct child base, fault;
	size_t n;
	(void)state;

	assert_int_equal(test_mkdtemp(dir, sizeof(dir)), 0);
	assert_int_equal(test_write_file(dir, "s.scen",
		"# fault statistics test\n"
		"at 60s fault pump-a bearing_wear severity=1.0 for 120s ramp=10s\n"
		"at 60s fault pump-a offset sensor=flow severity=0.5 ramp=0 for 60s\n"
		"at 60s fault pump-b cavitation severity=0.8 for 120s\n"
		"  at 60s  fault pump-c stuck sensor=motor_temp for 60s   # frozen transmitter\n"
		"at 60s fault pump-c spikes sensor=current severity=1\n"
		"at 60s fault pump-c bearing_wear severity=0.4 ramp=0\n"
		"at 180s clear pump-c spikes\n"
		"at 60s fault pump-b broken sensor=bearing_temp for 30s\n"
		"at 60s fault pump-c broken sensor=flow for 30s\n"), 0);
	snprintf(path, sizeof(path), "%s/s.scen", dir);
	run_fast(&base, NULL);
	run_fast(&fault, path);

	/* Window [90 s, 180 s): after the ramps, before the ends. */
	const size_t on = 600, lo = 900, hi = 1800;

	double *va0 = series(&base, "pump-a", "vibration_rms", &n);
	double *va1 = series(&fault, "pump-a", "vibration_rms", &n);
	double *ta0 = series(&base, "pump-a", "bearing_temp", &n);
	double *ta1 = series(&fault, "pump-a", "bearing_temp", &n);
	assert_int_equal(n, 2400);
	/* Before the fault both runs are the same plant. */
	for (size_t i = 0; i < on; i++) {
		assert_true(va0[i] == va1[i]);
		assert_true(ta0[i] == ta1[i]);
	}
	assert_true(mean(va1, lo, hi) > mean(va0, lo, hi) + 2.0);
	assert_true(mean(ta1, lo, hi) > mean(ta0, lo, hi) + 2.0);
	/* Progressive: worse at the end of the fault than at its start. */
	assert_true(mean(ta1, 1700, 1800) - mean(ta0, 1700, 1800) >
		    mean(ta1, 620, 720) - mean(ta0, 620, 720));
	assert_true(mean(va1, 2100, 2400) < mean(va0, 2100, 2400) + 0.5);
	/* Offset: the transmitter reads exactly 0.5 x 25 m3/h higher for 60 s. */
	double *fa0 = series(&base, "pump-a", "flow", &n);
	double *fa1 = series(&fault, "pump-a", "flow", &n);
	for (size_t i = 0; i < 2400; i++) {
		double d = fa1[i] - fa0[i];
		if (i >= on && i < on + 600)
			assert_true(fabs(d - 12.5) < 1e-6);
		else
			assert_true(d == 0.0);
	}

	double *pb0 = series(&base, "pump-b", "pressure", &n);
	double *pb1 = series(&fault, "pump-b", "pressure", &n);
	double *qb0 = series(&base, "pump-b", "flow", &n);
	double *qb1 = series(&fault, "pump-b", "flow", &n);
	double *vb0 = series(&base, "pump-b", "vibration_rms", &n);
	double *vb1 = series(&fault, "pump-b", "vibration_rms", &n);
	assert_true(mean(pb1, lo, hi) < 0.9 * mean(pb0, lo, hi));
	assert_true(diff_std(pb1, lo, hi) > 2.0 * diff_std(pb0, lo, hi));
	assert_true(diff_std(qb1, lo, hi) > 2.0 * diff_std(qb0, lo, hi));
	assert_true(mean(vb1, lo, hi) > mean(vb0, lo, hi) + 0.5);

	double *mc0 = series(&base, "pump-c", "motor_temp", &n);
	double *mc1 = series(&fault, "pump-c", "motor_temp", &n);
	double *ic0 = series(&base, "pump-c", "current", &n);
	double *ic1 = series(&fault, "pump-c", "current", &n);
	double *sc0 = series(&base, "pump-c", "speed", &n);
	double *sc1 = series(&fault, "pump-c", "speed", &n);
	/* Stuck: the last value before the fault, for exactly 60 s. */
	for (size_t i = on; i < on + 600; i++)
		assert_true(mc1[i] == mc0[on - 1]);
	bool moves = false;
	for (size_t i = on + 600; i < on + 700; i++)
		moves |= mc1[i] != mc1[on + 600];
	assert_true(moves);
	/* Spikes: several large, rare departures; none outside the fault. */
	int spikes = 0;
	for (size_t i = 0; i < 2400; i++) {
		if (fabs(ic1[i] - ic0[i]) > 3.0) {
			assert_true(i >= on && i < 1800);
			spikes++;
		}
	}
	assert_true(spikes >= 10);
	assert_true(spikes < 400);
	/* The other sensors of the faulted pump are untouched. */
	for (size_t i = 0; i < 2400; i++)
		assert_true(sc0[i] == sc1[i]);
	/* Early bearing wear (severity <= 0.4) shakes but does not yet heat. */
	double *bc0 = series(&base, "pump-c", "bearing_temp", &n);
	double *bc1 = series(&fault, "pump-c", "bearing_temp", &n);
	double *vc0 = series(&base, "pump-c", "vibration_rms", &n);
	double *vc1 = series(&fault, "pump-c", "vibration_rms", &n);
	for (size_t i = 0; i < 2400; i++)
		assert_true(bc0[i] == bc1[i]);
	assert_true(mean(vc1, on, 2400) > mean(vc0, on, 2400) + 1.0);

	/* The printed ground truth names the active faults. */
	const cJSON *l = fault.lines[3 * 1000];
	assert_string_equal(line_asset(l), "pump-a");
	const cJSON *faults = cJSON_GetObjectItemCaseSensitive(l, "faults");
	assert_int_equal(cJSON_GetArraySize(faults), 2);
	assert_string_equal(cJSON_GetArrayItem(faults, 0)->valuestring, "bearing_wear");
	assert_string_equal(cJSON_GetArrayItem(faults, 1)->valuestring, "offset");

	/* Broken: no reading for 30 s, the value before and after untouched. On
	 * Modbus (pump-b, int16 x 0.1) the under-range code -32768, on MQTT
	 * (pump-c) null. */
	double *tb0 = series(&base, "pump-b", "bearing_temp", &n);
	double *tb1 = series(&fault, "pump-b", "bearing_temp", &n);
	double *qc0 = series(&base, "pump-c", "flow", &n);
	double *qc1 = series(&fault, "pump-c", "flow", &n);
	for (size_t i = 0; i < 2400; i++) {
		bool broken = i >= on && i < on + 300;
		if (broken) {
			assert_true(fabs(tb1[i] - -3276.8) < 1e-9);
			assert_true(isnan(qc1[i]));
		} else {
			assert_true(tb1[i] == tb0[i]);
			assert_true(qc1[i] == qc0[i]);
		}
	}

	double *all[] = { va0, va1, ta0, ta1, pb0, pb1, qb0, qb1, vb0, vb1, mc0, mc1, ic0, ic1,
			  sc0, sc1, bc0, bc1, vc0, vc1, fa0, fa1, tb0, tb1, qc0, qc1 };
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		free(all[i]);
	child_free(&base);
	child_free(&fault);
	test_rmtree(dir);
}

/* ---- the physics couples the sensors ---- */

static double corr(const double *x, const double *y, size_t n)
{
	double mx = mean(x, 0, n), my = mean(y, 0, n), sxy = 0, sxx = 0, syy = 0;
	for (size_t i = 0; i < n; i++) {
		sxy += (x[i] - mx) * (y[i] - my);
		sxx += (x[i] - mx) * (x[i] - mx);
		syy += (y[i] - my) * (y[i] - my);
	}
	return sxy / sqrt(sxx * syy);
}

static void test_physics_coupled(void **state)
{
	/* Two hours of pump-a at 2 Hz with the default regime schedule. */
	const char *args[] = { "--csv", "pump-a", "--rate", "2", "--duration", "7200", "--seed",
			       "3", "--fast", "--log-level", "warning", NULL };
	enum { SPEED, FLOW, PRESSURE, CURRENT, VIB, BEARING, MOTOR, NCOL };
	(void)state;

	char *text = run_capture(args);
	size_t cap = 14400 + 16, n = 0;
	double *col[NCOL];
	for (int k = 0; k < NCOL; k++)
		col[k] = calloc(cap, sizeof(double));
	char *save = NULL;
	char *row = strtok_r(text, "\n", &save); /* header */
	assert_non_null(row);
	while ((row = strtok_r(NULL, "\n", &save)) != NULL && n < cap) {
		char *end;
		strtod(row, &end);
		for (int k = 0; k < NCOL; k++)
			col[k][n] = strtod(end + 1, &end);
		n++;
	}
	assert_int_equal(n, 14400);

	/* Running samples only, for the affinity laws. */
	double *sp = calloc(n, sizeof(double)), *sp2 = calloc(n, sizeof(double));
	double *fl = calloc(n, sizeof(double)), *pr = calloc(n, sizeof(double));
	double *cu = calloc(n, sizeof(double)), *vi = calloc(n, sizeof(double));
	double *power = calloc(n, sizeof(double));
	size_t m = 0;
	int stopped = 0, levels = 0;
	double last_level = -1;
	for (size_t i = 0; i < n; i++) {
		if (col[SPEED][i] < 100) {
			stopped++;
			continue;
		}
		sp[m] = col[SPEED][i];
		sp2[m] = sp[m] * sp[m];
		fl[m] = col[FLOW][i];
		pr[m] = col[PRESSURE][i];
		cu[m] = col[CURRENT][i];
		vi[m] = col[VIB][i];
		power[m] = fl[m] * pr[m];
		m++;
		/* A level counts once the speed has settled away from the last one. */
		if (i >= 20 && fabs(col[SPEED][i] - col[SPEED][i - 20]) < 10 &&
		    fabs(col[SPEED][i] - last_level) > 60) {
			levels++;
			last_level = col[SPEED][i];
		}
	}
	assert_true(corr(sp, fl, m) > 0.95);       /* flow ~ n */
	assert_true(corr(sp2, pr, m) > 0.95);      /* head ~ n^2 */
	assert_true(corr(power, cu, m) > 0.9);     /* current follows hydraulic power */
	assert_true(corr(sp2, vi, m) > 0.8);       /* vibration ~ n^2, noisy */
	assert_true(levels >= 8);                  /* regimes change every few minutes */
	assert_true(stopped > 60 && stopped < (int)n / 4); /* a planned stop or two */

	/* Temperatures lag: during a stop the bearing cools toward ambient,
	 * slowly, and it never jumps from one sample to the next. */
	for (size_t i = 1; i < n; i++)
		assert_true(fabs(col[BEARING][i] - col[BEARING][i - 1]) < 1.0);
	size_t stop_start = 0;
	while (stop_start < n && col[SPEED][stop_start] != 0)
		stop_start++;
	assert_true(stop_start < n);
	size_t stop_end = stop_start;
	while (stop_end < n && col[SPEED][stop_end] == 0)
		stop_end++;
	assert_true(stop_end - stop_start >= 50);   /* 25 s or more at 2 Hz */
	assert_true(col[BEARING][stop_end - 1] < col[BEARING][stop_start] - 1.0);
	assert_true(col[MOTOR][stop_end - 1] < col[MOTOR][stop_start]);
	assert_true(col[CURRENT][stop_start + 2] < 0.5);

	for (int k = 0; k < NCOL; k++)
		free(col[k]);
	double *all[] = { sp, sp2, fl, pr, cu, vi, power };
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		free(all[i]);
	free(text);
}

/* ---- run-time commands and SIGUSR1 ---- */

static bool has_fault(const cJSON *line, const char *name)
{
	const cJSON *f;
	cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(line, "faults"))
		if (strcmp(f->valuestring, name) == 0)
			return true;
	return false;
}

/* The newest line of `asset`, after pumping output for a while. */
static const cJSON *newest(struct child *c, const char *asset)
{
	for (size_t i = c->nlines; i-- > 0;)
		if (strcmp(line_asset(c->lines[i]), asset) == 0)
			return c->lines[i];
	return NULL;
}

static const cJSON *wait_fault(struct child *c, const char *asset, const char *fault,
			       bool want)
{
	for (int t = 0; t < 300; t++) {
		child_pump(c, 20);
		const cJSON *l = newest(c, asset);
		if (l && has_fault(l, fault) == want)
			return l;
	}
	return NULL;
}

static void test_commands_and_sigusr1(void **state)
{
	char dir[256], path[300];
	struct child c;
	(void)state;

	assert_int_equal(test_mkdtemp(dir, sizeof(dir)), 0);
	assert_int_equal(test_write_file(dir, "s.scen",
		"at 1h fault pump-a stuck sensor=speed\n"
		"at 2h fault pump-b cavitation\n"), 0);
	snprintf(path, sizeof(path), "%s/s.scen", dir);
	const char *args[] = { "--modbus-port", "0", "--print", "--rate", "20", "--scenario", path,
			       "--log-level", "warning", NULL };
	assert_int_equal(child_start(&c, args), 0);
	assert_true(child_wait_port(&c) > 0);
	assert_non_null(wait_line(&c, "pump-a", 5, 5000));
	assert_false(has_fault(newest(&c, "pump-a"), "stuck"));

	/* SIGUSR1 pulls the first pending fault forward to now. */
	kill(c.pid, SIGUSR1);
	const cJSON *l = wait_fault(&c, "pump-a", "stuck", true);
	assert_non_null(l);
	double tick = num(l, "tick"), speed = num(l, "speed");
	const cJSON *later = wait_line(&c, "pump-a", tick + 10, 5000);
	assert_non_null(later);
	assert_true(num(later, "speed") == speed);
	assert_false(has_fault(newest(&c, "pump-b"), "cavitation"));

	/* Commands on stdin, including one with a typo that must not stop it. */
	child_send(&c, "fault pump-b spikes sensor=flow severity=0.5\n"
		       "fault pump-b spikes sensor=nosuch\n");
	assert_non_null(wait_fault(&c, "pump-b", "spikes", true));
	child_send(&c, "clear pump-b\nclear pump-a stuck\n");
	assert_non_null(wait_fault(&c, "pump-b", "spikes", false));
	assert_non_null(wait_fault(&c, "pump-a", "stuck", false));

	/* An operator stops pump-a: its speed ramps down. */
	double s0 = num(newest(&c, "pump-a"), "speed");
	child_send(&c, "speed pump-a 0\n");
	bool slowed = false;
	for (int t = 0; t < 500 && !slowed; t++) {
		child_pump(&c, 20);
		slowed = num(newest(&c, "pump-a"), "speed") < s0 - 50;
	}
	assert_true(slowed);
	child_send(&c, "speed pump-a auto\n");

	/* The second SIGUSR1 takes the next one; a third finds none left. */
	kill(c.pid, SIGUSR1);
	assert_non_null(wait_fault(&c, "pump-b", "cavitation", true));
	kill(c.pid, SIGUSR1);

	child_send(&c, "quit\n");
	assert_int_equal(child_wait(&c, 5000), 0);
	child_free(&c);
	test_rmtree(dir);
}

/* ---- MQTT: telemetry reaches a real broker as JSON ---- */

struct sub {
	pthread_mutex_t lock;
	int connected, subscribed;
	int n;
	char topic[16][128];
	char payload[16][1024];
};

static void sub_on_connect(void *ctx, MQTTAsync_successData *r)
{
	struct sub *s = ctx;
	(void)r;
	pthread_mutex_lock(&s->lock);
	s->connected = 1;
	pthread_mutex_unlock(&s->lock);
}

static void sub_on_subscribe(void *ctx, MQTTAsync_successData *r)
{
	struct sub *s = ctx;
	(void)r;
	pthread_mutex_lock(&s->lock);
	s->subscribed = 1;
	pthread_mutex_unlock(&s->lock);
}

static int sub_on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *m)
{
	struct sub *s = ctx;
	(void)topic_len;
	pthread_mutex_lock(&s->lock);
	if (s->n < 16) {
		snprintf(s->topic[s->n], sizeof(s->topic[0]), "%s", topic);
		snprintf(s->payload[s->n], sizeof(s->payload[0]), "%.*s", m->payloadlen,
			 (const char *)m->payload);
		s->n++;
	}
	pthread_mutex_unlock(&s->lock);
	MQTTAsync_freeMessage(&m);
	MQTTAsync_free(topic);
	return 1;
}

static int sub_get(struct sub *s, int *field)
{
	pthread_mutex_lock(&s->lock);
	int v = *field;
	pthread_mutex_unlock(&s->lock);
	return v;
}

/* A subscriber to plant/# on uri; fails the test if it cannot be set up. */
static MQTTAsync sub_open(struct sub *s, const char *uri, const char *id)
{
	MQTTAsync h;

	pthread_mutex_lock(&s->lock);
	s->connected = s->subscribed = s->n = 0;
	pthread_mutex_unlock(&s->lock);
	assert_int_equal(MQTTAsync_create(&h, uri, id, MQTTCLIENT_PERSISTENCE_NONE, NULL),
			 MQTTASYNC_SUCCESS);
	MQTTAsync_setCallbacks(h, s, NULL, sub_on_message, NULL);
	MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer;
	co.cleansession = 1;
	co.onSuccess = sub_on_connect;
	co.context = s;
	assert_int_equal(MQTTAsync_connect(h, &co), MQTTASYNC_SUCCESS);
	for (int t = 0; t < 500 && !sub_get(s, &s->connected); t++)
		test_sleep_ms(10);
	assert_true(sub_get(s, &s->connected));
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	ro.onSuccess = sub_on_subscribe;
	ro.context = s;
	assert_int_equal(MQTTAsync_subscribe(h, "plant/#", 1, &ro), MQTTASYNC_SUCCESS);
	for (int t = 0; t < 500 && !sub_get(s, &s->subscribed); t++)
		test_sleep_ms(10);
	assert_true(sub_get(s, &s->subscribed));
	return h;
}

static void sub_close(MQTTAsync h)
{
	MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
	d.timeout = 1000;
	MQTTAsync_disconnect(h, &d);
	test_sleep_ms(50);
	MQTTAsync_destroy(&h);
}

/* Waits (pumping the child's stdout) until `want` messages arrived. */
static int sub_wait(struct sub *s, struct child *c, int want, int timeout_ms)
{
	int64_t end = pdm_mono_ms() + timeout_ms;
	while (sub_get(s, &s->n) < want && pdm_mono_ms() < end)
		child_pump(c, 10);
	return sub_get(s, &s->n);
}

/* A broker, a subscriber to plant/#, and plantsim started with
 * "--modbus-port 0 --rate 20 --mqtt URI --mqtt-qos 1 --log-level warning"
 * and the extra arguments (up to 4). */
static MQTTAsync live_open(struct test_broker *b, struct sub *s, struct child *c, const char *id,
			   const char *const *extra)
{
	pthread_mutex_init(&s->lock, NULL);
	assert_int_equal(broker_start(b), 0);
	MQTTAsync h = sub_open(s, b->uri, id);
	const char *args[16] = { "--modbus-port", "0", "--rate", "20", "--mqtt", b->uri,
				 "--mqtt-qos", "1", "--log-level", "warning" };
	for (int i = 0; extra && extra[i] && i < 4; i++)
		args[10 + i] = extra[i];
	assert_int_equal(child_start(c, args), 0);
	return h;
}

/* live_open, then the first n telemetry messages, and plantsim stopped
 * (SIGINT, exit 0) so that they are all there is. */
static MQTTAsync live_collect(struct test_broker *b, struct sub *s, struct child *c,
			      const char *id, const char *const *extra, int n)
{
	MQTTAsync h = live_open(b, s, c, id, extra);
	assert_int_equal(sub_wait(s, c, n, 10000), n);
	kill(c->pid, SIGINT);
	assert_int_equal(child_wait(c, 5000), 0);
	return h;
}

static void live_close(struct test_broker *b, struct sub *s, struct child *c, MQTTAsync h)
{
	sub_close(h);
	child_free(c);
	broker_stop(b);
	pthread_mutex_destroy(&s->lock);
}

static void test_mqtt_telemetry(void **state)
{
	struct test_broker b = { 0 };
	struct sub s = { .n = 0 };
	struct child c;
	(void)state;

	static const char *const extra[] = { "--print", NULL };
	MQTTAsync h = live_collect(&b, &s, &c, "plantsim-test", extra, 16);

	for (int i = 0; i < 16; i++) {
		/* Only the MQTT-fed asset is published. */
		assert_string_equal(s.topic[i], "plant/pump-c/telemetry");
		cJSON *j = cJSON_Parse(s.payload[i]);
		if (!j)
			fail_msg("payload is not JSON: %s", s.payload[i]);
		double ts = num(j, "ts");
		assert_true(ts > 1.6e12);
		const cJSON *proc = cJSON_GetObjectItemCaseSensitive(j, "process");
		assert_true(cJSON_IsObject(proc));
		/* The same values --print reported for that tick. */
		const cJSON *line = NULL;
		for (size_t k = 0; k < c.nlines && !line; k++)
			if (strcmp(line_asset(c.lines[k]), "pump-c") == 0 &&
			    num(c.lines[k], "ts") == ts)
				line = c.lines[k];
		if (!line)
			fail_msg("no printed pump-c line with ts %.0f", ts);
		assert_true(num(proc, "flow") == num(line, "flow"));
		assert_true(num(proc, "pressure") == num(line, "pressure"));
		const char *flat[] = { "speed", "current", "vibration_rms", "bearing_temp",
				       "motor_temp" };
		for (size_t k = 0; k < 5; k++)
			assert_true(num(j, flat[k]) == num(line, flat[k]));
		/* Physically plausible for a running pump. */
		assert_true(num(j, "speed") > 800 && num(j, "speed") < 1600);
		assert_true(num(proc, "flow") > 50);
		cJSON_Delete(j);
	}
	live_close(&b, &s, &c, h);
}

/* --mqtt-batch: a gateway's buffer, N ticks per message as a JSON array in
 * time order, none lost or repeated between messages. */
static void test_mqtt_batch(void **state)
{
	struct test_broker b = { 0 };
	struct sub s = { .n = 0 };
	struct child c;
	(void)state;

	static const char *const extra[] = { "--mqtt-batch", "5", NULL };
	MQTTAsync h = live_collect(&b, &s, &c, "plantsim-test-batch", extra, 3);

	double last = 0;
	for (int i = 0; i < 3; i++) {
		assert_string_equal(s.topic[i], "plant/pump-c/telemetry");
		cJSON *j = cJSON_Parse(s.payload[i]);
		if (!j || !cJSON_IsArray(j) || cJSON_GetArraySize(j) != 5)
			fail_msg("not a batch of 5: %s", s.payload[i]);
		for (int k = 0; k < 5; k++) {
			const cJSON *o = cJSON_GetArrayItem(j, k);
			double ts = num(o, "ts");
			/* 20 Hz: 50 ms apart, across messages too */
			if (last > 0)
				assert_true(ts == last + 50);
			last = ts;
			assert_true(num(o, "speed") > 800);
			assert_true(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(o, "process")));
		}
		cJSON_Delete(j);
	}
	live_close(&b, &s, &c, h);
}

/* --mqtt-tags: each tick as Kepware's list of tags, every tag with its
 * value, quality 192 and the scan time; the message's time 250 ms later. */
static void test_mqtt_tags(void **state)
{
	struct test_broker b = { 0 };
	struct sub s = { .n = 0 };
	struct child c;
	(void)state;

	static const char *const extra[] = { "--mqtt-tags", NULL };
	MQTTAsync h = live_collect(&b, &s, &c, "plantsim-test-tags", extra, 3);

	double last = 0;
	for (int i = 0; i < 3; i++) {
		assert_string_equal(s.topic[i], "plant/pump-c/telemetry");
		cJSON *j = cJSON_Parse(s.payload[i]);
		const cJSON *vals = cJSON_GetObjectItemCaseSensitive(j, "values");
		if (!cJSON_IsArray(vals) || cJSON_GetArraySize(vals) != 7)
			fail_msg("not a list of 7 tags: %s", s.payload[i]);
		double t = num(cJSON_GetArrayItem(vals, 0), "t");
		assert_true(num(j, "timestamp") == t + 250);
		if (last > 0)
			assert_true(t == last + 50); /* 20 Hz */
		last = t;
		const cJSON *tag;
		bool speed = false;
		cJSON_ArrayForEach(tag, vals) {
			const cJSON *id = cJSON_GetObjectItemCaseSensitive(tag, "id");
			assert_true(cJSON_IsString(id) && !strncmp(id->valuestring, "Channel1.pump-c.", 16));
			assert_true(num(tag, "q") == 192);
			assert_true(num(tag, "t") == t);
			if (!strcmp(id->valuestring, "Channel1.pump-c.speed")) {
				speed = true;
				assert_true(num(tag, "v") > 800);
			}
		}
		assert_true(speed);
		cJSON_Delete(j);
	}
	live_close(&b, &s, &c, h);
}

/* The broker is down when plantsim starts, and goes away again later:
 * telemetry resumes each time without a restart of the simulator. */
static void test_mqtt_broker_outages(void **state)
{
	struct test_broker b = { 0 };
	struct sub s = { .n = 0 };
	struct child c;
	(void)state;

	pthread_mutex_init(&s.lock, NULL);
	assert_int_equal(broker_start(&b), 0);
	broker_kill(&b);

	const char *args[] = { "--modbus-port", "0", "--rate", "20", "--mqtt", b.uri,
			       "--log-level", "error", NULL };
	assert_int_equal(child_start(&c, args), 0);
	test_sleep_ms(1500);
	assert_int_equal(broker_restart(&b), 0);
	MQTTAsync h = sub_open(&s, b.uri, "plantsim-outage-1");
	assert_true(sub_wait(&s, &c, 5, 20000) >= 5);
	sub_close(h);

	broker_kill(&b);
	test_sleep_ms(500);
	assert_int_equal(broker_restart(&b), 0);
	h = sub_open(&s, b.uri, "plantsim-outage-2");
	assert_true(sub_wait(&s, &c, 5, 20000) >= 5);
	sub_close(h);

	kill(c.pid, SIGTERM);
	assert_int_equal(child_wait(&c, 5000), 0);
	child_free(&c);
	broker_stop(&b);
	pthread_mutex_destroy(&s.lock);
}

/* ---- mistakes users make are reported, not simulated ---- */

static void test_bad_input_rejected(void **state)
{
	char dir[256], path[300], out[4096];
	(void)state;

	assert_int_equal(test_mkdtemp(dir, sizeof(dir)), 0);
	assert_int_equal(test_write_file(dir, "bad.scen",
		"at 10s fault pump-a bearing_wear\n"
		"# fine so far\n"
		"at 20s fault pump-z cavitation\n"), 0);
	snprintf(path, sizeof(path), "%s/bad.scen", dir);

	char *scen[] = { (char *)plantsim_path(), "--scenario", path, "--modbus-port", "0", NULL };
	assert_int_equal(test_run(scen, out, sizeof(out)), 1);
	assert_non_null(strstr(out, "bad.scen:3:"));
	assert_non_null(strstr(out, "pump-z"));

	assert_int_equal(test_write_file(dir, "bad.scen",
		"at 5s fault pump-a stuck\n"), 0);
	assert_int_equal(test_run(scen, out, sizeof(out)), 1);
	assert_non_null(strstr(out, "bad.scen:1:"));
	assert_non_null(strstr(out, "sensor="));

	char *rate[] = { (char *)plantsim_path(), "--rate", "0", NULL };
	assert_int_equal(test_run(rate, out, sizeof(out)), 64);
	char *fast[] = { (char *)plantsim_path(), "--fast", NULL };
	assert_int_equal(test_run(fast, out, sizeof(out)), 64);
	char *assets[] = { (char *)plantsim_path(), "--assets", "p1:modbus,p1:mqtt", NULL };
	assert_int_equal(test_run(assets, out, sizeof(out)), 1);
	assert_non_null(strstr(out, "p1"));

	/* A port already taken: a clear error, not a simulator without its server. */
	struct child c;
	const char *first[] = { "--modbus-port", "0", "--log-level", "warning", NULL };
	assert_int_equal(child_start(&c, first), 0);
	int port = child_wait_port(&c);
	assert_true(port > 0);
	char portstr[16];
	snprintf(portstr, sizeof(portstr), "%d", port);
	char *second[] = { (char *)plantsim_path(), "--modbus-port", portstr, NULL };
	assert_int_equal(test_run(second, out, sizeof(out)), 1);
	assert_non_null(strstr(out, "cannot listen"));
	kill(c.pid, SIGHUP);
	assert_int_equal(child_wait(&c, 5000), 0);
	child_free(&c);
	test_rmtree(dir);
}

/* ---- the shipped scenarios and the demo configuration ---- */

static const char *source_root(void)
{
	const char *r = getenv("PDM_SOURCE_ROOT");
	return r ? r : "..";
}

static void test_shipped_scenarios_load(void **state)
{
	char dir[512], path[1024], out[4096];
	struct dirent *e;
	int n = 0;
	(void)state;

	snprintf(dir, sizeof(dir), "%s/tools/scenarios", source_root());
	DIR *d = opendir(dir);
	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name);
		if (l < 6 || strcmp(e->d_name + l - 5, ".scen") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		char *argv[] = { (char *)plantsim_path(), "--scenario", path, "--fast",
				 "--duration", "0.1", "--modbus-port", "0", NULL };
		int rc = test_run(argv, out, sizeof(out));
		if (rc != 0)
			fail_msg("%s does not load: %s", e->d_name, out);
		n++;
	}
	closedir(d);
	assert_true(n >= 3);
}

/* What etc/demo configures, collected with inih (as pdmd's parser does). */
#define DEMO_MAX 64
struct demo_cfg {
	int nsensors;
	struct {
		char name[64];    /* asset.sensor */
		char source[64];
		char reg[32], type[16], order[16], scale[16], field[64];
	} s[DEMO_MAX];
	char plc_address[64];
	char feed_topic[128];
	int assets;
	int run_when;
};

static int demo_handler(void *user, const char *section, const char *key, const char *value)
{
	struct demo_cfg *c = user;

	if (strncmp(section, "sensor ", 7) == 0) {
		int i;
		for (i = 0; i < c->nsensors; i++)
			if (strcmp(c->s[i].name, section + 7) == 0)
				break;
		if (i == c->nsensors) {
			if (c->nsensors == DEMO_MAX)
				return 0;
			c->nsensors++;
			snprintf(c->s[i].name, sizeof(c->s[i].name), "%s", section + 7);
			snprintf(c->s[i].order, sizeof(c->s[i].order), "abcd");
			snprintf(c->s[i].scale, sizeof(c->s[i].scale), "1.0");
		}
		char *dst = NULL;
		size_t len = 0;
#define FIELD(k) if (strcmp(key, #k) == 0) { dst = c->s[i].k; len = sizeof(c->s[i].k); }
		FIELD(source) FIELD(type) FIELD(order) FIELD(scale) FIELD(field)
		if (strcmp(key, "register") == 0) {
			dst = c->s[i].reg;
			len = sizeof(c->s[i].reg);
		}
#undef FIELD
		if (dst)
			snprintf(dst, len, "%s", value);
	} else if (strcmp(section, "source plant-plc") == 0 && strcmp(key, "address") == 0) {
		snprintf(c->plc_address, sizeof(c->plc_address), "%s", value);
	} else if (strcmp(section, "source pump-c-feed") == 0 && strcmp(key, "topic") == 0) {
		snprintf(c->feed_topic, sizeof(c->feed_topic), "%s", value);
	} else if (strncmp(section, "asset ", 6) == 0 && strcmp(key, "model") == 0) {
		c->assets++;
	} else if (strncmp(section, "asset ", 6) == 0 && strcmp(key, "run_when") == 0) {
		c->run_when++;
	}
	return 1;
}

static void test_demo_config_matches_simulator(void **state)
{
	struct demo_cfg cfg;
	char path[1024];
	const char *files[] = { "pdmd.conf", "conf.d/10-sources.conf", "conf.d/20-pump-a.conf",
				"conf.d/21-pump-b.conf", "conf.d/30-pump-c.conf" };
	const char *sensors[] = { "vibration_rms", "flow", "pressure", "current", "speed",
				  "bearing_temp", "motor_temp" };
	(void)state;

	memset(&cfg, 0, sizeof(cfg));
	for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
		snprintf(path, sizeof(path), "%s/etc/demo/%s", source_root(), files[f]);
		int rc = ini_parse(path, demo_handler, &cfg);
		if (rc != 0)
			fail_msg("%s: ini error at line %d", path, rc);
	}
	assert_string_equal(cfg.plc_address, "127.0.0.1:@MODBUS_PORT@");
	assert_string_equal(cfg.feed_topic, "plant/pump-c/telemetry");
	assert_int_equal(cfg.assets, 3);
	assert_int_equal(cfg.run_when, 3);
	/* Every sensor of every pump, and each decodes the way the simulator encodes. */
	assert_int_equal(cfg.nsensors, 21);
	const char *assets[] = { "pump-a", "pump-b", "pump-c" };
	for (int a = 0; a < 3; a++) {
		for (size_t k = 0; k < 7; k++) {
			char name[64];
			int i;
			snprintf(name, sizeof(name), "%s.%s", assets[a], sensors[k]);
			for (i = 0; i < cfg.nsensors && strcmp(cfg.s[i].name, name) != 0; i++)
				;
			if (i == cfg.nsensors)
				fail_msg("etc/demo lacks sensor %s", name);
			if (a == 2) {
				assert_string_equal(cfg.s[i].source, "pump-c-feed");
				const char *want = (strcmp(sensors[k], "flow") == 0 ||
						    strcmp(sensors[k], "pressure") == 0)
							   ? (strcmp(sensors[k], "flow") == 0 ?
								      "process.flow" : "process.pressure")
							   : sensors[k];
				assert_string_equal(cfg.s[i].field, want);
				continue;
			}
			size_t m;
			for (m = 0; m < NREG && strcmp(regmap[m].sensor, sensors[k]) != 0; m++)
				;
			assert_true(m < NREG);
			char reg[32];
			snprintf(reg, sizeof(reg), "hr:%d", 100 * a + regmap[m].offset);
			assert_string_equal(cfg.s[i].source, "plant-plc");
			if (strcmp(cfg.s[i].reg, reg) != 0)
				fail_msg("%s: register %s, simulator serves it at %s", name,
					 cfg.s[i].reg, reg);
			assert_string_equal(cfg.s[i].type, mb_type_name(regmap[m].type));
			if (mb_type_words(regmap[m].type) > 1)
				assert_string_equal(cfg.s[i].order, mb_order_name(regmap[m].order));
			assert_true(strtod(cfg.s[i].scale, NULL) == regmap[m].scale);
		}
	}
}

/* Copies etc/demo with the placeholders filled in, as scripts/demo.sh does. */
static void copy_substituted(const char *from, const char *to, const char *name,
			     const char *state_dir)
{
	char path[2048], *text = NULL, *outp;
	size_t cap = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", from, name);
	f = fopen(path, "r");
	assert_non_null(f);
	ssize_t n = getdelim(&text, &cap, '\0', f);
	fclose(f);
	assert_true(n > 0);
	size_t outcap = (size_t)n * 2 + 4096, used = 0;
	outp = malloc(outcap);
	assert_non_null(outp);
	const char *keys[][2] = { { "@MODBUS_PORT@", "1502" },
				  { "@MQTT_URI@", "tcp://127.0.0.1:1883" },
				  { "@STATE_DIR@", state_dir } };
	for (const char *p = text; *p;) {
		size_t k;
		for (k = 0; k < 3; k++)
			if (strncmp(p, keys[k][0], strlen(keys[k][0])) == 0)
				break;
		if (k < 3) {
			used += (size_t)snprintf(outp + used, outcap - used, "%s", keys[k][1]);
			p += strlen(keys[k][0]);
		} else {
			outp[used++] = *p++;
		}
	}
	outp[used] = '\0';
	assert_null(strchr(outp, '@'));
	assert_int_equal(test_write_file(to, name, outp), 0);
	free(outp);
	free(text);
}

static void test_demo_config_accepted_by_pdmd(void **state)
{
	char dir[256], from[1024], out[65536];
	const char *files[] = { "pdmd.conf", "conf.d/10-sources.conf", "conf.d/20-pump-a.conf",
				"conf.d/21-pump-b.conf", "conf.d/30-pump-c.conf" };
	const char *pdmd = getenv("PDMD");
	(void)state;

	if (!pdmd)
		skip();
	assert_int_equal(test_mkdtemp(dir, sizeof(dir)), 0);
	snprintf(from, sizeof(from), "%s/etc/demo", source_root());
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		copy_substituted(from, dir, files[i], dir);
	char *argv[] = { (char *)pdmd, "check", "-c", dir, NULL };
	int rc = test_run(argv, out, sizeof(out));
	if (rc != 0)
		fail_msg("pdmd check rejects the demo configuration (exit %d):\n%s", rc, out);
	assert_non_null(strstr(out, "pump-c"));
	test_rmtree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_registers_match_print, teardown_live),
		cmocka_unit_test_teardown(test_same_seed_same_output, teardown_live),
		cmocka_unit_test_teardown(test_fault_statistics, teardown_live),
		cmocka_unit_test_teardown(test_physics_coupled, teardown_live),
		cmocka_unit_test_teardown(test_commands_and_sigusr1, teardown_live),
		cmocka_unit_test_teardown(test_mqtt_telemetry, teardown_live),
		cmocka_unit_test_teardown(test_mqtt_batch, teardown_live),
		cmocka_unit_test_teardown(test_mqtt_tags, teardown_live),
		cmocka_unit_test_teardown(test_mqtt_broker_outages, teardown_live),
		cmocka_unit_test_teardown(test_bad_input_rejected, teardown_live),
		cmocka_unit_test_teardown(test_shipped_scenarios_load, teardown_live),
		cmocka_unit_test_teardown(test_demo_config_matches_simulator, teardown_live),
		cmocka_unit_test_teardown(test_demo_config_accepted_by_pdmd, teardown_live),
	};
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
