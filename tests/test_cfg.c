/*
 * test_cfg.c - configuration loading: every key and its default, units,
 * value and cross-reference errors with file:line, drop-in order, syntax
 * errors, the round trip of cfg_print and the docs' key reference.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <cmocka.h>

#include "cfg.h"
#include "mb_decode.h"
#include "test_util.h"

struct fixture {
	char dir[256];
	char errbuf[65536];
	FILE *err;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (!f || test_mkdtemp(f->dir, sizeof(f->dir)) < 0)
		return -1;
	f->err = fmemopen(f->errbuf, sizeof(f->errbuf), "w");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	if (f->err)
		fclose(f->err);
	test_rmtree(f->dir);
	free(f);
	cfg_set_check_dims(NULL);
	return 0;
}

static void chmod_in(const char *dir, const char *name, mode_t mode)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(chmod(path, mode), 0);
}

static struct pdm_config *load(struct fixture *f)
{
	rewind(f->err);
	memset(f->errbuf, 0, sizeof(f->errbuf));
	struct pdm_config *cfg = cfg_load(f->dir, f->err);
	fflush(f->err);
	return cfg;
}

static struct pdm_config *load_main(struct fixture *f, const char *text)
{
	test_write_file(f->dir, "pdmd.conf", text);
	return load(f);
}

/* Asserts that the error output holds "DIR/FILE:LINE: TEXT". */
static void expect_msg(struct fixture *f, const char *file, int line, const char *text)
{
	char want[1024];
	snprintf(want, sizeof(want), "%s/%s:%d: %s", f->dir, file, line, text);
	if (!strstr(f->errbuf, want))
		fail_msg("expected message\n  %s\nin output:\n%s", want, f->errbuf);
}

/* Loads a config that must fail with `text` at pdmd.conf:line. */
static void expect_error(struct fixture *f, const char *conf, int line, const char *text)
{
	struct pdm_config *cfg = load_main(f, conf);
	if (cfg) {
		cfg_free(cfg);
		fail_msg("config loaded, expected error '%d: %s':\n%s", line, text, conf);
	}
	expect_msg(f, "pdmd.conf", line, text);
}

static char *print_to_string(const struct pdm_config *cfg)
{
	FILE *o = tmpfile();
	assert_non_null(o);
	cfg_print(cfg, o);
	long len = ftell(o);
	assert_true(len > 0);
	char *text = calloc(1, (size_t)len + 1);
	assert_non_null(text);
	rewind(o);
	assert_int_equal(fread(text, 1, (size_t)len, o), (size_t)len);
	fclose(o);
	return text;
}

/* A valid base: one source, one asset, one sensor (lines 1-9). */
#define BASE \
	"[daemon]\n"                 /* 1 */ \
	"state_dir = /tmp/pdm\n"     /* 2 */ \
	"[source plc1]\n"            /* 3 */ \
	"type = modbus-tcp\n"        /* 4 */ \
	"address = 127.0.0.1:1502\n" /* 5 */ \
	"[asset a]\n"                /* 6 */ \
	"[sensor a.temp]\n"          /* 7 */ \
	"source = plc1\n"            /* 8 */ \
	"register = hr:100\n"        /* 9 */

/* Every key left out takes its documented default. */
static void test_defaults(void **state)
{
	struct fixture *f = *state;
	char host[256] = "";

	struct pdm_config *c = load_main(f, BASE);
	assert_non_null(c);
	assert_string_equal(f->errbuf, "");
	gethostname(host, sizeof(host));
	assert_string_equal(c->daemon.state_dir, "/tmp/pdm");
	assert_int_equal(c->daemon.log_level, LOG_INFO);
	assert_string_equal(c->daemon.host, host);
	assert_int_equal(c->daemon.keep_models, 5);

	assert_string_equal(c->mqtt.uri, "tcp://127.0.0.1:1883");
	assert_string_equal(c->mqtt.client_id, "pdmd");
	assert_string_equal(c->mqtt.username, "");
	assert_string_equal(c->mqtt.password_file, "");
	assert_string_equal(c->mqtt.ca_file, "");
	assert_string_equal(c->mqtt.cert_file, "");
	assert_string_equal(c->mqtt.key_file, "");
	assert_string_equal(c->mqtt.topic_prefix, "pdm");
	assert_int_equal(c->mqtt.qos, 1);
	assert_int_equal(c->mqtt.keepalive_ms, 30000);
	assert_int_equal(c->mqtt.max_inflight, 20);
	assert_int_equal(c->mqtt.max_payload, 65536);

	assert_int_equal(c->storage.retention_ms, 7LL * 86400000);
	assert_int_equal(c->storage.max_samples, 10000000);
	assert_int_equal(c->storage.synchronous, CFG_SYNC_NORMAL);
	assert_int_equal(c->storage.queue, 65536);
	assert_string_equal(c->storage.file, "/tmp/pdm/samples.db");

	assert_int_equal(c->n_sources, 1);
	const struct cfg_source *s = &c->sources[0];
	assert_string_equal(s->name, "plc1");
	assert_int_equal(s->type, CFG_SRC_MODBUS_TCP);
	assert_string_equal(s->host, "127.0.0.1");
	assert_int_equal(s->port, 1502);
	assert_int_equal(s->unit, 1);
	assert_int_equal(s->poll_ms, 1000);
	assert_int_equal(s->timeout_ms, 500);
	assert_int_equal(s->backoff_max_ms, 30000);
	assert_int_equal(s->max_registers, 125);
	assert_int_equal(s->max_bits, 2000);
	assert_int_equal(s->max_gap, 8);
	assert_int_equal(s->where.line, 3);
	assert_non_null(strstr(s->where.file, "pdmd.conf"));

	assert_int_equal(c->n_assets, 1);
	const struct cfg_asset *a = &c->assets[0];
	assert_int_equal(a->model, CFG_MODEL_CONV_AE);
	assert_int_equal(a->sample_interval_ms, 1000);
	assert_int_equal(a->window, 64);
	assert_int_equal(a->hop, 8);
	assert_int_equal(a->train_after, 2000);
	assert_int_equal(a->retrain_ms, 24LL * 3600000);
	assert_int_equal(a->train_history_ms, 7LL * 86400000);
	assert_int_equal(a->learn_for_ms, 86400000LL);
	assert_int_equal(a->learn_min_ms, 86400000LL);
	assert_true(a->learn_alert_over == 10.0);
	assert_int_equal(a->relearn_for_ms, 3600000LL);
	assert_int_equal(a->raise_after, 3);
	/* 30 min of hops of 8 x 1 s */
	assert_int_equal(a->clear_after, 225);
	assert_int_equal(a->clear_after_ms, 1800000);
	assert_true(a->critical == 2.0);
	assert_false(a->has_run_when);
	assert_true(a->threshold_quantile == 0.995);
	assert_true(a->threshold_margin == 1.2);
	assert_int_equal(a->train_max_windows, 20000);
	assert_true(a->promote_margin == 0.05);
	assert_int_equal(a->epochs, 30);
	assert_int_equal(a->batch, 64);
	assert_true(a->learning_rate == 1e-3);
	assert_int_equal(a->patience, 5);
	assert_int_equal(a->train_timeout_ms, 600000);
	assert_true(a->validation == 0.2);
	assert_int_equal(a->hold, 3);
	assert_int_equal(a->no_data_after_ms, 30000);
	assert_int_equal(a->seed, 1);
	assert_int_equal(a->n_sensors, 1);
	assert_int_equal(a->sensors[0], 0);

	const struct cfg_sensor *se = &c->sensors[0];
	assert_string_equal(se->name, "a.temp");
	assert_string_equal(se->short_name, "temp");
	assert_int_equal(se->asset, 0);
	assert_int_equal(se->source, 0);
	assert_int_equal(se->reg_kind, CFG_REG_HR);
	assert_int_equal(se->address, 100);
	assert_int_equal(se->type, MB_T_UINT16);
	assert_int_equal(se->order, MB_O_ABCD);
	assert_true(se->scale == 1.0);
	assert_true(se->offset == 0.0);
	assert_string_equal(se->unit, "");
	assert_string_equal(se->field, "");
	assert_string_equal(se->column, "temp");
	assert_false(se->has_min);
	assert_false(se->has_max);
	assert_int_equal(se->where.line, 7);
	cfg_free(c);
}

