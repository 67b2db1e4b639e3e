/*
 * nn_layers.c - dense, conv1d, transposed conv1d, ReLU and MSE kernels.
 *
 * Convolutions fold the whole batch into one GEMM: with channels-last
 * activations an im2col row is k contiguous runs of C floats, so building it
 * is a few memcpy calls, and (B * L) rows give OpenBLAS a tall matrix even
 * for the small channel counts of our autoencoders. The transposed
 * convolution runs the same two steps in the other order (GEMM, then a
 * col2im scatter-add), which is exactly the adjoint of conv1d.
 */
#include "nn_layers.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#include <stdatomic.h>
#define NN_HALF_X86 1
#endif

/*
 * One window (the daemon's scoring latency) is a matrix-vector product that
 * streams the whole weight matrix once: four rows at a time with 8-wide
 * partial sums, so each load of the input feeds four FMAs. Built for
 * AVX2+FMA and for the baseline, chosen at load time.
 */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define NN_MULTIVERSION __attribute__((target_clones("arch=x86-64-v3", "default")))
/* The packed one-window kernel also gets an AVX-512 build: one 64-byte load per
 * cache line streamed from L2 measured a few per cent faster on Zen 4. Each
 * output is a plain sequential sum (no FMA contraction in ISO C mode), so all
 * builds give the same bits. */
#define NN_MULTIVERSION_V4                                                             \
	__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define NN_MULTIVERSION
#define NN_MULTIVERSION_V4
#endif

typedef float v8f __attribute__((vector_size(32)));

/* Macros, not functions: passing 32-byte vectors by value would change with the ISA. */
#define LOAD8(v, p) memcpy(&(v), (p), sizeof(v8f))
#define HSUM8(v) ((((v)[0] + (v)[4]) + ((v)[1] + (v)[5])) + (((v)[2] + (v)[6]) + ((v)[3] + (v)[7])))

NN_MULTIVERSION
static void dense_one(float *out, const float *x, const float *w, const float *bias, int in_dim,
		      int out_dim)
{
	const int n8 = in_dim & ~7;
	int o = 0;

	for (; o + 4 <= out_dim; o += 4) {
		const float *w0 = w + (size_t)o * in_dim, *w1 = w0 + in_dim, *w2 = w1 + in_dim,
			    *w3 = w2 + in_dim;
		v8f a0 = { 0 }, a1 = { 0 }, a2 = { 0 }, a3 = { 0 };
		for (int i = 0; i < n8; i += 8) {
			v8f xv, v0, v1, v2, v3;
			LOAD8(xv, x + i);
			LOAD8(v0, w0 + i);
			LOAD8(v1, w1 + i);
			LOAD8(v2, w2 + i);
			LOAD8(v3, w3 + i);
			a0 += v0 * xv;
			a1 += v1 * xv;
			a2 += v2 * xv;
			a3 += v3 * xv;
		}
		float s0 = HSUM8(a0), s1 = HSUM8(a1), s2 = HSUM8(a2), s3 = HSUM8(a3);
		for (int i = n8; i < in_dim; i++) {
			s0 += w0[i] * x[i];
			s1 += w1[i] * x[i];
			s2 += w2[i] * x[i];
			s3 += w3[i] * x[i];
		}
		out[o] = s0 + (bias ? bias[o] : 0.0f);
		out[o + 1] = s1 + (bias ? bias[o + 1] : 0.0f);
		out[o + 2] = s2 + (bias ? bias[o + 2] : 0.0f);
		out[o + 3] = s3 + (bias ? bias[o + 3] : 0.0f);
	}
	for (; o < out_dim; o++) {
		const float *wr = w + (size_t)o * in_dim;
		v8f a = { 0 };
		for (int i = 0; i < n8; i += 8) {
			v8f xv, wv;
			LOAD8(xv, x + i);
			LOAD8(wv, wr + i);
			a += wv * xv;
		}
		float s = HSUM8(a);
		for (int i = n8; i < in_dim; i++)
			s += wr[i] * x[i];
		out[o] = s + (bias ? bias[o] : 0.0f);
	}
}

void nn_dense_forward(float *out, const float *inp, const float *weight, const float *bias,
		      int B, int in_dim, int out_dim)
{
	if (B == 1) {
		dense_one(out, inp, weight, bias, in_dim, out_dim);
		return;
	}
	if (bias) {
		for (int b = 0; b < B; b++)
			memcpy(out + (size_t)b * out_dim, bias, sizeof(float) * (size_t)out_dim);
	}
	/* out (B,out) = inp (B,in) . weight^T (in,out) [+ out] */
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, out_dim, in_dim, 1.0f, inp,
		    in_dim, weight, in_dim, bias ? 1.0f : 0.0f, out, out_dim);
}

