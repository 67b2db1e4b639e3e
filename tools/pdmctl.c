/*
 * pdmctl.c - the operator's tool: what is pdmd doing, what did it send,
 * which models does it have, and a few requests (retrain, normal) to the
 * running daemon.
 *
 * Everything here reads the state directory the daemon's configuration
 * names: status.json (rewritten by pdmd every 5 s), the store through a
 * read-only SQLite handle (WAL lets it read beside the daemon's writes) and
 * models/. Requests are files under control/ that the daemon polls, so
 * pdmctl needs no socket and works the same with the daemon stopped.
 *
 * Exit codes follow sysexits.h, like pdmd's.
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "detector.h"
#include "episodes.h"
#include "learn.h"
#include "log.h"
#include "pdm_config.h"
#include "pdm_error.h"
#include "pdm_parse.h"
#include "pdm_time.h"
#include "pdmctl.h"

/* pdmd rewrites status.json every 5 s; three missed updates mean it is
 * not running (or hung). */
#define STATUS_STALE_MS 15000

/* ---- small helpers ------------------------------------------------------------ */

static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q) {
		fputs("pdmctl: out of memory\n", stderr);
		abort();
	}
	return q;
}

static char *xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	return memcpy(xrealloc(NULL, n), s, n);
}

int pdmctl_usage_error(const char *cmd, const char *msg, const char *arg)
{
	fprintf(stderr, "pdmctl %s: %s%s%s\nTry 'pdmctl %s --help'.\n", cmd, msg, arg ? ": " : "",
		arg ? arg : "", cmd);
	return EX_USAGE;
}

void pdmctl_fmt_age(int64_t ms, char *buf, size_t len)
{
	if (ms < 0)
		ms = 0;
	int64_t s = ms / 1000;
	if (s < 60)
		snprintf(buf, len, "%llds", (long long)s);
	else if (s < 3600)
		snprintf(buf, len, "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
	else if (s < 86400)
		snprintf(buf, len, "%lldh%02lldm", (long long)(s / 3600), (long long)(s / 60 % 60));
	else
		snprintf(buf, len, "%lldd%02lldh", (long long)(s / 86400), (long long)(s / 3600 % 24));
}

int pdmctl_parse_when(const char *s, int64_t now_ms, int64_t *out_ms)
{
	int64_t d;

	if (!s || !out_ms)
		return -EINVAL;
	if (strcmp(s, "now") == 0) {
		*out_ms = now_ms;
		return 0;
	}
	if (pdm_parse_iso8601(s, out_ms) == 0)
		return 0;
	if (pdm_parse_duration_ms(s, 1000, &d) == 0 && d >= 0) {
		*out_ms = now_ms - d;
		return 0;
	}
	return -EINVAL;
}

int pdmctl_getopt(struct pdmctl *c, const char *cmd, const char *usage,
		  const struct pdmctl_opt *opts, const char *operand, int argc, char **argv)
{
	enum { MAX_OPTS = 16, FIRST_KEY = 256 };
	struct option lo[MAX_OPTS + 3];
	char shorts[2 * MAX_OPTS + 8] = "c:h";
	size_t n = 0, k = strlen(shorts);
	int o;

	for (; opts[n].name; n++) {
		if (n == MAX_OPTS)
			return pdmctl_usage_error(cmd, "too many options", NULL);
		lo[n] = (struct option){ opts[n].name,
					 opts[n].str ? required_argument : no_argument, NULL,
					 FIRST_KEY + (int)n };
		if (opts[n].short_name) {
			shorts[k++] = opts[n].short_name;
			if (opts[n].str)
				shorts[k++] = ':';
		}
	}
	shorts[k] = '\0';
	lo[n] = (struct option){ "config", required_argument, NULL, 'c' };
	lo[n + 1] = (struct option){ "help", no_argument, NULL, 'h' };
	lo[n + 2] = (struct option){ NULL, 0, NULL, 0 };

	while ((o = getopt_long(argc, argv, shorts, lo, NULL)) != -1) {
		if (o == 'c') {
			c->config_dir = optarg;
			continue;
		}
		if (o == 'h') {
			fputs(usage, stdout);
			return 0;
		}
		const struct pdmctl_opt *p = NULL;
		for (size_t i = 0; i < n && !p; i++)
			if (o == FIRST_KEY + (int)i || (opts[i].short_name && o == opts[i].short_name))
				p = &opts[i];
		if (!p)
			return pdmctl_usage_error(cmd, "bad option", NULL);
		if (p->str)
			*p->str = optarg;
		else
			*p->flag = true;
	}
	if (!operand && optind < argc)
		return pdmctl_usage_error(cmd, "unexpected argument", argv[optind]);
	if (operand && optind + 1 != argc) {
		char msg[64];
		snprintf(msg, sizeof(msg), "want exactly one %s", operand);
		return pdmctl_usage_error(cmd, msg, NULL);
	}
	return PDMCTL_GO_ON;
}

int pdmctl_parse_range(const char *cmd, const char *since, const char *until, int64_t *t0,
		       int64_t *t1)
{
	int64_t now = pdm_wall_ms();

	if (pdmctl_parse_when(since, now, t0) < 0)
		return pdmctl_usage_error(cmd, "bad --since", since);
	if (pdmctl_parse_when(until, now, t1) < 0)
		return pdmctl_usage_error(cmd, "bad --until", until);
	if (*t1 <= *t0)
		return pdmctl_usage_error(cmd, "--until must be after --since", NULL);
	(*t1)++;
	return 0;
}

/* "2026-11-28T04:25:42.123Z" -> "2026-11-28 04:25:42" (UTC) for tables. */
static void fmt_time(int64_t ms, char *buf, size_t len)
{
	char iso[PDM_ISO8601_LEN];
	pdm_iso8601(ms, iso, sizeof(iso));
	iso[10] = ' ';
	iso[19] = '\0';
	snprintf(buf, len, "%s", iso);
}

/* Reads a whole small file; NULL (errno set) if it cannot. */
static char *read_file(const char *path, size_t max)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	char *buf = xrealloc(NULL, max + 1);
	size_t n = fread(buf, 1, max, f);
	int err = ferror(f) ? EIO : 0;
	fclose(f);
	if (err) {
		free(buf);
		errno = err;
		return NULL;
	}
	buf[n] = '\0';
	return buf;
}

/* ---- tables --------------------------------------------------------------------- */

/* Rows of strings printed with every column as wide as its widest cell;
 * numeric columns are right-aligned so digits line up. */
struct table {
	size_t ncol, nrow;
	char **cell; /* (nrow + 1) * ncol, row 0 is the header */
	unsigned right; /* bit i: column i is right-aligned */
};

static void table_init(struct table *t, unsigned right, size_t ncol, ...)
{
	va_list ap;
	t->ncol = ncol;
	t->nrow = 0;
	t->right = right;
	t->cell = xrealloc(NULL, ncol * sizeof(char *));
	va_start(ap, ncol);
	for (size_t i = 0; i < ncol; i++)
		t->cell[i] = xstrdup(va_arg(ap, const char *));
	va_end(ap);
}

static void table_add(struct table *t, ...)
{
	va_list ap;
	t->nrow++;
	t->cell = xrealloc(t->cell, (t->nrow + 1) * t->ncol * sizeof(char *));
	va_start(ap, t);
	for (size_t i = 0; i < t->ncol; i++) {
		const char *v = va_arg(ap, const char *);
		t->cell[t->nrow * t->ncol + i] = xstrdup(v ? v : "-");
	}
	va_end(ap);
}

static void table_print(const struct table *t, FILE *out)
{
	size_t w[32] = { 0 };
	for (size_t r = 0; r <= t->nrow; r++)
		for (size_t i = 0; i < t->ncol && i < 32; i++) {
			size_t n = strlen(t->cell[r * t->ncol + i]);
			if (n > w[i])
				w[i] = n;
		}
	for (size_t r = 0; r <= t->nrow; r++) {
		for (size_t i = 0; i < t->ncol && i < 32; i++) {
			const char *v = t->cell[r * t->ncol + i];
			bool last = i + 1 == t->ncol;
			if (t->right & (1u << i))
				fprintf(out, "%*s", (int)w[i], v);
			else if (last)
				fputs(v, out);
			else
				fprintf(out, "%-*s", (int)w[i], v);
			fputs(last ? "\n" : "  ", out);
		}
	}
}

static void table_free(struct table *t)
{
	for (size_t i = 0; t->cell && i < (t->nrow + 1) * t->ncol; i++)
		free(t->cell[i]);
	free(t->cell);
	t->cell = NULL;
}

static int print_json(cJSON *j)
{
	char *s = cJSON_Print(j);
	if (!s) {
		fputs("pdmctl: out of memory\n", stderr);
		return EX_SOFTWARE;
	}
	puts(s);
	free(s);
	return 0;
}

/* ---- config and store --------------------------------------------------------- */

int pdmctl_load_cfg(struct pdmctl *c)
{
	char *msg = NULL;
	size_t msglen = 0;

	if (c->cfg)
		return 0;
	FILE *err = open_memstream(&msg, &msglen);
	if (!err) {
		fprintf(stderr, "pdmctl: %s\n", strerror(errno));
		return EX_OSERR;
	}
	c->cfg = cfg_load(c->config_dir, err);
	fclose(err);
	if (!c->cfg) {
		fprintf(stderr, "pdmctl: cannot load the configuration in %s:\n%s", c->config_dir,
			msg && msg[0] ? msg : "(no detail)\n");
		free(msg);
		return EX_CONFIG;
	}
	/* Warnings are pdmd check's business, not every pdmctl call's. */
	free(msg);
	return 0;
}

struct store *pdmctl_open_store(struct pdmctl *c, int *ex)
{
	char err[512];
	struct stat st;

