/*
 * nn.c - the MLP and Conv autoencoders: layout, initialization, training
 * (Adam / SGD with momentum, early stopping, wall-time cap), scoring with
 * per-channel explanations, threshold calibration.
 *
 * Memory: a model holds its parameters, the per-channel standardization, a
 * small scoring scratch (grown on demand, bounded by SCRATCH_FLOATS) and, for
 * an MLP-AE once it scores a single window, a packed copy of its weights
 * (at half width when they allow it, see round_weights_half).
 * Everything training needs (gradients, optimizer moments, activations of a
 * whole batch, im2col buffers, the best weights so far) lives in a struct fit
 * allocated by nn_train and freed before it returns, so a model that only
 * scores stays small. Nothing allocates inside forward/backward.
 *
 * Layout inside the model: the MLP sees a window flattened channels-first
 * (C*W, as the caller stores it); the Conv-AE sees it channels-last (W, C)
 * so that a batch of windows is one tall GEMM per layer (see nn_layers.c).
 * Standardization and this transpose happen in one pass when a batch is
 * gathered.
 *
 * Determinism: the shuffling, the initialization and every reduction have
 * a fixed order; OpenBLAS splits a GEMM the same way for the same thread
 * count, so the same data, seed and thread count give the same model.
 */
#include "nn_internal.h"

#include <cblas.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pdm_error.h"

/*
 * The optimizer update and the gradient sum touch every parameter on every
 * step: built twice, for AVX2+FMA machines and the baseline, picked at load
 * time (the rest of the arithmetic is OpenBLAS's, which dispatches itself).
 */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define NN_MULTIVERSION __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define NN_MULTIVERSION
#endif

/* Scoring scratch bound (floats), so ten models with Conv-AEs stay small. */
#define SCRATCH_FLOATS ((size_t)256 * 1024)
#define MAX_CHUNK 256

/* ---- kinds and dimensions ---- */

const char *nn_kind_name(enum nn_kind k)
{
	switch (k) {
	case NN_MLP_AE:
		return "mlp_ae";
	case NN_CONV_AE:
		return "conv_ae";
	}
	return "unknown";
}

int nn_kind_parse(const char *s, enum nn_kind *k)
{
	if (!s)
		return -EINVAL;
	if (!strcmp(s, "mlp_ae") || !strcmp(s, "mlp")) {
		*k = NN_MLP_AE;
		return 0;
	}
	if (!strcmp(s, "conv_ae") || !strcmp(s, "cnn")) {
		*k = NN_CONV_AE;
		return 0;
	}
	return -EINVAL;
}

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

int nn_check_dims(enum nn_kind kind, int C, int W, char *err, size_t errlen)
{
	if (kind != NN_MLP_AE && kind != NN_CONV_AE) {
		errf(err, errlen, "unknown model kind %d (valid: mlp_ae, conv_ae)", (int)kind);
		return -EINVAL;
	}
	if (C < 1 || C > NN_MAX_CHANNELS) {
		errf(err, errlen, "%s: %d channels is out of range (valid: 1..%d)",
		     nn_kind_name(kind), C, NN_MAX_CHANNELS);
		return -EINVAL;
	}
	if (W < NN_MIN_WINDOW || W > NN_MAX_WINDOW) {
		errf(err, errlen, "%s: window %d is out of range (valid: %d..%d%s)",
		     nn_kind_name(kind), W, NN_MIN_WINDOW, NN_MAX_WINDOW,
		     kind == NN_CONV_AE ? ", a multiple of 4" : "");
		return -EINVAL;
	}
	if ((long)C * W > NN_MAX_INPUTS) {
		errf(err, errlen, "%s: %d channels x %d steps = %ld inputs, more than %d; "
		     "use a window of at most %d for %d channels", nn_kind_name(kind), C, W,
		     (long)C * W, NN_MAX_INPUTS, NN_MAX_INPUTS / C, C);
		return -EINVAL;
	}
	if (kind == NN_CONV_AE && W % 4) {
		/* Two stride-2 convolutions and two stride-2 transposed ones give back
		 * W only when W halves exactly twice. */
		int lo = W / 4 * 4, hi = lo + 4;
		if (lo < NN_MIN_WINDOW)
			errf(err, errlen, "conv_ae: window %d is not a multiple of 4 "
			     "(the encoder halves it twice); use %d", W, hi);
		else
			errf(err, errlen, "conv_ae: window %d is not a multiple of 4 "
			     "(the encoder halves it twice); use %d or %d", W, lo, hi);
		return -EINVAL;
	}
	return 0;
}

static void add_layer(struct nn_layer *L, int *n, size_t *np, int type, int relu, int cin,
		      int cout, int k, int stride, int pad, int out_pad, int lin)
{
	struct nn_layer *l = &L[(*n)++];
	memset(l, 0, sizeof(*l));
	l->type = type;
	l->relu = relu;
	l->g.cin = cin;
	l->g.cout = cout;
	l->g.k = k;
	l->g.stride = stride;
	l->g.pad = pad;
	l->g.out_pad = out_pad;
	l->g.lin = lin;
	if (type == NN_L_CONV)
		l->g.lout = nn_conv1d_lout(lin, k, stride, pad);
	else if (type == NN_L_CONVT)
		l->g.lout = nn_convt1d_lout(lin, k, stride, pad, out_pad);
	else
		l->g.lout = 1;
	l->in_size = (size_t)cin * lin;
	l->out_size = (size_t)cout * l->g.lout;
	l->w_off = *np;
	*np += (size_t)cin * cout * k;
	l->b_off = *np;
	*np += (size_t)cout;
}

int nn_layout(enum nn_kind kind, int C, int W, struct nn_layer *layers, int *n_layers,
	      size_t *n_params, size_t *act_max, size_t *col_max)
{
	int n = 0;
	size_t np = 0, amax = 0, cmax = 0;

	if (nn_check_dims(kind, C, W, NULL, 0))
		return -EINVAL;
	if (kind == NN_MLP_AE) {
		/* RW-NN's MLP-AE: D -> 128 -> 32 -> 128 -> D, ReLU between. */
		int D = C * W;
		add_layer(layers, &n, &np, NN_L_DENSE, 1, D, 128, 1, 1, 0, 0, 1);
		add_layer(layers, &n, &np, NN_L_DENSE, 1, 128, 32, 1, 1, 0, 0, 1);
		add_layer(layers, &n, &np, NN_L_DENSE, 1, 32, 128, 1, 1, 0, 0, 1);
		add_layer(layers, &n, &np, NN_L_DENSE, 0, 128, D, 1, 1, 0, 0, 1);
	} else {
		/* RW-NN's Conv-AE: k7 everywhere, two stride-2 downs, two stride-2 ups. */
		add_layer(layers, &n, &np, NN_L_CONV, 1, C, 32, 7, 2, 3, 0, W);
		add_layer(layers, &n, &np, NN_L_CONV, 1, 32, 16, 7, 2, 3, 0, layers[0].g.lout);
		add_layer(layers, &n, &np, NN_L_CONVT, 1, 16, 16, 7, 2, 3, 1, layers[1].g.lout);
		add_layer(layers, &n, &np, NN_L_CONVT, 1, 16, 32, 7, 2, 3, 1, layers[2].g.lout);
		add_layer(layers, &n, &np, NN_L_CONV, 0, 32, C, 7, 1, 3, 0, layers[3].g.lout);
		if (layers[4].g.lout != W)
			return -EINVAL;
	}
	for (int i = 0; i < n; i++) {
		const struct nn_layer *l = &layers[i];
		size_t c = 0;
		if (l->out_size > amax)
			amax = l->out_size;
		if (l->in_size > amax)
			amax = l->in_size;
		if (l->type == NN_L_CONV)
			c = nn_conv1d_col_size(&l->g, 1);
		else if (l->type == NN_L_CONVT)
			c = nn_convt1d_col_size(&l->g, 1);
		if (c > cmax)
			cmax = c;
	}
	*n_layers = n;
	*n_params = np;
	if (act_max)
		*act_max = amax;
	if (col_max)
		*col_max = cmax;
	return 0;
}

