/*
 * nn_internal.h - the model's layout, shared by nn.c (math) and nn_file.c
 * (persistence). Not installed, not for the daemon.
 */
#ifndef NN_INTERNAL_H
#define NN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "nn.h"
#include "nn_layers.h"

#define NN_MAX_LAYERS 8
/* A model that reconstructs its validation windows perfectly still needs a
 * positive threshold to normalize by; the loader refuses anything smaller. */
#define NN_THRESHOLD_FLOOR 1e-6f

enum nn_layer_type { NN_L_DENSE = 1, NN_L_CONV = 2, NN_L_CONVT = 3 };

struct nn_layer {
	int type;              /* enum nn_layer_type */
	int relu;              /* 1 if a ReLU follows */
	struct nn_conv_geom g; /* dense: cin = in, cout = out, k = stride = lin = lout = 1 */
	size_t w_off, b_off;   /* offsets of weight and bias in the parameter buffer */
	size_t in_size, out_size; /* floats per window */
};

struct nn_model {
	enum nn_kind kind;
	int C, W;
	int n_layers;
	struct nn_layer layers[NN_MAX_LAYERS];
	size_t n_params;
	float *params;     /* n_params */
	float *mean, *std; /* C each; one allocation starting at mean */
	float threshold, thr_quantile, thr_margin;
	double val_loss;
	uint64_t train_windows;
	uint32_t version;
	int64_t trained_at_ms;
	/* Scoring scratch, grown on demand up to `chunk` windows. */
	float *scratch;
	size_t scratch_windows;
	size_t chunk;
	size_t act_max, col_max; /* floats per window */
	/* Scoring runs a stride-1 conv layer in its scatter form (a transposed
	 * conv with the kernel flipped): a (L, cin) x (cin, k*cout) GEMM instead
	 * of im2col's (L, k*cin) x (k*cin, cout), which is much narrower. Its
	 * weights are rebuilt from params whenever params_gen moves. */
	int flip_layer;              /* index, or -1 */
	struct nn_conv_geom flip_g;
	float *flip_w;               /* (cin, k, cout) */
	uint64_t params_gen, flip_gen;
	/* One-window scoring (the daemon's call) runs dense layers from a copy
	 * of the weights, each dense weight matrix in nn_dense_pack()'s layout
	 * at the same offset as in params (biases are read from params).
	 * Allocated on the first one-window chunk, rebuilt whenever params_gen
	 * moves, freed by nn_model_trim(). */
	float *one_w;                /* n_params, or NULL */
	/* Or, when every dense weight is a binary16 value (nn_train rounds an
	 * MLP-AE's to them) and the CPU converts halves in hardware, the packed
	 * weights as halves: half the bytes to stream per window. At most one
	 * of one_w and one_h is set. */
	unsigned short *one_h;       /* n_params, or NULL */
	uint64_t one_gen;
};

/*
 * Fills the layer table for (kind, C, W) without allocating anything.
 * Returns 0 or -EINVAL (dimensions refused; see nn_check_dims).
 */
int nn_layout(enum nn_kind kind, int C, int W, struct nn_layer *layers, int *n_layers,
	      size_t *n_params, size_t *act_max, size_t *col_max);

/* Allocates a model with this layout, parameters zeroed, identity standardization. */
struct nn_model *nn_model_alloc(enum nn_kind kind, int C, int W);

/*
 * For tests: loss of B windows x (B, C, W) (input units, standardized with
 * the model's statistics) and its gradient into grads (n_params, overwritten).
 * Allocates a trainer for the call. Returns the loss, or NAN on OOM.
 */
double nn_debug_loss_grad(struct nn_model *m, const float *x, int B, float *grads);

#endif