	if ((*ex = pdmctl_load_cfg(c)) != 0)
		return NULL;
	if (stat(c->cfg->storage.file, &st) < 0) {
		fprintf(stderr, "pdmctl: no store at %s (%s): has pdmd run with this configuration?\n",
			c->cfg->storage.file, strerror(errno));
		*ex = EX_NOINPUT;
		return NULL;
	}
	struct store *s = store_open_reader(c->cfg->storage.file, err, sizeof(err));
	if (!s) {
		fprintf(stderr, "pdmctl: %s\n", err);
		*ex = EX_NOINPUT;
	}
	return s;
}

static const struct cfg_asset *find_asset_or_complain(struct pdmctl *c, const char *cmd,
						      const char *name)
{
	const struct cfg_asset *a = cfg_find_asset(c->cfg, name);
	if (a)
		return a;
	fprintf(stderr, "pdmctl %s: no asset '%s' in %s; configured:", cmd, name, c->config_dir);
	for (size_t i = 0; i < c->cfg->n_assets; i++)
		fprintf(stderr, " %s", c->cfg->assets[i].name);
	fputc('\n', stderr);
	return NULL;
}

/* ---- daemon liveness (status.json) ---------------------------------------------- */

enum daemon_state { DAEMON_NO_STATUS, DAEMON_STALE, DAEMON_GONE, DAEMON_RUNNING };

struct daemon_info {
	enum daemon_state state;
	cJSON *status;  /* parsed status.json, or NULL */
	int64_t age_ms; /* since its "updated" */
	char path[4200];
};

static void daemon_probe(const struct pdm_config *cfg, int64_t now, struct daemon_info *d)
{
	memset(d, 0, sizeof(*d));
	snprintf(d->path, sizeof(d->path), "%s/status.json", cfg->daemon.state_dir);
	char *text = read_file(d->path, 1 << 20);
	if (!text) {
		d->state = DAEMON_NO_STATUS;
		return;
	}
	d->status = cJSON_Parse(text);
	free(text);
	const cJSON *u = cJSON_GetObjectItemCaseSensitive(d->status, "updated");
	int64_t updated;
	if (!cJSON_IsString(u) || pdm_parse_iso8601(u->valuestring, &updated) < 0) {
		d->state = DAEMON_STALE;
		d->age_ms = INT64_MAX;
		return;
	}
	d->age_ms = now - updated;
	d->state = d->age_ms > STATUS_STALE_MS ? DAEMON_STALE : DAEMON_RUNNING;
	/* A fresh file from a process that has just died: on this host the
	 * pid tells. */
	const cJSON *pid = cJSON_GetObjectItemCaseSensitive(d->status, "pid");
	const cJSON *host = cJSON_GetObjectItemCaseSensitive(d->status, "host");
	char me[256] = "";
	gethostname(me, sizeof(me) - 1);
	if (d->state == DAEMON_RUNNING && cJSON_IsNumber(pid) && cJSON_IsString(host) &&
	    strcmp(host->valuestring, cfg->daemon.host) == 0 && strcmp(me, cfg->daemon.host) == 0 &&
	    kill((pid_t)pid->valuedouble, 0) < 0 && errno == ESRCH)
		d->state = DAEMON_GONE;
}

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The asset's entry in status.json's "assets", or NULL. */
static const cJSON *status_asset(const cJSON *status, const char *asset)
{
	const cJSON *it;
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(status, "assets"))
	{
		const char *n = jstr(it, "asset");
		if (n && strcmp(n, asset) == 0)
			return it;
	}
	return NULL;
}

static bool jnum(const cJSON *o, const char *k, double *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	if (!cJSON_IsNumber(v))
		return false;
	*out = v->valuedouble;
	return true;
}

/* ---- status ------------------------------------------------------------------------ */

struct asset_row {
	const char *asset;
	const char *state;
	double score;            /* NaN = none */
	uint32_t model_version;  /* 0 = none */
	int64_t trained_at_ms;   /* 0 = unknown */
	double windows;          /* -1 = unknown */
	bool training;
	const char *last_alert;
	int64_t last_alert_ms;
	/* > 0: the asset runs on its devices' clock, this far behind the host's;
	 * its alert times are on that clock */
	int64_t clock_lag_ms;
	/* relearning an episode taken as normal (pdmctl normal), since then */
	const char *relearning_since;
	/* learning (after the first model, or relearning): alerts on by then */
	const char *learning_until;
	const char *learning_not_before;
	const char *next_retrain; /* when the next scheduled retrain is due */
	const cJSON *episode;     /* the open alert episode (status.json), or NULL */
	const cJSON *missing;     /* sensors without a good value (status.json), or NULL */
	const cJSON *stuck;       /* sensors whose value froze (status.json), or NULL */
	/* what the first model's learning took as normal (the store's
	 * learned/ASSET), told for a week after it ended: learned_end_ms > 0 */
	int64_t learned_end_ms, learned_since_ms;
	struct learn_over learned;
};

/* "flow (last at T), temp (none yet)" from status.json's missing_sensors, or
 * "vibration_rms (1.82 since T)" from its stuck_sensors. */
static void sensor_list(const cJSON *arr, bool stuck, char *list, size_t len)
{
	const cJSON *it;
	size_t n = 0;

	list[0] = '\0';
	cJSON_ArrayForEach(it, arr)
	{
		const char *name = jstr(it, "sensor"), *t = jstr(it, stuck ? "since" : "last_good");
		double v = NAN;
		if (n >= len)
			break;
		if (stuck) {
			(void)jnum(it, "value", &v);
			n += (size_t)snprintf(list + n, len - n, "%s%s (%g since %s)", n ? ", " : "",
					      name ? name : "?", v, t ? t : "?");
		} else {
			n += (size_t)snprintf(list + n, len - n, "%s%s (%s%s)", n ? ", " : "",
					      name ? name : "?", t ? "last at " : "none yet",
					      t ? t : "");
		}
	}
}

static int model_latest_cb(const struct store_model *m, void *user)
{
	struct asset_row *r = user;
	r->model_version = m->version;
	r->trained_at_ms = m->trained_at_ms;
	return 1;
}

/* How long pdmctl status tells what learning took as normal. */
#define LEARNED_TOLD_MS (7 * 86400000LL)

/* Fills what status.json does not say from the store: model, last score,
 * and what the first model's learning took as normal. */
static void asset_row_from_store(struct store *s, struct asset_row *r)
{
	char name[300];
	uint32_t id;
	int64_t ts;
	double v;
	size_t got = 0;

	if (!s)
		return;
	if (r->model_version == 0)
		(void)store_model_list(s, r->asset, 1, model_latest_cb, r);
	snprintf(name, sizeof(name), "%s/score", r->asset);
	if (isnan(r->score) && store_sensor_id(s, name, &id) == 0 &&
	    store_read_latest(s, id, 1, &ts, &v, NULL, &got) == 0 && got == 1)
		r->score = v;
	char *text = NULL;
	long long end, since;
	int used;
	snprintf(name, sizeof(name), "learned/%s", r->asset);
	if (store_kv_get(s, name, &text) == 0 &&
	    sscanf(text, "%lld %lld%n", &end, &since, &used) == 2 &&
	    learn_over_parse(text + used, &r->learned) == 0 && r->learned.n > 0 &&
	    pdm_wall_ms() - end < LEARNED_TOLD_MS) {
		r->learned_end_ms = end;
		r->learned_since_ms = since;
	}
	free(text);
}

static void daemon_line(const struct daemon_info *d, int64_t now)
{
	char age[32], up[32];
	const cJSON *st = d->status;

	switch (d->state) {
	case DAEMON_NO_STATUS:
		printf("pdmd: NOT RUNNING (no %s: pdmd has not run with this state directory)\n",
		       d->path);
		return;
	case DAEMON_GONE:
		printf("pdmd: NOT RUNNING (pid %d is gone; %s was written %s ago)\n",
		       (int)cJSON_GetObjectItemCaseSensitive(st, "pid")->valuedouble, d->path,
		       (pdmctl_fmt_age(d->age_ms, age, sizeof(age)), age));
		break;
	case DAEMON_STALE:
		if (d->age_ms == INT64_MAX)
			printf("pdmd: UNKNOWN (%s is unreadable)\n", d->path);
		else
			printf("pdmd: NOT RUNNING or hung (%s is %s old; pdmd rewrites it every 5 s)\n",
			       d->path, (pdmctl_fmt_age(d->age_ms, age, sizeof(age)), age));
		break;
	case DAEMON_RUNNING: {
		int64_t started = 0;
		const char *s = jstr(st, "started");
		double pid = 0;
		jnum(st, "pid", &pid);
		if (!s || pdm_parse_iso8601(s, &started) < 0)
			started = now;
		pdmctl_fmt_age(now - started, up, sizeof(up));
		const cJSON *mc = cJSON_GetObjectItemCaseSensitive(st, "mqtt_connected");
		printf("pdmd: running (pid %d on %s, version %s, up %s, MQTT %s)\n", (int)pid,
		       jstr(st, "host") ? jstr(st, "host") : "?",
		       jstr(st, "version") ? jstr(st, "version") : "?", up,
		       cJSON_IsTrue(mc) ? "connected" : "NOT connected");
		return;
	}
	}
	if (d->status)
		printf("      the figures below are its last report\n");
}

/* The MQTT connections' delivery counters that stay 0 on a sound link,
 * said once each when they are not: each cost a reconnect, and the alerts
 * concerned were published again (docs/mqtt.md). */
static void print_mqtt_trouble(const cJSON *sources)
{
	const cJSON *it;
	cJSON_ArrayForEach(it, sources)
	{
		const char *type = jstr(it, "type");
		double noack = 0, broken = 0, bad = 0;
		if (!type || strcmp(type, "mqtt") != 0)
			continue;
		jnum(it, "ack_timeouts", &noack);
		jnum(it, "broken_writes", &broken);
		jnum(it, "mismatched", &bad);
		if (noack + broken + bad <= 0)
			continue;
		printf("mqtt: %s: %.0f publish(es) never acknowledged on a live connection, %.0f broken "
		       "off with the connection, %.0f acknowledged as a damaged copy; each was published "
		       "again (see docs/mqtt.md; repeated ones point at the broker or the network)\n",
		       jstr(it, "source") ? jstr(it, "source") : "?", noack, broken, bad);
	}
}

