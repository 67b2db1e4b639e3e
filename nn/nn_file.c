/*
 * nn_file.c - the model file: versioned, little-endian, CRC-checked, saved
 * atomically.
 *
 * Layout (all integers and floats little-endian, see docs/nn.md):
 *   header (96 bytes): magic "PDMNNMDL", format version, byte-order tag,
 *     float size, kind, C, W, layer count, parameter count, model version,
 *     trained_at_ms, training windows, validation loss, threshold and the
 *     quantile and margin it came from, layer record size
 *   layer table: one 40-byte record per layer (type, relu, cin, cout, k,
 *     stride, pad, out_pad, lin, lout)
 *   normalization: mean[C], std[C]
 *   parameters: n_params floats
 *   CRC-32 (IEEE, as zlib) of every byte before it
 * The loader derives the layer table and every size from (kind, C, W) and
 * checks the file against them before allocating, so a file can neither make
 * us allocate more than its own size nor load weights into a different
 * architecture.
 */
#include "nn_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pdm_error.h"

#define MAGIC "PDMNNMDL"
#define FORMAT_VERSION 1u
#define BOM 0x01020304u
#define HDR_BYTES 96
#define LAYER_FIELDS 10
#define LAYER_BYTES (LAYER_FIELDS * 4)

/* ---- CRC-32 (reflected, polynomial 0xEDB88320) ---- */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
		crc_table[i] = c;
	}
}

