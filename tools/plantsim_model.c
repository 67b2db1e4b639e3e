/*
 * plantsim_model.c - pump physics, regimes, noise and faults for plantsim.
 *
 * Per tick, for each asset: the regime schedule picks a speed setpoint
 * (several levels, changing every few minutes, now and then a planned
 * stop); the drive ramps the true speed toward it; the affinity laws give
 * flow (~n), discharge pressure (~n^2) and hydraulic power, from which the
 * motor current follows; vibration grows with n^2; the bearing and motor
 * temperatures follow first-order lags toward ambient plus their load
 * terms. A slow random walk of the system (valve position, demand) keeps
 * flow and pressure from being exact functions of speed. Faults act on the
 * physics (bearing wear, cavitation) or on the measurement (stuck, spikes,
 * offset, broken).
 *
 * Per-asset parameters are drawn from the seed, so pump-a and pump-b are
 * alike but not identical. Nothing here reads a clock.
 */
#include "plantsim_model.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define RATED_RPM 1480.0
#define RAMP_RPM_PER_S 60.0
#define MIN_RUN_N 0.05       /* below this speed ratio the pump counts as stopped */
#define STOPS_AFTER_S 600.0  /* no planned stop in the first ten minutes */
#define STOP_PROB 0.1        /* per regime change */
#define WEAR_HEAT_FROM 0.4   /* bearing wear severity from which the bearing heats */

static const char *const sensor_names[PS_NSENSORS] = {
	[PS_SPEED] = "speed",
	[PS_FLOW] = "flow",
	[PS_PRESSURE] = "pressure",
	[PS_CURRENT] = "current",
	[PS_VIBRATION] = "vibration_rms",
	[PS_BEARING_TEMP] = "bearing_temp",
	[PS_MOTOR_TEMP] = "motor_temp",
};

static const char *const sensor_units[PS_NSENSORS] = {
	[PS_SPEED] = "rpm",
	[PS_FLOW] = "m3/h",
	[PS_PRESSURE] = "bar",
	[PS_CURRENT] = "A",
	[PS_VIBRATION] = "mm/s",
	[PS_BEARING_TEMP] = "degC",
	[PS_MOTOR_TEMP] = "degC",
};

/* Typical size of a spike on each sensor at severity 1. */
static const double spike_scale[PS_NSENSORS] = {
	[PS_SPEED] = 150.0,
	[PS_FLOW] = 25.0,
	[PS_PRESSURE] = 1.5,
	[PS_CURRENT] = 12.0,
	[PS_VIBRATION] = 6.0,
	[PS_BEARING_TEMP] = 15.0,
	[PS_MOTOR_TEMP] = 15.0,
};

static const char *const fault_names[PS_F_NKINDS] = {
	[PS_F_BEARING_WEAR] = "bearing_wear",
	[PS_F_CAVITATION] = "cavitation",
	[PS_F_STUCK] = "stuck",
	[PS_F_SPIKES] = "spikes",
	[PS_F_OFFSET] = "offset",
	[PS_F_BROKEN] = "broken",
};

/* Speed levels of the regime schedule, as fractions of rated speed. */
static const double regime_levels[] = { 0.62, 0.72, 0.82, 0.91, 1.0 };
#define NLEVELS ((int)(sizeof(regime_levels) / sizeof(regime_levels[0])))

struct rng {
	uint64_t s[4];
	bool has_spare;
	double spare;
};

struct asset_state {
	struct ps_asset pub;
	struct rng proc;   /* regimes and process/measurement noise */
	struct rng fault;  /* everything faults draw, so they never shift `proc` */
	/* parameters */
	double q0, p0, eta_pump, i_mag, v0, v1, amb0, amb_phase;
	double tau_bearing_s, tau_motor_s, bearing_rise, motor_rise, i_rated;
	/* state */
	double speed, setpoint, sysvar, t_bearing, t_motor;
	double hold;             /* < 0: follow the schedule */
	int64_t regime_end;      /* tick */
	int level;
	bool planned_stop;
};

