/*
 * cfg.c - configuration loader: INI files (inih) -> struct pdm_config.
 *
 * Every key of every section is one row of a static key table (name, type,
 * offset, default, range, validator, help). Parsing, defaults, range checks,
 * the resolved-setup printout (cfg_print) and the key reference of
 * docs/configuration.md (cfg_print_reference) all come from those tables,
 * so a key cannot be documented one way and parsed another.
 *
 * Loading runs in three passes over raw sections, because a key's meaning
 * may depend on keys further down (a source's type decides which keys it
 * takes; a sensor's source decides whether it has a register or a field):
 *   1. read the files into raw sections (key, value, line), in file order;
 *   2. apply every key through its table row, then the defaults;
 *   3. resolve names into indices and check the rules between keys.
 * Every problem is collected with its file and line, and all are printed
 * sorted, so one `pdmd check` run shows everything to fix.
 *
 * Debian's inih neither passes line numbers to the handler nor reports
 * section headers without keys, so our reader hands inih one line at a time
 * and tracks the line number and the section headers itself; inih still
 * splits keys from values and strips inline comments.
 */
#include "cfg.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <unistd.h>

#include "mb_decode.h"
#include "mqtt_client.h"
#include "pdm_secret.h"
#include "pdm_uri.h"
#include "pdm_parse.h"

/* ---- small helpers ------------------------------------------------------ */

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);
	if (!p)
		abort();
	return p;
}

static void *xrealloc(void *p, size_t size)
{
	p = realloc(p, size ? size : 1);
	if (!p)
		abort();
	return p;
}

static char *xstrdup(const char *s)
{
	char *d = strdup(s ? s : "");
	if (!d)
		abort();
	return d;
}

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		abort();
	return s;
}

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Edit distance, for "did you mean" on misspelt keys and sections. */
static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 64 || lb > 64)
		return 99;
	size_t row[65];
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t cost = tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1])
					      ? 0
					      : 1;
			size_t best = diag + cost;
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

static bool close_enough(const char *typed, const char *known)
{
	size_t d = edit_distance(typed, known);
	size_t l = strlen(known);
	return d <= (l <= 2 ? 0 : l <= 4 ? 1 : l <= 8 ? 2 : 3) ||
	       (strlen(typed) >= 4 && (strstr(known, typed) || strstr(typed, known)));
}

/* Shortest "%g" form that reads back as the same double. */
static void format_double(double v, char *buf, size_t len)
{
	double mag = v < 0 ? -v : v;
	bool plain = mag == 0 || (mag >= 1e-4 && mag < 1e15);
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, len, "%.*g", prec, v);
		/* 100 reads better than 1e+02 */
		if (strtod(buf, NULL) == v && (!plain || !strchr(buf, 'e')))
			return;
	}
}

/* ---- names -------------------------------------------------------------- */

struct enum_name {
	const char *name;
	int value;
};

static const struct enum_name log_level_names[] = {
	{ "error", LOG_ERR }, { "warning", LOG_WARNING }, { "info", LOG_INFO },
	{ "debug", LOG_DEBUG }, { NULL, 0 },
};
static const struct enum_name sync_names[] = {
	{ "off", CFG_SYNC_OFF }, { "normal", CFG_SYNC_NORMAL }, { "full", CFG_SYNC_FULL },
	{ NULL, 0 },
};
static const struct enum_name source_type_names[] = {
	{ "modbus-tcp", CFG_SRC_MODBUS_TCP }, { "modbus-rtu", CFG_SRC_MODBUS_RTU },
	{ "mqtt", CFG_SRC_MQTT }, { NULL, 0 },
};
static const struct enum_name format_names[] = {
	{ "json", 0 }, { "value", 1 }, { NULL, 0 },
};
static const struct enum_name model_names[] = {
	{ "conv_ae", CFG_MODEL_CONV_AE }, { "mlp_ae", CFG_MODEL_MLP_AE }, { NULL, 0 },
};
static const struct enum_name reg_kind_names[] = {
	{ "hr", CFG_REG_HR }, { "ir", CFG_REG_IR }, { "coil", CFG_REG_COIL },
	{ "di", CFG_REG_DI }, { NULL, 0 },
};
/* Two-character operators first, so ">=" is not read as ">" then "=". */
static const struct enum_name op_names[] = {
	{ ">=", CFG_OP_GE }, { "<=", CFG_OP_LE }, { "==", CFG_OP_EQ }, { "!=", CFG_OP_NE },
	{ ">", CFG_OP_GT },  { "<", CFG_OP_LT },  { NULL, 0 },
};

static const char *enum_to_name(const struct enum_name *e, int v)
{
	for (; e->name; e++)
		if (e->value == v)
			return e->name;
	return "?";
}

static int enum_from_name(const struct enum_name *e, const char *s, int *v)
{
	/* "Modbus-TCP" and "INFO" mean what they say: names are matched
	 * case-insensitively and printed in their canonical form. */
	for (; e->name; e++) {
		if (strcasecmp(e->name, s) == 0) {
			*v = e->value;
			return 0;
		}
	}
	return -EINVAL;
}

/* "a, b or c" */
static void enum_list(const struct enum_name *e, const char *sep_last, char *buf, size_t len)
{
	size_t n = 0, used = 0;
	while (e[n].name)
		n++;
	buf[0] = '\0';
	for (size_t i = 0; i < n && used < len; i++) {
		const char *sep = i == 0 ? "" : i + 1 == n ? sep_last : ", ";
		int w = snprintf(buf + used, len - used, "%s%s", sep, e[i].name);
		if (w < 0)
			break;
		used += (size_t)w;
	}
}

const char *cfg_model_name(int model)
{
	return enum_to_name(model_names, model);
}

const char *cfg_source_type_name(enum cfg_source_type t)
{
	return enum_to_name(source_type_names, (int)t);
}

const char *cfg_op_name(enum cfg_op op)
{
	return enum_to_name(op_names, (int)op);
}

/* ---- messages ----------------------------------------------------------- */

struct msg {
	size_t file; /* index into cfg->files, SIZE_MAX for none */
	int line;
	size_t seq;
	bool warning;
	char *text;
};

enum sec_kind { SK_DAEMON, SK_MQTT, SK_STORAGE, SK_SOURCE, SK_ASSET, SK_SENSOR, SK_N };

struct raw_entry {
	char *key, *value;
	size_t file;
	int line;
};

struct raw_section {
	enum sec_kind kind;
	char *name; /* "" for daemon/mqtt/storage */
	size_t file;
	int line;
	struct raw_entry *e;
	size_t n, cap;
	size_t obj;   /* index of the object built from it, SIZE_MAX if none */
	bool skip;    /* header was invalid: its keys are ignored */
};

struct loader {
	struct pdm_config *cfg;
	struct msg *msgs;
	size_t n_msgs, cap_msgs;
	int errors;
	struct raw_section *secs;
	size_t n_secs, cap_secs;
	size_t cur; /* section receiving keys, SIZE_MAX before the first header */
	/* the file being read */
	FILE *fp;
	size_t file;
	int lineno;
	char *line;
	size_t line_cap;
};

static void vreport(struct loader *ld, size_t file, int line, bool warning, const char *fmt,
		    va_list ap) __attribute__((format(printf, 5, 0)));
static void vreport(struct loader *ld, size_t file, int line, bool warning, const char *fmt,
		    va_list ap)
{
	char *text;
	if (vasprintf(&text, fmt, ap) < 0)
		abort();
	if (ld->n_msgs == ld->cap_msgs) {
		ld->cap_msgs = ld->cap_msgs ? ld->cap_msgs * 2 : 16;
		ld->msgs = xrealloc(ld->msgs, ld->cap_msgs * sizeof(*ld->msgs));
	}
	ld->msgs[ld->n_msgs] = (struct msg){ file, line, ld->n_msgs, warning, text };
	ld->n_msgs++;
	if (!warning)
		ld->errors++;
}

