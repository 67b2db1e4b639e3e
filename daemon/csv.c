/*
 * csv.c - streaming, memory-bounded reader for historian CSV exports.
 *
 * Design constraints:
 * - Bounded memory: one buffer that grows up to the line cap (+3 bytes for a
 *   CRLF and a NUL) and never beyond; a longer record is -E2BIG, not a crash.
 * - No allocation per row or per cell. A record is first framed (fields found,
 *   quotes respected) without touching the bytes, so running out of buffer
 *   mid-record just means "read more and frame again from the record start".
 *   Only the fields the caller asked for are then unquoted and terminated in
 *   place and converted.
 * - Numbers are parsed with an exact fast path (at most 15 significant digits
 *   and a power of ten up to 1e22 give a correctly rounded double with one
 *   multiplication or division, both operands being exact) and otherwise
 *   strtod_l() in the C locale, so the process locale never changes results.
 * - Every message names file:line:col (1-based, col counted in bytes from the
 *   start of the physical line, like compilers do) and the column's name.
 */
#include "csv.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pdm_time.h"

#define CSV_INITIAL_BUF ((size_t)256 << 10)
#define CSV_MIN_MAX_LINE 16
/* Far beyond any export, and keeps the header's bookkeeping under 5 MB. */
#define CSV_MAX_COLUMNS 100000
/* Epoch times are accepted from year 1 to year 9999. */
#define CSV_TS_MIN (-62135596800000LL)
#define CSV_TS_MAX (253402300799999LL)

enum time_fmt { TF_UNKNOWN, TF_EPOCH_S, TF_EPOCH_MS, TF_EPOCH_US, TF_EPOCH_NS, TF_ISO };

/* A place in the current record: byte offset in buf, start of its physical
 * line in buf, and how many line breaks (inside quotes) precede it. */
struct where {
	size_t off;
	size_t line_start;
	size_t nl;
};

struct field {
	size_t s, e; /* content, quotes excluded, blanks around unquoted content trimmed */
	struct where at;
	bool quoted;
};

struct rec {
	size_t start; /* offset of the record in buf */
	size_t n_fields;
	size_t n_lines;
	bool nonblank;
	bool bad_quote;      /* text after a closing quote */
	struct where bad_at; /* where that text is, or the unterminated quote */
	struct where extra;  /* first (non-empty) field beyond the header's count */
	bool extra_nonblank; /* a field beyond the header's count holds something */
	struct where end;    /* end of the record's content */
};

struct csv_reader {
	char *name;
	int fd;
	bool own_fd;
	const char *mem;
	size_t mem_len, mem_pos;
	bool eof;

	char *buf;
	size_t cap, len, pos;
	uint64_t discarded; /* bytes dropped from the front of buf so far */
	size_t max_line;

	size_t line;     /* physical line where the next record starts */
	size_t row_line; /* physical line of the record last returned */

	char delim;
	char dec;        /* 0 until the first number with a separator */
	size_t dec_line; /* where that number was */

	/* header */
	size_t n_header;
	char *names_blk;
	char **names;
	int32_t *slot; /* per header field: -1 ignored, 0 time, 1 + i column i */
	bool header_mode;
	bool last_unnamed; /* header ends with a delimiter: rows may omit that field */
	struct field *fields; /* n_slots in data mode; grown in header mode */
	size_t n_slots, fields_cap;
	size_t time_field;
	size_t *col_field; /* header index of each asked column */

	enum time_fmt tfmt;
	bool unit_by_name;
	int64_t last_ts;
	bool have_ts;
	int64_t tol_ms;
	uint64_t skipped;

	int fatal;
	char *fatal_msg;
	locale_t c_loc;
};

/* ------------------------------------------------------------------ */
/* messages */

static void msg_at(const struct csv_reader *r, char *err, size_t errlen, size_t line, size_t col,
		   const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void msg_at(const struct csv_reader *r, char *err, size_t errlen, size_t line, size_t col,
		   const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!err || errlen == 0)
		return;
	n = snprintf(err, errlen, "%s:%zu:%zu: ", r->name, line, col);
	if (n < 0 || (size_t)n >= errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
	va_end(ap);
}

static size_t where_line(const struct csv_reader *r, const struct where *w)
{
	return r->row_line + w->nl;
}

static size_t where_col(const struct where *w)
{
	return w->off - w->line_start + 1;
}

/* Copies a cell into out as printable text for a message: at most 40 bytes,
 * control and non-ASCII bytes escaped, "..." when cut. */
static const char *cell_text(const char *s, size_t n, char *out, size_t outlen)
{
	size_t o = 0;
	size_t i;

	for (i = 0; i < n && o + 8 < outlen && i < 40; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c < 0x7f && c != '\\')
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", c);
	}
	if (i < n && o + 4 <= outlen) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}

/* ------------------------------------------------------------------ */
/* input */

/* Moves the unread bytes to the front, grows the buffer if a record fills
 * it, and reads more. Returns bytes read (0 at end of input) or -errno. */
static ssize_t fill(struct csv_reader *r)
{
	if (r->pos > 0) {
		memmove(r->buf, r->buf + r->pos, r->len - r->pos);
		r->len -= r->pos;
		r->discarded += r->pos;
		r->pos = 0;
	}
	size_t limit = r->max_line + 3;
	if (r->len + 1 >= r->cap) {
		if (r->cap >= limit)
			return -E2BIG;
		size_t ncap = r->cap * 2 < limit ? r->cap * 2 : limit;
		char *nb = realloc(r->buf, ncap);
		if (!nb)
			return -ENOMEM;
		r->buf = nb;
		r->cap = ncap;
	}
	size_t room = r->cap - 1 - r->len;
	ssize_t n;
	if (r->mem) {
		n = (ssize_t)(r->mem_len - r->mem_pos < room ? r->mem_len - r->mem_pos : room);
		memcpy(r->buf + r->len, r->mem + r->mem_pos, (size_t)n);
		r->mem_pos += (size_t)n;
	} else {
		do {
			n = read(r->fd, r->buf + r->len, room);
		} while (n < 0 && errno == EINTR);
		if (n < 0)
			return -errno;
	}
	if (n == 0)
		r->eof = true;
	r->len += (size_t)n;
	r->buf[r->len] = '\0';
	return n;
}

