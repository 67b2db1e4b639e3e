/*
 * pdmctl_watch.c - `pdmctl watch`: a live view of what SCADA sees.
 *
 * Subscribes to P/alerts/+ and P/state/+ on the daemon's broker (the same
 * URI, TLS files and credentials as the daemon's [mqtt] section, or --mqtt)
 * and either redraws a terminal screen every second - each asset's state,
 * score and a trend of its stored scores, and the latest alerts with their
 * top contributors - or, with --json (or when stdout is not a terminal),
 * prints every alert payload exactly as received, one per line, for
 * scripts and the demo.
 *
 * paho delivers on its own thread; messages are queued under a mutex and
 * handled on the main thread, which also owns the terminal. Signals only
 * set a flag, so the terminal is always restored by the main thread.
 */
#include <MQTTAsync.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "mqtt_client.h"
#include "pdm_parse.h"
#include "pdm_time.h"
#include "pdmctl.h"

#define TREND_LEN 48
#define ALERTS_SHOWN 8
#define MAX_ASSETS 64

struct msg {
	char *topic, *payload;
	struct msg *next;
};

struct watch_asset {
	char name[128];
	char state[32];
	double score;
	unsigned model_version;
	int64_t ts_ms;
	uint32_t score_id;
	bool has_score_id;
	char sensors[256]; /* "missing flow; stuck vibration_rms" from the state, or "" */
};

struct watch {
	MQTTAsync h;
	char *uri; /* for messages: a password in it masked */
	char alerts_filter[512], state_filter[512];
	bool json;
	/* paho thread -> main thread */
	pthread_mutex_t mu;
	struct msg *head, *tail;
	atomic_int conn; /* 0 down, 1 connecting, 2 subscribed */
	atomic_bool failed_once;
	char last_error[256];
	/* main thread only */
	struct watch_asset assets[MAX_ASSETS];
	size_t n_assets;
	char *alerts[ALERTS_SHOWN]; /* formatted lines, newest last */
	size_t n_alerts_shown;
	unsigned long alerts_seen;
	bool cleared_seen;
};

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

/* ---- paho callbacks (paho's thread) ------------------------------------------ */

static int on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *m)
{
	struct watch *w = ctx;
	struct msg *x = calloc(1, sizeof(*x));
	if (x) {
		size_t tl = topic_len > 0 ? (size_t)topic_len : strlen(topic);
		x->topic = strndup(topic, tl);
		x->payload = malloc((size_t)m->payloadlen + 1);
		if (x->topic && x->payload) {
			memcpy(x->payload, m->payload, (size_t)m->payloadlen);
			x->payload[m->payloadlen] = '\0';
			pthread_mutex_lock(&w->mu);
			if (w->tail)
				w->tail->next = x;
			else
				w->head = x;
			w->tail = x;
			pthread_mutex_unlock(&w->mu);
		} else {
			free(x->topic);
			free(x->payload);
			free(x);
		}
	}
	MQTTAsync_freeMessage(&m);
	MQTTAsync_free(topic);
	return 1;
}

static void on_lost(void *ctx, char *cause)
{
	struct watch *w = ctx;
	(void)cause;
	atomic_store(&w->conn, 0);
}

static void on_sub_ok(void *ctx, MQTTAsync_successData *r)
{
	struct watch *w = ctx;
	(void)r;
	atomic_store(&w->conn, 2);
	/* Scripts wait for this line before they make anything happen; the
	 * screen shows it in its header instead. */
	if (w->json)
		fprintf(stderr, "pdmctl watch: subscribed to %s at %s\n", w->alerts_filter,
			w->uri);
}

static void on_fail(void *ctx, MQTTAsync_failureData *r)
{
	struct watch *w = ctx;
	pthread_mutex_lock(&w->mu);
	snprintf(w->last_error, sizeof(w->last_error), "%s (code %d)",
		 r && r->message ? r->message : "connection refused or unreachable",
		 r ? r->code : 0);
	pthread_mutex_unlock(&w->mu);
	atomic_store(&w->failed_once, true);
	atomic_store(&w->conn, 0);
}

static void on_conn_ok(void *ctx, MQTTAsync_successData *r)
{
	struct watch *w = ctx;
	char *topics[2] = { w->alerts_filter, w->state_filter };
	int qos[2] = { 1, 1 };
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	(void)r;
	ro.onSuccess = on_sub_ok;
	ro.onFailure = on_fail;
	ro.context = w;
	if (MQTTAsync_subscribeMany(w->h, w->json ? 1 : 2, topics, qos, &ro) != MQTTASYNC_SUCCESS)
		atomic_store(&w->conn, 0);
}

