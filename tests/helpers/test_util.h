/*
 * test_util.h - temporary directories, files and child processes for tests.
 */
#ifndef PDM_TEST_UTIL_H
#define PDM_TEST_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Creates $TMPDIR/pdm-test-XXXXXX into buf; returns 0 or -errno. */
int test_mkdtemp(char *buf, size_t len);
/* Removes a directory tree made by test_mkdtemp. */
void test_rmtree(const char *dir);
/* Writes `text` to dir/name, creating subdirectories named in `name`. */
int test_write_file(const char *dir, const char *name, const char *text);

/*
 * Runs argv (argv[0] a path) with stdout and stderr captured into `out`
 * (NUL-terminated, truncated to len-1). Returns the exit status, or
 * 128+signal, or a negative errno if it could not be started.
 */
int test_run(char *const argv[], char *out, size_t len);

/* Sleeps for ms milliseconds. */
void test_sleep_ms(int ms);

/* The monotonic clock in milliseconds. */
int64_t test_mono_ms(void);

/* The whole file, NUL-terminated (a binary file holds NULs of its own, so
 * search it with memmem); its length in *len. NULL if it cannot be opened;
 * aborts when out of memory. */
char *test_read_file(const char *path, size_t *len);

/* Whether the file at path comes to contain needle within timeout_ms,
 * reading it again every poll_ms (a log another process writes). */
bool test_file_has(const char *path, const char *needle, int timeout_ms, int poll_ms);

#endif
