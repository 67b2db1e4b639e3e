/*
 * nn_bench.c - RW-NN (shared/bench/REFERENCE.md) on our autoencoders, and
 * in the same run the PyTorch peer on the same work, with the ratios.
 *
 * usage: nn_bench [--peer PATH|none] [--python PATH] [--epochs N] [--lat-reps N]
 *                 [--models mlp,cnn] [--data FILE]
 * --data: the windows as raw little-endian float32 (N, 8, 64), N > 20,000
 * (bench/nn.sh writes the peer's own data set there, so both train on the
 * same numbers); otherwise our own generator makes windows of the same recipe.
 * Prints "name value unit" lines: sgemm peak (1024^3) at 1 and 2 threads;
 * per model training windows/s at 1 and 2 threads (20,000 windows, batch 64,
 * Adam 1e-3, MSE, shuffled, 5 epochs), inference windows/s at batch 256,
 * one-window latency (median and p99, microseconds); then the peer's lines;
 * then speedup_* (ours over PyTorch's best thread setting, higher is better)
 * and train_sgemm_peak_fraction (training GFLOP/s over this machine's
 * measured sgemm GFLOP/s at the same thread count).
 */
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nn.h"

#define C 8
#define W 64
#define N_TRAIN 20000
#define MAX_VALS 256

/* FLOPs per window (multiply-add = 2), as REFERENCE.md counts them. */
static const double FLOP_FWD[2] = { 278528, 745472 };
static const double FLOP_TRAIN[2] = { 704512, 2121728 };
static const char *const TORCH_NAME[2] = { "mlp", "cnn" };
static const char *const OUR_NAME[2] = { "mlp_ae", "conv_ae" };

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_d);
	return v[n / 2];
}

/* The RW-NN data: per channel three sinusoids plus noise, standardized,
 * cut into sliding windows of stride 1. Our own generator, same recipe. */
static float *make_windows(size_t n, uint64_t seed)
{
	size_t T = n + W - 1;
	double *x = malloc(sizeof(double) * C * T);
	float *win = malloc(sizeof(float) * n * C * W);
	uint64_t s = seed;
	if (!x || !win)
		return NULL;
#define U() ((double)((s = s * 6364136223846793005ULL + 1442695040888963407ULL) >> 11) / 9007199254740992.0)
	for (int c = 0; c < C; c++) {
		double f[3], a[3], ph[3], mu = 0, var = 0;
		for (int k = 0; k < 3; k++) {
			f[k] = 0.002 + 0.198 * U();
			a[k] = 0.5 + 1.5 * U();
			ph[k] = 2 * M_PI * U();
		}
		for (size_t t = 0; t < T; t++) {
			double v = 0, u1 = U() + 1e-12, u2 = U();
			for (int k = 0; k < 3; k++)
				v += a[k] * sin(2 * M_PI * f[k] * (double)t + ph[k]);
			v += 0.1 * sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
			x[(size_t)c * T + t] = v;
			mu += v;
		}
		mu /= (double)T;
		for (size_t t = 0; t < T; t++)
			var += (x[(size_t)c * T + t] - mu) * (x[(size_t)c * T + t] - mu);
		var = sqrt(var / (double)T);
		for (size_t t = 0; t < T; t++)
			x[(size_t)c * T + t] = (x[(size_t)c * T + t] - mu) / var;
	}
#undef U
	for (size_t i = 0; i < n; i++)
		for (int c = 0; c < C; c++)
			for (int t = 0; t < W; t++)
				win[(i * C + (size_t)c) * W + (size_t)t] =
					(float)x[(size_t)c * T + i + (size_t)t];
	free(x);
	return win;
}

static float *load_windows(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	long len;
	float *x;
	if (!f || fseek(f, 0, SEEK_END) || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
		fprintf(stderr, "nn_bench: %s: %s\n", path, strerror(errno));
		if (f)
			fclose(f);
		return NULL;
	}
	*n = (size_t)len / (sizeof(float) * C * W);
	if (*n <= N_TRAIN || (size_t)len != *n * sizeof(float) * C * W) {
		fprintf(stderr, "nn_bench: %s: need more than %d windows of %dx%d float32\n", path,
			N_TRAIN, C, W);
		fclose(f);
		return NULL;
	}
	x = malloc((size_t)len);
	if (!x || fread(x, 1, (size_t)len, f) != (size_t)len) {
		fprintf(stderr, "nn_bench: %s: short read\n", path);
		free(x);
		fclose(f);
		return NULL;
	}
	fclose(f);
	return x;
}

