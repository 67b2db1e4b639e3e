/*
 * pdmctl_plot.c - `pdmctl plot`: an asset's recent history as a PNG or SVG.
 *
 * One panel per sensor (stacked, shared time axis) and at the bottom the
 * anomaly score with the threshold line at 1.0; the alert episodes from
 * the outbox are shaded in every panel. Drawn with PLplot (pngcairo for
 * PNG, svg for SVG; both render without a display).
 *
 * The store is read once, streamed into a fixed number of time buckets per
 * series keeping each bucket's minimum and maximum, so a week at 10 Hz
 * costs the same memory as ten minutes and short spikes stay visible.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <plplot/plplot.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sysexits.h>

#include "pdm_error.h"
#include "pdm_parse.h"
#include "pdm_time.h"
#include "pdmctl.h"

#define BUCKETS 1200
#define MAX_PANELS 8 /* sensor panels; the score panel comes on top of these */
#define MAX_EPISODES 256

/* Colour map 0 entries we set (0 is the background). */
enum { COL_BG = 0, COL_FG = 1, COL_SCORE = 2, COL_THRESH = 3, COL_EPISODE = 4,
       COL_EPISODE_CRIT = 5, COL_GRID = 6, COL_LINE0 = 7, N_COLOURS = 13 };

struct series {
	const char *label; /* "vibration_rms [mm/s]" */
	uint32_t id;
	double lo[BUCKETS], hi[BUCKETS];
	uint32_t count[BUCKETS];
	double min, max;
	uint64_t n;
};

struct plot_data {
	struct series *s;
	size_t ns;
	int64_t t0, t1;
};

static int collect(uint32_t sensor, int64_t ts, double v, uint8_t quality, void *user)
{
	struct plot_data *p = user;
	if (quality != 0 || !isfinite(v) || ts < p->t0 || ts >= p->t1)
		return 0;
	for (size_t i = 0; i < p->ns; i++) {
		struct series *s = &p->s[i];
		if (s->id != sensor)
			continue;
		size_t b = (size_t)((double)(ts - p->t0) / (double)(p->t1 - p->t0) * BUCKETS);
		if (b >= BUCKETS)
			b = BUCKETS - 1;
		if (s->count[b] == 0 || v < s->lo[b])
			s->lo[b] = v;
		if (s->count[b] == 0 || v > s->hi[b])
			s->hi[b] = v;
		s->count[b]++;
		if (s->n == 0 || v < s->min)
			s->min = v;
		if (s->n == 0 || v > s->max)
			s->max = v;
		s->n++;
	}
	return 0;
}

static bool have_device(const char *name)
{
	const char **menu = calloc(128, sizeof(char *)), **dev = calloc(128, sizeof(char *));
	int n = 128;
	bool ok = false;
	if (menu && dev) {
		plgDevs(&menu, &dev, &n);
		for (int i = 0; i < n; i++)
			if (dev[i] && strcmp(dev[i], name) == 0)
				ok = true;
	}
	free(menu);
	free(dev);
	return ok;
}

static bool ends_with(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);
	return a >= b && strcasecmp(s + a - b, suf) == 0;
}

/* Draws the series as min/max envelopes joined bucket to bucket. Series
 * sparser than the buckets (scores come once per hop) leave single empty
 * buckets; only a longer run of them is a real gap that breaks the line.
 * With logy the values are drawn as log10 (for PLplot's log axis). */
#define GAP_BUCKETS 8
static void draw_series(const struct series *s, double t0s, double bucket_s, int colour,
			bool logy)
{
	PLFLT x[2 * BUCKETS], y[2 * BUCKETS];
	int n = 0, empty = 0;
	plcol0(colour);
	for (int b = 0; b <= BUCKETS; b++) {
		if (b < BUCKETS && s->count[b] == 0 && ++empty <= GAP_BUCKETS)
			continue;
		if (b == BUCKETS || s->count[b] == 0) {
			if (n == 1)
				plpoin(1, x, y, 1);
			else if (n > 1)
				plline(n, x, y);
			n = 0;
			continue;
		}
		if (empty > GAP_BUCKETS && n > 0) {
			plline(n, x, y);
			n = 0;
		}
		empty = 0;
		double t = t0s + (b + 0.5) * bucket_s;
		double lo = logy ? log10(fmax(s->lo[b], 1e-3)) : s->lo[b];
		double hi = logy ? log10(fmax(s->hi[b], 1e-3)) : s->hi[b];
		x[n] = t;
		y[n++] = lo;
		if (hi != lo) {
			x[n] = t;
			y[n++] = hi;
		}
	}
	if (n > 1)
		plline(n, x, y);
}

