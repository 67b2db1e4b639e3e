/*
 * pdmctl.h - what the pdmctl commands share: the loaded configuration, the
 * read-only store handle, and small formatting helpers.
 *
 * pdmctl only reads the daemon's state directory (status.json, the SQLite
 * store through a read-only handle, models/) and asks for actions by
 * creating files under control/, so it never competes with the daemon for
 * the database's write lock.
 */
#ifndef PDMCTL_H
#define PDMCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "store.h"

struct pdmctl {
	const char *config_dir;
	struct pdm_config *cfg; /* NULL until pdmctl_load_cfg */
};

/* Loads the configuration; prints the problems and returns EX_CONFIG on
 * failure, 0 on success. */
int pdmctl_load_cfg(struct pdmctl *c);

/* Opens the store read-only; prints why and returns NULL with *ex set to an
 * exit code when it cannot. */
struct store *pdmctl_open_store(struct pdmctl *c, int *ex);

/* Parses a point in time: ISO-8601, or a duration meaning that long ago
 * ("2h"), or "now". Returns 0 or -EINVAL. */
int pdmctl_parse_when(const char *s, int64_t now_ms, int64_t *out_ms);

/* --since/--until of command `cmd` into [*t0, *t1) in ms; "now" includes
 * the sample stamped this very millisecond. 0, or EX_USAGE after saying why. */
int pdmctl_parse_range(const char *cmd, const char *since, const char *until, int64_t *t0,
		       int64_t *t1);

struct cJSON;

/* An alert payload's contributors for people: "vibration_rms 62% (4.081 vs
 * 1.947 mm/s), flow 20%": share, then the window's value against what the
 * model expected when the payload has them; "-" when there are none. */
void pdmctl_fmt_contributors(const struct cJSON *alert, char *buf, size_t len);

/* "45s", "12m", "3h05m", "2d04h". */
void pdmctl_fmt_age(int64_t ms, char *buf, size_t len);

/* One option of a command besides -c/--config and -h/--help, which every
 * command has: with str it takes an argument (stored there), else it is a
 * flag (set true). short_name 0: long form only. */
struct pdmctl_opt {
	const char *name;
	char short_name;
	const char **str;
	bool *flag;
};

/* pdmctl_getopt's "parsed, go on with optind at the first operand". */
#define PDMCTL_GO_ON (-1)

/* Parses a command's options (opts ends with { NULL }) and checks that
 * exactly one operand named `operand` follows them (at argv[optind]), or
 * none if operand is NULL. Returns PDMCTL_GO_ON, or the exit code the
 * command returns: 0 after printing usage for --help, EX_USAGE after saying
 * what is wrong. */
int pdmctl_getopt(struct pdmctl *c, const char *cmd, const char *usage,
		  const struct pdmctl_opt *opts, const char *operand, int argc, char **argv);

/* Prints "pdmctl CMD: message" to stderr and returns EX_USAGE. */
int pdmctl_usage_error(const char *cmd, const char *msg, const char *arg);

/* Commands in their own files. argv[0] is the command name. */
int pdmctl_cmd_watch(struct pdmctl *c, int argc, char **argv);
int pdmctl_cmd_plot(struct pdmctl *c, int argc, char **argv);

/* Alert episodes of one asset from the outbox, for plots: [start, end);
 * end is INT64_MAX for an episode still open. */
struct pdmctl_episode {
	int64_t start_ms, end_ms;
	bool critical;
};
/* Fills up to max episodes of `asset` overlapping [t0, t1); *n = count.
 * Returns 0 or a negative code. */
int pdmctl_episodes(struct pdmctl *c, struct store *s, const char *asset, int64_t t0, int64_t t1,
		    struct pdmctl_episode *ep, size_t max, size_t *n);

#endif
