/*
 * plantsim_cmd.c - parsing of run-time commands and scenario files.
 *
 * Scenario files are validated completely before the simulation starts, so
 * a typo on line 40 is reported at once instead of after forty minutes.
 */
#include "plantsim_cmd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pdm_parse.h"

#define MAX_TOKENS 16
#define BEARING_RAMP_MS 30000  /* wear grows over half a minute unless ramp= says */

struct step {
	int64_t at_ms;
	int line;
	bool done;
	struct ps_cmd cmd;
};

struct ps_scenario {
	struct step *steps;
	size_t n;
};

static int tokenize(char *s, char **tok)
{
	int n = 0;
	char *save = NULL;
	char *hash = strchr(s, '#');

	if (hash)
		*hash = '\0';
	for (char *t = strtok_r(s, " \t\r\n", &save); t; t = strtok_r(NULL, " \t\r\n", &save)) {
		if (n == MAX_TOKENS)
			return -E2BIG;
		tok[n++] = t;
	}
	return n;
}

#define FAIL(...) do { snprintf(err, errlen, __VA_ARGS__); return -EINVAL; } while (0)

static int parse_asset(const struct ps_plant *p, const char *name, bool allow_all,
		       int *out, char *err, size_t errlen)
{
	if (allow_all && strcmp(name, "all") == 0) {
		*out = -1;
		return 0;
	}
	int i = ps_plant_find(p, name);
	if (i < 0) {
		char names[256] = "";
		for (int k = 0; k < ps_plant_count(p); k++) {
			size_t used = strlen(names);
			snprintf(names + used, sizeof(names) - used, "%s%s", k ? ", " : "",
				 ps_plant_asset(p, k)->name);
		}
		FAIL("unknown asset '%s' (assets: %s)", name, names);
	}
	*out = i;
	return 0;
}

static int parse_kind(const char *s, int *out, char *err, size_t errlen)
{
	int k = ps_fault_parse(s);
	if (k < 0)
		FAIL("unknown fault '%s' (expected bearing_wear, cavitation, stuck, spikes, offset or "
		     "broken)",
		     s);
	*out = k;
	return 0;
}

static int parse_fault(const struct ps_plant *p, char **tok, int n, struct ps_cmd *c,
		       char *err, size_t errlen)
{
	bool ramp_given = false;

	if (n < 3)
		FAIL("expected: fault ASSET KIND [severity=0..1] [sensor=NAME] [for DURATION] "
		     "[ramp=DURATION]");
	if (parse_asset(p, tok[1], false, &c->asset, err, errlen) < 0 ||
	    parse_kind(tok[2], &c->kind, err, errlen) < 0)
		return -EINVAL;
	c->severity = 1.0;
	for (int i = 3; i < n; i++) {
		const char *val = strchr(tok[i], '=');
		if (strcmp(tok[i], "for") == 0) {
			if (i + 1 >= n)
				FAIL("'for' needs a duration, e.g. 'for 60s'");
			val = tok[++i];
			goto duration;
		}
		if (!val)
			FAIL("unexpected '%s' (expected key=value or 'for DURATION')", tok[i]);
		val++;
		if (strncmp(tok[i], "severity=", 9) == 0) {
			if (pdm_parse_double(val, &c->severity) < 0 || c->severity < 0.0 ||
			    c->severity > 1.0)
				FAIL("severity must be a number from 0 to 1, not '%s'", val);
		} else if (strncmp(tok[i], "sensor=", 7) == 0) {
			c->sensor = ps_sensor_parse(val);
			if (c->sensor < 0)
				FAIL("unknown sensor '%s' (expected speed, flow, pressure, current, "
				     "vibration_rms, bearing_temp or motor_temp)", val);
		} else if (strncmp(tok[i], "ramp=", 5) == 0) {
			if (pdm_parse_duration_ms(val, 1000, &c->ramp_ms) < 0)
				FAIL("ramp must be a duration like 30s, not '%s'", val);
			ramp_given = true;
		} else if (strncmp(tok[i], "for=", 4) == 0) {
duration:
			if (pdm_parse_duration_ms(val, 1000, &c->for_ms) < 0 || c->for_ms <= 0)
				FAIL("'for' must be a positive duration like 60s, not '%s'", val);
		} else {
			FAIL("unknown option '%s' (expected severity=, sensor=, ramp= or for)",
			     tok[i]);
		}
	}
	bool needs_sensor = ps_fault_needs_sensor(c->kind);
	if (needs_sensor && c->sensor < 0)
		FAIL("fault %s needs sensor=NAME", tok[2]);
	if (!needs_sensor && c->sensor >= 0)
		FAIL("fault %s acts on the whole pump; sensor= applies to stuck, spikes, offset and "
		     "broken only",
		     tok[2]);
	if (!ramp_given && c->kind == PS_F_BEARING_WEAR) {
		c->ramp_ms = BEARING_RAMP_MS;
		if (c->for_ms > 0 && c->ramp_ms > c->for_ms / 2)
			c->ramp_ms = c->for_ms / 2;
	}
	return 0;
}