/* Every key set to a value other than its default, with units. */
static void test_every_key_parses(void **state)
{
	struct fixture *f = *state;
	char conf[8192];

	test_write_file(f->dir, "pw", "secret\n");
	chmod_in(f->dir, "pw", 0600);
	test_write_file(f->dir, "ca.pem", "x\n");
	test_write_file(f->dir, "c.pem", "x\n");
	test_write_file(f->dir, "k.pem", "x\n");
	chmod_in(f->dir, "k.pem", 0600);
	snprintf(conf, sizeof(conf),
		 "[daemon]\nstate_dir = /srv/pdm\nlog_level = debug\nhost = edge-07\n"
		 "keep_models = 9\n"
		 "[mqtt]\nuri = ssl://broker.example:8883\nclient_id = pdm-7\nusername = pdm\n"
		 "password_file = %s/pw\nca_file = %s/ca.pem\ncert_file = %s/c.pem\n"
		 "key_file = %s/k.pem\ntopic_prefix = site/pdm\nqos = 2\nkeepalive = 1m\n"
		 "max_inflight = 50\nmax_payload = 1MiB\n"
		 "[storage]\nretention = 30d\nmax_samples = 5000000\nsynchronous = full\n"
		 "queue = 1000\nfile = db/s.db\n"
		 "[source tcp1]\ntype = modbus-tcp\naddress = [::1]:1502\nunit = 255\n"
		 "poll = 250ms\ntimeout = 2s\nbackoff_max = 5m\nmax_registers = 60\n"
		 "max_bits = 100\nmax_gap = 0\n"
		 "[source rtu1]\ntype = modbus-rtu\ndevice = /dev/ttyS3\nbaud = 9600\n"
		 "parity = n\ndata_bits = 7\nstop_bits = 2\nunit = 17\npoll = 200ms\n"
		 "[source feed]\ntype = mqtt\ntopic = plant/+/telemetry/#\nformat = json\n"
		 "timestamp = ts\nuri = tcp://other:1884\nqos = 0\n"
		 "[source one]\ntype = mqtt\ntopic = plant/p/speed\nformat = value\n"
		 "[asset m]\nmodel = mlp_ae\nsample_interval = 250ms\nwindow = 30\nhop = 30\n"
		 "train_after = 100\nretrain = 0\ntrain_history = 2d\nraise_after = 2\n"
		 "clear_after = 20\ncritical = 3.5\nrun_when = speed >= 10.5\n"
		 "threshold_quantile = 0.99\nthreshold_margin = 1.5\ntrain_max_windows = 5000\n"
		 "promote_margin = 0.1\nepochs = 12\nbatch = 32\nlearning_rate = 5e-4\n"
		 "patience = 0\ntrain_timeout = 90s\nvalidation = 0.25\nhold = 4\n"
		 "no_data_after = 2m\nseed = 18446744073709551615\n"
		 "[sensor m.vib]\nsource = tcp1\nregister = ir:7\ntype = float64\norder = cdab\n"
		 "scale = 0.1\noffset = -5\nunit = mm/s\ncolumn = VIB\nvalid_min = -1\n"
		 "valid_max = 1e3\n"
		 "[sensor m.run]\nsource = rtu1\nregister = coil:3\n"
		 "[sensor m.flow]\nsource = feed\nfield = process.flow\n"
		 "[sensor m.speed]\nsource = one\n",
		 f->dir, f->dir, f->dir, f->dir);
	struct pdm_config *c = load_main(f, conf);
	if (!c)
		fail_msg("%s", f->errbuf);
	assert_string_equal(c->daemon.state_dir, "/srv/pdm");
	assert_int_equal(c->daemon.log_level, LOG_DEBUG);
	assert_string_equal(c->daemon.host, "edge-07");
	assert_int_equal(c->daemon.keep_models, 9);
	assert_string_equal(c->mqtt.uri, "ssl://broker.example:8883");
	assert_string_equal(c->mqtt.client_id, "pdm-7");
	assert_string_equal(c->mqtt.username, "pdm");
	assert_non_null(strstr(c->mqtt.password_file, "/pw"));
	assert_non_null(strstr(c->mqtt.ca_file, "/ca.pem"));
	assert_non_null(strstr(c->mqtt.cert_file, "/c.pem"));
	assert_non_null(strstr(c->mqtt.key_file, "/k.pem"));
	assert_string_equal(c->mqtt.topic_prefix, "site/pdm");
	assert_int_equal(c->mqtt.qos, 2);
	assert_int_equal(c->mqtt.keepalive_ms, 60000);
	assert_int_equal(c->mqtt.max_inflight, 50);
	assert_int_equal(c->mqtt.max_payload, 1 << 20);
	assert_int_equal(c->storage.retention_ms, 30LL * 86400000);
	assert_int_equal(c->storage.max_samples, 5000000);
	assert_int_equal(c->storage.synchronous, CFG_SYNC_FULL);
	assert_int_equal(c->storage.queue, 1000);
	assert_string_equal(c->storage.file, "/srv/pdm/db/s.db");

	const struct cfg_source *t = cfg_find_source(c, "tcp1");
	assert_non_null(t);
	assert_string_equal(t->host, "::1");
	assert_int_equal(t->port, 1502);
	assert_int_equal(t->unit, 255);
	assert_int_equal(t->poll_ms, 250);
	assert_int_equal(t->timeout_ms, 2000);
	assert_int_equal(t->backoff_max_ms, 300000);
	assert_int_equal(t->max_registers, 60);
	assert_int_equal(t->max_bits, 100);
	assert_int_equal(t->max_gap, 0);
	const struct cfg_source *r = cfg_find_source(c, "rtu1");
	assert_int_equal(r->type, CFG_SRC_MODBUS_RTU);
	assert_string_equal(r->device, "/dev/ttyS3");
	assert_int_equal(r->baud, 9600);
	assert_int_equal(r->parity, 'N');
	assert_int_equal(r->data_bits, 7);
	assert_int_equal(r->stop_bits, 2);
	assert_int_equal(r->unit, 17);
	const struct cfg_source *q = cfg_find_source(c, "feed");
	assert_int_equal(q->type, CFG_SRC_MQTT);
	assert_string_equal(q->topic, "plant/+/telemetry/#");
	assert_int_equal(q->format, 0);
	assert_string_equal(q->timestamp, "ts");
	assert_string_equal(q->uri, "tcp://other:1884");
	assert_int_equal(q->qos, 0);
	const struct cfg_source *one = cfg_find_source(c, "one");
	assert_int_equal(one->format, 1);
	assert_string_equal(one->uri, "ssl://broker.example:8883"); /* the [mqtt] uri */
	assert_null(cfg_find_source(c, "nope"));

	const struct cfg_asset *a = cfg_find_asset(c, "m");
	assert_non_null(a);
	assert_int_equal(a->model, CFG_MODEL_MLP_AE);
	assert_int_equal(a->sample_interval_ms, 250);
	assert_int_equal(a->window, 30);
	assert_int_equal(a->hop, 30);
	assert_int_equal(a->train_after, 100);
	assert_int_equal(a->retrain_ms, 0);
	assert_int_equal(a->train_history_ms, 2LL * 86400000);
	assert_int_equal(a->raise_after, 2);
	assert_int_equal(a->clear_after, 20);
	assert_true(a->critical == 3.5);
	assert_true(a->has_run_when);
	assert_int_equal(a->run_op, CFG_OP_GE);
	assert_true(a->run_value == 10.5);
	assert_string_equal(c->sensors[a->run_sensor].name, "m.speed");
	assert_true(a->threshold_quantile == 0.99);
	assert_true(a->threshold_margin == 1.5);
	assert_int_equal(a->train_max_windows, 5000);
	assert_true(a->promote_margin == 0.1);
	assert_int_equal(a->epochs, 12);
	assert_int_equal(a->batch, 32);
	assert_true(a->learning_rate == 5e-4);
	assert_int_equal(a->patience, 0);
	assert_int_equal(a->train_timeout_ms, 90000);
	assert_true(a->validation == 0.25);
	assert_int_equal(a->hold, 4);
	assert_int_equal(a->no_data_after_ms, 120000);
	assert_true(a->seed == UINT64_MAX);
	assert_int_equal(a->n_sensors, 4);

	const struct cfg_sensor *v = cfg_find_sensor(c, "m.vib");
	assert_non_null(v);
	assert_int_equal(v->reg_kind, CFG_REG_IR);
	assert_int_equal(v->address, 7);
	assert_int_equal(v->type, MB_T_FLOAT64);
	assert_int_equal(v->order, MB_O_CDAB);
	assert_true(v->scale == 0.1);
	assert_true(v->offset == -5.0);
	assert_string_equal(v->unit, "mm/s");
	assert_string_equal(v->column, "VIB");
	assert_true(v->has_min && v->valid_min == -1.0);
	assert_true(v->has_max && v->valid_max == 1000.0);
	const struct cfg_sensor *run = cfg_find_sensor(c, "m.run");
	assert_int_equal(run->reg_kind, CFG_REG_COIL);
	assert_int_equal(run->type, MB_T_BOOL); /* the default for coils */
	assert_string_equal(cfg_find_sensor(c, "m.flow")->field, "process.flow");
	assert_string_equal(cfg_find_sensor(c, "m.speed")->field, "");
	assert_null(cfg_find_sensor(c, "speed"));
	cfg_free(c);

	/* Names of choices are case-insensitive, and printed canonically. */
	c = load_main(f, "[daemon]\nlog_level = WARNING\n[source p]\ntype = Modbus-TCP\n"
			 "address = h\n[asset a]\nmodel = MLP_AE\n[sensor a.x]\nsource = p\n"
			 "register = HR:4\ntype = Float32\norder = CDAB\n");
	if (!c)
		fail_msg("%s", f->errbuf);
	assert_int_equal(c->daemon.log_level, LOG_WARNING);
	assert_int_equal(c->sources[0].type, CFG_SRC_MODBUS_TCP);
	assert_int_equal(c->assets[0].model, CFG_MODEL_MLP_AE);
	assert_int_equal(c->sensors[0].reg_kind, CFG_REG_HR);
	assert_int_equal(c->sensors[0].type, MB_T_FLOAT32);
	assert_int_equal(c->sensors[0].order, MB_O_CDAB);
	char *text = print_to_string(c);
	assert_non_null(strstr(text, "\ntype = modbus-tcp\n"));
	assert_non_null(strstr(text, "\nregister = hr:4\ntype = float32\norder = cdab\n"));
	free(text);
	cfg_free(c);
}

/* Durations and sizes take units; a bare number other than 0 is refused. */
static void test_units(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char *text;
		int64_t ms;
	} durations[] = {
		{ "100ms", 100 }, { "1.5s", 1500 }, { "2m", 120000 }, { "3h", 10800000 },
		{ "1d", 86400000 }, { "0.5 h", 1800000 },
	};
	char conf[1024];

	for (size_t i = 0; i < sizeof(durations) / sizeof(durations[0]); i++) {
		/* [source plc1] re-opened: its keys add to the first header's. */
		snprintf(conf, sizeof(conf), BASE "[source plc1]\nbackoff_max = %s\n",
			 durations[i].text);
		struct pdm_config *c = load_main(f, conf);
		if (!c)
			fail_msg("%s: %s", durations[i].text, f->errbuf);
		assert_int_equal(c->sources[0].backoff_max_ms, durations[i].ms);
		cfg_free(c);
	}
}

static void test_units_sizes_and_errors(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char *text;
		int64_t bytes;
	} sizes[] = { { "65536", 65536 }, { "512K", 524288 }, { "64KiB", 65536 },
		      { "2MiB", 2097152 }, { "1 M", 1048576 } };
	char conf[1024];

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		snprintf(conf, sizeof(conf), BASE "[mqtt]\nmax_payload = %s\n", sizes[i].text);
		struct pdm_config *c = load_main(f, conf);
		if (!c)
			fail_msg("%s: %s", sizes[i].text, f->errbuf);
		assert_int_equal(c->mqtt.max_payload, sizes[i].bytes);
		cfg_free(c);
	}
	expect_error(f, BASE "[source plc1]\npoll = 100\n", 11,
		     "poll: '100' needs a unit (ms, s, m, h or d)");
	expect_error(f, BASE "[source plc1]\npoll = fast\n", 11,
		     "poll: expected a duration such as 500ms");
	expect_error(f, BASE "[source plc1]\npoll = -1s\n", 11, "poll: expected a duration");
	expect_error(f, BASE "[source plc1]\npoll = 2d\n", 11,
		     "poll: 2d is out of range (10ms .. 1d)");
	expect_error(f, BASE "[mqtt]\nmax_payload = 12 parsecs\n", 11,
		     "max_payload: expected a size such as 65536, 64KiB or 1MiB");
	expect_error(f, BASE "[mqtt]\nkeepalive = 5500ms\n", 11, "keepalive: must be whole seconds");
	expect_error(f, BASE "[asset a]\nretrain = 30s\n", 11,
		     "retrain: must be 0 (never) or at least 1m");
	expect_error(f, BASE "[asset a]\nrelearn_for = 5s\n", 11, "relearn_for:");
}

/* Bad values: each names file, line, key and what was expected. */
static void test_value_errors(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char *line;
		const char *msg;
	} cases[] = {
		{ "[daemon]\nlog_level = loud", "log_level: expected error, warning, info or debug, "
						"got 'loud'" },
		{ "[daemon]\nkeep_models = 0", "keep_models: 0 is out of range (1 .. 1000)" },
		{ "[daemon]\nkeep_models = 5x", "keep_models: expected a whole number, got '5x'" },
		{ "[daemon]\nhost =", "host: needs a value" },
		{ "[mqtt]\nuri = localhost:1883", "uri: expected tcp://HOST:PORT or ssl://HOST:PORT" },
		{ "[mqtt]\nqos = 3", "qos: 3 is out of range (0 .. 2)" },
		{ "[mqtt]\ntopic_prefix = pdm/#", "topic_prefix: expected a topic name without "
						  "wildcards" },
		{ "[mqtt]\ntopic_prefix = /pdm", "topic_prefix: expected a topic name" },
		{ "[storage]\nsynchronous = always", "synchronous: expected off, normal or full" },
		{ "[storage]\nmax_samples = 10", "max_samples: 10 is out of range (1000 .. " },
		{ "[source plc1]\nunit = 256", "unit: 256 is out of range (0 .. 255)" },
		{ "[source plc1]\nmax_registers = 126", "max_registers: 126 is out of range" },
		{ "[asset a]\nmodel = lstm", "model: expected conv_ae or mlp_ae, got 'lstm'" },
		{ "[asset a]\nwindow = 1", "window: 1 is out of range (2 .. 65536)" },
		{ "[asset a]\ncritical = 0.5", "critical: 0.5 is out of range (1 .. 1000)" },
		{ "[asset a]\nthreshold_quantile = 1.5", "threshold_quantile: 1.5 is out of range" },
		{ "[asset a]\nlearning_rate = abc", "learning_rate: expected a number, got 'abc'" },
		{ "[asset a]\nvalidation = 0.9", "validation: 0.9 is out of range (0.05 .. 0.5)" },
		{ "[asset a]\nseed = -1", "seed: expected a whole number 0 .. 18446744073709551615" },
		{ "[asset a]\nrun_when = speed => 5", "run_when: expected SENSOR OP NUMBER" },
		{ "[asset a]\nrun_when = speed > fast", "run_when: expected SENSOR OP NUMBER" },
		{ "[sensor a.temp]\ntype = float16", "type: expected int16, uint16, int32" },
		{ "[sensor a.temp]\norder = abdc", "order: expected abcd, cdab, badc or dcba" },
		{ "[sensor a.temp]\nscale = 0", "scale: 0 would make every value equal the offset" },
		{ "[sensor a.temp]\nvalid_min = low", "valid_min: expected a number" },
		{ "[sensor a.temp]\ncolumn =", "column: needs a value" },
	};
	char conf[1024];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(conf, sizeof(conf), BASE "%s\n", cases[i].line);
		expect_error(f, conf, 11, cases[i].msg);
	}
	/* Numbers are decimal: a leading zero is not octal. */
	struct pdm_config *c = load_main(f, BASE "[source plc1]\nunit = 010\n");
	assert_non_null(c);
	assert_int_equal(c->sources[0].unit, 10);
	cfg_free(c);
}

