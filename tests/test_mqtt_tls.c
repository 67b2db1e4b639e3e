/*
 * test_mqtt_tls.c - TLS and authentication against a real mosquitto.
 *
 * The test makes its own PKI with openssl (a CA, a server certificate for
 * 127.0.0.1 / localhost, a client certificate, and an unrelated CA), a
 * mosquitto password file with mosquitto_passwd, and a broker with two TLS
 * listeners (one requiring client certificates) and anonymous access off.
 * Every log line is captured: the password must never appear in one.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"
#include "mqtt_client.h"
#include "pdm_time.h"
#include "test_broker.h"
#include "test_util.h"

#define USER "pdmd"
#define PASSWORD "Tr1cky-s3cret/pw"
#define WRONG_PASSWORD "Wr0ng-s3cret/pw"

struct logcap {
	pthread_mutex_t lock;
	char text[64 * 1024];
	size_t len;
};

static struct logcap logs = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void log_sink(int prio, const char *msg, void *user)
{
	(void)prio;
	(void)user;
	pthread_mutex_lock(&logs.lock);
	size_t n = strlen(msg);
	if (logs.len + n + 2 < sizeof(logs.text)) {
		memcpy(logs.text + logs.len, msg, n);
		logs.len += n;
		logs.text[logs.len++] = '\n';
		logs.text[logs.len] = '\0';
	}
	pthread_mutex_unlock(&logs.lock);
}

static bool logs_contain(const char *s)
{
	pthread_mutex_lock(&logs.lock);
	bool r = strstr(logs.text, s) != NULL;
	pthread_mutex_unlock(&logs.lock);
	return r;
}

static void logs_clear(void)
{
	pthread_mutex_lock(&logs.lock);
	logs.len = 0;
	logs.text[0] = '\0';
	pthread_mutex_unlock(&logs.lock);
}

struct env {
	struct test_broker b;
	char pki[256];
	int tls_port, mtls_port, wrong_port;
	char tls_uri[64], mtls_uri[64], tls_uri_name[64], wrong_uri[64];
	char ca[300], other_ca[300], cert[300], key[300], pwfile[300];
};

static struct env *E;

struct state {
	pthread_mutex_t lock;
	int ups;
	int acked;
	size_t samples;
	double last;
};

static void on_connection(bool up, void *user)
{
	struct state *s = user;
	pthread_mutex_lock(&s->lock);
	s->ups += up;
	pthread_mutex_unlock(&s->lock);
}

static void on_delivered(uint64_t tag, int rc, void *user)
{
	struct state *s = user;
	pthread_mutex_lock(&s->lock);
	if (rc == 0 && tag == 77)
		s->acked++;
	pthread_mutex_unlock(&s->lock);
}

static void on_samples(const struct pdm_sample *smp, size_t n, void *user)
{
	struct state *s = user;
	pthread_mutex_lock(&s->lock);
	s->samples += n;
	s->last = smp[n - 1].value;
	pthread_mutex_unlock(&s->lock);
}

static int get(struct state *s, int *field)
{
	pthread_mutex_lock(&s->lock);
	int v = *field;
	pthread_mutex_unlock(&s->lock);
	return v;
}

static size_t n_samples(struct state *s)
{
	pthread_mutex_lock(&s->lock);
	size_t n = s->samples;
	pthread_mutex_unlock(&s->lock);
	return n;
}

static const struct mqtt_callbacks cbs = { .on_connection = on_connection, .on_delivered = on_delivered };

static int sh(const char *dir, const char *cmd)
{
	char full[2048], out[4096];
	snprintf(full, sizeof(full), "cd '%s' && %s", dir, cmd);
	char *argv[] = { "/bin/sh", "-c", full, NULL };
	int rc = test_run(argv, out, sizeof(out));
	if (rc != 0)
		fprintf(stderr, "# '%s' failed (%d): %s\n", cmd, rc, out);
	return rc;
}

#define EC "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"

static int make_pki(const char *d)
{
	const char *cmds[] = {
		"openssl req -x509 " EC " -keyout ca.key -out ca.crt -subj /CN=pdm-test-ca -days 2",
		"openssl req -x509 " EC " -keyout other.key -out other.crt -subj /CN=pdm-other-ca -days 2",
		"printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > srv.ext",
		"openssl req " EC " -keyout srv.key -out srv.csr -subj /CN=localhost",
		"openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out srv.crt -days 2 "
		"-extfile srv.ext",
		"printf 'subjectAltName=DNS:other.example\\n' > wrong.ext",
		"openssl req " EC " -keyout wrong.key -out wrong.csr -subj /CN=other.example",
		"openssl x509 -req -in wrong.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out wrong.crt -days 2 "
		"-extfile wrong.ext",
		"openssl req " EC " -keyout cli.key -out cli.csr -subj /CN=pdm-client",
		"openssl x509 -req -in cli.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out cli.crt -days 2",
		"touch passwd && chmod 0600 passwd && mosquitto_passwd -b passwd " USER " '" PASSWORD "'",
		"printf '%s\\n' '" PASSWORD "' > pw && chmod 0600 pw",
		"chmod 0644 *.crt *.key",
	};
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (sh(d, cmds[i]) != 0)
			return -1;
	return 0;
}

static int group_setup(void **state)
{
	(void)state;
	E = calloc(1, sizeof(*E));
	if (!E || test_mkdtemp(E->pki, sizeof(E->pki)) != 0)
		return -1;
	chmod(E->pki, 0755); /* mosquitto may run as another user */
	if (make_pki(E->pki) != 0)
		return -1;
	snprintf(E->ca, sizeof(E->ca), "%s/ca.crt", E->pki);
	snprintf(E->other_ca, sizeof(E->other_ca), "%s/other.crt", E->pki);
	snprintf(E->cert, sizeof(E->cert), "%s/cli.crt", E->pki);
	snprintf(E->key, sizeof(E->key), "%s/cli.key", E->pki);
	snprintf(E->pwfile, sizeof(E->pwfile), "%s/pw", E->pki);

	for (int attempt = 0; attempt < 5; attempt++) {
		E->tls_port = test_free_port();
		E->mtls_port = test_free_port();
		E->wrong_port = test_free_port();
		if (E->tls_port == E->mtls_port || E->wrong_port == E->tls_port || E->wrong_port == E->mtls_port)
			continue;
		const char *d = E->pki;
		int len = snprintf(E->b.extra, sizeof(E->b.extra),
			 "%s"
			 "per_listener_settings false\n"
			 "allow_anonymous false\n"
			 "password_file %s/passwd\n"
			 "listener %d 127.0.0.1\n"
			 "cafile %s/ca.crt\ncertfile %s/srv.crt\nkeyfile %s/srv.key\n"
			 "listener %d 127.0.0.1\n"
			 "cafile %s/ca.crt\ncertfile %s/srv.crt\nkeyfile %s/srv.key\n"
			 "require_certificate true\n"
			 "listener %d 127.0.0.1\n"
			 "cafile %s/ca.crt\ncertfile %s/wrong.crt\nkeyfile %s/wrong.key\n",
			 geteuid() == 0 ? "user root\n" : "", d, E->tls_port, d, d, d, E->mtls_port, d, d, d,
			 E->wrong_port, d, d, d);
		if (len < 0 || (size_t)len >= sizeof(E->b.extra))
			return -1; /* TMPDIR too long for the broker config */
		if (test_broker_start(&E->b) == 0 && test_wait_port(E->tls_port, 2000) == 0 &&
		    test_wait_port(E->mtls_port, 2000) == 0 && test_wait_port(E->wrong_port, 2000) == 0)
			break;
		test_broker_stop(&E->b);
		E->b.pid = 0;
	}
	if (!E->b.pid)
		return -1;
	snprintf(E->tls_uri, sizeof(E->tls_uri), "ssl://127.0.0.1:%d", E->tls_port);
	snprintf(E->tls_uri_name, sizeof(E->tls_uri_name), "mqtts://localhost:%d", E->tls_port);
	snprintf(E->mtls_uri, sizeof(E->mtls_uri), "ssl://127.0.0.1:%d", E->mtls_port);
	snprintf(E->wrong_uri, sizeof(E->wrong_uri), "ssl://127.0.0.1:%d", E->wrong_port);
	pdm_log_level = LOG_DEBUG;
	pdm_log_set_sink(log_sink, NULL);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	pdm_log_set_sink(NULL, NULL);
	if (E) {
		test_broker_stop(&E->b);
		if (E->pki[0])
			test_rmtree(E->pki);
		free(E);
		E = NULL;
	}
	return 0;
}

