/*
 * main.c - the pdmd command line: run, check, replay, probe.
 *
 * Exit codes follow sysexits.h so that systemd and scripts can tell a
 * usage mistake (64) and a bad configuration (78) from a runtime failure.
 */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "cfg.h"
#include "engine.h"
#include "log.h"
#include "mb_conn.h"
#include "pdm_config.h"
#include "pdm_parse.h"
#include "pdm_time.h"
#include "replay.h"

#define DEFAULT_CONFIG_DIR PDM_SYSCONFDIR

struct subcommand {
	const char *name;
	const char *summary;
	const char *usage;
	int (*fn)(int argc, char **argv);
};

static int cmd_run(int argc, char **argv);
static int cmd_check(int argc, char **argv);
static int cmd_replay(int argc, char **argv);
static int cmd_probe(int argc, char **argv);

static const struct subcommand subcommands[] = {
	{ "run", "run the daemon in the foreground (the systemd service)",
	  "Usage: pdmd run [-c DIR]\n"
	  "Polls the configured sources, stores samples, scores windows and\n"
	  "publishes alerts until SIGTERM/SIGINT; SIGHUP reloads the config.\n"
	  "\n"
	  "  -c, --config DIR   configuration directory (default " DEFAULT_CONFIG_DIR ")\n"
	  "  -h, --help         show this help\n",
	  cmd_run },
	{ "check", "validate the configuration and print the resolved setup",
	  "Usage: pdmd check [-c DIR]\n"
	  "Reads DIR/pdmd.conf and DIR/conf.d/*.conf, reports every problem as\n"
	  "file:line: key: reason, and prints the resolved setup if it is valid.\n"
	  "\n"
	  "  -c, --config DIR   configuration directory (default " DEFAULT_CONFIG_DIR ")\n"
	  "  -h, --help         show this help\n",
	  cmd_check },
	{ "replay", "backtest an asset's detector on a CSV export",
	  "Usage: pdmd replay [-c DIR] --asset NAME --csv FILE [--alerts OUT.jsonl]\n"
	  "                   [--scores OUT.csv] [--train-until TIME | --train-rows N]\n"
	  "Runs the daemon's windowing, training schedule, scoring and alert engine\n"
	  "over FILE as fast as the machine allows.\n"
	  "\n"
	  "  -c, --config DIR      configuration directory (default " DEFAULT_CONFIG_DIR ")\n"
	  "  -a, --asset NAME      asset whose sensors the CSV columns feed\n"
	  "  -f, --csv FILE        input CSV (time column, then one column per sensor)\n"
	  "      --alerts FILE     write the alert events as JSON lines\n"
	  "      --scores FILE     write one score row per hop\n"
	  "      --train-until T   train once on rows before time T, then only score\n"
	  "      --train-rows N    train once on the first N rows, then only score\n"
	  "      --time-column C   name of the time column (default: ts_ms, timestamp,\n"
	  "                        datetime or time, whichever the header has)\n"
	  "      --model-out FILE  save the last model trained\n"
	  "      --progress | --no-progress\n"
	  "                        progress on stderr (default: when it is a terminal)\n"
	  "  -h, --help            show this help\n",
	  cmd_replay },
	{ "probe", "poll a Modbus source once and decode its sensors every way",
	  "Usage: pdmd probe [-c DIR] SOURCE\n"
	  "Reads each sensor of SOURCE once and prints its raw registers and the\n"
	  "value decoded in every word order (for commissioning).\n"
	  "\n"
	  "  -c, --config DIR   configuration directory (default " DEFAULT_CONFIG_DIR ")\n"
	  "  -h, --help         show this help\n",
	  cmd_probe },
};

#define N_SUBCOMMANDS (sizeof(subcommands) / sizeof(subcommands[0]))

static void usage_main(FILE *out)
{
	fprintf(out, "Usage: pdmd [--version] [--help] COMMAND [ARGS]\n"
		     "Predictive-maintenance daemon: Modbus/MQTT sensors in, explained\n"
		     "anomaly alerts out over MQTT.\n\nCommands:\n");
	for (size_t i = 0; i < N_SUBCOMMANDS; i++)
		fprintf(out, "  %-8s %s\n", subcommands[i].name, subcommands[i].summary);
	fprintf(out, "\nRun 'pdmd COMMAND --help' for a command's options.\n");
}

static const struct subcommand *find_subcommand(const char *name)
{
	for (size_t i = 0; i < N_SUBCOMMANDS; i++)
		if (strcmp(subcommands[i].name, name) == 0)
			return &subcommands[i];
	return NULL;
}