/* ---- connection (main thread) ------------------------------------------------ */

struct conn_opts {
	const char *username, *password, *ca, *cert, *key;
	bool tls;
};

static void start_connect(struct watch *w, const struct conn_opts *o)
{
	MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer;
	MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;

	co.keepAliveInterval = 20;
	co.cleansession = 1; /* a viewer wants what happens now, not a backlog */
	co.connectTimeout = 5;
	co.onSuccess = on_conn_ok;
	co.onFailure = on_fail;
	co.context = w;
	co.MQTTVersion = MQTTVERSION_3_1_1;
	if (o->username && o->username[0])
		co.username = o->username;
	if (o->password)
		co.password = o->password;
	if (o->tls) {
		ssl.trustStore = o->ca;
		ssl.keyStore = o->cert;
		ssl.privateKey = o->key;
		ssl.enableServerCertAuth = 1;
		ssl.verify = 1;
		co.ssl = &ssl;
	}
	atomic_store(&w->conn, 1);
	if (MQTTAsync_connect(w->h, &co) != MQTTASYNC_SUCCESS)
		atomic_store(&w->conn, 0);
}

/* ---- screen ------------------------------------------------------------------------- */

static struct watch_asset *asset_get(struct watch *w, const char *name)
{
	for (size_t i = 0; i < w->n_assets; i++)
		if (strcmp(w->assets[i].name, name) == 0)
			return &w->assets[i];
	if (w->n_assets == MAX_ASSETS)
		return NULL;
	struct watch_asset *a = &w->assets[w->n_assets++];
	memset(a, 0, sizeof(*a));
	snprintf(a->name, sizeof(a->name), "%s", name);
	snprintf(a->state, sizeof(a->state), "?");
	a->score = NAN;
	return a;
}

static const char *state_colour(const char *s)
{
	if (strcmp(s, "critical") == 0)
		return "\033[1;31m";
	if (strcmp(s, "warning") == 0)
		return "\033[1;33m";
	if (strcmp(s, "normal") == 0)
		return "\033[32m";
	if (strcmp(s, "learning") == 0)
		return "\033[36m";
	return "\033[2m";
}

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The state's "missing" and "stuck" sensors as "missing flow, temp; stuck
 * vibration_rms" ("" for none): the transmitters to check. */
static void sensor_words(const cJSON *state, char *buf, size_t len)
{
	static const char *const keys[] = { "missing", "stuck" };
	size_t n = 0;

	buf[0] = '\0';
	for (size_t k = 0; k < 2; k++) {
		const cJSON *it;
		bool first = true;
		cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(state, keys[k]))
		{
			if (!cJSON_IsString(it) || n >= len)
				continue;
			if (first)
				n += (size_t)snprintf(buf + n, len - n, "%s%s ", n ? "; " : "",
						      keys[k]);
			else
				n += (size_t)snprintf(buf + n, len - n, ", ");
			if (n < len)
				n += (size_t)snprintf(buf + n, len - n, "%s", it->valuestring);
			first = false;
		}
	}
}

static void handle_state(struct watch *w, const char *payload)
{
	cJSON *j = cJSON_Parse(payload);
	const char *name = jstr(j, "asset"), *st = jstr(j, "state");
	struct watch_asset *a = name ? asset_get(w, name) : NULL;
	if (a && st) {
		snprintf(a->state, sizeof(a->state), "%s", st);
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "score");
		a->score = cJSON_IsNumber(v) ? v->valuedouble : NAN;
		v = cJSON_GetObjectItemCaseSensitive(j, "model_version");
		a->model_version = cJSON_IsNumber(v) ? (unsigned)v->valuedouble : 0;
		const char *ts = jstr(j, "ts");
		if (!ts || pdm_parse_iso8601(ts, &a->ts_ms) < 0)
			a->ts_ms = pdm_wall_ms();
		sensor_words(j, a->sensors, sizeof(a->sensors));
	}
	cJSON_Delete(j);
}

