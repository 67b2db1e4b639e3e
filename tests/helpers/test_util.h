/*
 * test_util.h - temporary directories, files and child processes for tests.
 */
#ifndef PDM_TEST_UTIL_H
#define PDM_TEST_UTIL_H

#include <stddef.h>

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

#endif
