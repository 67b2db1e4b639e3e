/*
 * mqtt_client.c - paho async client with our own reconnect policy.
 *
 * paho's automatic reconnect has no jitter and second granularity, so we
 * own the retry policy: a supervisor thread per client waits out the
 * backoff and calls MQTTAsync_connect; paho's callbacks only record what
 * happened and wake it. After every successful connect all subscriptions
 * are (re)issued, since a broker may have lost the session.
 *
 * Publishing never waits: each mqtt_publish() takes a slot in a table of
 * max_inflight entries (the slot is the paho callback context), and the
 * slot comes back when paho reports success or failure. With clean session
 * off paho keeps unacknowledged QoS 1 messages across reconnects and
 * resends them, so a slot stays taken until a real answer arrives; only a
 * message paho was still writing when the connection broke comes back as
 * failed, and the owner publishes it again. paho 1.3.12 keeps a damaged copy
 * of such a message in its session, so the handle is then replaced before
 * the next connect (see on_publish_failed).
 *
 * Locking: one mutex per client guards state, slots and counters. It is
 * never held while calling user callbacks, paho functions that could call
 * back synchronously, or the logger (the daemon's log sink may publish on
 * this very client). Publishers in the middle of MQTTAsync_sendMessage are
 * counted so that stop never destroys the paho handle under them.
 */
#include "mqtt_client.h"
#include "pdm_hash.h"
#include "pdm_secret.h"
#include "pdm_uri.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <MQTTAsync.h>

#include "log.h"
#include "pdm_error.h"
#include "pdm_time.h"

#define DEFAULT_KEEPALIVE_S 30
#define DEFAULT_MAX_INFLIGHT 32
#define DEFAULT_BACKOFF_MIN_MS 500
#define DEFAULT_BACKOFF_MAX_MS 30000
#define CONNECT_TIMEOUT_S 10
/* A connection the broker closes this soon after it opened, with nothing
 * acknowledged on it, counts as refused; after STORM_LIVES of them in a row
 * the client starts over with a new paho handle (see on_connection_lost). */
#define SHORT_LIFE_MS 3000
#define STORM_LIVES 5
/* Only a connection that lived this long starts the backoff over. One lost
 * sooner is retried as a failed connect would be: a broker that takes every
 * connection and closes it soon after (another client with our client id
 * takes the session over each time) must not see us back within 0.5 s for
 * ever, each time with the retained messages published again. */
#define STABLE_LIFE_MS 60000
/* Connections in a row lost before STABLE_LIFE_MS after which the likely
 * cause is logged. */
#define UNSTABLE_WARN_LIVES 3
/* Bad messages: the first BAD_LOG_FULL of a subscription are logged one by
 * one. A publisher can send them at any rate for days, so after that one
 * line per BAD_LOG_INTERVAL_MS at most counts those since the last line. */
#define BAD_LOG_FULL 5
#define BAD_LOG_INTERVAL_MS 60000
/* A QoS 1/2 publish that waited this long (or twice the keepalive, if
 * longer) for its acknowledgement on a live connection is taken for lost:
 * MQTT 3.1.1 resends only on a reconnect, so a PUBACK lost on the way, or a
 * message the library lost from its session, would otherwise hold its
 * slot, and its owner's next alerts, for as long as the connection lives. */
#define DEFAULT_ACK_TIMEOUT_MS 60000

enum rebuild_why {
	REBUILD_NO,
	REBUILD_STORM,        /* connections closed at once, several in a row */
	REBUILD_BROKEN_WRITE, /* a publish failed on the wire (see on_publish_failed) */
	REBUILD_ACK_TIMEOUT,  /* a publish never acknowledged (see ack_timed_out) */
};

enum conn_state {
	ST_IDLE,       /* not started */
	ST_WAIT,       /* backoff: next attempt at next_try_ms */
	ST_CONNECTING, /* MQTTAsync_connect issued */
	ST_CONNECTED,  /* TCP/MQTT up (subscriptions may still be pending) */
	ST_STOPPED,
};

struct sub {
	struct mqtt_sub_cfg cfg; /* deep copy; strings and fields owned */
	struct mqtt_field *fields;
	pdm_sample_cb cb;
	void *user;
	struct mqtt_stats st;
	/* lines about bad messages: only the paho receive thread uses these */
	struct pdm_ratelimit rl;
	unsigned full_lines;                         /* bad messages logged one by one */
	uint64_t unlogged_dropped, unlogged_partial; /* bad messages since the last line */
	int64_t last_line_ms;                        /* monotonic */
};

struct slot {
	struct mqtt_client *c;
	uint64_t tag;
	uint64_t sum; /* of the topic and payload handed to paho */
	int64_t since_ms; /* monotonic, when it was published */
	bool used;
};

struct mqtt_client {
	/* configuration (copies) */
	char *uri, *client_id, *username, *password, *ca_file, *cert_file, *key_file;
	char *uri_shown; /* uri for logs: a password inside it replaced by *** */
	char *will_topic, *will_payload;
	int will_qos;
	bool will_retained, clean_session, tls;
	int keepalive_s, max_inflight;
	int64_t backoff_min_ms, backoff_max_ms;
	int64_t ack_timeout_ms;
	struct mqtt_callbacks cb;
	void *user;

	struct sub *subs;
	size_t n_subs;
	char **sub_filters; /* for MQTTAsync_subscribeMany */
	int *sub_qos;
	struct pdm_sample *buf; /* decode buffer, paho receive thread only */
	size_t buf_len;

	MQTTAsync h;
	pthread_t thread;
	bool thread_started;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	enum conn_state state;
	bool stopping, ever_connected, up_reported, disconnect_done;
	unsigned attempt;
	int64_t next_try_ms; /* monotonic */
	uint64_t rng;
	struct slot *slots;
	int *free_slots; /* stack of free slot indices */
	int n_free;
	int publishing; /* threads inside MQTTAsync_sendMessage */
	int64_t connected_at_ms;  /* monotonic, of the last successful connect */
	uint64_t acked_at_connect;
	unsigned short_lives;     /* connections in a row closed at once, nothing acked */
	unsigned unstable_lives;  /* connections in a row lost before STABLE_LIFE_MS */
	enum rebuild_why rebuild; /* the supervisor replaces the paho handle first */
	struct mqtt_stats st;
	pthread_mutex_t rl_lock;      /* guards the two limiters below */
	struct pdm_ratelimit conn_rl; /* connection lines */
	struct pdm_ratelimit dup_rl;  /* "another client may be using the client id" */
	struct pdm_ratelimit ack_rl;  /* "did not acknowledge a publish" */
};

static char *dup_opt(const char *s)
{
	if (!s)
		return NULL;
	char *d = strdup(s);
	if (!d)
		abort(); /* small control data: out of memory here is fatal */
	return d;
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);
	if (!p)
		abort();
	return p;
}

static void secure_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

/* xorshift64*: jitter only needs to decorrelate clients, not be secret. */
static uint64_t next_rand(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * UINT64_C(2685821657736338717);
}

