/*
 * make_model_seeds.c - writes the seed corpus of fuzz_model: small real
 * model files (MLP and Conv, trained a few epochs on synthetic windows) and
 * damaged variants of them (truncated, bad magic/version/dimensions, a
 * flipped weight, NaN weights, zero std and zero, tiny and floor thresholds
 * under a valid CRC, trailing bytes).
 *
 * Run once by hand when the file format changes; the output is committed:
 *   cc -std=c11 -D_GNU_SOURCE -Inn -Icommon tests/fuzz/make_model_seeds.c \
 *      nn/nn.c nn/nn_layers.c nn/nn_file.c common/pdm_error.c \
 *      $(pkg-config --cflags --libs openblas) -lm -lpthread -o /tmp/mkseeds
 *   /tmp/mkseeds tests/fuzz/corpus/model
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"

/* CRC-32 (IEEE, as zlib), to keep damaged files past the checksum. */
static uint32_t crc32_ieee(const uint8_t *p, size_t n)
{
	uint32_t c = 0xFFFFFFFFu;
	for (size_t i = 0; i < n; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
	}
	return c ^ 0xFFFFFFFFu;
}

static void put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint8_t *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long len = ftell(f);
	rewind(f);
	uint8_t *b = malloc((size_t)len + 16);
	if (!b || fread(b, 1, (size_t)len, f) != (size_t)len) {
		fclose(f);
		free(b);
		return NULL;
	}
	fclose(f);
	*n = (size_t)len;
	return b;
}

static int spit(const char *dir, const char *name, const uint8_t *b, size_t n)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(b, 1, n, f) != n || fclose(f) != 0) {
		fprintf(stderr, "make_model_seeds: cannot write %s\n", path);
		return -1;
	}
	return 0;
}

static void fix_crc(uint8_t *b, size_t n)
{
	put_u32(b + n - 4, crc32_ieee(b, n - 4));
}

/* Variants of one saved model; `base` names them. */
static int variants(const char *dir, const char *base, const uint8_t *b, size_t n, int C)
{
	uint8_t *t = malloc(n + 8);
	char name[128];
	int rc = 0;
	if (!t)
		return -1;
	uint64_t np = 0;
	for (int i = 7; i >= 0; i--)
		np = (np << 8) | b[40 + i];
	/* std[0]: the C floats of std come right before the parameters */
	size_t std0 = n - 4 - 4 * (size_t)np - 4 * (size_t)C;

	snprintf(name, sizeof(name), "%s_trunc_hdr.bin", base);
	rc |= spit(dir, name, b, 60);
	snprintf(name, sizeof(name), "%s_trunc_half.bin", base);
	rc |= spit(dir, name, b, n / 2);
	snprintf(name, sizeof(name), "%s_trunc_crc.bin", base);
	rc |= spit(dir, name, b, n - 2);

	memcpy(t, b, n);
	t[n] = 0;
	snprintf(name, sizeof(name), "%s_trailing.bin", base);
	rc |= spit(dir, name, t, n + 1);

	memcpy(t, b, n);
	t[3] ^= 0x20;
	snprintf(name, sizeof(name), "%s_magic.bin", base);
	rc |= spit(dir, name, t, n);

	memcpy(t, b, n);
	put_u32(t + 8, 2);
	fix_crc(t, n);
	snprintf(name, sizeof(name), "%s_version2.bin", base);
	rc |= spit(dir, name, t, n);

	memcpy(t, b, n);
	put_u32(t + 24, (uint32_t)C + 1);
	fix_crc(t, n);
	snprintf(name, sizeof(name), "%s_dims.bin", base);
	rc |= spit(dir, name, t, n);

	memcpy(t, b, n);
	t[n - 20] ^= 0x01;
	snprintf(name, sizeof(name), "%s_flip.bin", base);
	rc |= spit(dir, name, t, n);

	/* Last weight NaN, CRC valid: only the value checks can catch it. */
	memcpy(t, b, n);
	put_u32(t + n - 8, 0x7FC00000u);
	fix_crc(t, n);
	snprintf(name, sizeof(name), "%s_nan.bin", base);
	rc |= spit(dir, name, t, n);

	memcpy(t, b, n);
	put_u32(t + std0, 0);
	fix_crc(t, n);
	snprintf(name, sizeof(name), "%s_std0.bin", base);
	rc |= spit(dir, name, t, n);

	/* threshold (header offset 80) zero, CRC valid */
	memcpy(t, b, n);
	put_u32(t + 80, 0);
	fix_crc(t, n);
	snprintf(name, sizeof(name), "%s_thr0.bin", base);
	rc |= spit(dir, name, t, n);

	/* a positive threshold below the training floor (1e-30): scores would
	 * overflow a float; found by fuzzing, refused since */
	memcpy(t, b, n);
	put_u32(t + 80, 0x0DA24260u);
	fix_crc(t, n);
	snprintf(name, sizeof(name), "%s_thr_tiny.bin", base);
	rc |= spit(dir, name, t, n);

	/* the floor itself (1e-6): accepted, scores large but finite */
	memcpy(t, b, n);
	put_u32(t + 80, 0x358637BDu);
	fix_crc(t, n);
	snprintf(name, sizeof(name), "%s_thr_floor.bin", base);
	rc |= spit(dir, name, t, n);
	free(t);
	return rc;
}