static int cmd_status(struct pdmctl *c, int argc, char **argv)
{
	bool json = false;
	int ex;
	const struct pdmctl_opt opts[] = {
		{ "json", 'j', NULL, &json },
		{ NULL },
	};
	int rc = pdmctl_getopt(c, "status",
		"Usage: pdmctl status [-c DIR] [--json]\n"
		"Shows whether pdmd runs, each asset's state, score, model and last\n"
		"alert, and each source's health counters.\n",
		opts, NULL, argc, argv);
	if (rc != PDMCTL_GO_ON)
		return rc;
	if ((ex = pdmctl_load_cfg(c)) != 0)
		return ex;

	int64_t now = pdm_wall_ms();
	struct daemon_info d;
	daemon_probe(c->cfg, now, &d);
	/* The store is optional here: status works before the first run. */
	struct store *s = NULL;
	if (access(c->cfg->storage.file, R_OK) == 0)
		s = store_open_reader(c->cfg->storage.file, NULL, 0);

	size_t na = c->cfg->n_assets;
	struct asset_row *rows = xrealloc(NULL, (na ? na : 1) * sizeof(*rows));
	for (size_t i = 0; i < na; i++) {
		struct asset_row *r = &rows[i];
		memset(r, 0, sizeof(*r));
		r->asset = c->cfg->assets[i].name;
		r->score = NAN;
		r->windows = -1;
		const cJSON *ja = status_asset(d.status, r->asset);
		if (ja) {
			double v;
			r->state = jstr(ja, "state");
			if (jnum(ja, "score", &v))
				r->score = v;
			if (jnum(ja, "model_version", &v))
				r->model_version = (uint32_t)v;
			const char *t = jstr(ja, "trained_at");
			if (t)
				(void)pdm_parse_iso8601(t, &r->trained_at_ms);
			if (jnum(ja, "windows", &v))
				r->windows = v;
			r->training = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ja, "training"));
			r->last_alert = jstr(ja, "last_alert");
			t = jstr(ja, "last_alert_ts");
			if (t)
				(void)pdm_parse_iso8601(t, &r->last_alert_ms);
			t = jstr(ja, "clock");
			if (t && strcmp(t, "device") == 0 && jnum(ja, "clock_lag_ms", &v))
				r->clock_lag_ms = (int64_t)v;
			r->relearning_since = jstr(ja, "relearning_since");
			r->learning_until = jstr(ja, "learning_until");
			r->learning_not_before = jstr(ja, "learning_not_before");
			r->next_retrain = jstr(ja, "next_retrain");
			const cJSON *ep = cJSON_GetObjectItemCaseSensitive(ja, "episode");
			r->episode = cJSON_IsObject(ep) ? ep : NULL;
			const cJSON *ms = cJSON_GetObjectItemCaseSensitive(ja, "missing_sensors");
			r->missing = cJSON_GetArraySize(ms) > 0 ? ms : NULL;
			const cJSON *sk = cJSON_GetObjectItemCaseSensitive(ja, "stuck_sensors");
			r->stuck = cJSON_GetArraySize(sk) > 0 ? sk : NULL;
		}
		asset_row_from_store(s, r);
	}
	int64_t pending = -1;
	if (s && store_outbox_count(s, &pending) < 0)
		pending = -1;
	store_close(s);
	s = NULL;

	const cJSON *jsources = cJSON_GetObjectItemCaseSensitive(d.status, "sources");
	if (json) {
		static const char *const names[] = { "not_running", "stale", "not_running",
						     "running" };
		cJSON *o2 = cJSON_CreateObject();
		cJSON_AddStringToObject(o2, "config_dir", c->config_dir);
		cJSON_AddStringToObject(o2, "state_dir", c->cfg->daemon.state_dir);
		cJSON *jd = cJSON_AddObjectToObject(o2, "daemon");
		cJSON_AddBoolToObject(jd, "running", d.state == DAEMON_RUNNING);
		cJSON_AddStringToObject(jd, "status", names[d.state]);
		if (d.status && d.age_ms != INT64_MAX)
			cJSON_AddNumberToObject(jd, "status_age_ms", (double)d.age_ms);
		const char *keys[] = { "host", "version", "started", "updated" };
		for (size_t k = 0; k < 4; k++)
			if (jstr(d.status, keys[k]))
				cJSON_AddStringToObject(jd, keys[k], jstr(d.status, keys[k]));
		double pid;
		if (jnum(d.status, "pid", &pid))
			cJSON_AddNumberToObject(jd, "pid", pid);
		const cJSON *mc = cJSON_GetObjectItemCaseSensitive(d.status, "mqtt_connected");
		if (cJSON_IsBool(mc))
			cJSON_AddBoolToObject(jd, "mqtt_connected", cJSON_IsTrue(mc));
		double steps;
		if (jnum(d.status, "clock_steps", &steps))
			cJSON_AddNumberToObject(jd, "clock_steps", steps);
		cJSON *ja = cJSON_AddArrayToObject(o2, "assets");
		char ts[PDM_ISO8601_LEN];
		for (size_t i = 0; i < na; i++) {
			const struct asset_row *r = &rows[i];
			cJSON *j = cJSON_CreateObject();
			cJSON_AddStringToObject(j, "asset", r->asset);
			if (r->state)
				cJSON_AddStringToObject(j, "state", r->state);
			else
				cJSON_AddNullToObject(j, "state");
			if (isfinite(r->score))
				cJSON_AddNumberToObject(j, "score", r->score);
			else
				cJSON_AddNullToObject(j, "score");
			cJSON_AddNumberToObject(j, "model_version", r->model_version);
			if (r->trained_at_ms > 0) {
				cJSON_AddStringToObject(j, "trained_at",
							pdm_iso8601(r->trained_at_ms, ts, sizeof(ts)));
				cJSON_AddNumberToObject(j, "model_age_s",
							(double)((now - r->trained_at_ms) / 1000));
			}
			if (r->windows >= 0)
				cJSON_AddNumberToObject(j, "windows", r->windows);
			cJSON_AddBoolToObject(j, "training", r->training);
			if (r->last_alert) {
				cJSON_AddStringToObject(j, "last_alert", r->last_alert);
				cJSON_AddStringToObject(j, "last_alert_ts",
							pdm_iso8601(r->last_alert_ms, ts, sizeof(ts)));
			}
			if (r->clock_lag_ms != 0) {
				cJSON_AddStringToObject(j, "clock", "device");
				cJSON_AddNumberToObject(j, "clock_lag_ms", (double)r->clock_lag_ms);
			}
			if (r->relearning_since)
				cJSON_AddStringToObject(j, "relearning_since", r->relearning_since);
			if (r->learning_until)
				cJSON_AddStringToObject(j, "learning_until", r->learning_until);
			if (r->learning_not_before)
				cJSON_AddStringToObject(j, "learning_not_before",
							r->learning_not_before);
			if (r->next_retrain)
				cJSON_AddStringToObject(j, "next_retrain", r->next_retrain);
			if (r->episode)
				cJSON_AddItemToObject(j, "episode", cJSON_Duplicate(r->episode, 1));
			if (r->missing)
				cJSON_AddItemToObject(j, "missing_sensors",
						      cJSON_Duplicate(r->missing, 1));
			if (r->stuck)
				cJSON_AddItemToObject(j, "stuck_sensors",
						      cJSON_Duplicate(r->stuck, 1));
			if (r->learned_end_ms > 0) {
				cJSON *l = cJSON_AddObjectToObject(j, "learned_as_normal");
				cJSON_AddStringToObject(l, "since", pdm_iso8601(r->learned_since_ms,
										ts, sizeof(ts)));
				cJSON_AddStringToObject(l, "until", pdm_iso8601(r->learned_end_ms, ts,
										sizeof(ts)));
				cJSON_AddNumberToObject(l, "times", (double)r->learned.n);
				cJSON_AddNumberToObject(l, "total_ms", (double)r->learned.total_ms);
				cJSON *h = cJSON_AddArrayToObject(l, "highest");
				for (size_t k = 0; k < r->learned.shown; k++) {
					const struct learn_stretch *st = &r->learned.top[k];
					cJSON *x = cJSON_CreateObject();
					cJSON_AddStringToObject(x, "start", pdm_iso8601(st->start_ms, ts,
											  sizeof(ts)));
					cJSON_AddStringToObject(x, "end", pdm_iso8601(st->end_ms, ts,
											sizeof(ts)));
					cJSON_AddNumberToObject(x, "peak", st->peak);
					cJSON_AddItemToArray(h, x);
				}
			}
			cJSON_AddItemToArray(ja, j);
		}
		cJSON_AddItemToObject(o2, "sources", jsources ? cJSON_Duplicate(jsources, 1)
							      : cJSON_CreateArray());
		const cJSON *jst = cJSON_GetObjectItemCaseSensitive(d.status, "store");
		if (jst)
			cJSON_AddItemToObject(o2, "store", cJSON_Duplicate(jst, 1));
		const cJSON *jm = cJSON_GetObjectItemCaseSensitive(d.status, "memory");
		if (cJSON_IsObject(jm))
			cJSON_AddItemToObject(o2, "memory", cJSON_Duplicate(jm, 1));
		const cJSON *jdc = cJSON_GetObjectItemCaseSensitive(d.status, "device_clocks");
		if (cJSON_IsArray(jdc))
			cJSON_AddItemToObject(o2, "device_clocks", cJSON_Duplicate(jdc, 1));
		if (pending >= 0)
			cJSON_AddNumberToObject(o2, "outbox_pending", (double)pending);
		ex = print_json(o2);
		if (ex == 0 && d.state != DAEMON_RUNNING)
			ex = EX_UNAVAILABLE;
		cJSON_Delete(o2);
		goto out;
	}

	daemon_line(&d, now);
	printf("config: %s   state: %s\n\n", c->config_dir, c->cfg->daemon.state_dir);
	struct table t;
	table_init(&t, 1u << 2 | 1u << 5, 7, "ASSET", "STATE", "SCORE", "MODEL", "MODEL AGE",
		   "WINDOWS", "LAST ALERT");
	for (size_t i = 0; i < na; i++) {
		const struct asset_row *r = &rows[i];
		char score[32] = "-", model[32] = "none", age[32] = "-", win[32] = "-",
		     last[300] = "-", state[48];
		if (isfinite(r->score))
			snprintf(score, sizeof(score), "%.3f", r->score);
		if (r->model_version)
			snprintf(model, sizeof(model), "v%u%s", r->model_version,
				 r->training ? " (training)" : "");
		else if (r->training)
			snprintf(model, sizeof(model), "training");
		if (r->trained_at_ms > 0)
			pdmctl_fmt_age(now - r->trained_at_ms, age, sizeof(age));
		if (r->windows >= 0)
			snprintf(win, sizeof(win), "%.0f", r->windows);
		if (r->last_alert) {
			char a[32];
			/* on the asset's clock, or a gateway 5 h behind would
			 * make every alert look 5 h old */
			pdmctl_fmt_age(now - r->clock_lag_ms - r->last_alert_ms, a, sizeof(a));
			snprintf(last, sizeof(last), "%s (%s ago)", r->last_alert, a);
		}
		/* learning, but with a model: no alerts until it knows the state
		 * an episode taken as normal brought */
		snprintf(state, sizeof(state), "%s",
			 r->relearning_since ? "relearning" : r->state ? r->state : "?");
		table_add(&t, r->asset, state, score, model, age, win, last);
	}
	table_print(&t, stdout);
	table_free(&t);
	/* "learning" with a model puzzles: say what it waits for, and until when */
	for (size_t i = 0; i < na; i++) {
		const struct asset_row *r = &rows[i];
		if (!r->learning_until || !r->model_version)
			continue;
		if (r->learning_not_before && !r->relearning_since)
			printf("%s: learning after its first model without alerts, until %s at the "
			       "earliest (learn_min) and a model scores under its threshold for a "
			       "while; alerts on by %s at the latest\n",
			       r->asset, r->learning_not_before, r->learning_until);
		else
			printf("%s: %s without alerts until a model scores under its threshold for a "
			       "while; alerts on by %s at the latest\n", r->asset,
			       r->relearning_since ? "relearning an episode taken as normal"
						   : "learning after its first model",
			       r->learning_until);
	}
	/* A fault while the first model's machine was learned is normal to the
	 * models now: what learning took as normal, for a week. */
	for (size_t i = 0; i < na; i++) {
		const struct asset_row *r = &rows[i];
		char told[800], since[PDM_ISO8601_LEN];
		if (!r->learned_end_ms)
			continue;
		learn_over_describe(&r->learned, told, sizeof(told));
		pdm_iso8601(r->learned_since_ms, since, sizeof(since));
		printf("%s: learned as normal while learning: its score over the threshold %s "
		       "('pdmctl plot %s --since %s' shows them)\n", r->asset, told, r->asset, since);
	}
	/* A dead transmitter leaves its asset unscored, a frozen one is scored
	 * wrongly: name them. */
	for (size_t i = 0; i < na; i++) {
		const struct asset_row *r = &rows[i];
		char list[512];
		if (r->missing) {
			sensor_list(r->missing, false, list, sizeof(list));
			printf("%s: no good value from %s: windows with %s gaps are not scored\n",
			       r->asset, list,
			       cJSON_GetArraySize(r->missing) == 1 ? "its" : "their");
		}
		if (r->stuck) {
			sensor_list(r->stuck, true, list, sizeof(list));
			printf("%s: stuck: %s: the value has not moved for longer than the training "
			       "data allows a running machine (a frozen transmitter?)\n", r->asset,
			       list);
		}
	}
	/* An open alert: which sensors, and how far off, at its peak so far. */
	for (size_t i = 0; i < na; i++) {
		const struct asset_row *r = &rows[i];
		double v;
		char top[512], peak[32] = "?";
		if (!r->episode)
			continue;
		pdmctl_fmt_contributors(r->episode, top, sizeof(top));
		if (jnum(r->episode, "peak_score", &v))
			snprintf(peak, sizeof(peak), "%.3f", v);
		printf("%s: alert %s (%s) since %s, peak score %s: %s\n", r->asset,
		       jstr(r->episode, "id") ? jstr(r->episode, "id") : "?",
		       jstr(r->episode, "severity") ? jstr(r->episode, "severity") : "?",
		       jstr(r->episode, "started") ? jstr(r->episode, "started") : "?", peak, top);
	}

	if (cJSON_GetArraySize(jsources) > 0) {
		putchar('\n');
		table_init(&t, 1u << 3 | 1u << 4 | 1u << 5, 7, "SOURCE", "TYPE", "CONNECTED",
			   "MESSAGES", "ERRORS", "RECONNECTS", "LAST OK");
		const cJSON *it;
		cJSON_ArrayForEach(it, jsources)
		{
			char msgs[32] = "-", errs[32] = "-", rec[32] = "-", last[48] = "-";
			double v;
			const char *type = jstr(it, "type");
			bool mb = type && strcmp(type, "modbus") == 0;
			if (jnum(it, mb ? "requests" : "received", &v))
				snprintf(msgs, sizeof(msgs), "%.0f", v);
			if (jnum(it, mb ? "errors" : "malformed", &v))
				snprintf(errs, sizeof(errs), "%.0f", v);
			if (jnum(it, "reconnects", &v))
				snprintf(rec, sizeof(rec), "%.0f", v);
			int64_t ls;
			const char *l = jstr(it, "last_success");
			if (l && pdm_parse_iso8601(l, &ls) == 0) {
				char a[32];
				pdmctl_fmt_age(now - ls, a, sizeof(a));
				snprintf(last, sizeof(last), "%s ago", a);
			}
			table_add(&t, jstr(it, "source"), type,
				  cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "connected"))
					  ? "yes"
					  : "NO",
				  msgs, errs, rec, last);
		}
		table_print(&t, stdout);
		table_free(&t);
	}
	const cJSON *jst = cJSON_GetObjectItemCaseSensitive(d.status, "store");
	double ap = 0, dr = 0, ev = 0, we = 0;
	if (jst && jnum(jst, "appended", &ap)) {
		jnum(jst, "dropped_full", &dr);
		jnum(jst, "evicted", &ev);
		jnum(jst, "write_errors", &we);
		printf("\nstore: %.0f samples appended, %.0f dropped (queue full), %.0f evicted, "
		       "%.0f write errors\n",
		       ap, dr, ev, we);
	}
	if (pending >= 0)
		printf("%soutbox: %lld message(s) not yet delivered to the broker\n", jst ? "" : "\n",
		       (long long)pending);
	print_mqtt_trouble(jsources);
	const cJSON *jm = cJSON_GetObjectItemCaseSensitive(d.status, "memory");
	double rss, used, kept, sq;
	if (jnum(jm, "rss_kib", &rss) && jnum(jm, "heap_in_use_kib", &used) &&
	    jnum(jm, "heap_free_kib", &kept) && jnum(jm, "sqlite_kib", &sq))
		printf("memory: %.1f MiB resident; heap %.1f MiB in use (SQLite %.1f MiB of it), "
		       "%.1f MiB free for reuse\n",
		       rss / 1024, used / 1024, sq / 1024, kept / 1024);
	double steps = 0, last_step = 0;
	if (jnum(d.status, "clock_steps", &steps) && steps > 0) {
		jnum(d.status, "last_clock_step_ms", &last_step);
		printf("clock: set %.0f time(s) since the start, last %s by %.1f s (windows restarted "
		       "then; keep NTP slewing)\n",
		       steps, last_step < 0 ? "back" : "forward", fabs(last_step) / 1000.0);
	}
	/* Devices that stamp their own samples with a clock off the host's:
	 * their assets run on that clock (the daemon's log says why). */
	const cJSON *dc;
	cJSON_ArrayForEach(dc, cJSON_GetObjectItemCaseSensitive(d.status, "device_clocks"))
	{
		double off;
		if (!jstr(dc, "source") || !jnum(dc, "offset_ms", &off) || fabs(off) <= 5000)
			continue;
		char amount[32];
		pdmctl_fmt_age((int64_t)fabs(off), amount, sizeof(amount));
		printf("device clock: %s stamps its samples %s %s this host's clock (its assets run "
		       "on that clock)\n",
		       jstr(dc, "source"), amount, off < 0 ? "behind" : "ahead of");
	}
	ex = d.state == DAEMON_RUNNING ? 0 : EX_UNAVAILABLE;