static int bad_usage(const char *cmd, const char *msg, const char *arg)
{
	fprintf(stderr, "pdmd %s: %s%s%s\nTry 'pdmd %s --help'.\n", cmd, msg, arg ? ": " : "",
		arg ? arg : "", cmd);
	return EX_USAGE;
}

/* Parses the options of commands that take only -c/--config, and checks
 * that one argument named `arg` follows them (at argv[*first]), or none if
 * arg is NULL. Returns -1 to continue, or an exit code. */
static int parse_config_only(int argc, char **argv, const char *arg, const char **dir, int *first)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct subcommand *sc = find_subcommand(argv[0]);
	int c;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			*dir = optarg;
			break;
		case 'h':
			fputs(sc->usage, stdout);
			return EX_OK;
		case ':':
			return bad_usage(sc->name, "option needs a value", argv[optind - 1]);
		default:
			return bad_usage(sc->name, "unknown option", argv[optind - 1]);
		}
	}
	if (!arg && optind < argc)
		return bad_usage(sc->name, "unexpected argument", argv[optind]);
	if (arg && optind != argc - 1) {
		char msg[64];
		snprintf(msg, sizeof(msg), "expected exactly one %s", arg);
		return bad_usage(sc->name, msg, NULL);
	}
	*first = optind;
	return -1;
}

static int cmd_check(int argc, char **argv)
{
	const char *dir = DEFAULT_CONFIG_DIR;
	int first;
	int rc = parse_config_only(argc, argv, NULL, &dir, &first);

	if (rc >= 0)
		return rc;
	struct pdm_config *cfg = cfg_load(dir, stderr);
	if (!cfg) {
		fprintf(stderr, "pdmd check: %s: configuration invalid\n", dir);
		return EX_CONFIG;
	}
	cfg_print(cfg, stdout);
	printf("\n# %s: configuration OK (%zu sources, %zu assets, %zu sensors, from %zu files)\n",
	       dir, cfg->n_sources, cfg->n_assets, cfg->n_sensors, cfg->n_files);
	cfg_free(cfg);
	return EX_OK;
}

/* Loads the configuration for the service: each problem goes through the
 * logger, so journald files errors and warnings at their priority. */
static struct pdm_config *load_config_logged(const char *dir)
{
	char *text = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&text, &len);
	struct pdm_config *cfg = cfg_load(dir, m ? m : stderr);

	if (!m)
		return cfg;
	fclose(m);
	for (char *line = text, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (strstr(line, ": warning: "))
			LOG_W("config: %s", line);
		else
			LOG_E("config: %s", line);
	}
	free(text);
	return cfg;
}

static int cmd_run(int argc, char **argv)
{
	const char *dir = DEFAULT_CONFIG_DIR;
	int first;
	int rc = parse_config_only(argc, argv, NULL, &dir, &first);

	if (rc >= 0)
		return rc;
	struct pdm_config *cfg = load_config_logged(dir);
	if (!cfg) {
		LOG_E("config: %s: configuration invalid, not starting", dir);
		return EX_CONFIG;
	}
	/* engine_new blocks the signals its signalfd reads before any thread
	 * starts, and stops OpenBLAS's pool, whose threads predate the mask. */
	struct engine *e = engine_new(cfg);
	if (!e)
		return EX_SOFTWARE;
	rc = engine_run(e);
	engine_free(e);
	return rc == 0 ? EX_OK : EX_SOFTWARE;
}

/* A time on the command line: ISO-8601 (no zone means UTC), or an epoch
 * number, taken as seconds below 1e11 (before the year 5138) and as
 * milliseconds above, the same rule the CSV reader applies to its cells. */
static int parse_time_arg(const char *s, int64_t *ms)
{
	int64_t v;

	if (pdm_parse_i64(s, 0, INT64_MAX / 1000, &v) == 0) {
		*ms = v < INT64_C(100000000000) ? v * 1000 : v;
		return 0;
	}
	return pdm_parse_iso8601(s, ms);
}