int ps_cmd_parse(const struct ps_plant *p, const char *line, struct ps_cmd *c,
		 char *err, size_t errlen)
{
	char buf[512];
	char *tok[MAX_TOKENS];

	if (strlen(line) >= sizeof(buf))
		FAIL("line too long");
	strcpy(buf, line);
	int n = tokenize(buf, tok);
	if (n < 0)
		FAIL("too many words");
	if (n == 0)
		return 1;
	memset(c, 0, sizeof(*c));
	c->sensor = -1;
	c->kind = -1;
	c->asset = -1;
	if (strcmp(tok[0], "fault") == 0) {
		c->type = PS_CMD_FAULT;
		return parse_fault(p, tok, n, c, err, errlen);
	}
	if (strcmp(tok[0], "clear") == 0) {
		c->type = PS_CMD_CLEAR;
		if (n < 2 || n > 3)
			FAIL("expected: clear ASSET|all [KIND]");
		if (parse_asset(p, tok[1], true, &c->asset, err, errlen) < 0)
			return -EINVAL;
		if (n == 3 && parse_kind(tok[2], &c->kind, err, errlen) < 0)
			return -EINVAL;
		return 0;
	}
	if (strcmp(tok[0], "speed") == 0) {
		c->type = PS_CMD_SPEED;
		if (n != 3)
			FAIL("expected: speed ASSET RPM|auto");
		if (parse_asset(p, tok[1], false, &c->asset, err, errlen) < 0)
			return -EINVAL;
		if (strcmp(tok[2], "auto") == 0)
			c->rpm = -1.0;
		else if (pdm_parse_double(tok[2], &c->rpm) < 0 || c->rpm < 0.0 || c->rpm > 1628.0)
			FAIL("speed must be 0..1628 rpm or 'auto', not '%s'", tok[2]);
		return 0;
	}
	struct { const char *name; enum ps_cmd_type type; } bare[] = {
		{ "next", PS_CMD_NEXT }, { "status", PS_CMD_STATUS }, { "quit", PS_CMD_QUIT },
	};
	for (size_t i = 0; i < sizeof(bare) / sizeof(bare[0]); i++) {
		if (strcmp(tok[0], bare[i].name) == 0) {
			if (n != 1)
				FAIL("'%s' takes no arguments", tok[0]);
			c->type = bare[i].type;
			return 0;
		}
	}
	FAIL("unknown command '%s' (expected fault, clear, speed, next, status or quit)", tok[0]);
}

static int step_cmp(const void *a, const void *b)
{
	const struct step *x = a, *y = b;

	if (x->at_ms != y->at_ms)
		return x->at_ms < y->at_ms ? -1 : 1;
	return x->line - y->line;
}