static void handle_alert_screen(struct watch *w, const char *payload)
{
	cJSON *j = cJSON_Parse(payload);
	char line[1024], top[512] = "", when[16] = "--:--:--";
	const cJSON *sc = cJSON_GetObjectItemCaseSensitive(j, "score");
	const char *ts = jstr(j, "ts"), *ev = jstr(j, "event");
	int64_t t;

	pdmctl_fmt_contributors(j, top, sizeof(top));
	if (ts && pdm_parse_iso8601(ts, &t) == 0) {
		char iso[PDM_ISO8601_LEN];
		pdm_iso8601(t, iso, sizeof(iso));
		snprintf(when, sizeof(when), "%.8s", iso + 11);
	}
	const char *col = ev && strcmp(ev, "cleared") == 0 ? "\033[32m"
			  : (jstr(j, "severity") && strcmp(jstr(j, "severity"), "critical") == 0)
				  ? "\033[1;31m"
				  : "\033[1;33m";
	snprintf(line, sizeof(line), "%s  %s%-9s\033[0m %-16s %-8s score %6.3f  %s", when, col,
		 ev ? ev : "?", jstr(j, "id") ? jstr(j, "id") : "?",
		 jstr(j, "severity") ? jstr(j, "severity") : "?",
		 cJSON_IsNumber(sc) ? sc->valuedouble : NAN, top[0] ? top : "-");
	if (w->n_alerts_shown == ALERTS_SHOWN) {
		free(w->alerts[0]);
		memmove(w->alerts, w->alerts + 1, (ALERTS_SHOWN - 1) * sizeof(char *));
		w->n_alerts_shown--;
	}
	w->alerts[w->n_alerts_shown++] = strdup(line);
	cJSON_Delete(j);
}

/* ASCII sparkline of the newest scores; values above the threshold (1.0)
 * are the upper half of the scale. */
static void trend(struct store *s, struct watch_asset *a, char *out, size_t len)
{
	static const char levels[] = "_.,-~=*#";
	int64_t ts[TREND_LEN];
	double v[TREND_LEN];
	size_t got = 0;
	char name[300];

	out[0] = '\0';
	if (!s || len < TREND_LEN + 1)
		return;
	if (!a->has_score_id) {
		snprintf(name, sizeof(name), "%s/score", a->name);
		if (store_sensor_id(s, name, &a->score_id) < 0)
			return;
		a->has_score_id = true;
	}
	if (store_read_latest(s, a->score_id, TREND_LEN, ts, v, NULL, &got) < 0)
		return;
	for (size_t i = 0; i < got; i++) {
		double x = isfinite(v[i]) ? v[i] : 0;
		int k = (int)(x / 2.0 * 8.0);
		out[i] = levels[k < 0 ? 0 : k > 7 ? 7 : k];
	}
	out[got] = '\0';
}

static void draw(struct watch *w, struct store *s, int64_t deadline_mono)
{
	char now[PDM_ISO8601_LEN];
	int conn = atomic_load(&w->conn);

	pdm_iso8601(pdm_wall_ms(), now, sizeof(now));
	printf("\033[H\033[2J\033[1mpdmctl watch\033[0m  %s  %s%s\033[0m  %.8s UTC", w->uri,
	       conn == 2 ? "\033[32m" : "\033[1;31m",
	       conn == 2 ? "connected" : conn == 1 ? "connecting..." : "NOT CONNECTED",
	       now + 11);
	if (deadline_mono)
		printf("  (%llds left)",
		       (long long)((deadline_mono - pdm_mono_ms() + 999) / 1000));
	printf("   Ctrl-C quits\n");
	if (conn != 2 && atomic_load(&w->failed_once)) {
		pthread_mutex_lock(&w->mu);
		printf("\033[31m  last error: %s\033[0m\n", w->last_error);
		pthread_mutex_unlock(&w->mu);
	}
	printf("\n\033[1m%-16s %-9s %7s %6s  score trend, newest right (_ 0, ~ threshold 1.0, # 2.0+)"
	       "\033[0m\n",
	       "ASSET", "STATE", "SCORE", "MODEL");
	if (w->n_assets == 0)
		printf("  (waiting for %s)\n", w->state_filter);
	for (size_t i = 0; i < w->n_assets; i++) {
		struct watch_asset *a = &w->assets[i];
		char sc[16] = "-", mv[16] = "-", tr[TREND_LEN + 1];
		if (isfinite(a->score))
			snprintf(sc, sizeof(sc), "%.3f", a->score);
		if (a->model_version)
			snprintf(mv, sizeof(mv), "v%u", a->model_version);
		trend(s, a, tr, sizeof(tr));
		printf("%-16s %s%-9s\033[0m %7s %6s  %s\n", a->name, state_colour(a->state), a->state,
		       sc, mv, tr);
		if (a->sensors[0])
			printf("%-16s \033[33m%s\033[0m\n", "", a->sensors);
	}
	printf("\n\033[1mALERTS (%lu received)\033[0m\n", w->alerts_seen);
	if (w->n_alerts_shown == 0)
		printf("  (none yet: waiting on %s)\n", w->alerts_filter);
	for (size_t i = 0; i < w->n_alerts_shown; i++)
		printf("%s\n", w->alerts[i]);
	fflush(stdout);
}