/* Where weight (o, i) goes in the packed layout (see nn_layers.h). */
static size_t packed_at(int o, int i, int in_dim, int out_dim)
{
	const int o0 = o - o % NN_DENSE_BLOCK;
	const int bw = out_dim - o0 < NN_DENSE_BLOCK ? out_dim - o0 : NN_DENSE_BLOCK;
	return (size_t)o0 * in_dim + (size_t)i * bw + (size_t)(o - o0);
}

void nn_dense_pack(float *packed, const float *weight, int in_dim, int out_dim)
{
	for (int o = 0; o < out_dim; o++)
		for (int i = 0; i < in_dim; i++)
			packed[packed_at(o, i, in_dim, out_dim)] = weight[(size_t)o * in_dim + i];
}

/*
 * Plain loops over one block of bw outputs: called with a constant bw, the
 * compiler unrolls the inner loop completely and keeps the sums in
 * registers (eight 8-wide ones for 64); every packed weight is loaded once.
 */
static inline __attribute__((always_inline)) void dense_block(float *restrict out,
							       const float *restrict inp,
							       const float *restrict r,
							       const float *restrict bias,
							       int in_dim, const int bw)
{
	float acc[NN_DENSE_BLOCK];
	for (int k = 0; k < bw; k++)
		acc[k] = bias ? bias[k] : 0.0f;
	for (int i = 0; i < in_dim; i++, r += bw) {
		const float xi = inp[i];
		for (int k = 0; k < bw; k++)
			acc[k] += r[k] * xi;
	}
	memcpy(out, acc, sizeof(float) * (size_t)bw);
}

NN_MULTIVERSION_V4
void nn_dense_forward_one(float *restrict out, const float *restrict inp,
			  const float *restrict packed, const float *restrict bias, int in_dim,
			  int out_dim)
{
	for (int o0 = 0; o0 < out_dim; o0 += NN_DENSE_BLOCK) {
		const int bw = out_dim - o0 < NN_DENSE_BLOCK ? out_dim - o0 : NN_DENSE_BLOCK;
		const float *r = packed + (size_t)o0 * in_dim, *b = bias ? bias + o0 : NULL;
		/* the widths our models have, then any */
		if (bw == NN_DENSE_BLOCK)
			dense_block(out + o0, inp, r, b, in_dim, NN_DENSE_BLOCK);
		else if (bw == 32)
			dense_block(out + o0, inp, r, b, in_dim, 32);
		else
			dense_block(out + o0, inp, r, b, in_dim, bw);
	}
}

float nn_half_round(float f)
{
	const float a = fabsf(f);
	uint32_t u;

	if (!isless(a, 65520.0f)) /* quiet for NaN */
		return f; /* inf, NaN, or beyond the largest binary16 (65504) */
	if (a < 0x1p-14f) /* binary16 subnormals: multiples of 2^-24 (exact scaling) */
		return rintf(f * 0x1p24f) * 0x1p-24f;
	memcpy(&u, &f, sizeof(u));
	u += 0xfffu + ((u >> 13) & 1u); /* round the 23-bit mantissa to 10, ties to even */
	u &= ~0x1fffu;
	memcpy(&f, &u, sizeof(f));
	return f;
}

/* binary16 bits of f if f is exactly a binary16 value, else -1 */
static int32_t half_bits(float f)
{
	uint32_t u, a, sign, full;
	int e;

	memcpy(&u, &f, sizeof(u));
	sign = (u >> 16) & 0x8000u;
	a = u & 0x7fffffffu;
	if (a == 0)
		return (int32_t)sign;
	e = (int)(a >> 23) - 127;
	if (e > 15 || e < -24 || a >= 0x7f800000u)
		return -1;
	if (e >= -14) {
		if (a & 0x1fffu)
			return -1;
		return (int32_t)(sign | ((uint32_t)(e + 15) << 10) | ((a & 0x7fffffu) >> 13));
	}
	/* subnormal: f = full * 2^(e-23) = m * 2^-24 with m = full * 2^(e+1) */
	full = (a & 0x7fffffu) | 0x800000u;
	if (full & ((1u << -(e + 1)) - 1u))
		return -1;
	return (int32_t)(sign | (full >> -(e + 1)));
}

static float half_to_float(uint16_t h)
{
	const uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
	float f;

	if (e == 0) {
		f = (float)m * 0x1p-24f;
	} else if (e == 31) {
		f = m ? NAN : INFINITY;
	} else {
		uint32_t u = ((e + 112u) << 23) | (m << 13);
		memcpy(&f, &u, sizeof(f));
	}
	return (h & 0x8000u) ? -f : f;
}

