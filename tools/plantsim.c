/*
 * plantsim.c - a deterministic plant simulator for pdmd's demo and tests.
 *
 * Simulates a few pumps (plantsim_model.c), serves the Modbus-fed ones as
 * a Modbus TCP server on 127.0.0.1 (plantsim_modbus.c), publishes the
 * MQTT-fed ones as JSON telemetry (plantsim_mqtt.c), and takes faults from
 * a scenario file, from commands on stdin and from SIGUSR1
 * (plantsim_cmd.c). See docs/simulator.md.
 *
 * Time: tick k carries the timestamp start_ts + k/rate. Real-time runs pace
 * ticks with a timerfd and catch up after a stall (data time never drifts
 * from the wall clock); --fast runs them back to back. The simulated values
 * depend only on the seed and on which commands arrive at which tick, never
 * on the machine's speed. One thread runs the loop (signals arrive through
 * a signalfd); the Modbus server and paho have threads of their own.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "log.h"
#include "pdm_config.h"
#include "pdm_parse.h"
#include "pdm_time.h"
#include "plantsim_cmd.h"
#include "plantsim_model.h"
#include "plantsim_modbus.h"
#include "plantsim_mqtt.h"

#define EX_USAGE 64
#define MAX_CATCHUP_S 10  /* after a longer stall, skip ahead instead of bursting */

/* Decimal places of the values published over MQTT, per sensor. */
static const int mqtt_decimals[PS_NSENSORS] = {
	[PS_SPEED] = 1, [PS_FLOW] = 2, [PS_PRESSURE] = 3, [PS_CURRENT] = 2,
	[PS_VIBRATION] = 3, [PS_BEARING_TEMP] = 2, [PS_MOTOR_TEMP] = 2,
};

struct options {
	const char *assets;
	int modbus_port;
	const char *mqtt_uri;
	int mqtt_qos;
	int mqtt_batch;        /* ticks per message: > 1 sends a JSON array of them */
	bool mqtt_tags;        /* an OPC gateway's list of tags instead of named members */
	const char *topic_prefix;
	double rate;
	uint64_t seed;
	double duration_s;
	int64_t start_ts;
	bool start_ts_set;
	const char *scenario;
	bool print;
	const char *csv_asset;
	int csv_index;
	bool fast;
	bool stops;
	double regime_min_s, regime_max_s;
};

struct sim {
	struct options o;
	struct ps_plant *plant;
	struct ps_scenario *scenario;
	struct ps_mbserver *mb;
	struct ps_mqtt *mqtt;
	/* --mqtt-batch: per asset, the objects of the message being gathered */
	char **batch;
	size_t *batch_len;
	int *batch_count;
	int sigfd;
	int timerfd;
	bool stdin_open;
	char inbuf[1024];
	size_t inlen;
	bool quit;
	bool failed;           /* stop with a non-zero status */
	int64_t ticks_total;   /* 0 = run until told to stop */
	unsigned long print_errors;
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: plantsim [OPTIONS]\n"
		"Simulates pumps with coupled sensors and injectable faults, serving them\n"
		"over Modbus TCP on 127.0.0.1 and publishing them over MQTT.\n\n"
		"  --assets LIST        NAME:modbus|mqtt,... (default\n"
		"                       pump-a:modbus,pump-b:modbus,pump-c:mqtt)\n"
		"  --modbus-port N      Modbus TCP port on 127.0.0.1 (default 1502; 0 = a free\n"
		"                       port); the first stdout line is 'modbus_port N'\n"
		"  --mqtt URI           broker for the MQTT-fed assets, e.g. tcp://127.0.0.1:1883\n"
		"  --mqtt-qos N         QoS of telemetry messages, 0..2 (default 0)\n"
		"  --mqtt-batch N       send N ticks per message, as a JSON array of objects\n"
		"                       (a gateway that buffers its readings; default 1)\n"
		"  --mqtt-tags          send each tick as an OPC gateway's list of tags\n"
		"                       (Kepware's IoT Gateway: id, v, q = 192, t per tag; the\n"
		"                       message's timestamp 250 ms after the tags')\n"
		"  --topic-prefix P     telemetry goes to P/<asset>/telemetry (default plant)\n"
		"  --rate HZ            ticks per second (default 10)\n"
		"  --seed N             random seed (default 1)\n"
		"  --duration S         stop after S seconds of simulated time (0 = never)\n"
		"  --start-ts MS        epoch ms of the first tick (default: now)\n"
		"  --scenario FILE      timed faults ('at 90s fault pump-a bearing_wear ...')\n"
		"  --print              write every tick of every asset as a JSON line on stdout\n"
		"  --csv ASSET          write ASSET's ticks as CSV on stdout (ts_ms, then one\n"
		"                       column per sensor: what pdmd replay reads)\n"
		"  --fast               do not pace ticks in real time (needs --duration); no\n"
		"                       Modbus server\n"
		"  --no-stops           no planned stops in the regime schedule\n"
		"  --regime-time MIN[:MAX]  each operating regime lasts MIN..MAX of simulated\n"
		"                       time (durations; default 120s:300s)\n"
		"  --log-level L        error | warning | info | debug (default info)\n"
		"  -h, --help           this text;  --version  the version\n\n"
		"Commands on stdin: fault ASSET KIND [severity=X] [sensor=S] [for D] [ramp=D],\n"
		"clear ASSET|all [KIND], speed ASSET RPM|auto, next, status, quit.\n"
		"SIGUSR1 injects the scenario's next pending fault now; SIGTERM, SIGINT and\n"
		"SIGHUP stop.\n");
}

