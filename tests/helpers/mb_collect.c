/*
 * mb_collect.c - sample sink and child processes for the Modbus tests.
 */
#include "mb_collect.h"

#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void mb_collect_init(struct mb_collect *c)
{
	pthread_condattr_t ca;

	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cv, &ca);
	pthread_condattr_destroy(&ca);
}

void mb_collect_cleanup(struct mb_collect *c)
{
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
}

void mb_collect_cb(const struct pdm_sample *s, size_t n, void *user)
{
	struct mb_collect *c = user;

	pthread_mutex_lock(&c->mu);
	c->batches++;
	for (size_t i = 0; i < n; i++) {
		if (s[i].sensor >= MB_COLLECT_MAX || s[i].quality > 2) {
			c->bad_id = true;
			continue;
		}
		c->last[s[i].sensor] = s[i];
		c->n[s[i].sensor][s[i].quality]++;
	}
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

bool mb_collect_wait(struct mb_collect *c, uint32_t sensor, int quality, uint64_t count,
		     int timeout_ms)
{
	struct timespec ts;
	bool ok;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&c->mu);
	while (!(ok = c->n[sensor][quality] >= count)) {
		if (pthread_cond_timedwait(&c->cv, &c->mu, &ts) == ETIMEDOUT) {
			ok = c->n[sensor][quality] >= count;
			break;
		}
	}
	pthread_mutex_unlock(&c->mu);
	return ok;
}

uint64_t mb_collect_count(struct mb_collect *c, uint32_t sensor, int quality)
{
	pthread_mutex_lock(&c->mu);
	uint64_t n = c->n[sensor][quality];
	pthread_mutex_unlock(&c->mu);
	return n;
}

struct pdm_sample mb_collect_last(struct mb_collect *c, uint32_t sensor)
{
	pthread_mutex_lock(&c->mu);
	struct pdm_sample s = c->last[sensor];
	pthread_mutex_unlock(&c->mu);
	return s;
}

static pid_t spawn(char *const argv[], int *out_fd)
{
	int p[2] = { -1, -1 };

	if (out_fd && pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		if (out_fd) {
			close(p[0]);
			close(p[1]);
		}
		return -e;
	}
	if (pid == 0) {
		if (out_fd)
			dup2(p[1], STDOUT_FILENO);
		execv(argv[0], argv);
		_exit(127);
	}
	if (out_fd) {
		close(p[1]);
		*out_fd = p[0];
	}
	return pid;
}

pid_t mb_spawn(char *const argv[])
{
	return spawn(argv, NULL);
}

pid_t mb_spawn_ready(char *const argv[], int timeout_ms)
{
	int fd;
	pid_t pid = spawn(argv, &fd);
	char line[256];
	size_t have = 0;

	if (pid < 0)
		return pid;
	while (have < sizeof(line) - 1) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		if (poll(&pfd, 1, timeout_ms) <= 0)
			break;
		ssize_t n = read(fd, line + have, 1);
		if (n <= 0)
			break;
		have++;
		if (line[have - 1] == '\n')
			break;
	}
	line[have] = '\0';
	close(fd);
	if (strncmp(line, "ready", 5) != 0) {
		fprintf(stderr, "%s did not start (said \"%s\")\n", argv[0], line);
		mb_kill_wait(pid, SIGKILL);
		return -EIO;
	}
	return pid;
}

void mb_kill_wait(pid_t pid, int sig)
{
	if (pid <= 0)
		return;
	kill(pid, sig);
	waitpid(pid, NULL, 0);
}

static pthread_mutex_t logcap_mu = PTHREAD_MUTEX_INITIALIZER;
static char logcap_buf[65536];
static size_t logcap_len;

static void logcap_sink(int prio, const char *msg, void *user)
{
	(void)prio;
	(void)user;
	pthread_mutex_lock(&logcap_mu);
	int n = snprintf(logcap_buf + logcap_len, sizeof(logcap_buf) - logcap_len, "%s\n", msg);
	if (n > 0 && logcap_len + (size_t)n < sizeof(logcap_buf))
		logcap_len += (size_t)n;
	pthread_mutex_unlock(&logcap_mu);
}

void mb_logcap_start(void)
{
	pthread_mutex_lock(&logcap_mu);
	logcap_len = 0;
	logcap_buf[0] = '\0';
	pthread_mutex_unlock(&logcap_mu);
	pdm_log_set_sink(logcap_sink, NULL);
}

bool mb_logcap_has(const char *needle)
{
	pthread_mutex_lock(&logcap_mu);
	bool found = strstr(logcap_buf, needle) != NULL;
	pthread_mutex_unlock(&logcap_mu);
	return found;
}

void mb_logcap_stop(void)
{
	pdm_log_set_sink(NULL, NULL);
}
