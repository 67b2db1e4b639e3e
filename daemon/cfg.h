/*
 * cfg.h - pdmd configuration: DIR/pdmd.conf, then every DIR/conf.d/NAME.conf in name order.
 *
 * cfg_load() reads every file into a fresh struct pdm_config: every key of
 * every section is parsed from one key table (defaults, units, ranges),
 * cross-references are resolved to indices (sensor -> asset, sensor ->
 * source, run_when -> sensor), and every problem is reported as
 * "file:line: key: reason". The result is plain data the daemon reads; a
 * SIGHUP reload loads a new one and swaps it in only if it loaded.
 */
#ifndef PDM_CFG_H
#define PDM_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum cfg_source_type { CFG_SRC_MODBUS_TCP, CFG_SRC_MODBUS_RTU, CFG_SRC_MQTT };

/* Register tables, in the order of the connectors' enum mb_kind. */
enum cfg_reg_kind { CFG_REG_HR, CFG_REG_IR, CFG_REG_COIL, CFG_REG_DI };

/* Values of [asset] model: the same numbers as nn's enum nn_kind. */
enum cfg_model { CFG_MODEL_MLP_AE = 1, CFG_MODEL_CONV_AE = 2 };

/* Values of [storage] synchronous: SQLite's PRAGMA synchronous numbers. */
enum cfg_sync { CFG_SYNC_OFF = 0, CFG_SYNC_NORMAL = 1, CFG_SYNC_FULL = 2 };

/* Where a section started (its first header); `file` points into pdm_config. */
struct cfg_where {
	const char *file;
	int line;
};

struct cfg_source {
	char *name;
	enum cfg_source_type type;
	struct cfg_where where;
	/* modbus-tcp: address = host:port ("[v6]:port" for IPv6; port 502 if omitted) */
	char *host;
	int port;
	/* modbus-rtu; RTU sources on one device are one bus and agree on these */
	char *device;
	int baud;
	char parity; /* 'N', 'E' or 'O' */
	int data_bits, stop_bits;
	/* both Modbus types */
	int unit;
	int64_t poll_ms, timeout_ms, backoff_max_ms;
	int max_registers, max_bits, max_gap;
	/* mqtt */
	char *topic;
	int format;      /* 0 json, 1 value */
	char *timestamp; /* JSON field with the sample time; "" = receive time */
	char *uri;       /* resolved: the [mqtt] uri unless overridden */
	int qos;
};

struct cfg_sensor {
	char *name;       /* full "asset.name" */
	char *short_name; /* "name" */
	size_t asset, source; /* indices into cfg->assets / cfg->sources */
	/* Modbus sources only */
	int reg_kind; /* enum cfg_reg_kind */
	int address;  /* 0-based register address */
	int type;     /* enum mb_type */
	int order;    /* enum mb_order */
	bool has_bit; /* Modbus registers: one bit of the integer value */
	int bit;
	/* all sources: value = raw * scale + offset */
	double scale, offset;
	char *unit;
	char *field;  /* MQTT json sources: dot path; "" for format = value and Modbus */
	char *column; /* replay CSV column (default: short_name) */
	char *quality_field; /* MQTT json: path of the value's quality flag; "" none */
	char *quality_good;  /* what a good flag is (mqtt_quality_check); "" the text rule */
	char *timestamp;     /* MQTT json: path of the value's own time; "" the message's */
	bool has_min, has_max;
	double valid_min, valid_max;
	int64_t hold_ms; /* how long its value counts on the grid; 0: the asset's hold */
	int64_t stuck_after_ms; /* -1: learned from training (default); 0: never; else this */
	struct cfg_where where;
};

enum cfg_op { CFG_OP_GT, CFG_OP_GE, CFG_OP_LT, CFG_OP_LE, CFG_OP_EQ, CFG_OP_NE };

struct cfg_asset {
	char *name;
	int model; /* enum cfg_model */
	int64_t sample_interval_ms;
	int window, hop;
	int64_t train_after; /* windows */
	int64_t retrain_ms, train_history_ms; /* retrain_ms 0 = never */
	int64_t learn_for_ms; /* learning after the first model at most this long; 0 = not */
	int64_t learn_min_ms; /* and at least this long from its data's start */
	double learn_alert_over; /* while learning, alerts only this far over (0: none) */
	int64_t relearn_for_ms; /* relearning an episode taken as normal at most this long */
	/* Windows over (under) the threshold that raise (clear) an alert; when
	 * the key was a duration, *_ms holds it (0: given as a count) and the
	 * count is resolved on the asset's grid (ceil(ms / (hop x interval))). */
	int raise_after, clear_after;
	int64_t raise_after_ms, clear_after_ms;
	double critical;
	bool has_run_when;
	size_t run_sensor; /* index into cfg->sensors (a sensor of this asset) */
	enum cfg_op run_op;
	double run_value;
	double threshold_quantile, threshold_margin, promote_margin;
	int64_t train_max_windows;
	int epochs, batch, patience;
	double learning_rate, validation;
	int64_t train_timeout_ms;
	int hold;
	int64_t no_data_after_ms;
	uint64_t seed;
	size_t *sensors; /* indices into cfg->sensors, in file order */
	size_t n_sensors;
	int64_t *hold_ms; /* per sensor, in that order: how long its value counts (ms) */
	/* per sensor: up to how long its hold may be learned (window_cfg's
	 * channel_hold_max_ms); 0 for a sensor whose hold is set */
	int64_t *hold_max_ms;
	int64_t *stuck_after_ms; /* per sensor, in that order: as cfg_sensor's */
	struct cfg_where where;
};

