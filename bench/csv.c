/*
 * bench/csv.c - throughput of the CSV reader behind `pdmd replay`.
 *
 * Writes two synthetic exports into a temporary directory (a ',' file with
 * epoch-ms times, and a SKAB-like ';' file with ISO times and decimal
 * commas), reads each completely (median of 3 runs), then runs the Python
 * csv-module peer (bench/csv_peer.py) over the same files in the same run and
 * prints the ratio. Output: `name value unit` lines.
 *
 *   csv_bench [--rows N] [--peer PATH/csv_peer.py]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "csv.h"

#define NCOLS 10

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int write_file(const char *path, long rows, int semicolon)
{
	FILE *f = fopen(path, "w");
	unsigned seed = 1;

	if (!f)
		return -errno;
	fputs(semicolon ? "datetime" : "ts_ms", f);
	for (int c = 0; c < NCOLS; c++)
		fprintf(f, "%cSensor %d", semicolon ? ';' : ',', c);
	fputs(semicolon ? "\r\n" : "\n", f);
	for (long i = 0; i < rows; i++) {
		long long ts = 1767225600000LL + i * 1000;
		if (semicolon) {
			time_t t = (time_t)(ts / 1000);
			struct tm tm;
			gmtime_r(&t, &tm);
			fprintf(f, "%04d-%02d-%02d %02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
				tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
		} else {
			fprintf(f, "%lld", ts);
		}
		for (int c = 0; c < NCOLS; c++) {
			seed = seed * 1103515245u + 12345u;
			char num[32];
			snprintf(num, sizeof(num), "%.6g", (double)(seed >> 8) / 1e4 - 500.0);
			if (semicolon) {
				char *p = strchr(num, '.');
				if (p)
					*p = ',';
			}
			fprintf(f, "%c%s", semicolon ? ';' : ',', num);
		}
		fputs(semicolon ? "\r\n" : "\n", f);
	}
	return fclose(f) == 0 ? 0 : -errno;
}

/* Reads the whole file; returns seconds, or a negative value on error. */
static double read_file(const char *path, long *cells)
{
	const char *cols[NCOLS];
	char names[NCOLS][16], err[512];

	for (int c = 0; c < NCOLS; c++) {
		snprintf(names[c], sizeof(names[c]), "Sensor %d", c);
		cols[c] = names[c];
	}
	double t0 = now_s();
	struct csv_reader *r = csv_open(path, NULL, cols, NCOLS, err, sizeof(err));
	if (!r) {
		fprintf(stderr, "csv_bench: %s\n", err);
		return -1;
	}
	int64_t ts;
	double v[NCOLS], sink = 0;
	long rows = 0;
	int rc;
	while ((rc = csv_next(r, &ts, v, err, sizeof(err))) == 1) {
		sink += v[0] + v[NCOLS - 1];
		rows++;
	}
	csv_close(r);
	double dt = now_s() - t0;
	if (rc < 0) {
		fprintf(stderr, "csv_bench: %s\n", err);
		return -1;
	}
	if (sink == 42.4242)
		fprintf(stderr, "(unlikely sum)\n");
	*cells = rows * (NCOLS + 1);
	return dt;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double run_peer(const char *peer, const char *path, const char *label, const char *delim,
		       int dec_comma)
{
	char cmd[2048], line[256];
	double v = -1;

	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 '%s' '%s' %s '%s' %d", peer, path, label, delim,
		 dec_comma);
	FILE *p = popen(cmd, "r");
	if (!p)
		return -1;
	while (fgets(line, sizeof(line), p)) {
		fputs(line, stdout);
		char *sp = strchr(line, ' ');
		if (sp)
			v = strtod(sp + 1, NULL);
	}
	if (pclose(p) != 0)
		return -1;
	return v;
}

int main(int argc, char **argv)
{
	long rows = 200000;
	const char *peer = NULL;
	char dir[] = "/tmp/pdm-csv-bench-XXXXXX";

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--rows") == 0 && i + 1 < argc)
			rows = strtol(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--peer") == 0 && i + 1 < argc)
			peer = argv[++i];
		else {
			fprintf(stderr, "usage: csv_bench [--rows N] [--peer csv_peer.py]\n");
			return 64;
		}
	}
	if (rows <= 0 || !mkdtemp(dir)) {
		perror("csv_bench");
		return 1;
	}
	static const struct {
		const char *label, *file, *delim;
		int semicolon;
	} kinds[] = {
		{ "comma_ms", "comma.csv", ",", 0 },
		{ "semicolon_iso", "semicolon.csv", ";", 1 },
	};
	int status = 0;
	for (size_t k = 0; k < 2; k++) {
		char path[128];
		snprintf(path, sizeof(path), "%s/%s", dir, kinds[k].file);
		if (write_file(path, rows, kinds[k].semicolon) < 0) {
			perror(path);
			status = 1;
			break;
		}
		struct stat st;
		stat(path, &st);
		double t[3];
		long cells = 0;
		for (int i = 0; i < 3; i++)
			if ((t[i] = read_file(path, &cells)) < 0)
				status = 1;
		if (status)
			break;
		qsort(t, 3, sizeof(t[0]), cmp_double);
		double ours = (double)cells / t[1];
		printf("csv_%s_cells_per_s %.0f cells/s\n", kinds[k].label, ours);
		printf("csv_%s_mb_per_s %.1f MB/s\n", kinds[k].label, (double)st.st_size / t[1] / 1e6);
		if (peer) {
			double theirs = run_peer(peer, path, kinds[k].label, kinds[k].delim,
						 kinds[k].semicolon);
			if (theirs > 0)
				printf("csv_%s_vs_python_csv %.1f x\n", kinds[k].label, ours / theirs);
		}
		unlink(path);
	}
	rmdir(dir);
	return status;
}