static int parse_regime(const char *arg, struct options *o)
{
	char buf[64];
	int64_t lo, hi;

	snprintf(buf, sizeof(buf), "%s", arg);
	char *colon = strchr(buf, ':');
	if (colon)
		*colon = '\0';
	if (pdm_parse_duration_ms(buf, 1000, &lo) < 0 || lo <= 0)
		return -EINVAL;
	hi = lo;
	if (colon && (pdm_parse_duration_ms(colon + 1, 1000, &hi) < 0 || hi < lo))
		return -EINVAL;
	o->regime_min_s = (double)lo / 1000.0;
	o->regime_max_s = (double)hi / 1000.0;
	return 0;
}

static int parse_options(int argc, char **argv, struct options *o)
{
	enum { O_ASSETS = 256, O_MBPORT, O_MQTT, O_QOS, O_PREFIX, O_RATE, O_SEED, O_DURATION,
	       O_START, O_BATCH, O_TAGS, O_SCENARIO, O_PRINT, O_CSV, O_FAST, O_NOSTOPS, O_REGIME, O_LOGLEVEL, O_VERSION };
	static const struct option longopts[] = {
		{ "assets", required_argument, NULL, O_ASSETS },
		{ "modbus-port", required_argument, NULL, O_MBPORT },
		{ "mqtt", required_argument, NULL, O_MQTT },
		{ "mqtt-qos", required_argument, NULL, O_QOS },
		{ "topic-prefix", required_argument, NULL, O_PREFIX },
		{ "rate", required_argument, NULL, O_RATE },
		{ "seed", required_argument, NULL, O_SEED },
		{ "duration", required_argument, NULL, O_DURATION },
		{ "start-ts", required_argument, NULL, O_START },
		{ "scenario", required_argument, NULL, O_SCENARIO },
		{ "print", no_argument, NULL, O_PRINT },
		{ "csv", required_argument, NULL, O_CSV },
		{ "fast", no_argument, NULL, O_FAST },
		{ "no-stops", no_argument, NULL, O_NOSTOPS },
		{ "mqtt-batch", required_argument, NULL, O_BATCH },
		{ "mqtt-tags", no_argument, NULL, O_TAGS },
		{ "regime-time", required_argument, NULL, O_REGIME },
		{ "log-level", required_argument, NULL, O_LOGLEVEL },
		{ "version", no_argument, NULL, O_VERSION },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c, prio;
	int64_t v;

	*o = (struct options){ .modbus_port = 1502, .topic_prefix = "plant", .rate = 10.0, .mqtt_batch = 1,
			       .seed = 1, .stops = true, .regime_min_s = 120.0,
			       .regime_max_s = 300.0 };
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case O_ASSETS:
			o->assets = optarg;
			break;
		case O_MBPORT:
			if (pdm_parse_i64(optarg, 0, 65535, &v) < 0) {
				fprintf(stderr, "plantsim: --modbus-port: expected 0..65535\n");
				return -EINVAL;
			}
			o->modbus_port = (int)v;
			break;
		case O_MQTT:
			o->mqtt_uri = optarg;
			break;
		case O_QOS:
			if (pdm_parse_i64(optarg, 0, 2, &v) < 0) {
				fprintf(stderr, "plantsim: --mqtt-qos: expected 0, 1 or 2\n");
				return -EINVAL;
			}
			o->mqtt_qos = (int)v;
			break;
		case O_BATCH:
			if (pdm_parse_i64(optarg, 1, 100, &v) < 0) {
				fprintf(stderr, "plantsim: --mqtt-batch: expected 1 .. 100 ticks\n");
				return -EINVAL;
			}
			o->mqtt_batch = (int)v;
			break;
		case O_TAGS:
			o->mqtt_tags = true;
			break;
		case O_PREFIX:
			if (!optarg[0] || strpbrk(optarg, "+#")) {
				fprintf(stderr, "plantsim: --topic-prefix: must be non-empty, "
						"without + or #\n");
				return -EINVAL;
			}
			o->topic_prefix = optarg;
			break;
		case O_RATE:
			if (pdm_parse_double(optarg, &o->rate) < 0 || o->rate < 0.01 ||
			    o->rate > 1000.0) {
				fprintf(stderr, "plantsim: --rate: expected 0.01..1000 Hz\n");
				return -EINVAL;
			}
			break;
		case O_SEED:
			if (pdm_parse_i64(optarg, 0, INT64_MAX, &v) < 0) {
				fprintf(stderr, "plantsim: --seed: expected a non-negative integer\n");
				return -EINVAL;
			}
			o->seed = (uint64_t)v;
			break;
		case O_DURATION:
			if (pdm_parse_double(optarg, &o->duration_s) < 0 || o->duration_s < 0 ||
			    o->duration_s > 1e8) {
				fprintf(stderr, "plantsim: --duration: expected seconds >= 0\n");
				return -EINVAL;
			}
			break;
		case O_START:
			if (pdm_parse_i64(optarg, 0, INT64_C(253402300799999), &o->start_ts) < 0) {
				fprintf(stderr, "plantsim: --start-ts: expected epoch milliseconds\n");
				return -EINVAL;
			}
			o->start_ts_set = true;
			break;
		case O_SCENARIO:
			o->scenario = optarg;
			break;
		case O_PRINT:
			o->print = true;
			break;
		case O_CSV:
			o->csv_asset = optarg;
			break;
		case O_FAST:
			o->fast = true;
			break;
		case O_NOSTOPS:
			o->stops = false;
			break;
		case O_REGIME:
			if (parse_regime(optarg, o) < 0) {
				fprintf(stderr, "plantsim: --regime-time: expected MIN[:MAX] durations "
						"like 20s:60s (MIN > 0, MAX >= MIN)\n");
				return -EINVAL;
			}
			break;
		case O_LOGLEVEL:
			if (pdm_log_level_parse(optarg, &prio) < 0) {
				fprintf(stderr, "plantsim: --log-level: expected error, warning, "
						"info or debug\n");
				return -EINVAL;
			}
			pdm_log_level = prio;
			break;
		case O_VERSION:
			printf("plantsim %s\n", PDM_VERSION);
			return 1;
		case 'h':
			usage(stdout);
			return 1;
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "plantsim: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	if (o->print && o->csv_asset) {
		fprintf(stderr, "plantsim: --print and --csv both write stdout; choose one\n");
		return -EINVAL;
	}
	if (o->fast && o->duration_s <= 0) {
		fprintf(stderr, "plantsim: --fast needs --duration\n");
		return -EINVAL;
	}
	return 0;
}

