/*
 * trainer.c - model fitting and the background training thread.
 *
 * Training is the only heavy work in the daemon. It runs on one thread at
 * nice +10 with OpenBLAS limited to the thread count set at start, so that
 * ingestion and scoring on the main loop never wait for it; results come
 * back through a queue and an eventfd.
 */
#include "trainer.h"

#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cfg.h"
#include "log.h"
#include "models.h"
#include "pdm_error.h"
#include "pdm_time.h"
#include "store.h"

/* ---- window_set ---------------------------------------------------- */

struct window_set {
	float *data;
	size_t wf, cap, n, seen;
	size_t stride, skip; /* keep one window in `stride` after thinning */
};

struct window_set *window_set_new(size_t window_floats, size_t max_windows)
{
	struct window_set *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->wf = window_floats;
	s->cap = max_windows < 2 ? 2 : max_windows;
	s->stride = 1;
	s->data = malloc(s->cap * s->wf * sizeof(float));
	if (!s->data) {
		free(s);
		return NULL;
	}
	return s;
}

void window_set_free(struct window_set *s)
{
	if (!s)
		return;
	free(s->data);
	free(s);
}

int window_set_add(struct window_set *s, const float *x)
{
	s->seen++;
	if (s->skip > 0) {
		s->skip--;
		return 0;
	}
	if (s->n == s->cap) {
		/* Thin to every other window; take new ones at the same spacing. */
		size_t keep = 0;
		for (size_t i = 0; i < s->n; i += 2, keep++)
			memmove(s->data + keep * s->wf, s->data + i * s->wf, s->wf * sizeof(float));
		s->n = keep;
		s->stride *= 2;
	}
	memcpy(s->data + s->n * s->wf, x, s->wf * sizeof(float));
	s->n++;
	s->skip = s->stride - 1;
	return 0;
}

size_t window_set_count(const struct window_set *s)
{
	return s->n;
}

size_t window_set_seen(const struct window_set *s)
{
	return s->seen;
}

const float *window_set_data(const struct window_set *s)
{
	return s->data;
}

void window_set_clear(struct window_set *s)
{
	s->n = 0;
	s->seen = 0;
	s->stride = 1;
	s->skip = 0;
}

/* ---- fitting ----------------------------------------------------------- */

static const char *const status_names[] = {
	[TRAIN_PROMOTED] = "promoted",
	[TRAIN_REFUSED] = "refused",
	[TRAIN_NOT_ENOUGH] = "not_enough_data",
	[TRAIN_FAILED] = "failed",
};

const char *trainer_status_name(enum train_status s)
{
	return (unsigned)s <= TRAIN_FAILED ? status_names[s] : "?";
}

/* Per-channel standard deviation over windows, so that two models with
 * different normalizations are compared in the same units. */
static void channel_scale(const float *x, size_t N, int C, int W, float *scale)
{
	for (int c = 0; c < C; c++) {
		double s = 0, ss = 0;
		size_t n = 0;
		for (size_t i = 0; i < N; i++) {
			const float *row = x + (i * (size_t)C + (size_t)c) * (size_t)W;
			for (int t = 0; t < W; t++) {
				s += row[t];
				ss += (double)row[t] * row[t];
				n++;
			}
		}
		double mean = n ? s / (double)n : 0, var = n ? ss / (double)n - mean * mean : 0;
		double sd = var > 0 ? sqrt(var) : 0;
		scale[c] = sd > 1e-6 ? (float)sd : 1.0f;
	}
}

void trainer_params_from_cfg(const struct cfg_asset *ac, int C, struct train_params *p)
{
	memset(p, 0, sizeof(*p));
	p->kind = (enum nn_kind)ac->model;
	p->C = C;
	p->W = ac->window;
	nn_train_opts_default(&p->opts);
	p->opts.epochs = ac->epochs;
	p->opts.batch = ac->batch;
	p->opts.lr = (float)ac->learning_rate;
	p->opts.seed = ac->seed;
	p->opts.val_frac = (float)ac->validation;
	p->opts.patience = ac->patience;
	p->opts.max_seconds = (double)ac->train_timeout_ms / 1000.0;
	p->opts.threshold_quantile = (float)ac->threshold_quantile;
	p->opts.threshold_margin = (float)ac->threshold_margin;
	p->promote_margin = ac->promote_margin;
	p->max_windows = (size_t)ac->train_max_windows;
	p->min_windows = (size_t)ac->train_after;
}

