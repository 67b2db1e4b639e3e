/*
 * test_nn_layers.c - the layer kernels: the cblas paths against plain
 * reference loops in double, and every gradient against central finite
 * differences of that double reference (relative error bound).
 */
#include <errno.h>
#include <fenv.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "nn_layers.h"

static float frand(uint32_t *s)
{
	*s = *s * 1664525u + 1013904223u;
	return (float)((*s >> 8) & 0xffff) / 65536.0f * 2.0f - 1.0f;
}

static float *rnd(size_t n, uint32_t *s)
{
	float *x = malloc(sizeof(float) * n);
	assert_non_null(x);
	for (size_t i = 0; i < n; i++)
		x[i] = frand(s);
	return x;
}

static float *zeros(size_t n)
{
	float *x = calloc(n, sizeof(float));
	assert_non_null(x);
	return x;
}

/* ---- reference forwards in double, straight from the definitions ---- */

enum kind { DENSE, CONV, CONVT };

struct layer_case {
	enum kind kind;
	struct nn_conv_geom g;
	int B;
	float *inp, *w, *bias;
};

static size_t n_in(const struct layer_case *t)
{
	return (size_t)t->B * t->g.lin * t->g.cin;
}

static size_t n_out(const struct layer_case *t)
{
	return (size_t)t->B * t->g.lout * t->g.cout;
}

static size_t n_w(const struct layer_case *t)
{
	return (size_t)t->g.cin * t->g.cout * t->g.k;
}

static void ref_forward(const struct layer_case *t, double *out)
{
	const struct nn_conv_geom *g = &t->g;
	for (size_t i = 0; i < n_out(t); i++)
		out[i] = t->bias[i % (size_t)g->cout];
	for (int b = 0; b < t->B; b++) {
		const float *x = t->inp + (size_t)b * g->lin * g->cin;
		double *y = out + (size_t)b * g->lout * g->cout;
		if (t->kind == CONV || t->kind == DENSE) {
			for (int to = 0; to < g->lout; to++)
				for (int o = 0; o < g->cout; o++)
					for (int j = 0; j < g->k; j++) {
						int p = to * g->stride - g->pad + j;
						if (p < 0 || p >= g->lin)
							continue;
						for (int i = 0; i < g->cin; i++)
							y[to * g->cout + o] +=
								(double)x[p * g->cin + i] *
								t->w[((size_t)o * g->k + j) * g->cin + i];
					}
		} else {
			for (int ti = 0; ti < g->lin; ti++)
				for (int j = 0; j < g->k; j++) {
					int p = ti * g->stride - g->pad + j;
					if (p < 0 || p >= g->lout)
						continue;
					for (int o = 0; o < g->cout; o++)
						for (int i = 0; i < g->cin; i++)
							y[p * g->cout + o] +=
								(double)x[ti * g->cin + i] *
								t->w[((size_t)i * g->k + j) * g->cout + o];
				}
		}
	}
}

static void run_forward(const struct layer_case *t, float *out, float *col)
{
	if (t->kind == DENSE)
		nn_dense_forward(out, t->inp, t->w, t->bias, t->B, t->g.cin, t->g.cout);
	else if (t->kind == CONV)
		nn_conv1d_forward(out, col, t->inp, t->w, t->bias, &t->g, t->B);
	else
		nn_convt1d_forward(out, col, t->inp, t->w, t->bias, &t->g, t->B);
}

static void run_backward(const struct layer_case *t, float *dinp, float *dw, float *db,
			 float *col, const float *dout)
{
	if (t->kind == DENSE)
		nn_dense_backward(dinp, dw, db, dout, t->inp, t->w, t->B, t->g.cin, t->g.cout);
	else if (t->kind == CONV)
		nn_conv1d_backward(dinp, dw, db, col, dout, t->inp, t->w, &t->g, t->B);
	else
		nn_convt1d_backward(dinp, dw, db, col, dout, t->inp, t->w, &t->g, t->B);
}

