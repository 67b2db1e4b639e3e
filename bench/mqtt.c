/*
 * mqtt.c - RW-MQTT: our MQTT client against mosquitto's own clients on
 * the same local broker (see /work/shared/bench/REFERENCE.md).
 *
 * usage: bench_mqtt PORT N MODE
 *   ingest-ours   mosquitto_pub -l floods N JSON telemetry payloads (QoS 1);
 *                 our client subscribes and decodes them into samples
 *   ingest-peer   the same flood, received by mosquitto_sub
 *   publish-ours  our client publishes N QoS 1 alerts (~300 bytes) and
 *                 waits for every acknowledgement
 *   publish-peer  mosquitto_pub -l -q 1 publishes the same N alerts
 * Each mode prints one "name value unit" line; bench/mqtt.sh alternates
 * them and prints medians and ratios. Times run from the start of the
 * flood to the last message received (or acknowledged).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "mqtt_client.h"
#include "pdm_time.h"

#define MOSQ_PUB "/usr/bin/mosquitto_pub"
#define MOSQ_SUB "/usr/bin/mosquitto_sub"

#define TELEMETRY_FMT \
	"{\"ts\": 1795000000123, \"seq\": %ld, \"bearing_temp\": 61.5, " \
	"\"process\": {\"flow\": 12.25, \"pressure\": 3.5}}"

/* A SPEC-shaped alert of about 300 bytes. */
#define ALERT_FMT \
	"{\"asset\":\"pump-a\",\"episode\":%ld,\"state\":\"raised\",\"severity\":\"warning\"," \
	"\"score\":1.37,\"threshold\":0.042,\"ts\":\"2026-11-28T04:25:42.123Z\",\"model\":\"conv_ae\"," \
	"\"top\":[{\"sensor\":\"vibration_rms\",\"share\":0.61},{\"sensor\":\"bearing_temp\",\"share\":0.22}," \
	"{\"sensor\":\"flow\",\"share\":0.09}],\"text\":\"vibration_rms high\"}"

static char port_s[16];
static char tmpdir[] = "/tmp/pdm-bench-mqtt-XXXXXX";

static atomic_ulong messages, acked;
static atomic_int up;
static pthread_mutex_t ack_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ack_cond = PTHREAD_COND_INITIALIZER;

static void die(const char *what)
{
	fprintf(stderr, "bench_mqtt: %s\n", what);
	exit(1);
}

static void on_samples(const struct pdm_sample *s, size_t n, void *user)
{
	(void)s;
	(void)n;
	(void)user;
	atomic_fetch_add(&messages, 1);
}

static void on_connection(bool is_up, void *user)
{
	(void)user;
	atomic_store(&up, is_up);
}

static void on_delivered(uint64_t tag, int rc, void *user)
{
	(void)tag;
	(void)user;
	if (rc != 0)
		die("a publish was not acknowledged");
	pthread_mutex_lock(&ack_lock);
	atomic_fetch_add(&acked, 1);
	pthread_cond_signal(&ack_cond);
	pthread_mutex_unlock(&ack_lock);
}

/* Writes n payloads, one a line, numbered, to a file for mosquitto_pub -l. */
static void write_lines(const char *path, long n, bool alerts)
{
	FILE *f = fopen(path, "w");
	if (!f)
		die("cannot write the payload file");
	for (long i = 0; i < n; i++) {
		if (alerts)
			fprintf(f, ALERT_FMT, i);
		else
			fprintf(f, TELEMETRY_FMT, i);
		fputc('\n', f);
	}
	if (fclose(f) != 0)
		die("cannot write the payload file");
}

/* Starts argv with stdin from `in` (or /dev/null) and stdout to *out_fd
 * (a pipe) if out_fd is given, else /dev/null. */