int nn_dense_pack_half(unsigned short *packed, const float *weight, int in_dim, int out_dim)
{
	for (int o = 0; o < out_dim; o++)
		for (int i = 0; i < in_dim; i++) {
			int32_t h = half_bits(weight[(size_t)o * in_dim + i]);
			if (h < 0)
				return -ERANGE;
			packed[packed_at(o, i, in_dim, out_dim)] = (unsigned short)h;
		}
	return 0;
}

/* Any block width, any CPU: dense_block() with the weights widened one by one. */
static void half_block_plain(float *out, const float *inp, const unsigned short *r,
			     const float *bias, int in_dim, int bw)
{
	float acc[NN_DENSE_BLOCK];
	for (int k = 0; k < bw; k++)
		acc[k] = bias ? bias[k] : 0.0f;
	for (int i = 0; i < in_dim; i++, r += bw) {
		const float xi = inp[i];
		for (int k = 0; k < bw; k++)
			acc[k] += half_to_float(r[k]) * xi;
	}
	memcpy(out, acc, sizeof(float) * (size_t)bw);
}

#ifdef NN_HALF_X86
/*
 * NV 8-wide sums in registers over a block of 8*NV outputs: per input, NV
 * conversions of 8 halves and NV FMAs. The conversions share the FP pipes
 * with the arithmetic, so the FMA matters: a multiply and an add instead
 * took 4.8 us for the MLP-AE's layers where this takes 3.0 (Zen 4). Eight
 * independent sums cover the FMA latency; the AVX-512 form of this loop
 * measured slower here. The loops over k must be unrolled for the sums to
 * stay in registers.
 */
#define HALF_BLOCK_AVX2(NV)                                                               \
	do {                                                                              \
		__m256 acc[NV];                                                           \
		_Pragma("GCC unroll 8") for (int k = 0; k < (NV); k++)                    \
			acc[k] = b ? _mm256_loadu_ps(b + 8 * k) : _mm256_setzero_ps();     \
		for (int i = 0; i < in_dim; i++, r += 8 * (NV)) {                         \
			const __m256 xi = _mm256_set1_ps(inp[i]);                         \
			_Pragma("GCC unroll 8") for (int k = 0; k < (NV); k++) {          \
				__m128i h = _mm_loadu_si128((const __m128i *)(r + 8 * k)); \
				acc[k] = _mm256_fmadd_ps(_mm256_cvtph_ps(h), xi, acc[k]); \
			}                                                                 \
		}                                                                         \
		_Pragma("GCC unroll 8") for (int k = 0; k < (NV); k++)                    \
			_mm256_storeu_ps(out + o0 + 8 * k, acc[k]);                       \
	} while (0)

__attribute__((target("avx2,fma,f16c"))) static void
half_one_avx2(float *restrict out, const float *restrict inp, const unsigned short *restrict packed,
	      const float *restrict bias, int in_dim, int out_dim)
{
	for (int o0 = 0; o0 < out_dim; o0 += NN_DENSE_BLOCK) {
		const int bw = out_dim - o0 < NN_DENSE_BLOCK ? out_dim - o0 : NN_DENSE_BLOCK;
		const unsigned short *r = packed + (size_t)o0 * in_dim;
		const float *b = bias ? bias + o0 : NULL;
		if (bw == NN_DENSE_BLOCK)
			HALF_BLOCK_AVX2(8);
		else if (bw == 32)
			HALF_BLOCK_AVX2(4);
		else
			half_block_plain(out + o0, inp, r, b, in_dim, bw);
	}
}
#endif

int nn_half_fast(void)
{
#ifdef NN_HALF_X86
	/* cached: CPUID is slow, and traps to the hypervisor in a VM */
	static atomic_int fast = -1;
	int f = atomic_load_explicit(&fast, memory_order_relaxed);
	if (f < 0) {
		unsigned int a, b, c, d;
		__builtin_cpu_init();
		/* F16C is CPUID.1:ECX bit 29 (not every compiler's builtin knows it) */
		f = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
		    __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
		atomic_store_explicit(&fast, f, memory_order_relaxed);
	}
	return f;
#else
	return 0;
#endif
}

