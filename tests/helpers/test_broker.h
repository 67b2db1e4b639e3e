/*
 * test_broker.h - a real mosquitto broker for integration tests.
 *
 * Starts /usr/sbin/mosquitto (or $PDM_MOSQUITTO) on a free 127.0.0.1 port
 * with a config in a private temporary directory, waits until it accepts
 * connections, and stops it again. Tests running in parallel each get their
 * own broker and port.
 */
#ifndef PDM_TEST_BROKER_H
#define PDM_TEST_BROKER_H

#include <sys/types.h>

struct test_broker {
	pid_t pid;
	int port;
	char dir[256];     /* temporary directory holding config and log */
	char uri[64];      /* "tcp://127.0.0.1:PORT" */
	char extra[2048];  /* extra mosquitto.conf lines (set before start) */
};

/* Starts a broker on a free port. Returns 0 or a negative errno. */
int test_broker_start(struct test_broker *b);
/* Starts again on the same port (after test_broker_kill), e.g. for outage tests. */
int test_broker_restart(struct test_broker *b);
/* Stops the process (SIGTERM, then SIGKILL), frozen or not, but keeps the
 * directory. */
void test_broker_kill(struct test_broker *b);
/* Stops the broker and removes its directory. Safe to call twice. */
void test_broker_stop(struct test_broker *b);

/* A TCP socket listening on 127.0.0.1 on a port of the kernel's choice,
 * stored in *port. Returns the socket or a negative errno. */
int test_listen_local(int *port);
/* A free TCP port on 127.0.0.1 (bound once and released). */
int test_free_port(void);
/* A TCP connection to 127.0.0.1:port. Returns the socket or a negative errno. */
int test_connect_local(int port);
/* Waits until something accepts TCP connections on 127.0.0.1:port. */
int test_wait_port(int port, int timeout_ms);

#endif
