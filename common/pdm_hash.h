/* pdm_hash - FNV-1a, 64-bit: a fast, non-cryptographic hash for telling
 * short strings and messages apart (outbox topics, published messages). */
#ifndef PDM_HASH_H
#define PDM_HASH_H

#include <stddef.h>
#include <stdint.h>

#define PDM_FNV1A_INIT UINT64_C(14695981039346656037)

/* Continues hash h over n bytes at p (p may be NULL when n is 0); start
 * with PDM_FNV1A_INIT. Hashing a and then b equals hashing a and b joined. */
uint64_t pdm_fnv1a(uint64_t h, const void *p, size_t n);

#endif