out:
	free(rows);
	cJSON_Delete(d.status);
	return ex;
}

/* ---- alerts ------------------------------------------------------------------------ */

struct alerts_ctx {
	const char *prefix; /* "P/alerts/" */
	const char *asset;  /* NULL = all */
	struct table *t;
	cJSON *arr;
	size_t n;
	struct store *s;
	char ep_asset[128]; /* whose episode list eps holds */
	struct episode eps[EPISODES_MAX];
	size_t n_eps;
};

/* The number of alert episode id "ASSET-SEQ" of asset; false when id is
 * not one of asset's. */
static bool episode_seq(const char *id, const char *asset, uint64_t *seq)
{
	size_t n = strlen(asset);
	if (strncmp(id, asset, n) != 0 || id[n] != '-' || id[n + 1] < '0' || id[n + 1] > '9')
		return false;
	char *end;
	unsigned long long v = strtoull(id + n + 1, &end, 10);
	if (*end != '\0' || v == 0)
		return false;
	*seq = v;
	return true;
}

/* Whether the user took episode ASSET-SEQ as normal operation (pdmctl
 * normal): the daemon's episode list says so, [start, end, seq, normal]. */
static bool taken_as_normal(struct alerts_ctx *a, const char *asset, const char *id)
{
	uint64_t seq;
	if (!episode_seq(id, asset, &seq))
		return false;
	if (strcmp(a->ep_asset, asset) != 0) {
		snprintf(a->ep_asset, sizeof(a->ep_asset), "%s", asset);
		/* a damaged list still gives what it holds whole */
		episodes_load(a->s, asset, a->eps, EPISODES_MAX, &a->n_eps);
	}
	int i = episodes_find(a->eps, a->n_eps, seq, 0);
	return i >= 0 && a->eps[i].normal;
}