static uint32_t crc_update(uint32_t crc, const void *buf, size_t n)
{
	const uint8_t *p = buf;
	crc = ~crc;
	while (n--)
		crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

/* ---- little-endian encoding ---- */

static void put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static void put_u64(uint8_t *p, uint64_t v)
{
	put_u32(p, (uint32_t)v);
	put_u32(p + 4, (uint32_t)(v >> 32));
}

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const uint8_t *p)
{
	return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

static void put_f32(uint8_t *p, float f)
{
	uint32_t v;
	memcpy(&v, &f, 4);
	put_u32(p, v);
}

static float get_f32(const uint8_t *p)
{
	uint32_t v = get_u32(p);
	float f;
	memcpy(&f, &v, 4);
	return f;
}

static void put_f64(uint8_t *p, double d)
{
	uint64_t v;
	memcpy(&v, &d, 8);
	put_u64(p, v);
}

static double get_f64(const uint8_t *p)
{
	uint64_t v = get_u64(p);
	double d;
	memcpy(&d, &v, 8);
	return d;
}

static void layer_record(uint8_t *p, const struct nn_layer *l)
{
	const uint32_t f[LAYER_FIELDS] = {
		(uint32_t)l->type, (uint32_t)l->relu, (uint32_t)l->g.cin, (uint32_t)l->g.cout,
		(uint32_t)l->g.k, (uint32_t)l->g.stride, (uint32_t)l->g.pad,
		(uint32_t)l->g.out_pad, (uint32_t)l->g.lin, (uint32_t)l->g.lout,
	};
	for (int i = 0; i < LAYER_FIELDS; i++)
		put_u32(p + 4 * i, f[i]);
}

/* ---- writing ---- */

struct wr {
	int fd;
	uint32_t crc;
	uint8_t buf[8192];
	size_t len;
};

static int wr_flush(struct wr *w)
{
	size_t off = 0;
	while (off < w->len) {
		ssize_t n = write(w->fd, w->buf + off, w->len - off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		off += (size_t)n;
	}
	w->len = 0;
	return 0;
}

static int wr_bytes(struct wr *w, const void *p, size_t n)
{
	const uint8_t *s = p;
	w->crc = crc_update(w->crc, p, n);
	while (n) {
		size_t k = sizeof(w->buf) - w->len;
		if (k > n)
			k = n;
		memcpy(w->buf + w->len, s, k);
		w->len += k;
		s += k;
		n -= k;
		if (w->len == sizeof(w->buf)) {
			int rc = wr_flush(w);
			if (rc)
				return rc;
		}
	}
	return 0;
}

static int wr_floats(struct wr *w, const float *v, size_t n)
{
	uint8_t tmp[1024];
	while (n) {
		size_t k = n < sizeof(tmp) / 4 ? n : sizeof(tmp) / 4;
		for (size_t i = 0; i < k; i++)
			put_f32(tmp + 4 * i, v[i]);
		int rc = wr_bytes(w, tmp, 4 * k);
		if (rc)
			return rc;
		v += k;
		n -= k;
	}
	return 0;
}

static int fsync_dir_of(const char *path)
{
	char tmp[PATH_MAX];
	int fd, rc = 0;

	if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(dirname(tmp), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0 && errno != EINVAL)
		rc = -errno;
	close(fd);
	return rc;
}

int nn_model_save(const struct nn_model *m, const char *path)
{
	struct wr *w = NULL;
	char tmp[PATH_MAX];
	uint8_t hdr[HDR_BYTES], rec[LAYER_BYTES], crc[4];
	int rc;

	if (!m || !path)
		return -EINVAL;
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	pthread_once(&crc_once, crc_init);
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->fd = mkostemp(tmp, O_CLOEXEC);
	if (w->fd < 0) {
		rc = -errno;
		free(w);
		return rc;
	}

	memset(hdr, 0, sizeof(hdr));
	memcpy(hdr, MAGIC, 8);
	put_u32(hdr + 8, FORMAT_VERSION);
	put_u32(hdr + 12, BOM);
	put_u32(hdr + 16, (uint32_t)sizeof(float));
	put_u32(hdr + 20, (uint32_t)m->kind);
	put_u32(hdr + 24, (uint32_t)m->C);
	put_u32(hdr + 28, (uint32_t)m->W);
	put_u32(hdr + 32, (uint32_t)m->n_layers);
	put_u32(hdr + 36, LAYER_BYTES);
	put_u64(hdr + 40, (uint64_t)m->n_params);
	put_u32(hdr + 48, m->version);
	put_u64(hdr + 56, (uint64_t)m->trained_at_ms);
	put_u64(hdr + 64, m->train_windows);
	put_f64(hdr + 72, m->val_loss);
	put_f32(hdr + 80, m->threshold);
	put_f32(hdr + 84, m->thr_quantile);
	put_f32(hdr + 88, m->thr_margin);
	rc = wr_bytes(w, hdr, sizeof(hdr));
	for (int i = 0; !rc && i < m->n_layers; i++) {
		layer_record(rec, &m->layers[i]);
		rc = wr_bytes(w, rec, sizeof(rec));
	}
	if (!rc)
		rc = wr_floats(w, m->mean, 2 * (size_t)m->C);
	if (!rc)
		rc = wr_floats(w, m->params, m->n_params);
	if (!rc) {
		put_u32(crc, w->crc);
		rc = wr_bytes(w, crc, sizeof(crc));
	}
	if (!rc)
		rc = wr_flush(w);
	/* Data must be on disk before the rename makes it the model. */
	if (!rc && fsync(w->fd) < 0)
		rc = -errno;
	if (close(w->fd) < 0 && !rc)
		rc = -errno;
	if (!rc && rename(tmp, path) < 0)
		rc = -errno;
	if (rc) {
		unlink(tmp);
		free(w);
		return rc;
	}
	free(w);
	/* The rename itself is durable only once the directory is synced. */
	return fsync_dir_of(path);
}

/* ---- reading ---- */

static void errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int rd_exact(FILE *f, void *p, size_t n, uint32_t *crc)
{
	if (fread(p, 1, n, f) != n)
		return ferror(f) ? -EIO : -PDM_ECORRUPT;
	*crc = crc_update(*crc, p, n);
	return 0;
}

static int rd_floats(FILE *f, float *v, size_t n, uint32_t *crc)
{
	uint8_t tmp[4096];
	while (n) {
		size_t k = n < sizeof(tmp) / 4 ? n : sizeof(tmp) / 4;
		int rc = rd_exact(f, tmp, 4 * k, crc);
		if (rc)
			return rc;
		for (size_t i = 0; i < k; i++)
			v[i] = get_f32(tmp + 4 * i);
		v += k;
		n -= k;
	}
	return 0;
}

#define FAIL(code, ...) \
	do { \
		errf(err, errlen, __VA_ARGS__); \
		rc = (code); \
		goto fail; \
	} while (0)

int nn_model_load(const char *path, struct nn_model **out, char *err, size_t errlen)
{
	struct nn_layer want[NN_MAX_LAYERS];
	struct nn_model *m = NULL;
	uint8_t hdr[HDR_BYTES], rec[LAYER_BYTES], tail[4];
	uint32_t crc = 0, version, kind, C, W, nl;
	uint64_t np, expect;
	size_t n_params;
	int n_layers, rc = 0;
	struct stat st;
	FILE *f = NULL;
	char dims[160];

	if (out)
		*out = NULL;
	if (!path || !out) {
		errf(err, errlen, "invalid arguments");
		return -EINVAL;
	}
	if (err && errlen)
		err[0] = '\0';
	pthread_once(&crc_once, crc_init);
	f = fopen(path, "rbe");
	if (!f)
		FAIL(-errno, "cannot open: %s", strerror(errno));
	if (fstat(fileno(f), &st) < 0)
		FAIL(-errno, "cannot stat: %s", strerror(errno));
	if (!S_ISREG(st.st_mode))
		FAIL(-EINVAL, "not a regular file");
	if (st.st_size < HDR_BYTES + 4)
		FAIL(-PDM_ECORRUPT, "truncated: %lld bytes, shorter than a header",
		     (long long)st.st_size);
	rc = rd_exact(f, hdr, sizeof(hdr), &crc);
	if (rc)
		FAIL(rc, "cannot read the header");
	if (memcmp(hdr, MAGIC, 8))
		FAIL(-PDM_ECORRUPT, "not a pdmd model file (bad magic)");
	version = get_u32(hdr + 8);
	if (version != FORMAT_VERSION)
		FAIL(-PDM_EVERSION, "model file format version %u; this pdmd reads version %u",
		     version, FORMAT_VERSION);
	if (get_u32(hdr + 12) != BOM)
		FAIL(-PDM_ECORRUPT, "bad byte-order tag 0x%08x", get_u32(hdr + 12));
	if (get_u32(hdr + 16) != 4)
		FAIL(-PDM_ECORRUPT, "float size %u, expected 4", get_u32(hdr + 16));
	if (get_u32(hdr + 36) != LAYER_BYTES)
		FAIL(-PDM_ECORRUPT, "layer record size %u, expected %d", get_u32(hdr + 36),
		     LAYER_BYTES);
	kind = get_u32(hdr + 20);
	C = get_u32(hdr + 24);
	W = get_u32(hdr + 28);
	nl = get_u32(hdr + 32);
	np = get_u64(hdr + 40);
	if (C > NN_MAX_CHANNELS || W > NN_MAX_WINDOW ||
	    nn_check_dims((enum nn_kind)kind, (int)C, (int)W, dims, sizeof(dims)))
		FAIL(-PDM_ECORRUPT, "impossible dimensions (kind %u, %u channels, window %u)", kind, C,
		     W);
	if (nn_layout((enum nn_kind)kind, (int)C, (int)W, want, &n_layers, &n_params, NULL, NULL))
		FAIL(-PDM_ECORRUPT, "impossible dimensions (kind %u, %u channels, window %u)", kind, C,
		     W);
	if (nl != (uint32_t)n_layers || np != n_params)
		FAIL(-PDM_ECORRUPT, "%u layers / %llu parameters, but a %s for %u x %u has %d / %zu",
		     nl, (unsigned long long)np, nn_kind_name((enum nn_kind)kind), C, W, n_layers,
		     n_params);
	expect = HDR_BYTES + (uint64_t)LAYER_BYTES * nl + 8ull * C + 4ull * np + 4;
	if ((uint64_t)st.st_size < expect)
		FAIL(-PDM_ECORRUPT, "truncated: %lld bytes, expected %llu", (long long)st.st_size,
		     (unsigned long long)expect);
	if ((uint64_t)st.st_size > expect)
		FAIL(-PDM_ECORRUPT, "%llu unexpected trailing bytes",
		     (unsigned long long)st.st_size - expect);
	for (int i = 0; i < n_layers; i++) {
		uint8_t ref[LAYER_BYTES];
		rc = rd_exact(f, rec, sizeof(rec), &crc);
		if (rc)
			FAIL(rc, "cannot read the layer table");
		layer_record(ref, &want[i]);
		if (memcmp(rec, ref, sizeof(rec)))
			FAIL(-PDM_ECORRUPT, "layer %d does not match the %s architecture", i + 1,
			     nn_kind_name((enum nn_kind)kind));
	}

	/* Sizes are now known to match the file's length: allocate. */
	m = nn_model_alloc((enum nn_kind)kind, (int)C, (int)W);
	if (!m)
		FAIL(-ENOMEM, "out of memory for %llu parameters", (unsigned long long)np);
	rc = rd_floats(f, m->mean, 2 * (size_t)C, &crc);
	if (!rc)
		rc = rd_floats(f, m->params, m->n_params, &crc);
	if (rc)
		FAIL(rc, "cannot read the weights");
	m->params_gen++;
	{
		uint32_t dummy = 0;
		rc = rd_exact(f, tail, sizeof(tail), &dummy);
		if (rc)
			FAIL(rc, "cannot read the checksum");
	}
	if (get_u32(tail) != crc)
		FAIL(-PDM_ECORRUPT, "CRC mismatch (stored %08x, computed %08x): file is corrupt",
		     get_u32(tail), crc);

	m->version = get_u32(hdr + 48);
	m->trained_at_ms = (int64_t)get_u64(hdr + 56);
	m->train_windows = get_u64(hdr + 64);
	m->val_loss = get_f64(hdr + 72);
	m->threshold = get_f32(hdr + 80);
	m->thr_quantile = get_f32(hdr + 84);
	m->thr_margin = get_f32(hdr + 88);
	/* A matching CRC proves the bytes are what was written, not that a
	 * writer was sane: check the values a score depends on. */
	if (!(m->threshold >= NN_THRESHOLD_FLOOR) || !isfinite(m->threshold))
		FAIL(-PDM_ECORRUPT, "invalid threshold %g", (double)m->threshold);
	for (uint32_t c = 0; c < C; c++)
		if (!isfinite(m->mean[c]) || !(m->std[c] > 0.0f) || !isfinite(m->std[c]))
			FAIL(-PDM_ECORRUPT, "invalid normalization for channel %u", c);
	for (size_t i = 0; i < m->n_params; i++)
		if (!isfinite(m->params[i]))
			FAIL(-PDM_ECORRUPT, "non-finite weight at %zu", i);
	fclose(f);
	*out = m;
	return 0;

fail:
	if (f)
		fclose(f);
	nn_model_free(m);
	return rc;
}
