/*
 * plantsim_cmd.h - plantsim's command language and scenario files.
 *
 * The same commands are typed on stdin and written in scenario files:
 *
 *   fault ASSET KIND [severity=0..1] [sensor=NAME] [for DURATION] [ramp=DURATION]
 *   clear ASSET|all [KIND]
 *   speed ASSET RPM|auto
 *   next          (inject the scenario's next pending fault now, like SIGUSR1)
 *   status        (print the active faults on stderr)
 *   quit
 *
 * KIND is bearing_wear, cavitation, stuck, spikes, offset or broken; the last four need
 * sensor=NAME. A scenario file holds lines "at TIME COMMAND" (TIME is a
 * duration since the start in simulated time: 90s, 2m, 1500ms; a bare number
 * is seconds), blank lines and # comments.
 */
#ifndef PLANTSIM_CMD_H
#define PLANTSIM_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "plantsim_model.h"

enum ps_cmd_type {
	PS_CMD_FAULT,
	PS_CMD_CLEAR,
	PS_CMD_SPEED,
	PS_CMD_NEXT,
	PS_CMD_STATUS,
	PS_CMD_QUIT,
};

struct ps_cmd {
	enum ps_cmd_type type;
	int asset;          /* index in the plant; -1 = all (clear) */
	int kind;           /* enum ps_fault_kind; -1 = all (clear) */
	double severity;
	int sensor;         /* -1 when not given */
	int64_t for_ms;     /* 0 = until cleared */
	int64_t ramp_ms;
	double rpm;         /* speed: < 0 = back to the schedule */
};

/*
 * Parses one command. Returns 0, 1 for a blank or comment line (nothing to
 * do), or -EINVAL with a message for the user in err.
 */
int ps_cmd_parse(const struct ps_plant *p, const char *line, struct ps_cmd *cmd,
		 char *err, size_t errlen);

struct ps_scenario;

/* Loads and validates a scenario file against the plant's assets.
 * Returns NULL after logging "FILE:LINE: what was expected". */
struct ps_scenario *ps_scenario_load(const char *path, const struct ps_plant *p);
void ps_scenario_free(struct ps_scenario *sc);

/* Takes the next step due at or before elapsed_ms (simulated time since
 * the start); returns false when none is due. Steps come out in time order,
 * ties in file order. */
bool ps_scenario_due(struct ps_scenario *sc, int64_t elapsed_ms, struct ps_cmd *cmd);

/* Takes the earliest fault step not yet executed, whatever its time (for
 * SIGUSR1 and `next`); returns false when none is left. */
bool ps_scenario_take_next_fault(struct ps_scenario *sc, struct ps_cmd *cmd);

#endif
