/*
 * test_cli.c - the pdmd command line: version, help, usage errors (64) and
 * configuration errors (78), run against the built executable.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <cmocka.h>

#include "pdm_config.h"
#include "test_util.h"

static const char *pdmd(void)
{
	const char *p = getenv("PDMD");
	return p ? p : "./daemon/pdmd";
}

static void test_version_and_help(void **state)
{
	char out[8192];
	(void)state;

	char *v[] = { (char *)pdmd(), "--version", NULL };
	assert_int_equal(test_run(v, out, sizeof(out)), 0);
	assert_non_null(strstr(out, PDM_VERSION));

	char *h[] = { (char *)pdmd(), "--help", NULL };
	assert_int_equal(test_run(h, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "run"));
	assert_non_null(strstr(out, "check"));
	assert_non_null(strstr(out, "replay"));

	static const char *cmds[] = { "run", "check", "replay", "probe" };
	for (size_t i = 0; i < 4; i++) {
		char *a[] = { (char *)pdmd(), (char *)cmds[i], "--help", NULL };
		assert_int_equal(test_run(a, out, sizeof(out)), 0);
		assert_non_null(strstr(out, "Usage: pdmd"));
	}
}

static void test_usage_errors(void **state)
{
	char out[8192];
	(void)state;

	char *a[] = { (char *)pdmd(), "--frobnicate", NULL };
	assert_int_equal(test_run(a, out, sizeof(out)), EX_USAGE);
	assert_non_null(strstr(out, "unknown option"));
	char *b[] = { (char *)pdmd(), "dance", NULL };
	assert_int_equal(test_run(b, out, sizeof(out)), EX_USAGE);
	char *c[] = { (char *)pdmd(), "check", "--nope", NULL };
	assert_int_equal(test_run(c, out, sizeof(out)), EX_USAGE);
	assert_non_null(strstr(out, "--nope"));
	char *d[] = { (char *)pdmd(), "replay", "-c", "/nonexistent", NULL };
	assert_int_equal(test_run(d, out, sizeof(out)), EX_USAGE);
	char *e[] = { (char *)pdmd(), NULL };
	assert_int_equal(test_run(e, out, sizeof(out)), EX_USAGE);
}

static void test_config_errors(void **state)
{
	char dir[256], out[8192];
	(void)state;

	assert_int_equal(test_mkdtemp(dir, sizeof(dir)), 0);
	test_write_file(dir, "pdmd.conf", "[daemon]\nstate_dir = /tmp\n[nonsense]\nx = 1\n");
	char *a[] = { (char *)pdmd(), "check", "-c", dir, NULL };
	assert_int_equal(test_run(a, out, sizeof(out)), EX_CONFIG);
	assert_non_null(strstr(out, "pdmd.conf:3: [nonsense]: unknown section"));
	char *b[] = { (char *)pdmd(), "run", "-c", dir, NULL };
	assert_int_equal(test_run(b, out, sizeof(out)), EX_CONFIG);
	test_rmtree(dir);
}

static void test_example_config_checks(void **state)
{
	char out[16384];
	const char *etc = getenv("PDM_ETC");
	(void)state;

	assert_non_null(etc);
	char *a[] = { (char *)pdmd(), "check", "-c", (char *)etc, NULL };
	int rc = test_run(a, out, sizeof(out));
	if (rc != 0)
		fprintf(stderr, "%s", out);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "configuration OK"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_version_and_help),
		cmocka_unit_test(test_usage_errors),
		cmocka_unit_test(test_config_errors),
		cmocka_unit_test(test_example_config_checks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