static size_t col_size(const struct layer_case *t)
{
	if (t->kind == CONV)
		return nn_conv1d_col_size(&t->g, t->B);
	if (t->kind == CONVT)
		return nn_convt1d_col_size(&t->g, t->B);
	return 1;
}

/* L = sum(out * gout) in double. */
static double ref_loss(const struct layer_case *t, const float *gout, double *buf)
{
	double l = 0.0;
	ref_forward(t, buf);
	for (size_t i = 0; i < n_out(t); i++)
		l += buf[i] * gout[i];
	return l;
}

static void check_fd(struct layer_case *t, float *param, const float *analytic, size_t n,
		     const float *gout, double *buf, const char *what)
{
	const double h = 1e-2;
	for (size_t i = 0; i < n; i++) {
		float saved = param[i];
		param[i] = (float)(saved + h);
		double lp = ref_loss(t, gout, buf);
		param[i] = (float)(saved - h);
		double lm = ref_loss(t, gout, buf);
		param[i] = saved;
		double num = (lp - lm) / (2 * h);
		double err = fabs(num - analytic[i]) / fmax(1e-3, fabs(num) + fabs(analytic[i]));
		if (err > 1e-3)
			fail_msg("%s[%zu]: analytic %g, numeric %g", what, i, (double)analytic[i], num);
	}
}

static void check_layer(enum kind kind, int cin, int cout, int k, int stride, int pad,
			int out_pad, int lin, int B, uint32_t seed)
{
	struct layer_case t = { .kind = kind, .B = B };
	uint32_t s = seed;

	t.g.cin = cin;
	t.g.cout = cout;
	t.g.k = k;
	t.g.stride = stride;
	t.g.pad = pad;
	t.g.out_pad = out_pad;
	t.g.lin = lin;
	t.g.lout = kind == CONV ? nn_conv1d_lout(lin, k, stride, pad)
		 : kind == CONVT ? nn_convt1d_lout(lin, k, stride, pad, out_pad) : 1;
	assert_true(t.g.lout > 0);
	t.inp = rnd(n_in(&t), &s);
	t.w = rnd(n_w(&t), &s);
	t.bias = rnd((size_t)cout, &s);

	float *out = zeros(n_out(&t)), *col = zeros(col_size(&t)), *gout = rnd(n_out(&t), &s);
	double *ref = malloc(sizeof(double) * n_out(&t));
	assert_non_null(ref);

	/* cblas path against the reference loops */
	run_forward(&t, out, col);
	ref_forward(&t, ref);
	for (size_t i = 0; i < n_out(&t); i++)
		if (fabs(out[i] - ref[i]) > 1e-5 + 1e-5 * fabs(ref[i]))
			fail_msg("forward[%zu]: %g vs reference %g", i, (double)out[i], ref[i]);

	/* Gradients accumulate: start from a known non-zero value. */
	float *dinp = zeros(n_in(&t)), *dw = zeros(n_w(&t)), *db = zeros((size_t)cout);
	for (size_t i = 0; i < n_w(&t); i++)
		dw[i] = 0.5f;
	run_backward(&t, dinp, dw, db, col, gout);
	for (size_t i = 0; i < n_w(&t); i++)
		dw[i] -= 0.5f;
	check_fd(&t, t.w, dw, n_w(&t), gout, ref, "dweight");
	check_fd(&t, t.bias, db, (size_t)cout, gout, ref, "dbias");
	check_fd(&t, t.inp, dinp, n_in(&t), gout, ref, "dinp");

	free(out);
	free(col);
	free(gout);
	free(ref);
	free(dinp);
	free(dw);
	free(db);
	free(t.inp);
	free(t.w);
	free(t.bias);
}

static void test_dense(void **state)
{
	(void)state;
	check_layer(DENSE, 7, 3, 1, 1, 0, 0, 1, 5, 1);
	/* B == 1 takes the GEMV path */
	check_layer(DENSE, 33, 9, 1, 1, 0, 0, 1, 1, 2);
}