/* ------------------------------------------------------------------ */
/* framing */

enum { SCAN_NEED = 0, SCAN_REC = 1, SCAN_END = 2 };

static inline bool is_blank(unsigned char c, unsigned char delim)
{
	return (c == ' ' || c == '\t') && c != delim;
}

static int store_field(struct csv_reader *r, struct rec *rec, size_t f, const struct field *fl)
{
	if (r->header_mode) {
		if (f >= CSV_MAX_COLUMNS)
			return -EMSGSIZE;
		if (f >= r->fields_cap) {
			size_t ncap = r->fields_cap ? r->fields_cap * 2 : 16;
			struct field *nf = realloc(r->fields, ncap * sizeof(*nf));
			if (!nf)
				return -ENOMEM;
			r->fields = nf;
			r->fields_cap = ncap;
		}
		r->fields[f] = *fl;
	} else if (f < r->n_header) {
		int32_t s = r->slot[f];
		if (s >= 0)
			r->fields[s] = *fl;
	} else if (!rec->extra_nonblank) {
		bool blank = !fl->quoted && fl->e == fl->s;
		if (f == r->n_header || !blank)
			rec->extra = fl->at;
		rec->extra_nonblank = !blank;
	}
	return 0;
}

/*
 * Frames one record starting at r->pos without modifying it. Returns
 * SCAN_REC (r->pos moved past it), SCAN_END, SCAN_NEED (more input needed),
 * -E2BIG, -EPROTO (quote open at end of input, rec->bad_at says where),
 * -EMSGSIZE (too many columns in the header) or -ENOMEM.
 */
static int scan(struct csv_reader *r, struct rec *rec)
{
	const unsigned char *b = (const unsigned char *)r->buf;
	const size_t end = r->len;
	const unsigned char d = (unsigned char)r->delim;
	const size_t start = r->pos;
	size_t i = start, nl = 0, ls = start, f = 0;

	memset(rec, 0, sizeof(*rec));
	rec->start = start;
	if (i >= end)
		return r->eof ? SCAN_END : SCAN_NEED;
	for (;;) {
		struct field fl;
		fl.at = (struct where){ i, ls, nl };
		while (i < end && is_blank(b[i], d))
			i++;
		if (i < end && b[i] == '"') {
			struct where open = { i, ls, nl };
			fl.quoted = true;
			fl.s = ++i;
			for (;;) {
				if (i >= end) {
					if (!r->eof)
						goto need;
					rec->bad_at = open;
					return -EPROTO;
				}
				unsigned char c = b[i];
				if (c == '"') {
					if (i + 1 >= end && !r->eof)
						goto need;
					if (i + 1 < end && b[i + 1] == '"') {
						i += 2;
						continue;
					}
					break;
				}
				if (c == '\n') {
					nl++;
					ls = i + 1;
				}
				i++;
			}
			fl.e = i++;
			while (i < end && is_blank(b[i], d))
				i++;
			if (i < end && b[i] != d && b[i] != '\n' && b[i] != '\r') {
				if (!rec->bad_quote) {
					rec->bad_quote = true;
					rec->bad_at = (struct where){ i, ls, nl };
				}
				while (i < end && b[i] != d && b[i] != '\n' && b[i] != '\r')
					i++;
			}
			rec->nonblank = true;
		} else {
			fl.quoted = false;
			fl.s = i;
			while (i < end && b[i] != d && b[i] != '\n' && b[i] != '\r')
				i++;
			size_t e = i;
			while (e > fl.s && is_blank(b[e - 1], d))
				e--;
			fl.e = e;
			if (e > fl.s)
				rec->nonblank = true;
		}
		int rc = store_field(r, rec, f, &fl);
		if (rc < 0)
			return rc;
		f++;
		if (i >= end) {
			if (!r->eof)
				goto need;
			rec->end = (struct where){ i, ls, nl };
			rec->n_fields = f;
			rec->n_lines = nl + 1;
			if (i - start > r->max_line)
				return -E2BIG;
			r->pos = i;
			return SCAN_REC;
		}
		if (b[i] == d) {
			i++;
			continue;
		}
		size_t term = 1;
		if (b[i] == '\r') {
			if (i + 1 >= end && !r->eof)
				goto need;
			if (i + 1 < end && b[i + 1] == '\n')
				term = 2;
		}
		rec->end = (struct where){ i, ls, nl };
		rec->n_fields = f;
		rec->n_lines = nl + 1;
		if (i - start > r->max_line)
			return -E2BIG;
		r->pos = i + term;
		return SCAN_REC;
	}
need:
	if (end - start > r->max_line)
		return -E2BIG;
	return SCAN_NEED;
}

/* Frames the next record, reading as needed. Returns SCAN_REC, SCAN_END or
 * a negative code; on a negative code a message is in err. */