/* Called with the lock held: schedules the next attempt. Equal jitter
 * (half fixed, half random) keeps a fleet from reconnecting in lockstep
 * after a broker restart while still growing the delay. */
static int64_t schedule_retry(struct mqtt_client *c)
{
	int64_t d = c->backoff_min_ms;
	for (unsigned i = 0; i < c->attempt && d < c->backoff_max_ms; i++)
		d *= 2;
	if (d > c->backoff_max_ms)
		d = c->backoff_max_ms;
	int64_t half = d / 2;
	d = half + (int64_t)(next_rand(&c->rng) % (uint64_t)(d - half + 1));
	if (c->attempt < 63)
		c->attempt++;
	c->next_try_ms = pdm_mono_ms() + d;
	c->state = ST_WAIT;
	pthread_cond_broadcast(&c->cond);
	return d;
}

/* May a connection message be printed now? Called without c->lock: when
 * its window reopens the limiter itself logs how many lines it suppressed,
 * and the daemon's log sink may publish on this very client (status topic). */
static bool conn_log_ok(struct mqtt_client *c, struct pdm_ratelimit *rl, int prio)
{
	if (prio > pdm_log_level)
		return false;
	pthread_mutex_lock(&c->rl_lock);
	bool ok = pdm_ratelimit_ok(rl);
	pthread_mutex_unlock(&c->rl_lock);
	return ok;
}

static const char *connack_reason(int code)
{
	switch (code) {
	case 1:
		return "unacceptable protocol version";
	case 2:
		return "client identifier rejected";
	case 3:
		return "server unavailable";
	case 4:
		return "bad user name or password (check username and password_file)";
	case 5:
		/* mosquitto answers a wrong password with this code too */
		return "not authorized (check username and password_file, and the broker's ACL)";
	default:
		return NULL;
	}
}

/* ---- receiving ---- */

static void count_reject(struct mqtt_stats *s, int rc)
{
	switch (rc) {
	case -E2BIG:
		s->oversized++;
		break;
	case -EILSEQ:
		s->non_utf8++;
		break;
	case -EPROTOTYPE:
		s->wrong_type++;
		break;
	case -ERANGE:
		s->out_of_range++;
		break;
	default:
		s->malformed++;
		break;
	}
}

/* Paho receive thread only. */
static void log_bad_message(struct sub *s, const char *topic, bool dropped, const char *why)
{
	char shown[129];
	size_t k = 0;

	if (dropped)
		s->unlogged_dropped++;
	else
		s->unlogged_partial++;
	if (LOG_WARNING > pdm_log_level)
		return;
	bool ok = pdm_ratelimit_ok(&s->rl);
	/* The summary below counts what the limiter held back and names the
	 * subscription; its own "similar messages suppressed" would not. */
	s->rl.suppressed = 0;
	if (s->full_lines >= BAD_LOG_FULL && !ok)
		return;
	/* topics may carry control characters: keep log lines whole */
	for (; topic[k] && k < sizeof(shown) - 1; k++)
		shown[k] = ((unsigned char)topic[k] < 0x20 || topic[k] == 0x7f) ? '?' : topic[k];
	shown[k] = '\0';
	int64_t now = pdm_mono_ms();
	if (s->full_lines < BAD_LOG_FULL) {
		s->full_lines++;
		pdm_log(LOG_WARNING, "mqtt[%s]: message on '%s' %s: %s%s", s->cfg.name, shown,
			dropped ? "dropped" : "partly used", why,
			s->full_lines == BAD_LOG_FULL
			    ? " (more are summed up once a minute at most)"
			    : "");
	} else {
		long long secs = (now - s->last_line_ms + 500) / 1000;
		pdm_log(LOG_WARNING,
			"mqtt[%s]: %llu messages on '%s' dropped and %llu partly used in the last "
			"%lld s (the latest on '%s': %s)",
			s->cfg.name, (unsigned long long)s->unlogged_dropped, s->cfg.filter,
			(unsigned long long)s->unlogged_partial, secs, shown, why);
	}
	s->unlogged_dropped = s->unlogged_partial = 0;
	s->last_line_ms = now;
}

static void handle_message(struct mqtt_client *c, const char *topic, const void *payload, size_t len)
{
	int64_t now = pdm_wall_ms();
	char why[160];

	pthread_mutex_lock(&c->lock);
	c->st.received++;
	c->st.last_message_ms = now;
	pthread_mutex_unlock(&c->lock);

	for (size_t i = 0; i < c->n_subs; i++) {
		struct sub *s = &c->subs[i];
		if (!mqtt_topic_matches(s->cfg.filter, topic))
			continue;
		int rc = mqtt_parse_payload(&s->cfg, topic, payload, len, now, c->buf, c->buf_len, why,
					    sizeof(why));
		size_t bad = 0;
		for (int k = 0; k < rc; k++)
			if (c->buf[k].quality != PDM_Q_GOOD)
				bad++;
		bool partial = rc > 0 && why[0];

		pthread_mutex_lock(&c->lock);
		s->st.received++;
		s->st.last_message_ms = now;
		if (rc < 0) {
			count_reject(&s->st, rc);
			count_reject(&c->st, rc);
		} else {
			s->st.samples += (uint64_t)rc;
			c->st.samples += (uint64_t)rc;
			s->st.out_of_range += bad;
			c->st.out_of_range += bad;
			if (partial) {
				s->st.wrong_type++;
				c->st.wrong_type++;
			}
		}
		pthread_mutex_unlock(&c->lock);

		if (rc < 0 || partial)
			log_bad_message(s, topic, rc < 0, why);
		if (rc > 0 && s->cb)
			s->cb(c->buf, (size_t)rc, s->user);
	}
}

static int on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *m)
{
	struct mqtt_client *c = ctx;

	/* A topic with an embedded NUL (topic_len != 0) cannot match any of
	 * our filters; count and drop it rather than truncate. */
	if (topic_len != 0 && (size_t)topic_len != strlen(topic)) {
		pthread_mutex_lock(&c->lock);
		c->st.received++;
		c->st.malformed++;
		pthread_mutex_unlock(&c->lock);
	} else if (m->payloadlen >= 0) {
		handle_message(c, topic, m->payload, (size_t)m->payloadlen);
	}
	MQTTAsync_freeMessage(&m);
	MQTTAsync_free(topic);
	return 1; /* consumed: paho acknowledges QoS 1 after this returns */
}

/* ---- connection ---- */

static void report_up(struct mqtt_client *c)
{
	bool call = false;

	pthread_mutex_lock(&c->lock);
	if (c->state == ST_CONNECTED && !c->up_reported) {
		c->up_reported = true;
		call = true;
	}
	pthread_mutex_unlock(&c->lock);
	if (call && c->cb.on_connection)
		c->cb.on_connection(true, c->user);
}