struct ps_plant {
	int n;
	struct asset_state *a;
	double rate;
	double dt;
	bool stops;
	double regime_min_s, regime_max_s;
	int64_t tick;
};

/* ---- random numbers: xoshiro256** seeded by splitmix64 ---- */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void rng_seed(struct rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&seed);
	r->has_spare = false;
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t rng_u64(struct rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

/* Uniform in [0, 1). */
static double rng_unit(struct rng *r)
{
	return (double)(rng_u64(r) >> 11) * 0x1.0p-53;
}

static double rng_range(struct rng *r, double lo, double hi)
{
	return lo + (hi - lo) * rng_unit(r);
}

/* Standard normal (Marsaglia polar method). */
static double rng_normal(struct rng *r)
{
	double u, v, s;

	if (r->has_spare) {
		r->has_spare = false;
		return r->spare;
	}
	do {
		u = 2.0 * rng_unit(r) - 1.0;
		v = 2.0 * rng_unit(r) - 1.0;
		s = u * u + v * v;
	} while (s >= 1.0 || s == 0.0);
	s = sqrt(-2.0 * log(s) / s);
	r->spare = v * s;
	r->has_spare = true;
	return u * s;
}

/* ---- names ---- */

const char *ps_sensor_name(enum ps_sensor s)
{
	return (unsigned)s < PS_NSENSORS ? sensor_names[s] : "?";
}

const char *ps_sensor_unit(enum ps_sensor s)
{
	return (unsigned)s < PS_NSENSORS ? sensor_units[s] : "?";
}

int ps_sensor_parse(const char *s)
{
	for (int i = 0; i < PS_NSENSORS; i++)
		if (strcmp(s, sensor_names[i]) == 0)
			return i;
	return -EINVAL;
}

const char *ps_fault_name(enum ps_fault_kind k)
{
	return (unsigned)k < PS_F_NKINDS ? fault_names[k] : "?";
}

int ps_fault_parse(const char *s)
{
	for (int i = 0; i < PS_F_NKINDS; i++)
		if (strcmp(s, fault_names[i]) == 0)
			return i;
	return -EINVAL;
}

bool ps_fault_needs_sensor(enum ps_fault_kind k)
{
	return k == PS_F_STUCK || k == PS_F_SPIKES || k == PS_F_OFFSET || k == PS_F_BROKEN;
}

/* ---- construction ---- */

static int parse_assets(struct ps_plant *p, const char *list)
{
	char *copy = strdup(list), *save = NULL;
	int nmb = 0, nmq = 0, rc = 0;

	if (!copy)
		return -ENOMEM;
	p->n = 0;
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
		p->n++;
	free(copy);
	if (p->n == 0 || p->n > 64) {
		LOG_E("plantsim: --assets: expected 1 to 64 assets, got %d", p->n);
		return -EINVAL;
	}
	p->a = calloc((size_t)p->n, sizeof(*p->a));
	copy = strdup(list);
	if (!p->a || !copy) {
		free(copy);
		return -ENOMEM;
	}
	int i = 0;
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save), i++) {
		struct ps_asset *a = &p->a[i].pub;
		char *colon = strchr(tok, ':');
		const char *feed = colon ? colon + 1 : "modbus";

		if (colon)
			*colon = '\0';
		if (!tok[0] || strlen(tok) >= PS_NAME_MAX ||
		    strspn(tok, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") !=
			    strlen(tok)) {
			LOG_E("plantsim: --assets: bad asset name '%s' (1-%d letters, digits, "
			      "'_', '.' or '-')", tok, PS_NAME_MAX - 1);
			rc = -EINVAL;
			break;
		}
		for (int j = 0; j < i; j++) {
			if (strcmp(p->a[j].pub.name, tok) == 0) {
				LOG_E("plantsim: --assets: asset '%s' named twice", tok);
				rc = -EINVAL;
			}
		}
		if (rc)
			break;
		snprintf(a->name, sizeof(a->name), "%s", tok);
		if (strcmp(feed, "modbus") == 0) {
			a->feed = PS_FEED_MODBUS;
			a->feed_index = nmb++;
		} else if (strcmp(feed, "mqtt") == 0) {
			a->feed = PS_FEED_MQTT;
			a->feed_index = nmq++;
		} else {
			LOG_E("plantsim: --assets: asset '%s': feed '%s' is neither modbus nor mqtt",
			      tok, feed);
			rc = -EINVAL;
			break;
		}
	}
	free(copy);
	return rc;
}