static int next_record(struct csv_reader *r, struct rec *rec, char *err, size_t errlen)
{
	for (;;) {
		int rc = scan(r, rec);
		if (rc == SCAN_REC || rc == SCAN_END)
			return rc;
		if (rc == -E2BIG) {
			msg_at(r, err, errlen, r->line, 1,
			       "line longer than %zu bytes (wrong file, or a missing line end?)",
			       r->max_line);
			return rc;
		}
		if (rc == -EMSGSIZE) {
			msg_at(r, err, errlen, r->line, 1, "more than %d columns", CSV_MAX_COLUMNS);
			return rc;
		}
		if (rc == -EPROTO) {
			r->row_line = r->line;
			msg_at(r, err, errlen, where_line(r, &rec->bad_at), where_col(&rec->bad_at),
			       "quoted field never closed (a '\"' is missing)");
			return rc;
		}
		if (rc < 0) {
			msg_at(r, err, errlen, r->line, 1, "%s", strerror(-rc));
			return rc;
		}
		ssize_t n = fill(r);
		if (n < 0) {
			if (n == -E2BIG)
				msg_at(r, err, errlen, r->line, 1, "line longer than %zu bytes",
				       r->max_line);
			else
				msg_at(r, err, errlen, r->line, 1, "read failed: %s",
				       strerror((int)-n));
			return (int)n;
		}
	}
}

/* Unquotes (doubled quotes) and trims a field in place and NUL-terminates
 * it. Returns its start; *len gets its length. */
static char *field_text(struct csv_reader *r, const struct field *fl, size_t *len)
{
	char *s = r->buf + fl->s;
	size_t n = fl->e - fl->s;

	if (fl->quoted) {
		size_t o = 0;
		for (size_t i = 0; i < n; i++) {
			s[o++] = s[i];
			if (s[i] == '"' && i + 1 < n && s[i + 1] == '"')
				i++;
		}
		n = o;
		while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
			n--;
		while (n > 0 && (*s == ' ' || *s == '\t')) {
			s++;
			n--;
		}
	}
	s[n] = '\0';
	*len = n;
	return s;
}

/* ------------------------------------------------------------------ */
/* numbers */

enum num_rc { NUM_OK = 0, NUM_GAP, NUM_BAD, NUM_INF };

static const double pow10_exact[23] = {
	1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

static bool is_gap_word(const char *s, size_t n)
{
	static const char *const words[] = { "nan", "-nan", "+nan", "na", "n/a", "#n/a", "null", "none" };

	if (n > 4)
		return false;
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strlen(words[i]) == n && strncasecmp(s, words[i], n) == 0)
			return true;
	return false;
}

/*
 * Parses a decimal number: [+-] digits [sep digits] [e [+-] digits], sep '.'
 * or (when the delimiter is not ',') ','. *sep_out gets the separator seen or
 * 0; *int_out gets the exact value when it is an integer that fits int64
 * (*is_int true), so epoch times in ns lose nothing to rounding. s is
 * NUL-terminated at s[n]; a decimal comma is swapped for strtod_l and back.
 */
static enum num_rc parse_number(const struct csv_reader *r, char *s, size_t n, double *out,
				char *sep_out, bool *is_int, int64_t *int_out)
{
	size_t i = 0;
	bool neg = false;
	uint64_t m = 0;
	int sig = 0, dropped = 0, exp10 = 0, digits = 0;
	size_t sep_pos = 0;
	char sep = 0;

	*sep_out = 0;
	*is_int = false;
	if (n == 0)
		return NUM_GAP;
	if (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-';
		i++;
	}
	for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, digits++) {
		if (m == 0 && s[i] == '0')
			continue;
		if (sig < 19) {
			m = m * 10 + (uint64_t)(s[i] - '0');
			sig++;
		} else {
			dropped++;
		}
	}
	if (i < n && (s[i] == '.' || (s[i] == ',' && r->delim != ','))) {
		sep = s[i];
		sep_pos = i++;
		for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, digits++) {
			if (m == 0 && s[i] == '0') {
				exp10--;
				continue;
			}
			if (sig < 19) {
				m = m * 10 + (uint64_t)(s[i] - '0');
				sig++;
				exp10--;
			}
		}
	}
	if (digits == 0)
		goto not_number;
	bool has_exp = false;
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		size_t j = i + 1;
		bool eneg = false;
		int e = 0, edigits = 0;
		if (j < n && (s[j] == '+' || s[j] == '-'))
			eneg = s[j++] == '-';
		for (; j < n && s[j] >= '0' && s[j] <= '9'; j++, edigits++)
			if (e < 100000)
				e = e * 10 + (s[j] - '0');
		if (edigits == 0)
			goto not_number;
		exp10 += eneg ? -e : e;
		has_exp = true;
		i = j;
	}
	if (i != n)
		goto not_number;
	*sep_out = sep;
	exp10 += dropped;
	if (!sep && !has_exp && dropped == 0 && m <= (uint64_t)INT64_MAX) {
		*is_int = true;
		*int_out = neg ? -(int64_t)m : (int64_t)m;
	}
	if (sig <= 15 && exp10 >= -22 && exp10 <= 22) {
		double v = (double)m;
		v = exp10 < 0 ? v / pow10_exact[-exp10] : v * pow10_exact[exp10];
		*out = neg ? -v : v;
		return NUM_OK;
	}
	if (m == 0) {
		*out = neg ? -0.0 : 0.0;
		return NUM_OK;
	}
	if (sep == ',')
		s[sep_pos] = '.';
	char *endp;
	errno = 0;
	double v = strtod_l(s, &endp, r->c_loc);
	if (sep == ',')
		s[sep_pos] = ',';
	if (endp != s + n)
		return NUM_BAD;
	if (!isfinite(v))
		return NUM_INF;
	*out = v;
	return NUM_OK;

not_number:
	if (is_gap_word(s, n))
		return NUM_GAP;
	{
		size_t k = (s[0] == '+' || s[0] == '-') ? 1 : 0;
		if (strcasecmp(s + k, "inf") == 0 || strcasecmp(s + k, "infinity") == 0)
			return NUM_INF;
	}
	return NUM_BAD;
}

/* Checks the file's decimal separator; returns false with a message if
 * sep contradicts the one seen first. */
