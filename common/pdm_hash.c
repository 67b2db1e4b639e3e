/* pdm_hash.c - FNV-1a, see pdm_hash.h. */
#include "pdm_hash.h"

uint64_t pdm_fnv1a(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * UINT64_C(1099511628211);
	return h;
}
