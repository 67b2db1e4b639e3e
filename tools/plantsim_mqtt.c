/*
 * plantsim_mqtt.c - non-blocking telemetry publishing over paho's async API.
 *
 * paho calls back from its own threads; the callbacks only update atomic
 * state. Reconnection of a lost session is paho's (automaticReconnect);
 * a connection that never came up is retried from ps_mqtt_poll() on the
 * caller's thread, with backoff doubling from 1 s to 16 s.
 */
#include "plantsim_mqtt.h"

#include <MQTTAsync.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "pdm_error.h"
#include "pdm_time.h"

enum conn_state {
	ST_CONNECTING,
	ST_CONNECTED,
	ST_LOST,     /* paho is reconnecting by itself */
	ST_FAILED,   /* connect failed: ps_mqtt_poll retries */
};

struct ps_mqtt {
	MQTTAsync client;
	char uri[256];
	int qos;
	atomic_int state;
	atomic_int disconnected;
	int64_t retry_at_ms;
	int64_t backoff_ms;
	unsigned long sent;
	unsigned long refused;
	bool warned_refused;
};

static void on_connect_ok(void *ctx, MQTTAsync_successData *resp)
{
	struct ps_mqtt *m = ctx;
	(void)resp;
	atomic_store(&m->state, ST_CONNECTED);
	LOG_I("plantsim: mqtt: connected to %s", m->uri);
}

static void on_connect_fail(void *ctx, MQTTAsync_failureData *resp)
{
	struct ps_mqtt *m = ctx;
	LOG_W("plantsim: mqtt: cannot connect to %s: %s (retrying)", m->uri,
	      resp && resp->message ? resp->message : "connection refused or timed out");
	atomic_store(&m->state, ST_FAILED);
}

static void on_connection_lost(void *ctx, char *cause)
{
	struct ps_mqtt *m = ctx;
	LOG_W("plantsim: mqtt: lost connection to %s%s%s; reconnecting", m->uri,
	      cause ? ": " : "", cause ? cause : "");
	atomic_store(&m->state, ST_LOST);
}

static void on_reconnected(void *ctx, char *cause)
{
	struct ps_mqtt *m = ctx;
	(void)cause;
	if (atomic_exchange(&m->state, ST_CONNECTED) != ST_CONNECTED)
		LOG_I("plantsim: mqtt: reconnected to %s", m->uri);
}

static int on_message(void *ctx, char *topic, int len, MQTTAsync_message *msg)
{
	(void)ctx;
	(void)len;
	/* We subscribe to nothing; free whatever arrives. */
	MQTTAsync_freeMessage(&msg);
	MQTTAsync_free(topic);
	return 1;
}

static void on_disconnect(void *ctx, MQTTAsync_successData *resp)
{
	struct ps_mqtt *m = ctx;
	(void)resp;
	atomic_store(&m->disconnected, 1);
}

static void on_disconnect_fail(void *ctx, MQTTAsync_failureData *resp)
{
	struct ps_mqtt *m = ctx;
	(void)resp;
	atomic_store(&m->disconnected, 1);
}

static int start_connect(struct ps_mqtt *m)
{
	MQTTAsync_connectOptions o = MQTTAsync_connectOptions_initializer;

	o.keepAliveInterval = 20;
	o.cleansession = 1;
	o.connectTimeout = 5;
	o.automaticReconnect = 1;
	o.minRetryInterval = 1;
	o.maxRetryInterval = 16;
	o.onSuccess = on_connect_ok;
	o.onFailure = on_connect_fail;
	o.context = m;
	atomic_store(&m->state, ST_CONNECTING);
	int rc = MQTTAsync_connect(m->client, &o);
	if (rc != MQTTASYNC_SUCCESS) {
		atomic_store(&m->state, ST_FAILED);
		return -PDM_EPROTO;
	}
	return 0;
}

struct ps_mqtt *ps_mqtt_new(const char *uri, const char *client_id, int qos)
{
	struct ps_mqtt *m = calloc(1, sizeof(*m));
	MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer;
	int rc;

	if (!m)
		return NULL;
	snprintf(m->uri, sizeof(m->uri), "%s", uri);
	m->qos = qos;
	m->backoff_ms = 1000;
	co.sendWhileDisconnected = 1;
	co.allowDisconnectedSendAtAnyTime = 1;
	co.maxBufferedMessages = 1000;
	co.deleteOldestMessages = 1;
	rc = MQTTAsync_createWithOptions(&m->client, uri, client_id,
					 MQTTCLIENT_PERSISTENCE_NONE, NULL, &co);
	if (rc != MQTTASYNC_SUCCESS) {
		LOG_E("plantsim: mqtt: bad broker URI '%s': %s (expected tcp://HOST:PORT)", uri,
		      MQTTAsync_strerror(rc));
		free(m);
		return NULL;
	}
	MQTTAsync_setCallbacks(m->client, m, on_connection_lost, on_message, NULL);
	MQTTAsync_setConnected(m->client, m, on_reconnected);
	if (start_connect(m) < 0)
		m->retry_at_ms = pdm_mono_ms() + m->backoff_ms;
	return m;
}

void ps_mqtt_poll(struct ps_mqtt *m)
{
	int64_t now = pdm_mono_ms();

	if (atomic_load(&m->state) != ST_FAILED)
		return;
	if (m->retry_at_ms == 0) {
		m->retry_at_ms = now + m->backoff_ms;
		return;
	}
	if (now < m->retry_at_ms)
		return;
	m->retry_at_ms = 0;
	if (m->backoff_ms < 16000)
		m->backoff_ms *= 2;
	start_connect(m);
}

int ps_mqtt_publish(struct ps_mqtt *m, const char *topic, const char *payload)
{
	MQTTAsync_message msg = MQTTAsync_message_initializer;

	msg.payload = (void *)payload;
	msg.payloadlen = (int)strlen(payload);
	msg.qos = m->qos;
	msg.retained = 0;
	int rc = MQTTAsync_sendMessage(m->client, topic, &msg, NULL);
	if (rc != MQTTASYNC_SUCCESS) {
		m->refused++;
		if (!m->warned_refused) {
			LOG_W("plantsim: mqtt: message to %s dropped: %s", topic,
			      MQTTAsync_strerror(rc));
			m->warned_refused = true;
		}
		return -ENOBUFS;
	}
	m->sent++;
	if (atomic_load(&m->state) == ST_CONNECTED)
		m->warned_refused = false;
	return 0;
}

unsigned long ps_mqtt_sent(const struct ps_mqtt *m)
{
	return m->sent;
}

void ps_mqtt_free(struct ps_mqtt *m)
{
	if (!m)
		return;
	MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
	d.timeout = 2000;
	d.onSuccess = on_disconnect;
	d.onFailure = on_disconnect_fail;
	d.context = m;
	if (MQTTAsync_isConnected(m->client) &&
	    MQTTAsync_disconnect(m->client, &d) == MQTTASYNC_SUCCESS) {
		for (int i = 0; i < 250 && !atomic_load(&m->disconnected); i++) {
			struct timespec ts = { 0, 10 * 1000000L };
			nanosleep(&ts, NULL);
		}
	}
	MQTTAsync_destroy(&m->client);
	LOG_I("plantsim: mqtt: %lu messages published, %lu dropped", m->sent, m->refused);
	free(m);
}