static bool check_decimal(struct csv_reader *r, char sep, const struct where *at, char *err,
			  size_t errlen)
{
	if (!sep)
		return true;
	if (!r->dec) {
		r->dec = sep;
		r->dec_line = where_line(r, at);
		return true;
	}
	if (sep == r->dec)
		return true;
	msg_at(r, err, errlen, where_line(r, at), where_col(at),
	       "decimal %s here, but line %zu uses a decimal %s", sep == ',' ? "comma" : "point",
	       r->dec_line, r->dec == ',' ? "comma" : "point");
	return false;
}

/* ------------------------------------------------------------------ */
/* times */

static const char *tf_name(enum time_fmt f)
{
	switch (f) {
	case TF_EPOCH_S: return "epoch_s";
	case TF_EPOCH_MS: return "epoch_ms";
	case TF_EPOCH_US: return "epoch_us";
	case TF_EPOCH_NS: return "epoch_ns";
	case TF_ISO: return "iso8601";
	case TF_UNKNOWN: break;
	}
	return "unknown";
}

static const char *tf_unit(enum time_fmt f)
{
	switch (f) {
	case TF_EPOCH_S: return "seconds";
	case TF_EPOCH_MS: return "milliseconds";
	case TF_EPOCH_US: return "microseconds";
	case TF_EPOCH_NS: return "nanoseconds";
	case TF_ISO: return "ISO-8601";
	case TF_UNKNOWN: break;
	}
	return "unknown";
}

/* Unit from the magnitude of an epoch value: seconds below 1e11 (year 5138),
 * then ms (up to year 5138 again), us, ns. */
static enum time_fmt unit_of(double v)
{
	v = fabs(v);
	if (v < 1e11)
		return TF_EPOCH_S;
	if (v < 1e14)
		return TF_EPOCH_MS;
	if (v < 1e17)
		return TF_EPOCH_US;
	return TF_EPOCH_NS;
}

/* A unit stated by the column's name suffix (ts_ms, time_s, stamp_ns, ...). */
static enum time_fmt unit_from_name(const char *name)
{
	static const struct {
		const char *suffix;
		enum time_fmt f;
	} sfx[] = {
		{ "_ms", TF_EPOCH_MS }, { "_us", TF_EPOCH_US }, { "_ns", TF_EPOCH_NS },
		{ "_s", TF_EPOCH_S },   { "_sec", TF_EPOCH_S },
	};
	size_t n = strlen(name);

	for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		size_t k = strlen(sfx[i].suffix);
		if (n > k && strcasecmp(name + n - k, sfx[i].suffix) == 0)
			return sfx[i].f;
	}
	return TF_UNKNOWN;
}

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Converts an epoch value in unit f to ms. Returns false when out of range. */
static bool epoch_to_ms(enum time_fmt f, bool is_int, int64_t iv, double v, int64_t *ms)
{
	if (is_int) {
		switch (f) {
		case TF_EPOCH_S:
			if (iv > CSV_TS_MAX / 1000 || iv < CSV_TS_MIN / 1000)
				return false;
			*ms = iv * 1000;
			break;
		case TF_EPOCH_MS: *ms = iv; break;
		case TF_EPOCH_US: *ms = floor_div(iv, 1000); break;
		case TF_EPOCH_NS: *ms = floor_div(iv, 1000000); break;
		case TF_ISO:
		case TF_UNKNOWN: return false;
		}
	} else {
		double scale = f == TF_EPOCH_S ? 1e3 : f == TF_EPOCH_MS ? 1.0 : f == TF_EPOCH_US ? 1e-3 : 1e-6;
		double x = floor(v * scale + 0.5);
		if (!(x >= (double)CSV_TS_MIN && x <= (double)CSV_TS_MAX))
			return false;
		*ms = (int64_t)x;
	}
	return *ms >= CSV_TS_MIN && *ms <= CSV_TS_MAX;
}

static int parse_time(struct csv_reader *r, const struct field *fl, int64_t *ts, char *err,
		      size_t errlen)
{
	size_t n;
	char *s = field_text(r, fl, &n);
	char cell[200];
	size_t line = where_line(r, &fl->at), col = where_col(&fl->at);
	const char *tname = r->names[r->time_field];

	if (n == 0) {
		msg_at(r, err, errlen, line, col, "time column '%s' is empty", tname);
		return -EINVAL;
	}
	if (strcmp(s, tname) == 0) {
		msg_at(r, err, errlen, line, col, "the header again (files joined together?)");
		return -EINVAL;
	}
	if (r->tfmt != TF_ISO) {
		double v = 0;
		char sep;
		bool is_int;
		int64_t iv = 0;
		enum num_rc rc = parse_number(r, s, n, &v, &sep, &is_int, &iv);
		if (rc == NUM_OK) {
			if (!check_decimal(r, sep, &fl->at, err, errlen))
				return -EINVAL;
			if (is_int)
				v = (double)iv;
			enum time_fmt u = unit_of(v);
			if (r->tfmt == TF_UNKNOWN) {
				r->tfmt = u;
			} else if (!r->unit_by_name && u > r->tfmt) {
				msg_at(r, err, errlen, line, col,
				       "time '%s' looks like %s but the file's first row is in %s",
				       cell_text(s, n, cell, sizeof(cell)), tf_unit(u),
				       tf_unit(r->tfmt));
				return -EINVAL;
			}
			if (!epoch_to_ms(r->tfmt, is_int, iv, v, ts)) {
				msg_at(r, err, errlen, line, col, "time '%s' out of range (%s)",
				       cell_text(s, n, cell, sizeof(cell)), tf_unit(r->tfmt));
				return -EINVAL;
			}
			return 0;
		}
		if (r->tfmt != TF_UNKNOWN) {
			msg_at(r, err, errlen, line, col,
			       "bad time '%s' in column '%s' (the file's times are epoch %s)",
			       cell_text(s, n, cell, sizeof(cell)), tname, tf_unit(r->tfmt));
			return -EINVAL;
		}
	}
	if (strlen(s) == n && pdm_parse_iso8601(s, ts) == 0) {
		r->tfmt = TF_ISO;
		return 0;
	}
	msg_at(r, err, errlen, line, col,
	       "bad time '%s' in column '%s' (expected epoch s/ms or ISO-8601 like "
	       "2026-01-31T12:00:00Z or 2026-01-31 12:00:00)",
	       cell_text(s, n, cell, sizeof(cell)), tname);
	return -EINVAL;
}