static double steady_bearing(const struct asset_state *s, double amb, double n)
{
	return amb + s->bearing_rise * n * n;
}

static double hydraulic_kw(double q_m3h, double p_bar)
{
	return q_m3h / 3600.0 * p_bar * 1e5 / 1000.0;
}

/* Motor phase current for a shaft power; the magnetising part flows
 * whenever the motor is energised. */
static double motor_current(const struct asset_state *s, double shaft_kw, bool energised)
{
	if (!energised)
		return 0.0;
	double i_load = shaft_kw * 1000.0 / (sqrt(3.0) * 400.0 * 0.92);
	return sqrt(s->i_mag * s->i_mag + i_load * i_load);
}

static double ambient(const struct asset_state *s, double t_s)
{
	return s->amb0 + 3.0 * sin(2.0 * M_PI * t_s / 86400.0 + s->amb_phase);
}

static void schedule_next_regime(struct ps_plant *p, struct asset_state *s, bool first);

static void asset_init(struct ps_plant *p, struct asset_state *s, uint64_t seed, int idx)
{
	uint64_t base = seed ^ (0xa0761d6478bd642fULL * (uint64_t)(idx + 1));

	rng_seed(&s->proc, base);
	rng_seed(&s->fault, base ^ 0xe7037ed1a0b428dbULL);
	struct rng *r = &s->proc;
	s->q0 = rng_range(r, 105.0, 135.0);
	s->p0 = rng_range(r, 5.2, 6.8);
	s->eta_pump = rng_range(r, 0.68, 0.76);
	s->i_mag = rng_range(r, 12.0, 16.0);
	s->v0 = rng_range(r, 0.35, 0.55);
	s->v1 = rng_range(r, 1.3, 1.9);
	s->amb0 = rng_range(r, 22.0, 27.0);
	s->amb_phase = rng_range(r, 0.0, 2.0 * M_PI);
	s->tau_bearing_s = rng_range(r, 150.0, 250.0);
	s->tau_motor_s = rng_range(r, 600.0, 900.0);
	s->bearing_rise = rng_range(r, 24.0, 32.0);
	s->motor_rise = rng_range(r, 45.0, 60.0);
	s->i_rated = motor_current(s, hydraulic_kw(s->q0, s->p0) / s->eta_pump, true);
	s->hold = -1.0;
	s->sysvar = 1.0;

	schedule_next_regime(p, s, true);
	/* Start warm and at speed: a plant that has been running for hours, so
	 * the first minutes are not one long thermal transient. */
	double n = s->setpoint / RATED_RPM;
	double amb = ambient(s, 0.0);
	double q = s->q0 * n, pr = s->p0 * n * n;
	double i = motor_current(s, hydraulic_kw(q, pr) / s->eta_pump, true);
	s->speed = s->setpoint;
	s->t_bearing = steady_bearing(s, amb, n);
	s->t_motor = amb + s->motor_rise * (i / s->i_rated) * (i / s->i_rated);
}

