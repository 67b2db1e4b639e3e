/*
 * test_nn.c - the autoencoders end to end: full-model gradients against a
 * double-precision reference, the cblas forward against plain loops,
 * training that must cut the loss tenfold, determinism, early stopping and
 * the time cap, scoring and its explanations, standardization of constant
 * channels, threshold calibration, NaN/Inf refusal, thread safety across
 * models, and model files (round trip and every kind of bad file).
 */
#include <errno.h>
#include <fenv.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "nn.h"
#include "nn_internal.h"
#include "pdm_error.h"
#include "test_util.h"

/* ---- data ---- */

static uint64_t rs;
static double urand(void)
{
	rs = rs * 6364136223846793005ULL + 1442695040888963407ULL;
	return (double)(rs >> 11) * (1.0 / 9007199254740992.0);
}

static double nrand(void)
{
	double u = urand() + 1e-12, v = urand();
	return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

/*
 * N sliding windows (hop 2) over C channels of sinusoids plus noise, each
 * channel with its own offset and gain (so standardization matters).
 */
static float *make_windows(int C, int W, size_t N, uint64_t seed, double noise)
{
	size_t T = 2 * N + (size_t)W;
	float *x = malloc(sizeof(float) * N * C * W);
	double *sig = malloc(sizeof(double) * T * C);
	assert_non_null(x);
	assert_non_null(sig);
	rs = seed;
	for (int c = 0; c < C; c++) {
		double f1 = 0.01 + 0.1 * urand(), f2 = 0.01 + 0.2 * urand(), ph = 6.28 * urand();
		double off = 50.0 * c, gain = 1.0 + 10.0 * urand();
		for (size_t t = 0; t < T; t++)
			sig[(size_t)c * T + t] =
				off + gain * (sin(2 * M_PI * f1 * t + ph) +
					      0.5 * sin(2 * M_PI * f2 * t) + noise * nrand());
	}
	for (size_t n = 0; n < N; n++)
		for (int c = 0; c < C; c++)
			for (int t = 0; t < W; t++)
				x[(n * C + c) * W + t] = (float)sig[(size_t)c * T + 2 * n + t];
	free(sig);
	return x;
}

static void quick_opts(struct nn_train_opts *o)
{
	nn_train_opts_default(o);
	o->epochs = 20;
	o->batch = 32;
	o->lr = 3e-3f;
	o->patience = 0;
}

/* ---- a double-precision reference of the whole model ---- */

static void ref_layer(const struct nn_layer *l, const double *p, const double *in, double *out)
{
	const struct nn_conv_geom *g = &l->g;
	const double *w = p + l->w_off, *bias = p + l->b_off;
	for (size_t i = 0; i < l->out_size; i++)
		out[i] = bias[i % (size_t)g->cout];
	if (l->type == NN_L_DENSE) {
		for (int o = 0; o < g->cout; o++)
			for (int i = 0; i < g->cin; i++)
				out[o] += w[(size_t)o * g->cin + i] * in[i];
	} else if (l->type == NN_L_CONV) {
		for (int t = 0; t < g->lout; t++)
			for (int o = 0; o < g->cout; o++)
				for (int j = 0; j < g->k; j++) {
					int q = t * g->stride - g->pad + j;
					if (q < 0 || q >= g->lin)
						continue;
					for (int i = 0; i < g->cin; i++)
						out[t * g->cout + o] +=
							in[q * g->cin + i] *
							w[((size_t)o * g->k + j) * g->cin + i];
				}
	} else {
		for (int t = 0; t < g->lin; t++)
			for (int j = 0; j < g->k; j++) {
				int q = t * g->stride - g->pad + j;
				if (q < 0 || q >= g->lout)
					continue;
				for (int o = 0; o < g->cout; o++)
					for (int i = 0; i < g->cin; i++)
						out[q * g->cout + o] +=
							in[t * g->cin + i] *
							w[((size_t)i * g->k + j) * g->cout + o];
			}
	}
	if (l->relu)
		for (size_t i = 0; i < l->out_size; i++)
			out[i] = out[i] > 0 ? out[i] : 0;
}

/* Standardized window in the model's layout (MLP channels-first, Conv channels-last). */
static void ref_input(const struct nn_model *m, const float *x, double *a)
{
	for (int c = 0; c < m->C; c++)
		for (int t = 0; t < m->W; t++) {
			double v = ((double)x[(size_t)c * m->W + t] - m->mean[c]) / m->std[c];
			if (m->kind == NN_CONV_AE)
				a[(size_t)t * m->C + c] = v;
			else
				a[(size_t)c * m->W + t] = v;
		}
}

/* Reconstruction (standardized, model layout) of one window; returns the buffer holding it. */
static double *ref_forward(const struct nn_model *m, const double *p, const double *a, double *b0,
			   double *b1)
{
	const double *cur = a;
	double *bufs[2] = { b0, b1 };
	for (int i = 0; i < m->n_layers; i++) {
		ref_layer(&m->layers[i], p, cur, bufs[i & 1]);
		cur = bufs[i & 1];
	}
	return (double *)cur;
}

static double ref_loss(const struct nn_model *m, const double *p, const float *x, int B)
{
	size_t D = (size_t)m->C * m->W;
	double *a = malloc(sizeof(double) * D), *b0 = malloc(sizeof(double) * 8192),
	       *b1 = malloc(sizeof(double) * 8192), loss = 0;
	assert_true(m->act_max <= 8192);
	for (int b = 0; b < B; b++) {
		ref_input(m, x + (size_t)b * D, a);
		double *y = ref_forward(m, p, a, b0, b1);
		for (size_t i = 0; i < D; i++)
			loss += (y[i] - a[i]) * (y[i] - a[i]);
	}
	free(a);
	free(b0);
	free(b1);
	return loss / ((double)B * D);
}

static void check_model_grad(enum nn_kind kind, int C, int W)
{
	const int B = 3;
	struct nn_model *m = nn_model_new(kind, C, W, 42);
	float *x = make_windows(C, W, B, 5, 0.1), *g;
	double *p, gmax = 0;
	assert_non_null(m);
	/* Give the model a non-trivial standardization to differentiate through. */
	for (int c = 0; c < C; c++) {
		m->mean[c] = 50.0f * c;
		m->std[c] = 3.0f;
	}
	g = malloc(sizeof(float) * m->n_params);
	p = malloc(sizeof(double) * m->n_params);
	assert_non_null(g);
	assert_non_null(p);
	for (size_t i = 0; i < m->n_params; i++)
		p[i] = m->params[i];

	double loss = nn_debug_loss_grad(m, x, B, g);
	double ref = ref_loss(m, p, x, B);
	assert_true(fabs(loss - ref) <= 1e-5 * fabs(ref) + 1e-7);
	for (size_t i = 0; i < m->n_params; i++)
		gmax = fmax(gmax, fabs(g[i]));
	assert_true(gmax > 0);

	/* Every parameter of the last layer and of the first layer's bias, and a
	 * spread of the rest (all of them would take too long under ASan). */
	const struct nn_layer *last = &m->layers[m->n_layers - 1];
	size_t checked = 0;
	for (size_t i = 0; i < m->n_params; i++) {
		int pick = i >= last->w_off || (i >= m->layers[0].b_off &&
						i < m->layers[0].b_off + (size_t)m->layers[0].g.cout) ||
			   i % 97 == 0;
		if (!pick)
			continue;
		const double h = 1e-5;
		double saved = p[i];
		p[i] = saved + h;
		double lp = ref_loss(m, p, x, B);
		p[i] = saved - h;
		double lm = ref_loss(m, p, x, B);
		p[i] = saved;
		double num = (lp - lm) / (2 * h);
		if (fabs(num - g[i]) > 2e-3 * (fabs(num) + fabs(g[i])) + 1e-4 * gmax)
			fail_msg("%s param %zu: analytic %g numeric %g", nn_kind_name(kind), i,
				 (double)g[i], num);
		checked++;
	}
	assert_true(checked > 100);
	free(g);
	free(p);
	free(x);
	nn_model_free(m);
}

static void test_gradcheck_mlp(void **state)
{
	(void)state;
	check_model_grad(NN_MLP_AE, 3, 8);
}

static void test_gradcheck_conv(void **state)
{
	(void)state;
	check_model_grad(NN_CONV_AE, 3, 12);
}

/* nn_reconstruct (cblas, batched and single-window) against the reference loops. */
static void check_forward(enum nn_kind kind, int C, int W)
{
	const size_t N = 5, D = (size_t)C * W;
	struct nn_model *m = nn_model_new(kind, C, W, 3);
	float *x = make_windows(C, W, N, 9, 0.1), *y = malloc(sizeof(float) * N * D);
	double *p = malloc(sizeof(double) * m->n_params), *a = malloc(sizeof(double) * D);
	double *b0 = malloc(sizeof(double) * 8192), *b1 = malloc(sizeof(double) * 8192);
	for (int c = 0; c < C; c++) {
		m->mean[c] = 50.0f * c;
		m->std[c] = 2.0f + c;
	}
	for (size_t i = 0; i < m->n_params; i++)
		p[i] = m->params[i];
	for (int pass = 0; pass < 2; pass++) {
		/* pass 0: the whole batch at once; pass 1: one window per call */
		if (pass == 0)
			assert_int_equal(nn_reconstruct(m, x, N, y), 0);
		else
			for (size_t n = 0; n < N; n++)
				assert_int_equal(nn_reconstruct(m, x + n * D, 1, y + n * D), 0);
		for (size_t n = 0; n < N; n++) {
			ref_input(m, x + n * D, a);
			double *r = ref_forward(m, p, a, b0, b1);
			for (int c = 0; c < C; c++)
				for (int t = 0; t < W; t++) {
					size_t k = kind == NN_CONV_AE ? (size_t)t * C + c
								      : (size_t)c * W + t;
					double want = r[k] * m->std[c] + m->mean[c];
					double got = y[n * D + (size_t)c * W + t];
					if (fabs(got - want) > 1e-4 + 1e-5 * fabs(want))
						fail_msg("window %zu (%d,%d): %g vs %g", n, c, t, got,
							 want);
				}
		}
	}
	free(x);
	free(y);
	free(p);
	free(a);
	free(b0);
	free(b1);
	nn_model_free(m);
}

static void test_forward_matches_reference(void **state)
{
	(void)state;
	check_forward(NN_MLP_AE, 4, 16);
	check_forward(NN_CONV_AE, 4, 16);
	check_forward(NN_CONV_AE, 1, 8);
}

/* ---- kinds and dimensions ---- */

static void test_kinds_and_dims(void **state)
{
	enum nn_kind k;
	char err[200];
	(void)state;

	assert_int_equal(nn_kind_parse("mlp_ae", &k), 0);
	assert_int_equal(k, NN_MLP_AE);
	assert_int_equal(nn_kind_parse("conv_ae", &k), 0);
	assert_int_equal(k, NN_CONV_AE);
	assert_int_equal(nn_kind_parse("lstm", &k), -EINVAL);
	assert_string_equal(nn_kind_name(NN_CONV_AE), "conv_ae");
	assert_string_equal(nn_kind_name(NN_MLP_AE), "mlp_ae");

	assert_int_equal(nn_check_dims(NN_CONV_AE, 8, 64, err, sizeof(err)), 0);
	assert_int_equal(nn_check_dims(NN_MLP_AE, 8, 62, err, sizeof(err)), 0);
	assert_int_equal(nn_check_dims(NN_CONV_AE, 8, 62, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "60 or 64"));
	assert_int_equal(nn_check_dims(NN_CONV_AE, 8, 9, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "8 or 12"));
	assert_int_equal(nn_check_dims(NN_MLP_AE, 0, 64, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "1..256"));
	assert_int_equal(nn_check_dims(NN_MLP_AE, 8, 4, err, sizeof(err)), -EINVAL);
	assert_int_equal(nn_check_dims(NN_MLP_AE, 256, 4096, err, sizeof(err)), -EINVAL);
	assert_int_equal(nn_check_dims((enum nn_kind)7, 8, 64, err, sizeof(err)), -EINVAL);
	assert_null(nn_model_new(NN_CONV_AE, 8, 62, 1));

	/* RW-NN's shapes: parameter counts as PyTorch reports them */
	struct nn_model *m = nn_model_new(NN_MLP_AE, 8, 64, 1);
	struct nn_model_info info;
	nn_model_info(m, &info);
	assert_int_equal(info.n_params, 512 * 128 + 128 + 128 * 32 + 32 + 32 * 128 + 128 +
						128 * 512 + 512);
	nn_model_free(m);
	m = nn_model_new(NN_CONV_AE, 8, 64, 1);
	nn_model_info(m, &info);
	assert_int_equal(info.n_params, 8 * 32 * 7 + 32 + 32 * 16 * 7 + 16 + 16 * 16 * 7 + 16 +
						16 * 32 * 7 + 32 + 32 * 8 * 7 + 8);
	nn_model_free(m);
	nn_model_free(NULL);
}

/* ---- training ---- */

static void check_loss_falls(enum nn_kind kind, int optimizer)
{
	const int C = 4, W = 16;
	const size_t N = 500;
	float *x = make_windows(C, W, N, 1, 0.02);
	struct nn_model *m = nn_model_new(kind, C, W, 7);
	struct nn_train_opts o;
	struct nn_train_report r;

	quick_opts(&o);
	o.optimizer = optimizer;
	if (optimizer == NN_SGD) {
		o.lr = 0.05f;
		o.epochs = 30;
	}
	assert_int_equal(nn_train(m, x, N, &o, &r), 0);
	assert_int_equal(r.epochs_run, o.epochs);
	assert_int_equal(r.n_val, 100);
	assert_int_equal(r.n_train, 400);
	assert_non_null(r.loss_history);
	for (int i = 0; i < r.epochs_run; i++)
		assert_true(isfinite(r.loss_history[i]) && isfinite(r.val_history[i]));
	if (!(r.loss_history[r.epochs_run - 1] * 10 <= r.loss_history[0]))
		fail_msg("%s/%s: loss %g -> %g, not tenfold", nn_kind_name(kind),
			 optimizer == NN_SGD ? "sgd" : "adam", (double)r.loss_history[0],
			 (double)r.loss_history[r.epochs_run - 1]);
	assert_true(r.val_history[r.best_epoch - 1] == (float)r.best_val_loss);
	print_message("# %s/%s: loss %g -> %g\n", nn_kind_name(kind),
		      optimizer == NN_SGD ? "sgd" : "adam", (double)r.loss_history[0],
		      (double)r.loss_history[r.epochs_run - 1]);
	nn_train_report_free(&r);
	nn_train_report_free(&r); /* twice: must be safe */
	free(x);
	nn_model_free(m);
}

static void test_loss_falls_tenfold(void **state)
{
	(void)state;
	check_loss_falls(NN_MLP_AE, NN_ADAM);
	check_loss_falls(NN_CONV_AE, NN_ADAM);
	check_loss_falls(NN_MLP_AE, NN_SGD);
	check_loss_falls(NN_CONV_AE, NN_SGD);
}

static struct nn_model *train_one(enum nn_kind kind, uint64_t seed, const float *x, size_t N,
				  struct nn_train_report *r)
{
	struct nn_model *m = nn_model_new(kind, 4, 16, 11);
	struct nn_train_opts o;
	quick_opts(&o);
	o.epochs = 4;
	o.seed = seed;
	assert_int_equal(nn_train(m, x, N, &o, r), 0);
	return m;
}

static void test_deterministic(void **state)
{
	(void)state;
	const size_t N = 300;
	float *x = make_windows(4, 16, N, 2, 0.05);
	for (int k = NN_MLP_AE; k <= NN_CONV_AE; k++) {
		struct nn_train_report r1, r2, r3;
		struct nn_model *a = train_one((enum nn_kind)k, 5, x, N, &r1);
		struct nn_model *b = train_one((enum nn_kind)k, 5, x, N, &r2);
		struct nn_model *c = train_one((enum nn_kind)k, 6, x, N, &r3);
		assert_memory_equal(a->params, b->params, sizeof(float) * a->n_params);
		assert_memory_equal(r1.loss_history, r2.loss_history, sizeof(float) * 4);
		assert_true(a->threshold == b->threshold);
		assert_memory_not_equal(a->params, c->params, sizeof(float) * a->n_params);
		nn_train_report_free(&r1);
		nn_train_report_free(&r2);
		nn_train_report_free(&r3);
		nn_model_free(a);
		nn_model_free(b);
		nn_model_free(c);
	}
	free(x);
}

/* Two training threads: the same model every time, and close to the one-thread model. */
static void test_deterministic_two_threads(void **state)
{
	(void)state;
	const size_t N = 300;
	float *x = make_windows(4, 16, N, 2, 0.05);
	for (int k = NN_MLP_AE; k <= NN_CONV_AE; k++) {
		struct nn_train_report r1, r2, r3;
		nn_set_threads(2);
		assert_int_equal(nn_get_threads(), 2);
		struct nn_model *a = train_one((enum nn_kind)k, 5, x, N, &r1);
		struct nn_model *b = train_one((enum nn_kind)k, 5, x, N, &r2);
		nn_set_threads(1);
		struct nn_model *c = train_one((enum nn_kind)k, 5, x, N, &r3);
		assert_memory_equal(a->params, b->params, sizeof(float) * a->n_params);
		assert_memory_equal(r1.loss_history, r2.loss_history, sizeof(float) * 4);
		/* Only the order of float sums differs from one thread. */
		for (int e = 0; e < 4; e++)
			assert_true(fabs(r1.loss_history[e] - r3.loss_history[e]) <=
				    1e-3 * r3.loss_history[e]);
		nn_train_report_free(&r1);
		nn_train_report_free(&r2);
		nn_train_report_free(&r3);
		nn_model_free(a);
		nn_model_free(b);
		nn_model_free(c);
	}
	free(x);
}

static void test_early_stopping_restores_best(void **state)
{
	/* 24 windows of pure noise to train on, other noise to validate: the model
	 * memorizes its training windows and the validation loss turns up. */
	const int C = 2, W = 16;
	const size_t N = 48;
	float *x = malloc(sizeof(float) * N * C * W);
	struct nn_model *m = nn_model_new(NN_MLP_AE, C, W, 3);
	struct nn_train_opts o;
	struct nn_train_report r;
	double mse;
	(void)state;

	rs = 99;
	for (size_t i = 0; i < N * C * W; i++)
		x[i] = (float)nrand();
	nn_train_opts_default(&o);
	o.epochs = 300;
	o.batch = 8;
	o.lr = 3e-3f;
	o.val_frac = 0.5f;
	o.patience = 3;
	assert_int_equal(nn_train(m, x, N, &o, &r), 0);
	assert_int_equal(r.stopped_early, 1);
	assert_true(r.epochs_run < o.epochs);
	assert_int_equal(r.epochs_run, r.best_epoch + o.patience);
	/* The weights held now are the best epoch's, not the last one's. */
	for (int i = r.best_epoch; i < r.epochs_run; i++)
		assert_true(r.val_history[i] >= r.val_history[r.best_epoch - 1] * (1 - o.min_delta));
	assert_int_equal(nn_eval_mse(m, x + (N / 2) * C * W, N / 2, NULL, &mse), 0);
	assert_true(fabs(mse - r.best_val_loss) <= 1e-5 * r.best_val_loss);
	nn_train_report_free(&r);
	nn_model_free(m);
	free(x);
}

static void test_time_cap(void **state)
{
	const size_t N = 400;
	float *x = make_windows(4, 16, N, 3, 0.05);
	struct nn_model *m = nn_model_new(NN_CONV_AE, 4, 16, 3);
	struct nn_train_opts o;
	struct nn_train_report r;
	(void)state;

	quick_opts(&o);
	o.epochs = 1000000;
	o.max_seconds = 0.2;
	assert_int_equal(nn_train(m, x, N, &o, &r), 0);
	assert_int_equal(r.time_capped, 1);
	assert_true(r.epochs_run >= 1 && r.epochs_run < o.epochs);
	assert_true(m->threshold > 0 && isfinite(m->threshold));
	nn_train_report_free(&r);
	nn_model_free(m);
	free(x);
}

static void *cancel_later(void *arg)
{
	struct timespec d = { 0, 100 * 1000 * 1000 };
	nanosleep(&d, NULL);
	atomic_store((atomic_int *)arg, 1);
	return NULL;
}

/* A training that would run for ever ends at its next step once its cancel
 * flag is set from another thread (the daemon stopping), and the model is
 * left as it was. */
static void test_cancel(void **state)
{
	const size_t N = 400;
	float *x = make_windows(4, 16, N, 3, 0.05);
	struct nn_model *m = nn_model_new(NN_CONV_AE, 4, 16, 3);
	struct nn_train_opts o;
	atomic_int cancel = 0;
	pthread_t th;
	(void)state;

	float *before = malloc(sizeof(float) * m->n_params);
	assert_non_null(before);
	memcpy(before, m->params, sizeof(float) * m->n_params);
	double thr = m->threshold;
	quick_opts(&o);
	o.epochs = 1000000;
	o.patience = 0;
	o.cancel = &cancel;
	assert_int_equal(pthread_create(&th, NULL, cancel_later, &cancel), 0);
	assert_int_equal(nn_train(m, x, N, &o, NULL), -ECANCELED);
	pthread_join(th, NULL);
	assert_memory_equal(before, m->params, sizeof(float) * m->n_params);
	assert_true(m->threshold == thr);
	/* Set before the start: nothing trains. */
	assert_int_equal(nn_train(m, x, N, &o, NULL), -ECANCELED);
	assert_memory_equal(before, m->params, sizeof(float) * m->n_params);
	free(before);
	nn_model_free(m);
	free(x);
}

static void test_bad_options(void **state)
{
	float *x = make_windows(2, 8, 10, 3, 0.05);
	struct nn_model *m = nn_model_new(NN_MLP_AE, 2, 8, 3);
	struct nn_train_opts o;
	(void)state;

	nn_train_opts_default(&o);
	o.val_frac = 0.0f;
	assert_int_equal(nn_train(m, x, 10, &o, NULL), -EINVAL);
	nn_train_opts_default(&o);
	o.threshold_margin = 0.5f;
	assert_int_equal(nn_train(m, x, 10, &o, NULL), -EINVAL);
	nn_train_opts_default(&o);
	o.optimizer = 9;
	assert_int_equal(nn_train(m, x, 10, &o, NULL), -EINVAL);
	nn_train_opts_default(&o);
	assert_int_equal(nn_train(m, x, 1, &o, NULL), -EINVAL);
	assert_int_equal(nn_train(m, x, 10, NULL, NULL), 0); /* NULL = defaults */
	nn_model_free(m);
	free(x);
}

/* ---- NaN / Inf ---- */

static void test_nonfinite_refused(void **state)
{
	const int C = 3, W = 8;
	const size_t N = 60, D = (size_t)C * W;
	float *x = make_windows(C, W, N, 4, 0.05), *before, score[2] = { -1, -1 };
	struct nn_model *m = nn_model_new(NN_CONV_AE, C, W, 3);
	struct nn_train_opts o;
	(void)state;

	quick_opts(&o);
	o.epochs = 2;
	before = malloc(sizeof(float) * m->n_params);
	memcpy(before, m->params, sizeof(float) * m->n_params);
	x[17 * D + 5] = NAN;
	assert_int_equal(nn_train(m, x, N, &o, NULL), -PDM_ENONFINITE);
	x[17 * D + 5] = INFINITY;
	assert_int_equal(nn_train(m, x, N, &o, NULL), -PDM_ENONFINITE);
	x[N * D - 1] = -INFINITY; /* in the validation part */
	x[17 * D + 5] = 0.0f;
	assert_int_equal(nn_train(m, x, N, &o, NULL), -PDM_ENONFINITE);
	assert_memory_equal(before, m->params, sizeof(float) * m->n_params);
	x[N * D - 1] = 0.0f;
	assert_int_equal(nn_train(m, x, N, &o, NULL), 0);

	x[D + 3] = NAN;
	assert_int_equal(nn_score(m, x, 2, score, NULL, NULL), -PDM_ENONFINITE);
	assert_true(score[0] == -1 && score[1] == -1);
	x[D + 3] = INFINITY;
	assert_int_equal(nn_score(m, x + D, 1, score, NULL, NULL), -PDM_ENONFINITE);
	assert_int_equal(nn_calibrate(m, x, 2, 0.9f, 1.0f), -PDM_ENONFINITE);
	double mse;
	assert_int_equal(nn_eval_mse(m, x, 2, NULL, &mse), -PDM_ENONFINITE);
	free(before);
	free(x);
	nn_model_free(m);
}

/* ---- scoring ---- */

static void test_scores_and_shares(void **state)
{
	const int C = 4, W = 16;
	const size_t N = 500, D = (size_t)C * W;
	float *x = make_windows(C, W, N, 6, 0.02);
	float score[8], shares[8 * 4], ce[8 * 4], std[4];
	struct nn_train_opts o;
	(void)state;

	for (int k = NN_MLP_AE; k <= NN_CONV_AE; k++) {
		struct nn_model *m = nn_model_new((enum nn_kind)k, C, W, 8);
		struct nn_model_info info;
		quick_opts(&o);
		assert_int_equal(nn_train(m, x, N, &o, NULL), 0);
		nn_model_info(m, &info);
		nn_model_norm(m, NULL, std);

		/* windows 0-3 normal, 4-7 with channel 2 pushed off by 3 std over half the window */
		float *y = malloc(sizeof(float) * 8 * D);
		memcpy(y, x + 10 * D, sizeof(float) * 4 * D);
		memcpy(y + 4 * D, x + 20 * D, sizeof(float) * 4 * D);
		for (int n = 4; n < 8; n++)
			for (int t = W / 2; t < W; t++)
				y[(size_t)n * D + 2 * (size_t)W + t] += 3.0f * std[2];
		assert_int_equal(nn_score(m, y, 8, score, shares, ce), 0);
		for (int n = 0; n < 8; n++) {
			double sum = 0, mean = 0;
			for (int c = 0; c < C; c++) {
				assert_true(shares[n * C + c] >= 0);
				sum += shares[n * C + c];
				mean += ce[n * C + c];
			}
			assert_true(fabs(sum - 1.0) < 1e-5);
			/* the score is the mean channel error over the threshold */
			assert_true(fabs(mean / C / info.threshold - score[n]) <= 1e-4 * score[n]);
			if (n < 4) {
				assert_true(score[n] < 1.0f);
			} else {
				assert_true(score[n] > 2.0f);
				assert_true(shares[n * C + 2] > 0.5f);
			}
		}
		/* One window at a time gives the same numbers as a batch. */
		for (int n = 0; n < 8; n++) {
			float s1, sh1[4];
			assert_int_equal(nn_score(m, y + (size_t)n * D, 1, &s1, sh1, NULL), 0);
			assert_true(fabs(s1 - score[n]) <= 1e-5 * score[n]);
		}
		free(y);
		nn_model_free(m);
	}
	free(x);
}

/*
 * One window per call runs the MLP-AE's dense layers from packed weights,
 * not through cblas_sgemm: it must give the batched path's scores, shares
 * and channel errors. The sums run in a different order, so they agree to
 * float rounding: relative 1e-5 on scores and errors, 1e-5 on shares.
 * The packed copy must follow the weights: scored once before training,
 * then again after training changed them, and after nn_model_trim(). After
 * training the copy is at half width (where the CPU converts halves), with
 * the same results.
 */
static void check_one_window(int C, int W, uint64_t seed)
{
	const size_t N = 300, D = (size_t)C * W, K = 12;
	float *x = make_windows(C, W, N, seed, 0.05);
	float score[12], shares[12 * 8], ce[12 * 8];
	struct nn_model *m = nn_model_new(NN_MLP_AE, C, W, seed);
	struct nn_train_opts o;
	float s1, sh1[8], ce1[8];

	assert_true(C <= 8);
	assert_int_equal(nn_score(m, x, 1, &s1, sh1, ce1), 0);
	/* initialized weights are not binary16 values: the float copy, which
	 * must give the batched path's score too */
	assert_non_null(m->one_w);
	assert_null(m->one_h);
	assert_int_equal(nn_score(m, x, 2, score, shares, ce), 0);
	if (!(fabsf(s1 - score[0]) <= 1e-5f * score[0]))
		fail_msg("C=%d W=%d untrained: score %.9g vs batched %.9g", C, W, (double)s1,
			 (double)score[0]);
	quick_opts(&o);
	o.epochs = 3;
	assert_int_equal(nn_train(m, x, N, &o, NULL), 0);
	/* training leaves the dense weights on binary16 values, biases as they were */
	for (int i = 0; i < m->n_layers; i++) {
		const struct nn_layer *l = &m->layers[i];
		size_t nb = 0;
		for (size_t j = 0; j < (size_t)l->g.cin * l->g.cout; j++)
			assert_true(nn_half_round(m->params[l->w_off + j]) ==
				    m->params[l->w_off + j]);
		for (int j = 0; j < l->g.cout; j++)
			nb += nn_half_round(m->params[l->b_off + j]) != m->params[l->b_off + j];
		assert_true(nb > 0);
	}
	for (int round = 0; round < 2; round++) {
		if (round == 1)
			nn_model_trim(m);
		assert_int_equal(nn_score(m, x + 7 * D, 1, &s1, sh1, ce1), 0);
		if (nn_half_fast()) {
			assert_non_null(m->one_h);
			assert_null(m->one_w);
		}
		assert_int_equal(nn_score(m, x + 7 * D, K, score, shares, ce), 0);
		for (size_t n = 0; n < K; n++) {
			assert_int_equal(nn_score(m, x + (7 + n) * D, 1, &s1, sh1, ce1), 0);
			if (!(fabsf(s1 - score[n]) <= 1e-5f * score[n]))
				fail_msg("C=%d W=%d window %zu: score %.9g vs batched %.9g", C, W, n,
					 (double)s1, (double)score[n]);
			for (int c = 0; c < C; c++) {
				if (!(fabsf(ce1[c] - ce[n * C + c]) <= 1e-5f * ce[n * C + c]))
					fail_msg("C=%d W=%d window %zu channel %d: error %.9g vs %.9g",
						 C, W, n, c, (double)ce1[c], (double)ce[n * C + c]);
				assert_true(fabsf(sh1[c] - shares[n * C + c]) <= 1e-5f);
			}
		}
	}
	free(x);
	nn_model_free(m);
}

static void test_one_window_matches_batch(void **state)
{
	(void)state;
	check_one_window(8, 64, 21); /* RW-NN's shape: full 64-wide blocks and a 32-wide one */
	check_one_window(3, 13, 22); /* D = 39: only odd-width blocks */
}

static void test_constant_channel(void **state)
{
	const int C = 3, W = 16;
	const size_t N = 400, D = (size_t)C * W;
	float *x = make_windows(C, W, N, 12, 0.05), mean[3], std[3], score[4], shares[12];
	struct nn_model *m = nn_model_new(NN_MLP_AE, C, W, 2);
	struct nn_train_opts o;
	(void)state;

	for (size_t n = 0; n < N; n++)
		for (int t = 0; t < W; t++)
			x[n * D + 1 * (size_t)W + t] = 1500.0f; /* a set point that never moves */
	quick_opts(&o);
	assert_int_equal(nn_train(m, x, N, &o, NULL), 0);
	nn_model_norm(m, mean, std);
	assert_true(mean[1] == 1500.0f);
	assert_true(std[1] == 1.0f);
	assert_int_equal(nn_score(m, x + 350 * D, 4, score, shares, NULL), 0);
	for (int n = 0; n < 4; n++) {
		assert_true(isfinite(score[n]));
		assert_true(shares[n * C + 1] < 0.2f);
	}
	nn_model_free(m);
	free(x);
}

static void test_calibration(void **state)
{
	const int C = 2, W = 8;
	const size_t N = 400, D = (size_t)C * W;
	float *x = make_windows(C, W, N, 13, 0.1), score[100];
	struct nn_model *m = nn_model_new(NN_MLP_AE, C, W, 2);
	struct nn_train_opts o;
	struct nn_train_report r;
	(void)state;

	quick_opts(&o);
	o.epochs = 5;
	o.threshold_quantile = 1.0f;
	o.threshold_margin = 1.0f;
	assert_int_equal(nn_train(m, x, N, &o, &r), 0);
	nn_train_report_free(&r);
	/* Quantile 1 x margin 1 over the validation windows (the newest 20%):
	 * the worst of them scores exactly 1. */
	float best = 0, *val = x + 320 * D;
	for (size_t i = 0; i < 80; i += 20) {
		assert_int_equal(nn_score(m, val + i * D, 20, score + i, NULL, NULL), 0);
	}
	for (int i = 0; i < 80; i++)
		best = score[i] > best ? score[i] : best;
	assert_true(fabs(best - 1.0f) < 1e-5);

	/* Recalibrate on other windows: 90% quantile x 2 */
	assert_int_equal(nn_calibrate(m, x, 100, 0.9f, 2.0f), 0);
	assert_int_equal(nn_score(m, x, 100, score, NULL, NULL), 0);
	int over_half = 0, over = 0;
	for (int i = 0; i < 100; i++) {
		over_half += score[i] > 0.5f;
		over += score[i] > 1.0f;
	}
	assert_true(over_half >= 9 && over_half <= 11);
	assert_int_equal(nn_calibrate(m, x, 100, 0.0f, 2.0f), -EINVAL);
	assert_int_equal(nn_calibrate(m, x, 100, 0.5f, 0.9f), -EINVAL);
	(void)over;
	nn_model_free(m);
	free(x);
}

static void test_eval_mse_and_reconstruct(void **state)
{
	const int C = 3, W = 8;
	const size_t N = 200, D = (size_t)C * W;
	float *x = make_windows(C, W, N, 14, 0.05), std[3], scale[3], *y;
	struct nn_model *m = nn_model_new(NN_CONV_AE, C, W, 2);
	struct nn_train_opts o;
	double a, b, direct = 0;
	(void)state;

	quick_opts(&o);
	o.epochs = 5;
	assert_int_equal(nn_train(m, x, N, &o, NULL), 0);
	nn_model_norm(m, NULL, std);
	assert_int_equal(nn_eval_mse(m, x, N, NULL, &a), 0);
	assert_int_equal(nn_eval_mse(m, x, N, std, &b), 0);
	assert_true(fabs(a - b) <= 1e-6 * a);
	for (int c = 0; c < C; c++)
		scale[c] = 2 * std[c];
	assert_int_equal(nn_eval_mse(m, x, N, scale, &b), 0);
	assert_true(fabs(a / 4 - b) <= 1e-6 * a);
	/* The same number from the reconstruction in input units. */
	y = malloc(sizeof(float) * N * D);
	assert_int_equal(nn_reconstruct(m, x, N, y), 0);
	for (size_t n = 0; n < N; n++)
		for (int c = 0; c < C; c++)
			for (int t = 0; t < W; t++) {
				double d = ((double)y[n * D + (size_t)c * W + t] -
					    x[n * D + (size_t)c * W + t]) / std[c];
				direct += d * d;
			}
	direct /= (double)N * D;
	assert_true(fabs(direct - a) <= 1e-3 * a);
	scale[1] = 0.0f;
	assert_int_equal(nn_eval_mse(m, x, N, scale, &b), -EINVAL);
	free(y);
	free(x);
	nn_model_free(m);
}

/*
 * nn_score_means: the window means of the input and of its reconstruction
 * (what an alert shows as value and expected) agree with x itself and with
 * nn_reconstruct, for both kinds, batched and one window at a time; the
 * scores and shares are nn_score's.
 */
static void test_score_means(void **state)
{
	const int C = 3, W = 8;
	const size_t N = 40, D = (size_t)C * W;
	(void)state;

	for (int kind = 0; kind < 2; kind++) {
		float *x = make_windows(C, W, N, 21, 0.05), *y = malloc(sizeof(float) * N * D);
		float score[40], s2[40], shares[40 * 3], sh2[40 * 3], xm[40 * 3], ym[40 * 3];
		struct nn_model *m = nn_model_new(kind ? NN_MLP_AE : NN_CONV_AE, C, W, 3);
		struct nn_train_opts o;
		quick_opts(&o);
		o.epochs = 3;
		/* Inputs far from 0 in input units, so a missed de-standardization shows. */
		for (size_t i = 0; i < N * D; i++)
			x[i] = 100.0f + 10.0f * x[i];
		assert_int_equal(nn_train(m, x, N, &o, NULL), 0);
		assert_int_equal(nn_reconstruct(m, x, N, y), 0);
		assert_int_equal(nn_score(m, x, N, score, shares, NULL), 0);
		assert_int_equal(nn_score_means(m, x, N, s2, sh2, xm, ym), 0);
		for (size_t n = 0; n < N; n++) {
			assert_true(fabsf(s2[n] - score[n]) <= 1e-6f * score[n]);
			for (int c = 0; c < C; c++) {
				double sx = 0, sy = 0;
				for (int t = 0; t < W; t++) {
					sx += x[n * D + (size_t)c * W + t];
					sy += y[n * D + (size_t)c * W + t];
				}
				sx /= W;
				sy /= W;
				assert_true(fabsf(sh2[n * C + c] - shares[n * C + c]) <= 1e-6f);
				if (!(fabs(xm[n * C + c] - sx) <= 1e-4 * fabs(sx)) ||
				    !(fabs(ym[n * C + c] - sy) <= 1e-4 * fabs(sy)))
					fail_msg("kind %d window %zu channel %d: means %g / %g, want "
						 "%g / %g", kind, n, c, (double)xm[n * C + c],
						 (double)ym[n * C + c], sx, sy);
			}
		}
		/* One window (the daemon's call; the MLP's packed weights) agrees. */
		float s1, sh1[3], xm1[3], ym1[3];
		assert_int_equal(nn_score_means(m, x + 5 * D, 1, &s1, sh1, xm1, ym1), 0);
		for (int c = 0; c < C; c++) {
			assert_true(fabsf(xm1[c] - xm[5 * C + c]) <= 1e-4f * fabsf(xm[5 * C + c]));
			assert_true(fabsf(ym1[c] - ym[5 * C + c]) <= 1e-3f * fabsf(ym[5 * C + c]));
		}
		/* Either output may be left out. */
		assert_int_equal(nn_score_means(m, x, 2, s2, NULL, NULL, ym), 0);
		assert_int_equal(nn_score_means(m, NULL, 1, s2, NULL, xm, ym), -EINVAL);
		nn_model_free(m);
		free(y);
		free(x);
	}
}

/* ---- threads ---- */

struct thr {
	struct nn_model *m;
	const float *x;
	size_t N;
	float *score;
	int rc;
};

static void *train_thread(void *p)
{
	struct thr *t = p;
	struct nn_train_opts o;
	quick_opts(&o);
	o.epochs = 3;
	t->rc = nn_train(t->m, t->x, t->N, &o, NULL);
	return NULL;
}

static void *score_thread(void *p)
{
	struct thr *t = p;
	for (int i = 0; i < 50 && !t->rc; i++)
		t->rc = nn_score(t->m, t->x, t->N, t->score, NULL, NULL);
	return NULL;
}

static void test_threads(void **state)
{
	const size_t N = 300;
	float *x = make_windows(4, 16, N, 15, 0.05);
	float ref[40], got[40];
	struct nn_model *a = nn_model_new(NN_CONV_AE, 4, 16, 1);
	struct nn_model *b = nn_model_new(NN_MLP_AE, 4, 16, 1);
	struct nn_model *a2 = nn_model_new(NN_CONV_AE, 4, 16, 1);
	struct thr ta = { a, x, N, NULL, 0 }, tb = { b, x, 40, got, 0 };
	pthread_t pa, pb;
	(void)state;

	assert_int_equal(nn_score(b, x, 40, ref, NULL, NULL), 0);
	assert_int_equal(pthread_create(&pa, NULL, train_thread, &ta), 0);
	assert_int_equal(pthread_create(&pb, NULL, score_thread, &tb), 0);
	pthread_join(pa, NULL);
	pthread_join(pb, NULL);
	assert_int_equal(ta.rc, 0);
	assert_int_equal(tb.rc, 0);
	assert_memory_equal(ref, got, sizeof(ref));
	/* Training alongside a scorer gives the same model as training alone. */
	ta.m = a2;
	train_thread(&ta);
	assert_memory_equal(a->params, a2->params, sizeof(float) * a->n_params);
	nn_model_free(a);
	nn_model_free(a2);
	nn_model_free(b);
	free(x);
}

/* ---- files ---- */

struct files {
	char dir[256];
	char path[300];
};

static int files_setup(void **state)
{
	struct files *f = calloc(1, sizeof(*f));
	if (!f || test_mkdtemp(f->dir, sizeof(f->dir)))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/model.bin", f->dir);
	*state = f;
	return 0;
}

static int files_teardown(void **state)
{
	struct files *f = *state;
	test_rmtree(f->dir);
	free(f);
	return 0;
}

static struct nn_model *trained(enum nn_kind kind, float **xp, size_t *np)
{
	const size_t N = 200;
	float *x = make_windows(3, 16, N, 21, 0.05);
	struct nn_model *m = nn_model_new(kind, 3, 16, 5);
	struct nn_train_opts o;
	quick_opts(&o);
	o.epochs = 3;
	assert_int_equal(nn_train(m, x, N, &o, NULL), 0);
	*xp = x;
	*np = N;
	return m;
}

static void test_save_load_roundtrip(void **state)
{
	struct files *f = *state;
	char err[256];
	for (int k = NN_MLP_AE; k <= NN_CONV_AE; k++) {
		float *x, s1[50], s2[50], sh1[150], sh2[150];
		size_t N;
		struct nn_model *m = trained((enum nn_kind)k, &x, &N), *l = NULL;
		struct nn_model_info a, b;
		nn_model_set_meta(m, 7, 1764300000123LL);
		assert_int_equal(nn_model_save(m, f->path), 0);
		assert_int_equal(nn_model_load(f->path, &l, err, sizeof(err)), 0);
		assert_non_null(l);
		nn_model_info(m, &a);
		nn_model_info(l, &b);
		assert_int_equal(a.kind, b.kind);
		assert_int_equal(b.C, 3);
		assert_int_equal(b.W, 16);
		assert_int_equal(a.n_params, b.n_params);
		assert_true(a.threshold == b.threshold);
		assert_true(a.val_loss == b.val_loss);
		assert_int_equal(b.train_windows, 160);
		assert_int_equal(b.version, 7);
		assert_true(b.trained_at_ms == 1764300000123LL);
		assert_int_equal(nn_score(m, x, 50, s1, sh1, NULL), 0);
		assert_int_equal(nn_score(l, x, 50, s2, sh2, NULL), 0);
		assert_memory_equal(s1, s2, sizeof(s1));
		assert_memory_equal(sh1, sh2, sizeof(sh1));
		/* Saving again replaces the file atomically and leaves no temporary behind. */
		assert_int_equal(nn_model_save(l, f->path), 0);
		char cmd[400];
		snprintf(cmd, sizeof(cmd), "test $(ls -A '%s' | wc -l) -eq 1", f->dir);
		assert_int_equal(system(cmd), 0);
		nn_model_free(l);
		nn_model_free(m);
		free(x);
	}
	snprintf(f->path + strlen(f->path), 40, "/nonexistent");
	struct nn_model *m = nn_model_new(NN_MLP_AE, 2, 8, 1);
	assert_true(nn_model_save(m, "/nonexistent-dir/x/model.bin") < 0);
	nn_model_free(m);
}

static uint32_t crc32_ref(const uint8_t *p, size_t n)
{
	uint32_t c = 0xffffffffu;
	for (size_t i = 0; i < n; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
	}
	return ~c;
}

static uint8_t *slurp(const char *path, size_t *n)
{
	FILE *fp = fopen(path, "rb");
	assert_non_null(fp);
	fseek(fp, 0, SEEK_END);
	*n = (size_t)ftell(fp);
	rewind(fp);
	uint8_t *b = malloc(*n + 64);
	assert_int_equal(fread(b, 1, *n, fp), *n);
	fclose(fp);
	return b;
}

static void spit(const char *path, const uint8_t *b, size_t n)
{
	FILE *fp = fopen(path, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(b, 1, n, fp), n);
	fclose(fp);
}

static void fix_crc(uint8_t *b, size_t n)
{
	uint32_t c = crc32_ref(b, n - 4);
	b[n - 4] = (uint8_t)c;
	b[n - 3] = (uint8_t)(c >> 8);
	b[n - 2] = (uint8_t)(c >> 16);
	b[n - 1] = (uint8_t)(c >> 24);
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

/* Writes `b` (n bytes) to bad.bin, loads it, expects refusal with `code` and `needle` in err. */
static void expect_refused(struct files *f, const uint8_t *b, size_t n, int code,
			   const char *needle)
{
	char path[320], err[256] = "";
	struct nn_model *m = (struct nn_model *)0x1;
	snprintf(path, sizeof(path), "%s/bad.bin", f->dir);
	spit(path, b, n);
	int rc = nn_model_load(path, &m, err, sizeof(err));
	if (rc != code || m != NULL || !strstr(err, needle))
		fail_msg("expected %d '%s', got %d '%s'", code, needle, rc, err);
}

static void test_bad_files(void **state)
{
	struct files *f = *state;
	float *x;
	size_t N, n;
	char err[256];
	struct nn_model *m = trained(NN_CONV_AE, &x, &N), *l = (struct nn_model *)0x1;
	uint8_t *good, *b;

	assert_int_equal(nn_model_save(m, f->path), 0);
	good = slurp(f->path, &n);
	b = malloc(n + 64);

	/* missing file */
	assert_int_equal(nn_model_load("/nonexistent/model.bin", &l, err, sizeof(err)), -ENOENT);
	assert_null(l);
	/* empty */
	expect_refused(f, good, 0, -PDM_ECORRUPT, "truncated");
	/* truncated inside the header, inside the weights, just before the CRC */
	expect_refused(f, good, 50, -PDM_ECORRUPT, "truncated");
	expect_refused(f, good, n / 2, -PDM_ECORRUPT, "truncated");
	expect_refused(f, good, n - 1, -PDM_ECORRUPT, "truncated");
	/* trailing garbage */
	memcpy(b, good, n);
	memset(b + n, 0, 8);
	expect_refused(f, b, n + 8, -PDM_ECORRUPT, "trailing");
	/* bad magic */
	memcpy(b, good, n);
	b[0] = 'X';
	expect_refused(f, b, n, -PDM_ECORRUPT, "magic");
	/* a newer format version, even with a valid CRC */
	memcpy(b, good, n);
	put32(b + 8, 2);
	fix_crc(b, n);
	expect_refused(f, b, n, -PDM_EVERSION, "version 2");
	/* one flipped bit in the weights */
	memcpy(b, good, n);
	b[n / 2] ^= 0x10;
	expect_refused(f, b, n, -PDM_ECORRUPT, "CRC");
	/* a flipped bit in the CRC itself */
	memcpy(b, good, n);
	b[n - 2] ^= 1;
	expect_refused(f, b, n, -PDM_ECORRUPT, "CRC");
	/* absurd dimensions: a million channels, window 2^31 */
	memcpy(b, good, n);
	put32(b + 24, 1000000);
	fix_crc(b, n);
	expect_refused(f, b, n, -PDM_ECORRUPT, "dimensions");
	memcpy(b, good, n);
	put32(b + 28, 0x80000000u);
	fix_crc(b, n);
	expect_refused(f, b, n, -PDM_ECORRUPT, "dimensions");
	/* unknown kind */
	memcpy(b, good, n);
	put32(b + 20, 9);
	fix_crc(b, n);
	expect_refused(f, b, n, -PDM_ECORRUPT, "dimensions");
	/* parameter count that does not match the architecture */
	memcpy(b, good, n);
	put32(b + 40, 12);
	fix_crc(b, n);
	expect_refused(f, b, n, -PDM_ECORRUPT, "parameters");
	/* a layer table that differs from the architecture (kernel size) */
	memcpy(b, good, n);
	put32(b + 96 + 4 * 4, 5);
	fix_crc(b, n);
	expect_refused(f, b, n, -PDM_ECORRUPT, "layer 1");
	/* byte-order tag swapped (a big-endian writer) */
	memcpy(b, good, n);
	put32(b + 12, 0x04030201u);
	fix_crc(b, n);
	expect_refused(f, b, n, -PDM_ECORRUPT, "byte-order");
	/* NaN weight with a valid CRC */
	memcpy(b, good, n);
	put32(b + n - 8, 0x7fc00000u);
	fix_crc(b, n);
	expect_refused(f, b, n, -PDM_ECORRUPT, "non-finite");
	/* zero threshold with a valid CRC */
	memcpy(b, good, n);
	put32(b + 80, 0);
	fix_crc(b, n);
	expect_refused(f, b, n, -PDM_ECORRUPT, "threshold");
	/* a threshold below the floor training uses: scores would overflow a float */
	memcpy(b, good, n);
	put32(b + 80, 0x0da24260u); /* 1e-30f */
	fix_crc(b, n);
	expect_refused(f, b, n, -PDM_ECORRUPT, "threshold");
	/* zero std with a valid CRC (first std follows the 3 means after 5 layers) */
	memcpy(b, good, n);
	put32(b + 96 + 5 * 40 + 3 * 4, 0);
	fix_crc(b, n);
	expect_refused(f, b, n, -PDM_ECORRUPT, "normalization");
	/* the good file still loads */
	assert_int_equal(nn_model_load(f->path, &l, err, sizeof(err)), 0);
	nn_model_free(l);

	/* At the lowest threshold a file may hold, an error too large for a float
	 * saturates the score instead of becoming inf (found by fuzzing). */
	memcpy(b, good, n);
	put32(b + 80, 0x358637bdu); /* 1e-6f */
	fix_crc(b, n);
	spit(f->path, b, n);
	assert_int_equal(nn_model_load(f->path, &l, err, sizeof(err)), 0);
	{
		struct nn_model_info info;
		nn_model_info(l, &info);
		size_t D = (size_t)info.C * info.W;
		float *big = malloc(D * sizeof(float)), sc, sh[NN_MAX_CHANNELS],
		      ce[NN_MAX_CHANNELS];
		for (size_t i = 0; i < D; i++)
			big[i] = (i % 2) ? 1e17f : -1e17f;
		assert_int_equal(nn_score(l, big, 1, &sc, sh, ce), 0);
		assert_true(sc == FLT_MAX);
		for (int c = 0; c < info.C; c++)
			assert_true(isfinite(ce[c]) && ce[c] >= 0.0f);
		free(big);
	}
	nn_model_free(l);

	free(b);
	free(good);
	free(x);
	nn_model_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kinds_and_dims),
		cmocka_unit_test(test_gradcheck_mlp),
		cmocka_unit_test(test_gradcheck_conv),
		cmocka_unit_test(test_forward_matches_reference),
		cmocka_unit_test(test_loss_falls_tenfold),
		cmocka_unit_test(test_deterministic),
		cmocka_unit_test(test_deterministic_two_threads),
		cmocka_unit_test(test_early_stopping_restores_best),
		cmocka_unit_test(test_time_cap),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_bad_options),
		cmocka_unit_test(test_nonfinite_refused),
		cmocka_unit_test(test_scores_and_shares),
		cmocka_unit_test(test_one_window_matches_batch),
		cmocka_unit_test(test_constant_channel),
		cmocka_unit_test(test_calibration),
		cmocka_unit_test(test_eval_mse_and_reconstruct),
		cmocka_unit_test(test_score_means),
		cmocka_unit_test(test_threads),
		cmocka_unit_test_setup_teardown(test_save_load_roundtrip, files_setup, files_teardown),
		cmocka_unit_test_setup_teardown(test_bad_files, files_setup, files_teardown),
	};
	/* Any invalid operation or division by zero in the library is a bug. */
	feenableexcept(FE_INVALID | FE_DIVBYZERO);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