static int64_t ms_to_ticks(int64_t ms, double rate)
{
	return ms > 0 ? (int64_t)fmax(1.0, llround((double)ms * rate / 1000.0)) : 0;
}

static void show_status(struct sim *s)
{
	for (int i = 0; i < ps_plant_count(s->plant); i++) {
		const struct ps_asset *a = ps_plant_asset(s->plant, i);
		char line[512];
		int used = snprintf(line, sizeof(line), "%s %s speed=%.0f faults:", a->name,
				    a->running ? "running" : "stopped", a->value[PS_SPEED]);
		for (int k = 0; k < a->nfaults && used < (int)sizeof(line); k++) {
			const struct ps_fault *f = &a->faults[k];
			used += snprintf(line + used, sizeof(line) - (size_t)used, " %s%s%s(%.2f)",
					 ps_fault_name(f->kind), f->sensor >= 0 ? ":" : "",
					 f->sensor >= 0 ? ps_sensor_name(f->sensor) : "",
					 f->severity);
		}
		if (a->nfaults == 0)
			snprintf(line + used, sizeof(line) - (size_t)used, " none");
		fprintf(stderr, "plantsim: status: %s\n", line);
	}
}

static void run_cmd(struct sim *s, const struct ps_cmd *c, const char *origin)
{
	struct ps_cmd next;

	switch (c->type) {
	case PS_CMD_FAULT: {
		const struct ps_asset *a = ps_plant_asset(s->plant, c->asset);
		int rc = ps_plant_inject(s->plant, c->asset, (enum ps_fault_kind)c->kind,
					 c->severity, c->sensor, ms_to_ticks(c->for_ms, s->o.rate),
					 ms_to_ticks(c->ramp_ms, s->o.rate));
		if (rc < 0) {
			LOG_W("plantsim: %s: cannot inject %s into %s: %s", origin,
			      ps_fault_name(c->kind), a->name,
			      rc == -ENOSPC ? "too many faults on this asset" : strerror(-rc));
			return;
		}
		LOG_I("plantsim: %s: %s: fault %s%s%s severity %.2f%s at tick %lld", origin,
		      a->name, ps_fault_name(c->kind), c->sensor >= 0 ? " on " : "",
		      c->sensor >= 0 ? ps_sensor_name(c->sensor) : "", c->severity,
		      c->for_ms > 0 ? " (timed)" : "", (long long)ps_plant_tick(s->plant));
		return;
	}
	case PS_CMD_CLEAR: {
		int first = c->asset < 0 ? 0 : c->asset;
		int last = c->asset < 0 ? ps_plant_count(s->plant) - 1 : c->asset;
		for (int i = first; i <= last; i++) {
			int n = ps_plant_clear(s->plant, i, c->kind);
			if (n == 0 && c->asset < 0)
				continue;
			LOG_I("plantsim: %s: %s: %d fault(s) cleared at tick %lld", origin,
			      ps_plant_asset(s->plant, i)->name, n,
			      (long long)ps_plant_tick(s->plant));
		}
		return;
	}
	case PS_CMD_SPEED:
		ps_plant_hold_speed(s->plant, c->asset, c->rpm);
		LOG_I("plantsim: %s: %s: speed %s", origin, ps_plant_asset(s->plant, c->asset)->name,
		      c->rpm < 0 ? "follows the schedule" : "held");
		return;
	case PS_CMD_NEXT:
		if (ps_scenario_take_next_fault(s->scenario, &next))
			run_cmd(s, &next, "next");
		else
			LOG_W("plantsim: %s: no pending fault in the scenario", origin);
		return;
	case PS_CMD_STATUS:
		show_status(s);
		return;
	case PS_CMD_QUIT:
		LOG_I("plantsim: %s: quit", origin);
		s->quit = true;
		return;
	}
}