struct ps_plant *ps_plant_new(const char *assets, uint64_t seed, double rate_hz, bool stops,
			      double regime_min_s, double regime_max_s)
{
	struct ps_plant *p;

	if (!(rate_hz > 0.0) || rate_hz > 1000.0 || !(regime_min_s > 0.0) ||
	    regime_max_s < regime_min_s)
		return NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->rate = rate_hz;
	p->dt = 1.0 / rate_hz;
	p->stops = stops;
	p->regime_min_s = regime_min_s;
	p->regime_max_s = regime_max_s;
	if (parse_assets(p, assets ? assets : "pump-a:modbus,pump-b:modbus,pump-c:mqtt") < 0) {
		ps_plant_free(p);
		return NULL;
	}
	for (int i = 0; i < p->n; i++)
		asset_init(p, &p->a[i], seed, i);
	return p;
}

void ps_plant_free(struct ps_plant *p)
{
	if (!p)
		return;
	free(p->a);
	free(p);
}

int ps_plant_count(const struct ps_plant *p)
{
	return p->n;
}

const struct ps_asset *ps_plant_asset(const struct ps_plant *p, int i)
{
	return (i >= 0 && i < p->n) ? &p->a[i].pub : NULL;
}

int ps_plant_find(const struct ps_plant *p, const char *name)
{
	for (int i = 0; i < p->n; i++)
		if (strcmp(p->a[i].pub.name, name) == 0)
			return i;
	return -ENOENT;
}

int64_t ps_plant_tick(const struct ps_plant *p)
{
	return p->tick;
}

/* ---- regimes ---- */

static void schedule_next_regime(struct ps_plant *p, struct asset_state *s, bool first)
{
	struct rng *r = &s->proc;
	double t_s = (double)p->tick * p->dt;
	double length_s;
	/* Drawn even without stops, so that --no-stops leaves the schedule
	 * alone up to the first stop it prevents. */
	double stop_draw = rng_unit(r);
	int level = (int)(rng_unit(r) * NLEVELS);

	if (level >= NLEVELS)
		level = NLEVELS - 1;
	if (!first && !s->planned_stop && p->stops && t_s >= STOPS_AFTER_S &&
	    stop_draw < STOP_PROB) {
		s->planned_stop = true;
		s->setpoint = 0.0;
		length_s = rng_range(r, 30.0, 90.0);
	} else {
		if (!first && level == s->level && !s->planned_stop)
			level = (level + 1 + (int)(rng_unit(r) * (NLEVELS - 1))) % NLEVELS;
		s->planned_stop = false;
		s->level = level;
		s->setpoint = regime_levels[level] * RATED_RPM;
		length_s = rng_range(r, p->regime_min_s, p->regime_max_s);
	}
	s->regime_end = p->tick + (int64_t)ceil(length_s * p->rate);
}

/* ---- one tick ---- */

static double effective_severity(const struct ps_fault *f, int64_t tick)
{
	if (f->ramp_ticks <= 0 || tick - f->start_tick >= f->ramp_ticks)
		return f->severity;
	double frac = (double)(tick - f->start_tick + 1) / (double)f->ramp_ticks;
	return f->severity * (frac < 0.0 ? 0.0 : frac);
}