void pdmctl_fmt_contributors(const cJSON *alert, char *buf, size_t len)
{
	const cJSON *it;
	size_t o = 0;
	buf[0] = '\0';
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(alert, "contributors"))
	{
		double share = 0, v, x;
		const char *sensor = jstr(it, "sensor"), *unit = jstr(it, "unit");
		char vs[96] = "";
		jnum(it, "share", &share);
		if (jnum(it, "value", &v) && jnum(it, "expected", &x))
			snprintf(vs, sizeof(vs), " (%.4g vs %.4g%s%s)", v, x, unit ? " " : "",
				 unit ? unit : "");
		bool stuck = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "stuck"));
		int n = snprintf(buf + o, len - o, "%s%s %.0f%%%s%s", o ? ", " : "",
				 sensor ? sensor : "?", share * 100.0, vs,
				 stuck ? " [stuck transmitter]" : "");
		if (n < 0 || (size_t)n >= len - o)
			break;
		o += (size_t)n;
	}
	if (!buf[0])
		snprintf(buf, len, "-");
}

static int alerts_cb(const struct store_outbox_row *r, void *user)
{
	struct alerts_ctx *a = user;
	size_t pl = strlen(a->prefix);

	if (strncmp(r->topic, a->prefix, pl) != 0)
		return 0;
	if (a->asset && strcmp(r->topic + pl, a->asset) != 0)
		return 0;
	cJSON *al = cJSON_Parse(r->payload);
	char created[PDM_ISO8601_LEN], delivered[PDM_ISO8601_LEN];
	const char *id = jstr(al, "id"), *ev = jstr(al, "event");
	/* The payload's reason says how the episode ended; the episode list also
	 * knows episodes taken as normal after they had cleared by themselves. */
	const char *why = jstr(al, "reason");
	bool cleared = id && ev && strcmp(ev, "cleared") == 0;
	bool normal = cleared && ((why && strcmp(why, "taken_as_normal") == 0) ||
				  taken_as_normal(a, r->topic + pl, id));
	bool no_model = cleared && why && strcmp(why, "no_model") == 0;
	a->n++;
	if (a->arr) {
		cJSON *j = cJSON_CreateObject();
		cJSON_AddNumberToObject(j, "outbox_id", (double)r->id);
		cJSON_AddStringToObject(j, "topic", r->topic);
		cJSON_AddStringToObject(j, "created",
					pdm_iso8601(r->created_ms, created, sizeof(created)));
		cJSON_AddBoolToObject(j, "delivered", r->delivered_ms > 0);
		if (r->delivered_ms > 0)
			cJSON_AddStringToObject(j, "delivered_at",
						pdm_iso8601(r->delivered_ms, delivered,
							    sizeof(delivered)));
		/* The payload as SCADA got it (or a string if it is not JSON). */
		cJSON_AddItemToObject(j, "alert", al ? al : cJSON_CreateString(r->payload));
		/* the episode it clears was taken as normal operation (pdmctl normal) */
		if (normal)
			cJSON_AddBoolToObject(j, "taken_as_normal", true);
		cJSON_AddItemToArray(a->arr, j);
		return 0;
	}
	char when[32] = "-", score[32] = "-", top[512];
	int64_t ts;
	double v;
	const char *t = jstr(al, "ts");
	if (t && pdm_parse_iso8601(t, &ts) == 0)
		fmt_time(ts, when, sizeof(when));
	if (jnum(al, "score", &v))
		snprintf(score, sizeof(score), "%.3f", v);
	pdmctl_fmt_contributors(al, top, sizeof(top));
	table_add(a->t, id, normal ? "cleared (normal)" : no_model ? "cleared (no model)" : ev,
		  jstr(al, "severity"), when, score, top,
		  r->delivered_ms > 0 ? "delivered" : "PENDING");
	cJSON_Delete(al);
	return 0;
}

static int cmd_alerts(struct pdmctl *c, int argc, char **argv)
{
	bool json = false;
	const char *since_s = NULL, *asset = NULL;
	int ex;
	const struct pdmctl_opt opts[] = {
		{ "since", 's', &since_s, NULL },
		{ "asset", 'a', &asset, NULL },
		{ "json", 'j', NULL, &json },
		{ NULL },
	};
	int rc = pdmctl_getopt(c, "alerts",
		"Usage: pdmctl alerts [-c DIR] [--since WHEN] [--asset NAME] [--json]\n"
		"Lists the alert events pdmd queued for MQTT (delivered or still\n"
		"pending), oldest first. WHEN is a duration ago (30m, 2h, 7d) or an\n"
		"ISO-8601 time; default: everything kept (the newest 10,000 delivered).\n",
		opts, NULL, argc, argv);
	if (rc != PDMCTL_GO_ON)
		return rc;
	int64_t since = 0;
	if (since_s && pdmctl_parse_when(since_s, pdm_wall_ms(), &since) < 0)
		return pdmctl_usage_error("alerts", "bad --since (want 30m, 2h, 7d or a time)",
					  since_s);
	struct store *s = pdmctl_open_store(c, &ex);
	if (!s)
		return ex;
	char prefix[512];
	snprintf(prefix, sizeof(prefix), "%s/alerts/", c->cfg->mqtt.topic_prefix);
	struct table t;
	table_init(&t, 1u << 4, 7, "ID", "EVENT", "SEVERITY", "TIME (UTC)", "SCORE",
		   "TOP CONTRIBUTORS", "MQTT");
	struct alerts_ctx a = { .prefix = prefix, .asset = asset, .t = &t, .s = s };
	if (json)
		a.arr = cJSON_CreateArray();
	int e = store_outbox_list(s, since, alerts_cb, &a);
	store_close(s);
	if (e < 0) {
		fprintf(stderr, "pdmctl alerts: cannot read the outbox: %s\n", pdm_strerror(e));
		ex = EX_IOERR;
	} else if (json) {
		ex = print_json(a.arr);
	} else if (a.n == 0) {
		printf("no alerts%s%s\n", since_s ? " since " : "", since_s ? since_s : "");
		ex = 0;
	} else {
		table_print(&t, stdout);
		ex = 0;
	}
	cJSON_Delete(a.arr);
	table_free(&t);
	return ex;
}

/* Alert episodes for plots: pairs raised/escalated ... cleared by id. */
struct ep_ctx {
	const char *topic;
	struct pdmctl_episode *ep;
	char (*ids)[128];
	size_t max, n;
};

static int episodes_cb(const struct store_outbox_row *r, void *user)
{
	struct ep_ctx *x = user;
	if (strcmp(r->topic, x->topic) != 0)
		return 0;
	cJSON *al = cJSON_Parse(r->payload);
	const char *id = jstr(al, "id"), *ev = jstr(al, "event"), *sev = jstr(al, "severity");
	const char *st = jstr(al, "started"), *ts = jstr(al, "ts");
	int64_t t_start, t_ev;
	if (!id || !ev || !st || !ts || pdm_parse_iso8601(st, &t_start) < 0 ||
	    pdm_parse_iso8601(ts, &t_ev) < 0) {
		cJSON_Delete(al);
		return 0;
	}
	size_t k;
	for (k = 0; k < x->n; k++)
		if (strcmp(x->ids[k], id) == 0)
			break;
	if (k == x->n) {
		if (x->n == x->max) {
			cJSON_Delete(al);
			return 0;
		}
		snprintf(x->ids[k], sizeof(x->ids[k]), "%s", id);
		x->ep[k] = (struct pdmctl_episode){ .start_ms = t_start, .end_ms = INT64_MAX };
		x->n++;
	}
	if (sev && strcmp(sev, "critical") == 0)
		x->ep[k].critical = true;
	if (strcmp(ev, "cleared") == 0)
		x->ep[k].end_ms = t_ev;
	cJSON_Delete(al);
	return 0;
}

int pdmctl_episodes(struct pdmctl *c, struct store *s, const char *asset, int64_t t0, int64_t t1,
		    struct pdmctl_episode *ep, size_t max, size_t *n)
{
	char topic[512];
	snprintf(topic, sizeof(topic), "%s/alerts/%s", c->cfg->mqtt.topic_prefix, asset);
	struct ep_ctx x = { .topic = topic, .ep = ep, .max = max };
	x.ids = xrealloc(NULL, (max ? max : 1) * sizeof(*x.ids));
	/* Episodes that started before t0 may still be open inside the range:
	 * read a day more than asked. */
	int e = store_outbox_list(s, t0 - 86400000, episodes_cb, &x);
	free(x.ids);
	size_t k = 0;
	for (size_t i = 0; i < x.n; i++)
		if (ep[i].start_ms < t1 && ep[i].end_ms > t0)
			ep[k++] = ep[i];
	*n = k;
	return e;
}

/* ---- models -------------------------------------------------------------------------- */

struct models_ctx {
	struct table *t;
	cJSON *arr;
	int64_t now;
	size_t n;
	char **paths;
};

