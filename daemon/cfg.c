/*
 * cfg.c - configuration loader: INI files (inih) -> struct pdm_config.
 *
 * What a key is (type, default, range, how its value reads and prints) is a
 * row of the key tables in cfg_keys.c. This file is what needs more than one
 * row at a time: the files and sections read, messages with file and line,
 * the rules between keys, and building and printing the whole setup. The
 * split keeps the tables free of loader state and the loader free of
 * per-key detail.
 *
 * Loading runs in three passes over raw sections, because a key's meaning
 * may depend on keys further down (a source's type decides which keys it
 * takes; a sensor's source decides whether it has a register or a field):
 *   1. read the files into raw sections (key, value, line), in file order;
 *   2. apply every key through its table row, then the defaults;
 *   3. resolve names into indices and check the rules between keys.
 * Every problem is collected with its file and line, and all are printed
 * sorted, so one `pdmd check` run shows everything to fix.
 *
 * Debian's inih neither passes line numbers to the handler nor reports
 * section headers without keys, so our reader hands inih one line at a time
 * and tracks the line number and the section headers itself; inih still
 * splits keys from values and strips inline comments.
 */
#include "cfg.h"
#include "cfg_keys.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mb_decode.h"
#include "mqtt_client.h"
#include "pdm_secret.h"
#include "pdm_uri.h"
#include "pdm_parse.h"

/* ---- small helpers ------------------------------------------------------ */

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);
	if (!p)
		abort();
	return p;
}

static void *xrealloc(void *p, size_t size)
{
	p = realloc(p, size ? size : 1);
	if (!p)
		abort();
	return p;
}

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		abort();
	return s;
}

/* Edit distance, for "did you mean" on misspelt keys and sections. */
static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 64 || lb > 64)
		return 99;
	size_t row[65];
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t cost = tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1])
					      ? 0
					      : 1;
			size_t best = diag + cost;
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

static bool close_enough(const char *typed, const char *known)
{
	size_t d = edit_distance(typed, known);
	size_t l = strlen(known);
	return d <= (l <= 2 ? 0 : l <= 4 ? 1 : l <= 8 ? 2 : 3) ||
	       (strlen(typed) >= 4 && (strstr(known, typed) || strstr(typed, known)));
}

/* ---- messages ----------------------------------------------------------- */

struct msg {
	size_t file; /* index into cfg->files, SIZE_MAX for none */
	int line;
	size_t seq;
	bool warning;
	char *text;
};

struct raw_entry {
	char *key, *value;
	size_t file;
	int line;
};

struct raw_section {
	enum sec_kind kind;
	char *name; /* "" for daemon/mqtt/storage */
	size_t file;
	int line;
	struct raw_entry *e;
	size_t n, cap;
	size_t obj;   /* index of the object built from it, SIZE_MAX if none */
	bool skip;    /* header was invalid: its keys are ignored */
};

struct loader {
	struct pdm_config *cfg;
	struct msg *msgs;
	size_t n_msgs, cap_msgs;
	int errors;
	struct raw_section *secs;
	size_t n_secs, cap_secs;
	size_t cur; /* section receiving keys, SIZE_MAX before the first header */
	/* the file being read */
	FILE *fp;
	size_t file;
	int lineno;
	char *line;
	size_t line_cap;
};

static void vreport(struct loader *ld, size_t file, int line, bool warning, const char *fmt,
		    va_list ap) __attribute__((format(printf, 5, 0)));
static void vreport(struct loader *ld, size_t file, int line, bool warning, const char *fmt,
		    va_list ap)
{
	char *text;
	if (vasprintf(&text, fmt, ap) < 0)
		abort();
	if (ld->n_msgs == ld->cap_msgs) {
		ld->cap_msgs = ld->cap_msgs ? ld->cap_msgs * 2 : 16;
		ld->msgs = xrealloc(ld->msgs, ld->cap_msgs * sizeof(*ld->msgs));
	}
	ld->msgs[ld->n_msgs] = (struct msg){ file, line, ld->n_msgs, warning, text };
	ld->n_msgs++;
	if (!warning)
		ld->errors++;
}