int trainer_fit(const struct train_params *p, const float *x, size_t N, size_t seen,
		struct nn_model *current, struct nn_model **out, struct train_outcome *o)
{
	size_t wf = (size_t)p->C * (size_t)p->W;
	double t_start = (double)pdm_mono_us() / 1e6;
	struct nn_model *m = NULL;
	float *scale = NULL;
	int rc = 0;

	memset(o, 0, sizeof(*o));
	o->old_mse = NAN;
	o->new_mse = NAN;
	*out = NULL;
	o->windows = seen;
	if (seen < p->min_windows || N < 10) {
		o->status = TRAIN_NOT_ENOUGH;
		snprintf(o->reason, sizeof(o->reason), "%zu usable windows, %zu needed", seen,
			 p->min_windows < 10 ? (size_t)10 : p->min_windows);
		return 0;
	}
	/* The newest tenth never trains: it judges the new model against the old. */
	size_t n_hold = N / 10, n_train = N - n_hold;
	const float *hold = x + n_train * wf;

	m = nn_model_new(p->kind, p->C, p->W, p->opts.seed);
	scale = malloc((size_t)p->C * sizeof(float));
	if (!m || !scale) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = nn_train(m, x, n_train, &p->opts, NULL);
	if (rc < 0)
		goto fail;
	channel_scale(x, n_train, p->C, p->W, scale);
	rc = nn_eval_mse(m, hold, n_hold, scale, &o->new_mse);
	if (rc < 0)
		goto fail;
	struct nn_model_info info;
	nn_model_info(m, &info);
	if (!isfinite(o->new_mse) || !(info.threshold > 0) || !isfinite(info.threshold)) {
		rc = -PDM_ENONFINITE;
		goto fail;
	}
	if (current && nn_eval_mse(current, hold, n_hold, scale, &o->old_mse) == 0 &&
	    isfinite(o->old_mse) && o->new_mse > o->old_mse * (1.0 + p->promote_margin)) {
		o->status = TRAIN_REFUSED;
		snprintf(o->reason, sizeof(o->reason),
			 "new model error %.4g is worse than the current %.4g by more than %.0f%%",
			 o->new_mse, o->old_mse, p->promote_margin * 100);
		nn_model_free(m);
		m = NULL;
	} else {
		o->status = TRAIN_PROMOTED;
		snprintf(o->reason, sizeof(o->reason), "trained on %zu windows, held-out error %.4g",
			 n_train, o->new_mse);
		*out = m;
		m = NULL;
	}
	free(scale);
	o->seconds = (double)pdm_mono_us() / 1e6 - t_start;
	return 0;
fail:
	o->status = TRAIN_FAILED;
	snprintf(o->reason, sizeof(o->reason), "training failed: %s", pdm_strerror(rc));
	nn_model_free(m);
	free(scale);
	o->seconds = (double)pdm_mono_us() / 1e6 - t_start;
	return rc;
}

/* ---- the thread -------------------------------------------------------- */

#define TRAINER_QUEUE 64

struct trainer {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct train_job *jobs[TRAINER_QUEUE];
	size_t n_jobs;
	struct train_result *results[TRAINER_QUEUE];
	size_t n_results;
	bool running_job;
	size_t running_asset;
	bool stop;
	atomic_int cancel; /* set by trainer_free: a running job ends at its next step */
	bool started;
	int efd;
	int64_t heartbeat_ms;
};

void train_job_free(struct train_job *j)
{
	if (!j)
		return;
	free(j->asset);
	free(j->store_path);
	free(j->state_dir);
	free(j->sensor_ids);
	free(j->still_cap_ms);
	free(j->hold_ms);
	free(j->episodes);
	free(j);
}

struct cut_ctx {
	const struct train_job *job;
	const atomic_int *cancel;
	struct window_set *set;
	struct window *win;
	int64_t last_advance;
	uint32_t *ids;
	int C;
	size_t rows;
};

static bool in_episode(const struct train_job *j, int64_t start, int64_t end)
{
	for (size_t i = 0; i < j->n_episodes; i++)
		if (start <= j->episodes[i].end_ms && end >= j->episodes[i].start_ms)
			return true;
	return false;
}

static int cut_emit(const float *x, int64_t ts_ms, enum window_status st, void *user)
{
	struct cut_ctx *c = user;
	int64_t span = (int64_t)c->job->window.W * c->job->window.interval_ms;

	if (st == WINDOW_OK && !in_episode(c->job, ts_ms - span, ts_ms))
		window_set_add(c->set, x);
	return 0;
}