struct ps_scenario *ps_scenario_load(const char *path, const struct ps_plant *p)
{
	struct ps_scenario *sc = calloc(1, sizeof(*sc));
	FILE *f = fopen(path, "r");
	char line[512], err[256];
	size_t cap = 0;
	int lineno = 0;

	if (!sc || !f) {
		LOG_E("plantsim: scenario %s: %s", path, strerror(errno));
		goto fail;
	}
	while (fgets(line, sizeof(line), f)) {
		char *tok, *rest, *save = NULL;
		struct ps_cmd cmd;
		int64_t at;

		lineno++;
		if (!strchr(line, '\n') && !feof(f)) {
			LOG_E("plantsim: %s:%d: line longer than %zu characters", path, lineno,
			      sizeof(line) - 2);
			goto fail;
		}
		rest = line + strspn(line, " \t");
		if (*rest == '#' || *rest == '\n' || *rest == '\r' || *rest == '\0')
			continue;
		tok = strtok_r(rest, " \t\r\n", &save);
		char *when = strtok_r(NULL, " \t\r\n", &save);
		if (!tok || strcmp(tok, "at") != 0 || !when ||
		    pdm_parse_duration_ms(when, 1000, &at) < 0) {
			LOG_E("plantsim: %s:%d: expected 'at TIME COMMAND', e.g. 'at 90s fault pump-a "
			      "bearing_wear severity=1.0 for 60s'", path, lineno);
			goto fail;
		}
		int rc = ps_cmd_parse(p, save ? save : "", &cmd, err, sizeof(err));
		if (rc == 1)
			snprintf(err, sizeof(err), "a command is missing after 'at %s'", when);
		if (rc == 0 && (cmd.type == PS_CMD_NEXT || cmd.type == PS_CMD_STATUS))
			snprintf(err, sizeof(err), "'next' and 'status' are for stdin only"), rc = 1;
		if (rc != 0) {
			LOG_E("plantsim: %s:%d: %s", path, lineno, err);
			goto fail;
		}
		if (sc->n == cap) {
			cap = cap ? cap * 2 : 16;
			struct step *grown = realloc(sc->steps, cap * sizeof(*grown));
			if (!grown) {
				LOG_E("plantsim: scenario %s: out of memory", path);
				goto fail;
			}
			sc->steps = grown;
		}
		sc->steps[sc->n++] = (struct step){ .at_ms = at, .line = lineno, .cmd = cmd };
	}
	if (ferror(f)) {
		LOG_E("plantsim: scenario %s: read error", path);
		goto fail;
	}
	fclose(f);
	if (sc->n)
		qsort(sc->steps, sc->n, sizeof(*sc->steps), step_cmp);
	LOG_I("plantsim: scenario %s: %zu steps", path, sc->n);
	return sc;
fail:
	if (f)
		fclose(f);
	ps_scenario_free(sc);
	return NULL;
}

void ps_scenario_free(struct ps_scenario *sc)
{
	if (!sc)
		return;
	free(sc->steps);
	free(sc);
}

bool ps_scenario_due(struct ps_scenario *sc, int64_t elapsed_ms, struct ps_cmd *cmd)
{
	if (!sc)
		return false;
	for (size_t i = 0; i < sc->n && sc->steps[i].at_ms <= elapsed_ms; i++) {
		if (!sc->steps[i].done) {
			sc->steps[i].done = true;
			*cmd = sc->steps[i].cmd;
			return true;
		}
	}
	return false;
}

bool ps_scenario_take_next_fault(struct ps_scenario *sc, struct ps_cmd *cmd)
{
	if (!sc)
		return false;
	for (size_t i = 0; i < sc->n; i++) {
		if (!sc->steps[i].done && sc->steps[i].cmd.type == PS_CMD_FAULT) {
			sc->steps[i].done = true;
			*cmd = sc->steps[i].cmd;
			return true;
		}
	}
	return false;
}