static void on_subscribed(void *ctx, MQTTAsync_successData *resp)
{
	struct mqtt_client *c = ctx;

	for (size_t i = 0; i < c->n_subs && resp; i++) {
		int granted = c->n_subs == 1 ? resp->alt.qos
					     : (resp->alt.qosList ? resp->alt.qosList[i] : c->sub_qos[i]);
		if (granted == 0x80)
			LOG_E("mqtt[%s]: broker refused the subscription to '%s' (check its ACL)",
			      c->subs[i].cfg.name, c->subs[i].cfg.filter);
		else
			LOG_D("mqtt[%s]: subscribed to '%s' with QoS %d", c->subs[i].cfg.name,
			      c->subs[i].cfg.filter, granted);
	}
	report_up(c);
}

static void on_subscribe_failed(void *ctx, MQTTAsync_failureData *resp)
{
	struct mqtt_client *c = ctx;

	LOG_E("mqtt[%s]: subscribing failed (code %d%s%s); check the broker's ACL", c->client_id,
	      resp ? resp->code : 0, resp && resp->message ? ": " : "",
	      resp && resp->message ? resp->message : "");
	/* publishing still works: tell the owner the connection is usable */
	report_up(c);
}

static void subscribe_all(struct mqtt_client *c)
{
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	int rc;

	if (c->n_subs == 0) {
		report_up(c);
		return;
	}
	ro.onSuccess = on_subscribed;
	ro.onFailure = on_subscribe_failed;
	ro.context = c;
	rc = MQTTAsync_subscribeMany(c->h, (int)c->n_subs, c->sub_filters, c->sub_qos, &ro);
	if (rc != MQTTASYNC_SUCCESS) {
		LOG_W("mqtt[%s]: could not subscribe (paho error %d); reconnecting", c->client_id, rc);
		/* no connectionLost will come for this: force a new session */
		pthread_mutex_lock(&c->lock);
		if (!c->stopping && c->state == ST_CONNECTED)
			schedule_retry(c);
		pthread_mutex_unlock(&c->lock);
	}
}

static void on_connected(void *ctx, MQTTAsync_successData *resp)
{
	struct mqtt_client *c = ctx;
	bool session = resp && resp->alt.connect.sessionPresent;

	pthread_mutex_lock(&c->lock);
	if (c->stopping) {
		pthread_mutex_unlock(&c->lock);
		return;
	}
	if (c->ever_connected)
		c->st.reconnects++;
	c->ever_connected = true;
	/* the backoff starts over only once the connection proved stable
	 * (see on_connection_lost) */
	c->connected_at_ms = pdm_mono_ms();
	c->acked_at_connect = c->st.acked;
	c->state = ST_CONNECTED;
	c->up_reported = false;
	c->st.connected = true;
	bool flapping = c->unstable_lives > 0;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);

	/* Always said after an outage; while connections keep being lost soon
	 * after they are made it would come with every retry. */
	if (flapping ? conn_log_ok(c, &c->conn_rl, LOG_INFO) : LOG_INFO <= pdm_log_level)
		pdm_log(LOG_INFO, "mqtt[%s]: connected to %s%s", c->client_id, c->uri_shown,
			session ? " (session resumed)" : "");
	subscribe_all(c);
}

static void on_connect_failed(void *ctx, MQTTAsync_failureData *resp)
{
	struct mqtt_client *c = ctx;
	int code = resp ? resp->code : 0;
	const char *reason = connack_reason(code);
	const char *msg = resp && resp->message ? resp->message : NULL;

	pthread_mutex_lock(&c->lock);
	if (c->stopping) {
		pthread_mutex_unlock(&c->lock);
		return;
	}
	int64_t d = schedule_retry(c);
	pthread_mutex_unlock(&c->lock);
	int prio = reason ? LOG_ERR : LOG_WARNING;
	if (!conn_log_ok(c, &c->conn_rl, prio))
		return;
	if (reason)
		pdm_log(prio, "mqtt[%s]: %s refused the connection: %s; retrying in %lld ms", c->client_id, c->uri_shown,
			reason, (long long)d);
	else
		pdm_log(prio, "mqtt[%s]: cannot connect to %s: %s (code %d)%s; retrying in %lld ms", c->client_id,
			c->uri_shown, msg ? msg : "connection failed", code,
			/* paho reports host name mismatches and handshake alerts no better */
			c->tls ? " - if the broker is up, check ca_file, that the broker's certificate names this "
				 "host, and whether it requires a client certificate"
			       : "",
			(long long)d);
}

static void on_connection_lost(void *ctx, char *cause)
{
	struct mqtt_client *c = ctx;
	bool was_up, lost = false;
	unsigned unstable = 0;
	int64_t d = 0;

	pthread_mutex_lock(&c->lock);
	was_up = c->up_reported;
	c->up_reported = false;
	c->st.connected = false;
	if (!c->stopping) {
		/* paho 1.3.12 can corrupt a message it holds in its session when
		 * the connection breaks while it writes a burst: every reconnect
		 * then resends it, the broker closes the connection (a "malformed
		 * packet"), and nothing gets through again. Connections that die
		 * at once with nothing acknowledged, several in a row, start a
		 * new handle without that state (see rebuild_handle()). */
		int64_t lived = pdm_mono_ms() - c->connected_at_ms;
		bool brief = lived < SHORT_LIFE_MS && c->st.acked == c->acked_at_connect;
		c->short_lives = brief ? c->short_lives + 1 : 0;
		if (c->short_lives >= STORM_LIVES) {
			c->short_lives = 0;
			if (!c->rebuild)
				c->rebuild = REBUILD_STORM;
		}
		/* Acknowledged publishes do not make a connection stable: the
		 * retained state published on each connect is acknowledged at
		 * once even when the broker hands our session to another client
		 * with the same id a moment later. */
		if (lived >= STABLE_LIFE_MS) {
			c->attempt = 0;
			c->unstable_lives = 0;
		} else if (c->unstable_lives < UINT_MAX) {
			c->unstable_lives++;
		}
		unstable = c->unstable_lives;
		d = schedule_retry(c);
		lost = true;
	}
	pthread_mutex_unlock(&c->lock);
	if (lost && conn_log_ok(c, &c->conn_rl, LOG_WARNING))
		pdm_log(LOG_WARNING, "mqtt[%s]: connection to %s lost%s%s; reconnecting in %lld ms", c->client_id,
			c->uri_shown, cause ? ": " : "", cause ? cause : "", (long long)d);
	/* MQTT 3.1.1 gives no reason when the broker closes a connection: a
	 * duplicate client id is the usual one for this pattern. */
	if (unstable >= UNSTABLE_WARN_LIVES && conn_log_ok(c, &c->dup_rl, LOG_WARNING))
		pdm_log(LOG_WARNING,
			"mqtt[%s]: %u connections in a row to %s were lost within %d s of being made; "
			"another client may be using the client id \"%s\" (set [mqtt] client_id to a "
			"name unique on the broker)",
			c->client_id, unstable, c->uri_shown, STABLE_LIFE_MS / 1000, c->client_id);
	if (was_up && c->cb.on_connection)
		c->cb.on_connection(false, c->user);
}