static int cut_row(uint32_t sensor, int64_t ts_ms, double value, uint8_t quality, void *user)
{
	struct cut_ctx *c = user;
	int ch = -1;

	for (int i = 0; i < c->C; i++)
		if (c->ids[i] == sensor) {
			ch = i;
			break;
		}
	if (ch < 0)
		return 0;
	/* Reading a week of history takes seconds; a stop must not wait for it. */
	if ((c->rows & 0xfff) == 0 && atomic_load_explicit(c->cancel, memory_order_relaxed))
		return -ECANCELED;
	/* Rows come in time order: everything before ts_ms has been seen. */
	if (ts_ms - 1 > c->last_advance + c->job->window.interval_ms) {
		window_advance(c->win, ts_ms - 1, cut_emit, c);
		c->last_advance = ts_ms - 1;
	}
	window_push(c->win, ch, ts_ms, value, quality == PDM_Q_GOOD);
	c->rows++;
	return 0;
}

static void run_job(struct train_job *j, struct train_result *r, const atomic_int *cancel)
{
	char err[256] = "";
	struct cut_ctx c = { .job = j, .cancel = cancel, .ids = j->sensor_ids, .C = j->window.C };
	struct store *st = NULL;
	struct nn_model *current = NULL, *fresh = NULL;
	int rc;

	r->asset_index = j->asset_index;
	r->outcome.status = TRAIN_FAILED;
	st = store_open_reader(j->store_path, err, sizeof(err));
	c.win = window_new(&j->window);
	c.set = window_set_new((size_t)j->window.C * (size_t)j->window.W, j->params.max_windows);
	if (!st || !c.win || !c.set) {
		snprintf(r->outcome.reason, sizeof(r->outcome.reason), "cannot start: %s",
			 err[0] ? err : "out of memory");
		goto done;
	}
	for (int ch = 0; j->still_cap_ms && ch < j->window.C; ch++)
		window_set_still_cap(c.win, ch, j->still_cap_ms[ch]);
	for (int ch = 0; j->hold_ms && ch < j->window.C; ch++)
		(void)window_set_hold_ms(c.win, ch, j->hold_ms[ch]);
	c.last_advance = j->t0_ms;
	rc = store_read_range(st, j->sensor_ids, (size_t)j->window.C, j->t0_ms, j->t1_ms, cut_row,
			      &c);
	if (rc < 0) {
		snprintf(r->outcome.reason, sizeof(r->outcome.reason), "reading history: %s",
			 pdm_strerror(rc));
		goto done;
	}
	window_advance(c.win, j->t1_ms, cut_emit, &c);
	r->n_still = j->window.C;
	for (int ch = 0; ch < j->window.C; ch++)
		r->still_ms[ch] = window_longest_still_ms(c.win, ch, &r->still_span_ms[ch]);
	LOG_I("trainer[%s]: %zu samples -> %zu usable windows", j->asset, c.rows,
	      window_set_count(c.set));
	if (j->current_version > 0) {
		char path[4096];
		models_path(j->state_dir, j->asset, j->current_version, path, sizeof(path));
		if (nn_model_load(path, &current, err, sizeof(err)) < 0)
			current = NULL; /* compared against nothing: the new one must just be valid */
	}
	j->params.opts.cancel = cancel;
	trainer_fit(&j->params, window_set_data(c.set), window_set_count(c.set),
		    window_set_seen(c.set), current, &fresh, &r->outcome);
	if (r->outcome.status == TRAIN_PROMOTED) {
		nn_model_set_meta(fresh, j->new_version, pdm_wall_ms());
		rc = models_save(j->state_dir, j->asset, fresh, j->new_version);
		if (rc < 0) {
			r->outcome.status = TRAIN_FAILED;
			snprintf(r->outcome.reason, sizeof(r->outcome.reason),
				 "saving model v%u: %s", j->new_version, pdm_strerror(rc));
		} else {
			r->version = j->new_version;
			models_prune(j->state_dir, j->asset, j->keep_models);
		}
	}
done:
	nn_model_free(fresh);
	nn_model_free(current);
	window_set_free(c.set);
	window_free(c.win);
	store_close(st);
}