/* ------------------------------------------------------------------ */
/* header */

/* Counts ',', ';' and tab outside quotes on the line at b[0..n); returns
 * the line's length including its terminator, or 0 if it has none. */
static size_t count_delims(const char *b, size_t n, size_t cnt[3], bool *blank)
{
	bool inq = false;

	cnt[0] = cnt[1] = cnt[2] = 0;
	*blank = true;
	for (size_t i = 0; i < n; i++) {
		char c = b[i];
		if (c == '"') {
			inq = !inq;
		} else if (!inq) {
			if (c == '\n' || c == '\r') {
				if (c == '\r' && i + 1 < n && b[i + 1] == '\n')
					i++;
				return i + 1;
			}
			if (c == '\t')
				cnt[0]++;
			else if (c == ';')
				cnt[1]++;
			else if (c == ',')
				cnt[2]++;
		}
		if (c != ' ' && c != '\t' && c != ',' && c != ';')
			*blank = false;
	}
	return 0;
}

/* Picks the delimiter from the header line (at r->pos) and the first
 * non-blank line after it: one that occurs the same, non-zero, number of
 * times in both, preferring tab, then ';', then ','; failing that the most
 * frequent one in the header. */
static int detect_delimiter(struct csv_reader *r, char *err, size_t errlen)
{
	static const char cands[3] = { '\t', ';', ',' };
	size_t h[3], dl[3];
	bool have_data = false, blank;

	for (;;) {
		size_t avail = r->len - r->pos;
		size_t used = count_delims(r->buf + r->pos, avail, h, &blank);
		if (used) {
			size_t off = r->pos + used;
			while (off < r->len) {
				size_t u = count_delims(r->buf + off, r->len - off, dl, &blank);
				if (!u) {
					if (r->eof) {
						count_delims(r->buf + off, r->len - off, dl, &blank);
						have_data = !blank;
					}
					break;
				}
				if (!blank) {
					have_data = true;
					break;
				}
				off += u;
			}
			if (have_data || r->eof)
				break;
		} else if (r->eof) {
			break;
		}
		if (avail >= r->max_line)
			break;
		ssize_t rc = fill(r);
		if (rc == -E2BIG)
			break;
		if (rc < 0) {
			msg_at(r, err, errlen, r->line, 1, "read failed: %s", strerror((int)-rc));
			return (int)rc;
		}
	}
	if (have_data) {
		for (int k = 0; k < 3; k++) {
			if (h[k] > 0 && h[k] == dl[k]) {
				r->delim = cands[k];
				return 0;
			}
		}
	}
	int best = 2;
	for (int k = 0; k < 3; k++)
		if (h[k] > h[best])
			best = k;
	r->delim = cands[best];
	return 0;
}

/* Appends the header's names to the message in err; what does not fit is
 * summed up as "and N more" rather than cut mid-name. */
static void append_header_list(const struct csv_reader *r, char *err, size_t errlen)
{
	const size_t reserve = 32; /* room for " and 99999 more" */
	size_t used = err && errlen ? strlen(err) : 0;
	if (!err || used + reserve >= errlen)
		return;
	char *out = err + used;
	size_t outlen = errlen - used, o = 0, i;

	for (i = 0; i < r->n_header; i++) {
		size_t need = strlen(r->names[i]) + 4;
		if (o + need + reserve >= outlen)
			break;
		o += (size_t)snprintf(out + o, outlen - o, "%s'%s'", i ? ", " : "", r->names[i]);
	}
	if (i < r->n_header)
		snprintf(out + o, outlen - o, "%sand %zu more", i ? " " : "", r->n_header - i);
}

static bool trimmed_equal(const char *name, const char *want)
{
	while (*want == ' ' || *want == '\t')
		want++;
	size_t n = strlen(want);
	while (n > 0 && (want[n - 1] == ' ' || want[n - 1] == '\t'))
		n--;
	return strlen(name) == n && memcmp(name, want, n) == 0;
}

static bool trimmed_equal_nocase(const char *name, const char *want)
{
	while (*want == ' ' || *want == '\t')
		want++;
	size_t n = strlen(want);
	while (n > 0 && (want[n - 1] == ' ' || want[n - 1] == '\t'))
		n--;
	return strlen(name) == n && strncasecmp(name, want, n) == 0;
}

/* Finds a header field by exact (trimmed) name; -1 if none. */
static long find_name(const struct csv_reader *r, const char *want)
{
	for (size_t i = 0; i < r->n_header; i++)
		if (trimmed_equal(r->names[i], want))
			return (long)i;
	return -1;
}

static void missing_column(const struct csv_reader *r, const char *what, const char *want,
			   char *err, size_t errlen)
{
	char hint[300] = "";

	for (size_t i = 0; i < r->n_header; i++) {
		if (trimmed_equal_nocase(r->names[i], want)) {
			snprintf(hint, sizeof(hint), " (did you mean '%s'?)", r->names[i]);
			break;
		}
	}
	msg_at(r, err, errlen, r->line, 1, "no %s '%s'%s; the columns are: ", what, want, hint);
	append_header_list(r, err, errlen);
}

/* Gets past what may precede the header (a byte order mark, blank lines,
 * Excel's "sep=;" line) and settles the delimiter; r->pos is then at the
 * header. */
