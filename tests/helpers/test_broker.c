/*
 * test_broker.c - start and stop a private mosquitto for tests.
 *
 * Port choice races with other processes between releasing the probe socket
 * and mosquitto binding it, so start retries with a new port if the broker
 * exits early.
 */
#include "test_broker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

int test_listen_local(int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);

	if (fd < 0)
		return -errno;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 8) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	*port = ntohs(sa.sin_port);
	return fd;
}

int test_free_port(void)
{
	int port = -1;
	int fd = test_listen_local(&port);

	if (fd < 0)
		return fd;
	close(fd);
	return port;
}

int test_connect_local(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0)
		return -errno;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

int test_wait_port(int port, int timeout_ms)
{
	for (int waited = 0; waited < timeout_ms; waited += 10) {
		int fd = test_connect_local(port);
		if (fd >= 0) {
			close(fd);
			return 0;
		}
		sleep_ms(10);
	}
	return -ETIMEDOUT;
}

static int write_config(struct test_broker *b)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/mosquitto.conf", b->dir);
	FILE *f = fopen(path, "w");
	if (!f)
		return -errno;
	fprintf(f,
		"listener %d 127.0.0.1\n"
		"allow_anonymous true\n"
		"persistence true\n"
		"persistence_location %s/\n"
		"log_dest file %s/mosquitto.log\n"
		"log_type error\nlog_type warning\nlog_type notice\n"
		"%s"
		"%s\n",
		b->port, b->dir, b->dir,
		/* As root mosquitto would switch to its own user, which cannot
		 * write our 0700 directory (persistence, log). */
		geteuid() == 0 && !strstr(b->extra, "user ") ? "user root\n" : "", b->extra);
	fclose(f);
	return 0;
}

static int spawn(struct test_broker *b)
{
	const char *exe = getenv("PDM_MOSQUITTO");
	char conf[512];

	if (!exe)
		exe = "/usr/sbin/mosquitto";
	snprintf(conf, sizeof(conf), "%s/mosquitto.conf", b->dir);
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDWR);
		if (devnull >= 0) {
			dup2(devnull, STDIN_FILENO);
			dup2(devnull, STDOUT_FILENO);
		}
		execl(exe, exe, "-c", conf, (char *)NULL);
		_exit(127);
	}
	b->pid = pid;
	/* Up when it accepts connections; gone if it could not bind. */
	for (int waited = 0; waited < 5000; waited += 10) {
		int status;
		if (waitpid(pid, &status, WNOHANG) == pid) {
			b->pid = 0;
			return -EADDRINUSE;
		}
		if (test_wait_port(b->port, 10) == 0)
			return 0;
	}
	test_broker_kill(b);
	return -ETIMEDOUT;
}

int test_broker_start(struct test_broker *b)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(b->dir, sizeof(b->dir), "%s/pdm-broker-XXXXXX", tmp ? tmp : "/tmp");
	if (!mkdtemp(b->dir))
		return -errno;
	for (int attempt = 0; attempt < 20; attempt++) {
		b->port = test_free_port();
		if (b->port < 0)
			return b->port;
		snprintf(b->uri, sizeof(b->uri), "tcp://127.0.0.1:%d", b->port);
		int rc = write_config(b);
		if (rc < 0)
			return rc;
		rc = spawn(b);
		if (rc != -EADDRINUSE)
			return rc;
	}
	return -EADDRINUSE;
}

int test_broker_restart(struct test_broker *b)
{
	for (int attempt = 0; attempt < 100; attempt++) {
		int rc = spawn(b);
		if (rc != -EADDRINUSE)
			return rc;
		sleep_ms(50); /* the old socket may linger briefly */
	}
	return -EADDRINUSE;
}

void test_broker_kill(struct test_broker *b)
{
	if (b->pid <= 0)
		return;
	kill(b->pid, SIGTERM);
	kill(b->pid, SIGCONT); /* a frozen broker (SIGSTOP) must wake to take it */
	for (int i = 0; i < 300; i++) {
		if (waitpid(b->pid, NULL, WNOHANG) == b->pid) {
			b->pid = 0;
			return;
		}
		sleep_ms(10);
	}
	kill(b->pid, SIGKILL);
	waitpid(b->pid, NULL, 0);
	b->pid = 0;
}

void test_broker_stop(struct test_broker *b)
{
	char cmd[600];

	test_broker_kill(b);
	if (b->dir[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", b->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "test_broker: could not remove %s\n", b->dir);
		b->dir[0] = '\0';
	}
}
