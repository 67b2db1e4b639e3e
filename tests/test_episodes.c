/*
 * test_episodes.c - the saved form of an asset's alert episodes: written
 * and read back exactly (open episodes, times past 2^32 ms, the normal
 * flag), lists saved before seq was kept, damaged lists (what is whole is
 * kept, the rest counted), more than fit (the newest kept, as when one is
 * added to a full list), the lookup by number or, in old lists, by start,
 * and the round trip through a real store.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "episodes.h"
#include "log.h"
#include "store.h"
#include "test_util.h"

#define T0 1795839942123LL /* 2026-11-28T04:25:42.123Z */

/* Field by field: the struct has padding. */
static void assert_same(const struct episode *a, const struct episode *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(a[i].span.start_ms, b[i].span.start_ms);
		assert_int_equal(a[i].span.end_ms, b[i].span.end_ms);
		assert_int_equal(a[i].seq, b[i].seq);
		assert_int_equal(a[i].normal, b[i].normal);
	}
}

static void test_round_trip(void **state)
{
	(void)state;
	const struct episode in[3] = {
		{ .span = { T0, T0 + 60000 }, .seq = 1 },
		{ .span = { T0 + 120000, T0 + 125000 }, .seq = 2, .normal = true },
		{ .span = { T0 + 900000, INT64_MAX }, .seq = 9007199254740991ULL },
	};
	char *s = episodes_format(in, 3);
	assert_non_null(s);
	assert_string_equal(s, "[[1795839942123,1795840002123,1,0],[1795840062123,1795840067123,2,1],"
			       "[1795840842123,-1,9007199254740991,0]]");
	struct episode out[EPISODES_MAX];
	size_t n = 99;
	assert_int_equal(episodes_parse(s, out, EPISODES_MAX, &n), 0);
	assert_int_equal(n, 3);
	assert_same(out, in, sizeof(in) / sizeof(in[0]));
	free(s);

	s = episodes_format(NULL, 0);
	assert_string_equal(s, "[]");
	assert_int_equal(episodes_parse(s, out, EPISODES_MAX, &n), 0);
	assert_int_equal(n, 0);
	free(s);
}

/* Lists saved before seq was kept: [start, end] only. */
static void test_old_lists(void **state)
{
	(void)state;
	struct episode out[4];
	size_t n;
	assert_int_equal(episodes_parse("[[1000,2000],[3000,-1]]", out, 4, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(out[0].span.start_ms, 1000);
	assert_int_equal(out[0].span.end_ms, 2000);
	assert_int_equal(out[0].seq, 0);
	assert_false(out[0].normal);
	assert_int_equal(out[1].span.end_ms, INT64_MAX);
	assert_int_equal(episodes_find(out, n, 1, 0), -1);
	/* such a list finds an episode by its start */
	assert_int_equal(episodes_find(out, n, 7, 3000), 1);
	assert_int_equal(episodes_find(out, n, 7, 3001), -1);
}

/* Whatever the damage, the entries that are whole are kept and the others
 * counted; text that is no list at all is -EINVAL. */
static void test_damaged(void **state)
{
	(void)state;
	struct episode out[8];
	size_t n = 5;
	assert_int_equal(episodes_parse("[[1000,2000,1,0],[\"x\",2000,2,0],[5000,4000,3,0],[1,2,3],"
					"{\"a\":1},[-5,10,4,0],[6000,-1,5,1]]",
					out, 8, &n),
			 5);
	assert_int_equal(n, 2);
	assert_int_equal(out[0].seq, 1);
	assert_int_equal(out[1].seq, 5);
	assert_true(out[1].normal);
	const char *bad[] = { "", "{", "{\"episodes\":[]}", "42", "null", "[[1000,2000,1,0]" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = 5;
		assert_int_equal(episodes_parse(bad[i], out, 8, &n), -EINVAL);
		assert_int_equal(n, 0);
	}
	n = 5;
	assert_int_equal(episodes_parse(NULL, out, 8, &n), -EINVAL);
	assert_int_equal(n, 0);
}

/* More than fit: the newest stay, in order, as when the engine adds one. */
static void test_newest_kept(void **state)
{
	(void)state;
	struct episode in[10];
	for (int i = 0; i < 10; i++)
		in[i] = (struct episode){ .span = { T0 + i * 1000, T0 + i * 1000 + 500 },
					  .seq = (uint64_t)i + 1 };
	char *s = episodes_format(in, 10);
	struct episode out[4];
	size_t n;
	assert_int_equal(episodes_parse(s, out, 4, &n), 0);
	assert_int_equal(n, 4);
	for (int i = 0; i < 4; i++)
		assert_int_equal(out[i].seq, 7 + i);
	assert_int_equal(episodes_find(out, n, 9, 0), 2);
	assert_int_equal(episodes_find(out, n, 6, 0), -1);
	free(s);

	/* adding to a full list drops the oldest, as loading a longer one does */
	episodes_add(out, &n, 4, (struct episode){ .span = { T0, INT64_MAX }, .seq = 11 });
	assert_int_equal(n, 4);
	for (int i = 0; i < 4; i++)
		assert_int_equal(out[i].seq, 8 + i);
	assert_int_equal(out[3].span.end_ms, INT64_MAX);
}

/* Saved by one store handle, loaded by another (the daemon and pdmctl);
 * an asset with no list has none. */
static void test_store_round_trip(void **state)
{
	(void)state;
	char dir[256], path[300], err[256] = "";
	assert_int_equal(test_mkdtemp(dir, sizeof(dir)), 0);
	snprintf(path, sizeof(path), "%s/samples.db", dir);
	struct store_opts o;
	store_opts_default(&o);
	struct store *s = store_open(path, &o, err, sizeof(err));
	assert_non_null(s);
	const struct episode in[2] = {
		{ .span = { T0, T0 + 1 }, .seq = 41 },
		{ .span = { T0 + 2, INT64_MAX }, .seq = 42, .normal = true },
	};
	assert_int_equal(episodes_save(s, "pump a", in, 2), 0);
	store_close(s);

	s = store_open(path, &o, err, sizeof(err));
	assert_non_null(s);
	struct episode out[EPISODES_MAX];
	size_t n = 7;
	assert_int_equal(episodes_load(s, "pump a", out, EPISODES_MAX, &n), 0);
	assert_int_equal(n, 2);
	assert_same(out, in, sizeof(in) / sizeof(in[0]));
	int i = episodes_find(out, n, 42, 0);
	assert_int_equal(i, 1);
	assert_true(out[i].normal);
	n = 7;
	assert_int_equal(episodes_load(s, "pump-b", out, EPISODES_MAX, &n), 0);
	assert_int_equal(n, 0);
	/* a damaged value in the store is reported, not fatal */
	assert_int_equal(store_kv_set(s, "episodes/pump-c", "[[1,2,3,0],[oops"), 0);
	assert_int_equal(episodes_load(s, "pump-c", out, EPISODES_MAX, &n), -EINVAL);
	assert_int_equal(n, 0);
	store_close(s);
	test_rmtree(dir);
}

int main(void)
{
	pdm_log_level = LOG_ERR;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_old_lists),
		cmocka_unit_test(test_damaged),
		cmocka_unit_test(test_newest_kept),
		cmocka_unit_test(test_store_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
