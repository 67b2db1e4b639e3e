/*
 * fuzz_cfg.c - libFuzzer harness for the configuration loader (daemon/cfg.c).
 *
 * The input is a configuration directory in one file: the part before a
 * line "#%drop-in" is DIR/pdmd.conf, the part after it DIR/conf.d/50-x.conf.
 * Both are written to a private temporary directory and loaded as
 * `pdmd check` does. A rejected config must say why; an accepted one is
 * printed (cfg_print, the resolved setup), the printout is loaded again from
 * a second directory and printed again, and the two printouts must agree
 * (cfg.h promises the printout loads back into an identical config). Every
 * name is looked up to check the lookups against the arrays.
 *
 * The loader only reads: besides the two directories it may access(R_OK)
 * paths the input names (password_file, ca_file...), nothing else.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MARKER "\n#%drop-in\n"

static char dir1[256], dir2[256];

static void write_file(const char *dir, const char *rel, const void *p, size_t n)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	FILE *f = fopen(path, "w");
	if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0)
		abort();
}

static void make_dir(char *dir, size_t len, const char *tmpl)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(dir, len, "%s/%s", tmp && *tmp ? tmp : "/tmp", tmpl);
	if (!mkdtemp(dir))
		abort();
	char sub[300];
	snprintf(sub, sizeof(sub), "%s/conf.d", dir);
	if (mkdir(sub, 0700) != 0)
		abort();
}

static void cleanup(void)
{
	char path[512];
	const char *dirs[] = { dir1, dir2 };
	for (int i = 0; i < 2; i++) {
		if (!dirs[i][0])
			continue;
		snprintf(path, sizeof(path), "%s/conf.d/50-x.conf", dirs[i]);
		unlink(path);
		snprintf(path, sizeof(path), "%s/conf.d", dirs[i]);
		rmdir(path);
		snprintf(path, sizeof(path), "%s/pdmd.conf", dirs[i]);
		unlink(path);
		rmdir(dirs[i]);
	}
}

/* The printout without its comment lines, which name the files read. */
static char *print_cfg(const struct pdm_config *c, size_t *len)
{
	char *text = NULL, *out = NULL;
	size_t tlen = 0, olen = 0;
	FILE *f = open_memstream(&text, &tlen);
	FILE *o = open_memstream(&out, &olen);
	if (!f || !o)
		abort();
	cfg_print(c, f);
	fclose(f);
	for (char *line = text; line && *line;) {
		char *nl = strchr(line, '\n');
		size_t n = nl ? (size_t)(nl - line) + 1 : strlen(line);
		if (line[0] != '#')
			fwrite(line, 1, n, o);
		line += n;
	}
	fclose(o);
	free(text);
	*len = olen;
	return out;
}

static struct pdm_config *load(const char *dir)
{
	char *msgs = NULL;
	size_t mlen = 0;
	FILE *err = open_memstream(&msgs, &mlen);
	if (!err)
		abort();
	struct pdm_config *c = cfg_load(dir, err);
	fclose(err);
	/* every refusal comes with its reasons */
	if (!c && mlen == 0)
		abort();
	free(msgs);
	return c;
}

static void lookups(const struct pdm_config *c)
{
	for (size_t i = 0; i < c->n_sources; i++)
		if (cfg_find_source(c, c->sources[i].name) != &c->sources[i])
			abort();
	for (size_t i = 0; i < c->n_assets; i++) {
		const struct cfg_asset *a = &c->assets[i];
		if (cfg_find_asset(c, a->name) != a)
			abort();
		for (size_t k = 0; k < a->n_sensors; k++)
			if (a->sensors[k] >= c->n_sensors || c->sensors[a->sensors[k]].asset != i)
				abort();
		if (a->has_run_when && c->sensors[a->run_sensor].asset != i)
			abort();
	}
	for (size_t i = 0; i < c->n_sensors; i++) {
		const struct cfg_sensor *s = &c->sensors[i];
		if (cfg_find_sensor(c, s->name) != s || s->asset >= c->n_assets ||
		    s->source >= c->n_sources)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!dir1[0]) {
		make_dir(dir1, sizeof(dir1), "pdm-fuzz-cfg-XXXXXX");
		make_dir(dir2, sizeof(dir2), "pdm-fuzz-cfg2-XXXXXX");
		atexit(cleanup);
	}
	const uint8_t *cut = memmem(data, size, MARKER, strlen(MARKER));
	size_t main_len = cut ? (size_t)(cut - data) + 1 : size;
	char dropin[512];
	snprintf(dropin, sizeof(dropin), "%s/conf.d/50-x.conf", dir1);
	write_file(dir1, "pdmd.conf", data, main_len);
	if (cut) {
		size_t off = (size_t)(cut - data) + strlen(MARKER);
		write_file(dir1, "conf.d/50-x.conf", data + off, size - off);
	} else {
		unlink(dropin);
	}

	struct pdm_config *c = load(dir1);
	if (!c)
		return 0;
	lookups(c);
	size_t len1, len2;
	char *p1 = print_cfg(c, &len1);
	cfg_free(c);

	write_file(dir2, "pdmd.conf", p1, len1);
	struct pdm_config *c2 = load(dir2);
	if (!c2) {
		fprintf(stderr, "the printout of an accepted config does not load:\n%s", p1);
		abort();
	}
	char *p2 = print_cfg(c2, &len2);
	cfg_free(c2);
	if (len1 != len2 || memcmp(p1, p2, len1) != 0) {
		fprintf(stderr, "printouts differ:\n--- first\n%s--- reloaded\n%s", p1, p2);
		abort();
	}
	free(p1);
	free(p2);
	return 0;
}