/* 0-based addresses; 1-based manual numbers get a hint with the right one. */
static void test_register_parsing(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char *text;
		int kind, address;
	} ok[] = {
		{ "hr:100", CFG_REG_HR, 100 }, { "ir:0", CFG_REG_IR, 0 },
		{ "coil:5", CFG_REG_COIL, 5 }, { "di:65535", CFG_REG_DI, 65535 },
		{ "hr:0100", CFG_REG_HR, 100 },
	};
	char conf[1024];

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		snprintf(conf, sizeof(conf),
			 "[source plc1]\ntype = modbus-tcp\naddress = h\n[asset a]\n"
			 "[sensor a.x]\nsource = plc1\nregister = %s\n", ok[i].text);
		struct pdm_config *c = load_main(f, conf);
		if (!c)
			fail_msg("%s: %s", ok[i].text, f->errbuf);
		assert_int_equal(c->sensors[0].reg_kind, ok[i].kind);
		assert_int_equal(c->sensors[0].address, ok[i].address);
		cfg_free(c);
	}
	static const struct {
		const char *text, *msg;
	} bad[] = {
		{ "40101", "register: '40101' looks like a 1-based manual number: write hr:100" },
		{ "30001", "register: '30001' looks like a 1-based manual number: write ir:0" },
		{ "400001", "register: '400001' looks like a 1-based manual number: write hr:0 (0-based)" },
		{ "10010", "register: '10010' looks like a 1-based manual number: write di:9" },
		{ "hr:65536", "register: address '65536' is not a number 0 .. 65535" },
		{ "hr:-1", "register: address '-1' is not a number" },
		{ "xr:5", "register: expected hr|ir|coil|di:ADDRESS with a 0-based address" },
		{ "100", "register: expected hr|ir|coil|di:ADDRESS" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(conf, sizeof(conf),
			 "[source plc1]\ntype = modbus-tcp\naddress = h\n[asset a]\n"
			 "[sensor a.x]\nsource = plc1\nregister = %s\n", bad[i].text);
		expect_error(f, conf, 7, bad[i].msg);
	}
	/* A 64-bit value needs four registers: 65533 is too close to the end. */
	expect_error(f,
		     "[source plc1]\ntype = modbus-tcp\naddress = h\n[asset a]\n[sensor a.x]\n"
		     "source = plc1\nregister = hr:65533\ntype = float64\n",
		     7, "register: float64 needs 4 registers from 65533, past the last address");
}

static void test_address_parsing(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char *text, *host;
		int port;
	} ok[] = {
		{ "plc.local:1502", "plc.local", 1502 }, { "10.0.0.5", "10.0.0.5", 502 },
		{ "[::1]:1502", "::1", 1502 },           { "[fe80::1]", "fe80::1", 502 },
	};
	char conf[1024];

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		snprintf(conf, sizeof(conf),
			 "[source plc1]\ntype = modbus-tcp\naddress = %s\n[asset a]\n"
			 "[sensor a.x]\nsource = plc1\nregister = hr:1\n", ok[i].text);
		struct pdm_config *c = load_main(f, conf);
		if (!c)
			fail_msg("%s: %s", ok[i].text, f->errbuf);
		assert_string_equal(c->sources[0].host, ok[i].host);
		assert_int_equal(c->sources[0].port, ok[i].port);
		cfg_free(c);
	}
	static const struct {
		const char *text, *msg;
	} bad[] = {
		{ "::1", "address: an IPv6 address goes in brackets: [::1]:502" },
		{ ":502", "address: expected HOST:PORT, HOST or [IPV6]:PORT" },
		{ "h:0", "address: port '0' is not a number 1 .. 65535" },
		{ "h:http", "address: port 'http' is not a number" },
		{ "[::1", "address: expected HOST:PORT" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(conf, sizeof(conf),
			 "[source plc1]\ntype = modbus-tcp\naddress = %s\n[asset a]\n"
			 "[sensor a.x]\nsource = plc1\nregister = hr:1\n", bad[i].text);
		expect_error(f, conf, 3, bad[i].msg);
	}
}

static void test_run_when_parsing(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char *text;
		enum cfg_op op;
		double v;
	} ok[] = {
		{ "speed > 100", CFG_OP_GT, 100 },   { "speed>=0.5", CFG_OP_GE, 0.5 },
		{ "speed < -3", CFG_OP_LT, -3 },     { "speed <= 1e3", CFG_OP_LE, 1000 },
		{ "speed == 1", CFG_OP_EQ, 1 },      { "a.speed != 0", CFG_OP_NE, 0 },
	};
	char conf[1024];

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		snprintf(conf, sizeof(conf), BASE "[sensor a.speed]\nsource = plc1\nregister = ir:0\n"
						  "[asset a]\nrun_when = %s\n", ok[i].text);
		struct pdm_config *c = load_main(f, conf);
		if (!c)
			fail_msg("%s: %s", ok[i].text, f->errbuf);
		const struct cfg_asset *a = &c->assets[0];
		assert_true(a->has_run_when);
		assert_int_equal(a->run_op, ok[i].op);
		assert_true(a->run_value == ok[i].v);
		assert_string_equal(c->sensors[a->run_sensor].name, "a.speed");
		cfg_free(c);
	}
	expect_error(f, BASE "[asset a]\nrun_when = rpm > 5\n", 11,
		     "run_when: 'rpm' is not a sensor of asset a (its sensors: temp)");
	expect_error(f, BASE "[asset b]\n[sensor b.speed]\nsource = plc1\nregister = hr:1\n"
			     "[asset a]\nrun_when = speed > 5\n",
		     15, "run_when: 'speed' is not a sensor of asset a");
}

/* A sensor's own hold (how long its value counts): a duration, resolved per
 * sensor into the asset's hold_ms, used for the poll check, printed back. */
static void test_sensor_hold(void **state)
{
	struct fixture *f = *state;
	/* poll 1s on a 100 ms grid: a hold the user set shorter than the poll
	 * is refused (line 10: its source); without one, the sensor's value
	 * counts through its polls (1.5 s: half again for their jitter) */
	expect_error(f, "[daemon]\nstate_dir = /tmp/pdm\n[source plc1]\ntype = modbus-tcp\n"
			"address = 127.0.0.1:1502\npoll = 1s\n[asset a]\nsample_interval = 100ms\n"
			"[sensor a.temp]\nsource = plc1\nregister = hr:100\nhold = 500ms\n",
		     10, "source: plc1 polls every 1s but the sensor's hold is only 500ms: every "
			 "window of asset a would have gaps (leave hold empty, or make it longer "
			 "than the poll)");
	struct pdm_config *c = load_main(f, "[daemon]\nstate_dir = /tmp/pdm\n[source plc1]\n"
					    "type = modbus-tcp\naddress = 127.0.0.1:1502\npoll = 1s\n"
					    "[asset a]\nsample_interval = 100ms\n"
					    "[sensor a.temp]\nsource = plc1\nregister = hr:100\n");
	if (!c)
		fail_msg("%s", f->errbuf);
	assert_int_equal(c->assets[0].hold_ms[0], 1500);
	assert_int_equal(c->assets[0].hold_max_ms[0], CFG_HOLD_LEARN_MAX_MS);
	char *p = print_to_string(c);
	assert_non_null(strstr(p, "# its value counts for 1500ms, half again its source's poll of "
				  "1s (no hold of its own)\n[sensor a.temp]\n"));
	free(p);
	cfg_free(c);
	c = load_main(f, "[daemon]\nstate_dir = /tmp/pdm\n[source plc1]\n"
			 "type = modbus-tcp\naddress = 127.0.0.1:1502\npoll = 1s\n"
			 "[asset a]\nsample_interval = 100ms\nhold = 20\n"
			 "[sensor a.temp]\nsource = plc1\nregister = hr:100\n"
			 "hold = 2s\n"
			 "[sensor a.flow]\nsource = plc1\nregister = hr:101\n");
	if (!c)
		fail_msg("%s", f->errbuf);
	const struct cfg_asset *a = &c->assets[0];
	assert_int_equal(a->hold_ms[0], 2000);
	assert_int_equal(a->hold_ms[1], 2000); /* 20 x 100 ms */
	/* a hold the user set is not learned; the asset's may be */
	assert_int_equal(a->hold_max_ms[0], 0);
	assert_int_equal(a->hold_max_ms[1], CFG_HOLD_LEARN_MAX_MS);
	p = print_to_string(c);
	assert_non_null(strstr(p, "[sensor a.temp]\nsource = plc1\n"));
	assert_non_null(strstr(p, "valid_max =\nhold = 2s\n"));
	assert_non_null(strstr(p, "valid_max =\nhold =\n"));
	free(p);
	cfg_free(c);
	expect_error(f, BASE "hold = 0s\n", 10, "hold: 0s is out of range (1ms .. 7d)");
	expect_error(f, BASE "hold = 8d\n", 10, "hold: 8d is out of range (1ms .. 7d)");
	expect_error(f, BASE "hold = soon\n", 10, "hold: expected a duration");

	/* stuck_after: empty learns the limit (-1), 0 never, a duration fixes it */
	c = load_main(f, BASE "stuck_after = 0\n[sensor a.b]\nsource = plc1\nregister = hr:2\n"
			      "stuck_after = 90s\n[sensor a.c]\nsource = plc1\nregister = hr:3\n");
	if (!c)
		fail_msg("%s", f->errbuf);
	a = &c->assets[0];
	assert_int_equal(a->n_sensors, 3);
	assert_int_equal(a->stuck_after_ms[0], 0);
	assert_int_equal(a->stuck_after_ms[1], 90000);
	assert_int_equal(a->stuck_after_ms[2], -1);
	p = print_to_string(c);
	assert_non_null(strstr(p, "\nstuck_after = 0\n"));
	assert_non_null(strstr(p, "\nstuck_after = 1m30s\n") || strstr(p, "\nstuck_after = 90s\n"));
	assert_non_null(strstr(p, "\nstuck_after =\n"));
	free(p);
	cfg_free(c);
	expect_error(f, BASE "stuck_after = 31d\n", 10, "stuck_after: 31d is out of range (0 .. 30d)");
	expect_error(f, BASE "stuck_after = -5s\n", 10, "stuck_after:");
	/* ten readings at least (BASE's grid is 1 s, its source polls every 1 s) */
	expect_error(f, BASE "stuck_after = 5s\n", 10,
		     "stuck_after: 5s is too short to tell a frozen value from one that did not "
		     "change between a few readings; 10s at least (0 turns the check off)");
}

/* `pdmd check` says whose clock an asset runs on, when not only this
 * host's: its devices' (all samples stamped by them), or both (mixed). */