/* ---- command --------------------------------------------------------------------- */

int pdmctl_cmd_watch(struct pdmctl *c, int argc, char **argv)
{
	const char *uri = NULL, *prefix = NULL, *for_s = NULL;
	bool json = !isatty(STDOUT_FILENO), exit_cleared = false;
	int64_t for_ms = 0;
	int ex = 0;
	const struct pdmctl_opt opts[] = {
		{ "mqtt", 'm', &uri, NULL },
		{ "prefix", 'p', &prefix, NULL },
		{ "for", 'f', &for_s, NULL },
		{ "json", 'j', NULL, &json },
		{ "exit-after-cleared", 'x', NULL, &exit_cleared },
		{ NULL },
	};
	int rc = pdmctl_getopt(c, "watch",
		"Usage: pdmctl watch [-c DIR] [--mqtt URI] [--prefix P] [--for SECONDS]\n"
		"                    [--json] [--exit-after-cleared]\n"
		"Live view of each asset's state and score trend and of alerts as they\n"
		"arrive over MQTT, with their top contributors. Connects like the\n"
		"daemon ([mqtt] uri, TLS files, username/password_file) unless --mqtt.\n"
		"\n"
		"  --json                print each alert payload as received, one JSON\n"
		"                        line each (default when stdout is not a terminal)\n"
		"  --for SECONDS         stop after this long\n"
		"  --exit-after-cleared  stop after the first 'cleared' alert\n"
		"With --json the exit status is 0 if at least one alert arrived, else 1.\n",
		opts, NULL, argc, argv);
	if (rc != PDMCTL_GO_ON)
		return rc;
	if (for_s && (pdm_parse_duration_ms(for_s, 1000, &for_ms) < 0 || for_ms <= 0))
		return pdmctl_usage_error("watch", "bad --for (seconds, or 90s, 5m)", for_s);

	/* With --mqtt the config is a convenience (prefix, the score trend);
	 * without it, the config is where the broker is. */
	if (uri) {
		FILE *null = fopen("/dev/null", "w");
		if (null) {
			c->cfg = cfg_load(c->config_dir, null);
			fclose(null);
		}
	} else if ((ex = pdmctl_load_cfg(c)) != 0) {
		return ex;
	}
	const struct pdm_config *cfg = c->cfg;
	struct conn_opts co = { 0 };
	char password[1024];
	if (!uri)
		uri = cfg->mqtt.uri;
	if (!prefix)
		prefix = cfg ? cfg->mqtt.topic_prefix : "pdm";
	if (cfg && strcmp(uri, cfg->mqtt.uri) == 0) {
		co.username = cfg->mqtt.username;
		co.ca = cfg->mqtt.ca_file && cfg->mqtt.ca_file[0] ? cfg->mqtt.ca_file : NULL;
		co.cert = cfg->mqtt.cert_file && cfg->mqtt.cert_file[0] ? cfg->mqtt.cert_file : NULL;
		co.key = cfg->mqtt.key_file && cfg->mqtt.key_file[0] ? cfg->mqtt.key_file : NULL;
		if (cfg->mqtt.password_file && cfg->mqtt.password_file[0]) {
			if (mqtt_read_password_file(cfg->mqtt.password_file, password,
						    sizeof(password)) < 0)
				return EX_NOPERM;
			co.password = password;
		}
	}
	co.tls = strncmp(uri, "ssl://", 6) == 0 || strncmp(uri, "mqtts://", 8) == 0;

	struct watch *w = calloc(1, sizeof(*w));
	if (!w)
		return EX_OSERR;
	pthread_mutex_init(&w->mu, NULL);
	w->uri = mqtt_uri_redact(uri);
	if (!w->uri) {
		free(w);
		return EX_OSERR;
	}
	w->json = json;
	snprintf(w->alerts_filter, sizeof(w->alerts_filter), "%s/alerts/+", prefix);
	snprintf(w->state_filter, sizeof(w->state_filter), "%s/state/+", prefix);
	for (size_t i = 0; cfg && i < cfg->n_assets; i++)
		asset_get(w, cfg->assets[i].name);

	char client_id[64];
	snprintf(client_id, sizeof(client_id), "pdmctl-watch-%ld", (long)getpid());
	if (MQTTAsync_create(&w->h, uri, client_id, MQTTCLIENT_PERSISTENCE_NONE, NULL) !=
	    MQTTASYNC_SUCCESS) {
		fprintf(stderr, "pdmctl watch: bad broker URI '%s' (want tcp://HOST:PORT or "
				"ssl://HOST:PORT)\n",
			w->uri);
		ex = EX_USAGE;
		goto out;
	}
	MQTTAsync_setCallbacks(w->h, w, on_lost, on_message, NULL);

	struct store *s = NULL;
	if (!json && cfg && access(cfg->storage.file, R_OK) == 0)
		s = store_open_reader(cfg->storage.file, NULL, 0);

	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	if (!json)
		printf("\033[?1049h\033[?25l"); /* alternate screen, no cursor */

	int64_t start = pdm_mono_ms(), deadline = for_ms ? start + for_ms : 0;
	int64_t next_try = start, next_draw = start;
	bool said_fail = false;
	while (!stop_flag && !(deadline && pdm_mono_ms() >= deadline)) {
		int64_t now = pdm_mono_ms();
		if (atomic_load(&w->conn) == 0 && now >= next_try) {
			if (json && atomic_load(&w->failed_once) && !said_fail) {
				pthread_mutex_lock(&w->mu);
				fprintf(stderr, "pdmctl watch: cannot connect to %s: %s; retrying\n",
					w->uri, w->last_error);
				pthread_mutex_unlock(&w->mu);
				said_fail = true;
			}
			start_connect(w, &co);
			next_try = now + 1000;
		}
		pthread_mutex_lock(&w->mu);
		struct msg *m = w->head;
		w->head = w->tail = NULL;
		pthread_mutex_unlock(&w->mu);
		while (m) {
			struct msg *next = m->next;
			bool is_alert = strncmp(m->topic, w->alerts_filter,
						strlen(w->alerts_filter) - 1) == 0;
			if (is_alert) {
				w->alerts_seen++;
				cJSON *j = cJSON_Parse(m->payload);
				const char *ev = jstr(j, "event");
				if (ev && strcmp(ev, "cleared") == 0)
					w->cleared_seen = true;
				cJSON_Delete(j);
				if (json) {
					fputs(m->payload, stdout);
					putchar('\n');
					fflush(stdout);
				} else {
					handle_alert_screen(w, m->payload);
				}
			} else if (!json) {
				handle_state(w, m->payload);
			}
			free(m->topic);
			free(m->payload);
			free(m);
			m = next;
		}
		if (exit_cleared && w->cleared_seen)
			break;
		if (!json && now >= next_draw) {
			draw(w, s, deadline);
			next_draw = now + 1000;
		}
		struct timespec ts = { 0, 50 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	if (!json) {
		printf("\033[?25h\033[?1049l");
		fflush(stdout);
		printf("pdmctl watch: %lu alert(s) received\n", w->alerts_seen);
	}
	if (json && atomic_load(&w->conn) != 2) {
		pthread_mutex_lock(&w->mu);
		fprintf(stderr, "pdmctl watch: never subscribed at %s%s%s\n", w->uri,
			w->last_error[0] ? ": " : "", w->last_error);
		pthread_mutex_unlock(&w->mu);
	}
	ex = json ? (w->alerts_seen > 0 ? 0 : 1) : 0;
	if (MQTTAsync_isConnected(w->h)) {
		MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
		d.timeout = 1000;
		MQTTAsync_disconnect(w->h, &d);
		for (int i = 0; i < 20 && MQTTAsync_isConnected(w->h); i++) {
			struct timespec ts = { 0, 50 * 1000 * 1000 };
			nanosleep(&ts, NULL);
		}
	}
	store_close(s);
out:
	MQTTAsync_destroy(&w->h);
	for (struct msg *m = w->head, *n; m; m = n) {
		n = m->next;
		free(m->topic);
		free(m->payload);
		free(m);
	}
	for (size_t i = 0; i < w->n_alerts_shown; i++)
		free(w->alerts[i]);
	pthread_mutex_destroy(&w->mu);
	explicit_bzero(password, sizeof(password));
	free(w->uri);
	free(w);
	return ex;
}
