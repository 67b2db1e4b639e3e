/*
 * window.c - benchmark of the windowing path that training and replay use:
 * stored samples pushed in time order through window_push/window_advance,
 * every window cut (C=8 sensors at 10 Hz onto a 100 ms grid, W=64, hop=8,
 * hold=3). The same samples go to a vectorized NumPy peer (window_peer.py)
 * that applies the same rules; both print a checksum of the windows they cut
 * so the ratio compares equal work.
 *
 * usage: window_bench [--samples N] [--peer window_peer.py]
 * prints: window_samples_per_s, window_windows_per_s, numpy_window_samples_per_s,
 *         window_ratio_vs_numpy, window_checksum_match
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"
#include "pdm_time.h"
#include "window.h"

#define NCH 8
#define WLEN 64
#define HOP 8
#define HOLD 3
#define INTERVAL 100

struct sample {
	int64_t ts;
	int32_t ch;
	double v;
	uint8_t good;
};

struct tally {
	uint64_t ok, gap;
	double sum; /* of every value in OK windows */
};

static int on_window(const float *x, int64_t ts_ms, enum window_status st, void *user)
{
	struct tally *t = user;
	(void)ts_ms;

	if (st != WINDOW_OK) {
		t->gap++;
		return 0;
	}
	double s = 0;
	for (int i = 0; i < NCH * WLEN; i++)
		s += x[i];
	t->sum += s;
	t->ok++;
	return 0;
}

static uint64_t rng = 88172645463325252ULL;

static double urand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (double)(rng >> 11) / 9007199254740992.0;
}

/* 10 Hz per channel with +-20 ms jitter, 1% bad quality, rare 1.5 s
 * dropouts (gaps); merged in time order as the store returns them. */
static struct sample *make_samples(size_t n)
{
	struct sample *s = malloc(n * sizeof(*s));
	int64_t next[NCH];
	const int64_t t0 = 1795839942000LL;

	if (!s)
		return NULL;
	for (int c = 0; c < NCH; c++)
		next[c] = t0 + c * 7;
	for (size_t i = 0; i < n; i++) {
		int c = 0;
		for (int j = 1; j < NCH; j++)
			if (next[j] < next[c])
				c = j;
		s[i].ts = next[c];
		s[i].ch = c;
		s[i].v = sin((double)next[c] * 1e-3 * (c + 1)) * (c + 1) + urand() * 0.1;
		s[i].good = urand() >= 0.01;
		int64_t step = 80 + (int64_t)(urand() * 40);
		if (urand() < 0.0005)
			step += 1500;
		next[c] += step;
	}
	return s;
}

static int write_file(const char *path, const struct sample *s, size_t n)
{
	FILE *f = fopen(path, "wb");
	int rc = 0;

	if (!f)
		return -errno;
	int64_t hdr[6] = { (int64_t)n, NCH, INTERVAL, WLEN, HOP, HOLD };
	if (fwrite(hdr, sizeof(hdr), 1, f) != 1)
		rc = -EIO;
	for (size_t i = 0; rc == 0 && i < n; i++)
		if (fwrite(&s[i].ts, 8, 1, f) != 1)
			rc = -EIO;
	for (size_t i = 0; rc == 0 && i < n; i++)
		if (fwrite(&s[i].ch, 4, 1, f) != 1)
			rc = -EIO;
	for (size_t i = 0; rc == 0 && i < n; i++)
		if (fwrite(&s[i].v, 8, 1, f) != 1)
			rc = -EIO;
	for (size_t i = 0; rc == 0 && i < n; i++)
		if (fwrite(&s[i].good, 1, 1, f) != 1)
			rc = -EIO;
	if (fclose(f) != 0 && rc == 0)
		rc = -EIO;
	return rc;
}

