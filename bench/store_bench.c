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
 * bench/store.sh runs this and the raw-SQLite peer in the same run.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
	const char *dir = "/var/tmp";
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--rows") && i + 1 < argc)
			rows = strtol(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--keep") && i + 1 < argc)
			keep = strtol(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
			batch = strtol(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			dir = argv[++i];
		else {
			fprintf(stderr, "usage: %s [--rows N] [--keep N] [--batch N] [--dir DIR]\n",
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