static int ssl_error(const char *str, size_t len, void *u)
{
	struct mqtt_client *c = u;
	/* OpenSSL's text never holds our secrets: it describes certificates */
	while (len > 0 && (str[len - 1] == '\n' || str[len - 1] == '\r'))
		len--;
	if (conn_log_ok(c, &c->conn_rl, LOG_WARNING))
		pdm_log(LOG_WARNING, "mqtt[%s]: TLS: %.*s", c->client_id, (int)len, str);
	return 0;
}

static void issue_connect(struct mqtt_client *c)
{
	MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer;
	MQTTAsync_willOptions will = MQTTAsync_willOptions_initializer;
	MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;

	co.keepAliveInterval = c->keepalive_s;
	co.cleansession = c->clean_session;
	co.maxInflight = c->max_inflight;
	co.connectTimeout = CONNECT_TIMEOUT_S;
	co.automaticReconnect = 0;
	co.onSuccess = on_connected;
	co.onFailure = on_connect_failed;
	co.context = c;
	co.MQTTVersion = MQTTVERSION_3_1_1;
	if (c->username && *c->username)
		co.username = c->username;
	if (c->password)
		co.password = c->password;
	if (c->will_topic) {
		will.topicName = c->will_topic;
		will.message = NULL;
		will.payload.data = c->will_payload ? c->will_payload : "";
		will.payload.len = c->will_payload ? (int)strlen(c->will_payload) : 0;
		will.qos = c->will_qos;
		will.retained = c->will_retained;
		co.will = &will;
	}
	if (c->tls) {
		ssl.trustStore = c->ca_file;
		ssl.keyStore = c->cert_file;
		ssl.privateKey = c->key_file;
		ssl.enableServerCertAuth = 1;
		ssl.verify = 1; /* host name must match the certificate */
		ssl.ssl_error_cb = ssl_error;
		ssl.ssl_error_context = c;
		co.ssl = &ssl;
	}
	int rc = MQTTAsync_connect(c->h, &co);
	if (rc != MQTTASYNC_SUCCESS) {
		bool retry = false;
		int64_t d = 0;
		pthread_mutex_lock(&c->lock);
		if (!c->stopping) {
			d = schedule_retry(c);
			retry = true;
		}
		pthread_mutex_unlock(&c->lock);
		if (retry && conn_log_ok(c, &c->conn_rl, LOG_WARNING))
			pdm_log(LOG_WARNING, "mqtt[%s]: connect to %s not started (paho error %d); retrying in %lld ms",
				c->client_id, c->uri_shown, rc, (long long)d);
	}
}

static void release_slot(struct mqtt_client *c, struct slot *sl, int rc);

static int create_handle(struct mqtt_client *c)
{
	MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer;

	/* In-memory persistence: unacknowledged messages survive reconnects;
	 * across daemon restarts the daemon's outbox is the durable copy. */
	co.sendWhileDisconnected = 0;
	co.MQTTVersion = MQTTVERSION_3_1_1;
	int rc = MQTTAsync_createWithOptions(&c->h, c->uri, c->client_id, MQTTCLIENT_PERSISTENCE_NONE,
					     NULL, &co);
	if (rc != MQTTASYNC_SUCCESS) {
		LOG_E("mqtt[%s]: cannot create a client for %s (paho error %d)", c->client_id, c->uri_shown, rc);
		c->h = NULL;
		return rc == MQTTASYNC_BAD_PROTOCOL ? -EINVAL : -EIO;
	}
	rc = MQTTAsync_setCallbacks(c->h, c, on_connection_lost, on_message, NULL);
	if (rc != MQTTASYNC_SUCCESS) {
		LOG_E("mqtt[%s]: cannot set callbacks (paho error %d)", c->client_id, rc);
		MQTTAsync_destroy(&c->h);
		c->h = NULL;
		return -EIO;
	}
	return 0;
}

/* Called with the lock held once no new publisher can get in: waits for
 * those still inside MQTTAsync_sendMessage, so that the handle is not
 * destroyed under them. */
static void wait_publishers(struct mqtt_client *c)
{
	while (c->publishing > 0) {
		pthread_mutex_unlock(&c->lock);
		nanosleep(&(struct timespec){ 0, 1000000L }, NULL);
		pthread_mutex_lock(&c->lock);
	}
}

/* Destroys the paho handle. paho calls nothing of ours after that, so what
 * is still in a slot has no answer coming: it is reported cancelled, for
 * its owner to publish again. */
static void drop_handle(struct mqtt_client *c)
{
	if (c->h)
		MQTTAsync_destroy(&c->h);
	c->h = NULL;
	for (int i = 0; i < c->max_inflight; i++)
		release_slot(c, &c->slots[i], -ECANCELED);
}

/*
 * Supervisor thread, not connected (state ST_WAIT, so no new publisher gets
 * in): replaces the paho handle, dropping the session state paho held.
 * Messages it still held are reported failed (-ECANCELED) and their owners
 * publish them again; the broker keeps our subscriptions (same client id,
 * persistent session). A paho callback of the old handle that was already
 * running finishes during the reconnect backoff, before any slot is reused.
 */
static int rebuild_handle(struct mqtt_client *c, enum rebuild_why why)
{
	pthread_mutex_lock(&c->lock);
	wait_publishers(c);
	c->st.rebuilds++;
	uint64_t noacks = c->st.ack_timeouts;
	pthread_mutex_unlock(&c->lock);
	if (why == REBUILD_STORM)
		LOG_W("mqtt[%s]: %s closed %d connections in a row as soon as they opened, with nothing "
		      "acknowledged; starting over without the messages the library held (they are "
		      "published again). If this repeats, check the broker's log for the reason it gives.",
		      c->client_id, c->uri_shown, STORM_LIVES);
	else if (why == REBUILD_ACK_TIMEOUT) {
		if (conn_log_ok(c, &c->ack_rl, LOG_WARNING))
			pdm_log(LOG_WARNING, "mqtt[%s]: %s did not acknowledge a publish within %lld s on a "
				"live connection; reconnecting with a new MQTT library handle (the messages "
				"it held are published again; %llu time(s) so far, at most 5 such lines an "
				"hour)",
				c->client_id, c->uri_shown, (long long)(c->ack_timeout_ms / 1000),
				(unsigned long long)noacks);
	}
	else if (conn_log_ok(c, &c->conn_rl, LOG_WARNING))
		pdm_log(LOG_WARNING, "mqtt[%s]: a publish broke off with the connection to %s; "
			"reconnecting with a new MQTT library handle, without its damaged copy (the "
			"messages it held are published again)", c->client_id, c->uri_shown);
	drop_handle(c);
	return create_handle(c);
}

static void on_disconnected(void *ctx, MQTTAsync_successData *resp);
static void on_disconnect_failed(void *ctx, MQTTAsync_failureData *resp);

/*
 * Not locked: sends a DISCONNECT on the handle, so that the broker drops
 * the will, giving paho timeout_ms to finish what is in flight and a
 * second more for its threads. Returns 0 once paho confirmed it, -EIO if it
 * would not start, -ETIMEDOUT otherwise. Called by the supervisor (not
 * stopping), the wait also ends when a stop begins: the handle is dropped
 * after it in any case.
 */