/* Damaged variants are written for one model only: they differ in a few
 * bytes, and the fuzzer derives the rest itself. */
static int one(const char *dir, const char *base, enum nn_kind kind, int C, int W, int epochs,
	       int damaged)
{
	struct nn_model *m = nn_model_new(kind, C, W, 7);
	char path[512];
	int rc;
	if (!m) {
		fprintf(stderr, "make_model_seeds: cannot build %s\n", base);
		return -1;
	}
	if (epochs > 0) {
		size_t N = 64;
		float *x = malloc(N * (size_t)C * (size_t)W * sizeof(float));
		if (!x) {
			nn_model_free(m);
			return -1;
		}
		for (size_t i = 0; i < N; i++)
			for (int c = 0; c < C; c++)
				for (int w = 0; w < W; w++)
					x[(i * (size_t)C + (size_t)c) * (size_t)W + (size_t)w] =
						(float)(10.0 * c + sin(0.3 * (double)(i + (size_t)w) + c));
		struct nn_train_opts o;
		nn_train_opts_default(&o);
		o.epochs = epochs;
		o.batch = 16;
		rc = nn_train(m, x, N, &o, NULL);
		free(x);
		if (rc) {
			fprintf(stderr, "make_model_seeds: training %s failed: %d\n", base, rc);
			nn_model_free(m);
			return -1;
		}
		nn_model_set_meta(m, 3, 1700000000000);
	}
	snprintf(path, sizeof(path), "%s/%s.bin", dir, base);
	rc = nn_model_save(m, path);
	nn_model_free(m);
	if (rc) {
		fprintf(stderr, "make_model_seeds: cannot save %s: %d\n", path, rc);
		return -1;
	}
	size_t n;
	uint8_t *b = slurp(path, &n);
	if (!b)
		return -1;
	rc = damaged ? variants(dir, base, b, n, C) : 0;
	free(b);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: make_model_seeds DIR\n");
		return 2;
	}
	int rc = 0;
	rc |= one(argv[1], "mlp_c1_w8_untrained", NN_MLP_AE, 1, 8, 0, 0);
	rc |= one(argv[1], "mlp_c3_w16", NN_MLP_AE, 3, 16, 2, 0);
	rc |= one(argv[1], "conv_c1_w8", NN_CONV_AE, 1, 8, 2, 1);
	rc |= one(argv[1], "conv_c2_w16", NN_CONV_AE, 2, 16, 2, 0);
	return rc ? 1 : 0;
}
