/*
 * nn_dense.h - fully connected layer and ReLU over flat float arrays.
 *
 * Layout is row-major, batch first: inp (B, in), out (B, out),
 * weight (out, in), bias (out). backward accumulates into the gradient
 * buffers (+=) so that the caller zeroes them once per step.
 */
#ifndef NN_DENSE_H
#define NN_DENSE_H

#include <stddef.h>

void nn_dense_forward(float *out,         /* (B, out_dim) */
		      const float *inp,   /* (B, in_dim) */
		      const float *weight, /* (out_dim, in_dim) */
		      const float *bias,  /* (out_dim) or NULL */
		      int B, int in_dim, int out_dim);

void nn_dense_backward(float *dinp,          /* (B, in_dim) or NULL; accumulated */
		       float *dweight,       /* (out_dim, in_dim); accumulated */
		       float *dbias,         /* (out_dim) or NULL; accumulated */
		       const float *dout,    /* (B, out_dim) */
		       const float *inp,     /* (B, in_dim) */
		       const float *weight,  /* (out_dim, in_dim) */
		       int B, int in_dim, int out_dim);

void nn_relu_forward(float *out, const float *inp, size_t n);
/* dinp += dout where out > 0. */
void nn_relu_backward(float *dinp, const float *dout, const float *out, size_t n);

#endif