static int disconnect_clean(struct mqtt_client *c, int64_t timeout_ms)
{
	MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
	d.timeout = (int)(timeout_ms > 0 ? timeout_ms : 0);
	d.onSuccess = on_disconnected;
	d.onFailure = on_disconnect_failed;
	d.context = c;
	pthread_mutex_lock(&c->lock);
	c->disconnect_done = false;
	bool stopping = c->stopping;
	pthread_mutex_unlock(&c->lock);
	if (MQTTAsync_disconnect(c->h, &d) != MQTTASYNC_SUCCESS)
		return -EIO;
	pthread_mutex_lock(&c->lock);
	int64_t until = pdm_mono_ms() + d.timeout + 1000;
	while (!c->disconnect_done && (stopping || !c->stopping) && pdm_mono_ms() < until) {
		pthread_mutex_unlock(&c->lock);
		nanosleep(&(struct timespec){ 0, 5 * 1000000L }, NULL);
		pthread_mutex_lock(&c->lock);
	}
	int rc = c->disconnect_done ? 0 : -ETIMEDOUT;
	pthread_mutex_unlock(&c->lock);
	return rc;
}

/* Lock held, connected: when the oldest publish in flight is taken for
 * lost, or 0 with nothing in flight. paho resends on a reconnect, so a
 * publish made before it counts from the reconnect. */
static int64_t ack_deadline(const struct mqtt_client *c)
{
	int64_t oldest = INT64_MAX;
	for (int i = 0; i < c->max_inflight; i++)
		if (c->slots[i].used && c->slots[i].since_ms < oldest)
			oldest = c->slots[i].since_ms;
	if (oldest == INT64_MAX)
		return 0;
	if (oldest < c->connected_at_ms)
		oldest = c->connected_at_ms;
	return oldest + c->ack_timeout_ms;
}

/*
 * Supervisor, lock held, connected: a publish went unacknowledged for
 * ack_timeout_ms. Waiting longer cannot help (the broker's answer, or
 * paho's copy, is gone), so the connection is closed cleanly (no will)
 * and the supervisor starts over with a new handle at once; the messages
 * paho held are reported cancelled for their owners to publish again.
 */
static void ack_timed_out(struct mqtt_client *c)
{
	c->st.ack_timeouts++;
	c->rebuild = REBUILD_ACK_TIMEOUT;
	c->state = ST_WAIT;
	c->next_try_ms = pdm_mono_ms();
	c->st.connected = false;
	bool was_up = c->up_reported;
	c->up_reported = false;
	pthread_mutex_unlock(&c->lock);

	if (was_up && c->cb.on_connection)
		c->cb.on_connection(false, c->user);
	disconnect_clean(c, 0);
	pthread_mutex_lock(&c->lock);
}

/* Lock held: waits on the condvar until the monotonic time `at`. */
static void wait_until_ms(struct mqtt_client *c, int64_t at)
{
	/* the condvar uses CLOCK_MONOTONIC (see mqtt_client_new) */
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	int64_t wait = at - pdm_mono_ms();
	if (wait < 0)
		wait = 0;
	ts.tv_sec += wait / 1000;
	ts.tv_nsec += (wait % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&c->cond, &c->lock, &ts);
}