static void test_clocks_printed(void **state)
{
	struct fixture *f = *state;
	struct pdm_config *c =
		load_main(f, BASE "[sensor a.flow]\nsource = gw\n[sensor a.amps]\nsource = raw\n"
				  "[sensor a.more]\nsource = plc1\nregister = hr:1\n" /* plc1 once */
				  "[source gw]\ntype = mqtt\ntopic = t/#\ntimestamp = ts\n"
				  "[source raw]\ntype = mqtt\ntopic = r/#\n"
				  "[asset b]\nlearn_for = 0\n[sensor b.flow]\nsource = gw\n"
				  "[sensor b.level]\nsource = gw\n"
				  /* a time of its own makes a value device-stamped */
				  "[asset c]\n[sensor c.t]\nsource = raw\ntimestamp = values[id=T].t\n"
				  "[asset d]\n[sensor d.t]\nsource = raw\ntimestamp = t\n"
				  "[sensor d.u]\nsource = raw\n");
	if (!c)
		fail_msg("%s", f->errbuf);
	char *p = print_to_string(c);
	assert_non_null(strstr(p, "# mixes samples stamped on receipt (plc1, raw) with samples "
				  "stamped by their devices (gw): its windows wait for the latter as "
				  "long as they lag, up to a minute\n[asset a]\n"));
	assert_non_null(strstr(p, "# runs on its devices' clock: every sample carries its "
				  "device's time (gw)\n[asset b]\n"));
	assert_non_null(strstr(p, "# first model after 4.4 h of running data (train_after 2000 "
				  "windows), alerts from it on (learn_for = 0)\n"));
	assert_non_null(strstr(p, "# runs on its devices' clock: every sample carries its "
				  "device's time (raw's own value times)\n[asset c]\n"));
	assert_non_null(strstr(p, "# mixes samples stamped on receipt (raw) with samples stamped "
				  "by their devices (raw's own value times): its windows wait"));
	assert_non_null(strstr(p, "\ntimestamp = values[id=T].t\n"));
	assert_true(cfg_sensor_device_time(c, cfg_find_sensor(c, "c.t")));
	assert_true(cfg_sensor_device_time(c, cfg_find_sensor(c, "a.flow")));
	assert_false(cfg_sensor_device_time(c, cfg_find_sensor(c, "d.u")));
	free(p);
	cfg_free(c);
}

/* When the first alerts can come, as `pdmd check` says it: learn_min 0
 * leaves the quiet rule alone, one past learn_for is the only bound. */
static void test_learning_printed(void **state)
{
	struct fixture *f = *state;
	struct pdm_config *c = load_main(f, BASE "[asset a]\nlearn_min = 0\n[asset b]\n"
						 "learn_min = 7d\n[sensor b.x]\nsource = plc1\n"
						 "register = hr:7\n");
	if (!c)
		fail_msg("%s", f->errbuf);
	assert_int_equal(c->assets[1].learn_min_ms, 7 * 86400000LL);
	char *p = print_to_string(c);
	struct pdm_config *c2;
	assert_non_null(strstr(p, "# first model after 4.4 h of running data (train_after 2000 "
				  "windows), then alerts once it knows the machine, at most 24.0 h "
				  "later (learn_for)\n# while learning, 3 windows in a row at 10 "
				  "times the threshold still raise an alert (learn_alert_over)\n"
				  "# training holds"));
	assert_non_null(strstr(p, "# first model after 4.4 h of running data (train_after 2000 "
				  "windows), alerts once its data spans 7.0 d (learn_min)\n"));
	/* learn_alert_over 0: nothing to say */
	c2 = load_main(f, BASE "[asset a]\nlearn_alert_over = 0\n");
	if (!c2)
		fail_msg("%s", f->errbuf);
	char *p2 = print_to_string(c2);
	assert_null(strstr(p2, "(learn_alert_over)"));
	free(p2);
	cfg_free(c2);
	/* printed as it loads back */
	assert_non_null(strstr(p, "\nlearn_min = 0ms\n"));
	assert_non_null(strstr(p, "\nlearn_min = 7d\n"));
	free(p);
	cfg_free(c);
}

/* raise_after / clear_after as a count of windows or as a time on the grid. */
static void test_alert_delays(void **state)
{
	struct fixture *f = *state;
	/* hop 8 x 1 s: 30 s is 3.75 windows, rounded up; 10m is exactly 75. */
	struct pdm_config *c = load_main(f, BASE "[asset a]\nhop = 8\nraise_after = 30s\n"
						 "clear_after = 10m\n");
	if (!c)
		fail_msg("%s", f->errbuf);
	const struct cfg_asset *a = &c->assets[0];
	assert_int_equal(a->raise_after, 4);
	assert_int_equal(a->clear_after, 75);
	assert_int_equal(a->raise_after_ms, 30000);
	assert_int_equal(a->clear_after_ms, 600000);
	char *p = print_to_string(c);
	/* Printed as written (it loads back the same), with the time either way. */
	assert_non_null(strstr(p, "\nraise_after = 30s\nclear_after = 10m\n"));
	assert_non_null(strstr(p, "# alerts raise after 32s over the threshold and clear after 10m "
				  "under it (4 and 75 windows of hop 8 x 1s)\n"));
	/* 2000 windows x 8 x 1 s */
	assert_non_null(strstr(p, "# first model after 4.4 h of running data (train_after 2000 "
				  "windows), then alerts once it knows the machine, not before its "
				  "data spans 24.0 h (learn_min), at most 24.0 h after the model "
				  "(learn_for)\n"));
	assert_non_null(strstr(p, "# while learning, 4 windows in a row at 10 times the "
				  "threshold still raise an alert (learn_alert_over)\n"));
	free(p);
	cfg_free(c);

	/* A count stays a count; a time shorter than one hop is one window. */
	c = load_main(f, BASE "[asset a]\nhop = 4\nraise_after = 5\nclear_after = 1ms\n");
	if (!c)
		fail_msg("%s", f->errbuf);
	assert_int_equal(c->assets[0].raise_after, 5);
	assert_int_equal(c->assets[0].raise_after_ms, 0);
	assert_int_equal(c->assets[0].clear_after, 1);
	p = print_to_string(c);
	assert_non_null(strstr(p, "\nraise_after = 5\nclear_after = 1ms\n"));
	assert_non_null(strstr(p, "# alerts raise after 20s over the threshold and clear after 4s "
				  "under it (5 and 1 windows of hop 4 x 1s)\n"));
	free(p);
	cfg_free(c);

	expect_error(f, BASE "[asset a]\nclear_after = 0\n", 11,
		     "clear_after: 0 is out of range (1 .. 100000)");
	expect_error(f, BASE "[asset a]\nraise_after = 100001\n", 11,
		     "raise_after: 100001 is out of range (1 .. 100000)");
	expect_error(f, BASE "[asset a]\nraise_after = 1.5\n", 11,
		     "raise_after: expected a number of windows or a duration (30s, 10m), got '1.5'");
	expect_error(f, BASE "[asset a]\nclear_after = 10 min\n", 11,
		     "clear_after: expected a number of windows or a duration (30s, 10m), got "
		     "'10 min'");
	expect_error(f, BASE "[asset a]\nclear_after = 0s\n", 11,
		     "clear_after: 0s is out of range (1ms .. 365d)");
	/* A hop or interval that does not parse is reported; the time is not
	 * resolved against it (it divided by zero: found by fuzz_cfg). */
	expect_error(f, BASE "[asset a]\nhop = x\nclear_after = 10m\n", 11,
		     "hop: expected a whole number, got 'x'");
	expect_error(f, BASE "[asset a]\nsample_interval = 0ms\nraise_after = 10s\n", 11,
		     "sample_interval: 0ms is out of range");
	/* 30 days of 100 ms hops is far more windows than a counter takes. */
	expect_error(f, BASE "[asset a]\nsample_interval = 100ms\nhop = 1\nclear_after = 30d\n",
		     13, "clear_after: 30d is 25920000 windows of hop 1 x 100ms (100ms); at most "
			 "100000");
	/* The default's 30 min on a grid that fine stops at the most windows a
	 * count takes (10 s here); written out, the same time is an error. */
	c = load_main(f, BASE "[asset a]\nsample_interval = 1ms\nhop = 1\n");
	if (!c)
		fail_msg("%s", f->errbuf);
	assert_int_equal(c->assets[0].clear_after, 100000);
	cfg_free(c);
	expect_error(f, BASE "[asset a]\nsample_interval = 1ms\nhop = 1\nclear_after = 30m\n",
		     13, "clear_after: 30m is 1800000 windows of hop 1 x 1ms (1ms); at most "
			 "100000");
}

/* Keys of the wrong source type, and keys that do not exist. */
static void test_key_applicability(void **state)
{
	struct fixture *f = *state;

	expect_error(f, BASE "[source plc1]\nbaud = 9600\n", 11,
		     "baud: only for modbus-rtu sources (this one is modbus-tcp)");
	expect_error(f, BASE "[source plc1]\ntopic = a/b\n", 11,
		     "topic: only for mqtt sources (this one is modbus-tcp)");
	expect_error(f, BASE "[source r]\ntype = modbus-rtu\ndevice = /dev/ttyS0\n"
			     "address = 1.2.3.4\n[sensor a.r]\nsource = r\nregister = hr:1\n",
		     13, "address: only for modbus-tcp sources (this one is modbus-rtu)");
	expect_error(f, BASE "[source q]\ntype = mqtt\ntopic = t\npoll = 1s\n"
			     "[sensor a.q]\nsource = q\n",
		     13, "poll: only for Modbus (modbus-tcp and modbus-rtu) sources");
	expect_error(f, BASE "field = temp\n", 10,
		     "field: only for mqtt sources (its source is modbus-tcp)");
	expect_error(f, BASE "[source q]\ntype = mqtt\ntopic = t\n[sensor a.q]\nsource = q\n"
			     "register = hr:5\norder = cdab\n",
		     15, "register: only for Modbus (modbus-tcp and modbus-rtu) sources (its source "
			 "is mqtt)");
	expect_msg(f, "pdmd.conf", 16, "order: only for Modbus");
	expect_error(f, BASE "baud = 9600\n", 10,
		     "baud: unknown key in [sensor ASSET.NAME] (it is a key of [source NAME])");
	expect_error(f, BASE "[source plc1]\nadress = h\n", 11,
		     "adress: unknown key in [source NAME]; did you mean address?");
	expect_error(f, BASE "[asset a]\nretention = 1d\n", 11,
		     "retention: unknown key in [asset NAME] (it is a key of [storage])");
	expect_error(f, BASE "[asset a]\nwindow_size = 8\n", 11,
		     "window_size: unknown key in [asset NAME]; did you mean window?");
	expect_error(f, BASE "[asset a]\nfrobnicate = 8\n", 11,
		     "frobnicate: unknown key in [asset NAME] (see docs/configuration.md)");
	/* Required keys per type, reported at the section header. */
	expect_error(f, BASE "[source r]\ntype = modbus-rtu\n", 10, "device: missing in [source r]");
	expect_error(f, BASE "[source q]\ntype = mqtt\n", 10, "topic: missing in [source q]");
	expect_error(f, BASE "[source x]\naddress = h\n", 10, "type: missing in [source x]");
	expect_error(f, BASE "[source x]\ntype = opcua\n", 11,
		     "type: expected modbus-tcp, modbus-rtu or mqtt, got 'opcua'");
	expect_error(f, "[source plc1]\ntype = modbus-tcp\n[asset a]\n[sensor a.x]\nsource = plc1\n",
		     4, "register: missing in [sensor a.x]");
	expect_error(f, "[source plc1]\ntype = modbus-tcp\n", 1, "address: missing in [source plc1]");
	expect_error(f, BASE "[source r]\ntype = modbus-rtu\ndevice = ttyUSB0\n", 12,
		     "device: expected an absolute path such as /dev/ttyUSB0");
	expect_error(f, BASE "[source r]\ntype = modbus-rtu\ndevice = /dev/x\nbaud = 12345\n", 13,
		     "baud: 12345 is not a serial line rate");
	expect_error(f, BASE "[source r]\ntype = modbus-rtu\ndevice = /dev/x\nparity = X\n", 13,
		     "parity: expected N, E or O");
	expect_error(f, BASE "[source r]\ntype = modbus-rtu\ndevice = /dev/x\nunit = 0\n", 13,
		     "unit: 0 is not a Modbus RTU device id (1 .. 247)");
	expect_error(f, BASE "[source q]\ntype = mqtt\ntopic = a/#/b\n", 12,
		     "topic: '#' must be the whole last topic level");
	expect_error(f, BASE "[source q]\ntype = mqtt\ntopic = a/b+\n", 12,
		     "topic: '+' must fill a whole topic level");
	/* Found by fuzz_cfg: a relative state_dir made storage.file relative,
	 * and the printed setup then loaded with the directory in it twice. */
	expect_error(f, "[daemon]\nstate_dir = var/pdm\n", 2,
		     "state_dir: expected an absolute path such as /var/lib/pdmd, got 'var/pdm'");
	expect_error(f, "[daemon]\nstate_dir = $/var/lib/pdmd\n", 2,
		     "state_dir: expected an absolute path");
}

