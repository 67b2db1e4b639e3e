/*
 * nn_layers.h - the layer kernels of our neural nets: forward/backward pairs
 * over flat float arrays, batched, with the matrix work in cblas_sgemm.
 *
 * Layouts are row-major, batch first. Sequence activations are
 * channels-last, (B, L, C): a window position holds its channels side by
 * side, so that im2col rows are plain copies and a whole batch folds into one
 * GEMM. Backward functions accumulate (+=) into every gradient they write
 * (dinp, dweight, dbias), so the caller zeroes gradients once per step.
 * No function here allocates: scratch buffers are passed in, sized with the
 * *_col_size() helpers.
 */
#ifndef NN_LAYERS_H
#define NN_LAYERS_H

#include <stddef.h>

/* ---- dense: out = inp . weight^T + bias ---- */

void nn_dense_forward(float *out,          /* (B, out_dim) */
		      const float *inp,    /* (B, in_dim) */
		      const float *weight, /* (out_dim, in_dim) */
		      const float *bias,   /* (out_dim) or NULL */
		      int B, int in_dim, int out_dim);

void nn_dense_backward(float *dinp,         /* (B, in_dim) or NULL; accumulated */
		       float *dweight,      /* (out_dim, in_dim); accumulated */
		       float *dbias,        /* (out_dim) or NULL; accumulated */
		       const float *dout,   /* (B, out_dim) */
		       const float *inp,    /* (B, in_dim) */
		       const float *weight, /* (out_dim, in_dim) */
		       int B, int in_dim, int out_dim);

/*
 * One window through a dense layer, for scoring latency. At batch 1 the
 * layer streams its whole weight matrix once per call, so the time is the
 * time to read the weights; a GEMM call adds its own fixed costs on top.
 * The weights are repacked once into blocks of NN_DENSE_BLOCK outputs,
 * (out_dim / NN_DENSE_BLOCK, in_dim, NN_DENSE_BLOCK) plus a narrower last
 * block, so that the forward pass reads one contiguous stream and keeps a
 * block's sums in registers: out[block] += inp[i] * packed[block, i, :].
 */
#define NN_DENSE_BLOCK 64

/* packed (in_dim * out_dim floats) = weight (out_dim, in_dim) in the layout above */
void nn_dense_pack(float *packed, const float *weight, int in_dim, int out_dim);

void nn_dense_forward_one(float *out,          /* (out_dim) */
			  const float *inp,    /* (in_dim) */
			  const float *packed, /* nn_dense_pack() of the weights */
			  const float *bias,   /* (out_dim) or NULL */
			  int in_dim, int out_dim);

/*
 * The same with the weights stored as IEEE binary16 (half the bytes to
 * stream). Only weights that are exactly binary16 values are packed (the
 * trainer rounds an MLP-AE's dense weights to them), so the products are the
 * float kernel's; the sums use FMA where the CPU has it, so the two agree to
 * float rounding, as the batched (sgemm) path does.
 */

/* f rounded to the nearest binary16 value (ties to even), kept as a float;
 * magnitudes beyond binary16's range (>= 65520), inf and NaN unchanged. */
float nn_half_round(float f);

/* packed (in_dim * out_dim halves), layout as nn_dense_pack(). Returns 0, or
 * -ERANGE (packed left partly written) if a weight is not a binary16 value. */
int nn_dense_pack_half(unsigned short *packed, const float *weight, int in_dim, int out_dim);

void nn_dense_forward_one_half(float *out,                   /* (out_dim) */
			       const float *inp,             /* (in_dim) */
			       const unsigned short *packed, /* nn_dense_pack_half() */
			       const float *bias,            /* (out_dim) or NULL */
			       int in_dim, int out_dim);

/* 1 when this CPU converts binary16 in hardware (x86-64 with AVX2, FMA and
 * F16C); nn_dense_forward_one_half() works everywhere, but is only faster
 * than nn_dense_forward_one() then. */