static int read_preamble(struct csv_reader *r, char *err, size_t errlen)
{
	struct rec rec;
	int rc;

	/* UTF-8 byte order mark; UTF-16 is refused with a way out. */
	while (r->len - r->pos < 3 && !r->eof) {
		ssize_t n = fill(r);
		if (n < 0) {
			msg_at(r, err, errlen, 1, 1, "read failed: %s", strerror((int)-n));
			return (int)n;
		}
	}
	const unsigned char *u = (const unsigned char *)r->buf + r->pos;
	size_t avail = r->len - r->pos;
	if (avail >= 3 && u[0] == 0xef && u[1] == 0xbb && u[2] == 0xbf) {
		r->pos += 3;
	} else if (avail >= 2 && ((u[0] == 0xff && u[1] == 0xfe) || (u[0] == 0xfe && u[1] == 0xff))) {
		msg_at(r, err, errlen, 1, 1,
		       "file is UTF-16; save it as UTF-8 (e.g. iconv -f UTF-16 -t UTF-8)");
		return -EINVAL;
	}

	/* Blank lines before the header, and Excel's "sep=;" line. */
	r->delim = ',';
	bool sep_line = false;
	for (;;) {
		rc = next_record(r, &rec, err, errlen);
		if (rc < 0)
			return rc;
		if (rc == SCAN_END) {
			msg_at(r, err, errlen, r->line, 1, "empty file: no header line");
			return -EINVAL;
		}
		const char *b = r->buf + rec.start;
		size_t reclen = rec.end.off - rec.start;
		if (rec.nonblank && !sep_line && reclen == 5 && strncasecmp(b, "sep=", 4) == 0 &&
		    (b[4] == ',' || b[4] == ';' || b[4] == '\t' || b[4] == '|')) {
			r->delim = b[4];
			sep_line = true;
			r->line += rec.n_lines;
			continue;
		}
		if (rec.nonblank) {
			/* Frame it again with the right delimiter. */
			r->pos = rec.start;
			break;
		}
		r->line += rec.n_lines;
	}
	return sep_line ? 0 : detect_delimiter(r, err, errlen);
}

/* Frames the header record and keeps its names (unquoted, trimmed). */
static int store_names(struct csv_reader *r, struct rec *hdr, char *err, size_t errlen)
{
	struct rec rec;
	int rc = next_record(r, &rec, err, errlen);
	if (rc < 0)
		return rc;
	r->row_line = r->line;
	if (rec.bad_quote) {
		msg_at(r, err, errlen, where_line(r, &rec.bad_at), where_col(&rec.bad_at),
		       "unexpected text after a closing quote in the header");
		return -EINVAL;
	}
	r->n_header = rec.n_fields;
	size_t total = 0;
	for (size_t i = 0; i < r->n_header; i++) {
		const struct field *fl = &r->fields[i];
		if (memchr(r->buf + fl->s, '\0', fl->e - fl->s)) {
			msg_at(r, err, errlen, where_line(r, &fl->at), where_col(&fl->at),
			       "NUL byte in the header: not a text file");
			return -EINVAL;
		}
		total += fl->e - fl->s + 1;
	}
	r->names_blk = malloc(total ? total : 1);
	r->names = calloc(r->n_header, sizeof(*r->names));
	r->slot = malloc(r->n_header * sizeof(*r->slot));
	if (!r->names_blk || !r->names || !r->slot) {
		msg_at(r, err, errlen, r->line, 1, "out of memory");
		return -ENOMEM;
	}
	char *p = r->names_blk;
	for (size_t i = 0; i < r->n_header; i++) {
		size_t n;
		char *s = field_text(r, &r->fields[i], &n);
		memcpy(p, s, n + 1);
		r->names[i] = p;
		p += n + 1;
		r->slot[i] = -1;
	}
	r->last_unnamed = r->n_header > 1 && r->names[r->n_header - 1][0] == '\0';
	*hdr = rec;
	return 0;
}

/* Finds the time column, by the caller's name or the usual ones. */
static int map_time_column(struct csv_reader *r, const char *time_column, char *err, size_t errlen)
{
	long tf = -1;
	if (time_column && !time_column[strspn(time_column, " \t")]) {
		msg_at(r, err, errlen, r->line, 1, "the time column's name is empty");
		return -EINVAL;
	}
	if (time_column) {
		tf = find_name(r, time_column);
		if (tf < 0) {
			missing_column(r, "time column", time_column, err, errlen);
			return -EINVAL;
		}
	} else {
		static const char *const auto_names[] = { "ts_ms", "timestamp", "datetime", "time" };
		for (size_t k = 0; k < 4 && tf < 0; k++)
			for (size_t i = 0; i < r->n_header && tf < 0; i++)
				if (strcasecmp(r->names[i], auto_names[k]) == 0)
					tf = (long)i;
		if (tf < 0) {
			msg_at(r, err, errlen, r->line, 1,
			       "no time column (none of ts_ms, timestamp, datetime, time); "
			       "the columns are: ");
			append_header_list(r, err, errlen);
			return -EINVAL;
		}
	}
	r->time_field = (size_t)tf;
	r->slot[tf] = 0;
	enum time_fmt by_name = unit_from_name(r->names[tf]);
	if (by_name != TF_UNKNOWN) {
		r->tfmt = by_name;
		r->unit_by_name = true;
	}
	return 0;
}