static void *supervisor(void *arg)
{
	struct mqtt_client *c = arg;
	char name[16];
	int64_t due;

	snprintf(name, sizeof(name), "mqtt-%.10s", c->client_id);
	pthread_setname_np(pthread_self(), name);
	pthread_mutex_lock(&c->lock);
	while (!c->stopping) {
		if (c->state == ST_WAIT) {
			int64_t now = pdm_mono_ms();
			if (now >= c->next_try_ms) {
				if (c->rebuild) {
					enum rebuild_why why = c->rebuild;
					c->rebuild = REBUILD_NO;
					pthread_mutex_unlock(&c->lock);
					int rc = rebuild_handle(c, why);
					pthread_mutex_lock(&c->lock);
					if (rc < 0) {
						c->rebuild = why;
						if (!c->stopping)
							schedule_retry(c);
						continue;
					}
				}
				c->state = ST_CONNECTING;
				pthread_mutex_unlock(&c->lock);
				issue_connect(c);
				pthread_mutex_lock(&c->lock);
				continue;
			}
			wait_until_ms(c, c->next_try_ms);
		} else if (c->state == ST_CONNECTED && (due = ack_deadline(c)) != 0) {
			if (pdm_mono_ms() >= due)
				ack_timed_out(c);
			else
				wait_until_ms(c, due);
		} else {
			pthread_cond_wait(&c->cond, &c->lock);
		}
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* ---- publishing ---- */

static void release_slot(struct mqtt_client *c, struct slot *sl, int rc)
{
	uint64_t tag;

	pthread_mutex_lock(&c->lock);
	if (!sl->used) {
		pthread_mutex_unlock(&c->lock);
		return;
	}
	tag = sl->tag;
	sl->used = false;
	c->free_slots[c->n_free++] = (int)(sl - c->slots);
	if (rc == 0)
		c->st.acked++;
	else
		c->st.publish_failed++;
	pthread_mutex_unlock(&c->lock);
	if (c->cb.on_delivered)
		c->cb.on_delivered(tag, rc, c->user);
}

/* FNV-1a over the topic, its NUL and the payload. */
static uint64_t message_sum(const char *topic, const void *payload, size_t len)
{
	return pdm_fnv1a(pdm_fnv1a(PDM_FNV1A_INIT, topic, strlen(topic) + 1), payload, len);
}

static void on_published(void *ctx, MQTTAsync_successData *resp)
{
	struct slot *sl = ctx;
	struct mqtt_client *c = sl->c;
	int rc = 0;

	/* paho hands back its own copy of the message the broker acknowledged.
	 * 1.3.12 can corrupt a copy it holds across a broken connection and
	 * resend that: then the acknowledgement is for something else, and the
	 * owner must publish the real message again. */
	if (resp && resp->alt.pub.destinationName && resp->alt.pub.message.payloadlen >= 0 &&
	    (resp->alt.pub.message.payload || resp->alt.pub.message.payloadlen == 0) &&
	    message_sum(resp->alt.pub.destinationName, resp->alt.pub.message.payload,
			(size_t)resp->alt.pub.message.payloadlen) != sl->sum) {
		rc = -EBADMSG;
		pthread_mutex_lock(&c->lock);
		c->st.mismatched++;
		pthread_mutex_unlock(&c->lock);
		if (conn_log_ok(c, &c->conn_rl, LOG_WARNING))
			pdm_log(LOG_WARNING, "mqtt[%s]: the broker acknowledged a message that is not the one "
				"published (the MQTT library resent a damaged copy after a reconnect); it "
				"is published again", c->client_id);
	}
	release_slot(c, sl, rc);
}

static void on_publish_failed(void *ctx, MQTTAsync_failureData *resp)
{
	struct slot *sl = ctx;
	struct mqtt_client *c = sl->c;
	int code = resp ? resp->code : MQTTASYNC_FAILURE;

	/* Token 0 is paho 1.3.12's answer when writing a QoS 1/2 publish fails
	 * on the socket (the connection broke mid-burst). It has then freed
	 * the message's topic and payload while its session still lists the
	 * message, and the next connect on this handle would resend the freed
	 * memory: a payload SCADA cannot read, or a "malformed packet" the
	 * broker hangs up on, at every reconnect. So the supervisor replaces
	 * the handle before it connects again. Every other failure of a
	 * publish carries the message's own token. */
	if (resp && resp->token == 0) {
		pthread_mutex_lock(&c->lock);
		c->st.broken_writes++;
		if (!c->stopping)
			c->rebuild = REBUILD_BROKEN_WRITE;
		pthread_mutex_unlock(&c->lock);
	}
	release_slot(c, sl, code == MQTTASYNC_OPERATION_INCOMPLETE ? -ECANCELED : -EIO);
}

int mqtt_publish(struct mqtt_client *c, const char *topic, const void *payload, size_t len, int qos,
		 bool retained, uint64_t tag)
{
	MQTTAsync_message m = MQTTAsync_message_initializer;
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	struct slot *sl;
	int rc;

	if (!c || !topic || !*topic || strpbrk(topic, "+#") || qos < 0 || qos > 2 || (!payload && len) ||
	    len > INT32_MAX)
		return -EINVAL;
	uint64_t sum = message_sum(topic, payload, len);
	pthread_mutex_lock(&c->lock);
	if (c->state != ST_CONNECTED || c->stopping) {
		pthread_mutex_unlock(&c->lock);
		return -ENOTCONN;
	}
	if (c->n_free == 0) {
		pthread_mutex_unlock(&c->lock);
		return -EAGAIN;
	}
	/* the supervisor sleeps without a deadline while nothing is in flight */
	if (c->n_free == c->max_inflight)
		pthread_cond_broadcast(&c->cond);
	sl = &c->slots[c->free_slots[--c->n_free]];
	sl->used = true;
	sl->tag = tag;
	sl->sum = sum;
	sl->since_ms = pdm_mono_ms();
	c->st.published++;
	c->publishing++;
	pthread_mutex_unlock(&c->lock);

	m.payload = (void *)(uintptr_t)payload;
	m.payloadlen = (int)len;
	m.qos = qos;
	m.retained = retained;
	ro.onSuccess = on_published;
	ro.onFailure = on_publish_failed;
	ro.context = sl;
	rc = MQTTAsync_sendMessage(c->h, topic, &m, &ro);
	pthread_mutex_lock(&c->lock);
	c->publishing--;
	if (rc == MQTTASYNC_SUCCESS) {
		pthread_mutex_unlock(&c->lock);
		return 0;
	}
	/* not queued: no callback will come, so give the slot back quietly */
	if (sl->used) {
		sl->used = false;
		c->free_slots[c->n_free++] = (int)(sl - c->slots);
	}
	c->st.published--;
	pthread_mutex_unlock(&c->lock);
	switch (rc) {
	case MQTTASYNC_DISCONNECTED:
		return -ENOTCONN;
	case MQTTASYNC_MAX_MESSAGES_INFLIGHT:
	case MQTTASYNC_MAX_BUFFERED_MESSAGES:
		return -EAGAIN;
	case MQTTASYNC_BAD_UTF8_STRING:
	case MQTTASYNC_NULL_PARAMETER:
	case MQTTASYNC_BAD_QOS:
	case MQTTASYNC_WRONG_MQTT_VERSION:
		return -EINVAL;
	default:
		return -EIO;
	}
}

/* ---- lifecycle ---- */

/* Userinfo in a URI, which some tools accept: the daemon's config refuses
 * it; this guards every other caller. */
char *mqtt_uri_redact(const char *uri)
{
	size_t start, at;
	if (!pdm_uri_userinfo(uri, &start, &at))
		return dup_opt(uri);
	/* keep the user name, hide what follows its ':' */
	const char *colon = memchr(uri + start, ':', at - start);
	size_t head = colon ? (size_t)(colon + 1 - uri) : start;
	char *r = xcalloc(1, head + 3 + strlen(uri + at) + 1);
	memcpy(r, uri, head);
	memcpy(r + head, "***", 3);
	strcpy(r + head + 3, uri + at);
	return r;
}

static int check_cfg(const struct mqtt_client_cfg *cfg, bool *tls)
{
	if (!cfg || !cfg->uri || !*cfg->uri) {
		LOG_E("mqtt: no broker uri configured");
		return -EINVAL;
	}
	if (!cfg->client_id || !*cfg->client_id) {
		LOG_E("mqtt: client_id is empty; a stable id is needed for a persistent session");
		return -EINVAL;
	}
	int kind = pdm_uri_kind(cfg->uri);
	*tls = kind == PDM_URI_TLS;
	if (kind < 0 || (!*tls && (cfg->ca_file || cfg->cert_file || cfg->key_file))) {
		char *shown = mqtt_uri_redact(cfg->uri);
		if (kind < 0)
			LOG_E("mqtt[%s]: uri '%s' must start with tcp:// or ssl://", cfg->client_id,
			      shown);
		else
			LOG_E("mqtt[%s]: ca_file/cert_file/key_file need an ssl:// uri, not '%s'",
			      cfg->client_id, shown);
		free(shown);
		return -EINVAL;
	}
	if (!cfg->cert_file != !cfg->key_file) {
		LOG_E("mqtt[%s]: cert_file and key_file go together", cfg->client_id);
		return -EINVAL;
	}
	if (cfg->password && !(cfg->username && *cfg->username)) {
		LOG_E("mqtt[%s]: a password needs a username", cfg->client_id);
		return -EINVAL;
	}
	const char *files[] = { cfg->ca_file, cfg->cert_file, cfg->key_file };
	for (size_t i = 0; i < 3; i++) {
		if (files[i] && access(files[i], R_OK) != 0) {
			LOG_E("mqtt[%s]: cannot read %s: %s", cfg->client_id, files[i], strerror(errno));
			return -EINVAL;
		}
	}
	if (cfg->will_topic && (!*cfg->will_topic || strpbrk(cfg->will_topic, "+#") || cfg->will_qos < 0 ||
				cfg->will_qos > 2)) {
		LOG_E("mqtt[%s]: invalid will topic or qos", cfg->client_id);
		return -EINVAL;
	}
	if (cfg->keepalive_s < 0 || cfg->max_inflight < 0 || cfg->max_inflight > 65535 ||
	    cfg->backoff_min_ms < 0 || cfg->backoff_max_ms < 0 || cfg->ack_timeout_ms < 0 ||
	    (cfg->backoff_max_ms && cfg->backoff_min_ms > cfg->backoff_max_ms)) {
		LOG_E("mqtt[%s]: keepalive, max_inflight, backoff or ack timeout out of range", cfg->client_id);
		return -EINVAL;
	}
	return 0;
}

struct mqtt_client *mqtt_client_new(const struct mqtt_client_cfg *cfg, const struct mqtt_callbacks *cb,
				    void *user)
{
	bool tls;

	if (check_cfg(cfg, &tls) < 0)
		return NULL;
	struct mqtt_client *c = xcalloc(1, sizeof(*c));
	c->uri = dup_opt(cfg->uri);
	c->uri_shown = mqtt_uri_redact(cfg->uri);
	c->client_id = dup_opt(cfg->client_id);
	c->username = cfg->username && *cfg->username ? dup_opt(cfg->username) : NULL;
	c->password = dup_opt(cfg->password);
	c->ca_file = dup_opt(cfg->ca_file);
	c->cert_file = dup_opt(cfg->cert_file);
	c->key_file = dup_opt(cfg->key_file);
	c->will_topic = dup_opt(cfg->will_topic);
	c->will_payload = dup_opt(cfg->will_payload);
	c->will_qos = cfg->will_qos;
	c->will_retained = cfg->will_retained;
	c->clean_session = cfg->clean_session;
	c->tls = tls;
	c->keepalive_s = cfg->keepalive_s ? cfg->keepalive_s : DEFAULT_KEEPALIVE_S;
	c->max_inflight = cfg->max_inflight ? cfg->max_inflight : DEFAULT_MAX_INFLIGHT;
	c->backoff_min_ms = cfg->backoff_min_ms ? cfg->backoff_min_ms : DEFAULT_BACKOFF_MIN_MS;
	c->ack_timeout_ms = cfg->ack_timeout_ms ? cfg->ack_timeout_ms : DEFAULT_ACK_TIMEOUT_MS;
	if (!cfg->ack_timeout_ms && c->ack_timeout_ms < 2000 * (int64_t)c->keepalive_s)
		c->ack_timeout_ms = 2000 * (int64_t)c->keepalive_s;
	c->backoff_max_ms = cfg->backoff_max_ms ? cfg->backoff_max_ms : DEFAULT_BACKOFF_MAX_MS;
	if (c->backoff_max_ms < c->backoff_min_ms)
		c->backoff_max_ms = c->backoff_min_ms;
	if (cb)
		c->cb = *cb;
	c->user = user;
	c->slots = xcalloc((size_t)c->max_inflight, sizeof(*c->slots));
	c->free_slots = xcalloc((size_t)c->max_inflight, sizeof(*c->free_slots));
	for (int i = 0; i < c->max_inflight; i++) {
		c->slots[i].c = c;
		c->free_slots[i] = c->max_inflight - 1 - i;
	}
	c->n_free = c->max_inflight;
	c->rng = (uint64_t)pdm_mono_us() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)c;
	if (!c->rng)
		c->rng = 1;
	c->conn_rl = (struct pdm_ratelimit)PDM_RATELIMIT_INIT(60000, 5);
	c->dup_rl = (struct pdm_ratelimit)PDM_RATELIMIT_INIT(600000, 1);
	/* a broker that never acknowledges some topic would cost a line a minute */
	c->ack_rl = (struct pdm_ratelimit)PDM_RATELIMIT_INIT(3600000, 5);
	c->state = ST_IDLE;

	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->rl_lock, NULL);
	return c;
}