/* References between sections, and the rules that span keys. */
static void test_cross_references(void **state)
{
	struct fixture *f = *state;

	expect_error(f, BASE "[sensor a.x]\nsource = plc2\nregister = hr:1\n", 11,
		     "source: no [source plc2]; did you mean plc1?");
	expect_error(f, BASE "[sensor a.x]\nsource = zzz\nregister = hr:1\n", 11,
		     "source: no [source zzz] is defined");
	expect_error(f, BASE "[sensor b.x]\nsource = plc1\nregister = hr:1\n", 10,
		     "[sensor b.x]: no [asset b] is defined (a sensor is named ASSET.NAME)");
	expect_error(f, BASE "[asset pump]\n[sensor pump.y]\nsource = plc1\nregister = hr:1\n"
			     "[sensor pmp.x]\nsource = plc1\nregister = hr:1\n",
		     14, "[sensor pmp.x]: no [asset pmp] is defined; did you mean pump?");
	expect_error(f, BASE "[asset empty]\n", 10,
		     "[asset empty]: has no sensors (add [sensor empty.NAME] sections)");
	expect_error(f, BASE "[asset a]\nwindow = 16\nhop = 17\n", 12,
		     "hop: 17 is more than window = 16");
	expect_error(f, BASE "[asset a]\nwindow = 30\n", 11,
		     "window: conv_ae needs a window of at least 8 that is divisible by 4 (e.g. 32)");
	expect_error(f, BASE "[asset a]\nwindow = 4\nhop = 2\n", 11,
		     "window: conv_ae needs a window of at least 8");
	expect_error(f, BASE "[asset a]\ntrain_max_windows = 100\n", 11,
		     "train_max_windows: 100 is less than train_after = 2000");
	expect_error(f, BASE "[storage]\nretention = 1d\n", 6,
		     "train_history: 7d is longer than [storage] retention = 1d");
	expect_error(f, BASE "[asset a]\ntrain_history = 1h\n", 6,
		     "train_after: 2000 windows (hop 8, window 64) need 16056s of data, more than "
		     "train_history = 1h");
	expect_error(f, BASE "[asset a]\nno_data_after = 1s\nsample_interval = 2s\n", 11,
		     "no_data_after: shorter than sample_interval");
	expect_error(f, BASE "[sensor a.y]\nsource = plc1\nregister = hr:2\ncolumn = temp\n", 13,
		     "column: 'temp' is also the column of a.temp");
	expect_error(f, BASE "[sensor a.b]\nsource = plc1\nregister = coil:2\ntype = float32\n", 13,
		     "type: float32 of a coil is one bit: type = bool");
	expect_error(f, BASE "valid_min = 5\nvalid_max = 5\n", 11,
		     "valid_max: must be above valid_min");
	/* RTU sources on one device are one bus. */
	expect_error(f, BASE "[source r1]\ntype = modbus-rtu\ndevice = /dev/ttyS1\nunit = 1\n"
			     "[source r2]\ntype = modbus-rtu\ndevice = /dev/ttyS1\nunit = 2\n"
			     "baud = 9600\nparity = O\n"
			     "[sensor a.r1]\nsource = r1\nregister = hr:1\n"
			     "[sensor a.r2]\nsource = r2\nregister = hr:1\n",
		     18, "baud: 9600 differs from source r1 (19200) on the same bus /dev/ttyS1");
	expect_msg(f, "pdmd.conf", 19, "parity: O differs from source r1 (E) on the same bus");
	/* MQTT: value payloads carry one number and have no fields. */
	expect_error(f, BASE "[source v]\ntype = mqtt\ntopic = t\nformat = value\ntimestamp = ts\n"
			     "[sensor a.v]\nsource = v\n",
		     14, "timestamp: only for format = json");
	expect_error(f, BASE "[source v]\ntype = mqtt\ntopic = t\nformat = value\n"
			     "[sensor a.v]\nsource = v\nfield = x\n",
		     16, "field: source v has format = value (the payload is the number)");
	expect_error(f, BASE "[source v]\ntype = mqtt\ntopic = t\nformat = value\n"
			     "[sensor a.v]\nsource = v\n[sensor a.w]\nsource = v\n",
		     13, "format: value payloads are one number, but 2 sensors read from source v");
	expect_error(f, BASE "[source j]\ntype = mqtt\ntopic = t\n[sensor a.j]\nsource = j\n"
			     "field = a..b\n",
		     15, "field: 'a..b' is not a dot path");
	expect_error(f, BASE "[source j]\ntype = mqtt\ntopic = t\n[sensor a.j]\nsource = j\n"
			     "quality_field = values[id=x].q.\n",
		     15, "quality_field: 'values[id=x].q.' is not a dot path such as status.ok");
	expect_error(f, BASE "[source v]\ntype = mqtt\ntopic = t\nformat = value\n"
			     "[sensor a.v]\nsource = v\nquality_field = q\n",
		     16, "quality_field: source v has format = value");
	expect_error(f, BASE "quality_field = q\n", 10,
		     "quality_field: only for mqtt sources (its source is modbus-tcp)");
	expect_error(f, BASE "[source j]\ntype = mqtt\ntopic = t\n[sensor a.j]\nsource = j\n"
			     "quality_good = opc-ua\n",
		     15, "quality_good: without quality_field there is no flag to read");
	expect_error(f, BASE "[source j]\ntype = mqtt\ntopic = t\n[sensor a.j]\nsource = j\n"
			     "quality_field = q\nquality_good = 192,\n",
		     16, "quality_good: '192,' is neither opc-ua, opc-da nor a list of good values");
	expect_error(f, BASE "quality_good = 192\n", 10,
		     "quality_good: only for mqtt sources (its source is modbus-tcp)");
	expect_error(f, BASE "[source v]\ntype = mqtt\ntopic = t\nformat = value\n"
			     "[sensor a.v]\nsource = v\ntimestamp = t\n",
		     16, "timestamp: source v has format = value");
	expect_error(f, BASE "[source j]\ntype = mqtt\ntopic = t\n[sensor a.j]\nsource = j\n"
			     "timestamp = values[id=x]..t\n",
		     15, "timestamp: 'values[id=x]..t' is not a dot path such as time");
	expect_error(f, BASE "timestamp = t\n", 10,
		     "timestamp: only for mqtt sources (its source is modbus-tcp)");
	/* bit: of an integer register value */
	expect_error(f, BASE "bit = 64\n", 10, "bit: expected a bit number 0 .. 63");
	expect_error(f, BASE "bit = -1\n", 10, "bit: expected a bit number 0 .. 63");
	expect_error(f, BASE "bit = 3x\n", 10, "bit: expected a bit number 0 .. 63");
	expect_error(f, BASE "bit = 0x3\n", 10, "bit: expected a bit number 0 .. 63");
	expect_error(f, BASE "type = float32\nbit = 3\n", 11,
		     "bit: a bit of a float32 register: bits are of integer registers");
	expect_error(f, BASE "bit = 16\n", 10, "bit: 16 is past the 16 bits of a uint16");
	expect_error(f, BASE "[sensor a.c]\nsource = plc1\nregister = coil:3\nbit = 0\n", 13,
		     "bit: a bit of a bool coil");
	expect_error(f, BASE "[source j]\ntype = mqtt\ntopic = t\n[sensor a.j]\nsource = j\n"
			     "bit = 1\n",
		     15, "bit: only for Modbus (modbus-tcp and modbus-rtu) sources (its source is mqtt)");
	expect_error(f, BASE "[source j]\ntype = mqtt\ntopic = t\n[sensor a.j]\nsource = j\n"
			     "field = values[id].v\n",
		     15, "field: 'values[id].v' is not a dot path such as motor.current (or "
			 "values[id=Line1.Temp].v to pick from a list of tags)");
	/* [mqtt] credentials and TLS files. */
	expect_error(f, BASE "[mqtt]\npassword_file = /etc/hostname\n", 11,
		     "password_file: needs username");
	expect_error(f, BASE "[mqtt]\nuri = ssl://b:8883\ncert_file = /etc/hostname\n", 12,
		     "cert_file: cert_file and key_file go together");
	expect_error(f, BASE "[mqtt]\nca_file = /etc/hostname\n", 11,
		     "ca_file: set, but uri tcp://127.0.0.1:1883 is not TLS");
	expect_error(f, BASE "[mqtt]\nuri = ssl://b:8883\nca_file = /nonexistent/ca.pem\n", 12,
		     "ca_file: cannot read /nonexistent/ca.pem: No such file or directory");
}

/* The window rule comes from the model library when the daemon sets it. */
static int only_16(int kind, int C, int W, char *err, size_t len)
{
	if (W != 16) {
		snprintf(err, len, "kind %d with %d channels wants W = 16, not %d", kind, C, W);
		return -22;
	}
	return 0;
}

static void test_check_dims_hook(void **state)
{
	struct fixture *f = *state;

	cfg_set_check_dims(only_16);
	expect_error(f, BASE "[asset a]\nwindow = 32\n", 11,
		     "window: kind 2 with 1 channels wants W = 16, not 32");
	struct pdm_config *c = load_main(f, BASE "[asset a]\nwindow = 16\n");
	assert_non_null(c);
	cfg_free(c);
	cfg_set_check_dims(NULL);
	/* Back to the built-in rule: mlp_ae takes any window of 2 or more. */
	c = load_main(f, BASE "[asset a]\nmodel = mlp_ae\nwindow = 3\nhop = 1\n");
	assert_non_null(c);
	cfg_free(c);
}