/*
 * The packed one-window dense kernel against the reference loops and the
 * cblas path, for widths that take each block case: full 64-wide blocks,
 * a 32-wide last block, other widths, and no bias.
 */
static void check_dense_one(int in_dim, int out_dim, int with_bias, uint32_t seed)
{
	struct layer_case t = { .kind = DENSE, .B = 1 };
	uint32_t s = seed;
	t.g.cin = in_dim;
	t.g.cout = out_dim;
	t.g.k = t.g.stride = t.g.lin = t.g.lout = 1;
	t.inp = rnd((size_t)in_dim, &s);
	t.w = rnd((size_t)in_dim * out_dim, &s);
	t.bias = with_bias ? rnd((size_t)out_dim, &s) : zeros((size_t)out_dim);

	float *packed = zeros((size_t)in_dim * out_dim), *out = zeros((size_t)out_dim);
	float *gemm = zeros((size_t)out_dim);
	double *ref = malloc(sizeof(double) * (size_t)out_dim);
	assert_non_null(ref);
	nn_dense_pack(packed, t.w, in_dim, out_dim);
	nn_dense_forward_one(out, t.inp, packed, with_bias ? t.bias : NULL, in_dim, out_dim);
	ref_forward(&t, ref);
	/* B == 2 on the same window twice goes through cblas_sgemm */
	float *inp2 = malloc(sizeof(float) * 2 * (size_t)in_dim), *out2 = zeros(2 * (size_t)out_dim);
	assert_non_null(inp2);
	memcpy(inp2, t.inp, sizeof(float) * (size_t)in_dim);
	memcpy(inp2 + in_dim, t.inp, sizeof(float) * (size_t)in_dim);
	nn_dense_forward(out2, inp2, t.w, with_bias ? t.bias : NULL, 2, in_dim, out_dim);
	memcpy(gemm, out2, sizeof(float) * (size_t)out_dim);
	for (int o = 0; o < out_dim; o++) {
		if (fabs(out[o] - ref[o]) > 1e-5 + 1e-5 * fabs(ref[o]))
			fail_msg("%dx%d out[%d]: %g vs reference %g", in_dim, out_dim, o,
				 (double)out[o], ref[o]);
		if (fabs(out[o] - gemm[o]) > 1e-5 + 1e-5 * fabs(gemm[o]))
			fail_msg("%dx%d out[%d]: %g vs cblas %g", in_dim, out_dim, o,
				 (double)out[o], (double)gemm[o]);
	}

	/* Half-width weights: refused while a weight is not a binary16 value;
	 * once rounded, the float kernel's results on those weights (to float
	 * rounding: the vector kernel uses FMA). */
	unsigned short *half = malloc(sizeof(unsigned short) * (size_t)in_dim * out_dim + 1);
	float *hout = zeros((size_t)out_dim);
	assert_non_null(half);
	t.w[(size_t)in_dim * out_dim / 2] = 1.0f + 0x1p-12f;
	assert_int_equal(nn_dense_pack_half(half, t.w, in_dim, out_dim), -ERANGE);
	for (size_t i = 0; i < (size_t)in_dim * out_dim; i++)
		t.w[i] = nn_half_round(t.w[i]);
	assert_int_equal(nn_dense_pack_half(half, t.w, in_dim, out_dim), 0);
	nn_dense_pack(packed, t.w, in_dim, out_dim);
	nn_dense_forward_one(out, t.inp, packed, with_bias ? t.bias : NULL, in_dim, out_dim);
	nn_dense_forward_one_half(hout, t.inp, half, with_bias ? t.bias : NULL, in_dim, out_dim);
	for (int o = 0; o < out_dim; o++)
		if (fabsf(hout[o] - out[o]) > 1e-5f + 1e-5f * fabsf(out[o]))
			fail_msg("%dx%d out[%d]: half-width %g vs float %g (fast path %d)", in_dim,
				 out_dim, o, (double)hout[o], (double)out[o], nn_half_fast());
	free(half);
	free(hout);

	free(packed);
	free(out);
	free(gemm);
	free(ref);
	free(inp2);
	free(out2);
	free(t.inp);
	free(t.w);
	free(t.bias);
}