/* Maps the asked columns to header fields. */
static int map_columns(struct csv_reader *r, const char *const *columns, size_t n_columns,
		       char *err, size_t errlen)
{
	size_t tf = r->time_field;

	r->col_field = calloc(n_columns ? n_columns : 1, sizeof(*r->col_field));
	if (!r->col_field) {
		msg_at(r, err, errlen, r->line, 1, "out of memory");
		return -ENOMEM;
	}
	for (size_t c = 0; c < n_columns; c++) {
		if (!columns[c] || !columns[c][strspn(columns[c], " \t")]) {
			msg_at(r, err, errlen, r->line, 1, "column %zu has no name", c + 1);
			return -EINVAL;
		}
		long fi = find_name(r, columns[c]);
		if (fi < 0) {
			missing_column(r, "column", columns[c], err, errlen);
			return -EINVAL;
		}
		for (size_t j = (size_t)fi + 1; j < r->n_header; j++) {
			if (strcmp(r->names[j], r->names[fi]) == 0) {
				msg_at(r, err, errlen, r->line, where_col(&r->fields[j].at),
				       "column '%s' appears twice in the header (fields %ld and %zu)",
				       r->names[fi], fi + 1, j + 1);
				return -EINVAL;
			}
		}
		if ((size_t)fi == tf) {
			msg_at(r, err, errlen, r->line, where_col(&r->fields[fi].at),
			       "column '%s' is the time column", r->names[fi]);
			return -EINVAL;
		}
		if (r->slot[fi] >= 0) {
			msg_at(r, err, errlen, r->line, where_col(&r->fields[fi].at),
			       "column '%s' asked for twice", r->names[fi]);
			return -EINVAL;
		}
		r->slot[fi] = (int32_t)(c + 1);
		r->col_field[c] = (size_t)fi;
	}
	return 0;
}

/* Reads the header, stores the names and maps the columns. */
static int read_header(struct csv_reader *r, const char *time_column, const char *const *columns,
		       size_t n_columns, char *err, size_t errlen)
{
	struct rec hdr;
	int rc;

	r->header_mode = true;
	if ((rc = read_preamble(r, err, errlen)) < 0 || (rc = store_names(r, &hdr, err, errlen)) < 0 ||
	    (rc = map_time_column(r, time_column, err, errlen)) < 0 ||
	    (rc = map_columns(r, columns, n_columns, err, errlen)) < 0)
		return rc;
	r->line += hdr.n_lines;

	/* From here on only the time field and the asked columns are kept. */
	r->header_mode = false;
	r->n_slots = n_columns + 1;
	struct field *nf = realloc(r->fields, r->n_slots * sizeof(*nf));
	if (!nf) {
		msg_at(r, err, errlen, r->line, 1, "out of memory");
		return -ENOMEM;
	}
	r->fields = nf;
	r->fields_cap = r->n_slots;
	return 0;
}

/* ------------------------------------------------------------------ */
/* public */

static struct csv_reader *open_common(struct csv_reader *r, size_t size_hint,
				      const char *time_column, const char *const *columns,
				      size_t n_columns, char *err, size_t errlen)
{
	if (n_columns && !columns) {
		msg_at(r, err, errlen, 1, 1, "no column names given");
		goto fail;
	}
	r->c_loc = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
	/* Small inputs get a small buffer; fill() grows it up to the line cap. */
	r->cap = CSV_INITIAL_BUF < r->max_line + 3 ? CSV_INITIAL_BUF : r->max_line + 3;
	if (size_hint + 4 < r->cap)
		r->cap = size_hint + 4 < 64 ? 64 : size_hint + 4;
	r->buf = malloc(r->cap);
	if (!r->c_loc || !r->buf) {
		msg_at(r, err, errlen, 1, 1, "out of memory");
		goto fail;
	}
	r->buf[0] = '\0';
	if (read_header(r, time_column, columns, n_columns, err, errlen) < 0)
		goto fail;
	return r;
fail:
	csv_close(r);
	return NULL;
}

static struct csv_reader *reader_alloc(const char *name)
{
	struct csv_reader *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->name = strdup(name ? name : "<csv>");
	if (!r->name) {
		free(r);
		return NULL;
	}
	r->fd = -1;
	r->max_line = CSV_DEFAULT_MAX_LINE;
	r->line = 1;
	r->row_line = 1;
	return r;
}

