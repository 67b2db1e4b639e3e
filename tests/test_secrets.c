/*
 * test_secrets.c - the MQTT password never leaves its file: the real pdmd
 * against a mosquitto that requires a user name and password.
 *
 * With log_level = debug, through `pdmd check`, a successful connection, a
 * refused one (wrong password: the daemon must say so clearly) and every
 * refused configuration, the password must appear in no output, no log and
 * no file of the state directory. Password files that others can read,
 * that the group can change or that are not regular files make both
 * `pdmd check` and `pdmd run` exit with 78, naming file:line and the fix.
 * SIGTERM stops the daemon cleanly (exit 0) even with OpenBLAS's thread
 * pool started, as it is under systemd.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "test_broker.h"
#include "test_util.h"

#define USER "pdm-sec"
/* Distinctive, so that any appearance is a leak and not a coincidence. */
#define PW_GOOD "Vq7pdm-S3cret-Zx9wLk"
#define PW_BAD "Wr0ng-pdmGuess-Kd4tHm"

static struct test_broker broker;
static char dir[256], confdir[300], statedir[300], logpath[300], pwpath[350];
/* every byte pdmd wrote to stdout/stderr in this run, for the final scan */
static char *seen;
static size_t seen_len;

static const char *pdmd(void)
{
	const char *p = getenv("PDMD");
	return p ? p : "./daemon/pdmd";
}

static void remember(const char *text)
{
	size_t n = strlen(text);
	seen = realloc(seen, seen_len + n + 1);
	assert_non_null(seen);
	memcpy(seen + seen_len, text, n + 1);
	seen_len += n;
}

static void assert_no_secret(const char *text, const char *what)
{
	if (strstr(text, PW_GOOD) || strstr(text, PW_BAD))
		fail_msg("the password appears in %s:\n%s", what, text);
}

/* `pdmd CMD -c confdir` to completion; output into out (and remembered). */
static int run_cmd(const char *cmd, char *out, size_t len)
{
	char *argv[] = {(char *)pdmd(), (char *)cmd, "-c", confdir, NULL};
	int rc = test_run(argv, out, len);
	remember(out);
	assert_no_secret(out, cmd);
	return rc;
}

static void write_config(const char *uri_override)
{
	char text[2048], uri[256];
	snprintf(uri, sizeof(uri), "%s", uri_override ? uri_override : broker.uri);
	snprintf(text, sizeof(text),
		 "[daemon]\nstate_dir = %s\nlog_level = debug\n\n"
		 "[mqtt]\nuri = %s\nclient_id = pdmd-sec\nusername = " USER "\n"
		 "password_file = mqtt-password\ntopic_prefix = pdmsec\n\n" /* line 9 */
		 "[source feed]\ntype = mqtt\ntopic = pdmsec-in/#\n\n"
		 "[asset a]\n[sensor a.x]\nsource = feed\n",
		 statedir, uri);
	assert_int_equal(test_write_file(confdir, "pdmd.conf", text), 0);
}

static void write_password(const char *pw, mode_t mode)
{
	char text[128];
	snprintf(text, sizeof(text), "%s\n", pw);
	assert_int_equal(test_write_file(confdir, "mqtt-password", text), 0);
	assert_int_equal(chmod(pwpath, mode), 0);
}

static pid_t start_daemon(void)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0600);
		dup2(fd, 2);
		dup2(fd, 1);
		/* As under systemd: OpenBLAS starts its thread pool, which must
		 * not take the SIGTERM below. */
		unsetenv("OPENBLAS_NUM_THREADS");
		execl(pdmd(), "pdmd", "run", "-c", confdir, (char *)NULL);
		_exit(127);
	}
	return pid;
}

static int wait_exit(pid_t pid, int timeout_ms)
{
	int64_t end = test_mono_ms() + timeout_ms;
	int st;
	do {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		test_sleep_ms(20);
	} while (test_mono_ms() < end);
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -1;
}

static bool log_has(const char *needle, int timeout_ms)
{
	return test_file_has(logpath, needle, timeout_ms, 50);
}