/* Bit patterns, so the check does not lean on the code under test. */
static float f32(uint32_t u)
{
	float f;
	memcpy(&f, &u, sizeof(f));
	return f;
}

static void test_half_round(void **state)
{
	(void)state;
	static const struct {
		float in, out;
	} cases[] = {
		{ 1.0f, 1.0f },
		{ -2.5f, -2.5f },
		{ 1.0f + 0x1p-11f, 1.0f },                      /* a tie: to even */
		{ 1.0f + 3 * 0x1p-11f, 1.0f + 0x1p-9f },        /* a tie: to even, upwards */
		{ 1.0f + 0x1p-11f + 0x1p-20f, 1.0f + 0x1p-10f }, /* just above the tie */
		{ 0.1f, 0.0999755859375f },
		{ 65504.0f, 65504.0f },
		{ 65519.0f, 65504.0f },
		{ 70000.0f, 70000.0f }, /* beyond binary16: unchanged */
		{ 0x1p-24f, 0x1p-24f }, /* smallest subnormal */
		{ 0x1p-26f, 0.0f },
		{ 3 * 0x1p-25f, 0x1p-23f }, /* 1.5 x 2^-24: a tie, to even */
		{ 0x1p-14f - 0x1p-30f, 0x1p-14f },
		{ 0.0f, 0.0f },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		float got = nn_half_round(cases[i].in);
		if (memcmp(&got, &cases[i].out, sizeof(got)) != 0)
			fail_msg("nn_half_round(%a) = %a, want %a", (double)cases[i].in, (double)got,
				 (double)cases[i].out);
	}
	assert_true(isnan(nn_half_round(f32(0x7fc00000u))));
	assert_true(isinf(nn_half_round(f32(0x7f800000u))));

	/* every binary16 value packs, and unpacks to itself through the kernel */
	unsigned short h;
	float one = 1.0f, out;
	for (uint32_t b = 0; b < 0x10000u; b++) {
		uint32_t e = (b >> 10) & 0x1fu, m = b & 0x3ffu;
		float v;
		if (e == 31)
			continue;
		v = e ? f32(((b & 0x8000u) << 16) | ((e + 112u) << 23) | (m << 13))
		      : ((b & 0x8000u) ? -1.0f : 1.0f) * (float)m * 0x1p-24f;
		if (nn_half_round(v) != v)
			fail_msg("binary16 value %a not kept by nn_half_round", (double)v);
		assert_int_equal(nn_dense_pack_half(&h, &v, 1, 1), 0);
		nn_dense_forward_one_half(&out, &one, &h, NULL, 1, 1);
		if (out != v)
			fail_msg("binary16 %04x: %a came back as %a", b, (double)v, (double)out);
	}
}

static void test_dense_one(void **state)
{
	(void)state;
	check_dense_one(512, 128, 1, 11); /* the MLP-AE's layers */
	check_dense_one(128, 32, 1, 12);
	check_dense_one(32, 128, 1, 13);
	check_dense_one(128, 512, 1, 14);
	check_dense_one(7, 3, 1, 15);
	check_dense_one(33, 100, 0, 16); /* a 64 block and a 36-wide one */
	check_dense_one(1, 1, 1, 17);
}

static void test_conv1d(void **state)
{
	(void)state;
	/* RW-NN's encoder geometry, small channel counts */
	check_layer(CONV, 3, 4, 7, 2, 3, 0, 16, 2, 3);
	/* stride 1 "same" conv, the decoder's last layer */
	check_layer(CONV, 4, 2, 7, 1, 3, 0, 12, 3, 4);
	/* odd length, no padding, k > stride */
	check_layer(CONV, 2, 3, 3, 2, 0, 0, 11, 2, 5);
	/* kernel 1 */
	check_layer(CONV, 5, 2, 1, 1, 0, 0, 6, 2, 6);
}