static int check_sub(const struct mqtt_sub_cfg *s)
{
	const char *name = s && s->name ? s->name : "?";

	if (!s || !s->name || mqtt_filter_check(s->filter) < 0) {
		LOG_E("mqtt[%s]: invalid topic filter '%s'", name, s && s->filter ? s->filter : "");
		return -EINVAL;
	}
	if (s->qos < 0 || s->qos > 2 || (s->format != MQTT_FMT_JSON && s->format != MQTT_FMT_VALUE)) {
		LOG_E("mqtt[%s]: qos must be 0..2 and format json or value", name);
		return -EINVAL;
	}
	if (s->n_fields == 0 || !s->fields || s->n_fields > 4096) {
		LOG_E("mqtt[%s]: no sensor fields configured", name);
		return -EINVAL;
	}
	for (size_t i = 0; i < s->n_fields; i++) {
		const struct mqtt_field *f = &s->fields[i];
		if (!f->path && !(s->format == MQTT_FMT_VALUE && s->n_fields == 1)) {
			LOG_E("mqtt[%s]: every field needs a path (only a single value field may omit it)", name);
			return -EINVAL;
		}
		if (f->path && (!*f->path || strlen(f->path) > 255)) {
			LOG_E("mqtt[%s]: field path empty or too long", name);
			return -EINVAL;
		}
		if (f->has_min && f->has_max && f->valid_min > f->valid_max) {
			LOG_E("mqtt[%s]: field '%s': valid_min above valid_max", name, f->path ? f->path : "");
			return -EINVAL;
		}
	}
	return 0;
}

int mqtt_client_add_sub(struct mqtt_client *c, const struct mqtt_sub_cfg *s, pdm_sample_cb cb, void *user)
{
	if (!c)
		return -EINVAL;
	if (c->state != ST_IDLE || c->thread_started)
		return -EBUSY;
	if (check_sub(s) < 0)
		return -EINVAL;

	struct sub *n = realloc(c->subs, (c->n_subs + 1) * sizeof(*c->subs));
	if (!n)
		return -ENOMEM;
	c->subs = n;
	struct sub *d = &c->subs[c->n_subs];
	memset(d, 0, sizeof(*d));
	d->cfg = *s;
	d->cfg.name = dup_opt(s->name);
	d->cfg.filter = dup_opt(s->filter);
	d->cfg.ts_field = dup_opt(s->ts_field);
	d->fields = xcalloc(s->n_fields, sizeof(*d->fields));
	for (size_t i = 0; i < s->n_fields; i++) {
		d->fields[i] = s->fields[i];
		d->fields[i].path = dup_opt(s->fields[i].path);
	}
	d->cfg.fields = d->fields;
	d->cb = cb;
	d->user = user;
	/* one line per window once BAD_LOG_FULL were logged (see log_bad_message) */
	d->rl = (struct pdm_ratelimit)PDM_RATELIMIT_INIT(BAD_LOG_INTERVAL_MS, 1);
	c->n_subs++;
	return 0;
}

int mqtt_client_start(struct mqtt_client *c)
{
	int rc;

	if (!c)
		return -EINVAL;
	if (c->thread_started || c->state != ST_IDLE)
		return -EALREADY;

	c->sub_filters = xcalloc(c->n_subs, sizeof(*c->sub_filters));
	c->sub_qos = xcalloc(c->n_subs, sizeof(*c->sub_qos));
	c->buf_len = 1;
	for (size_t i = 0; i < c->n_subs; i++) {
		c->sub_filters[i] = (char *)(uintptr_t)c->subs[i].cfg.filter;
		c->sub_qos[i] = c->subs[i].cfg.qos;
		if (c->subs[i].cfg.n_fields > c->buf_len)
			c->buf_len = c->subs[i].cfg.n_fields;
	}
	/* Room for a batch (a JSON array of objects) of MQTT_BATCH_MAX. */
	c->buf_len *= MQTT_BATCH_MAX;
	c->buf = xcalloc(c->buf_len, sizeof(*c->buf));

	rc = create_handle(c);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&c->lock);
	c->state = ST_WAIT;
	c->next_try_ms = pdm_mono_ms();
	pthread_mutex_unlock(&c->lock);
	rc = pthread_create(&c->thread, NULL, supervisor, c);
	if (rc != 0) {
		LOG_E("mqtt[%s]: cannot start a thread: %s", c->client_id, strerror(rc));
		c->state = ST_IDLE;
		MQTTAsync_destroy(&c->h);
		c->h = NULL;
		return -rc;
	}
	c->thread_started = true;
	return 0;
}

