/*
 * episodes.c - the saved form of an asset's alert episodes (see episodes.h).
 */
#include "episodes.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "store.h"

/* The largest integer a double holds exactly (2^53): an entry beyond it
 * would not come back as it was written, so it is refused. */
#define EXACT_MAX 9007199254740992.0

char *episodes_format(const struct episode *ep, size_t n)
{
	/* By hand rather than through cJSON, which prints numbers with 15
	 * significant digits when it judges them close enough: these are
	 * integers and must come back exact. */
	const size_t one = 4 * 21 + 6; /* "[" 4 numbers "," x3 "]" "," */
	size_t cap = 3 + n * one, o = 0;
	char *s = malloc(cap);
	if (!s)
		return NULL;
	s[o++] = '[';
	for (size_t i = 0; i < n; i++) {
		long long end = ep[i].span.end_ms == INT64_MAX ? -1 : (long long)ep[i].span.end_ms;
		o += (size_t)snprintf(s + o, cap - o, "%s[%lld,%lld,%llu,%d]", i ? "," : "",
				      (long long)ep[i].span.start_ms, end, (unsigned long long)ep[i].seq,
				      ep[i].normal ? 1 : 0);
	}
	s[o++] = ']';
	s[o] = '\0';
	return s;
}

/* One saved entry; false when it is not one. */
static bool parse_one(const cJSON *p, struct episode *ep)
{
	int n = cJSON_IsArray(p) ? cJSON_GetArraySize(p) : 0;
	double v[4] = { 0, 0, 0, 0 };

	if (n != 2 && n != 4)
		return false;
	for (int i = 0; i < n; i++) {
		const cJSON *x = cJSON_GetArrayItem(p, i);
		if (!cJSON_IsNumber(x))
			return false;
		v[i] = x->valuedouble;
	}
	if (v[0] < 0 || v[0] > EXACT_MAX || v[1] > EXACT_MAX || (v[1] >= 0 && v[1] < v[0]) ||
	    v[2] < 0 || v[2] > EXACT_MAX)
		return false;
	*ep = (struct episode){
		.span = { (int64_t)v[0], v[1] < 0 ? INT64_MAX : (int64_t)v[1] },
		.seq = (uint64_t)v[2],
		.normal = v[3] != 0,
	};
	return true;
}

int episodes_parse(const char *text, struct episode *ep, size_t max, size_t *n)
{
	*n = 0;
	cJSON *arr = text ? cJSON_Parse(text) : NULL;
	if (!cJSON_IsArray(arr)) {
		cJSON_Delete(arr);
		return -EINVAL;
	}
	int skipped = 0;
	const cJSON *p;
	cJSON_ArrayForEach(p, arr)
	{
		struct episode one;
		if (!parse_one(p, &one)) {
			skipped++;
			continue;
		}
		episodes_add(ep, n, max, one);
	}
	cJSON_Delete(arr);
	return skipped;
}

static void key_of(char *key, size_t len, const char *asset)
{
	snprintf(key, len, "episodes/%s", asset);
}

int episodes_load(struct store *s, const char *asset, struct episode *ep, size_t max, size_t *n)
{
	char key[300], *text = NULL;

	*n = 0;
	key_of(key, sizeof(key), asset);
	int rc = store_kv_get(s, key, &text);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	rc = episodes_parse(text, ep, max, n);
	free(text);
	return rc;
}

int episodes_save(struct store *s, const char *asset, const struct episode *ep, size_t n)
{
	char key[300];
	char *text = episodes_format(ep, n);
	if (!text)
		return -ENOMEM;
	key_of(key, sizeof(key), asset);
	int rc = store_kv_set(s, key, text);
	free(text);
	return rc;
}

void episodes_add(struct episode *ep, size_t *n, size_t max, struct episode one)
{
	if (max == 0)
		return;
	if (*n == max) {
		memmove(ep, ep + 1, (max - 1) * sizeof(*ep));
		(*n)--;
	}
	ep[(*n)++] = one;
}

int episodes_find(const struct episode *ep, size_t n, uint64_t seq, int64_t started_ms)
{
	for (size_t i = n; i-- > 0;)
		if (ep[i].seq == seq ||
		    (ep[i].seq == 0 && started_ms > 0 && ep[i].span.start_ms == started_ms))
			return (int)i;
	return -1;
}
