/*
 * test_store_crash.c - kill -9 at random moments never loses a commit.
 *
 * A child process writes sample batches through the writer thread and,
 * every few batches, raises an alert (episode number + state + outbox row
 * in one transaction). After each store_flush / commit returns it reports
 * the batch (or the episode number) to the parent over a pipe. The parent
 * SIGKILLs it at a random moment - during open, mid-batch, mid-commit - 60
 * times, and after every kill checks PRAGMA integrity_check and that
 * everything the child reported is in the database; episode numbers must
 * keep increasing across the kills.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"
#include "pdm_time.h"
#include "store.h"
#include "test_util.h"

#define KILLS 60
#define BATCH 64
#define NSENS 4
#define T0 1700000000000LL

/* Messages on the pipe: batch b committed, or episode seq committed. */
struct report {
	uint32_t kind; /* 1 batch, 2 episode */
	uint32_t pad;
	int64_t value;
};

static void write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n > 0) {
		ssize_t w = write(fd, c, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			_exit(3);
		c += w;
		n -= (size_t)w;
	}
}

static int64_t batch_ts(int round, int64_t b, int k)
{
	return T0 + (int64_t)round * 100000000LL + b * BATCH + k;
}

static void child(const char *path, int round, int fd)
{
	struct store_opts o;
	store_opts_default(&o);
	o.retention_ms = 0;
	o.max_samples = 0;
	o.check = STORE_CHECK_QUICK;
	char err[256];
	struct store *s = store_open(path, &o, err, sizeof(err));
	if (!s)
		_exit(2);
	uint32_t ids[NSENS];
	for (int i = 0; i < NSENS; i++) {
		char name[32];
		snprintf(name, sizeof(name), "crash.s%d", i);
		if (store_sensor_id(s, name, &ids[i]) < 0)
			_exit(2);
	}
	if (store_writer_start(s) < 0)
		_exit(2);
	struct pdm_sample v[BATCH];
	for (int64_t b = 0; b < 100000; b++) {
		for (int k = 0; k < BATCH; k++) {
			v[k].sensor = ids[k % NSENS];
			v[k].ts_ms = batch_ts(round, b, k);
			v[k].value = (double)b;
			v[k].quality = 0;
		}
		if (store_submit(s, v, BATCH) < 0 || store_flush(s, 10000) < 0)
			_exit(4);
		struct report r = { 1, 0, b };
		write_all(fd, &r, sizeof(r));
		if (b % 5 == 4) {
			uint64_t seq;
			char payload[64];
			if (store_txn_begin(s) < 0 || store_episode_next(s, "crash", &seq) < 0)
				_exit(5);
			snprintf(payload, sizeof(payload), "{\"id\":\"crash-%llu\"}",
				 (unsigned long long)seq);
			if (store_alert_commit(s, "crash", "state", payload, "pdm/alerts/crash",
					       payload, NULL) < 0 ||
			    store_txn_commit(s) < 0)
				_exit(5);
			struct report e = { 2, 0, (int64_t)seq };
			write_all(fd, &e, sizeof(e));
		}
	}
	_exit(0);
}