static void error_at(struct loader *ld, size_t file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void error_at(struct loader *ld, size_t file, int line, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport(ld, file, line, false, fmt, ap);
	va_end(ap);
}

static void warn_at(struct loader *ld, size_t file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void warn_at(struct loader *ld, size_t file, int line, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport(ld, file, line, true, fmt, ap);
	va_end(ap);
}

static int msg_cmp(const void *pa, const void *pb)
{
	const struct msg *a = pa, *b = pb;
	if (a->file != b->file)
		return a->file < b->file ? -1 : 1;
	if (a->line != b->line)
		return a->line < b->line ? -1 : 1;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static void flush_messages(struct loader *ld, FILE *err)
{
	if (ld->n_msgs > 1)
		qsort(ld->msgs, ld->n_msgs, sizeof(*ld->msgs), msg_cmp);
	for (size_t i = 0; i < ld->n_msgs; i++) {
		const struct msg *m = &ld->msgs[i];
		const char *file = m->file < ld->cfg->n_files ? ld->cfg->files[m->file] : ld->cfg->dir;
		const char *w = m->warning ? "warning: " : "";
		if (err && m->line > 0)
			fprintf(err, "%s:%d: %s%s\n", file, m->line, w, m->text);
		else if (err)
			fprintf(err, "%s: %s%s\n", file, w, m->text);
		free(m->text);
	}
	free(ld->msgs);
	ld->msgs = NULL;
	ld->n_msgs = 0;
}

/* ---- value types -------------------------------------------------------- */

enum ktype { T_STR, T_INT, T_I64, T_U64, T_DOUBLE, T_DURATION, T_SIZE, T_ENUM, T_CUSTOM };

/* Applicability of source and sensor keys, by source type. */
#define ONLY_TCP (1u << CFG_SRC_MODBUS_TCP)
#define ONLY_RTU (1u << CFG_SRC_MODBUS_RTU)
#define ONLY_MQTT (1u << CFG_SRC_MQTT)
#define ONLY_MODBUS (ONLY_TCP | ONLY_RTU)
#define ONLY_ALL (ONLY_MODBUS | ONLY_MQTT)

/* Key flags. */
#define K_COMPUTED 1u /* default is resolved at load time; `def` only documents it */

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

/* Decimal only: strtoll's base 0 would read "010" as octal 8. */
static int parse_dec(const char *s, int64_t min, int64_t max, int64_t *out)
{
	char *end;
	const char *p = s + (s[0] == '-' || s[0] == '+');
	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (*end != '\0')
		return -EINVAL;
	if (errno == ERANGE || v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

/* Durations must carry a unit, so "poll = 100" is not silently 100 s;
 * only 0 means the same in every unit. */
static int parse_duration(const char *v, int64_t *ms, char *why, size_t len)
{
	size_t l = strlen(v);
	if (pdm_parse_duration_ms(v, 1000, ms) < 0) {
		snprintf(why, len, "expected a duration such as 500ms, 30s, 10m, 24h or 7d, got '%s'",
			 v);
		return -EINVAL;
	}
	if (l > 0 && (isdigit((unsigned char)v[l - 1]) || v[l - 1] == '.') && *ms != 0) {
		snprintf(why, len, "'%s' needs a unit (ms, s, m, h or d)", v);
		return -EINVAL;
	}
	return 0;
}

/* Sizes in bytes with binary suffixes: 65536, 64K, 64KiB, 1M, 1MiB, 1G. */
static int parse_size(const char *v, int64_t *out, char *why, size_t len)
{
	static const struct {
		const char *suffix;
		int64_t mult;
	} units[] = {
		{ "", 1 },         { "B", 1 },          { "K", 1024 },       { "k", 1024 },
		{ "KB", 1024 },    { "kB", 1024 },      { "KiB", 1024 },     { "M", 1 << 20 },
		{ "MB", 1 << 20 }, { "MiB", 1 << 20 },  { "G", 1 << 30 },    { "GB", 1 << 30 },
		{ "GiB", 1 << 30 },
	};
	char *end;
	errno = 0;
	long long n = strtoll(v, &end, 10);
	if (end == v || errno || n < 0 || !isdigit((unsigned char)v[0]))
		goto bad;
	while (*end == ' ')
		end++;
	for (size_t i = 0; i < ARRAY_LEN(units); i++) {
		if (strcmp(end, units[i].suffix) == 0) {
			if (n > INT64_MAX / units[i].mult)
				goto bad;
			*out = n * units[i].mult;
			return 0;
		}
	}
bad:
	snprintf(why, len, "expected a size such as 65536, 64KiB or 1MiB, got '%s'", v);
	return -EINVAL;
}

static void format_size(int64_t v, char *buf, size_t len)
{
	if (v > 0 && v % (1 << 30) == 0)
		snprintf(buf, len, "%lldGiB", (long long)(v >> 30));
	else if (v > 0 && v % (1 << 20) == 0)
		snprintf(buf, len, "%lldMiB", (long long)(v >> 20));
	else if (v > 0 && v % 1024 == 0)
		snprintf(buf, len, "%lldKiB", (long long)(v >> 10));
	else
		snprintf(buf, len, "%lld", (long long)v);
}

static void format_range_value(const struct key *k, double v, char *buf, size_t len)
{
	switch (k->type) {
	case T_DURATION:
		pdm_format_duration((int64_t)v, buf, (unsigned)len);
		break;
	case T_SIZE:
		format_size((int64_t)v, buf, len);
		break;
	case T_STR:
	case T_INT:
	case T_I64:
	case T_U64:
	case T_DOUBLE:
	case T_ENUM:
	case T_CUSTOM:
		format_double(v, buf, len);
		break;
	}
}

static int range_error(const struct key *k, double v, char *why, size_t len)
{
	char lo[32], hi[32], got[32];
	format_range_value(k, k->min, lo, sizeof(lo));
	format_range_value(k, k->max, hi, sizeof(hi));
	format_range_value(k, v, got, sizeof(got));
	snprintf(why, len, "%s is out of range (%s .. %s)", got, lo, hi);
	return -ERANGE;
}

/* Parses `v` into the key's field of `obj`. */
static int key_parse(const struct key *k, void *obj, const char *v, char *why, size_t len)
{
	void *field = (char *)obj + k->off;
	int64_t i64;
	double d;
	int rc = 0;

	switch (k->type) {
	case T_STR:
		if (!k->def && !(k->flags & K_COMPUTED) && v[0] == '\0') {
			snprintf(why, len, "needs a value");
			return -EINVAL;
		}
		free(*(char **)field);
		*(char **)field = xstrdup(v);
		break;
	case T_INT:
	case T_I64:
		rc = parse_dec(v, INT64_MIN, INT64_MAX, &i64);
		if (rc < 0) {
			snprintf(why, len, "expected a whole number, got '%s'", v);
			return -EINVAL;
		}
		if ((double)i64 < k->min || (double)i64 > k->max)
			return range_error(k, (double)i64, why, len);
		if (k->type == T_INT)
			*(int *)field = (int)i64;
		else
			*(int64_t *)field = i64;
		break;
	case T_U64: {
		char *end;
		errno = 0;
		unsigned long long u = strtoull(v, &end, 10);
		if (!isdigit((unsigned char)v[0]) || *end || errno) {
			snprintf(why, len, "expected a whole number 0 .. 18446744073709551615, got '%s'",
				 v);
			return -EINVAL;
		}
		*(uint64_t *)field = u;
		break;
	}
	case T_DOUBLE:
		if (pdm_parse_double(v, &d) < 0) {
			snprintf(why, len, "expected a number, got '%s'", v);
			return -EINVAL;
		}
		if (d < k->min || d > k->max)
			return range_error(k, d, why, len);
		*(double *)field = d;
		break;
	case T_DURATION:
	case T_SIZE:
		rc = k->type == T_DURATION ? parse_duration(v, &i64, why, len)
					   : parse_size(v, &i64, why, len);
		if (rc < 0)
			return rc;
		if ((double)i64 < k->min || (double)i64 > k->max)
			return range_error(k, (double)i64, why, len);
		*(int64_t *)field = i64;
		break;
	case T_ENUM: {
		int e;
		if (enum_from_name(k->names, v, &e) < 0) {
			char list[160];
			enum_list(k->names, " or ", list, sizeof(list));
			snprintf(why, len, "expected %s, got '%s'", list, v);
			return -EINVAL;
		}
		*(int *)field = e;
		break;
	}
	case T_CUSTOM:
		return k->parse(obj, v, why, len);
	}
	return k->check ? k->check(field, why, len) : 0;
}

static void key_format(const struct key *k, const struct pdm_config *c, const void *obj, char *buf,
		       size_t len)
{
	const void *field = (const char *)obj + k->off;

	switch (k->type) {
	case T_STR:
		snprintf(buf, len, "%s", *(char *const *)field ? *(char *const *)field : "");
		break;
	case T_INT:
		snprintf(buf, len, "%d", *(const int *)field);
		break;
	case T_I64:
		snprintf(buf, len, "%lld", (long long)*(const int64_t *)field);
		break;
	case T_U64:
		snprintf(buf, len, "%llu", (unsigned long long)*(const uint64_t *)field);
		break;
	case T_DOUBLE:
		format_double(*(const double *)field, buf, len);
		break;
	case T_DURATION:
		pdm_format_duration(*(const int64_t *)field, buf, (unsigned)len);
		break;
	case T_SIZE:
		format_size(*(const int64_t *)field, buf, len);
		break;
	case T_ENUM:
		snprintf(buf, len, "%s", enum_to_name(k->names, *(const int *)field));
		break;
	case T_CUSTOM:
		k->print(c, obj, buf, len);
		break;
	}
}

/* ---- validators and custom keys ----------------------------------------- */

static int check_nonempty(const void *field, char *why, size_t len)
{
	if ((*(char *const *)field)[0] == '\0') {
		snprintf(why, len, "needs a value");
		return -EINVAL;
	}
	return 0;
}

static int check_uri(const void *field, char *why, size_t len)
{
	const char *v = *(char *const *)field;
	/* Not echoed: the value would show in logs and in `pdmd check`. */
	if (pdm_uri_userinfo(v, NULL, NULL)) {
		snprintf(why, len, "a user or password in the URI is not allowed (it would show in "
				   "logs); set username and password_file instead");
		return -EINVAL;
	}
	if (pdm_uri_kind(v) > 0)
		return 0;
	snprintf(why, len, "expected tcp://HOST:PORT or ssl://HOST:PORT (also mqtt://, mqtts://), "
			   "got '%s'", v);
	return -EINVAL;
}

/* Our topics are PREFIX/alerts/ASSET: the prefix must be a plain topic name. */
static int check_topic_prefix(const void *field, char *why, size_t len)
{
	const char *v = *(char *const *)field;
	size_t l = strlen(v);
	if (l == 0 || strpbrk(v, "+#") || v[0] == '/' || v[l - 1] == '/' || strstr(v, "//")) {
		snprintf(why, len, "expected a topic name without wildcards (+ #) and without a "
				   "leading, trailing or doubled '/', got '%s'", v);
		return -EINVAL;
	}
	return 0;
}

/* MQTT subscription filter rules: '+' and '#' fill a whole level; '#' is last. */
static int check_topic_filter(const void *field, char *why, size_t len)
{
	const char *v = *(char *const *)field;
	if (v[0] == '\0') {
		snprintf(why, len, "needs a value");
		return -EINVAL;
	}
	for (const char *p = v; *p; p++) {
		bool level_start = p == v || p[-1] == '/';
		bool level_end = p[1] == '\0' || p[1] == '/';
		if (*p == '+' && !(level_start && level_end)) {
			snprintf(why, len, "'+' must fill a whole topic level (a/+/c), got '%s'", v);
			return -EINVAL;
		}
		if (*p == '#' && !(level_start && p[1] == '\0')) {
			snprintf(why, len, "'#' must be the whole last topic level (a/b/#), got '%s'", v);
			return -EINVAL;
		}
	}
	return 0;
}

static int require_abs(const void *field, const char *example, char *why, size_t len)
{
	const char *v = *(char *const *)field;
	if (v[0] != '/') {
		snprintf(why, len, "expected an absolute path such as %s, got '%s'", example, v);
		return -EINVAL;
	}
	return 0;
}

static int check_abs_path(const void *field, char *why, size_t len)
{
	return require_abs(field, "/dev/ttyUSB0", why, len);
}

/* Relative paths (storage file, models) are resolved against state_dir, so it
 * must not be relative itself: the resolved setup would not load back. */
static int check_abs_dir(const void *field, char *why, size_t len)
{
	return require_abs(field, "/var/lib/pdmd", why, len);
}

static int check_baud(const void *field, char *why, size_t len)
{
	static const int rates[] = { 300,   600,   1200,   2400,   4800,   9600,  14400,
				     19200, 38400, 57600, 115200, 230400, 460800, 921600 };
	int v = *(const int *)field;
	for (size_t i = 0; i < ARRAY_LEN(rates); i++)
		if (rates[i] == v)
			return 0;
	snprintf(why, len, "%d is not a serial line rate (1200, 2400, 4800, 9600, 19200, 38400, "
			   "57600, 115200, ...)", v);
	return -EINVAL;
}

static int check_whole_seconds(const void *field, char *why, size_t len)
{
	if (*(const int64_t *)field % 1000 != 0) {
		snprintf(why, len, "must be whole seconds (the MQTT keepalive is counted in seconds)");
		return -EINVAL;
	}
	return 0;
}

static int check_retrain(const void *field, char *why, size_t len)
{
	int64_t v = *(const int64_t *)field;
	if (v != 0 && v < 60000) {
		snprintf(why, len, "must be 0 (never) or at least 1m");
		return -ERANGE;
	}
	return 0;
}

static int check_nonzero(const void *field, char *why, size_t len)
{
	if (*(const double *)field == 0.0) {
		snprintf(why, len, "0 would make every value equal the offset");
		return -EINVAL;
	}
	return 0;
}

/* [source] address = host:port | host | [v6addr]:port | [v6addr] */
static int parse_address(void *obj, const char *v, char *why, size_t len)
{
	struct cfg_source *s = obj;
	const char *host = v, *port = NULL;
	size_t hl;

	if (v[0] == '[') {
		const char *close = strchr(v, ']');
		if (!close || close == v + 1 || (close[1] != '\0' && close[1] != ':'))
			goto bad;
		host = v + 1;
		hl = (size_t)(close - host);
		port = close[1] == ':' ? close + 2 : NULL;
	} else {
		const char *colon = strchr(v, ':');
		if (colon && strchr(colon + 1, ':')) {
			snprintf(why, len, "an IPv6 address goes in brackets: [%s]:502", v);
			return -EINVAL;
		}
		hl = colon ? (size_t)(colon - v) : strlen(v);
		port = colon ? colon + 1 : NULL;
	}
	if (hl == 0 || memchr(host, ' ', hl))
		goto bad;
	int64_t p = 502;
	if (port && parse_dec(port, 1, 65535, &p) < 0) {
		snprintf(why, len, "port '%s' is not a number 1 .. 65535", port);
		return -EINVAL;
	}
	free(s->host);
	s->host = strndup(host, hl);
	if (!s->host)
		abort();
	s->port = (int)p;
	return 0;
bad:
	snprintf(why, len, "expected HOST:PORT, HOST or [IPV6]:PORT, got '%s'", v);
	return -EINVAL;
}

static void print_address(const struct pdm_config *c, const void *obj, char *buf, size_t len)
{
	const struct cfg_source *s = obj;
	(void)c;
	if (s->host && strchr(s->host, ':'))
		snprintf(buf, len, "[%s]:%d", s->host, s->port);
	else
		snprintf(buf, len, "%s:%d", s->host ? s->host : "", s->port);
}

static int parse_parity(void *obj, const char *v, char *why, size_t len)
{
	struct cfg_source *s = obj;
	if (strlen(v) == 1 && strchr("NEOneo", v[0])) {
		s->parity = (char)toupper((unsigned char)v[0]);
		return 0;
	}
	snprintf(why, len, "expected N, E or O (none, even, odd), got '%s'", v);
	return -EINVAL;
}

static void print_parity(const struct pdm_config *c, const void *obj, char *buf, size_t len)
{
	(void)c;
	snprintf(buf, len, "%c", ((const struct cfg_source *)obj)->parity);
}

/* [sensor] source: the name is resolved in pass 3; here it only must exist. */
static int parse_sensor_source(void *obj, const char *v, char *why, size_t len)
{
	(void)obj;
	if (v[0] == '\0') {
		snprintf(why, len, "needs the name of a [source NAME] section");
		return -EINVAL;
	}
	return 0;
}

static void print_sensor_source(const struct pdm_config *c, const void *obj, char *buf,
				size_t len)
{
	const struct cfg_sensor *s = obj;
	snprintf(buf, len, "%s", s->source < c->n_sources ? c->sources[s->source].name : "");
}

/* register = hr:100 (0-based protocol address) */
static int parse_register(void *obj, const char *v, char *why, size_t len)
{
	struct cfg_sensor *s = obj;
	const char *colon = strchr(v, ':');
	char kind[8];
	int k;
	int64_t addr;

	if (!colon) {
		int64_t n;
		if (parse_dec(v, 0, 499999, &n) == 0 && n >= 10001) {
			static const char *const tables[] = { "coil", "di", "?", "ir", "hr" };
			int t = (int)(n >= 100000 ? n / 100000 : n / 10000);
			int64_t base = n >= 100000 ? t * 100000 + 1 : t * 10000 + 1;
			if (t == 0 || t == 1 || t == 3 || t == 4) {
				snprintf(why, len, "'%s' looks like a 1-based manual number: write %s:%lld "
						   "(0-based)", v, tables[t], (long long)(n - base));
				return -EINVAL;
			}
		}
		goto bad;
	}
	size_t kl = (size_t)(colon - v);
	if (kl == 0 || kl >= sizeof(kind))
		goto bad;
	memcpy(kind, v, kl);
	kind[kl] = '\0';
	if (enum_from_name(reg_kind_names, kind, &k) < 0)
		goto bad;
	if (parse_dec(colon + 1, 0, 65535, &addr) < 0 || !isdigit((unsigned char)colon[1])) {
		snprintf(why, len, "address '%s' is not a number 0 .. 65535", colon + 1);
		return -EINVAL;
	}
	s->reg_kind = k;
	s->address = (int)addr;
	return 0;
bad:
	snprintf(why, len, "expected hr|ir|coil|di:ADDRESS with a 0-based address (hr:100 is a "
			   "manual's 40101), got '%s'", v);
	return -EINVAL;
}

static void print_register(const struct pdm_config *c, const void *obj, char *buf, size_t len)
{
	const struct cfg_sensor *s = obj;
	(void)c;
	snprintf(buf, len, "%s:%d", enum_to_name(reg_kind_names, s->reg_kind), s->address);
}

static void lower_copy(const char *v, char *buf, size_t len)
{
	size_t i = 0;
	for (; v[i] && i + 1 < len; i++)
		buf[i] = (char)tolower((unsigned char)v[i]);
	buf[i] = '\0';
}

static int parse_mb_type(void *obj, const char *v, char *why, size_t len)
{
	enum mb_type t;
	char low[16];
	lower_copy(v, low, sizeof(low));
	if (strlen(v) >= sizeof(low) || mb_type_parse(low, &t) < 0) {
		snprintf(why, len, "expected int16, uint16, int32, uint32, int64, uint64, float32, "
				   "float64 or bool, got '%s'", v);
		return -EINVAL;
	}
	((struct cfg_sensor *)obj)->type = (int)t;
	return 0;
}

static void print_mb_type(const struct pdm_config *c, const void *obj, char *buf, size_t len)
{
	(void)c;
	snprintf(buf, len, "%s", mb_type_name((enum mb_type)((const struct cfg_sensor *)obj)->type));
}

static int parse_mb_order(void *obj, const char *v, char *why, size_t len)
{
	enum mb_order o;
	char low[8];
	lower_copy(v, low, sizeof(low));
	if (strlen(v) >= sizeof(low) || mb_order_parse(low, &o) < 0) {
		snprintf(why, len, "expected abcd, cdab, badc or dcba, got '%s'", v);
		return -EINVAL;
	}
	((struct cfg_sensor *)obj)->order = (int)o;
	return 0;
}

static void print_mb_order(const struct pdm_config *c, const void *obj, char *buf, size_t len)
{
	(void)c;
	snprintf(buf, len, "%s",
		 mb_order_name((enum mb_order)((const struct cfg_sensor *)obj)->order));
}

static int parse_optional_double(const char *v, bool *has, double *out, char *why, size_t len)
{
	if (v[0] == '\0') {
		*has = false;
		return 0;
	}
	if (pdm_parse_double(v, out) < 0) {
		snprintf(why, len, "expected a number (or nothing for no limit), got '%s'", v);
		return -EINVAL;
	}
	*has = true;
	return 0;
}

static int parse_valid_min(void *obj, const char *v, char *why, size_t len)
{
	struct cfg_sensor *s = obj;
	return parse_optional_double(v, &s->has_min, &s->valid_min, why, len);
}

static int parse_valid_max(void *obj, const char *v, char *why, size_t len)
{
	struct cfg_sensor *s = obj;
	return parse_optional_double(v, &s->has_max, &s->valid_max, why, len);
}

static void print_valid_min(const struct pdm_config *c, const void *obj, char *buf, size_t len)
{
	const struct cfg_sensor *s = obj;
	(void)c;
	buf[0] = '\0';
	if (s->has_min)
		format_double(s->valid_min, buf, len);
}

static void print_valid_max(const struct pdm_config *c, const void *obj, char *buf, size_t len)
{
	const struct cfg_sensor *s = obj;
	(void)c;
	buf[0] = '\0';
	if (s->has_max)
		format_double(s->valid_max, buf, len);
}

static bool name_char(char ch)
{
	return isalnum((unsigned char)ch) || ch == '_' || ch == '-';
}

/* run_when = SENSOR OP NUMBER; SENSOR is a short name or the full asset.name.
 * Splits v; name gets the sensor part. */
static int run_when_split(const char *v, char *name, size_t name_len, enum cfg_op *op,
			  double *value, char *why, size_t len)
{
	const char *p = v;
	while (name_char(*p) || *p == '.')
		p++;
	size_t nl = (size_t)(p - v);
	while (*p == ' ' || *p == '\t')
		p++;
	int o = -1;
	for (const struct enum_name *e = op_names; e->name; e++) {
		size_t l = strlen(e->name);
		if (strncmp(p, e->name, l) == 0) {
			o = e->value;
			p += l;
			break;
		}
	}
	if (nl == 0 || nl >= name_len || o < 0 || pdm_parse_double(p, value) < 0) {
		snprintf(why, len, "expected SENSOR OP NUMBER with OP one of > >= < <= == != "
				   "(e.g. speed > 100), got '%s'", v);
		return -EINVAL;
	}
	memcpy(name, v, nl);
	name[nl] = '\0';
	*op = (enum cfg_op)o;
	return 0;
}

static int parse_run_when(void *obj, const char *v, char *why, size_t len)
{
	struct cfg_asset *a = obj;
	char name[128];
	if (v[0] == '\0') {
		a->has_run_when = false;
		return 0;
	}
	int rc = run_when_split(v, name, sizeof(name), &a->run_op, &a->run_value, why, len);
	a->has_run_when = rc == 0;
	return rc;
}

static void print_run_when(const struct pdm_config *c, const void *obj, char *buf, size_t len)
{
	const struct cfg_asset *a = obj;
	char num[32];
	buf[0] = '\0';
	if (!a->has_run_when || a->run_sensor >= c->n_sensors)
		return;
	format_double(a->run_value, num, sizeof(num));
	snprintf(buf, len, "%s %s %s", c->sensors[a->run_sensor].short_name,
		 cfg_op_name(a->run_op), num);
}

/* ---- the key tables ----------------------------------------------------- */

#define MS_S 1000.0
#define MS_M 60000.0
#define MS_H 3600000.0
#define MS_D 86400000.0

#define DAEMON(f) offsetof(struct pdm_config, daemon.f)
#define MQTT(f) offsetof(struct pdm_config, mqtt.f)
#define STORAGE(f) offsetof(struct pdm_config, storage.f)
#define SRC(f) offsetof(struct cfg_source, f)
#define ASSET(f) offsetof(struct cfg_asset, f)
#define SENSOR(f) offsetof(struct cfg_sensor, f)

static const struct key daemon_keys[] = {
	{ .name = "state_dir", .type = T_STR, .off = DAEMON(state_dir), .def = "/var/lib/pdmd",
	  .check = check_abs_dir,
	  .help = "Directory of samples.db and the model files (systemd's StateDirectory); "
		  "an absolute path." },
	{ .name = "log_level", .type = T_ENUM, .off = DAEMON(log_level), .def = "info",
	  .names = log_level_names, .help = "Least severe message level that is logged." },
	{ .name = "host", .type = T_STR, .off = DAEMON(host), .def = "the host name",
	  .flags = K_COMPUTED, .check = check_nonempty,
	  .help = "Name of this box in alerts and the status topic." },
	{ .name = "keep_models", .type = T_INT, .off = DAEMON(keep_models), .def = "5", .min = 1,
	  .max = 1000, .help = "Model files kept per asset (the newest ones; older are deleted)." },
};

static const struct key mqtt_keys[] = {
	{ .name = "uri", .type = T_STR, .off = MQTT(uri), .def = "tcp://127.0.0.1:1883",
	  .check = check_uri,
	  .help = "Broker for alerts and the default broker of MQTT sources; ssl://HOST:8883 for "
		  "TLS." },
	{ .name = "client_id", .type = T_STR, .off = MQTT(client_id), .def = "pdmd",
	  .check = check_nonempty,
	  .help = "MQTT client id; MQTT sources with their own broker add -SOURCE." },
	{ .name = "username", .type = T_STR, .off = MQTT(username), .def = "",
	  .help = "User name for the broker (empty: anonymous)." },
	{ .name = "password_file", .type = T_STR, .off = MQTT(password_file), .def = "",
	  .help = "File whose first line is the password, so the secret stays out of the "
		  "config: mode 0600 (or 0640, group only pdmd's), owned by root. A relative "
		  "name is a systemd credential (LoadCredential=) or a file of the config "
		  "directory." },
	{ .name = "ca_file", .type = T_STR, .off = MQTT(ca_file), .def = "",
	  .help = "CA certificates (PEM) to verify the broker (TLS; empty: the system's)." },
	{ .name = "cert_file", .type = T_STR, .off = MQTT(cert_file), .def = "",
	  .help = "Client certificate (PEM) for TLS client authentication; needs key_file." },
	{ .name = "key_file", .type = T_STR, .off = MQTT(key_file), .def = "",
	  .help = "Private key (PEM) of cert_file; private like password_file (mode, owner, a "
		  "relative name)." },
	{ .name = "topic_prefix", .type = T_STR, .off = MQTT(topic_prefix), .def = "pdm",
	  .check = check_topic_prefix,
	  .help = "Topics are PREFIX/alerts/ASSET, PREFIX/state/ASSET, PREFIX/models/ASSET, "
		  "PREFIX/status." },
	{ .name = "qos", .type = T_INT, .off = MQTT(qos), .def = "1", .min = 0, .max = 2,
	  .help = "QoS of state, model and status messages; alerts use at least 1 (they leave the outbox only once acknowledged)." },
	{ .name = "keepalive", .type = T_DURATION, .off = MQTT(keepalive_ms), .def = "30s",
	  .min = 5 * MS_S, .max = 65535 * MS_S, .check = check_whole_seconds,
	  .help = "MQTT keepalive: how fast a dead broker connection is noticed." },
	{ .name = "max_inflight", .type = T_INT, .off = MQTT(max_inflight), .def = "20", .min = 1,
	  .max = 65535, .help = "Messages published but not yet acknowledged, at most." },
	{ .name = "max_payload", .type = T_SIZE, .off = MQTT(max_payload), .def = "64KiB",
	  .min = 64, .max = 256.0 * 1024 * 1024,
	  .help = "Larger incoming payloads of MQTT sources are dropped and counted." },
};

static const struct key storage_keys[] = {
	{ .name = "retention", .type = T_DURATION, .off = STORAGE(retention_ms), .def = "7d",
	  .min = MS_M, .max = 3650 * MS_D, .help = "Samples older than this are evicted." },
	{ .name = "max_samples", .type = T_I64, .off = STORAGE(max_samples), .def = "10000000",
	  .min = 1000, .max = 1e12,
	  .help = "Hard cap on stored samples of all sensors together (the ring size): rows/s x "
		  "seconds of history wanted (see Sizing the sample ring)." },
	{ .name = "synchronous", .type = T_ENUM, .off = STORAGE(synchronous), .def = "normal",
	  .names = sync_names,
	  .help = "SQLite durability: off (fastest, a power cut may lose recent samples), normal "
		  "(WAL: a power cut loses at most the last commit), full (fsync every commit)." },
	{ .name = "queue", .type = T_I64, .off = STORAGE(queue), .def = "65536", .min = 64,
	  .max = 16777216,
	  .help = "Samples the ingest queue holds; when full, new samples are dropped and "
		  "counted." },
	{ .name = "file", .type = T_STR, .off = STORAGE(file), .def = "STATE_DIR/samples.db",
	  .flags = K_COMPUTED, .check = check_nonempty,
	  .help = "The SQLite database; a relative path is relative to state_dir." },
};

static const struct key source_keys[] = {
	{ .name = "type", .type = T_ENUM, .off = SRC(type), .names = source_type_names,
	  .help = "Protocol of the source: modbus-tcp, modbus-rtu or mqtt." },
	{ .name = "address", .type = T_CUSTOM, .parse = parse_address, .print = print_address,
	  .tname = "host:port", .only = ONLY_TCP,
	  .help = "Modbus TCP server: HOST:PORT, HOST (port 502) or [IPV6]:PORT." },
	{ .name = "device", .type = T_STR, .off = SRC(device), .check = check_abs_path,
	  .only = ONLY_RTU, .help = "Serial device of the RS-485 line, e.g. /dev/ttyUSB0." },
	{ .name = "baud", .type = T_INT, .off = SRC(baud), .def = "19200", .min = 300,
	  .max = 921600, .check = check_baud, .only = ONLY_RTU, .help = "Line speed." },
	{ .name = "parity", .type = T_CUSTOM, .parse = parse_parity, .print = print_parity,
	  .def = "E", .tname = "N \\| E \\| O", .only = ONLY_RTU,
	  .help = "Parity: none, even (the Modbus default) or odd." },
	{ .name = "data_bits", .type = T_INT, .off = SRC(data_bits), .def = "8", .min = 7, .max = 8,
	  .only = ONLY_RTU, .help = "Data bits per character." },
	{ .name = "stop_bits", .type = T_INT, .off = SRC(stop_bits), .def = "1", .min = 1, .max = 2,
	  .only = ONLY_RTU, .help = "Stop bits (Modbus: 2 when parity is N)." },
	{ .name = "unit", .type = T_INT, .off = SRC(unit), .def = "1", .min = 0, .max = 255,
	  .only = ONLY_MODBUS,
	  .help = "Modbus unit (slave) id; 1 .. 247 on RTU, where each id is one device." },
	{ .name = "poll", .type = T_DURATION, .off = SRC(poll_ms), .def = "1s", .min = 10,
	  .max = MS_D, .only = ONLY_MODBUS, .help = "Polling period of this source's sensors." },
	{ .name = "timeout", .type = T_DURATION, .off = SRC(timeout_ms), .def = "500ms", .min = 10,
	  .max = 60 * MS_S, .only = ONLY_MODBUS, .help = "Response timeout of one request." },
	{ .name = "backoff_max", .type = T_DURATION, .off = SRC(backoff_max_ms), .def = "30s",
	  .min = 100, .max = MS_D, .only = ONLY_MODBUS,
	  .help = "Longest wait between reconnects to a failing device (doubles up to this)." },
	{ .name = "max_registers", .type = T_INT, .off = SRC(max_registers), .def = "125", .min = 1,
	  .max = 125, .only = ONLY_MODBUS,
	  .help = "Registers read in one request at most (lower it for devices that refuse "
		  "long reads)." },
	{ .name = "max_bits", .type = T_INT, .off = SRC(max_bits), .def = "2000", .min = 1,
	  .max = 2000, .only = ONLY_MODBUS, .help = "Coils or inputs read in one request at most." },
	{ .name = "max_gap", .type = T_INT, .off = SRC(max_gap), .def = "8", .min = 0, .max = 124,
	  .only = ONLY_MODBUS,
	  .help = "Unused registers one request may span to merge neighbours (0: only adjacent)." },
	{ .name = "topic", .type = T_STR, .off = SRC(topic), .check = check_topic_filter,
	  .only = ONLY_MQTT, .help = "MQTT subscription; + and # wildcards allowed." },
	{ .name = "format", .type = T_ENUM, .off = SRC(format), .def = "json", .names = format_names,
	  .only = ONLY_MQTT,
	  .help = "json: an object with one field per sensor; value: the payload is one number." },
	{ .name = "timestamp", .type = T_STR, .off = SRC(timestamp), .def = "", .only = ONLY_MQTT,
	  .help = "JSON field with the sample time (epoch ms or ISO-8601); empty: receive time." },
	{ .name = "uri", .type = T_STR, .off = SRC(uri), .def = "the [mqtt] uri",
	  .flags = K_COMPUTED, .check = check_uri, .only = ONLY_MQTT,
	  .help = "Broker of this source, if not the [mqtt] one (same user and TLS settings)." },
	{ .name = "qos", .type = T_INT, .off = SRC(qos), .def = "1", .min = 0, .max = 2,
	  .only = ONLY_MQTT, .help = "QoS of the subscription." },
};

static const struct key asset_keys[] = {
	{ .name = "model", .type = T_ENUM, .off = ASSET(model), .def = "conv_ae",
	  .names = model_names,
	  .help = "conv_ae: 1D-CNN autoencoder (window divisible by 4, at least 8); mlp_ae: dense "
		  "autoencoder." },
	{ .name = "sample_interval", .type = T_DURATION, .off = ASSET(sample_interval_ms),
	  .def = "1s", .min = 1, .max = MS_H,
	  .help = "Grid the sensors are resampled onto (one window column per interval)." },
	{ .name = "window", .type = T_INT, .off = ASSET(window), .def = "64", .min = 2,
	  .max = 65536, .help = "Samples per window." },
	{ .name = "hop", .type = T_INT, .off = ASSET(hop), .def = "8", .min = 1, .max = 65536,
	  .help = "Samples between scored windows (at most window)." },
	{ .name = "train_after", .type = T_I64, .off = ASSET(train_after), .def = "2000", .min = 1,
	  .max = 1e8, .help = "Windows of history needed before the first model is trained." },
	{ .name = "retrain", .type = T_DURATION, .off = ASSET(retrain_ms), .def = "24h", .min = 0,
	  .max = 365 * MS_D, .check = check_retrain, .help = "Retraining period; 0 = never." },
	{ .name = "train_history", .type = T_DURATION, .off = ASSET(train_history_ms), .def = "7d",
	  .min = MS_M, .max = 3650 * MS_D,
	  .help = "How far back training data reaches (at most [storage] retention)." },
	{ .name = "learn_for", .type = T_DURATION, .off = ASSET(learn_for_ms), .def = "1d", .min = 0,
	  .max = 365 * MS_D,
	  .help = "After its first model the asset goes on learning (state learning: scored, no "
		  "alerts, every window training data, retrained as its data grows) until a model "
		  "scores under its threshold for half the time its data spans, at most this long; "
		  "0: alerts from the first model on." },
	{ .name = "raise_after", .type = T_INT, .off = ASSET(raise_after), .def = "3", .min = 1,
	  .max = 100000, .help = "Consecutive windows over the threshold that raise an alert." },
	{ .name = "clear_after", .type = T_INT, .off = ASSET(clear_after), .def = "10", .min = 1,
	  .max = 100000, .help = "Consecutive windows under the threshold that clear it." },
	{ .name = "critical", .type = T_DOUBLE, .off = ASSET(critical), .def = "2", .min = 1,
	  .max = 1000, .help = "Score at or above which an alert is critical (1 = threshold)." },
	{ .name = "run_when", .type = T_CUSTOM, .parse = parse_run_when, .print = print_run_when,
	  .def = "", .tname = "SENSOR OP NUMBER",
	  .help = "The machine runs only while this holds (a sensor of this asset; > >= < <= == "
		  "!=); while off, windows are neither scored nor trained on (state off). Empty: "
		  "always running." },
	{ .name = "threshold_quantile", .type = T_DOUBLE, .off = ASSET(threshold_quantile),
	  .def = "0.995", .min = 0.5, .max = 1,
	  .help = "Quantile of the validation windows' errors that sets the threshold." },
	{ .name = "threshold_margin", .type = T_DOUBLE, .off = ASSET(threshold_margin),
	  .def = "1.2", .min = 1, .max = 100, .help = "Factor on that quantile: the threshold." },
	{ .name = "train_max_windows", .type = T_I64, .off = ASSET(train_max_windows),
	  .def = "20000", .min = 1, .max = 1e8,
	  .help = "Training uses a random sample of at most this many windows. The trainer holds "
		  "them in memory while it trains: up to `train_max_windows` x sensors x `window` x "
		  "4 bytes (`pdmd check` prints it per asset), one asset at a time." },
	{ .name = "promote_margin", .type = T_DOUBLE, .off = ASSET(promote_margin), .def = "0.05",
	  .min = 0, .max = 10,
	  .help = "A retrained model replaces the current one unless its validation loss is "
		  "worse by more than this fraction." },
	{ .name = "epochs", .type = T_INT, .off = ASSET(epochs), .def = "30", .min = 1,
	  .max = 100000, .help = "Training epochs at most." },
	{ .name = "batch", .type = T_INT, .off = ASSET(batch), .def = "64", .min = 1, .max = 65536,
	  .help = "Windows per training batch." },
	{ .name = "learning_rate", .type = T_DOUBLE, .off = ASSET(learning_rate), .def = "0.001",
	  .min = 1e-9, .max = 1, .help = "Adam learning rate." },
	{ .name = "patience", .type = T_INT, .off = ASSET(patience), .def = "5", .min = 0,
	  .max = 100000,
	  .help = "Epochs without validation improvement before training stops (0: never stop "
		  "early)." },
	{ .name = "train_timeout", .type = T_DURATION, .off = ASSET(train_timeout_ms),
	  .def = "10m", .min = MS_S, .max = 7 * MS_D,
	  .help = "A training run stops after this long (the best model so far is kept)." },
	{ .name = "validation", .type = T_DOUBLE, .off = ASSET(validation), .def = "0.2",
	  .min = 0.05, .max = 0.5,
	  .help = "Fraction of the training windows held out for validation and threshold." },
	{ .name = "hold", .type = T_INT, .off = ASSET(hold), .def = "3", .min = 1, .max = 100000,
	  .help = "Intervals a sensor's last value is held on the grid; older is a gap (windows "
		  "with a gap are not scored)." },
	{ .name = "no_data_after", .type = T_DURATION, .off = ASSET(no_data_after_ms),
	  .def = "30s", .min = MS_S, .max = 7 * MS_D,
	  .help = "Without any sample for this long the asset's state becomes no_data." },
	{ .name = "seed", .type = T_U64, .off = ASSET(seed), .def = "1",
	  .help = "Seed of weight initialisation and sampling (same data + seed = same model)." },
};

static const struct key sensor_keys[] = {
	{ .name = "source", .type = T_CUSTOM, .parse = parse_sensor_source,
	  .print = print_sensor_source, .tname = "source name",
	  .help = "The [source NAME] this sensor is read from." },
	{ .name = "register", .type = T_CUSTOM, .parse = parse_register, .print = print_register,
	  .tname = "hr\\|ir\\|coil\\|di:ADDRESS", .only = ONLY_MODBUS,
	  .help = "Table and 0-based address: holding, input register, coil, discrete input "
		  "(manual 40101 = hr:100)." },
	{ .name = "type", .type = T_CUSTOM, .parse = parse_mb_type, .print = print_mb_type,
	  .def = "uint16; bool for coil and di", .flags = K_COMPUTED,
	  .tname = "int16 \\| uint16 \\| int32 \\| uint32 \\| int64 \\| uint64 \\| float32 \\| "
		   "float64 \\| bool",
	  .only = ONLY_MODBUS, .help = "How the registers are decoded (32/64-bit use 2/4)." },
	{ .name = "order", .type = T_CUSTOM, .parse = parse_mb_order, .print = print_mb_order,
	  .def = "abcd", .tname = "abcd \\| cdab \\| badc \\| dcba", .only = ONLY_MODBUS,
	  .help = "Byte order of multi-register values as they arrive (cdab = word-swapped)." },
	{ .name = "scale", .type = T_DOUBLE, .off = SENSOR(scale), .def = "1", .min = -1e300,
	  .max = 1e300, .check = check_nonzero, .help = "value = raw * scale + offset." },
	{ .name = "offset", .type = T_DOUBLE, .off = SENSOR(offset), .def = "0", .min = -1e300,
	  .max = 1e300, .help = "See scale." },
	{ .name = "unit", .type = T_STR, .off = SENSOR(unit), .def = "",
	  .help = "Engineering unit, for people (mm/s, degC)." },
	{ .name = "field", .type = T_STR, .off = SENSOR(field), .def = "the sensor's name",
	  .flags = K_COMPUTED, .only = ONLY_MQTT,
	  .help = "JSON field of the value, a dot path for nested objects (format = json only)." },
	{ .name = "column", .type = T_STR, .off = SENSOR(column), .def = "the sensor's name",
	  .flags = K_COMPUTED, .check = check_nonempty,
	  .help = "Column of this sensor in `pdmd replay` CSV files." },
	{ .name = "valid_min", .type = T_CUSTOM, .parse = parse_valid_min, .print = print_valid_min,
	  .def = "", .tname = "number",
	  .help = "Values below are absurd: counted, stored as bad, never scored. Empty: no "
		  "limit." },
	{ .name = "valid_max", .type = T_CUSTOM, .parse = parse_valid_max, .print = print_valid_max,
	  .def = "", .tname = "number", .help = "Values above are absurd (see valid_min)." },
};

static const struct section_kind {
	const char *name;
	bool named;
	const struct key *keys;
	size_t n_keys;
	const char *example;
} kinds[SK_N] = {
	[SK_DAEMON] = { "daemon", false, daemon_keys, ARRAY_LEN(daemon_keys), "[daemon]" },
	[SK_MQTT] = { "mqtt", false, mqtt_keys, ARRAY_LEN(mqtt_keys), "[mqtt]" },
	[SK_STORAGE] = { "storage", false, storage_keys, ARRAY_LEN(storage_keys), "[storage]" },
	[SK_SOURCE] = { "source", true, source_keys, ARRAY_LEN(source_keys), "[source NAME]" },
	[SK_ASSET] = { "asset", true, asset_keys, ARRAY_LEN(asset_keys), "[asset NAME]" },
	[SK_SENSOR] = { "sensor", true, sensor_keys, ARRAY_LEN(sensor_keys),
			"[sensor ASSET.NAME]" },
};

static const struct key *find_key(enum sec_kind kind, const char *name)
{
	for (size_t i = 0; i < kinds[kind].n_keys; i++)
		if (strcmp(kinds[kind].keys[i].name, name) == 0)
			return &kinds[kind].keys[i];
	return NULL;
}

static bool key_applies(const struct key *k, unsigned type_bit)
{
	return !k->only || (k->only & type_bit);
}

/* "modbus-rtu sources" / "modbus-tcp and modbus-rtu sources" */
static void only_text(unsigned only, char *buf, size_t len)
{
	if (only == ONLY_MODBUS)
		snprintf(buf, len, "Modbus (modbus-tcp and modbus-rtu)");
	else if (only == ONLY_TCP)
		snprintf(buf, len, "modbus-tcp");
	else if (only == ONLY_RTU)
		snprintf(buf, len, "modbus-rtu");
	else if (only == ONLY_MQTT)
		snprintf(buf, len, "mqtt");
	else
		snprintf(buf, len, "all");
}

/* ---- pass 1: reading files ---------------------------------------------- */

static size_t find_section(struct loader *ld, enum sec_kind kind, const char *name)
{
	for (size_t i = 0; i < ld->n_secs; i++)
		if (ld->secs[i].kind == kind && strcmp(ld->secs[i].name, name) == 0)
			return i;
	return SIZE_MAX;
}

static bool valid_name(const char *s, bool dotted)
{
	size_t dots = 0, l = strlen(s);
	if (l == 0 || l > 64)
		return false;
	for (const char *p = s; *p; p++) {
		if (*p == '.')
			dots++;
		else if (!name_char(*p))
			return false;
	}
	if (!dotted)
		return dots == 0;
	const char *dot = strchr(s, '.');
	return dots == 1 && dot != s && dot[1] != '\0';
}

/* A section header "[kind name]": begins a section (or re-opens one: a
 * conf.d file may add keys to [mqtt], but a key set twice is an error). */
static void section_header(struct loader *ld, char *text)
{
	int line = ld->lineno;
	char *close = strchr(text, ']');
	char *p;

	if (ld->n_secs == ld->cap_secs) {
		ld->cap_secs = ld->cap_secs ? ld->cap_secs * 2 : 16;
		ld->secs = xrealloc(ld->secs, ld->cap_secs * sizeof(*ld->secs));
	}
	/* Sections are recorded even when invalid so their keys do not land
	 * in the previous section; `skip` silences their keys. */
	struct raw_section sec = { .kind = SK_DAEMON, .file = ld->file, .line = line,
				   .obj = SIZE_MAX, .skip = true };
	if (!close) {
		error_at(ld, ld->file, line, "%s: syntax error: section header without ']'", text);
		goto record;
	}
	for (p = close + 1; *p == ' ' || *p == '\t'; p++)
		;
	if (*p != '\0' && *p != ';' && *p != '#') {
		error_at(ld, ld->file, line, "%s: syntax error: text after the section header", text);
		goto record;
	}
	*close = '\0';
	char *kind = text + 1;
	while (*kind == ' ' || *kind == '\t')
		kind++;
	char *name = kind;
	while (*name && *name != ' ' && *name != '\t')
		name++;
	if (*name)
		*name++ = '\0';
	while (*name == ' ' || *name == '\t')
		name++;
	for (size_t l = strlen(name); l > 0 && (name[l - 1] == ' ' || name[l - 1] == '\t'); l--)
		name[l - 1] = '\0';

	int k = -1;
	for (int i = 0; i < SK_N; i++)
		if (strcmp(kinds[i].name, kind) == 0)
			k = i;
	sec.kind = k < 0 ? SK_DAEMON : (enum sec_kind)k;
	sec.name = xstrdup(name);
	char shown[256];
	snprintf(shown, sizeof(shown), "[%s%s%s]", kind, name[0] ? " " : "", name);

	if (k < 0) {
		const char *hint = NULL;
		for (int i = 0; i < SK_N; i++)
			if (close_enough(kind, kinds[i].name))
				hint = kinds[i].example;
		error_at(ld, ld->file, line,
			 "%s: unknown section (expected [daemon], [mqtt], [storage], [source NAME], "
			 "[asset NAME] or [sensor ASSET.NAME])%s%s%s",
			 shown, hint ? "; did you mean " : "", hint ? hint : "", hint ? "?" : "");
	} else if (!kinds[k].named && name[0]) {
		error_at(ld, ld->file, line, "%s: [%s] takes no name", shown, kind);
	} else if (kinds[k].named && !name[0]) {
		error_at(ld, ld->file, line, "%s: needs a name: %s", shown, kinds[k].example);
	} else if (kinds[k].named && !valid_name(name, k == SK_SENSOR)) {
		error_at(ld, ld->file, line,
			 k == SK_SENSOR
				 ? "%s: a sensor is named ASSET.NAME, each part of letters, digits, "
				   "'-' and '_' (at most 64 characters in all)"
				 : "%s: a name has letters, digits, '-' and '_' only (at most 64)",
			 shown);
	} else {
		size_t existing = find_section(ld, (enum sec_kind)k, name);
		if (existing != SIZE_MAX) {
			free(sec.name);
			ld->cur = existing;
			return;
		}
		sec.skip = false;
	}
record:
	if (!sec.name)
		sec.name = xstrdup("");
	ld->secs[ld->n_secs] = sec;
	ld->cur = ld->n_secs++;
}

/*
 * inih's reader: hands inih one line at a time so that ld->lineno is the
 * line of the key the handler receives. Section headers are consumed here
 * (inih gets a blank line) and lines are left-trimmed, which also turns
 * off inih's indented-continuation rule: an indented key is a key.
 */
static char *cfg_reader(char *str, int num, void *stream)
{
	struct loader *ld = stream;
	ssize_t n = getline(&ld->line, &ld->line_cap, ld->fp);

	if (n < 0)
		return NULL;
	ld->lineno++;
	char *s = ld->line;
	if (ld->lineno == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0)
		s += 3;
	while (*s == ' ' || *s == '\t')
		s++;
	size_t l = strlen(s);
	while (l > 0 && (s[l - 1] == '\n' || s[l - 1] == '\r' || s[l - 1] == ' ' || s[l - 1] == '\t'))
		s[--l] = '\0';
	snprintf(str, (size_t)num, "\n");
	if (l == 0 || s[0] == ';' || s[0] == '#')
		return str;
	/* Before anything else, so that no message echoes a huge line. */
	if (l + 2 > (size_t)num) {
		error_at(ld, ld->file, ld->lineno, "line too long (at most %d characters)", num - 2);
		return str;
	}
	if (s[0] == '[') {
		section_header(ld, s);
		return str;
	}
	if (!strpbrk(s, "=:")) {
		error_at(ld, ld->file, ld->lineno,
			 "syntax error: expected 'key = value' or '[section]', got '%s'", s);
		return str;
	}
	snprintf(str, (size_t)num, "%s\n", s);
	return str;
}

static int cfg_handler(void *user, const char *section, const char *key, const char *value)
{
	struct loader *ld = user;
	int line = ld->lineno;
	(void)section;

	if (!key)
		return 1;
	if (key[0] == '\0') {
		error_at(ld, ld->file, line, "syntax error: key name missing before '='");
		return 1;
	}
	if (ld->cur == SIZE_MAX) {
		error_at(ld, ld->file, line,
			 "%s: outside any section (keys follow a header such as [daemon] or "
			 "[source NAME])", key);
		return 1;
	}
	/* A comment after a value needs a space before its ';': "key =; x"
	 * would keep "; x" as the value, which reads as a comment once the
	 * configuration is printed (pdmd check) and read back. */
	if (value[0] == ';') {
		error_at(ld, ld->file, line,
			 "%s: the value starts with ';' (a comment needs a space before it: "
			 "\"%s = ; note\" sets nothing)", key, key);
		return 1;
	}
	struct raw_section *sec = &ld->secs[ld->cur];
	if (sec->skip)
		return 1;
	for (size_t i = 0; i < sec->n; i++) {
		if (strcmp(sec->e[i].key, key) == 0) {
			/* The first definition may be in another file of the same section. */
			error_at(ld, ld->file, line, "%s: set twice in [%s%s%s] (first at %s:%d)",
				 key, kinds[sec->kind].name, sec->name[0] ? " " : "", sec->name,
				 ld->cfg->files[sec->e[i].file], sec->e[i].line);
			return 1;
		}
	}
	if (sec->n == sec->cap) {
		sec->cap = sec->cap ? sec->cap * 2 : 8;
		sec->e = xrealloc(sec->e, sec->cap * sizeof(*sec->e));
	}
	sec->e[sec->n++] = (struct raw_entry){ xstrdup(key), xstrdup(value), ld->file, line };
	return 1;
}

static void parse_file(struct loader *ld, const char *path, bool required)
{
	struct pdm_config *cfg = ld->cfg;

	ld->fp = fopen(path, "r");
	if (!ld->fp) {
		if (required || errno != ENOENT) {
			cfg->files = xrealloc(cfg->files, (cfg->n_files + 1) * sizeof(*cfg->files));
			cfg->files[cfg->n_files] = xstrdup(path);
			error_at(ld, cfg->n_files++, 0, "cannot open: %s", strerror(errno));
		}
		return;
	}
	cfg->files = xrealloc(cfg->files, (cfg->n_files + 1) * sizeof(*cfg->files));
	cfg->files[cfg->n_files] = xstrdup(path);
	ld->file = cfg->n_files++;
	ld->lineno = 0;
	ld->cur = SIZE_MAX;
	int rc = ini_parse_stream(cfg_reader, ld, cfg_handler, ld);
	if (ferror(ld->fp))
		error_at(ld, ld->file, 0, "read error: %s", strerror(errno));
	else if (rc > 0 && ld->errors == 0)
		error_at(ld, ld->file, rc, "syntax error");
	else if (rc < 0 && rc != -1)
		error_at(ld, ld->file, 0, "out of memory while parsing");
	fclose(ld->fp);
	ld->fp = NULL;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void parse_dropins(struct loader *ld, const char *dir)
{
	char *path = xasprintf("%s/conf.d", dir);
	DIR *d = opendir(path);
	char **names = NULL;
	size_t n = 0;
	struct dirent *de;

	if (!d) {
		if (errno != ENOENT)
			error_at(ld, SIZE_MAX, 0, "%s: cannot open: %s", path, strerror(errno));
		free(path);
		return; /* conf.d is optional */
	}
	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name);
		/* Editors' backups (x.conf~, .x.conf.swp) and packaging leftovers
		 * (x.conf.dpkg-old) do not end in .conf and are skipped. */
		if (de->d_name[0] == '.' || l < 6 || strcmp(de->d_name + l - 5, ".conf") != 0)
			continue;
		names = xrealloc(names, (n + 1) * sizeof(*names));
		names[n++] = xstrdup(de->d_name);
	}
	closedir(d);
	if (n > 1)
		qsort(names, n, sizeof(*names), name_cmp);
	for (size_t i = 0; i < n; i++) {
		char *file = xasprintf("%s/%s", path, names[i]);
		parse_file(ld, file, true);
		free(file);
		free(names[i]);
	}
	free(names);
	free(path);
}

/* ---- pass 2: applying keys ---------------------------------------------- */

static const struct raw_entry *raw_get(const struct raw_section *sec, const char *key)
{
	for (size_t i = 0; i < sec->n; i++)
		if (strcmp(sec->e[i].key, key) == 0)
			return &sec->e[i];
	return NULL;
}

static int line_of(const struct raw_section *sec, const char *key)
{
	const struct raw_entry *e = raw_get(sec, key);
	return e ? e->line : sec->line;
}

static void unknown_key(struct loader *ld, const struct raw_section *sec,
			const struct raw_entry *e)
{
	const struct key *best = NULL;
	size_t best_d = SIZE_MAX;
	const struct section_kind *sk = &kinds[sec->kind];

	for (size_t i = 0; i < sk->n_keys; i++) {
		size_t d = edit_distance(e->key, sk->keys[i].name);
		if (close_enough(e->key, sk->keys[i].name) && d < best_d) {
			best = &sk->keys[i];
			best_d = d;
		}
	}
	if (best) {
		error_at(ld, sec->file, e->line, "%s: unknown key in %s; did you mean %s?", e->key,
			 sk->example, best->name);
		return;
	}
	for (int k = 0; k < SK_N; k++) {
		if (find_key((enum sec_kind)k, e->key)) {
			error_at(ld, sec->file, e->line, "%s: unknown key in %s (it is a key of %s)",
				 e->key, sk->example, kinds[k].example);
			return;
		}
	}
	error_at(ld, sec->file, e->line, "%s: unknown key in %s (see docs/configuration.md)",
		 e->key, sk->example);
}

/*
 * Applies a raw section to obj: its keys, then the defaults of keys not
 * set. type_bit selects the keys of a source type (0: unknown, then no key
 * is refused for its type and no type-specific key is required).
 */
static void apply_section(struct loader *ld, const struct raw_section *sec, void *obj,
			  unsigned type_bit, const char *type_name)
{
	const struct section_kind *sk = &kinds[sec->kind];
	char why[512], only[64];

	for (size_t i = 0; i < sec->n; i++) {
		const struct raw_entry *e = &sec->e[i];
		const struct key *k = find_key(sec->kind, e->key);
		if (!k) {
			unknown_key(ld, sec, e);
			continue;
		}
		if (type_bit && !key_applies(k, type_bit)) {
			only_text(k->only, only, sizeof(only));
			error_at(ld, sec->file, e->line, "%s: only for %s sources (%s is %s)", e->key,
				 only, sec->kind == SK_SENSOR ? "its source" : "this one", type_name);
			continue;
		}
		if (key_parse(k, obj, e->value, why, sizeof(why)) < 0)
			error_at(ld, sec->file, e->line, "%s: %s", e->key, why);
	}
	for (size_t i = 0; i < sk->n_keys; i++) {
		const struct key *k = &sk->keys[i];
		if (raw_get(sec, k->name) || (k->flags & K_COMPUTED))
			continue;
		if (type_bit == 0 && k->only)
			continue;
		if (!key_applies(k, type_bit ? type_bit : ONLY_ALL))
			continue;
		if (!k->def) {
			/* The help text says what to write; drop its final period. */
			int hl = (int)strlen(k->help);
			if (hl > 0 && k->help[hl - 1] == '.')
				hl--;
			error_at(ld, sec->file, sec->line, "%s: missing in [%s %s] (%.*s)", k->name,
				 sk->name, sec->name, hl, k->help);
			continue;
		}
		if (key_parse(k, obj, k->def, why, sizeof(why)) < 0)
			abort(); /* a default that does not parse is a bug in the table */
	}
}

/* ---- pass 3: names, indices and the rules between keys ------------------- */

static void set_default_str(char **field, const char *v)
{
	if (!*field) {
		*field = xstrdup(v);
	}
}

static void check_readable(struct loader *ld, const struct raw_section *sec, const char *key,
			   const char *path)
{
	if (path && path[0] && access(path, R_OK) < 0)
		error_at(ld, sec->file, line_of(sec, key), "%s: cannot read %s: %s", key, path,
			 strerror(errno));
}

/*
 * A relative password_file or key_file is a systemd credential of that name
 * when the service manager passed one (LoadCredential=NAME:/etc/pdmd/NAME),
 * else a file of the configuration directory: the same file for the
 * service, whose dynamic user cannot read /etc/pdmd/NAME, and for
 * `pdmd check` run by root.
 */
static void resolve_secret_path(const struct pdm_config *c, char **field)
{
	const char *creds = getenv("CREDENTIALS_DIRECTORY");
	char *path = NULL;

	if ((*field)[0] == '/')
		return;
	if (creds && creds[0]) {
		path = xasprintf("%s/%s", creds, *field);
		if (access(path, F_OK) < 0) {
			free(path);
			path = NULL;
		}
	}
	if (!path)
		path = xasprintf("%s/%s", c->dir, *field);
	free(*field);
	*field = path;
}

/* Secrets must be private to the daemon; see pdm_secret_check_file(). */
static void check_secret(struct loader *ld, const struct raw_section *sec, const char *key,
			 char **field, long long max_bytes)
{
	char why[PATH_MAX + 200];

	if (!(*field)[0])
		return;
	resolve_secret_path(ld->cfg, field);
	if (pdm_secret_check_file(*field, max_bytes, why, sizeof(why)) < 0)
		error_at(ld, sec->file, line_of(sec, key), "%s: %s", key, why);
}

static void check_globals(struct loader *ld, const struct raw_section *sec_of[SK_N])
{
	struct pdm_config *c = ld->cfg;
	const struct raw_section *m = sec_of[SK_MQTT];
	const struct raw_section none = { .file = SIZE_MAX };
	char host[256];

	if (!m)
		m = &none;
	if (!c->daemon.host) {
		if (gethostname(host, sizeof(host)) < 0 || host[0] == '\0')
			snprintf(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = '\0';
		c->daemon.host = xstrdup(host);
	}
	if (!c->storage.file)
		c->storage.file = xasprintf("%s/samples.db", c->daemon.state_dir);
	else if (c->storage.file[0] != '/') {
		char *abs = xasprintf("%s/%s", c->daemon.state_dir, c->storage.file);
		free(c->storage.file);
		c->storage.file = abs;
	}
	if (c->mqtt.password_file[0] && !c->mqtt.username[0])
		error_at(ld, m->file, line_of(m, "password_file"),
			 "password_file: needs username (MQTT sends a password only with a user "
			 "name)");
	if (!c->mqtt.cert_file[0] != !c->mqtt.key_file[0])
		error_at(ld, m->file, line_of(m, c->mqtt.cert_file[0] ? "cert_file" : "key_file"),
			 "%s: cert_file and key_file go together (TLS client certificate and its "
			 "key)", c->mqtt.cert_file[0] ? "cert_file" : "key_file");
	if (pdm_uri_kind(c->mqtt.uri) != PDM_URI_TLS) {
		static const char *const tls_keys[] = { "ca_file", "cert_file", "key_file" };
		for (size_t i = 0; i < ARRAY_LEN(tls_keys); i++) {
			const struct key *k = find_key(SK_MQTT, tls_keys[i]);
			if ((*(char **)((char *)c + k->off))[0])
				error_at(ld, m->file, line_of(m, tls_keys[i]),
					 "%s: set, but uri %s is not TLS (use ssl://HOST:8883)",
					 tls_keys[i], c->mqtt.uri);
		}
	}
	check_secret(ld, m, "password_file", &c->mqtt.password_file, MQTT_PASSWORD_MAX + 2);
	check_readable(ld, m, "ca_file", c->mqtt.ca_file);
	check_readable(ld, m, "cert_file", c->mqtt.cert_file);
	check_secret(ld, m, "key_file", &c->mqtt.key_file, MQTT_KEY_FILE_MAX);
}

static void check_sources(struct loader *ld, const struct raw_section **src_sec)
{
	struct pdm_config *c = ld->cfg;

	for (size_t i = 0; i < c->n_sources; i++) {
		struct cfg_source *s = &c->sources[i];
		const struct raw_section *sec = src_sec[i];
		if (s->type == CFG_SRC_MQTT) {
			set_default_str(&s->uri, c->mqtt.uri);
			if (s->format == 1 && s->timestamp && s->timestamp[0])
				error_at(ld, sec->file, line_of(sec, "timestamp"),
					 "timestamp: only for format = json (a value payload has no "
					 "fields)");
		}
		if (s->type == CFG_SRC_MODBUS_RTU && (s->unit < 1 || s->unit > 247))
			error_at(ld, sec->file, line_of(sec, "unit"),
				 "unit: %d is not a Modbus RTU device id (1 .. 247)", s->unit);
		if (s->type != CFG_SRC_MODBUS_RTU || !s->device)
			continue;
		/* One device is one RS-485 bus: one set of line settings. */
		for (size_t j = 0; j < i; j++) {
			const struct cfg_source *t = &c->sources[j];
			if (t->type != CFG_SRC_MODBUS_RTU || !t->device ||
			    strcmp(t->device, s->device) != 0)
				continue;
			static const char *const keys[] = { "baud", "parity", "data_bits",
							    "stop_bits" };
			bool differ[] = { t->baud != s->baud, t->parity != s->parity,
					  t->data_bits != s->data_bits, t->stop_bits != s->stop_bits };
			for (size_t k = 0; k < ARRAY_LEN(keys); k++) {
				if (!differ[k])
					continue;
				char mine[32], theirs[32];
				const struct key *kd = find_key(SK_SOURCE, keys[k]);
				key_format(kd, c, s, mine, sizeof(mine));
				key_format(kd, c, t, theirs, sizeof(theirs));
				error_at(ld, sec->file, line_of(sec, keys[k]),
					 "%s: %s differs from source %s (%s) on the same bus %s; "
					 "sources on one device share its line settings",
					 keys[k], mine, t->name, theirs, s->device);
			}
			break;
		}
	}
}

/* Resolves sensor -> source; returns the source's type bit (0 if unknown). */
static unsigned resolve_sensor_source(struct loader *ld, const struct raw_section *sec,
				      struct cfg_sensor *s)
{
	const struct pdm_config *c = ld->cfg;
	const struct raw_entry *e = raw_get(sec, "source");

	s->source = SIZE_MAX;
	if (!e || !e->value[0])
		return 0; /* reported by apply_section */
	for (size_t i = 0; i < c->n_sources; i++) {
		if (strcmp(c->sources[i].name, e->value) == 0) {
			s->source = i;
			return 1u << c->sources[i].type;
		}
	}
	const char *hint = NULL;
	for (size_t i = 0; i < c->n_sources; i++)
		if (close_enough(e->value, c->sources[i].name))
			hint = c->sources[i].name;
	if (hint)
		error_at(ld, sec->file, e->line, "source: no [source %s]; did you mean %s?", e->value,
			 hint);
	else
		error_at(ld, sec->file, e->line, "source: no [source %s] is defined", e->value);
	return 0;
}

static void check_sensor(struct loader *ld, const struct raw_section *sec, struct cfg_sensor *s)
{
	struct pdm_config *c = ld->cfg;
	const struct cfg_source *src = s->source < c->n_sources ? &c->sources[s->source] : NULL;
	bool modbus = src && src->type != CFG_SRC_MQTT;

	set_default_str(&s->column, s->short_name);
	if (src && src->type == CFG_SRC_MQTT && src->format == 0)
		set_default_str(&s->field, s->short_name);
	set_default_str(&s->field, "");
	if (src && src->type == CFG_SRC_MQTT && src->format == 1 && s->field[0])
		error_at(ld, sec->file, line_of(sec, "field"),
			 "field: source %s has format = value (the payload is the number)",
			 src->name);
	if (src && src->type == CFG_SRC_MQTT && src->format == 0) {
		const char *f = s->field;
		size_t l = strlen(f);
		if (l == 0 || f[0] == '.' || (l > 0 && f[l - 1] == '.') || strstr(f, ".."))
			error_at(ld, sec->file, line_of(sec, "field"),
				 "field: '%s' is not a dot path such as motor.current", f);
	}
	if (modbus) {
		bool bits = s->reg_kind == CFG_REG_COIL || s->reg_kind == CFG_REG_DI;
		if (!raw_get(sec, "type"))
			s->type = bits ? MB_T_BOOL : MB_T_UINT16;
		else if (bits && s->type != MB_T_BOOL)
			error_at(ld, sec->file, line_of(sec, "type"),
				 "type: %s of a %s is one bit: type = bool", mb_type_name(s->type),
				 s->reg_kind == CFG_REG_COIL ? "coil" : "discrete input");
		int words = bits ? 1 : mb_type_words((enum mb_type)s->type);
		if (s->address + words - 1 > 65535)
			error_at(ld, sec->file, line_of(sec, "register"),
				 "register: %s needs %d registers from %d, past the last address 65535",
				 mb_type_name(s->type), words, s->address);
	}
	if (s->has_min && s->has_max && s->valid_min >= s->valid_max)
		error_at(ld, sec->file, line_of(sec, "valid_max"),
			 "valid_max: must be above valid_min");
}

static int default_check_dims(int kind, int C, int W, char *err, size_t len)
{
	if (C < 1) {
		snprintf(err, len, "a model needs at least one sensor");
		return -EINVAL;
	}
	if (kind == CFG_MODEL_MLP_AE && W < 2) {
		snprintf(err, len, "mlp_ae needs a window of at least 2");
		return -EINVAL;
	}
	if (kind == CFG_MODEL_CONV_AE && (W < 8 || W % 4 != 0)) {
		snprintf(err, len, "conv_ae needs a window of at least 8 that is divisible by 4 "
				   "(e.g. %d)", W < 8 ? 8 : (W / 4 + 1) * 4);
		return -EINVAL;
	}
	return 0;
}

static cfg_check_dims_fn check_dims_hook = default_check_dims;

void cfg_set_check_dims(cfg_check_dims_fn fn)
{
	check_dims_hook = fn ? fn : default_check_dims;
}

static void check_asset(struct loader *ld, const struct raw_section *sec, struct cfg_asset *a,
			const struct raw_section **sensor_sec)
{
	struct pdm_config *c = ld->cfg;
	char why[256], d1[32], d2[32];

	if (a->n_sensors == 0) {
		error_at(ld, sec->file, sec->line,
			 "[asset %s]: has no sensors (add [sensor %s.NAME] sections)", a->name,
			 a->name);
		return;
	}
	if (a->hop > a->window)
		error_at(ld, sec->file, line_of(sec, "hop"),
			 "hop: %d is more than window = %d (samples between windows would never "
			 "be scored)", a->hop, a->window);
	why[0] = '\0';
	if (check_dims_hook(a->model, (int)a->n_sensors, a->window, why, sizeof(why)) < 0)
		error_at(ld, sec->file, line_of(sec, raw_get(sec, "window") ? "window" : "model"),
			 "%s: %s", raw_get(sec, "window") ? "window" : "model",
			 why[0] ? why : "this model cannot be built for this window");
	if (a->train_max_windows < a->train_after)
		error_at(ld, sec->file, line_of(sec, "train_max_windows"),
			 "train_max_windows: %lld is less than train_after = %lld",
			 (long long)a->train_max_windows, (long long)a->train_after);
	if (a->train_history_ms > c->storage.retention_ms) {
		pdm_format_duration(a->train_history_ms, d1, sizeof(d1));
		pdm_format_duration(c->storage.retention_ms, d2, sizeof(d2));
		error_at(ld, sec->file, line_of(sec, "train_history"),
			 "train_history: %s is longer than [storage] retention = %s (older samples "
			 "are gone)", d1, d2);
	}
	/* The first training needs train_after windows inside train_history. */
	double need = ((double)(a->train_after - 1) * a->hop + a->window) *
		      (double)a->sample_interval_ms;
	if (need > (double)a->train_history_ms) {
		pdm_format_duration((int64_t)need, d1, sizeof(d1));
		pdm_format_duration(a->train_history_ms, d2, sizeof(d2));
		error_at(ld, sec->file, line_of(sec, "train_after"),
			 "train_after: %lld windows (hop %d, window %d) need %s of data, more than "
			 "train_history = %s", (long long)a->train_after, a->hop, a->window, d1, d2);
	}
	if (a->no_data_after_ms < a->sample_interval_ms)
		error_at(ld, sec->file, line_of(sec, "no_data_after"),
			 "no_data_after: shorter than sample_interval");

	for (size_t i = 0; i < a->n_sensors; i++) {
		const struct cfg_sensor *s = &c->sensors[a->sensors[i]];
		const struct raw_section *ss = sensor_sec[a->sensors[i]];
		for (size_t j = 0; j < i; j++) {
			const struct cfg_sensor *t = &c->sensors[a->sensors[j]];
			if (strcmp(s->column, t->column) == 0)
				error_at(ld, ss->file, line_of(ss, "column"),
					 "column: '%s' is also the column of %s", s->column, t->name);
		}
		const struct cfg_source *src = s->source < c->n_sources ? &c->sources[s->source]
									: NULL;
		/* A value older than hold intervals is a gap: polling slower than
		 * that leaves every window with gaps, so nothing is ever scored. */
		if (src && src->type != CFG_SRC_MQTT &&
		    src->poll_ms > a->sample_interval_ms * a->hold) {
			pdm_format_duration(src->poll_ms, d1, sizeof(d1));
			pdm_format_duration(a->sample_interval_ms * a->hold, d2, sizeof(d2));
			error_at(ld, ss->file, line_of(ss, "source"),
				 "source: %s polls every %s but asset %s holds a value only %s "
				 "(sample_interval x hold): every window would have gaps",
				 src->name, d1, a->name, d2);
		}
	}

	const struct raw_entry *rw = raw_get(sec, "run_when");
	if (a->has_run_when && rw) {
		char name[128];
		enum cfg_op op;
		double v;
		if (run_when_split(rw->value, name, sizeof(name), &op, &v, why, sizeof(why)) < 0)
			return;
		size_t pl = strlen(a->name);
		const char *shortn = name;
		if (strncmp(name, a->name, pl) == 0 && name[pl] == '.')
			shortn = name + pl + 1;
		a->run_sensor = SIZE_MAX;
		for (size_t i = 0; i < a->n_sensors; i++)
			if (strcmp(c->sensors[a->sensors[i]].short_name, shortn) == 0)
				a->run_sensor = a->sensors[i];
		if (a->run_sensor == SIZE_MAX) {
			char list[256] = "";
			size_t used = 0;
			for (size_t i = 0; i < a->n_sensors && used < sizeof(list); i++) {
				int w = snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "",
						 c->sensors[a->sensors[i]].short_name);
				used += w > 0 ? (size_t)w : 0;
			}
			error_at(ld, sec->file, rw->line,
				 "run_when: '%s' is not a sensor of asset %s (its sensors: %s)", name,
				 a->name, list);
			a->has_run_when = false;
		}
	}
}

/*
 * Bytes a sample row takes in samples.db, for the disk figure of the ring
 * warnings: 23.5 to 23.9 measured with fractional values in a full ring
 * (whole numbers take 17; docs/configuration.md says how).
 */
#define RING_BYTES_PER_ROW 24

/* "45 min", "2.8 h", "3.4 d": the ring span is an estimate, not a duration. */
static void format_span(double s, char *buf, size_t len)
{
	if (s >= 2 * 86400.0)
		snprintf(buf, len, "%.1f d", s / 86400.0);
	else if (s >= 2 * 3600.0)
		snprintf(buf, len, "%.1f h", s / 3600.0);
	else if (s >= 120)
		snprintf(buf, len, "%.0f min", s / 60.0);
	else
		snprintf(buf, len, "%.0f s", s);
}

/* "1000 rows/s", "34", "2.5", "0.0167": three digits are plenty. */
static void format_rate(double r, char *buf, size_t len)
{
	if (r >= 100)
		snprintf(buf, len, "%.0f", r);
	else
		snprintf(buf, len, "%.3g", r);
}

/* A size to advise: rounded up to two significant digits, so the reader
 * gets 610000000 rather than 604800000 and is not misled about precision. */
static int64_t round_up_2sig(double v)
{
	if (v >= 9e18)
		return INT64_MAX;
	int64_t n = (int64_t)v;
	if ((double)n < v)
		n++;
	int64_t p = 1;
	while (n / p >= 100)
		p *= 10;
	return (n + p - 1) / p * p;
}

/* "(raise max_samples to about N, some 14 GiB on disk, or shorten KEY)" */
static void ring_advice(double rows, const char *key, char *buf, size_t len)
{
	const struct key *k = find_key(SK_STORAGE, "max_samples");
	int64_t n = round_up_2sig(rows);

	if ((double)n > k->max) {
		snprintf(buf, len, "max_samples cannot go that high: shorten %s", key);
		return;
	}
	double gib = (double)n * RING_BYTES_PER_ROW / (1024.0 * 1024 * 1024);
	char disk[48];
	if (gib >= 1)
		snprintf(disk, sizeof(disk), "%.*f GiB", gib < 10 ? 1 : 0, gib);
	else
		snprintf(disk, sizeof(disk), "%.0f MiB", gib * 1024);
	snprintf(buf, len, "raise max_samples to about %lld, some %s on disk, or shorten %s",
		 (long long)n, disk, key);
}

/*
 * max_samples caps the rows of all sensors together, so at a high poll rate
 * the ring ages samples out long before retention or train_history say, and
 * training silently sees hours where days were asked for. The rate is known
 * only for polled (Modbus) sensors; MQTT sensors arrive at the publisher's
 * pace, so they are left out: their rows only make the real span shorter.
 */
static void check_ring(struct loader *ld, const struct raw_section *storage,
		       const struct raw_section **asset_sec)
{
	const struct pdm_config *c = ld->cfg;
	double rate = 0; /* rows per second */
	size_t polled = 0, mqtt = 0;
	char span[32], rs[32], d1[32], ring[320], advice[160];

	for (size_t i = 0; i < c->n_sensors; i++) {
		size_t src = c->sensors[i].source;
		if (src >= c->n_sources)
			continue; /* unresolved: reported already */
		if (c->sources[src].type == CFG_SRC_MQTT) {
			mqtt++;
		} else if (c->sources[src].poll_ms > 0) {
			rate += 1000.0 / (double)c->sources[src].poll_ms;
			polled++;
		}
	}
	if (polled == 0)
		return; /* nothing to estimate from */
	double span_s = (double)c->storage.max_samples / rate;
	format_span(span_s, span, sizeof(span));
	format_rate(rate, rs, sizeof(rs));
	char polled_txt[48], mqtt_txt[48] = "";
	if (polled == 1)
		snprintf(polled_txt, sizeof(polled_txt), "the polled sensor's");
	else
		snprintf(polled_txt, sizeof(polled_txt), "the %zu polled sensors'", polled);
	if (mqtt > 0)
		snprintf(mqtt_txt, sizeof(mqtt_txt), "; %zu MQTT sensor%s not counted", mqtt,
			 mqtt == 1 ? "" : "s");
	snprintf(ring, sizeof(ring),
		 "[storage] max_samples = %lld keeps about %s of %s samples (%s rows/s%s)",
		 (long long)c->storage.max_samples, span, polled_txt, rs, mqtt_txt);

	/* Where to point when the key itself is not in any file: max_samples
	 * is the other half of the mismatch, else the section that lacks it. */
	const struct raw_entry *ms = storage ? raw_get(storage, "max_samples") : NULL;
	for (size_t a = 0; a < c->n_assets; a++) {
		const struct cfg_asset *as = &c->assets[a];
		const struct raw_section *sec = asset_sec[a];
		if ((double)as->train_history_ms / 1000.0 <= span_s)
			continue;
		pdm_format_duration(as->train_history_ms, d1, sizeof(d1));
		ring_advice(rate * (double)as->train_history_ms / 1000.0, "train_history", advice,
			    sizeof(advice));
		const struct raw_entry *th = raw_get(sec, "train_history");
		if (th) {
			warn_at(ld, th->file, th->line,
				"train_history: %s reaches back further than the sample ring "
				"holds: %s; training will use only that (%s)", d1, ring, advice);
			continue;
		}
		warn_at(ld, ms ? ms->file : sec->file, ms ? ms->line : sec->line,
			"train_history: %s (the default) of [asset %s] reaches back further than "
			"the sample ring holds: %s; training will use only that (%s)", d1, as->name,
			ring, advice);
	}

	if ((double)c->storage.retention_ms / 1000.0 <= span_s)
		return;
	const struct raw_entry *re = storage ? raw_get(storage, "retention") : NULL;
	const struct raw_entry *at = re ? re : ms;
	/* A key's file, not its section's: a drop-in may re-open [storage]. */
	size_t file = at ? at->file : storage ? storage->file : 0;
	int line = at ? at->line : storage ? storage->line : 0;
	pdm_format_duration(c->storage.retention_ms, d1, sizeof(d1));
	ring_advice(rate * (double)c->storage.retention_ms / 1000.0, "retention", advice,
		    sizeof(advice));
	warn_at(ld, file, line,
		"retention: %s%s is longer than the sample ring holds: %s; the cap evicts "
		"samples before they are %s old (%s)", d1, re ? "" : " (the default)", ring,
		d1, advice);
}

/* ---- the loader --------------------------------------------------------- */

static void free_raw(struct loader *ld)
{
	for (size_t i = 0; i < ld->n_secs; i++) {
		for (size_t j = 0; j < ld->secs[i].n; j++) {
			free(ld->secs[i].e[j].key);
			free(ld->secs[i].e[j].value);
		}
		free(ld->secs[i].e);
		free(ld->secs[i].name);
	}
	free(ld->secs);
	free(ld->line);
}

static void build(struct loader *ld)
{
	struct pdm_config *c = ld->cfg;
	const struct raw_section *sec_of[SK_N] = { 0 };
	const struct raw_section empty = { .file = 0, .line = 0 };
	size_t n[SK_N] = { 0 };

	for (size_t i = 0; i < ld->n_secs; i++) {
		if (ld->secs[i].skip)
			continue;
		n[ld->secs[i].kind]++;
		if (!kinds[ld->secs[i].kind].named)
			sec_of[ld->secs[i].kind] = &ld->secs[i];
	}

	/* [daemon], [mqtt], [storage]: defaults even if the section is absent. */
	for (int k = SK_DAEMON; k <= SK_STORAGE; k++) {
		struct raw_section none = empty;
		none.kind = (enum sec_kind)k;
		none.name = "";
		apply_section(ld, sec_of[k] ? sec_of[k] : &none, c, 0, NULL);
	}
	check_globals(ld, sec_of);

	c->sources = xcalloc(n[SK_SOURCE], sizeof(*c->sources));
	c->assets = xcalloc(n[SK_ASSET], sizeof(*c->assets));
	const struct raw_section **src_sec = xcalloc(n[SK_SOURCE], sizeof(*src_sec));
	const struct raw_section **asset_sec = xcalloc(n[SK_ASSET], sizeof(*asset_sec));
	for (size_t i = 0; i < ld->n_secs; i++) {
		struct raw_section *sec = &ld->secs[i];
		if (sec->skip || sec->kind != SK_SOURCE)
			continue;
		struct cfg_source *s = &c->sources[c->n_sources];
		src_sec[c->n_sources] = sec;
		sec->obj = c->n_sources++;
		s->name = xstrdup(sec->name);
		s->where = (struct cfg_where){ c->files[sec->file], sec->line };
		/* The type decides which keys apply, so it is read first. */
		const struct raw_entry *te = raw_get(sec, "type");
		unsigned bit = 0;
		int t;
		if (te && enum_from_name(source_type_names, te->value, &t) == 0) {
			s->type = (enum cfg_source_type)t;
			bit = 1u << t;
		}
		apply_section(ld, sec, s, bit, te ? te->value : "");
	}
	check_sources(ld, src_sec);

	for (size_t i = 0; i < ld->n_secs; i++) {
		struct raw_section *sec = &ld->secs[i];
		if (sec->skip || sec->kind != SK_ASSET)
			continue;
		struct cfg_asset *a = &c->assets[c->n_assets];
		asset_sec[c->n_assets] = sec;
		sec->obj = c->n_assets++;
		a->name = xstrdup(sec->name);
		a->where = (struct cfg_where){ c->files[sec->file], sec->line };
		apply_section(ld, sec, a, 0, NULL);
	}

	/* Sensors are grouped by asset (in asset order, then file order) so
	 * that the printed setup loads back into the same arrays. */
	c->sensors = xcalloc(n[SK_SENSOR], sizeof(*c->sensors));
	const struct raw_section **sensor_sec = xcalloc(n[SK_SENSOR], sizeof(*sensor_sec));
	size_t *owner = xcalloc(n[SK_SENSOR], sizeof(*owner));
	const struct raw_section **sorted = xcalloc(n[SK_SENSOR], sizeof(*sorted));
	size_t n_sorted = 0;
	for (size_t i = 0; i < ld->n_secs; i++) {
		struct raw_section *sec = &ld->secs[i];
		if (sec->skip || sec->kind != SK_SENSOR)
			continue;
		size_t al = (size_t)(strchr(sec->name, '.') - sec->name);
		size_t a = SIZE_MAX;
		for (size_t j = 0; j < c->n_assets; j++)
			if (strlen(c->assets[j].name) == al &&
			    strncmp(c->assets[j].name, sec->name, al) == 0)
				a = j;
		if (a == SIZE_MAX) {
			char asset[72];
			const char *hint = NULL;
			snprintf(asset, sizeof(asset), "%.*s", (int)al, sec->name);
			for (size_t j = 0; j < c->n_assets; j++)
				if (close_enough(asset, c->assets[j].name))
					hint = c->assets[j].name;
			if (hint)
				error_at(ld, sec->file, sec->line,
					 "[sensor %s]: no [asset %s] is defined; did you mean %s?",
					 sec->name, asset, hint);
			else
				error_at(ld, sec->file, sec->line,
					 "[sensor %s]: no [asset %s] is defined (a sensor is named "
					 "ASSET.NAME)", sec->name, asset);
			continue;
		}
		owner[n_sorted] = a;
		sorted[n_sorted++] = sec;
	}
	for (size_t a = 0; a < c->n_assets; a++) {
		struct cfg_asset *as = &c->assets[a];
		as->sensors = xcalloc(n_sorted, sizeof(*as->sensors));
		for (size_t i = 0; i < n_sorted; i++) {
			if (owner[i] != a)
				continue;
			const struct raw_section *sec = sorted[i];
			size_t idx = c->n_sensors++;
			struct cfg_sensor *s = &c->sensors[idx];
			sensor_sec[idx] = sec;
			as->sensors[as->n_sensors++] = idx;
			s->name = xstrdup(sec->name);
			s->short_name = xstrdup(strchr(sec->name, '.') + 1);
			s->asset = a;
			s->where = (struct cfg_where){ c->files[sec->file], sec->line };
			unsigned bit = resolve_sensor_source(ld, sec, s);
			const char *tn = bit ? cfg_source_type_name(c->sources[s->source].type) : "";
			apply_section(ld, sec, s, bit, tn);
			check_sensor(ld, sec, s);
		}
	}
	for (size_t a = 0; a < c->n_assets; a++)
		check_asset(ld, asset_sec[a], &c->assets[a], sensor_sec);
	check_ring(ld, sec_of[SK_STORAGE], asset_sec);

	/* A sensor whose source is misspelt would make its real source look
	 * unused: the warning is then noise. */
	bool unresolved = false;
	for (size_t j = 0; j < c->n_sensors; j++)
		unresolved |= c->sensors[j].source == SIZE_MAX;
	/* MQTT value payloads carry one number: one sensor per such source. */
	for (size_t i = 0; i < c->n_sources; i++) {
		size_t users = 0;
		for (size_t j = 0; j < c->n_sensors; j++)
			users += c->sensors[j].source == i;
		if (users == 0 && !unresolved)
			warn_at(ld, src_sec[i]->file, src_sec[i]->line,
				"[source %s]: no sensor reads from it", c->sources[i].name);
		else if (c->sources[i].type == CFG_SRC_MQTT && c->sources[i].format == 1 && users > 1)
			error_at(ld, src_sec[i]->file, line_of(src_sec[i], "format"),
				 "format: value payloads are one number, but %zu sensors read from "
				 "source %s (use one source per topic, or format = json)",
				 users, c->sources[i].name);
	}
	if (c->n_assets == 0 && ld->errors == 0)
		warn_at(ld, 0, 0, "no [asset NAME] is configured: nothing will be monitored");

	free(src_sec);
	free(asset_sec);
	free(sensor_sec);
	free(owner);
	free(sorted);
}

/*
 * cfg_print's output must load back. Resolving can lengthen a value past what
 * a configuration line holds (storage file = state_dir + "/samples.db"), so
 * every line the printout would have is measured like the reader does.
 */
static void check_printable(struct loader *ld, enum sec_kind kind, const void *obj,
			    unsigned type_bit, const char *name, const struct cfg_where *w)
{
	const struct pdm_config *c = ld->cfg;
	const int max = INI_MAX_LINE - 2; /* as cfg_reader: the newline and NUL */
	size_t file = SIZE_MAX;
	int line = 0;
	char buf[1024];

	for (size_t i = 0; w && i < c->n_files; i++) {
		if (c->files[i] == w->file) {
			file = i;
			line = w->line;
		}
	}
	for (size_t i = 0; i < kinds[kind].n_keys; i++) {
		const struct key *k = &kinds[kind].keys[i];
		if (type_bit && !key_applies(k, type_bit))
			continue;
		key_format(k, c, obj, buf, sizeof(buf));
		size_t n = strlen(k->name) + 3 + strlen(buf);
		if (n > (size_t)max)
			error_at(ld, file, line,
				 "%s: in [%s%s%s] resolves to '%.40s...', a line of %zu characters "
				 "in the printed setup; at most %d load back (shorten it, or the "
				 "names or directory it is made of)",
				 k->name, kinds[kind].name, name[0] ? " " : "", name, buf, n, max);
	}
}

static void check_print(struct loader *ld)
{
	const struct pdm_config *c = ld->cfg;

	for (int k = SK_DAEMON; k <= SK_STORAGE; k++)
		check_printable(ld, (enum sec_kind)k, c, 0, "", NULL);
	for (size_t i = 0; i < c->n_sources; i++)
		check_printable(ld, SK_SOURCE, &c->sources[i], 1u << c->sources[i].type,
				c->sources[i].name, &c->sources[i].where);
	for (size_t i = 0; i < c->n_assets; i++)
		check_printable(ld, SK_ASSET, &c->assets[i], 0, c->assets[i].name,
				&c->assets[i].where);
	for (size_t i = 0; i < c->n_sensors; i++) {
		const struct cfg_sensor *s = &c->sensors[i];
		check_printable(ld, SK_SENSOR, s, 1u << c->sources[s->source].type, s->name,
				&s->where);
	}
}

struct pdm_config *cfg_load(const char *dir, FILE *err)
{
	struct pdm_config *cfg = calloc(1, sizeof(*cfg));
	struct loader ld = { .cfg = cfg, .cur = SIZE_MAX };

	if (!cfg)
		return NULL;
	cfg->dir = xstrdup(dir);
	/* "etc/" and "etc" name the same files: keep messages free of "//". */
	for (size_t l = strlen(cfg->dir); l > 1 && cfg->dir[l - 1] == '/'; l--)
		cfg->dir[l - 1] = '\0';
	dir = cfg->dir;
	char *main_file = xasprintf("%s/pdmd.conf", dir);
	parse_file(&ld, main_file, true);
	free(main_file);
	parse_dropins(&ld, dir);
	build(&ld);
	if (ld.errors == 0)
		check_print(&ld);
	free_raw(&ld);
	int errors = ld.errors;
	flush_messages(&ld, err);
	if (errors > 0) {
		cfg_free(cfg);
		return NULL;
	}
	return cfg;
}

static void free_strings(const struct key *keys, size_t n, void *obj)
{
	for (size_t i = 0; i < n; i++) {
		if (keys[i].type == T_STR) {
			char **p = (char **)((char *)obj + keys[i].off);
			free(*p);
			*p = NULL;
		}
	}
}

void cfg_free(struct pdm_config *cfg)
{
	if (!cfg)
		return;
	for (int k = SK_DAEMON; k <= SK_STORAGE; k++)
		free_strings(kinds[k].keys, kinds[k].n_keys, cfg);
	for (size_t i = 0; i < cfg->n_sources; i++) {
		free_strings(source_keys, ARRAY_LEN(source_keys), &cfg->sources[i]);
		free(cfg->sources[i].name);
		free(cfg->sources[i].host);
	}
	for (size_t i = 0; i < cfg->n_assets; i++) {
		free(cfg->assets[i].name);
		free(cfg->assets[i].sensors);
	}
	for (size_t i = 0; i < cfg->n_sensors; i++) {
		free_strings(sensor_keys, ARRAY_LEN(sensor_keys), &cfg->sensors[i]);
		free(cfg->sensors[i].name);
		free(cfg->sensors[i].short_name);
	}
	for (size_t i = 0; i < cfg->n_files; i++)
		free(cfg->files[i]);
	free(cfg->files);
	free(cfg->sources);
	free(cfg->assets);
	free(cfg->sensors);
	free(cfg->dir);
	free(cfg);
}

/* ---- printing ----------------------------------------------------------- */

static void print_keys(const struct pdm_config *c, enum sec_kind kind, const void *obj,
		       unsigned type_bit, FILE *out)
{
	char buf[1024];
	for (size_t i = 0; i < kinds[kind].n_keys; i++) {
		const struct key *k = &kinds[kind].keys[i];
		if (type_bit && !key_applies(k, type_bit))
			continue;
		key_format(k, c, obj, buf, sizeof(buf));
		fprintf(out, "%s =%s%s\n", k->name, buf[0] ? " " : "", buf);
	}
}

void cfg_print(const struct pdm_config *c, FILE *out)
{
	fprintf(out, "# pdmd configuration from %s, resolved (defaults included)\n", c->dir);
	for (int k = SK_DAEMON; k <= SK_STORAGE; k++) {
		fprintf(out, "\n[%s]\n", kinds[k].name);
		print_keys(c, (enum sec_kind)k, c, 0, out);
	}
	for (size_t i = 0; i < c->n_sources; i++) {
		const struct cfg_source *s = &c->sources[i];
		fprintf(out, "\n# %s:%d\n[source %s]\n", s->where.file, s->where.line, s->name);
		print_keys(c, SK_SOURCE, s, 1u << s->type, out);
	}
	for (size_t a = 0; a < c->n_assets; a++) {
		const struct cfg_asset *as = &c->assets[a];
		fprintf(out, "\n# %s:%d\n", as->where.file, as->where.line);
		/* What a small box must have spare while the asset trains: the
		 * trainer holds its sample of windows (docs/configuration.md). */
		double mib = (double)as->train_max_windows * (double)as->n_sensors *
			     (double)as->window * sizeof(float) / (1024.0 * 1024.0);
		fprintf(out, "# training holds up to %.1f MiB of windows (train_max_windows %lld x %zu "
			"sensors x window %d x 4 bytes)\n",
			mib, (long long)as->train_max_windows, as->n_sensors, as->window);
		fprintf(out, "[asset %s]\n", as->name);
		print_keys(c, SK_ASSET, as, 0, out);
		for (size_t j = 0; j < as->n_sensors; j++) {
			const struct cfg_sensor *s = &c->sensors[as->sensors[j]];
			fprintf(out, "\n# %s:%d\n[sensor %s]\n", s->where.file, s->where.line, s->name);
			print_keys(c, SK_SENSOR, s, 1u << c->sources[s->source].type, out);
		}
	}
}

static void reference_type(const struct key *k, char *buf, size_t len)
{
	switch (k->type) {
	case T_STR:
		snprintf(buf, len, "string");
		break;
	case T_INT:
	case T_I64:
	case T_U64:
		snprintf(buf, len, "integer");
		break;
	case T_DOUBLE:
		snprintf(buf, len, "number");
		break;
	case T_DURATION:
		snprintf(buf, len, "duration");
		break;
	case T_SIZE:
		snprintf(buf, len, "size");
		break;
	case T_ENUM: {
		size_t used = 0;
		buf[0] = '\0';
		for (const struct enum_name *e = k->names; e->name && used < len; e++) {
			int w = snprintf(buf + used, len - used, "%s%s", used ? " \\| " : "", e->name);
			used += w > 0 ? (size_t)w : 0;
		}
		break;
	}
	case T_CUSTOM:
		snprintf(buf, len, "%s", k->tname);
		break;
	}
}

void cfg_print_reference(FILE *out)
{
	char type[256], lo[32], hi[32], only[64];

	for (int s = 0; s < SK_N; s++) {
		const struct section_kind *sk = &kinds[s];
		bool per_type = s == SK_SOURCE || s == SK_SENSOR;
		fprintf(out, "%s#### `%s`\n\n", s ? "\n" : "", sk->example);
		fprintf(out, "| key |%s type | default | range | meaning |\n", per_type ? " for |" : "");
		fprintf(out, "|---|%s---|---|---|---|\n", per_type ? "---|" : "");
		for (size_t i = 0; i < sk->n_keys; i++) {
			const struct key *k = &sk->keys[i];
			reference_type(k, type, sizeof(type));
			if (k->only == ONLY_MODBUS)
				snprintf(only, sizeof(only), "modbus-tcp, modbus-rtu");
			else
				only_text(k->only ? k->only : ONLY_ALL, only, sizeof(only));
			bool ranged = k->type == T_INT || k->type == T_I64 || k->type == T_DOUBLE ||
				      k->type == T_DURATION || k->type == T_SIZE;
			if (ranged && !(k->min <= -1e300)) {
				format_range_value(k, k->min, lo, sizeof(lo));
				format_range_value(k, k->max, hi, sizeof(hi));
			}
			fprintf(out, "| `%s` |", k->name);
			if (per_type)
				fprintf(out, " %s |", only);
			if (!k->def)
				fprintf(out, " %s | **required** |", type);
			else if (k->flags & K_COMPUTED || !k->def[0])
				fprintf(out, " %s | %s |", type, k->def[0] ? k->def : "(empty)");
			else
				fprintf(out, " %s | `%s` |", type, k->def);
			if (ranged && !(k->min <= -1e300))
				fprintf(out, " %s .. %s |", lo, hi);
			else
				fprintf(out, " |");
			fprintf(out, " %s |\n", k->help);
		}
	}
}

/* ---- lookups ------------------------------------------------------------ */

const struct cfg_source *cfg_find_source(const struct pdm_config *c, const char *name)
{
	for (size_t i = 0; c && name && i < c->n_sources; i++)
		if (strcmp(c->sources[i].name, name) == 0)
			return &c->sources[i];
	return NULL;
}

const struct cfg_asset *cfg_find_asset(const struct pdm_config *c, const char *name)
{
	for (size_t i = 0; c && name && i < c->n_assets; i++)
		if (strcmp(c->assets[i].name, name) == 0)
			return &c->assets[i];
	return NULL;
}

const struct cfg_sensor *cfg_find_sensor(const struct pdm_config *c, const char *name)
{
	for (size_t i = 0; c && name && i < c->n_sensors; i++)
		if (strcmp(c->sensors[i].name, name) == 0)
			return &c->sensors[i];
	return NULL;
}
