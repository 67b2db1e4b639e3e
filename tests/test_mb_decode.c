/*
 * test_mb_decode.c - every Modbus type in every word order, against
 * register images written out by hand from the Modbus wire format.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "mb_decode.h"

static void test_float32_orders(void **state)
{
	/* 123.456f is 0x42F6E979: bytes a=42 b=F6 c=E9 d=79. */
	static const struct {
		enum mb_order o;
		uint16_t regs[2];
	} cases[] = {
		{ MB_O_ABCD, { 0x42F6, 0xE979 } },
		{ MB_O_CDAB, { 0xE979, 0x42F6 } },
		{ MB_O_BADC, { 0xF642, 0x79E9 } },
		{ MB_O_DCBA, { 0x79E9, 0xF642 } },
	};
	(void)state;

	for (size_t i = 0; i < 4; i++) {
		double v;
		uint16_t enc[2];
		assert_int_equal(mb_decode(cases[i].regs, MB_T_FLOAT32, cases[i].o, &v), 0);
		assert_true(v == (double)123.456f);
		mb_encode(123.456, MB_T_FLOAT32, cases[i].o, enc);
		assert_int_equal(enc[0], cases[i].regs[0]);
		assert_int_equal(enc[1], cases[i].regs[1]);
	}
}

static void test_int_types(void **state)
{
	double v;
	(void)state;

	uint16_t r16[1] = { 0xFFFE };
	mb_decode(r16, MB_T_INT16, MB_O_ABCD, &v);
	assert_true(v == -2.0);
	mb_decode(r16, MB_T_UINT16, MB_O_ABCD, &v);
	assert_true(v == 65534.0);

	/* -100000 = 0xFFFE7960 */
	uint16_t r32[2] = { 0x7960, 0xFFFE };
	mb_decode(r32, MB_T_INT32, MB_O_CDAB, &v);
	assert_true(v == -100000.0);
	mb_decode(r32, MB_T_UINT32, MB_O_CDAB, &v);
	assert_true(v == 4294867296.0);

	/* 0x0102030405060708 in abcd and in word-reversed order */
	uint16_t r64[4] = { 0x0102, 0x0304, 0x0506, 0x0708 };
	mb_decode(r64, MB_T_UINT64, MB_O_ABCD, &v);
	assert_true(v == (double)0x0102030405060708ULL);
	uint16_t r64s[4] = { 0x0708, 0x0506, 0x0304, 0x0102 };
	mb_decode(r64s, MB_T_INT64, MB_O_CDAB, &v);
	assert_true(v == (double)0x0102030405060708LL);
	uint16_t r64l[4] = { 0x0807, 0x0605, 0x0403, 0x0201 };
	mb_decode(r64l, MB_T_UINT64, MB_O_DCBA, &v);
	assert_true(v == (double)0x0102030405060708ULL);

	uint16_t rb[1] = { 3 };
	mb_decode(rb, MB_T_BOOL, MB_O_ABCD, &v);
	assert_true(v == 1.0);
}

static void test_float64_roundtrip(void **state)
{
	(void)state;
	for (int o = MB_O_ABCD; o <= MB_O_DCBA; o++) {
		uint16_t regs[4];
		double v;
		mb_encode(-1234.56789e10, MB_T_FLOAT64, (enum mb_order)o, regs);
		mb_decode(regs, MB_T_FLOAT64, (enum mb_order)o, &v);
		assert_true(v == -1234.56789e10);
	}
	/* abcd float64 of 1.0 is 0x3FF0000000000000 */
	uint16_t one[4];
	mb_encode(1.0, MB_T_FLOAT64, MB_O_ABCD, one);
	assert_int_equal(one[0], 0x3FF0);
	assert_int_equal(one[3], 0);
}

/* The byte-swapped orders for 64-bit values and the integer extremes,
 * against register images written out by hand. */
static void test_64bit_and_extremes(void **state)
{
	double v;
	uint16_t enc[4];
	(void)state;

	/* 0x0102030405060708 with bytes swapped inside each word */
	uint16_t badc[4] = { 0x0201, 0x0403, 0x0605, 0x0807 };
	mb_decode(badc, MB_T_UINT64, MB_O_BADC, &v);
	assert_true(v == (double)0x0102030405060708ULL);
	/* 0x0001020304050607 fits a double's 53-bit mantissa exactly. */
	uint16_t badc2[4] = { 0x0100, 0x0302, 0x0504, 0x0706 };
	mb_encode((double)0x0001020304050607ULL, MB_T_UINT64, MB_O_BADC, enc);
	assert_memory_equal(enc, badc2, sizeof(badc2));

	/* Exact bits where a double would round. */
	uint16_t big[4] = { 0x0708, 0x0506, 0x0304, 0x0102 };
	assert_true(mb_decode_bits(big, MB_T_UINT64, MB_O_CDAB) == 0x0102030405060708ULL);
	assert_true(mb_decode_bits(badc, MB_T_INT64, MB_O_BADC) == 0x0102030405060708ULL);

	uint16_t i64min[4] = { 0x8000, 0, 0, 0 };
	mb_decode(i64min, MB_T_INT64, MB_O_ABCD, &v);
	assert_true(v == -0x1p63);
	uint16_t i32min[2] = { 0x0000, 0x8000 };
	mb_decode(i32min, MB_T_INT32, MB_O_CDAB, &v);
	assert_true(v == -2147483648.0);
	uint16_t u32max[2] = { 0xFFFF, 0xFFFF };
	mb_decode(u32max, MB_T_UINT32, MB_O_DCBA, &v);
	assert_true(v == 4294967295.0);
	mb_decode(u32max, MB_T_INT32, MB_O_BADC, &v);
	assert_true(v == -1.0);

	/* Encoding saturates instead of wrapping (and NaN encodes as 0). */
	mb_encode(70000, MB_T_INT16, MB_O_ABCD, enc);
	assert_int_equal(enc[0], 0x7FFF);
	mb_encode(-5, MB_T_UINT16, MB_O_ABCD, enc);
	assert_int_equal(enc[0], 0);
	mb_encode(NAN, MB_T_INT32, MB_O_ABCD, enc);
	assert_int_equal(enc[0], 0);
	assert_int_equal(enc[1], 0);
	mb_encode(1e30, MB_T_INT64, MB_O_ABCD, enc);
	assert_int_equal(enc[0], 0x7FFF);
	assert_int_equal(enc[3], 0xFFFF);
	mb_encode(1e30, MB_T_UINT64, MB_O_ABCD, enc);
	assert_int_equal(enc[0], 0xFFFF);
	mb_encode(NAN, MB_T_BOOL, MB_O_ABCD, enc);
	assert_int_equal(enc[0], 0);
}

static void test_names(void **state)
{
	enum mb_type t;
	enum mb_order o;
	(void)state;

	assert_int_equal(mb_type_parse("float64", &t), 0);
	assert_int_equal(t, MB_T_FLOAT64);
	assert_int_equal(mb_type_words(t), 4);
	assert_int_equal(mb_type_parse("float", &t), -EINVAL);
	assert_int_equal(mb_order_parse("cdab", &o), 0);
	assert_string_equal(mb_order_name(o), "cdab");
	assert_int_equal(mb_order_parse("ABCD", &o), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_float32_orders),
		cmocka_unit_test(test_int_types),
		cmocka_unit_test(test_float64_roundtrip),
		cmocka_unit_test(test_64bit_and_extremes),
		cmocka_unit_test(test_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