static int models_cb(const struct store_model *m, void *user)
{
	struct models_ctx *x = user;
	char trained[32], age[32], win[32], vl[32], th[32], ver[32];
	struct stat st;
	bool present = stat(m->path, &st) == 0;

	x->paths = xrealloc(x->paths, (x->n + 1) * sizeof(char *));
	x->paths[x->n++] = xstrdup(m->path);
	if (x->arr) {
		char iso[PDM_ISO8601_LEN];
		cJSON *j = cJSON_CreateObject();
		cJSON_AddNumberToObject(j, "version", m->version);
		cJSON_AddStringToObject(j, "kind", m->kind);
		cJSON_AddStringToObject(j, "path", m->path);
		cJSON_AddBoolToObject(j, "file_present", present);
		cJSON_AddStringToObject(j, "trained_at",
					pdm_iso8601(m->trained_at_ms, iso, sizeof(iso)));
		cJSON_AddNumberToObject(j, "windows", (double)m->windows);
		if (isfinite(m->val_loss))
			cJSON_AddNumberToObject(j, "val_loss", m->val_loss);
		if (isfinite(m->threshold))
			cJSON_AddNumberToObject(j, "threshold", m->threshold);
		cJSON_AddItemToArray(x->arr, j);
		return 0;
	}
	snprintf(ver, sizeof(ver), "v%u", m->version);
	fmt_time(m->trained_at_ms, trained, sizeof(trained));
	pdmctl_fmt_age(x->now - m->trained_at_ms, age, sizeof(age));
	snprintf(win, sizeof(win), "%llu", (unsigned long long)m->windows);
	snprintf(vl, sizeof(vl), "%.4g", m->val_loss);
	snprintf(th, sizeof(th), "%.4g", m->threshold);
	const char *base = strrchr(m->path, '/');
	char file[512];
	snprintf(file, sizeof(file), "%s%s", base ? base + 1 : m->path,
		 present ? "" : " (MISSING)");
	table_add(x->t, ver, m->kind, trained, age, win, vl, th, file);
	return 0;
}

