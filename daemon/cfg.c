/*
 * cfg.c - configuration loader (inih).
 *
 * Files are read in a fixed order so that a later file can add sections
 * but never silently redefine an earlier key: a duplicate key is an error
 * naming both places, because a plant's config is edited by several people.
 */
#include "cfg.h"

#include <dirent.h>
#include <errno.h>
#include <ini.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct cfg_entry {
	char *section;
	char *key;
	char *value;
	char *file;
	int line;
};

struct pdm_config {
	struct cfg_entry *entries;
	size_t n, cap;
};

struct cfg_parse_ctx {
	struct pdm_config *cfg;
	const char *file;
	FILE *fp;
	int lineno; /* line last handed to inih */
	FILE *err;
	int errors;
};

static const char *const global_sections[] = { "daemon", "mqtt", "storage" };
static const char *const named_sections[] = { "source", "asset", "sensor" };

static bool section_known(const char *section)
{
	for (size_t i = 0; i < 3; i++)
		if (strcmp(section, global_sections[i]) == 0)
			return true;
	for (size_t i = 0; i < 3; i++) {
		size_t l = strlen(named_sections[i]);
		if (strncmp(section, named_sections[i], l) == 0 && section[l] == ' ' &&
		    section[l + 1] != '\0')
			return true;
	}
	return false;
}

static char *xstrdup(const char *s)
{
	char *d = strdup(s);
	if (!d)
		abort();
	return d;
}

/* Debian's inih does not pass line numbers to the handler, so the reader
 * counts lines: the handler runs right after inih reads a key's line. */
static char *cfg_reader(char *str, int num, void *stream)
{
	struct cfg_parse_ctx *ctx = stream;
	char *r = fgets(str, num, ctx->fp);

	/* A piece of an overlong line is not a new line. */
	if (r && (strchr(r, '\n') || feof(ctx->fp)))
		ctx->lineno++;
	return r;
}

static int cfg_handler(void *user, const char *section, const char *key, const char *value)
{
	struct cfg_parse_ctx *ctx = user;
	struct pdm_config *cfg = ctx->cfg;
	int lineno = ctx->lineno;

	if (!key) /* a section header on its own */
		return 1;
	if (!section_known(section)) {
		fprintf(ctx->err, "%s:%d: [%s]: unknown section (expected daemon, mqtt, storage, "
				  "source NAME, asset NAME or sensor ASSET.NAME)\n",
			ctx->file, lineno, section);
		ctx->errors++;
		return 1;
	}
	for (size_t i = 0; i < cfg->n; i++) {
		struct cfg_entry *e = &cfg->entries[i];
		if (strcmp(e->section, section) == 0 && strcmp(e->key, key) == 0) {
			fprintf(ctx->err, "%s:%d: %s: set twice in [%s] (first at %s:%d)\n",
				ctx->file, lineno, key, section, e->file, e->line);
			ctx->errors++;
			return 1;
		}
	}
	if (cfg->n == cfg->cap) {
		cfg->cap = cfg->cap ? cfg->cap * 2 : 64;
		cfg->entries = realloc(cfg->entries, cfg->cap * sizeof(*cfg->entries));
		if (!cfg->entries)
			abort();
	}
	cfg->entries[cfg->n++] = (struct cfg_entry){
		.section = xstrdup(section),
		.key = xstrdup(key),
		.value = xstrdup(value),
		.file = xstrdup(ctx->file),
		.line = lineno,
	};
	return 1;
}

static int cfg_parse_file(struct cfg_parse_ctx *ctx, const char *path)
{
	ctx->file = path;
	ctx->lineno = 0;
	ctx->fp = fopen(path, "r");
	int rc = ctx->fp ? ini_parse_stream(cfg_reader, ctx, cfg_handler, ctx) : -1;
	if (ctx->fp)
		fclose(ctx->fp);
	ctx->fp = NULL;
	if (rc == -1) {
		fprintf(ctx->err, "%s: cannot open: %s\n", path, strerror(errno));
		ctx->errors++;
	} else if (rc > 0) {
		fprintf(ctx->err, "%s:%d: syntax error (expected [section] or key = value)\n",
			path, rc);
		ctx->errors++;
	} else if (rc < 0) {
		fprintf(ctx->err, "%s: out of memory while parsing\n", path);
		ctx->errors++;
	}
	return rc;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void cfg_parse_dropins(struct cfg_parse_ctx *ctx, const char *dir)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/conf.d", dir);
	DIR *d = opendir(path);
	if (!d)
		return; /* conf.d is optional */
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name);
		if (de->d_name[0] == '.' || l < 6 || strcmp(de->d_name + l - 5, ".conf") != 0)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			names = realloc(names, cap * sizeof(*names));
			if (!names)
				abort();
		}
		names[n++] = xstrdup(de->d_name);
	}
	closedir(d);
	if (n > 0)
		qsort(names, n, sizeof(*names), name_cmp);
	for (size_t i = 0; i < n; i++) {
		char file[4096 + 256];
		snprintf(file, sizeof(file), "%s/conf.d/%s", dir, names[i]);
		cfg_parse_file(ctx, file);
		free(names[i]);
	}
	free(names);
}

struct pdm_config *cfg_load(const char *dir, FILE *err)
{
	struct pdm_config *cfg = calloc(1, sizeof(*cfg));
	if (!cfg)
		return NULL;
	struct cfg_parse_ctx ctx = { .cfg = cfg, .err = err };
	char path[4096 + 16];

	snprintf(path, sizeof(path), "%s/pdmd.conf", dir);
	cfg_parse_file(&ctx, path);
	cfg_parse_dropins(&ctx, dir);
	if (ctx.errors > 0) {
		cfg_free(cfg);
		return NULL;
	}
	return cfg;
}

void cfg_free(struct pdm_config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < cfg->n; i++) {
		free(cfg->entries[i].section);
		free(cfg->entries[i].key);
		free(cfg->entries[i].value);
		free(cfg->entries[i].file);
	}
	free(cfg->entries);
	free(cfg);
}

void cfg_print(const struct pdm_config *cfg, FILE *out)
{
	const char *cur = NULL;

	for (size_t i = 0; i < cfg->n; i++) {
		const struct cfg_entry *e = &cfg->entries[i];
		if (!cur || strcmp(cur, e->section) != 0) {
			fprintf(out, "%s[%s]\n", cur ? "\n" : "", e->section);
			cur = e->section;
		}
		fprintf(out, "%s = %s\n", e->key, e->value);
	}
}
