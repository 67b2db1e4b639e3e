/*
 * nn_dense.c - dense layer and ReLU; the matrix work is cblas_sgemm.
 */
#include "nn_dense.h"

#include <cblas.h>

void nn_dense_forward(float *out, const float *inp, const float *weight, const float *bias,
		      int B, int in_dim, int out_dim)
{
	if (bias) {
		for (int b = 0; b < B; b++)
			for (int o = 0; o < out_dim; o++)
				out[(size_t)b * out_dim + o] = bias[o];
	}
	/* out (B,out) = inp (B,in) . weight^T (in,out) [+ out] */
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, out_dim, in_dim, 1.0f, inp,
		    in_dim, weight, in_dim, bias ? 1.0f : 0.0f, out, out_dim);
}

void nn_dense_backward(float *dinp, float *dweight, float *dbias, const float *dout,
		       const float *inp, const float *weight, int B, int in_dim, int out_dim)
{
	/* dweight (out,in) += dout^T (out,B) . inp (B,in) */
	cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out_dim, in_dim, B, 1.0f, dout,
		    out_dim, inp, in_dim, 1.0f, dweight, in_dim);
	if (dbias) {
		for (int b = 0; b < B; b++)
			for (int o = 0; o < out_dim; o++)
				dbias[o] += dout[(size_t)b * out_dim + o];
	}
	/* dinp (B,in) += dout (B,out) . weight (out,in) */
	if (dinp)
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, in_dim, out_dim, 1.0f,
			    dout, out_dim, weight, in_dim, 1.0f, dinp, in_dim);
}

void nn_relu_forward(float *out, const float *inp, size_t n)
{
	for (size_t i = 0; i < n; i++)
		out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

void nn_relu_backward(float *dinp, const float *dout, const float *out, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (out[i] > 0.0f)
			dinp[i] += dout[i];
}