static int leaks;

static int scan_file(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (type != FTW_F)
		return 0;
	size_t n;
	char *buf = test_read_file(path, &n);
	if (buf &&
	    (memmem(buf, n, PW_GOOD, strlen(PW_GOOD)) || memmem(buf, n, PW_BAD, strlen(PW_BAD)))) {
		fprintf(stderr, "# the password is in %s\n", path);
		leaks++;
	}
	free(buf);
	return 0;
}

/* ---- tests ---------------------------------------------------------------- */

static int group_setup(void **state)
{
	char out[4096], passwd[350];
	(void)state;

	if (test_mkdtemp(dir, sizeof(dir)) != 0)
		return -1;
	snprintf(confdir, sizeof(confdir), "%s/conf", dir);
	snprintf(statedir, sizeof(statedir), "%s/state", dir);
	snprintf(logpath, sizeof(logpath), "%s/pdmd.log", dir);
	snprintf(pwpath, sizeof(pwpath), "%s/mqtt-password", confdir);
	snprintf(passwd, sizeof(passwd), "%s/passwd", dir);
	if (mkdir(confdir, 0700) != 0)
		return -1;
	int fd = open(passwd, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return -1;
	close(fd);
	char *mp[] = {"/usr/bin/mosquitto_passwd", "-b", passwd, USER, PW_GOOD, NULL};
	if (test_run(mp, out, sizeof(out)) != 0) {
		fprintf(stderr, "# mosquitto_passwd: %s\n", out);
		return -1;
	}
	snprintf(broker.extra, sizeof(broker.extra),
		 "per_listener_settings false\nallow_anonymous false\npassword_file %s\n", passwd);
	return test_broker_start(&broker) == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	test_broker_stop(&broker);
	if (dir[0])
		test_rmtree(dir);
	free(seen);
	return 0;
}

/* `pdmd check` shows where the password is, never what it is. */
static void test_check_shows_no_secret(void **state)
{
	char out[65536], want[400];
	(void)state;

	write_config(NULL);
	write_password(PW_GOOD, 0600);
	assert_int_equal(run_cmd("check", out, sizeof(out)), 0);
	snprintf(want, sizeof(want), "password_file = %s\n", pwpath);
	assert_non_null(strstr(out, want));
	assert_non_null(strstr(out, "configuration OK"));
}

/* The right password: connected, at debug level, and stopped cleanly. */
static void test_run_connects(void **state)
{
	(void)state;
	write_config(NULL);
	write_password(PW_GOOD, 0600);
	pid_t pid = start_daemon();
	bool up = log_has("mqtt[pdmd-sec]: connected to", 15000);
	kill(pid, SIGTERM);
	assert_int_equal(wait_exit(pid, 15000), 0);
	assert_true(up);
	assert_true(log_has("<7>", 0)); /* debug messages were on */
}

/* A wrong password: refused by the broker, and the daemon says so clearly. */
static void test_run_wrong_password(void **state)
{
	(void)state;
	write_config(NULL);
	write_password(PW_BAD, 0600);
	pid_t pid = start_daemon();
	bool said = log_has("refused the connection: not authorized (check username and "
			    "password_file",
			    15000) ||
		    log_has("refused the connection: bad user name or password", 0);
	kill(pid, SIGTERM);
	assert_int_equal(wait_exit(pid, 15000), 0);
	assert_true(said);
}

/* Loose password files: 78 from check and run, with file:line and the fix. */
static void test_loose_password_file_exits_78(void **state)
{
	char out[65536], want[1024], link[400];
	(void)state;

	write_config(NULL);
	static const struct {
		mode_t mode;
		const char *why;
	} bad[] = {
	    {0644, "has mode 0644: any user can access it; run chmod 600"},
	    {0604, "has mode 0604: any user can access it; run chmod 600"},
	    {0660, "has mode 0660: its group can change it; run chmod 600"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_password(PW_GOOD, bad[i].mode);
		snprintf(want, sizeof(want), "%s/pdmd.conf:9: password_file: %s %s", confdir,
			 pwpath, bad[i].why);
		assert_int_equal(run_cmd("check", out, sizeof(out)), EX_CONFIG);
		if (!strstr(out, want))
			fail_msg("expected\n  %s\nin\n%s", want, out);
		assert_int_equal(run_cmd("run", out, sizeof(out)), EX_CONFIG);
		assert_non_null(strstr(out, want));
	}
	/* group read is for a group only pdmd is in (chown root:pdmd) */
	write_password(PW_GOOD, 0640);
	assert_int_equal(run_cmd("check", out, sizeof(out)), 0);

	/* a symlink to a loose file, and a symlink to a directory */
	snprintf(link, sizeof(link), "%s/elsewhere", dir);
	write_password(PW_GOOD, 0644);
	assert_int_equal(rename(pwpath, link), 0);
	assert_int_equal(symlink(link, pwpath), 0);
	assert_int_equal(run_cmd("check", out, sizeof(out)), EX_CONFIG);
	assert_non_null(strstr(out, "password_file: "));
	assert_non_null(strstr(out, "has mode 0644"));
	assert_int_equal(run_cmd("run", out, sizeof(out)), EX_CONFIG);
	assert_int_equal(chmod(link, 0600), 0);
	assert_int_equal(run_cmd("check", out, sizeof(out)), 0);
	assert_int_equal(unlink(pwpath), 0);
	assert_int_equal(symlink(dir, pwpath), 0);
	assert_int_equal(run_cmd("check", out, sizeof(out)), EX_CONFIG);
	assert_non_null(strstr(out, "is not a regular file"));
	assert_int_equal(run_cmd("run", out, sizeof(out)), EX_CONFIG);
	assert_int_equal(unlink(pwpath), 0);
	unlink(link);
}

/* Credentials in the broker URI are refused without being echoed. */
static void test_uri_with_password_exits_78(void **state)
{
	char out[65536], uri[256];
	(void)state;

	snprintf(uri, sizeof(uri), "tcp://" USER ":" PW_GOOD "@127.0.0.1:%d", broker.port);
	write_config(uri);
	write_password(PW_GOOD, 0600);
	char *argv[] = {(char *)pdmd(), "check", "-c", confdir, NULL};
	assert_int_equal(test_run(argv, out, sizeof(out)), EX_CONFIG);
	assert_non_null(
	    strstr(out, "pdmd.conf:6: uri: a user or password in the URI is not allowed"));
	assert_no_secret(out, "check");
	argv[1] = "run";
	assert_int_equal(test_run(argv, out, sizeof(out)), EX_CONFIG);
	assert_no_secret(out, "run");
	write_config(NULL);
}

/* Last: nothing pdmd printed, logged or stored holds the password. */
static void test_no_secret_anywhere(void **state)
{
	size_t n;
	(void)state;

	char *log = test_read_file(logpath, &n);
	assert_non_null(log);
	assert_true(n > 0);
	assert_null(memmem(log, n, PW_GOOD, strlen(PW_GOOD)));
	assert_null(memmem(log, n, PW_BAD, strlen(PW_BAD)));
	free(log);
	assert_non_null(seen);
	assert_null(strstr(seen, PW_GOOD));
	assert_null(strstr(seen, PW_BAD));
	/* the state directory (database, status files) was written */
	leaks = 0;
	assert_int_equal(nftw(statedir, scan_file, 16, FTW_PHYS), 0);
	assert_int_equal(leaks, 0);
	char db[400];
	snprintf(db, sizeof(db), "%s/samples.db", statedir);
	assert_int_equal(access(db, F_OK), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_check_shows_no_secret),
	    cmocka_unit_test(test_run_connects),
	    cmocka_unit_test(test_run_wrong_password),
	    cmocka_unit_test(test_loose_password_file_exits_78),
	    cmocka_unit_test(test_uri_with_password_exits_78),
	    cmocka_unit_test(test_no_secret_anywhere),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
