/*
 * cfg_keys.c - the key tables of the configuration: one row per key of each
 * section (name, type, offset, default, range, validator, help), the value
 * parsers and printers the rows use, and the key reference made from them.
 *
 * Parsing, defaults, range checks, the resolved-setup printout (cfg_print)
 * and the key reference of docs/configuration.md (cfg_print_reference) all
 * come from these tables, so a key cannot be documented one way and parsed
 * another.
 *
 * The tables are apart from the loader (cfg.c) because a row describes one
 * key on its own and needs none of the loader's state: a new key is an edit
 * here only, and the reference is printed without loading anything. What
 * spans keys, sections or files stays in cfg.c.
 */
#include "cfg_keys.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>

#include "learn.h"
#include "mb_decode.h"
#include "pdm_parse.h"
#include "pdm_uri.h"

/* ---- small helpers ------------------------------------------------------ */

char *cfg_keys_xstrdup(const char *s)
{
	char *d = strdup(s ? s : "");
	if (!d)
		abort();
	return d;
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

int cfg_keys_source_type(const char *name, int *type)
{
	return enum_from_name(source_type_names, name, type);
}

/* ---- value types -------------------------------------------------------- */

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
int cfg_key_parse(const struct key *k, void *obj, const char *v, char *why, size_t len)
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
		*(char **)field = cfg_keys_xstrdup(v);
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

void cfg_key_format(const struct key *k, const struct pdm_config *c, const void *obj, char *buf,
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

/* bit = N: one bit of a register's integer value (0 its lowest), or empty. */
static int parse_mb_bit(void *obj, const char *v, char *why, size_t len)
{
	struct cfg_sensor *s = obj;
	int64_t b;
	s->has_bit = false;
	if (!*v)
		return 0;
	if (parse_dec(v, 0, 63, &b) < 0) {
		snprintf(why, len, "expected a bit number 0 .. 63 (0 the lowest), got '%s'", v);
		return -EINVAL;
	}
	s->has_bit = true;
	s->bit = (int)b;
	return 0;
}

static void print_mb_bit(const struct pdm_config *c, const void *obj, char *buf, size_t len)
{
	const struct cfg_sensor *s = obj;
	(void)c;
	buf[0] = '\0';
	if (s->has_bit)
		snprintf(buf, len, "%d", s->bit);
}

/* A sensor key that is a duration in [lo, hi] ms (range says so), or empty
 * for `empty`. */
static int parse_optional_duration(const char *v, int64_t empty, int64_t lo, int64_t hi,
				   const char *range, int64_t *out, char *why, size_t len)
{
	int64_t ms;
	if (!v[0]) {
		*out = empty;
		return 0;
	}
	int rc = parse_duration(v, &ms, why, len);
	if (rc < 0)
		return rc;
	if (ms < lo || ms > hi) {
		snprintf(why, len, "%s is out of range (%s)", v, range);
		return -ERANGE;
	}
	*out = ms;
	return 0;
}

/* A sensor's own hold: a duration, or empty for the asset's. */
static int parse_sensor_hold(void *obj, const char *v, char *why, size_t len)
{
	struct cfg_sensor *s = obj;
	return parse_optional_duration(v, 0, 1, INT64_C(7) * 86400000, "1ms .. 7d", &s->hold_ms,
				       why, len);
}

static void print_sensor_hold(const struct pdm_config *c, const void *obj, char *buf, size_t len)
{
	const struct cfg_sensor *s = obj;
	(void)c;
	buf[0] = '\0';
	if (s->hold_ms > 0)
		pdm_format_duration(s->hold_ms, buf, (unsigned)len);
}

/* stuck_after: empty learns it (-1), 0 turns the check off. */
static int parse_stuck_after(void *obj, const char *v, char *why, size_t len)
{
	struct cfg_sensor *s = obj;
	return parse_optional_duration(v, -1, 0, INT64_C(30) * 86400000, "0 .. 30d",
				       &s->stuck_after_ms, why, len);
}

static void print_stuck_after(const struct pdm_config *c, const void *obj, char *buf, size_t len)
{
	const struct cfg_sensor *s = obj;
	(void)c;
	buf[0] = '\0';
	if (s->stuck_after_ms == 0)
		snprintf(buf, len, "0");
	else if (s->stuck_after_ms > 0)
		pdm_format_duration(s->stuck_after_ms, buf, (unsigned)len);
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

/* raise_after / clear_after: a count of windows, or how long the score must
 * stay over (under) the threshold: alarm delays are specified in time in
 * plants (on-delay, off-delay), and a count means a different time on every
 * asset's grid. The count for a duration is resolved once hop and interval
 * are known (cfg.c). */
static int parse_windows_or_time(const char *v, int *count, int64_t *ms, char *why, size_t len)
{
	int64_t n;
	size_t l = strlen(v);
	if (l > 0 && isdigit((unsigned char)v[l - 1])) {
		int rc = parse_dec(v, 1, CFG_ALERT_WINDOWS_MAX, &n);
		if (rc == -ERANGE) {
			snprintf(why, len, "%s is out of range (1 .. %d)", v, CFG_ALERT_WINDOWS_MAX);
			return rc;
		}
		if (rc < 0)
			goto bad;
		*count = (int)n;
		*ms = 0;
		return 0;
	}
	if (parse_duration(v, &n, why, len) < 0)
		goto bad;
	if (n < 1 || n > 365LL * 86400000) {
		snprintf(why, len, "%s is out of range (1ms .. 365d)", v);
		return -ERANGE;
	}
	*ms = n;
	*count = 1; /* resolved on the asset's grid */
	return 0;
bad:
	snprintf(why, len, "expected a number of windows or a duration (30s, 10m), got '%s'", v);
	return -EINVAL;
}

static void print_windows_or_time(int count, int64_t ms, char *buf, size_t len)
{
	if (ms > 0)
		pdm_format_duration(ms, buf, (unsigned)len);
	else
		snprintf(buf, len, "%d", count);
}

static int parse_raise_after(void *obj, const char *v, char *why, size_t len)
{
	struct cfg_asset *a = obj;
	return parse_windows_or_time(v, &a->raise_after, &a->raise_after_ms, why, len);
}

static int parse_clear_after(void *obj, const char *v, char *why, size_t len)
{
	struct cfg_asset *a = obj;
	return parse_windows_or_time(v, &a->clear_after, &a->clear_after_ms, why, len);
}

static void print_raise_after(const struct pdm_config *c, const void *obj, char *buf, size_t len)
{
	const struct cfg_asset *a = obj;
	(void)c;
	print_windows_or_time(a->raise_after, a->raise_after_ms, buf, len);
}

static void print_clear_after(const struct pdm_config *c, const void *obj, char *buf, size_t len)
{
	const struct cfg_asset *a = obj;
	(void)c;
	print_windows_or_time(a->clear_after, a->clear_after_ms, buf, len);
}

bool cfg_keys_name_char(char ch)
{
	return isalnum((unsigned char)ch) || ch == '_' || ch == '-';
}

/* run_when = SENSOR OP NUMBER; SENSOR is a short name or the full asset.name.
 * Splits v; name gets the sensor part. */
int cfg_keys_run_when_split(const char *v, char *name, size_t name_len, enum cfg_op *op,
			    double *value, char *why, size_t len)
{
	const char *p = v;
	while (cfg_keys_name_char(*p) || *p == '.')
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
	int rc = cfg_keys_run_when_split(v, name, sizeof(name), &a->run_op, &a->run_value, why,
					 len);
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
	  .help = "json: an object with one field per sensor, or an array of such objects (a batch, each with its own timestamp); value: the payload is one number." },
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
		  "alerts but far over the threshold (learn_alert_over), every window outside "
		  "an episode training data, retrained as its data grows) until a model "
		  "scores under its threshold for half the time its data spans and that data spans "
		  "learn_min, at most this long after the model (or until learn_min, when later); "
		  "0: alerts from the first model on." },
	{ .name = "learn_min", .type = T_DURATION, .off = ASSET(learn_min_ms), .def = "1d", .min = 0,
	  .max = 365 * MS_D,
	  .help = "Learning after the first model (learn_for) goes on until its data spans at "
		  "least this long, however quiet the model: a plant's conditions come round once "
		  "a day (ambient, shifts), and a model quiet through a morning alarms on an "
		  "afternoon it has not seen. 0: learned as soon as a model is quiet long enough "
		  "(test rigs, the demo)." },
	{ .name = "learn_alert_over", .type = T_DOUBLE, .off = ASSET(learn_alert_over), .def = "10",
	  .min = 0, .max = 1000,
	  .help = "While the first model's machine is learned, a score at least this many times "
		  "the threshold (raise_after windows in a row) still raises an alert: that far "
		  "from what the model has seen, a fault is likelier than an operating point, and "
		  "learning would make it normal to every later model. The episode's windows stay "
		  "out of learning's trainings; pdmctl normal makes it normal. 0: no alert while "
		  "learning; 1: every alert." },
	{ .name = "relearn_for", .type = T_DURATION, .off = ASSET(relearn_for_ms), .def = "1h",
	  .min = LEARN_MIN_MS, .max = 365 * MS_D,
	  .help = "An alert episode taken as normal (pdmctl normal) is relearned without alerts "
		  "until a model scores the new state under its threshold for half as long as the "
		  "relearning has lasted, at most this long: a state still over it then may be a "
		  "fault after all (a machine whose temperatures settle over hours needs longer)." },
	{ .name = "raise_after", .type = T_CUSTOM, .parse = parse_raise_after,
	  .print = print_raise_after, .def = "3", .tname = "windows \\| duration",
	  .help = "Consecutive windows over the threshold that raise an alert, or how long the "
		  "score must stay over it (30s: as many windows as that takes on the asset's "
		  "grid, rounded up)." },
	{ .name = "clear_after", .type = T_CUSTOM, .parse = parse_clear_after,
	  .print = print_clear_after, .def = "30m", .tname = "windows \\| duration",
	  .help = "How long the score must stay under the threshold to clear an alert (10m), "
		  "or a count of windows (10). A fault that shows only under load (a worn "
		  "bearing at high speed) dips under it at each slower operating point: a short "
		  "time clears the alert and raises it again each time. The default stops at "
		  "100000 windows on a grid where 30m is more." },
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
		  "with a gap are not scored). A sensor without a hold of its own holds longer "
		  "when its source polls less often, or when its samples come regularly further "
		  "apart (learned: 1.5 x their spacing, up to 1h); one that reports only on change "
		  "needs a hold in its section (the log names it and the hold that would do)." },
	{ .name = "no_data_after", .type = T_DURATION, .off = ASSET(no_data_after_ms),
	  .def = "30s", .min = MS_S, .max = 7 * MS_D,
	  .help = "Without any good sample for this long the asset's state becomes no_data; so "
		  "does a sensor without one for this long (or its hold, if longer) that keeps "
		  "the running asset from being scored, and the state names it as missing." },
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
	{ .name = "bit", .type = T_CUSTOM, .parse = parse_mb_bit, .print = print_mb_bit, .def = "",
	  .tname = "0 .. 63", .only = ONLY_MODBUS,
	  .help = "One bit of an integer register value (a PLC's status word: bit = 3 reads "
		  "0 or 1), 0 the lowest; for run_when = running == 1. Empty: the whole value." },
	{ .name = "scale", .type = T_DOUBLE, .off = SENSOR(scale), .def = "1", .min = -1e300,
	  .max = 1e300, .check = check_nonzero, .help = "value = raw * scale + offset." },
	{ .name = "offset", .type = T_DOUBLE, .off = SENSOR(offset), .def = "0", .min = -1e300,
	  .max = 1e300, .help = "See scale." },
	{ .name = "unit", .type = T_STR, .off = SENSOR(unit), .def = "",
	  .help = "Engineering unit, for people (mm/s, degC)." },
	{ .name = "field", .type = T_STR, .off = SENSOR(field), .def = "the sensor's name",
	  .flags = K_COMPUTED, .only = ONLY_MQTT,
	  .help = "JSON field of the value, a dot path for nested objects (format = json only); "
		  "values[id=TAG].v picks from a list of tag objects by a member's value." },
	{ .name = "quality_field", .type = T_STR, .off = SENSOR(quality_field), .def = "",
	  .only = ONLY_MQTT,
	  .help = "JSON path of the value's quality flag (an OPC gateway's "
		  "values[id=TAG].q): false, \"false\", or text starting with \"bad\" or "
		  "\"uncertain\" there stores the sample as bad, never scored; numbers need "
		  "quality_good. A missing flag is good. Empty: none." },
	{ .name = "quality_good", .type = T_STR, .off = SENSOR(quality_good), .def = "",
	  .only = ONLY_MQTT,
	  .help = "Which quality flags are good, for gateways that send codes: opc-ua (a "
		  "StatusCode, good when its severity bits are 00), opc-da (good when bits "
		  "0xC0 are set: 192, 216; also Sparkplug), or a list of the good values "
		  "(192, 216 or GOOD, OK); anything else is bad. Empty: the rule of "
		  "quality_field." },
	{ .name = "timestamp", .type = T_STR, .off = SENSOR(timestamp), .def = "",
	  .only = ONLY_MQTT,
	  .help = "JSON path of this value's own time, when each value of a message carries one "
		  "(a tag list's values[id=TAG].t); where it is missing, the message's time counts "
		  "(the source's timestamp, or the receive time). Empty: the message's." },
	{ .name = "column", .type = T_STR, .off = SENSOR(column), .def = "the sensor's name",
	  .flags = K_COMPUTED, .check = check_nonempty,
	  .help = "Column of this sensor in `pdmd replay` CSV files." },
	{ .name = "valid_min", .type = T_CUSTOM, .parse = parse_valid_min, .print = print_valid_min,
	  .def = "", .tname = "number",
	  .help = "Values below are absurd: counted, stored as bad, never scored. Empty: no "
		  "limit." },
	{ .name = "valid_max", .type = T_CUSTOM, .parse = parse_valid_max, .print = print_valid_max,
	  .def = "", .tname = "number", .help = "Values above are absurd (see valid_min)." },
	{ .name = "hold", .type = T_CUSTOM, .parse = parse_sensor_hold, .print = print_sensor_hold,
	  .def = "", .tname = "duration",
	  .help = "How long this sensor's last value counts on the grid, for a sensor that reports "
		  "only when its value changes (the asset's windows do not wait for it longer). "
		  "Empty: the asset's hold (sample_interval x hold), or 1.5 x the poll of a slower "
		  "Modbus source, raised while the sensor's samples come regularly further apart "
		  "(learned, up to 1h)." },
	{ .name = "stuck_after", .type = T_CUSTOM, .parse = parse_stuck_after,
	  .print = print_stuck_after, .def = "", .tname = "duration",
	  .help = "The sensor is stuck (a frozen transmitter) when its value stays exactly the "
		  "same this long while the machine runs; 0: never. Empty: learned, three times "
		  "the longest it stood still in the training history, a minute at least." },
};

