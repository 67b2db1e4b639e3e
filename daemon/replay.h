/*
 * replay.h - `pdmd replay`: a backtest of one asset over a CSV export.
 *
 * Runs the daemon's own detector (windowing, scoring, alert engine) and its
 * training decision (trainer_fit) in data time, as fast as the machine
 * allows, and writes what the daemon would have published.
 */
#ifndef PDM_REPLAY_H
#define PDM_REPLAY_H

#include <stdint.h>

struct pdm_config;

struct replay_opts {
	const char *asset;
	const char *csv;
	const char *time_column;  /* NULL: found by name */
	const char *alerts_path;  /* JSON lines, or NULL */
	const char *scores_path;  /* CSV, or NULL */
	const char *model_out;    /* save the last model here, or NULL */
	int64_t train_until_ms;   /* > INT64_MIN: train once on rows before this time */
	int64_t train_rows;       /* > 0: train once on the first N rows */
	int progress;             /* -1 auto (stderr is a terminal), 0 off, 1 on */
};

/* Returns 0, or a sysexits code (EX_DATAERR for bad input, ...). Errors are
 * printed to stderr naming file:line:column. */
int replay_run(const struct pdm_config *cfg, const struct replay_opts *o);

#endif