static void asset_step(struct ps_plant *p, struct asset_state *s)
{
	struct ps_asset *a = &s->pub;
	struct rng *r = &s->proc, *fr = &s->fault;
	double dt = p->dt, t_s = (double)p->tick * dt;
	double wear = 0.0, cav = 0.0;

	/* Faults that ended before this tick are gone. */
	for (int k = 0; k < a->nfaults;) {
		if (p->tick >= a->faults[k].end_tick) {
			a->faults[k] = a->faults[--a->nfaults];
			continue;
		}
		k++;
	}
	for (int k = 0; k < a->nfaults; k++) {
		const struct ps_fault *f = &a->faults[k];
		if (p->tick < f->start_tick)
			continue;
		if (f->kind == PS_F_BEARING_WEAR)
			wear = effective_severity(f, p->tick);
		else if (f->kind == PS_F_CAVITATION)
			cav = effective_severity(f, p->tick);
	}

	if (p->tick >= s->regime_end)
		schedule_next_regime(p, s, false);
	double target = s->hold >= 0.0 ? s->hold : s->setpoint;
	double step = RAMP_RPM_PER_S * dt;
	if (s->speed < target)
		s->speed = fmin(target, s->speed + step);
	else
		s->speed = fmax(target, s->speed - step);

	double n = s->speed / RATED_RPM;
	bool running = n >= MIN_RUN_N;
	double amb = ambient(s, t_s);

	/* System curve drift: an Ornstein-Uhlenbeck walk with a 60 s memory. */
	s->sysvar += (1.0 - s->sysvar) * dt / 60.0 + 0.02 * sqrt(2.0 * dt / 60.0) * rng_normal(r);

	double q = s->q0 * n * s->sysvar;
	double pr = s->p0 * n * n * (2.0 - s->sysvar);
	/* The shaft power before cavitation: the impeller keeps doing work on
	 * the vapour, so the motor barely notices the lost head. */
	double shaft_kw = hydraulic_kw(q, pr) / s->eta_pump;
	double i_true;
	double v_true = running ? s->v0 + s->v1 * n * n : 0.02;
	double bearing_target = running ? steady_bearing(s, amb, n) : amb;

	/* Cavitation: vapour bubbles cut the head and make flow and pressure
	 * erratic; their collapse excites broadband vibration. */
	double cav_q = 0.0, cav_p = 0.0, cav_v = 0.0;
	if (running && cav > 0.0) {
		shaft_kw *= 1.0 - 0.04 * cav;
		q *= 1.0 - 0.12 * cav;
		pr *= 1.0 - 0.30 * cav;
		cav_q = cav * 0.06 * s->q0 * n * rng_normal(fr);
		cav_p = cav * 0.10 * s->p0 * n * n * rng_normal(fr);
		cav_v = cav * (1.2 + 1.5 * fabs(rng_normal(fr))) * n;
	}
	/* Bearing wear: vibration with impacts from the first pitting on;
	 * friction heat only once the damage is advanced (severity above
	 * WEAR_HEAT_FROM), as on real rolling bearings, where temperature is a
	 * late symptom. */
	double wear_i = 0.0;
	if (running && wear > 0.0) {
		double heat = fmax(0.0, (wear - WEAR_HEAT_FROM) / (1.0 - WEAR_HEAT_FROM));
		v_true += wear * (3.5 * n * n + 0.6) + wear * 1.5 * fabs(rng_normal(fr));
		bearing_target += heat * 22.0 * (0.3 + 0.7 * n);
		wear_i = heat * 0.8;
	}
	i_true = motor_current(s, shaft_kw, running) + (running ? wear_i : 0.0);
	double i_frac = i_true / s->i_rated;
	double motor_target = amb + (running ? s->motor_rise * i_frac * i_frac : 0.0);

	/* First-order lags; the exact discretisation stays stable at any rate. */
	s->t_bearing += (bearing_target - s->t_bearing) * (1.0 - exp(-dt / s->tau_bearing_s));
	s->t_motor += (motor_target - s->t_motor) * (1.0 - exp(-dt / s->tau_motor_s));

	double v[PS_NSENSORS];
	v[PS_SPEED] = running ? fmax(0.0, s->speed + 1.5 * rng_normal(r)) : 0.0;
	v[PS_FLOW] = q + 0.006 * s->q0 * rng_normal(r) + cav_q;
	v[PS_PRESSURE] = (running ? pr : 0.25) + 0.02 * rng_normal(r) + cav_p;
	/* A current transducer reads no less than zero. */
	v[PS_CURRENT] = fmax(0.0, i_true + (running ? 0.25 : 0.02) * rng_normal(r));
	v[PS_VIBRATION] = fabs(v_true * (1.0 + 0.05 * rng_normal(r)) + 0.02 * rng_normal(r) + cav_v);
	v[PS_BEARING_TEMP] = s->t_bearing + 0.08 * rng_normal(r);
	v[PS_MOTOR_TEMP] = s->t_motor + 0.08 * rng_normal(r);

	/* Measurement faults act on what the transmitter reports. */
	for (int k = 0; k < a->nfaults; k++) {
		struct ps_fault *f = &a->faults[k];
		if (p->tick < f->start_tick || f->sensor < 0)
			continue;
		if (f->kind == PS_F_STUCK) {
			if (!f->held_set) {
				/* Freezes at the last value it reported. */
				f->held = p->tick > 0 ? a->value[f->sensor] : v[f->sensor];
				f->held_set = true;
			}
			v[f->sensor] = f->held;
		} else if (f->kind == PS_F_SPIKES) {
			double sev = effective_severity(f, p->tick);
			double u = rng_unit(fr), mag = rng_range(fr, 4.0, 8.0) / 6.0;
			double sign = rng_unit(fr) < 0.5 ? -1.0 : 1.0;
			if (u < 0.02 + 0.08 * sev) {
				double spike = sign * mag * spike_scale[f->sensor] * sev;
				v[f->sensor] += spike;
				if (f->sensor == PS_SPEED || f->sensor == PS_VIBRATION)
					v[f->sensor] = fabs(v[f->sensor]);
			}
		} else if (f->kind == PS_F_OFFSET) {
			/* A transmitter replaced or re-ranged: it reads higher by
			 * a fixed amount (ramped in like any fault). */
			v[f->sensor] += effective_severity(f, p->tick) * spike_scale[f->sensor];
		} else if (f->kind == PS_F_BROKEN) {
			/* An open loop (a cut wire, a dead transmitter): no reading
			 * at all. Each feed says so its own way (an under-range
			 * register code, a float NaN, a JSON null). */
			v[f->sensor] = NAN;
		}
	}
	memcpy(a->value, v, sizeof(v));
	a->running = running;
}

