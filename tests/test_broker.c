/*
 * test_broker.c - the test broker helper against a real paho client:
 * two brokers side by side on distinct ports, a QoS 1 round trip, and a
 * restart on the same port.
 */
#include <MQTTAsync.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "test_broker.h"
#include "test_util.h"

struct client {
	MQTTAsync h;
	pthread_mutex_t lock;
	int connected;
	int subscribed;
	int received;
	char last[256];
};

static void on_connect(void *ctx, MQTTAsync_successData *resp)
{
	struct client *c = ctx;
	(void)resp;
	pthread_mutex_lock(&c->lock);
	c->connected = 1;
	pthread_mutex_unlock(&c->lock);
}

static void on_connect_fail(void *ctx, MQTTAsync_failureData *resp)
{
	struct client *c = ctx;
	(void)resp;
	pthread_mutex_lock(&c->lock);
	c->connected = -1;
	pthread_mutex_unlock(&c->lock);
}

static void on_subscribe(void *ctx, MQTTAsync_successData *resp)
{
	struct client *c = ctx;
	(void)resp;
	pthread_mutex_lock(&c->lock);
	c->subscribed = 1;
	pthread_mutex_unlock(&c->lock);
}

static int on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *m)
{
	struct client *c = ctx;
	(void)topic_len;
	pthread_mutex_lock(&c->lock);
	c->received++;
	snprintf(c->last, sizeof(c->last), "%.*s", m->payloadlen, (const char *)m->payload);
	pthread_mutex_unlock(&c->lock);
	MQTTAsync_freeMessage(&m);
	MQTTAsync_free(topic);
	return 1;
}

static int wait_for(struct client *c, int *field, int want, int timeout_ms)
{
	for (int t = 0; t < timeout_ms; t += 10) {
		pthread_mutex_lock(&c->lock);
		int v = *field;
		pthread_mutex_unlock(&c->lock);
		if (v == want)
			return 0;
		if (v < 0)
			return -1;
		test_sleep_ms(10);
	}
	return -1;
}

static int client_connect(struct client *c, const char *uri, const char *id)
{
	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->lock, NULL);
	if (MQTTAsync_create(&c->h, uri, id, MQTTCLIENT_PERSISTENCE_NONE, NULL) != MQTTASYNC_SUCCESS)
		return -1;
	MQTTAsync_setCallbacks(c->h, c, NULL, on_message, NULL);
	MQTTAsync_connectOptions o = MQTTAsync_connectOptions_initializer;
	o.cleansession = 1;
	o.onSuccess = on_connect;
	o.onFailure = on_connect_fail;
	o.context = c;
	if (MQTTAsync_connect(c->h, &o) != MQTTASYNC_SUCCESS)
		return -1;
	return wait_for(c, &c->connected, 1, 5000);
}

static void client_free(struct client *c)
{
	MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
	d.timeout = 1000;
	MQTTAsync_disconnect(c->h, &d);
	test_sleep_ms(50);
	MQTTAsync_destroy(&c->h);
	pthread_mutex_destroy(&c->lock);
}

static int roundtrip(struct client *c, const char *payload)
{
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	ro.onSuccess = on_subscribe;
	ro.context = c;
	c->subscribed = 0;
	if (MQTTAsync_subscribe(c->h, "pdm/test/#", 1, &ro) != MQTTASYNC_SUCCESS ||
	    wait_for(c, &c->subscribed, 1, 5000) != 0)
		return -1;
	int before = c->received;
	MQTTAsync_message m = MQTTAsync_message_initializer;
	m.payload = (void *)payload;
	m.payloadlen = (int)strlen(payload);
	m.qos = 1;
	if (MQTTAsync_sendMessage(c->h, "pdm/test/a", &m, NULL) != MQTTASYNC_SUCCESS)
		return -1;
	return wait_for(c, &c->received, before + 1, 5000);
}

/* File-level so the teardown stops them when an assertion fails. */
static struct test_broker a, b;

static int brokers_teardown(void **state)
{
	(void)state;
	test_broker_stop(&a);
	test_broker_stop(&b);
	return 0;
}

static void test_two_brokers_roundtrip_and_restart(void **state)
{
	struct client c;
	(void)state;

	assert_int_equal(test_broker_start(&a), 0);
	assert_int_equal(test_broker_start(&b), 0);
	assert_int_not_equal(a.port, b.port);

	assert_int_equal(client_connect(&c, a.uri, "t1"), 0);
	assert_int_equal(roundtrip(&c, "hello"), 0);
	assert_string_equal(c.last, "hello");
	client_free(&c);

	/* Same port after a restart: outage tests depend on it. */
	int port = b.port;
	test_broker_kill(&b);
	assert_int_not_equal(test_wait_port(port, 200), 0);
	assert_int_equal(test_broker_restart(&b), 0);
	assert_int_equal(b.port, port);
	assert_int_equal(client_connect(&c, b.uri, "t2"), 0);
	assert_int_equal(roundtrip(&c, "again"), 0);
	assert_string_equal(c.last, "again");
	client_free(&c);

	test_broker_stop(&a);
	test_broker_stop(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_two_brokers_roundtrip_and_restart, brokers_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