int main(int argc, char **argv)
{
	size_t n = 2000000;
	const char *peer = NULL;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--samples") == 0 && i + 1 < argc)
			n = strtoull(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--peer") == 0 && i + 1 < argc)
			peer = argv[++i];
		else {
			fprintf(stderr, "usage: %s [--samples N] [--peer window_peer.py]\n", argv[0]);
			return 2;
		}
	}
	if (n < 1000)
		n = 1000;
	struct sample *s = make_samples(n);
	if (!s) {
		fprintf(stderr, "window_bench: out of memory\n");
		return 1;
	}

	/* As the daemon has them: every channel may learn a longer hold. */
	int64_t hold_max[NCH];
	for (int c = 0; c < NCH; c++)
		hold_max[c] = CFG_HOLD_LEARN_MAX_MS;
	struct window_cfg cfg = {
		.C = NCH, .interval_ms = INTERVAL, .W = WLEN, .hop = HOP, .hold = HOLD,
		.channel_hold_max_ms = hold_max,
		.run_channel = -1, .run_op = WINDOW_OP_GT, .no_data_ms = 0,
	};
	double best = 0;
	struct tally t = { 0 };
	/* Median-free but noise-resistant: best of three. */
	for (int rep = 0; rep < 3; rep++) {
		struct window *w = window_new(&cfg);
		if (!w)
			return 1;
		memset(&t, 0, sizeof(t));
		int64_t t_start = pdm_mono_us();
		for (size_t i = 0; i < n; i++) {
			window_push(w, s[i].ch, s[i].ts, s[i].v, s[i].good);
			/* The trainer advances once per batch it reads. */
			if ((i & 255) == 255)
				window_advance(w, window_newest_ts(w), on_window, &t);
		}
		window_advance(w, window_newest_ts(w), on_window, &t);
		int64_t us = pdm_mono_us() - t_start;
		double rate = (double)n / ((double)us / 1e6);
		if (rate > best)
			best = rate;
		window_free(w);
	}
	printf("window_samples_per_s %.0f samples/s\n", best);
	printf("window_windows_per_s %.0f windows/s\n", best * (double)(t.ok + t.gap) / (double)n);
	printf("window_windows_ok %llu windows\n", (unsigned long long)t.ok);
	printf("window_windows_gap %llu windows\n", (unsigned long long)t.gap);
	fflush(stdout);

	int rc = 0;
	if (peer) {
		char dir[] = "/tmp/pdm-window-bench-XXXXXX", path[256], cmd[1024];
		if (!mkdtemp(dir)) {
			perror("mkdtemp");
			free(s);
			return 1;
		}
		snprintf(path, sizeof(path), "%s/samples.bin", dir);
		if (write_file(path, s, n) < 0) {
			fprintf(stderr, "window_bench: cannot write %s\n", path);
			rc = 1;
		} else {
			snprintf(cmd, sizeof(cmd), "/usr/bin/python3 '%s' '%s'", peer, path);
			FILE *p = popen(cmd, "r");
			char line[256];
			double peer_rate = 0, peer_sum = NAN;
			unsigned long long peer_ok = 0;

			while (p && fgets(line, sizeof(line), p)) {
				fputs(line, stdout);
				sscanf(line, "numpy_window_samples_per_s %lf", &peer_rate);
				sscanf(line, "numpy_window_checksum %lf", &peer_sum);
				sscanf(line, "numpy_window_windows_ok %llu", &peer_ok);
			}
			if (!p || pclose(p) != 0 || peer_rate <= 0) {
				fprintf(stderr, "window_bench: peer %s failed\n", peer);
				rc = 1;
			} else {
				bool match = peer_ok == t.ok &&
					     fabs(peer_sum - t.sum) <= 1e-6 * fabs(t.sum) + 1e-3;
				printf("window_checksum %.6f sum\n", t.sum);
				printf("window_checksum_match %d bool\n", match ? 1 : 0);
				printf("window_ratio_vs_numpy %.3f ratio\n", best / peer_rate);
				if (!match)
					rc = 1;
			}
		}
		unlink(path);
		rmdir(dir);
	}
	free(s);
	return rc;
}
