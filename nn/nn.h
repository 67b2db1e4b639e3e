/*
 * nn.h - anomaly autoencoders for multichannel windows: build, train,
 * score with per-channel explanations, save and load.
 *
 * A window is C channels x W steps, float32, channels-first (C, W), in the
 * caller's input units; N windows are (N, C, W) contiguous. The model
 * standardizes each channel with a mean/std fitted on its training windows,
 * reconstructs the window, and scores it by the mean squared reconstruction
 * error in standardized units, divided by a threshold calibrated on held-out
 * windows, so a score of 1.0 is "at the threshold".
 *
 * Threads: the library keeps no global state of its own. Different model
 * objects may be used from different threads at once (e.g. scoring one while
 * training another); one model object must not be used by two threads at
 * once. The thread count is process-wide: see nn_set_threads().
 *
 * Errors: functions return 0 or a negative errno-style code (-EINVAL,
 * -ENOMEM, -PDM_ENONFINITE, -PDM_ECORRUPT, -PDM_EVERSION, ...), see
 * pdm_strerror(). The library logs nothing on the scoring path.
 */
#ifndef NN_H
#define NN_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

enum nn_kind { NN_MLP_AE = 1, NN_CONV_AE = 2 };

/* Limits on the dimensions a model may have (also enforced by the loader). */
#define NN_MAX_CHANNELS 256
#define NN_MIN_WINDOW 8
#define NN_MAX_WINDOW 4096
#define NN_MAX_INPUTS 65536 /* C * W */

/* "mlp_ae" / "conv_ae"; "unknown" for anything else. Static string. */
const char *nn_kind_name(enum nn_kind k);
/* Parses "mlp_ae" or "conv_ae". Returns 0 and sets *k, or -EINVAL. */
int nn_kind_parse(const char *s, enum nn_kind *k);

/*
 * 0 if a model of this kind can be built for C channels and W steps;
 * otherwise -EINVAL and a one-line message naming the valid choices in err
 * (err may be NULL when errlen is 0).
 */
int nn_check_dims(enum nn_kind kind, int C, int W, char *err, size_t errlen);

enum nn_optimizer { NN_ADAM = 1, NN_SGD = 2 };

struct nn_train_opts {
	int epochs;               /* passes over the training windows (default 30) */
	int batch;                /* windows per step (default 64) */
	float lr;                 /* learning rate (default 1e-3) */
	uint64_t seed;            /* shuffling; same seed + same threads = same model (default 1) */
	float val_frac;           /* newest fraction held out for validation, (0, 0.5] (default 0.2) */
	int patience;             /* stop after this many epochs without a better validation
				     loss and restore the best weights; 0 = never (default 5) */
	double max_seconds;       /* wall-time cap on training, 0 = none (default 0) */
	float threshold_quantile; /* quantile of validation errors, (0, 1] (default 0.99) */
	float threshold_margin;   /* threshold = quantile * margin, >= 1 (default 1.5) */
	int optimizer;            /* NN_ADAM (default) | NN_SGD */
	float momentum;           /* SGD momentum, [0, 1) (default 0.9) */
	float adam_beta1;         /* default 0.9 */
	float adam_beta2;         /* default 0.999 */
	float adam_eps;           /* default 1e-8 */
	float min_delta;          /* relative improvement of the validation loss that counts
				     as better for early stopping (default 1e-4) */
	const atomic_int *cancel; /* when set and non-zero, training stops at its next step
				     and nn_train returns -ECANCELED (default NULL) */
};

/* Fills *o with the documented defaults above. */
void nn_train_opts_default(struct nn_train_opts *o);

struct nn_train_report {
	int epochs_run;          /* epochs started (the last may be cut by max_seconds) */
	int best_epoch;          /* 1-based epoch whose weights the model now holds */
	double best_val_loss;    /* validation MSE (standardized units) of those weights */
	double seconds;          /* wall time of the whole call */
	double train_seconds;    /* wall time spent in optimizer steps only */
	size_t n_train, n_val;   /* windows used for training / validation */
	int stopped_early;       /* 1 if patience ran out */
	int time_capped;         /* 1 if max_seconds cut training short */
	/* Per epoch (epochs_run entries): mean training loss and validation loss.
	 * Allocated by nn_train; release with nn_train_report_free(). */
	float *loss_history;
	float *val_history;
};

/* Frees the histories inside *r (not r itself) and NULLs them. NULL-safe. */
void nn_train_report_free(struct nn_train_report *r);

struct nn_model;

/*
 * Builds an untrained model with weights drawn from `seed`. Returns NULL on
 * dimensions nn_check_dims() refuses, or out of memory. Free with
 * nn_model_free(). An untrained model has threshold 1 and identity
 * standardization.
 */
struct nn_model *nn_model_new(enum nn_kind kind, int C, int W, uint64_t seed);
void nn_model_free(struct nn_model *m);

/*
 * Trains m on N windows x (N, C, W). The newest val_frac of the windows (the
 * tail of x: windows are assumed in time order) is held out: the rest fits
 * the standardization and the weights, the held-out part drives early
 * stopping and calibrates the threshold. Training buffers are allocated here
 * and freed before returning; the model keeps only its weights.
 * report may be NULL; otherwise it is filled (also on failure after
 * training started) and its histories must be freed with
 * nn_train_report_free().
 * Returns 0; -EINVAL on bad options or too few windows; -PDM_ENONFINITE if
 * x holds NaN/Inf (checked before anything changes) or training diverged
 * (the model is then left as it was); -ECANCELED when o->cancel was set
 * (the model is left as it was too); -ENOMEM.
 */
