/*
 * mb_decode.h - turn Modbus registers into numbers.
 *
 * Modbus registers are 16-bit big-endian words; devices disagree on how
 * 32- and 64-bit values are spread over them. The order is named by the
 * bytes of the value, most significant first, as they appear on the wire:
 *   abcd  big-endian words, big-endian bytes (Modbus "standard")
 *   cdab  word-swapped (low word first)       - common on PLCs
 *   badc  byte-swapped within each word
 *   dcba  fully little-endian
 * For 64-bit values the same rule extends to four words (abcdefgh...).
 */
#ifndef MB_DECODE_H
#define MB_DECODE_H

#include <stdbool.h>
#include <stdint.h>

enum mb_type {
	MB_T_INT16,
	MB_T_UINT16,
	MB_T_INT32,
	MB_T_UINT32,
	MB_T_INT64,
	MB_T_UINT64,
	MB_T_FLOAT32,
	MB_T_FLOAT64,
	MB_T_BOOL,
};

enum mb_order {
	MB_O_ABCD,
	MB_O_CDAB,
	MB_O_BADC,
	MB_O_DCBA,
};

/* Name lookups for config parsing; return 0 or -EINVAL. */
int mb_type_parse(const char *s, enum mb_type *t);
int mb_order_parse(const char *s, enum mb_order *o);
const char *mb_type_name(enum mb_type t);
const char *mb_order_name(enum mb_order o);

/* Number of 16-bit registers a value of this type occupies (1 for bool). */
int mb_type_words(enum mb_type t);

/* True for the integer types, whose bits a sensor may read one by one. */
bool mb_type_is_integer(enum mb_type t);

/* Decodes `words` registers (mb_type_words(t) of them) into a double.
 * Bool reads a register as nonzero. Returns 0. */
int mb_decode(const uint16_t *regs, enum mb_type t, enum mb_order o, double *out);

/* The value's bits as an unsigned integer, most significant byte first,
 * after undoing the word order: exact for every 64-bit value, where a
 * double is not (used to print raw integers). */
uint64_t mb_decode_bits(const uint16_t *regs, enum mb_type t, enum mb_order o);

/* Encodes a value into registers in the given order (the inverse of
 * mb_decode; used by servers, simulators and tests). */
void mb_encode(double value, enum mb_type t, enum mb_order o, uint16_t *regs);

#endif