static double sgemm_gflops(int threads)
{
	const int n = 1024;
	float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n),
	      *c = malloc(sizeof(float) * n * n);
	double res[5];
	for (int i = 0; i < n * n; i++) {
		a[i] = (float)(((long)i * 7919) % 1000) / 1000.0f - 0.5f;
		b[i] = (float)(((long)i * 104729) % 1000) / 1000.0f - 0.5f;
	}
	/* OpenBLAS's own threads here: this is the machine's GEMM ceiling. */
	openblas_set_num_threads(threads);
	for (int i = 0; i < 3; i++)
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n,
			    0.0f, c, n);
	for (int r = 0; r < 5; r++) {
		int k = 0;
		double t0 = now_s();
		while (now_s() - t0 < 0.1) {
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n,
				    b, n, 0.0f, c, n);
			k++;
		}
		res[r] = 2.0 * n * n * n * k / (now_s() - t0) / 1e9;
	}
	free(a);
	free(b);
	free(c);
	return median(res, 5);
}

/* name -> value table for our figures and the peer's */
struct val {
	char name[96];
	double v;
};
static struct val vals[MAX_VALS];
static int n_vals;

static void put(const char *name, double v, const char *unit, int prec)
{
	printf("%s %.*f %s\n", name, prec, v, unit);
	fflush(stdout);
	if (n_vals < MAX_VALS) {
		snprintf(vals[n_vals].name, sizeof(vals[n_vals].name), "%s", name);
		vals[n_vals++].v = v;
	}
}

static int get(const char *name, double *v)
{
	for (int i = 0; i < n_vals; i++)
		if (!strcmp(vals[i].name, name)) {
			*v = vals[i].v;
			return 1;
		}
	return 0;
}

static int run_ours(int mi, int epochs, int lat_reps, const float *x, size_t N)
{
	const enum nn_kind kind = mi ? NN_CONV_AE : NN_MLP_AE;
	const size_t D = (size_t)C * W;
	char name[96];

	for (int threads = 1; threads <= 2; threads++) {
		struct nn_model *m = nn_model_new(kind, C, W, 0);
		struct nn_train_opts o;
		struct nn_train_report r;
		int rc;

		nn_set_threads(threads);
		nn_train_opts_default(&o);
		o.epochs = epochs;
		o.batch = 64;
		o.lr = 1e-3f;
		o.patience = 0;
		o.seed = 0;
		o.val_frac = (float)((double)(N - N_TRAIN) / (double)N);
		rc = nn_train(m, x, N, &o, &r);
		if (rc) {
			fprintf(stderr, "nn_bench: training failed: %d\n", rc);
			return rc;
		}
		double tr = (double)r.n_train * r.epochs_run / r.train_seconds;
		snprintf(name, sizeof(name), "nn_%s_train_t%d", OUR_NAME[mi], threads);
		put(name, tr, "windows/s", 0);
		snprintf(name, sizeof(name), "nn_%s_train_final_loss_t%d", OUR_NAME[mi], threads);
		put(name, r.loss_history[r.epochs_run - 1], "mse", 5);
		snprintf(name, sizeof(name), "nn_%s_train_t%d_gflops", OUR_NAME[mi], threads);
		put(name, tr * FLOP_TRAIN[mi] / 1e9, "GFLOP/s", 2);
		nn_train_report_free(&r);

		/* inference at batch 256 over all windows, median of 5 passes */
		float *score = malloc(sizeof(float) * 256);
		double res[5];
		size_t nb = N_TRAIN / 256;
		for (int w = 0; w < 4; w++)
			nn_score(m, x + (size_t)w * 256 * D, 256, score, NULL, NULL);
		for (int p = 0; p < 5; p++) {
			double t0 = now_s();
			for (size_t b = 0; b < nb; b++)
				nn_score(m, x + b * 256 * D, 256, score, NULL, NULL);
			res[p] = (double)(nb * 256) / (now_s() - t0);
		}
		snprintf(name, sizeof(name), "nn_%s_infer_b256_t%d", OUR_NAME[mi], threads);
		double inf = median(res, 5);
		put(name, inf, "windows/s", 0);
		snprintf(name, sizeof(name), "nn_%s_infer_b256_t%d_gflops", OUR_NAME[mi], threads);
		put(name, inf * FLOP_FWD[mi] / 1e9, "GFLOP/s", 2);

		/* one-window latency: nn_score_means with shares and the window
		 * means, as the daemon calls it, on one fixed window as the peer
		 * measures it */
		if (threads == 1) {
			double *ts = malloc(sizeof(double) * (size_t)lat_reps);
			float sh[C], xm[C], ym[C];
			for (int i = 0; i < 500; i++)
				nn_score_means(m, x, 1, score, sh, xm, ym);
			for (int i = 0; i < lat_reps; i++) {
				double t0 = now_s();
				nn_score_means(m, x, 1, score, sh, xm, ym);
				ts[i] = (now_s() - t0) * 1e6;
			}
			qsort(ts, (size_t)lat_reps, sizeof(double), cmp_d);
			snprintf(name, sizeof(name), "nn_%s_lat_b1_t1", OUR_NAME[mi]);
			put(name, ts[lat_reps / 2], "us", 1);
			snprintf(name, sizeof(name), "nn_%s_lat_b1_p99_t1", OUR_NAME[mi]);
			put(name, ts[(size_t)(lat_reps * 0.99)], "us", 1);
			free(ts);
		}
		free(score);
		nn_model_free(m);
	}
	return 0;
}