int nn_train(struct nn_model *m, const float *x, size_t N, const struct nn_train_opts *o,
	     struct nn_train_report *report);

/*
 * Scores N windows. score[N]: normalized reconstruction error (1.0 = the
 * threshold). shares (N, C) or NULL: each channel's share of the window's
 * error, each row sums to 1. chan_err (N, C) or NULL: each channel's mean
 * squared error in standardized units. Returns 0, -EINVAL, or
 * -PDM_ENONFINITE if an input is NaN/Inf (nothing written for that call) or
 * a window's error overflows. Does not allocate after the model's scratch has
 * grown to the batch size used (at most a few hundred kB); an MLP-AE's first
 * one-window call also allocates a packed copy of its parameters (as large
 * as the parameters), which makes single windows fast. One-window scores
 * equal batched ones to float rounding (relative ~1e-7), not bit for bit.
 */
int nn_score(struct nn_model *m, const float *x, size_t N, float *score, float *shares,
	     float *chan_err);

/*
 * nn_score, plus each channel's mean over the window of the input (x_mean)
 * and of its reconstruction (y_mean), in input units, (N, C) each or NULL:
 * what an alert shows as a sensor's value and the value the model expected
 * of it (for an autoencoder trained on normal data, the reconstruction is
 * the nearest normal pattern). Costs next to nothing over nn_score.
 */
int nn_score_means(struct nn_model *m, const float *x, size_t N, float *score, float *shares,
		   float *x_mean, float *y_mean);

/* Reconstruction of N windows in input units, y (N, C, W). Same errors as nn_score. */
int nn_reconstruct(struct nn_model *m, const float *x, size_t N, float *y);

/*
 * Mean squared reconstruction error over N windows, each channel's error
 * divided by scale[c] (scale (C) in input units, > 0), or by the model's own
 * fitted std when scale is NULL. With one scale for two models, their *mse
 * compare fairly on the same windows.
 */
int nn_eval_mse(struct nn_model *m, const float *x, size_t N, const float *scale, double *mse);

/* Sets the threshold to the `quantile` of the raw errors of the N windows
 * times `margin` (quantile in (0,1], margin >= 1). */
int nn_calibrate(struct nn_model *m, const float *x, size_t N, float quantile, float margin);

struct nn_model_info {
	enum nn_kind kind;
	int C, W;
	size_t n_params;
	float threshold;          /* raw MSE (standardized units) that scores 1.0 */
	double val_loss;          /* validation MSE at the end of training */
	uint64_t train_windows;   /* windows the weights were fitted on */
	uint32_t version;         /* caller's model version (nn_model_set_meta) */
	int64_t trained_at_ms;    /* caller's timestamp (nn_model_set_meta) */
	size_t bytes;             /* memory the model holds now (params, stats, scratch) */
};
void nn_model_info(const struct nn_model *m, struct nn_model_info *info);

/* Stores the caller's version and timestamp in the model (and its file). */
void nn_model_set_meta(struct nn_model *m, uint32_t version, int64_t trained_at_ms);

/* Per-channel standardization: copies mean and std (C floats each; either may be NULL). */
void nn_model_norm(const struct nn_model *m, float *mean, float *std);

/* Releases the scoring scratch and the packed one-window weights (they come
 * back on the next call that needs them). */
void nn_model_trim(struct nn_model *m);

/*
 * Writes the model atomically: path.tmp.XXXXXX in the same directory,
 * fsync, rename over path, fsync of the directory. Either the old file or the
 * complete new one is at path afterwards. Returns 0 or -errno.
 */
int nn_model_save(const struct nn_model *m, const char *path);

/*
 * Loads a model file. On success returns 0 and *out (free with
 * nn_model_free). On failure *out is NULL, err holds a one-line reason
 * (truncated, bad magic, CRC mismatch, unsupported version, absurd
 * dimensions...) and the return is -errno, -PDM_ECORRUPT or -PDM_EVERSION.
 * Sizes are validated before anything is allocated.
 */
int nn_model_load(const char *path, struct nn_model **out, char *err, size_t errlen);

/*
 * Sets how many threads nn_train uses (process-wide; clamped to 1..16). Each
 * step's batch is split across them, so OpenBLAS is set to one thread per
 * caller and its own pool stopped (nn_blas_stop_pool()): one pool of
 * threads, not two fighting over the cores. Scoring always runs on the
 * caller's thread. Call it before starting threads that use models. Without
 * a call, training uses one thread and OpenBLAS keeps its own default.
 */
void nn_set_threads(int n);

/*
 * Stops the thread pool OpenBLAS starts when it is loaded (BLAS then runs
 * in the calling thread; our workers are the parallelism). Those threads
 * start before main() and keep every signal unblocked, so a daemon that
 * reads SIGTERM/SIGHUP from a signalfd must stop them after blocking the
 * signals, or one of them takes the signal and the process dies.
 */
void nn_blas_stop_pool(void);
/* The training thread count set by nn_set_threads (1 by default). */
int nn_get_threads(void);

#endif
