/*
 * mqtt_client.h - one MQTT connection: sensor ingestion and alert publishing.
 *
 * Wraps paho's asynchronous client (never the synchronous wait-for-
 * completion path, which caps QoS 1 at about 10 messages/s). One client is
 * one broker connection carrying any number of subscriptions (each feeding
 * samples to a callback) and the publisher the daemon uses for alerts and
 * retained status.
 *
 * Reliability: a stable client id and clean_session off give a persistent
 * session, so QoS 1 messages sent while we are away are queued by the
 * broker and arrive after reconnect. The client reconnects forever with
 * exponential backoff plus jitter up to a cap and re-subscribes every time;
 * the backoff starts over only after a connection that lasted a minute.
 * Bad payloads are counted per reason and logged at a limited rate.
 *
 * Security: ssl:// (or mqtts://) URIs use TLS with server certificate and
 * host name verification against ca_file (or the system store), optional
 * client certificate and key; username/password authentication with the
 * password read from a file that others cannot read. Secrets are never
 * logged.
 *
 * Threads: callbacks run on paho's threads and must not block for long, and
 * must not call mqtt_client_stop() or mqtt_client_free().
 */
#ifndef MQTT_CLIENT_H
#define MQTT_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mqtt_parse.h"
#include "sample.h"

struct mqtt_client_cfg {
	const char *uri;       /* tcp://host:port, ssl://host:port or mqtts://host:port */
	const char *client_id; /* stable across restarts for a persistent session */
	const char *username;  /* NULL or "" = none */
	const char *password;  /* already read from its file; NULL = none */
	const char *ca_file, *cert_file, *key_file; /* TLS only; cert and key go together */
	int keepalive_s;       /* 0 = 30 */
	bool clean_session;    /* false for a persistent session */
	int max_inflight;      /* publishes awaiting acknowledgement; 0 = 32 */
	int64_t backoff_min_ms, backoff_max_ms; /* 0 = 500 ms / 30 s */
	/* a publish unacknowledged this long on a live connection is taken
	 * for lost: the client reconnects with a new handle and reports it
	 * cancelled; 0 = 60 s, or twice the keepalive if that is longer */
	int64_t ack_timeout_ms;
	const char *will_topic, *will_payload; /* NULL topic = no will */
	int will_qos;
	bool will_retained;
};

struct mqtt_callbacks {
	/* Connection up (connected and every subscription answered) or down.
	 * Called on a paho thread; up is where to re-publish retained state
	 * and the pending outbox. May be NULL. */
	void (*on_connection)(bool up, void *user);
	/* A publish finished: rc 0 = acknowledged by the broker (QoS 1/2) or
	 * written (QoS 0); -ECANCELED = dropped by mqtt_client_stop() or, with
	 * clean_session, discarded by paho when the connection was lost; other
	 * negative codes = refused, or (-EIO) lost with the connection while
	 * paho was still writing it, even with a persistent session. Anything
	 * but 0 means: publish it again if it matters (the broker may then see
	 * it twice). Exactly once per mqtt_publish() that returned 0. Called on
	 * a paho thread, or within mqtt_client_stop(). May be NULL. */
	void (*on_delivered)(uint64_t tag, int rc, void *user);
};

struct mqtt_stats {
	uint64_t received;  /* messages (per sub: messages matching its filter) */
	uint64_t samples;   /* samples handed to the callback */
	uint64_t malformed, oversized, non_utf8, wrong_type; /* rejected payloads */
	uint64_t out_of_range; /* samples marked bad: NaN/Inf, outside valid range, absurd time */
	uint64_t reconnects;   /* successful connections after the first */
	uint64_t rebuilds;     /* times the client started over with a new paho handle: after
				  a broken write, an acknowledgement that never came, or
				  connections closed at once several in a row */
	uint64_t broken_writes; /* publishes whose write broke with the connection (paho holds
				   a damaged copy of each: the handle is replaced) */
	uint64_t ack_timeouts;  /* publishes not acknowledged within ack_timeout_ms on a live
				   connection (the client then reconnects with a new handle) */
	uint64_t published, acked, publish_failed;
	uint64_t mismatched; /* acknowledged, but paho's copy differed from what was published
				(counted in publish_failed: the owner publishes it again) */
	bool connected;
	int64_t last_message_ms; /* wall clock of the last message, 0 = none */
};

/*
 * Creates a client (no network activity yet). All strings are copied.
 * `cb` may be NULL; `user` is passed to its callbacks. Returns NULL with the
 * reason logged on an invalid configuration (bad URI scheme, TLS files
 * with tcp://, cert without key, ...).
 */
struct mqtt_client *mqtt_client_new(const struct mqtt_client_cfg *cfg, const struct mqtt_callbacks *cb,
				    void *user);

/*
 * Adds a subscription; only before mqtt_client_start(). The configuration
 * is deep-copied. `cb` gets the samples decoded from each matching message
 * (on a paho thread); `user` is passed through and stays the caller's.
 * Returns 0, -EINVAL (bad filter, qos, format or fields; logged) or -EBUSY
 * (already started).
 */
int mqtt_client_add_sub(struct mqtt_client *c, const struct mqtt_sub_cfg *s, pdm_sample_cb cb, void *user);

/* Starts connecting in the background; retries forever with backoff.
 * Returns 0, -EALREADY, or a negative code if paho could not be set up. */
int mqtt_client_start(struct mqtt_client *c);

/*
 * Queues one message. Returns 0 when queued (the outcome comes later
 * through on_delivered with `tag`), -ENOTCONN when not connected,
 * -EAGAIN when max_inflight messages await acknowledgement, -EINVAL for a
 * bad topic or qos.
 */
int mqtt_publish(struct mqtt_client *c, const char *topic, const void *payload, size_t len, int qos,
		 bool retained, uint64_t tag);

/*
 * Disconnects cleanly (the broker does not publish the will), waiting up
 * to timeout_ms for in-flight acknowledgements; publishes still pending are
 * reported with -ECANCELED. The client cannot be started again. Returns 0
 * or -ETIMEDOUT if the disconnect was not confirmed in time.
 */
int mqtt_client_stop(struct mqtt_client *c, int timeout_ms);

/* Stops (if needed) and frees; NULL is fine. */
void mqtt_client_free(struct mqtt_client *c);

/* Counters of subscription `sub` (index in add order), or of the whole
 * client with SIZE_MAX. An unknown index gives zeros. Thread-safe. */
void mqtt_client_stats(struct mqtt_client *c, size_t sub, struct mqtt_stats *o);

/* Longest password a password file may hold, in bytes (the file may add a
 * line end: at most MQTT_PASSWORD_MAX + 2 bytes). */
#define MQTT_PASSWORD_MAX 512
/* Largest TLS private key file accepted (a PEM key is a few KiB). */
#define MQTT_KEY_FILE_MAX (64 * 1024)

/*
 * Reads a password from `path` into buf (NUL-terminated, the trailing
 * newline stripped), after the checks of pdm_secret_check_file() on the
 * open file: -EACCES (others may access it, or its group may write it),
 * -EPERM (another user owns it), -EINVAL (not a regular file, or a NUL
 * byte), -EFBIG (file too large), each with a clear error logged. Returns
 * 0, -ENAMETOOLONG if the password does not fit in len, or -errno. The
 * password itself is never logged.
 */
int mqtt_read_password_file(const char *path, char *buf, size_t len);

/* A copy of uri fit for logs and screens: "tcp://user:secret@host" becomes
 * "tcp://user:***@host". The caller frees it; NULL only for a NULL uri. */
char *mqtt_uri_redact(const char *uri);

#endif
