/*
 * mb_decode.c - Modbus register word/byte order decoding.
 *
 * The value is first assembled as a big-endian byte string (a b c d ...)
 * from the wire order, then reinterpreted; this keeps every order a simple
 * byte permutation and works on any host endianness.
 */
#include "mb_decode.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

static const char *const type_names[] = {
	[MB_T_INT16] = "int16",   [MB_T_UINT16] = "uint16", [MB_T_INT32] = "int32",
	[MB_T_UINT32] = "uint32", [MB_T_INT64] = "int64",   [MB_T_UINT64] = "uint64",
	[MB_T_FLOAT32] = "float32", [MB_T_FLOAT64] = "float64", [MB_T_BOOL] = "bool",
};

static const char *const order_names[] = {
	[MB_O_ABCD] = "abcd",
	[MB_O_CDAB] = "cdab",
	[MB_O_BADC] = "badc",
	[MB_O_DCBA] = "dcba",
};

int mb_type_parse(const char *s, enum mb_type *t)
{
	for (int i = 0; i <= MB_T_BOOL; i++) {
		if (strcmp(s, type_names[i]) == 0) {
			*t = (enum mb_type)i;
			return 0;
		}
	}
	return -EINVAL;
}

int mb_order_parse(const char *s, enum mb_order *o)
{
	for (int i = 0; i <= MB_O_DCBA; i++) {
		if (strcmp(s, order_names[i]) == 0) {
			*o = (enum mb_order)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *mb_type_name(enum mb_type t)
{
	return (unsigned)t <= MB_T_BOOL ? type_names[t] : "?";
}

const char *mb_order_name(enum mb_order o)
{
	return (unsigned)o <= MB_O_DCBA ? order_names[o] : "?";
}

bool mb_type_is_integer(enum mb_type t)
{
	return t != MB_T_BOOL && t != MB_T_FLOAT32 && t != MB_T_FLOAT64;
}

int mb_type_words(enum mb_type t)
{
	switch (t) {
	case MB_T_INT32:
	case MB_T_UINT32:
	case MB_T_FLOAT32:
		return 2;
	case MB_T_INT64:
	case MB_T_UINT64:
	case MB_T_FLOAT64:
		return 4;
	case MB_T_INT16:
	case MB_T_UINT16:
	case MB_T_BOOL:
		break;
	}
	return 1;
}

/* Wire bytes (register order, each register big-endian) -> logical
 * big-endian bytes, or the reverse: the permutation is its own inverse. */
static void permute(uint8_t *dst, const uint8_t *src, int nbytes, enum mb_order o)
{
	int nwords = nbytes / 2;

	for (int w = 0; w < nwords; w++) {
		int sw = (o == MB_O_CDAB || o == MB_O_DCBA) ? nwords - 1 - w : w;
		bool swap_bytes = (o == MB_O_BADC || o == MB_O_DCBA);
		dst[2 * w] = src[2 * sw + (swap_bytes ? 1 : 0)];
		dst[2 * w + 1] = src[2 * sw + (swap_bytes ? 0 : 1)];
	}
}

static uint64_t be_to_u64(const uint8_t *b, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v = (v << 8) | b[i];
	return v;
}

uint64_t mb_decode_bits(const uint16_t *regs, enum mb_type t, enum mb_order o)
{
	int nwords = mb_type_words(t);
	uint8_t wire[8] = { 0 }, be[8] = { 0 };

	for (int i = 0; i < nwords; i++) {
		wire[2 * i] = (uint8_t)(regs[i] >> 8);
		wire[2 * i + 1] = (uint8_t)(regs[i] & 0xff);
	}
	if (nwords == 1)
		memcpy(be, wire, 2);
	else
		permute(be, wire, nwords * 2, o);
	return be_to_u64(be, nwords * 2);
}

int mb_decode(const uint16_t *regs, enum mb_type t, enum mb_order o, double *out)
{
	uint64_t u = mb_decode_bits(regs, t, o);

	switch (t) {
	case MB_T_INT16:
		*out = (int16_t)u;
		break;
	case MB_T_UINT16:
		*out = (uint16_t)u;
		break;
	case MB_T_BOOL:
		*out = u != 0;
		break;
	case MB_T_INT32:
		*out = (int32_t)(uint32_t)u;
		break;
	case MB_T_UINT32:
		*out = (uint32_t)u;
		break;
	case MB_T_INT64:
		*out = (double)(int64_t)u;
		break;
	case MB_T_UINT64:
		*out = (double)u;
		break;
	case MB_T_FLOAT32: {
		uint32_t u32 = (uint32_t)u;
		float f;
		memcpy(&f, &u32, sizeof(f));
		*out = f;
		break;
	}
	case MB_T_FLOAT64: {
		double d;
		memcpy(&d, &u, sizeof(d));
		*out = d;
		break;
	}
	}
	return 0;
}

/* Integer encodings saturate (NaN encodes as 0): converting an
 * out-of-range double to an integer type is undefined behaviour in C. */
static double clamp(double v, double lo, double hi)
{
	if (isnan(v))
		return 0.0;
	return v < lo ? lo : v > hi ? hi : v;
}

void mb_encode(double value, enum mb_type t, enum mb_order o, uint16_t *regs)
{
	int nwords = mb_type_words(t);
	uint64_t u = 0;
	uint8_t be[8] = { 0 }, wire[8] = { 0 };

	switch (t) {
	case MB_T_INT16:
		u = (uint16_t)(int16_t)clamp(value, INT16_MIN, INT16_MAX);
		break;
	case MB_T_UINT16:
		u = (uint16_t)clamp(value, 0, UINT16_MAX);
		break;
	case MB_T_BOOL:
		u = value != 0.0 && !isnan(value);
		break;
	case MB_T_INT32:
		u = (uint32_t)(int32_t)clamp(value, INT32_MIN, INT32_MAX);
		break;
	case MB_T_UINT32:
		u = (uint32_t)clamp(value, 0, UINT32_MAX);
		break;
	case MB_T_INT64:
		/* 2^63 is the first double above INT64_MAX. */
		if (value >= 0x1p63)
			u = (uint64_t)INT64_MAX;
		else
			u = (uint64_t)(int64_t)clamp(value, -0x1p63, 0x1p63);
		break;
	case MB_T_UINT64:
		if (value >= 0x1p64)
			u = UINT64_MAX;
		else
			u = (uint64_t)clamp(value, 0, 0x1p64);
		break;
	case MB_T_FLOAT32: {
		float f = (float)value;
		uint32_t u32;
		memcpy(&u32, &f, sizeof(u32));
		u = u32;
		break;
	}
	case MB_T_FLOAT64:
		memcpy(&u, &value, sizeof(u));
		break;
	}
	for (int i = nwords * 2 - 1; i >= 0; i--) {
		be[i] = (uint8_t)(u & 0xff);
		u >>= 8;
	}
	if (nwords == 1)
		memcpy(wire, be, 2);
	else
		permute(wire, be, nwords * 2, o);
	for (int i = 0; i < nwords; i++)
		regs[i] = (uint16_t)((wire[2 * i] << 8) | wire[2 * i + 1]);
}