static void test_convt1d(void **state)
{
	(void)state;
	/* RW-NN's decoder geometry: doubles the length */
	check_layer(CONVT, 3, 4, 7, 2, 3, 1, 8, 2, 7);
	/* no output padding, odd output */
	check_layer(CONVT, 2, 3, 5, 2, 2, 0, 6, 3, 8);
	/* stride 3 with output padding 2 */
	check_layer(CONVT, 2, 2, 4, 3, 1, 2, 5, 2, 9);
	/* stride 1 */
	check_layer(CONVT, 3, 2, 3, 1, 1, 0, 7, 1, 10);
}

static void test_geometry(void **state)
{
	(void)state;
	assert_int_equal(nn_conv1d_lout(64, 7, 2, 3), 32);
	assert_int_equal(nn_conv1d_lout(32, 7, 2, 3), 16);
	assert_int_equal(nn_convt1d_lout(16, 7, 2, 3, 1), 32);
	assert_int_equal(nn_convt1d_lout(32, 7, 2, 3, 1), 64);
	assert_int_equal(nn_conv1d_lout(64, 7, 1, 3), 64);
	assert_int_equal(nn_conv1d_lout(3, 7, 1, 0), -1);
	assert_int_equal(nn_convt1d_lout(4, 3, 2, 0, 2), -1); /* out_pad must be < stride */
	assert_int_equal(nn_conv1d_lout(4, 3, 0, 0), -1);
}

static void test_relu(void **state)
{
	float x[4] = { -1.0f, 0.0f, 2.0f, -0.5f }, y[4], dy[4] = { 1, 1, 1, 1 }, dx[4] = { 0 };
	float m[4] = { 3, 3, 3, 3 };
	(void)state;

	nn_relu_forward(y, x, 4);
	assert_true(y[0] == 0.0f && y[1] == 0.0f && y[2] == 2.0f && y[3] == 0.0f);
	nn_relu_backward(dx, dy, y, 4);
	assert_true(dx[0] == 0.0f && dx[1] == 0.0f && dx[2] == 1.0f && dx[3] == 0.0f);
	nn_relu_mask(m, y, 4);
	assert_true(m[0] == 0.0f && m[1] == 0.0f && m[2] == 3.0f && m[3] == 0.0f);
}

static void test_mse(void **state)
{
	uint32_t s = 11;
	float *y = rnd(37, &s), *x = rnd(37, &s), dy[37];
	double ref = 0;
	(void)state;

	for (int i = 0; i < 37; i++)
		ref += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
	ref /= 37;
	assert_true(fabs(nn_mse_forward(y, x, 37) - ref) < 1e-12);
	nn_mse_backward(dy, y, x, 37);
	for (int i = 0; i < 37; i++) {
		const double h = 1e-3;
		float saved = y[i];
		y[i] = (float)(saved + h);
		double lp = nn_mse_forward(y, x, 37);
		y[i] = (float)(saved - h);
		double lm = nn_mse_forward(y, x, 37);
		y[i] = saved;
		double num = (lp - lm) / (2 * h);
		assert_true(fabs(num - dy[i]) / fmax(1e-6, fabs(num) + fabs(dy[i])) < 1e-3);
	}
	free(y);
	free(x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dense),
		cmocka_unit_test(test_dense_one),
		cmocka_unit_test(test_half_round),
		cmocka_unit_test(test_conv1d),
		cmocka_unit_test(test_convt1d),
		cmocka_unit_test(test_geometry),
		cmocka_unit_test(test_relu),
		cmocka_unit_test(test_mse),
	};
	feenableexcept(FE_INVALID | FE_DIVBYZERO | FE_OVERFLOW);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