static pid_t spawn(char *const argv[], const char *in, int *out_fd)
{
	int pfd[2] = { -1, -1 };
	if (out_fd && pipe(pfd) < 0)
		die("pipe");
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		int fd = open(in ? in : "/dev/null", O_RDONLY);
		int nul = open("/dev/null", O_WRONLY);
		if (fd < 0 || nul < 0)
			_exit(126);
		dup2(fd, STDIN_FILENO);
		dup2(out_fd ? pfd[1] : nul, STDOUT_FILENO);
		if (out_fd) {
			close(pfd[0]);
			close(pfd[1]);
		}
		execv(argv[0], argv);
		_exit(127);
	}
	if (out_fd) {
		close(pfd[1]);
		*out_fd = pfd[0];
	}
	return pid;
}

static void wait_ok(pid_t pid, const char *what)
{
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			die("waitpid");
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "bench_mqtt: %s failed\n", what);
		exit(1);
	}
}

static struct mqtt_client *client(const char *id, const struct mqtt_sub_cfg *sub)
{
	char uri[64];
	snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%s", port_s);
	struct mqtt_client_cfg cfg = { .uri = uri, .client_id = id, .keepalive_s = 30, .clean_session = true };
	const struct mqtt_callbacks cb = { .on_connection = on_connection, .on_delivered = on_delivered };
	struct mqtt_client *c = mqtt_client_new(&cfg, &cb, NULL);
	if (!c)
		die("mqtt_client_new");
	if (sub && mqtt_client_add_sub(c, sub, on_samples, NULL) != 0)
		die("mqtt_client_add_sub");
	if (mqtt_client_start(c) != 0)
		die("mqtt_client_start");
	for (int i = 0; i < 1000 && !atomic_load(&up); i++)
		usleep(5000);
	if (!atomic_load(&up))
		die("no connection to the broker");
	return c;
}

static double ingest_ours(long n, const char *file)
{
	const struct mqtt_field f[] = {
		{ .path = "bearing_temp", .sensor = 1 },
		{ .path = "process.flow", .sensor = 2 },
		{ .path = "process.pressure", .sensor = 3 },
	};
	const struct mqtt_sub_cfg s = { .name = "bench", .filter = "bench/+/in", .qos = 1,
					.format = MQTT_FMT_JSON, .ts_field = "ts", .fields = f, .n_fields = 3 };
	char id[32];
	snprintf(id, sizeof(id), "bench-in-%d", (int)getpid());
	struct mqtt_client *c = client(id, &s);
	char *pub[] = { MOSQ_PUB, "-h", "127.0.0.1", "-p", port_s, "-q", "1", "-t", "bench/p1/in", "-l", NULL };

	int64_t t0 = pdm_mono_us();
	pid_t p = spawn(pub, file, NULL);
	int64_t deadline = pdm_mono_ms() + 120000;
	while (atomic_load(&messages) < (unsigned long)n) {
		if (pdm_mono_ms() > deadline)
			die("ingest: messages missing after 120 s");
		usleep(200);
	}
	int64_t t1 = pdm_mono_us();
	wait_ok(p, "mosquitto_pub");
	struct mqtt_stats st;
	mqtt_client_stats(c, SIZE_MAX, &st);
	if (st.samples != 3 * (uint64_t)n)
		die("ingest: wrong number of samples");
	mqtt_client_free(c);
	return (double)n / ((double)(t1 - t0) / 1e6);
}

static double ingest_peer(long n, const char *file)
{
	char count[32];
	snprintf(count, sizeof(count), "%ld", n + 1);
	char *mark[] = { MOSQ_PUB, "-h", "127.0.0.1", "-p", port_s, "-q", "1", "-r", "-t", "bench/ready", "-m", "ready", NULL };
	wait_ok(spawn(mark, NULL, NULL), "mosquitto_pub (marker)");
	char *sub[] = { MOSQ_SUB, "-h", "127.0.0.1", "-p", port_s, "-q", "1", "-t", "bench/ready", "-t", "bench/+/in",
			"-C", count, NULL };
	int out;
	pid_t s = spawn(sub, NULL, &out);
	/* the retained marker arrives once the subscription is in place */
	char ch;
	do {
		if (read(out, &ch, 1) != 1)
			die("mosquitto_sub ended early");
	} while (ch != '\n');
	char *pub[] = { MOSQ_PUB, "-h", "127.0.0.1", "-p", port_s, "-q", "1", "-t", "bench/p1/in", "-l", NULL };
	int64_t t0 = pdm_mono_us();
	pid_t p = spawn(pub, file, NULL);
	char buf[65536];
	while (read(out, buf, sizeof(buf)) > 0)
		;
	close(out);
	wait_ok(s, "mosquitto_sub");
	int64_t t1 = pdm_mono_us();
	wait_ok(p, "mosquitto_pub");
	return (double)n / ((double)(t1 - t0) / 1e6);
}

