/*
 * test_nn_dense.c - dense layer and ReLU: the cblas path against plain
 * loops, and gradients against central finite differences in double.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "nn_dense.h"

#define B 5
#define IN 7
#define OUT 3

static float frand(uint32_t *s)
{
	*s = *s * 1664525u + 1013904223u;
	return (float)((*s >> 8) & 0xffff) / 65536.0f * 2.0f - 1.0f;
}

static void fill(float *x, size_t n, uint32_t *s)
{
	for (size_t i = 0; i < n; i++)
		x[i] = frand(s);
}

static void test_forward_matches_loops(void **state)
{
	float inp[B * IN], w[OUT * IN], bias[OUT], out[B * OUT];
	uint32_t s = 1;
	(void)state;

	fill(inp, B * IN, &s);
	fill(w, OUT * IN, &s);
	fill(bias, OUT, &s);
	nn_dense_forward(out, inp, w, bias, B, IN, OUT);
	for (int b = 0; b < B; b++) {
		for (int o = 0; o < OUT; o++) {
			double ref = bias[o];
			for (int i = 0; i < IN; i++)
				ref += (double)inp[b * IN + i] * w[o * IN + i];
			assert_true(fabs(out[b * OUT + o] - ref) <= 1e-5 + 1e-5 * fabs(ref));
		}
	}
}

/* Loss = sum(out * g) for a fixed random g, so dL/dout = g. */
static double loss_of(const float *inp, const float *w, const float *bias, const float *g)
{
	double l = 0;
	for (int b = 0; b < B; b++)
		for (int o = 0; o < OUT; o++) {
			double y = bias[o];
			for (int i = 0; i < IN; i++)
				y += (double)inp[b * IN + i] * w[o * IN + i];
			l += y * g[b * OUT + o];
		}
	return l;
}

static void check_grad(float *param, const float *analytic, size_t n, const float *inp,
		       const float *w, const float *bias, const float *g)
{
	const double h = 1e-3;
	for (size_t i = 0; i < n; i++) {
		float saved = param[i];
		param[i] = (float)(saved + h);
		double lp = loss_of(inp, w, bias, g);
		param[i] = (float)(saved - h);
		double lm = loss_of(inp, w, bias, g);
		param[i] = saved;
		double num = (lp - lm) / (2 * h);
		double err = fabs(num - analytic[i]) / fmax(1e-6, fabs(num) + fabs(analytic[i]));
		assert_true(err < 1e-3);
	}
}

static void test_backward_finite_differences(void **state)
{
	float inp[B * IN], w[OUT * IN], bias[OUT], g[B * OUT];
	float dinp[B * IN] = { 0 }, dw[OUT * IN] = { 0 }, db[OUT] = { 0 };
	uint32_t s = 7;
	(void)state;

	fill(inp, B * IN, &s);
	fill(w, OUT * IN, &s);
	fill(bias, OUT, &s);
	fill(g, B * OUT, &s);
	nn_dense_backward(dinp, dw, db, g, inp, w, B, IN, OUT);
	check_grad(w, dw, OUT * IN, inp, w, bias, g);
	check_grad(bias, db, OUT, inp, w, bias, g);
	check_grad(inp, dinp, B * IN, inp, w, bias, g);
}

static void test_relu(void **state)
{
	float x[4] = { -1.0f, 0.0f, 2.0f, -0.5f }, y[4], dy[4] = { 1, 1, 1, 1 }, dx[4] = { 0 };
	(void)state;

	nn_relu_forward(y, x, 4);
	assert_true(y[0] == 0.0f && y[1] == 0.0f && y[2] == 2.0f && y[3] == 0.0f);
	nn_relu_backward(dx, dy, y, 4);
	assert_true(dx[0] == 0.0f && dx[2] == 1.0f && dx[3] == 0.0f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_forward_matches_loops),
		cmocka_unit_test(test_backward_finite_differences),
		cmocka_unit_test(test_relu),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