/* ---- model lifetime ---- */

struct nn_model *nn_model_alloc(enum nn_kind kind, int C, int W)
{
	struct nn_model *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->kind = kind;
	m->C = C;
	m->W = W;
	if (nn_layout(kind, C, W, m->layers, &m->n_layers, &m->n_params, &m->act_max,
		      &m->col_max))
		goto fail;
	m->params = calloc(m->n_params, sizeof(float));
	m->mean = malloc(sizeof(float) * 2 * (size_t)C);
	if (!m->params || !m->mean)
		goto fail;
	m->std = m->mean + C;
	for (int c = 0; c < C; c++) {
		m->mean[c] = 0.0f;
		m->std[c] = 1.0f;
	}
	m->threshold = 1.0f;
	m->val_loss = NAN;
	m->flip_layer = -1;
	for (int i = 0; i < m->n_layers; i++) {
		const struct nn_layer *l = &m->layers[i];
		if (l->type != NN_L_CONV || l->g.stride != 1 || l->g.pad > l->g.k - 1)
			continue;
		m->flip_layer = i;
		m->flip_g = l->g;
		m->flip_g.pad = l->g.k - 1 - l->g.pad;
		m->flip_w = malloc(sizeof(float) * (size_t)l->g.cin * l->g.cout * l->g.k);
		if (!m->flip_w)
			goto fail;
		m->flip_gen = m->params_gen - 1;
		break;
	}
	{
		size_t per = (size_t)C * W + 2 * m->act_max + m->col_max;
		size_t chunk = SCRATCH_FLOATS / per;
		m->chunk = chunk < 1 ? 1 : chunk > MAX_CHUNK ? MAX_CHUNK : chunk;
	}
	return m;
fail:
	nn_model_free(m);
	return NULL;
}

void nn_model_free(struct nn_model *m)
{
	if (!m)
		return;
	free(m->params);
	free(m->mean);
	free(m->scratch);
	free(m->flip_w);
	free(m->one_w);
	free(m->one_h);
	free(m);
}