/* Lines the INI syntax does not allow, all reported; indentation is fine. */
static void test_syntax_errors(void **state)
{
	struct fixture *f = *state;
	char longline[400];

	memset(longline, 'x', sizeof(longline));
	memcpy(longline, "unit = ", 7);
	longline[sizeof(longline) - 1] = '\0';
	char conf[2048];
	snprintf(conf, sizeof(conf),
		 "state_dir = /tmp\n"   /* 1 */
		 "[daemon\n"            /* 2 */
		 "log_level = debug\n"  /* 3: ignored, its header is broken */
		 "[mqtt]\n"             /* 4 */
		 "just some words\n"    /* 5 */
		 "= 5\n"                /* 6 */
		 "[daemon x]\n"         /* 7 */
		 "[source]\n"           /* 8 */
		 "[sensor nodot]\n"     /* 9 */
		 "[asset a b]\n"        /* 10 */
		 "[mqtt] trailing\n"    /* 11 */
		 "[sensors a.x]\n"      /* 12 */
		 "[sensor a.temp]\n"    /* 13 */
		 "%s\n"                 /* 14 */
		 "unit =; degC\n",      /* 15 */
		 longline);
	test_write_file(f->dir, "pdmd.conf", conf);
	test_write_file(f->dir, "conf.d/a.conf", BASE);
	assert_null(load(f));
	expect_msg(f, "pdmd.conf", 1, "state_dir: outside any section");
	expect_msg(f, "pdmd.conf", 2, "[daemon: syntax error: section header without ']'");
	expect_msg(f, "pdmd.conf", 5, "syntax error: expected 'key = value' or '[section]', got "
				     "'just some words'");
	expect_msg(f, "pdmd.conf", 6, "syntax error: key name missing before '='");
	expect_msg(f, "pdmd.conf", 7, "[daemon x]: [daemon] takes no name");
	expect_msg(f, "pdmd.conf", 8, "[source]: needs a name: [source NAME]");
	expect_msg(f, "pdmd.conf", 9, "[sensor nodot]: a sensor is named ASSET.NAME");
	expect_msg(f, "pdmd.conf", 10, "[asset a b]: a name has letters, digits, '-' and '_' only");
	expect_msg(f, "pdmd.conf", 11, "[mqtt] trailing: syntax error: text after the section header");
	expect_msg(f, "pdmd.conf", 12, "[sensors a.x]: unknown section (expected [daemon], [mqtt], "
				      "[storage], [source NAME], [asset NAME] or [sensor "
				      "ASSET.NAME]); did you mean [sensor ASSET.NAME]?");
	expect_msg(f, "pdmd.conf", 14, "line too long (at most 198 characters)");
	expect_msg(f, "pdmd.conf", 15, "unit: the value starts with ';' (a comment needs a space "
				      "before it: \"unit = ; note\" sets nothing)");
	assert_null(strstr(f->errbuf, "log_level"));

	/* Indented keys, comments, inline comments, CRLF and a BOM are fine. */
	char dropin[512];
	snprintf(dropin, sizeof(dropin), "%s/conf.d/a.conf", f->dir);
	unlink(dropin);
	struct pdm_config *c = load_main(f, "\xEF\xBB\xBF# comment\r\n"
					    "[daemon]\r\n"
					    "    state_dir = /tmp/y   ; inline comment\r\n"
					    "\tlog_level = warning\n"
					    "; another comment\n"
					    "[source plc1]\n type = modbus-tcp\n address = h:1\n"
					    "[asset a]\n[sensor a.temp]\nsource = plc1\n"
					    "register = hr:1\n");
	if (!c)
		fail_msg("%s", f->errbuf);
	assert_string_equal(c->daemon.state_dir, "/tmp/y");
	assert_int_equal(c->daemon.log_level, LOG_WARNING);
	cfg_free(c);
}

/* conf.d: name order, only *.conf, sections re-opened, duplicates named. */
static void test_dropins(void **state)
{
	struct fixture *f = *state;

	test_write_file(f->dir, "pdmd.conf", "[daemon]\nstate_dir = /tmp/x\n[mqtt]\nqos = 0\n");
	test_write_file(f->dir, "conf.d/20-b.conf", "[asset b]\n[sensor b.t]\nsource = s\n"
						   "register = hr:1\n");
	test_write_file(f->dir, "conf.d/10-a.conf", "[source s]\ntype = modbus-tcp\naddress = h\n"
						   "[asset a]\n[sensor a.t]\nsource = s\n"
						   "register = hr:2\n");
	test_write_file(f->dir, "conf.d/30-mqtt.conf", "[mqtt]\nusername = pdm\n");
	test_write_file(f->dir, "conf.d/README", "not a config file [\n");
	test_write_file(f->dir, "conf.d/.hidden.conf", "garbage\n");
	test_write_file(f->dir, "conf.d/40-old.conf~", "garbage\n");
	test_write_file(f->dir, "conf.d/50-x.conf.dpkg-old", "garbage\n");
	struct pdm_config *c = load(f);
	if (!c)
		fail_msg("%s", f->errbuf);
	assert_int_equal(c->n_assets, 2);
	assert_string_equal(c->assets[0].name, "a");
	assert_string_equal(c->assets[1].name, "b");
	assert_string_equal(c->sensors[0].name, "a.t");
	assert_string_equal(c->sensors[1].name, "b.t");
	assert_int_equal(c->mqtt.qos, 0);
	assert_string_equal(c->mqtt.username, "pdm");
	assert_int_equal(c->n_files, 4);
	assert_non_null(strstr(c->assets[0].where.file, "conf.d/10-a.conf"));
	assert_int_equal(c->assets[0].where.line, 4);
	assert_non_null(strstr(c->assets[1].where.file, "conf.d/20-b.conf"));
	cfg_free(c);

	/* A key set again in a later file names both places. */
	test_write_file(f->dir, "conf.d/31-mqtt.conf", "\n[mqtt]\nusername = other\n");
	assert_null(load(f));
	char want[1024];
	snprintf(want, sizeof(want), "username: set twice in [mqtt] (first at %s/conf.d/30-mqtt.conf:2)",
		 f->dir);
	expect_msg(f, "conf.d/31-mqtt.conf", 3, want);
}

/* Every error is reported, sorted by file and line, in one run. */
static void test_all_errors_sorted(void **state)
{
	struct fixture *f = *state;

	test_write_file(f->dir, "conf.d/b.conf", "[asset b]\nhop = 0\n");
	test_write_file(f->dir, "conf.d/a.conf", "[asset a]\nwindow = 1\n");
	assert_null(load_main(f, "[daemon]\nkeep_models = 0\n[mqtt]\nqos = 9\n"));
	char *p1 = strstr(f->errbuf, "pdmd.conf:2: keep_models");
	char *p2 = strstr(f->errbuf, "pdmd.conf:4: qos");
	char *p3 = strstr(f->errbuf, "a.conf:1: [asset a]: has no sensors");
	char *p4 = strstr(f->errbuf, "a.conf:2: window: 1 is out of range");
	char *p5 = strstr(f->errbuf, "b.conf:2: hop: 0 is out of range");
	assert_non_null(p1);
	assert_non_null(p2);
	assert_non_null(p3);
	assert_non_null(p4);
	assert_non_null(p5);
	assert_true(p1 < p2 && p2 < p3 && p3 < p4 && p4 < p5);
}

static void test_missing_main_file(void **state)
{
	struct fixture *f = *state;

	assert_null(load(f));
	assert_non_null(strstr(f->errbuf, "pdmd.conf: cannot open: No such file or directory"));
}

/* A valid config whose source feeds nothing still loads, with a warning. */
static void test_warnings(void **state)
{
	struct fixture *f = *state;

	struct pdm_config *c = load_main(f, BASE "[source spare]\ntype = mqtt\ntopic = x\n");
	assert_non_null(c);
	expect_msg(f, "pdmd.conf", 10, "warning: [source spare]: no sensor reads from it");
	cfg_free(c);
	c = load_main(f, "[daemon]\nstate_dir = /tmp\n");
	assert_non_null(c);
	assert_non_null(strstr(f->errbuf, "warning: no [asset NAME] is configured"));
	cfg_free(c);
}

/* Appends n sensors ASSET.PREFIX0 .. of SOURCE (Modbus: hr:0 ..). */
static void add_sensors(char *buf, size_t len, const char *asset, const char *prefix,
			const char *source, int n, bool modbus)
{
	for (int i = 0; i < n; i++) {
		size_t used = strlen(buf);
		int w = snprintf(buf + used, len - used, "[sensor %s.%s%d]\nsource = %s\n", asset,
				 prefix, i, source);
		assert_true(w > 0 && (size_t)w < len - used);
		if (modbus) {
			used += (size_t)w;
			w = snprintf(buf + used, len - used, "register = hr:%d\n", i);
			assert_true(w > 0 && (size_t)w < len - used);
		}
	}
}

static int count_of(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
		n++;
	return n;
}

/* 100 sensors polled at 10 Hz: the default ring of 10,000,000 rows holds
 * 2.8 h, far less than the default 7 d of train_history and retention.
 * The config still loads; each asset is warned at its train_history (or,
 * for a default, where the ring is sized), retention once. */
#define RING_HEAD                                      \
	"[daemon]\n"                 /* 1 */             \
	"state_dir = /tmp/pdm\n"     /* 2 */             \
	"[source plc1]\n"            /* 3 */             \
	"type = modbus-tcp\n"        /* 4 */             \
	"address = 127.0.0.1:1502\n" /* 5 */             \
	"poll = 100ms\n"             /* 6 */             \
	"[asset a]\n"                /* 7 */             \
	"train_history = 7d\n"       /* 8 */             \
	"[asset b]\n"                /* 9 */

static void test_ring_too_small_warns(void **state)
{
	struct fixture *f = *state;
	char conf[16384] = RING_HEAD;
	char want[1024];

	add_sensors(conf, sizeof(conf), "a", "s", "plc1", 50, true);
	add_sensors(conf, sizeof(conf), "b", "s", "plc1", 50, true);
	struct pdm_config *c = load_main(f, conf);
	assert_non_null(c);
	cfg_free(c);
	const char *ring = "[storage] max_samples = 10000000 keeps about 2.8 h of the 100 polled "
			   "sensors' samples (1000 rows/s)";
	snprintf(want, sizeof(want),
		 "warning: train_history: 7d reaches back further than the sample ring holds: %s; "
		 "training will use only that (raise max_samples to about 610000000, some 14 GiB "
		 "on disk, or shorten train_history)", ring);
	expect_msg(f, "pdmd.conf", 8, want);
	/* b's train_history is the default and there is no [storage]: its header */
	snprintf(want, sizeof(want),
		 "warning: train_history: 7d (the default) of [asset b] reaches back further than "
		 "the sample ring holds: %s;", ring);
	expect_msg(f, "pdmd.conf", 9, want);
	snprintf(want, sizeof(want),
		 "%s/pdmd.conf: warning: retention: 7d (the default) is longer than the sample "
		 "ring holds: %s; the cap evicts samples before they are 7d old (raise "
		 "max_samples to about 610000000, some 14 GiB on disk, or shorten retention)\n",
		 f->dir, ring);
	if (!strstr(f->errbuf, want))
		fail_msg("expected\n  %s\nin output:\n%s", want, f->errbuf);
	assert_int_equal(count_of(f->errbuf, "retention:"), 1);
	assert_int_equal(count_of(f->errbuf, "warning:"), 3);

	/* Default train_history and retention: both point at max_samples. */
	c = load_main(f, "[daemon]\nstate_dir = /tmp/pdm\n"
			 "[storage]\n"              /* 3 */
			 "max_samples = 100000\n"   /* 4 */
			 "[source plc1]\ntype = modbus-tcp\naddress = 127.0.0.1:1502\n"
			 "[asset a]\n"
			 "[sensor a.x]\nsource = plc1\nregister = hr:0\n"
			 "[sensor a.y]\nsource = plc1\nregister = hr:1\n");
	assert_non_null(c);
	cfg_free(c);
	expect_msg(f, "pdmd.conf", 4,
		   "warning: train_history: 7d (the default) of [asset a] reaches back further "
		   "than the sample ring holds: [storage] max_samples = 100000 keeps about 13.9 h "
		   "of the 2 polled sensors' samples (2 rows/s); training will use only that "
		   "(raise max_samples to about 1300000, some 30 MiB on disk, or shorten "
		   "train_history)");
	expect_msg(f, "pdmd.conf", 4, "warning: retention: 7d (the default) is longer than");

	/* A drop-in that re-opens [storage] is where its keys are. */
	test_write_file(f->dir, "conf.d/90-ring.conf", "[storage]\nretention = 3d\n");
	c = load_main(f, "[daemon]\nstate_dir = /tmp/pdm\n"
			 "[storage]\nmax_samples = 100000\n"
			 "[source plc1]\ntype = modbus-tcp\naddress = 127.0.0.1:1502\n"
			 "[asset a]\ntrain_history = 2d\n" /* 9 */
			 "[sensor a.x]\nsource = plc1\nregister = hr:0\n");
	assert_non_null(c);
	cfg_free(c);
	expect_msg(f, "conf.d/90-ring.conf", 2, "warning: retention: 3d is longer than the sample "
		   "ring holds: [storage] max_samples = 100000 keeps about 27.8 h of the polled "
		   "sensor's samples (1 rows/s)");
	expect_msg(f, "pdmd.conf", 9, "warning: train_history: 2d reaches back further");
}

