/*
 * plantsim_mqtt.h - plantsim's MQTT telemetry publisher (paho async).
 *
 * Publishing never blocks the simulation: messages are handed to paho,
 * which sends them from its own threads and buffers up to a minute of them
 * while the broker is away (oldest dropped first). The connection is
 * retried with backoff until it comes up; after that paho reconnects by
 * itself.
 */
#ifndef PLANTSIM_MQTT_H
#define PLANTSIM_MQTT_H

struct ps_mqtt;

/*
 * Creates the client and starts connecting to `uri` ("tcp://host:port";
 * "ssl://" works when paho was built with TLS) as `client_id`, publishing
 * at QoS `qos` (0..2). Returns NULL and logs why on failure.
 */
struct ps_mqtt *ps_mqtt_new(const char *uri, const char *client_id, int qos);

/* Retries a failed connection when its backoff has expired; call often. */
void ps_mqtt_poll(struct ps_mqtt *m);

/* Queues one message (not retained). Returns 0, or a negative code if paho
 * refused it (buffer full); the caller may drop it. */
int ps_mqtt_publish(struct ps_mqtt *m, const char *topic, const char *payload);

/* Messages paho accepted so far. */
unsigned long ps_mqtt_sent(const struct ps_mqtt *m);

/* Disconnects (waiting up to 2 s for queued messages), stops paho's threads
 * and frees. NULL is fine. */
void ps_mqtt_free(struct ps_mqtt *m);

#endif