static int cmd_models(struct pdmctl *c, int argc, char **argv)
{
	bool json = false;
	int ex;
	const struct pdmctl_opt opts[] = {
		{ "json", 'j', NULL, &json },
		{ NULL },
	};
	int rc = pdmctl_getopt(c, "models",
		"Usage: pdmctl models [-c DIR] [--json] ASSET\n"
		"Lists the asset's model registry (newest first) and the model files\n"
		"in STATE_DIR/models/ASSET.\n",
		opts, "ASSET", argc, argv);
	if (rc != PDMCTL_GO_ON)
		return rc;
	const char *asset = argv[optind];
	if ((ex = pdmctl_load_cfg(c)) != 0)
		return ex;
	if (!find_asset_or_complain(c, "models", asset))
		return EX_USAGE;
	struct store *s = pdmctl_open_store(c, &ex);
	if (!s)
		return ex;
	struct table t;
	table_init(&t, 1u << 4 | 1u << 5 | 1u << 6, 8, "VERSION", "KIND", "TRAINED (UTC)", "AGE",
		   "WINDOWS", "VAL LOSS", "THRESHOLD", "FILE");
	struct models_ctx x = { .t = &t, .now = pdm_wall_ms() };
	cJSON *root = NULL;
	if (json) {
		root = cJSON_CreateObject();
		cJSON_AddStringToObject(root, "asset", asset);
		x.arr = cJSON_AddArrayToObject(root, "models");
	}
	int e = store_model_list(s, asset, 0, models_cb, &x);
	store_close(s);
	if (e < 0) {
		fprintf(stderr, "pdmctl models: cannot read the registry: %s\n", pdm_strerror(e));
		ex = EX_IOERR;
		goto out;
	}

	char dir[4200];
	snprintf(dir, sizeof(dir), "%s/models/%s", c->cfg->daemon.state_dir, asset);
	struct dirent **ents = NULL;
	int nent = scandir(dir, &ents, NULL, alphasort);
	cJSON *files = json ? cJSON_AddArrayToObject(root, "files") : NULL;
	if (!json) {
		if (x.n == 0)
			printf("no models registered for %s (still learning?)\n", asset);
		else
			table_print(&t, stdout);
		printf("\n%s:%s\n", dir, nent < 0 ? " (none)" : "");
	}
	for (int i = 0; i < nent; i++) {
		char path[4500];
		struct stat st;
		const char *nm = ents[i]->d_name;
		snprintf(path, sizeof(path), "%s/%s", dir, nm);
		if (nm[0] == '.' || stat(path, &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		bool reg = false;
		for (size_t k = 0; k < x.n; k++) {
			const char *b = strrchr(x.paths[k], '/');
			if (strcmp(b ? b + 1 : x.paths[k], nm) == 0)
				reg = true;
		}
		if (files) {
			cJSON *j = cJSON_CreateObject();
			cJSON_AddStringToObject(j, "name", nm);
			cJSON_AddNumberToObject(j, "bytes", (double)st.st_size);
			cJSON_AddBoolToObject(j, "registered", reg);
			cJSON_AddItemToArray(files, j);
		} else {
			printf("  %-20s %10lld bytes%s\n", nm, (long long)st.st_size,
			       reg ? "" : "  (not in the registry)");
		}
	}
	for (int i = 0; i < nent; i++)
		free(ents[i]);
	free(ents);
	ex = json ? print_json(root) : 0;
out:
	for (size_t k = 0; k < x.n; k++)
		free(x.paths[k]);
	free(x.paths);
	cJSON_Delete(root);
	table_free(&t);
	return ex;
}

/* ---- sensors ----------------------------------------------------------------------------- */

#define SENSOR_RECENT 4096 /* samples read back per sensor */

/* The asset's sensors' short names, in order, as the store's per-sensor
 * texts (still/ASSET, hold/ASSET) name them; the caller frees the array. */
static const char **sensor_names(const struct pdm_config *cfg, const struct cfg_asset *a)
{
	const char **names = xrealloc(NULL, (a->n_sensors + 1) * sizeof(*names));
	for (size_t i = 0; i < a->n_sensors; i++)
		names[i] = cfg->sensors[a->sensors[i]].short_name;
	return names;
}

/* Each sensor's stuck limit as the daemon has it: what the last training
 * measured (the store's still/ASSET) or its stuck_after; -1 when not known
 * yet. */
static void still_limits(struct store *s, const struct pdm_config *cfg,
			 const struct cfg_asset *a, int64_t *lim)
{
	char key[300], *v = NULL;
	size_t C = a->n_sensors;
	const char **names = sensor_names(cfg, a);
	int64_t *longest = xrealloc(NULL, (C + 1) * sizeof(*longest));
	int64_t *span = xrealloc(NULL, (C + 1) * sizeof(*span));

	snprintf(key, sizeof(key), "still/%s", a->name);
	if (store_kv_get(s, key, &v) < 0)
		v = NULL;
	detector_still_parse(v, names, (int)C, longest, span);
	for (size_t i = 0; i < C; i++)
		lim[i] = detector_sensor_still_limit(a->stuck_after_ms[i], longest[i], span[i]);
	free(v);
	free(names);
	free(longest);
	free(span);
}

/* Each sensor's hold as the daemon has it: the one learned from how often
 * it reports (the store's hold/ASSET), else the configured one. */
static void sensor_holds(struct store *s, const struct pdm_config *cfg,
			 const struct cfg_asset *a, int64_t *hold, bool *learned)
{
	char key[300], *v = NULL;
	size_t C = a->n_sensors;
	const char **names = sensor_names(cfg, a);

	snprintf(key, sizeof(key), "hold/%s", a->name);
	if (store_kv_get(s, key, &v) < 0)
		v = NULL;
	detector_hold_parse(v, names, (int)C, hold);
	for (size_t i = 0; i < C; i++) {
		learned[i] = hold[i] > a->hold_ms[i] && a->hold_max_ms[i] > a->hold_ms[i];
		if (!learned[i])
			hold[i] = a->hold_ms[i];
		else if (hold[i] > a->hold_max_ms[i])
			hold[i] = a->hold_max_ms[i];
	}
	free(v);
	free(names);
}

/* The daemon's word on a sensor (status.json's missing_sensors and
 * stuck_sensors of the asset): "missing", "stuck" or NULL. */
static const char *sensor_flag(const cJSON *jasset, const char *name)
{
	static const char *const keys[] = { "missing_sensors", "stuck_sensors" };
	for (size_t k = 0; k < 2; k++) {
		const cJSON *it;
		cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(jasset, keys[k]))
		{
			const char *n = jstr(it, "sensor");
			if (n && strcmp(n, name) == 0)
				return k == 0 ? "missing" : "stuck";
		}
	}
	return NULL;
}

static int cmd_sensors(struct pdmctl *c, int argc, char **argv)
{
	bool json = false;
	int ex;
	const struct pdmctl_opt opts[] = {
		{ "json", 'j', NULL, &json },
		{ NULL },
	};
	int rc = pdmctl_getopt(c, "sensors",
		"Usage: pdmctl sensors [-c DIR] [--json] ASSET\n"
		"Each sensor of the asset: its newest value and how old it is, its newest\n"
		"good value, how long that value counts on the grid (learned for a sensor\n"
		"that reports less often), how long its value has stood exactly still\n"
		"against the limit that calls it stuck, and what the running daemon says of\n"
		"it (missing, stuck). For commissioning, and for a transmitter that looks\n"
		"wrong.\n",
		opts, "ASSET", argc, argv);
	if (rc != PDMCTL_GO_ON)
		return rc;
	const char *asset = argv[optind];
	if ((ex = pdmctl_load_cfg(c)) != 0)
		return ex;
	const struct cfg_asset *a = find_asset_or_complain(c, "sensors", asset);
	if (!a)
		return EX_USAGE;
	int64_t now = pdm_wall_ms();
	struct daemon_info d;
	daemon_probe(c->cfg, now, &d);
	const cJSON *jasset = status_asset(d.status, asset);
	struct store *s = pdmctl_open_store(c, &ex);
	if (!s) {
		cJSON_Delete(d.status);
		return ex;
	}
	int64_t *lim = xrealloc(NULL, (a->n_sensors + 1) * sizeof(*lim));
	int64_t *hold = xrealloc(NULL, (a->n_sensors + 1) * sizeof(*hold));
	bool *learned = xrealloc(NULL, (a->n_sensors + 1) * sizeof(*learned));
	int64_t *ts = xrealloc(NULL, SENSOR_RECENT * sizeof(*ts));
	double *val = xrealloc(NULL, SENSOR_RECENT * sizeof(*val));
	uint8_t *q = xrealloc(NULL, SENSOR_RECENT);
	still_limits(s, c->cfg, a, lim);
	sensor_holds(s, c->cfg, a, hold, learned);

	struct table t;
	table_init(&t, 1u << 1 | 1u << 2 | 1u << 3 | 1u << 5, 8, "SENSOR", "VALUE", "AGE",
		   "LAST GOOD", "HELD", "STILL", "STUCK AFTER", "STATE");
	cJSON *root = json ? cJSON_CreateObject() : NULL, *arr = NULL;
	if (root) {
		cJSON_AddStringToObject(root, "asset", asset);
		cJSON_AddBoolToObject(root, "daemon_running", d.state == DAEMON_RUNNING);
		arr = cJSON_AddArrayToObject(root, "sensors");
	}
	for (size_t i = 0; i < a->n_sensors; i++) {
		const struct cfg_sensor *se = &c->cfg->sensors[a->sensors[i]];
		uint32_t id;
		size_t got = 0;
		if (store_sensor_id(s, se->name, &id) < 0 ||
		    store_read_latest(s, id, SENSOR_RECENT, ts, val, q, &got) < 0)
			got = 0;
		/* newest sample, newest good one, and the run of exactly equal good
		 * values that ends it (oldest first in the arrays) */
		ssize_t good = -1, run = -1;
		for (ssize_t k = (ssize_t)got - 1; k >= 0; k--) {
			if (q[k] != PDM_Q_GOOD)
				continue;
			if (good < 0)
				good = run = k;
			else if (val[k] == val[good])
				run = k;
			else
				break;
		}
		const char *flag = jasset ? sensor_flag(jasset, se->short_name) : NULL;
		const char *state = flag ? flag : d.state == DAEMON_RUNNING ? "ok" : "?";
		int64_t still = good >= 0 ? ts[good] - ts[run] : -1;
		char v[64] = "-", age[32] = "-", lg[32] = "-", st[32] = "-", li[32] = "-",
		     hd[48];
		if (got > 0) {
			pdmctl_fmt_age(now - ts[got - 1], age, sizeof(age));
			if (q[got - 1] != PDM_Q_GOOD)
				snprintf(v, sizeof(v), "bad");
			else
				snprintf(v, sizeof(v), "%.6g%s%s", val[got - 1], se->unit[0] ? " " : "",
					 se->unit);
		}
		if (good >= 0)
			pdmctl_fmt_age(now - ts[good], lg, sizeof(lg));
		if (still >= 0)
			pdm_format_approx(still, st, sizeof(st));
		pdm_format_approx(hold[i], hd, sizeof(hd));
		if (learned[i])
			strcat(hd, " learned");
		if (lim[i] == 0)
			snprintf(li, sizeof(li), "never");
		else if (lim[i] > 0)
			pdm_format_duration(lim[i], li, sizeof(li));
		if (arr) {
			cJSON *j = cJSON_CreateObject();
			cJSON_AddStringToObject(j, "sensor", se->short_name);
			if (got > 0 && q[got - 1] == PDM_Q_GOOD)
				cJSON_AddNumberToObject(j, "value", val[got - 1]);
			else
				cJSON_AddNullToObject(j, "value");
			if (se->unit[0])
				cJSON_AddStringToObject(j, "unit", se->unit);
			char tsb[PDM_ISO8601_LEN];
			if (got > 0)
				cJSON_AddStringToObject(j, "newest", pdm_iso8601(ts[got - 1], tsb,
										 sizeof(tsb)));
			if (good >= 0)
				cJSON_AddStringToObject(j, "last_good", pdm_iso8601(ts[good], tsb,
										    sizeof(tsb)));
			cJSON_AddNumberToObject(j, "hold_ms", (double)hold[i]);
			cJSON_AddBoolToObject(j, "hold_learned", learned[i]);
			if (still >= 0)
				cJSON_AddNumberToObject(j, "still_ms", (double)still);
			if (lim[i] >= 0)
				cJSON_AddNumberToObject(j, "stuck_after_ms", (double)lim[i]);
			cJSON_AddStringToObject(j, "state", state);
			cJSON_AddItemToArray(arr, j);
		} else {
			table_add(&t, se->short_name, v, age, lg, hd, st, li, state);
		}
	}
	store_close(s);
	if (root) {
		ex = print_json(root);
		cJSON_Delete(root);
	} else {
		table_print(&t, stdout);
		if (d.state != DAEMON_RUNNING)
			printf("\npdmd is not running: STATE is its word only while it runs\n");
		ex = 0;
	}
	table_free(&t);
	cJSON_Delete(d.status);
	free(lim);
	free(hold);
	free(learned);
	free(ts);
	free(val);
	free(q);
	return ex;
}

/* ---- export ---------------------------------------------------------------------------- */

static int cmd_export(struct pdmctl *c, int argc, char **argv)
{
	const char *since_s = "1h", *until_s = "now";
	bool with_score = false;
	int ex;
	const struct pdmctl_opt opts[] = {
		{ "since", 's', &since_s, NULL },
		{ "until", 'u', &until_s, NULL },
		{ "score", 0, NULL, &with_score },
		{ NULL },
	};
	int rc = pdmctl_getopt(c, "export",
		"Usage: pdmctl export [-c DIR] ASSET [--since WHEN] [--until WHEN] [--score]\n"
		"Writes the asset's stored samples as CSV on stdout: ts_ms, then one\n"
		"column per sensor (the format 'pdmd replay --csv' reads). WHEN is a\n"
		"duration ago (30m, 2h, 7d), an ISO-8601 time or 'now'; default the\n"
		"last hour. --score adds the anomaly score as column 'score'.\n",
		opts, "ASSET", argc, argv);
	if (rc != PDMCTL_GO_ON)
		return rc;
	const char *asset = argv[optind];
	int64_t t0, t1;
	if ((ex = pdmctl_parse_range("export", since_s, until_s, &t0, &t1)) != 0)
		return ex;
	if ((ex = pdmctl_load_cfg(c)) != 0)
		return ex;
	const struct cfg_asset *a = find_asset_or_complain(c, "export", asset);
	if (!a)
		return EX_USAGE;
	struct store *s = pdmctl_open_store(c, &ex);
	if (!s)
		return ex;

	size_t n = 0;
	uint32_t *ids = xrealloc(NULL, (a->n_sensors + 1) * sizeof(*ids));
	const char **cols = xrealloc(NULL, (a->n_sensors + 1) * sizeof(*cols));
	for (size_t i = 0; i < a->n_sensors; i++) {
		const struct cfg_sensor *se = &c->cfg->sensors[a->sensors[i]];
		if (store_sensor_id(s, se->name, &ids[n]) < 0) {
			fprintf(stderr, "pdmctl export: %s has never been stored; column left out\n",
				se->name);
			continue;
		}
		cols[n++] = se->column && se->column[0] ? se->column : se->short_name;
	}
	char sname[300];
	snprintf(sname, sizeof(sname), "%s/score", asset);
	if (with_score && store_sensor_id(s, sname, &ids[n]) == 0)
		cols[n++] = "score";
	FILE *tmp = NULL;
	if (n == 0) {
		fprintf(stderr, "pdmctl export: nothing stored for %s\n", asset);
		ex = EX_NOINPUT;
		goto out;
	}
	/* The store names columns by sensor ("pump-a.flow"); replay wants the
	 * configured column names, so the header is rewritten on the way out. */
	tmp = tmpfile();
	if (!tmp) {
		fprintf(stderr, "pdmctl export: cannot make a temporary file: %s\n", strerror(errno));
		ex = EX_CANTCREAT;
		goto out;
	}
	int e = store_export_csv(s, ids, n, t0, t1, tmp);
	if (e < 0 || fflush(tmp) != 0) {
		fprintf(stderr, "pdmctl export: %s\n", pdm_strerror(e < 0 ? e : -errno));
		ex = EX_IOERR;
		goto out;
	}
	rewind(tmp);
	int ch;
	while ((ch = getc(tmp)) != EOF && ch != '\n')
		;
	fputs("ts_ms", stdout);
	for (size_t i = 0; i < n; i++)
		printf(",%s", cols[i]);
	putchar('\n');
	char buf[65536];
	size_t got;
	while ((got = fread(buf, 1, sizeof(buf), tmp)) > 0)
		if (fwrite(buf, 1, got, stdout) != got)
			break;
	ex = ferror(tmp) || fflush(stdout) != 0 || ferror(stdout) ? EX_IOERR : 0;
	if (ex)
		fprintf(stderr, "pdmctl export: write failed\n");
out:
	if (tmp)
		fclose(tmp);
	store_close(s);
	free(ids);
	free(cols);
	return ex;
}

/* ---- requests to the daemon (retrain, normal) ---------------------------------------- */

/* Writes STATE_DIR/control/NAME holding `line` (written to a temporary file
 * and renamed, so that the daemon never reads half of it), then waits up to
 * 5 s for the daemon, which polls control/ every second, to take it (it
 * deletes the file). `what` names the request in messages, `taken` says
 * what follows once it is taken. */
static int control_request(struct pdmctl *c, const char *cmd, const char *name, const char *line,
			   bool wait, const char *what, const char *taken)
{
	char dir[4200], path[4400], tmp[4500];
	snprintf(dir, sizeof(dir), "%s/control", c->cfg->daemon.state_dir);
	if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
		fprintf(stderr, "pdmctl %s: cannot create %s: %s\n", cmd, dir, strerror(errno));
		return errno == EACCES ? EX_NOPERM : EX_CANTCREAT;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	bool ok = fd >= 0 && write(fd, line, strlen(line)) == (ssize_t)strlen(line);
	if (fd >= 0)
		ok = close(fd) == 0 && ok;
	if (!ok || rename(tmp, path) < 0) {
		fprintf(stderr, "pdmctl %s: cannot create %s: %s\n", cmd, path, strerror(errno));
		unlink(tmp);
		return errno == EACCES ? EX_NOPERM : EX_CANTCREAT;
	}

	struct daemon_info d;
	daemon_probe(c->cfg, pdm_wall_ms(), &d);
	cJSON_Delete(d.status);
	if (d.state != DAEMON_RUNNING) {
		printf("%s written (%s), but pdmd is not running: it takes it when it starts\n",
		       what, path);
		return EX_UNAVAILABLE;
	}
	if (!wait) {
		printf("%s written (%s)\n", what, path);
		return 0;
	}
	for (int i = 0; i < 50; i++) {
		if (access(path, F_OK) < 0 && errno == ENOENT) {
			printf("pdmd took the %s; %s\n", what, taken);
			return 0;
		}
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	printf("%s written (%s) but not taken within 5 s; is pdmd busy?\n", what, path);
	return EX_TEMPFAIL;
}

static int cmd_retrain(struct pdmctl *c, int argc, char **argv)
{
	bool no_wait = false;
	const char *since_s = NULL;
	int ex;
	const struct pdmctl_opt opts[] = {
		{ "no-wait", 0, NULL, &no_wait },
		{ "since", 's', &since_s, NULL },
		{ NULL },
	};
	int rc = pdmctl_getopt(c, "retrain",
		"Usage: pdmctl retrain [-c DIR] [--no-wait] [--since WHEN] ASSET\n"
		"Asks pdmd to train a new model for ASSET now (it creates\n"
		"STATE_DIR/control/retrain.ASSET, which the daemon takes within a\n"
		"second) and waits up to 5 s to see it taken. The new model replaces\n"
		"the current one only if it is better (see 'pdmctl models').\n"
		"--since WHEN (30m, 2h, 7d or a time): after maintenance or a change\n"
		"of the process, train only on the data from then on, and take all of\n"
		"it as normal, also what an open alert flags; the new model replaces\n"
		"the current one whatever its loss.\n"
		"Exit 0 when taken, 69 when pdmd is not running (the request then\n"
		"waits for its next start), 75 when not taken within 5 s.\n",
		opts, "ASSET", argc, argv);
	if (rc != PDMCTL_GO_ON)
		return rc;
	const char *asset = argv[optind];
	int64_t since = 0;
	if (since_s && pdmctl_parse_when(since_s, pdm_wall_ms(), &since) < 0)
		return pdmctl_usage_error("retrain", "bad --since (want 30m, 2h, 7d or a time)",
					  since_s);
	if ((ex = pdmctl_load_cfg(c)) != 0)
		return ex;
	if (!find_asset_or_complain(c, "retrain", asset))
		return EX_USAGE;

	char name[200], line[64] = "", what[200], taken[300];
	snprintf(name, sizeof(name), "retrain.%s", asset);
	if (since_s)
		snprintf(line, sizeof(line), "since_ms %lld\n", (long long)since);
	snprintf(what, sizeof(what), "retrain request for %s", asset);
	snprintf(taken, sizeof(taken), "'pdmctl models %s' shows the result when training ends",
		 asset);
	return control_request(c, "retrain", name, line, !no_wait, what, taken);
}

/* The raised event of one episode, looked up by id in the outbox. */
struct find_ep_ctx {
	const char *id;
	char asset[128];
	uint64_t seq;
	int64_t started_ms;
	bool found, cleared;
};

static int find_ep_cb(const struct store_outbox_row *r, void *user)
{
	struct find_ep_ctx *x = user;
	cJSON *al = cJSON_Parse(r->payload);
	const char *id = jstr(al, "id"), *ev = jstr(al, "event"), *asset = jstr(al, "asset");
	const char *st = jstr(al, "started");
	int64_t started;
	uint64_t seq;
	if (id && ev && asset && st && strcmp(id, x->id) == 0 && episode_seq(id, asset, &seq) &&
	    pdm_parse_iso8601(st, &started) == 0) {
		x->found = true;
		snprintf(x->asset, sizeof(x->asset), "%s", asset);
		x->seq = seq;
		x->started_ms = started;
		if (strcmp(ev, "cleared") == 0)
			x->cleared = true;
	}
	cJSON_Delete(al);
	return 0;
}

static int cmd_normal(struct pdmctl *c, int argc, char **argv)
{
	bool no_wait = false;
	int ex;
	const struct pdmctl_opt opts[] = {
		{ "no-wait", 0, NULL, &no_wait },
		{ NULL },
	};
	int rc = pdmctl_getopt(c, "normal",
		"Usage: pdmctl normal [-c DIR] [--no-wait] ID\n"
		"Tells pdmd that alert episode ID (as in 'pdmctl alerts', e.g.\n"
		"pump-a-42) was normal operation, a state its model had not seen,\n"
		"not a fault. Training leaves alert episodes out; this one's data\n"
		"becomes training data, the older data is kept, and the asset\n"
		"retrains now. An open episode is cleared at once and the asset\n"
		"relearns: state learning, scored but no alerts, retraining as the\n"
		"new state settles, until a model scores it under its threshold.\n"
		"(After a change for good, where the data before it no longer\n"
		"counts, use 'pdmctl retrain --since' instead.)\n"
		"Exit 0 when taken, 65 when there is no such episode, 69 when pdmd is\n"
		"not running (the request then waits for its next start), 75 when not\n"
		"taken within 5 s.\n",
		opts, "ID", argc, argv);
	if (rc != PDMCTL_GO_ON)
		return rc;
	const char *id = argv[optind];
	if ((ex = pdmctl_load_cfg(c)) != 0)
		return ex;
	struct store *s = pdmctl_open_store(c, &ex);
	if (!s)
		return ex;
	struct find_ep_ctx x = { .id = id };
	int e = store_outbox_list(s, 0, find_ep_cb, &x);
	store_close(s);
	if (e < 0) {
		fprintf(stderr, "pdmctl normal: cannot read the outbox: %s\n", pdm_strerror(e));
		return EX_IOERR;
	}
	if (!x.found) {
		fprintf(stderr, "pdmctl normal: no alert episode '%s' among the alerts kept ('pdmctl "
				"alerts' lists them)\n", id);
		return EX_DATAERR;
	}
	if (!cfg_find_asset(c->cfg, x.asset)) {
		fprintf(stderr, "pdmctl normal: episode %s is of asset '%s', which %s no longer "
				"configures\n", id, x.asset, c->config_dir);
		return EX_DATAERR;
	}
	char name[200], line[200], what[200], taken[400];
	snprintf(name, sizeof(name), "normal.%s", id);
	snprintf(line, sizeof(line), "%s %llu %lld\n", x.asset, (unsigned long long)x.seq,
		 (long long)x.started_ms);
	snprintf(what, sizeof(what), "request to take %s (%s) as normal operation", id,
		 x.cleared ? "cleared" : "still open");
	snprintf(taken, sizeof(taken), "%s %s ('pdmctl status' shows its state)", x.asset,
		 x.cleared ? "retrains with it"
			   : "clears it and relearns without alerts until a model knows the new "
			     "state");
	return control_request(c, "normal", name, line, !no_wait, what, taken);
}

/* ---- plot without PLplot -------------------------------------------------------------------- */

#if !HAVE_PLPLOT
int pdmctl_cmd_plot(struct pdmctl *c, int argc, char **argv)
{
	(void)c;
	(void)argc;
	(void)argv;
	fprintf(stderr, "pdmctl plot: this pdmctl was built without plotting (PLplot); rebuild "
			"with libplplot-dev installed (meson option -Dplot=enabled)\n");
	return EX_UNAVAILABLE;
}
#endif

/* ---- main ---------------------------------------------------------------------------------- */

struct command {
	const char *name;
	const char *summary;
	int (*fn)(struct pdmctl *c, int argc, char **argv);
};

static const struct command commands[] = {
	{ "status", "daemon liveness, asset states and scores, source health", cmd_status },
	{ "alerts", "alert events sent (or still owed) to MQTT", cmd_alerts },
	{ "models", "an asset's model registry and model files", cmd_models },
	{ "sensors", "an asset's sensors: newest values, still or missing, stuck", cmd_sensors },
	{ "export", "an asset's stored samples as CSV (for pdmd replay)", cmd_export },
	{ "retrain", "ask the running daemon to retrain an asset now", cmd_retrain },
	{ "normal", "tell the daemon an alert episode was normal operation", cmd_normal },
	{ "watch", "live view of states, scores and alerts (MQTT)", pdmctl_cmd_watch },
	{ "plot", "draw an asset's sensors, score and alerts to PNG or SVG", pdmctl_cmd_plot },
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *out)
{
	fprintf(out, "Usage: pdmctl [-c DIR] [--version] [--help] COMMAND [ARGS]\n"
		     "Operator's tool for pdmd: reads the state directory named by the\n"
		     "configuration in DIR (default " PDM_SYSCONFDIR ").\n\nCommands:\n");
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\nRun 'pdmctl COMMAND --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct pdmctl c = { .config_dir = PDM_SYSCONFDIR };
	int o;

	/* Store and config messages are for a person at a terminal here. */
	pdm_log_level = LOG_WARNING;
	while ((o = getopt_long(argc, argv, "+c:Vh", opts, NULL)) != -1) {
		switch (o) {
		case 'c':
			c.config_dir = optarg;
			break;
		case 'V':
			printf("pdmctl %s\n", PDM_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EX_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EX_USAGE;
	}
	const char *name = argv[optind];
	for (size_t i = 0; i < N_COMMANDS; i++) {
		if (strcmp(commands[i].name, name) != 0)
			continue;
		int sub_argc = argc - optind;
		char **sub_argv = argv + optind;
		optind = 0; /* glibc: a full restart, so the command's options may follow its operands */
		int ex = commands[i].fn(&c, sub_argc, sub_argv);
		cfg_free(c.cfg);
		return ex;
	}
	fprintf(stderr, "pdmctl: unknown command '%s'\n", name);
	usage(stderr);
	return EX_USAGE;
}