static void *trainer_main(void *arg)
{
	struct trainer *t = arg;

	pthread_setname_np(pthread_self(), "pdmd-train");
	/* Per-thread nice on Linux: training yields to ingestion and scoring. */
	if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10) < 0)
		LOG_D("trainer: cannot lower priority: %s", strerror(errno));
	pthread_mutex_lock(&t->lock);
	for (;;) {
		t->heartbeat_ms = pdm_mono_ms();
		while (!t->stop && t->n_jobs == 0) {
			struct timespec ts;
			/* monotonic (trainer_new): a wall clock set back must not
			 * stall the heartbeat the watchdog depends on */
			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_sec += 1;
			pthread_cond_timedwait(&t->cond, &t->lock, &ts);
			t->heartbeat_ms = pdm_mono_ms();
		}
		if (t->stop)
			break;
		struct train_job *j = t->jobs[0];
		memmove(t->jobs, t->jobs + 1, (t->n_jobs - 1) * sizeof(*t->jobs));
		t->n_jobs--;
		t->running_job = true;
		t->running_asset = j->asset_index;
		pthread_mutex_unlock(&t->lock);

		struct train_result *r = calloc(1, sizeof(*r));
		if (r)
			run_job(j, r, &t->cancel);
		train_job_free(j);
		/* A job borrows tens of MB (history, windows, the model's
		 * buffers) for seconds once a retrain period. glibc keeps
		 * freed memory in the thread's arena, resident: hand it back
		 * now rather than hold it until the next job (measured in
		 * docs/reliability.md, "Endurance"). */
		malloc_trim(0);

		pthread_mutex_lock(&t->lock);
		t->running_job = false;
		if (r && t->n_results < TRAINER_QUEUE) {
			t->results[t->n_results++] = r;
			uint64_t one = 1;
			ssize_t w = write(t->efd, &one, sizeof(one));
			(void)w;
		} else {
			free(r);
		}
	}
	pthread_mutex_unlock(&t->lock);
	return NULL;
}

struct trainer *trainer_new(void)
{
	struct trainer *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	pthread_condattr_t ca;
	pthread_mutex_init(&t->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&t->cond, &ca);
	pthread_condattr_destroy(&ca);
	t->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	t->heartbeat_ms = pdm_mono_ms();
	if (t->efd < 0 || pthread_create(&t->thread, NULL, trainer_main, t) != 0) {
		trainer_free(t);
		return NULL;
	}
	t->started = true;
	return t;
}

void trainer_free(struct trainer *t)
{
	if (!t)
		return;
	if (t->started) {
		pthread_mutex_lock(&t->lock);
		t->stop = true;
		atomic_store(&t->cancel, 1);
		pthread_cond_signal(&t->cond);
		pthread_mutex_unlock(&t->lock);
		pthread_join(t->thread, NULL);
	}
	for (size_t i = 0; i < t->n_jobs; i++)
		train_job_free(t->jobs[i]);
	for (size_t i = 0; i < t->n_results; i++)
		free(t->results[i]);
	if (t->efd >= 0)
		close(t->efd);
	pthread_cond_destroy(&t->cond);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

static bool busy_locked(struct trainer *t, size_t asset)
{
	if (t->running_job && t->running_asset == asset)
		return true;
	for (size_t i = 0; i < t->n_jobs; i++)
		if (t->jobs[i]->asset_index == asset)
			return true;
	return false;
}

bool trainer_busy(struct trainer *t, size_t asset_index)
{
	pthread_mutex_lock(&t->lock);
	bool b = busy_locked(t, asset_index);
	pthread_mutex_unlock(&t->lock);
	return b;
}

int trainer_submit(struct trainer *t, struct train_job *job)
{
	int rc = 0;

	pthread_mutex_lock(&t->lock);
	if (busy_locked(t, job->asset_index) || t->n_jobs == TRAINER_QUEUE) {
		rc = -EBUSY;
	} else {
		t->jobs[t->n_jobs++] = job;
		pthread_cond_signal(&t->cond);
	}
	pthread_mutex_unlock(&t->lock);
	if (rc < 0)
		train_job_free(job);
	return rc;
}

int trainer_fd(const struct trainer *t)
{
	return t->efd;
}

struct train_result *trainer_poll(struct trainer *t)
{
	struct train_result *r = NULL;

	pthread_mutex_lock(&t->lock);
	if (t->n_results > 0) {
		r = t->results[0];
		memmove(t->results, t->results + 1, (t->n_results - 1) * sizeof(*t->results));
		t->n_results--;
	}
	if (t->n_results == 0) {
		uint64_t v;
		ssize_t n = read(t->efd, &v, sizeof(v));
		(void)n;
	}
	pthread_mutex_unlock(&t->lock);
	return r;
}

bool trainer_alive(struct trainer *t)
{
	pthread_mutex_lock(&t->lock);
	/* A fit holds no heartbeat; its own wall-time cap bounds it. */
	bool alive = t->running_job || pdm_mono_ms() - t->heartbeat_ms < 10000;
	pthread_mutex_unlock(&t->lock);
	return alive;
}
