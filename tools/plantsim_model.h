/*
 * plantsim_model.h - the physics of plantsim's simulated pumps.
 *
 * Each asset is a centrifugal pump on a variable-speed drive. Its sensors
 * are coupled by the affinity laws (flow ~ speed, head ~ speed^2, power ~
 * speed^3), with first-order thermal lags for the temperatures, operating
 * regimes (speed setpoints with ramps, occasional planned stops) and
 * measurement noise. Faults modify the physics or the measurement.
 *
 * The model is a pure function of (seed, tick number, commands applied at
 * given ticks): it never reads a clock, so runs are reproducible. Each
 * asset draws its process noise and its fault noise from two separate
 * generators, so injecting a fault leaves the unfaulted noise unchanged and
 * the fault's effect is exactly the difference between two runs.
 */
#ifndef PLANTSIM_MODEL_H
#define PLANTSIM_MODEL_H

#include <stdbool.h>
#include <stdint.h>

enum ps_sensor {
	PS_SPEED,         /* rpm */
	PS_FLOW,          /* m3/h */
	PS_PRESSURE,      /* bar, discharge */
	PS_CURRENT,       /* A, motor phase current */
	PS_VIBRATION,     /* mm/s RMS, bearing housing */
	PS_BEARING_TEMP,  /* degC */
	PS_MOTOR_TEMP,    /* degC, winding */
	PS_NSENSORS
};

enum ps_fault_kind {
	PS_F_BEARING_WEAR,
	PS_F_CAVITATION,
	PS_F_STUCK,
	PS_F_SPIKES,
	PS_F_OFFSET,
	PS_F_BROKEN,
	PS_F_NKINDS
};

enum ps_feed {
	PS_FEED_MODBUS,
	PS_FEED_MQTT,
};

#define PS_NAME_MAX 32
#define PS_MAX_FAULTS 8

struct ps_fault {
	enum ps_fault_kind kind;
	double severity;       /* 0..1 */
	int sensor;            /* enum ps_sensor for stuck/spikes/offset/broken, else -1 */
	int64_t start_tick;
	int64_t end_tick;      /* exclusive; INT64_MAX = until cleared */
	int64_t ramp_ticks;    /* severity grows linearly over this many ticks */
	double held;           /* stuck: the frozen value */
	bool held_set;
};

/* Everything a caller may read about one asset after a tick. */
struct ps_asset {
	char name[PS_NAME_MAX];
	enum ps_feed feed;
	int feed_index;             /* k-th Modbus asset, or k-th MQTT asset */
	double value[PS_NSENSORS];  /* measured values of the last tick */
	bool running;
	int nfaults;
	struct ps_fault faults[PS_MAX_FAULTS];
};

struct ps_plant;

/* Sensor and fault names as used on the command line, in JSON and config. */
const char *ps_sensor_name(enum ps_sensor s);
const char *ps_sensor_unit(enum ps_sensor s);
int ps_sensor_parse(const char *s);          /* enum value or -EINVAL */
const char *ps_fault_name(enum ps_fault_kind k);
int ps_fault_parse(const char *s);           /* enum value or -EINVAL */
/* A fault of the measurement (stuck, spikes, offset, broken): it needs sensor=. */
bool ps_fault_needs_sensor(enum ps_fault_kind k);

/*
 * Creates a plant from a list like "pump-a:modbus,pump-b:modbus,pump-c:mqtt"
 * (NULL = that default), seeded with `seed`, stepping `rate_hz` times per
 * second of simulated time. Each operating regime lasts a random time in
 * [regime_min_s, regime_max_s]; with `stops` false no planned stops occur.
 * Returns NULL (and logs why on a bad list) on failure.
 */
struct ps_plant *ps_plant_new(const char *assets, uint64_t seed, double rate_hz, bool stops,
			      double regime_min_s, double regime_max_s);
void ps_plant_free(struct ps_plant *p);

int ps_plant_count(const struct ps_plant *p);
/* The i-th asset (0 <= i < count); owned by the plant, valid until free. */
const struct ps_asset *ps_plant_asset(const struct ps_plant *p, int i);
/* Index of the asset called `name`, or -ENOENT. */
int ps_plant_find(const struct ps_plant *p, const char *name);
/* Number of ticks computed so far (the next tick's number). */
int64_t ps_plant_tick(const struct ps_plant *p);

/* Advances every asset by one tick. */
void ps_plant_step(struct ps_plant *p);

/*
 * Injects a fault into asset `i` starting at the next tick. `sensor` is
 * needed by stuck, spikes, offset and broken (else -1). `duration_ticks` <= 0 means until
 * cleared; `ramp_ticks` is how long severity takes to grow to its value
 * (0 = at once). A fault of the same kind (and sensor) replaces the old one.
 * Returns 0, -EINVAL (bad arguments) or -ENOSPC (too many faults).
 */
int ps_plant_inject(struct ps_plant *p, int i, enum ps_fault_kind kind, double severity,
		    int sensor, int64_t duration_ticks, int64_t ramp_ticks);

/* Clears the faults of asset `i`: all of them if kind < 0. Returns how many. */
int ps_plant_clear(struct ps_plant *p, int i, int kind);

/*
 * Holds asset `i` at a speed setpoint (rpm, 0 = stop) instead of its
 * regime schedule; a negative value returns it to the schedule.
 */
void ps_plant_hold_speed(struct ps_plant *p, int i, double rpm);

#endif