static void run_peer(const char *python, const char *peer, int epochs, const char *models)
{
	char cmd[4096], line[512];
	FILE *p;
	snprintf(cmd, sizeof(cmd), "'%s' '%s' --threads 1,2,1x2 --models %s --epochs %d", python,
		 peer, models, epochs);
	p = popen(cmd, "r");
	if (!p) {
		fprintf(stderr, "nn_bench: cannot run %s: %s\n", cmd, strerror(errno));
		return;
	}
	while (fgets(line, sizeof(line), p)) {
		char name[96], unit[32];
		double v;
		fputs(line, stdout);
		fflush(stdout);
		if (sscanf(line, "%95s %lf %31s", name, &v, unit) == 3 && n_vals < MAX_VALS) {
			snprintf(vals[n_vals].name, sizeof(vals[n_vals].name), "%s", name);
			vals[n_vals++].v = v;
		}
	}
	if (pclose(p) != 0)
		fprintf(stderr, "nn_bench: the PyTorch peer failed (%s)\n", cmd);
}

/* PyTorch's best of its thread settings for a figure (max for rates, min for latency). */
static int torch_best(const char *model, const char *fig, int lower_better, double *best)
{
	static const char *const cfg[] = { "t1", "t2", "t1b2" };
	char name[96];
	int found = 0;
	double v;
	for (int i = 0; i < 3; i++) {
		snprintf(name, sizeof(name), "torch_%s_%s_%s", model, fig, cfg[i]);
		if (!get(name, &v))
			continue;
		if (!found || (lower_better ? v < *best : v > *best))
			*best = v;
		found = 1;
	}
	return found;
}

