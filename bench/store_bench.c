/*
 * store_bench.c - RW-STORE (shared/bench/REFERENCE.md) through the store
 * module: 64 sensors, --rows samples appended in time order (tick-major),
 * WAL, synchronous=NORMAL, ring capped at --keep samples.
 *
 * Prints 'name value unit' lines:
 *   store_writer_rows_per_s   through store_submit + the writer thread
 *   store_append_rows_per_s   through store_append, --batch rows per call
 *   store_read_latest64_us    median newest-64 read of a random sensor
 *   store_bytes_per_sample    database size after close / samples kept
 *   store_size_growth_10x     file size after 10 x cap / size after 1 x cap
 *   store_paced_10k_*         1,000 sensors x 10 Hz into a full ring: rate
 *                             kept up, samples dropped, largest queue
 * --no-extra skips the last two (for repeated runs).
 * bench/store.sh runs this and the raw-SQLite peer in the same run.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store.h"

#define NSENS 64
#define T0 1700000000000LL

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* CPU time of the whole process (writer thread included). */
static double cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
	       (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
}

static long fsize(const char *p)
{
	struct stat st;
	return stat(p, &st) ? 0 : (long)st.st_size;
}

static int cmpd(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static uint64_t lcg = 42;
static void fill(struct pdm_sample *v, long first, long n, const uint32_t *ids)
{
	for (long k = 0; k < n; k++) {
		long i = first + k;
		lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
		v[k].sensor = ids[i % NSENS];
		v[k].ts_ms = T0 + 100 * (i / NSENS);
		v[k].value = (double)(lcg >> 11) * (1.0 / 9007199254740992.0);
		v[k].quality = PDM_Q_GOOD;
	}
}

static char db_path[512];

/* Opens db_path; with a path, a fresh file there first. */
static struct store *open_fresh(const char *path, long keep, uint32_t *ids)
{
	char err[256], shm[600], wal[600];
	if (path) {
		snprintf(db_path, sizeof(db_path), "%s", path);
		snprintf(wal, sizeof(wal), "%s-wal", path);
		snprintf(shm, sizeof(shm), "%s-shm", path);
		unlink(path);
		unlink(wal);
		unlink(shm);
	}
	path = db_path;
	struct store_opts o;
	store_opts_default(&o);
	o.retention_ms = 0; /* the workload's timestamps are in 2023 */
	o.max_samples = keep;
	o.queue_capacity = 1 << 16;
	struct store *s = store_open(path, &o, err, sizeof(err));
	if (!s) {
		fprintf(stderr, "store_open: %s\n", err);
		exit(1);
	}
	for (int i = 0; i < NSENS; i++) {
		char name[32];
		snprintf(name, sizeof(name), "bench.s%02d", i);
		if (store_sensor_id(s, name, &ids[i]) < 0)
			exit(1);
	}
	return s;
}

int main(int argc, char **argv)
{
	long rows = 1000000, keep = 200000, batch = 1000, reads = 20000;
	double paced_s = 3;
	int extra = 1;
	const char *dir = "/var/tmp";
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--rows") && i + 1 < argc)
			rows = strtol(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--keep") && i + 1 < argc)
			keep = strtol(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
			batch = strtol(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--no-extra"))
			extra = 0;
		else if (!strcmp(argv[i], "--paced-s") && i + 1 < argc)
			paced_s = strtod(argv[++i], NULL);
		else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			dir = argv[++i];
		else {
			fprintf(stderr, "usage: %s [--rows N] [--keep N] [--batch N] [--paced-s S] [--no-extra] [--dir DIR]\n",
				argv[0]);
			return 2;
		}
	}
	if (rows <= 0 || keep <= 0 || batch <= 0)
		return 2;
	char path[512];
	snprintf(path, sizeof(path), "%s/pdm_store_bench_%d.db", dir, (int)getpid());
	uint32_t ids[NSENS];
	struct pdm_sample *v = malloc((size_t)batch * sizeof(*v));
	if (!v)
		return 1;

	/* 1. the daemon's path: submit to the queue, the writer commits. */
	struct store *s = open_fresh(path, keep, ids);
	if (store_writer_start(s) < 0)
		return 1;
	double t0 = now_s();
	for (long i = 0; i < rows; i += batch) {
		long n = rows - i < batch ? rows - i : batch;
		fill(v, i, n, ids);
		while (store_submit(s, v, (size_t)n) == -EAGAIN)
			usleep(200);
	}
	if (store_flush(s, 600000) < 0)
		return 1;
	double dt = now_s() - t0;
	struct store_stats st;
	store_stats(s, &st);
	printf("store_writer_rows_per_s %.0f rows/s\n", (double)rows / dt);
	printf("store_writer_commits %llu commits\n", (unsigned long long)st.commits);
	printf("store_rows_end %lld rows\n", (long long)st.samples_kept);
	store_close(s);

	/* 2. synchronous appends, one transaction per --batch rows, as the
	 * raw peer does; then the size at 1 x cap vs 10 x cap. */
	s = open_fresh(path, keep, ids);
	double *cms = malloc(sizeof(double) * (size_t)(rows / batch + 1));
	long nb = 0;
	t0 = now_s();
	for (long i = 0; i < rows; i += batch) {
		long n = rows - i < batch ? rows - i : batch;
		fill(v, i, n, ids);
		double tb = now_s();
		if (store_append(s, v, (size_t)n) < 0)
			return 1;
		cms[nb++] = (now_s() - tb) * 1e3;
	}
	dt = now_s() - t0;
	qsort(cms, (size_t)nb, sizeof(*cms), cmpd);
	printf("store_append_rows_per_s %.0f rows/s\n", (double)rows / dt);
	printf("store_append_commit_ms_p50 %.3f ms\n", cms[nb / 2]);
	printf("store_append_commit_ms_max %.3f ms\n", cms[nb - 1]);
	free(cms);

	/* newest 64 of a random sensor */
	double *rl = malloc(sizeof(double) * (size_t)reads);
	int64_t ts[64];
	double val[64];
	uint8_t q[64];
	uint64_t r = 7;
	long bad = 0;
	for (long k = 0; k < reads + 200; k++) {
		r = r * 6364136223846793005ULL + 1442695040888963407ULL;
		uint32_t sn = ids[(r >> 33) % NSENS];
		size_t got;
		double tr = now_s();
		if (store_read_latest(s, sn, 64, ts, val, q, &got) < 0 || got != 64)
			bad++;
		if (k >= 200)
			rl[k - 200] = (now_s() - tr) * 1e6;
	}
	qsort(rl, (size_t)reads, sizeof(*rl), cmpd);
	printf("store_read_latest64_us %.2f us\n", rl[reads / 2]);
	printf("store_read_latest64_us_p99 %.2f us\n", rl[(long)((double)reads * 0.99)]);
	free(rl);
	store_stats(s, &st);
	int64_t kept = st.samples_kept;
	store_close(s);
	long closed = fsize(path);
	printf("store_db_bytes_closed %ld bytes\n", closed);
	printf("store_bytes_per_sample %.2f bytes\n", kept ? (double)closed / (double)kept : 0.0);

	if (!extra)
		goto done;

	/* 3. growth: 1 x cap, close (checkpoint), then 9 x cap more: the file
	 * must not keep growing. */
	long size1 = 0, size10 = 0;
	for (long i = 0; i < 10 * keep;) {
		if (i == 0)
			s = open_fresh(path, keep, ids);
		else
			s = open_fresh(NULL, keep, ids);
		long end = i == 0 ? keep : 10 * keep;
		for (; i < end; i += batch) {
			fill(v, i, batch, ids);
			if (store_append(s, v, (size_t)batch) < 0)
				return 1;
		}
		store_close(s);
		if (!size1)
			size1 = fsize(path);
	}
	size10 = fsize(path);
	printf("store_db_bytes_1x_cap %ld bytes\n", size1);
	printf("store_db_bytes_10x_cap %ld bytes\n", size10);
	printf("store_size_growth_10x %.3f ratio\n", size1 ? (double)size10 / (double)size1 : 0.0);

	/* 4. the daemon's load: 1,000 sensors at 10 Hz (10k samples/s) for
	 * --paced-s seconds into a full ring, submitted every 10 ms. */
	{
		enum { PSENS = 1000 };
		uint32_t *pids = malloc(PSENS * sizeof(*pids));
		struct pdm_sample *pv = malloc(PSENS * sizeof(*pv));
		s = open_fresh(NULL, keep, ids);
		for (int i = 0; i < PSENS; i++) {
			char name[32];
			snprintf(name, sizeof(name), "paced.s%04d", i);
			if (store_sensor_id(s, name, &pids[i]) < 0)
				return 1;
		}
		int64_t tick = 0;
		for (long i = 0; i < keep + keep / 4; i += PSENS, tick++) {
			for (int k = 0; k < PSENS; k++)
				pv[k] = (struct pdm_sample){ pids[k], T0 + 100 * tick, (double)k, 0 };
			if (store_append(s, pv, PSENS) < 0)
				return 1;
		}
		if (store_writer_start(s) < 0)
			return 1;
		struct store_stats before, after;
		store_stats(s, &before);
		size_t maxq = 0;
		double tp = now_s(), next = tp, cpu0 = cpu_s();
		long ticks = (long)(paced_s * 10);
		for (long k = 0; k < ticks; k++, tick++) {
			/* each 100 ms tick delivered as ten 10 ms slices */
			for (int sl = 0; sl < 10; sl++) {
				for (int j = 0; j < PSENS / 10; j++) {
					int sn = sl * (PSENS / 10) + j;
					pv[j] = (struct pdm_sample){ pids[sn], T0 + 100 * tick, (double)sn, 0 };
				}
				store_submit(s, pv, PSENS / 10);
				store_stats(s, &after);
				if (after.queue_len > maxq)
					maxq = after.queue_len;
				next += 0.010;
				double d = next - now_s();
				if (d > 0)
					usleep((useconds_t)(d * 1e6));
			}
		}
		store_flush(s, 60000);
		double el = now_s() - tp, cpu = cpu_s() - cpu0;
		store_stats(s, &after);
		store_close(s);
		printf("store_paced_10k_rows_per_s %.0f rows/s\n",
		       (double)(after.appended - before.appended) / el);
		printf("store_paced_10k_dropped %llu samples\n",
		       (unsigned long long)(after.dropped_full - before.dropped_full +
					    after.dropped_error - before.dropped_error));
		printf("store_paced_10k_max_queue %zu samples\n", maxq);
		printf("store_paced_10k_cpu %.1f %%\n", 100.0 * cpu / el);
		printf("store_paced_10k_commits_per_s %.1f commits/s\n",
		       (double)(after.commits - before.commits) / el);
		free(pids);
		free(pv);
	}

done:;
	char aux[600];
	unlink(path);
	snprintf(aux, sizeof(aux), "%s-wal", path);
	unlink(aux);
	snprintf(aux, sizeof(aux), "%s-shm", path);
	unlink(aux);
	free(v);
	if (bad)
		fprintf(stderr, "read check: %ld bad reads\n", bad);
	return bad ? 1 : 0;
}
