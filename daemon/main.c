/*
 * main.c - the pdmd command line: run, check, replay, probe.
 *
 * Exit codes follow sysexits.h so that systemd and scripts can tell a
 * usage mistake (64) and a bad configuration (78) from a runtime failure.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "cfg.h"
#include "log.h"
#include "pdm_config.h"

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

/* Parses the options common to commands that take only -c/--config.
 * Returns -1 to continue, or an exit code. */
static int parse_config_only(int argc, char **argv, const char **dir, int *optind_out)
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
	*optind_out = optind;
	return -1;
}

static int cmd_check(int argc, char **argv)
{
	const char *dir = DEFAULT_CONFIG_DIR;
	int first;
	int rc = parse_config_only(argc, argv, &dir, &first);

	if (rc >= 0)
		return rc;
	if (first < argc)
		return bad_usage("check", "unexpected argument", argv[first]);
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
	int rc = parse_config_only(argc, argv, &dir, &first);

	if (rc >= 0)
		return rc;
	if (first < argc)
		return bad_usage("run", "unexpected argument", argv[first]);
	struct pdm_config *cfg = load_config_logged(dir);
	if (!cfg) {
		LOG_E("config: %s: configuration invalid, not starting", dir);
		return EX_CONFIG;
	}
	cfg_free(cfg);
	LOG_E("run: the detection pipeline is not built yet");
	return EX_SOFTWARE;
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
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = DEFAULT_CONFIG_DIR, *asset = NULL, *csv = NULL;
	int c;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":c:a:f:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			dir = optarg;
			break;
		case 'a':
			asset = optarg;
			break;
		case 'f':
			csv = optarg;
			break;
		case 'A':
		case 'S':
		case 'U':
		case 'R':
			break;
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
	if (!asset || !csv)
		return bad_usage("replay", "--asset and --csv are required", NULL);
	struct pdm_config *cfg = cfg_load(dir, stderr);
	if (!cfg)
		return EX_CONFIG;
	cfg_free(cfg);
	fprintf(stderr, "pdmd replay: not built yet\n");
	return EX_SOFTWARE;
}

static int cmd_probe(int argc, char **argv)
{
	const char *dir = DEFAULT_CONFIG_DIR;
	int first;
	int rc = parse_config_only(argc, argv, &dir, &first);

	if (rc >= 0)
		return rc;
	if (first != argc - 1)
		return bad_usage("probe", "expected exactly one SOURCE", NULL);
	struct pdm_config *cfg = cfg_load(dir, stderr);
	if (!cfg)
		return EX_CONFIG;
	cfg_free(cfg);
	fprintf(stderr, "pdmd probe: not built yet\n");
	return EX_SOFTWARE;
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
	const struct subcommand *sc = find_subcommand(argv[1]);
	if (!sc) {
		fprintf(stderr, "pdmd: unknown command: %s\nTry 'pdmd --help'.\n", argv[1]);
		return EX_USAGE;
	}
	return sc->fn(argc - 1, argv + 1);
}