static double publish_ours(long n)
{
	char id[32], msg[512];
	snprintf(id, sizeof(id), "bench-out-%d", (int)getpid());
	struct mqtt_client *c = client(id, NULL);

	int64_t t0 = pdm_mono_us();
	for (long i = 0; i < n; i++) {
		int len = snprintf(msg, sizeof(msg), ALERT_FMT, i);
		int rc;
		while ((rc = mqtt_publish(c, "bench/alerts/pump-a", msg, (size_t)len, 1, false, (uint64_t)i)) ==
		       -EAGAIN) {
			/* window full: sleep until an acknowledgement frees a slot */
			pthread_mutex_lock(&ack_lock);
			unsigned long before = atomic_load(&acked);
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 1000000;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			if (atomic_load(&acked) == before)
				pthread_cond_timedwait(&ack_cond, &ack_lock, &ts);
			pthread_mutex_unlock(&ack_lock);
		}
		if (rc != 0)
			die("mqtt_publish failed");
	}
	int64_t deadline = pdm_mono_ms() + 120000;
	while (atomic_load(&acked) < (unsigned long)n) {
		if (pdm_mono_ms() > deadline)
			die("publish: acknowledgements missing after 120 s");
		usleep(100);
	}
	int64_t t1 = pdm_mono_us();
	mqtt_client_free(c);
	return (double)n / ((double)(t1 - t0) / 1e6);
}

static double publish_peer(long n, const char *file)
{
	char *pub[] = { MOSQ_PUB, "-h", "127.0.0.1", "-p", port_s, "-q", "1", "-t", "bench/alerts/pump-a", "-l", NULL };
	int64_t t0 = pdm_mono_us();
	wait_ok(spawn(pub, file, NULL), "mosquitto_pub");
	int64_t t1 = pdm_mono_us();
	return (double)n / ((double)(t1 - t0) / 1e6);
}

int main(int argc, char **argv)
{
	if (argc != 4)
		die("usage: bench_mqtt PORT N ingest-ours|ingest-peer|publish-ours|publish-peer");
	char *end;
	long port = strtol(argv[1], &end, 10);
	if (*end || port <= 0 || port > 65535)
		die("bad port");
	long n = strtol(argv[2], &end, 10);
	if (*end || n <= 0 || n > 10000000)
		die("bad N");
	snprintf(port_s, sizeof(port_s), "%ld", port);
	pdm_log_level = LOG_WARNING;
	if (!mkdtemp(tmpdir))
		die("mkdtemp");
	char file[128];
	snprintf(file, sizeof(file), "%s/payloads", tmpdir);
	const char *mode = argv[3];
	double v;
	if (!strcmp(mode, "ingest-ours") || !strcmp(mode, "ingest-peer")) {
		write_lines(file, n, false);
		v = mode[7] == 'o' ? ingest_ours(n, file) : ingest_peer(n, file);
		printf("%s %.0f msg/s\n", mode[7] == 'o' ? "mqtt_ingest_msgs_per_s" : "mosquitto_sub_ingest_msgs_per_s", v);
	} else if (!strcmp(mode, "publish-ours")) {
		v = publish_ours(n);
		printf("mqtt_publish_qos1_msgs_per_s %.0f msg/s\n", v);
	} else if (!strcmp(mode, "publish-peer")) {
		write_lines(file, n, true);
		v = publish_peer(n, file);
		printf("mosquitto_pub_qos1_msgs_per_s %.0f msg/s\n", v);
	} else {
		die("unknown mode");
	}
	unlink(file);
	rmdir(tmpdir);
	return 0;
}
