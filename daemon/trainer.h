/*
 * trainer.h - building models from windows, on a background thread.
 *
 * trainer_fit() is the decision shared by the service and `pdmd replay`:
 * train a new model on the windows given (in time order), then promote it
 * only if it is valid and not worse than the current model on the newest
 * windows, which are held out of training for that comparison.
 *
 * The trainer thread runs jobs from a small queue at a lower CPU priority:
 * it reads the asset's history from its own read-only store handle, cuts
 * windows with the same window code as scoring, fits, saves the model file
 * atomically, and hands a result back to the main loop through an eventfd.
 */
#ifndef PDM_TRAINER_H
#define PDM_TRAINER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nn.h"
#include "window.h"

struct train_params {
	enum nn_kind kind;
	int C, W;
	struct nn_train_opts opts;
	double promote_margin;  /* new may be this much worse (0.05 = 5%) and still win */
	size_t max_windows;     /* windows used at most (evenly thinned, time order kept) */
	size_t min_windows;     /* fewer usable windows cut than this: not enough data */
};

enum train_status {
	TRAIN_PROMOTED,
	TRAIN_REFUSED,    /* valid, but worse than the current model */
	TRAIN_NOT_ENOUGH, /* too few usable windows */
	TRAIN_FAILED,
};

struct train_outcome {
	enum train_status status;
	size_t windows;        /* usable windows found (before thinning) */
	double new_mse, old_mse; /* on the held-out newest windows (old: NaN if none) */
	double seconds;
	char reason[256];
};

const char *trainer_status_name(enum train_status s);

struct cfg_asset;
/* The training settings of an asset's configuration (C sensors). */
void trainer_params_from_cfg(const struct cfg_asset *ac, int C, struct train_params *p);

/*
 * A growing, bounded collection of windows in time order. When full it
 * drops every other window and keeps only every second new one after
 * that, so memory stays bounded and coverage stays even.
 */
struct window_set;
struct window_set *window_set_new(size_t window_floats, size_t max_windows);
void window_set_free(struct window_set *s);
int window_set_add(struct window_set *s, const float *x);
size_t window_set_count(const struct window_set *s);
/* Windows offered so far, including those thinned away. */
size_t window_set_seen(const struct window_set *s);
const float *window_set_data(const struct window_set *s);
void window_set_clear(struct window_set *s);

/* Fits a new model on x (N windows of C*W floats, time order); `seen` is
 * how many usable windows the data had before thinning (checked against
 * min_windows). current may be NULL. On TRAIN_PROMOTED *out receives the
 * new model (caller owns it). */
int trainer_fit(const struct train_params *p, const float *x, size_t N, size_t seen,
		struct nn_model *current,
		struct nn_model **out, struct train_outcome *o);

/* One background job: train an asset from the store's history. */
struct train_episode {
	int64_t start_ms, end_ms; /* end INT64_MAX while open */
};

struct train_job {
	size_t asset_index;
	char *asset;
	char *store_path;
	char *state_dir;
	uint32_t *sensor_ids; /* C store sensor ids, channel order */
	int64_t *still_cap_ms; /* C: still runs longer are not measured (0: none), or NULL */
	int64_t *hold_ms;      /* C: holds learned so far (window_set_hold_ms), or NULL */
	struct window_cfg window;
	struct train_params params;
	int64_t t0_ms, t1_ms;
	struct train_episode *episodes;
	size_t n_episodes;
	uint32_t current_version; /* 0 = none */
	uint32_t new_version;
	int keep_models;
};
void train_job_free(struct train_job *j);

struct train_result {
	size_t asset_index;
	struct train_outcome outcome;
	uint32_t version;        /* the saved version when promoted */
	/* Per channel, over the history read: the longest time its value stood
	 * exactly still, and the time its good samples spanned (how long a
	 * live sensor of this machine may repeat itself: window.h). */
	int n_still;
	int64_t still_ms[WINDOW_MAX_C];
	int64_t still_span_ms[WINDOW_MAX_C];
};

struct trainer;
struct trainer *trainer_new(void);
/* Stops the thread. A running job ends at its next training step or history
 * read (its model is dropped), so a reload or a stop never waits for a fit. */
void trainer_free(struct trainer *t);
/* Takes ownership of job. -EBUSY when a job for the same asset is queued or running. */
int trainer_submit(struct trainer *t, struct train_job *job);
bool trainer_busy(struct trainer *t, size_t asset_index);
/* Readable when results wait. */
int trainer_fd(const struct trainer *t);
/* Next result or NULL; caller frees with free(). */
struct train_result *trainer_poll(struct trainer *t);
/* True while the thread is alive and not stuck (for the watchdog). */
bool trainer_alive(struct trainer *t);

#endif
