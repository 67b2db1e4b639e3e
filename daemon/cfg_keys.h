/*
 * cfg_keys.h - the key tables of the configuration, shared by the two files
 * of the cfg module: cfg_keys.c holds the tables, cfg.c the loader that
 * applies them. Not a public header: the daemon includes cfg.h only.
 */
#ifndef PDM_CFG_KEYS_H
#define PDM_CFG_KEYS_H

#include <stdbool.h>
#include <stddef.h>

#include "cfg.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

enum sec_kind { SK_DAEMON, SK_MQTT, SK_STORAGE, SK_SOURCE, SK_ASSET, SK_SENSOR, SK_N };

enum ktype { T_STR, T_INT, T_I64, T_U64, T_DOUBLE, T_DURATION, T_SIZE, T_ENUM, T_CUSTOM };

/* Applicability of source and sensor keys, by source type. */
#define ONLY_TCP (1u << CFG_SRC_MODBUS_TCP)
#define ONLY_RTU (1u << CFG_SRC_MODBUS_RTU)
#define ONLY_MQTT (1u << CFG_SRC_MQTT)
#define ONLY_MODBUS (ONLY_TCP | ONLY_RTU)
#define ONLY_ALL (ONLY_MODBUS | ONLY_MQTT)

/* raise_after / clear_after at most, as a count or resolved from a duration. */
#define CFG_ALERT_WINDOWS_MAX 100000

/* Key flags. */
#define K_COMPUTED 1u /* default is resolved at load time; `def` only documents it */

struct enum_name; /* the loader never reads a name table itself */

struct key {
	const char *name;
	enum ktype type;
	size_t off;      /* field offset in the section's object */
	const char *def; /* default in config syntax; NULL: the key is required */
	double min, max; /* inclusive range of numbers, durations (ms) and sizes (bytes) */
	const struct enum_name *names; /* T_ENUM */
	/* T_CUSTOM: parse into the whole object / print from it */
	int (*parse)(void *obj, const char *v, char *why, size_t len);
	void (*print)(const struct pdm_config *c, const void *obj, char *buf, size_t len);
	/* extra validation of a parsed value (field points at it) */
	int (*check)(const void *field, char *why, size_t len);
	const char *tname; /* T_CUSTOM: type in the reference */
	unsigned only;     /* source types this key applies to (sources, sensors); 0 = all */
	unsigned flags;
	const char *help;
};

struct section_kind {
	const char *name;
	bool named;
	const struct key *keys;
	size_t n_keys;
	const char *example;
};

/* The table of a section kind (kind < SK_N). */
const struct section_kind *cfg_keys_kind(enum sec_kind kind);

/* The key `name` of a section kind, NULL if it has none. */
const struct key *cfg_keys_find(enum sec_kind kind, const char *name);

/* Whether a key applies to a source type (1u << enum cfg_source_type). */
bool cfg_key_applies(const struct key *k, unsigned type_bit);

/* The source types of a key's `only`, as "modbus-rtu", "mqtt", ... */
void cfg_keys_only_text(unsigned only, char *buf, size_t len);

/*
 * Parses `v` into the key's field of `obj` (a section's object: the
 * pdm_config for [daemon], [mqtt] and [storage], else its cfg_source,
 * cfg_asset or cfg_sensor). Returns 0, or a negative errno code with the
 * reason in `why`.
 */
int cfg_key_parse(const struct key *k, void *obj, const char *v, char *why, size_t len);

/* The key's value in `obj`, in config syntax (it parses back). */
void cfg_key_format(const struct key *k, const struct pdm_config *c, const void *obj, char *buf,
		    size_t len);

/* [source] type = NAME, case-insensitive: the loader reads it before the
 * other keys, since it decides which of them apply. 0 or -EINVAL. */
int cfg_keys_source_type(const char *name, int *type);

/* Splits a run_when value; the loader resolves the sensor part once the
 * asset's sensors are known. 0 or -EINVAL with the reason in `why`. */
int cfg_keys_run_when_split(const char *v, char *name, size_t name_len, enum cfg_op *op,
			    double *value, char *why, size_t len);

/* A character of a section or sensor name: letters, digits, '-' and '_'. */
bool cfg_keys_name_char(char ch);

/* strdup that aborts when out of memory; NULL copies as "". */
char *cfg_keys_xstrdup(const char *s);

#endif