static void shade(const struct pdmctl_episode *ep, size_t nep, double t0s, double t1s, double ylo,
		  double yhi)
{
	for (size_t i = 0; i < nep; i++) {
		double a = (double)ep[i].start_ms / 1000.0;
		double b = ep[i].end_ms == INT64_MAX ? t1s : (double)ep[i].end_ms / 1000.0;
		if (a < t0s)
			a = t0s;
		if (b > t1s)
			b = t1s;
		if (b <= a)
			continue;
		PLFLT x[4] = { a, b, b, a }, y[4] = { ylo, ylo, yhi, yhi };
		plcol0(ep[i].critical ? COL_EPISODE_CRIT : COL_EPISODE);
		plfill(4, x, y);
	}
}

int pdmctl_cmd_plot(struct pdmctl *c, int argc, char **argv)
{
	const char *since_s = "1h", *until_s = "now", *out = NULL, *size_s = NULL;
	int width = 1400, ex;
	const struct pdmctl_opt opts[] = {
		{ "since", 's', &since_s, NULL },
		{ "until", 'u', &until_s, NULL },
		{ "output", 'o', &out, NULL },
		{ "size", 0, &size_s, NULL },
		{ NULL },
	};
	int rc = pdmctl_getopt(c, "plot",
		"Usage: pdmctl plot [-c DIR] ASSET [--since WHEN] [--until WHEN] -o FILE\n"
		"                   [--size WIDTH]\n"
		"Draws the asset's sensors (one panel each), its anomaly score with\n"
		"the threshold at 1.0, and its alert episodes shaded (orange: warning,\n"
		"red: critical) into FILE.png or FILE.svg. WHEN is a duration ago\n"
		"(30m, 2h, 7d), an ISO-8601 time or 'now'; default the last hour.\n",
		opts, "ASSET", argc, argv);
	if (rc != PDMCTL_GO_ON)
		return rc;
	if (size_s) {
		int64_t v;
		if (pdm_parse_i64(size_s, 400, 8000, &v) < 0)
			return pdmctl_usage_error("plot", "bad --size (400..8000 pixels)", size_s);
		width = (int)v;
	}
	if (!out)
		return pdmctl_usage_error("plot", "-o FILE.png or FILE.svg is required", NULL);
	const char *device = ends_with(out, ".png") ? "pngcairo" : ends_with(out, ".svg") ? "svg"
											   : NULL;
	if (!device)
		return pdmctl_usage_error("plot", "the output must end in .png or .svg", out);
	if (!have_device(device)) {
		fprintf(stderr, "pdmctl plot: PLplot has no '%s' device here (install %s)\n", device,
			strcmp(device, "pngcairo") == 0 ? "plplot-driver-cairo" : "libplplot17");
		return EX_UNAVAILABLE;
	}
	const char *asset = argv[optind];
	int64_t t0, t1;
	if ((ex = pdmctl_parse_range("plot", since_s, until_s, &t0, &t1)) != 0)
		return ex;
	if ((ex = pdmctl_load_cfg(c)) != 0)
		return ex;
	const struct cfg_asset *a = cfg_find_asset(c->cfg, asset);
	if (!a) {
		fprintf(stderr, "pdmctl plot: no asset '%s' in %s\n", asset, c->config_dir);
		return EX_USAGE;
	}
	struct store *st = pdmctl_open_store(c, &ex);
	if (!st)
		return ex;

	size_t nsens = a->n_sensors < MAX_PANELS ? a->n_sensors : MAX_PANELS;
	struct plot_data p = { .t0 = t0, .t1 = t1 };
	p.s = calloc(nsens + 1, sizeof(*p.s));
	char (*labels)[256] = calloc(nsens + 1, sizeof(*labels));
	uint32_t *ids = calloc(nsens + 1, sizeof(*ids));
	struct pdmctl_episode *ep = calloc(MAX_EPISODES, sizeof(*ep));
	size_t nep = 0;
	if (!p.s || !labels || !ids || !ep) {
		ex = EX_OSERR;
		goto out;
	}
	for (size_t i = 0; i < nsens; i++) {
		const struct cfg_sensor *se = &c->cfg->sensors[a->sensors[i]];
		if (store_sensor_id(st, se->name, &p.s[p.ns].id) < 0)
			continue;
		if (se->unit && se->unit[0])
			snprintf(labels[p.ns], sizeof(labels[0]), "%s [%s]", se->short_name, se->unit);
		else
			snprintf(labels[p.ns], sizeof(labels[0]), "%s", se->short_name);
		p.s[p.ns].label = labels[p.ns];
		ids[p.ns] = p.s[p.ns].id;
		p.ns++;
	}
	size_t nsensors = p.ns;
	char sname[300];
	snprintf(sname, sizeof(sname), "%s/score", asset);
	bool has_score = store_sensor_id(st, sname, &p.s[p.ns].id) == 0;
	if (has_score) {
		p.s[p.ns].label = "anomaly score";
		ids[p.ns] = p.s[p.ns].id;
		p.ns++;
	}
	int e = p.ns ? store_read_range(st, ids, p.ns, t0, t1, collect, &p) : 0;
	if (e == 0)
		e = pdmctl_episodes(c, st, asset, t0, t1, ep, MAX_EPISODES, &nep);
	if (e < 0) {
		fprintf(stderr, "pdmctl plot: cannot read the store: %s\n", pdm_strerror(e));
		ex = EX_IOERR;
		goto out;
	}
	uint64_t total = 0;
	for (size_t i = 0; i < p.ns; i++)
		total += p.s[i].n;
	if (total == 0) {
		fprintf(stderr, "pdmctl plot: no samples of %s between --since %s and --until %s\n",
			asset, since_s, until_s);
		ex = EX_NOINPUT;
		goto out;
	}

	/* Layout in pixels: each sensor panel 150 high, the score 220. */
	int npanels = (int)nsensors + (has_score ? 1 : 0);
	int top = 50, bottom = 60, gap = 12, hs = 150, hscore = 220;
	int height = top + bottom + (int)nsensors * hs + (has_score ? hscore : 0) +
		     (npanels - 1) * gap;
	double t0s = (double)t0 / 1000.0, t1s = (double)t1 / 1000.0;
	double bucket_s = (t1s - t0s) / BUCKETS;

	plsdev(device);
	plsfnam(out);
	plspage(0, 0, width, height, 0, 0);
	plscmap0n(16);
	plscol0(COL_BG, 255, 255, 255);
	plscol0(COL_FG, 0, 0, 0);
	plscol0(COL_SCORE, 20, 20, 20);
	plscol0(COL_THRESH, 200, 0, 0);
	plscol0a(COL_EPISODE, 255, 165, 0, 0.25);
	plscol0a(COL_EPISODE_CRIT, 220, 30, 30, 0.25);
	plscol0(COL_GRID, 200, 200, 200);
	static const int palette[][3] = { { 31, 119, 180 }, { 44, 160, 44 }, { 148, 103, 189 },
					  { 140, 86, 75 },  { 23, 190, 207 }, { 188, 189, 34 } };
	for (int i = 0; i < N_COLOURS - COL_LINE0; i++)
		plscol0(COL_LINE0 + i, palette[i][0], palette[i][1], palette[i][2]);
	plinit();
	pladv(0);
	plschr(0, 0.75);
	/* Time labels: seconds since the epoch, UTC, as PLplot's default. */
	pltimefmt(t1s - t0s > 2 * 86400 ? "%m-%d %H:%M" : t1s - t0s > 600 ? "%H:%M" : "%H:%M:%S");

	double ypos = 1.0 - (double)top / height;
	for (int k = 0; k < npanels; k++) {
		bool is_score = has_score && k == npanels - 1;
		struct series *s = &p.s[k];
		int h = is_score ? hscore : hs;
		double y1 = ypos, y0 = ypos - (double)h / height;
		ypos = y0 - (double)gap / height;
		double lo = s->min, hi = s->max;
		/* Scores span decades in a fault (0.3 normal, 80 in a bearing
		 * failure): beyond 10 the score axis is logarithmic, so the
		 * threshold and the normal band stay visible. */
		bool logy = is_score && s->n && s->max > 10;
		if (is_score && logy) {
			lo = log10(fmax(1e-3, fmin(0.1, s->min * 0.8)));
			hi = log10(s->max * 1.3);
		} else if (is_score) {
			lo = 0;
			hi = fmax(1.5, s->n ? s->max * 1.1 : 1.5);
		} else if (s->n == 0) {
			lo = 0;
			hi = 1;
		} else if (hi - lo < 1e-9 * fmax(1.0, fabs(hi))) {
			lo -= 1;
			hi += 1;
		} else {
			double pad = (hi - lo) * 0.08;
			lo -= pad;
			hi += pad;
		}
		plvpor(0.09, 0.97, y0, y1);
		plwind(t0s, t1s, lo, hi);
		shade(ep, nep, t0s, t1s, lo, hi);
		plcol0(COL_GRID);
		plbox("g", 0, 0, "g", 0, 0);
		plcol0(COL_FG);
		bool last = k == npanels - 1;
		plbox(last ? "bcnstd" : "bcstd", 0, 0, logy ? "bcnstvl" : "bcnstv", 0, 0);
		/* Sensor names are longer than a short panel is high: they go
		 * inside the panel's top left corner; the score is labelled on
		 * the axis. */
		if (is_score)
			plmtex("l", 5.0, 0.5, 0.5, s->label);
		else
			plmtex("t", -1.5, 0.01, 0.0, s->label);
		if (is_score) {
			double one = logy ? 0.0 : 1.0;
			PLFLT tx[2] = { t0s, t1s }, ty[2] = { one, one };
			plcol0(COL_THRESH);
			pllsty(2);
			plline(2, tx, ty);
			pllsty(1);
			plwidth(1.5);
			draw_series(s, t0s, bucket_s, COL_SCORE, logy);
			plwidth(1.0);

			PLINT opt[4] = { PL_LEGEND_LINE, PL_LEGEND_LINE, PL_LEGEND_COLOR_BOX,
					 PL_LEGEND_COLOR_BOX };
			PLINT tcol[4] = { COL_FG, COL_FG, COL_FG, COL_FG };
			const char *text[4] = { "anomaly score", "threshold (1.0)", "warning",
						"critical" };
			PLINT bcol[4] = { 0, 0, COL_EPISODE, COL_EPISODE_CRIT };
			PLINT bpat[4] = { 0, 0, 0, 0 };
			PLFLT bscale[4] = { 0, 0, 1.0, 1.0 }, bw[4] = { 0, 0, 1.0, 1.0 };
			PLINT lcol[4] = { COL_SCORE, COL_THRESH, 0, 0 }, lsty[4] = { 1, 2, 1, 1 };
			PLFLT lw[4] = { 1.5, 1.0, 1.0, 1.0 };
			PLFLT lgw, lgh;
			pllegend(&lgw, &lgh, PL_LEGEND_BACKGROUND | PL_LEGEND_BOUNDING_BOX,
				 PL_POSITION_TOP | PL_POSITION_LEFT | PL_POSITION_INSIDE, 0.01, 0.03,
				 0.04, COL_BG, COL_FG, 1, 1, 4, 4, opt, 1.0, 0.7, 2.0, 0.0, tcol, text,
				 bcol, bpat, bscale, bw, lcol, lsty, lw, NULL, NULL, NULL, NULL);
		} else {
			draw_series(s, t0s, bucket_s, COL_LINE0 + k % (N_COLOURS - COL_LINE0), false);
		}
		if (k == 0) {
			char title[512], a0[PDM_ISO8601_LEN], a1[PDM_ISO8601_LEN];
			pdm_iso8601(t0, a0, sizeof(a0));
			pdm_iso8601(t1 - 1, a1, sizeof(a1));
			a0[10] = a1[10] = ' ';
			/* Same day: the date once. */
			bool same = strncmp(a0, a1, 10) == 0;
			snprintf(title, sizeof(title), "%s  %.19s - %.*s UTC  (%zu alert episode%s)",
				 asset, a0, same ? 8 : 19, same ? a1 + 11 : a1, nep,
				 nep == 1 ? "" : "s");
			plcol0(COL_FG);
			plschr(0, 0.9);
			plmtex("t", 1.5, 0.0, 0.0, title);
			plschr(0, 0.75);
		}
	}
	plend();

	struct stat sb;
	if (stat(out, &sb) < 0 || sb.st_size == 0) {
		fprintf(stderr, "pdmctl plot: PLplot did not write %s\n", out);
		ex = EX_CANTCREAT;
		goto out;
	}
	fprintf(stderr, "pdmctl plot: wrote %s (%zu sensor panels%s, %zu alert episodes)\n", out,
		nsensors, has_score ? " + score" : "", nep);
	ex = 0;
out:
	store_close(st);
	free(p.s);
	free(labels);
	free(ids);
	free(ep);
	return ex;
}