struct csv_reader *csv_open(const char *path, const char *time_column,
			    const char *const *columns, size_t n_columns, char *err,
			    size_t errlen)
{
	if (!path) {
		if (err && errlen)
			snprintf(err, errlen, "csv: no file name given");
		return NULL;
	}
	bool is_stdin = strcmp(path, "-") == 0;
	struct csv_reader *r = reader_alloc(is_stdin ? "<stdin>" : path);
	if (!r) {
		if (err && errlen)
			snprintf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	if (is_stdin) {
		r->fd = STDIN_FILENO;
	} else {
		r->fd = open(path, O_RDONLY | O_CLOEXEC);
		if (r->fd < 0) {
			if (err && errlen)
				snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
			csv_close(r);
			return NULL;
		}
		r->own_fd = true;
	}
	struct stat st;
	size_t hint = SIZE_MAX - 8;
	if (fstat(r->fd, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size < hint)
		hint = (size_t)st.st_size;
	return open_common(r, hint, time_column, columns, n_columns, err, errlen);
}

struct csv_reader *csv_open_mem(const char *name, const char *data, size_t len,
				const char *time_column, const char *const *columns,
				size_t n_columns, char *err, size_t errlen)
{
	struct csv_reader *r = reader_alloc(name);

	if (!r) {
		if (err && errlen)
			snprintf(err, errlen, "%s: out of memory", name ? name : "<csv>");
		return NULL;
	}
	r->mem = data ? data : "";
	r->mem_len = data ? len : 0;
	return open_common(r, r->mem_len, time_column, columns, n_columns, err, errlen);
}

static int set_fatal(struct csv_reader *r, int rc, const char *err)
{
	r->fatal = rc;
	free(r->fatal_msg);
	r->fatal_msg = strdup(err ? err : "");
	return rc;
}

int csv_next(struct csv_reader *r, int64_t *ts_ms, double *values, char *err, size_t errlen)
{
	char localerr[512];
	struct rec rec;
	char cell[200];

	if (!err || errlen == 0) {
		err = localerr;
		errlen = sizeof(localerr);
	}
	if (!r || !ts_ms || (r->n_slots > 1 && !values)) {
		snprintf(err, errlen, "csv_next: no reader, time or value array given");
		return -EINVAL;
	}
	if (r->fatal) {
		snprintf(err, errlen, "%s", r->fatal_msg ? r->fatal_msg : "");
		return r->fatal;
	}
	for (;;) {
		int rc = next_record(r, &rec, err, errlen);
		if (rc < 0)
			return set_fatal(r, rc, err);
		if (rc == SCAN_END)
			return 0;
		r->row_line = r->line;
		r->line += rec.n_lines;
		if (!rec.nonblank)
			continue;
		if (rec.bad_quote) {
			msg_at(r, err, errlen, where_line(r, &rec.bad_at), where_col(&rec.bad_at),
			       "unexpected text after a closing quote");
			return -EINVAL;
		}
		/* Tolerated: empty fields after the last column (trailing
		 * delimiters), and rows without the header's unnamed last field. */
		bool fields_ok = rec.n_fields == r->n_header ||
				 (rec.n_fields > r->n_header && !rec.extra_nonblank) ||
				 (rec.n_fields + 1 == r->n_header && r->last_unnamed);
		if (!fields_ok) {
			const struct where *w = rec.n_fields > r->n_header ? &rec.extra : &rec.end;
			msg_at(r, err, errlen, where_line(r, w), where_col(w),
			       "%zu fields where the header has %zu", rec.n_fields, r->n_header);
			return -EINVAL;
		}
		int64_t ts;
		rc = parse_time(r, &r->fields[0], &ts, err, errlen);
		if (rc < 0)
			return rc;
		for (size_t c = 0; c + 1 < r->n_slots; c++) {
			const struct field *fl = &r->fields[c + 1];
			size_t n;
			char *s = field_text(r, fl, &n);
			char sep;
			bool is_int;
			int64_t iv;
			double v = NAN;
			enum num_rc nr = parse_number(r, s, n, &v, &sep, &is_int, &iv);
			switch (nr) {
			case NUM_OK:
				if (!check_decimal(r, sep, &fl->at, err, errlen))
					return -EINVAL;
				values[c] = v;
				break;
			case NUM_GAP:
				values[c] = NAN;
				break;
			case NUM_INF:
				msg_at(r, err, errlen, where_line(r, &fl->at), where_col(&fl->at),
				       "column '%s': not a finite number: '%s'",
				       r->names[r->col_field[c]], cell_text(s, n, cell, sizeof(cell)));
				return -EINVAL;
			case NUM_BAD:
				msg_at(r, err, errlen, where_line(r, &fl->at), where_col(&fl->at),
				       "column '%s': not a number: '%s'", r->names[r->col_field[c]],
				       cell_text(s, n, cell, sizeof(cell)));
				return -EINVAL;
			}
		}
		if (r->have_ts && ts < r->last_ts) {
			int64_t back = r->last_ts - ts;
			if (back <= r->tol_ms) {
				r->skipped++;
				continue;
			}
			char a[PDM_ISO8601_LEN], b[PDM_ISO8601_LEN];
			const struct where *w = &r->fields[0].at;
			msg_at(r, err, errlen, where_line(r, w), where_col(w),
			       "time goes back by %lld ms, to %s after %s (sort the file, or allow "
			       "a tolerance)",
			       (long long)back, pdm_iso8601(ts, a, sizeof(a)),
			       pdm_iso8601(r->last_ts, b, sizeof(b)));
			return -EINVAL;
		}
		r->last_ts = ts;
		r->have_ts = true;
		*ts_ms = ts;
		return 1;
	}
}

size_t csv_line(const struct csv_reader *r)
{
	return r ? r->row_line : 0;
}

const char *csv_time_column(const struct csv_reader *r)
{
	return r ? r->names[r->time_field] : NULL;
}

char csv_delimiter(const struct csv_reader *r)
{
	return r ? r->delim : '\0';
}

char csv_decimal(const struct csv_reader *r)
{
	return r && r->dec == ',' ? ',' : '.';
}

const char *csv_time_format(const struct csv_reader *r)
{
	if (!r || (r->unit_by_name && !r->have_ts))
		return "unknown";
	return tf_name(r->tfmt);
}

size_t csv_header_count(const struct csv_reader *r)
{
	return r ? r->n_header : 0;
}

const char *csv_header_name(const struct csv_reader *r, size_t i)
{
	return r && i < r->n_header ? r->names[i] : NULL;
}

uint64_t csv_bytes_read(const struct csv_reader *r)
{
	return r ? r->discarded + r->pos : 0;
}

uint64_t csv_rows_skipped(const struct csv_reader *r)
{
	return r ? r->skipped : 0;
}

void csv_set_time_tolerance(struct csv_reader *r, int64_t tol_ms)
{
	if (r)
		r->tol_ms = tol_ms > 0 ? tol_ms : 0;
}

int csv_set_max_line(struct csv_reader *r, size_t max_line)
{
	if (!r || max_line < CSV_MIN_MAX_LINE || max_line > SIZE_MAX / 4)
		return -EINVAL;
	r->max_line = max_line;
	return 0;
}

void csv_close(struct csv_reader *r)
{
	if (!r)
		return;
	if (r->own_fd && r->fd >= 0)
		close(r->fd);
	if (r->c_loc)
		freelocale(r->c_loc);
	free(r->fatal_msg);
	free(r->col_field);
	free(r->fields);
	free(r->slot);
	free(r->names);
	free(r->names_blk);
	free(r->buf);
	free(r->name);
	free(r);
}