/* splitmix64: small, fast, and good enough for shuffling and initialization. */
struct rng {
	uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform in [-1, 1). */
static float rng_sym(struct rng *r)
{
	return (float)((double)(rng_next(r) >> 40) * (1.0 / 8388608.0) - 1.0);
}

static size_t rng_below(struct rng *r, size_t n)
{
	/* n is far below 2^32 here; the modulo bias of a 64-bit draw is negligible. */
	return (size_t)(rng_next(r) % n);
}

static void init_params(struct nn_model *m, uint64_t seed)
{
	struct rng r = { seed ^ 0x50444d4e4e000001ULL };
	m->params_gen++;
	for (int i = 0; i < m->n_layers; i++) {
		const struct nn_layer *l = &m->layers[i];
		/* PyTorch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and
		 * bias; a transposed conv's fan_in is cout * k, as torch computes it. */
		int fan_in = l->type == NN_L_CONVT ? l->g.cout * l->g.k : l->g.cin * l->g.k;
		float bound = 1.0f / sqrtf((float)fan_in);
		size_t nw = (size_t)l->g.cin * l->g.cout * l->g.k;
		for (size_t j = 0; j < nw; j++)
			m->params[l->w_off + j] = bound * rng_sym(&r);
		for (int j = 0; j < l->g.cout; j++)
			m->params[l->b_off + (size_t)j] = bound * rng_sym(&r);
	}
}

struct nn_model *nn_model_new(enum nn_kind kind, int C, int W, uint64_t seed)
{
	struct nn_model *m = nn_model_alloc(kind, C, W);
	if (m)
		init_params(m, seed);
	return m;
}

void nn_model_info(const struct nn_model *m, struct nn_model_info *info)
{
	memset(info, 0, sizeof(*info));
	info->kind = m->kind;
	info->C = m->C;
	info->W = m->W;
	info->n_params = m->n_params;
	info->threshold = m->threshold;
	info->val_loss = m->val_loss;
	info->train_windows = m->train_windows;
	info->version = m->version;
	info->trained_at_ms = m->trained_at_ms;
	info->bytes = sizeof(*m) + sizeof(float) * (m->n_params + 2 * (size_t)m->C) +
		      (m->flip_layer >= 0 ? sizeof(float) * m->layers[m->flip_layer].g.cin *
						    m->layers[m->flip_layer].g.cout *
						    m->layers[m->flip_layer].g.k
					  : 0) +
		      sizeof(float) * m->scratch_windows *
			      ((size_t)m->C * m->W + 2 * m->act_max + m->col_max) +
		      (m->one_w ? sizeof(float) * m->n_params : 0) +
		      (m->one_h ? sizeof(unsigned short) * m->n_params : 0);
}

void nn_model_set_meta(struct nn_model *m, uint32_t version, int64_t trained_at_ms)
{
	m->version = version;
	m->trained_at_ms = trained_at_ms;
}

void nn_model_norm(const struct nn_model *m, float *mean, float *std)
{
	if (mean)
		memcpy(mean, m->mean, sizeof(float) * (size_t)m->C);
	if (std)
		memcpy(std, m->std, sizeof(float) * (size_t)m->C);
}

void nn_model_trim(struct nn_model *m)
{
	free(m->scratch);
	m->scratch = NULL;
	m->scratch_windows = 0;
	free(m->one_w);
	m->one_w = NULL;
	free(m->one_h);
	m->one_h = NULL;
}

/* ---- forward / backward over the layer table ---- */

static void layer_forward(const struct nn_model *m, const struct nn_layer *l, float *out,
			  float *col, const float *inp, int B)
{
	const float *w = m->params + l->w_off, *b = m->params + l->b_off;
	switch (l->type) {
	case NN_L_DENSE:
		nn_dense_forward(out, inp, w, b, B, l->g.cin, l->g.cout);
		break;
	case NN_L_CONV:
		nn_conv1d_forward(out, col, inp, w, b, &l->g, B);
		break;
	case NN_L_CONVT:
		nn_convt1d_forward(out, col, inp, w, b, &l->g, B);
		break;
	}
	if (l->relu)
		nn_relu_forward(out, out, (size_t)B * l->out_size);
}

static void layer_backward(const struct nn_model *m, const struct nn_layer *l, float *grads,
			   float *dinp, float *col, const float *dout, const float *inp, int B)
{
	const float *w = m->params + l->w_off;
	float *dw = grads + l->w_off, *db = grads + l->b_off;
	switch (l->type) {
	case NN_L_DENSE:
		nn_dense_backward(dinp, dw, db, dout, inp, w, B, l->g.cin, l->g.cout);
		break;
	case NN_L_CONV:
		nn_conv1d_backward(dinp, dw, db, col, dout, inp, w, &l->g, B);
		break;
	case NN_L_CONVT:
		nn_convt1d_backward(dinp, dw, db, col, dout, inp, w, &l->g, B);
		break;
	}
}

/* Index of element (c, t) of a window in the model's layout. */
static inline size_t elem(const struct nn_model *m, int c, int t)
{
	return m->kind == NN_CONV_AE ? (size_t)t * m->C + c : (size_t)c * m->W + t;
}

/* Standardizes window x (C, W) into dst in the model's layout. */
static void to_model(const struct nn_model *m, float *dst, const float *x)
{
	const int C = m->C, W = m->W;
	for (int c = 0; c < C; c++) {
		const float mu = m->mean[c], inv = 1.0f / m->std[c];
		const float *src = x + (size_t)c * W;
		if (m->kind == NN_CONV_AE) {
			for (int t = 0; t < W; t++)
				dst[(size_t)t * C + c] = (src[t] - mu) * inv;
		} else {
			float *d = dst + (size_t)c * W;
			for (int t = 0; t < W; t++)
				d[t] = (src[t] - mu) * inv;
		}
	}
}

static int all_finite(const float *x, size_t n)
{
	/* Exponent bits all ones = Inf or NaN. Bit tests raise no FP exception
	 * (x * 0 would, for Inf) and vectorize; one branch per call. */
	uint32_t bad = 0;
	for (size_t i = 0; i < n; i++) {
		uint32_t u;
		memcpy(&u, &x[i], 4);
		bad |= (u & 0x7f800000u) == 0x7f800000u;
	}
	return !bad;
}

/* Grows the scoring scratch to hold `windows` windows; returns 0 or -ENOMEM. */
static int scratch_reserve(struct nn_model *m, size_t windows)
{
	if (windows <= m->scratch_windows)
		return 0;
	size_t per = (size_t)m->C * m->W + 2 * m->act_max + m->col_max;
	float *s = realloc(m->scratch, sizeof(float) * per * windows);
	if (!s)
		return -ENOMEM;
	m->scratch = s;
	m->scratch_windows = windows;
	return 0;
}

/* Rebuilds the flipped weights of the stride-1 conv layer if params changed. */
static void flip_refresh(struct nn_model *m)
{
	if (m->flip_layer < 0 || m->flip_gen == m->params_gen)
		return;
	const struct nn_layer *l = &m->layers[m->flip_layer];
	const int cin = l->g.cin, cout = l->g.cout, k = l->g.k;
	const float *w = m->params + l->w_off; /* (cout, k, cin) */
	for (int i = 0; i < cin; i++)
		for (int j = 0; j < k; j++)
			for (int o = 0; o < cout; o++)
				m->flip_w[((size_t)i * k + j) * cout + o] =
					w[((size_t)o * k + (k - 1 - j)) * cin + i];
	m->flip_gen = m->params_gen;
}

/*
 * An MLP-AE scores one window by streaming all its weights from cache, so
 * the time is the bytes read: its dense weights end training rounded to
 * binary16 values (a relative change of at most 2^-11, far below what
 * another seed changes), which one-window scoring then reads at half width:
 * the same numbers as the float copy, half the bytes. Calibration runs
 * afterwards, on the weights that are kept. Biases stay as trained.
 */
static void round_weights_half(struct nn_model *m)
{
	for (int i = 0; i < m->n_layers; i++) {
		const struct nn_layer *l = &m->layers[i];
		float *w = m->params + l->w_off;
		for (size_t j = 0; j < (size_t)l->g.cin * l->g.cout; j++)
			w[j] = nn_half_round(w[j]);
	}
}

/*
 * Makes the packed one-window weights current, allocating them on first
 * use (a one-window call, or a one-window last chunk): a model only ever
 * scored in batches does not pay for the copy. Half-width weights when they
 * pack exactly (see one_h), else floats. Returns 0 or -ENOMEM.
 */
static int one_refresh(struct nn_model *m)
{
	if (m->kind != NN_MLP_AE)
		return 0;
	if ((m->one_w || m->one_h) && m->one_gen == m->params_gen)
		return 0;
	if (nn_half_fast()) {
		int rc = 0;
		if (!m->one_h)
			m->one_h = malloc(sizeof(unsigned short) * m->n_params);
		if (!m->one_h)
			return -ENOMEM;
		for (int i = 0; i < m->n_layers && !rc; i++) {
			const struct nn_layer *l = &m->layers[i];
			rc = nn_dense_pack_half(m->one_h + l->w_off, m->params + l->w_off, l->g.cin,
						l->g.cout);
		}
		if (rc == 0) {
			free(m->one_w);
			m->one_w = NULL;
			m->one_gen = m->params_gen;
			return 0;
		}
		/* weights from an older file, or set by hand: floats it is */
		free(m->one_h);
		m->one_h = NULL;
	}
	if (!m->one_w) {
		m->one_w = malloc(sizeof(float) * m->n_params);
		if (!m->one_w)
			return -ENOMEM;
	}
	for (int i = 0; i < m->n_layers; i++) {
		const struct nn_layer *l = &m->layers[i];
		nn_dense_pack(m->one_w + l->w_off, m->params + l->w_off, l->g.cin, l->g.cout);
	}
	m->one_gen = m->params_gen;
	return 0;
}

/*
 * Runs B windows (already standardized, in `in`) through the model using
 * the scoring scratch; returns a pointer to the output (in the model's
 * layout, standardized units). One window goes through the packed dense
 * weights (one_refresh() must have run).
 */
static const float *infer(struct nn_model *m, const float *in, int B)
{
	size_t D = (size_t)m->C * m->W;
	float *bufs[2];
	float *col;
	const float *cur = in;

	bufs[0] = m->scratch + D * m->scratch_windows;
	bufs[1] = bufs[0] + m->act_max * m->scratch_windows;
	col = bufs[1] + m->act_max * m->scratch_windows;
	for (int i = 0; i < m->n_layers; i++) {
		const struct nn_layer *l = &m->layers[i];
		float *out = bufs[i & 1];
		if (B == 1 && (m->one_w || m->one_h) && l->type == NN_L_DENSE) {
			const float *bias = m->params + l->b_off;
			if (m->one_h)
				nn_dense_forward_one_half(out, cur, m->one_h + l->w_off, bias,
							  l->g.cin, l->g.cout);
			else
				nn_dense_forward_one(out, cur, m->one_w + l->w_off, bias, l->g.cin,
						     l->g.cout);
			if (l->relu)
				nn_relu_forward(out, out, l->out_size);
		} else if (i == m->flip_layer) {
			nn_convt1d_forward(out, col, cur, m->flip_w, m->params + l->b_off, &m->flip_g,
					   B);
			if (l->relu)
				nn_relu_forward(out, out, (size_t)B * l->out_size);
		} else {
			layer_forward(m, l, out, col, cur, B);
		}
		cur = out;
	}
	return cur;
}

/*
 * Visits every window of x in chunks: standardizes, reconstructs, and calls
 * fn(m, in, out, first, B, user) with the standardized inputs and outputs.
 */
typedef int (*chunk_fn)(const struct nn_model *m, const float *in, const float *out,
			size_t first, int B, void *user);

static int run_chunks(struct nn_model *m, const float *x, size_t N, chunk_fn fn, void *user)
{
	size_t D = (size_t)m->C * m->W;
	size_t chunk = N < m->chunk ? N : m->chunk;
	int rc;

	if (!all_finite(x, N * D))
		return -PDM_ENONFINITE;
	rc = scratch_reserve(m, chunk);
	if (rc)
		return rc;
	flip_refresh(m);
	for (size_t first = 0; first < N; first += chunk) {
		int B = (int)(N - first < chunk ? N - first : chunk);
		float *in = m->scratch;
		if (B == 1 && (rc = one_refresh(m)))
			return rc;
		for (int b = 0; b < B; b++)
			to_model(m, in + (size_t)b * D, x + (first + (size_t)b) * D);
		const float *out = infer(m, in, B);
		rc = fn(m, in, out, first, B, user);
		if (rc)
			return rc;
	}
	return 0;
}

/*
 * Per-channel mean squared error of one window, in standardized units.
 * Squares accumulate in float lanes the compiler can vectorize (8 running
 * sums per channel, or one per channel in the channels-last layout), then
 * in double across lanes: plenty for W <= 4096.
 */
static void window_chan_err(const struct nn_model *m, const float *in, const float *out,
			    double *ce)
{
	const int C = m->C, W = m->W;
	if (m->kind == NN_CONV_AE) {
		float acc[NN_MAX_CHANNELS];
		for (int c = 0; c < C; c++)
			acc[c] = 0.0f;
		for (int t = 0; t < W; t++) {
			const float *o = out + (size_t)t * C, *x = in + (size_t)t * C;
			for (int c = 0; c < C; c++)
				acc[c] += (o[c] - x[c]) * (o[c] - x[c]);
		}
		for (int c = 0; c < C; c++)
			ce[c] = (double)acc[c] / W;
		return;
	}
	for (int c = 0; c < C; c++) {
		const float *o = out + (size_t)c * W, *x = in + (size_t)c * W;
		float acc[8] = { 0 };
		int t = 0;
		for (; t + 8 <= W; t += 8)
			for (int k = 0; k < 8; k++)
				acc[k] += (o[t + k] - x[t + k]) * (o[t + k] - x[t + k]);
		double sum = 0.0;
		for (; t < W; t++)
			sum += (double)(o[t] - x[t]) * (o[t] - x[t]);
		for (int k = 0; k < 8; k++)
			sum += acc[k];
		ce[c] = sum / W;
	}
}

/* A finite error too large for a float still means "far beyond the threshold":
 * it saturates rather than becoming inf, which no JSON consumer could read. */
static float sat_float(double v)
{
	return v > FLT_MAX ? FLT_MAX : (float)v;
}

struct score_ctx {
	float *score, *shares, *chan_err;
	double *raw; /* optional: raw errors in double */
	float *x_mean, *y_mean; /* optional: per-channel window means, input units */
};

/* Each channel's mean over one window of what the model saw and of what it
 * reconstructed, back in input units: an alert's "value" and "expected".
 * O(C x W), next to a forward pass of O(C x W x width). */
static void window_means(const struct nn_model *m, const float *in, const float *out,
			 float *x_mean, float *y_mean)
{
	const int C = m->C, W = m->W;
	for (int c = 0; c < C; c++) {
		double sx = 0.0, sy = 0.0;
		for (int t = 0; t < W; t++) {
			size_t k = elem(m, c, t);
			sx += in[k];
			sy += out[k];
		}
		if (x_mean)
			x_mean[c] = (float)(sx / W * m->std[c] + m->mean[c]);
		if (y_mean)
			y_mean[c] = (float)(sy / W * m->std[c] + m->mean[c]);
	}
}

static int score_chunk(const struct nn_model *m, const float *in, const float *out, size_t first,
		       int B, void *user)
{
	struct score_ctx *s = user;
	const int C = m->C;
	const size_t D = (size_t)C * m->W;
	double ce[NN_MAX_CHANNELS];

	for (int b = 0; b < B; b++) {
		size_t n = first + (size_t)b;
		double sum = 0.0;
		window_chan_err(m, in + (size_t)b * D, out + (size_t)b * D, ce);
		for (int c = 0; c < C; c++)
			sum += ce[c];
		if (!isfinite(sum))
			return -PDM_ENONFINITE;
		if (s->raw)
			s->raw[n] = sum / C;
		if (s->score)
			s->score[n] = sat_float(sum / C / m->threshold);
		if (s->chan_err)
			for (int c = 0; c < C; c++)
				s->chan_err[n * C + (size_t)c] = sat_float(ce[c]);
		if (s->x_mean || s->y_mean)
			window_means(m, in + (size_t)b * D, out + (size_t)b * D,
				     s->x_mean ? s->x_mean + n * C : NULL,
				     s->y_mean ? s->y_mean + n * C : NULL);
		if (s->shares) {
			float *sh = s->shares + n * C;
			if (sum > 0.0) {
				for (int c = 0; c < C; c++)
					sh[c] = (float)(ce[c] / sum);
			} else {
				/* A perfect reconstruction: no channel is to blame more than another. */
				for (int c = 0; c < C; c++)
					sh[c] = 1.0f / (float)C;
			}
		}
	}
	return 0;
}

/* nn_score and nn_score_means: what they fill is in s. */
static int score_windows(struct nn_model *m, const float *x, size_t N, struct score_ctx *s)
{
	if (!m || (!x && N) || (!s->score && N))
		return -EINVAL;
	return run_chunks(m, x, N, score_chunk, s);
}

int nn_score(struct nn_model *m, const float *x, size_t N, float *score, float *shares,
	     float *chan_err)
{
	struct score_ctx s = { score, shares, chan_err, NULL, NULL, NULL };
	return score_windows(m, x, N, &s);
}

int nn_score_means(struct nn_model *m, const float *x, size_t N, float *score, float *shares,
		   float *x_mean, float *y_mean)
{
	struct score_ctx s = { score, shares, NULL, NULL, x_mean, y_mean };
	return score_windows(m, x, N, &s);
}

static int recon_chunk(const struct nn_model *m, const float *in, const float *out, size_t first,
		       int B, void *user)
{
	float *y = user;
	const int C = m->C, W = m->W;
	const size_t D = (size_t)C * W;
	(void)in;
	for (int b = 0; b < B; b++) {
		const float *o = out + (size_t)b * D;
		float *dst = y + (first + (size_t)b) * D;
		for (int c = 0; c < C; c++)
			for (int t = 0; t < W; t++)
				dst[(size_t)c * W + t] = o[elem(m, c, t)] * m->std[c] + m->mean[c];
	}
	return 0;
}

int nn_reconstruct(struct nn_model *m, const float *x, size_t N, float *y)
{
	if (!m || (N && (!x || !y)))
		return -EINVAL;
	return run_chunks(m, x, N, recon_chunk, y);
}

struct eval_ctx {
	const float *scale;
	double sum;
};

static int eval_chunk(const struct nn_model *m, const float *in, const float *out, size_t first,
		      int B, void *user)
{
	struct eval_ctx *e = user;
	const int C = m->C, W = m->W;
	const size_t D = (size_t)C * W;
	double ce[NN_MAX_CHANNELS];
	(void)first;
	for (int b = 0; b < B; b++) {
		window_chan_err(m, in + (size_t)b * D, out + (size_t)b * D, ce);
		for (int c = 0; c < C; c++) {
			/* standardized error * std = error in input units; / scale = caller's units */
			double f = e->scale ? (double)m->std[c] / e->scale[c] : 1.0;
			e->sum += ce[c] * f * f;
		}
	}
	return 0;
}

int nn_eval_mse(struct nn_model *m, const float *x, size_t N, const float *scale, double *mse)
{
	struct eval_ctx e = { scale, 0.0 };
	int rc;
	if (!m || !x || !N || !mse)
		return -EINVAL;
	if (scale)
		for (int c = 0; c < m->C; c++)
			if (!(scale[c] > 0.0f) || !isfinite(scale[c]))
				return -EINVAL;
	rc = run_chunks(m, x, N, eval_chunk, &e);
	if (rc)
		return rc;
	*mse = e.sum / ((double)N * m->C);
	if (!isfinite(*mse))
		return -PDM_ENONFINITE;
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Quantile q of v[n] with linear interpolation between order statistics (sorts v). */
static double quantile(double *v, size_t n, double q)
{
	qsort(v, n, sizeof(*v), cmp_double);
	double pos = q * (double)(n - 1);
	size_t i = (size_t)pos;
	if (i + 1 >= n)
		return v[n - 1];
	return v[i] + (pos - (double)i) * (v[i + 1] - v[i]);
}

static int calibrate(struct nn_model *m, const float *x, size_t N, float q, float margin)
{
	struct score_ctx s = { NULL, NULL, NULL, NULL, NULL, NULL };
	int rc;

	s.raw = malloc(sizeof(double) * N);
	if (!s.raw)
		return -ENOMEM;
	rc = run_chunks(m, x, N, score_chunk, &s);
	if (!rc) {
		double t = quantile(s.raw, N, q) * margin;
		m->threshold = t > NN_THRESHOLD_FLOOR ? (float)t : NN_THRESHOLD_FLOOR;
		m->thr_quantile = q;
		m->thr_margin = margin;
	}
	free(s.raw);
	return rc;
}

int nn_calibrate(struct nn_model *m, const float *x, size_t N, float quantile_, float margin)
{
	if (!m || !x || !N || !(quantile_ > 0.0f && quantile_ <= 1.0f) || !(margin >= 1.0f) ||
	    !isfinite(margin))
		return -EINVAL;
	return calibrate(m, x, N, quantile_, margin);
}

/* ---- training ---- */

void nn_train_opts_default(struct nn_train_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->epochs = 30;
	o->batch = 64;
	o->lr = 1e-3f;
	o->seed = 1;
	o->val_frac = 0.2f;
	o->patience = 5;
	o->max_seconds = 0.0;
	o->threshold_quantile = 0.99f;
	o->threshold_margin = 1.5f;
	o->optimizer = NN_ADAM;
	o->momentum = 0.9f;
	o->adam_beta1 = 0.9f;
	o->adam_beta2 = 0.999f;
	o->adam_eps = 1e-8f;
	o->min_delta = 1e-4f;
	o->cancel = NULL;
}

void nn_train_report_free(struct nn_train_report *r)
{
	if (!r)
		return;
	free(r->loss_history);
	r->loss_history = NULL;
	free(r->val_history);
	r->val_history = NULL;
}

/*
 * Training runs data-parallel: each step's batch is cut into one slice per
 * thread (the caller's thread is worker 0), every worker runs forward and
 * backward on its slice into its own gradient buffer with OpenBLAS
 * single-threaded, then each worker sums the gradients and applies the
 * optimizer on its own range of parameters. Two barriers per step; the sums
 * always run in worker order, so results depend only on seed and threads.
 * Splitting the batch beats OpenBLAS's own threading on these small GEMMs
 * and keeps a single pool of threads busy, not two.
 */
#define NN_MAX_THREADS 16

enum { CMD_STEP, CMD_SYNC, CMD_QUIT };

/* What worker 0 tells the others at the start of a step. */
struct step_msg {
	int cmd;
	int Bs;
	size_t i0;
	float lr_t, eps_t;
};

/*
 * A barrier that also carries worker 0's message for the round. Messages
 * alternate between two slots: the slot of round g is rewritten only at
 * round g+2, which no thread can reach before every thread has copied it.
 *
 * Waiters spin for a while before sleeping: at batch 64 a step of the
 * MLP-AE takes well under a millisecond, the other worker is usually a few
 * microseconds away, and a futex wake-up costs tens of microseconds (more
 * in a VM), twice per step. The spin is bounded, so a worker that waits
 * longer (validation on worker 0, a preempted thread) still sleeps.
 */
#define BARRIER_SPINS 2000

struct barrier {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int n, waiting;
	atomic_uint gen;
	struct step_msg msg[2];
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

static void barrier_wait(struct barrier *b, const struct step_msg *in, struct step_msg *out)
{
	pthread_mutex_lock(&b->mu);
	unsigned gen = atomic_load_explicit(&b->gen, memory_order_relaxed);
	if (in)
		b->msg[gen & 1] = *in;
	if (++b->waiting >= b->n) {
		b->waiting = 0;
		atomic_store_explicit(&b->gen, gen + 1, memory_order_release);
		pthread_cond_broadcast(&b->cv);
		pthread_mutex_unlock(&b->mu);
	} else {
		pthread_mutex_unlock(&b->mu);
		for (int i = 0; i < BARRIER_SPINS &&
				atomic_load_explicit(&b->gen, memory_order_acquire) == gen;
		     i++)
			cpu_relax();
		if (atomic_load_explicit(&b->gen, memory_order_acquire) == gen) {
			pthread_mutex_lock(&b->mu);
			while (atomic_load_explicit(&b->gen, memory_order_relaxed) == gen)
				pthread_cond_wait(&b->cv, &b->mu);
			pthread_mutex_unlock(&b->mu);
		}
	}
	/* the slot was written before gen moved (under the mutex, then the
	 * release store), and our acquire load of gen saw it move */
	if (out)
		*out = b->msg[gen & 1];
}

struct fit;

struct worker {
	struct fit *t;
	int k;        /* index; 0 is the calling thread */
	int cap;      /* rows this worker's buffers hold */
	float *mem;   /* one allocation for everything below */
	float *grads; /* n_params */
	float *xin;   /* (cap, D) standardized slice */
	float *act[NN_MAX_LAYERS]; /* (cap, out_size), post-ReLU */
	float *d0, *d1; /* (cap, act_max) gradient ping-pong */
	float *col;   /* (cap, col_max) */
	double loss;  /* sum over the slice's rows of their loss */
};

struct fit {
	struct nn_model *m;
	const struct nn_train_opts *o;
	const float *x;
	int T;
	struct worker w[NN_MAX_THREADS];
	pthread_t tid[NN_MAX_THREADS];
	struct barrier bar;
	int bar_init;
	float *mem;         /* mom1, mom2, best */
	float *mom1, *mom2; /* Adam m and v, or SGD velocity in mom1 */
	float *best;        /* n_params: best weights so far */
	size_t *idx;        /* training permutation */
	long step;
};

static int nn_threads = 1;

void nn_set_threads(int n)
{
	n = n < 1 ? 1 : n > NN_MAX_THREADS ? NN_MAX_THREADS : n;
	__atomic_store_n(&nn_threads, n, __ATOMIC_RELAXED);
	/* Our workers are the parallelism; OpenBLAS runs inside each of them.
	 * Its pool is stopped too, not just set to one thread: once it has run
	 * a multi-threaded GEMM, two workers calling it side by side trained
	 * the MLP-AE at 93k windows/s instead of 121-128k. */
	nn_blas_stop_pool();
}

/* Exported by OpenBLAS (its fork handler calls it) but in no header; weak,
 * so that a BLAS without it still links. */
extern int blas_thread_shutdown_(void) __attribute__((weak));

void nn_blas_stop_pool(void)
{
	openblas_set_num_threads(1);
	if (blas_thread_shutdown_)
		blas_thread_shutdown_();
}

int nn_get_threads(void)
{
	return __atomic_load_n(&nn_threads, __ATOMIC_RELAXED);
}

static void worker_free(struct worker *w)
{
	free(w->mem);
	w->mem = NULL;
}

static int worker_init(struct worker *w, const struct nn_model *m, int cap)
{
	size_t D = (size_t)m->C * m->W, acts = 0;
	float *p;

	w->cap = cap;
	for (int i = 0; i < m->n_layers; i++)
		acts += m->layers[i].out_size;
	w->mem = malloc(sizeof(float) *
			(m->n_params + (size_t)cap * (D + acts + 2 * m->act_max + m->col_max)));
	if (!w->mem)
		return -ENOMEM;
	p = w->mem;
	w->grads = p;
	p += m->n_params;
	w->xin = p;
	p += (size_t)cap * D;
	for (int i = 0; i < m->n_layers; i++) {
		w->act[i] = p;
		p += (size_t)cap * m->layers[i].out_size;
	}
	w->d0 = p;
	p += (size_t)cap * m->act_max;
	w->d1 = p;
	p += (size_t)cap * m->act_max;
	w->col = p;
	return 0;
}

/*
 * Loss of the B rows in w->xin; with `grad`, also accumulates into w->grads
 * the gradient of the mean loss over `Btot` rows (the whole batch), so the
 * workers' gradients sum to the batch gradient.
 */
static double slice_loss(const struct nn_model *m, struct worker *w, int B, int Btot, int grad)
{
	const int L = m->n_layers;
	const size_t D = (size_t)m->C * m->W, n = (size_t)B * D;
	const float *cur = w->xin, *y;
	double loss;
	float *d, *dn;

	for (int i = 0; i < L; i++) {
		layer_forward(m, &m->layers[i], w->act[i], w->col, cur, B);
		cur = w->act[i];
	}
	y = cur;
	loss = nn_mse_forward(y, w->xin, n);
	if (!grad)
		return loss;
	d = w->d0;
	dn = w->d1;
	{
		const float k = 2.0f / ((float)Btot * (float)D);
		for (size_t i = 0; i < n; i++)
			d[i] = k * (y[i] - w->xin[i]);
	}
	for (int i = L - 1; i >= 0; i--) {
		const struct nn_layer *l = &m->layers[i];
		if (l->relu)
			nn_relu_mask(d, w->act[i], (size_t)B * l->out_size);
		if (i > 0) {
			memset(dn, 0, sizeof(float) * (size_t)B * l->in_size);
			layer_backward(m, l, w->grads, dn, w->col, d, w->act[i - 1], B);
			float *tmp = d;
			d = dn;
			dn = tmp;
		} else {
			layer_backward(m, l, w->grads, NULL, w->col, d, w->xin, B);
		}
	}
	return loss;
}

/* Phase 1: forward and backward on this worker's slice of the batch. */
static void step_slice(struct fit *t, struct worker *w, const struct step_msg *s)
{
	const struct nn_model *m = t->m;
	const size_t D = (size_t)m->C * m->W;
	int lo = (int)((long)w->k * s->Bs / t->T), hi = (int)((long)(w->k + 1) * s->Bs / t->T);

	memset(w->grads, 0, sizeof(float) * m->n_params);
	w->loss = 0.0;
	if (hi <= lo)
		return;
	for (int b = 0; b < hi - lo; b++)
		to_model(m, w->xin + (size_t)b * D, t->x + t->idx[s->i0 + (size_t)(lo + b)] * D);
	w->loss = slice_loss(m, w, hi - lo, s->Bs, 1) * (hi - lo);
}

/* Phase 2: sum the workers' gradients and update this worker's parameter range. */
NN_MULTIVERSION
static void update_range(struct fit *t, int k, const struct step_msg *s)
{
	const struct nn_train_opts *o = t->o;
	const size_t P = t->m->n_params;
	const size_t lo = P * (size_t)k / (size_t)t->T, hi = P * (size_t)(k + 1) / (size_t)t->T;
	float *restrict p = t->m->params;
	float *restrict g = t->w[0].grads;
	float *restrict m1 = t->mom1, *restrict m2 = t->mom2;

	for (int j = 1; j < t->T; j++) {
		const float *restrict gj = t->w[j].grads;
		for (size_t i = lo; i < hi; i++)
			g[i] += gj[i];
	}
	if (o->optimizer == NN_SGD) {
		const float mu = o->momentum, lr = o->lr;
		for (size_t i = lo; i < hi; i++) {
			m1[i] = mu * m1[i] + g[i];
			p[i] -= lr * m1[i];
		}
		return;
	}
	/* Adam with bias correction folded into the step size and epsilon:
	 * lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps) = lr_t * m / (sqrt(v) + eps_t). */
	const float b1 = o->adam_beta1, b2 = o->adam_beta2, lr_t = s->lr_t, eps_t = s->eps_t;
	for (size_t i = lo; i < hi; i++) {
		m1[i] = b1 * m1[i] + (1.0f - b1) * g[i];
		m2[i] = b2 * m2[i] + (1.0f - b2) * g[i] * g[i];
		p[i] -= lr_t * m1[i] / (sqrtf(m2[i]) + eps_t);
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct fit *t = w->t;
	struct step_msg s;
	for (;;) {
		barrier_wait(&t->bar, NULL, &s);
		if (s.cmd == CMD_QUIT)
			break;
		if (s.cmd == CMD_SYNC)
			continue;
		step_slice(t, w, &s);
		barrier_wait(&t->bar, NULL, NULL);
		update_range(t, w->k, &s);
	}
	return NULL;
}

/* Waits until every worker has finished the last step (params are settled). */
static void fit_sync(struct fit *t)
{
	if (t->T > 1) {
		struct step_msg s = { .cmd = CMD_SYNC };
		barrier_wait(&t->bar, &s, NULL);
	}
}

/* Runs one optimizer step on rows idx[i0 .. i0+Bs); returns the batch's summed loss. */
static double fit_step(struct fit *t, size_t i0, int Bs)
{
	const struct nn_train_opts *o = t->o;
	struct step_msg s = { .cmd = CMD_STEP, .Bs = Bs, .i0 = i0 };
	double loss = 0.0;

	t->step++;
	if (o->optimizer == NN_ADAM) {
		double bc1 = 1.0 - pow(o->adam_beta1, (double)t->step);
		double bc2 = 1.0 - pow(o->adam_beta2, (double)t->step);
		s.lr_t = (float)(o->lr * sqrt(bc2) / bc1);
		s.eps_t = (float)(o->adam_eps * sqrt(bc2));
	}
	if (t->T > 1)
		barrier_wait(&t->bar, &s, NULL);
	step_slice(t, &t->w[0], &s);
	if (t->T > 1)
		barrier_wait(&t->bar, NULL, NULL);
	for (int k = 0; k < t->T; k++)
		loss += t->w[k].loss;
	update_range(t, 0, &s);
	return loss;
}

static void fit_free(struct fit *t)
{
	if (t->bar_init) {
		struct step_msg s = { .cmd = CMD_QUIT };
		barrier_wait(&t->bar, &s, NULL);
		for (int k = 1; k < t->T; k++)
			pthread_join(t->tid[k], NULL);
		pthread_mutex_destroy(&t->bar.mu);
		pthread_cond_destroy(&t->bar.cv);
		t->bar_init = 0;
	}
	for (int k = 0; k < NN_MAX_THREADS; k++)
		worker_free(&t->w[k]);
	free(t->mem);
	t->mem = NULL;
	free(t->idx);
	t->idx = NULL;
}

static int fit_init(struct fit *t, struct nn_model *m, const struct nn_train_opts *o,
			const float *x, int B, size_t n_train, int T)
{
	memset(t, 0, sizeof(*t));
	t->m = m;
	t->o = o;
	t->x = x;
	if (T > B)
		T = B;
	t->T = T < 1 ? 1 : T;
	t->mem = malloc(sizeof(float) * 3 * m->n_params);
	t->idx = malloc(sizeof(size_t) * n_train);
	if (!t->mem || !t->idx)
		goto oom;
	t->mom1 = t->mem;
	t->mom2 = t->mom1 + m->n_params;
	t->best = t->mom2 + m->n_params;
	memset(t->mom1, 0, sizeof(float) * 2 * m->n_params);
	for (size_t i = 0; i < n_train; i++)
		t->idx[i] = i;
	for (int k = 0; k < t->T; k++) {
		t->w[k].t = t;
		t->w[k].k = k;
		/* worker 0 also evaluates validation batches: give it a whole batch */
		if (worker_init(&t->w[k], m, k == 0 ? B : (B + t->T - 1) / t->T))
			goto oom;
	}
	if (t->T > 1) {
		pthread_mutex_init(&t->bar.mu, NULL);
		pthread_cond_init(&t->bar.cv, NULL);
		t->bar.n = t->T;
		t->bar_init = 1;
		for (int k = 1; k < t->T; k++) {
			if (pthread_create(&t->tid[k], NULL, worker_main, &t->w[k])) {
				/* Carry on with the workers we have: shrink the barrier to
				 * them, stop them, and train on this thread alone. */
				pthread_mutex_lock(&t->bar.mu);
				t->bar.n = k;
				pthread_mutex_unlock(&t->bar.mu);
				struct step_msg s = { .cmd = CMD_QUIT };
				barrier_wait(&t->bar, &s, NULL);
				for (int j = 1; j < k; j++)
					pthread_join(t->tid[j], NULL);
				pthread_mutex_destroy(&t->bar.mu);
				pthread_cond_destroy(&t->bar.cv);
				t->bar_init = 0;
				t->T = 1;
				break;
			}
			pthread_setname_np(t->tid[k], "pdm-nn-train");
		}
	}
	return 0;
oom:
	fit_free(t);
	return -ENOMEM;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Mean and std per channel over n windows, in double; constant channels get std 1. */
static void fit_norm(struct nn_model *m, const float *x, size_t n)
{
	const int C = m->C, W = m->W;
	for (int c = 0; c < C; c++) {
		double s = 0.0, ss = 0.0, cnt = (double)n * W, mu, var;
		for (size_t i = 0; i < n; i++) {
			const float *v = x + (i * C + (size_t)c) * W;
			for (int k = 0; k < W; k++)
				s += v[k];
		}
		mu = s / cnt;
		for (size_t i = 0; i < n; i++) {
			const float *v = x + (i * C + (size_t)c) * W;
			for (int k = 0; k < W; k++)
				ss += ((double)v[k] - mu) * ((double)v[k] - mu);
		}
		var = ss / cnt;
		m->mean[c] = (float)mu;
		/* A channel that did not move during training (a set point, a stuck
		 * sensor) would divide by ~0 and turn rounding noise into huge errors
		 * that outweigh every other channel; it is centred but left unscaled. */
		if (!(sqrt(var) > 1e-6 * (1.0 + fabs(mu))))
			m->std[c] = 1.0f;
		else
			m->std[c] = (float)sqrt(var);
	}
}

static int check_opts(const struct nn_train_opts *o)
{
	if (o->epochs < 1 || o->batch < 1 || o->batch > 65536 || !(o->lr > 0.0f) ||
	    !isfinite(o->lr) || !(o->val_frac > 0.0f && o->val_frac <= 0.5f) ||
	    o->patience < 0 || !(o->max_seconds >= 0.0) ||
	    !(o->threshold_quantile > 0.0f && o->threshold_quantile <= 1.0f) ||
	    !(o->threshold_margin >= 1.0f) || !isfinite(o->threshold_margin) ||
	    !(o->min_delta >= 0.0f && o->min_delta < 1.0f))
		return -EINVAL;
	if (o->optimizer == NN_SGD)
		return o->momentum >= 0.0f && o->momentum < 1.0f ? 0 : -EINVAL;
	if (o->optimizer != NN_ADAM)
		return -EINVAL;
	if (!(o->adam_beta1 >= 0.0f && o->adam_beta1 < 1.0f) ||
	    !(o->adam_beta2 >= 0.0f && o->adam_beta2 < 1.0f) || !(o->adam_eps > 0.0f))
		return -EINVAL;
	return 0;
}

/* Mean loss over n windows of x, in batches on worker 0. */
static double eval_loss(struct fit *t, const float *x, size_t n)
{
	struct nn_model *m = t->m;
	struct worker *w = &t->w[0];
	const size_t D = (size_t)m->C * m->W;
	double sum = 0.0;
	for (size_t i = 0; i < n; i += (size_t)w->cap) {
		int B = (int)(n - i < (size_t)w->cap ? n - i : (size_t)w->cap);
		for (int b = 0; b < B; b++)
			to_model(m, w->xin + (size_t)b * D, x + (i + (size_t)b) * D);
		sum += slice_loss(m, w, B, B, 0) * B;
	}
	return sum / (double)n;
}

double nn_debug_loss_grad(struct nn_model *m, const float *x, int B, float *grads)
{
	const size_t D = (size_t)m->C * m->W;
	struct nn_train_opts o;
	struct fit t;
	double loss;

	nn_train_opts_default(&o);
	if (fit_init(&t, m, &o, x, B, 1, 1))
		return NAN;
	for (int b = 0; b < B; b++)
		to_model(m, t.w[0].xin + (size_t)b * D, x + (size_t)b * D);
	memset(t.w[0].grads, 0, sizeof(float) * m->n_params);
	loss = slice_loss(m, &t.w[0], B, B, 1);
	memcpy(grads, t.w[0].grads, sizeof(float) * m->n_params);
	fit_free(&t);
	return loss;
}

int nn_train(struct nn_model *m, const float *x, size_t N, const struct nn_train_opts *o,
	     struct nn_train_report *report)
{
	struct nn_train_opts defaults;
	struct nn_train_report rep;
	struct fit t;
	const size_t D = m ? (size_t)m->C * m->W : 0;
	float *saved = NULL;
	double t0 = now_s(), best = INFINITY;
	size_t n_val, n_train;
	const float *xval;
	struct rng r;
	int rc, bad = 0, capped = 0, B;

	memset(&rep, 0, sizeof(rep));
	memset(&t, 0, sizeof(t));
	if (report)
		memset(report, 0, sizeof(*report));
	if (!o) {
		nn_train_opts_default(&defaults);
		o = &defaults;
	}
	if (!m || !x || check_opts(o))
		return -EINVAL;
	n_val = (size_t)((double)N * o->val_frac);
	if (n_val < 1)
		n_val = 1;
	if (N < 2 || n_val >= N)
		return -EINVAL;
	n_train = N - n_val;
	xval = x + n_train * D;
	if (!all_finite(x, N * D))
		return -PDM_ENONFINITE;

	/* Keep what the model had, to put it back if training fails. */
	saved = malloc(sizeof(float) * (m->n_params + 2 * (size_t)m->C));
	rep.loss_history = calloc((size_t)o->epochs, sizeof(float));
	rep.val_history = calloc((size_t)o->epochs, sizeof(float));
	rc = fit_init(&t, m, o, x, (int)(o->batch < (int)n_train ? o->batch : (int)n_train),
			  n_train, nn_get_threads());
	if (!saved || !rep.loss_history || !rep.val_history || rc) {
		rc = -ENOMEM;
		goto fail;
	}
	B = t.w[0].cap;
	memcpy(saved, m->params, sizeof(float) * m->n_params);
	memcpy(saved + m->n_params, m->mean, sizeof(float) * 2 * (size_t)m->C);

	fit_norm(m, x, n_train);
	memcpy(t.best, m->params, sizeof(float) * m->n_params);
	r.s = o->seed;
	rep.n_train = n_train;
	rep.n_val = n_val;

	for (int ep = 0; ep < o->epochs && !capped; ep++) {
		double sum = 0.0, ts = now_s(), vl;
		size_t seen = 0;

		for (size_t i = n_train - 1; i > 0; i--) {
			size_t j = rng_below(&r, i + 1), tmp = t.idx[i];
			t.idx[i] = t.idx[j];
			t.idx[j] = tmp;
		}
		for (size_t i = 0; i < n_train; i += (size_t)B) {
			int Bs = (int)(n_train - i < (size_t)B ? n_train - i : (size_t)B);
			sum += fit_step(&t, i, Bs);
			seen += (size_t)Bs;
			if (o->max_seconds > 0.0 && now_s() - t0 >= o->max_seconds) {
				capped = 1;
				break;
			}
			if (o->cancel && atomic_load_explicit(o->cancel, memory_order_relaxed)) {
				rc = -ECANCELED;
				goto fail;
			}
		}
		fit_sync(&t);
		rep.train_seconds += now_s() - ts;
		rep.epochs_run = ep + 1;
		rep.loss_history[ep] = (float)(sum / (double)seen);
		if (!isfinite(sum)) {
			rc = -PDM_ENONFINITE;
			goto fail;
		}
		vl = eval_loss(&t, xval, n_val);
		rep.val_history[ep] = (float)vl;
		if (!isfinite(vl)) {
			rc = -PDM_ENONFINITE;
			goto fail;
		}
		if (ep == 0 || vl < best * (1.0 - o->min_delta)) {
			best = vl;
			rep.best_epoch = ep + 1;
			memcpy(t.best, m->params, sizeof(float) * m->n_params);
			bad = 0;
		} else if (o->patience > 0 && ++bad >= o->patience) {
			rep.stopped_early = 1;
			break;
		}
	}
	rep.time_capped = capped;
	memcpy(m->params, t.best, sizeof(float) * m->n_params);
	if (m->kind == NN_MLP_AE)
		round_weights_half(m);
	m->params_gen++;
	rep.best_val_loss = best;
	fit_free(&t);

	/* The threshold comes from held-out windows only: training windows
	 * reconstruct better than new normal data will. */
	rc = calibrate(m, xval, n_val, o->threshold_quantile, o->threshold_margin);
	if (rc)
		goto fail;
	m->val_loss = best;
	m->train_windows = n_train;
	free(saved);
	rep.seconds = now_s() - t0;
	if (report)
		*report = rep;
	else
		nn_train_report_free(&rep);
	return 0;

fail:
	if (m)
		m->params_gen++;
	if (saved) {
		memcpy(m->params, saved, sizeof(float) * m->n_params);
		memcpy(m->mean, saved + m->n_params, sizeof(float) * 2 * (size_t)m->C);
	}
	free(saved);
	fit_free(&t);
	rep.seconds = now_s() - t0;
	if (report)
		*report = rep;
	else
		nn_train_report_free(&rep);
	return rc;
}
