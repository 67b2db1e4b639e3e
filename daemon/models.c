/*
 * models.c - model file versions on disk.
 */
#include "models.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "nn.h"
#include "pdm_error.h"

static int mkdir_p(const char *path)
{
	char tmp[4096];
	size_t len = strlen(path);

	if (len >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, path, len + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0750) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0750) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int models_dir(const char *state_dir, const char *asset, char *buf, size_t len)
{
	if ((size_t)snprintf(buf, len, "%s/models/%s", state_dir, asset) >= len)
		return -ENAMETOOLONG;
	return mkdir_p(buf);
}

void models_path(const char *state_dir, const char *asset, uint32_t version, char *buf,
		 size_t len)
{
	snprintf(buf, len, "%s/models/%s/v%08u.pdmm", state_dir, asset, version);
}

static int cmp_desc(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? 1 : x > y ? -1 : 0;
}

/* All versions, newest first, into a malloc'd array. */
static int list_all(const char *state_dir, const char *asset, uint32_t **out)
{
	char dir[4096];
	size_t n = 0, cap = 0;
	uint32_t *v = NULL;

	*out = NULL;
	snprintf(dir, sizeof(dir), "%s/models/%s", state_dir, asset);
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		unsigned ver;
		char tail[8];
		if (sscanf(de->d_name, "v%8u.pdm%7s", &ver, tail) != 2 || strcmp(tail, "m") != 0)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			uint32_t *nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				free(v);
				closedir(d);
				return -ENOMEM;
			}
			v = nv;
		}
		v[n++] = ver;
	}
	closedir(d);
	if (n > 1)
		qsort(v, n, sizeof(*v), cmp_desc);
	*out = v;
	return (int)n;
}

int models_list(const char *state_dir, const char *asset, uint32_t *versions, size_t max)
{
	uint32_t *all;
	int n = list_all(state_dir, asset, &all);

	if (n < 0)
		return n;
	if ((size_t)n > max)
		n = (int)max;
	if (n > 0)
		memcpy(versions, all, (size_t)n * sizeof(*all));
	free(all);
	return n;
}

int models_load_newest(const char *state_dir, const char *asset, struct nn_model **out,
		       uint32_t *version)
{
	uint32_t *all;
	int n = list_all(state_dir, asset, &all);

	if (n < 0)
		return n;
	for (int i = 0; i < n; i++) {
		char path[4096], err[256] = "";
		models_path(state_dir, asset, all[i], path, sizeof(path));
		int rc = nn_model_load(path, out, err, sizeof(err));
		if (rc == 0) {
			*version = all[i];
			free(all);
			return 0;
		}
		LOG_W("models[%s]: %s: cannot load (%s); trying the previous version", asset, path,
		      err[0] ? err : pdm_strerror(rc));
	}
	free(all);
	return -ENOENT;
}

int models_save(const char *state_dir, const char *asset, const struct nn_model *m,
		uint32_t version)
{
	char dir[4096], path[4096];
	int rc = models_dir(state_dir, asset, dir, sizeof(dir));

	if (rc < 0)
		return rc;
	models_path(state_dir, asset, version, path, sizeof(path));
	return nn_model_save(m, path);
}

int models_prune(const char *state_dir, const char *asset, int keep)
{
	uint32_t *all;
	int n = list_all(state_dir, asset, &all), removed = 0;

	if (n < 0)
		return n;
	for (int i = keep < 1 ? 1 : keep; i < n; i++) {
		char path[4096];
		models_path(state_dir, asset, all[i], path, sizeof(path));
		if (unlink(path) == 0)
			removed++;
		else
			LOG_W("models[%s]: cannot remove %s: %s", asset, path, strerror(errno));
	}
	free(all);
	return removed;
}