static const struct section_kind kinds[SK_N] = {
	[SK_DAEMON] = { "daemon", false, daemon_keys, ARRAY_LEN(daemon_keys), "[daemon]" },
	[SK_MQTT] = { "mqtt", false, mqtt_keys, ARRAY_LEN(mqtt_keys), "[mqtt]" },
	[SK_STORAGE] = { "storage", false, storage_keys, ARRAY_LEN(storage_keys), "[storage]" },
	[SK_SOURCE] = { "source", true, source_keys, ARRAY_LEN(source_keys), "[source NAME]" },
	[SK_ASSET] = { "asset", true, asset_keys, ARRAY_LEN(asset_keys), "[asset NAME]" },
	[SK_SENSOR] = { "sensor", true, sensor_keys, ARRAY_LEN(sensor_keys),
			"[sensor ASSET.NAME]" },
};

/* ---- lookup ------------------------------------------------------------- */

const struct section_kind *cfg_keys_kind(enum sec_kind kind)
{
	return &kinds[kind];
}

const struct key *cfg_keys_find(enum sec_kind kind, const char *name)
{
	for (size_t i = 0; i < kinds[kind].n_keys; i++)
		if (strcmp(kinds[kind].keys[i].name, name) == 0)
			return &kinds[kind].keys[i];
	return NULL;
}

bool cfg_key_applies(const struct key *k, unsigned type_bit)
{
	return !k->only || (k->only & type_bit);
}

/* "modbus-rtu sources" / "modbus-tcp and modbus-rtu sources" */
void cfg_keys_only_text(unsigned only, char *buf, size_t len)
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

/* ---- the key reference -------------------------------------------------- */

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
				cfg_keys_only_text(k->only ? k->only : ONLY_ALL, only,
						   sizeof(only));
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