void nn_dense_forward_one_half(float *restrict out, const float *restrict inp,
			       const unsigned short *restrict packed, const float *restrict bias,
			       int in_dim, int out_dim)
{
#ifdef NN_HALF_X86
	if (nn_half_fast()) {
		half_one_avx2(out, inp, packed, bias, in_dim, out_dim);
		return;
	}
#endif
	for (int o0 = 0; o0 < out_dim; o0 += NN_DENSE_BLOCK) {
		const int bw = out_dim - o0 < NN_DENSE_BLOCK ? out_dim - o0 : NN_DENSE_BLOCK;
		half_block_plain(out + o0, inp, packed + (size_t)o0 * in_dim, bias ? bias + o0 : NULL,
				 in_dim, bw);
	}
}

static void colsum_acc(float *dbias, const float *d, size_t rows, int cols)
{
	for (size_t r = 0; r < rows; r++) {
		const float *row = d + r * (size_t)cols;
		for (int o = 0; o < cols; o++)
			dbias[o] += row[o];
	}
}

void nn_dense_backward(float *dinp, float *dweight, float *dbias, const float *dout,
		       const float *inp, const float *weight, int B, int in_dim, int out_dim)
{
	/* dweight (out,in) += dout^T (out,B) . inp (B,in) */
	cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out_dim, in_dim, B, 1.0f, dout,
		    out_dim, inp, in_dim, 1.0f, dweight, in_dim);
	if (dbias)
		colsum_acc(dbias, dout, (size_t)B, out_dim);
	/* dinp (B,in) += dout (B,out) . weight (out,in) */
	if (dinp)
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, in_dim, out_dim, 1.0f,
			    dout, out_dim, weight, in_dim, 1.0f, dinp, in_dim);
}

int nn_conv1d_lout(int lin, int k, int stride, int pad)
{
	if (lin < 1 || k < 1 || stride < 1 || pad < 0 || lin + 2 * pad < k)
		return -1;
	return (lin + 2 * pad - k) / stride + 1;
}

int nn_convt1d_lout(int lin, int k, int stride, int pad, int out_pad)
{
	if (lin < 1 || k < 1 || stride < 1 || pad < 0 || out_pad < 0 ||
	    (out_pad >= stride && out_pad > 0))
		return -1;
	int l = (lin - 1) * stride - 2 * pad + k + out_pad;
	return l >= 1 ? l : -1;
}

size_t nn_conv1d_col_size(const struct nn_conv_geom *g, int B)
{
	return (size_t)B * (size_t)g->lout * (size_t)g->k * (size_t)g->cin;
}

size_t nn_convt1d_col_size(const struct nn_conv_geom *g, int B)
{
	return (size_t)B * (size_t)g->lin * (size_t)g->k * (size_t)g->cout;
}

/*
 * col row (b, t) = src[b, t*stride - pad + j, :] for j = 0..k-1, zero where
 * the position falls outside 0..src_len-1. col is (B * npos, k * ch).
 */
static void im2col(float *col, const float *src, int B, int src_len, int ch, int npos, int k,
		   int stride, int pad)
{
	const size_t rowlen = (size_t)k * ch;
	for (int b = 0; b < B; b++) {
		const float *s = src + (size_t)b * src_len * ch;
		for (int t = 0; t < npos; t++) {
			float *row = col + ((size_t)b * npos + t) * rowlen;
			int start = t * stride - pad;
			if (start >= 0 && start + k <= src_len) {
				memcpy(row, s + (size_t)start * ch, sizeof(float) * rowlen);
				continue;
			}
			for (int j = 0; j < k; j++) {
				int p = start + j;
				float *dst = row + (size_t)j * ch;
				if (p >= 0 && p < src_len)
					memcpy(dst, s + (size_t)p * ch, sizeof(float) * (size_t)ch);
				else
					memset(dst, 0, sizeof(float) * (size_t)ch);
			}
		}
	}
}

/* The adjoint of im2col: dst[b, t*stride - pad + j, :] += col row (b, t) chunk j. */
static void col2im_acc(float *dst, const float *col, int B, int dst_len, int ch, int npos, int k,
		       int stride, int pad)
{
	const size_t rowlen = (size_t)k * ch;
	for (int b = 0; b < B; b++) {
		float *d = dst + (size_t)b * dst_len * ch;
		for (int t = 0; t < npos; t++) {
			const float *row = col + ((size_t)b * npos + t) * rowlen;
			int start = t * stride - pad;
			int j0 = start < 0 ? -start : 0;
			int j1 = dst_len - start < k ? dst_len - start : k;
			if (j1 <= j0)
				continue;
			/* The chunks j0..j1-1 land on consecutive positions: one contiguous run. */
			float *out = d + (size_t)(start + j0) * ch;
			const float *in = row + (size_t)j0 * ch;
			size_t n = (size_t)(j1 - j0) * ch;
			for (size_t i = 0; i < n; i++)
				out[i] += in[i];
		}
	}
}

