/*
 * csv.h - streaming reader for historian CSV exports (input of `pdmd replay`).
 *
 * Reads the files people actually export: delimiter `,` `;` or tab detected
 * from the header, RFC 4180 quoting, CRLF/LF/CR line ends, a UTF-8 BOM,
 * decimal commas in `;`/tab files, a time column found by name with epoch
 * s/ms/us/ns or ISO-8601 times. Memory stays bounded by the longest allowed
 * line whatever the file size. The reader never logs: every failure comes
 * back as a "file:line:col: reason" message for the caller to report.
 * docs/backtesting.md describes the accepted formats for users.
 */
#ifndef PDM_CSV_H
#define PDM_CSV_H

#include <stddef.h>
#include <stdint.h>

struct csv_reader;

#define CSV_DEFAULT_MAX_LINE ((size_t)1 << 20)

/*
 * Opens `path` ("-" reads standard input) and reads its header.
 * time_column: the time column's name, or NULL to take the first of
 *   ts_ms, timestamp, datetime, time (case-insensitive) found in the header.
 * columns[n_columns]: data columns wanted, matched exactly against the
 *   header names after trimming blanks; their values come back from
 *   csv_next() in this order. Other columns are ignored. n_columns may be 0.
 * The reader copies what it needs; the caller keeps ownership of all arguments.
 * Returns a reader to close with csv_close(), or NULL with a message in err
 * (cut to errlen; 1024 bytes hold it all but for very wide files): "file: cannot open: reason",
 * or "file:line:col: reason" for an empty file, no time column, a missing
 * column (naming the columns that exist), a line over the cap, ...
 */
struct csv_reader *csv_open(const char *path, const char *time_column,
			    const char *const *columns, size_t n_columns, char *err,
			    size_t errlen);

/* As csv_open() over the len bytes at data, which must stay valid and
 * unchanged until csv_close(). `name` is used in messages. */
struct csv_reader *csv_open_mem(const char *name, const char *data, size_t len,
				const char *time_column, const char *const *columns,
				size_t n_columns, char *err, size_t errlen);

/*
 * Reads the next data row: its time as epoch ms and values[n_columns] in the
 * order asked for at open (NaN for a gap: an empty cell, NaN, NA, N/A, #N/A,
 * null or None). Blank rows (nothing but blanks and delimiters) are skipped.
 * Times never go backwards: a row stepping back by at most the tolerance
 * (csv_set_time_tolerance, default 0) is skipped and counted
 * (csv_rows_skipped); further back is an error.
 * Returns 1 for a row, 0 at the end, or a negative code with the message in
 * err. Row errors (-EINVAL: a bad cell, bad time, wrong number of fields,
 * time going backwards) consume the row: calling again continues with the
 * next one. Framing errors (-E2BIG line too long, -EPROTO unterminated quote,
 * -EIO or another -errno from reading) are final: every later call returns
 * the same code and message.
 */
int csv_next(struct csv_reader *r, int64_t *ts_ms, double *values, char *err,
	     size_t errlen);

/* Physical line number (1-based) of the row csv_next() returned last, or of
 * the header before the first row. */
size_t csv_line(const struct csv_reader *r);

/* The time column's name as written in the header. Owned by the reader. */
const char *csv_time_column(const struct csv_reader *r);

/* The field delimiter found: ',', ';' or '\t'. */
char csv_delimiter(const struct csv_reader *r);

/* The decimal separator: ',' once a decimal comma has been seen, else '.'. */
char csv_decimal(const struct csv_reader *r);

/* How times are written, known after the first row: "epoch_s", "epoch_ms",
 * "epoch_us", "epoch_ns", "iso8601", or "unknown" before it. Static string. */
const char *csv_time_format(const struct csv_reader *r);

/* Header names (trimmed, unquoted), i < csv_header_count(). Owned by the reader. */
size_t csv_header_count(const struct csv_reader *r);
const char *csv_header_name(const struct csv_reader *r, size_t i);

/* Bytes of the input consumed so far (for progress against the file size). */
uint64_t csv_bytes_read(const struct csv_reader *r);

/* Rows skipped because their time stepped back within the tolerance. */
uint64_t csv_rows_skipped(const struct csv_reader *r);

/* Rows stepping back in time by at most tol_ms are skipped instead of being
 * an error (merged or jittery exports). Negative values are treated as 0. */
void csv_set_time_tolerance(struct csv_reader *r, int64_t tol_ms);

/* Longest accepted line (record) in bytes for the rest of the file; default
 * CSV_DEFAULT_MAX_LINE. A longer line is an -E2BIG error, never an unbounded
 * allocation. Returns 0, or -EINVAL for a cap below 16 bytes. */
int csv_set_max_line(struct csv_reader *r, size_t max_line);

/* Closes the file and frees the reader. Accepts NULL. */
void csv_close(struct csv_reader *r);

#endif
