/*
 * fuzz_csv.c - libFuzzer harness for the CSV reader (daemon/csv.c).
 *
 * Each input is read as a whole file: once to learn the header, then with up
 * to eight of its columns asked for, under the default limits and again with
 * a tiny line cap and a time tolerance. Besides the sanitizers it checks the
 * reader's promises: every message starts with "name:", returned times never
 * go backwards, final errors stay final, and reading always ends.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NAME "fuzz.csv"
#define MAX_COLS 8

static void check_msg(const char *err)
{
	if (strncmp(err, NAME ":", strlen(NAME ":")) != 0)
		abort();
}

static void read_all(const uint8_t *data, size_t size, const char *const *cols, size_t n,
		     size_t max_line, int64_t tol)
{
	char err[512];
	struct csv_reader *r = csv_open_mem(NAME, (const char *)data, size, NULL, cols, n, err,
					    sizeof(err));
	if (!r) {
		check_msg(err);
		return;
	}
	if (max_line && csv_set_max_line(r, max_line) != 0)
		abort();
	csv_set_time_tolerance(r, tol);

	int64_t ts, prev = INT64_MIN;
	double v[MAX_COLS];
	/* Every call consumes at least one line (or ends), so this bounds it. */
	size_t calls = 0, limit = size + 2;
	for (;;) {
		int rc = csv_next(r, &ts, v, err, sizeof(err));
		if (rc == 0)
			break;
		if (++calls > limit)
			abort();
		if (rc == 1) {
			if (ts < prev)
				abort();
			prev = ts;
			continue;
		}
		check_msg(err);
		if (rc != -EINVAL) { /* framing errors are final */
			char again[512];
			if (csv_next(r, &ts, v, again, sizeof(again)) != rc || strcmp(again, err) != 0)
				abort();
			break;
		}
	}
	csv_close(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	char *names[MAX_COLS];
	size_t n = 0;

	struct csv_reader *r = csv_open_mem(NAME, (const char *)data, size, NULL, NULL, 0, err,
					    sizeof(err));
	if (!r) {
		check_msg(err);
		return 0;
	}
	const char *tcol = csv_time_column(r);
	for (size_t i = 0; i < csv_header_count(r) && n < MAX_COLS; i++) {
		const char *h = csv_header_name(r, i);
		if (strcmp(h, tcol) == 0)
			continue;
		int dup = 0;
		for (size_t j = 0; j < n; j++)
			dup |= strcmp(names[j], h) == 0;
		if (!dup && (names[n] = strdup(h)))
			n++;
	}
	csv_close(r);

	read_all(data, size, (const char *const *)names, n, 0, 0);
	read_all(data, size, (const char *const *)names, n, 64, 1000);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	return 0;
}