#define WAIT_UNTIL(cond, timeout_ms) \
	do { \
		int64_t until_ = pdm_mono_ms() + (timeout_ms); \
		while (!(cond)) { \
			if (pdm_mono_ms() > until_) \
				fail_msg("timed out waiting for: %s", #cond); \
			test_sleep_ms(10); \
		} \
	} while (0)

static struct mqtt_client_cfg tls_cfg(const char *uri, const char *id, const char *password)
{
	struct mqtt_client_cfg cfg = {
		.uri = uri, .client_id = id, .username = USER, .password = password, .ca_file = E->ca,
		.keepalive_s = 5, .max_inflight = 8, .backoff_min_ms = 100, .backoff_max_ms = 400,
	};
	return cfg;
}

/* Connects, subscribes and publishes through the TLS listener. */
static void round_trip(struct mqtt_client_cfg *cfg)
{
	struct state st = { .lock = PTHREAD_MUTEX_INITIALIZER };
	const struct mqtt_field vf = { .path = NULL, .sensor = 1 };
	const struct mqtt_sub_cfg vs = { .name = "tls", .filter = "tls/#", .qos = 1, .format = MQTT_FMT_VALUE,
					 .fields = &vf, .n_fields = 1 };
	struct mqtt_client *c = mqtt_client_new(cfg, &cbs, &st);
	assert_non_null(c);
	assert_int_equal(mqtt_client_add_sub(c, &vs, on_samples, &st), 0);
	assert_int_equal(mqtt_client_start(c), 0);
	WAIT_UNTIL(get(&st, &st.ups) == 1, 10000);
	assert_int_equal(mqtt_publish(c, "tls/x", "42.5", 4, 1, false, 77), 0);
	WAIT_UNTIL(get(&st, &st.acked) == 1, 5000);
	WAIT_UNTIL(n_samples(&st) == 1, 5000);
	assert_true(st.last == 42.5);
	assert_int_equal(mqtt_client_stop(c, 2000), 0);
	mqtt_client_free(c);
}

/* True if every address "localhost" resolves to is 127.0.0.1 or ::1. */
static bool localhost_is_loopback(void)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res, *ai;
	bool ok;

	if (getaddrinfo("localhost", NULL, &hints, &res) != 0)
		return false;
	ok = res != NULL;
	for (ai = res; ai; ai = ai->ai_next) {
		if (ai->ai_family == AF_INET) {
			const struct sockaddr_in *in = (const void *)ai->ai_addr;
			ok = ok && ntohl(in->sin_addr.s_addr) == INADDR_LOOPBACK;
		} else if (ai->ai_family == AF_INET6) {
			const struct sockaddr_in6 *in6 = (const void *)ai->ai_addr;
			ok = ok && IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
		} else {
			ok = false;
		}
	}
	freeaddrinfo(res);
	return ok;
}