static void error_at(struct loader *ld, size_t file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void error_at(struct loader *ld, size_t file, int line, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport(ld, file, line, false, fmt, ap);
	va_end(ap);
}

static void warn_at(struct loader *ld, size_t file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void warn_at(struct loader *ld, size_t file, int line, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport(ld, file, line, true, fmt, ap);
	va_end(ap);
}

static int msg_cmp(const void *pa, const void *pb)
{
	const struct msg *a = pa, *b = pb;
	if (a->file != b->file)
		return a->file < b->file ? -1 : 1;
	if (a->line != b->line)
		return a->line < b->line ? -1 : 1;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static void flush_messages(struct loader *ld, FILE *err)
{
	if (ld->n_msgs > 1)
		qsort(ld->msgs, ld->n_msgs, sizeof(*ld->msgs), msg_cmp);
	for (size_t i = 0; i < ld->n_msgs; i++) {
		const struct msg *m = &ld->msgs[i];
		const char *file = m->file < ld->cfg->n_files ? ld->cfg->files[m->file] : ld->cfg->dir;
		const char *w = m->warning ? "warning: " : "";
		if (err && m->line > 0)
			fprintf(err, "%s:%d: %s%s\n", file, m->line, w, m->text);
		else if (err)
			fprintf(err, "%s: %s%s\n", file, w, m->text);
		free(m->text);
	}
	free(ld->msgs);
	ld->msgs = NULL;
	ld->n_msgs = 0;
}

/* ---- pass 1: reading files ---------------------------------------------- */

static size_t find_section(struct loader *ld, enum sec_kind kind, const char *name)
{
	for (size_t i = 0; i < ld->n_secs; i++)
		if (ld->secs[i].kind == kind && strcmp(ld->secs[i].name, name) == 0)
			return i;
	return SIZE_MAX;
}

static bool valid_name(const char *s, bool dotted)
{
	size_t dots = 0, l = strlen(s);
	if (l == 0 || l > 64)
		return false;
	for (const char *p = s; *p; p++) {
		if (*p == '.')
			dots++;
		else if (!cfg_keys_name_char(*p))
			return false;
	}
	if (!dotted)
		return dots == 0;
	const char *dot = strchr(s, '.');
	return dots == 1 && dot != s && dot[1] != '\0';
}

/* A section header "[kind name]": begins a section (or re-opens one: a
 * conf.d file may add keys to [mqtt], but a key set twice is an error). */
static void section_header(struct loader *ld, char *text)
{
	int line = ld->lineno;
	char *close = strchr(text, ']');
	char *p;

	if (ld->n_secs == ld->cap_secs) {
		ld->cap_secs = ld->cap_secs ? ld->cap_secs * 2 : 16;
		ld->secs = xrealloc(ld->secs, ld->cap_secs * sizeof(*ld->secs));
	}
	/* Sections are recorded even when invalid so their keys do not land
	 * in the previous section; `skip` silences their keys. */
	struct raw_section sec = { .kind = SK_DAEMON, .file = ld->file, .line = line,
				   .obj = SIZE_MAX, .skip = true };
	if (!close) {
		error_at(ld, ld->file, line, "%s: syntax error: section header without ']'", text);
		goto record;
	}
	for (p = close + 1; *p == ' ' || *p == '\t'; p++)
		;
	if (*p != '\0' && *p != ';' && *p != '#') {
		error_at(ld, ld->file, line, "%s: syntax error: text after the section header", text);
		goto record;
	}
	*close = '\0';
	char *kind = text + 1;
	while (*kind == ' ' || *kind == '\t')
		kind++;
	char *name = kind;
	while (*name && *name != ' ' && *name != '\t')
		name++;
	if (*name)
		*name++ = '\0';
	while (*name == ' ' || *name == '\t')
		name++;
	for (size_t l = strlen(name); l > 0 && (name[l - 1] == ' ' || name[l - 1] == '\t'); l--)
		name[l - 1] = '\0';

	int k = -1;
	for (int i = 0; i < SK_N; i++)
		if (strcmp(cfg_keys_kind(i)->name, kind) == 0)
			k = i;
	sec.kind = k < 0 ? SK_DAEMON : (enum sec_kind)k;
	sec.name = cfg_keys_xstrdup(name);
	char shown[256];
	snprintf(shown, sizeof(shown), "[%s%s%s]", kind, name[0] ? " " : "", name);

	if (k < 0) {
		const char *hint = NULL;
		for (int i = 0; i < SK_N; i++)
			if (close_enough(kind, cfg_keys_kind(i)->name))
				hint = cfg_keys_kind(i)->example;
		error_at(ld, ld->file, line,
			 "%s: unknown section (expected [daemon], [mqtt], [storage], [source NAME], "
			 "[asset NAME] or [sensor ASSET.NAME])%s%s%s",
			 shown, hint ? "; did you mean " : "", hint ? hint : "", hint ? "?" : "");
	} else if (!cfg_keys_kind(k)->named && name[0]) {
		error_at(ld, ld->file, line, "%s: [%s] takes no name", shown, kind);
	} else if (cfg_keys_kind(k)->named && !name[0]) {
		error_at(ld, ld->file, line, "%s: needs a name: %s", shown,
			 cfg_keys_kind(k)->example);
	} else if (cfg_keys_kind(k)->named && !valid_name(name, k == SK_SENSOR)) {
		error_at(ld, ld->file, line,
			 k == SK_SENSOR
				 ? "%s: a sensor is named ASSET.NAME, each part of letters, digits, "
				   "'-' and '_' (at most 64 characters in all)"
				 : "%s: a name has letters, digits, '-' and '_' only (at most 64)",
			 shown);
	} else {
		size_t existing = find_section(ld, (enum sec_kind)k, name);
		if (existing != SIZE_MAX) {
			free(sec.name);
			ld->cur = existing;
			return;
		}
		sec.skip = false;
	}
record:
	if (!sec.name)
		sec.name = cfg_keys_xstrdup("");
	ld->secs[ld->n_secs] = sec;
	ld->cur = ld->n_secs++;
}

/*
 * inih's reader: hands inih one line at a time so that ld->lineno is the
 * line of the key the handler receives. Section headers are consumed here
 * (inih gets a blank line) and lines are left-trimmed, which also turns
 * off inih's indented-continuation rule: an indented key is a key.
 */
static char *cfg_reader(char *str, int num, void *stream)
{
	struct loader *ld = stream;
	ssize_t n = getline(&ld->line, &ld->line_cap, ld->fp);

	if (n < 0)
		return NULL;
	ld->lineno++;
	char *s = ld->line;
	if (ld->lineno == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0)
		s += 3;
	while (*s == ' ' || *s == '\t')
		s++;
	size_t l = strlen(s);
	while (l > 0 && (s[l - 1] == '\n' || s[l - 1] == '\r' || s[l - 1] == ' ' || s[l - 1] == '\t'))
		s[--l] = '\0';
	snprintf(str, (size_t)num, "\n");
	if (l == 0 || s[0] == ';' || s[0] == '#')
		return str;
	/* Before anything else, so that no message echoes a huge line. */
	if (l + 2 > (size_t)num) {
		error_at(ld, ld->file, ld->lineno, "line too long (at most %d characters)", num - 2);
		return str;
	}
	if (s[0] == '[') {
		section_header(ld, s);
		return str;
	}
	if (!strpbrk(s, "=:")) {
		error_at(ld, ld->file, ld->lineno,
			 "syntax error: expected 'key = value' or '[section]', got '%s'", s);
		return str;
	}
	snprintf(str, (size_t)num, "%s\n", s);
	return str;
}

static int cfg_handler(void *user, const char *section, const char *key, const char *value)
{
	struct loader *ld = user;
	int line = ld->lineno;
	(void)section;

	if (!key)
		return 1;
	if (key[0] == '\0') {
		error_at(ld, ld->file, line, "syntax error: key name missing before '='");
		return 1;
	}
	if (ld->cur == SIZE_MAX) {
		error_at(ld, ld->file, line,
			 "%s: outside any section (keys follow a header such as [daemon] or "
			 "[source NAME])", key);
		return 1;
	}
	/* A comment after a value needs a space before its ';': "key =; x"
	 * would keep "; x" as the value, which reads as a comment once the
	 * configuration is printed (pdmd check) and read back. */
	if (value[0] == ';') {
		error_at(ld, ld->file, line,
			 "%s: the value starts with ';' (a comment needs a space before it: "
			 "\"%s = ; note\" sets nothing)", key, key);
		return 1;
	}
	struct raw_section *sec = &ld->secs[ld->cur];
	if (sec->skip)
		return 1;
	for (size_t i = 0; i < sec->n; i++) {
		if (strcmp(sec->e[i].key, key) == 0) {
			/* The first definition may be in another file of the same section. */
			error_at(ld, ld->file, line, "%s: set twice in [%s%s%s] (first at %s:%d)",
				 key, cfg_keys_kind(sec->kind)->name, sec->name[0] ? " " : "",
				 sec->name, ld->cfg->files[sec->e[i].file], sec->e[i].line);
			return 1;
		}
	}
	if (sec->n == sec->cap) {
		sec->cap = sec->cap ? sec->cap * 2 : 8;
		sec->e = xrealloc(sec->e, sec->cap * sizeof(*sec->e));
	}
	sec->e[sec->n++] = (struct raw_entry){ cfg_keys_xstrdup(key), cfg_keys_xstrdup(value),
					       ld->file, line };
	return 1;
}

static void parse_file(struct loader *ld, const char *path, bool required)
{
	struct pdm_config *cfg = ld->cfg;

	ld->fp = fopen(path, "r");
	if (!ld->fp) {
		if (required || errno != ENOENT) {
			cfg->files = xrealloc(cfg->files, (cfg->n_files + 1) * sizeof(*cfg->files));
			cfg->files[cfg->n_files] = cfg_keys_xstrdup(path);
			error_at(ld, cfg->n_files++, 0, "cannot open: %s", strerror(errno));
		}
		return;
	}
	cfg->files = xrealloc(cfg->files, (cfg->n_files + 1) * sizeof(*cfg->files));
	cfg->files[cfg->n_files] = cfg_keys_xstrdup(path);
	ld->file = cfg->n_files++;
	ld->lineno = 0;
	ld->cur = SIZE_MAX;
	int rc = ini_parse_stream(cfg_reader, ld, cfg_handler, ld);
	if (ferror(ld->fp))
		error_at(ld, ld->file, 0, "read error: %s", strerror(errno));
	else if (rc > 0 && ld->errors == 0)
		error_at(ld, ld->file, rc, "syntax error");
	else if (rc < 0 && rc != -1)
		error_at(ld, ld->file, 0, "out of memory while parsing");
	fclose(ld->fp);
	ld->fp = NULL;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void parse_dropins(struct loader *ld, const char *dir)
{
	char *path = xasprintf("%s/conf.d", dir);
	DIR *d = opendir(path);
	char **names = NULL;
	size_t n = 0;
	struct dirent *de;

	if (!d) {
		if (errno != ENOENT)
			error_at(ld, SIZE_MAX, 0, "%s: cannot open: %s", path, strerror(errno));
		free(path);
		return; /* conf.d is optional */
	}
	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name);
		/* Editors' backups (x.conf~, .x.conf.swp) and packaging leftovers
		 * (x.conf.dpkg-old) do not end in .conf and are skipped. */
		if (de->d_name[0] == '.' || l < 6 || strcmp(de->d_name + l - 5, ".conf") != 0)
			continue;
		names = xrealloc(names, (n + 1) * sizeof(*names));
		names[n++] = cfg_keys_xstrdup(de->d_name);
	}
	closedir(d);
	if (n > 1)
		qsort(names, n, sizeof(*names), name_cmp);
	for (size_t i = 0; i < n; i++) {
		char *file = xasprintf("%s/%s", path, names[i]);
		parse_file(ld, file, true);
		free(file);
		free(names[i]);
	}
	free(names);
	free(path);
}

/* ---- pass 2: applying keys ---------------------------------------------- */

static const struct raw_entry *raw_get(const struct raw_section *sec, const char *key)
{
	for (size_t i = 0; i < sec->n; i++)
		if (strcmp(sec->e[i].key, key) == 0)
			return &sec->e[i];
	return NULL;
}

static int line_of(const struct raw_section *sec, const char *key)
{
	const struct raw_entry *e = raw_get(sec, key);
	return e ? e->line : sec->line;
}

static void unknown_key(struct loader *ld, const struct raw_section *sec,
			const struct raw_entry *e)
{
	const struct key *best = NULL;
	size_t best_d = SIZE_MAX;
	const struct section_kind *sk = cfg_keys_kind(sec->kind);

	for (size_t i = 0; i < sk->n_keys; i++) {
		size_t d = edit_distance(e->key, sk->keys[i].name);
		if (close_enough(e->key, sk->keys[i].name) && d < best_d) {
			best = &sk->keys[i];
			best_d = d;
		}
	}
	if (best) {
		error_at(ld, sec->file, e->line, "%s: unknown key in %s; did you mean %s?", e->key,
			 sk->example, best->name);
		return;
	}
	for (int k = 0; k < SK_N; k++) {
		if (cfg_keys_find((enum sec_kind)k, e->key)) {
			error_at(ld, sec->file, e->line, "%s: unknown key in %s (it is a key of %s)",
				 e->key, sk->example, cfg_keys_kind(k)->example);
			return;
		}
	}
	error_at(ld, sec->file, e->line, "%s: unknown key in %s (see docs/configuration.md)",
		 e->key, sk->example);
}

/*
 * Applies a raw section to obj: its keys, then the defaults of keys not
 * set. type_bit selects the keys of a source type (0: unknown, then no key
 * is refused for its type and no type-specific key is required).
 */
static void apply_section(struct loader *ld, const struct raw_section *sec, void *obj,
			  unsigned type_bit, const char *type_name)
{
	const struct section_kind *sk = cfg_keys_kind(sec->kind);
	char why[512], only[64];

	for (size_t i = 0; i < sec->n; i++) {
		const struct raw_entry *e = &sec->e[i];
		const struct key *k = cfg_keys_find(sec->kind, e->key);
		if (!k) {
			unknown_key(ld, sec, e);
			continue;
		}
		if (type_bit && !cfg_key_applies(k, type_bit)) {
			cfg_keys_only_text(k->only, only, sizeof(only));
			error_at(ld, sec->file, e->line, "%s: only for %s sources (%s is %s)", e->key,
				 only, sec->kind == SK_SENSOR ? "its source" : "this one", type_name);
			continue;
		}
		if (cfg_key_parse(k, obj, e->value, why, sizeof(why)) < 0)
			error_at(ld, sec->file, e->line, "%s: %s", e->key, why);
	}
	for (size_t i = 0; i < sk->n_keys; i++) {
		const struct key *k = &sk->keys[i];
		if (raw_get(sec, k->name) || (k->flags & K_COMPUTED))
			continue;
		if (type_bit == 0 && k->only)
			continue;
		if (!cfg_key_applies(k, type_bit ? type_bit : ONLY_ALL))
			continue;
		if (!k->def) {
			/* The help text says what to write; drop its final period. */
			int hl = (int)strlen(k->help);
			if (hl > 0 && k->help[hl - 1] == '.')
				hl--;
			error_at(ld, sec->file, sec->line, "%s: missing in [%s %s] (%.*s)", k->name,
				 sk->name, sec->name, hl, k->help);
			continue;
		}
		if (cfg_key_parse(k, obj, k->def, why, sizeof(why)) < 0)
			abort(); /* a default that does not parse is a bug in the table */
	}
}

/* ---- pass 3: names, indices and the rules between keys ------------------- */

static void set_default_str(char **field, const char *v)
{
	if (!*field) {
		*field = cfg_keys_xstrdup(v);
	}
}

static void check_readable(struct loader *ld, const struct raw_section *sec, const char *key,
			   const char *path)
{
	if (path && path[0] && access(path, R_OK) < 0)
		error_at(ld, sec->file, line_of(sec, key), "%s: cannot read %s: %s", key, path,
			 strerror(errno));
}

/*
 * A relative password_file or key_file is a systemd credential of that name
 * when the service manager passed one (LoadCredential=NAME:/etc/pdmd/NAME),
 * else a file of the configuration directory: the same file for the
 * service, whose dynamic user cannot read /etc/pdmd/NAME, and for
 * `pdmd check` run by root.
 */
static void resolve_secret_path(const struct pdm_config *c, char **field)
{
	const char *creds = getenv("CREDENTIALS_DIRECTORY");
	char *path = NULL;

	if ((*field)[0] == '/')
		return;
	if (creds && creds[0]) {
		path = xasprintf("%s/%s", creds, *field);
		if (access(path, F_OK) < 0) {
			free(path);
			path = NULL;
		}
	}
	if (!path)
		path = xasprintf("%s/%s", c->dir, *field);
	free(*field);
	*field = path;
}

/* Secrets must be private to the daemon; see pdm_secret_check_file(). */
static void check_secret(struct loader *ld, const struct raw_section *sec, const char *key,
			 char **field, long long max_bytes)
{
	char why[PATH_MAX + 200];

	if (!(*field)[0])
		return;
	resolve_secret_path(ld->cfg, field);
	if (pdm_secret_check_file(*field, max_bytes, why, sizeof(why)) < 0)
		error_at(ld, sec->file, line_of(sec, key), "%s: %s", key, why);
}

static void check_globals(struct loader *ld, const struct raw_section *sec_of[SK_N])
{
	struct pdm_config *c = ld->cfg;
	const struct raw_section *m = sec_of[SK_MQTT];
	const struct raw_section none = { .file = SIZE_MAX };
	char host[256];

	if (!m)
		m = &none;
	if (!c->daemon.host) {
		if (gethostname(host, sizeof(host)) < 0 || host[0] == '\0')
			snprintf(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = '\0';
		c->daemon.host = cfg_keys_xstrdup(host);
	}
	if (!c->storage.file)
		c->storage.file = xasprintf("%s/samples.db", c->daemon.state_dir);
	else if (c->storage.file[0] != '/') {
		char *abs = xasprintf("%s/%s", c->daemon.state_dir, c->storage.file);
		free(c->storage.file);
		c->storage.file = abs;
	}
	if (c->mqtt.password_file[0] && !c->mqtt.username[0])
		error_at(ld, m->file, line_of(m, "password_file"),
			 "password_file: needs username (MQTT sends a password only with a user "
			 "name)");
	if (!c->mqtt.cert_file[0] != !c->mqtt.key_file[0])
		error_at(ld, m->file, line_of(m, c->mqtt.cert_file[0] ? "cert_file" : "key_file"),
			 "%s: cert_file and key_file go together (TLS client certificate and its "
			 "key)", c->mqtt.cert_file[0] ? "cert_file" : "key_file");
	if (pdm_uri_kind(c->mqtt.uri) != PDM_URI_TLS) {
		static const char *const tls_keys[] = { "ca_file", "cert_file", "key_file" };
		for (size_t i = 0; i < ARRAY_LEN(tls_keys); i++) {
			const struct key *k = cfg_keys_find(SK_MQTT, tls_keys[i]);
			if ((*(char **)((char *)c + k->off))[0])
				error_at(ld, m->file, line_of(m, tls_keys[i]),
					 "%s: set, but uri %s is not TLS (use ssl://HOST:8883)",
					 tls_keys[i], c->mqtt.uri);
		}
	}
	check_secret(ld, m, "password_file", &c->mqtt.password_file, MQTT_PASSWORD_MAX + 2);
	check_readable(ld, m, "ca_file", c->mqtt.ca_file);
	check_readable(ld, m, "cert_file", c->mqtt.cert_file);
	check_secret(ld, m, "key_file", &c->mqtt.key_file, MQTT_KEY_FILE_MAX);
}

static void check_sources(struct loader *ld, const struct raw_section **src_sec)
{
	struct pdm_config *c = ld->cfg;

	for (size_t i = 0; i < c->n_sources; i++) {
		struct cfg_source *s = &c->sources[i];
		const struct raw_section *sec = src_sec[i];
		if (s->type == CFG_SRC_MQTT) {
			set_default_str(&s->uri, c->mqtt.uri);
			if (s->format == 1 && s->timestamp && s->timestamp[0])
				error_at(ld, sec->file, line_of(sec, "timestamp"),
					 "timestamp: only for format = json (a value payload has no "
					 "fields)");
		}
		if (s->type == CFG_SRC_MODBUS_RTU && (s->unit < 1 || s->unit > 247))
			error_at(ld, sec->file, line_of(sec, "unit"),
				 "unit: %d is not a Modbus RTU device id (1 .. 247)", s->unit);
		if (s->type != CFG_SRC_MODBUS_RTU || !s->device)
			continue;
		/* One device is one RS-485 bus: one set of line settings. */
		for (size_t j = 0; j < i; j++) {
			const struct cfg_source *t = &c->sources[j];
			if (t->type != CFG_SRC_MODBUS_RTU || !t->device ||
			    strcmp(t->device, s->device) != 0)
				continue;
			static const char *const keys[] = { "baud", "parity", "data_bits",
							    "stop_bits" };
			bool differ[] = { t->baud != s->baud, t->parity != s->parity,
					  t->data_bits != s->data_bits, t->stop_bits != s->stop_bits };
			for (size_t k = 0; k < ARRAY_LEN(keys); k++) {
				if (!differ[k])
					continue;
				char mine[32], theirs[32];
				const struct key *kd = cfg_keys_find(SK_SOURCE, keys[k]);
				cfg_key_format(kd, c, s, mine, sizeof(mine));
				cfg_key_format(kd, c, t, theirs, sizeof(theirs));
				error_at(ld, sec->file, line_of(sec, keys[k]),
					 "%s: %s differs from source %s (%s) on the same bus %s; "
					 "sources on one device share its line settings",
					 keys[k], mine, t->name, theirs, s->device);
			}
			break;
		}
	}
}

/* Resolves sensor -> source; returns the source's type bit (0 if unknown). */
static unsigned resolve_sensor_source(struct loader *ld, const struct raw_section *sec,
				      struct cfg_sensor *s)
{
	const struct pdm_config *c = ld->cfg;
	const struct raw_entry *e = raw_get(sec, "source");

	s->source = SIZE_MAX;
	if (!e || !e->value[0])
		return 0; /* reported by apply_section */
	for (size_t i = 0; i < c->n_sources; i++) {
		if (strcmp(c->sources[i].name, e->value) == 0) {
			s->source = i;
			return 1u << c->sources[i].type;
		}
	}
	const char *hint = NULL;
	for (size_t i = 0; i < c->n_sources; i++)
		if (close_enough(e->value, c->sources[i].name))
			hint = c->sources[i].name;
	if (hint)
		error_at(ld, sec->file, e->line, "source: no [source %s]; did you mean %s?", e->value,
			 hint);
	else
		error_at(ld, sec->file, e->line, "source: no [source %s] is defined", e->value);
	return 0;
}

static void check_sensor(struct loader *ld, const struct raw_section *sec, struct cfg_sensor *s)
{
	struct pdm_config *c = ld->cfg;
	const struct cfg_source *src = s->source < c->n_sources ? &c->sources[s->source] : NULL;
	bool modbus = src && src->type != CFG_SRC_MQTT;

	set_default_str(&s->column, s->short_name);
	if (src && src->type == CFG_SRC_MQTT && src->format == 0)
		set_default_str(&s->field, s->short_name);
	set_default_str(&s->field, "");
	if (src && src->type == CFG_SRC_MQTT && src->format == 1 && s->field[0])
		error_at(ld, sec->file, line_of(sec, "field"),
			 "field: source %s has format = value (the payload is the number)",
			 src->name);
	if (src && src->type == CFG_SRC_MQTT && src->format == 1 && s->quality_field &&
	    s->quality_field[0])
		error_at(ld, sec->file, line_of(sec, "quality_field"),
			 "quality_field: source %s has format = value (the payload is the "
			 "number)", src->name);
	if (src && src->type == CFG_SRC_MQTT && s->quality_good && s->quality_good[0] &&
	    (!s->quality_field || !s->quality_field[0]))
		error_at(ld, sec->file, line_of(sec, "quality_good"),
			 "quality_good: without quality_field there is no flag to read "
			 "(quality_field = values[id=TAG].q, say)");
	if (src && src->type == CFG_SRC_MQTT && src->format == 1 && s->timestamp &&
	    s->timestamp[0])
		error_at(ld, sec->file, line_of(sec, "timestamp"),
			 "timestamp: source %s has format = value (the payload is the number, "
			 "without a time)", src->name);
	if (src && src->type == CFG_SRC_MQTT && src->format == 0 && s->timestamp &&
	    s->timestamp[0] && mqtt_field_check(s->timestamp) < 0)
		error_at(ld, sec->file, line_of(sec, "timestamp"),
			 "timestamp: '%s' is not a dot path such as time (or values[id=Line1.Temp].t)",
			 s->timestamp);
	if (src && src->type == CFG_SRC_MQTT && src->format == 0) {
		if (mqtt_field_check(s->field) < 0)
			error_at(ld, sec->file, line_of(sec, "field"),
				 "field: '%s' is not a dot path such as motor.current (or "
				 "values[id=Line1.Temp].v to pick from a list of tags)", s->field);
		if (s->quality_field && s->quality_field[0] &&
		    mqtt_field_check(s->quality_field) < 0)
			error_at(ld, sec->file, line_of(sec, "quality_field"),
				 "quality_field: '%s' is not a dot path such as status.ok (or "
				 "values[id=Line1.Temp].q)", s->quality_field);
		if (s->quality_good && s->quality_good[0] && s->quality_field &&
		    s->quality_field[0] && mqtt_quality_check(s->quality_good) < 0)
			error_at(ld, sec->file, line_of(sec, "quality_good"),
				 "quality_good: '%s' is neither opc-ua, opc-da nor a list of good "
				 "values such as 192, 216", s->quality_good);
	}
	if (modbus) {
		bool bits = s->reg_kind == CFG_REG_COIL || s->reg_kind == CFG_REG_DI;
		if (!raw_get(sec, "type"))
			s->type = bits ? MB_T_BOOL : MB_T_UINT16;
		else if (bits && s->type != MB_T_BOOL)
			error_at(ld, sec->file, line_of(sec, "type"),
				 "type: %s of a %s is one bit: type = bool", mb_type_name(s->type),
				 s->reg_kind == CFG_REG_COIL ? "coil" : "discrete input");
		int words = bits ? 1 : mb_type_words((enum mb_type)s->type);
		if (s->has_bit && (bits || !mb_type_is_integer((enum mb_type)s->type)))
			error_at(ld, sec->file, line_of(sec, "bit"),
				 "bit: a bit of a %s %s: bits are of integer registers (type int16, "
				 "uint16, ... uint64)", mb_type_name(s->type),
				 bits ? (s->reg_kind == CFG_REG_COIL ? "coil" : "discrete input")
				      : "register");
		else if (s->has_bit && s->bit >= 16 * words)
			error_at(ld, sec->file, line_of(sec, "bit"),
				 "bit: %d is past the %d bits of a %s", s->bit, 16 * words,
				 mb_type_name(s->type));
		if (s->address + words - 1 > 65535)
			error_at(ld, sec->file, line_of(sec, "register"),
				 "register: %s needs %d registers from %d, past the last address 65535",
				 mb_type_name(s->type), words, s->address);
	}
	if (s->has_min && s->has_max && s->valid_min >= s->valid_max)
		error_at(ld, sec->file, line_of(sec, "valid_max"),
			 "valid_max: must be above valid_min");
}

static int default_check_dims(int kind, int C, int W, char *err, size_t len)
{
	if (C < 1) {
		snprintf(err, len, "a model needs at least one sensor");
		return -EINVAL;
	}
	if (kind == CFG_MODEL_MLP_AE && W < 2) {
		snprintf(err, len, "mlp_ae needs a window of at least 2");
		return -EINVAL;
	}
	if (kind == CFG_MODEL_CONV_AE && (W < 8 || W % 4 != 0)) {
		snprintf(err, len, "conv_ae needs a window of at least 8 that is divisible by 4 "
				   "(e.g. %d)", W < 8 ? 8 : (W / 4 + 1) * 4);
		return -EINVAL;
	}
	return 0;
}

static cfg_check_dims_fn check_dims_hook = default_check_dims;

void cfg_set_check_dims(cfg_check_dims_fn fn)
{
	check_dims_hook = fn ? fn : default_check_dims;
}

/* raise_after / clear_after given as a duration: the windows that take at
 * least that long on the asset's grid (one per hop). */
static void resolve_alert_delay(struct loader *ld, const struct raw_section *sec,
				const struct cfg_asset *a, const char *key, int64_t ms, int *count)
{
	int64_t step = cfg_asset_windows_ms(a, 1);
	/* step 0: hop or sample_interval did not parse, which is reported */
	if (ms <= 0 || step <= 0)
		return;
	int64_t n = (ms + step - 1) / step;
	/* The default off-delay is a time; on a grid fine enough to need more
	 * windows than a count may be, it stops at the most there may be. */
	if (n > CFG_ALERT_WINDOWS_MAX && !raw_get(sec, key))
		n = CFG_ALERT_WINDOWS_MAX;
	if (n > CFG_ALERT_WINDOWS_MAX) {
		char d1[32], d2[32], d3[32];
		pdm_format_duration(ms, d1, sizeof(d1));
		pdm_format_duration(a->sample_interval_ms, d2, sizeof(d2));
		pdm_format_duration(step, d3, sizeof(d3));
		error_at(ld, sec->file, line_of(sec, key),
			 "%s: %s is %lld windows of hop %d x %s (%s); at most %d", key, d1,
			 (long long)n, a->hop, d2, d3, CFG_ALERT_WINDOWS_MAX);
		return;
	}
	*count = (int)n;
}

static void check_asset(struct loader *ld, const struct raw_section *sec, struct cfg_asset *a,
			const struct raw_section **sensor_sec)
{
	struct pdm_config *c = ld->cfg;
	char why[256], d1[32], d2[32];

	resolve_alert_delay(ld, sec, a, "raise_after", a->raise_after_ms, &a->raise_after);
	resolve_alert_delay(ld, sec, a, "clear_after", a->clear_after_ms, &a->clear_after);
	if (a->n_sensors == 0) {
		error_at(ld, sec->file, sec->line,
			 "[asset %s]: has no sensors (add [sensor %s.NAME] sections)", a->name,
			 a->name);
		return;
	}
	if (a->hop > a->window)
		error_at(ld, sec->file, line_of(sec, "hop"),
			 "hop: %d is more than window = %d (samples between windows would never "
			 "be scored)", a->hop, a->window);
	why[0] = '\0';
	if (check_dims_hook(a->model, (int)a->n_sensors, a->window, why, sizeof(why)) < 0)
		error_at(ld, sec->file, line_of(sec, raw_get(sec, "window") ? "window" : "model"),
			 "%s: %s", raw_get(sec, "window") ? "window" : "model",
			 why[0] ? why : "this model cannot be built for this window");
	if (a->train_max_windows < a->train_after)
		error_at(ld, sec->file, line_of(sec, "train_max_windows"),
			 "train_max_windows: %lld is less than train_after = %lld",
			 (long long)a->train_max_windows, (long long)a->train_after);
	if (a->train_history_ms > c->storage.retention_ms) {
		pdm_format_duration(a->train_history_ms, d1, sizeof(d1));
		pdm_format_duration(c->storage.retention_ms, d2, sizeof(d2));
		error_at(ld, sec->file, line_of(sec, "train_history"),
			 "train_history: %s is longer than [storage] retention = %s (older samples "
			 "are gone)", d1, d2);
	}
	/* The first training needs train_after windows inside train_history. */
	double need = ((double)(a->train_after - 1) * a->hop + a->window) *
		      (double)a->sample_interval_ms;
	if (need > (double)a->train_history_ms) {
		pdm_format_duration((int64_t)need, d1, sizeof(d1));
		pdm_format_duration(a->train_history_ms, d2, sizeof(d2));
		error_at(ld, sec->file, line_of(sec, "train_after"),
			 "train_after: %lld windows (hop %d, window %d) need %s of data, more than "
			 "train_history = %s", (long long)a->train_after, a->hop, a->window, d1, d2);
	}
	if (a->no_data_after_ms < a->sample_interval_ms)
		error_at(ld, sec->file, line_of(sec, "no_data_after"),
			 "no_data_after: shorter than sample_interval");

	a->hold_ms = xcalloc(a->n_sensors, sizeof(*a->hold_ms));
	a->hold_max_ms = xcalloc(a->n_sensors, sizeof(*a->hold_max_ms));
	a->stuck_after_ms = xcalloc(a->n_sensors, sizeof(*a->stuck_after_ms));
	for (size_t i = 0; i < a->n_sensors; i++) {
		const struct cfg_sensor *s = &c->sensors[a->sensors[i]];
		const struct raw_section *ss = sensor_sec[a->sensors[i]];
		a->hold_ms[i] = s->hold_ms > 0 ? s->hold_ms : a->sample_interval_ms * a->hold;
		a->hold_max_ms[i] = s->hold_ms > 0 ? 0 : CFG_HOLD_LEARN_MAX_MS;
		a->stuck_after_ms[i] = s->stuck_after_ms;
		for (size_t j = 0; j < i; j++) {
			const struct cfg_sensor *t = &c->sensors[a->sensors[j]];
			if (strcmp(s->column, t->column) == 0)
				error_at(ld, ss->file, line_of(ss, "column"),
					 "column: '%s' is also the column of %s", s->column, t->name);
		}
		const struct cfg_source *src = s->source < c->n_sources ? &c->sources[s->source]
									: NULL;
		/* A value older than its hold is a gap: polling slower than that
		 * would leave every window with gaps, so nothing would ever be
		 * scored. Without a hold of its own the sensor's value counts
		 * through its polls; one the user set is a mistake to name. */
		bool polled = src && src->type != CFG_SRC_MQTT;
		if (polled && src->poll_ms > a->hold_ms[i]) {
			if (s->hold_ms <= 0 && a->sample_interval_ms > 0) {
				a->hold_ms[i] = cfg_asset_hold_for(a, src->poll_ms);
			} else {
				pdm_format_duration(src->poll_ms, d1, sizeof(d1));
				pdm_format_duration(a->hold_ms[i], d2, sizeof(d2));
				error_at(ld, ss->file, line_of(ss, "source"),
					 "source: %s polls every %s but the sensor's hold is only %s: "
					 "every window of asset %s would have gaps (leave hold empty, or "
					 "make it longer than the poll)",
					 src->name, d1, d2, a->name);
			}
		}
		/* Polled values repeat between the device's updates: a limit of a
		 * few polls would call every sensor stuck. */
		int64_t grain = a->sample_interval_ms;
		if (polled && src->poll_ms > grain)
			grain = src->poll_ms;
		if (s->stuck_after_ms > 0 && s->stuck_after_ms < 10 * grain) {
			pdm_format_duration(s->stuck_after_ms, d1, sizeof(d1));
			pdm_format_duration(10 * grain, d2, sizeof(d2));
			error_at(ld, ss->file, line_of(ss, "stuck_after"),
				 "stuck_after: %s is too short to tell a frozen value from one that "
				 "did not change between a few readings; %s at least (0 turns the "
				 "check off)", d1, d2);
		}
	}

	const struct raw_entry *rw = raw_get(sec, "run_when");
	if (a->has_run_when && rw) {
		char name[128];
		enum cfg_op op;
		double v;
		if (cfg_keys_run_when_split(rw->value, name, sizeof(name), &op, &v, why,
					    sizeof(why)) < 0)
			return;
		size_t pl = strlen(a->name);
		const char *shortn = name;
		if (strncmp(name, a->name, pl) == 0 && name[pl] == '.')
			shortn = name + pl + 1;
		a->run_sensor = SIZE_MAX;
		for (size_t i = 0; i < a->n_sensors; i++)
			if (strcmp(c->sensors[a->sensors[i]].short_name, shortn) == 0)
				a->run_sensor = a->sensors[i];
		if (a->run_sensor == SIZE_MAX) {
			char list[256] = "";
			size_t used = 0;
			for (size_t i = 0; i < a->n_sensors && used < sizeof(list); i++) {
				int w = snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "",
						 c->sensors[a->sensors[i]].short_name);
				used += w > 0 ? (size_t)w : 0;
			}
			error_at(ld, sec->file, rw->line,
				 "run_when: '%s' is not a sensor of asset %s (its sensors: %s)", name,
				 a->name, list);
			a->has_run_when = false;
		}
	}
}

/*
 * Bytes a sample row takes in samples.db, for the disk figure of the ring
 * warnings: 23.5 to 23.9 measured with fractional values in a full ring
 * (whole numbers take 17; docs/configuration.md says how).
 */
#define RING_BYTES_PER_ROW 24

/* "45 min", "2.8 h", "3.4 d": the ring span is an estimate, not a duration. */
static void format_span(double s, char *buf, size_t len)
{
	if (s >= 2 * 86400.0)
		snprintf(buf, len, "%.1f d", s / 86400.0);
	else if (s >= 2 * 3600.0)
		snprintf(buf, len, "%.1f h", s / 3600.0);
	else if (s >= 120)
		snprintf(buf, len, "%.0f min", s / 60.0);
	else
		snprintf(buf, len, "%.0f s", s);
}

/* "1000 rows/s", "34", "2.5", "0.0167": three digits are plenty. */
static void format_rate(double r, char *buf, size_t len)
{
	if (r >= 100)
		snprintf(buf, len, "%.0f", r);
	else
		snprintf(buf, len, "%.3g", r);
}

/* A size to advise: rounded up to two significant digits, so the reader
 * gets 610000000 rather than 604800000 and is not misled about precision. */
static int64_t round_up_2sig(double v)
{
	if (v >= 9e18)
		return INT64_MAX;
	int64_t n = (int64_t)v;
	if ((double)n < v)
		n++;
	int64_t p = 1;
	while (n / p >= 100)
		p *= 10;
	return (n + p - 1) / p * p;
}

/* "(raise max_samples to about N, some 14 GiB on disk, or shorten KEY)" */
static void ring_advice(double rows, const char *key, char *buf, size_t len)
{
	const struct key *k = cfg_keys_find(SK_STORAGE, "max_samples");
	int64_t n = round_up_2sig(rows);

	if ((double)n > k->max) {
		snprintf(buf, len, "max_samples cannot go that high: shorten %s", key);
		return;
	}
	double gib = (double)n * RING_BYTES_PER_ROW / (1024.0 * 1024 * 1024);
	char disk[48];
	if (gib >= 1)
		snprintf(disk, sizeof(disk), "%.*f GiB", gib < 10 ? 1 : 0, gib);
	else
		snprintf(disk, sizeof(disk), "%.0f MiB", gib * 1024);
	snprintf(buf, len, "raise max_samples to about %lld, some %s on disk, or shorten %s",
		 (long long)n, disk, key);
}

/*
 * max_samples caps the rows of all sensors together, so at a high poll rate
 * the ring ages samples out long before retention or train_history say, and
 * training silently sees hours where days were asked for. The rate is known
 * only for polled (Modbus) sensors; MQTT sensors arrive at the publisher's
 * pace, so they are left out: their rows only make the real span shorter.
 */
static void check_ring(struct loader *ld, const struct raw_section *storage,
		       const struct raw_section **asset_sec)
{
	const struct pdm_config *c = ld->cfg;
	double rate = 0; /* rows per second */
	size_t polled = 0, mqtt = 0;
	char span[32], rs[32], d1[32], ring[320], advice[160];

	for (size_t i = 0; i < c->n_sensors; i++) {
		size_t src = c->sensors[i].source;
		if (src >= c->n_sources)
			continue; /* unresolved: reported already */
		if (c->sources[src].type == CFG_SRC_MQTT) {
			mqtt++;
		} else if (c->sources[src].poll_ms > 0) {
			rate += 1000.0 / (double)c->sources[src].poll_ms;
			polled++;
		}
	}
	if (polled == 0)
		return; /* nothing to estimate from */
	double span_s = (double)c->storage.max_samples / rate;
	format_span(span_s, span, sizeof(span));
	format_rate(rate, rs, sizeof(rs));
	char polled_txt[48], mqtt_txt[48] = "";
	if (polled == 1)
		snprintf(polled_txt, sizeof(polled_txt), "the polled sensor's");
	else
		snprintf(polled_txt, sizeof(polled_txt), "the %zu polled sensors'", polled);
	if (mqtt > 0)
		snprintf(mqtt_txt, sizeof(mqtt_txt), "; %zu MQTT sensor%s not counted", mqtt,
			 mqtt == 1 ? "" : "s");
	snprintf(ring, sizeof(ring),
		 "[storage] max_samples = %lld keeps about %s of %s samples (%s rows/s%s)",
		 (long long)c->storage.max_samples, span, polled_txt, rs, mqtt_txt);

	/* Where to point when the key itself is not in any file: max_samples
	 * is the other half of the mismatch, else the section that lacks it. */
	const struct raw_entry *ms = storage ? raw_get(storage, "max_samples") : NULL;
	for (size_t a = 0; a < c->n_assets; a++) {
		const struct cfg_asset *as = &c->assets[a];
		const struct raw_section *sec = asset_sec[a];
		if ((double)as->train_history_ms / 1000.0 <= span_s)
			continue;
		pdm_format_duration(as->train_history_ms, d1, sizeof(d1));
		ring_advice(rate * (double)as->train_history_ms / 1000.0, "train_history", advice,
			    sizeof(advice));
		const struct raw_entry *th = raw_get(sec, "train_history");
		if (th) {
			warn_at(ld, th->file, th->line,
				"train_history: %s reaches back further than the sample ring "
				"holds: %s; training will use only that (%s)", d1, ring, advice);
			continue;
		}
		warn_at(ld, ms ? ms->file : sec->file, ms ? ms->line : sec->line,
			"train_history: %s (the default) of [asset %s] reaches back further than "
			"the sample ring holds: %s; training will use only that (%s)", d1, as->name,
			ring, advice);
	}

	if ((double)c->storage.retention_ms / 1000.0 <= span_s)
		return;
	const struct raw_entry *re = storage ? raw_get(storage, "retention") : NULL;
	const struct raw_entry *at = re ? re : ms;
	/* A key's file, not its section's: a drop-in may re-open [storage]. */
	size_t file = at ? at->file : storage ? storage->file : 0;
	int line = at ? at->line : storage ? storage->line : 0;
	pdm_format_duration(c->storage.retention_ms, d1, sizeof(d1));
	ring_advice(rate * (double)c->storage.retention_ms / 1000.0, "retention", advice,
		    sizeof(advice));
	warn_at(ld, file, line,
		"retention: %s%s is longer than the sample ring holds: %s; the cap evicts "
		"samples before they are %s old (%s)", d1, re ? "" : " (the default)", ring,
		d1, advice);
}

/* ---- the loader --------------------------------------------------------- */

static void free_raw(struct loader *ld)
{
	for (size_t i = 0; i < ld->n_secs; i++) {
		for (size_t j = 0; j < ld->secs[i].n; j++) {
			free(ld->secs[i].e[j].key);
			free(ld->secs[i].e[j].value);
		}
		free(ld->secs[i].e);
		free(ld->secs[i].name);
	}
	free(ld->secs);
	free(ld->line);
}

static void build(struct loader *ld)
{
	struct pdm_config *c = ld->cfg;
	const struct raw_section *sec_of[SK_N] = { 0 };
	const struct raw_section empty = { .file = 0, .line = 0 };
	size_t n[SK_N] = { 0 };

	for (size_t i = 0; i < ld->n_secs; i++) {
		if (ld->secs[i].skip)
			continue;
		n[ld->secs[i].kind]++;
		if (!cfg_keys_kind(ld->secs[i].kind)->named)
			sec_of[ld->secs[i].kind] = &ld->secs[i];
	}

	/* [daemon], [mqtt], [storage]: defaults even if the section is absent. */
	for (int k = SK_DAEMON; k <= SK_STORAGE; k++) {
		struct raw_section none = empty;
		none.kind = (enum sec_kind)k;
		none.name = "";
		apply_section(ld, sec_of[k] ? sec_of[k] : &none, c, 0, NULL);
	}
	check_globals(ld, sec_of);

	c->sources = xcalloc(n[SK_SOURCE], sizeof(*c->sources));
	c->assets = xcalloc(n[SK_ASSET], sizeof(*c->assets));
	const struct raw_section **src_sec = xcalloc(n[SK_SOURCE], sizeof(*src_sec));
	const struct raw_section **asset_sec = xcalloc(n[SK_ASSET], sizeof(*asset_sec));
	for (size_t i = 0; i < ld->n_secs; i++) {
		struct raw_section *sec = &ld->secs[i];
		if (sec->skip || sec->kind != SK_SOURCE)
			continue;
		struct cfg_source *s = &c->sources[c->n_sources];
		src_sec[c->n_sources] = sec;
		sec->obj = c->n_sources++;
		s->name = cfg_keys_xstrdup(sec->name);
		s->where = (struct cfg_where){ c->files[sec->file], sec->line };
		/* The type decides which keys apply, so it is read first. */
		const struct raw_entry *te = raw_get(sec, "type");
		unsigned bit = 0;
		int t;
		if (te && cfg_keys_source_type(te->value, &t) == 0) {
			s->type = (enum cfg_source_type)t;
			bit = 1u << t;
		}
		apply_section(ld, sec, s, bit, te ? te->value : "");
	}
	check_sources(ld, src_sec);

	for (size_t i = 0; i < ld->n_secs; i++) {
		struct raw_section *sec = &ld->secs[i];
		if (sec->skip || sec->kind != SK_ASSET)
			continue;
		struct cfg_asset *a = &c->assets[c->n_assets];
		asset_sec[c->n_assets] = sec;
		sec->obj = c->n_assets++;
		a->name = cfg_keys_xstrdup(sec->name);
		a->where = (struct cfg_where){ c->files[sec->file], sec->line };
		apply_section(ld, sec, a, 0, NULL);
	}

	/* Sensors are grouped by asset (in asset order, then file order) so
	 * that the printed setup loads back into the same arrays. */
	c->sensors = xcalloc(n[SK_SENSOR], sizeof(*c->sensors));
	const struct raw_section **sensor_sec = xcalloc(n[SK_SENSOR], sizeof(*sensor_sec));
	size_t *owner = xcalloc(n[SK_SENSOR], sizeof(*owner));
	const struct raw_section **sorted = xcalloc(n[SK_SENSOR], sizeof(*sorted));
	size_t n_sorted = 0;
	for (size_t i = 0; i < ld->n_secs; i++) {
		struct raw_section *sec = &ld->secs[i];
		if (sec->skip || sec->kind != SK_SENSOR)
			continue;
		size_t al = (size_t)(strchr(sec->name, '.') - sec->name);
		size_t a = SIZE_MAX;
		for (size_t j = 0; j < c->n_assets; j++)
			if (strlen(c->assets[j].name) == al &&
			    strncmp(c->assets[j].name, sec->name, al) == 0)
				a = j;
		if (a == SIZE_MAX) {
			char asset[72];
			const char *hint = NULL;
			snprintf(asset, sizeof(asset), "%.*s", (int)al, sec->name);
			for (size_t j = 0; j < c->n_assets; j++)
				if (close_enough(asset, c->assets[j].name))
					hint = c->assets[j].name;
			if (hint)
				error_at(ld, sec->file, sec->line,
					 "[sensor %s]: no [asset %s] is defined; did you mean %s?",
					 sec->name, asset, hint);
			else
				error_at(ld, sec->file, sec->line,
					 "[sensor %s]: no [asset %s] is defined (a sensor is named "
					 "ASSET.NAME)", sec->name, asset);
			continue;
		}
		owner[n_sorted] = a;
		sorted[n_sorted++] = sec;
	}
	for (size_t a = 0; a < c->n_assets; a++) {
		struct cfg_asset *as = &c->assets[a];
		as->sensors = xcalloc(n_sorted, sizeof(*as->sensors));
		for (size_t i = 0; i < n_sorted; i++) {
			if (owner[i] != a)
				continue;
			const struct raw_section *sec = sorted[i];
			size_t idx = c->n_sensors++;
			struct cfg_sensor *s = &c->sensors[idx];
			sensor_sec[idx] = sec;
			as->sensors[as->n_sensors++] = idx;
			s->name = cfg_keys_xstrdup(sec->name);
			s->short_name = cfg_keys_xstrdup(strchr(sec->name, '.') + 1);
			s->asset = a;
			s->where = (struct cfg_where){ c->files[sec->file], sec->line };
			unsigned bit = resolve_sensor_source(ld, sec, s);
			const char *tn = bit ? cfg_source_type_name(c->sources[s->source].type) : "";
			apply_section(ld, sec, s, bit, tn);
			check_sensor(ld, sec, s);
		}
	}
	for (size_t a = 0; a < c->n_assets; a++)
		check_asset(ld, asset_sec[a], &c->assets[a], sensor_sec);
	check_ring(ld, sec_of[SK_STORAGE], asset_sec);

	/* A sensor whose source is misspelt would make its real source look
	 * unused: the warning is then noise. */
	bool unresolved = false;
	for (size_t j = 0; j < c->n_sensors; j++)
		unresolved |= c->sensors[j].source == SIZE_MAX;
	/* MQTT value payloads carry one number: one sensor per such source. */
	for (size_t i = 0; i < c->n_sources; i++) {
		size_t users = 0;
		for (size_t j = 0; j < c->n_sensors; j++)
			users += c->sensors[j].source == i;
		if (users == 0 && !unresolved)
			warn_at(ld, src_sec[i]->file, src_sec[i]->line,
				"[source %s]: no sensor reads from it", c->sources[i].name);
		else if (c->sources[i].type == CFG_SRC_MQTT && c->sources[i].format == 1 && users > 1)
			error_at(ld, src_sec[i]->file, line_of(src_sec[i], "format"),
				 "format: value payloads are one number, but %zu sensors read from "
				 "source %s (use one source per topic, or format = json)",
				 users, c->sources[i].name);
	}
	if (c->n_assets == 0 && ld->errors == 0)
		warn_at(ld, 0, 0, "no [asset NAME] is configured: nothing will be monitored");

	free(src_sec);
	free(asset_sec);
	free(sensor_sec);
	free(owner);
	free(sorted);
}

/*
 * cfg_print's output must load back. Resolving can lengthen a value past what
 * a configuration line holds (storage file = state_dir + "/samples.db"), so
 * every line the printout would have is measured like the reader does.
 */
static void check_printable(struct loader *ld, enum sec_kind kind, const void *obj,
			    unsigned type_bit, const char *name, const struct cfg_where *w)
{
	const struct pdm_config *c = ld->cfg;
	const struct section_kind *sk = cfg_keys_kind(kind);
	const int max = INI_MAX_LINE - 2; /* as cfg_reader: the newline and NUL */
	size_t file = SIZE_MAX;
	int line = 0;
	char buf[1024];

	for (size_t i = 0; w && i < c->n_files; i++) {
		if (c->files[i] == w->file) {
			file = i;
			line = w->line;
		}
	}
	for (size_t i = 0; i < sk->n_keys; i++) {
		const struct key *k = &sk->keys[i];
		if (type_bit && !cfg_key_applies(k, type_bit))
			continue;
		cfg_key_format(k, c, obj, buf, sizeof(buf));
		size_t n = strlen(k->name) + 3 + strlen(buf);
		if (n > (size_t)max)
			error_at(ld, file, line,
				 "%s: in [%s%s%s] resolves to '%.40s...', a line of %zu characters "
				 "in the printed setup; at most %d load back (shorten it, or the "
				 "names or directory it is made of)",
				 k->name, sk->name, name[0] ? " " : "", name, buf, n, max);
	}
}

static void check_print(struct loader *ld)
{
	const struct pdm_config *c = ld->cfg;

	for (int k = SK_DAEMON; k <= SK_STORAGE; k++)
		check_printable(ld, (enum sec_kind)k, c, 0, "", NULL);
	for (size_t i = 0; i < c->n_sources; i++)
		check_printable(ld, SK_SOURCE, &c->sources[i], 1u << c->sources[i].type,
				c->sources[i].name, &c->sources[i].where);
	for (size_t i = 0; i < c->n_assets; i++)
		check_printable(ld, SK_ASSET, &c->assets[i], 0, c->assets[i].name,
				&c->assets[i].where);
	for (size_t i = 0; i < c->n_sensors; i++) {
		const struct cfg_sensor *s = &c->sensors[i];
		check_printable(ld, SK_SENSOR, s, 1u << c->sources[s->source].type, s->name,
				&s->where);
	}
}

struct pdm_config *cfg_load(const char *dir, FILE *err)
{
	struct pdm_config *cfg = calloc(1, sizeof(*cfg));
	struct loader ld = { .cfg = cfg, .cur = SIZE_MAX };

	if (!cfg)
		return NULL;
	cfg->dir = cfg_keys_xstrdup(dir);
	/* "etc/" and "etc" name the same files: keep messages free of "//". */
	for (size_t l = strlen(cfg->dir); l > 1 && cfg->dir[l - 1] == '/'; l--)
		cfg->dir[l - 1] = '\0';
	dir = cfg->dir;
	char *main_file = xasprintf("%s/pdmd.conf", dir);
	parse_file(&ld, main_file, true);
	free(main_file);
	parse_dropins(&ld, dir);
	build(&ld);
	if (ld.errors == 0)
		check_print(&ld);
	free_raw(&ld);
	int errors = ld.errors;
	flush_messages(&ld, err);
	if (errors > 0) {
		cfg_free(cfg);
		return NULL;
	}
	return cfg;
}

static void free_strings(enum sec_kind kind, void *obj)
{
	const struct section_kind *sk = cfg_keys_kind(kind);

	for (size_t i = 0; i < sk->n_keys; i++) {
		if (sk->keys[i].type == T_STR) {
			char **p = (char **)((char *)obj + sk->keys[i].off);
			free(*p);
			*p = NULL;
		}
	}
}

void cfg_free(struct pdm_config *cfg)
{
	if (!cfg)
		return;
	for (int k = SK_DAEMON; k <= SK_STORAGE; k++)
		free_strings(k, cfg);
	for (size_t i = 0; i < cfg->n_sources; i++) {
		free_strings(SK_SOURCE, &cfg->sources[i]);
		free(cfg->sources[i].name);
		free(cfg->sources[i].host);
	}
	for (size_t i = 0; i < cfg->n_assets; i++) {
		free(cfg->assets[i].name);
		free(cfg->assets[i].sensors);
		free(cfg->assets[i].hold_ms);
		free(cfg->assets[i].hold_max_ms);
		free(cfg->assets[i].stuck_after_ms);
	}
	for (size_t i = 0; i < cfg->n_sensors; i++) {
		free_strings(SK_SENSOR, &cfg->sensors[i]);
		free(cfg->sensors[i].name);
		free(cfg->sensors[i].short_name);
	}
	for (size_t i = 0; i < cfg->n_files; i++)
		free(cfg->files[i]);
	free(cfg->files);
	free(cfg->sources);
	free(cfg->assets);
	free(cfg->sensors);
	free(cfg->dir);
	free(cfg);
}

/* ---- printing ----------------------------------------------------------- */

static void print_keys(const struct pdm_config *c, enum sec_kind kind, const void *obj,
		       unsigned type_bit, FILE *out)
{
	const struct section_kind *sk = cfg_keys_kind(kind);
	char buf[1024];
	for (size_t i = 0; i < sk->n_keys; i++) {
		const struct key *k = &sk->keys[i];
		if (type_bit && !cfg_key_applies(k, type_bit))
			continue;
		cfg_key_format(k, c, obj, buf, sizeof(buf));
		fprintf(out, "%s =%s%s\n", k->name, buf[0] ? " " : "", buf);
	}
}

/* Appends name to a ", "-separated list, once. */
static void name_once(char *list, size_t len, const char *name)
{
	size_t n = strlen(name), at;
	for (const char *p = list; *p;) {
		size_t l = strcspn(p, ",");
		if (l == n && !strncmp(p, name, n))
			return;
		p += l;
		p += strspn(p, ", ");
	}
	at = strlen(list);
	if (at + n + 3 < len)
		snprintf(list + at, len - at, "%s%s", at ? ", " : "", name);
}

/* Whose clock the asset's windows run on (docs/alerts.md): said when it is
 * not simply this host's. */
static void print_clocks(const struct pdm_config *c, const struct cfg_asset *as, FILE *out)
{
	char host[512] = "", dev[512] = "";
	for (size_t j = 0; j < as->n_sensors; j++) {
		const struct cfg_sensor *se = &c->sensors[as->sensors[j]];
		const struct cfg_source *src = &c->sources[se->source];
		char own[300];
		if (!cfg_sensor_device_time(c, se)) {
			name_once(host, sizeof(host), src->name);
			continue;
		}
		/* a source whose values carry times of their own: say so, since
		 * the source may be on both sides */
		snprintf(own, sizeof(own), "%s%s", src->name,
			 cfg_source_device_time(src) ? "" : "'s own value times");
		name_once(dev, sizeof(dev), own);
	}
	if (dev[0] && !host[0])
		fprintf(out, "# runs on its devices' clock: every sample carries its device's time "
			"(%s)\n", dev);
	else if (dev[0])
		fprintf(out, "# mixes samples stamped on receipt (%s) with samples stamped by their "
			"devices (%s): its windows wait for the latter as long as they lag, up to a "
			"minute\n", host, dev);
}

void cfg_print(const struct pdm_config *c, FILE *out)
{
	fprintf(out, "# pdmd configuration from %s, resolved (defaults included)\n", c->dir);
	for (int k = SK_DAEMON; k <= SK_STORAGE; k++) {
		fprintf(out, "\n[%s]\n", cfg_keys_kind(k)->name);
		print_keys(c, (enum sec_kind)k, c, 0, out);
	}
	for (size_t i = 0; i < c->n_sources; i++) {
		const struct cfg_source *s = &c->sources[i];
		fprintf(out, "\n# %s:%d\n[source %s]\n", s->where.file, s->where.line, s->name);
		print_keys(c, SK_SOURCE, s, 1u << s->type, out);
	}
	for (size_t a = 0; a < c->n_assets; a++) {
		const struct cfg_asset *as = &c->assets[a];
		fprintf(out, "\n# %s:%d\n", as->where.file, as->where.line);
		/* Alarm delays are thought of in time; the keys may be counts. */
		char tr[32], tc[32], iv[32];
		pdm_format_duration(cfg_asset_windows_ms(as, as->raise_after), tr, sizeof(tr));
		pdm_format_duration(cfg_asset_windows_ms(as, as->clear_after), tc, sizeof(tc));
		pdm_format_duration(as->sample_interval_ms, iv, sizeof(iv));
		fprintf(out, "# alerts raise after %s over the threshold and clear after %s under it "
			"(%d and %d windows of hop %d x %s)\n",
			tr, tc, as->raise_after, as->clear_after, as->hop, iv);
		/* When a new install starts to watch: the first model, then the
		 * learning after it (alerts off). */
		char tf[32], tl[32], tm[32];
		int64_t span = cfg_asset_windows_ms(as, as->train_after);
		pdm_format_approx(span, tf, sizeof(tf));
		pdm_format_approx(as->learn_for_ms, tl, sizeof(tl));
		pdm_format_approx(as->learn_min_ms, tm, sizeof(tm));
		if (as->learn_for_ms > 0 && as->learn_min_ms > span + as->learn_for_ms) {
			fprintf(out, "# first model after %s of running data (train_after %lld windows), "
				"alerts once its data spans %s (learn_min)\n",
				tf, (long long)as->train_after, tm);
		} else if (as->learn_for_ms > 0 && as->learn_min_ms > span) {
			fprintf(out, "# first model after %s of running data (train_after %lld windows), "
				"then alerts once it knows the machine, not before its data spans %s "
				"(learn_min), at most %s after the model (learn_for)\n",
				tf, (long long)as->train_after, tm, tl);
		} else if (as->learn_for_ms > 0)
			fprintf(out, "# first model after %s of running data (train_after %lld windows), "
				"then alerts once it knows the machine, at most %s later (learn_for)\n",
				tf, (long long)as->train_after, tl);
		else
			fprintf(out, "# first model after %s of running data (train_after %lld windows), "
				"alerts from it on (learn_for = 0)\n",
				tf, (long long)as->train_after);
		if (as->learn_for_ms > 0 && as->learn_alert_over > 0)
			fprintf(out, "# while learning, %g windows in a row at %g times the threshold "
				"still raise an alert (learn_alert_over)\n",
				(double)as->raise_after, as->learn_alert_over);
		/* What a small box must have spare while the asset trains: the
		 * trainer holds its sample of windows (docs/configuration.md). */
		double mib = (double)as->train_max_windows * (double)as->n_sensors *
			     (double)as->window * sizeof(float) / (1024.0 * 1024.0);
		fprintf(out, "# training holds up to %.1f MiB of windows (train_max_windows %lld x %zu "
			"sensors x window %d x 4 bytes)\n",
			mib, (long long)as->train_max_windows, as->n_sensors, as->window);
		print_clocks(c, as, out);
		fprintf(out, "[asset %s]\n", as->name);
		print_keys(c, SK_ASSET, as, 0, out);
		for (size_t j = 0; j < as->n_sensors; j++) {
			const struct cfg_sensor *s = &c->sensors[as->sensors[j]];
			fprintf(out, "\n# %s:%d\n", s->where.file, s->where.line);
			if (s->hold_ms <= 0 && as->hold_ms[j] > as->sample_interval_ms * as->hold) {
				char h[32], p[32];
				pdm_format_duration(as->hold_ms[j], h, sizeof(h));
				pdm_format_duration(c->sources[s->source].poll_ms, p, sizeof(p));
				fprintf(out, "# its value counts for %s, half again its source's poll of "
					"%s (no hold of its own)\n", h, p);
			}
			fprintf(out, "[sensor %s]\n", s->name);
			print_keys(c, SK_SENSOR, s, 1u << c->sources[s->source].type, out);
		}
	}
}

/* ---- lookups ------------------------------------------------------------ */

const struct cfg_source *cfg_find_source(const struct pdm_config *c, const char *name)
{
	for (size_t i = 0; c && name && i < c->n_sources; i++)
		if (strcmp(c->sources[i].name, name) == 0)
			return &c->sources[i];
	return NULL;
}

const struct cfg_asset *cfg_find_asset(const struct pdm_config *c, const char *name)
{
	for (size_t i = 0; c && name && i < c->n_assets; i++)
		if (strcmp(c->assets[i].name, name) == 0)
			return &c->assets[i];
	return NULL;
}

const struct cfg_sensor *cfg_find_sensor(const struct pdm_config *c, const char *name)
{
	for (size_t i = 0; c && name && i < c->n_sensors; i++)
		if (strcmp(c->sensors[i].name, name) == 0)
			return &c->sensors[i];
	return NULL;
}