/* The same plant with a ring sized for a week: not a word. */
static void test_ring_big_enough(void **state)
{
	struct fixture *f = *state;
	char conf[16384] = RING_HEAD "[storage]\nmax_samples = 700000000\n";

	add_sensors(conf, sizeof(conf), "a", "s", "plc1", 50, true);
	add_sensors(conf, sizeof(conf), "b", "s", "plc1", 50, true);
	struct pdm_config *c = load_main(f, conf);
	assert_non_null(c);
	assert_string_equal(f->errbuf, "");
	cfg_free(c);
}

/* MQTT sensors have no known rate: with only those there is no estimate
 * (and no division by zero); beside polled ones they are left out of it,
 * and the message says so. */
static void test_ring_mqtt_not_counted(void **state)
{
	struct fixture *f = *state;
	char conf[8192] = "[daemon]\nstate_dir = /tmp/pdm\n"
			  "[storage]\nmax_samples = 1000\n"
			  "[source feed]\ntype = mqtt\ntopic = plant/x\n"
			  "[asset a]\n";

	add_sensors(conf, sizeof(conf), "a", "m", "feed", 3, false);
	struct pdm_config *c = load_main(f, conf);
	assert_non_null(c);
	assert_string_equal(f->errbuf, "");
	cfg_free(c);

	strcat(conf, "[source plc1]\ntype = modbus-tcp\naddress = 127.0.0.1:1502\npoll = 10ms\n");
	add_sensors(conf, sizeof(conf), "a", "p", "plc1", 1, true);
	c = load_main(f, conf);
	assert_non_null(c);
	cfg_free(c);
	expect_msg(f, "pdmd.conf", 4,
		   "warning: train_history: 7d (the default) of [asset a] reaches back further "
		   "than the sample ring holds: [storage] max_samples = 1000 keeps about 10 s of "
		   "the polled sensor's samples (100 rows/s; 3 MQTT sensors not counted); training "
		   "will use only that (raise max_samples to about 61000000, some 1.4 GiB on disk, "
		   "or shorten train_history)");
}

static char *strip_comments(const char *text)
{
	char *out = calloc(1, strlen(text) + 1);
	const char *p = text;
	char *o = out;
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t l = nl ? (size_t)(nl - p + 1) : strlen(p);
		if (p[0] != '#') {
			memcpy(o, p, l);
			o += l;
		}
		p += l;
	}
	return out;
}

/*
 * Found by fuzz_cfg: resolved values that do not fit a configuration line
 * loaded, but their printout (pdmd check) did not load back. The reader takes
 * lines of up to 198 characters; these inputs stay under it.
 */
static void test_print_line_limit(void **state)
{
	struct fixture *f = *state;
	char conf[1024], name[200];

	/* "state_dir = " + 184 = 196 characters, but the storage file line
	 * "file = " + 184 + "/samples.db" is 202. */
	memset(name, 'd', 183);
	name[183] = '\0';
	snprintf(conf, sizeof(conf), "[daemon]\nstate_dir = /%s\n", name);
	assert_null(load_main(f, conf));
	if (!strstr(f->errbuf, ": file: in [storage] resolves to '/ddd") ||
	    !strstr(f->errbuf, "a line of 202 characters in the printed setup; at most 198"))
		fail_msg("unexpected messages:\n%s", f->errbuf);

	/* A 180-character state_dir still fits: the file line is then 198 characters. */
	name[179] = '\0';
	snprintf(conf, sizeof(conf), "[daemon]\nstate_dir = /%s\n", name);
	struct pdm_config *c = load_main(f, conf);
	if (!c)
		fail_msg("%s", f->errbuf);
	assert_int_equal(strlen("file = ") + strlen(c->storage.file), 198);
	cfg_free(c);
}

/* cfg_print's output loads back into the same configuration. */
static void test_print_round_trip(void **state)
{
	struct fixture *f = *state;
	char dir2[256];

	test_write_file(f->dir, "pdmd.conf",
			"[daemon]\nstate_dir = /tmp/rt\nhost = edge-1\n[mqtt]\nmax_payload = 100000\n"
			"keepalive = 90s\n[storage]\nretention = 36h\nfile = rel.db\n");
	test_write_file(f->dir, "conf.d/10.conf",
			"[source tcp]\ntype = modbus-tcp\naddress = [::1]:1502\npoll = 1.5s\n"
			"[source r1]\ntype = modbus-rtu\ndevice = /dev/ttyS1\nunit = 3\n"
			"[source r2]\ntype = modbus-rtu\ndevice = /dev/ttyS1\nunit = 4\n"
			"[source js]\ntype = mqtt\ntopic = p/+/t\nuri = mqtt://x:9001\n"
			"[source val]\ntype = mqtt\ntopic = p/v\nformat = value\n"
			"[asset b]\nmodel = mlp_ae\nwindow = 10\nhop = 3\ntrain_history = 1d\n"
			"train_after = 50\nrun_when = b.rpm >= 0.1\ncritical = 1.75\n"
			"learning_rate = 0.0003\nretrain = 0\n");
	/* Sensors of two assets interleaved: printed grouped by asset. */
	test_write_file(f->dir, "conf.d/20.conf",
			"[sensor b.rpm]\nsource = r1\nregister = ir:4\ntype = int32\norder = dcba\n"
			"[asset a]\nsample_interval = 2s\ntrain_history = 1d\n"
			"[sensor a.t]\nsource = tcp\nregister = hr:40\nscale = 0.01\noffset = -273.15\n"
			"valid_min = -40\n"
			"[sensor b.flag]\nsource = r2\nregister = di:9\n"
			"[sensor a.j]\nsource = js\nfield = x.y\nvalid_max = 1e300\n"
			"[sensor b.v]\nsource = val\ncolumn = V\nunit = bar\n");
	struct pdm_config *c1 = load(f);
	if (!c1)
		fail_msg("%s", f->errbuf);
	char *p1 = print_to_string(c1);
	/* What the operator must have spare while an asset trains. */
	assert_non_null(strstr(p1, "# training holds up to 2.3 MiB of windows (train_max_windows "
				   "20000 x 3 sensors x window 10 x 4 bytes)\n[asset b]\n"));

	assert_int_equal(test_mkdtemp(dir2, sizeof(dir2)), 0);
	test_write_file(dir2, "pdmd.conf", p1);
	rewind(f->err);
	struct pdm_config *c2 = cfg_load(dir2, f->err);
	fflush(f->err);
	if (!c2)
		fail_msg("%s\n---\n%s", f->errbuf, p1);
	char *p2 = print_to_string(c2);
	char *s1 = strip_comments(p1), *s2 = strip_comments(p2);
	assert_string_equal(s1, s2);

	/* The structure, not only the text, is the same. */
	assert_int_equal(c1->n_sources, c2->n_sources);
	assert_int_equal(c1->n_assets, c2->n_assets);
	assert_int_equal(c1->n_sensors, c2->n_sensors);
	for (size_t i = 0; i < c1->n_sensors; i++) {
		assert_string_equal(c1->sensors[i].name, c2->sensors[i].name);
		assert_int_equal(c1->sensors[i].asset, c2->sensors[i].asset);
		assert_int_equal(c1->sensors[i].source, c2->sensors[i].source);
		assert_true(c1->sensors[i].scale == c2->sensors[i].scale);
		assert_true(c1->sensors[i].offset == c2->sensors[i].offset);
		assert_int_equal(c1->sensors[i].has_min, c2->sensors[i].has_min);
		assert_int_equal(c1->sensors[i].has_max, c2->sensors[i].has_max);
	}
	for (size_t i = 0; i < c1->n_assets; i++) {
		assert_int_equal(c1->assets[i].n_sensors, c2->assets[i].n_sensors);
		assert_memory_equal(c1->assets[i].sensors, c2->assets[i].sensors,
				    c1->assets[i].n_sensors * sizeof(size_t));
		assert_int_equal(c1->assets[i].run_sensor, c2->assets[i].run_sensor);
		assert_true(c1->assets[i].learning_rate == c2->assets[i].learning_rate);
	}
	/* Sensors are grouped by asset, assets in file order. */
	assert_string_equal(c1->assets[0].name, "b");
	assert_string_equal(c1->sensors[0].name, "b.rpm");
	assert_string_equal(c1->sensors[1].name, "b.flag");
	assert_string_equal(c1->sensors[2].name, "b.v");
	assert_string_equal(c1->sensors[3].name, "a.t");
	/* Resolved values appear in the printout, with units. */
	assert_non_null(strstr(p1, "\nhost = edge-1\n"));
	assert_non_null(strstr(p1, "\nfile = /tmp/rt/rel.db\n"));
	assert_non_null(strstr(p1, "\nretention = 36h\n"));
	assert_non_null(strstr(p1, "\npoll = 1500ms\n"));
	assert_non_null(strstr(p1, "\nkeepalive = 90s\n"));
	assert_non_null(strstr(p1, "\nmax_payload = 100000\n"));
	assert_non_null(strstr(p1, "\naddress = [::1]:1502\n"));
	assert_non_null(strstr(p1, "\nrun_when = rpm >= 0.1\n"));
	assert_non_null(strstr(p1, "\noffset = -273.15\n"));
	assert_non_null(strstr(p1, "\ntype = bool\n"));
	assert_non_null(strstr(p1, "[source val]\ntype = mqtt\ntopic = p/v\nformat = value\n"
				   "timestamp =\nuri = tcp://127.0.0.1:1883\nqos = 1\n"));
	/* A TCP source does not print serial keys. */
	char *tcp = strstr(p1, "[source tcp]");
	char *r1 = strstr(p1, "[source r1]");
	assert_non_null(tcp);
	assert_non_null(r1);
	char *baud = strstr(tcp, "baud");
	assert_true(baud > r1);

	free(s1);
	free(s2);
	free(p1);
	free(p2);
	cfg_free(c1);
	cfg_free(c2);
	test_rmtree(dir2);
}

/* The example configuration shipped in etc/ is valid. */
static void test_example_config(void **state)
{
	struct fixture *f = *state;
	const char *etc = getenv("PDM_ETC");

	assert_non_null(etc);
	rewind(f->err);
	struct pdm_config *c = cfg_load(etc, f->err);
	fflush(f->err);
	if (!c)
		fail_msg("%s", f->errbuf);
	assert_true(c->n_assets >= 3);
	cfg_free(c);
}