static int64_t q1(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	int64_t v = -1;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static void test_kill9(void **state)
{
	(void)state;
	char dir[256], path[300];
	assert_int_equal(test_mkdtemp(dir, sizeof(dir)), 0);
	snprintf(path, sizeof(path), "%s/samples.db", dir);
	pdm_log_level = LOG_ERR;
	unsigned seed = (unsigned)pdm_mono_us();
	print_message("# seed %u\n", seed);
	srand(seed);
	int64_t last_seq = 0, total_batches = 0, total_episodes = 0;
	int mid_write_kills = 0;

	for (int round = 0; round < KILLS; round++) {
		int pfd[2];
		assert_int_equal(pipe(pfd), 0);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(pfd[0]);
			child(path, round, pfd[1]);
		}
		close(pfd[1]);
		/* Even rounds: kill 0-60 ms after the fork, often while the
		 * child opens the database. Odd rounds: 0-40 ms after its
		 * first commit, while it writes. */
		bool after_first = round % 2 == 1;
		int64_t delay = after_first ? rand() % 40 : rand() % 60;
		int64_t deadline = after_first ? pdm_mono_ms() + 20000 : pdm_mono_ms() + delay;
		int64_t max_batch = -1, n_batches = 0;
		struct report r;
		size_t have = 0;
		char *buf = (char *)&r;
		bool killed = false;
		for (;;) {
			int64_t left = deadline - pdm_mono_ms();
			if (!killed && left <= 0) {
				kill(pid, SIGKILL);
				killed = true;
			}
			struct pollfd p = { pfd[0], POLLIN, 0 };
			int pr = poll(&p, 1, killed ? 1000 : (int)(left > 0 ? left : 0));
			if (pr == 0)
				continue;
			ssize_t n = read(pfd[0], buf + have, sizeof(r) - have);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break; /* the child is gone and the pipe drained */
			have += (size_t)n;
			if (have < sizeof(r))
				continue;
			have = 0;
			if (r.kind == 1) {
				if (after_first && n_batches == 0)
					deadline = pdm_mono_ms() + delay;
				assert_int_equal(r.value, max_batch + 1);
				max_batch = r.value;
				n_batches++;
			} else {
				assert_int_equal(r.kind, 2);
				assert_true(r.value > last_seq);
				last_seq = r.value;
				total_episodes++;
			}
		}
		close(pfd[0]);
		int status;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		/* The child must have been killed, not failed by itself. */
		assert_true(WIFSIGNALED(status));
		assert_int_equal(WTERMSIG(status), SIGKILL);
		total_batches += n_batches;
		if (n_batches > 0)
			mid_write_kills++;

		sqlite3 *db;
		if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
			/* Killed before the file was created. */
			assert_int_equal(n_batches, 0);
			sqlite3_close(db);
			continue;
		}
		sqlite3_busy_timeout(db, 5000);
		sqlite3_stmt *st;
		assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL),
				 SQLITE_OK);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
		sqlite3_finalize(st);
		if (n_batches > 0) {
			char sql[160];
			snprintf(sql, sizeof(sql),
				 "SELECT count(*) FROM samples_v WHERE ts >= %lld AND ts < %lld",
				 (long long)batch_ts(round, 0, 0),
				 (long long)batch_ts(round, max_batch + 1, 0));
			assert_int_equal(q1(db, sql), (max_batch + 1) * BATCH);
		}
		if (last_seq > 0) {
			int64_t seq = q1(db, "SELECT seq FROM episodes WHERE asset='crash'");
			assert_true(seq >= last_seq);
			char sql[160];
			snprintf(sql, sizeof(sql),
				 "SELECT count(*) FROM outbox WHERE payload = '{\"id\":\"crash-%lld\"}'",
				 (long long)last_seq);
			assert_int_equal(q1(db, sql), 1);
		}
		sqlite3_close(db);
	}
	print_message("# %d kills, %d while writing, %lld batches and %lld episodes confirmed\n",
		      KILLS, mid_write_kills, (long long)total_batches, (long long)total_episodes);
	/* The test is only meaningful if most kills hit a writing child. */
	assert_true(mid_write_kills >= KILLS / 2);
	assert_true(total_episodes > 0);

	/* The store itself opens the survivor cleanly, without moving it. */
	struct store_opts o;
	store_opts_default(&o);
	o.check = STORE_CHECK_FULL;
	char err[256];
	struct store *s = store_open(path, &o, err, sizeof(err));
	assert_non_null(s);
	assert_null(store_moved_aside(s));
	uint64_t seq;
	assert_int_equal(store_episode_next(s, "crash", &seq), 0);
	assert_true((int64_t)seq > last_seq);
	store_close(s);
	test_rmtree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kill9),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