/* ca_file + username + password read from its file: works, and the
 * password appears in no log line even at debug level. */
static void test_tls_password_ok(void **state)
{
	(void)state;
	char pw[128];
	logs_clear();
	assert_int_equal(mqtt_read_password_file(E->pwfile, pw, sizeof(pw)), 0);
	assert_string_equal(pw, PASSWORD);
	struct mqtt_client_cfg cfg = tls_cfg(E->tls_uri, "pdm-tls-ok", pw);
	round_trip(&cfg);
	/* the certificate names localhost too: host name verification passes
	 * (where localhost is a loopback name: a bare debootstrap root has no
	 * /etc/hosts, and no other address is ever used) */
	if (localhost_is_loopback()) {
		cfg = tls_cfg(E->tls_uri_name, "pdm-tls-name", pw);
		round_trip(&cfg);
	} else {
		printf("# localhost does not resolve to loopback here (no /etc/hosts entry?): "
		       "host name verification by name not checked\n");
	}
	assert_true(logs_contain("connected to ssl://"));
	assert_false(logs_contain(PASSWORD));
}

/* A wrong password: refused with a clear error, retried, never logged. */
static void test_tls_wrong_password(void **state)
{
	(void)state;
	struct state st = { .lock = PTHREAD_MUTEX_INITIALIZER };
	logs_clear();
	struct mqtt_client_cfg cfg = tls_cfg(E->tls_uri, "pdm-tls-bad", WRONG_PASSWORD);
	struct mqtt_client *c = mqtt_client_new(&cfg, &cbs, &st);
	assert_non_null(c);
	assert_int_equal(mqtt_client_start(c), 0);
	WAIT_UNTIL(logs_contain("refused the connection"), 10000);
	assert_true(logs_contain("password_file"));
	assert_int_equal(get(&st, &st.ups), 0);
	assert_int_equal(mqtt_publish(c, "tls/x", "1", 1, 1, false, 1), -ENOTCONN);
	assert_int_equal(mqtt_client_stop(c, 1000), 0);
	mqtt_client_free(c);
	assert_false(logs_contain(WRONG_PASSWORD));
	assert_false(logs_contain(PASSWORD));
}