static int cmd_replay(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "asset", required_argument, NULL, 'a' },
		{ "csv", required_argument, NULL, 'f' },
		{ "alerts", required_argument, NULL, 'A' },
		{ "scores", required_argument, NULL, 'S' },
		{ "train-until", required_argument, NULL, 'U' },
		{ "train-rows", required_argument, NULL, 'R' },
		{ "time-column", required_argument, NULL, 'T' },
		{ "model-out", required_argument, NULL, 'M' },
		{ "progress", no_argument, NULL, 'P' },
		{ "no-progress", no_argument, NULL, 'Q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = DEFAULT_CONFIG_DIR;
	struct replay_opts ro = { .train_until_ms = INT64_MIN, .progress = -1 };
	int c, rc;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":c:a:f:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			dir = optarg;
			break;
		case 'a':
			ro.asset = optarg;
			break;
		case 'f':
			ro.csv = optarg;
			break;
		case 'A':
			ro.alerts_path = optarg;
			break;
		case 'S':
			ro.scores_path = optarg;
			break;
		case 'T':
			ro.time_column = optarg;
			break;
		case 'M':
			ro.model_out = optarg;
			break;
		case 'P':
			ro.progress = 1;
			break;
		case 'Q':
			ro.progress = 0;
			break;
		case 'U': {
			int64_t t;
			if (parse_time_arg(optarg, &t) < 0)
				return bad_usage("replay",
						 "--train-until: expected epoch ms or ISO-8601 time",
						 optarg);
			ro.train_until_ms = t;
			break;
		}
		case 'R': {
			char *end;
			errno = 0;
			long long n = strtoll(optarg, &end, 10);
			if (errno || end == optarg || *end || n <= 0)
				return bad_usage("replay", "--train-rows: expected a positive count",
						 optarg);
			ro.train_rows = n;
			break;
		}
		case 'h':
			fputs(find_subcommand("replay")->usage, stdout);
			return EX_OK;
		case ':':
			return bad_usage("replay", "option needs a value", argv[optind - 1]);
		default:
			return bad_usage("replay", "unknown option", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return bad_usage("replay", "unexpected argument", argv[optind]);
	if (!ro.asset || !ro.csv)
		return bad_usage("replay", "--asset and --csv are required", NULL);
	if (ro.train_rows > 0 && ro.train_until_ms != INT64_MIN)
		return bad_usage("replay", "--train-until and --train-rows exclude each other",
				 NULL);
	struct pdm_config *cfg = cfg_load(dir, stderr);
	if (!cfg)
		return EX_CONFIG;
	rc = replay_run(cfg, &ro);
	cfg_free(cfg);
	return rc;
}

static int cmd_probe(int argc, char **argv)
{
	const char *dir = DEFAULT_CONFIG_DIR;
	int first;
	int rc = parse_config_only(argc, argv, "SOURCE", &dir, &first);

	if (rc >= 0)
		return rc;
	struct pdm_config *cfg = cfg_load(dir, stderr);
	if (!cfg)
		return EX_CONFIG;
	const char *name = argv[first];
	const struct cfg_source *src = cfg_find_source(cfg, name);
	if (!src || src->type == CFG_SRC_MQTT) {
		fprintf(stderr, "pdmd probe: %s: %s\n", name,
			src ? "an MQTT source; probe reads Modbus sources"
			    : "no such [source] in the configuration");
		cfg_free(cfg);
		return EX_USAGE;
	}
	size_t si = (size_t)(src - cfg->sources), np = 0;
	struct mb_point *points = calloc(cfg->n_sensors ? cfg->n_sensors : 1, sizeof(*points));
	if (!points) {
		cfg_free(cfg);
		return EX_OSERR;
	}
	for (size_t q = 0; q < cfg->n_sensors; q++)
		if (cfg->sensors[q].source == si)
			engine_mb_point(cfg, q, &points[np++]);
	struct mb_group group = {
		.name = src->name,
		.unit_id = src->unit,
		.poll_ms = src->poll_ms,
		.timeout_ms = src->timeout_ms,
		.points = points,
		.n_points = np,
	};
	struct mb_conn_cfg cc;
	engine_mb_conn_cfg(src, &cc);
	cc.groups = &group;
	cc.n_groups = 1;
	rc = mb_probe(&cc, stdout);
	free(points);
	cfg_free(cfg);
	if (rc < 0) {
		fprintf(stderr, "pdmd probe: %s: not every sensor could be read\n", name);
		return EX_UNAVAILABLE;
	}
	return EX_OK;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage_main(stderr);
		return EX_USAGE;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
		printf("pdmd %s\n", PDM_VERSION);
		return EX_OK;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage_main(stdout);
		return EX_OK;
	}
	if (argv[1][0] == '-') {
		fprintf(stderr, "pdmd: unknown option: %s\nTry 'pdmd --help'.\n", argv[1]);
		return EX_USAGE;
	}
	cfg_set_check_dims(engine_check_dims);
	const struct subcommand *sc = find_subcommand(argv[1]);
	if (!sc) {
		fprintf(stderr, "pdmd: unknown command: %s\nTry 'pdmd --help'.\n", argv[1]);
		return EX_USAGE;
	}
	return sc->fn(argc - 1, argv + 1);
}