static void on_disconnected(void *ctx, MQTTAsync_successData *resp)
{
	struct mqtt_client *c = ctx;
	(void)resp;
	pthread_mutex_lock(&c->lock);
	c->disconnect_done = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

static void on_disconnect_failed(void *ctx, MQTTAsync_failureData *resp)
{
	(void)resp;
	on_disconnected(ctx, NULL);
}

/* Waits (lock held) until every publish slot is back or the deadline. */
static void wait_inflight(struct mqtt_client *c, int64_t deadline)
{
	while (c->n_free < c->max_inflight && c->state == ST_CONNECTED && pdm_mono_ms() < deadline) {
		pthread_mutex_unlock(&c->lock);
		nanosleep(&(struct timespec){ 0, 5 * 1000000L }, NULL);
		pthread_mutex_lock(&c->lock);
	}
}

int mqtt_client_stop(struct mqtt_client *c, int timeout_ms)
{
	int ret = 0;
	bool was_up;

	if (!c)
		return -EINVAL;
	if (timeout_ms < 0)
		timeout_ms = 0;
	int64_t deadline = pdm_mono_ms() + timeout_ms;

	pthread_mutex_lock(&c->lock);
	if (c->state == ST_STOPPED || c->stopping) {
		pthread_mutex_unlock(&c->lock);
		return 0;
	}
	wait_inflight(c, deadline);
	c->stopping = true;
	bool connected = c->state == ST_CONNECTED;
	was_up = c->up_reported;
	c->up_reported = false;
	pthread_cond_broadcast(&c->cond);
	/* new publishes now fail with -ENOTCONN; let running ones finish */
	wait_publishers(c);
	pthread_mutex_unlock(&c->lock);

	if (c->thread_started) {
		pthread_join(c->thread, NULL);
		c->thread_started = false;
	}
	/* a connect issued just before stop may have completed meanwhile */
	if (c->h && (connected || MQTTAsync_isConnected(c->h)) &&
	    disconnect_clean(c, deadline - pdm_mono_ms()) == -ETIMEDOUT)
		ret = -ETIMEDOUT;
	pthread_mutex_lock(&c->lock);
	c->state = ST_STOPPED;
	c->st.connected = false;
	pthread_mutex_unlock(&c->lock);
	drop_handle(c);
	if (was_up && c->cb.on_connection)
		c->cb.on_connection(false, c->user);
	LOG_I("mqtt[%s]: disconnected from %s", c->client_id, c->uri_shown);
	return ret;
}

void mqtt_client_free(struct mqtt_client *c)
{
	if (!c)
		return;
	if (c->thread_started || c->h)
		mqtt_client_stop(c, 1000);
	for (size_t i = 0; i < c->n_subs; i++) {
		struct sub *s = &c->subs[i];
		for (size_t k = 0; k < s->cfg.n_fields; k++)
			free((char *)(uintptr_t)s->fields[k].path);
		free(s->fields);
		free((char *)(uintptr_t)s->cfg.name);
		free((char *)(uintptr_t)s->cfg.filter);
		free((char *)(uintptr_t)s->cfg.ts_field);
	}
	free(c->subs);
	free(c->sub_filters);
	free(c->sub_qos);
	free(c->buf);
	free(c->slots);
	free(c->free_slots);
	free(c->uri);
	free(c->uri_shown);
	free(c->client_id);
	free(c->username);
	secure_free(c->password);
	free(c->ca_file);
	free(c->cert_file);
	free(c->key_file);
	free(c->will_topic);
	free(c->will_payload);
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->rl_lock);
	pthread_cond_destroy(&c->cond);
	free(c);
}

void mqtt_client_stats(struct mqtt_client *c, size_t sub, struct mqtt_stats *o)
{
	if (!o)
		return;
	memset(o, 0, sizeof(*o));
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	if (sub == SIZE_MAX) {
		*o = c->st;
	} else if (sub < c->n_subs) {
		*o = c->subs[sub].st;
		o->reconnects = c->st.reconnects;
	}
	o->connected = c->st.connected;
	pthread_mutex_unlock(&c->lock);
}

/* The secret-file checks on a password file's stat, logged when it fails. */
static int password_stat_ok(const char *path, const struct stat *st)
{
	char why[PATH_MAX + 200];
	/* the password, then at most "\r\n" */
	int rc = pdm_secret_check_stat(path, st, MQTT_PASSWORD_MAX + 2, why, sizeof(why));
	if (rc < 0)
		LOG_E("mqtt: password_file: %s", why);
	return rc;
}

int mqtt_read_password_file(const char *path, char *buf, size_t len)
{
	struct stat st;
	int fd, ret = 0;

	if (!path || !buf || len == 0)
		return -EINVAL;
	buf[0] = '\0';
	/* Never open what is not a regular file: a FIFO would block, a tty
	 * would see its lines toggled. */
	if (stat(path, &st) < 0) {
		ret = -errno;
		LOG_E("mqtt: cannot open password_file %s: %s", path, strerror(errno));
		return ret;
	}
	if ((ret = password_stat_ok(path, &st)) < 0)
		return ret;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		ret = -errno;
		LOG_E("mqtt: cannot open password_file %s: %s", path, strerror(errno));
		return ret;
	}
	/* Checked again on the open file: it may have been replaced meanwhile. */
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		LOG_E("mqtt: cannot stat password_file %s: %s", path, strerror(errno));
		goto out;
	}
	if ((ret = password_stat_ok(path, &st)) < 0)
		goto out;
	size_t got = 0;
	for (;;) {
		ssize_t n = read(fd, buf + got, len - 1 - got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			LOG_E("mqtt: cannot read password_file %s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
		if (got == len - 1) {
			char extra;
			ssize_t more = read(fd, &extra, 1);
			/* a single trailing newline still fits once stripped */
			if (more > 0 && !(extra == '\n' && read(fd, &extra, 1) == 0)) {
				LOG_E("mqtt: password in %s is longer than %zu bytes", path, len - 1);
				ret = -ENAMETOOLONG;
				goto out;
			}
			break;
		}
	}
	buf[got] = '\0';
	if (got > 0 && buf[got - 1] == '\n')
		buf[--got] = '\0';
	if (got > 0 && buf[got - 1] == '\r')
		buf[--got] = '\0';
	if (memchr(buf, '\0', got)) {
		LOG_E("mqtt: password_file %s contains a NUL byte", path);
		ret = -EINVAL;
	}
out:
	if (ret < 0)
		explicit_bzero(buf, len);
	close(fd);
	return ret;
}