int nn_half_fast(void);

/* ---- 1-D convolutions ---- */

/*
 * Geometry of a conv1d or transposed conv1d layer. For conv1d
 * lout = (lin + 2*pad - k) / stride + 1; for the transposed one
 * lout = (lin - 1) * stride - 2*pad + k + out_pad (PyTorch's definitions).
 */
struct nn_conv_geom {
	int cin, cout, k, stride, pad, out_pad;
	int lin, lout;
};

/* Output length of a conv1d, or -1 if the geometry is impossible. */
int nn_conv1d_lout(int lin, int k, int stride, int pad);
/* Output length of a transposed conv1d, or -1 if impossible. */
int nn_convt1d_lout(int lin, int k, int stride, int pad, int out_pad);

/* Floats of scratch (`col`) that a conv1d / convt1d call needs for batch B. */
size_t nn_conv1d_col_size(const struct nn_conv_geom *g, int B);
size_t nn_convt1d_col_size(const struct nn_conv_geom *g, int B);

/* out[b,t,o] = bias[o] + sum_{j,i} inp[b, t*stride - pad + j, i] * weight[o,j,i]
 * (positions outside 0..lin-1 read as zero). */
void nn_conv1d_forward(float *out,          /* (B, lout, cout) */
		       float *col,          /* scratch, nn_conv1d_col_size() floats */
		       const float *inp,    /* (B, lin, cin) */
		       const float *weight, /* (cout, k, cin) */
		       const float *bias,   /* (cout) or NULL */
		       const struct nn_conv_geom *g, int B);

void nn_conv1d_backward(float *dinp,         /* (B, lin, cin) or NULL; accumulated */
			float *dweight,      /* (cout, k, cin); accumulated */
			float *dbias,        /* (cout) or NULL; accumulated */
			float *col,          /* scratch, nn_conv1d_col_size() floats */
			const float *dout,   /* (B, lout, cout) */
			const float *inp,    /* (B, lin, cin) */
			const float *weight, /* (cout, k, cin) */
			const struct nn_conv_geom *g, int B);

/* The adjoint of conv1d (PyTorch's ConvTranspose1d): every input position t
 * scatters inp[b,t,:] . weight[:,j,:] onto output position t*stride - pad + j. */
void nn_convt1d_forward(float *out,          /* (B, lout, cout) */
			float *col,          /* scratch, nn_convt1d_col_size() floats */
			const float *inp,    /* (B, lin, cin) */
			const float *weight, /* (cin, k, cout) */
			const float *bias,   /* (cout) or NULL */
			const struct nn_conv_geom *g, int B);

void nn_convt1d_backward(float *dinp,         /* (B, lin, cin) or NULL; accumulated */
			 float *dweight,      /* (cin, k, cout); accumulated */
			 float *dbias,        /* (cout) or NULL; accumulated */
			 float *col,          /* scratch, nn_convt1d_col_size() floats */
			 const float *dout,   /* (B, lout, cout) */
			 const float *inp,    /* (B, lin, cin) */
			 const float *weight, /* (cin, k, cout) */
			 const struct nn_conv_geom *g, int B);

/* ---- activations and loss ---- */

/* out = max(inp, 0); out may equal inp. */
void nn_relu_forward(float *out, const float *inp, size_t n);
/* dinp += dout where out > 0. */
void nn_relu_backward(float *dinp, const float *dout, const float *out, size_t n);
/* In place: d = 0 where out <= 0 (backward through a ReLU whose output is `out`). */
void nn_relu_mask(float *d, const float *out, size_t n);

/* Mean of (y - x)^2 over n elements, accumulated in double. */
double nn_mse_forward(const float *y, const float *x, size_t n);
/* dy = 2 (y - x) / n: the gradient of nn_mse_forward (overwrites dy). */
void nn_mse_backward(float *dy, const float *y, const float *x, size_t n);

#endif