/* A server certificate from a CA we do not trust: TLS fails, logged. */
static void test_tls_untrusted_server(void **state)
{
	(void)state;
	struct state st = { .lock = PTHREAD_MUTEX_INITIALIZER };
	logs_clear();
	struct mqtt_client_cfg cfg = tls_cfg(E->tls_uri, "pdm-tls-untrusted", PASSWORD);
	cfg.ca_file = E->other_ca;
	struct mqtt_client *c = mqtt_client_new(&cfg, &cbs, &st);
	assert_non_null(c);
	assert_int_equal(mqtt_client_start(c), 0);
	WAIT_UNTIL(logs_contain("TLS:") && logs_contain("cannot connect"), 10000);
	assert_true(logs_contain("certificate verify failed"));
	assert_int_equal(get(&st, &st.ups), 0);
	mqtt_client_stop(c, 1000);
	mqtt_client_free(c);
	assert_false(logs_contain(PASSWORD));
}

/* A certificate from our CA but for another host name: refused, so a
 * stolen certificate of another machine cannot impersonate the broker. */
static void test_tls_wrong_host_name(void **state)
{
	(void)state;
	struct state st = { .lock = PTHREAD_MUTEX_INITIALIZER };
	logs_clear();
	struct mqtt_client_cfg cfg = tls_cfg(E->wrong_uri, "pdm-tls-wrongname", PASSWORD);
	struct mqtt_client *c = mqtt_client_new(&cfg, &cbs, &st);
	assert_non_null(c);
	assert_int_equal(mqtt_client_start(c), 0);
	WAIT_UNTIL(logs_contain("mqtt[pdm-tls-wrongname]: cannot connect"), 10000);
	assert_true(logs_contain("certificate names this host"));
	test_sleep_ms(300);
	assert_int_equal(get(&st, &st.ups), 0);
	mqtt_client_stop(c, 1000);
	mqtt_client_free(c);
	assert_false(logs_contain(PASSWORD));
}

/* A listener requiring client certificates: works with cert + key, is
 * refused without. */
static void test_tls_client_cert(void **state)
{
	(void)state;
	logs_clear();
	struct mqtt_client_cfg cfg = tls_cfg(E->mtls_uri, "pdm-mtls", PASSWORD);
	cfg.cert_file = E->cert;
	cfg.key_file = E->key;
	round_trip(&cfg);

	struct state st = { .lock = PTHREAD_MUTEX_INITIALIZER };
	cfg = tls_cfg(E->mtls_uri, "pdm-mtls-nocert", PASSWORD);
	struct mqtt_client *c = mqtt_client_new(&cfg, &cbs, &st);
	assert_non_null(c);
	assert_int_equal(mqtt_client_start(c), 0);
	WAIT_UNTIL(logs_contain("mqtt[pdm-mtls-nocert]: cannot connect"), 10000);
	assert_int_equal(get(&st, &st.ups), 0);
	mqtt_client_stop(c, 1000);
	mqtt_client_free(c);
	assert_false(logs_contain(PASSWORD));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tls_password_ok),
		cmocka_unit_test(test_tls_wrong_password),
		cmocka_unit_test(test_tls_untrusted_server),
		cmocka_unit_test(test_tls_wrong_host_name),
		cmocka_unit_test(test_tls_client_cert),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
