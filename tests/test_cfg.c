/*
 * test_cfg.c - configuration loading: drop-in order and file:line errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cfg.h"
#include "test_util.h"

struct fixture {
	char dir[256];
	char errbuf[8192];
	FILE *err;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (!f || test_mkdtemp(f->dir, sizeof(f->dir)) < 0)
		return -1;
	f->err = fmemopen(f->errbuf, sizeof(f->errbuf), "w");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	if (f->err)
		fclose(f->err);
	test_rmtree(f->dir);
	free(f);
	return 0;
}

static struct pdm_config *load(struct fixture *f)
{
	struct pdm_config *cfg = cfg_load(f->dir, f->err);
	fflush(f->err);
	return cfg;
}

static void test_valid_with_dropins(void **state)
{
	struct fixture *f = *state;

	test_write_file(f->dir, "pdmd.conf", "[daemon]\nstate_dir = /tmp/x\n");
	test_write_file(f->dir, "conf.d/20-b.conf", "[asset b]\nwindow = 64\n");
	test_write_file(f->dir, "conf.d/10-a.conf", "[asset a]\nwindow = 32\n");
	test_write_file(f->dir, "conf.d/README", "not a config file [\n");
	struct pdm_config *cfg = load(f);
	assert_non_null(cfg);

	char out[4096] = { 0 };
	FILE *o = fmemopen(out, sizeof(out), "w");
	cfg_print(cfg, o);
	fclose(o);
	/* Drop-ins are read in name order: a before b. */
	char *a = strstr(out, "[asset a]"), *b = strstr(out, "[asset b]");
	assert_non_null(a);
	assert_non_null(b);
	assert_true(a < b);
	cfg_free(cfg);
}

static void test_errors_name_file_and_line(void **state)
{
	struct fixture *f = *state;
	char expect[512];

	test_write_file(f->dir, "pdmd.conf", "[daemon]\nstate_dir = /tmp/x\n\n[bogus]\nk = v\n");
	test_write_file(f->dir, "conf.d/a.conf", "[asset a]\nwindow = 1\nwindow = 2\n");
	assert_null(load(f));
	snprintf(expect, sizeof(expect), "%s/pdmd.conf:5: [bogus]: unknown section", f->dir);
	assert_non_null(strstr(f->errbuf, expect));
	snprintf(expect, sizeof(expect), "%s/conf.d/a.conf:3: window: set twice", f->dir);
	assert_non_null(strstr(f->errbuf, expect));
}

static void test_missing_main_file(void **state)
{
	struct fixture *f = *state;

	assert_null(load(f));
	assert_non_null(strstr(f->errbuf, "pdmd.conf: cannot open"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_valid_with_dropins, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors_name_file_and_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_main_file, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