void ps_plant_step(struct ps_plant *p)
{
	for (int i = 0; i < p->n; i++)
		asset_step(p, &p->a[i]);
	p->tick++;
}

/* ---- commands ---- */

int ps_plant_inject(struct ps_plant *p, int i, enum ps_fault_kind kind, double severity,
		    int sensor, int64_t duration_ticks, int64_t ramp_ticks)
{
	if (i < 0 || i >= p->n || (unsigned)kind >= PS_F_NKINDS || !(severity >= 0.0) ||
	    severity > 1.0 || ramp_ticks < 0)
		return -EINVAL;
	if (ps_fault_needs_sensor(kind) != (sensor >= 0) || sensor >= PS_NSENSORS)
		return -EINVAL;

	struct ps_asset *a = &p->a[i].pub;
	struct ps_fault *f = NULL;
	for (int k = 0; k < a->nfaults; k++)
		if (a->faults[k].kind == kind && a->faults[k].sensor == sensor)
			f = &a->faults[k];
	if (!f) {
		if (a->nfaults >= PS_MAX_FAULTS)
			return -ENOSPC;
		f = &a->faults[a->nfaults++];
	}
	memset(f, 0, sizeof(*f));
	f->kind = kind;
	f->severity = severity;
	f->sensor = sensor;
	f->start_tick = p->tick;
	f->end_tick = duration_ticks > 0 ? p->tick + duration_ticks : INT64_MAX;
	f->ramp_ticks = ramp_ticks;
	return 0;
}

int ps_plant_clear(struct ps_plant *p, int i, int kind)
{
	int cleared = 0;

	if (i < 0 || i >= p->n)
		return -EINVAL;
	struct ps_asset *a = &p->a[i].pub;
	for (int k = 0; k < a->nfaults;) {
		if (kind < 0 || (int)a->faults[k].kind == kind) {
			a->faults[k] = a->faults[--a->nfaults];
			cleared++;
			continue;
		}
		k++;
	}
	return cleared;
}

void ps_plant_hold_speed(struct ps_plant *p, int i, double rpm)
{
	if (i >= 0 && i < p->n)
		p->a[i].hold = rpm < 0.0 ? -1.0 : fmin(rpm, 1.1 * RATED_RPM);
}