struct pdm_config {
	char *dir;
	struct {
		char *state_dir;
		int log_level; /* syslog priority */
		char *host;    /* resolved: gethostname() unless set */
		int keep_models;
	} daemon;
	struct {
		char *uri, *client_id, *username, *password_file, *ca_file, *cert_file, *key_file;
		char *topic_prefix;
		int qos;
		int64_t keepalive_ms;
		int max_inflight;
		int64_t max_payload; /* bytes */
	} mqtt;
	struct {
		int64_t retention_ms, max_samples;
		int synchronous; /* enum cfg_sync */
		int64_t queue;   /* samples */
		char *file;      /* resolved: absolute, or relative to state_dir made absolute */
	} storage;
	struct cfg_source *sources;
	size_t n_sources;
	struct cfg_asset *assets;
	size_t n_assets;
	struct cfg_sensor *sensors; /* grouped by asset, in asset order */
	size_t n_sensors;
	char **files; /* every file read, in order; cfg_where.file points here */
	size_t n_files;
};

/*
 * Checks that a model kind (enum cfg_model) can be built for C channels and
 * windows of W samples. Returns 0, or a negative code with a reason for the
 * user written to err (e.g. "conv_ae needs a window divisible by 4").
 */
typedef int (*cfg_check_dims_fn)(int kind, int C, int W, char *err, size_t len);

/* Sets the check cfg_load() applies to every asset's window; NULL restores
 * the built-in rule (mlp_ae: W >= 2; conv_ae: W >= 8 and divisible by 4).
 * Call before loading, from the thread that loads. */
void cfg_set_check_dims(cfg_check_dims_fn fn);

/*
 * Loads DIR/pdmd.conf and every DIR/conf.d file ending in .conf (name order)
 * into a new config. Every problem goes to `err` as "file:line: key: reason",
 * sorted by file and line; warnings (the config still loads) say
 * "warning:". Returns NULL if there was any error (or out of memory).
 * The caller owns the result; free with cfg_free().
 */
struct pdm_config *cfg_load(const char *dir, FILE *err);
void cfg_free(struct pdm_config *cfg);

/*
 * Prints the resolved setup in INI form: every section and every key that
 * applies to it with its effective value (defaults included, durations with
 * units). Lines starting with '#' are comments; the output loads back into
 * an identical config.
 */
void cfg_print(const struct pdm_config *cfg, FILE *out);

/* Prints the key reference (type, default, range, meaning of every key of
 * every section) as Markdown tables: the tables of docs/configuration.md. */
void cfg_print_reference(FILE *out);

/* Lookups by name; NULL if absent. The result points into cfg. */
const struct cfg_source *cfg_find_source(const struct pdm_config *c, const char *name);
const struct cfg_asset *cfg_find_asset(const struct pdm_config *c, const char *name);

/* The time n windows of the asset take on its grid (one every hop samples). */
static inline int64_t cfg_asset_windows_ms(const struct cfg_asset *a, int64_t n)
{
	return n * a->hop * a->sample_interval_ms;
}
/* The longest hold learned for a sensor without a hold of its own: a
 * device that reports less often than this is taken as reporting on
 * change, which the log asks the user to give a hold. */
#define CFG_HOLD_LEARN_MAX_MS (INT64_C(3600) * 1000)

/* A hold (ms, whole grid steps) that keeps a value through samples
 * spacing_ms apart, with half again for their jitter. */
static inline int64_t cfg_asset_hold_for(const struct cfg_asset *a, int64_t spacing_ms)
{
	int64_t i = a->sample_interval_ms;
	return (spacing_ms * 3 / 2 + i - 1) / i * i;
}

/* True if the source's samples carry their device's time (MQTT with a
 * timestamp field); the others are stamped on receipt by this host. */
static inline bool cfg_source_device_time(const struct cfg_source *s)
{
	return s->type == CFG_SRC_MQTT && s->timestamp && s->timestamp[0];
}

/* True if the sensor's samples carry their device's time: its source's,
 * or a time field of its own. */
static inline bool cfg_sensor_device_time(const struct pdm_config *c, const struct cfg_sensor *se)
{
	const struct cfg_source *src = &c->sources[se->source];
	return cfg_source_device_time(src) ||
	       (src->type == CFG_SRC_MQTT && se->timestamp && se->timestamp[0]);
}

/* `name` is the full "asset.name". */
const struct cfg_sensor *cfg_find_sensor(const struct pdm_config *c, const char *name);

/* Names for printing: "mlp_ae", "modbus-tcp", ">=", ... ("?" if out of range). */
const char *cfg_model_name(int model);
const char *cfg_source_type_name(enum cfg_source_type t);
const char *cfg_op_name(enum cfg_op op);

#endif
