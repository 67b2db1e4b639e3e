/*
 * fuzz_model.c - libFuzzer harness for the model-file loader (nn/nn_file.c).
 *
 * The loader reads a path, so each input goes into a memory file (memfd)
 * loaded through /proc/self/fd. It is loaded twice: as is, and with its last
 * four bytes replaced by the right CRC, so that mutations get past the
 * checksum to the checks behind it (dimensions, layer table, normalization,
 * threshold, weights). A refused file must say why and leave no model; an
 * accepted one must report the dimensions of its header and score two
 * windows with sane results, and saving it (to a private tmpfs directory)
 * must give back the same bytes, header padding aside.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "nn.h"
#include "pdm_error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HDR_BYTES 96

static int memfd = -1;
static char fdpath[64];
static char savedir[256], savepath[300];
static uint8_t *buf;
static size_t buf_cap;

static uint32_t crc_table[256];

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
		crc_table[i] = c;
	}
}

static uint32_t crc32_ieee(const uint8_t *p, size_t n)
{
	uint32_t c = 0xFFFFFFFFu;
	for (size_t i = 0; i < n; i++)
		c = crc_table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
	return c ^ 0xFFFFFFFFu;
}

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void cleanup(void)
{
	unlink(savepath);
	if (savedir[0])
		rmdir(savedir);
	free(buf);
}

static void setup(void)
{
	crc_init();
	/* one thread: the fuzzer shares the machine, and scoring needs no more */
	nn_set_threads(1);
	memfd = memfd_create("fuzz_model", MFD_CLOEXEC);
	if (memfd < 0)
		abort();
	snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", memfd);
	/* tmpfs: nn_model_save fsyncs, which must not cost a disk flush per run */
	snprintf(savedir, sizeof(savedir), "/dev/shm/pdm-fuzz-model-XXXXXX");
	if (!mkdtemp(savedir))
		abort();
	snprintf(savepath, sizeof(savepath), "%s/m.bin", savedir);
	atexit(cleanup);
}

static void put_file(const uint8_t *p, size_t n)
{
	if (ftruncate(memfd, 0) != 0 || (n && pwrite(memfd, p, n, 0) != (ssize_t)n))
		abort();
}

static void check_saved(const struct nn_model *m, const uint8_t *p, size_t n)
{
	if (nn_model_save(m, savepath) != 0)
		abort();
	FILE *f = fopen(savepath, "rb");
	if (!f)
		abort();
	uint8_t *s = malloc(n + 1);
	size_t got = s ? fread(s, 1, n + 1, f) : 0;
	fclose(f);
	if (got != n)
		abort();
	/* the header's two padding words are neither read nor kept */
	static const size_t pad[] = { 52, 92 };
	for (size_t i = 0; i + 4 < n; i++) {
		if ((i >= pad[0] && i < pad[0] + 4) || (i >= pad[1] && i < pad[1] + 4))
			continue;
		if (s[i] != p[i])
			abort();
	}
	free(s);
}

static void score(struct nn_model *m, const uint8_t *p)
{
	struct nn_model_info info;
	nn_model_info(m, &info);
	if ((uint32_t)info.kind != get_u32(p + 20) || (uint32_t)info.C != get_u32(p + 24) ||
	    (uint32_t)info.W != get_u32(p + 28) || !(info.threshold > 0.0f))
		abort();
	size_t C = (size_t)info.C, W = (size_t)info.W, N = 2;
	float *x = malloc(N * C * W * sizeof(float));
	float sc[2], *shares = malloc(N * C * sizeof(float)), *ce = malloc(N * C * sizeof(float));
	if (!x || !shares || !ce)
		abort();
	for (size_t i = 0; i < N * C * W; i++)
		x[i] = (float)(sin(0.1 * (double)i) * 10.0);
	int rc = nn_score(m, x, N, sc, shares, ce);
	if (rc == 0) {
		for (size_t i = 0; i < N; i++) {
			double sum = 0;
			if (!(sc[i] >= 0.0f) || !isfinite(sc[i]))
				abort();
			for (size_t c = 0; c < C; c++) {
				float sh = shares[i * C + c];
				if (!(sh >= 0.0f && sh <= 1.0f) || !(ce[i * C + c] >= 0.0f))
					abort();
				sum += sh;
			}
			if (fabs(sum - 1.0) > 1e-3)
				abort();
		}
	} else if (rc != -PDM_ENONFINITE) {
		abort();
	}
	free(x);
	free(shares);
	free(ce);
}

static void load(const uint8_t *p, size_t n)
{
	struct nn_model *m = (struct nn_model *)&m; /* must be set to NULL on failure */
	char err[256];
	put_file(p, n);
	err[0] = '\0';
	int rc = nn_model_load(fdpath, &m, err, sizeof(err));
	if (rc != 0) {
		if (m || !err[0] || (rc != -PDM_ECORRUPT && rc != -PDM_EVERSION))
			abort();
		return;
	}
	if (!m)
		abort();
	score(m, p);
	check_saved(m, p, n);
	nn_model_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (memfd < 0)
		setup();
	load(data, size);
	if (size < HDR_BYTES + 4)
		return 0;
	if (size > buf_cap) {
		free(buf);
		buf = malloc(size);
		buf_cap = buf ? size : 0;
		if (!buf)
			abort();
	}
	memcpy(buf, data, size);
	uint32_t crc = crc32_ieee(buf, size - 4);
	if (get_u32(buf + size - 4) == crc)
		return 0; /* already loaded as is */
	for (int i = 0; i < 4; i++)
		buf[size - 4 + i] = (uint8_t)(crc >> (8 * i));
	load(buf, size);
	return 0;
}