static double round_to(double v, int decimals)
{
	double f = pow(10.0, decimals);
	return round(v * f) / f;
}

/*
 * JSON text is written here rather than by a JSON library so that every
 * number round-trips exactly: the shortest of %.15g, %.16g, %.17g that
 * reads back as the same double. A reader comparing --print with the
 * registers or the MQTT payload then sees identical values.
 */
struct jbuf {
	char s[1024];
	size_t n;
};

static void jb_put(struct jbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void jb_put(struct jbuf *b, const char *fmt, ...)
{
	va_list ap;

	if (b->n >= sizeof(b->s))
		return;
	va_start(ap, fmt);
	int w = vsnprintf(b->s + b->n, sizeof(b->s) - b->n, fmt, ap);
	va_end(ap);
	if (w > 0)
		b->n += (size_t)w;
}

/* Shortest of %.15g..%.17g that reads back as v; "null" if not finite. */
static const char *fmt_num(double v, char *num, size_t len)
{
	if (!isfinite(v))
		return "null";
	for (int digits = 15; digits <= 17; digits++) {
		snprintf(num, len, "%.*g", digits, v);
		if (strtod(num, NULL) == v)
			break;
	}
	return num;
}

static void jb_num(struct jbuf *b, const char *key, double v)
{
	char num[40];

	jb_put(b, "\"%s\":%s,", key, fmt_num(v, num, sizeof(num)));
}

/* Closes the object: replaces the trailing comma. */
static void jb_close(struct jbuf *b)
{
	if (b->n > 0 && b->n < sizeof(b->s) && b->s[b->n - 1] == ',')
		b->n--;
	jb_put(b, "}");
}

static void add_values(struct jbuf *b, const double *v, bool nest_process)
{
	for (int k = 0; k < PS_NSENSORS; k++)
		if (!nest_process || (k != PS_FLOW && k != PS_PRESSURE))
			jb_num(b, ps_sensor_name(k), v[k]);
	if (nest_process) {
		jb_put(b, "\"process\":{");
		jb_num(b, ps_sensor_name(PS_FLOW), v[PS_FLOW]);
		jb_num(b, ps_sensor_name(PS_PRESSURE), v[PS_PRESSURE]);
		jb_close(b);
		jb_put(b, ",");
	}
}

static void print_line(struct sim *s, const struct ps_asset *a, int64_t ts, int64_t tick,
		       const double *v)
{
	struct jbuf b = { .n = 0 };

	/* Asset names are checked at start to need no JSON escaping. */
	jb_put(&b, "{\"ts\":%lld,\"asset\":\"%s\",", (long long)ts, a->name);
	add_values(&b, v, false);
	jb_put(&b, "\"tick\":%lld,\"running\":%s,\"faults\":[", (long long)tick,
	       a->running ? "true" : "false");
	for (int k = 0; k < a->nfaults; k++)
		jb_put(&b, "%s\"%s\"", k ? "," : "", ps_fault_name(a->faults[k].kind));
	jb_put(&b, "]}");
	if (puts(b.s) == EOF)
		s->print_errors++;
}

static void csv_header(void)
{
	printf("ts_ms");
	for (int k = 0; k < PS_NSENSORS; k++)
		printf(",%s", ps_sensor_name(k));
	printf("\n");
}

static void csv_row(struct sim *s, int64_t ts, const double *v)
{
	struct jbuf b = { .n = 0 };

	jb_put(&b, "%lld", (long long)ts);
	for (int k = 0; k < PS_NSENSORS; k++) {
		char num[40];
		/* An empty field is what CSV readers take as missing. */
		const char *text = fmt_num(v[k], num, sizeof(num));
		jb_put(&b, ",%s", isfinite(v[k]) ? text : "");
	}
	if (puts(b.s) == EOF)
		s->print_errors++;
}

/* Room for one --mqtt-batch message: its objects, commas, brackets, NUL. */
static size_t batch_bytes(const struct sim *sim)
{
	return (size_t)sim->o.mqtt_batch * sizeof(((struct jbuf *)0)->s) + 4;
}

/* How long after its scan an OPC gateway publishes (--mqtt-tags): the
 * message's time, later than each tag's own. */
#define TAGS_PUBLISH_LAG_MS 250

/* A tick as Kepware's IoT Gateway sends its tags: each with its value, an
 * OPC DA quality (192 good; 24, comm failure, for a value it could not
 * read) and the time it was scanned. */
static void add_tags(struct jbuf *b, const struct ps_asset *a, int64_t ts, const double *v)
{
	jb_put(b, "{\"timestamp\":%lld,\"values\":[", (long long)(ts + TAGS_PUBLISH_LAG_MS));
	for (int k = 0; k < PS_NSENSORS; k++) {
		char num[40];
		bool ok = isfinite(v[k]);
		jb_put(b, "%s{\"id\":\"Channel1.%s.%s\",\"v\":%s,\"q\":%d,\"t\":%lld}", k ? "," : "",
		       a->name, ps_sensor_name(k), ok ? fmt_num(v[k], num, sizeof(num)) : "0",
		       ok ? 192 : 24, (long long)ts);
	}
	jb_put(b, "]}");
}

static void publish(struct sim *s, int i, const struct ps_asset *a, int64_t ts, const double *v)
{
	char topic[256];
	struct jbuf b = { .n = 0 };

	if (s->o.mqtt_tags) {
		add_tags(&b, a, ts, v);
	} else {
		jb_put(&b, "{\"ts\":%lld,", (long long)ts);
		add_values(&b, v, true);
		jb_close(&b);
	}
	snprintf(topic, sizeof(topic), "%s/%s/telemetry", s->o.topic_prefix, a->name);
	if (s->o.mqtt_batch <= 1) {
		ps_mqtt_publish(s->mqtt, topic, b.s);
		return;
	}
	/* Gathered like a gateway's buffer: "[{...},{...},...]", sent when full. */
	char *buf = s->batch[i];
	size_t n = s->batch_len[i];
	if (n + b.n + 3 > batch_bytes(s))
		return; /* cannot happen: objects are < sizeof(b.s) */
	buf[n++] = s->batch_count[i] ? ',' : '[';
	memcpy(buf + n, b.s, b.n);
	n += b.n;
	if (++s->batch_count[i] < s->o.mqtt_batch) {
		s->batch_len[i] = n;
		return;
	}
	buf[n++] = ']';
	buf[n] = '\0';
	ps_mqtt_publish(s->mqtt, topic, buf);
	s->batch_len[i] = 0;
	s->batch_count[i] = 0;
}

static void tick_once(struct sim *s)
{
	int64_t tick = ps_plant_tick(s->plant);
	int64_t elapsed_ms = llround((double)tick * 1000.0 / s->o.rate);
	struct ps_cmd c;

	while (ps_scenario_due(s->scenario, elapsed_ms, &c))
		run_cmd(s, &c, "scenario");
	ps_plant_step(s->plant);

	int64_t ts = s->o.start_ts + elapsed_ms;
	for (int i = 0; i < ps_plant_count(s->plant); i++) {
		const struct ps_asset *a = ps_plant_asset(s->plant, i);
		double v[PS_NSENSORS];

		if (a->feed == PS_FEED_MODBUS) {
			uint16_t regs[PS_MB_BLOCK];
			ps_mb_encode(a, (uint32_t)tick, regs, v);
			if (s->mb)
				ps_mbserver_update(s->mb, a->feed_index, regs);
		} else {
			for (int k = 0; k < PS_NSENSORS; k++)
				v[k] = round_to(a->value[k], mqtt_decimals[k]);
			if (s->mqtt)
				publish(s, i, a, ts, v);
		}
		if (s->o.print)
			print_line(s, a, ts, tick, v);
		else if (s->o.csv_asset && i == s->o.csv_index)
			csv_row(s, ts, v);
	}
	if (s->mb && tick == 0 && ps_mbserver_start(s->mb) < 0)
		s->quit = s->failed = true;
	if (s->ticks_total > 0 && ps_plant_tick(s->plant) >= s->ticks_total)
		s->quit = true;
}

static void handle_signal(struct sim *s)
{
	struct signalfd_siginfo si;
	struct ps_cmd next;

	while (read(s->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGUSR1) {
			if (ps_scenario_take_next_fault(s->scenario, &next))
				run_cmd(s, &next, "SIGUSR1");
			else
				LOG_W("plantsim: SIGUSR1: no pending fault in the scenario");
		} else {
			LOG_I("plantsim: %s: stopping", strsignal((int)si.ssi_signo));
			s->quit = true;
		}
	}
}

static void handle_stdin(struct sim *s)
{
	ssize_t n = read(STDIN_FILENO, s->inbuf + s->inlen, sizeof(s->inbuf) - 1 - s->inlen);

	if (n < 0) {
		if (errno == EINTR || errno == EAGAIN)
			return;
		LOG_W("plantsim: stdin: %s; commands are no longer read", strerror(errno));
		s->stdin_open = false;
		return;
	}
	if (n == 0) {
		/* No more commands, but the plant keeps running (demo scripts
		 * start us with stdin closed). */
		s->stdin_open = false;
		if (s->inlen == 0)
			return;
		s->inbuf[s->inlen++] = '\n';
	}
	s->inlen += (size_t)n;
	s->inbuf[s->inlen] = '\0';
	char *start = s->inbuf, *nl;
	while ((nl = strchr(start, '\n')) != NULL) {
		struct ps_cmd c;
		char err[256];
		*nl = '\0';
		int rc = ps_cmd_parse(s->plant, start, &c, err, sizeof(err));
		if (rc < 0)
			LOG_W("plantsim: stdin: %s", err);
		else if (rc == 0)
			run_cmd(s, &c, "stdin");
		start = nl + 1;
	}
	s->inlen -= (size_t)(start - s->inbuf);
	memmove(s->inbuf, start, s->inlen);
	if (s->inlen == sizeof(s->inbuf) - 1) {
		LOG_W("plantsim: stdin: line too long, ignored");
		s->inlen = 0;
	}
}

/* Reacts to signals and stdin without waiting (used between fast ticks). */
static void poll_inputs(struct sim *s, int timeout_ms)
{
	struct pollfd pfd[2] = {
		{ .fd = s->sigfd, .events = POLLIN },
		{ .fd = s->stdin_open ? STDIN_FILENO : -1, .events = POLLIN },
	};

	if (poll(pfd, 2, timeout_ms) < 0) {
		if (errno != EINTR)
			LOG_E("plantsim: poll: %s", strerror(errno));
		return;
	}
	if (pfd[0].revents)
		handle_signal(s);
	if (pfd[1].revents)
		handle_stdin(s);
}

static int flush_stdout(struct sim *s)
{
	if (fflush(stdout) != 0 || s->print_errors) {
		/* The reader went away (a closed pipe): nothing left to do. */
		LOG_I("plantsim: stdout closed: %s; stopping", strerror(errno));
		s->quit = true;
		return -EPIPE;
	}
	return 0;
}

static void run_fast(struct sim *s)
{
	while (!s->quit) {
		tick_once(s);
		if (ps_plant_tick(s->plant) % 256 == 0) {
			poll_inputs(s, 0);
			if (s->mqtt)
				ps_mqtt_poll(s->mqtt);
		}
	}
	flush_stdout(s);
}

static int run_realtime(struct sim *s)
{
	int64_t period_ns = llround(1e9 / s->o.rate);
	struct itimerspec its = {
		.it_interval = { period_ns / 1000000000, period_ns % 1000000000 },
		.it_value = { 0, 1 },
	};

	s->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (s->timerfd < 0 || timerfd_settime(s->timerfd, 0, &its, NULL) < 0) {
		LOG_E("plantsim: timerfd: %s", strerror(errno));
		return -errno;
	}
	while (!s->quit) {
		struct pollfd pfd[3] = {
			{ .fd = s->timerfd, .events = POLLIN },
			{ .fd = s->sigfd, .events = POLLIN },
			{ .fd = s->stdin_open ? STDIN_FILENO : -1, .events = POLLIN },
		};
		if (poll(pfd, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			LOG_E("plantsim: poll: %s", strerror(errno));
			return -errno;
		}
		if (pfd[1].revents)
			handle_signal(s);
		if (pfd[2].revents)
			handle_stdin(s);
		if (pfd[0].revents && !s->quit) {
			uint64_t expired = 0;
			if (read(s->timerfd, &expired, sizeof(expired)) != sizeof(expired))
				continue;
			uint64_t cap = (uint64_t)ceil(s->o.rate * MAX_CATCHUP_S);
			if (expired > cap) {
				LOG_W("plantsim: stalled for %.1f s; simulated time jumps ahead",
				      (double)expired / s->o.rate);
				/* Keep timestamps tied to the wall clock: skip the stall. */
				for (uint64_t k = 0; k < expired - cap; k++)
					ps_plant_step(s->plant);
				expired = cap;
			}
			for (uint64_t k = 0; k < expired && !s->quit; k++)
				tick_once(s);
			if (s->o.print || s->o.csv_asset)
				flush_stdout(s);
			if (s->mqtt)
				ps_mqtt_poll(s->mqtt);
		}
	}
	return 0;
}

static int count_feed(const struct ps_plant *p, enum ps_feed feed)
{
	int n = 0;
	for (int i = 0; i < ps_plant_count(p); i++)
		n += ps_plant_asset(p, i)->feed == feed;
	return n;
}

int main(int argc, char **argv)
{
	struct sim s = { .sigfd = -1, .timerfd = -1, .stdin_open = true };
	sigset_t mask;
	int status = 1;

	int rc = parse_options(argc, argv, &s.o);
	if (rc != 0)
		return rc > 0 ? 0 : EX_USAGE;
	if (!s.o.start_ts_set)
		s.o.start_ts = pdm_wall_ms();
	if (s.o.duration_s > 0)
		s.ticks_total = (int64_t)fmax(1.0, llround(s.o.duration_s * s.o.rate));

	/* Block before any thread exists so every thread (ours and paho's)
	 * inherits the mask and the signals reach only the signalfd. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGUSR1);
	/* A closed terminal stops us cleanly too. */
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* Started in the background of an interactive shell, reading the
	 * terminal would stop us (SIGTTIN): leave stdin alone then. */
	signal(SIGTTIN, SIG_IGN);
	if (isatty(STDIN_FILENO) && tcgetpgrp(STDIN_FILENO) != getpgrp()) {
		LOG_I("plantsim: running in the background: commands on stdin are not read");
		s.stdin_open = false;
	}
	s.sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (s.sigfd < 0) {
		LOG_E("plantsim: signalfd: %s", strerror(errno));
		goto out;
	}

	s.plant = ps_plant_new(s.o.assets, s.o.seed, s.o.rate, s.o.stops, s.o.regime_min_s,
				 s.o.regime_max_s);
	if (!s.plant)
		goto out;
	if (s.o.scenario && !(s.scenario = ps_scenario_load(s.o.scenario, s.plant)))
		goto out;
	if (s.o.csv_asset) {
		s.o.csv_index = ps_plant_find(s.plant, s.o.csv_asset);
		if (s.o.csv_index < 0) {
			LOG_E("plantsim: --csv: no asset called '%s'", s.o.csv_asset);
			goto out;
		}
	}
	/* In --fast runs the registers would change faster than anyone polls. */
	int nmb = s.o.fast ? 0 : count_feed(s.plant, PS_FEED_MODBUS);
	if (nmb > 0) {
		s.mb = ps_mbserver_new(s.o.modbus_port, nmb);
		if (!s.mb)
			goto out;
		printf("modbus_port %d\n", ps_mbserver_port(s.mb));
		fflush(stdout);
	}
	if (s.o.mqtt_uri && count_feed(s.plant, PS_FEED_MQTT) > 0) {
		char id[64];
		snprintf(id, sizeof(id), "plantsim-%ld", (long)getpid());
		s.mqtt = ps_mqtt_new(s.o.mqtt_uri, id, s.o.mqtt_qos);
		if (!s.mqtt)
			goto out;
		int na = ps_plant_count(s.plant);
		s.batch = calloc((size_t)na, sizeof(*s.batch));
		s.batch_len = calloc((size_t)na, sizeof(*s.batch_len));
		s.batch_count = calloc((size_t)na, sizeof(*s.batch_count));
		if (!s.batch || !s.batch_len || !s.batch_count)
			goto out;
		for (int i = 0; i < na; i++)
			if (!(s.batch[i] = malloc(batch_bytes(&s))))
				goto out;
	}
	if (s.o.csv_asset)
		csv_header();
	LOG_I("plantsim: %d assets, %.3g Hz, seed %llu%s%s", ps_plant_count(s.plant), s.o.rate,
	      (unsigned long long)s.o.seed, s.o.fast ? ", fast" : "",
	      s.o.mqtt_uri ? ", publishing over MQTT" : "");

	if (s.o.fast)
		run_fast(&s);
	else if (run_realtime(&s) < 0)
		goto out;
	status = s.failed ? 1 : 0;
out:
	ps_mqtt_free(s.mqtt);
	for (int i = 0; s.batch && i < ps_plant_count(s.plant); i++)
		free(s.batch[i]);
	free(s.batch);
	free(s.batch_len);
	free(s.batch_count);
	ps_mbserver_free(s.mb);
	ps_scenario_free(s.scenario);
	ps_plant_free(s.plant);
	if (s.timerfd >= 0)
		close(s.timerfd);
	if (s.sigfd >= 0)
		close(s.sigfd);
	if (fflush(stdout) != 0 && status == 0 && errno != EPIPE)
		status = 1;
	return status;
}