int main(int argc, char **argv)
{
	const char *peer = getenv("PDM_TORCH_RW_NN");
	const char *python = getenv("PDM_PYTHON");
	const char *models = "mlp,cnn";
	int epochs = 5, lat_reps = 5000;
	const char *data = NULL;
	char name[96];

	if (!python)
		python = "/usr/bin/python3";
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--peer") && i + 1 < argc)
			peer = argv[++i];
		else if (!strcmp(argv[i], "--python") && i + 1 < argc)
			python = argv[++i];
		else if (!strcmp(argv[i], "--epochs") && i + 1 < argc)
			epochs = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--lat-reps") && i + 1 < argc)
			lat_reps = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--models") && i + 1 < argc)
			models = argv[++i];
		else if (!strcmp(argv[i], "--data") && i + 1 < argc)
			data = argv[++i];
		else {
			fprintf(stderr, "usage: %s [--peer PATH|none] [--python PATH] [--epochs N] "
				"[--lat-reps N] [--models mlp,cnn] [--data FILE]\n", argv[0]);
			return 2;
		}
	}
	if (epochs < 1 || lat_reps < 100) {
		fprintf(stderr, "nn_bench: --epochs >= 1, --lat-reps >= 100\n");
		return 2;
	}

	/* The same windows for both models; the tail is the validation part. */
	size_t N = N_TRAIN + 1000;
	float *x = data ? load_windows(data, &N) : make_windows(N, 0);
	if (!x)
		return 1;
	fprintf(stderr, "# %zu windows from %s\n", N, data ? data : "our generator");
	fprintf(stderr, "# openblas %s, core %s\n", openblas_get_config(), openblas_get_corename());
	double peak[3] = { 0, sgemm_gflops(1), sgemm_gflops(2) };
	nn_set_threads(1);
	put("nn_sgemm1024_t1", peak[1], "GFLOP/s", 2);
	put("nn_sgemm1024_t2", peak[2], "GFLOP/s", 2);
	for (int mi = 0; mi < 2; mi++)
		if (strstr(models, TORCH_NAME[mi]) && run_ours(mi, epochs, lat_reps, x, N))
			return 1;
	free(x);
	if (peer && strcmp(peer, "none"))
		run_peer(python, peer, epochs, models);

	double frac_min = INFINITY;
	for (int mi = 0; mi < 2; mi++) {
		double ours;
		if (!strstr(models, TORCH_NAME[mi]))
			continue;
		for (int t = 1; t <= 2; t++) {
			snprintf(name, sizeof(name), "nn_%s_train_t%d", OUR_NAME[mi], t);
			if (!get(name, &ours))
				continue;
			double frac = ours * FLOP_TRAIN[mi] / 1e9 / peak[t];
			snprintf(name, sizeof(name), "train_sgemm_peak_fraction_%s_t%d", OUR_NAME[mi], t);
			put(name, frac, "ratio", 4);
			if (frac < frac_min)
				frac_min = frac;
		}
	}
	for (int mi = 0; mi < 2; mi++) {
		double ours, t1, best;
		if (!strstr(models, TORCH_NAME[mi]))
			continue;
		snprintf(name, sizeof(name), "torch_%s_train_t1", TORCH_NAME[mi]);
		if (!get(name, &t1))
			continue;
		snprintf(name, sizeof(name), "nn_%s_train_t1", OUR_NAME[mi]);
		get(name, &ours);
		snprintf(name, sizeof(name), "speedup_train_%s_1t", OUR_NAME[mi]);
		put(name, ours / t1, "x", 3);
		if (torch_best(TORCH_NAME[mi], "train", 0, &best)) {
			snprintf(name, sizeof(name), "nn_%s_train_t2", OUR_NAME[mi]);
			get(name, &ours);
			snprintf(name, sizeof(name), "speedup_train_%s_2t", OUR_NAME[mi]);
			put(name, ours / best, "x", 3);
		}
		if (torch_best(TORCH_NAME[mi], "infer_b256", 0, &best)) {
			double o1, o2;
			snprintf(name, sizeof(name), "nn_%s_infer_b256_t1", OUR_NAME[mi]);
			get(name, &o1);
			snprintf(name, sizeof(name), "nn_%s_infer_b256_t2", OUR_NAME[mi]);
			get(name, &o2);
			snprintf(name, sizeof(name), "speedup_infer_b256_%s", OUR_NAME[mi]);
			put(name, (o1 > o2 ? o1 : o2) / best, "x", 3);
		}
	}
	for (int mi = 0; mi < 2; mi++) {
		double ours, best;
		if (!strstr(models, TORCH_NAME[mi]) || !torch_best(TORCH_NAME[mi], "lat_b1", 1, &best))
			continue;
		snprintf(name, sizeof(name), "nn_%s_lat_b1_t1", OUR_NAME[mi]);
		get(name, &ours);
		snprintf(name, sizeof(name), "speedup_latency_%s", OUR_NAME[mi]);
		put(name, best / ours, "x", 3);
	}
	if (isfinite(frac_min))
		put("train_sgemm_peak_fraction", frac_min, "ratio", 4);
	return 0;
}