/* docs/configuration.md carries the key reference generated from the tables. */
static void test_reference_in_docs(void **state)
{
	const char *root = getenv("PDM_SOURCE_ROOT");
	char path[1024];
	char *ref = NULL, *doc = NULL;
	size_t rl = 0;
	(void)state;

	assert_non_null(root);
	FILE *o = open_memstream(&ref, &rl);
	cfg_print_reference(o);
	fclose(o);
	snprintf(path, sizeof(path), "%s/docs/configuration.md", root);
	FILE *d = fopen(path, "r");
	assert_non_null(d);
	size_t cap = 1 << 20;
	doc = calloc(1, cap);
	size_t n = fread(doc, 1, cap - 1, d);
	fclose(d);
	doc[n] = '\0';
	if (!strstr(doc, ref)) {
		FILE *w = fopen("cfg-reference.md", "w");
		if (w) {
			fputs(ref, w);
			fclose(w);
		}
		fail_msg("docs/configuration.md lacks the current key reference; the generated "
			 "one is in cfg-reference.md of the test's working directory");
	}
	/* Every key of every table is in the reference. */
	assert_non_null(strstr(ref, "| `max_payload` |"));
	assert_non_null(strstr(ref, "| `train_max_windows` |"));
	assert_non_null(strstr(ref, "| `valid_max` |"));

	/* ... and etc/pdmd.conf shows every key with its default. */
	snprintf(path, sizeof(path), "%s/etc/pdmd.conf", root);
	d = fopen(path, "r");
	assert_non_null(d);
	n = fread(doc, 1, cap - 1, d);
	fclose(d);
	doc[n] = '\0';
	size_t keys = 0;
	for (const char *p = ref; (p = strstr(p, "\n| `")) != NULL; p++) {
		char key[64], a1[80], a2[80], a3[80];
		const char *end = strchr(p + 4, '`');
		assert_non_null(end);
		snprintf(key, sizeof(key), "%.*s", (int)(end - p - 4), p + 4);
		snprintf(a1, sizeof(a1), "\n%s =", key);
		snprintf(a2, sizeof(a2), "\n# %s =", key);
		snprintf(a3, sizeof(a3), "\n#%s =", key);
		if (!strstr(doc, a1) && !strstr(doc, a2) && !strstr(doc, a3))
			fail_msg("etc/pdmd.conf does not show key '%s'", key);
		keys++;
	}
	assert_true(keys >= 75);
	free(ref);
	free(doc);
}


/* The password file: only the owner (and perhaps a pdmd group) may read
 * it; every refusal is a config error at the key's line saying what to do. */
static void test_password_file_rules(void **state)
{
	struct fixture *f = *state;
	char conf[1024], path[300], pw[300];
	snprintf(pw, sizeof(pw), "%s/pw", f->dir);
	snprintf(conf, sizeof(conf), BASE "[mqtt]\nusername = pdm\npassword_file = %s\n", pw);
	test_write_file(f->dir, "pw", "S3cret-pw\n");

	static const struct { mode_t mode; const char *msg; } bad[] = {
		{ 0644, "has mode 0644: any user can access it; run chmod 600" },
		{ 0604, "has mode 0604: any user can access it" },
		{ 0601, "has mode 0601: any user can access it" },
		{ 0660, "has mode 0660: its group can change it; run chmod 600" },
		{ 0620, "has mode 0620: its group can change it" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		chmod_in(f->dir, "pw", bad[i].mode);
		char want[512];
		snprintf(want, sizeof(want), "password_file: %s %s", pw, bad[i].msg);
		expect_error(f, conf, 12, want);
		assert_null(strstr(f->errbuf, "S3cret-pw"));
	}
	/* 0600 and 0640 (a group only pdmd is in) are fine. */
	static const mode_t good[] = { 0600, 0640, 0400, 0440 };
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		chmod_in(f->dir, "pw", good[i]);
		struct pdm_config *c = load_main(f, conf);
		if (!c)
			fail_msg("mode %04o refused:\n%s", (unsigned)good[i], f->errbuf);
		cfg_free(c);
	}

	/* A symlink is judged by what it points to. */
	snprintf(path, sizeof(path), "%s/link", f->dir);
	assert_int_equal(symlink(pw, path), 0);
	snprintf(conf, sizeof(conf), BASE "[mqtt]\nusername = pdm\npassword_file = %s\n", path);
	chmod_in(f->dir, "pw", 0600);
	struct pdm_config *c = load_main(f, conf);
	assert_non_null(c);
	cfg_free(c);
	chmod_in(f->dir, "pw", 0644);
	char want[1024];
	snprintf(want, sizeof(want), "password_file: %s has mode 0644: any user can access it", path);
	expect_error(f, conf, 12, want);

	/* Not a regular file: a directory, a FIFO (checked without blocking). */
	snprintf(conf, sizeof(conf), BASE "[mqtt]\nusername = pdm\npassword_file = %s\n", f->dir);
	snprintf(want, sizeof(want), "password_file: %s is not a regular file", f->dir);
	expect_error(f, conf, 12, want);
	snprintf(path, sizeof(path), "%s/fifo", f->dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	snprintf(conf, sizeof(conf), BASE "[mqtt]\nusername = pdm\npassword_file = %s\n", path);
	snprintf(want, sizeof(want), "password_file: %s is not a regular file", path);
	expect_error(f, conf, 12, want);

	/* Bounded: a password file holds one short line. */
	char *big = calloc(1, 4096);
	assert_non_null(big);
	memset(big, 'x', 4000);
	test_write_file(f->dir, "big", big);
	free(big);
	chmod_in(f->dir, "big", 0600);
	snprintf(conf, sizeof(conf), BASE "[mqtt]\nusername = pdm\npassword_file = %s/big\n",
		 f->dir);
	snprintf(want, sizeof(want),
		 "password_file: %s/big has 4000 bytes, more than the 514 it may have",
		 f->dir);
	expect_error(f, conf, 12, want);

	/* Owned by someone else: they could read or swap it (needs root to set up). */
	if (geteuid() == 0) {
		chmod_in(f->dir, "pw", 0600);
		assert_int_equal(chown(pw, 65534, 0), 0);
		snprintf(conf, sizeof(conf), BASE "[mqtt]\nusername = pdm\npassword_file = %s\n",
			 pw);
		snprintf(want, sizeof(want),
			 "password_file: %s belongs to uid 65534, who could change or show it", pw);
		expect_error(f, conf, 12, want);
	}

	/* The TLS key is a secret too: same rules, larger size limit. */
	test_write_file(f->dir, "k.pem", "-----BEGIN PRIVATE KEY-----\n");
	test_write_file(f->dir, "c.pem", "-----BEGIN CERTIFICATE-----\n");
	chmod_in(f->dir, "k.pem", 0644);
	char tls[1024];
	snprintf(tls, sizeof(tls),
		 BASE "[mqtt]\nuri = ssl://b:8883\ncert_file = %s/c.pem\nkey_file = k.pem\n", f->dir);
	snprintf(want, sizeof(want), "key_file: %s/k.pem has mode 0644: any user can access it",
		 f->dir);
	expect_error(f, tls, 13, want);
	chmod_in(f->dir, "k.pem", 0600);
	c = load_main(f, tls);
	assert_non_null(c);
	snprintf(want, sizeof(want), "%s/k.pem", f->dir);
	assert_string_equal(c->mqtt.key_file, want);
	cfg_free(c);

	/* Missing. */
	snprintf(conf, sizeof(conf), BASE "[mqtt]\nusername = pdm\npassword_file = %s/none\n",
		 f->dir);
	snprintf(want, sizeof(want), "password_file: cannot read %s/none: No such file", f->dir);
	expect_error(f, conf, 12, want);
}

/* A relative password_file: a systemd credential if there is one by that
 * name, else a file of the configuration directory. */
static void test_password_file_relative(void **state)
{
	struct fixture *f = *state;
	char want[512], creds[300];

	test_write_file(f->dir, "mqtt-password", "x\n");
	chmod_in(f->dir, "mqtt-password", 0600);
	const char *conf = BASE "[mqtt]\nusername = pdm\npassword_file = mqtt-password\n";
	unsetenv("CREDENTIALS_DIRECTORY");
	struct pdm_config *c = load_main(f, conf);
	assert_non_null(c);
	snprintf(want, sizeof(want), "%s/mqtt-password", f->dir);
	assert_string_equal(c->mqtt.password_file, want);
	cfg_free(c);

	snprintf(creds, sizeof(creds), "%s/creds", f->dir);
	test_write_file(f->dir, "creds/mqtt-password", "y\n");
	chmod_in(creds, "mqtt-password", 0400);
	setenv("CREDENTIALS_DIRECTORY", creds, 1);
	c = load_main(f, conf);
	assert_non_null(c);
	snprintf(want, sizeof(want), "%s/mqtt-password", creds);
	assert_string_equal(c->mqtt.password_file, want);
	cfg_free(c);
	/* a credential directory without that name: the config directory's file */
	c = load_main(f, BASE "[mqtt]\nusername = pdm\npassword_file = mqtt-password\n");
	assert_non_null(c);
	cfg_free(c);
	unlink(want);
	c = load_main(f, conf);
	assert_non_null(c);
	snprintf(want, sizeof(want), "%s/mqtt-password", f->dir);
	assert_string_equal(c->mqtt.password_file, want);
	cfg_free(c);
	unsetenv("CREDENTIALS_DIRECTORY");
}

/* Credentials inside a URI would be printed and logged: refused, not echoed. */
static void test_uri_credentials(void **state)
{
	struct fixture *f = *state;
	expect_error(f, BASE "[mqtt]\nuri = tcp://pdm:Hunter2-pw@broker:1883\n", 11,
		     "uri: a user or password in the URI is not allowed");
	assert_null(strstr(f->errbuf, "Hunter2-pw"));
	expect_error(f, BASE "[mqtt]\nuri = mqtts://pdm@broker/mqtt\n", 11,
		     "uri: a user or password in the URI is not allowed");
	expect_error(f, BASE "[source m]\ntype = mqtt\ntopic = t\n"
			     "uri = ssl://u:Hunter2-pw@b:8883\n[sensor a.m]\nsource = m\n",
		     13, "uri: a user or password in the URI is not allowed");
	assert_null(strstr(f->errbuf, "Hunter2-pw"));
	/* the client speaks tcp/mqtt and ssl/mqtts only: nothing else passes the check */
	expect_error(f, BASE "[mqtt]\nuri = wss://broker/mqtt\n", 11,
		     "uri: expected tcp://HOST:PORT or ssl://HOST:PORT");
	expect_error(f, BASE "[mqtt]\nuri = ws://broker:9001\n", 11,
		     "uri: expected tcp://HOST:PORT or ssl://HOST:PORT");
	/* an '@' after the host is no user name */
	struct pdm_config *c = load_main(f, BASE "[mqtt]\nuri = tcp://broker:80/mqtt@x\n");
	assert_non_null(c);
	cfg_free(c);
}

/* A long line is an error naming file:line, whatever the line is. */
static void test_long_lines(void **state)
{
	struct fixture *f = *state;
	char *text = calloc(1, 16384);
	assert_non_null(text);
	strcpy(text, BASE "[");
	memset(text + strlen(text), 'm', 5000);
	strcat(text, "]\n");
	size_t at = strlen(text);
	memset(text + at, 'x', 5000);
	strcat(text, "\n; a long comment is fine: ");
	at = strlen(text);
	memset(text + at, 'c', 5000);
	strcat(text, "\n");
	struct pdm_config *c = load_main(f, text);
	assert_null(c);
	expect_msg(f, "pdmd.conf", 10, "line too long (at most 198 characters)");
	expect_msg(f, "pdmd.conf", 11, "line too long (at most 198 characters)");
	assert_null(strstr(f->errbuf, "mmmmmmmmmm"));
	assert_null(strstr(f->errbuf, "xxxxxxxxxx"));
	assert_null(strstr(f->errbuf, ":12:"));
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_every_key_parses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_units, setup, teardown),
		cmocka_unit_test_setup_teardown(test_units_sizes_and_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_value_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_register_parsing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_address_parsing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_run_when_parsing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sensor_hold, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clocks_printed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_learning_printed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_alert_delays, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_applicability, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cross_references, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_dims_hook, setup, teardown),
		cmocka_unit_test_setup_teardown(test_syntax_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dropins, setup, teardown),
		cmocka_unit_test_setup_teardown(test_all_errors_sorted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_main_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_warnings, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ring_too_small_warns, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ring_big_enough, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ring_mqtt_not_counted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_print_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_print_line_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_example_config, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reference_in_docs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_password_file_rules, setup, teardown),
		cmocka_unit_test_setup_teardown(test_password_file_relative, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uri_credentials, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_lines, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