static void bias_fill(float *out, const float *bias, size_t rows, int cols)
{
	for (size_t r = 0; r < rows; r++)
		memcpy(out + r * (size_t)cols, bias, sizeof(float) * (size_t)cols);
}

void nn_conv1d_forward(float *out, float *col, const float *inp, const float *weight,
		       const float *bias, const struct nn_conv_geom *g, int B)
{
	const int M = B * g->lout, K = g->k * g->cin;

	im2col(col, inp, B, g->lin, g->cin, g->lout, g->k, g->stride, g->pad);
	if (bias)
		bias_fill(out, bias, (size_t)M, g->cout);
	/* out (B*lout, cout) = col (B*lout, k*cin) . weight^T (k*cin, cout) */
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, g->cout, K, 1.0f, col, K, weight, K,
		    bias ? 1.0f : 0.0f, out, g->cout);
}

void nn_conv1d_backward(float *dinp, float *dweight, float *dbias, float *col, const float *dout,
			const float *inp, const float *weight, const struct nn_conv_geom *g,
			int B)
{
	const int M = B * g->lout, K = g->k * g->cin;

	im2col(col, inp, B, g->lin, g->cin, g->lout, g->k, g->stride, g->pad);
	/* dweight (cout, k*cin) += dout^T (cout, B*lout) . col (B*lout, k*cin) */
	cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, g->cout, K, M, 1.0f, dout, g->cout, col,
		    K, 1.0f, dweight, K);
	if (dbias)
		colsum_acc(dbias, dout, (size_t)M, g->cout);
	if (!dinp)
		return;
	/* dcol (B*lout, k*cin) = dout (B*lout, cout) . weight (cout, k*cin); reuses col */
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, K, g->cout, 1.0f, dout, g->cout,
		    weight, K, 0.0f, col, K);
	col2im_acc(dinp, col, B, g->lin, g->cin, g->lout, g->k, g->stride, g->pad);
}

void nn_convt1d_forward(float *out, float *col, const float *inp, const float *weight,
			const float *bias, const struct nn_conv_geom *g, int B)
{
	const int M = B * g->lin, N = g->k * g->cout;

	/* col (B*lin, k*cout) = inp (B*lin, cin) . weight (cin, k*cout) */
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, g->cin, 1.0f, inp, g->cin,
		    weight, N, 0.0f, col, N);
	if (bias)
		bias_fill(out, bias, (size_t)B * g->lout, g->cout);
	else
		memset(out, 0, sizeof(float) * (size_t)B * g->lout * g->cout);
	col2im_acc(out, col, B, g->lout, g->cout, g->lin, g->k, g->stride, g->pad);
}

void nn_convt1d_backward(float *dinp, float *dweight, float *dbias, float *col, const float *dout,
			 const float *inp, const float *weight, const struct nn_conv_geom *g,
			 int B)
{
	const int M = B * g->lin, N = g->k * g->cout;

	/* dcol (B*lin, k*cout): for each input position, the output gradient it touched. */
	im2col(col, dout, B, g->lout, g->cout, g->lin, g->k, g->stride, g->pad);
	/* dweight (cin, k*cout) += inp^T (cin, B*lin) . dcol (B*lin, k*cout) */
	cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, g->cin, N, M, 1.0f, inp, g->cin, col, N,
		    1.0f, dweight, N);
	if (dbias)
		colsum_acc(dbias, dout, (size_t)B * g->lout, g->cout);
	/* dinp (B*lin, cin) += dcol (B*lin, k*cout) . weight^T (k*cout, cin) */
	if (dinp)
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, g->cin, N, 1.0f, col, N,
			    weight, N, 1.0f, dinp, g->cin);
}

void nn_relu_forward(float *out, const float *inp, size_t n)
{
	for (size_t i = 0; i < n; i++)
		out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

void nn_relu_backward(float *dinp, const float *dout, const float *out, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (out[i] > 0.0f)
			dinp[i] += dout[i];
}

void nn_relu_mask(float *d, const float *out, size_t n)
{
	for (size_t i = 0; i < n; i++)
		d[i] = out[i] > 0.0f ? d[i] : 0.0f;
}

double nn_mse_forward(const float *y, const float *x, size_t n)
{
	double s = 0.0;
	for (size_t i = 0; i < n; i++) {
		double d = (double)y[i] - (double)x[i];
		s += d * d;
	}
	return n ? s / (double)n : 0.0;
}

void nn_mse_backward(float *dy, const float *y, const float *x, size_t n)
{
	const float k = n ? 2.0f / (float)n : 0.0f;
	for (size_t i = 0; i < n; i++)
		dy[i] = k * (y[i] - x[i]);
}
